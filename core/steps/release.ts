// Release steps: what a deploy runs on a host before the switch. Code comes from the host's bare mirror
// (fed by packs from the runner), each release is a new directory, dependencies are shared by content hash,
// and the build, migrations and hooks run as the unprivileged app user while the old release still serves.
import type { Environment } from '../config/environment.ts';
import { layout } from '../layout.ts';
import { runtimePaths } from '../runtimes.ts';
import type { Step } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { certificatePaths } from './nginx.ts';
import { PROBE_FUNCTIONS, probes } from './switch.ts';
import { b64 } from './script.ts';
import { diskReport } from './facts.ts';

export interface ReleaseMeta {
  id: string;
  sha: string;
  ref: string;
  environment: string;
  actor: string;
  time: string;
  run: string;
  deps: { python: string; node: string };
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
 * One look at the host before a deploy or rollback (run with the lock, in the same step): provisioned?,
 * what is live and is it healthy, which releases exist, does the mirror have the sha?
 */
export function deployState(env: Environment, sha?: string, options: { liveHealth?: boolean } = {}): Step {
  const L = layout(env);
  const cert = certificatePaths(env);
  return {
    name: 'state',
    as: 'root',
    timeout: 30,
    quiet: true,
    script: String.raw`ops_report provisioned "$(cat ${quote(`${L.state}/provisioned`)} 2>/dev/null || echo no)"
${diskReport(L.base)}
cur=$(readlink ${quote(L.current)} 2>/dev/null || true)
ops_report current "${'$'}{cur##*/}"
ops_report slot "$(cat ${quote(L.slotFile)} 2>/dev/null || true)"
${cert ? `ops_report certificate "$([ -s ${quote(cert.cert)} ] && echo yes || echo no)"` : ''}
if [ -d ${quote(L.releases)} ]; then
  for r in $(ls -1 ${quote(L.releases)} | grep -E '^[0-9]{8}T[0-9]{6}Z-[0-9a-f]+$' | sort); do
    d=${quote(L.releases)}/$r
    status=ok; [ -e "$d/.ops-failed" ] && status=failed; [ -e "$d/.ops-abandoned" ] && status=abandoned
    ops_report release "$r $(cat "$d/REVISION" 2>/dev/null || echo unknown) $status"
  done
fi
if [ -d ${quote(L.mirror)} ]; then
  git --git-dir=${quote(L.mirror)} for-each-ref --format='%(objectname)' refs/ops/ | sort -u | while read -r s; do ops_report known "$s"; done
  ${sha ? `git --git-dir=${quote(L.mirror)} cat-file -e ${quote(`${sha}^{commit}`)} 2>/dev/null && ops_report has_sha yes || ops_report has_sha no` : 'true'}
fi
${options.liveHealth === false ? ': no live health check' : PROBE_FUNCTIONS}
live_slot=${options.liveHealth === false ? '' : `$(cat ${quote(L.slotFile)} 2>/dev/null || true)`}
case "$live_slot" in
  blue) wait_healthy 3 0.2 ${probes(env, 'blue').map(quote).join(' ')} && ops_report live_health ok || ops_report live_health "$UNHEALTHY" ;;
  green) wait_healthy 3 0.2 ${probes(env, 'green').map(quote).join(' ')} && ops_report live_health ok || ops_report live_health "$UNHEALTHY" ;;
esac`,
  };
}

/** Index an uploaded pack into the mirror and pin the sha with a ref (so pruning git objects keeps it). */
export function receivePack(env: Environment, packPath: string, sha: string): Step {
  const L = layout(env);
  return {
    name: 'receive code',
    as: 'root',
    timeout: 600,
    quiet: true,
    // index-pack leaves its temporary pack behind when it fails (a full disk): removed, not left to fill it.
    script: String.raw`trap 'find ${quote(`${L.mirror}/objects/pack`)} -maxdepth 1 -name "tmp_*" -delete 2>/dev/null || true' EXIT
git --git-dir=${quote(L.mirror)} index-pack --stdin --fix-thin < ${quote(packPath)} >/dev/null
rm -f ${quote(packPath)}
git --git-dir=${quote(L.mirror)} update-ref ${quote(`refs/ops/sha/${sha}`)} ${quote(sha)}
git --git-dir=${quote(L.mirror)} cat-file -e ${quote(`${sha}^{commit}`)}`,
  };
}

/** Put the uploaded .env in place (0600, app user), replacing the shared one atomically if it changed. */
export function installDotenv(env: Environment, uploaded: string): Step {
  const L = layout(env);
  const u = quote(env.appUser);
  return {
    name: '.env',
    as: 'root',
    timeout: 30,
    quiet: true,
    script: String.raw`if cmp -s ${quote(uploaded)} ${quote(L.envFile)}; then
  rm -f ${quote(uploaded)}
  ops_report dotenv unchanged
else
  # The live file is replaced only by a complete new one (rename); a failed copy (full disk) is removed.
  install -m 0600 -o ${u} -g ${u} ${quote(uploaded)} ${quote(`${L.envFile}.new`)} || { rm -f ${quote(`${L.envFile}.new`)}; exit 1; }
  rm -f ${quote(uploaded)}
  mv -f ${quote(`${L.envFile}.new`)} ${quote(L.envFile)}
  ops_report dotenv updated
fi`,
  };
}

/** A new release directory: the commit's files (no .git), REVISION, release.json, the shared .env linked in. */
export function createRelease(env: Environment, meta: ReleaseMeta): Step {
  const L = layout(env);
  const dir = `${L.releases}/${meta.id}`;
  const tmp = `${L.releases}/.new-${meta.id}`;
  const owner = `${env.appUser}:${env.appUser}`;
  return {
    name: 'release',
    as: 'root',
    timeout: 300,
    script: String.raw`[ ! -e ${quote(dir)} ] || { echo "release ${meta.id} already exists" >&2; exit 1; }
rm -rf ${quote(tmp)}
trap 'rm -rf ${quote(tmp)}' EXIT # a release cut short (full disk) never stays half-written
mkdir -m 0750 ${quote(tmp)}
git --git-dir=${quote(L.mirror)} archive --format=tar ${quote(meta.sha)} | tar -x -C ${quote(tmp)}
printf '%s\n' ${quote(meta.sha)} > ${quote(`${tmp}/REVISION`)}
printf %s ${b64(JSON.stringify(meta, null, 2) + '\n')} | base64 -d > ${quote(`${tmp}/release.json`)}
ln -sfn ../../shared/.env ${quote(`${tmp}/.env`)}
chown -R ${owner} ${quote(tmp)}
mv -T ${quote(tmp)} ${quote(dir)}
trap - EXIT
echo "release ${meta.id} (${meta.sha.slice(0, 12)}, ${meta.ref})"`,
  };
}

/** Environment for app commands: runtimes and the venv first on PATH, quiet package managers. */
function appEnvironment(env: Environment, release: string): string {
  const paths = runtimePaths(env);
  const nodeBin = paths.node.replace(/\/node$/, '');
  return String.raw`export PATH=${quote(`${release}/venv/bin:${nodeBin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`)}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
cd ${quote(release)}`;
}

/** Load the release's .env into the environment of app commands (it is written quoted for this). */
const LOAD_DOTENV = 'if [ -f .env ]; then set -a; . ./.env; set +a; fi';

/**
 * Dependencies, reused when unchanged: a venv and node_modules live in shared/deps/<kind>-<hash>, where the
 * hash covers the runtime and the lockfiles; a release links to them. A directory without `.complete` was
 * interrupted and is rebuilt.
 */
export function dependencies(env: Environment, release: string, hashes: { python: string; node: string }): Step {
  const L = layout(env);
  const paths = runtimePaths(env);
  const { python_requirements: req, node_dir: nodeDir } = env.config.release;
  const lines = [appEnvironment(env, release)];
  if (req) {
    const venv = `${L.deps}/venv-${hashes.python}`;
    lines.push(String.raw`venv=${quote(venv)}
if [ -f "$venv/.complete" ]; then
  ops_report deps "python reused"
else
  rm -rf "$venv"
  ${quote(paths.python)} -m venv "$venv"
  if [ -f ${quote(req)} ]; then "$venv/bin/pip" install -q -r ${quote(req)}; fi
  touch "$venv/.complete"
  ops_report deps "python installed"
fi
ln -sfn "$venv" venv`);
  }
  if (nodeDir) {
    const modules = `${L.deps}/node-${hashes.node}`;
    lines.push(String.raw`nm=${quote(modules)}
if [ -f "$nm/.complete" ]; then
  ops_report deps "node reused"
else
  rm -rf "$nm" ${quote(`${nodeDir}/node_modules`)}
  (cd ${quote(nodeDir)} && ${quote(paths.npm)} ci --no-audit --no-fund --loglevel=error)
  mkdir -p "$nm"
  if [ -d ${quote(`${nodeDir}/node_modules`)} ]; then mv ${quote(`${nodeDir}/node_modules`)} "$nm/node_modules"; else mkdir "$nm/node_modules"; fi
  touch "$nm/.complete"
  ops_report deps "node installed"
fi
ln -sfn "$nm/node_modules" ${quote(`${nodeDir}/node_modules`)}`);
  }
  return { name: 'dependencies', as: 'app', timeout: 1800, script: lines.join('\n') };
}

/** An app command (build, migrate, hook) in the release, as the app user, with its .env loaded. */
export function appCommand(env: Environment, release: string, name: string, command: string, timeout = 1800): Step {
  return { name, as: 'app', timeout, script: `${appEnvironment(env, release)}\n${LOAD_DOTENV}\n${command}` };
}

/** Mark a release that failed before going live (kept for inspection, skipped by rollback). */
export function markRelease(env: Environment, id: string, mark: 'failed' | 'abandoned', why: string): Step {
  const f = `${layout(env).releases}/${id}/.ops-${mark}`;
  return { name: `mark ${mark}`, as: 'root', timeout: 30, quiet: true, script: `[ -d ${quote(`${layout(env).releases}/${id}`)} ] && printf '%s\\n' ${quote(why)} > ${quote(f)} || true` };
}

/**
 * Keep the newest `keep` releases plus the live one; remove the rest, the dependency sets no kept release
 * uses, and the mirror refs of removed shas.
 */
export function pruneReleases(env: Environment, keep: number): Step {
  const L = layout(env);
  return {
    name: 'prune',
    as: 'root',
    timeout: 300,
    quiet: true,
    script: String.raw`cd ${quote(L.releases)}
live=$(readlink ${quote(L.current)} 2>/dev/null || true); live=${'$'}{live##*/}
ls -1 | grep -E '^[0-9]{8}T[0-9]{6}Z-[0-9a-f]+$' | sort -r | tail -n +${keep + 1} | while read -r r; do
  [ "$r" = "$live" ] && continue
  rm -rf -- "$r"
  ops_report pruned "$r"
done
rm -rf .new-* 2>/dev/null || true
used=$(for r in */; do for l in "$r"venv "$r"*/node_modules; do [ -L "$l" ] && readlink "$l"; done; done 2>/dev/null | sed 's#/node_modules$##' | sort -u)
for d in ${quote(L.deps)}/*; do
  [ -d "$d" ] || continue
  grep -qxF "$d" <<< "$used" || { rm -rf -- "$d"; ops_report pruned_deps "${'$'}{d##*/}"; }
done
keep_shas=$(cat */REVISION 2>/dev/null | sort -u)
git --git-dir=${quote(L.mirror)} for-each-ref --format='%(refname)' refs/ops/sha/ | while read -r ref; do
  grep -qxF "${'$'}{ref##*/}" <<< "$keep_shas" || git --git-dir=${quote(L.mirror)} update-ref -d "$ref" || echo "could not drop $ref (next prune will)" >&2
done`,
  };
}
