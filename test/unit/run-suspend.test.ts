// Ctrl-Z during a run that holds host locks (core/signals.ts refuseSuspend, what core/ops/locked.ts withLock installs
// with its signal handlers): the terminal sends SIGTSTP to its whole foreground process group, here a real node process
// leading its own group with a child of its own (a local git or build the run waits for). Suspended, the run's SSH
// keepalives stopped with it: after 60 s other runs read its lock as stale, could release it and start beside it, and
// the suspended run, resumed with fg, failed half-way on its fence. Now neither stops; the run says why and goes on,
// and Ctrl-C still ends it as before.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const CORE = join(import.meta.dirname, '..', '..', 'core');

/** The state letter of process `pid` (proc(5): R, S, T stopped...), or '' once it is gone. */
function state(pid: number): string {
  try {
    return /\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? '';
  } catch {
    return '';
  }
}

const started: number[] = [];
afterEach(() => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
});

describe('Ctrl-Z (SIGTSTP to the foreground process group) while a run holds its locks', () => {
  it('neither ops nor what it runs locally is suspended: it says why and goes on; Ctrl-C then ends it as before (exit 130)', async () => {
    const script = `const { handleSignals, refuseSuspend, signalExit } = await import(${JSON.stringify(join(CORE, 'signals.ts'))});
const { spawn } = await import('node:child_process');
const build = spawn('sleep', ['30'], { stdio: 'ignore' });
handleSignals((s) => { process.stderr.write('run: ' + s + ' received, releasing the lock\\n'); build.kill(); setTimeout(() => process.exit(signalExit(s)), 20); });
refuseSuspend(() => process.stderr.write('Ctrl-Z ignored: this deploy holds the lock\\n'));
let beats = 0;
setInterval(() => beats++, 50);
process.stdout.write('ready ' + build.pid + '\\n');`;
    // Its own process group in this session, as a shell's job is (perl's setpgrp: `detached` would make a new session,
    // whose orphaned group the kernel never stops on SIGTSTP): the terminal's Ctrl-Z reaches every process in it.
    const child = spawn('perl', ['-e', 'setpgrp(0, 0); exec @ARGV or die', process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(child.pid!);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const build = await new Promise<number>((resolve) => child.stdout.on('data', (d: Buffer) => { const m = /ready (\d+)/.exec(d.toString()); if (m) resolve(Number(m[1])); }));
    process.kill(-child.pid!, 'SIGTSTP');
    await new Promise((r) => setTimeout(r, 1000));
    expect(state(child.pid!), stderr).not.toBe('T');
    expect(state(build)).not.toBe('T');
    expect(stderr).toBe('Ctrl-Z ignored: this deploy holds the lock\n');
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
    child.kill('SIGINT');
    const [code, killedBy] = await exited;
    expect(killedBy).toBeNull();
    expect(code).toBe(130);
    expect(stderr).toContain('run: SIGINT received, releasing the lock\n');
  }, 60_000);
});
