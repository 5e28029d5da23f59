// Issue 16, a full disk on a real host: /srv is a small filesystem of its own (a tmpfs with size and inode
// limits, test/hosts), nearly filled under a live release. A deploy then fails before the switch naming the
// cause (out of space, or of inodes; before anything is written when the code alone does not fit), `current`
// and the live .env stay byte for byte, the lock is free, v1 keeps serving; a no-op still works; and once space
// is freed, the next deploy succeeds.
import { describe, expect, it } from 'vitest';
import { setFreeSpace, sshRun } from '../hosts/index.ts';
import type { CliResult } from '../support/cli.ts';
import { appRepo, get, labEnvironment, lockIsFree, testConfig, testDatabase } from './support.ts';

const ops = (...argv: string[]) => lab.ops(...argv);

/** What the live site stands on: `current`, its .env (hashed, never printed), and the page. */
async function liveState(): Promise<{ current: string; env: string; page: string }> {
  const r = await sshRun(lab.host, 'sudo readlink /srv/sample/current; sudo sha256sum /srv/sample/current/.env');
  const [current = '', env = ''] = r.stdout.trim().split('\n').slice(-2);
  return { current, env, page: (await get(lab.host)).body };
}

function failedClearly(r: CliResult, cause: RegExp): string {
  const text = r.out + r.err;
  expect(r.code, text).toBe(1);
  expect(text).toMatch(cause);
  expect(text).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  return text;
}

const lab = labEnvironment('dsk', async (host) => testConfig([host], await appRepo(), await testDatabase(`disk_${process.pid}`)), {
  host: { filesystems: [{ path: '/srv', sizeMb: 1024, inodes: 100_000 }] },
  ready: async () => {
    const first = await ops('deploy', 'e2e', '--ref', 'v1');
    expect(first.code, first.out + first.err).toBe(0);
  },
});

describe.sequential('a full disk under the app', () => {
  it('a release whose code does not fit is refused before anything is written; a no-op still works; ping says why', async () => {
    const before = await liveState();
    expect(before.page).toContain('Version 1.0.0');
    await setFreeSpace(lab.host.name, '/srv', { mb: 1 });
    try {
      const text = failedClearly(await ops('deploy', 'e2e', '--ref', 'v2'), new RegExp(`error: not enough space on ${lab.host.name} for release \\S+: [01] MB and \\d+ inodes free under /srv(/sample)?, and its code alone needs about \\d+ MB`));
      expect(text).toMatch(/still serves \S+; nothing was changed\n {2}hint: free space on .* under \/srv(\/sample)? /);
      expect(await liveState()).toEqual(before);
      await lockIsFree(lab.project);
      const noop = await ops('deploy', 'e2e', '--ref', 'v1');
      expect(noop.code, noop.out + noop.err).toBe(0);
      await lockIsFree(lab.project);
      const ping = await ops('ping', 'e2e');
      expect(ping.code).toBe(1);
      expect(ping.out).toMatch(new RegExp(`✗ ${lab.host.name}: only [01] MB free under /srv(/sample)?; a deploy may need \\d+ MB`));
    } finally {
      await setFreeSpace(lab.host.name, '/srv');
    }
  }, 300_000);

  it('not one inode left: the lock cannot be taken; the run says the disk is full and how to free it, changes nothing and leaves no lock', async () => {
    const before = await liveState();
    await setFreeSpace(lab.host.name, '/srv', { inodes: 0 });
    try {
      const text = failedClearly(await ops('deploy', 'e2e', '--ref', 'v2'), new RegExp(`${lab.host.name} ran out of free inodes: \\d+ MB and 0 inodes free under /srv`));
      expect(text).toMatch(/\n {2}hint: free space on .* under \/srv(\/sample)? /);
      expect(await liveState()).toEqual(before);
    } finally {
      await setFreeSpace(lab.host.name, '/srv');
    }
    await lockIsFree(lab.project);
  }, 300_000);

  it('out of inodes while installing dependencies: fails before the switch, saying so; nothing live changed', async () => {
    const before = await liveState();
    // Enough inodes for the code (the preflight passes), far too few for a new virtualenv (deps-changed).
    await setFreeSpace(lab.host.name, '/srv', { inodes: 400 });
    try {
      const text = failedClearly(await ops('deploy', 'e2e', '--ref', 'deps-changed'), new RegExp(`${lab.host.name} ran out of free inodes: \\d+ MB and \\d+ inodes free under /srv`));
      expect(text).toMatch(/still serves \S+; nothing was switched/);
      expect(await liveState()).toEqual(before);
      await lockIsFree(lab.project);
    } finally {
      await setFreeSpace(lab.host.name, '/srv');
    }
  }, 300_000);

  // The failed set is removed before the disk is looked at: a few MB may be free again by then.
  it('out of space while installing dependencies: fails before the switch, saying so; nothing live changed', async () => {
    const before = await liveState();
    await setFreeSpace(lab.host.name, '/srv', { mb: 4 });
    try {
      const text = failedClearly(await ops('deploy', 'e2e', '--ref', 'deps-changed'), new RegExp(`(${lab.host.name} ran out of disk space: \\d+ MB and \\d+ inodes free under /srv|not enough space on ${lab.host.name})`));
      expect(text).toMatch(/still serves \S+; nothing (was switched|was changed)/);
      expect(await liveState()).toEqual(before);
      await lockIsFree(lab.project);
    } finally {
      await setFreeSpace(lab.host.name, '/srv');
    }
  }, 300_000);

  it('/tmp a tmpfs of its own, out of inodes, while installing dependencies (the app\'s filesystem has room): fails before the switch naming /tmp and what to free there, not the releases; nothing live changed; ping names it first', async () => {
    const before = await liveState();
    // Mounted in the host's own mount namespace (sshd's), where its steps run.
    await sshRun(lab.host, 'sudo mount -t tmpfs -o size=64m,nr_inodes=16,mode=1777 e2e-tmp /tmp && for i in $(seq 40); do touch /tmp/f$i 2>/dev/null; done; true');
    try {
      const ping = await ops('ping', 'e2e');
      expect(ping.code, ping.out + ping.err).toBe(1);
      expect(ping.out).toMatch(new RegExp(`✗ ${lab.host.name}: /tmp is full \\(\\d+ MB and 0 inodes free under /tmp\\): steps make their temporary files there, so a deploy that installs dependencies fails; fix: free inodes on ${lab.host.name} under /tmp`));
      const text = failedClearly(await ops('deploy', 'e2e', '--ref', 'deps-changed'), new RegExp(`${lab.host.name} ran out of free inodes: \\d+ MB and 0 inodes free under /tmp \\(where steps make their temporary files\\); ops's own files have room \\(\\d+ MB and \\d+ inodes free under /srv`));
      expect(text).toMatch(/still serves \S+; nothing was switched\n {2}hint: free inodes on \S+ under \/tmp \(as root, find \/tmp -xdev/);
      expect(text).not.toMatch(/release\.keep/);
      expect(await liveState()).toEqual(before);
      await lockIsFree(lab.project);
    } finally {
      await sshRun(lab.host, 'sudo umount /tmp');
    }
  }, 300_000);

  it('once space is back, the next deploy succeeds', async () => {
    const r = await ops('deploy', 'e2e', '--ref', 'deps-changed');
    expect(r.code, r.out + r.err).toBe(0);
    expect((await get(lab.host)).body).toContain('client 2.0.1');
    await lockIsFree(lab.project);
  }, 300_000);
});
