// The Node.js an environment pins against the one the commit's npm packages say they run on (`engines.node` of
// each package, as npm's lockfile records it: https://docs.npmjs.com/cli/configuring-npm/package-json#engines).
// npm ci installs a package whose range excludes the running Node with a warning only (EBADENGINE; a refusal under
// engine-strict), and the failure comes later, on the host, in the package's own words: create-vite's React
// template (vite 8, rolldown) on Node.js 18 fails its build with "SyntaxError: The requested module 'node:util' does
// not provide an export named 'styleText'", nothing naming a version. Ranges are read by npm's own semver.
import semver from 'semver';

/** One package of the lockfile whose `engines.node` no version the pin allows satisfies. */
export interface EngineMisfit {
  /** The package's name ("vite"; the project's own name, or "the project", for the lockfile's root entry). */
  name: string;
  /** Its version as the lockfile records it ("" for the root entry without one). */
  version: string;
  /** Its `engines.node` range as written ("^20.19.0 || >=22.12.0"). */
  range: string;
}

/** What nodeEngineMisfits found: the misfits, and the lowest Node.js major every range of the lockfile takes. */
export interface EngineCheck {
  misfits: EngineMisfit[];
  /** The lowest major (18, 20, 22...) some version of which satisfies every package's range, if one does. */
  fits?: number;
}

/** The versions a pin may run: exactly "x.y.z" when written so (nvm, npm strategies), else any "x.*" or "x.y.*" (Debian's package of that major). */
function pinRange(pinned: string): string {
  return /^\d+\.\d+\.\d+$/.test(pinned) ? pinned : `${pinned}.x`;
}

/**
 * The packages of npm lockfile text `lock` (package-lock.json or npm-shrinkwrap.json, lockfileVersion 2 or 3: its
 * `packages` map, the root entry "" included) whose `engines.node` excludes every version `pinned` (runtimes.node.version:
 * "18", "22.12.0") may be. Skipped: optional packages (npm skips one that does not fit the host: another platform's
 * binary), a range semver cannot read (npm ignores it too), links (a workspace's own package.json counts as its
 * entry's). A lockfile that is not JSON, or of version 1 (no `packages`), gives none: npm ci says what is wrong with it.
 * Pure.
 */
export function nodeEngineMisfits(lock: string, pinned: string): EngineCheck {
  let packages: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(lock) as { packages?: unknown };
    if (parsed?.packages && typeof parsed.packages === 'object') packages = parsed.packages as Record<string, unknown>;
  } catch {
    return { misfits: [] };
  }
  const allowed = pinRange(pinned);
  const misfits: EngineMisfit[] = [];
  const ranges: string[] = [];
  for (const [path, entry] of Object.entries(packages)) {
    if (!entry || typeof entry !== 'object') continue;
    const e = entry as { name?: unknown; version?: unknown; optional?: unknown; link?: unknown; engines?: unknown };
    const range = e.engines && typeof e.engines === 'object' ? (e.engines as { node?: unknown }).node : undefined;
    if (e.optional === true || e.link === true || typeof range !== 'string' || !semver.validRange(range)) continue;
    ranges.push(range);
    if (semver.intersects(range, allowed)) continue;
    const name = path ? path.replace(/^.*node_modules\//, '') : typeof e.name === 'string' ? e.name : 'the project';
    misfits.push({ name, version: typeof e.version === 'string' ? e.version : '', range });
  }
  const fits = misfits.length ? [18, 20, 22, 24, 26, 28].find((m) => ranges.every((r) => semver.intersects(r, `${m}.x`))) : undefined;
  return { misfits, ...(fits !== undefined && { fits }) };
}
