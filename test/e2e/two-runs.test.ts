// Two people, one environment: operations started at the same moment from a laptop and from a workflow, on a real
// host (sshd, supervisor, nginx), the ops binary a process of its own where it must be. Whatever the pair, one run
// changes the host at a time, the other is refused (or queues: queued runs are served in the order they came) naming
// who holds the lock, a read-only command is neither held up nor silent about the run under way, and no lock is left
// behind.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { sshConnector } from '../../core/context.ts';
import { deploy } from '../../core/ops/deploy.ts';
import { MemoryReporter } from '../../core/report.ts';
import { getLockStatus } from '../../core/ops/records.ts';
import { scriptText } from '../../core/remote/wrap.ts';
import { acquireLock, LOCK_QUEUED_EXIT, unlockScript } from '../../core/steps/lock.ts';
import { quote } from '../../core/shell.ts';
import { sshRun } from '../hosts/index.ts';
import { runOps, spawnOps } from '../support/cli.ts';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';
import { asRoot, labEnvironment, pythonWebApp, webConfig } from './support.ts';

const SERVER = pythonWebApp('os.environ["OPS_RELEASE"]');

let config: Record<string, unknown>;
let repo = '';
const root = mkdtempSync(join(tmpdir(), 'ops-two-runs-'));
// Provisioned (the snapshot), never deployed: the first test's deploy is the environment's first.
const lab = labEnvironment('two', (host) => {
  repo = join(root, 'app');
  initRepo(repo, { 'server.py': SERVER, VERSION: '1\n' });
  return (config = webConfig(host, repo));
});
const onHost = (command: string) => asRoot(lab.host, command);
const cli = (argv: string[]) => runOps(argv, { root: lab.project.root, processEnv: { PATH: process.env.PATH, HOME: process.env.HOME, USER: 'e2e' } });

