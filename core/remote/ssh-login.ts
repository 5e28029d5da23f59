// Logging in over SSH: a host or a bastion (jump host), each with its pinned host key (anything else is refused
// before login), retried with backoff on network errors; a bastion's connection carries the hosts' connections.
// Running steps over a connection: ssh.ts.
import { NodeSSH } from 'node-ssh';
import { timingSafeEqual } from 'node:crypto';
import { execFile } from 'node:child_process';
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { createConnection, isIP, isIPv6 } from 'node:net';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { InputError, OpsError, TransportError, describeLowLevel, translateError } from '../errors.ts';
import { own, type Reporter } from '../report.ts';
import { HOST_KEY_TYPES, blobType, fingerprint, isPlaceholderHostKey, parseHostKeys, type HostKey } from '../config/hostkey.ts';
import { agentFor, askAgent, type Credentials } from './identity.ts';
import { sshConfigDifference } from './ssh-config.ts';

/** How to log in: with which key, how long to wait, how often to retry, and where to tell the user to pin a key. */
export interface LoginOptions {
  credentials: Credentials;
  reporter: Reporter;
  /** Seconds per attempt. */
  connectTimeout: number;
  /** Extra attempts after the first, with backoff (1 s, 2 s, 4 s...). */
  retries: number;
  /** Where to tell the user to pin a key ("environments/prod/environment.yml"). */
  configFile: string;
  /**
   * The connection is no longer wanted (e.g. the deploy's ref turned out not to exist while it opened): the attempt
   * in progress is ended, no retry is made or announced, and the login rejects with LoginAbandoned.
   */
  signal?: AbortSignal;
  /** The OpenSSH client configuration a failed login is compared with (sshConfigDifference); ssh's own when not given. */
  sshConfig?: string;
}

/** A login given up on purpose (LoginOptions.signal): not a failure of the host, never shown as one. */
export class LoginAbandoned extends OpsError {}

/** Where an SSH server is, and the key it must present. A host of an environment, or its bastion. */
export interface Endpoint {
  name: string;
  address: string;
  port: number;
  user: string;
  hostKey: string;
  /** The file the key was read from (host_key_file), when it was: where a new key goes, not the settings. */
  hostKeyFile?: string;
}

/**
 * Handshake algorithms that make the server present a key of a pinned type: only those (a key of another type could
 * never match), in OpenSSH's order of preference (ed25519, ECDSA, then RSA with SHA-2 before SHA-1).
 */
function hostKeyAlgorithms(pinned: HostKey[]): string[] {
  const types = new Set(pinned.map((k) => k.type));
  return HOST_KEY_TYPES.filter((alg) => types.has(alg.startsWith('rsa-sha2') ? 'ssh-rsa' : alg));
}

/** Whether this machine has getent(1) (glibc's: Linux; not macOS), found on first use. */
let getentMissing = false;

/**
 * A lookup for net.connect (its `lookup` option) that can be given up: getent(1), glibc's own getaddrinfo as ssh uses it
 * (/etc/hosts, DNS, nsswitch), in a child process killed after `ms` or on `signal` (the caller gives it a second more
 * than the handshake's timeout, which then says first that the name did not resolve). Node's own lookup runs in libuv's
 * thread pool, where nothing can cancel it: a name whose DNS server does not answer held the process, its command
 * done and its error said, until the resolver gave up (30 s and more: libuv joins its threads at exit, process.exit
 * included). Without getent (macOS), Node's own. Errors as Node's (code ENOTFOUND for a name that does not resolve).
 */
function lookupWithin(ms: number, signal?: AbortSignal) {
  return (hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void => {
    if (getentMissing) return void dnsLookup(hostname, options, callback as never);
    const family = options.family === 4 || options.family === 'IPv4' ? 'ahostsv4' : options.family === 6 || options.family === 'IPv6' ? 'ahostsv6' : 'ahosts';
    execFile('getent', [family, '--', hostname], { timeout: ms, killSignal: 'SIGKILL', signal, encoding: 'utf8' }, (err, stdout) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        getentMissing = true;
        return void dnsLookup(hostname, options, callback as never);
      }
      // getent's lines: "<address> STREAM <name>", then DGRAM and RAW lines of the same addresses
      const addresses = [...new Set(stdout.split('\n').filter((l) => /\sSTREAM\b/.test(l)).map((l) => l.split(/\s+/)[0]!))].filter((a) => isIP(a));
      if (!addresses.length) {
        // exit 2: not found; killed: no answer within `ms` (the handshake timer says so first)
        const e: NodeJS.ErrnoException = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: err?.killed || signal?.aborted ? 'EAI_AGAIN' : 'ENOTFOUND', hostname });
        return callback(e, '');
      }
      if (options.all) return callback(null, addresses.map((address) => ({ address, family: isIP(address) })));
      callback(null, addresses[0]!, isIP(addresses[0]!));
    });
  };
}

