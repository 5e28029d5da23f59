// One run at a time per environment: a lock directory on each host that appears and goes whole (rename(2): never seen
// without its details, which would read as a lock left by a dead run), holding who/what/when, the run's
// id, the id of its connection (OPS_CONNECTION, which every process its steps start carries), and the holder: the
// PID (plus start time) of the SSH server process of the holder's connection, which lives exactly as long as that
// connection and needs no channel of its own. A lock whose holder process is gone was left by a run that died:
// it is reported as stale, never silently taken; its forced release stops what that run left running first.
import type { Target } from '../target.ts';
import { REPORT_PREFIX, reportKeys, reported, reportedAll, type Step, type StepResult } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { CONNECTION_FUNCTIONS, CRITICAL_FUNCTIONS, CRITICAL_WAIT_SECONDS, HOST_LOCK_FUNCTIONS, IDENTITY_FUNCTIONS, LOCK_LOST_EXIT, LOCK_LOST_MARK, probeLibrary, STAMPED_FUNCTIONS, SUPERVISOR_FUNCTIONS } from './libraries.ts';
import { endTornLine, rotateAudit, withAuditLock } from './audit.ts';
import { PROVISIONED_KEYS, provisionedMarker, reportProvisioned } from './system.ts';
import { previousBackFunctions, previousBackSeconds, slotDown, STARTED_RECORD } from './switch.ts';
import { duration } from './status.ts';

export { LOCK_LOST_EXIT, STARTED_RECORD };

/** What the lock steps report: `live_seen` (LockRequest.premise: the release `current` named at the step's first look, '' none), `premise_changed` (`<then> <now>`: the live release changed while the run waited, LOCK_PREMISE_EXIT), `lock` (free|held|stale|unknown|acquired|released), `holder` (one `key=value` line of the holder's info each), `holder_pid` (the process that holds it), `audit_failed` (why the audit line was not written), `stopped` (pids a forced release stopped), `unchecked` (why a forced release could not look for its run's processes), `live_after` (the release `current` names once what a gone connection ran is stopped: what serves after an interruption), `refused` (a forced release left a lock whose run is still connected), `stopped_slot` (`<slot> <release>`: the slot a start of the run had filled with a release that never went live, stopped: stopStartedSlot), `previous_back` (previous_back's line once it put back the release that slot held before the start: which, and whether it is warm). */
export const LOCK_KEYS = reportKeys('lock', 'holder', 'holder_pid', 'audit_failed', 'stopped', 'unchecked', 'live_after', 'refused', 'stopped_slot', 'previous_back', 'live_seen', 'premise_changed', 'queued');

/**
 * Seconds stopStartedSlot may take: the slot's programs stopped, the release it held before started again and checked
 * (previousBackSeconds), and a margin.
 */
function startedStopSeconds(env: Target): number {
  return previousBackSeconds(env) + 10;
}

/**
 * Shell (needs $lock, SUPERVISOR_FUNCTIONS, IDENTITY_FUNCTIONS and probeLibrary) run once a gone run's processes are
 * stopped: when that run's start filled a slot (the lock's STARTED_RECORD, written by the start step) with a release
 * that did not go live (`current` names another, and the slot is not the live one), the slot gets back what it held
 * before that start (previous_back, from the start's records in the lock: its programs stopped, the previous
 * release's file back and its programs started again, warm or said not to be), reporting `stopped_slot` and
 * `previous_back`. Without those records (a start of an older version) the slot is stopped the one way (slotDown: its
 * programs, and what they left running outside supervisor, a daemonised program, said in `previous_back`) and its file
 * removed when it names the release started (`stopped_slot`). An interrupted deploy (Ctrl-C, a cancelled
 * workflow, a runner killed: ops lock release) would otherwise leave a release that never went live running on the
 * idle slot, where status calls it the previous one and a rollback would not go to it, or the slot empty, the
 * previous release a rollback would reuse gone. Takes at most startedStopSeconds.
 */
function stopStartedSlot(env: Target): string {
  const L = env.layout;
  const indent = (shell: string) => shell.replace(/\n/g, '\n        ');
  return String.raw`${previousBackFunctions(env)}
started_slot=""; started_release=""
read -r started_slot started_release 2>/dev/null < "$lock/${STARTED_RECORD}" || true
if [ "$started_slot" = blue ] || [ "$started_slot" = green ]; then
  started_live=$(readlink ${quote(L.current)} 2>/dev/null || true); started_live_slot=$(cat ${quote(L.slotFile)} 2>/dev/null || true)
  if [ "${'$'}{started_live##*/}" != "$started_release" ] && [ "$started_live_slot" != "$started_slot" ]; then
    if [ "$started_slot" = blue ]; then started_conf=${quote(L.supervisorConf('blue'))}; else started_conf=${quote(L.supervisorConf('green'))}; fi
    back_rc=0; back=$(previous_back "$started_slot" "$lock") || back_rc=$?
    if [ "$back_rc" = 0 ]; then
      ops_report ${LOCK_KEYS.stopped_slot} "$started_slot $started_release"
      ops_report ${LOCK_KEYS.previous_back} "$back"
    elif [ "$back_rc" = 1 ] && [ -f "$started_conf" ] && grep -qF -- ", release $started_release." "$started_conf"; then
      # The one way a slot that is not live is stopped (slotDown): its programs, and what they left running outside
      # supervisor's process group (a program that daemonised would keep the slot's ports); that line said after.
      if [ "$started_slot" = blue ]; then back=$(${indent(slotDown(env, 'blue'))}
        ); else back=$(${indent(slotDown(env, 'green'))}
        ); fi
      back=${'$'}{back#"slot $started_slot stopped"}; back=${'$'}{back#; }
      ops_report ${LOCK_KEYS.stopped_slot} "$started_slot $started_release"
      [ -z "$back" ] || ops_report ${LOCK_KEYS.previous_back} "$back"
    fi
  fi
fi`;
}

export interface LockRequest {
  operation: string;
  actor: string;
  runUrl: string;
  /** Random id of this run: only the run that took a lock releases it (from any connection). */
  runId: string;
  /** Seconds to wait for a live holder before giving up. */
  wait: number;
  /**
   * Answer at once when a live run holds the lock and `wait` is not 0: the holder reported (its silence too), exit
   * LOCK_QUEUED_EXIT, nothing taken. The runner says whom the run queues behind (and when that holder's lock reads
   * stale should its connection stay silent), then takes the lock again with the wait: a step's output is only read
   * once it ends.
   */
  queued?: boolean;
  /**
   * The operation needs a host provisioned for the environment (deploy, rollback, initdata, certs --renew): on a host
   * without provision's marker the lock step creates nothing (not even the lock's directory) and ends at once with
   * LOCK_UNPROVISIONED_EXIT, reporting PROVISIONED_KEYS `no`.
   */
  provisioned?: boolean;
  /**
   * The operation acts on the release live when it was asked (a rollback: it goes back from that one): a run that
   * waited for the lock (switch.lock_wait) and finds, once it is its, another release live (a run queued ahead of it
   * deployed or rolled back meanwhile) does nothing there and ends with LOCK_PREMISE_EXIT, the lock still its (the
   * runner refuses the run and lets go), reporting `premise_changed`. Each lock step reports `live_seen`.
   * `'report'`: the same looks and `premise_changed`, but the step goes on (its `then` and `finish` run): the runner
   * decides, once it holds every host's lock (a deploy: refused only when the release now live is newer than its
   * target, overtakenError in core/ops/deploy.ts).
   */
  premise?: boolean | 'report';
  /** With `premise`: the release the run saw live on this host at its first look ('' none), from an earlier step. */
  live?: string;
}

