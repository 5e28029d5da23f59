// What a release's dependency sets are made from, read from the commit on the runner. A set (shared/deps/venv-<hash>,
// node-<hash>) is reused by every later release whose hash is the same, so the hash must cover everything its install
// reads: a file it misses is a change deployed as "reused", the previous dependencies serving the new code. And a set
// that holds paths of the release it was made in (an editable install, npm's links to the app's own packages) cannot
// serve another release: it is made for each release (its hash then names the release too).
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { Environment } from './config/environment.ts';
import { fileAt, treeEntries } from './source.ts';

/** What one dependency set is made from. */
export interface SetInputs {
  /** Digest of the runtime and of everything the install reads that the commit holds (16 hex characters). */
  hash: string;
  /** The repository's files and directories the install reads, for the plan ("requirements.txt, requirements/base.txt"). */
  files: string[];
  /** Why the set cannot be shared with other releases, when so: it is then made for each release (setHashes). */
  perRelease?: string;
}

export interface DependencyInputs {
  python: SetInputs;
  node: SetInputs;
}

/** Short stable hash naming an installed dependency set (inputs: runtime, files' object ids, settings). */
export function depsHash(parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 16);
}

/**
 * The names' hashes of a release's sets (shared/deps/venv-<python>, node-<node>): a set made for each release
 * (SetInputs.perRelease) has the release id in its hash. Pure.
 */
export function setHashes(inputs: DependencyInputs, releaseId: string): { python: string; node: string } {
  const name = (s: SetInputs) => (s.perRelease ? depsHash([s.hash, `release ${releaseId}`]) : s.hash);
  return { python: name(inputs.python), node: name(inputs.node) };
}

/** One reference a pip requirements file makes to another file or to a local path. */
export interface RequirementRef {
  /** include: -r/--requirement; constraint: -c/--constraint; editable: -e/--editable; path: a local project or
   * archive given as a requirement (`./lib`, `file:./lib`, `name @ file:///...`); find-links: -f/--find-links. */
  kind: 'include' | 'constraint' | 'editable' | 'path' | 'find-links';
  target: string;
}

const URL_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
const VCS = /^(git|hg|svn|bzr)\+/i;

/** A `file:` URL's path (`file:./lib`, `file:///srv/lib`, `file://localhost/srv/lib`), percent-decoded. */
function fileUrlPath(url: string): string {
  const rest = url.replace(/^file:(\/\/(localhost)?(?=\/))?/i, '');
  try {
    return decodeURIComponent(rest);
  } catch {
    return rest;
  }
}

/** A requirement's target when it names something on disk (else undefined: a project name, a remote URL, VCS). */
function localTarget(spec: string): string | undefined {
  if (VCS.test(spec)) return undefined;
  if (/^file:/i.test(spec)) return fileUrlPath(spec);
  if (URL_SCHEME.test(spec)) return undefined;
  // pip takes a requirement for a path when it looks like one: it has a path separator or starts with a dot
  // (pip/_internal/req/constructors.py, _looks_like_path); `name[extra]` and `name==1` do not.
  if (/^[.~/]/.test(spec) || spec.includes('/')) return spec.replace(/\[[^\]]*\]$/, '');
  return undefined;
}

/**
 * The references a pip requirements file makes (pip's format: https://pip.pypa.io/en/stable/reference/requirements-file-format/):
 * lines joined at a trailing backslash, comments from `#` at the start of a line or after whitespace, options
 * `-r`/`--requirement`, `-c`/`--constraint`, `-e`/`--editable`, `-f`/`--find-links` (as `-r x`, `-rx`, `--requirement x`
 * or `--requirement=x`), and requirements naming a local path (`./lib`, `file:../x`, `name @ file:///...`; a
 * marker after `;` and per-requirement options after ` --` are not part of it). Environment variables (`${VAR}`) are
 * left as written. Pure; never throws (a line it does not understand is a project requirement to it).
 */
