// The shared services (apt proxy, PyPI and npm caches, database, pebble) outlive any one process: test runs, the sandbox and the
// CLI hold a lease while they use them, and whoever releases the last lease stops them.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OpsError } from '../../core/errors.ts';
import { stopPackageCaches } from './caches.ts';
import { stopDatabase } from './database.ts';
import { removeServicesAddress, stopAptProxy } from './lab.ts';
import { paths } from './paths.ts';
import { stopPebble } from './pebble.ts';
import { isAlive, readPidFile, recordOf } from './proc.ts';

const leasesDir = () => join(paths.run, 'leases');

/**
 * Record that `holder` uses the lab's services. The lease dies with the calling process unless `persistent`
 * (the sandbox, the CLI): then it lasts until released.
 */
export function acquireLab(holder: string, options: { persistent?: boolean } = {}): void {
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(holder)) throw new OpsError(`invalid lease holder ${JSON.stringify(holder)}`);
  mkdirSync(leasesDir(), { recursive: true });
  const me = recordOf(process.pid)!;
  writeFileSync(join(leasesDir(), holder), options.persistent ? 'persistent\n' : `${me.pid} ${me.start}\n`);
}

/**
 * What holds a lease, in words a reader of `npm run sandbox -- down` can act on (the holder names of acquireLab's
 * callers: scripts/sandbox.ts, test/hosts/cli.ts, test/e2e/setup.ts, bench/lab.ts); an unknown name as it is.
 */
export function describeLease(holder: string): string {
  if (holder === 'cli') return 'npm run hosts (up, services or db: npm run hosts -- down --all stops them)';
  if (holder === 'sandbox') return 'the sandbox (npm run sandbox -- down)';
  const run = /^(vitest|bench)-(\d+)$/.exec(holder);
  if (run) return `${run[1] === 'vitest' ? 'a test run' : 'a benchmark run'} (pid ${run[2]})`;
  return holder;
}

/** Holders of live leases (the leases of processes that died are dropped on the way). */
export function leases(): string[] {
  if (!existsSync(leasesDir())) return [];
  return readdirSync(leasesDir()).filter((holder) => {
    const file = join(leasesDir(), holder);
    let text = '';
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch {
      return false;
    }
    if (text === 'persistent' || isAlive(readPidFile(file))) return true;
    rmSync(file, { force: true });
    return false;
  });
}

/** Drop `holder`'s lease; if nobody else holds one, stop the services. Returns true when it stopped them. */
export async function releaseLab(holder: string, options: { purge?: boolean } = {}): Promise<boolean> {
  rmSync(join(leasesDir(), holder), { force: true });
  if (leases().length) return false;
  await stopServices(options);
  return true;
}

/**
 * Stop every shared service by its recorded PID and remove the services address if the lab added it.
 * `purge` also deletes their data (database cluster, pebble's certificates); caches stay.
 */
export async function stopServices(options: { purge?: boolean } = {}): Promise<void> {
  await stopPebble(options);
  await stopDatabase(options);
  await stopAptProxy(options);
  await stopPackageCaches(options);
  await removeServicesAddress();
}

export function clearLeases(): void {
  rmSync(leasesDir(), { recursive: true, force: true });
}
