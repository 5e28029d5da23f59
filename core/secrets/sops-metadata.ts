// A sops file's structure as sops writes it: the `sops` metadata section (recipients, MAC, lastmodified,
// the encryption rules: suffixes, regexes, comment rules, Shamir key groups), the check that a text is a sops
// file, and which values a rule encrypts. No decryption here.
import { isMap, isScalar, parseAllDocuments } from 'yaml';
import { OpsError } from '../errors.ts';
import { type GoRegexp, goRegexp } from './goregex.ts';
import { parseTree } from './tree-parse.ts';
import { MAX_NESTING, nestingDepth } from '../yaml-depth.ts';
import { CURRENT_LAYOUT, type Layout, detectLayout } from './tree-print.ts';
import { scalarText } from './tree-scalars.ts';
import { type CommentStack, type Format, type MapNode, type TreeNode, environmentFolderOf, formatOf, getEntry, unsupportedStore } from './tree.ts';

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
/**
 * The OpsError for `file`, no sops file (it has no top-level `sops` key: surelyNotSops). An environment's own secrets
 * file so (decrypted in place, `sops -d -i`; written by hand) is told how to restore or encrypt that file, not to
 * give another path.
 */
export const notSops = (file: string) => {
  const env = environmentFolderOf(file);
  const own = env !== undefined && /\/secrets\.sops\.yaml$/.test(file);
  const shown = own ? `environments/${env}/secrets.sops.yaml` : file;
  return new OpsError(
    `${file} is not a sops file: it has no "sops" section`,
    own
      ? `restore it (git checkout -- ${shown}), or encrypt what it holds in place: ops secrets encrypt ${shown} (a value that was committed or pushed in plain text is exposed: change it)`
      : NOT_SOPS_HINT,
  );
};

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
  if (!node) throw notSops(file);
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

/**
 * Whether `text`, read as plain YAML or JSON (none of sops's rules on values or keys), has a top-level `sops` key;
 * a text of several YAML documents, whether one of them has: undefined when it cannot be read at all (a syntax error).
 */
function hasSopsKey(text: string, format: Format): boolean | undefined {
  try {
    if (format === 'json') {
      const v: unknown = JSON.parse(text.replace(/^\uFEFF/, ''));
      return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.hasOwn(v, 'sops');
    }
    if (nestingDepth(text) > MAX_NESTING) return undefined; // parseTree refused it: a parser would exhaust the stack
    const docs = parseAllDocuments(text, { uniqueKeys: false });
    if (!Array.isArray(docs) || docs.length === 0 || docs.some((d) => d.errors.length)) return undefined;
    return docs.some((d) => isMap(d.contents) && d.contents.items.some((pair) => isScalar(pair.key) && pair.key.value === 'sops'));
  } catch {
    return undefined;
  }
}

/**
 * Whether `text` (a file's bytes decoded, leniently for bytes that are not UTF-8) is surely no sops file: read as
 * plain YAML or JSON, no document of it has a top-level `sops` key. A file this says so of is said to be "not a
 * sops file" whatever else is wrong with it (several documents, bytes that are not UTF-8, values sops refuses).
 */
export function surelyNotSops(text: string, format: Format): boolean {
  return hasSopsKey(text, format) === false;
}

/**
 * The store of sops's other than YAML and JSON that wrote `text`, whatever the file's name: dotenv (its metadata as
 * `sops_mac=ENC[...]` and `sops_version=` lines, getsops/sops stores/dotenv) or INI (a `[sops]` section holding
 * `mac = ENC[...]`, stores/ini); undefined for any other text. Neither line can start a line of a YAML or JSON sops
 * file, whose metadata is the `sops` map. Pure.
 */
export function sopsStoreOf(text: string): 'dotenv' | 'INI' | undefined {
  if (/^sops_mac=ENC\[/m.test(text) && /^sops_version=/m.test(text)) return 'dotenv';
  if (/^\[sops\][ \t]*\r?$/m.test(text) && /^mac[ \t]*=[ \t]*ENC\[/m.test(text)) return 'INI';
  return undefined;
}

/**
 * Parse an encrypted sops document (YAML or JSON) without decrypting anything.
 * @throws OpsError: a sops file in dotenv or INI format (sopsStoreOf) is said to be one, whatever its name; any other
 * file without a top-level `sops` key is said to be no sops file, before anything its values break of sops's rules
 * (an integer above int64, a non-string key: `quote it` is no advice for a file never encrypted).
 */
export function parseSops(text: string, file: string, format: Format = formatOf(file)): EncryptedDocument {
  let tree: MapNode;
  try {
    tree = parseTree(text, format, { file, keys: 'strict' });
  } catch (e) {
    const store = sopsStoreOf(text);
    if (store) throw unsupportedStore(file, store, 'text');
    if (e instanceof OpsError && surelyNotSops(text, format)) throw notSops(file);
    throw e;
  }
  const sops = getEntry(tree, 'sops');
  const store = sops ? undefined : sopsStoreOf(text);
  if (store) throw unsupportedStore(file, store, 'text');
  const meta = parseMetadata(file, sops);
  meta.layout = detectLayout(text, format, sops?.kind === 'map' ? sops : undefined);
  const at = tree.entries.findIndex(([k]) => k === 'sops');
  const comments = tree.comments?.map((c) => (c.before > at ? { ...c, before: c.before - 1 } : c));
  const data: MapNode = { kind: 'map', entries: tree.entries.filter(([k]) => k !== 'sops'), ...(comments ? { comments } : {}) };
  return { file, format, data: listCommentsAsComments(data), meta, text };
}

/**
 * True when the text is a sops-encrypted document (a top-level `sops` map with `mac` and `lastmodified`). A text
 * without those three words is not one and is not parsed: a 30 MB plain initdata file took minutes to be told
 * apart (a key spelled with escapes, "\x73ops", is not what sops or a person writes).
 */
export function isSopsText(text: string, format: Format): boolean {
  if (!text.includes('sops') || !text.includes('lastmodified') || !text.includes('mac')) return false;
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

/**
 * The environment a file of the project belongs to (the folder under `environments/` it is in: its secrets file, or a
 * file of its assets/), for the commands a message names (`ops secrets recipients qa add ...`); `<env>` when the file is
 * in no environment's folder. Pure.
 */
export function environmentOfFile(file: string): string {
  return environmentFolderOf(file) ?? '<env>';
}

/**
 * How a recipient is added to `file`, for a hint: `ops secrets recipients <its environment> add <age1...>` for a file
 * of an environment's folder; for one in none (a copy elsewhere, a project file outside environments/), which ops
 * keeps no recipients for, sops's own way: the public key in the `.sops.yaml` creation rule matching the file, then
 * `sops updatekeys` (run by someone who can decrypt it). Pure.
 */
export function addRecipientHint(file: string): string {
  const env = environmentFolderOf(file);
  return env ? `\`ops secrets recipients ${env} add <age1...>\`` : `the public key added to the .sops.yaml creation rule matching ${file}, then \`sops updatekeys ${file}\``;
}

/** How `file` is edited, for a hint: `ops secrets edit <env>` for an environment's secrets file, `sops edit FILE` otherwise. Pure. */
export function editCommand(file: string): string {
  const env = environmentFolderOf(file);
  return env && /\/secrets\.sops\.yaml$/.test(file) ? `ops secrets edit ${env}` : `sops edit ${file}`;
}

