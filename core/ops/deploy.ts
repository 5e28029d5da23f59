// ops deploy <env> [--ref REF]: one commit, resolved once on the runner, goes live on every host without a
// failed request. Each host: state → code (pack of what it lacks) → .env → new release → dependencies
// (reused by hash) → build → migrate (first host) → hooks → start the other slot → health gate → switch
// (nginx, then `current`) → prune; the previous release stays warm on the idle slot. Anything failing before
// the switch leaves the live release serving, untouched.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import type { Environment } from '../config/environment.ts';
import { inBatches, withSession, type OpsContext, type Session } from '../context.ts';
import { renderDotenv } from '../dotenv.ts';
import { DISK_FULL, DiskFullError, OpsError, StepError } from '../errors.ts';
import { layout, otherSlot, type Slot } from '../layout.ts';
import { runInfo } from '../runinfo.ts';
import { reported, reportedAll, type Remote, type Step, type StepResult } from '../remote/types.ts';
import { validate } from '../shell.ts';
import { blobId, depsHash, knownCommits, nodeDependencyInput, packFor, resolveRef, treeSize, type ResolvedRef } from '../source.ts';
import { describeDisk, diskSpace, parseDisk, type DiskSpace } from '../steps/facts.ts';
import type { AuditEntry } from '../steps/audit.ts';
import { site } from '../steps/nginx.ts';
import { appCommand, createRelease, dependencies, deployState, installDotenv, markRelease, pruneReleases, receivePack, releaseId, type ReleaseMeta } from '../steps/release.ts';
import { slotConfig, startSlot, stopSlot, switchTo } from '../steps/switch.ts';
import { withLock } from './locked.ts';
import { environmentSecrets } from './secrets.ts';

export interface DeployOptions {
  ref?: string;
  /** Deploy even when the sha is already live. */
  force?: boolean;
  dryRun?: boolean;
}

export interface HostDeploy {
  host: string;
  release: string;
  previous: string;
  noop: boolean;
  steps: { name: string; ms: number }[];
  notes: string[];
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
  hosts: HostDeploy[];
  plan?: string[];
}

/** Parsed `deployState`. */
export interface HostState {
  provisioned: boolean;
  current: string;
  slot: Slot | undefined;
  releases: { id: string; sha: string; status: string }[];
  known: string[];
  hasSha: boolean;
  certificate: boolean;
  /** "ok", or what failed, for the live slot; "" when nothing is live. */
  liveHealth: string;
  /** Free space and inodes under the app's directory. */
  disk?: DiskSpace;
}

export function parseState(r: StepResult): HostState {
  const slot = reported(r, 'slot');
  return {
    provisioned: (reported(r, 'provisioned') ?? 'no') !== 'no',
    current: reported(r, 'current') ?? '',
    slot: slot === 'blue' || slot === 'green' ? slot : undefined,
    releases: reportedAll(r, 'release').map((v) => {
      const [id, sha, status] = v.split(' ');
      return { id: id!, sha: sha ?? '', status: status ?? 'ok' };
    }),
    known: reportedAll(r, 'known'),
    hasSha: reported(r, 'has_sha') === 'yes',
    certificate: reported(r, 'certificate') === 'yes',
    liveHealth: reported(r, 'live_health') ?? '',
    disk: parseDisk(reported(r, 'disk')),
  };
}

/** The repository deployed from: the environment's `repository`, else the git repository holding the project. */
export function sourceRepository(ctx: OpsContext, env: Environment): string {
  const configured = env.config.repository;
  if (configured) return isAbsolute(configured) ? configured : resolve(ctx.root, configured);
  try {
    return execFileSync('git', ['-C', ctx.root, 'rev-parse', '--show-toplevel'], { encoding: 'utf8' }).trim();
  } catch {
    return ctx.root;
  }
}

/**
 * Timed step runner for one host: groups in the log, durations for the summary. A step or upload that runs
 * out of disk space or inodes fails saying so, with what is left under the app's directory (one more round
 * trip, on that failure only).
 */
