# shellcheck shell=bash
# A process's start time, and the SSH server process of the connection a script runs on.
# OpenSSH (checked on Debian 11's 8.4 and 12's 9.2) runs every session of a connection under one
# per-connection process, `sshd: <user>@notty` (`sshd-session` from 9.8), whatever sudo or timeout sit
# between: the first ancestor of that name. It ends when the connection ends (closed, or dropped and noticed
# by sshd).
# proc_start PID: start time (field 22 of /proc/PID/stat, counted after the command name): tells a reused PID apart
# (read by bash itself, here and in conn_pid: no process per look)
proc_start() { local s f; read -r s 2>/dev/null < "/proc/$1/stat" || return 1; read -r -a f <<< "${s##*) }"; printf '%s\n' "${f[19]}"; }
# conn_pid: the SSH server process of this connection
conn_pid() {
  local p=$$ s c f
  while [ "$p" -gt 1 ]; do
    read -r s 2>/dev/null < "/proc/$p/stat" || return 1
    c=${s#*(}; c=${c%)*}
    case "$c" in sshd|sshd-session|dropbear) printf '%s\n' "$p"; return 0 ;; esac
    read -r -a f <<< "${s##*) }"; p=${f[1]}
  done
  return 1
}
# connection_pids ID...: the pids of the processes started for the connections with these ids (OPS_CONNECTION
# in their environment, core/remote/wrap.ts), space-separated: what a lost connection left running.
# One grep reads every process's environment (NUL-separated variables: -z; -x the whole variable, -l the files that
# have one, -s quiet on processes gone meanwhile), not two processes per pid: this is polled while they stop.
connection_pids() {
  local f id patterns=()
  for id in "$@"; do patterns+=(-e "OPS_CONNECTION=$id"); done
  while IFS= read -r f; do f=${f#/proc/}; printf '%s ' "${f%/environ}"; done < <(grep -lszxF "${patterns[@]}" /proc/[0-9]*/environ)
  return 0
}
