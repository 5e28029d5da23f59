// Release steps: what a deploy runs on a host before the switch. Code comes from the host's bare mirror
// (fed by packs from the runner), each release is a new directory, and the old release still serves until the
// switch. Dependencies, the build, migrations and hooks run as the app user: app.ts.
import type { Target } from '../target.ts';
import { assetDirs } from '../config/environment.ts';
import type { Slot } from '../layout.ts';
import { reportKeys, type Step } from '../remote/types.ts';
import { quote, word, type HostVariable } from '../shell.ts';
import { certificateNames, certificatePaths, inheritedCacheLinesShell, slotPortLinesShell } from './nginx-config.ts';
import { isDefaultServer } from '../config/siblings.ts';
import { gateSeconds, nameClaims, nginxServed } from './nginx-gate.ts';
import { HISTORY_KEPT_LINES, RELEASE_DIR_PATTERN, historyFunctions } from './history.ts';
import { forEachFingerprintRecord, liveFilesShell, probes, programPorts, supervisordDown } from './switch.ts';
import { b64, hostGit } from './script.ts';
import { diskReport } from './facts.ts';
import { dependencyRuntimes, reportProvisioned } from './system.ts';
import { CERT_FUNCTIONS, IDENTITY_FUNCTIONS, MASK_FUNCTIONS, maskLibrary, probeLibrary, SUPERVISOR_FUNCTIONS, SYSTEM_FUNCTIONS, treeLibrary } from './libraries.ts';
import { keepMasks } from './masks.ts';

/** git on the host's bare mirror (`mirror`), reading no configuration but the mirror's own (hostGit). */
export function mirrorGit(mirror: string): string {
  return `${hostGit()} --git-dir=${quote(mirror)}`;
}

/** What the release steps report. `deployState`: `now` (host clock, Unix seconds), PROVISIONED_KEYS, `current`, `slot`, `live_sha` (the live release's commit, '' when none), `certificate` (yes|no), `cert_lacks` (the site's names, certificateNames, that certificate does not name, space-separated: cert_lacks; with `certificate` yes), `known`/`has` (commits the mirror has), `shallow` (commits the mirror holds without their history: mirrorShallow), `incomplete` (receivePack: a commit or pack the mirror could not take whole), `nginx_invalid` (nginx -t's lines when it fails, asked with `shas` or `nginx`: nginxReadiness), `nginx_slot_port` (lines of nginx's other files naming a slot's port at a local address, asked with `shas` or `nginx`: slotPortLinesShell), `nginx_taken` (another server block answers the site's visitors, what answered and the fix: nginxServed's proof on the live slot, asked with `shas` or `nginx`), `runtime_missing` (a runtime the dependency sets are made with, dependencyRuntimes, not on the host: asked with `shas`), `supervisor_down` (supervisord is not running, asked with `shas` or `supervisor`), `lfs_has` (LFS objects stored), `deps_has` (complete dependency sets under shared/deps, asked with `shas` or `deps`), `live_health` (`ok` or why not), `live_changed` (something is live that was not deployed with this deploy's fingerprint: `settings`, the record of the live release holds another, or what runs it is not what these settings render: its slot's supervisor file, nginx's site or upstreams, liveFilesShell; `unrecorded`, there is none for it this ops can compare: an older ops's fingerprint alone (of the settings of its day), deployed before records were kept, its .env a link to the shared one of older versions, or the records are missing or damaged; `files`, the commit's files of the live release are not those it went live with, the first of them in `live_changed_file`), `platform` (`<os> <arch> python <v|none> node <v|none>`, when asked), `rollback_previous` (asked with `rollback`, when a release is live: `VERDICT ID`, what a rollback without --to would go back to from it on this host, rollback_previous in sh/history.sh), with FACTS_KEYS.disk and the history's LIBRARY_KEYS. `pruneReleases`: `pruned`, `kept_running` (release ids), `pruned_deps` (dependency set names), `pruned_cache` (`<MB> <cache directory>`: a package cache emptied, packageCaches), `stale` (staleProcesses). `carryAssets`: `carried` (files copied), `unhashed` (servedNamesHashed: a served directory's files that changed under their names, one line per directory). */
export const RELEASE_KEYS = reportKeys('now', 'current', 'slot', 'live_sha', 'certificate', 'cert_lacks', 'known', 'shallow', 'incomplete', 'has', 'lfs_has', 'deps_has', 'live_health', 'live_changed', 'live_changed_file', 'platform', 'nginx_invalid', 'nginx_slot_port', 'nginx_cache', 'supervisor_down', 'pruned', 'kept_running', 'pruned_deps', 'pruned_cache', 'carried', 'unhashed', 'rollback_previous', 'stale', 'nginx_taken', 'runtime_missing');

export interface ReleaseMeta {
  id: string;
  sha: string;
  ref: string;
  environment: string;
  actor: string;
  time: string;
  run: string;
  deps: { python: string; node: string };
  /** Submodules put in the release (path, commit): what `git archive` leaves out. */
  submodules?: { path: string; sha: string }[];
  /** Git LFS files whose content replaced their pointer (path, sha256 oid). */
  lfs?: { path: string; oid: string }[];
}

/** What `ops releases` and `ops status` show of a release. */
export type ReleaseSummary = Pick<ReleaseMeta, 'id' | 'sha' | 'ref' | 'time' | 'actor' | 'run'>;

/**
 * A release's summary from its release.json text: a field the file lacks is empty; an unreadable file (cut
 * short, edited by hand) gives empty fields and `unreadable`, so one bad release does not hide the others.
 */
export function releaseSummary(id: string, json: string): ReleaseSummary & { unreadable?: true } {
  let meta: Partial<ReleaseMeta> = {};
  let unreadable: true | undefined;
  try {
    meta = JSON.parse(json || '{}') as Partial<ReleaseMeta>;
  } catch {
    unreadable = true;
  }
  return { id, sha: meta.sha ?? '', ref: meta.ref ?? '', time: meta.time ?? '', actor: meta.actor ?? '', run: meta.run ?? '', ...(unreadable && { unreadable }) };
}

