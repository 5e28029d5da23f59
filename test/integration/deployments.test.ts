// A forward-only deploy skipped (a newer commit already live) must not show on GitHub as a deployment of the
// skipped commit. GitHub's deployments API faked at the HTTP level (the real Octokit client talks to it), with
// what GitHub Actions does to a job's deployment: in_progress at the start, success at the end (auto_inactive).
import { describe, expect, it } from 'vitest';
import { markSuperseded, supersededDescription } from '../../core/deployments.ts';
import { MemoryReporter } from '../../core/report.ts';
import { failure, perTest, type FakeGitHub } from './staging.support.ts';

const each = perTest();
const NEW = 'b'.repeat(40); // live
const OLD = 'a'.repeat(40); // the older push, skipped
const jobUrl = (run: number) => `https://github.example/acme/webapp/actions/runs/${run}/job/7`;

/** prod: NEW deployed by run 200 (success); OLD's run 201 started (in_progress) and, unless `running`, ended in success. */
async function scene(options: { running?: boolean; answer?: NonNullable<Parameters<typeof each.github>[0]>['answer'] } = {}): Promise<FakeGitHub> {
  const gh = await each.github({ answer: options.answer });
  gh.deployments.push({ id: 1, sha: NEW, environment: 'prod', created_at: '2026-04-01T00:00:00Z', statuses: [] });
  gh.deploymentStatus(1, 'in_progress', { log_url: jobUrl(200) });
  gh.deploymentStatus(1, 'success', { log_url: jobUrl(200), environment_url: 'https://app.example.com' });
  gh.deployments.push({ id: 2, sha: OLD, environment: 'prod', created_at: '2026-04-01T00:05:00Z', statuses: [] });
  gh.deploymentStatus(2, 'in_progress', { log_url: jobUrl(201) });
  if (!options.running) gh.deploymentStatus(2, 'success', { log_url: jobUrl(201), environment_url: 'https://app.example.com' });
  return gh;
}

const options = (gh: FakeGitHub, extra: Partial<Parameters<typeof markSuperseded>[0]> = {}) => ({
  token: gh.token,
  repository: gh.repository,
  apiUrl: gh.url,
  environment: 'prod',
  sha: OLD,
  runId: '201',
  logUrl: 'https://github.example/acme/webapp/actions/runs/201',
  pollMs: 20,
  ...extra,
});
const last = (gh: FakeGitHub, id: number) => gh.deployments.find((d) => d.id === id)!.statuses.at(-1)!;

