// Building blocks for step scripts. Content reaches the host base64-encoded inside the script (no heredoc
// delimiter can be forged by the content, no quoting pitfalls); values go through `quote`.
import { quote } from '../shell.ts';

export function b64(content: string | Buffer): string {
  return Buffer.from(content).toString('base64');
}

/** Shell functions shared by system steps (provision, deploy's nginx/supervisor parts). */
export const SYSTEM_FUNCTIONS = `
# svc NAME ACTION: systemd on real VMs, Debian's service wrapper where there is no systemd.
svc() { if [ -d /run/systemd/system ]; then systemctl "$2" "$1"; else service "$1" "$2"; fi; }
# svc_up NAME: enabled at boot (systemd) and running now.
svc_up() {
  if [ -d /run/systemd/system ]; then
    systemctl is-enabled --quiet "$1" 2>/dev/null || { systemctl enable --quiet "$1"; CHANGED=1; }
    systemctl is-active --quiet "$1" || { systemctl start "$1"; CHANGED=1; }
  else
    service "$1" status >/dev/null 2>&1 || { service "$1" start >/dev/null; CHANGED=1; }
  fi
}
# item NAME: report whether this item changed since the last mark (CHANGED=1), then reset.
CHANGED=0
item() { if [ "$CHANGED" = 1 ]; then ops_report item "$1 changed"; else ops_report item "$1 ok"; fi; CHANGED=0; }
# put_file PATH MODE OWNER BASE64: write only when content, mode or owner differ (atomic rename); sets CHANGED=1.
put_file() {
  local path=$1 mode=$2 owner=$3 tmp
  mkdir -p "$(dirname "$path")"
  tmp=$(mktemp "$(dirname "$path")/.ops-new.XXXXXX")
  # Written whole, then renamed over the file: a full disk leaves the old file and no temporary one.
  printf %s "$4" | base64 -d > "$tmp" || { rm -f "$tmp"; return 1; }
  if [ -f "$path" ] && cmp -s "$tmp" "$path" && [ "$(stat -c '%a %U:%G' "$path")" = "\${mode#0} $owner" ]; then
    rm -f "$tmp"
    return 0
  fi
  chmod "$mode" "$tmp"
  chown "$owner" "$tmp"
  mv -f "$tmp" "$path"
  CHANGED=1
}
# ensure_dir PATH MODE OWNER
ensure_dir() {
  if [ ! -d "$1" ]; then install -d -m "$2" -o "\${3%%:*}" -g "\${3##*:}" "$1"; CHANGED=1; return 0; fi
  if [ "$(stat -c '%a %U:%G' "$1")" != "\${2#0} $3" ]; then chmod "$2" "$1"; chown "$3" "$1"; CHANGED=1; fi
}
`;

export function putFile(path: string, content: string, mode = '0644', owner = 'root:root'): string {
  return `put_file ${quote(path)} ${mode} ${owner} ${b64(content)}`;
}

/**
 * Apps sharing a host share its nginx configuration and certbot: host_lock NAME serializes the changes to
 * them across apps (each app's own lock, in its base directory, only serializes that app's runs). flock(1)
 * on /run/lock/ops-pipeline-NAME.lock, held until host_unlock NAME or the end of the script (the kernel
 * drops it with the process: a killed run leaves nothing behind). Waits at most WAIT seconds (default 45).
 */
export const HOST_LOCK_FUNCTIONS = String.raw`host_lock() { # NAME [WAIT]
  local fd
  mkdir -p /run/lock
  exec {fd}>>"/run/lock/ops-pipeline-$1.lock"
  if ! flock -w "${'$'}{2:-45}" "$fd"; then
    echo "another app's run on this host has held /run/lock/ops-pipeline-$1.lock for ${'$'}{2:-45}s (its $1 change); try again when it is done" >&2
    exit 1
  fi
  printf -v "HOST_LOCK_$1" %s "$fd"
}
host_unlock() { local v="HOST_LOCK_$1"; [ -z "${'$'}{!v:-}" ] || flock -u "${'$'}{!v}"; }`;

/**
 * put_file once the file's own validator (`check`, given the path of a copy) accepts the content: a file it
 * refuses never replaces the one in place, and the step fails with the validator's message. (nginx files
 * have applyNginx; supervisor files, startSlot.) Needs SYSTEM_FUNCTIONS.
 */
export function putChecked(path: string, content: string, check: string, what: string, mode = '0644'): string {
  return String.raw`new=$(mktemp); printf %s ${b64(content)} | base64 -d > "$new"
if ! out=$(${check} "$new" 2>&1); then rm -f "$new"; echo "${what} is refused by \`${check}\`; ${path} was left as it was: $out" >&2; exit 1; fi
rm -f "$new"
${putFile(path, content, mode)}`;
}

