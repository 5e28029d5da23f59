// HTTPS: the ACME webroot, dhparams made on the host (the seed downloaded them), a renewal hook that
// reloads nginx (the seed's cron renewed but never reloaded), certbot from Debian (not snap), self-signed mode.
import { isIP } from 'node:net';
import type { Target } from '../target.ts';
import { reported, reportKeys, type Step, type StepResult } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { certificateNames, certificatePaths, HEADER } from './nginx-config.ts';
import { siteNames } from '../config/environment.ts';
import { putChecked, putFile } from './script.ts';
import { CERT_FUNCTIONS, HOST_LOCK_FUNCTIONS, SYSTEM_FUNCTIONS, visitorAddress } from './libraries.ts';

/**
 * What `prepareTls` reports: `certificate` (yes|no: the certificate and its own key are there, cert_problem), and
 * LIBRARY_KEYS.item; letsencrypt: `cert_lacks` (the site's names the certificate does not name, space-separated:
 * cert_lacks), and the site nginx serves now, when ops wrote it and it is enabled: `site_names` (its server_name
 * names, space-separated), `site_cert` (its ssl_certificate, '' when it serves http only) and `site_cert_ok` (yes|no:
 * that certificate and its key can be served). Read by parseTlsState.
 */
export const TLS_KEYS = reportKeys('certificate', 'cert_lacks', 'site_names', 'site_cert', 'site_cert_ok');

/** The TLS of a host as prepareTls found it (parseTlsState): what the site's certificate lacks, and the site serving now. */
export interface TlsState {
  /** The certificate of the site's names and its own key are there (cert_problem). */
  certificate: boolean;
  /** The site's names (certificateNames) that certificate does not name. */
  lacks: string[];
  /** The site nginx serves now (ops's, enabled): its names, its certificate ('' when http only) and whether it can be served; undefined: none. */
  site?: { names: string[]; cert: string; certOk: boolean };
}

/** prepareTls's reports of one host. */
export function parseTlsState(r: StepResult): TlsState {
  const words = (v: string | undefined) => (v ?? '').split(/\s+/).filter(Boolean);
  const names = reported(r, TLS_KEYS.site_names);
  return {
    certificate: reported(r, TLS_KEYS.certificate) === 'yes',
    lacks: words(reported(r, TLS_KEYS.cert_lacks)),
    ...(names !== undefined ? { site: { names: words(names), cert: reported(r, TLS_KEYS.site_cert) ?? '', certOk: reported(r, TLS_KEYS.site_cert_ok) === 'yes' } } : {}),
  };
}

/**
 * What provision does with the site under tls.mode letsencrypt (the rule: the site moves to names only once their
 * certificate exists; a failed issuance leaves the live site as it was). `ready`: the certificate names every name of
 * the site, so the site is written for them. Else `keep` when a site of ops serves here already with its certificate,
 * or under other names (a name added, the domain replaced, TLS just turned on for other names): it is left as it
 * serves (`serving`: its names), only the ACME challenge of `pending` (the names it does not serve) is answered beside
 * it, and `missing` (the names without a certificate) are said on failure; no `keep`: nothing serves that is worth
 * keeping (a first provision, a certificate not servable), the site is written for http until the certificate exists.
 */
export function tlsPlan(env: Target, state: TlsState): { ready: boolean; missing: string[]; keep?: { serving: string[]; pending: string[] } } {
  const names = certificateNames(env);
  const missing = state.certificate ? state.lacks : names;
  if (!missing.length) return { ready: true, missing };
  const site = state.site;
  const lower = (n: string) => n.toLowerCase().replace(/\.$/, '');
  const served = new Set(site?.names.map(lower));
  const same = site !== undefined && names.length === served.size && names.every((n) => served.has(lower(n)));
  if (!site || !site.names.length || (!(site.cert && site.certOk) && same)) return { ready: false, missing };
  return { ready: false, missing, keep: { serving: site.names, pending: names.filter((n) => !served.has(lower(n))) } };
}

