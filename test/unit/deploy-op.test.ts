// The deploy operation's decisions, against the recording transport (no host): which steps run in which
// order for a first deploy, a no-op, a failed build, an unprovisioned host, a dry run, a hostile ref.
import { PROVISIONED_KEYS } from '../../core/steps/system.ts';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { execFileSync } from 'node:child_process';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { loadEnvironment } from '../../core/config/environment.ts';
import type { OpsContext } from '../../core/context.ts';
import { deploy, deploySummary, reportDeploy } from '../../core/ops/deploy.ts';
import { diff, formatDiff } from '../../core/ops/diff.ts';
import { deployFingerprint, settingsDigest } from '../../core/ops/deploy-plan.ts';
import { refuseMaskedNginx, refuseTakenPorts, refuseUnready } from '../../core/ops/deploy-host.ts';
import { parseState } from '../../core/ops/host-state.ts';
import { FAILURE_KEYS, parseReports, reportLine } from '../../core/remote/types.ts';
import { resolveTarget } from '../../core/target.ts';
import { ConnectionLostError, OpsError, failedResult, formatError } from '../../core/errors.ts';
import { MemoryReporter } from '../../core/report.ts';
import { RecordingRemote, type Responder } from '../../core/remote/recording.ts';
import type { Step } from '../../core/remote/types.ts';
import { FACTS_KEYS } from '../../core/steps/facts.ts';
import { LIBRARY_KEYS } from '../../core/steps/libraries.ts';
import { describeHolder, LOCK_KEYS, LOCK_UNPROVISIONED_EXIT } from '../../core/steps/lock.ts';
import { runInfo } from '../../core/runinfo.ts';
import { LOCK_LOST_EXIT, LOCK_LOST_MARK } from '../../core/steps/libraries.ts';
import { PREFLIGHT_KEYS, RELEASE_KEYS } from '../../core/steps/release.ts';
import { PREVIOUS_KEYS, SWITCH_KEYS } from '../../core/steps/switch.ts';
import { opsLines, type ReportText } from './reports.helpers.ts';
import { TEST_HOST_KEY, scratchProject } from './project.helpers.ts';

/** What the fake lock step (which also looks at the host: deployState) and the disk step report. */
const STATE = { ...PROVISIONED_KEYS, ...LOCK_KEYS, ...RELEASE_KEYS, ...PREFLIGHT_KEYS, ...LIBRARY_KEYS, ...FACTS_KEYS };

const KEY = TEST_HOST_KEY;
let root: string;
let v1: string;

beforeAll(async () => {
  ({ root, v1 } = await scratchProject('ops-deploy-op-', 'x', {
    app: 'sample',
    ref: 'v1',
    hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }],
    programs: { server: { command: 'run', port: 3579, health: '/health' }, client: { command: 'run', port: 3000 } },
    env: { MODE: 'live', DB: 'postgresql://u:s3cret-db-pass@db/x' },
  }));
}, 60_000);

/**
 * A project of its own holding environment `x` with `release` settings appended (two environments on one host would
 * be refused as colliding): its root.
 */
function projectWithRelease(release: string): string {
  const other = mkdtempSync(join(tmpdir(), 'ops-deploy-op-release-'));
  mkdirSync(join(other, 'environments', 'x'), { recursive: true });
  writeFileSync(join(other, 'package.json'), '{}');
  writeFileSync(join(other, 'environments', 'x', 'environment.yml'), `${readFileSync(join(root, 'environments', 'x', 'environment.yml'), 'utf8')}release:\n${release}`);
  return other;
}

/** `lockToo`: `respond` answers the lock step as well. */
function harness(state: string, respond: Responder = () => undefined, lockToo = false) {
  const remote = new RecordingRemote('web1', 'deploy', 'sample', (step) => {
    if (step.name === 'lock' && !lockToo) return { stdout: `${opsLines(STATE, 'lock acquired')}${state}` };
    return respond(step);
  });
  let connections = 0;
  const reporter = new MemoryReporter();
  const ctx: OpsContext = {
    root,
    reporter,
    processEnv: { PATH: process.env.PATH },
    connector: async () => {
      connections++;
      return remote;
    },
  };
  return { remote, ctx, reporter, connections: () => connections };
}


/**
 * Three hosts web1-3 of a scratch project (its environment x with `extra` settings) whose steps answer as `respond`
 * says, given the host's name and the lock step's answer of a host serving one release on slot blue (`live`); each
 * host's recording by name.
 */
