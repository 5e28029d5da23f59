// The gapless switch (blue/green): the new release's programs start beside the live ones on the other
// slot's ports, must pass their health checks, then nginx moves to them with a validated graceful reload,
// `current` flips by rename(2), and the old slot stops after a drain period.
import type { Environment } from '../config/environment.ts';
import { OpsError } from '../errors.ts';
import { layout, slotPort, type Slot } from '../layout.ts';
import { runtimePaths } from '../runtimes.ts';
import type { Step } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { supervisorEnvironment, supervisorValue } from '../supervisor.ts';
import { historyFunctions } from './history.ts';
import { applyNginx, site, upstreams } from './nginx.ts';
import { SYSTEM_FUNCTIONS, b64, putFile } from './script.ts';

/** Expand {release} {python} {node} {npm} {port} {port:<program>} in a program's command or environment. */
export function expand(env: Environment, text: string, release: string, program: string, slot: Slot): string {
  const paths = runtimePaths(env);
  return text.replace(/\{([a-z_]+)(?::([a-z][a-z0-9_-]*))?\}/g, (whole, name: string, arg?: string) => {
    if (name === 'release' && !arg) return release;
    if (name === 'python' && !arg) return paths.python;
    if (name === 'node' && !arg) return paths.node;
    if (name === 'npm' && !arg) return paths.npm;
    if (name === 'port') {
      const target = arg ?? program;
      if (!env.config.programs[target]) throw new OpsError(`programs.${program}: ${whole} names no program`, `programs: ${Object.keys(env.config.programs).join(', ')}`);
      return String(slotPort(env, target, slot));
    }
    throw new OpsError(`programs.${program}: unknown placeholder ${whole}`, 'placeholders: {release} {python} {node} {npm} {port} {port:<program>}');
  });
}

export function programName(env: Environment, slot: Slot, program: string): string {
  return layout(env).supervisorProgram(slot, program);
}

/**
 * The supervisor group of one slot, running one release. Every value is encoded for supervisor
 * (core/supervisor.ts): a program runs exactly the command and environment the environment file says.
 * @throws OpsError naming the program and key of a value supervisor cannot carry (at plan time).
 */
export function slotConfig(env: Environment, slot: Slot, release: string, releaseId: string): string {
  const L = layout(env);
  const paths = runtimePaths(env);
  const nodeBin = paths.node.replace(/\/node$/, '');
  const names = Object.keys(env.config.programs);
  const blocks = names.map((name) => {
    const p = env.config.programs[name]!;
    const dir = p.directory === '.' ? release : `${release}/${p.directory}`;
    const vars: Record<string, string> = {
      HOME: `/home/${env.appUser}`,
      PATH: `${release}/venv/bin:${nodeBin}:/usr/local/bin:/usr/bin:/bin`,
      OPS_RELEASE: releaseId,
      OPS_SLOT: slot,
    };
    for (const [k, v] of Object.entries(p.env)) vars[k] = expand(env, v, release, name, slot);
    const log = `${L.logDir}/${name}-${slot}`;
    const key = (k: string) => `programs.${name}.${k}`;
    return [
      `[program:${programName(env, slot, name)}]`,
      `command=${supervisorValue(key('command'), expand(env, p.command, release, name, slot))}`,
      `directory=${supervisorValue(key('directory'), dir)}`,
      `user=${supervisorValue('app_user', env.appUser)}`,
      `environment=${supervisorEnvironment(vars, (k) => (k in p.env ? key(`env.${k}`) : `the ${k} given to programs (from base_dir or the runtimes)`))}`,
      'autostart=true',
      'autorestart=true',
      'startsecs=1',
      'startretries=3',
      'stopsignal=TERM',
      'stopwaitsecs=15',
      'stopasgroup=true',
      'killasgroup=true',
      `stdout_logfile=${supervisorValue(key('log'), `${log}.out.log`, 2)}`,
      'stdout_logfile_maxbytes=20MB',
      'stdout_logfile_backups=5',
      `stderr_logfile=${supervisorValue(key('log'), `${log}.err.log`, 2)}`,
      'stderr_logfile_maxbytes=20MB',
      'stderr_logfile_backups=5',
    ].join('\n');
  });
  return [
    `; Managed by ops-pipeline: slot ${slot} of ${env.config.app}, release ${releaseId}. Rewritten by deploys.`,
    `[group:${layout(env).supervisorGroup(slot)}]`,
    `programs=${supervisorValue('programs', names.map((n) => programName(env, slot, n)).join(','))}`,
    '',
    ...blocks.map((b) => `${b}\n`),
  ].join('\n');
}

