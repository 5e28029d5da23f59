// The real transport: one node-ssh connection per host per run, shared by every step (exec channels)
// and every upload (one SFTP session). The host key is pinned: anything else is refused before login.
import type { ClientChannel, SFTPWrapper } from 'ssh2';
import { NodeSSH } from 'node-ssh';
import { timingSafeEqual } from 'node:crypto';
import { OpsError, StepError, tail } from '../errors.ts';
import type { Reporter } from '../report.ts';
import { blobType, fingerprint, parseHostKey } from '../config/hostkey.ts';
import type { Host } from '../config/environment.ts';
import { commandLine, scriptText } from './wrap.ts';
import { DEFAULT_STEP_TIMEOUT, REPORT_PREFIX, parseReports, type Remote, type RunOptions, type Step, type StepResult, type UploadOptions } from './types.ts';
import type { Credentials } from './identity.ts';

export interface ConnectOptions {
  host: Host;
  credentials: Credentials;
  appUser: string;
  reporter: Reporter;
  /** Seconds per attempt. */
  connectTimeout: number;
  /** Extra attempts after the first, with backoff (1 s, 2 s, 4 s...). */
  retries: number;
  /** Where to tell the user to pin a key ("environments/prod/environment.yml"). */
  configFile: string;
}

/** Handshake algorithms that make the server present a key of the pinned type. */
function hostKeyAlgorithms(type: string): string[] {
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
}

const RETRYABLE = /ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ECONNRESET|EAI_AGAIN|Timed out while waiting for handshake/;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function connect(options: ConnectOptions): Promise<Remote> {
  const { host, reporter } = options;
  const pinned = parseHostKey(host.hostKey);
  if (typeof pinned === 'string') throw new OpsError(`host ${host.name}: pinned host key is malformed (${pinned})`, `fix hosts[].host_key in ${options.configFile}`);
  let attempt = 0;
  for (;;) {
    let presented: Buffer | undefined;
    const ssh = new NodeSSH();
    try {
      await ssh.connect({
        host: host.address,
        port: host.port,
        username: host.user,
        readyTimeout: options.connectTimeout * 1000,
        keepaliveInterval: 10_000,
        keepaliveCountMax: 3,
        ...options.credentials,
        algorithms: { serverHostKey: hostKeyAlgorithms(pinned.type) as never },
        hostVerifier: (key: Buffer) => {
          presented = key;
          return key.length === pinned.blob.length && timingSafeEqual(key, pinned.blob);
        },
      });
      return new SshRemote(ssh, host, options.appUser, reporter);
    } catch (e) {
      ssh.dispose();
      const message = e instanceof Error ? e.message : String(e);
      const where = `${host.name} (${host.user}@${host.address}:${host.port})`;
      if (presented && !presented.equals(pinned.blob)) {
        throw new OpsError(
          `host key of ${where} does not match the pinned key: refusing to connect\n` +
            `  presented: ${blobType(presented)} ${fingerprint(presented)}\n` +
            `  pinned:    ${pinned.type} ${fingerprint(pinned.blob)}`,
          `if the host was rebuilt, read its new key out of band (VM console: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), compare the fingerprint, then put the key line in hosts[].host_key of ${options.configFile}`,
        );
      }
      if (/no matching host key format|Handshake failed: no matching/i.test(message)) {
        throw new OpsError(`${where} offers no ${pinned.type} host key, which is the type pinned`, `pin the host's key of a type it offers, in ${options.configFile}`);
      }
      if (/All configured authentication methods failed/i.test(message)) {
        throw new OpsError(`${where} refused our SSH key (${options.credentials.describe})`, `authorise its public key for ${host.user} on the host, or give another key (--identity, $OPS_SSH_KEY, ssh.identity_file)`);
      }
      if (attempt >= options.retries || !RETRYABLE.test(message)) {
        throw new OpsError(`cannot connect to ${where}: ${message}${attempt ? ` (after ${attempt + 1} attempts)` : ''}`, 'check the address and port, that sshd runs, and that a firewall lets this machine in');
      }
      attempt++;
      reporter.warn(`${host.name}: ${message}; retrying (${attempt}/${options.retries})`);
      await sleep(1000 * 2 ** (attempt - 1));
    }
  }
}

/** Splits a byte stream into lines for the live log, keeping the unfinished end for the next chunk. */
class LineSplitter {
  private rest = '';
  constructor(private readonly emit: (line: string) => void) {}
  push(chunk: Buffer): void {
    const text = this.rest + chunk.toString('utf8');
    const lines = text.split('\n');
    this.rest = lines.pop() ?? '';
    for (const l of lines) this.emit(l);
  }
  flush(): void {
    if (this.rest) this.emit(this.rest);
    this.rest = '';
  }
}

