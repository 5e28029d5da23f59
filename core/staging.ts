// Staging sync: bring a ref into the `staging` branch (fast-forward or merge, never forced), and rebuild
// staging from `master` with the labelled pull requests re-applied. The same code runs in the staging-sync
// action and behind `ops staging add|rebuild`.
//
// How it stays safe:
// - Merges are computed with `git merge-tree --write-tree` and `git commit-tree`: no checkout, no index, so
//   the working tree of the runner (or of the person running the CLI) is never touched, and a conflict
//   leaves nothing behind. Results are pushed as `<sha>:refs/heads/staging`.
// - add pushes without force: if staging moved on the remote meanwhile the push is refused; we fetch again
//   and redo the work (bounded). rebuild pushes with --force-with-lease on the sha it read at the start.
// - Every head that is added is remembered, so a ref that comes back rewritten is refused:
//   * in the merge commit, as trailers (Staging-Ref: refs/heads/x, Staging-Head: <sha>), for people and
//     as a fallback;
//   * in refs/staging-heads/<ref> on the remote, pushed atomically with staging (`git push --atomic`). A
//     fast-forward has no commit of its own to carry a trailer; a per-ref ref does not need one, needs no
//     merge of a shared notes ref when two adds race, keeps each update under its own lease, and is deleted
//     by the next rebuild. A record only counts while its head is still in staging, so records left over
//     from a hand-made reset are ignored.
import { OpsError, formatError } from './errors.ts';
import { githubAccess, type GitHubAccess, type PullRequest } from './github.ts';
import type { Reporter } from './report.ts';
import { validate } from './shell.ts';
import { DEFAULT_IDENTITY, Git, GitError, type Identity } from './git.ts';
import {
  LOG_FORMAT,
  StagingRefusal,
  TRACKING_PREFIX,
  addSummary,
  decideAdd,
  displayName,
  keyOfTrackingRef,
  mergeMessage,
  parseLog,
  parseRef,
  pickRemoteRef,
  pushHint,
  rebuildSummary,
  short,
  skippedComment,
  trackingRef,
  trailerRecords,
  uncoveredCommits,
  uniqueRecords,
  COMMENT_MARKER,
  type AddOutcome,
  type AddResult,
  type AddedRecord,
  type Applied,
  type PullInfo,
  type RebuildResult,
  type RefRequest,
  type Skipped,
  type Source,
} from './staging-plan.ts';

export const STAGING_DEFAULTS = {
  remote: 'origin',
  main: 'master',
  staging: 'staging',
  label: 'staging',
  retries: 3,
  retryDelayMs: 2000,
} as const;

export interface StagingSettings {
  remote: string;
  main: string;
  staging: string;
  /** Extra attempts when staging moved on the remote between our fetch and our push. */
  retries: number;
  /** Base delay before a retry (grows with the attempt, with jitter). */
  retryDelayMs: number;
  /** Compute and report, push nothing, comment nothing. */
  dryRun: boolean;
}

/** Settings from raw inputs (action inputs or CLI options): defaults filled in, every name validated. */
export function stagingSettings(raw: { remote?: string; main?: string; staging?: string; retries?: string | number; retryDelayMs?: number; dryRun?: boolean }): StagingSettings {
  const remote = raw.remote || STAGING_DEFAULTS.remote;
  const main = raw.main || STAGING_DEFAULTS.main;
  const staging = raw.staging || STAGING_DEFAULTS.staging;
  validate('gitRef', remote, 'remote name');
  validate('gitRef', main, 'main branch');
  validate('gitRef', staging, 'staging branch');
  if (main === staging) throw new OpsError(`the main branch and the staging branch are both "${main}"`, 'staging must be a branch of its own (default: staging)');
  const retriesText = String(raw.retries ?? STAGING_DEFAULTS.retries).trim();
  if (!/^\d{1,2}$/.test(retriesText)) throw new OpsError(`invalid retries ${JSON.stringify(retriesText)}: expected a whole number from 0 to 99`);
  return { remote, main, staging, retries: Number(retriesText), retryDelayMs: raw.retryDelayMs ?? STAGING_DEFAULTS.retryDelayMs, dryRun: raw.dryRun ?? false };
}