/**
 * Seconds a lock's holder connection may send nothing before the lock reads stale (conn_silent, core/steps/sh/
 * connection.sh): the runner's SSH client sends a keepalive every 10 s and gives the connection up after 3 unanswered
 * (core/remote/ssh-login.ts), so by then a live runner has spoken six times, and a runner that lost the host has
 * itself given up. A runner that vanished with its network leaves sshd holding the connection open for hours (TCP
 * keepalive): without this its lock would read held, refused to ops lock release without --force, all that time.
 */
export const HOLDER_SILENT_SECONDS = 60;

/**
 * Shell that sets `lock_state` to free, held or stale for the lock at $lock, and `lock_info` to its details (read once:
 * the pid and start time of one lock, never one lock's pid with the next one's start). A lock appears and goes whole
 * (takeLock, LET_GO): a directory without details was left by an older ops killed between its mkdir and its details
 * (stale: REPORT_HOLDER says its age), or is one such ops still writing them (looked at again twice first); so is
 * anything else there (a file, a link), which no run could take. Held
 * only when the recorded holder process is alive with the recorded start time: a lock without a start time (written
 * for a dead connection by an older ops, whose proc_start then printed nothing) is stale, never held for good; so is
 * one taken in another boot of the host (its holder_boot not the host's boot id: after a reboot the recorded pid and
 * start time, clock ticks since boot, may be an unrelated process's; `lock_rebooted`, said by REPORT_HOLDER as
 * `rebooted=yes`; a lock of an older ops, without holder_boot, is read by its pid and start time alone), and one whose
 * holder's connection has been silent HOLDER_SILENT_SECONDS (said by REPORT_HOLDER as `silent`). A held lock's
 * silence so far is `lock_silent` too (REPORT_HOLDER's `silent`: how long until it reads stale, staleInSeconds).
 * `unknown` when the holder process cannot be seen by this user (a login's lock status on a host whose /proc hides
 * other users' processes, hidepid, and sudo -n refused: proc_seen_start), `lock_unseen` saying why (REPORT_HOLDER's
 * `unseen`): a live run's lock is never called stale for what cannot be seen.
 */
const LOCK_STATE = String.raw`for _ in 1 2 3; do
lock_state=free; lock_info=
for lock_try in 1 2 3; do
  if { exec {lock_fd}< "$lock/info"; } 2>/dev/null; then IFS= read -r -d '' lock_info <&"$lock_fd" || true; exec {lock_fd}<&-; lock_info=${'$'}{lock_info%$'\n'}; lock_state=stale; break; fi
  # Something else at the lock's path (a file, a link: left by hand, another tool or version) is no free lock either:
  # it cannot be taken (the rename onto it fails), so it reads stale, for ops lock release to remove.
  [ -e "$lock" ] || [ -L "$lock" ] || break
  if [ "$lock_try" = 3 ]; then lock_state=stale; else sleep 0.2; fi
done
lock_rebooted=; lock_silent=; lock_unseen=
if [ "$lock_state" = stale ]; then
  pid=; start=; boot=
  while IFS= read -r line; do case $line in holder_pid=*) pid=${'$'}{line#holder_pid=} ;; holder_start=*) start=${'$'}{line#holder_start=} ;; holder_boot=*) boot=${'$'}{line#holder_boot=} ;; esac; done <<< "$lock_info"
  lock_boot=; boot_id lock_boot
  if [ -n "$boot" ] && [ -n "$lock_boot" ] && [ "$boot" != "$lock_boot" ]; then lock_rebooted=yes
  elif [ -n "$pid" ] && [ -n "$start" ]; then
    lock_seen=0; lock_start=$(proc_seen_start "$pid") || lock_seen=$?
    if [ "$lock_start" = "$start" ]; then lock_state=held
    # Hidden from this login (hidepid), sudo -n refused: never called stale on what it cannot see.
    elif [ "$lock_seen" = 2 ]; then lock_state=unknown; lock_unseen="/proc hides other users' processes from $(id -un) (mounted hidepid) and sudo -n asks for a password"; fi
  fi
fi
# A holder gone between reading the details and looking at its process may have let go of the lock meanwhile (a run
# releases, then its connection ends): stale only if the same details are still there, else looked at afresh.
if [ "$lock_state" != stale ] || [ -z "$lock_info" ]; then break; fi
lock_again=; if { exec {lock_fd}< "$lock/info"; } 2>/dev/null; then IFS= read -r -d '' lock_again <&"$lock_fd" || true; exec {lock_fd}<&-; lock_again=${'$'}{lock_again%$'\n'}; fi
if [ "$lock_again" = "$lock_info" ]; then break; fi
done
# A holder whose connection is silent past HOLDER_SILENT_SECONDS lost its runner with its network: sshd keeps it open.
if [ "$lock_state" = held ] && lock_silent=$(conn_silent "$pid"); then [ "$lock_silent" -lt ${HOLDER_SILENT_SECONDS} ] || lock_state=stale; else lock_silent=; fi`;

/** Shell (after LOCK_STATE) that reports the lock's state and its details; how long ago it was taken (`age`, seconds by the host's clock); a lock without details: its directory's age (`since`); a lock of another boot: `rebooted=yes`; the holder connection's silence: for how long (`silent`, seconds); a holder this user cannot see: why (`unseen`). */
const REPORT_HOLDER = String.raw`ops_report ${LOCK_KEYS.lock} "$lock_state"
if [ -n "$lock_info" ]; then while IFS= read -r line; do ops_report ${LOCK_KEYS.holder} "$line"; done <<< "$lock_info"
elif [ "$lock_state" != free ] && lock_mtime=$(stat -c %Y "$lock" 2>/dev/null); then TZ=UTC0 printf -v lock_mtime '%(%Y-%m-%dT%H:%M:%SZ)T' "$lock_mtime"; ops_report ${LOCK_KEYS.holder} "since=$lock_mtime"; fi
# Its age by the host's clock (its details written when it was taken; else its directory's): whatever the runner's.
if [ "$lock_state" != free ] && lock_taken=$(stat -c %Y "$lock/info" 2>/dev/null || stat -c %Y "$lock" 2>/dev/null); then printf -v lock_now '%(%s)T' -1; ops_report ${LOCK_KEYS.holder} "age=$(( lock_now - lock_taken ))"; fi
[ -z "$lock_rebooted" ] || ops_report ${LOCK_KEYS.holder} "rebooted=$lock_rebooted"
[ -z "$lock_silent" ] || ops_report ${LOCK_KEYS.holder} "silent=$lock_silent"
[ -z "$lock_unseen" ] || ops_report ${LOCK_KEYS.holder} "unseen=$lock_unseen"`;

