// The runner's checkout as CI and laptops give it, read by the deploy's plan on the runner: a partial clone
// (`git clone --filter=blob:none`, blobs fetched as needed) deploying a commit whose files it lacks, online (one
// fetch, not one per file) and offline (refused, naming the clone and the fix); uncommitted changes and a local
// branch that is not what the remote has, said in the plan as not deployed.
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { OpsError } from '../../core/errors.ts';
import { parseEnvironment, type Environment } from '../../core/config/environment.ts';
import { describeChanges, formatChanges } from '../../core/changes.ts';
import { checkoutNotes, remoteNotes, resolveRef, treeEntries } from '../../core/source.ts';
import { treeContent } from '../../core/tree-content.ts';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';

let root: string;
let upstream: string;
let old: string;
const FILES = 40;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ops-checkout-'));
  upstream = join(root, 'upstream');
  old = initRepo(upstream, Object.fromEntries(Array.from({ length: FILES }, (_, i) => [`src/f${i}.txt`, `old ${i}\n`])));
  gitIn(upstream, ['tag', 'v1']);
  commit(upstream, Object.fromEntries(Array.from({ length: FILES }, (_, i) => [`src/f${i}.txt`, `new ${i}\n`])), 'new');
  // What a partial clone asks of its remote (GitHub allows both).
  gitIn(upstream, ['config', 'uploadpack.allowFilter', 'true']);
  gitIn(upstream, ['config', 'uploadpack.allowAnySHA1InWant', 'true']);
});

/** A blob-less clone of upstream whose fetches are counted (each runs the remote's upload-pack once). */
function partialClone(name: string): { dir: string; fetches: () => number } {
  const dir = join(root, name);
  gitIn(root, ['clone', '-q', '--filter=blob:none', `file://${upstream}`, dir]);
  const log = join(root, `${name}.fetches`);
  writeFileSync(log, '');
  const wrapper = join(root, `${name}-upload-pack`);
  writeFileSync(wrapper, `#!/bin/sh\necho fetch >> '${log}'\nexec git-upload-pack "$@"\n`);
  chmodSync(wrapper, 0o755);
  gitIn(dir, ['config', 'remote.origin.uploadpack', wrapper]);
  return { dir, fetches: () => readFileSync(log, 'utf8').split('\n').filter(Boolean).length };
}

describe('a partial clone (--filter=blob:none)', () => {
  it("a commit whose files it lacks (an older tag): fetched in one go, not one fetch per file; its listing and contents as a full clone's", async () => {
    const { dir, fetches } = partialClone('partial');
    const sha = (await resolveRef(dir, 'v1')).sha;
    expect(sha).toBe(old);
    const listing = await treeEntries(dir, sha);
    expect(listing.filter((e) => e.type === 'blob')).toHaveLength(FILES);
    expect(listing.find((e) => e.path === 'src/f7.txt')?.size).toBe('old 7\n'.length);
    expect(fetches()).toBe(1);
    expect(await treeContent(dir, sha)).toEqual({ submodules: [], lfs: [], exportIgnored: [] });
    expect(fetches()).toBe(1);
  });

  it('offline (the remote out of reach): refused, naming the clone, the remote and the fix; nothing fetched one by one', async () => {
    const { dir, fetches } = partialClone('offline');
    renameSync(upstream, `${upstream}.away`);
    try {
      const err = (await treeEntries(dir, old).catch((e: unknown) => e)) as OpsError;
      expect(err).toBeInstanceOf(OpsError);
      expect(err.message).toMatch(new RegExp(`is a partial clone \\(promisor remote origin\\) without ${FILES} object\\(s\\) of commit ${old.slice(0, 12)}'s files, and fetching them from origin failed`));
      expect(err.hint).toMatch(/deploy from a full clone \(actions\/checkout without `filter:`; git clone without --filter\); nothing was changed/);
      expect(fetches()).toBe(1);
    } finally {
      renameSync(`${upstream}.away`, upstream);
    }
  });
});

