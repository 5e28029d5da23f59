// ops provision <env>: a bare Debian VM to a host ready for deploys, idempotently (a re-run changes nothing
// and says so per item). Order: facts, packages, app user, package indexes, runtimes, supervisor, TLS, nginx,
// certificate.
import { randomBytes } from 'node:crypto';
import type { Environment } from '../config/environment.ts';
import { resolveTarget, type Target } from '../target.ts';
import { readEnvFile } from '../config/environment.ts';
import { refuseCollisions } from '../config/siblings.ts';
import type { OpsContext } from '../context.ts';
import { auditReason, InputError, OpsError, StepError } from '../errors.ts';
import { packageIndexFiles, packagesNeedSecrets, type PackageIndexFiles } from '../packages.ts';
import { reported, reportedAll, type Remote, type Step, type StepResult } from '../remote/types.ts';
import { provisionNginx } from '../steps/nginx.ts';
import { SUPPORTED_RELEASES, appUser, debianRuntimeProblem, inspectHost, installPackages, markProvisioned, packageIndexes, runtimes, supervisorService, SYSTEM_KEYS } from '../steps/system.ts';
import { issueCertificate, letsEncryptRefusal, parseTlsState, prepareTls, retireCertificate, TLS_KEYS, tlsPlan, type TlsState } from '../steps/tls.ts';
import { HostRun } from './host-run.ts';
import { withSession } from './hosts.ts';
import { withLock } from './locked.ts';
import { environmentSecrets } from './secrets.ts';
import { LIBRARY_KEYS } from '../steps/libraries.ts';
import { markdownValues, type ValueFormat } from '../report.ts';

export interface ProvisionItem {
  name: string;
  state: 'ok' | 'changed';
}

export interface ProvisionHostResult {
  host: string;
  os: string;
  items: ProvisionItem[];
  runtimes: string[];
  /** Runtime versions no app on the host used any more, removed by the runtimes step: `<MB> <dir>` each. */
  runtimesRemoved: string[];
  /** Why old runtime versions were all kept (in doubt), when one would otherwise have been removed. */
  runtimesKept: string[];
  durationMs: number;
}

function items(results: StepResult[]): ProvisionItem[] {
  return results.flatMap((r) =>
    reportedAll(r, LIBRARY_KEYS.item).map((v) => {
      const sp = v.lastIndexOf(' ');
      return { name: v.slice(0, sp), state: v.slice(sp + 1) as ProvisionItem['state'] };
    }),
  );
}

async function provisionHost(ctx: OpsContext, env: Target, remote: Remote, facts: StepResult, acmeCa: string | undefined, files: PackageIndexFiles): Promise<ProvisionHostResult> {
  const started = performance.now();
  const h = new HostRun(ctx, remote, env, 'provision');
  const run = (step: Step) => h.run(step);
  const codename = reported(facts, SYSTEM_KEYS.codename) ?? '';
  if (reported(facts, SYSTEM_KEYS.os_id) !== 'debian' || !SUPPORTED_RELEASES.includes(codename))
    throw new OpsError(`${remote.name} runs ${reported(facts, SYSTEM_KEYS.os_id)} ${codename}: provision supports Debian ${SUPPORTED_RELEASES.join(', ')}`);
  const results: StepResult[] = [];
  results.push(
    await run(installPackages(env)).catch((e: unknown) => {
      // A version the release does not ship (an apt source the host may add, e.g. NodeSource, still can: not refused before).
      const why = e instanceof StepError ? debianRuntimeProblem(env, remote.name, codename) : undefined;
      throw why && e instanceof StepError ? new StepError(e.step, e.host, e.exitCode, e.stderrTail, e.signal, `${why.message}: ${why.hint}`, e.limit, e.verdict) : e;
    }),
  );
  results.push(await run(appUser(env, remote.login)));
  // pip.conf / .npmrc may hold tokens: they travel on an exec channel's stdin into the login's private uploads dir, never in a script.
  const tag = randomBytes(4).toString('hex');
  const uploaded: { pipConf?: string; uvToml?: string; npmrc?: string } = {};
  for (const kind of ['pipConf', 'uvToml', 'npmrc'] as const) {
    const content = files[kind];
    if (content === undefined) continue;
    uploaded[kind] = `${env.layout.uploads}/${tag}.${kind}`;
    await remote.upload(content, uploaded[kind], { mode: 0o600 });
  }
  results.push(await run(packageIndexes(env, uploaded)));
  results.push(await run(runtimes(env, files)));
  results.push(await run(supervisorService()));
  let certificate = false;
  let state: TlsState | undefined;
  if (env.config.tls.mode !== 'off') {
    const tls = await run(prepareTls(env, acmeCa));
    results.push(tls);
    certificate = reported(tls, TLS_KEYS.certificate) === 'yes';
    state = parseTlsState(tls);
  }
  if (env.config.tls.mode === 'letsencrypt' && state) {
    // The site moves to its names only once their certificate exists: until then the site serving now is kept (its
    // names, its certificate), the ACME challenge of the new names answered beside it (tlsPlan).
    const plan = tlsPlan(env, state);
    results.push(await run(provisionNginx(env, plan.ready, plan.keep && { pending: plan.keep.pending })));
    // Get the certificate (or renew one the timer missed, or drop names no longer served), then serve https.
    results.push(await run(issueCertificate(env, Boolean(acmeCa), plan, state)));
    if (!plan.ready) results.push(await run(provisionNginx(env, true)));
    // The certificate ops issued for the names the site served before: deleted once nothing serves it.
    const retire = state.site?.cert ? retireCertificate(env, state.site.cert) : undefined;
    if (retire) results.push(await run(retire));
  } else results.push(await run(provisionNginx(env, certificate)));
  await remote.run(markProvisioned(env));
  const merged = new Map<string, ProvisionItem['state']>();
  for (const it of items(results)) merged.set(it.name, merged.get(it.name) === 'changed' ? 'changed' : it.state);
  return {
    host: remote.name,
    os: `Debian ${codename}`,
    items: [...merged].map(([name, state]) => ({ name, state })),
    runtimes: results.flatMap((r) => reportedAll(r, SYSTEM_KEYS.runtime)),
    runtimesRemoved: results.flatMap((r) => reportedAll(r, SYSTEM_KEYS.runtime_removed)),
    runtimesKept: results.flatMap((r) => reportedAll(r, SYSTEM_KEYS.runtime_kept)),
    durationMs: Math.round(performance.now() - started),
  };
}

