// Initial data: the app's loader run on an uploaded file, in the live release, as the app user. The file
// holds users and passwords: it lives in a private temporary directory and is removed whatever happens.
import type { Target } from '../target.ts';
import type { Step } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { appCommand } from './app.ts';

/**
 * Run the app's initdata command on an uploaded file, in the live release, as the app user (the file moves
 * to a private directory first; both are removed whatever happens).
 */
export function runInitdata(env: Target, uploaded: string): Step {
  const L = env.layout;
  const u = quote(env.appUser);
  const file = '"$OPS_INITDATA_FILE"';
  const command = env.config.initdata.command.replace(/\{file\}/g, file);
  // The loader runs through the same environment as every app command (PATH, .env), in the live release.
  const inner = appCommand(env, L.current, 'initdata', command).script;
  return {
    name: 'initdata',
    as: 'root',
    timeout: 1800,
    script: String.raw`tmp=$(mktemp -d /tmp/ops-initdata.XXXXXX)
trap ${quote(`rm -rf "$tmp"; rm -f ${quote(uploaded)}`)} EXIT INT TERM HUP
chown ${u}:${u} "$tmp"
chmod 0700 "$tmp"
install -m 0600 -o ${u} -g ${u} ${quote(uploaded)} "$tmp/initdata.yml"
rm -f ${quote(uploaded)}
# shellcheck disable=SC2016 # the quoted text is the app user's script, expanded by its own bash
OPS_INITDATA_FILE="$tmp/initdata.yml" runuser -u ${u} -- env HOME=${quote(`/home/${env.appUser}`)} OPS_INITDATA_FILE="$tmp/initdata.yml" bash -c ${quote(`set -euo pipefail\n${inner}`)}`,
  };
}
