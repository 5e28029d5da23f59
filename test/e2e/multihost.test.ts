// Several hosts per environment: one sha everywhere, rolling batches, migrations once (first host), one SSH
// connection per host; a failure on one host stops the rollout and says which hosts run which release.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { rollback } from '../../core/ops/rollback.ts';
import { withSession } from '../../core/ops/hosts.ts';
import { withLock } from '../../core/ops/locked.ts';
import { getLockStatus } from '../../core/ops/records.ts';
import { downHost, sshRun, type Host } from '../hosts/index.ts';
import { commit, initRepo } from '../support/gitrepo.ts';
import { appRepo, ASSET_HOLD, assetApp, assetPage, get, makeProject, readyHost, sshLogins, testConfig, testDatabase, untilFree, untilListening, webConfig, type TestProject } from './support.ts';

let hosts: Host[] = [];
let project: TestProject;
/** Each host's v1 release (the first test's). */
let v1: string[] = [];
/** The asset app's repository (the asset test's), for the test after it. */
let assetRepo = '';

beforeAll(async () => {
  hosts = [await readyHost('mha'), await readyHost('mhb')];
  project = makeProject('multi', testConfig(hosts, await appRepo(), await testDatabase(`multi_${process.pid}`)));
}, 900_000);

afterAll(async () => {
  for (const h of hosts) await downHost(h.name, { purge: true });
  project?.cleanup();
});

