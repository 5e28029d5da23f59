// stdout closed by the caller (`ops status qa >&-`): Node puts /dev/null there, so ops would print into nothing and
// exit 0; refused before anything is tried, said on stderr, exit 1, as `cat FILE >&-` fails ("write error: Bad file
// descriptor"). `> /dev/null` (discarding on purpose) and stdout and stderr both closed (a daemon's) still run.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = join(import.meta.dirname, '..', '..', 'scripts', 'ops-bin.js');

/** `ops <args>` run by bash with `redirect` (its stdout, stderr captured unless redirected), from an empty directory. */
function ops(args: string, redirect: string): { code: number; stderr: string } {
  const cwd = mkdtempSync(join(tmpdir(), 'ops-closed-'));
  const r = spawnSync('bash', ['-c', `"$NODE" "$BIN" ${args} ${redirect}; echo "rc=$?" >&3`], { cwd, env: { ...process.env, NODE: process.execPath, BIN, NO_COLOR: '1' }, encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
  const code = Number(/rc=(\d+)/.exec(String(r.output[3]))?.[1]);
  return { code, stderr: r.stderr };
}

describe('stdout closed (>&-)', () => {
  it('is refused before anything is tried: said on stderr with the fix, exit 1, for every command (--version too)', () => {
    for (const args of ['--version', '--help', 'status qa', 'keygen']) {
      const r = ops(args, '>&-');
      expect(r, args).toEqual({ code: 1, stderr: 'error: stdout is closed (`>&-`): what ops prints would be lost; nothing was done\n  hint: give it somewhere to write: > /dev/null to discard it, or > FILE to keep it\n' });
    }
  }, 120_000);

  it('> /dev/null discards on purpose: the command runs; with stderr closed too (a daemon\'s), it runs', () => {
    expect(ops('--version', '> /dev/null')).toEqual({ code: 0, stderr: '' });
    expect(ops('--version', '>&- 2>&-')).toEqual({ code: 0, stderr: '' });
    // stdin closed is no output: the command runs
    expect(ops('--version', '<&- > /dev/null')).toEqual({ code: 0, stderr: '' });
  }, 60_000);
});
