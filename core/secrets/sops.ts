// sops files with age recipients, read and written without the sops binary (SecretsFile: open, change, save).
//
// Reading: sops-decrypt.ts. Writing: one data key per file; every value AES-256-GCM with a 32-byte IV; values
// that did not change reuse their IV, so they keep their ciphertext (as sops does); an unchanged document is not
// rewritten at all; the data key is age-encrypted (armored) to each recipient; `lastmodified`, the MAC and
// `version` are written as the sops version of the file's layout writes them.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { OpsError, fileError } from '../errors.ts';
import { writeIfUnchanged } from './atomic.ts';
import { DATA_KEY_BYTES, MacBuilder, aadOf, encryptScalar, sealText } from './cipher.ts';
import { goRegexp } from './goregex.ts';
import { checkRecipient, wrapDataKey } from './keys.ts';
import { type DecryptOptions, IvStash, allowKeys, allowPath, commentPath, stashText, decryptTree, maskAll, recoverDataKey, resolveIdentities } from './sops-decrypt.ts';
import { type AgeStanza, DEFAULT_UNENCRYPTED_SUFFIX, type EncryptedDocument, LEGACY_SOPS_VERSION, SOPS_VERSION, type SopsMetadata, canonicalLastModified, addRecipientHint, encryptionRule, notSops, parseSops, surelyNotSops } from './sops-metadata.ts';
import { NEGATIVE_ZERO_FIX, NEGATIVE_ZERO_WHY, isNegativeZero } from './plain-zero.ts';
import { CURRENT_LAYOUT, printTree } from './tree-print.ts';
import { scalarText } from './tree-scalars.ts';
import { type Format, type MapNode, type PlainValue, type TreeNode, formatOf, getEntry, showPath, str, toPlain, treeEquals, walkTree } from './tree.ts';
import { decodeUtf8 } from './utf8.ts';

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

/**
 * The mode a secrets file (a sops file, an edit kept aside) is created with: read and written by its owner only.
 * Encrypted, it still names its recipients and shows its keys and structure; an existing file keeps its own mode.
 */
export const SECRETS_FILE_MODE = 0o600;

/** An opened (decrypted) sops file: read its values, change them or its recipients, write it back. */
export class SecretsFile {
  private rotated = false;
  /** How the file was opened (identities, mask): what reopen() opens it with again. */
  private openedWith: DecryptOptions = {};
  /** The file's text as this object last read or wrote it (null: not on disk yet): what save() may replace. */
  private onDisk: string | null;
  /** The mode the file is created with when it is not on disk yet (an existing file keeps its own). */
  private createMode = SECRETS_FILE_MODE;
  private constructor(
    readonly file: string,
    readonly format: Format,
    private dataKey: Buffer,
    private plain: MapNode,
    private recipientList: string[],
    private readonly meta: SopsMetadata,
    private readonly original: EncryptedDocument | undefined,
    private readonly stash: IvStash,
  ) {
    this.onDisk = original?.text ?? null;
  }

  /** Decrypt and verify a sops document given as text. */
  static async fromText(text: string, file: string, opts: DecryptOptions & { format?: Format } = {}): Promise<SecretsFile> {
    const doc = parseSops(text, file, opts.format ?? formatOf(file));
    const key = await recoverDataKey(doc, await resolveIdentities(opts));
    const { plain, stash, secrets } = decryptTree(doc, key);
    maskAll(secrets, opts.mask);
    allowKeys(plain, opts.allow);
    allowPath(file, opts.allow);
    const recipients = (doc.meta.keyGroups ? doc.meta.keyGroups.flat() : doc.meta.age).map((s) => s.recipient);
    const f = new SecretsFile(file, doc.format, key, plain, [...new Set(recipients)], doc.meta, doc, stash);
    f.openedWith = opts;
    return f;
  }