/**
 * Whether the site serving on the host (state.site: ops's, enabled) serves other names than the settings' (siteNames:
 * a name added or removed, the domain replaced), or serves http only (TLS turned on, its certificate not got then), so
 * that the certificate got for the settings' names is not the one it serves: `ops certs --renew` then moves the site
 * as provision does (provisionNginx, once the certificate exists).
 * Names compared as nginx does (case-insensitive, a final dot aside). False without a domain (the site answers any name).
 */
export function siteMoves(env: Target, state: TlsState): boolean {
  if (!state.site || !env.config.domain) return false;
  const lower = (n: string) => n.toLowerCase().replace(/\.$/, '');
  const served = new Set(state.site.names.map(lower));
  const names = new Set(certificateNames(env).map(lower));
  return !state.site.cert || served.size !== names.size || [...names].some((n) => !served.has(n));
}

const RENEW_HOOK = '/etc/letsencrypt/renewal-hooks/deploy/ops-pipeline-reload-nginx';
const CA_DIR = '/usr/local/share/ops-pipeline';
/** What certbot's renewal timer trusts: Debian's CAs plus every app's test ACME CA (the timer renews them all). */
const CA_BUNDLE = `${CA_DIR}/acme-ca-bundle.pem`;

/** Where the environment's test ACME CA (tls.acme_ca_file) is installed on a host. */
export function acmeCaPath(env: Target): string {
  return `${CA_DIR}/${env.config.app}-acme-ca.pem`;
}

/**
 * Everything TLS needs before nginx can reference a certificate. `acmeCa` is the content of tls.acme_ca_file
 * (test ACME servers only). Reports `certificate yes|no` for the site rendering that follows.
 */
export function prepareTls(env: Target, acmeCa?: string): Step {
  const L = env.layout;
  const certs = certificatePaths(env)!;
  const lines = [SYSTEM_FUNCTIONS, CERT_FUNCTIONS, `ensure_dir ${quote(L.acmeWebroot)} 0755 root:root`];
  // RFC 7919 ffdhe2048, as Mozilla recommends: named group output by OpenSSL itself, nothing downloaded.
  // Shared by every app's site; made beside the file then renamed, so a concurrent provision never reads half
  // of it, and a file cut short (full disk) never reaches nginx.
  lines.push(String.raw`if [ ! -s /etc/nginx/dhparams.pem ]; then
  dh=$(mktemp /etc/nginx/.dhparams.XXXXXX)
  openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 -out "$dh" 2>/dev/null \
    || openssl genpkey -genparam -algorithm DH -pkeyopt dh_param:ffdhe2048 -out "$dh" 2>/dev/null \
    || openssl dhparam -out "$dh" 2048 2>/dev/null \
    || { rm -f "$dh"; exit 1; }
  chmod 0644 "$dh"
  mv -f "$dh" /etc/nginx/dhparams.pem
  CHANGED=1
fi`);
  if (env.config.tls.mode === 'letsencrypt') {
    lines.push(
      putChecked(
        RENEW_HOOK,
        '#!/bin/sh\n# Installed by ops-pipeline: after a renewal, reload nginx so it serves the new certificate (only with a valid config).\nset -e\nnginx -t -q\nif [ -d /run/systemd/system ]; then systemctl reload nginx; else service nginx reload; fi\n',
        'sh -n',
        'the certbot renewal hook',
        '0755',
      ),
    );
    if (acmeCa) {
      lines.push(putChecked(acmeCaPath(env), acmeCa, 'openssl x509 -noout -in', `tls.acme_ca_file (environments/${env.name}/${env.config.tls.acme_ca_file})`));
      // The renewal timer must trust the test ACME server too, and still the public CAs: it renews every app's
      // certificates on the host, some maybe from Let's Encrypt. One bundle, the same drop-in for every app.
      lines.push(String.raw`bundle=$(mktemp ${quote(`${CA_BUNDLE}.XXXXXX`)})
cat /etc/ssl/certs/ca-certificates.crt ${quote(CA_DIR)}/*-acme-ca.pem > "$bundle"
if cmp -s "$bundle" ${quote(CA_BUNDLE)}; then rm -f "$bundle"; else chmod 0644 "$bundle"; mv -f "$bundle" ${quote(CA_BUNDLE)}; CHANGED=1; fi
if [ -d /run/systemd/system ]; then
  was=$CHANGED; CHANGED=0
  ${putFile('/etc/systemd/system/certbot.service.d/ops-acme-ca.conf', `[Service]\nEnvironment=REQUESTS_CA_BUNDLE=${CA_BUNDLE}\n`)}
  if [ "$CHANGED" = 1 ]; then systemctl daemon-reload; fi
  [ "$was" = 0 ] || CHANGED=1
fi`);
    }
    lines.push(`if [ -d /run/systemd/system ] && [ -f /lib/systemd/system/certbot.timer ]; then svc_up certbot.timer; fi`);
  } else {
    lines.push(selfSignedCertificate(env));
  }
  // What the certificate lacks, and the site serving now: kept while the certificate of new names is not issued (tlsPlan).
  if (env.config.tls.mode === 'letsencrypt') lines.push(servingSite(env));
  // Ready: a certificate nginx can serve with its key (cert_problem); one whose key was replaced by hand is not.
  lines.push(`ops_report ${TLS_KEYS.certificate} "$([ -z "$(cert_problem ${quote(certs.cert)} ${quote(certs.key)})" ] && echo yes || echo no)"`, 'item tls');
  return { name: 'tls', as: 'root', timeout: 120, script: lines.join('\n') };
}

