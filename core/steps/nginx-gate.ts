// The health checks as the site's visitors meet them: through nginx. A program can answer its health check on its
// own port while nginx answers every visitor 502 for it: a response head larger than nginx's proxy_buffer_size (a big
// Set-Cookie or Content-Security-Policy header: "upstream sent too big header"), a header nginx refuses. The health
// probes (core/steps/sh/probe.sh) ask the port directly, so the switch asks nginx too, once it routes to the new slot
// and while the previous files can still come back (applyNginx's verify): a deploy never goes live on a slot nginx
// answers 5xx for.
import type { Target } from '../target.ts';
import { quote } from '../shell.ts';
import { CHECK_HEADER, certificatePaths, checkLog, stripsPrefix } from './nginx-config.ts';
import { siteNames } from '../config/environment.ts';
import { siteName } from './certs.ts';
import { LOCAL_CURL, visitorAddress } from './libraries.ts';
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
 * of another program may take it), as siteVariables' locations pass it on (the prefix replaced by "/", or kept: stripsPrefix). Programs nginx
 * routes nothing to are not asked (their callers are on the host). `program` and `path` (starting with "/").
 */
export function gatePaths(env: Target): { program: string; path: string }[] {
  const routes = Object.entries(env.config.routes).sort(([a], [b]) => b.length - a.length);
  const out: { program: string; path: string }[] = [];
  for (const [name, p] of Object.entries(env.config.programs)) {
    for (const [prefix, program] of routes) {
      if (program !== name) continue;
      const path = stripsPrefix(env, prefix) ? `${prefix}${p.health.replace(/^\//, '')}` : p.health;
      // Passed on whole (strip_prefix false), a health path outside the route's prefix is not asked there.
      if (!path.startsWith(prefix)) continue;
      // nginx's choice among prefix locations: the longest that matches.
      const taken = routes.find(([other]) => path.startsWith(other));
      if (taken?.[1] !== name) continue;
      out.push({ program: name, path });
      break;
    }
  }
  return out;
}

/**
 * The most seconds nginxServed (nginxGate) takes: each path's tries, each bounded by curl (and a pause between tries),
 * its wait for nginx's line, and the request that tells the site's own server block from another one when there is none.
 */
export function gateSeconds(env: Target): number {
  return gatePaths(env).length * (GATE_TRIES * (GATE_REQUEST_SECONDS + 1) + 2 * CHECK_LINE_SECONDS + GATE_REQUEST_SECONDS);
}

/**
 * Shell that sets `gate_others` to the files of nginx's usual places (conf.d/*.conf, sites-enabled/*) other than the
 * site's that listen on `port` (a number, or a shell variable's "$name"), space-separated with a trailing space:
 * where a server block taking the site's visitors is; '' when none.
 */
export function otherListenFiles(env: Target, port: string): string {
  return `gate_others=$(grep -lsE "^[^#]*listen[[:space:]]+([^;[:space:]]*:)?${port}([^0-9]|$)" /etc/nginx/conf.d/*.conf /etc/nginx/sites-enabled/* 2>/dev/null | grep -vxF ${quote(env.layout.nginxSiteEnabled)} | tr '\\n' ' ' || true)`;
}

/**
 * How nginxServed asks: `slot`, the slot whose ports must answer (a Slot, or 'live': the one the shell variable
 * `$live_slot` names, blue or green; none asked when it names neither); `tls`, whether visitors are asked over https (true, false, or
 * 'if-certificate': when the environment serves TLS and its certificate file is on the host); `proves`, whether the
 * site nginx serves keeps checkLog (true, false, or 'if-site-logs': when the enabled site file holds its line);
 * `healthFailed`, a shell variable (`"$name"`) holding 1 when the slot's own health probes failed just before (`ops
 * status` probes the live slot first: healthShell): a 5xx nginx names no cause of is then said to be the release's own
 * failure passed on, not a release that answers while nginx cannot pass it on (the switch asks only a healthy slot).
 */
export interface ServedAsk {
  slot: Slot | 'live';
  tls: boolean | 'if-certificate';
  proves: boolean | 'if-site-logs';
  healthFailed?: string;
}

