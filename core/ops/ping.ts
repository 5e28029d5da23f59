// ops ping <env>: per host, can we reach it with the pinned key, and what is it.
import type { Environment } from '../config/environment.ts';
import { hostConnector, type OpsContext } from '../context.ts';
import { hostFacts } from '../steps/facts.ts';
import { reported } from '../remote/types.ts';

export interface PingResult {
  host: string;
  address: string;
  ok: boolean;
  error?: string;
  hostname?: string;
  os?: string;
  uptimeSeconds?: number;
  diskFreeMb?: number;
  sudo?: boolean;
  latencyMs?: number;
}

/** Every host is tried (a failure on one does not hide the others); ok only if all answered. */
export async function ping(ctx: OpsContext, env: Environment): Promise<PingResult[]> {
  const connector = hostConnector(ctx);
  return Promise.all(
    env.hosts.map(async (host): Promise<PingResult> => {
      const start = Date.now();
      try {
        const remote = await connector(env, host);
        try {
          const r = await remote.run(hostFacts());
          return {
            host: host.name,
            address: host.address,
            ok: true,
            hostname: reported(r, 'hostname'),
            os: reported(r, 'os'),
            uptimeSeconds: Math.round(Number(reported(r, 'uptime'))),
            diskFreeMb: Math.round(Number(reported(r, 'disk_free_kb')) / 1024),
            sudo: reported(r, 'sudo') === 'yes',
            latencyMs: Date.now() - start,
          };
        } finally {
          await remote.close();
        }
      } catch (e) {
        return { host: host.name, address: host.address, ok: false, error: e instanceof Error ? e.message : String(e) };
      }
    }),
  );
}

function duration(s: number): string {
  if (s >= 86400) return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 60)}m ${s % 60}s`;
}

export function formatPing(results: PingResult[]): string {
  return results
    .map((r) =>
      r.ok
        ? `✓ ${r.host} (${r.address}): key verified, ${r.hostname}, ${r.os}, up ${duration(r.uptimeSeconds ?? 0)}, ${r.diskFreeMb} MB free${r.sudo ? '' : ', NO passwordless sudo'} [${r.latencyMs} ms]`
        : `✗ ${r.host} (${r.address}): ${r.error}`,
    )
    .join('\n');
}
