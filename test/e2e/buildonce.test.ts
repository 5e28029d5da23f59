// Build once per rollout, on real hosts: of three hosts of one platform only the first builds (dependencies,
// build, migrations); the others receive its release and dependency sets over the runner's own connections,
// sha256-checked. A host whose platform differs builds for itself, and the plan says so. A build damaged on
// its way is refused by its hash before anything switches, on every host. And the Python installer: uv by
// default (deploy.test.ts), pip when the environment chooses it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { MemoryReporter } from '../../core/report.ts';
import { downHost, sshRun, type Host } from '../hosts/index.ts';
import { appRepo, get, makeProject, readyHost, sshLogins, testConfig, testDatabase, throughUploads, type TestProject } from './support.ts';

let hosts: Host[] = [];
let project: TestProject;

beforeAll(async () => {
  hosts = await Promise.all(['boa', 'bob', 'boc'].map((p) => readyHost(p)));
  project = makeProject('once', testConfig(hosts, await appRepo(), await testDatabase(`once_${process.pid}`), { switch: { batch_size: 3 } }));
}, 900_000);

afterAll(async () => {
  await Promise.all(hosts.map((h) => downHost(h.name, { purge: true })));
  project?.cleanup();
});

const names = (steps: { name: string }[]) => steps.map((s) => s.name);
const revision = async (h: Host) => (await get(h)).body.match(/revision ([0-9a-f]{40})/)?.[1];

