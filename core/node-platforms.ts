// The platform packages of npm's lockfile against the hosts' platform (Linux). A package with a native binary
// (rollup, esbuild, sharp, lightningcss, @swc/core, rolldown...) declares one optional dependency per platform, each
// with `os`/`cpu` (and `libc`) fields; npm records them all in the lockfile and installs the one the machine takes.
// A lockfile made on macOS or Windows from an existing node_modules can lack the others (npm/cli#4828), and npm ci
// installs only what the lockfile lists: it succeeds on Linux without the binary, and the build or the app fails on
// the host ("Cannot find module @rollup/rollup-linux-x64-gnu"). Read here from the lockfile alone, before any host.
// The fields and how npm matches them: https://docs.npmjs.com/cli/configuring-npm/package-json#os (a "!name" entry
// excludes a platform; npm-install-checks' checkPlatform).

/** A package whose platform packages in the lockfile hold none a Linux host installs, while some it declares are absent. */
export interface PlatformGap {
  /** The package ("rollup", "@swc/core"; "the project" for the lockfile's root entry). */
  name: string;
  /** Its version as the lockfile records it ("" when it has none). */
  version: string;
  /** The platforms the lockfile holds packages for ("darwin-arm64"), as npm's os-cpu fields say. */
  present: string[];
  /** The optional dependencies naming linux it declares that the lockfile lacks, x64's and arm64's first ("@rollup/rollup-linux-x64-gnu"). */
  absent: string[];
}

/** The Linux CPUs hosts run (Node's process.arch names): a platform package for one of them is taken as the host's. */
const LINUX_CPUS = ['x64', 'arm64'];

interface Entry {
  name?: unknown;
  version?: unknown;
  link?: unknown;
  optionalDependencies?: unknown;
  os?: unknown;
  cpu?: unknown;
  libc?: unknown;
}

/** Whether npm's platform list `list` (os, cpu or libc field; "!x" excludes x) takes `value`; no list takes any. */
function takes(list: unknown, value: string): boolean {
  if (!Array.isArray(list)) return true;
  const words = list.filter((w): w is string => typeof w === 'string');
  if (words.includes(`!${value}`)) return false;
  const wanted = words.filter((w) => !w.startsWith('!'));
  return !wanted.length || wanted.includes(value) || wanted.includes('any');
}

/** Whether a package of entry `e` is installed on a glibc Linux host of one of LINUX_CPUS (Debian's libc is glibc). */
function onLinux(e: Entry): boolean {
  return takes(e.os, 'linux') && LINUX_CPUS.some((cpu) => takes(e.cpu, cpu)) && takes(e.libc, 'glibc');
}

/** Order of absent names: the common hosts' first (linux-x64, then linux-arm64; gnu before musl), else as declared. */
const rank = (name: string) => (/linux-x64(?!.*musl)/.test(name) ? 0 : /linux-arm64(?!.*musl)/.test(name) ? 1 : 2);

/** "darwin-arm64" for an entry's os and cpu fields (their first words), "any" when it has neither. */
function platformOf(e: Entry): string {
  const first = (list: unknown) => (Array.isArray(list) && typeof list[0] === 'string' ? list[0] : undefined);
  return [first(e.os), first(e.cpu)].filter(Boolean).join('-') || 'any';
}

/**
 * The lockfile path npm resolves dependency `name` of the package at lockfile path `at` to ("node_modules/a" for
 * "a" from "node_modules/b" when b has no nested copy), by node's lookup up the directories; undefined when none.
 */
function resolve(packages: Record<string, unknown>, at: string, name: string): string | undefined {
  let base = at;
  for (;;) {
    const path = base ? `${base}/node_modules/${name}` : `node_modules/${name}`;
    if (path in packages) return path;
    if (!base) return undefined;
    const up = base.lastIndexOf('/node_modules/');
    base = up >= 0 ? base.slice(0, up) : '';
  }
}

/**
 * The packages of npm lockfile text `lock` (package-lock.json or npm-shrinkwrap.json, lockfileVersion 2 or 3: its
 * `packages` map) that declare platform packages (optional dependencies with an `os` or `cpu` field) of which the
 * lockfile holds at least one and none a glibc Linux host on x64 or arm64 installs, while some it declares whose
 * name says linux are absent: npm ci on the host installs the package without its binary. A package whose optional
 * dependencies are all there (npm skips those of other platforms) or hold one for Linux (the host's CPU is not known
 * here) is fine; one with none recorded at all (fsevents absent on Linux) is not judged. A lockfile that is not
 * JSON, or of version 1 (no `packages`, no platform fields), gives none: npm ci says what is wrong with it. Pure.
 */
export function nodePlatformGaps(lock: string): PlatformGap[] {
  let packages: Record<string, unknown>;
  try {
    const parsed = JSON.parse(lock) as { packages?: unknown };
    if (!parsed?.packages || typeof parsed.packages !== 'object') return [];
    packages = parsed.packages as Record<string, unknown>;
  } catch {
    return [];
  }
  const gaps: PlatformGap[] = [];
  for (const [at, value] of Object.entries(packages)) {
    const e = value as Entry | null;
    if (!e || typeof e !== 'object' || e.link === true || !e.optionalDependencies || typeof e.optionalDependencies !== 'object') continue;
    const names = Object.keys(e.optionalDependencies);
    const found = names.map((n) => resolve(packages, at, n)).filter((p): p is string => p !== undefined).map((p) => packages[p] as Entry);
    const platformed = found.filter((d) => d && typeof d === 'object' && (Array.isArray(d.os) || Array.isArray(d.cpu)));
    // Only absent names that say linux count (every platform package family names its Linux ones so): an absent
    // optional dependency of another kind is not known to be needed on the host.
    const absent = names.filter((n) => /linux/.test(n) && resolve(packages, at, n) === undefined);
    if (!platformed.length || !absent.length || platformed.some(onLinux)) continue;
    const name = at ? at.replace(/^.*node_modules\//, '') : typeof e.name === 'string' ? e.name : 'the project';
    gaps.push({
      name,
      version: typeof e.version === 'string' ? e.version : '',
      present: [...new Set(platformed.map(platformOf))],
      absent: absent.sort((a, b) => rank(a) - rank(b)),
    });
  }
  return gaps;
}