  /**
   * The file as it is on disk now, opened as this one was (its identities and mask): after another command
   * changed it (ChangedOnDiskError). @throws OpsError when it can no longer be read or opened (removed, not a sops file).
   */
  async reopen(): Promise<SecretsFile> {
    return SecretsFile.open(this.file, this.openedWith);
  }

  /** Read, decrypt and verify a sops file. */
  static async open(file: string, opts: DecryptOptions = {}): Promise<SecretsFile> {
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (e) {
      throw fileError(e, file, 'read', 'a sops-encrypted file');
    }
    let text: string;
    try {
      text = decodeUtf8(bytes, file, 'a sops file is UTF-8 text: restore it from git history');
    } catch (e) {
      // a file that is no sops file at all is said to be so first, as one with values sops refuses is (parseSops)
      let format: Format;
      try {
        format = formatOf(file);
      } catch {
        throw e; // a name that tells no format: the bytes are what is wrong first
      }
      if (surelyNotSops(bytes.toString('utf8'), format)) throw notSops(file);
      throw e;
    }
    return SecretsFile.fromText(text, file, opts);
  }

  /**
   * A new document (not written yet): a fresh data key, encrypted to `recipients`. `mode`: the mode the file is
   * created with if it does not exist when saved (default 0600, SECRETS_FILE_MODE: only its owner reads it).
   */
  static create(file: string, tree: MapNode, opts: { recipients: string[]; format?: Format; unencryptedSuffix?: string; openWith?: DecryptOptions; mode?: number }): SecretsFile {
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
    f.openedWith = opts.openWith ?? {};
    allowPath(file, f.openedWith.allow);
    f.setTree(tree);
    if (opts.mode !== undefined) f.createMode = opts.mode;
    return f;
  }

  /** The decrypted document, keys in file order. */
  get tree(): MapNode {
    return this.plain;
  }
  /**
   * The decrypted document as plain JS values, as the app gets them in the .env (toPlain 'dotenv'): a timestamp as a
   * SopsTime (as a variable's whole value without its fraction of a second, as sops's dotenv output gives it; inside
   * a map or list taken whole as JSON with it, as its JSON output does), an int as a bigint and a float as a number,
   * so that a whole float reaches the .env as sops exec-env gives it (`2.0`, not `2`).
   */
  get data(): { [key: string]: PlainValue } {
    return toPlain(this.plain, 'dotenv') as { [key: string]: PlainValue };
  }
  get recipients(): string[] {
    return [...this.recipientList];
  }
  get lastModified(): string | undefined {
    return this.original?.meta.lastModified;
  }

  /**
   * The values this file's sops rules leave unencrypted when it is written (a key ending in its unencrypted_suffix,
   * `_unencrypted` by default; unencrypted_regex, encrypted_regex, encrypted_suffix, the comment rules): readable
   * to anyone who reads the file. Each as its key path (showPath, a list item as `[i]`); empty strings, which sops
   * never encrypts, left out. Pure.
   */
  plaintextPaths(): string[] {
    const shouldEncrypt = encryptionRule(this.file, this.meta);
    const out: string[] = [];
    walkTree(this.plain, {
      leaf: (leaf, keys, path, stack) => {
        if (!shouldEncrypt(keys, stack) && !(leaf.type === 'str' && leaf.value === '')) out.push(showPath(path));
        return leaf;
      },
      comment: (c) => c,
    });
    return out;
  }

  /**
   * The warning for values of this file stored in plain text (`paths`, from plaintextPaths; `shown`: the file as
   * messages name it): what it means and how to encrypt them. Names keys only, never a value.
   */
  plaintextWarning(shown: string, paths: string[]): string {
    const one = paths.length === 1;
    return `${paths.join(', ')} ${one ? 'is' : 'are'} stored in plain text in ${shown}, not encrypted: the file's sops rules (${this.plaintextRules()}) leave ${one ? 'it' : 'them'} readable to anyone who reads the file, its git history too. For a secret, rename its key so that those rules encrypt it (e.g. not ending in "_unencrypted"); a value that is not secret can stay so`;
  }

