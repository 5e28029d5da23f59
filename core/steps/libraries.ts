// The shell function libraries step scripts put in front of their own lines: bash files in core/steps/sh/,
// imported as text (esbuild's text loader in the bundles, scripts/text-modules.js under tsx and vitest), so
// they are read, edited and checked (shellcheck, bash -n) as shell, not as strings inside TypeScript.
// Each file says what it provides and what it needs; every step's full script is checked by shellcheck in
// test/unit/shellcheck.test.ts.
import { reportKeys } from '../remote/types.ts';
import type { Target } from '../target.ts';
import { quote } from '../shell.ts';
import { maskArgs } from './masks.ts';
import { probeHeaders } from './nginx-config.ts';
import assetsFunctions from './sh/assets.sh';
import certFunctions from './sh/cert.sh';
import connectionFunctions from './sh/connection.sh';
import containFunctions from './sh/contain.sh';
import criticalFunctions from './sh/critical.sh';
import historyFunctions from './sh/history.sh';
import hostLockFunctions from './sh/host-lock.sh';
import identityFunctions from './sh/identity.sh';
import maskFunctions from './sh/mask.sh';
import probeFunctions from './sh/probe.sh';
import stampedFunctions from './sh/stamped.sh';
import supervisorFunctions from './sh/supervisor.sh';
import systemFunctions from './sh/system.sh';
import treeFunctions from './sh/tree.sh';

/**
 * curl as a step asks this host's own nginx or programs (http://127.0.0.1, or the site's name --resolve'd to it): with
 * no proxy. A host behind one keeps http_proxy and https_proxy in every step's environment (core/remote/wrap.ts
 * PROXY_ENV: the route to the package indexes), and curl sends a request there unless no_proxy names its host, which
 * 127.0.0.1 seldom is and a --resolve'd site name never is: the proxy, which cannot reach this host's loopback, then
 * answers in nginx's place (its own 403 or 503, or nothing), and the switch never sees its slot. sh/probe.sh's curl too.
 */
export const LOCAL_CURL = "curl --noproxy '*'";
/**
 * Shell that sets `gate_at`, where the site's visitors reach this host: the address of it the SSH connection reached
 * (SSH_CONNECTION's third field, an address visitors reach too; read from the first process above this one that has
 * it, as sudo's env_reset drops it: the login's shell, root reads every process's environment), an IPv6 one in
 * brackets, else 127.0.0.1; and `gate_at_shown`, the same as it is said. A server block of another file listening on
 * that address (`listen <address>:80`) is taken for every request to it before the site's `listen 80`, and one
 * listening on 127.0.0.1 alone (a status page for a monitoring agent) takes nothing from the visitors: asked there,
 * nginx answers as it answers them (nginxServed, the switch's look at /.ops/slot, the ACME server's HTTP-01 request tried before certbot runs:
 * acme_path_problem, the certificate nginx serves: served_serial).
 */
export function visitorAddress(): string {
  return String.raw`# Where visitors are: the address of this host the SSH connection reached (an IPv4 or IPv6 address, else 127.0.0.1),
# from SSH_CONNECTION: sudo's env_reset drops it, so it is read from the first process above this one that has it
# (the login's shell; root reads every process's environment).
gate_conn=${'$'}{SSH_CONNECTION:-}; gate_pid=$$
while [ -z "$gate_conn" ] && [ "$gate_pid" -gt 1 ] && read -r gate_stat 2>/dev/null < "/proc/$gate_pid/stat"; do
  # Its environment's entries, NUL-separated, read by bash itself (no grep and tr per process).
  { while IFS= read -r -d '' gate_v || [ -n "$gate_v" ]; do [[ $gate_v != SSH_CONNECTION=* ]] || { gate_conn=${'$'}{gate_v#SSH_CONNECTION=}; break; }; done < "/proc/$gate_pid/environ"; } 2>/dev/null || true
  read -r -a gate_f <<< "${'$'}{gate_stat##*) }"; gate_pid=${'$'}{gate_f[1]}
done
read -r _ _ gate_at _ <<< "$gate_conn" || true
# shellcheck disable=SC2034 # gate_at_shown: for the callers that say where they asked
if [[ $gate_at =~ ^[0-9.]+$ ]]; then gate_at_shown=$gate_at; elif [[ $gate_at =~ ^[0-9a-fA-F:]+$ ]]; then gate_at_shown="[$gate_at]"; gate_at="[$gate_at]"; else gate_at=127.0.0.1; gate_at_shown=$gate_at; fi`;
}

/**
 * stamped_list, stamped_next, stamped_keep: files named after the UTC time they were made (`<base>.<time>[.N]<suffix>`:
 * backups, the audit log's archives), ordered by that time and N as a number, a clock set back never naming a new one
 * older than the newest (sh/stamped.sh).
 */
export const STAMPED_FUNCTIONS: string = stampedFunctions;
/** svc, svc_up, item (CHANGED), put_file, ensure_dir: provision and the system parts of deploys; and STAMPED_FUNCTIONS (putUnlessHostOwn's backups). */
export const SYSTEM_FUNCTIONS: string = `${systemFunctions}\n${stampedFunctions}`;
/** host_lock NAME [WAIT], host_unlock NAME: changes shared by the apps of a host, one at a time (flock). */
export const HOST_LOCK_FUNCTIONS: string = hostLockFunctions;
/** assets_link RELEASE TREE OWNER DIR...: what nginx serves of release.asset_dirs' { dir, url } of a release (sh/assets.sh). */
export const ASSETS_FUNCTIONS: string = assetsFunctions;
/**
 * The exit code of run_lock_guard (host-lock.sh): a step of a run found the run's lock no longer its own (released by
 * force, removed, or another run's now) and changed nothing.
 */
