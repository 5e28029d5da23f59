// Every signal that would end ops outright reaches the run under way (core/signals.ts RUN_SIGNALS, handleSignals: what
// core/ops/locked.ts withLock installs from its lock step on), so that it releases its lock and exits 128 + the signal's
// number: a real node process sent each signal by kill(2). Unanswered (Ctrl-\ sends SIGQUIT; `ulimit -t` SIGXCPU), the
// process died at once, its lock left stale on every host and its steps running there.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { join } from 'node:path';
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
