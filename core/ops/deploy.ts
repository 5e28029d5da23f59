// ops deploy <env> [--ref REF]: one commit, resolved once on the runner, goes live on every host without a
// failed request. Each host: state → code (pack of what it lacks) → new release (with its .env) → dependencies
// (reused by hash) → build → migrate (first host) → hooks → start the other slot → health gate → switch
// (nginx, then `current`) → prune; the previous release stays warm on the idle slot. Anything failing before
// the switch leaves the live release serving, untouched. This file holds the order across hosts (the rollout);
// one host's part is core/ops/deploy-host.ts, the plan made on the runner core/ops/deploy-plan.ts, who builds and how a
// build travels core/ops/build-once.ts.
import type { Environment } from '../config/environment.ts';
import { resolveTarget, type Target } from '../target.ts';
import { refuseCollisions } from '../config/siblings.ts';
import { type OpsContext } from '../context.ts';
import { codeBlock, type Reporter, markdownValues, type ValueFormat } from '../report.ts';
import { auditReason, InputError, inputFailure, OpsError } from '../errors.ts';
import { dropPacked, packArtifacts, parsePacked, type PackedPart } from '../steps/artifact.ts';
import { type HostsChange, describeChanges, formatChanges, migrationsUnchanged } from '../changes.ts';
import { deployState, type DotenvUploads, noopFinish } from '../steps/release.ts';
import { unstageAssets } from '../steps/switch.ts';
import { pooled, type HostSwitch } from './host-run.ts';
import { inBatches, Session, withOpenSession } from './hosts.ts';
import { liveOf, parseState, partialState, readLive } from './host-state.ts';
import { beforeSwitch, beginHost, buildOn, failBeforeSwitch, markFailed, migrateOn, receiveBuild, uploadDotenv, refuseMaskedNginx, refuseTakenPorts, refuseUnready, DEPLOY_UNTOUCHED, switchHost, dependencySets, wants, type HostPlan, type Received } from './deploy-host.ts';
import { deployRef, resolveDeployCommit, planDeploy, planText, withFreeReleaseId, type Plan } from './deploy-plan.ts';
import { failedRun, withLock, type LockedRun } from './locked.ts';
import { LOCK_KEYS } from '../steps/lock.ts';
import { reported } from '../remote/types.ts';
import { buildGroups, carryBuild, describeBuilds } from './build-once.ts';

export interface DeployOptions {
  ref?: string;
  /** Deploy even when the sha is already live. */
  force?: boolean;
  dryRun?: boolean;
  /**
   * Refuse to go back: a target strictly behind the live commit on any host (an ancestor of it: a rollback in
   * disguise) is skipped, a no-op said as a warning, not an error: a push superseded by a newer one that was
   * deployed first (deploy-prod.yml). A diverged target (neither behind nor ahead), or one the runner's clone cannot
   * place, fails the run, nothing deployed (divergedError). Without it, a target behind or beside the live commit is
   * deployed, warned (olderThanLive), unless the run queued behind another that changed what is live (overtakenError).
   */
  forwardOnly?: boolean;
}

export interface DeployResult {
  environment: string;
  ref: string;
  sha: string;
  matched: string;
  release: string;
  previous: string;
  url: string;
  noop: boolean;
  dryRun: boolean;
  /** forwardOnly found the target behind the live commit (why, in words): nothing deployed, `release` empty. */
  superseded?: string;
  hosts: HostSwitch[];
  plan?: string[];
  /** What the deploy changes on each group of hosts serving the same commit (read before anything changed). */
  changes: HostsChange[];
}

/** Wait for every promise to settle (none left running on a host), then throw the first failure, if any. */
async function settled(work: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(work)).find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
}

/** When release.migrate runs in a deploy with these changes (migrationsUnchanged), as the plan says it. */
function migrateWhen(changes: HostsChange[]): string {
  return migrationsUnchanged(changes)
    ? 'migrate: beside the build on the first host (no migration file changed since the live commit on any host: nothing new to apply)'
    : 'migrate: on the first host once its build succeeded (a failed build leaves the database untouched)';
}

/**
 * With forwardOnly: why the target is not deployed (behind the live commit on some hosts), else undefined.
 * Only 'behind' counts: the target is an ancestor of the live commit, strictly (the same commit is a no-op).
 */
