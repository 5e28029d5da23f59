// The dependency sets' steps (core/steps/app.ts; the node set's mostly, the Python set's first try of uv's cache at the
// end) run by bash on a scratch release. The node set's, with an
// `npm` standing in for npm ci's three outcomes seen on hosts: success (with npm's deprecation warnings), a
// failure (exit 1), and npm's own "success" after files it could not write while unpacking, reported only as
// `npm warn tar TAR_ENTRY_ERROR ENOSPC ...` warnings (npm/cli#3526, seen on a host whose /srv filled up during a
// deploy: the next deploy reused the half-written set and its client could not start).
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readlinkSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { scriptText } from '../../core/remote/wrap.ts';
import { APP_KEYS, nodeDependencies, npmrcIgnoredWarning, pythonDependencies } from '../../core/steps/app.ts';
import { parseReports } from '../../core/remote/types.ts';
import { PROVISION_MARK } from '../../core/packages.ts';
import { resolveTarget } from '../../core/target.ts';

const run = promisify(execFile);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

/** Run the node set's step with `npmBody` as npm (sh, run in node_dir); the set's directory and the outcome. */
async function nodeSet(npmBody: string): Promise<{ code: number; stderr: string; setDir: string }> {
  const base = mkdtempSync(join(tmpdir(), 'ops-nodeset-'));
  const release = join(base, 'releases', 'r1');
  mkdirSync(join(release, 'client'), { recursive: true });
  const npm = join(base, 'npm');
  writeFileSync(npm, `#!/bin/sh\n${npmBody}\n`);
  chmodSync(npm, 0o755);
  const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'run', port: 3000 } }, routes: { '/': 'web' }, release: { node_dir: 'client' } }, 'test');
  const t = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: base, url: 'http://x' });
  const step = nodeDependencies({ ...t, runtime: { ...t.runtime, npm } }, release, 'abcd');
  const r = await run('bash', ['-c', scriptText(step)], { encoding: 'utf8' }).then(
    (x) => ({ code: 0, stderr: x.stderr }),
    (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
  );
  return { ...r, setDir: join(t.layout.deps, 'node-abcd') };
}

