// ops rollback <env> [--to <release>]: back to a kept release in seconds — no build, no migration — through
// the same gapless switch as a deploy. The abandoned release is marked so it is not picked again.
import { distance } from '../config/schema.ts';
import type { Environment } from '../config/environment.ts';
import { resolveTarget, type Target } from '../target.ts';
import { refuseCollisions } from '../config/siblings.ts';
import { clockSkewWarning, runnerNow, type OpsContext } from '../context.ts';
import { auditReason, ConnectionLostError, InputError, OpsError, StepError } from '../errors.ts';
import { otherSlot, type Slot } from '../layout.ts';
import { runInfo } from '../runinfo.ts';
import { failureDetail, reported, type Remote, type Step, type StepResult } from '../remote/types.ts';
import { onHost, patternOf, validate } from '../shell.ts';
import type { AuditEntry } from '../steps/audit.ts';
import { RELEASE_KEYS, deployState, markRelease, nginxMasked, nginxMaskedTest } from '../steps/release.ts';
import { PREVIOUS_KEYS, ROLLBACK_KEYS, START_FAILED_CLEAN, SWITCH_KEYS, putPreviousBack, rollbackStep, servedAssetDirs, unstageAssets, type RollbackEnds } from '../steps/switch.ts';
import { HostRun, reportNginxStarted, type HostSwitch } from './host-run.ts';
import { withSession } from './hosts.ts';
import { nginxMaskedError, nginxUnreadyError, parseState, pendingNames, partialState, portsTaken, portsTakenError, supervisorDownError, type HostState, type PortsRefusal } from './host-state.ts';
import { settingsChanged, settingsDigest } from './deploy-plan.ts';
import { failedRun, withLock, type AuditEntryFields, type LockedRun } from './locked.ts';
import { markdownValues, type ValueFormat } from '../report.ts';

export interface RollbackResult {
  environment: string;
  url: string;
  /** Nothing to do: the release asked for was live on every host already (each host's `noop`), as a deploy's `noop`. */
  noop: boolean;
  hosts: HostSwitch[];
}

/**
 * The rollback's step: the host chooses the release (`to`, or the one live before), starts, switches, marks the
 * release left and, at `ends.done`, writes the audit line (release and previous from the host) and lets go.
 */
function rollbackWork(env: Target, ctx: OpsContext, to: string | undefined, ends: RollbackEnds, settings: string | undefined): Step {
  const info = runInfo(ctx.processEnv);
  const mark = markRelease(env, onHost('rollback_from'), 'abandoned', ['rolled back to ', onHost('release_id'), ` by ${info.actor} at ${runnerNow(ctx).toISOString()}`]);
  return rollbackStep(env, to, mark.script, ends, settings);
}

/**
 * Today's settings (settingsDigest): what the rollback renders programs and nginx from, recorded for the release it
 * puts live. undefined when they cannot be read (a site template gone): the rollback goes on, saying nothing of them.
 */
function todaysSettings(env: Target): string | undefined {
  try {
    return settingsDigest(env);
  } catch {
    return undefined;
  }
}

/**
 * Settings a rollback does not apply to the release it puts live: its .env's (the release keeps its own) and its
 * build's (it is not built again). The others shape its programs and nginx, rendered from today's.
 */
const NOT_RENDERED = new Set(['env', 'dotenv', 'secrets', 'release', 'packages']);

/** What a rollback to `target` (from `from`) on a host ran with, as the host reported it (rollbackStep). */
export interface RollbackSettings {
  /** The settings keys (those a rollback renders) that differ from those `target` last ran with; undefined: no record of them. */
  changed?: string[];
  /** `target`'s own .env and environ against `from`'s: `same`, `differs`, or undefined (not compared). */
  dotenv?: string;
}

/** The settings part of a rollback's host answer: what it last ran with against `today` (settingsDigest). */
export function rollbackSettings(r: StepResult, today: string | undefined): RollbackSettings {
  const changed = today === undefined ? undefined : settingsChanged(reported(r, ROLLBACK_KEYS.rollback_settings), today)?.filter((k) => !NOT_RENDERED.has(k));
  return { ...(changed && { changed }), ...(reported(r, ROLLBACK_KEYS.rollback_dotenv) && { dotenv: reported(r, ROLLBACK_KEYS.rollback_dotenv) }) };
}

/**
 * One line saying what `target` runs with after a rollback from `from`, when it is not simply what it last ran with:
 * its programs and nginx rendered from today's settings that differ from those it last ran with (the keys named, no
 * value), its own .env (from its deploy) that differs from the one `from` ran with. undefined when neither is known
 * to differ (a record without settings says nothing of them).
 */
export function settingsNote(target: string, from: string, s: RollbackSettings): string | undefined {
  const settings = s.changed?.length ? `today's, not those ${target} last ran with (they differ: ${s.changed.join(', ')})` : undefined;
  const dotenv = s.dotenv === 'differs' ? `its .env is its own, from its deploy, and differs from the one ${from} ran with` : undefined;
  if (!settings && !dotenv) return undefined;
  return `settings: ${settings ?? (s.changed ? `those ${target} last ran with` : "today's (whether they differ from those it last ran with is not recorded)")}${dotenv ? `; ${dotenv}` : ''}`;
}

/**
 * The kept release a `--to` id not kept was meant as: the only one a slip or two away (a digit mistyped; ids of one day
 * differ in a few digits, so no further). undefined when none, or several, fit. (An id of another form is refused
 * before: the release kind of core/shell.ts.)
 */
