// ops's own output failing (core/report.ts guardOutput, as the CLI entry point installs it with onUncaught): a real
// node process writing through a ConsoleReporter to a pipe whose reader stops (`| head -2`: EPIPE) or to /dev/full
// (ENOSPC). Within a run (its signal handler installed: from its lock on) the run goes on to its end and exits with its
// own code; outside one, a reader gone ends the command quietly (141, as SIGPIPE ends other tools). Never blamed on a
// host ("the connection was closed by the other end", "no space left on this machine").
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeLowLevel, markOwnOutput } from '../../core/errors.ts';

const CORE = join(import.meta.dirname, '..', '..', 'core');

/** A command writing 400 lines (one per ms) as ops does, `inRun` inside a run's signal handling; `redirect`: its stdout's. */
function command(inRun: boolean, redirect: string): { code: number; stderr: string; finished: boolean } {
  const marker = join(mkdtempSync(join(tmpdir(), 'ops-output-')), 'finished');
  const script = `const { onUncaught } = await import(${JSON.stringify(join(CORE, 'errors.ts'))});
const { ConsoleReporter, guardOutput } = await import(${JSON.stringify(join(CORE, 'report.ts'))});
const { handleSignals, stopHandlingSignals } = await import(${JSON.stringify(join(CORE, 'signals.ts'))});
const { writeFileSync } = await import('node:fs');
onUncaught((m) => process.stderr.write('error: ' + m + '\\n'));
guardOutput();
const reporter = new ConsoleReporter();
const run = () => undefined;
if (${inRun}) handleSignals(run);
for (let i = 0; i < 400; i++) { reporter.info('line ' + i); await new Promise((r) => setTimeout(r, 1)); }
writeFileSync(${JSON.stringify(marker)}, 'the run ended');
stopHandlingSignals(run);
reporter.info('done');`;
  const r = spawnSync('bash', ['-c', `"$NODE" --import tsx --input-type=module -e "$SCRIPT" ${redirect}; echo "rc=\${PIPESTATUS[0]}" >&2`], { env: { ...process.env, NODE: process.execPath, SCRIPT: script }, encoding: 'utf8', timeout: 60_000 });
  const code = Number(/rc=(\d+)\n$/.exec(r.stderr)?.[1]);
  return { code, stderr: r.stderr.replace(/rc=\d+\n$/, ''), finished: existsSync(marker) };
}

/** An action (core/action.ts runAction) logging 400 lines (one per ms), its stdout (the job log) to `redirect`. */
function action(redirect: string): { code: number; stderr: string; finished: boolean } {
  const marker = join(mkdtempSync(join(tmpdir(), 'ops-output-')), 'finished');
  const script = `const { runAction } = await import(${JSON.stringify(join(CORE, 'action.ts'))});
const { writeFileSync } = await import('node:fs');
await runAction({}, async ({ reporter }) => {
  for (let i = 0; i < 400; i++) { reporter.info('line ' + i); await new Promise((r) => setTimeout(r, 1)); }
  writeFileSync(${JSON.stringify(marker)}, 'the run ended');
});`;
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GITHUB_') && !k.startsWith('INPUT_')));
  const r = spawnSync('bash', ['-c', `"$NODE" --import tsx --input-type=module -e "$SCRIPT" ${redirect}; echo "rc=\${PIPESTATUS[0]}" >&2`], { env: { ...env, NODE: process.execPath, SCRIPT: script }, encoding: 'utf8', timeout: 60_000 });
  const code = Number(/rc=(\d+)\n$/.exec(r.stderr)?.[1]);
  return { code, stderr: r.stderr.replace(/rc=\d+\n$/, ''), finished: existsSync(marker) };
}

describe('ops\'s own output failing', () => {
  it('in an action (runAction) as in the CLI: a full job log is said as ops\'s own output, never a host\'s or a bug', () => {
    const r = action('> /dev/full');
    expect(r).toMatchObject({ code: 1, finished: false });
    expect(r.stderr).toBe('error: ops could not write its own output (stdout: ENOSPC)\n');
  }, 60_000);

  it('a reader gone (| head -2) within a run: the run goes on to its end, quietly, with its own exit code', () => {
    expect(command(true, '| head -2 >/dev/null')).toEqual({ code: 0, stderr: '', finished: true });
  }, 60_000);

  it('a reader gone outside a run: the command ends quietly at once, as SIGPIPE ends other tools (141)', () => {
    expect(command(false, '| head -2 >/dev/null')).toEqual({ code: 141, stderr: '', finished: false });
  }, 60_000);

  it('a full disk where stdout goes (> /dev/full): within a run, said once on stderr as ops\'s own, and the run ends; outside one, said and exit 1', () => {
    const inRun = command(true, '> /dev/full');
    expect(inRun).toMatchObject({ code: 0, finished: true });
    expect(inRun.stderr).toBe('warning: ops could not write its own output (stdout: ENOSPC): dropped from here on; the run goes on to its end\n');
    const outside = command(false, '> /dev/full');
    expect(outside).toMatchObject({ code: 1, finished: false });
    expect(outside.stderr).toBe('error: ops could not write its own output (stdout: ENOSPC)\n');
  }, 60_000);

  it('is never blamed on a host or on this machine\'s disk for the hosts\' sake', () => {
    const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE', syscall: 'write' });
    expect(describeLowLevel(epipe)?.what).toBe('the connection was closed by the other end');
    markOwnOutput(epipe, 'stdout');
    expect(describeLowLevel(epipe)).toEqual({ what: 'ops could not write its own output (stdout: EPIPE)', hint: expect.stringContaining('stopped reading') });
  });
});
