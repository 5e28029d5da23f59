// A deploy's plan: the commit and everything its release needs, resolved once on the runner before any host
// is touched (core/ops/deploy.ts puts it live), and the plan in words, as a dry run prints it.
import { createHash } from 'node:crypto';
import { assetDirs, readEnvFile, type Environment } from '../config/environment.ts';
import type { Target } from '../target.ts';
import { sharingPlan, type HostSharing } from '../config/siblings.ts';
import { runnerNow, type OpsContext } from '../context.ts';
import { renderDotenv, type RenderedEnv } from '../dotenv.ts';
import { InputError, OpsError } from '../errors.ts';
import { runInfo } from '../runinfo.ts';
import { validate } from '../shell.ts';
import { dependencyInputs, setHashes, type DependencyInputs } from '../dependency-inputs.ts';
import { preflight, preflightError } from '../preflight.ts';
import { notDeployedNotes, resolveRef, sourceRepository, treeSize, type ResolvedRef } from '../source.ts';
import { treeContent, type TreeContent } from '../tree-content.ts';
import { site } from '../steps/nginx-config.ts';
import { releaseId, type ReleaseMeta } from '../steps/release.ts';
import { servedAssetDirs, slotConfig } from '../steps/switch.ts';
import { environmentSecrets } from './secrets.ts';

/** What a deploy puts live, resolved once on the runner before any host is touched. */
export interface Plan {
  resolved: ResolvedRef;
  repo: string;
  /** Submodules, Git LFS contents and export-ignored paths of the commit (what `git archive` alone leaves out). */
  tree: TreeContent;
  /** What the release's files take once written (git ls-tree). */
  size: { bytes: number; entries: number };
  id: string;
  dotenv: RenderedEnv;
  /** What each dependency set is made from (and whether it is made for each release). */
  deps: DependencyInputs;
  /** The hashes naming this release's sets (shared/deps/venv-<python>, node-<node>): setHashes of `deps` and `id`. */
  hashes: { python: string; node: string };
  meta: ReleaseMeta;
  /** deployFingerprint of this deploy: the live commit is a no-op only when its release was deployed with the same. */
  fingerprint: string;
  /** dotenvSums of this deploy's `.env` and environ: the live release's own files must still read so for a no-op. */
  dotenvSums: string;
  /** settingsDigest of this deploy: recorded with the release, for what a later rollback to it says. */
  settings: string;
  /**
   * What the runner's checkout holds that is not deployed (uncommitted changes, a local branch elsewhere), and a branch
   * or tag origin deleted since the checkout fetched it: warnings (notDeployedNotes; one origin has at another commit
   * is refused there, before any host is touched).
   */
  checkout: string[];
  /** What the commit's check against the settings warns of (core/preflight.ts): said by the plan and the deploy's log. */
  warnings: string[];
}

/** The commit a deploy puts live: `ref` (default: the environment's `ref`) validated and resolved in the repository. */
export interface DeployCommit {
  repo: string;
  resolved: ResolvedRef;
}

/**
 * The ref a deploy puts live: `refOption`, else the environment's `ref`, validated (a git ref name, no option or
 * shell text). @throws OpsError for a bad ref, before anything else is done.
 */
export function deployRef(env: Environment, refOption: string | undefined): string {
  return validate('gitRef', refOption || env.config.ref);
}

/**
 * Resolve a ref (deployRef) to one commit in the repository deployed from, on the runner; the deploy opens its
 * connections meanwhile (they need only the hosts) and closes them when this or `planDeploy` fails.
 * @throws OpsError for an unknown ref or an unreachable repository; nothing is changed.
 */
export async function resolveDeployCommit(ctx: OpsContext, env: Environment, refOption: string | undefined): Promise<DeployCommit> {
  const repo = await sourceRepository(ctx.root, env.config.repository, env);
  return { repo, resolved: await resolveEnvironmentRef(repo, env, refOption) };
}