function keptMeant(to: string, kept: string[]): string | undefined {
  const close = kept.filter((k) => distance(to, k) <= 2);
  return close.length === 1 ? close[0] : undefined;
}

/** Why a failed rollback's --json names no release (`release` null): it ended before one was chosen. */
const ROLLBACK_NONE = 'none was chosen: the rollback ended before it chose the release to go back to (see reason)';

/** What a rollback refused before its work did not touch. */
const ROLLBACK_UNTOUCHED = 'nothing was changed (no slot started or stopped; nginx and current as they were)';

/** How a rollback refused for a port of the idle slot held by a process not the slot's own (portsTakenError) says so. */
const ROLLBACK_PORTS: PortsRefusal = { starting: 'this rollback would start its release on', nothing: ROLLBACK_UNTOUCHED, again: 'roll back again' };

/** The slot a rollback starts on in a host's state: the other than the live one (green when none is recorded, as rollbackStep). */
function rollbackSlot(state: Pick<HostState, 'slot'>): Slot {
  return otherSlot(state.slot ?? 'blue');
}

/**
 * A one-host rollback's work in its lock step (`finish`), refused on the host before it touches anything when the
 * state read just before found nginx stopped with its unit masked (deployState's `nginx`: REPORT_NGINX_STOPPED),
 * the verdict `nginx_masked`, or something in nginx the switch would fail on (nginxReadiness: REPORT_NGINX_UNREADY),
 * the verdict `nginx_unready`; then `refused` ('' keeps the lock: the runner says so, rollbackRefusal, and audits it).
 */
export function unlessRefused(work: string, refused: string): string {
  return `if ${nginxMaskedTest('REPORT_NGINX_STOPPED')}; then
  ops_report ${ROLLBACK_KEYS.rollback} nginx_masked
  ${refused || ':'}
elif [ -n "\${REPORT_NGINX_UNREADY:-}" ]; then
  ops_report ${ROLLBACK_KEYS.rollback} nginx_unready
  ${refused || ':'}
else
${work}
fi`;
}

/**
 * What refuses a rollback on every host before any host changes, from the lock step's state reads (each host's,
 * `inspected`; hosts never provisioned were refused by their lock step, withLock's LockOptions.unprovisioned), in order: nginx stopped with its unit masked (nginxMaskedError: the switch could not start it),
 * what in nginx the switch would fail on, as a deploy's read finds it (nginxUnreadyError: another server block taking
 * the site's visitors, a file nginx -t refuses, another file naming a slot's port; the first host's),
 * supervisord not running (no slot starts; every such host), a port of the slot a host would start on held by a process not that
 * slot's own (portsTakenError; the previous release kept warm there is the slot's own). Every host in one error,
 * the first kind found; `inspected`: each host's lock step result, in the environment's order. `done(host)`: the host's
 * lock step did the work (one host) and let go: it decided on supervisord and the ports itself. undefined when none refuses. Pure.
 */
export function rollbackRefusal(env: Target, inspected: [host: string, result: StepResult][], done: (host: string) => boolean): OpsError | undefined {
  const alone = inspected.length === 1;
  const untouched = `${ROLLBACK_UNTOUCHED}${alone ? '' : ' on any host'}`;
  const hosts = inspected.map(([host, r]) => ({ host, r, state: parseState(r) }));
  const masked = hosts.filter((h) => nginxMasked(h.state)).map((h) => h.host);
  if (masked.length) return nginxMaskedError(masked, untouched, 'roll back');
  // What in nginx the switch would fail on (another server block, nginx -t, a file naming a slot's port), as a deploy refuses it.
  for (const h of hosts) {
    const unready = done(h.host) ? undefined : nginxUnreadyError(env, h.host, h.state, { nothing: untouched, taken: untouched, again: 'roll back again' });
    if (unready) return unready;
  }
  const down = hosts.filter((h) => h.state.supervisorDown && !done(h.host));
  if (down.length) return supervisorDownError(env, down.map((h) => ({ host: h.host, current: h.state.current })), untouched, 'roll back again');
  const taken = hosts.flatMap(({ host, r, state }) => (done(host) || reported(r, ROLLBACK_KEYS.rollback) !== undefined ? [] : (portsTaken(env, host, state, r, rollbackSlot(state)) ?? [])));
  if (taken.length) return portsTakenError(env, taken, { ...ROLLBACK_PORTS, ...(taken.length === 1 && !alone && { nothing: untouched }) });
  return undefined;
}

/**
 * What refuses a rollback of several hosts to `target` (the environment's one release: `--to`, or environmentRollback's
 * choice) before any host changes, from each host's lock step read (`hosts`, in the environment's order; those whose
 * lock step ended the run left out): a host with nothing live (added to the environment since its last deploy, never
 * deployed), one that does not keep `target`, or keeps it but it never went live there (its deploy failed or was cut
 * short). Each host's own step refuses these too (rollback_choice), but only once the hosts of the batches before it
 * had switched: a rollback half done, refused. Every such host named in one error; undefined when none (or no
 * `target`: each host then chooses, and the first refuses for all). Pure.
 */
