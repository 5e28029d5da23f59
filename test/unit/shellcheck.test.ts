// Every step, rendered for a few kinds of environment (plain, TLS with Let's Encrypt, self-signed, several
// programs, a bastion, package indexes, Node from the npm registry, a host shared with another app), is
// checked by shellcheck (Debian's package, test/hosts/debian-packages.txt) as the host receives it: the
// prelude, the libraries, the step's own lines. A finding fails the test with shellcheck's own message; a
// check disabled on purpose says why on its line. A step function that the table below does not render
// fails the test too, so a new step is checked from its first commit.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { layout } from '../../core/layout.ts';
import { packageIndexFiles } from '../../core/packages.ts';
import type { Step } from '../../core/remote/types.ts';
import { onHost } from '../../core/shell.ts';
import { scriptText, uploadStep } from '../../core/remote/wrap.ts';
import { appendAudit, readAudit } from '../../core/steps/audit.ts';
import { listCertificates, renewCertificate } from '../../core/steps/certs.ts';
import { diskSpace, hostFacts } from '../../core/steps/facts.ts';
import { initdataSettings, runInitdata } from '../../core/steps/initdata.ts';
import { acquireLock, fenceStep, forceReleaseLock, lockGuard, lockStatus, releaseLock, settleLostRun } from '../../core/steps/lock.ts';
import { logsStep } from '../../core/steps/logs.ts';
import { applyNginx, provisionNginx } from '../../core/steps/nginx.ts';
import { appCommand, nodeDependencies, pythonDependencies } from '../../core/steps/app.ts';
import { carryAssets, createRelease, deployState, markRelease, pruneReleases, receivePack } from '../../core/steps/release.ts';
import { keptReleases } from '../../core/steps/release-list.ts';
import { hostStatus } from '../../core/steps/status.ts';
import { putPreviousBack, rollbackStep, stageAssets, startSlot, stopSlot, switchTo, unstageAssets } from '../../core/steps/switch.ts';
import { dropPacked, packArtifacts, readChunk, unpackArtifacts } from '../../core/steps/artifact.ts';
import { appUser, inspectHost, installPackages, markProvisioned, packageIndexes, runtimes, supervisorService } from '../../core/steps/system.ts';
import { issueCertificate, prepareTls } from '../../core/steps/tls.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const RELEASE_ID = '20261125T120000Z-0123456789ab';
const SHA = '0123456789abcdef0123456789abcdef01234567';

function environment(name: string, extra: Record<string, unknown>): Target {
  const config = parseEnvironment(
    {
      app: 'shop',
      hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }],
      programs: {
        server: { command: '{release}/venv/bin/python -m server.main', port: 3579, health: '/health', env: { APP_PORT: '{port}' } },
        client: { command: '{node} ./build', directory: 'client', port: 3000, env: { PORT: '{port}' } },
      },
      env: { MODE: 'live', DB: { secret: 'database_url' } },
      ...extra,
    },
    name,
  );
  const base = config.base_dir ?? `/srv/${config.app}`;
  return resolveTarget({ name, dir: '/nonexistent', root: '/nonexistent', config, hosts: [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }], appUser: config.app_user ?? config.app, baseDir: base, url: 'https://shop.example.org' });
}

const twoPrograms = {
  server: { command: '{release}/venv/bin/python -m server.main', port: 3579, health: '/health', env: { APP_PORT: '{port}' } },
  client: { command: '{node} ./build', directory: 'client', port: 3000, health: '/', env: { PORT: '{port}', API: 'http://127.0.0.1:{port:server}' } },
  worker: { command: '{release}/venv/bin/python -m server.worker --log "%(h)s"', port: 3700, health: '/ping' },
};

const ENVIRONMENTS: Record<string, Target> = {
  plain: environment('plain', {}),
  letsencrypt: environment('le', { domain: 'shop.example.org', tls: { mode: 'letsencrypt', email: 'ops@example.org' } }),
  'self-signed': environment('selfsigned', { domain: 'shop.example.org', tls: { mode: 'self-signed' } }),
  'several programs': environment('multi', { domain: 'shop.example.org', programs: twoPrograms, release: { before_switch: ['make check'], after_switch: ['make warm'] } }),
  bastion: environment('bastion', { bastion: { address: '198.51.100.7', host_key: KEY } }),
  'previous slot stopped': environment('cold', { switch: { keep_previous: false, drain: 5 } }),
  packages: environment('packages', {
    packages: { pip_index_url: 'https://pypi.example.org/simple/', npm_registry: 'https://npm.example.org/repo', npm_token: { secret: 'npm.token' } },
    provision: { packages: ['imagemagick', 'libpq-dev'] },
  }),
  'node from npm': environment('npmnode', { programs: twoPrograms, runtimes: { python: { strategy: 'debian', version: '3.11' }, node: { strategy: 'npm', version: '18.20.8' } }, packages: { npm_registry: 'https://npm.example.org/' } }),
  // a base_dir with a space: every script quotes it (a command's {release} would not do: supervisor splits it, refused)
  'shared host': environment('demo', { app: 'demo', domain: 'demo.example.org', base_dir: '/srv/demo app', tls: { mode: 'letsencrypt', email: 'ops@example.org' }, nginx: { default_server: true }, programs: { server: { command: 'venv/bin/python -m api', port: 4579, health: '/health' }, client: { command: '{node} ./build', port: 4000 } } }),
};