export function scanRequirements(text: string): RequirementRef[] {
  const refs: RequirementRef[] = [];
  const lines = text.replace(/\r\n?/g, '\n').replace(/\\\n/g, '').split('\n');
  const options: [RegExp, RequirementRef['kind']][] = [
    [/^(?:-r|--requirement)(?:\s*=\s*|\s+|(?<=^-r))(\S+)/, 'include'],
    [/^(?:-c|--constraint)(?:\s*=\s*|\s+|(?<=^-c))(\S+)/, 'constraint'],
    [/^(?:-e|--editable)(?:\s*=\s*|\s+|(?<=^-e))(\S+)/, 'editable'],
    [/^(?:-f|--find-links)(?:\s*=\s*|\s+|(?<=^-f))(\S+)/, 'find-links'],
  ];
  for (const raw of lines) {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (!line) continue;
    const option = options.find(([re]) => re.test(line));
    if (option) {
      const target = option[0].exec(line)![1]!;
      const kind = option[1];
      if (kind === 'include' || kind === 'constraint') refs.push({ kind, target });
      else {
        const local = localTarget(target);
        if (local !== undefined) refs.push({ kind, target: local });
      }
      continue;
    }
    if (line.startsWith('-')) continue; // another option (--index-url, --hash, --no-binary...): nothing on disk
    const spec = line.split(/\s+--|\s*;\s+|\s+;/)[0]!.trim();
    const direct = /^[A-Za-z0-9][A-Za-z0-9._-]*(?:\[[^\]]*\])?\s*@\s*(\S+)/.exec(spec);
    const local = localTarget(direct ? direct[1]! : spec.split(/\s/)[0]!);
    if (local !== undefined) refs.push({ kind: 'path', target: local });
  }
  return refs;
}

/** A path as seen from the repository's root, or undefined when it leaves it (absolute, `~`, `..` above the root). */
function inRepository(dir: string, path: string): string | undefined {
  if (path.startsWith('/') || path.startsWith('~')) return undefined;
  const joined = posix.normalize(posix.join(dir, path));
  if (joined === '..' || joined.startsWith('../')) return undefined;
  return joined === '.' ? '' : joined.replace(/\/$/, '');
}

/** The git object id of a path at a commit (file, directory or submodule), "" when absent; for the root ("") the commit stands for its tree. */
async function objectAt(repo: string, sha: string, path: string): Promise<string> {
  if (!path) return `tree of ${sha}`;
  return (await treeEntries(repo, sha)).find((e) => e.path === path)?.object ?? '';
}

/**
 * What `uv pip install -r <req>` (or pip) run in the release reads from it: the requirements file and the files it
 * includes (-r, -c: relative to the including file, as pip resolves them), and each local project, archive or
 * find-links directory (relative to the release's root, the install's working directory, and to the requirements
 * file's own directory, as tools differ: both count). A local project installed editable (-e ./lib, -e .) makes
 * the venv point into the release directory: the set is made for each release. A path outside the repository or
 * written with an environment variable cannot be followed: the same.
 */
