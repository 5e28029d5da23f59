// A run started in the background of a terminal that stops background jobs when they write (`stty tostop`: a shell's
// `ops deploy &`): a real node process running core/ops/locked.ts withLock (over the recording transport) as a job of a
// real shell with job control, on a real terminal (test/support/on_terminal.py). The kernel stops such a job at its
// first line (SIGTTOU), which Node can neither ignore nor block: that line came once the lock was taken, and the run,
// stopped, sent nothing to its hosts (after HOLDER_SILENT_SECONDS its lock read stale to other runs). Now it stops
// before any lock, saying why, and runs once the shell brings it back with fg. And a run put in the background while it
// holds its lock (Ctrl-Z under npx: npx stops, ops does not, the shell takes the terminal back): it went on until its
// next line stopped it there; now its output is held until fg and it goes on to its end.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { quote } from '../../core/shell.ts';
import { lockedRunScript, nodeCommand } from '../support/locked-run.ts';

const CORE = join(import.meta.dirname, '..', '..', 'core');
const PTY = join(import.meta.dirname, '..', 'support', 'on_terminal.py');

/** The state letter of process `pid` (proc(5): R, S, T stopped...), or '' once it is gone. */
function state(pid: number): string {
  try {
    return /\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? '';
  } catch {
    return '';
  }
}

const read = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8') : '');

/** A node script running withLock over the recording transport, noting its pid and steps in `log`; `body`: the run's work. */
const runScript = (log: string, body: string) => lockedRunScript(log, { body });

/** The process group of process `pid` (proc(5) stat). */
const groupOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[2]);

// The jobs' process groups, killed after each test: a run left stopped (a failure) would stay.
const groups: number[] = [];
afterEach(() => {
  for (const g of groups.splice(0)) {
    try {
      process.kill(-g, 'SIGKILL');
    } catch {
      // gone already
    }
  }
});

async function until(what: () => boolean, ms = 30_000): Promise<void> {
  const start = Date.now();
  while (!what()) {
    if (Date.now() - start > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('a run in the background of a terminal set to stop background output (stty tostop)', () => {
  it('stops before taking any lock, saying why; bg has it stop there again; after fg it runs, writes every line and releases its lock', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-background-'));
    const log = join(dir, 'log');
    const go = join(dir, 'go');
    const script = runScript(log, "for (let i = 0; i < 20; i++) reporter.info('line ' + i);");
    const node = nodeCommand(script);
    // A shell with job control (set -m: the job in a process group of its own, the terminal's foreground the shell's),
    // brought to the foreground once the test says so.
    const shell = `set -m; stty tostop; ${node} & while [ ! -e ${quote(go)} ]; do sleep 0.1; done; fg >/dev/null; echo "rc=$?"`;
    const spec = { argv: ['bash', '-c', shell], cwd: join(CORE, '..'), env: { PATH: process.env.PATH, HOME: process.env.HOME, TERM: 'dumb' }, steps: [] };
    const terminal = promisify(execFile)('python3', [PTY, JSON.stringify(spec)], { encoding: 'utf8', timeout: 50_000 });
    try {
      await until(() => /pid \d+/.test(read(log)));
      const pid = Number(/pid (\d+)/.exec(read(log))?.[1]);
      groups.push(groupOf(pid));
      await until(() => state(pid) === 'T');
      await new Promise((r) => setTimeout(r, 500));
      expect(read(log)).not.toContain('step lock');
      // bg: continued in the background, stopped again at the same write, still before the lock.
      process.kill(pid, 'SIGCONT');
      await new Promise((r) => setTimeout(r, 1000));
      expect(state(pid)).toBe('T');
      expect(read(log)).not.toContain('step lock');
    } finally {
      writeFileSync(go, '');
    }
    const out = (JSON.parse((await terminal).stdout) as { out: string }).out.replace(/\r/g, '');
    expect(out).toMatch(/warning: this deploy of test was started in the background of a terminal that stops background jobs when they write \(stty tostop\): it waited for fg \(this line, shown now\) before taking any lock/);
    expect(out).toContain('line 19\n');
    expect(out).toMatch(/done\nrc=0\n$/);
    expect(read(log)).toMatch(/step lock\n(.|\n)*step unlock\n/);
  }, 60_000);

  it("Ctrl-Z while the shell has the terminal back (npx around ops stopped by it): the run goes on in the background to its end, its lock released, its output held until fg", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-background-'));
    const log = join(dir, 'log');
    const ready = join(dir, 'ready');
    const go = join(dir, 'go');
    const wait = (file: string) => `while (!(await import('node:fs')).existsSync(${JSON.stringify(file)})) await new Promise((r) => setTimeout(r, 50));`;
    const node = nodeCommand(runScript(log, `note('running'); ${wait(go)} for (let i = 0; i < 30; i++) { reporter.info('line ' + i); await new Promise((r) => setTimeout(r, 50)); }`));
    // The job: sh standing for npx (a parent that Ctrl-Z stops), ops its child in the same process group. Where a Ctrl-Z
    // leaves it when npx stopped and the shell took the terminal back, deterministically: in the background (the run's
    // lock taken before stty tostop, so not waiting for fg), then the terminal's SIGTSTP.
    const job = `sh -c ${quote(`${node}; echo "rc=$?"`)}`;
    const shell = `set -m; ${job} & while ! grep -q running ${quote(log)} 2>/dev/null; do sleep 0.1; done; stty tostop; touch ${quote(ready)}; while [ ! -e ${quote(go)} ]; do sleep 0.1; done; sleep 2; fg >/dev/null`;
    const spec = { argv: ['bash', '-c', shell], cwd: join(CORE, '..'), env: { PATH: process.env.PATH, HOME: process.env.HOME, TERM: 'dumb' }, steps: [] };
    const terminal = promisify(execFile)('python3', [PTY, JSON.stringify(spec)], { encoding: 'utf8', timeout: 50_000 });
    try {
      await until(() => existsSync(ready));
      const pid = Number(/pid (\d+)/.exec(read(log))?.[1]);
      const pgrp = groupOf(pid);
      groups.push(pgrp);
      process.kill(-pgrp, 'SIGTSTP');
      await new Promise((r) => setTimeout(r, 300));
      writeFileSync(go, '');
      let stopped = false;
      await until(() => (stopped ||= state(pid) === 'T') || read(log).includes('step unlock'), 20_000);
      expect(stopped, read(log)).toBe(false);
      expect(read(log)).toMatch(/step lock\n(.|\n)*step unlock\n/);
    } finally {
      writeFileSync(go, '');
    }
    const out = (JSON.parse((await terminal).stdout) as { out: string }).out.replace(/\r/g, '');
    expect(out.replace(/\n(?!warning|line|rc=|done)/g, ' ')).toMatch(/warning: Ctrl-Z ignored: .*fg brings it back, and its output, which a terminal set to stty tostop holds back till then/);
    expect(out).toContain('line 29\ndone\n');
    expect(out).toMatch(/\nrc=0\n/);
  }, 60_000);
});
