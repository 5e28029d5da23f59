// Runs an operation under the environment's lock on every host: all locks or none, released on success,
// failure and interruption (SIGINT/SIGTERM, e.g. a cancelled workflow). The release is by run id, so when
// the connection that took a lock broke, a new connection releases it; a lock that truly cannot be released
// makes the run fail, naming the host and the command that releases it. A run killed outright (SIGKILL)
// leaves a lock whose holder (its connection's sshd process) died with it: the next run reports it as stale.
// To save round trips, the lock step also runs the operation's first look at the host (`inspect`), and may
// end the run there at once (`finish`: a no-op deploy); the unlock step writes the run's audit lines, and an
// operation's last step on a host may carry the unlock itself (`closing`). Every step and upload of the run on a host
// while it holds the lock there is fenced by it (FencedRemote): a run paused while its lock was released by force changes
// nothing more when it resumes.
import { randomBytes } from 'node:crypto';
import { runnerNow, type OpsContext } from '../context.ts';
import { awaitTerminal, handleFaults, handleSignals, refuseSuspend, signalExit, stopHandlingFaults, stopHandlingSignals, type RunFault } from '../signals.ts';
import type { Session } from './hosts.ts';
import type { Host } from '../config/environment.ts';
import { auditReason, DISK_FULL, errorParts, failedResult, messageLine, NotStartedError, STEP_CUT, oneLine, OpsError, StepError, sudoHint, tail, ConnectionLostError, withResult } from '../errors.ts';
import { runInfo } from '../runinfo.ts';
import { AUDIT_KEYS, appendAudit, auditLine, auditTemplate, parseAuditLine, readAudit, type AuditEntry } from '../steps/audit.ts';
import { markRelease } from '../steps/release.ts';
import { LOCK_BUSY_EXIT, LOCK_KEYS, LOCK_OWN_EXIT, LOCK_PREMISE_EXIT, LOCK_QUEUED_EXIT, LOCK_UNPROVISIONED_EXIT, HOLDER_SILENT_SECONDS, acquireLock, describeHolder, fenceStep, lockGuard, lockLostLine, lockStatus, parseLock, releaseLock, settleLostRun, silentHolder, staleReason, stoppedSlotLine, unlockScript, type LockRequest } from '../steps/lock.ts';
import { failureDetail, failureVerdict, reported, reportedAll, type Remote, type RunOptions, type Step, type StepResult, type UploadOptions } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { flushOutput, holdOutputWhileInBackground, outputNeverBlocks } from '../report.ts';
import { provisionedIn } from '../steps/system.ts';
import { diskFullError } from './host-run.ts';
import { unprovisionedError } from './host-state.ts';
import type { Target } from '../target.ts';

export class LockError extends OpsError {}

/**
 * A step of the run changed nothing on `host`: the run's lock there was no longer its own (run_lock_guard, core/steps/sh/
 * host-lock.sh: released by force, removed, or another run's now). `why` says which, `live` what `current` named then
 * ('' when nothing). Nothing of the run changes that host after it (FencedRemote refuses the steps that follow).
 */
export class LockLostError extends OpsError {
  constructor(
    readonly host: string,
    readonly step: string,
    readonly why: string,
    readonly live: string,
    /** A step of the run had failed on that host before (stopped by the forced release while it ran): not a paused run's. */
    readonly afterFailure = false,
  ) {
    super(`step "${step}" on ${host} changed nothing: this run's lock there is no longer its own (${why})`);
  }
}

/** run_lock_guard's line (lockLostLine) in its parts: why the lock is not the run's, and what `current` named. */
function parseLost(host: string, step: string, line: string, afterFailure: boolean): LockLostError {
  const m = /^(.*); this step changed nothing \(current names (.*)\)$/.exec(line);
  const live = m?.[2] ?? '';
  return new LockLostError(host, step, m?.[1] ?? line, live === 'nothing' ? '' : live, afterFailure);
}

/**
 * A host's connection while the run holds its lock there (`holds`): every step it runs is fenced by the lock (fenceStep:
 * run_lock_guard first, and again before a switch flips nginx and `current`), every upload too (lockGuard first in its
 * own script), so a run that was paused (a frozen
 * runner, a Ctrl-Z'd CLI) while someone released its lock by force changes nothing when it resumes. The first step
 * that finds the lock gone throws LockLostError (also for `allowFailure`: nothing of the run may go on there) and
 * `lost` is told; every later step or upload on it is refused with the same error without running. Steps once the lock
 * is let go (the run ended there) and withLock's own (unlock, audit) run as they are (`inner`).
 */
