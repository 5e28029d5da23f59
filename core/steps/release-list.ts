// The releases kept on a host, for `ops releases` (and rollback's choice of target): every release directory
// with its place in the history, its release.json, what each slot runs, and why the next prune keeps it.
import type { Target } from '../target.ts';
import type { Slot } from '../layout.ts';
import { reportKeys, reported, reportedAll, type Step, type StepResult } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { historyFunctions, historyOrder, parseReleaseRecord, retention } from './history.ts';
import { releaseSummary, type ReleaseSummary } from './release.ts';
import { LIBRARY_KEYS } from './libraries.ts';

/** What `keptReleases` reports besides the history's LIBRARY_KEYS: `current` (the live release id, '' when none), `slot` (the live slot, '' when none), `release_json` (`<id> <release.json on one line>`, one per release). */
export const RELEASES_KEYS = reportKeys('current', 'slot', 'release_json');

export type ReleaseInfo = ReleaseSummary & {
  /** current: live; ok: went live; failed, abandoned (rolled back from): marked; unfinished: never went live, its deploy interrupted (ReleaseRecord). */
  status: 'current' | 'ok' | 'failed' | 'abandoned' | 'unfinished';
  /** Why the next prune keeps it ("live", "good: 2 of keep 5", "failed: 1 of keep_failed 2, ...", "warm on slot blue"), or undefined: the next deploy prunes it. */
  kept?: string;
  /** Sequence number of the last time it went live on this host (its history), if it did. */
  liveSeq?: number;
};

/** Every release directory with its history position and release.json, and what each slot runs (read-only). */
export function keptReleases(env: Target): Step {
  const L = env.layout;
  return {
    name: 'releases',
    as: 'root',
    timeout: 30,
    quiet: true,
    script: String.raw`${historyFunctions(env)}
cur=$(readlink ${quote(L.current)} 2>/dev/null || true)
ops_report ${RELEASES_KEYS.current} "${'$'}{cur##*/}"
ops_report ${RELEASES_KEYS.slot} "$(cat ${quote(L.slotFile)} 2>/dev/null || true)"
[ -d ${quote(L.releases)} ] || exit 0
release_reports
slot_releases
for r in $(release_ids); do ops_report ${RELEASES_KEYS.release_json} "$r $(tr -d '\n' < ${quote(L.releases)}/"$r"/release.json 2>/dev/null || echo '{}')"; done`,
  };
}

/** Parse the releases step: releases in the order they went live (most recent first), with why each is kept. */
export function parseReleases(env: Target, r: StepResult): ReleaseInfo[] {
  const current = reported(r, RELEASES_KEYS.current) ?? '';
  const slot = reported(r, RELEASES_KEYS.slot);
  const records = reportedAll(r, LIBRARY_KEYS.release).map(parseReleaseRecord);
  const json = new Map(
    reportedAll(r, RELEASES_KEYS.release_json).map((line) => {
      const sp = line.indexOf(' ');
      return [line.slice(0, sp < 0 ? line.length : sp), sp < 0 ? '' : line.slice(sp + 1)] as const;
    }),
  );
  // The idle slot's release is the warm previous one (the live slot runs `current`).
  const warm = reportedAll(r, LIBRARY_KEYS.slot_release)
    .map((l) => l.split(' ') as [Slot, string])
    .filter(([s, id]) => id && s !== slot)
    .map(([s, id]) => ({ id, slot: s }));
  const kept = retention(records, { keep: env.config.release.keep, keepFailed: env.config.release.keep_failed, current, warm });
  return historyOrder(records).map((rec) => {
    const { unreadable, ...summary } = releaseSummary(rec.id, json.get(rec.id) ?? '');
    return { ...summary, ...(unreadable && { unreadable }), status: rec.id === current ? 'current' : rec.status, kept: kept.get(rec.id), ...(rec.liveSeq !== undefined && { liveSeq: rec.liveSeq }) };
  });
}
