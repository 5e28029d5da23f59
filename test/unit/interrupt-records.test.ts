// What an interrupted or cut-off run records and says (core/ops/locked.ts), against the recording transport: a step
// held open while the signal arrives (the SSH transport's inFlight/whenIdle), process.exit caught. One line per run
// and host in the audit log, with what the run was about (ref, sha, release); a switch let end that put its release
// live said as such; a run stopped while queued behind another says it gave up waiting; a run whose lock was
// released by force says so, and by whom.
import { PROVISIONED_KEYS } from '../../core/steps/system.ts';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadEnvironment } from '../../core/config/environment.ts';
import type { OpsContext } from '../../core/context.ts';
import { deploy } from '../../core/ops/deploy.ts';
import { failedResult } from '../../core/errors.ts';
import { stopRunsOnFault } from '../../core/signals.ts';
import { MemoryReporter } from '../../core/report.ts';
import { RecordingRemote, type Responder } from '../../core/remote/recording.ts';
import type { RunOptions, Step, StepResult } from '../../core/remote/types.ts';
import { AUDIT_KEYS, auditLine } from '../../core/steps/audit.ts';
import { FACTS_KEYS } from '../../core/steps/facts.ts';
import { LIBRARY_KEYS } from '../../core/steps/libraries.ts';
import { LOCK_BUSY_EXIT, LOCK_KEYS } from '../../core/steps/lock.ts';
import { PREFLIGHT_KEYS, RELEASE_KEYS } from '../../core/steps/release.ts';
import { opsLines } from './reports.helpers.ts';
import { TEST_HOST_KEY, scratchProject } from './project.helpers.ts';
import { runOps } from '../support/cli.ts';

const STATE = { ...PROVISIONED_KEYS, ...LOCK_KEYS, ...RELEASE_KEYS, ...PREFLIGHT_KEYS, ...LIBRARY_KEYS, ...FACTS_KEYS };
const LIVE = '20261101T000000Z-aaaaaaaaaaaa';
let root: string;
let v1: string;

beforeAll(async () => {
  ({ root, v1 } = await scratchProject('ops-interrupt-records-', 'x', {
    app: 'sample',
    ref: 'v1',
    hosts: [{ name: 'web1', address: '192.0.2.1', host_key: TEST_HOST_KEY }],
    programs: { server: { command: 'run', port: 3579, health: '/health' }, client: { command: 'run', port: 3000 } },
  }));
}, 60_000);

afterEach(() => {
  vi.restoreAllMocks();
  process.removeAllListeners('SIGINT');
  process.removeAllListeners('SIGTERM');
});

/** A recorded host whose step `gate` stays in flight (inFlight, whenIdle) until `open()`; `entered` once it runs. */
class GatedRemote extends RecordingRemote {
  private running: string[] = [];
  private idle: (() => void)[] = [];
  private release!: () => void;
  private readonly gateOpen = new Promise<void>((r) => (this.release = r));
  entered!: Promise<void>;
  private enter!: () => void;
  constructor(
    private readonly gate: string,
    respond: Responder,
  ) {
    super('web1', 'deploy', 'sample', respond);
    this.entered = new Promise((r) => (this.enter = r));
  }
  override async run(step: Step, options: RunOptions = {}): Promise<StepResult> {
    if (step.name !== this.gate || this.halted) return super.run(step, options);
    this.running.push(step.name);
    this.enter();
    await this.gateOpen;
    try {
      // Begun before any halt, as on a real connection: a halt stops only the steps after it.
      const halted = this.halted;
      this.halted = undefined;
      const result = super.run(step, options);
      this.halted = halted;
      return await result;
    } finally {
      this.running = [];
      for (const w of this.idle.splice(0)) w();
    }
  }
  override inFlight(): string[] {
    return [...this.running];
  }
  /** Its gated step counts as begun on the host (its script sent) once it was entered. */
  override started(): string[] {
    return [...this.running];
  }
  override whenIdle(): Promise<void> {
    return this.running.length ? new Promise((r) => this.idle.push(r)) : Promise.resolve();
  }
  open(): void {
    this.release();
  }
}

