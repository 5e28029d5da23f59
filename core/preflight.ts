// The commit checked against the release settings on the runner, before any host is touched (deploy and dry run
// alike): a file or directory a setting names that the commit lacks fails late on a host otherwise, with a raw
// error (an empty venv stored as a shared set, `cd: web: No such file or directory`, npm ci's usage text, make's
// "No rule to make target", supervisor's "couldn't chdir"). Only what the tree listing (git ls-tree, read once:
// core/source.ts treeEntries) says for sure is refused; what a command could make or a tool could find otherwise
// is at most a warning. No parser of make, TOML or package.json: names and a few plain lines; npm's lockfile (JSON)
// for the Node.js its packages say they need (core/node-engines.ts), the Linux binaries it lists
// (core/node-platforms.ts) and its sync with package.json (core/node-lock-sync.ts).
import { spawnSync } from 'node:child_process';
import { posix } from 'node:path';
import type { Environment } from './config/environment.ts';
import { dependencyInputs, uvLockPath } from './dependency-inputs.ts';
import { OpsError } from './errors.ts';
import { Git } from './git.ts';
import { nodeEngineMisfits } from './node-engines.ts';
import { lockOutOfSync } from './node-lock-sync.ts';
import { nodePlatformGaps } from './node-platforms.ts';
import { fileAt, treeEntries, type TreeEntry } from './source.ts';
import { commandWords } from './supervisor.ts';
import type { TreeContent } from './tree-content.ts';
import { UV_LOCK, uvLockStale } from './uv-lock.ts';

/** What preflight found: problems refuse the deploy (each says setting, path, what was found, how to fix), warnings are said. */
export interface PreflightResult {
  problems: string[];
  warnings: string[];
}

/** Lockfiles of Python project managers, and how to export each to a requirements file; `pip install -r` / `uv pip install -r` of a pyproject.toml reads none of them (a uv.lock is read: dependency-inputs.ts uvLockPath). */
const PYTHON_LOCKS: Record<string, string> = {
  'poetry.lock': '`poetry export -f requirements.txt -o requirements.txt` (on poetry 2 with poetry-plugin-export)',
  'uv.lock': '`uv export --format requirements-txt -o requirements.txt`',
  'pdm.lock': '`pdm export -o requirements.txt`',
};

/** A PEP 751 lockfile's name (https://peps.python.org/pep-0751/#file-name): pylock.toml or pylock.<name>.toml. */
const PYLOCK = /^pylock\.([^.]+\.)?toml$/;

/** Lockfiles of other Node package managers, which `npm ci` does not read. */
const OTHER_NODE_LOCKS: Record<string, string> = { 'yarn.lock': 'yarn', 'pnpm-lock.yaml': 'pnpm', 'bun.lockb': 'bun', 'bun.lock': 'bun' };

/** The makefiles GNU make looks for, in its order (GNU make manual, "What Name to Give Your Makefile"). */
const MAKEFILES = ['GNUmakefile', 'makefile', 'Makefile'];

/** Variables that change which makefile make reads or how (GNU make manual, "Variables from the Environment"). */
const MAKE_ENV = ['MAKEFILES', 'MAKEFLAGS', 'GNUMAKEFLAGS', 'MFLAGS'];

type Kind = 'dir' | 'file' | 'link' | 'unknown' | 'absent' | 'ignored' | 'under-file';

/** A relative setting path as the tree lists it: "" for the root, no "./", no trailing "/". */
function norm(path: string): string {
  const p = posix.normalize(path).replace(/\/+$/, '');
  return p === '.' ? '' : p;
}

/** The commit's tree as the release will hold it (submodules' insides not listed, export-ignored paths left out). */
class Listing {
  private readonly byPath: Map<string, TreeEntry>;
  constructor(
    readonly entries: TreeEntry[],
    private readonly tree: TreeContent,
  ) {
    this.byPath = new Map(entries.map((e) => [e.path, e]));
  }

  /** What `path` is in the release, as far as the listing can say ("unknown": inside a submodule or behind a link). */
  kind(path: string): Kind {
    const p = norm(path);
    if (!p) return 'dir';
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const up = this.byPath.get(parts.slice(0, i).join('/'));
      if (!up) return 'absent';
      if (up.type === 'commit' || up.mode === '120000') return 'unknown'; // a submodule's files, a link's target: not listed here
      if (up.type === 'blob') return 'under-file';
    }
    const e = this.byPath.get(p);
    if (!e) return 'absent';
    if (this.tree.exportIgnored.some((x) => x === p || x === `${p}/` || (x.endsWith('/') && p.startsWith(x)))) return 'ignored';
    if (e.type === 'commit') return 'dir';
    if (e.mode === '120000') return 'link';
    return e.type === 'tree' ? 'dir' : 'file';
  }

  /** Whether `path` may be there in the release (anything but absent, export-ignored or under a file). */
  has(path: string): boolean {
    return !['absent', 'ignored', 'under-file'].includes(this.kind(path));
  }

  /** Names in directory `dir` ("" = root). */
  names(dir: string): string[] {
    const d = norm(dir);
    return this.entries.filter((e) => posix.dirname(e.path) === (d || '.')).map((e) => posix.basename(e.path));
  }

  entry(path: string): TreeEntry | undefined {
    return this.byPath.get(norm(path));
  }
}

/** Words for a path that is not there, with what the listing said. */
function missing(kind: Kind, what: string, at: string): string {
  if (kind === 'ignored') return `${what} is export-ignored in commit ${at} (.gitattributes): git archive leaves it out of the release`;
  if (kind === 'under-file') return `${what} is not in commit ${at}: a path above it is a file`;
  return `${what} is not in commit ${at}`;
}

const list = (items: string[], max = 5) => `${items.slice(0, max).join(', ')}${items.length > max ? ` and ${items.length - max} more` : ''}`;

/**
 * The commit `sha` of `repo` against `env`'s release settings and programs, from its tree listing and a few files
 * (the requirements file's first lines, the root makefile, npm's lockfile): release.python_requirements,
 * release.node_dir (its package.json and npm's lockfile, whose packages must run on the pinned Node.js:
 * core/node-engines.ts, and which must list the Linux binaries of the packages that have some: core/node-platforms.ts,
 * and be in sync with package.json as npm ci checks: core/node-lock-sync.ts), release.build and release.migrate
 * when they are `make [target]` (the defaults `make build`, `make migrate`), programs.<name>.directory, a program's `sh -c` script (shellScriptProblems), a
 * per-slot value the code reads in a form the build inlines (inlinedSlotValues); warned of: a
 * program's `--env-file` naming no file (envFileWarnings), settings a framework reads from its process environment
 * only that no program gets (processOnlySettings), a .env value the commit's .npmrc reads (npmrcVariableWarnings),
 * another package manager named beside npm's lockfile (otherManagerWarning), a Next.js server started in a subdirectory, which reads no .env
 * at the release's root (nextDotenvDirs). Paths are relative to the repository root, which is the
 * release directory (build, migrate and programs run there). `tree`: the plan's tree content (submodules,
 * export-ignored paths). Never throws for what it finds: problems and warnings are returned (preflightError).
 * @throws GitError when the commit cannot be read.
 */
