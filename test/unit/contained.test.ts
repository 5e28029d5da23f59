// An app command (appCommand: build, migrate, hooks, initdata) run by real bash as a step script, on real processes of
// this machine's user: the step ends when the command exits, with its status and output, and what the command left
// running (a background process holding the step's output, a daemon with its output redirected) is stopped; the
// user's other processes are left alone. Stopped by its timeout, the step stops the command's processes too.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { scriptText } from '../../core/remote/wrap.ts';
import { appCommand } from '../../core/steps/app.ts';
import { resolveTarget } from '../../core/target.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const root = mkdtempSync(join(tmpdir(), 'ops-contained-'));
const config = parseEnvironment({ app: 'shop', domain: 'shop.example.org', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { server: { command: 'x', port: 3579 }, client: { command: 'y', port: 3000 } } }, 'test');
const env = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }], appUser: 'shop', baseDir: root, url: 'https://shop.example.org' });
const started: ChildProcess[] = [];
// Each test's sleeps have durations of their own: found by their exact command line.
const running = (seconds: number) => spawnSync('pgrep', ['-f', `^sleep ${seconds}$`], { encoding: 'utf8' }).stdout.trim();

/** The build step for `command`, run as a host would run it (bash -s reading the script), within `limit` seconds (timeout). */
function build(command: string, limit = 60): { code: number | null; stdout: string; stderr: string; ms: number } {
  const t = Date.now();
  const r = spawnSync('timeout', ['-k', '10', String(limit), 'bash', '-s'], { input: scriptText(appCommand(env, root, 'build', command)), encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t };
}

afterAll(() => {
  for (const s of [9301, 9302, 9303, 9304, 9305, 9306, 9307]) spawnSync('pkill', ['-KILL', '-f', `^sleep ${s}$`]);
  for (const c of started) if (c.pid) spawnSync('kill', ['-KILL', String(c.pid)]);
  rmSync(root, { recursive: true, force: true });
});

describe('appCommand: what the command leaves running', () => {
  it('a background process that keeps the output open: the step ends when the command exits, and the process is stopped', () => {
    const r = build('sleep 9301 & echo built');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('built');
    expect(r.ms, 'the step waited for the background sleep').toBeLessThan(15_000);
    expect(r.stdout).toMatch(/stopped what the command left running after it exited: pid \d+ \(sleep\)/);
    expect(running(9301)).toBe('');
  });

  it('a daemon with its output redirected, one in a session of its own: both stopped once the command exits; the user\'s other processes are left alone', () => {
    const other = spawn('sleep', ['9304'], { detached: true, stdio: 'ignore' });
    started.push(other);
    const r = build('nohup sleep 9302 >/dev/null 2>&1 </dev/null & (setsid sleep 9303 >/dev/null 2>&1 </dev/null &); echo built');
    expect(r.code, r.stderr).toBe(0);
    expect(running(9302), 'the nohup daemon').toBe('');
    expect(running(9303), 'the daemon in a session of its own (found by its mark)').toBe('');
    expect(running(9304), 'a process of the user the command did not start').not.toBe('');
  });

  it('one that ignores SIGTERM: killed (SIGKILL) after 5 s, and the step says so', () => {
    const r = build(`bash -c "trap '' TERM; exec sleep 9307" & echo built`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/stopped what the command left running after it exited: pid \d+ \(sleep\); killed \(SIGKILL\) after 5 s: \d+\n/);
    expect(running(9307)).toBe('');
  });

  it('keeps the command\'s exit status and output, and runs it with the step\'s strictness (set -euo pipefail)', () => {
    const r = build('echo out; echo err >&2; exit 7');
    expect(r.code).toBe(7);
    expect(r.stdout).toContain('out');
    expect(r.stderr).toContain('err');
    expect(r.stdout).not.toContain('stopped what');
    const strict = build('false | cat\necho not reached');
    expect(strict.code).toBe(1);
    expect(strict.stdout).not.toContain('not reached');
  });

  it('a step stopped by its timeout stops the command and what it started', () => {
    const r = build('sleep 9305 & sleep 9306', 2);
    expect(r.code).toBe(124);
    expect(r.ms).toBeLessThan(15_000);
    expect(r.stdout).toMatch(/stopped what the command left running when the step was stopped/);
    expect(running(9305)).toBe('');
    expect(running(9306)).toBe('');
  });
});
