// ops status <env>: per host, in one screen, everything the seed's "502" and "nginx does not restart"
// sections had people check by hand over SSH. One read-only step per host (one round trip); every host is
// tried even when another is down. Unhealthy (any problem on any host) gates a workflow: exit 1.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SECRETS_FILE, type Environment } from '../config/environment.ts';
import { errorFieldsLine } from '../errors.ts';
import { resolveTarget } from '../target.ts';
import { hostSharing } from '../config/siblings.ts';
import { clockSkew, runnerNow, type OpsContext } from '../context.ts';
import { CERT_FAIL_DAYS, STATUS_KEYS, duration, hostStatus, parseHostStatus, type HostStatus } from '../steps/status.ts';
import { eachHost } from './hosts.ts';
import { environmentRollback } from './rollback.ts';
import { reported, type StepResult } from '../remote/types.ts';
import { maskPlainPasswords } from './secrets.ts';
import { handleSignals, signalExit, stopHandlingSignals } from '../signals.ts';
import type { Target } from '../target.ts';
import { markdownValues, type ValueFormat } from '../report.ts';

export interface StatusResult {
  environment: string;
  url: string;
  /** No problem on any host. */
  healthy: boolean;
  hosts: HostStatus[];
  /** Every problem, "host: what", one line each. */
  problems: string[];
  warnings: string[];
}

/**
 * `ops status`: every host's status in one read-only step each (README: "When something is wrong").
 * @returns per host its status, problems and warnings; `healthy` when no host has a problem. Never throws for
 * an unreachable host (it is a problem of the result).
 */
export async function status(ctx: OpsContext, environment: Environment): Promise<StatusResult> {
  const env = resolveTarget(environment);
  const masking = maskWithKey(ctx, env);
  // Each host's status as it answers: what a --json status stopped by SIGINT/SIGTERM knows (statusInterrupted).
  const answered = new Map<string, HostStatus>();
  const onSignal = (signal: NodeJS.Signals) => {
    const doc = statusInterrupted(env, answered, signal);
    ctx.reporter.error(String(doc.reason));
    try {
      ctx.interrupted?.(doc);
    } finally {
      process.exit(signalExit(signal));
    }
  };
  // Only where a document is wanted (--json): otherwise a signal ends status as it ends any command.
  if (ctx.interrupted) handleSignals(onSignal);
  let hosts: HostStatus[];
  // Each host's answer, for what the rollback would do across the hosts (rollbackAcross).
  const read = new Map<string, StepResult>();
  try {
    hosts = await eachHost(
      ctx,
      env,
      async (remote, host) => {
        const r = await remote.run(hostStatus(env));
        read.set(host.name, r);
        // The values known first: what a host quotes of an answer is masked before status cuts it (excerpt).
        await masking;
        const s = parseHostStatus(env, host, r, (text) => ctx.reporter.redact(text), undefined, runnerNow(ctx));
        answered.set(host.name, s);
        return s;
      },
      (host, fields, connected): HostStatus => {
        const s: HostStatus = {
          host: host.name,
          address: host.address,
          reachable: connected,
          ...fields,
          problems: [connected ? `the status check itself failed: ${errorFieldsLine(fields)}` : `cannot reach it: ${fields.error}`],
          warnings: [],
        };
        answered.set(host.name, s);
        return s;
      },
    );
    await masking;
  } finally {
    stopHandlingSignals(onSignal);
  }
  const across = rollbackAcross(env, hosts, read, (text) => ctx.reporter.redact(text), runnerNow(ctx));
  hosts = across.hosts.map((h) => {
    const r = read.get(h.host);
    const skewed = r && hostClockWarning(ctx, env, r);
    return skewed ? { ...h, warnings: [...h.warnings, skewed] } : h;
  });
  const problems = hosts.flatMap((h) => h.problems.map((p) => `${h.host}: ${p}`));
  // The configuration of apps sharing a host: what the next provision or deploy would refuse.
  const sharing = hostSharing(env);
  const split = splitCommits(env, hosts);
  const warnings = [...hosts.flatMap((h) => h.warnings.map((w) => `${h.host}: ${w}`)), ...(split ? [split] : []), ...across.warnings, ...sharing.collisions.map((c) => `configuration: ${c}`), ...sharing.unreadable];
  return { environment: env.name, url: env.url, healthy: problems.length === 0, hosts, problems, warnings };
}

