// Local Debian test hosts ("the lab") and the services beside them. One API for e2e tests (test/e2e/setup.ts),
// the sandbox (scripts/sandbox.ts), benchmarks and the CLI (test/hosts/cli.ts). See test/hosts/README.md.
import { existsSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { packageCachesStatus } from './caches.ts';
import { databaseStatus } from './database.ts';
import { downHosts, listHosts, listSnapshots, type HostStatus } from './hosts.ts';
import { aptProxyStatus, requireRoot, SUITES, rootfsTarball, type Suite } from './lab.ts';
import { paths, SERVICES_ADDRESS } from './paths.ts';
import { pebbleStatus } from './pebble.ts';
import { clearLeases, leases, stopServices } from './services.ts';

export { ensureLab, ensureRootfs, requireRoot, requireTools, SUITES, ROOTFS_PACKAGES, type Lab, type Suite } from './lab.ts';
export { upHost, downHost, rebootHost, setFreeSpace, downHosts, getHost, listHosts, snapshotHost, listSnapshots, deleteSnapshot, sshArgs, sshRun, type Host, type HostStatus, type Init, type SmallFilesystem, type UpHostOptions } from './hosts.ts';
export { ensureDatabase, createDatabase, dropDatabase, querySql, type Database, type DatabaseServer } from './database.ts';
export { ensurePebble, type Pebble } from './pebble.ts';
export { ensureNpmCache, ensurePypiCache, npmRegistryUrl, pypiIndexUrl } from './caches.ts';
export { acquireLab, describeLease, releaseLab, leases, stopServices } from './services.ts';
export { paths, SERVICES_ADDRESS, SANDBOX_OCTET, NETWORKS_DIR } from './paths.ts';
export { withLock as withLabLock, type LabLockOptions } from './proc.ts';

/** Everything down: all hosts, all services, leftover namespaces/links/addresses this lab named. Caches stay. */
export async function downAll(options: { purge?: boolean } = {}): Promise<string[]> {
  requireRoot();
  const hosts = await downHosts({ purge: options.purge });
  await stopServices({ purge: options.purge });
  clearLeases();
  // What is left of the run dir is empty bookkeeping; the logs go with a purge (the client key stays).
  for (const d of ['hosts', 'netns', 'db', 'locks']) rmEmptyDir(join(paths.run, d));
  rmEmptyDir(paths.run);
  if (options.purge) rmSync(paths.logsDir, { recursive: true, force: true });
  return hosts;
}

function rmEmptyDir(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    /* missing or not empty */
  }
}

export interface LabStatus {
  servicesAddress: string;
  aptProxy: { running: boolean; pid?: number; url: string };
  pypiCache: { running: boolean; pid?: number; url: string };
  npmCache: { running: boolean; pid?: number; url: string };
  database: { running: boolean; pid?: number; address: string };
  pebble: { running: boolean; pid?: number; directoryUrl: string };
  hosts: HostStatus[];
  rootfs: { suite: Suite; file: string; cached: boolean; bytes?: number }[];
  snapshots: string[];
  leases: string[];
  paths: { cache: string; state: string; run: string };
}

export function status(): LabStatus {
  return {
    servicesAddress: SERVICES_ADDRESS,
    aptProxy: aptProxyStatus(),
    pypiCache: packageCachesStatus().pypi,
    npmCache: packageCachesStatus().npm,
    database: databaseStatus(),
    pebble: pebbleStatus(),
    hosts: listHosts(),
    rootfs: SUITES.map((suite) => {
      const file = rootfsTarball(suite);
      const cached = existsSync(file);
      return { suite, file, cached, bytes: cached ? statSync(file).size : undefined };
    }),
    snapshots: listSnapshots().map((s) => s.name),
    leases: existsSync(join(paths.run, 'leases')) ? leases() : [],
    paths: { cache: paths.cache, state: paths.state, run: paths.run },
  };
}