export function supersededWhy(changes: HostsChange[], target: string): string | undefined {
  const behind = changes.filter((g) => g.change?.relation === 'behind');
  if (!behind.length) return undefined;
  const where = behind.map((g) => `${g.hosts.join(', ')} (live ${g.live.sha.slice(0, 12)}, ${g.change!.removed} commit${g.change!.removed === 1 ? '' : 's'} newer)`).join('; ');
  return `forward-only: ${target.slice(0, 12)} is behind the live commit on ${where}: a newer commit is already live, so this one is not deployed (a superseded push); to go back on purpose, ops rollback or a deploy without forward-only`;
}

/**
 * With forwardOnly: the error for a target beside the live commit on some host (history diverged: neither contains
 * the other), or whose place against it the runner's clone cannot tell (relation `unknown`: the live commit, or the
 * history between them, not fetched: a shallow clone, a push the clone predates, a commit on no branch any more), else
 * undefined. Both name their likely causes, a manual deploy of a commit the branch lacks among them (the push deploy
 * after one fails so, and must not send anyone looking for a force-push). Neither skipped
 * quietly (after a force-push of the deployed branch the new head would never go live while its run shows green)
 * nor deployed (an older run's commit from before the rewrite, or one a newer live commit contains, finishing late,
 * would take the live commits away): the run fails, nothing deployed, for someone to choose on purpose.
 */
export function divergedError(changes: HostsChange[], target: string, envName: string): OpsError | undefined {
  const diverged = changes.filter((g) => g.change?.relation === 'diverged');
  const unknown = changes.filter((g) => g.change?.relation === 'unknown');
  if (!diverged.length && !unknown.length) return undefined;
  const where = diverged.map((g) => `${g.hosts.join(', ')} (live ${g.live.sha.slice(0, 12)}: ${g.change!.removed} live commit${g.change!.removed === 1 ? '' : 's'} not in the target)`).join('; ');
  const shallow = unknown.some((g) => g.change!.shallow);
  const unread = unknown.map((g) => `${g.hosts.join(', ')} (live ${g.live.sha.slice(0, 12)}: ${g.change!.shallow ? "not in this shallow clone's history" : 'not in this repository'})`).join('; ');
  return new OpsError(
    [
      where && `forward-only: ${target.slice(0, 12)} does not contain the live commit on ${where}: the histories diverged (a manual deploy of a commit this branch lacks, from another branch; a force-push of the branch; or a run of a commit from before one), so which is newer cannot be told`,
      unread && `forward-only: whether ${target.slice(0, 12)} is behind the live commit cannot be told on ${unread}: the runner's clone lacks it${shallow ? '' : ' (a push newer than this checkout, or a commit no branch or tag holds any more: a manually deployed branch since deleted)'}, so a newer commit may be live`,
    ]
      .filter(Boolean)
      .join('; ') + '; nothing was deployed',
    [
      unread && (shallow ? 'check out with fetch-depth: 0 (or git fetch --unshallow) so the live commit\'s history is there, then run again' : 'fetch the live commit (git fetch origin; in a workflow, actions/checkout with fetch-depth: 0), then run again'),
      `${unread ? 'or ' : ''}check which commit should be live, then deploy it on purpose without forward-only (ops deploy ${envName} --ref <commit>, or the manual deploy workflow)`,
    ]
      .filter(Boolean)
      .join('; '),
  );
}

/**
 * The error for a deploy that queued for the lock (switch.lock_wait) behind a run that changed what is live, and whose
 * target is not newer than what that run put live: behind it (an ancestor: the deploy would take that run's commits
 * away), beside it (histories diverged: which is newer cannot be told), or not placed by the runner's clone; else
 * undefined. `changed`: per host, the release live at the run's first look and the one live once the lock was its
 * (LockOptions.premise 'report': `premise_changed`), only where they differ. The deploy was planned, and a person or a
 * workflow asked for it, against what was live then (a manual deploy going back from it on purpose included): as a
 * rollback (LockRequest.premise), it does nothing now and says which commit is live, so that a run that finished
 * late (a click on an older run, a laptop's deploy of the master it fetched an hour ago) never puts an older commit
 * live over a newer one as a success. A target ahead of the new live commit (queued pushes, served in order), the
 * same commit or nothing live goes on. Pure.
 */