describe('what the checkout holds that is not deployed', () => {
  it('uncommitted changes (changed and untracked files): named, with the commit that is deployed; a clean checkout has none', async () => {
    const dir = join(root, 'laptop');
    gitIn(root, ['clone', '-q', upstream, dir]);
    const head = gitIn(dir, ['rev-parse', 'HEAD']);
    expect(await checkoutNotes(dir, head)).toEqual([]);
    writeFileSync(join(dir, 'src/f1.txt'), 'edited\n');
    writeFileSync(join(dir, 'scratch.txt'), 'mine\n');
    expect(await checkoutNotes(dir, old)).toEqual([
      `not deployed: the uncommitted changes in ${dir} (1 changed, 1 untracked files: src/f1.txt, scratch.txt); the release is commit ${old.slice(0, 12)} as committed (the checkout is at ${head.slice(0, 12)})`,
    ]);
  });

  it("the ops project's own environments/ and .sops.yaml, read from the work tree, are not said as not deployed; the rest is", async () => {
    for (const sub of ['', 'deploy/']) {
      const dir = join(root, `own-${sub ? 'sub' : 'top'}`);
      gitIn(root, ['clone', '-q', upstream, dir]);
      const head = gitIn(dir, ['rev-parse', 'HEAD']);
      const project = join(dir, sub);
      mkdirSync(join(project, 'environments', 'qa'), { recursive: true });
      writeFileSync(join(project, 'environments', 'qa', 'environment.yml'), 'app: x\n');
      writeFileSync(join(project, '.sops.yaml'), 'creation_rules: []\n');
      // the project's own files only: nothing to say (a project in a subfolder untracked whole is that folder)
      expect(await checkoutNotes(dir, head, project), sub).toEqual(sub ? [`not deployed: the uncommitted changes in ${dir} (1 untracked file: deploy/); the release is commit ${head.slice(0, 12)} as committed`] : []);
      if (sub) continue;
      writeFileSync(join(dir, 'scratch.txt'), 'mine\n');
      expect(await checkoutNotes(dir, head, project)).toEqual([`not deployed: the uncommitted changes in ${dir} (1 untracked file: scratch.txt); the release is commit ${head.slice(0, 12)} as committed`]);
      // without the project named: every file, as before
      expect((await checkoutNotes(dir, head))[0]).toContain('3 untracked files: .sops.yaml, environments/, scratch.txt');
    }
  });

  it("a local branch ahead of the remote's: the remote's is deployed, and the local one is said not to be", async () => {
    const dir = join(root, 'ahead');
    gitIn(root, ['clone', '-q', upstream, dir]);
    const pushed = gitIn(dir, ['rev-parse', 'origin/main']);
    const local = commit(dir, { 'src/f1.txt': 'not pushed\n' }, 'not pushed');
    for (const ref of ['main', 'refs/heads/main']) {
      const r = await resolveRef(dir, ref);
      expect(r).toMatchObject({ sha: pushed, matched: 'branch origin/main' });
      expect(r.notes).toEqual([`your local branch main is at ${local.slice(0, 12)}, not deployed: the branch deployed is origin/main (${pushed.slice(0, 12)}), what was pushed; push first, or deploy ${local.slice(0, 12)} by its sha`]);
    }
    gitIn(dir, ['push', '-q', 'origin', 'HEAD:refs/heads/other']);
    gitIn(dir, ['fetch', '-q']);
    expect((await resolveRef(dir, 'other')).notes).toBeUndefined();
  });
});

