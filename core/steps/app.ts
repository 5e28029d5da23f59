// Running in a release as the app user: its environment (pinned runtimes first on PATH, quiet package managers),
// its dependencies (a venv and node_modules shared by content hash), and app commands (build, migrate, hooks,
// initdata) with the .env's values exported as rendered.
import { posix } from 'node:path';
import type { Target } from '../target.ts';
import { environLoader } from '../dotenv.ts';
import { reportKeys, type Step } from '../remote/types.ts';
import { STEP_PATH } from '../remote/wrap.ts';
import { quote } from '../shell.ts';
import { INDEX_READ_TIMEOUT } from '../packages.ts';
import { packageIndexPaths, pipSettings, provisionWrote } from './system.ts';
import { CONTAIN_FUNCTIONS } from './libraries.ts';

/**
 * What `pythonDependencies` and `nodeDependencies` report: `deps` `<python|node> <reused|installed ...>`; `npmrc_ignored` (node): each registry key (`registry`, `@scope:registry`) of the app user's ~/.npmrc npm is not given (npmrcIgnored);
 * `sqlite_made` (appCommand with `sqlite`): each SQLite database the command wrote in the release, its path relative to the release.
 */
export const APP_KEYS = reportKeys('deps', 'npmrc_ignored', 'sqlite_made');

/**
 * Environment for app commands and dependency installs: runtimes and the venv first on PATH, quiet package managers,
 * and package managers that read the commit's settings and the environment's (`packages`, in the files provision
 * wrote) but none of the host's own (README "Host settings a deploy does not read"). The wrapper has already unset
 * the login's variables (NODE_ENV, npm_config_*, PIP_*, UV_*: core/remote/wrap.ts); these are the files:
 * - npm: no global config ($PREFIX/etc/npmrc, Debian's /etc/npmrc), and of the app user's ~/.npmrc only the
 *   `registry=` provision wrote there and the lines of per-registry credentials (`//host/:_authToken=`, on any
 *   ~/.npmrc: the registries they serve are named by the commit's .npmrc), copied to ~/.ops/npmrc as npm's
 *   user config. `omit=dev`, `production`, `bin-links=false`, `ignore-scripts`, `legacy-peer-deps` there would make
 *   node_modules other than the lockfile's, or fail the build (`vite: not found`); the commit's .npmrc is read as before.
 * - pip: no configuration file, the index of provision's pip.conf as variables (pipSettings).
 * uv's are set where it runs (pythonDependencies): they depend on whether the commit has uv settings.
 */
function appEnvironment(env: Target, release: string): string {
  const paths = env.runtime;
  const nodeBin = paths.node.replace(/\/node$/, '');
  const files = packageIndexPaths(env);
  return String.raw`export PATH=${quote(`${release}/venv/bin:${nodeBin}:${STEP_PATH}`)}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
ops_npmrc=${quote(`${opsHomeDir(env)}/npmrc`)}
mkdir -p "${'$'}{ops_npmrc%/*}"
ops_tmp=$(mktemp "$ops_npmrc.XXXXXX")
ops_npmrc_kept='^//'; if ${provisionWrote(files.npmrc)}; then ops_npmrc_kept='^(registry=|//)'; fi
grep -s -E "$ops_npmrc_kept" ${quote(files.npmrc)} > "$ops_tmp" || true
mv -f "$ops_tmp" "$ops_npmrc"
export npm_config_globalconfig=/dev/null npm_config_userconfig="$ops_npmrc"
${pipSettings(env)}
cd ${quote(release)}`;
}

/**
 * Shell (after appEnvironment): report each registry key of the app user's ~/.npmrc that appEnvironment leaves out
 * (`registry=` hand-written there, any `@scope:registry=`), by key only (its URL may hold a credential), so the
 * deploy says it was not read (core/ops/deploy-host.ts) instead of installing from another registry in silence.
 */
function npmrcIgnored(env: Target): string {
  return String.raw`{ grep -s -v -E "$ops_npmrc_kept" ${quote(packageIndexPaths(env).npmrc)} || true; } | sed -n -E 's/^[[:space:]]*((@[^[:space:]:=]+:)?registry)[[:space:]]*=.*/\1/p' | sort -u | while read -r k; do ops_report ${APP_KEYS.npmrc_ignored} "$k"; done`;
}

