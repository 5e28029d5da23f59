// What a deploy changes, from the runner's git: the commits between what a host serves and the target, whether
// the target is behind (a rollback in disguise), the migrations the target adds, and which dependency sets
// change. Capistrano's `deploy:pending` answers the same question; here it is part of every plan and summary.
import type { Environment } from './config/environment.ts';
import { messageLine, OpsError, unreadLine } from './errors.ts';
import { Git, git } from './git.ts';
import { dependencyInputs } from './dependency-inputs.ts';
import { historyCut, treeEntries } from './source.ts';
import { blobTexts } from './tree-content.ts';

/** Commits listed before "N more". */
export const COMMIT_LIMIT = 20;

/**
 * Where migrations live when `release.migration_paths` is not set: Django/Knex/Flyway-style `migrations/` dirs,
 * alembic's `versions/` (also wherever an alembic.ini's script_location points), Rails' db/migrate.
 */
export const DEFAULT_MIGRATION_PATHS = ['**/migrations/**', '**/alembic/versions/**', '**/db/migrate/**'];

/** git's empty tree (SHA-1 repositories, as live commits are read here): a diff from it lists every file of a commit. */
const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';

/** Files in migration directories that are not migrations. */
const NOT_MIGRATIONS = /(^|\/)(__init__\.py|env\.py|script\.py\.mako|README[^/]*|alembic\.ini|\.gitkeep)$|(^|\/)__pycache__\//;

export interface Commit {
  sha: string;
  subject: string;
  author: string;
}

export type Relation =
  /** nothing is live: a first deploy */
  | 'first'
  /** the target is live already */
  | 'same'
  /** the target contains the live commit: a normal deploy */
  | 'ahead'
  /** the live commit contains the target: a rollback in disguise */
  | 'behind'
  /** neither contains the other */
  | 'diverged'
  /** the live commit is not in the runner's repository (fetch, or a commit pushed elsewhere), or a shallow clone lacks the history between it and the target */
  | 'unknown';

export interface Change {
  live: string;
  target: string;
  relation: Relation;
  /** Commits the target adds (live..target), newest first, at most COMMIT_LIMIT; `added` counts them all. */
  commits: Commit[];
  added: number;
  /** Commits live now that the target lacks (target..live): what a behind or diverged deploy takes away. */
  removedCommits: Commit[];
  removed: number;
  /** Migration files the target adds; and those live now that the target lacks (a deploy does not undo them). */
  migrations: string[];
  migrationsLiveOnly: string[];
  /**
   * A file under the migration paths (an alembic versions/ directory's whole script directory: env.py...) or an
   * alembic.ini differs between the two commits (added, changed, removed), or the target has no migration under
   * those paths (its migrations are elsewhere: not known to be unchanged). Undefined when not compared (nothing live, the
   * live commit unknown or its files unread); false for the same commit.
   */
  migrationsChanged?: boolean;
  /** Dependency sets: python, node; the files their installs read; made again (what they read changed, or the
   * set is made for each release: `perRelease` says why, or the host lacks the set these settings name: `missing`,
   * set by describeChanges from what the hosts have). */
  dependencies: { name: string; files: string; changed: boolean; perRelease?: string; missing?: true }[];
  /**
   * Of `unknown`: the runner's clone is shallow (actions/checkout's default), so it lacks the live commit, or the
   * history between it and the target (both fetched at depth 1): which contains which is not known.
   */
  shallow?: true;
  /**
   * Why migrations and dependency sets were not compared: the live commit's files could not be read (a partial
   * clone that cannot reach its remote). The relation and commits still are: they need no file.
   */
  unread?: string;
  /** release.migrate is "" (the app has no migration command): no deploy runs the migrations listed (migrationsLine says so). */
  migrateUnset?: true;
}

async function commitsBetween(repo: string, from: string, to: string): Promise<{ commits: Commit[]; count: number }> {
  const count = Number((await git(repo, ['rev-list', '--count', `${from}..${to}`])).trim());
  const out = await git(repo, ['log', `--max-count=${COMMIT_LIMIT}`, '--format=%H%x1f%an%x1f%s%x1e', `${from}..${to}`]);
  const commits = out
    .split('\x1e')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const [sha = '', author = '', subject = ''] = l.split('\x1f');
      return { sha, author, subject };
    });
  return { commits, count };
}