/** The health probes of a slot: program, port, path. */
export function probes(env: Environment, slot: Slot): string[] {
  return Object.entries(env.config.programs).map(([name, p]) => `${name}:${slotPort(env, name, slot)}:${p.health}`);
}

/**
 * supervisord's XML-RPC API on its unix socket, through curl: milliseconds per call, where each
 * supervisorctl run costs a Python start-up (up to a second on a busy host). Faults (supervisor/xmlrpc.py:
 * `<fault>` with faultCode/faultString) are turned into supervisor's own message.
 */
export const SUPERVISOR_FUNCTIONS = String.raw`rpc() { # method [string-arg...]: prints the response
  local params="" a
  for a in "${'$'}{@:2}"; do params+="<param><value><string>$a</string></value></param>"; done
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
# sup_pid GROUP:PROGRAM: the pid supervisor reports for a program (getProcessInfo), 0 or nothing when none.
sup_pid() { rpc supervisor.getProcessInfo "$1" | tr -d '\n' | sed -n 's/.*<name>pid<\/name><value><int>\([0-9]*\)<\/int>.*/\1/p'; }`;

/**
 * Who answers on a port: the processes listening on it (`ss -Htlnp` from iproute2, every process holding
 * the socket: a pre-forking server's master and workers alike), whether each is in the process tree of the
 * pid supervisor started, and which release each runs (OPS_RELEASE in /proc/<pid>/environ, else its working
 * directory). `check_identity` is the health gate's verdict; `report_slot` is what `ops status` shows.
 */
export const IDENTITY_FUNCTIONS = String.raw`# Builtins where they do (no process per call: these run on every no-op deploy and rollback).
proc_env_release() { local v; while IFS= read -r -d '' v; do case $v in OPS_RELEASE=*) printf '%s\n' "${'$'}{v#OPS_RELEASE=}"; return 0 ;; esac; done < "/proc/$1/environ" 2>/dev/null; return 0; }
proc_cwd() { readlink "/proc/$1/cwd" 2>/dev/null || true; }
proc_cmd() { tr '\0\n\t' '   ' < "/proc/$1/cmdline" 2>/dev/null | cut -c 1-160 | sed 's/ *$//'; }
# listeners PORT: pids listening on it, from LISTEN_TABLE (one \`ss -Htlnp\` for every port) when set.
listeners() {
  local table l rest
  table=${'$'}{LISTEN_TABLE-$(ss -Htlnp 2>/dev/null)}
  while read -r _ _ _ l _ rest; do
    [ "${'$'}{l##*:}" = "$1" ] || continue
    while [[ $rest =~ pid=([0-9]+) ]]; do printf '%s\n' "${'$'}{BASH_REMATCH[1]}"; rest=${'$'}{rest#*pid=${'$'}{BASH_REMATCH[1]}}; done
  done <<< "$table" | sort -un
}
# in_tree PID ROOT: ROOT is PID or one of its ancestors (parents read from /proc/PID/stat, after the command name).
in_tree() {
  local p=$1 n=0 s f
  while [ -n "$p" ] && [ "$p" -gt 0 ] && [ "$n" -lt 64 ]; do
    [ "$p" = "$2" ] && return 0
    read -r s < "/proc/$p/stat" 2>/dev/null || return 1
    read -r -a f <<< "${'$'}{s##*) }"; p=${'$'}{f[1]:-0}; n=$(( n + 1 ))
  done
  return 1
}
# same_release PID ID DIR: the process runs release ID: OPS_RELEASE=ID, or its working directory is inside DIR.
same_release() {
  [ "$(proc_env_release "$1")" = "$2" ] && return 0
  case "$(proc_cwd "$1")" in "$3" | "$3"/*) return 0 ;; esac
  return 1
}
# describe_proc PID: "pid N (command) running RELEASE-or-directory"
describe_proc() {
  local r c
  r=$(proc_env_release "$1"); c=$(proc_cwd "$1")
  printf 'pid %s (%s) running %s' "$1" "$(proc_cmd "$1")" "${'$'}{r:-an unknown release}${'$'}{c:+, in $c}"
}
# check_identity ID DIR GROUP name:port...: every process listening on each program's port is in the tree of
# the pid supervisor reports for that program of GROUP and runs release ID (directory DIR). On failure,
# IDENTITY says what answers instead.
check_identity() {
  local id=$1 dir group=$3 p name port sp l ls LISTEN_TABLE; dir=$(readlink -f "$2"); shift 3
  IDENTITY=""
  command -v ss >/dev/null || { IDENTITY="cannot tell who listens on the ports: ss (iproute2) is not installed; run ops provision"; return 1; }
  LISTEN_TABLE=$(ss -Htlnp 2>/dev/null)
  for p in "$@"; do
    IFS=: read -r name port _ <<< "$p"
    sp=$(sup_pid "$group:$group-$name"); sp=${'$'}{sp:-0}
    ls=$(listeners "$port")
    if [ -z "$ls" ]; then IDENTITY+="nothing listens on port $port of program $name (it answered the health check: another network namespace?); "; continue; fi
    for l in $ls; do
      if [ "$sp" != 0 ] && in_tree "$l" "$sp" && same_release "$l" "$id" "$dir"; then continue; fi
      IDENTITY+="port $port of program $name is answered by $(describe_proc "$l"), "
      if [ "$sp" = 0 ]; then IDENTITY+="while supervisor runs no process for $group:$group-$name; "
      elif ! in_tree "$l" "$sp"; then IDENTITY+="which supervisor did not start (its process for $name is pid $sp); "
      else IDENTITY+="not release $id; "; fi
    done
  done
  IDENTITY=${'$'}{IDENTITY%; }
  [ -z "$IDENTITY" ]
}
# report_slot SLOT GROUP name:port...: "proc" and "listener" reports (tab-separated) for ops status.
report_slot() {
  local slot=$1 group=$2 p name port sp l tree; shift 2
  for p in "$@"; do
    IFS=: read -r name port _ <<< "$p"
    sp=$(sup_pid "$group:$group-$name"); sp=${'$'}{sp:-0}
    if [ "$sp" != 0 ]; then ops_report proc "$slot	$name	$sp	$(proc_env_release "$sp")	$(proc_cwd "$sp")	$(proc_cmd "$sp")"; fi
    for l in $(listeners "$port"); do
      tree=other; if [ "$sp" != 0 ] && in_tree "$l" "$sp"; then tree=tree; fi
      ops_report listener "$slot	$name	$l	$tree	$(proc_env_release "$l")	$(proc_cwd "$l")	$(proc_cmd "$l")"
    done
  done
}`;

