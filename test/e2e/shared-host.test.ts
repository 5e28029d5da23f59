// Issue 22, item 1, on a real host: two environments of one project on the same VM, each its own app with
// its own domain and ports — alpha (plain http, the host's default server) and beta (TLS from the ACME test
// server, HTTP-01 through its own port-80 site). Both provisioned and deployed at the same time; each served
// under its own Host header; deploying and rolling back beta leaves alpha's processes, files and page as they
// were; status, logs and certificates of one app are its own; a third environment colliding with beta's
// green slot is refused before anything runs, naming both.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadEnvironment } from '../../core/config/environment.ts';
import { certificates } from '../../core/ops/certs.ts';
import { removeAppCommands } from '../../core/ops/decommission.ts';
import { deploy } from '../../core/ops/deploy.ts';
import { logs } from '../../core/ops/logs.ts';
import { provision } from '../../core/ops/provision.ts';
import { rollback } from '../../core/ops/rollback.ts';
import { status } from '../../core/ops/status.ts';
import { MemoryReporter } from '../../core/report.ts';
import { downHost, ensurePebble, sshRun, type Host } from '../hosts/index.ts';
import { appRepo, makeProject, readyHost, sshLogins, testConfig, testDatabase, type TestProject } from './support.ts';

const ALPHA = `alpha${process.pid}.test`;
const BETA = `beta${process.pid}.test`;

let host: Host;
let project: TestProject;
let rootCa: string;
let pebble: Awaited<ReturnType<typeof ensurePebble>>;

/** GET through the host's nginx as a browser asking for `domain` would (https: SNI too, verified against the ACME test CA). */
function page(domain: string | undefined, { tls = false, path = '/' } = {}): Promise<{ status: number; body: string; location?: string }> {
  return new Promise((resolve, reject) => {
    const options = { host: host.address, path, headers: domain ? { Host: domain } : {}, timeout: 10_000 };
    const done = (res: import('node:http').IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, location: res.headers.location }));
    };
    const req = tls ? httpsRequest({ ...options, port: 443, servername: domain, ca: rootCa }, done) : httpRequest({ ...options, port: 80 }, done);
    req.on('error', reject);
    req.end();
  });
}

/**
 * supervisor's processes of an app on the host: "group:name state pid", sorted. A program STARTING
 * (startsecs, 3 s, after a start) shows no pid yet: wait, up to 15 s, until none is.
 */
