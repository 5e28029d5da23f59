// What a deploy calls live is what visitors get, with nginx's own cache in front of the app (micro-caching pages in a
// custom site template, proxy_cache): on a real host, through the CLI as a user runs it. nginx's default cache key
// ($scheme$proxy_host$request_uri) names the upstream, which is the same for every slot (the switch moves its server),
// so after a switch nginx goes on answering the previous release's pages for the cache's lifetime while the deploy,
// its gate (which bypasses the cache, as its own hint says) and `ops status` say the new release is live.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { APP, asRoot, get, labEnvironment, readable, versionedApp, webConfig } from './support.ts';

let repo = '';
const ops = (...argv: string[]) => lab.ops(...argv);

/** The version "/" answers through nginx, from this machine. */
async function serving(): Promise<string> {
  const r = await get(lab.host);
  expect(r.status).toBe(200);
  return r.body;
}

/** A site caching every page for 10 minutes (a micro-cache, made long), keyed by `key`. */
function cachingSite(key: string): string {
  return `proxy_cache_path /var/cache/nginx-${APP}-pages levels=1:2 keys_zone=${APP}_pages:1m max_size=10m inactive=10m;
{{upstreams_include}}
server {
    listen 80{{default_server}};
    server_name {{server_name}};
    {{logs}}
    proxy_cache ${APP}_pages;
    proxy_cache_valid 200 10m;
    ${key}
    # As the switch's own hint says: its requests are never answered from the cache.
    proxy_cache_bypass $http_x_ops_check;
    proxy_no_cache $http_x_ops_check;
    {{slot_location}}
    {{locations}}
}
`;
}

const lab = labEnvironment('cac', (host) => webConfig(host, (repo = versionedApp('ops-cache-'))), {
  ready: async () => {
    expect((await ops('deploy', 'e2e', '--ref', 'v1')).code).toBe(0);
  },
});

describe.sequential("nginx's cache never answers the previous release's pages once a deploy says the new one is live", () => {
  it("a site caching pages under nginx's default key (the same for every release): refused before any host, naming the line and the key to write; the live release serves on", async () => {
    writeFileSync(join(lab.project.root, 'environments', 'e2e', 'site.conf'), cachingSite(''));
    lab.project.write(webConfig(lab.host, repo, { nginx: { site_template: 'site.conf' } }));
    expect(await serving()).toBe('version 1');
    const d2 = await ops('deploy', 'e2e', '--ref', 'v2');
    // A visitor's page, now in the cache (when the site went live).
    const page2 = await serving();
    const d3 = await ops('deploy', 'e2e', '--ref', 'v3');
    const text = readable(d2);
    // Unchecked, both deploys "went live" and every visitor kept getting version 2 from the cache for 10 minutes.
    expect({ codes: [d2.code, d3.code], pages: [page2, await serving()] }, text).toEqual({ codes: [2, 2], pages: ['version 1', 'version 1'] });
    expect(text).toContain(`environments/e2e/site.conf caches the release's answers under a key that does not name the live release, line 7: proxy_cache ${APP}_pages; (under nginx's default key`);
    expect(text).toContain(`proxy_cache_key $scheme$proxy_host$request_uri$ops_release_${APP};`);
  }, 600_000);

  it('keyed by the live release ($ops_release_<app>, which the switch sets): each deploy and rollback serves its own pages at once', async () => {
    writeFileSync(join(lab.project.root, 'environments', 'e2e', 'site.conf'), cachingSite(`proxy_cache_key $scheme$proxy_host$request_uri$ops_release_${APP};`));
    lab.project.write(webConfig(lab.host, repo, { nginx: { site_template: 'site.conf' } }));
    for (const [argv, page] of [[['deploy', 'e2e', '--ref', 'v2'], 'version 2'], [['deploy', 'e2e', '--ref', 'v3'], 'version 3'], [['rollback', 'e2e'], 'version 2'], [['deploy', 'e2e', '--ref', 'v4'], 'version 4']] as const) {
      // The page as visitors got it just before: in the cache.
      await serving();
      const r = await ops(...argv);
      expect(r.code, readable(r)).toBe(0);
      expect(await serving(), argv.join(' ')).toBe(page);
    }
    // Cached indeed: nginx answered "/" from its cache at least once.
    expect(await asRoot(lab.host, `find /var/cache/nginx-${APP}-pages -type f | wc -l`)).not.toBe('0');
  }, 900_000);

  it("a micro-cache an admin turns on for every site (conf.d, http level): deploy refused before building, naming the file and the fix; status says so; the live release serves on; keyed by the release, it deploys", async () => {
    // The built-in site: the cache comes from a file ops does not write, which every server block inherits.
    lab.project.write(webConfig(lab.host, repo));
    expect((await ops('deploy', 'e2e', '--ref', 'v2')).code).toBe(0);
    // Written as nginx reads it, not one directive a line: two on a line, one split over two (nginx -t accepts it).
    const micro = (key: string) => asRoot(lab.host, `printf '%s\\n' 'proxy_cache_path /var/cache/nginx-micro levels=1:2 keys_zone=micro:1m max_size=10m inactive=10m; proxy_cache' '    micro;  # every site' 'proxy_cache_valid 200 10m;' ${key ? `'${key}' 'proxy_cache_bypass $http_x_ops_check;' 'proxy_no_cache $http_x_ops_check;'` : ''} > /etc/nginx/conf.d/micro.conf && nginx -t 2>/dev/null && systemctl reload nginx`);
    await micro('');
    try {
      const releases = await asRoot(lab.host, `ls /srv/${APP}/releases`);
      const d = await ops('deploy', 'e2e', '--ref', 'v3');
      const text = readable(d);
      expect(d.code, text).toBe(1);
      const cached = `nginx on ${lab.host.name} caches every site's answers, ${APP}'s too, from /etc/nginx/conf\\.d/micro\\.conf \\(/etc/nginx/conf\\.d/micro\\.conf:1: proxy_cache micro;\\), under a key that does not name the live release: `;
      expect(text).toMatch(new RegExp(`${cached}.*nothing was started \\(no build, no migration\\)`));
      expect(text).toContain(`proxy_cache_key $scheme$proxy_host$request_uri$ops_release_${APP};`);
      expect(await asRoot(lab.host, `ls /srv/${APP}/releases`)).toBe(releases);
      expect(await serving()).toBe('version 2');
      // A one-host rollback refuses it as the deploy does, from its lock step's read, before its switch.
      const rb = await ops('rollback', 'e2e');
      expect(rb.code, readable(rb)).toBe(1);
      expect(readable(rb)).toMatch(new RegExp(`${cached}.*nothing was changed \\(no slot started or stopped`));
      expect(await serving()).toBe('version 2');
      const st = await ops('status', 'e2e');
      expect(readable(st)).toContain(`caches every site's answers, ${APP}'s too, from /etc/nginx/conf.d/micro.conf`);
      // Keyed by the live release (the switch's variable) and bypassed by the gate: each release's own pages.
      await micro(`proxy_cache_key $scheme$proxy_host$request_uri$ops_release_${APP};`);
      const k = await ops('deploy', 'e2e', '--ref', 'v3');
      expect(k.code, readable(k)).toBe(0);
      expect(await serving()).toBe('version 3');
    } finally {
      await asRoot(lab.host, 'rm -f /etc/nginx/conf.d/micro.conf; systemctl reload nginx');
    }
  }, 900_000);
});