/** Agent sockets already said not to answer (once per run, however many hosts). */
const silentAgents = new Set<string>();

/** How a login authenticates (ssh2's connect options), and what it offers, for errors. */
interface Auth {
  config: Record<string, unknown>;
  /** The keys offered, in words: "the SSH agent's 3 keys (at /run/...), then key file ~/.ssh/id_ed25519". */
  offered: string;
  /** The agent's number of keys, when there is one and it answered. */
  agentKeys?: number;
}

/**
 * ssh2's authentication for `credentials`: a key given, alone (as ssh's IdentitiesOnly); else the agent's keys, then
 * the default key files, in that order, as ssh offers them. An agent whose socket does not answer (an agent that
 * ended, leaving its socket file) is left out with a warning, as ssh does ("Error connecting to agent"), rather than
 * ending the login (ssh2 makes its error the connection's).
 */
async function authentication(user: string, credentials: Credentials, reporter: Reporter): Promise<Auth> {
  const { privateKey, passphrase, defaultKeys } = credentials;
  // An encrypted key given without its passphrase, which the agent holds: the agent signs with it, and only it.
  const signer = privateKey && credentials.agent && credentials.agentKey ? await agentFor(credentials.agent, credentials.agentKey) : undefined;
  if (signer) return { config: { authHandler: [{ type: 'agent', username: user, agent: signer }] }, offered: `${credentials.describe} (encrypted: signed by the SSH agent at ${credentials.agent}, which holds it)` };
  if (privateKey || !defaultKeys) return { config: { privateKey, passphrase }, offered: credentials.describe };
  let agent = credentials.agent;
  let agentKeys: number | undefined;
  // one that did not answer is not asked again in this run (a hung one would cost each host its wait)
  if (agent && silentAgents.has(agent)) agent = undefined;
  if (agent) {
    const answer = await askAgent(agent);
    if ('error' in answer) {
      reporter.warn(`the SSH agent at $SSH_AUTH_SOCK (${agent}) does not answer (${answer.error}): its keys are not offered${defaultKeys.length ? `; logging in with ${defaultKeys.map((k) => k.file).join(', then ')}` : ''}. Start an agent (eval "$(ssh-agent)"; ssh-add), or unset SSH_AUTH_SOCK`);
      silentAgents.add(agent);
      agent = undefined;
    } else agentKeys = answer.keys;
  }
  if (!agent && !defaultKeys.length) {
    throw new OpsError(
      `no SSH key to log in with: the SSH agent at $SSH_AUTH_SOCK (${credentials.agent}) does not answer, and there is no usable ~/.ssh/id_ed25519, id_ecdsa or id_rsa${credentials.skipped ? ` (${credentials.skipped.join('; ')})` : ''}`,
      'start an agent and add your key (eval "$(ssh-agent)"; ssh-add ~/.ssh/KEY), or give the key (--identity, $OPS_SSH_KEY, ssh.identity_file)',
    );
  }
  const agentWords = agent === undefined ? [] : [agentKeys === 0 ? `the SSH agent at ${agent} (which holds no key)` : `the SSH agent's ${agentKeys} key${agentKeys === 1 ? '' : 's'} (at ${agent})`];
  const authHandler = [...(agent === undefined ? [] : [{ type: 'agent', username: user, agent }]), ...defaultKeys.map((k) => ({ type: 'publickey', username: user, key: k.privateKey, passphrase }))];
  return { config: { authHandler }, offered: [...agentWords, ...defaultKeys.map((k) => `key file ${k.file}`)].join(', then '), agentKeys };
}

const RETRYABLE = /ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ECONNRESET|EAI_AGAIN|Timed out while waiting for handshake|Connection lost before handshake/;

