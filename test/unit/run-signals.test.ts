// Every signal that would end ops outright reaches the run under way (core/signals.ts RUN_SIGNALS, handleSignals: what
// core/ops/locked.ts withLock installs from its lock step on), so that it releases its lock and exits 128 + the signal's
// number: a real node process sent each signal by kill(2). Unanswered (Ctrl-\ sends SIGQUIT; `ulimit -t` SIGXCPU), the
// process died at once, its lock left stale on every host and its steps running there.
import { execFile, spawn } from 'node:child_process';
import { constants } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const CORE = join(import.meta.dirname, '..', '..', 'core');

/** A command inside a run's signal handling (which says so, "releases", then exits as withLock does), sent `signal`. */
async function runSent(signal: NodeJS.Signals): Promise<{ code: number | null; killedBy: NodeJS.Signals | null; stderr: string }> {
  const script = `const { handleSignals, signalExit } = await import(${JSON.stringify(join(CORE, 'signals.ts'))});
handleSignals((s) => { process.stderr.write('run: ' + s + ' received, releasing the lock\\n'); setTimeout(() => process.exit(signalExit(s)), 20); });
process.stdout.write('ready\\n');
setTimeout(() => undefined, 30_000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
  child.kill(signal);
  const [code, killedBy] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
  return { code, killedBy, stderr };
}

describe('signals that end a process, within a run', () => {
  it.each(['SIGQUIT', 'SIGXCPU', 'SIGUSR2', 'SIGALRM', 'SIGINT', 'SIGTERM', 'SIGHUP'] as const)('%s (kill(2) from outside): the run gets it, releases its lock and exits 128 + its number, never killed outright', async (signal) => {
    const r = await runSent(signal);
    expect(r.killedBy, r.stderr).toBeNull();
    expect(r.stderr).toBe(`run: ${signal} received, releasing the lock\n`);
    expect(r.code).toBe(128 + constants.signals[signal]);
  }, 60_000);
});

describe('the terminal closed (hang-up) during a run', () => {
  /**
   * A run on a terminal of its own (test/support/on_terminal.py) that answers SIGHUP as withLock does (says so, then
   * exits 129), the terminal closed once it is ready; `guarded`: with guardHungUpTerminals (the CLI's, every command).
   */
  async function hungUp(guarded: boolean): Promise<number> {
    const script = `const { guardHungUpTerminals, handleSignals, signalExit } = await import(${JSON.stringify(join(CORE, 'signals.ts'))});
${guarded ? 'guardHungUpTerminals();' : ''}
for (const out of [process.stdout, process.stderr]) out.on('error', () => undefined);
handleSignals((s) => { process.stderr.write('run: ' + s + ' received, releasing the lock\\n'); setTimeout(() => process.exit(signalExit(s)), 200); });
process.stdout.write('ready\\n');
setInterval(() => process.stderr.write('building\\n'), 20);`;
    const spec = { argv: [process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], cwd: process.cwd(), env: { PATH: process.env.PATH }, steps: [['ready', { hangup: true }]] };
    const { stdout } = await promisify(execFile)('python3', [join(import.meta.dirname, '..', 'support', 'on_terminal.py'), JSON.stringify(spec)], { encoding: 'utf8', timeout: 60_000 });
    return (JSON.parse(stdout) as { status: number }).status;
  }

  it('its stop ends with exit 129 (128 + SIGHUP), never Node\'s abort at exit as it gives the terminal, hung up, its modes back (SIGABRT, SIGSEGV: a cancelled run read as a crash)', async () => {
    expect(await hungUp(true)).toBe(129);
  }, 60_000);
});
