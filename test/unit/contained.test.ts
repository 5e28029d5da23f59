// An app command (appCommand: build, migrate, hooks, initdata) run by real bash as a step script, on real processes of
// this machine's user: the step ends when the command exits, with its status and output, and what the command left
// running (a background process holding the step's output, a daemon with its output redirected) is stopped; the
// user's other processes are left alone. Stopped by its timeout, the step stops the command's processes too. The
// dependency sets' installers (nodeDependencies: npm ci running a dependency's postinstall; pythonDependencies: pip
// or uv building an sdist) run the same way.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { scriptText } from '../../core/remote/wrap.ts';
import { appCommand, nodeDependencies, pythonDependencies } from '../../core/steps/app.ts';
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
  for (const s of [9301, 9302, 9303, 9304, 9305, 9306, 9307, 9308, 9309, 9310]) spawnSync('pkill', ['-KILL', '-f', `^sleep ${s}$`]);
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

describe('the dependency sets: what an install script leaves running', () => {
  /** Runs `step` as a host would (bash -s reading the script), HOME the scratch root's (npm's and uv's caches). */
  const runStep = (step: ReturnType<typeof nodeDependencies>) =>
    spawnSync('timeout', ['-k', '10', '120', 'bash', '-s'], { input: scriptText(step), encoding: 'utf8', timeout: 150_000, env: { ...process.env, HOME: root } });

  it("npm ci running a vendored dependency's postinstall that starts a daemon (real npm, offline): the set is made, the daemon stopped, the step says so", () => {
    const which = (c: string) => execFileSync('bash', ['-c', `command -v ${c}`], { encoding: 'utf8' }).trim();
    const npm = which('npm');
    const dep = join(root, 'dep');
    mkdirSync(dep, { recursive: true });
    writeFileSync(join(dep, 'package.json'), JSON.stringify({ name: 'devserver', version: '1.0.0', scripts: { postinstall: 'nohup sleep 9308 >/dev/null 2>&1 </dev/null & echo started' } }));
    const client = join(root, 'releases', 'n1', 'client');
    mkdirSync(join(client, 'vendor'), { recursive: true });
    execFileSync(npm, ['pack', '--pack-destination', join(client, 'vendor'), '--loglevel=error'], { cwd: dep, stdio: 'ignore' });
    writeFileSync(join(client, 'package.json'), JSON.stringify({ name: 'web', version: '1.0.0', private: true, dependencies: { devserver: 'file:vendor/devserver-1.0.0.tgz' } }));
    // The lockfile, as a team commits it (real npm, offline: the tarball is in the repository).
    execFileSync(npm, ['install', '--package-lock-only', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: client, stdio: 'ignore', env: { ...process.env, HOME: root } });
    const r = runStep(nodeDependencies({ ...env, runtime: { ...env.runtime, npm, node: which('node') } }, join(root, 'releases', 'n1'), 'n1'));
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(join(env.layout.deps, 'node-n1', 'node_modules', 'devserver', 'package.json'))).toBe(true);
    expect(r.stdout).toMatch(/stopped what the command left running after it exited: pid \d+ \(sleep\)/);
    expect(running(9308), "the postinstall's daemon").toBe('');
  });

  it('pip and uv building an sdist whose setup.py starts a daemon: the set is made, the daemon stopped', () => {
    const release = join(root, 'releases', 'p1');
    mkdirSync(release, { recursive: true });
    writeFileSync(join(release, 'requirements.txt'), 'legacy-sdist==1.0\n');
    // Installers standing in for a build that runs setup.py: it starts a daemon with its output redirected.
    const fake = (name: string, body: string) => {
      const f = join(root, name);
      writeFileSync(f, `#!/bin/bash\n${body}\n`);
      chmodSync(f, 0o755);
      return f;
    };
    const uv = fake('uv', 'if [ "$1" = venv ]; then mkdir -p "${@: -1}/bin"; exit 0; fi\nnohup sleep 9309 >/dev/null 2>&1 </dev/null &');
    const python = fake('python', 'mkdir -p "${@: -1}/bin"\nprintf \'#!/bin/bash\\nnohup sleep 9310 >/dev/null 2>&1 </dev/null &\\n\' > "${@: -1}/bin/pip"; chmod +x "${@: -1}/bin/pip"');
    const runtime = { ...env.runtime, uv, python };
    const withUv = runStep(pythonDependencies({ ...env, runtime }, release, 'pu'));
    expect(withUv.status, withUv.stderr).toBe(0);
    expect(withUv.stdout).toMatch(/stopped what the command left running after it exited: pid \d+ \(sleep\)/);
    expect(running(9309), "uv's build's daemon").toBe('');
    const pipEnv = { ...env, runtime, config: { ...env.config, release: { ...env.config.release, python_installer: 'pip' as const } } };
    const withPip = runStep(pythonDependencies(pipEnv, release, 'pp'));
    expect(withPip.status, withPip.stderr).toBe(0);
    expect(existsSync(join(env.layout.deps, 'venv-pp', '.complete'))).toBe(true);
    expect(running(9310), "pip's build's daemon").toBe('');
  });
});
