// What a release's dependency sets are made from, on a real host (sshd, supervisor, nginx), through the layouts
// users have: a venv and node_modules are shared between releases by a hash of their inputs (shared/deps), so
// every input that changes what gets installed must change that hash, every set a kept release links to must
// survive the prune, and what a set holds must not point into another release's directory (which a prune
// removes). Each case deploys a change that touches only one such input and checks what serves, and that the
// live release's program still starts (supervisorctl restart, as after a reboot or a crash).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { quote } from '../../core/shell.ts';
import { downHost, npmRegistryUrl, pypiIndexUrl, sshRun, type Host } from '../hosts/index.ts';
import { commit, initRepo } from '../support/gitrepo.ts';
import { APP, get, makeProject, pythonWebApp, readyHost, webConfig, type TestProject } from './support.ts';

let host: Host;
let project: TestProject;
let repo: string;
const root = mkdtempSync(join(tmpdir(), 'ops-deps-'));
const base = `/srv/${APP}`;
/** On the host, as root. */
const onHost = async (command: string) => (await sshRun(host, `sudo bash -c ${quote(command)}`)).stdout.trim();

/** The next commit's tree is exactly `files` (everything else removed): each case its own repository layout. */
function layout(files: Record<string, string>, message: string): string {
  for (const entry of readdirSync(repo)) if (entry !== '.git') rmSync(join(repo, entry), { recursive: true, force: true });
  return commit(repo, files, message);
}

/** Deploy the repository's main with `release` (over the base) and `programs`; returns the release made live. */
async function deployWith(release: Record<string, unknown>, programs: Record<string, unknown>): Promise<string> {
  project.write(
    webConfig(host, repo, {
      release: { python_requirements: '', node_dir: '', build: 'true', migrate: 'true', keep: 1, ...release },
      programs,
      packages: { pip_index_url: pypiIndexUrl, npm_registry: npmRegistryUrl },
    }),
  );
  return (await deploy(project.ctx(), project.env(), { ref: 'main' })).release;
}

