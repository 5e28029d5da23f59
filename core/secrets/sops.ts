// sops files with age recipients, read and written without the sops binary.
//
// Reading: parse the file (order kept), unwrap the data key with one of the user's age identities,
// decrypt every value with its key path as associated data, recompute the MAC exactly as sops does and
// compare it with the stored one. Anything wrong is an OpsError and nothing is returned.
// Writing: one data key per file; every value AES-256-GCM with a 32-byte IV; values that did not change
// reuse their IV, so they keep their ciphertext (as sops does); an unchanged document is not rewritten
// at all; the data key is age-encrypted (armored) to each recipient; `lastmodified`, the MAC and
// `version` are written as sops 3.8.1 writes them.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { OpsError } from '../errors.ts';
import { writeFileAtomic } from './atomic.ts';
import { DATA_KEY_BYTES, MacBuilder, MalformedValue, aadOf, decryptScalar, encryptScalar, openText, parseEnc, sealText } from './cipher.ts';
import { type GoRegexp, goRegexp } from './goregex.ts';
import { combineShares } from './shamir.ts';
import { type Identities, type Identity, checkRecipient, defaultKeyFile, loadIdentities, unwrapDataKey, wrapDataKey } from './keys.ts';
import {
  type Format,
  type MapNode,
  type PlainValue,
  type ScalarNode,
  type TreeNode,
  formatOf,
  getEntry,
  mapLeaves,
  parseTree,
  printTree,
  scalarText,
  showPath,
  str,
  toPlain,
  treeEquals,
  walkTree,
  detectLayout,
  CURRENT_LAYOUT,
  type Layout,
  type CommentNode,
  type CommentStack,
  type ListNode,
} from './tree.ts';

/**
 * The sops version written in new files and files in its layout: the pinned sops (scripts/setup-machine.sh;
 * a test keeps them equal), whose layout this tool writes.
 */
export const SOPS_VERSION = '3.13.3';
/** Files in sops 3.8's layout keep it, and say so. */
export const LEGACY_SOPS_VERSION = '3.8.1';
export const DEFAULT_UNENCRYPTED_SUFFIX = '_unencrypted';

export interface AgeStanza {
  recipient: string;
  /** The data key, age-encrypted to `recipient`, armored. */
  enc: string;
}

export interface SopsMetadata {
  age: AgeStanza[];
  /** With several key groups: the age stanzas of each (each holds a Shamir share of the data key). */
  keyGroups?: AgeStanza[][];
  /** How many key groups' shares are needed (default: all). */
  shamirThreshold?: number;
  lastModified: string;
  mac: string;
  version: string;
  unencryptedSuffix?: string;
  encryptedSuffix?: string;
  unencryptedRegex?: string;
  encryptedRegex?: string;
  unencryptedCommentRegex?: string;
  encryptedCommentRegex?: string;
  macOnlyEncrypted: boolean;
  /** How the file is laid out (kept when it is rewritten). */
  layout: Layout;
  /** Key kinds present that this tool cannot use (pgp, kms, key_groups...): readable, not rewritable. */
  foreign: string[];
}

export interface EncryptedDocument {
  file: string;
  format: Format;
  /** The data part (without `sops`), values as stored (`ENC[...]`). */
  data: MapNode;
  meta: SopsMetadata;
  text: string;
}

const NOT_SOPS_HINT = 'give the path of a file encrypted with sops (it ends with a `sops:` section), or create one with `ops secrets set`';

function metaError(file: string, what: string): OpsError {
  return new OpsError(`${file}: malformed sops metadata: ${what}`, 'restore the file from git history (`git checkout -- <file>`); never edit the sops section by hand');
}

function metaString(file: string, sops: MapNode, key: string, required: boolean): string | undefined {
  const v = getEntry(sops, key);
  if (v === undefined || v.kind === 'null') {
    if (required) throw metaError(file, `sops.${key} is missing`);
    return undefined;
  }
  if (v.kind !== 'scalar') throw metaError(file, `sops.${key} is not a string`);
  // `version: 3.8` (unquoted) is a float to YAML; sops reads it as the text
  return v.type === 'str' ? (v.value as string) : scalarText(v);
}

