// Refs that mean two things are refused, wherever a ref is resolved: a branch and a tag of one name (git
// itself only warns and takes the tag), a sha prefix that is also a name. refs/tags/X and refs/heads/X say
// which, and are accepted (the deploy's resolver, the environment's `ref`, staging's remote refs).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { InputError, OpsError } from '../../core/errors.ts';
import { resolveRef } from '../../core/source.ts';
import { parseRef, pickRemoteRef } from '../../core/staging/refs.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
let repo: string;
const sha: Record<string, string> = {};

function git(...args: string[]): string {
  return execFileSync('git', args, { cwd: repo, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: repo, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@x', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@x' } }).trim();
}

beforeAll(() => {
  // A repository shaped like a team's: a tag "release" on one commit and a branch "release" further on,
  // the branch pushed (origin/release, as actions/checkout with fetch-depth: 0 leaves it).
  repo = mkdtempSync(join(tmpdir(), 'ops-refs-'));
  git('init', '-q', '-b', 'main');
  for (const n of ['one', 'two', 'three']) {
    writeFileSync(join(repo, 'f'), n);
    git('add', 'f');
    git('commit', '-qm', n);
    sha[n] = git('rev-parse', 'HEAD');
  }
  git('tag', 'release', sha.one!);
  git('branch', 'release', sha.two!);
  git('update-ref', 'refs/remotes/origin/release', sha.three!);
  git('tag', 'v1', sha.one!);
  // A branch named like the start of a commit's sha.
  git('branch', sha.two!.slice(0, 8), sha.three!);
});

