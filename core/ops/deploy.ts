// ops deploy <env> [--ref REF]: one commit, resolved once on the runner, goes live on every host without a
// failed request. Each host: state → code (pack of what it lacks) → .env → new release → dependencies
// (reused by hash) → build → migrate (first host) → hooks → start the other slot → health gate → switch
// (nginx, then `current`) → prune; the previous release stays warm on the idle slot. Anything failing before
// the switch leaves the live release serving, untouched.
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Environment } from '../config/environment.ts';
import { refuseCollisions } from '../config/siblings.ts';
import { clockSkewWarning, type OpsContext } from '../context.ts';
import { OpsError, StepError } from '../errors.ts';
import { layout, otherSlot, type Slot } from '../layout.ts';
import { reportedAll, type Remote, type StepResult } from '../remote/types.ts';
import { type HostsChange, describeChanges, formatChanges } from '../changes.ts';
import { knownCommits, packFor } from '../source.ts';
import { describeDisk } from '../steps/facts.ts';
import type { AuditEntry } from '../steps/audit.ts';
import { appCommand, dependencies, APP_KEYS } from '../steps/app.ts';
import { createRelease, deployState, installDotenv, markRelease, pruneReleases, receivePack, RELEASE_KEYS } from '../steps/release.ts';
import { START_FAILED_CLEAN, startSlot, stopSlot, switchTo } from '../steps/switch.ts';
import { HostRun, type HostSwitch } from './host-run.ts';
import { withSession, type Session } from './hosts.ts';
import { liveOf, parseState, pruneAfterSwitch, readLive, type HostState } from './host-state.ts';
import { planDeploy, planText, treeNotes, type Plan } from './deploy-plan.ts';
import { withLock } from './locked.ts';

export interface DeployOptions {
  ref?: string;
  /** Deploy even when the sha is already live. */
  force?: boolean;
  dryRun?: boolean;
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
  hosts: HostSwitch[];
  plan?: string[];
  /** What the deploy changes on each group of hosts serving the same commit (read before anything changed). */
  changes: HostsChange[];
}

/**
 * Refuse, before anything is written, a release whose code alone does not fit under the app's directory
 * (the pack, then its files: known on the runner). Dependencies and builds are not known in advance: running
 * out during them fails the step, saying so (HostRun).
 */
function checkSpace(env: Environment, host: string, state: HostState, p: Plan, packBytes: number): void {
  const disk = state.disk;
  if (!disk) return;
  const MB = 1024 * 1024;
  // Files take whole blocks: a margin of 10% and 4 KiB per entry, and 1 MB for the release's own files.
  const needMb = Math.ceil((packBytes + p.size.bytes * 1.1 + p.size.entries * 4096) / MB) + 1;
  const needInodes = p.size.entries + 50;
  const short = disk.freeMb < needMb || (disk.freeInodes !== undefined && disk.freeInodes < needInodes);
  if (!short) return;
  throw new OpsError(
    `not enough space on ${host} for release ${p.id}: ${describeDisk(disk)}, and its code alone needs about ${needMb} MB and ${needInodes} inodes (its dependencies and build more)\n` +
      `${state.current ? `${host} still serves ${state.current}` : `${host} had no live release`}; nothing was changed`,
    `free space on ${host} under ${disk.path} (failed releases, old dependency sets under shared/deps, logs; or lower release.keep), then deploy again`,
  );
}

type Audit = (entry: { result: AuditEntry['result'] } & Partial<AuditEntry>) => void;

