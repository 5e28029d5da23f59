// Runs an operation under the environment's lock on every host: all locks or none, released on success,
// failure and interruption (SIGINT/SIGTERM, e.g. a cancelled workflow). A run killed outright (SIGKILL)
// leaves a lock whose holder process died with the connection: the next run reports it as stale.
// To save round trips, the lock step also runs the operation's first look at the host (`inspect`), and
// the unlock step writes the run's audit lines.
import type { Environment } from '../config/environment.ts';
import { runnerNow, type OpsContext, type Session } from '../context.ts';
import { OpsError, StepError } from '../errors.ts';
import { runInfo } from '../runinfo.ts';
import { auditLine, type AuditEntry } from '../steps/audit.ts';
import { LOCK_BUSY_EXIT, acquireLock, describeHolder, parseLock, releaseLock } from '../steps/lock.ts';
import type { Remote, Step, StepResult } from '../remote/types.ts';

export class LockError extends OpsError {}

export interface LockedRun {
  /** Result of the `inspect` step run right after each host's lock was taken. */
  inspected: Map<string, StepResult>;
  /** Queue an audit entry for a host; written when its lock is released. */
  audit(host: string, entry: Omit<AuditEntry, 'time' | 'environment' | 'operation' | 'actor' | 'run'> & Partial<AuditEntry>): void;
}

async function acquire(remote: Remote, env: Environment, operation: string, ctx: OpsContext, inspect?: Step): Promise<{ pid: number; result: StepResult }> {
  const info = runInfo(ctx.env);
  const holderPid = await remote.hold();
  const step = acquireLock(env, { operation, actor: info.actor, runUrl: info.runUrl, holderPid, wait: env.config.switch.lock_wait }, inspect?.script);
  const result = await remote.run(step, { allowFailure: true });
  if (result.code === 0) return { pid: holderPid, result };
  if (parseLock(result).state === 'acquired') {
    // The lock is ours but the inspection after it failed: give the lock back before reporting.
    await remote.run(releaseLock(env, holderPid), { allowFailure: true });
  }
  if (result.code !== LOCK_BUSY_EXIT) throw new StepError(inspect ? `lock, ${inspect.name}` : 'lock', remote.name, result.code, result.stderr);
  const lock = parseLock(result);
  if (lock.state === 'stale')
    throw new LockError(
      `environment ${env.name} has a stale lock on ${remote.name}, left by ${describeHolder(lock.holder)}, which is no longer connected`,
      `check that nothing is still running on the host (e.g. a half-done deploy), then release it: ops lock release ${env.name}`,
    );
  throw new LockError(
    `environment ${env.name} is locked on ${remote.name} by ${describeHolder(lock.holder)}`,
    env.config.switch.lock_wait ? `waited ${env.config.switch.lock_wait}s; try again when it is done` : 'wait until it is done (or set switch.lock_wait to queue behind it)',
  );
}

export async function withLock<T>(ctx: OpsContext, session: Session, operation: string, fn: (run: LockedRun) => Promise<T>, options: { inspect?: Step } = {}): Promise<T> {
  const env = session.env;
  const info = runInfo(ctx.env);
  const held = new Map<string, { remote: Remote; pid: number }>();
  const pending = new Map<string, string[]>();
  const inspected = new Map<string, StepResult>();
  const releaseAll = async () => {
    const all = [...held.values()];
    held.clear();
    await Promise.allSettled(all.map(({ remote, pid }) => remote.run(releaseLock(env, pid, pending.get(remote.name) ?? []), { allowFailure: true })));
  };
  const onSignal = (signal: NodeJS.Signals) => {
    ctx.reporter.error(`${signal} received: releasing the lock and stopping`);
    for (const { remote } of held.values()) pending.set(remote.name, [...(pending.get(remote.name) ?? []), auditLine({ time: runnerNow(ctx).toISOString(), environment: env.name, operation, result: 'failed', actor: info.actor, run: info.runUrl || undefined, message: `interrupted by ${signal}` })]);
    void releaseAll()
      .then(() => session.close())
      .finally(() => process.exit(130));
  };
  const settled = await Promise.allSettled(
    [...session.remotes.values()].map(async (r) => {
      const { pid, result } = await acquire(r, env, operation, ctx, options.inspect);
      held.set(r.name, { remote: r, pid });
      inspected.set(r.name, result);
    }),
  );
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await releaseAll();
    throw failed.reason;
  }
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const run: LockedRun = {
    inspected,
    audit(host, entry) {
      const line = auditLine({ time: runnerNow(ctx).toISOString(), environment: env.name, operation, actor: info.actor, run: info.runUrl || undefined, ...entry } as AuditEntry);
      pending.set(host, [...(pending.get(host) ?? []), line]);
    },
  };
  try {
    return await fn(run);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await releaseAll();
  }
}
