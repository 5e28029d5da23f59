// What `ops ping` reads from a host, in one step run as the login (so it works before sudo does): who and
// what the host is, and what would make a deploy fail there: sudo asking for a password, sshd's session
// limit, free space and inodes under the app's directory against what its live release takes.
import type { Target } from '../target.ts';
import { reportKeys, type Step } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { reportProvisioned } from './system.ts';

/** What `hostFacts` and `diskReport` report: `disk` (`<free KiB> <inodes> <free inodes> <dir>`), `hostname`, `os` (PRETTY_NAME), `uptime` (seconds), `login`, `shell` (the login's shell, from passwd), `ssh_rc` (the file sshd runs before every command of the login: ~/.ssh/rc, else /etc/ssh/sshrc; none when neither is there), `forced` (`yes` when sshd ran a ForceCommand that ran ours: SSH_ORIGINAL_COMMAND is set), `sudo` (`yes|no <first error line>`), `max_sessions` (sshd's MaxSessions, '' when unreadable), `footprint` (`<KiB> <inodes>`), `temp_disk` (as `disk`, for /tmp), `app_home` (`<app user> <its home in /etc/passwd>`, when that is not a directory); `hostFacts` also PROVISIONED_KEYS. */
export const FACTS_KEYS = reportKeys('disk', 'hostname', 'os', 'uptime', 'login', 'shell', 'ssh_rc', 'forced', 'sudo', 'max_sessions', 'footprint', 'temp_disk', 'app_home');

/** Where steps make their temporary files (mktemp, bash's here-documents, npm's and uv's): often a filesystem of its own (a tmpfs). */
export const TEMP_DIR = '/tmp';

/** Shell setting `ops_df` to `<free KiB> <total inodes> <free inodes> <path>` for the filesystem holding `dir` (or its nearest existing parent). */
function diskFree(dir: string): string {
  return String.raw`d=${quote(dir)}
while [ ! -d "$d" ]; do d=$(dirname "$d"); done
ops_df="$(df -Pk "$d" | awk 'NR == 2 { print $4 }') $(df -Pi "$d" | awk 'NR == 2 { print $2, $4 }') $d"`;
}

/**
 * Shell reporting free space and inodes of the filesystem holding `dir` (or its nearest existing parent):
 * `@ops disk <free KiB> <total inodes> <free inodes> <path>`. Read with `parseDisk`.
 */
export function diskReport(dir: string): string {
  return `${diskFree(dir)}\nops_report ${FACTS_KEYS.disk} "$ops_df"`;
}

export interface DiskSpace {
  path: string;
  freeMb: number;
  /** Undefined on a filesystem without an inode limit (btrfs reports 0 inodes in all). */
  freeInodes?: number;
}

/** The value of a `disk` report (diskReport), or undefined when there is none. */
export function parseDisk(value: string | undefined): DiskSpace | undefined {
  const [freeKb, totalInodes, freeInodes, ...where] = (value ?? '').split(' ');
  if (!freeKb || !Number.isFinite(Number(freeKb))) return undefined;
  return { path: where.join(' '), freeMb: Math.floor(Number(freeKb) / 1024), ...(Number(totalInodes) > 0 && { freeInodes: Number(freeInodes) }) };
}

/** "12 MB and 340 inodes free under /srv/app". */
export function describeDisk(d: DiskSpace): string {
  return `${d.freeMb} MB${d.freeInodes !== undefined ? ` and ${d.freeInodes} inodes` : ''} free under ${d.path}`;
}

/** Out of space or inodes: under 1 MB or 10 inodes free (what diskFullError and ping take for a full filesystem). */
export function exhausted(d: DiskSpace | undefined): boolean {
  return !!d && (d.freeMb < 1 || (d.freeInodes !== undefined && d.freeInodes < 10));
}

/**
 * What to do about `d`, a full filesystem that does not hold the app's directory (/tmp, a tmpfs of its own): find what
 * fills it, or make it larger. `inodes`: the inodes ran out, not the space. Ends before "then …".
 */