/**
 * What a deploy says of the registry keys npmrcIgnored reported (`keys`): where each belongs instead. Pure.
 */
export function npmrcIgnoredWarning(env: Target, keys: string[]): string {
  const ways = [
    ...(keys.includes('registry') ? [`the registry as packages.npm_registry in environments/${env.name}/environment.yml (then ops provision ${env.name}: it writes ~/.npmrc)`] : []),
    ...(keys.some((k) => k !== 'registry') ? [`a scope's registry in the commit's ${posix.join(env.config.release.node_dir, '.npmrc')} (its token stays in ~/.npmrc as //host/:_authToken=)`] : []),
  ];
  return `${keys.join(', ')} in ${packageIndexPaths(env).npmrc} (written by hand) ${keys.length > 1 ? 'are' : 'is'} not read by npm: npm ci and the build install from the registries the environment and the commit name; set ${ways.join('; ')}`;
}

/**
 * The app user's directory of what appEnvironment gives package managers in place of the host's files (npmrc, uv-none):
 * in the home itself, which the app user owns (~/.config may be root's: provision's install -d makes it).
 */
function opsHomeDir(env: Target): string {
  return `/home/${env.appUser}/.ops`;
}

/**
 * One dependency set, reused when unchanged: it lives in shared/deps/`set` (the hash in its name covers the
 * runtime and the lockfiles), and `link.from` in the release is a symlink to `link.to` inside it (the set
 * itself when ''; a directory the commit put there is replaced). A directory without `.complete` was interrupted (or failed) and is made again from scratch by
 * `install` (shell run in the release, with `$set_dir` the set's path, and `remove_tree PATH`, rm -rf of a tree
 * whose directories may be read-only); `.complete` is written last, so a set that failed halfway is rebuilt by the
 * next deploy. A set, once made, is read-only (`chmod -R a-w`, before `.complete`): the app user runs the build,
 * migrations, hooks and the app, and a set is shared by every release whose installs read the same files (the live
 * one too; a node set made from the live one shares its files' inodes, a uv venv its cache's): a write into it fails
 * with EACCES instead of changing what other releases run. Only directories are made writable to remove a set (its
 * files may be hard links of the live set's or uv's cache: their mode is theirs). A complete set made writable by an
 * older version is made read-only as it is reused. Reports `deps <kind> reused` or `deps <kind> <installed><how>`
 * (`installed_how`, which `install` may set: how it was made).
 */
