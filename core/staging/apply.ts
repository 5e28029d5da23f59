// Applying one source on top of a tip, locally (shared by add and rebuild): fast-forward, merge commit made
// with `git merge-tree --write-tree` and `git commit-tree` (no checkout, no index), or a refusal that says why
// (a conflict, with the staging commits that touch the files; a branch rewritten since it was added).
import { Git, GitError } from '../git.ts';
import { OpsError } from '../errors.ts';
import { type AddOutcome, type Moved, StagingRefusal, short } from './messages.ts';
import { type AddedRecord, HEAD_TRAILER, decideAdd, mergeMessage } from './plan.ts';
import { FULL_SHA, type Source, displayName } from './refs.ts';
import type { StagingContext } from './settings.ts';

/** `git log --oneline` of `revs` (limited to `paths`), at most `max` lines, merges left out. */
export async function oneline(git: Git, revs: string[], paths: string[] = [], max = 20): Promise<string[]> {
  const out = await git.out(['--literal-pathspecs', 'log', '--no-merges', `--max-count=${max}`, '--format=%h %s', ...revs, '--', ...paths]);
  return out.split('\n').filter(Boolean);
}

/**
 * `git log --oneline` of `revs` as oneline gives it, merges included but the ones staging made (a Staging-Head
 * trailer naming one of their parents: a rebuild makes them again, or names their ref as dropped): a merge pushed to
 * staging by hand holds work of its own (a conflict resolution). At most `max` lines, newest first.
 */
export async function unmadeCommits(git: Git, revs: string[], max = 20): Promise<string[]> {
  const out = await git.out(['log', `--format=%h %s%x1f%P%x1f%(trailers:key=${HEAD_TRAILER},valueonly,separator=%x1d)%x1e`, ...revs, '--']);
  const lines: string[] = [];
  for (const entry of out.split('\x1e')) {
    const [line = '', parents = '', heads = ''] = entry.replace(/^\n+/, '').split('\x1f');
    if (!line.trim()) continue;
    const merged = parents.trim().split(/\s+/).slice(1);
    if (merged.length && heads.split('\x1d').some((h) => merged.includes(h.trim()))) continue;
    lines.push(line);
    if (lines.length >= max) break;
  }
  return lines;
}

/**
 * The source pinned to `at`, an approved commit of it (the head a label approved, or the head staging recorded
 * for it), and what the ref has beyond it (`moved`, undefined when the ref is still at `at`). Fetches `at` by sha
 * when it is not here (GitHub serves any commit it still has), so a ref rewritten since still gives it.
 * @throws StagingRefusal ('missing') when the commit cannot be found; OpsError for a malformed sha.
 */
export async function pinSource(ctx: StagingContext, source: Source, at: string): Promise<{ source: Source; moved?: Moved }> {
  if (!FULL_SHA.test(at)) throw new OpsError(`invalid commit to add: ${JSON.stringify(at)}`, 'give a full 40-character commit sha');
  if (source.sha === at) return { source };
  const { git } = ctx;
  if (!(await git.commit(at))) await git.run(['fetch', '--no-tags', '--no-write-fetch-head', '--quiet', ctx.settings.remote, `${at}:refs/ops-staging/at`]);
  if (!(await git.commit(at))) {
    throw new StagingRefusal('missing', `${source.display}: the commit to add, ${at}, is not on ${ctx.settings.remote} (${source.display} is at ${short(source.sha)} now); ${ctx.settings.staging} was not changed`, `read the pull request's new commits and label it again (or add a ref by hand)`);
  }
  const rewritten = !(await git.isAncestor(at, source.sha));
  const newer = rewritten ? [] : await oneline(git, [source.sha, `^${at}`]);
  return { source: { ...source, sha: at }, moved: { head: source.sha, newer, rewritten } };
}

/**
 * The commit staging took of a pull request's ref `key` (approvedHeads), also looking under refs/pull/<n>/head: a
 * pull request of this repository added by hand as pull/N is recorded there, by its label under its branch. When
 * both are recorded and differ, the later one (the descendant; else the branch's). Undefined when staging holds
 * neither.
 */
