// The GitHub API client (core/github.ts) against a fake API over HTTP that stops answering: every request has
// a deadline, the pages after the first of a paginated listing too, and the caller gets one clear error in
// about that time, not a run that hangs until the job's own timeout.
import { afterEach, describe, expect, it } from 'vitest';
import { OpsError } from '../../core/errors.ts';
import { githubAccess } from '../../core/github.ts';
import { deadUrl, startFakeGitHub, type CannedAnswer, type FakeGitHub } from './staging.support.ts';

const fakes: FakeGitHub[] = [];
/** A request of the labelled pull-request listing: the issues listing (label-filtered), the pulls listing, a pull request read. */
const listing = (path: string) => /\/(pulls|issues)(\?|\/\d+$)/.test(path);
afterEach(async () => {
  for (const f of fakes.splice(0)) await f.close();
});

async function api(hang: (r: { method: string; path: string }) => boolean) {
  const gh = await startFakeGitHub({ pageSize: 1, hang });
  fakes.push(gh);
  for (let i = 1; i <= 3; i++) gh.pulls.push({ number: i, created_at: `2026-01-0${i}T00:00:00Z`, head: { ref: `f${i}`, sha: 'a'.repeat(40), repo: { full_name: gh.repository } }, labels: ['staging'] });
  gh.comments.push({ id: 1, issue: 1, body: 'first', updated: 0 }, { id: 2, issue: 1, body: '<!-- m -->\nours', updated: 0 });
  const access = githubAccess({ token: gh.token, processEnv: { GITHUB_REPOSITORY: gh.repository, GITHUB_API_URL: gh.url }, timeoutMs: 400 });
  return { gh, api: access.api! };
}

/** Rejects with the error, and how long it took (ms). */
async function timed(p: Promise<unknown>): Promise<{ error: Error; ms: number }> {
  const started = Date.now();
  const error = await p.then(
    () => new Error('resolved'),
    (e: Error) => e,
  );
  return { error, ms: Date.now() - started };
}