export function rollbackTargetRefusal(env: Target, hosts: { host: string; state: Pick<HostState, 'current' | 'releases'> }[], target: string | undefined): OpsError | undefined {
  if (!target) return undefined;
  const why = hosts.flatMap(({ host, state }): { host: string; text: string }[] => {
    const say = (text: string) => [{ host, text }];
    if (!state.current) return say(`${host} has no live release (never deployed: added to the environment since its last deploy?)`);
    if (state.current === target) return [];
    const kept = state.releases.find((x) => x.id === target);
    if (!kept) return say(`${host} does not keep ${target} (it serves ${state.current}; kept: ${state.releases.map((x) => x.id).join(', ') || 'none'})`);
    if (kept.liveSeq === undefined) return say(`${target} never went live on ${host} (its deploy there ${kept.status === 'failed' ? 'failed' : 'did not finish'}; it serves ${state.current})`);
    return [];
  });
  if (!why.length) return undefined;
  const sha = hosts.flatMap(({ state }) => state.releases).find((x) => x.id === target && x.sha)?.sha || target.split('-').pop();
  return new OpsError(
    `the rollback of ${env.name} to ${target} cannot go on every host: ${why.map((w) => w.text).join('; ')}; ${ROLLBACK_UNTOUCHED} on any host`,
    `to put its commit live on every host, deploy it (built anew where it is missing): ops deploy ${env.name} --ref ${sha}; or leave ${why.map((w) => w.host).join(', ')} out of the hosts in environments/${env.name}/environment.yml while you roll the others back`,
  );
}

/**
 * A rollback of several hosts stopped by a host's failure (`e`): the hosts of the batches after it never ran their
 * step (switch.batch_size). Each of those is audited as stopped before its turn (`audit`), and `e`, an OpsError, gets
 * what each host serves now (its release rolled back to, the failed host's own error above, or the release it served
 * all along), as a stopped deploy says it. `inspected`: each host's lock step read, in the environment's order;
 * `ended`: how each host's step ended, for those that ran. @returns the error to throw.
 */
export function rollbackStopped(env: Target, e: unknown, inspected: [host: string, result: StepResult][], ended: Map<string, HostSwitch | 'failed'>, audit: (host: string, message: string) => void, redact: (text: string) => string): unknown {
  const failed = inspected.find(([host]) => ended.get(host) === 'failed')?.[0];
  const lines = inspected.map(([host, r]) => {
    const end = ended.get(host);
    const current = parseState(r).current;
    if (end === 'failed') return `${host}: see its error above`;
    if (end) return `${host}: ${end.release}${end.noop ? ' (already live)' : ' (rolled back)'}`;
    audit(host, auditReason(`rollback stopped before this host (${failed ?? 'another host'} failed: ${auditReason(e, redact)})`));
    return `${host}: unchanged (${current ? `${current} still live` : 'nothing live'}; the rollback stopped before its turn)`;
  });
  if (!(e instanceof OpsError)) return e;
  return new OpsError(`${e.message}\nrollback stopped; hosts now run:\n  ${lines.join('\n  ')}`, e.hint);
}

/** The audit entry of a rollback that went live; release and previous are filled in on the host. */
const DONE: [AuditEntryFields, Partial<Record<keyof AuditEntry, string>>] = [{ result: 'success' }, { release: 'release_id', previous: 'audit_previous' }];

/** The audit entry of a rollback to the release already live (`--to` it): a no-op, audited as a deploy's no-op is. */
const ALREADY_LIVE: AuditEntryFields = { result: 'no-op', message: 'already live' };

/**
 * A one-host rollback's `refused` end in its lock step: the verdict `noop` (the release asked for is live) writes its
 * no-op audit line (release and previous: the live id, read on the host) and lets go; a refusal keeps the lock, so that
 * the runner audits it as a failure saying why (in its words, as for several hosts) when it lets go.
 */
export function refusedOrNoop(unlock: (entry?: AuditEntryFields, vars?: Partial<Record<keyof AuditEntry, string>>) => string): string {
  return `if [ "$rollback_verdict" = noop ]; then
  noop_id=\${rollback_from//[^A-Za-z0-9._-]/_}
  ${unlock(ALREADY_LIVE, { release: 'noop_id', previous: 'noop_id' })}
fi`;
}