/**
 * Shell that lets go of the lock at $lock at once for every observer: renamed away (rename(2)), then deleted. Deleted in
 * place, its details would go before its directory, and a run looking meanwhile would read a lock without details: a
 * stale one, refused at once whatever its switch.lock_wait. A lock that cannot be renamed away (its directory read-only:
 * a file system remounted so after an I/O error, chattr +i) is left whole, never said let go: `lock_kept` says why
 * (else empty), on stderr too.
 */
const LET_GO = String.raw`lock_gone="$lock.gone.$$"; rm -rf "$lock_gone" 2>/dev/null; lock_kept=
if lock_err=$(mv -T "$lock" "$lock_gone" 2>&1); then rm -rf "$lock_gone"
elif [ -e "$lock" ]; then lock_kept="cannot remove the lock $lock: ${'$'}{lock_err#mv: }"; echo "$lock_kept" >&2; fi`;

/**
 * Shell that sets `holder_run` to the run id the lock at $lock records, empty when none or once released by force (a
 * `broken_run_id=` line: the run's id renamed so, or, where that rewrite found no space, the line appended,
 * MARK_BROKEN): a run's own unlock and settling then touch nothing of it.
 */
const HOLDER_RUN = String.raw`holder_run=; while IFS= read -r l; do case $l in run_id=*) holder_run=${'$'}{l#run_id=} ;; broken_run_id=*) holder_run=; break ;; esac; done 2>/dev/null < "$lock/info" || true`;

/**
 * Shell that marks the lock at $lock as released by force before anything of its run is stopped: its run id renamed
 * `broken_run_id=` (run_lock_guard, HOLDER_RUN). sed -i writes a whole copy, which a full disk refuses; then the line
 * is appended (a few bytes, in the file's last block); if even that fails, nothing is stopped or removed, saying why.
 */
const MARK_BROKEN = String.raw`if [ -f "$lock/info" ] && ! sed -i 's/^run_id=/broken_run_id=/' "$lock/info" 2>/dev/null; then
  mark_err=$({ printf 'broken_run_id=\n' >> "$lock/info"; } 2>&1) || { echo "cannot mark the lock in $lock/info as released by force: ${'$'}{mark_err##*: } (a full disk? free some space there); nothing was stopped or removed" >&2; exit 1; }
fi`;

export const LOCK_BUSY_EXIT = 3;
/** The lock step's exit when it found a live holder and was asked to say so before waiting (LockRequest.queued). */
export const LOCK_QUEUED_EXIT = 5;
/**
 * The lock step's exit when the lock is already this run's (its run id): the host is a machine the run locked through
 * another of the environment's hosts (one machine under two addresses), which it would otherwise wait for as for
 * another run, and be refused by itself.
 */
export const LOCK_OWN_EXIT = 6;
/** The lock step's exit on a host never provisioned for the environment, when the operation needs it (LockRequest.provisioned): nothing was created there. */
export const LOCK_UNPROVISIONED_EXIT = 4;
/** The lock step's exit when the release live changed while the run waited for the lock (LockRequest.premise): the lock taken, nothing else done. */
export const LOCK_PREMISE_EXIT = 7;

/** The shell that sets the run's lock for run_lock_guard (OPS_RUN_LOCK, OPS_RUN_CURRENT): needs HOST_LOCK_FUNCTIONS to run it. */
function runLockVars(env: Target): string {
  return `# shellcheck disable=SC2034 # read by run_lock_guard (host-lock.sh)\nOPS_RUN_LOCK=${quote(env.layout.lock)} OPS_RUN_CURRENT=${quote(env.layout.current)}`;
}

/**
 * `step` fenced by the run's lock: it begins with run_lock_guard (core/steps/sh/host-lock.sh), which exits
 * LOCK_LOST_EXIT, changing nothing, unless the lock on the host still records the step's connection (OPS_CONNECTION)
 * and no forced release; its critical section (a switch) looks again right before flipping nginx and `current`
 * (critical_begin). What core/ops/locked.ts runs every step of a run through while the run holds the lock there.
 */
export function fenceStep(env: Target, step: Step): Step {
  return { ...step, script: `${lockGuard(env)}\n${step.script}` };
}

/**
 * The shell of the run's lock guard (run_lock_guard, with what it needs): exits LOCK_LOST_EXIT, saying why on stderr,
 * unless the lock still records the connection it runs on and no forced release. What fenceStep puts first in a step,
 * and a fenced upload first in its own script (UploadOptions.guard): the same round trip, before a byte is written.
 */
export function lockGuard(env: Target): string {
  return `${HOST_LOCK_FUNCTIONS}\n${runLockVars(env)}\nrun_lock_guard`;
}

/**
 * run_lock_guard's line (without LOCK_LOST_MARK) when a step ended with its exit code and said it (`stderr`: the step's,
 * or a StepError's tail), else undefined: a step's own command that happens to exit LOCK_LOST_EXIT is not one.
 */
export function lockLostLine(code: number | null, stderr: string): string | undefined {
  if (code !== LOCK_LOST_EXIT) return undefined;
  const line = stderr.split('\n').map((l) => l.trim()).find((l) => l.startsWith(LOCK_LOST_MARK));
  return line?.slice(LOCK_LOST_MARK.length);
}

/**
 * Shell (needs $lock, $holder, $holder_start, $holder_boot, CONNECTION_FUNCTIONS) of the lock's queue: runs waiting
 * for the lock (switch.lock_wait) take it first come, first served, never whichever looks first once it is free (a run
 * queued later, with a newer ref, would deploy before one queued earlier, which then put its older ref live over it).
 * Each waiting run holds a ticket in $lock.queue, named by a counter taken under flock (so the names sort in the order
 * of arrival and are never reused), written whole (rename(2)) with the lines given to `queue_join` (the run's, as its
 * lock would hold them) and its connection's SSH server process (pid, start time, boot: the holder details of
 * LOCK_STATE). `queue_join` takes this step's ticket (once),
 * `queue_leave` removes it (taken the lock, or given up: also on the step's exit), `queue_ahead` succeeds, `ahead_info`
 * set to its details, when a live waiter's ticket comes before this step's (before any, without one). A ticket is
 * live by the test a holder's lock is (LOCK_STATE): its process alive with its start time in this boot (not seen, a
 * hidepid /proc: live), its connection not silent HOLDER_SILENT_SECONDS; a dead waiter's ticket is removed by whoever
 * finds it so (not by a look, queue_ahead's `look`: ops lock status changes nothing). `queue_first` is the one rule of a
 * free lock with a live waiter ahead: held by that waiter, for a run taking the lock and for ops lock status alike.
 * Without a queue (nothing waits) it costs one glob.
 */
