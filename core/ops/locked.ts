// Runs an operation under the environment's lock on every host: all locks or none, released on success,
// failure and interruption (SIGINT/SIGTERM, e.g. a cancelled workflow). A run killed outright (SIGKILL)
// leaves a lock whose holder process died with the connection: the next run reports it as stale.
import type { Environment } from '../config/environment.ts';
import type { OpsContext, Session } from '../context.ts';
import { OpsError, StepError } from '../errors.ts';
import { runInfo } from '../runinfo.ts';
import { LOCK_BUSY_EXIT, acquireLock, describeHolder, parseLock, releaseLock } from '../steps/lock.ts';
import type { Remote } from '../remote/types.ts';

export class LockError extends OpsError {}

async function acquire(remote: Remote, env: Environment, operation: string, ctx: OpsContext): Promise<number> {
  const info = runInfo(ctx.env);
  const holderPid = await remote.hold();
  const result = await remote.run(acquireLock(env, { operation, actor: info.actor, runUrl: info.runUrl, holderPid, wait: env.config.switch.lock_wait }), {
    allowFailure: true,
  });
  if (result.code === 0) return holderPid;
  if (result.code !== LOCK_BUSY_EXIT) throw new StepError('lock', remote.name, result.code, result.stderr);
  const lock = parseLock(result);
  if (lock.state === 'stale')
    throw new LockError(
      `environment ${env.name} has a stale lock on ${remote.name}: left by ${describeHolder(lock.holder)}, whose run is no longer connected`,
      `check that nothing is still running on the host (e.g. a half-done deploy), then release it: ops lock release ${env.name}`,
    );
  throw new LockError(
    `environment ${env.name} is locked on ${remote.name} by ${describeHolder(lock.holder)}`,
    env.config.switch.lock_wait ? `waited ${env.config.switch.lock_wait}s; try again when it is done` : 'wait until it is done (or set switch.lock_wait to queue behind it)',
  );
}

export async function withLock<T>(ctx: OpsContext, session: Session, operation: string, fn: () => Promise<T>): Promise<T> {
  const env = session.env;
  const held: [Remote, number][] = [];
  const releaseAll = async () => {
    const all = held.splice(0);
    await Promise.allSettled(all.map(([remote, pid]) => remote.run(releaseLock(env, pid), { allowFailure: true })));
  };
  const onSignal = (signal: NodeJS.Signals) => {
    ctx.reporter.error(`${signal} received: releasing the lock and stopping`);
    void releaseAll()
      .then(() => session.close())
      .finally(() => process.exit(130));
  };
  const settled = await Promise.allSettled([...session.remotes.values()].map(async (r) => held.push([r, await acquire(r, env, operation, ctx)])));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await releaseAll();
    throw failed.reason;
  }
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await fn();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await releaseAll();
  }
}
