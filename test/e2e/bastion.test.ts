// Issue 21, jump hosts, on the lab: a target host whose sshd listens only on a private network (test/hosts
// `lans`: a bridge the machine has no route to) and a bastion on that network too. A deploy through the
// bastion succeeds, over one connection to the bastion and one (tunnelled) to the target; a direct attempt
// cannot reach the target; each hop's failure is said as such: bastion unreachable, bastion key mismatch,
// target unreachable from the bastion, target key mismatch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getLockStatus } from '../../core/ops/records.ts';
import { downHost, sshRun, upHost, type Host } from '../hosts/index.ts';
import { runOps } from '../support/cli.ts';
import { appRepo, configureSshd, get, makeProject, readyHost, sshLogins, testConfig, testDatabase, type TestProject } from './support.ts';

let bastion: Host;
let target: Host;
let project: TestProject;
let config: Record<string, unknown>;
const lan = `bl${process.pid % 10000}`;

const ops = (...argv: string[]) => runOps(argv, { root: project.root, processEnv: { PATH: process.env.PATH, HOME: process.env.HOME, USER: 'e2e', NO_COLOR: '1' } });

/** The environment with the target at its private address, behind `via` (or with no bastion). */
function write(via: Record<string, unknown> | undefined, target_: Record<string, unknown> = {}): void {
  const hosts = (config.hosts as Record<string, unknown>[]).map((h) => ({ ...h, ...target_ }));
  project.write({ ...config, hosts, ...(via ? { bastion: via } : {}), ssh: { ...(config.ssh as object), connect_timeout: 8, connect_retries: 0 } });
}

beforeAll(async () => {
  [bastion, target] = await Promise.all([
    upHost({ name: `bas${process.pid % 1000}`, fresh: true, owner: process.env.OPS_TESTHOSTS_OWNER, lans: [lan] }),
    readyHost('tgt', { lans: [lan] }),
  ]);
  // The target's sshd listens on its private address only: from the machine, nothing answers on :22.
  await configureSshd(target, [`ListenAddress ${target.lans[lan]}`]);
  await sshRun(target, 'true', { allowFailure: true }); // (the reload above restarted sshd's listener)
  config = testConfig([target], await appRepo(), await testDatabase(`bastion_${process.pid}`));
  (config.hosts as Record<string, unknown>[])[0]!.address = target.lans[lan];
  project = makeProject('e2e', config);
}, 900_000);

afterAll(async () => {
  await Promise.all([bastion && downHost(bastion.name, { purge: true }), target && downHost(target.name, { purge: true })]);
  project?.cleanup();
});

const through = () => ({ address: bastion.address, user: 'deploy', host_key: bastion.hostKey });

describe.sequential('hosts behind a bastion', () => {
  it('the target cannot be reached directly from the machine', async () => {
    write(undefined);
    const r = await ops('ping', 'e2e');
    expect(r.code).toBe(1);
    expect(r.out + r.err).toMatch(new RegExp(`✗ ${target.name} \\(${target.lans[lan]!.replace(/\./g, '\\.')}\\): cannot connect to ${target.name} \\(deploy@${target.lans[lan]!.replace(/\./g, '\\.')}:22\\): no route to the host`));
  }, 120_000);

  it('a deploy through the bastion succeeds: one connection to the bastion, the target tunnelled inside it', async () => {
    write(through());
    const before = await sshLogins(bastion);
    const r = await ops('deploy', 'e2e', '--ref', 'v1');
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out + r.err).not.toMatch(/^\s+at /m);
    expect((await get(target)).body).toContain('Version 1.0.0');
    // The deploy's login on the bastion, and this count's own.
    expect((await sshLogins(bastion)) - before - 1).toBe(1);
    const noop = await ops('deploy', 'e2e', '--ref', 'v1');
    expect(noop.code, noop.out + noop.err).toBe(0);
    expect(noop.out).toMatch(/Already live/);
    const ping = await ops('ping', 'e2e');
    expect(ping.code, ping.out + ping.err).toBe(0);
    expect(ping.out).toMatch(new RegExp(`✓ ${target.name} .*key verified, ${target.name}`));
    expect((await getLockStatus(project.ctx(), project.env())).map((l) => l.lock.state)).toEqual(['free']);
  }, 300_000);

  it('a per-host bastion works the same', async () => {
    write(undefined, { bastion: through() });
    const r = await ops('deploy', 'e2e', '--ref', 'v2');
    expect(r.code, r.out + r.err).toBe(0);
    expect((await get(target)).body).toContain('Version 2.0.0');
  }, 300_000);

  it('each hop says what failed: bastion unreachable, bastion key mismatch, target unreachable from it, target key mismatch', async () => {
    const failure = async (via: Record<string, unknown>, hostFields: Record<string, unknown> = {}) => {
      write(via, hostFields);
      const r = await ops('ping', 'e2e');
      expect(r.code).toBe(1);
      expect(r.out + r.err).not.toMatch(/^\s+at /m);
      return r.out + r.err;
    };
    const b = bastion.address.replace(/\./g, '\\.');
    const t = target.lans[lan]!.replace(/\./g, '\\.');
    expect(await failure({ ...through(), port: 2 })).toMatch(new RegExp(`cannot connect to bastion deploy@${b}:2: connection refused`));
    const wrong = await failure({ ...through(), host_key: target.hostKey }); // another machine's key
    expect(wrong).toMatch(new RegExp(`host key of bastion deploy@${b}:22 does not match the pinned key: refusing to connect`));
    expect(wrong).toMatch(/put the key line in bastion\.host_key/);
    expect(await failure(through(), { port: 2222 })).toMatch(new RegExp(`bastion ${b} cannot reach ${target.name} \\(${t}:2222\\): .*(refused|failed)`));
    const targetKey = await failure(through(), { host_key: bastion.hostKey });
    expect(targetKey).toMatch(new RegExp(`host key of ${target.name} \\(deploy@${t}:22\\) through bastion ${b} does not match the pinned key`));
    expect(targetKey).toMatch(/put the key line in hosts\[\]\.host_key/);
    write(through());
  }, 300_000);
});