/**
 * The sections of an ini text as Python's configparser reads it with ConfigParser's defaults, which alembic's Config
 * uses (docs.python.org/3/library/configparser.html, "Supported INI File Structure"): `[name]` headers; `key = value`
 * or `key: value` (the first delimiter; keys lower-cased); full-line comments (`#` or `;`, indented or not) skipped,
 * inside a value too; a value goes on over the lines indented more than its key, blank ones included
 * (empty_lines_in_values), joined with newlines, trailing whitespace dropped; DEFAULT's keys are every section's
 * unless it sets them. Not interpolated (`%(here)s` stays as written). Lines configparser would refuse (an option
 * before any section) are skipped. Pure. @returns section name -> key -> value.
 */
export function iniSections(text: string): Map<string, Map<string, string>> {
  const raw = new Map<string, Map<string, string[]>>();
  let section: Map<string, string[]> | undefined;
  let value: string[] | undefined;
  let indent = Infinity;
  // Any line ending, as Python's text mode reads a file (universal newlines: \r\n, \n, a lone \r).
  for (const line of text.split(/\r\n|\r|\n/)) {
    const stripped = line.trim();
    if (stripped.startsWith('#') || stripped.startsWith(';')) continue;
    if (!stripped) {
      value?.push('');
      continue;
    }
    const at = line.search(/\S/);
    if (value && at > indent) {
      value.push(stripped);
      continue;
    }
    indent = at;
    const header = /^\[(.+)\]/.exec(stripped);
    if (header) {
      section = raw.get(header[1]!) ?? new Map();
      raw.set(header[1]!, section);
      value = undefined;
      continue;
    }
    const option = /^(.*?)\s*[=:]\s*(.*)$/.exec(stripped);
    if (!section || !option) {
      value = undefined;
      continue;
    }
    value = [option[2]!];
    section.set(option[1]!.toLowerCase(), value);
  }
  const defaults = raw.get('DEFAULT') ?? new Map<string, string[]>();
  const out = new Map<string, Map<string, string>>();
  for (const [name, keys] of raw) {
    if (name === 'DEFAULT') continue;
    out.set(name, new Map([...defaults, ...keys].map(([k, v]) => [k, v.join('\n').trimEnd()])));
  }
  return out;
}

/** alembic's separators for version_locations (path_separator from 1.16, else version_path_separator), `os` being ':' here. */
const ALEMBIC_SEPARATORS: Record<string, RegExp> = { ';': /;/, ':': /:/, os: /:/, newline: /\n/, ' ': / /, space: / / };

/** Where an alembic config puts its revisions: directories relative to the repository, or why that is not known. */
export interface AlembicDirs {
  dirs: string[];
  /** For each package resource ("pkg.mod:dir") a location names: the directories it may be in the tree (pkg/mod/dir, src/pkg/mod/dir). */
  resources: string[][];
  /** Set when a location could not be read (an interpolation not resolved): then no change can be ruled out. */
  unknown?: string;
}

/** `path` ("/"-separated) with `.` and `dir/..` removed, no leading or trailing "/"; undefined when it leaves the root. */
function normalize(path: string): string | undefined {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (!part || part === '.') continue;
    if (part === '..') {
      if (!out.length) return undefined;
      out.pop();
    } else out.push(part);
  }
  return out.join('/');
}

/**
 * The directories an alembic config (at `ini` in the tree, its text `text`) takes revisions from, relative to the
 * repository, from every section (`alembic -n NAME` runs another section than [alembic]: all are watched):
 * script_location's versions/ and each of version_locations (split on path_separator, else version_path_separator,
 * else on commas and spaces, alembic's legacy default; empty items dropped, as alembic does). Values are
 * interpolated as configparser's BasicInterpolation does (`%(name)s` from the section and DEFAULT, names
 * case-insensitive, `%%`), with `here` the ini's directory, as alembic's Config sets it. A relative location is
 * relative to the directory alembic runs in: both the repository's root and the ini's directory are taken. A
 * package resource ("pkg.mod:dir") is taken as pkg/mod/dir, also under src/. A location outside the repository
 * is left out. Pure.
 */