  /** The file's sops rules that leave values unencrypted, in words (`unencrypted_suffix "_unencrypted"`...), for messages. */
  private plaintextRules(): string {
    const m = this.meta;
    const rules = [
      m.unencryptedSuffix && `unencrypted_suffix "${m.unencryptedSuffix}"`,
      m.encryptedSuffix && `encrypted_suffix "${m.encryptedSuffix}"`,
      m.unencryptedRegex && `unencrypted_regex`,
      m.encryptedRegex && `encrypted_regex`,
      m.unencryptedCommentRegex && `unencrypted_comment_regex`,
      m.encryptedCommentRegex && `encrypted_comment_regex`,
    ].filter(Boolean);
    return rules.join(', ');
  }

  /** The plaintext, in the file's format (YAML or JSON). */
  plaintext(): string {
    return printTree(this.plain, this.format, this.meta.layout);
  }

  /** Replace the whole document. */
  setTree(tree: MapNode): void {
    if (tree.kind !== 'map') throw new OpsError(`${this.file}: the top level must be a map`);
    if (getEntry(tree, 'sops')) throw new OpsError(`${this.file}: "sops" is reserved for sops's own metadata`, 'rename that top-level key');
    this.refuseMergeKeys(tree);
    this.refuseNegativeZeros(tree);
    this.plain = tree;
    allowKeys(tree, this.openedWith?.allow); // its keys (an edit's new ones too) are no secrets, named whole in messages
  }

  /**
   * A key `<<` is a YAML merge key to go-yaml, so to sops, however it is written (quoted too: sops writes it back
   * as `!!merge <<`), and its value must be a map or a list of maps: with any other value sops can no longer read
   * the file ("map merge requires map or sequence of maps as the value"; it refuses to encrypt one too). Refused
   * in a YAML file before it is written; JSON files have no merge keys.
   */
  private refuseMergeKeys(tree: MapNode): void {
    if (this.format !== 'yaml') return;
    const bad: string[] = [];
    const visit = (node: TreeNode, path: (string | number)[]) => {
      if (node.kind === 'list') node.items.forEach((n, i) => visit(n, [...path, i]));
      if (node.kind !== 'map') return;
      for (const [k, v] of node.entries) {
        if (k === '<<' && !(v.kind === 'map' || (v.kind === 'list' && v.items.every((i) => i.kind === 'map')))) bad.push(showPath([...path, k]));
        visit(v, [...path, k]);
      }
    };
    visit(tree, []);
    if (bad.length)
      throw new OpsError(
        `${bad.join(', ')}: a key "<<" is a YAML merge key to sops, whose value must be a map (or a list of maps): with this value sops could no longer read ${this.file}; nothing was written`,
        'name the key otherwise (e.g. merge or lshift); "<<" holds only a map sops merges',
      );
  }

  /** Paths (showPath) of the values of `tree` this file's sops rules leave unencrypted that are the float -0.0. Pure. */
  private plainNegativeZeros(tree: MapNode): string[] {
    const shouldEncrypt = encryptionRule(this.file, this.meta);
    const out: string[] = [];
    walkTree(tree, {
      leaf: (leaf, keys, path, stack) => {
        if (!shouldEncrypt(keys, stack) && isNegativeZero(leaf)) out.push(showPath(path));
        return leaf;
      },
      comment: (c) => c,
    });
    return out;
  }

