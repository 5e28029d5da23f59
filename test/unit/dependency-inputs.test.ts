// What a dependency set is made from (core/dependency-inputs.ts), on small repositories made here and on the sample
// app's: every file the install reads changes the set's name (a change missed is a stale set reused: the previous
// dependencies serving new code), nothing else does, and a set holding the release's own paths (an editable local
// package, npm's links to the app's packages) or made by install scripts that read unknown files is made for each
// release. The sample app's sets keep the names they had before included files were followed (no reinstall on upgrade).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Environment } from '../../core/config/environment.ts';
import { dependencyInputs, depsHash, scanRequirements, setHashes, uvTables } from '../../core/dependency-inputs.ts';
import { makeAppRepo } from '../fixtures/app/make-repo.ts';
import { git, releaseEnv } from './commits.helpers.ts';

const env = releaseEnv;

/** A repository whose commits each write (string), link ({ link: target }: a symbolic link) or delete (null)
 * files; the commits' shas. */
function repoWith(commits: Record<string, string | null | { link: string }>[]): { dir: string; shas: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'ops-depinputs-'));
  git(dir, 'init', '-q', '-b', 'main');
  const shas: string[] = [];
  for (const files of commits) {
    for (const [f, text] of Object.entries(files)) {
      if (text === null) rmSync(join(dir, f), { force: true });
      else if (typeof text === 'object') {
        mkdirSync(dirname(join(dir, f)), { recursive: true });
        rmSync(join(dir, f), { force: true });
        symlinkSync(text.link, join(dir, f));
      } else {
        mkdirSync(dirname(join(dir, f)), { recursive: true });
        rmSync(join(dir, f), { force: true }); // a link there is replaced, not written through
        writeFileSync(join(dir, f), text);
      }
    }
    git(dir, 'add', '-A');
    git(dir, 'commit', '-q', '--allow-empty', '-m', `commit ${shas.length + 1}`);
    shas.push(git(dir, 'rev-parse', 'HEAD'));
  }
  return { dir, shas };
}

/** The hashes of each commit's sets (the same release id for all). */
async function hashes(r: { dir: string; shas: string[] }, e: Environment, kind: 'python' | 'node'): Promise<string[]> {
  return Promise.all(r.shas.map(async (sha) => setHashes(await dependencyInputs(r.dir, sha, e), 'R1')[kind]));
}

describe('pip requirements files: what they refer to', () => {
  it('includes, constraints, editable and local projects, find-links; not project names, URLs, VCS, comments or other options', () => {
    const text = [
      '# -r commented-out.txt',
      '-r base.txt',
      '-rinner.txt',
      '--requirement=more.txt',
      '-c constraints.txt',
      '-e ./lib',
      '--editable=file:./lib2',
      '-e git+https://example.org/a/b#egg=b',
      './pkg  # a local project',
      'pkg2[x] @ file:///srv/pkg2',
      'name @ https://example.org/name-1.0.tar.gz',
      'foo==1.0 \\',
      '    --hash=sha256:abc',
      'bar[extra]>=2 ; python_version < "3.11"',
      './dist/x-1.0-py3-none-any.whl ; sys_platform == "linux"',
      '-i https://example.org/simple',
      '-f ./wheels',
      '.',
    ].join('\n');
    expect(scanRequirements(text)).toEqual([
      { kind: 'include', target: 'base.txt' },
      { kind: 'include', target: 'inner.txt' },
      { kind: 'include', target: 'more.txt' },
      { kind: 'constraint', target: 'constraints.txt' },
      { kind: 'editable', target: './lib' },
      { kind: 'editable', target: './lib2' },
      { kind: 'path', target: './pkg' },
      { kind: 'path', target: '/srv/pkg2' },
      { kind: 'path', target: './dist/x-1.0-py3-none-any.whl' },
      { kind: 'find-links', target: './wheels' },
      { kind: 'path', target: '.' },
    ]);
  });
});

