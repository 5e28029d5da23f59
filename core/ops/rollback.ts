// ops rollback <env> [--to <release>]: back to a kept release in seconds — no build, no migration — through
// the same gapless switch as a deploy. The abandoned release is marked so it is not picked again.
import type { Environment } from '../config/environment.ts';
import { resolveTarget, type Target } from '../target.ts';
import { refuseCollisions } from '../config/siblings.ts';
import { clockSkewWarning, runnerNow, type OpsContext } from '../context.ts';
import { OpsError, StepError } from '../errors.ts';
import { otherSlot, type Slot } from '../layout.ts';
import { runInfo } from '../runinfo.ts';
import { failureDetail, reported, type Remote, type Step } from '../remote/types.ts';
import { onHost, validate } from '../shell.ts';
import type { AuditEntry } from '../steps/audit.ts';
import { deployState, markRelease } from '../steps/release.ts';
import { ROLLBACK_KEYS, START_FAILED_CLEAN, SWITCH_KEYS, rollbackStep, stopSlot, type RollbackEnds } from '../steps/switch.ts';
import { HostRun, type HostSwitch } from './host-run.ts';
import { withSession } from './hosts.ts';
import { parseState, supervisorDownError } from './host-state.ts';
import { withLock, type AuditEntryFields, type LockedRun } from './locked.ts';

export interface RollbackResult {
  environment: string;
  url: string;
  hosts: HostSwitch[];
}

/**
 * The rollback's step: the host chooses the release (`to`, or the one live before), starts, switches, marks the
 * release left and, at `ends.done`, writes the audit line (release and previous from the host) and lets go.
 */
function rollbackWork(env: Target, ctx: OpsContext, to: string | undefined, ends: RollbackEnds): Step {
  const info = runInfo(ctx.processEnv);
  const mark = markRelease(env, onHost('rollback_from'), 'abandoned', ['rolled back to ', onHost('release_id'), ` by ${info.actor} at ${runnerNow(ctx).toISOString()}`]);
  return rollbackStep(env, to, mark.script, ends);
}

/** What a rollback refused before its work did not touch. */
const ROLLBACK_UNTOUCHED = 'nothing was changed (no slot started or stopped; nginx and current as they were)';

/** The audit entry of a rollback that went live; release and previous are filled in on the host. */
const DONE: [AuditEntryFields, Partial<Record<keyof AuditEntry, string>>] = [{ result: 'success' }, { release: 'release_id', previous: 'audit_previous' }];