/** The keys pinned for a server: one or several (a known_hosts excerpt, `ssh-keyscan`'s lines). */
function pinnedKeys(ep: Endpoint, role: string, configFile: string): HostKey[] {
  const pinned = parseHostKeys(ep.hostKey);
  if (typeof pinned === 'string') throw new OpsError(`${role} ${ep.name}: pinned host key is malformed (${pinned})`, `fix its host_key in ${configFile}`);
  return pinned;
}

/** The presented key is one of the pinned ones (compared in constant time). */
function isPinned(key: Buffer, pinned: HostKey[]): boolean {
  return pinned.some((k) => key.length === k.blob.length && timingSafeEqual(key, k.blob));
}

/** Where the pinned key is written, for a hint: its host_key_file, else its key in the settings. */
function pinPlace(ep: Endpoint, attempt: Attempt, configFile: string): string {
  return ep.hostKeyFile ? `${ep.hostKeyFile} (the host_key_file ${configFile} names)` : `${attempt.keyField} of ${configFile}`;
}

/**
 * Whether `address:port` answers an SSH client's greeting in HTTP (`HTTP/1.1 400 …`, as nginx, Apache and most web
 * servers do, also on an HTTPS port; or a bare HTML page): one connection of its own, after a login that ended before any SSH, within
 * `ms`. Any other answer, none, or an error: false.
 */
export function answersHttp(address: string, port: number, ms = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    let got = '';
    const socket = createConnection({ host: address, port });
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      // a status line, or an HTML page alone (the answer of a server taking the line for an HTTP/0.9 request: Python's)
      resolve(/^HTTP\/|^\s*<(!doctype html|html)[\s>]/i.test(got));
    };
    const timer = setTimeout(done, ms);
    socket.on('connect', () => socket.write('SSH-2.0-ops\r\n'));
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.length >= 64) done();
    });
    socket.on('error', done);
    socket.on('close', done);
  });
}

/**
 * ssh2's handshake timeout in words, by how far the connection got: the address's name never resolved (`resolved`
 * false: the DNS server does not answer, or too slowly; ssh2's timer counts the lookup), no TCP connection (the host is
 * down or a firewall drops the packets), or made and silent (sshd greets at once: a service waiting for its client to
 * speak first, or an sshd too busy to answer). Undefined for any other error.
 */
function timedOut(e: unknown, at: { connected: boolean; resolved: boolean }, seconds: number, ep: Endpoint, keyField: string): { what: string; hint: string } | undefined {
  if (!(e instanceof Error) || !/Timed out while waiting for handshake/.test(e.message)) return undefined;
  const port = keyField.replace(/host_key$/, 'port');
  if (!at.resolved) return { what: `the name ${ep.address} did not resolve within ${seconds} s (this machine's DNS server does not answer, or answers too slowly)`, hint: `check this machine's DNS (getent hosts ${ep.address}; /etc/resolv.conf), or set the host's IP address in ${keyField.replace(/host_key$/, 'address')} (ssh.connect_timeout sets the wait)` };
  if (!at.connected) return { what: `no answer to the connection within ${seconds} s (the host is down or unreachable, or a firewall drops the packets)`, hint: `check the address and ${port}, that the host is up, and that a firewall lets this machine in (ssh.connect_timeout sets the wait)` };
  return { what: `the port accepted the connection but sent no SSH greeting within ${seconds} s (sshd sends one at once)`, hint: `check that ${port} is sshd's (a service that waits for its client to speak first, as a database does, answers nothing), or whether sshd is overloaded (MaxStartups); then try again` };
}

interface Attempt {
  /** How to reach the server: a TCP connection (undefined) or a stream tunnelled through a bastion. */
  sock?: () => Promise<Duplex>;
  /** "web1 (deploy@10.0.0.5:22)", "bastion jump (ops@203.0.113.9:22)": used in every error. */
  where: string;
  /** Key section to fix in the config, for the hint ("hosts[].host_key", "bastion.host_key"). */
  keyField: string;
}

/** How refusePlaceholderAddress's message says the address is a placeholder: what `ops env remove` knows serves nothing. */
export const PLACEHOLDER_ADDRESS_SAID = "which no machine has: the placeholder `ops env new` writes, still in place";

