// The lab's package index caches, on the services address beside the apt proxy: test hosts reach no
// Internet, so pip and npm on them go through pull-through caches that fetch from PyPI and the npm registry
// on the machine's behalf and keep what they fetched (storage in the cache dir, reused by every run and CI).
//   PyPI: devpi-server (its `root/pypi` mirror index), http://10.230.0.1:3141/root/pypi/+simple/
//   npm:  verdaccio (proxying registry.npmjs.org),      http://10.230.0.1:4873/
// Both are installed, pinned, by scripts/setup-machine.sh under <cache>/tools (test/hosts/caches/ holds the
// pins), and each is started on its own when absent (its own pid file), whatever else already runs.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OpsError } from '../../core/errors.ts';
import { ensureServicesAddress, httpAnswers } from './lab.ts';
import { paths, SERVICES_ADDRESS } from './paths.ts';
import { isAlive, livePid, logTail, readPidFile, run, spawnDaemon, stopProcess, waitFor, withLock, writePidFile } from './proc.ts';

export const PYPI_CACHE_PORT = 3141;
export const NPM_CACHE_PORT = 4873;
export const pypiIndexUrl = `http://${SERVICES_ADDRESS}:${PYPI_CACHE_PORT}/root/pypi/+simple/`;
export const npmRegistryUrl = `http://${SERVICES_ADDRESS}:${NPM_CACHE_PORT}/`;

/** Where setup-machine.sh installs the cache servers (a venv for devpi, an npm prefix for verdaccio). */
export const toolsDir = () => join(paths.cache, 'tools');
const devpiBin = (name: string) => join(toolsDir(), 'devpi', 'bin', name);
const verdaccioBin = () => join(toolsDir(), 'verdaccio', 'node_modules', '.bin', 'verdaccio');
/** devpi's server dir (its database and the mirrored files): data formats belong to devpi-server 6. */
const devpiDir = () => join(paths.cache, 'pypi', 'devpi6');
const verdaccioStorage = () => join(paths.cache, 'npm', 'verdaccio');
const devpiPid = () => join(paths.run, 'devpi-server.pid');
const verdaccioPid = () => join(paths.run, 'verdaccio.pid');

function requireInstalled(bin: string, what: string): void {
  if (!existsSync(bin)) throw new OpsError(`${what} is not installed (${bin} is missing)`, 'run ./scripts/setup-machine.sh (it installs the lab\'s package caches, pinned)');
}

/**
 * Start `what` unless its pid file names a live process; wait until `url` answers HTTP, then until `warmUrl`
 * (a real package page) answers 200: a first answer can take a while (devpi's first upstream fetch).
 */
async function ensureDaemon(what: string, pidFile: string, url: string, warmUrl: string, start: () => Promise<{ record: ReturnType<typeof spawnDaemon>; log: string }>): Promise<void> {
  await withLock(what, async () => {
    if (livePid(pidFile)) return;
    await ensureServicesAddress();
    const { record, log } = await start();
    const up = await waitFor(async () => {
      if (!isAlive(record)) return 'died';
      return (await httpAnswers(url, 2000)) ? 'up' : undefined;
    }, 60_000, 250);
    if (up !== 'up') {
      await stopProcess(record, 'SIGKILL');
      throw new OpsError(`${what} did not start on ${url}\n${logTail(log)}`, `is the port taken? (log: ${log})`);
    }
    const warm = await waitFor(async () => ((await httpAnswers(warmUrl, 30_000)) === 200 ? 'ok' : undefined), 240_000, 2000);
    if (warm !== 'ok') {
      await stopProcess(record, 'SIGTERM');
      throw new OpsError(`${what} started but cannot serve ${warmUrl}\n${logTail(log)}`, `does this machine reach the package index? (log: ${log})`);
    }
    writePidFile(pidFile, record);
  });
}