export function alembicVersionDirs(ini: string, text: string): AlembicDirs {
  const dir = ini.includes('/') ? ini.slice(0, ini.lastIndexOf('/')) : '';
  const HERE = '\0here';
  const out = new Set<string>();
  let unknown: string | undefined;
  const resources: string[][] = [];
  const add = (loc: string) => {
    const resource = /^([A-Za-z_][\w.]*):(.*)$/.exec(loc);
    if (resource) resources.push(['', 'src/'].map((base) => normalize(`${base}${resource[1]!.replace(/\./g, '/')}/${resource[2]}`) ?? ''));
    const bases = loc.startsWith(HERE) ? [dir] : resource ? ['', 'src'] : ['', dir];
    const rest = loc.startsWith(HERE) ? loc.slice(HERE.length) : resource ? `${resource[1]!.replace(/\./g, '/')}/${resource[2]}` : loc;
    if (!loc.startsWith(HERE) && rest.startsWith('/')) return; // an absolute path: outside the repository
    for (const base of bases) {
      const path = normalize(`${base}/${rest}`);
      if (path !== undefined) out.add(path);
    }
  };
  for (const [name, keys] of iniSections(text)) {
    const vars = new Map([...keys, ['here', HERE]]);
    const value = (key: string): string | undefined => {
      let v = keys.get(key);
      for (let depth = 0; v !== undefined && v.includes('%(') && depth < 10; depth++) v = v.replace(/%\(([^)]*)\)s/g, (m, n: string) => vars.get(n.toLowerCase()) ?? m);
      if (v?.includes('%(')) {
        unknown ??= `${ini} [${name}] ${key} = ${keys.get(key)}: an interpolation ops cannot resolve`;
        return undefined;
      }
      return v?.replace(/%%/g, '%').trim();
    };
    const script = value('script_location');
    if (script) add(`${script.replace(/\/+$/, '')}/versions`);
    const locations = value('version_locations');
    if (!locations) continue;
    const sep = value('path_separator') || value('version_path_separator') || '';
    for (const loc of locations.split(ALEMBIC_SEPARATORS[sep] ?? /[\s,]+/).map((l) => l.trim())) if (loc) add(loc);
  }
  return { dirs: [...out], resources, ...(unknown && { unknown }) };
}

/**
 * The migration pathspecs for a commit: the environment's, else the defaults plus the revision directories of each
 * file that configures alembic (a `script_location` in it, any case: alembic.ini, or another name given with `-c`,
 * .cfg or .conf too; alembicVersionDirs), and beside an alembic.ini without one its versions/ (Flask-Migrate sets
 * script_location in code, to that directory). A directory reached through a symbolic link in the tree is taken at
 * the link's target too (alembic lists it through the link; git stores the link alone). `unknown` says why no
 * change can be ruled out: a location not read, revisions from a package not in the tree (installed with the
 * dependency set: a new version brings new revisions), alembic configured in pyproject.toml ([tool.alembic],
 * alembic 1.16), which ops does not read.
 */
export async function migrationPaths(repo: string, sha: string, env: Environment): Promise<{ paths: string[]; unknown?: string }> {
  const configured = env.config.release.migration_paths;
  if (configured.length) return { paths: configured };
  const entries = await treeEntries(repo, sha);
  const dirsInTree = new Set(entries.filter((e) => e.type === 'tree').map((e) => e.path));
  const links = new Map(entries.filter((e) => e.mode === '120000').map((e) => [e.path, e.object]));
  const found: string[] = [];
  let unknown: string | undefined;
  const configs = entries.filter((e) => e.type === 'blob' && e.size < 1_000_000 && (/\.(ini|cfg|conf)$/.test(e.path) || /(^|\/)pyproject\.toml$/.test(e.path)));
  // One git process for them all: a repository may hold hundreds of .ini/.cfg/.conf files.
  const texts = await blobTexts(repo, configs.map((e) => e.object));
  for (const { path, object } of configs) {
    const text = texts.get(object) ?? '';
    if (path.endsWith('.toml')) {
      if (/^\s*\[tool\.alembic[\].]/m.test(text)) unknown ??= `${path} configures alembic ([tool.alembic]), which ops does not read: set release.migration_paths`;
      continue;
    }
    if (!/^\s*script_location\s*[=:]/im.test(text)) {
      if (/(^|\/)alembic\.ini$/.test(path)) found.push(normalize(`${path.replace(/(^|\/)alembic\.ini$/, '')}/versions`) ?? 'versions');
      continue;
    }
    const dirs = alembicVersionDirs(path, text);
    found.push(...dirs.dirs);
    unknown ??= dirs.unknown;
    for (const candidates of dirs.resources) if (!candidates.some((c) => dirsInTree.has(c) || links.has(c))) unknown ??= `${path} takes revisions from a package not in the repository (${candidates[0]}): installed with the dependency set, its new version may bring new ones`;
  }
  // Through links: a prefix of a directory that is a symbolic link also names the link's target.
  const targets = await blobTexts(repo, [...links.values()]);
  for (const dir of [...found]) {
    const parts = dir.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const object = links.get(parts.slice(0, i).join('/'));
      if (!object) continue;
      const target = (targets.get(object) ?? '').trim();
      if (!target) continue;
      const resolved = target.startsWith('/') ? undefined : normalize(`${parts.slice(0, i - 1).join('/')}/${target}/${parts.slice(i).join('/')}`);
      if (resolved !== undefined) found.push(resolved);
    }
  }
  const paths = [...DEFAULT_MIGRATION_PATHS, ...found.map((d) => (d ? `${d}/**` : '**'))];
  return { paths: [...new Set(paths)], ...(unknown && { unknown }) };
}