/**
 * Throws an InputError (exit 2) when `ep.address` is reserved for documentation (documentationAddress): the placeholder `ops env new`
 * writes, which no machine has, so connecting would only time out or fail with a hint about sshd and firewalls.
 * `attempt` names the server and the key to fix (its `address` beside it); `configFile` the file that holds it.
 * Called before a login and before the SSH key is looked for (sshConnector): the placeholder is the first thing
 * to fix, whatever key there is.
 */
export function refusePlaceholderAddress(ep: Pick<Endpoint, 'address'>, attempt: Pick<Attempt, 'where' | 'keyField'>, configFile: string): void {
  const reserved = documentationAddress(ep.address);
  if (!reserved) return;
  // the environment's file is wrong, nothing was tried: a usage error (exit 2), as any environment.yml to fix
  throw new InputError(
    own`${attempt.where}: ${ep.address} is ${reserved}, ${PLACEHOLDER_ADDRESS_SAID}`,
    own`set the machine's own address in ${attempt.keyField.replace(/host_key$/, 'address')} of ${configFile} (and its host key, read on its console)`,
  );
}

/** How refusePlaceholderHostKey's message says the key is a placeholder: what `ops env remove` knows ops never set up. */
export const PLACEHOLDER_HOST_KEY_SAID = 'its pinned host key is still the placeholder `ops env new` writes, which no machine has';

/**
 * Throws an InputError (exit 2) when `ep.hostKey` is still the placeholder `ops env new` pins (PLACEHOLDER_HOST_KEY),
 * which no machine presents: connecting would only be refused as a host key mismatch, as if the machine had changed.
 * Called after refusePlaceholderAddress (a placeholder address is the first thing to fix) and before the SSH key is
 * looked for; a host_key that is malformed is left to the login, which says so.
 */
export function refusePlaceholderHostKey(ep: Pick<Endpoint, 'hostKey' | 'hostKeyFile'>, attempt: Pick<Attempt, 'where' | 'keyField'>, configFile: string): void {
  const pinned = parseHostKeys(ep.hostKey);
  if (typeof pinned === 'string' || !isPlaceholderHostKey(pinned)) return;
  const place = ep.hostKeyFile ? `${ep.hostKeyFile} (the host_key_file ${configFile} names)` : `${attempt.keyField} of ${configFile}`;
  throw new InputError(
    own`${attempt.where}: ${PLACEHOLDER_HOST_KEY_SAID}; nothing was tried`,
    own`read the machine's own key on its console (cat /etc/ssh/ssh_host_ed25519_key.pub; ssh-keygen -lf shows its fingerprint) and paste it in ${place}`,
  );
}

/**
 * One SSH login with the pinned key, retried with backoff on network errors. Errors say which server (and
 * through which bastion) failed and how: refused key, different host key, unreachable; and, when the user's ssh
 * configuration sets something else for the address (a Host alias, Port, User, IdentityFile, ProxyJump), which
 * plain ssh would use and ops does not read, the hint names it and where it goes in the environment.
 */
export async function login(ep: Endpoint, attempt: Attempt, options: LoginOptions): Promise<NodeSSH> {
  try {
    return await loginAttempts(ep, attempt, options);
  } catch (e) {
    if (e instanceof LoginAbandoned || !(e instanceof OpsError)) throw e;
    const note = await sshConfigDifference(ep, Boolean(attempt.sock), options.sshConfig);
    if (!note) throw e;
    throw new (e.constructor as typeof OpsError)(e.message, e.hint ? `${e.hint}; ${note}` : note);
  }
}