/** Go's time.Parse(RFC3339) then Format(RFC3339): what sops uses as the MAC's associated data. */
export function canonicalLastModified(file: string, value: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(value);
  if (!m) throw metaError(file, `sops.lastmodified "${value}" is not an RFC 3339 time`);
  return m[1]! + (m[3] === '+00:00' || m[3] === '-00:00' ? 'Z' : m[3]!);
}

function parseMetadata(file: string, node: TreeNode | undefined): SopsMetadata {
  if (!node) throw new OpsError(`${file} is not a sops file: it has no "sops" section`, NOT_SOPS_HINT);
  if (node.kind !== 'map') throw metaError(file, '"sops" is not a map');
  const foreign: string[] = [];
  for (const kind of ['kms', 'gcp_kms', 'azure_kv', 'hc_vault', 'pgp', 'hckms', 'key_groups']) {
    const v = getEntry(node, kind);
    if (v && !(v.kind === 'null' || (v.kind === 'list' && v.items.length === 0))) foreign.push(kind);
  }
  const ageList = (ageNode: TreeNode | undefined, where: string): AgeStanza[] => {
    const age: AgeStanza[] = [];
    if (!ageNode || ageNode.kind === 'null') return age;
    if (ageNode.kind !== 'list') throw metaError(file, `${where} is not a list`);
    ageNode.items.forEach((item, i) => {
      const r = item.kind === 'map' ? getEntry(item, 'recipient') : undefined;
      const e = item.kind === 'map' ? getEntry(item, 'enc') : undefined;
      if (r?.kind !== 'scalar' || r.type !== 'str' || e?.kind !== 'scalar' || e.type !== 'str') {
        throw metaError(file, `${where}[${i}] needs a "recipient" and an "enc" string`);
      }
      age.push({ recipient: r.value as string, enc: e.value as string });
    });
    return age;
  };
  // Key groups (several, with a Shamir threshold): each holds a share of the data key
  const groupsNode = getEntry(node, 'key_groups');
  let keyGroups: AgeStanza[][] | undefined;
  if (groupsNode?.kind === 'list' && groupsNode.items.length) {
    keyGroups = groupsNode.items.map((g, i) => ageList(g.kind === 'map' ? getEntry(g, 'age') : undefined, `sops.key_groups[${i}].age`));
  }
  const threshold = getEntry(node, 'shamir_threshold');
  const macOnly = getEntry(node, 'mac_only_encrypted');
  const meta: SopsMetadata = {
    age: ageList(getEntry(node, 'age'), 'sops.age'),
    keyGroups,
    shamirThreshold: threshold?.kind === 'scalar' && threshold.type === 'int' ? Number(threshold.value) : undefined,
    lastModified: metaString(file, node, 'lastmodified', true)!,
    mac: metaString(file, node, 'mac', false) ?? '',
    version: metaString(file, node, 'version', false) ?? '',
    unencryptedSuffix: metaString(file, node, 'unencrypted_suffix', false) || undefined,
    encryptedSuffix: metaString(file, node, 'encrypted_suffix', false) || undefined,
    unencryptedRegex: metaString(file, node, 'unencrypted_regex', false) || undefined,
    encryptedRegex: metaString(file, node, 'encrypted_regex', false) || undefined,
    unencryptedCommentRegex: metaString(file, node, 'unencrypted_comment_regex', false) || undefined,
    encryptedCommentRegex: metaString(file, node, 'encrypted_comment_regex', false) || undefined,
    macOnlyEncrypted: macOnly?.kind === 'scalar' && macOnly.value === true,
    layout: CURRENT_LAYOUT,
    foreign,
  };
  const rules = [meta.unencryptedSuffix, meta.encryptedSuffix, meta.unencryptedRegex, meta.encryptedRegex, meta.unencryptedCommentRegex, meta.encryptedCommentRegex].filter(Boolean).length;
  if (rules > 1) throw metaError(file, 'more than one of unencrypted_suffix, encrypted_suffix, unencrypted_regex, encrypted_regex, unencrypted_comment_regex, encrypted_comment_regex');
  if (rules === 0) meta.unencryptedSuffix = DEFAULT_UNENCRYPTED_SUFFIX; // as sops does
  canonicalLastModified(file, meta.lastModified);
  return meta;
}

