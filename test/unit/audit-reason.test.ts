// auditReason: why a run failed, as its audit line and its release's mark say it: one line, bounded, the failed step's
// own verdict, and no secret (masked whole before anything is cut).
import { describe, expect, it } from 'vitest';
import { AUDIT_REASON_MAX, auditReason, DiskFullError, OpsError, StepError } from '../../core/errors.ts';
import { failureVerdict, FAILURE_KEYS, REPORT_PREFIX } from '../../core/remote/types.ts';
import { MemoryReporter } from '../../core/report.ts';

const SECRET = 'hunter2-very-secret-value';
/** The reporter's redact, with SECRET registered (as a deploy registers its secret values). */
function redact(): (text: string) => string {
  const reporter = new MemoryReporter();
  reporter.mask(SECRET);
  return (t) => reporter.redact(t);
}

describe('auditReason', () => {
  it("a failed step: its first line, then the step's own verdict (its reported failure), not the output's last line", () => {
    const verdict = 'release r1 did not become healthy on slot green: web:5101:/api/health answered 502 (Bad Gateway)';
    const stdout = `${REPORT_PREFIX}${FAILURE_KEYS.failure} ${verdict}\n`;
    const err = new StepError('start green', 'web1', 3, `--- /tmp/app.log\nstarting\n${verdict}; the live release keeps serving\nthe previous release r0 is back on slot green`, undefined, undefined, undefined, failureVerdict(stdout, (t) => t));
    expect(auditReason(err)).toBe(`step "start green" on web1 failed with exit code 3: ${verdict}`);
  });

  it("a failed step without a verdict: the last line of its output that says what went wrong (a migration's error, not a stack frame)", () => {
    const err = new StepError('migrate', 'web1', 1, 'Traceback (most recent call last):\n  File "x.py", line 3\nsqlalchemy.exc.ProgrammingError: relation "users" does not exist\n    at nothing\nNode.js v20.1.0');
    expect(auditReason(err)).toBe('step "migrate" on web1 failed with exit code 1: sqlalchemy.exc.ProgrammingError: relation "users" does not exist');
    expect(auditReason(new StepError('build', 'web1', 2, 'compiling\nlinking'))).toBe('step "build" on web1 failed with exit code 2: linking');
    expect(auditReason(new StepError('build', 'web1', 2, ''))).toBe('step "build" on web1 failed with exit code 2');
  });

  it('a full disk: the summary of what is left', () => {
    const err = new DiskFullError(new StepError('build', 'web1', 1, 'npm ERR! nospc'), 'web1 ran out of disk space: 0 MB free under /srv', 'free space');
    expect(auditReason(err)).toBe('step "build" on web1 failed with exit code 1: web1 ran out of disk space: 0 MB free under /srv');
  });

  it('another error: its whole message on one line; anything not an Error as text', () => {
    expect(auditReason(new OpsError('not enough space on web1\nweb1 still serves r0', 'free space'))).toBe('not enough space on web1; web1 still serves r0');
    // A config error's heading alone says nothing of the problem.
    expect(auditReason(new OpsError('environment.yml has 1 problem:\n  - programs.api.command: must be a non-empty string'))).toBe('environment.yml has 1 problem: programs.api.command: must be a non-empty string');
    expect(auditReason('plain words')).toBe('plain words');
    expect(auditReason(new Error(''))).toBe('Error');
    expect(auditReason(undefined)).toBe('undefined');
  });

  it('masks the run\'s secret values and what looks like a secret before cutting: no part of a secret survives the cut', () => {
    // The secret straddles the cut: cut first, then masked, its start would be left.
    const lead = 'x'.repeat(AUDIT_REASON_MAX - 10);
    const reason = auditReason(new OpsError(`${lead} ${SECRET} tail`), redact());
    expect(reason).not.toContain(SECRET.slice(0, 8));
    expect(reason.length).toBeLessThanOrEqual(AUDIT_REASON_MAX);
    const url = auditReason(new StepError('migrate', 'web1', 1, `could not connect: postgresql://app:${'p'.repeat(30)}@db/app failed`), redact());
    expect(url).toContain('postgresql://app:***@db/app');
    expect(url).not.toContain('ppp');
    const verdict = auditReason(new StepError('start blue', 'web1', 3, '', undefined, undefined, undefined, `answered 500: {"password": "${SECRET}"} and ${SECRET}`), redact());
    expect(verdict).not.toContain(SECRET);
    expect(verdict).not.toContain('hunter2');
  });

  it('one line, no control characters, bounded with an ellipsis', () => {
    const reason = auditReason(new StepError('build', 'web1', 1, `error: bad\u0007 \u001b[31mred\u001b[0m\r\tend\u2028more`));
    expect(reason).toBe('step "build" on web1 failed with exit code 1: error: bad [31mred [0m end more');
    // eslint-disable-next-line no-control-regex
    expect(reason).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
    const long = auditReason(new OpsError('y'.repeat(2000)));
    expect(long).toHaveLength(AUDIT_REASON_MAX);
    expect(long.endsWith('…')).toBe(true);
    expect(auditReason(new OpsError('z'.repeat(200)), undefined, 120)).toHaveLength(120);
  });
});