class FencedRemote implements Remote {
  private lostError?: LockLostError;
  /** A fenced step failed before (a step the forced release stopped while it ran fails so). */
  private failed = false;
  constructor(
    readonly inner: Remote,
    private readonly env: Target,
    private readonly holds: () => boolean,
    private readonly lost: (e: LockLostError) => void,
  ) {}
  get name(): string {
    return this.inner.name;
  }
  get login(): string {
    return this.inner.login;
  }
  get connection(): string {
    return this.inner.connection;
  }
  async run(step: Step, options: RunOptions = {}): Promise<StepResult> {
    if (!this.holds()) return this.inner.run(step, options);
    if (this.lostError) throw this.lostError;
    let result: StepResult;
    try {
      result = await this.inner.run(fenceStep(this.env, step), options);
    } catch (e) {
      if (e instanceof StepError) this.check(step.name, e.exitCode, e.stderrTail);
      this.failed = true;
      throw e;
    }
    this.check(step.name, result.code, result.stderr);
    if (result.code !== 0) this.failed = true;
    return result;
  }
  /** Throws (once told `lost`) when the step ended as run_lock_guard ends it. */
  private check(step: string, code: number | null, stderr: string): void {
    const line = lockLostLine(code, stderr);
    if (line === undefined) return;
    this.lostError = parseLost(this.name, step, line, this.failed);
    this.lost(this.lostError);
    throw this.lostError;
  }
  /**
   * An upload fenced as a step is (lockGuard first in its own script: no round trip of its own), so that a resumed run
   * whose lock was released by force writes nothing (its release's files, its build, its .env) where the lock is no
   * longer its own.
   */
  async upload(content: string | Buffer, remotePath: string, options: UploadOptions = {}): Promise<void> {
    if (!this.holds()) return this.inner.upload(content, remotePath, options);
    if (this.lostError) throw this.lostError;
    try {
      await this.inner.upload(content, remotePath, { ...options, guard: lockGuard(this.env) });
    } catch (e) {
      if (e instanceof StepError) this.check(e.step, e.exitCode, e.stderrTail);
      this.failed = true;
      throw e;
    }
  }
  inFlight(): string[] {
    return this.inner.inFlight();
  }
  started(): string[] {
    return this.inner.started();
  }
  whenIdle(): Promise<void> {
    return this.inner.whenIdle();
  }
  halt(reason: string): void {
    this.inner.halt(reason);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A session's connection to a host without the run's fence: withLock's own steps (unlock, audit, lock status). */
function unfenced(remote: Remote): Remote {
  return remote instanceof FencedRemote ? remote.inner : remote;
}

export interface LockedRun {
  /** Result of the `inspect` step run right after each host's lock was taken. */
  inspected: Map<string, StepResult>;
  /** Queue an audit entry for a host; written when its lock is released. */
  audit(host: string, entry: AuditEntryFields): void;
  /** True when the run already ended on this host (its audit written, its lock released) in a step of its own. */
  finished(host: string): boolean;
  /**
   * Shell for the end of a run's last step on a host: append the queued audit lines and `entry`, release the
   * lock. `vars`: entry fields whose values come from shell variables of the step (auditTemplate). Pass the
   * step's result to `closed` afterwards; if the step failed before it, the lock is released as usual, with a
   * failed entry the operation queues (`audit`), which replaces `entry` (queued in case the answer is lost;
   * not when it has `vars`: the operation then audits a failure itself).
   */
  closing(host: string, entry: AuditEntryFields, vars?: Partial<Record<keyof AuditEntry, string>>): string;
  /** Record that `result` (of a step ending with `closing`) released the lock on `host`. */
  closed(host: string, result: StepResult): void;
  /**
   * What the run is about on `host` (ref, sha, release, previous), as far as it is known: the fields of the audit
   * line an interruption writes there (merged over LockOptions.fields).
   */
  about(host: string, fields: Partial<AuditEntryFields>): void;
  /**
   * The operation's switch on `host` ended with its release live (`current` names it): an interruption that let that
   * switch end then audits the run there as a success, saying what was left undone (`undone`), not as a failure.
   */
  wentLive(host: string, undone: string): void;
  /**
   * The run may have made `release` on `host` from now on (its directory, not live): should the run then find its lock
   * there taken away (lockTakenAway), the release is marked failed, saying why, as a failed run's is (`ops releases`).
   */
  made(host: string, release: string): void;
  /**
   * The run's connection to `host` was lost during a step only the host saw end (a switch goes on without its runner):
   * over a new connection, what the lost one still runs is stopped (a switch let end first) and a slot its start filled
   * put back (settleLostRun); returns the release `current` names then ('' none), or undefined when the host could not
   * be asked (or the run is stopping: its release asks). The lock stays the run's, released as usual.
   */
  settleLost(host: string): Promise<string | undefined>;
}

export type AuditEntryFields = Omit<AuditEntry, 'time' | 'environment' | 'operation' | 'actor' | 'run'> & Partial<AuditEntry>;

export interface LockOptions {
  /** The operation's first look at each host, run in the lock step as soon as the lock is taken. */
  inspect?: Step;
  /**
   * Shell run after `inspect` in the same step: it may end the run on the host at once with the shell `unlock`
   * returns (the audit entry written, the lock released), e.g. a deploy that finds its sha live and healthy.
   * `vars`: entry fields whose values come from shell variables of the step (auditTemplate); without `entry`, the
   * lock is released with no audit line (a run that refused, or had nothing to do).
   */
  finish?: (unlock: (entry?: AuditEntryFields, vars?: Partial<Record<keyof AuditEntry, string>>) => string) => string;
  /** Seconds `finish` may take on top of the lock step's own time (it may start and switch a release). */
  finishSeconds?: number;
  /** Fields known before the lock (a deploy's ref and sha): in the audit line of an interruption (LockedRun.about). */
  fields?: Partial<AuditEntryFields>;
  /**
   * What a lock step's answer says the run is about on its host (the release live before, as `inspect` read it; a
   * one-host rollback's choice): for --json of a run that fails or is interrupted, under what the operation says
   * (LockedRun.about). A lock step that took the lock and then failed (its `inspect` or `finish` part, its answer
   * partial) has it merged into LockedRun.about, for its audit line too.
   */
  lockRead?: (result: StepResult) => Partial<AuditEntryFields>;
  /**
   * The operation needs hosts provisioned for the environment (deploy, rollback, initdata, certs --renew): each lock
   * step looks for provision's marker before it makes anything (LockRequest.provisioned), and the run is refused,
   * every host without it named in one error (unprovisionedError: `nothing`, what the operation did not do; `then`,
   * what to run once provisioned), before `inspect` or `fn` ran anywhere; the locks it took elsewhere are let go,
   * each with a failed audit line saying why.
   */
  unprovisioned?: { nothing: string; then: string };
  /**
   * The operation acts on the release live when it was asked (a rollback goes back from it): a run that queued for a
   * lock (switch.lock_wait) and finds another release live once it has it is refused there, nothing done
   * (LockRequest.premise: LOCK_PREMISE_EXIT), the locks it took let go. `'report'`: not refused; the lock step's
   * answer (LockedRun.inspected) reports `premise_changed` (`<then> <now>`) on a host where it changed, for the
   * operation to decide (a deploy: overtakenError).
   */
  premise?: boolean | 'report';
}

/** A lock step that found its host never provisioned (LOCK_UNPROVISIONED_EXIT): nothing taken, nothing made there. */
class Unprovisioned extends Error {
  constructor(readonly host: string) {
    super(`${host} is not provisioned`);
  }
}

/**
 * A lock step of the first, parallel round that found a live run holding the lock (switch.lock_wait: LockRequest.queued,
 * LOCK_QUEUED_EXIT): nothing taken, nothing waited for. Its answer (whom the run would queue behind) and when it was
 * asked serve the wait that follows, host after host in lockOrder (takeLocks).
 */
class Queued extends Error {
  constructor(
    readonly host: string,
    readonly result: StepResult,
    readonly asked: number,
  ) {
    super(`${host}: the lock is held by another run`);
  }
}

/**
 * Take the lock on one host; throws LockError when another run holds it (or left it stale). `queue`: false, a live
 * holder is not waited for, Queued thrown instead; true, it is said, then waited for `request.wait` seconds (none:
 * refused at once); a Queued, the same with that answer of the holder (no look of its own). `notOurs` is
 * called when the step answered without taking it (no release needed there), `tookThenFailed` when it took it and
 * then failed (its `inspect` or `finish`: a one-host rollback's work, stopped by a forced release of the lock too);
 * `redact`: the reporter's, for its error's quote of the step's output.
 */
async function acquire(remote: Remote, env: Target, request: LockRequest, queue: boolean | Queued, inspect: Step | undefined, finish: string | undefined, finishSeconds: number, notOurs: () => void, took: (result: StepResult) => void, tookThenFailed: (result: StepResult) => void, redact: (text: string) => string, say: (line: string) => void, hostOf: (connection: string) => string | undefined): Promise<StepResult> {
  const ask = (req: LockRequest) => remote.run(acquireLock(env, req, inspect?.script, finish, finishSeconds), { allowFailure: true });
  // The wait's time counted on the runner's monotonic clock, never its wall clock: an NTP step or `date -s` meanwhile
  // must neither cut it (a run refused at once, "waited 30s") nor stretch it by hours, as the host counts its part since boot.
  const asked = queue instanceof Queued ? queue.asked : performance.now();
  // A live holder is said at once, nothing waited for (the lock step's deadline some seconds away, never passed when
  // it answers, else it would refuse where the run may queue: takeLocks); before a wait, whom the run queues behind
  // (and when its lock reads stale should its connection stay silent), then the lock taken again with what is left of
  // the wait.
  let result = queue instanceof Queued ? queue.result : await ask({ ...request, wait: Math.max(request.wait, CONTENDED_WAIT_SECONDS), queued: true });
  const wait = Math.max(0, request.wait - Math.floor((performance.now() - asked) / 1000));
  if (result.code === LOCK_QUEUED_EXIT && queue && wait > 0) {
    const holder = parseLock(result);
    const silent = silentHolder(holder);
    // Without switch.lock_wait, only a run racing another for the hosts' locks waits (takeLocks: CONTENDED_WAIT_SECONDS).
    const why = env.config.switch.lock_wait ? 'switch.lock_wait' : "another run is taking or letting go of this environment's locks at this moment: the run queues for them in the one order of every run, though switch.lock_wait is 0";
    say(`${remote.name}: queued behind ${describeHolder(holder.holder)}, waiting up to ${wait}s (${why})${silent ? `; ${silent}, which then refuses this run at once (ops lock release ${env.name} frees it)` : ''}`);
    // What it saw live there when queued is what it acts on (LockRequest.premise), whatever goes live meanwhile.
    result = await ask({ ...request, wait, ...(request.premise && request.live === undefined && { live: reported(result, LOCK_KEYS.live_seen) }) });
  }
  // Ours (taken, or taken and let go by `finish`): when, as the lock records it.
  if (['acquired', 'released'].includes(parseLock(result).state) && parseLock(result).holder.since) took(result);
  if (result.code === 0) return result;
  if (parseLock(result).state !== 'acquired') notOurs();
  else tookThenFailed(result);
  if (result.code === LOCK_OWN_EXIT) {
    const other = hostOf(parseLock(result).holder.connection ?? '');
    throw new LockError(
      `${remote.name} is the machine this run already locked through ${other ?? 'another of its hosts'}: environment ${env.name} lists one machine twice, under two addresses (${remote.name} would run the app twice on the same ports)`,
      `keep one of them in environments/${env.name}/environment.yml hosts`,
    );
  }
  if (result.code === LOCK_PREMISE_EXIT) {
    const [then, now] = (reported(result, LOCK_KEYS.premise_changed) ?? '- -').split(' ').map((id) => (id === '-' ? 'no release' : id));
    throw new LockError(
      `${remote.name}: ${then} was live when this ${request.operation} was asked, and ${now} is live now that it has the lock (a run queued ahead of it went first): nothing was done, as it would act on ${now}, not on what you asked about`,
      `see what is live (ops status ${env.name}), then run it again if it is still what you want`,
    );
  }
  if (request.provisioned && result.code === LOCK_UNPROVISIONED_EXIT && provisionedIn(result) === false) throw new Unprovisioned(remote.name);
  // Not to be waited for (`queue` false), or no wait left: the holder below.
  if (result.code === LOCK_QUEUED_EXIT && !queue) throw new Queued(remote.name, result, asked);
  if (result.code !== LOCK_BUSY_EXIT && result.code !== LOCK_QUEUED_EXIT) {
    const e = new StepError(inspect ? `lock, ${inspect.name}` : 'lock', remote.name, result.code, failureDetail(result.stdout, result.stderr, redact), undefined, sudoHint(result.stderr, remote.login, remote.name), undefined, failureVerdict(result.stdout, redact));
    // A full disk (the lock's details not written: nothing taken) said as such, with what to free, as any step's is;
    // the look at the disk only when the step said ENOSPC.
    throw DISK_FULL.test(result.stderr) ? await diskFullError(remote, env, e, request.operation) : e;
  }
  const lock = parseLock(result);
  if (lock.state === 'stale')
    throw new LockError(
      `environment ${env.name} has a stale lock on ${remote.name}, left by ${describeHolder(lock.holder)}, which is no longer connected${staleReason(lock) || (lock.holder.holder_pid ? ` (the SSH server process of its connection there, ${lock.holder.holder_pid}, has ended: its runner was killed outright or lost its connection)` : '')}`,
      `release it: ops lock release ${env.name} (it first stops what that run left running on the host, e.g. a half-done migration)`,
    );
  // A holder gone silent (its runner lost with its network) frees the lock once it reads stale: when, said.
  const silent = silentHolder(lock);
  throw new LockError(
    `environment ${env.name} is locked on ${remote.name} by ${describeHolder(lock.holder)}${silent ? `; ${silent}, when ops lock release ${env.name} frees it` : ''}`,
    // How to free it too: a run stuck while connected (a hung step) holds it until someone stops it.
    `${env.config.switch.lock_wait ? `waited ${env.config.switch.lock_wait}s; try again when it is done` : 'wait until it is done (or set switch.lock_wait to queue behind it)'}; if that run is stuck, ops lock release ${env.name} --force stops what it runs on the hosts and frees the lock`,
  );
}

/**
 * The order a run takes the locks of its hosts in: by the host's address and port (the machine, whatever a runner's
 * configuration names it), the name last. One order for every run of the environment: two runs each holding the
 * lock of a host the other waits for (switch.lock_wait) would both wait it out and fail, a deadlock. Pure.
 */
export function lockOrder<H extends Pick<Host, 'name' | 'address' | 'port'>>(hosts: H[]): H[] {
  const key = (h: H) => [h.address.toLowerCase(), String(h.port).padStart(5, '0'), h.name];
  return [...hosts].sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    const i = x.findIndex((v, n) => v !== y[n]);
    return i < 0 ? 0 : x[i]! < y[i]! ? -1 : 1;
  });
}