export async function approvedCommit(ctx: StagingContext, approved: Map<string, string>, key: string | undefined, pull?: number): Promise<string | undefined> {
  const byKey = key ? approved.get(key) : undefined;
  const byPull = pull !== undefined ? approved.get(`refs/pull/${pull}/head`) : undefined;
  if (!byKey || !byPull || byKey === byPull) return byKey ?? byPull;
  return (await ctx.git.isAncestor(byKey, byPull)) ? byPull : byKey;
}

/** Lines indented under a message. */
export const bullet = (lines: string[]) => lines.map((l) => `  ${l}`).join('\n');

async function rewrittenRefusal(ctx: StagingContext, source: Source, earlier: AddedRecord, main: string): Promise<StagingRefusal> {
  const { staging } = ctx.settings;
  const gone = await oneline(ctx.git, [earlier.head, `^${source.sha}`, `^${main}`]);
  const instead = await oneline(ctx.git, [source.sha, `^${earlier.head}`, `^${main}`]);
  const message = [
    `${source.display} was rewritten since it was added to ${staging}: the head added then, ${short(earlier.head)}, is no longer part of it (rebased, amended, reset or force-pushed). ${staging} was not changed.`,
    `In ${staging}, but no longer in ${source.display}:`,
    bullet(gone.length ? gone : [`(${short(earlier.head)} itself)`]),
    ...(instead.length ? [`In ${source.display} now instead:`, bullet(instead)] : []),
  ].join('\n');
  const hint =
    `${staging} keeps what was added. Either bring the branch back to ${short(earlier.head)} and push new commits on top ` +
    `(revert or fix-up commits instead of rewriting), or rebuild ${staging} (\`ops staging rebuild\`, or wait for the scheduled rebuild): ` +
    `it starts again from ${ctx.settings.main} and re-applies the labelled pull requests.`;
  return new StagingRefusal('rewritten', message, hint);
}

async function conflictRefusal(ctx: StagingContext, source: Source, base: string, main: string, files: string[], records: AddedRecord[]): Promise<StagingRefusal> {
  const { staging } = ctx.settings;
  const withMain = await ctx.git.run(['merge-tree', '--write-tree', '--name-only', '--no-messages', main, source.sha]);
  const touching = await oneline(ctx.git, [base, `^${main}`, `^${source.sha}`], files, 10);
  // Of those, the ones no add brought (an add's commits are reachable from the head it recorded).
  const unadded = touching.length ? await oneline(ctx.git, [base, `^${main}`, `^${source.sha}`, ...records.map((r) => `^${r.head}`)], files, 10) : [];
  // Which refs staging holds brought those commits: the ones whose recorded head changes the files since main.
  const by: string[] = [];
  if (touching.length && !unadded.length && withMain.code !== 1) {
    for (const r of records) {
      const name = displayName(r.key);
      if (r.key !== source.key && !by.includes(name) && (await oneline(ctx.git, [r.head, `^${main}`, `^${source.sha}`], files, 1)).length) by.push(name);
    }
  }
  const message = [
    `${source.display} (${short(source.sha)}) conflicts with ${staging} (${short(base)}) in ${files.length} file${files.length === 1 ? '' : 's'}; ${staging} was not changed:`,
    bullet(files),
    ...(touching.length ? [`Commits in ${staging} (not in ${ctx.settings.main}) that change ${files.length === 1 ? 'it' : 'them'}:`, bullet(touching)] : []),
    ...(by.length ? [`They came with ${by.join(', ')}, added to ${staging} before.`] : []),
  ].join('\n');
  const hint =
    withMain.code === 1
      ? `it conflicts with ${ctx.settings.main} itself: merge or rebase ${ctx.settings.main} into ${source.display} and resolve, then add it again`
      : unadded.length
        ? `the conflict is with commits in ${staging} that no staging add brought (${unadded.map((l) => l.split(' ')[0]).join(', ')}: pushed to ${staging} by hand, or ${ctx.settings.main}'s before it was rewritten): rebuild ${staging} (\`ops staging rebuild\`) to start again from ${ctx.settings.main}, after putting on a branch any of them worth keeping`
        : `the conflict is with work already in ${staging}, not with ${ctx.settings.main}${by.length ? ` (${by.join(', ')})` : ''}: ` +
          `coordinate with ${by.length === 1 ? 'that branch' : by.length ? 'those branches' : 'the branch that made the commits above'}, or rebuild ${staging} once ${by.length > 1 ? 'they are' : 'it is'} gone`;
  return new StagingRefusal('conflict', message, hint, files);
}

