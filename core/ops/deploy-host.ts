// One host's part in a deploy, under the rollout's lock: its state read (a no-op, or the plan of what it does),
// .env, the build (or a build received from another host, hash-checked), the start on the idle slot with the
// health gate, the switch, and the clean-up after it. core/ops/deploy.ts holds the order across hosts.
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { randomBytes } from 'node:crypto';
import { type Target } from '../target.ts';
import { liveChangedWhy } from '../changes.ts';
import { clockSkewWarning, type OpsContext } from '../context.ts';
import { auditReason, ConnectionLostError, DiskFullError, MIGRATION_CUT, OpsError, StepError, TransportError } from '../errors.ts';
import { unpackArtifacts, type PackedPart } from '../steps/artifact.ts';
import { releaseMasks } from '../steps/masks.ts';
import { otherSlot, type Slot } from '../layout.ts';
import { reported, reportedAll, type Remote, type StepResult } from '../remote/types.ts';
import { knownCommits, packFor } from '../source.ts';
import { describeDisk } from '../steps/facts.ts';
import type { AuditEntry } from '../steps/audit.ts';
import { APP_KEYS, appCommand, nodeDependencies, npmrcIgnoredWarning, pythonDependencies, sqliteWarning } from '../steps/app.ts';
import { carryAssets, createRelease, type DotenvUploads, markRelease, nginxMasked, pruneReleases, receivePack, RELEASE_KEYS } from '../steps/release.ts';
import { PREVIOUS_KEYS, putPreviousBack, servedAssetDirs, stageAssets, START_FAILED_CLEAN, SWITCH_KEYS, startSlot, stopSlot, switchTo } from '../steps/switch.ts';
import { HostRun, pooled, reportNginxStarted, type HostSwitch } from './host-run.ts';
import { lacksDomain, nginxMaskedError, nginxUnreadyError, parseState, pendingNames, servedTarget, portsTaken, portsTakenError, pruneAfterFailure, pruneAfterSwitch, supervisorDownError, type HostState, type PortsRefusal } from './host-state.ts';
import type { DeployOptions } from './deploy.ts';
import { treeNotes, type Plan } from './deploy-plan.ts';
import { certificatePaths } from '../steps/nginx-config.ts';
import { type AuditEntryFields, type LockedRun } from './locked.ts';

/**
 * Refuse, before anything is written, a release that does not fit under the app's directory: on a host that
 * builds, its code (the pack of git objects, then its files: known on the runner); on a host that receives a
 * build (`receiving`), the packed parts it is sent (`sendBytes`) and what they take once unpacked (`receiving`'s
 * bytes and inodes: the release and the dependency sets it lacks, as they take them on the builder; unknown,
 * the release's files alone). A builder's dependencies and build are not known in advance: running out during
 * them (or while unpacking) fails the step, saying so (HostRun).
 * @throws OpsError naming the host, what is free and what is needed; nothing was changed.
 */
export function checkSpace(env: Target, host: string, state: HostState, p: Plan, sendBytes: number, receiving?: { bytes?: number; inodes?: number }): void {
  const disk = state.disk;
  if (!disk) return;
  const MB = 1024 * 1024;
  // Files take whole blocks: a margin of 10% and 4 KiB per entry, and 1 MB for the release's own files.
  const files = p.size.bytes * 1.1 + p.size.entries * 4096;
  const unpacked = receiving?.bytes !== undefined ? Math.max(receiving.bytes * 1.05, files) : files;
  const needMb = Math.ceil((sendBytes + unpacked) / MB) + 1;
  const needInodes = Math.max(receiving?.inodes ?? 0, p.size.entries) + 50;
  const short = disk.freeMb < needMb || (disk.freeInodes !== undefined && disk.freeInodes < needInodes);
  if (!short) return;
  const needs = receiving
    ? `the build it would receive needs about ${needMb} MB and ${needInodes} inodes (${Math.ceil(sendBytes / MB)} MB to arrive, ${receiving.bytes !== undefined ? `${Math.ceil(unpacked / MB)} MB once unpacked` : 'its dependency sets more once unpacked'})`
    : `its code alone needs about ${needMb} MB and ${needInodes} inodes (its dependencies and build more)`;
  throw new OpsError(
    `not enough space on ${host} for release ${p.id}: ${describeDisk(disk)}, and ${needs}\n` +
      `${state.current ? `${host} still serves ${state.current}` : `${host} had no live release`}; nothing was changed`,
    `free space on ${host} under ${disk.path} (failed releases, old dependency sets under shared/deps, logs; or lower release.keep), then deploy again`,
  );
}

type Audit = (entry: { result: AuditEntry['result'] } & Partial<AuditEntry>) => void;

/** One host's part in a rollout: its step runner and state, and where its release comes from. */
export interface HostPlan {
  name: string;
  h: HostRun;
  state: HostState;
  result: HostSwitch;
  newSlot: Slot;
  audit: Audit;
  fields: (entry: Parameters<Audit>[0]) => AuditEntryFields;
  /** The release directory exists on the host (made, or received): marked failed if the rollout fails. */
  created: boolean;
  /** Say the release may exist on the host from now on (LockedRun.made: marked failed if the run loses its lock there). */
  making: () => void;
  /** Its release's asset directories may be served as `next` (stageAssets ran): dropped if the rollout stops with the release live nowhere. */
  staged?: boolean;
  /** Its new processes may run (the start step ran): stopped again if the rollout fails. */
  started: boolean;
  /** Its own step failed (failBeforeSwitch ran: release marked, audited). */
  failed: boolean;
  /** Its nginx and `current` point at the new release: it serves it, whatever failed after. */
  switched: boolean;
  /** Its switch lost its connection and the host could not be asked again: what it serves is not known (lostDuringSwitch). */
  liveUnknown?: boolean;
  /** release.migrate ran on it and succeeded (migrateOn): the database has the release's schema, whatever failed after. */
  migrated: boolean;
  /** Why its own step failed (auditReason), once failBeforeSwitch ran: what its audit line and release mark say. */
  reason?: string;
}

