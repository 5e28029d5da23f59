// Several environments on one host (issue 22): which environments of a project share a machine, the
// collisions refused before anything runs (each naming both environments), and the nginx sites rendered for
// apps side by side (their own server_name, one default server, their own logs, upstreams and slot variable).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadEnvironment, parseEnvironment, resolveEnvironment } from '../../core/config/environment.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { collisions, hostSharing, refuseCollisions, sharingPlan } from '../../core/config/siblings.ts';
import type { OpsContext } from '../../core/context.ts';
import { OpsError } from '../../core/errors.ts';
import { deploy } from '../../core/ops/deploy.ts';
import { initdata } from '../../core/ops/initdata.ts';
import { provision } from '../../core/ops/provision.ts';
import { rollback } from '../../core/ops/rollback.ts';
import { servingHosts } from '../../core/ops/decommission.ts';
import { status } from '../../core/ops/status.ts';
import { RecordingRemote } from '../../core/remote/recording.ts';
import { parseReports } from '../../core/remote/types.ts';
import { START_MARKER, scriptText } from '../../core/remote/wrap.ts';
import { MemoryReporter } from '../../core/report.ts';
import { site, upstreams } from '../../core/steps/nginx-config.ts';
import { listCertificates, parseCerts } from '../../core/steps/certs.ts';
import { logsStep } from '../../core/steps/logs.ts';
import { parseHostStatus } from '../../core/steps/status.ts';
import { report, result } from './status.helpers.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const VM = { name: 'web1', address: '203.0.113.20', host_key: KEY };

/** An environment file: the catalogue app on `hosts`, with `extra` on top. */
function config(app: string, ports: [number, number], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    app,
    hosts: [VM],
    programs: { server: { command: 'run', port: ports[0], health: '/health' }, client: { command: 'run', port: ports[1] } },
    ...extra,
  };
}

/** A project holding these environments (file contents, or raw text for a broken one). */
function project(envs: Record<string, Record<string, unknown> | string>): string {
  const root = mkdtempSync(join(tmpdir(), 'ops-sharing-'));
  writeFileSync(join(root, 'package.json'), '{}');
  for (const [name, c] of Object.entries(envs)) {
    mkdirSync(join(root, 'environments', name), { recursive: true });
    writeFileSync(join(root, 'environments', name, 'environment.yml'), typeof c === 'string' ? c : stringify(c));
  }
  return root;
}

const STAGING = config('catalogage-staging', [3579, 3000], { domain: 'staging.example.org' });
const DEMO = config('catalogage-demo', [4579, 4000], { domain: 'demo.example.org' });

function sharing(envs: Record<string, Record<string, unknown> | string>, name = 'staging') {
  return hostSharing(loadEnvironment(name, project(envs)));
}