/**
 * sops writes an encrypted comment of a list as an item of that list (a string `ENC[...,type:comment]`), and
 * reads it back as a comment, outside the MAC: hold it as the comment it is.
 */
function listCommentsAsComments<T extends TreeNode>(node: T): T {
  if (node.kind === 'map') return { ...node, entries: node.entries.map(([k, v]) => [k, listCommentsAsComments(v)]) };
  if (node.kind !== 'list') return node;
  const items: TreeNode[] = [];
  const comments = [...(node.comments ?? [])];
  node.items.forEach((item, i) => {
    if (item.kind === 'scalar' && item.type === 'str' && /^ENC\[AES256_GCM,.*,type:comment\]$/.test(item.value as string)) {
      comments.push({ before: items.length, text: item.value as string });
    } else {
      for (const c of node.comments ?? []) if (c.before === i) c.before = items.length;
      items.push(listCommentsAsComments(item));
    }
  });
  return { ...node, items, ...(comments.length ? { comments: comments.sort((a, b) => a.before - b.before) } : {}) };
}

/** Parse an encrypted sops document (YAML or JSON) without decrypting anything. */
export function parseSops(text: string, file: string, format: Format = formatOf(file)): EncryptedDocument {
  const tree = parseTree(text, format, { file, keys: 'strict' });
  const sops = getEntry(tree, 'sops');
  const meta = parseMetadata(file, sops);
  meta.layout = detectLayout(text, format, sops?.kind === 'map' ? sops : undefined);
  const at = tree.entries.findIndex(([k]) => k === 'sops');
  const comments = tree.comments?.map((c) => (c.before > at ? { ...c, before: c.before - 1 } : c));
  const data: MapNode = { kind: 'map', entries: tree.entries.filter(([k]) => k !== 'sops'), ...(comments ? { comments } : {}) };
  return { file, format, data: listCommentsAsComments(data), meta, text };
}

/** True when the text is a sops-encrypted document (a top-level `sops` map with `mac` and `lastmodified`). */
export function isSopsText(text: string, format: Format): boolean {
  try {
    const tree = parseTree(text, format, { file: '-', keys: 'lenient' });
    const sops = getEntry(tree, 'sops');
    return sops?.kind === 'map' && getEntry(sops, 'lastmodified') !== undefined && getEntry(sops, 'mac') !== undefined;
  } catch {
    return false;
  }
}

function compileRegex(file: string, name: string, source: string): GoRegexp {
  try {
    return goRegexp(source);
  } catch (e) {
    throw new OpsError(`${file}: sops.${name} /${source}/ is not a valid Go regular expression: ${(e as Error).message}`, 'restore the file from git history; sops itself could not use it either');
  }
}

/**
 * sops's rule for whether a value (or a comment) is encrypted, sops.go shouldBeEncrypted: suffixes and key
 * regexes look at every key of the path; comment regexes at the comments standing before it at every level
 * (for a comment, the encrypted-comment rule skips the comment itself).
 */
