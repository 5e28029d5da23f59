// What a ref given to staging names (a branch, a tag, a pull request, a sha), how it is found among the refs
// the remote advertises, and how staging remembers what it added (refs/staging-heads/<ref>). Pure: no git,
// no network; unit-tested on plain values.
import { OpsError } from '../errors.ts';
import { gitAllowsRef, isValid, validate } from '../shell.ts';
import type { PullRequest } from '../github.ts';
import { ambiguousRef } from '../source.ts';

/** Where staging remembers which head of each ref it took in: refs/staging-heads/<ref without "refs/">. */
export const TRACKING_PREFIX = 'refs/staging-heads/';

/** A commit sha or its prefix, in either case as git reads one (resolveSource looks it up in lower case). */
export const SHA = /^[0-9a-f]{7,40}$/i;

export const FULL_SHA = /^[0-9a-f]{40}$/;

/** What a user-given ref names, before asking the remote. */
export type RefRequest =
  | { kind: 'pull'; input: string; number: number; remoteRef: string }
  | { kind: 'ref'; input: string; remoteRef: string } // refs/heads/x or refs/tags/x, spelled in full
  | { kind: 'name'; input: string; candidates: string[] } // "x": a branch or a tag (both: ambiguous), else (if hex) a commit
  | { kind: 'sha'; input: string };