/**
 * resolveRef of `refOption`, else of the environment's `ref` (deployRef), in `repo`. A ref not given is the
 * environment's default, `ref: master` unless its file says otherwise, so a refusal of it says where it came from and
 * how to change it (a repository whose branch is `main`). @throws OpsError as resolveRef does; nothing is changed.
 */
export async function resolveEnvironmentRef(repo: string, env: Environment, refOption: string | undefined): Promise<ResolvedRef> {
  const ref = deployRef(env, refOption);
  try {
    return await resolveRef(repo, ref);
  } catch (e) {
    if (refOption || !(e instanceof OpsError) || e.constructor !== OpsError) throw e;
    throw new OpsError(
      `${e.message} (no ref given: ${ref} is the environment's default ref, \`ref\` in environments/${env.name}/environment.yml, master when it sets none)`,
      `set ref: in environments/${env.name}/environment.yml to the branch deployed by default, or give one (--ref; a workflow's ref input)${e.hint ? `; ${e.hint}` : ''}`,
    );
  }
}

/**
 * Everything the release of that commit (resolveDeployCommit) needs, on the runner: its tree content (submodules, LFS,
 * export-ignore), dependency hashes, the rendered `.env`, the release id and metadata. A branch or tag origin has
 * at another commit than the checkout fetched is refused (notDeployedNotes' refuseMoved). Configuration mistakes
 * (slot config, nginx site) and a commit that does not fit the settings (core/preflight.ts: a requirements file,
 * node_dir, lockfile, makefile target or program directory it lacks) surface here, all in one error.
 * @throws OpsError (a tree missing its submodules or LFS contents, secrets, config); nothing is changed.
 */
export async function planDeploy(ctx: OpsContext, env: Target, { repo, resolved }: DeployCommit): Promise<Plan> {
  const ref = resolved.ref;
  // A release missing its submodules or LFS contents is refused here, before any host is touched. The
  // reads are independent (git processes, the secrets file): at once, their failures reported in this order.
  const [tree, deps, secrets, size, checkout] = await inOrder([treeContent(repo, resolved.sha), dependencyInputs(repo, resolved.sha, env), environmentSecrets(ctx, env), treeSize(repo, resolved.sha), notDeployedNotes(repo, resolved, { refuseMoved: true, project: ctx.root })] as const);
  // The commit against the settings (a requirements file, node_dir, makefile target, program directory it lacks):
  // refused with the settings' own problems below, in one error.
  const fit = await preflight(repo, resolved.sha, env, tree);
  const now = runnerNow(ctx);
  const id = releaseId(resolved.sha, now);
  const hashes = setHashes(deps, id);
  // Configuration mistakes surface now, before any host is touched: the .env's, the programs', the site's, all of
  // them in one error (each check reports every problem of its own), not one per run.
  const refused = new Map<string, OpsError>();
  const check = <T>(f: () => T): T | undefined => {
    try {
      return f();
    } catch (e) {
      if (!(e instanceof OpsError)) throw e;
      if (!refused.has(e.message)) refused.set(e.message, e);
      return undefined;
    }
  };
  check(() => {
    const e = preflightError(fit, resolved.sha);
    if (e) throw e;
  });
  const dotenv = check(() => renderDotenv(env, secrets));
  checkHostFiles(env, id, check);
  if (refused.size || !dotenv) throw settingsRefusal(env.name, [...refused.values()], '(nothing was sent to any host)', 'then deploy again');
  const info = runInfo(ctx.processEnv);
  const meta: ReleaseMeta = {
    id,
    sha: resolved.sha,
    ref,
    environment: env.name,
    actor: info.actor,
    time: now.toISOString(),
    run: info.runUrl,
    deps: hashes,
    ...(tree.submodules.length && { submodules: tree.submodules.map(({ path, sha }) => ({ path, sha })) }),
    ...(tree.lfs.length && { lfs: tree.lfs.map(({ path, oid }) => ({ path, oid })) }),
  };
  return { resolved, repo, tree, size, id, dotenv, deps, hashes, meta, fingerprint: deployFingerprint(env, dotenv), dotenvSums: dotenvSums(dotenv), settings: settingsDigest(env), checkout, warnings: fit.warnings };
}

