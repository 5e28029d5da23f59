// The order releases went live, recorded on each host: `.ops/history`, append-only, one line per event with
// a sequence number the host hands out under the lock. "The previous release", rollback targets and pruning
// follow it, so a runner with any clock gets the same answers; release ids stay unique and readable (they
// hold the runner's time) but nothing depends on how they sort.
//
//   <seq> TAB <host time, UTC> TAB <event: live|failed|abandoned> TAB <release id> TAB <operation>
//
// Hosts deployed before the history existed get it derived once (under the lock) from what the release ids
// said then: their sort order, failed ones as failed, `current` last.
import type { Environment } from '../config/environment.ts';
import { layout, type Slot } from '../layout.ts';
import { quote } from '../shell.ts';

export type HistoryEvent = 'live' | 'failed' | 'abandoned';

/** The release-directory pattern (ids as made by releaseId). */
export const RELEASE_DIR_PATTERN = '^[0-9]{8}T[0-9]{6}Z-[0-9a-f]+$';

/**
 * Shell functions over the history of one environment: `history_add EVENT RELEASE OPERATION` appends (call
 * under the lock), `history_init` derives and writes the history of a host that has none, `history_lines`
 * prints it (derived, not written, when absent: read-only views), `release_reports` reports every release
 * directory as `release <id> <sha> <status> <live seq|-> <last event seq|->`.
 */
export function historyFunctions(env: Environment): string {
  const L = layout(env);
  return String.raw`history_file=${quote(L.history)}
releases_dir=${quote(L.releases)}
history_now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
history_last() { if [ -f "$history_file" ]; then awk -F'\t' '$1 ~ /^[0-9]+$/ { n = $1 } END { print n + 0 }' "$history_file"; else echo 0; fi; }
history_add() {
  [ -f "$history_file" ] || history_init >/dev/null # removed by hand since the state step: derive it again first
  printf '%s\t%s\t%s\t%s\t%s\n' "$(( $(history_last) + 1 ))" "$(history_now)" "$1" "$2" "${'$'}{3:-}" >> "$history_file"; chmod 0644 "$history_file"
}
release_ids() { if [ -d "$releases_dir" ]; then ls -1 "$releases_dir" | grep -E '${RELEASE_DIR_PATTERN}' | sort || true; fi; }
history_derive() {
  local cur n=0 r now
  cur=$(readlink ${quote(L.current)} 2>/dev/null || true); cur=${'$'}{cur##*/}; now=$(history_now)
  for r in $(release_ids); do
    [ "$r" != "$cur" ] || continue
    n=$(( n + 1 ))
    if [ -e "$releases_dir/$r/.ops-failed" ]; then printf '%s\t%s\tfailed\t%s\tderived\n' "$n" "$now" "$r"; continue; fi
    printf '%s\t%s\tlive\t%s\tderived\n' "$n" "$now" "$r"
    if [ -e "$releases_dir/$r/.ops-abandoned" ]; then n=$(( n + 1 )); printf '%s\t%s\tabandoned\t%s\tderived\n' "$n" "$now" "$r"; fi
  done
  if [ -n "$cur" ] && [ -d "$releases_dir/$cur" ]; then printf '%s\t%s\tlive\t%s\tderived\n' "$(( n + 1 ))" "$now" "$cur"; fi
}
history_init() { if [ ! -f "$history_file" ]; then history_derive > "$history_file.new"; chmod 0644 "$history_file.new"; mv -f "$history_file.new" "$history_file"; ops_report history derived; fi; }
history_lines() { if [ -f "$history_file" ]; then cat "$history_file"; else history_derive; fi; }
release_reports() {
  local r d status live last sha
  declare -A live_seq last_seq
  while IFS=' ' read -r r live last; do live_seq[$r]=$live; last_seq[$r]=$last; done < <(history_lines | awk -F'\t' '$1 ~ /^[0-9]+$/ && $4 != "" { if ($3 == "live") live[$4] = $1; last[$4] = $1 } END { for (r in last) print r, (r in live ? live[r] : "-"), last[r] }')
  for r in $(release_ids); do
    d=$releases_dir/$r
    status=ok; [ -e "$d/.ops-failed" ] && status=failed; [ -e "$d/.ops-abandoned" ] && status=abandoned
    sha=""; if [ -f "$d/REVISION" ]; then read -r sha < "$d/REVISION" || true; fi; sha=${'$'}{sha//[^0-9a-f]/}
    ops_report release "$r ${'$'}{sha:0:64} $status ${'$'}{live_seq[$r]:--} ${'$'}{last_seq[$r]:--}"
  done
  ops_report history_seq "$(history_last)"
}
# slot_releases: the release each slot's supervisor file runs ("slot_release SLOT ID"), from its header.
slot_releases() {
  local s f
  for s in blue green; do
    case $s in blue) f=${quote(L.supervisorConf('blue'))} ;; green) f=${quote(L.supervisorConf('green'))} ;; esac
    [ -f "$f" ] && ops_report slot_release "$s $(sed -n 's/^; Managed by ops-pipeline: slot [a-z]* of .*, release \([0-9A-Za-z-]*\)\. .*/\1/p' "$f" | head -n 1)"
  done
  true
}`;
}

