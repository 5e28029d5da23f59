# shellcheck shell=bash
# supervisord's XML-RPC API on its unix socket, through curl: milliseconds per call, where each
# supervisorctl run costs a Python start-up (up to a second on a busy host). Faults (supervisor/xmlrpc.py:
# <fault> with faultCode/faultString) are turned into supervisor's own message.
rpc() { # method [string-arg...]: prints the response
  local params="" a
  for a in "${@:2}"; do params+="<param><value><string>$a</string></value></param>"; done
  curl -sS --max-time 120 --unix-socket /var/run/supervisor.sock -H 'Content-Type: text/xml' \
    --data-binary "<?xml version='1.0'?><methodCall><methodName>$1</methodName><params>$params</params></methodCall>" http://localhost/RPC2 2>&1 \
    || echo "<fault>supervisor does not answer on /var/run/supervisor.sock (is it running?)</fault>"
}
# rpc_fault ANSWER: supervisor's message when ANSWER is a fault (status 0), else status 1.
rpc_fault() {
  case "$1" in *"<fault>"*) ;; *) return 1 ;; esac
  local m
  m=$(printf '%s' "$1" | tr -d '\n' | sed -n 's/.*<name>faultString<\/name><value><string>\(.*\)<\/string><\/value>.*/\1/p')
  [ -n "$m" ] || m=$(printf '%s' "$1" | tr -d '\n' | sed 's/.*<fault>\(.*\)<\/fault>.*/\1/')
  printf '%s' "$m" | sed "s/&lt;/</g; s/&gt;/>/g; s/&quot;/\"/g; s/&apos;/'/g; s/&amp;/\&/g"
}
# reread: supervisor reads every configuration file again (reloadConfig: running processes are not touched);
# prints supervisor's own message and fails when it refuses one (CANT_REREAD).
reread() { local out; out=$(rpc supervisor.reloadConfig); ! rpc_fault "$out"; }
# group_down GROUP: stop and forget a process group (absent is fine)
group_down() { rpc supervisor.stopProcessGroup "$1" >/dev/null; rpc supervisor.removeProcessGroup "$1" >/dev/null; }
# group_add GROUP: start a group supervisor has read; prints supervisor's message and fails on a fault.
group_add() { local out; out=$(rpc supervisor.addProcessGroup "$1"); ! rpc_fault "$out"; }
# sup_pids: SUP_PID[GROUP:PROGRAM] = the pid supervisor reports for each of its programs (0 when not running) and
# SUP_STATE[GROUP:PROGRAM] its state name (RUNNING, STARTING, BACKOFF, FATAL...: supervisor/states.py), from ONE
# getAllProcessInfo call parsed by bash itself (no process per program: this runs on every no-op and rollback).
# Each process is a <struct> whose members are <name>KEY</name><value><TYPE>VALUE</TYPE></value> (xmlrpc.client).
# shellcheck disable=SC2034 # SUP_PID and SUP_STATE are this function's result, read by the step that calls it
sup_pids() {
  local xml s n g p st re_name='<name>name</name><value><string>([^<]*)</string>' re_group='<name>group</name><value><string>([^<]*)</string>' re_pid='<name>pid</name><value><int>([0-9]+)</int>' re_state='<name>statename</name><value><string>([A-Z]*)</string>'
  declare -gA SUP_PID=() SUP_STATE=()
  xml=$(rpc supervisor.getAllProcessInfo); xml=${xml//$'\n'/}
  while [[ $xml == *'</struct>'* ]]; do
    s=${xml%%'</struct>'*}; xml=${xml#*'</struct>'}
    n=; g=; p=0; st=
    if [[ $s =~ $re_name ]]; then n=${BASH_REMATCH[1]}; fi
    if [[ $s =~ $re_group ]]; then g=${BASH_REMATCH[1]}; fi
    if [[ $s =~ $re_pid ]]; then p=${BASH_REMATCH[1]}; fi
    if [[ $s =~ $re_state ]]; then st=${BASH_REMATCH[1]}; fi
    if [ -n "$n" ]; then SUP_PID[$g:$n]=$p; SUP_STATE[$g:$n]=$st; fi
  done
}
# group_fatal GROUP: 0 when supervisor gave up on one of GROUP's programs (FATAL: it kept exiting within
# startsecs, startretries times), through the same one call (a supervisorctl run would cost a Python start-up
# every time the health gate asks, ten at once when ten hosts start together).
group_fatal() {
  local k
  sup_pids
  for k in "${!SUP_STATE[@]}"; do [[ $k == "$1:"* && ${SUP_STATE[$k]} == FATAL ]] && return 0; done
  return 1
}
