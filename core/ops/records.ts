// The records an environment keeps on its hosts, for people: the releases kept (and why), the lock (and
// breaking it on purpose), the audit log. Everything here reads, except breakLock.
import type { Environment } from '../config/environment.ts';
import { resolveTarget } from '../target.ts';
import { runnerNow, type OpsContext } from '../context.ts';
import { readHosts, withSession } from './hosts.ts';
import { runInfo } from '../runinfo.ts';
import { oneLine, unreadLine } from '../errors.ts';
import { reported, reportedAll, type StepResult } from '../remote/types.ts';
import { provisionedIn, unprovisionedNote } from '../steps/system.ts';
import { appendAudit, parseAuditLine, readAudit, type AuditEntry, AUDIT_KEYS } from '../steps/audit.ts';
import { keptReleases, parseReleases, type ReleaseInfo } from '../steps/release-list.ts';
import { describeHolder, describeQueue, forceReleaseLock, LOCK_KEYS, lockStatus, parseLock, silentHolder, staleReason, unseenReason, stoppedSlotLine, type LockInfo } from '../steps/lock.ts';

/**
 * Why a host could not be read by a read-only command (`ops releases`, `lock status`, `audit`): it cannot be reached, or
 * its step failed (errorFields: one line each). Each host is read on its own connection (readHosts), so one host down still
 * shows the others: during an outage, the hosts that answer are the ones worth reading (none: the command fails).
 */
export interface HostUnread {
  error?: string;
  /** How to fix what `error` says, one line, if there is a hint. */
  hint?: string;
  /** The host was never provisioned for the environment (the command's own step read provision's marker): what is said of it instead of what it lacks (unprovisionedNote). */
  unprovisioned?: string;
}

/** `unprovisioned` of a host whose step reported provision's marker absent (provisionedIn false), for a HostUnread. */
function unprovisionedOf(env: { name: string }, host: string, r: StepResult): Pick<HostUnread, 'unprovisioned'> {
  return provisionedIn(r) === false ? { unprovisioned: unprovisionedNote(host, env) } : {};
}

/** Whether any host of a read-only command's result could not be read (the command then exits 1). */
export function someUnread(list: HostUnread[]): boolean {
  return list.some((h) => h.error !== undefined);
}

/** `ops releases`: per host, the releases kept, most recently live first, with why each is kept (a host not read: `error`, no releases). Read only. */
export async function listReleases(ctx: OpsContext, environment: Environment): Promise<({ host: string; releases: ReleaseInfo[] } & HostUnread)[]> {
  const env = resolveTarget(environment);
  return readHosts(
    ctx,
    env,
    async (remote, host) => {
      const r = await remote.run(keptReleases(env));
      return { host: host.name, releases: parseReleases(env, r), ...unprovisionedOf(env, host.name, r) };
    },
    (host, fields) => ({ host: host.name, releases: [], ...fields }),
  );
}

/** The longest reason `ops releases` shows beside a release (characters); --json gives it whole. */
export const RELEASE_REASON_SHOWN = 120;

/** A release's status for a terminal, when it is neither live nor good: `[failed: why]`, `[unfinished: never went live: why]`. */
function releaseMark(r: ReleaseInfo): string {
  if (r.status === 'current' || r.status === 'ok') return '';
  const status = r.status === 'unfinished' ? 'unfinished: never went live' : r.status;
  return `  [${status}${r.reason ? `: ${oneLine(r.reason, RELEASE_REASON_SHOWN)}` : ''}]`;
}

/**
 * Per host, most recently live first: `*` live, id, sha, ref, time, actor, then status (with why, cut to
 * RELEASE_REASON_SHOWN characters) and why it is kept.
 */
export function formatReleases(list: ({ host: string; releases: ReleaseInfo[] } & HostUnread)[]): string {
  return list
    .map(({ host, releases, error, hint, unprovisioned }) =>
      error !== undefined ? unreadLine(host, { error, hint }) : unprovisioned && !releases.length ? unprovisioned : [
        `${host}:`,
        ...(releases.length
          ? releases.map(
              (r) =>
                `  ${r.status === 'current' ? '*' : ' '} ${r.id}  ${r.sha.slice(0, 12).padEnd(12)}  ${r.ref.padEnd(16)} ${r.time.slice(0, 19).padEnd(19)}  ${r.actor}${releaseMark(r)}  — ${r.kept ? `kept: ${r.kept}` : 'pruned by the next deploy'}`,
            )
          : ['  (no releases)']),
      ].join('\n'),
    )
    .join('\n');
}