describe.sequential('build once per rollout', () => {
  it('3 hosts: the first builds and migrates, the others receive its build (sha256-checked); one connection per host', async () => {
    const before = await Promise.all(hosts.map(sshLogins));
    const r = await deploy(project.ctx(), project.env(), { ref: 'v1' });
    const after = await Promise.all(hosts.map(sshLogins));
    after.forEach((n, i) => expect(n - before[i]! - 1).toBe(1));
    const [a, b, c] = r.hosts;
    expect(names(a!.steps)).toEqual(expect.arrayContaining(['python dependencies', 'node dependencies', 'build', 'migrate', 'pack build']));
    for (const x of [b!, c!]) {
      expect(names(x.steps)).toContain('receive build');
      expect(names(x.steps)).not.toEqual(expect.arrayContaining(['build']));
      for (const s of ['python dependencies', 'node dependencies', 'build', 'migrate', 'receive code']) expect(names(x.steps)).not.toContain(s);
      expect(x.notes.join('\n')).toMatch(new RegExp(`received the build of ${hosts[0]!.name} \\(release, venv-[0-9a-f]+, node-[0-9a-f]+: [\\d.]+ MiB, sha256-checked\\)`));
    }
    for (const h of hosts) expect(await revision(h)).toBe(r.sha);
    // The venv received works where it landed (same absolute paths): the API answers through it.
    for (const h of hosts) expect((await get(h, '/api/health')).status).toBe(200);
    // It came with its bytecode (compiled on the builder while the set was made), still valid where it landed (tar
    // keeps the sources' mtimes, which the bytecode is checked against): importing the app's libraries there
    // compiles nothing.
    const pyc = await sshRun(
      hosts[1]!,
      `sudo -u sample bash -c 'cd /srv/sample/current && touch /tmp/ops-pyc-mark && venv/bin/python -c "import sqlalchemy, fastapi, alembic, uvicorn, asyncpg" && find -L venv/ -name "*.pyc" | wc -l && find -L venv/ -name "*.pyc" -newer /tmp/ops-pyc-mark | wc -l'`,
    );
    const [all, fresh] = pyc.stdout.trim().split('\n').map(Number);
    expect(all).toBeGreaterThan(300);
    expect(fresh).toBe(0);
  }, 600_000);

  it('a code-only change: only the release travels (the hosts have its dependency sets)', async () => {
    const r = await deploy(project.ctx(), project.env(), { ref: 'v2' });
    for (const x of r.hosts.slice(1)) {
      expect(x.notes.join('\n')).toMatch(/received the build of \S+ \(release: [\d.]+ (KiB|MiB), sha256-checked\)/);
      expect(x.notes).toEqual(expect.arrayContaining(['dependencies: python reused', 'dependencies: node reused']));
    }
    for (const h of hosts) expect((await get(h)).body).toContain('Version 2.0.0');
  }, 600_000);

  it('a build damaged on its way to a host is refused by its hash before any host switches', async () => {
    const reporter = new MemoryReporter();
    const ctx = project.ctx(reporter);
    // The runner's connection to the third host flips one byte of every chunk of the build it uploads.
    const connector = throughUploads(ctx, hosts[2]!.name, (bytes, path) => {
      if (!/\.tar\.gz\.\d+$/.test(path)) return bytes;
      const i = Math.floor(bytes.length / 2);
      bytes.writeUInt8(bytes.readUInt8(i) ^ 0xff, i);
      return bytes;
    });
    const before = await Promise.all(hosts.map(revision));
    const err = (await deploy({ ...ctx, connector }, project.env(), { ref: 'deps-changed' }).catch((e: Error) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(new RegExp(`the release part of the build from ${hosts[0]!.name} arrived damaged: sha256 [0-9a-f]{64}, expected [0-9a-f]{64}; nothing was unpacked`));
    expect(err.message).toMatch(/still serves \S+; nothing was switched/);
    expect(err.message).toMatch(/rollout stopped; hosts now run:\n/);
    // Nothing serves differently anywhere: the builder did not switch either.
    expect(await Promise.all(hosts.map(revision))).toEqual(before);
    for (const h of hosts) expect((await get(h)).body).toContain('Version 2.0.0');
    // The release made for nothing is marked failed where it exists, never taken for a good one.
    const marked = await sshRun(hosts[0]!, "sudo sh -c 'ls -d /srv/sample/.ops/releases/*/.ops-failed' 2>/dev/null | wc -l");
    expect(Number(marked.stdout.trim())).toBeGreaterThan(0);
  }, 600_000);

  it('a host whose platform differs builds for itself, and the plan says so', async () => {
    // The third host now says it runs another Debian release: its compiled dependencies are not the others'.
    await sshRun(hosts[2]!, "sudo sed -i 's/^VERSION_ID=.*/VERSION_ID=\"12.99\"/' /usr/lib/os-release");
    try {
      const plan = await deploy(project.ctx(), project.env(), { ref: 'deps-changed', dryRun: true });
      expect(plan.plan!.join('\n')).toContain(`build once: ${hosts[0]!.name} builds, ${hosts[1]!.name} receives its build (sha256-checked) — same platform: debian 12 `);
      expect(plan.plan!.join('\n')).toContain(`${hosts[2]!.name} builds for itself: its platform differs (debian 12.99 `);
      // In what, from the first host's: the OS release alone.
      expect(plan.plan!.join('\n')).toMatch(new RegExp(`${hosts[2]!.name} builds for itself: its platform differs \\(debian 12\\.99 [^)]*\\) — differs in OS release debian 12\\.99 \\(${hosts[0]!.name}: debian 12\\)(\n|$)`));
      const r = await deploy(project.ctx(), project.env(), { ref: 'deps-changed' });
      expect(names(r.hosts[1]!.steps)).toContain('receive build');
      expect(names(r.hosts[2]!.steps)).toEqual(expect.arrayContaining(['python dependencies', 'node dependencies', 'build']));
      expect(names(r.hosts[2]!.steps)).not.toContain('receive build');
      // Migrations still once, on the first host.
      expect(r.hosts.filter((h) => names(h.steps).includes('migrate')).map((h) => h.host)).toEqual([hosts[0]!.name]);
      for (const h of hosts) expect(await revision(h)).toBe(r.sha);
    } finally {
      await sshRun(hosts[2]!, "sudo sed -i 's/^VERSION_ID=.*/VERSION_ID=\"12\"/' /usr/lib/os-release");
    }
  }, 600_000);
});

describe('the Python installer', () => {
  it('pip when the environment chooses it: a new set made by python -m venv and pip, which the app runs on; uv chosen again, with the same requirements: a new set made by uv, not the pip one reused', async () => {
    const host = await readyHost('bop');
    const config = testConfig([host], await appRepo(), await testDatabase(`once_pip_${process.pid}`), { release: { python_installer: 'pip' } });
    const one = makeProject('pip', config);
    try {
      const r = await deploy(one.ctx(), one.env(), { ref: 'v1' });
      expect(r.hosts[0]!.notes).toEqual(expect.arrayContaining(['dependencies: python installed (pip)', 'dependencies: node installed']));
      expect(await revision(host)).toBe(r.sha);
      expect((await get(host, '/api/health')).status).toBe(200);
      // pip's venv: made by the venv module (pip inside), not by uv.
      const cfg = await sshRun(host, 'sudo cat /srv/sample/current/venv/pyvenv.cfg; sudo test -x /srv/sample/current/venv/bin/pip && echo has-pip');
      expect(cfg.stdout).not.toMatch(/^uv = /m);
      expect(cfg.stdout).toContain('has-pip');
      // The installer is part of the set's name: v2 (the same requirements) under uv makes its own set.
      one.write({ ...config, release: { ...(config.release as object), python_installer: 'uv' } });
      const plan = await deploy(one.ctx(), one.env(), { ref: 'v2', dryRun: true });
      expect(plan.plan!.join('\n')).toContain('dependencies: python NEW SET: its files are unchanged, but the host has no set for these settings');
      const again = await deploy(one.ctx(), one.env(), { ref: 'v2' });
      expect(again.hosts[0]!.notes).toEqual(expect.arrayContaining(['dependencies: python installed (uv)', 'dependencies: node reused']));
      expect((await sshRun(host, 'sudo cat /srv/sample/current/venv/pyvenv.cfg')).stdout).toMatch(/^uv = /m);
      expect((await get(host, '/api/health')).status).toBe(200);
    } finally {
      one.cleanup();
      await downHost(host.name, { purge: true });
    }
  }, 900_000);
});
