// What every operation receives: where the project is, how to report, and how to reach hosts.
import type { Environment, Host } from './config/environment.ts';
import { envPath } from './config/environment.ts';
import { OpsError } from './errors.ts';
import type { Reporter } from './report.ts';
import { resolveCredentials } from './remote/identity.ts';
import { connect } from './remote/ssh.ts';
import type { Remote } from './remote/types.ts';

export type Connector = (env: Environment, host: Host) => Promise<Remote>;

export interface OpsContext {
  /** Project root (holds environments/). */
  root: string;
  reporter: Reporter;
  /** Process environment (SOPS_AGE_KEY, OPS_SSH_KEY, GITHUB_*...); injectable for tests. */
  env: NodeJS.ProcessEnv;
  /** --identity from the command line. */
  identityFile?: string;
  /** How to open a host connection; tests inject a recording fake. */
  connector?: Connector;
  /** The runner's clock (release ids, release.json, audit times); tests inject a skewed one. Default: the system clock. */
  now?: () => Date;
}

/** The runner's time now, from the context's clock. */
export function runnerNow(ctx: Pick<OpsContext, 'now'>): Date {
  return ctx.now ? ctx.now() : new Date();
}

/** Seconds between the runner's clock and a host's beyond which the difference is reported. */
export const CLOCK_SKEW_WARN_SECONDS = 120;

/**
 * A warning when the runner's clock is far from a host's (`hostEpoch`: the host's `date +%s`, read in the
 * step that took the lock), else undefined. Nothing depends on it (release order comes from the host's
 * history), but release ids and audit times carry the runner's time.
 */
export function clockSkewWarning(ctx: Pick<OpsContext, 'now'>, host: string, hostEpoch: string | undefined): string | undefined {
  const hostSeconds = Number(hostEpoch);
  if (!hostEpoch || !Number.isFinite(hostSeconds)) return undefined;
  const skew = Math.round(runnerNow(ctx).getTime() / 1000 - hostSeconds);
  if (Math.abs(skew) <= CLOCK_SKEW_WARN_SECONDS) return undefined;
  const amount = Math.abs(skew) >= 172800 ? `${Math.round(Math.abs(skew) / 86400)} days` : Math.abs(skew) >= 7200 ? `${Math.round(Math.abs(skew) / 3600)} hours` : `${Math.abs(skew)} s`;
  return `this runner's clock is ${amount} ${skew < 0 ? 'behind' : 'ahead of'} ${host}'s: release ids and audit times carry the runner's time (release order does not depend on it: it comes from the host's history); fix the clock (NTP)`;
}

/** The real connector: node-ssh with the pinned key and the resolved credentials. */
export function sshConnector(ctx: OpsContext): Connector {
  return (env, host) => {
    const ssh = env.config.ssh;
    const credentials = resolveCredentials(
      { identityFile: ctx.identityFile, configFile: ssh.identity_file ? envPath(env, ssh.identity_file) : undefined, env: ctx.env },
      ctx.reporter,
    );
    return connect({
      host,
      credentials,
      appUser: env.appUser,
      reporter: ctx.reporter,
      connectTimeout: ssh.connect_timeout,
      retries: ssh.connect_retries,
      configFile: `environments/${env.name}/environment.yml`,
    });
  };
}

/** One open connection per host of an environment, closed together. */
export class Session {
  private constructor(
    readonly env: Environment,
    readonly remotes: Map<string, Remote>,
  ) {}

  /** Connect to every host in parallel; if any fails, close the others and throw (nothing has run yet). */
  static async open(ctx: OpsContext, env: Environment, hosts: Host[] = env.hosts): Promise<Session> {
    const connector = ctx.connector ?? sshConnector(ctx);
    const settled = await Promise.allSettled(hosts.map((h) => connector(env, h)));
    const remotes = new Map<string, Remote>();
    const failures: string[] = [];
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') remotes.set(hosts[i]!.name, s.value);
      else failures.push(s.reason instanceof Error ? s.reason.message : String(s.reason));
    });
    if (failures.length) {
      await Promise.all([...remotes.values()].map((r) => r.close()));
      if (failures.length === 1 && settled.length === 1) throw (settled[0] as PromiseRejectedResult).reason;
      throw new OpsError(`cannot reach ${failures.length} of ${hosts.length} hosts; nothing was changed:\n${failures.map((f) => `  - ${f}`).join('\n')}`);
    }
    return new Session(env, remotes);
  }

  remote(host: string): Remote {
    const r = this.remotes.get(host);
    if (!r) throw new OpsError(`no connection to host ${host}`);
    return r;
  }

  async close(): Promise<void> {
    await Promise.all([...this.remotes.values()].map((r) => r.close()));
  }
}

/** Open a session, run `fn`, and always close the connections. */
export async function withSession<T>(ctx: OpsContext, env: Environment, fn: (s: Session) => Promise<T>, hosts?: Host[]): Promise<T> {
  const session = await Session.open(ctx, env, hosts);
  try {
    return await fn(session);
  } finally {
    await session.close();
  }
}

/** Run `fn` over `items`, `size` at a time; stops before the next batch when one fails. */
export async function inBatches<T, R>(items: T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += size) {
    const batch = items.slice(i, i + size);
    const settled = await Promise.allSettled(batch.map(fn));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    for (const s of settled) results.push((s as PromiseFulfilledResult<R>).value);
  }
  return results;
}