/** One kept release as the host reports it, with its place in the history. */
export interface ReleaseRecord {
  id: string;
  sha: string;
  /** From the markers in its directory. */
  status: 'ok' | 'failed' | 'abandoned';
  /** Sequence number of the last time it went live; undefined if it never did. */
  liveSeq?: number;
  /** Sequence number of its last event (live, failed, abandoned); undefined if none (an interrupted deploy). */
  eventSeq?: number;
}

/** Parse a `release` report: "<id> <sha> <status> <live seq|-> <event seq|->". */
export function parseReleaseRecord(line: string): ReleaseRecord {
  const [id = '', sha = '', status = 'ok', live = '-', last = '-'] = line.split(' ');
  const num = (v: string) => (/^\d+$/.test(v) ? Number(v) : undefined);
  return { id, sha, status: status === 'failed' || status === 'abandoned' ? status : 'ok', liveSeq: num(live), eventSeq: num(last) };
}

/**
 * The release to go back to from `current`: the one that went live most recently before it (history order),
 * skipping failed and abandoned (rolled back from) ones. Undefined when there is none.
 */
export function previousRelease(releases: ReleaseRecord[], current: string): ReleaseRecord | undefined {
  const since = releases.find((r) => r.id === current)?.liveSeq ?? Infinity;
  return releases
    .filter((r) => r.id !== current && r.status === 'ok' && r.liveSeq !== undefined && r.liveSeq < since)
    .sort((a, b) => b.liveSeq! - a.liveSeq!)[0];
}

/** Releases in the order they last went live, most recent first; never-live ones after, latest event first. */
export function historyOrder(releases: ReleaseRecord[]): ReleaseRecord[] {
  const key = (r: ReleaseRecord) => [r.liveSeq ?? -1, r.eventSeq ?? -1] as const;
  return [...releases].sort((a, b) => key(b)[0] - key(a)[0] || key(b)[1] - key(a)[1] || b.id.localeCompare(a.id));
}

export interface Retention {
  keep: number;
  keepFailed: number;
  current: string;
  /** Releases a slot runs (or should be able to restart at once): never removed. */
  warm: { id: string; slot: Slot }[];
}

/** Why a release is kept, or undefined when pruning removes it. */
export type KeepReason = string | undefined;

/**
 * Which releases pruning keeps, and why: the live one; the ones a slot runs (the warm previous release);
 * the latest `keep` good releases (went live, not failed or rolled back from), by the order they went live,
 * the live one counted among them; the latest `keepFailed` failed or abandoned ones (or never finished: an
 * interrupted deploy), for inspection. Pure: the same answer on any runner clock.
 */
export function retention(releases: ReleaseRecord[], r: Retention): Map<string, KeepReason> {
  const out = new Map<string, KeepReason>();
  let good = 0;
  let bad = 0;
  for (const rel of historyOrder(releases)) {
    const warm = r.warm.find((w) => w.id === rel.id);
    const isGood = rel.status === 'ok' && rel.liveSeq !== undefined;
    let reason: KeepReason;
    if (isGood && good < r.keep) reason = rel.id === r.current ? `live (1 of keep ${r.keep})` : `good: ${good + 1} of keep ${r.keep}`;
    else if (!isGood && bad < r.keepFailed) reason = `${rel.status === 'ok' ? 'never went live' : rel.status}: ${bad + 1} of keep_failed ${r.keepFailed}, for inspection`;
    if (isGood) good++;
    else bad++;
    if (rel.id === r.current) reason ??= 'live';
    else if (warm) reason = `${reason ? `${reason}; ` : ''}warm on slot ${warm.slot}`;
    out.set(rel.id, reason);
  }
  return out;
}