describe('refs as a checkout names them', () => {
  it("HEAD is the commit checked out (detached, as actions/checkout leaves a pull request's or a tag's), not origin/HEAD, the remote's default branch", async () => {
    const dir = join(root, 'detached');
    gitIn(root, ['clone', '-q', upstream, dir]);
    gitIn(dir, ['checkout', '-q', '--detach', 'v1']);
    expect(await resolveRef(dir, 'HEAD')).toEqual({ ref: 'HEAD', sha: old, matched: 'HEAD, detached' });
    gitIn(dir, ['checkout', '-q', '-b', 'feature']);
    const mine = commit(dir, { 'src/f2.txt': 'mine\n' }, 'mine');
    expect(await resolveRef(dir, 'HEAD')).toEqual({ ref: 'HEAD', sha: mine, matched: 'HEAD, branch feature as checked out' });
  });

  it("a pull request's GITHUB_REF (refs/pull/<n>/merge), where actions/checkout fetched it (refs/remotes/pull/<n>/merge)", async () => {
    const dir = join(root, 'pull-request');
    const merge = gitIn(upstream, ['rev-parse', 'v1']);
    gitIn(upstream, ['update-ref', 'refs/pull/7/merge', merge]);
    gitIn(root, ['init', '-q', dir]);
    // actions/checkout on a pull_request event: `git fetch origin +<sha>:refs/remotes/pull/7/merge`, detached there.
    gitIn(dir, ['fetch', '-q', `file://${upstream}`, '+refs/pull/7/merge:refs/remotes/pull/7/merge']);
    gitIn(dir, ['checkout', '-q', '--detach', 'refs/remotes/pull/7/merge']);
    gitIn(root, ['clone', '-q', upstream, join(root, 'tracking-pull')]);
    expect(await resolveRef(dir, 'refs/pull/7/merge')).toEqual({ ref: 'refs/pull/7/merge', sha: merge, matched: 'pull request ref pull/7/merge' });
    await expect(resolveRef(dir, 'refs/pull/8/merge')).rejects.toThrow('refs/pull/8/merge does not exist in');
    // A pull request a deploy is given (deploy.yml's ref) where the checkout fetched none: said so, not "fetch-depth: 0".
    for (const ref of ['refs/pull/8/merge', 'refs/pull/8/head', 'pull/8']) {
      const e = (await resolveRef(join(root, 'tracking-pull'), ref).catch((x: unknown) => x)) as OpsError;
      expect(e.hint, ref).toBe(
        "a pull request's ref is not among what a checkout fetches (its branches and tags): deploy its branch, when it is one of this repository's, or add it to staging (staging.yml: mode add, ref pull/8; ops staging add pull/8)",
      );
    }
  });

  it('a remote-tracking branch named with its remote (origin/main), as git names it', async () => {
    const dir = join(root, 'tracking');
    gitIn(root, ['clone', '-q', upstream, dir]);
    expect(await resolveRef(dir, 'origin/main')).toEqual({ ref: 'origin/main', sha: gitIn(upstream, ['rev-parse', 'main']), matched: 'branch origin/main' });
  });
});

/** An environment whose dependency sets read requirements.txt (what the change reads of each commit's files). */
function env(): Environment {
  const config = parseEnvironment(
    { app: 'sample', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P' }], programs: { server: { command: 'run', port: 3579 } }, routes: { '/': 'server' }, release: { python_requirements: 'src/f1.txt', node_dir: '' } },
    'environments/x/environment.yml',
  );
  return { name: 'x', dir: '/x', root: '/x', config, hosts: [], appUser: 'sample', baseDir: '/srv/sample', url: 'http://x' };
}

describe('what a deploy changes, read from such clones', () => {
  it("a shallow clone without the live commit: says the clone is shallow and how to see the change (not 'fetch --all')", async () => {
    const dir = join(root, 'shallow');
    gitIn(root, ['clone', '-q', '--depth', '1', `file://${upstream}`, dir]);
    const head = gitIn(dir, ['rev-parse', 'HEAD']);
    const lines = formatChanges(await describeChanges(dir, env(), [{ host: 'web1', sha: old, release: 'r1' }], head), head);
    expect(lines).toEqual([`web1: live ${old.slice(0, 12)} (r1) → target ${head.slice(0, 12)}: the live commit is not in this shallow clone's history (not fetched, or fetched without the commits between it and the target); check out with fetch-depth: 0 (git fetch --unshallow) to see the change`]);
  });

  it('a partial clone offline, the live commit among those whose files it lacks: the deploy still plans, saying the change could not be read', async () => {
    const { dir } = partialClone('offline-change');
    const head = gitIn(dir, ['rev-parse', 'HEAD']);
    renameSync(upstream, `${upstream}.away`);
    try {
      const lines = formatChanges(await describeChanges(dir, env(), [{ host: 'web1', sha: old, release: 'r1' }], head), head);
      expect(lines[0]).toBe(`web1: live ${old.slice(0, 12)} (r1) → target ${head.slice(0, 12)}: 1 new commit`);
      expect(lines.join('\n')).toMatch(/migrations and dependency sets not compared: .* is a partial clone \(promisor remote origin\) without/);
    } finally {
      renameSync(`${upstream}.away`, upstream);
    }
  });
});

describe('a checkout owned by another user (a container job, sudo)', () => {
  it.skipIf(process.getuid?.() !== 0)("git's safe.directory refusal is said as such, with the fix (not 'not a git repository')", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'ops-owned-')), 'app');
    cpSync(upstream, dir, { recursive: true });
    execFileSync('chown', ['-R', 'nobody', dir]);
    const err = (await resolveRef(dir, 'main').catch((e: unknown) => e)) as OpsError;
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toBe(`git refuses to read ${dir}: it is owned by another user than the one running ops (git's safe.directory check)`);
    expect(err.hint).toBe(`run ops as the checkout's owner, or trust it: git config --global --add safe.directory ${dir} (in a container job, after actions/checkout)`);
  });
});