export function overtakenError(changes: HostsChange[], target: string, changed: Map<string, [string, string]>, envName: string): OpsError | undefined {
  const over = changes
    .map((g) => ({ g, hosts: g.hosts.filter((h) => changed.has(h)) }))
    .filter(({ g, hosts }) => hosts.length && g.change && ['behind', 'diverged', 'unknown'].includes(g.change.relation));
  if (!over.length) return undefined;
  const short = target.slice(0, 12);
  const where = over.map(({ g, hosts }) => {
    const [then, now] = changed.get(hosts[0]!)!;
    const n = g.change!.removed;
    const relation =
      g.change!.relation === 'behind'
        ? `${short} is older: an ancestor of it, ${n} commit${n === 1 ? '' : 's'} behind`
        : g.change!.relation === 'diverged'
          ? `${short} does not contain it, nor it ${short} (histories diverged: another branch's commit, or a force-push), so which is newer cannot be told`
          : `whether ${short} is older cannot be told (the runner's clone lacks that commit: fetch it)`;
    return `${hosts.join(', ')}: ${then || 'no release'} was live when this deploy was asked, and ${now || 'no release'} (commit ${g.live.sha.slice(0, 12)}) is live now that it has the lock, put there by a run queued ahead of it; ${relation}`;
  });
  return new OpsError(
    `${where.join('; ')}: nothing was deployed, as it would put an older commit live over the one that run deployed`,
    `see what is live (ops status ${envName}); to put ${short} live over it on purpose, deploy it again (ops deploy ${envName} --ref ${short}, or the manual deploy workflow with that ref), or go back with ops rollback ${envName}`,
  );
}

/**
 * A manual deploy (not forward-only) of a target older than the live commit (behind it) or beside it: the warning
 * that says so before the rollout, naming both commits, or undefined. It is how people go back; said, not refused. Pure.
 */
export function olderThanLive(changes: HostsChange[], target: string): string | undefined {
  const older = changes.filter((g) => g.change?.relation === 'behind' || g.change?.relation === 'diverged');
  if (!older.length) return undefined;
  const where = older.map((g) => `${g.hosts.join(', ')} (live ${g.live.sha.slice(0, 12)}: ${g.change!.relation === 'behind' ? `${short(target)} is older, an ancestor of it` : `${short(target)} does not contain it, nor it ${short(target)}: histories diverged`}, ${g.change!.removed} live commit${g.change!.removed === 1 ? '' : 's'} taken away)`);
  return `deploying ${short(target)}, which is not newer than the live commit on ${where.join('; ')}: on purpose, as asked (a deploy without forward-only goes back; ops rollback keeps the releases' own settings)`;
}

/** The first 12 characters of a sha, as commits are named in what a run says. */
const short = (sha: string) => sha.slice(0, 12);

/** Thrown instead of starting a host's next piece of work once another host failed (never reported). */
const HALTED = new Error('the rollout stopped: another host failed');

/**
 * A rollout: every host that is not a no-op is prepared first — one host per platform builds (the first
 * host also migrates, while its build travels to its receivers, or beside its build with `migrateBeside`: no
 * migration file changed since any host's live commit, migrationsUnchanged; no host runs its before_switch hooks before
 * the migrations are done), packs its build before its before_switch hooks run (receivers get what a build makes,
 * and run the hooks themselves), and its receivers get it — and only then do hosts switch,
 * `switch.batch_size` at a time. A failure anywhere while preparing lets the work under way on other hosts
 * end (nothing more starts), then stops the rollout with nothing switched on any host; a failure while
 * switching stops before the next batch. Either way every host not switched is left as it was, its release
 * (if made) marked failed and the run's failure in its audit log.
 */
