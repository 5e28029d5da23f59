// What a release of a commit needs beyond `git archive`, found in the runner's checkout: submodules (git
// archive leaves gitlinks empty), Git LFS contents (it leaves pointer files), and the paths export-ignore
// leaves out (for the plan). Read with the one git runner (core/git.ts); nothing is sent or changed here.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { OpsError } from './errors.ts';
import { Git, git } from './git.ts';
import { quote } from './shell.ts';
import { treeEntries } from './source.ts';


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

/** A Git LFS pointer (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md): oid and size, or undefined. */
export function parseLfsPointer(text: string): { oid: string; size: number } | undefined {
  if (!text.startsWith('version https://git-lfs.github.com/spec/v1\n') && !text.startsWith('version https://hawser.github.com/spec/v1\n')) return undefined;
  const oid = /^oid sha256:([0-9a-f]{64})$/m.exec(text)?.[1];
  const size = /^size (\d+)$/m.exec(text)?.[1];
  return oid && size ? { oid, size: Number(size) } : undefined;
}

/**
 * Blob contents as UTF-8 text by object name (a blob id, or `<commit>:<path>`), through one `git cat-file --batch`
 * read as bytes (git-cat-file(1), "BATCH OUTPUT": "<oid> <type> <size>\n<contents>\n", or "<name> missing\n"). A
 * name that does not resolve (or holds a newline) is absent from the map. @throws GitError when git fails.
 */
export async function blobTexts(repo: string, names: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  // The protocol is a line per name: a path with a newline in it (git allows one) cannot be asked for.
  const asked = names.filter((n) => !n.includes('\n'));
  if (!asked.length) return out;
  const raw = await new Git(repo).bytes(['cat-file', '--batch'], { input: asked.join('\n') + '\n' });
  let pos = 0;
  for (const name of asked) {
    const nl = raw.indexOf(0x0a, pos);
    if (nl < 0) break;
    const header = raw.subarray(pos, nl).toString().split(' ');
    pos = nl + 1;
    // "missing" / "ambiguous" (or a name with a space in it: its own last word): no contents follow.
    if (header.length !== 3 || !/^\d+$/.test(header[2]!)) continue;
    const size = Number(header[2]);
    out.set(name, raw.subarray(pos, pos + size).toString('utf8'));
    pos += size + 1;
  }
  return out;
}

/**
 * Attribute values for paths at a commit: git check-attr on a throwaway index of that commit (git < 2.40 has no
 * --source). As this clone reads them: the commit's .gitattributes files, and the clone's own rules
 * ($GIT_DIR/info/attributes, core.attributesFile, the system's) that no other clone has. `committed`: the commit's
 * .gitattributes alone, as every clone reads them (check-attr in an empty repository borrowing this one's objects,
 * with no global or system file), so what a release holds does not depend on the runner.
 */