/** Sortable id holding the sha: 20261125T140501Z-0123456789ab. */
export function releaseId(sha: string, now = new Date()): string {
  const t = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${t}-${sha.slice(0, 12)}`;
}

/**
 * One look at the host before a deploy or rollback (run with the lock, in the same step): provisioned?, the
 * host's clock, what is live (`current`, its slot, and its commit: `live_sha`), which releases exist and where
 * each stands in the history (written once, derived, on a host that has none), what each slot runs, whether
 * the certificate is there, and what the host is (`platform`: OS release, architecture, runtime versions, for
 * sharing built releases between hosts).
 * - `shas` (a deploy about to send code): also what sending and building need: free space and inodes, which of
 *   `shas` (and `lfs` oids) the host has, its mirror's commits, its complete dependency sets; and what in nginx
 *   the switch would fail on (nginxReadiness: nginx -t, another file naming a slot's port, another server block
 *   taking the site's visitors).
 * - `fingerprint` (deployFingerprint; the switch records each release's in .ops/fingerprint with the sums of the
 *   files it wrote: fingerprintRecords): `live_changed`
 *   when something is live that was not deployed with it (a secret or setting changed since, or a release with no
 *   record). A release reads its own .env and environ (layout), so its record says what it runs with; one whose
 *   .env is a link (to the shared .env of releases made before releases had their own) counts as having no record.
 *   Its programs and nginx are another matter: a rollback starts the release it puts live, and renders nginx, with
 *   the settings of its own day, so the record holds only when the live slot's supervisor file and nginx's site and
 *   upstreams are also those these settings render (liveFilesShell), and its own `.env` and environ still the
 *   bytes its deploy wrote (their sha256 against the record's, `dotenvSums`: edited on the host or rewritten by
 *   the app, they are not what the record says; a record written before records had sums is not compared);
 *   else `live_changed settings`. Last, the commit's files the release went live with (layout.treeLive, written by
 *   the switch: tree.sh), each still of the size and mtime it had then, else `live_changed files` and the first
 *   changed or gone in `live_changed_file` (a release switched to by an older version has no such record: not compared).
 *   Alone: a dry run's read.
 * - `deps` (a dry run's read; a deploy's with `shas` has it too): its complete dependency sets (`deps_has`), so
 *   that the plan says a set is reused only where the host has it.
 * - `supervisor` (a rollback's read; a deploy's with `shas` has it too): `supervisor_down` when supervisord is not running.
 * - `ports` (a rollback's read): who holds the ports of the slot a rollback starts on (the other than the live one;
 *   green when none is recorded, as rollbackStep chooses), as a deploy's read reports them for its slot (slotPorts),
 *   and REPORT_SLOT_FOREIGN set for what follows in the lock step (rollbackStep refuses on it).
 * - `nginx` (a rollback's read; a deploy's with `shas` has it too): `nginx_stopped` when no nginx runs, with what
 *   `systemctl is-enabled nginx` says (nginxStoppedReport), left in REPORT_NGINX_STOPPED for what follows in the
 *   lock step (a one-host rollback refuses a masked unit on it); and what in nginx the switch would fail on, as a
 *   deploy's read asks it (nginxReadiness: `nginx_invalid`, `nginx_slot_port`, `nginx_taken`; REPORT_NGINX_UNREADY).
 * - `commit` with `fingerprint` (a deploy that is a no-op when that commit is live, deployed with that
 *   fingerprint): when the live release is that commit with that fingerprint, the live check runs (its health checks answer, and what answers is the process supervisor started for the
 *   release `current` names: live_verdict) and the step reports `live_health` and ends there: the no-op
 *   needs nothing more, and a live commit that is not healthy fails the deploy (or --force deploys, which
 *   does not pass `commit`). The commit live with another fingerprint reads on: the deploy goes on. Otherwise no
 *   live check runs.
 * Commands that start a process are few on the no-op path (it runs on every deploy of the live commit): the
 * clock, the link and the files are read by bash builtins.
 */
export function deployState(env: Target, shas?: string[], options: { lfs?: string[]; commit?: string; fingerprint?: string; platform?: boolean; deps?: boolean; supervisor?: boolean; ports?: boolean; nginx?: boolean; rollback?: boolean } = {}): Step {
  const L = env.layout;
  const cert = certificatePaths(env);
  const live = (slot: Slot) => `live_verdict "$cur_id" "$cur" ${quote(L.supervisorGroup(slot))} 3 0.2 ${probes(env, slot).map(quote).join(' ')}`;
  // Was the live release deployed with what this deploy gives it (deployFingerprint, recorded by the switch)?
  const { fingerprint } = options;
  const recorded =
    fingerprint !== undefined
      ? String.raw`live_same=no; live_fingerprint=""; live_recorded=no
${treeLibrary(env)}
# A release whose .env is a link reads the shared one an older version of ops wrote: not its record's.
if [ -n "$cur_id" ] && [ ! -L "${L.dotenv('$cur')}" ]; then
  { ${forEachFingerprintRecord(env, 'if [ "$id" = "$cur_id" ]; then live_fingerprint=$fp; live_recorded=yes; fi')}; } 2>/dev/null || true
fi
# A record is the fingerprint, then (since records have them) the sums of the .env and environ its deploy wrote.
live_sums=""; if [[ $live_fingerprint == *" "* ]]; then live_sums=${'$'}{live_fingerprint#* }; live_fingerprint=${'$'}{live_fingerprint%% *}; fi
# (Then, since records have it, the settings alone: not compared here, the fingerprint holds them.)
sums_only='^([^ ]+ [^ ]+) '; if [[ $live_sums =~ $sums_only ]]; then live_sums=${'$'}{BASH_REMATCH[1]}; fi
if [ "$live_recorded" = yes ] && [ "$live_fingerprint" = ${quote(fingerprint)} ]; then
# Its record says what its deploy gave it; what runs is also the slot's and nginx's files (a rollback renders its
# own). Not indented: the files' text is quoted in it.
${liveFilesShell(env)}
  # And the release's own .env and environ, as its deploy wrote them (one process; a record written before records
  # had sums has none to compare).
  if [ "$live_files" = yes ] && [ -n "$live_sums" ]; then
    if sums=$(sha256sum -- "${L.dotenv('$cur')}" "${L.environ('$cur')}" 2>/dev/null); then
      mapfile -t sums <<< "$sums"
      [ "${'$'}{#sums[@]}" = 2 ] && [ "${'$'}{sums[0]%% *} ${'$'}{sums[1]%% *}" = "$live_sums" ] || live_files=no
    else live_files=no; fi
  fi
  # And the commit's files it went live with, still as they were then (tree.sh: a stat each, no hashing; a release
  # its deploy recorded none of, made or switched by an older version, is not compared).
  live_why=settings
  release_record "$cur_id"
  if [ "$live_files" = yes ] && [ -f "${L.treeLive('$release_record')}" ]; then
    live_tree=$(tree_changed "$cur" "$release_record" 2>/dev/null) || true # head ends the pipe at the first: comm may get SIGPIPE
    if [ -n "$live_tree" ]; then live_files=no; live_why=files; live_tree=${'$'}{live_tree//[^[:print:]]/?}; ops_report ${RELEASE_KEYS.live_changed_file} "${'$'}{live_tree:0:200}"; fi
  fi
  if [ "$live_files" = yes ]; then live_same=yes; elif [ -n "$live_sha" ]; then ops_report ${RELEASE_KEYS.live_changed} "$live_why"; fi
# Another fingerprint in a record of today's form (with sums): other settings or .env. In the older form (the
# fingerprint alone), it was computed by an older ops over the settings of its day (new settings, their defaults
# filled in, change every fingerprint): not comparable with this one, so no record of what it was deployed with.
elif [ -n "$live_sha" ] && [ "$live_recorded" = yes ] && [ -n "$live_sums" ]; then ops_report ${RELEASE_KEYS.live_changed} settings
elif [ -n "$live_sha" ]; then ops_report ${RELEASE_KEYS.live_changed} unrecorded; fi
`
      : '';
  const noop = options.commit
    ? String.raw`${probeLibrary(env)}
${SUPERVISOR_FUNCTIONS}
${IDENTITY_FUNCTIONS}
# The commit deployed is live, deployed with what this deploy gives it: is it healthy and what serves? That is
# all a no-op needs (or a deploy refuses). Live with something else (.env, settings): the deploy goes on.
if [ -n "$live_sha" ] && [ "$live_sha" = ${quote(options.commit)} ] && [ "${'$'}{live_same:-no}" = yes ]; then
  live_health=$(case "$slot" in
    blue) ${live('blue')} ;;
    green) ${live('green')} ;;
  esac 2>/dev/null)
  ops_report ${RELEASE_KEYS.live_health} "$live_health"
  state_done=1
fi
`
    : '';
  const supervisorReport = `if ${supervisordDown()}; then ops_report ${RELEASE_KEYS.supervisor_down} 1; fi`;
  // The complete dependency sets (bash builtins alone: one glob).
  const depsReport = String.raw`for d in ${quote(L.deps)}/*/; do if [ -f "$d.complete" ]; then d=${'$'}{d%/}; ops_report ${RELEASE_KEYS.deps_has} "${'$'}{d##*/}"; fi; done`;
  const code = shas
    ? String.raw`${diskReport(L.base)}
if [ -d ${quote(L.mirror)} ]; then
  ${mirrorGit(L.mirror)} for-each-ref --format='%(objectname)' refs/ops/ | sort -u | while read -r s; do ops_report ${RELEASE_KEYS.known} "$s"; done
${mirrorShallow(L.mirror)}
  wanted_shas=(${shas.map(quote).join(' ')})
  for s in "${'$'}{wanted_shas[@]}"; do ${mirrorGit(L.mirror)} cat-file -e "$s^{commit}" 2>/dev/null && ops_report ${RELEASE_KEYS.has} "$s"; done
  wanted_oids=(${(options.lfs ?? []).map(quote).join(' ')})
  for o in "${'$'}{wanted_oids[@]}"; do [ -f ${quote(L.lfsStore)}/"${'$'}{o:0:2}/${'$'}{o:2:2}/$o" ] && ops_report ${RELEASE_KEYS.lfs_has} "$o"; done
  true
fi
${depsReport}
# The runtimes the dependency sets are made with, as provision installs them for these settings (bash builtins).
for r in ${dependencyRuntimes(env).map(quote).join(' ')}; do [ -x "$r" ] || ops_report ${RELEASE_KEYS.runtime_missing} "$r"; done
# Is supervisord running? The start needs it (else it fails after the build and migrations), and without it no
# program of the live release runs either.
${supervisorReport}
${nginxReadiness(env)}
${switchPreflight(env, !options.commit)}
`
    : '';
  return {
    name: 'state',
    as: 'root',
    // A deploy's or rollback's read asks nginx as the switch does (nginxServed): its bounded tries on top.
    timeout: 30 + (shas || options.nginx ? gateSeconds(env) : 0),
    quiet: true,
    script: String.raw`${historyFunctions(env)}${cert ? `\n${CERT_FUNCTIONS}` : ''}
cur=$(readlink ${quote(L.current)} 2>/dev/null || true)
cur_id=${'$'}{cur##*/}
slot=""; if [ -f ${quote(L.slotFile)} ]; then read -r slot < ${quote(L.slotFile)} || true; fi
# The live commit, as release_reports reads each release's (its record's REVISION: release_sha); a current that is
# not a release directory has none. Read by what follows this script in the lock step too (a no-op deploy's finish).
live_sha=""
if [[ $cur_id =~ ${RELEASE_DIR_PATTERN} ]]; then release_sha "$cur_id"; live_sha=$release_sha; fi
printf -v now '%(%s)T' -1
ops_report ${RELEASE_KEYS.now} "$now"
${reportProvisioned(env)}
ops_report ${RELEASE_KEYS.current} "$cur_id"
ops_report ${RELEASE_KEYS.slot} "$slot"
ops_report ${RELEASE_KEYS.live_sha} "$live_sha"
# shellcheck disable=SC2034 # live_health is read by what follows this script in the lock step (a no-op deploy's finish)
live_health=""
state_done=""
${recorded}${noop}if [ -z "$state_done" ]; then
${cert ? `ops_report ${RELEASE_KEYS.certificate} "$([ -s ${quote(cert.cert)} ] && echo yes || echo no)"\nops_report ${RELEASE_KEYS.cert_lacks} "$(cert_lacks ${quote(cert.cert)} ${certificateNames(env).map(quote).join(' ')})"\n` : ''}if [ -d ${quote(L.state)} ]; then history_init; fi
release_reports
slot_releases
${code}${options.supervisor && !shas ? `${supervisorReport}\n` : ''}${options.ports && !shas ? `${slotPorts(env, 'green', !options.commit)}\n` : ''}${options.nginx && !shas ? `${SYSTEM_FUNCTIONS}\n${nginxStoppedReport()}\n${nginxReadiness(env)}\n` : ''}${options.platform ? `${platformReport(env)}\n` : ''}${options.deps && !shas ? `${depsReport}\n` : ''}${options.rollback ? `if [ -n "$cur_id" ]; then ops_report ${RELEASE_KEYS.rollback_previous} "$(rollback_previous "$cur_id")"; fi\n` : ''}fi`,
  };
}

