// The gapless switch (blue/green): the new release's programs start beside the live ones on the other
// slot's ports, must pass their health checks, then nginx moves to them with a validated graceful reload,
// `current` flips by rename(2), and the old slot stops after a drain period.
import type { Environment } from '../config/environment.ts';
import { OpsError } from '../errors.ts';
import { layout, slotPort, type Slot } from '../layout.ts';
import { runtimePaths } from '../runtimes.ts';
import type { Step } from '../remote/types.ts';
import { quote } from '../shell.ts';
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

/** supervisor's `environment=` syntax: KEY="value" pairs, with % doubled (supervisor expands %(...)s). */
function supervisorEnv(vars: Record<string, string>): string {
  return Object.entries(vars)
    .map(([k, v]) => `${k}="${v.replace(/%/g, '%%').replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`)
    .join(',');
}

export function programName(env: Environment, slot: Slot, program: string): string {
  return `${env.config.app}-${slot}-${program}`;
}

/** The supervisor group of one slot, running one release. */
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
    return [
      `[program:${programName(env, slot, name)}]`,
      `command=${expand(env, p.command, release, name, slot)}`,
      `directory=${dir}`,
      `user=${env.appUser}`,
      `environment=${supervisorEnv(vars)}`,
      'autostart=true',
      'autorestart=true',
      'startsecs=1',
      'startretries=3',
      'stopsignal=TERM',
      'stopwaitsecs=15',
      'stopasgroup=true',
      'killasgroup=true',
      `stdout_logfile=${log}.out.log`,
      'stdout_logfile_maxbytes=20MB',
      'stdout_logfile_backups=5',
      `stderr_logfile=${log}.err.log`,
      'stderr_logfile_maxbytes=20MB',
      'stderr_logfile_backups=5',
    ].join('\n');
  });
  return [
    `; Managed by ops-pipeline: slot ${slot} of ${env.config.app}, release ${releaseId}. Rewritten by deploys.`,
    `[group:${layout(env).supervisorGroup(slot)}]`,
    `programs=${names.map((n) => programName(env, slot, n)).join(',')}`,
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
 * supervisorctl run costs a Python start-up (up to a second on a busy host).
 */
export const SUPERVISOR_FUNCTIONS = String.raw`rpc() { # method [string-arg...]: prints the response
  local params="" a
  for a in "${'$'}{@:2}"; do params+="<param><value><string>$a</string></value></param>"; done
  curl -sS --max-time 120 --unix-socket /var/run/supervisor.sock -H 'Content-Type: text/xml'     --data-binary "<?xml version='1.0'?><methodCall><methodName>$1</methodName><params>$params</params></methodCall>" http://localhost/RPC2
}
# group_down GROUP: stop and forget a process group (absent is fine)
group_down() { rpc supervisor.stopProcessGroup "$1" >/dev/null; rpc supervisor.removeProcessGroup "$1" >/dev/null; }
# group_up GROUP: (re)load its configuration and start it
group_up() {
  local out
  rpc supervisor.reloadConfig >/dev/null
  group_down "$1"
  out=$(rpc supervisor.addProcessGroup "$1")
  case "$out" in *"<fault>"*) echo "supervisor refused to start $1: $(printf '%s' "$out" | tr -d '\n' | sed 's/.*faultString<\/name><value><string>\([^<]*\).*/\1/')" >&2; return 1 ;; esac
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
 * Start the release on `slot` beside the live slot and wait for every health check. When a check never
 * passes, stop the new programs again and fail with their last log lines: the live slot was never touched.
 */
export function startSlot(env: Environment, slot: Slot, release: string, releaseId: string): Step {
  const L = layout(env);
  const sw = env.config.switch;
  const group = L.supervisorGroup(slot);
  const logFiles = Object.keys(env.config.programs).flatMap((n) => [`${L.logDir}/${n}-${slot}.err.log`, `${L.logDir}/${n}-${slot}.out.log`]);
  return {
    name: `start ${slot}`,
    as: 'root',
    timeout: sw.health_timeout + 120,
    script: String.raw`${SYSTEM_FUNCTIONS}
${PROBE_FUNCTIONS}
conf=${quote(L.supervisorConf(slot))}
${SUPERVISOR_FUNCTIONS}
new_conf=$(printf %s ${b64(slotConfig(env, slot, release, releaseId))} | base64 -d)
# The slot may still run exactly this (the previous release, kept warm): then a health check is enough.
if [ -f "$conf" ] && [ "$(cat "$conf")" = "$new_conf" ] && wait_healthy 2 0.1 ${probes(env, slot).map(quote).join(' ')}; then
  echo "slot ${slot} already runs ${releaseId} and is healthy: reused"
  exit 0
fi
# Anything else left on this slot (the release before, a failed start) goes first, so the ports are ours.
group_down ${quote(group)}
for p in ${probes(env, slot).map(quote).join(' ')}; do
  IFS=: read -r name port path <<< "$p"
  if probe "$port" /; then echo "port $port (slot ${slot}, program $name) is already in use by another process" >&2; exit 1; fi
done
# Remember where each log ends, to show only what the new processes write.
declare -A log_start
for f in ${logFiles.map(quote).join(' ')}; do log_start[$f]=$(stat -c %s "$f" 2>/dev/null || echo 0); done
${putFile(L.supervisorConf(slot), slotConfig(env, slot, release, releaseId))}
group_up ${quote(group)}
if ! FATAL_GROUP=${quote(group)} wait_healthy ${sw.health_timeout} ${sw.health_interval} ${probes(env, slot).map(quote).join(' ')}; then
  for f in "${'$'}{!log_start[@]}"; do
    new=$(tail -c +$(( ${'$'}{log_start[$f]} + 1 )) "$f" 2>/dev/null | tail -n 8)
    [ -z "$new" ] || printf -- '--- %s\n%s\n' "$f" "$new"
  done
  supervisorctl status ${quote(`${group}:*`)} || true
  echo "release ${releaseId} did not become healthy on slot ${slot}: $UNHEALTHY; the live release keeps serving"
  group_down ${quote(group)}
  rm -f "$conf"
  exit 1
fi >&2
echo "slot ${slot} healthy: ${Object.keys(env.config.programs).join(', ')}"`,
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
  rpc supervisor.reloadConfig >/dev/null
  echo "slot ${slot} stopped"
fi`,
  };
}

/**
 * The switch, in one step: nginx to the new slot (site re-rendered too), validated and reloaded gracefully
 * (the previous files come back if nginx refuses); then, once nginx answers with the new slot (a reload
 * returns before the new workers serve), `current` flips by rename(2) and the live slot is recorded.
 */
export function switchTo(env: Environment, slot: Slot, releaseId: string, certificateReady: boolean): Step {
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
echo "live: ${releaseId} on slot ${slot}"`,
    }),
    name: 'switch',
  };
}