describe('sibling environments', () => {
  it('staging and demo on one VM, each with its own app, user, directories, domain and ports: no collision; the plan names both', () => {
    const root = project({ staging: STAGING, demo: DEMO, prod: { ...config('catalogage', [3579, 3000], { domain: 'example.org' }), hosts: [{ ...VM, address: '203.0.113.10' }] } });
    const env = loadEnvironment('staging', root);
    const s = hostSharing(env);
    expect(s.collisions).toEqual([]);
    expect(s.siblings.map((x) => x.env.name)).toEqual(['demo']);
    expect(sharingPlan(env, s)).toEqual(['web1 (203.0.113.20): shared with demo (demo.example.org); catalogage-staging answers staging.example.org']);
  });

  it('the same address on another SSH port is another machine; an address matches whatever its case', () => {
    expect(sharing({ staging: STAGING, demo: { ...DEMO, hosts: [{ ...VM, port: 2222 }] } }).siblings).toEqual([]);
    expect(sharing({ staging: { ...STAGING, hosts: [{ ...VM, address: 'VM1.example.org' }] }, demo: { ...DEMO, app: 'catalogage', hosts: [{ ...VM, name: 'vm', address: 'vm1.example.org.' }] } }).siblings.map((x) => x.env.name)).toEqual(['demo']);    // An IPv6 address however it is spelt (leading zeros, case, the longest run of zeros written out).
    expect(sharing({ staging: { ...STAGING, hosts: [{ ...VM, address: '2001:db8::5' }] }, demo: { ...DEMO, app: 'catalogage', hosts: [{ ...VM, name: 'vm', address: '2001:0DB8:0:0:0:0:0:0005' }] } }).siblings.map((x) => x.env.name)).toEqual(['demo']);
  });

  it('a port of either slot (port + switch.port_offset) taken twice is refused, naming both environments and both sources', () => {
    const blue = sharing({ staging: STAGING, demo: config('catalogage-demo', [4579, 3000], { domain: 'demo.example.org' }) }).collisions;
    expect(blue).toEqual([
      'environments staging and demo share 203.0.113.20 (staging: web1, demo: web1), but both take port 3000 (staging: programs.client.port, blue slot — demo: programs.client.port, blue slot)',
      'environments staging and demo share 203.0.113.20 (staging: web1, demo: web1), but both take port 3001 (staging: programs.client.port + switch.port_offset, green slot — demo: programs.client.port + switch.port_offset, green slot)',
    ]);
    // demo's blue port is staging's green one.
    const green = sharing({ staging: STAGING, demo: config('catalogage-demo', [3580, 4000], { domain: 'demo.example.org' }) }).collisions;
    expect(green).toEqual([
      'environments staging and demo share 203.0.113.20 (staging: web1, demo: web1), but both take port 3580 (staging: programs.server.port + switch.port_offset, green slot — demo: programs.server.port, blue slot)',
    ]);
    // Another offset moves the green slot: then it collides with demo's blue port.
    const offset = sharing({ staging: { ...STAGING, switch: { port_offset: 1000 } }, demo: config('catalogage-demo', [4579, 4000], { domain: 'demo.example.org' }) }).collisions;
    expect(offset).toEqual([
      expect.stringContaining('both take port 4579 (staging: programs.server.port + switch.port_offset, green slot — demo: programs.server.port, blue slot)'),
      expect.stringContaining('both take port 4000 (staging: programs.client.port + switch.port_offset, green slot — demo: programs.client.port, blue slot)'),
    ]);
  });

  it('the same app name is one collision (not one per name derived from it), and its default user and base dir collide too', () => {
    const c = sharing({ staging: STAGING, demo: { ...DEMO, app: 'catalogage-staging' } }).collisions;
    expect(c).toEqual([
      expect.stringContaining('but both take app name "catalogage-staging" (staging: app: nginx site, supervisor groups, /var/log/<app> — demo: app: nginx site, supervisor groups, /var/log/<app>)'),
      expect.stringContaining('but both take app user "catalogage-staging" (staging: app_user, default: the app name — demo: app_user, default: the app name)'),
      expect.stringContaining('but their base directories overlap: staging /srv/catalogage-staging, demo /srv/catalogage-staging'),
    ]);
    expect(c.join('\n')).not.toMatch(/supervisor program|nginx upstream|nginx variable/);
  });

  it('base directories are compared as the kernel resolves them: ".", "..", "//" and a trailing "/" do not hide an overlap (a file older than the base_dir checks)', () => {
    const env = (name: string, app: string, ports: [number, number], domain: string, baseDir?: string) => {
      const e = resolveEnvironment(name, '/nonexistent', parseEnvironment(config(app, ports, { domain }), name), [{ name: 'web1', address: VM.address, port: 22, user: 'deploy', hostKey: KEY }]);
      return baseDir ? { ...e, baseDir } : e;
    };
    const staging = env('staging', 'shop', [3000, 3100], 'a.example.org');
    for (const base of ['/srv/shop', '/srv/shop/', '/srv/x/../shop', '//srv/shop', '/srv/./shop', '/srv', '/srv/shop/releases/..', '/']) {
      const demo = env('demo', 'shopdemo', [4000, 4100], 'b.example.org', base);
      expect(collisions(staging, { env: demo, hosts: [{ mine: staging.hosts[0]!, theirs: demo.hosts[0]! }] }), base).toEqual([expect.stringContaining(`base directories overlap: staging /srv/shop, demo ${base}`)]);
    }
    const apart = env('demo', 'shopdemo', [4000, 4100], 'b.example.org', '/srv/shop2/../shopdemo');
    expect(collisions(staging, { env: apart, hosts: [{ mine: staging.hosts[0]!, theirs: apart.hosts[0]! }] })).toEqual([]);
  });

  it('app user, nested base directories, domain (any case) and a second default server are refused', () => {
    expect(sharing({ staging: STAGING, demo: { ...DEMO, app_user: 'catalogage-staging' } }).collisions).toEqual([expect.stringContaining('both take app user "catalogage-staging" (staging: app_user, default: the app name — demo: app_user)')]);
    expect(sharing({ staging: { ...STAGING, base_dir: '/srv/apps' }, demo: { ...DEMO, base_dir: '/srv/apps/demo' } }).collisions).toEqual([expect.stringContaining('base directories overlap: staging /srv/apps, demo /srv/apps/demo')]);
    expect(sharing({ staging: STAGING, demo: { ...DEMO, domain: 'Staging.Example.org' } }).collisions).toEqual([expect.stringContaining('both take domain staging.example.org (staging: domain — demo: domain)')]);
    const def = { nginx: { default_server: true } };
    expect(sharing({ staging: { ...STAGING, ...def }, demo: DEMO }).collisions).toEqual([]);
    expect(sharing({ staging: { ...STAGING, ...def }, demo: { ...DEMO, ...def } }).collisions).toEqual([expect.stringContaining('both take the default server (staging: nginx.default_server — demo: nginx.default_server)')]);
  });

  it('an app without a domain must be alone on its hosts: refused, saying which one and how to fix it', () => {
    const { domain: _, ...noDomain } = DEMO;
    const c = sharing({ staging: STAGING, demo: noDomain }).collisions;
    expect(c).toEqual([
      "environments staging and demo share 203.0.113.20 (staging: web1, demo: web1), but demo has no domain: its site answers every name on the host, staging's too; on a shared host each app needs its own domain (set domain in environments/demo/environment.yml; nginx.default_server: true keeps it answering by address)",
    ]);
    const alone = loadEnvironment('demo', project({ demo: noDomain }));
    expect(sharingPlan(alone, hostSharing(alone))).toEqual(['web1 (203.0.113.20): no other environment of this project; catalogage-demo answers every name (no domain: it must be the only app on the host)']);
  });

  it('names derived from different app names that happen to be spelt alike (supervisor programs, nginx upstreams and variables)', () => {
    const a = { ...config('a', [3579, 3000], { domain: 'a.example.org' }), programs: { 'blue-x': { command: 'run', port: 3000 }, b_c: { command: 'run', port: 3100 } }, routes: { '/': 'blue-x' } };
    const b = { ...config('a-blue', [4579, 4000], { domain: 'b.example.org' }), programs: { x: { command: 'run', port: 4000 } }, routes: { '/': 'x' } };
    expect(sharing({ staging: a, demo: b }).collisions).toEqual([expect.stringContaining('both take supervisor program a-blue-blue-x (staging: app + programs.blue-x — demo: app + programs.x)')]);
    const c = { ...config('a_b', [4579, 4000], { domain: 'c.example.org' }), programs: { c: { command: 'run', port: 4000 } }, routes: { '/': 'c' } };
    expect(sharing({ staging: a, demo: c }).collisions).toEqual([expect.stringContaining('both take nginx upstream a_b_c (staging: app + programs.b_c — demo: app + programs.c)')]);
    expect(sharing({ staging: { ...STAGING, app: 'my-app' }, demo: { ...DEMO, app: 'my_app' } }).collisions).toEqual([expect.stringContaining('both take nginx variable $ops_slot_my_app (staging: app — demo: app)')]);
  });

  it("Debian's Node.js: one version per host", () => {
    expect(sharing({ staging: STAGING, demo: { ...DEMO, runtimes: { node: { strategy: 'debian', version: '20' } } } }).collisions).toEqual([expect.stringContaining("staging pins Debian's Node.js 18 and demo 20: a host has one Debian nodejs package")]);
    expect(sharing({ staging: STAGING, demo: { ...DEMO, runtimes: { node: { strategy: 'nvm', version: '20.11.1' } } } }).collisions).toEqual([]);
  });

  it('a sibling whose file does not load is reported, not fatal; a broken file naming other machines is no sibling', () => {
    const broken = sharing({ staging: STAGING, demo: 'app: [\n' });
    expect(broken.collisions).toEqual([]);
    expect(broken.unreadable).toEqual([expect.stringMatching(/^environments\/demo\/environment\.yml cannot be read \(environments\/demo\/environment\.yml:\d+:\d+: not valid YAML.*\): whether demo shares a host with staging, and collides with it, is not checked$/)]);
    const invalidHere = sharing({ staging: STAGING, demo: { ...DEMO, releases: 3 } });
    expect(invalidHere.unreadable).toEqual([expect.stringContaining('environments/demo/environment.yml cannot be read (environments/demo/environment.yml has 1 problem: releases: unknown key (did you mean \"release\"?))')]);
    expect(sharing({ staging: STAGING, demo: { ...DEMO, releases: 3, hosts: [{ ...VM, address: '198.51.100.7' }] } }).unreadable).toEqual([]);
  });
});