/** A true/false input ('' = fallback), refused clearly otherwise. */
export function checkLabel(label: string): string {
  if (!label.trim() || label.length > 50 || /[\r\n,]/.test(label)) throw new OpsError(`invalid label ${JSON.stringify(label)}`, 'a GitHub label name: up to 50 characters, no commas or line breaks');
  return label.trim();
}

export interface StagingContext {
  git: Git;
  reporter: Reporter;
  settings: StagingSettings;
}

// Our scratch refs in the local repository (fetched copies of the remote's refs), removed when done.
const LOCAL = 'refs/ops-staging/';
const MIN_GIT: [number, number] = [2, 38]; // merge-tree --write-tree

/** A Git runner on the repository that holds `dir` (a working tree or a bare repository), checked for use. */
export async function openRepository(dir: string, options: { identity?: Identity; env?: NodeJS.ProcessEnv; interactive?: boolean; remote: string }): Promise<Git> {
  const probe = new Git(dir, { processEnv: options.env, identity: options.identity ?? DEFAULT_IDENTITY, interactive: options.interactive });
  const [major, minor] = await probe.version();
  if (major < MIN_GIT[0] || (major === MIN_GIT[0] && minor < MIN_GIT[1])) {
    throw new OpsError(`git ${major}.${minor} is too old for staging sync (it needs ${MIN_GIT.join('.')} or later, for merge-tree --write-tree)`, 'install a newer git (Debian 12 has 2.39)');
  }
  const r = await probe.run(['rev-parse', '--absolute-git-dir']);
  if (r.code !== 0) {
    throw new OpsError(`${dir} is not a git repository`, 'run from a clone of the repository, or name one with --repo (on a runner: actions/checkout with fetch-depth: 0 first)');
  }
  const url = await probe.run(['remote', 'get-url', '--', options.remote]);
  if (url.code !== 0) throw new OpsError(`the repository in ${dir} has no remote named "${options.remote}"`, `add it (git remote add ${options.remote} <url>) or name another with --remote`);
  return probe;
}

// ---------------------------------------------------------------------------------------------------------
// Reading the remote

interface RemoteState {
  main: string;
  /** Undefined when the staging branch does not exist on the remote. */
  staging?: string;
  /** Tracking records on the remote: remembered ref (refs/heads/x...) → head sha. */
  tracking: Map<string, string>;
  /** Every ref the remote advertised for our query (name → sha, tags peeled). */
  advertised: Map<string, string>;
  /** Commits fetched for the requested source refs (remote ref → commit sha). */
  sources: Map<string, string>;
}

function parseLsRemote(output: string): Map<string, string> {
  const refs = new Map<string, string>();
  const peeled = new Map<string, string>();
  for (const line of output.split('\n')) {
    const [sha, name] = line.split('\t');
    if (!sha || !name) continue;
    if (name.endsWith('^{}')) peeled.set(name.slice(0, -3), sha);
    else refs.set(name, sha);
  }
  for (const [name, sha] of peeled) refs.set(name, sha);
  return refs;
}

async function lsRemote(ctx: StagingContext, names: string[]): Promise<Map<string, string>> {
  const { remote } = ctx.settings;
  const out = await ctx.git.out(['ls-remote', remote, ...names, `${TRACKING_PREFIX}*`], { hint: `can this machine reach the remote "${remote}" (credentials, network)?` });
  const all = parseLsRemote(out);
  // ls-remote matches patterns on the tail of a ref name: keep exact names and our namespace only.
  return new Map([...all].filter(([name]) => names.includes(name) || name.startsWith(TRACKING_PREFIX)));
}

async function clearLocal(git: Git): Promise<void> {
  const refs = (await git.out(['for-each-ref', '--format=%(refname)', LOCAL])).split('\n').filter(Boolean);
  if (refs.length) await git.out(['update-ref', '--stdin'], { input: refs.map((r) => `delete ${r}\n`).join('') });
}