  /**
   * A new or changed value left unencrypted that is the float -0.0 (plain-zero.ts: sops would write it as `-0` and
   * then fail its own MAC check on the file, and ops's JSON writer as well) is refused before anything is written,
   * naming its key; one the file already held is kept (a YAML file ops wrote, `-0.0`, reads back).
   */
  private refuseNegativeZeros(tree: MapNode): void {
    const had = new Set(this.plainNegativeZeros(this.plain));
    const bad = this.plainNegativeZeros(tree).filter((p) => !had.has(p));
    if (bad.length)
      throw new OpsError(
        `${this.file}: ${bad.join(', ')}: a value the file's sops rules leave unencrypted is the float -0.0: ${NEGATIVE_ZERO_WHY}; nothing was written`,
        `${NEGATIVE_ZERO_FIX}, or give ${bad.length === 1 ? 'it' : 'them'} a key those rules encrypt (e.g. not ending in "_unencrypted")`,
      );
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
        throw new OpsError(
          `cannot set ${path.join('.')}: ${path.slice(0, i + 1).join('.')} is ${what}, not a map`,
          current.kind === 'list' ? "key paths do not index lists: change the list's items with `ops secrets edit`" : 'choose another key path, or edit the file with `ops secrets edit`',
        );
      }
      const entries = [...map.entries];
      if (idx >= 0) entries[idx] = [key, next];
      else entries.push([key, next]);
      return { ...map, entries };
    };
    const plain = setIn(this.plain, 0);
    this.refuseMergeKeys(plain);
    this.refuseNegativeZeros(plain);
    this.plain = plain;
  }

  /**
   * Remove the key at `path` (ops secrets unset) with what it holds and its inline comment; the comment lines above it
   * stay, above what follows it (a heading of several keys is not lost). The maps holding it stay, empty or not.
   * Returns the node removed, or undefined when `path` names no key (nothing changed).
   */
  unset(path: string[]): TreeNode | undefined {
    let removed: TreeNode | undefined;
    const unsetIn = (map: MapNode, i: number): MapNode => {
      const idx = map.entries.findIndex(([k]) => k === path[i]);
      if (idx < 0) return map;
      const current = map.entries[idx]![1];
      if (i < path.length - 1) {
        if (current.kind !== 'map') return map;
        const entries = [...map.entries];
        entries[idx] = [path[i]!, unsetIn(current, i + 1)];
        return { ...map, entries };
      }
      removed = current;
      const comments = map.comments
        ?.filter((c) => !(c.before === idx && c.inline))
        .map((c) => (c.before > idx ? { ...c, before: c.before - 1 } : c));
      return { ...map, entries: map.entries.filter((_, j) => j !== idx), ...(comments && { comments }) };
    };
    const plain = path.length ? unsetIn(this.plain, 0) : this.plain;
    if (removed) this.plain = plain;
    return removed;
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
    if (this.recipientList.length === 0) throw new OpsError(`${this.file} has no recipients`, `add one: ${addRecipientHint(this.file)}`);
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
        return str(encryptScalar(leaf, key, aad, stash.take(aad, stashText(leaf))));
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

  /**
   * Write the file atomically if anything changed, and only over the version this object read or last wrote
   * (`replacing`: that text, or null when it did not exist): a change written meanwhile by another command is never
   * dropped (writeIfUnchanged). An existing file keeps its mode; a new one is created 0600 (or create's `mode`).
   * Returns whether it was written.
   * @throws ChangedOnDiskError (nothing written) when the file is no longer what was read; InterruptedError (nothing
   * written) when the opening options' `signal` aborts before the file's lock is taken.
   */
  async save(opts: RenderOptions = {}, replacing: string | null = this.onDisk): Promise<boolean> {
    const { text, changed } = await this.render(opts);
    if (!changed) return false;
    await writeIfUnchanged(this.file, text, replacing, undefined, this.createMode, this.openedWith.warn, this.openedWith.signal);
    this.onDisk = text;
    return true;
  }

  /** The data key, for interop tests (Debian's `age -d` must open each recipient's copy). */
  dataKeyForTests(): Buffer {
    return Buffer.from(this.dataKey);
  }
}

export interface DecryptedFile {
  /** The values as plain JS (objects, arrays, strings, numbers, bigints, booleans, null, SopsTime), as the .env gives them (SecretsFile.data). */
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
