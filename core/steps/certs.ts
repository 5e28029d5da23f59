// Certificates: what `ops certs` lists and renews on a host, and the parser of `cert_info`'s reports (status
// reads the environment's own certificate with the same shell function and parser).
import type { Target } from '../target.ts';
import { reportKeys, reported, reportedAll, type Step, type StepResult } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { CERT_FUNCTIONS, HOST_LOCK_FUNCTIONS, SYSTEM_FUNCTIONS, LIBRARY_KEYS, visitorAddress } from './libraries.ts';
import { certbotCertificate, certificateNames, certificatePaths } from './nginx-config.ts';
import { certbotCertonly, reloadForCertificate, selfSignedCertificate, servingSite } from './tls.ts';
import { reportProvisioned } from './system.ts';

/** What `listCertificates`/`renewCertificate` report: `configured` (the environment's certificate path), `served_serial` (the serial nginx serves for the site, '' when none), `renewal` (`certbot.timer <state>`, `cron <file>` or `none`), `renewal_path` (what the ACME server's HTTP-01 requests for the certificate's names, the domain and each alias, would get instead of the webroot, those that do not get there, "; "-separated; '' when all get there: acme_path_problem), `renewal_last` (`<Result> <exit time, ISO 8601 UTC, or ''>` of certbot.service's last run, under systemd), `nginx_cert` (each certificate file a server block of the configuration nginx loads names: ssl_certificate, `nginx -T`; letsencrypt), `renewal_conf` (each line of certbot's renewal configuration of the certificate from its `[renewalparams]` on, comments and blank lines left out: parseRenewalConf; none when it has no such file); each certificate file's lines come as LIBRARY_KEYS.cert. */
export const CERTS_KEYS = reportKeys('configured', 'served_serial', 'renewal', 'renewal_path', 'renewal_last', 'nginx_cert', 'renewal_conf');

/** How certbot renews on a host (renewalCheck's reports): `schedule` (CERTS_KEYS.renewal), `path` (CERTS_KEYS.renewal_path, '' when the challenge reaches the webroot), `last` (certbot.service's last run: systemd's Result, `success` when it ended well, and when), `conf` (what certbot's renewal configuration of the certificate says of its challenges: parseRenewalConf; undefined without one). */
export interface Renewal {
  schedule?: string;
  path?: string;
  last?: { result: string; at?: string };
  conf?: RenewalConf;
}

/**
 * What certbot's renewal configuration of a certificate (/etc/letsencrypt/renewal/<name>.conf, ConfigObj syntax as
 * certbot writes it) says of how `certbot renew` answers its challenges: `authenticator` ('' when not set),
 * `webrootPath` (webroot_path, a list: `a, b,`) and `webrootMap` (its [[webroot_map]] section, name to folder).
 */
export interface RenewalConf {
  authenticator: string;
  webrootPath: string[];
  webrootMap: Record<string, string>;
}

/**
 * Reads CERTS_KEYS.renewal_conf's lines (from `[renewalparams]` on, in order) into a RenewalConf. Values may be quoted
 * (ConfigObj quotes one holding a comma or `#`); a key outside [renewalparams] and its [[webroot_map]] is not read.
 * Names in the map compared in lower case. undefined when no line was reported (no renewal configuration).
 */
