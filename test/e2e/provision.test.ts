// Issue 4's checks on real Debian hosts: a bare host provisioned, then again with nothing to change;
// nginx, supervisor, runtimes and the app user in place; a broken nginx template refused with the previous
// configuration still serving; TLS from an ACME server (pebble) served through nginx; self-signed mode.
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provision } from '../../core/ops/provision.ts';
import { formatPing, ping } from '../../core/ops/ping.ts';
import { rollback } from '../../core/ops/rollback.ts';
import { status } from '../../core/ops/status.ts';
import { certificates, formatCerts } from '../../core/ops/certs.ts';
import { deploy } from '../../core/ops/deploy.ts';
import { auditLog, formatAudit, formatLock, formatReleases, getLockStatus, listReleases } from '../../core/ops/records.ts';
import { resolveTarget } from '../../core/target.ts';
import { quote } from '../../core/shell.ts';
import { MemoryReporter } from '../../core/report.ts';
import type { OpsError } from '../../core/errors.ts';
import { downHost, ensurePebble, npmRegistryUrl, pypiIndexUrl, sshRun, upHost, type Host } from '../hosts/index.ts';
import { appRepo, get, makeProject, visit, readyHost, testConfig, RELOAD_NGINX, untilFree, untilListening, type TestProject } from './support.ts';

/**
 * GET https://<domain>/ on the host's address, verifying the served certificate against `ca`. A connection of its own
 * (agent: false): the global agent keeps sockets alive and caches TLS sessions, and a resumed session has no peer
 * certificate to read (getPeerCertificate gives {}), nor does a reused socket show the certificate served now.
 */
function httpsGet(address: string, domain: string, ca: string, path = '/'): Promise<{ status: number; subject: string; issuer: string; location?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address, port: 443, path, servername: domain, headers: { Host: domain }, ca, timeout: 10_000, agent: false }, (res) => {
      const cert = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, subject: String(cert.subjectaltname ?? ''), issuer: String(cert.issuer?.CN ?? ''), location: res.headers.location }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** GET http://<name><path> on the host's address: its status and Location (a redirect is not followed). */
function httpGet(address: string, name: string, path: string): Promise<{ status: number; location?: string }> {
  return new Promise((resolve, reject) =>
    httpRequest({ host: address, path, headers: { Host: name }, agent: false }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, location: res.headers.location });
    })
      .on('error', reject)
      .end(),
  );
}

