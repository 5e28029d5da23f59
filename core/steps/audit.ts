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

/** One audit log line. */
export function auditLine(entry: AuditEntry): string {
  return JSON.stringify(entry).replace(/\n/g, ' ');
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
