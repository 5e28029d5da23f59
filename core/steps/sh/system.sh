# shellcheck shell=bash
# System functions for provision and deploy steps: services (systemd, or Debian's service wrapper where there
# is none), change tracking per item (CHANGED, item), idempotent files and directories (put_file, ensure_dir).
# Needs ops_report (the script prelude, core/remote/wrap.ts).
# svc NAME ACTION: systemd on real VMs, Debian's service wrapper where there is no systemd.
# Without systemd the daemon a start runs is a child of this script: it is given no descriptor beyond 0-2 (it would
# keep the locks this script holds, host_lock's and critical_begin's, for as long as it runs).
svc() { if [ -d /run/systemd/system ]; then systemctl "$2" "$1"; else (svc_close_fds; service "$1" "$2"); fi; }
svc_close_fds() { local f; for f in /proc/"$BASHPID"/fd/*; do f=${f##*/}; if [ "$f" -gt 2 ]; then eval "exec $f>&-"; fi; done; }
# svc_start NAME: start it, or fail saying why it did not start: its last journal lines (another server on nginx's
# port: "bind() to 0.0.0.0:80 failed (98: Address already in use)"), which systemctl's own words ("Job for
# nginx.service failed because the control process exited with error code") do not say. Without systemd, the init
# script's own output says it.
svc_start() {
  if [ -d /run/systemd/system ]; then
    local since
    printf -v since '%(%s)T' -1
    systemctl start "$1" 2>/dev/null && return 0
    echo "$1 did not start; its last lines (journalctl -u $1):" >&2
    journalctl -u "$1" --since "@$since" -n 8 -o cat --no-pager >&2 2>/dev/null || true
    return 1
  fi
  svc "$1" start >/dev/null || { echo "$1 did not start (service $1 start)" >&2; return 1; }
}
# svc_up NAME: enabled at boot (systemd) and running now.
svc_up() {
  if [ -d /run/systemd/system ]; then
    systemctl is-enabled --quiet "$1" 2>/dev/null || { systemctl enable --quiet "$1"; CHANGED=1; }
    systemctl is-active --quiet "$1" || { svc_start "$1"; CHANGED=1; }
  else
    service "$1" status >/dev/null 2>&1 || { svc_start "$1"; CHANGED=1; }
  fi
}
# item NAME: report whether this item changed since the last mark (CHANGED=1), then reset.
CHANGED=0
item() { if [ "$CHANGED" = 1 ]; then ops_report item "$1 changed"; else ops_report item "$1 ok"; fi; CHANGED=0; }
# put_file PATH MODE OWNER BASE64: write only when content, mode or owner differ (atomic rename); sets CHANGED=1.
# An unchanged file costs two processes (its content compared as base64: the same encoding as BASE64's, which
# has no line breaks; its mode and owner): a switch or a provision re-run writes nothing.
put_file() {
  local path=$1 mode=$2 owner=$3 dir tmp
  dir=${path%/*}; dir=${dir:-/}
  if [ -f "$path" ] && [ "$(base64 -w0 < "$path")" = "$4" ] && [ "$(stat -c '%a %U:%G' "$path")" = "${mode#0} $owner" ]; then return 0; fi
  [ -d "$dir" ] || mkdir -p "$dir"
  tmp=$(mktemp "$dir/.ops-new.XXXXXX")
  # Written whole, then renamed over the file: a full disk leaves the old file and no temporary one.
  printf %s "$4" | base64 -d > "$tmp" || { rm -f "$tmp"; return 1; }
  chmod "$mode" "$tmp"
  chown "$owner" "$tmp"
  mv -f "$tmp" "$path"
  CHANGED=1
}
# ensure_dir PATH MODE OWNER
ensure_dir() {
  if [ ! -d "$1" ]; then install -d -m "$2" -o "${3%%:*}" -g "${3##*:}" "$1"; CHANGED=1; return 0; fi
  if [ "$(stat -c '%a %U:%G' "$1")" != "${2#0} $3" ]; then chmod "$2" "$1"; chown "$3" "$1"; CHANGED=1; fi
}
# nginx_master: the pid of nginx's running master process, or fails when none runs. The pid file's (when it names
# a master), else the main process systemd tracks for nginx.service (`systemctl show -p MainPID`), else the oldest
# process titled "nginx: master process": a pid file removed or stale does not hide a running nginx.
nginx_master() {
  local p title candidates=()
  p=; read -r p 2>/dev/null < /run/nginx.pid || true; candidates+=("$p")
  if [ -d /run/systemd/system ]; then candidates+=("$(systemctl show -p MainPID --value nginx 2>/dev/null || true)"); fi
  candidates+=("$(pgrep -o -f '^nginx: master process' || true)")
  for p in "${candidates[@]}"; do
    [[ $p =~ ^[1-9][0-9]*$ ]] || continue
    title=; IFS= read -r -d '' title 2>/dev/null < "/proc/$p/cmdline" || true
    case $title in 'nginx: master process'*) echo "$p"; return 0 ;; esac
  done
  return 1
}
# nginx_unit: what `systemctl is-enabled nginx` says (enabled, disabled, masked...), `unknown` without systemd.
nginx_unit() {
  local u=unknown
  if [ -d /run/systemd/system ]; then u=$(systemctl is-enabled nginx 2>/dev/null) || true; fi
  printf '%s\n' "${u:-unknown}"
}
# nginx_reload: a graceful reload of the running nginx (SIGHUP to its master, nginx_master: no round trip through
# systemd, no need of the pid file; requests in flight finish), or a start when none runs. Call once nginx -t has
# accepted the files. Returns once the new configuration serves: the signal only asks the master, which then opens
# the new listeners, starts new workers and tells the old ones to stop accepting; until then the old workers answer
# with the old configuration. Waits (10 s at most, looking every 20 ms) until the master has a worker that was not
# there before and every old worker is gone or titled "shutting down" (nginx's process titles,
# src/os/unix/ngx_process_cycle.c). Fails, saying so, when the signal cannot be sent or the reload is not taken up:
# the master could not apply the files (nginx -t does not bind ports: another server on :443, say), or does not
# handle signals; it keeps serving the previous configuration. A missing pid file is written back (systemd's
# reload and stop of nginx read it). A start is reported (`nginx_started`).
nginx_reload() {
  local master old p busy fresh title now deadline pause rc=1
  if ! master=$(nginx_master); then
    svc_start nginx || { echo "nginx reload failed: nginx was not running and did not start (see above)" >&2; return 1; }
    # systemd's start returns once nginx wrote its pid file; the master titles itself "nginx: master process" just
    # after (nginx's main, then ngx_master_process_cycle): on a busy host, looked for up to 5 s, every 20 ms.
    printf -v now '%(%s)T' -1; deadline=$(( now + 5 ))
    exec {pause}<> <(:)
    until nginx_master >/dev/null; do
      printf -v now '%(%s)T' -1
      [ "$now" -lt "$deadline" ] || { exec {pause}<&-; echo "nginx reload failed: nginx was not running, and no nginx master runs after its start" >&2; return 1; }
      read -r -t 0.02 -u "$pause" _ || true
    done
    exec {pause}<&-
    # Not silent: the step's operation says the site was down and that this started it.
    ops_report nginx_started 1
    return 0
  fi
  old=" $(pgrep -P "$master" -f '^nginx: worker process *$' | tr '\n' ' ')"
  kill -HUP "$master" || { echo "nginx reload failed: could not signal nginx's master process (pid $master)" >&2; return 1; }
  if [ ! -s /run/nginx.pid ]; then
    echo "$master" > /run/nginx.pid && echo "nginx's pid file /run/nginx.pid was missing: written back (master pid $master)" >&2
  fi
  # Polled every 20 ms (the master takes a few ms to start the new workers): each look reads the workers'
  # titles with read, a builtin (a worker gone reads as nothing); between looks, read's timeout on a pipe nobody
  # writes to stands in for sleep (a builtin: no process per look, as probe.sh's rounds wait).
  printf -v now '%(%s)T' -1; deadline=$(( now + 10 ))
  exec {pause}<> <(:)
  while :; do
    busy=; fresh=
    for p in $old; do
      title=; IFS= read -r -d '' title 2>/dev/null < "/proc/$p/cmdline" || true
      case $title in
        *'shutting down'*|'') ;;
        'nginx: worker process'*) busy=1 ;;
      esac
    done
    if [ -z "$busy" ]; then
      for p in $(pgrep -P "$master" -f '^nginx: worker process *$' || true); do
        [[ $old == *" $p "* ]] || { fresh=1; break; }
      done
      [ -z "$fresh" ] || { rc=0; break; }
    fi
    printf -v now '%(%s)T' -1
    [ "$now" -lt "$deadline" ] || break
    read -r -t 0.02 -u "$pause" _ || true
  done
  exec {pause}<&-
  [ "$rc" != 0 ] || return 0
  echo "nginx reload failed: nginx did not apply the new configuration (nginx -t accepted it; its master process, pid $master, refused it or does not handle signals: no new workers within 10 s) and keeps serving the previous one; its error log says:" >&2
  tail -n 3 /var/log/nginx/error.log >&2 2>/dev/null || true
  return 1
}