/**
 * Shell reporting what tlsPlan reads besides the certificate: TLS_KEYS.cert_lacks (the site's names the certificate
 * does not name), and, when ops's site is enabled (its header opens it), the site nginx serves now: TLS_KEYS.site_names
 * (its server_name names, `_` left out), site_cert (its first ssl_certificate, '' for a site serving http only) and
 * site_cert_ok (that certificate servable with its ssl_certificate_key: cert_problem). Needs CERT_FUNCTIONS.
 */
export function servingSite(env: Target): string {
  const L = env.layout;
  const certs = certificatePaths(env)!;
  const site = quote(L.nginxSite);
  return String.raw`ops_report ${TLS_KEYS.cert_lacks} "$(cert_lacks ${quote(certs.cert)} ${certificateNames(env).map(quote).join(' ')})"
if [ -e ${quote(L.nginxSiteEnabled)} ] && [ "$(head -n1 ${site} 2>/dev/null || true)" = ${quote(HEADER)} ]; then
  ops_report ${TLS_KEYS.site_names} "$(sed -n 's/^[[:space:]]*server_name[[:space:]]\{1,\}\([^;]*\);.*/\1/p' ${site} | tr -s ' \t' '\n' | grep -vx '_' | sort -u | tr '\n' ' ' || true)"
  site_cert=$(sed -n 's/^[[:space:]]*ssl_certificate[[:space:]]\{1,\}\([^;[:space:]]*\);.*/\1/p' ${site} | sed -n 1p || true)
  site_key=$(sed -n 's/^[[:space:]]*ssl_certificate_key[[:space:]]\{1,\}\([^;[:space:]]*\);.*/\1/p' ${site} | sed -n 1p || true)
  ops_report ${TLS_KEYS.site_cert} "$site_cert"
  ops_report ${TLS_KEYS.site_cert_ok} "$([ -n "$site_cert" ] && [ -z "$(cert_problem "$site_cert" "$site_key")" ] && echo yes || echo no)"
fi`;
}

/**
 * The self-signed certificate (tls.mode self-signed), naming the domain (else the app name) and the aliases: made when
 * missing, its key missing or not its own (cert_problem: needs CERT_FUNCTIONS), not naming one of them (cert_lacks: an
 * alias added), or expiring within 30 days, or always with `force` (ops certs --renew).
 * Sets CHANGED=1 when it made one.
 */
