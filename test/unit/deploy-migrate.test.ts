// The migrations beside a build's transfer (core/ops/deploy.ts, rollout), against the recording transport with
// three hosts of one platform: web1 builds and migrates while its build is carried to web2 and web3. What a stopped
// rollout says when the migrations already ran (the database has the new schema, no host switched), and that a
// failed migration stops it before any hook, whenever it fails (before or after the transfer). With ten hosts: what
// the nine receivers do beside the carry, and that none waits for another's unpack.
import { PROVISIONED_KEYS } from '../../core/steps/system.ts';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../core/config/environment.ts';
import type { OpsContext } from '../../core/context.ts';
import { ConnectionLostError, type OpsError } from '../../core/errors.ts';
import { deploy } from '../../core/ops/deploy.ts';
import { MemoryReporter } from '../../core/report.ts';
import { RecordingRemote } from '../../core/remote/recording.ts';
import type { Step, StepResult } from '../../core/remote/types.ts';
import { ARTIFACT_KEYS } from '../../core/steps/artifact.ts';
import { FACTS_KEYS } from '../../core/steps/facts.ts';
import { LIBRARY_KEYS } from '../../core/steps/libraries.ts';
import { LOCK_KEYS } from '../../core/steps/lock.ts';
import { RELEASE_KEYS } from '../../core/steps/release.ts';
import { opsLines } from './reports.helpers.ts';
import { TEST_HOST_KEY, scratchProject } from './project.helpers.ts';

const STATE = { ...PROVISIONED_KEYS, ...LOCK_KEYS, ...RELEASE_KEYS, ...LIBRARY_KEYS, ...FACTS_KEYS };
const KEY = TEST_HOST_KEY;
const LIVE = '20261101T000000Z-aaaaaaaaaaaa';
const HOSTS = ['web1', 'web2', 'web3'];
/** Ten hosts of one platform, all at once (batch_size 10): web1 builds, nine receive (more than RECEIVE_CONCURRENCY). */
const TEN = Array.from({ length: 10 }, (_, i) => `web${i + 1}`);
const PACKED = Buffer.from('a packed release');
let root: string;
let root10: string;
let v1: string;

beforeAll(async () => {
  ({ root, v1 } = await scratchProject('ops-deploy-migrate-', 'three', {
    app: 'sample',
    ref: 'v1',
    hosts: HOSTS.map((name, i) => ({ name, address: `192.0.2.${i + 1}`, host_key: KEY })),
    programs: { server: { command: 'run', port: 3579, health: '/health' } },
    routes: { '/': 'server' },
    release: { python_requirements: '', node_dir: '', migrate: 'alembic upgrade head', migrate_timeout: 120, before_switch: ['./warm-caches'] },
    switch: { batch_size: 1 },
  }));
  ({ root: root10 } = await scratchProject('ops-deploy-ten-', 'ten', {
    app: 'sample',
    ref: 'v1',
    hosts: TEN.map((name, i) => ({ name, address: `192.0.2.${i + 1}`, host_key: KEY })),
    programs: { server: { command: 'run', port: 3579, health: '/health' } },
    routes: { '/': 'server' },
    release: { python_requirements: '', node_dir: '', migrate: 'alembic upgrade head', migrate_timeout: 120 },
    switch: { batch_size: 10 },
  }));
}, 60_000);

type Answer = Partial<Pick<StepResult, 'stdout' | 'stderr' | 'code'>> | undefined;

/**
 * Hosts of one platform (HOSTS unless `hosts`), each answering its steps (`respond`: host and step, may wait); the
 * packed build and its chunk answered as a builder would. Records the order steps ran in across hosts, and when each
 * upload began (`<host> upload <the name's last extension>`: env, environ, masks, a chunk's number).
 */
