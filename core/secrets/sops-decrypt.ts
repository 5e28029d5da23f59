// Reading a sops file: unwrap the data key with one of the user's age identities (or enough Shamir key
// groups), decrypt every value with its key path as associated data, recompute the MAC exactly as sops does and
// compare it with the stored one. Anything wrong is an OpsError and nothing is returned.
import { KeyUnavailable, NoAgeIdentity, OpsError } from '../errors.ts';
import { DATA_KEY_BYTES, MacBuilder, MalformedValue, aadOf, decryptScalar, openText, parseEnc } from './cipher.ts';
import { type Identities, type Identity, defaultKeyFile, loadIdentities, recipientKey, unwrapDataKey } from './keys.ts';
import { combineShares } from './shamir.ts';
import { type AgeStanza, type EncryptedDocument, addRecipientHint, canonicalLastModified, editCommand, encryptionRule } from './sops-metadata.ts';
import { NEGATIVE_ZERO_FIX, NEGATIVE_ZERO_WHY, isPlainZero } from './plain-zero.ts';
import { maskedTexts, scalarText } from './tree-scalars.ts';
import { type CommentNode, type ListNode, type MapNode, type ScalarNode, type TreeNode, showPath, walkTree } from './tree.ts';

/** IVs of decrypted values, by (path, plaintext): re-encrypting an unchanged value gives the same ciphertext. */
/**
 * What the IV stash knows a value by: its text, a binary value's bytes kept apart (so that a text value equal to
 * a binary value's base64 never takes its IV: one IV, two plaintexts, would break AES-GCM).
 */
export function stashText(leaf: ScalarNode): string {
  return leaf.bytes ? `b${leaf.value as string}` : `t${scalarText(leaf)}`;
}

export class IvStash {
  private readonly ivs = new Map<string, Buffer[]>();
  private static key(aad: string, text: string): string {
    return `${aad}\u0000${text}`;
  }
  put(aad: string, text: string, iv: Buffer): void {
    const k = IvStash.key(aad, text);
    const list = this.ivs.get(k);
    if (list) list.push(iv);
    else this.ivs.set(k, [iv]);
  }
  /** Each IV is handed out once: two equal values in one list do not become two equal ciphertexts. */
  take(aad: string, text: string): Buffer | undefined {
    return this.ivs.get(IvStash.key(aad, text))?.shift();
  }
  copy(): IvStash {
    const c = new IvStash();
    for (const [k, v] of this.ivs) c.ivs.set(k, [...v]);
    return c;
  }
  clear(): void {
    this.ivs.clear();
  }
}

/** The first of these stanzas that one of the identities opens (the user's own first), and what went wrong with the others. */
async function unwrapAny(stanzas: AgeStanza[], ids: Identities): Promise<{ key?: Buffer; problems: string[]; locked?: OpsError }> {
  const mine = new Set(ids.identities.map((i) => i.recipient));
  const ordered = [...stanzas.filter((s) => mine.has(recipientKey(s.recipient))), ...stanzas.filter((s) => !mine.has(recipientKey(s.recipient)))];
  const problems: string[] = [];
  let locked: OpsError | undefined;
  for (const stanza of ordered) {
    try {
      const key = await unwrapDataKey(stanza.enc, ids.identities);
      if (key) return { key: Buffer.from(key), problems };
    } catch (e) {
      // a passphrase-protected SSH key: said only when no other stanza opens
      if (e instanceof OpsError) locked ??= e;
      else problems.push(`the data key for ${stanza.recipient}: ${(e as Error).message}`);
    }
  }
  return { problems, ...(locked && { locked }) };
}

/**
 * What to say of a file encrypted to SSH public keys (`ssh-ed25519 …`, `ssh-rsa …` recipients, which sops 3.10+ and
 * ops decrypt with the SSH private key: ssh-keys.ts loadSshIdentities) that no key of the user's opened: where the
 * SSH key is looked for, and what was wrong with the keys found there (`problems`). Undefined when it has none.
 */
