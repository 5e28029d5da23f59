// `staging rebuild`: staging again from main with every open labelled pull request re-applied (oldest first),
// pushed with --force-with-lease on the sha read at the start. A staging add that lands meanwhile is carried
// over; a direct push makes the rebuild stop without touching it. Pull requests that no longer apply are
// skipped, listed, and told so in a comment. A pull request staging already holds is re-applied at the commit
// staging took for it (recorded by its add: the labelled head), not at its head now: a label approves the commits
// it saw, and commits pushed since wait for a new label even when the label is still on (unlabel not run yet).
// With a token, a listing of the labelled pull requests that fails (or a repository it cannot name) stops the
// rebuild, staging untouched.
import { formatError, messageLine, OpsError } from '../errors.ts';
import type { GitHubAccess, PullRequest } from '../github.ts';
import { markdownMasks, maskedMarkdown } from '../report.ts';
import { applyLocally, approvedCommit, bullet, commitTimes, oneline, pinSource, unmadeCommits } from './apply.ts';
import { APPROVED, type Applied, COMMENT_MARKER, type Moved, type RebuildResult, type Skipped, StagingRefusal, describeMoved, lostCount, short, skippedComment } from './messages.ts';
import { type AddedRecord, LOG_FORMAT, approvedHeads, parseLog, uncoveredCommits, uniqueRecords } from './plan.ts';
import { type Source, type Wanted, displayName, pullInfo, pullRequestRef, requestedRefs, trackingRef } from './refs.ts';
import { type RefUpdate, backoff, clearLocal, movedSince, pushAtomic, readRemote, recordsAt, resolveSource } from './remote.ts';
import type { StagingContext } from './settings.ts';

export interface RebuildOptions {
  github: GitHubAccess;
  label: string;
  /** Comment on pull requests that could not be re-applied. */
  comment: boolean;
  /** Link to the workflow run, for comments. */
  runUrl?: string;
}

/**
 * Reset staging to main, re-apply the open pull requests carrying the label (oldest first) with the add
 * logic, each at the commit staging recorded for it when it has one (the approved head, read from staging before
 * the reset: refs/staging-heads/<ref>, else the Staging-Head trailer; a newer head is left out and said, as
 * `moved` and a warning), else at its head, and push the result once, with a lease on the staging sha read at the start. Staging is never
 * visible half-rebuilt. A push that raced in is carried over when it came from an add (its record says
 * which ref and head), and makes the rebuild fail, staging untouched, when it did not.
 */
