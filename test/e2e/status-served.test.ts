// `ops status` says what the site's visitors get, proven as the switch proves it (nginx's own log of which upstream
// answered: nginx-gate.ts nginxServed), on a real host: not "healthy" while another server block takes the visitors
// (a deploy refuses it before building, naming the file) or a site edited by hand sends them to the previous release;
// and what admins commonly add beside the site (a catch-all, a redirect for another name, a health location with its
// own access_log) is not taken for another server block.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { APP, asRoot, readable, get, labEnvironment, versionedApp, RELOAD_NGINX, webConfig } from './support.ts';

let repo = '';
const lab = labEnvironment('ssv', (host) => webConfig(host, (repo = versionedApp('ops-served-'))), {
  ready: async () => {
    for (const ref of ['v1', 'v2']) expect((await ops('deploy', 'e2e', '--ref', ref)).code).toBe(0);
  },
});
const ops = (...argv: string[]) => lab.ops(...argv);

/** On the host, as root. */
const onHost = (command: string): Promise<string> => asRoot(lab.host, command);

const current = () => onHost(`readlink /srv/${APP}/current | xargs basename`);
const releases = () => onHost(`ls /srv/${APP}/releases | wc -l`);

/** What "/" answers from this machine, looked at once: RELOAD_NGINX and a deploy's switch return once the new files serve alone. */
const page = async (): Promise<string> => (await get(lab.host)).body;

