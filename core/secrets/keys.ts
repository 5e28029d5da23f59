// age identities (private keys) and recipients (public keys), found the way sops finds them, and the
// file's data key wrapped for each recipient as an armored age file.
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { Decrypter, Encrypter, type Identity as AgeIdentity, armor, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { InputError, OpsError, fileError, messageLine, userFileExists } from '../errors.ts';
import { noHomeReason } from '../home.ts';
import { quote } from '../shell.ts';
import { NoKeyCommand, runKeyCommand } from './key-cmd.ts';
import { EXAMPLE_RECIPIENT, defaultKeyFile, exposedKeyWarning } from './key-file.ts';
import { isPrivateKey } from './parts.ts';
import { SSH_RECIPIENT_RE, loadSshIdentities, sshRecipient } from './ssh-keys.ts';

export { defaultKeyFile };

export interface Identity {
  /** `AGE-SECRET-KEY-1…`; absent for an SSH key (`ssh`). */
  secret?: string;
  /** Its public recipient, `age1…`, or an SSH key's `ssh-ed25519 AAAA…` (no comment). */
  recipient: string;
  /** An SSH private key as an age identity (ssh-keys.ts), used in place of `secret`. */
  ssh?: AgeIdentity;
  /** A passphrase-protected SSH key: the refusal it gives when a file needs it. */
  locked?: OpsError;
  /** Where it came from: `SOPS_AGE_KEY`, a file path. */
  source: string;
}

export interface Identities {
  identities: Identity[];
  /** Every place looked at, with what was found there, for the "no key" message. */
  tried: string[];
  /** The default key file for this environment (named in hints). */
  defaultFile?: string;
  /** Key files read that other users may read (exposedKeyWarning), for a caller with a reporter to say. */
  warnings?: string[];
  /** SSH keys that could not be used (ssh-keys.ts), said when no key opens a file, as sops says them. */
  problems?: string[];
}


const IDENTITY_RE = /^AGE-SECRET-KEY-(PQ-)?1[0-9A-Z]+$/;
const RECIPIENT_RE = /^age1[0-9a-z]+$/;

/** Parse identities from key-file text: one per line, `#` comments and blank lines ignored. Never echoes a line. */
export async function parseIdentities(text: string, source: string, encrypted?: { first: string; moveTo?: string }, plugins?: string[]): Promise<Identity[]> {
  const sealed = encryptedKeyFile(text, source, encrypted) ?? sshKeyGiven(text, source);
  if (sealed) throw sealed;
  const out: Identity[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    // A variable or an action's input ("input age-key") by its line; a file as file:line.
    const where = source === 'SOPS_AGE_KEY' || source === 'SOPS_AGE_KEY_CMD' || source.startsWith('input ') ? `line ${i + 1} of ${source}` : `${source}:${i + 1}`;
    // A key file kept on one line, its line breaks written `\n` (a .env value, a CI secret store): its key would sit
    // in its first line's comment, skipped, as sops and age skip it
    if (/\\n/.test(line) && new RegExp(IDENTITY_IN_LINE.source, 'i').test(line))
      throw new InputError(`${where} holds a private key with its line breaks written as \\n (a key file on one line; not shown)`, 'give the text with real line breaks (or only the AGE-SECRET-KEY-1… line): sops and age read \\n as two characters, and a first line starting with # as a comment, key and all');
    const bom = byteOrderMark(lines[i]!, line, where, source);
    if (bom) throw bom;
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('AGE-PLUGIN-')) {
      // beside native keys in one file (a YubiKey's and a plain one), as sops and age take it: the others are used
      if (plugins) {
        plugins.push(where);
        continue;
      }
      throw new InputError(`${where}: age plugin identities are not supported`, 'use a native age key (AGE-SECRET-KEY-1…)');
    }
    // The public key beside it (what `# public key:` and .sops.yaml show) is the usual wrong paste.
    if (RECIPIENT_RE.test(line)) {
      throw new InputError(
        `${where} is a public key (age1…, a recipient), not an age identity`,
        'give the private key instead: the AGE-SECRET-KEY-1… line `ops keygen` (or `ops env new`) printed below the public key',
      );
    }
    if (!IDENTITY_RE.test(line)) throw notAnIdentity(line, where, source);
    let recipient: string;
    try {
      recipient = await identityToRecipient(line);
    } catch {
      throw new InputError(`${where} is not a valid age identity (bad checksum or length)`, 'copy the key again, whole');
    }
    out.push({ secret: line, recipient, source });
  }
  return out;
}

