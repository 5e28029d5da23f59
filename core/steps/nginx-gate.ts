// The health checks as the site's visitors meet them: through nginx. A program can answer its health check on its
// own port while nginx answers every visitor 502 for it: a response head larger than nginx's proxy_buffer_size (a big
// Set-Cookie or Content-Security-Policy header: "upstream sent too big header"), a header nginx refuses. The health
// probes (core/steps/sh/probe.sh) ask the port directly, so the switch asks nginx too, once it routes to the new slot
// and while the previous files can still come back (applyNginx's verify): a deploy never goes live on a slot nginx
// answers 5xx for.
import type { Target } from '../target.ts';
import { quote } from '../shell.ts';
import { CHECK_HEADER, certificatePaths } from './nginx-config.ts';
import { siteName } from './certs.ts';
import { LOCAL_CURL } from './libraries.ts';
import type { Slot } from '../layout.ts';

/** Seconds each request through nginx may take (curl's --max-time). */
const GATE_REQUEST_SECONDS = 3;
/** Tries of a path nginx answers 5xx for: a worker of the old configuration may still answer the first. */
const GATE_TRIES = 3;
/** Seconds the switch waits, at most, for nginx to log a request it answered (checkLog: written as the request ends). */
const CHECK_LINE_SECONDS = 1;

/**
 * The paths of the health checks as a visitor asks them through nginx: for each program nginx routes to, its health
 * path under the first route (of the environment's, longest first) whose URL nginx gives that program (a longer route
 * of another program may take it), as siteVariables' locations pass it on (the prefix replaced by "/"). Programs nginx
 * routes nothing to are not asked (their callers are on the host). `program` and `path` (starting with "/").
 */
export function gatePaths(env: Target): { program: string; path: string }[] {
  const routes = Object.entries(env.config.routes).sort(([a], [b]) => b.length - a.length);
  const out: { program: string; path: string }[] = [];
  for (const [name, p] of Object.entries(env.config.programs)) {
    for (const [prefix, program] of routes) {
      if (program !== name) continue;
      const path = prefix === '/' ? p.health : `${prefix}${p.health.replace(/^\//, '')}`;
      // nginx's choice among prefix locations: the longest that matches.
      const taken = routes.find(([other]) => path.startsWith(other));
      if (taken?.[1] !== name) continue;
      out.push({ program: name, path });
      break;
    }
  }
  return out;
}

/** The most seconds nginxGate takes: each path's tries, each bounded by curl (and a pause between tries). */
export function gateSeconds(env: Target): number {
  return gatePaths(env).length * (GATE_TRIES * (GATE_REQUEST_SECONDS + 1) + CHECK_LINE_SECONDS);
}

/**
 * Shell (a condition: its exit status) that asks nginx, as the site's visitors do, for each health path (gatePaths):
 * at the address of this host the deploy's SSH connection reached (SSH_CONNECTION: an address visitors reach too, where
 * a server block of another file may listen for the port, `listen <address>:80`, which nginx then takes for every
 * request to that address before the site's `listen 80`; 127.0.0.1 without one), https with the site's name when
 * `certificateReady` and the environment serves TLS, else http with the domain (or 127.0.0.1, the probes' Host) as
 * Host. It fails when nginx answers a path with a 5xx GATE_TRIES times: printing (stderr) which paths, what nginx
 * answered, the line nginx's error log (the site's, else the main one) wrote about it, and how to fix the cause it
 * names. With `proves` (the site written holds checkLog), each request carries CHECK_HEADER with a nonce and nginx's
 * own line for it (layout.nginxCheckLog) must say the answer came from the new slot: the program's port on `slot` the
 * last upstream asked, and its status the one the client got; else it fails too, saying what answered instead (no
 * line: a server block that is not the site's; no upstream: nginx itself, a static file, `return`, `try_files` or its
 * cache; another address; a status nginx replaced, `error_page ... =200` or proxy_intercept_errors) and the fix. No
 * answer at all (a timeout) is no verdict here. Needs curl; `release_id` set (the release named in the message).
 */
