// Building blocks for step scripts. Content reaches the host base64-encoded inside the script (no heredoc
// delimiter can be forged by the content, no quoting pitfalls); values go through `quote`.
import { createHash } from 'node:crypto';
import { PROVISION_MARK } from '../packages.ts';
import { quote } from '../shell.ts';

/** Base64 of `content` (how file contents travel inside a script). */
export function b64(content: string | Buffer): string {
  return Buffer.from(content).toString('base64');
}

/**
 * Shell that writes `content` to `path` with `mode` and `owner` only when one of them differs (put_file in
 * sh/system.sh: atomic rename, CHANGED=1). Needs SYSTEM_FUNCTIONS.
 */
export function putFile(path: string, content: string, mode = '0644', owner = 'root:root'): string {
  return putFileWord(path, b64(content), mode, owner);
}

/** putFile with the content's base64 as a shell word (`"$conf_b64"`: a content made on the host). */
export function putFileWord(path: string, b64Word: string, mode = '0644', owner = 'root:root'): string {
  return `put_file ${quote(path)} ${mode} ${owner} ${b64Word}`;
}

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


/**
 * Shell test: whether `path` is Debian package `pkg`'s configuration file as the package shipped it, untouched: its md5
 * is the one dpkg recorded when it installed the file (`dpkg-query -W -f='${Conffiles}'`: " <path> <md5>[ obsolete]"
 * per line; dpkg's own test of a conffile changed locally, deb-conffiles(5)). False for a file absent, edited, or that
 * the package does not ship as a conffile. Needs nothing else.
 */
export function asShipped(pkg: string, path: string): string {
  const conffiles = "dpkg-query -W -f='${Conffiles}\\n' " + quote(pkg);
  return `{ [ -f ${quote(path)} ] && [ "$(md5sum < ${quote(path)} | cut -d' ' -f1)" = "$(${conffiles} 2>/dev/null | awk -v p=${quote(path)} '$1 == p { print $2; exit }')" ]; }`;
}

/**
 * How putUnlessHostOwn treats a version of the file that someone made on the host, by the file's kind:
 * - `kept`: a file set up once (nginx.conf): the host's own is kept as it is, said with `kept` (what that means for
 *   ops, and how to have ops's instead). Written only when absent, ops's own as ops wrote it (its md5 that of
 *   `content` or one of `previous`, the md5s of every version an older ops wrote: keep them there when the content
 *   changes), or Debian package `package`'s configuration file as shipped (asShipped). One whose first line is
 *   `content`'s (the header ops writes first in such a file) or one of `previousFirstLines` (the headers an older ops
 *   wrote) is ops's changed here since; any other, the admin's own.
 * - `replaced`: a file ops renders from the environment's settings on every run (the app's nginx site): it must follow
 *   them, so a version made on the host is replaced, but never silently: moved to a backup first
 *   (HOST_OWN_BACKUPS/<path>.<UTC time>, a symlink as the link; the newest HOST_OWN_BACKUPS_KEPT per file kept), and said naming the file, the backup and `lasts`
 *   (where a change to it lasts: the setting or template; `when`: the runs that write it, "provision and deploy" unless
 *   given). What ops wrote is recorded beside it (`.<name>.ops-md5`, the md5s of the last versions it wrote (and of one it had no record of, replaced with a backup, said as an older ops's when its first line is ops's header: OPS_HEADERS), newest last:
 *   dpkg's record of a conffile; one put back after a failure is among them), so ops's own, unchanged, is replaced
 *   without a word. Its content may be made on the host (`{ b64Word }`: putFileWord's); `null`: removed (the setting
 *   that made it is gone), backed up first the same way. `mode`, `owner`: the file's (0644 root:root unless given).
 */
export type HostOwnRule =
  | { kind: 'kept'; package: string; kept: string; previous?: readonly string[]; previousFirstLines?: readonly string[] }
  | { kind: 'replaced'; lasts: string; when?: string; mode?: string; owner?: string };

/**
 * The first lines of a file ops writes whole, as a shell case pattern: a comment (`#` in nginx's files, `;` in
 * supervisor's) starting "Managed by ops-pipeline:" (nginx-config.ts HEADER, switch.ts slotConfig's), or PROVISION_MARK
 * (the app user's package index files), as every version has written them.
 * putUnlessHostOwn: a `replaced` file with one and no record was written by an older ops.
 */
const OPS_HEADERS = [...['#', ';'].map((c) => `${c} Managed by ops-pipeline:`), PROVISION_MARK].map((h) => `${quote(h)}*`).join(' | ');