describe('ancestry read from a shallow clone', () => {
  it("the live commit fetched without its history (fetch --depth 1 of its tag, as fetch-tags does at depth 1): the relation is not known, not 'diverged' with the live commit 'taken away'", async () => {
    const dir = join(root, 'shallow-tags');
    gitIn(root, ['clone', '-q', '--depth', '1', `file://${upstream}`, dir]);
    gitIn(dir, ['fetch', '-q', '--depth', '1', 'origin', 'tag', 'v1']);
    const head = gitIn(dir, ['rev-parse', 'HEAD']);
    // Both commits are in the clone; the edge between them is not: upstream's v1 IS an ancestor of its head.
    expect(gitIn(dir, ['cat-file', '-t', old])).toBe('commit');
    const [change] = await describeChanges(dir, env(), [{ host: 'web1', sha: old, release: 'r1' }], head);
    expect(change!.change).toMatchObject({ relation: 'unknown', shallow: true, removed: 0 });
    // The other way (a superseded push: the target is the older one) is not taken for diverged either.
    const [back] = await describeChanges(dir, env(), [{ host: 'web1', sha: head, release: 'r2' }], old);
    expect(back!.change).toMatchObject({ relation: 'unknown', shallow: true });
  });
});

describe('a branch or tag the checkout fetched before origin moved it', () => {
  it("origin/<branch> behind origin (pushed since the last fetch), a tag moved on origin (git fetch keeps the old one), one deleted: the plan says the commit deployed is this checkout's, and how to get origin's", async () => {
    const remote = join(root, 'moving');
    initRepo(remote, { 'a.txt': 'one\n' });
    gitIn(remote, ['tag', '-a', '-m', 'release', 'v1']);
    gitIn(remote, ['tag', 'gone']);
    const dir = join(root, 'stale-fetch');
    gitIn(root, ['clone', '-q', remote, dir]);
    const fetched = gitIn(dir, ['rev-parse', 'origin/main']);
    const main = await resolveRef(dir, 'main');
    const v1 = await resolveRef(dir, 'v1');
    expect(await remoteNotes(dir, main)).toEqual([]);
    expect(await remoteNotes(dir, v1)).toEqual([]);
    const pushed = commit(remote, { 'a.txt': 'two\n' }, 'two');
    gitIn(remote, ['tag', '-f', '-a', '-m', 'release again', 'v1']);
    gitIn(remote, ['tag', '-d', 'gone']);
    // The checkout has not fetched since (and a fetch would keep its v1: git fetch does not move a tag it has).
    expect(await remoteNotes(dir, await resolveRef(dir, 'main'))).toEqual([
      `origin's branch main is at ${pushed.slice(0, 12)} now, not ${fetched.slice(0, 12)} as this checkout last fetched it (pushed since): the commit deployed is ${fetched.slice(0, 12)}; to deploy origin's, git fetch origin first`,
    ]);
    expect(await remoteNotes(dir, await resolveRef(dir, 'refs/tags/v1'))).toEqual([
      `origin's tag v1 is at ${pushed.slice(0, 12)} now, not ${fetched.slice(0, 12)} as this checkout last fetched it (the tag was moved): the commit deployed is ${fetched.slice(0, 12)}; to deploy origin's, git fetch origin --force tag v1 first`,
    ]);
    // The commands the notes give do it (a plain git fetch would keep the old v1).
    gitIn(dir, ['fetch', '-q', 'origin']);
    gitIn(dir, ['fetch', '-q', 'origin', '--force', 'tag', 'v1']);
    for (const ref of ['main', 'v1']) expect(await remoteNotes(dir, await resolveRef(dir, ref)), ref).toEqual([]);
    expect((await resolveRef(dir, 'v1')).sha).toBe(pushed);
    expect(await remoteNotes(dir, await resolveRef(dir, 'gone'))).toEqual([`origin has no tag gone any more (deleted since this checkout fetched it): the commit deployed is ${fetched.slice(0, 12)}, as this checkout last fetched it`]);
    // A sha is the commit named; origin out of reach says nothing (not known).
    expect(await remoteNotes(dir, await resolveRef(dir, fetched))).toEqual([]);
    renameSync(remote, `${remote}.away`);
    try {
      expect(await remoteNotes(dir, await resolveRef(dir, 'main'))).toEqual([]);
    } finally {
      renameSync(`${remote}.away`, remote);
    }
  });
});
