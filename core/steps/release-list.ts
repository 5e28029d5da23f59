// The releases kept on a host, for `ops releases` (and rollback's choice of target): every release directory
// with its place in the history, its release.json, what each slot runs, and why the next prune keeps it.
import type { Target } from '../target.ts';
import type { Slot } from '../layout.ts';
import { reportKeys, reported, reportedAll, type Step, type StepResult } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { printableLine } from '../errors.ts';
import { historyFunctions, historyOrder, parseReleaseRecord, retention } from './history.ts';
import { releaseSummary, type ReleaseSummary } from './release.ts';
import { LIBRARY_KEYS } from './libraries.ts';
import { auditTail, parseAuditLine } from './audit.ts';
import { reportProvisioned } from './system.ts';

/**
 * What `keptReleases` reports besides the history's LIBRARY_KEYS: `current` (the live release id, '' when none), `slot`
 * (the live slot, '' when none), `release_json` (`<id> <release.json on one line>`, one per release), `release_mark`
 * (`<id> <why>`: the text of a failed or abandoned release's mark, markRelease), `release_audit` (an audit line, JSON: the
 * last failed deploy line naming a release that is unmarked and never went live, whose deploy was interrupted).
 */
export const RELEASES_KEYS = reportKeys('current', 'slot', 'release_json', 'release_mark', 'release_audit');

/** The longest mark text read back (bytes): a mark is one reason (auditReason, 400 characters); older or hand-made ones are cut. */
const MARK_BYTES = 2000;
/** How far back in the audit log (lines) an unmarked release's failure is looked for: a kept release is a recent one. */
const AUDIT_LOOKBACK = 5000;

export type ReleaseInfo = ReleaseSummary & {
  /** current: live; ok: went live; failed, abandoned (rolled back from): marked; unfinished: never went live, its deploy interrupted (ReleaseRecord). */
  status: 'current' | 'ok' | 'failed' | 'abandoned' | 'unfinished';
  /** Why the next prune keeps it ("live", "good: 2 of keep 5", "failed: 1 of keep_failed 2, ...", "warm on slot blue"), or undefined: the next deploy prunes it. */
  kept?: string;
  /** Sequence number of the last time it went live on this host (its history), if it did. */
  liveSeq?: number;
  /**
   * Why it is failed, abandoned or unfinished, if known: its mark's text (a failed deploy's reason, "rolled back to
   * ..."), or for an unfinished one the message of the last failed deploy audit line naming it (an interruption's).
   */
  reason?: string;
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
${reportProvisioned(env)}
cur=$(readlink ${quote(L.current)} 2>/dev/null || true)
ops_report ${RELEASES_KEYS.current} "${'$'}{cur##*/}"
ops_report ${RELEASES_KEYS.slot} "$(cat ${quote(L.slotFile)} 2>/dev/null || true)"
[ -d ${quote(L.releases)} ] || exit 0
release_reports
slot_releases
cur=${'$'}{cur##*/}
never=()
for r in $(release_ids); do
  release_status "$r" # and release_record: its release.json and mark as ops wrote them
  ops_report ${RELEASES_KEYS.release_json} "$r $(tr -d '\n' 2>/dev/null < "$release_record/release.json" || echo '{}')"
  if [ "$release_state" != ok ]; then
    # The mark's text, as one line of printable characters (a mark written by hand may hold anything).
    why=$(head -c ${MARK_BYTES} "$release_record/.ops-$release_state" 2>/dev/null | tr '\000-\037\177' ' ') || true
    [ -z "${'$'}{why// /}" ] || ops_report ${RELEASES_KEYS.release_mark} "$r $why"
  elif ! release_went_live "$r" "$cur"; then never+=(-e "\"release\":\"$r\""); fi
done
# Unmarked releases that never went live (an interrupted deploy's): the failed deploy lines naming them, in one pass.
# Read under the log's lock (auditTail): a rotation under way is waited for, not read as a log with no such line.
if [ ${'$'}{#never[@]} -gt 0 ]; then
  ${auditTail(env, AUDIT_LOOKBACK)} | grep -F '"operation":"deploy"' | grep -F '"result":"failed"' | grep -F "${'$'}{never[@]}" | while IFS= read -r line; do ops_report ${RELEASES_KEYS.release_audit} "$line"; done || true
fi`,
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
  const reasons = releaseReasons(r);
  return historyOrder(records).map((rec) => {
    const { unreadable, ...summary } = releaseSummary(rec.id, json.get(rec.id) ?? '');
    const status = rec.id === current ? 'current' : rec.status;
    const reason = status === 'current' || status === 'ok' ? undefined : reasons.get(rec.id);
    return { ...summary, ...(unreadable && { unreadable }), status, kept: kept.get(rec.id), ...(rec.liveSeq !== undefined && { liveSeq: rec.liveSeq }), ...(reason && { reason }) };
  });
}

/**
 * Why each release is marked or unfinished, from the releases step: a mark's text (RELEASES_KEYS.release_mark), else
 * the message of the last failed deploy audit line naming it (release_audit). One line of printable characters each.
 */
function releaseReasons(r: StepResult): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of reportedAll(r, RELEASES_KEYS.release_audit)) {
    const entry = parseAuditLine(line);
    const why = printableLine(entry.message ?? '');
    if (entry.time && entry.release && why) out.set(entry.release, why);
  }
  for (const line of reportedAll(r, RELEASES_KEYS.release_mark)) {
    const sp = line.indexOf(' ');
    const why = sp < 0 ? '' : printableLine(line.slice(sp + 1));
    if (why) out.set(line.slice(0, sp), why);
  }
  return out;
}