/**
 * Whether a host's state read found no nginx running and its unit masked, for good (`systemctl mask`: `masked`) or
 * until the next boot (`systemctl mask --runtime`: `masked-runtime`): systemd starts neither (systemctl(1),
 * is-enabled's table of states). What nginxMaskedError refuses.
 */
export function nginxMasked(state: { nginxStopped?: string }): boolean {
  return (NGINX_MASKED as readonly (string | undefined)[]).includes(state.nginxStopped);
}

/** What `systemctl is-enabled nginx` says of a masked unit (nginxMasked; the shell's test: nginxMaskedTest). */
const NGINX_MASKED = ['masked', 'masked-runtime'] as const;

/** Bash test, true when the shell variable `name` holds a masked unit's is-enabled state (nginxMasked's, on the host). */
export function nginxMaskedTest(name: string): string {
  return `[[ ${NGINX_MASKED.map((m) => `\${${name}:-} == ${m}`).join(' || ')} ]]`;
}

/**
 * Shell reporting what in nginx would fail a switch on this host, for the reads before a deploy (with `shas`) or a
 * rollback (with `nginx`) changes anything, one `nginx -T` for the first two (it tests as `nginx -t` does, then prints
 * every file it read):
 * - `nginx_invalid`: its lines when the test fails (nginxBlocker judges them);
 * - `nginx_slot_port`: lines of another file that names a slot's port (slotPortLinesShell; slotPortsElsewhere judges them);
 * - `nginx_cache`: the lines of a response cache the site answers through from another file, under a key that does
 *   not name the live release (inheritedCacheLinesShell, which judges them: cachesInherited says so);
 * - `nginx_taken`: another server block answers the site's visitors (nginxServed's proof on the live slot,
 *   `$cur_id` and `$slot` as deployState sets them), only while the site nginx has serves the name asked for (a
 *   domain changed since is the switch's to write: asked for the new name, the site's own block would not answer it yet);
 *   or a file loaded before the site gives one of its names (the domain, an alias) a server block (nameClaims).
 * Sets REPORT_NGINX_UNREADY, for what follows in the same step (a one-host rollback refuses on it): non-empty when
 * one of them refuses: the test fails on a file the switch does not write, or on a second `default_server` for
 * the site's address when the site is the default server (the switch writes it so again: nginxBlocker's rule);
 * a file names a slot's port; a cache from another file would answer the previous release's pages; another block answers.
 */
function nginxReadiness(env: Target): string {
  const L = env.layout;
  const own = [L.nginxSite, L.nginxSiteEnabled, L.nginxUpstreams].map(quote).join('|');
  return String.raw`# Can the switch reload nginx? A file it does not write that nginx refuses would fail it after the start.
REPORT_NGINX_UNREADY=""; nginx_out=""
if ! nginx_all=$(nginx -T 2>&1); then
  nginx_out=$nginx_all; nginx_all=""
  while IFS= read -r line; do [ -z "$line" ] || ops_report ${RELEASE_KEYS.nginx_invalid} "$line"; done <<< "$nginx_out"
  nginx_file=""; if [[ $nginx_out =~ \ in\ (/[^ ]+):[0-9]+ ]]; then nginx_file=${'$'}{BASH_REMATCH[1]}; fi
  case "$nginx_file" in
    ${own}) ${isDefaultServer(env) ? `[[ $nginx_out != *"a duplicate default server"* ]] || REPORT_NGINX_UNREADY=invalid` : ': the switch rewrites it'} ;;
    *) REPORT_NGINX_UNREADY=invalid ;;
  esac
fi
# Does another file nginx reads send requests to a slot's port itself? It would reach that slot whatever the switch does.
${slotPortLinesShell(env, `printf '%s\n' "$nginx_all"`)}
if [ -n "$nginx_pinned" ]; then REPORT_NGINX_UNREADY=pinned; while IFS= read -r line; do ops_report ${RELEASE_KEYS.nginx_slot_port} "$line"; done <<< "$nginx_pinned"; fi
# Does another file turn on a response cache for every site? The site would answer the previous release's pages.
${inheritedCacheLinesShell(env, `printf '%s\n' "$nginx_all"`)}
if [ -n "$nginx_cached" ]; then REPORT_NGINX_UNREADY=cached; while IFS= read -r line; do ops_report ${RELEASE_KEYS.nginx_cache} "$line"; done <<< "$nginx_cached"; fi
# Does another server block take the site's visitors (listen <address>:80 in another file, a default_server, the same
# server_name loaded first)? Asked as the switch asks (nginxServed, on the live slot): the switch would fail on it.
if [ -n "$cur_id" ] && grep -qsF -- ${quote(`server_name ${env.config.domain ?? '_'};`)} ${quote(L.nginxSiteEnabled)}; then
live_slot=$slot
${nginxServed(env, { slot: 'live', tls: 'if-certificate', proves: 'if-site-logs' })}
[ -z "$gate_taken" ] || { REPORT_NGINX_UNREADY=taken; ops_report ${RELEASE_KEYS.nginx_taken} "$gate_taken (asked at $gate_url)"; }
fi
# A name the site is about to answer too (an alias added, the first deploy): the switch would find it taken, after the build.
${nameClaims(env, 'nginx_all', 'nginx_claimed')}
if [ -n "$nginx_claimed" ] && [ "$REPORT_NGINX_UNREADY" != taken ]; then REPORT_NGINX_UNREADY=taken; ops_report ${RELEASE_KEYS.nginx_taken} "$nginx_claimed"; fi
# shellcheck disable=SC2034 # read by what follows in the lock step (a one-host rollback's finish)
: "$REPORT_NGINX_UNREADY"`;
}

