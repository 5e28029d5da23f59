// What a user's command (build, hooks) leaves running on a real host, through the CLI as a user runs it: a background
// process that holds the step's output does not hold the deploy (and its lock) until it exits, and a daemon the command
// started (a build server, output redirected) is not left running as the app user, one more per deploy. Nor is a daemon
// a dependency's install script started while npm ci made the node set.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { quote } from '../../core/shell.ts';
import type { CliResult } from '../support/cli.ts';
import { commit, initRepo } from '../support/gitrepo.ts';
import { asRoot, get, labEnvironment, lockIsFree, pythonWebApp, webConfig } from './support.ts';

/** Serves VERSION. */
const SERVER = pythonWebApp('open("VERSION").read().strip()');

let repo: string;
let config: Record<string, unknown>;
const root = mkdtempSync(join(tmpdir(), 'ops-step-leftovers-'));
const lab = labEnvironment(
  'slo',
  (host) => {
    repo = join(root, 'app');
    initRepo(repo, { 'server.py': SERVER, VERSION: '1\n' });
    return (config = webConfig(host, repo, { switch: { drain: 1, health_timeout: 20 } }));
  },
  {
    ready: async () => {
      expect((await cli('deploy', 'e2e', '--ref', 'main')).code).toBe(0);
    },
  },
);
const onHost = (command: string) => asRoot(lab.host, command);
const cli = (...argv: string[]) => lab.ops(...argv);

/** What a user reads: no stack trace, no internal error class. */
function readable(r: CliResult): string {
  const text = r.out + r.err;
  expect(text).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  expect(text).not.toMatch(/\b(TypeError|RangeError|ReferenceError)\b/);
  return text;
}

/**
 * Deploys main and checks that it serves `version`, that no process matching `leftover` (pgrep -f) runs on the host
 * once the deploy ended (`what`: whose it would be, for the failure message), that the deploy said what it stopped,
 * and that the lock is free.
 */
async function deployStopsLeftovers(version: string, leftover: string, what: string): Promise<void> {
  const r = await cli('deploy', 'e2e', '--ref', 'main');
  const text = readable(r);
  expect(r.code, text).toBe(0);
  expect((await get(lab.host)).body).toBe(version);
  expect(await onHost(`pgrep -a -f ${quote(leftover)} || true`), `${what} still runs after the deploy`).toBe('');
  expect(text).toMatch(/stopped what the command left running after it exited: pid \d+ \(sleep\)/);
  await lockIsFree(lab.project);
}

describe.sequential('what a user command leaves running', () => {
  it('a build that leaves a background process holding its output (a watcher): the deploy ends when the build command does, and the process is stopped', async () => {
    lab.project.write({ ...config, release: { ...(config.release as object), build: 'sleep 45 & echo built' } });
    commit(repo, { VERSION: '2\n' }, 'version 2');
    const started = Date.now();
    const r = await cli('deploy', 'e2e', '--ref', 'main');
    const took = Date.now() - started;
    expect(r.code, readable(r)).toBe(0);
    expect((await get(lab.host)).body).toBe('2');
    expect(took, 'the deploy waited for the background sleep 45 of the build').toBeLessThan(35_000);
    expect(await onHost('pgrep -a -f "^sleep 45$" || true'), "the build's background process still runs").toBe('');
    await lockIsFree(lab.project);
  }, 300_000);

  it('a build and a before_switch hook that start daemons (output redirected: a build server such as the Nx or Gradle daemon): nothing they started runs once the deploy ends, and the deploy says what it stopped', async () => {
    lab.project.write({
      ...config,
      release: { ...(config.release as object), build: 'nohup sleep 1001 >/dev/null 2>&1 </dev/null & echo built', before_switch: ['setsid sleep 1002 >/dev/null 2>&1 </dev/null & echo hooked'] },
    });
    commit(repo, { VERSION: '3\n' }, 'version 3');
    await deployStopsLeftovers('3', '^sleep 100[12]$', 'a daemon of the build or the hook');
  }, 300_000);

  it("a dependency whose postinstall starts a daemon (a vendored tarball, file:vendor/x.tgz): npm ci's leftover is stopped, the deploy says so", async () => {
    // The package and the app's lockfile, made by real npm here (offline: the tarball is in the repository).
    const dep = join(root, 'devserver');
    const pack = join(root, 'pack');
    mkdirSync(dep, { recursive: true });
    mkdirSync(join(pack, 'vendor'), { recursive: true });
    writeFileSync(join(dep, 'package.json'), JSON.stringify({ name: 'devserver', version: '1.0.0', scripts: { postinstall: 'nohup sleep 1003 >/dev/null 2>&1 </dev/null & echo started' } }));
    execFileSync('npm', ['pack', '--pack-destination', join(pack, 'vendor'), '--loglevel=error'], { cwd: dep, stdio: 'ignore' });
    const pkg = `${JSON.stringify({ name: 'app', version: '1.0.0', private: true, dependencies: { devserver: 'file:vendor/devserver-1.0.0.tgz' } }, null, 2)}\n`;
    writeFileSync(join(pack, 'package.json'), pkg);
    execFileSync('npm', ['install', '--package-lock-only', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: pack, stdio: 'ignore' });
    lab.project.write({ ...config, release: { ...(config.release as object), node_dir: '.' } });
    commit(repo, { 'package.json': pkg, 'package-lock.json': readFileSync(join(pack, 'package-lock.json')), 'vendor/devserver-1.0.0.tgz': readFileSync(join(pack, 'vendor', 'devserver-1.0.0.tgz')), VERSION: '4\n' }, 'version 4, with a vendored dependency');
    await deployStopsLeftovers('4', '^sleep 1003$', "the postinstall's daemon");
  }, 300_000);
});
