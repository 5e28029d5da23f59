// The platform packages of npm's lockfile against a Linux host (core/node-platforms.ts): a lockfile made on macOS or
// Windows from an existing node_modules lacks the Linux binaries of rollup, esbuild, sharp... (npm/cli#4828), and
// npm ci on the host installs only what it lists.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodePlatformGaps } from '../../core/node-platforms.ts';

/** A lockfile (version 3) of `packages` beside its root entry. */
const lock = (packages: Record<string, unknown>) => JSON.stringify({ name: 'web', lockfileVersion: 3, requires: true, packages: { '': { name: 'web' }, ...packages } });
/** esbuild's entry declaring `platforms` (its optional dependencies), and the platform packages present (`os-cpu`, with `libc` for a -gnu/-musl suffix). */
function esbuild(platforms: string[], present: string[], at = 'node_modules') {
  const entry = (p: string) => {
    const [os, cpu, libc] = p.split('-');
    return { version: '0.25.0', optional: true, os: [os], cpu: [cpu], ...(libc && { libc: [libc === 'gnu' ? 'glibc' : libc] }) };
  };
  return {
    [`${at}/esbuild`]: { version: '0.25.0', hasInstallScript: true, optionalDependencies: Object.fromEntries(platforms.map((p) => [`@esbuild/${p}`, '0.25.0'])) },
    ...Object.fromEntries(present.map((p) => [`${at}/@esbuild/${p}`, entry(p)])),
  };
}
const ALL = ['darwin-arm64', 'darwin-x64', 'linux-x64', 'linux-arm64', 'win32-x64'];

describe('the Linux platform packages a lockfile lacks', () => {
  it('a package whose lockfile holds only macOS binaries while it declares Linux ones: named, with what is there and the Linux ones it lacks (x64 first)', () => {
    expect(nodePlatformGaps(lock(esbuild(ALL, ['darwin-arm64'])))).toEqual([
      { name: 'esbuild', version: '0.25.0', present: ['darwin-arm64'], absent: ['@esbuild/linux-x64', '@esbuild/linux-arm64'] },
    ]);
    // Nested copies resolve up the directories as node does: the nested package's own platform packages count.
    expect(nodePlatformGaps(lock(esbuild(ALL, ['darwin-arm64'], 'node_modules/vite/node_modules')))).toEqual([expect.objectContaining({ name: 'esbuild', absent: ['@esbuild/linux-x64', '@esbuild/linux-arm64'] })]);
  });

  it('a lockfile with every platform, or one of either Linux CPU, or a Linux binary under a platform list with exclusions: nothing', () => {
    expect(nodePlatformGaps(lock(esbuild(ALL, ALL)))).toEqual([]);
    expect(nodePlatformGaps(lock(esbuild(ALL, ['darwin-arm64', 'linux-arm64'])))).toEqual([]);
    const excluding = lock({
      'node_modules/tool': { version: '1.0.0', optionalDependencies: { 'tool-bin': '1.0.0', 'tool-linux-x64': '1.0.0' } },
      'node_modules/tool-bin': { version: '1.0.0', optional: true, os: ['!win32'] },
    });
    expect(nodePlatformGaps(excluding)).toEqual([]);
    // Found at the top (hoisted) from a nested package's entry.
    expect(nodePlatformGaps(lock({ ...esbuild(ALL, ALL), 'node_modules/vite/node_modules/esbuild': { version: '0.25.0', optionalDependencies: { '@esbuild/linux-x64': '0.25.0', '@esbuild/darwin-arm64': '0.25.0' } } }))).toEqual([]);
  });

  it('Linux binaries for musl only (Alpine) do not serve a Debian host (glibc)', () => {
    expect(nodePlatformGaps(lock(esbuild(['darwin-arm64', 'linux-x64-gnu', 'linux-x64-musl'], ['darwin-arm64', 'linux-x64-musl'])))).toEqual([expect.objectContaining({ absent: ['@esbuild/linux-x64-gnu'] })]);
  });

  it('not judged: an optional dependency without platform fields or not naming linux absent (fsevents alone), a link, lockfileVersion 1, text that is not JSON', () => {
    expect(nodePlatformGaps(lock({ 'node_modules/chokidar': { version: '3.6.0', optionalDependencies: { fsevents: '~2.3.2' } } }))).toEqual([]);
    expect(nodePlatformGaps(lock({ 'node_modules/chokidar': { version: '3.6.0', optionalDependencies: { fsevents: '~2.3.2', 'native-watch': '1' } }, 'node_modules/fsevents': { version: '2.3.3', optional: true, os: ['darwin'] } }))).toEqual([]);
    expect(nodePlatformGaps(lock({ 'node_modules/pg': { version: '8.0.0', optionalDependencies: { 'pg-native-linux': '1' } }, 'node_modules/pg-native-linux': { version: '1.0.0' } }))).toEqual([]);
    expect(nodePlatformGaps(JSON.stringify({ lockfileVersion: 1, dependencies: { esbuild: { version: '0.25.0' } } }))).toEqual([]);
    expect(nodePlatformGaps('{ not json')).toEqual([]);
  });

  it('the lockfiles npm writes on Linux (the fixtures: vite-react with rolldown, lightningcss and oxlint) lack nothing; with only the macOS arm64 binaries kept, each such package is named', () => {
    const text = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'frameworks', 'vite-react', 'package-lock.json'), 'utf8');
    expect(nodePlatformGaps(text)).toEqual([]);
    const parsed = JSON.parse(text) as { packages: Record<string, { os?: string[]; cpu?: string[] }> };
    for (const [path, entry] of Object.entries(parsed.packages)) if (entry.os && !(entry.os.includes('darwin') && entry.cpu?.includes('arm64'))) delete parsed.packages[path];
    const gaps = nodePlatformGaps(JSON.stringify(parsed));
    expect(gaps.map((g) => [g.name, g.present, g.absent[0]])).toEqual([
      ['lightningcss', ['darwin-arm64'], 'lightningcss-linux-x64-gnu'],
      ['oxlint', ['darwin-arm64'], '@oxlint/binding-linux-x64-gnu'],
      // Its WebAssembly fallback (cpu wasm32, no os) is no Linux x64 or arm64 binary: npm skips it there.
      ['rolldown', ['darwin-arm64', 'wasm32'], '@rolldown/binding-linux-x64-gnu'],
    ]);
  });
});