describe('refused before anything runs', () => {
  const never: OpsContext['connector'] = async () => {
    throw new Error('must not connect');
  };
  const root = project({ staging: STAGING, demo: config('catalogage-demo', [3579, 4000], { domain: 'demo.example.org' }) });

  it('provision, deploy (a dry run too), rollback and initdata refuse a collision, naming both environments, without connecting', async () => {
    for (const run of [
      (ctx: OpsContext) => provision(ctx, loadEnvironment('demo', root)),
      (ctx: OpsContext) => deploy(ctx, loadEnvironment('demo', root), { ref: 'v1' }),
      (ctx: OpsContext) => deploy(ctx, loadEnvironment('demo', root), { ref: 'v1', dryRun: true }),
      (ctx: OpsContext) => rollback(ctx, loadEnvironment('demo', root)),
      (ctx: OpsContext) => initdata(ctx, loadEnvironment('demo', root)),
    ]) {
      const err = await run({ root, reporter: new MemoryReporter(), processEnv: {}, connector: never }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpsError);
      expect((err as OpsError).message).toBe(
        'demo cannot share its hosts as configured; nothing was changed:\n  - environments demo and staging share 203.0.113.20 (demo: web1, staging: web1), but both take port 3579 (demo: programs.server.port, blue slot — staging: programs.server.port, blue slot)\n  - environments demo and staging share 203.0.113.20 (demo: web1, staging: web1), but both take port 3580 (demo: programs.server.port + switch.port_offset, green slot — staging: programs.server.port + switch.port_offset, green slot)',
      );
      expect((err as OpsError).hint).toMatch(/own app name, app user, base_dir, domain and ports/);
    }
  });

  it("provision refuses, without connecting, what Let's Encrypt never issues for (a reserved or private domain, an IP, a contact at example.org): certbot failed on the host, its hint about DNS", async () => {
    const tls = (domain: string, email = 'ops@catalogue.fr', more: Record<string, unknown> = {}) => config('shop', [5000, 6000], { domain, tls: { mode: 'letsencrypt', email, ...more } });
    // each alone on its VM (one project each)
    const refused = async (c: Record<string, unknown>) => {
      const root = project({ x: c });
      const err = await provision({ root, reporter: new MemoryReporter(), processEnv: {}, connector: never }, loadEnvironment('x', root)).catch((e: unknown) => e);
      return err instanceof OpsError ? err.message : String(err);
    };
    expect(await refused(tls('shop.example.org'))).toBe("domain shop.example.org is reserved (RFC 2606, 6761, 6762) or never public: Let's Encrypt issues no certificate for it; nothing was done");
    expect(await refused(tls('shop.internal'))).toContain('domain shop.internal is reserved');
    expect(await refused(tls('shop.catalogue.fr', 'ops@example.com'))).toBe("tls.email ops@example.com is at a domain reserved for examples: Let's Encrypt refuses such an account contact; nothing was done");
    expect(await refused(tls('192.0.2.10'))).toContain("domain 192.0.2.10 is an IP address: Let's Encrypt issues certificates for DNS names");
    // an alias is named as the alias it is (certbot validates it as it does the domain), not as "domain"
    const aliased = (aliases: string[]) => ({ ...tls('shop.catalogue.fr'), aliases });
    expect(await refused(aliased(['www.catalogue.fr', 'shop.test']))).toBe("alias shop.test (aliases[1]) is reserved (RFC 2606, 6761, 6762) or never public: Let's Encrypt issues no certificate for it; nothing was done");
    expect(await refused(aliased(['www.example.com']))).toContain('alias www.example.com (aliases[0]) is reserved');
    // a label of the reserved form "??--" that is not an A-label (Boulder's errInvalidRLDH); an A-label (xn--) is a name as any other
    expect(await refused(tls('ab--shop.catalogue.fr'))).toBe(`domain ab--shop.catalogue.fr has the label ab--shop, with "--" as its third and fourth characters, a form reserved for encoded international labels (R-LDH, RFC 5890): Let's Encrypt issues no certificate for it; nothing was done`);
    expect(await refused(aliased(['www.xn--caf-dma.fr', 'bq--x.catalogue.fr']))).toContain('alias bq--x.catalogue.fr (aliases[1]) has the label bq--x');
    expect(await refused(aliased(['www.xn--caf-dma.fr']))).toContain('must not connect');
    // another ACME server (a test one, pebble) is its own judge: provision goes on, to the hosts
    expect(await refused(tls('shop.example.org', 'ops@example.org', { acme_server: 'https://acme.test/dir' }))).toContain('must not connect');
  });

  it('an unreadable sibling is a warning', () => {
    const r = project({ staging: STAGING, demo: 'hosts: [' });
    const reporter = new MemoryReporter();
    refuseCollisions(loadEnvironment('staging', r), reporter);
    expect(reporter.text()).toMatch(/environments\/demo\/environment\.yml cannot be read .*not checked/);
  });
});