export const LOCK_LOST_EXIT = 75;
/** How run_lock_guard's one line of stderr begins (core/steps/lock.ts lockLostLine finds it). */
export const LOCK_LOST_MARK = "the run's lock on this host is no longer its own: ";
/** critical_begin, critical_end, critical_wait, critical_done: a switch not cut off half-way by the runner going away. */
export const CRITICAL_FUNCTIONS: string = criticalFunctions;
/** The most seconds critical_begin waits for a switch under way, and critical_wait for one to end (critical.sh). */
export const CRITICAL_WAIT_SECONDS = 60;
/** rpc, rpc_fault, rpc_error, reread, group_down, group_add, sup_pids, group_fatal: supervisord's XML-RPC API over its socket. */
export const SUPERVISOR_FUNCTIONS: string = supervisorFunctions;
/** check_identity, live_verdict, report_slot (and their helpers, with CONTAIN_FUNCTIONS' proc_env): who answers on a program's port; leftovers_down: what a stopped slot left running outside supervisor. Needs SUPERVISOR_FUNCTIONS, MASK_FUNCTIONS (in PROBE_FUNCTIONS) and PROBE_FUNCTIONS for live_verdict. */
export const IDENTITY_FUNCTIONS: string = `${containFunctions}\n${identityFunctions}`;
/**
 * proc_env PID NAME; contained COMMAND [ARG...]: a user's command or a dependency install run in a session of its own,
 * and what it left running (its session, and this user's processes carrying its mark) stopped once it exited
 * (sh/contain.sh).
 */
export const CONTAIN_FUNCTIONS: string = containFunctions;
/**
 * probe, wait_healthy: the health checks (wait_healthy with FATAL_GROUP set needs SUPERVISOR_FUNCTIONS), with the
 * mask functions they quote an answer through (MASK_FUNCTIONS).
 */
export const PROBE_FUNCTIONS: string = `${probeFunctions}\n${maskFunctions}`;
/**
 * PROBE_FUNCTIONS with what its probes send for `env` (nginx-config.ts probeHeaders: the Host and forwarded headers
 * nginx passes the site's traffic) and the texts they mask (MASK_ARGS: mask_forms's arguments, masks.ts maskArgs):
 * what a step's script includes, so that no step probes without them. Includes MASK_FUNCTIONS.
 */
export function probeLibrary(env: Target): string {
  return `${PROBE_FUNCTIONS}\n${probeHeaders(env)}\n${maskSettings(env)}`;
}
/**
 * tree_made, tree_record, tree_changed (sh/tree.sh): the record of a release's commit files as made, those still so
 * when a deploy switched to it, and the first of them changed or gone since (a deploy's no-op), with the records'
 * names for `env` (layout.treeMade, layout.treeLive).
 */
export function treeLibrary(env: Target): string {
  const name = (path: string) => path.slice(path.lastIndexOf('/') + 1);
  return `${treeFunctions}\nTREE_MADE=${quote(name(env.layout.treeMade('.')))}\nTREE_LIVE=${quote(name(env.layout.treeLive('.')))}`;
}
/** MASK_ARGS for `env` (mask_forms's arguments, masks.ts maskArgs): what mask_ready and wait_healthy load. */
function maskSettings(env: Target): string {
  return `MASK_ARGS=(${maskArgs(env).map(quote).join(' ')})`;
}
/** MASK_FUNCTIONS with MASK_ARGS for `env`: for a step that quotes what the host or app printed (mask_clip). */
export function maskLibrary(env: Target): string {
  return `${MASK_FUNCTIONS}\n${maskSettings(env)}`;
}
/** mask_forms, mask_text: the secret values releases were given, masked on the host (core/steps/masks.ts maskText). */
export const MASK_FUNCTIONS: string = maskFunctions;
/** cert_info PATH, served_serial NAME, cert_lacks CERT NAME...: certificates on disk and the one nginx serves. */
export const CERT_FUNCTIONS: string = certFunctions;
/** proc_start, conn_pid, connection_pids: processes and the SSH connection they belong to. */
export const CONNECTION_FUNCTIONS: string = connectionFunctions;
/** The release history (needs its settings first: use historyFunctions in history.ts). */
export const HISTORY_FUNCTIONS: string = historyFunctions;

/**
 * The keys the libraries above report (a library is shell, so it cannot interpolate them; test/unit/report-keys.test.ts
 * checks each `ops_report <key>` in core/steps/sh/ is one of these): `item` (`<part> ok|changed`, system.sh),
 * `cert` (`<file> TAB <openssl line|missing|unreadable>`, cert.sh), `proc` and `listener` (who runs and who
 * answers per program, identity.sh), `history` (`derived`), `release` (`<id> <sha> <status> <live seq|-> <last
 * event seq|->`), `history_seq` and `slot_release` (`<slot> <release id>`) (history.sh), `nginx_started` (nginx_reload found nginx
 * stopped and started it, system.sh).
 */
export const LIBRARY_KEYS = reportKeys('item', 'cert', 'proc', 'listener', 'history', 'release', 'history_seq', 'slot_release', 'nginx_started');
