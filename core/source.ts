// The code to deploy, from git on the runner (or laptop): resolve a ref to one commit, hash dependency files,
// and pack exactly the objects a host lacks. The hosts never talk to GitHub: code reaches them as a pack
// over the SSH connection.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
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

/**
 * One commit for a ref, resolved once on the runner: tags first, then the remote's branch (what the team
 * pushed), then a local branch, then a full or abbreviated sha.
 */
export async function resolveRef(repo: string, ref: string): Promise<ResolvedRef> {
  validate('gitRef', ref);
  await checkRepository(repo);
  const candidates: [string, string][] = [
    [`refs/tags/${ref}`, `tag ${ref}`],
    [`refs/remotes/origin/${ref}`, `branch origin/${ref}`],
    [`refs/heads/${ref}`, `branch ${ref}`],
  ];
  for (const [rev, matched] of candidates) {
    const sha = await tryRev(repo, rev);
    if (sha) return { ref, sha, matched };
  }
  if (/^[0-9a-f]{7,40}$/.test(ref)) {
    const sha = await tryRev(repo, ref);
    if (sha) return { ref, sha, matched: 'commit' };
  }
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