/** What deployState reports for the start and the switch (switchPreflight): `nginx_stopped` (no nginx master runs: what `systemctl is-enabled nginx` says, `unknown` without systemd). */
export const PREFLIGHT_KEYS = reportKeys('nginx_stopped');

/**
 * Shell reporting, for a deploy about to build, what its start and switch would meet on the host:
 * - who holds the ports of the slot it starts on (slotPorts: the other slot than the live one; blue when none is);
 * - whether nginx runs (nginx_master, as ops status looks): the switch's reload starts it when it does not
 *   (`nginx_stopped`, with whether the unit is masked, when it could not).
 * `libraries`: the supervisor and identity functions are not in the script yet.
 */
function switchPreflight(env: Target, libraries: boolean): string {
  return String.raw`${SYSTEM_FUNCTIONS}
${slotPorts(env, 'blue', libraries)}
${nginxStoppedReport()}`;
}

/**
 * Shell reporting whether nginx runs (nginx_master, as ops status looks): when it does not, `nginx_stopped` with
 * what `systemctl is-enabled nginx` says (`masked`: the switch's reload could not start it), also left in
 * REPORT_NGINX_STOPPED ('' when nginx runs) for what follows in the same step. Needs SYSTEM_FUNCTIONS.
 */
function nginxStoppedReport(): string {
  return String.raw`# shellcheck disable=SC2034 # read by what follows in the lock step (a one-host rollback's finish)
REPORT_NGINX_STOPPED=""
nginx_master >/dev/null || { REPORT_NGINX_STOPPED=$(nginx_unit); ops_report ${PREFLIGHT_KEYS.nginx_stopped} "$REPORT_NGINX_STOPPED"; }`;
}

/**
 * Shell reporting who holds the ports of the slot an operation would start on: the other slot than the live one
 * (the host's `slot`), `whenNone` when no live slot is recorded (a deploy starts on blue; a rollback, which takes
 * blue as live then, on green). report_slot's `proc` and `listener` lines, as ops status reads them (parseProcReports):
 * a listener neither in the tree of that slot's own supervisor process nor left by our programs outside supervisor
 * (foreignListeners) would make the start fail; the slot's own processes (the previous release kept warm, a failed
 * start) the start replaces or reuses, and what our programs left running there (report_slot's "own") it stops first. Their number is
 * left in REPORT_SLOT_FOREIGN (0 when none) for what follows in the same step. Nothing without ss.
 * `libraries`: the supervisor and identity functions are not in the script yet.
 */
export function slotPorts(env: Target, whenNone: Slot, libraries: boolean): string {
  const L = env.layout;
  const report = (slot: Slot) => `report_slot ${slot} ${quote(L.supervisorGroup(slot))} ${quote(env.appUser)} ${quote(L.releases)} ${programPorts(env, slot).map(quote).join(' ')}`;
  const other: Slot = whenNone === 'blue' ? 'green' : 'blue';
  return String.raw`${libraries ? `${SUPERVISOR_FUNCTIONS}
${maskLibrary(env)}
${IDENTITY_FUNCTIONS}
` : ''}# Who listens on the ports the release would start on (one ss for them all).
REPORT_SLOT_FOREIGN=0
if command -v ss >/dev/null; then
  LISTEN_TABLE=$(ss -Htlnp 2>/dev/null)
  case "$slot" in
    ${whenNone}) ${report(other)} ;;
    *) ${report(whenNone)} ;;
  esac
  unset LISTEN_TABLE
fi`;
}

/**
 * Shell for the end of a deploy's lock step, after deployState with `commit` (which set cur_id, live_sha and
 * live_health): when `sha` is live and healthy there, `done` runs (the no-op's audit line and the unlock, rendered
 * by the operation with the host's `cur_id` as release and previous: core/ops/locked.ts), so a no-op is one round
 * trip; otherwise nothing, and the deploy goes on.
 */
export function noopFinish(sha: string, done: string): string {
  return String.raw`if [ -n "$live_sha" ] && [ "$live_sha" = ${quote(sha)} ] && [ "$live_health" = ok ] && [[ $cur_id =~ ${RELEASE_DIR_PATTERN} ]]; then
${done}
fi`;
}

/**
 * What makes a built release (its dependency sets: compiled extensions, the venv's interpreter) valid on a
 * host: `@ops platform <os id> <version id> <machine> python <version> node <version>`. Hosts that report the
 * same line can run each other's builds (same absolute paths, so venvs stay valid). A runtime the host lacks
 * (or that fails to start) reads `none`, so the line is always one line of these fields.
 */
export function platformReport(env: Target): string {
  const paths = env.runtime;
  return String.raw`# shellcheck source=/dev/null # the host's own file, not ours to follow
platform_os=$(. /etc/os-release 2>/dev/null && echo "${'$'}{ID:-?} ${'$'}{VERSION_ID:-?}" || echo "? ?")
# A runtime missing (or failing) reads "none": its error text must not become part of the line.
platform_python=$(${quote(paths.python)} -V 2>/dev/null) && platform_python=${'$'}{platform_python##* } || platform_python=none
platform_node=$(${quote(paths.node)} --version 2>/dev/null) || platform_node=none
ops_report ${RELEASE_KEYS.platform} "$platform_os $(uname -m) python ${'$'}{platform_python:-none} node ${'$'}{platform_node:-none}"`;
}

/**
 * Shell reporting (`shallow`) the mirror's commits whose history it lacks, which a thin pack must not take as
 * bases: those its `shallow` file lists (receivePack writes it, gitrepository-layout(5)), and a pinned commit with a
 * parent the mirror does not hold (sent from a shallow clone before receivePack recorded them: its direct parents,
 * as actions/checkout's default depth of 1 leaves them), found in two git processes.
 */
export function mirrorShallow(mirror: string): string {
  const g = mirrorGit(mirror);
  return String.raw`if [ -f ${quote(`${mirror}/shallow`)} ]; then while read -r s; do ops_report ${RELEASE_KEYS.shallow} "$s"; done < ${quote(`${mirror}/shallow`)}; fi
mapfile -t parent_of < <(${g} log --no-walk=unsorted --format='%H %P' --glob='refs/ops/*' 2>/dev/null | while read -r c ps; do for p in $ps; do printf '%s %s\n' "$p" "$c"; done; done)
if [ "${'$'}{#parent_of[@]}" -gt 0 ]; then
  # The parents missing, looked up by bash (no process per pinned commit: a mirror pins every release's commit).
  declare -A mirror_missing=()
  while read -r mirror_m _; do mirror_missing[$mirror_m]=1; done < <(printf '%s\n' "${'$'}{parent_of[@]%% *}" | ${g} cat-file --batch-check 2>/dev/null | sed -n 's/ missing$//p')
  for pc in "${'$'}{parent_of[@]}"; do if [ -n "${'$'}{mirror_missing[${'$'}{pc%% *}]+x}" ]; then ops_report ${RELEASE_KEYS.shallow} "${'$'}{pc#* }"; fi; done
fi`;
}

/**
 * Index uploaded packs into the mirror (the app's commit, and its submodules' commits: one object store) and
 * pin each commit with a ref (so pruning git objects keeps it); record in the mirror's `shallow` file those of
 * `shallow` (commits sent from a shallow clone: Pack.shallow) that arrived without a parent, as `git fetch
 * --depth` records a shallow clone's boundary (gitrepository-layout(5)), so later packs do not take their history
 * as the host's (mirrorShallow); move uploaded Git LFS contents into the store after checking each one's sha256
 * against its oid.
 */
