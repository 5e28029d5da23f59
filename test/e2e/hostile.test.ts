// Issue 16 on real hosts, through the CLI as a user runs it: a chatty login shell (~/.bashrc printing on
// stdout and stderr before its interactive guard, a MOTD, an sshd Banner), sshd's MaxSessions 1 and 2, a
// connection cut in the middle of a deploy, sudo asking for a password. For each: a changing deploy and a
// no-op succeed (or fail with one clear message, no stack trace), the lock is free afterwards, and the live
// release keeps serving (a run killed outright: test/e2e/deploy.test.ts). And the lock holder (the
// connection's sshd process) checked on bullseye's sshd too.
import { chownSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getLockStatus } from '../../core/ops/records.ts';
import { MemoryReporter } from '../../core/report.ts';
import { connect } from '../../core/remote/ssh.ts';
import { reported } from '../../core/remote/types.ts';
import { LOCK_KEYS, acquireLock, lockStatus, parseLock, releaseLock } from '../../core/steps/lock.ts';
import { downHost, sshRun, upHost, type Host } from '../hosts/index.ts';
import { waitFor } from '../hosts/proc.ts';
import { runOps, type CliResult } from '../support/cli.ts';
import { appRepo, chattyLogin, configureSshd, get, makeProject, readyHost, testConfig, testDatabase, type TestProject } from './support.ts';
import { CONNECTION_FUNCTIONS } from '../../core/steps/libraries.ts';

let host: Host;
let project: TestProject;
let live = 'v1';

const env = () => ({ PATH: process.env.PATH, HOME: process.env.HOME, USER: 'e2e', NO_COLOR: '1' });
const ops = (...argv: string[]) => runOps(argv, { root: project.root, processEnv: env() });

/** What a user reads: the command's output, never a stack trace. */
function readable(r: CliResult): string {
  const text = r.out + r.err;
  expect(text).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  expect(text).not.toMatch(/\b(TypeError|Error): /);
  return text;
}

async function lockIsFree(): Promise<void> {
  const locks = await getLockStatus(project.ctx(), project.env());
  expect(locks.map((l) => l.lock.state)).toEqual(['free']);
}

async function serves(ref: string): Promise<void> {
  const page = await get(host);
  expect(page.status).toBe(200);
  expect(page.body).toContain(ref === 'v1' ? 'Version 1.0.0' : 'Version 2.0.0');
}

beforeAll(async () => {
  host = await readyHost('hos');
  project = makeProject('e2e', testConfig([host], await appRepo(), await testDatabase(`hostile_${process.pid}`)));
  expect((await ops('deploy', 'e2e', '--ref', 'v1')).code).toBe(0);
}, 900_000);

afterAll(async () => {
  if (host) await downHost(host.name, { purge: true });
  project?.cleanup();
});

/** A changing deploy (v1 ↔ v2) and a no-op, through the CLI: success, no stack trace, lock free, serving. */
async function changingAndNoop(): Promise<string> {
  const next = live === 'v1' ? 'v2' : 'v1';
  const changed = await ops('deploy', 'e2e', '--ref', next);
  const text = readable(changed);
  expect(changed.code, text).toBe(0);
  expect(text).toMatch(new RegExp(`Deployed: e2e @ [0-9a-f]{12}`));
  live = next;
  await serves(live);
  await lockIsFree();
  const noop = await ops('deploy', 'e2e', '--ref', live);
  const again = readable(noop);
  expect(noop.code, again).toBe(0);
  expect(again).toMatch(/Already live: e2e/);
  await lockIsFree();
  await serves(live);
  return text + again;
}