/** A deploy of v1 over a host serving LIVE, its step `gate` held open; `later`: the connections opened after (the release's). */
function harness(gate: string, respond: Responder = () => undefined, lock = opsLines(STATE, 'lock acquired', 'provisioned yes', `current ${LIVE}`, 'slot green')) {
  const answer: Responder = (step) => (step.name === 'lock' ? { stdout: lock } : respond(step));
  const first = new GatedRemote(gate, answer);
  const later: RecordingRemote[] = [];
  const reporter = new MemoryReporter();
  let n = 0;
  const ctx: OpsContext = {
    root,
    reporter,
    processEnv: { PATH: process.env.PATH },
    connector: async () => {
      if (n++ === 0) return first;
      const r = new RecordingRemote('web1', 'deploy', 'sample', answer);
      later.push(r);
      return r;
    },
  };
  let exited!: (code: number | undefined) => void;
  const exit = new Promise<number | undefined>((r) => (exited = r));
  vi.spyOn(process, 'exit').mockImplementation(((code?: number) => exited(code)) as never);
  return { first, later, ctx, reporter, exit };
}

/** The audit lines (JSON) a recorded unlock step carries for the host to append. */
function auditLines(stdin: string): Record<string, string>[] {
  return [...stdin.matchAll(/'(\{"time":[^']*\})'/g)].map((m) => JSON.parse(m[1]!) as Record<string, string>);
}

/** A deploy given `signal` during its build: the process's exit code and the audit lines its unlock step carries. */
async function deployInterrupted(signal: 'SIGINT' | 'SIGTERM'): Promise<{ exit: number | undefined; lines: Record<string, string>[] }> {
  const h = harness('build');
  void deploy(h.ctx, loadEnvironment('x', root), {}).catch(() => undefined);
  await h.first.entered;
  process.emit(signal, signal);
  h.first.open();
  const exit = await h.exit;
  const unlock = h.later.flatMap((r) => r.runs).find((r) => r.step.name === 'unlock')!;
  return { exit, lines: auditLines(unlock.stdin) };
}