describe('rules within one environment', () => {
  const check = (extra: Record<string, unknown>) => () => parseEnvironment({ ...config('shop', [3579, 3000], { domain: 'shop.example.org' }), ...extra }, 'x.yml');
  it('one machine listed twice, ports of nginx and sshd, the login or root as app user, system app names', () => {
    expect(check({ hosts: [VM, { ...VM, name: 'web2', address: '203.0.113.20' }] })).toThrow('hosts[1].address: 203.0.113.20 port 22 is also host web1: one machine listed twice would run the app twice on the same ports');
    expect(check({ programs: { client: { command: 'run', port: 79 } }, routes: { '/': 'client' } })).toThrow('programs.client.port: port 80 is also used by nginx (http)');
    expect(check({ programs: { client: { command: 'run', port: 2222 } }, routes: { '/': 'client' }, hosts: [{ ...VM, port: 2222 }] })).toThrow('programs.client.port: port 2222 is also used by sshd (hosts[].port of web1)');
    expect(check({ app_user: 'deploy' })).toThrow('app_user: the app would run as "deploy", the SSH login of host web1 (with its sudo rights): set app_user to a user of its own');
    expect(check({ app_user: 'root' })).toThrow('app_user: the app would run as "root", root');
    expect(check({ app: 'default' })).toThrow(`app: "default" would take nginx's default site, which belongs to the system`);
    expect(check({ app: 'nginx' })).toThrow('app: "nginx" would take /var/log/nginx');
  });
});