/**
 * Shell that asks nginx, as the site's visitors do, for each health path (gatePaths) of the programs on a slot, and
 * proves through nginx's own log which upstream answered: the one way the switch (nginxGate) and `ops status` (the
 * status step) tell what serves. Asked at the address of this host the SSH connection reached (SSH_CONNECTION: an
 * address visitors reach too, where a server block of another file may listen for the port, `listen <address>:80`,
 * which nginx then takes for every request to that address before the site's `listen 80`; 127.0.0.1 without one),
 * https with the site's name when TLS is asked and the environment serves it, else http with the domain (or 127.0.0.1,
 * the probes' Host) as Host. A path nginx answers with a 5xx GATE_TRIES times is added to `$gate_fail` (with
 * `$gate_line`, the line nginx's error log, the site's else the main one, wrote about it, and `$gate_hint`, the fix of
 * the cause it names). When proving, each request carries CHECK_HEADER with a nonce, and nginx's own line for it
 * (layout.nginxCheckLog) must say the answer came from the slot: the program's port on it the last upstream asked,
 * its status the one the client got; else `$gate_wrong` says what answered instead (no upstream: nginx itself, a
 * static file, `return`, `try_files` or its cache; another address; a status nginx replaced, `error_page ... =200` or
 * proxy_intercept_errors, goes to `$gate_fail`) and the fix. A request with no line at all is told apart by one more
 * to /.ops/slot, which the site's server-level logs record: with its line, the site's own server block answered but
 * the health path's location sets its own access_log (`$gate_unlogged`: unproven, said with the fix, not a failure);
 * without, another server block takes the visitors (`$gate_wrong`, and `$gate_taken` alone: what answered, the
 * files listening on the port, in `$gate_others`, and the fix). No answer at all (a timeout) is no verdict here. `$gate_url` is where visitors were asked.
 * Over http, with probe.sh's functions in the script (the switch's: probe_armed), each request is bash's own
 * (gate_ask); else curl's. Needs curl and tail; sets only gate_* variables (and defines gate_ask, gate_pause, gate_asks).
 * Processes: a stat, a tail of the check log when proving, a curl per request over https (and 5xx's retry pauses
 * outside probe_armed: a sleep each); the error logs' grep and tail only when a path failed.
 */
