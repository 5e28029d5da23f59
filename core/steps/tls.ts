// HTTPS: the ACME webroot, dhparams made on the host (the seed downloaded them), a renewal hook that
// reloads nginx (the seed's cron renewed but never reloaded), certbot from Debian (not snap), self-signed mode.
import type { Environment } from '../config/environment.ts';
import { layout } from '../layout.ts';
import type { Step } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { certificatePaths } from './nginx.ts';
import { SYSTEM_FUNCTIONS, putFile } from './script.ts';

const RENEW_HOOK = '/etc/letsencrypt/renewal-hooks/deploy/ops-pipeline-reload-nginx';

export function acmeCaPath(env: Environment): string {
  return `/usr/local/share/ops-pipeline/${env.config.app}-acme-ca.pem`;
}

/**
 * Everything TLS needs before nginx can reference a certificate. `acmeCa` is the content of tls.acme_ca_file
 * (test ACME servers only). Reports `certificate yes|no` for the site rendering that follows.
 */
export function prepareTls(env: Environment, acmeCa?: string): Step {
  const L = layout(env);
  const certs = certificatePaths(env)!;
  const lines = [SYSTEM_FUNCTIONS, `ensure_dir ${quote(L.acmeWebroot)} 0755 root:root`];
  // RFC 7919 ffdhe2048, as Mozilla recommends: named group output by OpenSSL itself, nothing downloaded.
  // Made beside, then renamed: a file cut short (full disk) never reaches nginx.
  lines.push(String.raw`if [ ! -s /etc/nginx/dhparams.pem ]; then
  openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 -out /etc/nginx/.dhparams.new 2>/dev/null \
    || openssl genpkey -genparam -algorithm DH -pkeyopt dh_param:ffdhe2048 -out /etc/nginx/.dhparams.new 2>/dev/null \
    || openssl dhparam -out /etc/nginx/.dhparams.new 2048 2>/dev/null \
    || { rm -f /etc/nginx/.dhparams.new; exit 1; }
  chmod 0644 /etc/nginx/.dhparams.new
  mv -f /etc/nginx/.dhparams.new /etc/nginx/dhparams.pem
  CHANGED=1
fi`);
  if (env.config.tls.mode === 'letsencrypt') {
    lines.push(
      putFile(
        RENEW_HOOK,
        '#!/bin/sh\n# Installed by ops-pipeline: after a renewal, reload nginx so it serves the new certificate (only with a valid config).\nset -e\nnginx -t -q\nif [ -d /run/systemd/system ]; then systemctl reload nginx; else service nginx reload; fi\n',
        '0755',
      ),
    );
    if (acmeCa) {
      lines.push(putFile(acmeCaPath(env), acmeCa));
      // The renewal timer must trust the test ACME server too.
      lines.push(`if [ -d /run/systemd/system ]; then\n  ${putFile('/etc/systemd/system/certbot.service.d/ops-acme-ca.conf', `[Service]\nEnvironment=REQUESTS_CA_BUNDLE=${acmeCaPath(env)}\n`)}\n  systemctl daemon-reload\nfi`);
    }
    lines.push(`if [ -d /run/systemd/system ] && [ -f /lib/systemd/system/certbot.timer ]; then svc_up certbot.timer; fi`);
  } else {
    lines.push(selfSignedCertificate(env));
  }
  lines.push(`ops_report certificate "$([ -s ${quote(certs.cert)} ] && echo yes || echo no)"`, 'item tls');
  return { name: 'tls', as: 'root', timeout: 120, script: lines.join('\n') };
}

/**
 * The self-signed certificate (tls.mode self-signed): made when missing or expiring within 30 days, or
 * always with `force` (ops certs --renew). Sets CHANGED=1 when it made one.
 */
export function selfSignedCertificate(env: Environment, force = false): string {
  const L = layout(env);
  const certs = certificatePaths(env)!;
  const domain = env.config.domain ?? env.config.app;
  const when = force ? 'true' : `[ ! -s ${quote(certs.cert)} ] || ! openssl x509 -in ${quote(certs.cert)} -noout -checkend 2592000 >/dev/null`;
  // Key and certificate made beside the live ones (the key private from creation), then renamed over them.
  return String.raw`if ${when}; then
  install -d -m 0755 ${quote(L.selfSignedDir)}
  if ! (umask 077; openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj ${quote(`/CN=${domain}`)} -addext ${quote(`subjectAltName=DNS:${domain}`)} \
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

/** certbot certonly --webroot, once per domain (a present certificate is left to the renewal timer). */
export function issueCertificate(env: Environment, withAcmeCa: boolean): Step {
  const tls = env.config.tls;
  const domain = env.config.domain!;
  const args = [
    'certbot', 'certonly', '-n', '--agree-tos', '--no-eff-email', '-m', tls.email!, '--webroot', '-w', layout(env).acmeWebroot,
    '-d', domain, '--cert-name', domain, '--no-random-sleep-on-renew',
    ...(tls.acme_server ? ['--server', tls.acme_server] : []),
  ];
  const ca = withAcmeCa ? `REQUESTS_CA_BUNDLE=${quote(acmeCaPath(env))} ` : '';
  return {
    name: 'certificate',
    as: 'root',
    timeout: 300,
    script: `${SYSTEM_FUNCTIONS}
if [ ! -s ${quote(certificatePaths(env)!.cert)} ]; then
  ${ca}timeout 240 ${args.map(quote).join(' ')}
  CHANGED=1
fi
item certificate`,
  };
}