describe.sequential('hostile hosts, through the CLI', () => {
  it('a login shell that prints on stdout and stderr before its interactive guard, a MOTD and a Banner: deploys work, each says so once; ping fails naming the text and the fix', async () => {
    await chattyLogin(host, true);
    await configureSshd(host, ['Banner /etc/ssh/ops-test-banner']);
    try {
      const text = await changingAndNoop();
      // The transport ignores the text, and says so once per connection.
      expect(text).toMatch(new RegExp(`${host.name}: the login shell of deploy prints text for non-interactive sessions \\("Welcome to ${host.name}`));
      expect(text).not.toMatch(/^.*\| Welcome to/m); // never mixed into a step's output
      const ping = await ops('ping', 'e2e');
      const out = readable(ping);
      expect(ping.code).toBe(1);
      const line = out.split('\n').find((l) => l.includes('login shell'));
      expect(line).toMatch(new RegExp(`^ +✗ ${host.name}: the login shell of deploy prints text for non-interactive sessions: "Welcome to ${host.name}, \\w+! / no newline here / \\[bashrc\\] loading profile\\.\\.\\." .*; fix: move it below the interactive guard at the top of ~deploy/\\.bashrc`));
    } finally {
      await chattyLogin(host, false);
      await configureSshd(host, []);
    }
    const quiet = await ops('ping', 'e2e');
    expect(quiet.code, readable(quiet)).toBe(0);
  }, 300_000);

  it('a ~/.bashrc that starts a process in the background holding the session open (watcher &): deploys work, each step ends with its command; ping names it with the fix', async () => {
    // Written from the machine: a login whose every session lingers would make the put-back itself wait.
    const bashrc = join(host.root, 'home/deploy/.bashrc');
    const before = readFileSync(bashrc, 'utf8');
    const { uid, gid } = statSync(bashrc);
    writeFileSync(bashrc, `( sleep 600 ) &\n${before}`);
    chownSync(bashrc, uid, gid);
    try {
      const started = Date.now();
      const ping = await ops('ping', 'e2e');
      const out = readable(ping);
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(ping.code, out).toBe(1);
      expect(out).toMatch(new RegExp(`✗ ${host.name}: a session stays open after its command has exited: a start-up file of the login shell of deploy starts a process in the background .*; fix: start it with its output elsewhere \\(watcher >/dev/null 2>&1 &\\)`));
      expect(await changingAndNoop()).toMatch(/warning: .*a session stays open after its command has exited/);
    } finally {
      writeFileSync(bashrc, before);
      chownSync(bashrc, uid, gid); // the sleeps left go with the host
    }
  }, 600_000);

  for (const max of [1, 2]) {
    it(`sshd with MaxSessions ${max}: a changing deploy, a no-op and a rollback work over one connection each; ping shows the limit`, async () => {
      await configureSshd(host, [`MaxSessions ${max}`]);
      try {
        await changingAndNoop();
        const back = await ops('rollback', 'e2e');
        expect(back.code, readable(back)).toBe(0);
        live = live === 'v1' ? 'v2' : 'v1';
        await serves(live);
        await lockIsFree();
        const ping = await ops('ping', 'e2e');
        expect(ping.code, readable(ping)).toBe(0);
        expect(ping.out).toContain(`MaxSessions ${max}`);
      } finally {
        await configureSshd(host, []);
      }
    }, 300_000);
  }

  it('all of it at once, with the logs followed (a step that lasts as long as its connection)', async () => {
    await chattyLogin(host, true);
    await configureSshd(host, ['MaxSessions 1', 'Banner /etc/ssh/ops-test-banner']);
    try {
      await changingAndNoop();
      const controller = new AbortController();
      const { logs } = await import('../../core/ops/logs.ts');
      const reporter = new MemoryReporter();
      const following = logs(project.ctx(reporter), project.env(), { program: 'server', follow: true, signal: controller.signal });
      // Once the last lines came (up to 60 s on a busy test host).
      await waitFor(() => /server-(blue|green)\.(out|err) \|/.test(reporter.text()), 60_000, 200);
      controller.abort();
      await following;
      expect(reporter.text()).toMatch(/server-(blue|green)\.(out|err) \|/);
      // The follow step ends with the connection: nothing of it left on the host once its holder loop (five checks a
      // second) has seen the connection gone; up to 10 s on a busy test host.
      const left = await sshRun(host, "for i in {1..100}; do n=$(pgrep -fc '[t]ail -n 50 -F'); [ \"$n\" = 0 ] && break; sleep 0.1; done; echo \"following=$n\"");
      expect(left.stdout).toMatch(/following=0$/m);
    } finally {
      await chattyLogin(host, false);
      await configureSshd(host, []);
    }
  }, 300_000);

  it('the connection cut in the middle of a deploy: one message naming the host; the lock released over a new connection; the live release serves', async () => {
    const next = live === 'v1' ? 'v2' : 'v1';
    const running = ops('deploy', 'e2e', '--ref', next, '--force');
    // The lock records the connection's sshd process: killing it cuts exactly that connection.
    let holder = '';
    for (let i = 0; i < 200 && !holder; i++) {
      const r = await sshRun(host, "sudo sed -n 's/^holder_pid=//p' /srv/sample/.ops/lock/info 2>/dev/null || true");
      holder = r.stdout.trim();
      if (!holder) await new Promise((res) => setTimeout(res, 100));
    }
    expect(holder).toMatch(/^\d+$/);
    await sshRun(host, `sudo kill ${holder}`);
    const r = await running;
    const text = readable(r);
    expect(r.code).toBe(1);
    expect(text).toMatch(new RegExp(`^error: step "[^"]+" on ${host.name}( \\(connection lost\\))?: the (connection|SSH connection) (was closed|closed|was already closed)`, 'm'));
    // the first connection is gone (cut in the lock step or the switch, the host is asked over a new one first)...
    expect(text).toMatch(new RegExp(`^warning: ${host.name}: (could not release the lock|the connection was lost; over a new connection)`, 'm'));
    await lockIsFree(); // ...the second one released it
    await serves(live);
  }, 300_000);

  it('the app user made by adduser --system (its home /nonexistent in /etc/passwd): a deploy that makes a new dependency set fails before the switch naming the home and the usermod fix, not npm\'s EACCES alone; the live release serves', async () => {
    const passwd = join(host.root, 'etc/passwd');
    const before = readFileSync(passwd, 'utf8');
    writeFileSync(passwd, before.replace(/^(sample:[^:]*:[^:]*:[^:]*:[^:]*:)[^:]*:/m, '$1/nonexistent:'));
    try {
      const ping = await ops('ping', 'e2e');
      expect(ping.code, readable(ping)).toBe(1);
      expect(ping.out).toContain(`✗ ${host.name}: the home directory of sample, /nonexistent (its entry in /etc/passwd), does not exist: npm and uv keep their caches there, so a deploy that makes a new dependency set fails; fix: on ${host.name}, as root: usermod -d /home/sample sample`);
      const deploy = await ops('deploy', 'e2e', '--ref', 'deps-changed');
      const text = readable(deploy);
      expect(deploy.code).toBe(1);
      expect(text).toMatch(/(npm|the Python installer) cannot make this set: the home directory of sample, \/nonexistent \(its entry in \/etc\/passwd\), does not exist, and its package cache goes there; fix: as root on this host, give sample the home ops made for it: usermod -d \/home\/sample sample/);
      expect(text).toMatch(/still serves \S+; nothing was switched/);
    } finally {
      writeFileSync(passwd, before);
    }
    await lockIsFree();
    await serves(live);
  }, 300_000);

  it('sudo asking for a password: ping fails showing the sudoers line; a deploy fails with one message and locks nothing', async () => {
    const sudoers = join(host.root, 'etc/sudoers.d/deploy');
    const before = readFileSync(sudoers, 'utf8');
    // Written from the machine (the host's sudo cannot undo itself).
    writeFileSync(sudoers, 'deploy ALL=(ALL:ALL) ALL\n');
    try {
      const ping = await ops('ping', 'e2e');
      const out = readable(ping);
      expect(ping.code).toBe(1);
      expect(out).toContain(`✗ ${host.name}: sudo does not work without a password for deploy (sudo: a password is required)`);
      expect(out).toContain("fix: on " + host.name + ", as root: echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy");
      const deploy = await ops('deploy', 'e2e', '--ref', live === 'v1' ? 'v2' : 'v1');
      const text = readable(deploy);
      expect(deploy.code).toBe(1);
      // Exit code 1 is sudo's (it exits before reading the script on stdin: test/integration/ssh.test.ts "ends at once").
      // (after the warnings the plan gives first: this project's database URL is a plain value holding a password)
      expect(text).toMatch(/^error: step "lock[^"]*" on .* failed with exit code 1\n[\s\S]*sudo: a password is required[\s\S]*hint: the login deploy needs passwordless sudo on .*: add the line "deploy ALL=\(ALL\) NOPASSWD: ALL" to \/etc\/sudoers.d\/deploy/m);
      expect(text.split('\n').filter((l) => l.startsWith('error: '))).toHaveLength(1);
    } finally {
      writeFileSync(sudoers, before);
    }
    await lockIsFree();
    await serves(live);
  }, 300_000);

});

