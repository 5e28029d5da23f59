// Read-only views of an environment's hosts: releases, lock, audit log; and breaking a lock on purpose.
import type { Environment } from '../config/environment.ts';
import { runnerNow, withSession, type OpsContext } from '../context.ts';
import { layout, type Slot } from '../layout.ts';
import { runInfo } from '../runinfo.ts';
import { reported, reportedAll, type Step, type StepResult } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { appendAudit, parseAuditLine, readAudit, type AuditEntry } from '../steps/audit.ts';
import { historyFunctions, historyOrder, parseReleaseRecord, retention } from '../steps/history.ts';
import { releaseSummary, type ReleaseSummary } from '../steps/release.ts';
import { describeHolder, forceReleaseLock, lockStatus, parseLock, type LockInfo } from '../steps/lock.ts';

export type ReleaseInfo = ReleaseSummary & {
  status: 'current' | 'ok' | 'failed' | 'abandoned';
  /** Why the next prune keeps it ("live", "good: 2 of keep 5", "failed: 1 of keep_failed 2, ...", "warm on slot blue"), or undefined: the next deploy prunes it. */
  kept?: string;
  /** Sequence number of the last time it went live on this host (its history), if it did. */
  liveSeq?: number;
};

/** Every release directory with its history position and release.json, and what each slot runs (read-only). */
function listReleasesStep(env: Environment): Step {
  const L = layout(env);
  return {
    name: 'releases',
    as: 'root',
    timeout: 30,
    quiet: true,
    script: String.raw`${historyFunctions(env)}
cur=$(readlink ${quote(L.current)} 2>/dev/null || true)
ops_report current "${'$'}{cur##*/}"
ops_report slot "$(cat ${quote(L.slotFile)} 2>/dev/null || true)"
[ -d ${quote(L.releases)} ] || exit 0
release_reports
slot_releases
for r in $(release_ids); do ops_report release_json "$r $(tr -d '\n' < ${quote(L.releases)}/"$r"/release.json 2>/dev/null || echo '{}')"; done`,
  };
}

/** Parse the releases step: releases in the order they went live (most recent first), with why each is kept. */
export function parseReleases(env: Environment, r: StepResult): ReleaseInfo[] {
  const current = reported(r, 'current') ?? '';
  const slot = reported(r, 'slot');
  const records = reportedAll(r, 'release').map(parseReleaseRecord);
  const json = new Map(
    reportedAll(r, 'release_json').map((line) => {
      const sp = line.indexOf(' ');
      return [line.slice(0, sp < 0 ? line.length : sp), sp < 0 ? '' : line.slice(sp + 1)] as const;
    }),
  );
  // The idle slot's release is the warm previous one (the live slot runs `current`).
  const warm = reportedAll(r, 'slot_release')
    .map((l) => l.split(' ') as [Slot, string])
    .filter(([s, id]) => id && s !== slot)
    .map(([s, id]) => ({ id, slot: s }));
  const kept = retention(records, { keep: env.config.release.keep, keepFailed: env.config.release.keep_failed, current, warm });
  return historyOrder(records).map((rec) => {
    const { unreadable, ...summary } = releaseSummary(rec.id, json.get(rec.id) ?? '');
    return { ...summary, ...(unreadable && { unreadable }), status: rec.id === current ? 'current' : rec.status, kept: kept.get(rec.id), ...(rec.liveSeq !== undefined && { liveSeq: rec.liveSeq }) };
  });
}

export async function listReleases(ctx: OpsContext, env: Environment): Promise<{ host: string; releases: ReleaseInfo[] }[]> {
  return withSession(ctx, env, (session) =>
    Promise.all(env.hosts.map(async (host) => ({ host: host.name, releases: parseReleases(env, await session.remote(host.name).run(listReleasesStep(env))) }))),
  );
}

/** Per host, most recently live first: `*` live, id, sha, ref, time, actor, then status and why it is kept. */
export function formatReleases(list: { host: string; releases: ReleaseInfo[] }[]): string {
  return list
    .map(({ host, releases }) =>
      [
        `${host}:`,
        ...(releases.length
          ? releases.map(
              (r) =>
                `  ${r.status === 'current' ? '*' : ' '} ${r.id}  ${r.sha.slice(0, 12).padEnd(12)}  ${r.ref.padEnd(16)} ${r.time.slice(0, 19).padEnd(19)}  ${r.actor}${r.status !== 'current' && r.status !== 'ok' ? `  [${r.status}]` : ''}  — ${r.kept ? `kept: ${r.kept}` : 'pruned by the next deploy'}`,
            )
          : ['  (no releases)']),
      ].join('\n'),
    )
    .join('\n');
}

export async function getLockStatus(ctx: OpsContext, env: Environment): Promise<{ host: string; lock: LockInfo }[]> {
  return withSession(ctx, env, (session) => Promise.all(env.hosts.map(async (h) => ({ host: h.name, lock: parseLock(await session.remote(h.name).run(lockStatus(env))) }))));
}

export function formatLock(list: { host: string; lock: LockInfo }[]): string {
  return list
    .map(({ host, lock }) => `${host}: ${lock.state === 'free' ? 'free' : `${lock.state === 'stale' ? 'STALE lock (its run is gone)' : 'locked'}: ${describeHolder(lock.holder)}`}`)
    .join('\n');
}

/** Break the lock on every host, recording who did it in the audit log. */
export async function breakLock(ctx: OpsContext, env: Environment): Promise<{ host: string; lock: LockInfo }[]> {
  const info = runInfo(ctx.env);
  return withSession(ctx, env, (session) =>
    Promise.all(
      env.hosts.map(async (h) => {
        const remote = session.remote(h.name);
        const lock = parseLock(await remote.run(forceReleaseLock(env)));
        if (lock.state !== 'free')
          await remote.run(appendAudit(env, { time: runnerNow(ctx).toISOString(), environment: env.name, operation: 'lock release', result: 'success', actor: info.actor, run: info.runUrl || undefined, message: `removed ${lock.state} lock of ${describeHolder(lock.holder)}` }));
        return { host: h.name, lock };
      }),
    ),
  );
}

export async function auditLog(ctx: OpsContext, env: Environment, lines: number): Promise<{ host: string; entries: AuditEntry[] }[]> {
  return withSession(ctx, env, (session) =>
    Promise.all(
      env.hosts.map(async (h) => {
        const r = await session.remote(h.name).run(readAudit(env, lines));
        return { host: h.name, entries: reportedAll(r, 'entry').map(parseAuditLine) };
      }),
    ),
  );
}

export function formatAudit(list: { host: string; entries: AuditEntry[] }[]): string {
  return list
    .map(({ host, entries }) =>
      [
        `${host}:`,
        ...(entries.length
          ? entries.map((e) => `  ${e.time.slice(0, 19)}  ${e.operation.padEnd(9)} ${e.result.padEnd(7)} ${e.actor}${e.sha ? `  ${e.ref} ${e.sha.slice(0, 12)}` : ''}${e.release ? `  ${e.release}` : ''}${e.message ? `  — ${e.message}` : ''}${e.run ? `  ${e.run}` : ''}`)
          : ['  (empty)']),
      ].join('\n'),
    )
    .join('\n');
}
