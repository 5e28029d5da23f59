// nginx: the one way to apply its files (nginx-config.ts says what they hold): write, `nginx -t`, reload
// gracefully and wait until the new configuration serves, or put every file back as it was and fail with nginx's
// message.
import type { Target } from '../target.ts';
import { acmePendingSite, BASE_CONFIG_PREVIOUS, BASE_CONFIG_PREVIOUS_HEADERS, baseConfig, HEADER, releaseMap, SERVER_NAMES_BUCKET, site, upstreamBlock, upstreams } from './nginx-config.ts';
import type { Slot } from '../layout.ts';
import type { Step } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { asShipped, putFile, putFileWord, putUnlessHostOwn, type HostOwnRule } from './script.ts';
import { CRITICAL_FUNCTIONS, CRITICAL_WAIT_SECONDS, HOST_LOCK_FUNCTIONS, SYSTEM_FUNCTIONS } from './libraries.ts';

export interface NginxFile {
  path: string;
  /** The file's text, or the base64 of a text made on the host, as a shell word `before` sets (`"$ups_b64"`). */
  content: string | { b64Word: string };
  /**
   * What a version of the file someone made on the host gets (putUnlessHostOwn): kept (a file a Debian package ships as
   * a configuration file, which an admin may have made the host's own: nginx-common's /etc/nginx/nginx.conf; `check`
   * then says whether nginx can serve with it), or replaced with a backup, said (the app's site, rendered from the
   * settings). Without it the file is written whatever is there (the upstreams: the deploys' own).
   */
  own?: HostOwnRule;
}

export interface NginxChange {
  files: NginxFile[];
  /**
   * Shell run after `files` are written, before `nginx -t`: completes a file that belongs to others once it exists
   * (ensureUpstreams: the live slot's upstreams are the deploys'), setting CHANGED=1 when it writes. Put back with the
   * rest when nginx refuses the result.
   */
  complete?: string;
  /**
   * Shell run once `nginx -t` accepted the files (with `ensureService`, every run), before the reload: fails, saying
   * why on stderr, when the configuration, valid, still would not serve what the change is for (a host's own
   * nginx.conf, kept, that does not include the site); the previous files come back, nothing is reloaded.
   */
  check?: string;
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
  /**
   * Shell run after the reload, still under the host's nginx lock with the previous files kept: its exit status
   * says whether the new configuration serves as meant (a switch: nginx answers with the new slot). When it fails,
   * the previous files come back, nginx reloads them, and the step fails (what it printed says why). Its waits
   * count in `critical`.
   */
  verify?: string;
  /** Shell run after a successful reload (and `verify`), in the same step (a deploy's activation). */
  then?: string;
  /**
   * The most seconds `then` takes (its waits bounded; none: 0): from the snapshot to the end of `then`, every change is
   * a critical section (core/steps/sh/critical.sh), not cut off half-way by the runner going away (a signal, a lost
   * connection, the forced stop of what its connection ran): the files nginx tested and serves, or the previous ones
   * back, never new files nginx never tested left on disk for the next reload. The step's timeout leaves the section
   * that, beyond the waits for the locks.
   */
  critical?: number;
  /** What the change is, in the message of a section that could not begin ("the switch"; default "the nginx change"). */
  what?: string;
}

/** The most seconds host_lock nginx waits (host-lock.sh's default). */
const HOST_LOCK_WAIT = 45;
/** The most seconds an nginx change takes once its locks are held: the snapshot, the files, nginx -t, the reload (10 s of waiting at most). */
const NGINX_APPLY_SECONDS = 15;

/**
 * Apply nginx files atomically as a whole: snapshot /etc/nginx, write, `nginx -t`; when nginx rejects the
 * result, put the snapshot back (nothing reloaded: the previous configuration keeps serving) and fail with
 * nginx's own message, saying whether the snapshot fails too (a file the change does not write: someone
 * else's). With `ensureService` (provision) the configuration is tested even when nothing changed. Reloads (graceful) only when something changed, and returns once the new configuration
 * serves; when the running server refuses it (nginx -t passed, a port is taken), the snapshot comes back too and
 * the step fails with nginx's error log: the files on disk stay what serves. With `verify`, a reload that does not
 * serve as meant puts the previous files back and reloads them too.
 */