describe('the lock holder on bullseye\'s sshd (OpenSSH 8.4), with a chatty shell and MaxSessions 1', () => {
  let old: Host;
  beforeAll(async () => {
    old = await upHost({ name: `hob${process.pid % 1000}`, suite: 'bullseye', fresh: true, owner: process.env.OPS_TESTHOSTS_OWNER });
    await chattyLogin(old, true);
    await configureSshd(old, ['MaxSessions 1', 'Banner /etc/ssh/ops-test-banner']);
  }, 900_000);
  afterAll(async () => {
    if (old) await downHost(old.name, { purge: true });
  });

  it('is the sshd process of the lock step\'s connection: held while connected, stale once it closes; uploads arrive whole', async () => {
    const probe = makeProject('old', testConfig([old], '/nonexistent', 'postgresql://x'));
    try {
      const e = probe.env();
      const remote = await connect({ host: e.hosts[0]!, credentials: { privateKey: readFileSync(old.identityFile, 'utf8'), describe: 'lab key' }, appUser: 'deploy', reporter: new MemoryReporter(), connectTimeout: 20, retries: 1, configFile: 'x' });
      const got = await remote.run(acquireLock(e, { operation: 'test', actor: 'e2e', runUrl: '', runId: 'r1', wait: 0 }));
      expect(reported(got, LOCK_KEYS.lock)).toBe('acquired');
      const pid = reported(got, LOCK_KEYS.holder_pid)!;
      const cmdline = await sshRun(old, `tr '\\0' ' ' < /proc/${pid}/cmdline`);
      expect(cmdline.stdout).toMatch(/sshd: deploy@notty/);
      const same = await remote.run({ name: 'conn', as: 'app', script: `${CONNECTION_FUNCTIONS}\nops_report holder "$(conn_pid)"` });
      expect(reported(same, LOCK_KEYS.holder)).toBe(pid);
      await remote.upload(Buffer.from([0, 255, 10, 13]), '/tmp/ops-bin', { mode: 0o644 });
      expect((await sshRun(old, 'od -An -tx1 /tmp/ops-bin')).stdout).toMatch(/00 ff 0a 0d/);
      const other = await connect({ host: e.hosts[0]!, credentials: { privateKey: readFileSync(old.identityFile, 'utf8'), describe: 'lab key' }, appUser: 'deploy', reporter: new MemoryReporter(), connectTimeout: 20, retries: 1, configFile: 'x' });
      expect(parseLock(await other.run(lockStatus(e))).state).toBe('held');
      await remote.close();
      let state = '';
      for (let i = 0; i < 50 && state !== 'stale'; i++) {
        state = parseLock(await other.run(lockStatus(e))).state;
        if (state !== 'stale') await new Promise((r) => setTimeout(r, 100));
      }
      expect(state).toBe('stale');
      // Released by run id from another connection.
      expect(reported(await other.run(releaseLock(e, 'r1')), LOCK_KEYS.lock)).toBe('released');
      await other.close();
    } finally {
      probe.cleanup();
    }
  }, 120_000);
});