function dependencySet(env: Target, release: string, kind: 'python' | 'node', set: string, install: string, link: { from: string; to: string }, installed: string): Step {
  return {
    name: `${kind} dependencies`,
    as: 'app',
    timeout: 1800,
    script: String.raw`${CONTAIN_FUNCTIONS}
${appEnvironment(env, release)}
set_dir=${quote(`${env.layout.deps}/${set}`)}
# rm -rf of a tree whose directories may be read-only: only they are made writable (its files may be hard links of
# another set's or of uv's cache, whose mode is theirs; rm needs none on a file).
remove_tree() {
  if [ -d "$1" ] && [ ! -L "$1" ]; then find "$1" -type d ! -perm -u+w -exec chmod u+w -- {} + 2>/dev/null || true; fi
  rm -rf -- "$1"
}
if [ -f "$set_dir/.complete" ]; then
  # Build tools' caches and temporary files in node_modules (vite's .vite-temp, where it bundles its config on every
  # build; .vite; .cache), left by builds while an older version kept sets writable: a tool that finds its directory
  # there writes into it and fails on a read-only set, where one that cannot make it falls back (vite writes beside
  # its config). Never read by the app as it runs: removed, as npm ci would not have made them.
  stale=$(find "$set_dir/node_modules" -mindepth 1 -maxdepth 1 -type d \( -name .vite-temp -o -name .vite -o -name .cache \) -print -quit 2>/dev/null || true)
  if [ -n "$stale" ]; then
    chmod u+w "$set_dir" "$set_dir/node_modules"
    for d in .vite-temp .vite .cache; do remove_tree "$set_dir/node_modules/$d"; done
  fi
  # Made writable by an older version: read-only from now on, as every set made now.
  if [ -w "$set_dir" ]; then chmod -R a-w "$set_dir"; fi
  ops_report ${APP_KEYS.deps} ${quote(`${kind} reused`)}
else
  remove_tree "$set_dir"
  # npm and uv keep their caches in the app user's home ($HOME: sudo -H sets it from /etc/passwd). A user made with
  # adduser --system has /nonexistent there: every install would fail on its cache (EACCES, mkdir '/nonexistent').
  if [ ! -d "$HOME" ] || [ ! -w "$HOME" ]; then
    echo "${kind === 'node' ? 'npm' : 'the Python installer'} cannot make this set: the home directory of ${env.appUser}, $HOME (its entry in /etc/passwd), $([ -d "$HOME" ] && echo "is not writable by ${env.appUser}" || echo 'does not exist'), and its package cache goes there; fix: as root on this host, give ${env.appUser} the home ops made for it: usermod -d /home/${env.appUser} ${env.appUser} && install -d -o ${env.appUser} -g $(id -gn) /home/${env.appUser} (a user made by adduser --system has /nonexistent), then try again" >&2
    exit 1
  fi
${install}
  # Read-only once made (chmod skips the symbolic links inside: what they name keeps its mode), .complete last.
  chmod -R a-w "$set_dir"
  chmod u+w "$set_dir"
  touch "$set_dir/.complete"
  chmod a-w "$set_dir/.complete" "$set_dir"
  ops_report ${APP_KEYS.deps} ${quote(`${kind} ${installed}`)}"${'$'}{installed_how:-}"
fi
# A directory the commit holds where the link goes (a vendored node_modules, a venv committed by mistake) would
# take the link inside it (ln into a directory) and hide the set from the app: the set takes its place.
if [ -e ${quote(link.from)} ] && [ ! -L ${quote(link.from)} ]; then rm -rf -- ${quote(link.from)}; fi
ln -sfn "$set_dir"${link.to ? `/${quote(link.to)}` : ''} ${quote(link.from)}`,
  };
}

/**
 * The Python set (release.python_requirements) as `venv` in the release: a venv in shared/deps/venv-<hash>, made
 * by uv (release.python_installer, default; from the app user's cache, ~/.cache/uv, shared by every set: hard
 * links when on the same filesystem as the sets, copies otherwise) or by pip (`python -m venv` + `pip install`);
 * `--require-hashes` when the requirements carry hashes, as pip does by itself. Its modules are compiled to
 * bytecode while the set is made (pip does so by default; uv with `--compile-bytecode`), so the app's first
 * commands (migrate, the start) do not compile them on first import, and the set carries them when packed
 * for other hosts (core/steps/artifact.ts; tar keeps the sources' mtimes the bytecode is checked against).
 * At a lower CPU priority (nice 10): made beside the build (and the node set, with pip), it takes what CPU they leave,
 * so compiling does not lengthen their path, the deploy's longest.
 * pip and uv run `contained` (sh/contain.sh), as app commands do: what an sdist's build (setup.py) left running is
 * stopped once the installer exits, and the step's output names it.
 * `hash`: the set's hash (Plan.hashes.python). `uvSettings`: the commit has uv settings (SetInputs.uvSettings).
 * `hashed`: the requirements, or a file they include, pin by hash (SetInputs.hashed, read on the runner).
 * `uvLock`: the uv.lock the set is installed from (SetInputs.uvLock; uv only): exported by `uv export --frozen` (the
 * lock as it is, without the project itself and its dev group) into the set, then installed as requirements are, in
 * the lock's directory (the export's paths are relative to it; uv's settings are read there).
 * Independent of the node set: core/ops runs both at once.
 */