/** devpi-server on 10.230.0.1:3141; its `root/pypi` index mirrors PyPI on demand. Returns the simple index URL. */
export async function ensurePypiCache(): Promise<string> {
  await ensureDaemon('devpi-server', devpiPid(), `http://${SERVICES_ADDRESS}:${PYPI_CACHE_PORT}/+api`, `${pypiIndexUrl}pip/`, async () => {
    requireInstalled(devpiBin('devpi-server'), 'devpi-server');
    const dir = devpiDir();
    if (!existsSync(join(dir, '.serverversion'))) {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      await run(devpiBin('devpi-init'), ['--serverdir', dir], { timeoutMs: 120_000 }); // creates root/pypi
    }
    const log = join(paths.logsDir, 'devpi-server.log');
    // --restrict-modify root: nobody can create users or indexes through the API (it is a cache, not a registry).
    // --request-timeout 30 (devpi's default 5 s): on a cold cache, a request for a project another request is
    // already fetching from PyPI waits for it, and gave up after 5 s; uv then saw no versions ("no version of
    // greenlet==3.2.5"), a deploy failing on a fresh machine for the cache's sake.
    const args = ['--serverdir', dir, '--host', SERVICES_ADDRESS, '--port', String(PYPI_CACHE_PORT), '--restrict-modify', 'root', '--request-timeout', '30', '--outside-url', `http://${SERVICES_ADDRESS}:${PYPI_CACHE_PORT}`];
    return { record: spawnDaemon(devpiBin('devpi-server'), args, log), log };
  });
  return pypiIndexUrl;
}

/** verdaccio on 10.230.0.1:4873, proxying the npm registry the machine uses. Returns the registry URL. */
export async function ensureNpmCache(): Promise<string> {
  await ensureDaemon('verdaccio', verdaccioPid(), `${npmRegistryUrl}-/ping`, `${npmRegistryUrl}npm`, async () => {
    requireInstalled(verdaccioBin(), 'verdaccio');
    const conf = join(paths.state, 'verdaccio');
    mkdirSync(conf, { recursive: true });
    mkdirSync(verdaccioStorage(), { recursive: true });
    const uplink = (await run('npm', ['config', 'get', 'registry'], { allowFailure: true })).stdout.trim() || 'https://registry.npmjs.org/';
    // Read-only pull-through: anyone on the lab network reads, nobody publishes.
    writeFileSync(
      join(conf, 'config.yaml'),
      [
        `storage: ${verdaccioStorage()}`,
        `listen: ${SERVICES_ADDRESS}:${NPM_CACHE_PORT}`,
        'uplinks:',
        `  npmjs: { url: ${JSON.stringify(uplink)}, timeout: 60s, max_fails: 5 }`,
        'packages:',
        "  '@*/*': { access: $all, publish: $nobody, proxy: npmjs }",
        "  '**': { access: $all, publish: $nobody, proxy: npmjs }",
        'server: { keepAliveTimeout: 60 }',
        'log: { type: stdout, format: pretty, level: warn }',
        '',
      ].join('\n'),
    );
    const log = join(paths.logsDir, 'verdaccio.log');
    return { record: spawnDaemon(verdaccioBin(), ['--config', join(conf, 'config.yaml')], log), log };
  });
  return npmRegistryUrl;
}

export function packageCachesStatus(): { pypi: { running: boolean; pid?: number; url: string }; npm: { running: boolean; pid?: number; url: string } } {
  const p = livePid(devpiPid());
  const n = livePid(verdaccioPid());
  return { pypi: { running: !!p, pid: p?.pid, url: pypiIndexUrl }, npm: { running: !!n, pid: n?.pid, url: npmRegistryUrl } };
}

/** Stop both caches by their recorded PIDs. The cached packages stay (they are the point); `purge` drops the config. */
export async function stopPackageCaches(options: { purge?: boolean } = {}): Promise<void> {
  await stopProcess(readPidFile(devpiPid()), 'SIGTERM', 10_000);
  await stopProcess(readPidFile(verdaccioPid()), 'SIGTERM', 10_000);
  rmSync(devpiPid(), { force: true });
  rmSync(verdaccioPid(), { force: true });
  if (options.purge) rmSync(join(paths.state, 'verdaccio'), { recursive: true, force: true });
}
