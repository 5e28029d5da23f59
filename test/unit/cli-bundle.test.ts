// scripts/ops-bin.js caches the CLI's bundle under node_modules/.cache. Two checkouts sharing one node_modules (a
// symlink, as worktrees are often set up; a workspace) must each run their own sources: the bundle's freshness is
// judged against the checkout that runs it, so one cache for both let a clean checkout run the other's edits.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const MARK = 'OTHER-CHECKOUT-EDIT';
const other = mkdtempSync(join(tmpdir(), 'ops-checkout-'));

afterAll(() => {
  // The other checkout's cache lives in this node_modules: leave none of it behind.
  const key = createHash('sha256').update(realpathSync(other)).digest('hex').slice(0, 12);
  rmSync(join(ROOT, 'node_modules', '.cache', 'ops-pipeline', key), { recursive: true, force: true });
  rmSync(other, { recursive: true, force: true });
});

const help = (root: string) => execFileSync(process.execPath, [join(root, 'scripts', 'ops-bin.js'), '--help'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });

describe('the CLI bundle cache', () => {
  it('is one per checkout: a checkout sharing node_modules never runs the bundle of another', () => {
    for (const part of ['core', 'scripts', 'package.json', 'package-lock.json']) cpSync(join(ROOT, part), join(other, part), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(other, 'node_modules'));
    const cli = join(other, 'scripts', 'cli.ts');
    writeFileSync(cli, readFileSync(cli, 'utf8').replace('ops: provision, deploy and operate', `ops: ${MARK} provision, deploy and operate`));
    // The edited checkout runs its edit; this one, whose sources are older than that bundle, still runs its own.
    expect(help(other)).toContain(MARK);
    const mine = help(ROOT);
    expect(mine).toContain('ops: provision, deploy and operate');
    expect(mine).not.toContain(MARK);
  }, 60_000);
});

describe.runIf(process.getuid?.() === 0)('a bundle cache the user cannot write (node_modules installed by another account)', () => {
  it('the CLI runs its sources, with no esbuild error printed', () => {
    const mine = mkdtempSync(join(tmpdir(), 'ops-checkout-ro-'));
    const key = createHash('sha256').update(realpathSync(mine)).digest('hex').slice(0, 12);
    const cache = join(ROOT, 'node_modules', '.cache', 'ops-pipeline', key);
    try {
      for (const part of ['core', 'scripts', 'package.json', 'package-lock.json']) cpSync(join(ROOT, part), join(mine, part), { recursive: true });
      symlinkSync(join(ROOT, 'node_modules'), join(mine, 'node_modules'));
      chmodSync(mine, 0o755);
      mkdirSync(cache, { recursive: true, mode: 0o755 }); // root's, as the account that installed left it
      const r = spawnSync('setpriv', ['--reuid=48213', '--regid=48213', '--clear-groups', process.execPath, join(mine, 'scripts', 'ops-bin.js'), '--help'], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: '/nonexistent', NO_COLOR: '1' }, timeout: 60_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('ops: provision, deploy and operate');
    } finally {
      rmSync(cache, { recursive: true, force: true });
      rmSync(mine, { recursive: true, force: true });
    }
  });
});
