// package.json against npm's lockfile as npm ci checks them (core/node-lock-sync.ts): out of sync, npm ci refuses
// on the host with its whole usage text after the line that says why.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lockOutOfSync } from '../../core/node-lock-sync.ts';

const pkg = (more: Record<string, unknown>) => JSON.stringify({ name: 'web', version: '1.0.0', ...more });
/** A lockfile (version 3) holding ms 2.1.3 and husky 8.0.3, and `more`. */
const lock = (more: Record<string, unknown> = {}) =>
  JSON.stringify({
    name: 'web',
    lockfileVersion: 3,
    packages: { '': { name: 'web' }, 'node_modules/ms': { version: '2.1.3' }, 'node_modules/husky': { version: '8.0.3', dev: true }, ...more },
  });

describe('package.json and the lockfile out of sync, as npm ci says it', () => {
  it('a dependency the lockfile lacks (added to package.json by hand), one whose locked version its range excludes, in npm ci\'s words', () => {
    expect(lockOutOfSync(pkg({ dependencies: { ms: '2.1.3', 'left-pad': '^1.3.0' }, devDependencies: { husky: '^9.0.0' } }), lock())).toEqual([
      'Missing: left-pad@^1.3.0 from lock file',
      "Invalid: lock file's husky@8.0.3 does not satisfy husky@^9.0.0",
    ]);
    // An optional dependency the lockfile lacks is not judged (npm may have recorded none); its version is.
    expect(lockOutOfSync(pkg({ optionalDependencies: { fsevents: '^2.3.0', ms: '^3.0.0' } }), lock())).toEqual(["Invalid: lock file's ms@2.1.3 does not satisfy ms@^3.0.0"]);
  });

  it('in sync: a range the locked version satisfies (not only the one written when locked), "*" and ""', () => {
    expect(lockOutOfSync(pkg({ dependencies: { ms: '^2.0.0' }, devDependencies: { husky: '8.x' } }), lock())).toEqual([]);
    expect(lockOutOfSync(pkg({ dependencies: { ms: '*', husky: '' } }), lock())).toEqual([]);
    // A prerelease locked under `*` or "": npm takes any version there (semver.satisfies alone would not).
    expect(lockOutOfSync(pkg({ dependencies: { ms: '*', husky: '' } }), lock({ 'node_modules/ms': { version: '3.0.0-canary.1' }, 'node_modules/husky': { version: '9.0.0-rc.1' } }))).toEqual([]);
  });

  it('not judged: tags, aliases, git, URL and file: specs, links, overrides of the name, workspaces, lockfileVersion 1, text that is not JSON', () => {
    const specs = { a: 'latest', b: 'npm:ms@^2', c: 'github:user/repo', d: 'https://example.com/d.tgz', e: 'file:../e', lib: '^2.0.0', ms: '^9.0.0' };
    expect(lockOutOfSync(pkg({ dependencies: specs, overrides: { ms: '2.1.3' } }), lock({ 'node_modules/lib': { resolved: 'packages/lib', link: true } }))).toEqual([]);
    expect(lockOutOfSync(pkg({ workspaces: ['packages/*'], dependencies: { x: '^1.0.0' } }), lock())).toEqual([]);
    expect(lockOutOfSync(pkg({ dependencies: { x: '^1.0.0' } }), JSON.stringify({ lockfileVersion: 1, dependencies: {} }))).toEqual([]);
    expect(lockOutOfSync('{ not json', lock())).toEqual([]);
  });

  it('the fixtures npm wrote (the sample app, express-generator, create-vite) are in sync', () => {
    const fixtures = join(import.meta.dirname, '..', 'fixtures');
    for (const dir of ['app/tree/v1/client', 'app/tree/v2/client', 'app/tree/deps-changed/client', 'frameworks/express', 'frameworks/vite-react', 'node-addon'])
      expect(lockOutOfSync(readFileSync(join(fixtures, dir, 'package.json'), 'utf8'), readFileSync(join(fixtures, dir, 'package-lock.json'), 'utf8')), dir).toEqual([]);
  });
});
