// staging add against real git: a bare repository as the remote, a clone as the runner, other clones as
// people pushing at the same time (races are a real push from another clone between our fetch and our push).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Git } from '../../core/git.ts';
import { addToStaging } from '../../core/staging/add.ts';
import { rebuildStaging } from '../../core/staging/rebuild.ts';
import { addSummary } from '../../core/staging/messages.ts';
import { runStaging } from '../../core/staging/run.ts';
import { stagingSettings } from '../../core/staging/settings.ts';
import { ConsoleReporter, MemoryReporter } from '../../core/report.ts';
import { Writable } from 'node:stream';
import { runCli } from '../../scripts/cli.ts';
import { allCommands } from '../../scripts/commands/index.ts';
import { RacingGit, Scratch, context, failure, fresh as copyOf, line2, line3, refusal } from './staging.support.ts';

const SCENE_TIMEOUT = 60_000; // building a scene runs dozens of git processes

// The scene is built once (dozens of git processes); every test works on a copy of it.
let scratch: Scratch | undefined;
afterEach(() => {
  scratch?.cleanup();
  scratch = undefined;
});
function fresh(template: Scratch) {
  const scene = copyOf(template);
  scratch = scene.s;
  return scene;
}

describe('staging add', () => {
  let template: Scratch;
  const sha: Record<string, string> = {};
  beforeAll(() => {
    template = Scratch.create();
    const dev = template.clone('dev');
    template.clone('runner');
    template.clone('other');
    sha.a1 = dev.feature('feature/a', { 'a.txt': 'a\n' }, 'first change');
    sha.a = dev.commit({ 'a2.txt': 'a2\n' }, 'second change');
    dev.push('feature/a');
    sha.b = dev.feature('feature/b', { 'b.txt': 'b\n' }, 'b work');
    sha.b2 = dev.feature('feature/b2', { 'app.txt': line2('b') }, 'b2 edits line two');
    sha.c = dev.feature('feature/c', { 'app.txt': line2('c'), 'c.txt': 'c\n' }, 'c edits line two');
    sha.m = dev.feature('feature/m', { 'app.txt': line3('m') }, 'm edits line three');
    sha.t = dev.feature('feature/t', { 't.txt': 't\n' });
    dev.git('tag', '-a', '-m', 'v1', 'v1.0');
    dev.git('push', '-q', 'origin', 'v1.0');
    sha.fork = dev.feature('tmp-fork', { 'fork.txt': 'from a fork\n' });
    dev.git('push', '-q', 'origin', ':refs/heads/tmp-fork');
    template.setPullRef(7, sha.fork);
    sha.master = template.sha('master')!;
  }, SCENE_TIMEOUT);
  afterAll(() => template.cleanup());

  it('fast-forwards when staging is an ancestor of the ref, and remembers the head it added', async () => {
    const { s, runner } = fresh(template);
    const r = await addToStaging(context(runner.dir), 'feature/a');
    expect(r).toMatchObject({ outcome: 'fast-forward', sha: sha.a, before: sha.master, changed: true, created: false, attempts: 1 });
    expect(s.sha('staging')).toBe(sha.a);
    expect(s.tracking()).toEqual({ 'refs/staging-heads/heads/feature/a': sha.a });
  });

  it('merges otherwise, with a commit that names the branch and its sha, made by the configured committer', async () => {
    const { s, runner } = fresh(template);
    await addToStaging(context(runner.dir), 'feature/a');
    const bot = new Git(runner.dir, { identity: { name: 'Staging Bot', email: 'bot@example.org' } });
    const r = await addToStaging(context(runner.dir, {}, bot), 'feature/b');
    expect(r.outcome).toBe('merge');
    const staging = s.sha('staging')!;
    expect(staging).toBe(r.sha);
    expect(s.git('log', '-1', '--format=%P', staging).split(' ')).toEqual([sha.a, sha.b]);
    const message = s.git('log', '-1', '--format=%B', staging);
    expect(message).toContain(`Merge feature/b at ${sha.b!.slice(0, 12)} into staging`);
    expect(message).toContain(`Staging-Ref: refs/heads/feature/b\nStaging-Head: ${sha.b}`);
    // Not the global git config's identity, nor the people's: the one given.
    expect(s.git('log', '-1', '--format=%an <%ae>|%cn <%ce>', staging)).toBe('Staging Bot <bot@example.org>|Staging Bot <bot@example.org>');
    expect(s.files(staging)).toEqual(expect.arrayContaining(['a.txt', 'a2.txt', 'b.txt', 'app.txt']));
    expect(s.tracking()).toEqual({ 'refs/staging-heads/heads/feature/a': sha.a, 'refs/staging-heads/heads/feature/b': sha.b });
  });

  it('by default commits as ops-pipeline, whatever the repository and global git config say', async () => {
    const { s, runner } = fresh(template);
    runner.git('config', 'user.name', 'Someone Else');
    runner.git('config', 'user.email', 'someone@example.com');
    await addToStaging(context(runner.dir), 'feature/a');
    await addToStaging(context(runner.dir), 'feature/b');
    expect(s.git('log', '-1', '--format=%an <%ae>|%cn <%ce>', 'staging')).toBe(
      'ops-pipeline <ops-pipeline@users.noreply.github.com>|ops-pipeline <ops-pipeline@users.noreply.github.com>',
    );
  });

  it('does nothing when the ref is already contained, and says so', async () => {
    const { s, runner } = fresh(template);
    await addToStaging(context(runner.dir), 'feature/a');
    await addToStaging(context(runner.dir), 'feature/b');
    const before = s.refs();
    const reporter = new MemoryReporter();
    const r = await runStaging({ mode: 'add', ref: 'feature/a', repo: runner.dir, settings: stagingSettings({ retryDelayMs: 0 }), processEnv: process.env, reporter });
    expect(r).toMatchObject({ outcome: 'already-contained', changed: false });
    expect(s.refs()).toEqual(before);
    expect(reporter.outputs).toMatchObject({ changed: 'false', added: '', sha: before['refs/heads/staging'] });
    expect(reporter.summaries.join('\n')).toMatch(/feature\/a \(`[0-9a-f]{7}`\) is already contained in staging/);
  });

  it('creates staging from master when it does not exist yet', async () => {
    const { s, runner } = fresh(template);
    runner.git('push', '-q', 'origin', ':refs/heads/staging');
    const r = await addToStaging(context(runner.dir), 'feature/a');
    expect(r).toMatchObject({ outcome: 'fast-forward', created: true, before: undefined, changed: true });
    expect(s.sha('staging')).toBe(sha.a);
  });

  it('refuses a branch rewritten after it was fast-forwarded in, listing the rewritten commits', async () => {
    const { s, dev, runner } = fresh(template);
    await addToStaging(context(runner.dir), 'feature/a');
    dev.git('checkout', '-q', 'feature/a');
    dev.git('commit', '-q', '--amend', '-m', 'second change, amended');
    dev.push('feature/a', { force: true });
    const before = s.refs();

    const e = await refusal(addToStaging(context(runner.dir), 'feature/a'));
    expect(e.reason).toBe('rewritten');
    expect(e.message).toMatch(/^feature\/a was rewritten since it was added to staging: the head added then, [0-9a-f]{7}, is no longer part of it/);
    expect(e.message).toMatch(/In staging, but no longer in feature\/a:\n {2}[0-9a-f]{7} second change\n/);
    expect(e.message).toMatch(/In feature\/a now instead:\n {2}[0-9a-f]{7} second change, amended/);
    expect(e.message).not.toMatch(/first change/); // still part of the branch: not rewritten
    expect(e.hint).toMatch(/push new commits on top.*or rebuild staging/);
    expect(s.refs()).toEqual(before);
  });

  it('refuses a branch rewritten after a merge, from the merge trailer alone (tracking refs gone)', async () => {
    const { s, dev, runner } = fresh(template);
    await addToStaging(context(runner.dir), 'feature/a');
    await addToStaging(context(runner.dir), 'feature/b');
    for (const ref of Object.keys(s.tracking())) runner.git('push', '-q', 'origin', `:${ref}`);
    dev.branch('feature/b', 'master');
    dev.commit({ 'b.txt': 'b, redone\n' }, 'b work, redone');
    dev.push('feature/b', { force: true });

    const e = await refusal(addToStaging(context(runner.dir), 'feature/b'));
    expect(e.reason).toBe('rewritten');
    expect(e.message).toMatch(/no longer in feature\/b:\n {2}[0-9a-f]{7} b work\n/);
  });

  it('takes new commits on top of an added branch (not a rewrite) and moves its record', async () => {
    const { s, dev, runner } = fresh(template);
    await addToStaging(context(runner.dir), 'feature/a');
    await addToStaging(context(runner.dir), 'feature/b');
    dev.git('checkout', '-q', 'feature/b');
    const b2 = dev.commit({ 'b.txt': 'more b\n' }, 'more b');
    dev.push('feature/b');
    const r = await addToStaging(context(runner.dir), 'feature/b');
    expect(r.outcome).toBe('merge');
    expect(s.tracking()['refs/staging-heads/heads/feature/b']).toBe(b2);
    expect(s.show('staging', 'b.txt')).toBe('more b');
  });

  it('refuses a conflict, lists the files and the staging commits that touch them, and leaves staging untouched', async () => {
    const { s, runner } = fresh(template);
    await addToStaging(context(runner.dir), 'feature/a');
    await addToStaging(context(runner.dir), 'feature/b2');
    const before = s.refs();

    const e = await refusal(addToStaging(context(runner.dir), 'feature/c'));
    expect(e.reason).toBe('conflict');
    expect(e.files).toEqual(['app.txt']);
    expect(e.message).toMatch(/^feature\/c \([0-9a-f]{7}\) conflicts with staging \([0-9a-f]{7}\) in 1 file; staging was not changed:\n {2}app\.txt\n/);
    expect(e.message).toMatch(/that change it:\n {2}[0-9a-f]{7} b2 edits line two\nThey came with feature\/b2, added to staging before\.$/);
    expect(e.hint).toBe('the conflict is with work already in staging, not with master (feature/b2): coordinate with that branch, or rebuild staging once it is gone');
    expect(s.refs()).toEqual(before);
  });

  it('when the conflicting commits came from no add (master rewritten since, a hand push): says so, and to rebuild', async () => {
    const { s, dev, runner } = fresh(template);
    dev.branch('master');
    const old = dev.commit({ 'app.txt': line2('master') }, 'master edits line two');
    dev.push('master');
    dev.push('staging', { force: true }); // staging rebuilt from that master
    dev.git('reset', '-q', '--hard', 'HEAD~1'); // then master force-pushed without that commit
    dev.push('master', { force: true });
    const before = s.refs();
    const e = await refusal(addToStaging(context(runner.dir), 'feature/c'));
    expect(e.message).toMatch(/that change it:\n {2}[0-9a-f]{7} master edits line two$/);
    expect(e.hint).toBe(
      `the conflict is with commits in staging that no staging add brought (${old.slice(0, 7)}: pushed to staging by hand, or master's before it was rewritten): rebuild staging (\`ops staging rebuild\`) to start again from master, after putting on a branch any of them worth keeping`,
    );
    expect(s.refs()).toEqual(before);
  });

  it('says so when the conflict is with master itself', async () => {
    const { dev, runner } = fresh(template);
    dev.branch('master');
    dev.commit({ 'app.txt': line3('master') }, 'master edits line three');
    dev.push('master');
    dev.push('staging', { force: true });
    const e = await refusal(addToStaging(context(runner.dir), 'feature/m'));
    expect(e.hint).toMatch(/conflicts with master itself: merge or rebase master into feature\/m/);
  });

  it('fetches again and retries when staging moved between its fetch and its push; both changes are kept', async () => {
    const { s, runner, other } = fresh(template);
    const racing = new RacingGit(runner.dir);
    let theirs = '';
    racing.beforePush = () => {
      other.branch('staging', 'staging');
      theirs = other.commit({ 'hotfix.txt': 'hot\n' }, 'a hotfix pushed straight to staging');
      other.push('staging');
    };
    const ctx = context(runner.dir, {}, racing);
    const r = await addToStaging(ctx, 'feature/a');
    expect(r).toMatchObject({ attempts: 2, outcome: 'merge', before: theirs }); // staging is no longer an ancestor of feature/a
    expect(s.sha('staging')).toBe(r.sha);
    expect(s.isAncestor(theirs, r.sha) && s.isAncestor(sha.a!, r.sha)).toBe(true);
    expect(ctx.reporter.text()).toMatch(/staging moved on origin: [0-9a-f]{7} → [0-9a-f]{7} since it was fetched; fetching again and retrying \(attempt 2 of 4\)/);
  });

  it('gives up clearly when staging keeps moving, and the other push stays', async () => {
    const { s, runner, other } = fresh(template);
    const racing = new RacingGit(runner.dir);
    racing.beforePush = () => {
      other.branch('staging', 'staging');
      other.commit({ 'hotfix.txt': 'hot\n' }, 'hotfix');
      other.push('staging');
    };
    const e = await failure(addToStaging(context(runner.dir, { retries: 0 }, racing), 'feature/a'));
    expect(e.message).toMatch(/^staging kept moving on origin \(staging moved on origin: [0-9a-f]{7} → [0-9a-f]{7}\); gave up after 1 attempts\. staging was not changed by this run\.$/);
    expect(s.sha('staging')).toBe(other.git('rev-parse', 'HEAD'));
    expect(s.tracking()).toEqual({});
  });

  it("fails with git's own message when the push is refused for another reason (no retry loop)", async () => {
    const { s, runner } = fresh(template);
    s.hook('pre-receive', 'echo "GH006: Protected branch update failed for refs/heads/staging." >&2; exit 1');
    const ctx = context(runner.dir);
    const e = await failure(addToStaging(ctx, 'feature/a'));
    expect(e.message).toMatch(/^origin refused the push, so staging was not changed by this run \(one atomic push: none of its refs moved\): git push --atomic .* failed \(exit code 1\)[\s\S]*GH006: Protected branch update failed/);
    expect(e.hint).toMatch(/staging is protected/);
    expect(ctx.reporter.text()).not.toMatch(/retrying/);
    expect(s.sha('staging')).toBe(sha.master);
  });

  it('adds a pull request by number through refs/pull/N/head (a fork), remembered under that ref', async () => {
    const { s, runner } = fresh(template);
    const r = await addToStaging(context(runner.dir), 'pull/7');
    expect(r).toMatchObject({ outcome: 'fast-forward', sha: sha.fork, source: { display: '#7', key: 'refs/pull/7/head' } });
    expect(s.tracking()).toEqual({ 'refs/staging-heads/pull/7/head': sha.fork });
  });

  it('adds an annotated tag and a bare commit sha too', async () => {
    const { s, runner } = fresh(template);
    expect((await addToStaging(context(runner.dir), 'v1.0')).sha).toBe(sha.t);
    const r = await addToStaging(context(runner.dir), sha.b!);
    expect(r.outcome).toBe('merge');
    expect(s.isAncestor(sha.b!, s.sha('staging')!)).toBe(true);
    expect(s.tracking()).toEqual({ 'refs/staging-heads/tags/v1.0': sha.t, [`refs/staging-heads/commits/${sha.b}`]: sha.b });
  });

  it('remembers a commit added by its sha (a fast-forward has no merge to carry a trailer): no later add warns of it as brought by no add, and a rebuild names it among what it drops, not as pushed by hand', async () => {
    const { s, runner } = fresh(template);
    const r = await addToStaging(context(runner.dir), sha.a1!);
    expect(r).toMatchObject({ outcome: 'fast-forward', sha: sha.a1, source: { display: sha.a1!.slice(0, 12), key: `refs/commits/${sha.a1}` } });
    expect(s.tracking()).toEqual({ [`refs/staging-heads/commits/${sha.a1}`]: sha.a1 });
    const next = context(runner.dir);
    await addToStaging(next, 'feature/b');
    expect(next.reporter.text()).not.toMatch(/no add of a branch, tag or pull request brought/);
    const rebuild = context(runner.dir);
    const rebuilt = await rebuildStaging(rebuild, { github: { unavailable: 'test' }, label: 'staging', comment: false });
    expect([...rebuilt.dropped].sort()).toEqual([sha.a1!.slice(0, 12), 'feature/b'].sort());
    expect(rebuilt.lost ?? []).toEqual([]);
    expect(rebuild.reporter.text()).not.toMatch(/pushed to staging by hand/);
    expect(s.tracking()).toEqual({});
  });

  it('a sha in capitals (full, or a prefix) is that commit, as git reads it', async () => {
    const { s, runner } = fresh(template);
    expect((await addToStaging(context(runner.dir), sha.b!.toUpperCase())).source.sha).toBe(sha.b);
    expect(s.isAncestor(sha.b!, s.sha('staging')!)).toBe(true);
    // A prefix names a commit this clone has (the one just fetched): git cannot ask a remote for one.
    expect((await addToStaging(context(runner.dir), sha.b!.slice(0, 10).toUpperCase())).source.sha).toBe(sha.b);
  });

  it('never touches the working tree, the index or HEAD of the clone it runs in', async () => {
    const { runner } = fresh(template);
    runner.git('checkout', '-q', '-b', 'my-work');
    runner.commit({ 'mine.txt': 'committed\n' }, 'my work');
    writeFileSync(join(runner.dir, 'app.txt'), 'uncommitted edit\n');
    writeFileSync(join(runner.dir, 'staged.txt'), 'staged\n');
    runner.git('add', 'staged.txt');
    const head = runner.git('rev-parse', 'HEAD');
    const status = runner.git('status', '--porcelain');
    await addToStaging(context(runner.dir), 'feature/a');
    await addToStaging(context(runner.dir), 'feature/b');
    await rebuildStaging(context(runner.dir), { github: { unavailable: 'test' }, label: 'staging', comment: false });
    expect(runner.git('rev-parse', 'HEAD')).toBe(head);
    expect(runner.git('symbolic-ref', 'HEAD')).toBe('refs/heads/my-work');
    expect(runner.git('status', '--porcelain')).toBe(status);
    expect(runner.git('for-each-ref', 'refs/ops-staging/')).toBe(''); // scratch refs cleaned up
  });

  it('works from a shallow clone (actions/checkout default depth) by fetching the history first', async () => {
    const { s } = fresh(template);
    const shallow = s.clone('shallow', '--depth', '1');
    expect(shallow.git('rev-parse', '--is-shallow-repository')).toBe('true');
    const ctx = context(shallow.dir);
    await addToStaging(ctx, 'feature/a');
    const r = await addToStaging(ctx, 'feature/b');
    expect(r.outcome).toBe('merge');
    expect(s.sha('staging')).toBe(r.sha);
    expect(ctx.reporter.text()).toMatch(/shallow clone: fetching its full history/);
  });

  it('computes but pushes nothing in a dry run', async () => {
    const { s, runner } = fresh(template);
    const before = s.refs();
    const r = await addToStaging(context(runner.dir, { dryRun: true }), 'feature/a');
    expect(r).toMatchObject({ outcome: 'fast-forward', changed: true, dryRun: true });
    expect(s.refs()).toEqual(before);
  });

  it('refuses bad input with clear errors, before touching anything', async () => {
    const { s, runner } = fresh(template);
    const before = s.refs();
    const ctx = context(runner.dir);
    await expect(addToStaging(ctx, '--upload-pack=evil')).rejects.toThrow(/invalid ref "--upload-pack=evil"/);
    await expect(addToStaging(ctx, 'a..b')).rejects.toThrow(/invalid ref "a\.\.b"/);
    await expect(addToStaging(ctx, 'x y')).rejects.toThrow(/invalid ref/);
    await expect(addToStaging(ctx, 'refs/notes/x')).rejects.toThrow(/unsupported ref/);
    await expect(addToStaging(ctx, 'nope')).rejects.toThrow(/no branch or tag "nope" on origin/);
    await expect(addToStaging(ctx, 'origin/feature/a')).rejects.toMatchObject({ hint: expect.stringMatching(/without the remote: feature\/a/) });
    await expect(addToStaging(ctx, 'pull/99')).rejects.toThrow(/refs\/pull\/99\/head does not exist on origin/);
    await expect(addToStaging(ctx, 'abcdef1')).rejects.toThrow(/commit abcdef1 is not in this repository/);
    await expect(addToStaging(context(runner.dir, { main: 'main' }), 'feature/a')).rejects.toThrow(/the main branch "main" does not exist on origin/);
    const base = { mode: 'add' as const, ref: 'feature/a', processEnv: process.env, reporter: new MemoryReporter() };
    await expect(runStaging({ ...base, repo: runner.dir, settings: stagingSettings({ remote: 'upstream' }) })).rejects.toThrow(/has no remote named "upstream"/);
    await expect(runStaging({ ...base, repo: s.root, settings: stagingSettings({}) })).rejects.toThrow(/is not a git repository/);
    await expect(runStaging({ ...base, repo: runner.dir, settings: stagingSettings({}), identity: { name: 'x', email: 'not an email' } })).rejects.toThrow(/invalid committer email/);
    await expect(runStaging({ ...base, ref: '', repo: runner.dir, settings: stagingSettings({}) })).rejects.toThrow(/nothing to add/);
    expect(s.refs()).toEqual(before);
  });

  it("says, on every add, the commits staging keeps that no add brought: master's before a force push, a hand push", async () => {
    const { s, runner, dev, other } = fresh(template);
    dev.branch('master');
    const oops = dev.commit({ 'secret.txt': 'hunter2\n' }, 'oops: a secret');
    dev.push('master');
    dev.git('push', '-q', 'origin', 'master:staging'); // staging took master's head (as a rebuild does)
    const clean = await addToStaging(context(runner.dir), 'feature/a');
    expect(clean.unadded).toBeUndefined();
    dev.git('reset', '-q', '--hard', 'HEAD~1');
    dev.push('master', { force: true }); // master rewritten: the secret taken out
    other.branch('staging', 'staging');
    const hotfix = other.commit({ 'hotfix.txt': 'hot\n' }, 'hotfix pushed by hand');
    other.push('staging');
    const ctx = context(runner.dir);
    const r = await addToStaging(ctx, 'feature/b');
    expect(r).toMatchObject({ outcome: 'merge', changed: true });
    expect(r.unadded).toEqual([`${hotfix.slice(0, 7)} hotfix pushed by hand`, `${oops.slice(0, 7)} oops: a secret`]);
    expect(ctx.reporter.text()).toContain(
      `warning: staging holds 2 commits that no add of a branch, tag or pull request brought (pushed to it by hand, or master's before it was rewritten): they stay in staging, deployed with it, until a rebuild drops them (ops staging rebuild; to keep one, put it on a branch and add it):\n  ${hotfix.slice(0, 7)} hotfix pushed by hand\n  ${oops.slice(0, 7)} oops: a secret`,
    );
    expect(addSummary(r, { staging: 'staging', label: 'staging' })).toContain(`> **Warning**: staging holds 2 commits that no add of a branch, tag or pull request brought`);
    expect(s.isAncestor(oops, s.sha('staging')!)).toBe(true); // kept, as said, until a rebuild
  });

  it('refuses a branch or tag named in hex that also begins a commit, as a deploy does, saying how to name each; takes it spelled in full', async () => {
    const { s, runner, dev } = fresh(template);
    runner.git('fetch', '-q', 'origin'); // every branch, as a checkout with fetch-depth: 0 has them
    // A branch named as master's short sha (a copied sha pushed as a branch name), a tag named in capitals as
    // feature/b's prefix, and a hex-named branch that begins no commit.
    const { a, b, t, master } = sha as Record<'a' | 'b' | 't' | 'master', string>;
    const masterPrefix = master.slice(0, 8);
    const bPrefix = b.slice(0, 10).toUpperCase();
    dev.git('push', '-q', 'origin', `${a}:refs/heads/${masterPrefix}`, `${t}:refs/tags/${bPrefix}`, `${t}:refs/heads/0000000fab`);
    const before = s.refs();
    const ctx = context(runner.dir);
    const branch = await failure(addToStaging(ctx, masterPrefix));
    expect(branch.message).toBe(`ref "${masterPrefix}" is ambiguous: it names a branch (${a.slice(0, 12)}) and a commit (${master.slice(0, 12)})`);
    expect(branch.hint).toBe(`say which one: refs/heads/${masterPrefix} or ${master}`);
    const tag = await failure(addToStaging(ctx, bPrefix));
    expect(tag.message).toBe(`ref "${bPrefix}" is ambiguous: it names a tag (${t.slice(0, 12)}) and a commit (${b.slice(0, 12)})`);
    expect(s.refs()).toEqual(before);
    expect(await addToStaging(context(runner.dir), '0000000fab')).toMatchObject({ outcome: 'fast-forward', sha: t });
    expect(await addToStaging(context(runner.dir), `refs/heads/${masterPrefix}`)).toMatchObject({ outcome: 'merge' });
    expect(s.tracking()).toMatchObject({ [`refs/staging-heads/heads/${masterPrefix}`]: a, 'refs/staging-heads/heads/0000000fab': t });
  });
});


