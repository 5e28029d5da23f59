// The pure half of staging sync (core/staging/: refs, plan, messages, settings) and the GitHub access decisions (core/github.ts).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { markSuperseded } from '../../core/deployments.ts';
import { apiUrlFor, clearTextWarning, githubAccess, repositoryFromUrl } from '../../core/github.ts';
import { Writable } from 'node:stream';
import { ConsoleReporter, MemoryReporter } from '../../core/report.ts';
import { rebuildStaging } from '../../core/staging/rebuild.ts';
import type { StagingContext } from '../../core/staging/settings.ts';
import { checkIdentity } from '../../core/git.ts';
import type { OpsError } from '../../core/errors.ts';
import { gitAllowsRef } from '../../core/shell.ts';
import { runInfo, runUrl } from '../../core/runinfo.ts';
import { runStaging } from '../../core/staging/run.ts';
import { checkLabel, stagingSettings } from '../../core/staging/settings.ts';
import { COMMENT_MARKER, addSummary, describeMoved, rebuildSummary, skippedComment, type RebuildResult } from '../../core/staging/messages.ts';
import { LOG_FORMAT, approvedHeads, decideAdd, mergeMessage, parseLog, pushHint, trailerRecords, uncoveredCommits, uniqueRecords, type AddedRecord } from '../../core/staging/plan.ts';
import { displayName, keyOfTrackingRef, parseRef, pickRemoteRef, pullRequestRef, refFromEvent, trackingRef, type Source } from '../../core/staging/refs.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);
const M = '1'.repeat(40);

describe('parseRef', () => {
  it.each([
    ['pull/12', { kind: 'pull', number: 12, remoteRef: 'refs/pull/12/head' }],
    ['#12', { kind: 'pull', number: 12, remoteRef: 'refs/pull/12/head' }],
    ['refs/pull/12/head', { kind: 'pull', number: 12, remoteRef: 'refs/pull/12/head' }],
    ['refs/pull/12/merge', { kind: 'pull', number: 12, remoteRef: 'refs/pull/12/head' }],
    ['refs/heads/feature/x', { kind: 'ref', remoteRef: 'refs/heads/feature/x' }],
    ['refs/tags/v1.2', { kind: 'ref', remoteRef: 'refs/tags/v1.2' }],
    ['feature/x', { kind: 'name', candidates: ['refs/heads/feature/x', 'refs/tags/feature/x'] }],
    [A, { kind: 'sha' }],
  ])('%s', (input, expected) => {
    expect(parseRef(input)).toMatchObject({ input, ...expected });
  });
  it.each(['--upload-pack=x', 'a..b', 'a b', '$(id)', 'x;y', '', 'refs/notes/commits', 'refs/remotes/origin/x'])('refuses %j', (input) => {
    expect(() => parseRef(input)).toThrow(/invalid ref|unsupported ref/);
  });
  it('refuses with the hint that fits: a name git allows by its pull request or sha; a revision or white space as validate says', () => {
    const hint = (input: string) => {
      try {
        parseRef(input);
      } catch (e) {
        return (e as OpsError).hint;
      }
    };
    // Branch names git allows (git check-ref-format refs/heads/<name> says so, checked below) that ops does not pass on.
    const allowed = ['ünï', "a'b", '-x', 'fix#12', `feat/${'x'.repeat(200)}`];
    for (const name of allowed) {
      expect(execFileSync('git', ['check-ref-format', `refs/heads/${name}`]).toString(), name).toBe('');
      expect(hint(name), name).toMatch(/^git allows this name, .*add it by its pull request \(pull\/12\), remembered as a branch is, or by its commit sha$/);
    }
    expect(hint('feature/a~1')).toBe("a revision expression is not deployed as such: give the commit it names (its sha: git rev-parse 'feature/a~1')");
    expect(hint('main@{1}')).toMatch(/^a revision expression/);
    expect(hint(' feature/a')).toBe('remove the white space around "feature/a" (copied with it?)');
    expect(hint('a..b')).toMatch(/git branch -a, git tag/);
  });
  it('gitAllowsRef agrees with git check-ref-format on branch names', () => {
    const names = ['ünï', "a'b", '-x', 'fix#12', 'a,b', 'x'.repeat(300), 'a..b', 'a b', 'a~1', 'a^', 'a:b', 'a?', 'a*', 'a[', 'a\\b', 'a@{1}', 'a//b', '/a', 'a/', 'a.', 'a.lock', '.a', 'a/.b', '@', 'a@b', 'a\tb'];
    for (const name of names) {
      let git = true;
      try {
        execFileSync('git', ['check-ref-format', `refs/heads/${name}`], { stdio: 'ignore' });
      } catch {
        git = false;
      }
      expect(gitAllowsRef(name), name).toBe(git);
    }
  });
});