export function receivePack(env: Target, packs: string[], commits: string[], lfs: { upload: string; oid: string }[] = [], shallow: string[] = []): Step {
  const L = env.layout;
  const g = mirrorGit(L.mirror);
  const lines = [
    // index-pack leaves its temporary pack behind when it fails (a full disk): removed, not left to fill it.
    `trap 'find ${quote(`${L.mirror}/objects/pack`)} -maxdepth 1 -name "tmp_*" -delete 2>/dev/null || true' EXIT`,
    // A delta whose base the mirror lacks (a thin pack leaning on history it never received) is not fatal: its
    // commit is reported incomplete below and the runner sends it whole. Any other failure (a full disk) fails the step.
    ...packs.map(
      (pack) => String.raw`if ! out=$(${g} index-pack --stdin --fix-thin 2>&1 >/dev/null < ${quote(pack)}); then
  [[ $out == *"unresolved delta"* ]] || { printf '%s\n' "$out" >&2; exit 1; }
fi
rm -f ${quote(pack)}`,
    ),
    ...(shallow.length
      ? [
          String.raw`for s in ${shallow.map(quote).join(' ')}; do
  parents=$(${g} cat-file -p "$s" 2>/dev/null | sed -n '/^$/q; s/^parent //p') || continue
  for p in $parents; do ${g} cat-file -e "$p^{commit}" 2>/dev/null || { printf '%s\n' "$s"; break; }; done
done | cat - ${quote(`${L.mirror}/shallow`)} 2>/dev/null | sort -u > ${quote(`${L.mirror}/shallow.new`)} || true
if [ -s ${quote(`${L.mirror}/shallow.new`)} ]; then mv -f ${quote(`${L.mirror}/shallow.new`)} ${quote(`${L.mirror}/shallow`)}; else rm -f ${quote(`${L.mirror}/shallow.new`)}; fi`,
        ]
      : []),
    // Each commit pinned once all its files are there (rev-list reads every tree and checks every blob exists).
    ...commits.map(
      (sha) => String.raw`if ${g} rev-list --objects --no-walk ${quote(sha)} >/dev/null 2>&1; then ${g} update-ref ${quote(`refs/ops/sha/${sha}`)} ${quote(sha)}; else ops_report ${RELEASE_KEYS.incomplete} ${quote(sha)}; fi`,
    ),
    ...lfs.map(({ upload, oid }) => {
      const target = `${L.lfsStore}/${oid.slice(0, 2)}/${oid.slice(2, 4)}/${oid}`;
      return String.raw`[ "$(sha256sum < ${quote(upload)} | cut -d' ' -f1)" = ${quote(oid)} ] || { echo "Git LFS content ${oid} arrived damaged" >&2; exit 1; }
install -d -m 0755 ${quote(target.replace(/\/[^/]+$/, ''))}
mv -f ${quote(upload)} ${quote(target)}; chmod 0644 ${quote(target)}`;
    }),
  ];
  return { name: 'receive code', as: 'root', timeout: 600, quiet: true, script: lines.join('\n') };
}

/** The .env and environ a deploy uploaded to a host (private files under the uploads directory), for its release; and its masks file (core/steps/masks.ts). */
export interface DotenvUploads {
  dotenv: string;
  environ: string;
  masks: string;
}

/**
 * Put a deploy's uploaded .env and environ into the release directory `dir` being made (before it is renamed into
 * place: a release never exists without them), 0600, owned by the app user, replacing whatever the commit has at
 * those paths (a committed .env, a link); and its masks file into its record directory `record` (layout.record, made
 * by releaseRecord first), owned by root: only the hosts' own masking reads it, and the app user, who owns `dir`
 * once it is in place, could remove or replace a file there. `dir` is root's (0750) while they are written, so its
 * entries are not the app user's to swap for links meanwhile, then the app user's again. Shell for createRelease and
 * unpackArtifacts, whose traps remove the uploads.
 */
export function releaseDotenv(env: Target, dir: string, record: string, uploaded: DotenvUploads): string {
  const u = quote(env.appUser);
  const L = env.layout;
  const files: [string, string][] = [
    [uploaded.dotenv, L.dotenv(dir)],
    [uploaded.environ, L.environ(dir)],
  ];
  return [`chown root:root ${quote(dir)}; chmod 0750 ${quote(dir)}`]
    .concat(files.map(([from, to]) => `rm -rf ${quote(to)}; install -m 0600 -o ${u} -g ${u} ${quote(from)} ${quote(to)}`))
    .concat(`chown ${u}:${u} ${quote(dir)}`, `install -m 0600 -o root -g root ${quote(uploaded.masks)} ${quote(L.masks(record))}`)
    .join('\n');
}

/**
 * Shell recording the release of `meta` being made in directory `dir` (still root's: before its chown and rename):
 * its record directory (layout.record, root's: REVISION and release.json, what ops reads of it; the runtimes it is
 * built with, layout.runtimes; its masks file and
 * the records of its files go there too), and copies of both in `dir` for the app to read, written after removing
 * whatever the commit put at those names (a link into /etc is removed, never written through). Shell for createRelease and unpackArtifacts, whose traps remove the record when
 * the release is not made.
 */
export function releaseRecord(env: Target, dir: string, meta: ReleaseMeta): string {
  const L = env.layout;
  const rec = L.record(meta.id);
  const { python, node } = env.config.runtimes;
  return String.raw`install -d -m 0755 ${quote(L.records)}
rm -rf ${quote(rec)}; mkdir -m 0755 ${quote(rec)}
printf '%s\n' ${quote(meta.sha)} > ${quote(`${rec}/REVISION`)}
# The runtimes it is built with: what its programs start on from now on, whatever runtimes pins later (releaseRuntimes).
printf '%s\n' ${quote(`python ${python.version} ${env.runtime.python}`)} ${quote(`node ${node.version} ${env.runtime.node}`)} > ${quote(L.runtimes(rec))}
printf %s ${b64(JSON.stringify(meta, null, 2) + '\n')} | base64 -d > ${quote(`${rec}/release.json`)}
rm -rf ${quote(`${dir}/REVISION`)} ${quote(`${dir}/release.json`)}
cp ${quote(`${rec}/REVISION`)} ${quote(`${rec}/release.json`)} ${quote(dir)}/`;
}

/**
 * A new release directory: the commit's files (no .git; export-ignore respected, as `git archive` does), each
 * submodule's files at its path, Git LFS contents in place of their pointers, REVISION and release.json (and its
 * record: releaseRecord), the .env and environ this deploy uploaded (`dotenv`: releaseDotenv; the uploads are
 * removed whatever happens), and the record of those files as made (layout.treeMade: tree_made, before the build;
 * what the switch records of it, a deploy's no-op compares). Built beside the releases and renamed into place: never
 * half there.
 */
export function createRelease(env: Target, meta: ReleaseMeta, dotenv: DotenvUploads): Step {
  const L = env.layout;
  const dir = `${L.releases}/${meta.id}`;
  const tmp = `${L.releases}/.new-${meta.id}`;
  const rec = L.record(meta.id);
  const owner = `${env.appUser}:${env.appUser}`;
  const archive = (sha: string, into: string) => `${mirrorGit(L.mirror)} archive --format=tar ${quote(sha)} | tar -x -C ${quote(into)}`;
  const extra = [
    ...(meta.submodules ?? []).map((s) => `rm -rf ${quote(`${tmp}/${s.path}`)}\nmkdir -p ${quote(`${tmp}/${s.path}`)}\n${archive(s.sha, `${tmp}/${s.path}`)}`),
    // `cat >` keeps the mode git archive gave the file.
    ...(meta.lfs ?? []).map((f) => `cat ${quote(`${L.lfsStore}/${f.oid.slice(0, 2)}/${f.oid.slice(2, 4)}/${f.oid}`)} > ${quote(`${tmp}/${f.path}`)}`),
  ];
  return {
    name: 'release',
    as: 'root',
    timeout: 300,
    script: String.raw`trap 'rm -f ${quote(dotenv.dotenv)} ${quote(dotenv.environ)} ${quote(dotenv.masks)}' EXIT
[ ! -e ${quote(dir)} ] || { echo "release ${meta.id} already exists" >&2; exit 1; }
rm -rf ${quote(tmp)}
trap 'rm -rf ${quote(tmp)} ${quote(rec)}; rm -f ${quote(dotenv.dotenv)} ${quote(dotenv.environ)} ${quote(dotenv.masks)}' EXIT # a release cut short (full disk) never stays half-written
mkdir -m 0750 ${quote(tmp)}
${archive(meta.sha, tmp)}
${extra.length ? `${extra.join('\n')}\n` : ''}${releaseRecord(env, tmp, meta)}
# The commit's files as made, before the build (for a later deploy's no-op: tree.sh); a release without it is only not compared.
${treeLibrary(env)}
tree_made ${quote(tmp)} ${quote(rec)} || rm -f ${quote(L.treeMade(rec))}
chown -R ${owner} ${quote(tmp)}
${releaseDotenv(env, tmp, rec, dotenv)}
mv -T ${quote(tmp)} ${quote(dir)}
trap 'rm -f ${quote(dotenv.dotenv)} ${quote(dotenv.environ)} ${quote(dotenv.masks)}' EXIT
echo "release ${meta.id} (${meta.sha.slice(0, 12)}, ${meta.ref}${meta.submodules?.length ? `, ${meta.submodules.length} submodule(s)` : ''}${meta.lfs?.length ? `, ${meta.lfs.length} Git LFS file(s)` : ''})"`,
  };
}

