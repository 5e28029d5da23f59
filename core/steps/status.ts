// Status: what `ops status` runs on a host, and the parser of what it reports. ONE read-only step per host
// (one round trip): release, nginx (and where it routes), supervisor, health (the deploys' probes), certificate, disk and lock, each
// as `ops_report` lines parsed here into a HostStatus with its problems and warnings.
import type { Target } from '../target.ts';
import { otherSlot, type Slot } from '../layout.ts';
import { maskedText, maskSecretLike, oneLine } from '../errors.ts';
import { auditTail, parseAuditLine, type AuditEntry } from './audit.ts';
import { collapsedSpace } from '../secrets/parts.ts';
import { reportKeys, reported, reportedAll, type Step, type StepResult } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { CERTS_KEYS, judgeCertificate, parseCerts, parseRenewal, renewalCheck, SERVED_ELSE_FIX, siteName, type CertInfo } from './certs.ts';
import { CERT_FUNCTIONS, IDENTITY_FUNCTIONS, LOCAL_CURL, probeLibrary, SUPERVISOR_FUNCTIONS, SYSTEM_FUNCTIONS, visitorAddress } from './libraries.ts';
import { maskText } from './masks.ts';
import { describeHolder, describeQueue, lockStatus, parseLock, staleReason, unseenReason, type LockInfo } from './lock.ts';
import { cachesInherited, certificatePaths, checkLog, HEADER, inheritedCacheLinesShell, slotPortLinesShell, slotPortsElsewhere } from './nginx-config.ts';
import { describeProcess, foreignListeners, leftoverListeners, parseProcReports, parseProcessInfo, programStates, type ProgramState } from './programs.ts';
import { historyFunctions } from './history.ts';
import { nginxMasked, releaseSummary, type ReleaseSummary } from './release.ts';
import { programPorts, probes } from './switch.ts';
import { gateSeconds, nameClaims, nginxServed } from './nginx-gate.ts';
import { packageIndexPaths, provisionedIn, reportProvisioned, unprovisionedNote } from './system.ts';
import { HOST_OWN_BACKUPS, notAsWritten, writtenRecord } from './script.ts';
import { databaseAnswers, databaseProbeShell, databaseProblem, parseDatabaseProbes, type DatabaseProbe } from './database.ts';

/** What `hostStatus` reports, parsed by `parseStatus`: `now` (host clock, ISO 8601 UTC), PROVISIONED_KEYS, `current`, `release_json`, `slot`, `nginx` (running, or `stopped <what systemctl is-enabled nginx says, or unknown>`: its master process, nginx_master), `nginx_pidfile` (`missing <master pid>` or `stale <master pid>`: /run/nginx.pid does not name the running master), `nginx_config` (ok|invalid), `nginx_test` (nginx -t lines), `nginx_slot_port` (lines of nginx's other files naming a slot's port at a local address: slotPortLinesShell), `nginx_cache` (http-level proxy_cache lines of nginx's other files: inheritedCacheLinesShell), `site_enabled` (yes|no), `site` (HTTP status), `supervisor` (`running` or why not), `supervisor_xml` (getAllProcessInfo's answer), `health` (`ok` or why not), `served_serial`, `disk` (`<mount> <free KiB> <size KiB>`), `upstream` (`<name> <address>` per server of the upstreams file, or `missing`), `nginx_slot` (what /.ops/slot answers through nginx), `nginx_slot_https` (the same over https, when the site serves TLS with its certificate), `live_started` (`<epoch> <epoch>`: the live slot's supervisor file's time, when its programs started for their release, and when supervisord started), `live_ended` (`<program>\t<line>` per live program: the last line of supervisord's log saying how its process last ended, `exited:` on its own or `stopped:` when asked to), `last_run` (the audit log's last lines, oldest first, the last readable one the last run here, AuditEntry JSON), what the site's visitors get through nginx on the live slot (servedShell: `served_url`, `served_proof`, `served_fail`, `served_wrong`, `served_unlogged`); `boot_unit` (`<unit> <what systemctl is-enabled says>` for nginx and supervisor, under systemd: what starts them at the next boot); `name_taken` (the site's names another file nginx loads first gives a server block: nameClaims); `db_probe` (when a health check failed: per address of the app's PostgreSQL named by the live release's .env, whether it answers: databaseProbeShell); `host_changed` (a path per file ops writes whole from the settings, the site, a slot's supervisor file, the app user's package index files, changed on the host since ops wrote it: notAsWritten); certificates as LIBRARY_KEYS.cert, and (letsencrypt) how they renew as CERTS_KEYS.renewal. */
export const STATUS_KEYS = reportKeys('now', 'current', 'release_json', 'slot', 'nginx', 'nginx_pidfile', 'nginx_config', 'nginx_test', 'nginx_slot_port', 'nginx_cache', 'site_enabled', 'site', 'supervisor', 'supervisor_xml', 'health', 'served_serial', 'disk', 'upstream', 'nginx_slot', 'nginx_slot_https', 'rollback_to', 'never_live', 'live_started', 'live_ended', 'last_run', 'served_url', 'served_proof', 'served_fail', 'served_wrong', 'served_unlogged', 'host_changed', 'boot_unit', 'name_taken', 'db_probe');

/**
 * Shell that reports where nginx sends the app's traffic (nginxRoute reads it): each `upstream <name> <address>` of
 * the upstreams file (`upstream missing` without the file), and `nginx_slot`, what /.ops/slot answers through the
 * local nginx (the slot of the upstreams nginx has loaded: a file edited since the last reload is not served yet; a
 * custom site template without {{slot_location}} answers something else, ignored by the parser). As the switch
 * looks at it: with the domain as Host, at the host's address its visitors reach (visitorAddress: sets gate_at; a
 * server block listening on that address itself takes them there, unseen from 127.0.0.1).
 */
export function nginxRouteShell(env: Target): string {
  const L = env.layout;
  const host = env.config.domain ? ` -H ${quote(`Host: ${env.config.domain}`)}` : '';
  // Over https too when the site serves TLS (its visitors are there: port 80 redirects), once its certificate is in place.
  const cert = env.config.tls.mode !== 'off' ? certificatePaths(env) : undefined;
  const name = siteName(env);
  const https = cert
    ? `\nif [ -f ${quote(cert.cert)} ]; then ops_report ${STATUS_KEYS.nginx_slot_https} "$(${LOCAL_CURL} -sk --max-time 2 --resolve ${quote(`${name}:443:`)}"$gate_at" ${quote(`https://${name}/.ops/slot`)} 2>/dev/null | head -c 32 | tr -d '\n' || true)"; fi`
    : '';
  return String.raw`${visitorAddress()}
if [ -f ${quote(L.nginxUpstreams)} ]; then
  while read -r name addr; do ops_report ${STATUS_KEYS.upstream} "$name $addr"; done < <(awk '$1 == "upstream" { name = $2 } $1 == "server" && name != "" { a = $2; sub(/;$/, "", a); print name, a } $1 == "}" { name = "" }' ${quote(L.nginxUpstreams)} 2>/dev/null)
else ops_report ${STATUS_KEYS.upstream} missing; fi
ops_report ${STATUS_KEYS.nginx_slot} "$(${LOCAL_CURL} -s --max-time 2${host} http://"$gate_at"/.ops/slot 2>/dev/null | head -c 32 | tr -d '\n' || true)"${https}`;
}