/**
 * A warning when the host's clock (the status step's `now`) is far from the runner's (clockSkew): TLS, certbot's
 * renewals and the times the host writes (logs, audit, the lock's age) go by it; undefined when they agree.
 */
function hostClockWarning(ctx: OpsContext, env: Target, r: StepResult): string | undefined {
  const t = Date.parse(reported(r, STATUS_KEYS.now) ?? '');
  const skew = Number.isNaN(t) ? undefined : clockSkew(ctx, t / 1000);
  if (!skew) return undefined;
  const tls = env.config.tls.mode !== 'off';
  return `its clock is ${skew.amount} ${skew.seconds > 0 ? 'behind' : 'ahead of'} this runner's: ${tls ? `certbot renews by it, ` : ''}TLS connections it makes (the database${tls ? ', the ACME server' : ''}) are checked by it, and its logs, audit lines and lock ages are off by as much${tls ? " (the certificate's days left are counted here by this runner's clock)" : ''}; put the wrong clock right (on the host: sudo timedatectl set-ntp true, then timedatectl status)`;
}

/**
 * The warning of an environment whose hosts serve different commits (a rollout stopped part-way, a host added and
 * deployed alone, a host left out of a rollback): visitors get either, as whatever is in front of the hosts sends them,
 * so each host healthy is not the environment whole. Hosts serving nothing count as one more kind; hosts not read,
 * or whose live release names no commit, take no part. undefined when every host read serves one commit. Pure.
 */
export function splitCommits(env: { name: string }, hosts: Pick<HostStatus, 'host' | 'release' | 'reachable' | 'error'>[]): string | undefined {
  const groups = new Map<string, string[]>();
  for (const h of hosts) {
    if (!h.reachable || h.error !== undefined) continue;
    const key = h.release ? (h.release.sha ? `${h.release.sha.slice(0, 12)}${h.release.ref ? ` (${h.release.ref})` : ''}` : '') : 'nothing live';
    if (key) groups.set(key, [...(groups.get(key) ?? []), h.host]);
  }
  if (groups.size < 2) return undefined;
  return `the hosts serve different commits: ${[...groups].map(([what, names]) => `${names.join(', ')}: ${what}`).join('; ')}; visitors get either, as a load balancer sends them (a rollout stopped part-way?): deploy one commit to every host (ops deploy ${env.name} --ref <commit>), or roll back (ops rollback ${env.name})`;
}

/**
 * What `ops rollback` (no --to) would do across several hosts, as it decides (environmentRollback: one release for the
 * environment, from each host's own previous one): each host read again with that target where it differs from its own
 * (the previous slot's warmth is then judged for it; a host already on it has none to keep warm), or, when the hosts do
 * not agree on one, a warning saying so (the rollback refuses without --to). Hosts not read take no part.
 */
function rollbackAcross(env: Target, hosts: HostStatus[], read: ReadonlyMap<string, StepResult>, redact: (text: string) => string, runnerTime: Date): { hosts: HostStatus[]; warnings: string[] } {
  const answered = env.hosts.filter((h) => read.has(h.name));
  if (answered.length < 2) return { hosts, warnings: [] };
  const parts = answered.map((h) => ({ host: h.name, current: reported(read.get(h.name)!, STATUS_KEYS.current) ?? '', previous: reported(read.get(h.name)!, STATUS_KEYS.rollback_to) ?? '' }));
  const choice = environmentRollback(parts);
  if ('disagree' in choice) return { hosts, warnings: [`rollback: ${choice.disagree}: ops rollback ${env.name} refuses${choice.lacking ? ' (a deploy of the commit to go back to brings it to every host)' : ' without --to <release>'}`] };
  return {
    hosts: hosts.map((s) => {
      const part = parts.find((p) => p.host === s.host);
      const host = answered.find((h) => h.name === s.host);
      return part && host && choice.target && part.previous !== choice.target ? parseHostStatus(env, host, read.get(s.host)!, redact, choice.target, runnerTime) : s;
    }),
    warnings: [],
  };
}