describe('pip requirements lines pip and uv (0.13) both install from, as a team writes them', () => {
  it('several options on one line, -f and -e of a bare directory, quotes, spaces, markers without spaces, archives, file: URLs with a fragment, a comment ending in a backslash', () => {
    const text = [
      '--no-index --find-links ./wheels',
      '-i https://example.org/simple -r base.txt',
      '-f vendor',
      '-e lib[dev]',
      '-r "my reqs.txt"',
      "--constraint 'pins/c 1.txt'",
      './my lib ; python_version >= "3.8"',
      './pkg;sys_platform=="linux"',
      'vendored-1.0-py3-none-any.whl',
      'file:./tools#egg=tools',
      'x @ file:///srv/x.whl#sha256=ab',
      '--requirem abbreviated.txt',
      '# see C:\\',
      '-r after-comment.txt',
      'requests[socks]>=2 ; python_version < "3.8"',
      '--pre',
    ].join('\n');
    expect(scanRequirements(text)).toEqual([
      { kind: 'find-links', target: './wheels' },
      { kind: 'include', target: 'base.txt' },
      { kind: 'find-links', target: 'vendor' },
      { kind: 'editable', target: 'lib' },
      { kind: 'include', target: 'my reqs.txt' },
      { kind: 'constraint', target: 'pins/c 1.txt' },
      { kind: 'path', target: './my lib' },
      { kind: 'path', target: './pkg' },
      { kind: 'path', target: 'vendored-1.0-py3-none-any.whl' },
      { kind: 'path', target: './tools' },
      { kind: 'path', target: '/srv/x.whl' },
      { kind: 'include', target: 'abbreviated.txt' },
      { kind: 'include', target: 'after-comment.txt' },
    ]);
    // uv reads an option's value to the end of the line: both readings count.
    expect(scanRequirements('-r my reqs.txt')).toEqual([
      { kind: 'include', target: 'my' },
      { kind: 'include', target: 'my reqs.txt' },
    ]);
    // What uv 0.13 opened (strace) that the scanner had missed: a value after `=` with a space, a value up to the
    // next option, a plain path's fragment, a requirement after an option on its line.
    expect(scanRequirements('-r=my reqs.txt').map((r) => r.target)).toContain('my reqs.txt');
    expect(scanRequirements('-e ./my lib --no-index').map((r) => r.target)).toContain('./my lib');
    expect(scanRequirements('./lib#egg=lib').map((r) => r.target)).toContain('./lib');
    expect(scanRequirements('--no-index ./lib')).toEqual([{ kind: 'path', target: './lib' }]);
    // uv reads `-r=base.txt` as `-r base.txt`; pip, as the file "=base.txt".
    expect(scanRequirements('-r=base.txt')).toEqual([
      { kind: 'include', target: '=base.txt' },
      { kind: 'include', target: 'base.txt' },
    ]);
  });

  it('a wheel in ./wheels behind `--no-index --find-links ./wheels` makes a new set; `-e lib` is made for each release', async () => {
    const r = repoWith([
      { 'requirements.txt': '--no-index --find-links ./wheels\nvendored\n', 'wheels/vendored-1.0-py3-none-any.whl': 'one', 'app.py': '1' },
      { 'wheels/vendored-1.0-py3-none-any.whl': 'two' },
      { 'requirements.txt': '-e lib\n', 'lib/pyproject.toml': '[project]\nname = "lib"\n' },
    ]);
    const h = await hashes(r, env(), 'python');
    expect(h[1]).not.toBe(h[0]);
    expect((await dependencyInputs(r.dir, r.shas[2]!, env())).python.perRelease).toBe('requirements.txt installs lib in editable mode (-e): the venv points into the release directory');
  });
});