function harness(respond: (host: string, step: Step) => Promise<Answer> | Answer = () => undefined, hosts = HOSTS) {
  const order: string[] = [];
  const sha = createHash('sha256').update(PACKED).digest('hex');
  const remotes = new Map<string, RecordingRemote>();
  for (const host of hosts) {
    const remote = new RecordingRemote(host, 'deploy', 'sample', (step) => {
      if (step.name === 'lock') return { stdout: `${opsLines(STATE, 'lock acquired')}${opsLines(STATE, 'provisioned yes', `current ${LIVE}`, 'slot blue', `has ${v1}`, 'platform debian 12 x86_64 python none node none')}` };
      if (step.name === 'pack build') return { stdout: opsLines(ARTIFACT_KEYS, `part release ${sha} ${PACKED.length}`) };
      if (step.name === 'read release') return { stdout: opsLines(ARTIFACT_KEYS, `chunk ${PACKED.toString('base64')}`) };
      return undefined;
    });
    // The answer may wait (a migration still running while the build travels), so run() is wrapped.
    const recorded = remote.run.bind(remote);
    remote.run = async (step, options) => {
      const answer = await respond(host, step);
      order.push(`${host} ${step.name}${answer?.code ? ' (failed)' : ''}`);
      if (answer) {
        const r = new RecordingRemote(host, 'deploy', 'sample', () => answer);
        const result = await r.run(step, options).finally(() => remote.runs.push(...r.runs));
        return result;
      }
      return recorded(step, options);
    };
    const upload = remote.upload.bind(remote);
    remote.upload = (content, path, options) => {
      order.push(`${host} upload ${path.split('.').pop()}`);
      return upload(content, path, options);
    };
    remotes.set(host, remote);
  }
  const reporter = new MemoryReporter();
  const ctx: OpsContext = { root, reporter, processEnv: { PATH: process.env.PATH }, connector: async (_env, host) => remotes.get(host.name)! };
  return { ctx, order, remotes, reporter };
}

