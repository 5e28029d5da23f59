// Running in a release as the app user: its environment (pinned runtimes first on PATH, quiet package managers),
// its dependencies (a venv and node_modules shared by content hash), and app commands (build, migrate, hooks,
// initdata) with the .env's values exported as rendered.
import type { Target } from '../target.ts';
import { environLoader } from '../dotenv.ts';
import { reportKeys, type Step } from '../remote/types.ts';
import { quote } from '../shell.ts';

/** What `dependencies` reports: `deps` `<python|node> <reused|installed>` (one line per runtime). */
export const APP_KEYS = reportKeys('deps');

/** Environment for app commands: runtimes and the venv first on PATH, quiet package managers. */
function appEnvironment(env: Target, release: string): string {
  const paths = env.runtime;
  const nodeBin = paths.node.replace(/\/node$/, '');
  return String.raw`export PATH=${quote(`${release}/venv/bin:${nodeBin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`)}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
cd ${quote(release)}`;
}

/**
 * Dependencies, reused when unchanged: a venv and node_modules live in shared/deps/<kind>-<hash>, where the
 * hash covers the runtime and the lockfiles; a release links to them. A directory without `.complete` was
 * interrupted and is rebuilt. A new Python set is made by uv (release.python_installer, default; from the
 * app user's cache, ~/.cache/uv, shared by every set: hard links when on the same filesystem as the sets,
 * copies otherwise) or by pip (`python -m venv` + `pip install`); `--require-hashes` when the requirements
 * carry hashes, as pip does by itself. npm ci reads the app user's npm cache (~/.npm) first (--prefer-offline).
 */
export function dependencies(env: Target, release: string, hashes: { python: string; node: string }): Step {
  const L = env.layout;
  const paths = env.runtime;
  const { python_requirements: req, node_dir: nodeDir, python_installer: installer } = env.config.release;
  const lines = [appEnvironment(env, release)];
  if (req) {
    const venv = `${L.deps}/venv-${hashes.python}`;
    const install =
      installer === 'pip'
        ? String.raw`  ${quote(paths.python)} -m venv "$venv"
  if [ -f ${quote(req)} ]; then "$venv/bin/pip" install -q -r ${quote(req)}; fi`
        : String.raw`  export UV_NO_PROGRESS=1 UV_PYTHON_DOWNLOADS=never UV_CACHE_DIR="$HOME/.cache/uv"
  mkdir -p "$UV_CACHE_DIR"
  # Hard links from the cache need one filesystem; across two, uv copies (said once here, not warned per file).
  if [ "$(stat -c %d "$UV_CACHE_DIR")" != "$(stat -c %d ${quote(L.deps)})" ]; then export UV_LINK_MODE=copy; fi
  ${quote(paths.uv)} venv -q --seed --python ${quote(paths.python)} "$venv"
  if [ -f ${quote(req)} ]; then
    hashes=(); if grep -q -- '--hash=' ${quote(req)}; then hashes=(--require-hashes); fi
    ${quote(paths.uv)} pip install -q --python "$venv/bin/python" "${'$'}{hashes[@]}" -r ${quote(req)}
  fi`;
    lines.push(String.raw`venv=${quote(venv)}
if [ -f "$venv/.complete" ]; then
  ops_report ${APP_KEYS.deps} "python reused"
else
  rm -rf "$venv"
${install}
  touch "$venv/.complete"
  ops_report ${APP_KEYS.deps} "python installed (${installer})"
fi
ln -sfn "$venv" venv`);
  }
  if (nodeDir) {
    const modules = `${L.deps}/node-${hashes.node}`;
    lines.push(String.raw`nm=${quote(modules)}
if [ -f "$nm/.complete" ]; then
  ops_report ${APP_KEYS.deps} "node reused"
else
  rm -rf "$nm" ${quote(`${nodeDir}/node_modules`)}
  (cd ${quote(nodeDir)} && ${quote(paths.npm)} ci --prefer-offline --no-audit --no-fund --loglevel=error)
  mkdir -p "$nm"
  if [ -d ${quote(`${nodeDir}/node_modules`)} ]; then mv ${quote(`${nodeDir}/node_modules`)} "$nm/node_modules"; else mkdir "$nm/node_modules"; fi
  touch "$nm/.complete"
  ops_report ${APP_KEYS.deps} "node installed"
fi
ln -sfn "$nm/node_modules" ${quote(`${nodeDir}/node_modules`)}`);
  }
  return { name: 'dependencies', as: 'app', timeout: 1800, script: lines.join('\n') };
}

/**
 * An app command (build, migrate, hook, initdata) in the release, as the app user, with the .env's values
 * exported exactly as rendered (from shared/environ: no .env parsing by bash).
 */
export function appCommand(env: Target, release: string, name: string, command: string, timeout = 1800): Step {
  return { name, as: 'app', timeout, script: `${appEnvironment(env, release)}\n${environLoader(env.layout.environFile)}\n${command}` };
}