/** How a deploy refused for a port of its slot held by a process not the slot's own (portsTakenError) says so. */
const DEPLOY_PORTS: PortsRefusal = { starting: 'this release would start on', nothing: 'nothing was started (no build, no migration)', again: 'deploy again' };

/** The slot a deploy starts on in a host's state: the other than the live one, blue when none is live. */
export function deploySlot(state: Pick<HostState, 'slot'>): Slot {
  return state.slot ? otherSlot(state.slot) : 'blue';
}

/** What a deploy refused before it sent anything did not do. */
export const DEPLOY_UNTOUCHED = 'nothing was sent, built or started';

/**
 * Refuse, before anything is built or migrated (nothing sent yet), a deploy that cannot run on a host from its
 * state read with the lock (hosts never provisioned were refused by the lock step: withLock's LockOptions.unprovisioned): no certificate for TLS,
 * supervisord not running, another server block taking the site's visitors (HostState.nginxTaken: the switch's
 * proof, nginxServed, asked on the live slot), a file nginx -t refuses that the switch does not write (nginxBlocker),
 * another file nginx reads that sends requests to a slot's port itself (slotPortsElsewhere: the switch would not
 * move them), a runtime the dependency sets are made with that the host lacks (HostState.runtimesMissing; uv only where
 * the Python set `pythonSet`, its name under shared/deps, is to be made). Hosts' masked
 * nginx and foreign listeners are refused by refuseMaskedNginx and refuseTakenPorts, once every host passed this.
 * @throws OpsError naming the host (every host, for supervisord down), what is wrong and how to fix it; nothing was changed.
 */
export function refuseUnready(env: Target, hosts: { host: string; state: HostState }[], pythonSet?: string): void {
  // TLS turned on or the domain changed since the last provision: the site cannot be what the settings say.
  const cert = certificatePaths(env);
  for (const { host, state } of hosts)
    if (cert && state.certificate && env.config.domain && lacksDomain(env, state.certLacks))
      throw new OpsError(
        `${host}'s TLS certificate ${cert.cert} does not name ${env.config.domain} (tls.mode ${env.config.tls.mode}): was the domain changed since the last provision? Nothing was changed; the site serves as it did`,
        `run: ops provision ${env.name} (it gets the certificate and writes the site), then deploy`,
      );
    else if (cert && !state.certificate)
      throw new OpsError(
        `${host} has no TLS certificate for ${env.config.domain ?? env.config.app} (${cert.cert}; tls.mode ${env.config.tls.mode}): was tls or domain changed since the last provision? Nothing was changed; the site serves as it did`,
        `run: ops provision ${env.name} (it gets the certificate and writes the site), then deploy`,
      );
  // A runtime the dependency sets are made with, missing (settings or this ops's pins changed since provision: a new
  // Python or Node version, uv chosen or its pin moved): every such host in one error, before anything is built.
  // uv only where the Python set is to be made (`pythonSet`, its name, not on the host): a code-only deploy after this
  // ops's uv pin moved reuses the set, and is not refused.
  const missing = ({ state }: { state: HostState }) => state.runtimesMissing.filter((r) => !(r === env.runtime.uv && pythonSet && state.depsHas.includes(pythonSet)));
  const lacking = hosts.filter((h) => missing(h).length);
  if (lacking.length)
    throw new OpsError(
      `${lacking.map((h) => `${h.host} lacks ${missing(h).join(', ')}`).join('; ')}: the runtime${lacking.some((h) => missing(h).length > 1) || lacking.length > 1 ? 's' : ''} these settings make the dependency sets with (runtimes, release.python_installer, or this ops's pinned uv), which provision installs. Nothing was started (no build, no migration); the site serves as it did`,
      `run: ops provision ${env.name} (it installs them), then deploy again`,
    );
  // every host where supervisord is down, in one error (not one per run)
  const down = hosts.filter(({ state }) => state.supervisorDown).map(({ host, state }) => ({ host, current: state.current }));
  if (down.length) throw supervisorDownError(env, down, 'nothing was started (no build, no migration)', 'deploy again');
  for (const { host, state } of hosts) {
    const nginx = nginxUnreadyError(env, host, state, { nothing: 'nothing was started (no build, no migration)', taken: 'nothing was sent, built or started: nothing changed', again: 'deploy again' });
    if (nginx) throw nginx;
  }
}

/**
 * Refuse, before anything is built or migrated, a deploy to hosts where no nginx runs and systemd may not start it
 * (its unit masked: nginxMasked): the switch's reload could not start it. Every such host named in one error
 * (nginxMaskedError); a stopped nginx that is not masked is started by the switch (beginHost warns).
 * @throws OpsError; nothing was changed on any host.
 */
export function refuseMaskedNginx(hosts: { host: string; state: HostState }[]): void {
  const masked = hosts.filter(({ state }) => nginxMasked(state)).map(({ host }) => host);
  if (masked.length) throw nginxMaskedError(masked, `nothing was started${hosts.length > 1 ? ' on any host' : ''} (no build, no migration)`, 'deploy');
}

/**
 * Refuse, before anything is built or migrated, a deploy whose start would find, on any host, a port of its slot
 * (deploySlot) held by a process that is not the slot's own (deployState's report_slot, as ops status reads it:
 * portsTaken). The slot's own processes (the previous release kept warm, a failed start) are the start's to replace.
 * A host that is a no-op (its state step ended early) reports no listeners and is not refused.
 * @throws OpsError naming every such host in one error (portsTakenError: each port, what listens there, what still
 * serves, how to free them); nothing was changed on any host.
 */
export function refuseTakenPorts(env: Target, hosts: { host: string; state: HostState; result: StepResult }[]): void {
  const taken = hosts.flatMap(({ host, state, result }) => portsTaken(env, host, state, result, deploySlot(state)) ?? []);
  if (taken.length) throw portsTakenError(env, taken, DEPLOY_PORTS);
}

