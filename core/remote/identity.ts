// Which SSH key to log in with, in a fixed order that works the same on a runner and on a laptop.
import { existsSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { homeDir, noHomeReason } from '../home.ts';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { InputError, OpsError, fileError, userFileExists } from '../errors.ts';
import type { Reporter } from '../report.ts';
import { exposedKeyWarning } from '../secrets/key-file.ts';

export interface Credentials {
  /** The one key given (--identity, $OPS_SSH_KEY, ssh.identity_file): offered alone, as ssh's IdentitiesOnly. */
  privateKey?: string;
  passphrase?: string;
  /** $SSH_AUTH_SOCK: when no key was given, its keys are offered first, as ssh offers them; with `agentKey`, that key alone. */
  agent?: string;
  /**
   * When no key was given: the default key files that exist and can be used (~/.ssh/id_ed25519, id_ecdsa, id_rsa),
   * offered after the agent's keys, as ssh offers its default identities: an agent that is empty, holds other keys
   * only, or no longer answers does not stop a login that the key file allows.
   */
  defaultKeys?: { file: string; privateKey: string }[];
  /**
   * With `privateKey` and `agent`: the key is encrypted, no passphrase was given, and this is its public key (SSH wire
   * form): the agent signs with it if it holds it, as ssh uses an agent that holds its IdentityFile's key.
   */
  agentKey?: Buffer;
  /** Default key files left out, each with why ("~/.ssh/id_rsa: encrypted, and no passphrase given"): for errors. */
  skipped?: string[];
  /** Where the key came from, for error messages (never the key itself). */
  describe: string;
}

export interface IdentitySources {
  /** --identity on the command line. */
  identityFile?: string;
  /** ssh.identity_file from the environment, already resolved to an absolute path. */
  configFile?: string;
  processEnv?: NodeJS.ProcessEnv;
  home?: string;
}

function readKey(file: string, label: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const why = fileError(e, file, 'read', 'an SSH private key file');
    // fileError's hint for a missing file is about paths typed at a prompt; a setting's is read from its folder.
    const hint = label === 'ssh.identity_file' && (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'check ssh.identity_file in the environment.yml (a relative path starts from the environment folder, ~/ from your home directory)' : why.hint;
    // of the same class as fileError's: a path that names no file is the input's to fix (exit 2), a permission the machine's
    throw new (why instanceof InputError ? InputError : OpsError)(`${why.message} (the SSH key of ${label})`, hint);
  }
}

/**
 * Key text checked to hold a private key (`label` names where it came from in the error: `key file <path>` for a
 * file), with its final newline. What is there instead is said by its shape, never quoted: the usual mistakes are the
 * public key (the .pub file, the line of authorized_keys), a path where the key's content goes ($OPS_SSH_KEY, the
 * ssh-key input), a PuTTY key, and an age key (the secrets' key, given where the SSH key goes): each an InputError (the
 * key given must change: exit 2).
 */
export function checkKeyText(text: string, label: string): string {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    const file = label.startsWith('key file ');
    const t = text.trim();
    if (/(^|\s)(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+) AAAA/.test(t) || t.startsWith('---- BEGIN SSH2 PUBLIC KEY ----')) {
      throw new InputError(
        `${label} holds a public key, not the private key`,
        file ? 'give the private key file: the one without .pub (e.g. ~/.ssh/id_ed25519)' : 'give the private key file\'s content (the file without .pub), with its BEGIN/END lines',
      );
    }
    // the other key ops reads: an age key (age's and sops' `-i`, a key file from `ops env new`), never shown
    if (/AGE-SECRET-KEY-1[0-9A-Z]+/.test(t))
      throw new InputError(
        `${label} holds an age key (not shown: the key that decrypts the secrets), not an SSH private key`,
        label.startsWith('input ')
          ? 'the age key goes in input `age-key` (the SOPS_AGE_KEY secret); this one takes the SSH private key hosts are logged in with (the SSH_PRIVATE_KEY secret)'
          : `an age key decrypts the secrets, from $SOPS_AGE_KEY_FILE (its path) or $SOPS_AGE_KEY; hosts are logged in to with your SSH key: ${file ? '--identity ~/.ssh/id_ed25519, or ssh.identity_file' : 'its file\'s content, OPS_SSH_KEY="$(cat ~/.ssh/id_ed25519)"'}`,
      );
    if (t.startsWith('PuTTY-User-Key-File-')) throw new InputError(`${label} holds a PuTTY key (.ppk), not an OpenSSH or PEM one`, 'convert it: puttygen KEY.ppk -O private-openssh -o id_ed25519, and give that');
    if (!file && /^(~|\.{0,2}\/)[^\s]*$/.test(t)) {
      throw new InputError(`${label} holds a path, not the key's content`, 'give the key file\'s content (OPS_SSH_KEY="$(cat FILE)"), or its path with --identity or ssh.identity_file');
    }
    throw new InputError(`${label} does not hold a private key in PEM/OpenSSH format`, 'give the whole key file content, including the BEGIN/END lines');
  }
  // Its line breaks turned into spaces (`echo $KEY` unquoted, a one-line form field), dropped (`tr -d '\n'`, a field
  // that keeps one line) or written as the two characters \n (a JSON or .env value's escape): ssh2 only says
  // "Unsupported key format", which names no cause.
  const how = /-----BEGIN [A-Z ]*PRIVATE KEY-----\\n/.test(text)
    ? 'written as \\n, a backslash and an n: an escape no one read back'
    : /-----BEGIN [A-Z ]*PRIVATE KEY-----[ \t]+\S/.test(text)
      ? 'turned into spaces'
      : /-----BEGIN [A-Z ]*PRIVATE KEY-----(?![ \t]*(\r?\n|$))/.test(text)
        ? 'removed'
        : undefined;
  // Its lines indented (copied out of a YAML block or an indented document; the first one's white space may be trimmed
  // already, as the runner's inputs are): ssh2 reads no key in it either.
  if (!how && /-----BEGIN [A-Z ]*PRIVATE KEY-----[ \t]*\r?\n[ \t]+\S/.test(text))
    throw new InputError(
      `${label} holds an indented private key: its lines start with white space (copied out of an indented block)`,
      label.startsWith('input ')
        ? 'set the secret to the key file\'s content as it is, each line from its first column (gh secret set SSH_PRIVATE_KEY --env <environment> < id_ed25519)'
        : 'give the key file\'s content as it is, each line from its first column (OPS_SSH_KEY="$(cat FILE)")',
    );
  if (how)
    throw new InputError(
      `${label} holds a private key on one line: its line breaks were lost (${how})`,
      label.startsWith('input ')
        ? 'set the secret to the key file\'s content as it is, line by line (gh secret set SSH_PRIVATE_KEY --env <environment> < id_ed25519, or paste the whole file into the secret\'s field)'
        : 'give the key file\'s content as it is, line by line: quote it where the shell expands it (OPS_SSH_KEY="$(cat FILE)", echo "$KEY"), or paste it into a field that keeps line breaks',
    );
  return text.endsWith('\n') ? text : `${text}\n`;
}