/**
 * The --json document of a status stopped by `signal` (SIGINT, SIGTERM) while it read the hosts: result "interrupted",
 * and the release fields as an interrupted run gives them (runRecord's shape), from what each host had answered by
 * then (`answered`): its live release as `release`, `previous` and `live` alike (status changes nothing; '' when none
 * is live there), null for a host that had not answered, could not be reached or whose status step failed, with
 * `releaseNote` saying so when the first host's is null. Pure.
 */
export function statusInterrupted(env: Target, answered: ReadonlyMap<string, HostStatus>, signal: NodeJS.Signals): Record<string, unknown> {
  const hosts = env.hosts.map((h) => {
    const s = answered.get(h.name);
    const live = s && !s.error ? (s.release?.id ?? '') : null;
    return { host: h.name, release: live, previous: live, live };
  });
  const waiting = env.hosts.filter((h) => !answered.has(h.name)).map((h) => h.name);
  const reason = `interrupted by ${signal} while reading the hosts' status${waiting.length ? ` (not answered yet: ${waiting.join(', ')})` : ''}; status changes nothing`;
  const first = hosts[0]!;
  const s = answered.get(first.host);
  const note = !s ? `not known: ${first.host} had not answered when the status was interrupted` : `not known: ${first.host}'s status could not be read (${s.reachable ? 'its status check failed' : 'unreachable'})`;
  return { result: 'interrupted', signal, operation: 'status', environment: env.name, url: env.url, release: first.release, ...(first.release === null && { releaseNote: note }), previous: first.previous, live: first.live, hosts, reason, error: reason, exitCode: signalExit(signal) };
}

/**
 * The runner's masking of what status prints (an error page's first bytes): with a key that opens the environment's
 * secrets (a laptop's), their values are masked as a deploy masks them; without one (status.yml runs without the age
 * key: README "Status environments") nothing is said, the hosts mask what they quote themselves (healthShell).
 */
async function maskWithKey(ctx: OpsContext, env: Environment): Promise<void> {
  maskPlainPasswords(ctx, env, false);
  const file = join(env.dir, SECRETS_FILE);
  if (!existsSync(file)) return;
  try {
    const { decryptFile, loadEnvIdentities } = await import('../secrets/index.ts');
    const identities = await loadEnvIdentities(env.root, env.name, ctx.processEnv, () => {});
    if (!identities.identities.length) return;
    await decryptFile(file, { identities, mask: (v) => ctx.reporter.mask(v) });
  } catch {
    // No key that opens it: the hosts' masking is all.
  }
}

/** How long ago `iso` was by `now`; a time ahead of it by over a minute (the clock of the runner that wrote it, or this one, stepped) said so, never "0s ago". */
function ago(iso: string, now: Date): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = (now.getTime() - t) / 1000;
  return s < -60 ? ` (${duration(-s)} after this machine's time: a clock is off)` : ` (${duration(s)} ago)`;
}

const mark = (ok: boolean) => (ok ? '✓' : '✗');

// What a host's database and disk lines say, and what its visitors get: the same words on a terminal (formatStatus)
// and in the job summary's table (statusSummary), so neither shows a fact the other leaves out.
const databaseText = (h: HostStatus) => (h.database ?? []).map((d) => `${mark(d.verdict === 'answers')} ${d.address || d.variable} ${d.verdict === 'answers' ? 'answers' : d.verdict}`).join(', ');
const diskText = (h: HostStatus) => (h.disk ?? []).map((d) => `${d.mount} ${(d.freeMb / 1024).toFixed(1)} GB free (${d.usedPercent}% used)`).join(', ');
const visitorsText = (h: HostStatus) =>
  !h.served || !h.release ? '' : h.served.ok ? `${h.served.proven ? '✓' : '?'} get release ${h.release.id}${h.served.proven ? '' : ' (not proven: see warnings)'}` : `✗ do NOT get release ${h.release.id} (see problems)`;