const QUEUE_LOOK = String.raw`lock_queue="$lock.queue"; lock_ticket=; ahead_info=; ahead_ticket=
# ticket_live TICKET: 0, ahead_info set to its lines, when the waiter holding it is live (LOCK_STATE's test); 1 when
# it is dead; 2 when it cannot be read (let go of meanwhile).
ticket_live() {
  local line pid='' start='' boot='' now_boot='' seen=0 got silent
  ahead_info=$(cat "$1" 2>/dev/null) || return 2
  while IFS= read -r line; do case $line in holder_pid=*) pid=${'$'}{line#holder_pid=} ;; holder_start=*) start=${'$'}{line#holder_start=} ;; holder_boot=*) boot=${'$'}{line#holder_boot=} ;; esac; done <<< "$ahead_info"
  boot_id now_boot
  # Dead: of another boot, its process gone (or another with its pid), its connection silent (LOCK_STATE's test).
  if { [ -z "$boot" ] || [ -z "$now_boot" ] || [ "$boot" = "$now_boot" ]; } && [ -n "$pid" ] && [ -n "$start" ]; then
    got=$(proc_seen_start "$pid") || seen=$?
    if [ "$got" = "$start" ] || [ "$seen" = 2 ]; then
      if ! silent=$(conn_silent "$pid") || [ "$silent" -lt ${HOLDER_SILENT_SECONDS} ]; then return 0; fi
    fi
  fi
  return 1
}
# queue_ahead sweep|look: the first live ticket before this step's, ahead_ticket its path; a dead one before it is
# removed on the way (sweep: a run taking the lock; not by a look, ops lock status, which changes nothing).
queue_ahead() {
  local t live
  for t in "$lock_queue"/*; do
    [ "$t" != "$lock_ticket" ] || return 1
    [ -f "$t" ] || continue
    live=0; ticket_live "$t" || live=$?
    # shellcheck disable=SC2034 # ahead_ticket: read by REPORT_QUEUE
    if [ "$live" = 0 ]; then ahead_ticket=$t; return 0; fi
    [ "$live" = 2 ] || [ "$1" = look ] || rm -f "$t"
  done
  return 1
}
# queue_first sweep|look: the lock free (lock_state free), a live waiter queued before this step takes it first: the lock
# reads held by that waiter (its details, queued=first). The one rule for a run taking the lock and for a look at it.
queue_first() {
  queue_ahead "$1" || return 1
  lock_state=held; lock_info="$ahead_info"$'\n'queued=first; lock_rebooted=; lock_silent=; lock_unseen=
}`;

/** QUEUE_LOOK with what a run taking the lock does to the queue (queue_join, queue_leave); a look at it (lockStatus) needs QUEUE_LOOK alone. */
const LOCK_QUEUE = String.raw`${QUEUE_LOOK}
queue_join() {
  [ -z "$lock_ticket" ] || return 0
  local qfd seq=0 err queued_at
  TZ=UTC0 printf -v queued_at '%(%Y-%m-%dT%H:%M:%SZ)T' -1
  if ! err=$({ mkdir -p "$lock_queue" && exec {qfd}>> "$lock_queue/.lock" && /usr/bin/flock -w 10 "$qfd" && { read -r seq < "$lock_queue/.seq" || true; } && seq=$(( 10#${'$'}{seq:-0} + 1 )) && printf '%s\n' "$seq" > "$lock_queue/.seq" && printf '%s\n' "$@" "since=$queued_at" "holder_pid=$holder" "holder_start=$holder_start" "holder_boot=$holder_boot" > "$lock_queue/.new.$$" && printf -v seq '%016d' "$seq" && mv -T "$lock_queue/.new.$$" "$lock_queue/$seq" && echo "$seq"; } 2>&1); then
    rm -f "$lock_queue/.new.$$"; echo "cannot queue for the lock in $lock_queue: ${'$'}{err:-no space left?}" >&2; exit 1
  fi
  lock_ticket="$lock_queue/${'$'}{err##*$'\n'}"; trap queue_leave EXIT
}
queue_leave() { [ -z "$lock_ticket" ] || rm -f "$lock_ticket"; lock_ticket=; trap - EXIT; }`;

/**
 * `then`: a script run as soon as the lock is ours, in the same step (saves a round trip: the host's state).
 * `finish`: a script run after it that may end the run on this host in the same round trip too (a no-op
 * deploy: `unlockScript` with its audit line, reporting `lock released`; a one-host rollback's whole work), given
 * `finishSeconds` more before the step times out.
 */