async function rollbackHost(ctx: OpsContext, env: Target, remote: Remote, locked: LockedRun, to: string | undefined, today: string | undefined): Promise<HostSwitch> {
  const h = new HostRun(ctx, remote, env, 'rollback');
  const redact = (t: string) => ctx.reporter.redact(t);
  const state = parseState(locked.inspected.get(remote.name)!);
  const idle = rollbackSlot(state);
  // An interruption's audit line names what the rollback leaves (and the release asked for, if any).
  locked.about(remote.name, { ...(state.current && { previous: state.current }), ...(to && { release: to }) });
  // One host: the lock step did the work (`finish`); several: each host's step runs once every lock is taken.
  const fused = reported(locked.inspected.get(remote.name)!, ROLLBACK_KEYS.rollback) !== undefined;
  let r = locked.inspected.get(remote.name)!;
  if (!fused) {
    try {
      r = await remote.run(rollbackWork(env, ctx, to, { done: locked.closing(remote.name, ...DONE), refused: '' }, today));
    } catch (e) {
      // Its connection lost: the switch goes on without it, so what serves is the host's word, asked over a new
      // connection once it ended (which also puts back a slot it filled with a release that did not go live).
      const lostConnection = e instanceof ConnectionLostError;
      const live = lostConnection ? await locked.settleLost(remote.name) : undefined;
      if (lostConnection && live === undefined) {
        // The host not asked again: neither live nor not, so neither said.
        const unknown = `what is live on ${remote.name} is not known: its switch goes on there without the connection, and the host could not be asked again`;
        locked.audit(remote.name, { result: 'failed', previous: state.current, message: `${auditReason(e, redact)}; ${unknown}` });
        throw new OpsError(`${(e as Error).message}\n${unknown}`, `see ops status ${env.name} (what current names and what serves)`);
      }
      if (live && live !== state.current) {
        const undone = `the switch ended on the host after the connection was lost${env.config.switch.keep_previous ? '' : '; the previous slot may still run (stopping it was cut off)'}`;
        locked.wentLive(remote.name, undone);
        locked.audit(remote.name, { result: 'failed', release: live, previous: state.current, message: `live, but ${auditReason(e, redact)}; ${undone}` });
        throw new OpsError(`${(e as Error).message}\n${live} is live on ${remote.name} and serves: ${undone}`, `see ops status ${env.name}`);
      }
      // The step broke (timed out, lost its connection): whatever it started on the idle slot goes, and the release
      // the slot held before comes back (putPreviousBack, from the start's records in the lock).
      if (!lostConnection) await h.tryRun(putPreviousBack(env, idle));
      locked.audit(remote.name, { result: 'failed', previous: state.current, message: auditReason(e, redact) });
      throw new OpsError(`${(e as Error).message}\n${remote.name} still serves ${state.current}`, (e as OpsError).hint);
    }
  }
  const verdict = reported(r, ROLLBACK_KEYS.rollback);
  const from = reported(r, ROLLBACK_KEYS.rollback_from) ?? state.current;
  const target = reported(r, ROLLBACK_KEYS.rollback_to) ?? to ?? '';
  // What the run is about there from now on (a failure's --json, an interruption's audit line): the release it goes back to.
  if (target) locked.about(remote.name, { release: target });
  const kept = state.releases.map((x) => x.id);
  // Refused by the host with nothing changed: audited as a failed run, saying why (a one-host rollback's lock step
  // refused and kept the lock for it).
  const refuse = (err: OpsError): OpsError => {
    if (!locked.finished(remote.name)) locked.audit(remote.name, { result: 'failed', ...(from && { previous: from }), message: auditReason(`refused, nothing changed: ${auditReason(err, redact)}`) });
    return err;
  };
  if (verdict === 'nginx_unready') throw refuse(new OpsError(`nginx on ${remote.name} would fail the switch: ${ROLLBACK_UNTOUCHED}; ${remote.name} still serves ${from}`, `ops status ${env.name} says what (nginx -t, another server block, a file naming a slot's port); fix it, then roll back again`));
  if (verdict === 'no_live')
    throw refuse(new OpsError(`${remote.name} has no live release to roll back from (current names none): ${ROLLBACK_UNTOUCHED}`, `a rollback only moves traffic back between kept releases: deploy instead (ops deploy ${env.name} --ref <ref>; ops releases ${env.name} lists what is kept there)`));
  if (verdict === 'supervisor_down') throw refuse(supervisorDownError(env, [{ host: remote.name, current: state.current }], ROLLBACK_UNTOUCHED, 'roll back again'));
  if (verdict === 'ports_taken') {
    const taken = portsTaken(env, remote.name, state, r, idle);
    if (taken) throw refuse(portsTakenError(env, [taken], ROLLBACK_PORTS));
    throw refuse(new OpsError(`a port of slot ${idle} is taken on ${remote.name} by a process that is not that slot's own: ${ROLLBACK_UNTOUCHED}; ${remote.name} still serves ${from}`, `ops status ${env.name} shows who listens there; free the port, then roll back again`));
  }
  if (verdict === 'none') {
    // --to helps only when a release that served is kept besides the live one; else only a deploy brings one back.
    // One rolled back from (abandoned) served too: never the default, but --to takes it (history.sh rollback_choice).
    const others = state.releases.filter((x) => x.id !== from);
    const healthy = others.some((x) => x.status === 'ok');
    const abandoned = others.some((x) => x.status === 'abandoned');
    const hint =
      healthy || abandoned
        ? `pick one with --to (see ops releases ${env.name})${healthy ? '' : ': a release rolled back from is never the default, but it served, and --to takes it'}`
        : `no other release that served is kept on ${remote.name}: deploy the commit you want instead (ops deploy ${env.name} --ref <ref>)`;
    throw refuse(new OpsError(`${remote.name} has no earlier healthy release to roll back to (kept: ${kept.join(', ') || 'none'})`, hint));
  }
  if (verdict === 'not_kept') {
    const meant = to ? keptMeant(to, kept) : undefined;
    throw refuse(new OpsError(`release ${to} is not on ${remote.name} (kept: ${kept.join(', ')})${meant ? ` (did you mean ${meant}?)` : ''}`, `see ops releases ${env.name}`));
  }
  if (verdict === 'never_live') {
    const record = state.releases.find((x) => x.id === to);
    const why = record?.status === 'failed' ? 'its deploy failed' : 'its deploy did not finish';
    throw refuse(new OpsError(
      `release ${to} never went live on ${remote.name} (${why}): a rollback goes back to a release that served; ${remote.name} still serves ${from}`,
      `to run that commit, deploy it (a new release, built and health-checked): ops deploy ${env.name} --ref ${record?.sha || to?.split('-').pop()}`,
    ));
  }
  const result: HostSwitch = { host: remote.name, release: verdict === 'noop' ? from : target, previous: from, noop: verdict === 'noop', steps: h.steps, notes: [] };
  const skew = clockSkewWarning(ctx, remote.name, state.hostTime);
  if (skew) {
    ctx.reporter.warn(skew);
    result.notes.push(`warning: ${skew}`);
  }
  const pending = pendingNames(env, remote.name, state);
  if (pending) {
    ctx.reporter.warn(pending);
    result.notes.push(`warning: ${pending}`);
  }
  if (result.noop) {
    // Audited as a deploy's no-op is (one host: the lock step wrote it, refusedOrNoop).
    if (!locked.finished(remote.name)) locked.audit(remote.name, { ...ALREADY_LIVE, release: from, previous: from });
    return { ...result, notes: [`${result.release} is already live`] };
  }
  if (verdict !== 'ok') throw new OpsError(`${remote.name} did not say what it rolled back to (${verdict ?? 'no answer'})`, `see ops status ${env.name} and ops audit ${env.name}`);
  const slot = (reported(r, ROLLBACK_KEYS.rollback_slot) as Slot | undefined) ?? idle;
  // What the start stopped that our programs had left running on the slot (leftovers_down's line): the lock step that
  // did a one-host rollback shows no lines as it runs, so said here, as a deploy's start says it.
  if (fused) for (const line of r.stdout.split('\n').filter((l) => l.startsWith('stopped what release '))) ctx.reporter.line(remote.name, line, 'stdout');
  const ranWith = rollbackSettings(r, today);
  const note = settingsNote(target, from, ranWith);
  const failed = (message: string) => locked.audit(remote.name, { result: 'failed', release: target, previous: from, message });
  const exit = reported(r, ROLLBACK_KEYS.rollback_exit);
  try {
    await h.record(`${fused ? 'lock + ' : ''}start ${slot} + switch`, r, exit === undefined ? 0 : Number(exit) || 1);
  } catch (e) {
    // Failed after `current` flipped (its records): the release is live on that slot and serves; said so, the slot kept.
    if (reported(r, SWITCH_KEYS.switched) === target) {
      locked.wentLive(remote.name, 'recording the switch failed');
      failed(`live, but recording the switch failed: ${auditReason(e, redact)}`);
      throw new OpsError(`${(e as Error).message}\n${target} is live on ${remote.name} and serves; recording it (the host's history) failed after the switch`, `see ops status ${env.name} and ops releases ${env.name}`);
    }
    // Not cleanly (the step could not put the slot back itself): the release the slot held before the start comes back.
    let back: string | undefined;
    if (!(e instanceof StepError && e.exitCode === START_FAILED_CLEAN)) {
      const put = await h.tryRun(putPreviousBack(env, slot));
      back = put && reported(put, PREVIOUS_KEYS.previous_back)?.trim();
    }
    failed(auditReason(e, redact));
    const message = `${(e as Error).message}${back ? `\n${remote.name}: ${back}` : ''}`;
    throw new OpsError(`${message}\n${remote.name} still serves ${from}`, joinHints((e as OpsError).hint, unhealthyHint(env, state, target, from, ranWith, message)));
  }
  // Live there from now on: what a failure or an interruption of the run says of this host (--json's `live`).
  locked.wentLive(remote.name, '');
  const stopExit = reported(r, ROLLBACK_KEYS.rollback_stop_exit);
  if (stopExit !== undefined) {
    failed(`live, but stopping the previous slot failed: ${auditReason(new StepError(`stop ${otherSlot(slot)}`, remote.name, Number(stopExit), failureDetail(r.stdout, r.stderr, redact)), redact)}`);
    throw new OpsError(`${target} is live on ${remote.name} and serves; stopping the previous slot (${otherSlot(slot)}) failed with exit code ${stopExit}\n${failureDetail(r.stdout, r.stderr, redact)}`, `see ops status ${env.name}: the previous release may still run there`);
  }
  if (!fused) locked.closed(remote.name, r);
  reportNginxStarted(ctx, result, r);
  const afterFailed = failedSinceNote(env, state, from, target);
  if (afterFailed) {
    ctx.reporter.warn(`${remote.name}: ${afterFailed}`);
    result.notes.push(afterFailed);
  }
  if (note) {
    ctx.reporter.warn(`${remote.name}: ${note}`);
    result.notes.push(note);
  }
  return result;
}