/** The files a task runner reads its tasks from (each tool's documentation), looked for when the tool's name is a word of release.migrate. */
const TOOL_FILES: Record<string, string[]> = {
  make: ['GNUmakefile', 'makefile', 'Makefile'],
  gmake: ['GNUmakefile', 'makefile', 'Makefile'],
  npm: ['package.json'],
  npx: ['package.json'],
  yarn: ['package.json'],
  pnpm: ['package.json'],
  just: ['justfile', 'Justfile', '.justfile'],
  task: ['Taskfile.yml', 'Taskfile.yaml', 'taskfile.yml', 'taskfile.yaml', 'Taskfile.dist.yml', 'Taskfile.dist.yaml'],
  pdm: ['pyproject.toml'],
  poetry: ['pyproject.toml'],
  hatch: ['pyproject.toml', 'hatch.toml'],
  rye: ['pyproject.toml'],
  tox: ['tox.ini', 'pyproject.toml', 'setup.cfg'],
  nox: ['noxfile.py'],
  invoke: ['tasks.py'],
  inv: ['tasks.py'],
  knex: ['knexfile.js', 'knexfile.ts', 'knexfile.cjs', 'knexfile.mjs'],
};

/**
 * The paths in the tree `release.migrate` itself may run, from the runner's view of the command (it runs in the
 * release's root; only those that are files in a commit are compared, filesIn). The command is read as shell
 * commands one after another (split on `;`, `&&`, `||`, `|`, newlines), each in the directory the `cd`s before it
 * moved to (`bash -c "cd db && ..."` too; the root's paths are kept as well, as a `cd` in a subshell does not
 * last: over-counting only makes migrations wait): each word that could be a path (a script, manage.py, an
 * `alembic -c` file), with `$PWD/` or `$(pwd)/` before it, the value of a `NAME=value` or `--option=value` word, the
 * module of `python -m` (mod/sub.py, mod/sub/__main__.py, also under src/), for `make`/`gmake` its makefile (`-f
 * FILE`, else GNU make's search order: GNUmakefile, makefile, Makefile) in its `-C DIR` (`-sC DIR`, `-CDIR`,
 * `--directory[=]DIR`), for `npm`/`yarn`/`pnpm` package.json, for `just` its justfile. What those files call in
 * turn is not followed. Pure.
 */