describe('the Python set is made again when anything its install reads changes', () => {
  it('a file requirements.txt includes (-r, relative to the including file), or a constraints file; not another file', async () => {
    const r = repoWith([
      { 'requirements.txt': '-r requirements/prod.txt\n', 'requirements/prod.txt': '-r base.txt\n-c constraints.txt\ngunicorn==23.0.0\n', 'requirements/base.txt': 'six==1.16.0\n', 'requirements/constraints.txt': 'idna<4\n', 'app.py': '1' },
      { 'requirements/base.txt': 'six==1.17.0\n' },
      { 'requirements/constraints.txt': 'idna<3.10\n' },
      { 'app.py': '2', 'README.md': 'x' },
    ]);
    const h = await hashes(r, env(), 'python');
    expect(new Set(h.slice(0, 3)).size).toBe(3);
    expect(h[3]).toBe(h[2]);
    const inputs = await dependencyInputs(r.dir, r.shas[0]!, env());
    expect(inputs.python.files).toEqual(['requirements.txt', 'requirements/prod.txt', 'requirements/base.txt', 'requirements/constraints.txt']);
    expect(inputs.python.perRelease).toBeUndefined();
  });

  it('a local project (./lib) changes with its files; installed editable (-e) it is made for each release', async () => {
    const r = repoWith([
      { 'requirements.txt': './lib\n', 'lib/pyproject.toml': '[project]\nname = "lib"\n', 'lib/lib/__init__.py': 'X = 1\n', 'app.py': '1' },
      { 'lib/lib/__init__.py': 'X = 2\n' },
      { 'app.py': '2' },
      { 'requirements.txt': '-e ./lib\n' },
    ]);
    const h = await hashes(r, env(), 'python');
    expect(h[1]).not.toBe(h[0]);
    expect(h[2]).toBe(h[1]);
    const editable = await dependencyInputs(r.dir, r.shas[3]!, env());
    expect(editable.python.perRelease).toMatch(/^requirements\.txt installs \.\/lib in editable mode \(-e\): the venv points into the release directory$/);
    expect(setHashes(editable, 'R1').python).not.toBe(setHashes(editable, 'R2').python);
    const plain = await dependencyInputs(r.dir, r.shas[2]!, env());
    expect(setHashes(plain, 'R1').python).toBe(setHashes(plain, 'R2').python);
  });

  it('-e . and a path outside the repository or with a variable are made for each release', async () => {
    const r = repoWith([{ 'requirements.txt': '-e .\n' }, { 'requirements.txt': '/opt/vendor/pkg\n' }, { 'requirements.txt': '-r ../shared.txt\n' }, { 'requirements.txt': '${VENDOR}/pkg\n' }]);
    const why = await Promise.all(r.shas.map(async (s) => (await dependencyInputs(r.dir, s, env())).python.perRelease));
    expect(why).toEqual([
      'requirements.txt installs . in editable mode (-e): the venv points into the release directory',
      'requirements.txt installs /opt/vendor/pkg, outside the repository',
      'requirements.txt includes ../shared.txt, outside the repository',
      'requirements.txt names ${VENDOR}/pkg, a path with an environment variable',
    ]);
  });

  it("the sample app's sets keep their names: runtime and requirements.txt's blob; the lockfile without the app's version", async () => {
    const app = join(mkdtempSync(join(tmpdir(), 'ops-depinputs-app-')), 'app');
    await makeAppRepo(app);
    const sha = (ref: string) => git(app, 'rev-parse', `${ref}^{commit}`);
    const [v1, v2] = [await dependencyInputs(app, sha('v1'), env()), await dependencyInputs(app, sha('v2'), env())];
    expect(v1.python.hash).toBe(depsHash(['python debian 3.11', git(app, 'rev-parse', 'v1:requirements.txt')]));
    const lock = JSON.parse(git(app, 'show', 'v1:client/package-lock.json')) as { version?: string; packages: Record<string, { version?: string }> };
    delete lock.version;
    delete lock.packages['']!.version;
    expect(v1.node.hash).toBe(depsHash(['node debian 18', `lock ${JSON.stringify(lock)}`]));
    expect(v2.python.hash).toBe(v1.python.hash);
    expect(v2.node.hash).toBe(v1.node.hash);
    expect([v1.python.perRelease, v1.node.perRelease]).toEqual([undefined, undefined]);
  }, 60_000);
});

describe('the Python installer (release.python_installer)', () => {
  it('is part of the set\'s name: the same files under pip and under uv make two sets (switching to the fallback makes a new one); uv\'s names are as before', async () => {
    const r = repoWith([{ 'requirements.txt': 'flask>=3\n' }]);
    const [uv] = await hashes(r, env(), 'python');
    const [pip] = await hashes(r, env({ python_installer: 'pip' }), 'python');
    expect(pip).not.toBe(uv);
    expect(uv).toBe(depsHash(['python debian 3.11', git(r.dir, 'rev-parse', `${r.shas[0]}:requirements.txt`)]));
  });
});

describe('requirements pinned by hash (pip\'s hash-checking mode, which uv is then told: --require-hashes)', () => {
  it('are found in a file the requirements include too, in either form of the option; a hash in a comment is none', async () => {
    const r = repoWith([
      { 'requirements.txt': '-r base.txt\n', 'base.txt': 'flask==3.0.0 \\\n    --hash=sha256:aa\n' },
      { 'base.txt': 'flask==3.0.0 --hash sha256:aa\n' },
      { 'base.txt': 'flask==3.0.0\n# pinned with --hash=sha256:aa once\n' },
      { 'requirements.txt': 'flask==3.0.0 --hash=sha256:aa\n', 'base.txt': null },
    ]);
    const hashed = async (i: number) => (await dependencyInputs(r.dir, r.shas[i]!, env())).python.hashed;
    expect([await hashed(0), await hashed(1), await hashed(2), await hashed(3)]).toEqual([true, true, undefined, true]);
  });
});