async function threeHosts(prefix: string, extra: Record<string, unknown>, respond: (host: string, step: Step, live: string) => ReturnType<Responder>) {
  const three = await scratchProject(prefix, 'x', {
    app: 'sample',
    ref: 'v1',
    hosts: ['web1', 'web2', 'web3'].map((name, i) => ({ name, address: `192.0.2.${11 + i}`, host_key: KEY })),
    programs: { server: { command: 'run', port: 3579, health: '/health' }, client: { command: 'run', port: 3000 } },
    ...extra,
  });
  const live = opsLines(STATE, 'lock acquired', 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${three.v1}`);
  const remotes = new Map<string, RecordingRemote>();
  const ctx: OpsContext = {
    root: three.root,
    reporter: new MemoryReporter(),
    processEnv: { PATH: process.env.PATH },
    connector: async (_env, host) => {
      const remote = new RecordingRemote(host.name, 'deploy', 'sample', (step) => respond(host.name, step, live));
      remotes.set(host.name, remote);
      return remote;
    },
  };
  return { three, remotes, ctx };
}

/** The messages of the audit lines (JSON, shell-quoted) a recorded step carries for the host to append. */
function auditMessages(stdin: string): string[] {
  return [...stdin.matchAll(/'(\{"time":[^']*\})'/g)].map((m) => (JSON.parse(m[1]!) as { message?: string }).message ?? '');
}

describe('deploy operation', () => {
  it('first deploy: code, release (with its .env), dependencies, build, migrate, start, switch, prune — over one connection', async () => {
    const h = harness(opsLines(STATE, 'provisioned 2026-11-25', 'current '));
    const r = await deploy(h.ctx, loadEnvironment('x', root), {});
    expect(h.connections()).toBe(1);
    // uv's Python set starts once the node set is made, beside the build.
    expect(h.remote.stepNames()).toEqual(['lock', 'receive code', 'release', 'node dependencies', 'build', 'python dependencies', 'migrate', 'start blue', 'switch', 'prune', 'unlock']);
    expect(r.sha).toBe(v1);
    expect(r.release).toMatch(new RegExp(`^\\d{8}T\\d{6}Z-${v1.slice(0, 12)}$`));
    // Code as a pack, .env and environ (the pipeline commands' copy) through SFTP, all private; never on a command line.
    expect(h.remote.uploads.map((u) => [u.path.replace(/[^/]+$/, ''), u.mode])).toEqual([
      ['/srv/sample/.ops/uploads/', 0o600],
      ['/srv/sample/.ops/uploads/', 0o600],
      ['/srv/sample/.ops/uploads/', 0o600],
      ['/srv/sample/.ops/uploads/', 0o600],
    ]);
    // Each fenced by the run's lock as its steps are (run_lock_guard first in the upload's own script).
    for (const u of h.remote.uploads) expect(u.guard, u.path).toMatch(/\nrun_lock_guard$/);
    // The .env files go beside the code (at once): told apart by name, not by order.
    const upload = (suffix: string) => h.remote.uploads.find((u) => u.path.endsWith(suffix))!.content;
    expect(upload('.pack').subarray(0, 4).toString()).toBe('PACK');
    expect(upload('.env').toString()).toContain("DB='postgresql://u:s3cret-db-pass@db/x'");
    expect(upload('.environ').toString()).toContain('DB=postgresql://u:s3cret-db-pass@db/x\0');
    // The masks file (what the host masks itself: ops status and logs run without the key): empty, no value comes
    // from a secret here (core/steps/masks.ts releaseMasks; test/unit/host-masks.test.ts).
    expect(upload('.masks').toString()).toBe('');
    expect(h.remote.runs.length).toBeGreaterThan(5);
    for (const run of h.remote.runs) expect(run.stdin + run.commandLine).not.toContain('s3cret-db-pass');
    // The previous release is kept warm: no stop step. The audit line is written with the unlock.
    const audit = /printf '%s\\n' '(\{.*\})' >> \/srv\/sample\/\.ops\/audit\.log/.exec(h.remote.runs.at(-1)!.stdin);
    expect(JSON.parse(audit![1]!)).toMatchObject({ operation: 'deploy', result: 'success', sha: v1, release: r.release });
  });

  // What the state step reports when the commit deployed is live: the live check, and nothing a deploy going on needs.
  it('the same sha already live and healthy: a no-op, nothing but the lock', async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', `current 20261125T120000Z-${v1.slice(0, 12)}`, 'slot blue', `live_sha ${v1}`, 'live_health ok'));
    const r = await deploy(h.ctx, loadEnvironment('x', root), {});
    expect(r.noop).toBe(true);
    expect(h.remote.stepNames()).toEqual(['lock', 'unlock']);
    expect(h.remote.runs[1]!.stdin).toContain('"result":"no-op"');
    // Its summary names the live release once: no "previous release" (itself) nor an empty step table.
    const summary = deploySummary(r);
    expect(summary).toMatch(new RegExp(`^### Already live: x @ ${v1.slice(0, 12)}`));
    expect(summary).toContain(`| release | \`20261125T120000Z-${v1.slice(0, 12)}\` |`);
    expect(summary).not.toContain('previous release');
    expect(summary).not.toContain('| step |');
    // A ref from a workflow_dispatch input and a host's note, from outside: shown as they are, the table whole.
    const odd = deploySummary({ ...r, ref: 'feat/a|b`x', hosts: r.hosts.map((x) => ({ ...x, notes: ['<img src=x> @octocat'] })) });
    expect(odd).toContain('| ref | ``feat/a\\|b`x`` (');
    expect(odd).not.toMatch(/(?<!\\)<img|@octocat/);
  });

  it('the same sha live, deployed with another .env or settings (live_changed): deployed again, said so; the switch records the new fingerprint and the state step was asked with it', async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', `current 20261125T120000Z-${v1.slice(0, 12)}`, 'slot blue', `live_sha ${v1}`, 'live_changed settings', `has ${v1}`));
    const r = await deploy(h.ctx, loadEnvironment('x', root), {});
    expect(r.noop).toBe(false);
    expect(h.remote.stepNames()).toEqual(expect.arrayContaining(['build', 'start green', 'switch']));
    expect(r.hosts[0]!.notes).toContain(`${v1.slice(0, 12)} is live (20261125T120000Z-${v1.slice(0, 12)}) with another .env or other settings: deployed again`);
    const asked = /\[ "\$live_fingerprint" = '?([0-9a-f]{32})'? \]/.exec(h.remote.runs[0]!.stdin)?.[1];
    expect(asked).toMatch(/^[0-9a-f]{32}$/);
    // The release's line last, after the kept releases' lines, into the new records (renamed once current flipped):
    // the fingerprint, then the sums of the .env and environ uploaded to the host, then the settings alone (by key).
    const uploaded = (suffix: string) => createHash('sha256').update(h.remote.uploads.find((u) => u.path.endsWith(suffix))!.content).digest('hex');
    const record = `${asked} ${uploaded('.env')} ${uploaded('.environ')} ${settingsDigest(loadEnvironment('x', root))}`;
    expect(settingsDigest(loadEnvironment('x', root))).toMatch(/(^|,)programs=[0-9a-f]{8}(,|$)/);
    expect(h.remote.runs.find((x) => x.step.name === 'switch')!.stdin).toContain(`printf '%s %s\\n' "$release_id" '${record}'; } > /srv/sample/.ops/fingerprint.new`);
  });

  it('the same sha live with no record of what it was deployed with (deployed before records, or records damaged): deployed again, saying that, not "another .env"', async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', `current 20261125T120000Z-${v1.slice(0, 12)}`, 'slot blue', `live_sha ${v1}`, 'live_changed unrecorded', `has ${v1}`));
    const r = await deploy(h.ctx, loadEnvironment('x', root), {});
    expect(r.noop).toBe(false);
    expect(r.hosts[0]!.notes).toContain(`${v1.slice(0, 12)} is live (20261125T120000Z-${v1.slice(0, 12)}) with no record of what it was deployed with that this ops can compare (deployed by an older ops, whose record is the fingerprint of its own day's settings alone; before such records were kept or while releases shared one .env; or its record missing or damaged): deployed again`);
  });

  it('the same sha live, its files changed on the host since it went live (live_changed files): deployed again, naming the file; the switch records the new release\'s files and the release step records them as made', async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', `current 20261125T120000Z-${v1.slice(0, 12)}`, 'slot blue', `live_sha ${v1}`, 'live_changed files', 'live_changed_file server/app.py', `has ${v1}`));
    const r = await deploy(h.ctx, loadEnvironment('x', root), {});
    expect(r.noop).toBe(false);
    expect(h.remote.stepNames()).toEqual(expect.arrayContaining(['build', 'start green', 'switch']));
    expect(r.hosts[0]!.notes).toContain(`${v1.slice(0, 12)} is live (20261125T120000Z-${v1.slice(0, 12)}) with its files changed on the host since it went live (e.g. server/app.py): deployed again`);
    expect(h.remote.runs[0]!.stdin).toContain('live_tree=$(tree_changed "$cur" "$release_record" 2>/dev/null)');
    expect(h.remote.runs.find((x) => x.step.name === 'release')!.stdin).toMatch(/\ntree_made '?\/srv\/sample\/releases\/\.new-[^ ]* '?\/srv\/sample\/\.ops\/releases\//);
    expect(h.remote.runs.find((x) => x.step.name === 'switch')!.stdin).toContain('tree_record /srv/sample/releases/"${release_id}" /srv/sample/.ops/releases/"${release_id}"');
  });

  it('deployFingerprint: the .env, environ and settings that shape a host, not how it is reached nor how a run proceeds (rollout pace, health gate, lock wait, drain) nor key order', () => {
    const e = loadEnvironment('x', root);
    const dotenv = { dotenv: 'A=1\n', environ: 'A=1\0', forms: {} };
    const fp = deployFingerprint(e, dotenv);
    expect(fp).toMatch(/^[0-9a-f]{32}$/);
    const withConfig = (patch: (c: Record<string, any>) => void) => {
      const config = structuredClone(e.config) as Record<string, any>;
      patch(config);
      return deployFingerprint({ ...e, config: config as typeof e.config }, dotenv);
    };
    expect(deployFingerprint(e, { ...dotenv, dotenv: 'A=2\n' })).not.toBe(fp); // a secret or value changed
    expect(deployFingerprint(e, { ...dotenv, environ: 'A=2\0' })).not.toBe(fp);
    expect(withConfig((c) => (c.programs.server.env = { ...c.programs.server.env, WORKERS: '4' }))).not.toBe(fp);
    expect(withConfig((c) => (c.release.migrate = 'make migrate-all'))).not.toBe(fp);
    expect(withConfig((c) => (c.hosts = [...c.hosts, { ...c.hosts[0], name: 'web9' }]))).toBe(fp);
    expect(withConfig((c) => (c.switch.batch_size = 7))).toBe(fp);
    // How a run proceeds is not what it gives the host: the health gate's pace and patience, the lock's wait, the drain.
    expect(withConfig((c) => (c.switch.health_timeout = 300))).toBe(fp);
    expect(withConfig((c) => (c.switch.health_interval = 1))).toBe(fp);
    expect(withConfig((c) => (c.switch.settle = 1))).toBe(fp);
    expect(withConfig((c) => (c.switch.lock_wait = 600))).toBe(fp);
    expect(withConfig((c) => (c.switch.drain = 5))).toBe(fp);
    // What runs between deploys is: the previous release kept running or not, the green slot's ports.
    expect(withConfig((c) => (c.switch.keep_previous = !c.switch.keep_previous))).not.toBe(fp);
    expect(withConfig((c) => (c.switch.port_offset = 100))).not.toBe(fp);
    expect(withConfig((c) => (c.ref = 'other'))).toBe(fp);
    expect(withConfig((c) => (c.programs = Object.fromEntries(Object.entries(c.programs).reverse())))).toBe(fp);
  });

  it('deployFingerprint: the variables of env in another order are the same .env; a site template is its content, not its name', () => {
    const e = loadEnvironment('x', root);
    const render = (env: Record<string, string>) => ({ dotenv: `# header\n${Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join('')}`, environ: Object.entries(env).map(([k, v]) => `${k}=${v}\0`).join(''), forms: {} });
    const withConfig = (patch: (c: Record<string, any>) => void, env = { A: '1', B: '2' }) => {
      const config = structuredClone(e.config) as Record<string, any>;
      patch(config);
      return deployFingerprint({ ...e, config: config as typeof e.config }, render(env));
    };
    const fp = withConfig(() => undefined);
    expect(withConfig((c) => (c.env = Object.fromEntries(Object.entries(c.env).reverse())), { B: '2', A: '1' })).toBe(fp);
    expect(withConfig(() => undefined, { A: '2', B: '1' })).not.toBe(fp);
    const template = join(root, 'environments', 'x', 'site.conf.tmpl');
    try {
      writeFileSync(template, 'server { {{locations}} }\n');
      const one = withConfig((c) => (c.nginx.site_template = 'site.conf.tmpl'));
      expect(one).not.toBe(fp);
      writeFileSync(template, 'server { add_header X-New 1; {{locations}} }\n');
      expect(withConfig((c) => (c.nginx.site_template = 'site.conf.tmpl'))).not.toBe(one);
    } finally {
      rmSync(template);
    }
  });

  it('the same sha live but unhealthy: says so instead of pretending success', async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', `current 20261125T120000Z-${v1.slice(0, 12)}`, 'slot blue', `live_sha ${v1}`, 'live_health no healthy answer within 3s from server:3579:/health'));
    await expect(deploy(h.ctx, loadEnvironment('x', root), {})).rejects.toThrow(/already live on web1 but not healthy: no healthy answer/);
    expect(h.remote.stepNames()).toEqual(['lock', 'unlock']);
    expect(auditMessages(h.remote.runs.at(-1)!.stdin)).toEqual([`refused, nothing changed: ${v1.slice(0, 12)} is already live on web1 but not healthy: no healthy answer within 3s from server:3579:/health`]);
  });

  it.each(['went live', 'did not go live', 'is not known (the host not answering again)'])('the connection lost during the switch (it goes on on the host), whose release %s there: the run says what the host says serves, asked over a new connection, with a hint', async (outcome) => {
    const old = '20261101T000000Z-aaaaaaaaaaaa';
    let made = '';
    const h = harness(opsLines(STATE, 'provisioned yes', `current ${old}`, 'slot green', `has ${v1}`), (step) => {
      made ||= new RegExp(`\\d{8}T\\d{6}Z-${v1.slice(0, 12)}`).exec(step.script)?.[0] ?? '';
      if (step.name === 'switch') throw new ConnectionLostError('step "switch" on web1 (connection lost): the SSH connection was already closed', 'try again');
      if (step.name === 'settle') return outcome.startsWith('is not known') ? { code: 255 } : { stdout: opsLines(LOCK_KEYS, `live_after ${outcome === 'went live' ? made : old}`) };
      return undefined;
    });
    const e = await deploy(h.ctx, loadEnvironment('x', root), {}).catch((x: unknown) => x as OpsError);
    const text = formatError(e, {});
    expect(text).toMatch(/^step "switch" on web1 \(connection lost\): the SSH connection was already closed\n/);
    expect(text).toMatch(/\n {2}hint: \S/);
    expect(h.remote.stepNames()).toContain('settle');
    const audit = auditMessages(h.remote.runs.at(-1)!.stdin);
    if (outcome === 'went live') {
      expect(text).toContain(`${made} is live on web1 and serves: the switch ended on the host after the connection was lost`);
      expect(text).not.toContain('nothing was switched');
      expect(h.remote.stepNames()).not.toContain('mark failed');
      expect(audit).toEqual([expect.stringMatching(/^live, but step "switch" on web1 \(connection lost\)/)]);
    } else if (outcome === 'did not go live') {
      expect(text).toContain(`web1 still serves ${old}; nothing was switched`);
      expect(audit).toEqual([expect.stringMatching(/^step "switch" on web1 \(connection lost\)/)]);
    } else {
      expect(text).toContain(`whether ${made} went live on web1 is not known`);
      expect(text).not.toMatch(/nothing was switched|still serves|serve the previous release/);
      expect(h.remote.stepNames()).not.toContain('mark failed');
      expect(audit).toEqual([expect.stringMatching(/is not known/)]);
    }
  });

  it('the connection lost during the build: the error says what still serves and that nothing was switched, with a hint', async () => {
    const old = '20261101T000000Z-aaaaaaaaaaaa';
    const h = harness(opsLines(STATE, 'provisioned yes', `current ${old}`, 'slot green', `has ${v1}`), (step) => {
      if (step.name === 'build') throw new ConnectionLostError('step "build" on web1 (connection lost): the SSH connection was already closed', 'try again');
      return undefined;
    });
    const text = formatError(await deploy(h.ctx, loadEnvironment('x', root), {}).catch((x: unknown) => x), {});
    expect(text).toMatch(new RegExp(`^step "build" on web1 \\(connection lost\\): the SSH connection was already closed\nweb1 still serves ${old}; nothing was switched\n {2}hint: try again$`));
    expect(h.remote.stepNames()).not.toContain('settle');
  });

  it('a migration cut off by its connection lost, or killed from outside (exit 143: a forced lock release; 137: the OOM killer): said to be stopped part-way, check the schema, as after a signal to ops', async () => {
    const old = '20261101T000000Z-aaaaaaaaaaaa';
    for (const cut of ['lost', 143, 137] as const) {
      const h = harness(opsLines(STATE, 'provisioned yes', `current ${old}`, 'slot green', `has ${v1}`), (step) => {
        if (step.name !== 'migrate') return undefined;
        if (cut === 'lost') throw new ConnectionLostError('step "migrate" on web1 (connection lost): the SSH connection was already closed', 'try again');
        return { code: cut, stderr: 'Running upgrade 0002 -> 0003' };
      });
      const text = formatError(await deploy(h.ctx, loadEnvironment('x', root), {}).catch((x: unknown) => x), {});
      expect(text, String(cut)).toContain('the migration was stopped part-way: PostgreSQL rolls back a migration run in one transaction (alembic does); check the schema (e.g. alembic current) before deploying again');
      expect(text, String(cut)).toContain(`web1 still serves ${old}; nothing was switched`);
    }
  });

  it('a failed Python set: the node set and the build beside it end first, no migrate, the Python step named', async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot green', `has ${v1}`), (step) =>
      step.name === 'python dependencies' ? { code: 1, stderr: 'ERROR: No matching distribution found for nope==9' } : undefined,
    );
    await expect(deploy(h.ctx, loadEnvironment('x', root), {})).rejects.toThrow(/^step "python dependencies" on web1 failed with exit code 1\n[\s\S]*No matching distribution[\s\S]*web1 still serves 20261101T000000Z-aaaaaaaaaaaa; nothing was switched/);
    const names = h.remote.stepNames();
    expect(names).toContain('build');
    expect(names).not.toContain('migrate');
    expect(names.slice(-3)).toEqual(['mark failed', 'prune', 'unlock']);
  });

  it('pip: a Python set that fails while the node set is still being made (pip starts at once): the node set ends, the build never starts, the Python step named; uv: started once the node set is made, beside the build', async () => {
    const other = projectWithRelease('  python_installer: pip\n');
    const fails = (step: Step) => (step.name === 'python dependencies' ? { code: 1, stderr: 'ERROR: No matching distribution found for nope==9' } : undefined);
    const slowNode = (h: ReturnType<typeof harness>, log: string[]) => {
      const run = h.remote.run.bind(h.remote);
      h.remote.run = async (step, options) => {
        log.push(`start ${step.name}`);
        if (step.name === 'node dependencies') await sleep(200); // npm still unpacking
        const r = await run(step, options).finally(() => log.push(`end ${step.name}`));
        return r;
      };
    };
    const pip = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot green', `has ${v1}`), fails);
    const pipLog: string[] = [];
    slowNode(pip, pipLog);
    await expect(deploy(pip.ctx, loadEnvironment('x', other), {})).rejects.toThrow(/^step "python dependencies" on web1 failed with exit code 1\n[\s\S]*No matching distribution[\s\S]*web1 still serves 20261101T000000Z-aaaaaaaaaaaa; nothing was switched/);
    const names = pip.remote.stepNames();
    expect(names).toContain('node dependencies');
    expect(names).not.toContain('build');
    expect(names).not.toContain('migrate');
    expect(names.slice(-3)).toEqual(['mark failed', 'prune', 'unlock']);
    expect(pipLog.indexOf('start python dependencies')).toBeLessThan(pipLog.indexOf('end node dependencies'));

    // uv (the default): the Python set starts once the node set ended; the build beside it ends, no migration.
    const uv = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot green', `has ${v1}`), fails);
    const uvLog: string[] = [];
    slowNode(uv, uvLog);
    await expect(deploy(uv.ctx, loadEnvironment('x', root), {})).rejects.toThrow(/^step "python dependencies" on web1 failed with exit code 1/);
    expect(uvLog.indexOf('start python dependencies')).toBeGreaterThan(uvLog.indexOf('end node dependencies'));
    expect(uvLog).toContain('end build');
    expect(uv.remote.stepNames()).not.toContain('migrate');
  });

  it('a build that runs Python (release.build_needs_python) waits for the Python set: a failed set, no build', async () => {
    const other = projectWithRelease('  build_needs_python: true\n');
    const fails = (step: Step) => (step.name === 'python dependencies' ? { code: 1, stderr: 'ERROR: No matching distribution found for nope==9' } : undefined);
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot green', `has ${v1}`), fails);
    await expect(deploy(h.ctx, loadEnvironment('x', other), {})).rejects.toThrow(/^step "python dependencies" on web1 failed/);
    expect(h.remote.stepNames()).toContain('node dependencies');
    expect(h.remote.stepNames()).not.toContain('build');
    // The default: the build runs beside the Python set.
    const beside = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot green', `has ${v1}`), fails);
    await expect(deploy(beside.ctx, loadEnvironment('x', root), {})).rejects.toThrow(/^step "python dependencies" on web1 failed/);
    expect(beside.remote.stepNames()).toContain('build');
  });

  it('a failed build: nothing started or switched, the release marked failed, the failure audited', async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot green', `has ${v1}`), (step) =>
      step.name === 'build' ? { code: 2, stderr: 'SyntaxError: Unexpected token' } : undefined,
    );
    await expect(deploy(h.ctx, loadEnvironment('x', root), {})).rejects.toThrow(/step "build" on web1 failed with exit code 2\n[\s\S]*SyntaxError[\s\S]*web1 still serves 20261101T000000Z-aaaaaaaaaaaa; nothing was switched/);
    // One look at the disk after a failed step (was it full?), on the failure path only.
    expect(h.remote.stepNames()).toEqual(['lock', 'release', 'node dependencies', 'build', 'python dependencies', 'disk space', 'mark failed', 'prune', 'unlock']);
    expect(h.remote.runs.at(-1)!.stdin).toContain('"result":"failed"');
  });

  it('a release of that id already on the host (a forced redeploy within the second of a failed one): the next free second', async () => {
    const at = new Date('2026-11-30T03:50:34.400Z');
    const taken = [`20261130T035034Z-${v1.slice(0, 12)}`, `20261130T035035Z-${v1.slice(0, 12)}`] as const;
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`, `release ${taken[0]} ${v1} failed`, `release ${taken[1]} ${v1} failed`));
    const r = await deploy({ ...h.ctx, now: () => at }, loadEnvironment('x', root), { force: true });
    expect(r.release).toBe(`20261130T035036Z-${v1.slice(0, 12)}`);
    const release = h.remote.runs.find((x) => x.step.name === 'release')!;
    expect(release.stdin).toContain(`/srv/sample/releases/${r.release}`);
    expect(release.stdin).not.toContain(taken[0]);
  });

  it('a failed health check (the start broken, not failed cleanly) puts the slot\'s previous release back', async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`), (step) => (step.name === 'start green' ? { code: 1, stderr: 'did not become healthy' } : undefined));
    await expect(deploy(h.ctx, loadEnvironment('x', root), {})).rejects.toThrow(/did not become healthy/);
    expect(h.remote.stepNames().slice(-6)).toEqual(['start green', 'disk space', 'previous back green', 'mark failed', 'prune', 'unlock']);
  });

  it('a start\'s health verdict reaches the error whatever the step printed after it on stderr (its programs\' log lines, supervisor\'s): it is reported, and failureDetail adds it to the tail', async () => {
    const verdict = 'release r did not become healthy on slot green: no healthy answer within 60s from server:3579:/health (redirects in a loop, back to /health (GET /health: 301 to https://user:pw@shop.example.org/health; the probe sent ...): ...)';
    const log = Array.from({ length: 30 }, (_, i) => `--- server-green.err.log line ${i}`).join('\n');
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`), (step) =>
      step.name === 'start green' ? { code: 3, stdout: `${reportLine(FAILURE_KEYS.failure, verdict)}\n`, stderr: `${verdict}; the live release keeps serving\n${log}` } : undefined,
    );
    const err = (await deploy(h.ctx, loadEnvironment('x', root), {}).catch((e: unknown) => e)) as Error;
    expect(err.message).toContain(verdict.replace('user:pw@', 'user:***@'));
    expect(err.message).not.toContain(':pw@');
    expect(err.message).toContain('line 29');
    // Why, in the audit line and in the release's mark: the step and its verdict (masked), not its log's last line.
    const why = `step "start green" on web1 failed with exit code 3: ${verdict.replace('user:pw@', 'user:***@')}`;
    const mark = h.remote.runs.find((r) => r.step.name === 'mark failed')!;
    expect(mark.stdin).toContain(why);
    const unlock = h.remote.runs.at(-1)!;
    expect(unlock.step.name).toBe('unlock');
    expect(auditMessages(unlock.stdin)).toEqual([why]);
    expect(unlock.stdin).not.toContain(':pw@');
  });

  it('the clean-up after the switch fails: the error says the new release is live and serves, the failure is audited, the lock let go', async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`), (step) => (step.name === 'prune' ? { code: 1, stderr: 'rm: cannot remove: Read-only file system' } : undefined));
    const err = (await deploy(h.ctx, loadEnvironment('x', root), {}).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/Read-only file system[\s\S]*\n\d{8}T\d{6}Z-[0-9a-f]{12} is live on web1 and serves; the clean-up after the switch \(stopping the previous slot, pruning old releases\) failed$/);
    expect(err.message).not.toMatch(/still serves 20261101T000000Z-aaaaaaaaaaaa|nothing was switched/);
    expect(h.remote.stepNames().slice(-4)).toEqual(['switch', 'prune', 'disk space', 'unlock']);
    expect(auditMessages(h.remote.runs.at(-1)!.stdin)).toContain('live, but the clean-up after the switch failed: step "prune" on web1 failed with exit code 1: rm: cannot remove: Read-only file system');
  });

  it('the switch fails after `current` flipped (its records: history on a full disk, the fingerprint record): said live, its slot kept, not marked failed', async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`), (step) => {
      if (step.name !== 'switch') return undefined;
      const id = /release_id='?(\d{8}T\d{6}Z-[0-9a-f]{12})/.exec(step.script)![1]!;
      return { code: 1, stdout: opsLines(SWITCH_KEYS, `switched ${id}`), stderr: 'printf: write error: No space left on device' };
    });
    const err = (await deploy(h.ctx, loadEnvironment('x', root), {}).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/No space left on device[\s\S]*\n\d{8}T\d{6}Z-[0-9a-f]{12} is live on web1 and serves; recording it/);
    expect(err.message).not.toMatch(/still serves 20261101T000000Z-aaaaaaaaaaaa|nothing was switched/);
    expect(h.remote.stepNames()).not.toContain('previous back green');
    expect(h.remote.stepNames()).not.toContain('stop green');
    expect(h.remote.stepNames()).not.toContain('mark failed');
    // Why: a full disk, said as such (the step's output is the tool's write error).
    expect(auditMessages(h.remote.runs.at(-1)!.stdin)).toEqual(['live, but recording the switch failed: step "switch" on web1 failed with exit code 1: web1 ran out of disk space under /srv/sample']);
  });

  it('a dependency install that met a full disk early and died of it later (npm: ENOSPC while unpacking, then a truncated binary crashing): said as a full disk, the cause line quoted', async () => {
    const trace = ['npm ERR! code 1', 'npm ERR! command sh -c node install.js', ...Array.from({ length: 75 }, (_, i) => `npm ERR!     at frame${i} (/srv/sample/releases/r/client/node_modules/esbuild/install.js:${i}:5)`), "npm ERR!   signal: 'SIGSEGV',"];
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`), (step) =>
      step.name === 'node dependencies' ? { code: 1, stderr: ["cp: error copying 'a/esbuild/bin/esbuild' to 'client/node_modules/esbuild/bin/esbuild': No space left on device", 'npm WARN tar TAR_ENTRY_ERROR ENOSPC: no space left on device, write', ...trace].join('\n') } : undefined,
    );
    const err = (await deploy(h.ctx, loadEnvironment('x', root), { force: true }).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/SIGSEGV[\s\S]*cp: error copying .*: No space left on device[\s\S]*web1 ran out of disk space under \/srv\/sample/);
    expect(err.message).toMatch(/web1 still serves 20261101T000000Z-aaaaaaaaaaaa; nothing was switched/);
  });

  it('the switch fails before `current` flipped: nothing switched, the slot\'s previous release put back (the error says whether it is warm), the release marked failed', async () => {
    const back = 'the previous release 20261031T000000Z-cccccccccccc is back on slot green, healthy: kept warm, a rollback to it only moves traffic';
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`), (step) => {
      if (step.name === 'switch') return { code: 1, stderr: 'nginx rejected the new configuration' };
      if (step.name === 'previous back green') return { stdout: opsLines(PREVIOUS_KEYS, `previous_back ${back}`) };
      return undefined;
    });
    await expect(deploy(h.ctx, loadEnvironment('x', root), {})).rejects.toThrow(new RegExp(`nginx rejected[\\s\\S]*web1 still serves 20261101T000000Z-aaaaaaaaaaaa; nothing was switched\nweb1: ${back}\n`));
    expect(h.remote.stepNames()).toEqual(expect.arrayContaining(['previous back green', 'mark failed']));
    expect(h.remote.stepNames()).not.toContain('stop green');
  });

  it('a start that failed cleanly (supervisor refused the file: the previous one is back, the warm release runs) is not stopped again', async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`), (step) => (step.name === 'start green' ? { code: 3, stderr: 'supervisor refused the new configuration of slot green' } : undefined));
    await expect(deploy(h.ctx, loadEnvironment('x', root), {})).rejects.toThrow(/supervisor refused the new configuration/);
    expect(h.remote.stepNames().slice(-5)).toEqual(['start green', 'disk space', 'mark failed', 'prune', 'unlock']);
  });

  it('an unprovisioned host: its lock step refuses before it makes anything (no lock, no state read), a clear error before anything is sent', async () => {
    const h = harness('', (step) => (step.name === 'lock' ? { stdout: opsLines(STATE, 'provisioned no'), code: LOCK_UNPROVISIONED_EXIT } : undefined), true);
    const e = (await deploy(h.ctx, loadEnvironment('x', root), {}).catch((x: unknown) => x)) as OpsError;
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message).toBe('web1 is not provisioned for x (run: ops provision x): nothing was sent, built or started');
    expect(e.hint).toBe('run: ops provision x, then ops deploy x');
    // Nothing taken there: nothing to let go (and no audit log to write to).
    expect(h.remote.stepNames()).toEqual(['lock']);
    expect(h.remote.uploads).toEqual([]);
    // The lock step is asked to look for the marker first (before it makes the lock's directory).
    expect(h.remote.runs[0]!.stdin).toContain(`if [ ! -f /srv/sample/.ops/provisioned ]; then ops_report provisioned no; exit ${LOCK_UNPROVISIONED_EXIT}; fi`);
  });

  it('supervisord not running (the state step says so): refused at the lock, naming it and its start, before any build; never "keeps serving"', async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot green', `has ${v1}`, 'supervisor_down 1'));
    const err = (await deploy(h.ctx, loadEnvironment('x', root), {}).catch((e: unknown) => e)) as OpsError;
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toMatch(/^supervisord is not running on web1 \(systemctl start supervisor\): nothing was started \(no build, no migration\)/);
    expect(err.message).not.toMatch(/keeps serving/);
    expect(h.remote.stepNames()).toEqual(['lock', 'unlock']);
    expect(h.remote.uploads).toEqual([]);
    expect(auditMessages(h.remote.runs.at(-1)!.stdin)).toEqual([expect.stringMatching(/^refused, nothing changed: supervisord is not running on web1 \(systemctl start supervisor\): nothing was started/)]);
  });

  it("another nginx file sending requests to a slot's port itself (the state step reports its line): refused at the lock, before any build, naming file, line, port and the upstream to name", async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`, 'nginx_slot_port /etc/nginx/sites-enabled/api:5:         proxy_pass http://127.0.0.1:3579;'));
    const err = (await deploy(h.ctx, loadEnvironment('x', root), {}).catch((e: unknown) => e)) as OpsError;
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toMatch(/^nginx on web1 reads a file besides sample's site that sends requests to a slot's port itself, \/etc\/nginx\/sites-enabled\/api:5: 127\.0\.0\.1:3579 \(program server's port on slot blue\): .*; nothing was started \(no build, no migration\)$/);
    expect(err.hint).toMatch(/^name the upstreams instead in \/etc\/nginx\/sites-enabled\/api \(proxy_pass http:\/\/sample_server, /);
    expect(h.remote.stepNames()).toEqual(['lock', 'unlock']);
    expect(h.remote.uploads).toEqual([]);
  });

  it("another server block taking the site's visitors (the state step's nginxServed, on the live slot, says so): refused at the lock, naming its file, before any build", async () => {
    const taken = `GET /health (program server): nginx answered 200, not from this site's server block: another server block answers 192.0.2.1:80 for the site's name (...), in: /etc/nginx/conf.d/other.conf - remove it, or its listen/server_name, and reload nginx`;
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot green', `has ${v1}`, `nginx_taken ${taken}`));
    const err = (await deploy(h.ctx, loadEnvironment('x', root), {}).catch((e: unknown) => e)) as OpsError;
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toBe(`the site's visitors on web1 do not reach sample's nginx site: ${taken}. The switch would refuse any release there, so nothing was sent, built or started: nothing changed`);
    expect(err.hint).toMatch(/^remove that server block, or its listen or server_name \(nginx -T shows them all\), reload nginx/);
    expect(h.remote.stepNames()).toEqual(['lock', 'unlock']);
    expect(h.remote.uploads).toEqual([]);
    // Asked in the lock step's state read, as the switch asks (one way to tell): no round trip of its own.
    expect(h.remote.runs[0]!.stdin).toContain('# nginxServed: the health paths through nginx');
  });

  it('a process that is not ours on a port of the idle slot: refused at the lock, naming host, port, pid and command, before any build or migration', async () => {
    const live = 'current 20261101T000000Z-aaaaaaaaaaaa';
    // The live slot is blue: the release would start on green (3579 + 1000, 3000 + 1000), where python3 squats.
    const h = harness(opsLines(STATE, 'provisioned yes', live, 'slot blue', `has ${v1}`, 'listener green\tserver\t4242\tother\t\t/tmp\tpython3 -m http.server 3580', 'listener green\tclient\t0\tother\t\t\t'));
    const err = (await deploy(h.ctx, loadEnvironment('x', root), {}).catch((e: unknown) => e)) as OpsError;
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toBe(
      'the ports this release would start on (slot green) are taken on web1: port 3580 (program server) is held by pid 4242 (python3 -m http.server 3580); port 3001 (program client) is held by a socket ss names no process for. Its start would fail, so nothing was started (no build, no migration); web1 still serves 20261101T000000Z-aaaaaaaaaaaa',
    );
    expect(err.hint).toMatch(/^stop what holds them on web1 \(sudo kill 4242, or stop the service it belongs to: ps -o unit= -p 4242\), or move it off ports 3580, 3001; ops status x warns about it/);
    expect(h.remote.stepNames()).toEqual(['lock', 'unlock']);
    expect(h.remote.uploads).toEqual([]);
    // One of our releases that left supervisor's tree is not ours to stop either: named with its release.
    const stray = harness(opsLines(STATE, 'provisioned yes', live, 'slot green', `has ${v1}`, 'listener blue\tserver\t77\tother\t20261001T000000Z-bbbbbbbbbbbb\t/srv/sample/releases/20261001T000000Z-bbbbbbbbbbbb\tpython -m server.main'));
    await expect(deploy(stray.ctx, loadEnvironment('x', root), {})).rejects.toThrow(/slot blue\) are taken on web1: port 3579 \(program server\) is held by pid 77 \(python -m server\.main\), a process of release 20261001T000000Z-bbbbbbbbbbbb that supervisor does not run for slot blue\./);
    expect(stray.remote.stepNames()).toEqual(['lock', 'unlock']);
  });

  it("the idle slot's own processes (the previous release kept warm) and listeners on the live slot are not in the way: the deploy replaces them", async () => {
    const h = harness(
      opsLines(
        STATE,
        'provisioned yes',
        'current 20261101T000000Z-aaaaaaaaaaaa',
        'slot blue',
        `has ${v1}`,
        'proc green\tserver\t500\t20261001T000000Z-bbbbbbbbbbbb\t/srv/sample/releases/20261001T000000Z-bbbbbbbbbbbb\tpython -m server.main',
        'listener green\tserver\t501\ttree\t20261001T000000Z-bbbbbbbbbbbb\t/srv/sample/releases/20261001T000000Z-bbbbbbbbbbbb\tpython -m server.main',
        'listener blue\tserver\t9\tother\t\t/\tsomething else',
      ),
    );
    const r = await deploy(h.ctx, loadEnvironment('x', root), {});
    expect(r.noop).toBe(false);
    expect(h.remote.stepNames()).toEqual(expect.arrayContaining(['build', 'start green', 'switch']));
  });

  it('a listener on the idle slot that our own programs left outside supervisor (report_slot\'s own: a daemon of a release): not refused, the start stops it; a foreign one beside it still refuses', async () => {
    const own = 'listener green\tserver\t502\town\t20261001T000000Z-bbbbbbbbbbbb\t/srv/sample/releases/20261001T000000Z-bbbbbbbbbbbb\tpython -m server.main';
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`, own));
    const r = await deploy(h.ctx, loadEnvironment('x', root), {});
    expect(r.noop).toBe(false);
    expect(h.remote.stepNames()).toEqual(expect.arrayContaining(['build', 'start green', 'switch']));
    const foreign = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`, own, 'listener green\tclient\t77\tother\t\t/\tnc -l 3001'));
    const err = (await deploy(foreign.ctx, loadEnvironment('x', root), {}).catch((e: unknown) => e)) as OpsError;
    expect(err.message).toMatch(/^the ports this release would start on \(slot green\) are taken on web1: port 3001 \(program client\) is held by pid 77 \(nc -l 3001\)\. /);
    expect(err.message).not.toContain('502');
    expect(foreign.remote.stepNames()).toEqual(['lock', 'unlock']);
  });

  it('several hosts with nginx stopped and masked (for good or until the next boot): one refusal naming each of them, hosts whose nginx runs or may be started are not named', () => {
    const read = (host: string, ...lines: ReportText<typeof STATE>[]) => {
      const stdout = opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', ...lines);
      return { host, state: parseState({ stdout, stderr: '', code: 0, durationMs: 0, reports: parseReports(stdout) }) };
    };
    const hosts = [read('web1', 'nginx_stopped masked'), read('web2'), read('web3', 'nginx_stopped disabled'), read('web4', 'nginx_stopped masked-runtime')];
    expect(() => refuseMaskedNginx(hosts)).toThrow(/^nginx is not running on 2 hosts \(web1, web4\) and its unit is masked \(systemctl mask nginx\): the switch could not start it, so nothing was started on any host \(no build, no migration\); their sites stay down as they are$/);
    expect(() => refuseMaskedNginx(hosts.slice(1, 3))).not.toThrow();
  });

  it('several hosts with ports taken on the slot each would start on: one refusal naming every host, each port, pid and what still serves; hosts without are not named', () => {
    const e = resolveTarget(loadEnvironment('x', root));
    const read = (host: string, ...lines: ReportText<typeof STATE>[]) => {
      const stdout = opsLines(STATE, 'provisioned yes', ...lines);
      const result = { stdout, stderr: '', code: 0, durationMs: 0, reports: parseReports(stdout) };
      return { host, state: parseState(result), result };
    };
    const hosts = [
      read('web1', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', 'listener green\tserver\t4242\tother\t\t/tmp\tpython3 -m http.server 3580'),
      // Its warm previous release on the idle slot is its own: not named.
      read('web2', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', 'listener green\tserver\t501\ttree\t20261001T000000Z-bbbbbbbbbbbb\t/srv/sample/releases/20261001T000000Z-bbbbbbbbbbbb\tpython -m server.main'),
      // No live slot: the deploy starts on blue.
      read('web3', 'current ', 'listener blue\tclient\t0\tother\t\t\t', 'listener green\tserver\t9\tother\t\t/\tnot in the way'),
    ];
    const err = (() => {
      try {
        refuseTakenPorts(e, hosts);
      } catch (x) {
        return x as OpsError;
      }
      throw new Error('not refused');
    })();
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toBe(
      [
        'the ports this release would start on are taken on 2 hosts (web1, web3). Its start would fail there, so nothing was started (no build, no migration) on any host:',
        '  - web1 (slot green): port 3580 (program server) is held by pid 4242 (python3 -m http.server 3580); web1 still serves 20261101T000000Z-aaaaaaaaaaaa',
        '  - web3 (slot blue): port 3000 (program client) is held by a socket ss names no process for; web3 had no live release',
      ].join('\n'),
    );
    expect(err.hint).toBe('stop what holds them (on web1: sudo kill 4242, or stop the service it belongs to: ps -o unit= -p 4242; on web3: sudo ss -tlnp shows it), or move it off ports 3580, 3000; ops status x warns about it; then deploy again');
    // One host alone: the one-sentence refusal, as ever.
    expect(() => refuseTakenPorts(e, [hosts[0]!, hosts[1]!])).toThrow(/^the ports this release would start on \(slot green\) are taken on web1: port 3580 \(program server\) is held by pid 4242 \(python3 -m http\.server 3580\)\. Its start would fail/);
    expect(() => refuseTakenPorts(e, [hosts[1]!])).not.toThrow();
  });

  it('the state step reads who holds the idle slot\'s ports with the same report_slot as ops status, and whether nginx runs', async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`));
    await deploy(h.ctx, loadEnvironment('x', root), {});
    const lock = h.remote.runs[0]!.stdin;
    expect(lock).toContain("blue) report_slot green sample-green sample /srv/sample/releases server:3580 client:3001 ;;");
    expect(lock).toContain("*) report_slot blue sample-blue sample /srv/sample/releases server:3579 client:3000 ;;");
    expect(lock).toContain('nginx_master >/dev/null || { REPORT_NGINX_STOPPED=$(nginx_unit); ops_report nginx_stopped "$REPORT_NGINX_STOPPED"; }');
  });

  it('nginx stopped: a warning naming the host before the build, and another when the switch started it; the deploy goes on', async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`, 'nginx_stopped enabled'), (step) =>
      step.name === 'switch' ? { stdout: opsLines(STATE, 'nginx_started 1') } : undefined,
    );
    const r = await deploy(h.ctx, loadEnvironment('x', root), {});
    const out = h.reporter.lines.join('\n');
    expect(out).toContain('warning: nginx is not running on web1: the site is down; the switch will start it');
    expect(out).toContain('warning: nginx was not running on web1: the switch started it (the site was down until then)');
    expect(r.hosts[0]!.notes).toEqual(expect.arrayContaining(['warning: nginx was not running on web1: the switch started it (the site was down until then)']));
    expect(h.remote.stepNames()).toEqual(expect.arrayContaining(['build', 'start green', 'switch', 'prune']));
    // nginx running: not a word about it.
    const quiet = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`));
    await deploy(quiet.ctx, loadEnvironment('x', root), {});
    expect(quiet.reporter.lines.join('\n')).not.toMatch(/nginx (is not|was not) running/);
  });

  it('nginx stopped with its unit masked: refused at the lock, before any build (the switch could not start it)', async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`, 'nginx_stopped masked'));
    const err = (await deploy(h.ctx, loadEnvironment('x', root), {}).catch((e: unknown) => e)) as OpsError;
    expect(err.message).toMatch(/^nginx is not running on web1 and its unit is masked \(systemctl mask nginx\): the switch could not start it, so nothing was started \(no build, no migration\)/);
    expect(err.hint).toContain('sudo systemctl unmask nginx');
    expect(h.remote.stepNames()).toEqual(['lock', 'unlock']);
    // masked until the next boot (systemctl mask --runtime): systemd starts it no more than a masked one
    const runtime = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`, 'nginx_stopped masked-runtime'));
    const again = (await deploy(runtime.ctx, loadEnvironment('x', root), {}).catch((e: unknown) => e)) as OpsError;
    expect(again.message).toMatch(/^nginx is not running on web1 and its unit is masked/);
    expect(again.hint).toContain('unmask --runtime');
    expect(runtime.remote.stepNames()).toEqual(['lock', 'unlock']);
  });

  it('every program value supervisor would refuse and every .env value its readers would corrupt, in one error at plan time: nothing runs on any host', async () => {
    const other = mkdtempSync(join(tmpdir(), 'ops-deploy-op-refused-'));
    mkdirSync(join(other, 'environments', 'x'), { recursive: true });
    writeFileSync(join(other, 'package.json'), '{}');
    const config = parse(readFileSync(join(root, 'environments', 'x', 'environment.yml'), 'utf8')) as Record<string, any>;
    config.programs.server.env = { BOTH: `s3cret'"x`, NEWLINE: 's3cret\nx' };
    config.programs.client.env = { HASH: 's3cret #x' };
    config.env.BAD = `it's "q"\nz`;
    writeFileSync(join(other, 'environments', 'x', 'environment.yml'), stringify(config));
    const h = harness(opsLines(STATE, 'provisioned yes'));
    const err = (await deploy({ ...h.ctx, root: other }, loadEnvironment('x', other), {}).catch((e: unknown) => e)) as OpsError;
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toMatch(/^the settings of x have 2 kinds of problems \(nothing was sent to any host\):\n/);
    expect(err.message).toMatch(/\n1 \.env value of x cannot be written/);
    expect(err.message).toMatch(/\n3 program settings of x cannot be given to supervisor as written/);
    for (const key of ['programs.server.env.BOTH', 'programs.server.env.NEWLINE', 'programs.client.env.HASH']) expect(err.message).toContain(`  - ${key}: supervisor cannot carry this value: `);
    expect(err.message).not.toContain('s3cret');
    expect(h.remote.stepNames()).toEqual([]);
    rmSync(other, { recursive: true, force: true });
  });

  it('a dry run reads the live commit (one read-only step, no lock), prints the plan and the change, changes nothing', async () => {
    const live = `20240101T000000Z-${v1.slice(0, 12)}`;
    const h = harness('', (step) => (step.name === 'state' ? { stdout: opsLines(STATE, 'provisioned yes', `current ${live}`, `live_sha ${v1}`, `release ${live} ${v1} ok`) } : undefined));
    const r = await deploy(h.ctx, loadEnvironment('x', root), { dryRun: true, ref: 'v2' });
    expect(h.connections()).toBe(1);
    expect(h.remote.stepNames()).toEqual(['state']);
    expect(h.remote.uploads).toEqual([]);
    const plan = r.plan!.join('\n');
    expect(plan).toMatch(/environment x: v2 \(tag v2\) = [0-9a-f]{40}[\s\S]*migrate \(first host\): make migrate/);
    expect(plan).toContain(`web1: live ${v1.slice(0, 12)} (${live}) → target`);
    expect(plan).toMatch(/1 new commit\n\s+commits added:\n\s+[0-9a-f]{10}  Sample catalogue 2\.0\.0: datasets \(new migration\), shown on the page  \(Sample App\)/);
    expect(plan).toContain('migrations added: migrations/versions/0003_datasets.py');
    expect(r.changes[0]!.change!.relation).toBe('ahead');
  });

  it('migrations added with release.migrate "": the dry-run plan and ops diff both say a deploy runs none, in the same words', async () => {
    const live = `20240101T000000Z-${v1.slice(0, 12)}`;
    const other = projectWithRelease('  migrate: ""\n');
    const h = harness('', (step) => (step.name === 'state' ? { stdout: opsLines(STATE, 'provisioned yes', `current ${live}`, `live_sha ${v1}`, `release ${live} ${v1} ok`) } : undefined));
    const line = 'migrations added: migrations/versions/0003_datasets.py (release.migrate is "": a deploy runs none)';
    const plan = (await deploy(h.ctx, loadEnvironment('x', other), { dryRun: true, ref: 'v2' })).plan!.join('\n');
    expect(plan).toContain(line);
    expect(plan).not.toMatch(/migrate \(first host\)/);
    expect(formatDiff(await diff(h.ctx, loadEnvironment('x', other), 'v2'))).toContain(line);
    // release.migrate set (the default, make migrate): the line as before.
    expect(formatDiff(await diff(h.ctx, loadEnvironment('x', root), 'v2'))).toMatch(/migrations added: migrations\/versions\/0003_datasets\.py$/m);
    rmSync(other, { recursive: true, force: true });
  });

  it('a dry run gives dry-run=true and no release, url or noop (it deployed nothing), and prints its plan to the log too', async () => {
    const live = `20240101T000000Z-${v1.slice(0, 12)}`;
    const h = harness('', (step) => (step.name === 'state' ? { stdout: opsLines(STATE, 'provisioned yes', `current ${live}`, `live_sha ${v1}`, `release ${live} ${v1} ok`) } : undefined));
    const r = await deploy(h.ctx, loadEnvironment('x', root), { dryRun: true, ref: 'v2' });
    const log = new MemoryReporter();
    reportDeploy(log, r);
    expect(log.outputs).toEqual({ sha: r.sha, 'dry-run': 'true', superseded: 'false', release: '', 'previous-release': '', url: '', noop: '' });
    expect(log.lines.join('\n')).toContain(`web1: live ${v1.slice(0, 12)} (${live}) → target`);
    expect(log.lines).toEqual(r.plan);
  });

  describe('forward-only (the push-triggered prod deploy)', () => {
    const v2 = () => execFileSync('git', ['-C', join(root, 'app'), 'rev-parse', 'v2^{commit}'], { encoding: 'utf8' }).trim();
    const liveV2 = () => opsLines(STATE, 'provisioned yes', `current 20261125T120000Z-${v2().slice(0, 12)}`, 'slot blue', `live_sha ${v2()}`, 'live_health ok', `has ${v1}`);

    it('a target behind the live commit (a superseded push): skipped under the lock with a warning and a no-op audit line; nothing built or switched', async () => {
      const h = harness(liveV2());
      const r = await deploy(h.ctx, loadEnvironment('x', root), { ref: 'v1', forwardOnly: true });
      expect(h.remote.stepNames()).toEqual(['lock', 'unlock']);
      expect(r.superseded).toMatch(new RegExp(`^forward-only: ${v1.slice(0, 12)} is behind the live commit on web1 \\(live ${v2().slice(0, 12)}, 1 commit newer\\)`));
      expect(h.reporter.lines.some((l) => l.startsWith(`warning: forward-only: ${v1.slice(0, 12)} is behind`))).toBe(true);
      expect(h.remote.runs.at(-1)!.stdin).toContain('"result":"no-op"');
      expect(h.remote.runs.at(-1)!.stdin).toContain('forward-only');
      expect(r.release).toBe('');
      const log = new MemoryReporter();
      reportDeploy(log, r);
      expect(log.outputs).toMatchObject({ superseded: 'true', release: '', noop: 'false', 'dry-run': 'false' });
      expect(deploySummary(r)).toMatch(/^### Skipped \(forward-only\): x @ /);
    });

    it('without forward-only (a manual deploy) the same older target is deployed: any ref stays allowed', async () => {
      const h = harness(liveV2());
      const r = await deploy(h.ctx, loadEnvironment('x', root), { ref: 'v1' });
      expect(r.superseded).toBeUndefined();
      expect(h.remote.stepNames()).toEqual(expect.arrayContaining(['release', 'switch']));
    });

    it('a target beside the live commit (history diverged: a force-push, or an older run from before one) fails: neither skipped quietly nor deployed over the live commits', async () => {
      // A commit on v1 that v2 (live) lacks, and that lacks v2: neither is an ancestor of the other.
      const app = join(root, 'app');
      const git = (...a: string[]) => execFileSync('git', ['-C', app, ...a], { encoding: 'utf8', env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' } }).trim();
      const beside = git('commit-tree', '-p', v1, '-m', 'rewritten', `${v1}^{tree}`);
      git('tag', '-f', 'beside', beside);
      const h = harness(liveV2());
      const err = await deploy(h.ctx, loadEnvironment('x', root), { ref: 'beside', forwardOnly: true }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpsError);
      expect((err as OpsError).message).toMatch(new RegExp(`^forward-only: ${beside.slice(0, 12)} does not contain the live commit on web1 \\(live ${v2().slice(0, 12)}: 1 live commit not in the target\\): the histories diverged .*nothing was deployed$`));
      // The push deploy after a manual deploy of another branch's commit fails so: that cause is named, not only a force-push.
      expect((err as OpsError).message).toContain('(a manual deploy of a commit this branch lacks, from another branch; a force-push of the branch; or a run of a commit from before one)');
      expect((err as OpsError).hint).toMatch(/deploy it on purpose without forward-only/);
      expect((err as OpsError).hint).toContain('(ops deploy x --ref <commit>,'); // the environment typed, never a literal <env>
      expect(h.remote.stepNames()).toEqual(['lock', 'unlock']);
      expect(h.remote.runs.at(-1)!.stdin).toContain('"result":"failed"');
      const dry = harness('', (step) => (step.name === 'state' ? { stdout: liveV2() } : undefined));
      const plan = await deploy(dry.ctx, loadEnvironment('x', root), { ref: 'beside', forwardOnly: true, dryRun: true });
      expect(plan.plan![0]).toMatch(/^REFUSED: forward-only: .* does not contain the live commit/);
      // Without forward-only it stays a deploy anyone may make on purpose.
      const manual = harness(liveV2());
      await deploy(manual.ctx, loadEnvironment('x', root), { ref: 'beside' });
      expect(manual.remote.stepNames()).toEqual(expect.arrayContaining(['release', 'switch']));
    });

    it("a live commit the runner's clone lacks (a newer push deployed by another run, not fetched here): refused, not deployed over it", async () => {
      // The newer commit exists only in another clone (pushed and deployed after this runner fetched).
      const other = join(mkdtempSync(join(tmpdir(), 'ops-deploy-op-newer-')), 'app');
      const gitEnv = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' };
      execFileSync('git', ['clone', '-q', join(root, 'app'), other], { env: gitEnv });
      execFileSync('git', ['-C', other, 'commit', '-q', '--allow-empty', '-m', 'newer'], { env: gitEnv });
      const newer = execFileSync('git', ['-C', other, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
      const liveNewer = opsLines(STATE, 'provisioned yes', `current 20261125T130000Z-${newer.slice(0, 12)}`, 'slot blue', `live_sha ${newer}`, 'live_health ok');
      const h = harness(liveNewer);
      const err = await deploy(h.ctx, loadEnvironment('x', root), { ref: 'v2', forwardOnly: true }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpsError);
      expect((err as OpsError).message).toBe(
        `forward-only: whether ${v2().slice(0, 12)} is behind the live commit cannot be told on web1 (live ${newer.slice(0, 12)}: not in this repository): the runner's clone lacks it (a push newer than this checkout, or a commit no branch or tag holds any more: a manually deployed branch since deleted), so a newer commit may be live; nothing was deployed`,
      );
      expect((err as OpsError).hint).toMatch(/^fetch the live commit \(git fetch origin; in a workflow, actions\/checkout with fetch-depth: 0\), then run again; or check which commit/);
      expect(h.remote.stepNames()).toEqual(['lock', 'unlock']);
      expect(h.remote.runs.at(-1)!.stdin).toContain('"result":"failed"');
      const dry = harness('', (step) => (step.name === 'state' ? { stdout: liveNewer } : undefined));
      const plan = await deploy(dry.ctx, loadEnvironment('x', root), { ref: 'v2', forwardOnly: true, dryRun: true });
      expect(plan.plan![0]).toMatch(/^REFUSED: forward-only: whether .* is behind the live commit cannot be told/);
    });

    it('a target ahead of the live commit is deployed; a dry run says the skip in its plan', async () => {
      const ahead = harness(opsLines(STATE, 'provisioned yes', `current 20261125T120000Z-${v1.slice(0, 12)}`, 'slot blue', `live_sha ${v1}`, 'live_health ok'));
      const r = await deploy(ahead.ctx, loadEnvironment('x', root), { ref: 'v2', forwardOnly: true });
      expect(r.superseded).toBeUndefined();
      expect(ahead.remote.stepNames()).toEqual(expect.arrayContaining(['release', 'switch']));
      const dry = harness('', (step) => (step.name === 'state' ? { stdout: liveV2() } : undefined));
      const plan = await deploy(dry.ctx, loadEnvironment('x', root), { ref: 'v1', forwardOnly: true, dryRun: true });
      expect(plan.plan![0]).toMatch(/^SKIPPED: forward-only: /);
    });
  });

  it("a tag or branch origin has at another commit than the checkout fetched (moved, pushed since) is refused before any host is touched, saying how to deploy origin's or this one by its sha; ops diff warns", async () => {
    const origin = join(mkdtempSync(join(tmpdir(), 'ops-deploy-op-origin-')), 'origin');
    execFileSync('git', ['clone', '-q', join(root, 'app'), origin]);
    const checkout = join(root, 'checkout-of-origin');
    execFileSync('git', ['clone', '-q', origin, checkout]);
    execFileSync('git', ['-C', origin, 'tag', '-f', 'v1', 'v2^{commit}']);
    const v2 = execFileSync('git', ['-C', origin, 'rev-parse', 'v2^{commit}'], { encoding: 'utf8' }).trim();
    const other = projectWithRelease('  build: ""\n');
    const yml = join(other, 'environments', 'x', 'environment.yml');
    writeFileSync(yml, readFileSync(yml, 'utf8').replace(/^repository: .*$/m, `repository: ${checkout}`));
    const live = opsLines(STATE, 'provisioned yes', 'current ');
    for (const dryRun of [true, false]) {
      const h = harness(live, (step) => (step.name === 'state' ? { stdout: live } : undefined));
      h.ctx.root = other;
      const err = (await deploy(h.ctx, loadEnvironment('x', other), { dryRun, ref: 'v1' }).catch((e: unknown) => e)) as OpsError;
      expect(err, `dryRun ${dryRun}`).toBeInstanceOf(OpsError);
      expect(err.message).toBe(
        `origin's tag v1 is at ${v2.slice(0, 12)} now, not ${v1.slice(0, 12)} as this checkout last fetched it (the tag was moved): deploying v1 would put ${v1.slice(0, 12)} live, not origin's tag v1; nothing was sent to any host`,
      );
      expect(err.hint).toBe(`git fetch origin --force tag v1, then deploy again; or, to put ${v1.slice(0, 12)} live on purpose, deploy it by its sha: --ref ${v1}`);
      expect(h.remote.stepNames()).toEqual([]);
    }
    // ops diff says it, under the commit it names (it deploys nothing).
    const warning = `warning: origin's tag v1 is at ${v2.slice(0, 12)} now, not ${v1.slice(0, 12)} as this checkout last fetched it (the tag was moved): the commit deployed is ${v1.slice(0, 12)}; to deploy origin's, git fetch origin --force tag v1 first`;
    const h = harness('', (step) => (step.name === 'state' ? { stdout: live } : undefined));
    h.ctx.root = other;
    const d = await diff(h.ctx, loadEnvironment('x', other), 'v1');
    expect(formatDiff(d).split('\n').slice(0, 2)).toEqual([`x: v1 (tag v1) = ${v1}`, warning]);
    // The commit by its sha is deployed as asked; after the fetch the hint gives, v1 is origin's.
    expect((await deploy(h.ctx, loadEnvironment('x', other), { dryRun: true, ref: v1 })).sha).toBe(v1);
    execFileSync('git', ['-C', checkout, 'fetch', '-q', 'origin', '--force', 'tag', 'v1']);
    const fetched = await deploy(h.ctx, loadEnvironment('x', other), { dryRun: true, ref: 'v1' });
    expect(fetched.sha).toBe(v2);
    expect(fetched.plan!.join('\n')).not.toContain("origin's tag v1");
    // A branch pushed since this checkout fetched: refused the same way (a teammate's merge not yet fetched).
    execFileSync('git', ['-C', origin, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '--allow-empty', '-m', 'merged since']);
    const branch = execFileSync('git', ['-C', origin, 'rev-parse', '--abbrev-ref', 'HEAD'], { encoding: 'utf8' }).trim();
    const pushed = execFileSync('git', ['-C', origin, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    const behind = execFileSync('git', ['-C', checkout, 'rev-parse', `origin/${branch}`], { encoding: 'utf8' }).trim();
    const refused = (await deploy(h.ctx, loadEnvironment('x', other), { dryRun: true, ref: branch }).catch((e: unknown) => e)) as OpsError;
    expect(refused.message).toBe(
      `origin's branch ${branch} is at ${pushed.slice(0, 12)} now, not ${behind.slice(0, 12)} as this checkout last fetched it (pushed since): deploying ${branch} would put ${behind.slice(0, 12)} live, not origin's branch ${branch}; nothing was sent to any host`,
    );
    expect(refused.hint).toMatch(/^git fetch origin, then deploy again; /);
  });

  it('a dry run still prints the plan when a host cannot be read', async () => {
    const h = harness('');
    h.ctx.connector = async () => {
      throw new Error('connect ECONNREFUSED 192.0.2.1:22');
    };
    const r = await deploy(h.ctx, loadEnvironment('x', root), { dryRun: true, ref: 'v2' });
    expect(r.plan!.join('\n')).toContain('web1: cannot be read: connecting to web1 failed: connect ECONNREFUSED 192.0.2.1:22');
  });

  it('a deploy that never reached a host (connection refused, host key mismatch, every host unreachable) names no release it would have made: null, with why, in its --json document and its text', async () => {
    for (const why of ['connect ECONNREFUSED 192.0.2.1:22', 'host key mismatch for web1', 'connect ETIMEDOUT 192.0.2.1:22']) {
      const h = harness('');
      h.ctx.connector = async () => {
        throw new Error(why);
      };
      const e = await deploy(h.ctx, loadEnvironment('x', root), { ref: 'v2' }).catch((x: unknown) => x);
      const doc = failedResult(e)!;
      expect(doc).toMatchObject({ ref: 'v2', sha: expect.stringMatching(/^[0-9a-f]{40}$/), release: null, releaseNote: "no release was made: the deploy stopped before it chose one (under the lock, once every host's releases are read)", previous: null, live: null });
      expect(doc.hosts).toEqual([{ host: 'web1', release: null, previous: null, live: null }]);
      const text = [formatError(e as Error, {}), ...h.reporter.lines].join('\n');
      expect(text).toContain(why);
      expect(text).not.toMatch(/\d{8}T\d{6}Z-[0-9a-f]{12}/);
    }
  });

  it.each(['$(id)', 'v1;reboot', '--exec=x', 'a..b', 'with space'])('refuses the ref %j before any connection', async (ref) => {
    const h = harness('');
    await expect(deploy(h.ctx, loadEnvironment('x', root), { ref })).rejects.toThrow(/invalid git ref/);
    expect(h.connections()).toBe(0);
  });

  it('runs hooks in the new release before and after the switch', async () => {
    const file = join(root, 'environments', 'x', 'environment.yml');
    const { readFileSync } = await import('node:fs');
    const original = readFileSync(file, 'utf8');
    writeFileSync(file, original + 'release:\n  before_switch: ["make warm-cache"]\n  after_switch: ["make notify"]\n');
    try {
      const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`));
      await deploy(h.ctx, loadEnvironment('x', root), {});
      const names = h.remote.stepNames();
      expect(names.slice(names.indexOf('migrate'))).toEqual(['migrate', 'before_switch[0]', 'start green', 'switch', 'after_switch[0]', 'prune', 'unlock']);
      const hook = h.remote.runs.find((r) => r.step.name === 'before_switch[0]')!;
      expect(hook.step.as).toBe('app');
      // In the release, with the release's own environ (the shared one of older versions only when it has none).
      expect(hook.stdin).toMatch(/cd (\/srv\/sample\/releases\/\d{8}T\d{6}Z-[0-9a-f]{12})\n(?:# shellcheck .*\n)?if \[ -f \1\/\.ops-environ \]; then\n.*read -r -d ''; do export -- "\$REPLY"; done < \1\/\.ops-environ\nelif \[ -f \/srv\/sample\/shared\/environ \]; then\n.*read -r -d ''; do export -- "\$REPLY"; done < \/srv\/sample\/shared\/environ\nfi\nunset -v REPLY\ncontained 'make warm-cache'/);
    } finally {
      writeFileSync(file, original);
    }
  });

  it('supervisord down on two of three hosts: one refusal naming both (not one host per run), before anything is sent anywhere', async () => {
    const { three, remotes, ctx } = await threeHosts('ops-deploy-op-down-', {}, (host, step, live) => {
      if (step.name === 'lock') return { stdout: host === 'web2' ? live : live + opsLines(STATE, 'supervisor_down 1') };
      return undefined;
    });
    const err = (await deploy(ctx, loadEnvironment('x', three.root), {}).catch((e: unknown) => e)) as OpsError;
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toBe(
      'supervisord is not running on 2 hosts (web1, web3; systemctl start supervisor): nothing was started (no build, no migration), and no program of the live release runs there until it does:\n  - web1: live release 20261101T000000Z-aaaaaaaaaaaa not running\n  - web3: live release 20261101T000000Z-aaaaaaaaaaaa not running',
    );
    expect(err.hint).toBe('start it on each of them (sudo systemctl start supervisor), check ops status x, then deploy again');
    for (const host of ['web1', 'web2', 'web3']) {
      expect(remotes.get(host)!.stepNames(), host).toEqual(['lock', 'unlock']);
      expect(remotes.get(host)!.uploads, host).toEqual([]);
    }
  });

  it('three hosts one at a time, the first failing once switched (its after_switch hook): the rollout stops, and the hosts behind audit it naming that host and why, not "another host"', async () => {
    const { three, remotes, ctx } = await threeHosts('ops-deploy-op-three-', { release: { after_switch: ['make notify'] }, switch: { batch_size: 1 } }, (host, step, live) => {
      if (step.name === 'lock') return { stdout: live };
      if (step.name === 'after_switch[0]' && host === 'web1') return { code: 2, stderr: 'notify: connection refused' };
      return undefined;
    });
    const err = (await deploy(ctx, loadEnvironment('x', three.root), {}).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/\nrollout stopped; hosts now run:\n  web1: \S+ \(switched; see its error above\)\n  web2: unchanged \(20261101T000000Z-aaaaaaaaaaaa still live\)\n  web3: unchanged/);
    for (const host of ['web2', 'web3']) {
      expect(remotes.get(host)!.stepNames()).not.toContain('switch');
      expect(auditMessages(remotes.get(host)!.runs.at(-1)!.stdin)).toEqual([expect.stringMatching(/^rollout stopped before the switch \(web1 failed: step "after_switch\[0\]" on web1 failed with exit code 2; notify: connection refused; \S+ is live on web1; an after_switch hook failed\)$/)]);
    }
  });

  it('an unknown ref names the repository and how to get the ref; the connection opened meanwhile runs nothing and is closed', async () => {
    const h = harness('');
    const e = (await deploy(h.ctx, loadEnvironment('x', root), { ref: 'no-such-branch' }).catch((x: unknown) => x)) as OpsError;
    expect(e.message).toMatch(/ref "no-such-branch" is not a tag, branch or commit/);
    // Which repository it looked in, and the setting that chooses it (a new user often runs from the ops project).
    expect(e.hint).toMatch(/git fetch first; the repository deployed is the environment's `repository`/);
    expect(h.remote.stepNames()).toEqual([]);
    expect(h.remote.closed).toBe(true);
  });

  it("no --ref and the environment's default ref names nothing (ref: master where the branch is main): said as its default, with where to set it; deploy and diff alike", async () => {
    const file = join(root, 'environments', 'x', 'environment.yml');
    const original = readFileSync(file, 'utf8');
    try {
      writeFileSync(file, stringify({ ...parse(original), ref: 'no-such-default' }));
      const h = harness('');
      for (const run of [() => deploy(h.ctx, loadEnvironment('x', root), {}), () => diff(h.ctx, loadEnvironment('x', root))]) {
        const e = (await run().catch((x: unknown) => x)) as OpsError;
        expect(e.message).toMatch(/^ref "no-such-default" is not a tag, branch or commit of .* \(no ref given: no-such-default is the environment's default ref, `ref` in environments\/x\/environment.yml, master when it sets none\)$/);
        expect(e.hint).toMatch(/^set ref: in environments\/x\/environment.yml to the branch deployed by default, or give one \(--ref; a workflow's ref input\); /);
      }
      // given with --ref: about that ref alone
      const given = (await deploy(h.ctx, loadEnvironment('x', root), { ref: 'no-such-branch' }).catch((x: unknown) => x)) as OpsError;
      expect(given.message).not.toContain('no ref given');
      expect(h.remote.stepNames()).toEqual([]);
    } finally {
      writeFileSync(file, original);
    }
  });

  it('an unknown ref with a host that does not answer (an sshd that never speaks): the ref is said at once, the connection under way given up, no retry announced', async () => {
    // A real SSH login (node-ssh) against a listener that accepts and never answers: without giving up, the ref's
    // error would wait for 3 attempts of 30 s, each announced as a retry about the host.
    const accepted: Socket[] = [];
    const listener = createServer((c) => accepted.push(c.resume()));
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    const port = (listener.address() as AddressInfo).port;
    const dir = mkdtempSync(join(tmpdir(), 'ops-deploy-silent-'));
    try {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'key')]);
      mkdirSync(join(dir, 'environments', 'x'), { recursive: true });
      writeFileSync(join(dir, 'package.json'), '{}');
      const config = parse(readFileSync(join(root, 'environments', 'x', 'environment.yml'), 'utf8'));
      writeFileSync(join(dir, 'environments', 'x', 'environment.yml'), stringify({ ...config, hosts: [{ ...config.hosts[0], address: '127.0.0.1', port }], ssh: { identity_file: join(dir, 'key'), connect_timeout: 30, connect_retries: 2 } }));
      const reporter = new MemoryReporter();
      const ctx: OpsContext = { root: dir, reporter, processEnv: { PATH: process.env.PATH } };
      await expect(deploy(ctx, loadEnvironment('x', dir), { ref: 'no-such-branch' })).rejects.toThrow(/ref "no-such-branch" is not a tag, branch or commit/);
      // The connection under way (if it got that far) is closed by the client, not left to its timeout.
      await Promise.all(accepted.map((c) => (c.closed ? undefined : new Promise((r) => c.once('close', r)))));
      expect(reporter.lines.join('\n')).not.toMatch(/retrying|cannot connect/);
    } finally {
      for (const c of accepted) c.destroy();
      listener.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);

  it('a malformed ref is refused before any connection', async () => {
    const h = harness('');
    await expect(deploy(h.ctx, loadEnvironment('x', root), { ref: '--upload-pack=evil' })).rejects.toThrow(/ref/);
    expect(h.connections()).toBe(0);
  });

  it('prunes by history: the list sent to the host comes from the order releases went live, never the live or warm one', async () => {
    const old = (n: number) => `2026110${n}T000000Z-${String(n).repeat(12)}`;
    const state = opsLines(
      STATE,
      'provisioned yes',
      `current ${old(1)}`, // live, made by a runner whose clock was behind: its id sorts first
      'slot blue',
      `has ${v1}`,
      `release ${old(1)} x ok 9 9`,
      ...[2, 3, 4, 5, 6].map((n): ReportText<typeof STATE> => `release ${old(n)} x ok ${n} ${n}`),
      `release ${old(7)} x failed - 7`,
      `release ${old(8)} x failed - 8`,
      `release ${old(9)} x failed - 10`,
    );
    const h = harness(state);
    await deploy(h.ctx, loadEnvironment('x', root), {});
    const prune = h.remote.runs.find((r) => r.step.name === 'prune')!.stdin;
    // keep 5 (the new one, old(1) warm, old(6), old(5), old(4)); keep_failed 2 (old(9), old(8)).
    expect(/\nremove=\((.*)\)\n/.exec(prune)![1]!.split(' ').sort()).toEqual([old(2), old(3), old(7)]);
  });

  it('a runner clock far from the host\'s: a warning, and the deploy goes on', async () => {
    const hostNow = Math.floor(Date.now() / 1000);
    const h = harness(opsLines(STATE, `now ${hostNow}`, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`));
    const r = await deploy({ ...h.ctx, now: () => new Date(Date.now() - 90 * 86_400_000) }, loadEnvironment('x', root), {});
    expect(r.release.startsWith(new Date(Date.now() - 90 * 86_400_000).toISOString().slice(0, 10).replace(/-/g, ''))).toBe(true);
    expect(h.reporter.lines.join('\n')).toMatch(/warning: this runner's clock is 90 days behind web1's/);
  });

  it('not enough space for the code: refused before anything is sent, saying what is free and what is needed', async () => {
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', 'disk 900 50000 40000 /srv'));
    const err = await deploy(h.ctx, loadEnvironment('x', root), {}).catch((e) => e);
    expect(err.message).toMatch(/^not enough space on web1 for release \S+: 0 MB and 40000 inodes free under \/srv, and its code alone needs about \d+ MB and \d+ inodes \(its dependencies and build more\)\nweb1 still serves 20261101T000000Z-aaaaaaaaaaaa; nothing was changed$/);
    expect(err.hint).toMatch(/^free space on web1 under \/srv/);
    expect(h.remote.stepNames()).toEqual(['lock', 'unlock']);
    expect(h.remote.uploads).toEqual([]);
  });

  it('a runtime the dependency sets are made with missing (uv chosen or its pin moved, a new Python or Node version, since provision): refused before anything is sent, every such host named; uv not asked of a host that reuses the Python set', async () => {
    const env = loadEnvironment('x', root);
    const uv = resolveTarget(env).runtime.uv;
    const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `runtime_missing ${uv}`));
    const err = await deploy(h.ctx, env, {}).catch((e) => e);
    expect(err.message).toBe(`web1 lacks ${uv}: the runtime these settings make the dependency sets with (runtimes, release.python_installer, or this ops's pinned uv), which provision installs. Nothing was started (no build, no migration); the site serves as it did`);
    expect(err.hint).toBe('run: ops provision x (it installs them), then deploy again');
    expect(h.remote.stepNames()).toEqual(['lock', 'unlock']);
    expect(h.remote.uploads).toEqual([]);
    const read = (host: string, ...lines: ReportText<typeof STATE>[]) => {
      const stdout = opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', ...lines);
      return { host, state: parseState({ stdout, stderr: '', code: 0, durationMs: 0, reports: parseReports(stdout) }) };
    };
    const t = resolveTarget(env);
    // The set is there: uv is not needed (a code-only deploy after an upgrade of ops that moved uv's pin).
    expect(() => refuseUnready(t, [read('web1', `runtime_missing ${uv}`, 'deps_has venv-0123')], 'venv-0123')).not.toThrow();
    expect(() => refuseUnready(t, [read('web1', `runtime_missing ${uv}`, 'deps_has venv-0123'), read('web2', `runtime_missing ${t.runtime.python}`, `runtime_missing ${uv}`)], 'venv-0123')).toThrow(
      new RegExp(`^web2 lacks ${t.runtime.python}, ${uv}: the runtimes `),
    );
  });

  it('a step that runs out of space or inodes says so, with what is free (one more round trip, on that failure only)', async () => {
    for (const [disk, what] of [[opsLines(STATE, 'disk 0 50000 40000 /srv'), 'disk space: 0 MB and 40000 inodes free under /srv'], [opsLines(STATE, 'disk 800000 50000 0 /srv'), 'free inodes: 781 MB and 0 inodes free under /srv']]) {
      const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`), (step) =>
        step.name === 'python dependencies' ? { code: 1, stderr: "OSError: [Errno 28] No space left on device: '/srv/sample/shared/deps/venv-1/lib'" } : step.name === 'disk space' ? { stdout: disk } : undefined,
      );
      const err = await deploy(h.ctx, loadEnvironment('x', root), {}).catch((e) => e);
      expect(err.message).toContain(`step "python dependencies" on web1 failed with exit code 1\n  | OSError: [Errno 28] No space left on device`);
      expect(err.message).toContain(`\nweb1 ran out of ${what}\nweb1 still serves 20261101T000000Z-aaaaaaaaaaaa; nothing was switched`);
      expect(err.hint).toMatch(/^free space on web1 under \/srv \(failed releases, old dependency sets under shared\/deps, logs; or lower release.keep\), then deploy again$/);
      // The node set and the build beside it ran to their end before the failure was reported; no migrate.
      expect(h.remote.stepNames().sort()).toEqual(['lock', 'release', 'node dependencies', 'python dependencies', 'build', 'disk space', 'mark failed', 'prune', 'unlock'].sort());
      expect(h.remote.stepNames().slice(-3)).toEqual(['mark failed', 'prune', 'unlock']);
    }
  });
  it('a step that runs out of space where it makes its temporary files (/tmp, a tmpfs of its own) while the app\'s filesystem has room: names /tmp and what to free there, not the releases', async () => {
    for (const [stderr, tmp, what, free] of [
      ["mktemp: failed to create file via template ‘/tmp/tmp.XXXXXXXXXX’: No space left on device", 'disk 800000 50000 0 /tmp', 'free inodes: 781 MB and 0 inodes free under /tmp', 'free inodes on web1 under /tmp (as root, find /tmp -xdev'],
      ["sort: write failed: /var/tmp/own.1: No space left on device", 'disk 0 50000 40000 /var/tmp', 'disk space: 0 MB and 40000 inodes free under /var/tmp', 'free space on web1 under /var/tmp (as root, du -xsh /var/tmp/*'],
    ] as const) {
      let asked = '';
      const h = harness(opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`), (step) => {
        if (step.name === 'python dependencies') return { code: 1, stderr };
        if (step.name !== 'disk space') return undefined;
        asked = step.script;
        return { stdout: opsLines(STATE, 'disk 900000000 50000000 40000000 /srv', tmp, 'disk 900000000 50000000 40000000 /tmp') };
      });
      const err = await deploy(h.ctx, loadEnvironment('x', root), {}).catch((e) => e);
      expect(asked).toContain(`d=${tmp.split(' ').at(-1)}`);
      expect(err.message).toContain(`\nweb1 ran out of ${what}`);
      expect(err.message).toContain("; ops's own files have room (878906 MB and 40000000 inodes free under /srv)\nweb1 still serves 20261101T000000Z-aaaaaaaaaaaa; nothing was switched");
      expect(err.hint).toContain(free);
      expect(err.hint).not.toMatch(/release\.keep|shared\/deps/);
    }
  });
  it('not one inode left for the lock itself: said as a full disk, with what is free and what to free, not as a bare failed lock step; nothing taken or changed', async () => {
    const h = harness(
      '',
      (step) =>
        step.name === 'lock'
          ? { code: 1, stderr: "cannot write the lock's details in /srv/sample/.ops/lock.taking.42: mkdir: cannot create directory '/srv/sample/.ops/lock.taking.42': No space left on device\n" }
          : step.name === 'disk space'
            ? { stdout: opsLines(STATE, 'disk 800000 50000 0 /srv') }
            : undefined,
      true,
    );
    const err = await deploy(h.ctx, loadEnvironment('x', root), {}).catch((e) => e);
    expect(err.message).toContain('\nweb1 ran out of free inodes: 781 MB and 0 inodes free under /srv');
    expect(err.hint).toMatch(/^free space on web1 under \/srv \(failed releases, old dependency sets under shared\/deps, logs; or lower release.keep\), then deploy again$/);
    // The lock step answered without taking the lock: nothing to let go.
    expect(h.remote.stepNames()).toEqual(['lock', 'disk space']);
  });
});