/**
 * A byte order mark (U+FEFF, which Windows Notepad and PowerShell write at the start of UTF-8 text) that trimming
 * took off a key line (`raw`; `line`, trimmed): JavaScript's trim drops it, but sops and age do not skip it (Go's
 * strings.TrimSpace keeps it; sops 3.13: "unknown identity type", "malformed secret key"), before a key or a comment
 * line (then not a comment to them) or after a key. The error saying so and how to take it out, or undefined.
 */
function byteOrderMark(raw: string, line: string, where: string, source: string): OpsError | undefined {
  const before = raw.slice(0, raw.length - raw.trimStart().length);
  const after = raw.slice(raw.trimEnd().length);
  if (!before.includes('\uFEFF') && !(after.includes('\uFEFF') && !line.startsWith('#'))) return undefined;
  const variable = source === 'SOPS_AGE_KEY' || source === 'SOPS_AGE_KEY_CMD' || source.startsWith('input ');
  return new InputError(
    `${where} ${before.includes('\uFEFF') ? 'starts' : 'ends'} with a byte order mark (BOM, U+FEFF: an editor saved it as "UTF-8 with BOM"), which sops and age do not skip: they cannot read ${variable ? 'that value' : 'the file'} (the key was not shown)`,
    variable
      ? `give ${source} without it: copy the key (AGE-SECRET-KEY-1…) from a file saved as plain UTF-8, or with GNU sed: sed 's/\\xEF\\xBB\\xBF//g' FILE`
      : `take it out (GNU sed): sed -i 's/\\xEF\\xBB\\xBF//g' ${quote(source)}; or save the file as UTF-8 without BOM`,
  );
}

/**
 * A key file encrypted with age (`age -p`: passphrase-protected; binary, or armored `-----BEGIN AGE ENCRYPTED
 * FILE-----`), which sops and age ask the passphrase of and ops, run from scripts and CI alike, does not: the error
 * saying so and how to have age decrypt it for ops (SOPS_AGE_KEY_CMD, which sops reads too), or undefined. Its first
 * line would otherwise be refused as "not an age identity", which sends the operator looking for a broken key.
 */
function encryptedKeyFile(text: string, source: string, how: { first: string; moveTo?: string } = { first: '' }): OpsError | undefined {
  const head = text.replace(/^\uFEFF/, '').trimStart();
  if (!head.startsWith('age-encryption.org/') && !head.startsWith('-----BEGIN AGE ENCRYPTED FILE-----')) return undefined;
  if (source === 'SOPS_AGE_KEY' || source === 'SOPS_AGE_KEY_CMD' || source.startsWith('input '))
    return new InputError(`${source} holds an age-encrypted file (passphrase-protected, as \`age -p\` writes it), not an age identity`, `give the key itself (AGE-SECRET-KEY-1…), which \`age -d FILE\` prints${source === 'SOPS_AGE_KEY_CMD' ? ': end the command with it' : ''}`);
  return new InputError(
    `${source} is a passphrase-protected age key file (encrypted with \`age -p\`): ops does not ask for passphrases`,
    `${how.first}have age decrypt it for each command: export SOPS_AGE_KEY_CMD=${quote(`age -d ${quote(how.moveTo ?? source)}`)} (age asks for the passphrase on your terminal; sops runs that command too); in CI, give the plain key in SOPS_AGE_KEY`,
  );
}

/**
 * An SSH key where an age key goes (SOPS_AGE_KEY_FILE=~/.ssh/id_ed25519: sops 3.10+ decrypts files encrypted to SSH
 * public keys with one, read from SOPS_AGE_SSH_PRIVATE_KEY_FILE), named as such instead of its first line as "not an
 * age identity"; never shown. Undefined for other text.
 */
