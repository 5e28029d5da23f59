// npm's semver 6 (the version in the lockfile) ships no types: the functions core/node-engines.ts and core/node-lock-sync.ts use, as its
// README documents them (https://github.com/npm/node-semver/tree/v6.3.2#functions).
declare module 'semver' {
  /** The range normalized, or null when it is not a valid range. */
  export function validRange(range: string): string | null;
  /** Whether some version satisfies both ranges. */
  export function intersects(range1: string, range2: string): boolean;
  /** Whether `version` satisfies `range` (`loose`: the forgiving parse npm's arborist uses). */
  export function satisfies(version: string, range: string, loose?: boolean): boolean;
  const semver: { validRange: typeof validRange; intersects: typeof intersects; satisfies: typeof satisfies };
  export default semver;
}