async function rollout(ctx: OpsContext, env: Target, session: Session, locked: LockedRun, p: Plan, options: DeployOptions, migrateBeside: boolean): Promise<HostSwitch[]> {
  const done: HostSwitch[] = [];
  const plans: HostPlan[] = [];
  // Refused before anything is sent to any host (hosts never provisioned were, by the lock step): a host that cannot
  // run the deploy (the first one found; supervisord down: every such host), then nginx masked, then the ports taken on the slot each host would start on,
  // every host at once.
  const read = env.hosts.map((host) => ({ host: host.name, result: locked.inspected.get(host.name)!, state: parseState(locked.inspected.get(host.name)!) }));
  try {
    refuseUnready(env, read, env.config.release.python_requirements ? `venv-${p.hashes.python}` : undefined);
    refuseMaskedNginx(read);
    refuseTakenPorts(env, read);
  } catch (e) {
    // Refused with nothing changed: still a run that failed, in every host's audit log, saying why.
    const why = `refused, nothing changed: ${auditReason(e, (t) => ctx.reporter.redact(t))}`;
    for (const { host, state } of read)
      if (!locked.finished(host)) locked.audit(host, { ref: p.resolved.ref, sha: p.resolved.sha, release: '', ...(state.current && { previous: state.current }), result: 'failed', message: auditReason(why) });
    throw e;
  }
  for (const host of env.hosts) {
    const b = beginHost(ctx, env, session.remote(host.name), locked, p, options);
    if ('h' in b) plans.push(b);
    else done.push(b);
  }
  const groups = buildGroups(plans.map((hp) => ({ name: hp.name, platform: env.hosts.length > 1 ? hp.state.platform : undefined, hp })));
  if (plans.length > 1) for (const line of describeBuilds(groups)) ctx.reporter.info(line);
  const where = () =>
    env.hosts.map((hst) => {
      const d = done.find((x) => x.host === hst.name);
      const hp = plans.find((x) => x.name === hst.name);
      if (d) return `${hst.name}: ${d.noop ? `${d.release} (already live)` : d.release}`;
      if (hp?.switched) return `${hst.name}: ${p.id} (switched; see its error above)`;
      if (hp?.liveUnknown) return `${hst.name}: not known (its switch went on without the connection; see its error above)`;
      // What still serves there: the release live when the run began (none: the host never had one).
      const live = hp?.state.current ? `${hp.state.current} still live` : 'nothing deployed yet';
      return `${hst.name}: unchanged (${hp?.failed ? `failed; ${live}` : live})`;
    });
  // The hosts a stopped rollout leaves behind: a release made for nothing is marked, the run's failure audited.
  const stop = async (e: unknown) => {
    // The host that failed: before its switch, or once switched (an after_switch hook, the clean-up: its reason kept below).
    const failedHost = plans.find((hp) => hp.failed) ?? plans.find((hp) => hp.switched && hp.reason !== undefined);
    const first = failedHost?.name ?? 'another host';
    const behind = plans.filter((hp) => !hp.failed && !hp.switched && !done.some((d) => d.host === hp.name));
    // What the host that failed said (its own reason, bounded), else the rollout's error: why this host stopped too.
    const cause = failedHost?.reason ?? auditReason(e, (t) => ctx.reporter.redact(t));
    await Promise.all(
      behind.map(async (hp) => {
        const why = auditReason(`rollout stopped before the switch (${first} failed: ${cause})`);
        if (hp.created) await markFailed(env, hp, p, why);
        hp.audit({ result: 'failed', message: why });
      }),
    );
    // The release's assets staged as `next` (stageAssets): live nowhere, it must not answer a URL the live releases do
    // not; live on some host (switched there, or its commit was live there already), the hosts left behind keep
    // serving them for that host's pages (a load balancer sends their requests to any host), until their next switch.
    const liveSomewhere = done.length > 0 || plans.some((hp) => hp.switched || hp.liveUnknown);
    const staged = plans.filter((hp) => hp.staged && !hp.switched && !hp.liveUnknown);
    if (!liveSomewhere) await Promise.all(staged.map((hp) => hp.h.tryRun(unstageAssets(env))));
    if (!(e instanceof OpsError)) return e;
    const lines = [e.message];
    if (env.hosts.length > 1) lines.push(`rollout stopped; hosts now run:\n  ${where().join('\n  ')}`);
    if (liveSomewhere && staged.length)
      lines.push(`${staged.map((hp) => hp.name).join(', ')} also serve the assets of ${p.id} (release.asset_dirs), for the pages of the hosts it is live on, until their next switch`);
    // The database is not the hosts': migrations that ran stay (a stopped rollout, like a rollback, undoes none).
    if (migratedOn && !plans.some((hp) => hp.switched || hp.liveUnknown))
      lines.push(
        migrateBeside
          ? `the migrations of ${p.id} ran on ${migratedOn} beside its build (${env.config.release.migrate}); no migration file changed since the live commit, so the database keeps the live release's schema`
          : `the migrations of ${p.id} ran on ${migratedOn} (${env.config.release.migrate}): the database has its schema while the hosts serve the previous release (README: "Schema changes: expand, then contract")`,
      );
    return lines.length > 1 ? new OpsError(lines.join('\n'), e.hint) : e;
  };
  // Prepare every host (nothing switches): builders in parallel, each then feeding its receivers.
  let failure: unknown;
  let halted = false;
  const attempt = async (hp: HostPlan, work: () => Promise<void>) => {
    if (halted) throw HALTED;
    try {
      await work();
    } catch (e) {
      halted = true; // at once: nothing more starts while this host's failure is recorded
      const err = await failBeforeSwitch(env, hp, p, e);
      failure ??= err;
      throw err;
    }
  };
  // The migrations, run by the first host once its build succeeded, while its build travels to its receivers;
  // every host runs its before_switch hooks (commands in the new release) only after them (other platforms'
  // builders too, which used not to wait). Settled on every path of
  // the first host's group (a failed build rejects it), so nobody waits forever; caught here so that a rejection
  // nobody else awaits is not unhandled.
  let migrated!: { resolve: () => void; reject: (e: unknown) => void };
  let migratedOn: string | undefined; // the host whose release.migrate succeeded
  const migrations = new Promise<void>((resolve, reject) => (migrated = { resolve, reject }));
  migrations.catch(() => undefined);
  const all = await Promise.allSettled(
    groups.map(async ({ builder: { hp: b }, receivers: rs }) => {
      const receivers = rs.map((r) => r.hp);
      const primary = b === plans[0];
      try {
        await attempt(b, () => buildOn(env, b, p, primary && migrateBeside));
      } catch (e) {
        if (primary) migrated.reject(e);
        throw e;
      } finally {
        if (b.migrated) migratedOn = b.name;
      }
      const migration = primary
        ? b.migrated
          ? Promise.resolve()
          : attempt(b, async () => {
              if (await migrateOn(env, b, p)) migratedOn = b.name;
            })
        : migrations;
      if (primary) migration.then(migrated.resolve, migrated.reject);
      const received = new Map<HostPlan, Received[]>();
      // Each receiver's .env files travel beside the carry (they need nothing of it), on the receiver's own connection,
      // once every receiver is known to have the space (nothing is sent to a host refused): its unpack then waits for
      // nothing more.
      const dotenvs = new Map<HostPlan, Promise<DotenvUploads>>();
      const sendDotenvs = () => {
        for (const r of receivers) {
          const sent = uploadDotenv(env, r, p);
          sent.catch(() => undefined); // awaited by its receiver's unpack, and below
          dotenvs.set(r, sent);
        }
      };
      // The builder's packed parts, dropped once carried: beside the receivers' unpacks, which need nothing of them.
      let dropped: Promise<unknown> = Promise.resolve();
      try {
        if (receivers.length) {
          let parts: PackedPart[] = [];
          const sets = dependencySets(env, p).filter((set) => receivers.some((r) => wants(r, set)));
          try {
            await attempt(b, async () => void (parts = parsePacked(await b.h.run(packArtifacts(env, p.id, sets)), b.name)));
            for (const [r, x] of await carryBuild(env, b, receivers, p, parts, attempt, sendDotenvs)) received.set(r, x);
          } catch (e) {
            if (primary) await migration.catch(() => undefined); // not left running on the host when the rollout stops
            throw e;
          } finally {
            dropped = b.h.tryRun(dropPacked(env, p.id));
          }
        }
        await settled([
          migrations.then(() => attempt(b, () => beforeSwitch(env, b, p))),
          // A failed migration is the first host's failure, not the receiver's (it stays "previous release"); a
          // receiver's hooks are work of its own, not started once any host failed. Every receiver at once: its unpack
          // and hooks are its own host's work, a step on its own connection (RECEIVE_CONCURRENCY bounds what the
          // runner carries, not this: under it, a tenth host unpacked only once one of the first eight had).
          pooled(receivers, receivers.length, async (r) => {
            await attempt(r, async () => receiveBuild(env, r, p, b.name, received.get(r)!, await dotenvs.get(r)!));
            await migrations;
            await attempt(r, () => beforeSwitch(env, r, p));
          }),
        ]);
      } finally {
        // Nothing of a receiver's left in flight when the rollout goes on or stops (a receiver that never got to its
        // unpack: another host failed first), nor the builder's drop.
        await Promise.allSettled([...dotenvs.values(), dropped]);
      }
    }),
  );
  failure ??= all.find((s): s is PromiseRejectedResult => s.status === 'rejected')?.reason;
  if (failure !== undefined) throw await stop(failure);
  try {
    await inBatches(plans, env.config.switch.batch_size, async (hp) => {
      const r = await switchHost(env, hp, p, locked).catch((e: unknown) => {
        hp.reason ??= auditReason(e, (t) => ctx.reporter.redact(t));
        throw e;
      });
      done.push(r);
      return r;
    });
  } catch (e) {
    throw await stop(e);
  }
  return env.hosts.map((hst) => done.find((d) => d.host === hst.name)!);
}