/**
 * Asset bridging (release.asset_dirs): before release `id` starts, copy into it the files under the asset directories
 * of release `live` (the one that was live) that it lacks, so a page that release served, still open in a browser,
 * gets its content-hashed scripts and styles from the new one after the switch (servers such as adapter-node's sirv
 * list their files when they start: added later, they would not be served). Never over a file of the new release's
 * own; only `live`'s own files (its build's; not its hidden ones, a build's manifests), not those it was given in turn (listed in its layout.carriedAssets), so
 * old assets live one release longer, never forever. As the app user, who owns both releases (nothing of root's is
 * written). Reports `carried` with the number of files copied.
 */
export function carryAssets(env: Target, id: string, live: string): Step {
  const L = env.layout;
  const to = `${L.releases}/${id}`;
  const from = `${L.releases}/${live}`;
  return {
    name: 'carry assets',
    as: 'app',
    timeout: 300,
    script: String.raw`export LC_ALL=C
to=${quote(to)}
carried=${quote(L.carriedAssets(to))}
touch "$carried"
# The live release gone (pruned by hand): nothing to carry.
if [ ! -d ${quote(from)} ]; then ops_report ${RELEASE_KEYS.carried} 0; exit 0; fi
own=$(mktemp); given=$(mktemp); trap 'rm -f "$own" "$given"' EXIT
cd ${quote(from)}
${servedNamesHashed(env, live)}
# Its own files there (a directory given as a link is not followed), minus those carried into it from the one before.
# Hidden files and directories below an asset directory are its build's metadata, never a page's asset: a manifest
# (Sprockets' .sprockets-manifest-<hex>.json, of which Rails takes the first by name; Vite's .vite/manifest.json)
# carried in would make the new release read the old one's.
for d in ${assetDirs(env.config).map((a) => quote(a.dir)).join(' ')}; do
  if [ -d "$d" ] && [ ! -L "$d" ]; then find "$d" -mindepth 1 -name '.*' -prune -o \( -type f -o -type l \) -print0; fi
done | sort -z > "$own"
if [ -f ${quote(L.carriedAssets(from))} ]; then sort -z ${quote(L.carriedAssets(from))} > "$given"; fi
n=0
while IFS= read -r -d '' f; do
  if [ -e "$to/$f" ] || [ -L "$to/$f" ]; then continue; fi
  cp -P --preserve=mode,timestamps --parents -- "$f" "$to/"
  printf '%s\0' "$f" >> "$carried"
  n=$((n + 1))
done < <(comm -z -23 "$own" "$given")
ops_report ${RELEASE_KEYS.carried} "$n"`,
  };
}

/**
 * Shell, run in release `live`'s directory with the new release's in `$to`, that reports (`unhashed`, one line per
 * directory: which, which files, what it means, the fix; the deploy warns with it) each asset directory nginx serves
 * (release.asset_dirs given a url) holding a file that is in both releases under the same name with other bytes:
 * nginx serves those directories `expires max` (browsers keep each file for good, without asking again:
 * nginx-config.ts assetLocations), which holds only for names that are their content's hash. A file that changes under
 * one name (SvelteKit's _app/version.json and _app/env.js when the whole _app is given, a Django or Flask static/
 * without hashed names) stays the previous release's in every browser that fetched it once, whatever the deploy says
 * is live. Hidden files are not served (nor compared); links are not compared. Nothing when no directory is served; a
 * first deploy of such a directory has nothing to compare.
 */
function servedNamesHashed(env: Target, live: string): string {
  const served = assetDirs(env.config).flatMap((a, i) => (a.url ? [{ ...a, i }] : []));
  if (!served.length) return '';
  return served
    .map(
      (a) => String.raw`# release.asset_dirs[${a.i}] is served with expires max: a name must mean one content in every release.
changed=()
if [ -d ${quote(a.dir)} ] && [ ! -L ${quote(a.dir)} ]; then
  while IFS= read -r -d '' f; do
    if [ -f "$to/$f" ] && [ ! -L "$to/$f" ] && ! cmp -s -- "$f" "$to/$f"; then changed+=("$f"); fi
  done < <(find ${quote(a.dir)} -mindepth 1 -name '.*' -prune -o -type f -print0)
fi
if [ "${'$'}{#changed[@]}" -gt 0 ]; then
  names="${'$'}{changed[*]:0:5}$([ "${'$'}{#changed[@]}" -le 5 ] || printf ' (%s in all)' "${'$'}{#changed[@]}")"
  ops_report ${RELEASE_KEYS.unhashed} ${quote(`release.asset_dirs[${a.i}] (${a.dir}, served at ${a.url} with "expires max": browsers keep each file for good, never asking again) holds files whose content changed under the same name since release ${live}: `)}"${'$'}{names//[^[:print:]]/?}"${quote(`: a browser that fetched one keeps the previous release's, whatever is live. Give release.asset_dirs the directory of the build's content-hashed files only (SvelteKit: _app/immutable, not _app; Vite: dist/assets), or no url for this one (the app then serves it with its own caching), in environments/${env.name}/environment.yml`)}
fi`,
    )
    .join('\n');
}

/**
 * Mark a release that failed before going live, or that was rolled back from (abandoned): a marker file in
 * its record (layout.record; skipped by rollback, kept apart by pruning) and an event in the host's history. A
 * release made by an older ops has no record: its marker goes in its own directory (where history.sh reads it), the
 * app user's, so it is written in root's state directory and renamed over whatever is there (a link is replaced,
 * never written through). `id` and the
 * parts of `why` may be values known only on the host (a rollback's, chosen there: `onHost`). `withoutLock`: for a run
 * whose lock on the host was taken away (another run may hold it now): the marker alone, in the run's own release,
 * and only while `current` does not name it; the history, which the lock's holder writes, is left alone.
 */
export function markRelease(env: Target, id: string | HostVariable, mark: 'failed' | 'abandoned', why: string | (string | HostVariable)[], withoutLock = false): Step {
  const L = env.layout;
  const dir = word(`${L.releases}/`, id);
  const rec = word(`${L.records}/`, id);
  const text = `printf '%s\\n' ${word(...(typeof why === 'string' ? [why] : why))}`;
  const marker = `if [ -d ${rec} ]; then ${text} > ${word(`${L.records}/`, id, `/.ops-${mark}`)}
  else mark_tmp=$(mktemp -p ${quote(L.state)})
    if ! { ${text} > "$mark_tmp" && chmod 0644 "$mark_tmp" && mv -fT "$mark_tmp" ${word(`${L.releases}/`, id, `/.ops-${mark}`)}; }; then rm -f "$mark_tmp"; false; fi
  fi`;
  return {
    name: `mark ${mark}`,
    as: 'root',
    timeout: 30,
    quiet: true,
    script: withoutLock
      ? `live=$(readlink ${quote(env.layout.current)} 2>/dev/null || true)
if [ -d ${dir} ] && [ "\${live##*/}" != ${word(id)} ]; then
  ${marker}
fi`
      : `${historyFunctions(env)}
if [ -d ${dir} ]; then
  ${marker}
  history_add ${mark} ${word(id)} ${quote(mark === 'failed' ? 'deploy' : 'rollback')}
fi`,
  };
}