export function pythonDependencies(env: Target, release: string, hash: string, uvSettings = false, hashed = false, uvLock?: string): Step {
  const paths = env.runtime;
  const { python_requirements: req, python_installer: installer } = env.config.release;
  // A uv project's lock, exported (uv export --frozen: the lock as it is, no index asked) to a requirements file in
  // the set, which is then installed as any other: with the lock's hashes, from the index packages.pip_index_url names
  // (a lock records PyPI's URLs; a hash names the same file on a mirror).
  const exported = '$set_dir/.uv-lock-requirements.txt';
  // uv installing the requirements into the venv (`options`: more of uv's options), contained (sh/contain.sh). The
  // exported lock is read in the project's directory: its paths (a workspace's members) are relative to it, and uv
  // takes them from where it runs.
  const project = uvLock ? posix.dirname(uvLock) : '.';
  const uvInstall = (options: string) =>
    `contained ${quote(`${project === '.' ? '' : `cd ${quote(project)} && `}nice -n 10 ${quote(paths.uv)} pip install -q --compile-bytecode --python "$1/bin/python"${options} -r ${uvLock ? '"$1/.uv-lock-requirements.txt"' : quote(req)}`)} "$set_dir"`;
  const install =
    installer === 'pip'
      ? String.raw`  nice -n 10 ${quote(paths.python)} -m venv "$set_dir"
  if [ -f ${quote(req)} ]; then contained ${quote(`PIP_DEFAULT_TIMEOUT=${INDEX_READ_TIMEOUT} nice -n 10 "$1/bin/pip" install -q -r ${quote(req)}`)} "$set_dir"; fi`
      : String.raw`  export UV_NO_PROGRESS=1 UV_PYTHON_DOWNLOADS=never UV_CACHE_DIR="$HOME/.cache/uv" UV_HTTP_TIMEOUT=${INDEX_READ_TIMEOUT}
  # uv reads the commit's settings (uv.toml, else pyproject.toml's [tool.uv], in the release's root, or in the
  # directory of the project locked by uv: they are in the set's hash) and provision's ~/.config/uv/uv.toml, never
  # the host's own: /etc/uv/uv.toml (or one under XDG_CONFIG_DIRS), another ~/.config/uv/uv.toml, a uv.toml or pyproject.toml in a directory above the release
  # (/srv, base_dir, a home), which uv looks for when the release's root has none (a pyproject.toml without a
  # [tool.uv] table too). With the commit's (the runner read them: SetInputs.uvSettings), the system and user files uv
  # merges beneath them are an empty one; without, provision's file alone (UV_CONFIG_FILE, which searches no
  # directory), or none.
${uvSettings ? String.raw`  uv_none=${quote(`${opsHomeDir(env)}/uv-none`)}; mkdir -p "$uv_none/uv"; : > "$uv_none/uv/uv.toml"
  export XDG_CONFIG_DIRS="$uv_none"
  ${provisionWrote(packageIndexPaths(env).uvToml)} || export XDG_CONFIG_HOME="$uv_none"` : String.raw`  if ${provisionWrote(packageIndexPaths(env).uvToml)}; then export UV_CONFIG_FILE=${quote(packageIndexPaths(env).uvToml)}
  else export UV_NO_CONFIG=1; fi`}
  mkdir -p "$UV_CACHE_DIR"
  # Hard links from the cache need one filesystem; across two, uv copies (said once here, not warned per file).
  if [ "$(stat -c %d "$UV_CACHE_DIR")" != "$(stat -c %d ${quote(env.layout.deps)})" ]; then export UV_LINK_MODE=copy; fi
  nice -n 10 ${quote(paths.uv)} venv -q --seed --python ${quote(paths.python)} "$set_dir"
  if [ -f ${quote(uvLock ?? req)} ]; then
${
  uvLock
    ? String.raw`    # The project's dependencies as locked, its default groups (dev) and the project itself left out (the release is
    # its code): what \`uv sync --frozen --no-dev --no-install-project\` installs. Preflight refused a lock out of step.
    ${quote(paths.uv)} export -q --frozen --format requirements-txt --no-emit-project --no-dev --no-header --project ${quote(posix.dirname(uvLock))} -o "${exported}"
`
    : ''
}${
  hashed
    ? String.raw`    # Hashes pin every requirement to one file (pip's hash-checking mode, which uv follows): what the cache holds
    # is then exactly what the index would give, so the cache is tried first, without asking the index about each
    # package (uv revalidates its cached index pages otherwise: ~1.5 s of round trips for 25 pins). A requirement
    # the cache lacks fails that try (its message unshown); the second asks the index and installs what is missing.
    # shellcheck disable=SC2016 # the command's $1 is its own (contained's ARG: set_dir), expanded by its bash
    ${uvInstall(' --require-hashes --offline')} 2>/dev/null || ${uvInstall(' --require-hashes')}`
    : String.raw`    # shellcheck disable=SC2016 # the command's $1 is its own (contained's ARG: set_dir), expanded by its bash
    ${uvInstall('')}`
}
  fi`;
  return dependencySet(env, release, 'python', `venv-${hash}`, install, { from: 'venv', to: '' }, `installed (${installer})`);
}