describe('the node set (npm ci)', () => {
  it('a clean npm ci: the set is complete; its deprecation warnings are not shown', async () => {
    const r = await nodeSet(`mkdir -p node_modules/vite; echo 'npm warn deprecated inflight@1.0.6: leaks memory' >&2`);
    expect(r.code).toBe(0);
    expect(existsSync(join(r.setDir, '.complete'))).toBe(true);
    expect(existsSync(join(r.setDir, 'node_modules', 'vite'))).toBe(true);
    expect(r.stderr).not.toContain('deprecated');
    // Read-only once made: nothing in it (the set's directory, .complete included) has a write bit.
    expect((await run('find', [r.setDir, '-perm', '/222', '!', '-type', 'l'], { encoding: 'utf8' })).stdout).toBe('');
  });

  it("npm's exit 0 after TAR_ENTRY_ERROR warnings (a full disk): the step fails with npm's lines; the set is not complete", async () => {
    const r = await nodeSet(`mkdir -p node_modules/vite
echo "npm warn tar TAR_ENTRY_ERROR ENOSPC: no space left on device, open '$PWD/node_modules/vite/dist/node/cli.js'" >&2
exit 0`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/npm ci could not write every file of node_modules, though it exited 0 \(npm\/cli#3526\):\nnpm warn tar TAR_ENTRY_ERROR ENOSPC: no space left on device, open '.*cli\.js'/);
    expect(existsSync(join(r.setDir, '.complete'))).toBe(false);
  });

  it('npm ci failing: its error is shown, not its deprecation warnings; the set is not complete', async () => {
    const r = await nodeSet(`echo 'npm warn deprecated glob@7.2.3: old' >&2; echo 'npm error code ENOSPC' >&2; echo 'npm error syscall write' >&2; exit 1`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('npm error code ENOSPC\nnpm error syscall write');
    expect(r.stderr).not.toContain('deprecated');
    expect(existsSync(join(r.setDir, '.complete'))).toBe(false);
  });
});

describe("the node set with npm's links to the app's own packages (real npm, workspaces)", () => {
  it('the links point into the release by absolute path once node_modules is moved out: the package resolves from the release', async () => {
    const base = mkdtempSync(join(tmpdir(), 'ops-nodeset-ws-'));
    const release = join(base, 'releases', 'r1');
    const client = join(release, 'client');
    mkdirSync(join(client, 'packages', 'lib'), { recursive: true });
    writeFileSync(join(client, 'package.json'), JSON.stringify({ name: 'web', version: '1.0.0', private: true, workspaces: ['packages/*'], dependencies: { '@app/lib': '1.0.0' } }));
    writeFileSync(join(client, 'packages', 'lib', 'package.json'), JSON.stringify({ name: '@app/lib', version: '1.0.0', main: 'index.js', bin: { 'app-lib': 'index.js' } }));
    writeFileSync(join(client, 'packages', 'lib', 'index.js'), "module.exports = 'lib of r1';\n");
    // The lockfile, as a team commits it (npm, offline: nothing but the workspace to install).
    await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: client });
    await run('rm', ['-rf', join(client, 'node_modules')]);
    const npm = (await run('bash', ['-c', 'command -v npm'], { encoding: 'utf8' })).stdout.trim();
    const node = (await run('bash', ['-c', 'command -v node'], { encoding: 'utf8' })).stdout.trim();
    const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'run', port: 3000 } }, routes: { '/': 'web' }, release: { node_dir: 'client' } }, 'test');
    const t = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: base, url: 'http://x' });
    const step = nodeDependencies({ ...t, runtime: { ...t.runtime, npm, node } }, release, 'ws01');
    await run('bash', ['-c', scriptText(step)], { encoding: 'utf8', env: { ...process.env, npm_config_offline: 'true' } });
    const link = join(t.layout.deps, 'node-ws01', 'node_modules', '@app', 'lib');
    expect(readlinkSync(link)).toBe(join(realpathSync(client), 'packages', 'lib'));
    expect(lstatSync(join(client, 'node_modules')).isSymbolicLink()).toBe(true);
    const loaded = await run(node, ['-e', 'process.stdout.write(require(process.argv[1]))', '@app/lib'], { cwd: client, encoding: 'utf8' });
    expect(loaded.stdout).toBe('lib of r1');
    // The .bin links stay relative, inside node_modules.
    expect(readlinkSync(join(t.layout.deps, 'node-ws01', 'node_modules', '.bin', 'app-lib'))).toMatch(/^\.\.\//);
  }, 60_000);
});

describe('a reused set over a node_modules or venv the commit holds (a vendored package, a venv committed by mistake)', () => {
  it('the release links the set in its place: the committed directory does not hide it', async () => {
    const base = mkdtempSync(join(tmpdir(), 'ops-nodeset-committed-'));
    const release = join(base, 'releases', 'r2');
    mkdirSync(join(release, 'client', 'node_modules', 'left-pad'), { recursive: true });
    mkdirSync(join(release, 'venv', 'bin'), { recursive: true });
    const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'run', port: 3000 } }, routes: { '/': 'web' }, release: { node_dir: 'client' } }, 'test');
    const t = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: base, url: 'http://x' });
    // Sets an earlier release made, complete.
    mkdirSync(join(t.layout.deps, 'node-abcd', 'node_modules', 'vite'), { recursive: true });
    writeFileSync(join(t.layout.deps, 'node-abcd', '.complete'), '');
    mkdirSync(join(t.layout.deps, 'venv-abcd', 'bin'), { recursive: true });
    writeFileSync(join(t.layout.deps, 'venv-abcd', '.complete'), '');
    for (const step of [nodeDependencies(t, release, 'abcd'), pythonDependencies(t, release, 'abcd')]) {
      const r = await run('bash', ['-c', scriptText(step)], { encoding: 'utf8' });
      expect(r.stdout).toMatch(/reused/);
    }
    expect(lstatSync(join(release, 'client', 'node_modules')).isSymbolicLink()).toBe(true);
    expect(existsSync(join(release, 'client', 'node_modules', 'vite'))).toBe(true);
    expect(lstatSync(join(release, 'venv')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(release, 'venv'))).toBe(join(t.layout.deps, 'venv-abcd'));
  });
});