/**
 * The hint of a rollback whose release did not become healthy, when it ran with something else than it last ran
 * with (rollbackSettings): today's settings for its programs and nginx, or its own .env that differs from the one the
 * release left ran with (a secret changed since, such as a database password, keeps an older release from answering:
 * its .env holds the value of its day). undefined otherwise, or for another failure.
 */
export function unhealthyHint(env: Target, state: HostState, target: string, from: string, s: RollbackSettings, message: string): string | undefined {
  if (!/did not become healthy/.test(message)) return undefined;
  const settings = s.changed?.length ? `was started with today's settings (its programs and nginx), which differ from those it last ran with (${s.changed.join(', ')})` : undefined;
  const dotenv = s.dotenv === 'differs' ? `runs its own .env, from its deploy, which differs from the one ${from} ran with: a secret changed since (a database password?) may keep it from answering` : undefined;
  if (!settings && !dotenv) return undefined;
  const sha = state.releases.find((x) => x.id === target)?.sha || target.split('-').pop();
  return `${target} ${[settings, dotenv].filter(Boolean).join('; and it ')}. To run its code with today's settings and .env, deploy it: ops deploy ${env.name} --ref ${sha}`;
}

/**
 * What a rollback run right after a failed deploy (its release never went live: the failure changed nothing that
 * serves) did, when that is not what it undid: it left `from`, which was live and served all along, not the failed
 * release, for `target`. undefined when no deploy failed on the host since `from` went live (the history's sequence
 * numbers: a release's failure event after the live one's going live).
 */