export function selfSignedCertificate(env: Target, force = false): string {
  const L = env.layout;
  const certs = certificatePaths(env)!;
  const names = certificateNames(env);
  const domain = names[0]!;
  // An address is named as one (IP:, what curl and browsers compare an address with); a DNS: entry holding it matches nothing
  const san = names.map((n) => `${isIP(n) ? 'IP' : 'DNS'}:${n}`).join(',');
  const when = force
    ? 'true'
    : `[ -n "$(cert_problem ${quote(certs.cert)} ${quote(certs.key)})" ] || [ -n "$(cert_lacks ${quote(certs.cert)} ${names.map(quote).join(' ')})" ] || ! openssl x509 -in ${quote(certs.cert)} -noout -checkend 2592000 >/dev/null`;
  // Key and certificate made beside the live ones (the key private from creation), then renamed over them.
  return String.raw`if ${when}; then
  install -d -m 0755 ${quote(L.selfSignedDir)}
  if ! (umask 077; openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj ${quote(`/CN=${domain}`)} -addext ${quote(`subjectAltName=${san}`)} \
    -keyout ${quote(`${certs.key}.new`)} -out ${quote(`${certs.cert}.new`)} 2>/dev/null); then
    rm -f ${quote(`${certs.key}.new`)} ${quote(`${certs.cert}.new`)}
    echo "could not make a self-signed certificate (full disk?)" >&2
    exit 1
  fi
  chmod 0644 ${quote(`${certs.cert}.new`)}
  mv -f ${quote(`${certs.key}.new`)} ${quote(certs.key)}
  mv -f ${quote(`${certs.cert}.new`)} ${quote(certs.cert)}
  CHANGED=1
fi`;
}

/**
 * certbot certonly --webroot for the environment's domain and aliases (one lineage, named after the domain: --cert-name;
 * --expand: one lacking an alias gets a certificate naming it, in place), under the host's
 * certbot lock (apps sharing the host take turns). `force` adds --force-renewal (a renewal now, or a certificate whose
 * key is not its own); `force` and `left` are shell text, expanded inside double quotes. On failure prints certbot_failure's words (why, classified from certbot's output, `left`: what
 * keeps serving, what to fix) and exits 1; the files certbot keeps are left as they were. Needs SYSTEM_FUNCTIONS,
 * HOST_LOCK_FUNCTIONS and CERT_FUNCTIONS. Certbot's own options: https://eff-certbot.readthedocs.io/en/stable/using.html
 */
export function certbotCertonly(env: Target, withAcmeCa: boolean, force: string, left: string): string {
  const tls = env.config.tls;
  const names = certificateNames(env);
  const domain = names[0]!;
  // --expand: a lineage lacking a name gets a certificate naming them all under the same name, the files nginx reads
  // replaced in place (the current one serves until the reload).
  const args = [
    'certbot', 'certonly', '-n', '--agree-tos', '--no-eff-email', '-m', tls.email!, '--webroot', '-w', env.layout.acmeWebroot,
    ...names.flatMap((n) => ['-d', n]), '--cert-name', domain, '--expand', '--no-random-sleep-on-renew',
    ...(tls.acme_server ? ['--server', tls.acme_server] : []),
  ];
  const ca = withAcmeCa ? `REQUESTS_CA_BUNDLE=${quote(acmeCaPath(env))} ` : '';
  // The ACME server's HTTP-01 request is tried here first: what answers it instead (a redirect, a 404 from another
  // server block for the name) is said with the files naming the domain, not after an order spent on the ACME server.
  // Each name is validated by the ACME server on its own (one HTTP-01 challenge per name), at the host's address it
  // reaches (visitorAddress): a server block listening on that address itself answers there, not on 127.0.0.1.
  return String.raw`${visitorAddress()}
acme_names=(${names.map(quote).join(' ')})
for acme_name in "${'$'}{acme_names[@]}"; do
  if acme_problem=$(acme_path_problem "$acme_name" ${quote(env.layout.acmeWebroot)} "$gate_at") && [ -n "$acme_problem" ]; then
    echo "certbot was not run for ${names.join(', ')}: the ACME server's HTTP-01 request would fail: $acme_problem. ${left}. To fix: remove or change the server block for $acme_name on port 80 that answers instead (the site ops writes serves /.well-known/acme-challenge/ itself, for the domain and each alias; a nginx.site_template needs {{acme_location}} in its port-80 server, and {{alias_servers}}), then run ops provision ${env.name} again" >&2
    exit 1
  fi
done
host_lock certbot 300
certbot_log=$(mktemp)
# certbot runs one at a time on a host (its own lock, fcntl: not ours to wait on): a run under way, the renewal timer's
# (certbot.service) or one started by hand, is waited for (${CERTBOT_LOCK_WAIT} s at most) rather than failing this one.
certbot_waited=0
while :; do
  certbot_rc=0
  ${ca}/usr/bin/timeout 240 ${args.map(quote).join(' ')} ${force} >"$certbot_log" 2>&1 || certbot_rc=$?
  if [ "$certbot_rc" != 0 ] && [ "$certbot_waited" -lt ${CERTBOT_LOCK_WAIT} ] && grep -q 'Another instance of Certbot is already running' "$certbot_log"; then
    sleep 5; certbot_waited=$((certbot_waited + 5)); continue
  fi
  break
done
host_unlock certbot
if [ "$certbot_rc" != 0 ]; then
  certbot_failure "$certbot_rc" "$certbot_log" ${quote(domain)} ${quote(tls.acme_server ?? 'https://acme-v02.api.letsencrypt.org/directory')} ${quote(env.layout.acmeWebroot)} "${left}. Run ops provision ${env.name} again once fixed"
  rm -f "$certbot_log"
  exit 1
fi
rm -f "$certbot_log"`;
}

