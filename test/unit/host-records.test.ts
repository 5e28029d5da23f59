// The records every run adds to on a host (.ops/history, .ops/audit.log) over a long life: a host deployed 20 times a
// day for years. Readers stay fast on a long history, the prune after a switch bounds both files keeping what names a
// release still kept, and nothing is lost on the way (an append during a rotation, a rotation cut short, a torn line).
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { parseReports, reportedAll, type StepResult } from '../../core/remote/types.ts';
import { scriptPrelude } from '../../core/remote/wrap.ts';
import { HISTORY_KEPT_LINES, historyFunctions, parseReleaseRecord } from '../../core/steps/history.ts';
import { AUDIT_ARCHIVES_KEPT, AUDIT_KEPT_LINES, AUDIT_KEYS, AUDIT_LINE_BYTES, AUDIT_ROTATE_BYTES, appendAudit, auditLine, parseAuditLine, readAudit, rotateAudit, type AuditEntry } from '../../core/steps/audit.ts';
import { unlockScript } from '../../core/steps/lock.ts';
import { lostRunEntry } from '../../core/ops/records.ts';
import { lastRunShell, STATUS_KEYS } from '../../core/steps/status.ts';
import { keptReleases, RELEASES_KEYS } from '../../core/steps/release-list.ts';
import { quote } from '../../core/shell.ts';
import { LIBRARY_KEYS, STAMPED_FUNCTIONS } from '../../core/steps/libraries.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

/** Release id number i (as releaseId makes them: ids sort by time). */
const id = (i: number) => `${String(i).padStart(8, "0")}T100000Z-${i.toString(16).padStart(12, "0")}`;

/** Scratch directories made here (tens of MB of generated records), removed at the end. */
const made: string[] = [];
afterAll(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** The app `shop` (one program) with its base directory at `base`. */
function target(base: string): Target {
  const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'run', port: 4000 } }, routes: { '/': 'web' } }, 'test');
  return resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: base, url: 'http://x' });
}

/** A scratch /srv/<app> whose history has `events` releases going live in turn, the last `kept` of them still here (the last one current). */
function host(events: number, kept: number[]): Target {
  const base = mkdtempSync(join(tmpdir(), 'ops-records-'));
  made.push(base);
  mkdirSync(join(base, '.ops'));
  for (const i of kept) mkdirSync(join(base, 'releases', id(i)), { recursive: true });
  symlinkSync(join(base, 'releases', id(kept.at(-1)!)), join(base, 'current'));
  const e = target(base);
  const lines: string[] = [];
  for (let i = 1; i <= events; i++) lines.push(`${i}\t2026-11-01T10:00:00Z\tlive\t${id(i)}\tdeploy\n`);
  writeFileSync(e.layout.history, lines.join(''));
  return e;
}

function bash(e: Target, body: string): StepResult {
  const stdout = execFileSync('bash', ['-c', `${scriptPrelude}\n${historyFunctions(e)}\n${body}`], { encoding: 'utf8', cwd: e.layout.releases });
  return { stdout, stderr: '', code: 0, durationMs: 0, reports: parseReports(stdout) };
}

const releases = (r: StepResult) => reportedAll(r, LIBRARY_KEYS.release).map(parseReleaseRecord).map((x) => [x.id, x.liveSeq]);

