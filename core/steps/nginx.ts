// nginx: the base configuration, the app's site, the live-slot upstreams, and the one way to apply them:
// write, `nginx -t`, reload gracefully, or put every file back as it was and fail with nginx's message.
import { readFileSync } from 'node:fs';
import type { Target } from '../target.ts';
import { envPath } from '../config/environment.ts';
import { OpsError } from '../errors.ts';
import { isDefaultServer } from '../config/siblings.ts';
import type { Slot } from '../layout.ts';
import type { Step } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { putFile } from './script.ts';
import { HOST_LOCK_FUNCTIONS, SYSTEM_FUNCTIONS } from './libraries.ts';

export interface NginxFile {
  path: string;
  content: string;
}

const HEADER = '# Managed by ops-pipeline: local changes are overwritten.';

/** The base /etc/nginx/nginx.conf (the same for every app on a host). */
export function baseConfig(): string {
  return `${HEADER}
user www-data;
worker_processes auto;
pid /run/nginx.pid;
include /etc/nginx/modules-enabled/*.conf;

events {
    worker_connections 1024;
}

http {
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    # Room for long domain names, several sites per host (the default bucket fits names of ~60 characters).
    server_names_hash_bucket_size 128;
    server_tokens off;

    include /etc/nginx/mime.types;
    default_type application/octet-stream;

    access_log /var/log/nginx/access.log;
    error_log /var/log/nginx/error.log;

    gzip on;
    gzip_vary on;
    gzip_proxied any;
    gzip_comp_level 5;
    gzip_min_length 256;
    gzip_types text/plain text/css text/xml text/javascript application/javascript application/json application/xml application/rss+xml image/svg+xml;

    include /etc/nginx/conf.d/*.conf;
    include /etc/nginx/sites-enabled/*;
}
`;
}

/** Upstreams pointing at one slot's ports, plus `$ops_slot_<app>` so a deploy can see when the reload took effect. */
export function upstreams(env: Target, slot: Slot): string {
  const L = env.layout;
  const blocks = Object.keys(env.config.programs).map(
    (p) => `upstream ${L.nginxUpstream(p)} {\n    server 127.0.0.1:${env.port(p, slot)};\n    keepalive 16;\n}`,
  );
  return `${HEADER}\n# Live slot of ${env.config.app}: ${slot}. Rewritten by each deploy.\n${blocks.join('\n')}\nmap "" $${L.nginxSlotVariable} {\n    default "${slot}";\n}\n`;
}

/** Mozilla's "intermediate" TLS settings (TLS 1.2 + 1.3). */
const TLS_SETTINGS = `ssl_session_timeout 1d;
    ssl_session_cache shared:MozSSL:10m;
    ssl_session_tickets off;
    ssl_dhparam /etc/nginx/dhparams.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305;
    ssl_prefer_server_ciphers off;
    add_header Strict-Transport-Security "max-age=63072000" always;`;

const SECURITY_HEADERS = `add_header X-Frame-Options DENY always;
    add_header X-Content-Type-Options nosniff always;
    add_header X-XSS-Protection "1; mode=block" always;
    add_header Referrer-Policy strict-origin-when-cross-origin always;`;

const PROXY = `proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;`;

/** Where certbot keeps the current certificate of a domain (its lineage is named after the domain: --cert-name). */
export function certbotCertificate(domain: string): { cert: string; key: string } {
  return { cert: `/etc/letsencrypt/live/${domain}/fullchain.pem`, key: `/etc/letsencrypt/live/${domain}/privkey.pem` };
}

/** Certificate paths for the environment's TLS mode. */
export function certificatePaths(env: Target): { cert: string; key: string } | undefined {
  const domain = env.config.domain ?? env.config.app;
  if (env.config.tls.mode === 'letsencrypt') return certbotCertificate(domain);
  if (env.config.tls.mode === 'self-signed') {
    const dir = env.layout.selfSignedDir;
    return { cert: `${dir}/${domain}.crt`, key: `${dir}/${domain}.key` };
  }
  return undefined;
}

/**
 * The variables a site template may use ({{name}}); the built-in templates use the same ones. Several apps
 * share a host's nginx: each site answers for its own `server_name` (its domain), only the default server
 * (nginx.default_server, or an app without a domain, then alone on its host) carries `default_server`, and
 * each logs to its own files.
 */