/** The one-screen view: a block per host, then the problems, one line each. */
export function formatStatus(r: StatusResult, now = new Date()): string {
  const out: string[] = [];
  for (const h of r.hosts) {
    out.push(`${mark(h.problems.length === 0)} ${h.host} (${h.address})${h.problems.length ? ` — ${h.problems.length} problem${h.problems.length > 1 ? 's' : ''}` : ''}`);
    if (h.error) {
      out.push(`    ${h.reachable ? 'status check failed' : 'unreachable'}: ${errorFieldsLine({ error: h.error, hint: h.hint })}`);
      continue;
    }
    const rel = h.release;
    out.push(
      rel
        ? `    release     ${rel.id}  ${rel.sha.slice(0, 12)}  ${rel.ref || '?'}  ${rel.time.slice(0, 16).replace('T', ' ')}${ago(rel.time, now)} by ${rel.actor || '?'}${h.slot ? `  [slot ${h.slot}]` : ''}`
        : `    release     none${h.provisioned ? '' : ' (not provisioned)'}`,
    );
    if (h.nginx) {
      const site = h.site ? `; ${h.site.url} → ${h.site.status || 'no answer'}` : '';
      out.push(`    nginx       ${mark(h.nginx.running)} ${h.nginx.running ? 'running' : 'NOT running'}, ${mark(h.nginx.configOk)} config ${h.nginx.configOk ? 'valid' : 'INVALID'}${site}`);
    }
    // What the visitors get, as nginx's own log proves it (the switch's proof): never only what `current` says.
    if (h.served && rel) out.push(`    visitors    ${visitorsText(h)}${h.served.ok && h.served.proven ? " (nginx's log names the live slot's port)" : ''} at ${h.served.url}`);
    if (h.supervisor) {
      if (!h.supervisor.running) out.push(`    supervisor  ✗ ${h.supervisor.error}`);
      else if (!h.supervisor.programs.length) out.push('    supervisor  ✓ running, no program of this app loaded');
      else
        h.supervisor.programs.forEach((p, i) => {
          const when = p.seconds !== undefined ? (p.state === 'RUNNING' ? `up ${duration(p.seconds)}` : `for ${duration(p.seconds)}`) : '';
          // The mark agrees with the verdict (parseHostStatus): STARTING (supervisor's startsecs not over, right after a
          // deploy or rollback) is fine while the program passes its health check; failing it is a problem of its own.
          const starting = p.state === 'STARTING' && p.live && h.health?.find((x) => x.program === p.program)?.ok === true;
          const ok = p.state === 'RUNNING' || starting;
          const runs = p.pid ? `  pid ${p.pid}${p.release !== undefined ? ` runs ${p.release || '?'}${p.deleted ? ' (DELETED directory)' : ''}` : ''}` : '';
          out.push(`    ${i === 0 ? 'supervisor ' : '           '} ${p.live ? mark(ok) : ' '} ${p.program.padEnd(10)} ${p.state.padEnd(8)} ${when.padEnd(12)} ${(p.slot + (p.live ? ' (live)' : ' (previous)')).padEnd(16)}${runs}${starting ? '  starting (health check passed)' : ''}${!ok && p.description ? `  ${p.description}` : ''}`);
        });
    }
    if (h.database?.length) out.push(`    database    ${databaseText(h)}`);
    if (h.health?.length) out.push(`    health      ${h.health.map((x) => `${mark(x.ok)} ${x.program}${x.ok ? '' : ` (${x.detail})`}`).join(', ')}`);
    if (h.certificate) {
      const c = h.certificate;
      out.push(`    certificate ${c.state === 'ok' ? `${mark((c.daysLeft ?? 0) >= CERT_FAIL_DAYS)} expires ${c.notAfter?.slice(0, 10)} (${c.daysLeft} days)${c.names.length ? `  ${c.names.join(', ')}` : ''}` : `✗ ${c.state} (${c.path})`}`);
    }
    if (h.disk?.length) out.push(`    disk        ${diskText(h)}`);
    // Held by a live run: an operation under way, not a problem (no mark); stale: its run is gone, a problem.
    if (h.lock) out.push(`    lock        ${h.lock.state === 'free' ? 'free' : `${h.lock.state === 'held' ? '' : '✗ '}${h.lock.state}${h.lock.holder.operation ? `: ${h.lock.holder.operation} by ${h.lock.holder.actor ?? '?'} since ${h.lock.holder.since ?? '?'}` : ''}${h.lock.queue?.length ? ` (${h.lock.queue.length} queued)` : ''}`}`);
  }
  if (r.warnings.length) out.push('', 'warnings:', ...r.warnings.map((w) => `  ${w}`));
  out.push('', r.healthy ? `${r.environment}: healthy` : `${r.environment}: UNHEALTHY`, ...r.problems.map((p) => `  ${p}`));
  return out.join('\n');
}