async function pythonInputs(repo: string, sha: string, req: string, extra: string[]): Promise<Omit<SetInputs, 'hash'> & { parts: string[] }> {
  const parts: string[] = [];
  const files: string[] = [];
  let perRelease: string | undefined;
  const tie = (why: string) => void (perRelease ??= why);
  const seen = new Set<string>();
  const read = async (path: string) => {
    if (seen.has(path)) return;
    seen.add(path);
    files.push(path);
    const id = await objectAt(repo, sha, path);
    // The requirements file alone is hashed as before included files were followed: its sets keep their names.
    parts.push(seen.size === 1 ? id : `include ${path} ${id}`);
    const text = id ? await fileAt(repo, sha, path) : undefined;
    if (text === undefined) return;
    const dir = posix.dirname(path);
    for (const ref of scanRequirements(text)) {
      if (ref.target.includes('$')) {
        tie(`${path} names ${ref.target}, a path with an environment variable`);
        continue;
      }
      if (ref.kind === 'include' || ref.kind === 'constraint') {
        if (URL_SCHEME.test(ref.target)) continue; // fetched by the installer: like a requirement from the index
        const inner = inRepository(dir, ref.target);
        if (inner === undefined) tie(`${path} includes ${ref.target}, outside the repository`);
        else await read(inner);
        continue;
      }
      const candidates = [...new Set([inRepository('', ref.target), inRepository(dir, ref.target)])];
      if (candidates.includes(undefined)) {
        tie(`${path} installs ${ref.target}, outside the repository`);
        continue;
      }
      for (const c of candidates as string[]) {
        parts.push(`${ref.kind} ${c || '.'} ${await objectAt(repo, sha, c)}`);
        if (!files.includes(c || '.')) files.push(c || '.');
      }
      if (ref.kind === 'editable') tie(`${path} installs ${ref.target} in editable mode (-e): the venv points into the release directory`);
    }
  };
  await read(posix.normalize(req).replace(/^\.\//, ''));
  for (const p of extra) parts.push(`input ${p} ${await objectAt(repo, sha, p)}`);
  return { parts, files: [...files, ...extra], ...(perRelease && { perRelease }) };
}

/** The root package's scripts `npm ci` runs (https://docs.npmjs.com/cli/using-npm/scripts#npm-ci). */
export const NPM_CI_SCRIPTS = ['preinstall', 'install', 'postinstall', 'prepublish', 'preprepare', 'prepare', 'postprepare'];

/**
 * What `npm ci` in `dir` reads: the lockfile (npm-shrinkwrap.json, else package-lock.json; without the app's own
 * version: a release bump installs nothing new), else package.json; the project's .npmrc; the scripts npm ci runs
 * for the root package, and `extra` (release.dependency_inputs). Those scripts may read any file (patch-package's
 * patches, prisma's schema): without `extra` the set is made for each release. Packages npm links into
 * node_modules (workspaces, `file:` directories: lockfile entries with `link: true`) point into the release: the same
 * (an npm that installs links as copies, as Debian 12's npm 9 does by default, gets this release's copy). A package
 * npm copies from the repository (`"resolved": "file:../lib"`, a tarball in the tree) counts by its files.
 */
async function nodeInputs(repo: string, sha: string, dir: string, extra: string[] | undefined): Promise<Omit<SetInputs, 'hash'> & { parts: string[] }> {
  const at = (name: string) => (dir === '.' || dir === '' ? name : `${posix.normalize(dir).replace(/\/$/, '')}/${name}`);
  const parts: string[] = [];
  const files: string[] = [];
  let perRelease: string | undefined;
  const [shrinkwrap, packageLock, pkgText, npmrc] = await Promise.all(['npm-shrinkwrap.json', 'package-lock.json', 'package.json', '.npmrc'].map((f) => fileAt(repo, sha, at(f))));
  const lockName = shrinkwrap !== undefined ? 'npm-shrinkwrap.json' : 'package-lock.json';
  const lock = shrinkwrap ?? packageLock;
  if (lock === undefined) {
    files.push(at('package.json'));
    parts.push(`package.json ${await objectAt(repo, sha, at('package.json'))}`);
  } else {
    files.push(at(lockName));
    try {
      const parsed = JSON.parse(lock) as { version?: string; packages?: Record<string, { version?: string; link?: boolean; resolved?: string }>; dependencies?: Record<string, { version?: string }> };
      delete parsed.version;
      if (parsed.packages?.['']) delete parsed.packages[''].version;
      parts.push(`lock ${JSON.stringify(parsed)}`);
      const linked = Object.entries(parsed.packages ?? {}).filter(([, v]) => v.link);
      if (linked.length)
        perRelease ??= `npm links ${linked.slice(0, 3).map(([k, v]) => `${k.replace(/^.*node_modules\//, '')} → ${v.resolved ?? '?'}`).join(', ')}${linked.length > 3 ? ` and ${linked.length - 3} more` : ''} into node_modules (workspaces, file: dependencies): the set points into the release directory`;
      // A package npm copies from the repository (`file:` with install-links, a tarball in the tree): its files count.
      // lockfileVersion 1 lists them under `dependencies`, with the `file:` spec as their version.
      const copied = [
        ...Object.entries(parsed.packages ?? {}).flatMap(([k, v]) => (!v.link && v.resolved?.startsWith('file:') ? [[k, v.resolved]] : [])),
        ...Object.entries(parsed.dependencies ?? {}).flatMap(([k, v]) => (v.version?.startsWith('file:') ? [[k, v.version]] : [])),
      ];
      for (const [name, spec] of copied) {
        const path = inRepository(dir === '.' ? '' : posix.normalize(dir), fileUrlPath(spec!));
        if (path === undefined) perRelease ??= `npm installs ${name!.replace(/^.*node_modules\//, '')} from ${spec}, outside the repository`;
        else {
          parts.push(`copied ${path} ${await objectAt(repo, sha, path)}`);
          if (!files.includes(path)) files.push(path);
        }
      }
    } catch {
      parts.push(`lock ${await objectAt(repo, sha, at(lockName))}`);
    }
  }
  if (npmrc !== undefined) {
    files.push(at('.npmrc'));
    parts.push(`npmrc ${createHash('sha256').update(npmrc).digest('hex')}`);
  }
  let scripts: [string, string][] = [];
  try {
    const pkg = pkgText === undefined ? {} : (JSON.parse(pkgText) as { scripts?: Record<string, unknown> });
    scripts = NPM_CI_SCRIPTS.flatMap((s) => (typeof pkg.scripts?.[s] === 'string' ? [[s, pkg.scripts[s] as string] as [string, string]] : []));
  } catch {
    // npm ci refuses a package.json it cannot parse, with its own message: the deploy fails there.
  }
  if (scripts.length) {
    parts.push(`scripts ${JSON.stringify(scripts)}`);
    if (extra === undefined)
      perRelease ??= `${at('package.json')} runs ${scripts.map(([s, c]) => `${s} (${c.length > 60 ? `${c.slice(0, 57)}...` : c})`).join(', ')} on install, reading files not known here: list them in release.dependency_inputs to share the set between releases`;
  }
  for (const p of extra ?? []) parts.push(`input ${p} ${await objectAt(repo, sha, p)}`);
  return { parts, files: [...files, ...(extra ?? [])], ...(perRelease && { perRelease }) };
}

/**
 * The inputs of a commit's two dependency sets (the runtime, then what each install reads: pythonInputs,
 * nodeInputs) and whether each is made for each release. Reads only the runner's repository (one tree listing,
 * the files named; each commit and settings once per process); a setting that is off ("" requirements or node_dir)
 * gives a set nobody makes. @throws GitError when the commit cannot be read.
 */
export function dependencyInputs(repo: string, sha: string, env: Environment): Promise<DependencyInputs> {
  const { python, node } = env.config.runtimes;
  const { python_requirements: req, node_dir: nodeDir, dependency_inputs: extra } = env.config.release;
  // A commit's files never change: the plan and the change it describes (live and target) read each commit once.
  const key = JSON.stringify([repo, sha, python, node, req, nodeDir, extra]);
  let inputs = known.get(key);
  if (!inputs) {
    inputs = readInputs(repo, sha, env);
    inputs.catch(() => known.delete(key));
    known.set(key, inputs);
  }
  return inputs;
}

const known = new Map<string, Promise<DependencyInputs>>();

async function readInputs(repo: string, sha: string, env: Environment): Promise<DependencyInputs> {
  const { python, node } = env.config.runtimes;
  const { python_requirements: req, node_dir: nodeDir, dependency_inputs: extra } = env.config.release;
  const inputs = (extra ?? []).map((p) => inRepository('', p) ?? p);
  const [py, js] = await Promise.all([
    req ? pythonInputs(repo, sha, req, inputs) : { parts: [], files: [] },
    nodeDir ? nodeInputs(repo, sha, nodeDir, extra === undefined ? undefined : inputs) : { parts: [], files: [] },
  ]);
  const set = (runtime: string, x: Omit<SetInputs, 'hash'> & { parts: string[] }): SetInputs => ({
    hash: depsHash([runtime, ...x.parts]),
    files: x.files,
    ...(x.perRelease && { perRelease: x.perRelease }),
  });
  return { python: set(`python ${python.strategy} ${python.version}`, py), node: set(`node ${node.strategy} ${node.version}`, js) };
}