async function loginAttempts(ep: Endpoint, attempt: Attempt, options: LoginOptions): Promise<NodeSSH> {
  const pinned = pinnedKeys(ep, attempt.keyField.startsWith('bastion') ? 'bastion' : 'host', options.configFile);
  const { where } = attempt;
  refusePlaceholderAddress(ep, attempt, options.configFile);
  refusePlaceholderHostKey(ep, attempt, options.configFile);
  const auth = await authentication(ep.user, options.credentials, options.reporter);
  let tries = 0;
  const { signal } = options;
  const abandoned = () => new LoginAbandoned(`connecting to ${where}: abandoned`);
  for (;;) {
    if (signal?.aborted) throw abandoned();
    let presented: Buffer | undefined;
    const ssh = new NodeSSH();
    // Given up while connecting: the attempt ends now rather than at its timeout.
    const abort = () => ssh.connection?.destroy();
    signal?.addEventListener('abort', abort, { once: true });
    let sock: Duplex | undefined;
    let connected = false;
    // an IP address needs no lookup; a name's is done by net.connect, inside ssh2's handshake timer
    let resolved = Boolean(attempt.sock) || isIP(ep.address) !== 0;
    try {
      // Directly: a TCP connection of our own, with Nagle's algorithm off (TCP_NODELAY, as OpenSSH sets it). ssh2
      // writes each packet in pieces (length, payload, MAC); with Nagle, each piece after the first waits for the
      // server's delayed ACK (40 ms on Linux), at every one of a login's eight or so exchanges and every step's.
      // ssh2 takes the socket's errors and its 'connect' (its handlers are set before this tick ends).
      sock = attempt.sock ? await attempt.sock() : createConnection({ host: ep.address, port: ep.port, noDelay: true, lookup: lookupWithin(options.connectTimeout * 1000 + 1000, signal) });
      // whether the TCP connection was made (a stream through a bastion is): a timeout then is a silent port's
      connected = Boolean(attempt.sock);
      sock.once('connect', () => (connected = true));
      sock.once('lookup', () => (resolved = true));
      // Given up while a bastion opened the stream: ssh2 would wait for the handshake until its timeout.
      if (signal?.aborted) sock.destroy();
      await ssh.connect({
        host: ep.address,
        port: ep.port,
        username: ep.user,
        sock,
        readyTimeout: options.connectTimeout * 1000,
        keepaliveInterval: 10_000,
        keepaliveCountMax: 3,
        ...auth.config,
        algorithms: { serverHostKey: hostKeyAlgorithms(pinned) as never },
        hostVerifier: (key: Buffer) => {
          presented = key;
          return isPinned(key, pinned);
        },
      });
      return ssh;
    } catch (e) {
      ssh.dispose();
      // Ours to end on every failure: ssh2 throws some errors (a key it cannot use) before it takes the socket, which
      // then stayed connected, keeping the process alive until the server gave up (sshd: LoginGraceTime, 2 min).
      sock?.destroy();
      if (signal?.aborted) throw abandoned();
      if (e instanceof OpsError && !(e instanceof TransportError)) throw e;
      const message = e instanceof Error ? e.message : String(e);
      if (presented && !isPinned(presented, pinned)) {
        throw new OpsError(
          `host key of ${where} does not match the pinned key${pinned.length > 1 ? 's' : ''}: refusing to connect\n` +
            `  presented: ${blobType(presented)} ${fingerprint(presented)}\n` +
            pinned.map((k) => `  pinned:    ${k.type} ${fingerprint(k.blob)}`).join('\n'),
          `if the machine was rebuilt, read its new key out of band (VM console: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), compare the fingerprint, then put the key line in ${pinPlace(ep, attempt, options.configFile)}`,
        );
      }
      if (/no matching host key format|Handshake failed: no matching/i.test(message)) {
        const types = [...new Set(pinned.map((k) => k.type))];
        throw new OpsError(
          `${where} offers no ${types.join(' or ')} host key, ${types.length > 1 ? 'the types' : 'which is the type'} pinned`,
          `pin the key of a type it offers, in ${pinPlace(ep, attempt, options.configFile)}`,
        );
      }
      // ssh2's own words for a key it cannot use (thrown before any byte is sent): not the network's fault.
      if (/Cannot parse privateKey|private key detected, but no passphrase|Failed to decrypt|bad decrypt|Bad passphrase/i.test(message)) {
        throw new OpsError(`cannot use our SSH key (${options.credentials.describe}) to log in to ${where}: ${message}`, 'an encrypted key needs its passphrase in $OPS_SSH_KEY_PASSPHRASE, or to be in your SSH agent (ssh-add FILE asks for the passphrase once; ops then has the agent sign with it, as ssh does); otherwise give a private key in OpenSSH or PEM format (--identity, $OPS_SSH_KEY, ssh.identity_file)');
      }
      const given = '--identity FILE, $OPS_SSH_KEY, or ssh.identity_file in ' + options.configFile;
      const left = options.credentials.skipped;
      const skipped = left ? `; left out: ${left.join('; ')}${left.some((l) => l.endsWith(': encrypted, and no passphrase given')) ? ' (ssh-add an encrypted one to your agent, or give its passphrase in $OPS_SSH_KEY_PASSPHRASE)' : ''}` : '';
      if (/All configured authentication methods failed/i.test(message)) {
        if (options.credentials.defaultKeys)
          throw new OpsError(`${where} refused every key offered: ${auth.offered}${skipped}`, `authorise one of them for ${ep.user} there (~${ep.user}/.ssh/authorized_keys), add the key it accepts to your agent (ssh-add FILE), or give that key (${given})`);
        throw new OpsError(`${where} refused our SSH key (${options.credentials.describe})`, `authorise its public key for ${ep.user} there, or give another key (--identity, $OPS_SSH_KEY, ssh.identity_file)`);
      }
      // sshd's MaxAuthTries (6 by default) counts every key offered: an agent holding many ends the login before the
      // right one, for ssh too ("Too many authentication failures"); its fix there is IdentitiesOnly with the key.
      if (/Too many authentication failures/i.test(message)) {
        throw new OpsError(
          `${where} ended the login after too many keys were offered, one by one (sshd's MaxAuthTries, 6 by default): ${auth.offered}`,
          `give this host's key (${given}): ops then offers it alone, as ssh's IdentitiesOnly; or take the keys it does not need out of the agent (ssh-add -l lists them, ssh-add -d FILE removes one)`,
        );
      }
      // The agent failed under the login: it ended, or refused to sign with a key the server had accepted (one added
      // with ssh-add -c, not confirmed; an agent app's prompt declined). ssh2 goes on with the next key, but reports it
      // as the connection's error, which ends the login (node-ssh).
      if ((e as { level?: string }).level === 'agent') {
        const refused = /responded with failure/i.test(message);
        throw new OpsError(
          refused ? `the SSH agent at ${options.credentials.agent} refused to sign with the key ${where} accepts` : `the SSH agent at ${options.credentials.agent} failed while logging in to ${where}: ${message}`,
          refused ? `a key added with ssh-add -c must be confirmed (its prompt, ssh-askpass, needs a desktop session), and an agent app asks you to approve: approve it, or add the key without -c (ssh-add FILE), or give the key (${given})` : `check the agent (ssh-add -l), or give the key (${given})`,
        );
      }
      // Closed before any SSH: a web server's port answers SSH's greeting 400 and closes, every time (no retry helps).
      if (!attempt.sock && /Connection lost before handshake/.test(message) && (await answersHttp(ep.address, ep.port))) {
        const field = attempt.keyField.replace(/host_key$/, 'port');
        throw new TransportError(
          own`cannot connect to ${where}: port ${ep.port} is a web server's (it answers SSH's greeting in HTTP), not sshd's`,
          own`set ${field} in ${options.configFile} to sshd's port (22, or the Port of the host's /etc/ssh/sshd_config)`,
        );
      }
      if (tries >= options.retries || !RETRYABLE.test(`${message} ${(e as { code?: string }).code ?? ''}`)) {
        if (e instanceof OpsError) throw e;
        const known = timedOut(e, { connected, resolved }, options.connectTimeout, ep, attempt.keyField) ?? describeLowLevel(e);
        throw new TransportError(
          `cannot connect to ${where}: ${known?.what ?? message}${tries ? ` (after ${tries + 1} attempts)` : ''}`,
          known?.hint ?? 'check the address and port, that sshd runs, and that a firewall lets this machine in',
        );
      }
      tries++;
      options.reporter.warn(`${where}: ${e instanceof OpsError ? e.message : ((timedOut(e, { connected, resolved }, options.connectTimeout, ep, attempt.keyField) ?? describeLowLevel(e))?.what ?? message)}; retrying (${tries}/${options.retries})`);
      await sleep(1000 * 2 ** (tries - 1), undefined, { signal }).catch(() => undefined);
    } finally {
      signal?.removeEventListener('abort', abort);
    }
  }
}