/**
 * curl's arguments (shell text, reading `$gate_at`: visitorAddress) that fetch the site's "/" through nginx as a visitor
 * would (TLS included), at the host's address visitors reach; `url`: what is said.
 */
export function siteProbe(env: Target): { url: string; args: string } {
  const name = siteName(env);
  if (env.config.tls.mode === 'off') {
    return { url: 'http://127.0.0.1/', args: `${env.config.domain ? `-H ${quote(`Host: ${env.config.domain}`)} ` : ''}http://"$gate_at"/` };
  }
  return { url: `https://${name}/`, args: `-k --resolve ${quote(`${name}:443:`)}"$gate_at" ${quote(`https://${name}/`)}` };
}

/**
 * Shell that runs the deploys' health probes on a slot's programs, all at once (3 s at most), and reports `health`:
 * `ok`, or wait_healthy's verdict (each failing probe with why, in curl's words; a probe answered by an error status
 * quotes its status line and the first bytes of its body, what a program says about its failure, a database down:
 * masked and shortened by the parser, healthReasons). The verdict is masked on the host first (maskText: the secret
 * values of the releases kept there), as status runs without the key that would let the runner mask them. Sets
 * `health_failed` (1 or 0), which servedShell reads after it.
 */
export function healthShell(env: Target, slot: Slot): string {
  return String.raw`if wait_healthy 3 0.3 ${probes(env, slot).map(quote).join(' ')}; then health_failed=0; ops_report ${STATUS_KEYS.health} ok; else
  health_failed=1; ops_report ${STATUS_KEYS.health} "$(printf '%s' "$UNHEALTHY" | ${maskText(env)})"
fi`;
}

/**
 * Shell that reports what the site's visitors get through nginx for the live release (read: `$cur`, `$live_slot`):
 * nginxServed on the live slot, over https when the environment serves TLS and its certificate is on the host,
 * proven by nginx's check log when the enabled site keeps it; the switch's proof (nginxGate), word for word.
 * `served_url` (where visitors were asked), `served_proof` (1: the site keeps the check log, 0: it does not, nothing
 * proven; `older`: nor was it written by this ops, but by an older one: ops's header, no record of its writing, writtenRecord), `served_fail` (health paths nginx answers 5xx or replaces, with its error log line and the fix; masked
 * here, maskText), `served_wrong` (what answered instead of the live slot, and the fix), `served_unlogged` (a health
 * path whose location keeps no record). Nothing when no release is live. At most gateSeconds. A 5xx while the live
 * slot's own probes failed (healthShell's `health_failed`, run before it) is said to be the release's failure passed
 * on, not nginx's.
 */
export function servedShell(env: Target): string {
  return String.raw`if [ -n "$cur" ] && { [ "$live_slot" = blue ] || [ "$live_slot" = green ]; }; then
${nginxServed(env, { slot: 'live', tls: 'if-certificate', proves: 'if-site-logs', healthFailed: '"${health_failed:-0}"' })}
# A site without the check log, with ops's header and no record of ops's writing it, was written by an older ops.
if [ "$gate_proves" = 0 ] && [ ! -s ${quote(writtenRecord(env.layout.nginxSite))} ] && [ "$(head -n1 ${quote(env.layout.nginxSite)} 2>/dev/null)" = ${quote(HEADER)} ]; then gate_proves=older; fi
if [ -n "$gate_url" ]; then ops_report ${STATUS_KEYS.served_url} "$gate_url"; ops_report ${STATUS_KEYS.served_proof} "$gate_proves"; fi
[ -z "$gate_fail" ] || ops_report ${STATUS_KEYS.served_fail} "$(printf '%s' "$gate_fail; nginx's error log: ${'$'}{gate_line:-(nothing about an upstream)}. $gate_hint" | ${maskText(env)})"
[ -z "$gate_wrong" ] || ops_report ${STATUS_KEYS.served_wrong} "$gate_wrong"
[ -z "$gate_unlogged" ] || ops_report ${STATUS_KEYS.served_unlogged} "$gate_unlogged"
fi`;
}

/** The most of the audit log's last line status reads (bytes): a line is a few hundred (its message at most AUDIT_REASON_MAX). */
const LAST_RUN_BYTES = 4000;
/** The audit log's last lines status reads, of which it takes the last readable one (the last run here). */
const LAST_RUN_LINES = 5;
/** The most of a failed last run's reason status shows (characters); ops audit shows it whole. */
export const LAST_RUN_SHOWN = 200;

/**
 * Shell reporting the last run on the host (STATUS_KEYS.last_run): the audit log's last LAST_RUN_LINES lines, oldest
 * first, each cut at LAST_RUN_BYTES, read under the log's lock (auditTail: a rotation or an append under way is waited
 * for, never read as no log or a torn line); parseStatus takes the last readable one, so a line torn by a full disk or
 * edited by hand hides no run.
 */
export function lastRunShell(env: Target): string {
  return `while IFS= read -r line; do ops_report ${STATUS_KEYS.last_run} "$line"; done < <(${auditTail(env, LAST_RUN_LINES)} | cut -b 1-${LAST_RUN_BYTES})`;
}

/** Everything `ops status` shows about one host, in one read-only step (as root: supervisor's socket, certificates). */
export function hostStatus(env: Target): Step {
  const L = env.layout;
  const cert = certificatePaths(env);
  const health = (slot: Slot) => healthShell(env, slot);
  return {
    name: 'status',
    as: 'root',
    timeout: 90 + gateSeconds(env),
    quiet: true,
    script: String.raw`${SYSTEM_FUNCTIONS}
${probeLibrary(env)}
${SUPERVISOR_FUNCTIONS}
${IDENTITY_FUNCTIONS}
${CERT_FUNCTIONS}
${historyFunctions(env)}
ops_report ${STATUS_KEYS.now} "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
${reportProvisioned(env)}
cur=$(readlink ${quote(L.current)} 2>/dev/null || true)
ops_report ${STATUS_KEYS.current} "${'$'}{cur##*/}"
# Its release.json as ops wrote it (its record's: release_record).
if [ -n "$cur" ]; then release_record "${'$'}{cur##*/}"; if [ -f "$release_record/release.json" ]; then ops_report ${STATUS_KEYS.release_json} "$(tr -d '\n' < "$release_record/release.json")"; fi; fi
live_slot=$(cat ${quote(L.slotFile)} 2>/dev/null || true)
ops_report ${STATUS_KEYS.slot} "$live_slot"
${lastRunShell(env)}
# The release a rollback would go to from here (rollback_previous, as the rollback's state read; read-only; with
# several hosts the runner makes it the environment's one choice, as the rollback does: environmentRollback): what the
# previous slot should keep warm.
# And the releases that never went live (a deploy that failed or was interrupted before its switch).
if [ -n "$cur" ]; then
  rollback_to=$(rollback_previous "${'$'}{cur##*/}" 2>/dev/null) || true
  ops_report ${STATUS_KEYS.rollback_to} "$([ "${'$'}{rollback_to%% *}" = ok ] && printf %s "${'$'}{rollback_to#ok }")"
  ops_report ${STATUS_KEYS.never_live} "$(history_read 2>/dev/null; for r in $(release_ids 2>/dev/null); do release_went_live "$r" "${'$'}{cur##*/}" || printf '%s ' "$r"; done)"
fi
# nginx: running (its master process, found with or without the pid file: nginx_master), whether its pid file names
# it, its configuration as nginx -t sees it, and "/" through it.
if master=$(nginx_master); then
  ops_report ${STATUS_KEYS.nginx} running
  pid=""; read -r pid 2>/dev/null < /run/nginx.pid || true
  if [ -z "$pid" ]; then ops_report ${STATUS_KEYS.nginx_pidfile} "missing $master"; elif [ "$pid" != "$master" ]; then ops_report ${STATUS_KEYS.nginx_pidfile} "stale $master"; fi
else ops_report ${STATUS_KEYS.nginx} "stopped $(nginx_unit)"; fi
# Whether nginx and supervisor start at the next boot (systemd; is-enabled's word, '' when it has none).
if [ -d /run/systemd/system ]; then for unit in nginx supervisor; do ops_report ${STATUS_KEYS.boot_unit} "$unit $(systemctl is-enabled "$unit" 2>/dev/null)"; done; fi
if out=$(nginx -t 2>&1); then ops_report ${STATUS_KEYS.nginx_config} ok; else ops_report ${STATUS_KEYS.nginx_config} invalid; fi
while IFS= read -r line; do [ -z "$line" ] || ops_report ${STATUS_KEYS.nginx_test} "$line"; done <<< "$out"
nginx_all=$(nginx -T 2>/dev/null) || nginx_all=""
${slotPortLinesShell(env, `printf '%s\n' "$nginx_all"`)}
if [ -n "$nginx_pinned" ]; then while IFS= read -r line; do ops_report ${STATUS_KEYS.nginx_slot_port} "$line"; done <<< "$nginx_pinned"; fi
${inheritedCacheLinesShell(env, `printf '%s\n' "$nginx_all"`)}
if [ -n "$nginx_cached" ]; then while IFS= read -r line; do ops_report ${STATUS_KEYS.nginx_cache} "$line"; done <<< "$nginx_cached"; fi
${nameClaims(env, 'nginx_all', 'names_taken')}
[ -z "$names_taken" ] || ops_report ${STATUS_KEYS.name_taken} "$names_taken"
# The files ops writes whole from the settings that someone changed here since: the next provision or deploy replaces them.
${hostChangedFiles(env).map((f) => `if ${notAsWritten(f, true)}; then ops_report ${STATUS_KEYS.host_changed} ${quote(f)}; fi`).join('\n')}
ops_report ${STATUS_KEYS.site_enabled} "$([ -e ${quote(L.nginxSiteEnabled)} ] && echo yes || echo no)"
# "/" where the site's visitors arrive (a server block listening on the host's address itself takes them there).
${visitorAddress()}
ops_report ${STATUS_KEYS.site} "$(${LOCAL_CURL} -s -o /dev/null -w '%{http_code}' --max-time 5 ${siteProbe(env).args} 2>/dev/null || true)"
# Where nginx sends the traffic: the upstreams file's ports, and the slot nginx has loaded.
${nginxRouteShell(env)}
# supervisor over its XML-RPC socket (supervisorctl exits non-zero when a program is down: not used here).
if xml=$(rpc supervisor.getAllProcessInfo 2>&1) && [[ "$xml" == *"<methodResponse>"* ]]; then
  ops_report ${STATUS_KEYS.supervisor} running
  ops_report ${STATUS_KEYS.supervisor_xml} "$(printf '%s' "$xml" | tr -d '\n')"
  # When the live slot's programs started for their release (its supervisor file's time: startSlot touches it then)
  # and when supervisord did: a live program started later than both restarted since (a crash after its health check).
  live_conf=""; case "$live_slot" in blue) live_conf=${quote(L.supervisorConf('blue'))} ;; green) live_conf=${quote(L.supervisorConf('green'))} ;; esac
  sd_pid=$(rpc supervisor.getPID); sd_up=""
  if [[ $sd_pid =~ \<int\>([0-9]+)\</int\> ]]; then sd_up=$(ps -o etimes= -p "${'$'}{BASH_REMATCH[1]}" 2>/dev/null | tr -d ' ') || true; fi
  if [ -n "$live_conf" ] && [ -f "$live_conf" ] && [[ $sd_up =~ ^[0-9]+$ ]]; then
    printf -v sd_now '%(%s)T' -1
    ops_report ${STATUS_KEYS.live_started} "$(stat -c %Y "$live_conf") $(( sd_now - sd_up ))"
    # How each live program's process last ended before its current start, as supervisord logged it (its main log's
    # last 64 KiB, readLog: wherever supervisord.conf puts it).
    sd_log=$(rpc supervisor.readLog -65536 0)
    case "$live_slot" in
      blue) ${liveEnded(env, 'blue')} ;;
      green) ${liveEnded(env, 'green')} ;;
    esac
  fi
  # What each slot's processes run, read from the processes themselves, and who listens on the ports.
  report_slot blue ${quote(L.supervisorGroup('blue'))} ${quote(env.appUser)} ${quote(L.releases)} ${programPorts(env, 'blue').map(quote).join(' ')}
  report_slot green ${quote(L.supervisorGroup('green'))} ${quote(env.appUser)} ${quote(L.releases)} ${programPorts(env, 'green').map(quote).join(' ')}
else
  ops_report ${STATUS_KEYS.supervisor} "$(rpc_error "$xml")"
fi
# The deploys' health probes, on the live slot, one verdict per program.
case "$live_slot" in
  blue) ${health('blue')} ;;
  green) ${health('green')} ;;
esac
# A failed health check: whether the app's PostgreSQL answers from here (never its password: host and port only).
if [ "${'$'}{health_failed:-0}" = 1 ] && [ -n "$cur" ]; then
  db_release=${quote(L.releases)}/"${'$'}{cur##*/}"; db_environ=${L.environ('"$db_release"')}; [ -f "$db_environ" ] || db_environ=${quote(L.legacyShared.environ)}
  while IFS= read -r line; do ops_report ${STATUS_KEYS.db_probe} "$line"; done < <(${databaseProbeShell(env, '"$db_environ"') ?? ':'})
fi
# What the site's visitors get through nginx, and which upstream answered it (the switch's proof).
${servedShell(env)}
${cert ? `cert_info ${quote(cert.cert)}\n${visitorAddress()}\nops_report ${STATUS_KEYS.served_serial} "$(served_serial ${quote(siteName(env))} "$gate_at")"${env.config.tls.mode === 'letsencrypt' ? `\n${renewalCheck(env)}` : ''}` : ': no TLS'}
{ df -Pk / ${quote(L.base)} 2>/dev/null || true; } | awk 'NR > 1 { print $6, $4, $2 }' | sort -u | while read -r m avail size; do ops_report ${STATUS_KEYS.disk} "$m $avail $size"; done
${lockStatus(env).script}`,
  };
}


/**
 * is-enabled's words under which systemd starts a unit at boot (systemctl(1)): `enabled-runtime` is not one, its
 * link lives in /run, which a reboot empties.
 */
const STARTS_AT_BOOT = new Set(['enabled', 'alias', 'generated']);

/**
 * Warns (`warn`) of nginx or supervisor running now but not started at the next boot (`boot_unit` lines; none without
 * systemd): the site serves until the host restarts (a kernel update, a provider's maintenance), then nginx or the
 * programs are gone. Provision enables both (svc_up); a stopped nginx is a problem said elsewhere, with its unit.
 */
function bootUnits(env: Target, r: StepResult, nginxRunning: boolean, supervisorRunning: boolean, warn: (m: string) => void): void {
  for (const unit of ['nginx', 'supervisor']) {
    const state = bootState(r, unit);
    if (state === undefined || STARTS_AT_BOOT.has(state) || !(unit === 'nginx' ? nginxRunning : supervisorRunning)) continue;
    const after = unit === 'nginx' ? 'nginx is not running and the site is down' : `supervisor is not running and no program of ${env.config.app} runs (the site answers 502)`;
    warn(`${unit} runs, but is not enabled at boot (systemctl is-enabled ${unit}: ${state || 'no answer'}): after the next reboot ${after} (sudo systemctl enable ${unit}, or run: ops provision ${env.name})`);
  }
}

/** What `systemctl is-enabled <unit>` said in the status step ('' when it said nothing); undefined without systemd. */
function bootState(r: StepResult, unit: string): string | undefined {
  const line = reportedAll(r, STATUS_KEYS.boot_unit).find((l) => l.split(' ')[0] === unit);
  return line === undefined ? undefined : line.slice(unit.length + 1);
}

/** The files ops writes whole from the settings, replacing a version changed on the host with a backup (putUnlessHostOwn's `replaced`): status says which were changed. */
function hostChangedFiles(env: Target): string[] {
  const L = env.layout;
  const idx = packageIndexPaths(env);
  return [L.nginxSite, L.supervisorConf('blue'), L.supervisorConf('green'), idx.pipConf, idx.uvToml, idx.npmrc];
}

export interface HostStatus {
  host: string;
  address: string;
  reachable: boolean;
  /** Why the host could not be read (unreachable, or its status step failed), one line; `hint`: how to fix it. */
  error?: string;
  hint?: string;
  provisioned?: boolean;
  release?: ReleaseSummary;
  slot?: Slot;
  nginx?: { running: boolean; configOk: boolean; messages: string[] };
  /**
   * What the site's visitors get through nginx for the live release, as the switch proves it (nginxServed): `url`
   * where they were asked, `proven` whether nginx's own log said which upstream answered (the site keeps it), `ok`
   * whether it is the live slot's release, without a 5xx.
   */
  served?: { url: string; proven: boolean; ok: boolean };
  /** `status`: what "/" answers through nginx; `enabled`: whether the app's own site is enabled (else another site answered). */
  site?: { url: string; status: number; enabled: boolean };
  supervisor?: { running: boolean; error?: string; programs: ProgramState[] };
  health?: { program: string; ok: boolean; detail: string }[];
  /** When a health check failed: each address of the app's PostgreSQL (the live release's .env) and whether it answers from the host. */
  database?: DatabaseProbe[];
  certificate?: CertInfo & { servedSerial?: string };
  disk?: { mount: string; freeMb: number; sizeMb: number; usedPercent: number }[];
  lock?: LockInfo;
  /** The last run on the host (its audit log's last line), if any: a failed one is a warning saying why. */
  lastRun?: AuditEntry;
  /** One line per reason the host is unhealthy (the command exits non-zero when any host has one). */
  problems: string[];
  /** Worth knowing, not failing. */
  warnings: string[];
}

export { CERT_FAIL_DAYS, CERT_WARN_DAYS } from './certs.ts';
/** Free space under which a filesystem fails status (either), and warns. */
export const DISK_FAIL_PERCENT = 5;
export const DISK_FAIL_MB = 512;
export const DISK_WARN_PERCENT = 10;

/** "2h 03m", "4d 2h", "45s". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s >= 86400) return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/** The lines of `nginx -t` worth showing, its errors and warnings ("[emerg] unknown directive ... in file:3"), not "syntax is ok". */
export function nginxMessages(lines: string[]): string[] {
  return lines
    .filter((l) => /\[(emerg|alert|crit|error|warn)\]/.test(l))
    .map((l) => l.replace(/^nginx: /, '').replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d /, '').replace(/^(\[\w+\]) \d+#\d+: /, '$1 '));
}

/** Longest excerpt of a failing health check's answer shown. */
export const BODY_EXCERPT_CHARS = 120;

/**
 * A failing health check's answer as status quotes it: on one line, control characters as "?", at most
 * BODY_EXCERPT_CHARS, with the secret values `redact` knows masked (the runner's, when a key opened the
 * environment's secrets: core/ops/status.ts) and what looks like a secret masked (maskSecretLike). Masked before
 * anything is cut or changed (a value cut, or with its white space collapsed, is no longer found whole) and again
 * once on one line (a passphrase's collapsed form); a cut drops the word it falls in.
 */
export function excerpt(body: string, redact: (text: string) => string = (t) => t): string {
  const t = maskedText(collapsedSpace(redact(body)), redact).replace(/[^\x20-\x7e\u00a0-\uffff]/g, '?');
  if (t.length <= BODY_EXCERPT_CHARS) return t;
  const cut = t.slice(0, BODY_EXCERPT_CHARS);
  return `${/\s/.test(t[BODY_EXCERPT_CHARS]!) ? cut.trimEnd() : cut.replace(/[^\s/?&=;,:"'<>]*$/, '').trimEnd()}…`;
}

/**
 * Why each probe failed, from wait_healthy's verdict ("no healthy answer within 3s from server:3579:/health (The
 * requested URL returned error: 503), client:3000:/ (Failed to connect to 127.0.0.1 port 3000: Connection
 * refused)"): the words in parentheses after each probe, in curl's words (core/steps/sh/probe.sh). A reason may
 * itself hold parentheses or commas (what a server sent): each runs up to the next probe named, or the end. What
 * an error answer's body said (", answering: ...", probe.sh probe_body) is quoted as excerpt() does, and the rest (a
 * redirect's Location) masked as it is (maskSecretLike).
 */
export function healthReasons(verdict: string, probeList: string[], redact: (text: string) => string = (t) => t): Map<string, string> {
  const starts = probeList
    .map((probe) => ({ probe, at: verdict.indexOf(` ${probe} (`) }))
    .filter((x) => x.at >= 0)
    .sort((a, b) => a.at - b.at);
  const out = new Map<string, string>();
  starts.forEach(({ probe, at }, i) => {
    const from = at + probe.length + 3;
    const next = starts[i + 1];
    let text = verdict.slice(from, next ? next.at : verdict.length).trimEnd();
    // The probes after a persistent client error's are those still pending (probe.sh probe_rounds: "; still waiting for").
    if (next) text = text.replace(/,$/, '').replace(/; still waiting for$/, '');
    // The body runs up to the end of the reason, or to the hint a persistent client error adds (probe_rounds).
    // The rest (a redirect's Location, a loop's chain of them) masked as the body is: a URL's password, a token= value.
    out.set(probe, maskSecretLike(text.replace(/\)$/, '').replace(/(, answering: )(.*?)(; the probe sends .*)?$/s, (_, said: string, body: string, hint = '') => `${said}${excerpt(body, redact)}${hint}`)));
  });
  return out;
}

/**
 * The command that deploys the live release's commit again (a new release of it, started on the idle slot and
 * switched to, its nginx and supervisor files written again): `ops deploy <env> --ref <sha> --force`. The sha is
 * always given: without `--ref` a deploy takes the environment's default ref, which is not what is live after a
 * rollback or a deploy of another ref. `current` is the live release's id (`<time>-<sha12>`, releaseId), whose sha
 * stands in when its release.json gave none.
 */
function redeployLive(env: Target, s: HostStatus, current: string): string {
  const sha = s.release?.sha || /-([0-9a-f]{12})$/.exec(current)?.[1] || '<live sha>';
  return `ops deploy ${env.name} --ref ${sha} --force`;
}

/**
 * What the site's visitors get through nginx (servedShell's reports), into `s.served`: a problem (`problem`) when it
 * is not release `current` of the live slot (another server block, nginx's own answer, another address: with the fix,
 * in the switch's words) or nginx answers its health paths 5xx or replaces them (error_page =200); a warning when it
 * cannot be proven (the site keeps no check log, or a health path's location its own access_log). Nothing when the
 * step did not report it (an older status step, nothing live).
 */
function served(env: Target, current: string, s: HostStatus, r: StepResult, redact: ((text: string) => string) | undefined, problem: (p: string) => void, warn: (w: string) => void): void {
  const url = reported(r, STATUS_KEYS.served_url);
  if (!url) return;
  const mask = (t: string) => maskSecretLike(redact ? redact(t) : t);
  const proven = reported(r, STATUS_KEYS.served_proof) === '1';
  const wrong = reported(r, STATUS_KEYS.served_wrong);
  const fail = reported(r, STATUS_KEYS.served_fail);
  const unlogged = reported(r, STATUS_KEYS.served_unlogged);
  // No answer through nginx at all (nginx stopped, as after a reboot with it not enabled at boot): the visitors get
  // nothing, said by the site's own problem; the gate leaves such a path out, so it must not read as theirs.
  const answered = s.nginx?.running !== false && s.site?.status !== 0;
  s.served = { url, proven: proven && !unlogged, ok: answered && !wrong && !fail };
  const who = `release ${current} (live slot ${s.slot})`;
  if (wrong) problem(`what the site's visitors get (${url}) is not ${who}, which is current here: ${mask(wrong)}`);
  if (fail) problem(`nginx does not give the site's visitors what ${who} answers (${url}): ${mask(fail)}`);
  const older = reported(r, STATUS_KEYS.served_proof) === 'older';
  if (older) warn(`what the site's visitors get (${url}) cannot be proven to be ${who}: the enabled site ${env.layout.nginxSiteEnabled} was written by an older ops (its header, and no record of this one writing it), before sites kept nginx's check log ("${checkLog(env)}"); the next deploy or provision writes it with it (now: ${redeployLive(env, s, current)}, or ops provision ${env.name})`);
  else if (!proven) warn(`what the site's visitors get (${url}) cannot be proven to be ${who}: the enabled site ${env.layout.nginxSiteEnabled} does not keep nginx's check log ("${checkLog(env)}": a custom site template without {{logs}} with {{upstreams_include}}, or a site edited by hand; ${redeployLive(env, s, current)} writes it again)`);
  else if (unlogged) warn(`what the site's visitors get (${url}) cannot be proven to be ${who}: ${mask(unlogged)}`);
}

/**
 * Whether nginx sends the traffic to the live slot: each program's upstream in the upstreams file (a file edited by
 * hand, or left by an interrupted switch, sends it elsewhere once nginx reloads) and the slot nginx has loaded, as
 * /.ops/slot answers it (a reload that did not happen, or another slot's upstreams). A problem each, with the fix
 * (`redeploy`: the command that writes the files again, redeployLive). Nothing when the step did not report them.
 */
function nginxRoute(env: Target, slot: Slot, r: StepResult, redeploy: string, problem: (p: string) => void): void {
  const L = env.layout;
  const fix = `${redeploy} writes it again`;
  const lines = reportedAll(r, STATUS_KEYS.upstream);
  if (lines.includes('missing')) problem(`nginx's upstreams file ${L.nginxUpstreams} is missing: nginx cannot reload or restart (${fix})`);
  else if (lines.length) {
    const servers = lines.map((l) => l.split(' ')).map(([name = '', address = '']) => ({ name, address }));
    for (const program of Object.keys(env.config.programs)) {
      const want = `127.0.0.1:${env.port(program, slot)}`;
      const got = servers.filter((x) => x.name === L.nginxUpstream(program)).map((x) => x.address);
      if (got.length === 1 && got[0] === want) continue;
      const idle = `127.0.0.1:${env.port(program, otherSlot(slot))}`;
      const where = got.length ? got.map((a) => (a === idle ? `${a} (the previous slot, ${otherSlot(slot)})` : a)).join(', ') : 'nowhere (no upstream for it)';
      problem(`nginx's upstreams file ${L.nginxUpstreams} sends ${program} to ${where}, not to the live slot ${slot} (${want}): from the reload that loaded it (or from the next), the site serves something other than the live release (${fix})`);
    }
  }
  const loaded = reported(r, STATUS_KEYS.nginx_slot);
  if ((loaded === 'blue' || loaded === 'green') && loaded !== slot)
    problem(`nginx routes to slot ${loaded} (its /.ops/slot answers ${loaded}), not to the live slot ${slot}: the site serves the previous slot (reload nginx: systemctl reload nginx, when its upstreams file is right; else ${fix})`);
  // Over http the site answers its slot, over https something else: another enabled site takes the name on 443
  // (loaded first: nginx warns "conflicting server name"), and every visitor gets it.
  const viaHttps = reported(r, STATUS_KEYS.nginx_slot_https);
  if ((loaded === 'blue' || loaded === 'green') && viaHttps !== undefined && viaHttps !== 'blue' && viaHttps !== 'green')
    problem(`over https, where the site's visitors are, nginx answers /.ops/slot with ${JSON.stringify(maskSecretLike(oneLine(viaHttps)))}, not a slot (over http: ${loaded}): another enabled site takes ${siteName(env)} on port 443 (nginx -t warns "conflicting server name"); remove the site no longer used, or its server_name, then reload nginx`);
}

/**
 * With switch.keep_previous, whether the idle slot keeps warm the release a rollback would go to (`target`, the
 * status step's rollback_choice; '' when there is none): a warning when the slot has no program loaded (a start that
 * failed and could not start the release it held again, previousBack in switch.ts; a run interrupted during its
 * start; supervisor's file removed) or runs a release that never went live (`neverLive`: a
 * deploy interrupted during its start leaves it running). Either way a rollback still works, but starts `target`
 * cold (seconds and a health gate) instead of only moving traffic. (After a rollback, the slot runs the release
 * rolled back from: as expected, not warned about.)
 */
function warmth(env: Target, live: Slot, target: string, neverLive: string[], programs: ProgramState[], lock: LockInfo['state'], warn: (w: string) => void): void {
  const idle = otherSlot(live);
  const loaded = programs.filter((p) => !p.live);
  if (!loaded.length) {
    if (target) warn(`no release is kept warm on the previous slot (${idle}: no program of it is loaded in supervisor): a rollback to ${target} would start it cold (a failed start that could not start it again, or a run interrupted during its start, leaves the slot so; the next good deploy keeps the release it replaces warm again)`);
    return;
  }
  const stray = [...new Set(loaded.map((p) => p.release).filter((x): x is string => Boolean(x) && neverLive.includes(x!)))];
  if (stray.length)
    warn(`the previous slot (${idle}) runs ${stray.join(', ')}, a release that never went live (a deploy interrupted during its start leaves it running)${target ? `: a rollback would go to ${target} and start it cold there` : ''}; ${strayFix(env, lock)}`);
}

/**
 * How a release left running on the idle slot is stopped, the one way ops stops a slot (slotDown: its programs, and
 * what they left running outside supervisor: `supervisorctl stop` would leave a program that daemonised running, on the
 * slot's ports), by the lock's state: a stale lock's release stops what its run started and puts back what the slot
 * held; a run under way stops it itself if it does not put it live; else the next deploy or rollback, which starts there.
 */
function strayFix(env: Target, lock: LockInfo['state']): string {
  if (lock === 'stale') return `ops lock release ${env.name} stops it and puts back the release the slot held before (the run that started it is gone)`;
  if (lock === 'held') return 'the run holding the lock stops it when it ends, unless it puts it live';
  return `the next ops deploy ${env.name} (or ops rollback ${env.name}) stops it before it starts there, with what it left running outside supervisor (supervisorctl stop would leave a program that daemonised running)`;
}

/**
 * Turn the status step's reports into a HostStatus, with its problems and warnings. `rollbackTo`: the release a
 * rollback without --to takes this host to, the environment's one choice (environmentRollback, core/ops/rollback.ts;
 * its live release: none, a no-op); by default the host's own previous one (rollback_choice). `runnerTime`: the clock
 * the certificate's days left are counted by (default: the host's, as it reported it).
 */
export function parseHostStatus(env: Target, host: { name: string; address: string }, r: StepResult, redact?: (text: string) => string, rollbackTo?: string, runnerTime?: Date): HostStatus {
  const now = new Date(reported(r, STATUS_KEYS.now) ?? Date.now());
  const s: HostStatus = { host: host.name, address: host.address, reachable: true, problems: [], warnings: [] };
  const problem = (p: string) => s.problems.push(p);
  const warn = (w: string) => s.warnings.push(w);

  // Unknown (not reported) is not "never provisioned": only the marker's absence is.
  s.provisioned = provisionedIn(r) !== false;
  const current = reported(r, STATUS_KEYS.current) ?? '';
  const slot = reported(r, STATUS_KEYS.slot);
  s.slot = slot === 'blue' || slot === 'green' ? slot : undefined;
  if (current) {
    const { unreadable, ...release } = releaseSummary(current, reported(r, STATUS_KEYS.release_json) ?? '');
    if (unreadable) warn(`release ${current} has an unreadable release.json`);
    s.release = release;
  } else if (s.provisioned) problem(`no release is live (run: ops deploy ${env.name})`);

  const nginxTest = reportedAll(r, STATUS_KEYS.nginx_test);
  s.nginx = { running: reported(r, STATUS_KEYS.nginx) === 'running', configOk: reported(r, STATUS_KEYS.nginx_config) === 'ok', messages: nginxMessages(nginxTest) };
  if (!s.nginx.running) {
    // As a deploy and a rollback treat it (core/ops/host-state.ts, nginxMaskedError): the switch starts nginx, saying
    // so, unless the unit is masked (then they refuse).
    const unit = (reported(r, STATUS_KEYS.nginx) ?? '').split(' ')[1];
    problem(
      nginxMasked({ nginxStopped: unit })
        ? `nginx is not running, and its unit is masked: the site is down, and deploys and rollbacks refuse until it may run (sudo systemctl unmask${unit === 'masked-runtime' ? ' --runtime' : ''} nginx && sudo systemctl start nginx)`
        : `nginx is not running: the site is down (sudo systemctl start nginx; the next deploy's switch starts it too, saying so)${unit === 'disabled' ? '; it is not enabled at boot either (ops provision enables it)' : ''}`,
    );
  }
  bootUnits(env, r, s.nginx.running, reported(r, STATUS_KEYS.supervisor) === 'running', warn);
  const pidfile = reported(r, STATUS_KEYS.nginx_pidfile);
  if (pidfile) {
    const [how, master] = pidfile.split(' ');
    warn(`nginx runs (master pid ${master}), but its pid file /run/nginx.pid ${how === 'missing' ? 'is missing' : 'names another process'}: systemctl reload/stop nginx and nginx -s do not reach it (the next deploy writes it back)`);
  }
  if (!s.nginx.configOk) {
    const first = s.nginx.messages.find((m) => /\[(emerg|alert|crit)\]/.test(m)) ?? nginxTest.find((l) => !/test failed/.test(l)) ?? 'nginx -t failed';
    problem(`nginx configuration is invalid (nginx -t): ${first.replace(/^nginx: /, '')} — ${s.nginx.running ? 'nginx keeps serving its last valid configuration, but a reload or restart will fail' : 'nginx cannot start until it is fixed'}`);
  } else for (const m of s.nginx.messages) warn(`nginx -t: ${m}`);
  // Another file giving one of the site's names (the domain, an alias) a server block first: it takes those visitors (a deploy refuses it).
  const taken = reported(r, STATUS_KEYS.name_taken);
  if (taken) problem(`${taken} (fix: remove that server block or the name from its server_name, reload nginx; deploys refuse until then)`);
  // Another file reaching one slot itself: what it serves is not what the switch made live (a deploy refuses it).
  const pinned = slotPortsElsewhere(env, host.name, reportedAll(r, STATUS_KEYS.nginx_slot_port), 'deploys refuse until it is fixed');
  if (pinned) problem(`${pinned.message} (fix: ${pinned.hint})`);
  // A cache every site inherits from another file: visitors get the previous release's pages (a deploy refuses it).
  const cached = cachesInherited(env, host.name, reportedAll(r, STATUS_KEYS.nginx_cache), 'deploys refuse until it is fixed');
  if (cached) problem(`${cached.message} (fix: ${cached.hint})`);

  for (const f of reportedAll(r, STATUS_KEYS.host_changed))
    warn(`${f} was changed on this host since ops wrote it: it serves as changed until the next ${f.startsWith('/etc/supervisor/') ? "start of a release on that slot (deploy, rollback)" : f.startsWith('/etc/nginx/') ? 'provision or deploy' : 'provision'}, which replaces it, keeping what it holds in ${HOST_OWN_BACKUPS}${f}.<time> (make the change in the environment's settings to keep it)`);
  const code = Number(reported(r, STATUS_KEYS.site) || '0');
  // Older status steps did not report it: their sites were enabled by provision.
  s.site = { url: siteProbe(env).url, status: Number.isFinite(code) ? code : 0, enabled: reported(r, STATUS_KEYS.site_enabled) !== 'no' };
  if (current || s.provisioned) {
    if (!s.site.enabled) problem(`the nginx site of ${env.config.app} is not enabled (${env.layout.nginxSiteEnabled} is missing): ${s.site.url} is answered by another site, if any (run: ops provision ${env.name})`);
    else if (s.site.status === 0) problem(`the site does not answer through nginx (${s.site.url})`);
    else if (s.site.status >= 500) problem(`the site answers ${s.site.status} through nginx (${s.site.url})`);
  }

  // While a run holds the lock, a switch may be between its reload and `current`'s flip (a second or so): what
  // nginx routes to is then only worth a warning.
  if (current && s.slot) nginxRoute(env, s.slot, r, redeployLive(env, s, current), parseLock(r).state === 'held' ? (w) => warn(`${w} (a run holds the lock: a switch may be under way)`) : problem);
  if (current && s.slot) served(env, current, s, r, redact, parseLock(r).state === 'held' ? (w) => warn(`${w} (a run holds the lock: a switch may be under way)`) : problem, warn);

  const sup = reported(r, STATUS_KEYS.supervisor) ?? '';
  if (sup === 'running') {
    s.supervisor = { running: true, programs: programStates(env, parseProcessInfo(reported(r, STATUS_KEYS.supervisor_xml) ?? ''), s.slot) };
  } else {
    const error = sup.trim() || 'no answer';
    s.supervisor = { running: false, error, programs: [] };
    // rpc's own words name the socket already ("supervisor does not answer on /var/run/supervisor.sock (is it running?)")
    const boot = bootState(r, 'supervisor');
    const fix = `no program of ${env.config.app} runs, and deploys and rollbacks refuse until it does (sudo systemctl start supervisor)${boot !== undefined && !STARTS_AT_BOOT.has(boot) ? `; it is not enabled at boot either (sudo systemctl enable supervisor, or run: ops provision ${env.name})` : ''}`;
    problem(`${/^supervisor does not answer/.test(error) ? error : `supervisor does not answer on its socket: ${error}`}: ${fix}`);
  }
  if (s.supervisor.running) {
    // What actually runs, read from the processes: never trust `current` for it.
    const { procs, listeners } = parseProcReports(env, r);
    for (const p of s.supervisor.programs) {
      const proc = procs.find((x) => x.slot === p.slot && x.program === p.program && x.pid === p.pid);
      if (proc) Object.assign(p, { release: proc.release, cwd: proc.cwd.replace(/ \(deleted\)$/, ''), deleted: proc.cwd.endsWith(' (deleted)') });
      p.listeners = listeners.filter((x) => x.slot === p.slot && x.program === p.program).map((x) => ({ pid: x.pid, supervised: Boolean(x.supervised), release: x.release, command: x.command }));
      if (p.deleted) (p.live ? problem : warn)(`program ${p.program} (${p.live ? 'live' : 'previous'} slot ${p.slot}, pid ${p.pid}) runs from a directory that no longer exists: ${p.cwd}${p.live ? '' : ' (a rollback would serve deleted code)'}`);
    }
    if (current && s.slot) {
      for (const program of Object.keys(env.config.programs)) {
        const p = s.supervisor.programs.find((x) => x.live && x.program === program);
        // The fix the README gives ("When something is wrong"), with the words to type.
        const restart = `why: ops logs ${env.name} ${program}; then ${redeployLive(env, s, current)} starts the live commit again, or ops rollback ${env.name} goes back`;
        if (!p) problem(`program ${program} of the live slot (${s.slot}) is not loaded in supervisor (${restart})`);
        // STARTING lasts startsecs (3 s: core/steps/switch.ts) after a start that passed the health gate, then turns
        // RUNNING or BACKOFF: a status read right after a deploy says so without calling it a problem.
        else if (p.state !== 'RUNNING' && p.state !== 'STARTING') problem(`program ${program} (live slot ${s.slot}) is ${p.state}${p.description ? `: ${p.description}` : ''} (${restart})`);
        else if (p.state === 'STARTING' && p.release === undefined) warn(`program ${program} (live slot ${s.slot}) is STARTING`);
        else if (p.release !== undefined && p.release !== current)
          problem(`program ${program} (live slot ${s.slot}, pid ${p.pid}) runs release ${p.release || 'unknown'}, but current is ${current}: what serves is not what was deployed (${redeployLive(env, s, current)}, or ops rollback ${env.name})`);
        else restarted(env, p, reported(r, STATUS_KEYS.live_started), lastEnded(r, program), problem, warn);
        for (const l of p?.listeners ?? []) {
          if (!l.supervised) problem(`port ${env.port(program, s.slot)} of ${program} (live slot ${s.slot}) is answered by ${describeProcess(l)}, which supervisor did not start for it`);
          else if (l.release !== current) problem(`port ${env.port(program, s.slot)} of ${program} (live slot ${s.slot}) is answered by ${describeProcess(l)}, not by current (${current})`);
        }
      }
      for (const p of s.supervisor.programs.filter((x) => !x.live && ['FATAL', 'BACKOFF', 'EXITED', 'UNKNOWN'].includes(x.state)))
        warn(`program ${p.program} of the previous release (slot ${p.slot}) is ${p.state}: a rollback would restart it`);
      // The idle slot is kept warm (switch.keep_previous) so that a rollback only moves traffic: stopped, a rollback
      // starts it cold. With keep_previous false it is stopped on purpose after each switch.
      if (env.config.switch.keep_previous) {
        for (const p of s.supervisor.programs.filter((x) => !x.live && x.state === 'STOPPED'))
          warn(`program ${p.program} of the previous release (slot ${p.slot}) is STOPPED: a rollback would have to start it cold (it is not kept warm)`);
        warmth(env, s.slot, rollbackTo === undefined ? (reported(r, STATUS_KEYS.rollback_to) ?? '') : rollbackTo === current ? '' : rollbackTo, (reported(r, STATUS_KEYS.never_live) ?? '').split(' ').filter(Boolean), s.supervisor.programs, parseLock(r).state, warn);
      }
      // A process supervisor did not start, on a port of the idle slot: a rollback or the next deploy would find it there.
      const idle = otherSlot(s.slot);
      for (const l of leftoverListeners(listeners, idle))
        warn(`port ${env.port(l.program, idle)} of ${l.program} (previous slot ${idle}) is held by ${describeProcess(l)}, which a program of this environment left running outside supervisor: the next deploy or rollback on slot ${idle} stops it first`);
      for (const l of foreignListeners(listeners, idle))
        warn(`port ${env.port(l.program, idle)} of ${l.program} (previous slot ${idle}) is answered by ${describeProcess(l)}, which supervisor did not start for it: a rollback or the next deploy (both use slot ${idle}) would find the port taken`);
    }
  }

  const health = reported(r, STATUS_KEYS.health);
  if (health !== undefined && s.slot) {
    const whys = healthReasons(health, probes(env, s.slot), redact);
    s.health = probes(env, s.slot).map((probe) => {
      const [program, port, path] = probe.split(':');
      const ok = health === 'ok' || !health.split(/\s+/).includes(probe);
      const why = whys.get(probe);
      return { program: program!, ok, detail: ok ? 'ok' : why ? `${why} (GET 127.0.0.1:${port}${path}, no 2xx answer within 3s)` : `no 2xx answer on 127.0.0.1:${port}${path} within 3s` };
    });
    for (const h of s.health) if (!h.ok) problem(`health check of ${h.program} failed: ${h.detail}`);
    if (health !== 'ok' && s.health.every((h) => h.ok)) problem(`health checks failed: ${health}`);
    // Its likely cause, when the app's database does not answer from the host (or does: then past the connection).
    const db = parseDatabaseProbes(reportedAll(r, STATUS_KEYS.db_probe));
    if (db.length) {
      s.database = db;
      const down = db.map(databaseProblem).filter((x): x is string => Boolean(x));
      down.forEach(problem);
      if (!down.length) warn(databaseAnswers(db));
    }
  }

  // Expiry as the visitors' browsers judge it: by the runner's clock when given (a host's clock may be off: clockSkew).
  const cert = parseCerts(r, runnerTime ?? now)[0];
  if (cert) {
    const served = reported(r, STATUS_KEYS.served_serial);
    s.certificate = { ...cert, servedSerial: served ? served.toUpperCase() : undefined };
    const judged = judgeCertificate(env, cert, parseRenewal(r));
    judged.problems.forEach(problem);
    judged.warnings.forEach(warn);
    if (cert.state === 'ok' && cert.daysLeft !== undefined) {
      if (served && cert.serial && served.toUpperCase() !== cert.serial) warn(`nginx serves another certificate (serial ${served}) than ${cert.path} (serial ${cert.serial}) where the site's visitors are: ${SERVED_ELSE_FIX}`);
    }
  }

  // One entry per mount: df's lines for / and base_dir on one filesystem differ when it is written to between them.
  const mounts = new Set<string>();
  s.disk = reportedAll(r, STATUS_KEYS.disk).flatMap((v) => {
    const [mount, avail, size] = v.split(' ');
    if (mounts.has(mount!)) return [];
    mounts.add(mount!);
    const freeKb = Number(avail);
    const sizeKb = Number(size);
    return [{ mount: mount!, freeMb: Math.round(freeKb / 1024), sizeMb: Math.round(sizeKb / 1024), usedPercent: sizeKb > 0 ? Math.round(100 - (100 * freeKb) / sizeKb) : 0 }];
  });
  for (const d of s.disk) {
    const freePercent = 100 - d.usedPercent;
    if (freePercent < DISK_FAIL_PERCENT || d.freeMb < DISK_FAIL_MB) problem(`disk ${d.mount} is nearly full: ${d.freeMb} MB free (${d.usedPercent}% used)`);
    else if (freePercent < DISK_WARN_PERCENT) warn(`disk ${d.mount} is ${d.usedPercent}% used (${d.freeMb} MB free)`);
  }

  // The last readable line: one torn by a full disk or a crash, or edited by hand, hides no run.
  const last = reportedAll(r, STATUS_KEYS.last_run).map(parseAuditLine).filter((e) => e.time).at(-1);
  if (last) {
    s.lastRun = last;
    // Worth knowing, not a problem: what serves is checked above. Masked again: a line written before reasons were masked.
    const { operation, actor, time, result, message } = s.lastRun;
    if (result === 'failed' && time)
      warn(`the last run here failed: ${operation} by ${actor} at ${time}${message ? `: ${oneLine(maskSecretLike(message), LAST_RUN_SHOWN)}` : ''} (ops audit ${env.name} has it whole)`);
  }
  s.lock = parseLock(r);
  // A lock held by a live run is an operation under way (a deploy, a rollback): shown by formatStatus (who, since
  // when), not a problem, or the hourly status workflow would fail during every deploy. One whose run is gone is.
  if (s.lock.state === 'held') warn(`locked by ${describeHolder(s.lock.holder)}: an operation is under way (what this status read may be mid-change)${describeQueue(s.lock)}`);
  // A holder the login cannot see (hidepid, no sudo): neither under way nor gone for sure.
  else if (s.lock.state === 'unknown') warn(`locked by ${describeHolder(s.lock.holder)}${unseenReason(s.lock)}${describeQueue(s.lock)}`);
  else if (s.lock.state === 'stale') problem(`stale lock left by ${describeHolder(s.lock.holder)}, which is gone${staleReason(s.lock)} (ops lock release ${env.name} stops what it left running and frees it)`);
  // Never provisioned: that alone is the problem (the one rule, unprovisionedNote); what else is missing there (nothing
  // live, nginx, its site, supervisord) is only a symptom of it, not more problems to fix one by one.
  if (!s.provisioned) s.problems = [unprovisionedNote(undefined, env)];
  return s;
}

/**
 * Seconds a live program may start after its slot's supervisor file's time and still be its first start for the
 * release: startSlot touches the file just before supervisor starts the group (and previous_back writes it so).
 */
const FIRST_START_SECONDS = 5;

/**
 * Shell reporting `live_ended` for each program of SLOT: the last line of supervisord's log (`$sd_log`, readLog's
 * answer) that says how the program's process ended: supervisor/process.py, finish(), logs `exited: NAME (...)` when
 * it ended on its own (`; not expected` unless its exit code is in exitcodes) and `stopped: NAME (...)` when it was
 * asked to (supervisorctl stop or restart, a deploy), NAME being the process name `<group>-<program>` (slotConfig).
 */
function liveEnded(env: Target, slot: Slot): string {
  const lines = Object.keys(env.config.programs).map((program) => {
    const name = `${env.layout.supervisorGroup(slot)}-${program}`;
    return `line=$(printf '%s\n' "$sd_log" | grep -F -e ${quote(` exited: ${name} (`)} -e ${quote(` stopped: ${name} (`)} | tail -n 1) || line=""; [ -z "$line" ] || ops_report ${STATUS_KEYS.live_ended} ${quote(`${program}\t`)}"$line"`;
  });
  return lines.join('; ') || ':';
}

/** How PROGRAM's live process last ended as supervisord logged it (`live_ended`): 'exited' on its own, 'stopped' when asked to, with supervisor's words; undefined when its log's tail does not say. */
function lastEnded(r: StepResult, program: string): { how: 'exited' | 'stopped'; detail: string } | undefined {
  const line = reportedAll(r, STATUS_KEYS.live_ended).filter((l) => l.startsWith(`${program}\t`)).pop();
  const m = line && / (exited|stopped): \S+ \((.*)\)\s*$/.exec(line.slice(program.length + 1).replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&'));
  return m ? { how: m[1] as 'exited' | 'stopped', detail: m[2]! } : undefined;
}

/**
 * A live program that supervisor started again since its release's start (`liveStarted`, the status step's
 * `live_started`: the slot's file written, supervisord started, epochs) and not long ago, after its process ended on
 * its own (`ended`, from supervisord's log): it exits and supervisor restarts it (autorestart), which a health check
 * passed a few seconds after its start never saw, and a read of its state alone (RUNNING again) does not show. A
 * problem for its first minute of uptime (a crash loop is mostly seen so), a warning for ten. Nothing when it was
 * started again after a stop asked of supervisor (a restart by hand), without the report (an older host's status) or
 * its start time. When the log's tail does not say how it ended (rotated, or quiet loglevel), a restart is taken as a
 * crash and said to be maybe one by hand.
 */
function restarted(env: Target, p: ProgramState, liveStarted: string | undefined, ended: ReturnType<typeof lastEnded>, problem: (p: string) => void, warn: (w: string) => void): void {
  const [file, supervisord] = (liveStarted ?? '').split(' ').map(Number);
  if (!file || !supervisord || p.started === undefined || p.seconds === undefined) return;
  if (p.started <= Math.max(file, supervisord) + FIRST_START_SECONDS || p.seconds >= 600) return;
  if (ended?.how === 'stopped') return;
  const why = ended ? `after its process exited (supervisor: ${ended.detail})` : 'supervisor\'s log does not say why (a restart by hand reads the same for 10 minutes)';
  const line = `program ${p.program} (live slot ${p.slot}${p.pid ? `, pid ${p.pid}` : ''}) was started again ${p.seconds}s ago, ${p.started - file}s after its release's start, ${why}: it exits and supervisor restarts it (a crash after its health check passed, at start: see ops logs ${env.name})`;
  (p.seconds < 60 ? problem : warn)(line);
}