/**
 * A host's state read with the lock: a no-op (its live release is the commit deployed and healthy: reported, audited
 * if the lock step did not already) or the plan of what it will do. The rollout has refused unready hosts, masked
 * nginx and taken ports already (refuseUnready, refuseMaskedNginx, refuseTakenPorts).
 * @throws OpsError for the commit live but not healthy.
 */
export function beginHost(ctx: OpsContext, env: Target, remote: Remote, locked: LockedRun, p: Plan, options: DeployOptions): HostPlan | HostSwitch {
  const h = new HostRun(ctx, remote, env);
  const state = parseState(locked.inspected.get(remote.name)!);
  const fields = (entry: Parameters<Audit>[0]): AuditEntryFields => ({ ref: p.resolved.ref, sha: p.resolved.sha, release: p.id, previous: state.current || undefined, ...entry });
  const audit: Audit = (entry) => locked.audit(remote.name, fields(entry));
  // The refusals before the build (refuseUnready, refuseMaskedNginx, refuseTakenPorts) ran for every host in the
  // rollout, before this. nginx stopped (not masked): the switch's reload starts it (the site is down anyway).
  const result: HostSwitch = { host: remote.name, release: p.id, previous: state.current, noop: false, steps: h.steps, notes: [] };
  if (state.nginxStopped !== undefined) {
    const down = `nginx is not running on ${remote.name}: the site is down; the switch will start it${state.nginxStopped === 'disabled' ? ' (it is not enabled at boot either: ops provision enables it)' : ''}`;
    ctx.reporter.warn(down);
    result.notes.push(`warning: ${down}`);
  }
  const pending = pendingNames(env, remote.name, state);
  if (pending) {
    ctx.reporter.warn(pending);
    result.notes.push(`warning: ${pending}`);
  }
  const skew = clockSkewWarning(ctx, remote.name, state.hostTime);
  if (skew) {
    ctx.reporter.warn(skew);
    result.notes.push(`warning: ${skew}`);
  }
  // The commit live, deployed with another .env or other settings, or its files changed on the host: deployed again, said so.
  if (state.liveSha && state.liveSha === p.resolved.sha && !options.force && state.liveChanged)
    result.notes.push(`${p.resolved.sha.slice(0, 12)} is live (${state.current}) ${state.liveUnrecorded || state.liveChangedFile !== undefined ? liveChangedWhy({ unrecorded: state.liveUnrecorded, changedFile: state.liveChangedFile }) : 'with another .env or other settings'}: deployed again`);
  else if (state.liveSha && state.liveSha === p.resolved.sha && !options.force) {
    if (state.liveHealth !== 'ok') {
      const unhealthy = new OpsError(`${p.resolved.sha.slice(0, 12)} is already live on ${remote.name} but not healthy: ${state.liveHealth || 'no health result'}`, `check ops status ${env.name}; redeploy with --force to start it again`);
      audit({ result: 'failed', release: state.current, message: auditReason(`refused, nothing changed: ${auditReason(unhealthy, (t) => ctx.reporter.redact(t))}`) });
      throw unhealthy;
    }
    // Usually the lock step has already written this and let go (noopFinish): one round trip in all.
    if (!locked.finished(remote.name)) audit({ result: 'no-op', release: state.current, message: 'already live' });
    return { ...result, release: state.current, noop: true, notes: [`${p.resolved.sha.slice(0, 12)} already live (${state.current})`, ...result.notes] };
  }
  return { name: remote.name, h, state, result, newSlot: deploySlot(state), audit, fields, created: false, making: () => locked.made(remote.name, p.id), started: false, failed: false, switched: false, migrated: false };
}

/**
 * The release's .env, environ and masks file, uploaded on stdin (private files under the uploads directory; the step
 * that makes the release puts them in it), the three at once (each on its own channel: one round trip, not three).
 * Throws the first failure once all three ended; what did arrive stays in the uploads directory, which the next run's
 * lock empties (core/steps/lock.ts), as after any upload of a run that stopped.
 */
export async function uploadDotenv(env: Target, hp: HostPlan, p: Plan, tag = `${p.id}-${randomBytes(4).toString('hex')}`): Promise<DotenvUploads> {
  const L = env.layout;
  const uploads = { dotenv: `${L.uploads}/${tag}.env`, environ: `${L.uploads}/${tag}.environ`, masks: `${L.uploads}/${tag}.masks` };
  const sent = await Promise.allSettled([
    hp.h.upload(p.dotenv.dotenv, uploads.dotenv, 0o600),
    hp.h.upload(p.dotenv.environ, uploads.environ, 0o600),
    // What the host masks itself in what it quotes of the app's output (ops status and logs run without the key).
    hp.h.upload(releaseMasks(env, p.dotenv.environ), uploads.masks, 0o600),
  ]);
  const failed = sent.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failed) throw failed.reason;
  return uploads;
}


/**
 * Build the release on a host: code (a pack of the git objects it lacks, submodules, Git LFS contents), .env,
 * the release directory, dependency sets (reused by hash; the Python set made beside the build: with uv once the
 * node set is made, with pip beside it too). Migrations are the rollout's (migrateOn), once this succeeded; with `migrateBeside` (no migration file
 * changed since the live commit on any host: migrationsUnchanged), release.migrate runs here instead, once the
 * Python set is made, beside the build: a migration that has nothing new to apply need not wait for it.
 * @throws StepError of the first part that failed, once the others ended (a part not yet started when another
 * failed does not start); migrations that succeeded beside a build that failed stay (hp.migrated says so).
 */
export async function buildOn(env: Target, hp: HostPlan, p: Plan, migrateBeside = false): Promise<void> {
  const L = env.layout;
  const { h, state, result } = hp;
  const tag = `${p.id}-${randomBytes(4).toString('hex')}`;
  // The .env files travel beside the code, which they do not need, once the code is known to fit (nothing is sent to
  // a host refused for space); a failure of the code's is thrown once they ended too.
  let dotenvSent: Promise<DotenvUploads> | undefined;
  try {
    await sendCode(env, hp, p, tag, () => {
      dotenvSent = uploadDotenv(env, hp, p, tag);
      dotenvSent.catch(() => undefined); // awaited on every path
    });
  } catch (e) {
    await dotenvSent?.catch(() => undefined);
    throw e;
  }
  const dotenv = await dotenvSent!;
  hp.making();
  await h.run(createRelease(env, p.meta, dotenv));
  hp.created = true;
  await prepareRelease(env, hp, p, migrateBeside);
}