function sshKeyGiven(text: string, source: string): OpsError | undefined {
  const head = text.replace(/^\uFEFF/, '').trimStart();
  const kind = /^-----BEGIN (OPENSSH|RSA|EC|DSA) PRIVATE KEY-----/.test(head) ? 'an SSH private key' : SSH_RECIPIENT_RE.test(head.split(/\r?\n/)[0]!.trim()) ? 'an SSH public key' : undefined;
  if (!kind) return undefined;
  const variable = source === 'SOPS_AGE_KEY' || source === 'SOPS_AGE_KEY_CMD' || source.startsWith('input ');
  return new InputError(
    `${variable ? `${source} holds` : `${source} is`} ${kind}, not an age key${variable ? '' : ' file'}${kind === 'an SSH private key' ? ' (not shown)' : ''}`,
    `${source} takes age keys (AGE-SECRET-KEY-1…, from \`ops keygen\` or age-keygen) only: ${variable ? `give yours in ${source}` : 'point SOPS_AGE_KEY_FILE at your age key file, or unset it'}; an SSH private key goes in SOPS_AGE_SSH_PRIVATE_KEY_FILE (its path), as sops reads it, to open files encrypted to its public key`,
  );
}

/** A private key as written in a line of other text (any case: the shape is what is looked for, never shown). */
const IDENTITY_IN_LINE = /AGE-SECRET-KEY-(?:PQ-)?1[0-9A-Z]+/gi;

/**
 * Why a key line (trimmed) is no identity, said by its shape and never quoted: the key with what a shell or a .env
 * file would have stripped kept around it (quotes, `export SOPS_AGE_KEY=`), several keys on one line, a file's path
 * where the key itself goes, or anything else. age and sops refuse all of these alike (sops only trims surrounding
 * whitespace; age-keygen's `#` comment lines are its key-file format, skipped above): ops takes the key alone too, so
 * that the value fixed once works with every tool reading it.
 */
