// A uv project's lockfile (uv.lock, https://docs.astral.sh/uv/concepts/projects/layout/#the-lockfile) read on the
// runner, where uv may not be: which packages it installs from where (for the set's hash and how it is installed),
// and whether it is in step with its pyproject.toml, as `uv sync --locked` would judge before installing. Not a
// TOML parser: the few keys uv writes, in the layout uv writes them (one `[[package]]` table per package, inline
// tables for sources and requirements); what it cannot read for sure it does not judge.

/** What a uv.lock installs, as core/dependency-inputs.ts and preflight need it. */
export interface UvLockReading {
  /** Every package besides the project is from a registry, so `uv export` gives each a `--hash` (pip's hash-checking mode). */
  hashed: boolean;
  /** Packages the lock takes from a directory of the repository (workspace members, path dependencies): "name (path)". */
  local: string[];
}

/** The lockfile name uv reads and writes beside a project's pyproject.toml. */
export const UV_LOCK = 'uv.lock';

/** The `[[package]]` tables of a uv.lock, each as its text up to the next one. */
function packageTables(lock: string): string[] {
  return lock.replace(/\r\n?/g, '\n').split(/^\[\[package\]\]\s*$/m).slice(1);
}

/** A `key = "value"` of one TOML line or inline table (uv writes basic strings: no escapes in names, paths, specifiers). */
function stringKey(text: string, key: string): string | undefined {
  return new RegExp(`(?:^|[{,\\s])${key}\\s*=\\s*"([^"]*)"`, 'm').exec(text)?.[1];
}

/** A package table's `source = { kind = "..." }` as [kind, value], the project itself being `editable`/`virtual` ".". */
function sourceOf(table: string): [string, string] | undefined {
  const m = /^source\s*=\s*\{\s*([a-z-]+)\s*=\s*"([^"]*)"/m.exec(table);
  return m ? [m[1]!, m[2]!] : undefined;
}

const isRoot = (table: string) => {
  const s = sourceOf(table);
  return !!s && (s[0] === 'editable' || s[0] === 'virtual') && s[1] === '.';
};

/**
 * What the uv.lock `lock` installs besides the project itself (its `[[package]]` whose source is `editable` or
 * `virtual` "."): `hashed` when every other package has a `registry` source (uv export then writes a `--hash` for each
 * one; a git, URL or path source may have none, and `--require-hashes` would refuse it), `local` the packages taken
 * from a directory (`editable`, `path`, `directory`, `virtual`: a workspace's members, path dependencies). Pure.
 */
export function readUvLock(lock: string): UvLockReading {
  const local: string[] = [];
  let hashed = true;
  for (const table of packageTables(lock)) {
    if (isRoot(table)) continue;
    const source = sourceOf(table);
    if (source?.[0] !== 'registry') hashed = false;
    if (source && ['editable', 'path', 'directory', 'virtual'].includes(source[0])) local.push(`${stringKey(table, 'name') ?? '?'} (${source[1]})`);
  }
  return { hashed, local };
}

/** The quoted strings of a TOML array starting at `from` (just after its "["), up to its closing "]". */
function arrayStrings(text: string, from: number): string[] {
  const out: string[] = [];
  for (let i = from; i < text.length; i++) {
    const c = text[i]!;
    if (c === ']') return out;
    if (c === '#') i = text.indexOf('\n', i) < 0 ? text.length : text.indexOf('\n', i);
    else if (c === '"' || c === "'") {
      const triple = text.startsWith(c.repeat(3), i);
      const quote = triple ? c.repeat(3) : c;
      let j = i + quote.length;
      let s = '';
      while (j < text.length && !text.startsWith(quote, j)) {
        if (c === '"' && text[j] === '\\') {
          s += text[j + 1] ?? '';
          j += 2;
        } else s += text[j++];
      }
      out.push(s);
      i = j + quote.length - 1;
    }
  }
  return out;
}

/** The text of table `[name]` of a TOML file (up to the next table header), or undefined. */
function table(text: string, name: string): string | undefined {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  const start = lines.findIndex((l) => new RegExp(`^\\s*\\[\\s*${name.replace(/\./g, '\\s*\\.\\s*')}\\s*\\]\\s*(#.*)?$`).test(l));
  if (start < 0) return undefined;
  const end = lines.findIndex((l, i) => i > start && /^\s*\[/.test(l));
  return lines.slice(start + 1, end < 0 ? undefined : end).join('\n');
}

/** A package name as PEP 503 normalizes it (runs of -_. to -, lower case): how uv writes it in the lock. */
const normName = (name: string) => name.toLowerCase().replace(/[-_.]+/g, '-');

/** One requirement as compared: name with sorted extras, and its version specifiers (spaces dropped, sorted), or undefined for a URL. */
interface Req {
  key: string;
  specifier?: string;
  /** The specifier as written, spaces dropped (for the message). */
  shown?: string;
}

/**
 * A version of a specifier as PEP 440 compares it (https://packaging.python.org/en/latest/specifications/version-specifiers/#normalization):
 * lower case, no leading "v", the release's numbers without leading zeros and without trailing ".0" (>=24 is >=24.0,
 * as uv judges them; a wildcard's, ==24.*, kept as written).
 */
function pep440(version: string): string {
  const v = version.toLowerCase().replace(/^v/, '');
  const m = /^(\d+(?:\.\d+)*)(.*)$/.exec(v);
  if (!m || m[2]!.startsWith('.*')) return v;
  return `${m[1]!.split('.').map((n) => String(Number(n))).join('.').replace(/(\.0)+$/, '')}${m[2]}`;
}

/** Version specifiers (">= 3.0 , <4") as compared: spaces dropped, each version as PEP 440 compares it, sorted. */
const specifiers = (s: string) =>
  s
    .replace(/\s+/g, '')
    .split(',')
    .filter(Boolean)
    .map((one) => {
      const m = /^(===|~=|==|!=|<=|>=|<|>)(.*)$/.exec(one);
      return m && m[1] !== '===' ? `${m[1]}${pep440(m[2]!)}` : one;
    })
    .sort()
    .join(',');

/** A PEP 508 requirement string (`Name[extra] >=1, <2 ; marker`, `name @ url`) as a Req, or undefined when not one. */
function pep508(text: string): Req | undefined {
  const m = /^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?\s*(@)?\s*\(?([^;@)]*)\)?/.exec(text);
  if (!m) return undefined;
  const extras = (m[2] ?? '').split(',').map((e) => normName(e.trim())).filter(Boolean).sort();
  return { key: `${normName(m[1]!)}${extras.length ? `[${extras.join(',')}]` : ''}`, ...(m[3] ? {} : { specifier: specifiers(m[4] ?? ''), shown: (m[4] ?? '').replace(/\s+/g, '') }) };
}