export const PROBE_FUNCTIONS = String.raw`# A first request may be slow (cold caches, a busy host): 5 s per probe, the deadline bounds the whole wait.
probe() { curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:$1$2" 2>/dev/null; }
# wait_healthy TIMEOUT INTERVAL name:port:path...: 0 when every probe answered 2xx in time.
# With FATAL_GROUP set, gives up early once supervisor has given up on one of the group's programs.
wait_healthy() {
  local limit=$1 deadline=$(( $(date +%s) + $1 )) interval=$2 next_check=$(( $(date +%s) + 2 )); shift 2
  local pending=("$@") left p name port path
  while :; do
    if [ -n "${'$'}{FATAL_GROUP:-}" ] && [ "$(date +%s)" -ge "$next_check" ]; then
      next_check=$(( $(date +%s) + 2 ))
      # supervisorctl exits non-zero when a program is down: read its output, not its status.
      case "$(supervisorctl status "$FATAL_GROUP:*" 2>/dev/null || true)" in
        *" FATAL "*) UNHEALTHY="supervisor gave up on a program that keeps exiting (waiting for ${'$'}{pending[*]})"; return 1 ;;
      esac
    fi
    # Probe every pending program at once: a slow page should not delay the others' verdict.
    local pids=() i=0
    for p in "${'$'}{pending[@]}"; do IFS=: read -r name port path <<< "$p"; probe "$port" "$path" & pids+=($!); done
    left=()
    for p in "${'$'}{pending[@]}"; do wait "${'$'}{pids[$i]}" || left+=("$p"); i=$(( i + 1 )); done
    [ ${'$'}{#left[@]} -eq 0 ] && return 0
    pending=("${'$'}{left[@]}")
    [ "$(date +%s)" -lt "$deadline" ] || { UNHEALTHY="no healthy answer within ${'$'}{limit}s from ${'$'}{left[*]}"; return 1; }
    sleep "$interval"
  done
}`;

/**
 * startSlot's exit code when it failed and already left the slot as it should be (new programs stopped, or
 * supervisor's previous file put back with the warm release still running): the operation must not stop
 * the slot again. Any other failure (a timeout, a lost connection) leaves the slot to the operation.
 */
export const START_FAILED_CLEAN = 3;

/** `name:port` of each program in a slot: what the identity check and status look at. */
export function programPorts(env: Environment, slot: Slot): string[] {
  return Object.keys(env.config.programs).map((name) => `${name}:${slotPort(env, name, slot)}`);
}

