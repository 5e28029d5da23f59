// One run at a time per environment: an atomic `mkdir` lock on each host, holding who/what/when and the
// PID (plus start time) of a process that lives exactly as long as the holder's SSH connection. A lock
// whose holder process is gone was left by a run that died: it is reported as stale, never silently taken.
import type { Environment } from '../config/environment.ts';
import { layout } from '../layout.ts';
import type { Step, StepResult } from '../remote/types.ts';
import { reported, reportedAll } from '../remote/types.ts';
import { quote } from '../shell.ts';

export interface LockRequest {
  operation: string;
  actor: string;
  runUrl: string;
  /** PID of this run's holder process on the host (Remote.hold). */
  holderPid: number;
  /** Seconds to wait for a live holder before giving up. */
  wait: number;
}

/** Shell that sets `lock_state` to free, held or stale for the lock at $lock. */
const LOCK_STATE = String.raw`lock_state=free
if [ -d "$lock" ]; then
  pid=$(sed -n 's/^holder_pid=//p' "$lock/info" 2>/dev/null || true)
  start=$(sed -n 's/^holder_start=//p' "$lock/info" 2>/dev/null || true)
  if [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] && [ "$(cut -d' ' -f22 "/proc/$pid/stat")" = "$start" ]; then lock_state=held; else lock_state=stale; fi
fi`;

const REPORT_HOLDER = String.raw`ops_report lock "$lock_state"
if [ -f "$lock/info" ]; then while IFS= read -r line; do ops_report holder "$line"; done < "$lock/info"; fi`;

export const LOCK_BUSY_EXIT = 3;

/** `then`: a script run as soon as the lock is ours, in the same step (saves a round trip: the host's state). */
export function acquireLock(env: Environment, req: LockRequest, then = ''): Step {
  const L = layout(env);
  return {
    name: 'lock',
    as: 'root',
    timeout: req.wait + 30,
    quiet: true,
    script: String.raw`lock=${quote(L.lock)}
install -d -m 0755 -o root -g root ${quote(L.base)} ${quote(L.state)}
deadline=$(( $(date +%s) + ${req.wait} ))
while :; do
  if mkdir "$lock" 2>/dev/null; then
    printf '%s\n' ${quote(`operation=${req.operation}`)} ${quote(`actor=${req.actor}`)} ${quote(`run=${req.runUrl}`)} "since=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "holder_pid=${req.holderPid}" "holder_start=$(cut -d' ' -f22 /proc/${req.holderPid}/stat)" > "$lock/info"
    ops_report lock acquired
    # Uploads left by an interrupted run (.env, initdata) are ours to remove now.
    find ${quote(L.uploads)} -mindepth 1 -delete 2>/dev/null || true
    break
  fi
  ${LOCK_STATE.replace(/\n/g, '\n  ')}
  if [ "$lock_state" = stale ] || [ "$(date +%s)" -ge "$deadline" ]; then
    ${REPORT_HOLDER.replace(/\n/g, '\n    ')}
    exit ${LOCK_BUSY_EXIT}
  fi
  sleep 1
done
${then}`,
  };
}

/**
 * Release our own lock only (a lock taken over by someone else after a forced release is left alone),
 * appending the run's audit lines first, in the same step.
 */
export function releaseLock(env: Environment, holderPid: number, auditLines: string[] = []): Step {
  const L = layout(env);
  const audit = auditLines.length ? `printf '%s\\n' ${auditLines.map(quote).join(' ')} >> ${quote(L.audit)}
chmod 0644 ${quote(L.audit)}
` : '';
  return {
    name: 'unlock',
    as: 'root',
    timeout: 30,
    quiet: true,
    script: String.raw`${audit}lock=${quote(L.lock)}
if [ "$(sed -n 's/^holder_pid=//p' "$lock/info" 2>/dev/null || true)" = "${holderPid}" ]; then rm -rf "$lock"; ops_report lock released; fi`,
  };
}

export function lockStatus(env: Environment): Step {
  return {
    name: 'lock status',
    as: 'login',
    timeout: 30,
    quiet: true,
    script: `lock=${quote(layout(env).lock)}\n${LOCK_STATE}\n${REPORT_HOLDER}`,
  };
}

/** Break a lock on purpose (ops lock release): reports what it removed. */
export function forceReleaseLock(env: Environment): Step {
  return {
    name: 'release lock',
    as: 'root',
    timeout: 30,
    quiet: true,
    script: `lock=${quote(layout(env).lock)}\n${LOCK_STATE}\n${REPORT_HOLDER}\nrm -rf "$lock"`,
  };
}

export interface LockInfo {
  state: 'free' | 'held' | 'stale' | 'acquired' | 'released';
  holder: Record<string, string>;
}

export function parseLock(result: StepResult): LockInfo {
  const holder: Record<string, string> = {};
  for (const line of reportedAll(result, 'holder')) {
    const eq = line.indexOf('=');
    if (eq > 0) holder[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return { state: (reported(result, 'lock') ?? 'free') as LockInfo['state'], holder };
}

export function describeHolder(h: Record<string, string>): string {
  if (!h.operation) return 'an unknown run (the lock has no details)';
  return `a ${h.operation} run by ${h.actor || 'unknown'}, started ${h.since || '?'}${h.run ? ` (${h.run})` : ''}`;
}