describe.sequential('ops status says what the visitors get', () => {
  it('a healthy host: the visitors get the current release, nginx\'s log naming the live slot\'s port', async () => {
    const s = await ops('status', 'e2e');
    const text = readable(s);
    expect(s.code, text).toBe(0);
    expect(text).toContain(`visitors    ✓ get release ${await current()} (nginx's log names the live slot's port) at http://${lab.host.address}`);
  });

  it("another server block listening on the host's address: status fails naming its file; a deploy refuses before building, naming it, nothing changed", async () => {
    const live = await current();
    const count = await releases();
    await onHost(`printf 'server {\\n    listen ${lab.host.address}:80;\\n    location / { return 200 "other site"; }\\n}\\n' > /etc/nginx/conf.d/other.conf && nginx -t && ${RELOAD_NGINX}`);
    try {
      expect(await page()).toBe('other site');
      const s = await ops('status', 'e2e');
      const text = readable(s);
      // Unproven, status said healthy: the release live, its ports healthy, /.ops/slot right at 127.0.0.1.
      expect(s.code, text).toBe(1);
      expect(text).toContain(`what the site's visitors get (http://${lab.host.address}) is not release ${live} (live slot `);
      expect(text).toContain(`another server block answers ${lab.host.address}:80 for the site's name`);
      expect(text).toContain('/etc/nginx/conf.d/other.conf');
      expect(text).toContain(`✗ do NOT get release ${live}`);
      const d = await ops('deploy', 'e2e', '--ref', 'v3');
      const out = readable(d);
      expect(d.code, out).toBe(1);
      expect(out).toContain('/etc/nginx/conf.d/other.conf');
      expect(out).toContain('nothing was sent, built or started');
      expect({ current: await current(), releases: await releases() }).toEqual({ current: live, releases: count });
    } finally {
      await onHost(`rm -f /etc/nginx/conf.d/other.conf && ${RELOAD_NGINX}`);
    }
    expect(await page()).toBe('version 2');
  }, 600_000);

  it('a site edited by hand to send the visitors to the previous release: status fails, saying which address answered', async () => {
    const live = await current();
    const slot = await onHost(`cat /srv/${APP}/.ops/slot`);
    const idle = slot === 'blue' ? 5101 : 5100;
    const site = `/etc/nginx/sites-available/${APP}`;
    await onHost(`cp ${site} /root/site.saved && sed -i 's#proxy_pass http://${APP}_web#proxy_pass http://127.0.0.1:${idle}#' ${site} && nginx -t && ${RELOAD_NGINX}`);
    try {
      expect(await page()).toBe('version 1');
      const s = await ops('status', 'e2e');
      const text = readable(s);
      expect(s.code, text).toBe(1);
      expect(text).toContain(`is not release ${live} (live slot ${slot})`);
      expect(text).toContain(`from 127.0.0.1:${idle}, not from the slot's port 127.0.0.1:${idle === 5101 ? 5100 : 5101}`);
    } finally {
      await onHost(`cp /root/site.saved ${site} && ${RELOAD_NGINX}`);
    }
    expect(await page()).toBe('version 2');
  }, 600_000);

  it('what admins add beside the site (a catch-all server_name _, a redirect to https for another name) is not another server block: deploy and status pass', async () => {
    await onHost(`printf 'server {\\n    listen 80;\\n    server_name _;\\n    return 444;\\n}\\n' > /etc/nginx/sites-enabled/catchall
printf 'server {\\n    listen 80;\\n    server_name www.example.org;\\n    return 301 https://example.org$request_uri;\\n}\\n' > /etc/nginx/conf.d/redirect.conf
nginx -t && ${RELOAD_NGINX}`);
    try {
      const d = await ops('deploy', 'e2e', '--ref', 'v3');
      expect(d.code, readable(d)).toBe(0);
      const s = await ops('status', 'e2e');
      expect(s.code, readable(s)).toBe(0);
      expect(readable(s)).toContain(`visitors    ✓ get release ${await current()}`);
    } finally {
      await onHost(`rm -f /etc/nginx/sites-enabled/catchall /etc/nginx/conf.d/redirect.conf && ${RELOAD_NGINX}`);
    }
  }, 600_000);

  it("a status page only the host asks (listen 127.0.0.1:80, stub_status: a monitoring agent's) takes nothing from the visitors: deploy and status pass", async () => {
    await onHost(`printf 'server {\\n    listen 127.0.0.1:80;\\n    server_name 127.0.0.1;\\n    location = /nginx_status {\\n        stub_status;\\n    }\\n}\\n' > /etc/nginx/conf.d/status.conf && nginx -t && ${RELOAD_NGINX}`);
    try {
      // (v3 is live: another commit, so the switch runs.)
      const before = await current();
      const d = await ops('deploy', 'e2e', '--ref', 'v4');
      expect(d.code, readable(d)).toBe(0);
      expect(await current()).not.toBe(before);
      expect(await page()).toBe('version 4');
      const s = await ops('status', 'e2e');
      expect(s.code, readable(s)).toBe(0);
    } finally {
      await onHost(`rm -f /etc/nginx/conf.d/status.conf && ${RELOAD_NGINX}`);
    }
  }, 600_000);

  it('a custom site whose health location sets access_log off: the deploy goes live (unproven, said), not "another server block"; status warns', async () => {
    writeFileSync(
      join(lab.project.root, 'environments', 'e2e', 'site.conf'),
      `{{upstreams_include}}\nserver {\n    listen 80{{default_server}};\n    server_name {{server_name}};\n    {{logs}}\n    {{slot_location}}\n    location = /health {\n        access_log off;\n        proxy_pass http://${APP}_web;\n    }\n    {{locations}}\n}\n`,
    );
    lab.project.write(webConfig(lab.host, repo, { nginx: { site_template: 'site.conf' } }));
    try {
      const d = await ops('deploy', 'e2e', '--ref', 'v1');
      const text = readable(d);
      // Unfixed: refused as "another server block answers", with no other file to name.
      expect(d.code, text).toBe(0);
      expect(text).not.toMatch(/another server block/);
      expect(text).toMatch(/sets its own access_log/);
      expect(await page()).toBe('version 1');
      const s = await ops('status', 'e2e');
      const st = readable(s);
      expect(s.code, st).toBe(0);
      expect(st).toMatch(/cannot be proven to be release .*sets its own access_log/);
    } finally {
      lab.project.write(webConfig(lab.host, repo));
    }
  }, 600_000);
});