describe('the history over a long life', () => {
  it('100k events (years of deploys): the releases, the rollback target and the next sequence number read in well under a second each (6 s allowed for a loaded CI machine), not 5 to 10 s each as before', () => {
    const e = host(100_000, [99_998, 99_999, 100_000]);
    const started = Date.now();
    const r = bash(e, `release_reports; rollback_previous ${id(100_000)}`);
    expect(Date.now() - started).toBeLessThan(6000);
    expect(releases(r)).toEqual([[id(99_998), 99_998], [id(99_999), 99_999], [id(100_000), 100_000]]);
    expect(r.stdout).toContain(`ok ${id(99_999)}`);
  });

  it('history_compact: past twice HISTORY_KEPT_LINES, the newest lines and every line naming a kept release stay, in order; the same answers after; numbering goes on', () => {
    const total = 3 * HISTORY_KEPT_LINES;
    // Release 5 went live long ago and is still kept (rolled back to later would find it); 6 was pruned.
    const e = host(total, [5, total - 1, total]);
    const before = bash(e, `release_reports; rollback_previous ${id(total)}`);
    bash(e, `history_compact ${HISTORY_KEPT_LINES}`);
    const lines = readFileSync(e.layout.history, 'utf8').split('\n').filter(Boolean);
    expect(lines.length).toBe(HISTORY_KEPT_LINES + 1);
    expect(lines[0]).toBe(`5\t2026-11-01T10:00:00Z\tlive\t${id(5)}\tdeploy`);
    expect(lines.some((l) => l.includes(id(6)))).toBe(false);
    const after = bash(e, `release_reports; rollback_previous ${id(total)}`);
    expect(after.stdout).toBe(before.stdout);
    bash(e, `history_add live ${id(5)} rollback`);
    expect(readFileSync(e.layout.history, 'utf8').split('\n').at(-2)).toMatch(new RegExp(`^${total + 1}\\t`));
    // Under twice the bound: left as it is (not rewritten on every prune).
    const size = statSync(e.layout.history).mtimeMs;
    bash(e, `history_compact ${HISTORY_KEPT_LINES}`);
    expect(statSync(e.layout.history).mtimeMs).toBe(size);
  });

  it('a torn last line (a crash mid-append) survives a compaction as a line of its own; the next event still counts', () => {
    const total = 3 * HISTORY_KEPT_LINES;
    const e = host(total, [total - 1, total]);
    writeFileSync(e.layout.history, `${readFileSync(e.layout.history, 'utf8')}${total + 1}\t2026-11-02T00:00:00Z\tli`);
    bash(e, `history_compact ${HISTORY_KEPT_LINES}`);
    const text = readFileSync(e.layout.history, 'utf8');
    expect(text.endsWith(`${total + 1}\t2026-11-02T00:00:00Z\tli\n`)).toBe(true);
    const r = bash(e, `history_add live ${id(total - 1)} rollback; release_reports`);
    expect(releases(r)).toEqual([[id(total - 1), total + 2], [id(total), total]]);
  });
});

describe('a history edited by hand', () => {
  it('a comment, a blank line, a line ended by \\r (edited on Windows), an old line pasted at the end: every event still counts; the next is numbered after the highest, never among them', () => {
    const e = host(0, [1, 2, 3]);
    // Release 3 went live last (seq 3), its line saved with \r\n; then a comment, a blank, and release 1's first line pasted again at the end.
    writeFileSync(e.layout.history, `1\t2026-11-01T10:00:00Z\tlive\t${id(1)}\tdeploy\n2\t2026-11-01T11:00:00Z\tlive\t${id(2)}\tdeploy\n3\t2026-11-01T12:00:00Z\tlive\t${id(3)}\r\n# rolled back by hand on the 2nd, see ticket 12\n\n1\t2026-11-01T10:00:00Z\tlive\t${id(1)}\tdeploy\n`);
    expect(releases(bash(e, 'release_reports'))).toEqual([[id(1), 1], [id(2), 2], [id(3), 3]]);
    // The rollback from 3 goes to 2 (the one live before it), and the switch's event is numbered 4, after it.
    expect(bash(e, `rollback_previous ${id(3)}`).stdout.trim().split('\n').at(-1)).toBe(`ok ${id(2)}`);
    const r = bash(e, `history_add live ${id(2)} rollback; release_reports`);
    expect(releases(r)).toEqual([[id(1), 1], [id(2), 4], [id(3), 3]]);
    expect(readFileSync(e.layout.history, 'utf8').split('\n').at(-2)).toMatch(new RegExp(`^4\\t\\S+\\tlive\\t${id(2)}\\trollback$`));
  });
});

const entry = (i: number, extra: Partial<AuditEntry> = {}): string =>
  auditLine({ time: `2026-11-01T10:00:00.${String(i % 1000).padStart(3, '0')}Z`, environment: 'test', operation: 'deploy', result: 'success', actor: 'alice', run: 'https://github.com/o/r/actions/runs/123456789', ref: 'main', sha: 'a'.repeat(40), release: id(i), previous: id(i - 1), message: `entry ${i} ${'x'.repeat(200)}`, ...extra });

/** An audit log of `n` deploys (each line ~400 bytes: n = 12,000 is past AUDIT_ROTATE_BYTES). */
function auditLog(e: Target, n: number): string[] {
  const lines = Array.from({ length: n }, (_, k) => entry(k + 1));
  writeFileSync(e.layout.audit, `${lines.join('\n')}\n`);
  return lines;
}

