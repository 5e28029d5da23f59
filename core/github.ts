// GitHub's REST API, only as much as staging needs: open pull requests carrying a label (oldest first: asked for by
// label, every open one read only when a token may not read issues) and
// one comment per pull request (created once, then updated, so a nightly job does not pile up comments).
// Every caller of the REST API (staging, deployments.ts) says a failure the same way: apiError.
// Access is optional: without a token or a known repository the caller gets `unavailable` with the reason.
// Every HTTP request has a deadline (timeoutMs, 15 s by default), set on the fetch octokit uses, so it holds
// for every page of a paginated listing too (octokit's paginate iterator does not pass a request's own signal
// on to the pages after the first).
import type { getOctokit as GetOctokit } from '@actions/github';
import { OpsError, printableLine } from './errors.ts';
import { REPOSITORY } from './runinfo.ts';
import { hideUrlCredentials } from './secrets/parts.ts';

export interface PullRequest {
  number: number;
  title: string;
  url: string;
  createdAt: string;
  /** Branch name in the head repository. */
  headRef: string;
  headSha: string;
  /** The head branch lives in this repository (not a fork), so it can be fetched by name. */
  sameRepository: boolean;
  labels: string[];
}

export interface GitHubApi {
  /** "owner/name". */
  readonly repository: string;
  /** Open pull requests that carry `label` (case-insensitive), oldest first. */
  labelledPulls(label: string): Promise<PullRequest[]>;
  /** Write `body` on the pull request: update our earlier comment (found by `marker`) or create one. */
  comment(number: number, body: string, marker: string): Promise<'created' | 'updated'>;
}

/**
 * The API, or why not. `failed`: a token was given, so the caller asked for the API, but what it names cannot be used
 * (an invalid $GITHUB_REPOSITORY, or none known: not set, and a remote URL that is not GitHub's): told as a listing with it that failed (a rebuild leaves staging untouched).
 * `warning`: the API is used, but say this once (a token sent in clear).
 */
export type GitHubAccess = { api: GitHubApi; unavailable?: undefined; failed?: undefined; warning?: string } | { api?: undefined; unavailable: string; failed?: OpsError; warning?: undefined };

/** "owner/name" and the API base from a remote URL (https, ssh or scp-like); undefined for local paths. */
export function repositoryFromUrl(url: string): { repository: string; host: string } | undefined {
  const m =
    /^(?:https?|ssh|git):\/\/(?:[^@/]+@)?([^/:]+)(?::\d+)?\/([^/]+\/[^/]+?)(?:\.git)?\/?$/.exec(url) ??
    /^(?:[^@/]+@)?([^/:]+):([^/]+\/[^/]+?)(?:\.git)?\/?$/.exec(url);
  if (!m || !REPOSITORY.test(m[2]!)) return undefined;
  return { repository: m[2]!, host: m[1]!.toLowerCase() };
}

/**
 * The API base for a git host: api.github.com for github.com (and ssh.github.com), api.<name>.ghe.com for GitHub
 * Enterprise Cloud with data residency (<name>.ghe.com), /api/v3 on a GitHub Enterprise Server.
 */
export function apiUrlFor(host: string): string {
  // ssh.github.com: GitHub's SSH over port 443 (ssh://git@ssh.github.com:443/owner/name.git), behind firewalls.
  if (host === 'github.com' || host === 'www.github.com' || host === 'ssh.github.com') return 'https://api.github.com';
  if (/^[a-z0-9-]+\.ghe\.com$/.test(host)) return `https://api.${host}`;
  return `https://${host}/api/v3`;
}

/**
 * The Octokit client, @actions/github loaded on first use: it reads $GITHUB_API_URL as it loads (a proxy agent made
 * for it), so an address that is no URL, imported at start, would end the process with a stack trace before any
 * check could say so (apiAddressProblem says it first).
 */
export async function octokitFor(token: string, options: Parameters<typeof GetOctokit>[1]): Promise<ReturnType<typeof GetOctokit>> {
  const { getOctokit } = await import('@actions/github');
  return getOctokit(token, options);
}

