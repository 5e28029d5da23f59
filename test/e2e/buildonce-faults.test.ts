// Build once per rollout, tried as a team with several hosts meets it: a build output with odd file names,
// symlinks and modes; a non-idempotent before_switch hook; a rolling rollout whose second host fails at its
// switch; a host of another platform failing at once while the builder still builds; a receiver whose /srv
// fills up half-way through unpacking; a receiver whose connection dies mid-transfer. Each time: what the
// deploy reports against what the hosts serve, locks, audit lines and release marks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { downHost, setFreeSpace, sshRun, type Host } from '../hosts/index.ts';
import { appRepo, get, makeProject, readyHost, testConfig, testDatabase, throughUploads, type TestProject } from './support.ts';

let hosts: Host[] = [];
let project: TestProject;
let config: Record<string, unknown>;

// The build leaves what real builds leave: names with spaces, a newline, unicode and a leading dash, relative
// and absolute symlinks, an executable script, a private file. The before_switch hook is not idempotent (mkdir).
const BUILD =
  "test ! -e /etc/ops-test-fail-build && make build && mkdir -p odd && cd odd && touch -- -dash 'sp ace' \"$(printf 'new\\nline')\" ünï && ln -sfn ../REVISION rev-link && ln -sfn /etc/hostname abs-link && printf '#!/bin/sh\\necho hi\\n' > run.sh && chmod 755 run.sh && chmod 600 'sp ace'";

beforeAll(async () => {
  hosts = await Promise.all([readyHost('bra'), readyHost('brb'), readyHost('brc', { filesystems: [{ path: '/srv', sizeMb: 3000 }] })]);
  config = testConfig(hosts, await appRepo(), await testDatabase(`brk_${process.pid}`), {
    switch: { drain: 10, batch_size: 3 },
    release: { build: BUILD, before_switch: ['mkdir hook-ran'] },
  });
  project = makeProject('brk', config);
}, 900_000);

afterAll(async () => {
  await Promise.all(hosts.map((h) => downHost(h.name, { purge: true })));
  project?.cleanup();
});

const revision = async (h: Host) => (await get(h)).body.match(/revision ([0-9a-f]{40})/)?.[1];
const sh = async (h: Host, script: string) => (await sshRun(h, script)).stdout;
const lockFree = async (h: Host) => (await sh(h, 'sudo test -e /srv/sample/.ops/lock && echo held || echo free')).trim();
// The mark is in the release's record (root's .ops/releases/<id>/, core/layout.ts), not in its directory.
const failedMark = async (h: Host, id: string) => (await sh(h, `sudo test -e /srv/sample/.ops/releases/${id}/.ops-failed && echo marked || echo unmarked`)).trim();
const auditOf = async (h: Host) => sh(h, 'sudo cat /srv/sample/.ops/audit.log');
const releaseList = async (h: Host) => (await sh(h, 'sudo ls /srv/sample/releases')).split('\n').filter(Boolean);
const errorOf = (p: Promise<unknown>) => p.then(() => new Error('the deploy succeeded'), (e: Error) => e);