/** A `date` that always says the same second: rotations in one second, whatever the machine's speed. */
const sameSecond = (() => {
  const dir = mkdtempSync(join(tmpdir(), 'ops-records-date-'));
  made.push(dir);
  writeFileSync(join(dir, 'date'), '#!/bin/sh\necho 20261206T215000Z\n', { mode: 0o755 });
  return dir;
})();
const rotate = (e: Target) => execFileSync('bash', ['-c', `${scriptPrelude}\n${STAMPED_FUNCTIONS}\n${rotateAudit(e)}`], { encoding: 'utf8', env: { ...process.env, PATH: `${sameSecond}:${process.env.PATH}` } });
const RUN = '0123456789abcdef';
/** The lock of run RUN taken on the scratch host (its lock directory and details, as the lock step writes them). */
function locked(e: Target): void {
  mkdirSync(e.layout.lock, { recursive: true });
  writeFileSync(join(e.layout.lock, 'info'), `operation=deploy\nactor=me\nrun=\nrun_id=${RUN}\nsince=2026-11-30T12:00:00Z\n`);
}
/** The end of run RUN on the scratch host (unlockScript: its audit lines, then the lock let go), `path` first in PATH (a stand-in for a command). */
const unlock = (e: Target, lines: string[], path = sameSecond) =>
  execFileSync('bash', ['-c', `${scriptPrelude}\n${unlockScript(e, RUN, lines.map(quote))}`], { encoding: 'utf8', env: { ...process.env, PATH: `${path}:${process.env.PATH}` } });
/** What `ops audit --lines n` reads on the scratch host (readAudit's script run by bash here): the lines, oldest first. */
const readBack = (e: Target, n: number) => {
  const stdout = execFileSync('bash', ['-c', `${scriptPrelude}\n${readAudit(e, n).script}`], { encoding: 'utf8', maxBuffer: 1 << 30 });
  return reportedAll({ stdout, stderr: '', code: 0, durationMs: 0, reports: parseReports(stdout) }, AUDIT_KEYS.entry);
};
const archives = (e: Target) => readdirSync(e.layout.state).filter((f) => /^audit\.log\..*\.gz$/.test(f)).sort();
const archived = (e: Target) => archives(e).flatMap((f) => gunzipSync(readFileSync(join(e.layout.state, f))).toString('utf8').split('\n').filter(Boolean));
const logLines = (e: Target) => readFileSync(e.layout.audit, 'utf8').split('\n').filter(Boolean);