export function nginxServed(env: Target, ask: ServedAsk): string {
  const paths = gatePaths(env);
  if (!paths.length) return 'gate_fail=""; gate_wrong=""; gate_taken=""; gate_unlogged=""; gate_others=""; gate_url=""; gate_proves=0; : no program is routed by nginx: nothing to ask it';
  const L = env.layout;
  const cert = certificatePaths(env);
  const name = siteName(env);
  const checkName = `$http_${CHECK_HEADER.toLowerCase().replace(/-/g, '_')}`;
  const template = env.config.nginx.site_template ? `the site template (nginx.site_template, ${env.config.nginx.site_template})` : `a site template (nginx.site_template in environments/${env.name}/environment.yml: the built-in one with these lines added)`;
  const tooBig = `the release's response head (its header fields) is larger than nginx's proxy_buffer_size (one memory page, 4 KiB or 8 KiB, by default): send smaller headers (a large Set-Cookie or Content-Security-Policy header), or raise nginx's buffers in the server block of ${template}, e.g. "proxy_buffer_size 32k; proxy_buffers 8 32k; proxy_busy_buffers_size 64k;"`;
  const other = `the release answers its health checks on its own ports, but nginx cannot pass them on: see the error log line above (nginx's words for what the release sent it), and ${L.nginxErrorLog}`;
  const ownFailure = `the release fails its health checks on its own ports too (see the health check problem): nginx passes on its failure; the error log line above says what nginx got (${L.nginxErrorLog})`;
  const replaced = `nginx turns the release's error into another answer (an error_page with "=<code>", or proxy_intercept_errors with error_page, in ${template}), so visitors would get that page, not the release: keep the page but drop "=<code>" (its status stays the error) and fix the cause above; a release nginx cannot pass on never goes live`;
  // Said with the address asked and the files found on the host ($gate_at_shown, $gate_port, $gate_others), outside the quotes.
  const notSite = [
    quote(`another server block answers `),
    `"$gate_at_shown:$gate_port"`,
    quote(` for the site's name (one listening on that address, "listen <address>:<port>", is taken before the site's "listen <port>"; or a default_server, or the same server_name loaded first), in: `),
    `"${'$'}{gate_others:-(no other file listens on port $gate_port: see nginx -T) }"`,
    quote(`- remove it, or its listen/server_name, and reload nginx`),
  ].join('');
  const unlogged = `the site's own server block answered, but the location that serves it sets its own access_log (e.g. "access_log off;"), which replaces the site's logs there, so nginx keeps no record of which upstream answered: add the check log's line to that location in ${template}, "${checkLog(env)}", so that what serves it can be proven`;
  const itself = `the site answers the health path without passing it to the release (a static file, "return", "try_files" before proxy_pass, or proxy_cache serving a stored copy) in ${template}, or in a file nginx loads for every site (a proxy_cache at the http level: nginx.conf, conf.d; nginx -T shows which): route it with proxy_pass http://${L.nginxUpstream('<program>')} (or {{locations}}), and bypass the cache for requests carrying ${CHECK_HEADER} (proxy_cache_bypass ${checkName}; proxy_no_cache ${checkName};), its key naming the live release ($${L.nginxReleaseVariable}) so that no page of the previous one is answered`;
  const elsewhere = `the site passes the health path to another address than the slot's (its own upstream or proxy_pass) in ${template}: proxy_pass http://${L.nginxUpstream('<program>')} (the upstream the switch moves), or {{locations}}`;
  const entries = (slot: Slot) => `gate_entries=(${paths.map((p) => quote(`${p.program} 127.0.0.1:${env.port(p.program, slot)} ${p.path}`)).join(' ')})`;
  const chooseEntries = ask.slot === 'live' ? `case "$live_slot" in blue) ${entries('blue')} ;; green) ${entries('green')} ;; *) gate_entries=() ;; esac` : entries(ask.slot);
  const https = `gate_port=443; gate_opts=(-k --resolve ${quote(`${name}:443:`)}"$gate_at"); gate_base=${quote(`https://${name}`)}; gate_url=$gate_base`;
  const http = `gate_port=80; gate_host=${quote(env.config.domain ?? '127.0.0.1')}; gate_opts=(-H "Host: $gate_host"); gate_base="http://$gate_at"; gate_url="http://$gate_at_shown"`;
  const chooseScheme = !cert || ask.tls === false ? http : ask.tls === true ? https : `if [ -f ${quote(cert.cert)} ]; then ${https}; else ${http}; fi`;
  const chooseProof = typeof ask.proves === 'boolean' ? `gate_proves=${ask.proves ? 1 : 0}` : `gate_proves=0\n# shellcheck disable=SC2016 # nginx's variable, in the line looked for\nif grep -qsF -- ${quote(checkLog(env))} ${quote(L.nginxSiteEnabled)}; then gate_proves=1; fi`;
  // One request through nginx, marked with the nonce $gate_id (gate_ask).
  const ask1 = (path: string) => `gate_ask ${path}`;
  // nginx's own line for the request $gate_id (checkLog), written as the request ends: '' when none within
  // CHECK_LINE_SECONDS. Read from one tail -F of the check log (from its size before the first request), started at the
  // first line wanted, ended with nginxServed (or, at the latest, with the script: --pid): its lines come as nginx writes
  // them (inotify), each read by bash's read -t, where a tail | grep of the log per look (and a sleep between looks)
  // cost three processes each. A line whose end has not come yet (never seen: nginx writes each whole) is kept
  // (gate_part) for the next read. Lines are read once: those of the earlier requests, read before, are not looked at
  // again.
  const lineOf = String.raw`gate_line=""
      if [ -z "$gate_tail" ]; then
        exec {gate_tail}< <(exec tail -c +$(( gate_check_from + 1 )) -F -s 0.05 --pid=$$ -- ${quote(L.nginxCheckLog)} 2>/dev/null < /dev/null); gate_tail_pid=$!
      fi
      gate_until=$(( ${'$'}{EPOCHREALTIME/./} + ${CHECK_LINE_SECONDS * 1000000} ))
      while gate_left=$(( gate_until - ${'$'}{EPOCHREALTIME/./} )); [ "$gate_left" -gt 0 ]; do
        printf -v gate_wait '%d.%06d' $(( gate_left / 1000000 )) $(( gate_left % 1000000 ))
        gate_rc=0; IFS= read -r -t "$gate_wait" -u "$gate_tail" gate_got || gate_rc=$?
        # A timeout (> 128) ends the wait; so does the end of the stream (tail gone: no more lines).
        if [ "$gate_rc" != 0 ]; then gate_part+=$gate_got; break; fi
        gate_got=$gate_part$gate_got; gate_part=""
        if [[ $gate_got == "$gate_id|"* ]]; then gate_line=$gate_got; break; fi
      done`;
  return String.raw`# nginxServed: the health paths through nginx, as the site's visitors ask them, and who answered.
gate_fail=""; gate_wrong=""; gate_taken=""; gate_unlogged=""; gate_others=""; gate_replaced=""; gate_line=""; gate_hint=""; gate_logs=(${quote(L.nginxErrorLog)} /var/log/nginx/error.log)
# Where the error logs and the check log end now (one stat for the three; 0 for one not there): what nginx writes after.
gate_from=(0 0); gate_check_from=0; gate_tail=""; gate_tail_pid=""; gate_part=""
while read -r gate_size gate_file; do
  case $gate_file in "${'$'}{gate_logs[0]}") gate_from[0]=$gate_size ;; "${'$'}{gate_logs[1]}") gate_from[1]=$gate_size ;; ${quote(L.nginxCheckLog)}) gate_check_from=$gate_size ;; esac
done < <(stat -c '%s %n' -- "${'$'}{gate_logs[@]}" ${quote(L.nginxCheckLog)} 2>/dev/null)
${visitorAddress()}
${chooseEntries}
${chooseScheme}
${chooseProof}
# 64 random bits from the kernel (getrandom(2)): bash's SRANDOM (5.1 and later), else od.
if [ -n "${'$'}{SRANDOM:-}" ]; then printf -v gate_nonce '%08x%08x' "$SRANDOM" "$SRANDOM"; else gate_nonce=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n'); fi
gate_n=0
# gate_ask PATH: GET PATH through nginx, marked with the nonce $gate_id, its status in gate_code ('' when nothing
# answered within ${GATE_REQUEST_SECONDS} s). Over http under probe_armed (probe.sh: in the switch's script), bash's own
# request (probe_send, probe_answer: no process; the connect bounded by its watchdog, the head read by the same
# ${GATE_REQUEST_SECONDS} s), the connection closed once the head is read (nginx logs the status it sent, its line
# as the request ends); else, over https or in a bash built without net redirections, curl's. Its answer is read
# with MASK_ARGS hidden: nothing of it is quoted, and the texts to mask are not loaded for it (a process or more per
# release).
# shellcheck disable=SC2034 # MASK_ARGS hidden from probe_answer (mask_ready), PROBE_*: probe_send's and probe_answer's
gate_ask() {
  local -a MASK_ARGS
  local PROBE_ADDR=${'$'}{gate_at#\[} PROBE_HOST=${'$'}{gate_host:-} PROBE_HEADERS="${CHECK_HEADER}: $gate_id"$'\r\n' PROBE_CONNECT_SECONDS=${GATE_REQUEST_SECONDS}
  PROBE_ADDR=${'$'}{PROBE_ADDR%]}; gate_code=""
  if [ "$gate_port" = 80 ] && [ -n "${'$'}{PROBE_WATCHDOG:-}" ]; then
    if probe_send 80 "$1"; then probe_answer "$PROBE_FD" $(( ${'$'}{EPOCHREALTIME/./} + ${GATE_REQUEST_SECONDS * 1000000} )) || true; gate_code=$PROBE_CODE; return 0; fi
    # Refused, or no connection in time: no answer (curl's 000). Without net redirections: curl.
    if [ -n "$PROBE_WHY" ] || net_redirections; then return 0; fi
  fi
  gate_code=$(${LOCAL_CURL} -s -o /dev/null -w '%{http_code}' --max-time ${GATE_REQUEST_SECONDS} "${'$'}{gate_opts[@]}" -H "${CHECK_HEADER}: $gate_id" "$gate_base$1" 2>/dev/null) || true
}
# gate_pause SECONDS: probe_armed's pipe read with a timeout where there is one (no process), else sleep.
gate_pause() { if [ -n "${'$'}{PROBE_ACK:-}" ]; then read -r -t "$1" -u "$PROBE_ACK" _ || true; else sleep "$1"; fi; }
gate_asks() {
for gate_p in "${'$'}{gate_entries[@]}"; do
  read -r gate_program gate_addr gate_path <<< "$gate_p"; gate_code=""
  for gate_try in {1..${GATE_TRIES}}; do
    gate_n=$(( gate_n + 1 )); gate_id="$gate_nonce-$gate_n"
    ${ask1('"$gate_path"')}
    case $gate_code in 5??) [ "$gate_try" = ${GATE_TRIES} ] || gate_pause 0.3 ;; *) break ;; esac
  done
  case $gate_code in
    5??) gate_fail+="${'$'}{gate_fail:+, }GET $gate_path (program $gate_program): $gate_code" ;;
    ""|000) ;;
    *)
      [ "$gate_proves" = 1 ] || continue
      # nginx's own line for this request (checkLog): which upstream answered, with what.
      ${lineOf}
      IFS='|' read -r _ gate_status gate_ustatus gate_uaddr gate_cache <<< "$gate_line"
      # nginx logs an empty variable as "-" (no cache on that location).
      [ "$gate_cache" != - ] || gate_cache=""
      # The last upstream tried (after ", " retries and " : " internal redirects).
      gate_ustatus=${'$'}{gate_ustatus// : /, }; gate_ustatus=${'$'}{gate_ustatus##*, }
      gate_uaddr=${'$'}{gate_uaddr// : /, }; gate_uaddr=${'$'}{gate_uaddr##*, }
      gate_what="GET $gate_path (program $gate_program): nginx answered $gate_code"
      if [ -z "$gate_line" ]; then
        # No line: the site's own server block (its server-level logs record /.ops/slot, whatever answers it) or another.
        gate_n=$(( gate_n + 1 )); gate_id="$gate_nonce-$gate_n"
        ${ask1('/.ops/slot')}
        ${lineOf}
        if [ -n "$gate_line" ]; then
          # shellcheck disable=SC2016 # nginx's variable, written as the fix says it
          gate_unlogged+="${'$'}{gate_unlogged:+; }$gate_what, "${quote(unlogged)}
        else
          ${otherListenFiles(env, '$gate_port')}
          gate_taken="$gate_what, not from this site's server block: "${notSite}
          gate_wrong+="${'$'}{gate_wrong:+; }$gate_taken"
        fi
      elif [ "$gate_uaddr" = - ] || [ -z "$gate_uaddr" ]; then
        # shellcheck disable=SC2016 # nginx's variables, written as the fix says them
        gate_wrong+="${'$'}{gate_wrong:+; }$gate_what itself, from no upstream${'$'}{gate_cache:+ (cache: $gate_cache)}: "${quote(itself)}
      elif [ "$gate_uaddr" != "$gate_addr" ]; then
        gate_wrong+="${'$'}{gate_wrong:+; }$gate_what from $gate_uaddr, not from the slot's port $gate_addr: "${quote(elsewhere)}
      elif [ "$gate_ustatus" != "$gate_status" ]; then
        gate_fail+="${'$'}{gate_fail:+, }$gate_what, but the release answered $gate_ustatus ($gate_uaddr)"; gate_replaced=1
      fi ;;
  esac
done
return 0
}
if [ "$gate_port" = 80 ] && declare -F probe_armed > /dev/null; then probe_armed gate_asks; else gate_asks; fi
# The check log's tail ended, and waited for: it holds no descriptor of this script past here.
if [ -n "$gate_tail_pid" ]; then exec {gate_tail}<&-; kill "$gate_tail_pid" 2>/dev/null || true; wait "$gate_tail_pid" 2>/dev/null || true; fi
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
    *) gate_hint=${ask.healthFailed ? `$([ ${ask.healthFailed} = 1 ] && printf %s ${quote(ownFailure)} || printf %s ${quote(other)})` : quote(other)} ;;
  esac
  [ -z "$gate_replaced" ] || gate_hint=${quote(replaced)}"; the cause: $gate_hint"
fi`;
}