export function acquireLock(env: Target, req: LockRequest, then = '', finish = '', finishSeconds = 0): Step {
  const L = env.layout;
  return {
    name: 'lock',
    as: 'root',
    timeout: req.wait + 30 + finishSeconds,
    quiet: true,
    script: String.raw`${CONNECTION_FUNCTIONS}
${req.provisioned ? `# Never provisioned: refused before anything is made here (the lock's directory is provision's to make).\nif [ ! -f ${quote(provisionedMarker(env))} ]; then ops_report ${PROVISIONED_KEYS.provisioned} no; exit ${LOCK_UNPROVISIONED_EXIT}; fi\n` : ''}lock=${quote(L.lock)}
holder=$(conn_pid) || { echo "cannot find the SSH server process of this connection (no sshd ancestor of process $$): the lock needs OpenSSH or dropbear" >&2; exit 1; }
# The connection's own start time: a lock is never written without it (a lock whose holder cannot be checked reads stale).
holder_start=$(proc_start "$holder" || true)
[ -n "$holder_start" ] || { echo "cannot read the start time of this connection's SSH server process (/proc/$holder/stat)" >&2; exit 1; }
# The boot it belongs to: after a reboot the same pid and start time may be another process's (LOCK_STATE).
holder_boot=; boot_id holder_boot
[ -d ${quote(L.state)} ] || install -d -m 0755 -o root -g root ${quote(L.base)} ${quote(L.state)}
# What a run killed between the two steps of a taking or a letting go left beside the lock (see below), or while
# it wrote its queue ticket (LOCK_QUEUE's .new.<pid>), once old (looked for by bash first: usually there is none).
for f in "$lock".taking.* "$lock".gone.* "$lock".queue/.new.*; do
  if [ -e "$f" ]; then
    find ${quote(L.state)} -maxdepth 1 \( -name ${quote(`${L.lock.split('/').pop()}.taking.*`)} -o -name ${quote(`${L.lock.split('/').pop()}.gone.*`)} \) -mmin +10 -exec rm -rf {} + 2>/dev/null || true
    find "$lock.queue" -maxdepth 1 -name '.new.*' -mmin +10 -exec rm -f {} + 2>/dev/null || true
    break
  fi
done
# The wait is counted in seconds since boot (/proc/uptime), not by the wall clock: a clock stepped meanwhile (NTP
# setting a skewed clock right, by hand) would end it early, or stretch it past the step's timeout, as an unclear one.
read -r now _ < /proc/uptime; now=${'$'}{now%.*}; deadline=$(( now + ${req.wait} ))
taking="$lock.taking.$$"; lock_waited=
${req.premise ? `# What the run acts on: the release live when it was asked (LockRequest.premise).
premise_seen=$(readlink ${quote(L.current)} || true); premise_seen=${'$'}{premise_seen##*/}; ops_report ${LOCK_KEYS.live_seen} "$premise_seen"
${req.live !== undefined ? `premise_live=${quote(req.live)}` : 'premise_live=$premise_seen'}
` : ''}${LOCK_QUEUE}
while :; do
  # This run's connection gone (ops killed) while it waits: sshd does not stop this script (no terminal, nothing
  # written), and what it took when the holder ends would be held in a dead connection's name.
  if [ "$(proc_start "$holder" || true)" != "$holder_start" ]; then echo "this run's connection is gone (its SSH server process $holder ended): the lock is not taken for it" >&2; exit 1; fi
  # Its runner gone with its network (no FIN: sshd keeps the connection open for hours) is the same: silent as long
  # as a holder's that reads stale (LOCK_STATE), it would take the lock only to leave it stale, and run what follows
  # in this step (a one-host rollback's switch) with nobody to hear of it. Looked at once it has waited: a run nobody
  # holds up spends no ss on it.
  if [ -n "$lock_waited" ] && own_silent=$(conn_silent "$holder") && [ "$own_silent" -ge ${HOLDER_SILENT_SECONDS} ]; then echo "this run's connection has sent nothing for ${'$'}{own_silent}s (its runner gone with its network; sshd keeps such a connection open): the lock is not taken for it" >&2; exit 1; fi
  lock_ahead=
  # Free, but a run that queued first (a live waiter's ticket before this run's): that run takes it first (LOCK_QUEUE).
  if [ ! -e "$lock" ] && [ ! -L "$lock" ] && queue_first sweep; then lock_ahead=1
  elif [ ! -e "$lock" ] && [ ! -L "$lock" ]; then
    # The lock appears whole (rename(2) of a directory holding its details): never seen without its details, which a
    # run looking meanwhile would read as a stale lock and refuse at once. The details are the lock's meaning: not
    # written (disk full), the lock is not taken.
    # The time by printf's %(...)T with TZ for this builtin only (bash(1), PARAMETERS: no date process).
    TZ=UTC0 printf -v since '%(%Y-%m-%dT%H:%M:%SZ)T' -1
    rm -rf "$taking"
    if ! made=$({ mkdir "$taking" && printf '%s\n' ${quote(`operation=${req.operation}`)} ${quote(`actor=${req.actor}`)} ${quote(`run=${req.runUrl}`)} ${quote(`run_id=${req.runId}`)} "connection=${'$'}{OPS_CONNECTION:-}" "since=$since" "holder_pid=$holder" "holder_start=$holder_start" "holder_boot=$holder_boot" > "$taking/info"; } 2>&1); then
      rm -rf "$taking"
      echo "cannot write the lock's details in $taking: ${'$'}{made:-no space left under ${L.base}?}" >&2
      exit 1
    fi
    if made=$(mv -T "$taking" "$lock" 2>&1); then
      ops_report ${LOCK_KEYS.lock} acquired
      ops_report ${LOCK_KEYS.holder_pid} "$holder"
      # When it was taken (the host's clock): how a forced release's audit line names this lock.
      ops_report ${LOCK_KEYS.holder} "since=$since"
      # Uploads left by an interrupted run (.env, initdata, half-written ones) are ours to remove now (looked for by
      # bash first: usually there are none).
      left=(${quote(L.uploads)}/* ${quote(L.uploads)}/.[!.]*)
      for f in "${'$'}{left[@]}"; do if [ -e "$f" ]; then find ${quote(L.uploads)} -mindepth 1 -delete 2>/dev/null || true; break; fi; done
      # What follows in this step (a one-host rollback's switch) is fenced by the lock as the run's later steps are.
      ${runLockVars(env).replace(/\n/g, '\n      ')}
      queue_leave
      break
    fi
    rm -rf "$taking"
    # Another run's lock came first (the rename finds it there, ENOTEMPTY): looked at below, or taken at the next
    # turn when let go of meanwhile; else the rename itself failed.
    case $made in *"Directory not empty"* | *"File exists"*) [ -e "$lock" ] || continue ;; *) echo "cannot take the lock: $made" >&2; exit 1 ;; esac
  fi
  if [ -z "$lock_ahead" ]; then
  ${LOCK_STATE.replace(/\n/g, '\n  ')}
  # Let go of between the two looks: taken at the next turn.
  [ "$lock_state" != free ] || continue
  # This run's own lock, taken through another host of the environment: the same machine (LOCK_OWN_EXIT).
  case $'\n'"$lock_info"$'\n' in *$'\n'${quote(`run_id=${req.runId}`)}$'\n'*)
    ${REPORT_HOLDER.replace(/\n/g, '\n    ')}
    exit ${LOCK_OWN_EXIT} ;;
  esac
  fi
  read -r now _ < /proc/uptime; now=${'$'}{now%.*}
  if [ "$lock_state" = stale ] || [ "$now" -ge "$deadline" ]; then
    ${REPORT_HOLDER.replace(/\n/g, '\n    ')}
    exit ${LOCK_BUSY_EXIT}
  fi
${req.queued ? `  # Queued behind a live run: said by the runner before it waits (LockRequest.queued).\n  ${REPORT_HOLDER.replace(/\n/g, '\n  ')}\n  exit ${LOCK_QUEUED_EXIT}\n` : ''}  # In the queue from its first wait on: served in its turn (LOCK_QUEUE).
  queue_join ${[`operation=${req.operation}`, `actor=${req.actor}`, `run=${req.runUrl}`, `run_id=${req.runId}`].map(quote).join(' ')}
  sleep 1; lock_waited=1
done
${req.premise ? `# Another release live than when the run was asked (a run queued ahead of it went first): refused, nothing done.
premise_now=$(readlink ${quote(L.current)} || true); premise_now=${'$'}{premise_now##*/}
if [ "$premise_now" != "$premise_live" ]; then ops_report ${LOCK_KEYS.premise_changed} "${'$'}{premise_live:--} ${'$'}{premise_now:--}";${req.premise === 'report' ? '' : ` exit ${LOCK_PREMISE_EXIT};`} fi
` : ''}${then}${finish ? `\n${finish}` : ''}`,
  };
}

/** How long the forced stop of a gone connection's processes waits after their SIGTERM before SIGKILL, in seconds. */
const FORCED_STOP_SECONDS = 10;

