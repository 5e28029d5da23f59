// group_settled (core/steps/sh/identity.sh), the health gate's last word, against a real supervisord (4.2.5, the
// version Debian 12 ships, from PyPI: scripts/setup-machine.sh) on a socket of its own, with programs written as
// slotConfig writes them (startsecs 3, autorestart): a program that keeps running passes once it has run the window
// (switch.settle, counted from its process's start: shorter or longer than supervisor's startsecs alike); one that
// answers and exits within it (supervisor restarts it) fails at once, named, quoting what it wrote since its start.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scriptPrelude } from '../../core/remote/wrap.ts';
import { IDENTITY_FUNCTIONS, MASK_FUNCTIONS, SUPERVISOR_FUNCTIONS } from '../../core/steps/libraries.ts';
import { STARTSECS } from '../../core/steps/switch.ts';
import { programSection, startSupervisord, type Supervisord } from '../support/supervisord.ts';

const run = promisify(execFile);
let sup: Supervisord;
let dir: string;

/** Start GROUP (supervisor does not wait for it) and run group_settled on it with a window of `seconds`: its status, SETTLE and the seconds it took. */
async function settle(group: string, seconds: number = STARTSECS): Promise<{ status: number; settle: string; seconds: number }> {
  const script = `${scriptPrelude}\n${MASK_FUNCTIONS}\n${SUPERVISOR_FUNCTIONS}\n${IDENTITY_FUNCTIONS}\nSUPERVISOR_SOCK=${sup.sock}
declare -A LOG_START=([${dir}/app-crash-web.err.log]=0 [${dir}/app-crash-web.log]=0)
rpc supervisor.startProcessGroup ${group} bool:0 >/dev/null
t0=\${EPOCHREALTIME/./}; rc=0; group_settled ${group} ${seconds} || rc=$?
printf '%s\\t%s\\t%s\\n' "$rc" $(( (\${EPOCHREALTIME/./} - t0) / 1000 )) "$SETTLE"`;
  const { stdout } = await run('bash', ['-c', script], { encoding: 'utf8' });
  const [status, ms, text] = stdout.trim().split('\n').at(-1)!.split('\t');
  return { status: Number(status), settle: text ?? '', seconds: Number(ms) / 1000 };
}

beforeAll(async () => {
  const program = (dir: string, name: string, command: string) => programSection(dir, name, command, { autostart: false, autorestart: true, startsecs: STARTSECS, startretries: 3 });
  sup = await startSupervisord('ops-group-settled-', (d) => {
    dir = d;
    return [
    '[group:app-blue]\nprograms=app-blue-web,app-blue-api\n',
    '[group:app-crash]\nprograms=app-crash-web\n',
    // Up, then a module it imports on its first request is missing: a traceback on stderr, and gone.
    programSection(d, 'app-crash-web', `/usr/bin/python3 -c "import time; time.sleep(1); import redis_cache_client"`, { autostart: false, autorestart: true, startsecs: STARTSECS, startretries: 3 }, true),
    '[group:app-green]\nprograms=app-green-web,app-green-api\n',
    '[group:app-quick]\nprograms=app-quick-web\n',
    '[group:app-late]\nprograms=app-late-web\n',
    program(d, 'app-blue-web', '/usr/bin/python3 -c "import time; time.sleep(600)"'),
    program(d, 'app-blue-api', '/usr/bin/python3 -c "import time; time.sleep(600)"'),
    // A server that is up at once (it would answer its health check) and dies 1 s later: a worker thread that
    // fails on its first connection. supervisor restarts it (BACKOFF, then STARTING again), again and again.
    program(d, 'app-green-web', '/usr/bin/python3 -c "import time; time.sleep(600)"'),
    program(d, 'app-green-api', '/usr/bin/python3 -c "import threading, time, os; threading.Timer(1.0, lambda: os._exit(1)).start(); time.sleep(600)"'),
    program(d, 'app-quick-web', '/usr/bin/python3 -c "import time; time.sleep(600)"'),
    // Gone 4 s after its start: after supervisor took it as started (RUNNING at startsecs, 3 s), which then restarts it
    // without counting the exit (never FATAL).
    program(d, 'app-late-web', '/usr/bin/python3 -c "import threading, time, os; threading.Timer(4.0, lambda: os._exit(1)).start(); time.sleep(600)"'),
  ];
  });
}, 30_000);

afterAll(() => {
  sup?.daemon.kill('SIGTERM');
});

describe('group_settled on a real supervisord 4.2.5', () => {
  it('programs that keep running: 0 once they ran the window (here startsecs, the default) from their start, not before', async () => {
    const r = await settle('app-blue');
    expect(r).toMatchObject({ status: 0, settle: '' });
    expect(r.seconds).toBeGreaterThanOrEqual(STARTSECS - 0.2);
    expect(r.seconds).toBeLessThan(STARTSECS + 2);
  }, 30_000);

  it('a program that exits a second after its start (supervisor restarts it): fails as soon as it is gone, naming it, before startsecs', async () => {
    const r = await settle('app-green');
    expect(r.status).toBe(1);
    expect(r.settle).toMatch(/^program api exited after it answered its health check, within 3s of its start \(supervisor: (BACKOFF|STARTING|EXITED); it ran as pid \d+\)/);
    expect(r.seconds).toBeLessThan(STARTSECS);
  }, 30_000);

  it('a program that exits saying why on its stderr: SETTLE quotes it', async () => {
    const r = await settle('app-crash');
    expect(r.status).toBe(1);
    expect(r.settle).toMatch(new RegExp(`^program web exited after it answered its health check, .*; it must keep running; ${dir}/app-crash-web\\.err\\.log ends: .*ModuleNotFoundError: No module named 'redis_cache_client'$`));
  }, 30_000);

  it('a window shorter than startsecs (switch.settle 1): 0 once each program has run 1 s, while supervisor still says STARTING', async () => {
    const r = await settle('app-quick', 1);
    expect(r).toMatchObject({ status: 0, settle: '' });
    expect(r.seconds).toBeGreaterThanOrEqual(0.8);
    expect(r.seconds).toBeLessThan(STARTSECS - 0.5);
  }, 30_000);

  it('a window longer than startsecs (switch.settle 5): a program gone at 4 s, after supervisor took it as started, fails, named', async () => {
    const r = await settle('app-late', 5);
    expect(r.status).toBe(1);
    expect(r.settle).toMatch(/^program web exited after it answered its health check, within 5s of its start \(supervisor: (BACKOFF|STARTING|EXITED|RUNNING); it ran as pid \d+\)/);
    expect(r.seconds).toBeGreaterThan(STARTSECS);
    expect(r.seconds).toBeLessThan(5);
  }, 30_000);
});
