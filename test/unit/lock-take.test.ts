// Taking the lock (core/steps/lock.ts acquireLock) and reading it (lockStatus), run by bash on this machine the way a
// host runs a step (scriptText), on a layout in a temporary directory, under a copy of bash named sshd (the SSH server
// process of the "connection", conn_pid). A run killed while it waits for the lock (its connection gone) never takes
// it afterwards in the dead connection's name; a lock whose holder start time is empty or unreadable is stale, never
// held for good; a lock appears and goes whole (no observer ever reads one without its details: "stale", refused at
// once whatever switch.lock_wait); an old lock directory without details reads stale, with its age.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { HOST_COMMANDS, scriptText } from '../../core/remote/wrap.ts';
import { duration } from '../../core/steps/status.ts';
import { acquireLock, describeHolder, forceReleaseLock, HOLDER_SILENT_SECONDS, LOCK_BUSY_EXIT, LOCK_PREMISE_EXIT, LOCK_QUEUED_EXIT, lockStatus, LOCK_KEYS, parseLock, silentHolder, unlockScript } from '../../core/steps/lock.ts';
import { formatLock, formatLockRelease } from '../../core/ops/records.ts';
import { parseReports, reported, type StepResult } from '../../core/remote/types.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import type { OpsContext } from '../../core/context.ts';
import type { OpsError } from '../../core/errors.ts';
import { Session } from '../../core/ops/hosts.ts';
import { CONTENDED_WAIT_SECONDS, lockOrder, withLock } from '../../core/ops/locked.ts';
import { MemoryReporter } from '../../core/report.ts';
import type { Remote, Step } from '../../core/remote/types.ts';
import { opsLines } from './reports.helpers.ts';
import { RecordingRemote } from '../../core/remote/recording.ts';
import { waitFor } from '../hosts/proc.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

function target(base: string): Target {
  const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'true', port: 3000 } }, routes: { '/': 'web' } }, 'test');
  return resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }], appUser: 'shop', baseDir: base, url: 'http://192.0.2.1' });
}

/** A layout in a temporary directory (its state directory made), the step scripts written there, and a bash named sshd. */
function setup(): { dir: string; env: Target; sshd: string; write: (name: string, text: string) => string } {
  const dir = mkdtempSync(join(tmpdir(), 'ops-locktake-'));
  const env = target(join(dir, 'base'));
  mkdirSync(env.layout.state, { recursive: true });
  const sshd = join(dir, 'sshd');
  copyFileSync('/bin/bash', sshd);
  spawnSync('chmod', ['0755', sshd]);
  const write = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  return { dir, env, sshd, write };
}

/** A step's output as a StepResult (for parseLock). */
function result(stdout: string, code = 0): StepResult {
  return { stdout, stderr: '', code, reports: parseReports(stdout) } as StepResult;
}

const request = (runId: string, wait: number) => ({ operation: 'deploy', actor: 'me', runUrl: '', runId, wait });

/** lockStatus run by bash: the lock as it reads. */
function status(env: Target, write: (name: string, text: string) => string): ReturnType<typeof parseLock> {
  const r = spawnSync('bash', [write('status.sh', scriptText(lockStatus(env)))], { encoding: 'utf8' });
  return parseLock(result(r.stdout));
}

