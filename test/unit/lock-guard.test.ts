// The fence of a run's steps by its lock (core/steps/lock.ts fenceStep, run_lock_guard in core/steps/sh/host-lock.sh),
// run by bash on this machine the way a host runs a step (commandLine + scriptText, OPS_CONNECTION in its environment),
// on a layout in a temporary directory: a step begins only while the app's lock records its connection and no forced
// release; else it changes nothing, exits LOCK_LOST_EXIT and says why and what `current` names (lockLostLine). A
// switch's critical section looks again right before it changes anything (critical_begin), in a mount namespace of its
// own (/run is the test's tmpfs, so the host-wide switch lock is the test's alone).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { commandLine, scriptText } from '../../core/remote/wrap.ts';
import { CRITICAL_FUNCTIONS, HOST_LOCK_FUNCTIONS, LOCK_LOST_EXIT, LOCK_LOST_MARK } from '../../core/steps/libraries.ts';
import { acquireLock, fenceStep, lockLostLine } from '../../core/steps/lock.ts';
import { quote } from '../../core/shell.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import type { Step } from '../../core/remote/types.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const CONNECTION = 'a1b2c3d4e5f6';

function target(base: string): Target {
  const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'true', port: 3000 } }, routes: { '/': 'web' } }, 'test');
  return resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }], appUser: 'shop', baseDir: base, url: 'http://192.0.2.1' });
}

/** A layout whose `current` names release r1 and whose lock's info holds `info` (no lock when undefined). */
function layout(info: string[] | undefined): { env: Target; base: string } {
  const base = mkdtempSync(join(tmpdir(), 'ops-guard-'));
  const env = target(base);
  mkdirSync(join(env.layout.releases, 'r1'), { recursive: true });
  mkdirSync(env.layout.state, { recursive: true });
  symlinkSync(join(env.layout.releases, 'r1'), env.layout.current);
  if (info) {
    mkdirSync(env.layout.lock);
    writeFileSync(join(env.layout.lock, 'info'), `${info.join('\n')}\n`);
  }
  return { env, base };
}

/** The lock's info as acquireLock writes it, for connection `connection`. */
const held = (connection = CONNECTION, run = 'r-me') => ['operation=deploy', 'actor=alice', 'run=', `run_id=${run}`, `connection=${connection}`, 'since=2026-12-03T02:00:00Z', 'holder_pid=1', 'holder_start=1'];