describe('an interrupted deploy, in the audit log and its words', () => {
  it('Ctrl-C during the build: one line, failed, naming the step and where the releases stand, with the ref, sha and release of the run', async () => {
    const { exit, lines } = await deployInterrupted('SIGINT');
    expect(exit).toBe(130);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ operation: 'deploy', result: 'failed', ref: 'v1', sha: v1, previous: LIVE });
    expect(lines[0]!.release).toMatch(new RegExp(`^\\d{8}T\\d{6}Z-${v1.slice(0, 12)}$`));
    expect(lines[0]!.message).toBe(`interrupted by SIGINT during build on web1; ${lines[0]!.release} did not go live, ${LIVE} is still live`);
  });

  it('a SIGTERM (a cancelled workflow, a stopped container) exits 143, a SIGINT 130: 128 + the signal, as a shell says it', async () => {
    const { exit, lines } = await deployInterrupted('SIGTERM');
    expect(exit).toBe(143);
    expect(lines[0]!.message).toMatch(/^interrupted by SIGTERM during build on web1;/);
  });

  it('Ctrl-C during the switch, which is let end and puts the release live: one line, a success that says it was interrupted after the switch (not a failure beside a success)', async () => {
    const h = harness('switch');
    void deploy(h.ctx, loadEnvironment('x', root), {}).catch(() => undefined);
    await h.first.entered;
    process.emit('SIGINT', 'SIGINT');
    h.first.open();
    expect(await h.exit).toBe(130);
    expect(h.first.stepNames()).not.toContain('prune');
    const unlock = h.later.flatMap((r) => r.runs).find((r) => r.step.name === 'unlock')!;
    const lines = auditLines(unlock.stdin);
    expect(lines, unlock.stdin).toHaveLength(1);
    expect(lines[0]).toMatchObject({ operation: 'deploy', result: 'success', ref: 'v1', sha: v1, previous: LIVE });
    expect(lines[0]!.message).toBe(`interrupted by SIGINT during switch on web1, which was let end: ${lines[0]!.release} is live; not done after it: pruning old releases (the next deploy prunes)`);
    expect(h.reporter.lines.join('\n')).toContain(`web1: the switch ended before the stop: ${lines[0]!.release} went live`);
  });

  it('Ctrl-C while queued behind another run (switch.lock_wait): it gives up waiting, says so and whose lock it was, stops nothing of that run', async () => {
    const holder = opsLines(LOCK_KEYS, 'lock held', 'holder operation=deploy', 'holder actor=bob', 'holder since=2026-12-02T16:00:00Z', 'holder run_id=0000000000000000');
    // The release over a new connection: the host finds the lock not this run's (it stops only this run's waiting step).
    const h = harness('lock', (step) => (step.name === 'unlock' ? { stdout: opsLines(LOCK_KEYS, 'stopped 4242', 'lock not_held', 'live_after 20261101T000000Z-aaaaaaaaaaaa') } : step.name === 'lock status' ? { stdout: holder } : undefined));
    void deploy(h.ctx, loadEnvironment('x', root), {}).catch(() => undefined);
    await h.first.entered;
    process.emit('SIGINT', 'SIGINT');
    expect(await h.exit).toBe(130);
    const said = h.reporter.lines.join('\n');
    expect(said).toContain('SIGINT received during lock on web1 (waiting for it, or taking it): giving up');
    expect(said).not.toContain('stopping them, releasing the lock');
    expect(said).not.toContain('stopped what the run had left running');
    expect(said).toContain('web1: gave up waiting for the lock, held by a deploy run by bob, started 2026-12-02T16:00:00Z: this run never held it there, so it stopped nothing of that run\'s and wrote no audit line');
  });
});

describe('a run that meets an error nobody caught (an exception in an event handler, a promise nobody awaited)', () => {
  it('stops as on a signal: its lock released with one failed line naming the error and where the releases stand, exit 1 (not an exit that leaves the lock held)', async () => {
    const h = harness('build', (step) => (step.name === 'unlock' ? { stdout: opsLines(LOCK_KEYS, 'lock released', `live_after ${LIVE}`) } : undefined));
    const run = deploy(h.ctx, loadEnvironment('x', root), {}).catch(() => undefined);
    await h.first.entered;
    expect(stopRunsOnFault(new TypeError('this.channel.write is not a function'))).toBe(true);
    h.first.open();
    expect(await h.exit).toBe(1);
    const unlock = h.later.flatMap((r) => r.runs).find((r) => r.step.name === 'unlock');
    expect(unlock, 'the lock is released over a new connection').toBeDefined();
    const lines = auditLines(unlock!.stdin);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ operation: 'deploy', result: 'failed', ref: 'v1', sha: v1, previous: LIVE });
    expect(lines[0]!.message).toBe(`stopped by internal error: this.channel.write is not a function during build on web1; ${lines[0]!.release} did not go live, ${LIVE} is still live`);
    expect(h.reporter.lines.join('\n')).toContain('internal error: this.channel.write is not a function during build on web1: stopping them, releasing the lock');
    await run;
  });

  it('ops deploy --json: one document, result failed (not interrupted), the error, exit 1', async () => {
    const h = harness('build', (step) => (step.name === 'unlock' ? { stdout: opsLines(LOCK_KEYS, 'lock released', `live_after ${LIVE}`) } : undefined));
    const cli = runOps(['deploy', 'x', '--json'], { root, processEnv: { PATH: process.env.PATH }, connector: h.ctx.connector });
    await h.first.entered;
    stopRunsOnFault(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
    h.first.open();
    expect(await h.exit).toBe(1);
    const doc = JSON.parse((await cli).out) as Record<string, unknown>;
    expect(doc).toMatchObject({ ok: false, result: 'failed', exitCode: 1, operation: 'deploy', previous: LIVE, live: LIVE });
    expect(doc).not.toHaveProperty('signal');
    expect(doc.error).toMatch(/^stopped by the connection was closed by the other end during build on web1/);
  });
});

