// The commit checked against the release settings before any host is touched (core/preflight.ts), on real git
// repositories shaped like the faults a tester met with a real app: a requirements file, node_dir or npm lockfile
// the commit lacks, `make build` without a Makefile, a program directory nobody makes, a Python lockfile the
// install does not read.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadEnvironment } from '../../core/config/environment.ts';
import type { OpsContext } from '../../core/context.ts';
import { OpsError } from '../../core/errors.ts';
import { git } from '../../core/git.ts';
import { deploy } from '../../core/ops/deploy.ts';
import { preflight, preflightError } from '../../core/preflight.ts';
import { RecordingRemote } from '../../core/remote/recording.ts';
import { MemoryReporter } from '../../core/report.ts';
import { treeContent } from '../../core/tree-content.ts';
import { initRepo } from '../support/gitrepo.ts';
import { TEST_HOST_KEY, scratchProject } from './project.helpers.ts';

const MAKEFILE = '.PHONY: build migrate\nbuild:\n\tcd client && npm run build\n\nmigrate:\n\tvenv/bin/alembic upgrade head\n';

/** An app that fits the default settings: requirements.txt, client/ with npm's lockfile, a Makefile with build and migrate. */
const GOOD: Record<string, string> = {
  'requirements.txt': 'flask==3.0.0\n',
  'client/package.json': '{"name": "client", "version": "1.0.0"}\n',
  'client/package-lock.json': '{"name": "client", "lockfileVersion": 3, "packages": {"": {"name": "client", "version": "1.0.0"}}}\n',
  Makefile: MAKEFILE,
  'server/app.py': 'print("hi")\n',
};

/** A project holding environment `x` (settings beside the defaults) deploying a new repository of `files`. */
function project(files: Record<string, string | undefined>, settings: Record<string, unknown> = {}) {
  const root = mkdtempSync(join(tmpdir(), 'ops-preflight-'));
  const repo = join(root, 'app');
  const sha = initRepo(repo, Object.fromEntries(Object.entries(files).filter((e): e is [string, string] => e[1] !== undefined)));
  mkdirSync(join(root, 'environments', 'x'), { recursive: true });
  writeFileSync(join(root, 'package.json'), '{}');
  const config = {
    app: 'sample',
    ref: 'main',
    repository: repo,
    hosts: [{ name: 'web1', address: '192.0.2.1', host_key: TEST_HOST_KEY }],
    programs: { server: { command: 'run', port: 3579, health: '/health' }, client: { command: 'run', port: 3000 } },
    ...settings,
  };
  writeFileSync(join(root, 'environments', 'x', 'environment.yml'), stringify(config));
  return { root, repo, sha, env: loadEnvironment('x', root) };
}

async function check(files: Record<string, string | undefined>, settings: Record<string, unknown> = {}) {
  const p = project(files, settings);
  return preflight(p.repo, p.sha, p.env, await treeContent(p.repo, p.sha));
}

