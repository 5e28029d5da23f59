// SSH host keys as written in known_hosts / *.pub files: "ssh-ed25519 AAAA... [comment]".
import { createHash } from 'node:crypto';

export const HOST_KEY_TYPES = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
] as const;

export interface HostKey {
  type: string;
  /** The raw SSH wire-format key blob (what the server presents during the handshake). */
  blob: Buffer;
}

/**
 * Bytes read from a key as text fit to print: quoted, control and non-ASCII bytes as \xNN (a corrupted key
 * holds NULs that a terminal would swallow or a log turn into ^@), at most 40 characters.
 */
export function printable(text: string, max = 40): string {
  const cut = text.slice(0, max);
  const escaped = cut.replace(/["\\]|[^\x20-\x7e]/g, (c) => (c === '"' || c === '\\' ? `\\${c}` : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
  return `"${escaped}"${text.length > max ? `... (${text.length} bytes)` : ''}`;
}

// A private key (the host's own ssh_host_*_key, or a login key) where its public key was meant: said as that, never
// parsed line by line ("unknown key type", naming its armour or base64)
const PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
const PRIVATE_KEY_REASON = 'a private key, not a public one: pin the public key (the .pub file beside it), and keep the private key out of the repository';

/** Parse a public key line; returns a reason string when it is malformed. */
export function parseHostKey(line: string): HostKey | string {
  if (PRIVATE_KEY.test(line)) return PRIVATE_KEY_REASON;
  const parts = line.trim().split(/\s+/);
  // what `ssh-keygen -lf` prints ("256 SHA256:... root@web1 (ED25519)"): the key's digest, which cannot be pinned
  if (parts.slice(0, 2).some((p) => /^(SHA256|MD5):/.test(p))) return 'a fingerprint, not the key: pin the key line itself (the content of /etc/ssh/ssh_host_ed25519_key.pub, whose fingerprint `ssh-keygen -lf` shows)';
  // a known_hosts line with a marker (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"): a CA's key or a revoked one, not the host's
  if (parts[0] === '@cert-authority') return "a known_hosts @cert-authority line: that key is a CA's, which signs host certificates, not the host's own key; pin the host's key (its /etc/ssh/ssh_host_ed25519_key.pub, or `ssh-keyscan -t ed25519 <host>`)";
  if (parts[0] === '@revoked') return "a known_hosts @revoked line: that key is one the host must NOT have; pin the host's current key";
  // Tolerate a known_hosts line ("host ssh-ed25519 AAAA...", "|1|salt|hash ssh-ed25519 AAAA...").
  if (parts.length >= 3 && !(HOST_KEY_TYPES as readonly string[]).includes(parts[0]!)) parts.shift();
  const [type, b64] = parts;
  if (!type || !b64) return 'expected "<type> <base64>"';
  if (/-cert-v0\d@openssh\.com$/.test(type)) return `a host certificate (${type}), not the host's key: pin its plain key (ssh_host_*_key.pub beside ssh_host_*_key-cert.pub)`;
  if (!(HOST_KEY_TYPES as readonly string[]).includes(type)) return `unknown key type ${printable(type)}${type === 'ssh-dss' ? ' (DSA, which OpenSSH no longer offers)' : ''}: a host key is one of ${HOST_KEY_TYPES.join(', ')}`;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return 'the key is not base64';
  const blob = Buffer.from(b64, 'base64');
  if (blob.length < 4) return 'the key is truncated';
  const len = blob.readUInt32BE(0);
  const inner = blob.subarray(4, 4 + len).toString('latin1');
  const expected = type.startsWith('rsa-sha2') ? 'ssh-rsa' : type;
  if (inner !== expected) return `the key data is of type ${printable(inner)}, not "${type}"`;
  if (type === 'ssh-ed25519' && blob.length !== 51) return 'an ed25519 key is 51 bytes long';
  return { type: expected, blob };
}

/**
 * Every key of a pinned text: one key per line, as known_hosts and `ssh-keyscan` give them (comment lines such as
 * "# web1:22 SSH-2.0-OpenSSH_9.2" and blank ones skipped). A host whose key is any of them is accepted, as
 * OpenSSH accepts any key known_hosts lists for a host; a reason string when a line is malformed or none is there.
 */
export function parseHostKeys(text: string): HostKey[] | string {
  if (PRIVATE_KEY.test(text)) return PRIVATE_KEY_REASON;
  const lines = text.split(/\r?\n/).map((l, i) => ({ line: l, n: i + 1 })).filter(({ line }) => !/^\s*(#|$)/.test(line));
  if (!lines.length) return 'expected "<type> <base64>"';
  const keys: HostKey[] = [];
  for (const { line, n } of lines) {
    const key = parseHostKey(line);
    if (typeof key === 'string') return lines.length > 1 ? `line ${n}: ${key}` : key;
    keys.push(key);
  }
  return keys;
}

/**
 * The host key `ops env new` pins until the VM's own is pasted in: an ed25519 key line whose 32 key bytes are the
 * ASCII text "ops env new placeholder host key", which no machine presents (no one chose it as a key pair, and a
 * key pair is drawn at random), so that a host still pinned to it is refused as a placeholder to replace, before
 * any connection, rather than said to present a different key (isPlaceholderHostKey).
 */
export const PLACEHOLDER_HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9wcyBlbnYgbmV3IHBsYWNlaG9sZGVyIGhvc3Qga2V5';

/** Whether every key of `pinned` (parseHostKeys) is the placeholder `ops env new` writes (PLACEHOLDER_HOST_KEY). */
export function isPlaceholderHostKey(pinned: HostKey[]): boolean {
  const placeholder = (parseHostKey(PLACEHOLDER_HOST_KEY) as HostKey).blob;
  return pinned.length > 0 && pinned.every((k) => k.blob.equals(placeholder));
}

/** OpenSSH's fingerprint format: SHA256:<base64 without padding>. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type inside a wire-format blob. */
export function blobType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const type = blob.subarray(4, 4 + blob.readUInt32BE(0)).toString('latin1');
  // What a server presents is printed: anything but a plain name is shown escaped (printable).
  return /^[\x21-\x7e]{1,64}$/.test(type) ? type : printable(type);
}