describe('a project locked by uv (uv.lock beside pyproject.toml): the set is installed from the lock', () => {
  const pyproject = '[project]\nname = "app"\nversion = "0.1.0"\nrequires-python = ">=3.10"\ndependencies = ["packaging>=26.3"]\n';
  const lock = (version: string, more = '') =>
    `version = 1\nrevision = 5\nrequires-python = ">=3.10"\n\n[[package]]\nname = "app"\nversion = "0.1.0"\nsource = { virtual = "." }\n\n[package.metadata]\nrequires-dist = [{ name = "packaging", specifier = ">=26.3" }]\n\n[[package]]\nname = "packaging"\nversion = "${version}"\nsource = { registry = "https://pypi.org/simple" }\n${more}`;

  it('named after uv.lock and pyproject.toml: a lock bump alone makes a new set; pointing at either file is the same set; pip reads no lock', async () => {
    const r = repoWith([
      { 'api/pyproject.toml': pyproject, 'api/uv.lock': lock('26.3') },
      { 'api/uv.lock': lock('26.4') },
      { 'api/README.md': 'notes\n' },
      { 'api/uv.toml': 'native-tls = true\n' },
    ]);
    const inputs = async (i: number, release: Record<string, unknown> = { python_requirements: 'api/pyproject.toml' }) => (await dependencyInputs(r.dir, r.shas[i]!, env(release))).python;
    const first = await inputs(0);
    expect(first).toMatchObject({ files: ['api/uv.lock', 'api/pyproject.toml'], uvLock: 'api/uv.lock', hashed: true });
    expect(first.perRelease).toBeUndefined();
    expect((await inputs(1)).hash, 'a lock bump alone').not.toBe(first.hash);
    expect((await inputs(2)).hash, 'a file the install does not read').toBe((await inputs(1)).hash);
    expect(await inputs(0, { python_requirements: 'api/uv.lock' })).toEqual(first);
    // uv's settings are read in the project's directory, where the install runs.
    expect(await inputs(3)).toMatchObject({ files: ['api/uv.lock', 'api/pyproject.toml', 'api/uv.toml'], uvSettings: true });
    expect((await inputs(3)).hash).not.toBe((await inputs(2)).hash);
    // A pyproject.toml without a uv.lock beside it: its dependency ranges, as before.
    expect((await inputs(0, { python_requirements: 'pyproject.toml' })).uvLock).toBeUndefined();
    expect((await inputs(0, { python_requirements: 'api/pyproject.toml', python_installer: 'pip' })).uvLock).toBeUndefined();
  });

  it("a lock taking packages from the repository (a workspace's member) is made for each release; one from git is not hashed", async () => {
    const member = '\n[[package]]\nname = "lib"\nversion = "1.0.0"\nsource = { editable = "packages/lib" }\n';
    const r = repoWith([{ 'pyproject.toml': pyproject, 'uv.lock': lock('26.3', member) }, { 'uv.lock': lock('26.3', '\n[[package]]\nname = "tool"\nversion = "1"\nsource = { git = "https://github.com/org/tool?rev=v1#0123abc" }\n') }]);
    const first = (await dependencyInputs(r.dir, r.shas[0]!, env({ python_requirements: 'uv.lock' }))).python;
    expect(first.perRelease).toBe('uv.lock installs lib (packages/lib) from the repository');
    expect(first.hashed).toBeUndefined();
    const second = (await dependencyInputs(r.dir, r.shas[1]!, env({ python_requirements: 'uv.lock' }))).python;
    expect([second.perRelease, second.hashed]).toEqual([undefined, undefined]);
  });
});

