// ops certs <env> [--renew]: the seed's "Certificats" section as a command. Lists each host's certificates
// with their expiry, the one nginx actually serves, and how renewals are scheduled; --renew forces a renewal
// now (certbot certonly --force-renewal, or a new self-signed certificate) under the environment's lock, and
// reloads nginx only after `nginx -t` accepts it.
import type { Environment } from '../config/environment.ts';
import { resolveTarget, type Target } from '../target.ts';
import { readEnvFile } from '../config/environment.ts';
import { findSiblings } from '../config/siblings.ts';
import { runnerNow, type OpsContext } from '../context.ts';
import { auditReason, InputError } from '../errors.ts';
import { reported } from '../remote/types.ts';
import { judgeCertificate, listCertificates, parseCerts, parseRenewal, renewCertificate, SERVED_ELSE_FIX, usedCertificates, type CertInfo, CERTS_KEYS } from '../steps/certs.ts';
import { HostRun } from './host-run.ts';
import { certificateNames } from '../steps/nginx-config.ts';
import { provisionNginx } from '../steps/nginx.ts';
import { parseTlsState, retireCertificate, siteMoves } from '../steps/tls.ts';
import { provisionedIn, unprovisionedNote } from '../steps/system.ts';
import { withLock } from './locked.ts';
import { eachHost, withSession } from './hosts.ts';

export interface HostCertificates {
  host: string;
  /** The host could not be read (one line; `hint`: how to fix it). */
  error?: string;
  hint?: string;
  /** Path of the certificate nginx is configured with. */
  configured?: string;
  certificates: CertInfo[];
  /** Serial of the certificate nginx hands out on :443 ('' when it does not answer). */
  servedSerial?: string;
  /** letsencrypt: "certbot.timer <active> <enabled>", "cron /etc/cron.d/certbot" or "none". */
  renewal?: string;
  /** letsencrypt: the certificates of certbot's on the host that no server block nginx loads names, so no served name uses (their paths); ops did not delete them (retireCertificate deletes only its own, when the site stops serving it). */
  unused?: string[];
  /** What is wrong with the environment's certificate (judgeCertificate, as ops status says it), each with its fix. */
  problems: string[];
  warnings: string[];
  renewed?: boolean;
  /** `--renew` moved the site to these names (the settings' names, certificateNames): it served others until their certificate existed. */
  moved?: string[];
  /** Never provisioned for the environment (listCertificates read provision's marker): said instead of its missing certificate (unprovisionedNote's words). */
  unprovisioned?: string;
}

export interface CertsResult {
  environment: string;
  mode: Environment['config']['tls']['mode'];
  hosts: HostCertificates[];
  ok: boolean;
}

/** The domains of the other environments on the environment's hosts: their certificates are their own, not this one's to list. */
function otherDomains(env: Target): string[] {
  return findSiblings(env).siblings.flatMap((s) => (s.env.config.domain ? [s.env.config.domain] : []));
}

/** `ops certs` of an environment without TLS: its settings make the command meaningless, a usage error (exit 2). */
function noTls(env: Target): InputError {
  return new InputError(`environment ${env.name} serves plain http (tls.mode is off): it has no certificates`, `set tls.mode (letsencrypt or self-signed) in environments/${env.name}/environment.yml, then: ops provision ${env.name}`);
}

function hostResult(ctx: OpsContext, env: Target, host: string, r: Parameters<typeof parseCerts>[0], renewed?: boolean): HostCertificates {
  const served = reported(r, CERTS_KEYS.served_serial);
  const configured = reported(r, CERTS_KEYS.configured);
  const certificates = parseCerts(r, runnerNow(ctx));
  const renewal = reported(r, CERTS_KEYS.renewal);
  const unprovisioned = provisionedIn(r) === false;
  const judged = unprovisioned ? { problems: [], warnings: [] } : judgeCertificate(env, certificates.find((c) => c.path === configured), parseRenewal(r));
  const used = usedCertificates(r);
  const unused = used ? certificates.filter((c) => c.path !== configured && !used.has(c.path)).map((c) => c.path) : [];
  return {
    host,
    configured,
    certificates,
    ...(unused.length ? { unused } : {}),
    servedSerial: served ? served.toUpperCase() : '',
    renewal,
    ...judged,
    ...(renewed === undefined ? {} : { renewed }),
    ...(unprovisioned && { unprovisioned: unprovisionedNote(undefined, env) }),
  };
}

/**
 * Every host's certificates for `ops certs` (names, expiry, issuer, the serial nginx serves, renewal timer),
 * read only. @throws InputError (exit 2) when the environment has no TLS; an unreachable host is a result, not a throw.
 */
export async function certificates(ctx: OpsContext, environment: Environment): Promise<CertsResult> {
  const env = resolveTarget(environment);
  if (env.config.tls.mode === 'off') throw noTls(env);
  const siblingDomains = otherDomains(env);
  const hosts = await eachHost(
    ctx,
    env,
    async (remote, host) => hostResult(ctx, env, host.name, await remote.run(listCertificates(env, siblingDomains))),
    (host, fields): HostCertificates => ({ host: host.name, ...fields, certificates: [], problems: [], warnings: [] }),
  );
  return { environment: env.name, mode: env.config.tls.mode, hosts, ok: hosts.every((h) => !h.error && !h.unprovisioned && !h.problems.length && h.certificates.every((c) => c.state === 'ok' && (c.daysLeft ?? -1) >= 0)) };
}

