// The pure half of staging: what a ref names, what to do with it, how a merge is recorded, and how results
// are told (log lines, job summary, pull-request comment). No git, no network: everything here is unit-tested
// on plain values; core/staging.ts gathers the facts with git and acts on the decisions.
import { OpsError } from './errors.ts';
import { isValid, validate } from './shell.ts';
import { ambiguousRef } from './source.ts';

/** Where staging remembers which head of each ref it took in: refs/staging-heads/<ref without "refs/">. */
export const TRACKING_PREFIX = 'refs/staging-heads/';
/** Trailers written into every merge commit staging makes. */
export const REF_TRAILER = 'Staging-Ref';
export const HEAD_TRAILER = 'Staging-Head';
/** Marks the pull-request comment this tool writes (so the next run updates it instead of adding one). */
export const COMMENT_MARKER = '<!-- ops-pipeline:staging-sync -->';

const SHA = /^[0-9a-f]{7,40}$/;
const FULL_SHA = /^[0-9a-f]{40}$/;

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
  validate('gitRef', input, 'ref');
  if (/^refs\/(heads|tags)\/./.test(input)) return { kind: 'ref', input, remoteRef: input };
  if (input.startsWith('refs/')) {
    throw new OpsError(`unsupported ref ${JSON.stringify(input)}`, 'give a branch, a tag, a pull request (pull/12) or a commit sha');
  }
  if (FULL_SHA.test(input)) return { kind: 'sha', input };
  return { kind: 'name', input, candidates: [`refs/heads/${input}`, `refs/tags/${input}`] };
}

