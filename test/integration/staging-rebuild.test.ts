// staging rebuild against real git (a bare repository as the remote, clones as the runner and as people
// pushing meanwhile) and GitHub's pull-request API faked at the HTTP level (the real Octokit client talks to it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { githubAccess } from '../../core/github.ts';
import { addToStaging } from '../../core/staging/add.ts';
import { rebuildStaging } from '../../core/staging/rebuild.ts';
import { runStaging } from '../../core/staging/run.ts';
import { stagingSettings } from '../../core/staging/settings.ts';
import { COMMENT_MARKER, rebuildSummary } from '../../core/staging/messages.ts';
import { MemoryReporter, mdText } from '../../core/report.ts';
import { RacingGit, Scratch, context, deadUrl, failure, line2, perTest, refusal, type FakeGitHub } from './staging.support.ts';

const SCENE_TIMEOUT = 60_000; // building a scene runs dozens of git processes

// The scene is built once (dozens of git processes); every test works on a copy of it.
const each = perTest();
const fresh = (template: Scratch) => each.scene(template);

describe('staging rebuild', () => {
  let template: Scratch;
  const sha: Record<string, string> = {};
  beforeAll(async () => {
    // Staging holds an unlabelled branch; master moved on since; feature/b, feature/c (conflicting with b),
    // feature/d and a fork's pull request are open.
    template = Scratch.create();
    const dev = template.clone('dev');
    const runner = template.clone('runner');
    template.clone('other');
    dev.feature('feature/old', { 'old.txt': 'old\n' });
    await addToStaging(context(runner.dir), 'feature/old');
    sha.b = dev.feature('feature/b', { 'app.txt': line2('b') }, 'b edits line two');
    sha.c = dev.feature('feature/c', { 'app.txt': line2('c') }, 'c edits line two');
    sha.d = dev.feature('feature/d', { 'd.txt': 'd\n' });
    sha.e = dev.feature('feature/e', { 'e.txt': 'e\n' });
    sha.fork = dev.feature('tmp-fork', { 'fork.txt': 'fork\n' });
    dev.git('push', '-q', 'origin', ':refs/heads/tmp-fork');
    template.setPullRef(6, sha.fork);
    dev.branch('master');
    sha.master = dev.commit({ 'master.txt': 'new on master\n' }, 'master moves on');
    dev.push('master');
    sha.staging = template.sha('staging')!;
  }, SCENE_TIMEOUT);
  afterAll(() => template.cleanup());

  /** The fake API with four open pull requests (three labelled, in a creation order unlike their numbers) and a closed one. */
  async function github(): Promise<FakeGitHub> {
    const api = await each.github();
    api.pulls.push(
      { number: 3, title: 'C | conflicting', created_at: '2026-01-02T00:00:00Z', head: { ref: 'feature/c', sha: sha.c!, repo: { full_name: 'acme/webapp' } }, labels: ['Staging'] },
      { number: 4, created_at: '2026-01-01T12:00:00Z', head: { ref: 'feature/d', sha: sha.d!, repo: { full_name: 'acme/webapp' } }, labels: ['enhancement'] },
      { number: 5, title: 'B first', created_at: '2026-01-01T00:00:00Z', head: { ref: 'feature/b', sha: sha.b!, repo: { full_name: 'acme/webapp' } }, labels: ['bug', 'staging'] },
      { number: 6, title: 'From a fork', created_at: '2026-01-03T00:00:00Z', head: { ref: 'master', sha: sha.fork!, repo: { full_name: 'someone/webapp' } }, labels: ['staging'] },
      { number: 8, created_at: '2025-12-01T00:00:00Z', head: { ref: 'feature/d', sha: sha.d!, repo: { full_name: 'acme/webapp' } }, labels: ['staging'], state: 'closed' },
    );
    return api;
  }
  const access = (gh: FakeGitHub, token = gh.token) => githubAccess({ token, processEnv: { GITHUB_REPOSITORY: gh.repository, GITHUB_API_URL: gh.url } });

  it('resets to master, re-applies labelled pull requests oldest first, skips and comments on the one that no longer applies', async () => {
    const { s, runner } = fresh(template);
    const gh = await github();
    const r = await rebuildStaging(context(runner.dir), { github: access(gh), label: 'staging', comment: true, runUrl: 'https://github.example/acme/webapp/actions/runs/1' });

    expect(r.added.map((a) => [a.source.display, a.outcome])).toEqual([
      ['#5 (feature/b)', 'merge'],
      ['#6 (master)', 'merge'],
    ]);
    expect(r.skipped.map((x) => [x.source.display, x.reason, x.files])).toEqual([['#3 (feature/c)', 'conflict', ['app.txt']]]);
    expect(r).toMatchObject({ before: sha.staging, main: sha.master, changed: true, dropped: ['feature/old'], pullsUnavailable: undefined, attempts: 1 });
    const staging = s.sha('staging')!;
    expect(staging).toBe(r.after);
    // master, then #5, then #6 on the first-parent line; #3 and the old branch are gone.
    expect(s.git('log', '--first-parent', '--format=%s', `${sha.master}..${staging}`).split('\n')).toEqual([
      `Merge pull request #6 (master) at ${sha.fork!.slice(0, 12)} into staging`,
      `Merge pull request #5 (feature/b) at ${sha.b!.slice(0, 12)} into staging`,
    ]);
    expect(s.files(staging)).not.toContain('old.txt');
    expect(s.show(staging, 'app.txt')).toContain('TWO (b)');
    expect(s.tracking()).toEqual({ 'refs/staging-heads/heads/feature/b': sha.b, 'refs/staging-heads/pull/6/head': sha.fork });

    // One comment on the skipped pull request, saying why, with the marker for later runs.
    expect(gh.comments.map((c) => c.issue)).toEqual([3]);
    const comment = gh.comments[0]!.body;
    expect(comment).toContain(COMMENT_MARKER);
    expect(comment).toMatch(/\*\*Not in `staging`\*\*: \[the rebuild of `staging`\]\(https:\/\/github\.example\/acme\/webapp\/actions\/runs\/1\)/);
    expect(comment).toMatch(/conflicts with staging[\s\S]*app\.txt/);
    expect(comment).toContain('They came with feature/b, added to staging before.'); // the pull request it conflicts with, named
    expect(r.comments).toEqual([{ number: 3, result: 'created' }]);
    // The real Octokit client paged through the label-filtered list (page size 2) with the token, then read each.
    expect(gh.requests.filter((q) => q.path.startsWith('/repos/acme/webapp/issues?')).length).toBe(2); // 3 of the 4 open labelled, 2 a page
    expect(gh.requests.filter((q) => q.path.startsWith('/repos/acme/webapp/pulls')).length).toBe(3); // each of the 3 read (its head)
    expect(gh.requests.every((q) => q.authorized)).toBe(true);
  });

  it('writes outputs and a job summary listing what was added, skipped and dropped; the token never shows', async () => {
    const { runner } = fresh(template);
    const gh = await github();
    const reporter = new MemoryReporter();
    await runStaging({ mode: 'rebuild', repo: runner.dir, settings: stagingSettings({ retryDelayMs: 0 }), processEnv: { GITHUB_REPOSITORY: gh.repository, GITHUB_API_URL: gh.url }, token: gh.token, reporter });
    expect(reporter.outputs).toMatchObject({ added: '#5,#6', skipped: '#3', changed: 'true', 'previous-sha': sha.staging });
    const summary = reporter.summaries.join('\n');
    expect(summary).toContain('### staging sync: rebuild staging from master');
    expect(summary).toMatch(/\| \[#5\]\(https:\/\/github\.example\/acme\/webapp\/pull\/5\) B first \| `[0-9a-f]{7}` \| merge commit \|/);
    expect(summary).toMatch(/\| \[#3\]\(.*\) C \\\| conflicting \| `[0-9a-f]{7}` \| \*\*skipped\*\* \(conflict: `app\.txt`\) \|/);
    expect(summary).toContain('No longer in staging: `feature/old`.');
    expect([...reporter.lines, summary].join('\n')).not.toContain(gh.token);
  });

  it('masks a secret in the comment it writes on a pull request, as in everything it prints', async () => {
    const { runner } = fresh(template);
    const gh = await github();
    const ctx = context(runner.dir);
    ctx.reporter.mask('app.txt');
    await rebuildStaging(ctx, { github: access(gh), label: 'staging', comment: true });
    expect(gh.comments.map((c) => c.issue)).toEqual([3]);
    expect(gh.comments[0]!.body).toMatch(/conflicts with staging[\s\S]*\*\*\*/);
    expect(gh.comments[0]!.body).not.toContain('app.txt');
  });

  it('is a no-op the second time (same merges, same shas) and updates its comment instead of adding one', async () => {
    const { s, runner } = fresh(template);
    const gh = await github();
    const first = await rebuildStaging(context(runner.dir), { github: access(gh), label: 'staging', comment: true });
    const refs = s.refs();
    const second = await rebuildStaging(context(runner.dir), { github: access(gh), label: 'staging', comment: true });
    expect(second).toMatchObject({ after: first.after, changed: false, comments: [{ number: 3, result: 'updated' }] });
    expect(s.refs()).toEqual(refs);
    expect(gh.comments).toHaveLength(1);
    expect(gh.comments[0]!.updated).toBe(1);
  });

  it.each([
    ['no token', async (gh: FakeGitHub) => access(gh, ''), /no GitHub token/],
    ['no token and no known repository', async () => githubAccess({ token: '', processEnv: {}, remoteUrl: '/srv/git/app.git' }), /repository is unknown/],
  ])('without API access (%s) still resets staging and says labelled pull requests were not re-applied', async (_, make, reason) => {
    const { s, runner } = fresh(template);
    const gh = await github();
    const ctx = context(runner.dir);
    const r = await rebuildStaging(ctx, { github: await make(gh), label: 'staging', comment: true });
    expect(r.pullsUnavailable).toMatch(reason);
    expect(r).toMatchObject({ after: sha.master, added: [], skipped: [], changed: true, dropped: ['feature/old'] });
    expect(s.sha('staging')).toBe(sha.master);
    expect(s.tracking()).toEqual({});
    expect(ctx.reporter.text()).toMatch(/warning: labelled pull requests will NOT be re-applied/);
    expect(gh.comments).toEqual([]);
  });

  it.each([
    ['a bad token', async (gh: FakeGitHub) => access(gh, 'wrong'), /HTTP 401/, /token is invalid/],
    ['no known repository: no $GITHUB_REPOSITORY, a remote that is not GitHub', async () => githubAccess({ token: 'x', processEnv: {}, remoteUrl: '/srv/git/app.git' }), /repository is unknown .*"\/srv\/git\/app\.git" is not a GitHub URL/, /^set \$GITHUB_REPOSITORY to the repository as owner\/name/],
    ['an unreachable API', async (gh: FakeGitHub) => githubAccess({ token: gh.token, processEnv: { GITHUB_REPOSITORY: gh.repository, GITHUB_API_URL: await deadUrl() } }), /cannot list the open pull requests/, /reachable/],
    [
      'an outage that outlasts the retries',
      async (gh: FakeGitHub) => githubAccess({ token: gh.token, processEnv: { GITHUB_REPOSITORY: gh.repository, GITHUB_API_URL: gh.url }, retryDelaysMs: [5, 5] }),
      /HTTP 503/,
      /outage/,
    ],
  ])('with a token, a listing of the labelled pull requests that fails (%s) leaves staging untouched and says why', async (what, make, reason, hint) => {
    const { s, runner } = fresh(template);
    const gh = await each.github(what.startsWith('an outage') ? { answer: (q) => (q.path.includes('/pulls') || q.path.includes('/issues?') ? { status: 503, body: { message: 'Service Unavailable' } } : undefined) } : {});
    const before = s.refs();
    const e = await failure(rebuildStaging(context(runner.dir), { github: await make(gh), label: 'staging', comment: true }));
    expect(e.message).toMatch(reason);
    expect(e.message).toMatch(/staging was left as it is: rebuilt now, it would lose every pull request labelled "staging"$/);
    expect(e.hint).toMatch(hint);
    expect(e.hint).toMatch(/; staging keeps them until a rebuild can list them \(to reset it to master without them on purpose, run the rebuild without a token\)$/);
    expect(s.refs()).toEqual(before);
    expect(s.sha('staging')).toBe(sha.staging);
    expect(gh.comments).toEqual([]);
  });

  it('creates staging when it does not exist', async () => {
    const { s, runner } = fresh(template);
    runner.git('push', '-q', 'origin', ':refs/heads/staging');
    const r = await rebuildStaging(context(runner.dir), { github: { unavailable: 'offline' }, label: 'staging', comment: false });
    expect(r).toMatchObject({ before: undefined, after: sha.master, changed: true });
    expect(s.sha('staging')).toBe(sha.master);
  });

  it('skips a labelled pull request whose branch is gone, and says so on it', async () => {
    const { s, runner } = fresh(template);
    const api = await each.github();
    api.pulls.push({ number: 9, created_at: '2026-01-01T00:00:00Z', head: { ref: 'feature/deleted', sha: 'a'.repeat(40), repo: { full_name: 'acme/webapp' } }, labels: ['staging'] });
    const r = await rebuildStaging(context(runner.dir), { github: access(api), label: 'staging', comment: true });
    expect(r.skipped).toMatchObject([{ reason: 'missing', source: { display: '#9 (feature/deleted)' } }]);
    expect(r.skipped[0]!.message).toMatch(/refs\/heads\/feature\/deleted does not exist on origin/);
    expect(api.comments[0]!.body).toMatch(/could not be fetched/);
    expect(s.sha('staging')).toBe(sha.master);
  });

  it('pushes nothing and comments nothing in a dry run', async () => {
    const { s, runner } = fresh(template);
    const gh = await github();
    const refs = s.refs();
    const r = await rebuildStaging(context(runner.dir, { dryRun: true }), { github: access(gh), label: 'staging', comment: true });
    expect(r).toMatchObject({ changed: true, dryRun: true });
    expect(r.added).toHaveLength(2);
    expect(s.refs()).toEqual(refs);
    expect(gh.comments).toEqual([]);
  });

  it('carries over an add that raced in between its read and its push: nothing lost', async () => {
    const { s, runner, other } = fresh(template);
    const gh = await github();
    const racing = new RacingGit(runner.dir);
    racing.beforePush = async () => {
      // Another run of staging add (say, the workflow of a pull request just labelled) lands first.
      await addToStaging(context(other.dir), 'feature/e');
    };
    const ctx = context(runner.dir, {}, racing);
    const r = await rebuildStaging(ctx, { github: access(gh), label: 'staging', comment: false });
    expect(r).toMatchObject({ attempts: 2, carried: ['feature/e'] });
    const staging = s.sha('staging')!;
    expect(staging).toBe(r.after);
    expect(s.isAncestor(sha.e!, staging) && s.isAncestor(sha.b!, staging) && s.isAncestor(sha.fork!, staging)).toBe(true);
    expect(s.files(staging)).not.toContain('old.txt');
    expect(s.tracking()['refs/staging-heads/heads/feature/e']).toBe(sha.e);
    expect(ctx.reporter.text()).toMatch(/lease on [0-9a-f]{7} refused\); carrying over what was added meanwhile: feature\/e at [0-9a-f]{7}; retrying \(attempt 2 of 4\)/);
  });

  it('never clobbers a direct push that raced in: fails, says why, and staging keeps it', async () => {
    const { s, runner, other } = fresh(template);
    const gh = await github();
    const racing = new RacingGit(runner.dir);
    let theirs = '';
    racing.beforePush = () => {
      other.branch('staging', 'staging');
      theirs = other.commit({ 'hotfix.txt': 'hot\n' }, 'hotfix pushed by hand');
      other.push('staging');
    };
    const e = await failure(rebuildStaging(context(runner.dir, {}, racing), { github: access(gh), label: 'staging', comment: true }));
    expect(e.message).toMatch(/^staging moved on origin: [0-9a-f]{7} → [0-9a-f]{7} while the rebuild ran, with commits that did not come from a staging add/);
    expect(e.message).toMatch(/nothing was lost\.\n {2}[0-9a-f]{7} hotfix pushed by hand$/);
    expect(s.sha('staging')).toBe(theirs);
    expect(gh.comments).toEqual([]);
  });

  it('names the commits only staging had (pushed to it by hand), which it drops: log, result, summary; a dry run too', async () => {
    const { s, runner, other } = fresh(template);
    const gh = await github();
    other.branch('staging', 'staging');
    const hotfix = other.commit({ 'hotfix.txt': 'hot\n' }, 'hotfix pushed by hand');
    other.push('staging');
    for (const dryRun of [true, false]) {
      const ctx = context(runner.dir, { dryRun });
      const r = await rebuildStaging(ctx, { github: access(gh), label: 'staging', comment: false });
      expect(r.lost, String(dryRun)).toEqual([`${hotfix.slice(0, 7)} hotfix pushed by hand`]);
      expect(r.dropped).toEqual(['feature/old']); // an add's commits are on its branch: not "only staging had"
      expect(ctx.reporter.text()).toMatch(new RegExp(`warning: 1 commit only staging had (is|would be) dropped \\(pushed to staging by hand, or from master before it was rewritten\\):\n {2}${hotfix.slice(0, 7)} hotfix pushed by hand`));
      const summary = rebuildSummary(r, { main: 'master', staging: 'staging', label: 'staging' });
      expect(summary).toContain(`- \`${hotfix.slice(0, 7)}\` hotfix pushed by hand`);
      expect(summary).toMatch(/put it on a branch and add it/);
    }
    expect(s.isAncestor(hotfix, s.sha('staging')!)).toBe(false);
    // Nothing of the kind: nothing said.
    const again = context(runner.dir);
    expect((await rebuildStaging(again, { github: access(gh), label: 'staging', comment: false })).lost).toEqual([]);
    expect(again.reporter.text()).not.toMatch(/only staging had/);
  });

  // GitHub's refusals of a force push to a protected staging, as its git server words them (a branch protection
  // rule: GH006; a ruleset: GH013), from a pre-receive hook on the remote that refuses what they refuse: an update of
  // staging that is not a fast-forward. Adds (fast-forward or merge) still go through.
  const refusals = {
    'branch protection': 'echo "error: GH006: Protected branch update failed for $ref." >&2; echo "error: Cannot force-push to this branch" >&2',
    ruleset: 'echo "error: GH013: Repository rule violations found for $ref." >&2; echo "- Cannot force-push to this branch" >&2',
  };
  for (const [kind, say] of Object.entries(refusals)) {
    it(`a staging protected against force pushes (${kind}): the rebuild is refused, staging as it was, saying to allow the pipeline's force pushes; adds go through`, async () => {
      const { s, runner } = fresh(template);
      const gh = await github();
      s.hook(
        'pre-receive',
        `while read -r old new ref; do
  if [ "$ref" = refs/heads/staging ] && [ "$old" != 0000000000000000000000000000000000000000 ] && [ "$new" != 0000000000000000000000000000000000000000 ] && ! git merge-base --is-ancestor "$old" "$new"; then ${say}; exit 1; fi
done`,
      );
      const added = await addToStaging(context(runner.dir), 'feature/e');
      expect(added).toMatchObject({ outcome: 'merge', changed: true });
      const before = s.refs();
      const ctx = context(runner.dir);
      const e = await failure(rebuildStaging(ctx, { github: access(gh), label: 'staging', comment: false }));
      expect(e.message).toMatch(/^origin refused the push, so staging was not changed by this run \(one atomic push: none of its refs moved\): git push/);
      expect(e.message).toMatch(/Cannot force-push to this branch/);
      expect(e.hint).toMatch(new RegExp(`^staging refuses force pushes \\(${kind === 'ruleset' ? 'a ruleset' : 'branch protection'}: .*a rebuild replaces staging .*Allow force pushes to staging for the token the pipeline pushes with`));
      expect(ctx.reporter.text()).not.toMatch(/retrying/);
      expect(s.refs()).toEqual(before);
    });
  }

  it('an add refused by the remote (a required status check) says staging was not changed, then git\'s words', async () => {
    const { s, runner } = fresh(template);
    s.hook('pre-receive', 'echo "error: GH006: Protected branch update failed for refs/heads/staging." >&2; echo "error: Required status check \\"ci\\" is expected." >&2; exit 1');
    const before = s.refs();
    const e = await failure(addToStaging(context(runner.dir), 'feature/e'));
    expect(e.message).toMatch(/^origin refused the push, so staging was not changed by this run \(one atomic push: none of its refs moved\): git push/);
    expect(e.message).toMatch(/Required status check "ci" is expected/);
    expect(e.hint).toMatch(/^staging is protected against this push/);
    expect(s.refs()).toEqual(before);
  });

  it('names a conflict resolution merged into staging by hand among what it drops, not only the branch commits it brought', async () => {
    const { s, runner, other } = fresh(template);
    const gh = await github();
    await rebuildStaging(context(runner.dir), { github: access(gh), label: 'staging', comment: false }); // #5 in, #3 conflicts
    // Someone merges #3 (feature/c) into staging by hand, resolving the conflict with #5, and pushes.
    other.branch('staging', 'staging');
    expect(() => other.git('merge', '-q', '--no-edit', 'origin/feature/c')).toThrow();
    const resolution = other.commit({ 'app.txt': line2('b and c') }, 'Merge feature/c into staging, conflict resolved by hand');
    other.push('staging');
    const ctx = context(runner.dir, { dryRun: true });
    const r = await rebuildStaging(ctx, { github: access(gh), label: 'staging', comment: false });
    expect(r.skipped.map((k) => k.source.pull?.number)).toEqual([3]);
    expect(r.lost).toEqual([`${resolution.slice(0, 7)} Merge feature/c into staging, conflict resolved by hand`, `${sha.c!.slice(0, 7)} c edits line two`]);
    expect(ctx.reporter.text()).toContain(`warning: 2 commits only staging had would be dropped (pushed to staging by hand, or from master before it was rewritten):\n  ${resolution.slice(0, 7)} Merge feature/c`);
  });

  it('says which added branches it drops, why and how to have one back; not one merged into master since (its commits are in staging)', async () => {
    const { runner, dev } = fresh(template);
    const gh = await github();
    await addToStaging(context(runner.dir), 'feature/e'); // staging: feature/old and feature/e, both added by hand
    dev.branch('master');
    dev.git('merge', '-q', '--no-ff', '-m', 'Merge pull request #9 from acme/feature/old', 'origin/feature/old');
    dev.push('master');
    const ctx = context(runner.dir, { dryRun: true });
    const r = await rebuildStaging(ctx, { github: access(gh), label: 'staging', comment: false });
    expect(r.dropped).toEqual(['feature/e']);
    expect(ctx.reporter.text()).toContain(
      'warning: feature/e would no longer be in staging: a rebuild re-applies only the open pull requests labelled "staging" (added by hand, or a pull request closed or unlabelled since); to have one back, label its pull request or add it again (ops staging add <ref>)',
    );
    expect(rebuildSummary(r, { main: 'master', staging: 'staging', label: 'staging' })).toContain('No longer in staging: `feature/e`. A rebuild re-applies only the open pull requests labelled `staging`');
  });

  it("lets a later add see the rebuild's records: a pull request rewritten since is refused", async () => {
    const { runner, dev } = fresh(template);
    const gh = await github();
    await rebuildStaging(context(runner.dir), { github: access(gh), label: 'staging', comment: false });
    dev.branch('feature/b', 'master');
    dev.commit({ 'b.txt': 'b rebased\n' }, 'b redone on master');
    dev.push('feature/b', { force: true });
    const e = await refusal(addToStaging(context(runner.dir), 'feature/b'));
    expect(e.reason).toBe('rewritten');
    expect(e.message).toMatch(/b edits line two/);
  });
  // A label approves the commits it saw. Between a push to a labelled pull request and the unlabel job (or when
  // that job failed, was cancelled, or never ran), the pull request is still listed as labelled with a head nobody
  // approved: the rebuild re-applies the commit staging took for it, read from staging before the reset.
  it('re-applies a labelled pull request at the commit staging took, not at a head pushed since (label still on)', async () => {
    const { s, runner, dev } = fresh(template);
    const gh = await github();
    await addToStaging(context(runner.dir), 'feature/b', undefined, { at: sha.b });
    dev.branch('feature/b', 'feature/b');
    const unreviewed = dev.commit({ 'unreviewed.txt': 'nobody read this\n' }, 'pushed after the label');
    dev.push('feature/b');
    gh.pulls.find((p) => p.number === 5)!.head.sha = unreviewed; // the API lists it, label still on

    for (const run of [1, 2]) {
      const ctx = context(runner.dir);
      const r = await rebuildStaging(ctx, { github: access(gh), label: 'staging', comment: false });
      const b = r.added.find((a) => a.source.pull?.number === 5)!;
      expect(b.source.sha, `run ${run}`).toBe(sha.b);
      expect(b.moved).toEqual({ head: unreviewed, newer: [`${unreviewed.slice(0, 7)} pushed after the label`], rewritten: false });
      const staging = s.sha('staging')!;
      expect(s.isAncestor(sha.b!, staging)).toBe(true);
      expect(s.isAncestor(unreviewed, staging)).toBe(false);
      expect(s.files(staging)).not.toContain('unreviewed.txt');
      // The record survives the reset: the next rebuild (run 2) still knows which commit was approved.
      expect(s.tracking()['refs/staging-heads/heads/feature/b']).toBe(sha.b);
      const said = `#5 (feature/b) is at ${unreviewed.slice(0, 7)} now, not at the commit staging took (its approved head) ${sha.b!.slice(0, 7)}, which is what staging takes; 1 newer commit not added, waiting for a new label: ${unreviewed.slice(0, 7)} pushed after the label`;
      expect(ctx.reporter.text()).toContain(`warning: ${said}`);
      expect(rebuildSummary(r, { main: 'master', staging: 'staging', label: 'staging' })).toContain(`> **Note**: ${mdText(said)}`);
    }
    // Read and labelled again: the label's add takes the new head, and so does every rebuild after it.
    await addToStaging(context(runner.dir), 'feature/b', undefined, { at: unreviewed });
    const r = await rebuildStaging(context(runner.dir), { github: access(gh), label: 'staging', comment: false });
    expect(r.added.find((a) => a.source.pull?.number === 5)).toMatchObject({ source: { sha: unreviewed } });
    expect(r.added.find((a) => a.source.pull?.number === 5)!.moved).toBeUndefined();
    expect(s.isAncestor(unreviewed, s.sha('staging')!)).toBe(true);
  });

  it('finds the commit staging took of a pull request of this repository added by hand as pull/N (recorded under refs/pull/N/head)', async () => {
    const { s, runner, dev } = fresh(template);
    const gh = await github();
    s.setPullRef(5, sha.b!);
    await addToStaging(context(runner.dir), 'pull/5');
    expect(s.tracking()['refs/staging-heads/pull/5/head']).toBe(sha.b);
    dev.branch('feature/b', 'feature/b');
    const unreviewed = dev.commit({ 'unreviewed.txt': 'nobody read this\n' }, 'pushed after the add');
    dev.push('feature/b');
    const r = await rebuildStaging(context(runner.dir), { github: access(gh), label: 'staging', comment: false });
    expect(r.added.find((a) => a.source.pull?.number === 5)).toMatchObject({ source: { sha: sha.b, key: 'refs/heads/feature/b' }, moved: { head: unreviewed } });
    expect(s.isAncestor(unreviewed, s.sha('staging')!)).toBe(false);
    expect(s.tracking()['refs/staging-heads/heads/feature/b']).toBe(sha.b);
  });

  it('a labelled pull request rewritten (force-pushed) since staging took it: its current head, said (the add of a rewritten head is refused and tells to rebuild); one whose branch is gone: the commit staging took', async () => {
    const { s, runner, dev } = fresh(template);
    const gh = await github();
    await addToStaging(context(runner.dir), 'feature/b', undefined, { at: sha.b });
    await addToStaging(context(runner.dir), 'feature/d');
    gh.pulls.find((p) => p.number === 4)!.labels.push('staging');
    dev.branch('feature/b', 'master');
    const rewritten = dev.commit({ 'b.txt': 'b redone\n' }, 'b redone');
    dev.push('feature/b', { force: true });
    dev.git('push', '-q', 'origin', ':refs/heads/feature/d');

    const ctx = context(runner.dir);
    const r = await rebuildStaging(ctx, { github: access(gh), label: 'staging', comment: false });
    expect(r.added.find((a) => a.source.pull?.number === 5)).toMatchObject({ source: { sha: rewritten } });
    expect(r.added.find((a) => a.source.pull?.number === 4)).toMatchObject({ source: { sha: sha.d, key: 'refs/heads/feature/d' } });
    const staging = s.sha('staging')!;
    expect(s.isAncestor(rewritten, staging) && s.isAncestor(sha.d!, staging)).toBe(true);
    expect(s.isAncestor(sha.b!, staging)).toBe(false);
    expect(ctx.reporter.text()).toMatch(new RegExp(`#5 \\(feature/b\\) was rewritten since staging took ${sha.b!.slice(0, 7)}: applying its current head, ${rewritten.slice(0, 7)} \\(labelled\\)`));
    expect(ctx.reporter.text()).toMatch(/#4 \(feature\/d\): its branch could not be read .*; re-applying the commit staging took/);
  });

  it('skips a labelled pull request whose approved commit no longer merges, at that commit, never at its newer head', async () => {
    const { s, runner, dev } = fresh(template);
    const gh = await github();
    await addToStaging(context(runner.dir), 'feature/b', undefined, { at: sha.b });
    // master now conflicts with the approved commit; the branch has an unread fix on top.
    dev.branch('master');
    dev.commit({ 'app.txt': line2('master') }, 'master edits line two');
    dev.push('master');
    dev.branch('feature/b', 'feature/b');
    dev.git('merge', '-q', '-X', 'theirs', 'origin/master', '-m', 'merge master (unread)');
    dev.push('feature/b');
    const unreviewed = dev.git('rev-parse', 'HEAD');
    const r = await rebuildStaging(context(runner.dir), { github: access(gh), label: 'staging', comment: true });
    expect(r.skipped.find((x) => x.source.pull?.number === 5)).toMatchObject({ reason: 'conflict', source: { sha: sha.b }, moved: { head: unreviewed } });
    expect(s.isAncestor(unreviewed, s.sha('staging')!)).toBe(false);
    expect(gh.comments.find((c) => c.issue === 5)!.body).toContain(`could not re-apply this pull request at \`${sha.b!.slice(0, 7)}\``);
  });
});
