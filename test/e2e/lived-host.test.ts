// Provision on a host an admin has already lived on (a real provisioned host, then changed the ways real hosts are):
// a configuration file the admin wrote before the package that ships it was installed (dpkg's conffile prompt, which
// would read the step's script from stdin), and another package job holding apt's and dpkg's locks (unattended-upgrades
// on a VM's first boot). Provision keeps the admin's file and says so; waits for the lock, naming who holds it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provision } from '../../core/ops/provision.ts';
import { MemoryReporter } from '../../core/report.ts';
import { downHost, sshRun, type Host } from '../hosts/index.ts';
import { appRepo, makeProject, readyHost, testConfig, type TestProject } from './support.ts';

let host: Host;
let project: TestProject;
let base: Record<string, unknown>;
const root = (command: string) => sshRun(host, `sudo sh -c ${JSON.stringify(command)}`);

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
});