describe('nginx sites of apps sharing a host', () => {
  const load = (name: string, c: Record<string, unknown>): Target => resolveTarget(loadEnvironment(name, project({ [name]: c })));
  const serverBlocks = (text: string) => text.split(/\n(?=server \{)/).filter((b) => b.startsWith('server {'));

  it('each answers for its own domain; only the one marked default carries default_server, on 80 and 443', () => {
    const staging = load('staging', { ...STAGING, nginx: { default_server: true }, tls: { mode: 'letsencrypt', email: 'ops@example.org' } });
    const demo = load('demo', { ...DEMO, tls: { mode: 'letsencrypt', email: 'ops@example.org' } });
    const s = site(staging, true);
    const d = site(demo, true);
    expect(s).toContain('listen 80 default_server;\n    listen [::]:80 default_server;\n    server_name staging.example.org;');
    expect(s).toContain('listen 443 ssl http2 default_server;\n    listen [::]:443 ssl http2 default_server;\n    server_name staging.example.org;');
    expect(d).toContain('listen 80;\n    listen [::]:80;\n    server_name demo.example.org;');
    expect(d).toContain('listen 443 ssl http2;\n    listen [::]:443 ssl http2;\n    server_name demo.example.org;');
    expect(d).not.toContain('default_server');
    expect(d).toContain('ssl_certificate /etc/letsencrypt/live/demo.example.org/fullchain.pem;');
    // Every server block of each site: its own server_name and its own logs.
    for (const [text, app, domain] of [[s, 'catalogage-staging', 'staging.example.org'], [d, 'catalogage-demo', 'demo.example.org']] as const) {
      const blocks = serverBlocks(text);
      expect(blocks).toHaveLength(2);
      for (const b of blocks) {
        expect(b).toContain(`server_name ${domain};`);
        expect(b).toContain(`access_log /var/log/nginx/${app}.access.log;\n    error_log /var/log/nginx/${app}.error.log;`);
      }
    }
  });

  it("the ACME challenge and the live slot answer on each app's port-80 site, before and after its certificate", () => {
    const demo = load('demo', { ...DEMO, tls: { mode: 'letsencrypt', email: 'ops@example.org' } });
    for (const ready of [false, true]) {
      const port80 = serverBlocks(site(demo, ready)).find((b) => b.includes('listen 80'))!;
      expect(port80).toContain('server_name demo.example.org;');
      expect(port80).toContain('location ^~ /.well-known/acme-challenge/ {\n        root /var/www/letsencrypt;');
      expect(port80).toContain('location = /.ops/slot {\n        default_type text/plain;\n        if ($remote_addr != $server_addr) {\n            return 403;\n        }\n        return 200 $ops_slot_catalogage_demo;');
    }
    expect(site(demo, false)).not.toContain('listen 443');
  });

  it("self-signed: the app's own certificate; no domain: the catch-all default server", () => {
    const demo = load('demo', { ...DEMO, tls: { mode: 'self-signed' } });
    expect(site(demo, true)).toContain('ssl_certificate /etc/ssl/catalogage-demo/demo.example.org.crt;\n    ssl_certificate_key /etc/ssl/catalogage-demo/demo.example.org.key;');
    const { domain: _, ...noDomain } = DEMO;
    const alone = load('demo', noDomain);
    expect(site(alone, true)).toContain('listen 80 default_server;\n    listen [::]:80 default_server;\n    server_name _;');
  });

  it('upstreams and the slot variable are named after the app: two apps never define the same', () => {
    const staging = upstreams(load('staging', STAGING), 'green', '');
    const demo = upstreams(load('demo', DEMO), 'blue', '');
    expect(staging).toContain('upstream catalogage-staging_client {\n    server 127.0.0.1:3001;');
    expect(staging).toContain('map "" $ops_slot_catalogage_staging {\n    default "green";');
    expect(demo).toContain('upstream catalogage-demo_client {\n    server 127.0.0.1:4000;');
    const names = (t: string) => [...t.matchAll(/^(?:upstream (\S+)|map "" \$(\S+))/gm)].map((m) => m[1] ?? m[2]);
    expect(names(staging).filter((n) => names(demo).includes(n))).toEqual([]);
  });

  it('for any set of environments accepted on one host: one default server per port, distinct server names', () => {
    const sets: Record<string, Record<string, unknown>>[] = [
      { staging: STAGING, demo: DEMO },
      { staging: { ...STAGING, nginx: { default_server: true } }, demo: DEMO, qa: config('qa', [5579, 5000], { domain: 'qa.example.org', tls: { mode: 'self-signed' } }) },
      { demo: (({ domain: _, ...c }) => c)(DEMO) },
    ];
    for (const envs of sets) {
      const root = project(envs);
      const loaded = Object.keys(envs).map((n) => resolveTarget(loadEnvironment(n, root)));
      expect(loaded.flatMap((e) => hostSharing(e).collisions)).toEqual([]);
      const blocks = loaded.flatMap((e) => serverBlocks(site(e, true)));
      for (const port of ['80', '443']) {
        const on = blocks.filter((b) => new RegExp(`listen ${port}[ ;]`).test(b));
        expect(on.filter((b) => b.includes('default_server')).length).toBeLessThanOrEqual(1);
        const names = on.map((b) => /server_name (\S+);/.exec(b)![1]);
        expect(new Set(names).size).toBe(names.length);
      }
    }
  });
});

describe('day-2 commands of one app on a shared host', () => {
  const root = project({ staging: { ...STAGING, tls: { mode: 'letsencrypt', email: 'ops@example.org' } }, demo: { ...DEMO, tls: { mode: 'letsencrypt', email: 'ops@example.org' } } });
  const staging = resolveTarget(loadEnvironment('staging', root));

  it("status: the app's own site not enabled is a problem, and another app's answer is not this one serving", () => {
    const h = parseHostStatus(staging, { name: 'web1', address: VM.address }, result(report({ site_enabled: 'no', site: '200' })));
    expect(h.problems).toContain('the nginx site of catalogage-staging is not enabled (/etc/nginx/sites-enabled/catalogage-staging is missing): https://staging.example.org/ is answered by another site, if any (run: ops provision staging)');
    expect(servingHosts([{ ...h, health: [] }])).toEqual([]);
    const enabled = parseHostStatus(staging, { name: 'web1', address: VM.address }, result(report({ site_enabled: 'yes', site: '200' })));
    expect(servingHosts([{ ...enabled, health: [] }])).toHaveLength(1);
  });

  it('status warns about a collision the next provision or deploy would refuse', async () => {
    const r = project({ staging: STAGING, demo: { ...DEMO, domain: 'staging.example.org' } });
    const env = loadEnvironment('staging', r);
    const connector: OpsContext['connector'] = async (_e, host) => new RecordingRemote(host.name, 'deploy', 'x', () => ({ stdout: report() }));
    const st = await status({ root: r, reporter: new MemoryReporter(), processEnv: {}, connector }, env);
    expect(st.warnings).toContainEqual(expect.stringMatching(/^configuration: environments staging and demo share 203\.0\.113\.20 .*both take domain staging\.example\.org/));
  });

  it("logs: the site's own nginx logs, not the host-wide ones the other apps share (those only for a site without its own)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-shared-logs-'));
    writeFileSync(join(dir, 'error.log'), 'host-wide error\n');
    writeFileSync(join(dir, 'access.log'), 'GET / demo.example.org\n');
    // Provisioned for staging (provision's marker, here in the scratch directory).
    writeFileSync(join(dir, 'provisioned'), '2026-11-01T00:00:00Z\n');
    const run = () => execFileSync('bash', ['-s'], { input: scriptText(logsStep(staging, { programs: [], nginx: ['error', 'access'], slots: 'live', lines: 5 })).replaceAll('/var/log/nginx', dir).replaceAll(`${staging.layout.state}/provisioned`, join(dir, 'provisioned')), encoding: 'utf8' });
    expect(run().trim().split('\n').filter((l) => l !== START_MARKER)).toEqual(['nginx.error | host-wide error', 'nginx.access | GET / demo.example.org']);
    writeFileSync(join(dir, 'catalogage-staging.error.log'), 'staging error\n');
    writeFileSync(join(dir, 'catalogage-staging.access.log'), 'GET / staging.example.org\n');
    expect(run().trim().split('\n').filter((l) => l !== START_MARKER)).toEqual(['nginx.error | staging error', 'nginx.access | GET / staging.example.org']);
  });

  it("certs: the sibling's certificate is not listed as this environment's; a forgotten one still is", () => {
    const live = mkdtempSync(join(tmpdir(), 'ops-shared-live-'));
    for (const name of ['staging.example.org', 'demo.example.org', 'old.example.org']) {
      mkdirSync(join(live, name));
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-subj', `/CN=${name}`, '-keyout', join(live, name, 'privkey.pem'), '-out', join(live, name, 'fullchain.pem')], { stdio: 'ignore' });
    }
    const script = scriptText(listCertificates(staging, ['demo.example.org'])).replaceAll('/etc/letsencrypt/live', live);
    const out = execFileSync('bash', ['-s'], { input: script, encoding: 'utf8' });
    const certs = parseCerts({ stdout: out, stderr: '', code: 0, durationMs: 0, reports: parseReports(out) }, new Date());
    expect(certs.map((c) => c.path)).toEqual([join(live, 'staging.example.org', 'fullchain.pem'), join(live, 'old.example.org', 'fullchain.pem')]);
  }, 30_000);
});
