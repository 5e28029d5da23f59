// The SSH core against a real OpenSSH server on loopback (same machine, so remote processes are visible here).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { createServer, connect as connectTcp, type AddressInfo } from 'node:net';
import { connect, type ConnectOptions } from '../../core/remote/ssh.ts';
import { MemoryReporter } from '../../core/report.ts';
import { NotStartedError, OpsError, StepError, formatError } from '../../core/errors.ts';
import { reportKeys, reported, type Remote } from '../../core/remote/types.ts';
import { startSshd, type TestSshd } from '../support/sshd.ts';
import { CONNECTION_FUNCTIONS } from '../../core/steps/libraries.ts';

/** The keys this file's own scripts report. */
const KEYS = reportKeys('answer', 'holder', 'i');
/** This run's own files (the sshd runs on this machine): another run of the suite beside it has its own. */
const TMP = mkdtempSync(join(tmpdir(), 'ops-ssh-test-'));

let sshd: TestSshd;
beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd?.stop();
});

function options(overrides: Partial<ConnectOptions> = {}, reporter = new MemoryReporter()): ConnectOptions {
  return {
    host: { name: 'lo', address: '127.0.0.1', port: sshd.port, user: 'root', hostKey: sshd.hostKey },
    credentials: { privateKey: sshd.clientKey, describe: 'test key' },
    appUser: 'app',
    reporter,
    connectTimeout: 5,
    retries: 0,
    configFile: 'environments/test/environment.yml',
    ...overrides,
  };
}

const alive = (pid: number) => {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2];
    return state !== 'Z';
  } catch {
    return false;
  }
};