export function parseRenewalConf(lines: string[]): RenewalConf | undefined {
  if (!lines.length) return undefined;
  const conf: RenewalConf = { authenticator: '', webrootPath: [], webrootMap: {} };
  const unquote = (v: string) => v.trim().replace(/^(["'])(.*)\1$/, '$2');
  let section = '';
  for (const raw of lines) {
    const line = raw.trim();
    const head = /^(\[+)\s*([^\]]*?)\s*\]+$/.exec(line);
    if (head) {
      section = `${head[1]!.length}:${head[2]}`;
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 1) continue;
    const key = unquote(line.slice(0, eq));
    const value = line.slice(eq + 1);
    if (section === '1:renewalparams') {
      if (key === 'authenticator') conf.authenticator = unquote(value);
      else if (key === 'webroot_path') conf.webrootPath = value.split(',').map(unquote).filter(Boolean);
    } else if (section === '2:webroot_map') conf.webrootMap[key.toLowerCase()] = unquote(value);
  }
  return conf;
}

/**
 * Where certbot's renewal would put each name's HTTP-01 answer, as its webroot plugin picks it (the name's
 * [[webroot_map]] entry, else the last folder of webroot_path), said for the names that would not reach `webroot` (the
 * folder the site answers the challenge from): another folder, none at all (the entries removed by hand: certbot
 * then stops, asking for one it cannot be given), or another authenticator than webroot (standalone cannot bind port
 * 80 while nginx holds it). '' when every name gets there.
 */
export function renewalConfProblem(conf: RenewalConf, names: string[], webroot: string): string {
  if (conf.authenticator !== 'webroot') return `it renews with certbot's ${conf.authenticator ? `${conf.authenticator} authenticator` : 'default authenticator (none set)'}, not the webroot ${webroot} the site answers the ACME challenge from`;
  const folder = (p: string | undefined) => (p === undefined ? undefined : p.replace(/\/+$/, '') || '/');
  const wrong = new Map<string, string[]>();
  for (const name of names) {
    const to = folder(conf.webrootMap[name.toLowerCase()] ?? conf.webrootPath.at(-1));
    if (to === folder(webroot)) continue;
    const what = to === undefined ? 'no webroot' : `the webroot ${to}`;
    wrong.set(what, [...(wrong.get(what) ?? []), name]);
  }
  return [...wrong].map(([what, n]) => `it gives ${n.join(', ')} ${what}, not ${webroot} where the site answers the ACME challenge`).join('; ');
}

/** renewalCheck's reports of one host; fields it did not report stay undefined (an older step, no systemd). */
export function parseRenewal(result: StepResult): Renewal {
  const last = reported(result, CERTS_KEYS.renewal_last);
  const [res, at] = (last ?? '').split(' ');
  const conf = parseRenewalConf(reportedAll(result, CERTS_KEYS.renewal_conf));
  return {
    schedule: reported(result, CERTS_KEYS.renewal),
    path: reported(result, CERTS_KEYS.renewal_path)?.trim(),
    ...(res ? { last: { result: res, ...(at ? { at } : {}) } } : {}),
    ...(conf ? { conf } : {}),
  };
}

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

/** Days left under which a certificate is a problem (status fails, ops certs exits 1), and a warning. Certbot renews at 30 days left. */
export const CERT_FAIL_DAYS = 7;
export const CERT_WARN_DAYS = 21;

/** Whether a certificate name (`*.example.org` covers one label, as RFC 6125 6.4.3 and browsers read it) covers `name`. */
export function certNameCovers(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase();
  const n = name.toLowerCase();
  if (p === n) return true;
  if (!p.startsWith('*.')) return false;
  const dot = n.indexOf('.');
  return dot > 0 && n.slice(dot + 1) === p.slice(2);
}

/**
 * What is wrong with the environment's certificate, as status and ops certs both say it: `problems` (expired, within
 * CERT_FAIL_DAYS, not naming the domain or an alias, missing or unreadable) and `warnings` (within CERT_WARN_DAYS; letsencrypt: no
 * renewal that runs, from `renewal`, CERTS_KEYS.renewal's value), each with its fix. `cert` undefined: nothing to say.
 */
export function judgeCertificate(env: Target, cert: CertInfo | undefined, renewal: Renewal = {}): { problems: string[]; warnings: string[] } {
  const problems: string[] = [];
  const warnings: string[] = [];
  if (!cert) return { problems, warnings };
  const renew = `ops certs ${env.name} --renew`;
  if (cert.state !== 'ok') {
    problems.push(`TLS certificate ${cert.path} is ${cert.state}: nginx cannot serve the site over https with it (${cert.state === 'missing' ? `ops provision ${env.name} gets one` : `${renew} makes a new one`})`);
    return { problems, warnings };
  }
  const stopped = env.config.tls.mode === 'letsencrypt' ? renewalStopped(renewal.schedule) ?? renewalBroken(env, renewal) : undefined;
  const why = stopped ? `${stopped.what} (${stopped.fix}), so nothing renews it` : 'renewal is failing';
  const day = cert.notAfter?.slice(0, 10);
  if (cert.daysLeft !== undefined) {
    if (cert.daysLeft < 0) problems.push(`TLS certificate expired on ${day}: browsers refuse the site; ${why}: ${renew}`);
    else if (cert.daysLeft < CERT_FAIL_DAYS) problems.push(`TLS certificate expires in ${cert.daysLeft} days (${day}): ${why} (${renew})`);
    else if (cert.daysLeft < CERT_WARN_DAYS) warnings.push(`TLS certificate expires in ${cert.daysLeft} days (${day}): it should have been renewed by now${stopped ? `; ${why}` : ''} (${renew})`);
    else if (stopped) warnings.push(`${stopped.what}: the certificate (${cert.daysLeft} days left, ${day}) will not be renewed; ${stopped.fix}`);
  }
  const domain = env.config.domain;
  const covered = (name: string) => cert.names.some((n) => certNameCovers(n, name));
  if (domain && cert.names.length && !covered(domain))
    problems.push(`TLS certificate ${cert.path} names ${cert.names.join(', ')}, not ${domain}: browsers refuse the site as another's; ${renew} gets one for ${domain}`);
  const lacking = cert.names.length ? env.config.aliases.filter((a) => !covered(a)) : [];
  if (lacking.length)
    problems.push(
      `TLS certificate ${cert.path} does not name the alias${lacking.length > 1 ? 'es' : ''} ${lacking.join(', ')} (it names ${cert.names.join(', ')}): browsers refuse https://${lacking[0]} instead of following its redirect to ${domain}; ops provision ${env.name} gets one that names ${lacking.length > 1 ? 'them' : 'it'} (certbot --expand)`,
    );
  return { problems, warnings };
}

/**
 * certbot's renewal set to run but bound to fail, with its fix; undefined when nothing says so. The ACME server's
 * HTTP-01 request not reaching the webroot (a site template without {{acme_location}}, a redirect, another server
 * block for the domain: `renewal.path`), or certbot.service's last run failing (an ACME error, a hook of
 * /etc/letsencrypt/renewal-hooks failing: it renews every certificate on the host, another app's failure shows too).
 */
function renewalBroken(env: Target, renewal: Renewal): { what: string; fix: string } | undefined {
  if (renewal.path)
    return {
      what: `certbot's renewal would fail: ${renewal.path}`,
      fix: `${env.config.nginx.site_template ? `put {{acme_location}} in the port-80 server of the site template (nginx.site_template), or ` : ''}remove the server block that answers instead, then ops provision ${env.name}`,
    };
  const conf = renewal.conf && renewalConfProblem(renewal.conf, certificateNames(env), env.layout.acmeWebroot);
  if (conf)
    return {
      what: `certbot's renewal would fail: its configuration ${renewalConfPath(env)} (edited by hand?): ${conf}`,
      fix: `ops certs ${env.name} --renew gets the certificate again with the webroot, which rewrites it`,
    };
  if (renewal.last && renewal.last.result !== 'success')
    return {
      what: `certbot's last renewal run${renewal.last.at ? ` (${renewal.last.at})` : ''} failed (certbot.service: ${renewal.last.result})`,
      fix: 'why, on the host: sudo journalctl -u certbot.service -n 50; then sudo systemctl start certbot.service to try again',
    };
  return undefined;
}

/** certbot's renewal configuration of the environment's certificate (letsencrypt): its lineage is named after the domain. */
function renewalConfPath(env: Target): string {
  return `/etc/letsencrypt/renewal/${env.config.domain ?? env.config.app}.conf`;
}

/** certbot's renewal not set to run (CERTS_KEYS.renewal's value: `certbot.timer <active> <enabled>`), with its fix; undefined when it runs or is not known. */
function renewalStopped(renewal: string | undefined): { what: string; fix: string } | undefined {
  if (!renewal) return undefined;
  const fix = 'sudo systemctl enable --now certbot.timer; ops provision does it too';
  if (renewal === 'none') return { what: "certbot's renewal is not scheduled (no certbot.timer, no /etc/cron.d/certbot)", fix: 'ops provision sets it up' };
  const [unit, active, enabled] = renewal.split(' ');
  if (unit !== 'certbot.timer') return undefined;
  if (active !== 'active') return { what: `certbot's renewal timer is not running (certbot.timer ${active || 'unknown'})`, fix };
  if (enabled && enabled !== 'enabled' && enabled !== 'static') return { what: `certbot's renewal timer stops at the next reboot (certbot.timer ${enabled})`, fix };
  return undefined;
}

/**
 * The fix when nginx hands the site's visitors (asked at the host's address they reach: served_serial with visitorAddress)
 * another certificate than the site's file: nginx not reloaded since it changed, or a server block of another file
 * listening on that address itself (`listen <address>:443`, taken before the site's `listen 443`) or naming the domain
 * and loaded first.
 */
export const SERVED_ELSE_FIX = "reload nginx; if it still does, another server block takes the site's https visitors: one listening on the host's address itself (listen <address>:443) or naming the domain in a file loaded first (nginx -T shows them): remove it or its listen/server_name";

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
${visitorAddress()}
ops_report ${CERTS_KEYS.served_serial} "$(served_serial ${quote(siteName(env))} "$gate_at")"
${env.config.tls.mode === 'letsencrypt' ? renewalCheck(env) : ''}`;
  return { name: 'certificates', as: 'root', timeout: 60, quiet: true, script };
}

/**
 * certbot's other certificates on the host (not the environment's, nor its siblings'): listed too, they may be
 * forgotten ones; and the certificate files nginx's server blocks name (CERTS_KEYS.nginx_cert: usedCertificates
 * reads them), to say those no served name uses.
 */
function otherLiveCertificates(skip: string[]): string {
  return String.raw`for f in /etc/letsencrypt/live/*/fullchain.pem; do
  case "$f" in ${skip.map(quote).join('|')}) continue ;; esac
  [ -f "$f" ] && cert_info "$f"
done; true
while IFS= read -r f; do [ -z "$f" ] || ops_report ${CERTS_KEYS.nginx_cert} "$f"; done < <({ nginx -T 2>/dev/null || true; } | sed -n 's/^[^#]*ssl_certificate[[:space:]]\{1,\}\([^;[:space:]]*\);.*/\1/p' | sort -u)`;
}

/**
 * The certificate files nginx's server blocks name (CERTS_KEYS.nginx_cert), undefined when not reported (tls.mode
 * self-signed, an older step): a certificate none names serves no name (ops certs says so).
 */
export function usedCertificates(result: StepResult): Set<string> | undefined {
  const all = reportedAll(result, CERTS_KEYS.nginx_cert);
  return all.length ? new Set(all) : undefined;
}

/**
 * How renewals are scheduled (CERTS_KEYS.renewal): `certbot.timer <is-active> <is-enabled>` under systemd (is-enabled:
 * whether the timer comes back after a reboot), certbot's cron file where there is no systemd, or `none`; whether the
 * ACME server's HTTP-01 request for each name of the certificate (certificateNames: the domain and each alias, all
 * validated at each renewal) reaches the webroot now (CERTS_KEYS.renewal_path: the check provision makes before
 * certbot, a file written in the webroot and removed), and how certbot.service's last run ended
 * (CERTS_KEYS.renewal_last). Needs CERT_FUNCTIONS; letsencrypt only. Read by parseRenewal.
 */
export function renewalCheck(env: Target): string {
  return String.raw`${visitorAddress()}
if [ -d /run/systemd/system ]; then
  ops_report ${CERTS_KEYS.renewal} "certbot.timer $(systemctl is-active certbot.timer 2>/dev/null || true) $(systemctl is-enabled certbot.timer 2>/dev/null || true)"
  rn_at=$(systemctl show certbot.service -p ExecMainExitTimestamp --value 2>/dev/null || true)
  if [ -n "$rn_at" ] && [ "$rn_at" != n/a ]; then rn_at=$(date -u -d "$rn_at" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || true); else rn_at=''; fi
  ops_report ${CERTS_KEYS.renewal_last} "$(systemctl show certbot.service -p Result --value 2>/dev/null || true) $rn_at"
elif [ -f /etc/cron.d/certbot ]; then ops_report ${CERTS_KEYS.renewal} "cron /etc/cron.d/certbot"
else ops_report ${CERTS_KEYS.renewal} "none"; fi
# certbot validates every name of the certificate at each renewal (one HTTP-01 challenge per name): each is asked.
rn_path=""; rn_names=(${certificateNames(env).map(quote).join(' ')})
for rn_name in "${'$'}{rn_names[@]}"; do
  rn_one=$(acme_path_problem "$rn_name" ${quote(env.layout.acmeWebroot)} "$gate_at"); [ -z "$rn_one" ] || rn_path+="${'$'}{rn_path:+; }$rn_one"
done
ops_report ${CERTS_KEYS.renewal_path} "$rn_path"
# How certbot renew answers the challenges: its renewal configuration from [renewalparams] on (parseRenewalConf).
if [ -f ${quote(renewalConfPath(env))} ]; then
  while IFS= read -r rn_line || [ -n "$rn_line" ]; do ops_report ${CERTS_KEYS.renewal_conf} "$rn_line"; done < <(sed -n '/^[[:space:]]*\[renewalparams\]/,$p' ${quote(renewalConfPath(env))} | grep -v '^[[:space:]]*\(#\|$\)' || true)
fi`;
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
${env.config.domain ? servingSite(env) : ': no domain: the site answers any name'}
${renew}
${reloadForCertificate(env, name)}
cert_info ${quote(cert.cert)}
ops_report ${CERTS_KEYS.served_serial} "$(served_serial ${quote(name)} "$gate_at")"`,
  };
}