/** What answers through nginx once it starts with `prefix` (a switch or restart takes a moment), else the last answer. */
async function serves(prefix: string, seconds = 20): Promise<string> {
  let last = '';
  for (let i = 0; i < seconds * 5; i++) {
    last = await get(host).then((x) => `${x.status} ${x.body}`, (e: Error) => `no answer: ${e.message}`);
    if (last.startsWith(`200 ${prefix}`)) return last.slice(4);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return last;
}

/**
 * Restart every program under supervisor, as a reboot or a crash would, then what serves (see `serves`), and, when
 * that is not `prefix`, the last lines the programs wrote to stderr.
 */
async function afterRestart(prefix: string): Promise<string> {
  await onHost('supervisorctl restart all >/dev/null 2>&1 || true');
  const answer = await serves(prefix, 15);
  if (answer.startsWith(prefix)) return answer;
  return `${answer}\n--- programs' stderr:\n${await onHost(`tail -q -n 2 /var/log/${APP}/web-*.err.log 2>/dev/null || true`)}`;
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/**
 * An answer `<release> <says> from <file>` where the file is the live release's own `path`, or a copy in a dependency
 * set (shared/deps): never a file of another release (a prune removes those).
 */
const fromLiveRelease = (release: string, says: string, path: string) =>
  new RegExp(`^${escape(`${release} ${says} from `)}(${escape(`${base}/releases/${release}/${path}`)}|${escape(`${base}/shared/deps/`)}\\S+)$`);

/** Where `<base>/current/<path>` resolves to, or "(dangling: <its link>)". */
const resolves = (path: string) => onHost(`p=${quote(`${base}/current/${path}`)}; if [ -d "$p" ]; then readlink -f "$p"; else echo "(dangling: $(readlink "$p"))"; fi`);

// ---- Node apps: `node server.js <port>`, loading `ms` (from the lab's npm cache) and what else `extra` requires.
const MS_INTEGRITY = 'sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA==';

/**
 * server.js: answers `<OPS_RELEASE> ms:<ms(60000)>(<where>) <extra>` (`extra`: a JS expression evaluated once at
 * start). `where`: "set" when ms was loaded from a node set in shared/deps, else the file it was loaded from (Debian's
 * nodejs also finds modules in /usr/share/nodejs: a release without its node_modules may still start, with those).
 */
function nodeServer(extra = '""'): string {
  return `const http = require('http');
const fs = require('fs');
const ms = require(\`ms\`);
const msFile = fs.realpathSync(require.resolve('ms'));
const where = msFile.startsWith('${base}/shared/deps/node-') ? 'set' : msFile;
const extra = ${extra};
http.createServer((req, res) => {
  const body = process.env.OPS_RELEASE + ' ms:' + ms(60000) + '(' + where + ') ' + extra;
  res.writeHead(200, { 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}).listen(Number(process.argv[2]), '127.0.0.1');
`;
}

/** package.json and package-lock.json (v3, as npm 9 writes it) of a node app depending on ms 2.1.3, plus `more`. */
function nodePackage(
  name: string,
  more: { scripts?: Record<string, string>; workspaces?: string[]; dependencies?: Record<string, string>; lockEntries?: Record<string, unknown> } = {},
): { pkg: string; lock: string } {
  const dependencies = { ms: '2.1.3', ...more.dependencies };
  const workspaces = more.workspaces ? { workspaces: more.workspaces } : {};
  const root = { name, version: '1.0.0', ...workspaces, dependencies };
  const pkg = { name, version: '1.0.0', private: true, ...workspaces, ...(more.scripts ? { scripts: more.scripts } : {}), dependencies };
  const lock = {
    name,
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { ...root, ...(more.scripts?.postinstall ? { hasInstallScript: true } : {}) },
      ...more.lockEntries,
      'node_modules/ms': { version: '2.1.3', resolved: 'https://registry.npmjs.org/ms/-/ms-2.1.3.tgz', integrity: MS_INTEGRITY },
    },
  };
  return { pkg: `${JSON.stringify(pkg, null, 2)}\n`, lock: `${JSON.stringify(lock, null, 2)}\n` };
}

const nodeProgram = (directory: string) => ({ web: { command: '{node} server.js {port}', directory, port: 5100, health: '/health', env: {} } });

// ---- Python apps: `venv/bin/python server.py <port>`, answering `<OPS_RELEASE> <SAYS>` (SAYS set once at start).
const pythonServer = (prelude: string) => pythonWebApp('os.environ["OPS_RELEASE"] + " " + SAYS', prelude);
const pythonProgram = { web: { command: '{release}/venv/bin/python server.py {port}', port: 5100, health: '/health', env: {} } };

/** A small local Python package `mylib` (setuptools build backend) whose module says `word`. */
const localPackage = (word: string) => ({
  'lib/pyproject.toml': '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n[project]\nname = "mylib"\nversion = "1.0.0"\n',
  'lib/mylib/__init__.py': `WORD = ${JSON.stringify(word)}\n`,
});
const mylibServer = pythonServer('import mylib\nSAYS = mylib.WORD + " from " + os.path.realpath(mylib.__file__)');

/** api/uv.lock as uv 0.13 writes it for a virtual project depending on packaging>=26.3, locked at `version`. */
function uvLock(version: '26.3' | '26.4'): string {
  const files = {
    '26.3': ['7d/fa/3944b40b07da9ce895c0e6303a5ab7d53da063554f534556b134a54d6093', '94edc256424af38762eb31306eed28beb9f0efc50a8837492c9d6fd6004aed79', 313412, '2026-08-04T18:15:28.737Z', '63/34/ba1c580383c9eada3711951fef0795c80b829a078d72188184bcab9dd527', 'd7193f7c8e4e93f444fde0262bf90af30e16fa0ad0ad44cb553c87339b23cd1c', 129956, '2026-08-04T18:15:27.159Z'],
    '26.4': ['c3/75/ffb1dc0ed12352139fb4ca0e3fde4325a23e3d0f3f40efe89717bc4f557b', 'c4b671c41ddb9bf26e543c37723610d28fb6bf7affc4da17cf048d419d2c062a', 355877, '2026-11-23T21:44:11Z', 'ba/7b/5504f91c9c2733f693d7759e50ede5d27119d4da7e5836c46d3b5ff81d56', '81383611a09c1bc0b08b76e0fd5829d7c6824c65b27a6aee339da133f4233ea2', 140049, '2026-11-23T21:44:09Z'],
  } as const;
  const [sdistDir, sdistHash, sdistSize, sdistTime, wheelDir, wheelHash, wheelSize, wheelTime] = files[version];
  return `version = 1
revision = 5
requires-python = ">=3.10"

[[package]]
name = "app"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "packaging" },
]

[package.metadata]
requires-dist = [{ name = "packaging", specifier = ">=26.3" }]

[[package]]
name = "packaging"
version = "${version}"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/packages/${sdistDir}/packaging-${version}.tar.gz", hash = "sha256:${sdistHash}", size = ${sdistSize}, upload-time = "${sdistTime}" }
wheels = [
    { url = "https://files.pythonhosted.org/packages/${wheelDir}/packaging-${version}-py3-none-any.whl", hash = "sha256:${wheelHash}", size = ${wheelSize}, upload-time = "${wheelTime}" },
]
`;
}

beforeAll(async () => {
  host = await readyHost('k3d');
  repo = join(root, 'app');
  initRepo(repo, { 'README': 'dependency inputs\n' });
  project = makeProject('e2e', webConfig(host, repo));
}, 900_000);

afterAll(async () => {
  if (host) await downHost(host.name, { purge: true });
  project?.cleanup();
  rmSync(root, { recursive: true, force: true });
});

describe.sequential('what a dependency set is made from, on a real host', () => {
  for (const dir of ['.', 'apps/web']) {
    it(`the node set of node_dir "${dir}" outlives the deploy that made it: the live release's node_modules exists and its program starts again after a restart`, async () => {
      const { pkg, lock } = nodePackage('web');
      const prefix = dir === '.' ? '' : `${dir}/`;
      layout({ [`${prefix}package.json`]: pkg, [`${prefix}package-lock.json`]: lock, [`${prefix}server.js`]: nodeServer() }, `node app in ${dir}`);
      const release = await deployWith({ node_dir: dir }, nodeProgram(dir));
      expect(await serves(release)).toBe(`${release} ms:1m(set) `);
      expect.soft(await resolves(`${prefix}node_modules`), 'the live release links to an existing node set').toMatch(new RegExp(`^${base}/shared/deps/node-[0-9a-f]+/node_modules$`));
      expect(await afterRestart(release), 'the live release still starts').toBe(`${release} ms:1m(set) `);
    }, 600_000);
  }

  it("a native addon whose install script downloads from a host the hosts cannot reach, then compiles without a compiler (bcrypt 5): the deploy fails naming the package, the host and the fixes; the live release stays", async () => {
    const addon = join(import.meta.dirname, '..', 'fixtures', 'node-addon');
    layout(
      { 'package.json': readFileSync(join(addon, 'package.json'), 'utf8'), 'package-lock.json': readFileSync(join(addon, 'package-lock.json'), 'utf8'), 'server.js': nodeServer("typeof require('bcrypt').hashSync") },
      'node app with bcrypt 5.1.1 (node-pre-gyp)',
    );
    const live = await onHost(`readlink ${base}/current || true`);
    const failure = await deployWith({ node_dir: '.' }, nodeProgram('.')).then(
      (r) => `deployed ${r}`,
      (e: Error & { hint?: string }) => `${e.message}\n${e.hint ?? ''}`,
    );
    expect(failure).toContain('step "node dependencies"');
    expect(failure).toContain("bcrypt's install script (node-pre-gyp install --fallback-to-build) failed: it downloads a prebuilt binary from github.com, which the host could not reach; then it compiles the addon, and the host lacks a C/C++ compiler (cc, g++); fix: ");
    expect(await onHost(`readlink ${base}/current || true`), 'the live release stays').toBe(live);
  }, 600_000);

  it('a change to a file requirements.txt includes (-r) is installed', async () => {
    const files = (version: string) => ({
      'requirements.txt': '-r requirements/base.txt\n',
      'requirements/base.txt': `packaging==${version}\n`,
      'server.py': pythonServer('import importlib.metadata\nSAYS = "packaging " + importlib.metadata.version("packaging")'),
    });
    layout(files('26.3'), 'python app, packaging 26.3 in requirements/base.txt');
    const first = await deployWith({ python_requirements: 'requirements.txt' }, pythonProgram);
    expect(await serves(first)).toBe(`${first} packaging 26.3`);
    commit(repo, files('26.4'), 'packaging 26.4 (requirements/base.txt only)');
    const second = await deployWith({ python_requirements: 'requirements.txt' }, pythonProgram);
    expect(await serves(second)).toBe(`${second} packaging 26.4`);
  }, 600_000);

  // A uv project (uv init + uv add), as uv writes its files: the set is what uv.lock pins (packaging 26.3 while the
  // index has 26.4, which pyproject.toml's ">=26.3" would resolve to), a lock bump alone is deployed, and a lock out
  // of step with pyproject.toml is refused before any host.
  it('a uv project (pyproject.toml + uv.lock in api/) installs what uv.lock pins; a lock bump alone is installed; a stale lock is refused', async () => {
    const pyproject = (deps: string) => `[project]\nname = "app"\nversion = "0.1.0"\nrequires-python = ">=3.10"\ndependencies = [${deps}]\n`;
    const files = (version: '26.3' | '26.4') => ({ 'api/pyproject.toml': pyproject('"packaging>=26.3"'), 'api/uv.lock': uvLock(version), 'server.py': pythonServer('import importlib.metadata\nSAYS = "packaging " + importlib.metadata.version("packaging")') });
    layout(files('26.3'), 'uv project locking packaging 26.3');
    const first = await deployWith({ python_requirements: 'api/pyproject.toml' }, pythonProgram);
    expect(await serves(first), 'the locked version, not the newest the range allows').toBe(`${first} packaging 26.3`);
    commit(repo, { 'api/uv.lock': uvLock('26.4') }, 'uv lock --upgrade-package packaging (uv.lock only)');
    const second = await deployWith({ python_requirements: 'api/uv.lock' }, pythonProgram);
    expect(await serves(second), 'the lock bump alone is deployed').toBe(`${second} packaging 26.4`);
    commit(repo, { 'api/pyproject.toml': pyproject('"packaging>=26.3", "six"') }, 'uv add six without uv lock');
    await expect(deployWith({ python_requirements: 'api/pyproject.toml' }, pythonProgram)).rejects.toThrow(/api\/uv\.lock is out of step with api\/pyproject\.toml[^]*six is in pyproject\.toml's dependencies, not in the lock[^]*fix: run `uv lock` in api/);
  }, 600_000);

  // pip and uv read `-e lib` (a bare directory) as `-e ./lib`.
  for (const spelling of ['-e ./lib', '-e lib']) it(`an editable local package (${spelling}): a change to its code is what serves, imported from the live release, which keeps starting once the release the venv was first made in is pruned`, async () => {
    const files = (word: string) => ({ 'requirements.txt': `${spelling}\n`, 'server.py': mylibServer, ...localPackage(word) });
    layout(files('one'), 'python app with an editable local package saying one');
    const first = await deployWith({ python_requirements: 'requirements.txt' }, pythonProgram);
    expect(await serves(first)).toMatch(fromLiveRelease(first, 'one', 'lib/mylib/__init__.py'));
    commit(repo, files('two'), 'the local package says two (lib/ only)');
    const second = await deployWith({ python_requirements: 'requirements.txt' }, pythonProgram);
    expect.soft(await serves(second), 'the change to lib/ serves, from the live release').toMatch(fromLiveRelease(second, 'two', 'lib/mylib/__init__.py'));
    // A third release (app code only); keep: 1 → the live one, the warm one (the second) and nothing else are kept.
    commit(repo, { 'server.py': `${mylibServer}# third\n` }, 'app code only');
    const third = await deployWith({ python_requirements: 'requirements.txt' }, pythonProgram);
    expect(await onHost(`ls ${base}/releases`), 'the first release was pruned').not.toContain(first);
    expect(await afterRestart(third), 'the live release still starts').toMatch(fromLiveRelease(third, 'two', 'lib/mylib/__init__.py'));
  }, 900_000);

  it('a change to the code of a local package installed by path (./lib, not editable) is installed', async () => {
    const files = (word: string) => ({ 'requirements.txt': './lib\n', 'server.py': mylibServer, ...localPackage(word) });
    layout(files('one'), 'python app with a local package (not editable) saying one');
    const first = await deployWith({ python_requirements: 'requirements.txt' }, pythonProgram);
    expect(await serves(first)).toMatch(new RegExp(`^${first} one from ${base}/shared/deps/venv-[0-9a-f]+/lib/python3[.0-9]+/site-packages/mylib/__init__.py$`));
    commit(repo, files('two'), 'the local package says two (lib/ only)');
    const second = await deployWith({ python_requirements: 'requirements.txt' }, pythonProgram);
    expect(await serves(second)).toMatch(new RegExp(`^${second} two from `));
  }, 600_000);

  it("a change to a file read by the node app's own install script (postinstall writing into node_modules) is installed", async () => {
    // As patch-package or `prisma generate` do: a root lifecycle script generates code into node_modules from the repository.
    const gen = `const fs = require('fs');
const greeting = fs.readFileSync('greeting.txt', 'utf8').trim();
fs.mkdirSync('node_modules/.generated', { recursive: true });
fs.writeFileSync('node_modules/.generated/greeting.js', 'module.exports = ' + JSON.stringify(greeting) + ';\\n');
`;
    const { pkg, lock } = nodePackage('client', { scripts: { postinstall: 'node scripts/gen.js' } });
    const files = (greeting: string) => ({
      'client/package.json': pkg,
      'client/package-lock.json': lock,
      'client/scripts/gen.js': gen,
      'client/greeting.txt': `${greeting}\n`,
      'client/server.js': nodeServer("require('./node_modules/.generated/greeting.js')"),
    });
    layout(files('hello one'), 'node app generating its greeting at install');
    const first = await deployWith({ node_dir: 'client' }, nodeProgram('client'));
    expect(await serves(first)).toBe(`${first} ms:1m(set) hello one`);
    commit(repo, { 'client/greeting.txt': 'hello two\n' }, 'greeting two (the postinstall input only; lockfile unchanged)');
    const second = await deployWith({ node_dir: 'client' }, nodeProgram('client'));
    expect(await serves(second)).toBe(`${second} ms:1m(set) hello two`);
  }, 600_000);

  it("a new node set is made from the live one (npm install over hard links of its files): it holds the lockfile's tree, the live set keeps its files, and one made by another node is not used", async () => {
    const integrity: Record<string, string> = {
      'ms@2.1.3': MS_INTEGRITY,
      'ms@2.1.2': 'sha512-sGkPx+VjMtmA6MX27oA4FBFELFCZZ4S4XqeGOXCv68tT+jb3vk/RyaKWP0PTKyWtmLSM0b+adUTEvbs1PEaH2w==',
      'escape-html@1.0.3': 'sha512-NiSupZ4OeuGwr68lGIeym/ksIZMJodUGOSCZ/FSnTxcrekbvqrgdUxlJOMpijaKZVjAJrWrGs/6Jy8OMuyj9ow==',
      'inherits@2.0.4': 'sha512-k/vGaX4/Yla3WzyMCvTQOXYeIHvqOKtnqBduzTHpzpQZzAskKMhZ2K+EnBiSM9zGSoIFeMpXKxa4dYeZIQqewQ==',
    };
    // package.json and its lockfile (v3, as npm writes it) for `deps` (name → version).
    const files = (deps: Record<string, string>) => {
      const root = { name: 'client', version: '1.0.0', dependencies: deps };
      const packages: Record<string, unknown> = { '': root };
      for (const [name, version] of Object.entries(deps))
        packages[`node_modules/${name}`] = { version, resolved: `https://registry.npmjs.org/${name}/-/${name}-${version}.tgz`, integrity: integrity[`${name}@${version}`] };
      return {
        'client/package.json': `${JSON.stringify({ ...root, private: true }, null, 2)}\n`,
        'client/package-lock.json': `${JSON.stringify({ name: 'client', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2)}\n`,
        'client/server.js': nodeServer(`[require(\`ms/package.json\`).version, ...['escape-html', 'inherits'].filter((m) => { try { return require.resolve(m); } catch { return false; } })].join(' ')`),
      };
    };
    const setOf = async () => (await resolves('client/node_modules')).replace(/\/node_modules$/, '');
    // The set's files and their contents (a change to the live set's files shows here), and its packages.
    const digest = (set: string) => onHost(`cd ${quote(set)} && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum`);
    const packagesIn = (set: string) => onHost(`ls -A ${quote(`${set}/node_modules`)} | grep -v '^\\.bin$' | tr '\\n' ' '`);
    const inode = (file: string) => onHost(`stat -c %i ${quote(file)}`);

    layout(files({ ms: '2.1.3', 'escape-html': '1.0.3', inherits: '2.0.4' }), 'node app: ms 2.1.3, escape-html, inherits');
    const first = await deployWith({ node_dir: 'client', keep: 2 }, nodeProgram('client'));
    expect(await serves(first)).toBe(`${first} ms:1m(set) 2.1.3 escape-html inherits`);
    const firstSet = await setOf();
    const before = await digest(firstSet);

    // ms changes version, escape-html goes, inherits stays.
    commit(repo, files({ ms: '2.1.2', inherits: '2.0.4' }), 'ms 2.1.2, no escape-html');
    const second = await deployWith({ node_dir: 'client', keep: 2 }, nodeProgram('client'));
    expect(await serves(second)).toBe(`${second} ms:1m(set) 2.1.2 inherits`);
    const secondSet = await setOf();
    expect(secondSet).not.toBe(firstSet);
    expect(await packagesIn(secondSet), "only the lockfile's packages (escape-html removed)").toBe('.package-lock.json inherits ms');
    expect(await onHost(`cat ${quote(`${secondSet}/node_modules/ms/package.json`)} | grep '"version"'`)).toContain('2.1.2');
    expect(await inode(`${secondSet}/node_modules/inherits/inherits.js`), 'the unchanged package is linked, not unpacked again').toBe(await inode(`${firstSet}/node_modules/inherits/inherits.js`));
    expect(await digest(firstSet), "the live set's files were not written").toBe(before);
    expect(await packagesIn(firstSet)).toBe('.package-lock.json escape-html inherits ms');
    expect(await afterRestart(second), 'the live release still starts').toBe(`${second} ms:1m(set) 2.1.2 inherits`);

    // A live set made by another node or npm (its stamp differs) is not a source: npm ci makes the next set.
    await onHost(`echo 'v0.0.0 linux x64 abi 0' > ${quote(`${secondSet}/.from-live`)}`);
    commit(repo, files({ ms: '2.1.3', inherits: '2.0.4' }), 'ms 2.1.3 again');
    const third = await deployWith({ node_dir: 'client', keep: 2 }, nodeProgram('client'));
    expect(await serves(third)).toBe(`${third} ms:1m(set) 2.1.3 inherits`);
    const thirdSet = await setOf();
    expect(await inode(`${thirdSet}/node_modules/inherits/inherits.js`), 'unpacked by npm ci, not linked').not.toBe(await inode(`${secondSet}/node_modules/inherits/inherits.js`));
  }, 600_000);

  it("a dependency set is read-only: a build appending to a file of a reused set, or of a set made from the live one (hard links), fails to write it; the live set's files stay as they were and the live release starts again", async () => {
    const INHERITS = 'sha512-k/vGaX4/Yla3WzyMCvTQOXYeIHvqOKtnqBduzTHpzpQZzAskKMhZ2K+EnBiSM9zGSoIFeMpXKxa4dYeZIQqewQ==';
    const plain = nodePackage('web');
    const more = nodePackage('web', { dependencies: { inherits: '2.0.4' }, lockEntries: { 'node_modules/inherits': { version: '2.0.4', resolved: 'https://registry.npmjs.org/inherits/-/inherits-2.0.4.tgz', integrity: INHERITS } } });
    const app = (p: { pkg: string; lock: string }, says: string) => ({ 'package.json': p.pkg, 'package-lock.json': p.lock, 'server.js': nodeServer(JSON.stringify(says)) });
    const setOf = async () => (await resolves('node_modules')).replace(/\/node_modules$/, '');
    const sum = (file: string) => onHost(`sha256sum < ${quote(file)}`);
    const digest = (set: string) => onHost(`cd ${quote(set)} && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum`);
    const append = 'echo "module.exports = () => \'tampered\';" >> node_modules/ms/index.js';

    layout(app(plain, 'one'), 'node app saying one');
    const first = await deployWith({ node_dir: '.', keep: 3 }, nodeProgram('.'));
    expect(await serves(first)).toBe(`${first} ms:1m(set) one`);
    const liveSet = await setOf();
    const msBefore = await sum(`${liveSet}/node_modules/ms/index.js`);
    const before = await digest(liveSet);
    expect.soft(await onHost(`find ${quote(liveSet)} -perm /222 ! -type l | head -n 3`), 'nothing in the set is writable').toBe('');

    // The set reused; the build's write fails, and so does the build (bash's set -e): the deploy fails, with a hint.
    commit(repo, { 'server.js': nodeServer('"two"') }, 'says two');
    const failed = await deployWith({ node_dir: '.', keep: 3, build: append }, nodeProgram('.')).then(() => undefined, (e: Error & { hint?: string }) => e);
    expect(failed?.message, 'the build failed').toMatch(/step "build".*failed/);
    expect(failed?.hint).toMatch(/dependency set.*read-only/);
    expect(await sum(`${liveSet}/node_modules/ms/index.js`), "the live set's file is byte-identical").toBe(msBefore);
    expect(await afterRestart(first), 'the live release starts again as it was').toBe(`${first} ms:1m(set) one`);

    // A build that ignores its failed write (exit 0): the release goes live, the set as it was.
    const second = await deployWith({ node_dir: '.', keep: 3, build: `${append} 2>/dev/null || true` }, nodeProgram('.'));
    expect(await setOf()).toBe(liveSet);
    expect(await sum(`${liveSet}/node_modules/ms/index.js`)).toBe(msBefore);
    expect(await afterRestart(second)).toBe(`${second} ms:1m(set) two`);

    // A new set made from the live one: its ms/index.js is the live one's inode (hard link), read-only too.
    commit(repo, app(more, 'three'), 'adds inherits, says three');
    const third = await deployWith({ node_dir: '.', keep: 3, build: `${append} 2>/dev/null || true` }, nodeProgram('.'));
    const newSet = await setOf();
    expect(newSet).not.toBe(liveSet);
    expect(await onHost(`stat -c %i ${quote(`${newSet}/node_modules/ms/index.js`)}`), 'made from the live set (linked)').toBe(await onHost(`stat -c %i ${quote(`${liveSet}/node_modules/ms/index.js`)}`));
    expect(await digest(liveSet), "the former live set's files were not written").toBe(before);
    expect(await sum(`${newSet}/node_modules/ms/index.js`)).toBe(msBefore);
    expect.soft(await onHost(`find ${quote(newSet)} -perm /222 ! -type l | head -n 3`), 'nothing in the new set is writable').toBe('');
    expect(await afterRestart(third)).toBe(`${third} ms:1m(set) three`);
  }, 600_000);

  // npm links a `file:` directory (install-links=false, npm 7-8 and 9.4+) or packs a copy of it (install-links=true,
  // npm 9.0-9.3, Debian bookworm's 9.2): either way the package's code is in no lockfile.
  it('a change to the code of a local package npm installs from a file: dependency (file:../lib) is what serves', async () => {
    const { pkg, lock } = nodePackage('client', {
      dependencies: { mylib: 'file:../lib' },
      lockEntries: { '../lib': { name: 'mylib', version: '1.0.0' }, 'node_modules/mylib': { resolved: '../lib', link: true } },
    });
    const files = (word: string) => ({
      'client/package.json': pkg,
      'client/package-lock.json': lock,
      'client/server.js': nodeServer("require(`mylib`) + ' from ' + require('fs').realpathSync(require.resolve('mylib'))"),
      'lib/package.json': `${JSON.stringify({ name: 'mylib', version: '1.0.0', main: 'index.js' })}\n`,
      'lib/index.js': `module.exports = ${JSON.stringify(word)};\n`,
    });
    layout(files('one'), 'node app with a local package by file: saying one');
    const first = await deployWith({ node_dir: 'client' }, nodeProgram('client'));
    expect.soft(await onHost(`readlink -e ${base}/current/client/node_modules/mylib || echo "dangling: $(ls -l ${base}/current/client/node_modules/mylib)"`)).not.toContain('dangling');
    expect(await serves(first)).toMatch(new RegExp(`^${first} ms:1m\\(set\\) one from `));
    commit(repo, { 'lib/index.js': 'module.exports = "two";\n' }, 'the local package says two (lib/ only)');
    const second = await deployWith({ node_dir: 'client' }, nodeProgram('client'));
    expect(await serves(second)).toMatch(new RegExp(`^${second} ms:1m\\(set\\) two from `));
  }, 600_000);

  it('an npm workspace package (linked into node_modules by npm) resolves from the live release, and a change to its code is what serves', async () => {
    const { pkg, lock } = nodePackage('client', {
      workspaces: ['packages/*'],
      lockEntries: { 'node_modules/mylib': { resolved: 'packages/mylib', link: true }, 'packages/mylib': { version: '1.0.0' } },
    });
    const files = (word: string) => ({
      'client/package.json': pkg,
      'client/package-lock.json': lock,
      'client/server.js': nodeServer("require(`mylib`) + ' from ' + require('fs').realpathSync(require.resolve('mylib'))"),
      'client/packages/mylib/package.json': `${JSON.stringify({ name: 'mylib', version: '1.0.0', main: 'index.js' })}\n`,
      'client/packages/mylib/index.js': `module.exports = ${JSON.stringify(word)};\n`,
    });
    layout(files('one'), 'node app with a workspace package saying one');
    let first = '';
    const failure = await deployWith({ node_dir: 'client' }, nodeProgram('client')).then(
      (r) => ((first = r), ''),
      (e: Error & { hint?: string }) => `${e.message}\n${e.hint ?? ''}`,
    );
    // npm's link to the workspace (relative: ../packages/mylib), in every node set there is.
    const links = await onHost(`for l in ${base}/shared/deps/node-*/node_modules/mylib; do if [ -L "$l" ]; then echo "$l -> $(readlink "$l") $(readlink -e "$l" >/dev/null || echo dangling)"; fi; done`);
    expect.soft(links, "npm's links into the repository resolve").not.toContain('dangling');
    expect(failure, 'the deploy succeeds').toBe('');
    expect(await serves(first)).toMatch(fromLiveRelease(first, 'ms:1m(set) one', 'client/packages/mylib/index.js'));
    commit(repo, { 'client/packages/mylib/index.js': 'module.exports = "two";\n' }, 'the workspace package says two (its code only)');
    const second = await deployWith({ node_dir: 'client' }, nodeProgram('client'));
    expect(await serves(second)).toMatch(fromLiveRelease(second, 'ms:1m(set) two', 'client/packages/mylib/index.js'));
  }, 600_000);
});
