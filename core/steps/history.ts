// The order releases went live, recorded on each host: `.ops/history`, append-only, one line per event with
// a sequence number the host hands out under the lock. "The previous release", rollback targets and pruning
// follow it, so a runner with any clock gets the same answers; release ids stay unique and readable (they
// hold the runner's time) but nothing depends on how they sort.
//
//   <seq> TAB <host time, UTC> TAB <event: live|failed|abandoned> TAB <release id> TAB <operation>
//
// Hosts deployed before the history existed get it derived once (under the lock) from what the release ids
// said then: their sort order, failed ones as failed, `current` last.
import type { Target } from '../target.ts';
import type { Slot } from '../layout.ts';
import { quote } from '../shell.ts';
import { HISTORY_FUNCTIONS } from './libraries.ts';

export type HistoryEvent = 'live' | 'failed' | 'abandoned';

/** The history lines a prune keeps (history_compact), the newest, besides every line naming a release still kept; it shortens the history past twice as many. */
export const HISTORY_KEPT_LINES = 1000;

/** The release-directory pattern (ids as made by releaseId). */
export const RELEASE_DIR_PATTERN = '^[0-9]{8}T[0-9]{6}Z-[0-9a-f]+$';

/**
 * Shell functions over the history of one environment (core/steps/sh/history.sh): `history_add EVENT RELEASE
 * OPERATION` appends (call under the lock), `history_init` derives and writes the history of a host that has
 * none, `history_lines` prints it (derived, not written, when absent: read-only views), `release_reports`
 * reports every release directory as `release <id> <sha> <status> <live seq|-> <last event seq|->`,
 * `slot_releases` the release each slot's supervisor file runs. Sets `history_file` and `releases_dir`.
 */
export function historyFunctions(env: Target): string {
  const L = env.layout;
  const settings = {
    history_file: L.history,
    releases_dir: L.releases,
    records_dir: L.records,
    current_link: L.current,
    supervisor_conf_blue: L.supervisorConf('blue'),
    supervisor_conf_green: L.supervisorConf('green'),
    release_dir_pattern: RELEASE_DIR_PATTERN,
  };
  return `${Object.entries(settings).map(([k, v]) => `${k}=${quote(v)}`).join('\n')}\n${HISTORY_FUNCTIONS}`;
}

/** One kept release as the host reports it, with its place in the history. */
export interface ReleaseRecord {
  id: string;
  sha: string;
  /**
   * From the markers in its directory; `unfinished`: none, and it never went live (release_went_live, the test
   * rollback --to applies: its deploy was interrupted or killed before its switch, or is under way).
   */
  status: 'ok' | 'failed' | 'abandoned' | 'unfinished';
  /** Sequence number of the last time it went live; undefined if it never did. */
  liveSeq?: number;
  /** Sequence number of its last event (live, failed, abandoned); undefined if none (an interrupted deploy). */
  eventSeq?: number;
}

/** Parse a `release` report: "<id> <sha> <status> <live seq|-> <event seq|->". */
export function parseReleaseRecord(line: string): ReleaseRecord {
  const [id = '', sha = '', status = 'ok', live = '-', last = '-'] = line.split(' ');
  const num = (v: string) => (/^\d+$/.test(v) ? Number(v) : undefined);
  return { id, sha, status: status === 'failed' || status === 'abandoned' || status === 'unfinished' ? status : 'ok', liveSeq: num(live), eventSeq: num(last) };
}

/** Releases in the order they last went live, most recent first; never-live ones after, latest event first. */
export function historyOrder(releases: ReleaseRecord[]): ReleaseRecord[] {
  const key = (r: ReleaseRecord) => [r.liveSeq ?? -1, r.eventSeq ?? -1] as const;
  return [...releases].sort((a, b) => key(b)[0] - key(a)[0] || key(b)[1] - key(a)[1] || b.id.localeCompare(a.id));
}

/** A release `keep` counts: it went live and was neither failed nor rolled back from since. */
function isGood(r: ReleaseRecord): boolean {
  return r.status === 'ok' && r.liveSeq !== undefined;
}

/**
 * The releases `keep_failed` counts (failed, abandoned, or never finished: an interrupted deploy), in the order
 * that happened to them, most recent first: by their last event in the history (the failure, the rollback from
 * it), whether or not they once went live; a release with no event (an interrupted deploy) after those.
 */
export function inspectionOrder(releases: ReleaseRecord[]): ReleaseRecord[] {
  return releases.filter((r) => !isGood(r)).sort((a, b) => (b.eventSeq ?? -1) - (a.eventSeq ?? -1) || b.id.localeCompare(a.id));
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
 * interrupted deploy), for inspection, latest by when they failed or were rolled back from (inspectionOrder), not
 * by when they last went live. The map is in historyOrder. Pure: the same answer on any runner clock.
 */
export function retention(releases: ReleaseRecord[], r: Retention): Map<string, KeepReason> {
  const out = new Map<string, KeepReason>();
  const badPlace = new Map(inspectionOrder(releases).map((rel, i) => [rel.id, i] as const));
  let good = 0;
  for (const rel of historyOrder(releases)) {
    const warm = r.warm.find((w) => w.id === rel.id);
    const bad = badPlace.get(rel.id);
    let reason: KeepReason;
    if (bad === undefined && good < r.keep) reason = rel.id === r.current ? `live (1 of keep ${r.keep})` : `good: ${good + 1} of keep ${r.keep}`;
    else if (bad !== undefined && bad < r.keepFailed) reason = `${rel.status === 'ok' || rel.status === 'unfinished' ? 'never went live' : rel.status}: ${bad + 1} of keep_failed ${r.keepFailed}, for inspection`;
    if (bad === undefined) good++;
    if (rel.id === r.current) reason ??= 'live';
    else if (warm) reason = `${reason ? `${reason}; ` : ''}warm on slot ${warm.slot}`;
    out.set(rel.id, reason);
  }
  return out;
}