/**
 * Order: --identity, $OPS_SSH_KEY (key text, e.g. from a GitHub secret), ssh.identity_file: the first given is the
 * one key offered (with the agent, when it is encrypted and no passphrase is given: `agentKey`). None given: as ssh
 * without an IdentityFile, the SSH agent ($SSH_AUTH_SOCK, when its socket exists) and the usable default key files
 * (~/.ssh/id_ed25519, id_ecdsa, id_rsa: `defaultKeys`, those left out in `skipped`), offered in that order by `login`.
 * Key text is masked before anything can print it. Throws an InputError when a key given names no file or holds no
 * private key (an OpsError when it cannot be read: a permission), an OpsError when there is no agent and no usable
 * default key file (naming each left out).
 */
export function resolveCredentials(sources: IdentitySources, reporter: Reporter): Credentials {
  const processEnv = sources.processEnv ?? process.env;
  const passphrase = processEnv.OPS_SSH_KEY_PASSPHRASE || undefined;
  if (passphrase) reporter.mask(passphrase);
  const sock = processEnv.SSH_AUTH_SOCK && existsSync(processEnv.SSH_AUTH_SOCK) ? processEnv.SSH_AUTH_SOCK : undefined;
  const fromText = (text: string, describe: string, file?: string): Credentials => {
    const key = checkKeyText(text, describe);
    reporter.mask(key);
    // Encrypted, no passphrase: the agent may hold it (ssh-add asked for the passphrase once), as ssh would use it.
    const parsed = !passphrase && sock ? ssh2.utils.parseKey(key) : undefined;
    const agentKey = parsed instanceof Error && /encrypted/i.test(parsed.message) ? publicBlob(key, file) : undefined;
    return { privateKey: key, passphrase, describe, ...(agentKey && { agent: sock, agentKey }) };
  };
  /** A key file's text, with a warning when other users may read it (ssh itself refuses such a key). */
  const fromFile = (file: string, label: string): Credentials => {
    const creds = fromText(readKey(file, label), `key file ${file}`, file);
    const w = exposedKeyWarning(file, 'an SSH private key');
    if (w) reporter.warn(w);
    return creds;
  };
  if (sources.identityFile) return fromFile(sources.identityFile, '--identity');
  if (processEnv.OPS_SSH_KEY) return fromText(processEnv.OPS_SSH_KEY, '$OPS_SSH_KEY');
  if (sources.configFile) return fromFile(sources.configFile, 'ssh.identity_file');
  // As ssh without an IdentityFile: the agent's keys, then each default key file (not just the first that exists).
  const agent = sock;
  const home = sources.home ?? homeDir(processEnv);
  const defaultKeys: { file: string; privateKey: string }[] = [];
  const skipped: string[] = [];
  // A default key file ops cannot use is left out, said where a login fails, as ssh passes over one (a key given is
  // refused at once instead: it was asked for).
  let encrypted: string | undefined;
  // no home directory known: no default key files, said (never ~/.ssh read relative to the directory ops runs in)
  if (!home) skipped.push(`~/.ssh/id_{ed25519,ecdsa,rsa}: ${noHomeReason(processEnv)}`);
  for (const f of home ? ['id_ed25519', 'id_ecdsa', 'id_rsa'] : []) {
    const p = join(home!, '.ssh', f);
    let privateKey: string;
    try {
      if (!userFileExists(p, p, 'an SSH private key')) continue;
      privateKey = fromFile(p, 'default key').privateKey!;
    } catch (e) {
      if (!(e instanceof OpsError)) throw e;
      skipped.push(`${p}: ${e.message}`);
      continue;
    }
    // (one the agent holds is offered by it already)
    const parsed = ssh2.utils.parseKey(privateKey, passphrase);
    if (!(parsed instanceof Error)) defaultKeys.push({ file: p, privateKey });
    else if (/encrypted/i.test(parsed.message) && !passphrase) {
      skipped.push(`${p}: encrypted, and no passphrase given`);
      encrypted ??= p;
    } else skipped.push(`${p}: ${parsed.message}`);
  }
  if (!agent && !defaultKeys.length && skipped.length) {
    throw new OpsError(
      `no SSH key to log in with: ${skipped.join('; ')}`,
      encrypted
        ? `add the key to your SSH agent (eval "$(ssh-agent)"; ssh-add ${encrypted}), or give its passphrase in $OPS_SSH_KEY_PASSPHRASE; or give another key (--identity, $OPS_SSH_KEY, ssh.identity_file)`
        : !home
          ? 'set HOME to your home directory, or give a key (--identity FILE, $OPS_SSH_KEY, ssh.identity_file), or start your SSH agent'
          : 'fix or replace that key file, or give another key (--identity, $OPS_SSH_KEY, ssh.identity_file)',
    );
  }
  if (!agent && !defaultKeys.length) {
    throw new OpsError(
      'no SSH key to log in with',
      'tried --identity, $OPS_SSH_KEY, ssh.identity_file in the environment, $SSH_AUTH_SOCK and ~/.ssh/id_{ed25519,ecdsa,rsa}: give one of them',
    );
  }
  const describe = [...(agent ? [`SSH agent at ${agent}`] : []), ...defaultKeys.map((k) => `key file ${k.file}`)].join(', then ');
  return { agent, defaultKeys, passphrase, ...(skipped.length && { skipped }), describe };
}

