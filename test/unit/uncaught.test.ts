// An error nobody caught (core/errors.ts onUncaught, as the CLI and the actions install it): a real node process. Outside
// a run it is printed as one message and the process exits 1; while a run holds locks (core/signals.ts handleFaults:
// core/ops/locked.ts withLock) the run takes it and ends the process itself once its locks are released
// (test/unit/interrupt-records.test.ts: what the run then does and records).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const CORE = join(import.meta.dirname, '..', '..', 'core');

/** A command whose event handler throws (`how`), `inRun` inside a run's fault handling, which exits 7 a turn later. */
function command(inRun: boolean, how: 'throw' | 'reject', message = 'socket.write is not a function'): { code: number | null; stderr: string } {
  const script = `const { onUncaught } = await import(${JSON.stringify(join(CORE, 'errors.ts'))});
const { handleFaults } = await import(${JSON.stringify(join(CORE, 'signals.ts'))});
onUncaught((m) => process.stderr.write('error: ' + m + '\\n'));
if (${inRun}) handleFaults(({ error }) => { process.stderr.write('run: releasing its locks after ' + error.message + '\\n'); setTimeout(() => process.exit(7), 50); });
setTimeout(() => { ${how === 'throw' ? `throw new TypeError(${JSON.stringify(message)})` : `void Promise.reject(new TypeError(${JSON.stringify(message)}))`}; }, 10);
setTimeout(() => process.stderr.write('still running\\n'), 5000);`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stderr: r.stderr };
}

describe('an error nobody caught', () => {
  it('outside a run: one message saying it is a bug, no stack trace, exit 1 at once', () => {
    for (const how of ['throw', 'reject'] as const) {
      const r = command(false, how);
      expect(r.code, how).toBe(1);
      expect(r.stderr, how).toMatch(/^error: internal error: socket\.write is not a function\n {2}hint: this is a bug in ops-pipeline/);
      expect(r.stderr, how).not.toMatch(/ at |still running/);
    }
  }, 60_000);

  it('inside a run: printed, then the run takes it (releases its locks) and ends the process itself, not an exit 1 that leaves the locks held', () => {
    for (const how of ['throw', 'reject'] as const) {
      const r = command(true, how);
      expect(r.stderr, how).toMatch(/^error: internal error: socket\.write is not a function\n.*\nrun: releasing its locks after socket\.write is not a function\n$/s);
      expect(r.code, how).toBe(7);
    }
  }, 60_000);

  it("a message quoting a host's escape sequence: shown as text, not sent raw to the terminal", () => {
    const r = command(false, 'throw', 'read \x1b]0;pwned\x07 from the host');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('read \\x1b]0;pwned\\x07 from the host');
    expect(r.stderr).not.toContain('\x1b');
  }, 60_000);
});

describe('an error nobody caught during a CLI run', () => {
  it("is masked as every other error: Node's JSON.parse error quoting a decrypted value prints no part of it", () => {
    const secret = "p@ss:w/rd%'Zq7 x";
    const script = `const { onUncaught } = await import(${JSON.stringify(join(CORE, 'errors.ts'))});
const { runCli } = await import(${JSON.stringify(join(CORE, '..', 'scripts', 'cli.ts'))});
onUncaught((m) => process.stderr.write('error: ' + m + '\\n')); // as scripts/ops.ts installs it, before any reporter
const leak = { name: 'leak', summary: 'decrypts a value, then a callback parses it', project: 'optional', async run(ctx) {
  ctx.reporter.mask(${JSON.stringify(secret)}); // as a deploy's decrypt registers every value
  setTimeout(() => JSON.parse(${JSON.stringify(secret)}), 10);
  await new Promise((r) => setTimeout(r, 5000));
  return 0;
} };
await runCli([leak], { argv: ['leak'] });`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^error: internal error: Unexpected token 'p', "\*\*\*" is not valid JSON\n/);
    expect(r.stderr).not.toMatch(/p@ss|w\/rd|Zq7/);
  }, 60_000);
});