describe('migrations beside the transfer of a build (three hosts, batch_size 1)', () => {
  it('all goes well: web1 migrates, every host runs its before_switch hook after the migration, then hosts switch one at a time', async () => {
    const h = harness(async (host, step) => (host === 'web1' && step.name === 'migrate' ? (await sleep(50), undefined) : undefined));
    const r = await deploy(h.ctx, loadEnvironment('three', root), {});
    expect(r.hosts.map((x) => [x.host, x.previous])).toEqual(HOSTS.map((x) => [x, LIVE]));
    const at = (s: string) => h.order.indexOf(s);
    expect(h.order.filter((s) => s.endsWith(' migrate'))).toEqual(['web1 migrate']);
    for (const host of HOSTS) expect(at(`${host} before_switch[0]`)).toBeGreaterThan(at('web1 migrate'));
    expect(at('web2 switch')).toBeGreaterThan(at('web1 switch'));
    expect(at('web3 switch')).toBeGreaterThan(at('web2 switch'));
  });

  it('a migration that fails after the build reached the other hosts: no hook, no start, no switch anywhere; the error names web1 and migrate, and what each host runs', async () => {
    const h = harness(async (host, step) => (host === 'web1' && step.name === 'migrate' ? (await sleep(150), { code: 1, stderr: 'sqlalchemy.exc.ProgrammingError: column "x" does not exist' }) : undefined));
    const err = (await deploy(h.ctx, loadEnvironment('three', root), {}).catch((e: unknown) => e)) as Error;
    expect(h.order.indexOf('web3 receive build')).toBeLessThan(h.order.indexOf('web1 migrate (failed)'));
    expect(h.order.filter((s) => /before_switch|start|switch/.test(s))).toEqual([]);
    expect(err.message).toMatch(/^step "migrate" on web1 failed with exit code 1\n[\s\S]*ProgrammingError/);
    expect(err.message).toContain(`rollout stopped; hosts now run:\n  web1: unchanged (failed; ${LIVE} still live)\n  web2: unchanged (${LIVE} still live)\n  web3: unchanged (${LIVE} still live)`);
    expect(err.message).not.toMatch(/migrations? (of \S+ )?ran/);
    for (const host of HOSTS) expect(h.remotes.get(host)!.runs.at(-1)!.stdin).toContain('"result":"failed"');
  });

  it("alembic refusing a '%' of the database URL (a URL-encoded password: configparser's interpolation), set from env.py or written in alembic.ini: the error says why and how to escape it", async () => {
    for (const file of ['set-main-option.stderr', 'alembic-ini.stderr']) {
      const stderr = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'alembic-percent', file), 'utf8');
      const h = harness((host, step) => (host === 'web1' && step.name === 'migrate' ? { code: 1, stderr } : undefined));
      const err = (await deploy(h.ctx, loadEnvironment('three', root), {}).catch((e: unknown) => e)) as OpsError;
      expect(err.message, file).toMatch(/^step "migrate" on web1 failed with exit code 1\n[\s\S]*(interpolation syntax|InterpolationSyntaxError)/);
      expect(err.hint, file).toContain(`alembic's Config is a Python configparser, which reads "%" as the start of an interpolation`);
      expect(err.hint, file).toContain('config.set_main_option("sqlalchemy.url", os.environ["DATABASE_URL"].replace("%", "%%"))');
    }
    // Another failure keeps its own words.
    const h = harness((host, step) => (host === 'web1' && step.name === 'migrate' ? { code: 1, stderr: 'sqlalchemy.exc.ProgrammingError: column "x" does not exist' } : undefined));
    expect(((await deploy(h.ctx, loadEnvironment('three', root), {}).catch((e: unknown) => e)) as OpsError).hint ?? '').not.toContain('configparser');
  });

  it('a receiver that fails while the migration succeeds: nothing switched, and the error says the database was migrated all the same', async () => {
    const h = harness(async (host, step) => {
      if (host === 'web1' && step.name === 'migrate') return (await sleep(150), undefined);
      if (host === 'web3' && step.name === 'receive build') return { code: 1, stderr: 'tar: Cannot write: No space left on device' };
      return undefined;
    });
    const err = (await deploy(h.ctx, loadEnvironment('three', root), {}).catch((e: unknown) => e)) as Error;
    expect(h.order).toContain('web1 migrate');
    expect(h.order.filter((s) => /before_switch|start|switch/.test(s))).toEqual([]);
    expect(err.message).toMatch(/^step "receive build" on web3 failed/);
    expect(err.message).toContain(`rollout stopped; hosts now run:\n  web1: unchanged (${LIVE} still live)\n  web2: unchanged (${LIVE} still live)\n  web3: unchanged (failed; ${LIVE} still live)`);
    // The schema is the new release's while every host serves the previous one: said, with what it means.
    expect(err.message).toMatch(/\nthe migrations of \d{8}T\d{6}Z-[0-9a-f]{12} ran on web1 \(alembic upgrade head\): the database has its schema while the hosts serve the previous release/);
  });

  it('web1\'s switch losing its connection, web1 not answering again: the rollout stops saying what web1 runs is not known, never that the hosts serve the previous release', async () => {
    const h = harness((host, step) => {
      if (host === 'web1' && step.name === 'switch') throw new ConnectionLostError('step "switch" on web1 (connection lost): the SSH connection was already closed', 'try again');
      if (host === 'web1' && step.name === 'settle') return { code: 255 };
      return undefined;
    });
    const err = (await deploy(h.ctx, loadEnvironment('three', root), {}).catch((e: unknown) => e)) as Error;
    expect(err.message).toContain(`rollout stopped; hosts now run:\n  web1: not known (its switch went on without the connection; see its error above)\n  web2: unchanged (${LIVE} still live)`);
    expect(err.message).not.toMatch(/serve the previous release|web1: unchanged/);
  });

  it('a migration that hangs (waiting for a lock) is stopped by release.migrate_timeout: the error says after how long and what to do; every lock is let go', async () => {
    const h = harness((host, step) => (host === 'web1' && step.name === 'migrate' ? { code: 124, stderr: '' } : undefined));
    const err = (await deploy(h.ctx, loadEnvironment('three', root), {}).catch((e: unknown) => e)) as OpsError;
    expect(h.remotes.get('web1')!.runs.find((r) => r.step.name === 'migrate')!.step.timeout).toBe(120);
    expect(err.message).toMatch(/^step "migrate" on web1 timed out after 120 s\nweb1 still serves 20261101T000000Z-aaaaaaaaaaaa; nothing was switched\nrollout stopped; hosts now run:/);
    expect(err.hint).toMatch(/release\.migrate_timeout \(120 s\)[\s\S]*lock_timeout/);
    expect(h.order.filter((s) => /before_switch|start|switch/.test(s))).toEqual([]);
    for (const host of HOSTS) expect(h.remotes.get(host)!.stepNames().at(-1)).toBe('unlock');
  });

  it('one host: a health gate that fails after the migration ran says the database was migrated', async () => {
    const h = harness((_host, step) => (step.name === 'start green' ? { code: 1, stderr: 'release did not become healthy on slot green' } : undefined));
    const env = loadEnvironment('three', root);
    const single = { ...env, hosts: env.hosts.slice(0, 1) } as typeof env;
    const err = (await deploy(h.ctx, single, {}).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/did not become healthy[\s\S]*web1 still serves 20261101T000000Z-aaaaaaaaaaaa; nothing was switched\nthe migrations of \S+ ran on web1 \(alembic upgrade head\)/);
  });
});