/**
 * One error for the settings' problems (`problems`, at least one, each an OpsError with its own hint): the problem
 * itself when alone, else all of them, each with its fix, under "the settings of <env> have N kinds of problems
 * <where>"; the hint ends with `then` ("then deploy again").
 */
export function settingsRefusal(envName: string, problems: OpsError[], where: string, then: string): OpsError {
  // what rendering the hosts' files from the settings alone refuses is the settings' fault: a usage error (exit 2)
  if (problems.length === 1) return problems[0] instanceof InputError ? problems[0] : new InputError(problems[0]!.message, problems[0]!.hint);
  return new InputError(
    `the settings of ${envName} have ${problems.length} kinds of problems ${where}:\n${problems.map((e) => `${e.message}${e.hint ? `\n  fix: ${e.hint}` : ''}`).join('\n')}`,
    `fix each of them, ${then}`,
  );
}

/**
 * The files a deploy renders for the hosts from the settings, rendered once to find their problems before any host
 * is touched: supervisor's group for each slot (slotConfig: placeholders, values supervisor cannot carry, paths it
 * would split) and nginx's site where ops writes it (site). Each problem (an OpsError) is given to `check`, which
 * collects them (planDeploy, `ops config`); `id`: the release id the paths are rendered with.
 */
export function checkHostFiles(env: Target, id: string, check: (render: () => unknown) => void): void {
  for (const slot of ['blue', 'green'] as const) check(() => slotConfig(env, slot, `${env.layout.releases}/${id}`, id));
  if (env.config.tls.mode === 'off' || env.config.nginx.site_template) check(() => site(env, true));
}

/**
 * What a deploy gives a release besides its commit, as a digest (sha256, 32 hex characters): the rendered `.env`
 * and `environ` (secrets included) and every setting that shapes what runs on a host (programs, routes, env,
 * release, runtimes, nginx, TLS...), a setting that names a file by that file's content (nginx.site_template: the
 * site is rendered from it), but not how the runner reaches hosts or how a run proceeds (hosts, bastion, ssh; the
 * switch's batch_size, lock_wait, health_timeout, health_interval, settle and drain: the run's pace and patience, nothing
 * a host keeps; keep_previous and port_offset are kept: what runs between deploys) nor where the code comes from (repository, ref: the commit is compared apart), nor the order
 * keys are written in (the `.env`'s lines follow `env`'s order, which no reader depends on: each value is written
 * to be read as it is). A deploy of the live commit is a no-op only when the live release was deployed with the
 * same digest: a changed secret, setting or template is deployed, not reported as already live. Reads the site
 * template (planDeploy has checked it can).
 */
export function deployFingerprint(env: Environment, dotenv: RenderedEnv): string {
  const unordered = (text: string, separator: string) => text.split(separator).sort();
  const { settings, siteTemplate } = fingerprintSettings(env);
  const digest = createHash('sha256').update(
    JSON.stringify(
      {
        dotenv: unordered(dotenv.dotenv, '\n'),
        environ: unordered(dotenv.environ, '\0'),
        settings,
        ...(siteTemplate !== undefined && { siteTemplate }),
      },
      sortedKeys,
    ),
  );
  return digest.digest('hex').slice(0, 32);
}

/**
 * deployFingerprint of a deploy of `env` now, its secrets read and its `.env` rendered as planDeploy does: what a deploy
 * compares the live release with to decide between a no-op and deploying it again (deployState's `fingerprint`), for
 * a command that says what a deploy would do without planning one (ops diff). Errors: the secrets cannot be read, or
 * the `.env` or the site template is refused (an OpsError, as planDeploy refuses them).
 */
