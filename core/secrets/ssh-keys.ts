// SSH keys as age recipients and identities (age's agessh, which sops 3.10+ uses): a data key wrapped for an
// `ssh-ed25519 AAAA…` or `ssh-rsa AAAA…` recipient, opened with the user's SSH private key. The rules are
// filippo.io/age v1.3.1 agessh/agessh.go (the age sops 3.13.3 is built with); the key files are found as
// getsops/sops v3.13.3 age/keysource.go loadAgeSSHIdentities and age/ssh_parse.go read them.
import { createHash, createPrivateKey, createPublicKey, hkdfSync, privateDecrypt, publicEncrypt, randomBytes, createCipheriv, createDecipheriv, constants, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { type Identity as AgeIdentity, type Recipient as AgeRecipient, Stanza } from 'age-encryption';
import ssh2 from 'ssh2';
import { KeyUnavailable, OpsError, fileError, messageLine, userFileExists } from '../errors.ts';
import { homeDir, noHomeReason } from '../home.ts';
import { quote } from '../shell.ts';
import { NoKeyCommand } from './key-cmd.ts';

/** An SSH public key as sops and age take it for a recipient (`ssh-ed25519 AAAA…`, `ssh-rsa AAAA…`, a comment after it). */
export const SSH_RECIPIENT_RE = /^ssh-(ed25519|rsa) AAAA[0-9A-Za-z+/=]+( .*)?$/;

/** What a recipient is compared by: an SSH one by its type and key (its comment, `ana@laptop`, is no part of it). */
export function recipientKey(r: string): string {
  return SSH_RECIPIENT_RE.test(r) ? r.split(' ').slice(0, 2).join(' ') : r;
}

const ED25519_LABEL = 'age-encryption.org/v1/ssh-ed25519';
const OAEP_LABEL = Buffer.from('age-encryption.org/v1/ssh-rsa');
const FILE_KEY_BYTES = 16;

/** base64 without padding, as age writes stanza arguments (format.EncodeToString). */
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64').replace(/=+$/, '');

/** agessh sshFingerprint: the first 4 bytes of SHA-256 of the key in SSH wire form. */
const fingerprint = (blob: Uint8Array) => b64(createHash('sha256').update(blob).digest().subarray(0, 4));

/** The SSH wire fields (uint32-length-prefixed strings) of a public key blob; throws on a short blob. */
function wireFields(blob: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < blob.length; ) {
    if (at + 4 > blob.length) throw new Error('truncated key');
    const n = blob.readUInt32BE(at);
    if (at + 4 + n > blob.length) throw new Error('truncated key');
    out.push(blob.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return out;
}

/** age's tweak for ssh-ed25519 (HKDF-SHA256, no secret, the key's wire form as salt). */
const tweakOf = (blob: Uint8Array) => new Uint8Array(hkdfSync('sha256', Buffer.alloc(0), blob, ED25519_LABEL, 32));

function seal(key: Uint8Array, plain: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, Buffer.alloc(12), { authTagLength: 16 });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

function open(key: Uint8Array, body: Uint8Array): Buffer {
  // agessh aeadDecrypt: a file key wrapped is exactly 16 bytes and its tag
  if (body.length !== FILE_KEY_BYTES + 16) throw new Error('invalid ssh-ed25519 stanza body length');
  const d = createDecipheriv('chacha20-poly1305', key, Buffer.alloc(12), { authTagLength: 16 });
  d.setAuthTag(body.subarray(FILE_KEY_BYTES));
  return Buffer.concat([d.update(body.subarray(0, FILE_KEY_BYTES)), d.final()]);
}

/** The wrapping key shared by an ephemeral share and the recipient's X25519 key (agessh Wrap/unwrap). */
function wrappingKey(shared: Uint8Array, blob: Uint8Array, share: Uint8Array, theirs: Uint8Array): Uint8Array {
  const tweaked = x25519.scalarMult(tweakOf(blob), shared);
  return new Uint8Array(hkdfSync('sha256', tweaked, Buffer.concat([share, theirs]), ED25519_LABEL, 32));
}

/**
 * An age recipient for an SSH public key line (`ssh-ed25519 AAAA… [comment]`, `ssh-rsa AAAA…`), checked as agessh
 * ParseRecipient checks it: a valid Ed25519 point, an RSA key of 2048 bits or more. Throws an Error saying what is
 * wrong (the line is public: callers may show it).
 */
export function sshRecipient(line: string): AgeRecipient {
  const [type, body] = line.trim().split(/\s+/);
  const blob = Buffer.from(body ?? '', 'base64');
  const fields = wireFields(blob);
  if (fields[0]?.toString() !== type) throw new Error(`its key is not of the type it names (${type})`);
  const fp = fingerprint(blob);
  if (type === 'ssh-ed25519') {
    if (fields.length !== 2 || fields[1]!.length !== 32) throw new Error('an ssh-ed25519 key is 32 bytes');
    let theirs: Uint8Array;
    try {
      theirs = ed25519.utils.toMontgomery(fields[1]!);
    } catch {
      throw new Error('it is not a valid Ed25519 public key');
    }
    return {
      wrapFileKey(fileKey: Uint8Array): Stanza[] {
        const ephemeral = randomBytes(32);
        const share = x25519.getPublicKey(ephemeral);
        const key = wrappingKey(x25519.scalarMult(ephemeral, theirs), blob, share, theirs);
        return [new Stanza(['ssh-ed25519', fp, b64(share)], seal(key, fileKey))];
      },
    };
  }
  if (type === 'ssh-rsa') {
    if (fields.length !== 3) throw new Error('malformed ssh-rsa key');
    const unsigned = (b: Buffer) => b.subarray(b.findIndex((x) => x !== 0));
    const pub = createPublicKey({ key: { kty: 'RSA', e: unsigned(fields[1]!).toString('base64url'), n: unsigned(fields[2]!).toString('base64url') }, format: 'jwk' });
    if ((pub.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) throw new Error('its RSA key is shorter than 2048 bits (age refuses it)');
    return { wrapFileKey: (fileKey) => [new Stanza(['ssh-rsa', fp], publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: OAEP_LABEL }, fileKey))] };
  }
  throw new Error(`unknown SSH recipient type ${type}`);
}

/** The stanza of `stanzas` for this key (by type and fingerprint), as agessh multiUnwrap picks it. */
function stanzaFor(stanzas: Stanza[], type: string, fp: string): Stanza | undefined {
  return stanzas.find((s) => s.args[0] === type && s.args[1] === fp);
}

/** An SSH private key (`priv`, its public key in SSH wire form `blob`) as an age identity (agessh Ed25519Identity, RSAIdentity). */
function identityOf(type: 'ssh-ed25519' | 'ssh-rsa', priv: KeyObject, blob: Buffer): AgeIdentity {
  const fp = fingerprint(blob);
  if (type === 'ssh-ed25519') {
    // agessh ed25519PrivateKeyToCurve25519: the first half of SHA-512 of the seed
    const secret = createHash('sha512').update(Buffer.from(priv.export({ format: 'jwk' }).d!, 'base64url')).digest().subarray(0, 32);
    const ours = x25519.getPublicKey(secret);
    return {
      unwrapFileKey(stanzas) {
        const s = stanzaFor(stanzas, 'ssh-ed25519', fp);
        if (!s) return null;
        const share = Buffer.from(s.args[2] ?? '', 'base64');
        if (s.args.length !== 3 || share.length !== 32) throw new Error('invalid ssh-ed25519 recipient block');
        return open(wrappingKey(x25519.scalarMult(secret, share), blob, share, ours), s.body);
      },
    };
  }
  return {
    unwrapFileKey(stanzas) {
      const s = stanzaFor(stanzas, 'ssh-rsa', fp);
      if (!s) return null;
      if (s.args.length !== 2) throw new Error('invalid ssh-rsa recipient block');
      return privateDecrypt({ key: priv, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: OAEP_LABEL }, s.body);
    },
  };
}

/** One SSH identity found: usable, or locked by a passphrase (`locked`, its public key known or not). */
export interface SshIdentity {
  /** `ssh-ed25519 AAAA…` (no comment). */
  recipient: string;
  source: string;
  identity: AgeIdentity;
  /** Set for a passphrase-protected key: the refusal, thrown only when a file needs this key. */
  locked?: OpsError;
}

export interface SshIdentities {
  identities: SshIdentity[];
  /** Every place looked at, with what was found there. */
  tried: string[];
  /** Keys that could not be read (malformed, unsupported type): said only when no key opens a file, as sops says them. */
  problems: string[];
}

/** The public key stored unencrypted in an OpenSSH private key file (its header), or undefined. */
function openSshPublicBlob(text: string): Buffer | undefined {
  const m = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(text);
  if (!m) return undefined;
  const raw = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
  const magic = 'openssh-key-v1\0';
  if (raw.subarray(0, magic.length).toString('latin1') !== magic) return undefined;
  try {
    // ciphername, kdfname, kdfoptions, then the number of keys and the first public key
    const rest = raw.subarray(magic.length);
    let at = 0;
    for (let i = 0; i < 3; i++) at += 4 + rest.readUInt32BE(at);
    at += 4;
    const n = rest.readUInt32BE(at);
    return rest.subarray(at + 4, at + 4 + n);
  } catch {
    return undefined;
  }
}

/**
 * The refusal for a passphrase-protected SSH key a file needs: sops asks for the passphrase at a terminal; ops,
 * run from scripts and CI alike, asks for none. Names the key file, never shows it.
 */
function lockedKey(source: string, fromCmd: boolean): KeyUnavailable {
  if (fromCmd) return new KeyUnavailable(`the SSH key SOPS_AGE_SSH_PRIVATE_KEY_CMD printed is protected by a passphrase (not shown)`, 'have the command print the key without a passphrase (sops refuses it too)');
  const copy = `${source}.sops`;
  return new KeyUnavailable(
    `${source}, the SSH key this file is encrypted to, is protected by a passphrase: ops does not ask for passphrases (sops asks at a terminal)`,
    `give ops a copy without one, kept private: cp ${quote(source)} ${quote(copy)} && ssh-keygen -p -N '' -f ${quote(copy)} && export SOPS_AGE_SSH_PRIVATE_KEY_FILE=${quote(copy)} (ssh-keygen asks the old passphrase; sops reads that variable too); or use an age key: \`ops keygen\`, added as a recipient by someone who can decrypt, in SOPS_AGE_KEY_FILE`,
  );
}

/** Read one SSH private key text as sops does (agessh.ParseIdentity); `where` names it in messages. */
function readSshKey(text: Buffer, source: string, pubFile: string | undefined, out: SshIdentities): void {
  const parsed = ssh2.utils.parseKey(text);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (key instanceof Error || !key) {
    if (key && /passphrase/i.test(key.message)) {
      // locked: its public key from the OpenSSH header, else the .pub beside it (as sops's readPublicKeyFile)
      let blob = openSshPublicBlob(text.toString('latin1'));
      if (!blob && pubFile) {
        try {
          blob = Buffer.from(readFileSync(pubFile, 'utf8').trim().split(/\s+/)[1] ?? '', 'base64');
        } catch {
          /* not there: said below */
        }
      }
      // no .pub to look at: the key came from SOPS_AGE_SSH_PRIVATE_KEY_CMD
      const locked = lockedKey(source, !pubFile);
      if (!blob || !blob.length) {
        out.problems.push(`${source}: protected by a passphrase, and its public key is unknown${pubFile ? ` (no ${pubFile})` : ''}: ops does not ask for passphrases`);
        out.tried.push(`${source} (an SSH key protected by a passphrase)`);
        return;
      }
      let type = '';
      try {
        type = wireFields(blob)[0]?.toString() ?? '';
      } catch {
        /* a broken .pub: no type, no stanza matches it */
      }
      const fp = fingerprint(blob);
      out.identities.push({
        recipient: `${type} ${blob.toString('base64')}`,
        source,
        locked,
        identity: { unwrapFileKey: (stanzas) => (stanzaFor(stanzas, type, fp) ? Promise.reject(locked) : null) },
      });
      out.tried.push(`${source} (an SSH key protected by a passphrase)`);
      return;
    }
    const p8 = pkcs8Key(text);
    if (p8) {
      out.identities.push({ recipient: `${p8.type} ${p8.blob.toString('base64')}`, source, identity: identityOf(p8.type, p8.priv, p8.blob) });
      out.tried.push(`${source} (an ${p8.type} key)`);
      return;
    }
    out.problems.push(`${source}: not an SSH private key ops and sops can read (${key ? key.message : 'no key found'})`);
    out.tried.push(`${source} (unreadable SSH key)`);
    return;
  }
  if (!key.isPrivateKey()) {
    out.problems.push(`${source}: an SSH public key (what its .pub holds), not the private key`);
    out.tried.push(`${source} (a public key)`);
    return;
  }
  if (key.type !== 'ssh-ed25519' && key.type !== 'ssh-rsa') {
    out.problems.push(`${source}: an ${key.type} SSH key, which age cannot decrypt with (ssh-ed25519 and ssh-rsa only)`);
    out.tried.push(`${source} (${key.type}: unsupported)`);
    return;
  }
  out.identities.push({ recipient: `${key.type} ${key.getPublicSSH().toString('base64')}`, source, identity: identityOf(key.type, createPrivateKey(key.getPrivatePEM()), key.getPublicSSH()) });
  out.tried.push(`${source} (an ${key.type} key)`);
}

/** SSH wire form: a uint32-length-prefixed string; an mpint (unsigned, minimal, a 0 before a high bit). */
const wireString = (b: Buffer) => Buffer.concat([Buffer.from([b.length >>> 24, (b.length >>> 16) & 255, (b.length >>> 8) & 255, b.length & 255]), b]);
const mpint = (b: Buffer) => {
  const bare = b.subarray(Math.max(0, b.findIndex((x) => x !== 0)));
  return wireString(bare[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bare]) : bare);
};