/**
 * The node set (release.node_dir) as `<node_dir>/node_modules` in the release: `npm ci` in the release, reading
 * the app user's npm cache (~/.npm) first (--prefer-offline), its node_modules then moved to
 * shared/deps/node-<hash>/node_modules, npm's links to the app's own packages made absolute (into this release).
 * `hash`: the set's hash (Plan.hashes.node).
 * `fromLive` (SetInputs.fromLive: a lockfile npm ci would take as it is, no install scripts of the app's own, no git
 * dependency nor `file:` directory npm copies, a set shared between releases): the set may be made from the live
 * release's instead, when that one was made the same way for the same node and npm settings (its `.from-live` stamp:
 * node's version, platform, architecture, ABI, and a digest of the project's and the app user's .npmrc) and has npm's
 * hidden lockfile (npm 7+). Hard links of its packages (cp -al: no data copied), with a copy of its hidden lockfile
 * (npm reads the live tree from it, resolved and integrity included: a tarball rebuilt under the same version is
 * replaced); not carried: the entries npm ci does not make (build caches and code generated under node_modules:
 * .cache, .vite, .tmp, .prisma); the packages with install scripts are copies, not links (writable ones), and so are
 * the files the live set's bins name (npm chmods them). The live set is read-only (dependencySet): the new tree's
 * directories are made writable while it is made (npm adds and removes entries), its linked files stay read-only, and
 * the whole set is read-only again once made. Then
 * `npm install --no-save --ignore-scripts`, which unpacks only the packages whose version or integrity changed (into
 * new directories: the live set's files are never written) and removes those gone, and, the .bin links removed,
 * `npm rebuild`, which links every bin and runs every install script as npm ci does (a dependency's postinstall generating from the project's
 * files, as @prisma/client's does, runs again). The result must be the lockfile's tree: every package npm's hidden
 * lockfile lists has the lockfile's version and integrity, and every package the lockfile installs on this
 * platform is there; else, or when npm fails, the set is made by npm ci, and the log says why. 2.4 s instead of
 * 3.8 s for a bumped dependency of a vite app (by hand, on a test host). Checked against npm ci's tree:
 * test/unit/node-set-from-live-vs-ci.test.ts.
 * npm reports a file it could not write while unpacking (ENOSPC, EDQUOT, EIO...) as a warning, `TAR_ENTRY_ERROR`,
 * and may still exit 0 with files missing (npm/cli#3526): such a run fails here, with npm's first lines, and the
 * set is not marked complete. npm's other warnings (deprecations) are not shown, as before.
 * Each npm run is `contained` (sh/contain.sh), as app commands are: what an install script (the app's or a
 * dependency's postinstall) left running, a daemon with its output redirected, is stopped once npm exits, and the
 * step's output names it. (One that keeps its output open holds npm itself, which waits for it: until the step's
 * timeout, which stops it the same way.)
 */