/**
 * Shell (in the releases directory, after the switch): report as `stale` (`<pid><TAB><release or current><TAB><its
 * program name>`) each process that runs other code than the live release and that no slot started (no OPS_SLOT in
 * its environment: the previous release kept warm, and what a slot's programs left, are the deploy's own): one whose
 * working directory or executable is in another release, or that names `<base>/current` in its command line and
 * started before `current` last changed (it resolved the previous release then). A supervisor program or a systemd
 * unit added by hand through `current` (a worker, a scheduler) is not restarted by the switch, and keeps running the
 * code it started with: the deploy says so, rather than succeed while the old code runs. A process with a terminal
 * (someone's shell in an old release) is left out. By pid and /proc's short name only: a command line may hold a
 * secret. One find and one grep for all processes; a grep of its environment per process found.
 */
function staleProcesses(env: Target): string {
  const current = quote(env.layout.current);
  return String.raw`if live=$(readlink ${current} 2>/dev/null); then
  live=${'$'}{live%/}; live=${'$'}{live##*/}
  switched=$(stat -c %Y ${current} 2>/dev/null || echo 0)
  btime=0; while read -r k v; do if [ "$k" = btime ]; then btime=$v; fi; done < /proc/stat
  tck=$(getconf CLK_TCK 2>/dev/null || echo 100)
  declare -A stale_via=()
  while read -r p d; do
    case "$d" in "$releases_dir"/*) d=${'$'}{d#"$releases_dir"/}; d=${'$'}{d%%/*}; [ "$d" = "$live" ] || stale_via[${'$'}{p#/proc/}]=$d ;; esac
  done < <(find /proc/[0-9]*/cwd /proc/[0-9]*/exe -maxdepth 0 -printf '%h %l\n' 2>/dev/null || true)
  for p in $(grep -l -F -- ${quote(`${env.layout.current}/`)} /proc/[0-9]*/cmdline 2>/dev/null || true); do
    p=${'$'}{p#/proc/}; p=${'$'}{p%/cmdline}; [ -n "${'$'}{stale_via[$p]:-}" ] || stale_via[$p]=current
  done
  for p in "${'$'}{!stale_via[@]}"; do
    if [ "$p" = "$$" ] || [ "$p" = "$BASHPID" ]; then continue; fi
    # A slot's own process (its environment names OPS_SLOT), read by bash: no grep per process.
    stale_env=(); mapfile -d '' -t stale_env 2>/dev/null < "/proc/$p/environ" || true
    stale_slot=""; for v in "${'$'}{stale_env[@]}"; do if [[ $v == OPS_SLOT=* ]]; then stale_slot=1; break; fi; done
    [ -z "$stale_slot" ] || continue
    read -r s 2>/dev/null < "/proc/$p/stat" || continue
    read -r -a f <<< "${'$'}{s##*) }"
    [ "${'$'}{f[4]:-0}" = 0 ] || continue
    # Named through current: stale only if it started before current last changed.
    if [ "${'$'}{stale_via[$p]}" = current ] && [ $(( btime + ${'$'}{f[19]:-0} / tck )) -ge "$switched" ]; then continue; fi
    read -r comm 2>/dev/null < "/proc/$p/comm" || comm='?'
    ops_report ${RELEASE_KEYS.stale} "$p	${'$'}{stale_via[$p]}	$comm"
  done
fi`;
}

/**
 * How big (MB) an app user's package cache may grow, counting only what the kept dependency sets do not hold as
 * well (uv's files are hard links of its cache's): past it, the prune empties it (packageCaches).
 */
export const PACKAGE_CACHE_MB = 2048;

/**
 * The prune's bound on the app user's package caches (layout.packageCaches: uv's, pip's, npm's), which keep every
 * version ever downloaded or built and nothing ever drops: one past PACKAGE_CACHE_MB of its own (du, the kept sets
 * counted first, so the files a set shares with it by hard links are theirs) is emptied whole, as the app user
 * (setpriv: the app owns that directory, and what it holds is never followed by root). The sets never read a cache
 * again (their files are copies or links), so nothing that runs changes: the next new set fetches what it lacks
 * from the index. Reported as `pruned_cache`.
 */
function packageCaches(env: Target): string {
  const u = quote(env.appUser);
  return String.raw`for c in ${env.layout.packageCaches.map(quote).join(' ')}; do
  [ -d "$c" ] || continue
  mb=$({ du -smx -- ${quote(env.layout.deps)} "$c" 2>/dev/null || true; } | awk -F'	' -v c="$c" '$2 == c { print $1 }')
  if [ "${'$'}{mb:-0}" -gt ${PACKAGE_CACHE_MB} ]; then
    if setpriv --reuid=${u} --regid=${u} --init-groups -- rm -rf -- "$c"; then ops_report ${RELEASE_KEYS.pruned_cache} "$mb $c"; else echo "could not empty the package cache $c (next prune will)" >&2; fi
  fi
done`;
}

/**
 * How many packs the host's mirror may hold before the prune repacks it (mirrorPacks): git's own bound for
 * `git gc --auto` (gc.autoPackLimit's default, git-config(1)).
 */
export const MIRROR_PACKS = 50;

/**
 * The prune's bound on the host's mirror: each deploy of a commit the host lacked indexes one more pack into it
 * (receivePack), and the objects of commits no kept release needs stay in their packs after their refs are dropped
 * (a file committed and removed again stays for ever). Past MIRROR_PACKS packs (a bash glob: no process on the
 * deploys under it), `git repack -a -d` writes one pack of what the refs reach (every kept release's commit, and the
 * commit this deploy just pinned) and deletes the others, dropping what nothing reaches (git-repack(1): -a without
 * -A). Under the deploy's lock, after the refs are pruned: no other run of the app receives into the mirror or reads
 * a commit from it meanwhile. A repack that fails leaves the packs as they were (git writes the new pack before it
 * deletes the old ones): said, and the next prune tries again.
 */
function mirrorPacks(env: Target): string {
  const m = env.layout.mirror;
  return String.raw`mirror_packs=(${quote(`${m}/objects/pack`)}/pack-*.pack)
if [ ${'$'}{#mirror_packs[@]} -gt ${MIRROR_PACKS} ] && ! repack_err=$(${mirrorGit(m)} repack -a -d -q 2>&1); then
  printf 'could not repack the mirror %s (%s packs; the next prune tries again): %s\n' ${quote(m)} "${'$'}{#mirror_packs[@]}" "${'$'}{repack_err:0:300}" >&2
fi`;
}

/**
 * The prune's removal of program logs no slot runs any more: the files (and supervisor's rotated copies, `.1` to
 * `.5`) under the app's log directory of a program neither slot's supervisor file names, nor these settings (a
 * program renamed or removed two deploys ago: once the release kept warm that ran it is replaced). Up to 240 MB each
 * otherwise (20 MB x 6 files x out/err, per slot), kept for ever. Those of a program a slot still runs stay whole:
 * they are bounded by supervisor's rotation. Nothing when neither slot file can be read (nothing to judge by).
 */
function orphanLogs(env: Target): string {
  const L = env.layout;
  const app = env.config.app; // a name (environment-schema.ts): no character sed's pattern reads otherwise
  // The programs' names in a bash associative array: one lookup per log file, no process each.
  return String.raw`if [ -f ${quote(L.supervisorConf('blue'))} ] || [ -f ${quote(L.supervisorConf('green'))} ]; then
  declare -A log_programs=()
  for n in ${Object.keys(env.config.programs).map(quote).join(' ')}; do log_programs[$n]=1; done
  while IFS= read -r n; do [ -z "$n" ] || log_programs[$n]=1; done < <(sed -nE 's/^\[program:${app}-(blue|green)-([a-z0-9_-]+)\]$/\2/p' ${quote(L.supervisorConf('blue'))} ${quote(L.supervisorConf('green'))} 2>/dev/null || true)
  for f in ${quote(L.logDir)}/*-blue.*.log ${quote(L.logDir)}/*-green.*.log ${quote(L.logDir)}/*-blue.*.log.[0-9]* ${quote(L.logDir)}/*-green.*.log.[0-9]*; do
    [ -f "$f" ] || continue
    n=${'$'}{f##*/}; n=${'$'}{n%-blue.*}; n=${'$'}{n%-green.*}
    # (An empty name is no subscript bash takes: such a file is no program's.)
    if [ -z "$n" ] || [ -z "${'$'}{log_programs[$n]:-}" ]; then rm -f -- "$f"; fi
  done
fi`;
}