/**
 * A PKCS#8 key (`-----BEGIN PRIVATE KEY-----`, as `ssh-keygen -m PKCS8` writes RSA keys), which sops reads
 * (x/crypto/ssh ParseRawPrivateKey) and ssh2 does not: read with node's crypto, its public key put in SSH wire form.
 * Undefined for other text or another key type.
 */
function pkcs8Key(text: Buffer): { type: 'ssh-ed25519' | 'ssh-rsa'; priv: KeyObject; blob: Buffer } | undefined {
  if (!/-----BEGIN PRIVATE KEY-----/.test(text.toString('latin1'))) return undefined;
  let priv: KeyObject;
  try {
    priv = createPrivateKey(text);
  } catch {
    return undefined;
  }
  const jwk = priv.export({ format: 'jwk' });
  const b = (s?: string) => Buffer.from(s ?? '', 'base64url');
  if (priv.asymmetricKeyType === 'ed25519') return { type: 'ssh-ed25519', priv, blob: Buffer.concat([wireString(Buffer.from('ssh-ed25519')), wireString(b(jwk.x))]) };
  if (priv.asymmetricKeyType === 'rsa') return { type: 'ssh-rsa', priv, blob: Buffer.concat([wireString(Buffer.from('ssh-rsa')), mpint(b(jwk.e)), mpint(b(jwk.n))]) };
  return undefined;
}