describe("uv's settings in the release's root (uv.toml, pyproject.toml's [tool.uv])", () => {
  it('count for the Python set made by uv: a change to them makes a new set; the rest of pyproject.toml does not; pip does not read them', async () => {
    const project = (version: string, findLinks: string) => `[project]\nname = "app"\nversion = "${version}"\n\n[tool.uv.pip]\nno-index = true\nfind-links = ["${findLinks}"]\n\n[tool.ruff]\nline-length = 100\n`;
    const r = repoWith([
      { 'requirements.txt': 'vendored\n', 'pyproject.toml': project('1.0', '/opt/wheels') },
      { 'pyproject.toml': project('1.0', '/opt/wheels-2') },
      { 'pyproject.toml': project('1.1', '/opt/wheels-2').replace('100', '120') },
      { 'uv.toml': '[pip]\nno-binary = ["vendored"]\n' },
    ]);
    const h = await hashes(r, env(), 'python');
    expect(h[1]).not.toBe(h[0]);
    expect(h[2]).toBe(h[1]);
    expect(h[3]).not.toBe(h[2]);
    expect((await dependencyInputs(r.dir, r.shas[3]!, env())).python.files).toEqual(['requirements.txt', 'uv.toml', 'pyproject.toml [tool.uv]']);
    expect(new Set(await hashes(r, env({ python_installer: 'pip' }), 'python')).size).toBe(1);
    expect(uvTables('[tool]\nuv = { index-url = "https://example.org/simple" }\n')).toContain('index-url');
    expect(uvTables('[project]\nname = "x"\ndependencies = [\n  ["a"],\n]\n')).toBe('');
  });

  it("are said to the host's install (uvSettings) only when uv takes them: a [tool.uvicorn] table or a comment naming tool.uv is none (uv would look above the release)", async () => {
    const r = repoWith([
      { 'requirements.txt': 'a\n', 'pyproject.toml': '[project]\nname = "app"\n# uv: see tool.uv in the docs\n[tool.uvicorn]\nport = 1\n' },
      { 'pyproject.toml': '[project]\nname = "app"\n[[tool.uv.index]]\nurl = "https://example.org/simple"\n' },
      { 'pyproject.toml': null, 'uv.toml': '[pip]\nno-binary = ["a"]\n' },
    ]);
    const uvSettings = async (sha: string, e = env()) => (await dependencyInputs(r.dir, sha, e)).python.uvSettings;
    expect(await uvSettings(r.shas[0]!)).toBeUndefined();
    expect(await uvSettings(r.shas[1]!)).toBe(true);
    expect(await uvSettings(r.shas[2]!)).toBe(true);
    expect(await uvSettings(r.shas[2]!, env({ python_installer: 'pip' }))).toBeUndefined();
  });
});

describe('files the installs read through symbolic links committed to the repository', () => {
  it('a requirements file that is a link, a link inside a local project, an input listed as a link: what they name counts', async () => {
    const r = repoWith([
      { 'requirements.txt': { link: 'prod.txt' }, 'prod.txt': '-r base.txt\n./lib\n', 'base.txt': 'six==1.16.0\n', 'lib/pyproject.toml': '[project]\nname = "lib"\n', 'lib/lib/shared': { link: '../../common' }, 'common/x.py': '1' },
      { 'prod.txt': '-r base.txt\n./lib\ngunicorn==23.0.0\n' },
      { 'base.txt': 'six==1.17.0\n' },
      { 'common/x.py': '2' },
      { 'app.py': 'unrelated' },
    ]);
    const h = await hashes(r, env(), 'python');
    expect(new Set(h.slice(0, 4)).size).toBe(4);
    expect(h[4]).toBe(h[3]);
    const n = repoWith([
      { 'client/package-lock.json': JSON.stringify({ name: 'web', lockfileVersion: 3, packages: { '': { name: 'web' } } }), 'client/package.json': JSON.stringify({ name: 'web', scripts: { postinstall: 'patch-package' } }), 'client/patches': { link: '../patches' }, 'patches/x+1.0.0.patch': 'a', 'client/.npmrc': { link: '../.npmrc' }, '.npmrc': 'a=1\n' },
      { 'patches/x+1.0.0.patch': 'b' },
      { '.npmrc': 'a=2\n' },
    ]);
    const nh = await hashes(n, env({ dependency_inputs: ['client/patches'] }), 'node');
    expect(new Set(nh).size).toBe(3);
  });

  it('a link out of the repository is followed by no commit: the set is made for each release', async () => {
    const r = repoWith([{ 'requirements.txt': { link: '/etc/app/requirements.txt' } }, { 'requirements.txt': './lib\n', 'lib/vendor': { link: '/opt/vendor' } }]);
    const why = await Promise.all(r.shas.map(async (s) => (await dependencyInputs(r.dir, s, env())).python.perRelease));
    expect(why).toEqual(['requirements.txt is a link to /etc/app/requirements.txt, outside the repository', 'requirements.txt installs ./lib, which links to /opt/vendor, outside the repository']);
  });
});