/** The lock taken by another run ("other", r0) whose holder is the live process `holder` (pid and start time, as lockStatus judges it). */
function heldBy(env: Target, holder: ChildProcess): void {
  const start = readFileSync(`/proc/${holder.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
  mkdirSync(env.layout.lock);
  writeFileSync(join(env.layout.lock, 'info'), `operation=deploy\nactor=other\nrun_id=r0\nconnection=c0\nsince=x\nholder_pid=${holder.pid}\nholder_start=${start}\n`);
}

describe('taking the lock', () => {
  it('a run killed while it waits (its connection gone): its wait ends, and the lock is never taken in its name when the holder lets go', async () => {
    const { dir, env, sshd, write } = setup();
    // Held by a live process of another run.
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    heldBy(env, holder);
    expect(status(env, write).state).toBe('held');
    // The waiting run: its step under its "sshd", which is then killed as a dropped connection ends it.
    const script = write('acquire.sh', scriptText(acquireLock(env, request('r1', 30))));
    const conn = spawn(sshd, ['-c', `bash ${script} > ${join(dir, 'out')} 2> ${join(dir, 'err')}; true`], { stdio: 'ignore' });
    const gone = new Promise((r) => conn.once('exit', r));
    // Once it waits (its `sleep 1` between two looks), up to 15 s on a busy machine.
    const waiting = await waitFor(() => spawnSync('pgrep', ['-x', 'sleep', '-P', spawnSync('pgrep', ['-P', String(conn.pid)], { encoding: 'utf8' }).stdout.trim() || '0']).status === 0, 15_000, 50);
    expect(waiting, 'the run waits for the lock').toBe(true);
    conn.kill('SIGKILL');
    await gone; // reaped: its start time no longer readable
    // The holder ends and lets go.
    holder.kill('SIGKILL');
    spawnSync('rm', ['-rf', env.layout.lock]);
    // Its next look (a second at most) ends the wait: up to 15 s on a busy machine.
    await waitFor(() => readFileSync(join(dir, 'err'), 'utf8').includes("this run's connection is gone"), 15_000);
    expect(readFileSync(join(dir, 'err'), 'utf8')).toContain("this run's connection is gone");
    expect(existsSync(env.layout.lock)).toBe(false);
    expect(status(env, write).state).toBe('free');
  }, 45_000);

  it('a lock whose run was killed outright (kill -9: its connection\'s SSH server process gone with it): the next run is refused at once, naming the holder, how long ago it was taken, that its connection ended there, and the command that clears it', async () => {
    const { env, sshd, write } = setup();
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    heldBy(env, holder);
    const gone = new Promise((r) => holder.once('exit', r));
    holder.kill('SIGKILL');
    await gone;
    // The next run's steps run by bash under its own "sshd" (conn_pid finds it), as on a host.
    const host: Remote = {
      name: 'web1',
      login: 'deploy',
      connection: 'c1',
      run: async (step: Step) => {
        // (a list, not one command: bash would exec it, and its "sshd" would be gone)
        const r = spawnSync(sshd, ['-c', `bash ${write(`${step.name}.sh`, scriptText(step))}; exit $?`], { encoding: 'utf8' });
        return { ...result(r.stdout, r.status ?? 1), stderr: r.stderr };
      },
      upload: async () => undefined,
      inFlight: () => [],
      started: () => [],
      whenIdle: async () => undefined,
      halt: () => undefined,
      close: async () => undefined,
    };
    const ctx: OpsContext = { root: '/nonexistent', reporter: new MemoryReporter(), processEnv: {}, connector: async () => host };
    const started = Date.now();
    const err = await withLock(ctx, await Session.open(ctx, env), 'deploy', async () => 'done').catch((e: unknown) => e as OpsError);
    expect(Date.now() - started, 'refused at once, never waited for').toBeLessThan(10_000);
    expect((err as OpsError).message).toMatch(
      new RegExp(`^environment test has a stale lock on web1, left by a deploy run by other, started x, \\d+s ago, which is no longer connected \\(the SSH server process of its connection there, ${holder.pid}, has ended: its runner was killed outright or lost its connection\\)$`),
    );
    expect((err as OpsError).hint).toMatch(/^release it: ops lock release test \(/);
    expect(existsSync(join(env.layout.lock, 'info')), 'left as it was').toBe(true);
  }, 45_000);

  it('a run whose runner went away with its network while it waits (its connection open, silent for HOLDER_SILENT_SECONDS): its wait ends, and the lock is never taken in its name when the holder lets go', async () => {
    const { dir, env, sshd, write } = setup();
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      heldBy(env, holder);
      // ss as the host prints it: the holder's connection speaks (a live runner's keepalives), the waiting run's has
      // been silent since its runner lost its network (no FIN: sshd keeps it open, its step goes on waiting).
      const bin = join(dir, 'bin');
      mkdirSync(bin);
      const socket = (pid: number, silentMs: number) => `ESTAB 0 0 10.0.0.2:22 10.0.0.1:${40000 + (pid % 20000)} users:(("sshd",pid=${pid},fd=4))\n\t cubic lastsnd:${silentMs} lastrcv:${silentMs} lastack:${silentMs}\n`;
      const sockets = join(dir, 'ss.out');
      writeFileSync(sockets, socket(holder.pid!, 2000));
      writeFileSync(join(bin, 'ss'), `#!/bin/sh\ncat ${sockets}\n`, { mode: 0o755 });
      const script = write('acquire.sh', scriptText(acquireLock(env, request('r1', 30))));
      const conn = spawn(sshd, ['-c', `bash ${script} > ${join(dir, 'out')} 2> ${join(dir, 'err')}; true`], { stdio: 'ignore', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
      const gone = new Promise((r) => conn.once('exit', r));
      writeFileSync(sockets, socket(holder.pid!, 2000) + socket(conn.pid!, (HOLDER_SILENT_SECONDS + 5) * 1000));
      // Its next look (a second or two) ends the wait: up to 15 s on a busy machine.
      await waitFor(() => existsSync(join(dir, 'err')) && readFileSync(join(dir, 'err'), 'utf8').includes("this run's connection has sent nothing"), 15_000);
      expect(readFileSync(join(dir, 'err'), 'utf8')).toContain(`this run's connection has sent nothing for ${HOLDER_SILENT_SECONDS + 5}s`);
      await gone;
      // The holder's lock as it was; once it lets go, nothing takes it.
      expect(readFileSync(join(env.layout.lock, 'info'), 'utf8')).toContain('run_id=r0');
      holder.kill('SIGKILL');
      spawnSync('rm', ['-rf', env.layout.lock]);
      await sleep(1500);
      expect(existsSync(env.layout.lock)).toBe(false);
    } finally {
      holder.kill('SIGKILL');
    }
  }, 45_000);

  it('the wait (switch.lock_wait) is counted since boot, not by the wall clock: a clock stepped meanwhile neither stretches nor cuts it', () => {
    const { dir, env, sshd, write } = setup();
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      heldBy(env, holder);
      // Time since boot as the run sees it (/proc/uptime, bind-mounted over): 2 s in, 40 s have passed; the wall clock
      // has not moved that much (a wait by it would go on for its 30 s).
      const uptime = join(dir, 'uptime');
      writeFileSync(uptime, '1000.00 1000.00\n');
      const script = write('acquire.sh', scriptText(acquireLock(env, request('r1', 30))));
      const started = Date.now();
      const r = spawnSync('unshare', ['-m', 'bash', '-c', `mount --bind ${uptime} /proc/uptime && { (sleep 2; echo '1040.00 1040.00' > ${uptime}) & ${sshd} -c 'bash ${script}; exit $?'; }`], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status).toBe(LOCK_BUSY_EXIT);
      expect(parseLock(result(r.stdout)).state).toBe('held');
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      holder.kill('SIGKILL');
    }
  }, 30_000);

  it('a lock whose holder start time is empty or unreadable (written by an older ops for a dead connection) is stale, and ops lock release removes it without --force', () => {
    const { env, write } = setup();
    const alive = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      // A pid long gone (proc_start prints nothing: "" = "" must not read as held), with an empty start time or none;
      // a live pid with an empty one.
      for (const [pid, start] of [[999999999, 'holder_start='], [999999999, ''], [alive.pid, 'holder_start=']] as const) {
        mkdirSync(env.layout.lock);
        writeFileSync(join(env.layout.lock, 'info'), `operation=deploy\nactor=me\nrun_id=r1\nsince=x\nholder_pid=${pid}\n${start}\n`);
        expect(status(env, write).state).toBe('stale');
        const r = spawnSync('bash', [write('force.sh', scriptText(forceReleaseLock(env)))], { encoding: 'utf8' });
        expect(r.stdout).not.toContain(`@ops ${LOCK_KEYS.refused}`);
        expect(existsSync(env.layout.lock)).toBe(false);
      }
    } finally {
      alive.kill('SIGKILL');
    }
  });

  it('a holder whose SSH connection has sent nothing for HOLDER_SILENT_SECONDS (its runner gone with its network; sshd keeps it open for hours) is stale, saying for how long, and ops lock release removes it without --force; a run queued behind it is told when it reads stale', () => {
    const { dir, env, sshd, write } = setup();
    const alive = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const start = readFileSync(`/proc/${alive.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
      // ss as a host prints it: the holder's socket (its pid among the users), its details indented on the next line,
      // and another process's socket, silent for longer, around it.
      const bin = join(dir, 'bin');
      mkdirSync(bin);
      const ss = (rcv: number, ack: number) => {
        const other = `ESTAB 0 0 10.0.0.2:22 10.0.0.9:5000 users:(("sshd",pid=${alive.pid}1,fd=4))\n\t cubic lastsnd:900000 lastrcv:900000 lastack:900000\n`;
        const mine = `ESTAB 0 0 10.0.0.2:22 10.0.0.1:40000 users:(("sshd",pid=${alive.pid},fd=4),("sshd",pid=1,fd=4))\n\t cubic rto:204 lastsnd:${rcv} lastrcv:${rcv} lastack:${ack} rcv_space:1000\n`;
        writeFileSync(join(bin, 'ss'), `#!/bin/sh\nprintf '${other}${mine}${other}'\n`, { mode: 0o755 });
      };
      const look = () => {
        const r = spawnSync('bash', [write('status.sh', scriptText(lockStatus(env)))], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
        return parseLock(result(r.stdout));
      };
      mkdirSync(env.layout.lock);
      writeFileSync(join(env.layout.lock, 'info'), `operation=deploy\nactor=me\nrun_id=r1\nconnection=c1\nsince=x\nholder_pid=${alive.pid}\nholder_start=${start}\n`);
      // A live runner's keepalives (every 10 s), or acknowledgements of what the host sends it: held.
      ss(9000, 120_000);
      expect(look()).toMatchObject({ state: 'held' });
      ss(120_000, 9000);
      expect(look()).toMatchObject({ state: 'held', holder: { silent: '9' } });
      // Silent for 42 s (a runner gone without a FIN, not yet for long): left by ops lock release, which says in how
      // many seconds it reads stale and what to do meanwhile.
      ss(42_000, 42_500);
      const left = spawnSync('bash', [write('force.sh', scriptText(forceReleaseLock(env)))], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
      expect(left.stdout).toContain(`@ops ${LOCK_KEYS.refused} 1`);
      // How long ago it was taken, by the host's clock (its details' mtime): a few seconds here.
      expect(formatLockRelease([{ host: 'web1', lock: parseLock(result(left.stdout)), stopped: [], refused: true }], 'test').replace(/started x, \d+s ago/, 'started x, Ns ago')).toBe(
        `web1: NOT released (locked: a deploy run by me, started x, Ns ago): its run's SSH connection is still open (it last sent something 42s ago); if its runner went away without closing it (its network lost), the lock reads stale in ${HOLDER_SILENT_SECONDS - 42}s: run ops lock release test again then; if you are sure the run is gone or stuck, ops lock release test --force stops what it runs there and removes the lock now`,
      );
      // A run queued behind it (switch.lock_wait): answered at once, before the wait, with the holder and its silence
      // (the runner says when that lock reads stale), nothing taken.
      const queued = spawnSync(sshd, ['-c', `bash ${write('queued.sh', scriptText(acquireLock(env, { ...request('r2', 30), queued: true })))}; exit $?`], { encoding: 'utf8', timeout: 10_000, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
      expect(queued.status).toBe(LOCK_QUEUED_EXIT);
      const behind = parseLock(result(queued.stdout));
      expect(behind).toMatchObject({ state: 'held', holder: { actor: 'me', silent: '42' } });
      expect(silentHolder(behind)).toBe(`its run's SSH connection is still open (it last sent something 42s ago); if its runner went away without closing it (its network lost), the lock reads stale in ${HOLDER_SILENT_SECONDS - 42}s`);
      expect(readFileSync(join(env.layout.lock, 'info'), 'utf8')).toContain('run_id=r1');
      // Silent, both ways, for HOLDER_SILENT_SECONDS: stale, and for how long.
      ss(HOLDER_SILENT_SECONDS * 1000 + 5500, HOLDER_SILENT_SECONDS * 1000 + 5000);
      const lock = look();
      expect(lock).toMatchObject({ state: 'stale', holder: { silent: String(HOLDER_SILENT_SECONDS + 5), actor: 'me' } });
      const r = spawnSync('bash', [write('force.sh', scriptText(forceReleaseLock(env)))], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
      expect(r.stdout).not.toContain(`@ops ${LOCK_KEYS.refused}`);
      expect(existsSync(env.layout.lock)).toBe(false);
    } finally {
      alive.kill('SIGKILL');
    }
  });

  it('a lock taken in another boot of the host (its pid and start time, ticks since boot, matching a process of this boot) is stale, saying the host rebooted, and ops lock release removes it without --force; one without a boot id (an older ops) reads by its pid alone', () => {
    const { env, sshd, write } = setup();
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    // The lock a run takes records this boot.
    const taken = spawnSync(sshd, ['-c', `bash ${write('take.sh', scriptText(acquireLock(env, request('r0', 0))))}; true`], { encoding: 'utf8' });
    expect(parseLock(result(taken.stdout)).state).toBe('acquired');
    expect(readFileSync(join(env.layout.lock, 'info'), 'utf8')).toContain(`\nholder_boot=${boot}\n`);
    spawnSync('rm', ['-rf', env.layout.lock]);
    // A live process with the recorded pid and start time: held in this boot, stale from another.
    const alive = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const start = readFileSync(`/proc/${alive.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
      const info = (bootLine: string) => {
        mkdirSync(env.layout.lock, { recursive: true });
        writeFileSync(join(env.layout.lock, 'info'), `operation=deploy\nactor=me\nrun_id=r1\nconnection=c1\nsince=x\nholder_pid=${alive.pid}\nholder_start=${start}\n${bootLine}`);
      };
      info(`holder_boot=${boot}\n`);
      expect(status(env, write).state).toBe('held');
      info('');
      expect(status(env, write).state).toBe('held');
      info('holder_boot=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n');
      const lock = status(env, write);
      expect(lock).toMatchObject({ state: 'stale', holder: { rebooted: 'yes', actor: 'me' } });
      expect(formatLock([{ host: 'web1', lock }]).replace(/started x, \d+s ago/, 'started x, Ns ago')).toBe('web1: STALE lock (its run is gone): a deploy run by me, started x, Ns ago (the host has rebooted since it was taken)');
      const r = spawnSync('bash', [write('force.sh', scriptText(forceReleaseLock(env)))], { encoding: 'utf8' });
      expect(r.stdout).not.toContain(`@ops ${LOCK_KEYS.refused}`);
      expect(existsSync(env.layout.lock)).toBe(false);
      // A run that finds it there refuses at once (stale), saying why.
      info('holder_boot=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n');
      const waited = spawnSync(sshd, ['-c', `bash ${write('take.sh', scriptText(acquireLock(env, request('r2', 30))))}; exit $?`], { encoding: 'utf8', timeout: 10_000 });
      expect(waited.status).toBe(LOCK_BUSY_EXIT);
      expect(parseLock(result(waited.stdout)).state).toBe('stale');
    } finally {
      alive.kill('SIGKILL');
    }
  });

  it('a login that cannot see the holder process (/proc mounted hidepid=2): never stale, "cannot tell" saying why, unless sudo -n reads it there', () => {
    const { dir, env, write } = setup();
    const alive = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const stat = readFileSync(`/proc/${alive.pid}/stat`, 'utf8');
      mkdirSync(env.layout.lock);
      writeFileSync(join(env.layout.lock, 'info'), `operation=deploy\nactor=me\nrun_id=r1\nconnection=c1\nsince=x\nholder_pid=${alive.pid}\nholder_start=${stat.split(') ')[1]!.split(' ')[19]}\n`);
      spawnSync('chmod', ['-R', 'a+rX', dir]);
      // sudo as the host's: none without a password, or one that reads the holder's /proc (root's: here a copy).
      const bin = join(dir, 'bin');
      mkdirSync(bin, { mode: 0o755 });
      writeFileSync(join(dir, 'stat'), stat);
      const look = (sudo: string) => {
        writeFileSync(join(bin, 'sudo'), `#!/bin/sh\n${sudo}\n`, { mode: 0o755 });
        const script = write('status.sh', scriptText(lockStatus(env)).replaceAll(HOST_COMMANDS.sudo, 'sudo')); // the fake on PATH stands where the host's is
        spawnSync('chmod', ['a+r', script]);
        // The login (nobody) on a /proc of its own mounted hidepid=2: other users' processes are not there for it.
        const r = spawnSync('unshare', ['-m', 'sh', '-c', `mount -t proc -o hidepid=2 proc /proc && exec setpriv --reuid=65534 --regid=65534 --clear-groups env PATH=${bin}:$PATH bash ${script}`], { encoding: 'utf8' });
        expect(r.stderr).not.toContain('mount:');
        return parseLock(result(r.stdout));
      };
      const unseen = look('exit 1');
      expect(unseen).toMatchObject({ state: 'unknown', holder: { actor: 'me', unseen: "/proc hides other users' processes from nobody (mounted hidepid) and sudo -n asks for a password" } });
      expect(formatLock([{ host: 'web1', lock: unseen }]).replace(/started x, \d+s ago/, 'started x, Ns ago')).toBe(
        "web1: locked: a deploy run by me, started x, Ns ago (whether its run is still connected cannot be told: /proc hides other users' processes from nobody (mounted hidepid) and sudo -n asks for a password; with sudo for the login without a password it can be)",
      );
      expect(look(`[ "$2" = cat ] && exec cat ${join(dir, 'stat')}; exit 0`).state).toBe('held');
      // Gone (sudo reads no such process): stale, as ever.
      expect(look(`[ "$2" = cat ] && exit 1; exit 0`).state).toBe('stale');
    } finally {
      alive.kill('SIGKILL');
    }
  });

  it('a file (or a link) at the lock\'s path, left by hand or another tool: stale, never free (a run would spin on it until its step timed out), and ops lock release removes it', () => {
    const { env, sshd, write } = setup();
    for (const make of [() => writeFileSync(env.layout.lock, 'pid=123\n'), () => symlinkSync('/nonexistent/lock', env.layout.lock)]) {
      make();
      expect(status(env, write).state).toBe('stale');
      const started = Date.now();
      const refused = spawnSync(sshd, ['-c', `bash ${write('take.sh', scriptText(acquireLock(env, request('r1', 0))))}; exit $?`], { encoding: 'utf8', timeout: 15_000 });
      expect(refused.status).toBe(LOCK_BUSY_EXIT);
      expect(Date.now() - started).toBeLessThan(5000);
      spawnSync('bash', [write('force.sh', scriptText(forceReleaseLock(env)))], { encoding: 'utf8' });
      expect(existsSync(env.layout.lock) || lstatSync(env.layout.lock, { throwIfNoEntry: false }) !== undefined).toBe(false);
      const taken = spawnSync(sshd, ['-c', `bash ${write('take.sh', scriptText(acquireLock(env, request('r2', 0), '', unlockScript(env, 'r2', []))))}; exit $?`], { encoding: 'utf8', timeout: 15_000 });
      expect(parseLock(result(taken.stdout)).state).toBe('released');
    }
  }, 60_000);

  it('ops lock release --force on a full disk: the lock is marked released by force all the same (sed -i, which writes a copy, refused: the line appended), so the run\'s own unlock and guard touch nothing of it', () => {
    const { dir, env, write } = setup();
    const alive = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const start = readFileSync(`/proc/${alive.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
      // mv refused (a lock kept: the release fails saying why), to look at the lock as the release marked it.
      const bin = join(dir, 'bin');
      mkdirSync(bin);
      writeFileSync(join(bin, 'mv'), '#!/bin/sh\necho "mv: cannot move: Read-only file system" >&2; exit 1\n', { mode: 0o755 });
      const force = write('force.sh', scriptText(forceReleaseLock(env, true)));
      const unlock = write('unlock.sh', scriptText({ name: 'unlock', as: 'root', script: unlockScript(env, 'r1', []) }));
      // The layout's base on a file system of its own, full.
      const r = spawnSync('unshare', ['-m', 'bash', '-c', `set -e
mount -t tmpfs -o size=256k tmpfs ${env.layout.base}
mkdir -p ${env.layout.lock}
printf 'operation=deploy\nactor=me\nrun_id=r1\nconnection=c1\nsince=x\nholder_pid=${alive.pid}\nholder_start=${start}\n' > ${env.layout.lock}/info
dd if=/dev/zero of=${env.layout.base}/fill bs=4k 2>/dev/null || true
PATH=${bin}:$PATH bash ${force} > ${dir}/force.out 2> ${dir}/force.err || true
cp ${env.layout.lock}/info ${dir}/info
bash ${unlock}`], { encoding: 'utf8' });
      expect(r.stderr.replace('@ops-start', '').trim()).toBe('');
      expect(readFileSync(join(dir, 'force.err'), 'utf8')).toContain('cannot remove the lock');
      expect(readFileSync(join(dir, 'info'), 'utf8')).toMatch(/\nbroken_run_id=\n$/);
      // The run resumed: its unlock finds the lock not its own (it writes no audit line, removes nothing).
      expect(parseLock(result(r.stdout)).state).toBe('not_held');
    } finally {
      alive.kill('SIGKILL');
    }
  });

  it('an old lock directory without details (an older ops killed between its mkdir and its details): stale, saying when it was made', () => {
    const { env, write } = setup();
    mkdirSync(env.layout.lock);
    utimesSync(env.layout.lock, new Date('2026-11-30T12:00:00Z'), new Date('2026-11-30T12:00:00Z'));
    const lock = status(env, write);
    // Its age by the host's clock: from the directory's time, as `since`.
    const age = Math.floor((Date.now() - Date.parse('2026-11-30T12:00:00Z')) / 1000);
    expect(lock).toMatchObject({ state: 'stale', holder: { since: '2026-11-30T12:00:00Z' } });
    expect(Object.keys(lock.holder).sort()).toEqual(['age', 'since']);
    expect(Math.abs(Number(lock.holder.age) - age)).toBeLessThanOrEqual(2);
    expect(describeHolder(lock.holder)).toBe(`an unknown run (the lock has no details; taken 2026-11-30T12:00:00Z, ${duration(Number(lock.holder.age))} ago)`);
    // A lock with its details: each line reported once, none empty.
    writeFileSync(join(env.layout.lock, 'info'), 'operation=deploy\nactor=me\nsince=x\n');
    const r = spawnSync('bash', [write('status.sh', scriptText(lockStatus(env)))], { encoding: 'utf8' });
    expect(parseReports(r.stdout).filter(([k]) => k === LOCK_KEYS.holder).map(([, v]) => v.replace(/^age=\d+$/, 'age=N'))).toEqual(['operation=deploy', 'actor=me', 'since=x', 'age=N']);
  });

  it('appears and goes whole: runs taking and letting go of it in turn are never seen as a lock without details (stale) by a run that waits, nor by ops lock status', async () => {
    const { dir, env, sshd, write } = setup();
    // Three runs, each taking the lock (waiting for the others) and letting go of it at once, 15 times over; beside
    // them, lock status read again and again.
    const take = (id: string) => write(`take-${id}.sh`, scriptText(acquireLock(env, request(id, 60), '', unlockScript(env, id, []))));
    const runs = ['a', 'b', 'c'].map((id) => `for i in {1..15}; do bash ${take(id)} >/dev/null 2>> ${join(dir, 'err')} || echo "run ${id} exit $?"; done`);
    const watch = `for i in {1..300}; do bash ${write('status.sh', scriptText(lockStatus(env)))} | grep -q '^@ops ${LOCK_KEYS.lock} stale' && echo "seen stale"; done`;
    const script = `${[...runs, watch].map((r) => `( ${r} ) &`).join('\n')}\nwait`;
    const r = await new Promise<string>((resolve) => {
      let out = '';
      const p = spawn(sshd, ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      p.stdout.on('data', (d: Buffer) => (out += String(d)));
      p.on('exit', () => resolve(out));
    });
    expect(r).toBe('');
    expect(existsSync(env.layout.lock)).toBe(false);
  }, 120_000);

  it('runs queued for the lock are served first come, first served: of A (holding), B (queued first) and C (queued later, looking first once A lets go), B takes it before C; a dead waiter\'s ticket is skipped, and a run that gave up leaves none', async () => {
    const { dir, env, sshd, write } = setup();
    const order = join(dir, 'order');
    const go = join(dir, 'go');
    // Each run's step as a host runs it, under its own "sshd" (its connection): once it has the lock it says so in
    // `order`, then lets go (A only once told to).
    const taker = (id: string, wait: number, hold = '', detached = false) => {
      const script = write(`take-${id}.sh`, scriptText(acquireLock(env, request(id, wait), '', `${hold}echo ${id} >> ${order}\n${unlockScript(env, id, [])}`)));
      const conn = spawn(sshd, ['-c', `bash ${script} > ${join(dir, `out-${id}`)} 2> ${join(dir, `err-${id}`)}; true`], { stdio: 'ignore', detached });
      return { conn, done: new Promise((r) => conn.once('exit', r)) };
    };
    // A run's step (its bash under the "sshd"), and the `sleep 1` it is in now (between two looks), or ''.
    const step = (conn: ChildProcess) => spawnSync('pgrep', ['-P', String(conn.pid)], { encoding: 'utf8' }).stdout.trim();
    const sleeping = (conn: ChildProcess) => spawnSync('pgrep', ['-x', 'sleep', '-P', step(conn) || '0'], { encoding: 'utf8' }).stdout.trim();
    const tickets = () => spawnSync('bash', ['-c', `ls ${env.layout.lock}.queue 2>/dev/null`], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
    const a = taker('a', 60, `while [ ! -e ${go} ]; do sleep 0.05; done\n`);
    expect(await waitFor(() => existsSync(join(env.layout.lock, 'info')), 15_000, 50), 'A holds the lock').toBe(true);
    // A waiter that dies (its connection and its step killed at once, kill -9: no clean-up) before B queues: its
    // ticket comes first, and is skipped (removed).
    const dead = taker('dead', 60, '', true);
    expect(await waitFor(() => sleeping(dead.conn) !== '', 15_000, 20), 'the dead-to-be waiter waits').toBe(true);
    process.kill(-dead.conn.pid!, 'SIGKILL');
    await dead.done;
    // A run that gives up (its switch.lock_wait over) leaves no ticket.
    const quitter = taker('quitter', 1);
    await quitter.done;
    expect(readFileSync(join(dir, 'out-quitter'), 'utf8')).toContain('lock held');
    const b = taker('b', 60);
    expect(await waitFor(() => sleeping(b.conn) !== '', 15_000, 20), 'B waits').toBe(true);
    // C queued half a second after a look of B: its looks fall between B's.
    await sleep(500);
    const c = taker('c', 60);
    expect(await waitFor(() => sleeping(c.conn) !== '', 15_000, 20), 'C waits').toBe(true);
    // A lets go right after a look of C then one of B: C looks next, and without the queue would take the lock
    // before B.
    spawnSync('bash', ['-c', `look() { local s0 s; s0=$(pgrep -x sleep -P "$1"); for _ in {1..500}; do s=$(pgrep -x sleep -P "$1"); if [ -n "$s" ] && [ "$s" != "$s0" ]; then return; fi; sleep 0.01; done; }\nlook ${step(c.conn)}; look ${step(b.conn)}; touch ${go}`]);
    await Promise.all([a.done, b.done, c.done]);
    expect(readFileSync(order, 'utf8')).toBe('a\nb\nc\n');
    for (const id of ['a', 'b', 'c']) expect(readFileSync(join(dir, `err-${id}`), 'utf8')).not.toMatch(/cannot|not taken/);
    expect(tickets()).toEqual([]);
    expect(existsSync(env.layout.lock)).toBe(false);
  }, 60_000);

  it('ops lock status shows the runs queued for the lock, in the order they take it, as the runs themselves decide it: of A (holding), B and C (queued after it), B next then C; a dead waiter not listed (nor removed: a look changes nothing); then each takes it in that order', async () => {
    const { dir, env, sshd, write } = setup();
    const order = join(dir, 'order');
    const go = join(dir, 'go');
    const taker = (id: string, hold = '', detached = false) => {
      const script = write(`take-${id}.sh`, scriptText(acquireLock(env, { operation: 'deploy', actor: id, runUrl: `https://ci.example/${id}`, runId: id, wait: 60 }, '', `${hold}echo ${id} >> ${order}\n${unlockScript(env, id, [])}`)));
      const conn = spawn(sshd, ['-c', `bash ${script} > /dev/null 2>&1; true`], { stdio: 'ignore', detached });
      return { conn, done: new Promise((r) => conn.once('exit', r)) };
    };
    const step = (conn: ChildProcess) => spawnSync('pgrep', ['-P', String(conn.pid)], { encoding: 'utf8' }).stdout.trim();
    const sleeping = (conn: ChildProcess) => spawnSync('pgrep', ['-x', 'sleep', '-P', step(conn) || '0'], { encoding: 'utf8' }).stdout.trim();
    const a = taker('a', `while [ ! -e ${go} ]; do sleep 0.05; done\n`);
    expect(await waitFor(() => existsSync(join(env.layout.lock, 'info')), 15_000, 50), 'A holds the lock').toBe(true);
    const dead = taker('dead', '', true);
    expect(await waitFor(() => sleeping(dead.conn) !== '', 15_000, 20), 'the dead-to-be waiter waits').toBe(true);
    process.kill(-dead.conn.pid!, 'SIGKILL');
    await dead.done;
    const b = taker('b');
    expect(await waitFor(() => sleeping(b.conn) !== '', 15_000, 20), 'B waits').toBe(true);
    const c = taker('c');
    expect(await waitFor(() => sleeping(c.conn) !== '', 15_000, 20), 'C waits').toBe(true);
    const tickets = () => spawnSync('bash', ['-c', `ls ${env.layout.lock}.queue`], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
    expect(tickets()).toHaveLength(3);
    const lock = status(env, write);
    expect(lock.state).toBe('held');
    expect(lock.holder.actor).toBe('a');
    expect(lock.queue!.map((w) => w.run_id)).toEqual(['b', 'c']);
    expect(lock.queue![0]).toMatchObject({ operation: 'deploy', actor: 'b', run: 'https://ci.example/b' });
    expect(lock.queue![0]!.since).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(lock.queue![0]!.holder_pid).toBeUndefined();
    // The dead waiter's ticket: not listed, and left for a run taking the lock to remove.
    expect(tickets()).toHaveLength(3);
    expect(formatLock([{ host: 'web1', lock }])).toMatch(/^web1: locked: a deploy run by a, started .*; 2 runs queued behind it, in the order they take the lock: 1\. a deploy run by b, queued \S+ \(https:\/\/ci\.example\/b\) \(next\), 2\. a deploy run by c, queued \S+ \(https:\/\/ci\.example\/c\)$/);
    writeFileSync(go, '');
    await Promise.all([a.done, b.done, c.done]);
    expect(readFileSync(order, 'utf8')).toBe('a\nb\nc\n');
    expect(status(env, write)).toEqual({ state: 'free', holder: {}, queue: [] });
  }, 60_000);

  it('a free lock a queued run takes next (its holder just let go) reads held by that run, for ops lock status as for a run taking it: never free', () => {
    const { env, sshd, write } = setup();
    const waiter = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const queue = `${env.layout.lock}.queue`;
      mkdirSync(queue);
      const start = readFileSync(`/proc/${waiter.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
      // A dead waiter first (its process gone), then a live one.
      writeFileSync(join(queue, '0000000000000001'), 'operation=deploy\nactor=gone\nrun_id=r0\nsince=2026-12-06T10:00:00Z\nholder_pid=999999\nholder_start=1\n');
      writeFileSync(join(queue, '0000000000000002'), `operation=rollback\nactor=bob\nrun=\nrun_id=r1\nsince=2026-12-06T10:00:01Z\nholder_pid=${waiter.pid}\nholder_start=${start}\n`);
      const lock = status(env, write);
      expect(lock.state).toBe('held');
      expect(lock.holder).toMatchObject({ operation: 'rollback', actor: 'bob', queued: 'first' });
      expect(lock.queue).toEqual([]);
      expect(existsSync(join(queue, '0000000000000001'))).toBe(true);
      expect(formatLock([{ host: 'web1', lock }])).toBe("web1: locked: a rollback run by bob, queued 2026-12-06T10:00:01Z, first in the lock's queue (it takes the lock now)");
      // A run taking the lock finds the same: held by bob's rollback (refused, its wait 0).
      const r = spawnSync(sshd, ['-c', `bash ${write('take.sh', scriptText(acquireLock(env, request('r2', 0), '', unlockScript(env, 'r2', []))))}; exit $?`], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(LOCK_BUSY_EXIT);
      expect(parseLock(result(r.stdout)).holder).toMatchObject({ operation: 'rollback', actor: 'bob', queued: 'first' });
    } finally {
      waiter.kill();
    }
  });

  it('a queue ticket a run was killed while writing (.new.<pid>, never renamed into the queue): removed by a later take once 10 minutes old, a fresh one kept (it may be a run writing it now)', () => {
    const { env, sshd, write } = setup();
    const queue = `${env.layout.lock}.queue`;
    mkdirSync(queue);
    writeFileSync(join(queue, '.new.999'), 'operation=deploy\n');
    const old = new Date(Date.now() - 20 * 60_000);
    utimesSync(join(queue, '.new.999'), old, old);
    writeFileSync(join(queue, '.new.998'), 'operation=deploy\n');
    const r = spawnSync(sshd, ['-c', `bash ${write('take.sh', scriptText(acquireLock(env, request('r1', 0), '', unlockScript(env, 'r1', []))))}; true`], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(join(queue, '.new.999'))).toBe(false);
    expect(existsSync(join(queue, '.new.998'))).toBe(true);
    expect(existsSync(env.layout.lock)).toBe(false);
  });

  it('an operation that acts on the release live when it was asked (a rollback, LockRequest.premise): queued behind a run that put another live, it does nothing once it has the lock, saying which was live then and now; one whose first look was an earlier step (live) too; unchanged, it goes on', async () => {
    const { dir, env, sshd, write } = setup();
    const live = (id: string) => {
      mkdirSync(join(env.layout.releases, id), { recursive: true });
      spawnSync('ln', ['-sfn', join(env.layout.releases, id), env.layout.current]);
    };
    live('r-old');
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    heldBy(env, holder);
    const script = write('rollback.sh', scriptText(acquireLock(env, { ...request('rb', 30), premise: true }, '', 'echo "the rollback ran" >&2')));
    const conn = spawn(sshd, ['-c', `bash ${script} > ${join(dir, 'out')} 2> ${join(dir, 'err')}; echo $? > ${join(dir, 'code')}`], { stdio: 'ignore' });
    const done = new Promise((r) => conn.once('exit', r));
    await waitFor(() => spawnSync('pgrep', ['-x', 'sleep', '-P', spawnSync('pgrep', ['-P', String(conn.pid)], { encoding: 'utf8' }).stdout.trim() || '0']).status === 0, 15_000, 50);
    // The run ahead deploys r-new and lets go.
    live('r-new');
    holder.kill('SIGKILL');
    spawnSync('rm', ['-rf', env.layout.lock]);
    await done;
    const out = result(readFileSync(join(dir, 'out'), 'utf8'));
    expect(readFileSync(join(dir, 'code'), 'utf8').trim()).toBe(String(LOCK_PREMISE_EXIT));
    expect(reported(out, LOCK_KEYS.premise_changed)).toBe('r-old r-new');
    expect(readFileSync(join(dir, 'err'), 'utf8')).not.toContain('the rollback ran');
    expect(parseLock(out).state).toBe('acquired');
    spawnSync('rm', ['-rf', env.layout.lock]);
    // Its first look an earlier step's (the first round's answer, LockRequest.live): the same.
    const again = spawnSync(sshd, ['-c', 'bash ' + write('again.sh', scriptText(acquireLock(env, { ...request('rb2', 30), premise: true, live: 'r-old' }))) + '; exit $?'], { encoding: 'utf8' });
    expect(again.status).toBe(LOCK_PREMISE_EXIT);
    spawnSync('rm', ['-rf', env.layout.lock]);
    // Nothing changed meanwhile: taken, and on.
    const same = spawnSync(sshd, ['-c', 'bash ' + write('same.sh', scriptText(acquireLock(env, { ...request('rb3', 30), premise: true, live: 'r-new' }))) + '; exit $?'], { encoding: 'utf8' });
    expect(same.status).toBe(0);
    expect(reported(result(same.stdout), LOCK_KEYS.live_seen)).toBe('r-new');
  }, 45_000);

  it("a deploy (LockRequest.premise 'report'): the release live changed while it waited is reported, then and now, and the step goes on (its finish runs: the runner decides whether the target is newer)", () => {
    const { env, sshd, write } = setup();
    const live = (id: string) => {
      mkdirSync(join(env.layout.releases, id), { recursive: true });
      spawnSync('ln', ['-sfn', join(env.layout.releases, id), env.layout.current]);
    };
    live('r-new');
    const changed = spawnSync(sshd, ['-c', 'bash ' + write('deploy.sh', scriptText(acquireLock(env, { ...request('d1', 30), premise: 'report', live: 'r-old' }, '', 'echo "the deploy went on" >&2'))) + '; exit $?'], { encoding: 'utf8' });
    expect(changed.status, changed.stderr).toBe(0);
    expect(changed.stderr).toContain('the deploy went on');
    expect(reported(result(changed.stdout), LOCK_KEYS.premise_changed)).toBe('r-old r-new');
    spawnSync('rm', ['-rf', env.layout.lock]);
    const same = spawnSync(sshd, ['-c', 'bash ' + write('same2.sh', scriptText(acquireLock(env, { ...request('d2', 30), premise: 'report', live: 'r-new' }))) + '; exit $?'], { encoding: 'utf8' });
    expect(same.status).toBe(0);
    expect(reported(result(same.stdout), LOCK_KEYS.premise_changed)).toBeUndefined();
  }, 45_000);
});

/**
 * Hosts whose lock steps behave as acquireLock does (taken when free; else, asked to (LockRequest.queued), said at
 * once with LOCK_QUEUED_EXIT, or waited for, switch.lock_wait, then refused with LOCK_BUSY_EXIT), in memory: each run
 * (its own connector) holds a host's lock under its tag. `delay(tag, host)`: how long a run's lock step takes to reach
 * the host (a slow link). `steps`: every step as run (tag, host, name, when it began and ended), in the order begun.
 */
function lockHosts(delay: (tag: string, host: string) => number, unlockDelay = 0) {
  const held = new Map<string, string>();
  const steps: { tag: string; host: string; name: string; start: number; end?: number }[] = [];
  const remote = (tag: string, host: string): Remote => ({
    name: host,
    login: 'deploy',
    connection: `${tag}-${host}`,
    async run(step: Step): Promise<StepResult> {
      const seen: (typeof steps)[number] = { tag, host, name: step.name, start: Date.now() };
      steps.push(seen);
      const answer = (stdout: string, code = 0): StepResult => {
        seen.end = Date.now();
        return { stdout, stderr: '', code, durationMs: 0, reports: parseReports(stdout) };
      };
      if (step.name === 'lock') {
        await sleep(delay(tag, host));
        const until = Date.now() + (step.timeout! - 30) * 1000;
        for (;;) {
          if (!held.has(host)) {
            held.set(host, tag);
            return answer(opsLines(LOCK_KEYS, 'lock acquired', 'holder since=2026-12-05T00:00:00Z'));
          }
          const holder = opsLines(LOCK_KEYS, 'lock held', `holder operation=deploy`, `holder actor=${held.get(host)!}`);
          if (step.script.includes(`exit ${LOCK_QUEUED_EXIT}`)) return answer(holder, LOCK_QUEUED_EXIT);
          if (Date.now() >= until) return answer(holder, LOCK_BUSY_EXIT);
          await sleep(20);
        }
      }
      // A round trip, as on a real host: another run's lock step may look meanwhile.
      if (step.name === 'unlock') await sleep(unlockDelay);
      if (step.name === 'unlock' && held.get(host) === tag) {
        held.delete(host);
        return answer(opsLines(LOCK_KEYS, 'lock released'));
      }
      return answer(step.name === 'unlock' ? opsLines(LOCK_KEYS, 'lock not_held') : '');
    },
    upload: async () => undefined,
    inFlight: () => [],
    started: () => [],
    whenIdle: async () => undefined,
    halt: () => undefined,
    close: async () => undefined,
  });
  return { held, remote, steps };
}

/**
 * Run `tag`'s deploy under the lock of `env` (web1 and web2) through `fake` (lockHosts), its output to `reporter`:
 * while it works (`workMs`), both hosts' locks are the run's (checked). Returns `tag` once it let go.
 */
async function lockedWork(env: Target, fake: ReturnType<typeof lockHosts>, tag: string, workMs: number, reporter = new MemoryReporter()): Promise<string> {
  const ctx: OpsContext = { root: '/nonexistent', reporter, processEnv: {}, connector: async (_env, host) => fake.remote(tag, host.name) };
  const session = await Session.open(ctx, env);
  return withLock(ctx, session, 'deploy', async () => {
    expect([fake.held.get('web1'), fake.held.get('web2')]).toEqual([tag, tag]);
    await sleep(workMs);
    return tag;
  });
}

/** An environment of `names` (web<n> at 192.0.2.<n>: lockOrder is by address), with `lock_wait`. */
function lockEnv(names: string[], lock_wait: number): Target {
  const hosts = names.map((name) => ({ name, address: `192.0.2.${name.replace(/\D/g, '')}`, host_key: KEY }));
  const config = parseEnvironment({ app: 'shop', hosts, switch: { lock_wait }, programs: { web: { command: 'true', port: 3000 } }, routes: { '/': 'web' } }, 'test');
  return resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: hosts.map((h) => ({ name: h.name, address: h.address, port: 22, user: 'deploy', hostKey: KEY })), appUser: 'shop', baseDir: '/srv/shop', url: 'http://192.0.2.1' });
}

describe('two runs of one environment (switch.lock_wait)', () => {
  it('each run taking first the lock of a host the other wants next: one waits for the other, never both for each other (a deadlock: both wait out and fail)', async () => {
    const env = lockEnv(['web2', 'web1'], 2);
    // Run a reaches web2 late, run b web1: taken at once on every host, a would hold web1 and b web2, each waiting for the other.
    const fake = lockHosts((tag, host) => ((tag === 'a' && host === 'web2') || (tag === 'b' && host === 'web1') ? 300 : 0));
    const run = (tag: string) => lockedWork(env, fake, tag, 100);
    expect(await Promise.all([run('a'), run('b')])).toEqual(['a', 'b']);
    expect(fake.held.size).toBe(0);
  }, 20_000);

  it('without switch.lock_wait, two runs started at once, each reaching first a host the other reaches late: not both refused (each by the lock the other holds only until its own refusal lets go); one queues behind the other for CONTENDED_WAIT_SECONDS at most, saying why', async () => {
    const env = lockEnv(['web2', 'web1'], 0);
    // Letting go is a round trip too: each run's refusal would come before the other's let go.
    const fake = lockHosts((tag, host) => ((tag === 'a' && host === 'web2') || (tag === 'b' && host === 'web1') ? 300 : 0), 100);
    const reporters = { a: new MemoryReporter(), b: new MemoryReporter() };
    const run = (tag: 'a' | 'b') => lockedWork(env, fake, tag, 200, reporters[tag]);
    // Its work shorter than the wait: both run, one after the other.
    expect(await Promise.all([run('a'), run('b')])).toEqual(['a', 'b']);
    const said = `${reporters.a.lines.join('\n')}\n${reporters.b.lines.join('\n')}`;
    expect(said).toMatch(new RegExp(`queued behind a deploy run by [ab], started [^,]*, waiting up to ${CONTENDED_WAIT_SECONDS}s \\(another run is taking or letting go of this environment's locks at this moment`));
    expect(fake.held.size).toBe(0);
  }, 30_000);

  it('a run nobody holds up takes every host\'s lock in one round: its lock steps all at once, one per host (a 10-host deploy is not 10 round trips)', async () => {
    for (const lock_wait of [0, 30]) {
      const env = lockEnv(['web1', 'web2', 'web3', 'web4'], lock_wait);
      const fake = lockHosts(() => 150);
      const ctx: OpsContext = { root: '/nonexistent', reporter: new MemoryReporter(), processEnv: {}, connector: async (_env, host) => fake.remote('a', host.name) };
      const session = await Session.open(ctx, env);
      expect(await withLock(ctx, session, 'deploy', async () => 'done')).toBe('done');
      const locks = fake.steps.filter((s) => s.name === 'lock');
      expect(locks.map((s) => s.host).sort()).toEqual(['web1', 'web2', 'web3', 'web4']);
      // Every one began before any ended: one parallel round, not one after another.
      expect(Math.max(...locks.map((s) => s.start))).toBeLessThan(Math.min(...locks.map((s) => s.end!)));
      expect(fake.held.size).toBe(0);
    }
  });

  it('a run that finds one host held by another run lets go of the locks it took after it in lockOrder (its own only), keeps those before, waits for it, then takes the rest in order', async () => {
    const env = lockEnv(['web3', 'web2', 'web1'], 5);
    const fake = lockHosts(() => 0);
    // Another run holds web2 for a while.
    fake.held.set('web2', 'b');
    setTimeout(() => fake.held.delete('web2'), 300);
    const reporter = new MemoryReporter();
    const ctx: OpsContext = { root: '/nonexistent', reporter, processEnv: {}, connector: async (_env, host) => fake.remote('a', host.name) };
    const session = await Session.open(ctx, env);
    expect(
      await withLock(ctx, session, 'deploy', async () => {
        expect([...fake.held.entries()].sort()).toEqual([['web1', 'a'], ['web2', 'a'], ['web3', 'a']]);
        return 'done';
      }),
    ).toBe('done');
    const steps = fake.steps.map((s) => `${s.name} ${s.host}`);
    // Round one at once (web2 queued, nothing waited for); web3 let go (web1 kept: before web2); web2 waited for
    // (its first answer said whom it queues behind: no second look), then web3; the run's end lets go of all.
    expect(steps.slice(0, 3).sort()).toEqual(['lock web1', 'lock web2', 'lock web3']);
    expect(steps.slice(3, 6)).toEqual(['unlock web3', 'lock web2', 'lock web3']);
    expect(steps.slice(6).sort()).toEqual(['unlock web1', 'unlock web2', 'unlock web3']);
    expect(reporter.lines.join('\n')).toContain('web2: queued behind a deploy run by b');
    expect(fake.held.size).toBe(0);
  });

  it('switch.lock_wait is one wait for the run, not one per host: behind another run holding two hosts and letting go of them in turn, the run is refused once lock_wait has passed in all (was: lock_wait again on each host, N times it for N hosts)', async () => {
    const env = lockEnv(['web1', 'web2'], 2);
    const fake = lockHosts(() => 0);
    // Run b holds both, lets go of web1 after 1.5 s and of web2 after 3.2 s: within 2 s of waiting only web1 frees up
    // (2 s more on web2 would take it).
    fake.held.set('web1', 'b');
    fake.held.set('web2', 'b');
    setTimeout(() => fake.held.delete('web1'), 1500);
    setTimeout(() => fake.held.delete('web2'), 3200);
    const reporter = new MemoryReporter();
    const ctx: OpsContext = { root: '/nonexistent', reporter, processEnv: {}, connector: async (_env, host) => fake.remote('a', host.name) };
    const started = performance.now();
    await expect(withLock(ctx, await Session.open(ctx, env), 'deploy', async () => 'done')).rejects.toThrow(/^environment test is locked on web2 by a deploy run by b/);
    expect(performance.now() - started).toBeLessThan(3000);
    // What it waited for on web2 is what was left of the 2 s, said so; web1, taken meanwhile, let go.
    expect(reporter.lines.join('\n')).toMatch(/web2: queued behind a deploy run by b, [^\n]*waiting up to 1s \(switch\.lock_wait\)/);
    expect([...fake.held.entries()]).toEqual([['web2', 'b']]);
  }, 20_000);

  it('without switch.lock_wait, another run holding the hosts refuses the run at once, naming it, in one round; one holding only some of them (taking or letting go of its locks) after CONTENDED_WAIT_SECONDS at most: the locks it took elsewhere are let go, the holder\'s untouched', async () => {
    const env = lockEnv(['web1', 'web2', 'web3'], 0);
    const fake = lockHosts(() => 0);
    for (const h of ['web1', 'web2', 'web3']) fake.held.set(h, 'b');
    const ctx: OpsContext = { root: '/nonexistent', reporter: new MemoryReporter(), processEnv: {}, connector: async (_env, host) => fake.remote('a', host.name) };
    let started = Date.now();
    await expect(withLock(ctx, await Session.open(ctx, env), 'deploy', async () => 'done')).rejects.toThrow(/^environment test is locked on web1 by a deploy run by b/);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(fake.steps.filter((s) => s.name === 'lock')).toHaveLength(3);
    expect(fake.steps.filter((s) => s.name === 'unlock')).toHaveLength(0);
    fake.held.clear();
    fake.steps.length = 0;
    fake.held.set('web2', 'b');
    started = Date.now();
    await expect(withLock(ctx, await Session.open(ctx, env), 'deploy', async () => 'done')).rejects.toThrow(/^environment test is locked on web2 by a deploy run by b/);
    expect(Date.now() - started).toBeGreaterThanOrEqual((CONTENDED_WAIT_SECONDS - 1) * 1000);
    expect([...fake.held.entries()]).toEqual([['web2', 'b']]);
    expect(fake.steps.filter((s) => s.name === 'lock').map((s) => s.host).sort()).toEqual(['web1', 'web2', 'web2', 'web3']);
    expect(fake.steps.filter((s) => s.name === 'unlock').map((s) => s.host).sort()).toEqual(['web1', 'web3']);
  }, 30_000);

  it('a run queued behind a live holder says so before it waits: whom, for how long at most, and when that lock reads stale should its connection stay silent', async () => {
    const hosts = [{ name: 'web1', address: '192.0.2.1', host_key: KEY }];
    const config = parseEnvironment({ app: 'shop', hosts, switch: { lock_wait: 30 }, programs: { web: { command: 'true', port: 3000 } }, routes: { '/': 'web' } }, 'test');
    const env = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }], appUser: 'shop', baseDir: '/srv/shop', url: 'http://192.0.2.1' });
    const waits: number[] = [];
    const remote = new RecordingRemote('web1', 'deploy', 'shop', (step) => {
      if (step.name !== 'lock') return { stdout: opsLines(LOCK_KEYS, 'lock released') };
      waits.push(step.timeout! - 30);
      // The first look (asked to answer before waiting): a live holder, silent 42 s; the second takes the lock.
      if (step.script.includes(`exit ${LOCK_QUEUED_EXIT}`)) return { stdout: opsLines(LOCK_KEYS, 'lock held', 'holder operation=deploy', 'holder actor=alice', 'holder since=2026-12-05T11:00:00Z', 'holder silent=42'), code: LOCK_QUEUED_EXIT };
      return { stdout: opsLines(LOCK_KEYS, 'lock acquired', 'holder since=2026-12-05T11:01:00Z') };
    });
    const reporter = new MemoryReporter();
    const ctx: OpsContext = { root: '/nonexistent', reporter, processEnv: {}, connector: async () => remote };
    const session = await Session.open(ctx, env);
    expect(await withLock(ctx, session, 'deploy', async () => 'done')).toBe('done');
    expect(waits).toEqual([30, 30]);
    expect(reporter.lines.join('\n')).toContain(
      `web1: queued behind a deploy run by alice, started 2026-12-05T11:00:00Z, waiting up to 30s (switch.lock_wait); its run's SSH connection is still open (it last sent something 42s ago); if its runner went away without closing it (its network lost), the lock reads stale in ${HOLDER_SILENT_SECONDS - 42}s, which then refuses this run at once (ops lock release test frees it)`,
    );
  });

  it('the runner\'s clock stepped while it asks (an NTP step, `date -s`, a VM resynced): its wait (switch.lock_wait) neither cut, refused at once as if waited out, nor stretched by the step', async () => {
    const hosts = [{ name: 'web1', address: '192.0.2.1', host_key: KEY }];
    const config = parseEnvironment({ app: 'shop', hosts, switch: { lock_wait: 30 }, programs: { web: { command: 'true', port: 3000 } }, routes: { '/': 'web' } }, 'test');
    const env = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }], appUser: 'shop', baseDir: '/srv/shop', url: 'http://192.0.2.1' });
    for (const step of [3_600_000, -3_600_000]) {
      vi.useFakeTimers({ toFake: ['Date'], now: Date.parse('2026-12-05T11:00:00Z') });
      try {
        const waits: number[] = [];
        const remote = new RecordingRemote('web1', 'deploy', 'shop', (s) => {
          if (s.name !== 'lock') return { stdout: opsLines(LOCK_KEYS, 'lock released') };
          waits.push(s.timeout! - 30);
          // The first look finds a live holder; the runner's clock is stepped while it answers.
          if (s.script.includes(`exit ${LOCK_QUEUED_EXIT}`)) {
            vi.setSystemTime(Date.now() + step);
            return { stdout: opsLines(LOCK_KEYS, 'lock held', 'holder operation=deploy', 'holder actor=alice', 'holder since=2026-12-05T11:00:00Z'), code: LOCK_QUEUED_EXIT };
          }
          return { stdout: opsLines(LOCK_KEYS, 'lock acquired', 'holder since=2026-12-05T11:01:00Z') };
        });
        const reporter = new MemoryReporter();
        const ctx: OpsContext = { root: '/nonexistent', reporter, processEnv: {}, connector: async () => remote };
        expect(await withLock(ctx, await Session.open(ctx, env), 'deploy', async () => 'done'), `clock stepped ${step / 1000}s`).toBe('done');
        expect(waits, `clock stepped ${step / 1000}s`).toEqual([30, 30]);
        expect(reporter.lines.join('\n')).toContain('web1: queued behind a deploy run by alice, started 2026-12-05T11:00:00Z, waiting up to 30s (switch.lock_wait)');
      } finally {
        vi.useRealTimers();
      }
    }
  });

  it('one machine listed under two addresses: the run finds its own lock there and says so at once, rather than waiting for itself (switch.lock_wait) and being refused by "a deploy run by" itself', async () => {
    const hosts = [
      { name: 'web1', address: '192.0.2.1', host_key: KEY },
      { name: 'web1-lan', address: '198.51.100.1', host_key: KEY },
    ];
    const config = parseEnvironment({ app: 'shop', hosts, switch: { lock_wait: 30 }, programs: { web: { command: 'true', port: 3000 } }, routes: { '/': 'web' } }, 'test');
    const env = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: hosts.map((h) => ({ name: h.name, address: h.address, port: 22, user: 'deploy', hostKey: KEY })), appUser: 'shop', baseDir: '/srv/shop', url: 'http://192.0.2.1' });
    // The real lock step, on one lock directory for both "hosts", each under a "connection" of its own.
    const { dir, sshd, write } = setup();
    const shared = target(join(dir, 'base'));
    const remote = (name: string, connection: string): Remote => ({
      name,
      login: 'deploy',
      connection,
      async run(step: Step): Promise<StepResult> {
        const own = { ...step, script: step.name === 'lock' ? acquireLock(shared, { ...request(/run_id=(\w+)/.exec(step.script)![1]!, 30), queued: step.script.includes(`exit ${LOCK_QUEUED_EXIT}`) }).script : step.script };
        if (step.name !== 'lock') return result(opsLines(LOCK_KEYS, 'lock released'));
        // Held for the run while the test runs: the "sshd" stays (a connection).
        const r = spawnSync(sshd, ['-c', `OPS_CONNECTION=${connection} bash ${write(`${name}.sh`, scriptText(own))}; rc=$?; exit $rc`], { encoding: 'utf8', timeout: 20_000 });
        return { ...result(r.stdout, r.status ?? 1), stderr: r.stderr };
      },
      upload: async () => undefined,
      inFlight: () => [],
      started: () => [],
      whenIdle: async () => undefined,
      halt: () => undefined,
      close: async () => undefined,
    });
    const ctx: OpsContext = { root: '/nonexistent', reporter: new MemoryReporter(), processEnv: {}, connector: async (_env, host) => remote(host.name, `conn-${host.name}`) };
    const session = await Session.open(ctx, env);
    const started = Date.now();
    await expect(withLock(ctx, session, 'deploy', async () => 'done')).rejects.toThrow('web1-lan is the machine this run already locked through web1: environment test lists one machine twice, under two addresses');
    expect(Date.now() - started).toBeLessThan(15_000);
  }, 60_000);

  it('lockOrder: one order for every run, by address and port (what a runner names the host last)', () => {
    const h = (name: string, address: string, port = 22) => ({ name, address, port });
    expect(lockOrder([h('b', '10.0.0.2'), h('a', '10.0.0.3'), h('c', '10.0.0.2', 2222), h('d', '10.0.0.1')]).map((x) => x.name)).toEqual(['d', 'b', 'c', 'a']);
    expect(lockOrder([h('y', 'Web.example'), h('x', 'web.example')]).map((x) => x.name)).toEqual(['x', 'y']);
  });
});