/**
 * The user's SSH identities, from where sops 3.13.3 reads them, all of them, in its order:
 * `$SOPS_AGE_SSH_PRIVATE_KEY_FILE`, the output of `$SOPS_AGE_SSH_PRIVATE_KEY_CMD` (`run`: key-cmd.ts runKeyCommand, as
 * sops runs it; its NoKeyCommand is thrown, its other errors are problems), then `~/.ssh/id_ed25519` and
 * `~/.ssh/id_rsa` (each when it exists). A key that cannot be used is not an error here (as in sops): it is in
 * `problems`, said when no key opens a file; a passphrase-protected one refuses (SshIdentity.locked) only when a file
 * is encrypted to it. Key material is never put in a message.
 */
export function loadSshIdentities(processEnv: NodeJS.ProcessEnv, run: (cmd: string) => Buffer): SshIdentities {
  const out: SshIdentities = { identities: [], tried: [], problems: [] };
  const file = processEnv.SOPS_AGE_SSH_PRIVATE_KEY_FILE;
  if (file !== undefined) {
    try {
      readSshKey(readFileSync(file), file, `${file}.pub`, out);
    } catch (e) {
      out.problems.push(`SOPS_AGE_SSH_PRIVATE_KEY_FILE: ${fileError(e, file, 'read', 'an SSH private key').message}`);
      out.tried.push(`SOPS_AGE_SSH_PRIVATE_KEY_FILE=${file} (unreadable)`);
    }
  }
  const cmd = processEnv.SOPS_AGE_SSH_PRIVATE_KEY_CMD;
  if (cmd !== undefined) {
    let text: Buffer | undefined;
    try {
      text = run(cmd);
    } catch (e) {
      if (e instanceof NoKeyCommand) throw e;
      out.problems.push(`${messageLine(e)}${e instanceof OpsError && e.hint ? ` (to fix: ${e.hint})` : ''}`);
      out.tried.push('SOPS_AGE_SSH_PRIVATE_KEY_CMD (failed)');
    }
    try {
      if (text) readSshKey(text, 'SOPS_AGE_SSH_PRIVATE_KEY_CMD', undefined, out);
    } catch (e) {
      out.problems.push(`SOPS_AGE_SSH_PRIVATE_KEY_CMD printed no SSH private key ops and sops can read (${messageLine(e)}; not shown)`);
    }
  }
  const home = homeDir(processEnv);
  if (home) {
    for (const name of ['id_ed25519', 'id_rsa']) {
      const path = join(home, '.ssh', name);
      try {
        if (userFileExists(path, path, 'an SSH private key')) readSshKey(readFileSync(path), path, `${path}.pub`, out);
      } catch (e) {
        out.problems.push(e instanceof OpsError ? e.message : fileError(e, path, 'read', 'an SSH private key').message);
      }
    }
  } else out.tried.push(`~/.ssh/id_ed25519, ~/.ssh/id_rsa (${noHomeReason(processEnv)})`);
  return out;
}
