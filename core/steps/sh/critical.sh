# shellcheck shell=bash
# A switch cut off half-way leaves nginx routing to the new release while `current` (what status, rollback and
# the next deploy read) still names the old one; any nginx change cut off half-way (provision's) leaves files nginx
# never tested in /etc/nginx, not what serves, for the next reload to load, and its snapshot behind. Whatever
# happens to the runner meanwhile, the part of a script between critical_begin and critical_end runs to its end:
# - the runner interrupted (Ctrl-C, a cancelled workflow): its lock is released over a new connection, which
#   stops what the old one left running (releaseLock) only once critical_wait holds the lock a section holds;
# - the connection lost: sshd closes the script's pipes and its next write would kill it (SIGPIPE) or fail it
#   (errexit): inside a section the output goes to a file, given back to the script's streams at critical_end;
# - a signal (the step's `timeout`, the forced stop's TERM): SIGHUP, SIGINT, SIGTERM and SIGPIPE are ignored
#   (so are they by the commands it runs: an ignored signal stays ignored across exec). SIGKILL cannot be:
#   `timeout -k 10` sends it 10 s after the step's time is up, and the forced stop after critical_wait's 60 s.
# One host-wide flock(1) file (/run/lock/ops-pipeline-switch.lock): switches of apps sharing a host are short and
# already one at a time under host_lock nginx. The kernel drops the lock with the process.
critical_begin() { # NEEDS: the most seconds the section takes (its own waits bounded); WHAT: what it is, for its messages (the switch)
  local left wait what=${2:-the switch}
  # The step's timeout(1) sends SIGKILL 10 s after its SIGTERM: a section begun with less than NEEDS seconds of the
  # step left (OPS_STEP_TIMEOUT, set by the script's wrapper; SECONDS counts from the script's start) could be cut
  # off half-way, so the wait for the lock stops in time, and a section without that time is not begun.
  left=$(( ${OPS_STEP_TIMEOUT:-600} - SECONDS ))
  wait=$(( left - $1 )); [ "$wait" -le 60 ] || wait=60
  if [ "$wait" -lt 0 ]; then
    echo "$what was not begun: nothing changed (only ${left} s of this step's ${OPS_STEP_TIMEOUT:-600} s were left, it may need $1 s); try again" >&2
    exit 1
  fi
  mkdir -p /run/lock
  exec {OPS_CRITICAL_FD}>>/run/lock/ops-pipeline-switch.lock
  if ! /usr/bin/flock -w "$wait" "$OPS_CRITICAL_FD"; then
    echo "$what was not begun: nothing changed (a switch or nginx change on this host held /run/lock/ops-pipeline-switch.lock for ${wait} s, all the time this step had left); try again when it is done" >&2
    exit 1
  fi
  # In a run (OPS_RUN_LOCK set: its steps are fenced, core/ops/locked.ts), the lock is looked at again right before
  # the section changes anything (run_lock_guard, host-lock.sh): a forced release holds this flock (critical_wait)
  # while it stops the run's processes, so it has either not begun (the section runs whole, then is stopped) or ended.
  if [ -n "${OPS_RUN_LOCK:-}" ]; then run_lock_guard; fi
  # Sections run one at a time: a buffer still here is a SIGKILLed section's.
  rm -rf /run/.ops-critical.* 2>/dev/null || true
  # The buffer's room is taken up front (fallocate, size kept: 256 KiB of output, 64 KiB of errors): /run (a small
  # tmpfs) filling up during the section must not fail a write there, which errexit would turn into a switch cut
  # off half-way. Opened to append: truncating would give the room back.
  if ! OPS_CRITICAL_DIR=$(mktemp -d /run/.ops-critical.XXXXXX 2>/dev/null) \
    || ! { : >"$OPS_CRITICAL_DIR/out" && fallocate -n -l 256KiB "$OPS_CRITICAL_DIR/out"; } 2>/dev/null \
    || ! { : >"$OPS_CRITICAL_DIR/err" && fallocate -n -l 64KiB "$OPS_CRITICAL_DIR/err"; } 2>/dev/null; then
    rm -rf "${OPS_CRITICAL_DIR:-/nonexistent}"; OPS_CRITICAL_DIR=
    echo "$what was not begun: nothing changed (no room in /run for its output: see df /run, a full volatile journal in /run/log?); free some and try again" >&2
    exit 1
  fi
  trap '' HUP INT TERM PIPE
  exec {OPS_CRITICAL_OUT}>&1 {OPS_CRITICAL_ERR}>&2 >>"$OPS_CRITICAL_DIR/out" 2>>"$OPS_CRITICAL_DIR/err"
}
# critical_end: the output kept back goes to the script's streams (lost without complaint if the runner is gone),
# the signals are the script's again, the lock let go. Does nothing outside a section: also run by an EXIT trap.
critical_end() {
  [ -n "${OPS_CRITICAL_DIR:-}" ] || return 0
  exec >&"$OPS_CRITICAL_OUT" 2>&"$OPS_CRITICAL_ERR" {OPS_CRITICAL_OUT}>&- {OPS_CRITICAL_ERR}>&-
  cat "$OPS_CRITICAL_DIR/out" 2>/dev/null || true
  cat "$OPS_CRITICAL_DIR/err" >&2 2>/dev/null || true
  rm -rf "$OPS_CRITICAL_DIR"
  OPS_CRITICAL_DIR=
  /usr/bin/flock -u "$OPS_CRITICAL_FD" || true
  trap - HUP INT TERM PIPE
}
# critical_wait: hold the lock (at most 60 s of waiting for a section under way), until the script ends or
# critical_done: what stops another connection's processes does so between two sections, never inside one.
critical_wait() {
  mkdir -p /run/lock
  exec {OPS_CRITICAL_WAIT_FD}>>/run/lock/ops-pipeline-switch.lock
  /usr/bin/flock -w 60 "$OPS_CRITICAL_WAIT_FD" || true
}
critical_done() { /usr/bin/flock -u "$OPS_CRITICAL_WAIT_FD" 2>/dev/null || true; }