/**
 * What reserves `address` for documentation and examples (so no machine answers at it), or undefined: the IPv4
 * TEST-NETs (RFC 5737: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24), IPv6's 2001:db8::/32 (RFC 3849), and the
 * names example.com/.net/.org and the .example and .invalid top-level domains (RFC 2606).
 */
export function documentationAddress(address: string): string | undefined {
  const a = address.toLowerCase().replace(/\.$/, '');
  if (/^(192\.0\.2|198\.51\.100|203\.0\.113)\.\d{1,3}$/.test(a)) return 'a documentation address (RFC 5737)';
  if (/^2001:0?db8:/.test(a)) return 'a documentation address (RFC 3849)';
  if (/(^|\.)example\.(com|net|org)$|\.(example|invalid)$|^(example|invalid)$/.test(a)) return 'a name reserved for examples (RFC 2606)';
  return undefined;
}

/**
 * An address and port as ssh and URLs write them: an IPv6 address in brackets ("[2001:db8::5]:22"), where
 * "2001:db8::5:22" would read as another address with no port.
 */
export function addressPort(address: string, port: number): string {
  return `${isIPv6(address) ? `[${address}]` : address}:${port}`;
}

/** The live-log label of an endpoint: "web1 (deploy@10.0.0.5:22)", "web1 (deploy@[2001:db8::5]:22)". */
export function describeEndpoint(ep: Endpoint): string {
  return `${ep.name} (${ep.user}@${addressPort(ep.address, ep.port)})`;
}