describe('SSH transport on a real sshd', () => {
  it('runs many steps and uploads over one connection, streaming output and parsing reports', async () => {
    const reporter = new MemoryReporter();
    const before = sshd.logins();
    const remote = await connect(options({}, reporter));
    try {
      const r = await remote.run({ name: 'hello', as: 'login', script: `echo "hello from $(whoami)"\nops_report ${KEYS.answer} 42` });
      expect(r.code).toBe(0);
      expect(reported(r, KEYS.answer)).toBe('42');
      expect(reporter.text()).toContain('lo hello from root');
      expect(reporter.text()).not.toContain('@ops'); // machine lines stay out of the log
      for (let i = 0; i < 4; i++) await remote.run({ name: `n${i}`, as: 'root', script: 'true' });
      await remote.upload('s3cret=1\n', `${TMP}/ops-upload-test`, { mode: 0o600 });
      const st = execFileSync('stat', ['-c', '%a %s', `${TMP}/ops-upload-test`]).toString().trim();
      expect(st).toBe('600 9');
    } finally {
      await remote.close();
    }
    expect(sshd.logins() - before).toBe(1);
  });

  it("its TCP connection has Nagle's algorithm off (TCP_NODELAY): ssh2 writes a packet in pieces, which Nagle would hold for the server's delayed ACK at every exchange", async () => {
    const remote = await connect(options());
    try {
      // This process's socket to the sshd: /proc/net/tcp names its inode (by the peer's port, established), /proc/self/fd its fd.
      const port = `:${sshd.port.toString(16).toUpperCase().padStart(4, '0')}`;
      const inodes = readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f[2]?.endsWith(port) && f[3] === '01').map((f) => `socket:[${f[9]}]`);
      const fds = readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return inodes.includes(readlinkSync(`/proc/self/fd/${fd}`));
        } catch {
          return false;
        }
      });
      expect(fds).toHaveLength(1);
      // The option as the kernel holds it, read through a copy of the fd given to python (getsockopt(2)).
      const script = 'import socket; print(socket.socket(fileno=3).getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))';
      const nodelay = execFileSync('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit', Number(fds[0])] }).toString().trim();
      expect(nodelay).not.toBe('0');
      expect((await remote.run({ name: 'after', as: 'root', script: 'true' })).code).toBe(0);
    } finally {
      await remote.close();
    }
  });

  it('a key ssh2 cannot use (encrypted without its passphrase, or damaged): one message about the key, and the TCP connection already opened is closed at once (it kept the process alive until the server gave up)', async () => {
    const encrypted = join(TMP, 'encrypted_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'a passphrase', '-C', 'test', '-f', encrypted]);
    const damaged = sshd.clientKey.replace(/\n[A-Za-z0-9+/=]{20}/, '\nAAAAAAAAAAAAAAAAAAAA');
    for (const [label, privateKey] of [['encrypted', readFileSync(encrypted, 'utf8')], ['damaged', damaged]] as const) {
      // A listener that sees when the client closes (the real sshd would hold the connection for LoginGraceTime).
      const closed: Promise<void>[] = [];
      const server = createServer((c) => {
        c.on('error', () => undefined);
        c.write('SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n');
        closed.push(new Promise((resolve) => c.once('close', () => resolve())));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const port = (server.address() as AddressInfo).port;
        const err = await connect(options({ host: { name: 'lo', address: '127.0.0.1', port, user: 'root', hostKey: sshd.hostKey }, credentials: { privateKey, describe: `${label} key` }, retries: 2 })).catch((e: unknown) => e);
        const text = formatError(err);
        expect(text, label).toMatch(new RegExp(`^cannot use our SSH key \\(${label} key\\) to log in to lo`));
        expect(text, label).toMatch(/hint: an encrypted key needs its passphrase in \$OPS_SSH_KEY_PASSPHRASE/);
        expect(text, label).not.toMatch(/firewall|retrying|\n\s+at /);
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(closed.length, label).toBeLessThanOrEqual(1);
        const ended = await Promise.race([Promise.all(closed).then(() => 'closed'), new Promise((resolve) => setTimeout(() => resolve('still open after 15 s'), 15_000))]);
        expect(ended, label).toBe('closed');
      } finally {
        server.close();
      }
    }
  });

  it('runs under set -euo pipefail: a failing command stops the script and fails the step', async () => {
    const remote = await connect(options());
    try {
      const err = await remote.run({ name: 'half', as: 'login', script: 'echo before\nfalse\necho after' }).catch((e) => e);
      expect(err).toBeInstanceOf(StepError);
      expect(err.message).toMatch(/step "half" on lo failed with exit code 1/);
      const pipe = await remote.run({ name: 'pipe', as: 'login', script: 'false | cat\necho after' }, { allowFailure: true });
      expect(pipe.code).toBe(1);
      expect(pipe.stdout).not.toContain('after');
      const unset = await remote.run({ name: 'unset', as: 'login', script: 'echo "$NOT_DEFINED_ANYWHERE"' }, { allowFailure: true });
      expect(unset.code).not.toBe(0);
    } finally {
      await remote.close();
    }
  });

  it('names the step, host, exit code and the end of stderr on failure', async () => {
    const remote = await connect(options());
    try {
      const err = await remote
        .run({ name: 'migrate', as: 'login', script: 'for i in $(seq 1 100); do echo "line $i" >&2; done\nexit 3' })
        .catch((e) => e);
      expect(err).toBeInstanceOf(StepError);
      expect(err.exitCode).toBe(3);
      expect(err.message).toContain('step "migrate" on lo failed with exit code 3');
      // its last 60 lines (failureDetail)
      expect(err.message).toContain('line 100');
      expect(err.message).toContain('line 41\n');
      expect(err.message).not.toContain('line 40\n');
    } finally {
      await remote.close();
    }
  });

  it('a command that ends at once keeps its exit code, even when its whole end arrives in one read', async () => {
    // A command that ends without reading the script on stdin (sudo asking for a password, here a sudo that is not
    // there: 127): the exec's confirmation, its exit status and the close can reach us in one TCP read, and ssh2
    // handles all of one read at once (CI saw exit code 255 this way). A proxy in front of the real sshd holds what
    // the server sends for 150 ms and passes it on in one write, so that they do.
    const proxy = createServer((client) => {
      const server = connectTcp(sshd.port, '127.0.0.1');
      client.pipe(server);
      let held: Buffer[] = [];
      let timer: NodeJS.Timeout | undefined;
      server.on('data', (d: Buffer) => {
        held.push(d);
        timer ??= setTimeout(() => {
          client.write(Buffer.concat(held));
          held = [];
          timer = undefined;
        }, 150);
      });
      server.on('close', () => setTimeout(() => client.destroy(), 200));
      client.on('close', () => server.destroy());
      client.on('error', () => server.destroy());
      server.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const port = (proxy.address() as AddressInfo).port;
    const remote = await connect(options({ appUser: 'ops-no-such-user', host: { name: 'lo', address: '127.0.0.1', port, user: 'root', hostKey: sshd.hostKey } }));
    try {
      // It never started (the command line's sudo is missing): NotStartedError, which names the exit code it ended with.
      const codes = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const err = await remote.run({ name: 'lock', as: 'app', script: 'echo ran' }, { allowFailure: true }).then(() => undefined, (e: Error) => e);
        expect(err).toBeInstanceOf(NotStartedError);
        codes.add(/exit code (\d+)/.exec(err!.message)?.[1] ?? err!.message);
        expect(err!.message).toContain('sudo is not installed there');
      }
      expect([...codes]).toEqual(['127']);
    } finally {
      await remote.close();
      proxy.close();
    }
  });

  it('kills the whole remote process group when a step times out', async () => {
    const remote = await connect(options());
    try {
      const started = Date.now();
      const err = await remote
        .run({ name: 'slow', as: 'login', timeout: 2, script: `sleep 300 &\necho "$!" > ${TMP}/ops-timeout-child\nsleep 300` })
        .catch((e) => e);
      expect(err).toBeInstanceOf(StepError);
      expect(err.message).toMatch(/timed out/);
      expect(Date.now() - started).toBeLessThan(15_000);
      const child = Number(readFileSync(`${TMP}/ops-timeout-child`, 'utf8'));
      // Gone once its group got TERM (a busy machine may take a moment to run its exit).
      for (let i = 0; i < 200 && alive(child); i++) await new Promise((r) => setTimeout(r, 100));
      expect(alive(child)).toBe(false);
    } finally {
      await remote.close();
    }
  });

  it("a lock's holder is the connection's own sshd process: alive while connected, gone after close", async () => {
    const remote = await connect(options());
    const r = await remote.run({ name: 'holder', as: 'root', script: `${CONNECTION_FUNCTIONS}\nops_report ${KEYS.holder} "$(conn_pid)"` });
    const pid = Number(reported(r, KEYS.holder));
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toMatch(/^sshd: root@notty/);
    // The same process for every session of the connection, and no channel kept open for it.
    const again = await remote.run({ name: 'holder', as: 'login', script: `${CONNECTION_FUNCTIONS}\nops_report ${KEYS.holder} "$(conn_pid)"` });
    expect(Number(reported(again, KEYS.holder))).toBe(pid);
    await remote.close();
    for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    expect(alive(pid)).toBe(false);
  });

  it('a connection lost during a step is one error naming the host and the step, not a stack trace', async () => {
    const remote = await connect(options());
    try {
      const r = await remote.run({ name: 'holder', as: 'login', script: `${CONNECTION_FUNCTIONS}\nops_report ${KEYS.holder} "$(conn_pid)"` });
      const pid = Number(reported(r, KEYS.holder));
      const err = await remote.run({ name: 'long', as: 'login', script: `kill ${pid}; sleep 5` }).catch((e) => e);
      expect(err).toBeInstanceOf(OpsError);
      expect(err.message).toMatch(/^step "long" on lo \(connection lost\): /);
      expect(formatError(err)).not.toMatch(/\n\s+at /);
      const next = await remote.run({ name: 'after', as: 'login', script: 'true' }).catch((e) => e);
      expect(next.message).toMatch(/step "after" on lo: the SSH connection was already closed/);
    } finally {
      await remote.close();
    }
  });

  it('refuses a host whose key differs from the pinned one, showing both fingerprints and how to pin', async () => {
    const other = execFileSync('sh', ['-c', 'd=$(mktemp -d); ssh-keygen -q -t ed25519 -N "" -f $d/k; cat $d/k.pub; rm -rf $d']).toString();
    const pinned = other.split(' ').slice(0, 2).join(' ');
    const presented = execFileSync('ssh-keygen', ['-lf', '-'], { input: sshd.hostKey }).toString().split(' ')[1];
    const err = await connect(options({ host: { name: 'lo', address: '127.0.0.1', port: sshd.port, user: 'root', hostKey: pinned } })).catch((e) => e);
    expect(err.message).toContain('does not match the pinned key');
    expect(err.message).toContain(`presented: ssh-ed25519 ${presented}`);
    expect(err.hint).toContain('environments/test/environment.yml');
  });

  it("several pinned keys (ssh-keyscan's lines, a key the host no longer has first): any of them is accepted, as known_hosts does", async () => {
    // what `ssh-keyscan` printed before the host dropped its RSA key: an RSA line first, then the host's own keys
    const scan = execFileSync('ssh-keyscan', ['-p', String(sshd.port), '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    expect(scan).toContain('ssh-ed25519');
    const oldRsa = execFileSync('sh', ['-c', 'd=$(mktemp -d); ssh-keygen -q -t rsa -b 2048 -N "" -f $d/k; cat $d/k.pub; rm -rf $d']).toString().split(' ').slice(0, 2).join(' ');
    const pinned = `[127.0.0.1]:${sshd.port} ${oldRsa}\n${scan}`;
    const remote = await connect(options({ host: { name: 'lo', address: '127.0.0.1', port: sshd.port, user: 'root', hostKey: pinned } }));
    await remote.close();
    // none of them the host's: each pinned key is shown beside the one presented
    const other = execFileSync('sh', ['-c', 'd=$(mktemp -d); ssh-keygen -q -t ed25519 -N "" -f $d/k; cat $d/k.pub; rm -rf $d']).toString();
    const err = await connect(options({ host: { name: 'lo', address: '127.0.0.1', port: sshd.port, user: 'root', hostKey: `${oldRsa}\n${other}` } })).catch((e) => e);
    expect(err.message).toContain('does not match the pinned keys');
    expect(err.message.match(/ {2}pinned: {4}/g)).toHaveLength(2);
    // read from a host_key_file: the new key goes there, not into host_key (which would then be refused beside it)
    const fromFile = await connect(options({ host: { name: 'lo', address: '127.0.0.1', port: sshd.port, user: 'root', hostKey: other, hostKeyFile: '/srv/keys/web1.keys' } })).catch((e) => e);
    expect(fromFile.hint).toMatch(/then put the key line in \/srv\/keys\/web1\.keys \(the host_key_file environments\/test\/environment\.yml names\)$/);
  });

  it('reports a refused client key clearly, without retrying', async () => {
    const wrong = execFileSync('sh', ['-c', 'd=$(mktemp -d); ssh-keygen -q -t ed25519 -N "" -f $d/k; cat $d/k; rm -rf $d']).toString();
    const err = await connect(options({ credentials: { privateKey: wrong, describe: 'key file /x' }, retries: 3 })).catch((e) => e);
    expect(err.message).toMatch(/refused our SSH key \(key file \/x\)/);
  });

  it('retries a refused connection with backoff, then gives up with the address', async () => {
    const reporter = new MemoryReporter();
    const started = Date.now();
    const err = await connect(
      options({ host: { name: 'gone', address: '127.0.0.1', port: 1, user: 'root', hostKey: sshd.hostKey }, retries: 1 }, reporter),
    ).catch((e) => e);
    expect(err.message).toMatch(/cannot connect to gone \(root@127.0.0.1:1\): connection refused .*\(after 2 attempts\)$/);
    expect(reporter.text()).toMatch(/retrying \(1\/1\)/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });
});

describe('uploads never use the command line', () => {
  it('puts bytes through an exec channel (stdin) with the mode set at creation', async () => {
    const remote: Remote = await connect(options());
    try {
      await remote.upload(Buffer.from([0, 1, 2, 255]), `${TMP}/ops-upload-bin`, { mode: 0o640 });
      expect([...readFileSync(`${TMP}/ops-upload-bin`)]).toEqual([0, 1, 2, 255]);
      expect(existsSync(`${TMP}/ops-upload-bin`)).toBe(true);
    } finally {
      await remote.close();
    }
    const log = readFileSync(`${sshd.dir}/sshd.log`, 'utf8');
    expect(log).not.toContain('ops-upload-bin'); // sshd logs commands only at DEBUG; a path here would mean exec
  });
});

describe('channel budget: sessions per connection', () => {
  for (const max of [1, 2]) {
    it(`MaxSessions ${max}: many steps and uploads back to back, over one connection`, async () => {
      const limited = await startSshd([`MaxSessions ${max}`]);
      try {
        const remote = await connect(options({ host: { name: 'lo', address: '127.0.0.1', port: limited.port, user: 'root', hostKey: limited.hostKey }, credentials: { privateKey: limited.clientKey, describe: 'test key' } }));
        try {
          for (let i = 0; i < 15; i++) {
            const r = await remote.run({ name: `n${i}`, as: 'login', script: `ops_report ${KEYS.i} ${i}` });
            expect(reported(r, KEYS.i)).toBe(String(i));
            await remote.upload(`content ${i}\n`, `/tmp/ops-budget-${max}`, { mode: 0o644 });
          }
          expect(readFileSync(`/tmp/ops-budget-${max}`, 'utf8')).toBe('content 14\n');
        } finally {
          await remote.close();
        }
        expect(limited.logins()).toBe(1);
      } finally {
        await limited.stop();
      }
    });
  }

  it('steps at once on one connection: side by side where sshd allows, one after another under MaxSessions 1', async () => {
    const at = (limit: TestSshd) => options({ host: { name: 'lo', address: '127.0.0.1', port: limit.port, user: 'root', hostKey: limit.hostKey }, credentials: { privateKey: limit.clientKey, describe: 'test key' } });
    const dir = execFileSync('mktemp', ['-d']).toString().trim();
    // Side by side: each step waits (up to 5 s) for the other's mark, so both succeed only if they overlap.
    const remote = await connect(at(sshd));
    try {
      const meet = (me: string, other: string) => remote.run({ name: me, as: 'login', script: `touch ${dir}/${me}; for _ in $(seq 50); do [ -e ${dir}/${other} ] && exit 0; sleep 0.1; done; echo "${other} never ran beside ${me}" >&2; exit 1` });
      await Promise.all([meet('a', 'b'), meet('b', 'a'), remote.upload('x', `${dir}/up`)]);
    } finally {
      await remote.close();
    }
    // One session allowed: the second step's channel waits for the first to close (however long it takes).
    const one = await startSshd(['MaxSessions 1']);
    try {
      const remote = await connect(at(one));
      try {
        const alone = (me: string) => remote.run({ name: me, as: 'login', script: `if [ -e ${dir}/running ]; then echo "${me} ran beside another step" >&2; exit 1; fi; touch ${dir}/running; sleep 1; rm ${dir}/running; ops_report ${KEYS.i} ${me}` });
        const results = await Promise.all(['c', 'd', 'e'].map(alone));
        expect(results.map((r) => reported(r, KEYS.i))).toEqual(['c', 'd', 'e']);
      } finally {
        await remote.close();
      }
      expect(one.logins()).toBe(1);
    } finally {
      await one.stop();
      execFileSync('rm', ['-rf', dir]);
    }
  });

  it('MaxSessions 0: one message naming MaxSessions, after a short retry', async () => {
    const none = await startSshd(['MaxSessions 0']);
    try {
      const remote = await connect(options({ host: { name: 'lo', address: '127.0.0.1', port: none.port, user: 'root', hostKey: none.hostKey }, credentials: { privateKey: none.clientKey, describe: 'test key' } }));
      try {
        const err = await remote.run({ name: 'facts', as: 'login', script: 'true' }).catch((e) => e);
        expect(err).toBeInstanceOf(OpsError);
        expect(err.message).toBe('sshd on lo refused to open a session for step "facts": its session limit is reached');
        expect(err.hint).toMatch(/MaxSessions .* must be at least 1/);
      } finally {
        await remote.close();
      }
    } finally {
      await none.stop();
    }
  });
});

describe('uploads, exactly', () => {
  it('binary content of any size arrives byte for byte; the mode applies; nothing is left on failure', async () => {
    const remote = await connect(options());
    try {
      const big = Buffer.alloc(3 * 1024 * 1024 + 7);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 256;
      await remote.upload(big, `${TMP}/ops-upload-big`, { mode: 0o640 });
      expect(readFileSync(`${TMP}/ops-upload-big`).equals(big)).toBe(true);
      expect(execFileSync('stat', ['-c', '%a', `${TMP}/ops-upload-big`]).toString().trim()).toBe('640');
      await remote.upload('', `${TMP}/ops-upload-empty`);
      expect(readFileSync(`${TMP}/ops-upload-empty`, 'utf8')).toBe('');
      const err = await remote.upload('x', '/nonexistent-dir/f').catch((e) => e);
      expect(err).toBeInstanceOf(StepError);
      expect(err.message).toMatch(/step "upload f" on lo failed[\s\S]*nonexistent-dir/);
    } finally {
      await remote.close();
    }
  });
});
