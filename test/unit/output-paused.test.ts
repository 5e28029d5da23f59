// A run whose terminal does not take its output for a while (paused with Ctrl-S; at the end of an SSH session to a jump
// box whose network stalls): a real node process running core/ops/locked.ts withLock (over the recording transport) on a
// real terminal (test/support/on_terminal.py). Node writes to a terminal synchronously on Linux: the whole process stopped
// there, its SSH keepalives (timers, like the one counted here) with it, and after HOLDER_SILENT_SECONDS its live run's
// lock read stale to every other run. Within a run, ops's output never blocks (core/report.ts outputNeverBlocks), and
// nothing of it is lost: written once the terminal takes it, before the process exits, also after a signal.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { quote } from '../../core/shell.ts';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lockedRunScript, nodeCommand } from '../support/locked-run.ts';

const CORE = join(import.meta.dirname, '..', '..', 'core');
const PTY = join(import.meta.dirname, '..', 'support', 'on_terminal.py');

/**
 * A run writing 400 lines of 1000 characters (one every 5 ms) under withLock, a 100 ms timer counting its longest gap
 * (what ssh2's keepalive timer would see), the unlock step noted in `log`; its stdout read only after `pauseMs`.
 * `signal`: sent once the run wrote half its lines.
 */
async function pausedRun(pauseMs: number, signal?: NodeJS.Signals): Promise<{ code: number | null; stdout: string; log: string; resumedAt: number }> {
  const log = join(mkdtempSync(join(tmpdir(), 'ops-paused-')), 'log');
  const script = lockedRunScript(log, {
    stepNote: "' at ' + Date.now()",
    ctxFields: "interrupted: (doc) => process.stdout.write(JSON.stringify(doc) + '\\n')",
    before: `let last = Date.now(), gap = 0;
const keepalive = setInterval(() => { gap = Math.max(gap, Date.now() - last); last = Date.now(); }, 100);
process.on('exit', () => note('longest gap ' + gap));`,
    body: `for (let i = 0; i < 400; i++) {
    reporter.info(String(i).padStart(1000, '.'));
    if (i === 200) note('half');
    await new Promise((r) => setTimeout(r, 5));
  }`,
    after: 'clearInterval(keepalive);',
  });
  // A real terminal (test/support/on_terminal.py), paused with Ctrl-S once the run began, resumed with Ctrl-Q `pauseMs` later.
  const node = nodeCommand(script);
  const shell = `stty ixon; (sleep ${pauseMs / 1000}; echo "resumed $(date +%s%3N)" >> ${quote(log)}) & ${node}; echo "rc=$?"`;
  const spec = { argv: ['sh', '-c', shell], cwd: join(CORE, '..'), env: { PATH: process.env.PATH, HOME: process.env.HOME, TERM: 'dumb' }, steps: [[{ file: log, text: 'pid ' }, '\x13'], [{ file: log, text: 'resumed' }, '\x11']] };
  const terminal = promisify(execFile)('python3', [PTY, JSON.stringify(spec)], { encoding: 'utf8', timeout: 50_000 });
  if (signal) {
    const start = Date.now();
    while (!readFileSafe(log).includes('half') && Date.now() - start < 30_000) await new Promise((r) => setTimeout(r, 50));
    process.kill(Number(/pid (\d+)/.exec(readFileSafe(log))?.[1]), signal);
  }
  const stdout = (JSON.parse((await terminal).stdout) as { out: string }).out.replace(/\r\n/g, '\n');
  const code = Number(/rc=(\d+)\n/.exec(stdout)?.[1]);
  const resumedAt = Number(/resumed (\d+)/.exec(readFileSafe(log))?.[1]);
  return { code, stdout, log: readFileSafe(log), resumedAt };
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

describe('a run whose output nobody takes for a while', () => {
  it('goes on (its keepalive timer never held up), releases its lock, and writes every line once the reader takes them', async () => {
    const r = await pausedRun(4000);
    expect(r.code).toBe(0);
    expect(Number(/longest gap (\d+)/.exec(r.log)?.[1])).toBeLessThan(1000);
    expect(r.log).toMatch(/step lock at \d+\n(.|\n)*step unlock at \d+\n/);
    expect(r.stdout.match(/^\.+\d+$/gm)).toHaveLength(400);
    expect(r.stdout).toMatch(/done\nrc=0\n$/);
  }, 60_000);

  it('a signal meanwhile: the lock released at once, not once the reader came back; the process exits after every line and its --json document are written', async () => {
    const r = await pausedRun(4000, 'SIGTERM');
    expect(r.code).toBe(143);
    // Released while the reader was still away.
    expect(Number(/step unlock at (\d+)/.exec(r.log)?.[1])).toBeLessThan(r.resumedAt);
    expect(Number(/longest gap (\d+)/.exec(r.log)?.[1])).toBeLessThan(1000);
    const doc = r.stdout.split('\n').find((l) => l.startsWith('{'));
    expect(JSON.parse(doc ?? '{}')).toMatchObject({ result: 'interrupted', signal: 'SIGTERM', exitCode: 143 });
    expect(r.stdout.match(/^\.+200$/m)).not.toBeNull();
  }, 60_000);
});