/**
 * What is wrong with a REST API address (undefined when nothing): it must be an http(s) URL, as $GITHUB_API_URL is
 * set by the runner (https://api.github.com; https://<host>/api/v3 on an Enterprise Server).
 */
export function apiAddressProblem(apiUrl: string): string | undefined {
  let url: URL;
  try {
    url = new URL(apiUrl);
  } catch {
    return 'is not a URL';
  }
  return url.protocol === 'https:' || url.protocol === 'http:' ? undefined : 'is not an http(s) URL';
}

/**
 * An API address as messages show it: on one line, without the credentials it may carry before an `@`
 * (`https://user:token@host/api/v3`, or `user:token@host` without a scheme): they are no one's to read in a log.
 */
export function shownAddress(apiUrl: string): string {
  // Not hideUrlCredentials alone: an address without its scheme (`user:token@host/api/v3`) is no URL it reads.
  return printableLine(apiUrl.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/@]*@/i, '$1***@'));
}

/** The hint for an invalid $GITHUB_API_URL (apiAddressProblem). */
export const API_ADDRESS_HINT = "set $GITHUB_API_URL to the API's address (https://api.github.com; an Enterprise Server's https://<host>/api/v3), or unset it";

export interface AccessOptions {
  /** The `github-token` input or --token; falls back to $GITHUB_TOKEN, then $GH_TOKEN. */
  token?: string;
  processEnv: NodeJS.ProcessEnv;
  /** URL of the git remote, used when $GITHUB_REPOSITORY is not set (a laptop). */
  remoteUrl?: string;
  /** Deadline of each HTTP request, in milliseconds (default 15 000). */
  timeoutMs?: number;
  /** Pauses before trying a read again after a 5xx (default RETRY_DELAYS_MS). */
  retryDelaysMs?: readonly number[];
}

/**
 * Decide whether the API can be used, and with what: a token (option, $GITHUB_TOKEN, $GH_TOKEN), the
 * repository ($GITHUB_REPOSITORY, else from the remote URL) and the API base ($GITHUB_API_URL, else from the
 * remote's host). Never throws: missing access is `unavailable`, with the reason (and `failed` when a token was
 * given); an http:// API base off this machine is used, with a `warning` to print once.
 */
export function githubAccess(options: AccessOptions): GitHubAccess {
  const env = options.processEnv;
  const token = options.token || env.GITHUB_TOKEN || env.GH_TOKEN || '';
  const fromUrl = options.remoteUrl ? repositoryFromUrl(options.remoteUrl) : undefined;
  const repository = env.GITHUB_REPOSITORY || fromUrl?.repository;
  if (!repository) {
    // The remote URL as git would say it: a token written into it (`https://oauth2:<token>@gitlab…`) is not shown.
    const unavailable = `the GitHub repository is unknown ($GITHUB_REPOSITORY is not set and the remote URL ${JSON.stringify(hideUrlCredentials(options.remoteUrl ?? ''))} is not a GitHub URL)`;
    if (!token) return { unavailable };
    // A token says the pull requests were wanted: not knowing where to list them is a failed listing, not "no API".
    return { unavailable, failed: new OpsError(`the GitHub API cannot be used: ${unavailable}`, 'set $GITHUB_REPOSITORY to the repository as owner/name (or unset the token to go on without the API)') };
  }
  if (!REPOSITORY.test(repository)) {
    const unavailable = `invalid repository ${JSON.stringify(repository)}: expected owner/name`;
    if (!token) return { unavailable };
    // Only $GITHUB_REPOSITORY can be invalid here: repositoryFromUrl reads none that is not owner/name.
    return { unavailable, failed: new OpsError(`the GitHub API cannot be used: $GITHUB_REPOSITORY is an ${unavailable}`, 'set $GITHUB_REPOSITORY to the repository as owner/name (or unset it to read it from a GitHub remote URL)') };
  }
  if (!token) return { unavailable: 'no GitHub token (input github-token, $GITHUB_TOKEN or $GH_TOKEN)' };
  const apiUrl = (env.GITHUB_API_URL || (fromUrl && !env.GITHUB_REPOSITORY ? apiUrlFor(fromUrl.host) : 'https://api.github.com')).replace(/\/+$/, '');
  // A token says the API was wanted: an address it cannot be reached at is a failed listing, said as that variable.
  const problem = env.GITHUB_API_URL ? apiAddressProblem(env.GITHUB_API_URL) : undefined;
  if (problem) {
    const unavailable = `$GITHUB_API_URL ${JSON.stringify(shownAddress(env.GITHUB_API_URL!))} ${problem}`;
    return { unavailable, failed: new OpsError(`the GitHub API cannot be used: ${unavailable}`, API_ADDRESS_HINT) };
  }
  const warning = clearTextWarning(apiUrl);
  return { api: restApi({ token, repository, apiUrl, timeoutMs: options.timeoutMs ?? 15_000, retryDelaysMs: options.retryDelaysMs }), ...(warning && { warning }) };
}