export function failedSinceNote(env: Target, state: Pick<HostState, 'releases'>, from: string, target: string): string | undefined {
  const liveSeq = state.releases.find((x) => x.id === from)?.liveSeq;
  if (liveSeq === undefined) return undefined;
  const failed = state.releases.filter((x) => x.status === 'failed' && x.eventSeq !== undefined && x.eventSeq > liveSeq).map((x) => x.id);
  if (!failed.length) return undefined;
  return `the deploy after ${from} (${failed.join(', ')}) failed and never went live, so ${from} served until now: this rollback went back from it to ${target}, not from that deploy (ops rollback ${env.name} --to ${from} returns to it)`;
}

/** Two hints as one (either may be missing). */
function joinHints(a: string | undefined, b: string | undefined): string | undefined {
  return a && b ? `${a}; ${b}` : (a ?? b);
}

/** A host's part in the environment's rollback choice: the release it serves ('' none) and the one its history goes back to from it ('' none: rollback_previous). */
export interface HostPrevious {
  host: string;
  current: string;
  previous: string;
}

/**
 * The one release a rollback without --to takes the whole environment back to (each host's `previous` read by
 * rollback_previous, sh/history.sh): the release the hosts on the newest live release were on before it, the one
 * release every host either goes back to or already serves (a rollout stopped part-way: the hosts it left behind serve
 * it, no-ops; the hosts on the newest may hold it under other ids, a deploy of the live commit made anew on some).
 * `target` '' when no host has anything earlier (each host then says so); `disagree` (what to say, naming each host's
 * release and the one before it) when no such release is one alone (histories that differ, three releases live): the
 * user picks it with --to; or, with `lacking` (those hosts), when the others agree on one and those hosts have nothing
 * before the release they serve (added to the environment since: --to is no way there). Hosts serving nothing take no part (their step refuses them). Pure: the rollback and
 * ops status decide with it.
 */
export function environmentRollback(hosts: HostPrevious[]): { target: string } | { disagree: string; lacking?: string[] } {
  const live = hosts.filter((h) => h.current);
  if (live.every((h) => !h.previous)) return { target: '' };
  const targets = [...new Set(live.map((h) => h.previous).filter(Boolean))].filter((t) => live.every((h) => h.previous === t || h.current === t));
  if (targets.length === 1) return { target: targets[0]! };
  // One release the hosts with an earlier one agree on, and hosts with none before what they serve (deployed there
  // first by it: added to the environment since): said so, not as histories that differ (--to it is refused there too).
  const lacking = live.filter((h) => !h.previous);
  const agreed = [...new Set(live.map((h) => h.previous).filter(Boolean))].filter(
    (t) => live.every((h) => h.previous === t || h.current === t || !h.previous) && lacking.every((h) => live.some((o) => o.previous === t && o.current === h.current)),
  );
  if (agreed.length === 1 && lacking.length)
    return {
      disagree: `${lacking.map((h) => `${h.host} (serves ${h.current})`).join(', ')} ${lacking.length === 1 ? 'has' : 'have'} no earlier release to go back to (deployed there first by the release ${lacking.length === 1 ? 'it serves' : 'they serve'}: added to the environment since?), while the other hosts go back to ${agreed[0]}`,
      lacking: lacking.map((h) => h.host),
    };
  return { disagree: `the hosts do not agree on the release to roll back to (${hosts.map((h) => `${h.host} serves ${h.current || 'nothing'}${h.current ? ` (before it: ${h.previous || 'none'})` : ''}`).join(', ')})` };
}

/** A rollback without --to refused for hosts that do not agree on its release (environmentRollback's `disagree`; `lacking`: hosts with nothing earlier). */
function disagreeError(env: Target, { disagree, lacking }: { disagree: string; lacking?: string[] }): OpsError {
  if (lacking) return new OpsError(`${disagree}: ${ROLLBACK_UNTOUCHED} on any host`, `deploy the commit to go back to on every host instead (ops deploy ${env.name} --ref <commit>: ops releases ${env.name} lists each release's), or leave ${lacking.join(', ')} out of the hosts in environments/${env.name}/environment.yml while you roll the others back`);
  return new OpsError(`${disagree}: ${ROLLBACK_UNTOUCHED} on any host; pass --to <release> to choose it`, `ops releases ${env.name} lists each host's releases; then ops rollback ${env.name} --to <release>`);
}

/**
 * Put back the release that was live before the current one, or release `to`, by moving traffic to the warm slot
 * (starting it if needed), under the lock. One release for the environment: with several hosts and no `to`, the
 * runner chooses it from each host's history as the lock step read it (environmentRollback), the hosts already on it
 * no-ops, and refuses when the hosts do not agree; then each host checks it (core/steps/switch.ts rollbackStep). With
 * one host, the host chooses it, and that whole work runs in the lock step: one round trip.
 * Refused before any host changes: a host never provisioned for the environment (by its lock step, before it makes
 * anything: said first, what it lacks is only a symptom); then (rollbackRefusal, from the lock step's state read: no
 * round trip of its own) nginx stopped with its unit
 * masked on a host, what in nginx a switch would fail on (as a deploy refuses it: nginxUnreadyError), supervisord not running on a host, or a port of the slot a host would start
 * on held by a process that is not that slot's own; with several hosts, also a host with nothing live, or without the
 * release to go back to, or where it never went live (rollbackTargetRefusal). A host failing stops the batches after it
 * (switch.batch_size), the error saying what each host serves (rollbackStopped).
 * @returns per host the release now live and the one before. @throws OpsError for an invalid id, a host with
 * nothing to go back to, or a refusal above; a failure leaves that host serving what it served. A switch that found
 * nginx stopped and started it says so (a warning and a note: reportNginxStarted).
 */