describe('a forward-only deploy that was skipped, on GitHub', () => {
  it('the scene is the lie: the skipped commit shows as deployed, the live one inactive', async () => {
    const gh = await scene();
    expect(last(gh, 2).state).toBe('success');
    expect(last(gh, 1).state).toBe('inactive');
  });

  it('marks the skipped deployment inactive, saying a newer commit was live, and gives the live one its success back', async () => {
    const gh = await scene();
    const reporter = new MemoryReporter();
    const r = await markSuperseded(options(gh), reporter);
    expect(r).toEqual({ deployment: 2, marked: 'inactive', restored: [1] });
    expect(last(gh, 2)).toMatchObject({ state: 'inactive', description: supersededDescription(OLD), log_url: 'https://github.example/acme/webapp/actions/runs/201' });
    expect(supersededDescription(OLD)).toMatch(/^Not deployed: a newer commit was already live/);
    expect(supersededDescription(OLD).length).toBeLessThanOrEqual(140);
    expect(last(gh, 1)).toMatchObject({ state: 'success', environment_url: 'https://app.example.com', log_url: jobUrl(200) });
    expect(reporter.text()).toMatch(/deployment 2 of a{12} in prod: success → inactive/);
    // Our statuses never inactivate anything else (auto_inactive: false): deployment 2 stays inactive.
    expect(last(gh, 2).state).toBe('inactive');
    expect(gh.requests.every((q) => q.authorized)).toBe(true);
    // Pages as GitHub links them (2 a page here): deployment 1's three statuses in two requests, none for an empty page.
    expect(gh.requests.filter((q) => q.method === 'GET' && q.path.startsWith('/repos/acme/webapp/deployments/1/statuses'))).toHaveLength(2);

    // Idempotent: nothing more written the second time.
    const before = gh.deployments.map((d) => d.statuses.length);
    expect(await markSuperseded(options(gh), new MemoryReporter())).toEqual({ deployment: 2, marked: 'already inactive', restored: [] });
    expect(gh.deployments.map((d) => d.statuses.length)).toEqual(before);
  });

  it("picks the run's own deployment of the commit (another run deployed it before), and waits for the job's own final status", async () => {
    const gh = await scene({ running: true });
    gh.deployments.push({ id: 3, sha: OLD, environment: 'prod', created_at: '2026-04-01T00:06:00Z', statuses: [] });
    gh.deploymentStatus(3, 'failure', { log_url: jobUrl(202) });
    setTimeout(() => gh.deploymentStatus(2, 'success', { log_url: jobUrl(201) }), 150);
    const r = await markSuperseded(options(gh), new MemoryReporter());
    expect(r).toEqual({ deployment: 2, marked: 'inactive', restored: [1] });
    expect(last(gh, 3).state).toBe('failure');
    expect(last(gh, 1).state).toBe('success');
  });

  it('a re-run (same run id, attempt 2): marks the new attempt\'s deployment, and gives the live one its success back again', async () => {
    const gh = await scene();
    await markSuperseded(options(gh), new MemoryReporter());
    // Attempt 2 of run 201: Actions makes a new deployment of the commit, whose success inactivates the restored one.
    gh.deployments.push({ id: 3, sha: OLD, environment: 'prod', created_at: '2026-04-01T00:20:00Z', statuses: [] });
    gh.deploymentStatus(3, 'in_progress', { log_url: `${jobUrl(201)}9` });
    gh.deploymentStatus(3, 'success', { log_url: `${jobUrl(201)}9`, environment_url: 'https://app.example.com' });
    expect(last(gh, 1).state).toBe('inactive');
    const r = await markSuperseded(options(gh, { logUrl: 'https://github.example/acme/webapp/actions/runs/201/attempts/2' }), new MemoryReporter());
    expect(r).toEqual({ deployment: 3, marked: 'inactive', restored: [1] });
    expect(last(gh, 3)).toMatchObject({ state: 'inactive', log_url: 'https://github.example/acme/webapp/actions/runs/201/attempts/2' });
    expect(last(gh, 1).state).toBe('success');
    expect(last(gh, 2).state).toBe('inactive');
  });

  it('takes the newest deployment of the commit, and says so, when none links to the run', async () => {
    const gh = await scene();
    const reporter = new MemoryReporter();
    expect(await markSuperseded(options(gh, { runId: '999' }), reporter)).toEqual({ deployment: 2, marked: 'inactive', restored: [1] });
    expect(reporter.text()).toMatch(/no deployment of a{12} in prod links to run 999: taking the newest one, 2/);
  });

  it('fails, marking nothing, when the job never finishes in time; leaves a failed run as it is', async () => {
    const gh = await scene({ running: true });
    await expect(markSuperseded(options(gh, { waitMs: 100 }), new MemoryReporter())).rejects.toThrow(/deployment 2 .* is still in_progress after 0 s: not marked/);
    expect(last(gh, 2).state).toBe('in_progress');
    gh.deploymentStatus(2, 'failure', { log_url: jobUrl(201) });
    expect(await markSuperseded(options(gh), new MemoryReporter())).toMatchObject({ marked: 'left (the run failed)', restored: [] });
    expect(last(gh, 2).state).toBe('failure');
  });

  it('does not bring an older deployment back when a newer deploy succeeded since', async () => {
    const gh = await scene();
    gh.deployments.push({ id: 4, sha: 'c'.repeat(40), environment: 'prod', created_at: '2026-04-01T00:10:00Z', statuses: [] });
    gh.deploymentStatus(4, 'success', { log_url: jobUrl(203) }); // inactivates 2
    const r = await markSuperseded(options(gh), new MemoryReporter());
    expect(r).toEqual({ deployment: 2, marked: 'already inactive', restored: [] });
    expect(last(gh, 1).state).toBe('inactive');
    expect(last(gh, 4).state).toBe('success');
  });

  it('says what the token lacks when GitHub refuses, and when no deployment of the run exists', async () => {
    const gh = await each.github({ answer: (q) => (q.method === 'GET' && q.path.includes('/deployments') ? { status: 403, body: { message: 'Resource not accessible by integration' } } : undefined) });
    await expect(markSuperseded(options(gh), new MemoryReporter())).rejects.toThrow(/HTTP 403/);
    await expect(markSuperseded(options(gh), new MemoryReporter())).rejects.toMatchObject({ hint: expect.stringMatching(/deployments: write/) });
    await gh.close();
    const empty = await each.github();
    await expect(markSuperseded(options(empty), new MemoryReporter())).rejects.toThrow(/no deployment of a{12} in the GitHub environment prod: nothing to correct/);
  });

  it.each(['(', '201|.*', '201/../200', ' 201'])('a $GITHUB_RUN_ID that is no run number (%j): refused in one line before any request, nothing marked', async (runId) => {
    const gh = await scene();
    const before = JSON.stringify(gh.deployments);
    const e = await failure(markSuperseded(options(gh, { runId }), new MemoryReporter()));
    expect(e.message).toBe(`invalid $GITHUB_RUN_ID ${JSON.stringify(runId)}: expected the workflow run's number`);
    expect(e.hint).toMatch(/the runner sets it/);
    expect(gh.requests).toEqual([]);
    expect(JSON.stringify(gh.deployments)).toBe(before);
  });

  it('a $GITHUB_REPOSITORY that is no owner/name: refused in one line before any request', async () => {
    const gh = await scene();
    const e = await failure(markSuperseded(options(gh, { repository: 'acme/webapp/../other' }), new MemoryReporter()));
    expect(e.message).toBe('invalid $GITHUB_REPOSITORY "acme/webapp/../other": expected owner/name');
    expect(gh.requests).toEqual([]);
  });

  it('a $GITHUB_API_URL that is no http(s) URL: refused in one line naming it, not an internal error', async () => {
    const e = await failure(markSuperseded(options(await scene(), { apiUrl: 'ghe.example.com/api/v3' }), new MemoryReporter()));
    expect(e.message).toBe('invalid $GITHUB_API_URL "ghe.example.com/api/v3": it is not a URL');
  });

  it('rate limited or slow on the deployments API: says so and when to retry, not that the token lacks deployments: write', async () => {
    const limited = await each.github({ answer: (q) => (q.path.includes('/deployments') ? { status: 403, headers: { 'retry-after': '300' }, body: { message: 'You have exceeded a secondary rate limit.' } } : undefined) });
    const e = await failure(markSuperseded(options(limited), new MemoryReporter()));
    expect(e).toMatchObject({ message: expect.stringMatching(/^GitHub API: cannot list the deployments of a{12} in prod: secondary rate limit reached .*retry after 300 s$/), hint: expect.stringMatching(/^wait 300 s/) });
    expect(e.hint).not.toMatch(/deployments: write/);
    const slow = await each.github({ hang: (q) => q.path.includes('/deployments') });
    const t = await failure(markSuperseded(options(slow, { timeoutMs: 200 }), new MemoryReporter()));
    expect(t.message).toMatch(/^GitHub API: cannot list the deployments of a{12} in prod: no answer within 0.2 s$/);
  });

  it('GitHub answering but refusing the status (422), or down (503): says what GitHub answered, not to check that the API is reachable', async () => {
    const refusing = await scene({ answer: (q) => (q.method === 'POST' && q.path.includes('/statuses') ? { status: 422, body: { message: 'Validation Failed' } } : undefined) });
    const e = await failure(markSuperseded(options(refusing), new MemoryReporter()));
    expect(e.message).toMatch(/^GitHub API: cannot mark deployment 2 inactive: HTTP 422 Validation Failed/);
    expect(e.hint).not.toMatch(/reachable/);
    const down = await each.github({ answer: (q) => (q.path.includes('/deployments') ? { status: 503, body: { message: 'Service Unavailable' } } : undefined) });
    const d = await failure(markSuperseded(options(down, { retryDelaysMs: [1] }), new MemoryReporter()));
    expect(d.message).toMatch(/HTTP 503 Service Unavailable/);
    expect(d.hint).toMatch(/^GitHub answered with an error of its own/);
  });
});
