// Shared by the end-to-end tests: a scratch project with an environment pointing at lab hosts, the sample
// app's repository, a provisioned host snapshot built once per machine, and small probes.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadEnvironment, type Environment } from '../../core/config/environment.ts';
import type { OpsContext } from '../../core/context.ts';
import { provision } from '../../core/ops/provision.ts';
import { MemoryReporter, type Reporter } from '../../core/report.ts';
import { provisionNginx } from '../../core/steps/nginx.ts';
import { packageIndexFiles } from '../../core/packages.ts';
import { appUser, installPackages, packageIndexes, runtimes, supervisorService } from '../../core/steps/system.ts';
import { makeAppRepo } from '../fixtures/app/make-repo.ts';
import { rootfsTarball } from '../hosts/lab.ts';
import { createDatabase, downHost, listSnapshots, npmRegistryUrl, paths, pypiIndexUrl, snapshotHost, sshRun, upHost, type Host } from '../hosts/index.ts';

export const APP = 'sample';

let repo: Promise<string> | undefined;
/** The sample app's repository (tags v1, v2, deps-changed, broken-*), made once per test worker. */
export function appRepo(): Promise<string> {
  repo ??= (async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'ops-app-')), 'app');
    await makeAppRepo(dir);
    return dir;
  })();
  return repo;
}

/**
 * The environment.yml of a test environment: the sample app on `hosts`, its database given in plain env, its
 * dependencies from the lab's PyPI and npm caches (hosts reach nothing else).
 */
export function testConfig(hosts: Host[], repository: string, databaseUrl: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    app: APP,
    repository,
    ref: 'v1',
    hosts: hosts.map((h) => ({ name: h.name, address: h.address, user: h.user, host_key: h.hostKey })),
    ssh: { identity_file: hosts[0]?.identityFile ?? join(paths.state, 'id_ed25519'), connect_timeout: 10 },
    // The default health timeout (60 s): test machines are busy; the never-healthy case sets its own.
    switch: { drain: 10 },
    programs: {
      server: { command: '{release}/venv/bin/python -m server.main', port: 3579, health: '/health', env: { APP_PORT: '{port}' } },
      client: { command: '{node} ./build', directory: 'client', port: 3000, health: '/', env: { HOST: '127.0.0.1', PORT: '{port}', VITE_API_SSR_URL: 'http://127.0.0.1:{port:server}' } },
    },
    env: { APP_SERVER_MODE: 'live', APP_DATABASE_URL: databaseUrl, TOOLS_PASSWORDS: '{"admin@example.org": "test-admin-password"}' },
    packages: { pip_index_url: pypiIndexUrl, npm_registry: npmRegistryUrl },
    ...extra,
  };
}

export interface TestProject {
  root: string;
  name: string;
  env(): Environment;
  ctx(reporter?: Reporter): OpsContext & { reporter: Reporter };
  write(config: Record<string, unknown>): void;
  cleanup(): void;
}

/** A throwaway project root holding environments/<name>/environment.yml. */
export function makeProject(name: string, config: Record<string, unknown>): TestProject {
  const root = mkdtempSync(join(tmpdir(), 'ops-project-'));
  writeFileSync(join(root, 'package.json'), '{}\n');
  const dir = join(root, 'environments', name);
  mkdirSync(dir, { recursive: true });
  const project: TestProject = {
    root,
    name,
    env: () => loadEnvironment(name, root),
    ctx: (reporter = new MemoryReporter()) => ({ root, reporter, env: { PATH: process.env.PATH, HOME: process.env.HOME, USER: 'e2e' } }),
    write: (c) => writeFileSync(join(dir, 'environment.yml'), stringify(c)),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
  project.write(config);
  return project;
}

/** A database and login per test environment, on the lab's PostgreSQL. */
export async function testDatabase(name: string): Promise<string> {
  const db = await createDatabase(name, `pw-${name}-${createHash('sha256').update(name).digest('hex').slice(0, 12)}`);
  return db.url.replace(/^postgresql:/, 'postgresql+asyncpg:');
}

/**
 * A snapshot of a bookworm host provisioned for the sample app, made once per machine and reused by every
 * test that needs a ready host (provision itself is tested from a bare host in provision.test.ts).
 * Keyed by the root filesystem and the provision scripts, so a change to either builds a new one.
 */
export async function provisionedSnapshot(): Promise<string> {
  const probe = makeProject('snap', testConfig([{ name: 'x', address: '10.0.0.1', user: 'deploy', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P' } as Host], '/nonexistent', 'postgresql://x'));
  const env = probe.env();
  probe.cleanup();
  const files = packageIndexFiles(env, {});
  const scripts = [installPackages(env), appUser(env, 'deploy'), packageIndexes(env, {}), runtimes(env, files), supervisorService(), provisionNginx(env, false)].map((s) => s.script).join('\n');
  const key = createHash('sha256').update(rootfsTarball('bookworm')).update(scripts).update(JSON.stringify(files)).digest('hex').slice(0, 12);
  const name = `provisioned-${key}`;
  const lock = join(paths.run, `build-${name}.lock`);
  mkdirSync(paths.run, { recursive: true });
  for (;;) {
    if (listSnapshots().some((s) => s.name === name)) return name;
    try {
      mkdirSync(lock);
      break;
    } catch {
      // Another test file is building it; a lock older than 15 minutes belongs to a dead run.
      try {
        if (Date.now() - statSync(lock).mtimeMs > 15 * 60_000) rmdirSync(lock);
      } catch {}
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  try {
    if (listSnapshots().some((s) => s.name === name)) return name;
    const host = await upHost({ name: `snap${key.slice(0, 4)}`, fresh: true, owner: process.env.OPS_TESTHOSTS_OWNER });
    try {
      const project = makeProject('snap', testConfig([host], '/nonexistent', 'postgresql://x'));
      await provision(project.ctx(), project.env());
      project.cleanup();
      await snapshotHost(host.name, name);
    } finally {
      await downHost(host.name, { purge: true });
    }
    return name;
  } finally {
    rmdirSync(lock);
  }
}

/** A host started from the provisioned snapshot, named uniquely for this test run. */
export async function readyHost(prefix: string): Promise<Host> {
  const from = await provisionedSnapshot();
  return upHost({ name: `${prefix}${process.pid % 1000}`, from, fresh: true, owner: process.env.OPS_TESTHOSTS_OWNER });
}

/** GET through nginx on the host: status and body. */
export async function get(host: Host, path = '/'): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${host.address}${path}`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: await res.text() };
}

/** SSH logins the host's sshd accepted so far (each `sshRun` adds one: its own). */
export async function sshLogins(host: Host): Promise<number> {
  const r = await sshRun(host, "sudo journalctl _COMM=sshd --no-pager -o cat | grep -c 'Accepted publickey' || true");
  return Number(r.stdout.trim());
}