/**
 * `take` on each remote, one after the other in the order given (lockOrder), as Promise.allSettled reports: a run
 * waits for a host's lock only while holding the locks of hosts before it, never one after it, so no two runs wait
 * for each other. A failure stops it (the hosts after it are not tried: rejected with the same reason), except a host
 * never provisioned (its lock step took nothing and made nothing, ending at once): the others are still looked at, so
 * that one refusal names every such host.
 */
async function takeInOrder(remotes: Remote[], take: (r: Remote) => Promise<void>): Promise<PromiseSettledResult<void>[]> {
  const settled: PromiseSettledResult<void>[] = [];
  let stop: unknown;
  let stopped = false;
  for (const r of remotes) {
    if (stopped) {
      settled.push({ status: 'rejected', reason: stop });
      continue;
    }
    try {
      await take(r);
      settled.push({ status: 'fulfilled', value: undefined });
    } catch (e) {
      settled.push({ status: 'rejected', reason: e });
      if (!(e instanceof Unprovisioned)) [stop, stopped] = [e, true];
    }
  }
  return settled;
}

/**
 * Seconds a run without switch.lock_wait queues for a host's lock when it took others in the same round (takeLocks):
 * the other run's lock steps (with their `inspect`), its refusal and its let go, a few round trips.
 */
export const CONTENDED_WAIT_SECONDS = 10;

/**
 * The locks of a run's hosts (`remotes` in lockOrder), as Promise.allSettled reports: first taken on every host at
 * once, no live holder waited for (`take(r, false)`): one round trip for a run nobody else's holds up. Where a live
 * run holds one (switch.lock_wait: Queued), the locks this run took after that host in lockOrder are let go (`letGo`:
 * false where its lock step let go itself, `finish`, nothing to take again), those before it kept, and the rest taken
 * host after host (takeInOrder, waiting for a holder what is left of `lockWait` seconds counted from the queued host's
 * first answer: one wait for the whole run): the run waits only while holding an
 * order-prefix, so no two runs wait for each other. Without switch.lock_wait (`lockWait` 0) the queued host refuses
 * the run at once, unless this run took a lock in the same round: another run is then taking its locks at the same
 * moment (or letting go of them as it ends), and the wait is CONTENDED_WAIT_SECONDS, else each of two runs started
 * together would be refused by the lock the other holds only until its own refusal lets go of it. Any other failure
 * settles as it is, a queued host rejected with the first such reason (nothing waited for: the run fails anyway), as
 * is a lock this run could not let go (`letGo` throws).
 */
async function takeLocks(remotes: Remote[], take: (r: Remote, queue: boolean | Queued, wait?: number) => Promise<void>, letGo: (r: Remote) => Promise<boolean>, lockWait: number): Promise<PromiseSettledResult<void>[]> {
  const first = await Promise.allSettled(remotes.map((r) => take(r, false)));
  const queued = (s: PromiseSettledResult<void>): s is PromiseRejectedResult => s.status === 'rejected' && s.reason instanceof Queued;
  const failedWith = (reason: unknown) => first.map((s) => (queued(s) ? { status: 'rejected' as const, reason } : s));
  const failure = first.find((s): s is PromiseRejectedResult => s.status === 'rejected' && !queued(s));
  if (failure) return failedWith(failure.reason);
  const q = first.findIndex(queued);
  if (q < 0) return first;
  const after = remotes.map((r, i) => ({ r, i })).filter(({ i }) => i > q && first[i]!.status === 'fulfilled');
  const released = await Promise.allSettled(after.map(async ({ r, i }) => ((await letGo(r)) ? [i] : [])));
  const stuck = released.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (stuck) return failedWith(stuck.reason);
  // Taken again in order: the queued host first (with the answer it gave: no second look), then those after it.
  const again = new Set([q, ...first.flatMap((s, i) => (queued(s) ? [i] : [])), ...released.flatMap((s) => (s.status === 'fulfilled' ? s.value : []))]);
  const order = [...again].sort((a, b) => a - b);
  const wait = lockWait || (first.some((s) => s.status === 'fulfilled') ? CONTENDED_WAIT_SECONDS : 0);
  // One wait for the run, not one per host: counted from the queued host's first answer (on the monotonic clock), each
  // later host gets what is left of it (0: a live holder there refuses the run at once), so N hosts held by another
  // run never make N times switch.lock_wait. The queued host counts from that answer itself (acquire).
  const queuedAt = ((first[q] as PromiseRejectedResult).reason as Queued).asked;
  const left = () => Math.max(0, wait - Math.floor((performance.now() - queuedAt) / 1000));
  const rest = await takeInOrder(
    order.map((i) => remotes[i]!),
    (r) => (r === remotes[q] ? take(r, (first[q] as PromiseRejectedResult).reason, wait) : take(r, true, left())),
  );
  return first.map((s, i) => (again.has(i) ? rest[order.indexOf(i)]! : s));
}

