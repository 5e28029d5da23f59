# shellcheck shell=bash
# A process's start time, and the SSH server process of the connection a script runs on.
# OpenSSH (checked on Debian 11's 8.4 and 12's 9.2) runs every session of a connection under one
# per-connection process, `sshd: <user>@notty` (`sshd-session` from 9.8), whatever sudo or timeout sit
# between: the first ancestor of that name. It ends when the connection ends (closed, or dropped and noticed
# by sshd).
# proc_start PID: start time (field 22 of /proc/PID/stat, counted after the command name): tells a reused PID apart
# (read by bash itself, here and in conn_pid: no process per look)
proc_start() { local s f; read -r s 2>/dev/null < "/proc/$1/stat" || return 1; read -r -a f <<< "${s##*) }"; printf '%s\n' "${f[19]}"; }
# proc_seen_start PID: proc_start for a login that may not see other users' processes (/proc mounted hidepid=1 or 2:
# another user's /proc/PID unreadable or absent, whether that process runs or not): then read through sudo -n. Returns 1
# when the process is gone, 2 (printing nothing) when it cannot tell: hidden, and sudo asks for a password.
proc_seen_start() {
  local s f
  proc_start "$1" && return 0
  [ "$EUID" != 0 ] || return 1
  # pid 1 is root's: readable, nothing is hidden from this login, and the process is gone.
  read -r s 2> /dev/null < /proc/1/stat && return 1
  if ! s=$(/usr/bin/sudo -n cat -- "/proc/$1/stat" 2> /dev/null); then /usr/bin/sudo -n true 2> /dev/null && return 1; return 2; fi
  read -r -a f <<< "${s##*) }"; printf '%s\n' "${f[19]}"
}
# boot_id VAR: the host's boot id (a random UUID the kernel draws at each boot) into VAR, empty when unreadable: PIDs
# and start times (clock ticks since boot) begin again at a reboot, so a lock's holder pid and start time can match an
# unrelated process of a later boot; its boot id tells them apart.
boot_id() { read -r "$1" 2>/dev/null < /proc/sys/kernel/random/boot_id || printf -v "$1" ''; }
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
# conn_silent PID: seconds since the client of the SSH server process PID last sent anything on its TCP connection
# (the least of ss's lastrcv, data, and lastack, acknowledgements, over that process's sockets). Our runner's SSH
# client sends a keepalive every 10 s (core/remote/ssh-login.ts), so a live connection is never silent for long; a
# connection whose runner vanished with its network (a laptop closed, a VM gone, a cable pulled: no FIN, no RST)
# stays open on the host, sshd waiting for TCP keepalive (two hours by default), silent all along. Fails (prints
# nothing) when it cannot tell: no ss, or the process's socket not visible (sshd's per-connection process is not
# dumpable: only root reads its sockets, so the login asks sudo, without a password).
conn_silent() {
  local line mine="" w rcv ack least="" ss=(ss)
  command -v ss > /dev/null 2>&1 || return 1
  [ "$EUID" = 0 ] || ss=(/usr/bin/sudo -n ss)
  while IFS= read -r line; do
    # A socket's line, then its details indented on the next (-i).
    if [[ $line != [[:space:]]* ]]; then mine=; [[ $line != *"pid=$1,"* ]] || mine=1; continue; fi
    [ -n "$mine" ] || continue
    rcv=; ack=
    for w in $line; do case $w in lastrcv:*) rcv=${w#lastrcv:} ;; lastack:*) ack=${w#lastack:} ;; esac; done
    [[ $rcv =~ ^[0-9]+$ && $ack =~ ^[0-9]+$ ]] || continue
    (( ack < rcv )) && rcv=$ack
    [ -n "$least" ] && (( least <= rcv )) || least=$rcv
  done < <("${ss[@]}" -Htnpi state established 2> /dev/null)
  [ -n "$least" ] || return 1
  printf '%s\n' $(( least / 1000 ))
}