/**
 * buildOn's code: a pack of what the host lacks, for the commit and for each submodule commit, and Git LFS contents,
 * received into the host's mirror; `fits` is called once the host is known to have the space (checkSpace), before
 * anything is sent. @throws OpsError when the host lacks the space (nothing sent) or its mirror cannot take them.
 */
async function sendCode(env: Target, hp: HostPlan, p: Plan, tag: string, fits: () => void): Promise<void> {
  const L = env.layout;
  const { h, state, result } = hp;
  // Code: a pack of what the host lacks, for the commit and for each submodule commit (one object store);
  // Git LFS contents the host has not stored yet. All over this connection, once the space is known to suffice.
  // A commit the mirror holds without its history (sent from a shallow clone) is no base for what it lacks.
  const sources = [{ gitDir: p.repo, sha: p.resolved.sha, path: '' }, ...p.tree.submodules];
  const packsFor = async (thin: boolean) => {
    const packs: { path: string; bytes: Buffer; sha: string; note: string; shallow: string[]; delta: boolean }[] = [];
    for (const [i, src] of sources.entries()) {
      if (state.has.includes(src.sha) || packs.some((x) => x.sha === src.sha)) continue;
      const [haves, hostShallow] = thin ? await Promise.all([knownCommits(src.gitDir, state.known), knownCommits(src.gitDir, state.shallow)]) : [[], []];
      const { bytes, shallow } = await packFor(src.gitDir, src.sha, haves, hostShallow);
      const note = `sent ${(bytes.length / 1024).toFixed(1)} KiB of git objects${src.path ? ` for submodule ${src.path}` : ''}${haves.length ? ' (delta)' : ''}${shallow.length ? ' (from a shallow clone: its history stays on the runner)' : ''}`;
      packs.push({ path: `${L.uploads}/${tag}-${thin ? '' : 'full-'}${i}.pack`, bytes, sha: src.sha, note, shallow, delta: haves.length > 0 });
    }
    return packs;
  };
  let packs = await packsFor(true);
  checkSpace(env, hp.name, state, p, packs.reduce((sum, x) => sum + x.bytes.length, 0));
  fits();
  for (const x of packs) {
    await h.upload(x.bytes, x.path, 0o600);
    result.notes.push(x.note);
  }
  const lfs: { upload: string; oid: string }[] = [];
  for (const f of p.tree.lfs) {
    if (state.lfsHas.includes(f.oid) || lfs.some((l) => l.oid === f.oid)) continue;
    const upload = `${L.uploads}/${tag}.lfs-${f.oid}`;
    await h.upload(readFileSync(f.file), upload, 0o600);
    lfs.push({ upload, oid: f.oid });
  }
  if (lfs.length) result.notes.push(`sent ${lfs.length} Git LFS file(s)`);
  if (packs.length || lfs.length) {
    let incomplete = reportedAll(await h.run(receivePack(env, packs.map((x) => x.path), packs.map((x) => x.sha), lfs, packs.flatMap((x) => x.shallow))), RELEASE_KEYS.incomplete);
    // A thin pack leans on history the host's commits imply; a mirror without it (fed from a shallow clone by an
    // earlier version deeper than mirrorShallow finds) takes the commits whole instead, once.
    if (incomplete.length && packs.some((x) => x.delta)) {
      result.notes.push(`the host's git mirror lacked history its commits imply (${incomplete.map((c) => c.slice(0, 12)).join(', ')}): sent again with their full history`);
      packs = await packsFor(false);
      checkSpace(env, hp.name, state, p, packs.reduce((sum, x) => sum + x.bytes.length, 0));
      for (const x of packs) {
        await h.upload(x.bytes, x.path, 0o600);
        result.notes.push(x.note);
      }
      incomplete = reportedAll(await h.run(receivePack(env, packs.map((x) => x.path), packs.map((x) => x.sha), [], packs.flatMap((x) => x.shallow))), RELEASE_KEYS.incomplete);
    }
    if (incomplete.length)
      throw new OpsError(
        `${hp.name}'s git mirror (${L.mirror}) could not take ${incomplete.map((c) => c.slice(0, 12)).join(', ')}: objects they need are missing there; nothing was started`,
        `check it on the host: git --git-dir=${L.mirror} fsck --connectivity-only; moving it aside makes the next deploy send everything`,
      );
  }
  result.notes.push(...treeNotes(p.tree));
}