const shallowChecked = new WeakSet<Git>();

/** A shallow clone (actions/checkout's default) cannot answer ancestry questions: deepen it once. */
async function unshallow(ctx: StagingContext): Promise<void> {
  if (shallowChecked.has(ctx.git)) return;
  if ((await ctx.git.out(['rev-parse', '--is-shallow-repository'])) === 'true') {
    ctx.reporter.info(`the repository is a shallow clone: fetching its full history from ${ctx.settings.remote} (use fetch-depth: 0 in actions/checkout to skip this)`);
    await ctx.git.out(['fetch', '--unshallow', '--no-tags', '--quiet', ctx.settings.remote]);
  }
  shallowChecked.add(ctx.git);
}

/** Ask the remote for main, staging, the tracking refs and the wanted source refs; fetch them all. */
async function readRemote(ctx: StagingContext, wanted: string[]): Promise<RemoteState> {
  const { remote, main, staging } = ctx.settings;
  await unshallow(ctx);
  const mainRef = `refs/heads/${main}`;
  const stagingRef = `refs/heads/${staging}`;
  const advertised = await lsRemote(ctx, [...new Set([mainRef, stagingRef, ...wanted])]);
  if (!advertised.has(mainRef)) throw new OpsError(`the main branch "${main}" does not exist on ${remote}`, 'name the branch staging is rebuilt from with main-branch / --main');

  // Copies go to our scratch namespace (left-overs of an interrupted run are overwritten or ignored below).
  const local = (ref: string) => `${LOCAL}remote/${ref.replace(/^refs\//, '')}`;
  const fetchable = [mainRef, stagingRef, ...wanted].filter((r, i, all) => advertised.has(r) && all.indexOf(r) === i);
  const refspecs = fetchable.map((r) => `+${r}:${local(r)}`);
  if ([...advertised.keys()].some((r) => r.startsWith(TRACKING_PREFIX))) refspecs.push(`+${TRACKING_PREFIX}*:${LOCAL}tracking/*`);
  await ctx.git.out(['fetch', '--no-tags', '--no-write-fetch-head', '--quiet', '--no-recurse-submodules', remote, ...refspecs], {
    hint: `can this machine fetch from "${remote}"?`,
  });

  const fetched = new Map<string, string>();
  const listing = await ctx.git.out(['for-each-ref', '--format=%(refname)%09%(objectname)%09%(*objectname)', LOCAL]);
  for (const line of listing.split('\n').filter(Boolean)) {
    const [name = '', sha = '', peeled = ''] = line.split('\t');
    fetched.set(name, peeled || sha);
  }
  const tracking = new Map<string, string>();
  for (const name of advertised.keys()) {
    const key = keyOfTrackingRef(name);
    const sha = fetched.get(`${LOCAL}tracking/${name.slice(TRACKING_PREFIX.length)}`);
    if (key && sha) tracking.set(key, sha);
  }
  const sources = new Map<string, string>();
  for (const r of wanted) {
    const sha = advertised.has(r) ? fetched.get(local(r)) : undefined;
    if (sha) sources.set(r, sha);
  }
  return { main: fetched.get(local(mainRef))!, staging: advertised.has(stagingRef) ? fetched.get(local(stagingRef)) : undefined, tracking, advertised, sources };
}