describe('preflight of a commit against the release settings', () => {
  it('a file name longer than the hosts take (255 bytes: 150 accented letters, as macOS lets one be committed): refused before any host, unless export-ignored', async () => {
    const p = project(GOOD);
    // Made as git stores it: this machine's filesystem could not hold the file either.
    const name = `${'é'.repeat(150)}.txt`;
    const blob = (await git(p.repo, ['hash-object', '-w', '--stdin'], { input: 'x\n' })).trim();
    await git(p.repo, ['update-index', '--add', '--cacheinfo', `100644,${blob},docs/${name}`]);
    await git(p.repo, ['commit', '-qm', 'a long name']);
    const sha = (await git(p.repo, ['rev-parse', 'HEAD'])).trim();
    const r = await preflight(p.repo, sha, p.env, await treeContent(p.repo, sha));
    expect(r.problems).toEqual([
      `commit ${sha.slice(0, 12)} has 1 path with a name longer than 255 bytes, which the hosts' filesystems cannot hold (the release would fail to unpack): ${JSON.stringify(`docs/${name}`)}\n  fix: rename it shorter (a name made on macOS may hold 255 characters, several bytes each in UTF-8), or mark it export-ignore in .gitattributes if the release does not need it`,
    ]);
    const attrs = (await git(p.repo, ['hash-object', '-w', '--stdin'], { input: 'docs/ export-ignore\n' })).trim();
    await git(p.repo, ['update-index', '--add', '--cacheinfo', `100644,${attrs},.gitattributes`]);
    await git(p.repo, ['commit', '-qm', 'docs left out']);
    const ignored = (await git(p.repo, ['rev-parse', 'HEAD'])).trim();
    expect((await preflight(p.repo, ignored, p.env, await treeContent(p.repo, ignored))).problems).toEqual([]);
  });

  it('passes a commit that fits the default settings, with nothing to say', async () => {
    expect(await check(GOOD)).toEqual({ problems: [], warnings: [] });
  });

  it('refuses a requirements file the commit lacks (the default requirements.txt, an app with pyproject.toml), saying what it has instead', async () => {
    const r = await check({ ...GOOD, 'requirements.txt': undefined, 'pyproject.toml': '[project]\nname = "x"\ndependencies = ["flask"]\n', 'requirements.in': 'flask\n' });
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toMatch(/^release\.python_requirements requirements\.txt is not in commit [0-9a-f]{12}: the deploy would make an empty venv; found instead: requirements\.in, pyproject\.toml\n {2}fix: /);
    expect(r.problems[0]).toContain('compile requirements.in to a pinned requirements file (`uv pip compile requirements.in -o requirements.txt`), commit it');
    expect(r.problems[0]).toContain('set release.python_requirements to "" for no Python');
  });

  it('names the requirements files the commit has when the one set is missing (requirements/prod.txt)', async () => {
    const r = await check({ ...GOOD, 'requirements.txt': undefined, 'requirements/base.txt': 'flask\n' }, { release: { python_requirements: 'requirements/prod.txt' } });
    expect(r.problems).toEqual([expect.stringMatching(/^release\.python_requirements requirements\/prod\.txt is not in commit .*found instead: requirements\/base\.txt\n {2}fix: point release\.python_requirements at requirements\/base\.txt/)]);
  });

  it('only warns of a missing requirements file when the commit declares no Python dependencies at all (an app without Python made an empty venv, and still deploys)', async () => {
    const r = await check({ ...GOOD, 'requirements.txt': undefined });
    expect(r).toEqual({ problems: [], warnings: [expect.stringMatching(/^release\.python_requirements requirements\.txt is not in commit [0-9a-f]{12}, nor any Python project file: the venv is made empty; set release\.python_requirements to "" if the app has no Python$/)] });
  });

  it('refuses a requirements file git archive leaves out (export-ignore)', async () => {
    const r = await check({ ...GOOD, '.gitattributes': 'requirements.txt export-ignore\n' });
    expect(r.problems).toEqual([expect.stringContaining('release.python_requirements requirements.txt is export-ignored in commit')]);
  });

  it('refuses a node_dir the commit lacks, naming the directories with a package.json', async () => {
    const r = await check(GOOD, { release: { node_dir: 'web' } });
    expect(r.problems).toEqual([expect.stringMatching(/^release\.node_dir web is not in commit [0-9a-f]{12}: npm ci cannot run there; directories with a package\.json: client\n {2}fix: set release\.node_dir/)]);
  });

  it('refuses a node_dir with yarn.lock and no npm lockfile: npm ci needs package-lock.json, and how to make one', async () => {
    const r = await check({ ...GOOD, 'client/package-lock.json': undefined, 'client/yarn.lock': '# yarn lockfile v1\n' });
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toContain('release.node_dir client has no package-lock.json (nor npm-shrinkwrap.json) in commit');
    expect(r.problems[0]).toContain('found client/yarn.lock (yarn\'s), which npm ci does not read');
    expect(r.problems[0]).toContain('fix: generate it (cd client && npm install --package-lock-only: npm takes the versions yarn.lock pins) and commit it; or install with yarn in release.build and set release.node_dir to ""');
    // npm-shrinkwrap.json is npm's lockfile too
    expect((await check({ ...GOOD, 'client/package-lock.json': undefined, 'client/npm-shrinkwrap.json': '{}' })).problems).toEqual([]);
  });

  it('refuses a lockfile whose packages say they need another Node.js than runtimes.node pins (create-vite\'s React template on the default 18), naming them and a major that fits', async () => {
    // The lockfile create-vite 9.3 wrote for its React template (test/fixtures/frameworks/vite-react): vite 8 and
    // rolldown need ^20.19.0 || >=22.12.0; its platform binaries are optional (skipped), as npm skips them.
    const vite = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'frameworks', 'vite-react', 'package-lock.json'), 'utf8');
    const files = { ...GOOD, 'client/package.json': '{"name": "vite-react"}\n', 'client/package-lock.json': vite };
    const r = await check(files);
    expect(r.problems).toEqual([
      'release.node_dir client: runtimes.node pins Node.js 18, and client/package-lock.json holds 4 packages that say they need another: @vitejs/plugin-react 6.3.1 (engines.node "^20.19.0 || >=22.12.0"), oxlint 1.96.0 (engines.node "^20.19.0 || >=22.12.0"), rolldown 1.3.4 (engines.node "^20.19.0 || >=22.12.0"), vite 8.4.1 (engines.node "^20.19.0 || >=22.12.0"); npm ci installs them with a warning only (EBADENGINE), and the build or the app then fails on the host in their own words (vite 8 on Node.js 18: "does not provide an export named \'styleText\'")\n  fix: pin a Node.js they run on in runtimes.node.version (20: a version of it satisfies every package\'s range), then run ops provision; or lock versions that run on Node.js 18 (npm install <package>@<version> in client)',
    ]);
    // An exact pin is taken as it is; a major, as any version of it (Debian's package).
    expect((await check(files, { runtimes: { node: { strategy: 'nvm', version: '22.11.0' } } })).problems).toEqual([expect.stringContaining('runtimes.node pins Node.js 22.11.0, and client/package-lock.json holds 4 packages')]);
    expect((await check(files, { runtimes: { node: { strategy: 'nvm', version: '22.12.0' } } })).problems).toEqual([]);
    expect((await check(files, { runtimes: { node: { strategy: 'debian', version: '20' } } })).problems).toEqual([]);
    // express-generator's lockfile runs on 18.
    const express = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'frameworks', 'express', 'package-lock.json'), 'utf8');
    expect((await check({ ...GOOD, 'client/package-lock.json': express })).problems).toEqual([]);
  });

  it('the project\'s own engines.node counts (its root entry), npm-shrinkwrap.json first; optional packages, links and ranges semver cannot read do not', async () => {
    const lock = (root: Record<string, unknown>, more: Record<string, unknown> = {}) => JSON.stringify({ name: 'web', lockfileVersion: 3, packages: { '': { name: 'web', ...root }, ...more } });
    const own = await check({ ...GOOD, 'client/package-lock.json': lock({ engines: { node: '>=20' } }) });
    expect(own.problems).toEqual([expect.stringMatching(/^release\.node_dir client: runtimes\.node pins Node\.js 18, and client\/package-lock\.json holds a package that says it needs another: web \(engines\.node ">=20"\); npm ci installs it with a warning only .*\n {2}fix: pin a Node\.js it runs on in runtimes\.node\.version \(20: /)]);
    const ignored = lock({}, {
      'node_modules/fsevents': { version: '2.3.3', optional: true, os: ['darwin'], engines: { node: '^8.16.0 || ^10.6.0 || >=11.0.0 <99' } },
      'node_modules/bin-a': { version: '1.0.0', optional: true, engines: { node: '>=99' } },
      'node_modules/odd': { version: '1.0.0', engines: { node: 'node >= 4' } },
      'node_modules/old': { version: '1.0.0', engines: ['node >= 0.4'] },
      'packages/lib': { version: '1.0.0', engines: { node: '>=99' } },
      'node_modules/lib': { resolved: 'packages/lib', link: true, engines: { node: '>=99' } },
    });
    expect(JSON.parse(ignored).packages['packages/lib']).toBeDefined();
    const r = await check({ ...GOOD, 'client/package-lock.json': ignored });
    // The workspace's own entry (packages/lib) is a package npm installs (linked): it counts; its link does not.
    expect(r.problems).toEqual([expect.stringContaining('holds a package that says it needs another: packages/lib 1.0.0 (engines.node ">=99")')]);
    expect((await check({ ...GOOD, 'client/package-lock.json': lock({ engines: { node: '>=20' } }), 'client/npm-shrinkwrap.json': lock({}) })).problems).toEqual([]);
  });

  it('refuses a lockfile lacking the Linux binaries of a package that has them (made on macOS from an existing node_modules: npm/cli#4828), naming the package, what the lockfile holds and the fix', async () => {
    const text = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'frameworks', 'vite-react', 'package-lock.json'), 'utf8');
    const parsed = JSON.parse(text) as { packages: Record<string, { os?: string[]; cpu?: string[] }> };
    for (const [path, entry] of Object.entries(parsed.packages)) if (entry.os && !(entry.os.includes('darwin') && entry.cpu?.includes('arm64'))) delete parsed.packages[path];
    const node20 = { runtimes: { node: { strategy: 'debian', version: '20' } } };
    const r = await check({ ...GOOD, 'client/package.json': '{"name": "vite-react"}\n', 'client/package-lock.json': JSON.stringify(parsed) }, node20);
    expect(r.problems).toEqual([
      'release.node_dir client: client/package-lock.json lacks the Linux packages of 3 packages with a native binary: lightningcss 1.33.0 (only darwin-arm64; lacks lightningcss-linux-x64-gnu, lightningcss-linux-arm64-gnu and 3 more), oxlint 1.96.0 (only darwin-arm64; lacks @oxlint/binding-linux-x64-gnu, @oxlint/binding-linux-arm64-gnu and 8 more), rolldown 1.3.4 (only darwin-arm64, wasm32; lacks @rolldown/binding-linux-x64-gnu, @rolldown/binding-linux-arm64-gnu and 5 more); npm ci installs only what the lockfile lists, so on the host they are installed without their binaries and the build or the app fails there ("Cannot find module", naming lightningcss-linux-x64-gnu or its binary). npm writes such a lockfile on macOS or Windows from an existing node_modules (npm/cli#4828)\n  fix: cd client && npm install --package-lock-only (npm adds the platform packages the lockfile lacks; else remove node_modules and package-lock.json and run npm install), and commit package-lock.json',
    ]);
    // The lockfile as npm wrote it (every platform's packages) passes.
    expect((await check({ ...GOOD, 'client/package.json': '{"name": "vite-react"}\n', 'client/package-lock.json': text }, node20)).problems).toEqual([]);
  });

  it('warns of a token the commit\'s .npmrc reads from an environment variable (setup-node\'s ${NODE_AUTH_TOKEN}): npm ci on the hosts runs without the .env, naming the key and the variable, and where the token goes', async () => {
    const npmrc = '@acme:registry=https://npm.pkg.github.com/\n//npm.pkg.github.com/:_authToken=${NODE_AUTH_TOKEN}\n# //x/:_authToken=${COMMENTED}\ncache=${HOME}/.npm-cache\nescaped=\\${NOT_READ}\nemail=${NPM_EMAIL?}\n';
    const r = await check({ ...GOOD, 'client/.npmrc': npmrc });
    expect(r.problems).toEqual([]);
    expect(r.warnings).toEqual([
      "client/.npmrc: //npm.pkg.github.com/:_authToken reads ${NODE_AUTH_TOKEN}, and npm ci on the hosts runs without the .env's values (a secret of the environment is not in its environment): unless the host's own environment sets it, npm sends the text ${NODE_AUTH_TOKEN} itself as the value (nothing, written ${NODE_AUTH_TOKEN?}), and a registry that needs it answers 401; remove the line from client/.npmrc (a scope's registry line stays) and write it with the token in the app user's ~/.npmrc on each host (//npm.pkg.github.com/:_authToken=<token>; the deploy keeps the //host/ lines there), or use packages.npm_registry and packages.npm_token (a secret) when it is the registry of every package",
      expect.stringMatching(/^client\/\.npmrc: email reads \$\{NPM_EMAIL\}, .*; give the value in client\/\.npmrc itself, or remove the line$/),
    ]);
    expect((await check({ ...GOOD, 'client/.npmrc': '@acme:registry=https://npm.example/\n' })).warnings).toEqual([]);
  });

  it('warns of a project that names another package manager (packageManager, corepack) or holds its lockfile beside npm\'s: npm ci installs from package-lock.json, which that team may not keep', async () => {
    const pnpm = await check({ ...GOOD, 'client/package.json': '{"name": "client", "packageManager": "pnpm@9.15.0"}\n', 'client/pnpm-lock.yaml': "lockfileVersion: '9.0'\n" });
    expect(pnpm.problems).toEqual([]);
    expect(pnpm.warnings).toEqual([
      'release.node_dir client: its package.json\'s packageManager is "pnpm@9.15.0" (corepack) and it holds client/pnpm-lock.yaml, yet the deploy installs with npm ci from client/package-lock.json, which npm keeps, not that manager: a change made with it alone (a bumped version) is not deployed; keep client/package-lock.json with npm (npm install --package-lock-only), or install with that manager in release.build and set release.node_dir to ""',
    ]);
    expect((await check({ ...GOOD, 'client/yarn.lock': '# yarn lockfile v1\n' })).warnings).toEqual([expect.stringMatching(/^release\.node_dir client: it holds client\/yarn\.lock, yet the deploy installs with npm ci from client\/package-lock\.json/)]);
    expect((await check({ ...GOOD, 'client/package.json': '{"name": "client", "packageManager": "npm@10.9.2"}\n' })).warnings).toEqual([]);
  });

  it('refuses package.json and a lockfile out of sync (a dependency added by hand), which npm ci refuses on the host, burying why under its usage text', async () => {
    const lockText = '{"name": "client", "lockfileVersion": 3, "packages": {"": {"name": "client", "version": "1.0.0", "dependencies": {"ms": "2.1.3"}}, "node_modules/ms": {"version": "2.1.3"}}}\n';
    const r = await check({ ...GOOD, 'client/package.json': '{"name": "client", "version": "1.0.0", "dependencies": {"ms": "2.1.3", "left-pad": "^1.3.0"}}\n', 'client/package-lock.json': lockText });
    expect(r.problems).toEqual([
      'release.node_dir client: client/package.json and client/package-lock.json are out of sync, which npm ci refuses on the host ("can only install packages when your package.json and package-lock.json are in sync"): Missing: left-pad@^1.3.0 from lock file\n  fix: cd client && npm install (it brings package-lock.json in line with package.json), and commit package-lock.json',
    ]);
    expect((await check({ ...GOOD, 'client/package.json': '{"name": "client", "version": "1.0.0", "dependencies": {"ms": "^2.0.0"}}\n', 'client/package-lock.json': lockText })).problems).toEqual([]);
  });

  it('warns of FLASK_*, NUXT_*, NITRO_* values only the .env holds when neither a program\'s env, its command nor the app\'s code loads the file (Flask\'s from_prefixed_env under gunicorn)', async () => {
    const factory = 'from flask import Flask\n\ndef create_app():\n    app = Flask(__name__)\n    app.config.from_prefixed_env()\n    return app\n';
    const settings = (env: Record<string, unknown>, command = "venv/bin/gunicorn 'hello:create_app()'", programEnv: Record<string, string> = {}) => ({
      env,
      programs: { server: { command, port: 3579, health: '/health', env: programEnv }, client: { command: 'run', port: 3000 } },
    });
    const files = { ...GOOD, 'server/hello.py': factory };
    const r = await check(files, settings({ FLASK_SECRET_KEY: { secret: 'secret_key' }, FLASK_DEBUG: 'false', APP_MODE: 'live', NUXT_API_TOKEN: 'x' }));
    expect(r.problems).toEqual([]);
    expect(r.warnings).toEqual([
      expect.stringMatching(/^env FLASK_SECRET_KEY, FLASK_DEBUG are written to the release's \.env only, and Flask's from_prefixed_env \(the flask command loads a \.env; gunicorn does not\) reads FLASK_\* from the process environment: .*nothing in commit [0-9a-f]{12} loads the \.env .*so the app would serve without them \(its default, or none\) while the deploy says it is live; let the app read the file .*command: "sh -c 'set -a; \. \{release\}\/\.env; exec <program>'" with shell in dotenv\.readers$/),
      expect.stringMatching(/^env NUXT_API_TOKEN is written to the release's \.env only, and Nuxt's runtimeConfig \(no \.env is read in production\) reads NUXT_\* from the process environment: .* without it /),
    ]);
    const quiet = async (f: Record<string, string | undefined>, s: Record<string, unknown>) => expect((await check(f, s)).warnings).toEqual([]);
    // Given to the program, loaded by its command, or by the app's code (python-dotenv, Node's dotenv): nothing to say.
    await quiet(files, settings({ FLASK_DEBUG: 'false' }, undefined, { FLASK_DEBUG: 'false' }));
    await quiet(files, settings({ FLASK_SECRET_KEY: 'x' }, "sh -c 'set -a; . {release}/.env; exec venv/bin/gunicorn hello:create_app()'"));
    await quiet({ ...files, 'server/hello.py': `from dotenv import load_dotenv\nload_dotenv()\n${factory}` }, settings({ FLASK_SECRET_KEY: 'x' }));
    await quiet({ ...files, 'web/server.mjs': "import 'dotenv/config';\n" }, settings({ NUXT_API_TOKEN: 'x' }));
    // No such prefix: nothing read here.
    await quiet(files, settings({ APP_SECRET: 'x' }));
  });

  it('warns of a Next.js server started in a subdirectory (directory, next start <dir>, an npm script there running next start): Next.js reads .env there only, and the release\'s is at its root', async () => {
    const files = { ...GOOD, 'web/package.json': JSON.stringify({ name: 'web', scripts: { start: 'next start -p 3000', dev: 'next dev' } }) };
    const settings = (program: Record<string, unknown>, env: Record<string, unknown> = { DATABASE_URL: { secret: 'database_url' }, NEXT_PUBLIC_SITE: 'x' }) => ({
      env,
      programs: { server: { command: 'run', port: 3579, health: '/health' }, web: { port: 3000, ...program } },
      routes: { '/': 'web', '/api/': 'server' },
    });
    const warned = async (program: Record<string, unknown>, dir: string, env?: Record<string, unknown>) => {
      const r = await check(files, settings(program, env));
      expect(r.problems).toEqual([]);
      expect(r.warnings, JSON.stringify(program)).toEqual([
        expect.stringMatching(new RegExp(`^programs\\.web runs next start.* in ${dir}/ of the release, and Next\\.js reads \\.env files from its project directory only: the release's \\.env is at its root, so env DATABASE_URL would be undefined in the server while the deploy says it is live .*command: "sh -c 'set -a; \\. \\{release\\}/\\.env; exec <the command>'" with shell in dotenv\\.readers, or give the values in programs\\.web\\.env$`)),
      ]);
    };
    await warned({ command: 'node_modules/.bin/next start -p {port}', directory: 'web' }, 'web');
    await warned({ command: 'npx next start --port {port} web' }, 'web');
    await warned({ command: 'npx next start {release}/web' }, 'web');
    await warned({ command: 'npm start', directory: 'web' }, 'web');
    const quiet = async (program: Record<string, unknown>, env?: Record<string, unknown>) => expect((await check(files, settings(program, env))).warnings, JSON.stringify(program)).toEqual([]);
    // From the release's root, its .env read; the file loaded by the command; the values given to the program; only NEXT_PUBLIC_* (the build's)
    await quiet({ command: 'npx next start -p {port}' });
    await quiet({ command: 'npx next start -H 0.0.0.0 .' });
    await quiet({ command: "sh -c 'set -a; . {release}/.env; exec node_modules/.bin/next start'", directory: 'web' });
    await quiet({ command: 'next start', directory: 'web', env: { DATABASE_URL: 'postgres://x' } }, { DATABASE_URL: 'postgres://x' });
    await quiet({ command: 'npx next start web' }, { NEXT_PUBLIC_SITE: 'x' });
    // Not Next.js: an npm script that runs something else; next dev is not a server ops runs
    await quiet({ command: 'npm run dev', directory: 'web' });
    await quiet({ command: 'npm start', directory: 'client' });
  });

  it('refuses a program started through sh -c whose script the shell cannot parse (gunicorn\'s \'hello:create_app()\' nested in the single quotes), saying how to quote it', async () => {
    const program = (command: string) => ({ programs: { server: { command, port: 3579, health: '/health' }, client: { command: 'run', port: 3000 } } });
    const nested = await check(GOOD, program("sh -c 'set -a; . {release}/.env; exec venv/bin/gunicorn 'hello:create_app()''"));
    expect(nested.problems).toEqual([
      expect.stringMatching(/^programs\.server\.command runs sh -c on a script sh cannot parse \(.*Syntax error.*\(.*\): supervisor would start it after the build and it would fail on every start\n {2}fix: a ' inside the script's single quotes ends them, and what follows is outside: quote inside with double quotes \("hello:create_app\(\)"\); correct the script \(check it with sh -n -c '<script>'\)$/),
    ]);
    expect((await check(GOOD, program('sh -c \'set -a; . {release}/.env; exec venv/bin/gunicorn "hello:create_app()"\''))).problems).toEqual([]);
    expect((await check(GOOD, program("bash -lc 'exec venv/bin/app; fi'"))).problems).toEqual([expect.stringMatching(/^programs\.server\.command runs bash -c on a script bash cannot parse \(.*fi.*\): .*\n {2}fix: correct the script/)]);
    // Not a shell's script: a program's own -c (python -c), or sh running a file.
    expect((await check(GOOD, program("python3 -c 'print(('"))).problems).toEqual([]);
    expect((await check(GOOD, program('sh run.sh -c'))).problems).toEqual([]);
  });

  it('warns of a program\'s --env-file that, read from its directory, names no file (uvicorn --env-file .env in api/: its start fails after the build); the release\'s .env, a committed file or a host path pass', async () => {
    const api = (command: string, directory = 'server') => ({ programs: { server: { command, directory, port: 3579, health: '/health' }, client: { command: 'run', port: 3000 } } });
    const uvicorn = 'venv/bin/uvicorn --factory main:create_app --host 127.0.0.1 --port {port}';
    const r = await check(GOOD, api(`${uvicorn} --env-file .env`));
    expect(r.problems).toEqual([]);
    expect(r.warnings).toEqual([
      expect.stringMatching(/^programs\.server\.command passes --env-file \.env, read from its directory server: server\/\.env, which is not in commit [0-9a-f]{12} and which the deploy does not write \(the release's \.env is at its root\): unless release\.build makes it, the program fails its start after the build \(uvicorn: "Path '\.env' does not exist"; node: not found\); to read the release's \.env, write --env-file \{release\}\/\.env$/),
    ]);
    expect((await check(GOOD, api('{node} --env-file-if-exists=.env server.js'))).warnings).toEqual([expect.stringMatching(/passes --env-file-if-exists \.env, read from its directory server: server\/\.env, .*: unless release\.build makes it, the program reads no file and serves without the values; /)]);
    for (const fine of [`${uvicorn} --env-file {release}/.env`, `${uvicorn} --env-file ../.env`, `${uvicorn} --env-file=/etc/sample.env`, '{node} --env-file=app.py x.js'])
      expect((await check(GOOD, api(fine))).warnings, fine).toEqual([]);
    expect((await check(GOOD, api(`${uvicorn} --env-file .env`, '.'))).warnings).toEqual([]);
  });

  it('refuses `make build` and `make migrate` (the defaults) when the commit has no makefile, and only then', async () => {
    const r = await check({ ...GOOD, Makefile: undefined });
    expect(r.problems).toEqual([
      expect.stringMatching(/^release\.build is `make build` \(its default\), but commit [0-9a-f]{12} has no Makefile at its root \(nor makefile, GNUmakefile\): make would fail \(No rule to make target 'build'\)\n {2}fix: commit a Makefile with a `build:` rule/),
      expect.stringMatching(/^release\.migrate is `make migrate` \(its default\), but commit/),
    ]);
    // Other commands are not read; a makefile of another name GNU make looks for counts.
    expect((await check({ ...GOOD, Makefile: undefined }, { release: { build: 'npm run build', migrate: './migrate.sh' } })).problems).toEqual([]);
    expect((await check({ ...GOOD, Makefile: undefined, GNUmakefile: MAKEFILE })).problems).toEqual([]);
    // A `build` directory at the root: make says "Nothing to be done for 'build'" and succeeds.
    expect((await check({ ...GOOD, Makefile: undefined, 'build/x.txt': 'x' }, { release: { migrate: 'true' } })).problems).toEqual([]);
    // make's own variables in the release's environment may name another makefile.
    expect((await check({ ...GOOD, Makefile: undefined }, { env: { MAKEFLAGS: '-f ops.mk' } })).problems).toEqual([]);
  });

  it('refuses a target a plain Makefile does not define, and never guesses about one it cannot read simply', async () => {
    const r = await check({ ...GOOD, Makefile: 'build:\n\techo build\n\ntest lint: build\n\techo ok\n' });
    expect(r.problems).toEqual([expect.stringMatching(/^release\.migrate is `make migrate` \(its default\), but Makefile in commit [0-9a-f]{12} has no `migrate` target \(its targets: build, test, lint\)/)]);
    for (const makefile of ['include rules.mk\nbuild:\n\ttrue\n', '%:\n\techo $@\n', '$(TARGETS):\n\ttrue\n', '.DEFAULT:\n\ttrue\n', 'build \\\n  migrate:\n\ttrue\n', 'build::\n\ttrue\nmigrate :: build\n\ttrue\n', 'VPATH = src\nbuild:\n\ttrue\n'])
      expect((await check({ ...GOOD, Makefile: makefile })).problems, makefile).toEqual([]);
  });

  it('refuses a program directory that is a file; warns of a missing one (the build may make it)', async () => {
    const warned = await check(GOOD, { programs: { server: { command: 'run', port: 3579, directory: 'build' }, client: { command: 'run', port: 3000 } } });
    expect(warned).toEqual({ problems: [], warnings: [expect.stringMatching(/^programs\.server\.directory build is not in commit [0-9a-f]{12}: release\.build \(make build\) must make it, else supervisor cannot start server \("couldn't chdir"\) after the build$/)] });
    const file = await check(GOOD, { programs: { server: { command: 'run', port: 3579, directory: 'server/app.py' }, client: { command: 'run', port: 3000 } } });
    expect(file.problems).toEqual([expect.stringContaining('programs.server.directory server/app.py is a file in commit')]);
    // The dependency sets' directories are made by the deploy itself.
    expect(await check(GOOD, { programs: { server: { command: 'run', port: 3579, directory: 'client/node_modules/.bin' }, client: { command: 'run', port: 3000 } } })).toEqual({ problems: [], warnings: [] });
    // With no build, no migrations and no hook ("" each), nothing could make it: refused.
    const none = await check(GOOD, { release: { build: '', migrate: '' }, programs: { server: { command: 'run', port: 3579, directory: 'build' }, client: { command: 'run', port: 3000 } } });
    expect(none.problems).toEqual([expect.stringMatching(/^programs\.server\.directory build is not in commit [0-9a-f]{12}, and nothing runs in the release before the start that could make it/)]);
  });

  it('warns that a lockfile beside a pyproject.toml is not read (a lock bump alone is not deployed); refuses pyproject.toml with pip', async () => {
    const files = { ...GOOD, 'requirements.txt': undefined, 'pyproject.toml': '[project]\nname = "x"\ndependencies = ["flask"]\n', 'poetry.lock': '# poetry\n' };
    const r = await check(files, { release: { python_requirements: 'pyproject.toml' } });
    expect(r.problems).toEqual([]);
    expect(r.warnings).toEqual([expect.stringContaining('release.python_requirements is pyproject.toml, and poetry.lock beside it is not read: the install resolves pyproject.toml\'s dependency ranges, so a change to poetry.lock alone is not deployed (the Python set is reused)')]);
    expect(r.warnings[0]).toContain('export it: `poetry export -f requirements.txt -o requirements.txt` (on poetry 2 with poetry-plugin-export); commit that file');
    const pip = await check(files, { release: { python_requirements: 'pyproject.toml', python_installer: 'pip' } });
    expect(pip.problems).toEqual([expect.stringContaining('is a pyproject.toml and release.python_installer is pip')]);
  });

  it('a project locked by uv (uv.lock beside pyproject.toml) is installed from the lock: nothing said when in step; a lock out of step is refused with uv\'s words and `uv lock`; pip, which reads no lock, is refused', async () => {
    const pyproject = '[project]\nname = "app"\nversion = "0.1.0"\nrequires-python = ">=3.10"\ndependencies = ["packaging>=26.3"]\n';
    const lock = 'version = 1\nrevision = 5\nrequires-python = ">=3.10"\n\n[[package]]\nname = "app"\nversion = "0.1.0"\nsource = { virtual = "." }\n\n[package.metadata]\nrequires-dist = [{ name = "packaging", specifier = ">=26.3" }]\n';
    const files = { ...GOOD, 'requirements.txt': undefined, 'api/pyproject.toml': pyproject, 'api/uv.lock': lock };
    for (const req of ['api/pyproject.toml', 'api/uv.lock']) expect(await check(files, { release: { python_requirements: req } }), req).toEqual({ problems: [], warnings: [] });
    // The dry run's plan says what the set is made from.
    const p = project(files, { release: { python_requirements: 'api/pyproject.toml' } });
    const remote = new RecordingRemote('web1', 'deploy', 'sample', () => ({ code: 1, stderr: 'unreachable' }));
    const plan = (await deploy({ root: p.root, reporter: new MemoryReporter(), processEnv: { PATH: process.env.PATH }, connector: async () => remote }, p.env, { dryRun: true })).plan;
    expect(plan).toContainEqual(expect.stringContaining('dependencies: python reused unless api/uv.lock, api/pyproject.toml changed'));
    const stale = await check({ ...files, 'api/pyproject.toml': pyproject.replace('"packaging>=26.3"', '"packaging>=26.3", "requests"') }, { release: { python_requirements: 'api/pyproject.toml' } });
    expect(stale.problems).toEqual([
      expect.stringMatching(/^release\.python_requirements api\/pyproject\.toml: api\/uv\.lock is out of step with api\/pyproject\.toml in commit [0-9a-f]{12} \(requests is in pyproject\.toml's dependencies, not in the lock\); uv sync --locked says: The lockfile at `uv\.lock` needs to be updated, but `--locked` was provided\n {2}fix: run `uv lock` in api and commit api\/uv\.lock$/),
    ]);
    const pip = await check(files, { release: { python_requirements: 'api/uv.lock', python_installer: 'pip' } });
    expect(pip.problems).toEqual([expect.stringContaining("release.python_requirements api/uv.lock is uv's lockfile and release.python_installer is pip: pip installs from neither\n  fix: set release.python_installer: uv")]);
    const pipProject = await check(files, { release: { python_requirements: 'api/pyproject.toml', python_installer: 'pip' } });
    expect(pipProject.problems).toEqual([expect.stringContaining('fails on its first table, and api/uv.lock beside it is not read')]);
    const alone = await check({ ...GOOD, 'requirements.txt': undefined, 'uv.lock': lock }, { release: { python_requirements: 'uv.lock' } });
    expect(alone.problems).toEqual([expect.stringContaining('uv.lock has no pyproject.toml beside it in commit')]);
    // Found instead of a missing requirements file: the lock is pointed at, not exported.
    const missing = await check({ ...GOOD, 'requirements.txt': undefined, 'pyproject.toml': pyproject, 'uv.lock': lock });
    expect(missing.problems[0]).toContain('fix: point release.python_requirements at uv.lock (installed as locked)');
  });

  it('a pylock.toml (PEP 751) is installed by uv as it is; pip, which installs from none, is refused', async () => {
    const files = { ...GOOD, 'requirements.txt': undefined, 'pylock.toml': 'lock-version = "1.0"\ncreated-by = "uv"\n' };
    expect(await check(files, { release: { python_requirements: 'pylock.toml' } })).toEqual({ problems: [], warnings: [] });
    expect((await check(files, { release: { python_requirements: 'pylock.toml', python_installer: 'pip' } })).problems).toEqual([expect.stringContaining('is a pylock.toml (PEP 751) and release.python_installer is pip: pip installs from neither')]);
    // From the URLs it records: an index of the environment's own is not asked.
    const mirror = await check(files, { release: { python_requirements: 'pylock.toml' }, packages: { pip_index_url: 'http://10.230.0.1:3141/root/pypi/+simple/' } });
    expect(mirror).toEqual({ problems: [], warnings: [expect.stringContaining('uv fetches each of its files from the URL it records')] });
  });

  it('warns of a requirement from a VCS branch (or with no revision), in the file or one it includes: a new commit there is not deployed (the set is reused); a commit or a version tag is pinned', async () => {
    const files = {
      ...GOOD,
      'requirements.txt': '-r base.txt\nflask==3.0.0\nlib @ git+https://github.com/org/lib@main\n',
      'base.txt': 'git+ssh://git@github.com/org/tool.git#egg=tool\nx @ git+https://github.com/org/x@0123abc\ny @ git+https://github.com/org/y.git@v1.2.3#egg=y\n# z @ git+https://github.com/org/z@main\n',
    };
    const r = await check(files);
    expect(r.problems).toEqual([]);
    expect(r.warnings).toEqual([
      'requirements.txt: git+https://github.com/org/lib@main, base.txt: git+ssh://git@github.com/org/tool.git: installed from a branch (or with no revision), so a new commit there is not deployed: the Python set is reused while the requirements files are unchanged; pin a commit (@<sha>, or a tag) and change it to deploy another',
    ]);
    expect((await check({ ...files, 'requirements.txt': 'flask==3.0.0\n' })).warnings).toEqual([]);
  });

  it('puts every problem in one error; a dry run and a deploy are refused before any host is touched', async () => {
    const p = project({ ...GOOD, Makefile: undefined, 'requirements.txt': undefined, 'pyproject.toml': '[project]\nname = "x"\n', 'client/package-lock.json': undefined, 'client/yarn.lock': '' }, { release: { migrate: 'true' } });
    const error = preflightError(await preflight(p.repo, p.sha, p.env, await treeContent(p.repo, p.sha)), p.sha)!;
    expect(error.message).toMatch(/^commit [0-9a-f]{12} does not fit the release settings \(3 problems\), refused before any host was touched:\n- release\.python_requirements .*\n.*\n- release\.node_dir client has no package-lock\.json.*\n.*\n- release\.build is `make build`/);
    const remote = new RecordingRemote('web1', 'deploy', 'sample');
    const ctx: OpsContext = { root: p.root, reporter: new MemoryReporter(), processEnv: { PATH: process.env.PATH }, connector: async () => remote };
    for (const dryRun of [true, false]) {
      const e = await deploy(ctx, p.env, { dryRun }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(OpsError);
      expect((e as OpsError).message).toBe(error.message);
    }
    expect(remote.runs).toEqual([]);
  });

  it('says its warnings in the dry run\'s plan and the deploy\'s log', async () => {
    const p = project(GOOD, { programs: { server: { command: 'run', port: 3579, directory: 'build' }, client: { command: 'run', port: 3000 } } });
    const remote = new RecordingRemote('web1', 'deploy', 'sample', () => ({ code: 1, stderr: 'unreachable' }));
    const ctx: OpsContext = { root: p.root, reporter: new MemoryReporter(), processEnv: { PATH: process.env.PATH }, connector: async () => remote };
    const r = await deploy(ctx, p.env, { dryRun: true });
    expect(r.plan).toContainEqual(expect.stringMatching(/^warning: programs\.server\.directory build is not in commit/));
    // A deploy says them in its log before anything runs (here no host answers: it fails after saying them).
    const reporter = new MemoryReporter();
    await deploy({ ...ctx, reporter, connector: async () => Promise.reject(new OpsError('no host in this test')) }, p.env).catch(() => undefined);
    expect(reporter.lines).toContainEqual(expect.stringMatching(/^warning: programs\.server\.directory build is not in commit/));
  });

  it('refuses a per-slot value (a program\'s {port:<p>}, or the .env naming a program\'s port) that the code reads in a form the build inlines: built once, the green slot would call the blue one', async () => {
    // Shaped like a SvelteKit client of 2022 (the data catalogue's client/src/env.ts): the API's URL for server-side
    // rendering destructured from import.meta.env, which vite replaces at build time, in the SSR bundle too.
    const envTs = 'const { VITE_API_BROWSER_URL, VITE_API_SSR_URL } = import.meta.env;\nexport const apiSsrUrl = VITE_API_SSR_URL || "http://localhost:3579";\n';
    const settings = (dotenv: Record<string, string>, clientEnv: Record<string, string>) => ({
      programs: { server: { command: 'run', port: 3579, health: '/health', env: { APP_PORT: '{port}' } }, client: { command: 'node build', port: 3000, directory: 'client', env: { PORT: '{port}', ...clientEnv } } },
      env: dotenv,
    });
    const perSlot = settings({ VITE_API_SSR_URL: 'http://127.0.0.1:3579', VITE_API_BROWSER_URL: '/api' }, { VITE_API_SSR_URL: 'http://127.0.0.1:{port:server}' });
    const r = await check({ ...GOOD, 'client/src/env.ts': envTs }, perSlot);
    expect(r.problems).toEqual([
      `VITE_API_SSR_URL: client/src/env.ts reads it as { VITE_API_SSR_URL } = import.meta.env, which the build replaces with its value in the code it makes (the server's too), and the release is built once for both slots: it holds the .env's "http://127.0.0.1:3579", and programs.client.env gives it "http://127.0.0.1:{port:server}" for each slot, so a release on the green slot would call the blue slot's server (the live release before the switch, the previous one kept warm after it) while the deploy says it is live\n` +
        `  fix: read it at run time in server code (process.env.VITE_API_SSR_URL; SvelteKit 1.0 and later: $env/dynamic/private), so each slot's programs.<program>.env value is used; or, with the code as it is, give env.VITE_API_SSR_URL a value that is the same for both slots and follows the switch, the site's own URL through nginx (e.g. http://127.0.0.1/api on the host when the site is nginx's default server), and drop it from programs.<program>.env`,
    ]);
    // only in a program's env, the .env without it: the build inlines nothing (the code's default, the blue port)
    const onlyProgram = settings({}, { VITE_API_SSR_URL: 'http://127.0.0.1:{port:server}' });
    expect((await check({ ...GOOD, 'client/src/lib/api.svelte': '<script>\nconst url = import.meta.env.VITE_API_SSR_URL;\n</script>\n' }, onlyProgram)).problems).toEqual([
      expect.stringMatching(/^VITE_API_SSR_URL: client\/src\/lib\/api\.svelte reads it as import\.meta\.env\.VITE_API_SSR_URL, .* it holds nothing \(the \.env does not give it\), and programs\.client\.env gives it/),
    ]);
    // SvelteKit 1.0's static env, and Next.js's NEXT_PUBLIC_* through process.env: inlined as well
    expect((await check({ ...GOOD, 'client/src/hooks.server.ts': "import {\n  API_URL,\n} from '$env/static/private';\n" }, settings({}, { API_URL: 'http://127.0.0.1:{port:server}' }))).problems).toEqual([
      expect.stringMatching(/^API_URL: client\/src\/hooks\.server\.ts reads it as import \{ API_URL \} from '\$env\/static\/private', /),
    ]);
    expect((await check({ ...GOOD, 'web/lib/api.js': 'export const api = process.env.NEXT_PUBLIC_API + "/x";\n' }, settings({}, { NEXT_PUBLIC_API: 'http://127.0.0.1:{port:server}' }))).problems).toHaveLength(1);
    // read at run time: each slot's value is used, nothing to say (process.env, $env/dynamic, import.meta.env walked)
    const runtime = 'export const url = process.env.VITE_API_SSR_URL;\nfor (const [k] of Object.entries(import.meta.env)) console.log(k);\nimport { env } from "$env/dynamic/private";\n';
    expect(await check({ ...GOOD, 'client/src/lib/server/settings.js': runtime }, perSlot)).toEqual({ problems: [], warnings: [] });
    // the same value for both slots (through nginx): nothing differs per slot
    expect(await check({ ...GOOD, 'client/src/env.ts': envTs }, settings({ VITE_API_SSR_URL: 'http://127.0.0.1/api' }, {}))).toEqual({ problems: [], warnings: [] });
    // in node_modules: not the app's code
    expect(await check({ ...GOOD, 'client/node_modules/x/env.js': envTs }, perSlot)).toEqual({ problems: [], warnings: [] });
  });

  it('has nothing to say of the sample app (test/fixtures/app) with the release settings and programs of each environment of this repository', async () => {
    const envs = join(import.meta.dirname, '..', '..', 'environments');
    let checked = 0;
    for (const name of readdirSync(envs, { withFileTypes: true }).filter((d) => d.isDirectory() && !d.name.startsWith('.')).map((d) => d.name).filter((n) => existsSync(join(envs, n, 'environment.yml')))) {
      const { release, programs, routes } = parse(readFileSync(join(envs, name, 'environment.yml'), 'utf8')) as Record<string, unknown>;
      const { root, repo } = await scratchProject('ops-preflight-sample-', 'x', { app: 'sample', ref: 'v2', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: TEST_HOST_KEY }], release, programs, routes });
      const env = loadEnvironment('x', root);
      for (const ref of ['v1', 'v2']) {
        const sha = (await git(repo, ['rev-parse', `${ref}^{commit}`])).trim();
        expect(await preflight(repo, sha, env, await treeContent(repo, sha)), `${name} ${ref}`).toEqual({ problems: [], warnings: [] });
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(8);
  }, 120_000);
});
