// The end of a run on a host (core/steps/lock.ts unlockScript) run by bash on this machine, on a layout in a
// temporary directory: the audit lines appended (a new log readable by all whatever the umask, one there already
// keeps its mode), and the lock let go only when it is this run's (its run_id), read by bash itself.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { START_MARKER, scriptPrelude } from '../../core/remote/wrap.ts';
import { unlockScript } from '../../core/steps/lock.ts';
import { appendAudit } from '../../core/steps/audit.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { quote } from '../../core/shell.ts';

const run = promisify(execFile);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

function target(base: string): Target {
  const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'true', port: 3000 } }, routes: { '/': 'web' } }, 'test');
  return resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }], appUser: 'shop', baseDir: base, url: 'http://192.0.2.1' });
}

/** A layout with a lock held by run `holder` (none when undefined); the unlock script of run `me` run with umask 077. */
async function unlock(holder: string | undefined, me: string, lines: string[], auditMode?: number): Promise<{ out: string; base: string; env: Target }> {
  const base = mkdtempSync(join(tmpdir(), 'ops-unlock-'));
  const env = target(base);
  mkdirSync(env.layout.state, { recursive: true });
  if (holder) {
    mkdirSync(env.layout.lock);
    writeFileSync(join(env.layout.lock, 'info'), `operation=deploy\nactor=me\nrun=\nrun_id=${holder}\nsince=2026-11-30T12:00:00Z\n`);
  }
  if (auditMode !== undefined) {
    writeFileSync(env.layout.audit, 'earlier\n');
    chmodSync(env.layout.audit, auditMode);
  }
  const { stdout } = await run('bash', ['-c', `umask 077\n${scriptPrelude}\n${unlockScript(env, me, lines.map(quote))}`], { encoding: 'utf8' });
  return { out: stdout.slice(stdout.indexOf(START_MARKER) + START_MARKER.length).trim(), base, env };
}

describe('unlockScript', () => {
  it("lets go of this run's lock, after appending its audit lines to a new log made readable by all", async () => {
    const { out, env } = await unlock('0123456789abcdef', '0123456789abcdef', ['{"result":"success"}', "it's done"]);
    expect(out).toContain('@ops lock released');
    expect(existsSync(env.layout.lock)).toBe(false);
    expect(readFileSync(env.layout.audit, 'utf8')).toBe('{"result":"success"}\nit\'s done\n');
    expect(statSync(env.layout.audit).mode & 0o777).toBe(0o644);
  });

  it("leaves another run's lock (taken over after a forced release, or held by the run it queued behind), the log and its mode alone: no line for a run that does not hold the lock", async () => {
    const { out, env } = await unlock('fedcba9876543210', '0123456789abcdef', ['x'], 0o600);
    expect(out).toBe('@ops lock not_held');
    expect(readFileSync(join(env.layout.lock, 'info'), 'utf8')).toContain('run_id=fedcba9876543210');
    expect(readFileSync(env.layout.audit, 'utf8')).toBe('earlier\n');
    expect(statSync(env.layout.audit).mode & 0o777).toBe(0o600);
  });

  it('no lock at all: nothing to let go, no error', async () => {
    const { out, env } = await unlock(undefined, '0123456789abcdef', []);
    expect(out).toBe('@ops lock not_held');
    expect(existsSync(env.layout.lock)).toBe(false);
  });

  it('a torn last line in the audit log (a crash or a full disk mid-append): the run\'s lines start on a line of their own, readable', async () => {
    const base = mkdtempSync(join(tmpdir(), 'ops-unlock-'));
    const env = target(base);
    mkdirSync(env.layout.lock, { recursive: true });
    writeFileSync(join(env.layout.lock, 'info'), 'run_id=0123456789abcdef\n');
    writeFileSync(env.layout.audit, '{"time":"2026-11-30T12:00:00Z","result":"succ');
    await run('bash', ['-c', `${scriptPrelude}\n${unlockScript(env, '0123456789abcdef', [quote('{"result":"success"}')])}`]);
    expect(readFileSync(env.layout.audit, 'utf8')).toBe('{"time":"2026-11-30T12:00:00Z","result":"succ\n{"result":"success"}\n');
    // The one other append (ops lock release's line, appendAudit): the same.
    writeFileSync(env.layout.audit, '{"time":"x');
    await run('bash', ['-c', appendAudit(env, { time: 't', environment: 'test', operation: 'lock release', result: 'success', actor: 'me' }).script]);
    expect(readFileSync(env.layout.audit, 'utf8').split('\n')[1]).toMatch(/^\{"time":"t",/);
  });
});