/** Resolve a parsed ref against what the remote has: the commit to bring in and the key to remember it by. */
async function resolveSource(ctx: StagingContext, request: RefRequest, state: RemoteState, pullInfo?: PullInfo): Promise<Source> {
  const picked = pickRemoteRef(request, state.advertised, ctx.settings.remote);
  if (picked === 'sha') {
    let sha = await ctx.git.commit(request.input);
    if (!sha && /^[0-9a-f]{40}$/.test(request.input)) {
      // Not here yet: ask the remote for that commit (GitHub serves any reachable commit by sha).
      const r = await ctx.git.run(['fetch', '--no-tags', '--no-write-fetch-head', '--quiet', ctx.settings.remote, `${request.input}:${LOCAL}sha`]);
      if (r.code === 0) sha = await ctx.git.commit(request.input);
    }
    if (!sha) throw new StagingRefusal('missing', `commit ${request.input} is not in this repository nor on ${ctx.settings.remote}`, 'give a branch, a tag, a pull request (pull/12) or a full commit sha');
    return { display: sha.slice(0, 12), sha, pull: pullInfo };
  }
  const sha = state.sources.get(picked);
  if (!sha) throw new StagingRefusal('missing', `${picked} disappeared from ${ctx.settings.remote} while it was being fetched`, 'try again');
  return { display: pullInfo ? `#${pullInfo.number} (${pullInfo.branch})` : displayName(picked), key: picked, sha, pull: pullInfo };
}

/** What was added to staging (tip) before: merge trailers since main, and tracking refs whose head is in tip. */
async function recordsAt(ctx: StagingContext, tip: string, main: string, tracking: Map<string, string>): Promise<AddedRecord[]> {
  // Our merges are on staging's first-parent line (staging is always the first parent); merges inside the
  // branches that were added are not ours, whatever their messages say.
  const log = await ctx.git.out(['log', '--merges', '--first-parent', `--format=${LOG_FORMAT}`, tip, `^${main}`]);
  const records = trailerRecords(parseLog(log));
  if (tracking.size) {
    // One question for all of them: which tracked heads are in tip?
    const merged = await ctx.git.out(['for-each-ref', `--merged=${tip}`, '--format=%(objectname)', `${LOCAL}tracking/`]);
    const inTip = new Set(merged.split('\n').filter(Boolean));
    for (const [key, head] of tracking) if (inTip.has(head)) records.push({ key, head, via: 'tracking-ref' });
  }
  return uniqueRecords(records);
}

// ---------------------------------------------------------------------------------------------------------
// Applying one source on top of a tip, locally (shared by add and rebuild)

async function oneline(git: Git, revs: string[], paths: string[] = [], max = 20): Promise<string[]> {
  const out = await git.out(['--literal-pathspecs', 'log', '--no-merges', `--max-count=${max}`, '--format=%h %s', ...revs, '--', ...paths]);
  return out.split('\n').filter(Boolean);
}

const bullet = (lines: string[]) => lines.map((l) => `  ${l}`).join('\n');

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

async function conflictRefusal(ctx: StagingContext, source: Source, base: string, main: string, files: string[]): Promise<StagingRefusal> {
  const { staging } = ctx.settings;
  const withMain = await ctx.git.run(['merge-tree', '--write-tree', '--name-only', '--no-messages', main, source.sha]);
  const touching = await oneline(ctx.git, [base, `^${main}`, `^${source.sha}`], files, 10);
  const message = [
    `${source.display} (${short(source.sha)}) conflicts with ${staging} (${short(base)}) in ${files.length} file${files.length === 1 ? '' : 's'}; ${staging} was not changed:`,
    bullet(files),
    ...(touching.length ? [`Commits in ${staging} (not in ${ctx.settings.main}) that change ${files.length === 1 ? 'it' : 'them'}:`, bullet(touching)] : []),
  ].join('\n');
  const hint =
    withMain.code === 1
      ? `it conflicts with ${ctx.settings.main} itself: merge or rebase ${ctx.settings.main} into ${source.display} and resolve, then add it again`
      : `the conflict is with work already in ${staging}, not with ${ctx.settings.main}: coordinate with the branch that made the commits above, or rebuild ${staging} once it is gone`;
  return new StagingRefusal('conflict', message, hint, files);
}

interface LocalResult {
  outcome: AddOutcome;
  sha: string;
}