describe("the app user's ~/.npmrc: a registry npm is not given is said, not ignored in silence", () => {
  it('a hand-written registry= and any @scope:registry= are reported by key (never the URL); provision\'s registry= and credentials are not', async () => {
    const base = mkdtempSync(join(tmpdir(), 'ops-nodeset-npmrc-'));
    const release = join(base, 'releases', 'r1');
    mkdirSync(join(release, 'client'), { recursive: true });
    const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'run', port: 3000 } }, routes: { '/': 'web' }, release: { node_dir: 'client' } }, 'test');
    const t = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: base, url: 'http://x' });
    mkdirSync(join(t.layout.deps, 'node-abcd', 'node_modules'), { recursive: true });
    writeFileSync(join(t.layout.deps, 'node-abcd', '.complete'), '');
    // The app user's home, here a scratch directory in place of /home/shop.
    const home = join(base, 'home');
    mkdirSync(home);
    const ignored = async (npmrc: string) => {
      writeFileSync(join(home, '.npmrc'), npmrc);
      const r = await run('bash', ['-c', scriptText(nodeDependencies(t, release, 'abcd')).replaceAll('/home/shop/', `${home}/`)], { encoding: 'utf8' });
      expect(r.stdout).not.toContain('secret');
      return parseReports(r.stdout).filter(([k]) => k === APP_KEYS.npmrc_ignored).map(([, v]) => v);
    };
    const scoped = '@acme:registry=https://npm.acme.example/\n//npm.acme.example/:_authToken=secret\n';
    expect(await ignored(`registry = https://u:secret@mirror.example/\nomit=dev\n${scoped}`)).toEqual(['@acme:registry', 'registry']);
    expect(await ignored(`${PROVISION_MARK} (packages.npm_registry): do not edit on the host.\nregistry=https://registry.example/\n${scoped}`)).toEqual(['@acme:registry']);
    expect(await ignored('//npm.acme.example/:_authToken=secret\n')).toEqual([]);
    expect(npmrcIgnoredWarning(t, ['@acme:registry', 'registry'])).toBe(
      "@acme:registry, registry in /home/shop/.npmrc (written by hand) are not read by npm: npm ci and the build install from the registries the environment and the commit name; set the registry as packages.npm_registry in environments/test/environment.yml (then ops provision test: it writes ~/.npmrc); a scope's registry in the commit's client/.npmrc (its token stays in ~/.npmrc as //host/:_authToken=)",
    );
  });
});

