// Release order from the host's history, not from clocks: the history shell functions run by bash on a
// scratch release tree (derive once for a host without history, append, report), and the pure decisions
// built on them (the previous release, what pruning keeps and why), including release ids made by a runner
// whose clock was months behind.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { clockSkewWarning } from '../../core/context.ts';
import { pruneAfterFailure, pruneAfterSwitch, parseState } from '../../core/ops/host-state.ts';
import { environmentRollback, type HostPrevious } from '../../core/ops/rollback.ts';
import { parseReports, reportedAll, type StepResult } from '../../core/remote/types.ts';
import { scriptPrelude } from '../../core/remote/wrap.ts';
import { historyFunctions, parseReleaseRecord, retention, type ReleaseRecord } from '../../core/steps/history.ts';
import { markRelease, MIRROR_PACKS, PACKAGE_CACHE_MB, pruneReleases, RELEASE_KEYS } from '../../core/steps/release.ts';
import { keptReleases, parseReleases } from '../../core/steps/release-list.ts';
import { formatReleases, RELEASE_REASON_SHOWN } from '../../core/ops/records.ts';
import { slotConfig } from '../../core/steps/switch.ts';
import { LIBRARY_KEYS } from '../../core/steps/libraries.ts';
import { waitFor } from '../hosts/proc.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

function env(base: string, release: Record<string, unknown> = {}): Target {
  const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'run', port: 4000 } }, routes: { '/': 'web' }, release }, 'test');
  return resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: base, url: 'http://x' });
}

/** A scratch /srv/<app> with releases (id → marker) and `current`. */
function host(releases: Record<string, '' | 'failed' | 'abandoned'>, current: string): string {
  const base = mkdtempSync(join(tmpdir(), 'ops-history-'));
  mkdirSync(join(base, '.ops'));
  for (const [id, mark] of Object.entries(releases)) {
    mkdirSync(join(base, 'releases', id), { recursive: true });
    writeFileSync(join(base, 'releases', id, 'REVISION'), `${id.slice(-12).padEnd(40, '0')}\n`);
    if (mark) writeFileSync(join(base, 'releases', id, `.ops-${mark}`), 'why\n');
  }
  if (current) symlinkSync(join(base, 'releases', current), join(base, 'current'));
  return base;
}

function bash(e: Target, body: string): StepResult {
  const stdout = execFileSync('bash', ['-c', `${scriptPrelude}\n${historyFunctions(e)}\n${body}`], { encoding: 'utf8' });
  return { stdout, stderr: '', code: 0, durationMs: 0, reports: parseReports(stdout) };
}

const A = '20261101T100000Z-aaaaaaaaaaaa';
const B = '20261102T100000Z-bbbbbbbbbbbb';
const C = '20261103T100000Z-cccccccccccc';
const D = '20261104T100000Z-dddddddddddd';
/** Made by a runner whose clock was months behind: sorts first, went live last. */
const SKEWED = '20260301T100000Z-eeeeeeeeeeee';

describe('history on a host (bash)', () => {
  it("a release's commit and mark are its record's (root's), not what the app left in its directory (a REVISION of its own, an .ops-failed link); a release made by an older ops (no record) is read from its own", () => {
    const base = host({ [A]: 'failed', [B]: '', [C]: '' }, C);
    const e = env(base);
    for (const id of [B, C]) {
      mkdirSync(e.layout.record(id), { recursive: true });
      writeFileSync(join(e.layout.record(id), 'REVISION'), `${id.slice(-12).padEnd(40, '1')}\n`);
      writeFileSync(join(base, 'releases', id, 'REVISION'), 'built 1796412224\n');
      symlinkSync('/nonexistent/shared-marker', join(base, 'releases', id, '.ops-failed'));
      writeFileSync(join(base, 'releases', id, '.ops-abandoned'), 'x\n');
    }
    writeFileSync(join(e.layout.record(B), '.ops-failed'), 'why\n');
    const reports = reportedAll(bash(e, 'history_init; release_reports'), LIBRARY_KEYS.release).map(parseReleaseRecord);
    expect(reports.map((r) => [r.id, r.sha, r.status])).toEqual([
      [A, 'aaaaaaaaaaaa'.padEnd(40, '0'), 'failed'],
      [B, 'bbbbbbbbbbbb'.padEnd(40, '1'), 'failed'],
      [C, 'cccccccccccc'.padEnd(40, '1'), 'ok'],
    ]);
  });

  it('a host deployed before the history existed: the order is derived once from the ids, `current` last, then appended to', () => {
    // D was rolled back to B: D abandoned, C failed, B current.
    const base = host({ [A]: '', [B]: '', [C]: 'failed', [D]: 'abandoned' }, B);
    const e = env(base);
    const first = bash(e, 'history_init; release_reports');
    expect(reportedAll(first, LIBRARY_KEYS.history)).toEqual(['derived']);
    expect(reportedAll(first, LIBRARY_KEYS.release).map(parseReleaseRecord)).toEqual([
      { id: A, sha: 'aaaaaaaaaaaa'.padEnd(40, '0'), status: 'ok', liveSeq: 1, eventSeq: 1 },
      { id: B, sha: 'bbbbbbbbbbbb'.padEnd(40, '0'), status: 'ok', liveSeq: 5, eventSeq: 5 },
      { id: C, sha: 'cccccccccccc'.padEnd(40, '0'), status: 'failed', liveSeq: undefined, eventSeq: 2 },
      { id: D, sha: 'dddddddddddd'.padEnd(40, '0'), status: 'abandoned', liveSeq: 3, eventSeq: 4 },
    ]);
    // Written once: a second look does not derive again.
    expect(reportedAll(bash(e, 'history_init; release_reports'), LIBRARY_KEYS.history)).toEqual([]);
    // A release made with a clock months behind goes live: it is the latest, whatever its id says.
    mkdirSync(join(base, 'releases', SKEWED));
    const after = bash(e, `history_add live ${SKEWED} deploy; release_reports`);
    const records = reportedAll(after, LIBRARY_KEYS.release).map(parseReleaseRecord);
    expect(records.find((r) => r.id === SKEWED)!.liveSeq).toBe(6);
    expect(reportedAll(after, LIBRARY_KEYS.history_seq)).toEqual(['6']);
    expect(choose(e, SKEWED)).toEqual(['ok', B]);
    const lines = readFileSync(join(base, '.ops', 'history'), 'utf8').trim().split('\n');
    expect(lines.at(-1)).toMatch(new RegExp(`^6\\t\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\tlive\\t${SKEWED}\\tdeploy$`));
  });

  it('read-only views derive without writing (no lock held)', () => {
    const base = host({ [A]: '', [B]: '' }, B);
    const r = bash(env(base), 'release_reports');
    expect(reportedAll(r, LIBRARY_KEYS.release).map((l) => parseReleaseRecord(l).liveSeq)).toEqual([1, 2]);
    expect(existsSync(join(base, '.ops', 'history'))).toBe(false);
  });

  it("slot_releases: the release each slot's supervisor file names in its header (as slotConfig writes it); a file without one names none", () => {
    const base = host({ [A]: '', [B]: '' }, B);
    const e = env(base);
    writeFileSync(join(base, 'blue.conf'), slotConfig(e, 'blue', join(base, 'releases', A), A));
    writeFileSync(join(base, 'green.conf'), '[program:x]\ncommand=run\n');
    const r = bash(e, `supervisor_conf_blue=${join(base, 'blue.conf')}; supervisor_conf_green=${join(base, 'green.conf')}; slot_releases`);
    expect(reportedAll(r, LIBRARY_KEYS.slot_release)).toEqual([`blue ${A}`, 'green ']);
    const none = bash(e, `supervisor_conf_blue=${join(base, 'nope.conf')}; supervisor_conf_green=${join(base, 'nope.conf')}; slot_releases`);
    expect(reportedAll(none, LIBRARY_KEYS.slot_release)).toEqual([]);
  });
});