/** buildOn's work once the release is made: dependency sets, the build, and the migrations when `migrateBeside`. */
async function prepareRelease(env: Target, hp: HostPlan, p: Plan, migrateBeside: boolean): Promise<void> {
  const L = env.layout;
  const { h, result } = hp;
  const dir = `${L.releases}/${p.id}`;
  const { python_requirements: req, node_dir: nodeDir, build, build_needs_python: buildNeedsPython } = env.config.release;
  // The two dependency sets are independent: the Python set is made beside the build (whose input is
  // node_modules, unless the build says it runs Python), with pip beside the node set too, each on an exec channel
  // of this connection.
  // Migrations come after both (migrateOn: a failed build or set leaves the database untouched), unless no migration
  // changed (migrateBeside): then they run once the Python set is made, beside the build. A failure waits for the
  // other part to end, then is thrown (its step's name says which part); a set that failed has no `.complete`
  // and is made again next time. A build not yet started when the Python set failed does not start: the deploy
  // fails whatever it would do (the node set still ends, complete, to be reused).
  const deps: string[][] = [[], []];
  let failed = false; // a part that failed: the parts not yet started do not start
  const part = (work: () => Promise<void>) => async () => {
    if (failed) return;
    await work().catch((e: unknown) => {
      failed = true;
      throw e;
    });
  };
  const python = part(async () => {
    if (req) deps[0] = reportedAll(await h.run(pythonDependencies(env, dir, p.hashes.python, p.deps.python.uvSettings === true, p.deps.python.hashed === true, p.deps.python.uvLock)), APP_KEYS.deps);
  });
  const node = part(async () => {
    if (!nodeDir) return;
    const made = await h.run(nodeDependencies(env, dir, p.hashes.node, p.deps.node.fromLive === true));
    deps[1] = reportedAll(made, APP_KEYS.deps);
    const ignored = reportedAll(made, APP_KEYS.npmrc_ignored);
    if (ignored.length) result.notes.push(`warning: ${npmrcIgnoredWarning(env, ignored)}`);
  });
  const runBuild = part(async () => {
    if (build) warnSqlite(env, hp, p, 'release.build', await h.run(appCommand(env, dir, 'build', build, 1800, { sqlite: true })));
  });
  const migrate = part(async () => {
    if (migrateBeside) await migrateOn(env, hp, p, true);
  });
  const after = (first: () => Promise<void>, then: () => Promise<void>) => async () => {
    await first();
    await then();
  };
  if (buildNeedsPython || !nodeDir) {
    await pooled([node, python], 2, (run) => run());
    await pooled([runBuild, migrate], 2, (run) => run());
  } else if (env.config.release.python_installer === 'pip') await pooled([after(node, runBuild), after(python, migrate)], 2, (run) => run());
  else {
    // uv makes a set in seconds, well within the build: started once the node set (on the deploy's path) is made,
    // it does not compete with it for the host's disk and CPU (a node set made from the live one: 2.6-2.7 s
    // instead of 2.9-3.4 s beside uv, by hand on a test host). pip's takes longer than the build: started at once.
    const nodeSet = node();
    const nodeEnded = nodeSet.catch(() => undefined);
    await pooled([after(() => nodeSet, runBuild), after(() => nodeEnded, after(python, migrate))], 2, (run) => run());
  }
  if (migrateBeside && hp.migrated) result.notes.push(`migrate: beside the build (no migration file changed since the live commit): ${env.config.release.migrate}`);
  result.notes.push(...deps.flat().map((d) => `dependencies: ${d}`));
  for (const kind of ['python', 'node'] as const) if ((kind === 'python' ? req : nodeDir) && p.deps[kind].perRelease) result.notes.push(`dependencies: the ${kind} set is made for each release: ${p.deps[kind].perRelease}`);
}

/**
 * Run release.migrate (if set) in the release built on `hp`: once per rollout, on its first host, after buildOn
 * (or in it, `beside` the build: then at a lower CPU priority, nice 10, as the Python set: it takes what CPU the
 * build leaves, the deploy's path being the build's).
 * @returns whether migrations ran (false: none set). @throws StepError when they fail.
 */
export async function migrateOn(env: Target, hp: HostPlan, p: Plan, beside = false): Promise<boolean> {
  const { migrate, migrate_timeout: limit } = env.config.release;
  if (!migrate) return false;
  try {
    const step = appCommand(env, `${env.layout.releases}/${p.id}`, 'migrate', migrate, limit, { sqlite: true });
    warnSqlite(env, hp, p, 'release.migrate', await hp.h.run(beside ? { ...step, script: `renice -n 10 -p $$ >/dev/null 2>&1 || true\n${step.script}` } : step));
    hp.migrated = true;
  } catch (e) {
    // Stopped by its time limit: most often a statement waiting for a lock a running transaction holds (PostgreSQL
    // queues every later query on that table behind it, the live site's too, for as long as it waits).
    if (e instanceof StepError && e.exitCode === 124)
      throw new StepError(e.step, e.host, e.exitCode, e.stderrTail, e.signal, `a migration still running after release.migrate_timeout (${limit} s) is stopped: if it waits for a lock (a long transaction of the running release), give it a lock timeout of its own (PostgreSQL: SET lock_timeout = '10s') and deploy again; if it needs longer, raise release.migrate_timeout`, e.limit, e.verdict);
    // Its connection lost (the lock's release over a new one stops what it left running), or killed from outside
    // (SIGTERM, SIGKILL: a forced lock release, the OOM killer): cut off part-way, as by a signal to ops.
    if (e instanceof TransportError) throw new TransportError(`${e.message}\n${MIGRATION_CUT}`, e.hint);
    if (e instanceof StepError && (e.exitCode === 143 || e.exitCode === 137)) throw new StepError(e.step, e.host, e.exitCode, e.stderrTail, e.signal, e.hint ? `${MIGRATION_CUT}; ${e.hint}` : MIGRATION_CUT, e.limit, e.verdict);
    throw withPercentHint(e);
  }
  return true;
}

/**
 * Python's configparser's words for a "%" it reads as the start of an interpolation (BasicInterpolation): "invalid
 * interpolation syntax in ..." when a value is set (ValueError, from alembic's Config.set_main_option), and
 * InterpolationSyntaxError ("'%' must be followed by '%' or '('") when one written in the ini file is read.
 */
const PERCENT_INTERPOLATION = /invalid interpolation syntax in |configparser\.InterpolationSyntaxError|'%' must be followed by '%' or '\('/;

/**
 * A failed migration (`e`) whose tail is configparser's refusal of a "%" (PERCENT_INTERPOLATION): alembic's Config
 * is a configparser, so a database URL with a URL-encoded password (%40 for @, as a generated password gets) set
 * with `config.set_main_option('sqlalchemy.url', os.environ[...])` in env.py, or written in alembic.ini, fails
 * before any migration runs. The hint says so and how to escape it. Anything else is returned as it is.
 */
export function withPercentHint(e: unknown): unknown {
  if (!(e instanceof StepError) || !PERCENT_INTERPOLATION.test(e.stderrTail)) return e;
  const hint = `alembic's Config is a Python configparser, which reads "%" as the start of an interpolation: a value with a "%" in it, most often the database URL of a URL-encoded password (%40 for @), is refused before any migration runs (the database was not touched). Escape each "%" where the URL is given to alembic: in env.py, config.set_main_option("sqlalchemy.url", os.environ["DATABASE_URL"].replace("%", "%%")) (your variable's name); in alembic.ini, write each % of the URL as %%; then deploy again`;
  return new StepError(e.step, e.host, e.exitCode, e.stderrTail, e.signal, e.hint ? `${e.hint}; ${hint}` : hint, e.limit, e.verdict);
}