export function siteVariables(env: Target): Record<string, string> {
  const L = env.layout;
  const app = env.config.app;
  const certs = certificatePaths(env);
  const locations = Object.entries(env.config.routes)
    .sort(([a], [b]) => b.length - a.length)
    .map(([prefix, program]) => {
      // A trailing "/" on proxy_pass replaces the matched prefix: "/api/x" reaches the API as "/x".
      const target = prefix === '/' ? `http://${L.nginxUpstream(program)}` : `http://${L.nginxUpstream(program)}/`;
      return `location ${prefix} {\n        proxy_pass ${target};\n        ${PROXY}\n    }`;
    });
  const root = env.config.routes['/'];
  const favicon = root ? `location = /favicon.ico {\n        access_log off;\n        log_not_found off;\n        proxy_pass http://${L.nginxUpstream(root)};\n    }` : '';
  return {
    app,
    domain: env.config.domain ?? '',
    server_name: env.config.domain ?? '_',
    default_server: isDefaultServer(env) ? ' default_server' : '',
    logs: `access_log ${L.nginxAccessLog};\n    error_log ${L.nginxErrorLog};`,
    upstreams_include: `include ${L.nginxUpstreams};`,
    acme_location: `location ^~ /.well-known/acme-challenge/ {\n        root ${L.acmeWebroot};\n        default_type text/plain;\n    }`,
    slot_location: `location = /.ops/slot {\n        allow 127.0.0.1;\n        allow ::1;\n        deny all;\n        default_type text/plain;\n        return 200 $${L.nginxSlotVariable};\n    }`,
    security_headers: SECURITY_HEADERS,
    tls_settings: TLS_SETTINGS,
    ssl_certificate: certs?.cert ?? '',
    ssl_certificate_key: certs?.key ?? '',
    client_max_body_size: env.config.nginx.client_max_body_size,
    locations: [favicon, ...locations].filter(Boolean).join('\n    '),
  };
}

/** A port-80 server block; `body` is what it serves (the app, or a redirect to https). */
const port80 = (body: string) => `server {
    listen 80{{default_server}};
    listen [::]:80{{default_server}};
    server_name {{server_name}};
    {{logs}}
${body}}
`;

const PLAIN_SITE = `${HEADER}
{{upstreams_include}}

${port80(`    client_max_body_size {{client_max_body_size}};
    {{security_headers}}

    {{acme_location}}
    {{slot_location}}
    {{locations}}
`)}`;

const TLS_SITE = `${HEADER}
{{upstreams_include}}

${port80(`
    {{acme_location}}
    {{slot_location}}
    location / {
        return 301 https://$host$request_uri;
    }
`)}
server {
    listen 443 ssl http2{{default_server}};
    listen [::]:443 ssl http2{{default_server}};
    server_name {{server_name}};
    {{logs}}
    ssl_certificate {{ssl_certificate}};
    ssl_certificate_key {{ssl_certificate_key}};
    {{tls_settings}}
    client_max_body_size {{client_max_body_size}};
    {{security_headers}}

    {{slot_location}}
    {{locations}}
}
`;

/** Before the first certificate exists: only the ACME challenge on port 80 (a 443 block would not load). */
const ACME_ONLY_SITE = `${HEADER}
{{upstreams_include}}

${port80(`
    {{acme_location}}
    {{slot_location}}
    location / {
        return 503;
    }
`)}`;

/**
 * Fill `{{name}}` placeholders of an nginx template from `vars`.
 * @throws OpsError naming the unknown placeholders and `source`.
 */
export function renderTemplate(template: string, vars: Record<string, string>, source: string): string {
  const unknown = new Set<string>();
  const out = template.replace(/\{\{\s*([a-z_]+)\s*\}\}/g, (_, name: string) => {
    if (!(name in vars)) unknown.add(name);
    return vars[name] ?? '';
  });
  if (unknown.size)
    throw new OpsError(`${source} uses unknown placeholder${unknown.size > 1 ? 's' : ''} ${[...unknown].map((u) => `{{${u}}}`).join(', ')}`, `known placeholders: ${Object.keys(vars).map((v) => `{{${v}}}`).join(' ')}`);
  return out;
}

/**
 * The site for the environment. `certificateReady` says whether the TLS certificate exists on the host
 * (letsencrypt: issued yet?). A custom template (nginx.site_template) replaces the built-in one once TLS is ready.
 */
export function site(env: Target, certificateReady: boolean): string {
  const vars = siteVariables(env);
  const tls = env.config.tls.mode !== 'off';
  if (tls && !certificateReady) return renderTemplate(ACME_ONLY_SITE, vars, 'built-in ACME site');
  const custom = env.config.nginx.site_template;
  if (custom) {
    const file = envPath(env, custom);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      throw new OpsError(`cannot read the nginx site template ${file}`, `fix nginx.site_template in environments/${env.name}/environment.yml`);
    }
    return renderTemplate(text, vars, `environments/${env.name}/${custom}`);
  }
  return renderTemplate(tls ? TLS_SITE : PLAIN_SITE, vars, 'built-in site');
}