/** rollback_choice on the host (bash): [verdict, release id]. */
function choose(e: Target, current: string, to = ''): [string, string] {
  const r = bash(e, `rollback_choice ${current} '${to}'; ops_report choice "$rollback_verdict $release_id"`);
  const [verdict = '', id = ''] = (r.reports.find(([k]) => k === 'choice')?.[1] ?? '').split(' ');
  return [verdict, id];
}

/** A scratch host whose history file holds `events` ([event, id], numbered from 1). */
function withHistory(releases: Record<string, '' | 'failed' | 'abandoned'>, current: string, events: [string, string][]): Target {
  const base = host(releases, current);
  writeFileSync(join(base, '.ops', 'history'), events.map(([event, id], i) => `${i + 1}\t2026-11-01T00:00:00Z\t${event}\t${id}\tdeploy\n`).join(''));
  return env(base);
}

describe('the rollback target, chosen on the host (bash: rollback_choice)', () => {
  // A, B went live; C went live and was rolled back from; D failed; SKEWED (the oldest id) went live last.
  const releases = { [A]: '', [B]: '', [C]: 'abandoned', [D]: 'failed', [SKEWED]: '' } as const;
  const events: [string, string][] = [['live', A], ['live', B], ['live', C], ['live', B], ['abandoned', C], ['failed', D], ['live', SKEWED]];

  it('the release live before the current one in the history, whatever the ids; failed and abandoned ones skipped', () => {
    expect(choose(withHistory(releases, SKEWED, events), SKEWED)).toEqual(['ok', B]);
    // B's last going live (4) came after C's (3): from B, C would be next by that order, but it was rolled back from.
    expect(choose(withHistory(releases, B, events.slice(0, 5)), B)).toEqual(['ok', A]);
    expect(choose(withHistory({ [A]: '' }, A, [['live', A]]), A)).toEqual(['none', '']);
    // A release that went live before but is gone from the host (pruned) is not a target.
    expect(choose(withHistory({ [B]: '', [SKEWED]: '' }, SKEWED, events), SKEWED)).toEqual(['ok', B]);
    expect(choose(withHistory({ [A]: '', [SKEWED]: '' }, SKEWED, events), SKEWED)).toEqual(['ok', A]);
  });

  it('several hosts: ONE target for the environment (environmentRollback), from what each host\'s rollback_previous reads; a rollout stopped part-way takes the hosts left behind nowhere (no-ops), not one release too far', () => {
    /** The state read of a host (rollback_previous, bash) as the environment's choice reads it. */
    const part = (name: string, e: Target, current: string): HostPrevious => {
      const [verdict = '', id = ''] = (bash(e, `ops_report previous "$(rollback_previous ${current})"`).reports.find(([k]) => k === 'previous')?.[1] ?? '').split(' ');
      return { host: name, current, previous: verdict === 'ok' ? id : '' };
    };
    // host1 and host2 on B (A before it); C rolled out one host at a time: live on host1, failed on host2.
    const host1 = withHistory({ [A]: '', [B]: '', [C]: '' }, C, [['live', A], ['live', B], ['live', C]]);
    const host2 = withHistory({ [A]: '', [B]: '', [C]: 'failed' }, B, [['live', A], ['live', B], ['failed', C]]);
    const stopped = [part('host1', host1, C), part('host2', host2, B)];
    expect(stopped).toEqual([{ host: 'host1', current: C, previous: B }, { host: 'host2', current: B, previous: A }]);
    expect(environmentRollback(stopped)).toEqual({ target: B });
    expect(environmentRollback([...stopped].reverse())).toEqual({ target: B });
    // Both on C, histories alike: their previous one; nothing earlier on any: '' (each host says so).
    const host3 = withHistory({ [A]: '', [B]: '', [C]: '' }, C, [['live', A], ['live', B], ['live', C]]);
    expect(environmentRollback([part('host1', host1, C), part('host3', host3, C)])).toEqual({ target: B });
    const lone = withHistory({ [A]: '' }, A, [['live', A]]);
    expect(environmentRollback([part('a', lone, A), part('b', lone, A)])).toEqual({ target: '' });
    // A deploy of the live commit made anew on a host (another id, D, after the rollout stopped): both still go back to B.
    const host5 = withHistory({ [A]: '', [B]: '', [C]: 'failed', [D]: '' }, D, [['live', A], ['live', B], ['failed', C], ['live', D]]);
    expect(environmentRollback([part('host1', host1, C), part('host5', host5, D)])).toEqual({ target: B });
    // Histories that differ (host4 went from A straight to C): refused, in one line naming each host's release and --to.
    const host4 = withHistory({ [A]: '', [C]: '' }, C, [['live', A], ['live', C]]);
    const differ = environmentRollback([part('host1', host1, C), part('host4', host4, C)]);
    expect(differ).toEqual({ disagree: `the hosts do not agree on the release to roll back to (host1 serves ${C} (before it: ${B}), host4 serves ${C} (before it: ${A}))` });
    // A host added since (its first release the one the others serve, nothing before it): said so, not as histories that differ.
    const added = withHistory({ [C]: '' }, C, [['live', C]]);
    expect(environmentRollback([part('host1', host1, C), part('host3', host3, C), part('added', added, C)])).toEqual({
      disagree: `added (serves ${C}) has no earlier release to go back to (deployed there first by the release it serves: added to the environment since?), while the other hosts go back to ${B}`,
      lacking: ['added'],
    });
    // Three releases live: which one is the newest is not the hosts' to agree on either.
    const three = environmentRollback([part('host1', host1, C), part('host2', host2, B), part('lone', lone, A)]);
    expect(three).toEqual({ disagree: `the hosts do not agree on the release to roll back to (host1 serves ${C} (before it: ${B}), host2 serves ${B} (before it: ${A}), lone serves ${A} (before it: none))` });
  });

  it('--to: a kept release that went live (rolled back from too), the live one is a no-op; one that never went live (failed, cut short) is refused; anything else is not kept', () => {
    const UNFINISHED = '20261105T100000Z-ffffffffffff';
    const e = withHistory({ ...releases, [UNFINISHED]: '' }, SKEWED, events);
    expect(choose(e, SKEWED, A)).toEqual(['ok', A]);
    expect(choose(e, SKEWED, C)).toEqual(['ok', C]);
    expect(choose(e, SKEWED, D)).toEqual(['never_live', D]);
    expect(choose(e, SKEWED, UNFINISHED)).toEqual(['never_live', UNFINISHED]);
    expect(choose(e, SKEWED, SKEWED)).toEqual(['noop', SKEWED]);
    expect(choose(e, SKEWED, '20260101T000000Z-0000000000aa')).toEqual(['not_kept', '']);
    // Not a release id at all (a path out of the releases directory): refused the same way, never used.
    expect(choose(e, SKEWED, '..')).toEqual(['not_kept', '']);
  });

  it('ops releases marks what rollback --to refuses as never live, by the same test (release_went_live): an interrupted deploy\'s release (no marker, no history line) is `unfinished`, never `ok`', () => {
    const UNFINISHED = '20261105T100000Z-ffffffffffff';
    const e = withHistory({ ...releases, [UNFINISHED]: '' }, SKEWED, events);
    const listing = parseReleases(e, bash(e, keptReleases(e).script));
    const status = Object.fromEntries(listing.map((r) => [r.id, r.status]));
    expect(status).toEqual({ [SKEWED]: 'current', [B]: 'ok', [A]: 'ok', [C]: 'abandoned', [D]: 'failed', [UNFINISHED]: 'unfinished' });
    // The one predicate: every release that is neither live nor marked is refused by rollback --to exactly when it is unfinished.
    for (const r of listing) if (r.status === 'ok' || r.status === 'unfinished') expect(choose(e, SKEWED, r.id)[0], r.id).toBe(r.status === 'ok' ? 'ok' : 'never_live');
    const text = formatReleases([{ host: 'web1', releases: listing }]);
    expect(text).toMatch(new RegExp(`${UNFINISHED} .*\\[unfinished: never went live\\]`));
    expect(text).not.toMatch(new RegExp(`${B} .*\\[`));
    // Why, beside each marked one: its mark's text (host() writes "why").
    expect(listing.find((r) => r.id === D)!.reason).toBe('why');
    expect(listing.find((r) => r.id === B)!.reason).toBeUndefined();
    // A host without a history yet (derived): the live release is `current`, the rest as their markers say.
    const fresh = env(host({ [A]: '', [B]: '' }, B));
    expect(parseReleases(fresh, bash(fresh, keptReleases(fresh).script)).map((r) => r.status)).toEqual(['current', 'ok']);
    // Releases with no release.json (made by hand, or by an older version): read as {} without a word on stderr.
    const listed = spawnSync('bash', ['-c', `${scriptPrelude}\n${keptReleases(fresh).script}`], { encoding: 'utf8' });
    expect(listed.status).toBe(0);
    expect(listed.stderr).not.toMatch(/No such file|line \d+:/);
  });

  it('a release whose run lost its lock before it went live: marked failed without the lock (the marker alone, no history line, never the live one): `ops releases` says failed and why, as for any failed run', () => {
    const base = host({ [A]: '', [B]: '' }, A);
    const e = env(base);
    bash(e, 'history_init >/dev/null');
    const history = readFileSync(join(base, '.ops', 'history'), 'utf8');
    const why = 'step "build" on web1 was stopped by SIGTERM: its lock released by force by bob at t';
    execFileSync('bash', ['-c', `${scriptPrelude}\n${markRelease(e, B, 'failed', why, true).script}\n${markRelease(e, A, 'failed', why, true).script}`]);
    expect(readFileSync(join(base, '.ops', 'history'), 'utf8')).toBe(history);
    expect(existsSync(join(base, 'releases', A, '.ops-failed')), 'the live release is never marked').toBe(false);
    const listing = parseReleases(e, bash(e, keptReleases(e).script));
    expect(listing.map((r) => [r.id, r.status])).toEqual([[A, 'current'], [B, 'failed']]);
    expect(formatReleases([{ host: 'web1', releases: listing }])).toMatch(new RegExp(`${B} .*\\[failed: step "build" on web1 was stopped by SIGTERM: its lock released by force by bob at t\\]`));
  });
});

