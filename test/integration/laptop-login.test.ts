// Logging in from a laptop as ssh does, against a real sshd and a real ssh-agent (OpenSSH's): which keys are offered,
// in which order, and what is said when none is let in. No key given (--identity, $OPS_SSH_KEY, ssh.identity_file):
// the agent's keys, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa, each that exists (ssh's default identities). And what
// plain ssh would do differently (the ssh configuration), and a name whose DNS server does not answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../../core/remote/ssh.ts';
import { resolveCredentials } from '../../core/remote/identity.ts';
import { MemoryReporter } from '../../core/report.ts';
import { formatError } from '../../core/errors.ts';
import { startSshd, type TestSshd } from '../support/sshd.ts';

const TMP = mkdtempSync(join(tmpdir(), 'ops-ssh-agent-test-'));
let sshd: TestSshd;
const agents: number[] = [];
beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  for (const pid of agents) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  await sshd?.stop();
  rmSync(TMP, { recursive: true, force: true });
});

let n = 0;
/** A fresh directory of this test's own. */
const fresh = () => {
  const d = join(TMP, String(n++));
  mkdirSync(join(d, 'home', '.ssh'), { recursive: true });
  return d;
};

/** A new ed25519 key file (no passphrase unless given) in `dir`: its path. */
function newKey(dir: string, name: string, passphrase = ''): string {
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', name, '-f', file]);
  return file;
}

/** A real ssh-agent on its own socket, holding `keys` (in that order): its socket and pid. */
function startAgent(dir: string, keys: string[]): { socket: string; pid: number } {
  const socket = join(dir, 'agent.sock');
  const out = execFileSync('ssh-agent', ['-s', '-a', socket]).toString();
  const pid = Number(/SSH_AGENT_PID=(\d+)/.exec(out)![1]);
  agents.push(pid);
  for (const k of keys) execFileSync('ssh-add', ['-q', k], { env: { PATH: process.env.PATH, SSH_AUTH_SOCK: socket }, stdio: 'ignore' });
  return { socket, pid };
}

/** The authorised key as one of `home`'s default key files (`name`: id_ed25519...). */
function authorisedAs(home: string, name: string): void {
  const file = join(home, '.ssh', name);
  copyFileSync(sshd.clientKeyFile, file);
  chmodSync(file, 0o600);
}

/** Log in as the CLI does (resolveCredentials, then connect) with this environment and home: ok, or the error's text. */
async function login(processEnv: NodeJS.ProcessEnv, home: string, reporter = new MemoryReporter()): Promise<string> {
  try {
    const credentials = resolveCredentials({ processEnv, home }, reporter);
    const remote = await connect({ host: { name: 'lo', address: '127.0.0.1', port: sshd.port, user: 'root', hostKey: sshd.hostKey }, credentials, appUser: 'app', reporter, connectTimeout: 10, retries: 0, configFile: 'environments/test/environment.yml' });
    const { code } = await remote.run({ name: 'probe', as: 'login', script: 'true' });
    await remote.close();
    return code === 0 ? 'ok' : `exit ${code}`;
  } catch (e) {
    return formatError(e);
  }
}