export class HostRun {
  readonly steps: { name: string; ms: number }[] = [];
  constructor(
    private readonly ctx: OpsContext,
    readonly remote: Remote,
    private readonly env: Environment,
  ) {}
  async run(step: Step): Promise<StepResult> {
    const started = Date.now();
    try {
      return await (step.quiet ? this.remote.run(step) : this.ctx.reporter.group(`${this.remote.name} · ${step.name}`, () => this.remote.run(step)));
    } catch (e) {
      throw await this.diskFull(e);
    } finally {
      this.steps.push({ name: step.name, ms: Date.now() - started });
    }
  }
  async upload(content: Buffer | string, path: string, mode: number): Promise<void> {
    await this.remote.upload(content, path, { mode }).catch(async (e: unknown) => {
      throw await this.diskFull(e);
    });
  }
  /** A cleanup step whose own failure must not hide the original error. */
  async tryRun(step: Step): Promise<void> {
    await this.remote.run(step, { allowFailure: true }).catch(() => undefined);
  }
  /**
   * A failed step: was the disk full? Said in its error (ENOSPC), or not (a tool that hides its cause, like
   * venv's ensurepip): the space and inodes left after it tell.
   */
  private async diskFull(e: unknown): Promise<unknown> {
    if (!(e instanceof StepError) || e.exitCode === null) return e;
    const r = await this.remote.run(diskSpace(this.env), { allowFailure: true }).catch(() => undefined);
    const disk = r && parseDisk(reported(r, 'disk'));
    const exhausted = disk && (disk.freeMb < 1 || (disk.freeInodes !== undefined && disk.freeInodes < 10));
    if (!DISK_FULL.test(e.message) && !exhausted) return e;
    const what = disk?.freeInodes === 0 ? 'free inodes' : 'disk space';
    return new DiskFullError(
      e,
      `${this.remote.name} ran out of ${what}${disk ? `: ${describeDisk(disk)}` : ` under ${this.env.baseDir}`}`,
      `free space on ${this.remote.name} under ${disk?.path ?? this.env.baseDir} (failed releases, old dependency sets under shared/deps, logs; or lower release.keep), then deploy again`,
    );
  }
}

interface Plan {
  resolved: ResolvedRef;
  /** What the release's files take once written (git ls-tree). */
  tree: { bytes: number; entries: number };
  repo: string;
  id: string;
  dotenv: string;
  hashes: { python: string; node: string };
  meta: ReleaseMeta;
}

async function plan(ctx: OpsContext, env: Environment, options: DeployOptions): Promise<Plan> {
  const ref = validate('gitRef', options.ref || env.config.ref);
  const repo = sourceRepository(ctx, env);
  const resolved = await resolveRef(repo, ref);
  const { python, node } = env.config.runtimes;
  const { python_requirements: req, node_dir: nodeDir } = env.config.release;
  const hashes = {
    python: depsHash([`python ${python.strategy} ${python.version}`, await blobId(repo, resolved.sha, req)]),
    node: depsHash([`node ${node.strategy} ${node.version}`, nodeDir ? await nodeDependencyInput(repo, resolved.sha, nodeDir) : '']),
  };
  const secrets = await environmentSecrets(ctx, env);
  const dotenv = renderDotenv(env, secrets);
  const id = releaseId(resolved.sha);
  // Configuration mistakes surface now, before any host is touched.
  for (const slot of ['blue', 'green'] as const) slotConfig(env, slot, `${layout(env).releases}/${id}`, id);
  if (env.config.tls.mode === 'off' || env.config.nginx.site_template) site(env, true);
  const info = runInfo(ctx.env);
  const meta: ReleaseMeta = { id, sha: resolved.sha, ref, environment: env.name, actor: info.actor, time: new Date().toISOString(), run: info.runUrl, deps: hashes };
  return { resolved, repo, id, dotenv, hashes, meta, tree: await treeSize(repo, resolved.sha) };
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
  const needMb = Math.ceil((packBytes + p.tree.bytes * 1.1 + p.tree.entries * 4096) / MB) + 1;
  const needInodes = p.tree.entries + 50;
  const short = disk.freeMb < needMb || (disk.freeInodes !== undefined && disk.freeInodes < needInodes);
  if (!short) return;
  throw new OpsError(
    `not enough space on ${host} for release ${p.id}: ${describeDisk(disk)}, and its code alone needs about ${needMb} MB and ${needInodes} inodes (its dependencies and build more)\n` +
      `${state.current ? `${host} still serves ${state.current}` : `${host} had no live release`}; nothing was changed`,
    `free space on ${host} under ${disk.path} (failed releases, old dependency sets under shared/deps, logs; or lower release.keep), then deploy again`,
  );
}

type Audit = (entry: { result: AuditEntry['result'] } & Partial<AuditEntry>) => void;

