// The health checks as the site's visitors meet them: through nginx. A program can answer its health check on its
// own port while nginx answers every visitor 502 for it: a response head larger than nginx's proxy_buffer_size (a big
// Set-Cookie or Content-Security-Policy header: "upstream sent too big header"), a header nginx refuses. The health
// probes (core/steps/sh/probe.sh) ask the port directly, so the switch asks nginx too, once it routes to the new slot
// and while the previous files can still come back (applyNginx's verify): a deploy never goes live on a slot nginx
// answers 5xx for.
import type { Target } from '../target.ts';
import { quote } from '../shell.ts';
import { certificatePaths } from './nginx-config.ts';
import { siteName } from './certs.ts';
import { LOCAL_CURL } from './libraries.ts';

/** Seconds each request through nginx may take (curl's --max-time). */
const GATE_REQUEST_SECONDS = 3;
/** Tries of a path nginx answers 5xx for: a worker of the old configuration may still answer the first. */
const GATE_TRIES = 3;

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
  return gatePaths(env).length * GATE_TRIES * (GATE_REQUEST_SECONDS + 1);
}

/**
 * Shell (a condition: its exit status) that asks the local nginx, as the site's visitors do (https with the site's
 * name when `certificateReady` and the environment serves TLS, else http with the domain as Host), for each health
 * path (gatePaths), and fails when nginx answers one with a 5xx GATE_TRIES times: printing (stderr) which paths,
 * what nginx answered, the line nginx's error log (the site's, else the main one) wrote about it, and how to fix the
 * cause it names. No answer at all (a timeout, a site without these routes) is no verdict here: only what nginx says
 * it could not get from the release. Needs curl; `release_id` set (the release named in the message).
 */
export function nginxGate(env: Target, slot: string, certificateReady: boolean): string {
  const paths = gatePaths(env);
  if (!paths.length) return ': no program is routed by nginx: nothing to ask it';
  const L = env.layout;
  const cert = certificatePaths(env);
  const name = siteName(env);
  const tls = certificateReady && cert;
  const base = tls ? `https://${name}` : 'http://127.0.0.1';
  const opts = tls ? `-k --resolve ${quote(`${name}:443:127.0.0.1`)}` : env.config.domain ? `-H ${quote(`Host: ${env.config.domain}`)}` : '';
  const template = env.config.nginx.site_template ? `the site template (nginx.site_template, ${env.config.nginx.site_template})` : `a site template (nginx.site_template in environments/${env.name}/environment.yml: the built-in one with these lines added)`;
  const tooBig = `the release's response head (its header fields) is larger than nginx's proxy_buffer_size (one memory page, 4 KiB or 8 KiB, by default): send smaller headers (a large Set-Cookie or Content-Security-Policy header), or raise nginx's buffers in the server block of ${template}, e.g. "proxy_buffer_size 32k; proxy_buffers 8 32k; proxy_busy_buffers_size 64k;"`;
  const other = `the release answers its health checks on its own ports, but nginx cannot pass them on: see the error log line above (nginx's words for what the release sent it), and ${L.nginxErrorLog}`;
  return String.raw`# nginxGate: the health paths through nginx, as the site's visitors ask them.
gate_fail=""; gate_logs=(${quote(L.nginxErrorLog)} /var/log/nginx/error.log); gate_from=()
for gate_log in "${'$'}{gate_logs[@]}"; do gate_from+=("$(stat -c %s "$gate_log" 2>/dev/null || echo 0)"); done
for gate_p in ${paths.map((p) => quote(`${p.program} ${p.path}`)).join(' ')}; do
  gate_path=${'$'}{gate_p#* }; gate_code=""
  for gate_try in {1..${GATE_TRIES}}; do
    gate_code=$(${LOCAL_CURL} -s -o /dev/null -w '%{http_code}' --max-time ${GATE_REQUEST_SECONDS} ${opts} ${quote(base)}"$gate_path" 2>/dev/null) || true
    case $gate_code in 5??) [ "$gate_try" = ${GATE_TRIES} ] || sleep 0.3 ;; *) break ;; esac
  done
  case $gate_code in 5??) gate_fail+="${'$'}{gate_fail:+, }GET $gate_path (program ${'$'}{gate_p%% *}): $gate_code" ;; esac
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
  echo "release $release_id answers its health checks on its own ports, but nginx answers the site's visitors 5xx for them once it routes to slot ${slot} (${base}): $gate_fail; nginx's error log: ${'$'}{gate_line:-(nothing about an upstream)}. Not switched: $gate_hint" >&2
  false
fi`;
}