function sshRecipients(stanzas: AgeStanza[], file: string, ids: Identities): { said: string; fix: string; all: boolean } | undefined {
  const ssh = stanzas.filter((s) => /^ssh-/.test(s.recipient));
  if (!ssh.length) return undefined;
  const all = ssh.length === stanzas.length;
  const problems = ids.problems?.length ? `; SSH keys that could not be used: ${ids.problems.join('; ')}` : '';
  return {
    said: `; ${all ? 'it is encrypted only' : `${ssh.length} of its recipients are`} to SSH public keys (${[...new Set(ssh.map((s) => s.recipient.split(' ')[0]))].join(', ')}), which ops, as sops, decrypts with your SSH private key, looked for in SOPS_AGE_SSH_PRIVATE_KEY_FILE, SOPS_AGE_SSH_PRIVATE_KEY_CMD, ~/.ssh/id_ed25519 and ~/.ssh/id_rsa${problems}`,
    fix: `point SOPS_AGE_SSH_PRIVATE_KEY_FILE at the SSH private key whose public key is a recipient of ${file} (an ssh-ed25519 or ssh-rsa key, without a passphrase), or have someone who can decrypt it add a key of yours (\`ops keygen\` makes an age one; ${addRecipientHint(file)})`,
    all,
  };
}

/**
 * The data key, from the stanzas of `sops.age`, or with key groups from `shamir_threshold` groups' shares
 * (sops.go GetDataKeyWithKeyServices). Throws OpsError saying which keys were tried and what is missing: a
 * KeyUnavailable where this machine lacks a key that opens it (none found, none a recipient, a passphrase-protected
 * SSH key, too few key groups), a plain OpsError where the file is at fault (no age recipients, a stored data key
 * that its own recipient's key does not open, shares that do not combine).
 */
export async function recoverDataKey(doc: EncryptedDocument, ids: Identities): Promise<Buffer> {
  const { file, meta } = doc;
  const stanzas = meta.keyGroups ? meta.keyGroups.flat() : meta.age;
  if (stanzas.length === 0) {
    const others = meta.foreign.length ? ` (it has ${meta.foreign.join(', ')} keys, which this tool cannot use)` : '';
    throw new OpsError(`${file} has no age recipients${others}`, 'decrypt it with the sops binary, or re-encrypt it to age recipients');
  }
  const ssh = sshRecipients(stanzas, file, ids);
  if (ids.identities.length === 0) {
    throw new NoAgeIdentity(
      `no ${ssh ? 'age identity or SSH key' : 'age identity'} to decrypt ${file}: looked in ${ids.tried.join(', ')}${ssh?.said ?? ''}`,
      ssh && ssh.all ? ssh.fix : `${ssh ? `${ssh.fix}; or ` : ''}set SOPS_AGE_KEY_FILE to your age key file (or SOPS_AGE_KEY to the key itself), or put the key in ${ids.defaultFile ?? defaultKeyFile()}${(ids.defaultFile ?? defaultKeyFile()).startsWith('~') ? ' once HOME names your home directory' : ''}: the one \`ops env new\` printed, or your own once someone who can decrypt added it (\`ops keygen\` makes it; a new key alone decrypts nothing)`,
    );
  }
  if (meta.keyGroups && meta.keyGroups.length > 1) {
    const threshold = meta.shamirThreshold || meta.keyGroups.length;
    const shares: Buffer[] = [];
    const opened: number[] = [];
    let locked: OpsError | undefined;
    for (const [i, group] of meta.keyGroups.entries()) {
      const { key, locked: l } = await unwrapAny(group, ids);
      locked ??= l;
      if (key) {
        shares.push(key);
        opened.push(i + 1);
      }
    }
    if (shares.length < threshold) {
      if (locked) throw locked;
      throw new KeyUnavailable(
        `${file} is split into ${meta.keyGroups.length} key groups (Shamir), ${threshold} of which are needed; your age identities open ${shares.length}${opened.length ? ` (group ${opened.join(', ')})` : ''}`,
        'give SOPS_AGE_KEY (one key per line) or SOPS_AGE_KEY_FILE the keys of enough groups',
      );
    }
    let key: Buffer;
    try {
      key = combineShares(shares);
    } catch (e) {
      throw new OpsError(`${file}: the key groups' shares do not combine: ${(e as Error).message}`, 'restore the file from git history');
    }
    if (key.length !== DATA_KEY_BYTES) throw new OpsError(`${file}: the data key from the key groups is ${key.length} bytes, not ${DATA_KEY_BYTES}`, 'restore the file from git history');
    return key;
  }
  const { key, problems, locked } = await unwrapAny(stanzas, ids);
  if (key?.length === DATA_KEY_BYTES) return key;
  if (key) problems.push(`the data key is ${key.length} bytes, not ${DATA_KEY_BYTES}`);
  else if (locked) throw locked;
  const listed = ids.identities.find((i) => stanzas.some((s) => recipientKey(s.recipient) === i.recipient));
  if (listed) {
    throw new OpsError(
      `${file}: the data key stored for ${listed.recipient} (your key from ${listed.source}) does not decrypt with that key${problems.length ? ` (${problems.join('; ')})` : ''}`,
      'the sops.age section was changed: restore the file from git history, or ask another recipient to re-add you',
    );
  }
  const yours = ids.identities.map((i) => i.recipient).join(', ');
  throw new KeyUnavailable(
    `none of your ${ids.identities.some((i) => i.ssh) ? 'keys' : 'age identities'} (${yours}) is a recipient of ${file}; its recipients are: ${stanzas.map((s) => s.recipient).join(', ')}${ssh?.said ?? ''}`,
    ssh ? `${ssh.fix}; or point SOPS_AGE_KEY_FILE at the right key (looked in: ${ids.tried.join(', ')})` : `ask someone who can decrypt it to add your public key (${addRecipientHint(file)}), or point SOPS_AGE_KEY_FILE at the right key (looked in: ${ids.tried.join(', ')})`,
  );
}