export function nodeDependencies(env: Target, release: string, hash: string, fromLive = false): Step {
  const nodeDir = env.config.release.node_dir;
  const modules = `${nodeDir}/node_modules`;
  const npm = (command: string) => String.raw`contained ${quote(`cd ${quote(nodeDir)} && ${quote(env.runtime.npm)} ${command} --prefer-offline --no-audit --no-fund --loglevel=warn`)} 2> "$npm_log"`;
  const npmFailed = String.raw`grep -v -i '^npm warn deprecated' "$npm_log" | tail -n 40 >&2; exit 1`;
  const nodeBin = quote(env.runtime.node);
  const live = String.raw`
  # What the packages' native parts and install scripts were made for: node's version, platform, architecture and
  # ABI; and npm's settings (the project's .npmrc and the environment's, appEnvironment: registry, credentials).
  stamp=$(${nodeBin} -p 'process.version + " " + process.platform + " " + process.arch + " abi " + process.versions.modules' 2>/dev/null) || stamp=""
  [ -z "$stamp" ] || stamp="$stamp npmrc $({ cat ${quote(`${nodeDir}/.npmrc`)} "$npm_config_userconfig" 2>/dev/null || true; } | sha256sum | cut -c1-16)"
  live_modules=$(readlink -f ${quote(`${env.layout.current}/${modules}`)} 2>/dev/null) || live_modules=""
  live_set=${'$'}{live_modules%/node_modules}
  if [ -n "$stamp" ] && [[ $live_modules == ${quote(`${env.layout.deps}/node-`)}*/node_modules ]] && [ -f "$live_set/.complete" ] && [ "$(cat "$live_set/.from-live" 2>/dev/null)" = "$stamp" ] &&
    scripted=$(${nodeBin} -e "$seed_plan" ${quote(nodeDir)} "$live_modules/.package-lock.json" 2>> "$npm_log") && cp -al -- "$live_modules" ${quote(modules)} 2>/dev/null &&
    # The live set is read-only, and so are the directories cp made: npm adds and removes entries in them, so they
    # are made writable while the set is made. Its files stay the live set's inodes, read-only (npm never writes
    # one in place: a changed package is unpacked into a new directory).
    find ${quote(modules)} -type d -exec chmod u+w -- {} +; then
    # Not carried: what npm ci does not make (build caches, code generated there: .cache, .vite, .tmp, .prisma), npm's
    # hidden lockfile as a link (a copy of its own: npm rewrites it, and reads the live tree from it, resolved and
    # integrity included). The .bin links stay for npm install (a package whose links are missing is unpacked again),
    # then go: npm rebuild links them all again, as npm ci does (one name, two packages: npm's choice).
    find ${quote(modules)} -mindepth 1 -maxdepth 1 -name '.*' ! -name .bin -exec rm -rf -- {} +
    tried=yes
    cp -- "$live_modules/.package-lock.json" ${quote(modules)}/.package-lock.json
    chmod u+w ${quote(modules)}/.package-lock.json
    # The packages with install scripts are copies, not links, and writable ones: npm rebuild runs their scripts
    # again (as npm ci would), which may write where they are.
    while IFS= read -r k; do
      [ -n "$k" ] || continue
      remove_tree ${quote(nodeDir)}/"$k" && cp -a -- "$live_set/$k" ${quote(nodeDir)}/"$k" && chmod -R u+w -- ${quote(nodeDir)}/"$k"
    done <<< "$scripted"
    # npm makes each bin's file executable (bin-links: a chmod, even when it is already): on a hard link that would
    # change the live set's file's mode, so the files the live set's bins name are copies of their own.
    while IFS= read -r -d '' l; do
      t=$(readlink -f -- "$l") || continue
      case "$t" in "$live_modules"/*) n=${quote(modules)}/${'$'}{t#"$live_modules"/}; if [ -f "$n" ]; then cp -p -- "$n" "$n.ops-copy" && mv -f -- "$n.ops-copy" "$n"; fi ;; esac
    done < <(find "$live_modules" -type l -path '*/.bin/*' -print0)
    # npm leaves the directories of packages it removed empty (a nested node_modules, an @scope): npm ci has none.
    if ${npm('install --no-save --ignore-scripts')} && ! grep -q -i 'TAR_ENTRY_ERROR' "$npm_log" &&
      find ${quote(modules)} -mindepth 1 -type d -path '*/node_modules/.bin' -prune -exec rm -rf -- {} + && ${npm('rebuild')} &&
      ${nodeBin} -e "$lock_check" ${quote(nodeDir)} 2>> "$npm_log" &&
      find ${quote(modules)} -mindepth 1 -depth -type d -empty \( -name node_modules -o -regex '.*/node_modules/@[^/]*' \) -delete; then
      installed_how=" (npm install over hard links of the live set ${'$'}{live_set##*/}: only what changed unpacked)"
    fi
  fi
  if [ -z "${'$'}{installed_how:-}" ] && { [ -s "$npm_log" ] || [ -n "${'$'}{tried:-}" ]; }; then
    why=$(tail -n 1 "$npm_log")
    echo "the node set is not made from the live one (${'$'}{live_set##*/}): ${'$'}{why:-npm failed without a word}; npm ci makes it" >&2
  fi
  [ -n "${'$'}{installed_how:-}" ] || remove_tree ${quote(modules)}`;
  const install = String.raw`  remove_tree ${quote(modules)}
  npm_log=$(mktemp); trap 'rm -f "$npm_log"' EXIT${fromLive ? `
  lock_check=${quote(LOCK_CHECK)}
  seed_plan=${quote(SEED_PLAN)}${live}` : ''}
  if [ -z "${'$'}{installed_how:-}" ]; then
    if ! ${npm('ci')}; then
      ${npmFailed}
    fi
    if grep -q -i 'TAR_ENTRY_ERROR' "$npm_log"; then
      echo "npm ci could not write every file of node_modules, though it exited 0 (npm/cli#3526):" >&2
      grep -i -m 5 'TAR_ENTRY_ERROR' "$npm_log" >&2; exit 1
    fi
  fi
  # npm links the app's own packages (workspaces, file: directories) with relative links (../packages/x): moved out
  # of the release they would point nowhere, so they point into this release by its absolute path (such a set
  # is made for each release: core/dependency-inputs.ts). The .bin links stay inside node_modules: left as they are.
  if [ -d ${quote(modules)} ]; then
    modules_dir=$(cd ${quote(modules)} && pwd -P)
    while IFS= read -r -d '' l; do
      t=$(readlink -f -- "$l") || continue
      case "$t" in "$modules_dir"/*) ;; *) ln -sfn -- "$t" "$l" ;; esac
    done < <(find ${quote(modules)} -type l ! -path '*/.bin/*' -print0)
  fi
  mkdir -p "$set_dir"
  if [ -d ${quote(modules)} ]; then mv ${quote(modules)} "$set_dir/node_modules"; else mkdir "$set_dir/node_modules"; fi
  if [ -n "${'$'}{stamp:-}" ]; then printf '%s\n' "$stamp" > "$set_dir/.from-live"; fi`;
  const step = dependencySet(env, release, 'node', `node-${hash}`, install, { from: modules, to: 'node_modules' }, 'installed');
  return { ...step, script: `${step.script}\n${npmrcIgnored(env)}` };
}

