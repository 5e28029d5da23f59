// The append-only audit log on each host: one JSON line per run (who, what, which sha, result).
import type { Target } from '../target.ts';
import { REPORT_PREFIX, reportKeys, type Step } from '../remote/types.ts';
import { quote } from '../shell.ts';
import { reportProvisioned } from './system.ts';

/** What `readAudit` reports: `entry`, one audit line (JSON, `parseAuditLine`) each, oldest first; and PROVISIONED_KEYS. */
export const AUDIT_KEYS = reportKeys('entry');

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

/** Append one entry to the environment's audit log on the host (root; the log stays 0644), on a line of its own (endTornLine). */
export function appendAudit(env: Target, entry: AuditEntry): Step {
  const L = env.layout;
  const line = auditLine(entry);
  return {
    name: 'audit',
    as: 'root',
    timeout: 30,
    quiet: true,
    script: `install -d -m 0755 ${quote(L.state)}\n${endTornLine(L.audit)}\nprintf '%s\\n' ${quote(line)} >> ${quote(L.audit)}\nchmod 0644 ${quote(L.audit)}`,
  };
}

/** The size (bytes) past which the prune after a switch rotates the audit log (rotateAudit). */
export const AUDIT_ROTATE_BYTES = 4 * 1024 * 1024;
/** The audit lines a rotation leaves in the log, the newest, besides those naming a release still kept (rotateAudit). */
export const AUDIT_KEPT_LINES = 1000;
/** How many compressed archives of the audit log are kept (rotateAudit): the newest; about 10,000 entries each. */
export const AUDIT_ARCHIVES_KEPT = 20;

/**
 * Shell bounding the environment's audit log on the host (root, under the lock: the prune after a switch). Past
 * AUDIT_ROTATE_BYTES, the log keeps its newest AUDIT_KEPT_LINES lines and every line naming a release still here (what
 * explains what is live and what `ops releases` quotes), in their order; the others go, in theirs, to
 * `audit.log.<UTC time>.gz` beside it (a second rotation in the same second: `.2`, `.3`..., never over one), of which
 * the newest AUDIT_ARCHIVES_KEPT stay. Nothing is lost on the way: the log is renamed aside first (so an append
 * meanwhile starts a new one, merged back after), the archive is whole before the log is rewritten, and a rotation
 * that fails or was cut short is merged back into the log as it was (the next prune tries again). Needs to run in the
 * releases directory (its subdirectories are the releases kept). Prints what failed on stderr; never fails the step.
 */
export function rotateAudit(env: Target): string {
  const L = env.layout;
  const f = quote(L.audit);
  const aside = quote(`${L.audit}.rotating`);
  const merge = `{ { cat ${aside} && if [ -f ${f} ]; then cat ${f}; fi; } > ${quote(`${L.audit}.new`)} && chmod 0644 ${quote(`${L.audit}.new`)} && mv -fT ${quote(`${L.audit}.new`)} ${f} && rm -f ${aside}; }`;
  return String.raw`# A rotation cut short before (its log still aside): merged back first.
if [ -f ${aside} ]; then ${merge} || echo "could not merge ${L.audit}.rotating back into the audit log" >&2; fi
if [ ! -f ${aside} ] && [ "$(stat -c %s ${f} 2>/dev/null || echo 0)" -gt ${AUDIT_ROTATE_BYTES} ]; then
  audit_at=${quote(L.audit)}.$(date -u +%Y%m%dT%H%M%SZ); audit_archive=$audit_at.gz; n=1
  while [ -e "$audit_archive" ]; do n=$(( n + 1 )); audit_archive=$audit_at.$n.gz; done
  if mv -fT ${f} ${aside} &&
    awk -v keep=${AUDIT_KEPT_LINES} -v total="$(wc -l < ${aside})" -v ids="$(for r in */; do printf '%s\n' "${'$'}{r%/}"; done)" -v kept=${quote(`${L.audit}.kept`)} -v old=${quote(`${L.audit}.old`)} '
      BEGIN { k = split(ids, l, "\n"); for (i = 1; i <= k; i++) if (l[i] != "") named["\"release\":\"" l[i] "\""] = 1; printf "" > kept; printf "" > old }
      { keepit = FNR > total - keep; if (!keepit) for (w in named) if (index($0, w)) { keepit = 1; break }
        print > (keepit ? kept : old) }' ${aside} &&
    gzip -n < ${quote(`${L.audit}.old`)} > "$audit_archive.new" && chmod 0644 "$audit_archive.new" && mv -fT "$audit_archive.new" "$audit_archive" &&
    { cat ${quote(`${L.audit}.kept`)} && if [ -f ${f} ]; then cat ${f}; fi; } > ${quote(`${L.audit}.new`)} && chmod 0644 ${quote(`${L.audit}.new`)} && mv -fT ${quote(`${L.audit}.new`)} ${f}; then
    rm -f ${aside}
    # The newest AUDIT_ARCHIVES_KEPT archives stay (their UTC times sort as the glob lists them).
    audit_archives=(${quote(L.audit)}.[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z*.gz)
    [ "${'$'}{#audit_archives[@]}" -le ${AUDIT_ARCHIVES_KEPT} ] || rm -f -- "${'$'}{audit_archives[@]:0:${'$'}{#audit_archives[@]}-${AUDIT_ARCHIVES_KEPT}}"
  else
    rm -f "$audit_archive.new"
    [ ! -f ${aside} ] || ${merge} || echo "could not merge ${L.audit}.rotating back into the audit log" >&2
    echo "could not rotate the audit log (the next prune will try again)" >&2
  fi
  rm -f ${quote(`${L.audit}.kept`)} ${quote(`${L.audit}.old`)}
fi`;
}

/** The last `lines` lines of the audit log, as `audit` reports (read only): AUDIT_KEYS.entry lines, written by sed rather than ops_report (one process for any number of lines). */
export function readAudit(env: Target, lines: number): Step {
  return {
    name: 'read audit log',
    as: 'login',
    timeout: 30,
    quiet: true,
    // Provision's marker too (sudo -n, as the login: unknown when it may not look): a host never provisioned has no log.
    script: `${reportProvisioned(env, 'login')}\nf=${quote(env.layout.audit)}\n[ -f "$f" ] || exit 0\ntail -n ${Math.max(1, Math.floor(lines))} "$f" | sed 's/^/${REPORT_PREFIX}${AUDIT_KEYS.entry} /'`,
  };
}
