// A release's own .env and environ (core/steps/release.ts createRelease, core/steps/artifact.ts), run by bash on
// scratch host trees with a real git mirror, tar and gzip: the release made from a commit that has a .env of its
// own gets the deploy's in its place (0600), the uploads gone; packed for other hosts, the release leaves its
// .env and environ behind (not a nested client/.env of the app); a host receiving it puts in its own.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { parseReports, type StepResult } from '../../core/remote/types.ts';
import { scriptText } from '../../core/remote/wrap.ts';
import { packArtifacts, parsePacked, unpackArtifacts } from '../../core/steps/artifact.ts';
import { createRelease, markRelease, type DotenvUploads } from '../../core/steps/release.ts';
import { treeLibrary } from '../../core/steps/libraries.ts';
import type { Step } from '../../core/remote/types.ts';
import { resolveTarget, type Target } from '../../core/target.ts';

const run = promisify(execFile);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const ID = '20261201T100000Z-0123456789ab';
/** A file outside the tree that a committed link points at: never written through. */
const VICTIM = join(mkdtempSync(join(tmpdir(), 'ops-release-victim-')), 'passwd');

/** A scratch host tree (base directory) with the layout's directories; the app user is root (the test's own). */
function target(): Target {
  const base = mkdtempSync(join(tmpdir(), 'ops-release-env-'));
  for (const d of ['releases', 'shared/deps', '.ops/uploads']) mkdirSync(join(base, d), { recursive: true });
  const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'run', port: 8000, health: '/health' } }, routes: { '/': 'web' } }, 'test');
  return resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'root', baseDir: base, url: 'http://x' });
}

async function runStep(step: Step): Promise<StepResult> {
  const { stdout, stderr } = await run('bash', ['-c', scriptText(step)], { encoding: 'utf8' });
  return { stdout, stderr, code: 0, durationMs: 0, reports: parseReports(stdout) };
}

/** Upload files as a deploy leaves them under .ops/uploads. */
function uploads(t: Target, tag: string, dotenv: string): DotenvUploads {
  const u = { dotenv: `${t.layout.uploads}/${tag}.env`, environ: `${t.layout.uploads}/${tag}.environ`, masks: `${t.layout.uploads}/${tag}.masks` };
  writeFileSync(u.dotenv, dotenv, { mode: 0o600 });
  writeFileSync(u.environ, dotenv.replace(/\n/g, '\0'), { mode: 0o600 });
  writeFileSync(u.masks, dotenv.split('=')[1]!, { mode: 0o600 });
  return u;
}

/**
 * The app's repository as the host's mirror holds it: a committed .env (a developer's defaults) and client/.env;
 * `shape` makes the committed .env and .ops-environ what users also commit: a directory, links out of the tree (and
 * REVISION, release.json, .ops-files and .ops-failed links out of it too).
 */
function mirror(t: Target, shape: 'file' | 'odd' = 'file'): string {
  const work = mkdtempSync(join(tmpdir(), 'ops-release-repo-'));
  const git = (...args: string[]) => execFileSync('git', ['-C', work, ...args], { encoding: 'utf8', env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@x', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@x' } }).trim();
  git('init', '-q', '-b', 'main');
  mkdirSync(join(work, 'client'));
  if (shape === 'file') writeFileSync(join(work, '.env'), 'TOKEN=committed-default\n');
  else {
    mkdirSync(join(work, '.env'));
    writeFileSync(join(work, '.env', 'production'), 'TOKEN=committed-default\n');
    symlinkSync(VICTIM, join(work, '.ops-environ'));
    // And links named like what ops records of a release (core/layout.ts): root writes through none of them.
    for (const name of ['REVISION', 'release.json', '.ops-files', '.ops-failed']) symlinkSync(VICTIM, join(work, name));
  }
  writeFileSync(join(work, 'client', '.env'), 'VITE_TITLE=shop\n');
  writeFileSync(join(work, 'app.py'), 'print(1)\n');
  git('add', '-A');
  git('commit', '-q', '-m', 'app');
  execFileSync('git', ['clone', '-q', '--bare', work, t.layout.mirror]);
  return git('rev-parse', 'HEAD');
}

const meta = (sha: string) => ({ id: ID, sha, ref: 'main', environment: 'test', actor: 'me', time: 't', run: '', deps: { python: 'p', node: 'n' } });