describe('the audit log over a long life', () => {
  it('past AUDIT_ROTATE_BYTES, the end of every run (its unlock: a no-op deploy, a failure, with no switch nor prune) keeps the newest lines and those naming a kept release; the rest goes whole to a compressed archive; nothing lost', () => {
    const e = host(10, [3, 12_000]);
    const lines = [...auditLog(e, 12_000), entry(12_001, { result: 'no-op' })];
    expect(statSync(e.layout.audit).size).toBeGreaterThan(AUDIT_ROTATE_BYTES);
    locked(e);
    expect(unlock(e, [lines.at(-1)!])).toContain('@ops lock released');
    const kept = logLines(e);
    expect(kept.length).toBe(AUDIT_KEPT_LINES + 1);
    // Release 3's deploy (what explains a kept release) stays, in order, before the newest lines (the no-op's last).
    expect(parseAuditLine(kept[0]!).release).toBe(id(3));
    expect(kept.slice(1)).toEqual(lines.slice(-AUDIT_KEPT_LINES));
    expect(archives(e)).toHaveLength(1);
    expect([...archived(e), ...kept].sort()).toEqual([...lines].sort());
    expect(existsSync(e.layout.lock)).toBe(false);
    expect(statSync(e.layout.audit).mode & 0o777).toBe(0o644);
    expect(existsSync(`${e.layout.audit}.rotating`)).toBe(false);
  });

  it('under the bound: left alone; a torn last line stays a line of its own (its next append still readable)', () => {
    const e = host(10, [12_000]);
    auditLog(e, 100);
    writeFileSync(e.layout.audit, `${readFileSync(e.layout.audit, 'utf8')}{"time":"2026-`);
    const before = readFileSync(e.layout.audit, 'utf8');
    rotate(e);
    expect(readFileSync(e.layout.audit, 'utf8')).toBe(before);
    auditLog(e, 12_000);
    writeFileSync(e.layout.audit, `${readFileSync(e.layout.audit, 'utf8')}{"time":"2026-`);
    rotate(e);
    expect(logLines(e).at(-1)).toBe('{"time":"2026-');
    expect(readFileSync(e.layout.audit, 'utf8').endsWith('\n')).toBe(true);
  });

  it('two rotations in the same second: two archives, never one over the other; past AUDIT_ARCHIVES_KEPT the oldest go', () => {
    const e = host(10, [12_000]);
    const first = auditLog(e, 12_000);
    rotate(e);
    const second = auditLog(e, 12_000).map((l) => l.replace('"actor":"alice"', '"actor":"bob"'));
    writeFileSync(e.layout.audit, `${second.join('\n')}\n`);
    rotate(e);
    expect(archives(e)).toHaveLength(2);
    const all = archived(e);
    expect(all.filter((l) => l.includes('"alice"')).length).toBe(first.length - AUDIT_KEPT_LINES);
    expect(all.filter((l) => l.includes('"bob"')).length).toBe(second.length - AUDIT_KEPT_LINES);
    for (let n = 0; n < AUDIT_ARCHIVES_KEPT + 3; n++) writeFileSync(join(e.layout.state, `audit.log.20200101T0000${String(n).padStart(2, '0')}Z.gz`), '');
    auditLog(e, 12_000);
    rotate(e);
    const left = archives(e);
    expect(left).toHaveLength(AUDIT_ARCHIVES_KEPT);
    expect(left.filter((f) => f.startsWith('audit.log.2020'))).toHaveLength(AUDIT_ARCHIVES_KEPT - 3);
  });

  it('a rotation cut short (the log left aside) is merged back first, with what was appended since: nothing lost', () => {
    const e = host(10, [12_000]);
    const old = auditLog(e, 50);
    writeFileSync(`${e.layout.audit}.rotating`, `${old.join('\n')}\n`);
    writeFileSync(e.layout.audit, `${entry(99_999)}\n`);
    rotate(e);
    expect(logLines(e)).toEqual([...old, entry(99_999)]);
    expect(existsSync(`${e.layout.audit}.rotating`)).toBe(false);
  });
});

describe('the audit log read back and written to around its rotations', () => {
  it('ops audit --lines N past the live log reads the archives too, oldest first and newest last, whatever their names\' text says (.10 in one second after .9, a clock set back after the newest)', () => {
    const e = host(10, [99_999]);
    const all: string[] = [];
    // 11 rotations in one second (.2 ... .11), each archiving 500 lines; then one with the clock set back a year.
    for (let r = 0; r < 12; r++) {
      const lines = Array.from({ length: AUDIT_KEPT_LINES + 500 }, (_, k) => entry(r * 10_000 + k + 1, { message: `rotation ${r} line ${k} ${'x'.repeat(3000)}` }));
      writeFileSync(e.layout.audit, `${lines.join('\n')}\n`);
      if (r === 11) {
        const back = mkdtempSync(join(tmpdir(), 'ops-records-date-'));
        made.push(back);
        writeFileSync(join(back, 'date'), '#!/bin/sh\necho 20251206T215000Z\n', { mode: 0o755 });
        execFileSync('bash', ['-c', `${scriptPrelude}\n${STAMPED_FUNCTIONS}\n${rotateAudit(e)}`], { env: { ...process.env, PATH: `${back}:${process.env.PATH}` } });
      } else rotate(e);
      all.push(...lines.slice(0, 500));
      // What the rotation kept goes on in the next log (rewritten whole here: only the archives are looked at).
    }
    expect(archives(e)).toContain('audit.log.20261206T215000Z.12.gz');
    const live = logLines(e);
    const got = readBack(e, 1200 + live.length);
    expect(got).toEqual([...all.slice(-1200), ...live]);
    // Fewer than the live log holds: from the log alone.
    expect(readBack(e, 3)).toEqual(live.slice(-3));
  });

  it('a rotation cut short (its log still aside) is read back too, before the log begun since', () => {
    const e = host(10, [12_000]);
    const old = auditLog(e, 50);
    writeFileSync(`${e.layout.audit}.rotating`, `${old.join('\n')}\n`);
    writeFileSync(e.layout.audit, `${entry(99_999)}\n`);
    expect(readBack(e, 3)).toEqual([...old.slice(-2), entry(99_999)]);
  });

  it(`a torn last line (a writer killed mid-append) and a huge line (written by hand, a bug): every other line read whole, the huge one cut at AUDIT_LINE_BYTES`, () => {
    const e = host(10, [12_000]);
    const lines = auditLog(e, 5);
    writeFileSync(e.layout.audit, `${lines.slice(0, 2).join('\n')}\n${'y'.repeat(8 << 20)}\n${lines.slice(2).join('\n')}\n{"time":"2026-`);
    const got = readBack(e, 10);
    expect(got).toHaveLength(7);
    expect(got[2]!.length).toBe(AUDIT_LINE_BYTES);
    expect([...got.slice(0, 2), ...got.slice(3, 6)]).toEqual(lines);
    expect(got[6]).toBe('{"time":"2026-');
  });

  it("ops lock release's append (no run lock held) during a rotation waits for it: its line is never lost to the log the rotation writes over", async () => {
    const e = host(10, [12_000]);
    const lines = auditLog(e, 12_000);
    // A rotation that pauses where it has read the log and not yet put the new one in place (a slow disk).
    const { ending } = await pausedRotation(e, entry(12_001));
    const forced = auditLine({ time: 't', environment: 'test', operation: 'lock release', result: 'success', actor: 'me' });
    execFileSync('bash', ['-c', appendAudit(e, JSON.parse(forced) as AuditEntry).script]);
    expect(await ending).toContain('@ops lock released');
    const after = [...archived(e), ...logLines(e)];
    expect(after).toContain(forced);
    expect(after.sort()).toEqual([...lines, entry(12_001), forced].sort());
    expect(logLines(e).at(-1)).toBe(forced);
  });
});

