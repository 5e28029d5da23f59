// ops rollback <env> [--to <release>]: back to a kept release in seconds — no build, no migration — through
// the same gapless switch as a deploy. The abandoned release is marked so it is not picked again.
import type { Environment } from '../config/environment.ts';
import { resolveTarget, type Target } from '../target.ts';
import { refuseCollisions } from '../config/siblings.ts';
import { clockSkewWarning, runnerNow, type OpsContext } from '../context.ts';
import { OpsError, StepError } from '../errors.ts';
import { otherSlot } from '../layout.ts';
import { runInfo } from '../runinfo.ts';
import type { Remote } from '../remote/types.ts';
import { validate } from '../shell.ts';
import { previousRelease } from '../steps/history.ts';
import { deployState, markRelease } from '../steps/release.ts';
import { START_FAILED_CLEAN, rollbackStep, stopSlot } from '../steps/switch.ts';
import { HostRun, type HostSwitch } from './host-run.ts';
import { withSession } from './hosts.ts';
import { parseState } from './host-state.ts';
import { withLock, type LockedRun } from './locked.ts';

export interface RollbackResult {
  environment: string;
  url: string;
  hosts: HostSwitch[];
}

async function rollbackHost(ctx: OpsContext, env: Target, remote: Remote, locked: LockedRun, to: string | undefined): Promise<HostSwitch> {
  const h = new HostRun(ctx, remote, env);
  const state = parseState(locked.inspected.get(remote.name)!);
  if (!state.current) throw new OpsError(`${remote.name} has no live release to roll back from`);
  const kept = state.releases.map((r) => r.id);
  let target = to;
  if (!target) {
    // The release live before the current one, in the order releases went live on this host (its history),
    // whatever the release ids (the runners' clocks) say.
    target = previousRelease(state.releases, state.current)?.id;
    if (!target)
      throw new OpsError(`${remote.name} has no earlier healthy release to roll back to (kept: ${kept.join(', ') || 'none'})`, `pick one with --to (see ops releases ${env.name})`);
  } else if (!kept.includes(target)) {
    throw new OpsError(`release ${target} is not on ${remote.name} (kept: ${kept.join(', ')})`, `see ops releases ${env.name}`);
  }
  const result: HostSwitch = { host: remote.name, release: target, previous: state.current, noop: target === state.current, steps: h.steps, notes: [] };
  const skew = clockSkewWarning(ctx, remote.name, state.hostTime);
  if (skew) {
    ctx.reporter.warn(skew);
    result.notes.push(`warning: ${skew}`);
  }
  if (result.noop) return { ...result, notes: [`${target} is already live`] };
  const live = state.slot ?? 'blue';
  const slot = otherSlot(live);
  const info = runInfo(ctx.processEnv);
  const fields = { result: 'success' as const, release: target, previous: state.current };
  // One round trip after the lock step: start (or reuse) the target on the other slot, switch, mark the
  // release left as abandoned, and (keeping the previous release warm) write the audit line and let go.
  const switched = rollbackStep(
    env,
    slot,
    target,
    state.certificate,
    markRelease(env, state.current, 'abandoned', `rolled back to ${target} by ${info.actor} at ${runnerNow(ctx).toISOString()}`).script,
    env.config.switch.keep_previous ? locked.closing(remote.name, fields) : '',
  );
  try {
    locked.closed(remote.name, await h.run(switched));
  } catch (e) {
    if (!(e instanceof StepError && e.exitCode === START_FAILED_CLEAN)) await h.tryRun(stopSlot(env, slot));
    throw new OpsError(`${(e as Error).message}\n${remote.name} still serves ${state.current}`, (e as OpsError).hint);
  }
  if (!env.config.switch.keep_previous) {
    const stop = stopSlot(env, live, env.config.switch.drain);
    locked.closed(remote.name, await h.run({ ...stop, script: `${stop.script}\n${locked.closing(remote.name, fields)}` }));
  }
  return result;
}

/**
 * Put back the release that was live before the current one on each host (its history), or release `to`,
 * by moving traffic to the warm slot (starting it if needed), under the lock.
 * @returns per host the release now live and the one before. @throws OpsError for an invalid id or a host
 * with nothing to go back to; a failure leaves that host serving what it served.
 */
export async function rollback(ctx: OpsContext, environment: Environment, to?: string): Promise<RollbackResult> {
  const env = resolveTarget(environment);
  if (to) validate('release', to);
  // Apps sharing a host: a rollback writes this app's site and starts its programs, so a collision is refused first.
  refuseCollisions(env, ctx.reporter);
  const hosts = await withSession(ctx, env, (session) =>
    withLock(
      ctx,
      session,
      'rollback',
      (locked) => session.each((remote) => rollbackHost(ctx, env, remote, locked, to), { batch: env.config.switch.batch_size }),
      // The live release is being left: no need to probe it first; nor to know what sending code needs.
      { inspect: deployState(env) },
    ),
  );
  return { environment: env.name, url: env.url, hosts };
}

/** The job summary (Markdown) of a rollback: one row per host. */
export function rollbackSummary(r: RollbackResult): string {
  const lines = [`### Rollback of ${r.environment}`, '', '| host | from | to | |', '|---|---|---|---|'];
  for (const h of r.hosts) lines.push(`| ${h.host} | \`${h.previous}\` | \`${h.release}\` | ${h.noop ? 'already live' : `${(h.steps.reduce((a, s) => a + s.ms, 0) / 1000).toFixed(1)}s`} |`);
  return lines.join('\n');
}
