# shellcheck shell=bash
# Health probes: plain HTTP on 127.0.0.1, every pending program at once, until a deadline. The clock is read with
# printf's %(%s)T (a builtin: no process per reading).
# A first request may be slow (cold caches, a busy host): 5 s per probe, the deadline bounds the whole wait.
# curl says why a probe failed on stderr (nothing listens, an error status, no answer in time).
probe() { curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:$1$2"; }
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
  local pending=("$@") left p port path pause r
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
      for p in "${left[@]}"; do UNHEALTHY+="$r $p (${why[$p]})"; r=","; done
      exec {pause}<&-; rm -rf "${why_dir:-/nonexistent}"; return 1
    fi
    read -r -t "$interval" -u "$pause" _ || true
  done
}
