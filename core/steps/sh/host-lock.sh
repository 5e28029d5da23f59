# shellcheck shell=bash
# Apps sharing a host share its nginx configuration and certbot: host_lock NAME serializes the changes to
# them across apps (each app's own lock, in its base directory, only serializes that app's runs). flock(1)
# on /run/lock/ops-pipeline-NAME.lock, held until host_unlock NAME or the end of the script (the kernel
# drops it with the process: a killed run leaves nothing behind). Waits at most WAIT seconds (default 45).
host_lock() { # NAME [WAIT]
  local fd
  mkdir -p /run/lock
  exec {fd}>>"/run/lock/ops-pipeline-$1.lock"
  if ! /usr/bin/flock -w "${2:-45}" "$fd"; then
    echo "another app's run on this host has held /run/lock/ops-pipeline-$1.lock for ${2:-45}s (its $1 change); try again when it is done" >&2
    exit 1
  fi
  printf -v "HOST_LOCK_$1" %s "$fd"
}
host_unlock() { local v="HOST_LOCK_$1"; [ -z "${!v:-}" ] || /usr/bin/flock -u "${!v}"; }
# A run changes a host only while its lock there is its own. run_lock_guard, run first by every step of a run once
# its lock is taken (core/ops/locked.ts fences them) and again by critical_begin right before a switch flips nginx and
# `current`, returns when the lock at OPS_RUN_LOCK (the app's lock directory) still records this connection
# (connection=$OPS_CONNECTION, written when the lock was taken) and no forced release (broken_run_id=, written
# first by `ops lock release --force`). Otherwise nothing is changed: it says why and what `current`
# (OPS_RUN_CURRENT) names on one line of stderr (the runner reads it: LOCK_LOST_MARK, core/steps/lock.ts) and exits
# 75 (LOCK_LOST_EXIT). A run paused meanwhile (a frozen runner, a Ctrl-Z'd CLI) would otherwise go on where the
# forced release put the previous release back, or where another run holds the lock now. Nothing when OPS_RUN_LOCK is
# unset (a step outside a run's lock).
run_lock_guard() {
  [ -n "${OPS_RUN_LOCK:-}" ] || return 0
  local line held="" broken="" other="" why live
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      broken_run_id=*) broken=1 ;;
      "connection=${OPS_CONNECTION:-}") [ -z "${OPS_CONNECTION:-}" ] || held=1 ;;
      operation=* | actor=* | since=*) other+=" ${line}" ;;
    esac
  done 2>/dev/null < "$OPS_RUN_LOCK/info" || true
  if [ -n "$held" ] && [ -z "$broken" ]; then return 0; fi
  if [ -n "$broken" ]; then why="it was released by force (ops lock release --force)"
  elif [ ! -e "$OPS_RUN_LOCK" ]; then why="it was removed (ops lock release, or by hand)"
  elif [ -n "$other" ]; then why="another run holds it now (${other# })"
  else why="it does not record this run's connection"; fi
  live=$(readlink "${OPS_RUN_CURRENT:-}" 2>/dev/null || true); live=${live##*/}
  echo "the run's lock on this host is no longer its own: ${why}; this step changed nothing (current names ${live:-nothing})" >&2
  exit 75
}
