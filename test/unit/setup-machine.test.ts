// scripts/setup-machine.sh runs npm ci only when node_modules does not hold what package-lock.json pins, judged by
// content (scripts/node-modules-current.js): npm ci empties node_modules first, through a symlink too, so a git
// worktree sharing another checkout's node_modules, whose lockfile a checkout wrote after that install (same
// content, newer date), wiped the other's install while it ran (a file-date test did that).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain JavaScript script (it runs before the dependencies exist), no declarations
import { installDifferences } from '../../scripts/node-modules-current.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SCRIPT = join(ROOT, 'scripts', 'node-modules-current.js');

const lock = (packages: Record<string, object>) => JSON.stringify({ name: 'p', lockfileVersion: 3, packages });
const pinned = {
  '': { name: 'p' },
  'node_modules/yaml': { version: '2.9.1' },
  'node_modules/@esbuild/darwin-arm64': { version: '0.25.0', optional: true, os: ['darwin'] },
};
const installed = { 'node_modules/yaml': { version: '2.9.1' } };

/** A checkout whose node_modules is a symlink to another's install, its lockfile written after that install. */
function worktree(installedPackages: Record<string, object> | undefined): string {
  const base = mkdtempSync(join(tmpdir(), 'ops-setup-'));
  const shared = join(base, 'main', 'node_modules');
  mkdirSync(shared, { recursive: true });
  if (installedPackages) writeFileSync(join(shared, '.package-lock.json'), lock(installedPackages));
  const wt = join(base, 'wt');
  mkdirSync(wt);
  symlinkSync(shared, join(wt, 'node_modules'));
  writeFileSync(join(wt, 'package-lock.json'), lock(pinned));
  const later = new Date(Date.now() + 60_000);
  utimesSync(join(wt, 'package-lock.json'), later, later);
  return wt;
}

const current = (dir: string) => spawnSync(process.execPath, [SCRIPT, dir], { encoding: 'utf8' });

describe('setup-machine: npm ci only when node_modules differs from the lockfile', () => {
  it('a lockfile newer than the install, same packages (a worktree sharing node_modules): current, no npm ci', () => {
    expect(current(worktree(installed)).status).toBe(0);
    expect(readFileSync(join(ROOT, 'scripts', 'setup-machine.sh'), 'utf8')).toMatch(/if ! node scripts\/node-modules-current\.js \.; then\n\s+npm ci/);
    expect(readFileSync(join(ROOT, 'scripts', 'setup-machine.sh'), 'utf8')).not.toMatch(/package-lock\.json -nt/);
  });

  it('a changed version, a package missing or extra, or no install: npm ci', () => {
    const changed = current(worktree({ 'node_modules/yaml': { version: '2.8.0' } }));
    expect(changed.status).toBe(1);
    expect(changed.stdout).toContain('node_modules/yaml: 2.8.0 installed, 2.9.1 pinned');
    expect(current(worktree({})).status).toBe(1);
    expect(current(worktree(undefined)).status).toBe(1);
    expect(installDifferences(pinned, { ...installed, 'node_modules/left': { version: '1.0.0' } })).toEqual(['node_modules/left: installed, not pinned']);
  });

  it("the real lockfile and this checkout's install agree (another platform's optional packages aside)", () => {
    expect(current(ROOT).status).toBe(0);
  });
});
