// The start's health gate (wait_healthy, core/steps/sh/probe.sh, as startRelease runs it: FATAL_GROUP and
// SLOW_START_HINT set) against a real supervisord (4.2.5, as Debian 12 ships it: scripts/setup-machine.sh): a program
// whose process runs to the deadline without listening (a slow start: imports, a cache warmed first) is said so, with
// switch.health_timeout to raise; one that listens elsewhere, or that is gone, is not; nor is a probe run without
// the hint (ops status, a previous release put back).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scriptPrelude } from '../../core/remote/wrap.ts';
import { IDENTITY_FUNCTIONS, PROBE_FUNCTIONS, SUPERVISOR_FUNCTIONS } from '../../core/steps/libraries.ts';
import { programSection, startSupervisord, type Supervisord } from '../support/supervisord.ts';
import { freePort } from '../support/ports.ts';

const run = promisify(execFile);
let sup: Supervisord;
let slowPort: number;
let elsewherePort: number;
let otherPort: number;

/** wait_healthy for 2 s on GROUP's program web at PORT, as the start runs it (`hint`: with SLOW_START_HINT); its UNHEALTHY. */
async function verdict(group: string, port: number, hint = true): Promise<string> {
  const script = `${scriptPrelude}\n${SUPERVISOR_FUNCTIONS}\n${IDENTITY_FUNCTIONS}\n${PROBE_FUNCTIONS}\nSUPERVISOR_SOCK=${sup.sock}
sleep 1.5
if ${hint ? 'SLOW_START_HINT=switch.health_timeout ' : ''}FATAL_GROUP=${group} wait_healthy 2 0.2 web:${port}:/health; then echo healthy; else printf '%s\\n' "$UNHEALTHY"; fi`;
  const { stdout } = await run('bash', ['-c', script], { encoding: 'utf8' });
  return stdout.trim().split('\n').at(-1)!;
}

beforeAll(async () => {
  [slowPort, elsewherePort, otherPort] = [await freePort(), await freePort(), await freePort()];
  const program = (d: string, name: string, command: string) => programSection(d, name, command, { autostart: true, autorestart: true, startsecs: 1, startretries: 1 });
  sup = await startSupervisord('ops-slow-start-', (d) => [
    '[group:app-slow]\nprograms=app-slow-web\n',
    '[group:app-elsewhere]\nprograms=app-elsewhere-web\n',
    // Still importing at the deadline: runs, listens nowhere yet.
    program(d, 'app-slow-web', '/usr/bin/sleep 600'),
    // Listens, but on a port of its own choosing (a gunicorn.conf.py bind): not a slow start.
    program(d, 'app-elsewhere-web', `/usr/bin/python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', ${otherPort})); s.listen(); time.sleep(600)"`),
  ]);
}, 30_000);

afterAll(() => {
  sup?.daemon.kill('SIGTERM');
});

describe('the start\'s health gate on a program still starting at its deadline', () => {
  it('a process that runs and listens nowhere yet: a slower start than switch.health_timeout, said with the setting', async () => {
    const why = await verdict('app-slow', slowPort);
    expect(why).toMatch(new RegExp(`^no healthy answer within 2s from web:${slowPort}:/health \\(Failed to connect to 127\\.0\\.0\\.1 port ${slowPort}[^)]*\\); web still running but listening on no port after 2s: .* needs a longer switch\\.health_timeout \\(2s now`));
  }, 30_000);

  it('without the hint (status, a previous release put back): the verdict alone', async () => {
    const why = await verdict('app-slow', slowPort, false);
    expect(why).toMatch(/^no healthy answer within 2s from web:/);
    expect(why).not.toContain('health_timeout');
  }, 30_000);

  it('a process listening on another port: named where it listens, not taken for a slow start', async () => {
    const why = await verdict('app-elsewhere', elsewherePort);
    expect(why).toContain(`program web listens on 127.0.0.1:${otherPort}`);
    expect(why).not.toContain('health_timeout');
  }, 30_000);
});
