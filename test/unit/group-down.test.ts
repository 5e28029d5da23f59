// group_down (core/steps/sh/supervisor.sh) against a real supervisord (4.2.5, the version Debian 12 ships, from
// PyPI: scripts/setup-machine.sh) on a socket of its own: a slot's programs are gone and its group forgotten when
// it returns, also a program that ignores SIGTERM (supervisord kills it after stopwaitsecs), without asking
// supervisord to wait (its answer would come on a later turn of its main loop, up to a second late).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scriptPrelude } from '../../core/remote/wrap.ts';
import { SUPERVISOR_FUNCTIONS } from '../../core/steps/libraries.ts';
import { startSupervisord, type Supervisord } from '../support/supervisord.ts';

const run = promisify(execFile);

let sup: Supervisord;
let dir: string;
const sock = () => sup.sock;

/** Run the supervisor functions and `script` with bash, talking to this file's supervisord. */
async function bash(script: string): Promise<string> {
  const { stdout } = await run('bash', ['-c', `${scriptPrelude}\n${SUPERVISOR_FUNCTIONS}\nSUPERVISOR_SOCK=${sock()}\n${script}`], { encoding: 'utf8' });
  return stdout.trim().split('\n').at(-1) ?? '';
}

/** getAllProcessInfo, as group:name=STATE lines (sorted). */
async function states(): Promise<string[]> {
  const out = await bash('sup_pids; for k in "${!SUP_STATE[@]}"; do echo "$k=${SUP_STATE[$k]}"; done | sort | tr "\\n" " "');
  return out.split(' ').filter(Boolean);
}

beforeAll(async () => {
  sup = await startSupervisord('ops-group-down-', (d) => {
    const program = (name: string, command: string, extra = '') =>
      `[program:${name}]\ncommand=${command}\nautostart=true\nstartsecs=0\nstopwaitsecs=2\n${extra}stdout_logfile=${d}/${name}.log\nredirect_stderr=true\n`;
    return [
      '[group:app-blue]\nprograms=app-blue-web,app-blue-stubborn\n',
      '[group:app-green]\nprograms=app-green-web\n',
      '[group:app-fork]\nprograms=app-fork-wrapped,app-fork-orphan\n',
      '[group:app-dead]\nprograms=app-dead-web\n',
      program('app-blue-web', '/usr/bin/python3 -c "import time; time.sleep(600)"'),
      program('app-blue-stubborn', `/bin/bash -c "trap '' TERM; while :; do sleep 0.2; done"`, 'stopasgroup=false\n'),
      program('app-green-web', '/usr/bin/python3 -c "import time; time.sleep(600)"'),
      // As slotConfig writes them (stopasgroup, killasgroup). A shell that runs the server without exec: the shell
      // dies at once on SIGTERM, the server (its child, same process group) drains for 1.5 s, holding its port.
      program('app-fork-wrapped', `/bin/bash -c "/usr/bin/python3 -c 'import signal,time; signal.signal(signal.SIGTERM, lambda *a: (time.sleep(1.5), exit(0))); open(\\"${d}/wrapped.ready\\", \\"w\\"); time.sleep(600)'; echo gone"`, 'stopasgroup=true\nkillasgroup=true\n'),
      // Exits at once, every time: supervisord gives up on it (FATAL, no pid).
      program('app-dead-web', '/bin/false', 'startretries=0\n').replace('startsecs=0', 'startsecs=1'),
      // A worker started in the background that ignores SIGTERM: its parent exits at once, so supervisord never
      // reaches its kill (it waits on the parent only).
      program('app-fork-orphan', `/bin/bash -c "(trap '' TERM; exec -a orphan-worker sleep 600) & sleep 600"`, 'stopasgroup=true\nkillasgroup=true\n'),
    ];
  });
  dir = sup.dir;
  // Up to 30 s: supervisord starting six programs on a busy machine.
  for (let i = 0; i < 300 && (await states()).filter((s) => s.endsWith('=RUNNING') || s.endsWith('=FATAL')).length < 6; i++) await new Promise((r) => setTimeout(r, 100));
}, 60_000);

afterAll(() => {
  sup?.daemon.kill('SIGTERM');
});

