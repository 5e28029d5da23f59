# shellcheck shell=bash
# supervisord's XML-RPC API on its unix socket, through curl: milliseconds per call, where each
# supervisorctl run costs a Python start-up (up to a second on a busy host). Faults (supervisor/xmlrpc.py:
# <fault> with faultCode/faultString) are turned into supervisor's own message.
# Debian's supervisord.conf ([unix_http_server] file=).
SUPERVISOR_SOCK=/var/run/supervisor.sock
rpc() { # method [arg...]: prints the response; each arg a string, or a boolean written bool:0 / bool:1
  local params="" a
  for a in "${@:2}"; do
    case "$a" in
      bool:[01]) params+="<param><value><boolean>${a#bool:}</boolean></value></param>" ;;
      *) params+="<param><value><string>$a</string></value></param>" ;;
    esac
  done
  curl -sS --max-time 120 --unix-socket "$SUPERVISOR_SOCK" -H 'Content-Type: text/xml' \
    --data-binary "<?xml version='1.0'?><methodCall><methodName>$1</methodName><params>$params</params></methodCall>" http://localhost/RPC2 2>&1 \
    || echo "<fault>supervisor does not answer on $SUPERVISOR_SOCK (is it running?)</fault>"
}
# rpc_fault ANSWER: supervisor's message when ANSWER is a fault (status 0), else status 1.
rpc_fault() {
  case "$1" in *"<fault>"*) ;; *) return 1 ;; esac
  local m
  m=$(printf '%s' "$1" | tr -d '\n' | sed -n 's/.*<name>faultString<\/name><value><string>\(.*\)<\/string><\/value>.*/\1/p')
  [ -n "$m" ] || m=$(printf '%s' "$1" | tr -d '\n' | sed 's/.*<fault>\(.*\)<\/fault>.*/\1/')
  printf '%s' "$m" | sed "s/&lt;/</g; s/&gt;/>/g; s/&quot;/\"/g; s/&apos;/'/g; s/&amp;/\&/g"
}
# rpc_error ANSWER: why a call failed, on one line: supervisor's fault message, or rpc's own when the socket did not
# answer (not curl's words before it, "Failed to connect to localhost port 80", which name no socket); never markup.
rpc_error() {
  local why
  why=$(rpc_fault "$1") || why=$1
  printf '%s' "$why" | tr '\n' ' ' | sed 's/ *$//'
}
# reread: supervisor reads every configuration file again (reloadConfig: running processes are not touched);
# prints supervisor's own message and fails when it refuses one (CANT_REREAD).
reread() { local out; out=$(rpc supervisor.reloadConfig); ! rpc_fault "$out"; }
# group_down GROUP [STOPWAITSECS]: stop and forget a process group (absent is fine), leaving none of its processes
# behind. supervisord answers a stopProcessGroup that waits only on a later turn of its main loop, which sleeps up to
# a second (supervisor/supervisord.py, runforever: poll(1.0)): 1.1 s for programs gone in 0.13 s. So it is asked not to
# wait, and what it started is watched here. It starts each program as the leader of a process group of its own
# (supervisor/process.py, _spawn_as_child: setpgrp) and, with stopasgroup, signals that whole group, but it waits on
# the leader alone: a shell that dies at once while the server it runs (its child) drains, or a worker that ignores
# SIGTERM, outlived the stop and kept the slot's port. So each process GROUP is watched (kill -0 -PGID, a builtin),
# and what is left of one after STOPWAITSECS (default 15: slotConfig's stopwaitsecs, after which supervisord kills a
# leader) is killed, as killasgroup would; for at most STOPWAITSECS + 5 s in all. Then the group is removed, asked
# again briefly while supervisord has not yet recorded the exits (fault STILL_RUNNING).
group_down() {
  local k pause now deadline kill_at out pgids=() left
  sup_pids
  for k in "${!SUP_PID[@]}"; do [[ $k == "$1:"* && ${SUP_PID[$k]} != 0 ]] && pgids+=("${SUP_PID[$k]}"); done
  rpc supervisor.stopProcessGroup "$1" bool:0 >/dev/null
  exec {pause}<> <(:)
  printf -v now '%(%s)T' -1; kill_at=$(( now + ${2:-15} + 1 )); deadline=$(( now + ${2:-15} + 5 ))
  while [ ${#pgids[@]} -gt 0 ] && [ "$now" -lt "$deadline" ]; do
    left=(); for k in "${pgids[@]}"; do kill -0 -- "-$k" 2>/dev/null && left+=("$k"); done
    pgids=("${left[@]}")
    if [ ${#pgids[@]} -gt 0 ] && [ "$now" -ge "$kill_at" ]; then
      for k in "${pgids[@]}"; do kill -KILL -- "-$k" 2>/dev/null || true; done
      kill_at=$deadline
    fi
    [ ${#pgids[@]} -eq 0 ] || read -r -t 0.05 -u "$pause" _ || true
    printf -v now '%(%s)T' -1
  done
  for k in 1 2 3 4 5 6 7 8 9 10; do
    out=$(rpc supervisor.removeProcessGroup "$1")
    [[ $out == *STILL_RUNNING* ]] || break
    read -r -t 0.1 -u "$pause" _ || true
  done
  exec {pause}<&-
}
# group_add GROUP: start a group supervisor has read; prints supervisor's message and fails on a fault.
group_add() { local out; out=$(rpc supervisor.addProcessGroup "$1"); ! rpc_fault "$out"; }
# sup_pids: SUP_PID[GROUP:PROGRAM] = the pid supervisor reports for each of its programs (0 when not running) and
# SUP_STATE[GROUP:PROGRAM] its state name (RUNNING, STARTING, BACKOFF, FATAL...: supervisor/states.py), from ONE
# getAllProcessInfo call parsed by bash itself (no process per program: this runs on every no-op and rollback).
# Each process is a <struct> whose members are <name>KEY</name><value><TYPE>VALUE</TYPE></value> (xmlrpc.client).
# SUP_SPAWNERR[GROUP:PROGRAM]: supervisor's spawnerr, why its last start failed (supervisor/process.py: "can't find
# command '...'" and the other refusals of options.check_execv_args, or "Exited too quickly ..."), unescaped.
# SUP_ERRLOG and SUP_OUTLOG[GROUP:PROGRAM]: its stderr_logfile and stdout_logfile (getProcessInfo; empty when none).
# SUP_STOP[GROUP:PROGRAM]: when its process last exited (supervisor's laststop, in whole seconds; 0 when it never
# did since supervisor created it: a group added anew starts at 0).
# shellcheck disable=SC2034 # SUP_PID, SUP_STATE, SUP_SPAWNERR, SUP_ERRLOG, SUP_OUTLOG and SUP_STOP are this function's result, read by the step that calls it
sup_pids() {
  local xml s n g p st e re_name='<name>name</name><value><string>([^<]*)</string>' re_group='<name>group</name><value><string>([^<]*)</string>' re_pid='<name>pid</name><value><int>([0-9]+)</int>' re_state='<name>statename</name><value><string>([A-Z]*)</string>' re_err='<name>spawnerr</name><value><string>([^<]*)</string>'
  local re_errlog='<name>stderr_logfile</name><value><string>([^<]*)</string>' re_outlog='<name>stdout_logfile</name><value><string>([^<]*)</string>' el ol
  local re_stop='<name>stop</name><value><int>([0-9]+)</int>' so
  declare -gA SUP_PID=() SUP_STATE=() SUP_SPAWNERR=() SUP_ERRLOG=() SUP_OUTLOG=() SUP_STOP=()
  xml=$(rpc supervisor.getAllProcessInfo); xml=${xml//$'\n'/}
  while [[ $xml == *'</struct>'* ]]; do
    s=${xml%%'</struct>'*}; xml=${xml#*'</struct>'}
    n=; g=; p=0; st=
    if [[ $s =~ $re_name ]]; then n=${BASH_REMATCH[1]}; fi
    if [[ $s =~ $re_group ]]; then g=${BASH_REMATCH[1]}; fi
    if [[ $s =~ $re_pid ]]; then p=${BASH_REMATCH[1]}; fi
    if [[ $s =~ $re_state ]]; then st=${BASH_REMATCH[1]}; fi
    e=; if [[ $s =~ $re_err ]]; then e=${BASH_REMATCH[1]}; e=${e//&lt;/<}; e=${e//&gt;/>}; e=${e//&amp;/&}; fi
    el=; if [[ $s =~ $re_errlog ]]; then el=${BASH_REMATCH[1]}; el=${el//&lt;/<}; el=${el//&gt;/>}; el=${el//&amp;/&}; fi
    ol=; if [[ $s =~ $re_outlog ]]; then ol=${BASH_REMATCH[1]}; ol=${ol//&lt;/<}; ol=${ol//&gt;/>}; ol=${ol//&amp;/&}; fi
    so=0; if [[ $s =~ $re_stop ]]; then so=${BASH_REMATCH[1]}; fi
    if [ -n "$n" ]; then SUP_PID[$g:$n]=$p; SUP_STATE[$g:$n]=$st; SUP_SPAWNERR[$g:$n]=$e; SUP_ERRLOG[$g:$n]=$el; SUP_OUTLOG[$g:$n]=$ol; SUP_STOP[$g:$n]=$so; fi
  done
}
# group_fatal GROUP: 0 when supervisor gave up on one of GROUP's programs (FATAL: it kept exiting within
# startsecs, startretries times), through the same one call (a supervisorctl run would cost a Python start-up
# every time the health gate asks, ten at once when ten hosts start together).
# FATAL_WHY then says which program and why, with the fix when supervisor could not start it at all (spawnerr: its
# command's first word not found, not executable: a typo, a venv's program the requirements do not install), not
# "keeps exiting": builtins over the same call's answer. One that started and kept exiting says why in its own log
# alone (a traceback, "Cannot find module", EADDRINUSE, a bad shebang's "env: 'pyhton3': No such file", supervisor's
# "couldn't chdir"): FATAL_WHY quotes the last lines it wrote there since this start (log_reason), so that the
# verdict carries the reason, not a pointer to ops logs.
# A program that exits only after supervisor took it as started (startsecs: a database awaited, a setting read late)
# is restarted without end, never FATAL: when GROUP_EXITS is declared (an associative array the caller keeps over its
# calls, probe_rounds), each exit seen (supervisor's laststop changed: group_exits) is counted in it, and
# EXITS_GIVE_UP of them (3 by default: supervisor's own startretries for the quick ones), the last one past startsecs,
# are a verdict too, said as group_exits says it (after FATAL: supervisor's own verdict first).
# Needs mask.sh (mask_clip) and, for the quote, LOG_START (log_reason).
# shellcheck disable=SC2034 # FATAL_WHY is this function's result, read by the health gate (probe.sh) that calls it
group_fatal() {
  local k e prog
  sup_pids
  for k in "${!SUP_STATE[@]}"; do
    [[ $k == "$1:"* && ${SUP_STATE[$k]} == FATAL ]] || continue
    # Programs are named <group>-<program> (core/steps/switch.ts programName).
    prog=${k#"$1:"}; prog=${prog#"$1-"}; e=${SUP_SPAWNERR[$k]}
    case "$e" in
      "can't find command "*)
        FATAL_WHY="supervisor could not start program $prog: $e (no such file, or no such name on its PATH); fix programs.$prog.command: its first word must be a program the release or the host has: {release}/venv/bin/<name> for a package release.python_requirements installs, {node} or {npm} for Node.js, {python}, or an absolute path" ;;
      "command at "*" is not executable"|"command at "*" is a directory"|"no permission to run command "*)
        FATAL_WHY="supervisor could not start program $prog: $e; fix programs.$prog.command: start a script with its interpreter ({python} FILE, {node} FILE, sh FILE), or commit it executable (git update-index --chmod=+x FILE)" ;;
      ""|"Exited too quickly"*|"Bad exit code"*)
        if log_reason "$k"; then
          FATAL_WHY="supervisor gave up on program $prog, which keeps exiting; $LOG_REASON_FILE ends: $LOG_REASON"
        else
          FATAL_WHY="supervisor gave up on program $prog, which keeps exiting, writing nothing to its stdout or stderr since this start (an app that writes a log file of its own says why there)"
        fi ;;
      *) FATAL_WHY="supervisor could not start program $prog: $e" ;;
    esac
    return 0
  done
  if declare -p GROUP_EXITS >/dev/null 2>&1 && group_exits "$1" "${EXITS_GIVE_UP:-3}"; then FATAL_WHY=$EXITS_WHY; return 0; fi
  return 1
}
# group_exits GROUP MIN: counts, in GROUP_EXITS[GROUP:PROGRAM] (the caller's associative array, kept over calls; with
# GROUP_EXITS_AT[GROUP:PROGRAM] the laststop last seen), each exit of GROUP's programs seen since the caller began
# (SUP_STOP changed, and not before GROUP_EXITS_SINCE, the caller's start in epoch seconds: an older exit of a group
# that ran before is not counted; call sup_pids first), and is 0 when one of them exited MIN times or more, its last
# exit after supervisor had taken it as started: supervisord's own log (one readLog call, then only) has its
# "success: NAME entered RUNNING state" before its last "exited: NAME (...)" (supervisor/process.py). An exit within
# startsecs is supervisor's to count (BACKOFF, then FATAL: group_fatal says it). EXITS_WHY then says which program, how
# many times, how it last ended in supervisord's words ("exit status 4", "terminated by SIGKILL"), that supervisor
# restarts it without end and the last lines it wrote since this start (log_reason).
# shellcheck disable=SC2034 # EXITS_WHY is this function's result
group_exits() {
  local k name prog status
  declare -p GROUP_EXITS >/dev/null 2>&1 || declare -gA GROUP_EXITS=()
  declare -p GROUP_EXITS_AT >/dev/null 2>&1 || declare -gA GROUP_EXITS_AT=()
  for k in "${!SUP_STOP[@]}"; do
    [[ $k == "$1:"* ]] || continue
    if [ "${SUP_STOP[$k]}" -ge "${GROUP_EXITS_SINCE:-1}" ] && [ "${SUP_STOP[$k]}" != "${GROUP_EXITS_AT[$k]:-0}" ]; then
      GROUP_EXITS[$k]=$(( ${GROUP_EXITS[$k]:-0} + 1 ))
    fi
    GROUP_EXITS_AT[$k]=${SUP_STOP[$k]}
  done
  for k in "${!GROUP_EXITS[@]}"; do
    if [[ $k != "$1:"* ]] || [ "${GROUP_EXITS[$k]}" -lt "$2" ]; then continue; fi
    name=${k#"$1:"}; prog=${name#"$1-"}
    # Its last exit, if it came after a success: "exit status 4" (the words before the first ";" or ")").
    status=$(rpc supervisor.readLog -65536 0 | awk -v ok=" success: $name entered RUNNING" -v ex=" exited: $name (" '
      index($0, ok) { up = 1; next }
      index($0, ex) { last = up ? substr($0, index($0, ex) + length(ex)) : ""; up = 0 }
      END { if (last == "") exit 1; sub(/[;)].*/, "", last); print last }') || continue
    [[ $status != "exit status "* ]] || status="with $status"
    if [ "${GROUP_EXITS[$k]}" = 1 ]; then status="1 exit since its start, $status"; else status="${GROUP_EXITS[$k]} exits since its start, the last $status"; fi
    EXITS_WHY="program $prog keeps exiting ($status): it ran past supervisor's startsecs (${STARTSECS:-3}s) each time, so supervisor restarts it without end"
    if log_reason "$k"; then
      EXITS_WHY+="; $LOG_REASON_FILE ends: $LOG_REASON"
    else
      EXITS_WHY+=", writing nothing to its stdout or stderr since this start (an app that writes a log file of its own says why there)"
    fi
    return 0
  done
  return 1
}
# log_since FILE: what a program wrote to its log FILE since LOG_START[FILE] (the size it had then) began, on
# stdout, at most the last 64 KiB. A file rotated meanwhile (supervisor renames it FILE.1 at its
# stdout_logfile_maxbytes and begins a new one; LOG_INODE[FILE], when the caller has it, the inode it had then) or
# truncated (logrotate's copytruncate; a program's own >) is smaller than it was, or another file: then its old
# file's rest (FILE.1, the same inode) and the whole new one. NUL bytes (a binary write) left out: bash drops them
# from a variable, with a warning on stderr. Nothing for a file not in LOG_START.
log_since() {
  local f=$1 at ino now size
  [ -n "${LOG_START[$f]+x}" ] || return 0
  at=${LOG_START[$f]}; ino=""
  if [[ $(declare -p LOG_INODE 2>/dev/null) == "declare -A"* ]]; then ino=${LOG_INODE[$f]:-}; fi
  read -r now size < <(stat -c '%i %s' -- "$f" 2>/dev/null) || { now=""; size=0; }
  if { [ -n "$ino" ] && [ "$ino" != - ] && [ -n "$now" ] && [ "$now" != "$ino" ]; } || [ "${size:-0}" -lt "$at" ]; then
    {
      if [ -n "$ino" ] && [ "$ino" != - ] && [ "$(stat -c %i -- "$f.1" 2>/dev/null)" = "$ino" ]; then tail -c +$(( at + 1 )) -- "$f.1" 2>/dev/null; fi
      cat -- "$f" 2>/dev/null
    } | tail -c 65536 | tr -d '\000'
  else
    tail -c +$(( at + 1 )) -- "$f" 2>/dev/null | tail -c 65536 | tr -d '\000'
  fi
}
# log_tail N: the last N lines of stdin (a program's log), or, when they are the end of a stack trace whose message
# comes before its frames (Node's `Error: Cannot find module ...` then `    at ...` lines, `{ code: ... }` and
# `Node.js v18...`), from that message on, at most 30 lines back: the frames alone do not say what failed. A Python
# traceback ends with its message, so its last N lines do.
log_tail() {
  awk -v n="$1" -v max=30 '{ l[NR] = $0 }
    END {
      s = NR - n + 1; if (s < 1) s = 1
      h = 0; frames = 0
      for (i = NR; i >= 1 && i > NR - max; i--) {
        if (l[i] ~ /^[ \t]+at /) frames = 1
        if (l[i] == "" || l[i] ~ /^[ \t{}^]/ || l[i] ~ /^Node\.js v[0-9]/) continue
        h = i; break
      }
      if (h && h < s && frames) s = h
      for (i = s; i <= NR; i++) print l[i]
    }'
}
# log_reason GROUP:PROGRAM: the last lines the program wrote since this start (LOG_START: an associative array, a log
# file's path -> its size in bytes when this start began, which the caller fills before starting the group: a file not
# in it is not read, as its lines may be an older release's), from its stderr log (SUP_ERRLOG: call sup_pids first),
# else its stdout log when stderr holds nothing new: in LOG_REASON, joined by " | ", and the file in LOG_REASON_FILE;
# 1 when neither says anything. Lines as log_words picks them, each masked then cut to 200 characters (mask_clip: a
# secret an app printed, a database URL in a traceback, never leaves the host whole), its control characters (a
# terminal escape) then shown as \xHH, as ops shows an app's text (core/errors.ts showControls). Read once, when the
# gate has its verdict (two processes): never per round. At most the last 64 KiB of what the start wrote (log_since:
# of a log rotated or truncated meanwhile too).
log_reason() {
  local f l out lines=()
  LOG_REASON=""; LOG_REASON_FILE=""
  # Nothing quoted unmasked: without mask.sh (or LOG_START), nothing is quoted.
  if [[ $(declare -p LOG_START 2>/dev/null) != "declare -A"* ]] || ! declare -F mask_clip >/dev/null; then return 1; fi
  for f in "${SUP_ERRLOG[$1]:-}" "${SUP_OUTLOG[$1]:-}"; do
    if [ -z "$f" ] || [ -z "${LOG_START[$f]+x}" ]; then continue; fi
    out=""
    mapfile -t lines < <(log_since "$f" | log_words 4)
    [ ${#lines[@]} -gt 0 ] || continue
    for l in "${lines[@]}"; do
      mask_clip "$l" 200; controls_shown "$MASK_TEXT"
      out+="${out:+ | }$CONTROLS_TEXT"
    done
    LOG_REASON=$out; LOG_REASON_FILE=$f
    return 0
  done
  return 1
}
# log_words N: of stdin (what a program wrote since its start, over its restarts), the N last lines that say
# something, without their indentation, in order: blank lines are skipped, and what frames an error's message
# (Node's `    at ...` frames, the `{ code: ... }` object it prints after them, `Node.js v18...`; the `^^^`/`~~~`
# markers under a Python 3.11 line); a line met again is not repeated, and the last line met again ends the search
# (the previous restart's end: a program that keeps exiting writes the same words each time).
log_words() {
  LC_ALL=C awk -v n="$1" '
    { sub(/\r$/, ""); gsub(/\t/, " "); l[NR] = $0
      if (obj) { skip[NR] = 1; if ($0 ~ /^}/) obj = 0 }
      else if ($0 ~ / [{]$/ && $0 ~ /^([ ]+at |[A-Za-z]*(Error|Exception))/) { obj = 1; sub(/ [{]$/, "", l[NR]) } }
    END {
      k = 0
      for (i = NR; i >= 1 && k < n; i--) {
        t = l[i]
        if (skip[i] || t ~ /^[ ]*$/ || t ~ /^[ ]+at / || t ~ /^Node\.js v[0-9]/ || t ~ /^[ ]*[~^]+[ ]*$/) continue
        sub(/^[ ]+/, "", t); sub(/[ ]+$/, "", t)
        if (k && t == got[1]) break
        for (j = 1; j <= k && got[j] != t; j++) ;
        if (j <= k) continue
        got[++k] = t
      }
      for (j = k; j >= 1; j--) print got[j]
    }'
}
# controls_shown TEXT: TEXT with each control character (a byte 0-31 or 127: a terminal escape, a bell) written as
# \xHH, in CONTROLS_TEXT (core/errors.ts showControls, as ops shows any app's text): never sent raw to a terminal.
controls_shown() {
  local LC_ALL=C c h t=$1
  while [[ $t =~ [[:cntrl:]] ]]; do
    c=${BASH_REMATCH[0]}; printf -v h '\\x%02x' "'$c"; t=${t//"$c"/$h}
  done
  CONTROLS_TEXT=$t
}
