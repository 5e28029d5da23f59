// What staging does with a ref, decided from facts gathered with git: refuse (rewritten), nothing (already
// contained), fast-forward or merge; how a merge commit records what it brings (trailers) and how those
// records are read back. Pure: no git, no network.
import { FULL_SHA, type Source, isTrackable } from './refs.ts';

/** Trailers written into every merge commit staging makes. */
export const REF_TRAILER = 'Staging-Ref';

export const HEAD_TRAILER = 'Staging-Head';

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

/**
 * A pull request's title as a merge commit quotes it, its skip instructions ([skip ci], [ci skip], [no ci],
 * [skip actions], [actions skip]: GitHub runs no push workflow for a commit whose message holds one) in
 * parentheses: a title saying not to run CI on the pull request's own commits would skip staging's CI.
 */
export function withoutSkipCi(title: string): string {
  return title.replace(/\[(\s*(?:skip|no)\s+(?:ci|actions)|\s*(?:ci|actions)\s+skip)\s*\]/gi, '($1)');
}

/** The merge commit message: a subject naming the ref and sha, then trailers that record what was added. */
export function mergeMessage(source: Source, staging: string): string[] {
  const short = source.sha.slice(0, 12);
  const what = source.pull ? `pull request #${source.pull.number} (${source.pull.branch})` : source.display;
  const subject = `Merge ${what} at ${short} into ${staging}`;
  const body = source.pull ? [`${withoutSkipCi(source.pull.title)}\n${source.pull.url}`] : [];
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

/**
 * Commits as `git log --format=${LOG_FORMAT}` prints them: sha, parents, and the Staging-Ref/Staging-Head
 * trailers.
 */
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
 * The head staging last took of each ref (key → head), from the records of what staging holds: the commit an add
 * approved (a label's commit, or the ref's head when it was added by hand), which a rebuild re-applies instead of
 * the ref's head now. A tracking ref (updated by every add) wins over trailers; among trailers the first one, as
 * `git log` lists them newest first. `records` as recordsAt returns them (trailers first, newest first).
 */
export function approvedHeads(records: AddedRecord[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of records) if (r.via === 'tracking-ref') out.set(r.key, r.head);
  for (const r of records) if (r.via === 'trailer' && !out.has(r.key)) out.set(r.key, r.head);
  return out;
}

/**
 * After a rebuild lost its lease: which of the commits that arrived in staging meanwhile (not in master)
 * would a retry lose? Commits reachable from a carried head are re-applied; merge commits whose trailer
 * names a carried head are the carrying merges themselves. Anything else is someone's direct push.
 */
export function uncoveredCommits(arrived: LoggedCommit[], carriedHeads: Set<string>): LoggedCommit[] {
  return arrived.filter((c) => !(c.parents.length > 1 && c.heads.some((h) => carriedHeads.has(h))));
}

/**
 * A hint for a refused push, from git's stderr. GitHub's refusals, as its git server words them: GH006 for a branch
 * protection rule, GH013 for a repository ruleset (each followed by the rule broken, e.g. "Cannot force-push to this
 * branch"; GitHub docs "About protected branches", "Available rules for rulesets").
 */
export function pushHint(stderr: string, branch: string): string | undefined {
  if (/without `?workflows`? permission/i.test(stderr)) {
    return 'the change touches .github/workflows, which the workflow GITHUB_TOKEN may not push: use a GitHub App or fine-grained token with the "workflows" permission as github-token (and in actions/checkout)';
  }
  const rules = /GH013|rule violations/i.test(stderr) ? 'a ruleset: Settings → Rules' : 'branch protection: Settings → Branches';
  if (/cannot force.push|force.push(es)? (is |are )?not allowed/i.test(stderr)) {
    // Adds never force (fast-forward or merge); a rebuild replaces staging, with a lease: it needs force pushes.
    return (
      `${branch} refuses force pushes (${rules}): a rebuild replaces ${branch} (a push with a lease, which protection counts as a force push; ` +
      `adds need none: they fast-forward or merge). Allow force pushes to ${branch} for the token the pipeline pushes with ` +
      `(branch protection: Allow force pushes, Specify who can force push; a ruleset: its bypass list, or drop Block force pushes from the rules on ${branch})`
    );
  }
  if (/protected branch|GH006|GH013|rule violations|pre-receive hook declined/i.test(stderr)) {
    return `${branch} is protected against this push (${rules}; the rule is named above): allow the pipeline's token to push to ${branch}`;
  }
  if (/authentication|permission denied|403|could not read username/i.test(stderr)) {
    return 'the push was not authorised: on a runner, give the job `permissions: contents: write` and keep actions/checkout\'s persisted credentials; on a laptop, check your git credentials for the remote';
  }
  return undefined;
}