describe('a GitHub API that stops answering', () => {
  it('answering normally: three pages of pull requests, the comment found on the second page and updated', async () => {
    const { gh, api: a } = await api(() => false);
    expect((await a.labelledPulls('staging')).map((p) => p.number)).toEqual([1, 2, 3]);
    expect(await a.comment(1, 'again <!-- m -->', '<!-- m -->')).toBe('updated');
    expect(gh.comments.find((c) => c.id === 2)!.body).toBe('again <!-- m -->');
    // three pages of the label-filtered issues listing (one a page here), each pull request then read
    expect(gh.requests.filter((r) => listing(r.path)).map((r) => r.path.replace(/\?.*/, (q) => `?page=${/[?&]page=(\d+)/.exec(q)?.[1] ?? 1}`))).toEqual([
      '/repos/acme/webapp/issues?page=1',
      '/repos/acme/webapp/pulls/1',
      '/repos/acme/webapp/issues?page=2',
      '/repos/acme/webapp/pulls/2',
      '/repos/acme/webapp/issues?page=3',
      '/repos/acme/webapp/pulls/3',
    ]);
  });

  it("a comment someone else wrote with our marker in it (anyone can): never taken for ours, never overwritten", async () => {
    const { gh, api: a } = await api(() => false);
    gh.comments.unshift({ id: 5, issue: 2, body: '<!-- m -->\nplanted', updated: 0, user: { login: 'mallory', type: 'User' }, association: 'NONE' });
    expect(await a.comment(2, 'x', '<!-- m -->')).toBe('created');
    expect(gh.comments.find((c) => c.id === 5)).toMatchObject({ body: '<!-- m -->\nplanted', updated: 0 });
    // A maintainer's (a person's token) is taken, as a bot's is.
    gh.comments.unshift({ id: 6, issue: 3, body: '<!-- m -->\nby a person', updated: 0, user: { login: 'maintainer', type: 'User' }, association: 'MEMBER' });
    expect(await a.comment(3, 'y', '<!-- m -->')).toBe('updated');
    expect(gh.comments.find((c) => c.id === 6)!.updated).toBe(1);
  });

  for (const [what, hang, call] of [
    ['the first page of pull requests', (r: { path: string }) => listing(r.path), (a: Awaited<ReturnType<typeof api>>['api']) => a.labelledPulls('staging')],
    ['a later page of pull requests', (r: { path: string }) => listing(r.path) && r.path.includes('page=3'), (a: Awaited<ReturnType<typeof api>>['api']) => a.labelledPulls('staging')],
    ['a later page of comments', (r: { path: string }) => r.path.includes('/comments') && r.path.includes('page=2'), (a: Awaited<ReturnType<typeof api>>['api']) => a.comment(1, 'x', '<!-- m -->')],
    ['writing the comment', (r: { method: string }) => r.method === 'PATCH', (a: Awaited<ReturnType<typeof api>>['api']) => a.comment(1, 'x', '<!-- m -->')],
  ] as const) {
    it(`hanging on ${what}: one clear error once the deadline passes`, async () => {
      const { gh, api: a } = await api(hang as (r: { method: string; path: string }) => boolean);
      const { error, ms } = await timed(call(a));
      expect(error.message).toMatch(/^GitHub API: cannot (list the open pull requests of acme\/webapp|comment on pull request #1): no answer within 0\.4 s$/);
      expect(ms).toBeGreaterThanOrEqual(350);
      expect(ms).toBeLessThan(5000);
      // It did hang where it should: the request was made and never answered.
      expect(gh.requests.some((r) => hang(r as { method: string; path: string }))).toBe(true);
    });
  }
});

describe('a GitHub API that refuses', () => {
  async function refusing(answer: CannedAnswer) {
    const gh = await startFakeGitHub({ answer: (r) => (listing(r.path) || r.path.includes('/comments') ? answer : undefined) });
    fakes.push(gh);
    return githubAccess({ token: gh.token, processEnv: { GITHUB_REPOSITORY: gh.repository, GITHUB_API_URL: gh.url } }).api!;
  }
  const docs = 'https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api';

  it('rate limited (403, x-ratelimit-remaining 0): says so and when it resets, not that the token lacks access', async () => {
    const reset = Math.floor(Date.UTC(2026, 11, 1, 4, 12, 0) / 1000);
    const api = await refusing({ status: 403, headers: { 'x-ratelimit-limit': '1000', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(reset) }, body: { message: 'API rate limit exceeded for installation ID 4242.', documentation_url: docs } });
    const e = (await api.labelledPulls('staging').catch((x: unknown) => x)) as OpsError;
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message).toBe('GitHub API: cannot list the open pull requests of acme/webapp: rate limit reached (1000 requests an hour for this token), until 04:12 UTC');
    expect(e.hint).toMatch(/^wait until 04:12 UTC/);
    expect(e.hint).not.toMatch(/needs read access/);
  });

  it('a secondary rate limit (429, retry-after longer than a request waits itself): says how long to wait', async () => {
    const api = await refusing({ status: 429, headers: { 'retry-after': '120' }, body: { message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.', documentation_url: docs } });
    const e = (await api.comment(3, 'x', '<!-- m -->').catch((x: unknown) => x)) as OpsError;
    expect(e.message).toBe('GitHub API: cannot comment on pull request #3: secondary rate limit reached (too many requests at once), retry after 120 s');
    expect(e.hint).toMatch(/^wait 120 s/);
  });

  it('a secondary rate limit asking for a short pause (403/429, retry-after 1): waited out, the listing and the comment go through, each written once', async () => {
    let refused = 0;
    const limit = (r: { method: string; path: string }): CannedAnswer | undefined =>
      (r.path.includes('page=2') || r.method === 'POST') && refused < 2 ? (refused++, { status: refused === 1 ? 403 : 429, headers: { 'retry-after': '1' }, body: { message: 'You have exceeded a secondary rate limit.', documentation_url: docs } }) : undefined;
    const gh = await startFakeGitHub({ pageSize: 1, answer: limit });
    fakes.push(gh);
    for (let i = 1; i <= 2; i++) gh.pulls.push({ number: i, created_at: `2026-01-0${i}T00:00:00Z`, head: { ref: `f${i}`, sha: 'a'.repeat(40), repo: { full_name: gh.repository } }, labels: ['staging'] });
    const api = githubAccess({ token: gh.token, processEnv: { GITHUB_REPOSITORY: gh.repository, GITHUB_API_URL: gh.url } }).api!;
    const started = Date.now();
    expect((await api.labelledPulls('staging')).map((p) => p.number)).toEqual([1, 2]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(await api.comment(1, 'x', '<!-- m -->')).toBe('created');
    expect(refused).toBe(2);
    expect(gh.comments).toHaveLength(1);
  });

  it('a comment on a locked pull request (403 "issue is locked"): says it is locked, not that the token lacks access', async () => {
    const gh = await startFakeGitHub({ answer: (r) => (r.method === 'POST' && r.path.includes('/comments') ? { status: 403, body: { message: 'Unable to create comment because issue is locked.', documentation_url: 'https://docs.github.com/rest/issues/comments#create-an-issue-comment' } } : undefined) });
    fakes.push(gh);
    const api = githubAccess({ token: gh.token, processEnv: { GITHUB_REPOSITORY: gh.repository, GITHUB_API_URL: gh.url } }).api!;
    const e = (await api.comment(3, 'x', '<!-- m -->').catch((x: unknown) => x)) as OpsError;
    expect(e.message).toMatch(/^GitHub API: cannot comment on pull request #3: HTTP 403 Unable to create comment because issue is locked\./);
    expect(e.hint).toMatch(/^the conversation of pull request #3 is locked: unlock it/);
    expect(e.hint).not.toMatch(/read access/);
  });

  it('a secondary rate limit without retry-after (403, requests left this hour): says so, not that the token lacks access', async () => {
    const api = await refusing({ status: 403, headers: { 'x-ratelimit-remaining': '4000' }, body: { message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.', documentation_url: docs } });
    const e = (await api.labelledPulls('staging').catch((x: unknown) => x)) as OpsError;
    expect(e.message).toBe('GitHub API: cannot list the open pull requests of acme/webapp: secondary rate limit reached (too many requests at once)');
    expect(e.hint).toMatch(/^wait a few minutes/);
  });

  it('a token without the permission (403, no rate limit): names the permission', async () => {
    const api = await refusing({ status: 403, body: { message: 'Resource not accessible by integration', documentation_url: 'https://docs.github.com/rest' } });
    const e = (await api.labelledPulls('staging').catch((x: unknown) => x)) as OpsError;
    expect(e.message).toMatch(/^GitHub API: cannot list the open pull requests of acme\/webapp: HTTP 403 Resource not accessible by integration/);
    expect(e.hint).toMatch(/needs read access to pull requests/);
  });
});

describe('a GitHub API that is not there', () => {
  it('nothing answers at $GITHUB_API_URL (a mistyped Enterprise Server address): asks whether it is reachable, never "HTTP 500" nor an outage of GitHub\'s', async () => {
    const url = `${await deadUrl()}/api/v3`;
    const api = githubAccess({ token: 'ghs_x', processEnv: { GITHUB_REPOSITORY: 'acme/webapp', GITHUB_API_URL: url } }).api!;
    const e = (await api.labelledPulls('staging').catch((x: unknown) => x)) as OpsError;
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message).toMatch(/^GitHub API: cannot list the open pull requests of acme\/webapp: (?!HTTP)\S.*ECONNREFUSED/);
    expect(e.hint).toBe(`is ${url} reachable? ($GITHUB_API_URL sets it)`);
    // the address asked about without the credentials it was given with
    const withToken = url.replace('://', '://x-access-token:ghp_Zq7Wx9vLm3pR@');
    const e2 = (await githubAccess({ token: 'ghs_x', processEnv: { GITHUB_REPOSITORY: 'acme/webapp', GITHUB_API_URL: withToken } }).api!.labelledPulls('staging').catch((x: unknown) => x)) as OpsError;
    expect(e2.hint).toBe(`is ${url.replace('://', '://***@')} reachable? ($GITHUB_API_URL sets it)`);
  });

  it('a $GITHUB_API_URL that is no http(s) URL (a host without its scheme): said as that variable, never an internal error', () => {
    for (const [url, problem] of [['ghe.example.com/api/v3', 'is not a URL'], ['https://256.0.0.1', 'is not a URL'], ['ftp://ghe.example.com', 'is not an http(s) URL']]) {
      const access = githubAccess({ token: 'ghs_x', processEnv: { GITHUB_REPOSITORY: 'acme/webapp', GITHUB_API_URL: url } });
      expect(access.api, url).toBeUndefined();
      expect(access.failed?.message, url).toBe(`the GitHub API cannot be used: $GITHUB_API_URL ${JSON.stringify(url)} ${problem}`);
      expect(access.failed?.hint, url).toMatch(/^set \$GITHUB_API_URL to the API's address \(https:\/\/api.github.com; /);
    }
    // a token written into the address (with a scheme or without) is never shown
    for (const url of ['x-access-token:ghp_Zq7Wx9vLm3pR@ghe.example.com/api/v3', 'ftp://user:ghp_Zq7Wx9vLm3pR@ghe.example.com']) {
      const failed = githubAccess({ token: 'ghs_x', processEnv: { GITHUB_REPOSITORY: 'acme/webapp', GITHUB_API_URL: url } }).failed!;
      expect(failed.message, url).not.toContain('ghp_Zq7Wx9vLm3pR');
      expect(failed.message, url).toMatch(/"(ftp:\/\/)?\*\*\*@ghe\.example\.com/);
    }
    // nor one written into the git remote's URL (no $GITHUB_REPOSITORY: the repository read from it)
    const remote = githubAccess({ token: 'ghs_x', processEnv: {}, remoteUrl: 'https://oauth2:glpat-Zq7Wx9vLm3pR@gitlab.example.com/group/sub/app.git' }).failed!;
    expect(remote.message).toContain('the remote URL "https://oauth2:***@gitlab.example.com/group/sub/app.git" is not a GitHub URL');
    // without a token the API is not asked for: nothing to say of its address
    expect(githubAccess({ processEnv: { GITHUB_REPOSITORY: 'acme/webapp', GITHUB_API_URL: 'ghe.example.com' } })).toEqual({ unavailable: 'no GitHub token (input github-token, $GITHUB_TOKEN or $GH_TOKEN)' });
  });
});

describe('a GitHub API with a passing outage', () => {
  it('a 502 on a page of a listing, then answers: read again after a pause, the listing complete; an outage that lasts fails with its status', async () => {
    let failed = 0;
    const gh = await startFakeGitHub({ pageSize: 1, answer: (r) => (r.method === 'GET' && listing(r.path) && r.path.includes('page=2') && failed < 2 ? (failed++, { status: 502, body: { message: 'Server Error' } }) : undefined) });
    fakes.push(gh);
    for (let i = 1; i <= 3; i++) gh.pulls.push({ number: i, created_at: `2026-01-0${i}T00:00:00Z`, head: { ref: `f${i}`, sha: 'a'.repeat(40), repo: { full_name: gh.repository } }, labels: ['staging'] });
    const access = githubAccess({ token: gh.token, processEnv: { GITHUB_REPOSITORY: gh.repository, GITHUB_API_URL: gh.url }, retryDelaysMs: [10, 10] });
    expect((await access.api!.labelledPulls('staging')).map((p) => p.number)).toEqual([1, 2, 3]);
    expect(failed).toBe(2);

    const down = await startFakeGitHub({ answer: (r) => (listing(r.path) ? { status: 503, body: { message: 'Service Unavailable' } } : undefined) });
    fakes.push(down);
    const api = githubAccess({ token: down.token, processEnv: { GITHUB_REPOSITORY: down.repository, GITHUB_API_URL: down.url }, retryDelaysMs: [10, 10] }).api!;
    const e = (await api.labelledPulls('staging').catch((x: unknown) => x)) as OpsError;
    expect(e.message).toMatch(/^GitHub API: cannot list the open pull requests of acme\/webapp: HTTP 503/);
    expect(down.requests.filter((q) => listing(q.path))).toHaveLength(3);
  });
});

describe('a GitHub API answering with a web page', () => {
  it("an HTML error page (GitHub's 502 unicorn, a proxy's or an Enterprise Server's maintenance page): one line, its title, not the page", async () => {
    const page = `<!DOCTYPE html>\n<html>\n<head>\n<title>Unicorn! &middot; GitHub</title>\n<style>body { color: red }</style>\n</head>\n<body>\n${'<p>No server is currently available to service your request.</p>\n'.repeat(50)}</body>\n</html>\n`;
    const gh = await startFakeGitHub({ answer: (r) => (listing(r.path) ? { status: 502, body: page, html: true } : undefined) });
    fakes.push(gh);
    const api = githubAccess({ token: gh.token, processEnv: { GITHUB_REPOSITORY: gh.repository, GITHUB_API_URL: gh.url }, retryDelaysMs: [1] }).api!;
    const e = (await api.labelledPulls('staging').catch((x: unknown) => x)) as OpsError;
    expect(e.message).toBe('GitHub API: cannot list the open pull requests of acme/webapp: HTTP 502 Unicorn! · GitHub');
    expect(e.hint).toMatch(/^GitHub answered with an error of its own/);
  });
});

describe('a repository with many open pull requests', () => {
  it('the labelled one opened after a thousand others is listed (every page read, none left out unsaid)', async () => {
    const gh = await startFakeGitHub();
    fakes.push(gh);
    const at = (i: number) => new Date(Date.UTC(2026, 0, 1) + i * 60_000).toISOString();
    for (let i = 1; i <= 1001; i++) gh.pulls.push({ number: i, created_at: at(i), head: { ref: `f${i}`, sha: 'a'.repeat(40), repo: { full_name: gh.repository } }, labels: i === 1001 ? ['staging'] : [] });
    const api = githubAccess({ token: gh.token, processEnv: { GITHUB_REPOSITORY: gh.repository, GITHUB_API_URL: gh.url } }).api!;
    expect((await api.labelledPulls('staging')).map((p) => p.number)).toEqual([1001]);
  });

  /** A fake with 500 open pull requests, those numbered in `labelled` carrying "Staging", 100 a page as GitHub gives. */
  async function fiveHundred(labelled: number[], options: Parameters<typeof startFakeGitHub>[0] = {}) {
    const gh = await startFakeGitHub({ pageSize: 100, ...options });
    fakes.push(gh);
    const at = (i: number) => new Date(Date.UTC(2026, 0, 1) + i * 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    for (let i = 1; i <= 500; i++) gh.pulls.push({ number: i, created_at: at(i), head: { ref: `f${i}`, sha: String(i % 10).repeat(40), repo: { full_name: i === 499 ? 'someone/fork' : gh.repository } }, labels: labelled.includes(i) ? ['bug', 'Staging'] : ['bug'] });
    // an issue (not a pull request) with the label: never listed
    gh.pulls.push({ number: 501, created_at: at(0), head: { ref: '', sha: '', repo: null }, labels: ['staging'], issue: true });
    return { gh, api: githubAccess({ token: gh.token, processEnv: { GITHUB_REPOSITORY: gh.repository, GITHUB_API_URL: gh.url } }).api! };
  }
  const expected = [
    { number: 7, title: 'Pull request 7', url: 'https://github.example/acme/webapp/pull/7', createdAt: '2026-01-01T00:07:00Z', headRef: 'f7', headSha: '7'.repeat(40), sameRepository: true, labels: ['bug', 'Staging'] },
    { number: 499, title: 'Pull request 499', url: 'https://github.example/acme/webapp/pull/499', createdAt: '2026-01-01T08:19:00Z', headRef: 'f499', headSha: '9'.repeat(40), sameRepository: false, labels: ['bug', 'Staging'] },
  ];

  it('500 open pull requests, 2 labelled: asks GitHub for the labelled ones only (one page, then each of the 2), not all 5 pages', async () => {
    const { gh, api } = await fiveHundred([7, 499]);
    expect(await api.labelledPulls('staging')).toEqual(expected);
    expect(gh.requests.map((r) => r.path.replace(/\?.*/, ''))).toEqual(['/repos/acme/webapp/issues', '/repos/acme/webapp/pulls/7', '/repos/acme/webapp/pulls/499']);
    expect(new URL(gh.requests[0]!.path, gh.url).searchParams.get('labels')).toBe('staging');
  });

  it('a token that may not read issues (403 on the issues listing) or a label holding a comma: every open pull request read, the same answer', async () => {
    const refused = await fiveHundred([7, 499], { answer: (r) => (r.path.includes('/issues?') ? { status: 403, body: { message: 'Resource not accessible by integration' } } : undefined) });
    expect(await refused.api.labelledPulls('staging')).toEqual(expected);
    expect(refused.gh.requests.filter((r) => r.path.includes('/pulls?'))).toHaveLength(5);
    const comma = await fiveHundred([]);
    comma.gh.pulls[41]!.labels.push('ready, staging');
    expect((await comma.api.labelledPulls('Ready, Staging')).map((p) => p.number)).toEqual([42]);
    expect(comma.gh.requests.some((r) => r.path.includes('/issues'))).toBe(false);
  });
});
