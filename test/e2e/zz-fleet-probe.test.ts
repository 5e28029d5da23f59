// SCRATCH probe (not committed): fleet faults.
import { afterAll, beforeAll, describe, it } from 'vitest';
import { downHost, sshRun, type Host } from '../hosts/index.ts';
import { get, makeProject, pythonWebApp, readyHost, type TestProject } from './support.ts';
import { runOps, spawnOps } from '../support/cli.ts';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let hosts: Host[] = [];
let project: TestProject;
let repo = '';
const H = (hs: Host[]) => hs.map((h) => ({ name: h.name, address: h.address, user: h.user, host_key: h.hostKey }));
let cfg: (hs: Host[], extra?: Record<string, unknown>) => Record<string, unknown>;
const ops = (...argv: string[]) => runOps(argv, { root: project.root, processEnv: { PATH: process.env.PATH, HOME: process.env.HOME, USER: 'e2e', NO_COLOR: '1' } });
const log = (label: string, x: unknown) => console.log(`\n===== ${label} =====\n${typeof x === 'string' ? x : JSON.stringify(x, null, 1)}`);
const sh = async (h: Host, s: string) => (await sshRun(h, s).catch((e: Error) => ({ stdout: `ERR ${e.message}` }))).stdout;
const look = async (label: string) => {
  for (const h of hosts) {
    const body = await get(h).then((r) => r.body, (e: Error) => `ERR ${e.message}`);
    log(`${label} ${h.name}`, `serves: ${body}\nlock: ${await sh(h, 'sudo ls -la /srv/sample/.ops/lock 2>&1 | head -3')}\naudit: ${await sh(h, 'sudo tail -3 /srv/sample/.ops/audit.log')}\ncurrent: ${await sh(h, 'readlink /srv/sample/current')}`);
  }
};

beforeAll(async () => {
  repo = join(mkdtempSync(join(tmpdir(), 'fleet-')), 'app');
  initRepo(repo, { 'server.py': pythonWebApp('("bad" if os.path.exists("/etc/ops-unhealthy") else "ok") if self.path == "/health" else "version " + VERSION', 'VERSION = open("VERSION").read().strip()', { handle: 'if self.path == "/health" and os.path.exists("/etc/ops-unhealthy"):\n    self.send_response(503); self.end_headers(); return' }), VERSION: '1\n' });
  gitIn(repo, ['tag', 'v1']);
  for (const v of ['2', '3', '4', '5', '6']) {
    commit(repo, { VERSION: `${v}\n` }, `version ${v}`);
    gitIn(repo, ['tag', `v${v}`]);
  }
  hosts = await Promise.all([readyHost('fla'), readyHost('flb'), readyHost('flc'), readyHost('fld')]);
  cfg = (hs, extra = {}) => ({
    app: 'sample', repository: repo, ref: 'v1', hosts: H(hs),
    ssh: { identity_file: hosts[0]!.identityFile, connect_timeout: 10 },
    release: { python_requirements: '', node_dir: '', build: 'sleep 2', migrate: 'true' },
    switch: { drain: 1, health_timeout: 8, batch_size: 1 },
    programs: { web: { command: '{python} server.py {port}', port: 5100, health: '/health', env: {} } },
    routes: { '/': 'web' },
    ...extra,
  });
  project = makeProject('fleet', cfg(hosts.slice(0, 3)));
}, 900_000);

afterAll(async () => {
  await Promise.all(hosts.map((h) => downHost(h.name, { purge: true })));
  project?.cleanup();
});

describe.sequential('probe', () => {
  it('s1 deploy v1', async () => {
    const r = await ops('deploy', 'fleet', '--ref', 'v1');
    log('S1', r);
  }, 600_000);
  it('s2 health fails on b in batch 2', async () => {
    await sh(hosts[1]!, 'sudo touch /etc/ops-unhealthy');
    const r = await ops('deploy', 'fleet', '--ref', 'v2');
    log('S2 code/out/err', r);
    await look('S2');
    log('S2 status', await ops('status', 'fleet'));
    await sh(hosts[1]!, 'sudo rm -f /etc/ops-unhealthy');
  }, 600_000);
  it('s3 rollback with different releases', async () => {
    const r = await ops('rollback', 'fleet');
    log('S3', r);
    await look('S3');
    log('S3 status', await ops('status', 'fleet'));
  }, 600_000);
  it('s4 host d added, never deployed', async () => {
    project.write(cfg(hosts));
    log('S4 dry', await ops('deploy', 'fleet', '--ref', 'v3', '--dry-run'));
    log('S4 rollback', await ops('rollback', 'fleet'));
    const r = await ops('deploy', 'fleet', '--ref', 'v3');
    log('S4 deploy', r);
    await look('S4');
    log('S4 status', await ops('status', 'fleet'));
  }, 600_000);
  it('s5 two hosts same address', async () => {
    const hs = H(hosts.slice(0, 3));
    project.write({ ...cfg(hosts.slice(0, 3)), hosts: [...hs, { ...hs[2]!, name: 'flc-alias' }] });
    log('S5 deploy', await ops('deploy', 'fleet', '--ref', 'v4'));
    log('S5 rollback', await ops('rollback', 'fleet'));
    log('S5 status', await ops('status', 'fleet'));
    project.write(cfg(hosts.slice(0, 3)));
  }, 600_000);
  it('s6 host c unreachable from start', async () => {
    await sh(hosts[2]!, 'sudo systemctl stop ssh.socket ssh 2>&1; sudo pkill -f "sshd: deploy" ; true');
    log('S6 deploy', await ops('deploy', 'fleet', '--ref', 'v4'));
    log('S6 rollback', await ops('rollback', 'fleet'));
    log('S6 status', await ops('status', 'fleet'));
  }, 600_000);
  it('s7 ctrl-c during rolling deploy', async () => {
    project.write(cfg(hosts.slice(0, 2), { switch: { drain: 1, health_timeout: 8, batch_size: 1 } }));
    const p = await spawnOps(['deploy', 'fleet', '--ref', 'v5'], project.root, (o) => /switch/.test(o), 'switch', 300_000);
    const code = await p.stop('SIGINT');
    log('S7', `code ${code}\n${p.out()}`);
    await look('S7');
    log('S7 status', await ops('status', 'fleet'));
  }, 600_000);
});
