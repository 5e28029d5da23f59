// nginx's files as text: the base configuration, the app's site (built-in or the environment's template) and
// the live-slot upstreams, with the certificate paths they name. Putting them in place is nginx.ts.
import type { Target } from '../target.ts';
import { NGINX_PATH, assetDirs, readEnvFile, siteNames } from '../config/environment.ts';
import { ACME_CHALLENGE_PREFIX } from '../config/environment-schema.ts';
import { OpsError } from '../errors.ts';
import { quote } from '../shell.ts';
import { isDefaultServer } from '../config/siblings.ts';
import type { Slot } from '../layout.ts';

/**
 * The first line of the nginx files ops writes from the settings (the built-in sites, the upstreams): what tells them
 * ops's. A change made to one on the host is replaced (the site: with a backup, said; putUnlessHostOwn).
 */
export const HEADER = '# Managed by ops-pipeline: local changes are overwritten.';

/**
 * The first line of ops's nginx.conf: what tells it ops's. ops writes it only over its own as it wrote it, so a change
 * made to it on the host is kept (said on every provision; ops's updates to it then stop), which its older header
 * (HEADER) denied.
 */
export const BASE_CONFIG_HEADER = "# Managed by ops-pipeline: a change made here is kept, and said on each provision (ops stops updating this file).";

/**
 * The md5 of each base config an older ops wrote (putUnlessHostOwn's `previous`: a host's nginx.conf equal to one is
 * ops's untouched, replaced; one changed since is the admin's, kept). When changing baseConfig, add the md5 of the one
 * it replaces here. The first: the one whose header was HEADER.
 */
export const BASE_CONFIG_PREVIOUS: readonly string[] = ['5955bed5f9141fdbf08a20b6b97c6fcb', 'fb3f482212f633e3f41ab39733ec101d'];

/** ops's nginx.conf's server_names_hash_bucket_size (bytes): one that holds any DNS name (baseConfig says why). */
export const SERVER_NAMES_BUCKET = 512;

/** The first lines of ops's nginx.conf an older ops wrote (putUnlessHostOwn's `previousFirstLines`). */
export const BASE_CONFIG_PREVIOUS_HEADERS: readonly string[] = [HEADER];

/** The base /etc/nginx/nginx.conf (the same for every app on a host). */
export function baseConfig(): string {
  return `${BASE_CONFIG_HEADER}
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
    # Room for any DNS name (253 characters) in server_name, several sites per host: each name takes a pointer, its
    # length and itself rounded up to 8 bytes in a bucket that ends with a pointer (ngx_hash.c's NGX_HASH_ELT_SIZE), so
    # 272 bytes; the default (the CPU's cache line, 64) fits names of ~46 characters, 128 of 110.
    server_names_hash_bucket_size ${SERVER_NAMES_BUCKET};
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

/**
 * Upstreams pointing at one slot's ports, plus `$ops_slot_<app>` (so a deploy can see when the reload took effect)
 * and `$ops_release_<app>`, the id of the release live on that slot (`release`; '' when none is yet): what a site's
 * cache key carries (cachesKeyed), so that nginx never answers a page the previous release made once the switch's
 * reload is taken up. The upstreams file is included at the http level by every site: one definition for them all.
 */
export function upstreams(env: Target, slot: Slot, release: string): string {
  const L = env.layout;
  const blocks = Object.keys(env.config.programs).map((p) => upstreamBlock(env, p, slot));
  return `${HEADER}\n# Live slot of ${env.config.app}: ${slot}. Rewritten by each deploy.\n${blocks.join('\n')}\nmap "" $${L.nginxSlotVariable} {\n    default "${slot}";\n}\n${releaseMap(env, release)}`;
}

/** The map of upstreams' `$ops_release_<app>` (a release id, or '': the pattern of release ids needs no escaping). */
export function releaseMap(env: Target, release: string): string {
  return `map "" $${env.layout.nginxReleaseVariable} {\n    default "${release}";\n}\n`;
}