/** `env` with release.asset_dirs, one of them served by nginx (given a url). */
function servingAssets(env: Target): Target {
  return { ...env, config: { ...env.config, release: { ...env.config.release, asset_dirs: ['carried', { dir: 'client/build/client/_app/immutable', url: '/_app/immutable/' }] } } };
}

/** Every step function of core/steps (and the transport's upload step), rendered for one environment. */
function render(env: Target): Record<string, Step> {
  const release = `${env.baseDir}/releases/${RELEASE_ID}`;
  const meta = { id: RELEASE_ID, sha: SHA, ref: 'v1', environment: env.name, actor: 'me', time: 't', run: '', deps: { python: 'p', node: 'n' } };
  // Uploaded files are where the operations put them (under base_dir, which may need quoting).
  const up = (name: string) => `${layout(env).uploads}/${name}`;
  const tls = env.config.tls.mode !== 'off';
  return {
    acquireLock: acquireLock(env, { operation: 'deploy', actor: "o'brien", runUrl: 'https://github.com/o/r/actions/runs/1', runId: '0123456789abcdef', wait: 5 }, 'ops_report extra 1'),
    releaseLock: releaseLock(env, '0123456789abcdef', ['{"a":1}'], ['c0ffee01', 'c0ffee02']),
    settleLostRun: settleLostRun(env, '0123456789abcdef', ['c0ffee01']),
    lockStatus: lockStatus(env),
    forceReleaseLock: forceReleaseLock(env),
    appendAudit: appendAudit(env, { time: 't', environment: env.name, operation: 'deploy', result: 'success', actor: 'me' }),
    readAudit: readAudit(env, 50),
    deployState: deployState(env, [SHA], { commit: SHA, lfs: ['a'.repeat(64)], platform: true, fingerprint: '0'.repeat(32) }),
    deployStateRead: deployState(env),
    'deployState rollback': deployState(env, undefined, { supervisor: true, ports: true }),
    receivePack: receivePack(env, [up('deploy-0.pack')], [SHA], [{ upload: up('lfs-0'), oid: 'b'.repeat(64) }]),
    createRelease: createRelease(env, meta, { dotenv: up('dotenv'), environ: up('environ'), masks: up('masks') }),
    carryAssets: carryAssets({ ...env, config: { ...env.config, release: { ...env.config.release, asset_dirs: ['client/build/client/_app/immutable', "it's here", { dir: 'dist/assets', url: '/assets/' }] } } }, RELEASE_ID, '20261120T120000Z-0123456789ab'),
    pythonDependencies: pythonDependencies(env, release, 'aaaa'),
    pythonDependenciesUvLock: pythonDependencies(env, release, 'aaaa', true, true, 'api/uv.lock'),
    nodeDependencies: nodeDependencies(env, release, 'bbbb'),
    nodeDependenciesFromLive: nodeDependencies(env, release, 'bbbb', true),
    appCommand: appCommand(env, release, 'build', env.config.release.build),
    'appCommand sqlite': appCommand(env, release, 'migrate', env.config.release.migrate, 1800, { sqlite: true }),
    markRelease: markRelease(env, RELEASE_ID, 'failed', 'the build failed'),
    pruneReleases: pruneReleases(env, ['20261120T120000Z-0123456789ab']),
    keptReleases: keptReleases(env),
    startSlot: startSlot(env, 'green', release, RELEASE_ID),
    stopSlot: stopSlot(env, 'blue', 5),
    putPreviousBack: putPreviousBack(env, 'green'),
    // Every step of a run while it holds the lock: run_lock_guard first (core/ops/locked.ts FencedRemote).
    fenceStep: fenceStep(env, putPreviousBack(env, 'green')),
    switchTo: switchTo(env, 'green', RELEASE_ID, true, 'deploy', { fingerprint: '0'.repeat(32), dotenvSums: `${'1'.repeat(64)} ${'2'.repeat(64)}`, settings: 'app=01234567,programs=89abcdef' }),
    'switchTo rollback': switchTo(env, 'blue', RELEASE_ID, true, 'rollback'),
    // (base_dir with a space: refused with release.asset_dirs' url, config.test.ts)
    ...(/ /.test(env.baseDir)
      ? {}
      : {
          'switchTo serving assets': switchTo(servingAssets(env), 'green', RELEASE_ID, true),
          'rollbackStep serving assets': rollbackStep(servingAssets(env), undefined, '', { done: '', refused: '' }),
          stageAssets: stageAssets(servingAssets(env), RELEASE_ID),
        }),
    unstageAssets: unstageAssets(env),
    'unstageAssets unless live': unstageAssets(env, [RELEASE_ID]),
    rollbackStep: rollbackStep(env, undefined, markRelease(env, onHost('rollback_from'), 'abandoned', ['rolled back to ', onHost('release_id')]).script, { done: releaseLock(env, '0123456789abcdef', ['{"a":1}']).script, refused: '' }, 'app=01234567,programs=89abcdef'),
    'rollbackStep --to': rollbackStep(env, RELEASE_ID, '', { done: '', refused: releaseLock(env, '0123456789abcdef').script }),
    packArtifacts: packArtifacts(env, RELEASE_ID, ['venv-aaaa', 'node-bbbb']),
    readChunk: readChunk(env, RELEASE_ID, 'venv-aaaa', 33554432, 1024),
    dropPacked: dropPacked(env, RELEASE_ID),
    unpackArtifacts: unpackArtifacts(env, meta, [{ name: 'release', uploads: [up('build-release.0'), up('build-release.1')], sha256: 'c'.repeat(64) }, { name: 'venv-aaaa', uploads: [up('build-venv.0')], sha256: 'd'.repeat(64) }], 'web1', { dotenv: up('dotenv'), environ: up('environ'), masks: up('masks') }),
    hostStatus: hostStatus(env),
    logsStep: logsStep(env, { programs: Object.keys(env.config.programs), nginx: ['error', 'access'], slots: 'both', lines: 100 }),
    'logsStep follow': logsStep(env, { programs: Object.keys(env.config.programs), nginx: [], slots: 'live', lines: 10, follow: {} }),
    listCertificates: listCertificates(env, ['other.example.org']),
    ...(tls && { renewCertificate: renewCertificate(env, true), prepareTls: prepareTls(env, '-----BEGIN CERTIFICATE-----\n'), issueCertificate: issueCertificate(env, true) }),
    applyNginx: applyNginx({ item: 'nginx site', files: [{ path: '/etc/nginx/x.conf', content: 'x' }, { path: '/etc/nginx/y.conf', content: '# ours\ny', own: { kind: 'kept', package: 'nginx-common', kept: 'kept' } }, { path: '/etc/nginx/z.conf', content: '# ours\nz', own: { kind: 'replaced', lasts: 'lasts' } }], check: 'true', before: 'true', then: 'ops_report activated 1' }),
    provisionNginx: provisionNginx(env, tls),
    inspectHost: inspectHost(env),
    installPackages: installPackages(env),
    packageIndexes: packageIndexes(env, { pipConf: up('pip.conf'), npmrc: up('npmrc') }),
    runtimes: runtimes(env, packageIndexFiles(env, { npm: { token: 't0ken' } })),
    appUser: appUser(env, 'deploy'),
    supervisorService: supervisorService(),
    markProvisioned: markProvisioned(env),
    diskSpace: diskSpace(env),
    hostFacts: hostFacts(env),
    runInitdata: runInitdata(env, up('initdata-0123.json'), 'initdata.json'),
    initdataSettings: initdataSettings(env),
    uploadStep: uploadStep(`${env.baseDir}/shared/.env`, 1234, 0o600),
    'uploadStep (fenced)': uploadStep(`${env.baseDir}/.ops/uploads/x.env`, 1234, 0o600, lockGuard(env)),
  };
}