export function migrateCommandFiles(command: string): string[] {
  const files = new Set<string>();
  const clean = (p: string) => normalize(p) ?? '';
  const pathLike = (w: string) => /^[A-Za-z0-9_.\/-]+$/.test(w) && !w.startsWith('-') && !w.startsWith('/') && !w.split('/').includes('..');
  let cwd = '';
  /** `p` from the root and from the directory a `cd` moved to. */
  const both = (p: string) => [clean(p), clean(cwd ? `${cwd}/${p}` : p)];
  for (const part of command.split(/;|&&|\|\||\||\n/)) {
    const words = part
      .split(/[\s()<>&]+/)
      .map((w) => w.replace(/^["'`]+|["'`]+$/g, '').replace(/^(\$PWD|\$\{PWD\}|\$\(pwd\))\//, ''))
      .filter(Boolean);
    words.forEach((w, i) => {
      const word = /^(?:[A-Za-z_]\w*|--[\w-]+)=(.*)$/.exec(w)?.[1] ?? w;
      if (pathLike(word)) for (const f of both(word)) files.add(f);
      if (w === '-m' && /^python[\d.]*$/.test((words[i - 1] ?? '').split('/').pop()!) && /^[\w.]+$/.test(words[i + 1] ?? '')) {
        const mod = words[i + 1]!.replace(/\./g, '/');
        for (const base of ['', 'src/']) for (const f of [`${base}${mod}.py`, `${base}${mod}/__main__.py`]) for (const g of both(f)) files.add(g);
      }
      const tool = w.split('/').pop()!;
      for (const name of TOOL_FILES[tool] ?? []) for (const f of both(name)) files.add(f);
      if (tool === 'make' || tool === 'gmake') {
        let dir = '';
        let file = '';
        const args = words.slice(i + 1);
        args.forEach((a, k) => {
          const next = args[k + 1] ?? '';
          // Short options may be grouped (-sC db, -sCdb): what follows C (or f) in the group, else the next word.
          const short = /^-[A-Za-z]*?([Cf])(.*)$/.exec(a);
          const d = a === '--directory' ? next : /^--directory=(.+)$/.exec(a)?.[1] ?? (short?.[1] === 'C' ? short[2] || next : undefined);
          if (d && pathLike(d)) dir = clean(dir ? `${dir}/${d}` : d);
          const f = a === '--file' || a === '--makefile' ? next : /^--(?:file|makefile)=(.+)$/.exec(a)?.[1] ?? (short?.[1] === 'f' ? short[2] || next : undefined);
          if (f && pathLike(f)) file = f;
        });
        for (const f of file ? [file] : ['GNUmakefile', 'makefile', 'Makefile']) for (const g of both(dir ? `${dir}/${f}` : f)) files.add(g);
      }
    });
    // A word may name the directory a tool runs in (pushd DIR, env -C DIR, npm --prefix DIR, yarn --cwd DIR, uv run
    // --directory DIR, flask db -d DIR): every other word, and every tool's files, are looked for in it too.
    const dirs = words.filter((w) => pathLike(w) && !w.includes('.'));
    for (const d of dirs) {
      for (const w of words) if (w !== d && pathLike(w)) for (const f of both(`${d}/${w}`)) files.add(f);
      for (const name of new Set(Object.values(TOOL_FILES).flat())) for (const f of both(`${d}/${name}`)) files.add(f);
    }
    const cd = Math.max(words.lastIndexOf('cd'), words.lastIndexOf('pushd'));
    if (cd >= 0) cwd = words[cd + 1] && pathLike(words[cd + 1]!) ? clean(cwd ? `${cwd}/${words[cd + 1]}` : words[cd + 1]!) : '';
  }
  files.delete('.');
  files.delete('');
  return [...files].sort();
}

/** Migration files present in `to` and not in `from` (added, or renamed into place). */
async function addedMigrations(repo: string, from: string, to: string, paths: string[]): Promise<string[]> {
  const out = await git(repo, ['diff', '--name-only', '--no-renames', '--diff-filter=A', from, to, '--', ...paths.map((p) => `:(glob)${p}`)]);
  return out
    .split('\n')
    .filter((f) => f && !NOT_MIGRATIONS.test(f))
    .sort();
}

/**
 * What deploying `target` changes on a host serving `live` ("" when nothing is live). Reads only the runner's
 * repository; throws OpsError when git fails on it.
 */
export async function describeChange(repo: string, env: Environment, live: string, target: string): Promise<Change> {
  const change: Change = { live, target, relation: 'first', commits: [], added: 0, removedCommits: [], removed: 0, migrations: [], migrationsLiveOnly: [], dependencies: [] };
  if (!live) return change;
  if (live === target) return { ...change, relation: 'same', migrationsChanged: false };
  const g = new Git(repo);
  if (!/^[0-9a-f]{40}$/.test(live) || !(await g.commit(live))) {
    // A shallow clone lacks older commits by design: `fetch --all` would not bring them, deepening does.
    const shallow = (await g.run(['rev-parse', '--is-shallow-repository'])).stdout.trim() === 'true';
    return { ...change, relation: 'unknown', ...(shallow && { shallow }) };
  }
  // Independent reads, each a git process of its own: at once (this is on every deploy's path, before any build).
  const [ahead, behind] = await Promise.all([g.isAncestor(live, target), g.isAncestor(target, live)]);
  // Neither reaches the other in this clone: diverged, unless a walk stopped at the clone's depth (both commits
  // fetched without the history between them): then which contains which is not known here.
  if (!ahead && !behind && (await historyCut(repo, [live, target]))) return { ...change, relation: 'unknown', shallow: true };
  change.relation = ahead ? 'ahead' : behind ? 'behind' : 'diverged';
  // The files of the live commit: a partial clone offline may lack them (source.ts fetchMissing). What a deploy
  // changes is told as far as it can be; the deploy itself needs only the target's. Read beside the commits (it fills
  // other fields of `change`); its failure is looked at once both ended.
  const files = filesCompared(repo, env, live, target, change).then(
    () => undefined,
    (e: unknown) => ({ e }),
  );
  const [add, rm] = await Promise.all([commitsBetween(repo, live, target), commitsBetween(repo, target, live)]).finally(() => files);
  Object.assign(change, { commits: add.commits, added: add.count, removedCommits: rm.commits, removed: rm.count });
  const failed = await files;
  if (failed) {
    if (!(failed.e instanceof OpsError)) throw failed.e;
    return { ...change, migrations: [], migrationsLiveOnly: [], dependencies: [], unread: messageLine(failed.e) };
  }
  return change;
}

/** Of `paths`, those that are files (not directories) in one of the commits `shas`. */
async function filesIn(repo: string, shas: string[], paths: string[]): Promise<string[]> {
  if (!paths.length) return [];
  const blobs = new Set<string>();
  for (const sha of shas) for (const e of await treeEntries(repo, sha)) if (e.type === 'blob') blobs.add(e.path);
  return paths.filter((p) => blobs.has(p));
}

/**
 * `files` and, for the makefiles among them, the files their `include` / `-include` / `sinclude` lines name (GNU
 * make, "Including Other Makefiles": relative to where make runs, so taken from the root and from the makefile's
 * directory; followed three levels deep) that are files in one of the commits `shas`.
 */
async function withIncludes(repo: string, shas: string[], files: string[]): Promise<string[]> {
  const out = new Set(files);
  let level = files.filter((f) => /(^|\/)(GNUmakefile|makefile|Makefile)$|\.mk$/.test(f));
  for (let depth = 0; depth < 3 && level.length; depth++) {
    const named: string[] = [];
    const texts = await blobTexts(repo, level.flatMap((makefile) => shas.map((sha) => `${sha}:${makefile}`)));
    for (const makefile of level) {
      for (const sha of shas) {
        const text = texts.get(`${sha}:${makefile}`) ?? '';
        const dir = makefile.includes('/') ? makefile.slice(0, makefile.lastIndexOf('/')) : '';
        for (const m of text.matchAll(/^[ \t]*(?:-|s)?include[ \t]+(.+)$/gm)) {
          for (const w of m[1]!.split(/\s+/).filter((x) => x && !x.includes('$'))) named.push(...[w, `${dir}/${w}`].map((p) => normalize(p) ?? ''));
        }
      }
    }
    level = (await filesIn(repo, shas, [...new Set(named)])).filter((f) => !out.has(f));
    for (const f of level) out.add(f);
  }
  return [...out];
}

/** Migrations added or live only, and dependency sets made again, between two commits' files (describeChange). */
async function filesCompared(repo: string, env: Environment, live: string, target: string, change: Change): Promise<void> {
  const [ofTarget, ofLive] = [await migrationPaths(repo, target, env), await migrationPaths(repo, live, env)];
  if (!env.config.release.migrate) change.migrateUnset = true;
  const paths = [...new Set([...ofTarget.paths, ...ofLive.paths])];
  change.migrations = await addedMigrations(repo, live, target, paths);
  change.migrationsLiveOnly = await addedMigrations(repo, target, live, paths);
  // What runs the migrations counts too: an alembic.ini, the env.py beside an alembic versions/ directory, the
  // files release.migrate names (its script, its makefile).
  const around = [
    ...[...paths.map((p) => p.replace(/\/versions\/\*\*$/, '/**')), '**/alembic.ini'].map((p) => `:(glob)${p}`),
    ...(await withIncludes(repo, [live, target], await filesIn(repo, [live, target], migrateCommandFiles(env.config.release.migrate ?? '')))).map((f) => `:(literal)${f}`),
  ];
  const differing = await git(repo, ['diff', '--name-only', '--no-renames', live, target, '--', ...around]);
  // A target with no migration where the paths look keeps them elsewhere (Flyway's db/migration, TypeORM's
  // src/migration, drizzle/...): whether they changed is not known, so taken as changed.
  const found = await git(repo, ['diff', '--name-only', '--no-renames', '--diff-filter=A', EMPTY_TREE, target, '--', ...paths.map((p) => `:(glob)${p}`)]);
  // A location ops could not read (ofTarget.unknown): no change can be ruled out.
  change.migrationsChanged = differing.trim() !== '' || !found.split('\n').some((f) => f && !NOT_MIGRATIONS.test(f)) || Boolean(ofTarget.unknown ?? ofLive.unknown);
  const [before, after] = [await dependencyInputs(repo, live, env), await dependencyInputs(repo, target, env)];
  const { python_requirements: req, node_dir: nodeDir } = env.config.release;
  const entry = (name: 'python' | 'node') => ({
    name,
    files: after[name].files.join(', '),
    changed: Boolean(after[name].perRelease) || before[name].hash !== after[name].hash,
    ...(after[name].perRelease && { perRelease: after[name].perRelease }),
  });
  change.dependencies = [...(req ? [entry('python')] : []), ...(nodeDir ? [entry('node')] : [])];
}

/**
 * Whether release.migrate has nothing new to apply on any host: every host's live commit was read and compared,
 * and no file under the migration paths (nor an alembic.ini) differs from the target's. Then migrations may run
 * beside the build (core/ops/deploy-host.ts buildOn): against a database the live release migrated they change
 * nothing, so a build that fails meanwhile leaves the schema the live release has. False when a host has nothing
 * live, a live commit the runner lacks, files it could not read, or could not be read itself.
 */
export function migrationsUnchanged(changes: HostsChange[]): boolean {
  return changes.length > 0 && changes.every((g) => g.change?.migrationsChanged === false);
}

/** A host's live commit, or why it is not known. */
export interface HostLive {
  host: string;
  /** The live sha, "" when nothing is live. */
  sha: string;
  release: string;
  /** Set when the host could not be read (the plan still prints): one line; `hint`, how to fix it. */
  error?: string;
  hint?: string;
  /** Set when the host was never provisioned for the environment (its state read found no marker): what is said of it instead of a change (unprovisionedNote), as a deploy refuses there. */
  unprovisioned?: string;
  /** What builds run on there (OS release, architecture, runtimes), read for environments of several hosts. */
  platform?: string;
  /** The live release was not deployed with this deploy's .env and settings (deployFingerprint): deployed again. */
  changed?: boolean;
  /** Of `changed`: the host has no record of what the live release was deployed with that this ops can compare (an older ops's fingerprint alone, none at all, or records damaged). */
  unrecorded?: boolean;
  /** Of `changed`: a file of the live release's commit changed or gone on the host since it went live (the first found, relative to the release). */
  changedFile?: string;
  /** The complete dependency sets on the host (names under shared/deps), when read. */
  depsHas?: string[];
}

export interface HostsChange {
  hosts: string[];
  live: HostLive;
  change?: Change;
}

/**
 * Why the live release of the commit deployed is deployed again (HostLive.changed), in words: deployed with another
 * .env or settings, or with none on record (deployed before records were kept; the records missing or damaged).
 */
export function liveChangedWhy(live: Pick<HostLive, 'unrecorded' | 'changedFile'>): string {
  if (live.unrecorded) return "with no record of what it was deployed with that this ops can compare (deployed by an older ops, whose record is the fingerprint of its own day's settings alone; before such records were kept or while releases shared one .env; or its record missing or damaged)";
  if (live.changedFile !== undefined) return `with its files changed on the host since it went live (e.g. ${live.changedFile})`;
  return "with another .env or other settings than this deploy's";
}

/**
 * Group hosts serving the same commit and describe the change for each group. A set shared between releases that
 * the commits' files leave unchanged is said to be reused only where the host has it (HostLive.depsHas, when read):
 * the settings in its name (the runtime's version, release.python_installer) may have changed since the live
 * release's set was made, and then a new one is made (`missing`), a redeploy of the live commit too.
 */
export async function describeChanges(repo: string, env: Environment, lives: HostLive[], target: string): Promise<HostsChange[]> {
  const { python_requirements: req, node_dir: nodeDir } = env.config.release;
  // The target's files unread: its change says so (describeChange); nothing is said of the sets here.
  const inputs = lives.some((l) => l.sha && l.depsHas) ? await dependencyInputs(repo, target, env).catch(() => undefined) : undefined;
  const sets = inputs ? ([...(req ? ['python'] : []), ...(nodeDir ? ['node'] : [])] as ('python' | 'node')[]).filter((n) => !inputs[n].perRelease) : [];
  const lacks = (l: HostLive) => (l.sha && l.depsHas ? sets.filter((n) => !l.depsHas!.includes(`${n === 'python' ? 'venv' : 'node'}-${inputs![n].hash}`)) : []);
  const groups = new Map<string, HostsChange & { lacks: ('python' | 'node')[] }>();
  for (const l of lives) {
    const key = l.error ? `error ${l.host}` : l.unprovisioned ? `unprovisioned ${l.host}` : `${l.sha} ${l.release} ${l.changed ? 'changed' : ''} ${l.unrecorded ? 'unrecorded' : ''} ${l.changedFile ?? ''} ${lacks(l).join(',')}`;
    const g = groups.get(key);
    if (g) g.hosts.push(l.host);
    else groups.set(key, { hosts: [l.host], live: l, lacks: lacks(l) });
  }
  for (const g of groups.values()) {
    if (g.live.error || g.live.unprovisioned) continue;
    const change = await describeChange(repo, env, g.live.sha, target);
    // (A live commit deployed again, or another; not a no-op, whose read stops before the sets.)
    if ((change.relation === 'same' && g.live.changed) || change.relation === 'ahead' || change.relation === 'behind' || change.relation === 'diverged') {
      for (const name of g.lacks) {
        const d = change.dependencies.find((x) => x.name === name);
        if (d && !d.changed) Object.assign(d, { changed: true, missing: true as const });
        else if (!d) change.dependencies.push({ name, files: inputs![name].files.join(', '), changed: true, missing: true });
      }
      change.dependencies.sort((a, b) => (a.name === b.name ? 0 : a.name === 'python' ? -1 : 1));
    }
    g.change = change;
  }
  return [...groups.values()].map(({ lacks: _lacks, ...g }) => g);
}

/** The dependency sets of a change in words (formatChanges), '' when it has none. */
function dependenciesLine(change: Change): string {
  const deps = change.dependencies.map(
    (d) =>
      `${d.name} ${
        d.perRelease
          ? `made for this release (${d.perRelease})`
          : d.missing
            ? `NEW SET: its files are unchanged, but the host has no set for these settings (the runtime's version or release.python_installer changed since the live release's was made): a new set is installed`
            : d.changed
              ? `CHANGED (${d.files}): a new set is installed`
              : 'unchanged (reused)'
      }`,
  );
  return deps.length ? `  dependencies: ${deps.join('; ')}` : '';
}

const short = (sha: string) => sha.slice(0, 12);

function commitLines(commits: Commit[], count: number, indent: string): string[] {
  const lines = commits.map((c) => `${indent}${c.sha.slice(0, 10)}  ${c.subject}  (${c.author})`);
  if (count > commits.length) lines.push(`${indent}... and ${count - commits.length} more`);
  return lines;
}

/**
 * The migrations a change adds, in words, as `ops diff` and the deploy's plan both print them: with release.migrate
 * "", said to be run by no deploy (ops runs no migration of its own).
 */
export function migrationsLine(change: Pick<Change, 'migrations' | 'migrateUnset'>): string {
  if (!change.migrations.length) return 'migrations added: none';
  return `migrations added: ${change.migrations.join(', ')}${change.migrateUnset ? ' (release.migrate is "": a deploy runs none)' : ''}`;
}

/** The change as plain text lines, per group of hosts (for the terminal, the dry-run plan and `ops diff`). */
export function formatChanges(groups: HostsChange[], target: string): string[] {
  const out: string[] = [];
  for (const { hosts, live, change } of groups) {
    const who = hosts.join(', ');
    if (live.unprovisioned) {
      out.push(`${live.unprovisioned}: a deploy refuses there until it is`);
      continue;
    }
    if (live.error !== undefined) {
      out.push(...unreadLine(who, live).split('\n'));
      continue;
    }
    if (!change) {
      out.push(`${who}: live commit unknown (not read)`);
      continue;
    }
    const head = `${who}: live ${live.sha ? `${short(live.sha)}${live.release ? ` (${live.release})` : ''}` : '(nothing)'} → target ${short(target)}`;
    switch (change.relation) {
      case 'first':
        out.push(`${head}: first deploy, nothing live yet`);
        continue;
      case 'same':
        out.push(live.changed ? `${head}: live, ${liveChangedWhy(live)}: deployed again (a new release of the same commit)` : `${head}: already live, nothing changes`);
        if (live.changed && dependenciesLine(change)) out.push(dependenciesLine(change));
        continue;
      case 'unknown':
        out.push(
          change.shallow
            ? `${head}: the live commit is not in this shallow clone's history (not fetched, or fetched without the commits between it and the target); check out with fetch-depth: 0 (git fetch --unshallow) to see the change`
            : `${head}: the live commit is not in this repository; fetch (git fetch --all --tags) to see the change`,
        );
        continue;
      case 'ahead':
        out.push(`${head}: ${change.added} new commit${change.added === 1 ? '' : 's'}`);
        break;
      case 'behind':
        out.push(`${head}`, `  !!! ROLLBACK IN DISGUISE: the target is BEHIND the live commit: ${change.removed} live commit${change.removed === 1 ? '' : 's'} would be taken away !!!`);
        break;
      case 'diverged':
        out.push(`${head}`, `  !!! the target does not contain the live commit: ${change.removed} live commit${change.removed === 1 ? '' : 's'} would be taken away, ${change.added} added !!!`);
        break;
    }
    if (change.added) out.push('  commits added:', ...commitLines(change.commits, change.added, '    '));
    if (change.removed) out.push('  commits taken away:', ...commitLines(change.removedCommits, change.removed, '    '));
    if (change.unread) {
      out.push(`  migrations and dependency sets not compared: ${change.unread}`);
      continue;
    }
    out.push(`  ${migrationsLine(change)}`);
    if (change.migrationsLiveOnly.length) {
      out.push(`  !!! migrations live now that the target lacks (a deploy does not undo them; the target must work with them): ${change.migrationsLiveOnly.join(', ')}`);
    }
    if (dependenciesLine(change)) out.push(dependenciesLine(change));
  }
  return out;
}
