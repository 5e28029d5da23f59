// A real OpenSSH server on loopback for transport tests: its own host key, config, port and log.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';

export interface TestSshd {
  port: number;
  dir: string;
  /** "ssh-ed25519 AAAA..." of the server. */
  hostKey: string;
  /** Private key file authorised for root. */
  clientKeyFile: string;
  clientKey: string;
  /** Number of accepted logins so far (from sshd's log). */
  logins(): number;
  stop(): Promise<void>;
}

function keygen(file: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test', '-f', file]);
}

/** `extra`: more sshd_config lines ("MaxSessions 1", "Banner /path"). */
export async function startSshd(extra: string[] = []): Promise<TestSshd> {
  const dir = mkdtempSync(join(tmpdir(), 'ops-sshd-'));
  keygen(join(dir, 'host_key'));
  keygen(join(dir, 'client_key'));
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')));
  const log = join(dir, 'sshd.log');
  mkdirSync('/run/sshd', { recursive: true });
  // A port taken between its pick and sshd's bind (by a program outside the tests): sshd ends, another port is tried.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    writeFileSync(log, '');
    writeFileSync(
      join(dir, 'sshd_config'),
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(dir, 'host_key')}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'StrictModes no',
        'UsePAM no',
        'LogLevel VERBOSE',
        'Subsystem sftp internal-sftp',
        ...extra,
      ].join('\n') + '\n',
    );
    const child: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config'), '-E', log], { stdio: 'ignore' });
    let ended = false;
    child.once('exit', () => (ended = true));
    // Up to 20 s (a busy machine).
    let said = '';
    for (let i = 0; i < 400 && !ended && !said.includes('Server listening'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      said = readFileSync(log, 'utf8');
    }
    if (said.includes('Server listening')) return sshdOn(port, dir, log, child);
    if (!ended) child.kill('SIGKILL');
    if (!ended || attempt === 3 || !said.includes('Address already in use')) throw new Error(`sshd did not start on port ${port}:\n${said}`);
  }
}

function sshdOn(port: number, dir: string, log: string, child: ChildProcess): TestSshd {
  return {
    port,
    dir,
    hostKey: readFileSync(join(dir, 'host_key.pub'), 'utf8').split(' ').slice(0, 2).join(' '),
    clientKeyFile: join(dir, 'client_key'),
    clientKey: readFileSync(join(dir, 'client_key'), 'utf8'),
    logins: () => (readFileSync(log, 'utf8').match(/Accepted publickey/g) ?? []).length,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