export function encryptionRule(file: string, meta: SopsMetadata): (keys: string[], stack?: CommentStack, isComment?: boolean) => boolean {
  const { unencryptedSuffix: us, encryptedSuffix: es } = meta;
  const ur = meta.unencryptedRegex ? compileRegex(file, 'unencrypted_regex', meta.unencryptedRegex) : undefined;
  const er = meta.encryptedRegex ? compileRegex(file, 'encrypted_regex', meta.encryptedRegex) : undefined;
  const ucr = meta.unencryptedCommentRegex ? compileRegex(file, 'unencrypted_comment_regex', meta.unencryptedCommentRegex) : undefined;
  const ecr = meta.encryptedCommentRegex ? compileRegex(file, 'encrypted_comment_regex', meta.encryptedCommentRegex) : undefined;
  return (keys, stack = [], isComment = false) => {
    let encrypted = true;
    if (us && keys.some((k) => k.endsWith(us))) encrypted = false;
    if (es) encrypted = keys.some((k) => k.endsWith(es));
    if (ur && keys.some((k) => ur.test(k))) encrypted = false;
    if (er) encrypted = keys.some((k) => er.test(k));
    if (ucr && stack.some((level) => level.some((c) => ucr.test(c)))) encrypted = false;
    if (ecr) {
      encrypted = stack.some((level, i) => level.some((c, j) => !(isComment && i === stack.length - 1 && j === level.length - 1) && ecr.test(c)));
    }
    return encrypted;
  };
}

