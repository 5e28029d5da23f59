// A live host that drifted from what ops left, on a real provisioned host with the sample app live: a hand-made
// file in nginx's sites-enabled that nginx refuses. Provision must not call the host ready, and a deploy must not
// build and migrate for a switch that cannot reload nginx; both say which file and what to do, and the site keeps
// serving.
import { quote } from '../../core/shell.ts';
import { describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { provision } from '../../core/ops/provision.ts';
import { status } from '../../core/ops/status.ts';
import { MemoryReporter } from '../../core/report.ts';
import { sshRun } from '../hosts/index.ts';
import { appRepo, get, labEnvironment, testConfig, RELOAD_NGINX, testDatabase } from './support.ts';

const root = (command: string) => sshRun(lab.host, `sudo sh -c ${quote(command)}`);
const failure = <T>(p: Promise<T>) => p.then(() => undefined, (e: Error & { hint?: string }) => `${e.message}\n${e.hint ?? ''}`);

const lab = labEnvironment('k9b', async (host) => testConfig([host], await appRepo(), await testDatabase(`k9b_${process.pid}`)), {
  ready: async ({ project }) => {
    await deploy(project.ctx(), project.env(), { ref: 'v1' });
  },
});

describe.sequential('nginx configuration someone else broke', () => {
  it('provision fails naming the file and saying it is not its own; a deploy is refused before building or migrating; the site keeps serving', async () => {
    await root("printf 'server { listen 80; bogus_directive on; }\\n' > /etc/nginx/sites-enabled/handmade");
    try {
      const prov = await failure(provision(lab.project.ctx(), lab.project.env()));
      expect(prov).toContain('nginx -t fails on this host\'s configuration without this change too');
      expect(prov).toContain('unknown directive "bogus_directive" in /etc/nginx/sites-enabled/handmade:1');
      const releases = (await root('ls /srv/sample/releases')).stdout;
      const dep = await failure(deploy(lab.project.ctx(), lab.project.env(), { ref: 'v2' }));
      expect(dep).toContain(`nginx -t fails on ${lab.host.name}: [emerg] unknown directive "bogus_directive" in /etc/nginx/sites-enabled/handmade:1`);
      expect(dep).toContain('fix or remove that file');
      expect(dep).not.toContain('migrations');
      expect((await root('ls /srv/sample/releases')).stdout, 'no release was made').toBe(releases);
      const page = await get(lab.host);
      expect(page.status).toBe(200);
      expect(page.body).toContain('Version 1.0.0');
    } finally {
      await root('rm -f /etc/nginx/sites-enabled/handmade');
    }
    const again = await provision(lab.project.ctx(), lab.project.env());
    expect(again[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
    await deploy(lab.project.ctx(), lab.project.env(), { ref: 'v2' });
    expect((await get(lab.host)).body).toContain('Version 2.0.0');
  }, 600_000);

  it('another enabled site claiming the default server (this app under its name before a rename): provision names every site that claims it, and what to do', async () => {
    // The app without a domain is the default server; an earlier name's site was left enabled.
    await root("printf 'server { listen 80 default_server; server_name _; return 404; }\\n' > /etc/nginx/sites-enabled/oldname");
    try {
      const prov = await failure(provision(lab.project.ctx(), lab.project.env()));
      expect(prov).toMatch(/duplicate default server for 0\.0\.0\.0:80/);
      expect(prov).toMatch(/hint: more than one enabled site says default_server for 0\.0\.0\.0:80 \(nginx allows one per address\); the sites that say it: (?=.*\/etc\/nginx\/sites-enabled\/oldname )(?=.*\/etc\/nginx\/sites-enabled\/sample ).*- remove the one no longer used/);
      expect((await get(lab.host)).status).toBe(200);
    } finally {
      await root('rm -f /etc/nginx/sites-enabled/oldname');
    }
  }, 600_000);

  it("the app's own site edited by hand into one nginx refuses does not stop a deploy: its switch writes the site again, keeping the edited one in a backup, said", async () => {
    await root("printf 'bogus_directive on;\\n' >> /etc/nginx/sites-available/sample");
    const reporter = new MemoryReporter();
    await deploy(lab.project.ctx(reporter), lab.project.env(), { ref: 'v1' });
    expect((await get(lab.host)).body).toContain('Version 1.0.0');
    expect((await root('nginx -t 2>&1 | tail -n1')).stdout).toContain('test is successful');
    const said = reporter.text().match(/replaced \/etc\/nginx\/sites-available\/sample: someone changed it here since ops wrote it; what it held is kept in (\/var\/backups\/ops-pipeline\/etc\/nginx\/sites-available\/sample\.\d{8}T\d{6}Z) \(diff /);
    expect(said, reporter.text()).not.toBeNull();
    expect(reporter.text()).toContain('so a change made on the host does not last: set it in environments/e2e/environment.yml (nginx.client_max_body_size, routes, nginx.default_server)');
    expect((await root(`tail -n1 ${said![1]}`)).stdout).toBe('bogus_directive on;\n');
  }, 600_000);

  it("the site changed the ways an admin does (client_max_body_size raised, a location added; a symlink into another directory; its mode) is replaced by provision with a backup each, said; ops's own unchanged is written without a word", async () => {
    const siteFile = '/etc/nginx/sites-available/sample';
    const ops = (await root(`cat ${siteFile}`)).stdout;
    const edited = ops.replace('client_max_body_size 10m;', 'client_max_body_size 200m;\n    location /admin-notes/ { return 200 "admin"; }');
    expect(edited).not.toBe(ops);
    await root(`echo ${Buffer.from(edited).toString('base64')} | base64 -d > ${siteFile} && ${RELOAD_NGINX}`);
    // status says so before a run replaces it.
    expect((await status(lab.project.ctx(), lab.project.env())).hosts[0]!.warnings).toContain(
      "/etc/nginx/sites-available/sample was changed on this host since ops wrote it: it serves as changed until the next provision or deploy, which replaces it, keeping what it holds in /var/backups/ops-pipeline/etc/nginx/sites-available/sample.<time> (make the change in the environment's settings to keep it)",
    );
    let reporter = new MemoryReporter();
    await provision(lab.project.ctx(reporter), lab.project.env());
    expect(reporter.text()).toMatch(/replaced \/etc\/nginx\/sites-available\/sample: someone changed it here since ops wrote it; what it held is kept in \/var\/backups\/ops-pipeline\/etc\/nginx\/sites-available\/sample\.\d{8}T\d{6}Z/);
    expect((await root(`cat ${siteFile}`)).stdout).toBe(ops);
    expect((await root('grep -l "client_max_body_size 200m" /var/backups/ops-pipeline/etc/nginx/sites-available/sample.* | wc -l')).stdout.trim()).not.toBe('0');
    // Nothing to say again.
    reporter = new MemoryReporter();
    expect((await provision(lab.project.ctx(reporter), lab.project.env()))[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
    expect(reporter.text()).not.toContain('replaced /etc/nginx');
    expect((await status(lab.project.ctx(), lab.project.env())).hosts[0]!.warnings.filter((w) => w.includes('changed on this host'))).toEqual([]);

    // Debian's way: the file elsewhere, a symlink in its place; then a mode of the admin's.
    await root(`mkdir -p /root/sites && cp ${siteFile} /root/sites/sample && ln -sfn /root/sites/sample ${siteFile}`);
    reporter = new MemoryReporter();
    await provision(lab.project.ctx(reporter), lab.project.env());
    expect(reporter.text()).toContain('replaced /etc/nginx/sites-available/sample: someone changed it here since ops wrote it');
    expect((await root(`test -L ${siteFile} || echo file; ls -l /var/backups/ops-pipeline/etc/nginx/sites-available/ | grep -c -- '-> /root/sites/sample'`)).stdout).toBe('file\n1\n');
    await root(`chmod 600 ${siteFile}`);
    reporter = new MemoryReporter();
    await provision(lab.project.ctx(reporter), lab.project.env());
    expect(reporter.text()).toContain("set /etc/nginx/sites-available/sample back to mode 0644, owner root:root (ops's), from 600 root:root here");
    await root('rm -rf /root/sites');
    expect((await get(lab.host)).status).toBe(200);
  }, 600_000);

  it("a slot's supervisor file edited on the host is backed up and replaced by the next start on that slot, said with where the change lasts", async () => {
    const live = (await root('cat /srv/sample/.ops/slot')).stdout.trim();
    const conf = `/etc/supervisor/conf.d/sample-${live}.conf`;
    await root(`sed -i '0,/^\\[program:/s//; the admin s tweak\\n&/' ${conf}`);
    expect((await root(`grep -c 'the admin s tweak' ${conf}`)).stdout.trim()).toBe('1');
    // The first deploy starts the other slot; the second, this one.
    await deploy(lab.project.ctx(), lab.project.env(), { ref: 'v2', force: true });
    const reporter = new MemoryReporter();
    await deploy(lab.project.ctx(reporter), lab.project.env(), { ref: 'v1', force: true });
    const said = reporter.text().match(new RegExp(`replaced ${conf}: someone changed it here since ops wrote it; what it held is kept in (/var/backups/ops-pipeline${conf}\\.\\d{8}T\\d{6}Z)`));
    expect(said, reporter.text()).not.toBeNull();
    expect(reporter.text()).toContain('on every start of a release on its slot (deploy, rollback), so a change made on the host does not last: set it in environments/e2e/environment.yml (programs.<name>.command, .env');
    expect((await root(`grep -c 'the admin s tweak' ${said![1]}; grep -c 'the admin s tweak' ${conf} || true`)).stdout).toBe('1\n0\n');
    expect((await get(lab.host)).body).toContain('Version 1.0.0');
  }, 600_000);
});