export interface NginxChange {
  files: NginxFile[];
  /** Files written only when absent (the live-slot upstreams belong to deploys once they exist). */
  initialFiles?: NginxFile[];
  remove?: string[];
  /** [target, link]: symlinks to create (sites-enabled). */
  links?: [string, string][];
  /** Name reported for idempotence ("nginx site"). */
  item: string;
  /** Provision: make sure nginx is enabled at boot and running. Deploys only reload the running server. */
  ensureService?: boolean;
  /**
   * Shell run before nginx's files are touched, in the same step: what `then` needs prepared (a failure here,
   * a full disk say, changes nothing that serves).
   */
  before?: string;
  /** Shell run after a successful reload, in the same step (a deploy's activation). */
  then?: string;
}

/**
 * Apply nginx files atomically as a whole: snapshot /etc/nginx, write, `nginx -t`; when nginx rejects the
 * result, put the snapshot back (nothing reloaded: the previous configuration keeps serving) and fail with
 * nginx's own message. Reloads (graceful) only when something changed, and returns once the new configuration
 * serves; when the running server refuses it (nginx -t passed, a port is taken), the snapshot comes back too and
 * the step fails with nginx's error log: the files on disk stay what serves.
 */
export function applyNginx(change: NginxChange): Step {
  // Under the host's nginx lock: another app's change never interleaves with this one, so the snapshot put
  // back on failure holds exactly the other apps' files as they are.
  const lines: string[] = [SYSTEM_FUNCTIONS, HOST_LOCK_FUNCTIONS, 'host_lock nginx', ...(change.before ? [change.before] : []), 'backup=$(mktemp -d /etc/.ops-nginx.XXXXXX)', 'trap \'rm -rf "$backup"\' EXIT', 'cp -a /etc/nginx "$backup/nginx"', 'nginx_put_back() { rm -rf /etc/nginx; mv "$backup/nginx" /etc/nginx; }'];
  for (const f of change.files) lines.push(putFile(f.path, f.content));
  for (const f of change.initialFiles ?? []) lines.push(`[ -e ${quote(f.path)} ] || ${putFile(f.path, f.content)}`);
  for (const [target, link] of change.links ?? []) lines.push(`[ "$(readlink ${quote(link)} || true)" = ${quote(target)} ] || { ln -sfn ${quote(target)} ${quote(link)}; CHANGED=1; }`);
  for (const r of change.remove ?? []) lines.push(`if [ -e ${quote(r)} ] || [ -L ${quote(r)} ]; then rm -f ${quote(r)}; CHANGED=1; fi`);
  lines.push(String.raw`if [ "$CHANGED" = 1 ]; then
  if ! out=$(nginx -t 2>&1); then
    nginx_put_back
    echo "nginx rejected the new configuration; the previous one is back in place and still serving:" >&2
    echo "$out" >&2
    exit 1
  fi
  nginx_changed=1
else
  nginx_changed=0
fi`);
  if (change.ensureService) lines.push('svc_up nginx');
  // A reload the running server refuses (a port another server holds) leaves it on the previous files: those
  // come back, so what is on disk is what serves.
  lines.push(String.raw`if [ "$nginx_changed" = 1 ]; then
  if ! nginx_reload; then
    nginx_put_back
    echo "the previous nginx files are back in place" >&2
    exit 1
  fi
  CHANGED=1
fi`);
  lines.push('host_unlock nginx', `item ${quote(change.item)}`);
  if (change.then) lines.push(change.then);
  return { name: change.item, as: 'root', timeout: 60, script: lines.join('\n') };
}

/** What provision puts in place: base config, the site, initial upstreams (blue) unless a deploy wrote them. */
export function provisionNginx(env: Target, certificateReady: boolean): Step {
  const L = env.layout;
  return applyNginx({
    item: 'nginx',
    ensureService: true,
    files: [
      { path: '/etc/nginx/nginx.conf', content: baseConfig() },
      { path: L.nginxSite, content: site(env, certificateReady) },
    ],
    initialFiles: [{ path: L.nginxUpstreams, content: upstreams(env, 'blue') }],
    links: [[L.nginxSite, L.nginxSiteEnabled]],
    remove: ['/etc/nginx/sites-enabled/default'],
  });
}