/**
 * Shell (a condition: its exit status) for the switch: nginxServed on `slot` (https when `certificateReady` and the
 * environment serves TLS; proving when `proves`, the site written holds checkLog), failing when nginx answers a
 * health path with a 5xx (printing, stderr, which paths, what nginx answered, its error log's line and the fix) or
 * when what answered is not the new slot (what answered instead, and the fix). A health path whose location keeps no
 * record is a warning (unproven), not a failure. Needs `release_id` set (the release named in the message).
 */
export function nginxGate(env: Target, slot: Slot, certificateReady: boolean, proves: boolean): string {
  if (!gatePaths(env).length) return ': no program is routed by nginx: nothing to ask it';
  return String.raw`${nginxServed(env, { slot, tls: certificateReady, proves })}
if [ -n "$gate_unlogged" ]; then
  echo "warning: what answers the site's visitors for release $release_id cannot be proven ($gate_url): $gate_unlogged" >&2
fi
if [ -n "$gate_fail" ]; then
  gate_as="5xx for them"; [ -z "$gate_replaced" ] || gate_as="another answer than the release's"
  echo "release $release_id answers its health checks on its own ports, but nginx answers the site's visitors $gate_as once it routes to slot ${slot} ($gate_url): $gate_fail; nginx's error log: ${'$'}{gate_line:-(nothing about an upstream)}. Not switched: $gate_hint" >&2
fi
if [ -n "$gate_wrong" ]; then
  echo "release $release_id is not what the site's visitors get once nginx routes to slot ${slot} ($gate_url): $gate_wrong. Not switched" >&2
fi
[ -z "$gate_fail" ] && [ -z "$gate_wrong" ]`;
}

