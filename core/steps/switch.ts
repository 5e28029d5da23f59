// The gapless switch (blue/green): the new release's programs start beside the live ones on the other
// slot's ports, must pass their health checks, then nginx moves to them with a validated graceful reload,
// `current` flips by rename(2), and the old slot stops after a drain period.
import { assetDirs, siteNames } from '../config/environment.ts';
import { PLACEHOLDER, PLACEHOLDERS } from '../config/placeholders.ts';
import type { Target } from '../target.ts';
import { OpsError } from '../errors.ts';
import { otherSlot, type Slot } from '../layout.ts';
import { FAILURE_KEYS, reportKeys, type Step } from '../remote/types.ts';
import { isValid, onHost, quote, word, type HostVariable } from '../shell.ts';
import { supervisorCommand, supervisorEnvironment, supervisorValue } from '../supervisor.ts';
import { RELEASE_DIR_PATTERN, historyFunctions } from './history.ts';
import { applyNginx, siteOwn } from './nginx.ts';
import { certificateNames, certificatePaths, checkLog, coveredTarget, site, siteServesSlot, upstreams } from './nginx-config.ts';
import { siteName } from './certs.ts';
import { gateSeconds, nginxGate, otherListenFiles } from './nginx-gate.ts';
import { b64, putUnlessHostOwn, type HostOwnRule } from './script.ts';
import { ASSETS_FUNCTIONS, CERT_FUNCTIONS, CRITICAL_FUNCTIONS, HOST_LOCK_FUNCTIONS, IDENTITY_FUNCTIONS, LOCAL_CURL, LOCK_LOST_EXIT, maskLibrary, probeLibrary, SUPERVISOR_FUNCTIONS, SYSTEM_FUNCTIONS, treeLibrary, visitorAddress } from './libraries.ts';
import { maskText } from './masks.ts';
import type { RuntimePaths } from '../runtimes.ts';

/** The runtimes a slot's programs are rendered with (placeholders {python} {node} {npm}, and PATH's Node.js directory). */
export type ProgramRuntimes = Pick<RuntimePaths, 'python' | 'node' | 'npm'>;

/**
 * Expand {release} {python} {node} {npm} {port} {port:<program>} in a program's command or environment (`key`: the
 * setting's name, for messages). `{{name}}` is a literal `{name}` (as in Python's str.format), for text of the app's
 * own that uses braces, such as a log format's `{asctime}` (or `{{PORT}}`); other braces (`{}`, `${HOME}`, JSON) are
 * left as they are. A placeholder written in another case or with spaces (`{PORT}`) was refused when the file was
 * read (core/config/placeholders.ts placeholderProblem).
 * @throws OpsError naming `key` for an unknown placeholder or a {port:<program>} of no program.
 */
export function expand(env: Target, text: string, release: string, program: string, slot: Slot, key = `programs.${program}`, paths: ProgramRuntimes = env.runtime): string {
  return text.replace(PLACEHOLDER, (whole, literal?: string, name?: string, arg?: string) => {
    if (literal !== undefined) return `{${literal}}`;
    if (name === 'release' && !arg) return release;
    if (name === 'python' && !arg) return paths.python;
    if (name === 'node' && !arg) return paths.node;
    if (name === 'npm' && !arg) return paths.npm;
    if (name === 'port') {
      const target = arg ?? program;
      if (!env.config.programs[target]) throw new OpsError(`${key}: ${whole} names no program`, `programs: ${Object.keys(env.config.programs).join(', ')}`);
      return String(env.port(target, slot));
    }
    throw new OpsError(`${key}: unknown placeholder ${whole}`, `placeholders: ${PLACEHOLDERS}; for a literal ${whole} (e.g. a log format's fields) write {${whole}}`);
  });
}

/**
 * `command` as it is, once checked that no path placeholder in it ({release} {python} {node} {npm}) expands to a path
 * holding white space, a quote or a backslash: supervisor splits a command line as a shell's words (shlex), so
 * `/srv/demo app/releases/...` would start `/srv/demo` and the deploy fail at its start, after the build. (In `env`
 * values, and for build, migrate and the hooks, which bash runs quoted, such a base_dir works.)
 * @throws OpsError naming `key`, the placeholder and base_dir.
 */
