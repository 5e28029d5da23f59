# shellcheck shell=bash
# Who answers on a port: the processes listening on it (ss -Htlnp from iproute2, every process holding
# the socket: a pre-forking server's master and workers alike), whether each is in the process tree of the
# pid supervisor started, and which release each runs (OPS_RELEASE in /proc/<pid>/environ, else its working
# directory). check_identity is the health gate's verdict; report_slot is what ops status shows.
# Needs supervisor.sh (sup_pids), mask.sh (proc_cmd), contain.sh (proc_env) and ops_report; live_verdict needs probe.sh too.
# Builtins where they do (no process per call: these run on every no-op deploy and rollback).
proc_env_release() { proc_env "$1" OPS_RELEASE; }
proc_cwd() { readlink "/proc/$1/cwd" 2>/dev/null || true; }
# proc_cwds PID...: the working directory of each into PROC_CWD[pid] (declared by the caller: `local -A PROC_CWD=()`),
# "" for one that cannot be read (gone), from one `find` for all (a readlink per process otherwise). cwd_of reads it.
proc_cwds() {
  local p h l paths=()
  [ "$#" -gt 0 ] || return 0
  for p in "$@"; do PROC_CWD[$p]=""; paths+=("/proc/$p/cwd"); done
  while IFS= read -r -d '' l; do h=${l%%$'\t'*}; PROC_CWD[${h#/proc/}]=${l#*$'\t'}; done < <(find "${paths[@]}" -maxdepth 0 -printf '%h\t%l\0' 2>/dev/null || true)
}
# cwd_of PID: CWD = PID's working directory ("" when it cannot be read): PROC_CWD's (proc_cwds) when it holds PID, else
# read now. In a variable, not printed: no subshell per call.
cwd_of() { if [ -n "${PROC_CWD[$1]+x}" ]; then CWD=${PROC_CWD[$1]}; else CWD=$(proc_cwd "$1"); fi; }
# proc_cmd PID: its command line as quoted, its arguments masked each as it is (mask_string: a secret given as an
# argument), then on one line, cut to 160 characters (mask_clip). Needs mask.sh.
proc_cmd() {
  local a line="" args=()
  mask_ready
  mapfile -d '' -t args 2>/dev/null < "/proc/$1/cmdline" || true
  for a in ${args[@]+"${args[@]}"}; do mask_string "$a"; line+="${line:+ }$MASK_TEXT"; done
  mask_clip "${line//[$'\n\t']/ }" 160; printf '%s' "${MASK_TEXT% }"
}
# listeners PORT: pids listening on it (each once, in ss's order), from LISTEN_TABLE (one `ss -Htlnp` for every
# port) when set; listeners_of PORT sets them in LISTENERS (an array) instead of printing them (no subshell).
listeners() {
  local LISTENERS
  listeners_of "$1"
  [ "${#LISTENERS[@]}" = 0 ] || printf '%s\n' "${LISTENERS[@]}"
}
listeners_of() {
  local table l rest pid
  local -A seen=()
  LISTENERS=()
  table=${LISTEN_TABLE-$(ss -Htlnp 2>/dev/null)}
  while read -r _ _ _ l _ rest; do
    [ "${l##*:}" = "$1" ] || continue
    while [[ $rest =~ pid=([0-9]+) ]]; do
      pid=${BASH_REMATCH[1]}; rest=${rest#*pid="$pid"}
      if [ -z "${seen[$pid]:-}" ]; then seen[$pid]=1; LISTENERS+=("$pid"); fi
    done
  done <<< "$table"
}
# listening PORT: something listens on PORT, whether or not ss names its process (from LISTEN_TABLE when set).
listening() {
  local table l
  table=${LISTEN_TABLE-$(ss -Htlnp 2>/dev/null)}
  while read -r _ _ _ l _; do [ "${l##*:}" = "$1" ] && return 0; done <<< "$table"
  return 1
}
# in_tree PID ROOT: ROOT is PID or one of its ancestors (parents read from /proc/PID/stat, after the command name).
in_tree() {
  local p=$1 n=0 s stat_fields
  while [ -n "$p" ] && [ "$p" -gt 0 ] && [ "$n" -lt 64 ]; do
    [ "$p" = "$2" ] && return 0
    read -r s 2>/dev/null < "/proc/$p/stat" || return 1
    read -r -a stat_fields <<< "${s##*) }"; p=${stat_fields[1]:-0}; n=$(( n + 1 ))
  done
  return 1
}
# same_release PID ID DIR: the process runs release ID: its working directory is inside DIR, or outside every release
# (a daemon's "/") with OPS_RELEASE=ID. A working directory inside another release of DIR's releases directory is that
# release's code whatever OPS_RELEASE says: a command that changes into <base>/current before the switch runs the
# previous release (supervisor gave it the new release's environment and directory); so does one whose command line or
# environment names a path into another release (names_other_release: OTHER_RELEASE_PATH says which).
same_release() {
  local o CWD OTHER_RELEASE
  OTHER_RELEASE_PATH=""
  cwd_of "$1"
  case $CWD in "$3" | "$3"/*) ;; "${3%/*}"/*) return 1 ;; *) [ "$(proc_env_release "$1")" = "$2" ] || return 1 ;; esac
  other_release_of "$1" "$3"; o=$OTHER_RELEASE
  [ -z "$o" ] || OTHER_RELEASE_PATH="${o#*$'\t'}, release ${o%%$'\t'*}'s code"
  [ -z "$o" ]
}
# other_release PID DIR: the first path PID's command line or environment names (an argument, the value of an
# --option=value, an entry of a PATH-like list; a relative one from its working directory) that resolves into
# another release beside DIR (a directory there: a path under the releases directory naming none is no release's code),
# as "<that release's id><TAB><the path as named>"; nothing when none. other_release_of PID DIR sets it in OTHER_RELEASE
# instead of printing it (no subshell).
# `python <base>/current/app.py` started in the new release before the switch runs the previous release's code
# (`current` still names it then), whatever its working directory and OPS_RELEASE say; so does a PYTHONPATH or
# NODE_PATH through `current`.
other_release() {
  local OTHER_RELEASE
  other_release_of "$1" "$2"
  printf '%s' "$OTHER_RELEASE"
}
other_release_of() {
  local rels=${2%/*} cwd w v i words=() parts paths=() named=() resolved=() CWD
  OTHER_RELEASE=""
  cwd_of "$1"; cwd=$CWD
  while IFS= read -r -d '' w; do words+=("${w#--*=}"); done 2>/dev/null < "/proc/$1/cmdline" || true
  # OLDPWD is a shell's record of where it was (a wrapper's `cd` from the release supervisor started it in), not read.
  while IFS= read -r -d '' v; do [ "${v%%=*}" != OLDPWD ] || continue; IFS=: read -r -a parts <<< "${v#*=}"; words+=("${parts[@]}"); done 2>/dev/null < "/proc/$1/environ" || true
  # Only paths (a word with a /), as written (named) and as the process reads them (paths: from its working directory).
  for w in "${words[@]}"; do
    case $w in /*) paths+=("$w") ;; */*) [ -n "$cwd" ] || continue; paths+=("$cwd/$w") ;; *) continue ;; esac
    named+=("$w")
  done
  [ "${#paths[@]}" -gt 0 ] || return 0
  mapfile -d '' -t resolved < <(readlink -mz -- "${paths[@]}" 2>/dev/null)
  # A path readlink cannot resolve (a loop, a name too long) prints nothing: one at a time then, to keep them paired.
  if [ "${#resolved[@]}" != "${#paths[@]}" ]; then resolved=(); for w in "${paths[@]}"; do resolved+=("$(readlink -m -- "$w" 2>/dev/null)"); done; fi
  # Only into a release that exists: `npm run`/`npm start` puts node_modules/.bin of every directory above the
  # package on PATH (npm's run-script: <base>/releases/node_modules/.bin among them), a name no release has.
  for i in "${!resolved[@]}"; do
    case ${resolved[$i]} in "$2" | "$2"/*) ;; "$rels"/?*) w=${resolved[$i]#"$rels"/}; [ -d "$rels/${w%%/*}" ] || continue; OTHER_RELEASE="${w%%/*}"$'\t'"${named[$i]}"; return 0 ;; esac
  done
}
# proc_release PID RELEASES: the release PID runs, as same_release judges it: the release directory under RELEASES
# (resolved) its working directory is in, else its OPS_RELEASE; the other release a path it names leads into, when
# one does (other_release). What ops status shows, and what it compares with `current`.
proc_release() {
  local c r o
  c=$(proc_cwd "$1")
  case $c in "$2"/?*) r=${c#"$2"/}; r=${r%%/*} ;; *) r=$(proc_env_release "$1") ;; esac
  if [ -n "$r" ]; then o=$(other_release "$1" "$2/$r"); [ -z "$o" ] || r=${o%%$'\t'*}; fi
  printf '%s' "$r"
}
# describe_proc PID: "pid N (command) running RELEASE-or-directory"
describe_proc() {
  local r c
  r=$(proc_env_release "$1"); c=$(proc_cwd "$1")
  printf 'pid %s (%s) running %s' "$1" "$(proc_cmd "$1")" "${r:-an unknown release}${c:+, in $c}"
}
# check_identity ID DIR GROUP name:port[:path]...: every process listening on each program's port is in the tree of
# the pid supervisor reports for that program of GROUP and runs release ID (directory DIR), and, with OTHER_PORTS set
# (the other slot's ports), none of GROUP's listens on one of those (group_listens). On failure, IDENTITY says what
# answers instead. With SUP_READ set, supervisor's pids are the SUP_PID the caller has just read (group_settled's last
# answer, an instant before): not asked again (a getAllProcessInfo, a curl, less per start).
# shellcheck disable=SC2034 # IDENTITY is this function's result, read by the step that calls it
check_identity() {
  local id=$1 dir group=$3 p name port sp l ls i LISTEN_TABLE LISTENERS all=() port_pids=()
  local -A PROC_CWD=()
  dir=$(readlink -f "$2"); shift 3
  IDENTITY=""
  command -v ss >/dev/null || { IDENTITY="cannot tell who listens on the ports: ss (iproute2) is not installed; run ops provision"; return 1; }
  LISTEN_TABLE=$(ss -Htlnp 2>/dev/null)
  [ -n "${SUP_READ:-}" ] || sup_pids
  # Every listener's working directory at once (proc_cwds: one process, not a readlink per listener).
  for p in "$@"; do
    IFS=: read -r _ port _ <<< "$p"
    listeners_of "$port"; port_pids+=("${LISTENERS[*]}"); all+=(${LISTENERS[@]+"${LISTENERS[@]}"})
  done
  proc_cwds ${all[@]+"${all[@]}"}
  i=0
  for p in "$@"; do
    IFS=: read -r name port _ <<< "$p"
    sp=${SUP_PID[$group:$group-$name]:-0}
    ls=${port_pids[$i]}; i=$(( i + 1 ))
    if [ -z "$ls" ]; then IDENTITY+="nothing listens on port $port of program $name (it answered the health check: another network namespace?); "; continue; fi
    for l in $ls; do
      if [ "$sp" != 0 ] && in_tree "$l" "$sp" && same_release "$l" "$id" "$dir"; then continue; fi
      IDENTITY+="port $port of program $name is answered by $(describe_proc "$l"), "
      if [ "$sp" = 0 ]; then IDENTITY+="while supervisor runs no process for $group:$group-$name; "
      elif ! in_tree "$l" "$sp"; then IDENTITY+="which supervisor did not start (its process for $name is pid $sp); "
      elif [ -n "${OTHER_RELEASE_PATH:-}" ]; then IDENTITY+="whose command line or environment names ${OTHER_RELEASE_PATH}, not release $id (\`current\` names the live release until the switch: use {release}); "
      else IDENTITY+="not release $id; "; fi
    done
  done
  if [ -n "${OTHER_PORTS:-}" ]; then
    group_listens "$group" "$@"
    if other_slot_listeners; then IDENTITY+="$OTHER_SLOT_LISTENERS; "; fi
  fi
  IDENTITY=${IDENTITY%; }
  [ -z "$IDENTITY" ]
}
# group_listens GROUP name:port[:path]...: where each program of GROUP listens other than on its own port, by every
# process of the tree of the pid supervisor runs for it (SUP_PID: call sup_pids first): TCP ports and unix sockets,
# from one `ss -Hlnp -t -x`. Sets LISTENS_ELSEWHERE[name] (", " separated addresses; a unix socket as its path) and
# LISTENS_OTHER_SLOT[name] (those on a port of OTHER_PORTS, the other slot's ports, when set). A program told a port
# other than its slot's (a port in gunicorn.conf.py, `PORT || 3000`, a framework's default) listens there, not on
# its port; on the other slot's port (SO_REUSEPORT lets a second server share it: gunicorn's reuse_port) it takes
# part of the live release's visitors.
group_listens() {
  local group=$1 p name port pid netid l rest addr sp
  local -A port_of=() root_of=()
  declare -gA LISTENS_ELSEWHERE=() LISTENS_OTHER_SLOT=()
  shift
  for p in "$@"; do
    IFS=: read -r name port _ <<< "$p"
    sp=${SUP_PID[$group:$group-$name]:-0}
    [ "$sp" = 0 ] || { port_of[$name]=$port; root_of[$name]=$sp; }
  done
  [ ${#root_of[@]} -gt 0 ] || return 0
  while read -r netid _ _ _ l rest; do
    while [[ $rest =~ pid=([0-9]+) ]]; do
      pid=${BASH_REMATCH[1]}; rest=${rest#*pid="$pid"}
      for name in "${!root_of[@]}"; do
        in_tree "$pid" "${root_of[$name]}" || continue
        if [ "$netid" = tcp ]; then
          [ "${l##*:}" != "${port_of[$name]}" ] || continue
          addr=$l
          case " ${OTHER_PORTS:-} " in *" ${l##*:} "*) [[ ", ${LISTENS_OTHER_SLOT[$name]:-}, " == *", $addr, "* ]] || LISTENS_OTHER_SLOT[$name]+="${LISTENS_OTHER_SLOT[$name]:+, }$addr" ;; esac
        else
          addr="unix socket $l"
        fi
        [[ ", ${LISTENS_ELSEWHERE[$name]:-}, " == *", $addr, "* ]] || LISTENS_ELSEWHERE[$name]+="${LISTENS_ELSEWHERE[$name]:+, }$addr"
      done
    done
  done < <(ss -Hlnp -t -x 2>/dev/null)
}
# other_port_shared: status 0 when a port of OTHER_PORTS has more than one TCP listening socket (a second server
# sharing it through SO_REUSEPORT, or one app bound to two addresses there), read from one `ss -Hltn` (sockets by
# netlink, no walk of /proc: cheap enough to ask twice a second while a start waits); 1 otherwise.
other_port_shared() {
  local l port
  local -A seen=()
  while read -r _ _ _ l _; do
    port=${l##*:}
    case " ${OTHER_PORTS:-} " in *" $port "*) ;; *) continue ;; esac
    [ -z "${seen[$port]:-}" ] || return 0
    seen[$port]=1
  done < <(ss -Hltn 2>/dev/null)
  return 1
}
# other_slot_listeners: OTHER_SLOT_LISTENERS, a sentence naming each program that listens on a port of the other slot
# (LISTENS_OTHER_SLOT, group_listens's; OTHER_SLOT names that slot), and the fix; status 1 when none does.
other_slot_listeners() {
  local name
  OTHER_SLOT_LISTENERS=""
  for name in "${!LISTENS_OTHER_SLOT[@]}"; do
    OTHER_SLOT_LISTENERS+="${OTHER_SLOT_LISTENERS:+; }program $name listens on ${LISTENS_OTHER_SLOT[$name]}, slot ${OTHER_SLOT:-the other slot}'s port (the live release's, or the one kept warm there)"
  done
  [ -n "$OTHER_SLOT_LISTENERS" ] || return 1
  OTHER_SLOT_LISTENERS+=": a port the app takes from elsewhere than its slot (a config file such as gunicorn.conf.py's bind, a default, a .env value); sharing it (SO_REUSEPORT: gunicorn's reuse_port) it answers visitors of that slot. Give each program its slot's port: {port} in its command or env (--bind 127.0.0.1:{port}, PORT: \"{port}\"), which the app must use"
}
# exposed_listeners name:port[:path]...: a "warning:" line on stderr for each program with a listener on its port bound
# beyond loopback (0.0.0.0, ::, an address of an interface: Next.js's `next start`, Express's listen(port) and
# webpack-style servers bind every address unless given a host). nginx is the site's door (TLS, security headers, the
# switch's routing); such a port is a second door, on both slots (the release kept warm there too).
exposed_listeners() {
  local table p name port l addr seen
  table=$(ss -Htln 2>/dev/null) || return 0
  for p in "$@"; do
    IFS=: read -r name port _ <<< "$p"
    seen=""
    while read -r _ _ _ l _; do
      [ "${l##*:}" = "$port" ] || continue
      addr=${l%:*}; addr=${addr%%%*}; addr=${addr#[}; addr=${addr%]}
      case $addr in 127.* | ::1 | ::ffff:127.*) continue ;; esac
      seen+="${seen:+, }$l"
    done <<< "$table"
    [ -z "$seen" ] || echo "warning: program $name listens on $seen, not only on 127.0.0.1: it is reachable around nginx (no TLS, no security headers, on either slot); make it listen on 127.0.0.1 (next start -H 127.0.0.1; HOST=127.0.0.1 for adapter-node; gunicorn --bind 127.0.0.1:{port}; a host in Node's listen()), or firewall the port" >&2
  done
  return 0
}
# ours PID SLOT USER RELEASES: PID is what a program of this environment left running outside supervisor (it
# daemonised, and supervisor stopped its parent): a process of USER (the programs' user, its effective uid as
# /proc/PID/status gives it) whose working directory or executable is inside a release directory under RELEASES (or
# that says it was started by slot SLOT's programs for a release there: OPS_SLOT, OPS_RELEASE), that does not say it is
# the other slot's (OPS_SLOT), in the tree of no process supervisor runs now (SUP_PID:
# call sup_pids first). Exactly such a process on a slot's port is one leftovers_down stops; anything else there
# (another user's, or not run from our releases) is not ours.
ours() {
  local pid=$1 slot=$2 uid euid="" v of="" rel="" k sp where
  uid=$(id -u "$3" 2>/dev/null) || return 1
  while read -r k _ v _; do if [ "$k" = Uid: ]; then euid=$v; break; fi; done 2>/dev/null < "/proc/$pid/status" || true
  [ -n "$euid" ] && [ "$euid" = "$uid" ] || return 1
  while IFS= read -r -d '' v; do case $v in OPS_SLOT=*) of=${v#*=} ;; OPS_RELEASE=*) rel=${v#*=} ;; esac; done 2>/dev/null < "/proc/$pid/environ" || true
  [ -z "$of" ] || [ "$of" = "$slot" ] || return 1
  where=" $(proc_cwd "$pid") $(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  case "$where" in
    *" $4"/?*) ;;
    # Started by this slot's programs (slotConfig gives each OPS_SLOT and OPS_RELEASE), for a release we have.
    *) if [ -z "$of" ] || [[ ! $rel =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || [ ! -d "$4/$rel" ]; then return 1; fi ;;
  esac
  for k in "${!SUP_PID[@]}"; do sp=${SUP_PID[$k]}; if [ "$sp" != 0 ] && in_tree "$pid" "$sp"; then return 1; fi; done
  return 0
}
# in_group PID GROUP: 0 when PID is in the tree of a process supervisor runs now in GROUP, whatever the program's name
# (SUP_PID: call sup_pids first): a program renamed or removed since the release kept warm there started is still
# the slot's own, which the start replaces with the group whole.
in_group() {
  local k sp
  for k in "${!SUP_PID[@]}"; do
    [[ $k == "$2:"* ]] || continue
    sp=${SUP_PID[$k]}; if [ "$sp" != 0 ] && in_tree "$1" "$sp"; then return 0; fi
  done
  return 1
}
# report_slot SLOT GROUP USER RELEASES name:port...: "proc" and "listener" reports (tab-separated) for ops status and
# the state read of a deploy or a rollback (who holds the ports of the slot it starts on). A listener is "tree" (in the
# tree of one of the slot's own supervisor processes: that program's, or another's of its group, in_group), "own" (a program of this environment left it running outside
# supervisor: ours, with USER the programs' user and RELEASES the releases' directory; the start stops it first), or
# "other". A socket ss names no process for is an "other" listener of pid 0. Each "other" adds 1 to REPORT_SLOT_FOREIGN.
report_slot() {
  local slot=$1 group=$2 user=$3 releases p name port sp l ls tree; releases=$(readlink -f "$4" 2>/dev/null || printf '%s' "$4"); shift 4
  sup_pids
  for p in "$@"; do
    IFS=: read -r name port _ <<< "$p"
    sp=${SUP_PID[$group:$group-$name]:-0}
    if [ "$sp" != 0 ]; then ops_report proc "$slot	$name	$sp	$(proc_release "$sp" "$releases")	$(proc_cwd "$sp")	$(proc_cmd "$sp")"; fi
    ls=$(listeners "$port")
    for l in $ls; do
      tree=other
      if [ "$sp" != 0 ] && in_tree "$l" "$sp"; then tree=tree; elif in_group "$l" "$group"; then tree=tree; elif ours "$l" "$slot" "$user" "$releases"; then tree=own; fi
      ops_report listener "$slot	$name	$l	$tree	$(proc_release "$l" "$releases")	$(proc_cwd "$l")	$(proc_cmd "$l")"
      [ "$tree" != other ] || REPORT_SLOT_FOREIGN=$(( ${REPORT_SLOT_FOREIGN:-0} + 1 ))
    done
    if [ -z "$ls" ] && listening "$port"; then ops_report listener "$slot	$name	0	other			"; REPORT_SLOT_FOREIGN=$(( ${REPORT_SLOT_FOREIGN:-0} + 1 )); fi
  done
}
# uptime_ms: UPTIME_MS, the milliseconds since boot (/proc/uptime: seconds, two decimals; the clock of a process's
# start time in /proc/PID/stat, which a wall clock stepped meanwhile does not move).
# shellcheck disable=SC2034 # UPTIME_MS is this function's result
uptime_ms() { local up; read -r up _ < /proc/uptime; UPTIME_MS=$(( 10#${up%.*} * 1000 + 10#${up#*.} * 10 )); }
# group_settled GROUP SECONDS: 0 once every program of GROUP has kept running for SECONDS (switch.settle: a number,
# 1.5) since its process started, as the process supervisor ran when this was called (its pid, and its start time,
# so that a pid used again is not taken for it); else SETTLE says which program exited. A program that answers its
# health check and exits a second later (a worker thread dying on its first connection, a setting read late) passes
# a gate of one healthy answer, and supervisor restarts it again and again while nginx sends it traffic: this waits
# out the rest of the window instead, and gives up as soon as one is gone. Counted here, from the process's start in
# /proc/PID/stat (field 22, clock ticks since boot) against /proc/uptime (the same clock), not by supervisor's
# RUNNING: that comes only on a turn of supervisord's main loop after its startsecs, and only for a window as long as
# startsecs (a window longer than it, or shorter, is the environment's choice). A process gone is seen at once: no
# /proc entry, a zombie (exited, not yet reaped), or another start time. supervisor is asked at the start and at the
# end (one getAllProcessInfo each): a program it no longer runs as that pid, or not RUNNING or STARTING, fails, SETTLE
# then quoting the last lines it wrote since this start (log_reason, as group_fatal does). With SUP_READ set, the start's
# answer is the SUP_PID and SUP_STATE the caller has just read (check_identity's, an instant before): not asked again.
# Rounds every 0.1 s, the last one only as long as the window has left, builtins only (read's timeout on a pipe
# nobody writes to stands in for sleep). For SECONDS + 5 s at most.
# shellcheck disable=SC2034 # SETTLE is this function's result, read by the step that calls it
group_settled() {
  local group=$1 secs=$2 k pid stat pause tck want_ms deadline_ms whole frac left ran why=""
  local -a f=()
  local -A first=() born=()
  SETTLE=""
  whole=${secs%%.*}; frac=""; [[ $secs != *.* ]] || frac=${secs#*.}; frac=${frac}000
  want_ms=$(( 10#${whole:-0} * 1000 + 10#${frac:0:3} ))
  tck=$(getconf CLK_TCK 2>/dev/null) || true
  [[ $tck =~ ^[1-9][0-9]*$ ]] || tck=100
  uptime_ms; deadline_ms=$(( UPTIME_MS + want_ms + 5000 ))
  [ -n "${SUP_READ:-}" ] || sup_pids
  for k in "${!SUP_STATE[@]}"; do
    [[ $k == "$group:"* ]] || continue
    first[$k]=${SUP_PID[$k]:-0}
    [[ ${SUP_STATE[$k]} =~ ^(RUNNING|STARTING)$ ]] || { why=$k; break; }
  done
  exec {pause}<> <(:)
  while [ -z "$why" ]; do
    uptime_ms; left=0 ran=0
    for k in "${!first[@]}"; do
      pid=${first[$k]}; stat=""; f=()
      [ "$pid" = 0 ] || read -r stat 2>/dev/null < "/proc/$pid/stat" || true
      # After the command's closing parenthesis: f[0] the state, f[19] the start time (fields 3 and 22).
      [ -z "$stat" ] || read -r -a f <<< "${stat##*) }"
      if [ -z "$stat" ] || [[ ${f[0]:-} == [ZX] ]] || [ -z "${f[19]:-}" ] || [ "${born[$k]:-${f[19]}}" != "${f[19]}" ]; then why=$k; break; fi
      born[$k]=${f[19]}
      # left: the longest any program still has to run, in ms.
      ran=$(( UPTIME_MS - f[19] * 1000 / tck ))
      [ "$ran" -ge "$want_ms" ] || [ $(( want_ms - ran )) -le "$left" ] || left=$(( want_ms - ran ))
    done
    [ -z "$why" ] || break
    if [ "$left" = 0 ]; then
      # supervisor's word at the end: the same processes, RUNNING or STARTING.
      sup_pids
      for k in "${!first[@]}"; do
        if [ "${SUP_PID[$k]:-0}" != "${first[$k]}" ] || [[ ! ${SUP_STATE[$k]:-} =~ ^(RUNNING|STARTING)$ ]]; then why=$k; break; fi
      done
      break
    fi
    if [ "$UPTIME_MS" -ge "$deadline_ms" ]; then
      SETTLE="the programs of $group did not run ${secs}s within $(( (want_ms + 5000) / 1000 ))s"
      exec {pause}<&-
      return 1
    fi
    # The last round waits only what is left (10 ms at least: the clocks' resolution), not a whole 0.1 s past the window.
    if [ "$left" -ge 100 ]; then read -r -t 0.1 -u "$pause" _ || true
    else read -r -t "0.0$(( left < 10 ? 10 : left ))" -u "$pause" _ || true; fi
  done
  exec {pause}<&-
  [ -n "$why" ] || return 0
  # What supervisor says of it now (it may not have reaped the exit yet).
  sup_pids
  SETTLE="program ${why#"$group:$group-"} exited after it answered its health check, within ${secs}s of its start (supervisor: ${SUP_STATE[$why]:-gone}; it ran as pid ${first[$why]:-0}): supervisor restarts such a program while it would get traffic; it must keep running"
  # Why, in its own words (supervisor.sh log_reason: what it wrote since this start, masked).
  if log_reason "$why"; then SETTLE+="; $LOG_REASON_FILE ends: $LOG_REASON"; fi
  return 1
}
# live_verdict ID DIR GROUP TIMEOUT INTERVAL name:port:path...: prints "ok" when the release ID (directory DIR) of
# GROUP answers every health check (wait_healthy) and is what answers on each port (check_identity), else why not
# (the health checks' verdict first). Both at once, the identity in the background; when it failed, it is checked
# again once the health checks passed (a program that bound its port late), so its verdict is the one after them.
# Needs probe.sh.
live_verdict() {
  local id=$1 dir=$2 group=$3 limit=$4 interval=$5 ipid; shift 5
  check_identity "$id" "$dir" "$group" "$@" >/dev/null 2>&1 &
  ipid=$!
  if ! wait_healthy "$limit" "$interval" "$@"; then wait "$ipid" || true; printf '%s' "$UNHEALTHY"
  elif wait "$ipid" || check_identity "$id" "$dir" "$group" "$@"; then printf ok
  else printf '%s' "$IDENTITY"; fi
}
# leftovers_down SLOT ID DIR USER name:port[:path]...: after supervisor stopped slot SLOT's programs (group_down), stops
# what they left running outside supervisor's reach: a program that daemonised (forked, setsid, its parent gone) is in
# no process group supervisor or group_down signals, keeps the slot's ports, and the release put there next cannot bind
# them. Those are the processes of USER (the programs' user) that supervisor's programs for release ID on SLOT started
# (OPS_RELEASE=ID and OPS_SLOT=SLOT in their environment, which slotConfig gives each program: a daemon keeps it), that
# run from the release's directory DIR without a terminal (their working directory or executable inside DIR, or DIR in
# their command line: a shell of someone working there has a terminal), or that listen on one of the slot's ports.
# Never one that says it is the other slot's (OPS_SLOT), one in the tree of a process supervisor runs now (the live
# slot's, another app's), nor this script. SIGTERM to each, SIGKILL to those left after 5 s (for 7 s at most in all). Prints (stdout) what it
# stopped, on one line; nothing when nothing was left. ID and DIR may be empty (a slot whose release is not known): the
# ports alone then.
# shellcheck disable=SC2034 # LISTEN_TABLE is read by listeners
leftovers_down() {
  local slot=$1 id=$2 dir=$3 user=$4 pid v rel of cmd k sp match pause now kill_at deadline s tty said="" LISTEN_TABLE
  local -a found=() left=() stat_fields=()
  local -A on_port=()
  shift 4
  id -u "$user" >/dev/null 2>&1 || return 0
  [ -z "$dir" ] || dir=$(readlink -f "$dir" 2>/dev/null || printf '%s' "$dir")
  if command -v ss >/dev/null; then
    LISTEN_TABLE=$(ss -Htlnp 2>/dev/null)
    for v in "$@"; do IFS=: read -r _ v _ <<< "$v"; for pid in $(listeners "$v"); do on_port[$pid]=$v; done; done
  fi
  sup_pids
  for pid in $(pgrep -u "$user" 2>/dev/null); do
    if [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ]; then continue; fi
    rel=""; of=""
    while IFS= read -r -d '' v; do case $v in OPS_RELEASE=*) rel=${v#*=} ;; OPS_SLOT=*) of=${v#*=} ;; esac; done 2>/dev/null < "/proc/$pid/environ" || true
    [ -z "$of" ] || [ "$of" = "$slot" ] || continue
    match=""
    if [ -n "${on_port[$pid]:-}" ]; then match="listening on port ${on_port[$pid]}"
    elif [ -n "$id" ] && [ "$rel" = "$id" ] && [ "$of" = "$slot" ]; then match="started by release $id's programs"
    elif [ -n "$dir" ]; then
      read -r s 2>/dev/null < "/proc/$pid/stat" || continue
      read -r -a stat_fields <<< "${s##*) }"; tty=${stat_fields[4]:-0}
      if [ "$tty" = 0 ]; then
        case "$(proc_cwd "$pid")" in "$dir" | "$dir"/*) match="running in $dir" ;; esac
        case "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" in "$dir"/*) match="running $dir's executable" ;; esac
        cmd=$(tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" || true)
        case " $cmd" in *" $dir/"* | *" $dir "*) match=${match:-"running $dir's files"} ;; esac
      fi
    fi
    [ -n "$match" ] || continue
    for k in "${!SUP_PID[@]}"; do sp=${SUP_PID[$k]}; if [ "$sp" != 0 ] && in_tree "$pid" "$sp"; then match=""; break; fi; done
    [ -n "$match" ] || continue
    found+=("$pid"); said+="${said:+, }pid $pid ($(proc_cmd "$pid"), $match)"
  done
  [ ${#found[@]} -gt 0 ] || return 0
  kill -TERM "${found[@]}" 2>/dev/null || true
  exec {pause}<> <(:)
  printf -v now '%(%s)T' -1; kill_at=$(( now + 5 )); deadline=$(( now + 7 ))
  while [ "$now" -lt "$deadline" ]; do
    left=(); for pid in "${found[@]}"; do kill -0 "$pid" 2>/dev/null && left+=("$pid"); done
    [ ${#left[@]} -gt 0 ] || break
    found=("${left[@]}")
    if [ "$now" -ge "$kill_at" ]; then kill -KILL "${left[@]}" 2>/dev/null || true; said+="; killed (SIGKILL) after 5 s: ${left[*]}"; kill_at=$deadline; fi
    read -r -t 0.1 -u "$pause" _ || true
    printf -v now '%(%s)T' -1
  done
  exec {pause}<&-
  printf 'stopped what release %s left running on slot %s outside supervisor (a program that daemonised, out of the process group supervisor stops, would keep the slot'"'"'s ports): %s\n' "${id:-of unknown id}" "$slot" "$said"
}