/** Warn (now, and in the host's notes) of the SQLite databases `what` (release.build, release.migrate) wrote in the release, if any. */
function warnSqlite(env: Target, hp: HostPlan, p: Plan, what: string, ran: StepResult): void {
  const warning = sqliteWarning(env, what, p.id, reportedAll(ran, APP_KEYS.sqlite_made));
  if (!warning) return;
  hp.h.ctx.reporter.warn(`${hp.name}: ${warning}`);
  hp.result.notes.push(`warning: ${warning}`);
}

/**
 * A failed start (`e`: startSlot's StepError) whose log tail names a variable of the release's `.env` that no
 * program gets in its environment (a whole word, as Python's `KeyError: 'NAME'`, Node's `process.env.NAME`,
 * django-environ's "Set the NAME environment variable" write it), with a hint saying why and the ways out: build,
 * migrate and the hooks get the `.env`'s values in their environment (.ops-environ), a program only what
 * `programs.<name>.env` gives it (README `programs.<name>.command`), so settings read from the process environment
 * (Django's checklist's `os.environ['SECRET_KEY']`, Flask's `from_prefixed_env`) pass the migration and fail the
 * start. Anything else is returned as it is.
 */
export function withDotenvOnlyHint(env: Target, e: unknown): unknown {
  if (!(e instanceof StepError)) return e;
  const given = new Set(Object.values(env.config.programs).flatMap((program) => Object.keys(program.env)));
  const named = Object.keys(env.config.env).filter((name) => !given.has(name) && new RegExp(`(?<![A-Za-z0-9_])${name}(?![A-Za-z0-9_])`).test(e.stderrTail));
  if (!named.length) return e;
  const hint = `the programs' log names ${named.join(', ')}, of the release's .env: build, migrate and hooks get the .env's values in their environment, a program only HOME, PATH, OPS_RELEASE, OPS_SLOT and its programs.<name>.env; let the app read the file (django-environ's Env.read_env, python-dotenv's load_dotenv, Node's dotenv or node --env-file), or start the program through the shell reader: command: "sh -c 'set -a; . {release}/.env; exec <program>'" with shell in dotenv.readers${elsewhereNote(env, e.stderrTail, named)}`;
  return new StepError(e.step, e.host, e.exitCode, e.stderrTail, e.signal, e.hint ? `${e.hint}; ${hint}` : hint, e.limit, e.verdict);
}

/**
 * For withDotenvOnlyHint: the programs whose own log section of a failed start's tail (`--- <logDir>/<program>-<slot>.<out|err>.log`,
 * startSlot; lines above the first header, cut off by the error's tail, are any program's), or whose log the health
 * verdict quotes (`<log> ends: ...`, that program's alone), names one of `named` and that run
 * in a `directory` other than the release's root, where the `.env` is:
 * a reader that looks in the working directory (Node's dotenv `config()`, `node --env-file=.env`, pydantic-settings'
 * `env_file=".env"`) finds no file there, so "read the file" is not the way out without its path. '' when none.
 */
function elsewhereNote(env: Target, tail: string, named: string[]): string {
  const dir = env.layout.logDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const header = new RegExp(`^--- ${dir}/(.+)-(?:blue|green)\\.(?:out|err)\\.log$`);
  // The health verdict quotes a program's log on its own line ("<log> ends: ..."), not again under its header.
  const quoted = new RegExp(`${dir}/([^\\s/]+)-(?:blue|green)\\.(?:out|err)\\.log ends: (.*)$`);
  const found = new Set<string>();
  let program: string | undefined;
  for (const line of tail.split('\n')) {
    const m = header.exec(line);
    const q = m ? null : quoted.exec(line);
    if (m) program = m[1];
    else if (q && named.some((name) => new RegExp(`(?<![A-Za-z0-9_])${name}(?![A-Za-z0-9_])`).test(q[2]!))) found.add(q[1]!);
    else if (!q && named.some((name) => new RegExp(`(?<![A-Za-z0-9_])${name}(?![A-Za-z0-9_])`).test(line))) {
      // Above the first header (the tail cut it off): any program's, so each with a directory of its own.
      for (const p of program ? [program] : Object.keys(env.config.programs)) found.add(p);
    }
  }
  const notes = [...found].flatMap((name) => {
    const dir = posix.normalize(env.config.programs[name]?.directory ?? '.').replace(/\/+$/, '');
    if (dir === '.' || !env.config.programs[name]) return [];
    const up = `${posix.relative(dir, '.')}/.env`;
    return [`${name} runs in ${dir}/ and the .env is at the release's root, ${up} from there: a reader looking in the working directory (Node's dotenv config(), node --env-file=.env, pydantic-settings' env_file=".env") finds none, so give it that path (dotenv.config({ path: '${up}' }), node --env-file=${up}, env_file="${up}")`];
  });
  return notes.length ? `; ${notes.join('; ')}` : '';
}

/** The dependency sets of the commit deployed (directory names under shared/deps). */
export function dependencySets(env: Target, p: Plan): string[] {
  return [...(env.config.release.python_requirements ? [`venv-${p.hashes.python}`] : []), ...(env.config.release.node_dir ? [`node-${p.hashes.node}`] : [])];
}

/** The parts of a build uploaded to a receiving host (chunk files, in order), by part. */
export interface Received {
  part: PackedPart;
  uploads: string[];
}

/**
 * Give a host the release built on `builder`, once its parts and its .env files are uploaded (the rollout carries the
 * parts in chunks: `received`; `dotenv`: uploadDotenv's): the parts checked by sha256 and unpacked (the release
 * directory always; a dependency set only if the host has no complete one).
 */
