// An environment changing over months, on a real provisioned host with the sample app live: TLS turned on,
// then the domain changed. Neither may leave the live site answering the ACME-only "503" site: a deploy (or a
// rollback) run before the provision that gets the new name's certificate keeps what serves, and a provision
// whose certificate request fails leaves the app answering on port 80 for the new name.
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { provision } from '../../core/ops/provision.ts';
import { rollback } from '../../core/ops/rollback.ts';
import { status } from '../../core/ops/status.ts';
import { formatCerts, renewCertificates } from '../../core/ops/certs.ts';
import { MemoryReporter } from '../../core/report.ts';
import { resolveTarget } from '../../core/target.ts';
import { downHost, ensurePebble, sshRun, type Host } from '../hosts/index.ts';
import { appRepo, makeProject, readyHost, testConfig, testDatabase, type TestProject } from './support.ts';

const FIRST = `k9first${process.pid}.test`;
const SECOND = `k9second${process.pid}.test`;
/** A name the ACME server cannot resolve: its HTTP-01 validation fails, as with DNS not yet moved. */
const UNRESOLVED = `k9nodns${process.pid}.test`;

let host: Host;
let project: TestProject;
let base: Record<string, unknown>;
let pebble: Awaited<ReturnType<typeof ensurePebble>>;

/** GET `path` through the host's nginx as a browser asking for `domain` would (https: SNI, verified against the ACME test CA). */
function page(domain: string, { tls = false, path = '/' } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const options = { host: host.address, path, headers: { Host: domain }, timeout: 10_000 };
    const done = (res: import('node:http').IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    };
    const req = tls ? httpsRequest({ ...options, port: 443, servername: domain, ca: readFileSync(pebble.rootCaFile, 'utf8') }, done) : httpRequest({ ...options, port: 80 }, done);
    req.on('error', reject);
    req.end();
  });
}

const letsencrypt = (domain: string) => ({ ...base, domain, tls: { mode: 'letsencrypt', email: 'ops@example.org', acme_server: pebble.directoryUrl, acme_ca_file: pebble.apiCaFile } });

beforeAll(async () => {
  pebble = await ensurePebble();
  host = await readyHost('k9a');
  base = testConfig([host], await appRepo(), await testDatabase(`k9a_${process.pid}`));
  project = makeProject('e2e', base);
  await deploy(project.ctx(), project.env(), { ref: 'v1' });
  await deploy(project.ctx(), project.env(), { ref: 'v2' });
  await pebble.addHostName(FIRST, host.address);
  await pebble.addHostName(SECOND, host.address);
  project.write(letsencrypt(FIRST));
  await provision(project.ctx(), project.env());
  expect((await page(FIRST, { tls: true })).body).toContain('Version 2.0.0');
}, 1_500_000);

afterAll(async () => {
  if (host) await downHost(host.name, { purge: true });
  project?.cleanup();
});