describe.sequential('provision a bare bookworm host', () => {
  let host: Host;
  let project: TestProject;

  beforeAll(async () => {
    host = await upHost({ name: `prov${process.pid % 1000}`, fresh: true, owner: process.env.OPS_TESTHOSTS_OWNER });
    project = makeProject('e2e', testConfig([host], await appRepo(), 'postgresql://unused'));
  }, 600_000);
  afterAll(async () => {
    if (host) await downHost(host.name, { purge: true });
    project?.cleanup();
  });

  it('before the first provision: ping says the host is not provisioned and what to run next (no ✓, ok for the exit); rollback and status say so first, not a symptom (supervisord, nginx)', async () => {
    const pinged = await ping(project.ctx(), project.env());
    expect(pinged[0]).toMatchObject({ ok: true, provisioned: false, problems: [], next: [{ fix: 'ops provision e2e, then ops deploy e2e' }] });
    expect(formatPing(pinged)).toMatch(/^! .*\n {4}→ .*: not provisioned for e2e yet: deploy, rollback and initdata refuse until it is; next: ops provision e2e, then ops deploy e2e$/);
    const e = (await rollback(project.ctx(), project.env()).catch((x: unknown) => x)) as OpsError;
    expect(e.message).toMatch(/^\S+ is not provisioned for e2e \(run: ops provision e2e\): nothing was changed/);
    expect(e.message).not.toMatch(/supervisord/);
    const st = await status(project.ctx(), project.env());
    // The one problem: what else is missing (nginx's site, supervisord, a release) is only a symptom of it.
    expect(st.hosts[0]!.problems).toEqual(['not provisioned for e2e (run: ops provision e2e)']);
  }, 300_000);

  it('before the first provision: a refused deploy made nothing there (no .ops directory); releases, audit, lock status say the host is not provisioned', async () => {
    const e = (await deploy(project.ctx(), project.env(), {}).catch((x: unknown) => x)) as OpsError;
    expect(e.message).toMatch(/^\S+ is not provisioned for e2e \(run: ops provision e2e\): nothing was sent, built or started/);
    const base = resolveTarget(project.env()).layout.base;
    expect((await sshRun(host, `test -e ${base}/.ops && echo made || echo nothing`)).stdout.trim()).toBe('nothing');
    const note = `${host.name}: not provisioned for e2e (run: ops provision e2e)`;
    expect(formatReleases(await listReleases(project.ctx(), project.env()))).toBe(note);
    expect(formatAudit(await auditLog(project.ctx(), project.env(), 20))).toBe(`${note}: no audit log (nothing ran there)`);
    expect(formatLock(await getLockStatus(project.ctx(), project.env()))).toBe(`${note}: no lock (nothing ran there)`);
  }, 300_000);

  it('installs and configures everything, then a second run changes nothing', async () => {
    const first = await provision(project.ctx(), project.env());
    expect(first[0]!.items.some((i) => i.state === 'changed')).toBe(true);
    const reporter = new MemoryReporter();
    const second = await provision(project.ctx(reporter), project.env());
    expect(second[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
    expect(second[0]!.items.map((i) => i.name)).toEqual(['packages', 'app user and directories', 'package indexes', 'runtimes', 'supervisor', 'nginx']);
    expect(reporter.text()).not.toMatch(/installing:/);
  }, 900_000);

  it('a program added to the config after a provision: provision again gives it its upstream at the slot live there, the others as they were (nginx refuses a site naming an upstream it lacks: "host not found in upstream")', async () => {
    await provision(project.ctx(), project.env());
    const file = '/etc/nginx/ops-upstreams/sample.conf';
    const before = (await sshRun(host, `sudo cat ${file}`)).stdout;
    // green live, as after a deploy: what provision must not move
    const green = before.replace('default "blue";', 'default "green";');
    await sshRun(host, `printf '%s' ${quote(green)} | sudo tee ${file} >/dev/null`);
    const config = testConfig([host], await appRepo(), 'postgresql://unused');
    const programs = config.programs as Record<string, unknown>;
    project.write({ ...config, programs: { ...programs, worker: { command: '/bin/true', port: 3700 } }, routes: { '/': 'client', '/api/': 'server', '/worker/': 'worker' } });
    try {
      const again = await provision(project.ctx(), project.env());
      expect(again[0]!.items).toEqual(expect.arrayContaining([{ name: 'nginx', state: 'changed' }]));
      const after = (await sshRun(host, `sudo cat ${file}; sudo nginx -t 2>&1 | tail -n 1`)).stdout;
      expect(after.startsWith(green)).toBe(true);
      expect(after).toContain(`upstream sample_worker {\n    server 127.0.0.1:${resolveTarget(project.env()).port('worker', 'green')};`);
      expect(after).toContain('test is successful');
      // provision again: nothing to add
      expect((await provision(project.ctx(), project.env()))[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
    } finally {
      project.write(config);
      await sshRun(host, `printf '%s' ${quote(before)} | sudo tee ${file} >/dev/null`);
      await provision(project.ctx(), project.env());
    }
  }, 900_000);

  it('leaves nginx answering with a valid config, supervisor running, pinned runtimes by absolute path and the app user', async () => {
    const res = await visit(host);
    expect(res.headers.server).toBe('nginx'); // server_tokens off: no version
    expect(res.headers['x-frame-options']).toBe('DENY');
    const check = await sshRun(
      host,
      [
        'sudo nginx -t 2>&1 | tail -n1',
        'sudo supervisorctl pid',
        '/usr/bin/python3.11 --version',
        '/usr/bin/node --version',
        'id -un sample; getent passwd sample | cut -d: -f7',
        'stat -c "%a %U" /srv/sample /srv/sample/releases /srv/sample/shared',
        '[ -e /etc/nginx/sites-enabled/default ] && echo default-site || echo no-default-site',
        'systemctl is-enabled nginx supervisor',
        'sudo stat -c "%a %U" /home/sample/.npmrc /home/sample/.config/pip/pip.conf',
        'sudo cat /home/sample/.npmrc /home/sample/.config/pip/pip.conf',
      ].join('; '),
    );
    const out = check.stdout;
    expect(out).toContain('test is successful');
    expect(out).toMatch(/^\d+$/m); // supervisord's pid
    expect(out).toMatch(/Python 3\.11\.\d+/);
    expect(out).toMatch(/v18\.\d+\.\d+/);
    expect(out).toContain('/usr/sbin/nologin');
    expect(out).toContain('755 root\n750 sample\n750 sample');
    expect(out).toContain('no-default-site');
    expect(out).toContain('enabled\nenabled');
    // The package indexes of the environment (the lab's caches), for the app user only.
    expect(out).toContain('600 sample\n600 sample');
    expect(out).toContain(`registry=${npmRegistryUrl}`);
    expect(out).toContain(`index-url = ${pypiIndexUrl}\ntrusted-host = ${new URL(pypiIndexUrl).host}`);
  }, 60_000);

  it('refuses a broken nginx template with nginx\'s message and keeps the previous configuration serving', async () => {
    const before = (await get(host)).status;
    writeFileSync(join(project.root, 'environments', 'e2e', 'broken.conf'), 'server {\n    listen 80;\n    proxy_pass_nowhere on;\n}\n');
    const config = testConfig([host], await appRepo(), 'postgresql://unused');
    project.write({ ...config, nginx: { site_template: 'broken.conf' } });
    try {
      const err = await provision(project.ctx(), project.env()).catch((e: Error) => e);
      expect((err as Error).message).toMatch(/nginx rejected the new configuration[\s\S]*unknown directive "proxy_pass_nowhere"/);
      const check = await sshRun(host, 'sudo nginx -t 2>&1 | tail -n1; sudo grep -c proxy_pass_nowhere /etc/nginx/sites-available/sample || true');
      expect(check.stdout).toContain('test is successful');
      expect(check.stdout.trim().endsWith('0')).toBe(true);
      expect((await get(host)).status).toBe(before);
    } finally {
      project.write(config);
    }
  }, 120_000);

  it('refuses a runtime pin the host does not have, naming both versions', async () => {
    const config = testConfig([host], await appRepo(), 'postgresql://unused');
    project.write({ ...config, runtimes: { python: { strategy: 'debian', version: '3.11' }, node: { strategy: 'debian', version: '20' } } });
    try {
      const err = await provision(project.ctx(), project.env()).catch((e: Error) => e);
      expect((err as Error).message).toMatch(/runtimes pin node 20 but \/usr\/bin\/node is version 18\./);
    } finally {
      project.write(config);
    }
  }, 120_000);

  it("says which Python the host's Debian release ships when strategy debian asks for another (apt cannot find the package)", async () => {
    const config = testConfig([host], await appRepo(), 'postgresql://unused');
    project.write({ ...config, runtimes: { python: { strategy: 'debian', version: '3.12' }, node: { strategy: 'debian', version: '18' } } });
    try {
      const err = (await provision(project.ctx(), project.env()).catch((e: Error) => e)) as OpsError;
      expect(err.message).toMatch(/step "packages" on \S+ failed[\s\S]*python3\.12/);
      expect(err.hint).toMatch(/runs Debian 12 \(bookworm\), whose packages cannot give strategy debian's runtimes\.python 3\.12: it has Python 3\.11 only: .*pyenv/);
    } finally {
      project.write(config);
    }
  }, 120_000);

  // nginx -t does not bind ports, so a port another server holds passes it; the running master then refuses the
  // reload and keeps the previous configuration. Provision must fail, not report TLS that is not served.
  it('fails, naming the taken port, when the running nginx refuses what nginx -t accepted, and puts the files back', async () => {
    const config = testConfig([host], await appRepo(), 'postgresql://unused');
    const holder = await sshRun(host, 'sudo sh -c "python3 -m http.server 443 >/dev/null 2>&1 </dev/null & echo \\$!"');
    const pid = holder.stdout.trim();
    expect(pid).toMatch(/^\d+$/);
    await sshRun(host, untilListening(443)); // (else nginx may take the port first)
    project.write({ ...config, domain: 'busy.test', tls: { mode: 'self-signed' } });
    try {
      const before = await sshRun(host, 'sudo md5sum /etc/nginx/sites-available/sample');
      const err = await provision(project.ctx(), project.env()).catch((e: Error) => e);
      expect((err as Error).message).toMatch(/nginx did not apply the new configuration[\s\S]*443[\s\S]*Address already in use/);
      const after = await sshRun(host, 'sudo md5sum /etc/nginx/sites-available/sample; sudo nginx -t 2>&1 | tail -n1');
      expect(after.stdout).toContain(before.stdout.trim());
      expect(after.stdout).toContain('test is successful');
      expect((await visit(host)).headers.server).toBe('nginx');
    } finally {
      await sshRun(host, `sudo kill ${pid}; ${untilFree(443)}`);
      project.write(config);
    }
    // With the port free, the same configuration applies.
    project.write({ ...config, domain: 'busy.test', tls: { mode: 'self-signed' } });
    try {
      await provision(project.ctx(), project.env());
      const served = await sshRun(host, 'echo | openssl s_client -connect 127.0.0.1:443 -servername busy.test 2>/dev/null | openssl x509 -noout -subject');
      expect(served.stdout).toContain('busy.test');
    } finally {
      project.write(config);
    }
  }, 300_000);
});

describe.sequential('TLS', () => {
  let host: Host;
  let project: TestProject;
  beforeAll(async () => {
    host = await readyHost('tls');
  }, 900_000);
  afterAll(async () => {
    if (host) await downHost(host.name, { purge: true });
    project?.cleanup();
  });

  /** The environment of the Let's Encrypt cases: `domain` served by the host, its certificate from the lab's pebble. */
  const letsencryptConfig = async (pebble: Awaited<ReturnType<typeof ensurePebble>>, domain: string) =>
    testConfig([host], await appRepo(), 'postgresql://unused', {
      domain,
      tls: { mode: 'letsencrypt', email: 'ops@example.org', acme_server: pebble.directoryUrl, acme_ca_file: pebble.apiCaFile },
    });

  it('gets a certificate from the ACME server over HTTP-01 and serves it through nginx, then changes nothing', async () => {
    const pebble = await ensurePebble();
    const domain = `app${process.pid}.test`;
    await pebble.addHostName(domain, host.address);
    project = makeProject('e2e', await letsencryptConfig(pebble, domain));
    const first = await provision(project.ctx(), project.env());
    expect(first[0]!.items).toEqual(expect.arrayContaining([{ name: 'certificate', state: 'changed' }]));
    const res = await httpsGet(host.address, domain, readFileSync(pebble.rootCaFile, 'utf8'));
    expect(res.subject).toContain(`DNS:${domain}`);
    expect(res.issuer).toMatch(/Pebble/i);
    // Plain http redirects to https, except the ACME challenge path.
    const plain = await httpGet(host.address, domain, '/x');
    expect(plain).toEqual({ status: 301, location: `https://${domain}/x` });
    const hooks = await sshRun(host, 'ls /etc/letsencrypt/renewal-hooks/deploy/; stat -c %a /etc/nginx/dhparams.pem');
    expect(hooks.stdout).toContain('ops-pipeline-reload-nginx');
    const again = await provision(project.ctx(), project.env());
    expect(again[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
  }, 600_000);

  it("the site's names changed while the new ones get no certificate (their DNS not at the host yet): the live site keeps serving its names over https, the new ones answer the ACME challenge only, each said; once issued, the site moves and the certificate ops issued for the old names is deleted", async () => {
    const pebble = await ensurePebble();
    const domain = `app${process.pid}.test`;
    const config = await letsencryptConfig(pebble, domain);
    const moved = `moved${process.pid}.test`;
    const alias = `www.${domain}`;
    const ca = readFileSync(pebble.rootCaFile, 'utf8');
    const serial = async (name: string) => (await sshRun(host, `sudo openssl x509 -in /etc/letsencrypt/live/${name}/fullchain.pem -noout -serial 2>&1 || true`)).stdout.trim();
    const before = await serial(domain);
    const failure = async () => ((await provision(project.ctx(), project.env()).catch((e: unknown) => e)) as OpsError).message;
    const challenge = async (name: string) => {
      await sshRun(host, 'printf ok | sudo tee /var/www/letsencrypt/.well-known/acme-challenge/e2e-probe >/dev/null');
      return (await httpGet(host.address, name, '/.well-known/acme-challenge/e2e-probe')).status;
    };
    try {
      // A name added beside the domain (no DNS for it at the ACME server): the domain keeps its certificate and https.
      project.write({ ...config, aliases: [alias] });
      const added = await failure();
      expect(added).toContain(`no certificate yet for ${alias}`);
      expect(added).toContain(`the site still serves ${domain} as before`);
      expect((await httpsGet(host.address, domain, ca)).subject).toContain(`DNS:${domain}`);
      expect(await serial(domain)).toBe(before);
      expect(await challenge(alias)).toBe(200);
      // The domain replaced: the same.
      project.write({ ...config, domain: moved });
      const replaced = await failure();
      expect(replaced).toContain(`no certificate yet for ${moved}`);
      expect(replaced).toContain(`the site still serves ${domain} as before`);
      expect((await httpsGet(host.address, domain, ca)).subject).toContain(`DNS:${domain}`);
      expect(await challenge(moved)).toBe(200);
      // Its DNS at the host: issued, the site moves, the old certificate ops issued is deleted (the timer would fail on it).
      await pebble.addHostName(moved, host.address);
      await provision(project.ctx(), project.env());
      expect((await httpsGet(host.address, moved, ca)).subject).toContain(`DNS:${moved}`);
      expect(await serial(domain)).toMatch(/No such file|Could not open/);
      expect((await sshRun(host, 'sudo ls /etc/letsencrypt/renewal/')).stdout).not.toContain(`${domain}.conf`);
      const again = await provision(project.ctx(), project.env());
      expect(again[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
    } finally {
      project.write(config);
      await pebble.removeHostName(moved).catch(() => undefined);
    }
    // Back to the domain (the cases below need its certificate).
    await provision(project.ctx(), project.env());
    expect((await httpsGet(host.address, domain, ca)).subject).toContain(`DNS:${domain}`);
  }, 600_000);

  it("Let's Encrypt as it really behaves: a key replaced by hand, a user's redirect on port 80, the ACME server down, the account key lost; each said, nginx never left naming a key that is not its certificate's", async () => {
    const pebble = await ensurePebble();
    const config = project.env().config;
    const domain = config.domain!;
    const live = `/etc/letsencrypt/live/${domain}`;
    const ca = readFileSync(pebble.rootCaFile, 'utf8');
    const nginxOk = async () => expect((await sshRun(host, 'sudo nginx -t 2>&1 | tail -n1')).stdout).toContain('test is successful');
    const failure = async () => ((await provision(project.ctx(), project.env()).catch((e: unknown) => e)) as OpsError).message;
    // A key replaced by hand (written through certbot's link) and a server block of the user's redirecting the name on port 80.
    await sshRun(host, `sudo sh -c ${quote(`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 > ${live}/privkey.pem 2>/dev/null && printf '%s\n' 'server { listen 80; server_name ${domain}; return 301 https://$host$request_uri; }' > /etc/nginx/conf.d/zz-redirect.conf`)}`);
    const redirected = await failure();
    expect(redirected).toContain(`certbot was not run for ${domain}: the ACME server's HTTP-01 request would fail: http://${domain}/.well-known/acme-challenge/ on this host answers`);
    expect(redirected).toContain('/etc/nginx/conf.d/zz-redirect.conf');
    await nginxOk();
    await sshRun(host, `sudo rm /etc/nginx/conf.d/zz-redirect.conf && sudo ${RELOAD_NGINX}`);
    const renewed = await provision(project.ctx(), project.env());
    expect(renewed[0]!.items).toEqual(expect.arrayContaining([{ name: 'certificate', state: 'changed' }]));
    expect((await httpsGet(host.address, domain, ca)).subject).toContain(`DNS:${domain}`);
    await nginxOk();
    // The account key lost, and the ACME server not answering: the current certificate keeps serving, said.
    const serial = (await sshRun(host, `sudo openssl x509 -in ${live}/fullchain.pem -noout -serial`)).stdout;
    await sshRun(host, 'sudo rm -rf /etc/letsencrypt/accounts');
    project.write({ ...config, tls: { ...config.tls, acme_server: pebble.directoryUrl.replace(/:\d+\//, ':14999/') } });
    const down = await failure();
    expect(down).toContain(`certbot could not get a certificate for ${domain}: the ACME server https://`);
    expect(down).toContain('could not be reached from this host. nginx keeps serving the current certificate');
    expect((await httpsGet(host.address, domain, ca)).subject).toContain(`DNS:${domain}`);
    expect((await sshRun(host, `sudo openssl x509 -in ${live}/fullchain.pem -noout -serial`)).stdout).toBe(serial);
    // The ACME server back: the lost account is replaced, the certificate renewed, nothing left for the timer to fail on.
    project.write(config);
    await provision(project.ctx(), project.env());
    expect((await sshRun(host, `sudo openssl x509 -in ${live}/fullchain.pem -noout -serial`)).stdout).not.toBe(serial);
    expect((await sshRun(host, `sudo find /etc/letsencrypt/accounts -name private_key.json | wc -l`)).stdout.trim()).toBe('1');
    const again = await provision(project.ctx(), project.env());
    expect(again[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
    await nginxOk();
  }, 600_000);

  it('an alias added (www.<domain>): the next provision expands the certificate to name it (certbot --expand, HTTP-01 for the alias); the alias redirects permanently to https://<domain>, path and query kept', async () => {
    const pebble = await ensurePebble();
    // The settings of the first test (what the one before restores), written again: this one needs only its certificate.
    const domain = `app${process.pid}.test`;
    const config = await letsencryptConfig(pebble, domain);
    const alias = `www.${domain}`;
    await pebble.addHostName(alias, host.address);
    try {
      const ca = readFileSync(pebble.rootCaFile, 'utf8');
      const serial = (await sshRun(host, `sudo openssl x509 -in /etc/letsencrypt/live/${domain}/fullchain.pem -noout -serial`)).stdout;
      project.write({ ...config, aliases: [alias] });
      const expanded = await provision(project.ctx(), project.env());
      expect(expanded[0]!.items).toEqual(expect.arrayContaining([{ name: 'certificate', state: 'changed' }]));
      // The same lineage (the files nginx names), a new certificate naming both.
      expect((await sshRun(host, `sudo openssl x509 -in /etc/letsencrypt/live/${domain}/fullchain.pem -noout -serial`)).stdout).not.toBe(serial);
      const site = await httpsGet(host.address, domain, ca, '/x?y=1');
      expect(site.subject).toContain(`DNS:${domain}`);
      expect(site.subject).toContain(`DNS:${alias}`);
      // https://<alias>: the certificate verifies for the alias's name (SNI), and the answer is the redirect.
      const secure = await httpsGet(host.address, alias, ca, '/x?y=1');
      expect(secure).toMatchObject({ status: 301, location: `https://${domain}/x?y=1` });
      const plain = await httpGet(host.address, alias, '/x?y=1');
      expect(plain).toEqual({ status: 301, location: `https://${domain}/x?y=1` });
      const again = await provision(project.ctx(), project.env());
      expect(again[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
    } finally {
      project.write(config);
      await pebble.removeHostName(alias).catch(() => undefined);
    }
  }, 600_000);

  it("a server block of the host's own listening on its address itself (listen <address>:80, taken there before the site's listen 80) answers the ACME server: said before certbot runs, naming its file; one on <address>:443 is what visitors get, and ops certs says so", async () => {
    const pebble = await ensurePebble();
    const domain = `app${process.pid}.test`;
    const config = await letsencryptConfig(pebble, domain);
    const alias = `bound.${domain}`;
    await pebble.addHostName(alias, host.address);
    const admin = '/etc/nginx/conf.d/zz-bound.conf';
    const put = (text: string) => sshRun(host, `printf '%s\n' ${quote(text)} | sudo tee ${admin} >/dev/null && sudo ${RELOAD_NGINX}`);
    try {
      await put(`server { listen ${host.address}:80; server_name _; return 404; }`);
      project.write({ ...config, aliases: [alias] });
      const err = (await provision(project.ctx(), project.env()).catch((e: unknown) => e)) as OpsError;
      // asked at 127.0.0.1, the site answered: certbot ran, and the ACME server, at the host's address, got the 404
      expect(err.message).toContain(`certbot was not run for ${domain}, ${alias}: the ACME server's HTTP-01 request would fail: http://${domain}/.well-known/acme-challenge/ on this host answers HTTP 404 (asked at ${host.address})`);
      expect(err.message).toContain(`listening on ${host.address} itself, taken by nginx for every name asked there before the sites listening on every address: ${admin}`);
      // One on <address>:443 with a certificate of its own: what visitors get there, not the site's (asked at 127.0.0.1, the site's).
      await sshRun(host, `sudo sh -c 'openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj /CN=bound -keyout /etc/nginx/zz-bound.key -out /etc/nginx/zz-bound.crt 2>/dev/null'`);
      await put(`server { listen ${host.address}:443 ssl; ssl_certificate /etc/nginx/zz-bound.crt; ssl_certificate_key /etc/nginx/zz-bound.key; return 418; }`);
      project.write(config);
      const listed = await certificates(project.ctx(), project.env());
      const bound = (await sshRun(host, 'sudo openssl x509 -in /etc/nginx/zz-bound.crt -noout -serial')).stdout.trim().replace(/^serial=/, '');
      expect(listed.hosts[0]!.servedSerial).toBe(bound.toUpperCase());
      expect(formatCerts(listed)).toContain(`nginx serves serial ${bound.toUpperCase()}: reload nginx; if it still does, another server block takes the site's https visitors: one listening on the host's address itself`);
      // status asks where visitors arrive too: the bound server's answer, not the site's (asked at 127.0.0.1).
      expect((await status(project.ctx(), project.env())).hosts[0]!.site?.status).toBe(418);
    } finally {
      await sshRun(host, `sudo rm -f ${admin} /etc/nginx/zz-bound.key /etc/nginx/zz-bound.crt && sudo ${RELOAD_NGINX}`);
      project.write(config);
      await pebble.removeHostName(alias).catch(() => undefined);
    }
    const served = await certificates(project.ctx(), project.env());
    expect(served.hosts[0]!.servedSerial).toBe(served.hosts[0]!.certificates[0]!.serial);
  }, 600_000);

  it('a domain of 121 characters (DNS takes up to 253): nginx accepts ops\'s nginx.conf with it and serves it (its bucket of 128 held names of 110)', async () => {
    const domain = `${'a'.repeat(60)}.${'b'.repeat(55)}.test`;
    project.write(testConfig([host], await appRepo(), 'postgresql://unused', { domain }));
    await provision(project.ctx(), project.env());
    const out = await sshRun(host, `sudo nginx -t 2>&1 | tail -n1; curl -s -o /dev/null -w '%{http_code}' -H 'Host: ${domain}' http://127.0.0.1/.ops/slot`);
    expect(out.stdout).toContain('test is successful');
    expect(out.stdout.trim().endsWith('200')).toBe(true);
  }, 600_000);

  it('self-signed mode: a certificate for the domain, made on the host', async () => {
    const domain = `self${process.pid}.test`;
    project.write(testConfig([host], await appRepo(), 'postgresql://unused', { domain, tls: { mode: 'self-signed' } }));
    await provision(project.ctx(), project.env());
    const cert = await sshRun(host, `sudo openssl x509 -in /etc/ssl/sample/${domain}.crt -noout -subject -ext subjectAltName`);
    expect(cert.stdout).toContain(`DNS:${domain}`);
    const served = await sshRun(host, `echo | openssl s_client -connect 127.0.0.1:443 -servername ${domain} 2>/dev/null | openssl x509 -noout -subject`);
    expect(served.stdout).toContain(domain);
  }, 300_000);
});

describe.sequential('provision and deploy on bullseye (the release the old VMs run), Node.js from the npm registry', () => {
  let host: Host;
  let project: TestProject;
  beforeAll(async () => {
    host = await upHost({ name: `bull${process.pid % 1000}`, suite: 'bullseye', fresh: true, owner: process.env.OPS_TESTHOSTS_OWNER });
  }, 600_000);
  afterAll(async () => {
    if (host) await downHost(host.name, { purge: true });
    project?.cleanup();
  });

  // Debian 11's Node 12 cannot run the app's SvelteKit client: a current Node.js comes from the environment's
  // npm registry (here the lab's cache), as a team pinning its own version would do.
  it("provisions with Debian 11's Python 3.9 and a current Node.js from the npm registry, then deploys the app with them", async () => {
    const { deploy } = await import('../../core/ops/deploy.ts');
    const { testDatabase } = await import('./support.ts');
    project = makeProject(
      'e2e',
      testConfig([host], await appRepo(), await testDatabase(`bullseye_${process.pid}`), {
        runtimes: { python: { strategy: 'debian', version: '3.9' }, node: { strategy: 'npm', version: '24.22.3' } },
      }),
    );
    const result = await provision(project.ctx(), project.env());
    expect(result[0]!.os).toBe('Debian bullseye');
    expect(result[0]!.runtimes.join('\n')).toMatch(/python \/usr\/bin\/python3\.9 3\.9\.\d+\nnode \/opt\/ops-node\/v24\.22\.3\/bin\/node 24\.22\.3\nnpm \/opt\/ops-node\/v24\.22\.3\/bin\/npm 10\.9\.4/);
    const check = await sshRun(host, 'dpkg -l nodejs 2>/dev/null | grep -c ^ii || true; stat -c "%U %a" /opt/ops-node/v24.22.3/bin/node');
    expect(check.stdout).toBe('0\nroot 755\n'); // no Debian nodejs; root-owned, world-executable
    await deploy(project.ctx(), project.env(), { ref: 'v1' });
    expect((await get(host)).body).toContain('Version 1.0.0');
  }, 1_500_000);

  it("the seed's pin, Node.js 16, installs the same way (with npm 9), beside the other", async () => {
    const config = testConfig([host], await appRepo(), 'postgresql://unused', {
      runtimes: { python: { strategy: 'debian', version: '3.9' }, node: { strategy: 'npm', version: '16.20.2' } },
    });
    project.write(config);
    const result = await provision(project.ctx(), project.env());
    expect(result[0]!.items).toEqual(expect.arrayContaining([{ name: 'runtimes', state: 'changed' }]));
    expect(result[0]!.runtimes.join('\n')).toMatch(/node \/opt\/ops-node\/v16\.20\.2\/bin\/node 16\.20\.2\nnpm \/opt\/ops-node\/v16\.20\.2\/bin\/npm 9\.9\.4/);
    const r = await sshRun(host, '/opt/ops-node/v16.20.2/bin/node -e "console.log(process.version)"; /opt/ops-node/v24.22.3/bin/node --version');
    expect(r.stdout).toBe('v16.20.2\nv24.22.3\n');
    const again = await provision(project.ctx(), project.env());
    expect(again[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
  }, 900_000);
});

describe.sequential("provision and deploy on trixie (Debian 13, what new VMs run), Debian's own runtimes", () => {
  let host: Host;
  let project: TestProject;
  beforeAll(async () => {
    host = await upHost({ name: `trix${process.pid % 1000}`, suite: 'trixie', fresh: true, owner: process.env.OPS_TESTHOSTS_OWNER });
  }, 600_000);
  afterAll(async () => {
    if (host) await downHost(host.name, { purge: true });
    project?.cleanup();
  });

  // A bare trixie VM: apt sources in deb822 form only (debian.sources, no sources.list), Python 3.13, Node.js 20.
  it("provisions with Debian 13's Python 3.13 and Node.js 20, then deploys the app with them", async () => {
    const { testDatabase } = await import('./support.ts');
    project = makeProject(
      'e2e',
      testConfig([host], await appRepo(), await testDatabase(`trixie_${process.pid}`), {
        runtimes: { python: { strategy: 'debian', version: '3.13' }, node: { strategy: 'debian', version: '20' } },
      }),
    );
    const result = await provision(project.ctx(), project.env());
    expect(result[0]!.os).toBe('Debian trixie');
    expect(result[0]!.runtimes.join('\n')).toMatch(/python \/usr\/bin\/python3\.13 3\.13\.\d+\nnode \/usr\/bin\/node 20\.\d+\.\d+\nnpm \/usr\/bin\/npm \d+\.\d+\.\d+/);
    await deploy(project.ctx(), project.env(), { ref: 'v1' });
    expect((await get(host)).body).toContain('Version 1.0.0');
  }, 900_000);
});