export async function rebuildStaging(ctx: StagingContext, options: RebuildOptions): Promise<RebuildResult> {
  const { staging, retries, remote } = ctx.settings;
  const { reporter } = ctx;
  let pulls: PullRequest[] = [];
  let pullsUnavailable = options.github.unavailable;
  // A token was given, so the labelled pull requests belong in staging: resetting without them would drop every
  // one (a nightly run in an outage, a wrong $GITHUB_REPOSITORY). Only a run without a token resets without them, said so.
  const keepStaging = (e: OpsError): never => {
    throw new OpsError(
      `${e.message}; ${staging} was left as it is: rebuilt now, it would lose every pull request labelled "${options.label}"`,
      `${e.hint ? `${e.hint}; ` : ''}${staging} keeps them until a rebuild can list them (to reset it to ${ctx.settings.main} without them on purpose, run the rebuild without a token)`,
    );
  };
  if (options.github.failed) keepStaging(options.github.failed);
  if (options.github.api) {
    try {
      pulls = await options.github.api.labelledPulls(options.label);
      reporter.info(`${pulls.length} open pull request${pulls.length === 1 ? '' : 's'} labelled "${options.label}"${pulls.length ? `: ${pulls.map((p) => `#${p.number}`).join(', ')}` : ''}`);
    } catch (e) {
      if (!(e instanceof OpsError)) throw e;
      keepStaging(e);
    }
  }
  if (pullsUnavailable) reporter.warn(`labelled pull requests will NOT be re-applied: ${pullsUnavailable}`);
  const wanted: Wanted[] = pulls.map((pull) => ({ request: pullRequestRef(pull), pull }));

  const carried = new Map<string, Source>(); // pushed by someone else while we ran, kept
  let firstRecords: AddedRecord[] | undefined;
  let firstBefore: string | undefined;
  try {
    for (let attempt = 1; ; attempt++) {
      const state = await readRemote(ctx, requestedRefs(wanted));
      if (attempt === 1) firstBefore = state.staging;
      const previous = state.staging ? await recordsAt(ctx, state.staging, state.main, state.tracking) : [];
      firstRecords ??= previous;

      // Resolve every source first; a pull request whose head cannot be read is skipped, not fatal. A pull request
      // staging already took is re-applied at the commit it took (approved: the labelled head, recorded in staging
      // before this reset), never at a newer head nobody approved (pushed since; the unlabel job may not have run).
      const approved = approvedHeads(previous);
      const sources: Source[] = [];
      const skipped: Skipped[] = [];
      const movedOn = new Map<Source, Moved>();
      for (const w of wanted) {
        const key = w.request.kind === 'pull' || w.request.kind === 'ref' ? w.request.remoteRef : undefined;
        const at = await approvedCommit(ctx, approved, key, w.pull?.number);
        let s: Source;
        try {
          s = await resolveSource(ctx, w.request, state, w.pull && pullInfo(w.pull));
        } catch (e) {
          if (!(e instanceof OpsError)) throw e;
          const source: Source = { display: w.pull ? `#${w.pull.number} (${w.pull.headRef})` : w.request.input, sha: w.pull?.headSha ?? '', pull: w.pull && pullInfo(w.pull) };
          if (!at) {
            skipped.push({ source, reason: 'missing', message: e.message });
            continue;
          }
          // Its branch is gone, but staging holds the approved commit: re-apply that.
          s = { ...source, key, sha: at };
          reporter.warn(`${s.display}: its branch could not be read (${messageLine(e)}); re-applying the commit ${staging} took, ${short(at)}`);
        }
        if (at && at !== s.sha && s.key === key) {
          try {
            const pinned = await pinSource(ctx, s, at);
            if (pinned.moved?.rewritten) {
              // Rewritten (rebased, amended) since staging took it: the approved commit is no longer part of the pull
              // request, and an add of the new head is refused as rewritten, telling to rebuild. Pinned here, it
              // could never come back: its current head is applied (the label is on it), saying so.
              reporter.warn(`${s.display} was rewritten since ${staging} took ${short(at)}: applying its current head, ${short(s.sha)} (labelled)`);
            } else s = pinned.source;
            if (pinned.moved && !pinned.moved.rewritten) {
              movedOn.set(s, pinned.moved);
              reporter.warn(describeMoved({ source: s, moved: pinned.moved }, staging, APPROVED)!);
            }
          } catch (e) {
            if (!(e instanceof StagingRefusal)) throw e;
            skipped.push({ source: { ...s, sha: at }, reason: e.reason, message: e.message });
            reporter.warn(`${s.display} skipped: ${messageLine(e)}`);
            continue;
          }
        }
        if (!sources.some((o) => o.key && o.key === s.key)) sources.push(s);
      }
      for (const c of carried.values()) if (!sources.some((s) => s.key === c.key)) sources.push(c);

      let tip = state.main;
      const added: Applied[] = [];
      const records: AddedRecord[] = [];
      // the dates of the merges to make, from their parents' (master's, each source's): asked in one git process
      const times = await commitTimes(ctx.git, [state.main, ...sources.map((x) => x.sha)]);
      for (const source of sources) {
        try {
          const r = await applyLocally(ctx, tip, state.main, source, records, times);
          tip = r.sha;
          const moved = movedOn.get(source);
          added.push({ source, outcome: r.outcome, sha: r.sha, ...(moved && { moved }) });
          if (source.key && r.outcome !== 'already-contained') records.push({ key: source.key, head: source.sha, via: 'tracking-ref' });
          reporter.info(`${source.display} (${short(source.sha)}): ${r.outcome}`);
        } catch (e) {
          if (!(e instanceof StagingRefusal)) throw e;
          const moved = movedOn.get(source);
          skipped.push({ source, reason: e.reason, message: e.message, files: e.files, ...(moved && { moved }) });
          reporter.warn(`${source.display} (${short(source.sha)}) skipped: ${messageLine(e)}`);
        }
      }

      // The tracking refs staging should have afterwards: exactly the heads added by this rebuild.
      const desired = new Map(records.map((r) => [r.key, r.head]));
      const updates: RefUpdate[] = [{ ref: `refs/heads/${staging}`, sha: tip, lease: state.staging ?? '' }];
      for (const [key, head] of desired) if (state.tracking.get(key) !== head) updates.push({ ref: trackingRef(key), sha: head, lease: state.tracking.get(key) ?? '' });
      for (const [key, head] of state.tracking) if (!desired.has(key)) updates.push({ ref: trackingRef(key), sha: null, lease: head });

      // Commits only staging had, which this push drops: not in the result, not in main, not from any add
      // (an add's commits are on the branch it came from). Said, never silent: a hand push or a main since rewritten,
      // and a merge made by hand (a conflict resolution), not only the commits it brought.
      const fromAdds = uniqueRecords([...(firstRecords ?? []), ...previous]).map((r) => `^${r.head}`);
      const onlyStaging = state.staging ? await unmadeCommits(ctx.git, [state.staging, `^${tip}`, `^${state.main}`, ...fromAdds]) : [];
      if (onlyStaging.length) {
        const verb = ctx.settings.dryRun ? 'would be' : onlyStaging.length === 1 ? 'is' : 'are';
        reporter.warn(
          `${lostCount(onlyStaging)} only ${staging} had ${verb} dropped (pushed to ${staging} by hand, or from ${ctx.settings.main} before it was rewritten):\n${bullet(onlyStaging)}\n` +
            `to keep one, put it on a branch and add it (ops staging add <branch>)`,
        );
      }
      // Refs staging held that the result lacks: not re-applied (added by hand, or their pull request closed or
      // unlabelled), and not in the result another way (a pull request merged into main with a merge commit is).
      const keptKeys = new Set([...added, ...skipped].map((a) => a.source.key));
      const droppedKeys = new Set<string>();
      for (const r of uniqueRecords([...(firstRecords ?? []), ...[...carried.values()].map((c) => ({ key: c.key!, head: c.sha, via: 'tracking-ref' as const }))])) {
        if (!keptKeys.has(r.key) && !droppedKeys.has(r.key) && !(await ctx.git.isAncestor(r.head, tip))) droppedKeys.add(r.key);
      }
      const dropped = [...droppedKeys].map(displayName).sort();
      if (dropped.length) {
        reporter.warn(
          `${dropped.join(', ')} ${ctx.settings.dryRun ? 'would no longer be' : dropped.length === 1 ? 'is no longer' : 'are no longer'} in ${staging}: a rebuild re-applies only the open pull requests labelled "${options.label}" (added by hand, or a pull request closed or unlabelled since); ` +
            `to have one back, label its pull request or add it again (ops staging add <ref>)`,
        );
      }
      const result: RebuildResult = {
        before: firstBefore,
        after: tip,
        main: state.main,
        changed: tip !== firstBefore,
        added,
        skipped,
        dropped,
        lost: onlyStaging,
        pullsUnavailable,
        carried: [...carried.values()].map((c) => c.display),
        attempts: attempt,
        dryRun: ctx.settings.dryRun,
        comments: [],
      };
      const trackingChanges = updates.length > 1;
      if (ctx.settings.dryRun || (tip === state.staging && !trackingChanges)) return await finish(ctx, options, result);

      const pushed = await pushAtomic(ctx, updates);
      if (pushed.ok) {
        reporter.info(`pushed ${staging} ${short(state.staging)} → ${short(tip)} (lease on ${short(state.staging)})`);
        return await finish(ctx, options, result);
      }
      const moved = await movedSince(ctx, state);
      if (!moved) throw pushed.error;
      // Someone pushed between our read and our push. Find what arrived, and whether we can keep it.
      const now = await readRemote(ctx, requestedRefs(wanted));
      const fresh = now.staging ? (await recordsAt(ctx, now.staging, now.main, now.tracking)).filter((r) => !previous.some((p) => p.key === r.key && p.head === r.head)) : [];
      const heads = new Set(fresh.map((r) => r.head));
      const arrived = now.staging
        ? parseLog(await ctx.git.out(['log', `--format=${LOG_FORMAT}`, now.staging, `^${now.main}`, ...(state.staging ? [`^${state.staging}`] : []), ...[...heads].map((h) => `^${h}`)]))
        : [];
      const lost = uncoveredCommits(arrived, heads);
      if (lost.length) {
        const list = await oneline(ctx.git, [now.staging!, `^${now.main}`, ...(state.staging ? [`^${state.staging}`] : []), ...[...heads].map((h) => `^${h}`)]);
        throw new OpsError(
          `${moved} while the rebuild ran, with commits that did not come from a staging add, so the rebuild cannot carry them over. ${staging} was left as it is (${short(now.staging)}): nothing was lost.\n${bullet(list.length ? list : lost.map((c) => short(c.sha)))}`,
          `put those commits on a branch and add it (ops staging add <branch>), or run the rebuild again to drop them on purpose`,
        );
      }
      for (const r of fresh) carried.set(r.key, { display: displayName(r.key), key: r.key, sha: r.head });
      if (attempt > retries) {
        throw new OpsError(`${staging} kept moving on ${remote} (${moved}); gave up after ${attempt} attempts. ${staging} was not reset by this run.`, 'run the rebuild again');
      }
      reporter.warn(
        `${moved} since the rebuild read it (lease on ${short(state.staging)} refused)` +
          (fresh.length ? `; carrying over what was added meanwhile: ${fresh.map((r) => `${displayName(r.key)} at ${short(r.head)}`).join(', ')}` : '') +
          `; retrying (attempt ${attempt + 1} of ${retries + 1})`,
      );
      await backoff(ctx, attempt);
    }
  } finally {
    await clearLocal(ctx.git).catch(() => {});
  }
}

/** After the push: comment on the pull requests that were skipped (never fatal). */
async function finish(ctx: StagingContext, options: RebuildOptions, result: RebuildResult): Promise<RebuildResult> {
  const api = options.github.api;
  if (!api || !options.comment || ctx.settings.dryRun) return result;
  const names = { main: ctx.settings.main, staging: ctx.settings.staging, label: options.label };
  for (const s of result.skipped) {
    if (!s.source.pull) continue;
    try {
      // Masked as everything printed (a secret in git's message or a title): a comment is printed on GitHub.
      const how = await api.comment(s.source.pull.number, markdownMasks(ctx.reporter.redact(skippedComment(s, names, options.runUrl, maskedMarkdown((text) => ctx.reporter.redact(text))))), COMMENT_MARKER);
      result.comments.push({ number: s.source.pull.number, result: how });
    } catch (e) {
      ctx.reporter.warn(`could not comment on #${s.source.pull.number}: ${formatError(e)}`);
      result.comments.push({ number: s.source.pull.number, result: 'comment failed' });
    }
  }
  return result;
}