async function attributes(repo: string, sha: string, attr: string, paths: string[], committed = false): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!paths.length) return out;
  const dir = mkdtempSync(join(tmpdir(), 'ops-attr-'));
  try {
    let at = repo;
    let env: Record<string, string> = { GIT_INDEX_FILE: join(dir, 'index') };
    const config: string[] = [];
    if (committed) {
      const objects = (await git(repo, ['rev-parse', '--path-format=absolute', '--git-path', 'objects'])).trim();
      at = join(dir, 'bare');
      // --template= : no template directory (init.templateDir could bring an info/attributes of its own).
      await git(dir, ['init', '-q', '--bare', '--template=', at]);
      env = { ...env, GIT_ALTERNATE_OBJECT_DIRECTORIES: objects, GIT_ATTR_NOSYSTEM: '1' };
      config.push('-c', 'core.attributesFile=/dev/null');
    }
    await git(at, [...config, 'read-tree', sha], { env });
    const f = (await git(at, [...config, 'check-attr', '-z', '--cached', '--stdin', attr], { env, input: paths.join('\0') + '\0' })).split('\0');
    for (let i = 0; i + 2 < f.length; i += 3) out.set(f[i]!, f[i + 2]!);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

/**
 * Whether this clone has attribute rules of its own that send files through the LFS filter ($GIT_DIR/info/attributes,
 * core.attributesFile or its default $XDG_CONFIG_HOME/git/attributes, the system's /etc/gitattributes; gitattributes(5)):
 * files they mark are LFS files here and pointer text in every other clone. Read as text, before any blob is.
 */
async function ownLfsRules(repo: string): Promise<boolean> {
  const info = (await git(repo, ['rev-parse', '--path-format=absolute', '--git-path', 'info/attributes']).catch(() => '')).trim();
  const configured = (await new Git(repo).run(['config', '--path', '--get', 'core.attributesFile'])).stdout.trim();
  const xdg = process.env.XDG_CONFIG_HOME || (process.env.HOME ? join(process.env.HOME, '.config') : '');
  const files = [info, configured || (xdg ? join(xdg, 'git', 'attributes') : ''), '/etc/gitattributes'].filter(Boolean);
  return files.some((f) => {
    try {
      return /filter=lfs/.test(readFileSync(f, 'utf8'));
    } catch {
      return false;
    }
  });
}

/** What `git archive <sha>` lists, by running it (export-ignore rules exactly as git applies them): git writes the archive, tar lists it. */
async function archiveListing(repo: string, sha: string): Promise<Set<string>> {
  const dir = mkdtempSync(join(tmpdir(), 'ops-archive-'));
  try {
    const file = join(dir, 'release.tar');
    await git(repo, ['archive', '--format=tar', '-o', file, sha]);
    const { stdout } = await promisify(execFile)('tar', ['-tf', file], { maxBuffer: 256 * 1024 * 1024 });
    return new Set(stdout.split('\n').filter(Boolean));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
 * The Git LFS fetch filters set for `repo` at `sha` (lfs.fetchinclude, lfs.fetchexclude: from git config, else the
 * commit's .lfsconfig, git-lfs-config(5)), as "<where> <key> = <value>"; [] when none.
 */
async function lfsFetchFilters(repo: string, sha: string): Promise<string[]> {
  const out: string[] = [];
  for (const key of ['lfs.fetchinclude', 'lfs.fetchexclude']) {
    const configured = (await new Git(repo).run(['config', '--get', key])).stdout.trim();
    const committed = configured ? '' : (await new Git(repo).run(['config', '--blob', `${sha}:.lfsconfig`, '--get', key])).stdout.trim();
    if (configured) out.push(`git config's ${key} = ${configured}`);
    else if (committed) out.push(`.lfsconfig's ${key} = ${committed}`);
  }
  return out;
}

/**
 * What a release of `sha` needs beyond `git archive`, found in the runner's checkout: every submodule's
 * commit (recursively; from .git/modules/<name>, or a nested repository at its path), every Git LFS file's
 * content (pointer files the attributes mark filter=lfs; from the LFS object store), and the paths
 * export-ignore leaves out. Nothing is sent or changed here.
 * @throws OpsError naming the submodule paths (not checked out; skipped as `update = none`; checked out without the
 * commit) or LFS files the runner lacks, and how to get each.
 */
export async function treeContent(repo: string, sha: string): Promise<TreeContent> {
  const content: TreeContent = { submodules: [], lfs: [], exportIgnored: [] };
  // Submodules the release needs and the runner cannot give: not checked out at all; checked out with `update = none`
  // skipped on purpose (`git submodule update` and actions/checkout pass it by); checked out without the commit.
  const missingSubmodules: string[] = [];
  const skippedSubmodules: string[] = [];
  const skippedPaths: string[] = [];
  const staleSubmodules: string[] = [];
  const missingLfs: string[] = [];
  // LFS files by this clone's own attribute rules only (ownLfsRules): pointer text in the commit for everyone else.
  const ownLfs: string[] = [];
  // gitDir and worktree are asked of git only when a submodule or an LFS file needs them (most trees have neither).
  const visit = async (dir: string, gitDirOf: () => Promise<string>, commit: string, prefix: string, worktreeOf: () => Promise<string | undefined>): Promise<void> => {
    const entries = await treeEntries(dir, commit);
    const attrFiles = entries.filter((e) => e.type === 'blob' && (e.path === '.gitattributes' || e.path.endsWith('/.gitattributes')));
    const attrText = [...(await blobTexts(dir, attrFiles.map((e) => e.object))).values()].join('\n');
    // Submodules: the gitlinks, named by .gitmodules (git's own parser, from the commit).
    const links = entries.filter((e) => e.type === 'commit');
    if (links.length) {
      const [gitDir, worktree] = await Promise.all([gitDirOf(), worktreeOf()]);
      const names = new Map<string, string>();
      const updates = new Map<string, string>();
      const list = entries.some((e) => e.path === '.gitmodules') ? await git(dir, ['config', '--blob', `${commit}:.gitmodules`, '--null', '--list']).catch(() => '') : '';
      for (const item of list.split('\0')) {
        const m = /^submodule\.(.+)\.(path|update)\n([\s\S]*)$/.exec(item);
        if (m?.[2] === 'path') names.set(m[3]!, m[1]!);
        else if (m) updates.set(m[1]!, m[3]!);
      }
      for (const link of links) {
        const name = names.get(link.path) ?? link.path;
        const candidates = [join(gitDir, 'modules', name), ...(worktree ? [join(worktree, link.path)] : [])];
        let found: string | undefined;
        let cloned = false;
        for (const c of candidates) {
          if (!existsSync(c)) continue;
          const subGitDir = await absoluteGitDir(c, '--absolute-git-dir').catch(() => undefined);
          if (!subGitDir || subGitDir === gitDir) continue;
          cloned = true;
          if (await new Git(subGitDir).commit(link.object)) {
            found = subGitDir;
            break;
          }
        }
        const path = `${prefix}${link.path}`;
        if (!found) {
          const named = `${path} (commit ${link.object.slice(0, 12)})`;
          if (cloned) staleSubmodules.push(named);
          else if (updates.get(name) === 'none') {
            skippedSubmodules.push(named);
            skippedPaths.push(path);
          }
          else missingSubmodules.push(named);
          continue;
        }
        content.submodules.push({ path, sha: link.object, gitDir: found });
        const sub = worktree ? join(worktree, link.path) : undefined;
        await visit(found, async () => found, link.object, `${path}/`, async () => sub);
      }
    }
    // Git LFS: small blobs that are pointers, in paths the commit's attributes send through the lfs filter (as every
    // clone reads them). A pointer only this clone's own rules send through it (info/attributes, a global file) is
    // content here and pointer text in any other clone, the release included: refused, not deployed as the pointer.
    const committedLfs = /filter=lfs/.test(attrText);
    if (committedLfs || (await ownLfsRules(dir))) {
      const small = entries.filter((e) => e.type === 'blob' && e.size < 1024);
      const text = await blobTexts(dir, small.map((e) => e.object));
      const pointers = small.map((e) => ({ e, p: parseLfsPointer(text.get(e.object) ?? '') })).filter((x) => x.p);
      const paths = pointers.map((x) => x.e.path);
      const [here, everywhere] = await Promise.all([attributes(dir, commit, 'filter', paths), committedLfs ? attributes(dir, commit, 'filter', paths, true) : new Map<string, string>()]);
      const store = pointers.some(({ e }) => everywhere.get(e.path) === 'lfs') ? await lfsObjects(await gitDirOf()) : '';
      for (const { e, p } of pointers) {
        const path = `${prefix}${e.path}`;
        if (everywhere.get(e.path) !== 'lfs') {
          if (here.get(e.path) === 'lfs') ownLfs.push(path);
          continue;
        }
        const file = join(store, p!.oid.slice(0, 2), p!.oid.slice(2, 4), p!.oid);
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
  const once = <T>(f: () => Promise<T>): (() => Promise<T>) => {
    let p: Promise<T> | undefined;
    return () => (p ??= f());
  };
  const root = once(() => absoluteGitDir(repo, '--git-common-dir'));
  const top = once(async () => (await git(repo, ['rev-parse', '--show-toplevel']).catch(() => '')).trim() || undefined);
  await visit(repo, root, sha, '', top);
  // git lfs pull (and actions/checkout's `lfs: true`) leave out what lfs.fetchexclude / lfs.fetchinclude say (the
  // commit's .lfsconfig, or git config: git-lfs-config(5)): the files are then named to it, the filters emptied.
  const lfsFilters = missingLfs.length ? await lfsFetchFilters(repo, sha) : [];
  const problems: string[] = [];
  const plural = (list: string[]) => (list.length > 1 ? 's' : '');
  if (missingSubmodules.length) problems.push(`submodule${plural(missingSubmodules)} not checked out on this runner: ${missingSubmodules.join(', ')}`);
  if (skippedSubmodules.length) problems.push(`submodule${plural(skippedSubmodules)} marked \`update = none\` in .gitmodules, so git submodule update (and actions/checkout) left ${skippedSubmodules.length > 1 ? 'them' : 'it'} out: ${skippedSubmodules.join(', ')}`);
  if (staleSubmodules.length) problems.push(`submodule${plural(staleSubmodules)} checked out on this runner without the commit deployed (the checkout is at another commit of the app, or the submodule was not fetched since): ${staleSubmodules.join(', ')}`);
  if (missingLfs.length)
    problems.push(
      `Git LFS file${missingLfs.length > 1 ? 's' : ''} without content on this runner (only the pointer): ${missingLfs.slice(0, 10).join(', ')}${missingLfs.length > 10 ? ` and ${missingLfs.length - 10} more` : ''}${lfsFilters.length ? ` (${lfsFilters.join(', ')} leaves ${missingLfs.length > 1 ? 'them' : 'it'} out of git lfs pull)` : ''}`,
    );
  if (ownLfs.length)
    problems.push(
      `file${plural(ownLfs)} this clone sends through Git LFS by attribute rules of its own (.git/info/attributes, core.attributesFile or /etc/gitattributes), not by the commit's .gitattributes: the commit holds only ${ownLfs.length > 1 ? 'their' : 'its'} pointer, which every other clone, and the release, would get as the file: ${ownLfs.slice(0, 10).join(', ')}${ownLfs.length > 10 ? ` and ${ownLfs.length - 10} more` : ''}`,
    );
  if (problems.length)
    throw new OpsError(
      `${sha.slice(0, 12)} cannot be deployed complete: ${problems.join('; ')}; nothing was changed`,
      [
        missingSubmodules.length ? 'check out with submodules (actions/checkout with `submodules: recursive`; on a laptop: git submodule update --init --recursive)' : '',
        // A path given on the command line with --checkout overrides `update = none` (git-submodule(1), "update").
        skippedSubmodules.length ? `check ${skippedSubmodules.length > 1 ? 'them' : 'it'} out on purpose: git submodule update --init --recursive --checkout -- ${skippedPaths.map((p) => quote(p)).join(' ')} (in a workflow, a step after actions/checkout)` : '',
        staleSubmodules.length ? 'check out the commit deployed, then git submodule update --init --recursive (in a workflow: actions/checkout of that ref with `submodules: recursive`); or fetch it into the submodule: git -C <path> fetch origin' : '',
        missingLfs.length && !lfsFilters.length ? 'fetch the LFS content (actions/checkout with `lfs: true`; on a laptop: git lfs pull)' : '',
        lfsFilters.length ? `fetch ${missingLfs.length > 1 ? 'them' : 'it'} past those filters: git lfs pull --include=${quote(missingLfs.join(','))} --exclude= (in a workflow, a step after actions/checkout)` : '',
        ownLfs.length ? 'track them in the commit: move the filter=lfs rule into .gitattributes (git lfs track <pattern> writes it there), commit it, then deploy that commit' : '',
      ]
        .filter(Boolean)
        .join('; '),
    );
  return content;
}
