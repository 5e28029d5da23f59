// The lab's one lock (test/hosts/proc.ts withLock: rootfs and snapshot builds, services, hosts, bench) is as
// careful as the product's: the holder is recorded (pid + start time, command, purpose), a waiter says what
// it waits for, and a lock whose holder was killed is taken over at once (a CI run after a killed one must
// not hang). Real processes, a private run dir.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { withLock } from '../hosts/proc.ts';
import { describeLease } from '../hosts/services.ts';

const PROC = join(import.meta.dirname, '..', 'hosts', 'proc.ts');
let run: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  run = mkdtempSync(join(tmpdir(), 'ops-lablock-'));
  process.env.OPS_TESTHOSTS_RUN = run;
});
afterEach(() => {
  delete process.env.OPS_TESTHOSTS_RUN;
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

/** Another process that takes lock `name` and keeps it for `ms`; resolves once it holds it. */
async function holder(name: string, ms: number): Promise<ChildProcess> {
  const script = `const { withLock } = await import(${JSON.stringify(PROC)});
await withLock(${JSON.stringify(name)}, async () => { console.log('held'); await new Promise((r) => setTimeout(r, ${ms})); }, { purpose: 'building something slow' });`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { ...process.env, OPS_TESTHOSTS_RUN: run }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => String(d).includes('held') && resolve());
    child.once('exit', (code) => reject(new Error(`holder exited (${code}) before taking the lock`)));
  });
  return child;
}

describe('lab lock', () => {
  it('records its holder: pid and start time, purpose, since, command', async () => {
    await withLock('rec', async () => {
      const owner = readFileSync(join(run, 'locks', 'rec.lock', 'owner'), 'utf8');
      expect(owner).toMatch(new RegExp(`^${process.pid} \\d+\\npurpose=recording\\nsince=\\d{4}-\\d\\d-\\d\\dT[^\\n]+\\ncommand=.+\\n$`));
    }, { purpose: 'recording' });
  });

  it('a waiter says what it waits for and whom, then gets the lock when the holder is done', async () => {
    const child = await holder('busy', 1500);
    const said: string[] = [];
    const started = Date.now();
    await withLock('busy', async () => undefined, { log: (l) => said.push(l) });
    expect(Date.now() - started).toBeGreaterThan(500);
    expect(said[0]).toMatch(new RegExp(`^waiting for lock "busy", held by pid ${child.pid} \\(.*node.*\\), building something slow, since \\d{4}-`));
  }, 30_000);

  it('a waiter whose holder is another task of its own process says so, not only a pid and command line that are its own', async () => {
    const said: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const first = withLock('self', () => held, { purpose: 'adding the services address' });
    const second = withLock('self', async () => undefined, { log: (l) => said.push(l) });
    await new Promise((r) => setTimeout(r, 300));
    release();
    await Promise.all([first, second]);
    expect(said[0]).toMatch(new RegExp(`^waiting for lock "self", held by another task of this same process \\(pid ${process.pid}, adding the services address, since \\d{4}-`));
  });

  it('a holder killed with SIGKILL does not make the next one wait: its lock is taken over at once', async () => {
    const child = await holder('killed', 60_000);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const said: string[] = [];
    const started = Date.now();
    await withLock('killed', async () => undefined, { log: (l) => said.push(l), timeoutMs: 5000 });
    expect(Date.now() - started).toBeLessThan(3000);
    expect(said).toEqual([expect.stringMatching(new RegExp(`^lock "killed" was held by pid ${child.pid} \\(.*\\), building something slow, since .*, which is gone: taking it over$`))]);
  }, 30_000);

  it('a live pid that is not the recorded process (a reused pid) is no holder', async () => {
    mkdirSync(join(run, 'locks', 'reused.lock'), { recursive: true });
    writeFileSync(join(run, 'locks', 'reused.lock', 'owner'), `${process.pid} 1\npurpose=long ago\n`);
    const said: string[] = [];
    await withLock('reused', async () => undefined, { log: (l) => said.push(l), timeoutMs: 2000 });
    expect(said[0]).toMatch(/which is gone: taking it over/);
  });

  it('a holder alive for too long: the waiter gives up naming it, and how to unblock', async () => {
    const child = await holder('stuck', 60_000);
    const err = await withLock('stuck', async () => undefined, { log: () => undefined, timeoutMs: 600 }).catch((e) => e);
    expect(err.message).toMatch(new RegExp(`^gave up waiting 0 min for lock "stuck", held by pid ${child.pid}`));
    expect(err.hint).toBe(`if that process is stuck, stop it (kill ${child.pid}); its lock is then taken over`);
  }, 30_000);
});

describe('lab leases', () => {
  it("are named by what holds them, so npm run sandbox -- down says what keeps the services up and how to stop it", () => {
    expect(describeLease('cli')).toBe('npm run hosts (up, services or db: npm run hosts -- down --all stops them)');
    expect(describeLease('vitest-21607')).toBe('a test run (pid 21607)');
    expect(describeLease('bench-42')).toBe('a benchmark run (pid 42)');
    expect(describeLease('sandbox')).toBe('the sandbox (npm run sandbox -- down)');
    expect(describeLease('other')).toBe('other');
    expect(readFileSync(join(import.meta.dirname, '..', '..', 'scripts', 'sandbox.ts'), 'utf8')).toContain('status().leases.map(describeLease)');
  });
});