export interface DecryptOptions {
  /** Identities to try; default: loadIdentities(env). */
  identities?: Identities | Identity[];
  processEnv?: NodeJS.ProcessEnv;
  /**
   * Called with every decrypted value (strings, numbers), and each line of a multi-line one, after the
   * MAC verified and before anything is returned. Pass `reporter.mask`.
   */
  mask?: (value: string) => void;
  /**
   * Called with every key name and key path (as messages print them: a.b, list[0].c, and without indices) once the
   * MAC is verified: no secrets (sops keeps them in clear text). Pass `reporter.allow`, so that a value occurring
   * inside a key's name does not mask it where ops names it.
   */
  allow?: (text: string) => void;
  /** Told what a save of the file waits for (a lock held by another command: atomic.ts, takeLock); default: stderr. Never given a value. */
  warn?: (message: string) => void;
  /** Ends a save's wait for the file's lock (the command's Ctrl-C): nothing written, InterruptedError (atomic.ts, takeLock). */
  signal?: AbortSignal;
}

/** The identities to try: those given, else the ones sops would find ($SOPS_AGE_KEY, ..._FILE, ..._CMD, the default file). */
export async function resolveIdentities(opts: DecryptOptions): Promise<Identities> {
  const ids = opts.identities;
  if (!ids) return loadIdentities(opts.processEnv ?? process.env);
  if (Array.isArray(ids)) return { identities: ids, tried: ids.map((i) => i.source) };
  return ids;
}

interface Decrypted {
  plain: MapNode;
  stash: IvStash;
  secrets: ScalarNode[];
}

/**
 * Every value of a parsed sops document decrypted with the data key (its key path as associated data), the
 * MAC recomputed as sops does and compared. @returns the plain tree, the IVs to reuse for unchanged values,
 * the secret scalars. @throws OpsError for a wrong key, a tampered value or a MAC that differs.
 */