/**
 * Node script (argv[1]: node_dir, argv[2]: the live set's hidden lockfile): whether the lockfile may be installed
 * over the live set (exit 1 with why not: a git dependency, whose prepare script npm runs while fetching it, or a
 * `file:` directory npm copies, whose files no lockfile records), and the install paths of the live set's packages
 * with install scripts (`hasInstallScript`, one per line). Fails when the live set has no hidden lockfile (npm 6).
 */
const SEED_PLAN = `const fs = require('fs'), path = require('path');
const [dir, liveLock] = process.argv.slice(1);
const name = fs.existsSync(path.join(dir, 'npm-shrinkwrap.json')) ? 'npm-shrinkwrap.json' : 'package-lock.json';
const lock = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')).packages;
if (!lock) { console.error(name + ' has no packages map (lockfileVersion 1)'); process.exit(1); }
for (const [k, v] of Object.entries(lock)) {
  const r = v.resolved || '';
  if (/^(git\\+|git:|github:|gitlab:|bitbucket:)/.test(r)) { console.error(k + ' comes from git (' + r + ')'); process.exit(1); }
  if (k && !v.link && r.startsWith('file:') && !/\\.(tgz|tar\\.gz|tar)$/.test(r)) { console.error(k + ' is a directory npm copies (' + r + ')'); process.exit(1); }
}
const live = JSON.parse(fs.readFileSync(liveLock, 'utf8')).packages || {};
for (const [k, v] of Object.entries(live)) if (k && v.hasInstallScript) console.log(k);
`;

/**
 * Node script (argv[1]: node_dir) checking node_modules against the lockfile (npm-shrinkwrap.json, else
 * package-lock.json; lockfileVersion 2 or 3: a `packages` map keyed by install path): every package npm's hidden
 * lockfile (node_modules/.package-lock.json, what npm 7+ installed) lists is at the lockfile's version and
 * integrity, and every package of the lockfile is listed but those npm leaves out here: optional ones (another
 * platform's binaries) and, when npm omits dev dependencies (NODE_ENV=production, --omit=dev), dev ones.
 * Exits 1 with what differs.
 */