describe('the lock is never leaked by a run that ends', () => {
  const state = () => opsLines(STATE, 'provisioned yes', 'current 20261101T000000Z-aaaaaaaaaaaa', 'slot blue', `has ${v1}`);
  /** Connections in order; the first one's unlock fails `times` times (a broken channel or connection). */
  function flaky(times: number) {
    const remotes: RecordingRemote[] = [];
    let failures = 0;
    const ctx: OpsContext = {
      root,
      reporter: new MemoryReporter(),
      processEnv: { PATH: process.env.PATH },
      connector: async () => {
        const r = new RecordingRemote('web1', 'deploy', 'sample', (step) => (step.name === 'lock' ? { stdout: `${opsLines(STATE, 'lock acquired')}${state()}` } : undefined));
        const run = r.run.bind(r);
        r.run = async (step, options) => {
          if (step.name === 'unlock' && failures++ < times) {
            await run(step, options);
            throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
          }
          return run(step, options);
        };
        remotes.push(r);
        return r;
      },
    };
    return { ctx, remotes, reporter: ctx.reporter as MemoryReporter };
  }

  it('the unlock fails on its connection: a new connection stops what the old one left running, releases the lock, and the run succeeds', async () => {
    const f = flaky(1);
    const r = await deploy(f.ctx, loadEnvironment('x', root), {});
    expect(r.hosts[0]!.release).toMatch(/Z-/);
    expect(f.remotes).toHaveLength(2);
    expect(f.remotes[1]!.stepNames()).toEqual(['unlock']);
    const unlock = f.remotes[1]!.runs[0]!.stdin;
    expect(unlock).toContain('ended=(recorded)\n'); // the old connection's processes, stopped once no switch is under way
    expect(unlock).toMatch(/critical_wait\nread -r -a pids <<< "\$\(connection_pids "\$\{ended\[@\]\}"\)"/);
    expect(unlock).toMatch(/"result":"success"/); // the audit line is still written
    expect(f.reporter.text()).toMatch(/web1: could not release the lock \(step "unlock" on web1: the connection was closed by the other end\); trying again over a new connection/);
  });

  it('it cannot be released at all: the run fails (even though the deploy went through), naming the host and the command that releases it', async () => {
    const f = flaky(2);
    const err = await deploy(f.ctx, loadEnvironment('x', root), {}).catch((e) => e);
    expect(err.message).toMatch(/^the operation itself succeeded, but the lock of x could not be released on host web1 \(step "unlock" on web1: the connection was closed by the other end\)$/);
    expect(err.hint).toBe('release it once this run has ended: ops lock release x (it first stops what the run left running there)');
  });

  it('a failed run whose lock cannot be released either: both said, the first cause first', async () => {
    const f = flaky(2);
    const ctx = { ...f.ctx };
    const env = loadEnvironment('x', root);
    const connector = ctx.connector!;
    ctx.connector = async (e, host) => {
      const r = (await connector(e, host)) as RecordingRemote;
      const run = r.run.bind(r);
      r.run = async (step, options) => (step.name === 'build' ? Promise.reject(new Error('build broke')) : run(step, options));
      return r;
    };
    const err = await deploy(ctx, env, {}).catch((e) => e);
    expect(err.message).toMatch(/^step "build" on web1 failed: build broke[\s\S]*\nthe lock of x could not be released on host web1 \(/);
    expect(err.hint).toMatch(/; then release it once this run has ended: ops lock release x \(it first stops what the run left running there\)$/);
  });
});

describe('a deploy whose lock is taken away while it is paused (ops lock release --force by someone else)', () => {
  it('every step after the lock is fenced by it; the switch that finds it gone changes nothing: nothing more runs there, the error says so and what is live, and the audit line says failed, never success', async () => {
    const live = '20261125T120000Z-aaaaaaaaaaaa';
    const breaker = JSON.stringify({ time: new Date().toISOString(), environment: 'x', operation: 'lock release', actor: 'bob', result: 'success', message: 'removed held lock of a deploy run by alice' });
    const h = harness(opsLines(STATE, 'provisioned yes', `current ${live}`, 'slot blue'), (step) => {
      if (step.name === 'switch' && step.script.includes('run_lock_guard'))
        return { code: LOCK_LOST_EXIT, stderr: `${LOCK_LOST_MARK}it was removed (ops lock release, or by hand); this step changed nothing (current names ${live})\n` };
      if (step.name === 'unlock') return { stdout: opsLines(STATE, 'lock not_held') };
      if (step.name === 'read audit log') return { stdout: `@ops entry ${breaker}\n` };
      return undefined;
    });
    const err = await deploy(h.ctx, loadEnvironment('x', root), {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpsError);
    const message = (err as OpsError).message;
    expect(message).toMatch(/^step "switch" on web1 changed nothing: this run's lock there is no longer its own \(it was removed \(ops lock release, or by hand\)\)/);
    expect(message).toContain(`web1: the lock on web1 was released by force by bob at `);
    expect(message).toContain(`while this run was paused or held up (its next step there, "switch", found it so and changed nothing); nothing more was changed there: ${live} is live (what current names)`);
    const names = h.remote.stepNames();
    // After the refused switch: no previous back, no prune; only withLock's own unlock, audit and the mark of the
    // release the run made (failed, as a failed run's: the marker alone, while current does not name it), unfenced.
    expect(names.slice(names.indexOf('switch'))).toEqual(['switch', 'unlock', 'read audit log', 'audit', 'mark failed']);
    for (const run of h.remote.runs) {
      const fenced = run.stdin.includes('\nrun_lock_guard\n');
      expect(fenced, run.step.name).toBe(!['lock', 'unlock', 'read audit log', 'audit', 'mark failed'].includes(run.step.name));
    }
    const mark = h.remote.runs.at(-1)!.stdin;
    expect(mark).toMatch(/\.ops-failed/);
    expect(mark).not.toContain('history_add');
    expect(mark).toContain('[ "${live##*/}" != ');
    expect(mark).toMatch(/step "switch" on web1 changed nothing: [^\n]*: its lock released by force by bob at /);
    // The line as appended, shell-quoted (a ' in it written '\'').
    const appended = h.remote.runs.filter((r) => r.step.name === 'audit').map((r) => r.stdin.replaceAll("'\\''", "'"));
    expect(appended).toHaveLength(1);
    expect(appended[0]).toContain('"operation":"deploy","actor"');
    expect(appended[0]).toMatch(/"result":"failed".*"message":"step \\"switch\\" on web1 changed nothing: [^"]*: its lock released by force by bob at /);
    for (const run of h.remote.runs) expect(run.stdin).not.toContain('"result":"success"');
  });
});

describe('a deploy whose lock is taken away by a breaker whose clock is behind (a laptop hours slow)', () => {
  it('the breaker is named all the same: its audit line names this run\'s lock by the time the host took it, whatever the time the breaker\'s clock wrote', async () => {
    const live = '20261125T120000Z-aaaaaaaaaaaa';
    const since = '2026-12-05T05:00:00Z';
    const actor = runInfo({ PATH: process.env.PATH }).actor;
    // Written by a laptop whose clock is three hours behind this runner's.
    const breaker = JSON.stringify({ time: new Date(Date.now() - 3 * 3600_000).toISOString(), environment: 'x', operation: 'lock release', actor: 'bob', result: 'success', message: `removed held lock of ${describeHolder({ operation: 'deploy', actor, since })}; x is live` });
    const h = harness(
      '',
      (step) => {
        if (step.name === 'lock') return { stdout: `${opsLines(STATE, 'lock acquired', 'holder_pid 42', `holder since=${since}`)}${opsLines(STATE, 'provisioned yes', `current ${live}`, 'slot blue')}` };
        if (step.name === 'switch' && step.script.includes('run_lock_guard'))
          return { code: LOCK_LOST_EXIT, stderr: `${LOCK_LOST_MARK}it was released by force (ops lock release --force); this step changed nothing (current names ${live})\n` };
        if (step.name === 'unlock') return { stdout: opsLines(STATE, 'lock not_held') };
        if (step.name === 'read audit log') return { stdout: `@ops entry ${breaker}\n` };
        return undefined;
      },
      true,
    );
    const err = (await deploy(h.ctx, loadEnvironment('x', root), {}).catch((e: unknown) => e)) as OpsError;
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toContain('web1: the lock on web1 was released by force by bob at ');
    expect(err.message).not.toContain('removed by someone else');
  });
});

describe('a deploy whose running step the forced release stopped', () => {
  it('said as that release (while it ran), not as a paused run; its next steps there, fenced, change nothing; the release it made is marked failed at its end, as a failed run\'s', async () => {
    const live = '20261125T120000Z-aaaaaaaaaaaa';
    const breaker = JSON.stringify({ time: new Date().toISOString(), environment: 'x', operation: 'lock release', actor: 'bob', result: 'success', message: 'removed held lock' });
    const h = harness(opsLines(STATE, 'provisioned yes', `current ${live}`, 'slot blue'), (step) => {
      if (step.name === 'build') return { code: 143, stderr: 'Terminated\n' };
      if (step.name === 'disk space' && step.script.includes('run_lock_guard'))
        return { code: LOCK_LOST_EXIT, stderr: `${LOCK_LOST_MARK}it was released by force (ops lock release --force); this step changed nothing (current names ${live})\n` };
      if (step.name === 'unlock') return { stdout: opsLines(STATE, 'lock not_held') };
      if (step.name === 'read audit log') return { stdout: `@ops entry ${breaker}\n` };
      return undefined;
    });
    const err = (await deploy(h.ctx, loadEnvironment('x', root), {}).catch((e: unknown) => e)) as OpsError;
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toMatch(/^step "build" on web1 was stopped by SIGTERM from outside this run/);
    expect(err.message).toContain(`web1: this run's lock was released by force by bob at `);
    expect(err.message).toContain(`while it ran: that stopped the run's steps there (the failure above); the run was not finished there, its release did not go live, and another run may hold the lock now; nothing more was changed there (its next step, "disk space", found the lock gone): ${live} is live (what current names)`);
    expect(err.message).not.toContain('paused');
    const names = h.remote.stepNames();
    // (The Python set, beside the build, ended as it did.) After the refusal: withLock's own unlock and audit only.
    expect(names.slice(names.indexOf('disk space'))).toEqual(['disk space', 'unlock', 'read audit log', 'audit', 'mark failed']);
    expect(h.remote.runs.at(-1)!.stdin).toMatch(/step "build" on web1 was stopped by SIGTERM[^\n]*: its lock released by force by bob at /);
  });
});
