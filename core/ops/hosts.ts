// The one way operations run on hosts. A Session holds one connection per host, opened together (all or
// none: nothing runs when a host is unreachable), and `each` runs a function on every host: all at once,
// `batch` at a time, or one after another (batch 1). `eachHost` is the read-only look that must show every
// host it can (status, certificates, ping): each host on its own connection, an unreachable or failing host
// a value of the result, never an error hiding the others.
import type { Environment, Host } from '../config/environment.ts';
import type { Target } from '../target.ts';
import { hostConnector, type Connector, type OpsContext } from '../context.ts';
import { OpsError, errorFields, errorFieldsLine, gatheredError, type ErrorFields } from '../errors.ts';
import type { Remote } from '../remote/types.ts';

/** How `Session.each` goes through the hosts. */
export interface EachOptions {
  /** Hosts at a time (switch.batch_size for a rollout; 1: one after another). Default: all at once. */
  batch?: number;
}

/**
 * `fn` on `items`, `size` at a time, results in `items`' order (Session.each's rule, for an operation that
 * runs on some of its hosts, e.g. a rollout switching the hosts that are not a no-op). A batch always settles whole (no step is left
 * running behind a thrown error); when one of it failed, the first failure (in `items`' order) is thrown and
 * no later batch starts.
 */
export async function inBatches<T, R>(items: T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  const step = Math.max(1, Math.floor(size));
  for (let i = 0; i < items.length; i += step) {
    const settled = await Promise.allSettled(items.slice(i, i + step).map(fn));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    for (const s of settled) results.push((s as PromiseFulfilledResult<R>).value);
  }
  return results;
}

/**
 * The error of hosts that could not be reached (Session.openReachable's `unreachable`) out of `total`: the one host's own
 * error when it is the only host, else one listing each (an InputError when one of theirs is: gatheredError).
 */
export function unreachableError(unreachable: { error: unknown; message: string }[], total: number): unknown {
  if (total === 1 && unreachable.length === 1) return unreachable[0]!.error;
  return gatheredError(
    unreachable.map((u) => u.error),
    `cannot reach ${unreachable.length} of ${total} hosts; nothing was changed:\n${unreachable.map((u) => `  - ${u.message}`).join('\n')}`,
  );
}

/** One open connection per host of an environment, closed together. */
export class Session {
  private constructor(
    /** The environment, resolved once for the whole session (core/target.ts). */
    readonly env: Target,
    /** The hosts connected, in the environment's order. */
    readonly hosts: Host[],
    readonly remotes: Map<string, Remote>,
    private readonly connector: Connector,
  ) {}

  /**
   * Connect to every host in parallel. @throws OpsError (one line per unreachable host, or that host's own
   * error when there is one host) after closing the connections that did open: nothing has run yet. `signal`:
   * the session is no longer wanted (a deploy whose plan failed while it opened): the attempts still under way end
   * at once, without retries, and it rejects.
   */
  static async open(ctx: OpsContext, env: Target, hosts: Host[] = env.hosts, signal?: AbortSignal): Promise<Session> {
    const { session, unreachable } = await Session.openReachable(ctx, env, hosts, signal);
    if (unreachable.length) {
      await session.close();
      throw unreachableError(unreachable, hosts.length);
    }
    return session;
  }

  /**
   * Connect to every host in parallel, keeping the ones that answer: for a read-only command that shows what it can
   * (`ops logs` during an outage). `unreachable`: the others, each with its error (`message`: its error and hint, on one line), in the
   * environment's order; the session holds the reachable hosts only (none: an empty session, to close all the same).
   */
  static async openReachable(ctx: OpsContext, env: Target, hosts: Host[] = env.hosts, signal?: AbortSignal): Promise<{ session: Session; unreachable: { host: Host; error: unknown; message: string }[] }> {
    const connector = hostConnector(ctx);
    const settled = await Promise.allSettled(hosts.map((h) => connector(env, h, signal)));
    const remotes = new Map<string, Remote>();
    const unreachable: { host: Host; error: unknown; message: string }[] = [];
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') remotes.set(hosts[i]!.name, s.value);
      else unreachable.push({ host: hosts[i]!, error: s.reason, message: errorFieldsLine(errorFields(s.reason)) });
    });
    return { session: new Session(env, hosts.filter((h) => remotes.has(h.name)), remotes, connector), unreachable };
  }

  /**
   * `fn` on every host of the session over its connection: all at once, or `options.batch` at a time.
   * @returns `fn`'s values in host order. @throws the first failure of the first batch that had one, once that
   * batch has settled; later batches do not start (what they would change stays as it was).
   */
  each<T>(fn: (remote: Remote, host: Host) => Promise<T>, options: EachOptions = {}): Promise<T[]> {
    return inBatches(this.hosts, options.batch ?? this.hosts.length, (host) => fn(this.remote(host.name), host));
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

  /** The open connection to `host`. @throws OpsError when the session has none. */
  remote(host: string): Remote {
    const r = this.remotes.get(host);
    if (!r) throw new OpsError(`no connection to host ${host}`);
    return r;
  }

  /** Close every connection (idempotent; what runs on a host for it ends with it). */
  async close(): Promise<void> {
    await Promise.all([...this.remotes.values()].map((r) => r.close()));
  }
}