export async function rollback(ctx: OpsContext, environment: Environment, to?: string): Promise<RollbackResult> {
  const env = resolveTarget(environment);
  try {
    return await rollbackRun(ctx, env, to);
  } catch (e) {
    // A failure's --json: the environment and URL as a success's document has them, the release it went back to (or
    // --to, when a valid id), the one live before and now (withLock's, per host), or null where not known, saying why.
    const asked = to && patternOf('release').test(to) ? to : undefined;
    throw failedRun(e, env, { environment: env.name, url: env.url }, { release: asked, none: ROLLBACK_NONE }, (t) => ctx.reporter.redact(t));
  }
}

/** A host's part in the environment's choice, from its lock step's state read (deployState's `rollback_previous`). */
function hostPrevious(host: string, r: StepResult): HostPrevious {
  const [verdict, id] = (reported(r, RELEASE_KEYS.rollback_previous) ?? '').split(' ');
  return { host, current: parseState(r).current ?? '', previous: verdict === 'ok' ? (id ?? '') : '' };
}

/**
 * A `--to` that is no release id but names kept releases another way, as people name a release: the ref it was deployed
 * from (`v1`, `main`, as `ops releases` lists it), its commit (a sha or its prefix), the id's time part, or the id
 * pasted with `ops releases`' live marker (`* <id>`). Refused naming the id(s) meant: the marker at once; the others
 * after one read of the releases kept on each host (ops releases' step: one connection, nothing changed). Returns
 * when `to` is an id, or a text no release could be named by (the id's own error follows).
 * @throws InputError naming the release id(s) meant, or that no kept release is `to`.
 */
async function refuseOtherForms(ctx: OpsContext, env: Target, to: string): Promise<void> {
  const id = patternOf('release');
  if (id.test(to)) return;
  const unmarked = to.replace(/^\*\s*/, '');
  if (unmarked !== to && id.test(unmarked)) throw new InputError(`--to "${to}" holds the live marker of ops releases ("*"): the release id is ${unmarked}`, `ops rollback ${env.name} --to ${unmarked}`);
  // a ref, a sha, a time: the words a release is listed with (never white space or a shell's characters)
  if (!/^[A-Za-z0-9][\w./+-]{0,199}$/.test(to)) return;
  const { listReleases } = await import('./records.ts');
  const hosts = await listReleases(ctx, env).catch((e: unknown) => {
    if (e instanceof OpsError) return [];
    throw e;
  });
  const kept = [...new Map(hosts.flatMap((h) => h.releases).map((r) => [r.id, r])).values()];
  if (!hosts.some((h) => h.error === undefined)) return; // nothing read: the id's own error
  const lower = to.toLowerCase();
  const hex = /^[0-9a-f]{4,40}$/.test(lower);
  const meant = kept.filter((r) => r.ref === to || (hex && r.sha.startsWith(lower)) || (/^\d{8}(T\d{0,6}Z?)?$/.test(to) && r.id.startsWith(to)));
  const ids = [...new Set(meant.map((r) => r.id))].sort().reverse();
  if (ids.length === 1) throw new InputError(`--to takes a release id: ${to} is release ${ids[0]}`, `ops rollback ${env.name} --to ${ids[0]}`);
  if (ids.length > 1) throw new InputError(`--to takes a release id: ${to} names ${ids.length} kept releases, ${ids.join(', ')}`, `pick one (ops releases ${env.name} says which went live when): ops rollback ${env.name} --to ${ids[0]}`);
  throw new InputError(`--to takes a release id, and no release kept is ${to} (kept: ${kept.map((r) => `${r.id}${r.ref ? ` (${r.ref})` : ''}`).join(', ') || 'none'})`, `ops releases ${env.name} lists them with their ids; a release no longer kept comes back by a deploy of its commit (ops deploy ${env.name} --ref <ref>)`);
}

