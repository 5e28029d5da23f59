// What every operation receives: where the project is, how to report, and how to reach hosts.
import type { Environment, Host } from './config/environment.ts';
import { envPath } from './config/environment.ts';
import { OpsError, translateError } from './errors.ts';
import type { Reporter } from './report.ts';
import { resolveCredentials } from './remote/identity.ts';
import { connect } from './remote/ssh.ts';
import { Bastion } from './remote/ssh-login.ts';
import type { Remote } from './remote/types.ts';

export type Connector = (env: Environment, host: Host) => Promise<Remote>;

export interface OpsContext {
  /** Project root (holds environments/). */
  root: string;
  reporter: Reporter;
  /** Process environment (SOPS_AGE_KEY, OPS_SSH_KEY, GITHUB_*...); injectable for tests. */
  processEnv: NodeJS.ProcessEnv;
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

/**
 * The real connector: node-ssh with the pinned key and the resolved credentials. Hosts behind a bastion are
 * reached through one connection to it per connector (one per run), opened on first use, closed with the last
 * host connection through it, and opened again if it was lost (a reconnect after a failure).
 */
export function sshConnector(ctx: OpsContext): Connector {
  const bastions = new Map<string, Promise<Bastion>>();
  return async (env, host) => {
    const ssh = env.config.ssh;
    const credentials = resolveCredentials(
      { identityFile: ctx.identityFile, configFile: ssh.identity_file ? envPath(env, ssh.identity_file) : undefined, processEnv: ctx.processEnv },
      ctx.reporter,
    );
    const common = { reporter: ctx.reporter, connectTimeout: ssh.connect_timeout, retries: ssh.connect_retries, configFile: `environments/${env.name}/environment.yml` };
    let via: Bastion | undefined;
    if (host.bastion) {
      const b = host.bastion;
      const key = `${b.user}@${b.address}:${b.port}`;
      let open = bastions.get(key);
      if (open && !(await open.catch(() => undefined))?.alive) open = undefined;
      if (!open) {
        const bastionCredentials = b.identityFile ? resolveCredentials({ configFile: b.identityFile, processEnv: {} }, ctx.reporter) : credentials;
        open = Bastion.open(b, { ...common, credentials: bastionCredentials });
        bastions.set(key, open);
      }
      via = await open;
      via.use();
    }
    try {
      return await connect({ ...common, host, credentials, appUser: env.appUser, via, onClose: () => via?.release() });
    } catch (e) {
      via?.release();
      throw e;
    }
  };
}

/**
 * A remote whose every failure is an OpsError naming the host and what was being done: an error of the SSH
 * library or the network never leaves an operation raw (no stack trace reaches a user).
 */
function guarded(remote: Remote): Remote {
  const translated = <T>(what: string, run: () => Promise<T>) =>
    run().catch((e: unknown) => {
      throw translateError(e, remote.name, `${what} on ${remote.name}`);
    });
  return {
    name: remote.name,
    login: remote.login,
    connection: remote.connection,
    run: (step, options) => translated(`step "${step.name}"`, () => remote.run(step, options)),
    upload: (content, path, options) => translated(`upload of ${path}`, () => remote.upload(content, path, options)),
    close: () => remote.close().catch(() => undefined),
  };
}

/** How operations reach hosts: the injected connector (tests) or SSH, with every low-level error translated. */
export function hostConnector(ctx: OpsContext): Connector {
  const base = ctx.connector ?? sshConnector(ctx);
  return async (env, host) => {
    try {
      return guarded(await base(env, host));
    } catch (e) {
      throw translateError(e, host.name, `connecting to ${host.name}`);
    }
  };
}

/** One open connection per host of an environment, closed together. */
export class Session {
  private constructor(
    readonly env: Environment,
    readonly remotes: Map<string, Remote>,
    private readonly connector: Connector,
  ) {}

  /** Connect to every host in parallel; if any fails, close the others and throw (nothing has run yet). */
  static async open(ctx: OpsContext, env: Environment, hosts: Host[] = env.hosts): Promise<Session> {
    const connector = hostConnector(ctx);
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
    return new Session(env, remotes, connector);
  }

  /**
   * Replace a host's connection by a new one (the old one is closed): for cleanup after a failure, e.g.
   * releasing a lock when the first connection broke. Never on a path that succeeds.
   */
  async reconnect(name: string): Promise<Remote> {
    const host = this.env.hosts.find((h) => h.name === name);
    if (!host) throw new OpsError(`no host ${name} in ${this.env.name}`);
    await this.remotes.get(name)?.close();
    const remote = await this.connector(this.env, host);
    this.remotes.set(name, remote);
    return remote;
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
  return withOpenSession(session, () => fn(session));
}

/** Run `fn` with a session already open (e.g. opened while the runner planned), and always close it. */
export async function withOpenSession<T>(session: Session, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
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
