// A node set made from the live one (npm install over hard links of its files) must be the tree npm ci makes from
// the new lockfile. Real npm, offline: every package is a local tarball (file:vendor/*.tgz), which
// core/dependency-inputs.ts lets be made from the live set (SetInputs.fromLive).
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { git } from './commits.helpers.ts';
import { parseEnvironment } from '../../core/config/environment.ts';
import { scriptText } from '../../core/remote/wrap.ts';
import { nodeDependencies } from '../../core/steps/app.ts';
import { resolveTarget } from '../../core/target.ts';

const run = promisify(execFile);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const offline = { ...process.env, npm_config_offline: 'true' };

/** A package as a tarball in `dir`: its package.json and files. */
async function tarball(dir: string, file: string, pkg: Record<string, unknown>, files: Record<string, string> = {}) {
  const src = mkdtempSync(join(tmpdir(), 'ops-pkg-'));
  mkdirSync(join(src, 'package'));
  writeFileSync(join(src, 'package', 'package.json'), JSON.stringify(pkg));
  for (const [f, text] of Object.entries(files)) writeFileSync(join(src, 'package', f), text, { mode: 0o755 });
  mkdirSync(dir, { recursive: true });
  await run('tar', ['czf', join(dir, file), '-C', src, 'package']);
}

type Project = (client: string) => Promise<void>;

/** The live release's set made by the step (npm ci, stamped), then the new one's from it, and npm ci's of the new. */
async function liveThenNew(live: Project, next: Project) {
  const base = mkdtempSync(join(tmpdir(), 'ops-nodeset-vsci-'));
  const npm = (await run('bash', ['-c', 'command -v npm'], { encoding: 'utf8' })).stdout.trim();
  const node = (await run('bash', ['-c', 'command -v node'], { encoding: 'utf8' })).stdout.trim();
  const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'run', port: 3000 } }, routes: { '/': 'web' }, release: { node_dir: 'client' } }, 'test');
  const t = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: base, url: 'http://x' });
  const env = { ...t, runtime: { ...t.runtime, npm, node } };
  const project = async (dir: string, make: Project) => {
    mkdirSync(dir, { recursive: true });
    await make(dir);
    await run('npm', ['install', '--package-lock-only', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir });
  };
  await project(join(t.layout.releases, 'r0', 'client'), live);
  await run('bash', ['-c', scriptText(nodeDependencies(env, join(t.layout.releases, 'r0'), 'live', true))], { env: offline });
  symlinkSync(join(t.layout.releases, 'r0'), t.layout.current);
  await project(join(t.layout.releases, 'r1', 'client'), next);
  const listing = async () => (await run('bash', ['-c', `cd ${join(t.layout.deps, 'node-live')} && find . -type f -print0 | sort -z | xargs -0 sha256sum`], { encoding: 'utf8' })).stdout;
  const liveBefore = await listing();
  const r = await run('bash', ['-c', scriptText(nodeDependencies(env, join(t.layout.releases, 'r1'), 'new', true))], { encoding: 'utf8', env: offline });
  const liveAfter = await listing();
  const ci = join(base, 'ci');
  await project(ci, next);
  await run('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: ci, env: offline });
  const diff = await run('diff', ['-r', '--no-dereference', '-x', '.package-lock.json', join(t.layout.deps, 'node-new', 'node_modules'), join(ci, 'node_modules')], { encoding: 'utf8' }).then(
    () => '',
    (e: { stdout: string }) => e.stdout.replaceAll(t.layout.deps, '<deps>').replaceAll(ci, '<ci>'),
  );
  return { fromLive: r.stdout.includes('over hard links of the live set'), diff, liveUnchanged: liveBefore === liveAfter, read: (f: string) => readFileSync(join(t.layout.deps, 'node-new', 'node_modules', f), 'utf8') };
}

const pkgJson = (deps: Record<string, string>) => JSON.stringify({ name: 'web', version: '1.0.0', dependencies: deps });