/** The most seconds certbotCertonly waits for another certbot run on the host (the renewal timer's) to end. */
const CERTBOT_LOCK_WAIT = 120;

/**
 * Reload nginx for a certificate renewed in place, only once `nginx -t` accepts the files (else exit 1, saying nginx
 * keeps the old certificate), then wait (5 s at most) until :443 hands out the new one for `name` (SNI): a reload
 * returns before the new workers serve; asked where visitors reach the host (visitorAddress: sets gate_at). Needs
 * SYSTEM_FUNCTIONS, HOST_LOCK_FUNCTIONS, CERT_FUNCTIONS.
 */
export function reloadForCertificate(env: Target, name: string): string {
  const cert = certificatePaths(env)!;
  return String.raw`${visitorAddress()}
host_lock nginx
if ! out=$(nginx -t 2>&1); then
  echo "the certificate was renewed, but nginx -t fails, so nginx was NOT reloaded (it keeps serving the old certificate):" >&2
  echo "$out" >&2
  exit 1
fi
nginx_reload
host_unlock nginx
want=$(openssl x509 -in ${quote(cert.cert)} -noout -serial | sed 's/^serial=//')
for _ in {1..50}; do [ "$(served_serial ${quote(name)} "$gate_at")" = "$want" ] && break; sleep 0.1; done`;
}

/**
 * The environment's Let's Encrypt certificate, got or renewed as it needs: none yet (or one nginx could not serve: its
 * key missing, or not its own) → certbot certonly (forced over a lineage it has); one not naming a name of the site
 * (an alias added: cert_lacks) → certbot certonly --expand, nginx reloaded after `nginx -t`; one due within 30 days (expired
 * too: certbot's own renewal window, which the timer missed) → renewed, nginx reloaded after `nginx -t`; its renewal
 * configuration naming an ACME account whose key is gone (the timer fails on it) → renewed now, registering a new
 * account; else nothing. On failure what served keeps serving (said) and the step exits 1 with certbot_failure's words.
 */