/**
 * Open a session on `hosts` (default: all of `env`), run `fn`, and always close the connections.
 * @returns what `fn` returns. @throws Session.open's error (nothing ran), or `fn`'s.
 */
export async function withSession<T>(ctx: OpsContext, env: Target, fn: (s: Session) => Promise<T>, hosts?: Host[]): Promise<T> {
  const session = await Session.open(ctx, env, hosts);
  return withOpenSession(session, () => fn(session));
}

/** Run `fn` with a session already open (e.g. opened while the runner planned), and always close it. @returns what `fn` returns. */
export async function withOpenSession<T>(session: Session, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } finally {
    await session.close();
  }
}

/**
 * Run `fn` on every host over its own connection, all in parallel, each closed when its `fn` is done; `started`
 * is when that host's connection began (performance.now(), ms: the monotonic clock, for durations). A host that cannot be reached (`connected` false) or
 * whose `fn` fails gives `onError`'s value (`fields`: its error and hint for --json, one line each: errorFields; `error`: what was thrown) instead of hiding
 * the others.
 * @returns one value per host, in the environment's order; never throws for a host.
 */
export async function eachHost<T>(
  ctx: OpsContext,
  env: Environment,
  fn: (remote: Remote, host: Host, started: number) => Promise<T>,
  onError: (host: Host, fields: ErrorFields, connected: boolean, error: unknown) => T,
): Promise<T[]> {
  const connector = hostConnector(ctx);
  return Promise.all(
    env.hosts.map(async (host) => {
      const started = performance.now();
      let remote: Remote | undefined;
      try {
        remote = await connector(env, host);
        return await fn(remote, host, started);
      } catch (e) {
        return onError(host, errorFields(e), remote !== undefined, e);
      } finally {
        await remote?.close();
      }
    }),
  );
}

/**
 * A read-only command's look at every host (`ops releases`, `lock status`, `audit`): eachHost, so that a host down
 * is that host's `unread` value (`fields`: its error and hint, one line each: errorFields) while the others are shown. When no host could be
 * read, there is nothing to show: @throws the one host's own error (one host), or one error listing every host's (an
 * InputError when one of theirs is: gatheredError).
 */
export async function readHosts<T>(ctx: OpsContext, env: Environment, fn: (remote: Remote, host: Host) => Promise<T>, unread: (host: Host, fields: ErrorFields) => T): Promise<T[]> {
  const errors: { host: string; error: unknown; fields: ErrorFields }[] = [];
  const list = await eachHost(ctx, env, fn, (host, fields, _connected, error) => {
    errors.push({ host: host.name, error, fields });
    return unread(host, fields);
  });
  if (errors.length && errors.length === env.hosts.length) {
    if (errors.length === 1) throw errors[0]!.error;
    // Every host failing alike (no key, no network here) is said once, with its hint.
    const first = errors[0]!.fields;
    const all = errors.map((e) => e.error);
    if (errors.every((e) => e.fields.error === first.error && e.fields.hint === first.hint)) throw gatheredError(all, `cannot read any of the ${errors.length} hosts (${errors.map((e) => e.host).join(', ')}): ${first.error}`, first.hint);
    throw gatheredError(all, `cannot read any of the ${errors.length} hosts:\n${errors.map((e) => `  - ${e.host}: ${errorFieldsLine(e.fields)}`).join('\n')}`);
  }
  return list;
}