/** rollback's run. */
async function rollbackRun(ctx: OpsContext, env: Target, to: string | undefined): Promise<RollbackResult> {
  if (to) await refuseOtherForms(ctx, env, to);
  if (to) validate('release', to, undefined, { env: env.name });
  // Apps sharing a host: a rollback writes this app's site and starts its programs, so a collision is refused first.
  refuseCollisions(env, ctx.reporter);
  // Several hosts: every lock is taken before any host changes, so the work is a step of its own after the lock.
  const alone = env.hosts.length === 1;
  const today = todaysSettings(env);
  const hosts = await withSession(ctx, env, (session) =>
    withLock(
      ctx,
      session,
      'rollback',
      async (locked) => {
        // Refused everywhere before any host changes, from the state each lock step read (one host: its step
        // refused on its own, nginx_masked, supervisor_down or ports_taken, and let go).
        const inspected = [...session.remotes.values()].map((r): [string, StepResult] => [r.name, locked.inspected.get(r.name)!]);
        // Several hosts without --to: one release for the environment (environmentRollback), not each host's own
        // previous one; the hosts already serving it are no-ops, as with --to it.
        const chosen = alone || to ? undefined : environmentRollback(inspected.map(([host, r]) => hostPrevious(host, r)));
        const target = to ?? (chosen && 'target' in chosen && chosen.target ? chosen.target : undefined);
        const refused =
          (chosen && 'disagree' in chosen ? disagreeError(env, chosen) : undefined) ??
          (alone ? undefined : rollbackTargetRefusal(env, inspected.filter(([host]) => !locked.finished(host)).map(([host, r]) => ({ host, state: parseState(r) })), target)) ??
          rollbackRefusal(env, inspected, (host) => locked.finished(host));
        if (refused) {
          // A run that failed, with nothing changed: in the audit log of every host still locked, saying why.
          const why = auditReason(`refused, nothing changed: ${auditReason(refused, (t) => ctx.reporter.redact(t))}`);
          for (const [host, r] of inspected) if (!locked.finished(host)) locked.audit(host, { result: 'failed', ...(parseState(r).current && { previous: parseState(r).current }), message: why });
          throw refused;
        }
        // Per host, how its step ended (a failure stops the batches after it: said with what each host serves then).
        const ended = new Map<string, HostSwitch | 'failed'>();
        const hosts = await session
          .each(
            (remote) =>
              rollbackHost(ctx, env, remote, locked, target, today).then(
                (h) => (ended.set(remote.name, h), h),
                (e: unknown) => {
                  ended.set(remote.name, 'failed');
                  throw e;
                },
              ),
            { batch: env.config.switch.batch_size },
          )
          .catch((e: unknown) => {
            const audit = (host: string, message: string) => {
              const previous = parseState(locked.inspected.get(host)!).current;
              locked.audit(host, { result: 'failed', ...(previous && { previous }), message });
            };
            throw alone ? e : rollbackStopped(env, e, inspected, ended, audit, (t) => ctx.reporter.redact(t));
          });
        // A no-op host may still serve as `next` the assets of the release rolled back from (a stopped rollout staged
        // them there): the switches dropped theirs, and a release now live nowhere must not answer a URL.
        if (servedAssetDirs(env).length && !alone) {
          const live = [...new Set(hosts.map((h) => h.release))];
          await Promise.all(hosts.filter((h) => h.noop).map((h) => session.remotes.get(h.host)!.run(unstageAssets(env, live), { allowFailure: true }).catch(() => undefined)));
        }
        return hosts;
      },
      {
        // The live release is being left: no need to probe it first; nor to know what sending code needs. Whether
        // supervisord runs, though: without it no slot starts; who holds the idle slot's ports; whether nginx
        // runs, or may be started by the switch; and what in it the switch would fail on, as a deploy's read asks
        // (nginxReadiness; in this same step: no round trip of its own).
        inspect: deployState(env, undefined, { supervisor: true, ports: true, nginx: true, rollback: !alone && !to }),
        // Hosts never provisioned (a rollback's next step there is a deploy): refused by their lock step, all named.
        unprovisioned: { nothing: `${ROLLBACK_UNTOUCHED}${alone ? '' : ' on any host'}`, then: `ops deploy ${env.name}` },
        // Queued behind a run that changed what is live, a rollback would undo that run, not what the user saw.
        premise: true,
        ...(to && { fields: { release: to } }),
        // What the lock step read (one that failed part-way too; one host: the work ran there): the release live, the one
        // the host chose if it got to.
        lockRead: (r) => {
          const chosen = reported(r, ROLLBACK_KEYS.rollback_to);
          const from = reported(r, ROLLBACK_KEYS.rollback_from);
          return { ...partialState(r), ...(from !== undefined && { previous: from }), ...(chosen && { release: chosen }) };
        },
        ...(alone && {
          // A refusal (nginx masked, nothing to go back to...) keeps the lock: audited by the runner, which then lets go.
          finish: (unlock) => unlessRefused(rollbackWork(env, ctx, to, { done: unlock(...DONE), refused: refusedOrNoop(unlock) }, today).script, ''),
          finishSeconds: rollbackWork(env, ctx, to, { done: '', refused: '' }, today).timeout,
        }),
      },
    ),
  );
  return { environment: env.name, url: env.url, noop: hosts.every((h) => h.noop), hosts };
}

/** The job summary (Markdown) of a rollback: one row per host. Values from outside are written with `v` (the reporter's: Markdown-escaped for a job summary, as they are on a terminal). */
export function rollbackSummary(r: RollbackResult, v: ValueFormat = markdownValues): string {
  const lines = [`### Rollback of ${v.text(r.environment)}${r.noop ? ': already live, nothing to do' : ''}`, '', '| host | from | to | |', '|---|---|---|---|'];
  for (const h of r.hosts) lines.push(`| ${v.text(h.host)} | ${v.code(h.previous, 'cell')} | ${v.code(h.release, 'cell')} | ${h.noop ? 'already live' : `${(h.steps.reduce((a, s) => a + s.ms, 0) / 1000).toFixed(1)}s`} |`);
  const said = r.hosts.flatMap((h) => h.notes.filter((n) => n.startsWith('settings: ')).map((n) => `- ${v.text(`${h.host}: ${n}`)}`));
  return [...lines, ...(said.length ? ['', ...said] : [])].join('\n');
}