/**
 * Put a ref live on every host of the environment (README: "How a deploy works"): resolve it once, then per
 * batch of hosts, under the lock, send what each host lacks, build, migrate (first host), start, check and
 * switch. `options.dryRun` prints the plan and changes nothing; the live sha is a no-op unless `force`.
 * @returns per host: release, previous release, steps with durations. @throws OpsError (refused input,
 * collisions, a failed step naming host, step and output); a failure before the switch leaves the live
 * release serving, and a failed rollout says which hosts run which release.
 */
export async function deploy(ctx: OpsContext, environment: Environment, options: DeployOptions = {}): Promise<DeployResult> {
  const env = resolveTarget(environment);
  // What the run knew when it failed (its plan's ref, sha, release id): a failure's --json says it, as a success's does.
  const known: Partial<DeployResult> = { environment: env.name, url: env.url, dryRun: Boolean(options.dryRun) };
  try {
    return await deployRun(ctx, env, options, known);
  } catch (e) {
    const { release, previous: _previous, hosts: _hosts, ...fields } = known;
    const none = known.sha ? 'no release was made: the deploy stopped before it chose one (under the lock, once every host\'s releases are read)' : 'no release was made: the deploy failed before its plan (nothing ran on any host)';
    throw failedRun(e, env, fields, { release, none }, (t) => ctx.reporter.redact(t));
  }
}

