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
# probe_send PORT PATH: connect to 127.0.0.1:PORT and send GET PATH (HTTP/1.1, Connection: close: the program
# closes after its answer). The connection in PROBE_FD; else 1, PROBE_WHY empty when the connection was not made
# (refused, or no net redirections), else why the request could not be sent (closed at once: no answer).
# PATH is the environment's health path: the schema lets through [A-Za-z0-9._~/-] and a query string of
# [A-Za-z0-9._~/=&%+-] only: no space nor control character that would break the request line.
probe_send() {
  PROBE_WHY=""
  { exec {PROBE_FD}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  # A program that resets the connection at once makes this write fail (EPIPE): SIGPIPE would end the whole script.
  trap '' PIPE
  if printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUser-Agent: ops-pipeline-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n' "$2" "$1" 1>&"$PROBE_FD" 2>/dev/null; then
    trap - PIPE; return 0
  fi
  trap - PIPE; exec {PROBE_FD}<&-; PROBE_WHY="Empty reply from server"; return 1
}
# probe_answer FD UNTIL_US: reads the answer on FD until UNTIL_US ($EPOCHREALTIME in microseconds), then closes FD
# (the body is not read). 0 with its status in PROBE_CODE and, for a 3xx, its Location header in PROBE_LOCATION;
# 1 with why in PROBE_WHY (no answer in time, the connection closed, not HTTP).
probe_answer() {
  local fd=$1 until=$2 now left wait line="" rc=0
  PROBE_CODE=""; PROBE_LOCATION=""
  now=${EPOCHREALTIME/./}; left=$(( until - now )); [ "$left" -gt 1000 ] || left=1000
  printf -v wait '%d.%06d' $(( left / 1000000 )) $(( left % 1000000 ))
  read -r -t "$wait" -u "$fd" line 2>/dev/null || rc=$? # a reset connection: an error, as the end of input is
  line=${line%$'\r'}
  if [ "$rc" -gt 128 ]; then
    exec {fd}<&-; now=${EPOCHREALTIME/./}
    PROBE_WHY="Operation timed out after $(( (now - until) / 1000 + 5000 )) milliseconds with ${#line} bytes received"; return 1
  fi
  if [[ ! $line =~ ^HTTP/[0-9.]+\ ([0-9]{3}) ]]; then
    exec {fd}<&-
    if [ -z "$line" ]; then PROBE_WHY="Empty reply from server"; else PROBE_WHY="not an HTTP answer: ${line:0:60}"; fi
    return 1
  fi
  PROBE_CODE=${BASH_REMATCH[1]}
  # A redirect's target: its Location field (RFC 9110, 10.2.2), among at most 100 header lines read in time.
  if [[ $PROBE_CODE == 3?? ]]; then
    for _ in {1..100}; do
      read -r -t "$wait" -u "$fd" line 2>/dev/null || break
      line=${line%$'\r'}; [ -n "$line" ] || break
      if [[ ${line,,} == location:* ]]; then PROBE_LOCATION=${line#*:}; PROBE_LOCATION=${PROBE_LOCATION# }; break; fi
    done
  fi
  exec {fd}<&-
}
# probe_verdict PORT PATH FD UNTIL_US: 0 when the answer on FD (to GET PATH) is 2xx, following redirects to other
# paths of 127.0.0.1:PORT (each a new request, read by UNTIL_US); else 1 with why in PROBE_WHY. Closes FD.
probe_verdict() {
  local port=$1 path=$2 fd=$3 until=$4 hop to
  for hop in 0 1 2 3 4 5; do
    if [ "$hop" -gt 0 ]; then probe_send "$port" "$path" || { PROBE_WHY=${PROBE_WHY:-"Failed to connect to 127.0.0.1 port $port: Connection refused"}; return 1; }; fd=$PROBE_FD; fi
    probe_answer "$fd" "$until" || return 1
    case $PROBE_CODE in
      2??) return 0 ;;
      3??) ;;
      *) if [ "$PROBE_CODE" -ge 400 ]; then PROBE_WHY="The requested URL returned error: $PROBE_CODE"; else PROBE_WHY="answered $PROBE_CODE, not 2xx"; fi; return 1 ;;
    esac
    # Where it points, as a path of this program: absolute (/x), on this origin (http://127.0.0.1:PORT/x), or relative
    # to the path asked (x). Written into the next request line: none with a space or a control character (CR, LF).
    to=$PROBE_LOCATION
    case $to in
      "http://127.0.0.1:$port/"*) to=/${to#"http://127.0.0.1:$port/"} ;;
      //* | *://*) to="" ;;
      /*) ;;
      ?*) to=${path%/*}/$to ;;
    esac
    if [ -z "$to" ] || [[ $to =~ [[:space:][:cntrl:]] ]]; then
      PROBE_WHY="answered $PROBE_CODE, a redirect to ${PROBE_LOCATION:-nowhere}, off this program: the health path must answer 2xx itself"; return 1
    fi
    path=$to
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
    case $out in
      2??\ *) return 0 ;;
      3??\ "http://127.0.0.1:$1/"*) url=${out#* } ;;
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
# shellcheck disable=SC2034 # UNHEALTHY is this function's result, read by the step that calls it
wait_healthy() {
  local limit=$1 interval=$2 now deadline next_check sent_at; shift 2
  local pending=("$@") left p port path pause fd i sep addrs
  local -a fds=() sent_why=()
  local -A why=()
  exec {pause}<> <(:)
  printf -v now '%(%s)T' -1; deadline=$(( now + limit )); next_check=$(( now + 2 ))
  while :; do
    printf -v now '%(%s)T' -1
    if [ -n "${FATAL_GROUP:-}" ] && [ "$now" -ge "$next_check" ]; then
      next_check=$(( now + 2 ))
      # group_fatal: supervisor.sh (supervisor's XML-RPC; the step that sets FATAL_GROUP includes it).
      if group_fatal "$FATAL_GROUP"; then UNHEALTHY="supervisor gave up on a program that keeps exiting (waiting for ${pending[*]})"; exec {pause}<&-; return 1; fi
    fi
    fds=(); sent_why=(); sent_at=${EPOCHREALTIME/./}
    for p in "${pending[@]}"; do
      IFS=: read -r _ port path <<< "$p"
      if probe_send "$port" "$path"; then fds+=("$PROBE_FD"); else fds+=(-); fi
      sent_why+=("$PROBE_WHY")
    done
    left=(); i=0
    for p in "${pending[@]}"; do
      IFS=: read -r _ port path <<< "$p"; fd=${fds[$i]}; PROBE_WHY=${sent_why[$i]}; i=$(( i + 1 ))
      if [ "$fd" != - ]; then
        probe_verdict "$port" "$path" "$fd" $(( sent_at + 5000000 )) && continue
      elif [ -n "$PROBE_WHY" ]; then
        : # connected, but the request could not be sent
      elif net_redirections; then
        PROBE_WHY="Failed to connect to 127.0.0.1 port $port: Connection refused"
      else
        probe_curl "$port" "$path" && continue
      fi
      left+=("$p"); why[$p]=$PROBE_WHY
    done
    [ ${#left[@]} -eq 0 ] && { exec {pause}<&-; return 0; }
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
      exec {pause}<&-; return 1
    fi
    read -r -t "$interval" -u "$pause" _ || true
  done
}