export function decryptTree(doc: EncryptedDocument, key: Buffer): Decrypted {
  const { file, meta } = doc;
  const shouldEncrypt = encryptionRule(file, meta);
  const mac = new MacBuilder(meta.macOnlyEncrypted);
  // what the MAC covers, in order, and where a plain zero stands in it (it may be a -0.0 sops wrote as `-0`: plain-zero.ts)
  const hashed: ScalarNode[] = [];
  const plainZeros: { at: number; path: string }[] = [];
  const stash = new IvStash();
  const secrets: ScalarNode[] = [];
  const restore = `restore ${file} from git history (\`git checkout -- ${file}\`), or set the value again with \`ops secrets set\``;
  const plain = walkTree(doc.data, {
    leaf: (leaf, keys, path, stack) => {
      const encrypted = shouldEncrypt(keys, stack);
      let value: ScalarNode = leaf;
      if (encrypted) {
        if (leaf.type !== 'str') {
          throw new OpsError(`${file}: ${showPath(path)} is a plain ${leaf.type} where an encrypted value belongs (the file was edited by hand)`, restore);
        }
        if (leaf.value !== '') {
          const aad = aadOf(keys);
          let enc;
          try {
            enc = parseEnc(leaf.value as string);
          } catch (e) {
            if (e instanceof MalformedValue) throw new OpsError(`${file}: ${showPath(path)}: malformed encrypted value: ${e.message}`, restore);
            throw e;
          }
          try {
            value = decryptScalar(enc, key, aad);
          } catch (e) {
            const why = /unable to authenticate|Unsupported state/i.test((e as Error).message)
              ? 'its ciphertext was changed, or it was moved from another key'
              : (e as Error).message;
            throw new OpsError(`${file}: ${showPath(path)} does not decrypt: ${why}`, restore);
          }
          stash.put(aad, stashText(value), enc.iv);
          secrets.push(value);
        }
      }
      if (!meta.macOnlyEncrypted || encrypted) {
        mac.add(value);
        if (!encrypted && isPlainZero(value)) plainZeros.push({ at: hashed.length, path: showPath(path) });
        hashed.push(value);
      }
      return value;
    },
    // Comments: encrypted with the path of the map sops placed them in, not in the MAC. One that does not decrypt
    // stays as it is (sops: "possibly unencrypted comment").
    comment: (c, keys, stack, branch) => {
      if (!shouldEncrypt(keys, stack, true) || !c.text.startsWith('ENC[')) return c;
      let enc;
      try {
        enc = parseEnc(c.text);
      } catch {
        return c;
      }
      for (const path of commentPaths(keys, branch)) {
        const aad = aadOf(path);
        try {
          const text = openText(enc, key, aad);
          stash.put(`#${aad}`, text, enc.iv);
          return { ...c, text };
        } catch {
          // not this level
        }
      }
      return c;
    },
  });
  // The MAC: stored encrypted under the data key, with lastmodified as associated data
  if (!meta.mac) throw new OpsError(`${file} has no MAC (sops.mac is empty)`, 'a sops file always has one: restore the file from git history');
  let stored: string;
  try {
    stored = openText(parseEnc(meta.mac), key, canonicalLastModified(file, meta.lastModified));
  } catch (e) {
    const why = e instanceof MalformedValue ? `it is malformed: ${e.message}` : 'sops.mac or sops.lastmodified was changed';
    throw new OpsError(`${file}: the stored MAC cannot be read: ${why}`, 'restore the file from git history');
  }
  const computed = mac.hex();
  if (stored !== computed) {
    const zeros = negativeZerosSealed(hashed, plainZeros, meta.macOnlyEncrypted, stored);
    if (zeros) {
      const one = zeros.length === 1;
      throw new OpsError(
        `${file}: MAC mismatch, from a sops bug, not a change: ${zeros.join(', ')} ${one ? 'is' : 'are'} stored in plain text (not encrypted) as a zero, sealed as the float -0.0: ${NEGATIVE_ZERO_WHY}`,
        `in ${file}, write ${one ? 'that value' : 'those values'} back as \`-0.0\` (what sops sealed: sops and ops then read the file), then, with \`${editCommand(file)}\`, ${NEGATIVE_ZERO_FIX}, so that no later rewrite by sops breaks it again`,
      );
    }
    throw new OpsError(
      `${file}: MAC mismatch: its values are not the ones sops sealed (a value was deleted, added, replaced or reordered)`,
      `the file was changed without sops or ops: restore it from git history (\`git checkout -- ${file}\`, or \`git log -p ${file}\` to find the change)`,
    );
  }
  return { plain, stash, secrets };
}