describe.sequential('the domain of a live TLS site changes', () => {
  it('a deploy before the provision that gets the new name its certificate is refused, saying so; the site keeps serving', async () => {
    project.write(letsencrypt(SECOND));
    const err = await deploy(project.ctx(), project.env(), { ref: 'v1', force: true }).then(
      () => undefined,
      (e: Error & { hint?: string }) => e,
    );
    expect(err?.message).toContain(`no TLS certificate for ${SECOND}`);
    expect(`${err?.message} ${err?.hint ?? ''}`).toContain('ops provision e2e');
    const served = await page(FIRST, { tls: true });
    expect(served.status).toBe(200);
    expect(served.body).toContain('Version 2.0.0');
  }, 600_000);

  it('a rollback then keeps the site it finds (with its certificate), and only moves the traffic', async () => {
    await rollback(project.ctx(), project.env());
    const served = await page(FIRST, { tls: true });
    expect(served.status).toBe(200);
    expect(served.body).toContain('Version 1.0.0');
    const st = await status(project.ctx(), project.env());
    expect(st.problems.join('\n')).toContain(`/etc/letsencrypt/live/${SECOND}/fullchain.pem is missing`);
  }, 600_000);

  it('a provision gets the new name its certificate and serves it; again, it changes nothing', async () => {
    await provision(project.ctx(), project.env());
    const served = await page(SECOND, { tls: true });
    expect(served.status).toBe(200);
    expect(served.body).toContain('Version 1.0.0');
    const again = await provision(project.ctx(), project.env());
    expect(again[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
  }, 600_000);

  it('a provision whose certificate request fails (the name not yet resolving) fails saying so; the site keeps serving its name over https, the new name gets only the ACME challenge', async () => {
    project.write(letsencrypt(UNRESOLVED));
    const err = await provision(project.ctx(), project.env()).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toContain(`certbot could not get a certificate for ${UNRESOLVED}: ${UNRESOLVED} must resolve to this host`);
    expect(err?.message).toContain(`the site still serves ${SECOND} as before`);
    // the live site as it was (a failed provision loses nothing): its name, its certificate, its release
    const kept = await page(SECOND, { tls: true });
    expect(kept.status).toBe(200);
    expect(kept.body).toContain('Version 1.0.0');
    // the new name answers the ACME challenge alone until its certificate exists (was: the app over plain http)
    expect((await page(UNRESOLVED)).status).toBe(404);
    const check = await sshRun(host, 'sudo nginx -t 2>&1 | tail -n1');
    expect(check.stdout).toContain('test is successful');
  }, 600_000);
});

describe.sequential('an alias added whose certificate is not issued yet (its DNS not at the host yet)', () => {
  const ALIAS = `www.${SECOND}`;
  /** What nginx gives https://<name>/ at the host: the names of the certificate it hands out for it (SNI), and the status; no verification (the point is which certificate). */
  const served = (name: string): Promise<{ status: number; names: string }> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest({ host: host.address, port: 443, path: '/', servername: name, headers: { Host: name }, rejectUnauthorized: false, agent: false, timeout: 10_000 }, (res) => {
        const cert = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, names: String(cert.subjectaltname ?? '') }));
      });
      req.on('error', reject);
      req.end();
    });
  /** The server_name lines of the site's 443 servers on the host. */
  const siteOn443 = async () => (await sshRun(host, `sudo awk '/listen 443/ { on = 1 } on && /server_name/ { print; on = 0 }' ${resolveTarget(project.env()).layout.nginxSite}`)).stdout;

  it('a deploy after the provision adding it failed serves the names the certificate names only (the alias left out, said), the live site never broken; a rollback too', async () => {
    project.write(letsencrypt(SECOND));
    await provision(project.ctx(), project.env());
    project.write({ ...letsencrypt(SECOND), aliases: [ALIAS] });
    const failed = await provision(project.ctx(), project.env()).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(failed?.message).toContain(`no certificate yet for ${ALIAS}`);
    const reporter = new MemoryReporter();
    const deployed = await deploy(project.ctx(reporter), project.env(), { ref: 'v2' });
    // nginx names no name on 443 the certificate does not name: the alias has no https server of the site
    expect(await siteOn443()).not.toContain(ALIAS);
    expect(deployed.hosts[0]!.notes.join('\n')).toContain(`the TLS certificate there does not name ${ALIAS} yet (aliases added since it was issued), so the site serves ${SECOND} only`);
    expect(deployed.hosts[0]!.notes.join('\n')).toContain('ops provision e2e issues it');
    expect((await sshRun(host, 'sudo nginx -t 2>&1 | tail -n1')).stdout).toContain('test is successful');
    const page2 = await page(SECOND, { tls: true });
    expect(page2.body).toContain('Version 2.0.0');
    expect((await served(SECOND)).names).toContain(`DNS:${SECOND}`);
    // the alias still answers the ACME challenge on port 80 (provision's acme-pending server), for the next provision
    await sshRun(host, 'printf ok | sudo tee /var/www/letsencrypt/.well-known/acme-challenge/e2e-alias >/dev/null');
    expect((await page(ALIAS, { path: '/.well-known/acme-challenge/e2e-alias' })).status).toBe(200);
    const back = await rollback(project.ctx(), project.env());
    expect(back.hosts[0]!.notes.join('\n')).toContain(`does not name ${ALIAS} yet`);
    expect(await siteOn443()).not.toContain(ALIAS);
    expect((await page(SECOND, { tls: true })).status).toBe(200);
  }, 900_000);

  it('ops certs --renew once its DNS is at the host: the certificate names it and the site moves to it, as provision would', async () => {
    await pebble.addHostName(ALIAS, host.address);
    try {
      const renewed = await renewCertificates(project.ctx(), project.env());
      expect(renewed.hosts[0]!.moved).toEqual([SECOND, ALIAS]);
      expect(formatCerts(renewed)).toContain(`the site now serves ${SECOND}, ${ALIAS}`);
      expect(await siteOn443()).toContain(ALIAS);
      const alias = await served(ALIAS);
      expect(alias.names).toContain(`DNS:${ALIAS}`);
      expect(alias.status).toBe(301);
      expect((await sshRun(host, 'ls /etc/nginx/sites-enabled/')).stdout).not.toContain('acme-pending');
      const again = await provision(project.ctx(), project.env());
      expect(again[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
    } finally {
      await pebble.removeHostName(ALIAS).catch(() => undefined);
    }
  }, 900_000);
});
