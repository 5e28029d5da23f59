// The code to deploy, from git on the runner (or laptop): resolve a ref to one commit, hash dependency files,
// and pack exactly the objects a host lacks. The hosts never talk to GitHub: code reaches them as a pack
// over the SSH connection. (What a commit needs beyond `git archive`: tree-content.ts.)
import { createHash } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import { InputError, OpsError, indent, tail } from './errors.ts';
import { Git, git } from './git.ts';
import { validate } from './shell.ts';
import { userPath } from './config/environment.ts';
import { didYouMean } from './config/schema.ts';

export interface ResolvedRef {
  ref: string;
  sha: string;
  /** What the ref matched: "tag v1", "branch origin/master", "commit". */
  matched: string;
  /** What the runner's checkout holds that the deploy leaves out (a local branch of that name elsewhere): said, not deployed. */
  notes?: string[];
}

async function tryRev(repo: string, rev: string, peel = '^{commit}'): Promise<string | undefined> {
  try {
    return (await git(repo, ['rev-parse', '--verify', '--quiet', `${rev}${peel}`])).trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The commit each of `revs` names (peeled: a tag's commit), or undefined for one that names none, in ONE git
 * process (`cat-file --batch-check`: a line per name, "<sha> commit <size>", else "<name> missing|ambiguous").
 * @throws OpsError when `repo` does not exist or is not a git repository.
 */
async function commitsOf(repo: string, revs: string[]): Promise<(string | undefined)[]> {
  const r = await new Git(repo).run(['cat-file', '--batch-check'], { input: revs.map((rev) => `${rev}^{commit}\n`).join('') });
  if (r.code !== 0) {
    await checkRepository(repo);
    throw new OpsError(`cannot look up ${revs.join(', ')} in ${repo}: ${r.stderr.trim()}`);
  }
  const lines = r.stdout.split('\n');
  return revs.map((_, i) => /^([0-9a-f]{40,64}) commit \d+$/.exec(lines[i] ?? '')?.[1]);
}

/**
 * @throws InputError when `repo` does not exist or is not a git repository (with where to set it: the project's
 * settings or where ops is run from must change), OpsError when git refuses to read it (another user's).
 */
export async function checkRepository(repo: string): Promise<void> {
  if (!existsSync(repo)) throw new InputError(`the repository to deploy, ${repo}, does not exist`, 'set `repository` in the environment, or run from the app\'s checkout');
  const r = await new Git(repo).run(['rev-parse', '--git-dir']);
  if (r.code === 0) return;
  // git refuses a repository another user owns (safe.directory, git-config(1)): a container job reading the
  // runner's checkout, sudo on a laptop. Not "not a repository": it is one, and the fix is to trust it.
  if (/dubious ownership/.test(r.stderr))
    throw new OpsError(
      `git refuses to read ${repo}: it is owned by another user than the one running ops (git's safe.directory check)`,
      `run ops as the checkout's owner, or trust it: git config --global --add safe.directory ${repo} (in a container job, after actions/checkout)`,
    );
  throw new InputError(`${repo} is not a git repository`, 'set `repository` in the environment, or run from the app\'s checkout');
}

/** One thing a short ref name may mean: a tag, a branch, or a commit whose sha starts with it. */
export interface RefMatch {
  kind: 'tag' | 'branch' | 'commit';
  /** How to name it without ambiguity: refs/tags/X, refs/heads/X, or the full sha. */
  fullName: string;
  sha: string;
  /** What it is, in the error, when the kind alone would not tell two apart ("a local branch", "a remote-tracking branch"). */
  label?: string;
}

/**
 * The error for a short name that means several things (git itself only warns "refname is ambiguous" and
 * picks one): says what each means and how to name the one wanted. Used wherever a ref is resolved.
 */
export function ambiguousRef(ref: string, matches: RefMatch[]): OpsError {
  return new OpsError(
    `ref "${ref}" is ambiguous: it names ${matches.map((m) => `${m.label ?? (m.kind === 'commit' ? 'a commit' : `a ${m.kind}`)} (${m.sha.slice(0, 12)})`).join(' and ')}`,
    `say which one: ${matches.map((m) => m.fullName).join(' or ')}`,
  );
}

/** Commits whose sha starts with `prefix` (4-40 lower-case hex digits), by git's own disambiguation; [] for anything else. */
export async function commitsWithPrefix(repo: string, prefix: string): Promise<string[]> {
  if (!/^[0-9a-f]{4,40}$/.test(prefix)) return [];
  const objects = (await git(repo, ['rev-parse', `--disambiguate=${prefix}`]).catch(() => '')).split('\n').filter(Boolean);
  const out: string[] = [];
  for (const o of objects) if ((await git(repo, ['cat-file', '-t', o]).catch(() => '')).trim() === 'commit') out.push(o);
  return out;
}

/**
 * Of refs that name no commit, the first that names another object (a tag of a tree or a blob: `git tag v1
 * HEAD^{tree}`), as the error for it: fetching would not help, nor would another spelling. Undefined when none
 * exists (`cat-file --batch-check` of `<ref>^{}`, the object a tag peels to: gitrevisions(7)).
 */
async function notACommit(repo: string, refs: [rev: string, what: string][]): Promise<OpsError | undefined> {
  const r = await new Git(repo).run(['cat-file', '--batch-check'], { input: refs.map(([rev]) => `${rev}^{}\n`).join('') });
  const lines = r.stdout.split('\n');
  const i = refs.findIndex((_, k) => /^[0-9a-f]{40,64} (tree|blob) \d+$/.test(lines[k] ?? ''));
  if (r.code !== 0 || i < 0) return undefined;
  const [id = '', type = ''] = lines[i]!.split(' ');
  const [rev, what] = refs[i]!;
  return new OpsError(`${what} names a ${type} (${id.slice(0, 12)}), not a commit: there is no commit to deploy`, `deploy a commit: point ${rev} at one (git tag -f / git branch -f, then push), or give the commit's sha`);
}

/** What to check when a ref names nothing in the repository: the name, the clone's refs, and which repository it is. */
const REF_NOT_FOUND_HINT =
  "check the name; in a workflow, check out with fetch-depth: 0 so branches and tags are present; on a laptop, git fetch first; the repository deployed is the environment's `repository`, else the git checkout that holds environments/";

/**
 * The error for a ref that names nothing: a repository with no commit yet says so, an InputError (exit 2; neither
 * another ref nor fetching would help), one with
 * a branch or tag a slip or two from `typed` names it (`mian`: main, `v1.2.O`: v1.2.0; didYouMean), and one with
 * branches names a few of them (an environment's `ref: master` where the team's branch is `main`).
 */
async function refNotFound(repo: string, message: string, typed?: string): Promise<OpsError> {
  const listed = await new Git(repo).run(['for-each-ref', '--format=%(refname:short)', 'refs/heads', 'refs/remotes', 'refs/tags']);
  const names = listed.stdout.split('\n').filter((n) => n && !n.endsWith('/HEAD'));
  // no commit at all: whatever ref is given names nothing, so neither the ref nor a fetch is the fix (exit 2: the
  // project's repository is what is wrong, as for no repository at all)
  if (listed.code === 0 && !names.length)
    return new InputError(
      `nothing to deploy: ${repo} has no commits yet, so no ref names one`,
      `commit the app there first (git add -A && git commit), then deploy; the repository deployed is the environment's \`repository\`, else the git checkout that holds environments/`,
    );
  // origin's branches as they are deployed: by their own name (origin/main is `--ref main`)
  const shortNames = [...new Set(names.map((n) => n.replace(/^origin\//, '')))];
  const name = typed?.replace(/^refs\/(heads|tags)\//, '');
  // git's two default branch names, master and main: the one of them this repository has is the one meant
  const other = name === 'master' ? 'main' : name === 'main' ? 'master' : undefined;
  const near = name === undefined ? undefined : (didYouMean(name, shortNames) ?? (other && shortNames.includes(other) ? other : undefined));
  // a sha this clone lacks: a commit made in another clone and not pushed (or not fetched here yet), not a typo to list names for
  const sha = typed !== undefined && /^[0-9a-f]{7,40}$/i.test(typed);
  // A pull request's ref: a checkout fetches branches and tags (fetch-depth: 0), never refs/pull/*, but in a run
  // of that pull request's own event; its head (a fork's too) reaches a host through staging, which fetches it.
  const pull = typed === undefined ? undefined : /^(?:refs\/)?pull\/([0-9]+)(?:\/(?:head|merge))?$/.exec(typed)?.[1];
  if (pull) {
    return new OpsError(
      message,
      `a pull request's ref is not among what a checkout fetches (its branches and tags): deploy its branch, when it is one of this repository's, or add it to staging (staging.yml: mode add, ref pull/${pull}; ops staging add pull/${pull})`,
    );
  }
  return new OpsError(
    `${message}${near ? ` (did you mean ${near}?)` : ''}`,
    sha
      ? `no commit of this clone starts with ${typed}: a commit made in another clone reaches it once pushed (git push, then git fetch here; in a workflow, push before dispatching it), else check the sha (git log --oneline)`
      : `${names.length ? `its branches and tags include ${names.slice(0, 5).join(', ')}; ` : ''}${REF_NOT_FOUND_HINT}`,
  );
}

/**
 * One commit for a ref, resolved once on the runner. A full ref is taken as written: refs/tags/X (the tag),
 * refs/heads/X (the branch: the remote's, origin/X, what the team pushed, else the local one), refs/pull/N/merge
 * (a pull request's GITHUB_REF: as written, else where actions/checkout fetches it, refs/remotes/pull/N/merge), any
 * other refs/... that exists. A short name must mean exactly one of: a tag, a branch (origin/X, else local X), a
 * commit (a sha or its prefix); a name that means several is refused as ambiguous, with the full names.
 */
export async function resolveRef(repo: string, ref: string): Promise<ResolvedRef> {
  validate('gitRef', ref);
  if (!existsSync(repo)) await checkRepository(repo);
  const full = /^refs\/(tags|heads)\/(.+)$/.exec(ref);
  if (full || ref.startsWith('refs/')) {
    // A pull request's refs/pull/<n>/merge (or /head: GITHUB_REF of a pull_request event) is where actions/checkout
    // fetched it to, refs/remotes/pull/<n>/...; as written when it was fetched so.
    const pull = /^refs\/pull\/(.+)$/.exec(ref)?.[1];
    const candidates: [string, string][] = !full
      ? [[ref, `ref ${ref}`], ...(pull ? [[`refs/remotes/pull/${pull}`, `pull request ref pull/${pull}`] as [string, string]] : [])]
      : full[1] === 'tags'
        ? [[ref, `tag ${full[2]}`]]
        : [
            [`refs/remotes/origin/${full[2]}`, `branch origin/${full[2]}`],
            [ref, `branch ${full[2]}`],
          ];
    const shas = await commitsOf(repo, candidates.map(([rev]) => rev));
    const found = candidates.findIndex((_, i) => shas[i]);
    if (found >= 0) return { ref, sha: shas[found]!, matched: candidates[found]![1], ...(full?.[1] === 'heads' && localBranchNote(full[2]!, shas[0], shas[1])) };
    throw (await notACommit(repo, candidates)) ?? await refNotFound(repo, `${ref} does not exist in ${repo}`, ref);
  }
  // HEAD is the commit the checkout is at (gitrevisions(7)), detached or on a branch: never origin/HEAD (the
  // remote's default branch), which the branch lookup below would find.
  if (ref === 'HEAD') {
    const [head] = await commitsOf(repo, ['HEAD']);
    if (!head) throw await refNotFound(repo, `HEAD of ${repo} names no commit`);
    const on = (await new Git(repo).run(['symbolic-ref', '-q', '--short', 'HEAD'])).stdout.trim();
    return { ref, sha: head, matched: on ? `HEAD, branch ${on} as checked out` : 'HEAD, detached' };
  }
  const matches: (RefMatch & { matched: string })[] = [];
  // The names at once (one git process): the tag, the remote's branch, the local branch, a remote-tracking branch
  // named with its remote (origin/main: git's refs/remotes/<name> rule, gitrevisions(7)), and for hex digits the
  // commit they begin: in either case, as git reads a sha (a sha typed or copied in capitals, AC5FA79, is that
  // commit), looked up in lower case (git's object names; --disambiguate takes no capitals).
  const hex = /^[0-9a-f]{7,40}$/i.test(ref) ? ref.toLowerCase() : undefined;
  const tracking = ref.includes('/');
  const [tag, remoteBranch, localBranch, remoteNamed, prefixed] = await commitsOf(repo, [`refs/tags/${ref}`, `refs/remotes/origin/${ref}`, `refs/heads/${ref}`, tracking ? `refs/remotes/${ref}` : '', ...(hex ? [hex] : [])]);
  if (tag) matches.push({ kind: 'tag', fullName: `refs/tags/${ref}`, sha: tag, matched: `tag ${ref}` });
  const branch = remoteBranch ?? localBranch;
  if (branch) matches.push({ kind: 'branch', fullName: `refs/heads/${ref}`, sha: branch, matched: remoteBranch ? `branch origin/${ref}` : `branch ${ref}` });
  // Beside a branch of the same name (a local branch named origin/main, a mistake git allows), each is said as what it is.
  if (remoteNamed) {
    if (branch) matches[matches.length - 1]!.label = remoteBranch ? `a branch ${ref} of origin (origin/${ref})` : 'a local branch';
    matches.push({ kind: 'branch', fullName: `refs/remotes/${ref}`, sha: remoteNamed, matched: `branch ${ref}`, label: 'a remote-tracking branch' });
  }
  // git answers "<prefix>^{commit}" with the one commit it begins (preferring commits over other objects); not
  // when several commits begin with it (ambiguous), nor with a commit that does not begin with it (the name was a
  // ref, or a tag object's prefix peeled): then each commit beginning with it is looked up, to say how many.
  const commits = !hex ? [] : prefixed?.startsWith(hex) && !tag && !branch ? [prefixed] : await commitsWithPrefix(repo, hex);
  if (commits.length > 1) throw new OpsError(`sha prefix "${ref}" matches ${commits.length} commits`, 'give more digits of the sha');
  if (commits[0]) matches.push({ kind: 'commit', fullName: commits[0], sha: commits[0], matched: 'commit' });
  if (matches.length > 1) throw ambiguousRef(ref, matches);
  if (matches[0]) return { ref, sha: matches[0].sha, matched: matches[0].matched, ...(matches[0].kind === 'branch' && localBranchNote(ref, remoteBranch, localBranch)) };
  throw (
    (await notACommit(repo, [
      [`refs/tags/${ref}`, `tag ${ref}`],
      [`refs/remotes/origin/${ref}`, `branch origin/${ref}`],
      [`refs/heads/${ref}`, `branch ${ref}`],
      ...(tracking ? [[`refs/remotes/${ref}`, `branch ${ref}`] as [string, string]] : []),
    ])) ?? (await refNotFound(repo, `ref "${ref}" is not a tag, branch or commit of ${repo}`, ref))
  );
}

/**
 * A branch is deployed as the remote has it (origin/X: what the team pushed); a local branch X at another commit
 * (commits not pushed, or behind after a fetch) is not, and the plan says so. Pure.
 */
function localBranchNote(name: string, remote: string | undefined, local: string | undefined): { notes: string[] } | undefined {
  if (!remote || !local || remote === local) return undefined;
  return { notes: [`your local branch ${name} is at ${local.slice(0, 12)}, not deployed: the branch deployed is origin/${name} (${remote.slice(0, 12)}), what was pushed; push first, or deploy ${local.slice(0, 12)} by its sha`] };
}

/** How long the remote is given to say where a branch or tag is (remoteNotes): a laptop offline waits no longer. */
const REMOTE_CHECK_MS = 10_000;

/** Where origin has the branch or tag a ref matched, when not where the checkout has it (remoteMove). */
interface RemoteMove {
  /** "branch main", "tag v1". */
  what: string;
  /** The command that brings origin's into the checkout. */
  fetch: string;
  /** origin's commit now; undefined when origin has the ref no more (deleted since the checkout fetched it). */
  there?: string;
  branch: boolean;
}

/**
 * Whether the branch or tag deployed is where origin has it now: the checkout's origin/X (or tag X) is what it last
 * fetched, and a push since (or a tag moved: `git fetch` does not move a tag it has, git-fetch(1)) leaves it at an
 * older commit. Asked of origin in one `git ls-remote` (nothing fetched or changed); undefined when origin answers
 * with the commit resolved, when origin cannot be asked (none, offline, no credentials: not known) or the ref was
 * not a branch or tag (a sha, HEAD: the commit named).
 */
async function remoteMove(repo: string, resolved: ResolvedRef): Promise<RemoteMove | undefined> {
  const branch = /^branch origin\/(.+)$/.exec(resolved.matched)?.[1];
  const tag = /^tag (.+)$/.exec(resolved.matched)?.[1];
  const name = branch ? `refs/heads/${branch}` : tag ? `refs/tags/${tag}` : undefined;
  if (!name) return undefined;
  const g = new Git(repo);
  if ((await g.run(['config', '--get', 'remote.origin.url'])).code !== 0) return undefined;
  const r = await g.run(['ls-remote', 'origin', name, `${name}^{}`], { timeoutMs: REMOTE_CHECK_MS });
  if (r.code !== 0) return undefined;
  // "<sha>\t<ref>" lines: an annotated tag's commit is on its "^{}" line (git-ls-remote(1)).
  const at = new Map(r.stdout.split('\n').map((l) => l.split('\t')).filter((f) => f.length === 2).map(([sha, ref]) => [ref!, sha!]));
  const there = at.get(`${name}^{}`) ?? at.get(name);
  if (there === resolved.sha) return undefined;
  return { what: branch ? `branch ${branch}` : `tag ${tag}`, fetch: branch ? 'git fetch origin' : `git fetch origin --force tag ${tag}`, there, branch: !!branch };
}

/**
 * What remoteMove found, as notes (`ops diff`; a deploy refuses a move: deployNotes): origin's branch or tag at
 * another commit, or deleted, since the checkout fetched it. [] for none. Pure.
 */
function moveNotes(m: RemoteMove | undefined, resolved: ResolvedRef): string[] {
  const here = resolved.sha.slice(0, 12);
  if (!m) return [];
  if (!m.there) return [`origin has no ${m.what} any more (deleted since this checkout fetched it): the commit deployed is ${here}, as this checkout last fetched it`];
  return [`origin's ${m.what} is at ${m.there.slice(0, 12)} now, not ${here} as this checkout last fetched it (${m.branch ? 'pushed since' : 'the tag was moved'}): the commit deployed is ${here}; to deploy origin's, ${m.fetch} first`];
}

/** remoteMove's finding as notes (moveNotes): [] when origin has the ref at the commit resolved, or cannot be asked. */
export async function remoteNotes(repo: string, resolved: ResolvedRef): Promise<string[]> {
  return moveNotes(await remoteMove(repo, resolved), resolved);
}

/**
 * The refusal of a deploy of a branch or tag that origin now has at another commit than the checkout fetched
 * (remoteMove `m`, with `there`): the ref names origin's commit to whoever asked for it (a teammate's merge, a tag
 * moved to the fixed build), and deploying the checkout's older idea of it would report success while the site
 * serves the code from before that push. A commit is deployed on purpose by its sha, which names it alone. Pure.
 */
function moveError(m: RemoteMove & { there: string }, resolved: ResolvedRef): OpsError {
  const here = resolved.sha.slice(0, 12);
  return new OpsError(
    `origin's ${m.what} is at ${m.there.slice(0, 12)} now, not ${here} as this checkout last fetched it (${m.branch ? 'pushed since' : 'the tag was moved'}): deploying ${resolved.ref} would put ${here} live, not origin's ${m.what}; nothing was sent to any host`,
    `${m.fetch}, then deploy again; or, to put ${here} live on purpose, deploy it by its sha: --ref ${resolved.sha}`,
  );
}

/**
 * What the runner's checkout holds that a deploy of a commit does not: uncommitted changes (tracked files changed,
 * untracked files; `git status --porcelain -z`, git-status(1)). The release is the commit as committed; a laptop's
 * edits never reach a host, and the plan says so rather than let them look deployed. [] for a clean checkout or
 * a repository without a work tree. `project`: the ops project's folder; when it is in this checkout, its
 * `environments/` and `.sops.yaml` are left out: ops reads them from the working tree, so their edits do take
 * effect (a new environment not committed yet is not "not deployed").
 */
export async function checkoutNotes(repo: string, sha: string, project?: string): Promise<string[]> {
  const r = await new Git(repo).run(['status', '--porcelain=v1', '-z', '--no-renames']);
  if (r.code !== 0) return [];
  const own = project === undefined ? undefined : projectIn(repo, project);
  const entries = r.stdout
    .split('\0')
    .filter(Boolean)
    .filter((e) => own === undefined || !(e.slice(3) === `${own}.sops.yaml` || e.slice(3).startsWith(`${own}environments/`)));
  if (!entries.length) return [];
  const untracked = entries.filter((e) => e.startsWith('?? ')).length;
  const changed = entries.length - untracked;
  const counts = [changed ? `${changed} changed` : '', untracked ? `${untracked} untracked` : ''].filter(Boolean).join(', ');
  const head = (await new Git(repo).commit('HEAD')) ?? '';
  return [
    `not deployed: the uncommitted changes in ${repo} (${counts} file${entries.length > 1 ? 's' : ''}: ${entries.slice(0, 5).map((e) => e.slice(3)).join(', ')}${entries.length > 5 ? ', ...' : ''}); the release is commit ${sha.slice(0, 12)} as committed${head && head !== sha ? ` (the checkout is at ${head.slice(0, 12)})` : ''}`,
  ];
}

/** The path of `project` inside the checkout `repo` as git status names paths ("" at its root, else "dir/"), or undefined when it is not inside. */
function projectIn(repo: string, project: string): string | undefined {
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  const rel = relative(real(repo), real(project));
  if (rel.startsWith('..') || isAbsolute(rel)) return undefined;
  return rel ? `${rel.split('\\').join('/')}/` : '';
}

/**
 * Everything that makes the commit deployed not what the user may take it for, as warnings (the plan, the deploy's
 * log, `ops diff`): a local branch elsewhere (resolveRef's notes), origin's branch or tag moved or deleted since the
 * checkout fetched it (remoteMove, one `git ls-remote`; origin out of reach says nothing), uncommitted changes
 * (checkoutNotes; `project`: the ops project's folder, whose environments/ and .sops.yaml are read from the work
 * tree). [] when the commit is what the checkout and origin say. `refuseMoved` (a deploy): a branch or tag origin has
 * at another commit is refused (moveError), not warned of.
 * @throws OpsError with `refuseMoved`, for a ref origin has moved; nothing is changed.
 */
export async function notDeployedNotes(repo: string, resolved: ResolvedRef, { refuseMoved = false, project }: { refuseMoved?: boolean; project?: string } = {}): Promise<string[]> {
  const [moved, local] = await Promise.all([remoteMove(repo, resolved), checkoutNotes(repo, resolved.sha, project)]);
  if (refuseMoved && moved?.there) throw moveError({ ...moved, there: moved.there }, resolved);
  return [...(resolved.notes ?? []), ...moveNotes(moved, resolved), ...local];
}

/** One entry of a commit's tree, as `git ls-tree -r -t -l` lists it. */
export interface TreeEntry {
  /** "100644", "100755", "120000" (a symbolic link), "040000" (a directory), "160000" (a submodule). */
  mode: string;
  /** "blob", "tree" or "commit" (a submodule's gitlink). */
  type: string;
  object: string;
  /** Bytes of a blob; 0 for the others. */
  size: number;
  /** From the commit's root, "/"-separated, as stored (no quoting: -z). */
  path: string;
}

// Trees are immutable by sha: a listing read once serves every reader of the run (the plan's tree content, size
// and dependency inputs read the same commit at once).
const listings = new Map<string, Promise<TreeEntry[]>>();

/**
 * Every entry of a commit's tree, directories included, in ONE git process (`git ls-tree -r -t -l -z
 * --full-tree`, git-ls-tree(1)); kept for the process's life, keyed by repository and commit.
 * @throws GitError when the commit is unknown (and forgets it, so a later fetch can retry).
 */
export function treeEntries(repo: string, sha: string): Promise<TreeEntry[]> {
  const key = `${repo}\0${sha}`;
  let listing = listings.get(key);
  if (!listing) {
    listing = fetchMissing(repo, sha).then(() => git(repo, ['ls-tree', '-r', '-t', '-l', '-z', '--full-tree', sha])).then((out) =>
      out
        .split('\0')
        .filter(Boolean)
        .map((line) => {
          // "<mode> SP <type> SP <object> SP+ <size or ->\t<path>"
          const tab = line.indexOf('\t');
          const [mode = '', type = '', object = '', size = ''] = line.slice(0, tab).split(/\s+/);
          return { mode, type, object, size: Number(size) || 0, path: line.slice(tab + 1) };
        }),
    );
    listing.catch(() => listings.delete(key));
    listings.set(key, listing);
  }
  return listing;
}

/**
 * In a partial clone (`git clone --filter=blob:none`, as some CI checks out; its promisor remote named by
 * `remote.<name>.promisor` or `extensions.partialClone`: git-config(1), partial-clone in git's technical
 * documentation), the objects of `sha`'s tree the clone lacks, fetched from that remote in ONE fetch per level of
 * trees missing, before anything reads them: else git fetches each missing object on its own as a reader meets
 * it (`ls-tree -l` needs every blob's size: one fetch per file, minutes for a tree of thousands). The missing
 * objects are listed without fetching (`rev-list --objects --missing=print`, git-rev-list(1)), then asked for by id
 * as git's own lazy fetch does. One git process for a clone that is not partial.
 * @throws OpsError naming the clone, the remote and git's message when the fetch fails (no network, no remote).
 */
async function fetchMissing(repo: string, sha: string): Promise<void> {
  const g = new Git(repo);
  // Promisor remotes: `remote.<name>.promisor` true (what `git clone --filter` sets), or `extensions.partialClone`.
  const config = (await g.run(['config', '--null', '--get-regexp', '^(extensions\\.partialclone|remote\\..+\\.promisor)$'])).stdout.split('\0').filter(Boolean);
  const remote = config
    .map((item) => {
      const [key = '', value = ''] = item.split('\n');
      if (key === 'extensions.partialclone') return value;
      return /^(true|yes|on|1)$/i.test(value) ? key.slice('remote.'.length, -'.promisor'.length) : '';
    })
    .find(Boolean);
  if (!remote) return;
  // Each fetch brings the objects asked for; a missing tree's own entries show up on the next look (a tree:0 clone).
  let asked = '';
  for (let level = 0; level < 64; level++) {
    const listed = await g.run(['rev-list', '--objects', '--no-walk', '--missing=print', sha]);
    if (listed.code !== 0) return; // an unknown commit: the listing says so
    const missing = listed.stdout.split('\n').filter((l) => l.startsWith('?')).map((l) => l.slice(1));
    if (!missing.length || missing.join() === asked) return; // nothing missing, or what the remote did not send: the reader says
    asked = missing.join();
    const r = await g.run(['-c', 'fetch.negotiationAlgorithm=noop', 'fetch', remote, '--no-tags', '--no-write-fetch-head', '--recurse-submodules=no', '--filter=blob:none', '--stdin'], {
      input: missing.join('\n') + '\n',
    });
    if (r.code !== 0)
      throw new OpsError(
        `${repo} is a partial clone (promisor remote ${remote}) without ${missing.length} object(s) of commit ${sha.slice(0, 12)}'s files, and fetching them from ${remote} failed${r.stderr.trim() ? `:\n${indent(tail(r.stderr.trim(), 8))}` : ''}`,
        `let the runner reach ${remote} and deploy again, or deploy from a full clone (actions/checkout without \`filter:\`; git clone without --filter); nothing was changed`,
      );
  }
}

/** Content id of a file (or directory) at a commit (git's object id), or "" if absent. */
export async function blobId(repo: string, sha: string, path: string): Promise<string> {
  if (!path) return '';
  // A plain relative path is found in the commit's listing; anything git would resolve itself ("./x", "a/../b")
  // is asked of git.
  if (path.split('/').every((part) => part && part !== '.' && part !== '..')) return (await treeEntries(repo, sha)).find((e) => e.path === path)?.object ?? '';
  return (await tryRev(repo, `${sha}:${path}`, '')) ?? '';
}

/** A file's content at a commit, or undefined if absent. */
export async function fileAt(repo: string, sha: string, path: string): Promise<string | undefined> {
  const id = await blobId(repo, sha, path);
  if (!id) return undefined;
  return git(repo, ['cat-file', 'blob', id]);
}

/** What a commit's files take once written out (a release): bytes, and entries (files, links, directories). */
export async function treeSize(repo: string, sha: string): Promise<{ bytes: number; entries: number }> {
  const entries = await treeEntries(repo, sha);
  return { bytes: entries.reduce((sum, e) => sum + e.size, 0), entries: entries.length };
}

/**
 * Which of these shas are commits of the local repository (a host's commits we can use as the base of a thin
 * pack, or its shallow ones), in one git process.
 */
export async function knownCommits(repo: string, shas: string[]): Promise<string[]> {
  const candidates = [...new Set(shas.filter((sha) => /^[0-9a-f]{40}$/.test(sha)))];
  if (!candidates.length) return [];
  const found = await commitsOf(repo, candidates);
  return candidates.filter((_, i) => found[i]);
}

/** A pack for a host, and the commits in it whose parents are not (the runner's shallow boundary). */
export interface Pack {
  bytes: Buffer;
  /**
   * Commits of the pack whose parents it leaves out because the runner itself lacks them (a shallow clone: the
   * commits its `shallow` file lists): the host records them as shallow, as `git fetch --depth` does.
   */
  shallow: string[];
}

/**
 * A thin pack holding `sha` and what it needs, minus what the host already has (`haves`: commits it holds).
 * `hostShallow`: the host's commits whose history it lacks (its mirror's `shallow` file; deployState). A commit
 * the host holds is taken to come with all its history (git's rule for what a `have` means), which a commit sent
 * from a shallow clone does not: given as `--shallow <sha>` (git-pack-objects(1), --revs: "--not or --shallow
 * <SHA-1> lines are also accepted"; what upload-pack tells it of a shallow client), its parents are not taken to
 * be on the host, so objects only they hold are sent, not left out as bases the host lacks.
 * @returns the pack's bytes (git pack-objects --thin: objects the host has may be left out as deltas' bases) and
 * its shallow commits when the runner's clone is shallow.
 * @throws GitError when git cannot pack (an unknown commit).
 */
export async function packFor(repo: string, sha: string, haves: string[], hostShallow: string[] = []): Promise<Pack> {
  const g = new Git(repo);
  const input = [...hostShallow.map((s) => `--shallow ${s}`), sha, ...haves.map((h) => `^${h}`)].join('\n') + '\n';
  const bytes = await g.bytes(['pack-objects', '--revs', '--thin', '--stdout', '-q'], { input });
  return { bytes, shallow: await shallowIn(g, sha) };
}

/**
 * The runner's shallow commits (its `shallow` file, gitrepository-layout(5)) reachable from any of `shas`: none in a
 * full clone (one git process to know it); else those `git rev-list <shas>` lists, a walk the clone's depth bounds.
 * The host records those it received without their parents (receivePack); a walk that meets one stopped where the
 * clone's history stops, so what it did not find (an ancestor) may still be there (describeChange).
 */
async function shallowIn(g: Git, ...shas: string[]): Promise<string[]> {
  const [flag, file] = (await g.out(['rev-parse', '--is-shallow-repository', '--git-path', 'shallow'])).split('\n');
  if (flag !== 'true' || !file) return [];
  const boundary = (await readFile(isAbsolute(file) ? file : resolve(g.dir, file), 'utf8').catch(() => '')).split('\n').filter((l) => /^[0-9a-f]{40,64}$/.test(l));
  if (!boundary.length) return [];
  const listed = new Set((await g.out(['rev-list', ...shas])).split('\n'));
  return boundary.filter((s) => listed.has(s));
}

/**
 * Whether the history of any of `shas` (commits of `repo`) is cut short by the clone's depth (a shallow clone:
 * actions/checkout's default `fetch-depth: 1`, or a commit fetched with `--depth`): then "is A an ancestor of B" is
 * not answered by the clone, whose walk stops at its shallow commits. False in a full clone.
 * @throws GitError when a sha is not a commit of `repo`.
 */
export async function historyCut(repo: string, shas: string[]): Promise<boolean> {
  return (await shallowIn(new Git(repo), ...shas)).length > 0;
}

/**
 * The repository deployed from: the environment's `repository` (relative to the project root), else the git
 * repository holding the project (its top level), else the project root itself (without `env`; with it, an InputError:
 * no repository to deploy from). @throws InputError when the one configured does not exist, or (with `env`) when none
 * is configured and the project is in no git checkout; nothing is changed.
 */
export async function sourceRepository(projectRoot: string, configured: string | undefined, env?: { name: string; dir: string }): Promise<string> {
  if (configured) {
    const repo = userPath(projectRoot, configured);
    if (env && !existsSync(repo)) {
      // Where a relative one was taken from (ssh.identity_file and the other files of an environment start from its
      // folder, this one from the project's): the folder it was likely meant from is named when the clone is there.
      const typed = !isAbsolute(configured) && !configured.startsWith('~');
      const fromEnv = typed ? userPath(env.dir, configured) : undefined;
      throw new InputError(
        `repository ${JSON.stringify(configured)} (environments/${env.name}/environment.yml) is ${repo}, which does not exist${typed ? `: a relative repository starts from the project folder, ${projectRoot}` : ''}`,
        fromEnv && existsSync(fromEnv)
          ? `it names ${fromEnv} from the environment's folder: write it from the project folder, repository: ${relative(projectRoot, fromEnv) || '.'} (or absolute)`
          : 'set repository to the app\'s git clone on this machine (absolute, or relative to the project folder), or leave it out to deploy the repository ops runs in',
      );
    }
    return repo;
  }
  const top = await new Git(projectRoot).run(['rev-parse', '--show-toplevel']).catch(() => undefined);
  if (top?.code === 0) return top.stdout.trim();
  // No checkout around the project and none configured: said as that, with both ways out, before any ref is looked up
  // (a ref's "not found" would blame the ref). git refusing a checkout that is there (another user's) is checkRepository's.
  if (env && top && !/dubious ownership/.test(top.stderr))
    throw new InputError(
      `${projectRoot} is not in a git checkout, and environments/${env.name}/environment.yml sets no repository: ops deploys commits of the app's git repository, and has none to read`,
      `run ops from the app's git checkout (a clone holding this project), or set repository: in environments/${env.name}/environment.yml to the path of the app's clone on this machine`,
    );
  return projectRoot;
}