/** A full audit entry of this run (time: the runner's now). */
function auditEntry(env: Target, request: LockRequest, entry: AuditEntryFields, now: Date): AuditEntry {
  return { time: now.toISOString(), environment: env.name, operation: request.operation, actor: request.actor, run: request.runUrl || undefined, ...entry } as AuditEntry;
}


/** Steps an interruption lets end rather than stopping them (see onSignal in withLock): the switch. */
const UNINTERRUPTIBLE = new Set(['switch']);

/** The error that says a lock stays behind: which hosts, why, and the command that releases it. */
function lockLeft(env: Target, failures: string[], cause?: unknown): OpsError {
  const left = `the lock of ${env.name} could not be released on ${failures.length === 1 ? 'host ' : 'hosts:\n  '}${failures.join('\n  ')}`;
  const release = `release it once this run has ended: ops lock release ${env.name} (it first stops what the run left running there)`;
  if (cause === undefined) return new LockError(`the operation itself succeeded, but ${left}`, release);
  const message = cause instanceof Error ? cause.message : String(cause);
  const hint = cause instanceof OpsError && cause.hint ? `${cause.hint}; then ${release}` : release;
  return new LockError(`${message}\n${left}`, hint);
}

/** A host's part of a failed or interrupted run's --json document: its release attempted, the one live before and now. */
interface RunHost {
  host: string;
  release?: string | null;
  previous?: string | null;
  live?: string | null;
}

/**
 * The release fields of a run that did not finish, complete (`release`, `previous`, `live`, each host's in `hosts`):
 * what withLock knew (`known`: failedResult's), else `defaults` (the release the operation attempted: a rollback's --to;
 * a deploy's id once chosen under the lock, never one it would have made on hosts it did not reach; the live one as the
 * operation read it), else null: not known. A null
 * `release` comes with `releaseNote` (`none`: why no release was chosen). '' stays '' (known: none was live). Pure.
 */
export function runRecord(known: Record<string, unknown> | undefined, hostNames: string[], defaults: { release?: string; previous?: string; none: string }): Record<string, unknown> {
  const given = (known?.hosts as RunHost[] | undefined) ?? hostNames.map((host) => ({ host }));
  const complete = (h: RunHost) => {
    const release = h.release || defaults.release || null;
    const previous = h.previous ?? defaults.previous ?? null;
    // Live now: what withLock saw (a switch that put its release live, what a lost lock's step read), else the one live before.
    const live = h.live ?? previous;
    return { release, previous, live };
  };
  const hosts = given.map((h) => ({ host: h.host, ...complete(h) }));
  const top = complete({ host: '', ...(known && { release: known.release as string | undefined, previous: known.previous as string | undefined, live: known.live as string | undefined }) });
  return { ...top, ...(top.release === null && { releaseNote: defaults.none }), hosts };
}

/**
 * `e` (a run's failure) with its complete release fields for --json (runRecord, over what withLock attached) and the
 * operation's own `fields` (environment, url...) and `reason` (auditReason: `redact` masks the run's secrets). Returns `e`.
 */
export function failedRun<E>(e: E, env: Target, fields: Record<string, unknown>, defaults: { release?: string; previous?: string; none: string }, redact: (text: string) => string): E {
  const record = runRecord(failedResult(e), env.hosts.map((h) => h.name), defaults);
  return withResult(e, { ...fields, ...record, reason: failedResult(e)?.reason ?? auditReason(e, redact) }, true);
}

/**
 * Run `fn` holding the environment's lock on every host of `session` (takeLocks: taken on all hosts at once; where
 * another run holds one, host after host in lockOrder, the one order of every run, so that two runs never wait for
 * each other; a holder is waited for switch.lock_wait seconds, or CONTENDED_WAIT_SECONDS without it by a run racing another for the hosts' locks), then release it whatever happened, writing the run's
 * audit line (unless the run's last step on a host already did both: `LockedRun.closing`, or `options.finish` in the lock step itself).
 * `options.inspect` runs in the lock's own step (its result is in LockedRun). While the run holds a host's lock, every
 * step `fn` runs there (through the session) is fenced by it (FencedRemote, run_lock_guard): one that finds the lock
 * no longer the run's changes nothing and throws LockLostError, and no later step runs there; the run then fails
 * saying who released it by force and what is live, and audits a failure. A run that fails or is refused (another
 * run's lock on one of its hosts) leaves one failed line on each host whose lock it held where the operation queued
 * none, saying why (auditReason). SIGINT/SIGTERM/SIGHUP release the lock, tell ctx.interrupted what the run had got to (--json's document), and exit 128 + the signal's number (signalExit: 130, 143, 129);
 * an error nobody caught while the run holds locks (core/errors.ts onUncaught, handleFaults) stops it the same way, "stopped by" that error, and exits 1.
 * @returns what `fn` returns. @throws OpsError naming the holder when a host is locked; `fn`'s error (with
 * the hosts whose lock could not be released, and `ops lock release`) otherwise. Leaves no lock of this run.
 */