/** Force a renewal on every host, one host at a time, under the environment's lock (a deploy reloads nginx too). */
export async function renewCertificates(ctx: OpsContext, environment: Environment): Promise<CertsResult> {
  const env = resolveTarget(environment);
  if (env.config.tls.mode === 'off') throw noTls(env);
  const caFile = env.config.tls.acme_ca_file;
  // The CA file itself was put on the hosts by provision; renewals must trust the same server.
  if (caFile && env.config.tls.mode === 'letsencrypt') readEnvFile(env, 'tls.acme_ca_file', caFile, 'a CA certificate file');
  const withCa = Boolean(caFile && env.config.tls.mode === 'letsencrypt');
  const siblingDomains = otherDomains(env);
  const hosts = await withSession(ctx, env, (session) =>
    withLock(ctx, session, 'certs renew', async (locked) => {
      return session.each(
        async (remote, h) => {
          try {
            const run = new HostRun(ctx, remote, env, 'renew the certificate');
            const renewed = await run.run(renewCertificate(env, withCa));
            // The site serving other names than the settings' (a provision adding a name failed, or has not run): the
            // certificate now names the settings' names, so the site moves to them as provision moves it, and the
            // certificate ops issued for the names it served before goes (retireCertificate).
            const before = parseTlsState(renewed);
            let moved: string[] | undefined;
            let read = renewed;
            if (siteMoves(env, before)) {
              await run.run(provisionNginx(env, true));
              const retire = before.site?.cert ? retireCertificate(env, before.site.cert) : undefined;
              if (retire) await run.run(retire);
              moved = certificateNames(env);
              read = await run.run(listCertificates(env, siblingDomains));
            }
            const result = { ...hostResult(ctx, env, h.name, read, true), ...(moved && { moved }) };
            locked.audit(h.name, { result: 'success', message: `certificate renewed, expires ${result.certificates.find((c) => c.path === result.configured)?.notAfter ?? result.certificates[0]?.notAfter ?? '?'}${moved ? `; the site moved to ${moved.join(', ')}` : ''}` });
            return result;
          } catch (e) {
            locked.audit(h.name, { result: 'failed', message: auditReason(e, (t) => ctx.reporter.redact(t)) });
            throw e;
          }
        },
        { batch: 1 },
      );
    }, { unprovisioned: { nothing: 'no certificate was renewed', then: `ops certs ${env.name} --renew` } }),
  );
  return { environment: env.name, mode: env.config.tls.mode, hosts, ok: true };
}

/** `ops certs` for a terminal: one block per host, its certificates and problems. */
export function formatCerts(r: CertsResult): string {
  const out: string[] = [];
  for (const h of r.hosts) {
    out.push(`${h.host}:${h.renewed ? ' renewed' : ''}`);
    if (h.error) {
      out.push(`  ✗ unreachable: ${h.error}`, ...(h.hint ? [`    hint: ${h.hint}`] : []));
      continue;
    }
    if (h.unprovisioned && !h.certificates.length) {
      out.push(`  ✗ ${h.unprovisioned}`);
      continue;
    }
    if (!h.certificates.length) out.push('  (no certificate)');
    for (const c of h.certificates) {
      const used = c.path === h.configured;
      if (c.state !== 'ok') {
        out.push(`  ✗ ${c.path}: ${c.state}`);
        continue;
      }
      const expired = (c.daysLeft ?? -1) < 0;
      out.push(`  ${expired ? '✗' : '✓'} ${c.names.join(', ') || c.subject || '?'}${used ? ' (used by nginx)' : ''}`);
      out.push(`      expires  ${c.notAfter?.slice(0, 19).replace('T', ' ')} UTC (${expired ? `EXPIRED ${-(c.daysLeft ?? 0)} days ago` : `${c.daysLeft} days left`})`);
      out.push(`      issuer   ${c.issuer ?? '?'}`);
      out.push(`      serial   ${c.serial ?? '?'}${used ? (h.servedSerial === c.serial ? '  (served on :443)' : `  — nginx serves ${h.servedSerial ? `serial ${h.servedSerial}` : 'nothing on :443'}: ${SERVED_ELSE_FIX}`) : ''}`);
      out.push(`      file     ${c.path}`);
      const lineage = /^\/etc\/letsencrypt\/live\/([^/]+)\/fullchain\.pem$/.exec(c.path)?.[1];
      if (h.unused?.includes(c.path))
        out.push(`      unused   no server block of nginx names it: no served name uses it, and certbot's timer still renews it (failing once its names' DNS moves); if nothing else needs it: sudo certbot delete --cert-name ${lineage ?? '<name>'}`);
    }
    if (h.moved) out.push(`  the site now serves ${h.moved.join(', ')}: their certificate exists, so the site moved to them (as ops provision moves it)`);
    if (h.renewal) out.push(`  renewal: ${h.renewal}`);
    for (const p of h.problems) out.push(`  ✗ ${p}`);
    for (const w of h.warnings) out.push(`  ! ${w}`);
  }
  return out.join('\n');
}