export async function fingerprintNow(ctx: OpsContext, env: Target): Promise<string> {
  return deployFingerprint(env, renderDotenv(env, await environmentSecrets(ctx, env)));
}

/** JSON.stringify's replacer that sorts an object's keys: the same settings written in another order are the same settings. */
const sortedKeys = (_: string, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v);

/** The settings deployFingerprint counts (what shapes a host, not how a run proceeds), and the site template's text. */
function fingerprintSettings(env: Environment): { settings: Record<string, unknown>; siteTemplate?: string } {
  const { hosts: _h, bastion: _b, ssh: _s, repository: _r, ref: _ref, switch: sw, ...settings } = env.config;
  const { batch_size: _bs, lock_wait: _lw, health_timeout: _ht, health_interval: _hi, settle: _st, drain: _d, ...switchSettings } = sw;
  const template = env.config.nginx.site_template;
  return { settings: { ...settings, switch: switchSettings }, ...(template && { siteTemplate: readEnvFile(env, 'nginx.site_template', template, 'an nginx site template') }) };
}

/**
 * The settings of deployFingerprint without the `.env` (no secret in them), a short digest per top-level key
 * (`nginx` with the site template's text), as `key=digest,...` sorted by key: recorded with each release
 * (fingerprintRecords) and updated by a rollback, so a rollback can say which settings differ from those the
 * release it puts live last ran with (its programs and nginx are rendered from today's), naming keys, never values.
 */
