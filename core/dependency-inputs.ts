// What a release's dependency sets are made from, read from the commit on the runner. A set (shared/deps/venv-<hash>,
// node-<hash>) is reused by every later release whose hash is the same, so the hash must cover everything its install
// reads: a file it misses is a change deployed as "reused", the previous dependencies serving the new code. And a set
// that holds paths of the release it was made in (an editable install, npm's links to the app's own packages) cannot
// serve another release: it is made for each release (its hash then names the release too).
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { Environment } from './config/environment.ts';
import { OpsError } from './errors.ts';
import { git } from './git.ts';
import { fileAt, treeEntries, type TreeEntry } from './source.ts';
import { commandWords } from './supervisor.ts';
import { readUvLock, UV_LOCK } from './uv-lock.ts';

/** What one dependency set is made from. */
export interface SetInputs {
  /** Digest of the runtime and of everything the install reads that the commit holds (16 hex characters). */
  hash: string;
  /** The repository's files and directories the install reads, for the plan ("requirements.txt, requirements/base.txt"). */
  files: string[];
  /** Why the set cannot be shared with other releases, when so: it is then made for each release (setHashes). */
  perRelease?: string;
  /**
   * Node set only: npm may make it from the live release's set, installing only what changed (core/steps/app.ts
   * nodeDependencies): a lockfile with a `packages` map (lockfileVersion 2, 3) in step with package.json, no
   * `overrides`, no git dependency nor `file:` directory npm copies, no install scripts of the app's own (they may
   * edit node_modules in place: patch-package), a set shared between releases. Else npm ci makes it from nothing,
   * as it makes any first set.
   */
  fromLive?: true;
  /**
   * Python set with uv only: the commit has settings uv reads in the release's root (a uv.toml, or pyproject.toml's
   * [tool.uv] tables, as uvTables finds them). Without them uv is given provision's file alone, or none (core/steps/app.ts
   * pythonDependencies): it would otherwise look for one in the directories above the release.
   */
  uvSettings?: true;
  /**
   * Python set only: a requirement of the file or of a file it includes (-r, -c) is pinned by hash (`--hash`, either
   * form; comments not read), which puts pip in hash-checking mode for the whole install
   * (https://pip.pypa.io/en/stable/topics/secure-installs/): uv is told so (`--require-hashes`, core/steps/app.ts
   * pythonDependencies), so both installers take and refuse the same requirements.
   */
  hashed?: true;
  /**
   * Python set only: requirements installed from a VCS repository at a branch or at no ref (`lib @
   * git+https://host/org/lib@main`, `git+https://host/org/lib`), as `<file>: <url>`: what they install moves while the
   * files, and so the set's name, stay the same (the set is reused; preflight warns).
   */
  floating?: string[];
  /**
   * Python set with uv only: the project is locked by uv (release.python_requirements names a uv.lock, or a
   * pyproject.toml with a uv.lock beside it; uvLockPath): the lock's path in the repository. The set is installed
   * from it (core/steps/app.ts pythonDependencies: `uv export --frozen`, then installed with its hashes), and named
   * after it and the pyproject.toml beside it.
   */
  uvLock?: string;
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

/** A `file:` URL's path (`file:./lib`, `file:///srv/lib`, `file://localhost/srv/lib`), its fragment (`#egg=`,
 * `#sha256=`, `#subdirectory=`) and query left out, percent-decoded. */
function fileUrlPath(url: string): string {
  const rest = url.replace(/[#?].*$/, '').replace(/^file:(\/\/(localhost)?(?=\/))?/i, '');
  try {
    return decodeURIComponent(rest);
  } catch {
    return rest;
  }
}

/** The file names pip takes for an archive (pip/_internal/utils/filetypes.py): such a requirement is a path even
 * without a `/` (`vendored-1.0-py3-none-any.whl`). */
/** A lockfile's `resolved` for a package npm fetches from git. */
const GIT_RESOLVED = /^(git\+|git:|github:|gitlab:|bitbucket:)/;
const ARCHIVE = /\.(whl|zip|tar|tar\.gz|tgz|tar\.bz2|tbz|tar\.xz|txz|tlz|tar\.lz|tar\.lzma)$/i;

/**
 * The VCS URLs of a requirements file (pip's VCS support: https://pip.pypa.io/en/stable/topics/vcs-support/) that name
 * no revision, or one that reads as a branch: not a commit id (7 to 40 hex digits) nor a version tag (`v1.2.3`,
 * `1.2`). Their `#egg=` and other fragments left out. Pure.
 */
export function floatingVcs(text: string): string[] {
  const out: string[] = [];
  for (const line of logicalLines(text)) {
    for (const m of line.matchAll(/(?:^|[\s@=])((?:git|hg|svn|bzr)\+[a-z][a-z0-9+.-]*:\/\/\S+)/gi)) {
      const url = m[1]!.replace(/#.*$/, '');
      const rest = url.slice(url.indexOf('://') + 3);
      const path = rest.includes('/') ? rest.slice(rest.indexOf('/')) : '';
      const at = path.lastIndexOf('@');
      const ref = at < 0 ? '' : path.slice(at + 1);
      if (!/^[0-9a-f]{7,40}$/i.test(ref) && !/^v?\d+(\.\d+)*([.+-][0-9A-Za-z.]+)?$/.test(ref)) out.push(url);
    }
  }
  return out;
}

/** A requirement's target when it names something on disk (else undefined: a project name, a remote URL, VCS). */
function localTarget(spec: string): string | undefined {
  if (VCS.test(spec)) return undefined;
  if (/^file:/i.test(spec)) return fileUrlPath(spec);
  if (URL_SCHEME.test(spec)) return undefined;
  // pip takes a requirement for a path when it looks like one: it has a path separator or starts with a dot, or it
  // names an archive (pip/_internal/req/constructors.py, _looks_like_path, _get_url_from_path); `name[extra]` and
  // `name==1` do not.
  const path = spec.replace(/\[[^\]]*\]$/, '');
  if (/^[.~/]/.test(spec) || spec.includes('/') || ARCHIVE.test(path)) return path;
  return undefined;
}

/** What an option's value names on disk: `-r`/`-c` always a file (else a remote URL), `-e` and `-f` a local path
 * unless a URL (pip: `-e lib` is the directory lib, `-f wheels` the directory wheels). */
function optionTarget(kind: RequirementRef['kind'], value: string): string | undefined {
  if (/^file:/i.test(value)) return fileUrlPath(value);
  if (URL_SCHEME.test(value) || VCS.test(value)) return undefined;
  return kind === 'editable' ? value.replace(/\[[^\]]*\]$/, '') : value;
}

/** pip's options in a requirements file (https://pip.pypa.io/en/stable/reference/requirements-file-format/#supported-options):
 * the long form, the short one, what the value names (kind), or `flag` when it takes none. */
const REQUIREMENT_OPTIONS: { long: string; short?: string; kind?: RequirementRef['kind']; flag?: true }[] = [
  { long: '--requirement', short: '-r', kind: 'include' },
  { long: '--constraint', short: '-c', kind: 'constraint' },
  { long: '--editable', short: '-e', kind: 'editable' },
  { long: '--find-links', short: '-f', kind: 'find-links' },
  { long: '--index-url', short: '-i' },
  { long: '--extra-index-url' },
  { long: '--no-index', flag: true },
  { long: '--trusted-host' },
  { long: '--no-binary' },
  { long: '--only-binary' },
  { long: '--prefer-binary', flag: true },
  { long: '--require-hashes', flag: true },
  { long: '--pre', flag: true },
  { long: '--use-feature' },
  { long: '--hash' },
  { long: '--config-settings' },
  { long: '--global-option' },
];

/** An option as Python's optparse (pip's parser) reads it: the exact name, else the one long option it abbreviates. */
function findOption(name: string): (typeof REQUIREMENT_OPTIONS)[number] | undefined {
  if (!name.startsWith('--')) return REQUIREMENT_OPTIONS.find((o) => o.short === name);
  const exact = REQUIREMENT_OPTIONS.find((o) => o.long === name);
  if (exact) return exact;
  const prefixed = REQUIREMENT_OPTIONS.filter((o) => o.long.startsWith(name));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

/**
 * A line's words as pip splits its options (Python's shlex.split, POSIX: pip/_internal/req/req_file.py break_args_options),
 * the splitter supervisor's commands have too (core/supervisor.ts commandWords). A line shlex refuses (a quote not
 * closed) fails pip's install ("No closing quotation"): its words at white space, as the rest of the file is still read.
 */
function shellWords(text: string): string[] {
  const words = commandWords(text);
  return Array.isArray(words) ? words.map((w) => w.text) : text.split(/[ \t\r\n]+/).filter(Boolean);
}

/**
 * The lines of a requirements file as pip reads them (pip/_internal/req/req_file.py, preprocess): split at line
 * ends, a line ending in `\` joined with the next (not a comment line: `# C:\` ends there), then comments cut from
 * `#` at the start or after whitespace.
 */
function logicalLines(text: string): string[] {
  const out: string[] = [];
  let pending = '';
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line.endsWith('\\') && !/^\s*#/.test(line)) pending += line.replace(/^\\+|\\+$/g, '');
    else {
      out.push(pending + line);
      pending = '';
    }
  }
  if (pending) out.push(pending);
  return out.map((l) => l.replace(/(^|\s)#.*$/, '').trim()).filter(Boolean);
}

/**
 * The references a pip requirements file makes (pip's format: https://pip.pypa.io/en/stable/reference/requirements-file-format/,
 * read as pip and uv read it, and both readings count where they differ): logical lines (logicalLines); a line
 * whose first word starts with `-` is options, split as the shell does (quotes: `-r "my reqs.txt"`), several on a
 * line (`--no-index --find-links ./wheels`), each as `-r x`, `-rx`, `--requirement x`, `--requirement=x` or a long
 * option's unambiguous abbreviation (Python's optparse); uv reads a value to the end of the line (`-r my reqs.txt`).
 * Other lines are a requirement (up to its first word starting with `-`), naming a local path when it looks like one
 * (`./lib`, `./my lib`, `x-1.0-py3-none-any.whl`, `file:../x#egg=x`, `name @ file:///...`; a marker after `;` left
 * out). Environment variables (`${VAR}`) are left as written. Pure; never throws (a line it does not understand is
 * a project requirement to it).
 */
export function scanRequirements(text: string): RequirementRef[] {
  const refs: RequirementRef[] = [];
  const add = (kind: RequirementRef['kind'], target: string | undefined) => {
    if (target !== undefined && target !== '' && !refs.some((r) => r.kind === kind && r.target === target)) refs.push({ kind, target });
  };
  const requirement = (text: string) => {
    const direct = /^[A-Za-z0-9][A-Za-z0-9._-]*\s*(?:\[[^\]]*\])?\s*@\s*(\S+)/.exec(text);
    if (direct) add('path', localTarget(direct[1]!));
    else if (/^file:/i.test(text) || URL_SCHEME.test(text)) add('path', localTarget(text.split(/;\s|\s/)[0]!));
    else {
      const path = text.split(';')[0]!.trim();
      add('path', localTarget(path));
      if (path.includes('#')) add('path', localTarget(path.replace(/#.*$/, ''))); // uv drops a fragment (./lib#egg=lib)
    }
  };
  for (const line of logicalLines(text)) {
    const plain = line.split(/\s+/);
    const firstOption = plain.findIndex((w) => w.startsWith('-'));
    if (firstOption !== 0) {
      requirement((firstOption < 0 ? plain : plain.slice(0, firstOption)).join(' '));
      continue;
    }
    const words = shellWords(line);
    let loose: string[] = []; // words no option takes: uv reads them as a requirement (`--no-index ./lib`)
    const flush = () => {
      if (loose.length) requirement(loose.join(' '));
      loose = [];
    };
    for (let i = 0; i < words.length; i++) {
      const word = words[i]!;
      if (!word.startsWith('-')) {
        loose.push(word);
        continue;
      }
      flush();
      const eq = word.startsWith('--') ? word.indexOf('=') : -1;
      const name = eq > 0 ? word.slice(0, eq) : /^-[a-z]/i.test(word) && !word.startsWith('--') ? word.slice(0, 2) : word;
      const option = findOption(name);
      if (!option || option.flag) continue;
      let value = eq > 0 ? word.slice(eq + 1) : word.length > 2 && !word.startsWith('--') ? word.slice(2) : words[++i];
      if (value === '=' || value === '') value = words[++i]; // `--requirement = x`
      if (value === undefined || !option.kind) continue;
      add(option.kind, optionTarget(option.kind, value));
      // uv reads `-r=base.txt` as `-r base.txt` (optparse, pip's: the file "=base.txt"), and a value on to the next
      // option or the end of the line (`-r my reqs.txt` is the file "my reqs.txt", `-e ./my lib --no-index`).
      const uvValue = !word.startsWith('--') && value.startsWith('=') && value.length > 1 ? value.slice(1) : value;
      const next = words.slice(i + 1).findIndex((w) => w.startsWith('-'));
      const more = next < 0 ? words.slice(i + 1) : words.slice(i + 1, i + 1 + next);
      add(option.kind, optionTarget(option.kind, [uvValue, ...more].join(' ')));
      i += more.length;
    }
    flush();
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

const byPath = new WeakMap<TreeEntry[], Map<string, TreeEntry>>();

/** A commit's entries by path (its listing, source.ts treeEntries, indexed once). */
async function entriesAt(repo: string, sha: string): Promise<Map<string, TreeEntry>> {
  const list = await treeEntries(repo, sha);
  let map = byPath.get(list);
  if (!map) byPath.set(list, (map = new Map(list.map((e) => [e.path, e]))));
  return map;
}

/**
 * A path once the symbolic links on its way are followed, as the release's filesystem follows them when the
 * install opens it (git stores a link as a blob holding its target's text): the path it names in the commit, or
 * `outside` (the link's target) when a link leaves the repository. A cycle of links names nothing (a missing path).
 */
async function follow(repo: string, sha: string, path: string): Promise<{ path: string } | { outside: string }> {
  const entries = await entriesAt(repo, sha);
  let parts = path ? path.split('/') : [];
  for (let i = 0, hops = 0; i < parts.length; i++) {
    const here = parts.slice(0, i + 1).join('/');
    const entry = entries.get(here);
    if (entry?.mode !== '120000') continue;
    if (++hops > 40) return { path: `${path} (a cycle of links)` }; // the kernel's ELOOP: nothing there
    const target = await git(repo, ['cat-file', 'blob', entry.object]);
    const inner = inRepository(posix.dirname(here), target);
    if (inner === undefined) return { outside: target };
    parts = [...(inner ? inner.split('/') : []), ...parts.slice(i + 1)];
    i = -1;
  }
  return { path: parts.join('/') };
}

/**
 * What the install reads at a path, as one id: the git object of what it names once links are followed (follow),
 * "" when absent, the root's tree given as the commit; a directory's id also covers the links inside it that point
 * out of it (`lib/shared -> ../common`: what they name). `outside` is told of a link leaving the repository.
 */
async function objectAt(repo: string, sha: string, path: string, outside: (target: string) => void = () => {}, seen = new Set<string>()): Promise<string> {
  const to = await follow(repo, sha, path);
  if ('outside' in to) {
    outside(to.outside);
    return `outside ${to.outside}`;
  }
  if (!to.path) return `tree of ${sha}`;
  const entries = await entriesAt(repo, sha);
  const entry = entries.get(to.path);
  if (!entry || entry.type !== 'tree' || seen.has(to.path)) return entry?.object ?? '';
  seen.add(to.path);
  const out: string[] = [entry.object];
  for (const link of entries.values()) {
    if (link.mode !== '120000' || !link.path.startsWith(`${to.path}/`)) continue;
    const target = await follow(repo, sha, link.path);
    if ('path' in target && target.path.startsWith(`${to.path}/`)) continue; // inside the directory: its tree covers it
    out.push(`${link.path} ${await objectAt(repo, sha, link.path, outside, seen)}`);
  }
  return out.join(' ');
}

/** A file's text at a commit once links are followed (follow), or undefined if it names none in the commit. */
async function textAt(repo: string, sha: string, path: string): Promise<string | undefined> {
  const to = await follow(repo, sha, path);
  return 'path' in to && to.path ? fileAt(repo, sha, to.path) : undefined;
}

/**
 * The text of a pyproject.toml's uv settings (TOML, https://toml.io): its `[tool.uv...]` tables (and arrays of
 * tables) as written; the whole file when uv's keys are written another way (`tool.uv.x = ...` or `uv = {...}` under
 * [tool]); "" when it has none (a pyproject.toml change elsewhere, a version bump, installs nothing new).
 */
export function uvTables(text: string): string {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  const header = /^\s*\[\[?\s*([A-Za-z0-9_-][^\]]*?)\s*\]\]?\s*(#.*)?$/; // a table header (a bare key first: not an array line)
  let table = '';
  const out: string[] = [];
  for (const line of lines) {
    const h = header.exec(line);
    if (h) table = h[1]!.replace(/\s*\.\s*/g, '.').replace(/"/g, '');
    const inUv = table === 'tool.uv' || table.startsWith('tool.uv.');
    if (inUv) out.push(line);
    else if (!h && ((table === '' && /^\s*"?tool"?\s*\.\s*"?uv"?\s*[.=]/.test(line)) || (table === 'tool' && /^\s*"?uv"?\s*[.=]/.test(line)))) return text;
  }
  return out.join('\n');
}

/**
 * The paths release.dependency_inputs lists, as inputs: each one's id (objectAt) and its name for the plan, marked
 * "(not in the commit)" when the commit has nothing there (a typo would otherwise be silent: a change to the file
 * meant would reuse the set). `tie` is told of a link out of the repository.
 */
async function listedInputs(repo: string, sha: string, extra: string[], tie: (why: string) => void): Promise<{ parts: string[]; files: string[] }> {
  const parts: string[] = [];
  const files: string[] = [];
  for (const p of extra) {
    const id = await objectAt(repo, sha, p, (t) => tie(`release.dependency_inputs' ${p} links to ${t}, outside the repository`));
    parts.push(`input ${p} ${id}`);
    files.push(id ? p : `${p} (not in the commit)`);
  }
  return { parts, files };
}

/**
 * What `uv pip install -r <req>` (or pip) run in the release reads from it: the requirements file and the files it
 * includes (-r, -c: relative to the including file, as pip resolves them), and each local project, archive or
 * find-links directory (relative to the release's root, the install's working directory, and to the requirements
 * file's own directory, as tools differ: both count). A local project installed editable (-e ./lib, -e .) makes
 * the venv point into the release directory: the set is made for each release. A path outside the repository or
 * written with an environment variable cannot be followed: the same.
 */
async function pythonInputs(repo: string, sha: string, req: string, extra: string[], installer: string): Promise<Omit<SetInputs, 'hash'> & { parts: string[] }> {
  const parts: string[] = [];
  const files: string[] = [];
  let perRelease: string | undefined;
  let hashed = false as boolean;
  const floating: string[] = [];
  const tie = (why: string) => void (perRelease ??= why);
  const seen = new Set<string>();
  const read = async (path: string) => {
    if (seen.has(path)) return;
    seen.add(path);
    files.push(path);
    const id = await objectAt(repo, sha, path, (t) => tie(`${path} is a link to ${t}, outside the repository`));
    // The requirements file alone is hashed as before included files were followed: its sets keep their names.
    parts.push(seen.size === 1 ? id : `include ${path} ${id}`);
    const text = id ? await textAt(repo, sha, path) : undefined;
    if (text === undefined) return;
    if (logicalLines(text).some((l) => /(^|\s)--hash(=|\s)/.test(l))) hashed = true;
    for (const url of floatingVcs(text)) floating.push(`${path}: ${url}`);
    // pip opens an include relative to the including file as named; through a link to a file elsewhere, a
    // resolver that follows links first (uv) reads it relative to the file's own directory: both count.
    const to = await follow(repo, sha, path);
    const dirs = [...new Set([posix.dirname(path), ...('path' in to ? [posix.dirname(to.path)] : [])])];
    for (const ref of scanRequirements(text)) {
      if (ref.target.includes('$')) {
        tie(`${path} names ${ref.target}, a path with an environment variable`);
        continue;
      }
      if (ref.kind === 'include' || ref.kind === 'constraint') {
        if (URL_SCHEME.test(ref.target)) continue; // fetched by the installer: like a requirement from the index
        for (const dir of dirs) {
          const inner = inRepository(dir, ref.target);
          if (inner === undefined) tie(`${path} includes ${ref.target}, outside the repository`);
          else await read(inner);
        }
        continue;
      }
      const candidates = [...new Set([inRepository('', ref.target), ...dirs.map((dir) => inRepository(dir, ref.target))])];
      if (candidates.includes(undefined)) {
        tie(`${path} installs ${ref.target}, outside the repository`);
        continue;
      }
      for (const c of candidates as string[]) {
        parts.push(`${ref.kind} ${c || '.'} ${await objectAt(repo, sha, c, (t) => tie(`${path} installs ${ref.target}, which links to ${t}, outside the repository`))}`);
        if (!files.includes(c || '.')) files.push(c || '.');
      }
      if (ref.kind === 'editable') tie(`${path} installs ${ref.target} in editable mode (-e): the venv points into the release directory`);
    }
  };
  const lock = installer === 'uv' ? uvLockPath(req, new Set((await entriesAt(repo, sha)).keys())) : undefined;
  if (lock) {
    // uv export reads the lock and its project's pyproject.toml (the project's name, groups, workspace members): both
    // name the set, so a lock bump alone makes a new one. Packages the lock takes from the repository's directories
    // (workspace members, path dependencies) are installed from this release: made for each release.
    const project = posix.join(posix.dirname(lock), 'pyproject.toml');
    for (const path of [lock, project]) {
      parts.push(`${path} ${await objectAt(repo, sha, path, (t) => tie(`${path} is a link to ${t}, outside the repository`))}`);
      files.push(path);
    }
    const reading = readUvLock((await textAt(repo, sha, lock)) ?? '');
    if (reading.hashed) hashed = true;
    if (reading.local.length) tie(`${lock} installs ${reading.local.join(', ')} from the repository`);
  } else await read(posix.normalize(req).replace(/^\.\//, ''));
  let commitUvSettings = false;
  if (installer === 'uv') {
    // uv reads its settings from uv.toml, else pyproject.toml's [tool.uv] tables, in the directory it runs in
    // (the release's root; https://docs.astral.sh/uv/concepts/configuration-files/): an index, find-links or
    // no-binary set there is part of the install.
    // A project locked by uv is installed in its own directory (core/steps/app.ts pythonDependencies): uv reads them there.
    const at = (name: string) => (lock ? posix.join(posix.dirname(lock), name) : name);
    const uvToml = await objectAt(repo, sha, at('uv.toml'), (t) => tie(`${at('uv.toml')} is a link to ${t}, outside the repository`));
    if (uvToml) {
      parts.push(`${at('uv.toml')} ${uvToml}`);
      files.push(at('uv.toml'));
      commitUvSettings = true;
    }
    const pyproject = await textAt(repo, sha, at('pyproject.toml'));
    const uvSettings = pyproject === undefined ? '' : uvTables(pyproject);
    if (uvSettings) {
      parts.push(`${at('pyproject.toml')} [tool.uv] ${createHash('sha256').update(uvSettings).digest('hex')}`);
      if (!lock) files.push(`${at('pyproject.toml')} [tool.uv]`); // a locked project's whole pyproject.toml is an input
      commitUvSettings = true;
    }
  }
  const listed = await listedInputs(repo, sha, extra, tie);
  parts.push(...listed.parts);
  // pip and uv make different sets from the same files (each its own resolver, settings, seeded tools): one made by
  // uv is not reused once the environment chooses pip (its fallback, chosen when uv's set is wrong) and the other way
  // round. uv, the default, adds nothing: its sets keep their names.
  if (installer === 'pip') parts.push('installer pip');
  return { parts, files: [...files, ...listed.files], ...(lock && { uvLock: lock }), ...(perRelease && { perRelease }), ...(commitUvSettings && { uvSettings: true as const }), ...(hashed ? { hashed: true as const } : {}), ...(floating.length ? { floating } : {}) };
}

/**
 * The uv.lock a Python set is installed from, or undefined: release.python_requirements `req` names a uv.lock, or a
 * pyproject.toml with a uv.lock beside it (uv's layout: https://docs.astral.sh/uv/concepts/projects/layout/), in the
 * commit whose paths are `paths`. Pure.
 */
export function uvLockPath(req: string, paths: Set<string>): string | undefined {
  const path = posix.normalize(req).replace(/^\.\//, '');
  const base = posix.basename(path);
  const lock = posix.join(posix.dirname(path), UV_LOCK);
  if (base === UV_LOCK) return path;
  return base === 'pyproject.toml' && paths.has(lock) ? lock : undefined;
}

/** What package.json declares that the lockfile's root entry records (npm's lockfile format,
 * https://docs.npmjs.com/cli/configuring-npm/package-lock-json#packages). */
const DECLARED = ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies'];

/** A glob of package.json's `workspaces` (`packages/*`, `apps/**`) as a regular expression on a path. */
function workspaceGlob(glob: string): RegExp {
  const body = posix
    .normalize(glob.replace(/^!/, ''))
    .replace(/\/+$/, '')
    .split(/(\*\*\/?|\*|\?)/)
    .map((part) => (part.startsWith('**') ? '(?:.*/)?' + (part.endsWith('/') ? '' : '.*') : part === '*' ? '[^/]*' : part === '?' ? '[^/]' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`);
}

/**
 * npm run in a workspace of a project (a directory its package.json's `workspaces` names) works on that project:
 * `npm ci` there installs the project's node_modules, from its lockfile (https://docs.npmjs.com/cli/using-npm/workspaces),
 * and leaves node_dir without node_modules: the set would be empty, reused by later releases, and hold nothing
 * of what the app needs. Refused, naming the project to set node_dir to.
 * @throws OpsError when `dir` is such a workspace.
 */
async function refuseWorkspaceMember(repo: string, sha: string, dir: string): Promise<void> {
  const own = inRepository('', dir) ?? '';
  for (let up = own; up; ) {
    up = posix.dirname(up) === '.' ? '' : posix.dirname(up);
    const text = await textAt(repo, sha, up ? `${up}/package.json` : 'package.json');
    let workspaces: unknown;
    try {
      const w = text === undefined ? undefined : (JSON.parse(text) as { workspaces?: unknown })?.workspaces;
      workspaces = Array.isArray(w) ? w : (w as { packages?: unknown } | undefined)?.packages;
    } catch {
      continue;
    }
    if (!Array.isArray(workspaces)) continue;
    const globs = workspaces.filter((g): g is string => typeof g === 'string');
    const rel = up ? own.slice(up.length + 1) : own;
    const match = (g: string) => workspaceGlob(g).test(rel);
    if (globs.some((g) => !g.startsWith('!') && match(g)) && !globs.some((g) => g.startsWith('!') && match(g))) {
      const project = up || '.';
      throw new OpsError(
        `release.node_dir ${dir} is a workspace of the npm project in ${project === '.' ? 'the repository root' : project} (its package.json's workspaces): npm ci there installs that project's node_modules, not ${dir}'s`,
        `set release.node_dir to ${JSON.stringify(project)}: one npm ci installs every workspace (their packages are then linked from the release: the node set is made for each release)`,
      );
    }
  }
}

/** The root package's scripts `npm ci` runs (https://docs.npmjs.com/cli/using-npm/scripts#npm-ci), and the
 * `dependencies` life cycle script, run "after any operations that modify the node_modules directory" (the same
 * page; npm ci always does: with its pre and post scripts, seen on npm 11). */
export const NPM_CI_SCRIPTS = ['preinstall', 'install', 'postinstall', 'prepublish', 'preprepare', 'prepare', 'postprepare', 'predependencies', 'dependencies', 'postdependencies'];

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
  let fromLive = false;
  await refuseWorkspaceMember(repo, sha, dir);
  const [shrinkwrap, packageLock, pkgText, npmrc] = await Promise.all(['npm-shrinkwrap.json', 'package-lock.json', 'package.json', '.npmrc'].map((f) => textAt(repo, sha, at(f))));
  let pkg: Record<string, unknown> = {};
  try {
    const parsed: unknown = pkgText === undefined ? {} : JSON.parse(pkgText);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) pkg = parsed as Record<string, unknown>;
  } catch {
    // npm ci refuses a package.json it cannot parse, with its own message: the deploy fails there.
  }
  const lockName = shrinkwrap !== undefined ? 'npm-shrinkwrap.json' : 'package-lock.json';
  const lock = shrinkwrap ?? packageLock;
  if (lock === undefined) {
    files.push(at('package.json'));
    parts.push(`package.json ${await objectAt(repo, sha, at('package.json'))}`);
  } else {
    files.push(at(lockName));
    try {
      const parsed = JSON.parse(lock) as { version?: string; packages?: Record<string, { version?: string; link?: boolean; resolved?: string }>; dependencies?: Record<string, { version?: string } | undefined> };
      delete parsed.version;
      if (parsed.packages?.['']) delete parsed.packages[''].version;
      parts.push(`lock ${JSON.stringify(parsed)}`);
      // npm ci refuses a package.json out of step with the lockfile ("can only install packages when your
      // package.json and package-lock.json are in sync"; https://docs.npmjs.com/cli/commands/npm-ci): a dependency
      // added to package.json alone must make a new set, for npm ci to say so, not reuse the old one. The lockfile's
      // root entry (lockfileVersion 2, 3) holds what package.json declared; version 1 only the packages' names.
      // `overrides` change what npm installs and are not in the lockfile: they count as written.
      const declared = (from: Record<string, unknown> | undefined) =>
        JSON.stringify(DECLARED.map((f) => Object.entries((from?.[f] ?? {}) as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
      const root = parsed.packages?.[''] as Record<string, unknown> | undefined;
      const inStep = root
        ? declared(pkg) === declared(root)
        : DECLARED.filter((f) => f !== 'peerDependencies').every((f) => Object.keys((pkg[f] ?? {}) as object).every((name) => parsed.dependencies?.[name]));
      if (!inStep) parts.push(`package.json out of step with ${lockName} ${createHash('sha256').update(declared(pkg)).digest('hex')}`);
      if (pkg.overrides !== undefined) parts.push(`overrides ${JSON.stringify(pkg.overrides)}`);
      // npm install (unlike npm ci) follows package.json where the lockfile disagrees with it, and overrides: only a
      // lockfile npm ci takes as it is may be installed over the live set.
      fromLive = root !== undefined && inStep && pkg.overrides === undefined;
      const linked = Object.entries(parsed.packages ?? {}).filter(([, v]) => v.link);
      if (linked.length)
        perRelease ??= `npm links ${linked.slice(0, 3).map(([k, v]) => `${k.replace(/^.*node_modules\//, '')} → ${v.resolved ?? '?'}`).join(', ')}${linked.length > 3 ? ` and ${linked.length - 3} more` : ''} into node_modules (workspaces, file: dependencies): the set points into the release directory`;
      // A package npm copies from the repository (`file:` with install-links, a tarball in the tree): its files count.
      // lockfileVersion 1 lists them under `dependencies`, with the `file:` spec as their version, and does not say
      // whether a directory is linked or copied: npm 7 and later link it unless install-links is on (npm 11 does,
      // Debian 12's npm 9 copies): a directory there is made for each release, a tarball counts by its file.
      const v1Directories = parsed.packages ? [] : Object.entries(parsed.dependencies ?? {}).filter(([, v]) => v?.version?.startsWith('file:') && !ARCHIVE.test(fileUrlPath(v!.version!)));
      if (v1Directories.length)
        perRelease ??= `npm links or copies ${v1Directories.slice(0, 3).map(([k, v]) => `${k} → ${v!.version}`).join(', ')}${v1Directories.length > 3 ? ` and ${v1Directories.length - 3} more` : ''} into node_modules (a file: directory in a lockfileVersion 1 lockfile; npm 7 and later link it): the set points into the release directory`;
      const copied = [
        ...Object.entries(parsed.packages ?? {}).flatMap(([k, v]) => (!v.link && v.resolved?.startsWith('file:') ? [[k, v.resolved]] : [])),
        ...Object.entries(parsed.dependencies ?? {}).flatMap(([k, v]) => (v?.version?.startsWith('file:') ? [[k, v.version]] : [])),
      ];
      // Not installed over the live set (core/steps/app.ts SEED_PLAN says the same on the host): a directory npm
      // copies (its files are in no lockfile: npm install takes the live copy for up to date), a git dependency
      // (npm runs its prepare script while fetching it).
      if (copied.some(([, spec]) => !ARCHIVE.test(fileUrlPath(spec!))) || Object.values(parsed.packages ?? {}).some((v) => GIT_RESOLVED.test(v.resolved ?? ''))) fromLive = false;
      for (const [name, spec] of copied) {
        const path = inRepository(dir === '.' ? '' : posix.normalize(dir), fileUrlPath(spec!));
        if (path === undefined) perRelease ??= `npm installs ${name!.replace(/^.*node_modules\//, '')} from ${spec}, outside the repository`;
        else {
          parts.push(`copied ${path} ${await objectAt(repo, sha, path, (t) => void (perRelease ??= `npm installs ${name!.replace(/^.*node_modules\//, '')} from ${path}, a link to ${t}, outside the repository`))}`);
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
  const declaredScripts = (pkg.scripts && typeof pkg.scripts === 'object' ? pkg.scripts : {}) as Record<string, unknown>;
  const scripts = NPM_CI_SCRIPTS.flatMap((s) => (typeof declaredScripts[s] === 'string' ? [[s, declaredScripts[s] as string] as [string, string]] : []));
  if (scripts.length) {
    parts.push(`scripts ${JSON.stringify(scripts)}`);
    if (extra === undefined)
      perRelease ??= `${at('package.json')} runs ${scripts.map(([s, c]) => `${s} (${c.length > 60 ? `${c.slice(0, 57)}...` : c})`).join(', ')} on install, reading files not known here: list them in release.dependency_inputs to share the set between releases`;
  }
  const listed = await listedInputs(repo, sha, extra ?? [], (why) => void (perRelease ??= why));
  parts.push(...listed.parts);
  if (scripts.length || perRelease) fromLive = false;
  return { parts, files: [...files, ...listed.files], ...(perRelease && { perRelease }), ...(fromLive && { fromLive: true as const }) };
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
  const key = JSON.stringify([repo, sha, python, node, req, nodeDir, extra, env.config.release.python_installer]);
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
    req ? pythonInputs(repo, sha, req, inputs, env.config.release.python_installer) : { parts: [], files: [] },
    nodeDir ? nodeInputs(repo, sha, nodeDir, extra === undefined ? undefined : inputs) : { parts: [], files: [] },
  ]);
  const set = (runtime: string, x: Omit<SetInputs, 'hash'> & { parts: string[] }): SetInputs => ({
    hash: depsHash([runtime, ...x.parts]),
    files: x.files,
    ...(x.perRelease && { perRelease: x.perRelease }),
    ...(x.fromLive && { fromLive: x.fromLive }),
    ...(x.uvSettings && { uvSettings: x.uvSettings }),
    ...(x.hashed && { hashed: x.hashed }),
    ...(x.floating && { floating: x.floating }),
    ...(x.uvLock && { uvLock: x.uvLock }),
  });
  return { python: set(`python ${python.strategy} ${python.version}`, py), node: set(`node ${node.strategy} ${node.version}`, js) };
}