describe.sequential('two runs on one environment', () => {
  it('during the build of an environment\'s first deploy (nothing serves yet): status and logs answer at once, saying a deploy is under way; env remove (which removes an environment that serves nothing), a second deploy and lock release (without --force) are refused naming the holder; nothing of the deploy is stopped', async () => {
    lab.project.write({ ...config, release: { ...(config.release as object), build: 'sleep 60' } });
    const ops = await spawnOps(['deploy', 'e2e', '--ref', 'main'], lab.project.root, (out) => out.includes('· build'), 'the deploy reaching its build', 120_000);
    try {
      const started = Date.now();
      const status = await cli(['status', 'e2e']);
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(status.out + status.err).toMatch(/deploy by \S+ since/);
      const logs = await cli(['logs', 'e2e']);
      expect(logs.code, logs.err).toBe(0);
      expect(logs.err).toMatch(new RegExp(`${lab.host.name}: a deploy run by \\S+, started .* is under way`));
      const remove = await cli(['env', 'remove', 'e2e']);
      expect(remove.code).not.toBe(0);
      expect(remove.err).toMatch(new RegExp(`${lab.host.name}: a deploy run by \\S+, started .* is under way`));
      expect(existsSync(join(lab.project.root, 'environments', 'e2e', 'environment.yml'))).toBe(true);
      const second = await cli(['deploy', 'e2e', '--ref', 'main']);
      expect(second.code).not.toBe(0);
      expect(second.err).toContain(`environment e2e is locked on ${lab.host.name} by a deploy run by`);
      const release = await cli(['lock', 'release', 'e2e']);
      expect(release.code).not.toBe(0);
      // The deploy's build still runs: nothing of it was stopped by the refused runs.
      expect(Number(await onHost("pgrep -fc '^sleep 60$' || true"))).toBe(1);
    } finally {
      lab.project.write(config);
      expect(await ops.stop('SIGINT')).toBe(130);
    }
    expect((await getLockStatus(lab.project.ctx(), lab.project.env()))[0]!.lock.state).toBe('free');
    expect(await onHost('readlink /srv/sample/current || true')).toBe('');
  }, 300_000);

  it('runs queued for the lock (switch.lock_wait) are served first come, first served: of A (holding), B (queued first) and C (queued later, looking first once A lets go), each over its own SSH connection, B takes the lock before C; ops lock status lists B then C behind A meanwhile', async () => {
    const env = lab.project.env();
    const dir = '/tmp/ops-e2e-queue';
    const order = `${dir}/order`;
    const go = `${dir}/go`;
    // Each run's lock step as ops runs it (root, its own connection): once the lock is its, it says so in `order`,
    // then lets go (A only once told to).
    const step = (id: string, hold = '') => scriptText(acquireLock(env, { operation: 'deploy', actor: `e2e-${id}`, runUrl: '', runId: `queue-${id}`, wait: 60 }, '', `${hold}echo ${id} >> ${order}\n${unlockScript(env, `queue-${id}`, [])}`));
    await onHost(`rm -rf ${dir} && mkdir -p ${dir}`);
    for (const [id, hold] of [['a', `while [ ! -e ${go} ]; do sleep 0.05; done\n`], ['b', ''], ['c', '']] as const) await sshRun(lab.host, `sudo tee ${dir}/${id}.sh > /dev/null`, { input: step(id, hold) });
    const take = (id: string) => sshRun(lab.host, `sudo bash ${dir}/${id}.sh`, { timeoutMs: 90_000 });
    // The step of run `id` (its bash), and the `sleep 1` it is in now (between two looks), or ''.
    const stepPid = (id: string) => `$(pgrep -fx ${quote(`bash ${dir}/${id}.sh`)} | head -1)`;
    const sleeping = (id: string) => onHost(`p=${stepPid(id)}; [ -z "$p" ] || pgrep -x sleep -P "$p" || true`);
    const until = async (what: string, ok: () => Promise<boolean>) => {
      for (let i = 0; i < 300; i++) if (await ok()) return;
      throw new Error(`timed out waiting for ${what}`);
    };
    const a = take('a');
    await until('A holding the lock', async () => (await onHost(`[ -e ${env.layout.lock}/info ] && echo yes || true`)) === 'yes');
    const b = take('b');
    await until('B waiting', async () => (await sleeping('b')) !== '');
    await new Promise((r) => setTimeout(r, 500)); // C's looks half a second after B's
    const c = take('c');
    await until('C waiting', async () => (await sleeping('c')) !== '');
    // What ops lock status (the login, over its own connection) says is what the runs do next: A holds, B then C.
    const look = await cli(['lock', 'status', 'e2e']);
    expect(look.code, look.err).toBe(1);
    expect(look.out).toMatch(new RegExp(`^${lab.host.name}: locked: a deploy run by e2e-a, started .*; 2 runs queued behind it, in the order they take the lock: 1\\. a deploy run by e2e-b, queued \\S+ \\(next\\), 2\\. a deploy run by e2e-c, queued \\S+$`, 'm'));
    // A lets go (on the host, at once) right after a look of C then one of B: C looks next, and without the queue
    // would take the lock before B.
    await onHost(`look() { local s0 s; s0=$(pgrep -x sleep -P "$1"); for _ in {1..500}; do s=$(pgrep -x sleep -P "$1"); if [ -n "$s" ] && [ "$s" != "$s0" ]; then return; fi; sleep 0.01; done; }
pb=${stepPid('b')}; pc=${stepPid('c')}; look "$pc"; look "$pb"; touch ${go}`);
    await Promise.all([a, b, c]);
    expect(await onHost(`cat ${order}`)).toBe('a\nb\nc');
    expect((await getLockStatus(lab.project.ctx(), lab.project.env()))[0]!.lock.state).toBe('free');
    await onHost(`rm -rf ${dir}`);
  }, 300_000);

  it('a deploy queued for the lock (switch.lock_wait) behind a deploy of a newer commit is refused once the lock is its, nothing deployed, naming both commits and how to deploy it on purpose (the newer commit stays live); the same older commit deployed on purpose, nothing queued ahead, goes live, warned that it is older', async () => {
    const older = gitIn(repo, ['rev-parse', 'HEAD']);
    const newer = commit(repo, { VERSION: '2\n' }, 'second');
    const slow = { ...config, switch: { ...(config.switch as object), lock_wait: 240 }, release: { ...(config.release as object), build: 'sleep 15' } };
    lab.project.write(slow);
    const exit = (o: { child: { exitCode: number | null; once: (e: 'exit', f: (code: number | null) => void) => void } }) =>
      o.child.exitCode !== null ? Promise.resolve(o.child.exitCode) : new Promise<number | null>((r) => o.child.once('exit', r));
    try {
      const a = await spawnOps(['deploy', 'e2e', '--ref', newer], lab.project.root, (out) => out.includes('· build'), 'the newer deploy reaching its build', 180_000);
      const b = await spawnOps(['deploy', 'e2e', '--ref', older], lab.project.root, (out) => out.includes('queued behind'), 'the older deploy queued behind it', 120_000);
      const [codeA, codeB] = await Promise.all([exit(a), exit(b)]);
      expect(codeA, a.out()).toBe(0);
      expect(codeB, b.out()).not.toBe(0);
      expect(b.out()).toContain(`is live now that it has the lock, put there by a run queued ahead of it; ${older.slice(0, 12)} is older: an ancestor of it, 1 commit behind`);
      expect(b.out()).toContain(`commit ${newer.slice(0, 12)}`);
      expect(b.out()).toContain('nothing was deployed');
      expect(b.out()).toContain(`ops deploy e2e --ref ${older.slice(0, 12)}`);
      expect(await onHost('cat /srv/sample/current/VERSION')).toBe('2');
      expect((await getLockStatus(lab.project.ctx(), lab.project.env()))[0]!.lock.state).toBe('free');
    } finally {
      lab.project.write(config);
    }
    // Asked on purpose, with nothing ahead of it: it goes back, saying so.
    const back = await cli(['deploy', 'e2e', '--ref', older]);
    expect(back.code, back.err).toBe(0);
    expect(back.err).toContain(`deploying ${older.slice(0, 12)}, which is not newer than the live commit on ${lab.host.name} (live ${newer.slice(0, 12)}: ${older.slice(0, 12)} is older, an ancestor of it, 1 live commit taken away)`);
    expect(await onHost('cat /srv/sample/current/VERSION')).toBe('1');
  }, 600_000);

  it("a deploy queued for the lock (switch.lock_wait) whose runner's clock is stepped an hour ahead while it asks (an NTP step, a laptop's clock set right): it waits for the holder all the same, neither refused at once as if it had waited, and goes live after it", async () => {
    const first = commit(repo, { VERSION: '3\n' }, 'third');
    lab.project.write({ ...config, switch: { ...(config.switch as object), lock_wait: 120 }, release: { ...(config.release as object), build: 'sleep 15' } });
    const exit = (o: { child: { exitCode: number | null; once: (e: 'exit', f: (code: number | null) => void) => void } }) =>
      o.child.exitCode !== null ? Promise.resolve(o.child.exitCode) : new Promise<number | null>((r) => o.child.once('exit', r));
    try {
      const a = await spawnOps(['deploy', 'e2e', '--ref', first], lab.project.root, (out) => out.includes('· build'), 'the first deploy reaching its build', 180_000);
      const second = commit(repo, { VERSION: '4\n' }, 'fourth');
      // The queued run's clock (this process's wall clock only) stepped an hour ahead once the host said whom it queues behind.
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
      const reporter = new MemoryReporter();
      const ctx = lab.project.ctx(reporter);
      const real = sshConnector(ctx);
      ctx.connector = async (env, host) => {
        const remote = await real(env, host);
        const run = remote.run.bind(remote);
        remote.run = async (step, options) => {
          const r = await run(step, options);
          if (step.name === 'lock' && r.code === LOCK_QUEUED_EXIT) vi.setSystemTime(Date.now() + 3_600_000);
          return r;
        };
        return remote;
      };
      const b = await deploy(ctx, lab.project.env(), { ref: second });
      expect(await exit(a), a.out()).toBe(0);
      expect(b.release).toBeTruthy();
      expect(reporter.lines.join('\n')).toMatch(new RegExp(`${lab.host.name}: queued behind a deploy run by \\S+, started [^\n]*, waiting up to 1[12]\\ds \\(switch\\.lock_wait\\)`));
      expect(await onHost('cat /srv/sample/current/VERSION')).toBe('4');
      expect((await getLockStatus(lab.project.ctx(), lab.project.env()))[0]!.lock.state).toBe('free');
    } finally {
      vi.useRealTimers();
      lab.project.write(config);
    }
  }, 600_000);
});
