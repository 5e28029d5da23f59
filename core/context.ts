// What every operation receives: where the project is, how to report, and how to reach hosts.
import type { Environment, Host } from './config/environment.ts';
import { envPath } from './config/environment.ts';
import { translateError } from './errors.ts';
import type { Reporter } from './report.ts';
import { resolveCredentials } from './remote/identity.ts';
import { connect } from './remote/ssh.ts';
import { Bastion, describeEndpoint, refusePlaceholderAddress, refusePlaceholderHostKey } from './remote/ssh-login.ts';
import type { Remote } from './remote/types.ts';

/** Connect to a host of `env`; `signal`: the connection is no longer wanted (the attempt ends, LoginAbandoned). */
export type Connector = (env: Environment, host: Host, signal?: AbortSignal) => Promise<Remote>;

export interface OpsContext {
  /** Project root (holds environments/). */
  root: string;
  /** The directory the command was run from (relative paths start there; the CLI resolves them). Default: the process's. */
  cwd?: string;
  reporter: Reporter;
  /** Process environment (SOPS_AGE_KEY, OPS_SSH_KEY, GITHUB_*...); injectable for tests. */
  processEnv: NodeJS.ProcessEnv;
  /** --identity from the command line. */
  identityFile?: string;
  /** How to open a host connection; tests inject a recording fake. */
  connector?: Connector;
  /** The runner's clock (release ids, release.json, audit times); tests inject a skewed one. Default: the system clock. */
  now?: () => Date;
  /**
   * Told, once a run stopped by a signal has let go of its locks and just before the process exits, what the run had
   * got to (core/ops/locked.ts withLock: result "interrupted", the signal, the release attempted, live before and
   * now, exitCode): the CLI prints it as --json's document.
   */
  interrupted?: (doc: Record<string, unknown>) => void;
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
  const skew = clockSkew(ctx, hostEpoch);
  if (!skew) return undefined;
  return `this runner's clock is ${skew.amount} ${skew.seconds < 0 ? 'behind' : 'ahead of'} ${host}'s: release ids and audit times carry the runner's time (release order does not depend on it: it comes from the host's history); fix the clock (NTP)`;
}

/**
 * How far the runner's clock is from a host's (`hostEpoch`: the host's time in seconds since 1970; `seconds` > 0: the
 * runner's is ahead), with that amount in words, when beyond CLOCK_SKEW_WARN_SECONDS; else undefined.
 */
export function clockSkew(ctx: Pick<OpsContext, 'now'>, hostEpoch: string | number | undefined): { seconds: number; amount: string } | undefined {
  const hostSeconds = Number(hostEpoch);
  if (hostEpoch === undefined || hostEpoch === '' || !Number.isFinite(hostSeconds)) return undefined;
  const skew = Math.round(runnerNow(ctx).getTime() / 1000 - hostSeconds);
  if (Math.abs(skew) <= CLOCK_SKEW_WARN_SECONDS) return undefined;
  const amount = Math.abs(skew) >= 172800 ? `${Math.round(Math.abs(skew) / 86400)} days` : Math.abs(skew) >= 7200 ? `${Math.round(Math.abs(skew) / 3600)} hours` : `${Math.abs(skew)} s`;
  return { seconds: skew, amount };
}

/**
 * The real connector: node-ssh with the pinned key and the resolved credentials. Hosts behind a bastion are
 * reached through one connection to it per connector (one per run), opened on first use, closed with the last
 * host connection through it, and opened again if it was lost (a reconnect after a failure).
 */
export function sshConnector(ctx: OpsContext): Connector {
  const bastions = new Map<string, Promise<Bastion>>();
  return async (env, host, signal) => {
    const ssh = env.config.ssh;
    // A placeholder address, then a placeholder host key, is said before a missing SSH key: the first thing to fix
    // (README "Secrets", env new).
    const placeholder = [host, { where: describeEndpoint(host), keyField: 'hosts[].host_key' }, `environments/${env.name}/environment.yml`] as const;
    refusePlaceholderAddress(...placeholder);
    refusePlaceholderHostKey(...placeholder);
    const credentials = resolveCredentials(
      { identityFile: ctx.identityFile, configFile: ssh.identity_file ? envPath(env, ssh.identity_file) : undefined, processEnv: ctx.processEnv },
      ctx.reporter,
    );
    const common = { reporter: ctx.reporter, connectTimeout: ssh.connect_timeout, retries: ssh.connect_retries, configFile: `environments/${env.name}/environment.yml`, signal };
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
    inFlight: () => remote.inFlight(),
    started: () => remote.started(),
    whenIdle: () => remote.whenIdle(),
    halt: (reason) => remote.halt(reason),
    close: () => remote.close().catch(() => undefined),
  };
}

/** How operations reach hosts: the injected connector (tests) or SSH, with every low-level error translated. */
export function hostConnector(ctx: OpsContext): Connector {
  const base = ctx.connector ?? sshConnector(ctx);
  return async (env, host, signal) => {
    try {
      return guarded(await base(env, host, signal));
    } catch (e) {
      throw translateError(e, host.name, `connecting to ${host.name}`);
    }
  };
}