async function rollbackHost(ctx: OpsContext, env: Target, remote: Remote, locked: LockedRun, to: string | undefined): Promise<HostSwitch> {
  const h = new HostRun(ctx, remote, env, 'rollback');
  const state = parseState(locked.inspected.get(remote.name)!);
  const idle = otherSlot(state.slot ?? 'blue');
  // One host: the lock step did the work (`finish`); several: each host's step runs once every lock is taken.
  const fused = reported(locked.inspected.get(remote.name)!, ROLLBACK_KEYS.rollback) !== undefined;
  let r = locked.inspected.get(remote.name)!;
  if (!fused) {
    try {
      r = await remote.run(rollbackWork(env, ctx, to, { done: locked.closing(remote.name, ...DONE), refused: '' }));
    } catch (e) {
      // The step broke (timed out, lost its connection): whatever it started on the idle slot goes.
      await h.tryRun(stopSlot(env, idle));
      locked.audit(remote.name, { result: 'failed', previous: state.current, message: (e as Error).message.split('\n')[0]! });
      throw new OpsError(`${(e as Error).message}\n${remote.name} still serves ${state.current}`, (e as OpsError).hint);
    }
  }
  const verdict = reported(r, ROLLBACK_KEYS.rollback);
  const from = reported(r, ROLLBACK_KEYS.rollback_from) ?? state.current;
  const target = reported(r, ROLLBACK_KEYS.rollback_to) ?? to ?? '';
  const kept = state.releases.map((x) => x.id);
  if (verdict === 'no_live') throw new OpsError(`${remote.name} has no live release to roll back from`);
  if (verdict === 'supervisor_down') throw supervisorDownError(env, remote.name, state, ROLLBACK_UNTOUCHED, 'roll back again');
  if (verdict === 'none')
    throw new OpsError(`${remote.name} has no earlier healthy release to roll back to (kept: ${kept.join(', ') || 'none'})`, `pick one with --to (see ops releases ${env.name})`);
  if (verdict === 'not_kept') throw new OpsError(`release ${to} is not on ${remote.name} (kept: ${kept.join(', ')})`, `see ops releases ${env.name}`);
  if (verdict === 'never_live') {
    const record = state.releases.find((x) => x.id === to);
    const why = record?.status === 'failed' ? 'its deploy failed' : 'its deploy did not finish';
    throw new OpsError(
      `release ${to} never went live on ${remote.name} (${why}): a rollback goes back to a release that served; ${remote.name} still serves ${from}`,
      `to run that commit, deploy it (a new release, built and health-checked): ops deploy ${env.name} --ref ${record?.sha || to?.split('-').pop()}`,
    );
  }
  const result: HostSwitch = { host: remote.name, release: verdict === 'noop' ? from : target, previous: from, noop: verdict === 'noop', steps: h.steps, notes: [] };
  const skew = clockSkewWarning(ctx, remote.name, state.hostTime);
  if (skew) {
    ctx.reporter.warn(skew);
    result.notes.push(`warning: ${skew}`);
  }
  if (result.noop) return { ...result, notes: [`${result.release} is already live`] };
  if (verdict !== 'ok') throw new OpsError(`${remote.name} did not say what it rolled back to (${verdict ?? 'no answer'})`, `see ops status ${env.name} and ops audit ${env.name}`);
  const slot = (reported(r, ROLLBACK_KEYS.rollback_slot) as Slot | undefined) ?? idle;
  const failed = (message: string) => locked.audit(remote.name, { result: 'failed', release: target, previous: from, message });
  const exit = reported(r, ROLLBACK_KEYS.rollback_exit);
  try {
    await h.record(`${fused ? 'lock + ' : ''}start ${slot} + switch`, r, exit === undefined ? 0 : Number(exit) || 1);
  } catch (e) {
    // Failed after `current` flipped (its records): the release is live on that slot and serves; said so, the slot kept.
    if (reported(r, SWITCH_KEYS.switched) === target) {
      failed('live, but recording the switch failed');
      throw new OpsError(`${(e as Error).message}\n${target} is live on ${remote.name} and serves; recording it (the host's history) failed after the switch`, `see ops status ${env.name} and ops releases ${env.name}`);
    }
    if (!(e instanceof StepError && e.exitCode === START_FAILED_CLEAN)) await h.tryRun(stopSlot(env, slot));
    failed((e as Error).message.split('\n')[0]!);
    throw new OpsError(`${(e as Error).message}\n${remote.name} still serves ${from}`, (e as OpsError).hint);
  }
  const stopExit = reported(r, ROLLBACK_KEYS.rollback_stop_exit);
  if (stopExit !== undefined) {
    failed('live, but stopping the previous slot failed');
    throw new OpsError(`${target} is live on ${remote.name} and serves; stopping the previous slot (${otherSlot(slot)}) failed with exit code ${stopExit}\n${failureDetail(r.stdout, r.stderr)}`, `see ops status ${env.name}: the previous release may still run there`);
  }
  if (!fused) locked.closed(remote.name, r);
  return result;
}

/**
 * Put back the release that was live before the current one on each host (its history), or release `to`,
 * by moving traffic to the warm slot (starting it if needed), under the lock. The host chooses the release
 * (core/steps/switch.ts rollbackStep); with one host, that whole work runs in the lock step: one round trip.
 * @returns per host the release now live and the one before. @throws OpsError for an invalid id or a host
 * with nothing to go back to; a failure leaves that host serving what it served.
 */
export async function rollback(ctx: OpsContext, environment: Environment, to?: string): Promise<RollbackResult> {
  const env = resolveTarget(environment);
  if (to) validate('release', to);
  // Apps sharing a host: a rollback writes this app's site and starts its programs, so a collision is refused first.
  refuseCollisions(env, ctx.reporter);
  // Several hosts: every lock is taken before any host changes, so the work is a step of its own after the lock.
  const alone = env.hosts.length === 1;
  const hosts = await withSession(ctx, env, (session) =>
    withLock(
      ctx,
      session,
      'rollback',
      (locked) => {
        // A host without supervisord refuses the rollback everywhere, before any host changes (one host: its step
        // refused on its own, supervisor_down).
        for (const remote of session.remotes.values()) {
          const state = parseState(locked.inspected.get(remote.name)!);
          if (state.supervisorDown && !locked.finished(remote.name)) throw supervisorDownError(env, remote.name, state, `${ROLLBACK_UNTOUCHED}${alone ? '' : ' on any host'}`, 'roll back again');
        }
        return session.each((remote) => rollbackHost(ctx, env, remote, locked, to), { batch: env.config.switch.batch_size });
      },
      {
        // The live release is being left: no need to probe it first; nor to know what sending code needs. Whether
        // supervisord runs, though: without it no slot starts.
        inspect: deployState(env, undefined, { supervisor: true }),
        ...(alone && {
          finish: (unlock) => rollbackWork(env, ctx, to, { done: unlock(...DONE), refused: unlock() }).script,
          finishSeconds: rollbackWork(env, ctx, to, { done: '', refused: '' }).timeout,
        }),
      },
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