/**
 * The warning for an API base the token would cross the network to in clear (http:// to a host that is not the
 * machine itself); undefined for https and loopback. Not refused: an internal Enterprise Server may serve http only.
 */
export function clearTextWarning(apiUrl: string): string | undefined {
  let url: URL;
  try {
    url = new URL(apiUrl);
  } catch {
    return undefined; // not a URL: the request fails and says so (apiError)
  }
  if (url.protocol !== 'http:') return undefined;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost') || /^127\./.test(host) || host === '::1') return undefined;
  return `the GitHub API address ${printableLine(url.origin)} is plain http: the token goes to ${printableLine(url.hostname)} unencrypted; set $GITHUB_API_URL to its https:// address`;
}

interface RestOptions {
  token: string;
  repository: string;
  apiUrl: string;
  timeoutMs: number;
  retryDelaysMs?: readonly number[];
}

/** Answers of a passing outage (GitHub's 5xx), read again after a pause. */
const PASSING = new Set([500, 502, 503, 504]);
/** The pauses before each new try of a read that met a passing outage (ms): three tries in about 5 s. */
export const RETRY_DELAYS_MS: readonly number[] = [1_000, 4_000];

/**
 * The fetch every GitHub API client here uses: a deadline on every request (and its body), on top of the caller's
 * own signal if any; a read (GET) answered 500/502/503/504 is tried again after each of `retryDelaysMs` (GitHub
 * answers these in passing outages, and a nightly rebuild that could not list its pull requests fails). Writes are
 * not repeated after those (a comment or a status would be written twice), nor is a request past its deadline (it
 * would wait that long again). A request refused by a secondary rate limit (403/429 with retry-after, at most
 * RETRY_AFTER_MAX_S) is sent again once that pause is over, a write too (refused, it did nothing), as many times as
 * there are delays. The last answer is the caller's.
 */
