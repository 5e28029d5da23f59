// ops logs <env> [program] [--lines N] [--follow]: the app programs' and nginx's logs from every host, each
// line prefixed with the host and the log it comes from, with the environment's secret values masked.
// Programs' logs are the live slot's by default (the release serving traffic), from where that release began writing
// them (the lines of older releases that ran on the slot are not shown: logsStep); --slot previous shows the release
// kept warm on the other slot (e.g. after a rollback), --slot both shows both.
import { join } from 'node:path';
import { SECRETS_FILE, type Environment } from '../config/environment.ts';
import { didYouMean } from '../config/schema.ts';
import { resolveTarget } from '../target.ts';
import type { OpsContext } from '../context.ts';
import { Session, unreachableError, withOpenSession } from './hosts.ts';
import { maskPlainPasswords } from './secrets.ts';
import { gatheredError, messageLine, oneLine, OpsError, tail, userFileExists } from '../errors.ts';
import { decryptFile, loadEnvIdentities } from '../secrets/index.ts';
import { LOG_SLOTS, MAX_LOG_LINES, logsStep, type LogSlots, type LogsRequest } from '../steps/logs.ts';
import { lockStatus, parseLock, runUnderWay } from '../steps/lock.ts';

export interface LogsOptions {
  /** A program of the environment, or "nginx"; default: every program, and nginx's error log. */
  program?: string;
  lines?: number;
  slots?: LogSlots;
  follow?: boolean;
  /** Ends --follow (Ctrl-C in the CLI). */
  signal?: AbortSignal;
}


/** Check the options and say which logs they mean. */
export function logsRequest(env: Environment, options: LogsOptions): Omit<LogsRequest, 'follow'> {
  const programs = Object.keys(env.config.programs);
  const lines = options.lines ?? 50;
  if (!Number.isInteger(lines) || lines < 0 || lines > MAX_LOG_LINES) throw new OpsError(`--lines must be a whole number from 0 to ${MAX_LOG_LINES}, got ${JSON.stringify(options.lines)}`);
  const slots = options.slots ?? 'live';
  if (!LOG_SLOTS.includes(slots)) throw new OpsError(`--slot must be one of ${LOG_SLOTS.join(', ')}, got ${JSON.stringify(slots)}`);
  const p = options.program;
  if (p === undefined) return { programs, allPrograms: true, nginx: ['error'], slots, lines };
  // one access and one error log per site, whichever slot serves: a slot asked of nginx is refused, not ignored
  if (p === 'nginx' && options.slots !== undefined)
    throw new OpsError(`--slot does not apply to nginx: its access and error logs are the site's, one pair for every release and slot`, `leave --slot out for nginx's logs; --slot ${options.slots} is for a program's: ops logs ${env.name} <program> --slot ${options.slots} (programs: ${programs.join(', ')})`);
  if (p === 'nginx') return { programs: [], nginx: ['error', 'access'], slots, lines };
  if (!env.config.programs[p])
    throw new OpsError(`${JSON.stringify(p)} is not a program of ${env.name}${didYouMean(p, [...programs, 'nginx']) ? ` (did you mean ${didYouMean(p, [...programs, 'nginx'])}?)` : ''}`, `programs: ${[...programs, 'nginx'].join(', ')}; a program renamed or removed since still runs in the release kept warm: ops logs ${env.name} --slot previous shows every program it runs`);
  return { programs: [p], nginx: [], slots, lines };
}

/**
 * Mask every secret value of the environment (when a key opens its secrets file). Returns what could not be
 * masked, for a warning: without a key, logs are still shown, with masking limited to what the hosts mask
 * themselves (logsStep: the values the releases kept there were given from secrets).
 */