describe("a node set made from the live one is npm ci's tree (real npm, local tarballs)", () => {
  it('a tarball rebuilt under the same name and version (another integrity in the lockfile): its new files', async () => {
    const x = await liveThenNew(
      async (c) => {
        await tarball(join(c, 'vendor'), 'foo-1.0.0.tgz', { name: 'foo', version: '1.0.0' }, { 'index.js': "module.exports = 'A';\n" });
        writeFileSync(join(c, 'package.json'), pkgJson({ foo: 'file:vendor/foo-1.0.0.tgz' }));
      },
      async (c) => {
        await tarball(join(c, 'vendor'), 'foo-1.0.0.tgz', { name: 'foo', version: '1.0.0' }, { 'index.js': "module.exports = 'B';\n" });
        writeFileSync(join(c, 'package.json'), pkgJson({ foo: 'file:vendor/foo-1.0.0.tgz' }));
      },
    );
    expect(x.read('foo/index.js')).toBe("module.exports = 'B';\n");
    expect(x.diff).toBe('');
  }, 120_000);

  it('a second package with the same bin name added: .bin links as npm ci does', async () => {
    const tools = async (c: string) => {
      await tarball(join(c, 'vendor'), 'tool-a-1.0.0.tgz', { name: 'tool-a', version: '1.0.0', bin: { tool: 'cli.js' } }, { 'cli.js': '#!/usr/bin/env node\nconsole.log("a")\n' });
      await tarball(join(c, 'vendor'), 'tool-b-1.0.0.tgz', { name: 'tool-b', version: '1.0.0', bin: { tool: 'cli.js' } }, { 'cli.js': '#!/usr/bin/env node\nconsole.log("b")\n' });
    };
    const added = await liveThenNew(
      async (c) => { await tools(c); writeFileSync(join(c, 'package.json'), pkgJson({ 'tool-a': 'file:vendor/tool-a-1.0.0.tgz' })); },
      async (c) => { await tools(c); writeFileSync(join(c, 'package.json'), pkgJson({ 'tool-a': 'file:vendor/tool-a-1.0.0.tgz', 'tool-b': 'file:vendor/tool-b-1.0.0.tgz' })); },
    );
    const removed = await liveThenNew(
      async (c) => { await tools(c); writeFileSync(join(c, 'package.json'), pkgJson({ 'tool-a': 'file:vendor/tool-a-1.0.0.tgz', 'tool-b': 'file:vendor/tool-b-1.0.0.tgz' })); },
      async (c) => { await tools(c); writeFileSync(join(c, 'package.json'), pkgJson({ 'tool-b': 'file:vendor/tool-b-1.0.0.tgz' })); },
    );
    expect([added.diff, removed.diff]).toEqual(['', '']);
  }, 120_000);

  it("a dependency's install script writing outside its package (as @prisma/client's generates node_modules/.prisma): run as npm ci runs it", async () => {
    const gen = async (c: string, schema: string, ms: string) => {
      await tarball(join(c, 'vendor'), 'gen-1.0.0.tgz', { name: 'gen', version: '1.0.0', scripts: { postinstall: `node -e "const fs=require('fs');fs.mkdirSync('../.gen',{recursive:true});fs.writeFileSync('../.gen/out.js',fs.readFileSync(process.env.INIT_CWD+'/schema.txt'))"` } });
      await tarball(join(c, 'vendor'), `ms-${ms}.tgz`, { name: 'ms', version: ms });
      writeFileSync(join(c, 'schema.txt'), schema);
      writeFileSync(join(c, 'package.json'), pkgJson({ gen: 'file:vendor/gen-1.0.0.tgz', ms: `file:vendor/ms-${ms}.tgz` }));
    };
    const x = await liveThenNew((c) => gen(c, 'A', '1.0.0'), (c) => gen(c, 'B', '2.0.0'));
    expect(x.read('.gen/out.js')).toBe('B');
    expect(x.diff).toBe('');
  }, 120_000);

  it('.npmrc ignore-scripts turned off: the install scripts npm ci runs have run', async () => {
    const make = (npmrc: string, ms: string) => async (c: string) => {
      await tarball(join(c, 'vendor'), 'built-1.0.0.tgz', { name: 'built', version: '1.0.0', scripts: { install: 'node -e "require(\'fs\').writeFileSync(\'built.txt\', \'yes\')"' } });
      await tarball(join(c, 'vendor'), `ms-${ms}.tgz`, { name: 'ms', version: ms });
      writeFileSync(join(c, '.npmrc'), npmrc);
      writeFileSync(join(c, 'package.json'), pkgJson({ built: 'file:vendor/built-1.0.0.tgz', ms: `file:vendor/ms-${ms}.tgz` }));
    };
    const x = await liveThenNew(make('ignore-scripts=true\n', '1.0.0'), make('', '2.0.0'));
    expect(x.diff).toBe('');
  }, 120_000);

  it("a dependency whose install script writes outside its package, upgraded (as @prisma/client's postinstall): the live set's files are not written", async () => {
    const gen = async (c: string, schema: string, v: string) => {
      await tarball(join(c, 'vendor'), `gen-${v}.tgz`, { name: 'gen', version: v, scripts: { postinstall: `node -e "const fs=require('fs');fs.mkdirSync('../.gen',{recursive:true});fs.writeFileSync('../.gen/out.js',fs.readFileSync(process.env.INIT_CWD+'/schema.txt'))"` } });
      writeFileSync(join(c, 'schema.txt'), schema);
      writeFileSync(join(c, 'package.json'), pkgJson({ gen: `file:vendor/gen-${v}.tgz` }));
    };
    const x = await liveThenNew((c) => gen(c, 'A', '1.0.0'), (c) => gen(c, 'B', '1.0.1'));
    expect(x.read('.gen/out.js')).toBe('B');
    expect(x.liveUnchanged).toBe(true);
  }, 120_000);

  it('a local package directory copied (install-links=true) whose code changed, same version: its new code', async () => {
    const app = (code: string) => async (c: string) => {
      mkdirSync(join(c, 'lib'));
      writeFileSync(join(c, 'lib', 'package.json'), JSON.stringify({ name: 'lib', version: '1.0.0', main: 'index.js' }));
      writeFileSync(join(c, 'lib', 'index.js'), code);
      writeFileSync(join(c, '.npmrc'), 'install-links=true\n');
      writeFileSync(join(c, 'package.json'), pkgJson({ lib: 'file:lib' }));
    };
    const x = await liveThenNew(app("module.exports = 'old';\n"), app("module.exports = 'new';\n"));
    expect(x.read('lib/index.js')).toBe("module.exports = 'new';\n");
    expect(x.diff).toBe('');
  }, 120_000);

  it('a git dependency moved to another commit, same version in its package.json: the new commit', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'ops-gitdep-'));
    git(repo, 'init', '-q', '-b', 'main');
    writeFileSync(join(repo, 'package.json'), JSON.stringify({ name: 'lib', version: '1.0.0', main: 'index.js' }));
    const commit = (code: string) => {
      writeFileSync(join(repo, 'index.js'), code);
      git(repo, 'add', '-A');
      git(repo, '-c', 'user.email=t@example.org', '-c', 'user.name=t', 'commit', '-q', '-m', code);
      return git(repo, 'rev-parse', 'HEAD');
    };
    const [one, two] = [commit("module.exports = 'one';\n"), commit("module.exports = 'two';\n")];
    const app = (sha: string) => async (c: string) => writeFileSync(join(c, 'package.json'), pkgJson({ lib: `git+file://${repo}#${sha}` }));
    const x = await liveThenNew(app(one), app(two));
    expect(x.read('lib/index.js')).toBe("module.exports = 'two';\n");
    expect(x.diff).toBe('');
  }, 120_000);
});
