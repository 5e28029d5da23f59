// group_fatal (core/steps/sh/supervisor.sh), the health gate's early verdict on a program supervisor gave up on,
// against a real supervisord (4.2.5, as Debian 12 ships it: scripts/setup-machine.sh) on a socket of its own: a
// command supervisor cannot start at all (a typo in its first word, a bare name on no PATH, a script not executable)
// is said as such, naming the program and the fix; one that starts and keeps exiting is said so, named.
import { execFile } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scriptPrelude } from '../../core/remote/wrap.ts';
import { SUPERVISOR_FUNCTIONS } from '../../core/steps/libraries.ts';
import { programSection, startSupervisord, type Supervisord } from '../support/supervisord.ts';

const run = promisify(execFile);
let sup: Supervisord;
let dir: string;

/** Ask group_fatal about GROUP (supervisord starts it itself, as it does a group a deploy adds) twice a second (for 20 s at most) until it says supervisor gave up: FATAL_WHY. */
async function fatalWhy(group: string): Promise<string> {
  const script = `${scriptPrelude}\n${SUPERVISOR_FUNCTIONS}\nSUPERVISOR_SOCK=${sup.sock}
for i in $(seq 40); do if group_fatal ${group}; then printf '%s\\n' "$FATAL_WHY"; exit 0; fi; sleep 0.5; done
echo "never FATAL"`;
  const { stdout } = await run('bash', ['-c', script], { encoding: 'utf8' });
  return stdout.trim().split('\n').at(-1)!;
}

beforeAll(async () => {
  const program = (d: string, name: string, command: string) => programSection(d, name, command, { autostart: true, autorestart: true, startsecs: 1, startretries: 1 });
  sup = await startSupervisord('ops-group-fatal-', (d) => {
    dir = d;
    // A script committed without its executable bit (git keeps 644).
    writeFileSync(join(d, 'start.sh'), '#!/bin/sh\nexec sleep 600\n');
    chmodSync(join(d, 'start.sh'), 0o644);
    return [
      '[group:app-typo]\nprograms=app-typo-web\n',
      '[group:app-bare]\nprograms=app-bare-api\n',
      '[group:app-mode]\nprograms=app-mode-web\n',
      '[group:app-exits]\nprograms=app-exits-web\n',
      program(d, 'app-typo-web', `${d}/venv/bin/gunicron app:app`),
      program(d, 'app-bare-api', 'uvicron main:app'),
      program(d, 'app-mode-web', `${d}/start.sh`),
      program(d, 'app-exits-web', '/usr/bin/python3 -c "import sys; sys.exit(1)"'),
    ];
  });
}, 30_000);

afterAll(() => {
  sup?.daemon.kill('SIGTERM');
});

describe('group_fatal on a real supervisord 4.2.5', () => {
  it('a command whose first word does not exist (a typo, a name on no PATH): the program, supervisor\'s words, and the fix', async () => {
    expect(await fatalWhy('app-typo')).toBe(
      `supervisor could not start program web: can't find command '${dir}/venv/bin/gunicron' (no such file, or no such name on its PATH); fix programs.web.command: its first word must be a program the release or the host has: {release}/venv/bin/<name> for a package release.python_requirements installs, {node} or {npm} for Node.js, {python}, or an absolute path`,
    );
    expect(await fatalWhy('app-bare')).toMatch(/^supervisor could not start program api: can't find command 'uvicron' .*; fix programs\.api\.command: /);
  }, 60_000);

  it('a script without its executable bit: named, with the fix', async () => {
    expect(await fatalWhy('app-mode')).toBe(
      `supervisor could not start program web: command at '${dir}/start.sh' is not executable; fix programs.web.command: start a script with its interpreter ({python} FILE, {node} FILE, sh FILE), or commit it executable (git update-index --chmod=+x FILE)`,
    );
  }, 60_000);

  it('a program that starts and keeps exiting: named, its log says why', async () => {
    expect(await fatalWhy('app-exits')).toBe('supervisor gave up on program web, which keeps exiting (its log says why)');
  }, 60_000);
});