describe('a build received by nine hosts (ten hosts, all at once)', () => {
  it("each receiver's .env files travel beside the carry, before the build is read; every receiver unpacks at once", async () => {
    const receivers = TEN.slice(1);
    let arrived = 0;
    let allIn!: () => void;
    const together = new Promise<void>((resolve) => (allIn = resolve));
    const h = harness(async (host, step) => {
      if (step.name !== 'receive build') return undefined;
      if (++arrived === receivers.length) allIn();
      // Each unpack waits for every other receiver's to be in flight too (one left to wait for the first eight: failed).
      const met = await Promise.race([together.then(() => true), sleep(3000).then(() => false)]);
      return met ? undefined : { code: 1, stderr: `${host}'s unpack waited for the others': ${arrived} of ${receivers.length} in flight` };
    }, TEN);
    const r = await deploy(h.ctx, loadEnvironment('ten', root10), {});
    expect(r.hosts.map((x) => x.host)).toEqual(TEN);
    expect(h.order.filter((s) => s.endsWith(' receive build'))).toHaveLength(receivers.length);
    for (const host of receivers) expect(h.order.indexOf(`${host} upload env`), host).toBeLessThan(h.order.indexOf('web1 read release'));
  });
});

describe("the builder's packed build, dropped once carried (three hosts)", () => {
  it("is dropped beside the receivers' unpacks, which do not wait for it; no host starts before it is done", async () => {
    let unpacked = 0;
    let allIn!: () => void;
    const bothIn = new Promise<void>((resolve) => (allIn = resolve));
    const h = harness(async (host, step) => {
      // The drop ends only once both receivers are unpacking (else after 3 s: too late for them, failed below).
      if (host === 'web1' && step.name === 'drop packed build') return (await Promise.race([bothIn, sleep(3000)]), undefined);
      if (step.name === 'receive build' && ++unpacked === 2) allIn();
      return undefined;
    });
    await deploy(h.ctx, loadEnvironment('three', root), {});
    const at = (s: string) => h.order.indexOf(s);
    // The order records a step once its answer came: both unpacks ended before the drop did.
    expect(at('web2 receive build')).toBeLessThan(at('web1 drop packed build'));
    expect(at('web3 receive build')).toBeLessThan(at('web1 drop packed build'));
    for (const host of HOSTS) expect(h.order.findIndex((s) => s.startsWith(`${host} start`))).toBeGreaterThan(at('web1 drop packed build'));
  });
});

describe('a receiver without the space for the build (ten hosts)', () => {
  it('is refused before anything is sent to any receiver: no .env, no chunk', async () => {
    const lock = `${opsLines(STATE, 'lock acquired')}${opsLines(STATE, 'provisioned yes', `current ${LIVE}`, 'slot blue', `has ${v1}`, 'platform debian 12 x86_64 python none node none', 'disk 0 50000 40000 /srv')}`;
    const h = harness((host, step) => (host === 'web5' && step.name === 'lock' ? { stdout: lock } : undefined), TEN);
    const err = (await deploy(h.ctx, loadEnvironment('ten', root10), {}).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/not enough space on web5/);
    expect(h.order.filter((s) => / upload /.test(s) && !s.startsWith('web1 '))).toEqual([]);
  });
});

describe('a receiver with room for the packed build but not for it unpacked (three hosts)', () => {
  it('is refused before anything is sent (its disk never filled up under its live release), naming what the build takes unpacked', async () => {
    const sha = createHash('sha256').update(PACKED).digest('hex');
    // 100 MB free on web3; the build is a few bytes packed, 2 GiB once unpacked (a venv, node_modules).
    const lock = `${opsLines(STATE, 'lock acquired')}${opsLines(STATE, 'provisioned yes', `current ${LIVE}`, 'slot blue', `has ${v1}`, 'platform debian 12 x86_64 python none node none', 'disk 102400 500000 400000 /srv')}`;
    const h = harness((host, step) =>
      step.name === 'pack build' ? { stdout: opsLines(ARTIFACT_KEYS, `part release ${sha} ${PACKED.length} ${2 ** 31} 60000`) } : host === 'web3' && step.name === 'lock' ? { stdout: lock } : undefined,
    );
    const err = (await deploy(h.ctx, loadEnvironment('three', root), {}).catch((e: unknown) => e)) as OpsError;
    expect(err.message).toMatch(/^not enough space on web3 for release \S+: 100 MB and 400000 inodes free under \/srv, and the build it would receive needs about \d+ MB and \d+ inodes \(1 MB to arrive, 2151 MB once unpacked\)\nweb3 still serves \S+; nothing was changed/m);
    expect(h.order.filter((s) => / upload /.test(s) && !s.startsWith('web1 '))).toEqual([]);
    expect(h.order).not.toContain('web3 receive build');
  });
});