/**
 * The plain zeros (`zeros`, indexes into `hashed`, the MAC's values in order) that, taken as the float -0.0, make
 * the MAC `stored`: the ones sops wrote as `-0` (plain-zero.ts). Tries every subset of up to 10 of them (1,023
 * hashes at most); undefined when none does, or with more. @returns their key paths.
 */
function negativeZerosSealed(hashed: ScalarNode[], zeros: { at: number; path: string }[], macOnlyEncrypted: boolean, stored: string): string[] | undefined {
  if (zeros.length === 0 || zeros.length > 10) return undefined;
  for (let subset = 1; subset < 1 << zeros.length; subset++) {
    const picked = zeros.filter((_, i) => subset & (1 << i));
    const swapped = new Set(picked.map((z) => z.at));
    const mac = new MacBuilder(macOnlyEncrypted);
    hashed.forEach((leaf, i) => mac.add(swapped.has(i) ? { kind: 'scalar', type: 'float', value: -0 } : leaf));
    if (mac.hex() === stored) return picked.map((z) => z.path);
  }
  return undefined;
}

/** The key paths of the last item of a map or list, of that item's last item, and so on (maps and lists only). */
function lastChain(keys: string[], branch: MapNode | ListNode): string[][] {
  const out: string[][] = [];
  let node: TreeNode = branch;
  let path = keys;
  for (;;) {
    if (node.kind === 'map' && node.entries.length) {
      const [k, v]: [string, TreeNode] = node.entries.at(-1)!;
      path = [...path, k];
      node = v;
    } else if (node.kind === 'list' && node.items.length) node = node.items.at(-1)!;
    else break;
    if (node.kind !== 'map' && node.kind !== 'list') break;
    out.push(path);
  }
  return out;
}

/**
 * The key path sops uses as a comment's associated data: the map or list holding it, except for comments after
 * the last item when that item is itself a map or list: go-yaml reads those as the foot comment of the
 * innermost last item, so sops places them there.
 */
export function commentPath(c: CommentNode, keys: string[], branch: MapNode | ListNode): string[] {
  const size = branch.kind === 'map' ? branch.entries.length : branch.items.length;
  return c.before === size ? (lastChain(keys, branch).at(-1) ?? keys) : keys;
}

/** Where to look for a comment's associated data when reading: its own map, the maps inside before it, the maps above. */
function commentPaths(keys: string[], branch: MapNode | ListNode): string[][] {
  const all = [keys, ...lastChain(keys, branch).reverse(), ...keys.map((_, i) => keys.slice(0, keys.length - 1 - i))];
  return all.filter((p, i) => all.findIndex((q) => q.join('\0') === p.join('\0')) === i);
}

/**
 * Mask every decrypted value (each text it reaches the app in, maskedTexts, and each line of a multi-line one) before
 * anything can print it; booleans are not masked (one bit).
 */
export function maskAll(secrets: ScalarNode[], mask?: (value: string) => void): void {
  if (!mask) return;
  for (const s of secrets)
    for (const text of maskedTexts(s)) {
      mask(text);
      if (/[\r\n]/.test(text)) for (const line of text.split(/\r?\n/)) if (line.trim()) mask(line);
    }
}

/** Tell `allow` every key name and key path of `node` (allow in DecryptOptions); `path` is where `node` stands. */
export function allowKeys(node: TreeNode, allow?: (text: string) => void, path: (string | number)[] = []): void {
  if (!allow) return;
  if (node.kind === 'list') node.items.forEach((item, i) => allowKeys(item, allow, [...path, i]));
  if (node.kind !== 'map') return;
  for (const [k, v] of node.entries) {
    const at = [...path, k];
    allow(k);
    allow(showPath(at));
    allow(at.filter((p) => typeof p === 'string').join('.'));
    allowKeys(v, allow, at);
  }
}

/**
 * Tell `allow` a file's path as ops may print it (allow in DecryptOptions): every tail of it from a directory on
 * (`environments/qa/secrets.sops.yaml`, `secrets.sops.yaml`), so that a value occurring in it ("sops") leaves it whole.
 */
export function allowPath(file: string, allow?: (text: string) => void): void {
  if (!allow) return;
  const parts = file.split('/');
  for (let i = 0; i < parts.length; i++) if (parts[i]) allow(parts.slice(i).join('/'));
}
