// How a step becomes one remote command: the command line (sudo, timeout) and the script fed on stdin.
// Both transports use this, so what the recording fake records is exactly what a host would run.
import { cmd } from '../shell.ts';
import { DEFAULT_STEP_TIMEOUT, REPORT_PREFIX, type Step } from './types.ts';

/** Functions every step script may use. Kept small: they are sent with every step. */
export const scriptPrelude = [
  'set -euo pipefail',
  'umask 022', // files that must stay private (.env, keys) are created with explicit modes
  'export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive',
  `ops_report() { printf '${REPORT_PREFIX}%s %s\\n' "$1" "\${2:-}"; }`,
  'cd /',
].join('\n');

/**
 * The remote command line for a step. `timeout` runs the script in its own process group and, when
 * the time is up, signals the whole group (children included), then SIGKILLs it 10 s later.
 */
export function commandLine(step: Step, login: string, appUser: string): string {
  const seconds = step.timeout ?? DEFAULT_STEP_TIMEOUT;
  const run = ['timeout', '-k', '10', String(seconds), 'bash', '-s'];
  if (step.as === 'app') return cmd('sudo', '-n', '-H', '-u', appUser, '--', ...run);
  if (step.as === 'root' && login !== 'root') return cmd('sudo', '-n', '-H', '--', ...run);
  return cmd(...run);
}

/** The text sent on stdin: prelude, then the step's own script. */
export function scriptText(step: Step): string {
  return `${scriptPrelude}\n${step.script.trimEnd()}\n`;
}