/**
 * Whether the uv.lock `lock` is out of step with its project's `pyproject` (both file texts), in the ways `uv sync
 * --locked` refuses for sure: the project's `[project] dependencies` (name, extras, version specifiers) are not the
 * ones its lock entry records (`[package.metadata] requires-dist`, less the optional dependencies' `extra ==`
 * entries), or its `requires-python` is not the lock's. Returns what differs ("requests is in pyproject.toml's
 * dependencies, not in the lock"), or undefined when in step or not judged (dynamic dependencies, no `[project]`
 * table, a lock without the project's entry). Markers and sources (`[tool.uv.sources]`) are not compared. Pure.
 */
export function uvLockStale(pyproject: string, lock: string): string | undefined {
  const project = table(pyproject, 'project');
  if (project === undefined || /^\s*dynamic\s*=.*["']dependencies["']/m.test(project)) return undefined;
  const root = packageTables(lock).find(isRoot);
  if (!root) return undefined;
  const differences: string[] = [];
  const lockPython = stringKey(lock.split(/^\[\[package\]\]/m)[0] ?? '', 'requires-python');
  const projectPython = /^\s*requires-python\s*=\s*["']([^"']*)["']/m.exec(project)?.[1];
  if (lockPython !== undefined && projectPython !== undefined && specifiers(lockPython) !== specifiers(projectPython))
    differences.push(`requires-python is "${projectPython}" in pyproject.toml, "${lockPython}" in the lock`);
  const deps = /^\s*dependencies\s*=\s*\[/m.exec(project);
  const wanted = deps ? arrayStrings(project, deps.index + deps[0].length).map(pep508) : [];
  const metadata = root.split(/^\[package\.metadata\]\s*$/m)[1]?.split(/^\[/m)[0] ?? '';
  const dist = /^requires-dist\s*=\s*\[/m.exec(metadata);
  if (!dist || wanted.includes(undefined)) return differences.length ? differences.join('; ') : undefined;
  const locked: Req[] = [];
  for (const inline of metadata.slice(dist.index).match(/\{[^{}]*\}/g) ?? []) {
    const name = stringKey(inline, 'name');
    if (!name || /extra\s*==/.test(stringKey(inline, 'marker') ?? '')) continue;
    const extras = /extras\s*=\s*\[([^\]]*)\]/.exec(inline)?.[1]?.match(/"[^"]*"/g)?.map((e) => normName(e.slice(1, -1))).sort() ?? [];
    const specifier = stringKey(inline, 'specifier');
    const direct = /(?:^|[{,\s])(url|git|path|directory|editable)\s*=/.test(inline);
    locked.push({ key: `${normName(name)}${extras.length ? `[${extras.join(',')}]` : ''}`, ...(direct ? {} : { specifier: specifiers(specifier ?? ''), shown: specifier ?? '' }) });
  }
  const keys = (rs: Req[]) => new Set(rs.map((r) => r.key));
  const inLock = keys(locked);
  const inProject = keys(wanted as Req[]);
  for (const k of inProject) if (!inLock.has(k)) differences.push(`${k} is in pyproject.toml's dependencies, not in the lock`);
  for (const k of inLock) if (!inProject.has(k)) differences.push(`${k} is in the lock, no longer in pyproject.toml's dependencies`);
  for (const k of inProject) {
    if (!inLock.has(k)) continue;
    const of = (rs: Req[]) => rs.filter((r) => r.key === k);
    if (of(wanted as Req[]).some((r) => r.specifier === undefined) || of(locked).some((r) => r.specifier === undefined)) continue;
    const compared = (rs: Req[]) => rs.map((r) => r.specifier).sort().join(' ');
    const shown = (rs: Req[]) => rs.map((r) => r.shown || 'any version').join('", "');
    if (compared(of(wanted as Req[])) !== compared(of(locked))) differences.push(`${k} is "${shown(of(wanted as Req[]))}" in pyproject.toml, "${shown(of(locked))}" in the lock`);
  }
  return differences.length ? differences.join('; ') : undefined;
}