/** `ops lock status`: per host, whether the environment's lock is free, held or stale, by whom, and the runs queued for it in the order they take it (LockInfo.queue; a free lock a queued run takes next reads held by it, as a run taking the lock finds it); a host not read: `error`, lock state `unknown`. Read only. */
export async function getLockStatus(ctx: OpsContext, environment: Environment): Promise<({ host: string; lock: LockInfo } & HostUnread)[]> {
  const env = resolveTarget(environment);
  return readHosts(
    ctx,
    env,
    async (remote, h) => {
      const r = await remote.run(lockStatus(env));
      return { host: h.name, lock: parseLock(r), ...unprovisionedOf(env, h.name, r) };
    },
    (h, fields) => ({ host: h.name, lock: { state: 'unknown', holder: {} }, ...fields }),
  );
}

/** Lock states for a terminal, one line per host. */
export function formatLock(list: ({ host: string; lock: LockInfo } & HostUnread)[]): string {
  return list
    .map(({ host, lock, error, hint, unprovisioned }) => (error !== undefined ? unreadLine(host, { error, hint }) : unprovisioned && lock.state === 'free' ? `${unprovisioned}: no lock (nothing ran there)` : `${host}: ${lock.state === 'free' ? 'free' : `${lock.state === 'stale' ? 'STALE lock (its run is gone)' : 'locked'}: ${describeHolder(lock.holder)}${staleReason(lock)}${unseenReason(lock)}${describeQueue(lock)}`}`))
    .join('\n');
}

/** One host's answer to `ops lock release` (breakLock). */
export interface LockRelease {
  host: string;
  /** The lock as it was (free: there was none). */
  lock: LockInfo;
  /** Pids of its run's processes stopped first (empty when none). */
  stopped: string[];
  /** Why its run's processes were not looked for (a lock without a connection id), if so. */
  unchecked?: string;
  /** The release `current` names (what serves), when a lock was removed. */
  live?: string;
  /** The lock was left: its run is still connected and `force` was not given. */
  refused: boolean;
  /** `<slot> <release>`: the slot its run's start had filled with a release that never went live, stopped. */
  stoppedSlot?: string;
  /** What that slot holds again (the release it held before the start) and whether it is warm: previous_back's line. */
  previousBack?: string;
}

/**
 * The audit line of a run whose lock `ops lock release` removed, written just before the release's own: found stale
 * (its runner killed outright, or gone with its network: it could write none of its own), or held and released with
 * --force (`by`: the releasing actor; a run stuck for good never writes its own: one that returns writes its own too,
 * after the release's, saying how it failed: core/ops/locked.ts). The run's operation, actor and run URL as its lock recorded them, `failed`,
 * with the release its start had filled (`stoppedSlot`'s, never live) when known, and a message saying why it was
 * interrupted, since when it held the lock, and what the release found and did (`done`). Its `time` is the release's
 * (when it was found so). Pure.
 */
export function lostRunEntry(envName: string, lock: LockInfo, time: string, done: string[], stoppedSlot?: string, by?: string): AuditEntry {
  const h = lock.holder;
  const made = stoppedSlot?.split(' ')[1];
  const gone = lock.holder.rebooted ? 'the host rebooted under it' : lock.holder.silent ? `its connection silent for ${lock.holder.silent}s: its runner gone with its network` : 'its connection ended: its runner killed outright or cut off';
  const why =
    lock.state === 'held'
      ? `interrupted: its lock released by force by ${by || '?'} while it ran (ops lock release --force; its lock taken ${h.since || 'at an unknown time'})`
      : `interrupted: connection lost (${gone}; its lock, taken ${h.since || 'at an unknown time'}, found stale by ops lock release)`;
  return {
    time,
    environment: envName,
    operation: h.operation || '?',
    result: 'failed',
    actor: h.actor || '?',
    ...(h.run && { run: h.run }),
    ...(made && { release: made }),
    message: `${why}; ${done.filter(Boolean).join('; ')}`,
  };
}

/**
 * `ops lock release`: break the lock on every host (forceReleaseLock), recording who did it, what was stopped and
 * what is live in the audit log, after the line of the run it stopped (lostRunEntry). A lock whose run is still connected is left (`refused`) unless `force`.
 */
