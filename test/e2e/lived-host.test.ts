// Provision on a host an admin has already lived on (a real provisioned host, then changed the ways real hosts are):
// a configuration file the admin wrote before the package that ships it was installed (dpkg's conffile prompt, which
// would read the step's script from stdin), and another package job holding apt's and dpkg's locks (unattended-upgrades
// on a VM's first boot), an nginx.conf and a default site of the admin's own, the app user's ~/.npmrc and pip.conf of the
// admin's. Provision keeps the admin's files and says so (refusing an nginx.conf that would not serve its site, naming
// what it lacks; refusing package index files it would replace, naming where their settings belong); waits for the lock, naming who
// holds it; replaces Debian's nginx.conf and disables its default site only as shipped.
import { createHash } from 'node:crypto';
import { quote } from '../../core/shell.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provision } from '../../core/ops/provision.ts';
import { MemoryReporter } from '../../core/report.ts';
import { BASE_CONFIG_HEADER, BASE_CONFIG_PREVIOUS, HEADER } from '../../core/steps/nginx-config.ts';
import { downHost, sshRun, type Host } from '../hosts/index.ts';
import { appRepo, asRoot, makeProject, readyHost, testConfig, RELOAD_NGINX, untilFree, untilListening, type TestProject } from './support.ts';

let host: Host;
let project: TestProject;
let base: Record<string, unknown>;
const root = (command: string) => sshRun(host, `sudo sh -c ${quote(command)}`);

beforeAll(async () => {
  host = await readyHost('lvd');
  base = testConfig([host], await appRepo(), 'postgresql://unused');
  project = makeProject('e2e', base);
}, 900_000);
afterAll(async () => {
  if (host) await downHost(host.name, { purge: true });
  project?.cleanup();
});