describe('ops staging (CLI)', () => {
  let template: Scratch;
  beforeAll(() => {
    template = Scratch.create();
    const dev = template.clone('dev');
    template.clone('runner');
    template.clone('other');
    dev.feature('feature/a', { 'a.txt': 'a\n' });
    dev.feature('feature/b', { 'app.txt': line2('b') });
    dev.feature('feature/c', { 'app.txt': line2('c') });
  }, SCENE_TIMEOUT);
  afterAll(() => template.cleanup());

  async function ops(cwd: string, ...argv: string[]) {
    let out = '';
    let err = '';
    const sink = (write: (t: string) => void) => new Writable({ write: (chunk, _enc, done) => (write(String(chunk)), done()) });
    const stdout = sink((t) => (out += t));
    const stderr = sink((t) => (err += t));
    const processEnv = { ...process.env, GITHUB_TOKEN: '', GH_TOKEN: '', GITHUB_REPOSITORY: '' };
    const code = await runCli(allCommands, { argv, stdout, stderr, processEnv, root: cwd, reporter: new ConsoleReporter(stdout, stderr, { color: false }) });
    return { code, out, err };
  }

  it('adds with --repo and prints JSON; refusals exit 1 with the message and hint; usage errors exit 2', async () => {
    const { s, runner } = fresh(template);
    const ok = await ops(s.root, 'staging', 'add', 'feature/a', '--repo', runner.dir, '--json', '--retries', '1');
    expect(ok.code, ok.err).toBe(0);
    expect(JSON.parse(ok.out)).toMatchObject({ outcome: 'fast-forward', changed: true }); // stdout: the JSON alone
    expect(ok.err).toMatch(/added to staging by fast-forward/);
    expect(s.sha('staging')).toBe(s.sha('feature/a'));

    expect((await ops(s.root, 'staging', 'add', 'feature/b', '--repo', runner.dir)).code).toBe(0);
    const conflict = await ops(s.root, 'staging', 'add', 'feature/c', '--repo', runner.dir);
    expect(conflict.code).toBe(1);
    expect(conflict.err).toMatch(/error: feature\/c \([0-9a-f]{7}\) conflicts with staging[\s\S]*app\.txt[\s\S]*hint: /);

    expect((await ops(s.root, 'staging', 'add')).code).toBe(2);
    expect((await ops(s.root, 'staging', 'add', 'x', '--bogus')).code).toBe(2);
    expect((await ops(s.root, 'staging')).err).toMatch(/"ops staging" needs a subcommand/);
  });

  it('rebuilds the repository of the current directory by default, and says pull requests were not re-applied without a token', async () => {
    const { s, runner } = fresh(template);
    await ops(s.root, 'staging', 'add', 'feature/a', '--repo', runner.dir);
    const cwd = process.cwd();
    process.chdir(join(runner.dir));
    try {
      const r = await ops(s.root, 'staging', 'rebuild', '--no-comment');
      expect(r.code, r.err).toBe(0);
      expect(r.err).toMatch(/warning: labelled pull requests will NOT be re-applied/);
      expect(r.out).toMatch(/were \*\*not re-applied\*\*/);
    } finally {
      process.chdir(cwd);
    }
    expect(s.sha('staging')).toBe(s.sha('master'));
  });
});
