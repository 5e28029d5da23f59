// nginx: the one way to apply its files (nginx-config.ts says what they hold): write, `nginx -t`, reload
// gracefully and wait until the new configuration serves, or put every file back as it was and fail with nginx's
// message.
import type { Target } from '../target.ts';
import { baseConfig, site, upstreamBlock, upstreams } from './nginx-config.ts';
import type { Slot } from '../layout.ts';
import type { Step } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { putFile } from './script.ts';
import { CRITICAL_FUNCTIONS, CRITICAL_WAIT_SECONDS, HOST_LOCK_FUNCTIONS, SYSTEM_FUNCTIONS } from './libraries.ts';

export interface NginxFile {
  path: string;
  content: string;
}

export interface NginxChange {
  files: NginxFile[];
  /**
   * Shell run after `files` are written, before `nginx -t`: completes a file that belongs to others once it exists
   * (ensureUpstreams: the live slot's upstreams are the deploys'), setting CHANGED=1 when it writes. Put back with the
   * rest when nginx refuses the result.
   */
  complete?: string;
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
   * From the snapshot to the end of `then`, a critical section (core/steps/sh/critical.sh): not cut off half-way by
   * the runner going away (a signal, a lost connection, the forced stop of what its connection ran). A switch. The
   * value: the most seconds `then` takes (its waits bounded); the step's timeout leaves the section that, beyond
   * the waits for the locks.
   */
  critical?: number;
}

/** The most seconds host_lock nginx waits (host-lock.sh's default). */
const HOST_LOCK_WAIT = 45;
/** The most seconds an nginx change takes once its locks are held: the snapshot, the files, nginx -t, the reload (10 s of waiting at most). */
const NGINX_APPLY_SECONDS = 15;
const NGINX_TIMEOUT = 60;

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
  const lines: string[] = [SYSTEM_FUNCTIONS, HOST_LOCK_FUNCTIONS, ...(change.critical !== undefined ? [CRITICAL_FUNCTIONS] : []), 'host_lock nginx', ...(change.before ? [change.before] : []), 'backup=$(mktemp -d /etc/.ops-nginx.XXXXXX)'];
  // An exit inside the critical section (nginx refused the files) gives back the output it kept.
  const section = change.critical === undefined ? undefined : NGINX_APPLY_SECONDS + change.critical;
  if (section !== undefined) lines.push('trap \'critical_end; rm -rf "$backup"\' EXIT', `critical_begin ${section}`);
  else lines.push('trap \'rm -rf "$backup"\' EXIT');
  lines.push('cp -a /etc/nginx "$backup/nginx"', 'nginx_put_back() { rm -rf /etc/nginx; mv "$backup/nginx" /etc/nginx; }');
  for (const f of change.files) lines.push(putFile(f.path, f.content));
  if (change.complete) lines.push(change.complete);
  for (const [target, link] of change.links ?? []) lines.push(`[ "$(readlink ${quote(link)} || true)" = ${quote(target)} ] || { ln -sfn ${quote(target)} ${quote(link)}; CHANGED=1; }`);
  for (const r of change.remove ?? []) lines.push(`if [ -e ${quote(r)} ] || [ -L ${quote(r)} ]; then rm -f ${quote(r)}; CHANGED=1; fi`);
  // Provision tests the configuration even when it wrote nothing: "ready for deploys" means nginx can reload.
  // A failure nginx -t also finds without this change is someone else's file (a hand-edited one in
  // sites-enabled): said so, rather than blaming the files this run wrote.
  lines.push(String.raw`nginx_changed=$CHANGED
if [ "$CHANGED" = 1 ]${change.ensureService ? ' || true' : ''}; then
  if ! out=$(nginx -t 2>&1); then
    nginx_put_back
    if [ "$nginx_changed" = 1 ] && nginx -t >/dev/null 2>&1; then
      echo "nginx rejected the new configuration; the previous one is back in place and still serving:" >&2
    else
      echo "nginx -t fails on this host's configuration without this change too, on a file this run does not write (hand-edited?): fix or remove the file named below, then run again. Nothing was changed; nginx keeps serving what it loaded:" >&2
    fi
    echo "$out" >&2
    # Two sites claiming the default server of an address: nginx names one place; the user needs every claimant
    # (often this app under the name it had before app was renamed, whose site nothing removed).
    if [[ $out =~ duplicate\ default\ server\ for\ ([^ ]+) ]]; then
      echo "hint: more than one enabled site says default_server for ${'$'}{BASH_REMATCH[1]} (nginx allows one per address); the sites that say it: $(grep -ls 'default_server' /etc/nginx/sites-enabled/* /etc/nginx/conf.d/*.conf 2>/dev/null | tr '\n' ' ')- remove the one no longer used (an app renamed leaves its old site: ops env remove --dry-run --force lists the commands that take an app off a host), or leave default_server to the other (nginx.default_server: false here; an app without a domain needs it)" >&2
    fi
    exit 1
  fi
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
  if (section !== undefined) lines.push('critical_end');
  // A section has its time whatever the waits for the locks took (critical_begin checks it is left).
  const timeout = section === undefined ? NGINX_TIMEOUT : HOST_LOCK_WAIT + CRITICAL_WAIT_SECONDS + section;
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
  return String.raw`if [ ! -e ${file} ]; then ${putFile(L.nginxUpstreams, upstreams(env, 'blue'))}
else
  # the slot the file routes to: its $${L.nginxSlotVariable} map's default (blue for a file without it)
  if grep -q '^    default "green";$' ${file}; then
  ${adds('green')}
  else
  ${adds('blue')}
  fi
fi`;
}

/** What provision puts in place: base config, the site, the upstreams (blue when absent; see ensureUpstreams). */
export function provisionNginx(env: Target, certificateReady: boolean): Step {
  const L = env.layout;
  return applyNginx({
    item: 'nginx',
    ensureService: true,
    files: [
      { path: '/etc/nginx/nginx.conf', content: baseConfig() },
      { path: L.nginxSite, content: site(env, certificateReady) },
    ],
    complete: ensureUpstreams(env),
    links: [[L.nginxSite, L.nginxSiteEnabled]],
    remove: ['/etc/nginx/sites-enabled/default'],
  });
}