/** IVs of decrypted values, by (path, plaintext): re-encrypting an unchanged value gives the same ciphertext. */
class IvStash {
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
async function unwrapAny(stanzas: AgeStanza[], ids: Identities): Promise<{ key?: Buffer; problems: string[] }> {
  const mine = new Set(ids.identities.map((i) => i.recipient));
  const ordered = [...stanzas.filter((s) => mine.has(s.recipient)), ...stanzas.filter((s) => !mine.has(s.recipient))];
  const problems: string[] = [];
  for (const stanza of ordered) {
    try {
      const key = await unwrapDataKey(stanza.enc, ids.identities);
      if (key) return { key: Buffer.from(key), problems };
    } catch (e) {
      problems.push(`the data key for ${stanza.recipient}: ${(e as Error).message}`);
    }
  }
  return { problems };
}

/**
 * The data key, from the stanzas of `sops.age`, or with key groups from `shamir_threshold` groups' shares
 * (sops.go GetDataKeyWithKeyServices). Throws OpsError saying which keys were tried and what is missing.
 */
async function recoverDataKey(doc: EncryptedDocument, ids: Identities): Promise<Buffer> {
  const { file, meta } = doc;
  const stanzas = meta.keyGroups ? meta.keyGroups.flat() : meta.age;
  if (stanzas.length === 0) {
    const others = meta.foreign.length ? ` (it has ${meta.foreign.join(', ')} keys, which this tool cannot use)` : '';
    throw new OpsError(`${file} has no age recipients${others}`, 'decrypt it with the sops binary, or re-encrypt it to age recipients');
  }
  if (ids.identities.length === 0) {
    throw new OpsError(
      `no age identity to decrypt ${file}: looked in ${ids.tried.join(', ')}`,
      `set SOPS_AGE_KEY_FILE to your age key file (or SOPS_AGE_KEY to the key itself), or put the key in ${ids.defaultFile ?? defaultKeyFile()}; \`ops keygen\` makes a new one`,
    );
  }
  if (meta.keyGroups && meta.keyGroups.length > 1) {
    const threshold = meta.shamirThreshold || meta.keyGroups.length;
    const shares: Buffer[] = [];
    const opened: number[] = [];
    for (const [i, group] of meta.keyGroups.entries()) {
      const { key } = await unwrapAny(group, ids);
      if (key) {
        shares.push(key);
        opened.push(i + 1);
      }
    }
    if (shares.length < threshold) {
      throw new OpsError(
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
  const { key, problems } = await unwrapAny(stanzas, ids);
  if (key?.length === DATA_KEY_BYTES) return key;
  if (key) problems.push(`the data key is ${key.length} bytes, not ${DATA_KEY_BYTES}`);
  const listed = ids.identities.find((i) => stanzas.some((s) => s.recipient === i.recipient));
  if (listed) {
    throw new OpsError(
      `${file}: the data key stored for ${listed.recipient} (your key from ${listed.source}) does not decrypt with that key${problems.length ? ` (${problems.join('; ')})` : ''}`,
      'the sops.age section was changed: restore the file from git history, or ask another recipient to re-add you',
    );
  }
  const yours = ids.identities.map((i) => i.recipient).join(', ');
  throw new OpsError(
    `none of your age identities (${yours}) is a recipient of ${file}; its recipients are: ${stanzas.map((s) => s.recipient).join(', ')}`,
    `ask someone who can decrypt it to add your public key (\`ops secrets recipients <env> add <age1...>\`), or point SOPS_AGE_KEY_FILE at the right key (looked in: ${ids.tried.join(', ')})`,
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
}

async function resolveIdentities(opts: DecryptOptions): Promise<Identities> {
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

function decryptTree(doc: EncryptedDocument, key: Buffer): Decrypted {
  const { file, meta } = doc;
  const shouldEncrypt = encryptionRule(file, meta);
  const mac = new MacBuilder(meta.macOnlyEncrypted);
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
          stash.put(aad, scalarText(value), enc.iv);
          secrets.push(value);
        }
      }
      if (!meta.macOnlyEncrypted || encrypted) mac.add(value);
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
    throw new OpsError(
      `${file}: MAC mismatch: its values are not the ones sops sealed (a value was deleted, added, replaced or reordered)`,
      `the file was changed without sops or ops: restore it from git history (\`git checkout -- ${file}\`, or \`git log -p ${file}\` to find the change)`,
    );
  }
  return { plain, stash, secrets };
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
function commentPath(c: CommentNode, keys: string[], branch: MapNode | ListNode): string[] {
  const size = branch.kind === 'map' ? branch.entries.length : branch.items.length;
  return c.before === size ? (lastChain(keys, branch).at(-1) ?? keys) : keys;
}

/** Where to look for a comment's associated data when reading: its own map, the maps inside before it, the maps above. */
function commentPaths(keys: string[], branch: MapNode | ListNode): string[][] {
  const all = [keys, ...lastChain(keys, branch).reverse(), ...keys.map((_, i) => keys.slice(0, keys.length - 1 - i))];
  return all.filter((p, i) => all.findIndex((q) => q.join('\0') === p.join('\0')) === i);
}

function maskAll(secrets: ScalarNode[], mask?: (value: string) => void): void {
  if (!mask) return;
  for (const s of secrets) {
    // booleans carry one bit; masking "true" would shred every log line that says true
    if (s.type === 'bool') continue;
    const text = s.type === 'str' ? (s.value as string) : String(s.value);
    mask(text);
    if (/[\r\n]/.test(text)) for (const line of text.split(/\r?\n/)) if (line.trim()) mask(line);
  }
}

export interface RenderOptions {
  /** Time written to `lastmodified` when the document changed (default: now). */
  now?: Date;
  /** Tests (golden vectors): write this `lastmodified` and seal the MAC with this IV, and render even when unchanged. */
  lastModified?: string;
  macIv?: Buffer;
  force?: boolean;
}

export interface Rendered {
  text: string;
  /** False when the document and its recipients are unchanged: `text` is then the file as it was, byte for byte. */
  changed: boolean;
}

/** An opened (decrypted) sops file: read its values, change them or its recipients, write it back. */
export class SecretsFile {
  private rotated = false;
  private constructor(
    readonly file: string,
    readonly format: Format,
    private dataKey: Buffer,
    private plain: MapNode,
    private recipientList: string[],
    private readonly meta: SopsMetadata,
    private readonly original: EncryptedDocument | undefined,
    private readonly stash: IvStash,
  ) {}

  /** Decrypt and verify a sops document given as text. */
  static async fromText(text: string, file: string, opts: DecryptOptions & { format?: Format } = {}): Promise<SecretsFile> {
    const doc = parseSops(text, file, opts.format ?? formatOf(file));
    const key = await recoverDataKey(doc, await resolveIdentities(opts));
    const { plain, stash, secrets } = decryptTree(doc, key);
    maskAll(secrets, opts.mask);
    const recipients = (doc.meta.keyGroups ? doc.meta.keyGroups.flat() : doc.meta.age).map((s) => s.recipient);
    return new SecretsFile(file, doc.format, key, plain, [...new Set(recipients)], doc.meta, doc, stash);
  }

  /** Read, decrypt and verify a sops file. */
  static async open(file: string, opts: DecryptOptions = {}): Promise<SecretsFile> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new OpsError(`cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : (code ?? (e as Error).message)}`);
    }
    return SecretsFile.fromText(text, file, opts);
  }

  /** A new document (not written yet): a fresh data key, encrypted to `recipients`. */
  static create(file: string, tree: MapNode, opts: { recipients: string[]; format?: Format; unencryptedSuffix?: string }): SecretsFile {
    const format = opts.format ?? formatOf(file);
    const f = new SecretsFile(
      file,
      format,
      randomBytes(DATA_KEY_BYTES),
      { kind: 'map', entries: [] },
      [],
      { age: [], lastModified: '', mac: '', version: SOPS_VERSION, unencryptedSuffix: opts.unencryptedSuffix ?? DEFAULT_UNENCRYPTED_SUFFIX, macOnlyEncrypted: false, layout: CURRENT_LAYOUT, foreign: [] },
      undefined,
      new IvStash(),
    );
    f.setRecipients(opts.recipients);
    f.setTree(tree);
    return f;
  }

  /** The decrypted document, keys in file order. */
  get tree(): MapNode {
    return this.plain;
  }
  /** The decrypted document as plain JS values. */
  get data(): { [key: string]: PlainValue } {
    return toPlain(this.plain) as { [key: string]: PlainValue };
  }
  get recipients(): string[] {
    return [...this.recipientList];
  }
  get lastModified(): string | undefined {
    return this.original?.meta.lastModified;
  }

  /** The plaintext, in the file's format (YAML or JSON). */
  plaintext(): string {
    return printTree(this.plain, this.format, this.meta.layout);
  }

  /** Replace the whole document. */
  setTree(tree: MapNode): void {
    if (tree.kind !== 'map') throw new OpsError(`${this.file}: the top level must be a map`);
    if (getEntry(tree, 'sops')) throw new OpsError(`${this.file}: "sops" is reserved for sops's own metadata`, 'rename that top-level key');
    this.plain = tree;
  }

  /** Set the value at a key path, creating the maps on the way. */
  set(path: string[], value: TreeNode): void {
    if (path.length === 0 || path.some((k) => k === '')) throw new OpsError(`invalid key path "${path.join('.')}"`, 'give keys separated by dots, e.g. database_url or datapass.client_id');
    if (path[0] === 'sops') throw new OpsError('"sops" is reserved for sops\'s own metadata', 'choose another top-level key');
    const setIn = (map: MapNode, i: number): MapNode => {
      const key = path[i]!;
      const idx = map.entries.findIndex(([k]) => k === key);
      const current = idx >= 0 ? map.entries[idx]![1] : undefined;
      let next: TreeNode;
      if (i === path.length - 1) next = value;
      else if (current === undefined || current.kind === 'null') next = setIn({ kind: 'map', entries: [] }, i + 1);
      else if (current.kind === 'map') next = setIn(current, i + 1);
      else {
        const what = current.kind === 'list' ? 'a list' : `a ${current.type}`;
        throw new OpsError(`cannot set ${path.join('.')}: ${path.slice(0, i + 1).join('.')} is ${what}, not a map`, 'choose another key path, or edit the file with `ops secrets edit`');
      }
      const entries = [...map.entries];
      if (idx >= 0) entries[idx] = [key, next];
      else entries.push([key, next]);
      return { ...map, entries };
    };
    this.plain = setIn(this.plain, 0);
  }

  /** Add a recipient (the data key is kept: like `sops updatekeys`). Returns false if it was one already. */
  addRecipient(recipient: string): boolean {
    const r = checkRecipient(recipient);
    if (this.recipientList.includes(r)) return false;
    this.recipientList.push(r);
    return true;
  }

  /**
   * Remove a recipient and rotate the data key (like `sops rotate --rm-age`): the removed key may have
   * kept the old data key, which must not open the values written from now on.
   */
  removeRecipient(recipient: string): void {
    const r = recipient.trim();
    if (!this.recipientList.includes(r)) {
      throw new OpsError(`${r} is not a recipient of ${this.file}`, `its recipients are: ${this.recipientList.join(', ')}`);
    }
    if (this.recipientList.length === 1) {
      throw new OpsError(`${r} is the only recipient of ${this.file}`, 'add the new recipient first, then remove this one');
    }
    this.recipientList = this.recipientList.filter((x) => x !== r);
    this.rotate();
  }

  /** Make the recipients exactly `recipients` (like `sops updatekeys`); rotates the data key if any was removed. */
  setRecipients(recipients: string[]): { added: string[]; removed: string[] } {
    const wanted = [...new Set(recipients.map((r) => checkRecipient(r)))];
    if (wanted.length === 0) throw new OpsError(`${this.file} needs at least one recipient`, 'add an age public key (age1...) to its creation rule in .sops.yaml');
    const added = wanted.filter((r) => !this.recipientList.includes(r));
    const removed = this.recipientList.filter((r) => !wanted.includes(r));
    this.recipientList = wanted;
    if (removed.length && this.original) this.rotate();
    return { added, removed };
  }

  /** A new data key: every value, the MAC and every recipient's copy of the key are encrypted anew. */
  rotate(): void {
    this.dataKey = randomBytes(DATA_KEY_BYTES);
    this.stash.clear();
    this.rotated = true;
  }

  /** The encrypted file text. Unchanged document and recipients → the original bytes. */
  async render(opts: RenderOptions = {}): Promise<Rendered> {
    if (this.meta.foreign.length) {
      throw new OpsError(`${this.file} also has ${this.meta.foreign.join(', ')} keys, which this tool cannot re-encrypt to`, 'change it with the sops binary');
    }
    if (this.recipientList.length === 0) throw new OpsError(`${this.file} has no recipients`, 'add one with `ops secrets recipients <env> add <age1...>`');
    const key = this.dataKey;
    const shouldEncrypt = encryptionRule(this.file, this.meta);
    const mac = new MacBuilder(this.meta.macOnlyEncrypted);
    const stash = this.stash.copy();
    const ucr = this.meta.unencryptedCommentRegex ? goRegexp(this.meta.unencryptedCommentRegex) : undefined;
    const data = walkTree(this.plain, {
      leaf: (leaf, keys, _path, stack) => {
        const encrypted = shouldEncrypt(keys, stack);
        if (!this.meta.macOnlyEncrypted || encrypted) mac.add(leaf);
        if (!encrypted) return leaf;
        if (leaf.type === 'str' && leaf.value === '') return leaf; // sops leaves empty strings as they are
        const aad = aadOf(keys);
        return str(encryptScalar(leaf, key, aad, stash.take(aad, scalarText(leaf))));
      },
      // comments as sops encrypts them: type `comment`, the path of their map as associated data, no MAC
      comment: (c, keys, stack, branch) => {
        if (!shouldEncrypt(keys, stack, true) || c.text === '') return c;
        const aad = aadOf(commentPath(c, keys, branch));
        const text = sealText(c.text, 'comment', key, aad, stash.take(`#${aad}`, c.text));
        if (ucr?.test(text)) throw new OpsError(`${this.file}: an encrypted comment matches unencrypted_comment_regex`, 'choose an unencrypted_comment_regex that cannot match "ENC[AES256_GCM,...]" (as sops requires)');
        return { ...c, text };
      },
    });
    const old = this.original;
    const sameKey = old !== undefined && !this.rotated;
    const age: AgeStanza[] = [];
    for (const recipient of this.recipientList) {
      const kept = sameKey ? old.meta.age.find((s) => s.recipient === recipient) : undefined;
      age.push(kept ?? { recipient, enc: await wrapDataKey(key, recipient) });
    }
    const sameStanzas = sameKey && age.length === old.meta.age.length && age.every((s, i) => s.enc === old.meta.age[i]!.enc && s.recipient === old.meta.age[i]!.recipient);
    if (!opts.force && sameStanzas && treeEquals(data, old.data)) return { text: old.text, changed: false };

    const lastModified = opts.lastModified ?? (opts.now ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const sealedMac = sealText(mac.hex(), 'str', key, canonicalLastModified(this.file, lastModified), opts.macIv);
    const meta = this.metadataTree(age, lastModified, sealedMac);
    const tree: MapNode = { ...data, entries: [...data.entries, ['sops', meta]] };
    return { text: printTree(tree, this.format, this.meta.layout), changed: true };
  }

  /**
   * The `sops` section as the file's layout has it: sops 3.13 sorts its keys and leaves empty key lists out;
   * sops 3.8.1 wrote a fixed order with empty key lists (`[]` in YAML, `null` in JSON).
   */
  private metadataTree(age: AgeStanza[], lastModified: string, mac: string): MapNode {
    const m = this.meta;
    const rules: [string, string | undefined][] = [
      ['unencrypted_suffix', m.unencryptedSuffix],
      ['encrypted_suffix', m.encryptedSuffix],
      ['unencrypted_regex', m.unencryptedRegex],
      ['encrypted_regex', m.encryptedRegex],
      ['unencrypted_comment_regex', m.unencryptedCommentRegex],
      ['encrypted_comment_regex', m.encryptedCommentRegex],
    ];
    if (!m.layout.legacyMetadata) {
      const entries: [string, TreeNode][] = [
        ['age', { kind: 'list', items: age.map((s) => ({ kind: 'map', entries: [['enc', str(s.enc)], ['recipient', str(s.recipient)]] }) as MapNode) }],
        ['lastmodified', str(lastModified)],
        ['mac', str(mac)],
        ...rules.filter((r): r is [string, string] => Boolean(r[1])).map(([k, v]) => [k, str(v)] as [string, TreeNode]),
        ...(m.macOnlyEncrypted ? [['mac_only_encrypted', { kind: 'scalar', type: 'bool', value: true }] as [string, TreeNode]] : []),
        ['version', str(SOPS_VERSION)],
      ];
      return { kind: 'map', entries: entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) };
    }
    const empty: TreeNode = this.format === 'json' ? { kind: 'null' } : { kind: 'list', items: [] };
    const entries: [string, TreeNode][] = [
      ['kms', empty],
      ['gcp_kms', empty],
      ['azure_kv', empty],
      ['hc_vault', empty],
      ['age', { kind: 'list', items: age.map((s) => ({ kind: 'map', entries: [['recipient', str(s.recipient)], ['enc', str(s.enc)]] }) as MapNode) }],
      ['lastmodified', str(lastModified)],
      ['mac', str(mac)],
      ['pgp', empty],
    ];
    for (const [k, v] of rules) if (v) entries.push([k, str(v)]);
    if (m.macOnlyEncrypted) entries.push(['mac_only_encrypted', { kind: 'scalar', type: 'bool', value: true }]);
    entries.push(['version', str(LEGACY_SOPS_VERSION)]);
    return { kind: 'map', entries };
  }

  /** Write the file atomically if anything changed. Returns whether it was written. */
  async save(opts: RenderOptions = {}): Promise<boolean> {
    const { text, changed } = await this.render(opts);
    if (!changed) return false;
    await writeFileAtomic(this.file, text);
    return true;
  }

  /** The data key, for interop tests (Debian's `age -d` must open each recipient's copy). */
  dataKeyForTests(): Buffer {
    return Buffer.from(this.dataKey);
  }
}

export interface DecryptedFile {
  /** The values as plain JS (objects, arrays, strings, numbers, booleans, null). */
  data: { [key: string]: PlainValue };
  /** The same, as an ordered tree with sops's types (key order exactly as in the file). */
  tree: MapNode;
  /** The plaintext in the file's format. */
  plaintext: string;
  recipients: string[];
  format: Format;
  lastModified: string;
}

/** Decrypt a sops file and verify its MAC; every decrypted value reaches `mask` first. */
export async function decryptFile(file: string, opts: DecryptOptions = {}): Promise<DecryptedFile> {
  const f = await SecretsFile.open(file, opts);
  return { data: f.data, tree: f.tree, plaintext: f.plaintext(), recipients: f.recipients, format: f.format, lastModified: f.lastModified! };
}