/**
 * Markdown for a job summary: a table row per host with a column for each line formatStatus shows of it (release,
 * nginx, visitors, live programs, database, health, certificate, disk, lock: what a problem or warning below names is
 * in the table too), then the problems and warnings. Values from outside are written with `v` (the reporter's:
 * Markdown-escaped for a job summary, as they are on a terminal).
 */
export function statusSummary(r: StatusResult, v: ValueFormat = markdownValues): string {
  // Every value here comes from a host (states, refs, a lock's holder, error text): v.text/v.code, never as it is.
  const head = ['host', 'release', 'nginx', 'visitors', 'programs (live)', 'database', 'health', 'certificate', 'disk', 'lock'];
  const lines = [`### Status of ${v.text(r.environment)}: ${r.healthy ? 'healthy' : 'UNHEALTHY'}`, '', `| ${head.join(' | ')} |`, `|${head.map(() => '---|').join('')}`];
  for (const h of r.hosts) {
    if (h.error) {
      lines.push(`| ${v.text(h.host)} | ${h.reachable ? 'status check failed' : 'unreachable'} |${' |'.repeat(head.length - 2)}`);
      continue;
    }
    const programs = h.supervisor?.programs.filter((p) => p.live).map((p) => `${v.text(`${p.program} ${p.state}${p.pid ? ` pid ${p.pid}` : ''}`)}${p.release ? ` runs ${v.code(p.release, 'cell')}` : ''}`).join(', ') ?? '';
    const lock = h.lock ? v.text(`${h.lock.state}${h.lock.state !== 'free' && h.lock.holder.operation ? `: ${h.lock.holder.operation} by ${h.lock.holder.actor ?? '?'}` : ''}`) : '';
    lines.push(
      `| ${v.text(h.host)} | ${h.release ? `${v.code(h.release.id, 'cell')} ${v.text(h.release.ref)}` : 'none'} | ${h.nginx?.running ? 'running' : 'stopped'}, ${h.nginx?.configOk ? 'valid' : 'invalid'} | ${v.text(visitorsText(h))} | ${programs} | ${v.text(databaseText(h))} | ${v.text(h.health?.map((x) => `${x.program} ${x.ok ? 'ok' : 'failing'}`).join(', ') ?? '')} | ${h.certificate?.notAfter ? v.text(`${h.certificate.notAfter.slice(0, 10)} (${h.certificate.daysLeft} d)`) : ''} | ${v.text(diskText(h))} | ${lock} |`,
    );
  }
  if (r.problems.length) lines.push('', '**Problems**', '', ...r.problems.map((p) => `- ${v.text(p)}`));
  if (r.warnings.length) lines.push('', '**Warnings**', '', ...r.warnings.map((w) => `- ${v.text(w)}`));
  return lines.join('\n');
}