/**
 * A run's unlock rotating the audit log of scratch host `e` (its lock taken, `line` its audit line), paused where the
 * log is renamed aside and the new one not yet in place (a slow disk), in the background: resolves once paused, with
 * the run's end to await.
 */
async function pausedRotation(e: Target, line: string): Promise<{ ending: Promise<string> }> {
  locked(e);
  const slow = mkdtempSync(join(tmpdir(), 'ops-records-slow-'));
  made.push(slow);
  const mark = join(slow, 'paused');
  writeFileSync(join(slow, 'chmod'), `#!/bin/sh\ncase "$*" in *audit.log.new*) : > ${quote(mark)}; sleep 2 ;; esac\nexec /bin/chmod "$@"\n`, { mode: 0o755 });
  writeFileSync(join(slow, 'date'), '#!/bin/sh\necho 20261206T215000Z\n', { mode: 0o755 });
  const ending = new Promise<string>((resolve, reject) => {
    execFile('bash', ['-c', `${scriptPrelude}\n${unlockScript(e, RUN, [quote(line)])}`], { encoding: 'utf8', env: { ...process.env, PATH: `${slow}:${process.env.PATH}` } }, (err, out) => (err ? reject(err) : resolve(out)));
  });
  for (let i = 0; i < 200 && !existsSync(mark); i++) await new Promise((r) => setTimeout(r, 25));
  expect(existsSync(mark), 'the rotation reached its pause').toBe(true);
  return { ending };
}

/** Run a step's script (or shell) on the scratch host by bash, in the background (a reader beside a writer), its reports parsed. */
const readerRun = (script: string) =>
  new Promise<StepResult>((resolve, reject) => {
    execFile('bash', ['-c', `${scriptPrelude}\n${script}`], { encoding: 'utf8', maxBuffer: 1 << 30 }, (err, stdout) => (err ? reject(err) : resolve({ stdout, stderr: '', code: 0, durationMs: 0, reports: parseReports(stdout) })));
  });

