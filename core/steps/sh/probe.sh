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
# probe_send PORT PATH: connect to 127.0.0.1:PORT and send GET PATH (HTTP/1.1, Connection: close: the program
# closes after its answer). The connection in PROBE_FD; else 1, PROBE_WHY empty when the connection was not made
# (refused, or no net redirections), else why not (no connection within 5 s: see probe_watchdog; closed at once).
# PATH is the environment's health path (the schema lets through [A-Za-z0-9._~/-] and a query string of
# [A-Za-z0-9._~/=&%+-] only) or a redirect's path resolved by probe_target (none with a space or a control
# character): nothing that would break the request line.
probe_send() {
  local rc=0 fired=0 t0=${EPOCHREALTIME/./}
  PROBE_WHY=""
  # A program that resets the connection at once makes the request's write fail (EPIPE), as a watchdog gone makes
  # its: SIGPIPE would end the whole script. Armed with 5 s, the probe's own limit (curl's --max-time), when
  # wait_healthy started the watchdog; without its answer in time (it is gone), the probes go on without it.
  trap '' PIPE
  if [ -n "${PROBE_WATCHDOG:-}" ] && ! printf '5\n' 1>&"$PROBE_WATCHDOG" 2>/dev/null; then PROBE_WATCHDOG=""; fi
  { exec {PROBE_FD}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || rc=1
  if [ -n "${PROBE_WATCHDOG:-}" ]; then
    { printf '\n' 1>&"$PROBE_WATCHDOG" 2>/dev/null && read -r -t 6 -u "$PROBE_ACK" fired; } || { PROBE_WATCHDOG=""; fired=0; }
  fi
  if [ "$rc" -ne 0 ]; then
    trap - PIPE
    [ "$fired" = 0 ] || PROBE_WHY="Connection timed out after $(( (${EPOCHREALTIME/./} - t0) / 1000 )) milliseconds: 127.0.0.1 port $1 listens but accepts no connection, its accept queue full: a program stuck or overloaded"
    return 1
  fi
  if printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUser-Agent: ops-pipeline-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n' "$2" "$1" 1>&"$PROBE_FD" 2>/dev/null; then
    trap - PIPE; return 0
  fi
  trap - PIPE; exec {PROBE_FD}<&-; PROBE_WHY="Empty reply from server"; return 1
}
# probe_printable TEXT MAX: TEXT as it may be quoted in a reason (what a server sent): its first MAX characters, each
# control or unprintable one (a terminal escape, an HTTP/2 frame's bytes) as "?"; in PROBE_TEXT.
probe_printable() {
  PROBE_TEXT=${1:0:$2}; PROBE_TEXT=${PROBE_TEXT//[^[:print:]]/?}
}
# probe_answer FD UNTIL_US: reads the answer's head on FD until UNTIL_US ($EPOCHREALTIME in microseconds), then
# closes FD (the body is not read). 0 with its status in PROBE_CODE and, for a 3xx, its Location field in
# PROBE_LOCATION; 1 with why in PROBE_WHY (no answer in time, the connection closed, not HTTP).
# RFC 9112/9110: interim answers (1xx but 101: 100 Continue, 103 Early Hints) come before the final one and are
# skipped, as curl does. Bounded in bytes as in time: bash reads a socket one byte per read(2), so each line is
# read in parts of at most 8 KiB (read -n) and the head up to 100 KiB (curl's CURL_MAX_HTTP_HEADER): an endless
# line (a stream, a binary protocol) costs a bounded read, not minutes of CPU.
probe_answer() {
  local fd=$1 until=$2 now left wait line rc head=0 part=0 want=status
  PROBE_CODE=""; PROBE_LOCATION=""
  now=${EPOCHREALTIME/./}; left=$(( until - now )); [ "$left" -gt 1000 ] || left=1000
  printf -v wait '%d.%06d' $(( left / 1000000 )) $(( left % 1000000 ))
  while :; do
    rc=0; line=""
    read -r -n 8192 -t "$wait" -u "$fd" line 2>/dev/null || rc=$? # a reset connection: an error, as the end of input is
    if [ "$rc" -gt 128 ]; then
      exec {fd}<&-; now=${EPOCHREALTIME/./}
      PROBE_WHY="Operation timed out after $(( (now - until) / 1000 + 5000 )) milliseconds with $(( head + ${#line} )) bytes received"; return 1
    fi
    head=$(( head + ${#line} + 1 ))
    if [ "$head" -gt 102400 ]; then exec {fd}<&-; PROBE_WHY="the answer's head is larger than 100 KiB"; return 1; fi
    # A part as long as the limit is a line that goes on: its rest is skipped (a long header field nobody reads).
    if [ "$part" = 1 ]; then [ "${#line}" -ge 8192 ] || part=0; continue; fi
    [ "${#line}" -lt 8192 ] || part=1
    line=${line%$'\r'}
    if [ "$want" = status ]; then
      if [[ ! $line =~ ^HTTP/[0-9.]+\ ([0-9]{3}) ]]; then
        exec {fd}<&-
        if [ -z "$line" ]; then PROBE_WHY="Empty reply from server"; else probe_printable "$line" 60; PROBE_WHY="not an HTTP answer: $PROBE_TEXT"; fi
        return 1
      fi
      PROBE_CODE=${BASH_REMATCH[1]}
      case $PROBE_CODE in
        101) want=final; break ;;
        1??) want=interim ;;    # its header fields, then the next status line
        3??) want=location ;;   # its Location field (RFC 9110, 10.2.2)
        *) want=final; break ;;
      esac
    elif [ -z "$line" ]; then
      [ "$want" = interim ] || break; want=status
    elif [ "$want" = location ] && [[ ${line,,} == location:* ]]; then
      PROBE_LOCATION=${line#*:}
      PROBE_LOCATION=${PROBE_LOCATION#"${PROBE_LOCATION%%[!$' \t']*}"}; PROBE_LOCATION=${PROBE_LOCATION%"${PROBE_LOCATION##*[!$' \t']}"}
      break
    fi
    [ "$rc" = 0 ] || break # the end of input (after a line without its end)
  done
  exec {fd}<&-
  # The input ended after an interim answer: no final one.
  if [ "$want" = interim ] || [ "$want" = status ]; then PROBE_WHY="Empty reply from server"; return 1; fi
}
# probe_target PORT PATH LOCATION: the path of 127.0.0.1:PORT that LOCATION (a redirect's, answering GET PATH) points
# to, resolved as curl does (RFC 3986, 5.2: relative to PATH, dot segments removed, the fragment dropped; scheme and
# host without regard to case), in PROBE_TO; 1 when it points off this program (another host, port or scheme).
# localhost is this program too (the probe connects to 127.0.0.1 either way).
probe_target() {
  local port=$1 base=$2 to=${3%%#*} auth rest query seg
  local -a out=()
  if [[ $to =~ ^[A-Za-z][A-Za-z0-9+.-]*: ]]; then
    [[ ${to,,} == http://* ]] || return 1
    to=${to:5}
  fi
  if [[ $to == //* ]]; then
    to=${to:2}; auth=${to%%[/?]*}; rest=${to#"$auth"}; auth=${auth,,}
    [[ $auth == *:* ]] || auth+=:80
    [ "$auth" = "127.0.0.1:$port" ] || [ "$auth" = "localhost:$port" ] || return 1
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
      ..) [ ${#out[@]} -eq 0 ] || unset 'out[-1]' ;;
      *) out+=("$seg") ;;
    esac
    if [[ $rest != */* ]]; then
      if [ "$seg" = . ] || [ "$seg" = .. ]; then out+=(""); fi
      break
    fi
    rest=${rest#*/}
  done
  local IFS=/
  PROBE_TO="/${out[*]}$query"
}
# probe_verdict PORT PATH FD UNTIL_US: 0 when the answer on FD (to GET PATH) is 2xx, following redirects to other
# paths of 127.0.0.1:PORT (each a new request, read by UNTIL_US); else 1 with why in PROBE_WHY. Closes FD.
probe_verdict() {
  local port=$1 path=$2 fd=$3 until=$4 hop
  for hop in 0 1 2 3 4 5; do
    if [ "$hop" -gt 0 ]; then probe_send "$port" "$path" || { PROBE_WHY=${PROBE_WHY:-"Failed to connect to 127.0.0.1 port $port: Connection refused"}; return 1; }; fd=$PROBE_FD; fi
    probe_answer "$fd" "$until" || return 1
    case $PROBE_CODE in
      2??) return 0 ;;
      3??) ;;
      *) if [ "$PROBE_CODE" -ge 400 ]; then PROBE_WHY="The requested URL returned error: $PROBE_CODE"; else PROBE_WHY="answered $PROBE_CODE, not 2xx"; fi; return 1 ;;
    esac
    # Written into the next request line: none with a space or a control character (CR, LF).
    if [ -z "$PROBE_LOCATION" ]; then
      # 304 Not Modified, 300 Multiple Choices...: nothing to follow.
      PROBE_WHY="answered $PROBE_CODE without a Location to follow, not 2xx: the health path must answer 2xx itself"; return 1
    fi
    if ! probe_target "$port" "$path" "$PROBE_LOCATION" || [[ $PROBE_TO =~ [[:space:][:cntrl:]] ]]; then
      probe_printable "$PROBE_LOCATION" 300
      PROBE_WHY="answered $PROBE_CODE, a redirect to $PROBE_TEXT, off this program: the health path must answer 2xx itself"; return 1
    fi
    path=$PROBE_TO
  done
  PROBE_WHY="more than 5 redirects"; return 1
}
# probe_curl PORT PATH: the same check by curl processes (a bash without net redirections); why in PROBE_WHY.
probe_curl() {
  local url="http://127.0.0.1:$1$2" out hop
  for hop in 0 1 2 3 4 5; do
    if ! out=$(curl -fsS -g -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 5 "$url" 2>&1); then
      out=${out%%$'\n'*} # curl's message, then what -w wrote ("000 ")
      if [[ $out =~ curl:\ \([0-9]+\)\ (.*) ]]; then PROBE_WHY=${BASH_REMATCH[1]}; else PROBE_WHY=${out:-no answer}; fi
      return 1
    fi
    # curl resolved the Location (RFC 3986); on this program when its origin is (as probe_target: localhost too).
    case ${out,,} in
      2??\ *) return 0 ;;
      3??\ "http://127.0.0.1:$1/"* | 3??\ "http://localhost:$1/"*) url=${out#* }; url="http://127.0.0.1:$1/${url#*://*/}" ;;
      3??\ ) PROBE_WHY="answered ${out%% *} without a Location to follow, not 2xx: the health path must answer 2xx itself"; return 1 ;;
      3??\ ?*) PROBE_WHY="answered ${out%% *}, a redirect to ${out#* }, off this program: the health path must answer 2xx itself"; return 1 ;;
      *) PROBE_WHY="answered ${out%% *}, not 2xx"; return 1 ;;
    esac
  done
  PROBE_WHY="more than 5 redirects"; return 1
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
# With FATAL_GROUP set, gives up early once supervisor has given up on one of the group's programs.
# Each round sends every pending probe's request first, then reads the answers: a slow page delays no other verdict.
# Between rounds, read's timeout on a pipe nobody writes to stands in for sleep (a builtin: no process per round).
# One subshell per call (probe_watchdog: a connect bounded to 5 s), none per probe; SIGUSR2 is trapped meanwhile.
wait_healthy() {
  local pause watchdog me=$BASHPID rc=0 PROBE_WATCHDOG PROBE_ACK
  # One pipe nobody writes to stands in for sleep between rounds, and carries the watchdog's answers (each read
  # at once by probe_send: the pipe is empty between rounds).
  exec {pause}<> <(:)
  exec {watchdog}> >(probe_watchdog "$me" "$pause" >/dev/null 2>&1)
  PROBE_WATCHDOG=$watchdog PROBE_ACK=$pause
  trap : USR2
  probe_rounds "$@" || rc=$?
  trap - USR2
  exec {watchdog}>&- {pause}<&-
  return "$rc"
}
# probe_rounds TIMEOUT INTERVAL name:port:path...: wait_healthy's rounds (its pause pipe and watchdog set up).
# shellcheck disable=SC2034 # UNHEALTHY is this function's result, read by the step that calls wait_healthy
probe_rounds() {
  local limit=$1 interval=$2 now deadline next_check; shift 2
  local pending=("$@") left p port path fd i sep addrs
  local -a fds=() sent_at=() sent_why=()
  local -A why=()
  printf -v now '%(%s)T' -1; deadline=$(( now + limit )); next_check=$(( now + 2 ))
  while :; do
    printf -v now '%(%s)T' -1
    if [ -n "${FATAL_GROUP:-}" ] && [ "$now" -ge "$next_check" ]; then
      next_check=$(( now + 2 ))
      # group_fatal: supervisor.sh (supervisor's XML-RPC; the step that sets FATAL_GROUP includes it).
      if group_fatal "$FATAL_GROUP"; then UNHEALTHY="supervisor gave up on a program that keeps exiting (waiting for ${pending[*]})"; return 1; fi
    fi
    # Each probe has 5 s from its own request (a connect that waited delays no other probe's verdict).
    fds=(); sent_at=(); sent_why=()
    for p in "${pending[@]}"; do
      IFS=: read -r _ port path <<< "$p"
      if probe_send "$port" "$path"; then fds+=("$PROBE_FD"); else fds+=(-); fi
      sent_at+=("${EPOCHREALTIME/./}"); sent_why+=("$PROBE_WHY")
    done
    left=(); i=0
    for p in "${pending[@]}"; do
      IFS=: read -r _ port path <<< "$p"; fd=${fds[$i]}; PROBE_WHY=${sent_why[$i]}
      if [ "$fd" != - ]; then
        probe_verdict "$port" "$path" "$fd" $(( sent_at[i] + 5000000 )) && { i=$(( i + 1 )); continue; }
      elif [ -n "$PROBE_WHY" ]; then
        : # connected, but the request could not be sent; or no connection in time
      elif net_redirections; then
        PROBE_WHY="Failed to connect to 127.0.0.1 port $port: Connection refused"
      else
        probe_curl "$port" "$path" && { i=$(( i + 1 )); continue; }
      fi
      i=$(( i + 1 )); left+=("$p"); why[$p]=$PROBE_WHY
    done
    [ ${#left[@]} -gt 0 ] || return 0
    pending=("${left[@]}")
    printf -v now '%(%s)T' -1
    if [ "$now" -ge "$deadline" ]; then
      UNHEALTHY="no healthy answer within ${limit}s from"; sep=""
      for p in "${left[@]}"; do
        IFS=: read -r _ port _ <<< "$p"
        if [[ ${why[$p]} == "Failed to connect to 127.0.0.1 port $port"* ]] && addrs=$(elsewhere "$port") && [ -n "$addrs" ]; then
          why[$p]+="; it listens on $addrs only: nginx and the health check connect to 127.0.0.1, so bind 127.0.0.1 or 0.0.0.0"
        fi
        UNHEALTHY+="$sep $p (${why[$p]})"; sep=","
      done
      return 1
    fi
    read -r -t "$interval" -u "$pause" _ || true
  done
}