/**
 * The public key (SSH wire form) of an encrypted private key, by which an agent holding it is asked to sign: OpenSSH's
 * format keeps it in clear before the encrypted part (PROTOCOL.key: "openssh-key-v1\0", cipher, KDF, KDF options,
 * number of keys, then each public key), as ssh reads it; a PEM key, which has none in clear, from the `.pub` file
 * beside `file` (as ssh does). Undefined when neither gives one.
 */
export function publicBlob(text: string, file?: string): Buffer | undefined {
  const body = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(text)?.[1];
  if (body) {
    const b = Buffer.from(body.replace(/\s+/g, ''), 'base64');
    const magic = 'openssh-key-v1\0';
    if (b.subarray(0, magic.length).toString('latin1') !== magic) return undefined;
    let at = magic.length;
    const string = (): Buffer | undefined => {
      if (at + 4 > b.length) return undefined;
      const n = b.readUInt32BE(at);
      if (at + 4 + n > b.length) return undefined;
      at += 4 + n;
      return b.subarray(at - n, at);
    };
    // cipher, KDF, KDF options; then the number of keys (uint32) and the first public key
    if (!string() || !string() || !string() || at + 4 > b.length) return undefined;
    at += 4;
    return string();
  }
  if (!file) return undefined;
  try {
    const pub = ssh2.utils.parseKey(readFileSync(`${file}.pub`, 'utf8'));
    return pub instanceof Error ? undefined : pub.getPublicSSH();
  } catch {
    return undefined;
  }
}