export function issueCertificate(env: Target, withAcmeCa: boolean, plan?: ReturnType<typeof tlsPlan>, state?: TlsState): Step {
  const domain = env.config.domain!;
  const cert = certificatePaths(env)!;
  const names = certificateNames(env);
  const again = `once the DNS of ${(plan?.missing ?? names).join(', ')} points at this host (A/AAAA records), run ops provision ${env.name} again`;
  // What serves while the certificate is not there, said on failure (certbot_failure's SERVING; shell text in double quotes).
  const left = plan?.keep
    ? `no certificate yet for ${plan.missing.join(', ')}: the site still serves ${plan.keep.serving.join(', ')} as before${state?.site?.cert && state.site.certOk ? ' (https, with its current certificate)' : ''}${plan.keep.pending.length ? `, and answers only the ACME challenge of ${plan.keep.pending.join(', ')} (port 80)` : ''}; ${again}: the site then moves to ${names.join(', ')}`
    : plan && !plan.ready && !state?.site
      ? `no certificate yet for ${names.join(', ')}, and no https site here before to keep serving (a first provision): the site answers on port 80 only (http) until it is issued; ${again}`
      : undefined;
  return {
    name: 'certificate',
    as: 'root',
    timeout: 600,
    script: String.raw`${SYSTEM_FUNCTIONS}
${HOST_LOCK_FUNCTIONS}
${CERT_FUNCTIONS}
cert_bad=$(cert_problem ${quote(cert.cert)} ${quote(cert.key)})
cert_gone=$(renewal_account_gone ${quote(domain)})
cert_force=''
if [ -n "$cert_bad" ]; then
  [ ! -e /etc/letsencrypt/renewal/${quote(`${domain}.conf`)} ] || cert_force=--force-renewal
  cert_run=1
elif [ -n "$cert_gone" ]; then
  echo "the renewal of ${domain} names ACME account $cert_gone, whose key is no longer in /etc/letsencrypt/accounts (the renewal timer fails on it): renewing now, with a new account"
  cert_run=1; cert_force=--force-renewal
elif cert_missing=$(cert_lacks ${quote(cert.cert)} ${certificateNames(env).map(quote).join(' ')}) && [ -n "$cert_missing" ]; then
  echo "the certificate of ${domain} does not name $cert_missing: getting one that names ${certificateNames(env).join(', ')} (certbot --expand; the current one serves until then)"
  cert_run=1
elif cert_extra=$(cert_beyond ${quote(cert.cert)} ${names.map(quote).join(' ')}) && [ -n "$cert_extra" ]; then
  echo "the certificate of ${domain} still names $cert_extra, which the site no longer serves (its renewal would fail once their DNS moves): getting one that names ${names.join(', ')}"
  cert_run=1
elif ! openssl x509 -in ${quote(cert.cert)} -noout -checkend 2592000 >/dev/null; then
  echo "the certificate of ${domain} expires $(openssl x509 -in ${quote(cert.cert)} -noout -enddate | sed 's/^notAfter=//') (the renewal timer did not renew it): renewing now"
  cert_run=1
else cert_run=0; fi
if [ "$cert_run" = 1 ]; then
  if ${left ? 'true' : 'false'}; then cert_left=${quote(left ?? '')}
  elif [ -n "$cert_bad" ]; then cert_left='until then the site answers on port 80 only (http)'; else cert_left="nginx keeps serving the current certificate (it expires $(openssl x509 -in ${quote(cert.cert)} -noout -enddate | sed 's/^notAfter=//'))"; fi
  ${certbotCertonly(env, withAcmeCa, '${cert_force:+"$cert_force"}', '$cert_left')}
  CHANGED=1
  if [ -z "$cert_bad" ]; then
    ${reloadForCertificate(env, domain)}
  fi
fi
item certificate`,
  };
}

/**
 * Why Let's Encrypt (the default ACME server: no tls.acme_server) would refuse an environment's `config`, or undefined:
 * a name of the site (siteNames: the domain, then each alias, said as the field it is) it never issues for (an IP
 * address, a name reserved for examples, example.org and its like, the placeholder `ops env new` writes, or one of a
 * TLD that is never public: .test, .localhost, .local, .internal, .invalid, .example, home.arpa; one with a label of the
 * reserved form "??--" other than "xn--": R-LDH, RFC 5890), or a contact e-mail
 * at a domain reserved for examples (its account is refused). certbot fails on the host then, with a hint about DNS
 * that does not apply.
 */