function splitFreePaths(env: Target, command: string, release: string, key: string, runtime: ProgramRuntimes = env.runtime): string {
  const paths: Record<string, string> = { release, python: runtime.python, node: runtime.node, npm: runtime.npm };
  for (const m of command.matchAll(/(?<!\{)\{(release|python|node|npm)\}(?!\})/g)) {
    if (!/[\s'"\\]/.test(paths[m[1]!]!)) continue;
    throw new OpsError(
      `${key}: ${m[0]} expands to a path holding a space, a quote or a backslash (${m[1] === 'release' ? `base_dir ${env.baseDir}` : paths[m[1]!]}), which supervisor splits the command line at: the program would not start`,
      `choose a base_dir without them (e.g. /srv/${env.config.app}), or start the program by a path relative to programs.<name>.directory (e.g. venv/bin/python)`,
    );
  }
  return command;
}

/** supervisor's name of a program on a slot (`<app>-<slot>-<program>`). */
export function programName(env: Target, slot: Slot, program: string): string {
  return env.layout.supervisorProgram(slot, program);
}

/**
 * Seconds a slot's programs get to exit after SIGTERM before they are killed (supervisor's stopwaitsecs; group_down,
 * core/steps/sh/supervisor.sh, kills what is left of their process groups after as long).
 */
export const STOP_WAIT_SECONDS = 15;
/**
 * supervisor's startsecs for every program (seconds): how long a program must run before supervisor takes it as started
 * (an exit before counts toward startretries, then FATAL). Why 3: slotConfig. The health gate's own window is
 * switch.settle (group_settled), counted by the gate, 3 s by default too.
 */
export const STARTSECS = 3;

/**
 * The supervisor group of one slot, running one release. Every value is encoded for supervisor
 * (core/supervisor.ts): a program runs exactly the command and environment the environment file says.
 * @throws OpsError naming the program and key of each value supervisor cannot carry (and of each unknown
 * placeholder), all of them in one error (at plan time), never the values.
 */
export function slotConfig(env: Target, slot: Slot, release: string, releaseId: string, runtime: ProgramRuntimes = env.runtime): string {
  // Every refusal is collected (a user fixes them all at once, not one per run), then thrown together.
  const problems = new Map<string, OpsError>();
  const note = (e: unknown) => {
    if (!(e instanceof OpsError)) throw e;
    if (!problems.has(e.message)) problems.set(e.message, e);
  };
  const carry = (value: () => string): string => {
    try {
      return value();
    } catch (e) {
      note(e);
      return '';
    }
  };
  const text = slotConfigText(env, slot, release, releaseId, runtime, carry, note);
  if (problems.size === 1) throw [...problems.values()][0]!;
  if (problems.size > 1)
    throw new OpsError(
      `${problems.size} program settings of ${env.name} cannot be given to supervisor as written (nothing was sent to any host):\n${[...problems.values()].map((e) => `  - ${e.message}${e.hint ? ` (${e.hint})` : ''}`).join('\n')}`,
      `change each of them in environments/${env.name}/environment.yml, then deploy again`,
    );
  return text;
}

/** slotConfig's text, each value through `carry` (a value refused reads as ''), each refused variable given to `refused`. */
function slotConfigText(env: Target, slot: Slot, release: string, releaseId: string, paths: ProgramRuntimes, carry: (value: () => string) => string, refused: (e: unknown) => void): string {
  const L = env.layout;
  const nodeBin = paths.node.replace(/\/node$/, '');
  const names = Object.keys(env.config.programs);
  const blocks = names.map((name) => {
    const p = env.config.programs[name]!;
    const dir = p.directory === '.' ? release : `${release}/${p.directory}`;
    // no prototype: a variable named __proto__ is set like any other (plain assignment would lose it)
    const vars: Record<string, string> = Object.assign(Object.create(null) as Record<string, string>, {
      HOME: `/home/${env.appUser}`,
      PATH: `${release}/venv/bin:${nodeBin}:/usr/local/bin:/usr/bin:/bin`,
      OPS_RELEASE: releaseId,
      OPS_SLOT: slot,
    });
    const key = (k: string) => `programs.${name}.${k}`;
    for (const [k, v] of Object.entries(p.env)) vars[k] = carry(() => expand(env, v, release, name, slot, key(`env.${k}`), paths));
    const log = programLog(env, slot, name);
    return [
      `[program:${programName(env, slot, name)}]`,
      `command=${carry(() => supervisorCommand(key('command'), expand(env, splitFreePaths(env, p.command, release, key('command'), paths), release, name, slot, key('command'), paths), dir))}`,
      `directory=${carry(() => supervisorValue(key('directory'), dir))}`,
      `user=${carry(() => supervisorValue('app_user', env.appUser))}`,
      `environment=${carry(() => supervisorEnvironment(vars, (k) => (k in p.env ? key(`env.${k}`) : `the ${k} given to programs (from base_dir or the runtimes)`), refused))}`,
      'autostart=true',
      'autorestart=true',
      // supervisord notices an exit only on its next pass, at most a second later (its poll's timeout), and decides
      // whether the program has started (startsecs) before it reaps the exit (supervisor/supervisord.py runforever:
      // transition() before reap(); Supervisor/supervisor#1534): with 1 s, a program that exits at once is mostly
      // taken as started, restarted without counting, never FATAL, and the health gate waits out its timeout.
      // 3 s: an exit within 2 s of a start always counts (startretries, then FATAL: the health gate gives up early).
      `startsecs=${STARTSECS}`,
      'startretries=3',
      'stopsignal=TERM',
      `stopwaitsecs=${STOP_WAIT_SECONDS}`,
      'stopasgroup=true',
      'killasgroup=true',
      `stdout_logfile=${carry(() => supervisorValue(key('log'), `${log}.out.log`, 2))}`,
      'stdout_logfile_maxbytes=20MB',
      'stdout_logfile_backups=5',
      `stderr_logfile=${carry(() => supervisorValue(key('log'), `${log}.err.log`, 2))}`,
      'stderr_logfile_maxbytes=20MB',
      'stderr_logfile_backups=5',
    ].join('\n');
  });
  return [
    `; Managed by ops-pipeline: slot ${slot} of ${env.config.app}, release ${releaseId}. Rewritten by deploys.`,
    `[group:${env.layout.supervisorGroup(slot)}]`,
    `programs=${carry(() => supervisorValue('programs', names.map((n) => programName(env, slot, n)).join(',')))}`,
    '',
    ...blocks.map((b) => `${b}\n`),
  ].join('\n');
}

/** The health probes of a slot: program, port, path. */
export function probes(env: Target, slot: Slot): string[] {
  return Object.entries(env.config.programs).map(([name, p]) => `${name}:${env.port(name, slot)}:${p.health}`);
}

/**
 * startSlot's exit code when it failed and already left the slot as it should be (new programs stopped, supervisor's
 * previous file put back and the release it names started again: previous_back, previousBackFunctions): the operation
 * must not touch the slot again. Any other failure (a timeout, a lost connection) leaves the slot to the operation,
 * which puts the previous release back from the records the start kept in the run's lock (putPreviousBack).
 */
export const START_FAILED_CLEAN = 3;

/** Where a program of a slot logs: `<this>.out.log` and `<this>.err.log` (supervisor's stdout and stderr files). */
function programLog(env: Target, slot: Slot, program: string): string {
  return `${env.layout.logDir}/${program}-${slot}`;
}

/** A slot's program logs (each program's stderr and stdout files), as its supervisor file names them. */
function slotLogFiles(env: Target, slot: Slot): string[] {
  return Object.keys(env.config.programs).flatMap((n) => [`${programLog(env, slot, n)}.err.log`, `${programLog(env, slot, n)}.out.log`]);
}

/** `name:port` of each program in a slot: what the identity check and status look at. */
export function programPorts(env: Target, slot: Slot): string[] {
  return Object.keys(env.config.programs).map((name) => `${name}:${env.port(name, slot)}`);
}

/**
 * Start the release on `slot` beside the live slot and wait for every health check, then check identity:
 * whatever answers on each port must be the process supervisor started for this release. supervisor must
 * accept the new file (reloadConfig, addProcessGroup): when it refuses, the previous file is put back and
 * the step fails with supervisor's own message. When a check never passes (or a port is taken, or supervisor refuses
 * the group), the new programs stop again, the release the slot held before runs there again (previous_back,
 * previousBackFunctions: warm for a rollback, or said not to be), and the step fails with their last log lines. Either
 * way the live slot was never touched. A start that succeeds leaves, in the run's lock directory, the record of what
 * the slot held (PREVIOUS_RECORD, PREVIOUS_FILE) until its release goes live (switchTo removes it): a failed switch
 * (putPreviousBack) or an interrupted run (core/steps/lock.ts stopStartedSlot) puts that back. Exits 0 (started and
 * healthy), START_FAILED_CLEAN (failed, the slot as described), anything else (broken: the slot is the operation's).
 */
export function startSlot(env: Target, slot: Slot, release: string, releaseId: string, dotenvSums?: string): Step {
  if (release !== `${env.layout.releases}/${releaseId}`) throw new Error(`startSlot: release ${releaseId} lives in ${env.layout.releases}/${releaseId}, not ${release}`);
  if (dotenvSums !== undefined && !/^[0-9a-f]{64} [0-9a-f]{64}$/.test(dotenvSums)) throw new Error(`startSlot: not the sha256 of a .env and an environ: ${dotenvSums}`);
  return startRelease(env, slot, releaseId, 0, dotenvSums);
}

/**
 * Shell that refuses to start a release whose `.env` or environ are no longer the bytes its deploy wrote (`sums`,
 * dotenvSums: sha256 of each): the release's build, migrations or before_switch hooks rewrote them (a build that
 * appends to .env, copies .env.example over it), and the app would run with values nobody deployed. Exits
 * START_FAILED_CLEAN before anything is touched, naming the file(s).
 */
function dotenvUnchanged(env: Target, sums: string): string {
  const [dotenv, environ] = sums.split(' ');
  // The files' names in a release directory (layout: <release>/.env, <release>/.ops-environ).
  const name = (path: string) => path.replace(/^\//, '');
  return String.raw`changed=()
for pair in ${quote(`${name(env.layout.dotenv(''))}:${dotenv}`)} ${quote(`${name(env.layout.environ(''))}:${environ}`)}; do
  f=${'$'}{pair%%:*}; want=${'$'}{pair#*:}
  got=$(sha256sum -- "$release/$f" 2>/dev/null || true)
  [ "${'$'}{got%% *}" = "$want" ] || changed+=("$f")
done
if [ ${'$'}{#changed[@]} -gt 0 ]; then
  echo "$release_id: its ${'$'}{changed[*]} no longer hold what this deploy wrote there: something run in the release since (release.build, release.migrate or a before_switch hook) rewrote or removed it, and the app would run with values nobody deployed. Nothing was started; the live release keeps serving. Fix the command that writes it (build-time settings belong in another file; .env is ops's, rendered from environments/${env.name}/), then deploy again" >&2
  exit ${START_FAILED_CLEAN}
fi`;
}

/** Where slotConfig is rendered for a release chosen on the host: the id's place, replaced there by the id. */
const RELEASE_MARK = '@@ops-release-id@@';

/**
 * Shell that sets `release_id` (a runner's id, or the host's variable `release_id` already set) and checks it
 * against the release-id pattern before any use: what a start or switch step names its release by.
 */
function releaseIdVar(releaseId: string | HostVariable): string {
  const set = typeof releaseId !== 'string' && releaseId.variable === 'release_id' ? '' : `release_id=${word(releaseId)}\n`;
  return String.raw`${set}[[ $release_id =~ ${RELEASE_DIR_PATTERN} ]] || { echo "not a release id: $release_id" >&2; exit 1; }`;
}

/**
 * A slot's supervisor file on a host where someone changed it (an environment= added, a command edited): written from
 * the settings whenever a release starts on the slot, so replaced, with a backup and where such a change lasts
 * (putUnlessHostOwn's `replaced`).
 */
export function supervisorOwn(env: Target): HostOwnRule {
  return {
    kind: 'replaced',
    when: 'start of a release on its slot (deploy, rollback)',
    lasts: `set it in environments/${env.name}/environment.yml (programs.<name>.command, .env, .directory; a secret value in the environment's secrets file, the app's variables in its .env), then deploy`,
  };
}

/** Where slotConfig is rendered for a release chosen on the host: its recorded runtimes' places (releaseRuntimes), absolute paths as supervisorCommand reads them. */
const PYTHON_MARK = '/@@ops-python@@';
const NODE_BIN_MARK = '/@@ops-node-bin@@';
const MARKED_RUNTIMES: ProgramRuntimes = { python: PYTHON_MARK, node: `${NODE_BIN_MARK}/node`, npm: `${NODE_BIN_MARK}/npm` };

/**
 * Shell run on the host for the release whose id is `id` (checked against the release-id pattern first): sets
 * `rt_python` and `rt_node` to the runtimes its record says it was built with (layout.runtimes; a release made by an
 * older ops, without one: today's, env.runtime), `rt_node_bin` to that Node.js's directory; then runs `missing` (with
 * `rt_missing` saying why, for stderr) when one its programs need is not on the host any more (removed, or another
 * pin's provision never made it here): the Node.js of node_dir's node_modules or of a {node}/{npm} placeholder, the
 * Python of a {python} placeholder, or the interpreter of its venv (a venv links to the Python it was made with).
 * Its programs started on today's runtime instead would run native addons built for another Node.js ABI, or not at
 * all. Read by bash builtins only (the no-op's path holds no process).
 */
export function releaseRuntimes(env: Target, id: HostVariable, missing: string): string {
  const L = env.layout;
  const { release, programs } = env.config;
  const placeholders = Object.values(programs).flatMap((p) => [p.command, ...Object.values(p.env)]).join('\n');
  const usesNode = !!release.node_dir || /(?<!\{)\{(node|npm)\}/.test(placeholders);
  const usesPython = /(?<!\{)\{python\}/.test(placeholders);
  const rec = word(`${L.records}/`, id, `/${L.runtimes('').replace(/^\//, '')}`);
  const dir = word(`${L.releases}/`, id);
  const gone = (what: string, version: string, path: string, pin: string) =>
    `rt_missing="release $${id.variable} was built with ${what} ${version} (${path}), which is not on this host any more: started on another, what it was built for would not fit. Nothing was changed. Install it again (pin runtimes.${pin} to it in environments/${env.name}/environment.yml and run ops provision), or deploy that commit anew, built on today's runtimes (ops deploy ${env.name} --ref <its commit: ops releases ${env.name}>)"`;
  return String.raw`rt_python=${quote(env.runtime.python)}; rt_node=${quote(env.runtime.node)}; rt_python_v=""; rt_node_v=""; rt_missing=""
if [ -f ${rec} ]; then
  # shellcheck disable=SC2034 # a version is read only for the runtimes the programs need
  while read -r rt_name rt_version rt_path; do
    # Only an absolute path of plain characters: it goes into a supervisor file.
    [[ $rt_path =~ ^/[A-Za-z0-9._+/-]+$ ]] || continue
    case $rt_name in python) rt_python=$rt_path; rt_python_v=$rt_version ;; node) rt_node=$rt_path; rt_node_v=$rt_version ;; esac
  done < ${rec}
  ${usesNode ? `if [ -n "$rt_node_v" ] && [ ! -x "$rt_node" ]; then ${gone('Node.js', '$rt_node_v', '$rt_node', 'node')}; fi` : ': its programs need no Node.js'}
  ${usesPython ? `if [ -n "$rt_python_v" ] && [ ! -x "$rt_python" ]; then ${gone('Python', '$rt_python_v', '$rt_python', 'python')}; fi` : ': no program names the python placeholder'}
fi
${release.python_requirements ? `if [ -z "$rt_missing" ] && [ -L ${dir}/venv/bin/python ] && [ ! -x ${dir}/venv/bin/python ]; then rt_venv_python=$(readlink -m ${dir}/venv/bin/python 2>/dev/null || true); ${gone('a venv on a Python', '', '$rt_venv_python', 'python').replace('venv on a Python  (', 'venv on a Python (')}; fi` : ': no venv'}
rt_node_bin=${'$'}{rt_node%/node}
if [ -n "$rt_missing" ]; then ${missing}; fi`;
}

/**
 * Shell that sets `conf_b64`: slotConfig for the release, base64 (the way put_file compares and writes it).
 * Rendered here for a runner's id (a deploy's new release: built on today's runtimes); for one chosen on the host (a
 * rollback, a slot's previous release started again), rendered with RELEASE_MARK in the id's place and the id (the
 * host's variable, checked against the release-id pattern first, by releaseIdVar or the caller: it then needs no
 * escaping for supervisor) put there by bash, and with the runtimes that release was built with (releaseRuntimes:
 * `missing` runs when one is gone).
 */
export function slotConfigShell(env: Target, slot: Slot, releaseId: string | HostVariable, missing = 'conf_b64=""'): string {
  const L = env.layout;
  if (typeof releaseId === 'string') return `conf_b64=${b64(slotConfig(env, slot, `${L.releases}/${releaseId}`, releaseId))}`;
  return String.raw`conf_b64=""
${releaseRuntimes(env, releaseId, missing)}
conf_text=${quote(slotConfig(env, slot, `${L.releases}/${RELEASE_MARK}`, RELEASE_MARK, MARKED_RUNTIMES))}
conf_text=${'$'}{conf_text//"${RELEASE_MARK}"/${word(releaseId)}}
conf_text=${'$'}{conf_text//"${PYTHON_MARK}"/"$rt_python"}
conf_text=${'$'}{conf_text//"${NODE_BIN_MARK}"/"$rt_node_bin"}
[ -n "$rt_missing" ] || conf_b64=$(printf %s "$conf_text" | base64 -w0)`;
}

/**
 * Shell that sets `ups_b64`: the upstreams file routing to `slot` for the release `$release_id` (its `$ops_release_<app>`:
 * nginx-config.ts upstreams), base64, made on the host as slotConfigShell makes its file (the id checked against the
 * release-id pattern first, by releaseIdVar).
 */
function upstreamsShell(env: Target, slot: Slot): string {
  return String.raw`# shellcheck disable=SC2016 # the file's text as it is: nginx's variables, not the shell's
ups_text=${quote(upstreams(env, slot, RELEASE_MARK))}
ups_text=${'$'}{ups_text//"${RELEASE_MARK}"/"$release_id"}
ups_b64=$(printf %s "$ups_text" | base64 -w0)`;
}

/**
 * Shell that sets `live_files` to `yes` when the files that shape what serves are the ones these settings render
 * for the live release `$cur_id` on the live slot `$slot` (the host's variables): the slot's supervisor file
 * (slotConfig: programs' commands and environment) and nginx's site and upstreams (site, for whether the
 * certificate is there, and upstreams), else `no` (a file missing or other). A release's fingerprint record says
 * what its deploy gave it, but a rollback starts a release and renders nginx with the settings of its own day:
 * those are what run. Compared byte for byte by bash builtins (no process: the no-op's path).
 */
export function liveFilesShell(env: Target): string {
  const L = env.layout;
  const cert = certificatePaths(env);
  const expected = (slot: Slot) => `expected_conf=${quote(slotConfig(env, slot, `${L.releases}/${RELEASE_MARK}`, RELEASE_MARK))}; expected_upstreams=${quote(upstreams(env, slot, RELEASE_MARK))}`;
  return String.raw`live_files=no
# file_is PATH TEXT: the file's bytes are TEXT (read whole: -d '' stops at the end, as a text file has no NUL).
file_is() { local got=""; [ -f "$1" ] || return 1; IFS= read -r -d '' got < "$1" || true; [ "$got" = "$2" ]; }
# shellcheck disable=SC2016 # the files' text as it is: nothing in it is expanded
case "$slot" in
  blue) ${expected('blue')} ;;
  green) ${expected('green')} ;;
  *) expected_conf="" ;;
esac
# shellcheck disable=SC2016 # the site's text as it is: nothing in it is expanded
${cert ? siteExpected(env, cert.cert) : `expected_site=${quote(site(env, false))}`}
if [ -n "$expected_conf" ] && [[ $cur_id =~ ${RELEASE_DIR_PATTERN} ]]; then
  expected_conf=${'$'}{expected_conf//"${RELEASE_MARK}"/"$cur_id"}
  expected_upstreams=${'$'}{expected_upstreams//"${RELEASE_MARK}"/"$cur_id"}
  conf_file=${quote(L.supervisorConf('blue'))}; [ "$slot" = blue ] || conf_file=${quote(L.supervisorConf('green'))}
  if file_is "$conf_file" "$expected_conf" && file_is ${quote(L.nginxSite)} "$expected_site" && file_is ${quote(L.nginxUpstreams)} "$expected_upstreams"; then live_files=yes; fi
fi`;
}

/**
 * Shell setting `expected_site` to the site a switch writes on this host for the certificate at `cert` (site(): plain
 * http without it; with it, its names only: coveredTarget leaves out the aliases it does not name yet). Told apart on
 * the host: no certificate; one naming every name; one lacking every alias (the aliases added together, their
 * certificate not issued yet). Any other set of aliases lacking leaves `expected_site` empty, so the live files are
 * not those (a deploy of the live commit is then made again rather than taken for a no-op). Needs CERT_FUNCTIONS.
 */
function siteExpected(env: Target, cert: string): string {
  const aliases = env.config.domain ? env.config.aliases : [];
  const bare = aliases.length ? coveredTarget(env, aliases) : undefined;
  return String.raw`if [ ! -s ${quote(cert)} ]; then expected_site=${quote(site(env, false))}
else
  expected_lacks=$(cert_lacks ${quote(cert)} ${certificateNames(env).map(quote).join(' ')})
  if [ -z "$expected_lacks" ]; then expected_site=${quote(site(env, true))}${bare ? `
  elif [ "$expected_lacks" = ${quote(aliases.join(' '))} ]; then expected_site=${quote(site(bare, true))}` : ''}
  else expected_site=""; fi
fi`;
}

/**
 * A bash condition, true when supervisord is not running on the host (its unit, or its init script without
 * systemd): a deploy's state step reports it (deployState, `supervisor_down`) and a rollback refuses on it
 * (rollbackStep) before anything is touched, since no start can succeed without it.
 */
export function supervisordDown(): string {
  return '{ if [ -d /run/systemd/system ]; then ! systemctl is-active --quiet supervisor; else ! service supervisor status >/dev/null 2>&1; fi; }';
}

/** The most a slot's previous release, started again, is given to be healthy (previousBackFunctions), in seconds. */
const PREVIOUS_WAIT_SECONDS = 30;

/** previousBack's wait: PREVIOUS_WAIT_SECONDS, or the health timeout when shorter. */
function previousWait(env: Target): number {
  return Math.min(env.config.switch.health_timeout, PREVIOUS_WAIT_SECONDS);
}

/**
 * The most `previous_back` (previousBackFunctions) takes, in seconds: the slot's programs stopped (group_down: STOP_WAIT_SECONDS,
 * then 5 s more at most), the previous group added, its checks (previousWait), and a margin for supervisor's answers.
 */
export function previousBackSeconds(env: Target): number {
  return STOP_WAIT_SECONDS + 5 + previousWait(env) + 15;
}

/** The lock directory's record of the slot a run's start filled (`<slot> <release id>`), left there by startSlot. */
export const STARTED_RECORD = 'started';

/**
 * The record a start keeps of what its slot held before it (`<slot> <had> <ran> <mode> <owner>`: had, 1 when the slot
 * had a supervisor file; ran, 1 when supervisor ran programs of its group; the file's mode and `user:group`), in the
 * run's lock directory beside STARTED_RECORD (root's, 0600), with PREVIOUS_FILE. Written before the start touches the
 * slot; removed once the release goes live (switchTo) or the previous one is back (previousBackFunctions): so a start, a switch
 * or the run itself (an interruption, ops lock release) failing at any point still knows what to put back.
 */
export const PREVIOUS_RECORD = 'previous';
/** The slot's supervisor file as it was before the start (root's, 0600), beside PREVIOUS_RECORD when `had` is 1. */
export const PREVIOUS_FILE = 'previous.conf';

/**
 * Shell defining the one way a slot gets back the release it held before a run's start replaced it (the previous
 * release, kept warm there for an instant rollback): `previous_file DIR` and `previous_back SLOT DIR`, from the records
 * the start keeps in DIR (the run's lock directory: PREVIOUS_RECORD, PREVIOUS_FILE). What runs it: a start that failed
 * (startRelease), a deploy's or a rollback's failed switch (putPreviousBack, rollbackStep) and an interrupted run's
 * lock release (core/steps/lock.ts stopStartedSlot).
 *
 * `previous_file DIR`: puts the slot's previous supervisor file back as it was (its mode and owner; removed when the
 * slot had none) and has supervisor read it (reloadConfig: no process is touched).
 *
 * `log_ends SLOT`: where each of SLOT's program logs ends now (`inode size path` a line, `- 0 path` when missing): where
 * what starts next on the slot begins writing them. `log_record SLOT ENDS`: ENDS (log_ends's lines) become SLOT's
 * record (layout.logStart), which ops logs shows the slot's logs from (core/steps/logs.ts); removed when it cannot be
 * written (ops logs then shows the whole files). A start writes it once its release is healthy (startRelease).
 *
 * `previous_back SLOT DIR`: SLOT's programs stop (group_down), and what the release its file names (the one this run
 * started there) left running outside supervisor (leftovers_down: a program that daemonised, holding the slot's
 * ports, would keep the previous release from binding them; said at the head of the line), the slot's log record
 * moved to where its logs end (what the release this run started there wrote is never shown as the slot's again,
 * whatever runs there next: the previous release, or the one a rollback reuses there), previous_file, and when its programs ran before the
 * start, supervisor starts its group again (group_add); only then are the records (and STARTED_RECORD) removed, so an
 * interruption on the way leaves them for the next caller, which does it all again. The previous release is then warm
 * again when it is what a rollback reuses at once (startRelease's reuse check: the file today's settings render for
 * it, and live_verdict, healthy with its own processes on the slot's ports), given previousWait; else it is left as
 * supervisor has it. Prints one line (stdout) saying which, so the user knows whether a rollback is instant or starts
 * it cold. Returns 0 once done (whatever the line says), 1 when DIR holds no record for SLOT (nothing done: what is
 * there was not this run's start's to replace), 2 when SLOT is the live one (the host's slot record: never touched).
 *
 * Needs SUPERVISOR_FUNCTIONS, IDENTITY_FUNCTIONS and probeLibrary.
 */
export function previousBackFunctions(env: Target): string {
  const L = env.layout;
  const wait = previousWait(env);
  const cold = 'a rollback to it would start it cold';
  const slots: Slot[] = ['blue', 'green'];
  const perSlot = (slot: Slot) =>
    `${slot}) conf=${quote(L.supervisorConf(slot))}; group=${quote(L.supervisorGroup(slot))}; checks=(${probes(env, slot).map(quote).join(' ')}) ;;`;
  // What a rollback to the release would write on the slot: its file as today's settings render it (conf_b64).
  const rendered = (slot: Slot) => `${slot})\n${slotConfigShell(env, slot, onHost('prev_id'))} ;;`;
  const logs = (slot: Slot) => `${slot}) files=(${slotLogFiles(env, slot).map(quote).join(' ')}) ;;`;
  return String.raw`# previous_slot SLOT: conf, group and checks of SLOT (blue or green), else fails.
previous_slot() {
  case "$1" in
    ${slots.map(perSlot).join('\n    ')}
    *) return 1 ;;
  esac
}
previous_file() {
  local dir=$1 rec_slot="" had="" ran="" mode="" owner="" conf="" group="" tmp checks=()
  read -r rec_slot had ran mode owner < "$dir/${PREVIOUS_RECORD}" || return 1
  previous_slot "$rec_slot" || return 1
  if [ "$had" = 1 ]; then
    tmp=$(mktemp "${'$'}{conf%/*}/.ops-prev.XXXXXX")
    if ! { cp "$dir/${PREVIOUS_FILE}" "$tmp" && chmod "$mode" "$tmp" && chown "$owner" "$tmp" && mv -f "$tmp" "$conf"; }; then rm -f "$tmp"; return 1; fi
  else
    rm -f "$conf"
  fi
  reread >/dev/null || true
}
log_ends() {
  local f l rest files=()
  local -A ends_at=()
  case "$1" in
    ${slots.map(logs).join('\n    ')}
    *) return 1 ;;
  esac
  # One stat for every log (a process less per file); a file it cannot read (not written yet) is "- 0".
  while IFS= read -r -d '' l; do rest=${'$'}{l#* }; ends_at[${'$'}{rest#* }]="${'$'}{l%% *} ${'$'}{rest%% *}"; done < <(stat --printf '%i %s %n\0' -- "${'$'}{files[@]}" 2>/dev/null || true)
  for f in "${'$'}{files[@]}"; do
    printf '%s %s\n' "${'$'}{ends_at[$f]:-- 0}" "$f"
  done
}
log_record() {
  local marks
  case "$1" in
    ${slots.map((slot) => `${slot}) marks=${quote(L.logStart(slot))} ;;`).join('\n    ')}
    *) return 1 ;;
  esac
  if ! { printf '%s\n' "$2" > "$marks.new" && mv -f "$marks.new" "$marks"; } 2>/dev/null; then
    rm -f "$marks.new" "$marks" 2>/dev/null || true
  fi
}
# back_say LINE: previous_back's line, after what leftovers_down stopped (back_left) when it stopped something.
back_say() { printf '%s\n' "${'$'}{back_left:+$back_left; }$1"; }
previous_back() {
  local ends inode size f slot=$1 dir=$2 rec_slot="" had="" ran="" live_slot="" conf="" group="" checks=() prev_id="" head="" back="" conf_text="" conf_b64="" started="" back_left="" left_dir="" prev_re=', release ([^ ]+)\. Rewritten by deploys\.$'
  read -r rec_slot had ran _ 2>/dev/null < "$dir/${PREVIOUS_RECORD}" || true
  if [ "$rec_slot" != "$slot" ] || ! previous_slot "$slot"; then return 1; fi
  if [ -f ${quote(L.slotFile)} ]; then read -r live_slot < ${quote(L.slotFile)} || true; fi
  if [ "$live_slot" = "$slot" ]; then echo "slot $slot is the live one: left as it is"; return 2; fi
  # What the slot runs now (the release this run started there): what it left running outside supervisor goes too.
  IFS= read -r head 2>/dev/null < "$conf" || true
  if [[ $head =~ $prev_re ]]; then started=${'$'}{BASH_REMATCH[1]}; fi
  [[ $started =~ ${RELEASE_DIR_PATTERN} ]] || started=""
  head=""
  group_down "$group" ${STOP_WAIT_SECONDS}
  left_dir=""; [ -z "$started" ] || left_dir=${quote(L.releases)}/$started
  back_left=$(leftovers_down "$slot" "$started" "$left_dir" ${quote(env.appUser)} "${'$'}{checks[@]}") || true
  # What the release this run started wrote stays in the slot's logs: ops logs shows them from here on, and the
  # health gate's verdict on the previous release started again quotes what it writes from here (group_fatal).
  ends=$(log_ends "$slot"); log_record "$slot" "$ends"
  local -A LOG_START=() LOG_INODE=(); while read -r inode size f; do [ -z "$f" ] || { LOG_START[$f]=$size; LOG_INODE[$f]=$inode; }; done <<< "$ends"
  if ! previous_file "$dir"; then back_say "slot $slot's previous supervisor file could not be put back (${'$'}{conf}): no release is kept warm there; ${cold}"; return 0; fi
  if [ "$had" = 1 ] && [ "$ran" = 1 ] && ! back=$(group_add "$group"); then ran=failed; fi
  rm -f "$dir/${PREVIOUS_RECORD}" "$dir/${PREVIOUS_FILE}" "$dir/${STARTED_RECORD}"
  if [ "$had" != 1 ]; then back_say "slot $slot held no release before this run's start: none is kept warm there"; return 0; fi
  IFS= read -r head < "$conf" || true
  if [[ $head =~ $prev_re ]]; then prev_id=${'$'}{BASH_REMATCH[1]}; fi
  if [ "$ran" = 0 ]; then back_say "slot $slot's previous file (${'$'}{prev_id:-$conf}) is back in place; its programs did not run before this run's start and were not started"; return 0; fi
  if [ "$ran" = failed ]; then back_say "the previous release ${'$'}{prev_id:-of slot $slot} could not be started again there (supervisor: $back): no release is kept warm on slot $slot; ${cold}"; return 0; fi
  if ! [[ $prev_id =~ ${RELEASE_DIR_PATTERN} ]]; then back_say "slot $slot's previous programs run again (its file names no release of ours: not checked)"; return 0; fi
  case "$slot" in
    ${slots.map(rendered).join('\n    ')}
  esac
  if [ "$conf_b64" != "$(base64 -w0 < "$conf")" ]; then
    back_say "the previous release $prev_id runs again on slot $slot as it ran, but today's settings render its supervisor file otherwise: a rollback to it would start it afresh (cold)"
  elif back=$(FATAL_GROUP=$group live_verdict "$prev_id" ${quote(L.releases)}/"$prev_id" "$group" ${wait} ${env.config.switch.health_interval} "${'$'}{checks[@]}") && [ "$back" = ok ]; then
    back_say "the previous release $prev_id is back on slot $slot, healthy: kept warm, a rollback to it only moves traffic"
  else
    back_say "the previous release $prev_id was started again on slot $slot but did not pass its checks within ${wait}s ($back): left as supervisor has it; ${cold}"
  fi
}`;
}

/** switch.settle as group_settled reads it: a decimal number of seconds, to the millisecond (never 1e-7). */
function settleSeconds(env: Target): string {
  return String(Math.round(env.config.switch.settle * 1000) / 1000);
}

/** rollbackStep's start exits with this when it reused the slot (the release already ran there, warm and healthy). */
const START_REUSED = 4;

/**
 * startSlot for a release given by the runner, or chosen on the host (`onHost('release_id')`: rollbackStep).
 * `reusedExit`: the exit code when the slot already runs the release and is reused (0 unless given).
 */
function startRelease(env: Target, slot: Slot, releaseId: string | HostVariable, reusedExit = 0, dotenvSums?: string): Step {
  const L = env.layout;
  const sw = env.config.switch;
  const group = L.supervisorGroup(slot);
  const probeList = probes(env, slot).map(quote).join(' ');
  const identity = `check_identity "$release_id" "$release" ${quote(group)} ${programPorts(env, slot).map(quote).join(' ')}`;
  return {
    name: `start ${slot}`,
    as: 'root',
    timeout: sw.health_timeout + Math.ceil(sw.settle) + sw.drain + previousBackSeconds(env) + 120,
    script: String.raw`${SYSTEM_FUNCTIONS}
${probeLibrary(env)}
${SUPERVISOR_FUNCTIONS}
${IDENTITY_FUNCTIONS}
${releaseIdVar(releaseId)}
release=${quote(L.releases)}/$release_id
# What serves while this start fails: the release the current link names, or nothing where none went live yet (a first deploy).
if [ -L ${quote(L.current)} ]; then live_note="the live release keeps serving"; else live_note="no release was live on this host: nothing serves yet"; fi
# The other slot's ports: none of this slot's programs may listen there (the health gate and check_identity).
OTHER_SLOT=${otherSlot(slot)} OTHER_PORTS=${quote(Object.keys(env.config.programs).map((n) => env.port(n, otherSlot(slot))).join(' '))}
${dotenvSums ? `${dotenvUnchanged(env, dotenvSums)}
` : ''}${slotConfigShell(env, slot, releaseId, `echo "$rt_missing" >&2; exit ${START_FAILED_CLEAN}`)}
conf=${quote(L.supervisorConf(slot))}
# The slot may still run exactly this (the previous release, kept warm: its file compared as base64, the way it
# travels): then health and identity are enough, checked at once (live_verdict).
if [ -f "$conf" ] && [ "$(base64 -w0 < "$conf")" = "$conf_b64" ] && [ "$(live_verdict "$release_id" "$release" ${quote(group)} 2 0.1 ${probeList})" = ok ]; then
  echo "slot ${slot} already runs $release_id and is healthy: reused"
  exit ${reusedExit}
fi
# What this start fills (STARTED_RECORD) and what the slot held before it (PREVIOUS_RECORD, PREVIOUS_FILE) are kept in
# the run's lock directory until the release goes live (switchTo) or the previous one is back (previous_back): a
# failed start, a failed switch and an interrupted run (its lock released on a signal, or by ops lock release:
# core/steps/lock.ts stopStartedSlot) put back what the slot held, whenever they happen. A start outside a run (no
# lock) keeps them in a directory of its own, gone with it.
keep=${quote(L.lock)}
if [ -d "$keep" ]; then printf '%s %s\n' ${slot} "$release_id" > "$keep/${STARTED_RECORD}" 2>/dev/null || true
else keep=$(mktemp -d); trap 'rm -rf "$keep"' EXIT; fi
# Whether the slot's programs run now says whether previous_back starts them again.
sup_pids; prev_ran=0
for k in "${'$'}{!SUP_PID[@]}"; do if [[ $k == ${quote(`${group}:`)}* && ${'$'}{SUP_PID[$k]} != 0 ]]; then prev_ran=1; fi; done
had_prev=0; prev_mode="- -"; if [ -f "$conf" ]; then had_prev=1; prev_mode=$(stat -c '%a %U:%G' "$conf"); fi
if ! (
  umask 077
  if [ "$had_prev" = 1 ]; then cp "$conf" "$keep/${PREVIOUS_FILE}.new" && mv -f "$keep/${PREVIOUS_FILE}.new" "$keep/${PREVIOUS_FILE}"; else rm -f "$keep/${PREVIOUS_FILE}"; fi &&
    printf '%s %s %s %s\n' ${slot} "$had_prev" "$prev_ran" "$prev_mode" > "$keep/${PREVIOUS_RECORD}.new" && mv -f "$keep/${PREVIOUS_RECORD}.new" "$keep/${PREVIOUS_RECORD}"
) 2>/dev/null; then
  rm -f "$keep/${STARTED_RECORD}" "$keep/${PREVIOUS_RECORD}.new" "$keep/${PREVIOUS_FILE}.new"
  echo "cannot keep a copy of slot ${slot}'s supervisor file in $keep (no space left?): nothing was started; $live_note" >&2
  exit ${START_FAILED_CLEAN}
fi
${previousBackFunctions(env)}
# The new file goes in; the previous one comes back if supervisor refuses it.
restore() { previous_file "$keep" || true; }
${putUnlessHostOwn(L.supervisorConf(slot), { b64Word: '"$conf_b64"' }, supervisorOwn(env))}
if ! msg=$(reread); then
  restore
  if reread >/dev/null; then
    echo "supervisor refused the new configuration of slot ${slot} (${L.supervisorConf(slot)}): $msg" >&2
    echo "the previous file is back in place; $live_note" >&2
  elif [[ $(rpc supervisor.getState) == *"<methodResponse>"* ]]; then
    # supervisord runs (it keeps the programs it runs) but refuses every file: the live release runs as it did.
    echo "supervisor refuses its configuration, with or without this deploy's change (fix the file it names): $msg" >&2
    echo "the previous file is back in place; $live_note" >&2
  else
    # supervisord does not answer: the live release's programs do not run under it either.
    echo "supervisord does not answer (systemctl start supervisor): $msg" >&2
    echo "the previous file is back in place; the live slot was not touched, but its programs do not run without supervisord (see ops status)" >&2
  fi
  # The slot holds what it held (its programs untouched): nothing to put back.
  rm -f "$keep/${STARTED_RECORD}" "$keep/${PREVIOUS_RECORD}" "$keep/${PREVIOUS_FILE}"
  exit ${START_FAILED_CLEAN}
fi
# Anything left on this slot (the release before, a failed start) goes first, so the ports are ours: its programs,
# and what our programs left running outside supervisor (leftovers_down, as slotDown stops a slot: a program that
# daemonised is out of the process group supervisor stops, and would run on or keep a port): the release its file
# named, or, with no file naming one (a slot stopped by hand, its file gone), what holds the slot's ports alone (the
# state read let only our own leftovers through there: report_slot's "own").
# Requests nginx still has in flight to the release this slot ran (kept warm) end first (switch.drain at most).
if [ "$prev_ran" = 1 ]; then ${drainSlot(env, slot)}; fi
group_down ${quote(group)} ${STOP_WAIT_SECONDS}
left_id=""; left_dir=""; left_head=""; left_re=', release ([^ ]+)\. Rewritten by deploys\.$'
if [ "$had_prev" = 1 ]; then IFS= read -r left_head < "$keep/${PREVIOUS_FILE}" || true; fi
if [[ $left_head =~ $left_re ]]; then left_id=${'$'}{BASH_REMATCH[1]}; fi
if [[ $left_id =~ ${RELEASE_DIR_PATTERN} ]]; then left_dir=${quote(L.releases)}/$left_id; else left_id=""; fi
left_gone=$(leftovers_down ${slot} "$left_id" "$left_dir" ${quote(env.appUser)} ${programPorts(env, slot).map(quote).join(' ')}) || true
[ -z "$left_gone" ] || echo "$left_gone"
# Whatever listens on a port (an HTTP server or not) makes it taken: one \`ss\` for every port (LISTEN_TABLE).
LISTEN_TABLE=$(ss -Htlnp 2>/dev/null)
for p in ${probeList}; do
  IFS=: read -r name port path <<< "$p"
  if [ -n "$(listeners "$port")" ]; then echo "port $port (slot ${slot}, program $name) is already in use by another process: $(for l in $(listeners "$port"); do describe_proc "$l"; echo; done)" >&2; previous_back ${slot} "$keep" >&2 || true; exit ${START_FAILED_CLEAN}; fi
done
unset LISTEN_TABLE
# Remember where each log ends (and which file it is: supervisor rotates by renaming), to show only what the new
# processes write: in the health gate's verdict on a program that keeps exiting (group_fatal's log_reason), in a
# failure's output below, and in ops logs once the release runs here (${L.logStart(slot)}).
log_at=$(log_ends ${slot})
declare -A LOG_START LOG_INODE
while read -r inode size f; do LOG_START[$f]=$size; LOG_INODE[$f]=$inode; done <<< "$log_at"
# supervisor's startsecs, which group_exits names: a program exiting later is restarted without end.
STARTSECS=${STARTSECS}
# The file's time is when the slot's programs start for the release: ops status tells a restart since (a crash after
# the health check passed: core/steps/status.ts).
touch -c "$conf" 2>/dev/null || true
if ! msg=$(group_add ${quote(group)}); then
  echo "supervisor refused to start ${group}: $msg; $live_note" >&2
  previous_back ${slot} "$keep" >&2 || true
  exit ${START_FAILED_CLEAN}
fi
verdict=""
if ! SLOW_START_HINT=switch.health_timeout FATAL_GROUP=${quote(group)} wait_healthy ${sw.health_timeout} ${sw.health_interval} ${probeList}; then
  verdict="release $release_id did not become healthy on slot ${slot}: $UNHEALTHY"
elif ! ${identity}; then
  verdict="release $release_id is not what answers on slot ${slot}: $IDENTITY"
# Each of these two reads supervisor's pids that the check before it has just read (SUP_READ): one getAllProcessInfo each.
elif ! SUP_READ=1 group_settled ${quote(group)} ${settleSeconds(env)}; then
  verdict="release $release_id did not keep running on slot ${slot}: $SETTLE"
elif ! SUP_READ=1 ${identity}; then
  # Started, and still the processes that answer (one that stopped listening, or lost its port to another).
  verdict="release $release_id is not what answers on slot ${slot}: $IDENTITY"
fi
[ -z "$verdict" ] || ops_report ${FAILURE_KEYS.failure} "$(printf '%s' "$verdict" | ${maskText(env)})"
if [ -n "$verdict" ] && [ -n "${'$'}{OTHER_SLOT_LISTENERS:-}" ]; then
  # It answers visitors of the other slot (a port it shares with the live release): stopped at once, before its logs
  # are read (supervisor signals it now; previous_back's group_down below waits for it and removes the group).
  rpc supervisor.stopProcessGroup ${quote(group)} bool:0 >/dev/null
fi
if [ -n "$verdict" ]; then
  # What the programs wrote, and the health verdict (an error page's first bytes), masked here: a rollback runs
  # without the key that lets the runner mask them (mask_text).
  {
  # Each line masked, then cut to 500 characters (mask_clip: a program printing megabytes on one line), its control
  # characters shown as \xHH (a binary dump, a terminal escape: controls_shown), as the verdict quotes a log. A log
  # whose every line the verdict quotes already ("<file> ends: ...", its last 4 lines) is not shown again; one with
  # more (a traceback's KeyError above gunicorn's "Worker failed to boot") is, whole.
  for f in "${'$'}{!LOG_START[@]}"; do
    new=""; quoted=1
    while IFS= read -r l; do
      mask_clip "$l" 500; controls_shown "$MASK_TEXT"; new+="$CONTROLS_TEXT"$'\n'
      [[ $verdict == *"$f ends: "*"$CONTROLS_TEXT"* ]] || quoted=0
    done < <(log_since "$f" | log_tail 8)
    [ -z "$new" ] || [ "$quoted" = 1 ] || printf -- '--- %s\n%s' "$f" "$new"
  done
  supervisorctl status ${quote(`${group}:*`)} || true
  echo "$verdict; $live_note"
  } | ${maskText(env)} || true
  back_msg=$(previous_back ${slot} "$keep") || true
  [ -z "$back_msg" ] || printf '%s\n' "$back_msg" | ${maskText(env)} || true
  exit ${START_FAILED_CLEAN}
fi >&2
# The slot runs this release now: ops logs shows each log from where it began (core/steps/logs.ts). Not written
# (the file removed), ops logs shows the whole files, the older releases' lines too.
log_record ${slot} "$log_at"
echo "slot ${slot} healthy: ${Object.keys(env.config.programs).join(', ')} (each answered by the process supervisor started for $release_id)"
exposed_listeners ${programPorts(env, slot).map(quote).join(' ')}`,
  };
}

/**
 * Shell waiting, for at most switch.drain seconds, until nginx holds no connection to the ports of `slot`, which is not
 * live: the requests nginx's old workers (shutting down since a switch moved traffic away from the slot) still have in
 * flight to the release it runs, kept warm (a long poll, an upload, a download, a stream); a start replacing that
 * release (the next deploy, a rollback) stops it only then. Per port, not per old worker (stopSlot's drain): workers of
 * older reloads may hold streams to the live slot for hours, and a request body nginx is still reading has no
 * connection yet but finds the slot's ports answered again by the release starting there. Says how long it waited,
 * and how many were cut at the limit.
 */
function drainSlot(env: Target, slot: Slot): string {
  const seconds = env.config.switch.drain;
  if (!seconds) return ':';
  const filter = `( ${Object.keys(env.config.programs).map((name) => `dport = :${env.port(name, slot)}`).join(' or ')} )`;
  // ss -p names each socket's processes: nginx's own connections only (a program's idle pool to its API is not a request).
  // It reads every process's descriptors, so it is asked only once a socket to the slot is there: first the sockets
  // alone (netlink, no walk of /proc), the count into drain_now (no subshell); between looks, read's timeout on a pipe
  // nobody writes to stands in for sleep, the clock is printf's (builtins: no process per look).
  return String.raw`in_flight() {
    local line
    drain_now=0
    [ -n "$(ss -Htn state established ${quote(filter)} 2>/dev/null)" ] || return 0
    while IFS= read -r line; do [[ $line != *'"nginx"'* ]] || drain_now=$(( drain_now + 1 )); done < <(ss -Htnp state established ${quote(filter)} 2>/dev/null)
  }
  in_flight; drain_n=$drain_now
  if [ "$drain_n" -gt 0 ]; then
    printf -v drain_start '%(%s)T' -1; drain_end=$(( drain_start + ${seconds} )); drain_at=$drain_start
    exec {drain_pause}<> <(:)
    while [ "$drain_now" -gt 0 ] && [ "$drain_at" -lt "$drain_end" ]; do read -r -t 0.2 -u "$drain_pause" _ || true; in_flight; printf -v drain_at '%(%s)T' -1; done
    exec {drain_pause}<&-
    echo "slot ${slot}: waited $(( drain_at - drain_start )) s for $drain_n request(s) nginx still had in flight to the release it ran$( [ "$drain_now" -eq 0 ] || echo "; $drain_now still in flight after switch.drain (${seconds} s): cut")"
  fi`;
}

/**
 * Stop a slot's programs and remove its group, and what the release it ran left running outside supervisor
 * (leftovers_down: a program that daemonised, holding the slot's ports; named in the step's line): after a failed
 * switch (no drain), or the old slot after a switch. Draining waits until nginx's old workers (the only ones still routing to the old slot) have
 * finished their in-flight requests and exited, for at most `drainSeconds`.
 */
export function stopSlot(env: Target, slot: Slot, drainSeconds = 0): Step {
  const drain = drainSeconds
    ? String.raw`deadline=$(( $(date +%s) + ${drainSeconds} ))
while pgrep -f 'nginx: worker process is shutting down' >/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
`
    : '';
  return {
    name: `stop ${slot}`,
    as: 'root',
    timeout: drainSeconds + 120,
    script: `${SUPERVISOR_FUNCTIONS}\n${IDENTITY_FUNCTIONS}\n${drain}${slotDown(env, slot)}`,
  };
}

/**
 * Shell (needs SUPERVISOR_FUNCTIONS and IDENTITY_FUNCTIONS) that is the one way a slot that is not live is stopped:
 * its programs (group_down) and what the release its file names left running outside supervisor (leftovers_down),
 * its file removed; prints "slot SLOT stopped", then "; " and leftovers_down's line when it stopped something.
 * Nothing when the slot has no file. stopSlot, putPreviousBack and an interrupted run's lock release
 * (core/steps/lock.ts) run it.
 */
export function slotDown(env: Target, slot: Slot): string {
  const L = env.layout;
  return String.raw`conf=${quote(L.supervisorConf(slot))}
if [ -f "$conf" ]; then
  # The release the slot ran: what its programs left running outside supervisor (leftovers_down) goes too.
  stop_id=""; stop_head=""; stop_re=', release ([^ ]+)\. Rewritten by deploys\.$'; IFS= read -r stop_head < "$conf" || true
  if [[ $stop_head =~ $stop_re ]]; then stop_id=${'$'}{BASH_REMATCH[1]}; fi
  [[ $stop_id =~ ${RELEASE_DIR_PATTERN} ]] || stop_id=""
  group_down ${quote(L.supervisorGroup(slot))} ${STOP_WAIT_SECONDS}
  stop_dir=""; [ -z "$stop_id" ] || stop_dir=${quote(L.releases)}/$stop_id
  stop_gone=$(leftovers_down ${slot} "$stop_id" "$stop_dir" ${quote(env.appUser)} ${programPorts(env, slot).map(quote).join(' ')}) || true
  rm -f "$conf"
  reread >/dev/null || true
  echo "slot ${slot} stopped${'$'}{stop_gone:+; $stop_gone}"
fi`;
}

/** What putPreviousBack reports: `previous_back` (previous_back's line: which release the slot holds again, and whether it is warm). */
export const PREVIOUS_KEYS = reportKeys('previous_back');

/**
 * After a start that succeeded (or broke: a timeout, a lost connection) and a switch that did not make its release
 * live: `slot` gets back the release it held before the start (previous_back, from the records the start kept in the
 * run's lock: warm again for an instant rollback, or said not to be; `previous_back` reports its line). Without such a
 * record, the slot is stopped and its file removed (as stopSlot does) only when it holds the release this run started
 * there (the lock's STARTED_RECORD): what it holds otherwise (the previous release already put back, a warm release the
 * start reused) is not this run's to stop. Run under the run's lock (core/ops/locked.ts fences it, as every step of a
 * run: run_lock_guard): once the lock is no longer this run's (`ops lock release --force` took it, and put the slot back
 * itself; another run may hold it now), it touches nothing. The live slot (the host's slot record) is never touched.
 */
export function putPreviousBack(env: Target, slot: Slot): Step {
  const L = env.layout;
  const lock = quote(L.lock);
  return {
    name: `previous back ${slot}`,
    as: 'root',
    timeout: previousBackSeconds(env) + 30,
    script: String.raw`${probeLibrary(env)}
${SUPERVISOR_FUNCTIONS}
${IDENTITY_FUNCTIONS}
${previousBackFunctions(env)}
back_rc=0; back=$(previous_back ${slot} ${lock}) || back_rc=$?
if [ "$back_rc" = 1 ]; then
  started_slot=""; started_release=""
  read -r started_slot started_release 2>/dev/null < ${lock}/${STARTED_RECORD} || true
  if [ "$started_slot" = ${slot} ] && [ -n "$started_release" ] && grep -qF -- ", release $started_release." ${quote(L.supervisorConf(slot))} 2>/dev/null; then
${slotDown(env, slot)}
  fi
else
  echo "$back"
  ops_report ${PREVIOUS_KEYS.previous_back} "$back"
fi`,
  };
}

/**
 * Bash running `body` for each line `<release id> <fingerprint>` of .ops/fingerprint, with `$id` and `$fp` set; with
 * bash's read (no process). A last line without its newline and a CRLF line ending read as any line (a record
 * written by hand or by an editor: `while read` alone skipped such a last line, so the live release read as having no
 * record, and the next switch dropped it). Nothing runs when the file is missing or not a regular file.
 */
export function forEachFingerprintRecord(env: Target, body: string): string {
  const file = quote(env.layout.fingerprint);
  return String.raw`if [ -f ${file} ]; then
  while read -r id fp || [ -n "$id" ]; do fp=${'$'}{fp%$'\r'}; ${body}; done < ${file}
fi`;
}

/**
 * What a deploy gave a release, as its fingerprint record says: deployFingerprint, dotenvSums of the files it wrote,
 * and settingsDigest (the settings alone, by key: a rollback replaces it with those it renders the release's
 * programs and nginx from).
 */
export interface DeployRecord {
  fingerprint: string;
  dotenvSums: string;
  settings: string;
}

/** What settingsDigest writes (core/ops/deploy-plan.ts): `key=hex` parts, comma-separated; no space, nothing the shell expands. */
const SETTINGS_FIELD = /^[a-z][a-z0-9_]*=[0-9a-f]{8}(,[a-z][a-z0-9_]*=[0-9a-f]{8})*$/;

/**
 * The deploy's new fingerprint records, written to .ops/fingerprint.new (renamed over the records once `current`
 * flipped): a line `<release id> <fingerprint> <.env sha256> <environ sha256> <settings>` per release (older records
 * have the fingerprint alone, or no settings), the lines of releases still on the host kept as they are (a rollback to one of them puts live
 * what it was deployed with), this release's last; mode 0600. A missing or damaged file (not a regular file) is
 * started afresh.
 */
export function fingerprintRecords(env: Target, record: DeployRecord): string {
  const L = env.layout;
  if (!/^[0-9a-f]+$/.test(record.fingerprint) || !/^[0-9a-f]{64} [0-9a-f]{64}$/.test(record.dotenvSums) || !SETTINGS_FIELD.test(record.settings)) throw new Error(`fingerprintRecords: not a record: ${JSON.stringify(record)}`);
  // Root's alone (0600): digests of the .env, whose own mode is 0600.
  return String.raw`umask 077
{ ${forEachFingerprintRecord(env, String.raw`if [ -n "$id" ] && [ "$id" != "$release_id" ] && [ -d ${quote(L.releases)}/"$id" ]; then printf '%s %s\n' "$id" "$fp"; fi`)}
printf '%s %s\n' "$release_id" ${quote(`${record.fingerprint} ${record.dotenvSums} ${record.settings}`)}; } > ${quote(`${L.fingerprint}.new`)}
umask 022`;
}

/**
 * Shell (a function's body: it may `return`) that records `settings` (settingsDigest) as what the release
 * `$release_id` now runs with, in its line of .ops/fingerprint (the fifth field, replaced or added): a rollback renders
 * its programs and nginx from them, so the next rollback to it compares with those. The fingerprint and the sums stay
 * what its deploy gave it (a deploy's no-op compares them); a line without the sums (an older version's) and the other
 * releases' lines are left as they are; no records, nothing written; mode 0600.
 */
export function recordSettings(env: Target, settings: string): string {
  const L = env.layout;
  if (!SETTINGS_FIELD.test(settings)) throw new Error(`recordSettings: not a settings digest: ${settings}`);
  return String.raw`[ -f ${quote(L.fingerprint)} ] || return 0
umask 077
record_keep='^([^ ]+ [^ ]+ [^ ]+)( [^ ]+)?$'
{ ${forEachFingerprintRecord(env, String.raw`if [ "$id" = "$release_id" ] && [[ $fp =~ $record_keep ]]; then fp="${'$'}{BASH_REMATCH[1]} ${settings}"; fi; if [ -n "$id" ]; then printf '%s %s\n' "$id" "$fp"; fi`)}; } > ${quote(`${L.fingerprint}.new`)}
mv -fT ${quote(`${L.fingerprint}.new`)} ${quote(L.fingerprint)}`;
}

/** How long the switch looks for the new slot at /.ops/slot, at most, in seconds (about 5 s of 100 looks when nothing answers). */
const SLOT_LOOK_SECONDS = 6;
/** The most a reload of the previous files takes (nginx_reload's 10 s of waiting), when the new slot is not seen. */
const RELOAD_BACK_SECONDS = 11;
/** The most the switch's part after nginx's reload takes, in seconds: the look at /.ops/slot (and the previous files back), two renames, the history. */
const SWITCH_THEN_SECONDS = SLOT_LOOK_SECONDS + RELOAD_BACK_SECONDS + 4;

/**
 * Shell that looks (SLOT_LOOK_SECONDS at most) for `slot` at /.ops/slot through the local nginx, where the site's
 * visitors are (at the host's address they reach: visitorAddress; the location answers a request from the host
 * itself, to any of its addresses): over https when the site is served with its certificate (its port 80 only redirects there), else
 * over http. Over http alone, a server block of another site that nginx takes first for the name on 443 (a
 * hand-made or certbot-made site of the same domain: nginx warns "conflicting server name", ignored) would leave
 * every https visitor on that site while the switch saw its slot on port 80. Sets `slot_seen` (1 when nginx
 * answered the slot) and `slot_got` (the last answer, on one line).
 * Over http each look is bash's own request (probe.sh's probe_send and probe_answer, its body read with
 * PROBE_READ_BODY: no process per look; its connect bounded to a second by probe_armed's watchdog, its answer to a
 * second as curl's --max-time was), curl's only for a bash built without net redirections; over https, curl's.
 */
function slotLook(env: Target, slot: Slot, certificateReady: boolean): string {
  const host = env.config.domain ? ` -H ${quote(`Host: ${env.config.domain}`)}` : '';
  const name = siteName(env);
  // At the address the visitors reach (visitorAddress), as the health paths are asked (nginxServed): a server block
  // listening on 127.0.0.1 alone (a monitoring agent's status page) would answer a look there, not the site.
  const tls = certificateReady && certificatePaths(env) !== undefined;
  const curlAsk = tls
    ? `${LOCAL_CURL} -sk --max-time 1 --resolve ${quote(`${name}:443:`)}"$gate_at" ${quote(`https://${name}/.ops/slot`)}`
    : `${LOCAL_CURL} -s --max-time 1${host} http://"$gate_at"/.ops/slot`;
  // What answered is quoted masked, then cut (mask_clip): an app's page when nginx does not answer it itself.
  const judge = (indent: string) => [
    String.raw`if [ "$got" = ${quote(slot)} ]; then slot_seen=1; break; fi`,
    String.raw`mask_ready; mask_string "$got"; mask_clip "${'$'}{MASK_TEXT//$'\n'/ }" 80; slot_got=$MASK_TEXT`,
    String.raw`if [ "$i" = 100 ] || [ "$SECONDS" -ge "$slot_until" ]; then break; fi`,
  ].join(`\n${indent}`);
  // The look's own shell after the library it needs (probeLibrary holds the mask functions and MASK_ARGS too).
  const head = String.raw`${visitorAddress()}
slot_seen=""; slot_got=""; slot_until=$(( SECONDS + ${SLOT_LOOK_SECONDS} ))`;
  if (tls) {
    return String.raw`${maskLibrary(env)}
${head}
for i in {1..100}; do
  got=$(${curlAsk} 2>/dev/null || true)
  ${judge('  ')}
  sleep 0.05
done`;
  }
  // The request curl sent: Host the domain, else the address asked (in brackets when IPv6, as curl writes it). Its
  // answer is read with MASK_ARGS hidden (slot_ask's local): the texts to mask (a process or more per release) are
  // loaded only when a look fails (judge's mask_ready), as they were for curl's answer; probe_body cuts what it reads
  // at a word's end (mask_cut_end), and judge masks it then.
  return String.raw`${probeLibrary(env)}
${head}
# shellcheck disable=SC2034 # MASK_ARGS hidden from probe_answer (mask_ready), PROBE_*: probe_send's and probe_answer's
slot_ask() {
  local -a MASK_ARGS
  local PROBE_ADDR=${'$'}{gate_at#\[} PROBE_HOST=${env.config.domain ? quote(env.config.domain) : '$gate_at'} PROBE_HEADERS="" PROBE_READ_BODY=1 PROBE_CONNECT_SECONDS=1
  PROBE_ADDR=${'$'}{PROBE_ADDR%]}; got=""
  if probe_send 80 /.ops/slot; then probe_answer "$PROBE_FD" $(( ${'$'}{EPOCHREALTIME/./} + 1000000 )) && got=$PROBE_BODY || true
  elif [ -z "$PROBE_WHY" ] && ! net_redirections; then got=$(${curlAsk} 2>/dev/null || true); fi
}
slot_looks() {
  for i in {1..100}; do
    slot_ask
    ${judge('    ')}
    read -r -t 0.05 -u "$pause" _ || true
  done
}
probe_armed slot_looks`;
}

/**
 * Shell (stderr) naming what takes one of the site's names (siteNames: the domain, each alias) from it when nginx says
 * so: another enabled site with the same server_name on a port of the site, loaded first (a certbot-made site of the
 * same domain, a hand-made www site, left behind), which nginx keeps while it ignores the site's own block there
 * ("conflicting server name ... ignored"): its visitors get that site. Nothing without a domain (the site is then the
 * default server) or without such a warning.
 */
function conflictHint(env: Target): string {
  const names = siteNames(env);
  if (!names.length) return '';
  return String.raw`  slot_conflicts=$(nginx -t 2>&1 || true); slot_names=(${names.map(quote).join(' ')})
  for slot_name in "${'$'}{slot_names[@]}"; do
    slot_conflict=$(grep -F "conflicting server name \"$slot_name\"" <<< "$slot_conflicts" | head -n 1 || true)
    [ -z "$slot_conflict" ] || echo "hint: nginx -t says: ${'$'}{slot_conflict#*\]*: }: another enabled site has server_name $slot_name, loaded before this one, and nginx gives it the visitors; the files naming it: $(grep -lsw -- "$slot_name" /etc/nginx/sites-enabled/* /etc/nginx/conf.d/*.conf 2>/dev/null | tr '\n' ' ')- remove the one no longer used, or its server_name" >&2
  done`;
}

/** The most the switch's look at the aliases' redirects takes, in seconds (aliasLook: all of them, each try bounded by curl). */
const ALIAS_LOOK_SECONDS = 4;

/**
 * Shell that asks nginx, at the address visitors reach (`$gate_at`, set by slotLook), for each alias of the site
 * (aliases) on each port it serves them (80, and 443 with its certificate when `tls`), whether the site's own alias
 * server block answers: a 301 to the domain (aliasServers: https://<domain> with TLS, else http://). Another enabled
 * site claiming an alias (an old hand-made www site, loaded first: nginx only warns "conflicting server name") would
 * quietly take that alias's visitors while the domain served the release. Sets `alias_taken` ('' when each alias
 * answers so; else each one that does not, with what answered, masked and cut). Old workers may answer for a
 * moment after the reload: tried again until ALIAS_LOOK_SECONDS. '' without aliases.
 */
function aliasLook(env: Target, tls: boolean): string {
  const domain = env.config.domain;
  if (!domain || !env.config.aliases.length) return 'alias_taken=""';
  const scheme = tls ? 'https' : 'http';
  const asks = env.config.aliases.flatMap((a) => [
    { url: `http://${a}/.ops/slot`, args: `-H ${quote(`Host: ${a}`)} http://"$gate_at"/.ops/slot` },
    ...(tls ? [{ url: `https://${a}/.ops/slot`, args: `-k --resolve ${quote(`${a}:443:`)}"$gate_at" ${quote(`https://${a}/.ops/slot`)}` }] : []),
  ]);
  const want = `301 ${scheme}://${domain}/.ops/slot`;
  return String.raw`alias_until=$(( SECONDS + ${ALIAS_LOOK_SECONDS} )); alias_taken=""
${asks
  .map(
    (x) => String.raw`while :; do
  alias_got=$(${LOCAL_CURL} -s -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 1 ${x.args} 2>/dev/null || true)
  if [ "$alias_got" = ${quote(want)} ] || [ "$SECONDS" -ge "$alias_until" ]; then break; fi
  sleep 0.1
done
if [ "$alias_got" != ${quote(want)} ]; then mask_clip "$alias_got" 120; alias_taken+="${'$'}{alias_taken:+; }"${quote(`${x.url} answers `)}"'${'$'}{MASK_TEXT:-nothing}'"; fi`,
  )
  .join('\n')}`;
}

/** release.asset_dirs' directories given a url: those nginx serves from layout.assets. */
export function servedAssetDirs(env: Pick<Target, 'config'>): string[] {
  return assetDirs(env.config).flatMap((a) => (a.url ? [a.dir] : []));
}

/**
 * Shell that makes `tree` (under layout.assets) hold what nginx is to serve of the served asset directories of release
 * `$release_id` (assets_link, sh/assets.sh: hard links, every file readable by nginx's workers, no symbolic link, the
 * release's own files only). With `reuse` (a tree made before, `next`): that tree's links when it was made of the
 * release as it is now (assets_reuse), so what staging made (copies of files not readable by all) is not made again.
 */
function linkAssets(env: Target, tree: string, reuse?: string): string {
  const L = env.layout;
  const release = `${quote(L.releases)}/"$release_id"`;
  const dirs = servedAssetDirs(env).map(quote).join(' ');
  // Its list of the files carried into it (release.ts carryAssets): a path made of the release's, quoted above.
  const carried = L.carriedAssets(release);
  const link = `assets_link ${release} ${quote(tree)} ${quote(env.appUser)} ${quote(L.deps)} ${carried} ${dirs}`;
  return String.raw`${ASSETS_FUNCTIONS}
mkdir -p ${quote(L.assets)}; chmod 0755 ${quote(L.assets)}
${reuse ? `assets_reuse ${release} ${quote(reuse)} ${quote(tree)} ${carried} ${dirs} || ${link}` : link}`;
}

/**
 * A rollout's release `id`, once prepared on a host (built or received, its before_switch hooks run), served there as
 * `next` (layout.assets; nginx-config.ts assetLocations: after the live release's files, before those of the one live
 * before it), before any host switches: a page of a host switched before this one asks it for the new release's hashed
 * assets (a load balancer sends each request to any host). Only the release's own files, not those the switch carries
 * into it (the live ones, served here anyway). The switch links its tree as `current` when it still fits the release
 * (assets_reuse: nothing made twice), and drops it (its release is then `current`); a rollout that
 * stops with the release live nowhere drops it too (unstageAssets). For an environment serving asset directories
 * (servedAssetDirs).
 */
export function stageAssets(env: Target, id: string): Step {
  const L = env.layout;
  const staged = `${L.assets}/.next.new`;
  return {
    name: 'stage assets',
    as: 'root',
    timeout: 300,
    quiet: true,
    script: String.raw`${releaseIdVar(id)}
${linkAssets(env, staged)}
rm -rf ${quote(`${L.assets}/next`)}
mv -T ${quote(staged)} ${quote(`${L.assets}/next`)}`,
  };
}

/**
 * Stop serving a stopped rollout's release as `next` (stageAssets): a release live nowhere must not answer a URL the
 * live releases do not (whatever it names, current and previous are then served alone, as before the deploy).
 * `unless` (release ids live somewhere): `next` is kept when its tree was made of one of them (its `.ops-source`'s
 * release path, sh/assets.sh), as a rollout's hosts left behind keep it for the pages of the hosts it is live on.
 */
export function unstageAssets(env: Target, unless: string[] = []): Step {
  const L = env.layout;
  const drop = `rm -rf ${quote(`${L.assets}/next`)} ${quote(`${L.assets}/.next.new`)}`;
  const ids = unless.filter((id) => isValid('release', id));
  const script = ids.length
    ? String.raw`next_source=""; if [ -f ${quote(`${L.assets}/next/.ops-source`)} ]; then read -r next_source _ < ${quote(`${L.assets}/next/.ops-source`)} || true; fi
case "${'$'}{next_source##*/}" in ${ids.map(quote).join('|')}) ;; *) ${drop} ;; esac`
    : drop;
  return { name: 'unstage assets', as: 'root', timeout: 60, quiet: true, script };
}

/** What the switch reports: `switched` (the release id, once `current` names it: the release is live, whatever fails after). */
export const SWITCH_KEYS = reportKeys('switched');

/**
 * The switch, in one step: nginx to the new slot (site re-rendered too, unless TLS is on and `certificate` is
 * false, or 'kept': the certificate there does not name every name of the site, a rollback that cannot render the site
 * for the names it names; then the site on the host is kept, and only the upstreams move; over https for 'kept'), validated and reloaded gracefully
 * (the previous files come back if nginx refuses, nginx_reload returns once the new workers serve, and fails when
 * the reload cannot be sent or is not taken up); then nginx must answer with the new slot at /.ops/slot (the site
 * really routes to it) when the site it renders serves that location (siteServesSlot), and must pass each routed
 * program's health path on to it without a 5xx (nginxGate: a response head too big for its proxy_buffer_size, said
 * with nginx's error log line and the fix): else the previous files come back, nginx reloads them, and the step fails
 * with `current` as it was. Only a site it does not render or a custom
 * template without {{slot_location}} leaves that look a warning. Then `current` flips by rename(2), the live slot is recorded, and the
 * release's going live is appended to the host's history (the order rollback and pruning follow); a release live
 * again after it was rolled back from loses its `abandoned` mark (it is a rollback target again). A deploy records
 * what the release was deployed with (`record`: deployFingerprint and the sums of the files it wrote, a line of its
 * own in .ops/fingerprint beside those of the releases still kept, for a later deploy's no-op); a rollback leaves the records as they are (the
 * release it puts live keeps what it was deployed with).
 */
export function switchTo(env: Target, slot: Slot, releaseId: string | HostVariable, certificate: boolean | 'kept', operation: 'deploy' | 'rollback' = 'deploy', record?: DeployRecord): Step {
  const L = env.layout;
  // 'kept': the site on the host serves TLS with its certificate, which does not name every name of the settings (an
  // alias added, not issued yet): kept as it serves (only names its certificate covers), asked over https.
  const certificateReady = certificate !== false;
  const writesSite = certificate === true || !certificatePaths(env);
  // The site rendered here answers /.ops/slot: a reload that does not route to the new slot is a failed switch.
  const mustSee = writesSite && siteServesSlot(env, certificateReady);
  const look = slotLook(env, slot, certificateReady);
  // The aliases of the site rendered here must reach its redirects, not another site claiming them.
  const looksAliases = writesSite && env.config.domain !== undefined && env.config.aliases.length > 0;
  const aliases = looksAliases ? `\n${aliasLook(env, certificateReady && certificatePaths(env) !== undefined)}` : '';
  const aliasRefusal = !looksAliases ? '' : String.raw`elif [ -n "$alias_taken" ]; then
  echo "the switch to slot ${slot} did not take: nginx was reloaded, but not every alias of the site reaches its redirect to ${env.config.domain ?? ''} (another enabled site claims it, and would take its visitors): $alias_taken" >&2
${conflictHint(env)}
  echo "hint: the files naming an alias besides the site: $(grep -lsw${env.config.aliases.map((a) => ` -e ${quote(a)}`).join('')} /etc/nginx/sites-enabled/* /etc/nginx/conf.d/*.conf 2>/dev/null | grep -vxF ${quote(L.nginxSiteEnabled)} | tr '\n' ' ')- remove the one no longer used, or the alias from its server_name, and reload nginx" >&2
  false
`;
  // The site rendered here logs nginx's record of the switch's requests (checkLog): the gate proves what answered.
  const siteText = writesSite ? site(env, certificateReady) : undefined;
  const proves = siteText?.includes(checkLog(env)) ?? false;
  // The warning first: the gate's exit status is the verify's verdict.
  const gate = `${
    siteText !== undefined && !proves ? `echo "warning: the custom site template has no {{logs}} with {{upstreams_include}}: nginx's record of which upstream answered the health paths is not kept, so the switch cannot prove the new slot's answers reach visitors (an error_page or try_files of its own, another server block, would go unseen)" >&2\n` : ''
  }${nginxGate(env, slot, certificateReady, proves)}`;
  // nginx serves release.asset_dirs' URLs from layout.assets (nginx-config.ts assetLocations): the new release's
  // files there made ready before the reload, and once it is live, those of the release live until now (after a
  // rollback: the one rolled back from) become `previous`, so a page it served, open in a browser, keeps its assets;
  // `next` (stageAssets: the rollout's release, for the pages of the hosts switched before this one) is done with.
  const served = servedAssetDirs(env).length > 0;
  const assetsNew = `${L.assets}/.new`;
  const ASSETS_READY = linkAssets(env, assetsNew, `${L.assets}/next`);
  const ASSETS_LIVE = String.raw`rm -rf ${quote(`${L.assets}/previous`)}; if [ -d ${quote(`${L.assets}/current`)} ]; then mv -T ${quote(`${L.assets}/current`)} ${quote(`${L.assets}/previous`)}; fi
mv -T ${quote(assetsNew)} ${quote(`${L.assets}/current`)}
rm -rf ${quote(`${L.assets}/next`)}`;
  return {
    ...applyNginx({
      item: 'switch',
      // TLS on but no certificate for the domain on the host (the domain or tls.mode changed since the last
      // provision): the site nginx has is left as it is (it may serve the previous name with its certificate);
      // only the traffic moves. Provision gets the certificate and writes the site.
      files: [
        ...(siteText !== undefined ? [{ path: L.nginxSite, content: siteText, own: siteOwn(env) }] : []),
        { path: L.nginxUpstreams, content: { b64Word: '"$ups_b64"' } },
      ],
      links: [[L.nginxSite, L.nginxSiteEnabled]],
      // The new `current` link and slot record exist before nginx changes (they need space and inodes under
      // the app's directory, which may be full): after the reload, two renames make them live.
      before: String.raw`${releaseIdVar(releaseId)}
${upstreamsShell(env, slot)}
ln -sfn ${quote(L.releases)}/"$release_id" ${quote(`${L.base}/.current.new`)}${served ? `\n${ASSETS_READY}` : ''}
printf '%s\n' ${quote(slot)} > ${quote(`${L.slotFile}.new`)}${record ? `\n${fingerprintRecords(env, record)}\n${treeRecord(env)}` : ''}`,
      // At most SLOT_LOOK_SECONDS (+ one look's second), whatever answers there (a slow app behind a custom template).
      // And the health paths through nginx (nginxGate): each waits at most its bounded tries.
      critical: SWITCH_THEN_SECONDS + (looksAliases ? ALIAS_LOOK_SECONDS + 1 : 0) + gateSeconds(env),
      what: 'the switch',
      // nginx must route to the new slot (when the site says which) and pass the health paths on to it as visitors
      // ask them (nginxGate: a release nginx answers 502 for never goes live), or the previous files come back.
      verify: String.raw`${look}${aliases}
${
        mustSee
          ? String.raw`if [ -z "$slot_seen" ]; then
  echo "the switch to slot ${slot} did not take: nginx was reloaded, but its /.ops/slot answers '$slot_got' rather than '${slot}' (nginx still routes to the previous slot)" >&2
${conflictHint(env)}
  # Not a slot at all, at the address the visitors reach: another server block may answer there.
  case $slot_got in blue|green) ;; *)
    ${otherListenFiles(env, String(certificateReady && certificatePaths(env) ? 443 : 80))}
    [ -z "$gate_others" ] || echo "hint: what answered at $gate_at_shown may be another server block than the site's (one listening on that address, \"listen <address>:<port>\", is taken before the site's \"listen <port>\"; or a default_server): files listening on the port besides the site: $gate_others- remove it, or its listen/server_name, and reload nginx" >&2 ;;
  esac
  false
${aliasRefusal}else
${gate}
fi`
          : looksAliases
            ? String.raw`if false; then :
${aliasRefusal}else
${gate}
fi`
            : gate
      }`,
      then: String.raw`${
        mustSee
          ? '# nginx answered with the new slot (verify, above)'
          : `[ -n "$slot_seen" ] || echo "nginx does not report slot ${slot} at /.ops/slot (${writesSite ? 'the custom site template has no {{slot_location}}' : 'the site on the host is kept until provision writes it'}); continuing" >&2`
      }
mv -T ${quote(`${L.base}/.current.new`)} ${quote(L.current)}${served ? `\n${ASSETS_LIVE}` : ''}
mv -f ${quote(`${L.slotFile}.new`)} ${quote(L.slotFile)}
# The release is live from here: a failure of what follows (records) must not be taken for a switch that did not happen.
ops_report ${SWITCH_KEYS.switched} "$release_id"
# The slot's previous release is no longer this run's to put back (startRelease's records, in the run's lock).
rm -f ${quote(`${L.lock}/${PREVIOUS_RECORD}`)} ${quote(`${L.lock}/${PREVIOUS_FILE}`)}
${historyFunctions(env)}
history_add live "$release_id" ${operation}${
  record
    ? String.raw`
# What the release was deployed with (deployFingerprint, written before nginx changed), for a later deploy's no-op. A
# record that cannot be replaced (not a file) holds no line for this release, so it cannot make a deploy a no-op: a warning.
mv -fT ${quote(`${L.fingerprint}.new`)} ${quote(L.fingerprint)} 2>/dev/null || { rm -f ${quote(`${L.fingerprint}.new`)}; printf 'warning: could not record what %s was deployed with in %s: the next deploy of its commit deploys it again\n' "$release_id" ${quote(L.fingerprint)} >&2; }`
    : ''
}
# Live again (rollback --to a release rolled back from): no longer abandoned, so a later rollback may come back to it.
# (Its record's, or, made by an older ops, its own directory's: release_record. rm removes a link, never its target.)
release_record "$release_id"; [ ! -e "$release_record/.ops-abandoned" ] || rm -f "$release_record/.ops-abandoned"
echo "live: $release_id on slot ${slot}"`,
    }),
    name: 'switch',
  };
}

/**
 * A deploy's switch: the commit's files of the release `$release_id` still as they were made (tree.sh tree_record,
 * into layout.treeLive in its record, root's: nothing is written in the app's directory), what a later deploy's no-op
 * compares (deployState). Never fails the switch: without it,
 * the release's files are only not compared (a warning says so).
 */
function treeRecord(env: Target): string {
  return `${treeLibrary(env)}
tree_record ${word(`${env.layout.releases}/`, onHost('release_id'))} ${word(`${env.layout.records}/`, onHost('release_id'))} 2>/dev/null || { printf 'warning: could not record the files %s went live with: a later deploy of its commit does not see them changed\n' "$release_id" >&2; }`;
}

/** Before the parts of a step that run through ops_part (invoked indirectly, in a subshell of their own). */
const PART = '# shellcheck disable=SC2030,SC2031,SC2317 # parts of their own, run by ops_part in a subshell';

/**
 * What rollbackStep reports: `rollback` (the host's verdict: ok; noop: the release is live already; none: no
 * earlier release to go back to; not_kept: `--to` names no release kept there; never_live: `--to` names a release
 * that never went live, its deploy failed or cut short; no_live: nothing is live; supervisor_down: supervisord is not
 * running, nothing was touched; ports_taken: a port of the idle slot is held by a process that is not the slot's own,
 * as the lock step's state read found it, nothing was touched; and in a one-host rollback's lock step, nginx_masked
 * and nginx_unready, reported around it: unlessRefused in core/ops/rollback.ts),
 * `rollback_from` (the release live before), `rollback_to` and `rollback_slot` (the release chosen, the slot
 * started for it), `rollback_exit` (the start or the switch failed: startSlot's exit code, START_FAILED_CLEAN
 * when the slot is as it was), `rollback_stop_exit` (the old slot's stop failed after the switch),
 * `rollback_settings` (the settings the release chosen last ran with, settingsDigest, from its fingerprint record:
 * absent when the record has none), `rollback_dotenv` (`same` or `differs`: its own .env and environ against those of
 * the release left, compared by cmp, no value read; absent when either is missing, or when its .env is a link to the
 * shared one of an older version).
 */
export const ROLLBACK_KEYS = reportKeys('rollback', 'rollback_from', 'rollback_to', 'rollback_slot', 'rollback_exit', 'rollback_stop_exit', 'rollback_settings', 'rollback_dotenv');

export interface RollbackEnds {
  /**
   * Shell run once the release went live (and, without keep_previous, the old slot stopped): the audit line and
   * the unlock (core/ops/locked.ts), its fields from the host's `release_id` and `audit_previous`.
   */
  done: string;
  /** Shell run when the host refuses or has nothing to do: '' (the operation audits and lets go), or a no-op's audit line and unlock. */
  refused: string;
}

/**
 * A rollback's work on a host, in one step that chooses on the host what to go back to: the release `to`
 * (it must be kept there), else the one live before the current one in the host's history (rollback_choice,
 * core/steps/sh/history.sh). Then it starts (or reuses, when it still runs warm) that release on the idle slot,
 * switches to it, runs `after` (marking the release left: its failure is ignored; it reads `rollback_from` and
 * `release_id`), stops the old slot unless switch.keep_previous, and ends with `ends.done`. Whatever the live
 * slot and the certificate on the host are, the step holds each variant (rendered for the id chosen there) and
 * runs the one that fits. Runs alone or at the end of the lock step (a one-host rollback: one round trip).
 * What nginx would refuse (nginx -t, another file naming a slot's port, another server block taking the visitors)
 * and whether nginx may be started are judged on deployState's `nginx` read, before this step: the lock step's
 * finish of a one-host rollback refuses on it (unlessRefused, core/ops/rollback.ts), the operation for several.
 * At the end of the lock step, after deployState's
 * `ports` read of the same idle slot, a port held there by a process not the slot's own (REPORT_SLOT_FOREIGN) is
 * refused too (`ports_taken`, with `refused`); alone (several hosts), the operation has refused on that read itself.
 * Exits 0 unless the step itself breaks: the outcome is in ROLLBACK_KEYS. A failed start or switch changed
 * nothing that serves (`current` and nginx are as they were); the slot is as it was when `rollback_exit` is
 * START_FAILED_CLEAN (a failed switch to a warm slot reused as it ran: it keeps running; a failed switch after a start:
 * the release the slot held before is back, previous_back, its line in the step's stderr), else the operation puts it
 * back (putPreviousBack).
 */
export function rollbackStep(env: Target, to: string | undefined, after: string, ends: RollbackEnds, settings?: string): Step {
  const L = env.layout;
  const from = onHost('rollback_from');
  /** A release's .env or environ (`path` of the layout), the release a host variable. */
  const file = (release: HostVariable, path: (dir: string) => string) => word(`${L.releases}/`, release, path(''));
  const id = onHost('release_id');
  const slots: Slot[] = ['blue', 'green'];
  const certs = certificatePaths(env);
  const certStates: (boolean | 'kept')[] = certs ? [true, false, 'kept'] : [false];
  const starts = slots.map((slot) => [slot, startRelease(env, slot, id, START_REUSED)] as const);
  const switches = slots.flatMap((slot) => certStates.map((cert) => [`${slot}:${cert === 'kept' ? 'kept' : cert ? 'yes' : 'no'}`, switchTo(env, slot, id, cert, 'rollback')] as const));
  const stops = slots.map((slot) => [slot, stopSlot(env, slot, env.config.switch.drain)] as const);
  // The shell libraries the parts use are defined once, here, rather than in each variant. Nothing is indented:
  // the parts hold multi-line quoted text (a supervisor file).
  const libraries = [SYSTEM_FUNCTIONS, probeLibrary(env), SUPERVISOR_FUNCTIONS, IDENTITY_FUNCTIONS, HOST_LOCK_FUNCTIONS, CRITICAL_FUNCTIONS, historyFunctions(env), previousBackFunctions(env), ...(servedAssetDirs(env).length ? [ASSETS_FUNCTIONS] : []), ...(certs ? [CERT_FUNCTIONS] : [])];
  const body = (script: string) => libraries.reduce((text, lib) => text.split(`${lib}\n`).join(''), script);
  const variants = (name: string, on: string, parts: (readonly [string, Step])[]) =>
    `${PART}\ncase "${on}" in\n${parts.map(([key, step]) => `${key})\n${name}() {\n${body(step.script)}\n} ;;`).join('\n')}\nesac`;
  // A failed switch puts the slot's previous release back (previous_back) in the same step.
  const timeout = (starts[0]![1].timeout ?? 600) + (switches[0]![1].timeout ?? 600) + Math.max(previousBackSeconds(env), env.config.switch.keep_previous ? 0 : (stops[0]![1].timeout ?? 600));
  return {
    name: 'rollback',
    as: 'root',
    timeout,
    script: String.raw`${libraries.join('\n')}
# ops_part FUNCTION: runs it in a subshell of its own, errexit on (its exits and traps stay its own); its exit code in part_rc.
ops_part() { set +e; ( set -e; "$1" ); part_rc=$?; set -e; }
rollback_from=$(readlink ${quote(L.current)} 2>/dev/null || true); rollback_from=${'$'}{rollback_from##*/}
live_slot=""; if [ -f ${quote(L.slotFile)} ]; then read -r live_slot < ${quote(L.slotFile)} || true; fi
ops_report ${ROLLBACK_KEYS.rollback_from} "$rollback_from"
# Without supervisord no slot can start (and the live release's programs do not run either): refused before anything.
if [ -z "$rollback_from" ]; then rollback_verdict=no_live; elif ${supervisordDown()}; then rollback_verdict=supervisor_down; else rollback_choice "$rollback_from" ${quote(to ?? '')}; fi
# A port of the idle slot held by a process that is not that slot's own, as the lock step's state read found it
# (deployState's ports: REPORT_SLOT_FOREIGN): the start would fail (or stop a warm slot first), so refused now.
if [ "$rollback_verdict" = ok ] && [ "${'$'}{REPORT_SLOT_FOREIGN:-0}" != 0 ]; then rollback_verdict=ports_taken; fi
ops_report ${ROLLBACK_KEYS.rollback} "$rollback_verdict"
if [ "$rollback_verdict" != ok ]; then
  ${ends.refused || ':'}
else
  ops_report ${ROLLBACK_KEYS.rollback_to} "$release_id"
  # What the release last ran with: the settings in its record (the fifth field, since records have it), and whether
  # its own .env and environ are those of the release left (cmp: no value is read).
  record_re='^[^ ]+ [^ ]+ [^ ]+ ([^ ]+)$'
  { ${forEachFingerprintRecord(env, String.raw`if [ "$id" = "$release_id" ] && [[ $fp =~ $record_re ]]; then ops_report ${ROLLBACK_KEYS.rollback_settings} "${'$'}{BASH_REMATCH[1]}"; fi`)}; } 2>/dev/null || true
  # (A release of an older version, its .env a link to the shared one, is not compared: it is not its own.)
  if [[ $rollback_from =~ ${RELEASE_DIR_PATTERN} ]] && [ -f ${file(id, L.dotenv)} ] && [ ! -L ${file(id, L.dotenv)} ] && [ -f ${file(from, L.dotenv)} ]; then
    if cmp -s -- ${file(id, L.dotenv)} ${file(from, L.dotenv)} && cmp -s -- ${file(id, L.environ)} ${file(from, L.environ)}; then
      ops_report ${ROLLBACK_KEYS.rollback_dotenv} same
    else ops_report ${ROLLBACK_KEYS.rollback_dotenv} differs; fi
  fi
  # The idle slot (green when the slot record is missing or unreadable: blue is then taken as live).
  if [ "$live_slot" = green ]; then new_slot=blue; else live_slot=blue; new_slot=green; fi
  ops_report ${ROLLBACK_KEYS.rollback_slot} "$new_slot"
  # The certificate there: none (the site kept), naming every name of the site (the site written for them), or not
  # every one (an alias added, its certificate not issued yet: the site kept as it serves, only names it covers).
  cert=no; ${certs ? `if [ -s ${quote(certs.cert)} ]; then cert=yes; [ -z "$(cert_lacks ${quote(certs.cert)} ${certificateNames(env).map(quote).join(' ')})" ] || cert=kept; fi` : ': no certificate in this environment'}
  # Only what is already known to the audit line: an id, or the live link's name with nothing JSON would escape.
  # shellcheck disable=SC2034 # read by the audit line (ends.done)
  audit_previous=${'$'}{rollback_from//[^A-Za-z0-9._-]/_}
  ${variants('rollback_start', '$new_slot', starts)}
  ${variants('rollback_switch', '$new_slot:$cert', switches)}
  ${env.config.switch.keep_previous ? ': keep_previous: the old slot stays warm' : variants('rollback_stop', '$live_slot', stops)}
  ${PART}
  rollback_record() {
${settings === undefined ? ':' : recordSettings(env, settings)}
  }
  ${PART}
  rollback_after() {
    if [[ $rollback_from =~ ${RELEASE_DIR_PATTERN} ]]; then
    ${body(after) || ':'}
    fi
  }
  part_rc=0
  if [ "$part_rc" = 0 ]; then
    ops_part rollback_start
    reused=no; if [ "$part_rc" = ${START_REUSED} ]; then reused=yes; part_rc=0; fi
    if [ "$part_rc" = 0 ]; then
      # Once the start succeeded, a failed switch puts back what the slot held before the start (previous_back, from
      # the start's records in the lock), or leaves the slot to the operation when that cannot be done here; a warm
      # slot reused as it ran stays as it was (it is the rollback target of the next try).
      ops_part rollback_switch
      # The run's lock is no longer its own (run_lock_guard, right before the switch): nothing more is touched here.
      if [ "$part_rc" = ${LOCK_LOST_EXIT} ]; then exit ${LOCK_LOST_EXIT}; fi
      if [ "$part_rc" = ${START_FAILED_CLEAN} ]; then part_rc=1; fi
      if [ "$part_rc" != 0 ] && [ "$reused" = yes ]; then echo "slot $new_slot keeps running $release_id warm, as before the rollback" >&2; part_rc=${START_FAILED_CLEAN}
      elif [ "$part_rc" != 0 ]; then
        back_rc=0; back=$(previous_back "$new_slot" ${quote(L.lock)}) || back_rc=$?
        if [ "$back_rc" = 0 ]; then echo "$back" >&2; part_rc=${START_FAILED_CLEAN}; fi
      fi
    fi
  fi
  if [ "$part_rc" != 0 ]; then
    ops_report ${ROLLBACK_KEYS.rollback_exit} "$part_rc"
  else
    ops_part rollback_after
    [ "$part_rc" = 0 ] || echo "could not mark the release left (it stays a rollback target)" >&2
    ops_part rollback_record
    [ "$part_rc" = 0 ] || { rm -f ${quote(`${L.fingerprint}.new`)}; echo "could not record the settings $release_id now runs with (${L.fingerprint}): the next rollback to it may say they differ" >&2; }
    ${env.config.switch.keep_previous ? 'part_rc=0' : 'ops_part rollback_stop'}
    if [ "$part_rc" = 0 ]; then
      ${ends.done || ':'}
    else
      ops_report ${ROLLBACK_KEYS.rollback_stop_exit} "$part_rc"
    fi
  fi
fi`,
  };
}