const LOCK_CHECK = `const fs = require('fs'), path = require('path');
const dir = process.argv[1];
const read = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
const lock = (fs.existsSync(path.join(dir, 'npm-shrinkwrap.json')) ? read('npm-shrinkwrap.json') : read('package-lock.json')).packages || {};
const got = read('node_modules/.package-lock.json').packages || {};
const bad = [];
for (const [k, v] of Object.entries(got)) {
  const want = lock[k];
  if (!want) bad.push(k + ' is not in the lockfile');
  else if (want.version !== v.version || (want.integrity && v.integrity && want.integrity !== v.integrity)) bad.push(k + ' is ' + v.version + ', the lockfile says ' + want.version);
}
for (const [k, v] of Object.entries(lock)) if (k.includes('node_modules/') && !got[k] && !v.optional && !v.devOptional && !v.dev) bad.push(k + ' is missing');
if (bad.length) { console.error(bad.slice(0, 3).join('; ')); process.exit(1); }
`;

/**
 * An app command (build, migrate, hook, initdata) in the release (its directory, or `current`), as the app user,
 * with the release's .env values exported exactly as rendered (from its environ: no .env parsing by bash; a
 * release made by an older version, which has none, reads the shared one those versions wrote).
 * The command runs `contained` (sh/contain.sh: bash -euo pipefail, stdin /dev/null, a session of its own): the step
 * ends with the command's exit status once the command exits, after what it left running (a background process
 * holding the step's output, a build daemon) is stopped, which the step's output names.
 */
export function appCommand(env: Target, release: string, name: string, command: string, timeout = 1800, { sqlite = false } = {}): Step {
  const run = `contained ${quote(command)}`;
  return { name, as: 'app', timeout, script: `${CONTAIN_FUNCTIONS}\n${appEnvironment(env, release)}\n${environLoader(env.layout.environ(release), env.layout.legacyShared.environ)}\n${sqlite ? sqliteWritten(release, run) : run}` };
}

/**
 * Shell: `run`, then report (APP_KEYS.sqlite_made) each SQLite database file it wrote (made or changed) in
 * `release`, relative to it: the frameworks' default databases live in the project (Django's BASE_DIR /
 * 'db.sqlite3', Rails 8's storage/production.sqlite3, Flask-SQLAlchemy's instance/*.db, Prisma's dev.db), so a
 * migration makes one in the release, which the next deploy's release does not have. Found by name (.sqlite3,
 * .sqlite, .db, .db3: one file read per candidate, not every file a build wrote), then by SQLite's header ("SQLite
 * format 3", sqlite.org "Database File Format" 1.3); the dependency sets (venv, node_modules) and .git are not
 * searched. A failed `run` ends the script there (set -e), as without it.
 */
function sqliteWritten(release: string, run: string): string {
  return String.raw`ops_sqlite_since=$(date +%s)
${run}
find ${quote(release)} -xdev \( -name venv -o -name node_modules -o -name .git \) -prune -o -type f \( -name '*.sqlite3' -o -name '*.sqlite' -o -name '*.db' -o -name '*.db3' \) -newermt "@$((ops_sqlite_since - 1))" -print 2>/dev/null | while IFS= read -r f; do
  if [ "$(head -c 15 -- "$f" 2>/dev/null)" = 'SQLite format 3' ]; then ops_report ${APP_KEYS.sqlite_made} "${'$'}{f#${quote(release)}/}"; fi
done || true`;
}

/**
 * The warning for the SQLite databases (APP_KEYS.sqlite_made: paths relative to the release) that `what`
 * ("release.migrate") wrote in release `id`, or undefined when none: their data stays behind with that release.
 */
export function sqliteWarning(env: Target, what: string, id: string, paths: string[]): string | undefined {
  if (!paths.length) return undefined;
  const them = paths.length === 1 ? 'it' : 'them';
  return `${what} wrote ${paths.length === 1 ? 'a SQLite database' : 'SQLite databases'} in release ${id} (${paths.join(', ')}): each deploy makes a new release directory, so the next release starts without ${them} (an empty database, or none), a rollback goes back to its release's old copy, the other hosts' releases have none, and pruning deletes ${them}; give the app a database outside the releases: a path made once by you (sudo install -d -o ${env.appUser} -g ${env.appUser} ${env.layout.base}/data), named in env (Django's DATABASES NAME, SQLAlchemy's URL), or a database server`;
}