function notAnIdentity(line: string, where: string, source: string): OpsError {
  const variable = source === 'SOPS_AGE_KEY' || source === 'SOPS_AGE_KEY_CMD';
  const alone = variable ? `${source}'s value must be the key alone` : 'a key line must be the key alone';
  const keys = [...line.matchAll(IDENTITY_IN_LINE)];
  if (keys.length > 1) return new InputError(`${where} holds ${keys.length} private keys on one line (not shown)`, `give one key a line (AGE-SECRET-KEY-1…, as age-keygen writes them); sops and age read no other separator`);
  if (keys.length === 1) {
    const before = line.slice(0, keys[0]!.index);
    const after = line.slice(keys[0]!.index! + keys[0]![0].length);
    // `export SOPS_AGE_KEY=…`, `SOPS_AGE_KEY='…'`, `SOPS_AGE_KEY: …`: a line of a .env, shell or YAML file pasted whole
    const assignment = /^(export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*[=:]\s*(['"]?)$/.exec(before);
    if (assignment && after === assignment[3]) {
      const shape = `${assignment[1] ? 'export ' : ''}${assignment[2]}${before.includes(':') ? ': ' : '='}${assignment[3] ? `${assignment[3]}…${assignment[3]}` : '…'}`;
      return new InputError(`${where} is a whole ${before.includes(':') ? 'YAML' : 'shell or .env'} line (${shape}), not the key alone; not shown`, `${alone}, AGE-SECRET-KEY-1…: the "${before.trim()}" in front${assignment[3] ? ' and the closing quote' : ''} belong to the file it came from, not to the value (sops and age refuse it too)`);
    }
    // quote marks a shell would have removed ('…', "…"), or one left over from a paste
    if (/^['"]*$/.test(before) && /^['"]*$/.test(after) && (before || after)) {
      const marks = before === after && before.length === 1 ? `in quotes (${before}…${after})` : `with quote marks around it (${before || 'none'} before it, ${after || 'none'} after it)`;
      return new InputError(`${where} is the key ${marks}; not shown`, `${alone}, without quotes: sops and age read them as part of the key (a .env loader, a CI secret or docker's --env-file keeps them; only a shell removes them)`);
    }
    if (!/^AGE-SECRET-KEY-/.test(keys[0]![0])) return new InputError(`${where} is a private key written in lower case; not shown`, 'write it as age-keygen does, in upper case (AGE-SECRET-KEY-1…): sops and age read it so only');
    return new InputError(`${where} holds a private key with other text around it (${before.length} character${before.length === 1 ? '' : 's'} before it, ${after.length} after it; not shown)`, `${alone}, AGE-SECRET-KEY-1…, one a line`);
  }
  // a key file's path where the key itself goes (SOPS_AGE_KEY=~/.config/sops/age/keys.txt)
  if (variable && /^(~|\.{0,2}\/|[A-Za-z]:\\)\S*$|^\S+\.txt$/.test(line)) return new InputError(`${where} looks like a file's path, not a key (not shown)`, `${source} holds the key itself (AGE-SECRET-KEY-1…); to name a key file, set SOPS_AGE_KEY_FILE to its path instead`);
  return new InputError(`${where} is not an age identity`, 'each non-comment line must be a private key AGE-SECRET-KEY-1… (as written by `ops keygen` or age-keygen)');
}

/**
 * The user's age identities, from every place sops reads: `SOPS_AGE_KEY` (one or more keys, one a line),
 * `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY_CMD` (its output; run as sops runs it, key-cmd.ts), the default key file, then
 * the SSH keys (ssh-keys.ts). An empty result is not an error here: the caller says which file needed a key (`tried`
 * lists where we looked, with how a failing key command failed). @throws OpsError for a key file that cannot be read
 * or holds something else, and NoKeyCommand for a key command variable set to nothing (sops crashes on it).
 */
export async function loadIdentities(processEnv: NodeJS.ProcessEnv = process.env): Promise<Identities> {
  const identities: Identity[] = [];
  const tried: string[] = [];
  const warnings: string[] = [];
  // age plugin identities (AGE-PLUGIN-…) met, by line: skipped, said once
  const plugins: string[] = [];
  const count = (found: Identity[], before: number) => `${found.length} key${found.length === 1 ? '' : 's'}${plugins.length > before ? `, ${plugins.length - before} plugin identit${plugins.length - before === 1 ? 'y' : 'ies'} skipped` : ''}`;
  // the published example key (public, committed with the repository's modes) is no one's secret to protect
  const exposed = (file: string, found: Identity[]) => {
    if (found.every((i) => i.recipient === EXAMPLE_RECIPIENT)) return;
    const w = exposedKeyWarning(file, 'your age private key');
    if (w) warnings.push(w);
  };
  // A source that fails (a SOPS_AGE_KEY that is no key, a SOPS_AGE_KEY_FILE gone or holding a BOM) stops nothing when
  // another one gives keys, as in sops 3.13.3 (age keysource: it collects each source's error and says them only when
  // no identity opens the file): said where the places looked at are, and warned of; with no key from anywhere, the
  // first failure is the error (its own fix).
  const failed: OpsError[] = [];
  const attempt = async (place: string, read: () => Promise<void>): Promise<void> => {
    try {
      await read();
    } catch (e) {
      if (!(e instanceof OpsError) || e instanceof NoKeyCommand) throw e;
      failed.push(e);
      tried.push(`${place} (${messageLine(e)}; to fix: ${e.hint ?? 'see above'})`);
    }
  };
  if (processEnv.SOPS_AGE_KEY?.trim()) {
    await attempt('SOPS_AGE_KEY', async () => {
      const before = plugins.length;
      const found = await parseIdentities(processEnv.SOPS_AGE_KEY!, 'SOPS_AGE_KEY', undefined, plugins);
      identities.push(...found);
      tried.push(`SOPS_AGE_KEY (${count(found, before)})`);
    });
  } else tried.push('SOPS_AGE_KEY (not set)');
  if (processEnv.SOPS_AGE_KEY_FILE) {
    const file = processEnv.SOPS_AGE_KEY_FILE;
    await attempt(`SOPS_AGE_KEY_FILE=${file}`, async () => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        // of the kind fileError says: a path wrong as given (missing, a directory) is a usage error, no permission is not
        const err = fileError(e, file, 'read', 'an age key file');
        throw new (err instanceof InputError ? InputError : OpsError)(
          `SOPS_AGE_KEY_FILE: ${err.message}`,
          'point SOPS_AGE_KEY_FILE at your age key file, or unset it',
        );
      }
      const before = plugins.length;
      const found = await parseIdentities(text, file, { first: 'unset SOPS_AGE_KEY_FILE, and ' }, plugins);
      identities.push(...found);
      exposed(file, found);
      tried.push(`SOPS_AGE_KEY_FILE=${file} (${count(found, before)})`);
    });
  } else tried.push('SOPS_AGE_KEY_FILE (not set)');
  // set, even empty, as sops looks it up (os.LookupEnv); a failing command is no error as long as another key opens
  // the file (sops goes on to its other places): it is said where the places looked at are
  if (processEnv.SOPS_AGE_KEY_CMD !== undefined) {
    let text: string | undefined;
    try {
      text = runKeyCommand('SOPS_AGE_KEY_CMD', processEnv.SOPS_AGE_KEY_CMD, processEnv).toString('utf8');
    } catch (e) {
      if (!(e instanceof OpsError) || e instanceof NoKeyCommand) throw e;
      tried.push(`SOPS_AGE_KEY_CMD (${messageLine(e).replace(/^SOPS_AGE_KEY_CMD /, '')}; to fix: ${e.hint})`);
    }
    if (text !== undefined) {
      const output = text;
      await attempt('SOPS_AGE_KEY_CMD', async () => {
        const before = plugins.length;
        const found = await parseIdentities(output, 'SOPS_AGE_KEY_CMD', undefined, plugins);
        identities.push(...found);
        tried.push(`SOPS_AGE_KEY_CMD (${count(found, before)})`);
      });
    }
  }
  const file = defaultKeyFile(processEnv);
  const moved = file.replace(/\.txt$/, '') + '.age';
  if (!isAbsolute(file)) tried.push(`${file} (${noHomeReason(processEnv)})`);
  else if (userFileExists(file, file, 'an age key file')) {
    // ops reads this file whenever it exists: an encrypted one goes elsewhere for SOPS_AGE_KEY_CMD to decrypt
    await attempt(file, async () => {
      const before = plugins.length;
      const found = await parseIdentities(readFileSync(file, 'utf8'), file, { first: `move it out of the default key file: mv ${quote(file)} ${quote(moved)}; then `, moveTo: moved }, plugins);
      identities.push(...found);
      exposed(file, found);
      tried.push(`${file} (${count(found, before)})`);
    });
  } else tried.push(`${file} (no such file)`);
  if (plugins.length)
    warnings.push(`${plugins.join(', ')}: age plugin identit${plugins.length === 1 ? 'y' : 'ies'} (AGE-PLUGIN-…, a YubiKey's, a TPM's), which ops cannot use: skipped; ${identities.length ? 'the native keys beside it are used' : 'no native key was found'} (sops and age use a plugin identity through its plugin program; for ops, a native key AGE-SECRET-KEY-1… must be a recipient)`);
  // SSH keys, as sops 3.10+ reads them (ssh-keys.ts): after the age keys, so that a file open to both needs no SSH key
  const ssh = loadSshIdentities(processEnv, (cmd) => runKeyCommand('SOPS_AGE_SSH_PRIVATE_KEY_CMD', cmd, processEnv));
  identities.push(...ssh.identities.map((i) => ({ recipient: i.recipient, source: i.source, ssh: i.identity, ...(i.locked && { locked: i.locked }) })));
  tried.push(...ssh.tried);
  if (failed.length && !identities.length) throw failed[0]!;
  for (const e of failed) warnings.push(`${messageLine(e)}: skipped, as sops skips it, the keys found elsewhere used (to fix: ${e.hint ?? 'see above'})`);
  // The same key found twice (processEnv and file) is tried once
  const seen = new Set<string>();
  return { identities: identities.filter((i) => !seen.has(identityKey(i)) && seen.add(identityKey(i))), tried, defaultFile: file, ...(warnings.length && { warnings }), ...(ssh.problems.length && { problems: ssh.problems }) };
}

/** What an identity is known by when the same key is found twice: an age key's secret, an SSH key's public key. */
function identityKey(i: Identity): string {
  return i.secret ?? `ssh:${i.recipient}`;
}

/** Identities given as text (tests, `--key`), in the same form as a key file. */
export async function identitiesFromText(text: string, source = 'given key'): Promise<Identities> {
  return { identities: await parseIdentities(text, source), tried: [source] };
}

export { SSH_RECIPIENT_RE, recipientKey } from './ssh-keys.ts';

/** Whether `s` is an age recipient (age1..., Bech32). */
export function isRecipient(s: string): boolean {
  return RECIPIENT_RE.test(s);
}

/**
 * Check an `age1…` recipient (bech32 checksum included): throws an OpsError saying what is wrong. `where` names the
 * value (`--recipient`: an option that is given once per recipient); `given`: the environment it is for and the
 * `ops secrets recipients` subcommand it was given to, named in the command a hint gives.
 */
export function checkRecipient(r: string, where = 'recipient', given?: { env: string; command: 'add' | 'remove' }): string {
  const value = r.trim();
  // A private key however pasted: cut (`GE-SECRET-KEY-1…`), behind a comment mark, or in lower case (bech32 ignores
  // case: still the same key). Never quoted.
  if (isPrivateKey(value)) {
    throw new InputError(`${where}: that is a private key (AGE-SECRET-KEY-…), not a recipient; it was not shown`, 'give the public key (age1…) printed by `ops keygen` beside it; keep the private key secret (if it was pasted somewhere shared, make a new one)');
  }
  // An SSH public key, which sops 3.10+ and age take as a recipient (agessh, getsops/sops age/keysource.go
  // parseRecipient): public, so shown with what is wrong with it
  if (SSH_RECIPIENT_RE.test(value)) {
    try {
      sshRecipient(value);
    } catch (e) {
      throw new InputError(`${where}: ${value} is not a valid SSH recipient: ${(e as Error).message}`, 'copy the public key line again, whole (the content of its .pub file), or give an age public key (age1…)');
    }
    return value;
  }
  // Several public keys in one value, as .sops.yaml lists them (age1…,age1…): each is given on its own.
  const several = value.split(/[\s,]+/).filter(Boolean);
  if (several.length > 1 && several.every((x) => RECIPIENT_RE.test(x)))
    throw new InputError(`${where}: ${several.length} recipients in one value (${several.join(', ')})`, where === '--recipient' ? 'give one recipient per value: repeat the option (--recipient age1… --recipient age1…)' : `give one recipient per value: run \`ops secrets recipients ${given?.env ?? '<env>'} ${given?.command ?? 'add'} age1…\` once for each`);
  // Quoted only when it is one (a public key: age1… that fails its checksum); anything else may be a secret pasted in
  // the wrong place, said by its shape alone.
  if (!RECIPIENT_RE.test(value)) throw new InputError(`${where}: ${value.startsWith('age1') ? `"${value}"` : `the value given (${value.length} characters, not starting with age1; not shown: it could be a secret)`} is not an age recipient`, 'a recipient looks like age1… (the public key printed by `ops keygen`)');
  try {
    new Encrypter().addRecipient(value);
  } catch {
    throw new InputError(`${where}: "${value}" is not a valid age recipient (bad checksum or length)`, 'copy the public key again, whole');
  }
  return value;
}

/** Wrap the data key for one recipient: an armored age file, as sops stores it in `sops.age[].enc`. */
export async function wrapDataKey(dataKey: Uint8Array, recipient: string): Promise<string> {
  const e = new Encrypter();
  e.addRecipient(SSH_RECIPIENT_RE.test(recipient) ? sshRecipient(recipient) : recipient);
  return armor.encode(await e.encrypt(dataKey));
}

/**
 * Unwrap an armored age file with the given identities; null when none of them matches. Throws on a broken file,
 * and the OpsError of a passphrase-protected SSH key (Identity.locked) when only that key matches.
 */
export async function unwrapDataKey(enc: string, identities: Identity[]): Promise<Uint8Array | null> {
  const d = new Decrypter();
  // a locked SSH key last: it refuses only when no other key opens the file
  for (const id of [...identities.filter((i) => !i.locked), ...identities.filter((i) => i.locked)]) d.addIdentity(id.secret ?? id.ssh!);
  let raw: Uint8Array;
  try {
    raw = armor.decode(enc);
  } catch (e) {
    throw new Error(`its armored age data is malformed (${(e as Error).message})`);
  }
  try {
    return await d.decrypt(raw);
  } catch (e) {
    if (/no identity matched/.test((e as Error).message)) return null;
    if (e instanceof OpsError) throw e;
    throw new Error(`age could not decrypt it (${(e as Error).message})`);
  }
}

export interface NewIdentity {
  secret: string;
  recipient: string;
  /** The key file text, as age-keygen writes it. */
  keyFile: string;
}

/** A new X25519 age identity (readable by Debian's `age` too, unlike post-quantum keys). */
export async function generateIdentity(now = new Date()): Promise<NewIdentity> {
  const secret = await generateX25519Identity();
  const recipient = await identityToRecipient(secret);
  const created = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return { secret, recipient, keyFile: `# created: ${created}\n# public key: ${recipient}\n${secret}\n` };
}