/** Parse the `ref` input: a branch, tag, pull request (pull/12, refs/pull/12/head, #12) or commit sha. */
export function parseRef(input: string): RefRequest {
  const pr = /^(?:#|(?:refs\/)?pull\/)(\d{1,9})(?:\/(?:head|merge))?$/.exec(input);
  if (pr) return { kind: 'pull', input, number: Number(pr[1]), remoteRef: `refs/pull/${Number(pr[1])}/head` };
  try {
    validate('gitRef', input, 'ref');
  } catch (e) {
    // git allows more in a branch name (é, #, @, a leading "-", over 200 characters) than we pass on: its pull
    // request or its commit still works. Anything else keeps validate's hint (white space around it, git's
    // revision syntax such as feature/a~1: give the commit it names).
    const { message, hint } = e as OpsError;
    throw new OpsError(
      message,
      gitAllowsRef(input)
        ? 'git allows this name, ops takes refs of ASCII letters, digits and . _ / + - (no leading "-", at most 200 characters): add it by its pull request (pull/12), remembered as a branch is, or by its commit sha'
        : hint,
    );
  }
  if (/^refs\/(heads|tags)\/./.test(input)) return { kind: 'ref', input, remoteRef: input };
  if (input.startsWith('refs/')) {
    throw new OpsError(`unsupported ref ${JSON.stringify(input)}`, 'give a branch, a tag, a pull request (pull/12) or a commit sha');
  }
  // A full sha in capitals is that commit too (git's object names are lower case: fetched and recorded so).
  if (/^[0-9a-f]{40}$/i.test(input)) return { kind: 'sha', input: input.toLowerCase() };
  return { kind: 'name', input, candidates: [`refs/heads/${input}`, `refs/tags/${input}`] };
}

/** A resolved source: the commit to bring in, and (for refs) the key its head is remembered under. */
export interface Source {
  /** How people call it: "feature/x", "#12 (feature/x)", "v1.2", "1a2b3c4". */
  display: string;
  /** The remote ref it was read from (refs/heads/x, refs/pull/12/head, refs/tags/v1); for a bare sha, commitKey (no ref of the remote). */
  key?: string;
  sha: string;
  pull?: PullInfo;
}

export interface PullInfo {
  number: number;
  title: string;
  url: string;
  /** The head branch (in the pull request's head repository). */
  branch: string;
}

/**
 * Pick the remote ref a request means, given the refs the remote has (name → commit sha).
 * A bare name is a branch or a tag (a name that is both is refused as ambiguous: say refs/heads/x or
 * refs/tags/x); a hex string that is neither is a commit.
 */
export function pickRemoteRef(request: RefRequest, remoteRefs: Map<string, string>, remote: string): string | 'sha' {
  switch (request.kind) {
    case 'pull':
    case 'ref':
      if (remoteRefs.has(request.remoteRef)) return request.remoteRef;
      throw new OpsError(
        `${request.remoteRef} does not exist on ${remote}`,
        request.kind === 'pull' ? 'check the pull request number (and that it is in this repository)' : `push it first (git push ${remote} ${request.input})`,
      );
    case 'sha':
      return 'sha';
    case 'name': {
      const found = request.candidates.filter((c) => remoteRefs.has(c));
      if (found.length > 1)
        throw ambiguousRef(
          request.input,
          found.map((c) => ({ kind: c.startsWith('refs/tags/') ? 'tag' : 'branch', fullName: c, sha: remoteRefs.get(c)! })),
        );
      if (found[0]) return found[0];
      if (SHA.test(request.input)) return 'sha';
      const remotePrefix = `${remote}/`;
      const hint = request.input.startsWith(remotePrefix)
        ? `name the branch without the remote: ${request.input.slice(remotePrefix.length)}`
        : `push the branch first (git push ${remote} ${request.input}), or check its spelling`;
      throw new OpsError(`no branch or tag ${JSON.stringify(request.input)} on ${remote}`, hint);
    }
  }
}

/**
 * The key an add by bare sha is remembered under (refs/commits/<sha>: no ref of the remote, a name for the record
 * alone): so a rebuild names it among what it drops, as it names a branch added by hand, instead of taking its
 * commits for ones pushed to staging by hand, and an add no longer warns of them as brought by no add.
 */
export const commitKey = (sha: string): string => `refs/commits/${sha}`;

/** How a ref is named for people, from its remote ref: refs/heads/x → x, refs/pull/12/head → #12, refs/commits/<sha> → its first 12 digits. */
export function displayName(key: string): string {
  const pr = /^refs\/pull\/(\d+)\/head$/.exec(key);
  if (pr) return `#${pr[1]}`;
  const commit = /^refs\/commits\/([0-9a-f]{40})$/.exec(key);
  if (commit) return commit[1]!.slice(0, 12);
  return key.replace(/^refs\/(heads|tags)\//, '');
}

/** A remote ref staging remembers: refs/heads/<valid name>, refs/tags/<valid name> or refs/pull/<n>/head; or a commit added by its sha (commitKey). */
export function isTrackable(key: string): boolean {
  if (/^refs\/pull\/\d{1,9}\/head$/.test(key) || /^refs\/commits\/[0-9a-f]{40}$/.test(key)) return true;
  const m = /^refs\/(?:heads|tags)\/(.+)$/.exec(key);
  return Boolean(m && isValid('gitRef', m[1]!));
}

/** The ref that remembers what staging took of `key` (refs/heads/x → refs/staging-heads/heads/x). */
export function trackingRef(key: string): string {
  return TRACKING_PREFIX + key.replace(/^refs\//, '');
}

/** The remote ref a tracking ref remembers, or undefined for anything that is not one. */
export function keyOfTrackingRef(ref: string): string | undefined {
  if (!ref.startsWith(TRACKING_PREFIX)) return undefined;
  const key = `refs/${ref.slice(TRACKING_PREFIX.length)}`;
  return isTrackable(key) ? key : undefined;
}

interface EventPull {
  number?: number;
  title?: string;
  html_url?: string;
  head?: { ref?: string; sha?: string; repo?: { full_name?: string } | null };
}

/**
 * The ref a triggering pull-request event names (pullHeadRef: its branch, else refs/pull/N/head, as a rebuild
 * would), with the pull request for messages, and `sha`: the head commit the event saw (`pull_request.head.sha`).
 * A label approves that commit, not the branch: the run may start long after (queued behind a deploy), when the
 * branch has newer commits nobody approved, so the add takes exactly `sha` (AddOptions.at). An event without a
 * full sha is refused: adding the branch as it is then would be what the label did not approve.
 */
export function refFromEvent(payload: unknown, repository: string | undefined): { ref: string; sha: string; pull: PullInfo } | undefined {
  const pr = (payload as { pull_request?: EventPull } | undefined)?.pull_request;
  if (!pr || typeof pr.number !== 'number') return undefined;
  const sha = pr.head?.sha ?? '';
  if (!FULL_SHA.test(sha)) {
    throw new OpsError(`the event of pull request #${pr.number} names no head commit (pull_request.head.sha: ${JSON.stringify(sha)})`, `add it by hand once read: mode add, ref pull/${pr.number}`);
  }
  const branch = pr.head?.ref ?? '';
  const same = Boolean(repository && pr.head?.repo?.full_name?.toLowerCase() === repository.toLowerCase());
  return { ref: pullHeadRef(pr.number, branch, same), sha, pull: { number: pr.number, title: pr.title ?? '', url: pr.html_url ?? '', branch: branch || `pull/${pr.number}` } };
}

export interface Wanted {
  request: RefRequest;
  pull?: PullRequest;
}

/** What messages and outputs say of a pull request. */
export const pullInfo = (pr: PullRequest): PullInfo => ({ number: pr.number, title: pr.title, url: pr.url, branch: pr.headRef });

/**
 * The ref a pull request is added by, the same from its event (add) and from the API (rebuild, converging), so
 * both remember it under one key: its branch when it lives in this repository and its name is one parseRef
 * takes, else refs/pull/N/head (a fork; a deleted fork; a branch named with characters git allows and we do
 * not pass on, such as feat/été or fix#12).
 */
export function pullHeadRef(number: number, branch: string, sameRepository: boolean): string {
  return sameRepository && branch && isValid('gitRef', branch) ? `refs/heads/${branch}` : `pull/${number}`;
}

/** How to fetch a pull request from the API's listing (pullHeadRef). */
export function pullRequestRef(pr: PullRequest): RefRequest {
  return parseRef(pullHeadRef(pr.number, pr.headRef, pr.sameRepository));
}

/** The remote refs to ask for, for these pull requests. */
export function requestedRefs(wanted: Wanted[]): string[] {
  return wanted.flatMap((w) => (w.request.kind === 'pull' || w.request.kind === 'ref' ? [w.request.remoteRef] : []));
}