/** Bring `source` into `base` without touching any ref or working tree; throw StagingRefusal when it must not. */
async function applyLocally(ctx: StagingContext, base: string, main: string, source: Source, records: AddedRecord[]): Promise<LocalResult> {
  const { git } = ctx;
  const mine = source.key ? records.filter((r) => r.key === source.key) : [];
  const rewritten: AddedRecord[] = [];
  for (const r of mine) if (!(await git.isAncestor(r.head, source.sha))) rewritten.push(r);
  const contained = await git.isAncestor(source.sha, base);
  const stagingIsAncestor = !contained && (await git.isAncestor(base, source.sha));
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
      if (r.code === 1) throw await conflictRefusal(ctx, source, base, main, [...new Set(rest.filter(Boolean))]);
      if (r.code !== 0) throw new GitError(args, r, /unrelated/.test(r.stderr) ? `${source.display} shares no history with ${ctx.settings.staging}` : undefined);
      const message = mergeMessage(source, ctx.settings.staging);
      // Dated like the later of its parents: the same merge made again (a rebuild with nothing new) is the
      // same commit, so staging does not move and nothing is redeployed. The push records when it happened.
      const date = `${await git.out(['log', '--no-walk=sorted', '-1', '--format=%ct', base, source.sha])} +0000`;
      const sha = await git.out(['commit-tree', '--no-gpg-sign', tree.trim(), '-p', base, '-p', source.sha, ...message.flatMap((m) => ['-m', m])], {
        env: { GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date },
      });
      return { outcome: 'merge', sha };
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Pushing

interface RefUpdate {
  ref: string;
  /** New value; null deletes the ref. */
  sha: string | null;
  /** --force-with-lease expectation ('' = must not exist); undefined = a plain (fast-forward only) push. */
  lease?: string;
}

async function pushAtomic(ctx: StagingContext, updates: RefUpdate[]): Promise<{ ok: true } | { ok: false; error: GitError }> {
  const args = ['push', '--atomic', '--porcelain', ctx.settings.remote];
  for (const u of updates) if (u.lease !== undefined) args.push(`--force-with-lease=${u.ref}:${u.lease}`);
  for (const u of updates) args.push(`${u.sha ?? ''}:${u.ref}`);
  const r = await ctx.git.run(args);
  if (r.code === 0) return { ok: true };
  return { ok: false, error: new GitError(args, r, pushHint(r.stderr + r.stdout, ctx.settings.staging)) };
}

/** After a refused push: did staging or our tracking refs move on the remote since `state` was read? */
async function movedSince(ctx: StagingContext, state: RemoteState): Promise<string | undefined> {
  const now = await lsRemote(ctx, [`refs/heads/${ctx.settings.staging}`]);
  const staging = now.get(`refs/heads/${ctx.settings.staging}`);
  if (staging !== state.staging) return `${ctx.settings.staging} moved on ${ctx.settings.remote}: ${short(state.staging)} → ${short(staging)}`;
  const tracking = new Map([...now].filter(([n]) => n.startsWith(TRACKING_PREFIX)).map(([n, s]) => [keyOfTrackingRef(n) ?? n, s]));
  const keys = new Set([...tracking.keys(), ...state.tracking.keys()]);
  for (const k of keys) if (tracking.get(k) !== state.tracking.get(k)) return `the record of ${displayName(k)} moved on ${ctx.settings.remote}`;
  return undefined;
}

async function backoff(ctx: StagingContext, attempt: number): Promise<void> {
  const ms = ctx.settings.retryDelayMs * attempt * (0.5 + Math.random());
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------------------------------------
// add

export interface AddOptions {
  /**
   * Also bring in every open pull request carrying this label that staging lacks. GitHub keeps one pending
   * run per concurrency group and cancels the older one: with this, the run that does execute adds what the
   * cancelled ones would have, so staging converges. Without API access the add still happens, and says so.
   */
  labelled?: { github: GitHubAccess; label: string };
}

/** The open pull requests carrying the label, or why they could not be listed. */
async function listLabelled(ctx: StagingContext, labelled: AddOptions['labelled']): Promise<{ pulls: PullRequest[]; unavailable?: string }> {
  if (!labelled) return { pulls: [] };
  if (!labelled.github.api) return { pulls: [], unavailable: labelled.github.unavailable };
  try {
    const pulls = await labelled.github.api.labelledPulls(labelled.label);
    ctx.reporter.info(`${pulls.length} open pull request${pulls.length === 1 ? '' : 's'} labelled "${labelled.label}"${pulls.length ? `: ${pulls.map((p) => `#${p.number}`).join(', ')}` : ''}`);
    return { pulls };
  } catch (e) {
    return { pulls: [], unavailable: formatError(e).replace(/\n\s*hint: /, ' — ') };
  }
}

/**
 * Add one ref to staging: fast-forward, merge, or nothing when already contained; then (with
 * `options.labelled`) every open labelled pull request staging lacks, oldest first, in the same push. A
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
      const source = await resolveSource(ctx, request, state, pull);
      const base = state.staging ?? state.main;
      const records = state.staging ? await recordsAt(ctx, state.staging, state.main, state.tracking) : [];
      reporter.info(`${remote}: ${staging} at ${short(state.staging)}, ${main} at ${short(state.main)}, ${source.display} at ${short(source.sha)}`);
      let refused: StagingRefusal | undefined;
      let local: LocalResult = { outcome: 'already-contained', sha: base };
      try {
        local = await applyLocally(ctx, base, state.main, source, records);
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
        try {
          const r = await applyLocally(ctx, tip, state.main, s, records);
          if (r.outcome === 'already-contained') continue;
          tip = r.sha;
          alsoAdded.push({ source: s, outcome: r.outcome, sha: r.sha });
          track(s, r.outcome);
          reporter.info(`${s.display} (${short(s.sha)}), labelled and missing from ${staging}: ${r.outcome}`);
        } catch (e) {
          if (!(e instanceof StagingRefusal)) throw e;
          skipped.push({ source: s, reason: e.reason, message: e.message, files: e.files });
          reporter.warn(`${s.display} (${short(s.sha)}), labelled, does not apply: ${e.message.split('\n')[0]}`);
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
      };
      const done = (): AddResult => {
        if (!refused) return result;
        const kept = alsoAdded.length ? `\n${ctx.settings.dryRun ? 'would still be added' : 'still added'}, as labelled pull requests missing from ${staging}: ${alsoAdded.map((a) => a.source.display).join(', ')}` : '';
        throw new StagingRefusal(refused.reason, `${refused.message}${kept}`, refused.hint ?? '', refused.files);
      };
      if (tip === state.staging && !created) return done();
      if (ctx.settings.dryRun) return done();

      const pushed = await pushAtomic(ctx, [{ ref: `refs/heads/${staging}`, sha: tip }, ...updates]);
      if (pushed.ok) return done();
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

// ---------------------------------------------------------------------------------------------------------
// rebuild

export interface RebuildOptions {
  github: GitHubAccess;
  label: string;
  /** Comment on pull requests that could not be re-applied. */
  comment: boolean;
  /** Link to the workflow run, for comments. */
  runUrl?: string;
}

interface Wanted {
  request: RefRequest;
  pull?: PullRequest;
}

const pullInfo = (pr: PullRequest): PullInfo => ({ number: pr.number, title: pr.title, url: pr.url, branch: pr.headRef });

function pullRequestRef(pr: PullRequest): RefRequest {
  if (pr.sameRepository) {
    try {
      return parseRef(`refs/heads/${pr.headRef}`);
    } catch {
      // A branch name our validation refuses: GitHub's own pull ref always works.
    }
  }
  return parseRef(`pull/${pr.number}`);
}

function requestedRefs(wanted: Wanted[]): string[] {
  return wanted.flatMap((w) => (w.request.kind === 'pull' || w.request.kind === 'ref' ? [w.request.remoteRef] : []));
}

/**
 * Reset staging to main, re-apply the open pull requests carrying the label (oldest first) with the add
 * logic, and push the result once, with a lease on the staging sha read at the start. Staging is never
 * visible half-rebuilt. A push that raced in is carried over when it came from an add (its record says
 * which ref and head), and makes the rebuild fail, staging untouched, when it did not.
 */
export async function rebuildStaging(ctx: StagingContext, options: RebuildOptions): Promise<RebuildResult> {
  const { staging, retries, remote } = ctx.settings;
  const { reporter } = ctx;
  let pulls: PullRequest[] = [];
  let pullsUnavailable = options.github.unavailable;
  if (options.github.api) {
    try {
      pulls = await options.github.api.labelledPulls(options.label);
      reporter.info(`${pulls.length} open pull request${pulls.length === 1 ? '' : 's'} labelled "${options.label}"${pulls.length ? `: ${pulls.map((p) => `#${p.number}`).join(', ')}` : ''}`);
    } catch (e) {
      pullsUnavailable = formatError(e).replace(/\n\s*hint: /, ' — ');
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

      // Resolve every source first; a pull request whose head cannot be read is skipped, not fatal.
      const sources: Source[] = [];
      const skipped: Skipped[] = [];
      for (const w of wanted) {
        try {
          const s = await resolveSource(ctx, w.request, state, w.pull && pullInfo(w.pull));
          if (!sources.some((o) => o.key && o.key === s.key)) sources.push(s);
        } catch (e) {
          if (!(e instanceof OpsError)) throw e;
          const source: Source = { display: w.pull ? `#${w.pull.number} (${w.pull.headRef})` : w.request.input, sha: w.pull?.headSha ?? '', pull: w.pull && pullInfo(w.pull) };
          skipped.push({ source, reason: 'missing', message: e.message });
        }
      }
      for (const c of carried.values()) if (!sources.some((s) => s.key === c.key)) sources.push(c);

      let tip = state.main;
      const added: Applied[] = [];
      const records: AddedRecord[] = [];
      for (const source of sources) {
        try {
          const r = await applyLocally(ctx, tip, state.main, source, records);
          tip = r.sha;
          added.push({ source, outcome: r.outcome, sha: r.sha });
          if (source.key && r.outcome !== 'already-contained') records.push({ key: source.key, head: source.sha, via: 'tracking-ref' });
          reporter.info(`${source.display} (${short(source.sha)}): ${r.outcome}`);
        } catch (e) {
          if (!(e instanceof StagingRefusal)) throw e;
          skipped.push({ source, reason: e.reason, message: e.message, files: e.files });
          reporter.warn(`${source.display} (${short(source.sha)}) skipped: ${e.message.split('\n')[0]}`);
        }
      }

      // The tracking refs staging should have afterwards: exactly the heads added by this rebuild.
      const desired = new Map(records.map((r) => [r.key, r.head]));
      const updates: RefUpdate[] = [{ ref: `refs/heads/${staging}`, sha: tip, lease: state.staging ?? '' }];
      for (const [key, head] of desired) if (state.tracking.get(key) !== head) updates.push({ ref: trackingRef(key), sha: head, lease: state.tracking.get(key) ?? '' });
      for (const [key, head] of state.tracking) if (!desired.has(key)) updates.push({ ref: trackingRef(key), sha: null, lease: head });

      const keptKeys = new Set([...added, ...skipped].map((a) => a.source.key));
      const dropped = uniqueRecords([...(firstRecords ?? []), ...[...carried.values()].map((c) => ({ key: c.key!, head: c.sha, via: 'tracking-ref' as const }))])
        .map((r) => r.key)
        .filter((k, i, all) => all.indexOf(k) === i && !keptKeys.has(k))
        .map(displayName)
        .sort();
      const result: RebuildResult = {
        before: firstBefore,
        after: tip,
        main: state.main,
        changed: tip !== firstBefore,
        added,
        skipped,
        dropped,
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
      const how = await api.comment(s.source.pull.number, skippedComment(s, names, options.runUrl), COMMENT_MARKER);
      result.comments.push({ number: s.source.pull.number, result: how });
    } catch (e) {
      ctx.reporter.warn(`could not comment on #${s.source.pull.number}: ${formatError(e)}`);
      result.comments.push({ number: s.source.pull.number, result: 'comment failed' });
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------
// One entry point for the action and the CLI: open, run, report (log, outputs, summary)

export interface StagingRun {
  mode: 'add' | 'rebuild';
  /** add: the ref to bring in. */
  ref?: string;
  /** add: the pull request the ref belongs to (from the triggering event), for messages and outputs. */
  pull?: PullInfo;
  /** The repository to act on (a clone: working tree or bare). */
  repo: string;
  settings: StagingSettings;
  identity?: Identity;
  label?: string;
  comment?: boolean;
  token?: string;
  /** Let git prompt for credentials (CLI on a terminal). */
  interactive?: boolean;
  env: NodeJS.ProcessEnv;
  reporter: Reporter;
  runUrl?: string;
}

/** How outputs name a source: "#12" for a pull request, else its name. */
const id = (s: Source) => (s.pull ? `#${s.pull.number}` : s.display);

export async function runStaging(run: StagingRun): Promise<AddResult | RebuildResult> {
  const { settings, reporter } = run;
  const git = await openRepository(run.repo, { identity: run.identity, env: run.env, interactive: run.interactive, remote: settings.remote });
  const ctx: StagingContext = { git, reporter, settings };
  if (run.mode === 'add' && !run.ref) throw new OpsError('nothing to add: no ref given', 'give the branch, tag, pull request (pull/12) or sha to add (input ref, or `ops staging add <ref>`)');
  const label = checkLabel(run.label ?? STAGING_DEFAULTS.label);
  const remoteUrl = (await git.run(['remote', 'get-url', '--', settings.remote])).stdout.trim();
  if (run.token) reporter.mask(run.token);
  const github = githubAccess({ token: run.token, env: run.env, remoteUrl });
  if (run.mode === 'add') {
    const what = run.pull ? `pull request #${run.pull.number}` : run.ref;
    const result = await reporter.group(`add ${what} to ${settings.staging}`, () => addToStaging(ctx, run.ref!, run.pull, { labelled: { github, label } }));
    reporter.output('sha', result.sha);
    reporter.output('previous-sha', result.before ?? '');
    reporter.output('changed', String(result.changed));
    reporter.output('added', [...(result.outcome === 'already-contained' ? [] : [result.source]), ...result.alsoAdded.map((a) => a.source)].map(id).join(','));
    reporter.output('skipped', result.skipped.map((s) => id(s.source)).join(','));
    await reporter.summary(addSummary(result, { staging: settings.staging, label }));
    return result;
  }
  const result = await reporter.group(`rebuild ${settings.staging} from ${settings.main}`, () =>
    rebuildStaging(ctx, { github, label, comment: run.comment ?? true, runUrl: run.runUrl }),
  );
  const names = { main: settings.main, staging: settings.staging, label };
  reporter.info(
    `${settings.staging}: ${short(result.before)} → ${short(result.after)}${result.dryRun ? ' (dry run: not pushed)' : ''}; ` +
      `added ${result.added.length}, skipped ${result.skipped.length}${result.pullsUnavailable ? '; labelled pull requests NOT re-applied' : ''}`,
  );
  reporter.output('sha', result.after);
  reporter.output('previous-sha', result.before ?? '');
  reporter.output('changed', String(result.changed));
  reporter.output('added', result.added.map((a) => id(a.source)).join(','));
  reporter.output('skipped', result.skipped.map((s) => id(s.source)).join(','));
  await reporter.summary(rebuildSummary(result, names));
  return result;
}

/** Link to the current workflow run, when running in GitHub Actions. */
export function runUrlFrom(env: NodeJS.ProcessEnv): string | undefined {
  const { GITHUB_SERVER_URL: server, GITHUB_REPOSITORY: repo, GITHUB_RUN_ID: id } = env;
  return server && repo && id ? `${server}/${repo}/actions/runs/${id}` : undefined;
}