async function deployHost(ctx: OpsContext, env: Environment, remote: Remote, inspected: StepResult, p: Plan, primary: boolean, options: DeployOptions, record: Audit): Promise<HostSwitch> {
  const L = layout(env);
  const h = new HostRun(ctx, remote, env);
  const state = parseState(inspected);
  const audit: Audit = (entry) => record({ ref: p.resolved.ref, sha: p.resolved.sha, release: p.id, previous: state.current || undefined, ...entry });
  if (!state.provisioned) throw new OpsError(`${remote.name} is not provisioned for ${env.name}`, `run: ops provision ${env.name}`);
  const live = state.releases.find((r) => r.id === state.current);
  const result: HostSwitch = { host: remote.name, release: p.id, previous: state.current, noop: false, steps: h.steps, notes: [] };
  const skew = clockSkewWarning(ctx, remote.name, state.hostTime);
  if (skew) {
    ctx.reporter.warn(skew);
    result.notes.push(`warning: ${skew}`);
  }

  if (live && live.sha === p.resolved.sha && !options.force) {
    if (state.liveHealth !== 'ok')
      throw new OpsError(`${p.resolved.sha.slice(0, 12)} is already live on ${remote.name} but not healthy: ${state.liveHealth || 'no health result'}`, `check ops status ${env.name}; redeploy with --force to start it again`);
    audit({ result: 'no-op', release: state.current, message: 'already live' });
    return { ...result, release: state.current, noop: true, notes: [`${p.resolved.sha.slice(0, 12)} already live (${state.current})`, ...result.notes] };
  }

  const tag = `${p.id}-${randomBytes(4).toString('hex')}`;
  // Code: a pack of what the host lacks, for the commit and for each submodule commit (one object store);
  // Git LFS contents the host has not stored yet. All over this connection, once the space is known to suffice.
  const packs: { path: string; bytes: Buffer; sha: string; note: string }[] = [];
  const sources = [{ gitDir: p.repo, sha: p.resolved.sha, path: '' }, ...p.tree.submodules];
  for (const [i, src] of sources.entries()) {
    if (state.has.includes(src.sha) || packs.some((x) => x.sha === src.sha)) continue;
    const haves = await knownCommits(src.gitDir, state.known);
    const bytes = await packFor(src.gitDir, src.sha, haves);
    const note = `sent ${(bytes.length / 1024).toFixed(1)} KiB of git objects${src.path ? ` for submodule ${src.path}` : ''}${haves.length ? ' (delta)' : ''}`;
    packs.push({ path: `${L.uploads}/${tag}-${i}.pack`, bytes, sha: src.sha, note });
  }
  checkSpace(env, remote.name, state, p, packs.reduce((sum, x) => sum + x.bytes.length, 0));
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
  if (packs.length || lfs.length) await h.run(receivePack(env, packs.map((x) => x.path), packs.map((x) => x.sha), lfs));
  result.notes.push(...treeNotes(p.tree));
  const uploads = { dotenv: `${L.uploads}/${tag}.env`, environ: `${L.uploads}/${tag}.environ` };
  await h.upload(p.dotenv.dotenv, uploads.dotenv, 0o600);
  await h.upload(p.dotenv.environ, uploads.environ, 0o600);
  await h.run(installDotenv(env, uploads));

  await h.run(createRelease(env, p.meta));
  const dir = `${L.releases}/${p.id}`;
  const newSlot: Slot = state.slot ? otherSlot(state.slot) : 'blue';
  let started = false;
  try {
    const deps = await h.run(dependencies(env, dir, p.hashes));
    result.notes.push(...reportedAll(deps, APP_KEYS.deps).map((d) => `dependencies: ${d}`));
    if (env.config.release.build) await h.run(appCommand(env, dir, 'build', env.config.release.build));
    if (primary && env.config.release.migrate) await h.run(appCommand(env, dir, 'migrate', env.config.release.migrate));
    for (const [i, hook] of env.config.release.before_switch.entries()) await h.run(appCommand(env, dir, `before_switch[${i}]`, hook));
    started = true;
    await h.run(startSlot(env, newSlot, dir, p.id));
    await h.run(switchTo(env, newSlot, p.id, state.certificate, 'deploy'));
  } catch (e) {
    // A start that failed cleanly has already put the slot back (and may have kept the warm release running).
    if (started && !(e instanceof StepError && e.exitCode === START_FAILED_CLEAN)) await h.tryRun(stopSlot(env, newSlot));
    await h.tryRun(markRelease(env, p.id, 'failed', e instanceof Error ? e.message.split('\n')[0]! : String(e)));
    audit({ result: 'failed', message: e instanceof Error ? e.message.split('\n')[0] : String(e) });
    if (e instanceof StepError) {
      throw new OpsError(`${e.message}\n${state.current ? `${remote.name} still serves ${state.current}` : `${remote.name} had no live release`}; nothing was switched`, e.hint);
    }
    throw e;
  }
  try {
    for (const [i, hook] of env.config.release.after_switch.entries()) await h.run(appCommand(env, dir, `after_switch[${i}]`, hook));
  } catch (e) {
    audit({ result: 'failed', message: 'live, but an after_switch hook failed' });
    throw new OpsError(`${(e as Error).message}\n${p.id} is live on ${remote.name}; an after_switch hook failed`, `fix the hook, or roll back: ops rollback ${env.name}`);
  }
  // The previous release stays up on the idle slot (instant rollback), unless configured otherwise.
  if ((state.slot || state.current) && !env.config.switch.keep_previous) await h.run(stopSlot(env, state.slot ?? 'blue', env.config.switch.drain));
  const pruned = await h.run(pruneReleases(env, pruneAfterSwitch(env, state, p.id, newSlot)));
  const gone = reportedAll(pruned, RELEASE_KEYS.pruned);
  if (gone.length) result.notes.push(`pruned ${gone.length} old release(s)`);
  for (const r of reportedAll(pruned, RELEASE_KEYS.kept_running)) result.notes.push(`kept ${r}: a process still runs from it`);
  audit({ result: 'success' });
  return result;
}


