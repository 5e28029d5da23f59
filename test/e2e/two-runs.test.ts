// Two people, one environment: operations started at the same moment from a laptop and from a workflow, on a real
// host (sshd, supervisor, nginx), the ops binary a process of its own where it must be. Whatever the pair, one run
// changes the host at a time, the other is refused (or queues: queued runs are served in the order they came) naming
// who holds the lock, a read-only command is neither held up nor silent about the run under way, and no lock is left
// behind.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getLockStatus } from '../../core/ops/records.ts';
import { scriptText } from '../../core/remote/wrap.ts';
import { acquireLock, unlockScript } from '../../core/steps/lock.ts';
import { quote } from '../../core/shell.ts';
import { sshRun } from '../hosts/index.ts';
import { runOps, spawnOps } from '../support/cli.ts';
import { initRepo } from '../support/gitrepo.ts';
import { asRoot, labEnvironment, pythonWebApp, webConfig } from './support.ts';

const SERVER = pythonWebApp('os.environ["OPS_RELEASE"]');

let config: Record<string, unknown>;
const root = mkdtempSync(join(tmpdir(), 'ops-two-runs-'));
// Provisioned (the snapshot), never deployed: the first test's deploy is the environment's first.
const lab = labEnvironment('two', (host) => {
  const repo = join(root, 'app');
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

  it('runs queued for the lock (switch.lock_wait) are served first come, first served: of A (holding), B (queued first) and C (queued later, looking first once A lets go), each over its own SSH connection, B takes the lock before C', async () => {
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
    // A lets go (on the host, at once) right after a look of C then one of B: C looks next, and without the queue
    // would take the lock before B.
    await onHost(`look() { local s0 s; s0=$(pgrep -x sleep -P "$1"); for _ in {1..500}; do s=$(pgrep -x sleep -P "$1"); if [ -n "$s" ] && [ "$s" != "$s0" ]; then return; fi; sleep 0.01; done; }
pb=${stepPid('b')}; pc=${stepPid('c')}; look "$pc"; look "$pb"; touch ${go}`);
    await Promise.all([a, b, c]);
    expect(await onHost(`cat ${order}`)).toBe('a\nb\nc');
    expect((await getLockStatus(lab.project.ctx(), lab.project.env()))[0]!.lock.state).toBe('free');
    await onHost(`rm -rf ${dir}`);
  }, 300_000);
});
