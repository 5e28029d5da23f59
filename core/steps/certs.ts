// Certificates: what `ops certs` lists and renews on a host, and the parser of `cert_info`'s reports (status
// reads the environment's own certificate with the same shell function and parser).
import type { Target } from '../target.ts';
import { reportKeys, reportedAll, type Step, type StepResult } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { CERT_FUNCTIONS, HOST_LOCK_FUNCTIONS, SYSTEM_FUNCTIONS, LIBRARY_KEYS } from './libraries.ts';
import { certbotCertificate, certificatePaths } from './nginx-config.ts';
import { certbotCertonly, reloadForCertificate, selfSignedCertificate } from './tls.ts';
import { reportProvisioned } from './system.ts';

/** What `listCertificates`/`renewCertificate` report: `configured` (the environment's certificate path), `served_serial` (the serial nginx serves for the site, '' when none), `renewal` (`certbot.timer <state>`, `cron <file>` or `none`); each certificate file's lines come as LIBRARY_KEYS.cert. */
export const CERTS_KEYS = reportKeys('configured', 'served_serial', 'renewal');

export interface CertInfo {
  path: string;
  /** "ok", "missing" or "unreadable". */
  state: 'ok' | 'missing' | 'unreadable';
  notAfter?: string;
  /** Whole days left before expiry (negative: expired), relative to `now`. */
  daysLeft?: number;
  serial?: string;
  subject?: string;
  issuer?: string;
  names: string[];
}

/** The certificates reported by `cert_info`, in order. */
export function parseCerts(result: StepResult, now: Date): CertInfo[] {
  const byPath = new Map<string, CertInfo>();
  for (const line of reportedAll(result, LIBRARY_KEYS.cert)) {
    const tab = line.indexOf('\t');
    if (tab < 0) continue;
    const path = line.slice(0, tab);
    const field = line.slice(tab + 1);
    let c = byPath.get(path);
    if (!c) byPath.set(path, (c = { path, state: 'ok', names: [] }));
    if (field === 'missing' || field === 'unreadable') c.state = field;
    else if (field.startsWith('notAfter=')) {
      const t = new Date(field.slice('notAfter='.length));
      if (!Number.isNaN(t.getTime())) {
        c.notAfter = t.toISOString();
        c.daysLeft = Math.floor((t.getTime() - now.getTime()) / 86_400_000);
      }
    } else if (field.startsWith('serial=')) c.serial = field.slice('serial='.length).toUpperCase();
    else if (field.startsWith('subject=')) c.subject = field.slice('subject='.length).trim();
    else if (field.startsWith('issuer=')) c.issuer = field.slice('issuer='.length).trim();
    else if (field.startsWith('DNS:')) c.names.push(field.slice('DNS:'.length));
    else if (field.startsWith('IP Address:')) c.names.push(field.slice('IP Address:'.length));
  }
  return [...byPath.values()];
}

/** The name nginx is asked for on :443 (SNI) and the site is fetched as: the domain, else "localhost". */
export function siteName(env: Target): string {
  return env.config.domain ?? 'localhost';
}


/**
 * Every certificate on the host that the environment's TLS mode uses (certbot's live/ certificates, or the
 * self-signed one). `siblingDomains`: the domains of the other environments on the host, whose certificates
 * are theirs, not forgotten ones of this environment: left out. Reports PROVISIONED_KEYS first (reportProvisioned).
 */
export function listCertificates(env: Target, siblingDomains: string[] = []): Step {
  const cert = certificatePaths(env);
  const script = !cert
    ? ': no TLS'
    : String.raw`${CERT_FUNCTIONS}
${reportProvisioned(env)}
ops_report ${CERTS_KEYS.configured} ${quote(cert.cert)}
cert_info ${quote(cert.cert)}
${env.config.tls.mode === 'letsencrypt' ? otherLiveCertificates([cert.cert, ...siblingDomains.map((d) => certbotCertificate(d).cert)]) : ''}
ops_report ${CERTS_KEYS.served_serial} "$(served_serial ${quote(siteName(env))})"
${env.config.tls.mode === 'letsencrypt' ? renewalCheck() : ''}`;
  return { name: 'certificates', as: 'root', timeout: 60, quiet: true, script };
}

/** certbot's other certificates on the host (not the environment's, nor its siblings'): listed too, they may be forgotten ones. */
function otherLiveCertificates(skip: string[]): string {
  return String.raw`for f in /etc/letsencrypt/live/*/fullchain.pem; do
  case "$f" in ${skip.map(quote).join('|')}) continue ;; esac
  [ -f "$f" ] && cert_info "$f"
done; true`;
}

/** How renewals are scheduled: certbot's systemd timer, or its cron file where there is no systemd. */
function renewalCheck(): string {
  return String.raw`if [ -d /run/systemd/system ]; then
  ops_report ${CERTS_KEYS.renewal} "certbot.timer $(systemctl is-active certbot.timer 2>/dev/null || true)"
elif [ -f /etc/cron.d/certbot ]; then ops_report ${CERTS_KEYS.renewal} "cron /etc/cron.d/certbot"
else ops_report ${CERTS_KEYS.renewal} "none"; fi`;
}

/**
 * Renew the environment's certificate now: certbot certonly --force-renewal (letsencrypt: certbotCertonly, which
 * registers a new ACME account when the host's is gone, as `certbot renew` cannot), or a new self-signed one. nginx
 * reloads only once `nginx -t` accepts the result (reloadForCertificate); then the served certificate is checked.
 * A failed renewal leaves the current certificate serving, said with why and what to fix (certbot_failure).
 */
export function renewCertificate(env: Target, withAcmeCa: boolean): Step {
  const cert = certificatePaths(env)!;
  const name = siteName(env);
  // The hook directories are left out: this step reloads nginx itself, after nginx -t.
  const renew =
    env.config.tls.mode === 'letsencrypt'
      ? `cert_left="nginx keeps serving the current certificate"
${certbotCertonly(env, withAcmeCa, '--force-renewal --no-directory-hooks', '$cert_left')}`
      : selfSignedCertificate(env, true);
  return {
    name: 'renew certificate',
    as: 'root',
    timeout: 600,
    quiet: true,
    script: String.raw`${SYSTEM_FUNCTIONS}
${HOST_LOCK_FUNCTIONS}
${CERT_FUNCTIONS}
${renew}
${reloadForCertificate(env, name)}
cert_info ${quote(cert.cert)}
ops_report ${CERTS_KEYS.served_serial} "$(served_serial ${quote(name)})"`,
  };
}