export async function receiveBuild(env: Target, hp: HostPlan, p: Plan, builder: string, received: Received[], dotenv: DotenvUploads): Promise<void> {
  hp.created = true;
  hp.making();
  await hp.h.run(unpackArtifacts(env, p.meta, received.map(({ part, uploads }) => ({ name: part.name, uploads, sha256: part.sha256 })), builder, dotenv));
  const kib = received.reduce((n, x) => n + x.part.size, 0) / 1024;
  hp.result.notes.push(`received the build of ${builder} (${received.map((x) => x.part.name).join(', ')}: ${kib >= 1024 ? `${(kib / 1024).toFixed(1)} MiB` : `${kib.toFixed(0)} KiB`}, sha256-checked)`);
  for (const set of dependencySets(env, p)) hp.result.notes.push(`dependencies: ${set.split('-')[0] === 'venv' ? 'python' : 'node'} ${hp.state.depsHas.includes(set) ? 'reused' : `received from ${builder}`}`);
}

/** Whether a host needs packed part `name` of a build: the release always, a dependency set when it has no complete one. */
export function wants(hp: HostPlan, name: string): boolean {
  return name === 'release' || !hp.state.depsHas.includes(name);
}

/**
 * The before_switch hooks, on every host (they may act on the host itself); then, the release prepared, its served
 * asset directories staged as `next` (stageAssets), before any host switches.
 */
export async function beforeSwitch(env: Target, hp: HostPlan, p: Plan): Promise<void> {
  const dir = `${env.layout.releases}/${p.id}`;
  for (const [i, hook] of env.config.release.before_switch.entries()) await hp.h.run(appCommand(env, dir, `before_switch[${i}]`, hook));
  if (servedAssetDirs(env).length) {
    hp.staged = true;
    await hp.h.run(stageAssets(env, p.id));
  }
}

/**
 * Mark `p`'s release on a host failed (`why`), then prune as after a switch, the live release and what each slot runs
 * kept (pruneAfterFailure): the failed releases past release.keep_failed go now, not at the next deploy that goes live
 * (a run of failed deploys would keep them all, with the dependency sets only they use, and the disk they fill).
 * Under the run's lock on the host. Each step tried once; one that fails is left for the next prune.
 */
export async function markFailed(env: Target, hp: HostPlan, p: Plan, why: string): Promise<void> {
  await hp.h.tryRun(markRelease(env, p.id, 'failed', why));
  await hp.h.tryRun(pruneReleases(env, pruneAfterFailure(env, hp.state, p.id), dependencySets(env, p).some((set) => !hp.state.depsHas.includes(set))));
}

/**
 * A host's failure before its switch (`e`: what failed): its new processes stopped and the release its slot held before
 * the start put back there (putPreviousBack: warm again for an instant rollback, or said not to be), its release marked
 * failed, audited. Returns the error to throw: a step's failure says what still serves, that nothing was switched, and
 * what the idle slot holds again; another error as it was.
 */
export async function failBeforeSwitch(env: Target, hp: HostPlan, p: Plan, e: unknown): Promise<unknown> {
  const why = auditReason(e, (t) => hp.h.ctx.reporter.redact(t));
  hp.reason = why;
  hp.failed = true;
  // A start that failed cleanly has already put the slot back (the release it held started again: previous_back, switch.ts).
  let back: string | undefined;
  if (hp.started && !(e instanceof StepError && e.exitCode === START_FAILED_CLEAN)) {
    const r = await hp.h.tryRun(putPreviousBack(env, hp.newSlot));
    back = r && reported(r, PREVIOUS_KEYS.previous_back)?.trim();
  }
  if (hp.created) await markFailed(env, hp, p, why);
  hp.audit({ result: 'failed', message: why });
  // A lost connection before the switch changed nothing that serves either (a switch it cut ended on the host without
  // its release live: lostDuringSwitch).
  if (e instanceof StepError || e instanceof DiskFullError || e instanceof TransportError)
    return new OpsError(`${e.message}\n${hp.state.current ? `${hp.name} still serves ${hp.state.current}` : `${hp.name} had no live release`}; nothing was switched${back ? `\n${hp.name}: ${back}` : ''}`, e.hint);
  return e;
}

/**
 * A host whose connection was lost during its switch (`e`): asked over a new connection once the switch ended there
 * (LockedRun.settleLost). Its release live: the host is switched, audited and said so (live, what was left undone), thrown;
 * the host not answering: said not known, thrown; else returns, nothing switched (failBeforeSwitch says what still serves).
 */
async function lostDuringSwitch(env: Target, hp: HostPlan, p: Plan, locked: LockedRun, e: ConnectionLostError): Promise<void> {
  const live = await locked.settleLost(hp.name);
  if (live === undefined) {
    // The host not asked again: neither live nor not, so neither said (nor the release marked failed).
    const unknown = `whether ${p.id} went live on ${hp.name} is not known: its switch goes on there without the connection, and the host could not be asked again`;
    hp.failed = true;
    hp.liveUnknown = true;
    hp.reason = `${auditReason(e, (t) => hp.h.ctx.reporter.redact(t))}; ${unknown}`;
    hp.audit({ result: 'failed', message: hp.reason });
    throw new OpsError(`${e.message}\n${unknown}`, `see ops status ${env.name} (what current names and what serves), then deploy again or ops rollback ${env.name}`);
  }
  if (live !== p.id) return;
  hp.switched = true;
  const undone = `the switch ended on the host after the connection was lost; ${afterSwitchUndone(env)}`;
  locked.wentLive(hp.name, undone);
  hp.audit({ result: 'failed', message: `live, but ${auditReason(e, (t) => hp.h.ctx.reporter.redact(t))}; ${undone}` });
  throw new OpsError(`${e.message}\n${p.id} is live on ${hp.name} and serves: ${undone}`, `see ops status ${env.name}; the next deploy prunes`);
}

/** What a deploy stopped right after its switch leaves undone (for its audit line: the release is live). */
export function afterSwitchUndone(env: Target): string {
  const undone = [...(env.config.release.after_switch.length ? ['its after_switch hooks'] : []), ...(env.config.switch.keep_previous ? [] : ['stopping the previous slot']), 'pruning old releases'];
  return `not done after it: ${undone.join(', ')} (the next deploy prunes)`;
}