/** deploy's run; `known` gets what the run knows as it goes (for a failure's --json). */
async function deployRun(ctx: OpsContext, env: Target, options: DeployOptions, known: Partial<DeployResult>): Promise<DeployResult> {
  // Apps sharing a host: refused before anything else (a dry run too: it is the plan) when they collide.
  const sharing = refuseCollisions(env, ctx.reporter);
  // A bad ref is refused before any connection. Then the connections open while the runner resolves the ref and
  // plans (git, secrets, .env): neither waits for the other. A ref or plan that fails closes them; nothing has run
  // on any host yet.
  const ref = deployRef(env, options.ref);
  known.ref = ref;
  // A plan that fails gives the connections up at once: an unknown ref is said without waiting for a host that
  // does not answer (its connection timeout and retries) nor warning about it.
  const abandon = new AbortController();
  const opening = options.dryRun ? undefined : Session.open(ctx, env, env.hosts, abandon.signal);
  opening?.catch(() => undefined);
  let p: Plan;
  try {
    p = await planDeploy(ctx, env, await resolveDeployCommit(ctx, env, options.ref));
  } catch (e) {
    abandon.abort();
    await opening?.then((s) => s.close(), () => undefined);
    throw e;
  }
  // What the checkout holds that is not deployed (uncommitted changes, a local branch elsewhere): said before anything runs.
  // And what the commit's check against the settings warns of (a lockfile the install does not read...).
  if (!options.dryRun) for (const note of [...p.checkout, ...p.warnings]) ctx.reporter.warn(note);
  const base: DeployResult = {
    environment: env.name,
    ref: p.resolved.ref,
    sha: p.resolved.sha,
    matched: p.resolved.matched,
    release: p.id,
    previous: '',
    url: env.url,
    noop: false,
    dryRun: Boolean(options.dryRun),
    hosts: [],
    changes: [],
  };
  // Not its release id yet: that is chosen under the lock (withFreeReleaseId, below); a deploy that never reached a
  // host (refused connection, host key mismatch) made none, and its failure names none (null, with why).
  const { release: _chosenUnderLock, ...planned } = base;
  Object.assign(known, planned);
  if (options.dryRun) {
    const lives = await readLive(ctx, env, { fingerprint: p.fingerprint });
    const changes = await describeChanges(p.repo, env, lives, p.resolved.sha);
    // Who builds, who receives its build: hosts not serving the commit yet, by platform (when several).
    const builds = describeBuilds(buildGroups(lives.filter((l) => l.sha !== p.resolved.sha || l.changed || options.force).map((l) => ({ name: l.host, platform: l.platform }))));
    const superseded = options.forwardOnly ? supersededWhy(changes, p.resolved.sha) : undefined;
    const diverged = options.forwardOnly ? divergedError(changes, p.resolved.sha, env.name) : undefined;
    return {
      ...base,
      release: '',
      changes,
      ...(superseded && { superseded }),
      plan: [
        ...(superseded ? [`SKIPPED: ${superseded}`, ''] : []),
        ...(diverged ? [`REFUSED: ${diverged.message}`, `  ${diverged.hint}`, ''] : []),
        ...planText(env, p, sharing), ...builds.map((l) => `  ${l}`), ...(env.config.release.migrate ? [`  ${migrateWhen(changes)}`] : []), '', 'changes (live → target):', ...formatChanges(changes, p.resolved.sha).map((l) => `  ${l}`)],
    };
  }
  const session = await opening!;
  const hosts = await withOpenSession(session, () =>
    withLock(ctx, session, 'deploy', async (locked) => {
      const states = env.hosts.map((h) => parseState(locked.inspected.get(h.name)!));
      const lives = env.hosts.map((h, i) => liveOf(h.name, states[i]!));
      p = withFreeReleaseId(p, new Set(states.flatMap((s) => s.releases.map((r) => r.id))));
      known.release = p.id;
      // An interruption's audit line names what the run was deploying on each host.
      env.hosts.forEach((h, i) => locked.about(h.name, { release: p.id, ...(states[i]!.current && { previous: states[i]!.current }) }));
      base.changes = await describeChanges(p.repo, env, lives, p.resolved.sha);
      for (const line of formatChanges(base.changes, p.resolved.sha)) ctx.reporter.info(line);
      // Decided under the lock, on what the hosts serve now: a deploy that finished meanwhile counts.
      const superseded = options.forwardOnly ? supersededWhy(base.changes, p.resolved.sha) : undefined;
      const diverged = options.forwardOnly ? divergedError(base.changes, p.resolved.sha, env.name) : undefined;
      if (diverged) {
        for (const h of env.hosts) if (!locked.finished(h.name)) locked.audit(h.name, { ref: p.resolved.ref, sha: p.resolved.sha, release: '', previous: '', result: 'failed', message: auditReason(diverged, (t) => ctx.reporter.redact(t)) });
        throw diverged;
      }
      if (superseded) {
        base.superseded = superseded;
        ctx.reporter.warn(superseded);
        for (const h of env.hosts)
          if (!locked.finished(h.name)) locked.audit(h.name, { ref: p.resolved.ref, sha: p.resolved.sha, release: '', previous: '', result: 'no-op', message: superseded });
        return lives.map((l): HostSwitch => ({ host: l.host, release: l.release, previous: '', noop: true, steps: [], notes: [] }));
      }
      // Queued behind a run that changed what is live (LockOptions.premise 'report'): gone on only when newer than it.
      const changed = new Map(env.hosts.flatMap((h): [string, [string, string]][] => {
        const both = reported(locked.inspected.get(h.name)!, LOCK_KEYS.premise_changed)?.split(' ').map((id) => (id === '-' ? '' : id));
        return both?.length === 2 ? [[h.name, [both[0]!, both[1]!]]] : [];
      }));
      const overtaken = overtakenError(base.changes, p.resolved.sha, changed, env.name);
      if (overtaken) {
        for (const h of env.hosts) if (!locked.finished(h.name)) locked.audit(h.name, { ref: p.resolved.ref, sha: p.resolved.sha, release: '', previous: '', result: 'failed', message: auditReason(overtaken, (t) => ctx.reporter.redact(t)) });
        throw overtaken;
      }
      const older = olderThanLive(base.changes, p.resolved.sha);
      if (older) ctx.reporter.warn(older);
      return rollout(ctx, env, session, locked, p, options, migrationsUnchanged(base.changes));
    }, {
      fields: { ref: p.resolved.ref, sha: p.resolved.sha },
      // The release live before, as the lock step read it (one that failed after reading it too): for --json.
      lockRead: partialState,
      // What was live at its first look, compared once the lock is its: a run queued ahead may have deployed meanwhile.
      premise: 'report',
      // Without --force, a host where the commit is live checks it and ends the state step there (a no-op).
      // Hosts never provisioned: refused by their lock step, before it makes anything there (all of them named).
      unprovisioned: { nothing: `${DEPLOY_UNTOUCHED}${env.hosts.length > 1 ? ' on any host' : ''}`, then: `ops deploy ${env.name}` },
      inspect: deployState(env, [p.resolved.sha, ...p.tree.submodules.map((m) => m.sha)], { lfs: [...new Set(p.tree.lfs.map((f) => f.oid))], commit: options.force ? undefined : p.resolved.sha, fingerprint: p.fingerprint, platform: env.hosts.length > 1 }),
      // There, the no-op's audit line and the unlock end the lock step: one round trip.
      finish: options.force ? undefined : (unlock) => noopFinish(p.resolved.sha, unlock({ ref: p.resolved.ref, sha: p.resolved.sha, release: '', previous: '', result: 'no-op', message: 'already live' }, { release: 'cur_id', previous: 'cur_id' })),
    }),
  );
  if (base.superseded) return { ...base, hosts, release: '', noop: false };
  return {
    ...base,
    hosts,
    release: hosts[0]?.release ?? p.id,
    previous: hosts[0]?.previous ?? '',
    noop: hosts.every((h) => h.noop),
  };
}