describe('--json of a run stopped by a signal, or failed in its lock step', () => {
  it('ops deploy --json stopped by SIGTERM during its build: stdout holds one JSON document (result interrupted, the signal, the release attempted, live before and now), exit 143', async () => {
    const h = harness('build', (step) => (step.name === 'unlock' ? { stdout: opsLines(LOCK_KEYS, 'lock released', `live_after ${LIVE}`) } : undefined));
    const cli = runOps(['deploy', 'x', '--json'], { root, processEnv: { PATH: process.env.PATH }, connector: h.ctx.connector });
    await h.first.entered;
    process.emit('SIGTERM', 'SIGTERM');
    h.first.open();
    expect(await h.exit).toBe(143);
    const r = await cli;
    const doc = JSON.parse(r.out) as Record<string, unknown>;
    expect(doc).toMatchObject({ ok: false, result: 'interrupted', signal: 'SIGTERM', exitCode: 143, operation: 'deploy', environment: 'x', ref: 'v1', sha: v1, previous: LIVE, live: LIVE });
    expect(doc.release).toMatch(new RegExp(`^\\d{8}T\\d{6}Z-${v1.slice(0, 12)}$`));
    expect(doc.hosts).toEqual([{ host: 'web1', release: doc.release, previous: LIVE, live: LIVE }]);
    expect(doc.error).toMatch(/^interrupted by SIGTERM during build on web1/);
  });

  it('ops deploy --json whose lock step failed (after reading the state; or refused: another run holds the lock): no release (null: none was chosen, saying so), the one live before when read, else null', async () => {
    const run = async (lock: { stdout: string; code: number; stderr?: string }) => {
      const ctx: OpsContext = { root, reporter: new MemoryReporter(), processEnv: { PATH: process.env.PATH }, connector: async () => new RecordingRemote('web1', 'deploy', 'sample', (step) => (step.name === 'lock' ? lock : undefined)) };
      const r = await runOps(['deploy', 'x', '--json'], { root, processEnv: { PATH: process.env.PATH }, connector: ctx.connector });
      expect(r.code, r.err).toBe(1);
      return JSON.parse(r.out) as Record<string, unknown>;
    };
    const cut = await run({ stdout: opsLines(STATE, 'lock acquired', 'provisioned yes', `current ${LIVE}`, 'slot green'), code: 124 });
    // Its id is chosen under the lock, from every host's releases: a release that never existed is not named.
    expect(cut).toMatchObject({ ok: false, environment: 'x', ref: 'v1', sha: v1, release: null, releaseNote: expect.stringMatching(/^no release was made: the deploy stopped before it chose one/), previous: LIVE, live: LIVE });
    expect(cut.hosts).toEqual([{ host: 'web1', release: null, previous: LIVE, live: LIVE }]);
    const busy = await run({ stdout: opsLines(LOCK_KEYS, 'lock held', 'holder operation=deploy', 'holder actor=bob', 'holder since=2026-12-02T16:00:00Z'), code: LOCK_BUSY_EXIT });
    expect(busy).toMatchObject({ ok: false, environment: 'x', release: null, releaseNote: expect.stringMatching(/^no release was made/), previous: null, live: null, reason: expect.stringMatching(/is locked on web1 by a deploy run by bob/) });
    expect(busy.hosts).toEqual([{ host: 'web1', release: null, previous: null, live: null }]);
    // A first deploy (nothing live, as the lock step read) that failed, in its lock step or after: none was live
    // before, nor is now ('', known; not null).
    const first = await run({ stdout: opsLines(STATE, 'lock acquired', 'provisioned yes', 'current ', 'slot green'), code: 124 });
    expect(first).toMatchObject({ previous: '', live: '' });
    const h = harness('never', (step) => (step.name === 'build' ? { code: 2, stderr: 'SyntaxError' } : undefined), opsLines(STATE, 'lock acquired', 'provisioned yes', 'current ', 'slot green'));
    const e = await deploy(h.ctx, loadEnvironment('x', root), {}).catch((x: unknown) => x);
    expect(failedResult(e)).toMatchObject({ previous: '', live: '', hosts: [{ host: 'web1', previous: '', live: '' }] });
  });
});

