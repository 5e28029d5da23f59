// A real supervisord (4.2.5, the version Debian 12 ships, from PyPI: scripts/setup-machine.sh) on a socket of its
// own, for unit tests of the supervisor functions (core/steps/sh/supervisor.sh, identity.sh).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CACHE = process.env.OPS_TESTHOSTS_CACHE || '/var/cache/ops-testhosts';
const SUPERVISORD = join(CACHE, 'python', 'supervisor-4.2.5', 'bin', 'supervisord');

export interface Supervisord {
  /** Its scratch directory (configuration, logs, what programs write). */
  dir: string;
  /** Its XML-RPC socket (SUPERVISOR_SOCK). */
  sock: string;
  daemon: ChildProcess;
}

/**
 * A `[program:NAME]` section running `command`, with supervisor's `settings` (autostart, startsecs, startretries...:
 * supervisor's own keys, written in their order), stopwaitsecs=2 and its output (stderr too) in DIR/NAME.log; with
 * `stderr`, its stderr in DIR/NAME.err.log instead, as a slot's programs have it (core/steps/switch.ts slotConfig).
 */
export function programSection(dir: string, name: string, command: string, settings: Record<string, string | number | boolean>, stderr = false): string {
  const lines = Object.entries(settings).map(([k, v]) => `${k}=${v}\n`).join('');
  return `[program:${name}]\ncommand=${command}\n${lines}stopwaitsecs=2\nstdout_logfile=${dir}/${name}.log\n${stderr ? `stderr_logfile=${dir}/${name}.err.log` : 'redirect_stderr=true'}\n`;
}

/**
 * supervisord running `sections` (INI text: `[group:...]`, `[program:...]`, made by a function of the test's
 * directory) beside its own unix_http_server, rpcinterface and supervisord sections, in the foreground; returned
 * once its socket exists (at most 10 s). Kill `daemon` when done.
 * @throws Error when supervisord is not installed (scripts/setup-machine.sh installs it).
 */
export async function startSupervisord(prefix: string, sections: (dir: string) => string[]): Promise<Supervisord> {
  if (!existsSync(SUPERVISORD)) throw new Error(`${SUPERVISORD} is missing: run scripts/setup-machine.sh`);
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const sock = join(dir, 'supervisor.sock');
  writeFileSync(
    join(dir, 'supervisord.conf'),
    [
      `[unix_http_server]\nfile=${sock}\n`,
      '[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n',
      `[supervisord]\nlogfile=${dir}/supervisord.log\npidfile=${dir}/supervisord.pid\nnodaemon=true\n`,
      ...sections(dir),
    ].join('\n'),
  );
  const daemon = spawn(SUPERVISORD, ['-c', join(dir, 'supervisord.conf')], { stdio: 'ignore' });
  // Up to 20 s (a busy machine).
  for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
  if (!existsSync(sock)) throw new Error(`supervisord made no socket ${sock} in 20 s (its log: ${dir}/supervisord.log)`);
  return { dir, sock, daemon };
}