export function nginxGate(env: Target, slot: Slot, certificateReady: boolean, proves: boolean): string {
  const paths = gatePaths(env);
  if (!paths.length) return ': no program is routed by nginx: nothing to ask it';
  const L = env.layout;
  const cert = certificatePaths(env);
  const name = siteName(env);
  const tls = certificateReady && cert;
  const port = tls ? 443 : 80;
  const opts = tls ? `-k --resolve ${quote(`${name}:443:`)}"$gate_at"` : `-H ${quote(`Host: ${env.config.domain ?? '127.0.0.1'}`)}`;
  const base = tls ? `https://${name}` : 'http://"$gate_at"';
  const template = env.config.nginx.site_template ? `the site template (nginx.site_template, ${env.config.nginx.site_template})` : `a site template (nginx.site_template in environments/${env.name}/environment.yml: the built-in one with these lines added)`;
  const tooBig = `the release's response head (its header fields) is larger than nginx's proxy_buffer_size (one memory page, 4 KiB or 8 KiB, by default): send smaller headers (a large Set-Cookie or Content-Security-Policy header), or raise nginx's buffers in the server block of ${template}, e.g. "proxy_buffer_size 32k; proxy_buffers 8 32k; proxy_busy_buffers_size 64k;"`;
  const other = `the release answers its health checks on its own ports, but nginx cannot pass them on: see the error log line above (nginx's words for what the release sent it), and ${L.nginxErrorLog}`;
  const replaced = `nginx turns the release's error into another answer (an error_page with "=<code>", or proxy_intercept_errors with error_page, in ${template}), so visitors would get that page, not the release: keep the page but drop "=<code>" (its status stays the error) and fix the cause above; a release nginx cannot pass on never goes live`;
  // Said with the address asked and the files found on the host ($gate_at_shown, $gate_files), outside the quotes.
  const notSite = [
    quote(`another server block answers `),
    `"$gate_at_shown"`,
    quote(`:${port} for the site's name (one listening on that address, "listen <address>:${port}", is taken before the site's "listen ${port}"; or a default_server, or the same server_name loaded first), in: `),
    `"${'$'}{gate_files:-(no other file listens on port ${port}: see nginx -T) }"`,
    quote(`- remove it, or its listen/server_name, and reload nginx${env.config.nginx.site_template ? ` (or, when it is the site's own, ${template} sets access_log where the health path is served, which replaces the server's {{logs}} there: leave them to apply)` : ''}`),
  ].join('');
  const itself = `the site answers the health path without passing it to the release (a static file, "return", "try_files" before proxy_pass, or proxy_cache serving a stored copy) in ${template}: route it with proxy_pass http://${L.nginxUpstream('<program>')} (or {{locations}}), and bypass the cache for requests carrying ${CHECK_HEADER} (proxy_cache_bypass $http_${CHECK_HEADER.toLowerCase().replace(/-/g, '_')}; proxy_no_cache $http_${CHECK_HEADER.toLowerCase().replace(/-/g, '_')};)`;
  const elsewhere = `the site passes the health path to another address than the slot's (its own upstream or proxy_pass) in ${template}: proxy_pass http://${L.nginxUpstream('<program>')} (the upstream the switch moves), or {{locations}}`;
  const entries = paths.map((p) => quote(`${p.program} 127.0.0.1:${env.port(p.program, slot)} ${p.path}`)).join(' ');
  return String.raw`# nginxGate: the health paths through nginx, as the site's visitors ask them.
gate_fail=""; gate_wrong=""; gate_logs=(${quote(L.nginxErrorLog)} /var/log/nginx/error.log); gate_from=()
for gate_log in "${'$'}{gate_logs[@]}"; do gate_from+=("$(stat -c %s "$gate_log" 2>/dev/null || echo 0)"); done
# Where visitors are: the address of this host the SSH connection reached (an IPv4 or IPv6 address, else 127.0.0.1),
# from SSH_CONNECTION: sudo's env_reset drops it, so it is read from the first process above this one that has it
# (the login's shell; root reads every process's environment).
gate_conn=${'$'}{SSH_CONNECTION:-}; gate_pid=$$
while [ -z "$gate_conn" ] && [ "$gate_pid" -gt 1 ] && read -r gate_stat 2>/dev/null < "/proc/$gate_pid/stat"; do
  gate_conn=$(grep -zm 1 '^SSH_CONNECTION=' "/proc/$gate_pid/environ" 2>/dev/null | tr -d '\0') || true; gate_conn=${'$'}{gate_conn#SSH_CONNECTION=}
  read -r -a gate_f <<< "${'$'}{gate_stat##*) }"; gate_pid=${'$'}{gate_f[1]}
done
read -r _ _ gate_at _ <<< "$gate_conn" || true
if [[ $gate_at =~ ^[0-9.]+$ ]]; then gate_at_shown=$gate_at; elif [[ $gate_at =~ ^[0-9a-fA-F:]+$ ]]; then gate_at_shown="[$gate_at]"; gate_at="[$gate_at]"; else gate_at=127.0.0.1; gate_at_shown=$gate_at; fi
gate_check_from=$(stat -c %s ${quote(L.nginxCheckLog)} 2>/dev/null || echo 0)
gate_nonce=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n'); gate_n=0
for gate_p in ${entries}; do
  read -r gate_program gate_addr gate_path <<< "$gate_p"; gate_code=""
  for gate_try in {1..${GATE_TRIES}}; do
    gate_n=$(( gate_n + 1 )); gate_id="$gate_nonce-$gate_n"
    gate_code=$(${LOCAL_CURL} -s -o /dev/null -w '%{http_code}' --max-time ${GATE_REQUEST_SECONDS} ${opts} -H "${CHECK_HEADER}: $gate_id" ${base}"$gate_path" 2>/dev/null) || true
    case $gate_code in 5??) [ "$gate_try" = ${GATE_TRIES} ] || sleep 0.3 ;; *) break ;; esac
  done
  case $gate_code in
    5??) gate_fail+="${'$'}{gate_fail:+, }GET $gate_path (program $gate_program): $gate_code" ;;
    ""|000) ;;
    *)${
      proves
        ? String.raw`
      # nginx's own line for this request (checkLog): which upstream answered, with what.
      gate_line=""
      for _ in {1..${CHECK_LINE_SECONDS * 20}}; do
        gate_line=$(tail -c +$(( gate_check_from + 1 )) ${quote(L.nginxCheckLog)} 2>/dev/null | grep -m 1 -F "$gate_id|") || true
        [ -z "$gate_line" ] || break; sleep 0.05
      done
      IFS='|' read -r _ gate_status gate_ustatus gate_uaddr gate_cache <<< "$gate_line"
      # The last upstream tried (after ", " retries and " : " internal redirects).
      gate_ustatus=${'$'}{gate_ustatus// : /, }; gate_ustatus=${'$'}{gate_ustatus##*, }
      gate_uaddr=${'$'}{gate_uaddr// : /, }; gate_uaddr=${'$'}{gate_uaddr##*, }
      gate_what="GET $gate_path (program $gate_program): nginx answered $gate_code"
      if [ -z "$gate_line" ]; then
        gate_files=$(grep -lsE "^[^#]*listen[[:space:]]+([^;[:space:]]*:)?${port}([^0-9]|$)" /etc/nginx/conf.d/*.conf /etc/nginx/sites-enabled/* 2>/dev/null | grep -vxF ${quote(L.nginxSiteEnabled)} | tr '\n' ' ' || true)
        gate_wrong+="${'$'}{gate_wrong:+; }$gate_what, not from this site's server block: "${notSite}
      elif [ "$gate_uaddr" = - ] || [ -z "$gate_uaddr" ]; then
        # shellcheck disable=SC2016 # nginx's variables, written as the fix says them
        gate_wrong+="${'$'}{gate_wrong:+; }$gate_what itself, from no upstream${'$'}{gate_cache:+ (cache: $gate_cache)}: "${quote(itself)}
      elif [ "$gate_uaddr" != "$gate_addr" ]; then
        gate_wrong+="${'$'}{gate_wrong:+; }$gate_what from $gate_uaddr, not from the slot's port $gate_addr: "${quote(elsewhere)}
      elif [ "$gate_ustatus" != "$gate_status" ]; then
        gate_fail+="${'$'}{gate_fail:+, }$gate_what, but the release answered $gate_ustatus ($gate_uaddr)"; gate_replaced=1
      fi`
        : ' :'
    } ;;
  esac
done
if [ -n "$gate_fail" ]; then
  # What nginx wrote about it since: the last line naming an upstream (the site's own log first).
  gate_line=""; gate_i=0
  for gate_log in "${'$'}{gate_logs[@]}"; do
    [ -n "$gate_line" ] || gate_line=$(tail -c +$(( ${'$'}{gate_from[$gate_i]} + 1 )) "$gate_log" 2>/dev/null | grep -F upstream | tail -n 1) || true
    gate_i=$(( gate_i + 1 ))
  done
  gate_line=${'$'}{gate_line:0:400}; gate_line=${'$'}{gate_line//[^[:print:]]/?}
  case $gate_line in
    *"too big header"*) gate_hint=${quote(tooBig)} ;;
    *) gate_hint=${quote(other)} ;;
  esac
  gate_as="5xx for them"; [ -z "${'$'}{gate_replaced:-}" ] || { gate_as="another answer than the release's"; gate_hint=${quote(replaced)}"; the cause: $gate_hint"; }
  echo "release $release_id answers its health checks on its own ports, but nginx answers the site's visitors $gate_as once it routes to slot ${slot} (${base.replace('"$gate_at"', '$gate_at_shown')}): $gate_fail; nginx's error log: ${'$'}{gate_line:-(nothing about an upstream)}. Not switched: $gate_hint" >&2
fi
if [ -n "$gate_wrong" ]; then
  echo "release $release_id is not what the site's visitors get once nginx routes to slot ${slot} (${base.replace('"$gate_at"', '$gate_at_shown')}): $gate_wrong. Not switched" >&2
fi
[ -z "$gate_fail" ] && [ -z "$gate_wrong" ]`;
}