describe.sequential('provision on a host an admin has lived on', () => {
  it("a configuration file the admin wrote before its package (logrotate's /etc/logrotate.conf) is kept, said, and provision completes", async () => {
    await root("dpkg --purge logrotate >/dev/null 2>&1 || true; printf '# the admin s own\\nweekly\\n' > /etc/logrotate.conf");
    project.write({ ...base, provision: { packages: ['logrotate'] } });
    const reporter = new MemoryReporter();
    const result = await provision(project.ctx(reporter), project.env());
    expect(result[0]!.items).toEqual(expect.arrayContaining([{ name: 'packages', state: 'changed' }, { name: 'nginx', state: 'ok' }]));
    expect(reporter.text()).toContain("kept this host's own /etc/logrotate.conf, which the package also ships (its version is beside it: /etc/logrotate.conf.dpkg-dist)");
    const after = (await sshRun(host, "head -n1 /etc/logrotate.conf; test -f /etc/logrotate.conf.dpkg-dist && echo dist; dpkg-query -W -f='${Status}' logrotate")).stdout;
    expect(after).toBe('# the admin s own\ndist\ninstall ok installed');
    expect((await provision(project.ctx(), project.env()))[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
  }, 600_000);

  it('another package job holding apt\'s and dpkg\'s locks is waited for, naming the process; then provision installs', async () => {
    // apt and dpkg take fcntl locks (what unattended-upgrades holds while it runs): held for 15 s by a python3.
    await root("dpkg --purge at >/dev/null 2>&1 || true");
    const hold = `import fcntl, time\nfs = [open(p, 'a') for p in ('/var/lib/dpkg/lock-frontend', '/var/lib/dpkg/lock', '/var/lib/apt/lists/lock')]\nfor f in fs: fcntl.lockf(f, fcntl.LOCK_EX)\nopen('/run/ops-test-locked', 'w').close()\ntime.sleep(15)\n`;
    await sshRun(host, `rm -f /run/ops-test-locked; echo ${Buffer.from(hold).toString('base64')} | base64 -d | sudo tee /run/ops-test-hold.py >/dev/null; sudo sh -c 'nohup python3 /run/ops-test-hold.py >/dev/null 2>&1 </dev/null &'; for i in $(seq 50); do [ -e /run/ops-test-locked ] && break; sleep 0.1; done`);
    project.write({ ...base, provision: { packages: ['at'] } });
    const reporter = new MemoryReporter();
    const result = await provision(project.ctx(reporter), project.env());
    expect(reporter.text()).toMatch(/waiting \(300 s at most\) for another package job to finish: \/var\/lib\/dpkg\/lock-frontend, held by process \d+ \(python3\)/);
    expect(result[0]!.items).toEqual(expect.arrayContaining([{ name: 'packages', state: 'changed' }]));
    expect((await sshRun(host, "dpkg-query -W -f='${Status}' at")).stdout).toBe('install ok installed');
  }, 600_000);

  it("a supervisord.conf of the admin's that does not include /etc/supervisor/conf.d (where deploys put the programs) is refused, saying what it lacks, and left as it is", async () => {
    const conf = '/etc/supervisor/supervisord.conf';
    const own = '[unix_http_server]\nfile=/var/run/supervisor.sock\n\n[supervisord]\nlogfile=/var/log/supervisor/supervisord.log\n\n[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n[include]\nfiles = /etc/supervisor/programs/*.ini\n';
    project.write(base);
    await root(`cp -p ${conf} /root/supervisord.conf.ops-test && echo ${Buffer.from(own).toString('base64')} | base64 -d > ${conf}`);
    try {
      const e = (await provision(project.ctx(), project.env()).catch((x: unknown) => x)) as Error;
      expect(e.message).toContain(`this host's supervisor configuration ${conf} does not include /etc/supervisor/conf.d/*.conf ([include] files): ops's deploys put the app's programs in /etc/supervisor/conf.d`);
      expect((await root(`cat ${conf}`)).stdout).toBe(own);
    } finally {
      await root(`mv -f /root/supervisord.conf.ops-test ${conf}`);
    }
    expect((await provision(project.ctx(), project.env()))[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
  }, 600_000);

  const write = (path: string, content: string) => root(`mkdir -p $(dirname ${path}) && echo ${Buffer.from(content).toString('base64')} | base64 -d > ${path}`);

  it("the app user's ~/.npmrc and pip.conf of the admin's own (a token for another registry) are refused, named with where their settings belong, and left as they are", async () => {
    project.write(base);
    const npmrc = '/home/sample/.npmrc';
    const pipConf = '/home/sample/.config/pip/pip.conf';
    const ownNpmrc = '@acme:registry=https://npm.pkg.github.com/\n//npm.pkg.github.com/:_authToken=admin-token\n';
    const ownPip = '[global]\nindex-url = https://pypi.example.org/simple/\ntimeout = 60\n';
    await write(npmrc, ownNpmrc);
    await write(pipConf, ownPip);
    try {
      const e = (await provision(project.ctx(), project.env()).catch((x: unknown) => x)) as Error;
      expect(e.message).toContain(`the app user's ${npmrc} is this host's own (its first line is not "# Written by ops-pipeline provision ...": someone wrote it here), and provision would replace it with the one packages.npm_registry makes`);
      expect(e.message).toContain(`the app user's ${pipConf} is this host's own`);
      expect(e.message).toContain('nothing of the package indexes was changed');
      expect((await root(`cat ${npmrc} ${pipConf}`)).stdout).toBe(ownNpmrc + ownPip);
    } finally {
      await root(`rm -f ${npmrc} ${pipConf}`);
    }
    // Moved away (the fix named), they are provision's again; then nothing to change.
    expect((await provision(project.ctx(), project.env()))[0]!.items).toEqual(expect.arrayContaining([{ name: 'package indexes', state: 'changed' }]));
    expect((await provision(project.ctx(), project.env()))[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
  }, 600_000);

  it("the app user's ~/.npmrc provision wrote, with a token of the admin's added by hand, is backed up and replaced, said without the token; the setting removed, it is removed the same way", async () => {
    const npmrc = '/home/sample/.npmrc';
    // The lab's registry (testConfig's packages.npm_registry) makes provision's ~/.npmrc.
    project.write(base);
    expect((base.packages as { npm_registry?: string }).npm_registry).toBeTruthy();
    await provision(project.ctx(), project.env());
    const ops = (await root(`cat ${npmrc}`)).stdout;
    expect(ops.split('\n')[0]).toMatch(/^# Written by ops-pipeline provision/);
    await root(`printf '//npm.pkg.github.com/:_authToken=admin-token\\n' >> ${npmrc}`);
    let reporter = new MemoryReporter();
    await provision(project.ctx(reporter), project.env());
    const said = reporter.text().match(/replaced \/home\/sample\/\.npmrc: someone changed it here since ops wrote it; what it held is kept in (\/var\/backups\/ops-pipeline\/home\/sample\/\.npmrc\.\d{8}T\d{6}Z) \(diff /);
    expect(said, reporter.text()).not.toBeNull();
    expect(reporter.text()).toContain('its registry and token belong in packages.npm_registry and packages.npm_token (a secret)');
    expect(reporter.text()).not.toContain('admin-token');
    expect((await root(`cat ${npmrc}; tail -n1 ${said![1]}; stat -c '%a %U' ${said![1]} /var/backups/ops-pipeline`)).stdout).toBe(`${ops}//npm.pkg.github.com/:_authToken=admin-token\n600 sample\n700 root\n`);
    await root(`printf '//npm.pkg.github.com/:_authToken=admin-token\\n' >> ${npmrc}`);
    project.write({ ...base, packages: { pip_index_url: (base.packages as { pip_index_url: string }).pip_index_url } });
    reporter = new MemoryReporter();
    await provision(project.ctx(reporter), project.env());
    project.write(base);
    expect(reporter.text()).toMatch(/removed \/home\/sample\/\.npmrc \(the environment no longer sets it\): someone changed it here since ops wrote it; what it held is kept in \/var\/backups\/ops-pipeline\/home\/sample\/\.npmrc\.\d{8}T\d{6}Z\./);
    expect((await root(`test -e ${npmrc} || echo gone`)).stdout).toBe('gone\n');
    // The lab's again for the cases after this one.
    expect((await provision(project.ctx(), project.env()))[0]!.items).toEqual(expect.arrayContaining([{ name: 'package indexes', state: 'changed' }]));
  }, 600_000);

  // The admin's own nginx.conf: settings of theirs at every level (events, http, an include of theirs serving another site).
  const conf = '/etc/nginx/nginx.conf';
  const adminConf = (sites: string) => `user www-data;\nworker_processes auto;\npid /run/nginx.pid;\ninclude /etc/nginx/modules-enabled/*.conf;\n\nevents {\n    worker_connections 4096;\n}\n\nhttp {\n    sendfile on;\n    include /etc/nginx/mime.types;\n    default_type application/octet-stream;\n    log_format admin '$remote_addr $status $request_time';\n    access_log /var/log/nginx/access.log admin;\n    error_log /var/log/nginx/error.log;\n    client_max_body_size 50m;\n    include /etc/nginx/extra/*.conf;\n    include /etc/nginx/conf.d/*.conf;\n    ${sites}\n}\n`;

  it("an nginx.conf of the admin's own is kept as it is, said, and their other site goes on serving; a second provision changes nothing", async () => {
    project.write(base);
    const own = adminConf('include /etc/nginx/sites-enabled/*;');
    await write('/etc/nginx/extra/admin.conf', 'server {\n    listen 8081;\n    return 200 "the admin\'s own\\n";\n}\n');
    await write(conf, own);
    await root(`nginx -t -q && ${RELOAD_NGINX}`);
    try {
      const reporter = new MemoryReporter();
      const result = await provision(project.ctx(reporter), project.env());
      expect(reporter.text()).toContain(`kept this host's own ${conf} as it is: it is neither the one ops writes (its first line: ${BASE_CONFIG_HEADER}) nor nginx-common's as shipped`);
      expect((await root(`cat ${conf}`)).stdout).toBe(own);
      expect(result[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
      expect((await sshRun(host, 'curl -s http://127.0.0.1:8081/')).stdout).toBe("the admin's own\n");
      expect((await sshRun(host, 'curl -s -o /dev/null -w %{http_code} http://127.0.0.1/.ops/slot')).stdout).not.toBe('000');
      expect((await provision(project.ctx(), project.env()))[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
    } finally {
      await root(`rm -rf /etc/nginx/extra ${conf}`);
    }
    // Removed, it is ops's again (the fix the refusal below names).
    expect((await provision(project.ctx(), project.env()))[0]!.items).toEqual(expect.arrayContaining([{ name: 'nginx', state: 'changed' }]));
    expect((await root(`head -n1 ${conf}`)).stdout).toBe(`${BASE_CONFIG_HEADER}\n`);
  }, 600_000);

  it("ops's nginx.conf that the admin changed (client_max_body_size, a log_format) is kept as it is, said with the settings changed; removed, it is ops's again", async () => {
    project.write(base);
    const ops = (await root(`cat ${conf}`)).stdout;
    expect(ops.split('\n')[0]).toBe(BASE_CONFIG_HEADER);
    const edited = ops.replace('http {\n', "http {\n    client_max_body_size 50m;\n    log_format admin '$remote_addr $status';\n").replace('    gzip_comp_level 5;\n', '');
    await write(conf, edited);
    await root(`nginx -t -q && ${RELOAD_NGINX}`);
    try {
      const reporter = new MemoryReporter();
      const result = await provision(project.ctx(reporter), project.env());
      expect(reporter.text()).toContain(`kept this host's own ${conf} as it is: ops wrote it, but someone changed it here since (added or changed: client_max_body_size log_format; removed: gzip_comp_level), and ops never overwrites a change;`);
      expect((await root(`cat ${conf}`)).stdout).toBe(edited);
      expect(result[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
      expect((await provision(project.ctx(), project.env()))[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
    } finally {
      await root(`rm -f ${conf}`);
    }
    expect((await provision(project.ctx(), project.env()))[0]!.items).toEqual(expect.arrayContaining([{ name: 'nginx', state: 'changed' }]));
    expect((await root(`cat ${conf}`)).stdout).toBe(ops);
    expect((await provision(project.ctx(), project.env()))[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
  }, 600_000);

  it("the nginx.conf an older ops wrote (its header said local changes are overwritten; or its bucket held names of 110 characters) is ops's: as written, replaced by today's; changed by hand, kept as ops's changed", async () => {
    project.write(base);
    const ops = (await root(`cat ${conf}`)).stdout;
    expect(ops.split('\n')[0]).toBe(BASE_CONFIG_HEADER);
    // The one the first ops wrote, byte for byte: its header, and the bucket of 128 (before names of any length fit).
    const older = ops
      .replace(BASE_CONFIG_HEADER, HEADER)
      .replace(/ {4}# Room for any DNS name[\s\S]*?server_names_hash_bucket_size \d+;\n/, '    # Room for long domain names, several sites per host (the default bucket fits names of ~60 characters).\n    server_names_hash_bucket_size 128;\n');
    expect(createHash('md5').update(older).digest('hex')).toBe(BASE_CONFIG_PREVIOUS[0]);
    // Changed by hand (on today's settings under the older header: what was changed is said against today's file).
    await write(conf, ops.replace(BASE_CONFIG_HEADER, HEADER).replace('http {\n', 'http {\n    client_max_body_size 50m;\n'));
    let reporter = new MemoryReporter();
    await provision(project.ctx(reporter), project.env());
    expect(reporter.text()).toContain(`kept this host's own ${conf} as it is: ops wrote it, but someone changed it here since (added or changed: client_max_body_size; removed: none)`);
    await write(conf, older);
    reporter = new MemoryReporter();
    expect((await provision(project.ctx(reporter), project.env()))[0]!.items).toEqual(expect.arrayContaining([{ name: 'nginx', state: 'changed' }]));
    expect(reporter.text()).not.toContain(`kept this host's own ${conf}`);
    expect((await root(`cat ${conf}`)).stdout).toBe(ops);
    // The one ops wrote until names of any length fit (today's header, the bucket of 128): ops's too, replaced.
    const bucket128 = older.replace(HEADER, BASE_CONFIG_HEADER);
    expect(createHash('md5').update(bucket128).digest('hex')).toBe(BASE_CONFIG_PREVIOUS[1]);
    await write(conf, bucket128);
    reporter = new MemoryReporter();
    expect((await provision(project.ctx(reporter), project.env()))[0]!.items).toEqual(expect.arrayContaining([{ name: 'nginx', state: 'changed' }]));
    expect(reporter.text()).not.toContain(`kept this host's own ${conf}`);
    expect((await root(`cat ${conf}`)).stdout).toBe(ops);
  }, 600_000);

  it("an nginx.conf of the admin's own that does not include sites-enabled is refused, naming the file and the fix, and nothing changes", async () => {
    project.write(base);
    const own = adminConf('include /etc/nginx/vhosts/*.conf;');
    await write(conf, own);
    try {
      const e = (await provision(project.ctx(), project.env()).catch((x: unknown) => x)) as Error;
      expect(e.message).toContain(`nginx does not read /etc/nginx/sites-enabled/sample, where ops enables the site of sample: this host's own ${conf} (kept: ops never overwrites it) does not include /etc/nginx/sites-enabled/* in its http block`);
      expect((await root(`cat ${conf}`)).stdout).toBe(own);
    } finally {
      await root(`rm -f ${conf}`);
    }
    await provision(project.ctx(), project.env());
    expect((await provision(project.ctx(), project.env()))[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
  }, 600_000);

  it("Debian's nginx.conf and default site as shipped are replaced and disabled; a default site the admin changed stays enabled, said", async () => {
    project.write(base);
    // Debian's own files, from the package (the host's were replaced when the test host was provisioned).
    await root(`cd /tmp && rm -f nginx-common_*.deb && apt-get download -q nginx-common >/dev/null 2>&1 && dpkg-deb --fsys-tarfile nginx-common_*.deb | tar -xO ./etc/nginx/nginx.conf > ${conf} && ln -sfn /etc/nginx/sites-available/default /etc/nginx/sites-enabled/default && rm -f nginx-common_*.deb`);
    expect((await root(`head -n1 ${conf}`)).stdout).toBe('user www-data;\n');
    const result = await provision(project.ctx(), project.env());
    expect(result[0]!.items).toEqual(expect.arrayContaining([{ name: 'nginx', state: 'changed' }]));
    expect((await root(`head -n1 ${conf}; ls /etc/nginx/sites-enabled`)).stdout).toBe(`${BASE_CONFIG_HEADER}\nsample\n`);

    await root(`cp -p /etc/nginx/sites-available/default /root/default.ops-test && printf 'server {\\n    listen 8082;\\n    return 200 admin;\\n}\\n' > /etc/nginx/sites-available/default && ln -sfn /etc/nginx/sites-available/default /etc/nginx/sites-enabled/default && ${RELOAD_NGINX}`);
    try {
      const reporter = new MemoryReporter();
      await provision(project.ctx(reporter), project.env());
      expect(reporter.text()).toContain("kept this host's own default site /etc/nginx/sites-enabled/default enabled: it is not Debian's as shipped");
      expect((await sshRun(host, 'readlink /etc/nginx/sites-enabled/default; curl -s http://127.0.0.1:8082/')).stdout).toBe('/etc/nginx/sites-available/default\nadmin');
    } finally {
      await root('mv -f /root/default.ops-test /etc/nginx/sites-available/default');
    }
    // Debian's again: disabled.
    await provision(project.ctx(), project.env());
    expect((await root('ls /etc/nginx/sites-enabled')).stdout).toBe('sample\n');
  }, 600_000);

  it("a site of the admin's under the app's name, before ops set the app up on the host, is refused, not replaced", async () => {
    project.write(base);
    const own = 'server {\n    listen 8083;\n    return 200 "served by hand";\n}\n';
    // The host as it was before ops: no upstreams of the app, a site named after it the admin wrote.
    await root('rm -rf /root/nginx.ops-test && cp -a /etc/nginx /root/nginx.ops-test && rm -f /etc/nginx/ops-upstreams/sample.conf');
    await write('/etc/nginx/sites-available/sample', own);
    try {
      const e = (await provision(project.ctx(), project.env()).catch((x: unknown) => x)) as Error;
      expect(e.message).toContain("this host already has an nginx site under this app's name, /etc/nginx/sites-available/sample or /etc/nginx/sites-enabled/sample, that ops did not write (ops has not set sample up here: no /etc/nginx/ops-upstreams/sample.conf), and provision would replace it");
      expect((await root('cat /etc/nginx/sites-available/sample; ls /etc/nginx/ops-upstreams')).stdout).toBe(own);
    } finally {
      await root('rm -rf /etc/nginx && mv /root/nginx.ops-test /etc/nginx');
    }
    expect((await provision(project.ctx(), project.env()))[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
  }, 600_000);
  it("dpkg interrupted before it finished (apt: \"dpkg was interrupted, you must manually run 'dpkg --configure -a'\") is finished first, said, and provision installs", async () => {
    // A package unpacked but never configured, and dpkg's journal not replayed: what a VM shut down mid-upgrade leaves.
    // (dpkg replays its journal whenever it runs: the purges first.)
    await asRoot(host, 'dpkg --purge at bc >/dev/null 2>&1 || true; cd /root && apt-get download -q at >/dev/null 2>&1 && dpkg --unpack /root/at_*.deb >/dev/null 2>&1 && rm -f /root/at_*.deb && touch /var/lib/dpkg/updates/0001');
    project.write({ ...base, provision: { packages: ['at', 'bc'] } });
    const reporter = new MemoryReporter();
    const result = await provision(project.ctx(reporter), project.env());
    expect(reporter.text()).toContain('dpkg was interrupted on this host before it finished (its journal, /var/lib/dpkg/updates, is not empty): finishing it first (dpkg --configure -a)');
    expect(result[0]!.items).toEqual(expect.arrayContaining([{ name: 'packages', state: 'changed' }]));
    expect(await asRoot(host, 'ls /var/lib/dpkg/updates | wc -l; dpkg-query -W -f="\\${Status}\\n" at bc')).toBe('0\ninstall ok installed\ninstall ok installed');
    expect((await provision(project.ctx(), project.env()))[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
  }, 600_000);

  it('a package provision needs that the admin put on hold (apt-mark hold) is refused by name with the fix, nothing installed; one on hold and installed is taken as installed', async () => {
    await asRoot(host, 'dpkg --purge lsof >/dev/null 2>&1 || true; apt-mark hold lsof >/dev/null; apt-mark hold nginx >/dev/null');
    project.write({ ...base, provision: { packages: ['lsof'] } });
    try {
      const e = (await provision(project.ctx(), project.env()).catch((x: unknown) => x)) as Error;
      expect(e.message).toContain('on hold on this host: lsof (apt-mark hold: kept from being installed or changed), and provision needs it installed: apt-mark unhold lsof (or take it out of provision.packages), then run provision again');
      expect(await asRoot(host, 'dpkg-query -W -f="\\${Status}" lsof')).toBe('hold ok not-installed');
      await asRoot(host, 'apt-mark unhold lsof >/dev/null');
      // nginx on hold (installed) is installed: nothing to do for it, every run.
      const result = await provision(project.ctx(), project.env());
      expect(result[0]!.items).toEqual(expect.arrayContaining([{ name: 'packages', state: 'changed' }]));
      expect((await provision(project.ctx(), project.env()))[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
    } finally {
      await asRoot(host, 'apt-mark unhold lsof nginx >/dev/null');
    }
  }, 600_000);

  it('an apt source this host cannot read (a mirror gone) is said, naming its file, and apt goes on with the lists it has', async () => {
    // Lists older than 6 h: provision refreshes them, and apt-get update fails on the source it cannot read.
    await asRoot(host, "dpkg --purge ed >/dev/null 2>&1 || true; echo 'deb http://10.99.99.99/debian bookworm main' > /etc/apt/sources.list.d/gone.list; find /var/lib/apt/lists -name '*_Packages*' -exec touch -d '-7 hours' {} +");
    project.write({ ...base, provision: { packages: ['ed'] } });
    try {
      const reporter = new MemoryReporter();
      const result = await provision(project.ctx(reporter), project.env());
      expect(reporter.text()).toContain('apt-get update could not read every package source of this host, so apt goes on with the lists it has:');
      expect(reporter.text()).toContain("The repository 'http://10.99.99.99/debian bookworm Release' does not have a Release file.");
      expect(reporter.text()).toContain('fix or remove that source (in /etc/apt/sources.list.d/gone.list ), then apt-get update');
      expect(result[0]!.items).toEqual(expect.arrayContaining([{ name: 'packages', state: 'changed' }]));
    } finally {
      await asRoot(host, 'rm -f /etc/apt/sources.list.d/gone.list');
    }
  }, 600_000);

  it("a file or symlink another user made at a name in /tmp does not take apt's log (root would write through it)", async () => {
    await asRoot(host, 'dpkg --purge dc >/dev/null 2>&1 || true; echo precious > /root/precious; for n in ops-apt.log; do ln -sfn /root/precious /tmp/$n; chown -h nobody /tmp/$n; done');
    project.write({ ...base, provision: { packages: ['dc'] } });
    try {
      await provision(project.ctx(), project.env());
      expect(await asRoot(host, 'cat /root/precious; ls /tmp | grep "^ops-apt\\." | grep -cvx ops-apt.log || true')).toBe('precious\n0');
    } finally {
      await asRoot(host, 'rm -f /tmp/ops-apt.log /root/precious');
    }
  }, 600_000);

  it('nginx stopped while another server holds port 80: provision fails saying why nginx did not start (its error log: the port in use), and completes once the port is free', async () => {
    project.write(base);
    const pid = await asRoot(host, 'systemctl stop nginx; nohup python3 -m http.server 80 >/dev/null 2>&1 </dev/null & echo $!');
    try {
      await asRoot(host, untilListening(80));
      const e = (await provision(project.ctx(), project.env()).catch((x: unknown) => x)) as Error;
      expect(e.message).toMatch(/nginx did not start; its last lines \(journalctl -u nginx\):[\s\S]*bind\(\) to [^ ]*:80 failed \(98: Address already in use\)/);
    } finally {
      await asRoot(host, `kill ${pid}; ${untilFree(80)}`); // (nginx's start would find the port still taken)
    }
    await provision(project.ctx(), project.env());
    expect(await asRoot(host, 'systemctl is-active nginx')).toBe('active');
  }, 600_000);
  it('a package in provision.packages that no apt source has (a typo) is named with the setting to correct, nothing else changed', async () => {
    project.write({ ...base, provision: { packages: ['nginxx'] } });
    try {
      const e = (await provision(project.ctx(), project.env()).catch((x: unknown) => x)) as Error;
      expect(e.message).toContain("nginxx, in provision.packages, is in none of this host's apt sources (Debian bookworm: https://packages.debian.org/bookworm/nginxx): correct its name in environments/e2e/environment.yml, or add the apt source that has it, then run provision again");
      expect(e.message.match(/E: Unable to locate package nginxx/g)).toHaveLength(1);
    } finally {
      project.write(base);
    }
    expect((await provision(project.ctx(), project.env()))[0]!.items.filter((i) => i.state === 'changed')).toEqual([]);
  }, 600_000);
});
