// How a step becomes one remote command: the command line (sudo, timeout) and the script fed on stdin.
// Both transports use this, so what the recording fake records is exactly what a host would run.
//
// OpenSSH runs every command through the login's shell (`$SHELL -c COMMAND`), and bash reads ~/.bashrc
// (and /etc/bash.bashrc) when sshd starts it, interactive or not: whatever those print before their
// interactive guard lands in our stdout and stderr, ahead of the script. So the script's first act is to
// print START_MARKER on both streams, and the transport drops everything before it (keeping it, to say so).
import { cmd, quote } from '../shell.ts';
import { DEFAULT_STEP_TIMEOUT, REPORT_PREFIX, type Step } from './types.ts';

/** The line a script prints first on stdout and stderr: what comes before it is the login shell's. */
export const START_MARKER = '@ops-start';

/** Functions every step script may use. Kept small: they are sent with every step. */
export const scriptPrelude = [
  // The leading newline ends whatever line the login shell left unfinished.
  `printf '\\n${START_MARKER}\\n'; printf '\\n${START_MARKER}\\n' >&2`,
  'set -euo pipefail',
  'umask 022', // files that must stay private (.env, keys) are created with explicit modes
  'export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive',
  '# shellcheck disable=SC2317 # for the step\'s own lines: some report nothing',
  `ops_report() { printf '${REPORT_PREFIX}%s %s\\n' "$1" "\${2:-}"; }`,
  'cd /',
].join('\n');

/**
 * The remote command line for a step. `timeout` runs the script in its own process group and, when
 * the time is up, signals the whole group (children included), then SIGKILLs it 10 s later. `connection` (the
 * transport's id of the connection, letters, digits, `_` and `-`) is put in the script's environment by env(1) as
 * OPS_CONNECTION, so the step's own bash carries it in /proc/PID/environ as well as everything it starts (an
 * `export` inside the script would reach only its children, not a loop of the script itself): whatever a lost
 * connection left running on the host can be found and stopped before its lock is released (connection_pids).
 */
export function commandLine(step: Pick<Step, 'as' | 'timeout'>, login: string, appUser: string, connection?: string): string {
  const seconds = step.timeout ?? DEFAULT_STEP_TIMEOUT;
  if (connection !== undefined && !/^[A-Za-z0-9_-]+$/.test(connection)) throw new Error(`connection id ${JSON.stringify(connection)} is not letters, digits, _ and -`);
  const run = ['timeout', '-k', '10', String(seconds), ...(connection ? ['env', `OPS_CONNECTION=${connection}`] : []), 'bash', '-s'];
  if (step.as === 'app') return cmd('sudo', '-n', '-H', '-u', appUser, '--', ...run);
  if (step.as === 'root' && login !== 'root') return cmd('sudo', '-n', '-H', '--', ...run);
  return cmd(...run);
}

/**
 * The text sent on stdin: prelude, then the step's own script. OPS_STEP_TIMEOUT is the step's timeout in seconds
 * (commandLine's): with bash's SECONDS, the time the script has left (a critical section is not begun without the
 * time it needs, core/steps/sh/critical.sh).
 */
export function scriptText(step: Step): string {
  return `${scriptPrelude}\n# shellcheck disable=SC2034 # read by critical_begin (core/steps/sh/critical.sh)\nOPS_STEP_TIMEOUT=${step.timeout ?? DEFAULT_STEP_TIMEOUT}\n${step.script.trimEnd()}\n`;
}

/**
 * An upload as a step whose stdin carries the script, then the file's bytes: bash reads a script from a
 * pipe one byte at a time (it must not swallow what its commands read), so `head -c` gets exactly the
 * content. Written to a private temporary file in the target's directory (mode 0600 from creation), checked
 * for size, given its mode, then renamed over the target: a reader never sees a partial file, a failure
 * (cut connection, full disk) leaves no file behind. The content never appears on a command line. `guard`: shell run
 * first (UploadOptions.guard: the run's lock guard), which may exit before anything is written.
 */
export function uploadStep(remotePath: string, size: number, mode: number, guard?: string): Step {
  const dir = remotePath.replace(/\/[^/]*$/, '') || '/';
  return {
    name: `upload ${remotePath.split('/').pop()}`,
    as: 'login',
    timeout: 600 + Math.ceil(size / 100_000), // at least 100 kB/s
    quiet: true,
    // One line to end with: bash has parsed and run the whole function before the content starts. `guard` runs
    // before it (it reads no stdin: the content stays for head), in braces: the library functions it brings that an
    // upload does not call are not findings (shellcheck reads them as unreachable before the script's last exit).
    script: `${guard ? `# shellcheck disable=SC2317 # the guard's library functions an upload does not call\n{\n${guard}\n}\n` : ''}` + String.raw`ops_upload() {
  local tmp got
  tmp=$(mktemp ${quote(`${dir}/.ops-upload.XXXXXX`)})
  trap 'rm -f "$tmp"' EXIT
  head -c ${size} > "$tmp"
  got=$(stat -c %s "$tmp")
  if [ "$got" != ${size} ]; then echo "the upload of ${quote(remotePath)} was cut short: $got of ${size} bytes arrived" >&2; exit 1; fi
  chmod ${mode.toString(8).padStart(4, '0')} "$tmp"
  mv -f "$tmp" ${quote(remotePath)}
  trap - EXIT
}
ops_upload; exit $?`,
  };
}