/** Where putUnlessHostOwn keeps the host's versions of the files it replaces (root's only: a file may hold a token). Outside every directory a program reads whole (conf.d, sites-enabled, logrotate.d). */
export const HOST_OWN_BACKUPS = '/var/backups/ops-pipeline';
/**
 * How many backups putUnlessHostOwn keeps per file: the newest ones (by their names' UTC times, then `.2`, `.3`... `.10` as
 * numbers: a second one in the same second never over the first; a clock set back names a new one after the newest:
 * sh/stamped.sh), older ones removed as a
 * new one is made, so a file changed on the host again and again (a config tool rewriting the site each hour) does
 * not fill /var over the runs.
 */
export const HOST_OWN_BACKUPS_KEPT = 10;

/** The record of what putUnlessHostOwn last wrote at `path` (a `replaced` file): `.<name>.ops-md5` beside it, so it is snapshotted and put back with its directory (applyNginx). */
export function writtenRecord(path: string): string {
  const i = path.lastIndexOf('/');
  return `${path.slice(0, i + 1)}.${path.slice(i + 1)}.ops-md5`;
}

/**
 * Shell test: whether the file at `path`, a `replaced` one (HostOwnRule), is not one of the versions ops recorded writing
 * there (writtenRecord): a symlink, something other than a file, or a file whose md5 is not in the record. True for a
 * file ops has no record of (`recorded`: only when the record is there: a file someone changed since ops wrote it).
 * False for a path with nothing there.
 */
export function notAsWritten(path: string, recorded = false): string {
  const p = quote(path);
  const rec = quote(writtenRecord(path));
  return `{ { [ -e ${p} ] || [ -L ${p} ]; }${recorded ? ` && [ -s ${rec} ]` : ''} && { [ -L ${p} ] || [ ! -f ${p} ] || ! grep -qsxF "$(md5sum < ${p} | cut -d' ' -f1)" ${rec}; }; }`;
}

/**
 * Shell writing `content` to `path` (putFile; 0644 root:root, or a `replaced` rule's mode and owner) unless the host made the file its own, then
 * treated as `rule` says (HostOwnRule): kept, or replaced with a backup; either said on stdout, naming the file. An
 * admin's own, or ops's changed here since (said with the directives, the first word of each line, the change added
 * or changed and removed, never their values: dpkg's rule for a conffile changed locally). A mode or owner changed
 * here on a file ops writes is set back, said with what it was. Needs SYSTEM_FUNCTIONS.
 */