describe('ops releases says why a release never went live (or was left)', () => {
  const UNFINISHED = '20261105T100000Z-ffffffffffff';
  const events: [string, string][] = [['live', A], ['failed', D], ['live', B]];
  /** An audit line as a run writes it (JSON, one line). */
  const audit = (entry: Record<string, string>) => JSON.stringify({ time: '2026-11-05T10:00:00.000Z', environment: 'test', operation: 'deploy', actor: 'alice', ...entry });

  it("a failed release: its mark's text, one line of printable characters; an unfinished one: the last failed deploy line of the audit log naming it; never a live or good one's", () => {
    const e = withHistory({ [A]: '', [B]: '', [D]: 'failed', [UNFINISHED]: '', [C]: '' }, B, events);
    const base = e.baseDir;
    const why = 'step "start green" on web1 failed with exit code 3: release x did not become healthy on slot green: /api/health answered 502';
    writeFileSync(join(base, 'releases', D, '.ops-failed'), `${why}\n\u001b[31mred\u0007\n`);
    writeFileSync(
      join(base, '.ops', 'audit.log'),
      [
        audit({ release: UNFINISHED, result: 'failed', message: 'an older failure' }),
        audit({ release: UNFINISHED, result: 'failed', message: `interrupted by SIGTERM during build on web1; ${UNFINISHED} did not go live, ${A} is still live` }),
        audit({ release: UNFINISHED, result: 'failed', operation: 'initdata', message: 'not a deploy' }),
        audit({ release: A, result: 'failed', message: 'a line about a release that went live' }),
        audit({ release: C, result: 'success', message: 'not a failure' }),
        'not json {"release":"' + UNFINISHED + '","operation":"deploy","result":"failed"',
        '',
      ].join('\n'),
    );
    const listing = parseReleases(e, bash(e, keptReleases(e).script));
    const reason = Object.fromEntries(listing.map((r) => [r.id, r.reason]));
    expect(reason).toEqual({ [B]: undefined, [A]: undefined, [D]: `${why} [31mred`, [UNFINISHED]: `interrupted by SIGTERM during build on web1; ${UNFINISHED} did not go live, ${A} is still live`, [C]: undefined });
    expect(listing.find((r) => r.id === C)!.status).toBe('unfinished');
  });

  it('the list shows the reason cut short (RELEASE_REASON_SHOWN), on the release\'s line; --json (the listing itself) gives it whole', () => {
    const long = `step "migrate" on web1 failed with exit code 1: psycopg.errors.UndefinedTable: relation "orders" does not exist ${'x'.repeat(300)}`;
    const e = withHistory({ [A]: '', [D]: 'failed', [UNFINISHED]: '' }, A, [['live', A], ['failed', D]]);
    writeFileSync(join(e.baseDir, 'releases', D, '.ops-failed'), `${long}\n`);
    const listing = parseReleases(e, bash(e, keptReleases(e).script));
    expect(listing.find((r) => r.id === D)!.reason).toBe(long);
    const text = formatReleases([{ host: 'web1', releases: listing }]);
    const line = text.split('\n').find((l) => l.includes(D))!;
    const shown = /\[failed: ([^\]]*)\]/.exec(line)![1]!;
    // The cut fell in the long last word: that word is dropped whole (oneLine).
    expect(shown.length).toBeLessThanOrEqual(RELEASE_REASON_SHOWN);
    expect(shown).toMatch(/^step "migrate" on web1 failed with exit code 1: psycopg\.errors\.UndefinedTable: relation "orders" does not exist…$/);
    expect(line).toMatch(/\]  — kept: failed: 1 of keep_failed 2, for inspection$/);
    // Unfinished without an audit line naming it (the log gone, or older than it reaches): said without a reason.
    expect(text).toMatch(new RegExp(`${UNFINISHED} .*\\[unfinished: never went live\\]  — `));
    expect(JSON.parse(JSON.stringify(listing)).find((r: { id: string }) => r.id === D).reason).toBe(long);
  });
});