describe('a node set made from the live one (npm install over hard links of its files)', () => {
  const lockfile = (deps: Record<string, string>) =>
    JSON.stringify({ name: 'web', version: '1.0.0', lockfileVersion: 3, packages: { '': { name: 'web', dependencies: deps }, ...Object.fromEntries(Object.entries(deps).map(([k, v]) => [`node_modules/${k}`, { version: v }])) } });
  /** npm as `npm install` leaves it: node_modules/<name>/package.json for each of `deps` and npm's hidden lockfile. */
  const tree = (deps: Record<string, string>) =>
    [
      'rm -rf node_modules/.package-lock.json',
      ...Object.entries(deps).map(([k, v]) => `mkdir -p node_modules/${k}; echo '{"version":"${v}"}' > node_modules/${k}/package.json`),
      `echo '${lockfile(deps)}' > node_modules/.package-lock.json`,
    ].join('\n');

  /**
   * A live release whose set (node-live: `live` packages, stamped `stamp` when given) is current, and a new release
   * whose lockfile asks for `want`; runs the step with npm doing `install` (over the live set's links) and `ci`.
   */
  async function fromLive(o: { live: Record<string, string>; want: Record<string, string>; stamp?: 'this node' | string; install: string }) {
    const base = mkdtempSync(join(tmpdir(), 'ops-nodeset-live-'));
    const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'run', port: 3000 } }, routes: { '/': 'web' }, release: { node_dir: 'client' } }, 'test');
    const t = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: base, url: 'http://x' });
    const node = (await run('bash', ['-c', 'command -v node'], { encoding: 'utf8' })).stdout.trim();
    const liveSet = join(t.layout.deps, 'node-live');
    mkdirSync(join(liveSet, 'node_modules'), { recursive: true });
    await run('bash', ['-c', tree(o.live)], { cwd: liveSet });
    writeFileSync(join(liveSet, '.complete'), '');
    // Read-only, as every set once made (dependencySet).
    await run('chmod', ['-R', 'a-w', liveSet]);
    const release = join(t.layout.releases, 'r1');
    mkdirSync(join(release, 'client'), { recursive: true });
    // node's version, platform, architecture, ABI, then npm's settings: the project's .npmrc and the one the step gives
    // npm in place of the host's (appEnvironment: of /home/shop/.npmrc, absent here, nothing; never the runner's ~/.npmrc)
    const nodeStamp = (await run(node, ['-p', 'process.version + " " + process.platform + " " + process.arch + " abi " + process.versions.modules'], { encoding: 'utf8' })).stdout.trim();
    const npmrc = (await run('bash', ['-c', '{ cat client/.npmrc 2>/dev/null || true; } | sha256sum | cut -c1-16'], { cwd: release, encoding: 'utf8' })).stdout.trim();
    const stamp = `${nodeStamp} npmrc ${npmrc}`;
    if (o.stamp) await run('bash', ['-c', 'chmod u+w "$1" && printf "%s\\n" "$2" > "$1/.from-live" && chmod a-w "$1" "$1/.from-live"', '-', liveSet, o.stamp === 'this node' ? stamp : o.stamp]);
    const liveRelease = join(t.layout.releases, 'r0');
    mkdirSync(join(liveRelease, 'client'), { recursive: true });
    symlinkSync(join(liveSet, 'node_modules'), join(liveRelease, 'client', 'node_modules'));
    symlinkSync(liveRelease, t.layout.current);
    writeFileSync(join(release, 'client', 'package-lock.json'), lockfile(o.want));
    const npm = join(base, 'npm');
    writeFileSync(npm, `#!/bin/sh\necho "$1" >> ${join(base, 'npm.log')}\ncase "$1" in\n  ci) ${tree(o.want).replace(/\n/g, '; ')} ;;\n  install) ${o.install.replace(/\n/g, '; ')} ;;\nesac\n`);
    chmodSync(npm, 0o755);
    const step = nodeDependencies({ ...t, runtime: { ...t.runtime, npm, node } }, release, 'new1', true);
    // The live set's files, their contents and modes (npm's bin-links chmods a bin's file: a link's would be the live one's).
    const look = `cd ${liveSet} && find . -type f | sort | xargs cat && find . ! -type l -printf '%p %m\\n' | sort`;
    const before = (await run('bash', ['-c', look], { encoding: 'utf8' })).stdout;
    const r = await run('bash', ['-c', scriptText(step)], { encoding: 'utf8' });
    const after = (await run('bash', ['-c', look], { encoding: 'utf8' })).stdout;
    const npmRuns = (await run('cat', [join(base, 'npm.log')], { encoding: 'utf8' }).catch(() => ({ stdout: '' }))).stdout.trim().split('\n');
    const newSet = join(t.layout.deps, 'node-new1');
    return { r, npmRuns, liveUnchanged: before === after, newSet, stamped: existsSync(join(newSet, '.from-live')) ? (await run('cat', [join(newSet, '.from-live')], { encoding: 'utf8' })).stdout.trim() === stamp : false };
  }

  it('a live set stamped for this node: npm install over its links; the new set is stamped, the live set unchanged', async () => {
    // As npm leaves them: the empty directories of packages it removed (a nested node_modules, an @scope).
    const install = `rm -rf node_modules/a\nmkdir -p node_modules/@gone node_modules/b/node_modules node_modules/b/lib/empty\n${tree({ a: '2.0.0', b: '1.0.0' })}`;
    const x = await fromLive({ live: { a: '1.0.0', b: '1.0.0' }, want: { a: '2.0.0', b: '1.0.0' }, stamp: 'this node', install });
    expect(x.npmRuns).toEqual(['install', 'rebuild']);
    expect(['@gone', 'b/node_modules', 'b/lib/empty'].map((d) => existsSync(join(x.newSet, 'node_modules', d)))).toEqual([false, false, true]);
    expect(x.r.stdout).toContain('npm install over hard links of the live set node-live');
    expect(x.liveUnchanged).toBe(true);
    expect(existsSync(join(x.newSet, '.complete')) && x.stamped).toBe(true);
    expect((await run('find', [x.newSet, '-perm', '/222', '!', '-type', 'l'], { encoding: 'utf8' })).stdout, 'the new set is read-only').toBe('');
  });

  it("npm install leaving another tree than the lockfile's (a package it kept, one at another version, one missing): made again by npm ci", async () => {
    for (const install of [tree({ a: '2.0.0', b: '1.0.0', c: '1.0.0' }), tree({ a: '1.0.0', b: '1.0.0' }), `rm -rf node_modules/b\n${tree({ a: '2.0.0' })}`, 'rm -f node_modules/.package-lock.json', 'exit 1']) {
      const x = await fromLive({ live: { a: '1.0.0', b: '1.0.0' }, want: { a: '2.0.0', b: '1.0.0' }, stamp: 'this node', install });
      expect(x.npmRuns, install).toEqual(install === 'exit 1' ? ['install', 'ci'] : ['install', 'rebuild', 'ci']);
      expect(x.r.stdout).not.toContain('over hard links');
      expect(x.r.stderr, install).toMatch(/the node set is not made from the live one \(node-live\): .+; npm ci makes it/);
      expect(existsSync(join(x.newSet, 'node_modules', 'c'))).toBe(false);
    }
  });

  it('a live set stamped for another node, or not stamped (made by an earlier version): npm ci', async () => {
    for (const stamp of ['v16.20.2 linux x64 abi 93', undefined]) {
      const x = await fromLive({ live: { a: '1.0.0' }, want: { a: '2.0.0' }, ...(stamp && { stamp }), install: 'exit 1' });
      expect(x.npmRuns).toEqual(['ci']);
      expect(x.stamped).toBe(true);
    }
  });
});