/**
 * Put a ref live on every host of the environment (README: "How a deploy works"): resolve it once, then per
 * batch of hosts, under the lock, send what each host lacks, build, migrate (first host), start, check and
 * switch. `options.dryRun` prints the plan and changes nothing; the live sha is a no-op unless `force`.
 * @returns per host: release, previous release, steps with durations. @throws OpsError (refused input,
 * collisions, a failed step naming host, step and output); a failure before the switch leaves the live
 * release serving, and a failed rollout says which hosts run which release.
 */
export async function deploy(ctx: OpsContext, env: Environment, options: DeployOptions = {}): Promise<DeployResult> {
  // Apps sharing a host: refused before anything else (a dry run too: it is the plan) when they collide.
  const sharing = refuseCollisions(env, ctx.reporter);
  const p = await planDeploy(ctx, env, options.ref);
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
  if (options.dryRun) {
    const changes = await describeChanges(p.repo, env, await readLive(ctx, env), p.resolved.sha);
    return { ...base, changes, plan: [...planText(env, p, sharing), '', 'changes (live → target):', ...formatChanges(changes, p.resolved.sha).map((l) => `  ${l}`)] };
  }
  const hosts = await withSession(ctx, env, (session: Session) =>
    withLock(ctx, session, 'deploy', async (locked) => {
      const lives = env.hosts.map((h) => liveOf(h.name, parseState(locked.inspected.get(h.name)!)));
      base.changes = await describeChanges(p.repo, env, lives, p.resolved.sha);
      for (const line of formatChanges(base.changes, p.resolved.sha)) ctx.reporter.info(line);
      const done: HostSwitch[] = [];
      try {
        await session.each(
          async (remote, host) => {
            const r = await deployHost(ctx, env, remote, locked.inspected.get(remote.name)!, p, host === session.hosts[0], options, (entry) => locked.audit(remote.name, entry));
            done.push(r);
            return r;
          },
          { batch: env.config.switch.batch_size },
        );
      } catch (e) {
        if (env.hosts.length > 1) {
          const where = env.hosts.map((h) => {
            const d = done.find((x) => x.host === h.name);
            return `${h.name}: ${d ? d.release : 'unchanged (previous release)'}`;
          });
          if (e instanceof OpsError) throw new OpsError(`${e.message}\nrollout stopped; hosts now run:\n  ${where.join('\n  ')}`, e.hint);
        }
        throw e;
      }
      return done;
    }, { inspect: deployState(env, [p.resolved.sha, ...p.tree.submodules.map((m) => m.sha)], { lfs: [...new Set(p.tree.lfs.map((f) => f.oid))] }) }),
  );
  return {
    ...base,
    hosts,
    release: hosts[0]?.release ?? p.id,
    previous: hosts[0]?.previous ?? '',
    noop: hosts.every((h) => h.noop),
  };
}

/** The job summary (Markdown) of a deploy or its dry run. */
export function deploySummary(r: DeployResult): string {
  if (r.dryRun) return ['### Deploy plan (dry run: nothing changed)', '', '```', ...(r.plan ?? []), '```'].join('\n');
  const lines = [
    `### ${r.noop ? 'Already live' : 'Deployed'}: ${r.environment} @ ${r.sha.slice(0, 12)}`,
    '',
    '| | |',
    '|---|---|',
    `| environment | ${r.environment} |`,
    `| ref | \`${r.ref}\` (${r.matched}) |`,
    `| sha | \`${r.sha}\` |`,
    `| release | \`${r.release}\` |`,
    `| previous release | ${r.previous ? `\`${r.previous}\`` : '(none)'} |`,
    `| url | ${r.url} |`,
    `| hosts | ${r.hosts.map((h) => h.host).join(', ')} |`,
    '',
  ];
  if (r.changes.length) lines.push('**Changes** (live → target):', '', '```', ...formatChanges(r.changes, r.sha), '```', '');
  for (const h of r.hosts) {
    lines.push(`**${h.host}**: ${h.noop ? 'no-op' : `${h.previous || '(none)'} → ${h.release}`}${h.notes.length ? ` — ${h.notes.join('; ')}` : ''}`, '');
    lines.push('| step | duration |', '|---|---|', ...h.steps.map((s) => `| ${s.name} | ${(s.ms / 1000).toFixed(2)}s |`), '');
  }
  return lines.join('\n');
}