/** The step functions the sources define: `export function NAME(...): Step`. */
function stepFunctions(): string[] {
  const names: string[] = [];
  const files = [...readdirSync(join(ROOT, 'core/steps')).filter((f) => f.endsWith('.ts')).map((f) => join(ROOT, 'core/steps', f)), join(ROOT, 'core/remote/wrap.ts')];
  for (const file of files) for (const m of readFileSync(file, 'utf8').matchAll(/^export function (\w+)\([^)]*\): Step \{/gm)) names.push(m[1]!);
  return names;
}

interface Finding {
  file: string;
  line: number;
  code: number;
  level: string;
  message: string;
}

const dir = mkdtempSync(join(tmpdir(), 'ops-shellcheck-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('shellcheck', () => {
  it('is installed (Debian package shellcheck: ./scripts/setup-machine.sh)', () => {
    expect(spawnSync('shellcheck', ['--version']).status).toBe(0);
  });

  it('the table renders every step function of core/steps', () => {
    const rendered = Object.keys(render(ENVIRONMENTS['letsencrypt']!));
    const defined = stepFunctions();
    expect(defined.length).toBeGreaterThan(30);
    expect(defined.filter((f) => !rendered.includes(f))).toEqual([]);
  });

  it('finds nothing in any step, in any of the environments', async () => {
    // One file per distinct script (most steps read the same for several environments); shellcheck runs on one
    // core, so the files are split among as many runs as there are cores (at most 4).
    const files = new Map<string, string>();
    const where = new Map<string, string[]>();
    for (const [envName, env] of Object.entries(ENVIRONMENTS)) {
      for (const [stepName, step] of Object.entries(render(env))) {
        const text = scriptText(step);
        // Only text shellcheck and bash read alike: a control character (a NUL is dropped by bash) is a bug.
        expect(text, `${stepName} (${envName})`).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
        let file = files.get(text);
        if (!file) {
          file = join(dir, `${files.size}.sh`);
          files.set(text, file);
          writeFileSync(file, text);
        }
        where.set(file, [...(where.get(file) ?? []), `${stepName} (${envName})`]);
      }
    }
    expect(files.size).toBeGreaterThan(100);
    const list = [...files.values()];
    const runs = Math.max(1, Math.min(4, availableParallelism()));
    // shellcheck exits 1 when it finds something: its JSON on stdout is what counts; anything else is an error.
    const check = (batch: string[]) =>
      new Promise<Finding[]>((resolve, reject) =>
        execFile('shellcheck', ['--shell=bash', '--format=json1', '--severity=style', ...batch], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (e, stdout) =>
          e && (e as { code?: unknown }).code !== 1 ? reject(e) : resolve((JSON.parse(stdout) as { comments: Finding[] }).comments),
        ),
      );
    const findings = (await Promise.all(Array.from({ length: runs }, (_, i) => check(list.filter((_, j) => j % runs === i))))).flat();
    const report = findings.map((f) => {
      const line = readFileSync(f.file, 'utf8').split('\n')[f.line - 1]!.trim().slice(0, 160);
      return `SC${f.code} (${f.level}) ${f.message}\n    in ${where.get(f.file)!.slice(0, 3).join(', ')}${where.get(f.file)!.length > 3 ? ', ...' : ''}\n    line ${f.line}: ${line}`;
    });
    expect([...new Set(report)]).toEqual([]);
  }, 1_500_000); // shellcheck on every step script: 1.5 min idle, 8+ min on 2 cores beside the e2e hosts and the rest of the suite (the scripts include the lock guard and mask functions)

  it('no error of an input redirection escapes a 2>/dev/null written after it (bash applies redirections left to right: `read x < "$missing" 2>/dev/null` prints the missing file\'s error)', () => {
    // An input redirection from a file (not a here-document, process substitution, descriptor or /dev/null), then a
    // redirection of stderr on the same command.
    const late = /(^|[^<])<\s*(?!\/dev\/null\b|[(&<])("[^"]*"|'[^']*'|[^\s;&|()<>]+)\s+2>/;
    // Each line found once, with the first place it was found in.
    const found = new Map<string, string>();
    const look = (where: string, text: string) => {
      for (const line of text.split('\n')) if (late.test(line) && !found.has(line.trim())) found.set(line.trim(), where);
    };
    for (const f of readdirSync(join(ROOT, 'core/steps/sh'))) look(f, readFileSync(join(ROOT, 'core/steps/sh', f), 'utf8'));
    for (const [envName, env] of Object.entries(ENVIRONMENTS)) for (const [stepName, step] of Object.entries(render(env))) look(`${stepName} (${envName})`, scriptText(step));
    expect([...found].map(([line, where]) => `${where}: ${line}`)).toEqual([]);
  });

  it('the libraries parse on their own (bash -n)', () => {
    for (const f of readdirSync(join(ROOT, 'core/steps/sh'))) execFileSync('bash', ['-n', join(ROOT, 'core/steps/sh', f)]);
  });
});
