// The append-only audit log on each host: one JSON line per run (who, what, which sha, result).
import type { Target } from '../target.ts';
import { REPORT_PREFIX, reportKeys, type Step } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { reportProvisioned } from './system.ts';
import { STAMPED_FUNCTIONS } from './libraries.ts';

/** What `readAudit` reports: `entry`, one audit line (JSON, `parseAuditLine`) each, oldest first; and PROVISIONED_KEYS. What `appendAudit` reports: `append_failed` (why its lines were not written: a full disk). */
export const AUDIT_KEYS = reportKeys('entry', 'append_failed');

export interface AuditEntry {
  time: string;
  environment: string;
  operation: string;
  result: 'success' | 'failed' | 'no-op';
  actor: string;
  run?: string;
  ref?: string;
  sha?: string;
  release?: string;
  previous?: string;
  message?: string;
}

/**
 * One audit log line: the entry as JSON, with the characters some readers end a line at escaped (`\u0085` NEL,
 * `\u2028`, `\u2029`; Python's str.splitlines, for one, splits there, JSON.stringify leaves them raw), so that every
 * line-by-line reader finds one whole entry per line. JSON.parse gives the same entry back.
 */
export function auditLine(entry: AuditEntry): string {
  return JSON.stringify(entry).replace(/[\u0085\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * One audit line as a shell word, with some fields' values taken from shell variables on the host (e.g. the
 * live release id, known only there): `vars` maps a field to a variable name whose value must need no JSON
 * escaping (release ids, shas). Used by a step that writes its own audit line (a no-op deploy's lock step).
 */
export function auditTemplate(entry: AuditEntry, vars: Partial<Record<keyof AuditEntry, string>>): string {
  const marks = new Map<string, string>();
  const withMarks = { ...entry } as Record<string, unknown>;
  for (const [field, variable] of Object.entries(vars)) {
    if (!/^[a-z_][a-z0-9_]*$/.test(variable!)) throw new Error(`not a shell variable name: ${variable}`);
    const mark = `@@ops-${field}@@`;
    marks.set(mark, variable!);
    withMarks[field] = mark;
  }
  let word = quote(auditLine(withMarks as unknown as AuditEntry));
  for (const [mark, variable] of marks) word = word.split(mark).join(`'"\${${variable}}"'`);
  return word;
}

/**
 * One line of the audit log read back. A line that is not an entry (cut short by a full disk, edited by
 * hand) is shown as such instead of hiding the others.
 */
export function parseAuditLine(line: string): AuditEntry {
  try {
    const entry = JSON.parse(line) as AuditEntry;
    if (entry && typeof entry === 'object' && typeof entry.time === 'string') return entry;
  } catch {
    // below
  }
  return { time: '', environment: '', operation: '?', result: 'failed', actor: '?', message: `unreadable line: ${line.slice(0, 120)}` };
}

/**
 * Shell that ends a torn last line of the append-only file at `path` (shell-quoted here), a crash or a full disk
 * mid-append having left it without its newline, so that what is appended next starts a line of its own: glued onto
 * the torn one, it would be lost with it (an unreadable audit entry). Nothing for a file missing, empty or whole.
 */
export function endTornLine(path: string): string {
  return `if [ -s ${quote(path)} ] && [ -n "$(tail -c 1 ${quote(path)})" ]; then printf '\\n' >> ${quote(path)}; fi`;
}

/** The most seconds a writer or reader of the audit log waits for its lock (withAuditLock): a rotation holds it a second or two. */
export const AUDIT_LOCK_WAIT = 10;

/**
 * Shell running `body` holding the audit log's own lock: flock(1) on its directory (`.ops`; not on the log, which a
 * rotation renames), exclusive for a writer, shared for a reader (`shared`). Its writers (a run's unlock, `ops lock
 * release`, a run whose lock was released by force: rotateAudit's rotation in the unlock) then go one at a time, so an
 * append never lands in a log a rotation has already read, and a reader never reads one half rotated. Waited for
 * AUDIT_LOCK_WAIT seconds at most, then `body` runs anyway (one stuck must not cost a run its line); a directory that
 * cannot be opened (the reader not allowed, none yet) is not waited for. Needs bash (a variable file descriptor).
 */
export function withAuditLock(env: Target, body: string, shared = false): string {
  return `audit_fd=; { exec {audit_fd}<${quote(env.layout.state)}; } 2>/dev/null || audit_fd=
[ -z "$audit_fd" ] || /usr/bin/flock ${shared ? '-s ' : ''}-w ${AUDIT_LOCK_WAIT} "$audit_fd" || true
${body}
[ -z "$audit_fd" ] || exec {audit_fd}<&-`;
}

/**
 * Append entries (one, or several in order) to the environment's audit log on the host (root; the log stays 0644), on
 * lines of their own (endTornLine), holding the log's lock (withAuditLock): the one writer that runs without the run's
 * lock (`ops lock release`, a run whose lock was taken from it). An append that fails (a full disk: what it wrote of a
 * line is ended by the next append) is reported as AUDIT_KEYS.append_failed, with why, and does not fail the step, as
 * a run's unlock reports its own (the caller warns: what it did is done whether or not its line is written).
 */
export function appendAudit(env: Target, entry: AuditEntry | AuditEntry[]): Step {
  const L = env.layout;
  const line = (Array.isArray(entry) ? entry : [entry]).map((e) => quote(auditLine(e))).join(' ');
  return {
    name: 'audit',
    as: 'root',
    timeout: 30,
    quiet: true,
    script: `install -d -m 0755 ${quote(L.state)}
${withAuditLock(env, `if ! audit_err=$({ ${endTornLine(L.audit)}; printf '%s\\n' ${line} >> ${quote(L.audit)} && chmod 0644 ${quote(L.audit)}; } 2>&1); then
  ops_report ${AUDIT_KEYS.append_failed} "$(printf '%s' "$audit_err" | tr '\\n' ' ')"
fi`)}`,
  };
}

/** The size (bytes) past which a run's unlock rotates the audit log (rotateAudit). */
export const AUDIT_ROTATE_BYTES = 4 * 1024 * 1024;
/** The audit lines a rotation leaves in the log, the newest, besides those naming a release still kept (rotateAudit). */
export const AUDIT_KEPT_LINES = 1000;
/** How many compressed archives of the audit log are kept (rotateAudit): the newest; about 10,000 entries each. */
export const AUDIT_ARCHIVES_KEPT = 20;
/** The most bytes of one audit line `ops audit` reads (readAudit): a line is a few hundred; one longer (written by hand, a bug) is cut there, read as unreadable. */
export const AUDIT_LINE_BYTES = 16 * 1024;

/**
 * Shell bounding the environment's audit log on the host (root; in every run's unlock, under the run's lock, holding the
 * log's own: withAuditLock, so `ops lock release`'s append waits for it): a deploy's, a no-op's, a failed run's alike, so
 * scheduled no-ops or weeks of failures bound it too, in the round trip the unlock already is. Past AUDIT_ROTATE_BYTES,
 * the log keeps its newest AUDIT_KEPT_LINES lines and every line naming a release still here (what explains what is
 * live and what `ops releases` quotes), in their order; the others go, in theirs, to `audit.log.<UTC time>.gz` beside
 * it (sh/stamped.sh: a second rotation in the same second `.2`, `.3`..., never over one; after the newest whatever the
 * clock says), of which the newest AUDIT_ARCHIVES_KEPT stay. Nothing is lost on the way: the log is renamed aside
 * first, the archive is whole before the log is rewritten, and a rotation that fails (a full or read-only disk) or was
 * cut short is put back as it was (renamed back: no space needed; merged with a log begun since) and tried again by the
 * next run. Needs STAMPED_FUNCTIONS. Prints what failed on stderr; never fails the step.
 */
export function rotateAudit(env: Target): string {
  const L = env.layout;
  const f = quote(L.audit);
  const aside = quote(`${L.audit}.rotating`);
  const fresh = quote(`${L.audit}.new`);
  // Put the log aside back: renamed when no log was begun since (no space needed: a full disk), else merged before it.
  const back = `{ if [ ! -e ${f} ]; then mv -fT ${aside} ${f}; else { cat ${aside} ${f} > ${fresh} && chmod 0644 ${fresh} && mv -fT ${fresh} ${f} && rm -f ${aside}; } || { rm -f ${fresh}; false; }; fi; }`;
  return String.raw`# A rotation cut short before (its log still aside): put back first.
if [ -f ${aside} ]; then ${back} || echo "could not merge ${L.audit}.rotating back into the audit log (the next run will try again)" >&2; fi
if [ ! -f ${aside} ] && [ "$(stat -c %s ${f} 2>/dev/null || echo 0)" -gt ${AUDIT_ROTATE_BYTES} ]; then
  stamped_next ${f} .gz; audit_archive=$stamped_name
  if mv -fT ${f} ${aside} &&
    awk -v keep=${AUDIT_KEPT_LINES} -v total="$(wc -l < ${aside})" -v ids="$(printf '%s\n' ${quote(L.releases)}/*/)" -v kept=${quote(`${L.audit}.kept`)} -v old=${quote(`${L.audit}.old`)} '
      BEGIN { k = split(ids, l, "\n"); for (i = 1; i <= k; i++) { sub(/\/$/, "", l[i]); sub(/.*\//, "", l[i]); if (l[i] != "") named["\"release\":\"" l[i] "\""] = 1 }; printf "" > kept; printf "" > old }
      { keepit = FNR > total - keep; if (!keepit) for (w in named) if (index($0, w)) { keepit = 1; break }
        print > (keepit ? kept : old) }' ${aside} &&
    gzip -n < ${quote(`${L.audit}.old`)} > "$audit_archive.new" && chmod 0644 "$audit_archive.new" && mv -fT "$audit_archive.new" "$audit_archive" &&
    { cat ${quote(`${L.audit}.kept`)} && if [ -f ${f} ]; then cat ${f}; fi; } > ${fresh} && chmod 0644 ${fresh} && mv -fT ${fresh} ${f}; then
    rm -f ${aside}
    stamped_keep ${f} .gz ${AUDIT_ARCHIVES_KEPT}
  else
    rm -f "$audit_archive.new" ${fresh}
    [ ! -f ${aside} ] || ${back} || echo "could not merge ${L.audit}.rotating back into the audit log" >&2
    echo "could not rotate the audit log (the next run will try again)" >&2
  fi
  rm -f ${quote(`${L.audit}.kept`)} ${quote(`${L.audit}.old`)}
fi`;
}

/** Shell printing the audit log's own lines (`$f`, the log), whole: a rotation cut short's log aside first (rotateAudit), then the log, each ended by a newline (a torn last line too). */
const AUDIT_LIVE_LINES = String.raw`for a in "$f.rotating" "$f"; do [ ! -f "$a" ] || { cat -- "$a"; [ -z "$(tail -c 1 -- "$a")" ] || echo; }; done`;

/**
 * Shell (one command, a subshell: pipe it, or `$(...)` it) printing the last `lines` lines of the environment's audit
 * log, oldest first, as one consistent read: holding the log's lock shared (withAuditLock), so a rotation or an append
 * under way is waited for, never read half done (a log renamed aside read as missing, a line read torn), and with a
 * rotation cut short's log aside read before the log begun since, as readAudit does. The one way every reader other than
 * `ops audit` reads it (`ops status`'s last run, `ops releases`' reasons for an interrupted deploy). Prints nothing when
 * there is no log.
 */
export function auditTail(env: Target, lines: number): string {
  return `(f=${quote(env.layout.audit)}
${withAuditLock(env, `{ ${AUDIT_LIVE_LINES}; } | tail -n ${Math.max(1, Math.floor(lines))}`, true)})`;
}

/**
 * The last `lines` lines of the audit log, as `audit` reports (read only, holding the log's lock shared: withAuditLock):
 * AUDIT_KEYS.entry lines, oldest first, each cut at AUDIT_LINE_BYTES; written by sed rather than ops_report (one
 * process for any number of lines). Past the live log's own lines they come from its archives (rotateAudit), newest
 * archive last, and from a rotation cut short's log aside: the lines a rotation kept for a release still here stay in
 * the log, so they come after the archives' lines, where the log has them.
 */
export function readAudit(env: Target, lines: number): Step {
  const L = env.layout;
  const n = Math.max(1, Math.floor(lines));
  const read = String.raw`stamped_list "$f" .gz
audit_have=0; [ ! -f "$f" ] || audit_have=$(wc -l < "$f")
[ ! -f "$f.rotating" ] || audit_have=$(( audit_have + $(wc -l < "$f.rotating") ))
audit_from=${'$'}{#stamped_files[@]}
while [ "$audit_have" -lt ${n} ] && [ "$audit_from" -gt 0 ]; do
  audit_from=$(( audit_from - 1 )); audit_have=$(( audit_have + $(zcat -- "${'$'}{stamped_files[audit_from]}" 2>/dev/null | wc -l || true) ))
done
{ for a in "${'$'}{stamped_files[@]:audit_from}"; do zcat -- "$a" 2>/dev/null || true; done
  ${AUDIT_LIVE_LINES}
} | tail -n ${n} | cut -b 1-${AUDIT_LINE_BYTES} | sed 's/^/${REPORT_PREFIX}${AUDIT_KEYS.entry} /'`;
  return {
    name: 'read audit log',
    as: 'login',
    timeout: 30,
    quiet: true,
    // Provision's marker too (sudo -n, as the login: unknown when it may not look): a host never provisioned has no log.
    script: `${reportProvisioned(env, 'login')}\n${STAMPED_FUNCTIONS}\nf=${quote(L.audit)}\n[ -f "$f" ] || [ -f "$f.rotating" ] || [ -n "$(compgen -G "$f.*.gz")" ] || exit 0\n${withAuditLock(env, read, true)}`,
  };
}