export function otherDiskFix(hostName: string, d: DiskSpace, inodes: boolean): string {
  return `free ${inodes ? 'inodes' : 'space'} on ${hostName} under ${d.path} (as root, ${inodes ? `find ${d.path} -xdev | cut -d/ -f1-3 | sort | uniq -c | sort -n | tail` : `du -xsh ${d.path}/* | sort -h | tail`} shows what takes it), or make it larger (a tmpfs: mount -o remount,size=1G,nr_inodes=1m ${d.path})`;
}

/**
 * Free space and inodes under the app's directory (after a step ran out of space), then under each of `also` (absolute
 * paths: those the failure's own words name, and the temporary directory, which may be a filesystem of their own, full
 * while the app's has room): one `disk` report each, in that order (reportedAll).
 */
export function diskSpace(env: Target, also: string[] = []): Step {
  return { name: 'disk space', as: 'login', timeout: 30, quiet: true, script: [env.baseDir, ...also].map(diskReport).join('\n') };
}

/**
 * What `ops ping` reads on a host as the SSH login: hostname, OS, uptime, sudo without a password, sshd's
 * MaxSessions for this connection, free space and inodes under base_dir, whether it was provisioned for the
 * environment (provision's marker through sudo -n: reportProvisioned; `unknown` when sudo asks for a password). Read only.
 */
export function hostFacts(env: Target): Step {
  const base = env.baseDir;
  return {
    name: 'host facts',
    as: 'login',
    timeout: 60,
    quiet: true,
    script: String.raw`ops_report ${FACTS_KEYS.hostname} "$(hostname)"
# shellcheck source=/dev/null # the host's own file, not ours to follow
ops_report ${FACTS_KEYS.os} "$(. /etc/os-release && echo "$PRETTY_NAME")"
ops_report ${FACTS_KEYS.uptime} "$(cut -d' ' -f1 /proc/uptime)"
ops_report ${FACTS_KEYS.login} "$(id -un)"
# Where text printed before our command can come from: the login shell's start-up files, and sshd's rc file.
pw=$(getent passwd "$(id -un)" || true)
ops_report ${FACTS_KEYS.shell} "$(printf '%s' "$pw" | cut -d: -f7)"
for rc in "$(printf '%s' "$pw" | cut -d: -f6)/.ssh/rc" /etc/ssh/sshrc; do if [ -f "$rc" ]; then ops_report ${FACTS_KEYS.ssh_rc} "$rc"; break; fi; done
if [ -n "${'$'}{SSH_ORIGINAL_COMMAND+x}" ]; then ops_report ${FACTS_KEYS.forced} yes; fi
# Provisioned for this environment? (Every command that needs it says so first: notProvisioned.)
${reportProvisioned(env, 'login')}
# true started by env, as a step's shell is by timeout: sudo's NOEXEC lets sudo itself run, nothing it runs start another.
if sudo_err=$(/usr/bin/sudo -n /usr/bin/env true 2>&1 </dev/null); then sudo=yes; else sudo=no; fi
ops_report ${FACTS_KEYS.sudo} "$sudo $(printf '%s' "$sudo_err" | head -n 1)"
if [ "$sudo" = yes ]; then
  # sshd's settings for this very connection (Match blocks applied): client address and port from SSH_CONNECTION.
  read -r -a conn <<< "${'$'}{SSH_CONNECTION:-127.0.0.1 0 127.0.0.1 22}"
  sshd=$(command -v sshd || echo /usr/sbin/sshd)
  ops_report ${FACTS_KEYS.max_sessions} "$(/usr/bin/sudo -n "$sshd" -T -C "user=$(id -un),host=$(hostname),addr=${'$'}{conn[0]},laddr=${'$'}{conn[2]},lport=${'$'}{conn[3]}" 2>/dev/null | awk '$1 == "maxsessions" { print $2 }' || true)"
fi
# Free space and inodes where releases go (the nearest directory that exists, before the first provision).
${diskReport(base)}
# And where steps make their temporary files (a tmpfs of its own on many hosts).
${diskFree(TEMP_DIR)}
ops_report ${FACTS_KEYS.temp_disk} "$ops_df"
# The app user's home, where npm and uv keep their caches: /nonexistent for a user made by adduser --system.
app_home=$(getent passwd ${quote(env.appUser)} | cut -d: -f6 || true)
if [ -n "$app_home" ] && [ ! -d "$app_home" ]; then ops_report ${FACTS_KEYS.app_home} ${quote(env.appUser)}" $app_home"; fi
# What the live release takes with its dependency sets: about what a deploy that changes them all needs.
cur=$(readlink -f ${quote(`${base}/current`)} 2>/dev/null || true)
if [ "$sudo" = yes ] && [ -n "$cur" ] && /usr/bin/sudo -n test -d "$cur"; then
  set -- "$cur"
  for l in $(/usr/bin/sudo -n find "$cur" -maxdepth 4 \( -name venv -o -name node_modules \) -type l 2>/dev/null); do set -- "$@" "$(/usr/bin/sudo -n readlink -f "$l")"; done
  ops_report ${FACTS_KEYS.footprint} "$(/usr/bin/sudo -n du -sck "$@" 2>/dev/null | tail -n 1 | cut -f1) $(/usr/bin/sudo -n du -sc --inodes "$@" 2>/dev/null | tail -n 1 | cut -f1)"
fi`,
  };
}
