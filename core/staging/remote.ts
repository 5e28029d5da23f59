// Staging sync and the remote: open the local clone, read the remote's main, staging, tracking refs and the
// wanted refs (one ls-remote, one fetch into a scratch namespace), resolve a ref to the commit to bring in,
// and push atomically (a refused push tells whether staging moved meanwhile).
import { InputError, OpsError } from '../errors.ts';
import { DEFAULT_IDENTITY, Git, GitError, type Identity } from '../git.ts';
import { ambiguousRef, commitsWithPrefix } from '../source.ts';
import { StagingRefusal, short } from './messages.ts';
import { type AddedRecord, LOG_FORMAT, parseLog, pushHint, trailerRecords, uniqueRecords } from './plan.ts';
import { type PullInfo, type RefRequest, SHA, type Source, TRACKING_PREFIX, commitKey, displayName, keyOfTrackingRef, pickRemoteRef } from './refs.ts';
import type { StagingContext } from './settings.ts';

// Our scratch refs in the local repository (fetched copies of the remote's refs), removed when done.
const LOCAL = 'refs/ops-staging/';

const MIN_GIT: [number, number] = [2, 38]; // merge-tree --write-tree

/**
 * A Git runner on the repository that holds `dir` (a working tree or a bare repository), checked for use. @throws
 * InputError when `dir` is no git repository or has no remote `options.remote` (what was given must change), OpsError
 * when git is too old.
 */
export async function openRepository(dir: string, options: { identity?: Identity; processEnv?: NodeJS.ProcessEnv; interactive?: boolean; remote: string }): Promise<Git> {
  const probe = new Git(dir, { processEnv: options.processEnv, identity: options.identity ?? DEFAULT_IDENTITY, interactive: options.interactive });
  const [major, minor] = await probe.version();
  if (major < MIN_GIT[0] || (major === MIN_GIT[0] && minor < MIN_GIT[1])) {
    throw new OpsError(`git ${major}.${minor} is too old for staging sync (it needs ${MIN_GIT.join('.')} or later, for merge-tree --write-tree)`, 'install a newer git (Debian 12 has 2.39)');
  }
  const r = await probe.run(['rev-parse', '--absolute-git-dir']);
  if (r.code !== 0) {
    throw new InputError(`${dir} is not a git repository`, 'run from a clone of the repository, or name one with --repo (on a runner: actions/checkout with fetch-depth: 0 first)');
  }
  const url = await probe.run(['remote', 'get-url', '--', options.remote]);
  if (url.code !== 0) throw new InputError(`the repository in ${dir} has no remote named "${options.remote}"`, `add it (git remote add ${options.remote} <url>) or name another with --remote`);
  return probe;
}

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