/**
 * Shell that stops what connections that are gone left running on the host, reporting their pids (`stopped`):
 * the processes whose environment holds OPS_CONNECTION=<id> for one of `ids` (shell words, each one id; none
 * found: nothing done). A switch under way ends first (critical_wait, core/steps/sh/critical.sh: stopped between
 * two sections, never inside one); then TERM, and KILL to what is left after FORCED_STOP_SECONDS. Needs
 * CONNECTION_FUNCTIONS and CRITICAL_FUNCTIONS; takes at most CRITICAL_WAIT_SECONDS + FORCED_STOP_SECONDS.
 */
/**
 * Shell that lets a release end on the host when the runner dies while it runs: a cancelled GitHub workflow sends
 * SIGINT, then SIGTERM 7.5 s later, then kills the runner 2.5 s after that (docs.github.com, "Workflow cancellation
 * reference"), while the release may wait out a switch and give a stubborn process its 10 s. sshd then closes the
 * script's pipes: its next report would die of SIGPIPE (or fail, under errexit) before the lock is removed. So SIGHUP
 * and SIGPIPE are ignored and a report that cannot be written is dropped (the prelude's ops_report, core/remote/wrap.ts,
 * made quiet): the processes are stopped, the audit lines appended and the lock removed all the same.
 */
const OUTLIVE_RUNNER = String.raw`trap '' HUP PIPE
ops_report() { printf '${REPORT_PREFIX}%s %s\n' "$1" "${'$'}{2:-}" 2>/dev/null || true; }`;

function stopConnections(ids: string): string {
  return String.raw`ended=(${ids})
critical_wait
read -r -a pids <<< "$(connection_pids "${'$'}{ended[@]}")"
if [ ${'$'}{#pids[@]} -gt 0 ]; then
  ops_report ${LOCK_KEYS.stopped} "${'$'}{pids[*]}"
  kill -TERM "${'$'}{pids[@]}" 2>/dev/null || true
  for _ in {1..${FORCED_STOP_SECONDS * 5}}; do read -r -a pids <<< "$(connection_pids "${'$'}{ended[@]}")"; [ ${'$'}{#pids[@]} -gt 0 ] || break; sleep 0.2; done
  if [ ${'$'}{#pids[@]} -gt 0 ]; then kill -KILL "${'$'}{pids[@]}" 2>/dev/null || true; fi
fi
critical_done`;
}

/**
 * Shell that stops what this run's `ended` connections still run on the host (a switch under way ends first), puts
 * back the slot its start filled with a release that did not go live (stopStartedSlot), and reports the release
 * `current` names then (`live_after`): releaseLock's first part, and settleLostRun's whole.
 */
function stopGoneRun(env: Target, runId: string, ended: string[]): string {
  return `${OUTLIVE_RUNNER}
${CONNECTION_FUNCTIONS}
${CRITICAL_FUNCTIONS}
${SUPERVISOR_FUNCTIONS}
${IDENTITY_FUNCTIONS}
${probeLibrary(env)}
${oneRelease(env)}
${stopConnections(ended.map(quote).join(' '))}
lock=${quote(env.layout.lock)}
# Only this run's lock: a run that never held it (Ctrl-C while queued) stops nothing of the holder's start.
${HOLDER_RUN}
if [ "$holder_run" = ${quote(runId)} ]; then
${stopStartedSlot(env)}
fi
live_after=$(readlink ${quote(env.layout.current)} 2>/dev/null || true)
ops_report ${LOCK_KEYS.live_after} "${'$'}{live_after##*/}"
`;
}

/**
 * The host's word on a run whose connection was lost during a step only the host saw end (a switch goes on without
 * its runner): over a new connection, what the lost one still runs is stopped, a switch under way let end, a slot
 * its start filled put back as the lock's release does (stopGoneRun), and the release `current` names then reported
 * (`live_after`), the lock kept: the run says what serves from that, not from what it expected. Changes nothing else.
 */
export function settleLostRun(env: Target, runId: string, ended: string[]): Step {
  return {
    name: 'settle',
    as: 'root',
    timeout: 30 + 2 * stopGoneRunSeconds(env),
    quiet: true,
    script: stopGoneRun(env, runId, ended),
  };
}

/**
 * Release our own lock only (the run id matches: a lock taken over by someone else after a forced release is
 * left alone), from this connection or a new one, appending the run's audit lines first. A failed append (a
 * full disk) is reported (`audit_failed`) and never keeps the lock. `ended`: ids of this run's connections
 * that are gone (lost, or left on a signal): whatever they still run on the host (their steps' processes
 * carry OPS_CONNECTION) is stopped first (TERM, then KILL after 10 s), so the lock never frees a host where
 * the run is still at work; then it reports the release `current` names (`live_after`). Such a release ends on
 * the host even when the runner is killed meanwhile (OUTLIVE_RUNNER: a cancelled workflow's SIGKILL). A slot the
 * run's start filled with a release that did not go live is stopped too, and the release it held before that start
 * put back there (stopStartedSlot: `stopped_slot`, `previous_back`); the step's timeout allows for its wait.
 */
export function releaseLock(env: Target, runId: string, auditLines: string[] = [], ended: string[] = []): Step {
  const stop = ended.length ? stopGoneRun(env, runId, ended) : '';
  return {
    name: 'unlock',
    as: 'root',
    // Beyond its own 30 s, a forced stop has the time to wait out another release (oneRelease), then a switch (critical_wait), its TERM-then-KILL 10 s and a slot put back.
    timeout: 30 + (ended.length ? 2 * stopGoneRunSeconds(env) : 0),
    quiet: true,
    // A lock it could not remove (lock_kept): the step fails, saying why (the run then names the host and ops lock release).
    script: `${stop}${unlockScript(env, runId, auditLines.map(quote))}\n[ -z "\${lock_kept:-}" ] || exit 1`,
  };
}

/**
 * Shell that, when the lock is ours (the run id matches), appends audit lines, bounds the audit log (rotateAudit) and releases it, reporting `lock released` (else `lock not_held`):
 * the end of `releaseLock`, and what a run's last step on a host appends to end the run there in the same
 * round trip. `auditWords` are shell words, each expanding to one line (`quote(line)`, or a quoted template
 * with a variable spliced in: `auditTemplate`). A failed append (a full disk) is reported (`audit_failed`)
 * and never keeps the lock.
 */