export function applyNginx(change: NginxChange): Step {
  // Under the host's nginx lock: another app's change never interleaves with this one, so the snapshot put
  // back on failure holds exactly the other apps' files as they are.
  const lines: string[] = [SYSTEM_FUNCTIONS, HOST_LOCK_FUNCTIONS, CRITICAL_FUNCTIONS, 'host_lock nginx', ...(change.before ? [change.before] : []), 'backup=$(mktemp -d /etc/.ops-nginx.XXXXXX)'];
  // An exit inside the critical section (nginx refused the files) gives back the output it kept.
  const section = NGINX_APPLY_SECONDS + (change.critical ?? 0);
  // The snapshot removed inside the section (a signal held back till its end would kill the script before an EXIT trap
  // after it removes it: one copy of /etc/nginx left in /etc per interruption), on success and on failure alike.
  lines.push('trap \'rm -rf "$backup"; critical_end\' EXIT', `critical_begin ${section} ${quote(change.what ?? 'the nginx change')}`);
  // Snapshots a change cut off by a reboot or SIGKILL left (its EXIT trap never ran): sections run one at a time, so
  // none other than this one's is a change under way. One whose put-back was cut off between its rm and its mv (no
  // /etc/nginx) holds the only copy of the previous files: put back first; each removed (a copy of /etc/nginx apiece).
  lines.push(String.raw`for nginx_left in /etc/.ops-nginx.*; do
  if [ ! -d "$nginx_left" ] || [ "$nginx_left" = "$backup" ]; then continue; fi
  if [ ! -e /etc/nginx ] && [ -d "$nginx_left/nginx" ]; then mv "$nginx_left/nginx" /etc/nginx; echo "/etc/nginx was put back from $nginx_left, left by an nginx change cut off (a reboot, a SIGKILL) while it put the previous files back" >&2; fi
  rm -rf "$nginx_left"
done`);
  lines.push('cp -a /etc/nginx "$backup/nginx"', 'nginx_put_back() { rm -rf /etc/nginx; mv "$backup/nginx" /etc/nginx; }');
  for (const f of change.files) {
    if (typeof f.content !== 'string') lines.push(putFileWord(f.path, f.content.b64Word));
    else lines.push(f.own ? putUnlessHostOwn(f.path, f.content, f.own) : putFile(f.path, f.content));
  }
  if (change.complete) lines.push(change.complete);
  for (const [target, link] of change.links ?? []) lines.push(`[ "$(readlink ${quote(link)} || true)" = ${quote(target)} ] || { ln -sfn ${quote(target)} ${quote(link)}; CHANGED=1; }`);
  // Provision tests the configuration even when it wrote nothing: "ready for deploys" means nginx can reload.
  // A failure nginx -t also finds without this change is someone else's file (a hand-edited one in
  // sites-enabled): said so, rather than blaming the files this run wrote.
  lines.push(String.raw`nginx_changed=$CHANGED
if [ "$CHANGED" = 1 ]${change.ensureService ? ' || true' : ''}; then
  if ! out=$(nginx -t 2>&1); then
    # What nginx names is read from the files it refused, before the previous ones come back. Each look-up ends in
    # || true: an assignment takes its substitution's status, and under set -e a grep finding nothing (an empty
    # conf.d) would end the script before nginx's message is said.
    nginx_hint=''
    # Two sites claiming the default server of an address: nginx names one place; the user needs every claimant
    # (often this app under the name it had before app was renamed, whose site nothing removed).
    if [[ $out =~ duplicate\ default\ server\ for\ ([^ ]+) ]]; then
      nginx_hint="hint: more than one enabled site says default_server for ${'$'}{BASH_REMATCH[1]} (nginx allows one per address); the sites that say it: $(grep -ls 'default_server' /etc/nginx/sites-enabled/* /etc/nginx/conf.d/*.conf 2>/dev/null | tr '\n' ' ' || true)- remove the one no longer used (an app renamed leaves its old site: ops env remove --dry-run --force lists the commands that take an app off a host), or leave default_server to the other (nginx.default_server: false here; an app without a domain needs it)"
    fi
    # A server name longer than the http block's buckets hold (a host's own nginx.conf, kept, with nginx's default):
    # nginx names the setting, not the name nor where the setting goes.
    if [[ $out =~ could\ not\ build\ (the\ )?server_names_hash,\ you\ should\ increase\ server_names_hash_bucket_size:\ ([0-9]+) ]]; then
      long=$(grep -hsoE '^[^#]*server_name[[:space:]][^;]*' /etc/nginx/sites-enabled/* /etc/nginx/conf.d/*.conf | sed 's/.*server_name[[:space:]]//' | tr -s '[:blank:]' '\n' | awk '{ print length($0), $0 }' | sort -rn | head -n1 || true)
      nginx_hint+="${'$'}{nginx_hint:+
}hint: nginx's server_names_hash_bucket_size (${'$'}{BASH_REMATCH[2]} bytes) is too small for the longest server name of the enabled sites${'$'}{long:+ (${'$'}{long#* }, ${'$'}{long%% *} characters)}; add \"server_names_hash_bucket_size ${SERVER_NAMES_BUCKET};\" (room for any DNS name) to the http block of /etc/nginx/nginx.conf (ops's own nginx.conf has it; one of the host's own is kept as it is), then run again"
    fi
    nginx_put_back
    if [ "$nginx_changed" = 1 ] && nginx -t >/dev/null 2>&1; then
      echo "nginx rejected the new configuration; the previous one is back in place and still serving:" >&2
    else
      echo "nginx -t fails on this host's configuration without this change too, on a file this run does not write (hand-edited?): fix or remove the file named below, then run again. Nothing was changed; nginx keeps serving what it loaded:" >&2
    fi
    echo "$out" >&2
    [ -z "$nginx_hint" ] || echo "$nginx_hint" >&2
    exit 1
  fi${change.check ? `
  if ! {
${change.check}
  }; then
    nginx_put_back
    exit 1
  fi` : ''}
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
  // What the reload must have done, checked while the previous files can still come back.
  if (change.verify)
    lines.push(String.raw`if ! {
${change.verify}
}; then
  nginx_put_back
  if nginx_reload; then echo "the previous nginx files are back in place and serve again" >&2
  else echo "the previous nginx files are back in place, but nginx did not reload them (see above): check what serves (ops status)" >&2; fi
  exit 1
fi`);
  lines.push('host_unlock nginx', `item ${quote(change.item)}`);
  if (change.then) lines.push(change.then);
  lines.push('rm -rf "$backup"', 'critical_end');
  // A section has its time whatever the waits for the locks took (critical_begin checks it is left).
  const timeout = HOST_LOCK_WAIT + CRITICAL_WAIT_SECONDS + section;
  return { name: change.item, as: 'root', timeout, script: lines.join('\n') };
}

/**
 * The upstreams file as the site provision writes needs it: made pointing at blue when absent; once there, it is the
 * deploys' (the live slot's ports: never rewritten here, which would move the traffic), but each program of the
 * config it lacks gets its upstream at the slot the file routes to (a program added since the file was written: the
 * site's proxy_pass names it, and nginx refuses a name it cannot find, "host not found in upstream"; its route
 * answers 502 until a deploy starts it there).
 */
export function ensureUpstreams(env: Target): string {
  const L = env.layout;
  const file = quote(L.nginxUpstreams);
  const adds = (slot: Slot) =>
    Object.keys(env.config.programs)
      .map((p) => `grep -q ${quote(`^upstream ${L.nginxUpstream(p)} {`)} ${file} || { printf '\\n%s\\n' ${quote(upstreamBlock(env, p, slot))} >> ${file}; CHANGED=1; }`)
      .join('\n  ');
  return String.raw`if [ ! -e ${file} ]; then ${putFile(L.nginxUpstreams, upstreams(env, 'blue', ''))}
else
  # one written by an older version has no $${L.nginxReleaseVariable}, which a site's cache key names: defined, naming
  # no release (the next switch writes the live one's)
  # shellcheck disable=SC2016 # nginx's variable, in the file's text
  grep -q ${quote(`^map "" $${L.nginxReleaseVariable} {`)} ${file} || { printf '%s' ${quote(releaseMap(env, ''))} >> ${file}; CHANGED=1; }
  # the slot the file routes to: its $${L.nginxSlotVariable} map's default (blue for a file without it)
  if grep -q '^    default "green";$' ${file}; then
  ${adds('green')}
  else
  ${adds('blue')}
  fi
fi`;
}

/**
 * The app's site on a host where someone changed it (a location added, client_max_body_size raised, made a symlink):
 * rendered from the settings on every provision and switch, so replaced, with a backup and where such a change lasts
 * (putUnlessHostOwn's `replaced`).
 */
export function siteOwn(env: Target): HostOwnRule {
  const where = `environments/${env.name}/environment.yml`;
  return {
    kind: 'replaced',
    lasts: env.config.nginx.site_template
      ? `make it in the site template (nginx.site_template in ${where}), or the setting that makes it (nginx.client_max_body_size, routes), then deploy`
      : `set it in ${where} (nginx.client_max_body_size, routes, nginx.default_server), or, for a location or directive of your own, give the app a site template (nginx.site_template, with the built-in site's placeholders: README, "Placeholders"), then deploy; settings for every site belong in a file of /etc/nginx/conf.d/ (nginx.conf's http block includes it; ops never writes there)`,
  };
}

/** Debian's default site, the one nginx-common ships and enables (`listen 80 default_server`, nginx's welcome page). */
const DEFAULT_SITE = '/etc/nginx/sites-available/default';
const DEFAULT_SITE_ENABLED = '/etc/nginx/sites-enabled/default';

/**
 * What provision puts in place: the base config, the site, the upstreams (blue when absent; see ensureUpstreams).
 * On a host an admin lived on, nothing of theirs is replaced or disabled without a word: nginx.conf is written only
 * over ops's own as ops wrote it or Debian's as shipped (NginxFile.own, kept; ops's changed here since is the admin's); a host's own is kept, and must include the site (ops's
 * needs of it: its `http {}` including /etc/nginx/sites-enabled/*, where the site is linked; the rest of the base
 * config is ops's taste: server_tokens off, gzip, room for long server names). Debian's default site is disabled
 * only as shipped (its welcome page, and the default server the app's site may claim); an edited one stays enabled,
 * said (nginx -t names it if it claims the app's default server: applyNginx's hint). A site under the app's name
 * that ops did not write (before ops set the app up here) is refused, not replaced.
 * `keep` (tls.mode letsencrypt, the certificate of the site's names not issued yet: tls.ts tlsPlan): the site on the
 * host is left as it serves (its names, its certificate), and only the ACME challenge of `keep.pending` (names it does
 * not serve) is answered on port 80 beside it (acmePendingSite); without `keep` that server is removed.
 */
export function provisionNginx(env: Target, certificateReady: boolean, keep?: { pending: string[] }): Step {
  const L = env.layout;
  const conf = '/etc/nginx/nginx.conf';
  const enabled = quote(DEFAULT_SITE_ENABLED);
  // A link to the stock site, or to nothing (nginx -t fails on a dangling include): disabled.
  const defaultSite = String.raw`if [ -L ${enabled} ] && { [ ! -e ${enabled} ] || { [ "$(readlink -f ${enabled})" = ${quote(DEFAULT_SITE)} ] && ${asShipped('nginx-common', DEFAULT_SITE)}; }; }; then
  rm -f ${enabled}; CHANGED=1
elif [ -e ${enabled} ]; then
  echo ${quote(`kept this host's own default site ${DEFAULT_SITE_ENABLED} enabled: it is not Debian's as shipped (someone changed it here), so it may serve a site of its own; ops disables only Debian's welcome page. Disable it yourself if it serves nothing (rm ${DEFAULT_SITE_ENABLED})`)}
fi`;
  // The app's site and its link, before ops set the app up on this host (no upstreams file yet: ensureUpstreams makes
  // it with the first site), are a site someone else made under the app's name unless ops's header opens it.
  const own = { site: quote(L.nginxSite), link: quote(L.nginxSiteEnabled), upstreams: quote(L.nginxUpstreams) };
  const siteOfOthers = String.raw`if [ ! -e ${own.upstreams} ] && { { [ -e ${own.site} ] && [ "$(head -n1 ${own.site})" != ${quote(HEADER)} ]; } || { { [ -e ${own.link} ] || [ -L ${own.link} ]; } && [ "$(readlink ${own.link} || true)" != ${own.site} ]; }; }; then
  echo ${quote(`this host already has an nginx site under this app's name, ${L.nginxSite} or ${L.nginxSiteEnabled}, that ops did not write (ops has not set ${env.config.app} up here: no ${L.nginxUpstreams}), and provision would replace it. If it is this app, served by hand until now: move it away (mv ${L.nginxSite} /root/${env.config.app}.nginx-before-ops; rm -f ${L.nginxSiteEnabled}), then run provision again (ops's site serves it from then on); if it is another site, give this app another name (app in environments/${env.name}/environment.yml). Nothing was changed`)} >&2
  exit 1
fi`;
  const siteFiles: NginxFile[] = keep
    ? keep.pending.length ? [{ path: L.nginxAcmePending, content: acmePendingSite(env, keep.pending) }] : []
    : [{ path: L.nginxSite, content: site(env, certificateReady), own: siteOwn(env) }];
  return applyNginx({
    item: 'nginx',
    ensureService: true,
    before: siteOfOthers,
    files: [
      {
        path: conf,
        content: baseConfig(),
        own: { kind: 'kept', package: 'nginx-common', kept: `ops's site is included from it, and ops's base settings (server_tokens off, gzip, server_names_hash_bucket_size ${SERVER_NAMES_BUCKET}) apply only as far as it has them: add those you want to its http block. To have ops's file instead: move your settings into a file of /etc/nginx/conf.d/ (its http block includes them), remove ${conf}, then run provision again`, previous: BASE_CONFIG_PREVIOUS, previousFirstLines: BASE_CONFIG_PREVIOUS_HEADERS },
      },
      ...siteFiles,
    ],
    complete: `${ensureUpstreams(env)}
${defaultSite}${keep?.pending.length ? '' : `
[ ! -e ${quote(L.nginxAcmePending)} ] || { rm -f ${quote(L.nginxAcmePending)}; CHANGED=1; }`}`,
    links: [[L.nginxSite, L.nginxSiteEnabled]],
    // nginx -T lists every file it read, each as "# configuration file <path>:" (ngx_conf_parse), an include's
    // matches by their own path.
    check: String.raw`nginx_read=$(nginx -T 2>/dev/null) || true
if ! grep -qxF ${quote(`# configuration file ${L.nginxSiteEnabled}:`)} <<< "$nginx_read"; then
  echo ${quote(`nginx does not read ${L.nginxSiteEnabled}, where ops enables the site of ${env.config.app}: this host's own ${conf} (kept: ops never overwrites it) does not include /etc/nginx/sites-enabled/* in its http block. Add "include /etc/nginx/sites-enabled/*;" there (Debian's nginx.conf has it), or move your settings into a file of /etc/nginx/conf.d/ and remove ${conf} (provision then writes ops's), then run provision again. Nothing was changed`)} >&2
  false
fi`,
  });
}
