// Which SSH key to log in with, in a fixed order that works the same on a runner and on a laptop.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { OpsError, fileError, userFileExists } from '../errors.ts';
import type { Reporter } from '../report.ts';
import { exposedKeyWarning } from '../secrets/key-file.ts';

export interface Credentials {
  privateKey?: string;
  passphrase?: string;
  agent?: string;
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
    throw new OpsError(`${why.message} (the SSH key of ${label})`, hint);
  }
}

/**
 * Key text checked to hold a private key (`label` names where it came from in the error: `key file <path>` for a
 * file), with its final newline. What is there instead is said by its shape, never quoted: the usual mistakes are the
 * public key (the .pub file, the line of authorized_keys), a path where the key's content goes ($OPS_SSH_KEY, the
 * ssh-key input), and a PuTTY key.
 */
export function checkKeyText(text: string, label: string): string {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    const file = label.startsWith('key file ');
    const t = text.trim();
    if (/(^|\s)(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+) AAAA/.test(t) || t.startsWith('---- BEGIN SSH2 PUBLIC KEY ----')) {
      throw new OpsError(
        `${label} holds a public key, not the private key`,
        file ? 'give the private key file: the one without .pub (e.g. ~/.ssh/id_ed25519)' : 'give the private key file\'s content (the file without .pub), with its BEGIN/END lines',
      );
    }
    if (t.startsWith('PuTTY-User-Key-File-')) throw new OpsError(`${label} holds a PuTTY key (.ppk), not an OpenSSH or PEM one`, 'convert it: puttygen KEY.ppk -O private-openssh -o id_ed25519, and give that');
    if (!file && /^(~|\.{0,2}\/)[^\s]*$/.test(t)) {
      throw new OpsError(`${label} holds a path, not the key's content`, 'give the key file\'s content (OPS_SSH_KEY="$(cat FILE)"), or its path with --identity or ssh.identity_file');
    }
    throw new OpsError(`${label} does not hold a private key in PEM/OpenSSH format`, 'give the whole key file content, including the BEGIN/END lines');
  }
  // Its line breaks turned into spaces (`echo $KEY` unquoted, a one-line form field): ssh2 only says "Unsupported key
  // format", which names no cause.
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----[ \t]+\S/.test(text))
    throw new OpsError(`${label} holds a private key on one line: its line breaks were lost (turned into spaces)`, 'give the key file\'s content as it is, line by line: quote it where the shell expands it (OPS_SSH_KEY="$(cat FILE)", echo "$KEY"), or paste it into a field that keeps line breaks');
  return text.endsWith('\n') ? text : `${text}\n`;
}

/**
 * Order: --identity, $OPS_SSH_KEY (key text, e.g. from a GitHub secret), ssh.identity_file, the SSH agent,
 * then ~/.ssh/id_ed25519, id_ecdsa, id_rsa. Key text is masked before anything can print it.
 */
export function resolveCredentials(sources: IdentitySources, reporter: Reporter): Credentials {
  const processEnv = sources.processEnv ?? process.env;
  const passphrase = processEnv.OPS_SSH_KEY_PASSPHRASE || undefined;
  if (passphrase) reporter.mask(passphrase);
  const fromText = (text: string, describe: string): Credentials => {
    const key = checkKeyText(text, describe);
    reporter.mask(key);
    return { privateKey: key, passphrase, describe };
  };
  /** A key file's text, with a warning when other users may read it (ssh itself refuses such a key). */
  const fromFile = (file: string, label: string): Credentials => {
    const creds = fromText(readKey(file, label), `key file ${file}`);
    const w = exposedKeyWarning(file, 'an SSH private key');
    if (w) reporter.warn(w);
    return creds;
  };
  if (sources.identityFile) return fromFile(sources.identityFile, '--identity');
  if (processEnv.OPS_SSH_KEY) return fromText(processEnv.OPS_SSH_KEY, '$OPS_SSH_KEY');
  if (sources.configFile) return fromFile(sources.configFile, 'ssh.identity_file');
  if (processEnv.SSH_AUTH_SOCK && existsSync(processEnv.SSH_AUTH_SOCK)) return { agent: processEnv.SSH_AUTH_SOCK, describe: `SSH agent at ${processEnv.SSH_AUTH_SOCK}` };
  const home = sources.home ?? homedir();
  for (const f of ['id_ed25519', 'id_ecdsa', 'id_rsa']) {
    const p = join(home, '.ssh', f);
    if (userFileExists(p, p, 'an SSH private key')) return fromFile(p, 'default key');
  }
  throw new OpsError(
    'no SSH key to log in with',
    'tried --identity, $OPS_SSH_KEY, ssh.identity_file in the environment, $SSH_AUTH_SOCK and ~/.ssh/id_{ed25519,ecdsa,rsa}: give one of them',
  );
}