describe('pickRemoteRef', () => {
  const refs = new Map([
    ['refs/heads/feature/x', A],
    ['refs/tags/v1', B],
    ['refs/heads/both', A],
    ['refs/tags/both', B],
    ['refs/pull/3/head', C],
  ]);
  it('a bare name is a branch or a tag (both: ambiguous, say which), else a commit', () => {
    expect(pickRemoteRef(parseRef('feature/x'), refs, 'origin')).toBe('refs/heads/feature/x');
    expect(pickRemoteRef(parseRef('v1'), refs, 'origin')).toBe('refs/tags/v1');
    expect(() => pickRemoteRef(parseRef('both'), refs, 'origin')).toThrow(/ref "both" is ambiguous/);
    expect(pickRemoteRef(parseRef('refs/heads/both'), refs, 'origin')).toBe('refs/heads/both');
    expect(pickRemoteRef(parseRef('abc1234'), refs, 'origin')).toBe('sha');
    expect(pickRemoteRef(parseRef(A), refs, 'origin')).toBe('sha');
    expect(pickRemoteRef(parseRef('pull/3'), refs, 'origin')).toBe('refs/pull/3/head');
  });
  it('says what is missing and how to fix it', () => {
    expect(() => pickRemoteRef(parseRef('nope'), refs, 'origin')).toThrow(/no branch or tag "nope" on origin/);
    try {
      pickRemoteRef(parseRef('origin/feature/x'), refs, 'origin');
    } catch (e) {
      expect((e as { hint: string }).hint).toBe('name the branch without the remote: feature/x');
    }
    expect(() => pickRemoteRef(parseRef('pull/4'), refs, 'origin')).toThrow(/refs\/pull\/4\/head does not exist on origin/);
    expect(() => pickRemoteRef(parseRef('refs/heads/gone'), refs, 'upstream')).toThrow(/refs\/heads\/gone does not exist on upstream/);
  });
});

describe('names and tracking refs', () => {
  it('round-trips remote refs through refs/staging-heads/', () => {
    for (const key of ['refs/heads/feature/x', 'refs/pull/12/head', 'refs/tags/v1']) {
      expect(keyOfTrackingRef(trackingRef(key))).toBe(key);
    }
    expect(trackingRef('refs/heads/a/b')).toBe('refs/staging-heads/heads/a/b');
    expect(keyOfTrackingRef('refs/heads/x')).toBeUndefined();
    expect(keyOfTrackingRef('refs/staging-heads/notes/x')).toBeUndefined();
    expect(keyOfTrackingRef('refs/staging-heads/heads/a..b')).toBeUndefined();
  });
  it('names refs for people', () => {
    expect(displayName('refs/heads/feature/x')).toBe('feature/x');
    expect(displayName('refs/pull/12/head')).toBe('#12');
    expect(displayName('refs/tags/v1')).toBe('v1');
  });
});