describe('the readers of the audit log during a rotation (a real rotation of a real file, paused half done)', () => {
  it("ops status's last run: read once the rotation is done (before, the log renamed aside read as no log: no last run, a failure not warned of)", async () => {
    const e = host(10, [12_000]);
    auditLog(e, 12_000);
    const failed = entry(12_001, { result: 'failed', message: 'migration failed' });
    const { ending } = await pausedRotation(e, failed);
    const r = await readerRun(lastRunShell(e));
    await ending;
    expect(reportedAll(r, STATUS_KEYS.last_run).at(-1)).toBe(failed);
  });

  it("ops releases: an interrupted deploy's failed audit line is found once the rotation is done (before: read as missing, the reason lost)", async () => {
    const e = host(10, [12_000, 12_002]);
    // 12,002: an unmarked release that never went live (its deploy interrupted), its failed deploy line in the log.
    rmSync(e.layout.current);
    symlinkSync(join(e.layout.releases, id(12_000)), e.layout.current);
    auditLog(e, 12_000);
    const why = entry(12_002, { result: 'failed', message: 'interrupted: connection lost' });
    writeFileSync(e.layout.audit, `${readFileSync(e.layout.audit, 'utf8')}${why}\n`);
    const { ending } = await pausedRotation(e, entry(12_003));
    const r = await readerRun(keptReleases(e).script);
    await ending;
    expect(reportedAll(r, RELEASES_KEYS.release_audit)).toEqual([why]);
  });
});