export function settingsDigest(env: Environment): string {
  const { settings, siteTemplate } = fingerprintSettings(env);
  const parts = Object.entries({ ...settings, nginx: { settings: settings.nginx, ...(siteTemplate !== undefined && { siteTemplate }) } })
    .filter(([key]) => /^[a-z][a-z0-9_]*$/.test(key))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${createHash('sha256').update(JSON.stringify(value ?? null, sortedKeys)).digest('hex').slice(0, 8)}`);
  return parts.join(',');
}

/**
 * The top-level settings keys whose digests differ between two settingsDigest texts (a key on one side only
 * counts), sorted; undefined when `recorded` is not such a text (a record written before records had it).
 */
export function settingsChanged(recorded: string | undefined, today: string): string[] | undefined {
  const parse = (text: string) => new Map(text.split(',').map((part) => part.split('=') as [string, string]));
  if (!recorded || !SETTINGS_DIGEST.test(recorded)) return undefined;
  const [was, now] = [parse(recorded), parse(today)];
  return [...new Set([...was.keys(), ...now.keys()])].filter((k) => was.get(k) !== now.get(k)).sort();
}

/** What settingsDigest writes: `key=hex` parts, comma-separated. */
export const SETTINGS_DIGEST = /^[a-z][a-z0-9_]*=[0-9a-f]{8}(,[a-z][a-z0-9_]*=[0-9a-f]{8})*$/;

/**
 * The sha256 (hex) of the `.env` and of the environ a release is given, space-separated, as `sha256sum` reads the
 * files written from them (releaseDotenv writes these bytes as they are). Sums, not the text: the secrets never
 * travel in a script.
 */
export function dotenvSums(dotenv: RenderedEnv): string {
  return [dotenv.dotenv, dotenv.environ].map((text) => createHash('sha256').update(text).digest('hex')).join(' ');
}

/** Await promises started together; the first failure in their order (not in time) is thrown, once all settled. */
async function inOrder<T extends readonly unknown[]>(promises: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

/**
 * The plan with a release id no host has yet (`taken`: every release directory the hosts reported under the
 * lock). Ids hold the runner's second and the sha, so a deploy of the same commit within the second of an
 * earlier one (a forced redeploy after a build that failed fast) would name that one's directory: the id's
 * time moves on by whole seconds until it is free (ids stay sortable; meta.time keeps the runner's clock), and
 * the sets made for each release are named after the new id. Pure.
 */
export function withFreeReleaseId(p: Plan, taken: ReadonlySet<string>): Plan {
  let at = new Date(p.meta.time);
  let id = p.id;
  while (taken.has(id)) {
    at = new Date(at.getTime() + 1000);
    id = releaseId(p.resolved.sha, at);
  }
  if (id === p.id) return p;
  const hashes = setHashes(p.deps, id); // a set made for each release is named after it
  return { ...p, id, hashes, meta: { ...p.meta, id, deps: hashes } };
}

/** What the release holds beyond `git archive`, and what it leaves out, in words (plan and deploy notes). */
export function treeNotes(tree: TreeContent): string[] {
  const notes: string[] = [];
  if (tree.submodules.length) notes.push(`submodules included: ${tree.submodules.map((m) => `${m.path} (${m.sha.slice(0, 12)})`).join(', ')}`);
  if (tree.lfs.length) notes.push(`Git LFS contents included: ${tree.lfs.length} file(s), ${(tree.lfs.reduce((a, f) => a + f.size, 0) / 1024).toFixed(1)} KiB`);
  if (tree.exportIgnored.length)
    notes.push(`left out by export-ignore (.gitattributes): ${tree.exportIgnored.slice(0, 10).join(', ')}${tree.exportIgnored.length > 10 ? ` and ${tree.exportIgnored.length - 10} more` : ''}`);
  return notes;
}

/** The plan a dry run prints: commit, release, hosts and how they share, and the steps each host goes through. */
export function planText(env: Environment, p: Plan, sharing: HostSharing): string[] {
  const sets = (['python', 'node'] as const).filter((k) => (k === 'python' ? env.config.release.python_requirements : env.config.release.node_dir));
  const steps = [
    'lock',
    'state',
    'code (pack of missing objects)',
    'release (with its own .env)',
    `dependencies: ${sets.map((k) => `${k} ${p.deps[k].perRelease ? `made for this release (${p.deps[k].perRelease})` : `reused unless ${p.deps[k].files.join(', ')} changed`}`).join('; ') || 'none'}`,
  ];
  if (env.config.release.build) steps.push(`build: ${env.config.release.build}`);
  if (env.config.release.migrate) steps.push(`migrate (first host): ${env.config.release.migrate}`);
  // With several hosts, one per platform builds; the others receive its build before any host switches.
  if (env.hosts.length > 1) steps.push('build once per platform: the other hosts receive the release and its new dependency sets (sha256-checked), before any switch');
  steps.push(
    ...env.config.release.before_switch.map((c) => `before_switch: ${c}`),
    ...(servedAssetDirs(env).length ? [`serve the release's assets as next on every host before any switch (release.asset_dirs: ${servedAssetDirs(env).join(', ')})`] : []),
    ...(env.config.release.asset_dirs.length ? [`carry the live release's own assets the release lacks (release.asset_dirs: ${assetDirs(env.config).map((a) => a.dir).join(', ')})`] : []),
    'start the other slot + health checks',
    'switch: nginx -t, graceful reload, current → release',
  );
  steps.push(
    ...env.config.release.after_switch.map((c) => `after_switch: ${c}`),
    env.config.switch.keep_previous ? 'keep the previous release warm on the idle slot' : `drain (at most ${env.config.switch.drain}s), stop the old slot`,
    `prune (keep the latest ${env.config.release.keep} good releases in the order they went live, ${env.config.release.keep_failed} failed/abandoned; never what a slot runs)`,
    'audit, unlock',
  );
  return [
    `environment ${env.name}: ${p.resolved.ref} (${p.resolved.matched}) = ${p.resolved.sha}`,
    ...[...p.checkout, ...p.warnings].map((n) => `warning: ${n}`),
    `release ${p.id}`,
    ...treeNotes(p.tree),
    `hosts (batches of ${env.config.switch.batch_size}): ${env.hosts.map((h) => `${h.name} (${h.address})`).join(', ')}`,
    ...sharingPlan(env, sharing).map((l) => `  ${l}`),
    ...steps.map((s, i) => `  ${i + 1}. ${s}`),
  ];
}
