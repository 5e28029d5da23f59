// The code to deploy, from git on the runner (or laptop): resolve a ref to one commit, hash dependency files,
// and pack exactly the objects a host lacks. The hosts never talk to GitHub: code reaches them as a pack
// over the SSH connection.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { OpsError } from './errors.ts';
import { validate } from './shell.ts';

const exec = promisify(execFile);

export async function git(repo: string, args: string[], options: { input?: string } = {}): Promise<string> {
  if (options.input !== undefined) {
    return new Promise((resolve, reject) => {
      const child = spawn('git', ['-C', repo, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('close', (code) => (code === 0 ? resolve(out) : reject(new OpsError(`git ${args[0]} failed: ${err.trim()}`))));
      child.stdin.end(options.input);
    });
  }
  try {
    const { stdout } = await exec('git', ['-C', repo, ...args], { maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new OpsError(`git ${args[0]} failed in ${repo}: ${(err.stderr || err.message).trim()}`);
  }
}

export interface ResolvedRef {
  ref: string;
  sha: string;
  /** What the ref matched: "tag v1", "branch origin/master", "commit". */
  matched: string;
}

async function tryRev(repo: string, rev: string, peel = '^{commit}'): Promise<string | undefined> {
  try {
    return (await git(repo, ['rev-parse', '--verify', '--quiet', `${rev}${peel}`])).trim() || undefined;
  } catch {
    return undefined;
  }
}

export async function checkRepository(repo: string): Promise<void> {
  if (!existsSync(repo)) throw new OpsError(`the repository to deploy, ${repo}, does not exist`, 'set `repository` in the environment, or run from the app\'s checkout');
  try {
    await git(repo, ['rev-parse', '--git-dir']);
  } catch {
    throw new OpsError(`${repo} is not a git repository`, 'set `repository` in the environment, or run from the app\'s checkout');
  }
}

/** One thing a short ref name may mean: a tag, a branch, or a commit whose sha starts with it. */
export interface RefMatch {
  kind: 'tag' | 'branch' | 'commit';
  /** How to name it without ambiguity: refs/tags/X, refs/heads/X, or the full sha. */
  fullName: string;
  sha: string;
}

/**
 * The error for a short name that means several things (git itself only warns "refname is ambiguous" and
 * picks one): says what each means and how to name the one wanted. Used wherever a ref is resolved.
 */
export function ambiguousRef(ref: string, matches: RefMatch[]): OpsError {
  return new OpsError(
    `ref "${ref}" is ambiguous: it names ${matches.map((m) => `${m.kind === 'commit' ? 'a commit' : `a ${m.kind}`} (${m.sha.slice(0, 12)})`).join(' and ')}`,
    `say which one: ${matches.map((m) => m.fullName).join(' or ')}`,
  );
}

/** Commits whose sha starts with `prefix` (4-40 hex digits), by git's own disambiguation. */
async function commitsWithPrefix(repo: string, prefix: string): Promise<string[]> {
  if (!/^[0-9a-f]{4,40}$/.test(prefix)) return [];
  const objects = (await git(repo, ['rev-parse', `--disambiguate=${prefix}`]).catch(() => '')).split('\n').filter(Boolean);
  const out: string[] = [];
  for (const o of objects) if ((await git(repo, ['cat-file', '-t', o]).catch(() => '')).trim() === 'commit') out.push(o);
  return out;
}

/**
 * One commit for a ref, resolved once on the runner. A full ref is taken as written: refs/tags/X (the tag),
 * refs/heads/X (the branch: the remote's, origin/X, what the team pushed, else the local one), any other
 * refs/... that exists. A short name must mean exactly one of: a tag, a branch (origin/X, else local X), a
 * commit (a sha or its prefix); a name that means several is refused as ambiguous, with the full names.
 */
export async function resolveRef(repo: string, ref: string): Promise<ResolvedRef> {
  validate('gitRef', ref);
  await checkRepository(repo);
  const full = /^refs\/(tags|heads)\/(.+)$/.exec(ref);
  if (full || ref.startsWith('refs/')) {
    const candidates: [string, string][] = !full
      ? [[ref, `ref ${ref}`]]
      : full[1] === 'tags'
        ? [[ref, `tag ${full[2]}`]]
        : [
            [`refs/remotes/origin/${full[2]}`, `branch origin/${full[2]}`],
            [ref, `branch ${full[2]}`],
          ];
    for (const [rev, matched] of candidates) {
      const sha = await tryRev(repo, rev);
      if (sha) return { ref, sha, matched };
    }
    throw new OpsError(`${ref} does not exist in ${repo}`, 'check the name; in a workflow, check out with fetch-depth: 0 so branches and tags are present; on a laptop, git fetch first');
  }
  const matches: (RefMatch & { matched: string })[] = [];
  const tag = await tryRev(repo, `refs/tags/${ref}`);
  if (tag) matches.push({ kind: 'tag', fullName: `refs/tags/${ref}`, sha: tag, matched: `tag ${ref}` });
  const remoteBranch = await tryRev(repo, `refs/remotes/origin/${ref}`);
  const branch = remoteBranch ?? (await tryRev(repo, `refs/heads/${ref}`));
  if (branch) matches.push({ kind: 'branch', fullName: `refs/heads/${ref}`, sha: branch, matched: remoteBranch ? `branch origin/${ref}` : `branch ${ref}` });
  const commits = /^[0-9a-f]{7,40}$/.test(ref) ? await commitsWithPrefix(repo, ref) : [];
  if (commits.length > 1) throw new OpsError(`sha prefix "${ref}" matches ${commits.length} commits`, 'give more digits of the sha');
  if (commits[0]) matches.push({ kind: 'commit', fullName: commits[0], sha: commits[0], matched: 'commit' });
  if (matches.length > 1) throw ambiguousRef(ref, matches);
  if (matches[0]) return { ref, sha: matches[0].sha, matched: matches[0].matched };
  throw new OpsError(
    `ref "${ref}" is not a tag, branch or commit of ${repo}`,
    'check the name; in a workflow, check out with fetch-depth: 0 so branches and tags are present; on a laptop, git fetch first',
  );
}

/** Content id of a file at a commit (git's blob id), or "" if absent. */
export async function blobId(repo: string, sha: string, path: string): Promise<string> {
  if (!path) return '';
  return (await tryRev(repo, `${sha}:${path}`, '')) ?? '';
}

/** A file's content at a commit, or undefined if absent. */
export async function fileAt(repo: string, sha: string, path: string): Promise<string | undefined> {
  if (!(await blobId(repo, sha, path))) return undefined;
  return git(repo, ['cat-file', 'blob', `${sha}:${path}`]);
}

/**
 * What `npm ci` installs from, as a stable string: the lockfile without the app's own version (a release
 * bump changes nothing installed), or package.json when there is no lockfile.
 */
export async function nodeDependencyInput(repo: string, sha: string, dir: string): Promise<string> {
  const lock = await fileAt(repo, sha, `${dir}/package-lock.json`);
  if (lock === undefined) return `package.json ${await blobId(repo, sha, `${dir}/package.json`)}`;
  try {
    const parsed = JSON.parse(lock) as { version?: string; packages?: Record<string, { version?: string }> };
    delete parsed.version;
    if (parsed.packages?.['']) delete parsed.packages[''].version;
    return `lock ${JSON.stringify(parsed)}`;
  } catch {
    return `lock ${await blobId(repo, sha, `${dir}/package-lock.json`)}`;
  }
}

/** What a commit's files take once written out (a release): bytes, and entries (files, links, directories). */
export async function treeSize(repo: string, sha: string): Promise<{ bytes: number; entries: number }> {
  // "<mode> <type> <object> <size>\t<path>", NUL-separated; -t lists the directories too (size "-").
  const out = await git(repo, ['ls-tree', '-r', '-t', '-l', '-z', sha]);
  let bytes = 0;
  let entries = 0;
  for (const entry of out.split('\0')) {
    if (!entry) continue;
    entries++;
    const size = Number(entry.split('\t')[0]!.trim().split(/\s+/)[3]);
    if (Number.isFinite(size)) bytes += size;
  }
  return { bytes, entries };
}

/** Short stable hash naming an installed dependency set (inputs: runtime, files' blob ids). */
export function depsHash(parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 16);
}

/** Which of these shas exist in the local repository (a host's commits we can use as the base of a thin pack). */
export async function knownCommits(repo: string, shas: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const sha of shas) if (/^[0-9a-f]{40}$/.test(sha) && (await tryRev(repo, sha))) out.push(sha);
  return out;
}

/** A thin pack holding `sha` and what it needs, minus what the host already has. */
export async function packFor(repo: string, sha: string, haves: string[]): Promise<Buffer> {
  const input = [sha, ...haves.map((h) => `^${h}`)].join('\n') + '\n';
  return new Promise((resolve, reject) => {
    const child = spawn('git', ['-C', repo, 'pack-objects', '--revs', '--thin', '--stdout', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new OpsError(`git pack-objects failed: ${err.trim()}`))));
    child.stdin.end(input);
  });
}

// ---------------------------------------------------------------------------------------------------------
// What `git archive` leaves out: submodules (gitlinks), Git LFS content (pointer files), export-ignore paths.

/** A submodule to put in the release: where, which commit, and the runner's repository holding it. */
export interface SubmoduleContent {
  /** Path in the release (nested submodules: the full path). */
  path: string;
  sha: string;
  /** The submodule's git directory on the runner (e.g. .git/modules/<name>). */
  gitDir: string;
}

/** A Git LFS file whose content the release must hold instead of its pointer. */
export interface LfsContent {
  path: string;
  /** sha256 of the content (the pointer's oid). */
  oid: string;
  size: number;
  /** The content on the runner (the LFS object store of the repository holding the file). */
  file: string;
}

export interface TreeContent {
  submodules: SubmoduleContent[];
  lfs: LfsContent[];
  /** Paths `git archive` leaves out because of export-ignore (directories end with "/"). */
  exportIgnored: string[];
}

interface TreeEntry {
  mode: string;
  type: string;
  object: string;
  size: number;
  path: string;
}

async function lsTree(repo: string, sha: string): Promise<TreeEntry[]> {
  const out = await git(repo, ['ls-tree', '-r', '-z', '-l', '--full-tree', sha]);
  return out
    .split('\0')
    .filter(Boolean)
    .map((line) => {
      const tab = line.indexOf('\t');
      const [mode = '', type = '', object = '', size = ''] = line.slice(0, tab).split(/\s+/);
      return { mode, type, object, size: Number(size) || 0, path: line.slice(tab + 1) };
    });
}

/** A Git LFS pointer (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md): oid and size, or undefined. */
export function parseLfsPointer(text: string): { oid: string; size: number } | undefined {
  if (!text.startsWith('version https://git-lfs.github.com/spec/v1\n') && !text.startsWith('version https://hawser.github.com/spec/v1\n')) return undefined;
  const oid = /^oid sha256:([0-9a-f]{64})$/m.exec(text)?.[1];
  const size = /^size (\d+)$/m.exec(text)?.[1];
  return oid && size ? { oid, size: Number(size) } : undefined;
}

/** Blob contents by id (as UTF-8 text), through one `git cat-file --batch` read as bytes. */
async function blobs(repo: string, ids: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!ids.length) return out;
  const raw = await new Promise<Buffer>((resolvePromise, reject) => {
    const child = spawn('git', ['-C', repo, 'cat-file', '--batch'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.on('close', (code) => (code === 0 ? resolvePromise(Buffer.concat(chunks)) : reject(new OpsError(`git cat-file failed in ${repo}`))));
    child.stdin.end(ids.join('\n') + '\n');
  });
  let pos = 0;
  for (const id of ids) {
    const nl = raw.indexOf(0x0a, pos);
    const size = Number(raw.subarray(pos, nl).toString().split(' ')[2] ?? 0);
    out.set(id, raw.subarray(nl + 1, nl + 1 + size).toString('utf8'));
    pos = nl + 1 + size + 1;
  }
  return out;
}

/** Attribute values for paths at a commit: git check-attr on a throwaway index of that commit (git < 2.40 has no --source). */
async function attributes(repo: string, sha: string, attr: string, paths: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!paths.length) return out;
  const dir = mkdtempSync(join(tmpdir(), 'ops-attr-'));
  try {
    const env = { ...process.env, GIT_INDEX_FILE: join(dir, 'index') };
    await exec('git', ['-C', repo, 'read-tree', sha], { env });
    const raw = await new Promise<string>((resolve, reject) => {
      const child = spawn('git', ['-C', repo, 'check-attr', '-z', '--cached', '--stdin', attr], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let o = '';
      child.stdout.on('data', (d) => (o += d));
      child.on('close', (code) => (code === 0 ? resolve(o) : reject(new OpsError(`git check-attr failed in ${repo}`))));
      child.stdin.end(paths.join('\0') + '\0');
    });
    const f = raw.split('\0');
    for (let i = 0; i + 2 < f.length; i += 3) out.set(f[i]!, f[i + 2]!);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

/** What `git archive <sha>` lists, by running it (export-ignore rules exactly as git applies them). */
async function archiveListing(repo: string, sha: string): Promise<Set<string>> {
  const { stdout } = await exec('bash', ['-c', 'set -o pipefail; git -C "$1" archive --format=tar "$2" | tar -t', 'archive', repo, sha], { maxBuffer: 256 * 1024 * 1024 });
  return new Set(stdout.split('\n').filter(Boolean));
}

async function absoluteGitDir(repo: string, which: '--git-common-dir' | '--absolute-git-dir'): Promise<string> {
  return (await git(repo, ['rev-parse', ...(which === '--git-common-dir' ? ['--path-format=absolute'] : []), which])).trim();
}

/** Where a repository keeps its LFS objects: lfs.storage if set (relative to the git dir), else <git dir>/lfs. */
async function lfsObjects(gitDir: string): Promise<string> {
  const storage = (await git(gitDir, ['config', '--get', 'lfs.storage']).catch(() => '')).trim();
  return join(storage ? resolve(gitDir, storage) : join(gitDir, 'lfs'), 'objects');
}

/**
 * What a release of `sha` needs beyond `git archive`, found in the runner's checkout: every submodule's
 * commit (recursively; from .git/modules/<name>, or a nested repository at its path), every Git LFS file's
 * content (pointer files the attributes mark filter=lfs; from the LFS object store), and the paths
 * export-ignore leaves out. Nothing is sent or changed here.
 * @throws OpsError naming the submodule paths or LFS files the runner lacks, and how to check them out.
 */
export async function treeContent(repo: string, sha: string): Promise<TreeContent> {
  const content: TreeContent = { submodules: [], lfs: [], exportIgnored: [] };
  const missingSubmodules: string[] = [];
  const missingLfs: string[] = [];
  const visit = async (dir: string, gitDir: string, commit: string, prefix: string, worktree: string | undefined): Promise<void> => {
    const entries = await lsTree(dir, commit);
    const attrFiles = entries.filter((e) => e.type === 'blob' && (e.path === '.gitattributes' || e.path.endsWith('/.gitattributes')));
    const attrText = [...(await blobs(dir, attrFiles.map((e) => e.object))).values()].join('\n');
    // Submodules: the gitlinks, named by .gitmodules (git's own parser, from the commit).
    const links = entries.filter((e) => e.type === 'commit');
    if (links.length) {
      const names = new Map<string, string>();
      const list = entries.some((e) => e.path === '.gitmodules') ? await git(dir, ['config', '--blob', `${commit}:.gitmodules`, '--null', '--list']).catch(() => '') : '';
      for (const item of list.split('\0')) {
        const m = /^submodule\.(.+)\.path\n([\s\S]*)$/.exec(item);
        if (m) names.set(m[2]!, m[1]!);
      }
      for (const link of links) {
        const name = names.get(link.path) ?? link.path;
        const candidates = [join(gitDir, 'modules', name), ...(worktree ? [join(worktree, link.path)] : [])];
        let found: string | undefined;
        for (const c of candidates) {
          if (!existsSync(c)) continue;
          const subGitDir = await absoluteGitDir(c, '--absolute-git-dir').catch(() => undefined);
          if (!subGitDir || subGitDir === gitDir) continue;
          if (await tryRev(subGitDir, link.object)) {
            found = subGitDir;
            break;
          }
        }
        const path = `${prefix}${link.path}`;
        if (!found) {
          missingSubmodules.push(`${path} (commit ${link.object.slice(0, 12)})`);
          continue;
        }
        content.submodules.push({ path, sha: link.object, gitDir: found });
        await visit(found, found, link.object, `${path}/`, worktree ? join(worktree, link.path) : undefined);
      }
    }
    // Git LFS: small blobs that are pointers, in paths the attributes send through the lfs filter.
    if (/filter=lfs/.test(attrText)) {
      const small = entries.filter((e) => e.type === 'blob' && e.size < 1024);
      const text = await blobs(dir, small.map((e) => e.object));
      const pointers = small.map((e) => ({ e, p: parseLfsPointer(text.get(e.object) ?? '') })).filter((x) => x.p);
      const filters = await attributes(dir, commit, 'filter', pointers.map((x) => x.e.path));
      const store = await lfsObjects(gitDir);
      for (const { e, p } of pointers) {
        if (filters.get(e.path) !== 'lfs') continue;
        const file = join(store, p!.oid.slice(0, 2), p!.oid.slice(2, 4), p!.oid);
        const path = `${prefix}${e.path}`;
        if (existsSync(file) && statSync(file).size === p!.size) content.lfs.push({ path, oid: p!.oid, size: p!.size, file });
        else missingLfs.push(path);
      }
    }
    // export-ignore: what git archive itself leaves out, against the tree.
    if (/export-ignore/.test(attrText)) {
      const listed = await archiveListing(dir, commit);
      const gone = entries.filter((e) => e.type === 'blob' && !listed.has(e.path)).map((e) => e.path);
      // Report a directory once when everything under it is gone.
      const dirs = new Set<string>();
      for (const p of gone) {
        const parts = p.split('/');
        for (let i = 1; i < parts.length; i++) {
          const d = parts.slice(0, i).join('/');
          if (!listed.has(`${d}/`)) {
            dirs.add(`${d}/`);
            break;
          }
        }
      }
      content.exportIgnored.push(...[...dirs].map((d) => `${prefix}${d}`), ...gone.filter((p) => ![...dirs].some((d) => p.startsWith(d))).map((p) => `${prefix}${p}`));
    }
  };
  const root = await absoluteGitDir(repo, '--git-common-dir');
  const top = (await git(repo, ['rev-parse', '--show-toplevel']).catch(() => '')).trim() || undefined;
  await visit(repo, root, sha, '', top);
  const problems: string[] = [];
  if (missingSubmodules.length) problems.push(`submodule${missingSubmodules.length > 1 ? 's' : ''} not checked out on this runner: ${missingSubmodules.join(', ')}`);
  if (missingLfs.length) problems.push(`Git LFS file${missingLfs.length > 1 ? 's' : ''} without content on this runner (only the pointer): ${missingLfs.slice(0, 10).join(', ')}${missingLfs.length > 10 ? ` and ${missingLfs.length - 10} more` : ''}`);
  if (problems.length)
    throw new OpsError(
      `${sha.slice(0, 12)} cannot be deployed complete: ${problems.join('; ')}; nothing was changed`,
      [
        missingSubmodules.length ? 'check out with submodules (actions/checkout with `submodules: recursive`; on a laptop: git submodule update --init --recursive)' : '',
        missingLfs.length ? 'fetch the LFS content (actions/checkout with `lfs: true`; on a laptop: git lfs pull)' : '',
      ]
        .filter(Boolean)
        .join('; '),
    );
  return content;
}