describe('ambiguous refs', () => {
  it('a branch and a tag of one name: refused, naming both and how to say which', async () => {
    const err = (await resolveRef(repo, 'release').catch((e: unknown) => e)) as OpsError;
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toBe(`ref "release" is ambiguous: it names a tag (${sha.one!.slice(0, 12)}) and a branch (${sha.three!.slice(0, 12)})`);
    expect(err.hint).toBe('say which one: refs/tags/release or refs/heads/release');
  });

  it('refs/tags/X and refs/heads/X are accepted: the tag, and the pushed branch (origin first)', async () => {
    expect(await resolveRef(repo, 'refs/tags/release')).toEqual({ ref: 'refs/tags/release', sha: sha.one, matched: 'tag release' });
    // The local branch is elsewhere (not pushed): the pushed one is deployed, and the plan says the local one is not.
    expect(await resolveRef(repo, 'refs/heads/release')).toEqual({
      ref: 'refs/heads/release',
      sha: sha.three,
      matched: 'branch origin/release',
      notes: [`your local branch release is at ${sha.two!.slice(0, 12)}, not deployed: the branch deployed is origin/release (${sha.three!.slice(0, 12)}), what was pushed; push first, or deploy ${sha.two!.slice(0, 12)} by its sha`],
    });
    await expect(resolveRef(repo, 'refs/tags/nope')).rejects.toThrow(/refs\/tags\/nope does not exist/);
  });

  it('one meaning only: accepted as before', async () => {
    expect(await resolveRef(repo, 'v1')).toMatchObject({ sha: sha.one, matched: 'tag v1' });
    expect(await resolveRef(repo, 'main')).toMatchObject({ sha: sha.three, matched: 'branch main' });
    expect(await resolveRef(repo, sha.two!.slice(0, 10))).toMatchObject({ sha: sha.two, matched: 'commit' });
  });

  it('the start of an annotated tag object\'s or a blob\'s id is not a commit\'s: refused (git would peel the tag to its commit)', async () => {
    git('tag', '-a', '-m', 'annotated', 'annotated', sha.two!);
    const tagObject = git('rev-parse', 'refs/tags/annotated');
    expect(tagObject).not.toBe(sha.two);
    const blob = git('rev-parse', `${sha.one}:f`);
    for (const id of [tagObject, blob]) await expect(resolveRef(repo, id.slice(0, 10))).rejects.toThrow(`ref "${id.slice(0, 10)}" is not a tag, branch or commit of ${repo}`);
    expect(await resolveRef(repo, sha.three!)).toEqual({ ref: sha.three, sha: sha.three, matched: 'commit' });
  });

  it("a ref that names nothing: the hint names some of the branches there (ref: master where the branch is main); a repository with no commit yet says so, not to fetch", async () => {
    const e = await resolveRef(repo, 'master').catch((x: OpsError) => x);
    // git's other default branch name, when the repository has it
    expect(e).toMatchObject({ message: `ref "master" is not a tag, branch or commit of ${repo} (did you mean main?)` });
    expect((e as OpsError).hint).toMatch(/^its branches and tags include (\S+, )*main(, |;)/);
    const empty = mkdtempSync(join(tmpdir(), 'ops-refs-empty-'));
    execFileSync('git', ['init', '-q', empty]);
    for (const ref of ['master', 'HEAD', 'refs/heads/main']) {
      const none = (await resolveRef(empty, ref).catch((x: unknown) => x)) as OpsError;
      // the repository is what is wrong, not the ref: a usage error (exit 2), said first, the commit to make
      expect(none, ref).toBeInstanceOf(InputError);
      expect(none.message, ref).toBe(`nothing to deploy: ${empty} has no commits yet, so no ref names one`);
      expect(none.hint, ref).toBe("commit the app there first (git add -A && git commit), then deploy; the repository deployed is the environment's `repository`, else the git checkout that holds environments/");
    }
  });

  it('a ref a slip or two from a branch or tag (mian, relaese, refs/heads/mian, a branch only on origin): named as the one meant', async () => {
    git('update-ref', 'refs/remotes/origin/feature-login', sha.two!);
    for (const [typed, meant] of [['mian', 'main'], ['relaese', 'release'], ['refs/heads/mian', 'main'], ['feature-logni', 'feature-login'], ['V1', 'v1']] as const) {
      const e = (await resolveRef(repo, typed).catch((x: unknown) => x)) as OpsError;
      expect(e, typed).toBeInstanceOf(OpsError);
      expect(e.message, typed).toMatch(new RegExp(` \\(did you mean ${meant}\\?\\)$`));
    }
    // a sha this clone lacks (made elsewhere, not pushed): said as such, not a list of branch names
    const unpushed = (await resolveRef(repo, 'deadbeefdeadbeef').catch((x: unknown) => x)) as OpsError;
    expect(unpushed.hint).toMatch(/^no commit of this clone starts with deadbeefdeadbeef: a commit made in another clone reaches it once pushed/);
    // nothing near: no guess
    expect(((await resolveRef(repo, 'zzzzzz').catch((x: unknown) => x)) as OpsError).message).not.toContain('did you mean');
  });

  it("a tag of a tree or a blob (git tag x HEAD^{tree}, lightweight or annotated): said to name no commit, not 'does not exist' with a hint to fetch", async () => {
    git('tag', 'tree-tag', `${sha.two}^{tree}`);
    git('tag', '-a', '-m', 'a blob', 'blob-tag', `${sha.one}:f`);
    const tree = git('rev-parse', `${sha.two}^{tree}`);
    const blob = git('rev-parse', `${sha.one}:f`);
    for (const [ref, what, type, id] of [
      ['tree-tag', 'tag tree-tag', 'tree', tree],
      ['refs/tags/tree-tag', 'tag tree-tag', 'tree', tree],
      ['blob-tag', 'tag blob-tag', 'blob', blob],
    ] as const) {
      const e = (await resolveRef(repo, ref).catch((x: unknown) => x)) as OpsError;
      expect(e, ref).toBeInstanceOf(OpsError);
      expect(e.message).toBe(`${what} names a ${type} (${id.slice(0, 12)}), not a commit: there is no commit to deploy`);
      expect(e.hint).toMatch(/^deploy a commit: point refs\/tags\/(tree|blob)-tag at one/);
    }
  });

  it('a local branch named origin/<branch> (git checkout -b origin/main, a mistake git allows) beside the remote-tracking one: each said as what it is', async () => {
    git('update-ref', 'refs/remotes/origin/main', sha.one!);
    git('branch', 'origin/main', sha.two!);
    const e = (await resolveRef(repo, 'origin/main').catch((x: unknown) => x)) as OpsError;
    expect(e.message).toBe(`ref "origin/main" is ambiguous: it names a local branch (${sha.two!.slice(0, 12)}) and a remote-tracking branch (${sha.one!.slice(0, 12)})`);
    expect(e.hint).toBe('say which one: refs/heads/origin/main or refs/remotes/origin/main');
    git('branch', '-D', 'origin/main');
    git('update-ref', '-d', 'refs/remotes/origin/main');
  });

  it('a sha prefix that is also a branch name: ambiguous too', async () => {
    await expect(resolveRef(repo, sha.two!.slice(0, 8))).rejects.toThrow(/is ambiguous: it names a branch .* and a commit/);
  });

  it('a sha in capitals (typed, or copied so) is that commit, as git reads it: full or a prefix', async () => {
    for (const ref of [sha.one!.toUpperCase(), sha.one!.slice(0, 9).toUpperCase()]) expect(await resolveRef(repo, ref), ref).toEqual({ ref, sha: sha.one, matched: 'commit' });
  });

  it('staging: a sha in capitals is a commit too (a full one read in lower case); a branch so named is still that branch', () => {
    expect(parseRef(sha.one!.toUpperCase())).toEqual({ kind: 'sha', input: sha.one });
    expect(pickRemoteRef(parseRef(sha.one!.slice(0, 9).toUpperCase()), new Map(), 'origin')).toBe('sha');
    const named = sha.one!.slice(0, 9).toUpperCase();
    expect(pickRemoteRef(parseRef(named), new Map([[`refs/heads/${named}`, sha.two!]]), 'origin')).toBe(`refs/heads/${named}`);
  });

  it('the environment\'s default ref may be spelled in full', () => {
    const config = parseEnvironment({ app: 'shop', ref: 'refs/tags/release', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'run', port: 4000 } }, routes: { '/': 'web' } }, 'test');
    expect(config.ref).toBe('refs/tags/release');
  });

  it('staging: a name that is a branch and a tag on the remote is refused; the full names pick one', () => {
    const refs = new Map([
      ['refs/heads/release', 'b'.repeat(40)],
      ['refs/tags/release', 'a'.repeat(40)],
    ]);
    expect(() => pickRemoteRef(parseRef('release'), refs, 'origin')).toThrow(/ref "release" is ambiguous: it names a branch \(bbbbbbbbbbbb\) and a tag \(aaaaaaaaaaaa\)/);
    expect(pickRemoteRef(parseRef('refs/tags/release'), refs, 'origin')).toBe('refs/tags/release');
    expect(pickRemoteRef(parseRef('refs/heads/release'), refs, 'origin')).toBe('refs/heads/release');
  });
});
