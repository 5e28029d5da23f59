# shellcheck shell=bash
# What a user's command (build, migrate, hooks, initdata) or a dependency install (npm ci and npm rebuild running the
# packages' install scripts, pip and uv building an sdist: setup.py) leaves running when it exits: a background process
# that keeps the step's output open (`watcher &`) holds the step until it exits, and a daemon it started (a build
# server, output redirected) stays as the app user, one more per deploy. contained runs the command in a session of its own
# with a marker in its environment, and once it exited stops the session and whatever of this user carries the marker.
# Builtins where they do. Needs nothing else.

# proc_env_get PID NAME: PROC_ENV, the value of NAME in /proc/PID/environ (the environment it started with); empty
# when unset or unreadable. Builtins only: no process per call. proc_env PID NAME prints it (a line; nothing when empty).
proc_env_get() {
  local v
  PROC_ENV=""
  # One it may not read (another user's, gone) fails the redirection: not an error (set -e) here.
  { while IFS= read -r -d '' v; do case $v in "$2="*) PROC_ENV=${v#"$2"=}; return 0 ;; esac; done < "/proc/$1/environ"; } 2>/dev/null || true
}
proc_env() { local PROC_ENV; proc_env_get "$1" "$2"; [ -z "$PROC_ENV" ] || printf '%s\n' "$PROC_ENV"; }

# contained_left SID RUN: the pids of this user's processes in session SID or with OPS_RUN=RUN in their environment,
# but this script's own and zombies; one a line.
contained_left() {
  local p uid stat PROC_ENV
  local -A in_session=()
  uid=$(id -u)
  for p in $(pgrep -u "$uid" -s "$1" 2>/dev/null || true); do in_session[$p]=1; done
  for p in $(pgrep -u "$uid" 2>/dev/null || true); do
    if [ "$p" = "$$" ] || [ "$p" = "$BASHPID" ]; then continue; fi
    [ -n "${in_session[$p]:-}" ] || proc_env_get "$p" OPS_RUN
    if [ -n "${in_session[$p]:-}" ] || [ "$PROC_ENV" = "$2" ]; then
      # A zombie (exited, not yet reaped by init) holds nothing open.
      stat=""; read -r stat 2>/dev/null < "/proc/$p/stat" || true; stat=${stat##*) }
      [ "${stat%% *}" = Z ] || printf '%s\n' "$p"
    fi
  done
}

# contained_down SID RUN WHAT: SIGTERM to what contained_left finds (looked for again each 0.1 s: what they fork as they go, each signalled once), SIGKILL
# to what is left after 5 s (for 7 s at most in all); prints (stdout) what it stopped on one line, WHAT saying when;
# nothing when nothing was left.
contained_down() {
  local sid=$1 run=$2 what=$3 p pause now kill_at deadline said="" killed=""
  local -a left=() fresh=()
  local -A seen=() was_killed=()
  exec {pause}<> <(:)
  printf -v now '%(%s)T' -1; kill_at=$(( now + 5 )); deadline=$(( now + 7 ))
  while :; do
    mapfile -t left < <(contained_left "$sid" "$run")
    [ ${#left[@]} -gt 0 ] || break
    fresh=()
    for p in "${left[@]}"; do
      [ -z "${seen[$p]:-}" ] || continue
      seen[$p]=1; fresh+=("$p"); said+="${said:+, }pid $p ($(cat "/proc/$p/comm" 2>/dev/null || echo gone))"
    done
    if [ "$now" -ge "$kill_at" ]; then
      kill -KILL "${left[@]}" 2>/dev/null || true
      for p in "${left[@]}"; do [ -n "${was_killed[$p]:-}" ] || { was_killed[$p]=1; killed+="${killed:+ }$p"; }; done
    elif [ ${#fresh[@]} -gt 0 ]; then kill -TERM "${fresh[@]}" 2>/dev/null || true; fi
    [ "$now" -lt "$deadline" ] || break
    read -r -t 0.1 -u "$pause" _ || true
    printf -v now '%(%s)T' -1
  done
  exec {pause}<&-
  [ -z "$said" ] || printf 'stopped what the command left running %s: %s%s\n' "$what" "$said" "${killed:+; killed (SIGKILL) after 5 s: $killed}"
}

# contained COMMAND [ARG...]: runs the shell text COMMAND (bash -euo pipefail, as a step's own lines; stdin /dev/null;
# the ARGs as its $1...) in a session of its own (setsid) with OPS_RUN, a mark of this run, in its environment; once it
# exited, stops what it left (contained_down), then returns its exit status. A step stopped meanwhile (its timeout's
# SIGTERM, which reaches the step's process group, not the command's session) stops the command the same way before it
# ends (exit 143).
contained() {
  local run pid status=0
  run="$$-$(cat /proc/sys/kernel/random/uuid 2>/dev/null || printf '%s%s' "$RANDOM" "$RANDOM")"
  OPS_RUN=$run setsid bash -euo pipefail -c "$1" bash "${@:2}" < /dev/null &
  pid=$!
  # shellcheck disable=SC2064 # pid and run are this call's, fixed now
  trap "contained_down $pid ${run@Q} 'when the step was stopped'; exit 143" TERM INT HUP
  wait "$pid" || status=$?
  trap - TERM INT HUP
  contained_down "$pid" "$run" "after it exited"
  return "$status"
}