describe("the Python set made by uv, requirements pinned by hashes: uv's cache first, then the index", () => {
  /**
   * Runs the step with a uv that logs its arguments (and the settings it is told to read) and fails with --offline
   * when `cached` is false; `pyproject`: the release's pyproject.toml, `uvSettings`: the runner's SetInputs.uvSettings.
   */
  async function pythonSet(cached: boolean, hashes: boolean, commit: { pyproject?: string; uvSettings?: boolean; included?: boolean; uvLock?: string } = {}) {
    const base = mkdtempSync(join(tmpdir(), 'ops-pyset-'));
    const release = join(base, 'releases', 'r1');
    mkdirSync(release, { recursive: true });
    const pins = hashes ? 'ms==1.0 \\\n    --hash=sha256:00\n' : 'ms>=1.0\n';
    // `included`: the pins in a file the requirements include (-r), as pip-compile's output often is.
    writeFileSync(join(release, 'requirements.txt'), commit.included ? '-r base.txt\n' : pins);
    if (commit.included) writeFileSync(join(release, 'base.txt'), pins);
    if (commit.pyproject) writeFileSync(join(release, 'pyproject.toml'), commit.pyproject);
    const uv = join(base, 'uv');
    const log = join(base, 'uv.log');
    if (commit.uvLock) writeFileSync(join(release, 'uv.lock'), commit.uvLock);
    // uv export writes the pins the lock holds where -o says.
    writeFileSync(uv, `#!/bin/bash\necho "$*" >> ${log}\nif [ "$1" = export ]; then printf 'ms==1.0 --hash=sha256:00\\n' > "\${@: -1}"; exit 0; fi\necho "settings \${UV_NO_CONFIG:+no-config}\${UV_CONFIG_FILE:+file}\${XDG_CONFIG_DIRS:+xdg}" >> ${log}\nif [ "$1" = venv ]; then mkdir -p "\${@: -1}/bin"; exit 0; fi\n${cached ? '' : 'case " $* " in *" --offline "*) echo "error: Network connectivity is disabled" >&2; exit 2;; esac\n'}exit 0\n`);
    chmodSync(uv, 0o755);
    const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'run', port: 3000 } }, routes: { '/': 'web' } }, 'test');
    const t = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: base, url: 'http://x' });
    const r = await run('bash', ['-c', scriptText(pythonDependencies({ ...t, runtime: { ...t.runtime, uv } }, release, 'py01', commit.uvSettings, hashes, commit.uvLock === undefined ? undefined : 'uv.lock'))], { encoding: 'utf8', env: { ...process.env, HOME: base } });
    const logged = (await run('cat', [log], { encoding: 'utf8' })).stdout.trim().split('\n');
    const installs = logged.filter((l) => l.startsWith('pip install'));
    const settings = [...new Set(logged.filter((l) => l.startsWith('settings')).map((l) => l.slice('settings '.length)))];
    const set = join(t.layout.deps, 'venv-py01');
    return { r, logged, set, installs: installs.map((l) => (l.includes('--offline') ? 'offline' : 'index')), settings, complete: existsSync(join(set, '.complete')) };
  }

  it('all in the cache: one install, offline; a file missing from it: the index is asked; without hashes: the index only', async () => {
    expect(await pythonSet(true, true)).toMatchObject({ installs: ['offline'], complete: true });
    const missing = await pythonSet(false, true);
    expect(missing).toMatchObject({ installs: ['offline', 'index'], complete: true });
    expect(missing.r.stderr).not.toContain('Network connectivity is disabled');
    expect(await pythonSet(true, false)).toMatchObject({ installs: ['index'], complete: true });
    // The pins in an included file (the runner read it: SetInputs.hashed): hash-checking mode all the same.
    expect(await pythonSet(true, true, { included: true })).toMatchObject({ installs: ['offline'], complete: true });
  });

  it("a project locked by uv: the lock as it is (uv export --frozen, without the project and its dev group), into the set, then installed with its hashes, the cache first", async () => {
    const x = await pythonSet(true, true, { uvLock: 'version = 1\n' });
    expect(x).toMatchObject({ installs: ['offline'], complete: true });
    expect(x.logged).toContain(`export -q --frozen --format requirements-txt --no-emit-project --no-dev --no-header --project . -o ${x.set}/.uv-lock-requirements.txt`);
    expect(x.logged.find((l) => l.startsWith('pip install'))).toMatch(new RegExp(`--require-hashes --offline -r ${x.set}/\\.uv-lock-requirements\\.txt$`));
    // No requirements.txt is read, though the commit has one.
    expect(x.logged.join('\n')).not.toContain('-r requirements.txt');
  });

  it("reads no uv settings the runner did not find in the commit: a pyproject.toml naming tool.uv without the table makes uv search no directory above the release", async () => {
    const pyproject = '[project]\nname = "app"\n# uv: see tool.uv in the docs\n[tool.uvicorn]\nport = 1\n';
    expect(await pythonSet(true, false, { pyproject })).toMatchObject({ settings: ['no-config'], complete: true });
    // The commit's own (the runner read them): uv takes them from the release's root, over an empty system and user file.
    expect(await pythonSet(true, false, { pyproject: '[tool.uv]\nnative-tls = true\n', uvSettings: true })).toMatchObject({ settings: ['xdg'], complete: true });
  });
});
