// Staging converges: GitHub keeps one pending run per concurrency group and cancels the older one, so when two
// pull requests are labelled one after the other while a staging run is busy, the first add never runs. Every
// add therefore also brings in the open labelled pull requests staging lacks. Real git (a bare remote, clones),
// GitHub's API faked at the HTTP level (the real Octokit client talks to it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryReporter, mdText } from '../../core/report.ts';
import { runStaging } from '../../core/staging/run.ts';
import { stagingSettings } from '../../core/staging/settings.ts';
import { StagingRefusal, type AddResult } from '../../core/staging/messages.ts';
import { Scratch, line2, perTest, type FakeGitHub, type FakePull } from './staging.support.ts';

let template: Scratch;
const sha: Record<string, string> = {};
const each = perTest();
const scene = () => each.scene(template);

beforeAll(() => {
  template = Scratch.create();
  const dev = template.clone('dev');
  template.clone('runner');
  template.clone('other');
  sha.one = dev.feature('feature/one', { 'one.txt': 'one\n' }, 'first pull request');
  sha.two = dev.feature('feature/two', { 'two.txt': 'two\n' }, 'second pull request');
  sha.b = dev.feature('feature/b', { 'app.txt': line2('b') }, 'b edits line two');
  sha.c = dev.feature('feature/c', { 'app.txt': line2('c') }, 'c edits line two');
  sha.master = template.sha('master')!;
}, 60_000);
afterAll(() => template.cleanup());

const pr = (number: number, branch: string, head: string, created: string, labels = ['staging']): FakePull => ({
  number,
  title: `PR ${number}`,
  created_at: created,
  head: { ref: branch, sha: head, repo: { full_name: 'acme/webapp' } },
  labels,
});

/** The run the labelled event starts for pull request `number` (what the workflow's add step does). */
function addRun(dir: string, gh: FakeGitHub | undefined, number: number, branch: string, reporter = new MemoryReporter(), at?: string) {
  return runStaging({
    mode: 'add',
    ref: `refs/heads/${branch}`,
    at,
    pull: { number, title: `PR ${number}`, url: `https://github.example/acme/webapp/pull/${number}`, branch },
    repo: dir,
    settings: stagingSettings({ retryDelayMs: 0 }),
    label: 'staging',
    token: gh?.token,
    processEnv: gh ? { GITHUB_REPOSITORY: gh.repository, GITHUB_API_URL: gh.url } : {},
    reporter,
  });
}

