// package.json against npm's lockfile as npm ci checks them: npm ci installs only when the two are in sync, else it
// refuses (EUSAGE: "`npm ci` can only install packages when your package.json and package-lock.json or
// npm-shrinkwrap.json are in sync", then "Missing: x@1.0.0 from lock file" or "Invalid: lock file's x@1.0.0 does
// not satisfy x@^2.0.0", then its whole usage text, which buries those lines in a deploy's tail of the output):
// https://docs.npmjs.com/cli/commands/npm-ci. Read here from the two files, before any host, for what is sure.
import semver from 'semver';

/** The declarations of package.json npm ci installs from the lockfile's top level (peers are not judged). */
const JUDGED = ['dependencies', 'devDependencies', 'optionalDependencies'] as const;

/**
 * The lines, in npm ci's words, saying where package.json (`pkgText`) and the lockfile (`lockText`, lockfileVersion 2
 * or 3: its `packages` map) are out of sync: a dependency or devDependency package.json declares that the lockfile
 * does not hold at all (`Missing: name@spec from lock file`), or holds at a version its semver range excludes
 * (`Invalid: lock file's name@1.0.0 does not satisfy name@spec`; optional dependencies too). Judged only what is
 * sure: a spec that is a semver range (not a tag, alias, git, URL or file: spec), a package that is not a link, no
 * `overrides` of its name; a project with workspaces, a lockfile of version 1, text that is not JSON give none
 * (npm ci says what it finds). Pure.
 */
export function lockOutOfSync(pkgText: string, lockText: string): string[] {
  let pkg: Record<string, unknown>;
  let packages: Record<string, unknown>;
  try {
    pkg = JSON.parse(pkgText) as Record<string, unknown>;
    const lock = JSON.parse(lockText) as { packages?: unknown };
    if (!pkg || typeof pkg !== 'object' || !lock?.packages || typeof lock.packages !== 'object') return [];
    packages = lock.packages as Record<string, unknown>;
  } catch {
    return [];
  }
  if (pkg.workspaces !== undefined) return [];
  const overridden = pkg.overrides && typeof pkg.overrides === 'object' ? new Set(Object.keys(pkg.overrides)) : new Set<string>();
  const lines: string[] = [];
  for (const field of JUDGED) {
    const declared = pkg[field];
    if (!declared || typeof declared !== 'object') continue;
    for (const [name, spec] of Object.entries(declared as Record<string, unknown>)) {
      if (typeof spec !== 'string' || overridden.has(name) || semver.validRange(spec) === null) continue;
      const entry = packages[`node_modules/${name}`] as { version?: unknown; link?: unknown } | undefined;
      if (!entry || typeof entry !== 'object') {
        if (field !== 'optionalDependencies') lines.push(`Missing: ${name}@${spec} from lock file`);
        continue;
      }
      if (entry.link === true || typeof entry.version !== 'string') continue;
      // npm (arborist's dep-valid) takes any version for `*` (and "", which npm-package-arg reads as `*`), prereleases too.
      if (spec.trim() === '' || spec.trim() === '*') continue;
      if (!semver.satisfies(entry.version, spec, true)) lines.push(`Invalid: lock file's ${name}@${entry.version} does not satisfy ${name}@${spec}`);
    }
  }
  return lines;
}