export function letsEncryptRefusal(config: Pick<Target['config'], 'tls' | 'domain' | 'aliases'>): string | undefined {
  const tls = config.tls;
  if (tls.mode !== 'letsencrypt' || tls.acme_server || !config.domain) return undefined;
  const reserved = (name: string) => /(^|\.)example\.(com|net|org)$/.test(name);
  for (const [i, name] of siteNames({ config }).entries()) {
    const field = i === 0 ? `domain ${name}` : `alias ${name} (aliases[${i - 1}])`;
    const d = name.toLowerCase().replace(/\.$/, '');
    if (isIP(d)) return `${field} is an IP address: Let's Encrypt issues certificates for DNS names`;
    if (reserved(d) || /\.(test|localhost|local|internal|invalid|example|home\.arpa)$/.test(d) || /^(localhost|test|local|internal|invalid|example)$/.test(d))
      return `${field} is reserved (RFC 2606, 6761, 6762) or never public: Let's Encrypt issues no certificate for it`;
    // RFC 5890 section 2.3.1: "??--" labels other than "xn--" (an A-label, checked by the schema) are reserved; Boulder refuses them (errInvalidRLDH)
    const rldh = d.split('.').find((l) => l.slice(2, 4) === '--' && !l.startsWith('xn--'));
    if (rldh) return `${field} has the label ${rldh}, with "--" as its third and fourth characters, a form reserved for encoded international labels (R-LDH, RFC 5890): Let's Encrypt issues no certificate for it`;
  }
  const mailDomain = tls.email?.split('@')[1]?.toLowerCase();
  if (mailDomain && reserved(mailDomain)) return `tls.email ${tls.email} is at a domain reserved for examples: Let's Encrypt refuses such an account contact`;
  return undefined;
}

/**
 * The certificate ops issued for names the site served before (`oldCert`: the ssl_certificate of the site provision
 * replaced, tlsPlan's state), deleted once no file nginx loads names it: certbot's timer would renew it, and fail once
 * the old names' DNS moves. Only a lineage of certbot's (under /etc/letsencrypt/live/) that ops issued (its renewal
 * configuration gets its challenges from the ACME webroot ops serves: webroot_path) and that is not the site's own
 * (`certbot delete --cert-name`, under the host's certbot lock); any other is never touched (ops certs lists those no
 * served name uses), nor this one while `nginx -T` fails (what nginx loads is not known then). Says what it deleted; a deletion certbot refuses is said, and the step still succeeds (the site
 * serves its new names). Needs nothing else: a step of its own. https://eff-certbot.readthedocs.io/en/stable/using.html#deleting-certificates
 */
export function retireCertificate(env: Target, oldCert: string): Step | undefined {
  const lineage = /^\/etc\/letsencrypt\/live\/([A-Za-z0-9._-]+)\/fullchain\.pem$/.exec(oldCert)?.[1];
  const own = certificatePaths(env)!.cert;
  if (!lineage || oldCert === own || lineage.startsWith('.')) return undefined;
  const conf = quote(`/etc/letsencrypt/renewal/${lineage}.conf`);
  const webroot = env.layout.acmeWebroot.replace(/[.]/g, '\\.');
  return {
    name: 'old certificate',
    as: 'root',
    timeout: 300,
    script: String.raw`${SYSTEM_FUNCTIONS}
${HOST_LOCK_FUNCTIONS}
if [ -f ${conf} ] && grep -qE ${quote(`^webroot_path *= *${webroot},?$`)} ${conf} \
  && retire_loaded=$(nginx -T 2>/dev/null) && ! grep -qE ${quote(`^[^#]*ssl_certificate(_key)?[[:space:]]+/etc/letsencrypt/live/${lineage.replace(/[.]/g, '\\.')}/`)} <<< "$retire_loaded"; then
  old_names=$(openssl x509 -in ${quote(oldCert)} -noout -ext subjectAltName 2>/dev/null | grep -oE 'DNS:[^, ]*' | sed 's/^DNS://' | tr '\n' ' ' || true)
  host_lock certbot 300
  if out=$(certbot delete -n --cert-name ${quote(lineage)} 2>&1); then
    echo "deleted the certificate ops had issued for ${'$'}{old_names:-${lineage} }(certbot delete --cert-name ${lineage}): the site no longer serves those names, and its renewal would fail once their DNS moves"
    CHANGED=1
  else
    echo "the certificate ops had issued for ${'$'}{old_names:-${lineage} }(no longer served) could not be deleted; certbot's timer keeps renewing it, and fails once their DNS moves: sudo certbot delete --cert-name ${lineage}. certbot said: $(tail -n 3 <<< "$out" | tr '\n' ' ')"
  fi
  host_unlock certbot
fi
item certificate`,
  };
}