export async function preflight(repo: string, sha: string, env: Environment, tree: TreeContent): Promise<PreflightResult> {
  const listing = new Listing(await treeEntries(repo, sha), tree);
  const at = sha.slice(0, 12);
  const problems: string[] = [];
  const warnings: string[] = [];
  const { python_requirements: req, node_dir: nodeDir, build, migrate, before_switch: beforeSwitch, python_installer: installer } = env.config.release;
  const tooLong = unwritableNames(listing);
  if (tooLong.length)
    problems.push(
      `commit ${at} has ${tooLong.length} path${tooLong.length > 1 ? 's' : ''} with a name longer than ${NAME_MAX} bytes, which the hosts' filesystems cannot hold (the release would fail to unpack): ${tooLong.slice(0, 3).map((p) => JSON.stringify(p)).join(', ')}${tooLong.length > 3 ? ` and ${tooLong.length - 3} more` : ''}\n  fix: rename ${tooLong.length > 1 ? 'them' : 'it'} shorter (a name made on macOS may hold 255 characters, several bytes each in UTF-8), or mark ${tooLong.length > 1 ? 'them' : 'it'} export-ignore in .gitattributes if the release does not need ${tooLong.length > 1 ? 'them' : 'it'}`,
    );

  if (req) {
    const path = norm(req);
    const kind = listing.kind(path);
    if (kind === 'dir') problems.push(`release.python_requirements ${req} is a directory in commit ${at}, not a requirements file\n  fix: point release.python_requirements at the requirements file ("" for no Python)`);
    else if (!listing.has(path)) {
      // The host installs only from a file that is there (`[ -f ]`): without it the venv is made empty, and stored
      // as a shared set. Wrong, surely, when the commit declares Python dependencies another way (refused); an app
      // with no Python at all that kept the default deployed so before, and still does, with a warning.
      const found = pythonFound(listing, path);
      if (found.files.length || kind !== 'absent') problems.push(`release.python_requirements ${missing(kind, req, at)}: the deploy would make an empty venv${found.text}`);
      else warnings.push(`release.python_requirements ${missing(kind, req, at)}, nor any Python project file: the venv is made empty; set release.python_requirements to "" if the app has no Python`);
    }
    else {
      const dir = posix.dirname(path) === '.' ? '' : posix.dirname(path);
      const inDir = (name: string) => (dir ? `${dir}/${name}` : name);
      const base = posix.basename(path);
      const lock = uvLockPath(path, new Set(listing.entries.map((e) => e.path)));
      // pip reads a requirements file line by line: a TOML table header ("[project]") is not a requirement; nor does
      // it read uv's lock or a pylock.toml (pip 25 writes one, installs from none).
      if (installer === 'pip' && base === 'pyproject.toml' && kind === 'file' && /^\s*\[/m.test((await fileAt(repo, sha, path)) ?? ''))
        problems.push(`release.python_requirements ${req} is a pyproject.toml and release.python_installer is pip: pip install -r reads a requirements file, not TOML, and fails on its first table${lock ? `, and ${lock} beside it is not read` : ''}\n  fix: set release.python_installer: uv (${lock ? `the set is installed from ${lock}, as uv sync --frozen does` : "uv pip install -r reads pyproject.toml's [project] dependencies"}), or export the dependencies to a requirements file and point release.python_requirements at it`);
      else if (installer === 'pip' && (base === UV_LOCK || PYLOCK.test(base)))
        problems.push(`release.python_requirements ${req} is ${base === UV_LOCK ? "uv's lockfile" : 'a pylock.toml (PEP 751)'} and release.python_installer is pip: pip installs from neither\n  fix: set release.python_installer: uv (${base === UV_LOCK ? 'the set is installed from the lock, as uv sync --frozen does' : 'uv pip install -r reads a pylock.toml'}), or export it to a requirements file (${base === UV_LOCK ? PYTHON_LOCKS[UV_LOCK] : '`uv export --format requirements-txt -o requirements.txt`'}) and point release.python_requirements at it`);
      else if (lock) {
        // uv export --frozen installs the lock as it is: one out of step with pyproject.toml would deploy what the
        // team's `uv sync --locked` refuses. Judged on the runner, where uv may not be (core/uv-lock.ts).
        const project = inDir('pyproject.toml');
        const [pyproject, locked] = await Promise.all([fileAt(repo, sha, project), fileAt(repo, sha, lock)]);
        if (pyproject === undefined) problems.push(`release.python_requirements ${req}: ${lock} has no pyproject.toml beside it in commit ${at}, which uv reads with its lock\n  fix: commit ${project}, or point release.python_requirements at a requirements file`);
        else {
          const stale = locked === undefined ? undefined : uvLockStale(pyproject, locked);
          if (stale)
            problems.push(`release.python_requirements ${req}: ${lock} is out of step with ${project} in commit ${at} (${stale}); uv sync --locked says: The lockfile at \`uv.lock\` needs to be updated, but \`--locked\` was provided\n  fix: run \`uv lock\`${dir ? ` in ${dir}` : ''} and commit ${lock}`);
        }
      }
      // uv installs a pylock.toml's files from the URLs it records (checked: uv 0.13.9, an unreachable index set),
      // never from the index the environment names: hosts that reach only that index cannot fetch them.
      if (installer === 'uv' && PYLOCK.test(base) && env.config.packages.pip_index_url !== undefined)
        warnings.push(`release.python_requirements ${req} is a pylock.toml: uv fetches each of its files from the URL it records (PyPI's, when made from PyPI), not from packages.pip_index_url, so hosts that reach only that index cannot install it; point release.python_requirements at the uv project (its uv.lock, installed from the index with its hashes) or at a requirements file with hashes`);
      if (base === 'pyproject.toml')
        // The install (uv pip install -r pyproject.toml) of a project not locked by uv reads the dependency ranges,
        // never another manager's lockfile: hashing it into the set would make a new set for a lock bump that still
        // installs what the ranges resolve to that day, and call it the lock's. The honest thing is to say so.
        for (const other of Object.keys(PYTHON_LOCKS).filter((l) => l !== UV_LOCK && listing.has(inDir(l))))
          warnings.push(
            `release.python_requirements is ${req}, and ${inDir(other)} beside it is not read: the install resolves pyproject.toml's dependency ranges, so a change to ${other} alone is not deployed (the Python set is reused) and versions may differ from the lock; export it: ${PYTHON_LOCKS[other]}; commit that file and point release.python_requirements at it`,
          );
    }
  }

  // A requirement from a VCS branch: the set's name is its files', which do not change when the branch moves.
  if (req && listing.has(norm(req))) {
    const floating = (await dependencyInputs(repo, sha, env).catch(() => undefined))?.python.floating ?? [];
    if (floating.length)
      warnings.push(
        `${floating.join(', ')}: installed from a branch (or with no revision), so a new commit there is not deployed: the Python set is reused while the requirements files are unchanged; pin a commit (@<sha>, or a tag) and change it to deploy another`,
      );
  }

  if (nodeDir) {
    const dir = norm(nodeDir);
    const kind = listing.kind(dir);
    const shown = dir || '.';
    if (kind === 'file') problems.push(`release.node_dir ${nodeDir} is a file in commit ${at}, not a directory${nodeFound(listing)}`);
    else if (!listing.has(dir)) problems.push(`release.node_dir ${missing(kind, nodeDir, at)}: npm ci cannot run there${nodeFound(listing)}`);
    else if (kind === 'dir') {
      const inDir = (name: string) => (dir ? `${dir}/${name}` : name);
      const others = Object.keys(OTHER_NODE_LOCKS).filter((l) => listing.has(inDir(l)));
      if (!listing.has(inDir('package.json'))) problems.push(`release.node_dir ${shown} has no package.json in commit ${at}: npm ci needs one${nodeFound(listing)}`);
      else if (!listing.has(inDir('package-lock.json')) && !listing.has(inDir('npm-shrinkwrap.json')))
        problems.push(
          `release.node_dir ${shown} has no package-lock.json (nor npm-shrinkwrap.json) in commit ${at}: npm ci installs only from npm's lockfile${others.length ? `; found ${others.map((l) => `${inDir(l)} (${OTHER_NODE_LOCKS[l]}'s)`).join(', ')}, which npm ci does not read` : ''}\n  fix: generate it (cd ${shown} && npm install --package-lock-only${others.includes('yarn.lock') ? ': npm takes the versions yarn.lock pins' : ''}) and commit it; or install with ${others.length ? OTHER_NODE_LOCKS[others[0]!] : 'your package manager'} in release.build and set release.node_dir to ""`,
        );
      else {
        const lockName = listing.has(inDir('npm-shrinkwrap.json')) ? 'npm-shrinkwrap.json' : 'package-lock.json';
        const text = await fileAt(repo, sha, inDir(lockName));
        for (const problem of [engineProblem(text, inDir(lockName), shown, env.config.runtimes.node.version), platformProblem(text, inDir(lockName), shown)]) if (problem) problems.push(problem);
        if (listing.kind(inDir('.npmrc')) === 'file') warnings.push(...npmrcVariableWarnings(await fileAt(repo, sha, inDir('.npmrc')), inDir('.npmrc')));
        const pkgText = await fileAt(repo, sha, inDir('package.json'));
        const other = otherManagerWarning(pkgText, others.map(inDir), inDir(lockName), shown);
        if (other) warnings.push(other);
        const unsynced = pkgText !== undefined && text !== undefined ? lockOutOfSync(pkgText, text) : [];
        if (unsynced.length)
          problems.push(
            `release.node_dir ${shown}: ${inDir('package.json')} and ${inDir(lockName)} are out of sync, which npm ci refuses on the host ("can only install packages when your package.json and ${lockName} are in sync"): ${list(unsynced, 4)}\n  fix: cd ${shown} && npm install (it brings ${lockName} in line with package.json), and commit ${lockName}`,
          );
      }
    }
  }

  for (const [setting, command] of [['release.build', build], ['release.migrate', migrate]] as const) {
    const problem = command ? await makeProblem(repo, sha, listing, env, setting, command) : undefined;
    if (problem) problems.push(problem);
  }

  // A program's directory the commit lacks may still be made before the start: by the build (an output directory
  // such as build/ or dist/: vite, adapter-node), migrate or a before_switch hook, or by the dependency sets (venv/,
  // node_modules/). What a command makes cannot be known here: a warning, not a refusal (a false one would stop a
  // good deploy), unless no command runs in the release ("" for release.build and release.migrate, no hook). Refused
  // too: a directory that is a file in the commit, or under one (no command is expected to replace a committed file
  // by a directory).
  const made = [...(req ? ['venv'] : []), ...(nodeDir ? [norm(`${nodeDir}/node_modules`)] : [])];
  for (const [name, program] of Object.entries(env.config.programs)) {
    const dir = norm(program.directory ?? '.');
    const kind = listing.kind(dir);
    const fix = `\n  fix: set programs.${name}.directory to the directory the program runs in, relative to the release ("." for its root)`;
    if (kind === 'file') problems.push(`programs.${name}.directory ${program.directory} is a file in commit ${at}, not a directory${fix}`);
    else if (kind === 'under-file') problems.push(`programs.${name}.directory ${missing(kind, program.directory, at)}${fix}`);
    else if ((kind === 'absent' || kind === 'ignored') && !made.some((m) => dir === m || dir.startsWith(`${m}/`)) && !build && !migrate && !beforeSwitch.length)
      problems.push(`programs.${name}.directory ${missing(kind, program.directory, at)}, and nothing runs in the release before the start that could make it (release.build and release.migrate are "", no before_switch hook)${fix}`);
    else if ((kind === 'absent' || kind === 'ignored') && !made.some((m) => dir === m || dir.startsWith(`${m}/`)))
      warnings.push(
        `programs.${name}.directory ${missing(kind, program.directory, at)}: release.build (${build})${beforeSwitch.length ? ' or a before_switch hook' : ''} must make it, else supervisor cannot start ${name} ("couldn't chdir") after the build`,
      );
  }
  problems.push(...shellScriptProblems(env), ...(await inlinedSlotValues(repo, sha, env)));
  warnings.push(...envFileWarnings(env, listing, at), ...(await processOnlySettings(repo, sha, env)), ...(await nextDotenvDirs(repo, sha, env)));
  return { problems, warnings };
}

/** Options that name a dotenv file a program loads itself: uvicorn's `--env-file` (a missing file fails its start: click's "Path '.env' does not exist"), Node's `--env-file` (fails too) and `--env-file-if-exists` (reads nothing, silently: Node.js docs, "Command-line API"). */
const ENV_FILE_OPTIONS = ['--env-file', '--env-file-if-exists'];

/**
 * Warnings for programs whose command names, with ENV_FILE_OPTIONS, a relative dotenv file that is neither the
 * release's `.env` (at the release's root: `{release}/.env`, or `.env` from a program there) nor a file of the commit
 * (`listing`): read from the program's `directory`, `--env-file .env` there finds no file unless the build makes one,
 * and the start fails after the build on each host (uvicorn, node), or the app serves without the values
 * (`--env-file-if-exists`). A warning, as a program directory the commit lacks is: the build may write that file. An
 * absolute path (a host's own file) or one out of the release is not judged.
 */
function envFileWarnings(env: Environment, listing: Listing, at: string): string[] {
  const warnings: string[] = [];
  for (const [name, program] of Object.entries(env.config.programs)) {
    const words = commandWords(program.command);
    if (!Array.isArray(words)) continue;
    for (const [i, w] of words.entries()) {
      const option = ENV_FILE_OPTIONS.find((o) => w.text === o || w.text.startsWith(`${o}=`));
      const value = option && (w.text === option ? words[i + 1]?.text : w.text.slice(option.length + 1));
      if (!option || !value || value.startsWith('/')) continue;
      const dir = norm(program.directory ?? '.');
      const path = value.startsWith('{release}/') ? norm(value.slice('{release}/'.length)) : norm(posix.join(dir || '.', value));
      if (path === '.env' || listing.has(path) || path.startsWith('../') || path === '..') continue;
      warnings.push(
        `programs.${name}.command passes ${option} ${value}, read from its directory ${dir || '.'}: ${path}, which is not in commit ${at} and which the deploy does not write (the release's .env is at its root): unless release.build makes it, ${option === '--env-file' ? 'the program fails its start after the build (uvicorn: "Path \'.env\' does not exist"; node: not found)' : 'the program reads no file and serves without the values'}; to read the release's .env, write ${option} {release}/.env`,
      );
    }
  }
  return warnings;
}

/** Shells a program's command may run its line through (`sh -c '...'`, README programs.<name>.command), by the first word's name. */
const SHELLS = new Set(['sh', 'dash', 'bash']);

/**
 * The refusals of programs whose command runs a shell on a script (`sh -c '<script>'`, `bash -lc ...`) that this
 * machine's same shell cannot parse (`sh -n`: read, not run): supervisor starts the shell, which fails on every start
 * with its own "Syntax error", after the build, on each host. The likely cause is said when the script's word is
 * made of several quoted parts: a quote of the same kind inside the script's quotes ends them (Flask's docs'
 * `gunicorn 'hello:create_app()'` inside `sh -c '...'`). A shell this machine lacks is not judged.
 */
function shellScriptProblems(env: Environment): string[] {
  const problems: string[] = [];
  for (const [name, program] of Object.entries(env.config.programs)) {
    const words = commandWords(program.command);
    if (!Array.isArray(words) || !words[0]) continue;
    const shell = posix.basename(words[0].text);
    if (!SHELLS.has(shell)) continue;
    // Its options up to the one holding c (-c, -ec, -lc); the script is the next word.
    const c = words.findIndex((w, i) => i > 0 && /^-[a-z]*c[a-z]*$/.test(w.text));
    const script = c > 0 ? words[c + 1] : undefined;
    if (!script || words.slice(1, c).some((w) => !w.text.startsWith('-'))) continue;
    const checked = spawnSync(shell, ['-n', '-c', script.text], { encoding: 'utf8', timeout: 5000 });
    if (checked.error || checked.status === 0) continue;
    const said = checked.stderr.trim().split('\n')[0] ?? '';
    const raw = program.command.slice(script.start, script.end);
    const outer = raw[0] === "'" || raw[0] === '"' ? raw[0] : undefined;
    const nested = outer !== undefined && raw.split(outer).length > 3;
    problems.push(
      `programs.${name}.command runs ${shell} -c on a script ${shell} cannot parse (${said || `exit code ${checked.status}`}): supervisor would start it after the build and it would fail on every start` +
        `\n  fix: ${nested ? `a ${outer} inside the script's ${outer === "'" ? 'single' : 'double'} quotes ends them, and what follows is outside: quote inside with ${outer === "'" ? 'double quotes ("hello:create_app()")' : "single quotes ('hello:create_app()')"}; ` : ''}correct the script (check it with ${shell} -n -c '<script>')`,
    );
  }
  return problems;
}

/**
 * Variable prefixes frameworks read settings from in their own process environment only, never from a `.env` file
 * while they serve: Flask's `app.config.from_prefixed_env()` (FLASK_*; the `flask` command loads a .env, gunicorn and
 * uWSGI do not: Flask docs, "Configuration Handling"), Nuxt's runtimeConfig (NUXT_*) and Nitro's (NITRO_*), which read
 * no .env in production (Nuxt docs, "Runtime Config").
 */
const PROCESS_ONLY_PREFIXES: [prefix: string, reader: string][] = [
  ['FLASK_', "Flask's from_prefixed_env (the flask command loads a .env; gunicorn does not)"],
  ['NUXT_', "Nuxt's runtimeConfig (no .env is read in production)"],
  ['NITRO_', "Nitro's runtimeConfig (no .env is read in production)"],
];

/**
 * What in an app's code or a program's command loads a `.env` file into the process itself: python-dotenv,
 * django-environ, pydantic-settings' env_file, Node's dotenv, dotenv-cli, node --env-file, process.loadEnvFile, a
 * shell sourcing it. An extended regular expression (git grep -E reads it too).
 */
const LOADS_DOTENV = String.raw`load_dotenv|dotenv_values|read_env|env_file|dotenv/config|require\(['"]dotenv['"]\)|from ['"]dotenv['"]|loadEnvFile|env-file|dotenv -e|/\.env([^A-Za-z0-9_]|$)`;

/**
 * Warnings for the `.env` values (env) a framework reads from its process environment only (PROCESS_ONLY_PREFIXES)
 * that no program gets: not in any programs.<name>.env, no program's command loading the .env (`set -a; .
 * {release}/.env`, `--env-file`), and nothing in commit `sha`'s code that loads one (LOADS_DOTENV, `git grep` of its
 * Python and JavaScript files). The build and migration get them (they pass), the app then serves without them,
 * silently (Flask without its FLASK_SECRET_KEY answers 500 to a request using the session), while the deploy says it
 * is live. A warning: an app may load the file in a way not seen here.
 */
async function processOnlySettings(repo: string, sha: string, env: Environment): Promise<string[]> {
  const programs = Object.values(env.config.programs);
  const given = new Set(programs.flatMap((p) => Object.keys(p.env)));
  const lost = Object.keys(env.config.env).filter((name) => !given.has(name) && PROCESS_ONLY_PREFIXES.some(([prefix]) => name.startsWith(prefix)));
  if (!lost.length || programs.some((p) => new RegExp(LOADS_DOTENV).test(p.command))) return [];
  const code = ['*.py', '*.js', '*.mjs', '*.cjs', '*.ts', '*.mts', ':!:**/node_modules/**'];
  const grep = await new Git(repo).run(['grep', '-l', '-I', '-E', '-e', LOADS_DOTENV, sha, '--', ...code]);
  if (grep.code === 0 && grep.stdout.trim()) return [];
  return PROCESS_ONLY_PREFIXES.flatMap(([prefix, reader]) => {
    const names = lost.filter((n) => n.startsWith(prefix));
    if (!names.length) return [];
    return [
      `env ${list(names, 4)} ${names.length > 1 ? 'are' : 'is'} written to the release's .env only, and ${reader} reads ${prefix}* from the process environment: a program gets only HOME, PATH, OPS_RELEASE, OPS_SLOT and its programs.<name>.env, and nothing in commit ${sha.slice(0, 12)} loads the .env (no load_dotenv, read_env, dotenv...), so the app would serve without ${names.length > 1 ? 'them' : 'it'} (its default, or none) while the deploy says it is live; let the app read the file (python-dotenv's load_dotenv() in the app factory, Node's dotenv), or start the program through the shell reader: command: "sh -c 'set -a; . {release}/.env; exec <program>'" with shell in dotenv.readers`,
    ];
  });
}

/**
 * Options of `next start` that take a value (Next.js docs, "next CLI": -p/--port, -H/--hostname,
 * --keepAliveTimeout); any other word starting with "-" is a flag.
 */
const NEXT_START_VALUE_OPTIONS = new Set(['-p', '--port', '-H', '--hostname', '--keepAliveTimeout']);

/**
 * The project directory a `next start` in `words` serves, as written (`next start web`: "web"; none given: "."), or
 * undefined when the words run no `next start` (`next`, `npx next`, `node_modules/.bin/next`, `node .../next`).
 */
function nextStartDir(words: string[]): string | undefined {
  const at = words.findIndex((w, i) => posix.basename(w) === 'next' && words[i + 1] === 'start');
  if (at < 0) return undefined;
  for (let i = at + 2; i < words.length; i++) {
    const w = words[i]!;
    if (NEXT_START_VALUE_OPTIONS.has(w)) i++;
    else if (!w.startsWith('-')) return w;
  }
  return '.';
}

/**
 * The npm script a command runs (`npm start`, `{npm} run start`, `npm run-script serve`: "start", "serve"), or
 * undefined for another command.
 */
function npmScript(words: string[]): string | undefined {
  if (!words[0] || !['npm', '{npm}'].includes(posix.basename(words[0]))) return undefined;
  const rest = words.slice(1).filter((w) => !w.startsWith('-'));
  if (rest[0] === 'start') return 'start';
  return rest[0] === 'run' || rest[0] === 'run-script' ? rest[1] : undefined;
}

/**
 * Warnings for programs that serve a Next.js app with `next start` from another directory than the release's root
 * (programs.<name>.directory, `next start <dir>`, or an npm script running it in a package there): Next.js loads
 * `.env*` files from its project directory only (@next/env's loadEnvConfig(dir), Next.js docs "Environment
 * Variables"), while ops writes the release's `.env` at its root, so every server value (not NEXT_PUBLIC_*, which the
 * build inlines) is undefined while it serves, silently, and the deploy says it is live. Values the program is given
 * (programs.<name>.env) or a command that loads the .env itself (LOADS_DOTENV) are read: no warning. The npm script
 * is read from the package.json at the program's directory in commit `sha`.
 */
async function nextDotenvDirs(repo: string, sha: string, env: Environment): Promise<string[]> {
  const names = Object.keys(env.config.env).filter((n) => !n.startsWith('NEXT_PUBLIC_'));
  if (!names.length) return [];
  const warnings: string[] = [];
  for (const [name, program] of Object.entries(env.config.programs)) {
    if (new RegExp(LOADS_DOTENV).test(program.command)) continue;
    const parsed = commandWords(program.command);
    if (!Array.isArray(parsed)) continue;
    const words = parsed.map((w) => w.text);
    const cwd = posix.normalize(program.directory ?? '.');
    let served = nextStartDir(words);
    let via = '';
    const script = served === undefined ? npmScript(words) : undefined;
    if (script) {
      const pkg = await fileAt(repo, sha, posix.join(cwd, 'package.json')).catch(() => undefined);
      let line: unknown;
      try {
        line = (JSON.parse(pkg ?? '{}') as { scripts?: Record<string, unknown> }).scripts?.[script];
      } catch {
        line = undefined;
      }
      const scriptWords = typeof line === 'string' ? commandWords(line) : undefined;
      served = Array.isArray(scriptWords) ? nextStartDir(scriptWords.map((w) => w.text)) : undefined;
      via = ` (its npm script "${script}" runs ${String(line)})`;
    }
    if (served === undefined) continue;
    // {release}/web is the release's web; another absolute path is not judged
    const dir = served.startsWith('{release}') ? posix.normalize(`.${served.slice('{release}'.length)}`) : served.startsWith('/') ? undefined : posix.join(cwd, served);
    if (dir === undefined || dir === '.' || dir === './') continue;
    const given = new Set(Object.keys(program.env));
    const lost = names.filter((n) => !given.has(n));
    if (!lost.length) continue;
    warnings.push(
      `programs.${name} runs next start${via} in ${dir}/ of the release, and Next.js reads .env files from its project directory only: the release's .env is at its root, so env ${list(lost, 4)} would be undefined in the server while the deploy says it is live (NEXT_PUBLIC_* values are inlined by the build, which reads them from the process environment); ` +
        `load the file into the process: command: "sh -c 'set -a; . {release}/.env; exec <the command>'" with shell in dotenv.readers, or give the values in programs.${name}.env`,
    );
  }
  return warnings;
}

/** Source files a front-end build reads (and so may inline values into), for `git grep`; node_modules left out. */
const FRONTEND_SOURCES = ['*.js', '*.mjs', '*.cjs', '*.ts', '*.mts', '*.cts', '*.jsx', '*.tsx', '*.svelte', '*.vue', '*.astro', ':!:**/node_modules/**'];

/**
 * How a source file reads variable `name` so that the build writes its value into the code it makes, the server's
 * code too, or undefined when it does not: vite's `import.meta.env.NAME` (a member, `['NAME']`, or a destructuring
 * `{ NAME } = import.meta.env`: Vite docs, "Env Variables and Modes", replaced statically at build time), SvelteKit's
 * `import { NAME } from '$env/static/private'` (or `/public`: SvelteKit docs, "$env/static/private"), and Next.js's
 * `process.env.NEXT_PUBLIC_*` (Next.js docs, "Environment Variables": inlined at build time). A reading at run time
 * (`process.env.NAME` otherwise, `$env/dynamic/*`, `Object.entries(import.meta.env)`) is not one.
 */
export function inlinedRead(text: string, name: string): string | undefined {
  const n = name.replace(/[$]/g, '\\$&');
  const forms: [RegExp, string][] = [
    [new RegExp(String.raw`import\.meta\.env(?:\.${n}\b|\[\s*['"\x60]${n}['"\x60]\s*\])`), `import.meta.env.${name}`],
    [new RegExp(String.raw`\{[^{}]*\b${n}\b[^{}]*\}\s*=\s*import\.meta\.env\b`), `{ ${name} } = import.meta.env`],
    [new RegExp(String.raw`import\s*\{[^{}]*\b${n}\b[^{}]*\}\s*from\s*['"]\$env/static/(?:private|public)['"]`), `$env/static/`],
    ...(name.startsWith('NEXT_PUBLIC_') ? [[new RegExp(String.raw`process\.env\.${n}\b`), `process.env.${name}`] as [RegExp, string]] : []),
  ];
  for (const [re, shown] of forms) {
    const m = re.exec(text);
    if (m) return shown === '$env/static/' ? `import { ${name} } from '${/\$env\/static\/(private|public)/.exec(m[0])![0]}'` : shown;
  }
  return undefined;
}

/**
 * Problems for a variable whose value differs per slot (a program's env giving it with `{port}` / `{port:<p>}`, or
 * the .env naming a program's port as a number) that commit `sha`'s code reads in a form the build inlines
 * (inlinedRead): the release is built once, for both slots, so the code holds the .env's value (the blue slot's
 * port, or nothing) and the program's own value is never read; a release on the green slot would call the blue
 * slot's program (the live release before the switch, the previous one kept warm after it, or nothing once it is
 * stopped) while its health checks pass and the deploy says it is live. Found by `git grep -w` of the names in the
 * front-end sources (FRONTEND_SOURCES), each file then read; the first file reading each name is named.
 */
async function inlinedSlotValues(repo: string, sha: string, env: Environment): Promise<string[]> {
  const { programs, env: dotenv } = env.config;
  const ports = Object.entries(programs).map(([p, prog]) => [p, prog.port] as const);
  // name -> [why it differs per slot, the program it reaches]
  const perSlot = new Map<string, [string, string]>();
  for (const [p, prog] of Object.entries(programs))
    for (const [k, v] of Object.entries(prog.env)) {
      const m = /\{port(?::([^}]*))?\}/.exec(v);
      if (m && !perSlot.has(k)) perSlot.set(k, [`programs.${p}.env gives it "${v}" for each slot`, m[1] ?? p]);
    }
  for (const [k, v] of Object.entries(dotenv))
    if (typeof v === 'string' && !perSlot.has(k)) {
      const hit = ports.find(([, port]) => new RegExp(`:${port}(?!\\d)`).test(v));
      if (hit) perSlot.set(k, [`it names port ${hit[1]}, program ${hit[0]}'s in the blue slot only (the green slot runs it on ${hit[1] + env.config.switch.port_offset})`, hit[0]]);
    }
  if (!perSlot.size) return [];
  const names = [...perSlot.keys()];
  const grep = await new Git(repo).run(['grep', '-l', '-I', '-w', ...names.flatMap((n) => ['-e', n]), sha, '--', ...FRONTEND_SOURCES]);
  if (grep.code !== 0) return [];
  const files = grep.stdout.split('\n').filter(Boolean).map((l) => l.slice(sha.length + 1)).slice(0, 200);
  const problems: string[] = [];
  for (const name of names) {
    for (const file of files) {
      const read = inlinedRead((await fileAt(repo, sha, file)) ?? '', name);
      if (!read) continue;
      const built = dotenv[name];
      const value = built === undefined ? 'nothing (the .env does not give it)' : typeof built === 'string' ? `the .env's ${JSON.stringify(built)}` : "the .env's secret";
      problems.push(
        `${name}: ${file} reads it as ${read}, which the build replaces with its value in the code it makes (the server's too), and the release is built once for both slots: it holds ${value}, and ${perSlot.get(name)![0]}, so a release on the green slot would call the blue slot's ${perSlot.get(name)![1]} (the live release before the switch, the previous one kept warm after it) while the deploy says it is live\n` +
          `  fix: read it at run time in server code (process.env.${name}; SvelteKit 1.0 and later: $env/dynamic/private), so each slot's programs.<program>.env value is used; or, with the code as it is, give env.${name} a value that is the same for both slots and follows the switch, the site's own URL through nginx (e.g. http://127.0.0.1/api on the host when the site is nginx's default server), and drop it from programs.<program>.env`,
      );
      break;
    }
  }
  return problems;
}

