// Interrupting a deploy as a user or a cancelled workflow does, on a real host (sshd, supervisor, nginx), with the
// ops binary as a process of its own: a Ctrl-C pressed twice, a SIGTERM while the switch runs. Whatever the moment,
// the lock is let go, and what the run says is live is what serves.
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { provision } from '../../core/ops/provision.ts';
import { rollback } from '../../core/ops/rollback.ts';
import { auditLog, breakLock, formatLock, formatLockRelease, getLockStatus, listReleases } from '../../core/ops/records.ts';
import { quote } from '../../core/shell.ts';
import { HOLDER_SILENT_SECONDS } from '../../core/steps/lock.ts';
import { downHost, sshRun, type Host } from '../hosts/index.ts';
import { waitFor } from '../hosts/proc.ts';
import { spawnOps, type SpawnedOps } from '../support/cli.ts';
import { commit, initRepo } from '../support/gitrepo.ts';
import { get, makeProject, pythonWebApp, readyHost, untilHolderGone, webConfig, type TestProject } from './support.ts';

/** The app: answers every path with the release it runs. */
const SERVER = pythonWebApp('os.environ["OPS_RELEASE"]');

let host: Host;
let project: TestProject;
let repo = '';
let config: Record<string, unknown>;
const root = mkdtempSync(join(tmpdir(), 'ops-interrupt-'));
const OPS = join(import.meta.dirname, '..', '..', 'scripts', 'ops-bin.js');
const PTY = join(import.meta.dirname, '..', 'support', 'on_terminal.py');
const onHost = async (command: string) => (await sshRun(host, `sudo bash -c ${quote(command)}`)).stdout.trim();
/** The release `current` names and the one that answers through nginx: they must be the same. */
const liveAndServed = async () => ({ current: (await onHost('readlink /srv/sample/current')).replace(/^.*\//, ''), served: (await get(host)).body });

/**
 * SIGTERM to `ops`, then what every interruption must leave: exit 143 (128 + SIGTERM), the lock let go, what `current` names is what
 * serves, and the run said so (one message per thing, no stack trace).
 */
async function stoppedCleanly(ops: SpawnedOps) {
  const code = await ops.stop('SIGTERM');
  const out = ops.out();
  expect(code, out).toBe(143);
  expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
  const now = await liveAndServed();
  expect(now.served).toBe(now.current);
  expect(out).toContain(`${host.name}: ${now.current} is live after the interruption`);
  expect(out).not.toMatch(/^\s+at /m);
  return { out, now };
}

/**
 * A deploy of a new commit (VERSION `version`) whose build is `build`, as a process of its own, once its build
 * runs (its channel open). The caller writes `config` back when done.
 */
async function deployUntilBuild(build: string, version: string, extra: string[] = []): Promise<SpawnedOps> {
  project.write({ ...config, release: { ...(config.release as object), build } });
  commit(repo, { VERSION: `${version}\n` }, version);
  // The build's channel open (its header comes first): once its sleep runs on the host (one not there before), up to
  // 60 s on a busy test host.
  const sleeps = async () => (await onHost("pgrep -f '^sleep 60+$' || true")).split('\n').filter(Boolean);
  const before = new Set(await sleeps());
  const ops = await spawnOps(['deploy', 'e2e', '--ref', 'main', ...extra], project.root, (out) => out.includes('· build'), 'the deploy reaching its build', 120_000);
  const building = await waitFor(async () => (await sleeps()).some((pid) => !before.has(pid)), 60_000, 200);
  if (!building) throw new Error(`the build (${build}) never ran on the host: the deploy said\n${ops.out()}`);
  return ops;
}

beforeAll(async () => {
  host = await readyHost('int');
  repo = join(root, 'app');
  initRepo(repo, { 'server.py': SERVER, VERSION: '1\n' });
  config = webConfig(host, repo);
  project = makeProject('e2e', config);
  await deploy(project.ctx(), project.env(), {});
}, 900_000);

afterAll(async () => {
  if (host) await downHost(host.name, { purge: true });
  project?.cleanup();
});

describe.sequential('interrupting a deploy', () => {
  it('Ctrl-C pressed twice during the build: one interruption, the lock let go (not left stale), the previous release serves; with --json, one document on stdout saying so', async () => {
    const before = await liveAndServed();
    try {
      const ops = await deployUntilBuild('sleep 60', '2', ['--json']);
      ops.child.kill('SIGINT');
      await new Promise((r) => setTimeout(r, 100));
      expect(await ops.stop('SIGINT')).toBe(130);
      // One interruption: the second Ctrl-C starts no second stop. It says "already stopping" when it arrives while
      // the first one's stop runs; that stop (a few round trips) may be over within the 100 ms, the process exiting:
      // then the second one finds nothing to say.
      expect(ops.out()).toContain(`SIGINT received during build on ${host.name}: stopping them, releasing the lock`);
      expect(ops.out().match(/SIGINT received during/g)).toHaveLength(1);
      expect((ops.out().match(/SIGINT received: already stopping \(SIGINT\), releasing the lock/g) ?? []).length).toBeLessThanOrEqual(1);
      expect(ops.out()).toContain(`${host.name}: ${before.current} is live after the interruption`);
      // The document (stdout, written whole as the process exits), among the progress on stderr.
      const start = ops.out().indexOf('{\n  "ok": false');
      const doc = JSON.parse(ops.out().slice(start, ops.out().indexOf('\n}', start) + 2)) as Record<string, unknown>;
      expect(doc).toMatchObject({ ok: false, result: 'interrupted', signal: 'SIGINT', exitCode: 130, environment: 'e2e', previous: before.current, live: before.current });
      expect(doc.release).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{12}$/);
      expect(ops.out().match(/"ok": false/g)).toHaveLength(1);
    } finally {
      project.write(config);
    }
    const locks = await getLockStatus(project.ctx(), project.env());
    expect(locks[0]!.lock.state).toBe('free');
    expect((await auditLog(project.ctx(), project.env(), 3))[0]!.entries.map((e) => e.message)).toContainEqual(expect.stringMatching(new RegExp(`^interrupted by SIGINT during build on ${host.name}; \\S+ did not go live, ${before.current} is still live$`)));
    expect(await onHost("pgrep -fc '^sleep 60$' || true")).toBe('0');
    expect(await liveAndServed()).toEqual(before);
  }, 300_000);

  it('Ctrl-C while queued behind another run (switch.lock_wait): it gives up waiting, stops nothing of the holder\'s and writes no audit line', async () => {
    const before = await liveAndServed();
    const audited = (await auditLog(project.ctx(), project.env(), 100))[0]!.entries.length;
    let holder: SpawnedOps | undefined;
    try {
      holder = await deployUntilBuild('sleep 60', '2q');
      project.write({ ...config, release: { ...(config.release as object), build: 'sleep 60' }, switch: { ...(config.switch as object), lock_wait: 120 } });
      // Once it said whom it queues behind, its lock step waits on the host.
      const queued = await spawnOps(['deploy', 'e2e', '--ref', 'main'], project.root, (out) => out.includes('queued behind'), 'the deploy queueing behind the holder', 60_000);
      expect(await queued.stop('SIGINT')).toBe(130);
      const out = queued.out();
      // Said before it waited: whom it queued behind (and, its silence read, when that lock would read stale).
      expect(out).toMatch(new RegExp(`${host.name}: queued behind a deploy run by [^\n]*, waiting up to 1[12]\\ds \\(switch\\.lock_wait\\); its run's SSH connection is still open \\(it last sent something \\d+s ago\\)`));
      expect(out).toContain(`SIGINT received during lock on ${host.name} (waiting for it, or taking it): giving up`);
      expect(out).not.toContain('stopping them, releasing the lock');
      expect(out).not.toContain('stopped what the run had left running');
      expect(out).toMatch(new RegExp(`${host.name}: gave up waiting for the lock, held by a deploy run by [^\n]*: this run never held it there`));
      // The holder goes on: its build still runs, its lock is held, no line of the queued run in the log.
      expect(await onHost("pgrep -fc '^sleep 60$' || true")).toBe('1');
      expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('held');
      expect((await auditLog(project.ctx(), project.env(), 100))[0]!.entries.length).toBe(audited);
    } finally {
      project.write(config);
      if (holder) expect(await holder.stop('SIGINT')).toBe(130);
    }
    expect(await liveAndServed()).toEqual(before);
  }, 300_000);

  it('a queued run killed outright while it waits (SIGKILL during switch.lock_wait): when the holder ends, the lock is free, never taken in the dead connection\'s name', async () => {
    let holder: SpawnedOps | undefined;
    try {
      holder = await deployUntilBuild('sleep 60', '2k');
      project.write({ ...config, release: { ...(config.release as object), build: 'sleep 60' }, switch: { ...(config.switch as object), lock_wait: 120 } });
      const queued = await spawnOps(['deploy', 'e2e', '--ref', 'main'], project.root, () => true, 'the queued deploy', 10_000);
      // Its lock step waiting on the host: processes of two connections there (the holder's build, the queued lock step).
      const connections = "grep -hzos '^OPS_CONNECTION=.*' /proc/[0-9]*/environ | sort -zu | tr '\\0' '\\n' | grep -c . || true";
      for (let i = 0; i < 60 && Number(await onHost(connections)) < 2; i++) await new Promise((r) => setTimeout(r, 500));
      expect(Number(await onHost(connections)), 'the queued run waiting on the host').toBeGreaterThanOrEqual(2);
      await queued.stop('SIGKILL');
      // sshd ends the dead run's session a moment later: until its lock step is gone, only the holder's connection left.
      for (let i = 0; i < 100 && Number(await onHost(connections)) > 1; i++) await new Promise((r) => setTimeout(r, 200));
      expect(Number(await onHost(connections)), "the queued run's lock step gone with its connection").toBe(1);
    } finally {
      project.write(config);
      if (holder) expect(await holder.stop('SIGINT')).toBe(130);
    }
    // The dead run's wait loop (it polls each second) had the time to take the lock, had it gone on.
    await new Promise((r) => setTimeout(r, 3000));
    expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
  }, 300_000);

  it.each([
    ['SIGHUP', 'the terminal closed', '2h'],
    ['SIGQUIT', 'Ctrl-\\ pressed', '2q'],
  ] as const)('%s (%s) during the build: the run stops as on SIGTERM, exit 128 + its number, the lock let go, what current names serves', async (signal, _why, version) => {
    const before = await liveAndServed();
    try {
      const ops = await deployUntilBuild('sleep 60', version);
      const code = await ops.stop(signal);
      expect(code, ops.out()).toBe(128 + constants.signals[signal]);
      expect(ops.out()).toContain(`${signal} received during build on ${host.name}: stopping them, releasing the lock`);
      expect(ops.out()).toContain(`${host.name}: ${before.current} is live after the interruption`);
    } finally {
      project.write(config);
    }
    expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
    expect(await onHost("pgrep -fc '^sleep 60$' || true")).toBe('0');
    expect(await liveAndServed()).toEqual(before);
  }, 300_000);

  it('a terminal paused with Ctrl-S during the build (every write of ops blocked there): the run goes on, its SSH keepalives too, so its lock reads held, never stale, past HOLDER_SILENT_SECONDS; resumed (Ctrl-Q), the deploy ends, its output whole', async () => {
    const said = join(root, 'ctrl-s');
    writeFileSync(said, '');
    // A build that says one line once the terminal is paused (ops blocks writing it, without outputNeverBlocks), then
    // nothing for longer than HOLDER_SILENT_SECONDS: the host sends nothing that the runner's kernel would acknowledge.
    project.write({ ...config, release: { ...(config.release as object), build: `touch /tmp/ctrl-s-build; sleep 4; echo "building 1"; sleep ${HOLDER_SILENT_SECONDS + 20}; echo "building 16"` } });
    commit(repo, { VERSION: '2s\n' }, 'ctrl s');
    try {
      const spec = {
        argv: ['sh', '-c', `stty ixon; ${quote(process.execPath)} ${quote(OPS)} deploy e2e --ref main; echo "exit=$?"`],
        cwd: project.root,
        env: { ...process.env, OPS_ROOT: project.root, NO_COLOR: '1' },
        // Ctrl-S once the build began; the test says when to go on (each wait of the terminal is under 60 s); Ctrl-Q.
        steps: [[{ file: said, text: 'building' }, '\x13'], [{ file: said, text: 'half' }, ''], [{ file: said, text: 'resume' }, '\x11']],
      };
      const terminal = promisify(execFile)('python3', [PTY, JSON.stringify(spec)], { encoding: 'utf8', timeout: 600_000 });
      expect(await waitFor(async () => (await onHost('test -e /tmp/ctrl-s-build && echo yes || true')) === 'yes', 120_000, 200)).toBe(true);
      writeFileSync(said, 'building');
      await new Promise((r) => setTimeout(r, 40_000));
      writeFileSync(said, 'building half');
      await new Promise((r) => setTimeout(r, (HOLDER_SILENT_SECONDS - 40 + 10) * 1000));
      const lock = (await getLockStatus(project.ctx(), project.env()))[0]!.lock;
      expect(lock.state, JSON.stringify(lock)).toBe('held');
      writeFileSync(said, 'building half resume');
      const out = (JSON.parse((await terminal).stdout) as { out: string }).out;
      expect(out).toMatch(/exit=0/);
      expect(out).toMatch(/building 1\b[\s\S]*building 16\b/);
    } finally {
      project.write(config);
      await onHost('rm -f /tmp/ctrl-s-build');
    }
    expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
  }, 600_000);

  it('Ctrl-Z during the build (a shell with job control: SIGTSTP to the deploy\'s process group): the run is not suspended, saying why, so its lock reads held, never stale, past HOLDER_SILENT_SECONDS; the deploy ends, its lock let go', async () => {
    const said = join(root, 'ctrl-z');
    writeFileSync(said, '');
    project.write({ ...config, release: { ...(config.release as object), build: `touch /tmp/ctrl-z-build; sleep ${HOLDER_SILENT_SECONDS + 20}; echo "built"` } });
    commit(repo, { VERSION: '2z\n' }, 'ctrl z');
    try {
      const spec = {
        // set -m: the deploy a job of its own, in the terminal's foreground, as in an interactive shell.
        argv: ['bash', '-c', `set -m; ${quote(process.execPath)} ${quote(OPS)} deploy e2e --ref main; echo "exit=$?"`],
        cwd: project.root,
        env: { ...process.env, OPS_ROOT: project.root, NO_COLOR: '1' },
        steps: [[{ file: said, text: 'building' }, '\x1a'], [{ file: said, text: 'half' }, ''], [{ file: said, text: 'resume' }, '']],
      };
      const terminal = promisify(execFile)('python3', [PTY, JSON.stringify(spec)], { encoding: 'utf8', timeout: 600_000 });
      expect(await waitFor(async () => (await onHost('test -e /tmp/ctrl-z-build && echo yes || true')) === 'yes', 120_000, 200)).toBe(true);
      writeFileSync(said, 'building');
      await new Promise((r) => setTimeout(r, 40_000));
      writeFileSync(said, 'building half');
      await new Promise((r) => setTimeout(r, (HOLDER_SILENT_SECONDS - 40 + 10) * 1000));
      const lock = (await getLockStatus(project.ctx(), project.env()))[0]!.lock;
      expect(lock.state, JSON.stringify(lock)).toBe('held');
      writeFileSync(said, 'building half resume');
      const out = (JSON.parse((await terminal).stdout) as { out: string }).out.replace(/\r?\n/g, ' ');
      expect(out).toContain(`Ctrl-Z ignored: this deploy holds the lock of e2e on ${host.name}`);
      expect(out).toMatch(/exit=0/);
    } finally {
      project.write(config);
      await onHost('rm -f /tmp/ctrl-z-build');
    }
    expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
  }, 600_000);

  it('the terminal closed during the build (a terminal window closed, the SSH session to a jump box dropped: SIGHUP, then every write to it fails): the run stops as on Ctrl-C, exit 129, its build stopped, the lock let go, the interruption audited; the previous release serves', async () => {
    const before = await liveAndServed();
    const said = join(root, 'hangup');
    writeFileSync(said, '');
    project.write({ ...config, release: { ...(config.release as object), build: 'touch /tmp/hangup-build; sleep 60' } });
    commit(repo, { VERSION: '2h\n' }, 'hangup');
    try {
      const spec = {
        // ops the terminal's session leader, as a command run from a terminal window's shell with exec.
        argv: [process.execPath, OPS, 'deploy', 'e2e', '--ref', 'main'],
        cwd: project.root,
        env: { ...process.env, OPS_ROOT: project.root, NO_COLOR: '1' },
        steps: [[{ file: said, text: 'building' }, { hangup: true }]],
      };
      const terminal = promisify(execFile)('python3', [PTY, JSON.stringify(spec)], { encoding: 'utf8', timeout: 600_000 });
      expect(await waitFor(async () => (await onHost('test -e /tmp/hangup-build && echo yes || true')) === 'yes', 120_000, 200)).toBe(true);
      writeFileSync(said, 'building');
      expect((JSON.parse((await terminal).stdout) as { status: number }).status).toBe(129);
    } finally {
      project.write(config);
      await onHost('rm -f /tmp/hangup-build');
    }
    expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
    expect(await onHost("pgrep -fc '^sleep 60$' || true")).toBe('0');
    expect((await auditLog(project.ctx(), project.env(), 3))[0]!.entries.map((e) => e.message)).toContainEqual(expect.stringMatching(new RegExp(`^interrupted by SIGHUP during build on ${host.name}; \\S+ did not go live, ${before.current} is still live$`)));
    expect(await liveAndServed()).toEqual(before);
  }, 300_000);

  it("a SIGTERM while provision applies nginx files (nginx -t slow: a large configuration, upstream names to resolve): the change runs to its end, never files nginx never tested left on disk for the next reload nor its snapshot behind; what is on disk is what serves; the lock let go", async () => {
    const site = project.env().layout.nginxSite;
    const slow = '/etc/nginx/conf.d/zz-slow.conf';
    project.write({ ...config, nginx: { client_max_body_size: '20m' } });
    let code: number | null = null;
    let out = '';
    try {
      // Once its lock step's look is done: nginx -t blocks opening this file (a FIFO) until the test writes to it.
      const ops = await spawnOps(['provision', 'e2e'], project.root, (o) => o.includes('· packages'), 'provision reaching its packages', 120_000);
      await onHost(`rm -f ${slow}; mkfifo ${slow}`);
      const testing = await waitFor(async () => (await onHost("pgrep -fx 'nginx -t' || true")) !== '', 240_000, 100);
      if (!testing) throw new Error(`nginx -t never ran: provision said\n${ops.out()}`);
      const stopped = ops.stop('SIGTERM');
      await new Promise((r) => setTimeout(r, 2000));
      // nginx -t goes on (or was killed): the FIFO removed either way.
      await onHost(`timeout 5 bash -c 'echo "# slow" > ${slow}' || true; rm -f ${slow}`);
      code = await stopped;
      out = ops.out();
    } finally {
      project.write(config);
      await onHost(`rm -f ${slow}`);
    }
    expect(code, out).toBe(143);
    expect(out).toContain(`SIGTERM received during nginx on ${host.name}`);
    expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
    expect(await onHost('ls -d /etc/.ops-nginx.* 2>/dev/null || true'), 'the change\'s snapshot left behind').toBe('');
    // What nginx serves (a 15 MB body: 413 under the 10m limit) is what its files on disk say.
    const disk20m = (await onHost(`grep -c 'client_max_body_size 20m' ${quote(site)} || true`)) !== '0';
    const served413 = (await onHost("head -c 15000000 /dev/zero | curl -s -o /dev/null -w '%{http_code}' --data-binary @- http://127.0.0.1/")) === '413';
    expect({ disk20m, served413 }).toEqual({ disk20m, served413: !disk20m });
    expect(await onHost('nginx -t >/dev/null 2>&1 && echo ok || true')).toBe('ok');
    // What a change cut off by a reboot or a SIGKILL leaves (no trap runs): its snapshot, and, cut off inside its
    // put-back, /etc/nginx gone with the snapshot its only copy. The next change puts /etc/nginx back, leaves no snapshot.
    await onHost('mkdir /etc/.ops-nginx.dead01 /etc/.ops-nginx.dead02 && cp -a /etc/nginx /etc/.ops-nginx.dead01/nginx && mv /etc/nginx /etc/.ops-nginx.dead02/nginx');
    // Provision again: the host as configured.
    await provision(project.ctx(), project.env());
    expect(await onHost('ls -d /etc/.ops-nginx.* 2>/dev/null || true'), 'snapshots left behind').toBe('');
    expect(await onHost('nginx -t >/dev/null 2>&1 && echo ok || true')).toBe('ok');
  }, 600_000);

  it('its own output failing (| head -2: EPIPE; > /dev/full: ENOSPC): the deploy goes on to its end, the release live, the lock let go, its audit line written; never blamed on the host', async () => {
    const bin = join(import.meta.dirname, '..', '..', 'scripts', 'ops-bin.js');
    for (const [version, redirect] of [['2p', '| head -2 >/dev/null'], ['2d', '> /dev/full']] as const) {
      commit(repo, { VERSION: `${version}\n` }, version);
      const r = spawnSync('bash', ['-c', `"$NODE" "$BIN" deploy e2e --ref main ${redirect}; echo "rc=\${PIPESTATUS[0]}" >&2`], { env: { ...process.env, NODE: process.execPath, BIN: bin, OPS_ROOT: project.root, NO_COLOR: '1' }, encoding: 'utf8', timeout: 240_000 });
      expect(r.stderr, redirect).toMatch(/rc=0\n$/);
      expect(r.stderr, redirect).not.toMatch(/closed by the other end|host may have rebooted|no space left on this machine/);
      if (redirect.includes('full')) expect(r.stderr).toContain('warning: ops could not write its own output (stdout: ENOSPC)');
      expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state, redirect).toBe('free');
      const now = await liveAndServed();
      expect(now.served).toBe(now.current);
      const last = (await auditLog(project.ctx(), project.env(), 1))[0]!.entries[0]!;
      expect(last, redirect).toMatchObject({ operation: 'deploy', result: 'success', release: now.current });
      expect(await onHost(`cat /srv/sample/releases/${now.current}/VERSION`)).toBe(version);
    }
  }, 600_000);

  it('a deploy whose lock is released by force by someone else (ops lock release --force) during its build: it says so and by whom, not only that its build was killed; and audits itself', async () => {
    const before = await liveAndServed();
    let out = '';
    try {
      const ops = await deployUntilBuild('sleep 60', '2f');
      const released = await breakLock(project.ctx(), project.env(), true);
      expect(released[0]!.lock.state).toBe('held');
      const code = await ops.stop('SIGCONT'); // (no stop: its exit, whenever it comes)
      out = ops.out();
      expect(code, out).not.toBe(0);
      expect(code, out).not.toBe(130);
    } finally {
      project.write(config);
    }
    expect(out).toMatch(new RegExp(`step "build" on ${host.name} [^\n]*\n`));
    expect(out).toMatch(new RegExp(`${host.name}: this run's lock was released by force by \\S+ at \\S+ \\(ops lock release --force: "removed held lock of a deploy run by [^"]*"\\) while it ran: that stopped the run's steps there`));
    // The release wrote the run's line first (a run stuck for good would write none), then its own; the run, back, its own.
    const entries = (await auditLog(project.ctx(), project.env(), 3))[0]!.entries.slice(1);
    const forced = (await auditLog(project.ctx(), project.env(), 3))[0]!.entries[0]!;
    expect(forced).toMatchObject({ operation: 'deploy', result: 'failed' });
    expect(forced.message).toMatch(/^interrupted: its lock released by force by \S+ while it ran \(ops lock release --force; its lock taken /);
    expect(entries.map((e) => e.operation)).toEqual(['lock release', 'deploy']);
    expect(entries[1]).toMatchObject({ result: 'failed', ref: 'main' });
    expect(entries[1]!.message).toMatch(/its lock released by force by /);
    // The release it made is marked failed, as any failed run's (not left "unfinished").
    const made = (await listReleases(project.ctx(), project.env()))[0]!.releases.find((r) => r.id === entries[1]!.release);
    expect(made).toMatchObject({ status: 'failed', reason: expect.stringMatching(/its lock released by force by /) });
    expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
    expect(await liveAndServed()).toEqual(before);
  }, 300_000);

  it('the runner killed outright during the build: the build goes on without it; `ops lock release` stops it before freeing the lock', async () => {
    const before = await liveAndServed();
    try {
      await (await deployUntilBuild('sleep 60', '2b')).stop('SIGKILL');
      await onHost(untilHolderGone()); // sshd ended the dead run's session: the build's fate is decided
      expect(await onHost("pgrep -fc '^sleep 60$' || true"), 'the dead run\'s build').toBe('1');
    } finally {
      project.write(config);
    }
    // The next run: refused at once, naming the dead run, how long ago it took the lock, that its connection ended
    // there, and the command that clears it.
    const next = await deploy(project.ctx(), project.env(), {}).then(() => undefined, (e: unknown) => e as { message: string; hint?: string });
    expect(next?.message).toMatch(new RegExp(`^environment e2e has a stale lock on ${host.name}, left by a deploy run by .*, started \\S+, \\d+s ago, which is no longer connected \\(the SSH server process of its connection there, \\d+, has ended: its runner was killed outright or lost its connection\\)`));
    expect(next?.hint).toMatch(/^release it: ops lock release e2e /);
    const released = await breakLock(project.ctx(), project.env());
    expect(released[0]!.lock.state).toBe('stale');
    expect(released[0]!.stopped.length, 'processes stopped').toBeGreaterThan(0);
    expect(await onHost("pgrep -fc '^sleep 60$' || true")).toBe('0');
    // The dead run's own line first (it could write none), then the release's. Before: the release's alone.
    const [lost, release] = (await auditLog(project.ctx(), project.env(), 2))[0]!.entries;
    expect(lost).toMatchObject({ operation: 'deploy', result: 'failed', message: expect.stringMatching(new RegExp(`^interrupted: connection lost \\(its connection ended: its runner killed outright or cut off; its lock, taken \\S+, found stale by ops lock release\\); stopped what its run left running \\(processes [\\d ]+\\); ${before.current} is live$`)) });
    expect(release!.message).toMatch(new RegExp(`^removed stale lock of a deploy run by .*; stopped what its run left running \\(processes [\\d ]+\\); ${before.current} is live$`));
    expect(await liveAndServed()).toEqual(before);
  }, 300_000);

  it('the runner gone with its network during the build (no FIN, no RST reaches the host: sshd keeps the connection open for hours): its lock reads stale once that connection has been silent HOLDER_SILENT_SECONDS, and `ops lock release` frees it without --force, stopping the build', async () => {
    const before = await liveAndServed();
    const veth = `ops${host.octet}h`;
    try {
      const ops = await deployUntilBuild('sleep 600', '2n'); // a version of its own: the same one twice commits nothing
      // The network goes, then the runner: its sockets torn down while nothing reaches the host (ss -K sends an RST,
      // lost), as a laptop closed or a runner VM deleted; then the network comes back.
      spawnSync('ip', ['link', 'set', veth, 'down'], { stdio: 'inherit' });
      try {
        expect(spawnSync('ss', ['-K', 'dst', host.address, 'dport', '=', ':22']).status).toBe(0);
        await ops.stop('SIGKILL');
      } finally {
        spawnSync('ip', ['link', 'set', veth, 'up'], { stdio: 'inherit' });
      }
      expect(await onHost("pgrep -fc '^sleep 600$' || true"), "the gone run's build").toBe('1');
      // Released at once, it is left (its run may be alive), saying in how many seconds it reads stale and what to do.
      const early = await breakLock(project.ctx(), project.env());
      expect(early[0]!.refused).toBe(true);
      const said = /it last sent something (\d+)s ago\); if its runner went away without closing it \(its network lost\), the lock reads stale in (\d+)s: run ops lock release e2e again then; if you are sure the run is gone or stuck, ops lock release e2e --force/.exec(formatLockRelease(early, 'e2e'));
      expect(said, formatLockRelease(early, 'e2e')).not.toBeNull();
      expect(Number(said![1]) + Number(said![2])).toBe(HOLDER_SILENT_SECONDS);
      expect(await onHost("pgrep -fc '^sleep 600$' || true"), 'nothing stopped').toBe('1');
      // Its sshd still holds the connection: held while it may be a live run's, stale once silent past the keepalives.
      const seen = new Set<string>();
      let lock = (await getLockStatus(project.ctx(), project.env()))[0]!.lock;
      for (let i = 0; lock.state !== 'stale' && i < HOLDER_SILENT_SECONDS + 30; i += 5) {
        seen.add(lock.state);
        await new Promise((r) => setTimeout(r, 5000));
        lock = (await getLockStatus(project.ctx(), project.env()))[0]!.lock;
      }
      expect(seen).toEqual(new Set(['held']));
      expect(lock.state).toBe('stale');
      expect(Number(lock.holder.silent)).toBeGreaterThanOrEqual(HOLDER_SILENT_SECONDS);
    } finally {
      project.write(config);
    }
    // The next run is told it is stale, and how to free it.
    await expect(deploy(project.ctx(), project.env(), {})).rejects.toThrow(/has a stale lock on .*its SSH connection is still open there but has sent nothing for \d+s/);
    const released = await breakLock(project.ctx(), project.env());
    expect(released[0]!.refused).toBe(false);
    expect(released[0]!.lock.state).toBe('stale');
    expect(released[0]!.stopped.length, 'processes stopped').toBeGreaterThan(0);
    expect(await onHost("pgrep -fc '^sleep 600$' || true")).toBe('0');
    expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
    expect(await liveAndServed()).toEqual(before);
  }, 300_000);

  it('a lock taken before the host rebooted (its holder pid and start time now a live process\'s: ticks restart at boot): stale, saying so, and `ops lock release` frees it without --force', async () => {
    // Written by hand as a run would have (no deploy: nothing committed), its holder a live process of this boot (pid 1).
    const write = (boot: string) =>
      onHost(`rm -rf /srv/sample/.ops/lock.new && mkdir /srv/sample/.ops/lock.new && printf '%s\\n' operation=deploy actor=before-reboot run= run_id=0123456789abcdef connection=0123456789ab since=2026-12-01T00:00:00Z holder_pid=1 "holder_start=$(awk '{print $22}' /proc/1/stat)" "holder_boot=${boot}" > /srv/sample/.ops/lock.new/info && rm -rf /srv/sample/.ops/lock && mv -T /srv/sample/.ops/lock.new /srv/sample/.ops/lock`);
    try {
      await write('$(cat /proc/sys/kernel/random/boot_id)');
      expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state, 'this boot: held').toBe('held');
      await write('0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0');
      const status = await getLockStatus(project.ctx(), project.env());
      expect(status[0]!.lock).toMatchObject({ state: 'stale', holder: { rebooted: 'yes' } });
      expect(formatLock(status)).toMatch(/STALE lock \(its run is gone\): a deploy run by before-reboot, .* \(the host has rebooted since it was taken\)$/);
      await expect(deploy(project.ctx(), project.env(), {})).rejects.toThrow(/has a stale lock on .*no longer connected \(the host has rebooted since it was taken\)/);
      const released = await breakLock(project.ctx(), project.env());
      expect(released[0]).toMatchObject({ refused: false, lock: { state: 'stale' } });
      expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
    } finally {
      await onHost('rm -rf /srv/sample/.ops/lock /srv/sample/.ops/lock.new');
    }
  }, 120_000);

  it('a cancelled workflow (SIGINT, then the runner killed before its release ends: a build ignoring SIGTERM holds it 10 s): the release still ends on the host', async () => {
    const before = await liveAndServed();
    try {
      const ops = await deployUntilBuild("trap '' TERM; sleep 60", '2c');
      ops.child.kill('SIGINT');
      // GitHub kills the step 10 s after its SIGINT (sooner here): the release is waiting out the build's SIGTERM.
      await new Promise((r) => setTimeout(r, 3000));
      await ops.stop('SIGKILL');
    } finally {
      project.write(config);
    }
    let state = '';
    for (let i = 0; i < 60 && state !== 'free'; i++) {
      state = (await getLockStatus(project.ctx(), project.env()))[0]!.lock.state;
      if (state !== 'free') await new Promise((r) => setTimeout(r, 500));
    }
    expect(state, 'the lock, once the release ended on the host').toBe('free');
    expect(await onHost("pgrep -fc '^sleep 60$' || true")).toBe('0');
    expect((await auditLog(project.ctx(), project.env(), 3))[0]!.entries.map((e) => e.message)).toContainEqual(expect.stringMatching(new RegExp(`^interrupted by SIGINT during build on ${host.name}; \\S+ did not go live, ${before.current} is still live$`)));
    expect(await liveAndServed()).toEqual(before);
  }, 300_000);

  // A site template without {{slot_location}}: the switch then looks for the new slot at /.ops/slot for ~5 s after
  // nginx reloaded, before `current` flips: a window a signal falls into.
  const slowSwitch = () => {
    writeFileSync(join(project.root, 'environments', 'e2e', 'site.conf'), `{{upstreams_include}}
server {
    listen 80{{default_server}};
    server_name {{server_name}};
    {{logs}}
    {{locations}}
}
`);
    project.write({ ...config, nginx: { site_template: 'site.conf' } });
  };

  it('a SIGTERM while the switch runs: the switch is not cut off half-way; the lock is let go and what current names is what serves', async () => {
    slowSwitch();
    commit(repo, { VERSION: '3\n' }, 'three');
    try {
      const ops = await spawnOps(['deploy', 'e2e', '--ref', 'main'], project.root, (out) => out.includes('· switch'), 'the deploy reaching its switch', 120_000);
      await new Promise((r) => setTimeout(r, 1500));
      const { out, now } = await stoppedCleanly(ops);
      expect(out, out).toMatch(/SIGTERM received during switch on/);
      // One run, one line: the switch was let end and put its release live, so the line is a success that says so
      // (not "failed — interrupted" beside the success line of the step after it), with the run's ref, sha, release.
      const entries = (await auditLog(project.ctx(), project.env(), 3))[0]!.entries;
      const run = entries.filter((e) => e.operation === 'deploy' && e.release === now.current);
      expect(run, JSON.stringify(entries)).toHaveLength(1);
      expect(run[0]).toMatchObject({ result: 'success', ref: 'main' });
      expect(run[0]!.sha).toMatch(/^[0-9a-f]{40}$/);
      expect(run[0]!.message).toMatch(new RegExp(`^interrupted by SIGTERM during switch on ${host.name}, which was let end: ${now.current} is live`));
      expect(entries.at(-1)).toEqual(run[0]);
      expect(entries.filter((e) => /^interrupted by SIGTERM during switch/.test(e.message ?? '')), 'no second line for the run').toHaveLength(1);
    } finally {
      project.write(config);
    }
  }, 300_000);

  /** Wait (at most `ms`) until `done` holds of what current names and what serves. */
  const until = async (done: (l: { current: string; served: string }) => boolean, ms: number) => {
    const end = Date.now() + ms;
    let l = await liveAndServed();
    while (!done(l) && Date.now() < end) l = await liveAndServed();
    return l;
  };

  /** The exit code of `ops` once it ends by itself. */
  const exited = (ops: SpawnedOps) => new Promise<number | null>((r) => (ops.child.exitCode !== null ? r(ops.child.exitCode) : ops.child.once('exit', r)));
  /** Cut the connection the lock records (its sshd process killed): the runner goes on. */
  const cutLockConnection = () => onHost(`kill "$(sed -n 's/^holder_pid=//p' ${project.env().layout.lock}/info)"`);
  /**
   * `ops` run until its switch is under way (what serves changed, `current` not yet), then the lock holder's
   * connection cut: the run's exit code and output, and what is live and served after it ended.
   */
  const cutDuringSwitch = async (ops: SpawnedOps, before: Awaited<ReturnType<typeof liveAndServed>>, within: number) => {
    const mid = await until((l) => l.served !== before.served, within);
    expect(mid.current, 'the switch window').toBe(before.current);
    await cutLockConnection();
    const code = await exited(ops);
    const out = ops.out();
    const after = await liveAndServed();
    expect(after.current, out).not.toBe(before.current);
    expect(after.served).toBe(after.current);
    expect(code, out).toBe(1);
    return { out, after };
  };

  it('the runner killed outright while the switch runs (its connection lost: no unlock, pipes closed): the switch still ends on the host', async () => {
    slowSwitch();
    commit(repo, { VERSION: '4\n' }, 'four');
    const before = await liveAndServed();
    try {
      const ops = await spawnOps(['deploy', 'e2e', '--ref', 'main'], project.root, (out) => out.includes('· switch'), 'the deploy reaching its switch', 120_000);
      // Inside the window: nginx serves the new release, current still names the old one.
      const mid = await until((l) => l.served !== before.served, 30_000);
      expect(mid.current, 'the switch window').toBe(before.current);
      await ops.stop('SIGKILL');
      // The script lost its runner (its next write to the closed pipes would kill it): it must still flip current.
      const after = await until((l) => l.current === l.served, 20_000);
      expect(after.current).not.toBe(before.current);
      expect(after.served).toBe(after.current);
    } finally {
      project.write(config);
      await breakLock(project.ctx(), project.env());
    }
  }, 300_000);

  it('the connection lost while the switch runs (the runner alive; sshd\'s process for it killed): the switch ends on the host, and the run says its release is live and serves and audits it so, never that nothing was switched', async () => {
    slowSwitch();
    commit(repo, { VERSION: '4b\n' }, 'four b');
    const before = await liveAndServed();
    try {
      const ops = await spawnOps(['deploy', 'e2e', '--ref', 'main'], project.root, (out) => out.includes('· switch'), 'the deploy reaching its switch', 120_000);
      const { out, after } = await cutDuringSwitch(ops, before, 30_000);
      expect(out).toContain(`${after.current} is live on ${host.name} and serves: the switch ended on the host after the connection was lost`);
      expect(out).not.toMatch(/nothing was switched|serve the previous release/);
      expect(out).not.toMatch(/^\s+at /m);
      const entries = (await auditLog(project.ctx(), project.env(), 3))[0]!.entries;
      expect(entries.at(-1), JSON.stringify(entries)).toMatchObject({ release: after.current, result: 'failed' });
      expect(entries.at(-1)!.message).toMatch(/^live, but /);
      expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
    } finally {
      project.write(config);
    }
  }, 300_000);

  it('a SIGTERM while a one-host rollback switches (its work done by the lock step): not cut off half-way, the lock let go', async () => {
    slowSwitch();
    const before = await liveAndServed();
    try {
      // Watched on the host: a one-host rollback does its work in the lock step and prints nothing until it ends.
      const ops = await spawnOps(['rollback', 'e2e'], project.root, () => true, 'the rollback', 10_000);
      const mid = await until((l) => l.served !== before.served, 60_000);
      expect(mid.current, 'the switch window').toBe(before.current);
      const { now } = await stoppedCleanly(ops);
      expect(now.current).not.toBe(before.current);
    } finally {
      project.write(config);
    }
  }, 300_000);
  it('the connection lost while a one-host rollback switches (its work done by the lock step): the run says what the host says is live once the switch ended, in its error and its audit line', async () => {
    commit(repo, { VERSION: '4c\n' }, 'four c');
    await deploy(project.ctx(), project.env(), {});
    slowSwitch();
    const before = await liveAndServed();
    try {
      const ops = await spawnOps(['rollback', 'e2e'], project.root, () => true, 'the rollback', 10_000);
      const { out, after } = await cutDuringSwitch(ops, before, 60_000);
      expect(out).toContain(`${after.current} is live on ${host.name} (what current names once the step ended there)`);
      expect(out).not.toMatch(/^\s+at /m);
      const entries = (await auditLog(project.ctx(), project.env(), 3))[0]!.entries;
      expect(entries.at(-1), JSON.stringify(entries)).toMatchObject({ operation: 'rollback', result: 'failed' });
      expect(entries.at(-1)!.message).toContain(`${after.current} is live on ${host.name}`);
      expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
    } finally {
      project.write(config);
    }
  }, 300_000);
  it('a new release slow to answer at /.ops/slot (a custom template sends that path to the app): the switch ends whole, within its step\'s time', async () => {
    slowSwitch();
    // Each of the switch's looks at /.ops/slot waits out its 1 s: 100 looks outlast the step's timeout.
    commit(repo, { 'server.py': pythonWebApp('(__import__("time").sleep(2) if self.path == "/.ops/slot" else None, os.environ["OPS_RELEASE"])[1]'), VERSION: '5\n' }, 'five');
    const before = await liveAndServed();
    try {
      await deploy(project.ctx(), project.env(), {});
    } finally {
      project.write(config);
    }
    const after = await liveAndServed();
    expect(after.current).not.toBe(before.current);
    expect(after.served).toBe(after.current);
  }, 400_000);
  /** The releases supervisor runs programs of on the host (from their supervisor files' headers). */
  const supervised = async () => onHost("grep -ho 'release [0-9TZ]*-[0-9a-f]*' /etc/supervisor/conf.d/sample-*.conf 2>/dev/null | sort -u || true");
  /** A release whose program never listens: its start waits out the health timeout (30 s), time to interrupt it. */
  const neverListens = (version: string) => commit(repo, { 'server.py': 'import time\ntime.sleep(600)\n', VERSION: `${version}\n` }, `${version}: never listens`);

  it('Ctrl-C during the start of a release that never went live: its slot is stopped, not left running as if it were the previous release; one audit line', async () => {
    const before = await liveAndServed();
    const running = await supervised();
    neverListens('6');
    try {
      const ops = await spawnOps(['deploy', 'e2e', '--ref', 'main'], project.root, (out) => out.includes('· start'), 'the deploy reaching its start', 180_000);
      expect(await waitFor(async () => (await supervised()) !== running, 60_000, 250), 'the start filled the idle slot').toBe(true);
      const code = await ops.stop('SIGINT');
      const out = ops.out();
      expect(code, out).toBe(130);
      expect(out).toMatch(new RegExp(`${host.name}: stopped slot (blue|green), where the interrupted run had started \\d{8}T\\d{6}Z-[0-9a-f]+ \\(it never went live\\)`));
      const id = /had started (\S+)/.exec(out)![1]!;
      expect(await supervised()).not.toContain(id);
      const entries = (await auditLog(project.ctx(), project.env(), 2))[0]!.entries;
      expect(entries.at(-1)!.message).toMatch(new RegExp(`^interrupted by SIGINT during start ${/stopped slot (\w+)/.exec(out)![1]} on ${host.name}; ${id} did not go live, \\S+ is still live$`));
      expect(entries.at(-2)!.message ?? '', 'no second line for the same run').not.toMatch(/connection lost/);
    } finally {
      project.write(config);
    }
    expect(await liveAndServed()).toEqual(before);
  }, 300_000);

  it('the runner killed outright during a start: ops lock release stops the slot its run had filled and puts back the release it held, warm', async () => {
    const before = await liveAndServed();
    const running = await supervised();
    neverListens('7');
    try {
      const ops = await spawnOps(['deploy', 'e2e', '--ref', 'main'], project.root, (out) => out.includes('· start'), 'the deploy reaching its start', 180_000);
      expect(await waitFor(async () => (await supervised()) !== running, 60_000, 250), 'the start filled the idle slot').toBe(true);
      await ops.stop('SIGKILL');
      await onHost(untilHolderGone()); // sshd ended the dead run's session
    } finally {
      project.write(config);
    }
    const released = await breakLock(project.ctx(), project.env());
    expect(released[0]!.lock.state).toBe('stale');
    expect(released[0]!.stoppedSlot).toMatch(/^(blue|green) \d{8}T\d{6}Z-[0-9a-f]+$/);
    expect(await supervised()).not.toContain(released[0]!.stoppedSlot!.split(' ')[1]);
    // The release that slot held before the dead run's start (kept warm by the deploys before) runs there again.
    const slot = released[0]!.stoppedSlot!.split(' ')[0]!;
    expect(released[0]!.previousBack).toMatch(new RegExp(`^the previous release \\d{8}T\\d{6}Z-[0-9a-f]+ is back on slot ${slot}, healthy: kept warm, a rollback to it only moves traffic$`));
    expect(await supervised()).toContain(/release (\S+) is back/.exec(released[0]!.previousBack!)![1]!);
    expect((await auditLog(project.ctx(), project.env(), 1))[0]!.entries[0]!.message).toContain('where the interrupted run had started');
    // The dead run's own line names the release its start had made, which ops releases then says why is unfinished.
    const lost = (await auditLog(project.ctx(), project.env(), 2))[0]!.entries[0]!;
    expect(lost).toMatchObject({ operation: 'deploy', result: 'failed', release: released[0]!.stoppedSlot!.split(' ')[1], message: expect.stringMatching(/^interrupted: connection lost /) });
    expect(await liveAndServed()).toEqual(before);
    commit(repo, { 'server.py': SERVER, VERSION: '8\n' }, 'eight: listens again');
  }, 300_000);

  /** The pid supervisor runs a slot's program `web` as, once RUNNING (its startsecs, 3 s, after a start), within 10 s: else ''. */
  const runningPid = async (slot: string) => {
    for (let i = 0; i < 40; i++) {
      const pid = /RUNNING\s+pid (\d+)/.exec(await onHost(`supervisorctl status 'sample-${slot}:sample-${slot}-web' || true`))?.[1];
      if (pid) return pid;
      await new Promise((r) => setTimeout(r, 250));
    }
    return '';
  };
  /** The release a slot's supervisor file names ('' when none). */
  const slotRelease = (slot: string) => onHost(`sed -n 's/^; Managed by ops-pipeline: slot .* release \\(.*\\)\\. Rewritten by deploys\\.$/\\1/p' /etc/supervisor/conf.d/sample-${slot}.conf 2>/dev/null || true`);
  /** slotRelease, and the pid it runs as (runningPid). */
  const slotHolds = async (slot: string) => ({ release: await slotRelease(slot), pid: await runningPid(slot) });
  /** What the tests of a forced release start from: what serves, the idle slot and what it holds. */
  const standing = async () => {
    const before = await liveAndServed();
    const idle = (await onHost('cat /srv/sample/.ops/slot')) === 'blue' ? 'green' : 'blue';
    return { before, idle, warm: await slotHolds(idle) };
  };
  /** `ops`'s exit code, once it exits (at once when it has). */
  const exitOf = (ops: SpawnedOps) => new Promise<number | null>((r) => (ops.child.exitCode !== null ? r(ops.child.exitCode) : ops.child.once('exit', r)));
  /**
   * A deploy as a process of its own, paused `pauseAfterMs` after its start began (SIGSTOP: a Ctrl-Z'd CLI, a frozen
   * runner; its connection stays up); `meanwhile` runs while it is paused (someone breaks its lock), then it resumes
   * (SIGCONT, whatever happened). Returns what `meanwhile` returned, the deploy's exit code and its output.
   */
  const pausedDeploy = async <T,>(pauseAfterMs: number, meanwhile: () => Promise<T>) => {
    const ops = await spawnOps(['deploy', 'e2e', '--ref', 'main'], project.root, (out) => out.includes('· start'), 'the deploy reaching its start', 180_000);
    await new Promise((r) => setTimeout(r, pauseAfterMs));
    process.kill(ops.child.pid!, 'SIGSTOP');
    let result: T;
    try {
      result = await meanwhile();
    } finally {
      process.kill(ops.child.pid!, 'SIGCONT');
    }
    return { result, code: await exitOf(ops), out: ops.out() };
  };

  it('Ctrl-C during the health wait of a new release: the previous release is back on the idle slot, warm, and a rollback reuses it (the same process)', async () => {
    // A release of its own live, so that the idle slot holds the one before it warm (the tests before may have emptied it).
    commit(repo, { 'server.py': SERVER, VERSION: '9\n' }, 'nine: listens');
    await deploy(project.ctx(), project.env(), {});
    const { before, idle, warm } = await standing();
    expect(warm.release).toMatch(/^\d{8}T\d{6}Z-/);
    expect(warm.pid, 'the previous release runs warm').toMatch(/^\d+$/);
    neverListens('10');
    let back = { release: '', pid: '' };
    try {
      const ops = await spawnOps(['deploy', 'e2e', '--ref', 'main'], project.root, (out) => out.includes('· start'), 'the deploy reaching its start', 180_000);
      expect(await waitFor(async () => (await slotRelease(idle)) !== warm.release, 60_000, 250), 'the start replaced the previous release on the idle slot').toBe(true);
      const code = await ops.stop('SIGINT');
      const out = ops.out();
      expect(code, out).toBe(130);
      expect(out).toContain(`the previous release ${warm.release} is back on slot ${idle}, healthy: kept warm, a rollback to it only moves traffic`);
      back = await slotHolds(idle);
      expect(back.release, 'the previous release is back on the idle slot').toBe(warm.release);
      expect(back.pid, 'and runs').toMatch(/^\d+$/);
      expect(await liveAndServed()).toEqual(before);
    } finally {
      project.write(config);
      commit(repo, { 'server.py': SERVER, VERSION: '11\n' }, 'eleven: listens again');
    }
    const r = await rollback(project.ctx(), project.env());
    expect(r.hosts[0]!.release).toBe(warm.release);
    expect(await liveAndServed()).toEqual({ current: warm.release, served: warm.release });
    // Reused as it ran: the process the interrupted deploy put back is the one that serves now.
    expect((await slotHolds(idle)).pid, 'rollback reused the warm slot').toBe(back.pid);
  }, 400_000);

  it('a stuck run (its CLI paused) whose lock another user releases with --force during its start: the release puts the previous release back warm; the run, resumed, leaves that slot as it is', async () => {
    commit(repo, { 'server.py': SERVER, VERSION: '12\n' }, 'twelve: listens');
    await deploy(project.ctx(), project.env(), {});
    const { before, idle, warm } = await standing();
    expect(warm.pid, 'the previous release runs warm').toMatch(/^\d+$/);
    neverListens('13');
    try {
      const { result: released, code, out } = await pausedDeploy(2500, () => breakLock(project.ctx(), project.env(), true));
      expect(released[0]!.previousBack).toBe(`the previous release ${warm.release} is back on slot ${idle}, healthy: kept warm, a rollback to it only moves traffic`);
      const back = await slotHolds(idle);
      expect(back.release).toBe(warm.release);
      expect(code, out).toBe(1);
      // Its start was stopped by the release; its next steps (a look at the disk after that failure, putting the slot
      // back) are fenced by the lock: none changed anything.
      expect(out).toMatch(new RegExp(`this run's lock was released by force by \\S+ at \\S+ .* while it ran: that stopped the run's steps there .*; nothing more was changed there \\(its next step, "[^"]+", found the lock gone\\): ${before.current} is live`));
      expect(out).not.toMatch(/slot \w+ stopped/);
      // What the release put back still runs, the same process: the resumed run stopped nothing.
      expect(await slotHolds(idle)).toEqual(back);
      expect(await liveAndServed()).toEqual(before);
    } finally {
      project.write(config);
      commit(repo, { 'server.py': SERVER, VERSION: '14\n' }, 'fourteen: listens again');
    }
  }, 400_000);

  /** Once no process on the host carries the connection id the app's lock records (its run's steps there all ended), within 60 s. */
  const stepsEnded = async () => {
    const id = await onHost("sed -n 's/^connection=//p' /srv/sample/.ops/lock/info");
    expect(id, 'the lock records its run\'s connection').toMatch(/^[0-9a-f]+$/);
    for (let i = 0; i < 120; i++) {
      if (!(await onHost(`grep -lzsx ${quote(`OPS_CONNECTION=${id}`)} /proc/[0-9]*/environ || true`))) return;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error('the run\'s steps on the host never ended');
  };
  /** A release that listens 6 s after it starts: its start step waits out its health check that long. */
  const slowToListen = (version: string) => commit(repo, { 'server.py': pythonWebApp('os.environ["OPS_RELEASE"]', 'import time; time.sleep(6)'), VERSION: `${version}\n` }, `${version}: listens after 6 s`);

  it('a run paused during its start (healthy, the step ended) whose lock is released by force: resumed, it changes nothing more (no switch to the slot the release put the previous release back on), fails saying so, and audits no success', async () => {
    commit(repo, { 'server.py': SERVER, VERSION: '15\n' }, 'fifteen: listens');
    await deploy(project.ctx(), project.env(), {});
    const { before, idle, warm } = await standing();
    slowToListen('16');
    try {
      // The start ends on the host (healthy), its answer waiting for the paused CLI; then someone breaks the lock.
      const { result: released, code, out } = await pausedDeploy(1000, async () => {
        await stepsEnded();
        return breakLock(project.ctx(), project.env(), true);
      });
      expect(released[0]!.lock.state).toBe('held');
      expect(released[0]!.previousBack).toBe(`the previous release ${warm.release} is back on slot ${idle}, healthy: kept warm, a rollback to it only moves traffic`);
      expect(code, out).not.toBe(0);
      expect(code, out).not.toBe(130);
      expect(out).toMatch(new RegExp(`step "switch" on ${host.name} changed nothing: this run's lock there is no longer its own`));
      expect(out).toMatch(new RegExp(`the lock on ${host.name} was released by force by \\S+ at \\S+ \\(ops lock release --force: "removed held lock of a deploy run by [^"]*"\\) while this run was paused or held up \\(its next step there, "switch", found it so and changed nothing\\); nothing more was changed there: ${before.current} is live`));
      expect(out).not.toMatch(/^\s+at /m);
    } finally {
      project.write(config);
    }
    // nginx serves what it served (the release current names), and the slot the release put back is as it left it.
    expect(await liveAndServed()).toEqual(before);
    expect((await slotHolds(idle)).release).toBe(warm.release);
    const entries = (await auditLog(project.ctx(), project.env(), 2))[0]!.entries;
    expect(entries.map((e) => e.operation)).toEqual(['lock release', 'deploy']);
    expect(entries[1]).toMatchObject({ result: 'failed', ref: 'main' });
    expect(entries[1]!.message).toMatch(/changed nothing: .*its lock released by force by /);
    expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
    commit(repo, { 'server.py': SERVER, VERSION: '17\n' }, 'seventeen: listens at once');
  }, 400_000);

  it('the same with another deploy run between the forced release and the resume: the resumed run changes nothing of what that deploy made live (current, nginx), nor its audit', async () => {
    await deploy(project.ctx(), project.env(), {});
    slowToListen('18');
    let after = { current: '', served: '' };
    try {
      const { code, out } = await pausedDeploy(1000, async () => {
        await stepsEnded();
        await breakLock(project.ctx(), project.env(), true);
        commit(repo, { 'server.py': SERVER, VERSION: '19\n' }, 'nineteen: another deploy meanwhile');
        const other = await deploy(project.ctx(), project.env(), {});
        after = await liveAndServed();
        expect(after).toEqual({ current: other.release, served: other.release });
      });
      expect(code, out).not.toBe(0);
      expect(out).toMatch(new RegExp(`the lock on ${host.name} was released by force by \\S+ at \\S+ .*while this run was paused or held up \\(its next step there, "switch", found it so and changed nothing\\); nothing more was changed there: ${after.current} is live`));
    } finally {
      project.write(config);
    }
    expect(await liveAndServed()).toEqual(after);
    const entries = (await auditLog(project.ctx(), project.env(), 3))[0]!.entries;
    expect(entries.map((e) => [e.operation, e.result])).toEqual([['lock release', 'success'], ['deploy', 'success'], ['deploy', 'failed']]);
    expect(entries[1]!.release).toBe(after.current);
    expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
  }, 400_000);

  it('a one-host rollback (its work in the lock step) whose lock is released by force while it starts the release: it stops before switching, the live release serves, and it says so and audits itself', async () => {
    // The release to go back to listens 20 s after it starts (the health timeout is 30 s): time to break the lock.
    commit(repo, { 'server.py': pythonWebApp('os.environ["OPS_RELEASE"]', 'import time; time.sleep(20)'), VERSION: '20\n' }, 'twenty: listens after 20 s');
    const slow = await deploy(project.ctx(), project.env(), {});
    commit(repo, { 'server.py': SERVER, VERSION: '21\n' }, 'twenty-one: listens at once');
    await deploy(project.ctx(), project.env(), {});
    const { before, idle } = await standing();
    // Not warm: the rollback must start it (a warm slot would only move traffic, too fast to interrupt).
    await onHost(`supervisorctl stop 'sample-${idle}:*'`);
    const ops = await spawnOps(['rollback', 'e2e'], project.root, () => true, 'the rollback', 10_000);
    // Its start under way on the host: the slot's program runs the release, not yet answering.
    for (let i = 0; i < 60 && !/RUNNING/.test(await onHost(`supervisorctl status 'sample-${idle}:sample-${idle}-web' || true`)); i++) await new Promise((r) => setTimeout(r, 250));
    expect((await slotHolds(idle)).release, 'the rollback started the release it goes back to').toBe(slow.release);
    const released = await breakLock(project.ctx(), project.env(), true);
    expect(released[0]!.lock.state).toBe('held');
    expect(released[0]!.lock.holder.operation).toBe('rollback');
    const code = await exitOf(ops);
    const out = ops.out();
    // As a deploy whose lock was released by force exits (1), its first line saying what happened.
    expect(code, out).toBe(1);
    expect(out).toMatch(/^error: step "[^"]+" on \S+ was stopped: this run's lock there was released by force by /m);
    expect(out).not.toMatch(/failed with exit code 128/);
    expect(out).toMatch(new RegExp(`${host.name}: this run's lock was released by force by \\S+ at \\S+ \\(ops lock release --force: "removed held lock of a rollback run by [^"]*"\\) while it ran: that stopped the run's steps there`));
    expect(out).not.toMatch(/^\s+at /m);
    // Nothing switched: what served before serves, and `current` names it.
    expect(await liveAndServed()).toEqual(before);
    const entries = (await auditLog(project.ctx(), project.env(), 2))[0]!.entries;
    expect(entries.map((e) => [e.operation, e.result])).toEqual([['lock release', 'success'], ['rollback', 'failed']]);
    expect(entries[1]!.message).toMatch(/its lock released by force by /);
    expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
  }, 400_000);
});