/**
 * Start the release on `slot` beside the live slot and wait for every health check, then check identity:
 * whatever answers on each port must be the process supervisor started for this release. supervisor must
 * accept the new file (reloadConfig, addProcessGroup): when it refuses, the previous file is put back and
 * the step fails with supervisor's own message. When a check never passes, the new programs stop again and
 * the step fails with their last log lines. Either way the live slot was never touched.
 */
export function startSlot(env: Environment, slot: Slot, release: string, releaseId: string): Step {
  const L = layout(env);
  const sw = env.config.switch;
  const group = L.supervisorGroup(slot);
  const logFiles = Object.keys(env.config.programs).flatMap((n) => [`${L.logDir}/${n}-${slot}.err.log`, `${L.logDir}/${n}-${slot}.out.log`]);
  const probeList = probes(env, slot).map(quote).join(' ');
  const identity = `check_identity ${quote(releaseId)} ${quote(release)} ${quote(group)} ${programPorts(env, slot).map(quote).join(' ')}`;
  return {
    name: `start ${slot}`,
    as: 'root',
    timeout: sw.health_timeout + 120,
    script: String.raw`${SYSTEM_FUNCTIONS}
${PROBE_FUNCTIONS}
${SUPERVISOR_FUNCTIONS}
${IDENTITY_FUNCTIONS}
conf=${quote(L.supervisorConf(slot))}
new_conf=$(printf %s ${b64(slotConfig(env, slot, release, releaseId))} | base64 -d)
# The slot may still run exactly this (the previous release, kept warm): then health and identity are enough.
if [ -f "$conf" ] && [ "$(cat "$conf")" = "$new_conf" ] && wait_healthy 2 0.1 ${probeList} && ${identity}; then
  echo "slot ${slot} already runs ${releaseId} and is healthy: reused"
  exit 0
fi
# The new file goes in beside a copy of the previous one, which comes back if supervisor refuses the new one.
prev=$(mktemp /etc/supervisor/.ops-prev.XXXXXX); trap 'rm -f "$prev"' EXIT
had_prev=0; if [ -f "$conf" ]; then cp -a "$conf" "$prev"; had_prev=1; fi
restore() { if [ "$had_prev" = 1 ]; then cp -a "$prev" "$conf"; else rm -f "$conf"; fi; reread >/dev/null || true; }
${putFile(L.supervisorConf(slot), slotConfig(env, slot, release, releaseId))}
if ! msg=$(reread); then
  restore
  if reread >/dev/null; then echo "supervisor refused the new configuration of slot ${slot} (${L.supervisorConf(slot)}): $msg" >&2
  else echo "supervisor refuses its configuration, with or without this deploy's change (fix the file it names): $msg" >&2; fi
  echo "the previous file is back in place; the live release keeps serving" >&2
  exit ${START_FAILED_CLEAN}
fi
# Anything left on this slot (the release before, a failed start) goes first, so the ports are ours.
group_down ${quote(group)}
for p in ${probeList}; do
  IFS=: read -r name port path <<< "$p"
  if probe "$port" /; then restore; echo "port $port (slot ${slot}, program $name) is already in use by another process: $(for l in $(listeners "$port"); do describe_proc "$l"; echo; done)" >&2; exit ${START_FAILED_CLEAN}; fi
done
# Remember where each log ends, to show only what the new processes write.
declare -A log_start
for f in ${logFiles.map(quote).join(' ')}; do log_start[$f]=$(stat -c %s "$f" 2>/dev/null || echo 0); done
if ! msg=$(group_add ${quote(group)}); then
  restore
  echo "supervisor refused to start ${group}: $msg" >&2
  echo "the previous file is back in place; the live release keeps serving" >&2
  exit ${START_FAILED_CLEAN}
fi
verdict=""
if ! FATAL_GROUP=${quote(group)} wait_healthy ${sw.health_timeout} ${sw.health_interval} ${probeList}; then
  verdict="release ${releaseId} did not become healthy on slot ${slot}: $UNHEALTHY"
elif ! ${identity}; then
  verdict="release ${releaseId} is not what answers on slot ${slot}: $IDENTITY"
fi
if [ -n "$verdict" ]; then
  for f in "${'$'}{!log_start[@]}"; do
    new=$(tail -c +$(( ${'$'}{log_start[$f]} + 1 )) "$f" 2>/dev/null | tail -n 8)
    [ -z "$new" ] || printf -- '--- %s\n%s\n' "$f" "$new"
  done
  supervisorctl status ${quote(`${group}:*`)} || true
  echo "$verdict; the live release keeps serving"
  group_down ${quote(group)}
  rm -f "$conf"
  reread >/dev/null || true
  exit ${START_FAILED_CLEAN}
fi >&2
echo "slot ${slot} healthy: ${Object.keys(env.config.programs).join(', ')} (each answered by the process supervisor started for ${releaseId})"`,
  };
}

