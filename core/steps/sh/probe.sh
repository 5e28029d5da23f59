# shellcheck shell=bash
# Health probes: an HTTP GET on 127.0.0.1, every pending program at once, until a deadline; a 2xx answer passes.
# Made by this shell itself: bash's /dev/tcp opens the connection (a connect(2) here, no process; Bash manual,
# "Redirections"), printf writes the request, read takes the answer's head (RFC 9112: the status line, "HTTP/1.1 200
# OK", then header fields up to an empty line). Ten hosts starting at once on shared cores spent more CPU on a curl
# process per probe (~20 ms each under load, a probe every round while a client answered 502) than on anything else
# of ours; a bash built without net redirections (Debian's has them) falls back to curl, one probe at a time.
# A redirect is no verdict (curl -f took a 3xx for a success: a route declared with a slash, FastAPI's
# redirect_slashes 307 or Django's APPEND_SLASH 301, passed on its redirect while the check behind it failed): one
# to another path of the same program is followed (5 at most) and the answer at its end counts; one off it fails.
# The request to a program nginx proxies to is the one nginx passes a visitor's (probe_for, from the PROBE_SITE_*
# the step sets by core/steps/nginx-config.ts probeHeaders, which also writes nginx's proxy_set_header lines): Host,
# X-Real-IP, X-Forwarded-For and X-Forwarded-Proto; one nginx never routes to is asked as its callers on 127.0.0.1 do. Apps check them (Django's ALLOWED_HOSTS answers 400 to a Host it does not
# list, Starlette's TrustedHostMiddleware 400 "Invalid host header", SECURE_SSL_REDIRECT redirects what it takes for
# plain http): a probe without them is answered otherwise than the site's traffic.
# An error answer's first bytes are read (bounded) and quoted. A client error (4xx, but 408, 425 and 429, which ask
# to come back) that persists is a running app's verdict on the request: see probe_rounds.
# The clock is read with printf's %(%s)T and $EPOCHREALTIME (builtins: no process per reading).
# A first request may be slow (cold caches, a busy host): 5 s per probe (its redirects included), the deadline bounds
# the whole wait. Why a probe failed is said in curl's words where curl has some (ops engineers know them).