export async function breakLock(ctx: OpsContext, environment: Environment, force = false): Promise<LockRelease[]> {
  const env = resolveTarget(environment);
  const info = runInfo(ctx.processEnv);
  return withSession(ctx, env, (session) =>
    session.each(async (remote, h) => {
      const result = await remote.run(forceReleaseLock(env, force));
      const lock = parseLock(result);
      const refused = reported(result, LOCK_KEYS.refused) !== undefined;
      const stopped = (reported(result, LOCK_KEYS.stopped) ?? '').split(/\s+/).filter(Boolean);
      const unchecked = reported(result, LOCK_KEYS.unchecked)?.trim();
      const live = reported(result, LOCK_KEYS.live_after)?.trim();
      const stoppedSlot = reported(result, LOCK_KEYS.stopped_slot)?.trim();
      const previousBack = reported(result, LOCK_KEYS.previous_back)?.trim();
      if (lock.state !== 'free' && !refused) {
        const done = [stopped.length ? `stopped what its run left running (processes ${stopped.join(' ')})` : unchecked ? 'its processes not looked for (no connection id in the lock)' : '', stoppedSlot ? stoppedSlotLine(stoppedSlot, previousBack, lock.holder.operation) : '', `${live || 'nothing'} is live`];
        const time = runnerNow(ctx).toISOString();
        const release = { time, environment: env.name, operation: 'lock release', result: 'success', actor: info.actor, run: info.runUrl || undefined, message: `removed ${lock.state} lock of ${describeHolder(lock.holder)}; ${done.filter(Boolean).join('; ')}` } as const;
        // The run's own line first (stale: it could write none; held: it may never return to write one).
        const run = lock.state === 'stale' || lock.state === 'held' ? [lostRunEntry(env.name, lock, time, done, stoppedSlot, info.actor)] : [];
        const appended = await remote.run(appendAudit(env, [...run, release]));
        const failed = reported(appended, AUDIT_KEYS.append_failed);
        if (failed !== undefined) ctx.reporter.warn(`${h.name}: the lock was released, but the audit log could not be written (${failed.trim() || 'no reason given'})`);
      }
      return { host: h.name, lock, stopped, refused, ...(unchecked && { unchecked }), ...(live !== undefined && { live }), ...(stoppedSlot && { stoppedSlot }), ...(previousBack && { previousBack }) };
    }),
  );
}

/**
 * Why a lock left by `ops lock release` (its run still connected) was left, and what to do: with its connection's
 * silence known (staleIn), when it reads stale should that silence go on (a runner gone without closing its
 * connection, its network lost), and that a release then frees it without --force.
 */
function stillConnected(lock: LockInfo, envName: string): string {
  const force = `ops lock release ${envName} --force stops what it runs there and removes the lock`;
  const silent = silentHolder(lock);
  if (!silent) return `its run is still connected and ends on its own; if it is stuck, ${force}`;
  return `${silent}: run ops lock release ${envName} again then; if you are sure the run is gone or stuck, ${force} now`;
}

/** `ops lock release`'s answer for a terminal, one line per host. */
export function formatLockRelease(list: LockRelease[], envName: string): string {
  return list
    .map((r) => {
      if (r.lock.state === 'free') return `${r.host}: was not locked`;
      const held = formatLock([{ host: r.host, lock: r.lock }]).split(': ').slice(1).join(': ');
      if (r.refused) return `${r.host}: NOT released (${held}): ${stillConnected(r.lock, envName)}`;
      const stopped = r.stopped.length ? `; stopped what its run had left running there (processes ${r.stopped.join(' ')})` : r.unchecked ? `; ${r.unchecked}: check with ps` : '';
      return `${r.host}: released (${held})${stopped}${r.stoppedSlot ? `; ${stoppedSlotLine(r.stoppedSlot, r.previousBack, r.lock.holder.operation)}` : ''}; ${r.live || 'nothing'} is live`;
    })
    .join('\n');
}

/** `ops audit`: per host, the last `lines` entries of its audit log (oldest first; a host not read: `error`, no entries). Read only. */
export async function auditLog(ctx: OpsContext, environment: Environment, lines: number): Promise<({ host: string; entries: AuditEntry[] } & HostUnread)[]> {
  const env = resolveTarget(environment);
  return readHosts(
    ctx,
    env,
    async (remote, h) => {
      const r = await remote.run(readAudit(env, lines));
      return { host: h.name, entries: reportedAll(r, AUDIT_KEYS.entry).map(parseAuditLine), ...unprovisionedOf(env, h.name, r) };
    },
    (h, fields) => ({ host: h.name, entries: [], ...fields }),
  );
}

/** Audit entries for a terminal: one line each (time, actor, operation, ref, sha, result), per host. */
export function formatAudit(list: ({ host: string; entries: AuditEntry[] } & HostUnread)[]): string {
  return list
    .map(({ host, entries, error, hint, unprovisioned }) =>
      error !== undefined ? unreadLine(host, { error, hint }) : unprovisioned && !entries.length ? `${unprovisioned}: no audit log (nothing ran there)` : [
        `${host}:`,
        ...(entries.length
          ? entries.map((e) => `  ${e.time.slice(0, 19)}  ${e.operation.padEnd(12)} ${e.result.padEnd(7)} ${e.actor}${e.sha ? `  ${e.ref} ${e.sha.slice(0, 12)}` : ''}${e.release ? `  ${e.release}` : ''}${e.message ? `  — ${e.message}` : ''}${e.run ? `  ${e.run}` : ''}`)
          : ['  (empty)']),
      ].join('\n'),
    )
    .join('\n');
}