describe("a release's own .env and environ", () => {
  it('made into the release (in place of a committed .env), 0600; packed without them (a nested client/.env stays); a receiving host puts in its own', async () => {
    const builder = target();
    const sha = mirror(builder);
    const given = uploads(builder, 'a', 'TOKEN=builder-secret\n');
    await runStep(createRelease(builder, meta(sha), given));
    const dir = `${builder.layout.releases}/${ID}`;
    expect(lstatSync(builder.layout.dotenv(dir)).isFile()).toBe(true);
    expect(readFileSync(builder.layout.dotenv(dir), 'utf8')).toBe('TOKEN=builder-secret\n');
    expect(readFileSync(builder.layout.environ(dir), 'utf8')).toBe('TOKEN=builder-secret\0');
    expect(statSync(builder.layout.dotenv(dir)).mode & 0o777).toBe(0o600);
    expect(statSync(builder.layout.environ(dir)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'client', '.env'), 'utf8')).toBe('VITE_TITLE=shop\n');
    // Its masks file in its record (root's), not in the directory the app user owns (which could remove or replace it).
    const masks = builder.layout.masks(builder.layout.record(ID));
    expect(readFileSync(masks, 'utf8')).toBe('builder-secret\n');
    expect(statSync(masks).mode & 0o777).toBe(0o600);
    expect(statSync(masks).uid, 'owned by root: only the host masking reads it').toBe(0);
    expect(existsSync(builder.layout.masks(dir)), 'none in the release directory').toBe(false);
    expect(existsSync(given.dotenv) || existsSync(given.environ) || existsSync(given.masks), 'the uploads are removed').toBe(false);

    const packed = parsePacked(await runStep(packArtifacts(builder, ID, [])), 'web1');
    expect(packed.map((p) => p.name)).toEqual(['release']);
    // What it takes unpacked, as du counts it on the builder: the receivers' space is checked against it.
    expect(packed[0]!.unpacked!.bytes).toBeGreaterThan(0);
    expect(packed[0]!.unpacked!.inodes).toBeGreaterThan(1);
    const file = `${builder.layout.uploads}/pack-${ID}/release`;
    const members = execFileSync('bash', ['-c', `gzip -dc < '${file}' | tar -tf -`], { encoding: 'utf8' }).trim().split('\n');
    expect(members).toContain(`${ID}/client/.env`);
    expect(members).toContain(`${ID}/app.py`);
    expect(members).not.toContain(`${ID}/.env`);
    expect(members).not.toContain(`${ID}/.ops-environ`);
    expect(members.filter((m) => m.endsWith('.ops-masks')), 'the masks file stays on its host too').toEqual([]);

    const receiver = target();
    const mine = uploads(receiver, 'b', 'TOKEN=receiver-secret\n');
    await runStep(unpackArtifacts(receiver, meta(sha), [{ name: 'release', uploads: [file], sha256: packed[0]!.sha256 }], 'web1', mine));
    const got = `${receiver.layout.releases}/${ID}`;
    expect(readFileSync(receiver.layout.dotenv(got), 'utf8')).toBe('TOKEN=receiver-secret\n');
    expect(readFileSync(receiver.layout.masks(receiver.layout.record(ID)), 'utf8')).toBe('receiver-secret\n');
    expect(statSync(receiver.layout.masks(receiver.layout.record(ID))).mode & 0o777).toBe(0o600);
    expect(existsSync(receiver.layout.masks(got))).toBe(false);
    expect(readFileSync(receiver.layout.environ(got), 'utf8')).toBe('TOKEN=receiver-secret\0');
    expect(statSync(receiver.layout.dotenv(got)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(got, 'client', '.env'), 'utf8')).toBe('VITE_TITLE=shop\n');
    expect(existsSync(mine.dotenv) || existsSync(mine.environ), 'the uploads are removed').toBe(false);
    expect(readdirSync(receiver.layout.releases)).toEqual([ID]);
    // Its record: this deploy's commit, and the builder's record of its files as made (packed beside the release).
    expect(members).toContain('.ops-files');
    expect(readFileSync(join(receiver.layout.record(ID), 'REVISION'), 'utf8')).toBe(`${sha}\n`);
    expect(readFileSync(receiver.layout.treeMade(receiver.layout.record(ID)), 'utf8')).toBe(readFileSync(builder.layout.treeMade(builder.layout.record(ID)), 'utf8'));
  });

  it('a committed .env directory and an .ops-environ link out of the tree (and links at REVISION, release.json, .ops-files, .ops-failed, a build\'s .ops-tree.new): replaced by the deploy\'s files, or ops\'s records kept in root\'s record directory, nothing written through a link; packed without them', async () => {
    writeFileSync(VICTIM, 'root:x:0:0\n', { mode: 0o644 });
    const t = target();
    const sha = mirror(t, 'odd');
    await runStep(createRelease(t, meta(sha), uploads(t, 'd', 'TOKEN=given\n')));
    const dir = `${t.layout.releases}/${ID}`;
    for (const [file, text] of [[t.layout.dotenv(dir), 'TOKEN=given\n'], [t.layout.environ(dir), 'TOKEN=given\0']] as const) {
      expect(lstatSync(file).isFile(), file).toBe(true);
      expect(readFileSync(file, 'utf8')).toBe(text);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    }
    expect(readFileSync(VICTIM, 'utf8'), 'nothing written through the links the commit has').toBe('root:x:0:0\n');
    // The release's records are root's, beside it; its REVISION and release.json ops's own files in place of the links.
    const rec = t.layout.record(ID);
    expect(readFileSync(join(rec, 'REVISION'), 'utf8')).toBe(`${sha}\n`);
    expect(JSON.parse(readFileSync(join(rec, 'release.json'), 'utf8'))).toMatchObject({ id: ID, sha });
    expect(existsSync(t.layout.treeMade(rec))).toBe(true);
    for (const name of ['REVISION', 'release.json']) {
      expect(lstatSync(join(dir, name)).isFile(), name).toBe(true);
      expect(readFileSync(join(dir, name), 'utf8')).toBe(readFileSync(join(rec, name), 'utf8'));
    }
    // Marked failed (the commit's .ops-failed a link), then switched to (tree_record, a build's .ops-tree.new a link): into its record.
    symlinkSync(VICTIM, join(dir, '.ops-tree.new'));
    await runStep(markRelease(t, ID, 'failed', 'the build failed'));
    await run('bash', ['-c', `set -euo pipefail\n${treeLibrary(t)}\ntree_record ${dir} ${rec}`]);
    expect(readFileSync(join(rec, '.ops-failed'), 'utf8')).toBe('the build failed\n');
    expect(statSync(t.layout.treeLive(rec)).mode & 0o777).toBe(0o600);
    expect(readFileSync(VICTIM, 'utf8')).toBe('root:x:0:0\n');
    expect(statSync(VICTIM).mode & 0o777).toBe(0o644);
    // A release made by an older ops (no record): its mark in its own directory, renamed over the link there.
    rmSync(rec, { recursive: true });
    await runStep(markRelease(t, ID, 'abandoned', 'rolled back'));
    expect(lstatSync(join(dir, '.ops-abandoned')).isFile()).toBe(true);
    rmSync(join(dir, '.ops-failed'));
    symlinkSync(VICTIM, join(dir, '.ops-failed'));
    await runStep(markRelease(t, ID, 'failed', 'again'));
    expect(readFileSync(join(dir, '.ops-failed'), 'utf8')).toBe('again\n');
    expect(lstatSync(join(dir, '.ops-failed')).isFile()).toBe(true);
    expect(readFileSync(VICTIM, 'utf8')).toBe('root:x:0:0\n');
    parsePacked(await runStep(packArtifacts(t, ID, [])), 'web1');
    const members = execFileSync('bash', ['-c', `gzip -dc < '${t.layout.uploads}/pack-${ID}/release' | tar -tf -`], { encoding: 'utf8' }).trim().split('\n');
    expect(members.filter((m) => m.startsWith(`${ID}/.env`) || m.startsWith(`${ID}/.ops-environ`))).toEqual([]);
  });

  it('a release that cannot be made (its id taken) leaves no upload behind', async () => {
    const t = target();
    const sha = mirror(t);
    mkdirSync(`${t.layout.releases}/${ID}`);
    const given = uploads(t, 'c', 'TOKEN=x\n');
    await expect(runStep(createRelease(t, meta(sha), given))).rejects.toThrow(/already exists/);
    expect(existsSync(given.dotenv) || existsSync(given.environ)).toBe(false);
  });
});