const rec = (id: string, status: ReleaseRecord['status'], liveSeq?: number, eventSeq = liveSeq): ReleaseRecord => ({ id, sha: '', status, liveSeq, eventSeq });

describe('retention', () => {

  it('keep 3: one good, four failed, one good → the first good one is kept (and is the rollback target); failed ones are kept apart, fewer', () => {
    const failed = ['20261110T000000Z-f1f1f1f1f1f1', '20261111T000000Z-f2f2f2f2f2f2', '20261112T000000Z-f3f3f3f3f3f3', '20261113T000000Z-f4f4f4f4f4f4'];
    const releases = [rec(A, 'ok', 1), ...failed.map((id, i) => rec(id, 'failed', undefined, i + 2)), rec(B, 'ok', 6)];
    const kept = retention(releases, { keep: 3, keepFailed: 2, current: B, warm: [{ id: A, slot: 'blue' }] });
    expect(Object.fromEntries(kept)).toEqual({
      [B]: 'live (1 of keep 3)',
      [A]: 'good: 2 of keep 3; warm on slot blue',
      [failed[3]!]: 'failed: 1 of keep_failed 2, for inspection',
      [failed[2]!]: 'failed: 2 of keep_failed 2, for inspection',
      [failed[1]!]: undefined,
      [failed[0]!]: undefined,
    });
  });

  it('keep_failed: failed and abandoned releases compete by when they failed or were rolled back from, not by when they last went live', () => {
    const F = '20261105T100000Z-f1f1f1f1f1f1';
    // A went live (1), B went live (2), back to A (3), B abandoned (4); C went live (5), back to A (6), C abandoned (7); F failed (8).
    const releases = [rec(A, 'ok', 6), rec(B, 'abandoned', 2, 4), rec(C, 'abandoned', 5, 7), rec(F, 'failed', undefined, 8)];
    const kept = retention(releases, { keep: 5, keepFailed: 2, current: A, warm: [] });
    expect(Object.fromEntries(kept)).toEqual({
      [A]: 'live (1 of keep 5)',
      [F]: 'failed: 1 of keep_failed 2, for inspection',
      [C]: 'abandoned: 2 of keep_failed 2, for inspection',
      [B]: undefined,
    });
    // A rollback after the failed deploy is the more recent: it is first; the good releases (keep) are as before.
    const later = retention([...releases.filter((r) => r.id !== C), rec(C, 'abandoned', 9, 10), rec(D, 'ok', 1)], { keep: 1, keepFailed: 1, current: A, warm: [] });
    expect(Object.fromEntries(later)).toEqual({ [A]: 'live (1 of keep 1)', [C]: 'abandoned: 1 of keep_failed 1, for inspection', [F]: undefined, [B]: undefined, [D]: undefined });
    // An interrupted deploy (no event in the history) comes after every failure or rollback the history holds.
    const cut = retention([...releases, rec(D, 'ok', undefined, undefined)], { keep: 5, keepFailed: 3, current: A, warm: [] });
    expect([F, C, B, D].map((id) => cut.get(id))).toEqual(['failed: 1 of keep_failed 3, for inspection', 'abandoned: 2 of keep_failed 3, for inspection', 'abandoned: 3 of keep_failed 3, for inspection', undefined]);
  });

  it('good releases beyond keep are pruned, oldest to go live first; never the live or a warm one', () => {
    const releases = [rec(A, 'ok', 1), rec(B, 'ok', 2), rec(C, 'ok', 3), rec(D, 'ok', 4)];
    const kept = retention(releases, { keep: 2, keepFailed: 0, current: D, warm: [{ id: A, slot: 'green' }] });
    expect([...kept].filter(([, why]) => !why).map(([id]) => id)).toEqual([B]);
    expect(kept.get(A)).toBe('warm on slot green');
  });

  it('after a switch: the new release is the latest live, the one before stays warm (not with keep_previous off)', () => {
    const base = env('/srv/shop', { keep: 1, keep_failed: 0 });
    const state = parseState({
      stdout: '',
      stderr: '',
      code: 0,
      durationMs: 0,
      reports: [
        ['current', B],
        ['slot', 'blue'],
        ['release', `${A} x ok 1 1`],
        ['release', `${B} x ok 2 2`],
        ['release', `${C} x failed - 3`],
      ],
    });
    expect(pruneAfterSwitch(base, state, SKEWED, 'green').sort()).toEqual([A, C]);
    const cold = env('/srv/shop', { keep: 1, keep_failed: 0 });
    cold.config.switch.keep_previous = false;
    expect(pruneAfterSwitch(cold, state, SKEWED, 'green').sort()).toEqual([A, B, C]);
  });

  it('a runner clock far from the host\'s is a warning; a few seconds are not', () => {
    const hostNow = Date.parse('2026-11-25T12:00:00Z') / 1000;
    expect(clockSkewWarning({ now: () => new Date('2026-11-25T12:00:30Z') }, 'web1', String(hostNow))).toBeUndefined();
    expect(clockSkewWarning({ now: () => new Date('2026-08-25T12:00:00Z') }, 'web1', String(hostNow))).toMatch(/^this runner's clock is 92 days behind web1's: release ids and audit times carry the runner's time \(release order does not depend on it/);
    expect(clockSkewWarning({ now: () => new Date('2026-11-25T15:00:00Z') }, 'web1', String(hostNow))).toMatch(/3 hours ahead of web1's/);
    expect(clockSkewWarning({}, 'web1', undefined)).toBeUndefined();
  });
});

describe('prune on a host (bash)', () => {
  it("says which processes outside the slots still run older code after the switch: from another release's directory, or named through current before it changed; never the slots' own (OPS_SLOT), nor one started after", async () => {
    const base = host({ [B]: '', [C]: '' }, C);
    execFileSync('git', ['init', '-q', '--bare', join(base, 'repo.git')]);
    const e = env(base);
    // Without a terminal (setsid), as a supervisor program or a systemd unit runs.
    const start = (cwd: string, args: string[], extra: Record<string, string> = {}) => spawn('setsid', args, { cwd, env: { PATH: process.env.PATH, ...extra }, stdio: 'ignore' });
    const worker = start(join(base, 'releases', B), ['sleep', '30']);
    const viaCurrent = start(base, ['sh', '-c', 'sleep 30; : "$0"', join(e.layout.current, 'worker.py')]);
    const slots = start(join(base, 'releases', B), ['sleep', '30'], { OPS_SLOT: 'blue', OPS_RELEASE: B });
    const procs = [worker, viaCurrent, slots];
    try {
      // Until each runs its own program (setsid exec'd it: its command line and environment), up to 20 s.
      const comm = (c: (typeof procs)[number]) => { try { return readFileSync(`/proc/${c.pid}/comm`, 'utf8').trim(); } catch { return ''; } };
      expect(await waitFor(() => comm(worker) === 'sleep' && comm(viaCurrent) === 'sh' && comm(slots) === 'sleep', 20_000, 50)).toBe(true);
      const stale = (switchedAt: string) => {
        execFileSync('touch', ['-h', '-d', switchedAt, e.layout.current]);
        const out = execFileSync('bash', ['-c', `${scriptPrelude}\n${pruneReleases(e, []).script}`], { encoding: 'utf8' });
        return reportedAll({ stdout: out, stderr: '', code: 0, durationMs: 0, reports: parseReports(out) }, RELEASE_KEYS.stale).map((l) => l.split('\t').slice(0, 2).join(' ')).sort();
      };
      // The switch after they started: both run the previous release.
      expect(stale('+10 seconds')).toEqual([`${viaCurrent.pid} current`, `${worker.pid} ${B}`].sort());
      // current changed before the one named through it started: it runs the live release.
      expect(stale('-1 hour')).toEqual([`${worker.pid} ${B}`]);
    } finally {
      for (const c of procs) c.kill();
    }
  });

  it("keeps every set a kept release uses, wherever node_dir put its link (the root, two levels down) or as its release.json names it; removes the others", () => {
    const base = host({ [A]: '', [B]: '', [C]: '', [D]: '' }, D);
    execFileSync('git', ['init', '-q', '--bare', join(base, 'repo.git')]);
    const deps = join(base, 'shared', 'deps');
    const set = (name: string, sub = '') => {
      mkdirSync(join(deps, name, sub), { recursive: true });
      writeFileSync(join(deps, name, '.complete'), '');
      return join(deps, name, sub);
    };
    const link = (release: string, at: string, to: string) => {
      mkdirSync(dirname(join(base, 'releases', release, at)), { recursive: true });
      symlinkSync(to, join(base, 'releases', release, at));
    };
    link(D, 'node_modules', set('node-d000000000000000', 'node_modules')); // node_dir "." (this setting)
    link(D, 'venv', set('venv-d000000000000000'));
    link(C, 'apps/web/node_modules', set('node-c000000000000000', 'node_modules')); // node_dir "apps/web", since changed
    writeFileSync(join(base, 'releases', C, 'release.json'), JSON.stringify({ id: C, deps: { python: 'c000000000000001', node: 'c000000000000000' } }, null, 2) + '\n');
    link(B, 'client/node_modules', set('node-b000000000000000', 'node_modules')); // one level down: as before
    set('node-a000000000000000', 'node_modules'); // A's, whose release goes
    link(A, 'node_modules', join(deps, 'node-a000000000000000', 'node_modules'));
    set('venv-0000000000000000'); // nobody's
    const e = env(base, { node_dir: '.' });
    const out = execFileSync('bash', ['-c', `${scriptPrelude}\n${pruneReleases(e, [A]).script}`], { encoding: 'utf8' });
    expect(parseReports(out).filter(([k]) => k === 'pruned_deps').map(([, v]) => v).sort()).toEqual(['node-a000000000000000', 'venv-0000000000000000']);
    for (const kept of ['node-d000000000000000', 'venv-d000000000000000', 'node-c000000000000000', 'node-b000000000000000']) expect(existsSync(join(deps, kept))).toBe(true);
  });

  it('keeps the Git LFS contents a kept release names in its release.json, removes the others (the pruned release\'s included)', () => {
    const base = host({ [A]: '', [B]: '', [C]: '' }, C);
    execFileSync('git', ['init', '-q', '--bare', join(base, 'repo.git')]);
    const oid = (c: string) => c.repeat(64);
    const store = (o: string) => {
      mkdirSync(join(base, 'repo.git', 'lfs', 'objects', o.slice(0, 2), o.slice(2, 4)), { recursive: true });
      writeFileSync(join(base, 'repo.git', 'lfs', 'objects', o.slice(0, 2), o.slice(2, 4), o), o);
      return join(base, 'repo.git', 'lfs', 'objects', o.slice(0, 2), o.slice(2, 4), o);
    };
    const record = (id: string, oids: string[]) => writeFileSync(join(base, 'releases', id, 'release.json'), JSON.stringify({ id, lfs: oids.map((o, i) => ({ path: `assets/${i}.bin`, oid: o })) }, null, 2) + '\n');
    record(A, [oid('a')]);
    record(B, [oid('b'), oid('c')]);
    record(C, [oid('c')]);
    const files = { a: store(oid('a')), b: store(oid('b')), c: store(oid('c')), d: store(oid('d')) };
    execFileSync('bash', ['-c', `${scriptPrelude}\n${pruneReleases(env(base), [A]).script}`], { encoding: 'utf8' });
    expect(Object.fromEntries(Object.entries(files).map(([k, f]) => [k, existsSync(f)]))).toEqual({ a: false, b: true, c: true, d: false });
  });

  it("keeps the mirror's refs of the commits a kept release needs (its REVISION, the submodule commits its release.json names); drops the others, the pruned release's included", () => {
    const base = host({ [A]: '', [B]: '', [C]: '' }, C);
    const mirror = join(base, 'repo.git');
    execFileSync('git', ['init', '-q', '--bare', mirror]);
    const blob = execFileSync('git', ['--git-dir', mirror, 'hash-object', '-w', '--stdin'], { input: '', encoding: 'utf8' }).trim();
    const sha = (id: string) => `${id.slice(-12).padEnd(40, '0')}`; // host()'s REVISION
    const submodule = 'e'.repeat(40);
    writeFileSync(join(base, 'releases', C, 'release.json'), JSON.stringify({ id: C, submodules: [{ path: 'lib', sha: submodule }] }, null, 2) + '\n');
    const refs = { a: sha(A), b: sha(B), c: sha(C), submodule, other: 'f'.repeat(40) };
    for (const s of Object.values(refs)) execFileSync('git', ['--git-dir', mirror, 'update-ref', `refs/ops/sha/${s}`, blob]);
    execFileSync('bash', ['-c', `${scriptPrelude}\n${pruneReleases(env(base), [A]).script}`], { encoding: 'utf8' });
    const left = new Set(execFileSync('git', ['--git-dir', mirror, 'for-each-ref', '--format=%(refname:lstrip=3)', 'refs/ops/sha/'], { encoding: 'utf8' }).split('\n').filter(Boolean));
    expect(Object.fromEntries(Object.entries(refs).map(([k, s]) => [k, left.has(s)]))).toEqual({ a: false, b: true, c: true, submodule: true, other: false });
  });

  it(`bounds the mirror: past ${MIRROR_PACKS} packs (one a deploy of a new commit), repacked into one holding what the kept releases' commits reach, dropping a pruned release's objects (a file committed on another branch); at ${MIRROR_PACKS} or fewer, left as it is`, () => {
    const base = host({ [A]: '', [B]: '', [C]: '' }, C);
    const mirror = join(base, 'repo.git');
    execFileSync('git', ['init', '-q', '--bare', mirror]);
    const work = join(base, 'work');
    const git = (...args: string[]) => execFileSync('git', ['-C', work, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { encoding: 'utf8' }).trim();
    mkdirSync(work);
    git('init', '-q', '-b', 'main');
    // What a deploy does: a pack of the objects the mirror lacks, indexed (receivePack), its commit pinned.
    const deploy = (sha: string, since?: string) => {
      const pack = execFileSync('git', ['-C', work, 'pack-objects', '--stdout', '--revs', '-q'], { input: since ? `${sha}\n^${since}\n` : `${sha}\n` });
      execFileSync('git', ['--git-dir', mirror, 'index-pack', '--stdin', '--fix-thin'], { input: pack });
      execFileSync('git', ['--git-dir', mirror, 'update-ref', `refs/ops/sha/${sha}`, sha]);
      return sha;
    };
    const commits: string[] = [];
    const step = (n: number) => {
      writeFileSync(join(work, 'n.txt'), `${n}\n`);
      git('add', '-A');
      git('commit', '-q', '-m', `c${n}`);
      commits.push(deploy(git('rev-parse', 'HEAD'), commits.at(-1)));
    };
    writeFileSync(join(work, 'secret.bin'), 'committed by mistake\n');
    git('add', '-A');
    git('commit', '-q', '-m', 'side');
    const side = deploy(git('rev-parse', 'HEAD'));
    const secret = git('rev-parse', 'HEAD:secret.bin');
    git('checkout', '-q', '--orphan', 'trunk');
    git('rm', '-q', '--cached', 'secret.bin');
    rmSync(join(work, 'secret.bin'));
    for (let n = 1; n < MIRROR_PACKS; n++) step(n);
    const revision = (id: string, sha: string) => writeFileSync(join(base, 'releases', id, 'REVISION'), `${sha}\n`);
    revision(A, side);
    revision(B, commits.at(-2)!);
    revision(C, commits.at(-1)!);
    const packs = () => readdirSync(join(mirror, 'objects', 'pack')).filter((f) => f.endsWith('.pack')).length;
    const has = (o: string) => spawnSync('git', ['--git-dir', mirror, 'cat-file', '-e', o]).status === 0;
    // MIRROR_PACKS packs: nothing repacked (A's ref goes, its objects stay until the bound is passed).
    expect(packs()).toBe(MIRROR_PACKS);
    execFileSync('bash', ['-c', `${scriptPrelude}\n${pruneReleases(env(base), [A]).script}`], { encoding: 'utf8' });
    expect([packs(), has(side), has(secret)]).toEqual([MIRROR_PACKS, true, true]);
    // One deploy more: repacked, only what the kept commits reach.
    step(MIRROR_PACKS);
    revision(C, commits.at(-1)!);
    const out = spawnSync('bash', ['-c', `${scriptPrelude}\n${pruneReleases(env(base), []).script}`], { encoding: 'utf8' });
    expect(out.stderr).not.toContain('could not repack');
    expect([packs(), has(side), has(secret)]).toEqual([1, false, false]);
    expect(commits.every(has)).toBe(true);
    expect(execFileSync('git', ['--git-dir', mirror, 'fsck', '--connectivity-only'], { encoding: 'utf8' })).toBe('');
  });

  it("reads what ops recorded of each kept release (its record's release.json, not the app's copy: a release made by an older ops, its own), and removes the records of the releases it removes and of those no longer here", () => {
    const base = host({ [A]: '', [B]: '', [C]: '' }, C);
    execFileSync('git', ['init', '-q', '--bare', join(base, 'repo.git')]);
    const e = env(base);
    const oid = (c: string) => c.repeat(64);
    const stored = (o: string) => {
      const f = join(e.layout.lfsStore, o.slice(0, 2), o.slice(2, 4), o);
      mkdirSync(join(f, '..'), { recursive: true });
      writeFileSync(f, o);
      return f;
    };
    const json = (id: string, o: string) => JSON.stringify({ id, lfs: [{ path: 'a.bin', oid: o }] }, null, 2) + '\n';
    for (const id of [A, B, 'gone']) mkdirSync(e.layout.record(id), { recursive: true });
    writeFileSync(join(e.layout.record(B), 'release.json'), json(B, oid('b')));
    writeFileSync(join(base, 'releases', B, 'release.json'), json(B, oid('e'))); // the app's copy, rewritten: not read
    writeFileSync(join(base, 'releases', C, 'release.json'), json(C, oid('c'))); // made by an older ops: its own
    const files = { b: stored(oid('b')), c: stored(oid('c')), e: stored(oid('e')) };
    execFileSync('bash', ['-c', `${scriptPrelude}\n${pruneReleases(e, [A]).script}`], { encoding: 'utf8' });
    expect(Object.fromEntries(Object.entries(files).map(([k, f]) => [k, existsSync(f)]))).toEqual({ b: true, c: true, e: false });
    expect([A, B, 'gone'].map((id) => existsSync(e.layout.record(id)))).toEqual([false, true, false]);
  });

  it("removes the logs of programs no slot runs any more (renamed or removed), rotated copies too; keeps those a slot's supervisor file or the settings name, and everything when no slot file is there", () => {
    const base = host({ [A]: '' }, A);
    execFileSync('git', ['init', '-q', '--bare', join(base, 'repo.git')]);
    const logs = join(base, 'log');
    const etc = join(base, 'etc');
    mkdirSync(logs);
    mkdirSync(etc);
    const e0 = env(base);
    const e: Target = { ...e0, layout: { ...e0.layout, logDir: logs, supervisorConf: (slot) => join(etc, `shop-${slot}.conf`) } };
    const files = ['web-blue.out.log', 'web-blue.out.log.1', 'web-green.err.log', 'warm-blue.out.log', 'warm-blue.err.log.5', 'old-blue.out.log', 'old-blue.out.log.3', 'old-green.err.log', 'x-blue-green.out.log', 'notes.txt'];
    const prune = () => {
      for (const f of files) writeFileSync(join(logs, f), 'line\n');
      execFileSync('bash', ['-c', `${scriptPrelude}\n${pruneReleases(e, []).script}`], { encoding: 'utf8' });
      return files.filter((f) => existsSync(join(logs, f))).sort();
    };
    // No slot file: nothing to judge by, nothing removed.
    expect(prune()).toEqual([...files].sort());
    // The warm slot (blue) still runs `warm`, renamed since to `web` (the settings; the new slot, green, runs it).
    writeFileSync(join(etc, 'shop-blue.conf'), '[group:shop-blue]\nprograms=shop-blue-warm\n\n[program:shop-blue-warm]\ncommand=x\n');
    writeFileSync(join(etc, 'shop-green.conf'), '[group:shop-green]\nprograms=shop-green-web\n\n[program:shop-green-web]\ncommand=x\n');
    expect(prune()).toEqual(['notes.txt', 'warm-blue.err.log.5', 'warm-blue.out.log', 'web-blue.out.log', 'web-blue.out.log.1', 'web-green.err.log']);
  });

  it('drops the fingerprint lines of the releases it removes and of those no longer here; keeps the others as they are', () => {
    const base = host({ [A]: '', [B]: '' }, A);
    execFileSync('git', ['init', '-q', '--bare', join(base, 'repo.git')]);
    const e = env(base);
    const line = (id: string) => `${id} ${'f'.repeat(16)} ${'a'.repeat(64)} ${'b'.repeat(64)} programs=0123abcd`;
    writeFileSync(e.layout.fingerprint, `${line('20200101T000000Z-000000000000')}\n${line(A)}\n${line(B)}\n`);
    execFileSync('bash', ['-c', `${scriptPrelude}\n${pruneReleases(e, [B]).script}`], { encoding: 'utf8' });
    expect(readFileSync(e.layout.fingerprint, 'utf8')).toBe(`${line(A)}\n`);
  });

  // setpriv --init-groups needs root (the prune's own user on a host).
  it.skipIf(process.getuid?.() !== 0)('empties a package cache past PACKAGE_CACHE_MB of its own (files a kept set shares with it by hard links are the set\'s), as the app user; keeps one under it; a run that made no set does not weigh them', () => {
    const base = host({ [A]: '' }, A);
    execFileSync('git', ['init', '-q', '--bare', join(base, 'repo.git')]);
    const e0 = env(base);
    const caches = ['uv', 'pip', 'npm'].map((c) => join(base, 'home', c));
    const e: Target = { ...e0, appUser: userInfo().username, layout: { ...e0.layout, packageCaches: caches } };
    const [uv, pip, npm] = caches as [string, string, string];
    const set = join(base, 'shared', 'deps', 'venv-0000000000000000');
    mkdirSync(set, { recursive: true });
    symlinkSync(set, join(base, 'releases', A, 'venv')); // the live release's: kept
    for (const c of caches) mkdirSync(c, { recursive: true });
    const big = (path: string, mb: number) => execFileSync('fallocate', ['-l', `${mb}M`, path]);
    big(join(uv, 'wheel'), PACKAGE_CACHE_MB + 10); // the cache's own: past the bound
    big(join(pip, 'linked'), PACKAGE_CACHE_MB + 10); // a kept set's file too: the set's
    linkSync(join(pip, 'linked'), join(set, 'linked'));
    big(join(npm, 'small'), 5);
    try {
      // A run that made no dependency set here (caches false) does not weigh the caches: nothing emptied.
      const quiet = execFileSync('bash', ['-c', `${scriptPrelude}\n${pruneReleases(e, [], false).script}`], { encoding: 'utf8' });
      expect(parseReports(quiet).filter(([k]) => k === 'pruned_cache')).toEqual([]);
      expect(existsSync(join(uv, 'wheel'))).toBe(true);
      const out = execFileSync('bash', ['-c', `${scriptPrelude}\n${pruneReleases(e, []).script}`], { encoding: 'utf8' });
      const emptied = parseReports(out).filter(([k]) => k === 'pruned_cache').map(([, v]) => v.split(' '));
      expect(emptied.map(([, c]) => c)).toEqual([uv]);
      expect(Number(emptied[0]![0])).toBeGreaterThan(PACKAGE_CACHE_MB);
      expect([existsSync(uv), existsSync(join(pip, 'linked')), existsSync(join(npm, 'small')), existsSync(join(set, 'linked'))]).toEqual([false, true, true, true]);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('removes the releases it is given, except the live one and any a process runs from; keeps what kept releases use', () => {
    const base = host({ [A]: '', [B]: '', [C]: 'failed', [D]: '' }, D);
    mkdirSync(join(base, 'shared', 'deps'), { recursive: true });
    execFileSync('git', ['init', '-q', '--bare', join(base, 'repo.git')]);
    const e = env(base);
    // A process still running from B (a warm slot): never pruned, whatever the list says.
    const child = spawn('sleep', ['30'], { cwd: join(base, 'releases', B), stdio: 'ignore' });
    try {
      const script = `${scriptPrelude}\n${pruneReleases(e, [A, B, C, D]).script}`;
      const out = execFileSync('bash', ['-c', script], { encoding: 'utf8' });
      const reports = parseReports(out);
      expect(reports.filter(([k]) => k === 'pruned').map(([, v]) => v).sort()).toEqual([A, C]);
      expect(reports.filter(([k]) => k === 'kept_running').map(([, v]) => v).sort()).toEqual([B, D]);
      expect(existsSync(join(base, 'releases', B))).toBe(true);
      expect(existsSync(join(base, 'releases', D))).toBe(true);
    } finally {
      child.kill();
    }
  });
});

describe('keep_failed on a host: the latest failures and rollbacks are kept (bash history, ops releases, prune)', () => {
  it('deploy v1, v2, rollback, v2, rollback, a broken build: the failed release is kept for inspection, not the oldest rolled-back one; the next deploy prunes that one; a run of failed deploys keeps keep_failed of them, pruned after each failure', () => {
    const base = host({}, '');
    mkdirSync(join(base, 'releases'));
    execFileSync('git', ['init', '-q', '--bare', join(base, 'repo.git')]);
    const e = env(base); // keep 5, keep_failed 2
    const run = (script: string): StepResult => {
      const stdout = execFileSync('bash', ['-c', `${scriptPrelude}\n${script}`], { encoding: 'utf8' });
      return { stdout, stderr: '', code: 0, durationMs: 0, reports: parseReports(stdout) };
    };
    let n = 0;
    const made = (sha: string) => {
      const id = `202612${String(++n).padStart(2, '0')}T100000Z-${sha.repeat(12)}`;
      mkdirSync(join(base, 'releases', id));
      writeFileSync(join(base, 'releases', id, 'REVISION'), `${sha.repeat(40)}\n`);
      return id;
    };
    const live = (id: string, operation: string) => {
      run(`${historyFunctions(e)}\nhistory_add live ${id} ${operation}`);
      rmSync(join(base, 'current'), { force: true });
      symlinkSync(join(base, 'releases', id), join(base, 'current'));
    };
    let current = '';
    const deploy = (sha: string) => {
      const id = made(sha);
      live(id, 'deploy');
      return (current = id);
    };
    const rollback = () => {
      const [verdict, to] = choose(e, current);
      expect(verdict).toBe('ok');
      live(to, 'rollback');
      run(markRelease(e, current, 'abandoned', `rolled back to ${to}`).script);
      current = to;
    };
    const broken = (sha: string) => {
      const id = made(sha);
      run(markRelease(e, id, 'failed', 'build failed').script);
      return id;
    };
    const kept = () => new Map(parseReleases(e, run(keptReleases(e).script)).map((r) => [r.id, r.kept]));

    const v1 = deploy('1');
    const v2 = deploy('2');
    rollback();
    const v2again = deploy('2');
    rollback();
    const failed = broken('b');
    const listing = parseReleases(e, run(keptReleases(e).script));
    expect(Object.fromEntries(listing.map((r) => [r.id, r.kept]))).toEqual({
      [v1]: 'live (1 of keep 5)',
      [failed]: 'failed: 1 of keep_failed 2, for inspection',
      [v2again]: 'abandoned: 2 of keep_failed 2, for inspection',
      [v2]: undefined,
    });
    const text = formatReleases([{ host: 'web1', releases: listing }]);
    expect(text).toMatch(new RegExp(`${failed} .*\\[failed: build failed\\]  — kept: failed: 1 of keep_failed 2, for inspection`));
    expect(text).toMatch(new RegExp(`${v2} .*\\[abandoned: rolled back to ${v1}\\]  — pruned by the next deploy`));

    // The next deploy: what ops releases said goes is what pruning removes; the failed release stays.
    const state = parseState(run(`${historyFunctions(e)}\nops_report current ${current}\nops_report slot blue\nrelease_reports`));
    const v3 = made('3');
    const remove = pruneAfterSwitch(e, state, v3, 'green');
    expect(remove).toEqual([v2]);
    live(v3, 'deploy');
    current = v3;
    const pruned = parseReports(execFileSync('bash', ['-c', `${scriptPrelude}\n${pruneReleases(e, remove).script}`], { encoding: 'utf8' }));
    expect(pruned.filter(([k]) => k === 'pruned').map(([, v]) => v)).toEqual([v2]);
    expect(existsSync(join(base, 'releases', failed))).toBe(true);

    // Another broken build: it is the latest, the first failed one the second; the rolled-back one goes next.
    const failedAgain = broken('c');
    expect(Object.fromEntries(kept())).toEqual({
      [v3]: 'live (1 of keep 5)',
      [v1]: 'good: 2 of keep 5',
      [failedAgain]: 'failed: 1 of keep_failed 2, for inspection',
      [failed]: 'failed: 2 of keep_failed 2, for inspection',
      [v2again]: undefined,
    });

    // A third broken build, in a run of failures: the prune after it (under its lock) keeps keep_failed of them, the
    // live and good ones, not every failure until the next deploy that goes live.
    const before = parseState(run(`${historyFunctions(e)}\nops_report current ${current}\nops_report slot green\nrelease_reports`));
    const third = broken('d');
    const after = pruneAfterFailure(e, before, third);
    expect(after.sort()).toEqual([failed, v2again].sort());
    const gone = parseReports(execFileSync('bash', ['-c', `${scriptPrelude}\n${pruneReleases(e, after).script}`], { encoding: 'utf8' }));
    expect(gone.filter(([k]) => k === 'pruned').map(([, v]) => v).sort()).toEqual([failed, v2again].sort());
    expect(Object.fromEntries(kept())).toEqual({
      [v3]: 'live (1 of keep 5)',
      [v1]: 'good: 2 of keep 5',
      [third]: 'failed: 1 of keep_failed 2, for inspection',
      [failedAgain]: 'failed: 2 of keep_failed 2, for inspection',
    });
  });
});

describe('a torn last line in the history (a crash mid-append left it without its newline)', () => {
  it('the next event starts a line of its own and counts: the release that went live reads so', () => {
    const e = withHistory({ [A]: '', [B]: '', [C]: '' }, A, [['live', A]]);
    const file = join(e.layout.state, 'history');
    // Cut in the middle of an event about B (its id whole, its operation cut), then C goes live.
    writeFileSync(file, `${readFileSync(file, 'utf8')}2\t2026-11-02T00:00:00Z\tlive\t${B}\tdep`);
    const r = bash(e, `history_add live ${C} deploy; release_reports`);
    const lines = readFileSync(file, 'utf8').split('\n');
    expect(lines.at(-2)).toMatch(new RegExp(`^3\\t[^\\t]+\\tlive\\t${C}\\tdeploy$`));
    const live = Object.fromEntries(reportedAll(r, LIBRARY_KEYS.release).map((l) => l.split(' ')).map(([id, , , seq]) => [id, seq]));
    expect(live[C]).toBe('3');
  });
});