/**
 * The refusal of a lockfile (`text` of `path`, npm's) whose packages need a Node.js other than `pinned`
 * (runtimes.node.version): what nodeEngineMisfits finds, the packages named with their ranges, and the fix (the
 * lowest major every range takes). undefined when all fit, or the lockfile cannot be read.
 */
function engineProblem(text: string | undefined, path: string, shown: string, pinned: string): string | undefined {
  if (text === undefined) return undefined;
  const { misfits, fits } = nodeEngineMisfits(text, pinned);
  if (!misfits.length) return undefined;
  const named = misfits.map((m) => `${m.name}${m.version ? ` ${m.version}` : ''} (engines.node "${m.range}")`);
  const they = misfits.length > 1 ? 'they' : 'it';
  return (
    `release.node_dir ${shown}: runtimes.node pins Node.js ${pinned}, and ${path} holds ${misfits.length > 1 ? `${misfits.length} packages` : 'a package'} that ${misfits.length > 1 ? 'say they need' : 'says it needs'} another: ${list(named, 4)}; npm ci installs ${they === 'they' ? 'them' : 'it'} with a warning only (EBADENGINE), and the build or the app then fails on the host in ${they === 'they' ? 'their' : 'its'} own words (vite 8 on Node.js 18: "does not provide an export named 'styleText'")` +
    `\n  fix: pin a Node.js ${they} run${they === 'they' ? '' : 's'} on in runtimes.node.version${fits !== undefined ? ` (${fits}: a version of it satisfies every package's range)` : ''}, then run ops provision; or lock versions that run on Node.js ${pinned} (npm install <package>@<version> in ${shown})`
  );
}

/**
 * The refusal of a lockfile (`text` of `path`, npm's) that lacks the Linux platform packages of a package with a
 * native binary (core/node-platforms.ts: npm/cli#4828, a lockfile made on macOS or Windows): npm ci on the host
 * installs it without one, and the build or the app fails there. undefined when none lacks them, or the lockfile
 * cannot be read.
 */
function platformProblem(text: string | undefined, path: string, shown: string): string | undefined {
  if (text === undefined) return undefined;
  const gaps = nodePlatformGaps(text);
  if (!gaps.length) return undefined;
  const named = gaps.map((g) => `${g.name}${g.version ? ` ${g.version}` : ''} (only ${list(g.present, 3)}; lacks ${list(g.absent, 2)})`);
  const first = gaps[0]!.absent[0]!;
  return (
    `release.node_dir ${shown}: ${path} lacks the Linux packages of ${gaps.length > 1 ? `${gaps.length} packages with a native binary` : 'a package with a native binary'}: ${list(named, 3)}; npm ci installs only what the lockfile lists, so on the host ${gaps.length > 1 ? 'they are' : 'it is'} installed without ${gaps.length > 1 ? 'their binaries' : 'its binary'} and the build or the app fails there ("Cannot find module", naming ${first} or its binary). npm writes such a lockfile on macOS or Windows from an existing node_modules (npm/cli#4828)` +
    `\n  fix: cd ${shown} && npm install --package-lock-only (npm adds the platform packages the lockfile lacks; else remove node_modules and ${posix.basename(path)} and run npm install), and commit ${posix.basename(path)}`
  );
}

/**
 * The warning for a project whose package.json names another package manager in `packageManager` (corepack's field:
 * "pnpm@9.15.0") or that holds another manager's lockfile (`otherLocks`) beside npm's (`lockPath`): the deploy
 * installs with npm ci from npm's lockfile, which such a team may not keep up to date (a version bumped with pnpm is
 * not deployed). undefined when neither, or package.json cannot be read.
 */
function otherManagerWarning(pkgText: string | undefined, otherLocks: string[], lockPath: string, shown: string): string | undefined {
  let manager: string | undefined;
  try {
    const field = (JSON.parse(pkgText ?? '{}') as { packageManager?: unknown }).packageManager;
    if (typeof field === 'string' && !/^npm@/.test(field)) manager = field;
  } catch {
    // npm ci says what is wrong with a package.json that is not JSON.
  }
  if (!manager && !otherLocks.length) return undefined;
  const said = [...(manager ? [`its package.json's packageManager is ${JSON.stringify(manager.slice(0, 60))} (corepack)`] : []), ...(otherLocks.length ? [`it holds ${otherLocks.join(', ')}`] : [])];
  return `release.node_dir ${shown}: ${said.join(' and ')}, yet the deploy installs with npm ci from ${lockPath}, which npm keeps, not that manager: a change made with it alone (a bumped version) is not deployed; keep ${lockPath} with npm (npm install --package-lock-only), or install with that manager in release.build and set release.node_dir to ""`;
}

/** Variables npm ci has on the host (the step's own environment: core/steps/app.ts appEnvironment); the .env's are not among them. */
const NPM_STEP_VARIABLES = new Set(['HOME', 'PATH', 'USER', 'LOGNAME', 'PWD']);

/**
 * Warnings for the lines of the commit's .npmrc (`text` of `path`) that read an environment variable
 * (`//npm.pkg.github.com/:_authToken=${NODE_AUTH_TOKEN}`, as setup-node and CI guides write it): npm ci on the host
 * runs without the .env's values, and npm keeps `${NAME}` as it is when NAME is unset (npm docs, "npmrc":
 * environment variables), so the registry gets that text as the token and answers 401; the project's .npmrc
 * outranks the app user's ~/.npmrc, where the token belongs. Each names the key and the variable, never a value. [] when there is none, or no text.
 */
function npmrcVariableWarnings(text: string | undefined, path: string): string[] {
  if (text === undefined) return [];
  const found = new Map<string, Set<string>>();
  for (const line of text.split(/\r?\n/)) {
    if (/^\s*[#;]/.test(line)) continue;
    const key = /^\s*([^=\s]+)\s*=/.exec(line)?.[1];
    if (!key) continue;
    for (const m of line.slice(line.indexOf('=') + 1).matchAll(/(\\*)\$\{([A-Za-z_][A-Za-z0-9_]*)\??\}/g)) {
      if (m[1]!.length % 2 || NPM_STEP_VARIABLES.has(m[2]!)) continue;
      found.set(key, (found.get(key) ?? new Set()).add(m[2]!));
    }
  }
  return [...found].map(([key, names]) => {
    const host = /^(\/\/[^:]+\/?):/.exec(key)?.[1];
    const name = [...names].join(', ');
    return `${path}: ${key} reads \${${name}}, and npm ci on the hosts runs without the .env's values (a secret of the environment is not in its environment): unless the host's own environment sets it, npm sends the text \${${name}} itself as the value (nothing, written \${${name}?}), and a registry that needs it answers 401` +
      (host ? `; remove the line from ${path} (a scope's registry line stays) and write it with the token in the app user's ~/.npmrc on each host (${key}=<token>; the deploy keeps the //host/ lines there), or use packages.npm_registry and packages.npm_token (a secret) when it is the registry of every package` : `; give the value in ${path} itself, or remove the line`);
  });
}

/** The longest file name Linux filesystems take, in bytes (NAME_MAX, limits.h; ext4, xfs, btrfs alike). */
const NAME_MAX = 255;

/**
 * The paths of a commit's tree with a name (one component) longer than NAME_MAX bytes in UTF-8: git stores any
 * length, and a file system that counts characters (APFS: 255 of them) lets one be committed that `tar -x` on the
 * host refuses ("File name too long"). Those export-ignore leaves out are no problem.
 */
function unwritableNames(listing: Listing): string[] {
  return listing.entries.filter((e) => Buffer.byteLength(e.path.slice(e.path.lastIndexOf('/') + 1)) > NAME_MAX && listing.kind(e.path) !== 'ignored').map((e) => e.path);
}

/** The commit's requirements files and Python project files, and "; found instead: ..." with how to fix. */
function pythonFound(listing: Listing, path: string): { files: string[]; text: string } {
  const named = (re: RegExp) => listing.entries.filter((e) => e.type === 'blob' && re.test(e.path) && !e.path.includes('node_modules/')).map((e) => e.path);
  const reqs = named(/(^|\/)requirements([^/]*|\/[^/]+)\.txt$/);
  const unpinned = named(/(^|\/)requirements([^/]*|\/[^/]+)\.in$/);
  const dir = posix.dirname(path) === '.' ? '' : posix.dirname(path);
  const project = [...new Set([dir, ''])].flatMap((d) => ['pyproject.toml', 'setup.py', 'setup.cfg', 'Pipfile', ...Object.keys(PYTHON_LOCKS)].map((f) => (d ? `${d}/${f}` : f))).filter((f) => listing.has(f));
  const found = [...reqs, ...unpinned, ...project];
  const locks = project.filter((f) => PYTHON_LOCKS[posix.basename(f)]);
  const source = unpinned[0] ?? project.find((f) => posix.basename(f) === 'pyproject.toml');
  const fixes = [
    ...(reqs.length ? [`point release.python_requirements at ${reqs.length > 1 ? 'one of these' : reqs[0]}`] : []),
    ...locks.map((l) => (posix.basename(l) === UV_LOCK ? `point release.python_requirements at ${l} (installed as locked)` : `export ${l} to a requirements file: ${PYTHON_LOCKS[posix.basename(l)]}, commit it and point release.python_requirements at it`)),
    ...(!locks.length && source ? [`compile ${source} to a pinned requirements file (\`uv pip compile ${source} -o ${path}\`), commit it`] : []),
    `commit ${path}`,
    'set release.python_requirements to "" for no Python',
  ];
  return { files: found, text: `${found.length ? `; found instead: ${list(found)}` : ''}\n  fix: ${fixes.join('; or ')}` };
}

/** ", found instead: ..." with the commit's directories holding a package.json, and how to fix. */
function nodeFound(listing: Listing): string {
  const dirs = listing.entries.filter((e) => e.type === 'blob' && /(^|\/)package\.json$/.test(e.path) && !e.path.includes('node_modules/')).map((e) => posix.dirname(e.path));
  return `${dirs.length ? `; directories with a package.json: ${list(dirs)}` : ''}\n  fix: set release.node_dir to the directory of the app's package.json, relative to the repository ("" for no Node)`;
}

/**
 * Why `make [target]` (exactly that: nothing else is read) certainly fails in the release root, else undefined.
 * Only two cases, each refused only when nothing else could make it work: no makefile at the root (GNUmakefile,
 * makefile, Makefile), or a plain makefile that defines no such target. Not refused, as make might succeed: a
 * file or directory at the root named after the target (or `<target>.<suffix>`, RCS/, SCCS/: make's implicit
 * rules, or "Nothing to be done"; VPATH and vpath, which look for it elsewhere), make's variables in `env` (MAKEFILES, MAKEFLAGS...), a makefile that is a link
 * or large, or that includes others, makes targets from variables, patterns or eval, or sets .DEFAULT or
 * .RECIPEPREFIX. A word before a ":" on any line (a recipe's too) counts as a target: a miss, never a false refusal.
 */
async function makeProblem(repo: string, sha: string, listing: Listing, env: Environment, setting: string, command: string): Promise<string | undefined> {
  const m = /^\s*make(?:\s+([A-Za-z0-9_][A-Za-z0-9_.+-]*))?\s*$/.exec(command);
  if (!m) return undefined;
  const target = m[1];
  if (Object.keys(env.config.env ?? {}).some((k) => MAKE_ENV.includes(k))) return undefined;
  const root = listing.names('');
  if (root.some((n) => n === 'RCS' || n === 'SCCS' || (target && (n === target || n.startsWith(`${target}.`) || n === `${target},v` || n === `s.${target}`)))) return undefined;
  const at = sha.slice(0, 12);
  const makefile = MAKEFILES.find((f) => listing.entry(f));
  const defaults: Record<string, string> = { 'release.build': 'make build', 'release.migrate': 'make migrate' };
  const named = `${setting} is \`${command.trim()}\`${command.trim() === defaults[setting] ? ' (its default)' : ''}`;
  const instead = `set ${setting} to the command that ${setting === 'release.build' ? 'builds the app' : 'migrates the database'} (\`true\` for none)`;
  if (!makefile)
    return `${named}, but commit ${at} has no Makefile at its root (nor makefile, GNUmakefile): make would fail (${target ? `No rule to make target '${target}'` : 'no makefile found'})\n  fix: commit a Makefile${target ? ` with a \`${target}:\` rule` : ''} at the repository root, or ${instead}`;
  if (!target) return undefined; // the default goal: the makefile's first target
  const e = listing.entry(makefile)!;
  if (e.type !== 'blob' || e.mode === '120000' || e.size > 256 * 1024) return undefined;
  const text = (await fileAt(repo, sha, makefile)) ?? '';
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/).map((l) => l.replace(/#.*/, ''));
  const heads: string[] = [];
  for (const line of lines) {
    if (/^\s*-?s?include\s/.test(line) || /\.DEFAULT\b|\.RECIPEPREFIX|\$\(eval|\$\{eval|VPATH/.test(line) || /^\s*vpath\b/.test(line)) return undefined;
    const colon = /:(?![=:]?=)/.exec(line);
    if (!colon) continue;
    const head = line.slice(0, colon.index);
    if (/[$%]/.test(head)) return undefined;
    heads.push(...head.trim().split(/\s+/));
  }
  if (heads.includes(target)) return undefined;
  const targets = [...new Set(heads.filter((h) => /^[A-Za-z0-9_][A-Za-z0-9_.+/-]*$/.test(h) && !h.startsWith('.')))];
  return `${named}, but ${makefile} in commit ${at} has no \`${target}\` target${targets.length ? ` (its targets: ${list(targets, 8)})` : ''}: make would fail (No rule to make target '${target}')\n  fix: add a \`${target}:\` rule to ${makefile}, or ${instead}`;
}

/**
 * One OpsError for every problem preflight found (undefined when none): each names the setting, the path, what the
 * commit holds instead and how to fix it; nothing was sent to any host.
 */
export function preflightError(result: PreflightResult, sha: string): OpsError | undefined {
  if (!result.problems.length) return undefined;
  const one = result.problems.length === 1;
  return new OpsError(
    `commit ${sha.slice(0, 12)} does not fit the release settings${one ? '' : ` (${result.problems.length} problems)`}, refused before any host was touched:\n${result.problems.map((p) => `- ${p}`).join('\n')}`,
    'fix each of them (in the commit or the environment settings), then deploy again',
  );
}
