// `staging add`: bring one ref into staging (fast-forward, merge, or nothing when it is already in), never
// forced: when staging moved on the remote meanwhile, read it again and redo the work (bounded retries).
// With a label, every open labelled pull request staging lacks comes in the same push (staging converges).
//
// How it stays safe: merges are computed without a checkout, so the working tree of the runner (or of the
// person running the CLI) is never touched and a conflict leaves nothing behind; results are pushed as
// `<sha>:refs/heads/staging`. Every head that is added is remembered, so a ref that comes back rewritten is
// refused: in the merge commit, as trailers (Staging-Ref, Staging-Head), for people and as a fallback; and
// in refs/staging-heads/<ref> on the remote, pushed atomically with staging (`git push --atomic`): a
// fast-forward has no commit of its own to carry a trailer, a per-ref ref needs no merge of a shared notes ref
// when two adds race, keeps each update under its own lease, and is deleted by the next rebuild. A record only
// counts while its head is still in staging, so records left over from a hand-made reset are ignored.
import { formatError, messageLine, OpsError } from '../errors.ts';
import type { GitHubAccess, PullRequest } from '../github.ts';
import { type LocalResult, applyLocally, approvedCommit, bullet, pinSource, unmadeCommits } from './apply.ts';
import { type AddOutcome, type AddResult, type Applied, type Skipped, StagingRefusal, describeMoved, lostCount, short } from './messages.ts';
import { approvedHeads } from './plan.ts';
import { type PullInfo, type Source, type Wanted, parseRef, pullInfo, pullRequestRef, requestedRefs, trackingRef } from './refs.ts';
import { type RefUpdate, backoff, clearLocal, movedSince, pushAtomic, readRemote, recordsAt, resolveSource } from './remote.ts';
import type { StagingContext } from './settings.ts';

export interface AddOptions {
  /**
   * Also bring in every open pull request carrying this label that staging lacks. GitHub keeps one pending
   * run per concurrency group and cancels the older one: with this, the run that does execute adds what the
   * cancelled ones would have, so staging converges. Without API access the add still happens, and says so.
   */
  labelled?: { github: GitHubAccess; label: string };
  /**
   * Add exactly this commit of the ref (a full sha), not the ref's head when the run gets to it: the head a label
   * approved (the event's pull_request.head.sha). The ref still names it (the merge message, the record in
   * refs/staging-heads/<ref>); when the ref has moved on since, the result says so (`moved`) and the newer commits
   * are left out (they wait for a new label). Refused when the commit cannot be found.
   */
  at?: string;
}

/** The open pull requests carrying the label, or why they could not be listed. */
async function listLabelled(ctx: StagingContext, labelled: AddOptions['labelled']): Promise<{ pulls: PullRequest[]; unavailable?: string }> {
  if (!labelled) return { pulls: [] };
  if (!labelled.github.api) return { pulls: [], unavailable: labelled.github.failed ? said(labelled.github.failed) : labelled.github.unavailable };
  try {
    const pulls = await labelled.github.api.labelledPulls(labelled.label);
    ctx.reporter.info(`${pulls.length} open pull request${pulls.length === 1 ? '' : 's'} labelled "${labelled.label}"${pulls.length ? `: ${pulls.map((p) => `#${p.number}`).join(', ')}` : ''}`);
    return { pulls };
  } catch (e) {
    return { pulls: [], unavailable: said(e) };
  }
}

/** A failure to list as one line with its hint (a token was given: the user is told what to fix). */
const said = (e: unknown): string => formatError(e).replace(/\n\s*hint: /, ' — ');

/**
 * Add one ref to staging: fast-forward, merge, or nothing when already contained; then (with
 * `options.labelled`) every open labelled pull request staging lacks, oldest first, in the same push (one that
 * staging holds already stays at the commit staging took: a head pushed since is not approved). A
 * refusal of the ref itself throws StagingRefusal (after the others were pushed); a labelled pull request
 * that does not apply is skipped and listed.
 */