describe('refFromEvent', () => {
  const pr = (full_name: string | null) => ({ pull_request: { number: 7, title: 'X', html_url: 'https://x/7', head: { ref: 'feature/x', sha: A, repo: full_name ? { full_name } : null } } });
  it('uses the branch for a pull request from this repository, the pull ref for a fork', () => {
    expect(refFromEvent(pr('Acme/Webapp'), 'acme/webapp')).toEqual({ ref: 'refs/heads/feature/x', sha: A, pull: { number: 7, title: 'X', url: 'https://x/7', branch: 'feature/x' } });
    expect(refFromEvent(pr('someone/webapp'), 'acme/webapp')?.ref).toBe('pull/7');
    expect(refFromEvent(pr(null), 'acme/webapp')?.ref).toBe('pull/7'); // the fork was deleted
    expect(refFromEvent({ ref: 'refs/heads/master' }, 'acme/webapp')).toBeUndefined();
    expect(refFromEvent(undefined, undefined)).toBeUndefined();
  });
  it('names the head commit the event saw (what the label approved), and refuses an event without one', () => {
    expect(refFromEvent(pr('acme/webapp'), 'acme/webapp')?.sha).toBe(A);
    expect(refFromEvent(pr('someone/webapp'), 'acme/webapp')?.sha).toBe(A);
    for (const sha of [undefined, '', 'abc1234', `${A}\n`]) {
      const event = { pull_request: { number: 7, head: { ref: 'feature/x', sha, repo: { full_name: 'acme/webapp' } } } };
      expect(() => refFromEvent(event, 'acme/webapp'), String(sha)).toThrow(/the event of pull request #7 names no head commit/);
    }
  });
  it('adds a branch whose name git allows but parseRef refuses (feat/été, fix#12) by its pull ref, as a rebuild does', () => {
    for (const branch of ['feat/été', 'fix#12', 'user@work', 'a..b']) {
      const event = { pull_request: { number: 9, title: 'X', html_url: 'https://x/9', head: { ref: branch, sha: A, repo: { full_name: 'acme/webapp' } } } };
      const fromEvent = refFromEvent(event, 'acme/webapp')!;
      expect(fromEvent.ref, branch).toBe('pull/9');
      expect(fromEvent.pull.branch).toBe(branch);
      // The add (event) and a rebuild or a converging add (API listing) remember it under the same key.
      const listed = pullRequestRef({ number: 9, title: 'X', url: 'https://x/9', createdAt: '', headRef: branch, headSha: A, sameRepository: true, labels: [] });
      expect(parseRef(fromEvent.ref)).toEqual({ ...listed, input: fromEvent.ref });
    }
    const plain = pullRequestRef({ number: 9, title: 'X', url: '', createdAt: '', headRef: 'feature/x', headSha: A, sameRepository: true, labels: [] });
    expect(plain).toMatchObject({ kind: 'ref', remoteRef: 'refs/heads/feature/x' });
  });
  it('says how to add a branch whose name it does not take', () => {
    expect(() => parseRef('feat/été')).toThrow(/invalid ref "feat\/été"/);
    try {
      parseRef('feat/été');
    } catch (e) {
      expect((e as { hint: string }).hint).toMatch(/by its pull request \(pull\/12\), remembered as a branch is, or by its commit sha/);
    }
    expect.assertions(2);
  });
});

describe('decideAdd', () => {
  const rec: AddedRecord = { key: 'refs/heads/x', head: A, via: 'tracking-ref' };
  it('refuses a rewritten ref first, even when its new head is contained', () => {
    expect(decideAdd({ rewritten: [rec], contained: true, stagingIsAncestor: false })).toBe('refuse-rewritten');
    expect(decideAdd({ rewritten: [rec], contained: false, stagingIsAncestor: true })).toBe('refuse-rewritten');
  });
  it('then: contained → nothing, staging behind → fast-forward, else a merge', () => {
    expect(decideAdd({ rewritten: [], contained: true, stagingIsAncestor: false })).toBe('already-contained');
    expect(decideAdd({ rewritten: [], contained: false, stagingIsAncestor: true })).toBe('fast-forward');
    expect(decideAdd({ rewritten: [], contained: false, stagingIsAncestor: false })).toBe('merge');
  });
});

describe('merge records', () => {
  const branch: Source = { display: 'feature/x', key: 'refs/heads/feature/x', sha: A };
  const pull: Source = { display: '#5 (feature/y)', key: 'refs/heads/feature/y', sha: B, pull: { number: 5, title: 'Add y', url: 'https://x/pull/5', branch: 'feature/y' } };

  it('writes a subject naming the ref and sha, and trailers', () => {
    expect(mergeMessage(branch, 'staging')).toEqual([`Merge feature/x at ${A.slice(0, 12)} into staging`, `Staging-Ref: refs/heads/feature/x\nStaging-Head: ${A}`]);
    expect(mergeMessage(pull, 'staging')).toEqual([
      `Merge pull request #5 (feature/y) at ${B.slice(0, 12)} into staging`,
      'Add y\nhttps://x/pull/5',
      `Staging-Ref: refs/heads/feature/y\nStaging-Head: ${B}`,
    ]);
    expect(mergeMessage({ display: 'abc', sha: C }, 'staging').at(-1)).toBe(`Staging-Head: ${C}`);
  });
  it("quotes a pull request's title without its skip instructions: a title's [skip ci] would skip staging's push workflows", () => {
    const titled = (title: string) => mergeMessage({ ...pull, pull: { ...pull.pull!, title } }, 'staging')[1];
    expect(titled('Docs only [skip ci]')).toBe('Docs only (skip ci)\nhttps://x/pull/5');
    expect(['[ci skip] a', 'a [no ci]', '[Skip Actions]', '[actions skip]'].map(titled)).toEqual(['(ci skip) a', 'a (no ci)', '(Skip Actions)', '(actions skip)'].map((t) => `${t}\nhttps://x/pull/5`));
    expect(titled('keep [skipping] and [ci] as they are')).toBe('keep [skipping] and [ci] as they are\nhttps://x/pull/5');
  });

  it('reads records back from git log output, trusting only trailers that match the merge', () => {
    expect(LOG_FORMAT).toContain('trailers:key=Staging-Head');
    const out =
      `${C}\x1f${M} ${A}\x1frefs/heads/feature/x\x1f${A}\x1e\n` + // a merge of A: recorded
      `${B}\x1f${M}\x1f\x1f\x1e\n` + // a plain commit
      `${M}\x1f${A} ${C}\x1frefs/heads/forged\x1f${B}\x1e\n` + // trailer names a head that is not a parent
      `${M}\x1f${A} ${B}\x1frefs/heads/../../x\x1f${B}\x1e\n` + // a key that is no ref this tool adds
      `${M}\x1f${A} ${B}\x1frefs/notes/x\x1f${B}\x1e\n`;
    const commits = parseLog(out);
    expect(commits.map((c) => c.parents.length)).toEqual([2, 1, 2, 2, 2]);
    expect(trailerRecords(commits)).toEqual([{ key: 'refs/heads/feature/x', head: A, via: 'trailer' }]);
  });

  it('counts a head recorded twice once', () => {
    const r = (via: AddedRecord['via']): AddedRecord => ({ key: 'k', head: A, via });
    expect(uniqueRecords([r('trailer'), r('tracking-ref'), { key: 'k', head: B, via: 'trailer' }])).toHaveLength(2);
  });

  it('takes, per ref, the head staging last took: the tracking ref, else the newest trailer (listed first)', () => {
    const records: AddedRecord[] = [
      { key: 'refs/heads/x', head: B, via: 'trailer' }, // newest merge of x
      { key: 'refs/heads/x', head: A, via: 'trailer' },
      { key: 'refs/heads/y', head: C, via: 'trailer' },
      { key: 'refs/heads/y', head: M, via: 'tracking-ref' }, // a fast-forward add: no trailer of its own
    ];
    expect(approvedHeads(records)).toEqual(new Map([['refs/heads/y', M], ['refs/heads/x', B]]));
    expect(approvedHeads([])).toEqual(new Map());
  });

  it('finds commits a rebuild retry would lose: everything but the merges that carry a kept head', () => {
    const merge = { sha: C, parents: [M, A], refs: ['refs/heads/x'], heads: [A] };
    const direct = { sha: B, parents: [M], refs: [], heads: [] };
    const otherMerge = { sha: M, parents: [C, B], refs: ['refs/heads/y'], heads: [B] };
    expect(uncoveredCommits([merge, direct, otherMerge], new Set([A]))).toEqual([direct, otherMerge]);
    expect(uncoveredCommits([merge], new Set([A]))).toEqual([]);
  });
});

describe('settings and inputs', () => {
  it('fills defaults and validates names', () => {
    expect(stagingSettings({})).toMatchObject({ remote: 'origin', main: 'master', staging: 'staging', retries: 3, dryRun: false });
    expect(stagingSettings({ main: 'main', staging: 'preview', retries: '0', remote: 'upstream' })).toMatchObject({ main: 'main', staging: 'preview', retries: 0, remote: 'upstream' });
    expect(() => stagingSettings({ staging: 'a..b' })).toThrow(/invalid staging branch "a\.\.b"/);
    expect(() => stagingSettings({ main: '-x' })).toThrow(/invalid main branch/);
    expect(() => stagingSettings({ remote: 'a b' })).toThrow(/invalid remote name/);
    expect(() => stagingSettings({ main: 'x', staging: 'x' })).toThrow(/both "x"/);
    // Pushed as refs/heads/<name>: a branch "HEAD", or "refs/heads/master" beside master, on the remote.
    expect(() => stagingSettings({ staging: 'HEAD' })).toThrow(/^invalid staging branch "HEAD": expected a branch's short name$/);
    expect(() => stagingSettings({ staging: 'refs/heads/master' })).toThrow(/^invalid staging branch "refs\/heads\/master": expected a branch's short name$/);
    expect(() => stagingSettings({ main: 'refs/heads/main' })).toThrow(/^invalid main branch "refs\/heads\/main"/);
    expect(stagingSettings({ staging: 'staging/refs' }).staging).toBe('staging/refs');
    expect(() => stagingSettings({ retries: '-1' })).toThrow(/^retries needs a whole number from 0 to 99, got "-1"$/);
    expect(() => stagingSettings({ retries: '1e3' })).toThrow(/^retries needs a whole number from 0 to 99/);
    expect(() => stagingSettings({ retries: '100' })).toThrow(/^retries needs a whole number from 0 to 99/);
  });
  it('refuses a rebuild given a ref (the manual run defaults to rebuild): nothing pushed, the ref not dropped without a word', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-staging-rebuild-ref-'));
    const git = (cwd: string, ...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.org', ...args], { cwd, encoding: 'utf8' });
    git(dir, 'init', '-q', '--bare', 'origin.git');
    git(dir, 'init', '-q', '-b', 'master', 'clone');
    const clone = join(dir, 'clone');
    git(clone, 'commit', '-q', '--allow-empty', '-m', 'init');
    git(clone, 'remote', 'add', 'origin', join(dir, 'origin.git'));
    git(clone, 'push', '-q', 'origin', 'master');
    const reporter = new MemoryReporter();
    await expect(runStaging({ mode: 'rebuild', ref: 'feature-x', repo: clone, settings: stagingSettings({}), processEnv: { PATH: process.env.PATH }, reporter })).rejects.toThrow(
      expect.objectContaining({ message: 'a rebuild takes no ref (given: "feature-x"): it resets staging to master and re-applies the labelled pull requests', hint: 'to bring it into staging: mode add with that ref (ops staging add feature-x); to rebuild: leave ref empty' }),
    );
    expect(git(join(dir, 'origin.git'), 'for-each-ref', '--format=%(refname)')).toBe('refs/heads/master\n');
    rmSync(dir, { recursive: true, force: true });
  });
  it('checks labels and identities', () => {
    expect(checkLabel(' staging ')).toBe('staging');
    expect(checkLabel('deploy: staging 🚀')).toBe('deploy: staging 🚀');
    expect(() => checkLabel('')).toThrow(/invalid label/);
    expect(() => checkLabel('a\nb')).toThrow(/invalid label/);
    expect(checkIdentity({ name: 'Bot', email: 'bot@example.org' })).toBeTruthy();
    expect(() => checkIdentity({ name: 'Bot <x@y>', email: 'bot@example.org' })).toThrow(/invalid committer name/);
    expect(() => checkIdentity({ name: 'Bot', email: 'bot' })).toThrow(/invalid committer email/);
    expect(() => checkIdentity({ name: 'Bot', email: 'a@b>\nauthor x' })).toThrow(/invalid committer email/);
  });
  it('links to the workflow run when there is one', () => {
    expect(runUrl({ GITHUB_SERVER_URL: 'https://github.com', GITHUB_REPOSITORY: 'acme/app', GITHUB_RUN_ID: '42' })).toBe('https://github.com/acme/app/actions/runs/42');
    expect(runUrl({})).toBe('');
  });
  it("links to a re-run's own attempt (the run's URL shows its latest one), and to nothing when a part is not of its form", () => {
    const env = { GITHUB_SERVER_URL: 'https://ghe.example.com/', GITHUB_REPOSITORY: 'acme/app', GITHUB_RUN_ID: '42' };
    expect(runUrl({ ...env, GITHUB_RUN_ATTEMPT: '1' })).toBe('https://ghe.example.com/acme/app/actions/runs/42');
    expect(runUrl({ ...env, GITHUB_RUN_ATTEMPT: '2' })).toBe('https://ghe.example.com/acme/app/actions/runs/42/attempts/2');
    expect(runUrl({ ...env, GITHUB_RUN_ID: '42)](javascript:x)' })).toBe('');
    expect(runUrl({ ...env, GITHUB_REPOSITORY: 'acme/app x' })).toBe('');
    expect(runUrl({ ...env, GITHUB_SERVER_URL: 'javascript:alert(1)//' })).toBe('');
  });
  it('records who started this attempt: on a re-run the one who re-ran it (GITHUB_TRIGGERING_ACTOR), not the first run\'s actor', () => {
    const env = { GITHUB_ACTIONS: 'true', GITHUB_SERVER_URL: 'https://github.com', GITHUB_REPOSITORY: 'acme/app', GITHUB_RUN_ID: '42', GITHUB_ACTOR: 'alice' };
    expect(runInfo({ ...env, GITHUB_TRIGGERING_ACTOR: 'alice' }).actor).toBe('alice');
    expect(runInfo({ ...env, GITHUB_RUN_ATTEMPT: '2', GITHUB_TRIGGERING_ACTOR: 'bob' })).toEqual({ actor: 'bob', runUrl: 'https://github.com/acme/app/actions/runs/42/attempts/2', via: 'github-actions' });
    // a runner that sets no triggering actor (GHES before 3.7)
    expect(runInfo(env).actor).toBe('alice');
  });
});

describe('GitHub access', () => {
  it.each([
    ['https://github.com/acme/webapp.git', 'acme/webapp', 'github.com'],
    ['https://x-access-token:t@github.com/acme/webapp', 'acme/webapp', 'github.com'],
    ['git@github.com:acme/webapp.git', 'acme/webapp', 'github.com'],
    ['ssh://git@github.com/acme/web.app.git', 'acme/web.app', 'github.com'],
    ['ssh://git@ghe.example.com:2222/acme/webapp.git', 'acme/webapp', 'ghe.example.com'],
  ])('reads the repository from %s', (url, repository, host) => {
    expect(repositoryFromUrl(url)).toEqual({ repository, host });
  });
  it.each(['/srv/git/app.git', 'file:///srv/app.git', '../remote.git', 'https://github.com/only-owner'])('finds none in %s', (url) => {
    expect(repositoryFromUrl(url)).toBeUndefined();
  });
  it('knows the API of github.com and of an Enterprise Server', () => {
    expect(apiUrlFor('github.com')).toBe('https://api.github.com');
    expect(apiUrlFor('ghe.example.com')).toBe('https://ghe.example.com/api/v3');
    // GitHub's SSH over port 443 (a firewall lets only 443 out) is github.com's API, not an Enterprise Server's
    expect(apiUrlFor(repositoryFromUrl('ssh://git@ssh.github.com:443/acme/app.git')!.host)).toBe('https://api.github.com');
  });
  it('knows the API of GitHub Enterprise Cloud with data residency (<name>.ghe.com: api.<name>.ghe.com, no /api/v3)', () => {
    expect(apiUrlFor('octocorp.ghe.com')).toBe('https://api.octocorp.ghe.com');
    expect(apiUrlFor(repositoryFromUrl('git@octocorp.ghe.com:acme/app.git')!.host)).toBe('https://api.octocorp.ghe.com');
  });
  it('says why the API cannot be used', () => {
    expect(githubAccess({ processEnv: {}, remoteUrl: '/srv/app.git', token: 't' }).unavailable).toMatch(/repository is unknown/);
    expect(githubAccess({ processEnv: { GITHUB_REPOSITORY: 'acme/app' } }).unavailable).toMatch(/no GitHub token/);
    expect(githubAccess({ processEnv: { GITHUB_REPOSITORY: 'acme/../x', GITHUB_TOKEN: 't' } }).unavailable).toMatch(/invalid repository/);
  });
  it('refuses a rebuild with a token and an invalid $GITHUB_REPOSITORY as a failed listing: staging untouched, saying what to set', async () => {
    const github = githubAccess({ processEnv: { GITHUB_REPOSITORY: 'acme', GITHUB_TOKEN: 't' }, remoteUrl: 'git@github.com:acme/app.git' });
    expect(github.failed?.message).toMatch(/\$GITHUB_REPOSITORY is an invalid repository "acme": expected owner\/name/);
    // The refusal comes before any git command: a repository that would fail every call shows none ran.
    const git = new Proxy({}, { get: () => { throw new Error('git used'); } });
    const ctx = { git, reporter: new MemoryReporter(), settings: stagingSettings({}) } as unknown as StagingContext;
    const refused = rebuildStaging(ctx, { github, label: 'staging', comment: true });
    await expect(refused).rejects.toThrow(/invalid repository "acme".*; staging was left as it is: rebuilt now, it would lose every pull request labelled "staging"/);
    await expect(refused).rejects.toMatchObject({ hint: expect.stringMatching(/^set \$GITHUB_REPOSITORY to the repository as owner\/name.*; staging keeps them until a rebuild can list them/) });
    // Without a token it stays "no API access": the rebuild resets without them, said so.
    expect(githubAccess({ processEnv: { GITHUB_REPOSITORY: 'acme' } }).failed).toBeUndefined();
  });
  it('warns (one line, the fix: https) when the token would go to a host in clear http, and never for https or loopback', () => {
    const access = githubAccess({ processEnv: { GITHUB_REPOSITORY: 'acme/app', GITHUB_TOKEN: 't', GITHUB_API_URL: 'http://ghe.internal/api/v3' } });
    expect(access.api).toBeDefined(); // not refused: an internal Enterprise Server may serve http only
    expect(access.warning).toBe('the GitHub API address http://ghe.internal is plain http: the token goes to ghe.internal unencrypted; set $GITHUB_API_URL to its https:// address');
    expect(githubAccess({ processEnv: { GITHUB_REPOSITORY: 'acme/app', GITHUB_TOKEN: 't' } }).warning).toBeUndefined();
    for (const url of ['https://ghe.internal/api/v3', 'http://127.0.0.1:8080', 'http://localhost:3000/api', 'http://[::1]:9000']) expect(clearTextWarning(url)).toBeUndefined();
    expect(clearTextWarning('HTTP://10.0.0.5:8080/api/v3')).toMatch(/^the GitHub API address http:\/\/10\.0\.0\.5:8080 is plain http/);
  });
  it('warns the same in the deployment-superseded action ($GITHUB_API_URL), before its first request', async () => {
    const reporter = new MemoryReporter();
    // An invalid repository stops it before any request: the warning came first.
    await expect(markSuperseded({ token: 't', repository: 'acme', apiUrl: 'http://ghe.internal/api/v3', environment: 'prod', sha: A }, reporter)).rejects.toThrow(/invalid \$GITHUB_REPOSITORY/);
    expect(reporter.lines).toEqual(['warning: the GitHub API address http://ghe.internal is plain http: the token goes to ghe.internal unencrypted; set $GITHUB_API_URL to its https:// address']);
  });
  it('takes the token from the input, then $GITHUB_TOKEN, then $GH_TOKEN, and the repository from the remote on a laptop', () => {
    expect(githubAccess({ processEnv: { GH_TOKEN: 't' }, remoteUrl: 'git@github.com:acme/app.git' }).api?.repository).toBe('acme/app');
    expect(githubAccess({ processEnv: { GITHUB_TOKEN: 't', GITHUB_REPOSITORY: 'acme/other' }, remoteUrl: 'git@github.com:acme/app.git' }).api?.repository).toBe('acme/other');
    expect(githubAccess({ token: 'x', processEnv: { GITHUB_REPOSITORY: 'acme/app' } }).api).toBeDefined();
  });
});

describe('telling', () => {
  const source: Source = { display: '#3 (feature/c)', key: 'refs/heads/feature/c', sha: C, pull: { number: 3, title: 'Fix | pipes', url: 'https://x/pull/3', branch: 'feature/c' } };
  const base: RebuildResult = { before: A, after: B, main: M, changed: true, added: [], skipped: [], dropped: [], lost: [], carried: [], attempts: 1, dryRun: false, comments: [] };
  const names = { main: 'master', staging: 'staging', label: 'staging' };

  it('summarises a rebuild: table, warnings, dropped refs', () => {
    const md = rebuildSummary({ ...base, added: [{ source, outcome: 'merge', sha: B }], skipped: [{ source: { ...source, sha: A }, reason: 'conflict', message: 'x', files: ['a|b.txt'] }], dropped: ['feature/old'] }, names);
    expect(md).toContain('`staging`: `aaaaaaa` → `bbbbbbb` (master at `1111111`)');
    expect(md).toContain('| [#3](https://x/pull/3) Fix \\| pipes | `ccccccc` | merge commit |');
    expect(md).toContain('| **skipped** (conflict: `a\\|b.txt`) |');
    expect(md).toContain('No longer in staging: `feature/old`.');
    expect(md).not.toContain('not re-applied');
  });
  it('warns loudly when labelled pull requests were not re-applied', () => {
    const md = rebuildSummary({ ...base, pullsUnavailable: 'no GitHub token' }, names);
    expect(md).toMatch(/\*\*Warning\*\*: pull requests labelled `staging` were \*\*not re-applied\*\*: no GitHub token/);
    expect(md).toContain('> staging is now master; add them back');
    // a dry run pushed nothing: staging is not master yet
    const dry = rebuildSummary({ ...base, pullsUnavailable: 'no GitHub token', dryRun: true }, names);
    expect(dry).toContain('> staging would be master; add them back');
    expect(dry).not.toContain('is now');
    expect(rebuildSummary(base, names)).toContain('No open pull request carries the label `staging`.');
    expect(rebuildSummary({ ...base, changed: false, dryRun: true }, names)).toMatch(/^### Dry run: [\s\S]*unchanged/);
  });
  it('summarises an add', () => {
    const add = { source: { display: 'feature/x', sha: A }, outcome: 'fast-forward' as const, sha: A, before: M, changed: true, created: false, attempts: 1, dryRun: false, alsoAdded: [], skipped: [] };
    const md = addSummary(add, { staging: 'staging', label: 'staging' });
    expect(md).toContain('feature/x (`aaaaaaa`) added to staging by fast-forward: `1111111` → `aaaaaaa`');
    expect(md).not.toContain('lacked');
    const pr = (n: number) => ({ display: `#${n} (b${n})`, sha: A, pull: { number: n, title: `PR ${n}`, url: `https://x/${n}`, branch: `b${n}` } });
    const more = addSummary({ ...add, alsoAdded: [{ source: pr(3), outcome: 'merge', sha: A }], skipped: [{ source: pr(4), reason: 'conflict', message: 'm' }] }, { staging: 'staging', label: 'staging' });
    expect(more).toContain("Open pull requests labelled `staging` that staging lacked (a cancelled run's work):");
    expect(more).toContain('| [#3](https://x/3) PR 3 | `aaaaaaa` | merge commit |');
    expect(more).toContain('| [#4](https://x/4) PR 4 | `aaaaaaa` | **skipped** (conflict) |');
    expect(addSummary({ ...add, pullsUnavailable: 'no GitHub token' }, { staging: 'staging', label: 'staging' })).toContain('were **not checked**: no GitHub token');
  });
  it('says when the branch moved on since the labelled commit it added, and what waits for a new label', () => {
    const add = { source: { display: '#7 (feature/x)', sha: A }, outcome: 'merge' as const, sha: C, before: M, changed: true, created: false, attempts: 1, dryRun: false, alsoAdded: [], skipped: [] };
    expect(addSummary(add, { staging: 'staging', label: 'staging' })).not.toContain('Note');
    const moved = { ...add, moved: { head: B, newer: ['bbbbbbb unreviewed | work'], rewritten: false } };
    expect(describeMoved(moved, 'staging')).toBe(
      '#7 (feature/x) is at bbbbbbb now, not at the labelled commit aaaaaaa, which is what staging takes; 1 newer commit not added, waiting for a new label: bbbbbbb unreviewed | work',
    );
    expect(addSummary(moved, { staging: 'staging', label: 'staging' })).toContain('> **Note**: \\#\u20607 (feature/x) is at bbbbbbb now, not at the labelled commit aaaaaaa, which is what staging takes; 1 newer commit not added, waiting for a new label: bbbbbbb unreviewed \\| work');
    expect(describeMoved({ ...add, moved: { head: B, newer: [], rewritten: true } }, 'staging')).toMatch(/the branch was rewritten since \(the labelled commit is no longer in it\): its new commits wait for a new label\.$/);
    expect(describeMoved(add, 'staging')).toBeUndefined();
  });
  it("what comes from outside (a pull request's title, a ref, a file, a commit subject, an API error) shows as it is: no cell split, no markup, HTML, mention or issue link", () => {
    const hostile = 'x | y <img src=x onerror=alert(1)> **b** @octocat #12 $a$';
    const shown = 'x \\| y \\<img src=x onerror=alert(1)\\> \\*\\*b\\*\\* @\u2060octocat #\u206012 \\$a\\$';
    const pull = { number: 3, title: hostile, url: 'https://x/pull/3)](javascript:alert(1)', branch: 'f|`x`' };
    const src: Source = { display: '#3 (f|`x`)', key: 'refs/heads/f|`x`', sha: C, pull };
    const md = rebuildSummary(
      { ...base, added: [{ source: src, outcome: 'merge', sha: B }], skipped: [{ source: { display: 'a|`b`', sha: A }, reason: 'conflict', message: hostile, files: ['<b>|`c`.txt'] }], dropped: ['d|e'], lost: [`${A.slice(0, 7)} ${hostile}`], pullsUnavailable: hostile },
      names,
    );
    expect(md).toContain(`| [#3](https://x/pull/3%29]%28javascript:alert%281%29) ${shown} | \`ccccccc\` | merge commit |`);
    expect(md).toContain('| `` a\\|`b` `` | `aaaaaaa` | **skipped** (conflict: ``<b>\\|`c`.txt``) |');
    expect(md).toContain('No longer in staging: `d|e`.');
    expect(md).toContain(`- \`aaaaaaa\` ${shown}`);
    expect(md).toContain(`were **not re-applied**: ${shown}.`);
    // every table row has its three cells, as GitHub splits them (an unescaped "|" would add one)
    for (const row of md.split('\n').filter((l) => l.startsWith('| '))) expect(row.split(/(?<!\\)\|/).length - 2).toBe(3);
    expect(md).not.toMatch(/(?<!\\)<img|@octocat|#12/);
    const comment = skippedComment({ source: src, reason: 'conflict', message: hostile }, { main: 'ma`in', staging: 'st|ag', label: '@team' }, 'https://run/1');
    expect(comment).toContain('**Not in `st|ag`**: [the rebuild of `st|ag`](https://run/1)');
    expect(comment).toContain('It conflicts with ``ma`in`` or with another pull request labelled `@team`');
    expect(comment).toContain(`\`\`\`\n${hostile}\n\`\`\``);
  });

  it('prints the summary on a terminal with the values as they are (masked, one line, controls shown): no Markdown escapes', async () => {
    const chunks: string[] = [];
    const out = new Writable({ write: (c, _e, done) => (chunks.push(String(c)), done()) });
    const terminal = new ConsoleReporter(out as NodeJS.WriteStream, out as NodeJS.WriteStream, { color: false });
    terminal.mask('hunter2-secret');
    const title = 'fix | @octocat #12 *b* $a$ GH-7 hunter2-secret\x1b[2J\nnext';
    const pull = { number: 3, title, url: 'https://x/pull/3', branch: 'f' };
    const r = { ...base, added: [{ source: { display: '#3 (f)', sha: C, pull }, outcome: 'merge' as const, sha: B }], lost: [`${A.slice(0, 7)} ${title}`], pullsUnavailable: `#9 by @team\\x` };
    await terminal.summary(rebuildSummary(r, names, terminal.values));
    const printed = chunks.join('');
    const plain = 'fix | @octocat #12 *b* $a$ GH-7 *** [2J next'; // the escape and the line break made harmless (printableLine)
    expect(printed).toContain(`| #3 (https://x/pull/3) ${plain} | \`ccccccc\` | merge commit |`);
    expect(printed).toContain(`- aaaaaaa ${plain}`);
    expect(printed).toContain('were **not re-applied**: #9 by @team\\x.');
    expect(printed).not.toMatch(/\u2060|\x1b|hunter2/);
    // The job summary of the same result keeps its escapes (markdownValues).
    expect(rebuildSummary(r, names, new MemoryReporter().values)).toContain('- `aaaaaaa` fix \\| @\u2060octocat #\u206012 \\*b\\* \\$a\\$ GH\u2060-7 hunter2-secret');
  });
  it('writes a pull-request comment that says why and what to do, with the marker', () => {
    const body = skippedComment({ source, reason: 'conflict', message: 'conflicts in a.txt', files: ['a.txt'] }, names, 'https://run');
    expect(body.startsWith(COMMENT_MARKER)).toBe(true);
    expect(body).toContain('[the rebuild of `staging`](https://run)');
    expect(body).toContain('```\nconflicts in a.txt\n```');
    expect(body).toMatch(/Resolve the conflict on this branch/);
    expect(body).toMatch(/remove the `staging` label/);
  });
  it('turns push refusals into hints', () => {
    expect(pushHint('refusing to allow a GitHub App to create or update workflow `.github/workflows/x.yml` without `workflows` permission', 'staging')).toMatch(/workflows/);
    expect(pushHint('remote: error: GH006: Protected branch update failed', 'staging')).toMatch(/staging is protected/);
    expect(pushHint('fatal: could not read Username for https://github.com', 'staging')).toMatch(/contents: write/);
    expect(pushHint('something else', 'staging')).toBeUndefined();
  });
  it("says what to allow for each of GitHub's refusals of a protected staging: force pushes (a rebuild), other rules", () => {
    // As GitHub's git server prints them (branch protection GH006, rulesets GH013), after git's "remote: ".
    const forced = [
      'remote: error: GH006: Protected branch update failed for refs/heads/staging.\nremote: error: Cannot force-push to this branch',
      'remote: error: GH013: Repository rule violations found for refs/heads/staging.\nremote: Review all repository rules at https://github.com/acme/webapp/rules?ref=refs%2Fheads%2Fstaging\nremote: \nremote: - Cannot force-push to this branch',
    ];
    expect(pushHint(forced[0]!, 'staging')).toMatch(/^staging refuses force pushes \(branch protection: Settings → Branches\): a rebuild replaces staging .*Allow force pushes/);
    expect(pushHint(forced[1]!, 'staging')).toMatch(/^staging refuses force pushes \(a ruleset: Settings → Rules\): .*bypass list/);
    for (const rule of ['- Changes must be made through a pull request.', '- Cannot update this protected ref.', '- Required status check "ci" is expected.']) {
      const stderr = `remote: error: GH013: Repository rule violations found for refs/heads/staging.\nremote: \nremote: ${rule}\n ! [remote rejected] staging -> staging (push declined due to repository rule violations)`;
      expect(pushHint(stderr, 'staging'), rule).toBe("staging is protected against this push (a ruleset: Settings → Rules; the rule is named above): allow the pipeline's token to push to staging");
    }
  });
});