export async function withLock<T>(ctx: OpsContext, session: Session, operation: string, fn: (run: LockedRun) => Promise<T>, options: LockOptions = {}): Promise<T> {
  const env = session.env;
  const info = runInfo(ctx.processEnv);
  const request: LockRequest = { operation, actor: info.actor, runUrl: info.runUrl, runId: randomBytes(8).toString('hex'), wait: env.config.switch.lock_wait, ...(options.unprovisioned && { provisioned: true }), ...(options.premise && { premise: options.premise }) };
  // Hosts where the lock may be ours: taken, or its step did not answer. Released by run id whatever happened.
  const mine = new Set<string>();
  const pending = new Map<string, string[]>();
  const inspected = new Map<string, StepResult>();
  const finished = new Set<string>();
  // What the run is about on each host (the interruption's audit fields), and the hosts its switch put live on.
  const about = new Map<string, Partial<AuditEntryFields>>();
  // What each lock step's answer said the run is about there (LockOptions.lockRead): under `about`, for --json.
  const read = new Map<string, Partial<AuditEntryFields>>();
  const wentLive = new Map<string, string>();
  // Per host, the line `closing` queued in case its step never gets to the unlock: a later entry replaces it.
  const closingLines = new Map<string, string>();
  // Per host, the time of the entry `closing` put in its step (the run's own line, if that step got to write it).
  const closingTimes = new Map<string, string>();
  // Hosts where a release of this run found the lock not its own (never taken: stopped while queued; or taken
  // from it: `ops lock release --force`): no audit line was written there, nothing of the holder's stopped.
  const notHeld = new Set<string>();
  const notHeldSaid = new Map<string, string>();
  // Hosts where a step of the run found the lock no longer its own (run_lock_guard) and changed nothing: nothing of the
  // run changed them after it (FencedRemote).
  const lost = new Map<string, LockLostError>();
  // Hosts whose lock step took the lock, then failed (its inspect or finish part): the run held the lock there.
  const tookThenFailed = new Set<string>();
  // Per host, when its lock step took the lock (the host's clock, as the lock records it).
  const takenAt = new Map<string, string>();
  // Per host, the release the run may have made there (LockedRun.made).
  const made = new Map<string, string>();

  /**
   * Release on one host: on its connection, else (or `fresh`: after a signal, a step may still run on it) on
   * a new one, which first stops what the old connection left running. Returns why it failed, or undefined.
   */
  /** What `current` names on each host once a release after an interruption stopped what ran there (LOCK_KEYS.live_after). */
  const liveAfter = new Map<string, string>();
  const releaseOn = async (host: string, fresh = false): Promise<string | undefined> => {
    const old = session.remote(host).connection;
    let why = '';
    for (const again of fresh ? [true] : [false, true]) {
      try {
        const remote = again ? await session.reconnect(host) : unfenced(session.remote(host));
        const r = await remote.run(releaseLock(env, request.runId, pending.get(host) ?? [], again ? [old] : []), { allowFailure: true });
        if (r.code === 0) {
          const audit = reported(r, LOCK_KEYS.audit_failed);
          if (audit !== undefined) ctx.reporter.warn(`${host}: the audit log could not be written (${audit.trim() || 'no reason given'})`);
          // Not our lock: what was stopped was this run's own step (waiting for the lock), nothing of the holder's.
          if (parseLock(r).state === 'not_held') notHeld.add(host);
          // After a signal, said once the release ended; read now, while the session is open (a run whose lock step
          // failed closes it as soon as the release is done).
          if (fresh && notHeld.has(host)) notHeldSaid.set(host, await notHeldLine(host));
          const stopped = reported(r, LOCK_KEYS.stopped);
          if (stopped && !notHeld.has(host)) ctx.reporter.warn(`${host}: stopped what the run had left running there (processes ${stopped.trim()})`);
          const slot = reported(r, LOCK_KEYS.stopped_slot);
          if (slot) ctx.reporter.warn(`${host}: ${stoppedSlotLine(slot, reported(r, LOCK_KEYS.previous_back), operation)}`);
          const live = reported(r, LOCK_KEYS.live_after);
          if (live !== undefined) liveAfter.set(host, live.trim());
          return undefined;
        }
        why = `the unlock step failed with exit code ${r.code}${r.stderr.trim() ? `: ${oneLine(tail(r.stderr, 1), 200, (t) => ctx.reporter.redact(t))}` : ''}`;
      } catch (e) {
        why = messageLine(e);
      }
      if (!again) ctx.reporter.warn(`${host}: could not release the lock (${why}); trying again over a new connection`);
    }
    return `${host} (${why})`;
  };
  /** The last lines of a host's audit log ([] when it cannot be read). */
  const auditTail = async (host: string): Promise<AuditEntry[]> => {
    const r = await unfenced(session.remote(host)).run(readAudit(env, 50), { allowFailure: true }).catch(() => undefined);
    return r ? reportedAll(r, AUDIT_KEYS.entry).map(parseAuditLine) : [];
  };
  /**
   * The last `ops lock release` among audit entries (who broke the lock, when, what it said) naming this run's lock, when
   * the lock step said when it took the lock there (the host's clock, which the breaker's line quotes); else written
   * since this run began (by the runners' clocks, a few minutes' leeway: an older one broke another run's lock). The
   * breaker's time is its own runner's clock: a laptop hours behind this runner must still be found by the first.
   */
  const began = runnerNow(ctx).getTime() - 5 * 60_000;
  const lastBreak = (tail: AuditEntry[], host: string) => {
    const breaks = tail.filter((a) => a.operation === 'lock release');
    // This run's lock as the breaker names it (describeHolder, with the time the lock step took it).
    const since = takenAt.get(host);
    return (since ? breaks.filter((a) => a.message?.includes(`lock of ${describeHolder({ operation, actor: request.actor, since })}`)) : breaks.filter((a) => Date.parse(a.time) >= began)).at(-1);
  };
  /** A forced release of this run's lock on `host` in words, from the breaker's audit line. */
  const brokenBy = (b: AuditEntry | undefined) =>
    b
      ? `released by force by ${b.actor} at ${b.time} (ops lock release --force${b.message ? `: "${b.message}"` : ''})`
      : 'removed by someone else (no ops lock release in the audit log since this run began: removed by hand?)';
  /**
   * A run's failure on hosts where it found its lock gone (`ops lock release --force` by someone, which stops the
   * run's processes there: the failed step's SIGTERM; or, the run paused meanwhile, its next step found it so and
   * changed nothing: `lost`): said in the error, and audited as a failure (the unlock wrote nothing: the lock was not this
   * run's; the audit log is append-only, nothing of the lock touched). `e` otherwise.
   */
  const lockTakenAway = async (e: unknown): Promise<unknown> => {
    const taken = [...new Set([...notHeld, ...lost.keys()])].filter((host) => inspected.has(host) || tookThenFailed.has(host));
    if (!taken.length || !(e instanceof Error)) return e;
    const said: string[] = [];
    // Per host, the forced release in words: the failed step's first line says it when it ran there.
    const byHost = new Map<string, string>();
    for (const host of taken) {
      const tail = await auditTail(host);
      const refused = lost.get(host);
      // The run's last step let go itself (its answer lost with the connection): its line is there; nothing was taken.
      const own = closingTimes.get(host);
      if (!refused && own && tail.some((a) => a.time === own && a.operation === operation && a.actor === request.actor)) continue;
      // The breaker writes its line once its release ended (it stops the run's processes first: up to some seconds).
      let breaker = lastBreak(tail, host);
      for (let i = 0; !breaker && i < 10; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        breaker = lastBreak(await auditTail(host), host);
      }
      const by = brokenBy(breaker);
      byHost.set(host, by);
      const live = refused && (refused.live ? `${refused.live} is live (what current names)` : 'nothing is live there (current names no release)');
      said.push(
        refused && !refused.afterFailure
          ? `${host}: the lock on ${host} was ${by} while this run was paused or held up (its next step there, "${refused.step}", found it so and changed nothing); nothing more was changed there: ${live}`
          : `${host}: this run's lock was ${by} while it ran: that stopped the run's steps there (the failure above); the run was not finished there, its release did not go live, and another run may hold the lock now${refused ? `; nothing more was changed there (its next step, "${refused.step}", found the lock gone): ${live}` : ''}`,
      );
      // Never a success line (the one a last step queued in case its answer were lost: that step did not run), and one
      // line at least: the run stopped there.
      const lines = (pending.get(host) ?? []).filter((l) => !refused || l !== closingLines.get(host));
      const entries = lines.length ? lines.map(parseAuditLine) : [auditEntry(env, request, { ...options.fields, ...about.get(host), result: 'failed', message: refused ? refused.message : 'stopped' }, runnerNow(ctx))];
      for (const entry of entries) {
        const failed = refused && entry.result === 'success' ? { result: 'failed' as const } : {};
        const appended = await unfenced(session.remote(host)).run(appendAudit(env, { ...entry, ...failed, message: `${entry.message ? `${entry.message}: ` : ''}its lock ${by}` })).catch(() => undefined);
        const unwritten = appended && reported(appended, AUDIT_KEYS.append_failed);
        if (unwritten !== undefined) ctx.reporter.warn(`${host}: the audit log could not be written (${unwritten.trim() || 'no reason given'})`);
      }
      // Its release, made and not live: marked failed as a failed run's is (the marker alone, while not live: another
      // run may hold the lock now). Not one its switch put live.
      const release = made.get(host);
      if (release && !wentLive.has(host) && release !== refused?.live) {
        const why = auditReason(`${auditReason(e, (t) => ctx.reporter.redact(t))}: its lock ${by}`);
        await unfenced(session.remote(host)).run(markRelease(env, release, 'failed', why, true)).catch(() => undefined);
      }
    }
    if (!said.length) return e;
    const hint = `see ops status ${env.name} and ops audit ${env.name} for what runs there now, then run again`;
    // The step the forced release stopped (its processes signalled: an exit code of 128 + the signal, or none at all
    // when ssh2 saw the channel close on a signal) says why in its first line, not a bare exit code.
    const by = e instanceof StepError ? byHost.get(e.host) : undefined;
    const message = by && e instanceof StepError ? e.message.replace(/^[^\n]*/, () => `step "${e.step}" on ${e.host} was stopped: this run's lock there was ${by} while the step ran`) : e.message;
    return new OpsError(`${message}\n${said.join('\n')}`, e instanceof OpsError && e.hint ? `${e.hint}; ${hint}` : hint);
  };
  /** Where a stopped run's release found the lock not its own: why, in words (one look at the lock). */
  const notHeldLine = async (host: string): Promise<string> => {
    if (inspected.has(host) || tookThenFailed.has(host)) return `this run's lock was not there to let go (its last step let go, or it was ${brokenBy(lastBreak(await auditTail(host), host))}); nothing more was stopped there`;
    const r = await unfenced(session.remote(host)).run(lockStatus(env), { allowFailure: true }).catch(() => undefined);
    const lock = r && parseLock(r);
    if (lock && lock.state !== 'free' && lock.holder.run_id !== request.runId)
      return `gave up waiting for the lock, held by ${describeHolder(lock.holder)}: this run never held it there, so it stopped nothing of that run's and wrote no audit line`;
    return `this run did not hold the lock there when it stopped (${lock ? `it is ${lock.state} now` : 'it could not be read'}): no audit line of this run there`;
  };
  // Once: a signal arriving while the release runs waits for that release instead of starting another. `after`:
  // what must end first (an interruption lets a switch in flight end).
  let releasing: Promise<string[]> | undefined;
  const releaseAll = (fresh = false, after: Promise<unknown> = Promise.resolve()): Promise<string[]> =>
    (releasing ??= after.then(() => Promise.all([...mine].map((h) => releaseOn(h, fresh)))).then((failures) => failures.filter((f): f is string => f !== undefined)));

  // The first signal (or error nobody caught: a RunFault) stops the run; later ones (Ctrl-C pressed again, a workflow's
  // SIGTERM after its SIGINT) must not kill the process half-way through releasing: that would leave the lock stale
  // and the steps running. `stopping`: what stopped it, as said (the signal's name, or the error's message).
  let stopping: string | undefined;
  let stoppedBy: NodeJS.Signals | undefined;
  const onSignal = (cause: NodeJS.Signals | RunFault) => {
    const signal = typeof cause === 'string' ? cause : undefined;
    // The error's message as printed (errorParts: "internal error: ...", a lost connection in words), masked, one line.
    const what = typeof cause === 'string' ? cause : oneLine(ctx.reporter.redact(errorParts(cause.error, {}).message));
    // What each line says of the cause: a signal received, or the error the run stops on (exit 1).
    const received = signal ? `${signal} received` : what;
    const by = signal ? `interrupted by ${signal}` : `stopped by ${what}`;
    const exitCode = signal ? signalExit(signal) : 1;
    if (stopping) {
      ctx.reporter.error(`${received}: already stopping (${stopping}), releasing the lock; wait for it (killing ops now would leave the lock stale)`);
      return;
    }
    stopping = what;
    stoppedBy = signal;
    const remotes = [...session.remotes.values()];
    // Nothing new starts on any host from now on; what runs is stopped, except a switch: cut off half-way, nginx
    // would route to the new release while `current` still names the old one (what status, rollback and the next
    // deploy read). It is short (a reload, two renames): it ends first, then its host's lock is released.
    for (const r of remotes) r.halt(by);
    const inFlight = remotes.flatMap((r) => r.inFlight().map((step) => ({ step, host: r.name, remote: r })));
    // a switch is let end only where it began: one whose channel is still opening never starts (halt)
    const ending = inFlight.filter((f) => UNINTERRUPTIBLE.has(f.step) && f.remote.started().includes(f.step));
    // What the signal cuts off: the steps in flight, each stopped on its host with the lock's release (a migration
    // part-way: said, since the schema may be half-changed where the database has no transactional DDL).
    const cut = inFlight.filter((f) => !UNINTERRUPTIBLE.has(f.step)).map((f) => `${f.step} on ${f.host}`);
    const all = inFlight.map((f) => `${f.step} on ${f.host}`);
    const during = all.length ? ` during ${all.join(', ')}` : '';
    const letting = ending.map((f) => `${f.step} on ${f.host}`).join(', ');
    // Only lock steps that have not answered: the run may still be queued behind another (switch.lock_wait), holding
    // nothing; it gives up waiting, and its release touches nothing of the holder's (by run id).
    const waiting = inFlight.length > 0 && inFlight.every((f) => f.step === 'lock' && !inspected.has(f.host));
    ctx.reporter.error(
      !all.length
        ? `${received}: releasing the lock and stopping`
        : waiting
          ? `${received}${during} (waiting for it, or taking it): giving up; the lock is let go where this run holds it, and nothing of another run's is stopped`
          : !ending.length
            ? `${received}${during}: stopping them, releasing the lock`
            : `${received}${during}: letting ${letting} end (a switch cut off half-way leaves nginx and current disagreeing)${cut.length ? ', stopping the rest' : ''}, then releasing the lock`,
    );
    for (const [step, said] of Object.entries(STEP_CUT)) if (inFlight.some((f) => f.step === step && !UNINTERRUPTIBLE.has(f.step))) ctx.reporter.error(said);
    // One line per host for the run: the interruption's, with what the run is about there (ref, sha, release); a
    // line `closing` queued in case its step never unlocks is not another (that step was cut, or wrote its own).
    // Where the releases stand on a host the interruption's line is about: what the switch put live (wentLive), or the
    // run's release not live and the one live when the run began still live (nothing switched there).
    const standing = (host: string) => {
      const { release, previous } = { ...options.fields, ...about.get(host) };
      const undone = wentLive.get(host);
      if (undone !== undefined) return `; ${release || 'its release'} is live${undone ? ` (${undone})` : ''}`;
      // An operation that makes no release live (provision, certs) says nothing of releases.
      if (!release && !previous) return '';
      return `; ${release ? `${release} did not go live, ` : ''}${previous ? `${previous} is still live` : 'no release was live before'}`;
    };
    const interruption = (host: string, result: AuditEntry['result'], message: string) =>
      auditLine(auditEntry(env, request, { ...options.fields, ...about.get(host), result, message }, runnerNow(ctx)));
    const queued = (host: string) => (pending.get(host) ?? []).filter((l) => l !== closingLines.get(host));
    const switching = new Set(ending.map((f) => f.host));
    for (const host of mine) if (!switching.has(host)) pending.set(host, [...queued(host), interruption(host, 'failed', `${by}${during}${standing(host)}`)]);
    // A switch let end: once it has, and the operation has read its answer (a turn of the event loop), the host's
    // line says what happened: its release went live (a success, interrupted after the switch), or it did not.
    const switchesEnded = Promise.all(ending.map((f) => f.remote.whenIdle()))
      .then(() => new Promise((resolve) => setImmediate(resolve)))
      .then(() => {
        for (const host of switching) {
          if (!mine.has(host)) continue;
          const undone = wentLive.get(host);
          const release = about.get(host)?.release ?? options.fields?.release;
          pending.set(host, [
            ...queued(host),
            undone === undefined
              ? interruption(host, 'failed', `${by}${during}${standing(host)}`)
              : interruption(host, 'success', `${by} during switch on ${host}, which was let end: ${release ?? 'the release'} is live${undone ? `; ${undone}` : ''}`),
          ]);
          if (undone !== undefined) ctx.reporter.warn(`${host}: the switch ended before the stop: ${release ?? 'the release'} went live${undone ? ` (${undone})` : ''}`);
        }
      });
    // Over new connections: a step may still run on the old ones (and MaxSessions 1 leaves no room beside it).
    void releaseAll(true, switchesEnded)
      .then((failures) => {
        if (failures.length) ctx.reporter.error(ctx.reporter.redact(lockLeft(env, failures, new OpsError(by)).message));
        // Where the lock was not this run's: it gave up waiting (no audit line: it never held the lock there).
        for (const [host, said] of notHeldSaid) ctx.reporter.warn(`${host}: ${said}`);
        // What serves now, read after the stop: the run's last word on each host it held.
        for (const [host, id] of liveAfter) ctx.reporter.warn(`${host}: ${id ? `${id} is live` : 'nothing is live'} after the interruption`);
      })
      .then(() => session.close())
      .finally(async () => {
        // The run's document (--json): stdout gets one even when the run is cut off, for a CI step that parses it.
        try {
          ctx.interrupted?.(interruptedDoc(signal, by, during, exitCode));
        } finally {
          // What the terminal has not taken yet (outputNeverBlocks) is written first: process.exit drops it. The lock
          // is released already; only the process waits for the terminal.
          await flushOutput();
          process.exit(exitCode);
        }
      });
  };
  /**
   * What an interrupted run had got to (ctx.interrupted, for --json): result "interrupted" and the signal (or "failed", stopped by
   * an error nobody caught: `by` says which), the operation,
   * its environment and the fields known before the lock (a deploy's ref and sha), and per host (the first host's at
   * the top, runRecord: null where not known) the release it was about, the one live before and the one live now (what
   * `current` named once the stop ended, else its release where its switch put it live, else the one live before).
   */
  const interruptedDoc = (signal: NodeJS.Signals | undefined, by: string, during: string, exitCode: number): Record<string, unknown> => {
    const hosts = [...session.remotes.keys()].map((host): RunHost => {
      const { release, previous } = { ...options.fields, ...read.get(host), ...about.get(host) };
      const live = liveAfter.has(host) ? liveAfter.get(host) : wentLive.has(host) ? release : previous;
      return { host, release, previous, live };
    });
    const { ref, sha } = options.fields ?? {};
    const record = runRecord({ ...hosts[0], hosts }, [], { none: 'none was chosen: the run was interrupted before it chose one' });
    const reason = `${by}${during}`;
    // Stopped by an error nobody caught: a failure (exit 1), not an interruption.
    return { result: signal ? 'interrupted' : 'failed', ...(signal && { signal }), operation, environment: env.name, url: env.url, ...(ref && { ref }), ...(sha && { sha }), ...record, reason, error: reason, exitCode };
  };
  /**
   * One failed line for the run on every host where it holds the lock and queued none (the operation's own lines say
   * more, and replace it): whatever failed or refused, each host the run reached records it, the reason as every audit
   * line gives it (auditReason, masked), after `prefix`. Not after a signal (the interruption's line is the run's), nor
   * where the lock was taken away (lockTakenAway writes that line).
   */
  const failedWhere = (e: unknown, prefix = '') => {
    if (stopping) return;
    const message = `${prefix}${auditReason(e, (t) => ctx.reporter.redact(t))}`;
    for (const host of mine)
      if (!lost.has(host) && !(pending.get(host) ?? []).length)
        pending.set(host, [auditLine(auditEntry(env, request, { ...options.fields, ...about.get(host), result: 'failed', message: auditReason(withLostLive(host, message)) }, runnerNow(ctx)))]);
  };
  /**
   * `err` (the run's failure, as thrown) with what the run had got to (withResult, for --json): the reason (auditReason),
   * and per host the release it was about (attempted: LockedRun.about), the one live before and the one live now (its
   * release where its switch put it live; else what `current` named when a step found the lock gone; else the one live
   * before); at the top, the first host's. What the run did not get to know is left undefined (failedRun says so).
   */
  const failing = (err: unknown) => {
    const hosts = [...session.remotes.keys()].map((host): RunHost => {
      const { release, previous } = { ...options.fields, ...read.get(host), ...about.get(host) };
      const live = wentLive.has(host) ? release : lostLive.has(host) ? lostLive.get(host) || undefined : (lost.get(host)?.live ?? previous);
      return { host, release, previous, live };
    });
    const { release, previous, live } = hosts[0] ?? {};
    // Stopped (a signal, an error nobody caught): the run's document is the interruption's (ctx.interrupted, as the
    // process exits), not this (`stopped`).
    return withResult(err, { release, previous, live, reason: auditReason(err, (t) => ctx.reporter.redact(t)), hosts, ...(stopping && { stopped: true }), ...(stoppedBy && { result: 'interrupted', signal: stoppedBy }) });
  };
  /** LockedRun.settleLost: over a new connection, what the lost one ran stopped (a switch let end); what `current` names then. */
  const settleLost = async (host: string): Promise<string | undefined> => {
    // Stopping (a signal): the stop's own release asks every host over new connections, and says what is live.
    if (stopping) return undefined;
    const old = session.remote(host).connection;
    ctx.reporter.warn(`${host}: the connection was lost; over a new connection: stopping what it still ran there and asking what is live`);
    try {
      const r = await unfenced(await session.reconnect(host)).run(settleLostRun(env, request.runId, [old]), { allowFailure: true });
      const stopped = reported(r, LOCK_KEYS.stopped);
      if (stopped) ctx.reporter.warn(`${host}: stopped what the run had left running there (processes ${stopped.trim()})`);
      const slot = reported(r, LOCK_KEYS.stopped_slot);
      if (slot) ctx.reporter.warn(`${host}: ${stoppedSlotLine(slot, reported(r, LOCK_KEYS.previous_back), operation)}`);
      return r.code === 0 ? reported(r, LOCK_KEYS.live_after)?.trim() : undefined;
    } catch {
      return undefined; // the host unreachable again: the lock's release tries once more, and says so
    }
  };
  // Per host, what `current` named once a lock step whose connection was lost had ended there (settleLost): that step
  // may carry the operation's work (a one-host rollback's switch), which goes on without its runner.
  const lostLive = new Map<string, string>();
  // Per host, the release the run saw live at its first look there (LockRequest.premise).
  const firstLive = new Map<string, string>();
  /** `message` with what is live on `host` when a lost lock step's host said so (lostLive). */
  const withLostLive = (host: string, message: string) => (lostLive.has(host) ? `${message}; ${lostLive.get(host) || 'no release'} is live on ${host} (what current names once the step ended there)` : message);
  // A background job on a terminal that stops background output (`stty tostop`) would stop at its first line, locks
  // held: it waits here, before any, for fg (awaitTerminal).
  awaitTerminal(() =>
    ctx.reporter.warn(
      `this ${operation} of ${env.name} was started in the background of a terminal that stops background jobs when they write (stty tostop): it waited for fg (this line, shown now) before taking any lock, as a run stopped while it held them would send nothing to its hosts, and after ${HOLDER_SILENT_SECONDS}s they would read stale to other runs; to run one in the background, give it a file for its output (> ${operation.replace(/\W+/g, '-')}.log 2>&1 &)`,
    ),
  );
  const finish = options.finish?.((entry, vars = {}) => unlockScript(env, request.runId, entry ? [auditTemplate(auditEntry(env, request, entry, runnerNow(ctx)), vars)] : []));
  // From the lock step on: it may carry an operation's whole work on a host (`finish`: a one-host rollback).
  handleSignals(onSignal);
  handleFaults(onSignal);
  // While it holds locks, ops's own output never stops the process (a terminal paused with Ctrl-S): its
  // keepalives would stop with it, and its lock read stale to other runs (outputNeverBlocks).
  const outputBlocks = outputNeverBlocks();
  // Nor does Ctrl-Z suspend it (refuseSuspend): its keepalives would stop too, and once it is resumed its fence would
  // refuse its steps half-way, another run having released its lock meanwhile.
  const suspendRefused = refuseSuspend(() => {
    const held = [...mine];
    const what = held.length ? `holds the lock of ${env.name} on ${held.join(', ')}` : `is taking the lock of ${env.name}`;
    // Held from here, this warning too, while the shell has the terminal: its next line would stop the run there.
    holdOutputWhileInBackground();
    ctx.reporter.warn(
      `Ctrl-Z ignored: this ${operation} ${what}, and a suspended run sends nothing to its hosts: after ${HOLDER_SILENT_SECONDS}s its lock would read stale to other runs, which could release it and start beside it; the run goes on (if your shell says "Stopped", it goes on in the background: fg brings it back, and its output, which a terminal set to stty tostop holds back till then). To stop it: Ctrl-C (its lock is released, what it did said)`,
    );
  });
  /** The lock on one host (acquire, `queue` as there): the run's from the step on, unless it said otherwise; its answer kept. */
  const takeOn = async (r: Remote, queue: boolean | Queued, wait = request.wait) => {
    // From here the lock may be ours (a lost answer): released by run id unless the step said it is not.
    mine.add(r.name);
    // What the run saw live there at its first look is what it acts on (LockRequest.premise), in every later round.
    const seen = (answer: StepResult) => {
      const live = reported(answer, LOCK_KEYS.live_seen);
      if (request.premise && live !== undefined && !firstLive.has(r.name)) firstLive.set(r.name, live);
    };
    if (queue instanceof Queued) seen(queue.result);
    const result = await acquire(r, env, { ...request, wait, ...(firstLive.has(r.name) && { live: firstLive.get(r.name) }) }, queue, options.inspect, finish, options.finishSeconds ?? 0, () => mine.delete(r.name), (taken) => takenAt.set(r.name, parseLock(taken).holder.since!), (partial) => {
      tookThenFailed.add(r.name);
      if (options.lockRead) about.set(r.name, { ...options.lockRead(partial), ...about.get(r.name) });
    }, (t) => ctx.reporter.redact(t), (line) => ctx.reporter.warn(ctx.reporter.redact(line)), (connection) => [...session.remotes.values()].find((o) => o !== r && o.connection === connection)?.name).catch(async (e: unknown) => {
      if (e instanceof Queued) seen(e.result);
      // The lock step never began there (the login shell ended, or ran it otherwise): nothing to release.
      if (e instanceof NotStartedError) mine.delete(r.name);
      // Its connection lost: what it did there (its `finish` may switch) is the host's word, asked once it ended.
      else if (e instanceof ConnectionLostError && mine.has(r.name) && !stopping) {
        const live = await settleLost(r.name);
        if (live !== undefined) lostLive.set(r.name, live);
      }
      throw e;
    });
    seen(result);
    inspected.set(r.name, result);
    if (options.lockRead) read.set(r.name, options.lockRead(result));
    // The lock step ended the run there (`finish`): nothing more to release.
    if (parseLock(result).state === 'released') {
      mine.delete(r.name);
      finished.add(r.name);
    }
  };
  /**
   * A lock the first round took let go before the run queues for its hosts in lockOrder (takeLocks): by the run's
   * own release (its run id: never another run's), what its step read forgotten. False where nothing is held (its lock
   * step let go itself: `finish`); throws LockError when the release failed (the run then fails, releasing again).
   */
  const letGo = async (r: Remote): Promise<boolean> => {
    // Stopping: the stop's own release lets go of it.
    if (!mine.has(r.name) || stopping) return false;
    const why = await releaseOn(r.name);
    if (why) throw new LockError(`this run could not let go of its lock on ${why} to queue for its hosts' locks in order (switch.lock_wait)`, `try again; ops lock status ${env.name} says who holds it`);
    for (const m of [mine, notHeld, inspected, read, takenAt]) m.delete(r.name);
    return true;
  };
  const settled = await takeLocks(lockOrder(session.hosts).map((h) => session.remote(h.name)), takeOn, letGo, request.wait);
  // Hosts never provisioned: all of them in one refusal, said before anything else that failed (only a symptom of it).
  const bare = new Set(settled.flatMap((s) => (s.status === 'rejected' && s.reason instanceof Unprovisioned ? [s.reason.host] : [])));
  const refusedBare = bare.size && options.unprovisioned ? unprovisionedError(env, env.hosts.map((h) => ({ host: h.name, state: { provisioned: !bare.has(h.name) } })), options.unprovisioned.nothing, options.unprovisioned.then) : undefined;
  const failed = refusedBare ? { reason: refusedBare } : settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    // Refused on a host (another run's lock there) or a lock step that failed: each host where the lock is this run's
    // records the run as a failure, saying why.
    failedWhere(failed.reason, failed.reason instanceof LockError || refusedBare ? 'refused, nothing changed: ' : '');
    const left = await releaseAll();
    // A lock step that took the lock and failed, its lock released by force meanwhile (the release stopped its work):
    // said and audited as for any step of the run.
    const taken = stopping ? failed.reason : await lockTakenAway(failed.reason);
    const said = [...lostLive.keys()].map((host) => withLostLive(host, '').slice(2));
    const err = said.length && taken instanceof OpsError ? new OpsError(`${taken.message}\n${said.join('\n')}`, taken.hint) : taken;
    stopHandlingSignals(onSignal);
    stopHandlingFaults(onSignal);
    outputBlocks();
    suspendRefused();
    throw failing(left.length ? lockLeft(env, left, err) : err);
  }
  // From here every step of the run on a host is fenced by its lock there, for as long as the run holds it.
  for (const host of mine) {
    session.remotes.set(host, new FencedRemote(session.remote(host), env, () => mine.has(host), (e) => lost.set(host, e)));
  }
  const line = (entry: AuditEntryFields) => auditLine(auditEntry(env, request, entry, runnerNow(ctx)));
  const run: LockedRun = {
    inspected,
    audit(host, entry) {
      // After a signal the run's word on each host is the interruption's line; the failures the stop causes in the
      // steps cut off (a lost connection) are not another event.
      if (stopping) return;
      const replaced = closingLines.get(host);
      closingLines.delete(host);
      pending.set(host, [...(pending.get(host) ?? []).filter((l) => l !== replaced), line(entry)]);
    },
    finished: (host) => finished.has(host),
    closing(host, entry, vars = {}) {
      const queued = pending.get(host) ?? [];
      const full = auditEntry(env, request, entry, runnerNow(ctx));
      closingTimes.set(host, full.time);
      // Queued too: if the step never gets to the unlock (a lost connection), the usual release writes it. Not an
      // entry with fields from the host: the operation knows them only from the step's answer. Not once stopping:
      // the step will not run, and the run's line there is the interruption's.
      if (Object.keys(vars).length === 0 && !stopping) {
        const fallback = auditLine(full);
        pending.set(host, [...queued, fallback]);
        closingLines.set(host, fallback);
      }
      return unlockScript(env, request.runId, [...queued.map(quote), auditTemplate(full, vars)]);
    },
    closed(host, result) {
      if (parseLock(result).state !== 'released') return;
      mine.delete(host);
      finished.add(host);
      pending.delete(host);
    },
    about(host, fields) {
      about.set(host, { ...about.get(host), ...fields });
    },
    wentLive(host, undone) {
      wentLive.set(host, undone);
    },
    made(host, release) {
      made.set(host, release);
    },
    settleLost: (host) => settleLost(host),
  };
  let result: T;
  try {
    result = await fn(run);
    // A refusal the operation let pass (a clean-up's tryRun): the run still did not finish there.
    const refused = [...lost.values()][0];
    if (refused) throw refused;
  } catch (e) {
    failedWhere(e);
    const left = await releaseAll();
    const err = stopping ? e : await lockTakenAway(e);
    throw failing(left.length ? lockLeft(env, left, err) : err);
  } finally {
    // After the release: a signal during it waits for it (above) rather than killing the run half-way.
    await releaseAll();
    stopHandlingSignals(onSignal);
    stopHandlingFaults(onSignal);
    outputBlocks();
    suspendRefused();
    for (const [host, r] of session.remotes) if (r instanceof FencedRemote) session.remotes.set(host, r.inner);
  }
  const left = await releaseAll();
  if (left.length) throw lockLeft(env, left);
  return result;
}