export async function maskEnvironmentSecrets(ctx: OpsContext, env: Environment): Promise<string | undefined> {
  maskPlainPasswords(ctx, env, false);
  const file = join(env.dir, SECRETS_FILE);
  try {
    if (!userFileExists(file, `environments/${env.name}/${SECRETS_FILE}`)) return undefined;
    await decryptFile(file, { identities: await loadEnvIdentities(env.root, env.name, ctx.processEnv, (m) => ctx.reporter.warn(m)), mask: (v) => ctx.reporter.mask(v) });
    return undefined;
  } catch (e) {
    const why = messageLine(e);
    return `cannot decrypt environments/${env.name}/${SECRETS_FILE} (${why}): masking is limited: the hosts mask the values the releases' .env takes from secrets, not the file's other secrets; give a key (SOPS_AGE_KEY, SOPS_AGE_KEY_FILE) to mask them all`;
  }
}

/**
 * `ops logs`: the chosen logs of every host, each line prefixed `<host> <log> |` and masked, printed through
 * the reporter; with `follow`, until `signal` aborts. Hosts that cannot be reached are warned of first, the others
 * shown. @throws OpsError for bad options or a host that fails; when no host can be reached (before anything), or
 * some could not (without `follow`: after the others' logs).
 */
export async function logs(ctx: OpsContext, environment: Environment, options: LogsOptions = {}): Promise<void> {
  const env = resolveTarget(environment);
  const request = logsRequest(env, options);
  const limited = await maskEnvironmentSecrets(ctx, env);
  if (limited) ctx.reporter.warn(limited);
  // The hosts that answer are shown (during an outage they are the ones worth reading); the others are said first and
  // make the command fail at the end.
  const { session, unreachable } = await Session.openReachable(ctx, env);
  if (!session.hosts.length) throw unreachableError(unreachable, env.hosts.length);
  for (const u of unreachable) ctx.reporter.warn(`cannot reach ${u.host.name}, its logs are not shown: ${u.message}`);
  await withOpenSession(session, async () => {
    // A run under way (a deploy starting its release on the idle slot) said first: the live slot's logs are not yet
    // the new release's. A host whose lock cannot be read is only not said (its logs are what was asked).
    await session.each(async (remote) => {
      const r = await remote.run(lockStatus(env), { allowFailure: true }).catch(() => undefined);
      const under = r?.code === 0 ? runUnderWay(parseLock(r)) : undefined;
      if (under) ctx.reporter.warn(`${remote.name}: ${under}: the release it starts logs to the idle slot until it goes live (ops logs ${env.name} --slot previous shows that slot)`);
    });
    if (!options.follow) {
      // Hosts one after the other, so each host's lines stay together.
      await session.each((remote) => remote.run(logsStep(env, request)), { batch: 1 });
      return;
    }
    const remotes = [...session.remotes.values()];
    let stopped = options.signal?.aborted ?? false;
    const stop = () => {
      stopped = true;
      // Closing the connections ends their sshd processes, which ends tail -F on each host.
      void session.close();
    };
    options.signal?.addEventListener('abort', stop, { once: true });
    try {
      // Not session.each: one host's follow failing must end the others at once (withSession closes them).
      await Promise.all(
        remotes.map(async (remote) => {
          try {
            if (stopped) return;
            // The step follows until this connection ends (its sshd process is the holder): Ctrl-C closes it.
            const r = await remote.run(logsStep(env, { ...request, follow: {} }), { allowFailure: true });
            if (r.code !== 0 && !stopped) throw new OpsError(`following the logs on ${remote.name} stopped (exit code ${r.code})${r.stderr.trim() ? `: ${oneLine(tail(r.stderr, 1), 200, (t) => ctx.reporter.redact(t))}` : ''}`);
          } catch (e) {
            // Once stopped, the connections closing under the steps is the expected end.
            if (!stopped) throw e;
          }
        }),
      );
    } finally {
      options.signal?.removeEventListener('abort', stop);
    }
  });
  // of the usage class when a host was not tried for a setting to fix (its placeholder address): gatheredError
  if (unreachable.length && !options.follow) throw gatheredError(unreachable.map((u) => u.error), `the logs of ${unreachable.map((u) => u.host.name).join(', ')} are not shown: cannot reach ${unreachable.length === 1 ? 'it' : 'them'} (see above)`, 'the logs of the hosts that answered are above');
}