export async function addToStaging(ctx: StagingContext, ref: string, pull?: PullInfo, options: AddOptions = {}): Promise<AddResult> {
  const { staging, main, retries, remote } = ctx.settings;
  const { reporter } = ctx;
  const request = parseRef(ref);
  const listed = await listLabelled(ctx, options.labelled);
  if (listed.unavailable) reporter.warn(`other pull requests labelled "${options.labelled!.label}" were not checked: ${listed.unavailable}`);
  const others: Wanted[] = listed.pulls.map((p) => ({ request: pullRequestRef(p), pull: p }));
  const wanted = [...(request.kind === 'pull' || request.kind === 'ref' ? [request.remoteRef] : request.kind === 'name' ? request.candidates : []), ...requestedRefs(others)];
  try {
    for (let attempt = 1; ; attempt++) {
      const state = await readRemote(ctx, wanted);
      const resolved = await resolveSource(ctx, request, state, pull);
      const base = state.staging ?? state.main;
      const records = state.staging ? await recordsAt(ctx, state.staging, state.main, state.tracking) : [];
      // What staging already took of each ref (its approved head): a labelled pull request staging holds is not
      // brought up to a head pushed since (nobody approved it; the unlabel job may not have run yet).
      const held = approvedHeads(records);
      // What staging holds that no add brought (a hand push; the main branch's commits before a force push, maybe
      // one rewritten away on purpose): an add keeps it and the deploy puts it live again, so it is said each time.
      const unadded = state.staging ? await unmadeCommits(ctx.git, [state.staging, `^${state.main}`, ...records.map((r) => `^${r.head}`)]) : [];
      if (unadded.length) {
        reporter.warn(
          `${staging} holds ${lostCount(unadded)} that no add of a branch, tag or pull request brought (pushed to it by hand, or ${main}'s before it was rewritten): they stay in ${staging}, deployed with it, until a rebuild drops them (ops staging rebuild; to keep one, put it on a branch and add it):\n${bullet(unadded)}`,
        );
      }
      reporter.info(`${remote}: ${staging} at ${short(state.staging)}, ${main} at ${short(state.main)}, ${resolved.display} at ${short(resolved.sha)}`);
      const { source, moved: refMoved } = options.at ? await pinSource(ctx, resolved, options.at) : { source: resolved };
      const movedNote = describeMoved({ source, moved: refMoved }, staging);
      if (movedNote) reporter.warn(movedNote);
      let refused: StagingRefusal | undefined;
      const times = new Map<string, number>(); // committer times read for merges' dates (commitTimes)
      let local: LocalResult = { outcome: 'already-contained', sha: base };
      try {
        local = await applyLocally(ctx, base, state.main, source, records, times);
      } catch (e) {
        if (!(e instanceof StagingRefusal) || !others.length) throw e;
        refused = e;
      }
      const updates: RefUpdate[] = [];
      const track = (s: Source, outcome: AddOutcome) => {
        if (!s.key || outcome === 'already-contained') return;
        updates.push({ ref: trackingRef(s.key), sha: s.sha, lease: state.tracking.get(s.key) ?? '' });
        records.push({ key: s.key, head: s.sha, via: 'tracking-ref' });
      };
      if (!refused) track(source, local.outcome);

      // The other labelled pull requests staging lacks (what a cancelled run would have added)
      let tip = local.sha;
      const alsoAdded: Applied[] = [];
      const skipped: Skipped[] = [];
      for (const o of others) {
        let s: Source;
        try {
          s = await resolveSource(ctx, o.request, state, o.pull && pullInfo(o.pull));
        } catch (e) {
          if (!(e instanceof OpsError)) throw e;
          skipped.push({ source: { display: `#${o.pull!.number} (${o.pull!.headRef})`, sha: o.pull!.headSha, pull: o.pull && pullInfo(o.pull) }, reason: 'missing', message: e.message });
          continue;
        }
        if ((s.key && s.key === source.key) || s.sha === source.sha) continue;
        const at = await approvedCommit(ctx, held, s.key, o.pull?.number);
        if (at) {
          if (at !== s.sha) reporter.info(`${s.display}: ${staging} holds it at ${short(at)}, the commit it took; its head ${short(s.sha)} is not added (commits pushed since wait for a new label)`);
          continue;
        }
        try {
          const r = await applyLocally(ctx, tip, state.main, s, records, times);
          if (r.outcome === 'already-contained') continue;
          tip = r.sha;
          alsoAdded.push({ source: s, outcome: r.outcome, sha: r.sha });
          track(s, r.outcome);
          reporter.info(`${s.display} (${short(s.sha)}), labelled and missing from ${staging}: ${r.outcome}`);
        } catch (e) {
          if (!(e instanceof StagingRefusal)) throw e;
          skipped.push({ source: s, reason: e.reason, message: e.message, files: e.files });
          reporter.warn(`${s.display} (${short(s.sha)}), labelled, does not apply: ${messageLine(e)}`);
        }
      }

      const created = state.staging === undefined;
      const result: AddResult = {
        source,
        outcome: local.outcome,
        sha: tip,
        before: state.staging,
        changed: tip !== state.staging,
        created,
        attempts: attempt,
        dryRun: ctx.settings.dryRun,
        alsoAdded,
        skipped,
        pullsUnavailable: listed.unavailable,
        ...(unadded.length ? { unadded } : {}),
        ...(refMoved ? { moved: refMoved } : {}),
      };
      const done = (pushed = false): AddResult => {
        if (!refused) return result;
        const kept = alsoAdded.length ? `\n${ctx.settings.dryRun ? 'would still be added' : 'still added'}, as labelled pull requests missing from ${staging}: ${alsoAdded.map((a) => a.source.display).join(', ')}` : '';
        // What went in is said (outputs) and deployed by the workflow although the run fails: staging moved.
        throw Object.assign(new StagingRefusal(refused.reason, `${refused.message}${kept}`, refused.hint ?? '', refused.files), pushed ? { pushed: result } : {});
      };
      if (tip === state.staging && !created) return done();
      if (ctx.settings.dryRun) return done();

      const pushed = await pushAtomic(ctx, [{ ref: `refs/heads/${staging}`, sha: tip }, ...updates]);
      if (pushed.ok) return done(true);
      const moved = await movedSince(ctx, state);
      if (!moved) throw pushed.error;
      if (attempt > retries) {
        throw new OpsError(`${staging} kept moving on ${remote} (${moved}); gave up after ${attempt} attempts. ${staging} was not changed by this run.`, 'run it again');
      }
      reporter.warn(`${moved} since it was fetched; fetching again and retrying (attempt ${attempt + 1} of ${retries + 1})`);
      await backoff(ctx, attempt);
    }
  } finally {
    await clearLocal(ctx.git).catch(() => {});
  }
}