export function putUnlessHostOwn(path: string, content: string | { b64Word: string } | null, rule: HostOwnRule): string {
  const p = quote(path);
  const mode = rule.kind === 'replaced' ? (rule.mode ?? '0644') : '0644';
  const owner = rule.kind === 'replaced' ? (rule.owner ?? 'root:root') : 'root:root';
  // A mode or owner someone set here: put_file sets ops's back, said.
  const modeBack = String.raw`if [ -f ${p} ] && [ ! -L ${p} ] && [ "$(stat -c '%a %U:%G' ${p})" != ${quote(`${mode.replace(/^0/, '')} ${owner}`)} ]; then echo ${quote(`set ${path} back to mode ${mode}, owner ${owner} (ops's), from `)}"$(stat -c '%a %U:%G' ${p})"${quote(' here: a mode or owner of your own does not last on a file ops writes')}; fi`;
  if (rule.kind === 'replaced') {
    const rec = quote(writtenRecord(path));
    // The md5s ops wrote here, newest last: a file put back after a failure (applyNginx, a failed start) is one of them.
    const newMd5 =
      content === null ? 'host_file_new=' : typeof content === 'string' ? `host_file_new=${createHash('md5').update(content).digest('hex')}` : `host_file_new=$(printf %s ${content.b64Word} | base64 -d | md5sum | cut -d' ' -f1)`;
    const done = content === null ? `removed ${path} (the environment no longer sets it): ` : `replaced ${path}: `;
    const backup = String.raw`host_file_md5=; host_file_said=
[ ! -f ${p} ] || host_file_md5=$(md5sum < ${p} | cut -d' ' -f1)
${newMd5}
if { [ -L ${p} ] || [ "$host_file_md5" != "$host_file_new" ]; } && ${notAsWritten(path)}; then
  # Named after the time (a second change in the same second, provision then deploy: .2, .3..., never over the first;
  # a clock set back: after the newest still), and the newest HOST_OWN_BACKUPS_KEPT kept by that order (stamped.sh).
  stamped_next ${quote(`${HOST_OWN_BACKUPS}${path}`)} ''; host_file_backup=$stamped_name
  mkdir -p "${'$'}{host_file_backup%/*}"; chmod 0700 ${quote(HOST_OWN_BACKUPS)}
  cp -a ${p} "$host_file_backup"; rm -f ${p}
  stamped_keep ${quote(`${HOST_OWN_BACKUPS}${path}`)} '' ${HOST_OWN_BACKUPS_KEPT}
  if [ -s ${rec} ]; then host_file_why='someone changed it here since ops wrote it'
  elif [ ! -L "$host_file_backup" ] && case "$(head -n1 "$host_file_backup" 2>/dev/null)" in ${OPS_HEADERS}) true ;; *) false ;; esac; then host_file_why="written by an older ops (its first line is ops's header), which kept no record of what it wrote: a change made here since cannot be told from it"; host_file_said=$host_file_md5
  else host_file_why="it is not the one ops writes, and ops has no record of writing it (written by someone here, or by an older ops)"; host_file_said=$host_file_md5; fi
  echo ${quote(done)}"$host_file_why; what it held is kept in $host_file_backup${content === null ? '' : ` (diff $host_file_backup ${path} shows what differs)`}. ops writes this file from the environment's settings on every ${rule.when ?? 'provision and deploy'}, so a change made on the host does not last: "${quote(rule.lasts)}`;
    if (content === null) return `${backup}\nfi\nrm -f ${p} ${rec}`;
    return String.raw`${backup}
else
  ${modeBack}
fi
${typeof content === 'string' ? putFile(path, content, mode, owner) : putFileWord(path, content.b64Word, mode, owner)}
# A version ops has no record of, just backed up and said, is recorded too: put back after a failure (a failed start's
# previous file, which an older ops wrote without a record), it is no new change.
if [ -n "$host_file_said" ] || [ "$(tail -n1 ${rec} 2>/dev/null)" != "$host_file_new" ]; then { tail -n 8 ${rec} 2>/dev/null || true; [ -z "$host_file_said" ] || echo "$host_file_said"; echo "$host_file_new"; } > ${rec}.new; mv -f ${rec}.new ${rec}; fi`;
  }
  if (typeof content !== 'string') throw new Error(`putUnlessHostOwn: a kept file's content is ops's text (${path})`);
  const first = content.split('\n', 1)[0]!;
  const md5 = createHash('md5').update(content).digest('hex');
  const previous = (rule.previous ?? []).join(' ');
  const firsts = [first, ...(rule.previousFirstLines ?? [])].map(quote).join(' | ');
  return String.raw`host_file_md5=
[ ! -f ${p} ] || host_file_md5=$(md5sum < ${p} | cut -d' ' -f1)
if [ ! -e ${p} ] || [ "$host_file_md5" = ${md5} ] || { [ -n "$host_file_md5" ] && [[ " ${previous} " == *" $host_file_md5 "* ]]; } || ${asShipped(rule.package, path)}; then
  ${modeBack}
  ${putFile(path, content)}
elif case "$(head -n1 ${p})" in ${firsts}) true ;; *) false ;; esac; then
  # The directives each side has that the other lacks (diff's "> " and "< " lines), by name.
  host_file_diff=$(printf %s ${b64(content)} | base64 -d | diff - ${p} || true)
  host_file_names() { local n; n=$(sed -n "s/^$1 *\([a-z_][a-z0-9_]*\).*/\1/p" <<< "$host_file_diff" | sort -u | paste -sd' '); echo "${'$'}{n:-none}"; }
  echo ${quote(`kept this host's own ${path} as it is: ops wrote it, but someone changed it here since (`)}"added or changed: $(host_file_names '>'); removed: $(host_file_names '<')"${quote(`), and ops never overwrites a change; ${rule.kept}`)}
else
  echo ${quote(`kept this host's own ${path} as it is: it is neither the one ops writes (its first line: ${first}) nor ${rule.package}'s as shipped (its md5 differs from the one dpkg recorded: someone changed it here), and ops never overwrites it; ${rule.kept}`)}
fi`;
}

/**
 * git on a host (the mirror, the version managers' clones), reading none of the host's configuration: root's
 * ~/.gitconfig and ~/.config/git/attributes, /etc/gitconfig and /etc/gitattributes would make what it writes differ
 * from the commit (core.autocrlf=true: git archive writes CRLF line ends; tar.umask: other file modes; an attributes
 * file's export-ignore: files left out), run what they name as root (core.hooksPath, init.templateDir's hooks copied
 * into the mirror, core.fsmonitor) or name another branch (init.defaultBranch). env(1), so that it can follow timeout(1). HOME names no directory (git skips
 * the files it cannot find; GIT_CONFIG_GLOBAL is git 2.32+, and bullseye has 2.30); the wrapper has already unset
 * GIT_* (GIT_TEMPLATE_DIR too) and XDG_CONFIG_HOME (core/remote/wrap.ts). No hook runs, not even one a mirror made
 * by an older version got from such a template: hooks are never ours.
 */
export function hostGit(): string {
  return 'env HOME=/nonexistent GIT_CONFIG_NOSYSTEM=1 GIT_ATTR_NOSYSTEM=1 git -c core.hooksPath=/dev/null';
}