export function unlockScript(env: Target, runId: string, auditWords: string[]): string {
  const L = env.layout;
  const audit = auditWords.length
    ? `# A new audit log is made readable by all (0644 whatever the umask); one there already keeps its mode.
audit_new=; [ -e ${quote(L.audit)} ] || audit_new=1
if ! audit_err=$({ ${endTornLine(L.audit)}; printf '%s\\n' ${auditWords.join(' ')} >> ${quote(L.audit)} && { [ -z "$audit_new" ] || chmod 0644 ${quote(L.audit)}; }; } 2>&1); then
  ops_report ${LOCK_KEYS.audit_failed} "$(printf '%s' "$audit_err" | tr '\\n' ' ')"
fi
`
    : '';
  // The lines only with the lock: a run that never held it (stopped while queued) or lost it (released by force;
  // the run then says so itself, core/ops/locked.ts) writes none here, nor twice after its last step let go.
  // Then the log bounded (rotateAudit), here where every run ends, a no-op or a failure too, in the same round trip;
  // both holding the log's own lock (withAuditLock), which `ops lock release`'s append takes too.
  return String.raw`lock=${quote(L.lock)}
${HOLDER_RUN}
if [ "$holder_run" = ${quote(runId)} ]; then
${STAMPED_FUNCTIONS}
${withAuditLock(env, `${audit}${rotateAudit(env)}`)}
${LET_GO}
[ -n "$lock_kept" ] || ops_report ${LOCK_KEYS.lock} released
else ops_report ${LOCK_KEYS.lock} not_held; fi`;
}

/**
 * Shell (after LOCK_STATE and QUEUE_LOOK, as the login: changes nothing) that reads the lock's queue as a run taking the
 * lock would (queue_first, ticket_live): a free lock with a live waiter reads held by that waiter (queued=first, it
 * takes it next), and each other live waiter, in the order they take the lock, is reported as `queued` lines
 * `<n> <key>=<value>` (n from 1, the next; its run's details and `since`, when it queued; not its connection's). A
 * dead waiter's ticket is not listed: it loses its turn.
 */
const REPORT_QUEUE = String.raw`[ "$lock_state" != free ] || queue_first look || true
queue_n=0
for t in "$lock_queue"/*; do
  if [ ! -f "$t" ] || [ "$t" = "$ahead_ticket" ] || [ "$lock_state" = free ] || ! ticket_live "$t"; then continue; fi
  queue_n=$(( queue_n + 1 ))
  while IFS= read -r line; do case $line in holder_*) ;; *) ops_report ${LOCK_KEYS.queued} "$queue_n $line" ;; esac; done <<< "$ahead_info"
done`;

/** Report the environment's lock (free, held or stale) and its holder's details, the runs queued for it (REPORT_QUEUE: `queued`), and PROVISIONED_KEYS (as the login: reportProvisioned), read only. */
export function lockStatus(env: Target): Step {
  return {
    name: 'lock status',
    as: 'login',
    timeout: 30,
    quiet: true,
    script: `${CONNECTION_FUNCTIONS}\n${reportProvisioned(env, 'login')}\nlock=${quote(env.layout.lock)}\n${LOCK_STATE}\n${QUEUE_LOOK}\n${REPORT_QUEUE}\n${REPORT_HOLDER}`,
  };
}

/**
 * Shell that waits (at most stopGoneRunSeconds) until no other release of the app's lock that stops a gone run's work
 * runs on the host (a flock on its state directory, held until the script ends): a forced release (forceReleaseLock)
 * and an interrupted run's own (stopGoneRun) one at a time. Two at once would both read the lock before either removed
 * it, both stop the slot its run had started and put its previous release back, and the later one remove a lock taken
 * meanwhile; the second reads the lock once the first is done.
 */
function oneRelease(env: Target): string {
  const wait = stopGoneRunSeconds(env);
  return String.raw`if [ -d ${quote(env.layout.state)} ]; then
  exec {release_fd}< ${quote(env.layout.state)}
  /usr/bin/flock -w ${wait} "$release_fd" || { echo "another release of this app's lock (ops lock release, or an interrupted run's own) is still under way on this host (waited ${wait}s); try again when it is done" >&2; exit 1; }
fi`;
}

/** Seconds stopping a gone run takes at most (stopGoneRun, and a forced release once it read the lock): a switch waited out, its processes stopped, a slot put back. */
function stopGoneRunSeconds(env: Target): number {
  return CRITICAL_WAIT_SECONDS + FORCED_STOP_SECONDS + startedStopSeconds(env);
}

/**
 * Break a lock on purpose (ops lock release): reports the lock as it was (LOCK_KEYS lock, holder), stops what its run
 * left running on the host (`stopped`: the processes carrying a connection id the lock recorded; a switch under way
 * ends first, stopConnections) and a slot its start filled with a release that did not go live, putting back the release
 * that slot held before (stopStartedSlot: `stopped_slot`, `previous_back`), reports the release `current` names (`live_after`: what serves, which a run killed
 * outright never wrote in the audit log), and removes the lock: a migration or build of a SIGKILLed runner must not
 * go on beside the next run. A lock still held (its run's connection alive) is left as it is (`refused`) unless
 * `force` (its run is stuck): removing it alone would let a second run start beside that one. A lock that records no
 * usable connection id (taken by an older version, edited by hand) is removed with `unchecked` saying its run's
 * processes were not looked for. One such release at a time (oneRelease): two terminals, a retried job, or an
 * interrupted run's own release under way, would otherwise both stop and both audit the removal.
 */
export function forceReleaseLock(env: Target, force = false): Step {
  const L = env.layout;
  return {
    name: 'release lock',
    as: 'root',
    timeout: 30 + 2 * stopGoneRunSeconds(env),
    quiet: true,
    script: String.raw`${OUTLIVE_RUNNER}
${CONNECTION_FUNCTIONS}
${CRITICAL_FUNCTIONS}
${SUPERVISOR_FUNCTIONS}
${IDENTITY_FUNCTIONS}
${probeLibrary(env)}
lock=${quote(L.lock)}
${oneRelease(env)}
${LOCK_STATE}
${REPORT_HOLDER}
[ "$lock_state" != free ] || exit 0
${force ? '' : `if [ "$lock_state" = held ]; then ops_report ${LOCK_KEYS.refused} 1; exit 0; fi\n`}# From here the lock is no longer its run's: that run, its step stopped below, must not take it for its own in its
# unlock (or put its slot back: putPreviousBack) before this removes it, nor remove it unnoticed (core/ops/locked.ts
# says the lock was released by force only when its unlock finds it not its own).
${MARK_BROKEN}
gone=()
while IFS= read -r id; do
  id=${'$'}{id#connection=}; id=${'$'}{id//[[:space:]]/}
  # An id is one word of ours (core/remote/ssh.ts: hex); anything else in the file is not looked for.
  if [[ $id =~ ^[A-Za-z0-9_-]+$ ]]; then gone+=("$id"); fi
done < <(grep '^connection=' "$lock/info" 2>/dev/null || true)
if [ ${'$'}{#gone[@]} -gt 0 ]; then
  ${stopConnections('"${gone[@]}"').replace(/\n/g, '\n  ')}
else
  ops_report ${LOCK_KEYS.unchecked} "the lock records no connection id of its run (taken by an older ops, or edited): its processes were not looked for"
fi
${stopStartedSlot(env)}
live_after=$(readlink ${quote(env.layout.current)} 2>/dev/null || true)
ops_report ${LOCK_KEYS.live_after} "${'$'}{live_after##*/}"
${LET_GO}
[ -z "$lock_kept" ] || exit 1`,
  };
}