# net_redirections: 0 when this bash opens /dev/tcp/HOST/PORT as a connection, 1 when it looks for a file of that
# name (built without them). Asked once per script (NET_REDIRECTIONS), and only after a connection failed: one
# refused port (1, nothing listens there) says which, by the error bash prints.
net_redirections() {
  if [ -z "${NET_REDIRECTIONS:-}" ]; then
    local e; e=$( { exec 9<>/dev/tcp/127.0.0.1/1; } 2>&1 ) || true
    if [[ $e == *"No such file"* ]]; then NET_REDIRECTIONS=no; else NET_REDIRECTIONS=yes; fi
  fi
  [ "$NET_REDIRECTIONS" = yes ]
}
# probe_watchdog PID ACK_FD: bounds the connect(2) of PID's probes, which bash's /dev/tcp does without a timeout: a
# listener whose accept queue is full (a program stuck or overloaded, that listens but no longer accepts) has its
# SYN dropped by the kernel, and connect waits for the SYN retries (~2 min, net.ipv4.tcp_syn_retries). Runs in a
# subshell of its own, one per wait_healthy (not per probe): reads "SECONDS" (armed), then waits that long for the
# next line (disarmed); when none came, sends PID SIGUSR2, whose trap makes the blocked connect fail (EINTR: bash
# installs trap handlers without SA_RESTART). Answers each disarm on ACK_FD: 1 when it fired, else 0.
# The end of its input while armed (wait_healthy ended, its trap gone) ends it without a signal: SIGUSR2 untrapped
# would end the step script.
probe_watchdog() {
  local pid=$1 ack=$2 secs fired rc
  while read -r secs; do
    fired=0; rc=0
    read -r -t "$secs" _ || rc=$?
    if [ "$rc" -gt 128 ]; then fired=1; kill -USR2 "$pid" 2>/dev/null || true; read -r _ || return 0
    elif [ "$rc" -ne 0 ]; then return 0; fi
    printf '%s\n' "$fired" >&"$ack"
  done
}
# probe_send PORT PATH: connect to PROBE_ADDR:PORT (127.0.0.1 when empty or unset: a program's port; the switch's look at
# /.ops/slot asks nginx at the address visitors reach, an IPv4 or IPv6 one without brackets) and send GET PATH
# (HTTP/1.1, Connection: close: the program closes after its answer), with Host PROBE_HOST (127.0.0.1:PORT when
# empty) and the lines of PROBE_HEADERS. The
# connection in PROBE_FD; else 1, PROBE_WHY empty when the connection was not made (refused, or no net
# redirections), else why not (no connection within 5 s: see probe_watchdog; closed at once).
# PATH is the environment's health path (the schema lets through [A-Za-z0-9._~/-] and a query string of
# [A-Za-z0-9._~/=&%+-] only) or a redirect's path resolved by probe_target (none with a space or a control
# character): nothing that would break the request line. PROBE_HOST and PROBE_HEADERS hold DNS names, addresses and
# schemes only (probeHeaders checks them).
probe_send() {
  local rc=0 fired=0 t0=${EPOCHREALTIME/./}
  PROBE_WHY=""
  # A program that resets the connection at once makes the request's write fail (EPIPE), as a watchdog gone makes
  # its: SIGPIPE would end the whole script. Armed with 5 s, the probe's own limit (curl's --max-time), or
  # PROBE_CONNECT_SECONDS, when probe_armed started the watchdog; without its answer in time (it is gone), the probes
  # go on without it.
  trap '' PIPE
  if [ -n "${PROBE_WATCHDOG:-}" ] && ! printf '%s\n' "${PROBE_CONNECT_SECONDS:-5}" 1>&"$PROBE_WATCHDOG" 2>/dev/null; then PROBE_WATCHDOG=""; fi
  { exec {PROBE_FD}<>"/dev/tcp/${PROBE_ADDR:-127.0.0.1}/$1"; } 2>/dev/null || rc=1
  if [ -n "${PROBE_WATCHDOG:-}" ]; then
    { printf '\n' 1>&"$PROBE_WATCHDOG" 2>/dev/null && read -r -t 6 -u "$PROBE_ACK" fired; } || { PROBE_WATCHDOG=""; fired=0; }
  fi
  if [ "$rc" -ne 0 ]; then
    trap - PIPE
    [ "$fired" = 0 ] || PROBE_WHY="Connection timed out after $(( (${EPOCHREALTIME/./} - t0) / 1000 )) milliseconds: ${PROBE_ADDR:-127.0.0.1} port $1 listens but accepts no connection, its accept queue full: a program stuck or overloaded"
    return 1
  fi
  if printf 'GET %s HTTP/1.1\r\nHost: %s\r\n%sUser-Agent: ops-pipeline-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n' "$2" "${PROBE_HOST:-127.0.0.1:$1}" "${PROBE_HEADERS:-}" 1>&"$PROBE_FD" 2>/dev/null; then
    trap - PIPE; return 0
  fi
  trap - PIPE; exec {PROBE_FD}<&-; PROBE_WHY="Empty reply from server"; return 1
}
# probe_printable TEXT MAX: TEXT as it may be quoted in a reason (what a server sent), in PROBE_TEXT: masked whole,
# then cut to MAX characters (mask_clip: a cut drops what may start a secret, and says "..."), then each control or
# unprintable character (a terminal escape, an HTTP/2 frame's bytes) as "?". In that order: a secret cut, or with
# its control characters changed, is no longer found whole.
probe_printable() {
  mask_clip "$1" "$2"
  PROBE_TEXT=${MASK_TEXT//[^[:print:]]/?}
}
# probe_for NAME: what a probe of program NAME sends (probe_send, probe_curl_send) and claims to be (probe_target,
# probe_sent), in PROBE_HOST, PROBE_PROTO, PROBE_HEADERS and PROBE_ROUTED: the site's request (PROBE_SITE_HOST,
# PROBE_SITE_PROTO, PROBE_SITE_HEADERS) when nginx proxies to NAME (PROBE_SITE_PROGRAMS, " client server ": the
# environment's routes), PROBE_ROUTED=1; else none of it (Host 127.0.0.1:<port>, no forwarded header): a program only
# its siblings call on 127.0.0.1 (an internal API) may trust no other Host (Django's ALLOWED_HOSTS = ['127.0.0.1']).
# probe_rounds holds these as its locals (bash's dynamic scope: the functions it calls see them).
probe_for() {
  if [[ ${PROBE_SITE_PROGRAMS:-} == *" $1 "* ]]; then
    PROBE_ROUTED=1 PROBE_HOST=${PROBE_SITE_HOST:-} PROBE_PROTO=${PROBE_SITE_PROTO:-http} PROBE_HEADERS=${PROBE_SITE_HEADERS:-}
  else
    PROBE_ROUTED="" PROBE_HOST="" PROBE_PROTO=http PROBE_HEADERS=""
  fi
}
# probe_sent PORT: the headers a probe of 127.0.0.1:PORT sends that apps judge a request by, as said in a reason, in
# PROBE_TEXT: "Host: example.org, X-Forwarded-Proto: https, as nginx forwards the site's requests" (probe_for).
probe_sent() {
  if [ -n "${PROBE_ROUTED:-}" ]; then
    PROBE_TEXT="Host: ${PROBE_HOST:-127.0.0.1:$1}, X-Forwarded-Proto: ${PROBE_PROTO:-http}, as nginx forwards the site's requests"
  else
    PROBE_TEXT="Host: 127.0.0.1:$1 and no forwarded header, as callers on 127.0.0.1 send: nginx routes none of the site's requests to it"
  fi
}
# probe_answer FD UNTIL_US: reads the answer's head on FD until UNTIL_US ($EPOCHREALTIME in microseconds), then
# closes FD. 0 with its status in PROBE_CODE and its status line in PROBE_STATUS (printable), for a 3xx its Location
# field in PROBE_LOCATION, for an error (4xx, 5xx), or whatever the status with PROBE_READ_BODY=1 (the switch's look
# at /.ops/slot: the slot's name is the body), the first bytes of its body in PROBE_BODY (probe_body); 1 with why
# in PROBE_WHY (no answer in time, the connection closed, not HTTP), PROBE_CODE empty: a status line whose head never
# ended (a stall, a head over the limit, the connection closed in it) is no answer, and no client error (probe_rounds
# counts those). A head is read to its end, the empty line (RFC 9112, 2.1), whatever its status: nginx answers the
# site's visitors 502 for one cut off ("upstream prematurely closed connection while reading response header"), so
# the probe does not take its status line for a success; what was received is said (curl's "Empty reply from
# server" only when nothing was).
# RFC 9112/9110: interim answers (1xx but 101: 100 Continue, 103 Early Hints) come before the final one and are
# skipped, as curl does. Bounded in bytes as in time: bash reads a socket one byte per read(2), so each line is
# read in parts of at most 8 KiB (read -n) and the head up to 100 KiB (curl's CURL_MAX_HTTP_HEADER): an endless
# line (a stream, a binary protocol) costs a bounded read, not minutes of CPU.
probe_answer() {
  local fd=$1 until=$2 now left wait line rc head=0 part=0 want=status length="" chunked=0 fields=0 interim=""
  PROBE_CODE=""; PROBE_LOCATION=""; PROBE_STATUS=""; PROBE_BODY=""
  now=${EPOCHREALTIME/./}; left=$(( until - now )); [ "$left" -gt 1000 ] || left=1000
  printf -v wait '%d.%06d' $(( left / 1000000 )) $(( left % 1000000 ))
  while :; do
    rc=0; line=""
    read -r -n 8192 -t "$wait" -u "$fd" line 2>/dev/null || rc=$? # a reset connection: an error, as the end of input is
    if [ "$rc" -gt 128 ]; then
      exec {fd}<&-; now=${EPOCHREALTIME/./}
      PROBE_WHY="Operation timed out after $(( (now - until) / 1000 + 5000 )) milliseconds with $(( head + ${#line} )) bytes received"
      # A head begun and not ended (a worker stuck once it wrote its status line): what came, as probe_cut says it.
      if [ "$want" != status ] || [ -n "$interim" ]; then
        if [ "$want" = status ]; then PROBE_WHY+=": an interim answer ($interim) and no final one"
        elif [ "$fields" = 1 ]; then PROBE_WHY+=": \"$PROBE_STATUS\" and 1 header field, the head not ended"
        else PROBE_WHY+=": \"$PROBE_STATUS\" and $fields header fields, the head not ended"; fi
      fi
      PROBE_CODE=""; return 1
    fi
    # The bytes received: the line, and its end when read (a part as long as the limit ends without one).
    head=$(( head + ${#line} )); [ "$rc" != 0 ] || [ "${#line}" -ge 8192 ] || head=$(( head + 1 ))
    if [ "$head" -gt 102400 ]; then exec {fd}<&-; PROBE_WHY="the answer's head is larger than 100 KiB"; PROBE_CODE=""; return 1; fi
    # A part as long as the limit is a line that goes on: its rest is skipped (a long header field nobody reads).
    if [ "$part" = 1 ]; then [ "${#line}" -ge 8192 ] || part=0; [ "$rc" = 0 ] || break; continue; fi
    [ "${#line}" -lt 8192 ] || part=1
    line=${line%$'\r'}
    if [ "$want" = status ]; then
      if [ -z "$line" ] && [ "$rc" != 0 ]; then break; fi # the end of input where a status line was due
      if [[ ! $line =~ ^HTTP/[0-9.]+\ ([0-9]{3}) ]]; then
        exec {fd}<&-
        if [ -z "$line" ]; then PROBE_WHY="Empty reply from server"
        elif [ "${PROBE_VIA:-}" = curl ] && [[ $line =~ ^curl:\ \([0-9]+\)\ (.*) ]]; then probe_printable "${BASH_REMATCH[1]}" 300; PROBE_WHY=$PROBE_TEXT
        else probe_printable "$line" 60; PROBE_WHY="not an HTTP answer: $PROBE_TEXT"; fi
        return 1
      fi
      PROBE_CODE=${BASH_REMATCH[1]}; probe_printable "$line" 80; PROBE_STATUS=$PROBE_TEXT; fields=0
      case $PROBE_CODE in
        101) want=final; break ;;
        1??) want=interim; interim=$PROBE_STATUS ;; # its header fields, then the next status line
        [45]??) want=error ;;   # its framing fields (RFC 9112, 6), then the body's first bytes
        *) want=end ;;          # to the head's end; a 3xx's Location field (RFC 9110, 10.2.2) on the way
      esac
    elif [ -z "$line" ] && [ "$rc" = 0 ]; then
      if [ "$want" = error ] || { [ "$want" = end ] && [ -n "${PROBE_READ_BODY:-}" ]; }; then probe_body "$fd" "$until" "$length" "$chunked"; want=final; break; fi
      [ "$want" = interim ] || { want=final; break; }
      want=status
    elif [ -n "$line" ]; then
      fields=$(( fields + 1 ))
      if [ "$want" = error ] || { [ "$want" = end ] && [ -n "${PROBE_READ_BODY:-}" ]; }; then
        if [[ ${line,,} =~ ^content-length:[[:space:]]*([0-9]{1,9})[[:space:]]*$ ]]; then length=${BASH_REMATCH[1]}
        elif [[ ${line,,} == transfer-encoding:*chunked* ]] && [ "${PROBE_VIA:-}" != curl ]; then chunked=1; fi # curl decodes chunks
      fi
      if [ "$want" = end ] && [[ $PROBE_CODE == 3?? ]] && [ -z "$PROBE_LOCATION" ] && [[ ${line,,} == location:* ]]; then
        PROBE_LOCATION=${line#*:}
        PROBE_LOCATION=${PROBE_LOCATION#"${PROBE_LOCATION%%[!$' \t']*}"}; PROBE_LOCATION=${PROBE_LOCATION%"${PROBE_LOCATION##*[!$' \t']}"}
      fi
    fi
    [ "$rc" = 0 ] || break # the end of input (after a line without its end)
  done
  exec {fd}<&-
  [ "$want" != final ] && probe_cut "$want" "$head" "$fields" "$interim" && return 1
  return 0
}
# probe_cut WANT BYTES FIELDS INTERIM: why an answer whose connection closed before its head ended (probe_answer's
# state WANT, BYTES received, the FIELDS of its last head, the INTERIM status line if any) is none, in PROBE_WHY;
# PROBE_CODE emptied. Says what was received: nothing at all is curl's "Empty reply from server".
probe_cut() {
  local got="the connection closed after $2 bytes" s=s
  [ "$3" != 1 ] || s=""
  if [ "$2" = 0 ]; then PROBE_WHY="Empty reply from server"
  elif [ "$1" = status ] && [ -n "$4" ]; then PROBE_WHY="$got: an interim answer ($4) and no final one"
  else
    PROBE_WHY="$got, in the answer's head: \"$PROBE_STATUS\" and $3 header field$s, without the empty line that ends a head (nginx answers the site's visitors 502 for it: upstream prematurely closed connection)"
  fi
  PROBE_CODE=""; PROBE_LOCATION=""
}
# probe_body FD UNTIL_US LENGTH CHUNKED: the first bytes of an error answer's body on FD (its head read), what the app
# says about the refusal, in PROBE_BODY: 256 bytes at most (fewer when Content-Length says so; of the first chunk
# when chunked, RFC 9112, 7.1), read for 1 s at most and not past UNTIL_US (bash reads a socket a byte per read(2):
# bounded in bytes as in time); on one line, each run of white space one space (an indented HTML error page), 200
# characters at most, each unprintable one as "?" (probe_printable).
# What it quotes is masked as received, before any cut or change of its white space (mask_string: the secret values
# of the releases on the host; the runner masks it again, whole values only): a body cut short (at 200 characters,
# at the bytes read, by the time) loses what may be a secret's start and the word the cut falls in (mask_cut_end),
# so that no secret's first characters are ever shown.
probe_body() {
  local fd=$1 until=$2 n=256 size="" left wait body="" rc=0 cut=1
  [ -z "$3" ] || [ "$3" -ge "$n" ] || n=$3
  left=$(( until - ${EPOCHREALTIME/./} )); [ "$left" -lt 1000000 ] || left=1000000; [ "$left" -gt 1000 ] || left=1000
  printf -v wait '%d.%06d' $(( left / 1000000 )) $(( left % 1000000 ))
  if [ "$4" = 1 ]; then
    read -r -n 32 -t "$wait" -u "$fd" size 2>/dev/null || true
    size=${size%$'\r'}; size=${size%%;*}
    if [[ $size =~ ^[0-9A-Fa-f]{1,7}$ ]]; then [ $(( 16#$size )) -ge "$n" ] || n=$(( 16#$size )); else n=0; fi
  fi
  [ "$n" -eq 0 ] || read -r -N "$n" -t "$wait" -u "$fd" body 2>/dev/null || rc=$?
  # Whole: all that Content-Length announced, or all there was (the connection closed first, not chunked), in time.
  if [ -n "$3" ] && [ "$3" -le 256 ] && [ "$rc" -le 128 ] && [ "${#body}" -ge "$3" ]; then cut=0
  elif [ "$4" != 1 ] && [ "$rc" -ge 1 ] && [ "$rc" -le 128 ]; then cut=0
  elif [ "$4" = 1 ] && [ "$rc" = 0 ] && [ "$n" -gt 0 ] && [ "${#body}" -eq $(( 16#$size )) ]; then
    # A first chunk read whole: the body is whole when the next is the last (size 0; Node sends its res.end(body) so).
    if read -r -n 32 -t "$wait" -u "$fd" _ 2>/dev/null && read -r -n 32 -t "$wait" -u "$fd" size 2>/dev/null && [[ ${size%$'\r'} =~ ^0+(;.*)?$ ]]; then cut=0; fi
  fi
  # Masked as received first, then cut, then on one line (masked again: a secret's collapsed form), then cut to 200.
  mask_string "$body"; body=$MASK_TEXT
  [ "$cut" = 0 ] || { mask_cut_end "$body"; body=$MASK_TEXT; }
  body=${body//[$'\r\n\t\f\v']/ }
  while [[ $body == *"  "* ]]; do body=${body//"  "/" "}; done
  body=${body# }
  probe_printable "${body% }" 200; PROBE_BODY=$PROBE_TEXT
}
# probe_target PORT PATH LOCATION: the path of 127.0.0.1:PORT that LOCATION (a redirect's, answering GET PATH) points
# to, resolved as curl does (RFC 3986, 5.2: relative to PATH, dot segments removed, the fragment dropped; scheme and
# host without regard to case), in PROBE_TO; 1 when it points off this program (another host, port or scheme).
# This program is the origin the probe connects to, http://127.0.0.1:PORT (or localhost:PORT), and the one its
# request claims, as the site's visitors reach it: PROBE_PROTO://PROBE_HOST (a framework builds its redirects from
# Host and X-Forwarded-Proto: FastAPI's redirect_slashes under uvicorn's proxy headers). A redirect to the https of
# a probe sent as http (Django's SECURE_SSL_REDIRECT) points off it; one to http://PROBE_HOST[:80] of a probe sent as
# https is on it (Flask/Werkzeug without ProxyFix builds an absolute http URL from Host alone, its trailing-slash
# redirect http://example.org/health/; nginx passes it to visitors as is, and its port-80 server sends them on).
probe_target() {
  local port=$1 base=$2 to=${3%%#*} auth rest query seg scheme="" proto=${PROBE_PROTO:-http} claimed
  local -a segs=()
  claimed=${PROBE_HOST:-127.0.0.1:$port}; claimed=${claimed,,}
  if [[ $claimed != *:* ]]; then if [ "$proto" = https ]; then claimed+=:443; else claimed+=:80; fi; fi
  if [[ $to =~ ^([A-Za-z][A-Za-z0-9+.-]*): ]]; then
    scheme=${BASH_REMATCH[1],,}
    [ "$scheme" = http ] || [ "$scheme" = "$proto" ] || return 1
    to=${to:${#scheme}+1}
  fi
  if [[ $to == //* ]]; then
    to=${to:2}; auth=${to%%[/?]*}; rest=${to#"$auth"}; auth=${auth,,}
    # A reference without a scheme (//host/path) takes the one of the request it answers (RFC 3986, 5.2.2).
    if [[ $auth != *:* ]]; then if [ "${scheme:-$proto}" = https ]; then auth+=:443; else auth+=:80; fi; fi
    if [ "${scheme:-$proto}" = "$proto" ] && [ "$auth" = "$claimed" ]; then :
    elif [ "${scheme:-http}" = http ] && { [ "$auth" = "127.0.0.1:$port" ] || [ "$auth" = "localhost:$port" ]; }; then :
    elif [ "$scheme" = http ] && [ -n "${PROBE_HOST:-}" ] && [ "$auth" = "${PROBE_HOST,,}:80" ]; then :
    else return 1; fi
    to=/$rest; to=${to/#\/\//\/}
  fi
  case $to in
    /*) ;;
    "") to=$base ;;
    \?*) to=${base%%\?*}$to ;;
    *) base=${base%%\?*}; to=${base%/*}/$to ;;
  esac
  # Dot segments (RFC 3986, 5.2.4), in the path only.
  query=""; [[ $to != *\?* ]] || { query="?${to#*\?}"; to=${to%%\?*}; }
  rest=${to#/}
  while :; do
    seg=${rest%%/*}
    case $seg in
      .) ;;
      ..) [ ${#segs[@]} -eq 0 ] || unset 'segs[-1]' ;;
      *) segs+=("$seg") ;;
    esac
    if [[ $rest != */* ]]; then
      if [ "$seg" = . ] || [ "$seg" = .. ]; then segs+=(""); fi
      break
    fi
    rest=${rest#*/}
  done
  local IFS=/
  PROBE_TO="/${segs[*]}$query"
}
# probe_off PORT CODE LOCATION: why a probe of 127.0.0.1:PORT failed on a redirect off its program (probe_target),
# in PROBE_WHY, naming what the probe sent (a redirect to https: Django's SECURE_SSL_REDIRECT, when the scheme it
# was told is not the one its SECURE_PROXY_SSL_HEADER names).
probe_off() {
  probe_printable "$3" 300; PROBE_WHY="answered $2, a redirect to $PROBE_TEXT, off this program"
  probe_sent "$1"; PROBE_WHY+=" (the probe sent $PROBE_TEXT): the health path must answer 2xx itself"
}
# probe_verdict PORT PATH FD UNTIL_US: 0 when the answer on FD (to GET PATH) is 2xx, following redirects to other
# paths of 127.0.0.1:PORT (each a new request, read by UNTIL_US; by curl with PROBE_VIA=curl); else 1 with why in
# PROBE_WHY. Closes FD. A redirect back to a path already asked is a loop, said as such with the requests and
# Locations that made it (probe_loop); 5 redirects without one are said with theirs.
probe_verdict() {
  local port=$1 path=$2 fd=$3 until=$4 hop asked=" $2 " chain="" absolute=0
  for hop in 0 1 2 3 4 5; do
    if [ "$hop" -eq 0 ]; then :
    elif [ "${PROBE_VIA:-}" = curl ]; then probe_curl_send "$port" "$path"; fd=$PROBE_FD
    else probe_send "$port" "$path" || { PROBE_WHY=${PROBE_WHY:-"Failed to connect to 127.0.0.1 port $port: Connection refused"}; return 1; }; fd=$PROBE_FD; fi
    probe_answer "$fd" "$until" || return 1
    case $PROBE_CODE in
      2??) return 0 ;;
      3??) ;;
      *) if [ "$PROBE_CODE" -ge 400 ]; then PROBE_WHY="The requested URL returned error: $PROBE_CODE ($PROBE_STATUS)${PROBE_BODY:+, answering: $PROBE_BODY}"; else PROBE_WHY="answered $PROBE_CODE, not 2xx"; fi; return 1 ;;
    esac
    # Written into the next request line: none with a space or a control character (CR, LF).
    if [ -z "$PROBE_LOCATION" ]; then
      # 304 Not Modified, 300 Multiple Choices...: nothing to follow.
      PROBE_WHY="answered $PROBE_CODE without a Location to follow, not 2xx: the health path must answer 2xx itself"; return 1
    fi
    if ! probe_target "$port" "$path" "$PROBE_LOCATION" || [[ $PROBE_TO =~ [[:space:][:cntrl:]] ]]; then
      probe_off "$port" "$PROBE_CODE" "$PROBE_LOCATION"; return 1
    fi
    # The paths asked after the first come from the app's Locations too: quoted as they are (probe_printable).
    probe_printable "$path" 100; chain+="${chain:+; }GET $PROBE_TEXT"
    probe_printable "$PROBE_LOCATION" 100; chain+=": $PROBE_CODE to $PROBE_TEXT"
    [[ ! $PROBE_LOCATION =~ ^([A-Za-z][A-Za-z0-9+.-]*:|//) ]] || absolute=1
    if [[ $asked == *" $PROBE_TO "* ]]; then probe_loop "$port" "$PROBE_TO" "$chain" "$absolute"; return 1; fi
    asked+="$PROBE_TO "; path=$PROBE_TO
  done
  PROBE_WHY="more than 5 redirects ($chain)"; return 1
}
# probe_loop PORT PATH CHAIN ABSOLUTE: why a probe of 127.0.0.1:PORT whose redirects came back to PATH failed, in
# PROBE_WHY: the requests and Locations (CHAIN, each Location at most 100 characters, as probe_printable quotes it),
# what the probe sent (probe_sent) and the usual cause. A Location the app wrote as an absolute URL (ABSOLUTE 1) is
# built from the scheme and host it takes the request for: behind nginx, an app that does not trust X-Forwarded-Proto
# takes every request for plain http (it comes from 127.0.0.1 over http) and sends it to https, or to its canonical
# URL, which nginx hands it again as the same request. Relative ones are the app's own rules: one matching its own
# target, or two undoing each other (a trailing slash added by one, taken off by another).
probe_loop() {
  local hint
  if [ "$4" = 1 ] && [ -n "${PROBE_ROUTED:-}" ]; then
    hint="the app builds each Location from the scheme and host it takes the request for, and nginx would hand it the request it redirects to as this one again: usually it takes the request for plain http, as it does not trust the X-Forwarded-Proto nginx sends (uvicorn: --proxy-headers with --forwarded-allow-ips 127.0.0.1; Flask/Werkzeug: ProxyFix(app.wsgi_app, x_proto=1); Django: SECURE_PROXY_SSL_HEADER = ('HTTP_X_FORWARDED_PROTO', 'https'); Express: app.set('trust proxy', 'loopback'))"
  elif [[ $3 != *";"* ]]; then
    hint="a redirect rule of the app that matches its own target: the health path must answer 2xx itself"
  else
    hint="redirect rules of the app that undo each other (a trailing slash added by one, taken off by another): the health path must answer 2xx itself"
  fi
  probe_printable "$2" 100; PROBE_WHY="redirects in a loop, back to $PROBE_TEXT"
  probe_sent "$1"
  PROBE_WHY+=" ($3; the probe sent $PROBE_TEXT): $hint"
}
# probe_curl_send PORT PATH: probe_send's request made by a curl process, for a bash without net redirections: what
# curl received (-i: the head, then the body) in PROBE_FD, read by probe_answer as a connection's would be; curl's
# message in its place when it received nothing (PROBE_VIA=curl: probe_answer takes it as the reason). No proxy: the
# port is this host's own (LOCAL_CURL, core/steps/libraries.ts).
probe_curl_send() {
  local line
  local -a headers=(-H "Host: ${PROBE_HOST:-127.0.0.1:$1}" -H 'User-Agent: ops-pipeline-health-check')
  while IFS= read -r line; do line=${line%$'\r'}; [ -z "$line" ] || headers+=(-H "$line"); done <<< "${PROBE_HEADERS:-}"
  exec {PROBE_FD}< <(curl --noproxy '*' -sS -g -i "${headers[@]}" --max-time 5 "http://127.0.0.1:$1$2" 2>&1)
}
# elsewhere PORT: where a TCP port listens when 127.0.0.1 refuses it (ss -Htln, iproute2: another address, ::1 only),
# as ", " separated addresses; nothing when it listens nowhere. Asked once, for the verdict of a port that refused.
elsewhere() {
  local l out=""
  command -v ss >/dev/null || return 0
  while read -r _ _ _ l _; do [ "${l##*:}" = "$1" ] && out+="${out:+, }$l"; done < <(ss -Htln 2>/dev/null)
  printf '%s' "$out"
}
# wait_healthy TIMEOUT INTERVAL name:port:path...: 0 when every probe answered 2xx in time; else UNHEALTHY names
# each probe that never did, with why its last try failed ("Operation timed out after 5001 milliseconds with 0 bytes
# received": a program that accepts connections but never answers; a refused port also says where else it listens).
# With FATAL_GROUP set, gives up early once supervisor has given up on one of the group's programs, or one keeps
# exiting past startsecs (group_fatal's group_exits: restarted without end, never FATAL); and on a probe
# answered by the same client error for a quarter of TIMEOUT, 3 s at least (probe_rounds: a running app's verdict
# on the request), naming every other probe still pending too; with OTHER_PORTS set too, at once when a program of the
# group listens on a port of the other slot (group_listens, identity.sh: it shares the live release's port).
# Each round sends every pending probe's request first, then reads the answers: a slow page delays no other verdict.
# Between rounds, read's timeout on a pipe nobody writes to stands in for sleep (a builtin: no process per round).
# One subshell per call (probe_watchdog: a connect bounded to 5 s), none per probe; SIGUSR2 is trapped meanwhile.
wait_healthy() {
  # What the probes quote is masked (probe_printable): the texts of the releases on the host now, this release's
  # among them (probeLibrary sets MASK_ARGS, mask_forms's arguments; none in a script without them).
  if [ -n "${MASK_ARGS+x}" ]; then mask_load "${MASK_ARGS[@]}"; fi
  probe_armed probe_rounds "$@"
}
# probe_armed COMMAND [ARG...]: runs COMMAND with probe_send's connects bounded (probe_watchdog, a subshell of its own
# for the whole call) and `$pause` set: a pipe nobody writes to, whose read -t stands in for sleep between tries (a
# builtin: no process per try); it carries the watchdog's answers too (each read at once by probe_send: the pipe is
# empty between tries). SIGUSR2 is trapped meanwhile. COMMAND's exit status.
probe_armed() {
  local pause watchdog me=$BASHPID rc=0 PROBE_WATCHDOG PROBE_ACK
  exec {pause}<> <(:)
  exec {watchdog}> >(probe_watchdog "$me" "$pause" >/dev/null 2>&1)
  PROBE_WATCHDOG=$watchdog PROBE_ACK=$pause
  trap : USR2
  "$@" || rc=$?
  trap - USR2
  exec {watchdog}>&- {pause}<&-
  return "$rc"
}
# probe_rounds TIMEOUT INTERVAL name:port:path...: wait_healthy's rounds (its pause pipe and watchdog set up).
# shellcheck disable=SC2034 # UNHEALTHY is this function's result, read by the step that calls wait_healthy
probe_rounds() {
  local limit=$1 interval=$2 now deadline next_check window; shift 2
  local pending=("$@") left p name port path fd i now_us early="" early_p="" PROBE_VIA="" next_listen=0
  local PROBE_HOST PROBE_PROTO PROBE_HEADERS PROBE_ROUTED
  local -a fds=() sent_at=() sent_why=()
  local -A why=() refused=() refused_since=() refused_rounds=()
  # The exits group_fatal counts (group_exits): a program restarted without end after startsecs, from now on.
  local -A GROUP_EXITS=() GROUP_EXITS_AT=(); local GROUP_EXITS_SINCE
  # How long the same client error must last to be a verdict: a quarter of the timeout, 3 s at least (60 s: 15 s).
  # Apps answer 4xx for a few seconds while they start (Express listening before its routes are mounted, after an
  # `await db.connect()`; a server-side rendered page answering 404 until the API it asks is up): a window that
  # grows with the timeout the environment gives its programs to start waits for them as long as it lets them take,
  # within reason, while a verdict still comes well before the timeout. (Waiting for the group's other programs to
  # pass first would not do: a sibling that never starts would hide the client error behind the timeout.)
  window=$(( limit / 4 )); [ "$window" -ge 3 ] || window=3
  printf -v now '%(%s)T' -1; deadline=$(( now + limit )); next_check=$(( now + 2 )); GROUP_EXITS_SINCE=$now
  while :; do
    printf -v now '%(%s)T' -1
    if [ -n "${FATAL_GROUP:-}" ] && [ "$now" -ge "$next_check" ]; then
      next_check=$(( now + 2 ))
      # group_fatal: supervisor.sh (supervisor's XML-RPC; the step that sets FATAL_GROUP includes it).
      if group_fatal "$FATAL_GROUP"; then UNHEALTHY="$FATAL_WHY (waiting for ${pending[*]})"; return 1; fi
    fi
    # Each probe has 5 s from its own request (a connect that waited delays no other probe's verdict).
    fds=(); sent_at=(); sent_why=()
    for p in "${pending[@]}"; do
      IFS=: read -r name port path <<< "$p"; probe_for "$name"
      if probe_send "$port" "$path"; then fds+=("$PROBE_FD"); else fds+=(-); fi
      sent_at+=("${EPOCHREALTIME/./}"); sent_why+=("$PROBE_WHY")
    done
    left=(); i=0
    for p in "${pending[@]}"; do
      IFS=: read -r name port path <<< "$p"; probe_for "$name"; fd=${fds[$i]}; PROBE_WHY=${sent_why[$i]}; PROBE_CODE=""
      if [ "$fd" != - ]; then
        probe_verdict "$port" "$path" "$fd" $(( sent_at[i] + 5000000 )) && { i=$(( i + 1 )); continue; }
      elif [ -n "$PROBE_WHY" ]; then
        : # connected, but the request could not be sent; or no connection in time
      elif net_redirections; then
        PROBE_WHY="Failed to connect to 127.0.0.1 port $port: Connection refused"
      else
        # curl's own limit (--max-time 5) comes first: its words say why.
        PROBE_VIA=curl; probe_curl_send "$port" "$path"
        probe_verdict "$port" "$path" "$PROBE_FD" $(( ${EPOCHREALTIME/./} + 6000000 )) && { PROBE_VIA=""; i=$(( i + 1 )); continue; }
        PROBE_VIA=""
      fi
      i=$(( i + 1 )); left+=("$p"); why[$p]=$PROBE_WHY
      # A client error (4xx) is the app's answer to this request: it runs, and refuses it (a Host it does not allow,
      # authentication asked on the health path, no such path); asked again, it says the same. But 408 (Request
      # Timeout), 425 (Too Early) and 429 (Too Many Requests) ask to come back (RFC 9110, 15.5.9; RFC 8470; RFC
      # 6585). The same one for the window (above) and 3 rounds is a verdict: waiting out the timeout would change
      # nothing. 3 rounds keep one answer from being decisive when rounds are far apart (health_interval). The round
      # is read to its end first: every other probe still pending is named with its own reason (status tells each
      # program's health from the verdict), and no connection is left open.
      case $PROBE_CODE in
        408 | 425 | 429 | "" | [!4]??) refused[$p]="" ;;
        *)
          now_us=${EPOCHREALTIME/./}
          if [ "${refused[$p]:-}" != "$PROBE_CODE" ]; then refused[$p]=$PROBE_CODE; refused_since[$p]=$now_us; refused_rounds[$p]=0; fi
          refused_rounds[$p]=$(( ${refused_rounds[$p]} + 1 ))
          if [ -z "$early" ] && [ "${refused_rounds[$p]}" -ge 3 ] && [ $(( now_us - ${refused_since[$p]} )) -ge $(( window * 1000000 )) ]; then
            probe_sent "$port"
            early="the same client error for $(( (now_us - ${refused_since[$p]}) / 1000000 ))s, the program's answer to the probe (it runs, and refuses the request), from $p (${why[$p]}; the probe sends $PROBE_TEXT: a Host the app does not allow (Django's ALLOWED_HOSTS, Starlette's TrustedHostMiddleware), an auth middleware on the health path or a path that does not exist answer so; the health path must answer 2xx to this request)"
            early_p=$p
          fi ;;
      esac
    done
    [ ${#left[@]} -gt 0 ] || return 0
    pending=("${left[@]}")
    # A program of the group listening on a port of the other slot (OTHER_PORTS) shares the live release's port
    # (SO_REUSEPORT) and answers its visitors: said at once (twice a second at most), never waited out.
    if [ -n "${FATAL_GROUP:-}" ] && [ -n "${OTHER_PORTS:-}" ] && [ "${EPOCHREALTIME/./}" -ge "$next_listen" ]; then
      next_listen=$(( ${EPOCHREALTIME/./} + 500000 ))
      # Who listens (ss -p walks every process's descriptors, and a supervisor call) only once a port of the other
      # slot has a second listening socket: ten hosts starting at once on shared cores spent their CPU on it.
      if other_port_shared; then
        sup_pids; group_listens "$FATAL_GROUP" "${pending[@]}"
        if other_slot_listeners; then UNHEALTHY=$OTHER_SLOT_LISTENERS; return 1; fi
      fi
    fi
    if [ -n "$early" ]; then
      UNHEALTHY=$early; probe_pending "; still waiting for" "$early_p"; return 1
    fi
    printf -v now '%(%s)T' -1
    if [ "$now" -ge "$deadline" ]; then
      # Where each program listens instead (a port of its own choosing, a unix socket), for the verdict.
      [ -z "${FATAL_GROUP:-}" ] || sup_pids
      if [ -n "${FATAL_GROUP:-}" ] && declare -F group_listens >/dev/null; then group_listens "$FATAL_GROUP" "${pending[@]}"; fi
      UNHEALTHY="no healthy answer within ${limit}s from"; probe_pending "" ""
      # A program that exited meanwhile (fewer times than group_fatal's verdict takes) is no slow start: said so, in
      # its own words (group_exits, from the same supervisor call).
      if [ -n "${FATAL_GROUP:-}" ] && group_exits "$FATAL_GROUP" 1; then UNHEALTHY+="; $EXITS_WHY"
      elif [ -n "${FATAL_GROUP:-}" ] && [ -n "${SLOW_START_HINT:-}" ]; then probe_slow_start "$FATAL_GROUP" "$limit"; fi
      return 1
    fi
    read -r -t "$interval" -u "$pause" _ || true
  done
}
# probe_slow_start GROUP LIMIT: appends to UNHEALTHY, for the programs still pending whose port refused to the end
# while their process runs (supervisor's RUNNING or STARTING: SUP_STATE, read by the deadline's sup_pids) and listens
# nowhere else (probe_pending's "listens on" not added), that the start may just be slower than LIMIT (imports, a cache
# warmed or a database awaited before listening), with the setting that gives it longer (SLOW_START_HINT: the step's
# name for it, switch.health_timeout). Declared arrays only (set -u reads an undeclared one's key as arithmetic).
probe_slow_start() {
  local p name port st slow=""
  declare -p SUP_STATE >/dev/null 2>&1 || return 0
  for p in "${pending[@]}"; do
    IFS=: read -r name port _ <<< "$p"
    [[ ${why[$p]:-} == "Failed to connect to 127.0.0.1 port $port"* && ${why[$p]} != *"listens on"* ]] || continue
    st=${SUP_STATE[$1:$1-$name]:-}
    [[ $st == RUNNING || $st == STARTING ]] || continue
    slow+="${slow:+, }$name"
  done
  [ -z "$slow" ] || UNHEALTHY+="; $slow still running but listening on no port after ${2}s: a start slower than that (imports, a cache warmed or a database awaited before it listens) needs a longer ${SLOW_START_HINT} (${2}s now, in the environment's environment.yml); its log above says how far it got"
}
# probe_pending LEAD SKIP: appends to UNHEALTHY (after LEAD) each probe still pending but SKIP, with why its last try
# failed (probe_rounds's locals pending and why); a refused port also says where else it listens (elsewhere), or,
# from LISTENS_ELSEWHERE (group_listens, when it ran: undeclared, set -u reads its key as an unbound variable), where
# the program listens instead (another port, a unix socket).
probe_pending() {
  local p name port addrs sep=$1
  for p in "${pending[@]}"; do
    [ "$p" != "$2" ] || continue
    IFS=: read -r name port _ <<< "$p"
    if [[ ${why[$p]} == "Failed to connect to 127.0.0.1 port $port"* ]] && addrs=$(elsewhere "$port") && [ -n "$addrs" ]; then
      why[$p]+="; it listens on $addrs only: nginx and the health check connect to 127.0.0.1, so bind 127.0.0.1 or 0.0.0.0"
    elif [[ ${why[$p]} == "Failed to connect to 127.0.0.1 port $port"* ]] && declare -p LISTENS_ELSEWHERE >/dev/null 2>&1 && [ -n "${LISTENS_ELSEWHERE[$name]:-}" ]; then
      why[$p]+="; program $name listens on ${LISTENS_ELSEWHERE[$name]}, not on its port $port: the app takes its port from elsewhere (a config file such as gunicorn.conf.py's bind, a default, a .env value); give it {port} in its command or env (--bind 127.0.0.1:{port}, PORT: \"{port}\"), which the app must use"
    fi
    UNHEALTHY+="$sep $p (${why[$p]})"; sep=","
  done
}