/** Start the release on the idle slot, health gate, switch, after_switch hooks, prune (with the unlock). */
export async function switchHost(env: Target, hp: HostPlan, p: Plan, locked: LockedRun): Promise<HostSwitch> {
  const { h, state, result, newSlot } = hp;
  const dir = `${env.layout.releases}/${p.id}`;
  let switching = false;
  try {
    // Asset bridging: the live release's hashed assets into the new one, before it starts (its server lists its files then).
    if (env.config.release.asset_dirs.length && state.current) {
      const carry = await h.run(carryAssets(env, p.id, state.current));
      const carried = reported(carry, RELEASE_KEYS.carried);
      if (carried && carried !== '0') result.notes.push(`assets: carried ${carried} file(s) of ${state.current} (release.asset_dirs)`);
      // Files nginx tells browsers to keep for good that changed under their names: the new release is not all they get.
      for (const unhashed of reportedAll(carry, RELEASE_KEYS.unhashed)) {
        h.ctx.reporter.warn(`${hp.name}: ${unhashed}`);
        result.notes.push(`warning: ${unhashed}`);
      }
    }
    hp.started = true;
    await h.run(startSlot(env, newSlot, dir, p.id, p.dotenvSums)).catch((e: unknown) => {
      throw withDotenvOnlyHint(env, e);
    });
    switching = true;
    const switched = await h.run(switchTo(servedTarget(env, state), newSlot, p.id, state.certificate, 'deploy', { fingerprint: p.fingerprint, dotenvSums: p.dotenvSums, settings: p.settings }), { allowFailure: true });
    if (switched.code !== 0) {
      const failure = await h.failure('switch', switched);
      // Failed after `current` flipped (its records: history, fingerprint): the release is live and serves; its
      // slot must not be stopped nor the release marked failed, and the error must not say nothing switched.
      if (reported(switched, SWITCH_KEYS.switched) !== p.id) throw failure;
      hp.switched = true;
      locked.wentLive(hp.name, `recording the switch failed; ${afterSwitchUndone(env)}`);
      hp.audit({ result: 'failed', message: `live, but recording the switch failed: ${auditReason(failure, (t) => h.ctx.reporter.redact(t))}` });
      throw new OpsError(`${(failure as Error).message}\n${p.id} is live on ${hp.name} and serves; recording it (the host's history, what it was deployed with) failed after the switch`, `see ops status ${env.name} and ops releases ${env.name}; the next deploy records again`);
    }
    hp.switched = true;
    locked.wentLive(hp.name, afterSwitchUndone(env));
    reportNginxStarted(h.ctx, result, switched);
  } catch (e) {
    if (hp.switched) throw e;
    // The connection lost while the switch ran: the switch goes on without it (it ignores the hang-up), so whether the
    // release went live is the host's word, not a failure assumed.
    if (switching && e instanceof ConnectionLostError) await lostDuringSwitch(env, hp, p, locked, e);
    throw await failBeforeSwitch(env, hp, p, e);
  }
  try {
    for (const [i, hook] of env.config.release.after_switch.entries()) await h.run(appCommand(env, dir, `after_switch[${i}]`, hook));
  } catch (e) {
    hp.audit({ result: 'failed', message: `live, but an after_switch hook failed: ${auditReason(e, (t) => h.ctx.reporter.redact(t))}` });
    throw new OpsError(`${(e as Error).message}\n${p.id} is live on ${hp.name}; an after_switch hook failed`, `fix the hook, or roll back: ops rollback ${env.name}`);
  }
  let pruned: StepResult;
  try {
    // The previous release stays up on the idle slot (instant rollback), unless configured otherwise.
    if ((state.slot || state.current) && !env.config.switch.keep_previous) await h.run(stopSlot(env, state.slot ?? 'blue', env.config.switch.drain));
    // Pruning is the last step: it writes the audit line and lets go of the lock in the same round trip.
    // The package caches grow only when this host made (or received) a dependency set in this run: weighed then only.
    const prune = pruneReleases(env, pruneAfterSwitch(env, state, p.id, newSlot), dependencySets(env, p).some((set) => !hp.state.depsHas.includes(set)));
    pruned = await h.run({ ...prune, script: `${prune.script}\n${locked.closing(hp.name, hp.fields({ result: 'success' }))}` });
  } catch (e) {
    // The switch is done: the new release serves. Say so, whatever failed in the clean-up after it.
    hp.audit({ result: 'failed', message: `live, but the clean-up after the switch failed: ${auditReason(e, (t) => h.ctx.reporter.redact(t))}` });
    throw new OpsError(`${(e as Error).message}\n${p.id} is live on ${hp.name} and serves; the clean-up after the switch (stopping the previous slot, pruning old releases) failed`, `see the error above; ops status ${env.name} shows what runs; the next deploy prunes again`);
  }
  locked.closed(hp.name, pruned);
  const gone = reportedAll(pruned, RELEASE_KEYS.pruned);
  if (gone.length) result.notes.push(`pruned ${gone.length} old release(s)`);
  for (const r of reportedAll(pruned, RELEASE_KEYS.kept_running)) result.notes.push(`kept ${r}: a process still runs from it`);
  for (const c of reportedAll(pruned, RELEASE_KEYS.pruned_cache)) result.notes.push(`emptied the package cache ${c.replace(/^\d+ /, '')} (${c.split(' ')[0]} MB, past its bound: the next new dependency set downloads what it needs)`);
  const stale = reportedAll(pruned, RELEASE_KEYS.stale).map((line) => line.split('\t'));
  if (stale.length)
    result.notes.push(
      `warning: ${stale.map(([pid, via, comm]) => `pid ${pid} (${comm}) ${via === 'current' ? `started through ${env.layout.current} before the switch` : `runs release ${via}`}`).join(', ')}: not ${p.id}, the release now live; the switch restarts only the environment's programs: restart it (a supervisor program or systemd unit of your own: in release.after_switch), or make it one of the environment's programs`,
    );
  return result;
}