async function deployHost(ctx: OpsContext, env: Environment, remote: Remote, inspected: StepResult, p: Plan, primary: boolean, options: DeployOptions, record: Audit): Promise<HostDeploy> {
  const L = layout(env);
  const h = new HostRun(ctx, remote, env);
  const state = parseState(inspected);
  const audit: Audit = (entry) => record({ ref: p.resolved.ref, sha: p.resolved.sha, release: p.id, previous: state.current || undefined, ...entry });
  if (!state.provisioned) throw new OpsError(`${remote.name} is not provisioned for ${env.name}`, `run: ops provision ${env.name}`);
  const live = state.releases.find((r) => r.id === state.current);
  const result: HostDeploy = { host: remote.name, release: p.id, previous: state.current, noop: false, steps: h.steps, notes: [] };

  if (live && live.sha === p.resolved.sha && !options.force) {
    if (state.liveHealth !== 'ok')
      throw new OpsError(`${p.resolved.sha.slice(0, 12)} is already live on ${remote.name} but not healthy: ${state.liveHealth || 'no health result'}`, `check ops status ${env.name}; redeploy with --force to start it again`);
    audit({ result: 'no-op', release: state.current, message: 'already live' });
    return { ...result, release: state.current, noop: true, notes: [`${p.resolved.sha.slice(0, 12)} already live (${state.current})`] };
  }

  const tag = `${p.id}-${randomBytes(4).toString('hex')}`;
  const haves = state.hasSha ? [] : await knownCommits(p.repo, state.known);
  const pack = state.hasSha ? undefined : await packFor(p.repo, p.resolved.sha, haves);
  checkSpace(env, remote.name, state, p, pack?.length ?? 0);
  if (pack) {
    const path = `${L.uploads}/${tag}.pack`;
    await h.upload(pack, path, 0o600);
    await h.run(receivePack(env, path, p.resolved.sha));
    result.notes.push(`sent ${(pack.length / 1024).toFixed(1)} KiB of git objects${haves.length ? ' (delta)' : ''}`);
  }
  const envPath = `${L.uploads}/${tag}.env`;
  await h.upload(p.dotenv, envPath, 0o600);
  await h.run(installDotenv(env, envPath));

  await h.run(createRelease(env, p.meta));
  const dir = `${L.releases}/${p.id}`;
  const newSlot: Slot = state.slot ? otherSlot(state.slot) : 'blue';
  let started = false;
  try {
    const deps = await h.run(dependencies(env, dir, p.hashes));
    result.notes.push(...reportedAll(deps, 'deps').map((d) => `dependencies: ${d}`));
    if (env.config.release.build) await h.run(appCommand(env, dir, 'build', env.config.release.build));
    if (primary && env.config.release.migrate) await h.run(appCommand(env, dir, 'migrate', env.config.release.migrate));
    for (const [i, hook] of env.config.release.before_switch.entries()) await h.run(appCommand(env, dir, `before_switch[${i}]`, hook));
    started = true;
    await h.run(startSlot(env, newSlot, dir, p.id));
    await h.run(switchTo(env, newSlot, p.id, state.certificate));
  } catch (e) {
    if (started) await h.tryRun(stopSlot(env, newSlot));
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
  const pruned = await h.run(pruneReleases(env, env.config.release.keep));
  const gone = reportedAll(pruned, 'pruned');
  if (gone.length) result.notes.push(`pruned ${gone.length} old release(s)`);
  audit({ result: 'success' });
  return result;
}

function summaryPlan(env: Environment, p: Plan): string[] {
  const steps = ['lock', 'state', 'code (pack of missing objects)', '.env', 'release', 'dependencies (reused when lockfiles unchanged)'];
  if (env.config.release.build) steps.push(`build: ${env.config.release.build}`);
  if (env.config.release.migrate) steps.push(`migrate (first host): ${env.config.release.migrate}`);
  steps.push(...env.config.release.before_switch.map((c) => `before_switch: ${c}`), 'start the other slot + health checks', 'switch: nginx -t, graceful reload, current → release');
  steps.push(
    ...env.config.release.after_switch.map((c) => `after_switch: ${c}`),
    env.config.switch.keep_previous ? 'keep the previous release warm on the idle slot' : `drain (at most ${env.config.switch.drain}s), stop the old slot`,
    `prune (keep ${env.config.release.keep})`,
    'audit, unlock',
  );
  return [
    `environment ${env.name}: ${p.resolved.ref} (${p.resolved.matched}) = ${p.resolved.sha}`,
    `release ${p.id}`,
    `hosts (batches of ${env.config.switch.batch_size}): ${env.hosts.map((h) => `${h.name} (${h.address})`).join(', ')}`,
    ...steps.map((s, i) => `  ${i + 1}. ${s}`),
  ];
}

export async function deploy(ctx: OpsContext, env: Environment, options: DeployOptions = {}): Promise<DeployResult> {
  const p = await plan(ctx, env, options);
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
  };
  if (options.dryRun) return { ...base, plan: summaryPlan(env, p) };
  const hosts = await withSession(ctx, env, (session: Session) =>
    withLock(ctx, session, 'deploy', async (locked) => {
      const done: HostDeploy[] = [];
      try {
        await inBatches(
          env.hosts.map((h, i) => ({ remote: session.remote(h.name), primary: i === 0 })),
          env.config.switch.batch_size,
          async ({ remote, primary }) => {
            const r = await deployHost(ctx, env, remote, locked.inspected.get(remote.name)!, p, primary, options, (entry) => locked.audit(remote.name, entry));
            done.push(r);
            return r;
          },
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
    }, { inspect: deployState(env, p.resolved.sha) }),
  );
  return {
    ...base,
    hosts,
    release: hosts[0]?.release ?? p.id,
    previous: hosts[0]?.previous ?? '',
    noop: hosts.every((h) => h.noop),
  };
}

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
  for (const h of r.hosts) {
    lines.push(`**${h.host}**: ${h.noop ? 'no-op' : `${h.previous || '(none)'} → ${h.release}`}${h.notes.length ? ` — ${h.notes.join('; ')}` : ''}`, '');
    lines.push('| step | duration |', '|---|---|', ...h.steps.map((s) => `| ${s.name} | ${(s.ms / 1000).toFixed(2)}s |`), '');
  }
  return lines.join('\n');
}
