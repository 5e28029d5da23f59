// Where the lab keeps its files, and the fixed addresses of its test network.
// Everything lives outside the clone; each root can be moved with an env var (tests that want isolation).
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';

export const paths = {
  /** Rebuildable, worth keeping across runs (and in CI caches): rootfs tarballs, apt cache, snapshots. */
  get cache(): string {
    return process.env.OPS_TESTHOSTS_CACHE || '/var/cache/ops-testhosts';
  },
  /** Machine state: host root filesystems, the client key, service data, logs, the sample app repo. */
  get state(): string {
    return process.env.OPS_TESTHOSTS_STATE || '/var/lib/ops-testhosts';
  },
  /** Runtime only (tmpfs, gone after a reboot like the processes it describes): pid files, locks, leases. */
  get run(): string {
    return process.env.OPS_TESTHOSTS_RUN || '/run/ops-testhosts';
  },
  get rootfsDir(): string {
    return join(this.cache, 'rootfs');
  },
  get snapshotsDir(): string {
    return join(this.cache, 'snapshots');
  },
  get aptCacheDir(): string {
    return join(this.cache, 'apt');
  },
  get hostsDir(): string {
    return join(this.state, 'hosts');
  },
  get logsDir(): string {
    return join(this.state, 'logs');
  },
  /** Private key every host trusts for its `deploy` user (public half: `id_ed25519.pub`). */
  get identityFile(): string {
    return join(this.state, 'id_ed25519');
  },
  get sampleAppRepo(): string {
    return join(this.state, 'sample-app');
  },
};

/**
 * The address every host reaches (and nothing else): apt proxy, PostgreSQL, pebble. Lives on the machine's `lo`.
 * A second lab on the same machine (moved dirs, see above) needs its own: OPS_TESTHOSTS_SERVICES_ADDRESS.
 */
export const SERVICES_ADDRESS = process.env.OPS_TESTHOSTS_SERVICES_ADDRESS || '10.230.0.1';

/**
 * Test networks are a machine-wide resource: their reservations live here whatever OPS_TESTHOSTS_RUN says,
 * so two labs (or two test processes) never take the same 10.N.0.0/24.
 */
export const NETWORKS_DIR = '/run/ops-testhosts-networks';

/** '' for the default lab; a short tag when the state dir is moved, so a second lab's namespaces get other names. */
export function labTag(): string {
  return process.env.OPS_TESTHOSTS_STATE ? `${createHash('sha256').update(resolve(paths.state)).digest('hex').slice(0, 6)}-` : '';
}
export const APT_PROXY_PORT = 3142;
export const POSTGRES_PORT = 5432;

/** Host N lives in 10.N.0.0/24: 10.N.0.1 on the machine side, 10.N.0.2 inside. 231 is kept for the sandbox. */
export const SANDBOX_OCTET = 231;
export const FIRST_AUTO_OCTET = 232;
export const LAST_OCTET = 254;

export function hostAddress(octet: number): string {
  return `10.${octet}.0.2`;
}
export function gatewayAddress(octet: number): string {
  return `10.${octet}.0.1`;
}