/**
 * Shell setting `$<out>` to the site's names (siteNames: the domain, then each alias) that another file nginx loads
 * before the site's own (or while the site does not list the name yet) gives to a server block of its own, "; "-joined,
 * each said with its field and the file: nginx gives a name to the first server block that lists it for an address
 * (it warns "conflicting server name ..., ignored" of the later ones), so that file would take the name's visitors.
 * Read from `nginx -T`'s text in `$<dump>` (its "# configuration file <path>:" lines, in the order nginx loads them);
 * names compared as nginx does (case-insensitive, a final dot ignored); the listen ports are not compared. '' when
 * the dump is empty (nginx -T failed: nginx -t's own refusal says why) or nothing else claims a name.
 */
export function nameClaims(env: Target, dump: string, out: string): string {
  const names = siteNames(env);
  if (!names.length) return `${out}=""`;
  const field = (i: number) => (i === 0 ? 'domain' : `aliases[${i - 1}]`);
  const awk = String.raw`BEGIN { n = split(names, w, " "); for (i = 1; i <= n; i++) want[w[i]] = i }
/^# configuration file / { file = substr($0, 22); sub(/:$/, "", file); next }
{
  line = $0; sub(/#.*/, "", line); gsub(/[;{}]/, " ; ", line)
  k = split(line, t, /[ \t]+/)
  for (j = 1; j <= k; j++) {
    x = t[j]; if (x == "") continue
    if (in_names) { if (x == ";") { in_names = 0; continue }; x = tolower(x); sub(/\.$/, "", x); if ((x in want) && !(x in first)) first[x] = file }
    else if (x == "server_name") in_names = 1
  }
}
END { for (i = 1; i <= n; i++) if ((w[i] in first) && first[w[i]] != own && first[w[i]] != pending) print i "\t" w[i] "\t" first[w[i]] }`;
  const fields = `claim_fields=(${names.map((_, i) => quote(field(i))).join(' ')})`;
  return String.raw`# Does another file give one of the site's names a server block, loaded before the site's own? nginx gives the name to it.
${out}=""; ${fields}
while IFS=$'\t' read -r claim_i claim_name claim_file; do
  [ -n "$claim_name" ] || continue
  ${out}+="${'$'}{${out}:+; }$claim_name (${'$'}{claim_fields[claim_i-1]}) is a server_name of $claim_file, which nginx loads before ${env.config.app}'s site: nginx gives each name to the first server block that lists it (\"conflicting server name\"), so that file takes its visitors"
done < <(printf '%s\n' "$${dump}" | awk -v names=${quote(names.join(' '))} -v own=${quote(env.layout.nginxSiteEnabled)} -v pending=${quote(env.layout.nginxAcmePending)} ${quote(awk)})`;
}