/** `step` fenced, run by bash with OPS_CONNECTION `connection` (none when ''): its exit code, stderr, and whether its body ran. */
function runFenced(env: Target, base: string, connection = CONNECTION) {
  const marker = join(base, 'changed');
  const step: Step = { name: 'switch', as: 'login', timeout: 30, script: `touch ${quote(marker)}\necho done` };
  const fenced = fenceStep(env, step);
  const r = spawnSync('bash', ['-c', commandLine(fenced, 'root', 'app', connection || undefined)], { input: scriptText(fenced), encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stderr: r.stderr, changed: existsSync(marker) };
}

describe('a step fenced by the run\'s lock (run_lock_guard)', () => {
  it('runs while the lock records its connection', () => {
    const { env, base } = layout(held());
    const r = runFenced(env, base);
    expect(r.code, r.stderr).toBe(0);
    expect(r.changed).toBe(true);
  });

  it('a lock released by force (broken_run_id, as ops lock release --force marks it first): changes nothing, says so and what current names', () => {
    const { env, base } = layout(held().map((l) => l.replace(/^run_id=/, 'broken_run_id=')));
    const r = runFenced(env, base);
    expect(r.code).toBe(LOCK_LOST_EXIT);
    expect(r.changed).toBe(false);
    expect(lockLostLine(r.code, r.stderr)).toBe('it was released by force (ops lock release --force); this step changed nothing (current names r1)');
  });

  it('no lock any more (its forced release ended): changes nothing', () => {
    const { env, base } = layout(undefined);
    const r = runFenced(env, base);
    expect(r.code).toBe(LOCK_LOST_EXIT);
    expect(r.changed).toBe(false);
    expect(lockLostLine(r.code, r.stderr)).toMatch(/^it was removed \(ops lock release, or by hand\); .*\(current names r1\)$/);
  });

  it('another run\'s lock now (taken after a forced release): changes nothing, naming that run', () => {
    const { env, base } = layout(held('ffffffffffff', 'r-other').map((l) => l.replace('actor=alice', 'actor=bob')));
    rmSync(env.layout.current);
    const r = runFenced(env, base);
    expect(r.code).toBe(LOCK_LOST_EXIT);
    expect(r.changed).toBe(false);
    expect(lockLostLine(r.code, r.stderr)).toBe('another run holds it now (operation=deploy actor=bob since=2026-12-03T02:00:00Z); this step changed nothing (current names nothing)');
  });

  it('a step without a connection id (OPS_CONNECTION unset) is not taken for the lock\'s', () => {
    const { env, base } = layout(held(''));
    const r = runFenced(env, base, '');
    expect(r.code).toBe(LOCK_LOST_EXIT);
    expect(r.changed).toBe(false);
  });

  it('lockLostLine: only the guard\'s exit code with its line (a command of the step that exits 75 is not one)', () => {
    expect(lockLostLine(LOCK_LOST_EXIT, 'make: *** [build] Error 75')).toBeUndefined();
    expect(lockLostLine(1, `${LOCK_LOST_MARK}it was removed`)).toBeUndefined();
    expect(lockLostLine(LOCK_LOST_EXIT, `x\n  ${LOCK_LOST_MARK}it was removed`)).toBe('it was removed');
    // The shell says the same exit code and line the runner looks for.
    expect(HOST_LOCK_FUNCTIONS).toContain(`exit ${LOCK_LOST_EXIT}\n`);
    expect(HOST_LOCK_FUNCTIONS).toContain(`echo "${LOCK_LOST_MARK}`);
  });

  it('the lock step sets the run\'s lock for the guard once taken: a switch in the same step (a one-host rollback) is fenced too', () => {
    const { env } = layout(undefined);
    const s = acquireLock(env, { operation: 'rollback', actor: 'a', runUrl: '', runId: 'r', wait: 0 }, '', 'critical_begin 5').script;
    expect(s).toContain(`OPS_RUN_LOCK=${quote(env.layout.lock)} OPS_RUN_CURRENT=${quote(env.layout.current)}`);
    expect(s.indexOf('OPS_RUN_LOCK=')).toBeLessThan(s.indexOf('critical_begin 5'));
    expect(s.indexOf('ops_report lock acquired')).toBeLessThan(s.indexOf('OPS_RUN_LOCK='));
  });
});

describe('a switch\'s critical section in a fenced step', () => {
  /**
   * A fenced step whose lock is released by force after the step began (broken_run_id written, as ops lock release
   * --force does before it waits out a switch), then begins a critical section and changes a file in it.
   */
  function section(breakFirst: boolean) {
    const { env, base } = layout(held());
    const marker = join(base, 'flipped');
    const step = fenceStep(env, {
      name: 'switch',
      as: 'root',
      timeout: 60,
      script: `${HOST_LOCK_FUNCTIONS}\n${CRITICAL_FUNCTIONS}\n${breakFirst ? `sed -i 's/^run_id=/broken_run_id=/' ${quote(join(env.layout.lock, 'info'))}\n` : ''}trap critical_end EXIT\ncritical_begin 5\ntouch ${quote(marker)}\ncritical_end\necho flipped`,
    });
    const setup = `mount --make-rprivate / && mount -t tmpfs tmpfs /run && mkdir -p /run/lock\nexec ${commandLine(step, 'root', 'app', CONNECTION)}`;
    const r = spawnSync('unshare', ['-m', 'bash', '-c', setup], { input: scriptText(step), encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, stderr: r.stderr, flipped: existsSync(marker) };
  }

  it('looks at the lock again right before it changes anything: released by force since the step began, nothing is flipped', () => {
    const r = section(true);
    expect(r.code, r.stderr).toBe(LOCK_LOST_EXIT);
    expect(r.flipped).toBe(false);
    expect(lockLostLine(r.code, r.stderr)).toMatch(/^it was released by force/);
  });

  it('the lock still the run\'s: the section runs', () => {
    const r = section(false);
    expect(r.code, r.stderr).toBe(0);
    expect(r.flipped).toBe(true);
  });
});