/**
 * Remove the releases `remove` (chosen by `retention`, core/steps/history.ts), except — whatever the list says —
 * the live one and any release a supervisor file of this app names or a process runs from (reported as
 * `kept_running`; the masks of each removed are kept first, keep_masks: its programs' lines stay in the logs); then the dependency sets no kept release uses (by its links, wherever node_dir put them, or
 * by its release.json), the shared .env and environ of older versions
 * once no kept release links to them, the Git LFS contents and the mirror refs of commits no kept release needs (its REVISION, and the submodule commits and LFS oids in its release.json: its record's, layout.record), and the record of each release removed;
 * the mirror's objects no ref reaches, once it holds more than MIRROR_PACKS packs (mirrorPacks);
 * the logs of programs no slot runs any more (orphanLogs) and, with `caches` (a run that made a dependency set here:
 * the only time the caches grow; else the du that weighs them would walk every set on each deploy), a package cache
 * grown past its bound (packageCaches).
 */
export function pruneReleases(env: Target, remove: string[], caches = true): Step {
  const L = env.layout;
  return {
    name: 'prune',
    as: 'root',
    timeout: 300,
    quiet: true,
    script: String.raw`${MASK_FUNCTIONS}
releases_dir=${quote(L.releases)}
cd "$releases_dir"
# The release directories that current, a slot's supervisor file or a running process point into.
# (Looked up in bash arrays here and below: no process per release, log file, set or ref; a prune on ten hosts at once
# spent its time starting greps.)
declare -A protected=()
while IFS= read -r d; do
  case "$d" in "$releases_dir"/*) d=${'$'}{d#"$releases_dir"/}; d=${'$'}{d%%/*}; d=${'$'}{d%% *}; [ -z "$d" ] || protected[$d]=1 ;; esac
done < <({ readlink ${quote(L.current)}
  sed -n 's/^directory=//p' ${quote(L.supervisorConf('blue'))} ${quote(L.supervisorConf('green'))}
  find /proc/[0-9]*/cwd -maxdepth 0 -printf '%l\n' # one process for all, not a readlink per process: 0.3 s on 200 of them
} 2>/dev/null || true)
remove=(${remove.map(quote).join(' ')})
for r in "${'$'}{remove[@]}"; do
  [ -d "$r" ] || continue
  if [ -n "${'$'}{protected[$r]:-}" ]; then ops_report ${RELEASE_KEYS.kept_running} "$r"; continue; fi
  # Its secret values stay masked in the logs its programs wrote (kept masks); else it stays, for the next prune.
  ${keepMasks(env, 'r')} || { echo "could not keep the masks of $r (left for the next prune)" >&2; continue; }
  rm -rf -- "$r" ${quote(L.records)}/"$r"
  ops_report ${RELEASE_KEYS.pruned} "$r"
done
rm -rf .new-* 2>/dev/null || true
${staleProcesses(env)}
${orphanLogs(env)}
# The records of releases no longer here (removed by hand, or a release step cut short).
for d in ${quote(L.records)}/*/; do d=${'$'}{d%/}; [ ! -d "$d" ] || [ -d "${'$'}{d##*/}" ] || rm -rf -- "$d"; done
# The fingerprint lines of releases no longer here (the switch wrote them before this prune removed its releases).
if [ -f ${quote(L.fingerprint)} ]; then
  ( umask 077; { ${forEachFingerprintRecord(env, String.raw`if [ -n "$id" ] && [ -d "$id" ]; then printf '%s %s
' "$id" "$fp"; fi`)}; } > ${quote(`${L.fingerprint}.new`)} ) && mv -fT ${quote(`${L.fingerprint}.new`)} ${quote(L.fingerprint)} || echo "could not drop the fingerprint lines of releases pruned (next prune will)" >&2
fi
# Where ops's records of each kept release are (release_record in history.sh: its record directory, or for a release
# made by an older ops, its own): their release.json and REVISION, not the app's copies.
recorded=(); for r in */; do r=${'$'}{r%/}; if [ -d ${quote(L.records)}/"$r" ]; then recorded+=(${quote(L.records)}/"$r"); else recorded+=("$r"); fi; done
# The sets each kept release uses: its links where this or an earlier setting put them (venv; node_modules at the
# root, one level down, or node_dir's), and the sets its release.json names (a node_dir that has since changed).
declare -A used=()
links=(); for r in */; do for l in "$r"venv "$r"node_modules "$r"*/node_modules "$r"${quote(env.config.release.node_dir || '.')}/node_modules; do if [ -L "$l" ]; then links+=("$l"); fi; done; done
while IFS= read -r d; do d=${'$'}{d%/node_modules}; [ -z "$d" ] || used[$d]=1; done < <(if [ ${'$'}{#links[@]} -gt 0 ]; then readlink -- "${'$'}{links[@]}" 2>/dev/null; fi || true)
while read -r kind hash; do
  if [ "$kind" = python ]; then used[${quote(L.deps)}/venv-$hash]=1; else used[${quote(L.deps)}/node-$hash]=1; fi
done < <(sed -nE 's/^ *"(python|node)": "([0-9a-f]{16})",?$/\1 \2/p' "${'$'}{recorded[@]/%//release.json}" /dev/null 2>/dev/null || true)
for d in ${quote(L.deps)}/*; do
  [ -d "$d" ] || continue
  [ -n "${'$'}{used[$d]:-}" ] || { rm -rf -- "$d"; ops_report ${RELEASE_KEYS.pruned_deps} "${'$'}{d##*/}"; }
done
${caches ? packageCaches(env) : ''}
# The shared .env and environ of releases made before each had its own: gone with the last one linked to them.
legacy=no; for r in */; do if [ -L "${L.dotenv('$r')}" ]; then legacy=yes; fi; done
[ "$legacy" = yes ] || rm -f ${quote(L.legacyShared.dotenv)} ${quote(L.legacyShared.environ)}
# Looked up in bash (no process per object: a repository may have thousands).
declare -A keep_oid=()
while read -r o; do keep_oid[$o]=1; done < <(grep -ohE '[0-9a-f]{64}' "${'$'}{recorded[@]/%//release.json}" /dev/null 2>/dev/null || true)
for f in ${quote(L.lfsStore)}/*/*/*; do
  [ -f "$f" ] || continue
  [ -n "${'$'}{keep_oid[${'$'}{f##*/}]:-}" ] || rm -f -- "$f"
done
declare -A keep_sha=()
for f in "${'$'}{recorded[@]/%//REVISION}"; do if [ -f "$f" ]; then while IFS= read -r s || [ -n "$s" ]; do [ -z "$s" ] || keep_sha[$s]=1; done < "$f"; fi; done
while read -r s; do keep_sha[$s]=1; done < <(grep -ohE '[0-9a-f]{40}' "${'$'}{recorded[@]/%//release.json}" /dev/null 2>/dev/null || true)
${mirrorGit(L.mirror)} for-each-ref --format='%(refname)' refs/ops/sha/ | while read -r ref; do
  [ -n "${'$'}{keep_sha[${'$'}{ref##*/}]:-}" ] || ${mirrorGit(L.mirror)} update-ref -d "$ref" || echo "could not drop $ref (next prune will)" >&2
done
${mirrorPacks(env)}
# The history, bounded (what names a release kept stays; the audit log is bounded by every run's unlock: rotateAudit).
${historyFunctions(env)}
history_compact ${HISTORY_KEPT_LINES}`,
  };
}