describe.sequential('build once: what real teams hit', () => {
  it('odd file names, symlinks and modes arrive as built; a non-idempotent before_switch hook works on receivers', async () => {
    const r = await deploy(project.ctx(), project.env(), { ref: 'v1' });
    expect(r.hosts[1]!.steps.map((s) => s.name)).toContain('receive build');
    // One line per host: NUL ends an entry, a newline inside a name shows as "~".
    const listing = (h: Host) => sh(h, "sudo find /srv/sample/current/odd -mindepth 1 -printf '%P|%m|%y|%s|%l\\0' | sort -z | tr '\\0\\n' '\\t~'");
    const want = await listing(hosts[0]!);
    for (const entry of ['-dash|644|f|0|', 'sp ace|600|f|0|', 'new~line|644|f|0|', 'ünï|644|f|0|', 'rev-link|777|l|11|../REVISION', 'abs-link|777|l|13|/etc/hostname', 'run.sh|755|f|18|']) expect(want.split('\t')).toContain(entry);
    for (const h of hosts.slice(1)) expect(await listing(h)).toBe(want);
    for (const h of hosts) expect(await revision(h)).toBe(r.sha);
  }, 900_000);

  it('rolling, one at a time, host 2 of 3 fails at its start: host 3 is told, its release marked, locks gone', async () => {
    project.write({ ...config, switch: { drain: 10, batch_size: 1 } });
    // brb's supervisor refuses the new slot's file (its log directory gone): its start fails there. (Something else
    // listening on its idle slot's ports would be refused before any host builds.)
    await sh(hosts[1]!, 'sudo mv /var/log/sample /var/log/sample.away');
    const before = await Promise.all(hosts.map(revision));
    const err = await errorOf(deploy(project.ctx(), project.env(), { ref: 'v2' }));
    console.log('ROLLING:', err.message);
    expect(err.message).toMatch(/rollout stopped; hosts now run:/);
    const after = await Promise.all(hosts.map(revision));
    expect(after[0]).not.toBe(before[0]);
    expect(after.slice(1)).toEqual(before.slice(1));
    for (const h of hosts) expect(await lockFree(h)).toBe('free');
    // host 3 built nothing live: its prepared release is marked failed, and its audit log has this run.
    const live0 = (await revision(hosts[0]!))!;
    const id = (await releaseList(hosts[2]!)).find((x) => x.endsWith(live0.slice(0, 12)));
    expect(id).toBeDefined();
    expect(await failedMark(hosts[2]!, id!)).toBe('marked');
    expect((await auditOf(hosts[2]!)).split('\n').filter(Boolean).pop()).toMatch(/failed/);
    await sh(hosts[1]!, 'sudo mv /var/log/sample.away /var/log/sample');
    // A rerun after the failed rollout finishes the job.
    const again = await deploy(project.ctx(), project.env(), { ref: 'v2' });
    for (const h of hosts) expect(await revision(h)).toBe(again.sha);
  }, 900_000);

  it('a host of another platform fails at once while the builder still builds: the rollout lets the build end, then marks it failed and unlocks (nothing of the run left running)', async () => {
    project.write({ ...config, switch: { drain: 10, batch_size: 3 } });
    await sh(hosts[2]!, "sudo sed -i 's/^VERSION_ID=.*/VERSION_ID=\"12.99\"/' /usr/lib/os-release");
    await setFreeSpace(hosts[2]!.name, '/srv', { mb: 1 });
    try {
      const err = await errorOf(deploy(project.ctx(), project.env(), { ref: 'deps-changed' }));
      console.log('PLATFORM:', err.message);
      expect(err.message).toMatch(/not enough space on brc/);
      // Right away: nothing of this run still runs on the builder, and it holds no lock.
      const running = await sh(hosts[0]!, "pgrep -u sample -af 'npm|uv |vite|make' || true");
      expect(running.trim()).toBe('');
      for (const h of hosts) expect(await lockFree(h)).toBe('free');
      const ids = await releaseList(hosts[0]!);
      const last = ids[ids.length - 1]!;
      expect(await failedMark(hosts[0]!, last)).toBe('marked');
      for (const h of hosts) expect((await get(h)).body).toContain('Version 2.0.0');
    } finally {
      await setFreeSpace(hosts[2]!.name, '/srv');
      await sh(hosts[2]!, "sudo sed -i 's/^VERSION_ID=.*/VERSION_ID=\"12\"/' /usr/lib/os-release");
    }
  }, 900_000);

  it('a migration that fails while the build travels to the receivers: no host runs a before_switch hook or starts the new release, each still serves, locks free, releases marked', async () => {
    // The migration fails after the build has reached the receivers (a long one): they must still wait for it.
    project.write({ ...config, switch: { drain: 10, batch_size: 3 }, release: { ...(config.release as object), migrate: 'sleep 8 && make migrate' } });
    const before = await Promise.all(hosts.map(revision));
    const kept = await Promise.all(hosts.map(releaseList));
    const spawned = (h: Host) => sh(h, "sudo grep -c 'spawned:' /var/log/supervisor/supervisord.log || true");
    const spawnedBefore = await Promise.all(hosts.map(spawned));
    const err = await errorOf(deploy(project.ctx(), project.env(), { ref: 'broken-migration' }));
    console.log('MIGRATION:', err.message);
    expect(err.message).toMatch(/step "migrate" on bra/);
    expect(await Promise.all(hosts.map(revision))).toEqual(before);
    for (const h of hosts) expect(await lockFree(h)).toBe('free');
    expect((await sh(hosts[0]!, "pgrep -u sample -af 'alembic|make' || true")).trim()).toBe('');
    // supervisord started no program anywhere during the run.
    expect(await Promise.all(hosts.map(spawned))).toEqual(spawnedBefore);
    // The new release never ran anywhere (no supervisor file names it) and no before_switch hook ran in it (the
    // receivers have it while the migration runs, their hooks wait for it); where it was made (the builder, and
    // the receivers it reached) it is marked failed; every host's audit has the failure.
    for (const [i, h] of hosts.entries()) {
      for (const id of (await releaseList(h)).filter((x) => !kept[i]!.includes(x))) {
        expect(await failedMark(h, id)).toBe('marked');
        expect((await sh(h, `sudo test -e /srv/sample/releases/${id}/hook-ran && echo ran || echo not`)).trim()).toBe('not');
        expect((await sh(h, `sudo grep -l ${id} /etc/supervisor/conf.d/*.conf || true`)).trim()).toBe('');
      }
      expect((await auditOf(h)).split('\n').filter(Boolean).pop()).toMatch(/"result":"failed"/);
    }
    project.write(config);
  }, 900_000);

  it('a receiver short of space: refused before anything is sent; with just enough for the transfer but not for the build unpacked, too: a clear error, nothing switched, nothing half-received left', async () => {
    const leftovers = async () => (await sh(hosts[2]!, 'sudo ls -A /srv/sample/.ops/uploads /srv/sample/shared/deps /srv/sample/releases')).trim();
    const unchanged = async () => {
      for (const h of hosts) expect((await get(h)).body).toContain('Version 2.0.0');
      for (const h of hosts) expect(await lockFree(h)).toBe('free');
      expect(await leftovers()).not.toMatch(/\.new-|\.tar\.gz|\.ops-upload/);
    };
    try {
      await setFreeSpace(hosts[2]!.name, '/srv', { mb: 3 });
      const early = await errorOf(deploy(project.ctx(), project.env(), { ref: 'deps-changed' }));
      console.log('EARLY:', early.message);
      expect(early.message).toMatch(/not enough space on brc\d+ for release \S+: \d+ MB and \d+ inodes free under \/srv\/sample, and the build it would receive needs about \d+ MB/);
      expect(early.message).toMatch(/brc\d+ still serves \S+; nothing was changed/);
      await unchanged();
      // Room for the packed parts, not for the dependency sets unpacked: refused before anything is sent too (its
      // disk is never filled under its live release), naming what the build takes unpacked (as on the builder).
      const arrive = Number(early.message.match(/\((\d+) MB to arrive, (\d+) MB once unpacked\)/)![1]);
      expect(Number(early.message.match(/(\d+) MB once unpacked/)![1])).toBeGreaterThan(arrive);
      await setFreeSpace(hosts[2]!.name, '/srv', { mb: arrive + 2 });
      const err = await errorOf(deploy(project.ctx(), project.env(), { ref: 'deps-changed' }));
      console.log('UNPACKED:', err.message, '\nHINT:', (err as { hint?: string }).hint);
      expect(err.message).toMatch(/not enough space on brc\d+ for release \S+: \d+ MB and \d+ inodes free under \/srv\/sample, and the build it would receive needs about \d+ MB and \d+ inodes \(\d+ MB to arrive, \d+ MB once unpacked\)/);
      expect(err.message).toMatch(/brc\d+ still serves \S+; nothing was changed/);
      expect(err.message).not.toMatch(/\n\s+at /);
      await unchanged();
    } finally {
      await setFreeSpace(hosts[2]!.name, '/srv');
    }
  }, 900_000);

  it('a receiver whose connection dies mid-transfer: nothing switched anywhere, locks released', async () => {
    const ctx = project.ctx();
    let killed = false;
    const connector = throughUploads(ctx, hosts[2]!.name, (bytes, path) => {
      if (/\.tar\.gz\.\d+$/.test(path) && !killed) {
        killed = true;
        // The host's sshd children for the deploy login die while the chunk is in flight.
        setTimeout(() => void sshRun(hosts[2]!, "sudo setsid sh -c 'sleep 0.2; pkill -KILL -f \"sshd: deploy\"' >/dev/null 2>&1 < /dev/null &").catch(() => undefined), 50);
      }
      return bytes;
    });
    const err = await errorOf(deploy({ ...ctx, connector }, project.env(), { ref: 'deps-changed', force: true }));
    console.log('KILLED:', err.message, '\nHINT:', (err as { hint?: string }).hint);
    expect(err.message).toMatch(/brc/);
    for (const h of hosts) expect((await get(h)).body).toContain('Version 2.0.0');
    for (const h of hosts) expect(await lockFree(h)).toBe('free');
    // The rerun works.
    const r = await deploy(project.ctx(), project.env(), { ref: 'deps-changed' });
    for (const h of hosts) expect(await revision(h)).toBe(r.sha);
  }, 900_000);

  it('a build output larger than a JavaScript string can hold (450 MB, incompressible) arrives on every host, byte for byte', async () => {
    project.write({ ...config, release: { build: `${BUILD} && head -c 450M /dev/urandom > ../big.bin`, before_switch: ['mkdir hook-ran'] } });
    const err = await errorOf(deploy(project.ctx(), project.env(), { ref: 'v2' }));
    console.log('LARGE:', err.message);
    expect(err.message).toBe('the deploy succeeded');
    const sums = await Promise.all(hosts.map((h) => sh(h, 'sudo sha256sum /srv/sample/current/big.bin | cut -c1-64')));
    expect(new Set(sums).size).toBe(1);
  }, 1_800_000);
});