export interface LocalResult {
  outcome: AddOutcome;
  sha: string;
}

/**
 * Committer times (seconds since the epoch) of commits, for the dates of merges: read for all of them in one git
 * process (`times` is filled: those known are not asked again), so a rebuild of many pull requests asks once,
 * not once per merge. @returns `times`.
 */
export async function commitTimes(git: Git, shas: string[], times: Map<string, number> = new Map()): Promise<Map<string, number>> {
  const missing = [...new Set(shas)].filter((s) => !times.has(s));
  if (!missing.length) return times;
  const out = await git.out(['log', '--no-walk=unsorted', '--format=%H %ct', ...missing, '--']);
  for (const line of out.split('\n')) {
    const [sha, ct] = line.split(' ');
    if (sha && ct) times.set(sha, Number(ct));
  }
  return times;
}

/**
 * Bring `source` into `base` without touching any ref or working tree; throw StagingRefusal when it must not.
 * `times`: committer times known already (commitTimes), the merge made here added to them.
 */
export async function applyLocally(ctx: StagingContext, base: string, main: string, source: Source, records: AddedRecord[], times: Map<string, number> = new Map()): Promise<LocalResult> {
  const { git } = ctx;
  const mine = source.key ? records.filter((r) => r.key === source.key) : [];
  const rewritten: AddedRecord[] = [];
  for (const r of mine) if (!(await git.isAncestor(r.head, source.sha))) rewritten.push(r);
  // Both questions in one git process: the merge base is the source itself when base holds it, base when the source
  // holds base (one merge base then: the other's ancestor), something else (or none: unrelated) otherwise.
  const mb = await git.run(['merge-base', '--all', base, source.sha]);
  if (mb.code !== 0 && mb.code !== 1) throw new GitError(['merge-base', '--all', base, source.sha], mb);
  const bases = mb.stdout.split('\n').filter(Boolean);
  const contained = bases.length === 1 && bases[0] === source.sha;
  const stagingIsAncestor = !contained && bases.length === 1 && bases[0] === base;
  switch (decideAdd({ rewritten, contained, stagingIsAncestor })) {
    case 'refuse-rewritten':
      throw await rewrittenRefusal(ctx, source, rewritten[0]!, main);
    case 'already-contained':
      return { outcome: 'already-contained', sha: base };
    case 'fast-forward':
      return { outcome: 'fast-forward', sha: source.sha };
    case 'merge': {
      const args = ['merge-tree', '--write-tree', '-z', '--name-only', '--no-messages', base, source.sha];
      const r = await git.run(args);
      const [tree = '', ...rest] = r.stdout.split('\0');
      if (r.code === 1) throw await conflictRefusal(ctx, source, base, main, [...new Set(rest.filter(Boolean))], records);
      if (r.code !== 0) throw new GitError(args, r, /unrelated/.test(r.stderr) ? `${source.display} shares no history with ${ctx.settings.staging}` : undefined);
      const message = mergeMessage(source, ctx.settings.staging);
      // Dated like the later of its parents: the same merge made again (a rebuild with nothing new) is the
      // same commit, so staging does not move and nothing is redeployed. The push records when it happened.
      await commitTimes(git, [base, source.sha], times);
      const known = [times.get(base), times.get(source.sha)];
      // (a name git printed otherwise, such as a tag's: asked as before, the later of the two)
      const epoch = known.every((t) => t !== undefined && Number.isFinite(t)) ? Math.max(...(known as number[])) : Number(await git.out(['log', '--no-walk=sorted', '-1', '--format=%ct', base, source.sha]));
      const date = `${epoch} +0000`;
      const sha = await git.out(['commit-tree', '--no-gpg-sign', tree.trim(), '-p', base, '-p', source.sha, ...message.flatMap((m) => ['-m', m])], {
        env: { GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date },
      });
      times.set(sha, epoch);
      return { outcome: 'merge', sha };
    }
  }
}