describe('staging converges', () => {
  it('two pull requests labelled one after the other, the first run never executed: the second run adds both', async () => {
    const { s, runner } = scene();
    const api = await each.github();
    // #1 labelled first (its run queued, then cancelled by GitHub when #2's run queued), #2 labelled a minute later
    api.pulls.push(pr(1, 'feature/one', sha.one!, '2026-03-01T10:00:00Z'), pr(2, 'feature/two', sha.two!, '2026-03-01T10:01:00Z'), pr(3, 'feature/unlabelled', sha.b!, '2026-03-01T09:00:00Z', []));
    const reporter = new MemoryReporter();
    const r = await addRun(runner.dir, api, 2, 'feature/two', reporter);

    const staging = s.sha('staging')!;
    expect(s.isAncestor(sha.one!, staging)).toBe(true);
    expect(s.isAncestor(sha.two!, staging)).toBe(true);
    expect(s.isAncestor(sha.b!, staging)).toBe(false); // not labelled
    expect(s.tracking()).toEqual({ 'refs/staging-heads/heads/feature/one': sha.one, 'refs/staging-heads/heads/feature/two': sha.two });
    expect(r).toMatchObject({ changed: true, before: sha.master, sha: staging });
    expect(reporter.outputs).toMatchObject({ sha: staging, changed: 'true', added: '#2,#1', skipped: '' });
    expect(reporter.summaries.join('\n')).toContain("that staging lacked (a cancelled run's work)");
    // the API was asked, with the token, for the labelled pull requests
    expect(api.requests.some((q) => q.path.startsWith('/repos/acme/webapp/pulls') && q.authorized)).toBe(true);

    // The cancelled run, were it re-run now, changes nothing: staging already holds it.
    const again = await addRun(runner.dir, api, 1, 'feature/one');
    expect(again.changed).toBe(false);
    expect(s.sha('staging')).toBe(staging);
  });

  it('a labelled pull request that no longer applies is skipped and listed; the run still succeeds', async () => {
    const { s, runner } = scene();
    const api = await each.github();
    api.pulls.push(pr(5, 'feature/b', sha.b!, '2026-03-01T10:00:00Z'), pr(6, 'feature/c', sha.c!, '2026-03-01T10:01:00Z'), pr(7, 'feature/one', sha.one!, '2026-03-01T10:02:00Z'));
    const reporter = new MemoryReporter();
    const r = await addRun(runner.dir, api, 7, 'feature/one', reporter);
    const staging = s.sha('staging')!;
    expect(s.isAncestor(sha.one!, staging) && s.isAncestor(sha.b!, staging)).toBe(true);
    expect(s.isAncestor(sha.c!, staging)).toBe(false);
    expect(r.skipped.map((x) => [x.source.display, x.reason])).toEqual([['#6 (feature/c)', 'conflict']]);
    expect(reporter.outputs).toMatchObject({ added: '#7,#5', skipped: '#6' });
    expect(reporter.summaries.join('\n')).toMatch(/\| \[#6\]\(.*\) PR 6 \| `[0-9a-f]{7}` \| \*\*skipped\*\* \(conflict\) \|/);
  });

  it('when the pull request of the run itself does not apply, the other labelled ones still go in, and the run fails saying so', async () => {
    const { s, runner } = scene();
    const api = await each.github();
    api.pulls.push(pr(5, 'feature/b', sha.b!, '2026-03-01T10:00:00Z'), pr(8, 'feature/two', sha.two!, '2026-03-01T10:01:00Z'), pr(6, 'feature/c', sha.c!, '2026-03-01T10:02:00Z'));
    // staging already holds #5 (b); #6 (c) conflicts with it; #8 was labelled meanwhile, its run cancelled
    await addRun(runner.dir, undefined, 5, 'feature/b');
    const reporter = new MemoryReporter();
    const e = await addRun(runner.dir, api, 6, 'feature/c', reporter).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(StagingRefusal);
    expect((e as Error).message).toMatch(/conflicts with staging[\s\S]*still added, as labelled pull requests missing from staging: #8 \(feature\/two\)/);
    const staging = s.sha('staging')!;
    // Staging moved: said in the outputs (the workflow deploys it though the step fails), #6 itself not among `added`.
    expect(reporter.outputs).toMatchObject({ sha: staging, changed: 'true', added: '#8' });
    expect(s.isAncestor(sha.two!, staging) && s.isAncestor(sha.b!, staging)).toBe(true);
    expect(s.isAncestor(sha.c!, staging)).toBe(false);
  });

  it('the labelled commit, not commits pushed before the run started (still listed as labelled until unlabel runs)', async () => {
    const { s, dev, runner } = scene();
    const api = await each.github();
    // #2 labelled at sha.two (the event's head sha); while its run waits for deploy-staging, a new commit is pushed.
    dev.git('checkout', '-q', 'feature/two');
    const unreviewed = dev.commit({ 'two.txt': 'two, unreviewed\n' }, 'unreviewed change');
    dev.push('feature/two');
    // The API lists it with its new head (the label not yet taken off), beside #1, labelled too.
    api.pulls.push(pr(1, 'feature/one', sha.one!, '2026-03-01T10:00:00Z'), pr(2, 'feature/two', unreviewed, '2026-03-01T10:01:00Z'));
    const reporter = new MemoryReporter();
    const r = (await addRun(runner.dir, api, 2, 'feature/two', reporter, sha.two)) as AddResult;

    const staging = s.sha('staging')!;
    expect(s.isAncestor(sha.two!, staging) && s.isAncestor(sha.one!, staging)).toBe(true);
    expect(s.isAncestor(unreviewed, staging)).toBe(false);
    // Recorded as what it took, under the branch (a later add of the branch sees new commits, not a rewrite).
    expect(s.tracking()).toEqual({ 'refs/staging-heads/heads/feature/one': sha.one, 'refs/staging-heads/heads/feature/two': sha.two });
    expect(r).toMatchObject({ source: { sha: sha.two, key: 'refs/heads/feature/two' }, moved: { head: unreviewed, rewritten: false } });
    expect(r.moved!.newer).toEqual([`${unreviewed.slice(0, 7)} unreviewed change`]);
    expect(reporter.outputs).toMatchObject({ added: '#2,#1', skipped: '' });
    const said = `#2 (feature/two) is at ${unreviewed.slice(0, 7)} now, not at the labelled commit ${sha.two!.slice(0, 7)}, which is what staging takes; 1 newer commit not added, waiting for a new label: ${unreviewed.slice(0, 7)} unreviewed change`;
    expect(reporter.lines.join('\n')).toContain(said);
    expect(reporter.summaries.join('\n')).toContain(`> **Note**: ${mdText(said)}`);

    // Labelled again after reading it: the new commits come in on top, no rewrite.
    const again = (await addRun(runner.dir, undefined, 2, 'feature/two', new MemoryReporter(), unreviewed)) as AddResult;
    expect(again.moved).toBeUndefined();
    expect(s.isAncestor(unreviewed, s.sha('staging')!)).toBe(true);
    expect(s.tracking()['refs/staging-heads/heads/feature/two']).toBe(unreviewed);
  });

  it('another labelled pull request staging holds stays at the commit staging took: its head pushed since is not brought in', async () => {
    const { s, dev, runner } = scene();
    const api = await each.github();
    await addRun(runner.dir, undefined, 1, 'feature/one', new MemoryReporter(), sha.one);
    // New commits on #1; before the unlabel job takes its label off, #2 is labelled and its run converges.
    dev.git('checkout', '-q', 'feature/one');
    const unreviewed = dev.commit({ 'one.txt': 'one, unreviewed\n' }, 'unreviewed change on one');
    dev.push('feature/one');
    api.pulls.push(pr(1, 'feature/one', unreviewed, '2026-03-01T10:00:00Z'), pr(2, 'feature/two', sha.two!, '2026-03-01T10:01:00Z'));
    const reporter = new MemoryReporter();
    const r = (await addRun(runner.dir, api, 2, 'feature/two', reporter, sha.two)) as AddResult;
    expect(r.alsoAdded).toEqual([]);
    const staging = s.sha('staging')!;
    expect(s.isAncestor(sha.two!, staging) && s.isAncestor(sha.one!, staging)).toBe(true);
    expect(s.isAncestor(unreviewed, staging)).toBe(false);
    expect(s.tracking()['refs/staging-heads/heads/feature/one']).toBe(sha.one);
    expect(reporter.lines.join('\n')).toContain(`#1 (feature/one): staging holds it at ${sha.one!.slice(0, 7)}, the commit it took; its head ${unreviewed.slice(0, 7)} is not added`);
  });

  it('the labelled commit when the branch was rewritten since: fetched by sha and added; missing: refused, staging untouched', async () => {
    const { s, dev, runner } = scene();
    dev.branch('feature/two', 'master');
    const rewritten = dev.commit({ 'two.txt': 'two, rewritten\n' }, 'rewritten');
    dev.push('feature/two', { force: true });
    const reporter = new MemoryReporter();
    const r = (await addRun(runner.dir, undefined, 2, 'feature/two', reporter, sha.two)) as AddResult;
    expect(s.sha('staging')).toBe(sha.two);
    expect(r.moved).toEqual({ head: rewritten, newer: [], rewritten: true });
    expect(reporter.lines.join('\n')).toMatch(/the branch was rewritten since \(the labelled commit is no longer in it\): its new commits wait for a new label/);

    const before = s.refs();
    const e = await addRun(runner.dir, undefined, 1, 'feature/one', new MemoryReporter(), 'f'.repeat(40)).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(StagingRefusal);
    expect((e as Error).message).toMatch(/#1 \(feature\/one\): the commit to add, f{40}, is not on origin \(#1 \(feature\/one\) is at [0-9a-f]{7} now\); staging was not changed/);
    expect(s.refs()).toEqual(before);
  });

  it('without API access the add still happens, and says the other labelled pull requests were not checked', async () => {
    const { s, runner } = scene();
    const reporter = new MemoryReporter();
    await addRun(runner.dir, undefined, 2, 'feature/two', reporter);
    expect(s.sha('staging')).toBe(sha.two);
    expect(reporter.lines.join('\n')).toMatch(/other pull requests labelled "staging" were not checked/);
    expect(reporter.summaries.join('\n')).toContain('were **not checked**');
  });
});