/**
 * An agent (ssh2's, for `authHandler`) that offers only the key `blob` of the SSH agent at `socket`, or undefined when
 * that agent does not answer or does not hold it: a key given is offered alone (IdentitiesOnly), signed by the agent.
 */
export async function agentFor(socket: string, blob: Buffer): Promise<ssh2.BaseAgent | undefined> {
  if ('error' in (await askAgent(socket))) return undefined;
  class OneKey extends ssh2.OpenSSHAgent {
    override getIdentities(cb: Parameters<ssh2.OpenSSHAgent['getIdentities']>[0]): void {
      super.getIdentities((err, keys) => cb(err, keys?.filter((k) => (k as ssh2.ParsedKey).getPublicSSH().equals(blob))));
    }
  }
  const agent = new OneKey(socket);
  const held = await new Promise<boolean>((resolve) => agent.getIdentities((err, keys) => resolve(!err && !!keys?.length)));
  return held ? agent : undefined;
}

/** What an SSH agent answered: how many keys it holds, or why it does not answer. */
export type AgentAnswer = { keys: number } | { error: string };

/**
 * Ask the SSH agent at `socket` how many keys it holds (SSH_AGENTC_REQUEST_IDENTITIES, draft-miller-ssh-agent §4.4),
 * within `ms`: a socket file left by an agent that ended (a closed desktop session's, a crashed one's) refuses the
 * connection, which ssh2 reports as an error that ends the login, where ssh says "Error connecting to agent" and goes
 * on with the key files. Never throws; the connection is closed either way.
 */
export function askAgent(socket: string, ms = 5000): Promise<AgentAnswer> {
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    const conn = createConnection(socket);
    const done = (a: AgentAnswer) => {
      clearTimeout(timer);
      conn.destroy();
      resolve(a);
    };
    const timer = setTimeout(() => done({ error: `no answer within ${ms / 1000} s` }), ms);
    conn.on('connect', () => conn.write(Buffer.from([0, 0, 0, 1, 11])));
    conn.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      // uint32 length, byte SSH_AGENT_IDENTITIES_ANSWER (12), uint32 number of keys: the rest is not needed
      if (got.length < 9) return;
      done(got[4] === 12 ? { keys: got.readUInt32BE(5) } : { error: `it answered with message ${got[4]}, not a list of keys` });
    });
    conn.on('error', (e: NodeJS.ErrnoException) => done({ error: e.code === 'ECONNREFUSED' ? 'connection refused: the agent that made it has ended' : e.code === 'EACCES' ? 'permission denied' : e.code === 'ENOTSOCK' ? 'not a socket' : (e.code ?? e.message) }));
    conn.on('close', () => done({ error: 'it closed the connection' }));
  });
}
