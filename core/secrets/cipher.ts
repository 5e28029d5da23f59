// sops's value cipher: every leaf is AES-256-GCM under the file's data key, with a 32-byte IV and the
// value's key path as associated data, written `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`; and the MAC,
// a SHA-512 over every value in document order, stored encrypted under the data key.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { parseScalarText, scalarBytes } from './tree-scalars.ts';
import { type ScalarNode, bytesNode } from './tree.ts';

export const IV_BYTES = 32;
export const DATA_KEY_BYTES = 32;

export interface EncValue {
  data: Buffer;
  iv: Buffer;
  tag: Buffer;
  type: string;
}

const ENC_RE = /^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]/;
const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

export class MalformedValue extends Error {}

function b64(field: string, text: string): Buffer {
  if (text.length % 4 !== 0 || !B64_RE.test(text)) throw new MalformedValue(`its ${field} is not valid base64`);
  return Buffer.from(text, 'base64');
}

/** Whether a value is a sops ciphertext (`ENC[AES256_GCM,...]`). */
export function isEncValue(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith('ENC[');
}

/** Parse `ENC[AES256_GCM,…]`; throws MalformedValue saying what is wrong. */
export function parseEnc(value: string): EncValue {
  const m = ENC_RE.exec(value);
  if (!m) throw new MalformedValue('it is not of the form ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]');
  const enc = { data: b64('data', m[1]!), iv: b64('iv', m[2]!), tag: b64('tag', m[3]!), type: m[4]! };
  if (enc.iv.length === 0) throw new MalformedValue('its iv is empty');
  if (enc.tag.length !== 16) throw new MalformedValue(`its tag is ${enc.tag.length} bytes, not 16`);
  return enc;
}

/** The `ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]` text of a ciphertext (sops' format). */
export function formatEnc(enc: EncValue): string {
  return `ENC[AES256_GCM,data:${enc.data.toString('base64')},iv:${enc.iv.toString('base64')},tag:${enc.tag.toString('base64')},type:${enc.type}]`;
}

/**
 * Encrypt `plaintext` with AES-256-GCM under `key` (32 bytes) and `aad` (the value's key path, as sops does),
 * as an ENC[...] value of `type`. `iv`: 32 random bytes unless given (tests).
 */
export function sealText(plaintext: string | Buffer, type: string, key: Buffer, aad: string, iv: Buffer = randomBytes(IV_BYTES)): string {
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(Buffer.from(aad, 'utf8'));
  const data = Buffer.concat([c.update(typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext), c.final()]);
  return formatEnc({ data, iv, tag: c.getAuthTag(), type });
}

/** Decrypt the bytes of an ENC value; throws a plain Error when the tag does not verify. */
export function openBytes(enc: EncValue, key: Buffer, aad: string): Buffer {
  const d = createDecipheriv('aes-256-gcm', key, enc.iv);
  d.setAAD(Buffer.from(aad, 'utf8'));
  d.setAuthTag(enc.tag);
  return Buffer.concat([d.update(enc.data), d.final()]);
}

/** Decrypt an ENC value that must be text (a comment, a typed value); throws a plain Error when the tag does not verify or it is not UTF-8. */
export function openText(enc: EncValue, key: Buffer, aad: string): string {
  const out = openBytes(enc, key, aad);
  const text = out.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(out)) throw new Error('the decrypted bytes are not UTF-8 text');
  return text;
}

/** sops's associated data for a value: its map keys joined with ":" plus a trailing ":" (list indices left out). */
export function aadOf(keys: string[]): string {
  return keys.join(':') + ':';
}

/** A scalar's sops ciphertext (its text and type, see sealText). */
export function encryptScalar(leaf: ScalarNode, key: Buffer, aad: string, iv?: Buffer): string {
  return sealText(scalarBytes(leaf), leaf.type, key, aad, iv);
}

/**
 * The scalar an ENC[...] value holds; a `str` whose bytes are not UTF-8 is a binary value (ScalarNode.bytes), as
 * sops decrypts a YAML `!!binary` one. @throws when the key or the aad (key path) is wrong (the GCM tag fails), or a
 * value of another type is not UTF-8 text.
 */
export function decryptScalar(enc: EncValue, key: Buffer, aad: string): ScalarNode {
  if (enc.type === 'str') return bytesNode(openBytes(enc, key, aad));
  return parseScalarText(openText(enc, key, aad), enc.type);
}

/** sha256("sops"): the first bytes hashed when `mac_only_encrypted` is set. */
const MAC_ONLY_ENCRYPTED_INIT = createHash('sha256').update('sops').digest();

/** Accumulates sops's MAC: SHA-512 over each value's bytes in walk order, as upper-case hex. */
export class MacBuilder {
  private readonly hash = createHash('sha512');
  constructor(macOnlyEncrypted = false) {
    if (macOnlyEncrypted) this.hash.update(MAC_ONLY_ENCRYPTED_INIT);
  }
  add(leaf: ScalarNode): void {
    this.hash.update(scalarBytes(leaf));
  }
  hex(): string {
    return this.hash.digest('hex').toUpperCase();
  }
}