describe.sequential('two hosts', () => {
  it('deploys one sha to every host, one batch at a time, over one connection each', async () => {
    const before = await Promise.all(hosts.map(sshLogins));
    const r = await deploy(project.ctx(), project.env(), { ref: 'v1' });
    const after = await Promise.all(hosts.map(sshLogins));
    expect(r.hosts.map((h) => h.host)).toEqual(hosts.map((h) => h.name));
    expect(new Set(r.hosts.map((h) => h.release)).size).toBe(1);
    v1 = r.hosts.map((h) => h.release);
    for (const h of hosts) expect((await get(h)).body).toContain(`revision ${r.sha}`);
    after.forEach((n, i) => expect(n - before[i]! - 1).toBe(1));
    // Migrations ran once, on the first host.
    expect(r.hosts[0]!.steps.map((s) => s.name)).toContain('migrate');
    expect(r.hosts[1]!.steps.map((s) => s.name)).not.toContain('migrate');
  }, 600_000);

  it('without switch.lock_wait, a deploy started while another run holds one host\'s lock only (a run starting or ending: it holds the others a moment later or earlier): it queues for that host a few seconds rather than be refused by a lock let go of at once', async () => {
    const ctx = project.ctx();
    const env = project.env();
    // Another run holding the second host's lock alone for 3 s, as a run racing this one holds it in its first round.
    let holding = false;
    const other = withSession(ctx, env, (session) => withLock(ctx, session, 'provision', async () => {
      holding = true;
      await new Promise((r) => setTimeout(r, 3000));
    }), [env.hosts[1]!]);
    for (let i = 0; !holding && i < 200; i++) await new Promise((r) => setTimeout(r, 100));
    expect(holding).toBe(true);
    const r = await deploy(ctx, env, { ref: 'v1' });
    await other;
    expect(r.hosts.map((h) => h.release)).toEqual(v1);
    const locks = await getLockStatus(ctx, env);
    expect(locks.map((l) => l.lock.state)).toEqual(['free', 'free']);
  }, 300_000);

  it('foreign processes on the hosts\' idle ports: the rollout is refused before any host builds, naming every such host in one error', async () => {
    const squat = (h: Host) => sshRun(h, 'setsid python3 -m http.server 3580 --bind 127.0.0.1 >/dev/null 2>&1 < /dev/null & echo $!').then((r) => r.stdout.trim());
    const pids = [await squat(hosts[0]!), await squat(hosts[1]!)];
    try {
      for (const h of hosts) await sshRun(h, untilListening(3580));
      const both = await deploy(project.ctx(), project.env(), { ref: 'v2' }).catch((e: Error) => e);
      const held = (i: number) => `  - ${hosts[i]!.name} \\(slot green\\): port 3580 \\(program server\\) is held by pid ${pids[i]} \\((/usr/bin/)?python3 -m http\\.server 3580 --bind 127\\.0\\.0\\.1\\); ${hosts[i]!.name} still serves ${v1[i]}`;
      expect((both as Error).message).toMatch(
        new RegExp(`^the ports this release would start on are taken on 2 hosts \\(${hosts[0]!.name}, ${hosts[1]!.name}\\)\\. Its start would fail there, so nothing was started \\(no build, no migration\\) on any host:\\n${held(0)}\\n${held(1)}$`),
      );
      expect((both as { hint?: string }).hint).toContain(`on ${hosts[0]!.name}: sudo kill ${pids[0]}`);
      expect((both as { hint?: string }).hint).toContain(`on ${hosts[1]!.name}: sudo kill ${pids[1]}`);
      // The first host freed: the second alone is named, as ever.
      await sshRun(hosts[0]!, `kill ${pids[0]} || true; ${untilFree(3580)}`);
      const err = await deploy(project.ctx(), project.env(), { ref: 'v2' }).catch((e: Error) => e);
      expect((err as Error).message).toMatch(new RegExp(`^the ports this release would start on \\(slot green\\) are taken on ${hosts[1]!.name}: port 3580 \\(program server\\) is held by pid ${pids[1]} \\((/usr/bin/)?python3 -m http\\.server 3580`));
      for (const h of hosts) expect((await get(h)).body).toContain('Version 1.0.0');
    } finally {
      for (const [i, h] of hosts.entries()) await sshRun(h, `kill ${pids[i]} 2>/dev/null || true; ${untilFree(3580)}`);
    }
  }, 300_000);

  it('stops the rollout when a host fails, saying which hosts run which release', async () => {
    // The second host's supervisor refuses the new slot's file (its log directory gone): its start fails, the first
    // host is already done.
    await sshRun(hosts[1]!, 'sudo mv /var/log/sample /var/log/sample.away');
    try {
      const err = await deploy(project.ctx(), project.env(), { ref: 'v2' }).catch((e: Error) => e);
      // Every slot's programs log there: supervisor refuses its configuration as a whole (CANT_REREAD naming the directory).
      expect((err as Error).message).toMatch(/step "start green" on \S+ failed[\s\S]*CANT_REREAD: The directory named as part of the path \/var\/log\/sample\//);
      expect((err as Error).message).toMatch(new RegExp(`rollout stopped; hosts now run:\\n  ${hosts[0]!.name}: \\d{8}T\\d{6}Z-[0-9a-f]{12}\\n  ${hosts[1]!.name}: unchanged`));
      expect((await get(hosts[0]!)).body).toContain('Version 2.0.0');
      expect((await get(hosts[1]!)).body).toContain('Version 1.0.0');
    } finally {
      await sshRun(hosts[1]!, 'sudo mv /var/log/sample.away /var/log/sample');
    }
    const again = await deploy(project.ctx(), project.env(), { ref: 'v2' });
    expect(again.hosts.map((h) => h.noop)).toEqual([true, false]);
    for (const h of hosts) expect((await get(h)).body).toContain('Version 2.0.0');
  }, 600_000);

  it('foreign processes on the hosts\' idle ports: the rollback is refused once every lock is taken, before any host changes, naming every such host in one error', async () => {
    // Both hosts serve v2 on green; v1 runs warm on blue (3579): stopped, as a tester would, so something else takes its port.
    for (const h of hosts) await sshRun(h, 'sudo supervisorctl stop "sample-blue:*"');
    const squat = (h: Host) => sshRun(h, 'setsid python3 -m http.server 3579 --bind 127.0.0.1 >/dev/null 2>&1 < /dev/null & echo $!').then((r) => r.stdout.trim());
    const pids = [await squat(hosts[0]!), await squat(hosts[1]!)];
    try {
      for (const h of hosts) await sshRun(h, untilListening(3579));
      const look = 'cat /srv/sample/.ops/history /srv/sample/.ops/slot; ls /etc/supervisor/conf.d; readlink /srv/sample/current';
      const before = await Promise.all(hosts.map((h) => sshRun(h, `sudo bash -c '${look}'`).then((r) => r.stdout)));
      const err = await rollback(project.ctx(), project.env()).catch((e: Error) => e);
      expect((err as Error).message).toMatch(
        new RegExp(`^the ports this rollback would start its release on are taken on 2 hosts \\(${hosts[0]!.name}, ${hosts[1]!.name}\\)\\. Its start would fail there, so nothing was changed \\(no slot started or stopped; nginx and current as they were\\) on any host:\\n  - ${hosts[0]!.name} \\(slot blue\\): port 3579 \\(program server\\) is held by pid ${pids[0]} `),
      );
      expect((err as Error).message).toContain(`\n  - ${hosts[1]!.name} (slot blue): port 3579 (program server) is held by pid ${pids[1]} `);
      expect(await Promise.all(hosts.map((h) => sshRun(h, `sudo bash -c '${look}'`).then((r) => r.stdout)))).toEqual(before);
      for (const h of hosts) expect((await get(h)).body).toContain('Version 2.0.0');
    } finally {
      for (const [i, h] of hosts.entries()) await sshRun(h, `kill ${pids[i]} 2>/dev/null || true; ${untilFree(3579)}`);
    }
  }, 300_000);

  it('rolls every host back: all locks first, then each host its own step, to the one release they served before (one target for the environment)', async () => {
    const before = await Promise.all(hosts.map(sshLogins));
    const r = await rollback(project.ctx(), project.env());
    const after = await Promise.all(hosts.map(sshLogins));
    expect(r.hosts.map((h) => [h.host, h.release])).toEqual(hosts.map((h, i) => [h.name, v1[i]]));
    // Not in the lock step (that would change a host before every lock is taken): a step of its own after it.
    for (const h of r.hosts) expect(h.steps.map((s) => s.name)).toEqual([expect.stringMatching(/^start (blue|green) \+ switch$/)]);
    for (const h of hosts) expect((await get(h)).body).toContain('Version 1.0.0');
    after.forEach((n, i) => expect(n - before[i]! - 1).toBe(1));
  }, 300_000);

  it("one host at a time (release.asset_dirs with a url): a host not switched yet serves the new release's hashed assets to the pages of the host switched before it; a rollout stopped with the release live nowhere leaves none of them served", async () => {
    const repo = join(mkdtempSync(join(tmpdir(), 'ops-multi-assets-')), 'app');
    initRepo(repo, { 'server.py': assetApp.server, 'app.js': 'console.log("one")\n' });
    assetRepo = repo;
    const [a, b] = hosts as [Host, Host];
    project.write(
      webConfig(a, repo, {
        hosts: hosts.map((h) => ({ name: h.name, address: h.address, user: h.user, host_key: h.hostKey })),
        release: { python_requirements: '', node_dir: '', build: assetApp.build, migrate: 'true', asset_dirs: [{ dir: 'static', url: '/static/' }] },
        switch: { drain: 1, health_timeout: 120, batch_size: 1 },
      }),
    );
    await deploy(project.ctx(), project.env(), { ref: 'main' });
    const one = assetPage('console.log("one")\n');
    for (const h of hosts) expect((await get(h)).body).toBe(one);
    // The second host's new release stays unhealthy while held: its switch waits, the first host's is done.
    const js = 'console.log("two")\n';
    const two = assetPage(js);
    commit(repo, { 'app.js': js }, 'two');
    await sshRun(b, `sudo touch ${ASSET_HOLD}`);
    let rollout: Promise<unknown> | undefined;
    try {
      rollout = deploy(project.ctx(), project.env(), { ref: 'main' });
      rollout.catch(() => undefined);
      for (let i = 0; i < 600 && (await get(a)).body !== two; i++) await new Promise((ok) => setTimeout(ok, 200));
      expect((await get(a)).body).toBe(two);
      // A page of the first host asks the second, not switched yet, for its script.
      expect((await get(b)).body).toBe(one);
      expect(await get(b, two)).toEqual({ status: 200, body: js });
    } finally {
      await sshRun(b, `sudo rm -f ${ASSET_HOLD}`);
    }
    await rollout;
    for (const h of hosts) expect((await get(h)).body).toBe(two);
    // Prepared on both hosts, then the first host's start fails: the release goes live nowhere, and neither serves its files.
    const three = assetPage('console.log("three")\n');
    commit(repo, { 'app.js': 'console.log("three")\n' }, 'three');
    await sshRun(a, 'sudo mv /var/log/sample /var/log/sample.away');
    try {
      const err = await deploy(project.ctx(), project.env(), { ref: 'main' }).catch((e: Error) => e);
      expect((err as Error).message).toMatch(new RegExp(`rollout stopped; hosts now run:\\n  ${a.name}: unchanged \\(failed; \\S+ still live\\)\\n  ${b.name}: unchanged`));
      expect((err as Error).message).not.toMatch(/also serve the assets/);
    } finally {
      await sshRun(a, 'sudo mv /var/log/sample.away /var/log/sample');
    }
    for (const h of hosts) {
      expect((await get(h)).body).toBe(two);
      expect((await get(h, three)).status).toBe(404);
    }
  }, 600_000);

  it('a rollout stopped part-way, then ops rollback: ONE release for the environment, the one live before the rollout; the host left behind is a no-op (not taken one release further back) and no longer serves the stopped release\'s assets', async () => {
    // As the test before left them: both hosts serve "two" (its release one id on both), "one" before it; one host at a time.
    const [a, b] = hosts as [Host, Host];
    const live = (h: Host) => sshRun(h, 'readlink /srv/sample/current').then((r) => r.stdout.trim().split('/').pop()!);
    const two = await live(a);
    expect(await live(b)).toBe(two);
    const js = 'console.log("four")\n';
    commit(assetRepo, { 'app.js': js }, 'four');
    // The second host's start fails (supervisor refuses the slot's file): the first host serves "four", the second "two",
    // and serves "four"'s files as `next` for the first host's pages.
    await sshRun(b, 'sudo mv /var/log/sample /var/log/sample.away');
    try {
      const err = await deploy(project.ctx(), project.env(), { ref: 'main' }).catch((e: Error) => e);
      expect((err as Error).message).toMatch(/rollout stopped; hosts now run:/);
    } finally {
      await sshRun(b, 'sudo mv /var/log/sample.away /var/log/sample');
    }
    expect((await get(a)).body).toBe(assetPage(js));
    expect(await get(b, assetPage(js))).toEqual({ status: 200, body: js });
    const r = await rollback(project.ctx(), project.env());
    expect(r.hosts.map((h) => [h.host, h.release, h.noop])).toEqual([[a.name, two, false], [b.name, two, true]]);
    expect(r.hosts[1]!.notes).toContain(`${two} is already live`);
    for (const h of hosts) expect(await live(h)).toBe(two);
    for (const h of hosts) expect((await get(h)).body).toBe(assetPage('console.log("two")\n'));
    expect((await sshRun(b, 'sudo test -e /srv/sample/.ops/assets/next && echo kept || echo dropped')).stdout.trim()).toBe('dropped');
    expect((await get(b, assetPage(js))).status).toBe(404);
  }, 600_000);
});