/**
 * Make every host of the environment ready for deploys (README: "Provisioning"), idempotently: packages,
 * runtimes, package indexes, app user, nginx, TLS, supervisor. @returns per host, each item `ok` or
 * `changed`. @throws InputError before connecting when the settings are refused (a collision with an environment
 * sharing a host, a name Let's Encrypt never issues for); OpsError on the first failing item (naming host and step);
 * what was done stays done, and nginx files nginx refuses are put back.
 */
export async function provision(ctx: OpsContext, environment: Environment): Promise<ProvisionHostResult[]> {
  const env = resolveTarget(environment);
  // Apps sharing a host: nothing of theirs may collide with what this one sets up.
  refuseCollisions(env, ctx.reporter);
  // What certbot would fail on at the host (with a hint about DNS that does not apply), refused before connecting.
  const refusal = letsEncryptRefusal(env.config);
  if (refusal) throw new InputError(`${refusal}; nothing was done`, `set the site's public DNS name (domain) and a real contact (tls.email) in environments/${env.name}/environment.yml, or tls.mode self-signed for a name without public DNS`);
  const caFile = env.config.tls.acme_ca_file;
  let acmeCa: string | undefined;
  if (caFile && env.config.tls.mode === 'letsencrypt') {
    acmeCa = readEnvFile(env, 'tls.acme_ca_file', caFile, 'a CA certificate file');
  }
  // Secrets are decrypted (and masked) only when a package index setting refers to them.
  const files = packageIndexFiles(env, packagesNeedSecrets(env) ? await environmentSecrets(ctx, env) : {});
  return withSession(ctx, env, (session) =>
    withLock(
      ctx,
      session,
      'provision',
      async (locked) => {
        return session.each(async (remote) => {
          try {
            const result = await provisionHost(ctx, env, remote, locked.inspected.get(remote.name)!, acmeCa, files);
            const changed = result.items.filter((i) => i.state === 'changed').map((i) => i.name);
            locked.audit(remote.name, { result: 'success', message: changed.length ? `changed: ${changed.join(', ')}` : 'no change' });
            return result;
          } catch (e) {
            locked.audit(remote.name, { result: 'failed', message: auditReason(e, (t) => ctx.reporter.redact(t)) });
            throw e;
          }
        }, { batch: env.config.switch.batch_size });
      },
      { inspect: inspectHost(env) },
    ),
  );
}

/** The job summary (Markdown) of a provision: one row per host and item. Values from outside are written with `v` (the reporter's: Markdown-escaped for a job summary, as they are on a terminal). */
export function provisionSummary(env: Environment, results: ProvisionHostResult[], v: ValueFormat = markdownValues): string {
  const lines = [`### Provision of ${v.text(env.name)}`, '', '| host | item | state |', '|---|---|---|'];
  for (const r of results) for (const it of r.items) lines.push(`| ${v.text(r.host)} | ${v.text(it.name)} | ${v.text(it.state)} |`);
  lines.push('');
  for (const r of results) {
    const changed = r.items.filter((i) => i.state === 'changed').length;
    lines.push(`- **${v.text(r.host)}** (${v.text(r.os)}): ${changed ? `${changed} item(s) changed` : 'nothing to change'} in ${(r.durationMs / 1000).toFixed(1)}s; ${v.text(r.runtimes.join('; '))}`);
    for (const x of r.runtimesRemoved) lines.push(`  - removed the runtime ${v.text(x.replace(/^\d+ /, ''))} (${v.text(x.split(' ')[0]!)} MB): no app on the host uses it any more`);
    for (const x of r.runtimesKept) lines.push(`  - ${v.text(x)}`);
  }
  return lines.join('\n');
}