describe('no key given: the agent, then the default key files, as ssh', () => {
  it('an agent that holds no key, or only others (a laptop\'s GitHub key), does not stop the login ~/.ssh/id_ed25519 allows', async () => {
    for (const held of ['none', 'other'] as const) {
      const d = fresh();
      const home = join(d, 'home');
      authorisedAs(home, 'id_ed25519');
      const { socket } = startAgent(d, held === 'other' ? [newKey(d, 'github')] : []);
      expect(await login({ SSH_AUTH_SOCK: socket }, home), held).toBe('ok');
    }
  });

  it('an agent that refuses to sign with the key the host accepts (added with ssh-add -c, no prompt to confirm it): said so, with the fix', async () => {
    const d = fresh();
    const key = join(d, 'confirm_key');
    copyFileSync(sshd.clientKeyFile, key);
    chmodSync(key, 0o600);
    const socket = join(d, 'agent.sock');
    // no desktop session: the agent cannot ask for the confirmation, so it refuses
    const out = execFileSync('ssh-agent', ['-s', '-a', socket], { env: { PATH: process.env.PATH, SSH_ASKPASS: '/bin/false' } }).toString();
    agents.push(Number(/SSH_AGENT_PID=(\d+)/.exec(out)![1]));
    execFileSync('ssh-add', ['-q', '-c', key], { env: { PATH: process.env.PATH, SSH_AUTH_SOCK: socket }, stdio: 'ignore' });
    const text = await login({ SSH_AUTH_SOCK: socket }, join(d, 'home'));
    expect(text).toMatch(/^the SSH agent at .* refused to sign with the key lo \(root@127\.0\.0\.1:\d+\) accepts\n {2}hint: a key added with ssh-add -c must be confirmed/);
  });

  it('every default key file is offered, not only the first that exists (id_ed25519 not authorised, id_rsa is)', async () => {
    const d = fresh();
    const home = join(d, 'home');
    copyFileSync(newKey(d, 'unrelated'), join(home, '.ssh', 'id_ed25519'));
    authorisedAs(home, 'id_rsa');
    expect(await login({}, home)).toBe('ok');
  });

  it('an agent that ended, leaving its socket file, is left out with one warning (as ssh\'s "Error connecting to agent"), not a network error', async () => {
    const d = fresh();
    const home = join(d, 'home');
    authorisedAs(home, 'id_ed25519');
    const { socket, pid } = startAgent(d, []);
    process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    const reporter = new MemoryReporter();
    expect(await login({ SSH_AUTH_SOCK: socket }, home, reporter)).toBe('ok');
    const said = reporter.lines.filter((l) => l.includes(socket)).join('\n');
    expect(said).toMatch(/does not answer \(connection refused: the agent that made it has ended\): its keys are not offered; logging in with .*id_ed25519/);
    // with no key file to fall back on: one message naming the agent, not "check the address and port"
    const alone = join(fresh(), 'home');
    const text = await login({ SSH_AUTH_SOCK: socket }, alone);
    expect(text).toMatch(/^no SSH key to log in with: the SSH agent at \$SSH_AUTH_SOCK \(.*\) does not answer/);
    expect(text).not.toMatch(/firewall|address and port/);
  });

  it('an agent that takes the connection and never answers: waited for once (5 s), not per host, then left out with one warning', async () => {
    const d = fresh();
    const home = join(d, 'home');
    authorisedAs(home, 'id_ed25519');
    const socket = join(d, 'hung.sock');
    const hung = createServer(() => undefined);
    await new Promise<void>((resolve) => hung.listen(socket, resolve));
    try {
      const reporter = new MemoryReporter();
      const started = Date.now();
      expect(await login({ SSH_AUTH_SOCK: socket }, home, reporter)).toBe('ok');
      expect(await login({ SSH_AUTH_SOCK: socket }, home, reporter)).toBe('ok');
      expect(Date.now() - started).toBeLessThan(9000);
      expect(reporter.lines.filter((l) => l.includes(`(${socket}) does not answer (no answer within 5 s)`))).toHaveLength(1);
    } finally {
      hung.close();
    }
  });

  it('an agent holding more keys than sshd\'s MaxAuthTries: one message naming it and the fix (the key alone), not "check the address and port"', async () => {
    const d = fresh();
    const many = Array.from({ length: 8 }, (_, i) => newKey(d, `k${i}`));
    const { socket } = startAgent(d, [...many, sshd.clientKeyFile]);
    const text = await login({ SSH_AUTH_SOCK: socket }, join(d, 'home'));
    expect(text).toMatch(/ended the login after too many keys were offered, one by one \(sshd's MaxAuthTries, 6 by default\): the SSH agent's 9 keys/);
    expect(text).toMatch(/hint: give this host's key \(--identity FILE, \$OPS_SSH_KEY, or ssh.identity_file in environments\/test\/environment.yml\): ops then offers it alone/);
    expect(text).not.toMatch(/firewall|address and port/);
    // the fix said works: the key given alone, the same agent still there
    const reporter = new MemoryReporter();
    const credentials = resolveCredentials({ identityFile: sshd.clientKeyFile, processEnv: { SSH_AUTH_SOCK: socket } }, reporter);
    const remote = await connect({ host: { name: 'lo', address: '127.0.0.1', port: sshd.port, user: 'root', hostKey: sshd.hostKey }, credentials, appUser: 'app', reporter, connectTimeout: 10, retries: 0, configFile: 'environments/test/environment.yml' });
    await remote.close();
  });

  it('every key refused: each one offered is named, and an encrypted default key left out says how to use it', async () => {
    const d = fresh();
    const home = join(d, 'home');
    copyFileSync(newKey(d, 'locked', 'a passphrase'), join(home, '.ssh', 'id_ecdsa'));
    copyFileSync(newKey(d, 'unrelated'), join(home, '.ssh', 'id_ed25519'));
    const { socket } = startAgent(d, []);
    const text = await login({ SSH_AUTH_SOCK: socket }, home);
    expect(text).toMatch(/refused every key offered: the SSH agent at .* \(which holds no key\), then key file .*id_ed25519; left out: .*id_ecdsa: encrypted, and no passphrase given \(ssh-add an encrypted one to your agent/);
    // alone, the encrypted key is named with its fix before any connection
    // a default key file ops cannot read as a private key (a public key there) is left out too, not a refusal
    writeFileSync(join(home, '.ssh', 'id_rsa'), readFileSync(`${sshd.clientKeyFile}.pub`));
    expect(await login({ SSH_AUTH_SOCK: socket }, home)).toMatch(/; left out: .*id_ecdsa: encrypted, and no passphrase given; .*id_rsa: key file .*id_rsa holds a public key, not the private key/);
    rmSync(join(home, '.ssh', 'id_rsa'));
    authorisedAs(home, 'id_rsa');
    writeFileSync(join(home, '.ssh', 'id_ed25519'), readFileSync(`${sshd.clientKeyFile}.pub`));
    expect(await login({ SSH_AUTH_SOCK: socket }, home)).toBe('ok');
    rmSync(join(home, '.ssh', 'id_rsa'));
    rmSync(join(home, '.ssh', 'id_ed25519'));
    expect(await login({}, home)).toMatch(/^no SSH key to log in with: .*id_ecdsa: encrypted, and no passphrase given\n {2}hint: add the key to your SSH agent \(eval "\$\(ssh-agent\)"; ssh-add .*id_ecdsa\)/);
  });
});

describe('a key given that is encrypted, with no passphrase: the agent signs with it, as ssh does with an IdentityFile', () => {
  it('held by the agent (among more keys than MaxAuthTries): offered alone, signed by the agent; its OpenSSH or PEM form (the PEM one by its .pub)', async () => {
    for (const form of ['openssh', 'pem'] as const) {
      const d = fresh();
      const key = join(d, 'deploy_key');
      copyFileSync(sshd.clientKeyFile, key);
      chmodSync(key, 0o600);
      copyFileSync(`${sshd.clientKeyFile}.pub`, `${key}.pub`);
      if (form === 'pem') {
        // ed25519 has no PEM form in ssh-keygen: an RSA key, authorised for this case
        rmSync(key);
        rmSync(`${key}.pub`);
        execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-m', 'PEM', '-N', '', '-f', key]);
        execFileSync('sh', ['-c', `cat "$1" >> "$2"`, 'sh', `${key}.pub`, join(sshd.dir, 'authorized_keys')]);
      }
      // ssh-add reads it unencrypted; then it is encrypted on disk, as a laptop's key is
      const { socket } = startAgent(d, [...Array.from({ length: 7 }, (_, i) => newKey(d, `k${i}`)), key]);
      execFileSync('ssh-keygen', ['-q', '-p', '-P', '', '-N', 'a passphrase', ...(form === 'pem' ? ['-m', 'PEM'] : []), '-f', key]);
      const reporter = new MemoryReporter();
      const credentials = resolveCredentials({ identityFile: key, processEnv: { SSH_AUTH_SOCK: socket } }, reporter);
      const remote = await connect({ host: { name: 'lo', address: '127.0.0.1', port: sshd.port, user: 'root', hostKey: sshd.hostKey }, credentials, appUser: 'app', reporter, connectTimeout: 10, retries: 0, configFile: 'environments/test/environment.yml' });
      expect((await remote.run({ name: 'probe', as: 'login', script: 'true' })).code, form).toBe(0);
      await remote.close();
    }
  });

  it('not held by the agent: one message about the key, with ssh-add as a fix', async () => {
    const d = fresh();
    const key = newKey(d, 'deploy_key', 'a passphrase');
    const { socket } = startAgent(d, [newKey(d, 'github')]);
    const reporter = new MemoryReporter();
    const credentials = resolveCredentials({ identityFile: key, processEnv: { SSH_AUTH_SOCK: socket } }, reporter);
    const err = await connect({ host: { name: 'lo', address: '127.0.0.1', port: sshd.port, user: 'root', hostKey: sshd.hostKey }, credentials, appUser: 'app', reporter, connectTimeout: 10, retries: 0, configFile: 'environments/test/environment.yml' }).catch((e: unknown) => e);
    expect(formatError(err)).toMatch(/^cannot use our SSH key \(key file .*deploy_key\) to log in to lo .*no passphrase given\n {2}hint: .*ssh-add FILE/);
  });
});

describe('a login that fails where plain ssh would use the ssh configuration: the hint says what it sets (ops reads none)', () => {
  /** Log in to `address`:`port` as `user` with the test key, `config` as the user's ssh configuration: the error's text. */
  async function refused(address: string, port: number, user: string, config: string): Promise<string> {
    const file = join(fresh(), 'ssh_config');
    writeFileSync(file, config);
    const reporter = new MemoryReporter();
    const err = await connect({ host: { name: 'web1', address, port, user, hostKey: sshd.hostKey }, credentials: { privateKey: sshd.clientKey, describe: 'test key' }, appUser: 'app', reporter, connectTimeout: 5, retries: 0, configFile: 'environments/test/environment.yml', sshConfig: file }).catch((e: unknown) => e);
    return formatError(err);
  }

  it('a Host alias (its HostName, Port, User, IdentityFile) given as the address: each named with the setting it goes in', async () => {
    const text = await refused('ops-test-alias', 22, 'deploy', `Host ops-test-alias\n  HostName 127.0.0.1\n  Port ${sshd.port}\n  User admin\n  IdentityFile /keys/web\n`);
    expect(text).toMatch(/^cannot connect to web1 \(deploy@ops-test-alias:22\): the name does not resolve/);
    expect(text).toContain(`; plain ssh ops-test-alias would use, from your ssh configuration: HostName 127.0.0.1 (ops: address), Port ${sshd.port} (ops: port), User admin (ops: user), IdentityFile /keys/web (ops: --identity or ssh.identity_file); ops reads no ssh configuration: set them in the environment`);
  });

  it('a ProxyJump for the address (its port closed from here): named, with bastion as its place; nothing set: the hint as before', async () => {
    const closed = sshd.port + 1 === 65536 ? sshd.port - 1 : sshd.port + 1;
    const jump = await refused('127.0.0.1', closed, 'root', 'Host 127.0.0.1\n  ProxyJump ops@jump.internal\n');
    expect(jump).toMatch(/ProxyJump ops@jump\.internal:?\d* \(ops: bastion\); ops reads no ssh configuration/);
    const none = await refused('127.0.0.1', closed, 'root', 'Host other\n  Port 2222\n');
    expect(none).not.toContain('ssh configuration');
  });
});

describe('a host by name', () => {
  it('a name that resolves (localhost) logs in', async () => {
    const reporter = new MemoryReporter();
    const remote = await connect({ host: { name: 'lo', address: 'localhost', port: sshd.port, user: 'root', hostKey: sshd.hostKey }, credentials: { privateKey: sshd.clientKey, describe: 'test key' }, appUser: 'app', reporter, connectTimeout: 10, retries: 0, configFile: 'environments/test/environment.yml' });
    expect((await remote.run({ name: 'probe', as: 'login', script: 'true' })).code).toBe(0);
    await remote.close();
  });

  it("a name whose DNS server does not answer: said so after ssh.connect_timeout (not \"the host is down\"), and ops exits then, not when the resolver gives up (30 s)", async () => {
    const d = fresh();
    // a DNS server that never answers, on an address of its own (the machine's resolv.conf left alone: a mount namespace)
    const dns = createSocket('udp4');
    const address = `127.53.${Math.floor(Math.random() * 250) + 1}.${Math.floor(Math.random() * 250) + 1}`;
    await new Promise<void>((resolve) => dns.bind(53, address, resolve));
    writeFileSync(join(d, 'resolv.conf'), `nameserver ${address}\noptions timeout:30 attempts:1\n`);
    const root = join(d, 'project');
    mkdirSync(join(root, 'environments', 'slow'), { recursive: true });
    writeFileSync(join(root, 'package.json'), '{}');
    writeFileSync(join(root, 'environments', 'slow', 'environment.yml'), ['app: sample', 'hosts:', '  - name: web1', '    address: slow-name.test', `    host_key: ${sshd.hostKey}`, 'ssh: { connect_timeout: 2, connect_retries: 0 }', 'programs: { api: { command: "true", port: 3579 } }', 'routes: { "/": api }', ''].join('\n'));
    const bin = join(import.meta.dirname, '..', '..', 'scripts', 'ops-bin.js');
    const started = Date.now();
    const child = spawn('unshare', ['-m', 'sh', '-c', 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"', 'sh', join(d, 'resolv.conf'), process.execPath, bin, 'ping', 'slow'], {
      env: { ...process.env, OPS_ROOT: root, OPS_SSH_KEY: sshd.clientKey, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.on('data', (c: Buffer) => (out += c));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    const seconds = (Date.now() - started) / 1000;
    dns.close();
    expect(out, out).toMatch(/cannot connect to web1 \(deploy@slow-name\.test:22\): the name slow-name\.test did not resolve within 2 s \(this machine's DNS server does not answer/);
    expect(code).toBe(1);
    expect(seconds).toBeLessThan(15);
  });
});