describe('the node set is made again when anything npm ci reads changes', () => {
  const lock = (deps: Record<string, Record<string, unknown>>, version = '1.0.0') => JSON.stringify({ name: 'web', version, lockfileVersion: 3, packages: { '': { name: 'web', version }, ...deps } });
  const pkg = (scripts: Record<string, string> = {}) => JSON.stringify({ name: 'web', version: '1.0.0', scripts: { build: 'vite build', ...scripts } });

  it(".npmrc and the install scripts' text count; the build script does not; node_dir may be the root", async () => {
    const r = repoWith([
      { 'package-lock.json': lock({ 'node_modules/x': { version: '1.0.0' } }), 'package.json': pkg() },
      { '.npmrc': 'legacy-peer-deps=true\n' },
      { 'package.json': pkg().replace('vite build', 'vite build --mode x') },
      { 'package.json': pkg({ postinstall: 'patch-package' }) },
    ]);
    const e = env({ node_dir: '.', dependency_inputs: [] });
    const h = await hashes(r, e, 'node');
    expect(h[1]).not.toBe(h[0]);
    expect(h[2]).toBe(h[1]);
    expect(h[3]).not.toBe(h[2]);
    expect((await dependencyInputs(r.dir, r.shas[1]!, e)).node.files).toEqual(['package-lock.json', '.npmrc']);
  });

  it("the `dependencies` life cycle script (npm ci runs it, and its pre and post scripts, once node_modules is made) is an install script", async () => {
    const r = repoWith([
      { 'client/package-lock.json': lock({}), 'client/package.json': pkg({ dependencies: 'patch-package' }), 'client/patches/x+1.0.0.patch': 'a' },
      { 'client/package.json': pkg({ dependencies: 'patch-package --patch-dir patches2' }) },
    ]);
    expect((await dependencyInputs(r.dir, r.shas[0]!, env())).node.perRelease).toBe(
      'client/package.json runs dependencies (patch-package) on install, reading files not known here: list them in release.dependency_inputs to share the set between releases',
    );
    const h = await hashes(r, env({ dependency_inputs: ['client/patches'] }), 'node');
    expect(h[1]).not.toBe(h[0]);
  });

  it('install scripts without release.dependency_inputs: made for each release; with them, the files listed count', async () => {
    const r = repoWith([
      { 'client/package-lock.json': lock({}), 'client/package.json': pkg({ postinstall: 'patch-package' }), 'client/patches/x+1.0.0.patch': 'a' },
      { 'client/patches/x+1.0.0.patch': 'b' },
      { 'client/src/app.js': 'changed' },
    ]);
    const unlisted = await dependencyInputs(r.dir, r.shas[0]!, env());
    expect(unlisted.node.perRelease).toBe(
      'client/package.json runs postinstall (patch-package) on install, reading files not known here: list them in release.dependency_inputs to share the set between releases',
    );
    const listed = env({ dependency_inputs: ['client/patches'] });
    expect((await dependencyInputs(r.dir, r.shas[0]!, listed)).node.perRelease).toBeUndefined();
    const h = await hashes(r, listed, 'node');
    expect(h[1]).not.toBe(h[0]);
    expect(h[2]).toBe(h[1]);
  });

  it("npm's links to the app's own packages (workspaces, file: directories): made for each release", async () => {
    const r = repoWith([
      {
        'package-lock.json': lock({ 'node_modules/@app/lib': { resolved: 'packages/lib', link: true }, 'packages/lib': { version: '1.0.0' } }),
        'package.json': pkg(),
      },
    ]);
    const inputs = await dependencyInputs(r.dir, r.shas[0]!, env({ node_dir: '.' }));
    expect(inputs.node.perRelease).toBe('npm links @app/lib → packages/lib into node_modules (workspaces, file: dependencies): the set points into the release directory');
    expect(setHashes(inputs, 'R1').node).not.toBe(setHashes(inputs, 'R2').node);
  });

  it('a package npm copies from the repository (file: with install-links) counts by its files; from outside it, made for each release', async () => {
    const r = repoWith([
      { 'client/package-lock.json': lock({ 'node_modules/mylib': { version: '1.0.0', resolved: 'file:../lib' } }), 'client/package.json': pkg(), 'lib/index.js': 'one' },
      { 'lib/index.js': 'two' },
      { 'client/src/app.js': 'x' },
      { 'client/package-lock.json': lock({ 'node_modules/mylib': { version: '1.0.0', resolved: 'file:../../vendor/lib' } }) },
    ]);
    const h = await hashes(r, env(), 'node');
    expect(h[1]).not.toBe(h[0]);
    expect(h[2]).toBe(h[1]);
    expect((await dependencyInputs(r.dir, r.shas[0]!, env())).node.files).toEqual(['client/package-lock.json', 'lib']);
    expect((await dependencyInputs(r.dir, r.shas[3]!, env())).node.perRelease).toBe('npm installs mylib from file:../../vendor/lib, outside the repository');
  });

  it('a node_dir that is a workspace of an npm project above it is refused: npm ci there installs the project, not node_dir', async () => {
    const r = repoWith([
      {
        'package.json': JSON.stringify({ name: 'root', private: true, workspaces: ['packages/*', '!packages/legacy'] }),
        'package-lock.json': lock({ 'node_modules/web': { resolved: 'packages/web', link: true } }),
        'packages/web/package.json': pkg(),
        'packages/legacy/package.json': pkg(),
        'packages/legacy/package-lock.json': lock({}),
      },
    ]);
    const refused = dependencyInputs(r.dir, r.shas[0]!, env({ node_dir: 'packages/web' }));
    await expect(refused).rejects.toThrow(
      "release.node_dir packages/web is a workspace of the npm project in the repository root (its package.json's workspaces): npm ci there installs that project's node_modules, not packages/web's",
    );
    await expect(refused).rejects.toMatchObject({ hint: expect.stringContaining('set release.node_dir to "."') });
    await expect(dependencyInputs(r.dir, r.shas[0]!, env({ node_dir: './packages/web/' }))).rejects.toThrow(/is a workspace/);
    // Excluded by a "!" pattern, or the root itself: installed where it is.
    expect((await dependencyInputs(r.dir, r.shas[0]!, env({ node_dir: 'packages/legacy' }))).node.files).toEqual(['packages/legacy/package-lock.json']);
    expect((await dependencyInputs(r.dir, r.shas[0]!, env({ node_dir: '.' }))).node.perRelease).toMatch(/^npm links web → packages\/web/);
  });

  it('a dependency added to package.json but not to the lockfile makes a new set (npm ci then says so), as do overrides; in step, nothing changes', async () => {
    const withDeps = (deps: Record<string, string>, extra: Record<string, unknown> = {}) => JSON.stringify({ name: 'web', version: '1.0.0', dependencies: deps, ...extra });
    const lockOf = (deps: Record<string, string>) =>
      JSON.stringify({ name: 'web', version: '1.0.0', lockfileVersion: 3, packages: { '': { name: 'web', version: '1.0.0', dependencies: deps }, 'node_modules/a': { version: '1.0.0' } } });
    const r = repoWith([
      { 'client/package.json': withDeps({ a: '^1.0.0' }), 'client/package-lock.json': lockOf({ a: '^1.0.0' }) },
      { 'client/package.json': withDeps({ a: '^1.0.0', b: '^2.0.0' }) },
      { 'client/package.json': withDeps({ a: '^1.0.0' }, { overrides: { a: '1.0.1' } }) },
      { 'client/package.json': withDeps({ a: '^1.0.0' }, { overrides: { a: '1.0.1' }, description: 'a description' }) },
    ]);
    const h = await hashes(r, env(), 'node');
    expect(h[1]).not.toBe(h[0]);
    expect(h[2]).not.toBe(h[0]);
    expect(h[2]).not.toBe(h[1]);
    expect(h[3]).toBe(h[2]);
    // lockfileVersion 1 records the packages by name only.
    const v1 = repoWith([
      { 'client/package.json': withDeps({ a: '^1.0.0' }), 'client/package-lock.json': JSON.stringify({ name: 'web', lockfileVersion: 1, dependencies: { a: { version: '1.0.0' } } }) },
      { 'client/package.json': withDeps({ a: '^1.0.0', b: '^2.0.0' }) },
    ]);
    const hv1 = await hashes(v1, env(), 'node');
    expect(hv1[1]).not.toBe(hv1[0]);
  });

  it('a set npm may make from the live one (npm install over it): a lockfile with packages, in step with package.json, no overrides, no install scripts of its own, shared', async () => {
    const withDeps = (deps: Record<string, string>, extra: Record<string, unknown> = {}) => JSON.stringify({ name: 'web', version: '1.0.0', dependencies: deps, ...extra });
    const lockOf = (deps: Record<string, string>, more: Record<string, unknown> = {}) =>
      JSON.stringify({ name: 'web', version: '1.0.0', lockfileVersion: 3, packages: { '': { name: 'web', version: '1.0.0', dependencies: deps }, 'node_modules/a': { version: '1.0.0' }, ...more } });
    const r = repoWith([
      { 'client/package.json': withDeps({ a: '^1.0.0' }), 'client/package-lock.json': lockOf({ a: '^1.0.0' }) },
      { 'client/package.json': withDeps({ a: '^1.0.0', b: '^2.0.0' }) },
      { 'client/package.json': withDeps({ a: '^1.0.0' }, { overrides: { a: '1.0.1' } }) },
      { 'client/package.json': withDeps({ a: '^1.0.0' }, { scripts: { postinstall: 'patch-package' } }) },
      { 'client/package.json': withDeps({ a: '^1.0.0' }, { scripts: { build: 'vite build', start: 'node build' } }) },
      { 'client/package-lock.json': JSON.stringify({ name: 'web', lockfileVersion: 1, dependencies: { a: { version: '1.0.0' } } }) },
      { 'client/package-lock.json': null },
      { 'client/package-lock.json': lockOf({ a: '^1.0.0' }, { 'node_modules/lib': { resolved: 'lib', link: true } }) },
      // A directory npm copies (install-links), a git dependency: no; a tarball in the repository: yes.
      { 'client/lib/package.json': '{"name":"lib","version":"1.0.0"}', 'client/package-lock.json': lockOf({ a: '^1.0.0' }, { 'node_modules/lib': { version: '1.0.0', resolved: 'file:lib' } }) },
      { 'client/package-lock.json': lockOf({ a: '^1.0.0' }, { 'node_modules/g': { version: '1.0.0', resolved: 'git+ssh://git@github.com/team/g.git#0123456789abcdef0123456789abcdef01234567' } }) },
      { 'client/vendor/t-1.0.0.tgz': 'not really gzip', 'client/package-lock.json': lockOf({ a: '^1.0.0' }, { 'node_modules/t': { version: '1.0.0', resolved: 'file:vendor/t-1.0.0.tgz' } }) },
    ]);
    const fromLive = await Promise.all(r.shas.map(async (sha) => (await dependencyInputs(r.dir, sha, env())).node.fromLive ?? false));
    expect(fromLive).toEqual([true, false, false, false, true, false, false, false, false, false, true]);
    // With release.dependency_inputs the install scripts' set is shared, but they may still edit node_modules in place.
    expect((await dependencyInputs(r.dir, r.shas[3]!, env({ dependency_inputs: ['client/patches'] }))).node.fromLive).toBeUndefined();
    // The sample app's.
    const app = join(mkdtempSync(join(tmpdir(), 'ops-depinputs-app-')), 'app');
    await makeAppRepo(app);
    expect((await dependencyInputs(app, git(app, 'rev-parse', 'v1^{commit}'), env())).node.fromLive).toBe(true);
  });

  it('a file: directory in a lockfileVersion 1 lockfile (npm 7 and later link it) is made for each release; a tarball counts by its file', async () => {
    const v1 = (deps: Record<string, { version: string }>) => JSON.stringify({ name: 'web', version: '1.0.0', lockfileVersion: 1, requires: true, dependencies: deps });
    const r = repoWith([
      { 'client/package.json': JSON.stringify({ name: 'web', dependencies: { mylib: 'file:../lib' } }), 'client/package-lock.json': v1({ mylib: { version: 'file:../lib' } }), 'lib/package.json': '{"name":"mylib"}' },
      { 'client/package.json': JSON.stringify({ name: 'web', dependencies: { mylib: 'file:../vendor/mylib-1.0.0.tgz' } }), 'client/package-lock.json': v1({ mylib: { version: 'file:../vendor/mylib-1.0.0.tgz' } }), 'vendor/mylib-1.0.0.tgz': 'one' },
      { 'vendor/mylib-1.0.0.tgz': 'two' },
    ]);
    const inputs = await Promise.all(r.shas.map((s) => dependencyInputs(r.dir, s, env())));
    expect(inputs[0]!.node.perRelease).toBe(
      'npm links or copies mylib → file:../lib into node_modules (a file: directory in a lockfileVersion 1 lockfile; npm 7 and later link it): the set points into the release directory',
    );
    expect(inputs[1]!.node.perRelease).toBeUndefined();
    expect(inputs[2]!.node.hash).not.toBe(inputs[1]!.node.hash);
  });

  it('a path release.dependency_inputs lists that the commit does not have is named so in the plan (a typo is not silent)', async () => {
    const r = repoWith([{ 'client/package-lock.json': lock({}), 'client/package.json': pkg({ postinstall: 'prisma generate' }), 'prisma/schema.prisma': 'model A {}' }]);
    const inputs = await dependencyInputs(r.dir, r.shas[0]!, env({ dependency_inputs: ['prisma/schema.prism', 'prisma/schema.prisma'] }));
    expect(inputs.node.files).toEqual(['client/package-lock.json', 'prisma/schema.prism (not in the commit)', 'prisma/schema.prisma']);
  });

  it('npm-shrinkwrap.json is read before package-lock.json, as npm ci does', async () => {
    const r = repoWith([
      { 'client/package-lock.json': lock({ 'node_modules/x': { version: '1.0.0' } }), 'client/package.json': pkg() },
      { 'client/npm-shrinkwrap.json': lock({ 'node_modules/x': { version: '2.0.0' } }) },
    ]);
    const h = await hashes(r, env(), 'node');
    expect(h[1]).not.toBe(h[0]);
    expect((await dependencyInputs(r.dir, r.shas[1]!, env())).node.files).toEqual(['client/npm-shrinkwrap.json']);
  });
});