/** A resolved source: the commit to bring in, and (for refs) the key its head is remembered under. */
export interface Source {
  /** How people call it: "feature/x", "#12 (feature/x)", "v1.2", "1a2b3c4". */
  display: string;
  /** The remote ref it was read from (refs/heads/x, refs/pull/12/head, refs/tags/v1); absent for a bare sha. */
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

/** How a ref is named for people, from its remote ref: refs/heads/x → x, refs/pull/12/head → #12. */
export function displayName(key: string): string {
  const pr = /^refs\/pull\/(\d+)\/head$/.exec(key);
  if (pr) return `#${pr[1]}`;
  return key.replace(/^refs\/(heads|tags)\//, '');
}

/** A remote ref staging remembers: refs/heads/<valid name>, refs/tags/<valid name> or refs/pull/<n>/head. */
export function isTrackable(key: string): boolean {
  if (/^refs\/pull\/\d{1,9}\/head$/.test(key)) return true;
  const m = /^refs\/(?:heads|tags)\/(.+)$/.exec(key);
  return Boolean(m && isValid('gitRef', m[1]!));
}

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
  head?: { ref?: string; repo?: { full_name?: string } | null };
}

/**
 * The ref a triggering pull-request event names (its branch when it lives in this repository, else
 * refs/pull/N/head, as a rebuild would), with the pull request for messages.
 */
export function refFromEvent(payload: unknown, repository: string | undefined): { ref: string; pull: PullInfo } | undefined {
  const pr = (payload as { pull_request?: EventPull } | undefined)?.pull_request;
  if (!pr || typeof pr.number !== 'number') return undefined;
  const branch = pr.head?.ref ?? '';
  const same = repository && pr.head?.repo?.full_name?.toLowerCase() === repository.toLowerCase();
  const ref = same && branch ? `refs/heads/${branch}` : `pull/${pr.number}`;
  return { ref, pull: { number: pr.number, title: pr.title ?? '', url: pr.html_url ?? '', branch: branch || `pull/${pr.number}` } };
}

// ---------------------------------------------------------------------------------------------------------
// Deciding

/** A head of some ref that an earlier add took into staging (from a tracking ref or a merge trailer). */
export interface AddedRecord {
  key: string;
  head: string;
  via: 'tracking-ref' | 'trailer';
}

export interface AddFacts {
  /** Earlier recorded heads of this ref that are still in staging but no longer in the ref. */
  rewritten: AddedRecord[];
  /** The source commit is already reachable from staging. */
  contained: boolean;
  /** Staging is reachable from the source commit. */
  stagingIsAncestor: boolean;
}

export type AddDecision = 'refuse-rewritten' | 'already-contained' | 'fast-forward' | 'merge';

/**
 * The add decision. A rewritten ref is refused before anything else, even when its new head happens to be
 * contained: staging would keep commits the ref no longer has, and the next add would mix both histories.
 */
export function decideAdd(facts: AddFacts): AddDecision {
  if (facts.rewritten.length > 0) return 'refuse-rewritten';
  if (facts.contained) return 'already-contained';
  if (facts.stagingIsAncestor) return 'fast-forward';
  return 'merge';
}

/** The merge commit message: a subject naming the ref and sha, then trailers that record what was added. */
export function mergeMessage(source: Source, staging: string): string[] {
  const short = source.sha.slice(0, 12);
  const what = source.pull ? `pull request #${source.pull.number} (${source.pull.branch})` : source.display;
  const subject = `Merge ${what} at ${short} into ${staging}`;
  const body = source.pull ? [`${source.pull.title}\n${source.pull.url}`] : [];
  const trailers = [...(source.key ? [`${REF_TRAILER}: ${source.key}`] : []), `${HEAD_TRAILER}: ${source.sha}`].join('\n');
  return [subject, ...body, trailers];
}

/** One commit of `git log` with the staging trailers: "<sha>\x1f<parents>\x1f<refs>\x1f<heads>\x1e". */
export interface LoggedCommit {
  sha: string;
  parents: string[];
  refs: string[];
  heads: string[];
}

export const LOG_FORMAT = `%H%x1f%P%x1f%(trailers:key=${REF_TRAILER},valueonly,separator=%x1d)%x1f%(trailers:key=${HEAD_TRAILER},valueonly,separator=%x1d)%x1e`;

export function parseLog(output: string): LoggedCommit[] {
  return output
    .split('\x1e')
    .map((e) => e.replace(/^\n+/, ''))
    .filter((e) => e.trim() !== '')
    .map((e) => {
      const [sha = '', parents = '', refs = '', heads = ''] = e.split('\x1f');
      const list = (s: string) =>
        s
          .split('\x1d')
          .map((v) => v.trim())
          .filter(Boolean);
      return { sha: sha.trim(), parents: parents.trim().split(/\s+/).filter(Boolean), refs: list(refs), heads: list(heads) };
    });
}

/** Records from merge trailers: a merge that names a ref and a head recorded that head for that ref. */
export function trailerRecords(commits: LoggedCommit[]): AddedRecord[] {
  const out: AddedRecord[] = [];
  for (const c of commits) {
    if (c.parents.length < 2) continue;
    const key = c.refs[0];
    const head = c.heads[0];
    // The trailer must agree with the merge itself (its head is the commit that was merged in), and name a
    // ref this tool could have added: the key may become a ref name (refs/staging-heads/...) later.
    if (key && head && FULL_SHA.test(head) && c.parents.slice(1).includes(head) && isTrackable(key)) out.push({ key, head, via: 'trailer' });
  }
  return out;
}

/** Records without duplicates (same key and head from a ref and a trailer count once). */
export function uniqueRecords(records: AddedRecord[]): AddedRecord[] {
  const seen = new Set<string>();
  return records.filter((r) => {
    const id = `${r.key} ${r.head}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/**
 * After a rebuild lost its lease: which of the commits that arrived in staging meanwhile (not in master)
 * would a retry lose? Commits reachable from a carried head are re-applied; merge commits whose trailer
 * names a carried head are the carrying merges themselves. Anything else is someone's direct push.
 */
export function uncoveredCommits(arrived: LoggedCommit[], carriedHeads: Set<string>): LoggedCommit[] {
  return arrived.filter((c) => !(c.parents.length > 1 && c.heads.some((h) => carriedHeads.has(h))));
}

/** A hint for a refused push, from git's stderr. */
export function pushHint(stderr: string, branch: string): string | undefined {
  if (/without `?workflows`? permission/i.test(stderr)) {
    return 'the change touches .github/workflows, which the workflow GITHUB_TOKEN may not push: use a GitHub App or fine-grained token with the "workflows" permission as github-token (and in actions/checkout)';
  }
  if (/protected branch|GH006|pre-receive hook declined/i.test(stderr)) {
    return `${branch} is protected against this push: allow the pipeline's token to push to ${branch} (branch protection or rulesets)`;
  }
  if (/authentication|permission denied|403|could not read username/i.test(stderr)) {
    return 'the push was not authorised: on a runner, give the job `permissions: contents: write` and keep actions/checkout\'s persisted credentials; on a laptop, check your git credentials for the remote';
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Telling

export type AddOutcome = 'fast-forward' | 'merge' | 'already-contained';

export interface Applied {
  source: Source;
  outcome: AddOutcome;
  /** Staging after this source. */
  sha: string;
}

export type SkipReason = 'conflict' | 'rewritten' | 'missing';

export interface Skipped {
  source: Source;
  reason: SkipReason;
  message: string;
  files?: string[];
}

export interface AddResult extends Applied {
  before?: string;
  changed: boolean;
  /** Staging did not exist and was created from the main branch. */
  created: boolean;
  attempts: number;
  dryRun: boolean;
  /** Open labelled pull requests staging lacked, brought in by the same run (a cancelled run's work). */
  alsoAdded: Applied[];
  /** Labelled pull requests that do not apply (left for the rebuild, which comments on them). */
  skipped: Skipped[];
  /** Why the labelled pull requests were not checked (no token, API down); undefined when they were. */
  pullsUnavailable?: string;
}

export interface RebuildResult {
  before?: string;
  after: string;
  main: string;
  changed: boolean;
  added: Applied[];
  skipped: Skipped[];
  /** Refs that were in staging before the rebuild and are not in it now. */
  dropped: string[];
  /** Why labelled pull requests were not re-applied (no token, API unreachable...); undefined when they were. */
  pullsUnavailable?: string;
  /** What moved staging while the rebuild ran, and was carried into the result. */
  carried: string[];
  attempts: number;
  dryRun: boolean;
  comments: { number: number; result: string }[];
}

export const short = (sha: string | undefined): string => (sha ? sha.slice(0, 7) : '(none)');

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/[\r\n]+/g, ' ');
}

const OUTCOME: Record<AddOutcome, string> = {
  'fast-forward': 'fast-forward',
  merge: 'merge commit',
  'already-contained': 'already contained',
};

export function describeAdd(r: AddResult, staging: string): string {
  const would = r.dryRun ? 'would be ' : '';
  if (r.outcome === 'already-contained') return `${r.source.display} (${short(r.source.sha)}) is already contained in ${staging} (${short(r.sha)}): nothing to do`;
  const created = r.created ? ` (${staging} did not exist: ${would || ''}created from the main branch)` : '';
  return `${r.source.display} (${short(r.source.sha)}) ${would}added to ${staging} by ${OUTCOME[r.outcome]}: ${short(r.before)} → ${short(r.sha)}${created}`;
}

export function addSummary(r: AddResult, names: { staging: string; label: string }): string {
  const lines = [`### ${r.dryRun ? 'Dry run: ' : ''}staging sync: add ${cell(r.source.display)}`, '', describeAdd(r, names.staging).replace(/\b([0-9a-f]{7})\b/g, '`$1`'), ''];
  if (r.alsoAdded.length || r.skipped.length) {
    lines.push(`Open pull requests labelled \`${cell(names.label)}\` that ${names.staging} lacked (a cancelled run's work):`, '', '| Source | Head | Result |', '| --- | --- | --- |');
    for (const a of r.alsoAdded) lines.push(`| ${sourceCell(a.source)} | \`${short(a.source.sha)}\` | ${OUTCOME[a.outcome]} |`);
    for (const s of r.skipped) lines.push(`| ${sourceCell(s.source)} | \`${short(s.source.sha)}\` | **skipped** (${s.reason}) |`);
    lines.push('');
  }
  if (r.pullsUnavailable) lines.push(`> **Warning**: other pull requests labelled \`${cell(names.label)}\` were **not checked**: ${cell(r.pullsUnavailable)}.`, '');
  return lines.join('\n');
}

function sourceCell(s: Source): string {
  return s.pull ? `[#${s.pull.number}](${s.pull.url}) ${cell(s.pull.title)}` : `\`${cell(s.display)}\``;
}

export function rebuildSummary(r: RebuildResult, names: { main: string; staging: string; label: string }): string {
  const lines = [
    `### ${r.dryRun ? 'Dry run: ' : ''}staging sync: rebuild ${names.staging} from ${names.main}`,
    '',
    `\`${names.staging}\`: \`${short(r.before)}\` → \`${short(r.after)}\` (${names.main} at \`${short(r.main)}\`)${r.changed ? '' : ' — unchanged'}`,
    '',
  ];
  if (r.pullsUnavailable) {
    lines.push(`> **Warning**: pull requests labelled \`${cell(names.label)}\` were **not re-applied**: ${cell(r.pullsUnavailable)}.`, `> ${names.staging} is now ${names.main}${r.carried.length ? ' plus what was carried over (below)' : ''}; add them back with \`ops staging add pull/<number>\` or re-run with API access.`, '');
  }
  if (r.added.length || r.skipped.length) {
    lines.push('| Source | Head | Result |', '| --- | --- | --- |');
    for (const a of r.added) lines.push(`| ${sourceCell(a.source)} | \`${short(a.source.sha)}\` | ${OUTCOME[a.outcome]} |`);
    for (const s of r.skipped) {
      const files = s.files?.length ? `: ${s.files.slice(0, 10).map((f) => `\`${cell(f)}\``).join(', ')}${s.files.length > 10 ? ', …' : ''}` : '';
      lines.push(`| ${sourceCell(s.source)} | \`${short(s.source.sha)}\` | **skipped** (${s.reason}${files}) |`);
    }
    lines.push('');
  } else if (!r.pullsUnavailable) {
    lines.push(`No open pull request carries the label \`${cell(names.label)}\`.`, '');
  }
  if (r.carried.length) lines.push(`Pushed to ${names.staging} while the rebuild ran, and carried over: ${r.carried.map((c) => `\`${cell(c)}\``).join(', ')}.`, '');
  if (r.dropped.length) lines.push(`No longer in ${names.staging}: ${r.dropped.map((d) => `\`${cell(d)}\``).join(', ')}.`, '');
  if (r.comments.length) lines.push(`Comments: ${r.comments.map((c) => `#${c.number} ${c.result}`).join(', ')}.`, '');
  return lines.join('\n');
}

export function skippedComment(s: Skipped, names: { main: string; staging: string; label: string }, runUrl?: string): string {
  const when = runUrl ? `[the rebuild of \`${names.staging}\`](${runUrl})` : `the rebuild of \`${names.staging}\``;
  const lines = [
    COMMENT_MARKER,
    `**Not in \`${names.staging}\`**: ${when} (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC) could not re-apply this pull request at \`${short(s.source.sha)}\`.`,
    '',
    '```',
    s.message,
    '```',
    '',
  ];
  if (s.reason === 'conflict') {
    lines.push(`It conflicts with \`${names.main}\` or with another pull request labelled \`${names.label}\` that was applied before it (oldest first). Resolve the conflict on this branch (merge or rebase \`${names.main}\`), or coordinate with the other pull request; the next rebuild tries again.`);
  } else if (s.reason === 'missing') {
    lines.push('Its head could not be fetched. Check that the branch still exists.');
  } else {
    lines.push('Push new commits instead of rewriting the branch, or wait for the next rebuild.');
  }
  lines.push('', `<sub>Written by ops-pipeline staging-sync; remove the \`${names.label}\` label to stop re-applying this pull request.</sub>`);
  return lines.join('\n');
}

/** A refusal that leaves staging untouched: conflicts, rewritten history, a missing ref. Rebuild skips these. */
export class StagingRefusal extends OpsError {
  override name = 'StagingRefusal';
  constructor(
    readonly reason: SkipReason,
    message: string,
    hint: string,
    readonly files: string[] = [],
  ) {
    super(message, hint);
  }
}