async function processes(app: string): Promise<string[]> {
  for (let tries = 0; ; tries++) {
    const out = (await sshRun(host, 'sudo supervisorctl status || true')).stdout;
    const lines = out.split('\n').filter((l) => l.startsWith(`${app}-blue:`) || l.startsWith(`${app}-green:`));
    if (tries < 30 && lines.some((l) => l.split(/\s+/)[1] === 'STARTING')) {
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    return lines
      .map((l) => {
        const [name, state, , pid] = l.split(/\s+/);
        return `${name} ${state} ${pid?.replace(',', '')}`;
      })
      .sort();
  }
}

/** Checksums of an app's nginx and supervisor files and its live release. */
async function files(app: string): Promise<string> {
  return (await sshRun(host, `cd /etc && sudo sha256sum nginx/sites-available/${app} nginx/ops-upstreams/${app}.conf supervisor/conf.d/${app}-*.conf; readlink /srv/${app}/current`)).stdout;
}

const alpha = () => loadEnvironment('alpha', project.root);
const beta = () => loadEnvironment('beta', project.root);

beforeAll(async () => {
  [host, pebble] = await Promise.all([readyHost('shr'), ensurePebble()]);
  rootCa = readFileSync(pebble.rootCaFile, 'utf8');
  await pebble.addHostName(BETA, host.address);
  const repo = await appRepo();
  const [dbAlpha, dbBeta] = await Promise.all([testDatabase(`shra_${process.pid}`), testDatabase(`shrb_${process.pid}`)]);
  // alpha keeps the snapshot's app ("sample"); beta is another app on other ports, with TLS.
  project = makeProject('alpha', testConfig([host], repo, dbAlpha, { domain: ALPHA, nginx: { default_server: true } }));
  const base = testConfig([host], repo, dbBeta) as { programs: Record<string, { port: number }> };
  const programs = structuredClone(base.programs);
  programs.server!.port = 4579;
  programs.client!.port = 4000;
  mkdirSync(join(project.root, 'environments', 'beta'));
  writeFileSync(
    join(project.root, 'environments', 'beta', 'environment.yml'),
    stringify({ ...base, app: 'beta', domain: BETA, programs, tls: { mode: 'letsencrypt', email: 'ops@example.org', acme_server: pebble.directoryUrl, acme_ca_file: pebble.apiCaFile } }),
  );
}, 900_000);

afterAll(async () => {
  if (host) await downHost(host.name, { purge: true });
  await pebble?.removeHostName(BETA).catch(() => undefined);
  project?.cleanup();
});

describe.sequential('two environments on one host', () => {
  it('both provisioned at the same time: each site for its own domain, beta certified over HTTP-01 through its own port-80 site', async () => {
    const [a, b] = await Promise.all([provision(project.ctx(), alpha()), provision(project.ctx(), beta())]);
    expect(a[0]!.items.map((i) => i.name)).toContain('nginx');
    expect(b[0]!.items).toEqual(expect.arrayContaining([{ name: 'certificate', state: 'changed' }]));
    const check = await sshRun(host, 'sudo nginx -t 2>&1 | tail -n1; ls /etc/nginx/sites-enabled; id -u beta >/dev/null && echo beta-user');
    expect(check.stdout).toContain('test is successful');
    expect(check.stdout.split('\n')).toEqual(expect.arrayContaining(['beta', 'sample', 'beta-user']));
    // A second run of each changes nothing.
    for (const env of [alpha(), beta()]) expect((await provision(project.ctx(), env))[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
  }, 900_000);

  it('both deployed at the same time; each served under its own Host header; alpha answers by address', async () => {
    const [a, b] = await Promise.all([deploy(project.ctx(), alpha(), { ref: 'v1' }), deploy(project.ctx(), beta(), { ref: 'v2' })]);
    const pa = await page(ALPHA);
    expect(pa.status).toBe(200);
    expect(pa.body).toContain(`revision ${a.sha}`);
    expect(pa.body).toContain('Version 1.0.0');
    const pb = await page(BETA, { tls: true });
    expect(pb.status).toBe(200);
    expect(pb.body).toContain(`revision ${b.sha}`);
    expect(pb.body).toContain('Version 2.0.0');
    expect(await page(BETA, { path: '/x' })).toMatchObject({ status: 301, location: `https://${BETA}/x` });
    expect((await page(undefined)).body).toContain(`revision ${a.sha}`);
    expect((await page(`unknown${process.pid}.test`)).body).toContain(`revision ${a.sha}`);
  }, 900_000);

  it("deploying and rolling back beta leaves alpha's processes, files and page unchanged", async () => {
    const before = { processes: await processes('sample'), files: await files('sample'), page: (await page(ALPHA)).body };
    expect(before.processes.filter((p) => p.includes('RUNNING')).length).toBeGreaterThanOrEqual(2);
    const unchanged = async () => {
      expect(await processes('sample')).toEqual(before.processes);
      expect(await files('sample')).toBe(before.files);
      expect((await page(ALPHA)).body).toBe(before.page);
    };
    const d = await deploy(project.ctx(), beta(), { ref: 'deps-changed' });
    expect((await page(BETA, { tls: true })).body).toContain(`revision ${d.sha}`);
    await unchanged();
    const r = await rollback(project.ctx(), beta());
    expect(r.hosts[0]!.release).not.toBe(d.release);
    expect((await page(BETA, { tls: true })).body).toContain('Version 2.0.0');
    expect((await page(BETA, { tls: true })).body).not.toContain(`revision ${d.sha}`);
    await unchanged();
  }, 900_000);

  it("status, logs and certificates of one app are that app's", async () => {
    const [sa, sb] = await Promise.all([status(project.ctx(), alpha()), status(project.ctx(), beta())]);
    expect(sa.problems).toEqual([]);
    expect(sb.problems).toEqual([]);
    expect(sa.hosts[0]!.supervisor!.programs.every((p) => p.program === 'server' || p.program === 'client')).toBe(true);
    expect(sb.hosts[0]!.site).toMatchObject({ url: `https://${BETA}/`, status: 200, enabled: true });
    // Only beta's requests in beta's nginx logs, only alpha's in alpha's.
    const marker = `who-${process.pid}`;
    await page(ALPHA, { path: `/?${marker}=alpha` });
    await page(BETA, { tls: true, path: `/?${marker}=beta` });
    const seen = async (env: ReturnType<typeof alpha>) => {
      const reporter = new MemoryReporter();
      await logs(project.ctx(reporter), env, { program: 'nginx', lines: 50 });
      return reporter.lines.filter((l) => l.includes(marker)).map((l) => /=(alpha|beta)/.exec(l)?.[1]);
    };
    expect(await seen(alpha())).toEqual(['alpha']);
    expect(await seen(beta())).toEqual(['beta']);
    const certs = await certificates(project.ctx(), beta());
    expect(certs.ok).toBe(true);
    expect(certs.hosts[0]!.certificates.map((c) => c.names)).toEqual([[BETA]]);
  }, 300_000);

  it("a third environment taking beta's green port is refused before anything runs, naming both", async () => {
    const base = testConfig([host], '/nonexistent', 'postgresql://unused') as { programs: Record<string, { port: number }> };
    const programs = structuredClone(base.programs);
    programs.server!.port = 5579;
    programs.client!.port = 4001; // beta's client, green slot
    mkdirSync(join(project.root, 'environments', 'gamma'));
    writeFileSync(join(project.root, 'environments', 'gamma', 'environment.yml'), stringify({ ...base, app: 'gamma', domain: `gamma${process.pid}.test`, programs }));
    const logins = await sshLogins(host);
    for (const run of [() => provision(project.ctx(), loadEnvironment('gamma', project.root)), () => deploy(project.ctx(), loadEnvironment('gamma', project.root), { ref: 'v1' })]) {
      const err = (await run().catch((e: Error) => e)) as Error;
      expect(err.message).toMatch(/^gamma cannot share its hosts as configured; nothing was changed:\n  - environments gamma and beta share .*, but both take port 4001 \(gamma: programs\.client\.port, blue slot — beta: programs\.client\.port \+ switch\.port_offset, green slot\)/);
    }
    // Nothing connected: the only new login is this check's own.
    expect(await sshLogins(host)).toBe(logins + 1);
  }, 120_000);

  it("beta's own site template without {{acme_location}} (its port-80 server redirects everything): status and certs say certbot's renewal would fail, and why", async () => {
    // The built-in TLS site as a user would copy it, the ACME location left out.
    const template = `{{upstreams_include}}

server {
    listen 80{{default_server}};
    server_name {{server_name}};
    {{logs}}
    {{slot_location}}
    location / {
        return 301 https://$host$request_uri;
    }
}
server {
    listen 443 ssl http2{{default_server}};
    server_name {{server_name}};
    {{logs}}
    ssl_certificate {{ssl_certificate}};
    ssl_certificate_key {{ssl_certificate_key}};
    {{tls_settings}}
    client_max_body_size {{client_max_body_size}};
    {{security_headers}}
    {{slot_location}}
    {{locations}}{{unrouted_location}}
}
`;
    rmSync(join(project.root, 'environments', 'gamma'), { recursive: true }); // the colliding one above
    const file = join(project.root, 'environments', 'beta', 'environment.yml');
    const yml = readFileSync(file, 'utf8');
    writeFileSync(join(project.root, 'environments', 'beta', 'site.conf'), template);
    writeFileSync(file, `${yml}nginx:\n  site_template: site.conf\n`);
    await deploy(project.ctx(), beta(), { ref: 'v2' });
    expect((await page(BETA, { tls: true })).status).toBe(200);
    const said = new RegExp(`certbot's renewal would fail: http://${BETA.replace(/\./g, '\\.')}/\\.well-known/acme-challenge/ on this host answers HTTP \\d+ \\(redirected to https://.*\\), not the ACME webroot /var/www/letsencrypt; the nginx files naming ${BETA.replace(/\./g, '\\.')}: /etc/nginx/sites-enabled/beta: the certificate \\(\\d+ days left, .*\\) will not be renewed; put \\{\\{acme_location\\}\\} in the port-80 server of the site template`);
    const st = await status(project.ctx(), beta());
    expect(st.warnings.join('\n')).toMatch(said);
    expect(st.problems).toEqual([]);
    const certs = await certificates(project.ctx(), beta());
    expect(certs.hosts[0]!.warnings.join('\n')).toMatch(said);
    // alpha (no TLS) is not concerned.
    expect((await status(project.ctx(), alpha())).warnings.join('\n')).not.toContain('renewal');
  }, 600_000);

  it("decommissioning beta: its commands, interrupted after the first two and run again, then once more, take only beta off (site, processes, certificate, files, user, runtimes record); alpha serves on", async () => {
    const before = { processes: await processes('sample'), page: (await page(ALPHA)).body };
    const cmds = removeAppCommands(beta(), [alpha()]).filter((c) => !c.startsWith('#'));
    const run = async (list: string[]) => {
      for (const c of list) {
        const r = await sshRun(host, c, { allowFailure: true });
        expect(r.code, `${c}\n${r.stdout}${r.stderr}`).toBe(0);
        expect(r.stdout + r.stderr, c).not.toContain('ops did not make it');
      }
    };
    // A connection dropped after the first two commands, then the whole list again (and once more: all done).
    await run(cmds.slice(0, 2));
    await run(cmds);
    await run(cmds);
    const left = await sshRun(host, `for f in /etc/nginx/sites-enabled/beta /etc/nginx/sites-available/beta /etc/nginx/ops-upstreams/beta.conf /etc/supervisor/conf.d/beta-blue.conf /etc/letsencrypt/renewal/${BETA}.conf /etc/letsencrypt/live/${BETA} /srv/beta /var/log/beta /etc/ops-pipeline/apps/beta /etc/ops-pipeline/apps/sample; do sudo test -e "$f" && echo "$f"; done; id beta 2>/dev/null; sudo supervisorctl status | grep '^beta' || true`);
    expect(left.stdout.trim()).toBe('/etc/ops-pipeline/apps/sample');
    expect(await processes('sample')).toEqual(before.processes);
    expect((await page(ALPHA)).body).toBe(before.page);
    expect((await status(project.ctx(), alpha())).problems).toEqual([]);
  }, 300_000);
});