/**
 * The deploy action's outputs and log for a result: a dry run deployed nothing, so it gives `dry-run=true` and
 * leaves `release`, `previous-release`, `url` and `noop` empty, and prints its plan to the log (not only to the
 * job summary); a forward-only skip gives `superseded=true` and an empty `release` (the URL still serves).
 */
export function reportDeploy(reporter: Reporter, r: DeployResult): void {
  const deployed = !r.dryRun && !r.superseded;
  if (r.dryRun) for (const line of r.plan ?? []) reporter.info(line);
  reporter.output('sha', r.sha);
  reporter.output('dry-run', String(r.dryRun));
  reporter.output('superseded', String(Boolean(r.superseded)));
  reporter.output('release', deployed ? r.release : '');
  reporter.output('previous-release', deployed ? r.previous : '');
  reporter.output('url', r.dryRun ? '' : r.url);
  reporter.output('noop', r.dryRun ? '' : String(r.noop));
}

/**
 * A dry run's plan with a host whose live commit could not be read is no clean plan (what deploying would change
 * there is unknown): @throws an OpsError naming those hosts (the plan, printed first, says why for each), so the CLI
 * and the action fail after showing it; an InputError when a host was not tried for input to fix (inputFailure: its
 * placeholder address, a key given that is not one), as the deploy itself would refuse it. A real deploy or a plan
 * with every host read: nothing.
 */
