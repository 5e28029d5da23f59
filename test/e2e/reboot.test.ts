// The host restarts under us, on a real host (systemd, sshd, supervisor, nginx): rebootHost is `systemctl reboot`
// inside, so services stop as systemd stops them, /run and /tmp start empty and what is enabled at boot starts. After
// a reboot the visitors get the live release, `ops status` says so, and the commands work at once; nginx and
// supervisor running but not enabled at boot are said before the reboot that would take the site down, and after it
// status does not claim the visitors get the live release.
import { describe, expect, it } from 'vitest';
import { rebootHost } from '../hosts/index.ts';
import { APP, asRoot, get, labEnvironment, readable, versionedApp, webConfig } from './support.ts';

const ops = (...argv: string[]) => lab.ops(...argv);
const onHost = (command: string): Promise<string> => asRoot(lab.host, command);
const current = () => onHost(`readlink /srv/${APP}/current | xargs basename`);

/** What "/" answers through nginx once it is `page` (the programs start with the boot, after nginx), or after 20 s. */
async function pageSoon(page: string): Promise<string> {
  let got = '';
  for (let i = 0; i < 100 && got !== page; i++) {
    got = await get(lab.host).then((r) => r.body, (e: Error) => e.message);
    if (got !== page) await new Promise((ok) => setTimeout(ok, 200));
  }
  return got;
}

const lab = labEnvironment('rbt', (host) => webConfig(host, versionedApp('ops-reboot-')), {
  // Both slots hold a release: the live one (v2) and the previous one, kept warm.
  ready: async () => {
    for (const ref of ['v1', 'v2']) expect((await ops('deploy', 'e2e', '--ref', ref)).code).toBe(0);
  },
});

describe.sequential('the host restarts under us', () => {
  it('after a reboot: the live release serves, status says so (the warm one too), logs, deploy and rollback work at once', async () => {
    const live = await current();
    lab.host = await rebootHost(lab.host.name);
    expect(await pageSoon('version 2')).toBe('version 2');
    const s = await ops('status', 'e2e');
    const text = readable(s);
    expect(s.code, text).toBe(0);
    expect(text).toContain(`visitors    ✓ get release ${live}`);
    // Both slots' programs start at boot: the previous release is warm again, said so, no warning from the boot.
    expect(text).toMatch(/web +(RUNNING|STARTING).+\(previous\)/);
    expect(text).not.toContain('warnings:');
    expect((await ops('logs', 'e2e', '-n', '5')).code).toBe(0);
    const d = await ops('deploy', 'e2e', '--ref', 'v3');
    expect(d.code, readable(d)).toBe(0);
    expect(await pageSoon('version 3')).toBe('version 3');
    lab.host = await rebootHost(lab.host.name);
    const r = await ops('rollback', 'e2e');
    expect(r.code, readable(r)).toBe(0);
    expect(await pageSoon('version 2')).toBe('version 2');
    expect(await current()).toBe(live);
  }, 300_000);

  it('nginx and supervisor running but not enabled at boot: status warns before the reboot; after it, the site down is said, never served', async () => {
    const live = await current();
    await onHost('systemctl disable --quiet nginx supervisor');
    try {
      const before = await ops('status', 'e2e');
      const text = readable(before);
      expect(before.code, text).toBe(0);
      expect(text).toContain('nginx runs, but is not enabled at boot (systemctl is-enabled nginx: disabled): after the next reboot nginx is not running and the site is down (sudo systemctl enable nginx, or run: ops provision e2e)');
      expect(text).toContain(`supervisor runs, but is not enabled at boot (systemctl is-enabled supervisor: disabled): after the next reboot supervisor is not running and no program of ${APP} runs`);

      lab.host = await rebootHost(lab.host.name);
      const after = await ops('status', 'e2e');
      const down = readable(after);
      expect(after.code, down).toBe(1);
      expect(down).not.toContain(`✓ get release ${live}`);
      expect(down).toContain(`✗ do NOT get release ${live}`);
      expect(down).toContain('supervisor does not answer on /var/run/supervisor.sock (is it running?): no program of sample runs, and deploys and rollbacks refuse until it does (sudo systemctl start supervisor); it is not enabled at boot either (sudo systemctl enable supervisor, or run: ops provision e2e)');

      // The fix the messages give: provision enables and starts both; the live release serves again.
      const p = await ops('provision', 'e2e');
      expect(p.code, readable(p)).toBe(0);
      expect(await onHost('systemctl is-enabled nginx supervisor')).toBe('enabled\nenabled');
      expect(await pageSoon('version 2')).toBe('version 2');
    } finally {
      await onHost('systemctl enable --quiet --now nginx supervisor');
    }
  }, 300_000);
});