class SshRemote implements Remote {
  readonly name: string;
  readonly login: string;
  private sftp?: Promise<SFTPWrapper>;
  private readonly held: ClientChannel[] = [];
  constructor(
    private readonly ssh: NodeSSH,
    host: Host,
    private readonly appUser: string,
    private readonly reporter: Reporter,
  ) {
    this.name = host.name;
    this.login = host.user;
  }

  async run(step: Step, options: RunOptions = {}): Promise<StepResult> {
    const started = Date.now();
    const show = (stream: 'stdout' | 'stderr') =>
      new LineSplitter((line) => {
        if (!step.quiet && !line.startsWith(REPORT_PREFIX)) this.reporter.line(this.name, line, stream);
      });
    const out = show('stdout');
    const err = show('stderr');
    // Guard against a channel that never closes (the remote `timeout` should always end it first).
    const limit = ((step.timeout ?? DEFAULT_STEP_TIMEOUT) + 30) * 1000;
    let channel: ClientChannel | undefined;
    let guard: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      this.ssh.execCommand(commandLine(step, this.login, this.appUser), {
        stdin: scriptText(step),
        noTrim: true,
        onChannel: (c) => (channel = c),
        onStdout: (c) => out.push(c),
        onStderr: (c) => err.push(c),
      }),
      new Promise<never>((_, reject) => {
        guard = setTimeout(() => {
          channel?.close();
          reject(new StepError(step.name, this.name, null, 'no answer from the host before the step timeout', 'timeout'));
        }, limit);
      }),
    ]).finally(() => clearTimeout(guard));
    out.flush();
    err.flush();
    // node-ssh reports null when the channel closed without an exit status: treat as failure, never success.
    const code = result.code ?? (result.signal ? 128 : 255);
    const stepResult: StepResult = {
      stdout: result.stdout,
      stderr: result.stderr,
      code,
      durationMs: Date.now() - started,
      reports: parseReports(result.stdout),
    };
    if (code !== 0 && !options.allowFailure) {
      const detail = tail(result.stderr.trim() ? result.stderr : result.stdout.split('\n').filter((l) => !l.startsWith(REPORT_PREFIX)).join('\n'));
      const noSudo = /sudo: (a password is required|a terminal is required)|is not in the sudoers/.test(result.stderr);
      throw new StepError(
        step.name,
        this.name,
        code,
        detail,
        result.signal ?? undefined,
        noSudo ? `the login ${this.login} needs passwordless sudo on ${this.name} (e.g. /etc/sudoers.d/${this.login}: "${this.login} ALL=(ALL) NOPASSWD:ALL")` : undefined,
      );
    }
    return stepResult;
  }

  private session(): Promise<SFTPWrapper> {
    this.sftp ??= this.ssh.requestSFTP();
    return this.sftp;
  }

  async upload(content: string | Buffer, remotePath: string, options: UploadOptions = {}): Promise<void> {
    const sftp = await this.session();
    const data = typeof content === 'string' ? Buffer.from(content) : content;
    const mode = options.mode ?? 0o600;
    // Remove first so the mode applies at creation: an existing file would keep its old mode.
    await new Promise<void>((res) => sftp.unlink(remotePath, () => res()));
    await new Promise<void>((res, rej) =>
      sftp.writeFile(remotePath, data, { mode, flag: 'wx' }, (e) => (e ? rej(new OpsError(`upload to ${this.name}:${remotePath} failed: ${e.message}`)) : res())),
    );
  }

  async hold(): Promise<number> {
    const conn = this.ssh.connection;
    if (!conn) throw new OpsError(`${this.name}: not connected`);
    // `cat` waits on the channel's stdin: it ends when we close the channel or the connection drops.
    const command = `sh -c 'echo $$; exec cat >/dev/null'`;
    return new Promise((resolve, reject) => {
      conn.exec(command, (e, channel) => {
        if (e) return reject(e);
        this.held.push(channel);
        let first = '';
        channel.on('data', (d: Buffer) => {
          first += d.toString();
          const nl = first.indexOf('\n');
          if (nl >= 0) resolve(Number(first.slice(0, nl)));
        });
        channel.on('close', () => reject(new OpsError(`${this.name}: holder process ended early`)));
      });
    });
  }

  async close(): Promise<void> {
    for (const c of this.held) c.end();
    this.ssh.dispose();
  }
}