describe('group_down on a real supervisord 4.2.5', () => {
  it("stops a group's programs (one ignoring SIGTERM until supervisord kills it) and forgets the group; the other group runs on", async () => {
    expect(await states()).toEqual(['app-blue:app-blue-stubborn=RUNNING', 'app-blue:app-blue-web=RUNNING', 'app-dead:app-dead-web=FATAL', 'app-fork:app-fork-orphan=RUNNING', 'app-fork:app-fork-wrapped=RUNNING', 'app-green:app-green-web=RUNNING']);
    const pids = await bash('sup_pids; echo "${SUP_PID[app-blue:app-blue-web]} ${SUP_PID[app-blue:app-blue-stubborn]}"');
    expect(pids).toMatch(/^[1-9]\d* [1-9]\d*$/);
    // When group_down returns, both processes are gone (the stubborn one killed after stopwaitsecs=2).
    expect(await bash(`group_down app-blue; for p in ${pids}; do if kill -0 "$p" 2>/dev/null; then echo "alive:$p"; fi; done; echo done`)).toBe('done');
    expect(await states()).toEqual(['app-dead:app-dead-web=FATAL', 'app-fork:app-fork-orphan=RUNNING', 'app-fork:app-fork-wrapped=RUNNING', 'app-green:app-green-web=RUNNING']);
  }, 30_000);

  it('a program that forks: when group_down returns, no process of the group is left (a draining child of a shell, a worker that ignores SIGTERM)', async () => {
    for (let i = 0; i < 200 && !existsSync(join(dir, 'wrapped.ready')); i++) await new Promise((r) => setTimeout(r, 100));
    const leaders = await bash('sup_pids; echo "${SUP_PID[app-fork:app-fork-wrapped]} ${SUP_PID[app-fork:app-fork-orphan]}"');
    expect(leaders).toMatch(/^[1-9]\d* [1-9]\d*$/);
    // supervisord starts each program as the leader of a process group of its own: its children are in it.
    const members = async () => (await run('ps', ['-eo', 'pgid=,pid=,args='], { encoding: 'utf8' })).stdout.split('\n').filter((l) => leaders.split(' ').includes(l.trim().split(/\s+/)[0]!)).map((l) => l.trim());
    expect((await members()).length).toBeGreaterThanOrEqual(4);
    // The slot's stopwaitsecs given (2 in this file; slotConfig's 15 by default).
    const t0 = Date.now();
    await bash('group_down app-fork 2');
    expect(await members()).toEqual([]);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(await states()).toEqual(['app-dead:app-dead-web=FATAL', 'app-green:app-green-web=RUNNING']);
  }, 30_000);

  it('a group whose program supervisord gave up on (FATAL) is forgotten at once', async () => {
    for (let i = 0; i < 200 && !(await states()).includes('app-dead:app-dead-web=FATAL'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(await states()).toContain('app-dead:app-dead-web=FATAL');
    const t0 = Date.now();
    // Its stop time 10 s: not waited (a busy machine's seconds are not mistaken for it).
    await bash('group_down app-dead 10');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await states()).filter((s) => s.startsWith('app-dead:'))).toEqual([]);
  });

  it('a group supervisord does not know is fine (nothing to stop)', async () => {
    expect(await bash('group_down app-none; echo "status=$?"')).toBe('status=0');
    expect(await states()).toEqual(['app-green:app-green-web=RUNNING']);
  });
});

describe('rpc_error: why a call failed, in words (ops status shows it)', () => {
  it("a socket nobody answers on: rpc's own message naming it, not curl's words nor the fault markup; a fault: supervisor's message", async () => {
    const absent = await bash('SUPERVISOR_SOCK=/nonexistent/supervisor.sock; out=$(rpc supervisor.getAllProcessInfo); echo "[$(rpc_error "$out")]"');
    expect(absent).toBe('[supervisor does not answer on /nonexistent/supervisor.sock (is it running?)]');
    const fault = await bash('out=$(rpc supervisor.startProcess app-none:nothing); echo "[$(rpc_error "$out")]"');
    expect(fault).toMatch(/^\[BAD_NAME: app-none:nothing\]$/);
  });
});