/**
 * A `stopped_slot` report (`<slot> <release>`) in words, for the run's log and ops lock release; with `previous`
 * (the `previous_back` report: previous_back's line), what that slot holds again and whether it is warm. `operation`:
 * the interrupted run's (a rollback starts a release that went live before: it only did not go live again).
 */
export function stoppedSlotLine(report: string, previous?: string, operation?: string): string {
  const [slot = '', release = ''] = report.trim().split(' ');
  const started = operation === 'rollback' ? `the interrupted rollback had started ${release} (live before; the rollback did not switch to it)` : `the interrupted run had started ${release} (it never went live)`;
  return `stopped slot ${slot}, where ${started}${previous?.trim() ? `; ${previous.trim()}` : ''}`;
}

export interface LockInfo {
  /**
   * not_held: an unlock found no lock of this run (none, or another run's): it wrote and removed nothing. unknown: the
   * host could not be read (`ops lock status` of a host down: core/ops/records.ts getLockStatus says why), or a lock is
   * there whose holder process the login cannot see (hidepid, no sudo: holder `unseen` says so; unseenReason).
   */
  state: 'free' | 'held' | 'stale' | 'acquired' | 'released' | 'not_held' | 'unknown';
  /** The holder's details (operation, actor, run, run_id, since, ...); `queued: first` when the lock is free and this queued run takes it next. */
  holder: Record<string, string>;
  /** The other runs waiting for the lock (lockStatus), in the order they take it (the first takes it next): each its details (operation, actor, run, run_id, since: when it queued). */
  queue?: Record<string, string>[];
}

/** The lock as lockStatus (or acquireLock) reported it. */
export function parseLock(result: StepResult): LockInfo {
  const holder: Record<string, string> = {};
  for (const line of reportedAll(result, LOCK_KEYS.holder)) {
    const eq = line.indexOf('=');
    if (eq > 0) holder[line.slice(0, eq)] = line.slice(eq + 1);
  }
  const queue: Record<string, string>[] = [];
  for (const line of reportedAll(result, LOCK_KEYS.queued)) {
    const m = /^(\d+) ([^=]+)=(.*)$/.exec(line);
    if (m) (queue[Number(m[1]) - 1] ??= {})[m[2]!] = m[3]!;
  }
  return { state: (reported(result, LOCK_KEYS.lock) ?? 'free') as LockInfo['state'], holder, queue: queue.filter(Boolean) };
}

/**
 * A lock holder in a message: "a deploy run by alice, started <time> (<run URL>)", with how long ago (", 2h 03m ago")
 * when the host said (`age`, REPORT_HOLDER).
 */
export function describeHolder(h: Record<string, string>): string {
  const ago = /^\d+$/.test(h.age ?? '') ? `, ${duration(Number(h.age))} ago` : '';
  if (!h.operation) return `an unknown run (the lock has no details${h.since ? `; taken ${h.since}${ago}` : ''})`;
  if (h.queued === 'first') return `${describeWaiter(h)}, first in the lock's queue (it takes the lock now)`;
  return `a ${h.operation} run by ${h.actor || 'unknown'}, started ${h.since || '?'}${ago}${h.run ? ` (${h.run})` : ''}`;
}

/** A run waiting in the lock's queue (LockInfo.queue) in a message: "a deploy run by bob, queued <time> (<run URL>)". */
export function describeWaiter(h: Record<string, string>): string {
  return `a ${h.operation || 'unknown'} run by ${h.actor || 'unknown'}, queued ${h.since || '?'}${h.run ? ` (${h.run})` : ''}`;
}

/**
 * The runs queued for a lock in words, in the order they take it ('' when none): "; queued behind it: 1. <run> (next),
 * 2. <run>".
 */
export function describeQueue(lock: LockInfo): string {
  const q = lock.queue ?? [];
  return q.length ? `; ${q.length} run${q.length > 1 ? 's' : ''} queued behind it, in the order they take the lock: ${q.map((w, i) => `${i + 1}. ${describeWaiter(w)}${i === 0 ? ' (next)' : ''}`).join(', ')}` : '';
}

/**
 * The run a lock says is under way, in words for a command that does not take the lock (ops logs, ops env remove):
 * "a deploy run by alice, started <time>, 2m 03s ago (<run URL>) is under way" for a lock held by a live run; "may
 * be under way" with why it cannot be told for one whose holder this login cannot see (`unknown`, unseenReason);
 * undefined for any other (free, or stale: its run is gone).
 */
export function runUnderWay(lock: LockInfo): string | undefined {
  if (lock.state === 'held') return `${describeHolder(lock.holder)} is under way`;
  if (lock.state === 'unknown') return `${describeHolder(lock.holder)} may be under way${unseenReason(lock)}`;
  return undefined;
}

/**
 * Why a stale lock's run reads gone though the lock's holder pid may be a live process: the host rebooted since it was
 * taken, or the holder's SSH connection has been silent HOLDER_SILENT_SECONDS (its runner went away with its network).
 * Empty for any other stale lock (its holder process ended) and for a lock not stale.
 */
export function staleReason(lock: LockInfo): string {
  if (lock.state !== 'stale') return '';
  if (lock.holder.rebooted) return ' (the host has rebooted since it was taken)';
  if (lock.holder.silent) return ` (its SSH connection is still open there but has sent nothing for ${lock.holder.silent}s: its runner went away with its network)`;
  return '';
}

/**
 * A held lock's holder connection in words, when the host could read its silence (staleIn): how long it has sent
 * nothing, and in how many seconds the lock reads stale should it stay silent (its runner gone with its network);
 * '' when not known. What a run queued behind it and `ops lock release` say of it.
 */
export function silentHolder(lock: LockInfo): string {
  const s = staleIn(lock);
  return s ? `its run's SSH connection is still open (it last sent something ${s.silent}s ago); if its runner went away without closing it (its network lost), the lock reads stale in ${s.seconds}s` : '';
}

/** Why a lock's holder could not be checked (its `unseen`, in parentheses), or '' when it was. */
export function unseenReason(lock: LockInfo): string {
  return lock.holder.unseen ? ` (whether its run is still connected cannot be told: ${lock.holder.unseen}; with sudo for the login without a password it can be)` : '';
}

/**
 * A held lock whose holder connection's silence the host could read (`silent`): the seconds until it reads stale if
 * it stays silent (HOLDER_SILENT_SECONDS after its last word), and how long it has been silent; else undefined (not
 * held, or ss not readable there).
 */
export function staleIn(lock: LockInfo): { silent: number; seconds: number } | undefined {
  const silent = Number(lock.holder.silent);
  if (lock.state !== 'held' || !/^\d+$/.test(lock.holder.silent ?? '')) return undefined;
  return { silent, seconds: Math.max(1, HOLDER_SILENT_SECONDS - silent) };
}