/** Delete our scratch refs (refs/ops-staging/) in the local repository. */
export async function clearLocal(git: Git): Promise<void> {
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

/**
 * How to name the main branch when the one given is not on the remote: the remote's default branch (its HEAD, as
 * `git ls-remote --symref` says), which a repository created on GitHub names `main` where these settings default to
 * `master`; the general advice when the remote names none, or only the staging branch.
 */
async function missingMainHint(ctx: StagingContext): Promise<string> {
  const { remote, staging } = ctx.settings;
  const general = 'name the branch staging is rebuilt from with main-branch / --main';
  const out = await ctx.git.out(['ls-remote', '--symref', remote, 'HEAD']).catch(() => '');
  const head = /^ref: refs\/heads\/(\S+)\tHEAD$/m.exec(out)?.[1];
  if (!head || head === staging) return general;
  return `${remote}'s default branch is "${head}": give main-branch: ${head} to the staging-sync step (staging.yml), or --main ${head} to ops staging`;
}

/** Ask the remote for main, staging, the tracking refs and the wanted source refs; fetch them all. */
export async function readRemote(ctx: StagingContext, wanted: string[]): Promise<RemoteState> {
  const { remote, main, staging } = ctx.settings;
  await unshallow(ctx);
  const mainRef = `refs/heads/${main}`;
  const stagingRef = `refs/heads/${staging}`;
  const advertised = await lsRemote(ctx, [...new Set([mainRef, stagingRef, ...wanted])]);
  if (!advertised.has(mainRef)) throw new OpsError(`the main branch "${main}" does not exist on ${remote}`, await missingMainHint(ctx));

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

/**
 * Resolve a parsed ref against what the remote has: the commit to bring in and the key to remember it by.
 * @throws OpsError for a name that means two things (a branch and a tag; a branch or tag named in hex, 7 to 40
 * digits, that also begins a commit here), saying how to name each; StagingRefusal ('missing') for a commit found
 * nowhere or a ref gone while fetched.
 */
export async function resolveSource(ctx: StagingContext, request: RefRequest, state: RemoteState, pullInfo?: PullInfo): Promise<Source> {
  const picked = pickRemoteRef(request, state.advertised, ctx.settings.remote);
  if (picked === 'sha') {
    const hex = request.input.toLowerCase(); // a sha given in capitals (pickRemoteRef takes either case)
    let sha = await ctx.git.commit(hex);
    if (!sha && /^[0-9a-f]{40}$/.test(hex)) {
      // Not here yet: ask the remote for that commit (GitHub serves any reachable commit by sha).
      const r = await ctx.git.run(['fetch', '--no-tags', '--no-write-fetch-head', '--quiet', ctx.settings.remote, `${hex}:${LOCAL}sha`]);
      if (r.code === 0) sha = await ctx.git.commit(hex);
    }
    if (!sha) throw new StagingRefusal('missing', `commit ${request.input} is not in this repository nor on ${ctx.settings.remote}`, 'give a branch, a tag, a pull request (pull/12) or a full commit sha');
    return { display: sha.slice(0, 12), key: commitKey(sha), sha, pull: pullInfo };
  }
  const sha = state.sources.get(picked);
  if (!sha) throw new StagingRefusal('missing', `${picked} disappeared from ${ctx.settings.remote} while it was being fetched`, 'try again');
  if (request.kind === 'name' && SHA.test(request.input)) {
    // A branch or tag named in hex (deadbeef, a copied short sha) that also begins a commit here: refused as a deploy
    // refuses it (resolveSource in core/source.ts), not taken as the branch while the user meant the commit.
    const commits = await commitsWithPrefix(ctx.git.dir, request.input.toLowerCase());
    if (commits.length) {
      const kind = picked.startsWith('refs/tags/') ? 'tag' : 'branch';
      throw ambiguousRef(request.input, [{ kind, fullName: picked, sha }, ...commits.map((c) => ({ kind: 'commit' as const, fullName: c, sha: c }))]);
    }
  }
  return { display: pullInfo ? `#${pullInfo.number} (${pullInfo.branch})` : displayName(picked), key: picked, sha, pull: pullInfo };
}

/** What was added to staging (tip) before: merge trailers since main, and tracking refs whose head is in tip. */
export async function recordsAt(ctx: StagingContext, tip: string, main: string, tracking: Map<string, string>): Promise<AddedRecord[]> {
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

export interface RefUpdate {
  ref: string;
  /** New value; null deletes the ref. */
  sha: string | null;
  /** --force-with-lease expectation ('' = must not exist); undefined = a plain (fast-forward only) push. */
  lease?: string;
}

/**
 * Push all updates at once (`git push --atomic`; leases where given). @returns ok, or the push's error (saying
 * staging was not changed, then git's words) with a hint (protected branch, workflow permission, credentials).
 * Never throws for a refused push.
 */
export async function pushAtomic(ctx: StagingContext, updates: RefUpdate[]): Promise<{ ok: true } | { ok: false; error: OpsError }> {
  const { remote, staging } = ctx.settings;
  const args = ['push', '--atomic', '--porcelain', remote];
  for (const u of updates) if (u.lease !== undefined) args.push(`--force-with-lease=${u.ref}:${u.lease}`);
  for (const u of updates) args.push(`${u.sha ?? ''}:${u.ref}`);
  const r = await ctx.git.run(args);
  if (r.code === 0) return { ok: true };
  // git's words say what refused it, not what it left: one atomic push, so nothing of it landed
  const git = new GitError(args, r, pushHint(r.stderr + r.stdout, staging));
  return { ok: false, error: new OpsError(`${remote} refused the push, so ${staging} was not changed by this run (one atomic push: none of its refs moved): ${git.message}`, git.hint) };
}

/** After a refused push: did staging or our tracking refs move on the remote since `state` was read? */
export async function movedSince(ctx: StagingContext, state: RemoteState): Promise<string | undefined> {
  const now = await lsRemote(ctx, [`refs/heads/${ctx.settings.staging}`]);
  const staging = now.get(`refs/heads/${ctx.settings.staging}`);
  if (staging !== state.staging) return `${ctx.settings.staging} moved on ${ctx.settings.remote}: ${short(state.staging)} → ${short(staging)}`;
  const tracking = new Map([...now].filter(([n]) => n.startsWith(TRACKING_PREFIX)).map(([n, s]) => [keyOfTrackingRef(n) ?? n, s]));
  const keys = new Set([...tracking.keys(), ...state.tracking.keys()]);
  for (const k of keys) if (tracking.get(k) !== state.tracking.get(k)) return `the record of ${displayName(k)} moved on ${ctx.settings.remote}`;
  return undefined;
}

/** Wait before retry `attempt` (1, 2...): retryDelayMs × attempt, with jitter (0.5-1.5×). */
export async function backoff(ctx: StagingContext, attempt: number): Promise<void> {
  const ms = ctx.settings.retryDelayMs * attempt * (0.5 + Math.random());
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
}