/** Whether this machine lets the tests mount a small tmpfs (root, and allowed to mount): a real full disk. */
const canMount = (() => {
  try {
    const d = mkdtempSync(join(tmpdir(), 'ops-records-mnt-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', d], { stdio: 'ignore' });
    execFileSync('umount', [d]);
    rmSync(d, { recursive: true });
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!canMount)('the audit log on a full or read-only disk (a small tmpfs)', () => {
  it('a rotation that runs out of space puts the log back whole (renamed: no space needed), nothing aside, no partial archive; the next run with space rotates', () => {
    const base = mkdtempSync(join(tmpdir(), 'ops-records-full-'));
    made.push(base);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', base]);
    try {
      const e = target(base);
      mkdirSync(join(e.layout.releases, id(12_000)), { recursive: true });
      mkdirSync(e.layout.state, { recursive: true });
      const lines = auditLog(e, 11_000);
      expect(statSync(e.layout.audit).size).toBeGreaterThan(AUDIT_ROTATE_BYTES);
      locked(e);
      const out = unlock(e, [entry(11_001)]);
      expect(out).toContain('@ops lock released');
      expect(logLines(e)).toEqual([...lines, entry(11_001)]);
      expect(readdirSync(e.layout.state).sort()).toEqual(['audit.log']);
      // Space again (the disk grown): the next run rotates.
      execFileSync('mount', ['-o', 'remount,size=16m', base]);
      locked(e);
      unlock(e, [entry(11_002)]);
      expect(archives(e)).toHaveLength(1);
      expect([...archived(e), ...logLines(e)]).toEqual([...lines, entry(11_001), entry(11_002)]);
    } finally {
      execFileSync('umount', ['-l', base]);
    }
  });
});

describe.skipIf(!canMount)('an append to the audit log on a full disk (a small tmpfs)', () => {
  it("ops lock release's append (appendAudit): reported as not written, with why, the step not failed (the lock is released all the same); with space again, the next append's lines are whole, the torn one a line of its own", () => {
    const base = mkdtempSync(join(tmpdir(), 'ops-records-fullappend-'));
    made.push(base);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', base]);
    try {
      const e = target(base);
      mkdirSync(e.layout.state, { recursive: true });
      writeFileSync(e.layout.audit, `${entry(1)}\n`);
      // The disk filled to its last bytes (a log, a core dump...), less than a line left.
      execFileSync('bash', ['-c', `head -c 10000000 /dev/zero > ${quote(join(base, 'filler'))} 2>/dev/null || true`]);
      const line: AuditEntry = { time: 't', environment: 'test', operation: 'lock release', result: 'success', actor: 'me', message: 'x'.repeat(5000) };
      const out = execFileSync('bash', ['-c', `${scriptPrelude}\n${appendAudit(e, line).script}`], { encoding: 'utf8' });
      const r = { stdout: out, stderr: '', code: 0, durationMs: 0, reports: parseReports(out) };
      expect(reportedAll(r, AUDIT_KEYS.append_failed)[0]).toMatch(/No space left on device/);
      rmSync(join(base, 'filler'));
      execFileSync('bash', ['-c', `${scriptPrelude}\n${appendAudit(e, [line, line]).script}`], { encoding: 'utf8' });
      const lines = readFileSync(e.layout.audit, 'utf8').split('\n').filter(Boolean).map(parseAuditLine);
      expect(lines[0]).toEqual(JSON.parse(entry(1)));
      expect(lines.slice(-2)).toEqual([line, line]);
    } finally {
      execFileSync('umount', ['-l', base]);
    }
  });
});

describe('a run lost with its connection (its runner killed outright, its network gone): ops lock release writes the line it could not', () => {
  it("the run's own line (its operation, actor, run URL, failed: interrupted, connection lost; the release its start had filled), then the release's, in one append on lines of their own", () => {
    const e = host(3, [3]);
    // A torn last line (a full disk mid-append before): the lines after it stay whole.
    writeFileSync(e.layout.audit, `${entry(1)}\n{"time":"2026-11-01T1`);
    const lock = { state: 'stale' as const, holder: { operation: 'deploy', actor: 'alice@ci', run: 'https://github.com/o/r/actions/runs/42', since: '2026-11-30T12:00:00Z' } };
    const done = ['stopped what its run left running (processes 123 456)', '', `${id(3)} is live`];
    const lost = lostRunEntry('test', lock, '2026-11-30T12:10:00Z', done, `green ${id(4)}`);
    expect(lost).toEqual({ time: '2026-11-30T12:10:00Z', environment: 'test', operation: 'deploy', result: 'failed', actor: 'alice@ci', run: 'https://github.com/o/r/actions/runs/42', release: id(4), message: `interrupted: connection lost (its connection ended: its runner killed outright or cut off; its lock, taken 2026-11-30T12:00:00Z, found stale by ops lock release); stopped what its run left running (processes 123 456); ${id(3)} is live` });
    expect(lostRunEntry('test', { ...lock, holder: { ...lock.holder, silent: '75' } }, 't', []).message).toMatch(/^interrupted: connection lost \(its connection silent for 75s: its runner gone with its network;/);
    const release: AuditEntry = { time: '2026-11-30T12:10:00Z', environment: 'test', operation: 'lock release', result: 'success', actor: 'bob', message: 'removed stale lock' };
    execFileSync('bash', ['-c', appendAudit(e, [lost, release]).script]);
    expect(logLines(e).slice(-2).map(parseAuditLine)).toEqual([lost, release]);
    expect(readBack(e, 3).map(parseAuditLine).map((x) => x.operation)).toEqual(['?', 'deploy', 'lock release']);
  });
});

describe('a run whose lock ops lock release --force took (stuck, or never coming back): its line is written by the release', () => {
  it("the run's line (its operation, actor, run URL, failed: interrupted, its lock released by force by whom; the release its start had filled), before the release's", () => {
    const lock = { state: 'held' as const, holder: { operation: 'deploy', actor: 'alice@ci', run: 'https://github.com/o/r/actions/runs/42', since: '2026-11-30T12:00:00Z' } };
    const done = ['stopped what its run left running (processes 123)', '', `${id(3)} is live`];
    expect(lostRunEntry('test', lock, '2026-11-30T12:10:00Z', done, `green ${id(4)}`, 'bob')).toEqual({
      time: '2026-11-30T12:10:00Z',
      environment: 'test',
      operation: 'deploy',
      result: 'failed',
      actor: 'alice@ci',
      run: 'https://github.com/o/r/actions/runs/42',
      release: id(4),
      message: `interrupted: its lock released by force by bob while it ran (ops lock release --force; its lock taken 2026-11-30T12:00:00Z); stopped what its run left running (processes 123); ${id(3)} is live`,
    });
  });
});

describe('an audit line is one line to every reader', () => {
  it('a message holding NEL, U+2028 or U+2029 (an app\'s output quoted by a failure): one entry per line to Python\'s splitlines and to JSON.parse, the same entry back', () => {
    const messages = ['start failed: Traceback\u0085  File "app.py"', 'a\u2028b', 'c\u2029d', 'plain \\u0085 as text'];
    const text = messages.map((message) => `${entry(1, { message })}\n`).join('');
    const read = execFileSync('python3', ['-c', 'import json,sys; print(json.dumps([json.loads(l)["message"] for l in sys.stdin.buffer.read().decode("utf-8").splitlines()]))'], { input: text, encoding: 'utf8' });
    expect(JSON.parse(read)).toEqual(messages);
    expect(text.split('\n').filter(Boolean).map((l) => parseAuditLine(l).message)).toEqual(messages);
  });
});