describe('a deploy whose lock was released by force (ops lock release --force by someone else)', () => {
  it('says so, by whom and what it means, beside the killed step; and audits the run (its unlock wrote nothing: not its lock)', async () => {
    const at = new Date().toISOString();
    // An older forced release (of another run's lock) before it: not this one's.
    const old = auditLine({ time: '2026-01-01T00:00:00.000Z', environment: 'x', operation: 'lock release', result: 'success', actor: 'carol', message: 'removed stale lock of a deploy run by dave' });
    const broke = auditLine({ time: at, environment: 'x', operation: 'lock release', result: 'success', actor: 'bob', message: 'removed held lock of a deploy run by alice, started 2026-12-02T16:04:00Z; stopped what its run left running (processes 77); 20261101T000000Z-aaaaaaaaaaaa is live' });
    const h = harness('never', (step) =>
      step.name === 'build'
        ? { code: 143, stderr: 'Terminated' }
        : step.name === 'unlock'
          ? { stdout: opsLines(LOCK_KEYS, 'lock not_held') }
          : step.name === 'read audit log'
            ? { stdout: opsLines(AUDIT_KEYS, `entry ${old}`, `entry ${broke}`) }
            : undefined,
    );
    const e = (await deploy(h.ctx, loadEnvironment('x', root), {}).catch((x: unknown) => x)) as Error;
    expect(e.message).toMatch(/^step "build" on web1 /);
    expect(e.message).toContain(`web1: this run's lock was released by force by bob at ${at} (ops lock release --force: "removed held lock of a deploy run by alice`);
    expect(e.message).toContain('that stopped the run\'s steps there (the failure above); the run was not finished there, its release did not go live, and another run may hold the lock now');
    expect(e.message).not.toContain('carol');
    const audit = h.first.runs.filter((r) => r.step.name === 'audit');
    expect(audit).toHaveLength(1);
    expect(audit[0]!.stdin).toMatch(/"result":"failed".*its lock released by force by bob at /);
    expect(audit[0]!.stdin).toContain(`"sha":"${v1}"`);
  });

  it('a run whose lock is still its own at the end: no audit read, no extra line; its failure carries the release attempted, what is live and why (--json)', async () => {
    const h = harness('never', (step) => (step.name === 'build' ? { code: 2, stderr: 'SyntaxError' } : step.name === 'unlock' ? { stdout: opsLines(LOCK_KEYS, 'lock released') } : undefined));
    const e = (await deploy(h.ctx, loadEnvironment('x', root), {}).catch((x: unknown) => x)) as Error;
    const result = failedResult(e)!;
    expect(result).toMatchObject({ environment: 'x', ref: 'v1', sha: v1, previous: LIVE, live: LIVE, noop: false, dryRun: false });
    expect(result.release).toMatch(new RegExp(`^\\d{8}T\\d{6}Z-${v1.slice(0, 12)}$`));
    expect(result.reason).toMatch(/^step "build" on web1 failed with exit code 2/);
    expect(result.hosts).toEqual([{ host: 'web1', release: result.release, previous: LIVE, live: LIVE }]);
    expect(e.message).not.toContain('by force');
    expect(h.first.stepNames()).not.toContain('read audit log');
    expect(h.first.stepNames()).not.toContain('audit');
  });
});