export function refuseUnreadPlan(r: DeployResult): void {
  const groups = r.dryRun ? r.changes.filter((g) => g.live.error !== undefined) : [];
  const unread = groups.flatMap((g) => g.hosts);
  if (!unread.length) return;
  const message = `dry run of ${r.environment}: ${unread.join(', ')} could not be read, so what the deploy would change there is unknown (the plan above says why)`;
  if (groups.some((g) => inputFailure(g.live))) throw new InputError(message, `fix what the plan above says (the environment's settings, the key given), then run the dry run again`);
  throw new OpsError(message, 'fix the connection (ops ping ' + r.environment + '), then run the dry run again');
}

/** The job summary (Markdown) of a deploy or its dry run. Values from outside are written with `v` (the reporter's: Markdown-escaped for a job summary, as they are on a terminal). */
export function deploySummary(r: DeployResult, v: ValueFormat = markdownValues): string {
  if (r.dryRun) return ['### Deploy plan (dry run: nothing changed)', '', ...codeBlock((r.plan ?? []).join('\n'))].join('\n');
  if (r.superseded)
    return [`### Skipped (forward-only): ${v.text(r.environment)} @ ${r.sha.slice(0, 12)}`, '', v.text(r.superseded), '', '**Changes** (live → target):', '', ...codeBlock(formatChanges(r.changes, r.sha).join('\n')), ''].join('\n');
  const lines = [
    `### ${r.noop ? 'Already live' : 'Deployed'}: ${v.text(r.environment)} @ ${r.sha.slice(0, 12)}`,
    '',
    '| | |',
    '|---|---|',
    `| environment | ${v.text(r.environment)} |`,
    `| ref | ${v.code(r.ref, 'cell')} (${v.text(r.matched)}) |`,
    `| sha | \`${r.sha}\` |`,
    `| release | ${v.code(r.release, 'cell')} |`,
    // A no-op changed nothing: its "previous" is the live release itself.
    ...(r.noop ? [] : [`| previous release | ${r.previous ? v.code(r.previous, 'cell') : '(none)'} |`]),
    `| url | ${v.text(r.url)} |`,
    `| hosts | ${v.text(r.hosts.map((h) => h.host).join(', '))} |`,
    '',
  ];
  if (r.changes.length) lines.push('**Changes** (live → target):', '', ...codeBlock(formatChanges(r.changes, r.sha).join('\n')), '');
  for (const h of r.hosts) {
    lines.push(`**${v.text(h.host)}**: ${v.text(`${h.noop ? 'no-op' : `${h.previous || '(none)'} → ${h.release}`}${h.notes.length ? ` — ${h.notes.join('; ')}` : ''}`)}`, '');
    if (h.steps.length) lines.push('| step | duration |', '|---|---|', ...h.steps.map((s) => `| ${v.text(s.name)} | ${(s.ms / 1000).toFixed(2)}s |`), '');
  }
  return lines.join('\n');
}