/**
 * Stop a slot's programs and remove its group: after a failed switch (no drain), or the old slot after a
 * switch. Draining waits until nginx's old workers (the only ones still routing to the old slot) have
 * finished their in-flight requests and exited, for at most `drainSeconds`.
 */
export function stopSlot(env: Environment, slot: Slot, drainSeconds = 0): Step {
  const L = layout(env);
  const drain = drainSeconds
    ? String.raw`deadline=$(( $(date +%s) + ${drainSeconds} ))
while pgrep -f 'nginx: worker process is shutting down' >/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
`
    : '';
  return {
    name: `stop ${slot}`,
    as: 'root',
    timeout: drainSeconds + 120,
    script: String.raw`${SUPERVISOR_FUNCTIONS}
${drain}conf=${quote(L.supervisorConf(slot))}
if [ -f "$conf" ]; then
  group_down ${quote(L.supervisorGroup(slot))}
  rm -f "$conf"
  reread >/dev/null || true
  echo "slot ${slot} stopped"
fi`,
  };
}

/**
 * The switch, in one step: nginx to the new slot (site re-rendered too), validated and reloaded gracefully
 * (the previous files come back if nginx refuses); then, once nginx answers with the new slot (a reload
 * returns before the new workers serve), `current` flips by rename(2), the live slot is recorded, and the
 * release's going live is appended to the host's history (the order rollback and pruning follow).
 */
export function switchTo(env: Environment, slot: Slot, releaseId: string, certificateReady: boolean, operation: 'deploy' | 'rollback' = 'deploy'): Step {
  const L = layout(env);
  const target = `${L.releases}/${releaseId}`;
  const host = env.config.domain ? ` -H ${quote(`Host: ${env.config.domain}`)}` : '';
  return {
    ...applyNginx({
      item: 'switch',
      files: [
        { path: L.nginxSite, content: site(env, certificateReady) },
        { path: L.nginxUpstreams, content: upstreams(env, slot) },
      ],
      links: [[L.nginxSite, L.nginxSiteEnabled]],
      // The new `current` link and slot record exist before nginx changes (they need space and inodes under
      // the app's directory, which may be full): after the reload, two renames make them live.
      before: String.raw`ln -sfn ${quote(target)} ${quote(`${L.base}/.current.new`)}
printf '%s\n' ${quote(slot)} > ${quote(`${L.slotFile}.new`)}`,
      then: String.raw`for i in $(seq 100); do
  got=$(curl -s --max-time 1${host} http://127.0.0.1/.ops/slot 2>/dev/null || true)
  [ "$got" = ${quote(slot)} ] && break
  if [ "$i" = 100 ]; then echo "nginx does not report slot ${slot} at /.ops/slot (a custom site template without {{slot_location}}?); continuing" >&2; fi
  sleep 0.05
done
mv -T ${quote(`${L.base}/.current.new`)} ${quote(L.current)}
mv -f ${quote(`${L.slotFile}.new`)} ${quote(L.slotFile)}
${historyFunctions(env)}
history_add live ${quote(releaseId)} ${operation}
echo "live: ${releaseId} on slot ${slot}"`,
    }),
    name: 'switch',
  };
}

/**
 * A rollback's work on a host in one step: start (or reuse, when it still runs warm) `releaseId` on `slot`,
 * switch to it, then `after` (marking the release left; its failure is ignored) and `closing` (the audit line
 * and the unlock, core/ops/locked.ts). Fails like startSlot (exit START_FAILED_CLEAN: the slot is as it was)
 * or, once the start succeeded, with any other code (the operation stops the slot again); either way before
 * `current` changed.
 */
export function rollbackStep(env: Environment, slot: Slot, releaseId: string, certificateReady: boolean, after: string, closing: string): Step {
  const start = startSlot(env, slot, `${layout(env).releases}/${releaseId}`, releaseId);
  const sw = switchTo(env, slot, releaseId, certificateReady, 'rollback');
  return {
    name: `start ${slot} + switch`,
    as: 'root',
    timeout: (start.timeout ?? 600) + (sw.timeout ?? 600),
    script: [
      // Each part in a subshell of its own: its `exit` and traps stay its own.
      `(\n${start.script}\n)`,
      `(\n${sw.script}\n) || { rc=$?; [ "$rc" != ${START_FAILED_CLEAN} ] || rc=1; exit "$rc"; }`,
      `(\n${after}\n) || echo "could not mark the release left (it stays a rollback target)" >&2`,
      closing,
    ].join('\n'),
  };
}