/** One program's upstream at one slot's port: what the site's proxy_pass names (`<app>_<program>`). */
export function upstreamBlock(env: Target, program: string, slot: Slot): string {
  return `upstream ${env.layout.nginxUpstream(program)} {\n    server 127.0.0.1:${env.port(program, slot)};\n    keepalive 16;\n}`;
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

/**
 * The request headers nginx sets on what it passes to a program (proxy_set_header; nginx's ngx_http_proxy_module
 * and its embedded variables: $host is the request's Host without its port, lowercased, or the server_name when
 * the request had none) and what the health probe sends in their place, the same request as nginx would pass for
 * a visitor of the site (probeHeaders): apps check these (Django's ALLOWED_HOSTS and SECURE_PROXY_SSL_HEADER,
 * Starlette's TrustedHostMiddleware, uvicorn's --proxy-headers), so a probe without them is answered differently
 * from the site's traffic. Defined once, here, so that the two cannot drift apart.
 */
const FORWARDED: readonly { name: string; nginx: string; probe: (site: { host: string; proto: 'http' | 'https' }) => string | undefined }[] = [
  // No domain: the site answers any name (server_name _), and $host is the name or address a visitor asked for,
  // without its port (nginx's ngx_http_core_module, "Embedded Variables": $host is "in this order of precedence:
  // host name from the request line, or host name from the "Host" request header field, or the server name
  // matching a request", lowercased, no port): the probe sends 127.0.0.1, what nginx passes for a request to
  // http://127.0.0.1/ (a visitor on the host itself, the switch's own look at /.ops/slot), never a program's port,
  // which no visitor's request through nginx carries.
  { name: 'Host', nginx: '$host', probe: (s) => s.host },
  { name: 'X-Real-IP', nginx: '$remote_addr', probe: () => '127.0.0.1' },
  { name: 'X-Forwarded-For', nginx: '$proxy_add_x_forwarded_for', probe: () => '127.0.0.1' },
  { name: 'X-Forwarded-Proto', nginx: '$scheme', probe: (s) => s.proto },
];

/**
 * What each location passes to its program: HTTP/1.1 with an empty Connection header (the upstream's keep-alive
 * connections), except for a WebSocket handshake, whose Upgrade and `Connection: upgrade` are hop-by-hop headers nginx
 * drops unless set (upgradeMap), and the FORWARDED headers.
 */
function proxyHeaders(env: Target): string {
  return ['proxy_http_version 1.1;', 'proxy_set_header Upgrade $http_upgrade;', `proxy_set_header Connection $${env.layout.nginxUpgradeVariable};`, ...FORWARDED.map((h) => `proxy_set_header ${h.name} ${h.nginx};`)].join('\n        ');
}

/**
 * The map behind proxyHeaders' Connection header (at the http level: in the site file, with {{upstreams_include}},
 * which every site that routes to the programs has), named after the app: several sites share a host's nginx.
 */
function upgradeMap(env: Target): string {
  return `map $http_upgrade $${env.layout.nginxUpgradeVariable} {\n    default upgrade;\n    '' '';\n}`;
}

/** The request header marking the switch's own requests through nginx (nginx-gate.ts): each logged by checkLog. */
export const CHECK_HEADER = 'X-Ops-Check';

/**
 * The http-level half of checkLog (in {{upstreams_include}}: log_format and map are http-level directives): the
 * variable that is 1 for a request carrying CHECK_HEADER, and the format of its line, fields split by "|": the
 * header's value (the switch's nonce), $status (what the client got), then nginx's own record of the upstream that
 * answered: $upstream_status, $upstream_addr (each "-" when nginx answered without one: a `return`, a static file, a
 * cache hit; several, ", " or " : " apart, when it tried more than one or redirected internally),
 * $upstream_cache_status. No program can write these: nginx does.
 */
function checkLogFormat(env: Target): string {
  const name = env.layout.nginxCheckName;
  return `map $http_${CHECK_HEADER.toLowerCase().replace(/-/g, '_')} $${name} {\n    default 1;\n    '' 0;\n}\nlog_format ${name} '$http_${CHECK_HEADER.toLowerCase().replace(/-/g, '_')}|$status|$upstream_status|$upstream_addr|$upstream_cache_status';`;
}

/**
 * The server-level half (in {{logs}}, beside the site's access log, which it leaves as it is): the switch's requests
 * alone (`if=`), to layout.nginxCheckLog, so the switch can read which upstream answered what visitors get (nginxGate).
 * A location that sets its own access_log writes no such line: the switch then says it cannot see the answer's origin.
 */
export function checkLog(env: Target): string {
  const L = env.layout;
  return `access_log ${L.nginxCheckLog} ${L.nginxCheckName} if=$${L.nginxCheckName};`;
}

/** A header value the probe may write into its request: a name, an address, a scheme (nothing to break a line). */
const PROBE_VALUE = /^[A-Za-z0-9.:-]+$/;

/** What a probe claims as the site's address when the environment has no domain (FORWARDED's Host: nginx's $host). */
const PROBE_HOST_WITHOUT_DOMAIN = '127.0.0.1';

/**
 * Shell setting what the health probes (core/steps/sh/probe.sh probe_for) send as nginx would for the site's traffic
 * (FORWARDED), to the programs nginx proxies to (PROBE_SITE_PROGRAMS: the environment's routes, as siteVariables
 * writes their locations): PROBE_SITE_HOST (the environment's domain as nginx's $host holds it: lowercased, without
 * the trailing dot of a fully qualified "example.org."; 127.0.0.1 without a domain: see FORWARDED), PROBE_SITE_PROTO
 * (nginx's $scheme for the site ops writes on the host: `site`) and PROBE_SITE_HEADERS (the other header lines, each
 * ending in CR LF). $scheme is https only when the site serves TLS, and ops writes the TLS site only once its
 * certificate is on the host (`site(env, certificateReady)`): until then (a first provision, certbot failing, TLS
 * just turned on) nginx serves the app on plain http and forwards `X-Forwarded-Proto: http`. So the scheme is decided
 * on the host, when the probe runs, by the same test the deploy's state read and the rollback make (the certificate
 * file there and not empty: `[ -s ]`; the steps that probe run as root, who may look into /etc/letsencrypt/live).
 * A program nginx never routes to (an internal API its sibling calls on 127.0.0.1) gets none of them: Host
 * 127.0.0.1:<port>, as its callers send (one trusting that Host only, Django's ALLOWED_HOSTS = ['127.0.0.1'], would
 * refuse the site's).
 * @throws OpsError for a value that is not a DNS name or address (the schema lets none through: a guard).
 */
export function probeHeaders(env: Target): string {
  const cert = certificatePaths(env);
  const host = env.config.domain ?? PROBE_HOST_WITHOUT_DOMAIN;
  /** The assignments of PROBE_SITE_PROTO and PROBE_SITE_HEADERS for a site served with `proto`. */
  const sent = (proto: 'http' | 'https') => {
    const lines: string[] = [];
    for (const h of FORWARDED) {
      const value = h.probe({ host, proto });
      if (value !== undefined && !PROBE_VALUE.test(value))
        throw new OpsError(`the health probe's ${h.name} header would be ${JSON.stringify(value)}, not a DNS name or address`, `fix domain in environments/${env.name}/environment.yml`);
      if (h.name !== 'Host' && value !== undefined) lines.push(`${h.name}: ${value}\\r\\n`);
    }
    return `PROBE_SITE_PROTO=${proto} PROBE_SITE_HEADERS=$'${lines.join('')}'`;
  };
  const routed = [...new Set(Object.values(env.config.routes))].sort();
  const common = `PROBE_SITE_HOST=${quote(host)} PROBE_SITE_PROGRAMS=${quote(` ${routed.join(' ')} `)}`;
  if (!cert) return `${common} ${sent('http')}`;
  return `${common}\n# nginx serves the site over TLS once its certificate is there (site(): plain http until then); its $scheme, forwarded.\nif [ -s ${quote(cert.cert)} ]; then ${sent('https')}; else ${sent('http')}; fi`;
}

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
 * The names the site's certificate must name, the one its lineage and files are named after first: the site's names
 * (siteNames: the domain, then the aliases, served by the same certificate: aliasServers), or, for a self-signed
 * certificate without a domain, the app name.
 */
export function certificateNames(env: Target): string[] {
  const names = siteNames(env);
  return names.length ? names : [env.config.app];
}

/**
 * The environment as its site can be served now over TLS: without the aliases its certificate does not name yet
 * (`lacks`: cert_lacks's names, lower case), so that every name nginx serves on 443 is one the certificate in use
 * covers. Such an alias (added since the certificate was issued: a provision adding it failed, or has not run) gets
 * no server block of the site until `ops provision` issues its certificate (only provision's ACME challenge server,
 * layout.nginxAcmePending, when provision wrote one). `env` itself when nothing is left out. The domain is not
 * judged here: a certificate not naming it is no certificate of the site (the deploy refuses, refuseUnready).
 */
export function coveredTarget(env: Target, lacks: readonly string[]): Target {
  const missing = new Set(lacks.map((n) => n.toLowerCase().replace(/\.$/, '')));
  const aliases = env.config.aliases.filter((a) => !missing.has(a.toLowerCase().replace(/\.$/, '')));
  return aliases.length === env.config.aliases.length ? env : { ...env, config: { ...env.config, aliases } };
}

/** The aliases of the site its certificate does not name yet (`lacks`, as coveredTarget reads it), in the settings' order. */
export function pendingAliases(env: Target, lacks: readonly string[]): string[] {
  const kept = new Set(coveredTarget(env, lacks).config.aliases);
  return env.config.aliases.filter((a) => !kept.has(a));
}

/**
 * Whether nginx passes requests of `prefix` (a key of routes) on without it: every route but "/", unless its program
 * sets strip_prefix: false (it routes full paths). One rule for the site's locations, the assets' fallback and the
 * switch's health paths (gatePaths).
 */
export function stripsPrefix(env: Target, prefix: string): boolean {
  const program = env.config.routes[prefix];
  return prefix !== '/' && (program === undefined || env.config.programs[program]?.strip_prefix !== false);
}

/**
 * The variables a site template may use ({{name}}); the built-in templates use the same ones. Several apps
 * share a host's nginx: each site answers for its own `server_name` (its domain), only the default server
 * (nginx.default_server, or an app without a domain, then alone on its host) carries `default_server`, and
 * each logs to its own files.
 */
export function siteVariables(env: Target, tlsReady = env.config.tls.mode !== 'off'): Record<string, string> {
  const L = env.layout;
  const app = env.config.app;
  const certs = certificatePaths(env);
  const locations = Object.entries(env.config.routes)
    .sort(([a], [b]) => b.length - a.length)
    .map(([prefix, program]) => {
      // A trailing "/" on proxy_pass replaces the matched prefix: "/api/x" reaches the API as "/x"; without it
      // (strip_prefix false) nginx passes the URI as the visitor sent it.
      const target = stripsPrefix(env, prefix) ? `http://${L.nginxUpstream(program)}/` : `http://${L.nginxUpstream(program)}`;
      return `location ${prefix} {\n        proxy_pass ${target};\n        ${proxyHeaders(env)}\n    }`;
    });
  const root = env.config.routes['/'];
  const assets = assetLocations(env);
  const favicon = root ? `location = /favicon.ico {\n        access_log off;\n        log_not_found off;\n        proxy_pass http://${L.nginxUpstream(root)};\n    }` : '';
  return {
    app,
    domain: env.config.domain ?? '',
    server_name: env.config.domain ?? '_',
    default_server: isDefaultServer(env) ? ' default_server' : '',
    logs: `access_log ${L.nginxAccessLog};\n    error_log ${L.nginxErrorLog};\n    ${checkLog(env)}`,
    upstreams_include: `include ${L.nginxUpstreams};\n${upgradeMap(env)}\n${checkLogFormat(env)}`,
    acme_location: acmeLocation(env),
    // Local clients only: `return` runs in the rewrite phase, before allow/deny (the access phase) would, so the
    // refusal is a rewrite-phase `if` before it (ngx_http_rewrite_module: its directives run in their order).
    // Answered to the host itself only: a request from one of its addresses to that same address (127.0.0.1, ::1, or
    // the address its visitors reach, where the switch looks: visitorAddress).
    slot_location: `location = /.ops/slot {\n        default_type text/plain;\n        if ($remote_addr != $server_addr) {\n            return 403;\n        }\n        return 200 $${L.nginxSlotVariable};\n    }`,
    security_headers: SECURITY_HEADERS,
    tls_settings: TLS_SETTINGS,
    ssl_certificate: certs?.cert ?? '',
    ssl_certificate_key: certs?.key ?? '',
    client_max_body_size: env.config.nginx.client_max_body_size,
    locations: [favicon, ...assets, ...locations].filter(Boolean).join('\n    '),
    // No route for "/": the paths no route takes answer 404, not nginx's own root (/usr/share/nginx/html: Debian's
    // "Welcome to nginx!" page under the app's name). Apart from {{locations}}: a custom template may serve "/" itself.
    // On its own line when there is one; nothing at all otherwise (the site's text as it was: no rewrite, no reload).
    unrouted_location: root ? '' : '\n    location / {\n        return 404;\n    }',
    alias_servers: aliasServers(env, tlsReady, certs),
  };
}

/** certbot's HTTP-01 challenge files, served from the ACME webroot (the site's port-80 server, and its aliases'). */
function acmeLocation(env: Target): string {
  return `location ^~ ${ACME_CHALLENGE_PREFIX} {\n        root ${env.layout.acmeWebroot};\n        default_type text/plain;\n    }`;
}

/**
 * The port-80 server answering the ACME HTTP-01 challenge (from the webroot, as the site does) for `names`, names the
 * site does not serve yet: while their certificate is not issued, the site keeps serving its current names (and
 * certificate), and these get the challenge only (every other path 404). Written by provision beside the site
 * (layout.nginxAcmePending), removed once the site serves them.
 */
export function acmePendingSite(env: Target, names: string[]): string {
  const L = env.layout;
  return `${HEADER}
# The ACME HTTP-01 challenge of ${names.join(', ')}, names of ${env.config.app} not served yet: their certificate is not issued.
server {
    listen 80;
    listen [::]:80;
    server_name ${names.join(' ')};
    access_log ${L.nginxAccessLog};
    error_log ${L.nginxErrorLog};

    ${acmeLocation(env)}
    location / {
        return 404;
    }
}
`;
}

/**
 * The server blocks of the site's aliases (`aliases`): each name redirected permanently (301) to the domain, the
 * path and query kept ($request_uri), to https://<domain> when `tlsReady` (the certificate is there: port 80 and 443
 * both answer the aliases, with the site's certificate, which names them: certbot -d each), else to http://<domain>.
 * Port 80 keeps the ACME challenge path (the HTTP-01 validation of each alias). No default_server: the aliases are
 * names of their own. '' without aliases (the site's text as it was).
 */
function aliasServers(env: Target, tlsReady: boolean, certs: { cert: string; key: string } | undefined): string {
  const { aliases, domain } = env.config;
  if (!aliases.length || !domain) return '';
  const names = aliases.join(' ');
  const https = tlsReady && certs !== undefined;
  const redirect = `location / {\n        return 301 ${https ? 'https' : 'http'}://${domain}$request_uri;\n    }`;
  const L = env.layout;
  const logs = `access_log ${L.nginxAccessLog};\n    error_log ${L.nginxErrorLog};`;
  const plain = `\n# The site's aliases, redirected to ${domain}.\nserver {\n    listen 80;\n    listen [::]:80;\n    server_name ${names};\n    ${logs}\n\n    ${acmeLocation(env)}\n    ${redirect}\n}\n`;
  if (!https) return plain;
  return `${plain}server {\n    listen 443 ssl http2;\n    listen [::]:443 ssl http2;\n    server_name ${names};\n    ${logs}\n    ssl_certificate ${certs.cert};\n    ssl_certificate_key ${certs.key};\n    ${TLS_SETTINGS}\n\n    ${redirect}\n}\n`;
}

/**
 * The locations serving release.asset_dirs' { dir, url } from disk (layout.assets, which the switch fills): a file
 * under the URL is the live release's (`current`), else that of the release a rollout under way is about to switch
 * this host to (`next`, switch.ts stageAssets: a page of a host switched before this one asks for its assets), else
 * that of the release live before it (`previous`: a page it served may still be open, after a deploy or a rollback),
 * else the app's answer (the program its route sends the URL to). The live release's file first: a name never means
 * another file than the live release's. The same text for every release. Regex locations (checked before the routes' prefix ones): no part of the path
 * starting with "." (dotfiles, `..`), the captured rest looked up under the declared directory only, no symbolic link
 * followed (one in the build's output could name any file).
 * Content-hashed names never change content: cached for good (`expires max`, which, unlike add_header, keeps the
 * server's headers).
 */
function assetLocations(env: Target): string[] {
  const L = env.layout;
  const prefixes = Object.keys(env.config.routes).sort((a, b) => b.length - a.length);
  const served = assetDirs(env.config).some((a) => a.url);
  // base_dir may hold what nginx would read as syntax or a variable (a space, a quote, "$"): the config refuses it (a guard).
  if (served && !NGINX_PATH.test(L.base))
    throw new OpsError(`nginx cannot serve release.asset_dirs from base_dir ${JSON.stringify(L.base)}: only letters, digits, ".", "_", "-" and "/" can be written into its site`, `give release.asset_dirs without url, or another base_dir, in environments/${env.name}/environment.yml`);
  return assetDirs(env.config).flatMap((a, i) => {
    if (!a.url) return [];
    if (!SERVED_ASSET.test(a.dir) || !SERVED_URL.test(a.url)) throw new OpsError(`release.asset_dirs[${i}] cannot be written into the nginx site: ${JSON.stringify(a)}`, `fix release.asset_dirs in environments/${env.name}/environment.yml`);
    const fallback = `@${L.nginxUpstream('assets')}_${i}`;
    const prefix = prefixes.find((p) => a.url!.startsWith(p));
    const program = prefix === undefined ? undefined : env.config.routes[prefix];
    // A route that strips its prefix (siteVariables' locations): so does the fallback, by rewrite.
    const app = program
      ? `location ${fallback} {\n        ${!stripsPrefix(env, prefix!) ? '' : `rewrite ^${escapeRegex(prefix!)}(.*)$ /$1 break;\n        `}proxy_pass http://${L.nginxUpstream(program)};\n        ${proxyHeaders(env)}\n    }`
      : `location ${fallback} {\n        return 404;\n    }`;
    const from = (release: string) => `/${release}/${a.dir}/$1`;
    return [
      `location ~ ^${escapeRegex(a.url)}(?!(?:.*/)?\\.)(.+)$ {\n        root ${L.assets};\n        disable_symlinks on;\n        expires max;\n        try_files ${from('current')} ${from('next')} ${from('previous')} ${fallback};\n    }`,
      app,
    ];
  });
}

/** What release.asset_dirs' schema lets through for { dir, url } (checked again here: written into nginx unquoted). */
const SERVED_ASSET = /^(?!\/)(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;
const SERVED_URL = /^\/([A-Za-z0-9_-][A-Za-z0-9._-]*\/)+$/;

/** A URL path as a PCRE matching it literally (its "." the only metacharacter SERVED_URL lets through). */
function escapeRegex(path: string): string {
  return path.replace(/[.]/g, '\\.');
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
    {{locations}}{{unrouted_location}}
`)}{{alias_servers}}`;

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
    {{locations}}{{unrouted_location}}
}
{{alias_servers}}`;

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

/** {{upstreams_include}} in a template (checkLogFormat is there). */
const UPSTREAMS_PLACEHOLDER = /\{\{\s*upstreams_include\s*\}\}/;

/** {{slot_location}} in a template: what tells whether a site answers /.ops/slot. */
const SLOT_PLACEHOLDER = /\{\{\s*slot_location\s*\}\}/;

/**
 * Whether site(env, certificateReady) answers /.ops/slot (the built-in templates do; a custom one when it holds
 * {{slot_location}}): then a switch must see its new slot there.
 * @throws OpsError when the custom template cannot be read, or names a slot's port (slotPortFree).
 */
export function siteServesSlot(env: Target, certificateReady: boolean): boolean {
  if (env.config.tls.mode !== 'off' && !certificateReady) return true;
  const custom = env.config.nginx.site_template;
  return custom ? SLOT_PLACEHOLDER.test(readTemplate(env, custom)) : true;
}

function readTemplate(env: Target, custom: string): string {
  const source = `environments/${env.name}/${custom}`;
  return cachesKeyed(env, slotPortFree(env, readEnvFile(env, 'nginx.site_template', custom, 'an nginx site template'), source), source);
}

/** nginx's response caches in front of an upstream (their modules' `<kind>_cache` and `<kind>_cache_key`). */
const CACHE_KINDS = ['proxy', 'fastcgi', 'uwsgi', 'scgi'] as const;

/** nginx's default key of each (its module's `<kind>_cache_key` default): none names the release. */
const DEFAULT_CACHE_KEY: Record<(typeof CACHE_KINDS)[number], string> = { proxy: '$scheme$proxy_host$request_uri', fastcgi: '$scheme$request_method$host$request_uri', uwsgi: '$scheme$request_method$host$request_uri', scgi: '$scheme$request_method$host$request_uri' };

/**
 * `template` as it is, once checked that every response cache it turns on (`proxy_cache <zone>`, and fastcgi_,
 * uwsgi_, scgi_cache: not `off`) is keyed by the live release: each `<kind>_cache_key` of the template names
 * `$ops_release_<app>` (the upstreams file's: upstreams), and there is one. nginx's default key
 * ($scheme$proxy_host$request_uri for proxy_cache, ngx_http_proxy_module) names the upstream, the same for both slots
 * (the switch moves its server), so after a switch nginx goes on answering the pages the previous release made, for
 * the cache's lifetime, while the deploy (its check through nginx bypasses the cache), a rollback and `ops status` say
 * the new release is live. Keyed by the release, a switch's reload makes every page a new entry: a rollback's too.
 * Comments (`#` to the end of a line) aside; one directive per line, as nginx files are written. `source`: the
 * template's path, for the message.
 * @throws OpsError naming each such line and the key to write.
 */
function cachesKeyed(env: Target, template: string, source: string): string {
  const variable = `$${env.layout.nginxReleaseVariable}`;
  const lines = template.split('\n').map((line) => line.replace(/#.*/, ''));
  const found: string[] = [];
  const fixes: string[] = [];
  for (const kind of CACHE_KINDS) {
    const on = lines.flatMap((line, i) => (new RegExp(`(^|[;{\\s])${kind}_cache\\s+(?!off\\s*;)[^\\s;]`).test(line) ? [i] : []));
    if (!on.length) continue;
    const keys = lines.flatMap((line, i) => (new RegExp(`(^|[;{\\s])${kind}_cache_key\\s`).test(line) ? [i] : []));
    const unkeyed = keys.filter((i) => !lines[i]!.includes(variable));
    if (keys.length && !unkeyed.length) continue;
    const shown = (i: number) => `line ${i + 1}: ${lines[i]!.trim()}`;
    found.push(...(keys.length ? unkeyed.map(shown) : on.map((i) => `${shown(i)} (under nginx's default key, ${DEFAULT_CACHE_KEY[kind]})`)));
    fixes.push(`${kind}_cache_key ${keys.length ? '<its key>' : DEFAULT_CACHE_KEY[kind]}${variable};`);
  }
  if (!found.length) return template;
  throw new OpsError(
    `${source} caches the release's answers under a key that does not name the live release, ${found.join('; ')}: the key is the same before and after a switch, so nginx would go on answering the previous release's pages for the cache's lifetime while the deploy said the new one was live`,
    `key the cache by the live release, which the switch sets in ${variable}: ${fixes.join(' ')} (a rollback then serves its own pages too)`,
  );
}

/** An address of this host and a port as a site template may write it: 127.0.0.1:5100, localhost:5100, [::1]:5100, 0.0.0.0:5100. */
const LOCAL_ADDRESS = /(?<![\w.-])(127(?:\.\d{1,3}){3}|localhost|0\.0\.0\.0|\[::1?\]):(\d{1,5})(?!\d)/gi;

/** Which program and slot each port of the environment's slots is ("program server's port on slot blue"). */
function slotPortOwners(env: Target): Map<number, string> {
  const owners = new Map<number, string>();
  for (const program of Object.keys(env.config.programs))
    for (const slot of ['blue', 'green'] as const) if (!owners.has(env.port(program, slot))) owners.set(env.port(program, slot), `program ${program}'s port on slot ${slot}`);
  return owners;
}

/** Each address of this host with a slot's port in `line` (its comment, `#` on, aside), with whose port it is. */
function slotPortsIn(owners: Map<number, string>, line: string): string[] {
  return [...line.replace(/#.*/, '').matchAll(LOCAL_ADDRESS)].flatMap((m) => (owners.has(Number(m[2])) ? [`${m[0]} (${owners.get(Number(m[2]))})`] : []));
}

/** Why naming a slot's port in nginx serves the previous release (slotPortFree, slotPortsElsewhere). */
const SLOT_PORT_WHY = 'nginx would reach that slot whatever the switch does (it moves traffic by the upstreams file), so every other deploy would go live there while the previous release, kept warm on that slot, goes on serving';

/** The upstreams' names, as the fix of a file that names a slot's port. */
function upstreamNames(env: Target): string {
  return Object.keys(env.config.programs).map((p) => `http://${env.layout.nginxUpstream(p)}`).join(', ');
}

/**
 * `template` as it is, once checked that no line of it (its comments, `#` to the end of a line, aside) names a port a
 * program of the environment listens on in a slot at an address of this host (`proxy_pass http://127.0.0.1:8000;`, an
 * `upstream` block of its own with `server localhost:8001;`): such a site reaches that one slot whatever the switch
 * does (the switch moves traffic by rewriting the upstreams file, `{{upstreams_include}}`, which `proxy_pass
 * http://<app>_<program>` names), so after every other deploy nginx serves the previous release, kept warm on that
 * slot, while the deploy, its gate (a 2xx through nginx) and `ops status` say the new one is live. `source`: the
 * template's path, for the message.
 * @throws OpsError naming each such line, the address, whose port it is, and the fix (the upstream's name, or
 * `{{locations}}`).
 */
function slotPortFree(env: Target, template: string, source: string): string {
  const owners = slotPortOwners(env);
  const found = template.split('\n').flatMap((line, i) => slotPortsIn(owners, line).map((x) => `line ${i + 1}: ${x}`));
  if (!found.length) return template;
  throw new OpsError(
    `${source} sends requests to a slot's port itself, ${found.join('; ')}: ${SLOT_PORT_WHY}`,
    `name the upstreams instead (proxy_pass ${upstreamNames(env)}; with {{upstreams_include}} at the top level), or write {{locations}} for the routes`,
  );
}

/**
 * Shell (a deploy's state read, as root) setting `nginx_pinned` to the lines of nginx's configuration (`nginx -T`: every
 * file it reads, each after its "# configuration file <path>:" line) outside the app's own site and upstreams files
 * that names an address of this host with a port of the environment's slots (a `listen` aside: who listens there is
 * the ports' check), as `<path>:<line>: <text>`: another site of the host (one made by hand for an API's own
 * hostname, a monitoring vhost, a snippet an include brings in) reaching one slot whatever the switch does
 * (slotPortFree's reason). Lines only: slotPortsElsewhere judges them. Silent when nginx -T fails (nginx -t's report
 * says why). `dump`: the shell command printing nginx -T's output (its own run by default; a read that already ran it
 * passes its output on, so nginx parses its files once). The caller reports each line under its own key
 * (report-keys.test: each key written where it is emitted).
 */
export function slotPortLinesShell(env: Target, dump = 'nginx -T 2>/dev/null'): string {
  const L = env.layout;
  const ports = [...slotPortOwners(env).keys()].join('|');
  // ERE for awk (mawk's too): LOCAL_ADDRESS's addresses, then one of the ports not followed by a digit. Brackets, not
  // backslashes: awk -v reads escapes in the value.
  const re = `(^|[^0-9A-Za-z_.-])(127[.][0-9.]+|[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt]|0[.]0[.]0[.]0|[[]::1?[]]):(${ports})([^0-9]|$)`;
  // Into a variable first (steps run with pipefail): nginx -T failing leaves it empty; awk stops printing at 20 lines.
  return String.raw`nginx_pinned=$(${dump} | awk -v own1=${quote(L.nginxSiteEnabled)} -v own2=${quote(L.nginxSite)} -v own3=${quote(L.nginxUpstreams)} -v re=${quote(re)} '
/^# configuration file .*:$/ { f = substr($0, 22, length($0) - 22); n = 0; next }
{ n++; t = $0; sub(/#.*/, "", t) }
f != "" && f != own1 && f != own2 && f != own3 && t !~ /^[ 	]*listen[ 	]/ && t ~ re && shown++ < 20 { print f ":" n ": " $0 }
') || nginx_pinned=""`;
}

/**
 * From slotPortLinesShell's lines (`<path>:<line>: <text>`), the error for another nginx file that names a slot's port
 * (slotPortFree's reason), each line with the address and whose port it is; undefined when none does. `host` names
 * the host, `untouched` what the refusal left undone.
 */
export function slotPortsElsewhere(env: Target, host: string, lines: string[], untouched: string, again = 'deploy again'): OpsError | undefined {
  const owners = slotPortOwners(env);
  const found = lines.flatMap((l) => {
    const m = /^(\/[^:]*):(\d+): (.*)$/.exec(l);
    return m ? slotPortsIn(owners, m[3]!).map((x) => `${m[1]}:${m[2]}: ${x}`) : [];
  });
  if (!found.length) return undefined;
  const files = [...new Set(found.map((f) => f.replace(/:\d+: .*$/, '')))];
  return new OpsError(
    `nginx on ${host} reads ${files.length > 1 ? 'files' : 'a file'} besides ${env.config.app}'s site that send${files.length > 1 ? '' : 's'} requests to a slot's port itself, ${found.join('; ')}: ${SLOT_PORT_WHY}; ${untouched}`,
    `name the upstreams instead in ${files.join(', ')} (proxy_pass ${upstreamNames(env)}: the site's upstreams file defines them for every file nginx reads), or remove what is no longer used; then ${again}`,
  );
}

/**
 * Shell (a state read, as root: a deploy's, a rollback's, status's) setting `nginx_cached` to the response caches of
 * nginx's configuration (`nginx -T`) that the app's site answers through and its own files do not turn on: a
 * `proxy_cache` at the http level (in the main file's `http { }` block, or at the top of a file included there:
 * conf.d/*.conf, as an admin adds a micro-cache for every site), which every server block inherits
 * (ngx_http_proxy_module: proxy_cache's context is http, server, location), or one in a file included from within
 * the site's own server blocks (a snippet), with the `proxy_cache_key` lines of those files. The app's site passes its
 * requests with proxy_pass under that cache, keyed by nginx's default ($scheme$proxy_host$request_uri: the same for
 * both slots), so after a switch nginx answers the previous release's pages for the cache's lifetime. Empty when none
 * refuses (cachesInherited's rule, judged here from the one read so that a one-host rollback's lock step refuses on it
 * too): every key for the site names the live release ($ops_release_<app>, at the http level or in the site's server
 * blocks), or the site template sets proxy_cache itself (siteTemplateCaches: its own, which cachesKeyed judges,
 * replaces an inherited one).
 * Read as nginx parses (ngx_conf_file.c, ngx_conf_read_token): a directive ends at `;`, a block opens at `{` (not
 * `${`) and closes at `}`, on any line; `#` starts a comment where a word would start; quoted words ("..." and '...',
 * with backslash escapes) hold any of these. Which files are included where is read from the include directives
 * (globs, relative to the main file's directory), in the order nginx -T prints the files (an include's files after
 * the file including them). As `<path>:<line>: <directive>;` (the line it starts on), a `proxy_cache` from a snippet
 * the site's server blocks include followed by IN_SITE; 20 at most; silent when nginx -T fails. `dump` as
 * slotPortLinesShell's.
 */
export function inheritedCacheLinesShell(env: Target, dump = 'nginx -T 2>/dev/null'): string {
  const L = env.layout;
  return String.raw`nginx_cached=$(${dump} | awk -v own1=${quote(L.nginxSiteEnabled)} -v own2=${quote(L.nginxSite)} -v own3=${quote(L.nginxUpstreams)} -v var=${quote(L.nginxReleaseVariable)} -v site_cache=${siteTemplateCaches(env) ? 1 : 0} '
function at_include(p,  i) { for (i = 1; i <= np; i++) if (p ~ pats[i]) return i; return 0 }
function word_end() { if (tok != "" || quoted) { w[++nw] = tok; if (nw == 1) sl = n } tok = ""; quoted = 0 }
function directive(  name, i, txt, ctx, mine) {
  if (!nw) return
  name = w[1]; ctx = stack[d]; mine = ours[d]
  if (name == "include" && nw == 2) {
    g = w[2]; if (substr(g, 1, 1) == "\"" || substr(g, 1, 1) == "\047") g = substr(g, 2, length(g) - 2)
    if (g !~ /^\//) g = dir g
    gsub(/[.]/, "[.]", g); gsub(/[*]/, "[^/]*", g); gsub(/[?]/, "[^/]", g)
    pats[++np] = "^" g "$"; pctx[np] = ctx; pours[np] = mine
  }
  if (name == "proxy_cache" || name == "proxy_cache_key") {
    txt = w[1]; for (i = 2; i <= nw; i++) txt = txt " " w[i]; txt = txt ";"
    own = (f == own1 || f == own2 || f == own3)
    if ((ctx == "http" && !own) || (mine && !own && ctx != "http")) {
      if (name == "proxy_cache" && w[2] != "off") { on[++non] = f ":" sl ": " txt (ctx == "http" ? "" : " @in-site"); if (ctx == "http") inherited++ }
      if (name == "proxy_cache_key") { keys[++nk] = f ":" sl ": " txt; if (index(txt, "$" var) == 0 && index(txt, "${" var "}") == 0) unkeyed++ }
    } else if (name == "proxy_cache_key" && (ctx == "http" || mine)) {
      nk_own++; if (index(txt, "$" var) == 0 && index(txt, "${" var "}") == 0) unkeyed++
    }
  }
  nw = 0
}
/^# configuration file .*:$/ {
  f = substr($0, 22, length($0) - 22); n = 0; tok = ""; quoted = 0; nw = 0
  if (main == "") { main = f; dir = f; sub(/[^\/]*$/, "", dir); d = 0; stack[0] = ""; ours[0] = 0 }
  else { i = at_include(f); d = 0; stack[0] = i ? pctx[i] : "?"; ours[0] = i ? pours[i] : 0 }
  next
}
{
  n++; line = $0; len = length(line)
  for (c = 1; c <= len; c++) {
    ch = substr(line, c, 1)
    if (q != "") { tok = tok ch; if (ch == "\\") { c++; tok = tok substr(line, c, 1) } else if (ch == q) q = ""; continue }
    if (ch == " " || ch == "\t" || ch == "\r") { word_end(); continue }
    if (ch == "#" && tok == "" && !quoted) break
    if (ch == ";") { word_end(); directive(); continue }
    if (ch == "{" && substr(tok, length(tok)) != "$") {
      word_end(); b = (nw ? w[1] : "?"); d++
      stack[d] = stack[d - 1] == "" ? b : stack[d - 1] " " b
      ours[d] = ours[d - 1] || (b == "server" && (f == own1 || f == own2))
      nw = 0; continue
    }
    if (ch == "}") { word_end(); nw = 0; if (d > 0) d--; continue }
    if ((ch == "\"" || ch == "\047") && tok == "") { q = ch; tok = ch; quoted = 1; continue }
    tok = tok ch
  }
  if (q != "") tok = tok "\n"; else word_end()
}
END {
  if (!non) exit
  if (inherited == non && site_cache) exit
  if ((nk + nk_own) && !unkeyed) exit
  for (i = 1; i <= non && shown < 20; i++) { print on[i]; shown++ }
  for (i = 1; i <= nk && shown < 20; i++) { print keys[i]; shown++ }
}
') || nginx_cached=""`;
}

/**
 * Whether the environment's custom site template turns on proxy_cache itself (outside comments). A template that
 * cannot be read counts as none: status still reads the host, and a deploy refuses it when it renders the site.
 */
function siteTemplateCaches(env: Target): boolean {
  const custom = env.config.nginx.site_template;
  if (!custom) return false;
  let text: string;
  try {
    text = readEnvFile(env, 'nginx.site_template', custom, 'an nginx site template');
  } catch {
    return false;
  }
  return /(^|[;{\s])proxy_cache\s/m.test(text.replace(/#.*/g, ''));
}

/** What ends inheritedCacheLinesShell's line for a `proxy_cache` in a snippet included from the site's server blocks. */
const IN_SITE = ' @in-site';

/**
 * From inheritedCacheLinesShell's lines (the read's verdict: a cache the site answers through from a file it does not
 * write, under a key that does not name the live release), the error saying so (cachesKeyed's reason); undefined when
 * they turn on no cache. `host` names the host, `untouched` what the refusal left undone.
 */
export function cachesInherited(env: Target, host: string, lines: string[], untouched: string, again = 'deploy again'): OpsError | undefined {
  const variable = `$${env.layout.nginxReleaseVariable}`;
  const text = (l: string) => l.replace(/^\/[^:]*:\d+: /, '');
  const on = lines.filter((l) => /^proxy_cache\s/.test(text(l)));
  if (!on.length) return undefined;
  const keys = lines.filter((l) => /^proxy_cache_key\s/.test(text(l)));
  const files = [...new Set(on.map((l) => l.replace(/:\d+: .*$/, '')))];
  // Only from snippets the site's own server blocks include: no other site is concerned, and moving it is no fix.
  const inSite = on.every((l) => l.endsWith(IN_SITE));
  const shown = [...on, ...keys].map((l) => (l.endsWith(IN_SITE) ? l.slice(0, -IN_SITE.length) : l).replace(/\s+/g, ' ').trim()).join('; ');
  const where = inSite ? `${env.config.app}'s site includes ${files.join(', ')}, which caches its answers (${shown})` : `nginx on ${host} caches every site's answers, ${env.config.app}'s too, from ${files.join(', ')} (${shown})`;
  const fix = inSite ? `take that include out of ${env.config.app}'s site template (nginx refuses a second proxy_cache beside it)` : `move proxy_cache into the server blocks that want it (or write proxy_cache off; in ${env.config.app}'s site template)`;
  return new OpsError(
    `${where}, under a key that does not name the live release: the key is the same before and after a switch, so nginx would go on answering the previous release's pages for the cache's lifetime while the deploy said the new one was live${inSite ? ` (on ${host})` : ''}; ${untouched}`,
    `${fix}, or key it by the live release, which the switch sets: proxy_cache_key $scheme$proxy_host$request_uri${variable}; with proxy_cache_bypass $http_x_ops_check; proxy_no_cache $http_x_ops_check; then ${again}`,
  );
}

/**
 * The site for the environment. `certificateReady` says whether the TLS certificate exists on the host
 * (letsencrypt: issued yet?). Until it does (a first provision, TLS just turned on, a new domain), the site is
 * the plain port-80 one, which answers the ACME challenge and keeps serving the app: a site that served goes on
 * serving while certbot runs, and when certbot fails (the name not yet resolving to the host, say). A custom
 * template (nginx.site_template) replaces the built-in one once TLS is ready.
 */
export function site(env: Target, certificateReady: boolean): string {
  const tls = env.config.tls.mode !== 'off';
  const vars = siteVariables(env, tls && certificateReady);
  if (tls && !certificateReady) return renderTemplate(PLAIN_SITE, vars, 'built-in site');
  const custom = env.config.nginx.site_template;
  if (custom) {
    const text = readTemplate(env, custom);
    // The aliases would not be answered (another site's, or the default server's, names), yet be certified.
    if (env.config.aliases.length && !/\{\{\s*alias_servers\s*\}\}/.test(text))
      throw new OpsError(
        `environments/${env.name}/${custom} has no {{alias_servers}}, so nginx would not answer the aliases (${env.config.aliases.join(', ')})`,
        `add {{alias_servers}} at the top level of ${custom} (their server blocks, redirecting to ${env.config.domain}), or remove aliases from environments/${env.name}/environment.yml`,
      );
    // checkLog names checkLogFormat's format, written by {{upstreams_include}}: nginx refuses the one without the other.
    if (!UPSTREAMS_PLACEHOLDER.test(text)) vars.logs = vars.logs!.replace(`\n    ${checkLog(env)}`, '');
    return renderTemplate(text, vars, `environments/${env.name}/${custom}`);
  }
  return renderTemplate(tls ? TLS_SITE : PLAIN_SITE, vars, 'built-in site');
}