/**
 * A connection to a jump host, through which hosts are reached: each host's SSH connection runs inside a
 * forwarded TCP stream of this one (ssh2 `forwardOut`, a `direct-tcpip` channel, like `ssh -J`). Pinned
 * like a host. Closed when the last connection through it closes.
 */
export class Bastion {
  private users = 0;
  private lost?: Error;
  private constructor(
    private readonly ssh: NodeSSH,
    readonly endpoint: Endpoint,
  ) {
    const conn = ssh.connection!;
    conn.on('error', (e: Error) => (this.lost ??= e));
    conn.on('close', () => (this.lost ??= new Error('Not connected')));
  }

  /** Log in to the bastion (retries like a host). */
  static async open(endpoint: Endpoint, options: LoginOptions): Promise<Bastion> {
    const ssh = await login(endpoint, { where: `bastion ${endpoint.user}@${addressPort(endpoint.address, endpoint.port)}`, keyField: 'bastion.host_key (or hosts[].bastion.host_key)' }, options);
    return new Bastion(ssh, endpoint);
  }

  get alive(): boolean {
    return !this.lost && !!this.ssh.connection;
  }

  /** A TCP stream from the bastion to `address:port`; fails saying the bastion cannot reach it. */
  forward(target: Endpoint): Promise<Duplex> {
    const conn = this.ssh.connection;
    const label = `${target.name} (${addressPort(target.address, target.port)})`;
    const via = `bastion ${this.endpoint.address}`;
    if (!conn || this.lost) return Promise.reject(new TransportError(`${via} is no longer connected, so ${label} cannot be reached`, 'try again'));
    return new Promise((resolve, reject) => {
      try {
        conn.forwardOut('127.0.0.1', 0, target.address, target.port, (e, stream) => {
          if (!e) return resolve(stream);
          const why = e.message.replace(/^\(SSH\) Channel open failure: /, '');
          const denied = /prohibited/i.test(why);
          // Marked retryable like a refused TCP connection when the bastion could not connect (the host booting).
          const err = new TransportError(
            `${via} cannot reach ${label}: ${denied ? 'the bastion refuses TCP forwarding' : why}`,
            denied ? 'the bastion\'s sshd must allow forwarding for this login (AllowTcpForwarding yes, no restrict/no-port-forwarding on the key), as for `ssh -J`' : `check from the bastion that ${addressPort(target.address, target.port)} answers (e.g. ssh -J ${this.endpoint.user}@${addressPort(this.endpoint.address, this.endpoint.port)} -p ${target.port} ${target.address})`,
          );
          if (!denied) (err as { code?: string }).code = 'ECONNREFUSED';
          reject(err);
        });
      } catch (e) {
        reject(translateError(e, this.endpoint.address, `forwarding through bastion ${this.endpoint.address}`));
      }
    });
  }

  /** Count a connection through it. */
  use(): void {
    this.users++;
  }

  /** A connection through it ended: the last one closes the bastion's. */
  release(): void {
    if (--this.users <= 0) this.close();
  }

  close(): void {
    this.lost ??= new Error('Not connected');
    this.ssh.dispose();
  }
}