export function fetchWithDeadline(ms: number, retryDelaysMs: readonly number[] = RETRY_DELAYS_MS): typeof fetch {
  const once: typeof fetch = (input, init = {}) => fetch(input, { ...init, signal: init.signal ? AbortSignal.any([init.signal, AbortSignal.timeout(ms)]) : AbortSignal.timeout(ms) });
  return async (input, init = {}) => {
    const method = (init.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    for (const delay of retryDelaysMs) {
      const response = await once(input, init);
      // A secondary rate limit's refusal did nothing (a write too): asked to come back within a minute, it does.
      const wait = shortRetryAfter(response);
      if (wait === undefined && !(method === 'GET' && PASSING.has(response.status))) return response;
      await response.body?.cancel();
      await new Promise((r) => setTimeout(r, wait ?? delay));
    }
    return once(input, init);
  };
}

/** The longest retry-after (s) a request waits out itself; a longer one is the caller's error (apiError says how long). */
export const RETRY_AFTER_MAX_S = 60;

/** The pause (ms) a 403/429 asks for in retry-after (GitHub's secondary rate limit), when at most RETRY_AFTER_MAX_S. */
function shortRetryAfter(response: Response): number | undefined {
  if (response.status !== 403 && response.status !== 429) return undefined;
  const after = Number(response.headers.get('retry-after') ?? 'x');
  return Number.isInteger(after) && after >= 0 && after <= RETRY_AFTER_MAX_S ? after * 1000 : undefined;
}

/**
 * A refusal for rate: GitHub answers 403 or 429 with x-ratelimit-remaining 0 (the hourly limit, until
 * x-ratelimit-reset, epoch seconds) or with retry-after (a secondary limit: too many requests at once). Source:
 * GitHub's "Rate limits for the REST API". @returns what to tell, or undefined for any other answer.
 */
function rateLimited(status: number | undefined, headers: Record<string, string | number | undefined>, said: string): { message: string; hint: string } | undefined {
  if (status !== 403 && status !== 429) return undefined;
  const header = (name: string) => (headers[name] === undefined ? undefined : String(headers[name]));
  const retryAfter = Number(header('retry-after'));
  if (Number.isInteger(retryAfter) && retryAfter >= 0) {
    return { message: `secondary rate limit reached (too many requests at once), retry after ${retryAfter} s`, hint: `wait ${retryAfter} s, then run it again` };
  }
  // A secondary limit without retry-after (and requests left this hour): GitHub says to wait at least a minute.
  if (/secondary rate limit|abuse detection/i.test(said) && header('x-ratelimit-remaining') !== '0') {
    return { message: 'secondary rate limit reached (too many requests at once)', hint: 'wait a few minutes, then run it again; other jobs using the same token at the same time count too' };
  }
  if (header('x-ratelimit-remaining') !== '0') return undefined;
  const reset = Number(header('x-ratelimit-reset'));
  const until = Number.isFinite(reset) && reset > 0 ? `${new Date(reset * 1000).toISOString().slice(11, 16)} UTC` : 'the hour is over';
  const limit = header('x-ratelimit-limit');
  return {
    message: `rate limit reached${limit ? ` (${limit} requests an hour for this token)` : ''}, until ${until}`,
    hint: `wait until ${until} and run it again; the token's requests are shared with every other job and tool using it`,
  };
}

/**
 * The HTTP status GitHub answered a failed request with; undefined when none came (Octokit says a request that got
 * no answer at all, refused or no such host, as status 500 without a response: no answer of GitHub's).
 */
function answeredStatus(e: unknown): number | undefined {
  return (e as { response?: unknown }).response === undefined ? undefined : (e as { status?: number }).status;
}

/** The headers of the answer to a failed request ({} without one). */
function answerHeaders(e: unknown): Record<string, string | number | undefined> {
  return (e as { response?: { headers?: Record<string, string | number | undefined> } }).response?.headers ?? {};
}

/**
 * One GitHub API failure as a one-line OpsError (the one way for every caller of the REST API): a rate limit says
 * when to retry, a request past its deadline says so, 401 an invalid token, 403/404 what `access` says the token
 * needs, 5xx an outage of GitHub's, another answer a request GitHub refused, no answer whether `apiUrl` is reachable.
 */
export function apiError(what: string, options: { apiUrl: string; timeoutMs: number; access: string }, e: unknown): OpsError {
  const { apiUrl, timeoutMs } = options;
  // No answer at all is not GitHub's outage (a wrong $GITHUB_API_URL would read as githubstatus.com's business).
  const status = answeredStatus(e);
  const limited = rateLimited(status, answerHeaders(e), e instanceof Error ? e.message : '');
  if (limited) return new OpsError(`GitHub API: cannot ${what}: ${limited.message}`, limited.hint);
  const timedOut = (x: unknown): boolean => x instanceof Error && (x.name === 'TimeoutError' || timedOut(x.cause));
  const message = timedOut(e) ? `no answer within ${timeoutMs / 1000} s` : answerText(e instanceof Error ? e.message : String(e));
  // Only a request that got no answer asks whether the API is reachable: one GitHub answered says what it answered.
  const hint =
    status === 401
      ? 'the token is invalid or expired'
      : status === 403 || status === 404
        ? options.access
        : status && status >= 500
          ? 'GitHub answered with an error of its own (an outage: githubstatus.com): run the job again later'
          : status
            ? 'GitHub refused the request as written (its message above): report it to ops-pipeline with this message'
            : `is ${shownAddress(apiUrl)} reachable? ($GITHUB_API_URL sets it)`;
  return new OpsError(`GitHub API: cannot ${what}: ${status && !timedOut(e) ? `HTTP ${status} ` : ''}${message}`, hint);
}

/** The few named entities an error page's title holds; any other stays as written. */
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ', middot: '·', ndash: '–', mdash: '—' };

/** An HTML entity (`&middot;`, `&#183;`, `&#xb7;`) as its character; one not known stays as written. */
function entity(written: string, name: string): string {
  if (name[0] !== '#') return ENTITIES[name.toLowerCase()] ?? written;
  const hex = /^#x/i.test(name);
  const code = Number.parseInt(name.slice(hex ? 2 : 1), hex ? 16 : 10);
  return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : written;
}

/**
 * What GitHub answered, on one line of at most 300 characters: an HTML page (GitHub's own 5xx page, a proxy's, an
 * Enterprise Server's maintenance page: Octokit gives the whole page as the message) as its title, else its text.
 */
function answerText(message: string): string {
  const html = /^\s*<(!doctype|html|head|body)\b/i.test(message);
  const text = html ? (/<title[^>]*>([\s\S]*?)<\/title>/i.exec(message)?.[1] ?? message.replace(/<(script|style)\b[\s\S]*?<\/\1>|<[^>]*>/gi, ' ')) : message;
  const line = printableLine(html ? text.replace(/&(#x[0-9a-f]{1,6}|#[0-9]{1,7}|[a-z]+);/gi, entity) : text) || '(an empty page)';
  return line.length > 300 ? `${line.slice(0, 299)}…` : line;
}

/**
 * Whether a comment holding our marker may be ours: written by a bot (GITHUB_TOKEN, an app) or by someone with write
 * access (a person's token). Anyone can write the marker into a comment: taken for ours, theirs would be overwritten.
 */
function writtenByUs(c: { user?: { type?: string } | null; author_association?: string }): boolean {
  return c.user?.type === 'Bot' || ['OWNER', 'MEMBER', 'COLLABORATOR'].includes(c.author_association ?? '');
}

/** What staging's token needs (403/404 on the pull-request API). */
const PULLS_ACCESS = 'the token needs read access to pull requests (and pull-requests: write or issues: write to comment), and the repository must exist';

/** Thrown to read every open pull request: the label cannot be asked for as a filter (it holds a comma). */
const NO_LABEL_FILTER = Symbol('no label filter');

/** Whether the issues listing was refused for want of access (403 not for rate, 404), not for an outage or a limit. */
function issuesRefused(e: unknown): boolean {
  const status = answeredStatus(e);
  return status === 404 || (status === 403 && !rateLimited(status, answerHeaders(e), e instanceof Error ? e.message : ''));
}

/** The API's open pull request as staging reads it; `sameRepository` against `repository` (owner/name). */
function toPullRequest(
  pr: { number: number; title: string; html_url: string; created_at: string; head: { ref: string; sha: string; repo?: { full_name?: string } | null }; labels: (string | { name?: string | null })[] },
  repository: string,
): PullRequest {
  return {
    number: pr.number,
    title: pr.title,
    url: pr.html_url,
    createdAt: pr.created_at,
    headRef: pr.head.ref,
    headSha: pr.head.sha,
    sameRepository: pr.head.repo?.full_name?.toLowerCase() === repository.toLowerCase(),
    labels: pr.labels.map((l) => (typeof l === 'string' ? l : l.name ?? '')),
  };
}

/** Oldest first: the API sorts by creation already; sorted again so the order never depends on the server. */
function sorted(pulls: PullRequest[]): PullRequest[] {
  return pulls.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.number - b.number);
}

function restApi(options: RestOptions): GitHubApi {
  let client: ReturnType<typeof octokitFor> | undefined;
  const octokitNow = () => (client ??= octokitFor(options.token, { baseUrl: options.apiUrl, request: { fetch: fetchWithDeadline(options.timeoutMs, options.retryDelaysMs) } }));
  const [owner, repo] = options.repository.split('/') as [string, string];
  const pullRequest = (pr: Parameters<typeof toPullRequest>[0]) => toPullRequest(pr, options.repository);
  return {
    repository: options.repository,
    async labelledPulls(label) {
      const octokit = await octokitNow();
      const wanted = label.toLowerCase();
      const carries = (labels: (string | { name?: string | null })[]) => labels.some((l) => (typeof l === 'string' ? l : l.name ?? '').toLowerCase() === wanted);
      const order = { owner, repo, state: 'open', sort: 'created', direction: 'asc', per_page: 100 } as const;
      const found: PullRequest[] = [];
      try {
        try {
          // The issues listing filters by label on GitHub's side (every pull request is an issue there), so a
          // repository with hundreds of open pull requests, a few labelled, costs a page and one read per labelled
          // one; the pulls listing has no label filter. Not the search API: its index lags behind a label just put on.
          // `labels` is a comma-separated list: a label holding a comma cannot be asked for so (every pull request is read).
          if (label.includes(',')) throw NO_LABEL_FILTER;
          for await (const page of octokit.paginate.iterator(octokit.rest.issues.listForRepo, { ...order, labels: label })) {
            for (const issue of page.data) {
              if (!issue.pull_request || !carries(issue.labels)) continue;
              const { data: pr } = await octokit.rest.pulls.get({ owner, repo, pull_number: issue.number });
              if (pr.state === 'open') found.push(pullRequest(pr)); // closed since the listing: not open any more
            }
          }
          return sorted(found);
        } catch (e) {
          // A token that may read pull requests but not issues (a private repository, permissions: pull-requests:
          // read): every open pull request is read, as the pulls listing is what such a token may read.
          if (e !== NO_LABEL_FILTER && !issuesRefused(e)) throw e;
          found.length = 0;
        }
        // Every page, each under its deadline: a listing cut short would leave the newest labelled pull requests out of
        // staging without a word (a repository with more open pull requests than the cut).
        for await (const page of octokit.paginate.iterator(octokit.rest.pulls.list, order)) {
          for (const pr of page.data) if (carries(pr.labels)) found.push(pullRequest(pr));
        }
      } catch (e) {
        throw apiError(`list the open pull requests of ${options.repository}`, { ...options, access: PULLS_ACCESS }, e);
      }
      return sorted(found);
    },
    async comment(number, body, marker) {
      const octokit = await octokitNow();
      const text = body.includes(marker) ? body : `${marker}\n${body}`;
      try {
        let existing: number | undefined;
        for await (const page of octokit.paginate.iterator(octokit.rest.issues.listComments, {
          owner,
          repo,
          issue_number: number,
          per_page: 100,
        })) {
          const mine = page.data.find((c) => c.body?.includes(marker) && writtenByUs(c));
          if (mine) existing = mine.id;
        }
        if (existing !== undefined) {
          await octokit.rest.issues.updateComment({ owner, repo, comment_id: existing, body: text });
          return 'updated';
        }
        await octokit.rest.issues.createComment({ owner, repo, issue_number: number, body: text });
        return 'created';
      } catch (e) {
        // A locked conversation refuses comments with 403 whatever the token may do: not a question of access.
        const locked = (e as { status?: number }).status === 403 && /\bis locked\b/i.test(e instanceof Error ? e.message : '');
        const access = locked ? `the conversation of pull request #${number} is locked: unlock it on GitHub (Unlock conversation) to get the comment; the job summary lists it either way` : PULLS_ACCESS;
        throw apiError(`comment on pull request #${number}`, { ...options, access }, e);
      }
    },
  };
}
