// Initial data: the app's loader run on an uploaded file, in the live release, as the app user. The file
// holds users and passwords: it lives in a private temporary directory and is removed whatever happens.
import { createHash } from 'node:crypto';
import type { Target } from '../target.ts';
import { reportKeys, type Step } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { appCommand } from './app.ts';

/** What initdataSettings reports: `environ_digest`, environDigest of the environ the loader would read, or `none`. */
export const INITDATA_KEYS = reportKeys('environ_digest');

/**
 * A digest of the values in an environ file (NUL-separated NAME=VALUE records), whatever their order: the
 * sha256 (hex) of its records sorted by their bytes, each ending in NUL. What initdata compares, on the runner
 * (the environ a deploy would render now) and on the host (the live release's, initdataSettings), without the
 * values leaving either side. Order does not count: a deploy's fingerprint ignores `env`'s order, so a reordered
 * `env` deploys nothing new and must not make initdata refuse.
 */
export function environDigest(environ: string): string {
  const records = environ.split('\0');
  if (records.at(-1) === '') records.pop();
  const sorted = records.map((r) => Buffer.from(`${r}\0`, 'utf8')).sort(Buffer.compare);
  return createHash('sha256').update(Buffer.concat(sorted)).digest('hex');
}

/**
 * Read-only step: environDigest of the environ the live release's commands load (environLoader's first file that
 * exists: the release's own, else the shared one of releases made by an older version), computed on the host by
 * `LC_ALL=C sort -z | sha256sum` (byte order, as environDigest sorts); `none` when there is none.
 */
export function initdataSettings(env: Target): Step {
  const L = env.layout;
  return {
    name: 'initdata settings',
    as: 'root',
    timeout: 30,
    quiet: true,
    script: String.raw`digest=none
for environ_file in ${quote(L.environ(L.current))} ${quote(L.legacyShared.environ)}; do
  if [ -f "$environ_file" ]; then digest=$(LC_ALL=C sort -z -- "$environ_file" | sha256sum); digest=${'$'}{digest%% *}; break; fi
done
ops_report ${INITDATA_KEYS.environ_digest} "$digest"`,
  };
}

/**
 * Run the app's initdata command on an uploaded file (named `name` for the loader: `initdata` and the data file's
 * extensions, `initdata.json`), in the live release, as the app user (the file moves
 * to a private directory first, /tmp/ops-initdata-XXXXXX: no dot in its name, which a loader reading the extensions
 * off the whole path would take for one, as a file with none has; both are removed whatever happens). The app user's bash is exec'd by setpriv(1)
 * (util-linux, Essential on Debian), not started under runuser: runuser answers the step's SIGTERM (its time limit)
 * by SIGKILLing its child 2 s later (util-linux su-common.c, supervise_child), which cut `contained` short (its
 * SIGTERM, then SIGKILL after 5 s): a loader slow to stop, in its own session, went on writing to the database after
 * the run had failed and let go of the lock. Exec'd, that bash stops the loader before the step ends (exit 143).
 */
export function runInitdata(env: Target, uploaded: string, name: string): Step {
  // the name the loader gets, with the data file's own extensions (loaders choose their reader by it): checked
  // here too, as it reaches the shell (quoted) and the loader's command line
  if (!/^initdata(?:\.[A-Za-z0-9_-]+)*$/.test(name)) throw new Error(`runInitdata: unsafe file name ${JSON.stringify(name)}`);
  const L = env.layout;
  const u = quote(env.appUser);
  const file = '"$OPS_INITDATA_FILE"';
  const command = env.config.initdata.command.replace(/\{file\}/g, file);
  // The loader runs through the same environment as every app command (PATH, .env), in the live release.
  const inner = appCommand(env, L.current, 'initdata', command).script;
  return {
    name: 'initdata',
    as: 'root',
    timeout: env.config.initdata.timeout,
    script: String.raw`tmp=$(mktemp -d /tmp/ops-initdata-XXXXXX)
trap ${quote(`rm -rf "$tmp"; rm -f ${quote(uploaded)}`)} EXIT INT TERM HUP
chown ${u}:${u} "$tmp"
chmod 0700 "$tmp"
install -m 0600 -o ${u} -g ${u} ${quote(uploaded)} "$tmp"/${quote(name)}
rm -f ${quote(uploaded)}
# The app user's login shell and groups, as runuser(1) gave them (SHELL, initgroups).
app_shell=$(getent passwd ${u} | cut -d: -f7)
# shellcheck disable=SC2016 # the quoted text is the app user's script, expanded by its own bash
setpriv --reuid=${u} --regid=${u} --init-groups -- env HOME=${quote(`/home/${env.appUser}`)} USER=${u} LOGNAME=${u} SHELL="${'$'}{app_shell:-/bin/sh}" OPS_INITDATA_FILE="$tmp"/${quote(name)} bash -c ${quote(`set -euo pipefail\n${inner}`)}`,
  };
}
