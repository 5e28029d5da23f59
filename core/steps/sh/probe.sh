# shellcheck shell=bash
# Health probes: plain HTTP on 127.0.0.1, every pending program at once, until a deadline. The clock is read with
# printf's %(%s)T (a builtin: no process per reading).
# A first request may be slow (cold caches, a busy host): 5 s per request, the deadline bounds the whole wait.
# probe PORT PATH: 0 when http://127.0.0.1:PORT PATH answers 2xx. curl -f fails on 4xx/5xx but takes a 3xx for a
# success (curl(1), --fail): a route declared with a slash (FastAPI's redirect_slashes: 307, Django's APPEND_SLASH:
# 301) passed the gate on its redirect while the check behind it failed. So a redirect is followed while it stays on
# this program (http://127.0.0.1:PORT/..., 5 at most) and the answer at its end counts; one that leaves it fails. Why
# a probe failed goes to stderr: curl's words (nothing listens, an error status, no answer in time), or ours.
probe() {
  local url="http://127.0.0.1:$1$2" out hop
  for hop in 0 1 2 3 4 5; do
    out=$(curl -fsS -g -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 5 "$url") || return 1
    case $out in
      2??\ *) return 0 ;;
      3??\ "http://127.0.0.1:$1/"*) url=${out#* } ;;
      3??\ ?*) echo "answered ${out%% *}, a redirect to ${out#* }, off this program: the health path must answer 2xx itself" >&2; return 1 ;;
      *) echo "answered ${out%% *}, not 2xx" >&2; return 1 ;;
    esac
  done
  echo "more than $hop redirects" >&2; return 1
}
# elsewhere PORT: where a TCP port listens when 127.0.0.1 refuses it (ss -Htln, iproute2: another address, ::1 only),
# as ", " separated addresses; nothing when it listens nowhere. Asked once, for the verdict of a port that refused.
elsewhere() {
  local l out=""
  command -v ss >/dev/null || return 0
  while read -r _ _ _ l _; do [ "${l##*:}" = "$1" ] && out+="${out:+, }$l"; done < <(ss -Htln 2>/dev/null)
  printf '%s' "$out"
}
# listening PORT: 0 when a TCP connection to 127.0.0.1:PORT is accepted, through bash's own /dev/tcp (a connect(2)
# in this shell: no process; refused at once while nothing listens). Bash manual, "Redirections": /dev/tcp/HOST/PORT.
# Only asked until a port was seen accepting once: our closed connection then waits in the program's accept queue,
# and a program that never accepts must not fill that queue (a full queue would make connect(2) hang).
listening() { local tcp; { exec {tcp}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1; exec {tcp}<&-; }
# wait_healthy TIMEOUT INTERVAL name:port:path...: 0 when every probe answered 2xx in time; else UNHEALTHY names
# each probe that never did, with why its last try failed, in curl's words ("Operation timed out after 5001
# milliseconds with 0 bytes received": a program that accepts connections but never answers).
# With FATAL_GROUP set, gives up early once supervisor has given up on one of the group's programs.
# While a program's port refuses connections (it is still starting: imports, migrations of its own), its HTTP probe
# (a curl process) is skipped, but once a second at least: ten hosts starting on shared cores each spent more on
# curl runs every INTERVAL than their programs' start-up, and a bash without /dev/tcp still gets probed.
# Between rounds, read's timeout on a pipe nobody writes to stands in for sleep (a builtin: no process per round).
# shellcheck disable=SC2034 # UNHEALTHY is this function's result, read by the step that calls it
wait_healthy() {
  local limit=$1 interval=$2 now deadline next_check curled_at=-1 gate why_dir; shift 2
  local pending=("$@") left p port path pause r addrs
  local -A accepted=() why=()
  exec {pause}<> <(:)
  # Where each probe's reason goes; none on a host whose /tmp is full (then the verdict stands without reasons).
  why_dir=$(mktemp -d 2>/dev/null) || why_dir=""
  printf -v now '%(%s)T' -1; deadline=$(( now + limit )); next_check=$(( now + 2 ))
  while :; do
    printf -v now '%(%s)T' -1
    if [ -n "${FATAL_GROUP:-}" ] && [ "$now" -ge "$next_check" ]; then
      next_check=$(( now + 2 ))
      # group_fatal: supervisor.sh (supervisor's XML-RPC; the step that sets FATAL_GROUP includes it).
      if group_fatal "$FATAL_GROUP"; then UNHEALTHY="supervisor gave up on a program that keeps exiting (waiting for ${pending[*]})"; exec {pause}<&-; rm -rf "${why_dir:-/nonexistent}"; return 1; fi
    fi
    # Probe every pending program at once: a slow page should not delay the others' verdict.
    local pids=() i=0
    gate=0; [ "$curled_at" = "$now" ] && gate=1
    for p in "${pending[@]}"; do
      IFS=: read -r _ port path <<< "$p"
      if [ "$gate" = 1 ] && [ -z "${accepted[$port]:-}" ]; then
        if ! listening "$port"; then pids+=(refused); continue; fi
        accepted[$port]=1
      fi
      r=${why_dir:+$why_dir/${#pids[@]}}
      probe "$port" "$path" 2> "${r:-/dev/null}" & pids+=($!)
    done
    [ "$gate" = 1 ] || curled_at=$now
    left=(); i=0
    for p in "${pending[@]}"; do
      if [ "${pids[$i]}" = refused ]; then
        left+=("$p"); IFS=: read -r _ port _ <<< "$p"; why[$p]="Failed to connect to 127.0.0.1 port $port: Connection refused"
      elif ! wait "${pids[$i]}"; then
        left+=("$p"); r=""; [ -z "$why_dir" ] || read -r r < "$why_dir/$i" || true
        if [[ $r =~ ^curl:\ \([0-9]+\)\ (.*) ]]; then r=${BASH_REMATCH[1]}; fi
        why[$p]=${r:-no answer}
      fi
      i=$(( i + 1 ))
    done
    [ ${#left[@]} -eq 0 ] && { exec {pause}<&-; rm -rf "${why_dir:-/nonexistent}"; return 0; }
    pending=("${left[@]}")
    printf -v now '%(%s)T' -1
    if [ "$now" -ge "$deadline" ]; then
      UNHEALTHY="no healthy answer within ${limit}s from"; r=""
      for p in "${left[@]}"; do
        IFS=: read -r _ port _ <<< "$p"
        if [[ ${why[$p]} == "Failed to connect to 127.0.0.1 port $port"* ]] && addrs=$(elsewhere "$port") && [ -n "$addrs" ]; then
          why[$p]+="; it listens on $addrs only: nginx and the health check connect to 127.0.0.1, so bind 127.0.0.1 or 0.0.0.0"
        fi
        UNHEALTHY+="$r $p (${why[$p]})"; r=","
      done
      exec {pause}<&-; rm -rf "${why_dir:-/nonexistent}"; return 1
    fi
    read -r -t "$interval" -u "$pause" _ || true
  done
}
