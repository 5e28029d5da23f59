// `ops secrets edit`: the plaintext goes to a private temporary file (0600 in a 0700 directory, in memory where the
// machine has it: edit-copy.ts) for the user's editor, and comes back encrypted. An unchanged file is not rewritten; text that does not parse
// is offered back to the editor or dropped, never half-written; the temporary directory is removed
// whatever happens (a signal aborts the edit and still cleans up).
import { rmSync } from 'node:fs';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { distance } from '../config/schema-object.ts';
import { OpsError, formatError } from '../errors.ts';
import { quote } from '../shell.ts';
import { ChangedOnDiskError, InterruptedError, shownPath } from './atomic.ts';
import { makeCopyDir, type CopyPlaces } from './edit-copy.ts';
import { SECRETS_FILE_MODE, SecretsFile } from './sops.ts';
import { environmentOfFile } from './sops-metadata.ts';
import { type Retyped, type YamlConstruct, parseTree } from './tree-parse.ts';
import { maskedText, scalarText } from './tree-scalars.ts';
import { type Format, type ListNode, type MapNode, type TreeChanges, type TreeNode, bytesNode, diffTrees, forEachLeaf, getEntry, quotePart, showPath, str, treeEquals } from './tree.ts';
import { decodeUtf8 } from './utf8.ts';
import { weakSecretWarnings } from './weak.ts';

export interface EditorExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface EditIo {
  /** Run the user's editor on `file` and resolve when it exits. */
  edit(file: string): Promise<EditorExit>;
  /** Ask a yes/no question (default yes); resolves false on end of input or abort. */
  confirm(question: string): Promise<boolean>;
  warn(message: string): void;
  /** Aborts the edit (a signal): the editor is stopped, nothing is written. */
  signal?: AbortSignal;
  /**
   * Refuses (throws OpsError) a change of the decrypted data (`before` → `after`) that the environment could not
   * use, before anything is written: the .env's readers (core/ops/secrets.ts, secretsChangeCheck). Offered back
   * to the editor like invalid text.
   */
  check?(before: unknown, after: unknown): void;
  /** Called with the temporary file's path once it exists (tests check it is gone afterwards). */
  onTempFile?: (path: string) => void;
  /** Where the decrypted copy goes (makeCopyDir): /dev/shm, else the temporary directory, unless given (tests). */
  copyPlaces?: CopyPlaces;
}

export type EditResult =
  | { status: 'unchanged' }
  | { status: 'saved'; changes: TreeChanges }
  | { status: 'aborted'; reason: string };

/** What happens to a value typed plain that sops reads as another type (never the value itself). */
function retypedLine(r: Retyped, format: Format): string {
  const key = showPath(r.path);
  // sops's JSON store: an integer within int64 is an int, any other number a float64 (tree-parse.ts); go-yaml: digits
  // beyond uint64 (within it: refused, see goNode) are a float64 too, and so is any number with a fraction or an exponent
  if (r.type === 'float' && r.typed === 'digits') return `${key}: typed as an integer beyond the 64-bit range, which sops stores as a floating-point number: digits past the 17th are rounded, and the app would get it as sops writes such a float (1E+20 for 100000000000000000000)`;
  if (r.type === 'float' && r.typed === 'leading-zero') return `${key}: typed as digits with a leading 0, which sops reads as a floating-point number: leading zeros are dropped and digits past the 17th rounded`;
  if (r.type === 'float') return `${key}: typed as a number with a fraction or an exponent, which sops stores as a floating-point number, given back in another form (its shortest digits: trailing zeros dropped, an exponent as sops writes it, 1E+20 for 1e20, digits past the 17th rounded): the app would get another text`;
  if (r.type === 'int' && r.typed === 'leading-zero') return `${key}: typed as digits with a leading 0, which sops reads as an octal number: another number would be stored, without the leading 0`;
  if (r.typed === 'fraction') return `${key}: sops reads what was typed as a timestamp, which the .env gets as sops's dotenv output gives it, without its fraction of a second: the app would get whole seconds where it takes the value as a variable of its own (in a map or list taken whole as JSON, it keeps its fraction, as sops's JSON output does)`;
  const what = { int: 'an integer', float: 'a floating-point number', bool: 'a boolean', time: 'a timestamp', str: 'a string' }[r.type];
  return `${key}: sops reads what was typed as ${what}, stored in another form than typed`;
}

/**
 * The warning for values typed without quotes that sops stores in another form than typed (tree-parse.ts,
 * ParseOptions.retyped): each named by key and kind, never by value, and how to keep them as typed (quoted).
 * `would` is "would not be" (an edit, asked before saving) or "are not" (a file encrypted as it is).
 */
export function retypedWarning(retyped: Retyped[], format: Format, would: 'would not be' | 'are not'): string {
  const one = retyped.length === 1;
  const verb = one ? would.replace(/^are/, 'is') : would;
  return (
    `${one ? 'a value' : `${retyped.length} values`} typed without quotes ${verb} stored as typed:\n` +
    retyped.map((r) => `  ${retypedLine(r, format)}`).join('\n') +
    `\nto keep ${one ? 'it' : 'them'} as typed (text), put ${one ? 'it' : 'each'} in double quotes: ${format === 'json' ? '"key": "..."' : 'key: "..."'}`
  );
}

/** The type and text of the scalar at `path` (keys and list indexes), as diffTrees compares them; undefined where there is none. */
function leafText(tree: MapNode, path: (string | number)[]): string | undefined {
  const node = nodeAt(tree, path);
  return node?.kind === 'scalar' ? `${node.type}:${scalarText(node)}` : undefined;
}

/** Text with no content: only whitespace and # comments (YAML's; JSON has none). */
function isBlank(text: string): boolean {
  return text.split('\n').every((l) => /^\s*(#.*)?$/.test(l));
}

/** What each YAML construct does to a value typed plain (YamlConstruct.kind), never naming the value. */
const CONSTRUCT_MEANING: Record<Exclude<YamlConstruct['kind'], 'key-value'>, string> = {
  tag: 'starts with "!", which YAML reads as a tag (a type), not as part of the value: it would be stored emptied, changed or refused',
  alias: 'starts with "*", which YAML reads as an alias: it would be replaced by another value of this file (or by nothing)',
  anchor: 'starts with "&", which YAML reads as an anchor: its first word would be dropped from the value',
  comment: 'starts with "#", which YAML reads as a comment: the key would hold nothing (null)',
  trailing: 'holds " #" (a space, then #), where YAML starts a comment: the value would be cut short there (a comment goes on a line of its own)',
  'flow-map': 'held text, and now starts with "{", which YAML reads as a map written on one line: a map would be stored, not this text (for a map, write it in block form, one "key: value" per line below the key)',
  'flow-list': 'held text, and now starts with "[", which YAML reads as a list written on one line: a list would be stored, not this text (for a list, write it in block form, one "- item" per line below the key)',
  folded:
    'goes on over the line(s) below it (typed deeper than its key, without ": "), which YAML joins to the value with a space: the value would gain their words (a key typed without ": ", or indented too deep?); give each key its own line with ": " at its indentation, or, for text of several lines, write it as a block (key: |, the lines indented below)',
  null: 'held text, and now is a word YAML reads as null (null, Null, NULL or ~): the key would hold no value, not this text (for no value, leave it empty: key:)',
  'quoted-lines':
    'is quoted over several lines, which YAML joins with a space (an empty line between them: one line break): the line breaks typed would be lost (a PEM key or certificate pasted in quotes?); for text of several lines, write it as a block (key: |, the lines indented below), or write \\n for each line break inside double quotes on one line',
};

/** Constructs that change what a value typed plain means only where it replaces text (a string before). */
const ONLY_OVER_TEXT: ReadonlySet<YamlConstruct['kind']> = new Set(['flow-map', 'flow-list', 'null']);

/** The node at `path` (keys and list indexes) of `tree`; undefined where there is none. */
function nodeAt(tree: MapNode, path: (string | number)[]): TreeNode | undefined {
  let node: TreeNode | undefined = tree;
  for (const p of path) node = node?.kind === 'map' && typeof p === 'string' ? getEntry(node, p) : node?.kind === 'list' && typeof p === 'number' ? node.items[p] : undefined;
  return node;
}

/**
 * The constructs of an edited text (`found`) to refuse: each not `allowed` (the text as opened had it), and, for a
 * flow map or list or a null word, only where the file (`before`) held a string: typed over a password, `{abc}` or
 * `~` is text meant; for a new key, a list or null may be meant.
 */
function refusedConstructs(found: YamlConstruct[], allowed: (c: YamlConstruct) => boolean, before: MapNode): YamlConstruct[] {
  return found.filter((c) => {
    if (allowed(c)) return false;
    // a key named so already in the file is not a new slip (the file may hold one, written by ops secrets set)
    if (c.kind === 'key-value') return nodeAt(before, c.path) === undefined;
    if (!ONLY_OVER_TEXT.has(c.kind)) return true;
    const was = nodeAt(before, c.path);
    return was?.kind === 'scalar' && was.type === 'str' && !was.bytes;
  });
}

/** A construct as compared between texts: kind, tag and path (never shown: the tag is typed text). */
const constructId = (c: YamlConstruct) => JSON.stringify([c.kind, c.tag ?? '', c.path]);

/** The YAML constructs of `text` (ParseOptions.constructs); none when it does not parse. */
function constructsOf(text: string, format: Format): YamlConstruct[] {
  const found: YamlConstruct[] = [];
  if (format !== 'yaml') return found;
  try {
    parseTree(text, format, { file: 'the text', keys: 'lenient', constructs: found });
  } catch {
    return [];
  }
  return found;
}

/**
 * The warning for values whose typed text YAML gives a meaning of its own (a tag, an alias, an anchor, a comment:
 * tree-parse.ts, ParseOptions.constructs): each named by key, line and kind, never by value, and
 * how to keep it as typed (quoted).
 */
export function constructWarning(found: YamlConstruct[]): string {
  const one = found.length === 1;
  return (
    `${one ? 'a value' : `${found.length} values`} in the edited text would not be stored as typed:\n` +
    found.map((c) => `  ${showPath(c.path)} (line ${c.line}): ${CONSTRUCT_MEANING[c.kind as Exclude<YamlConstruct['kind'], 'key-value'>]}`).join('\n') +
    // quotes keep a tag, alias, comment... as text; a folded value's fix is said on its line (quoted, it folds too), and a quoted one is quoted already
    (found.some((c) => c.kind !== 'folded' && c.kind !== 'quoted-lines')
      ? `\nto keep ${one ? 'it' : 'each'} as typed (text), put it in double quotes: key: "!..." (inside, write \\" for a quote and \\\\ for a backslash), or in single quotes: key: '*...' (write '' for a quote)`
      : '')
  );
}

/**
 * A new key that looks like a value typed into its name (YamlConstruct `key-value`) as messages name it: its first
 * word (up to the first quote, space or ": ") only where the file had a key of that name there (the key the slip
 * dropped: a name, not a value), then "…"; any other such key as "…" alone: what follows a key's first word may be
 * a value, and so may a first word the file never had (a password typed at the wrong indentation).
 */
function keyValueName(path: (string | number)[], before: MapNode): { shown: string; name: string } {
  const key = String(path.at(-1));
  const name = key.split(/["'\s]|:[ \t]/)[0]!;
  const known = name !== '' && nodeAt(before, [...path.slice(0, -1), name]) !== undefined;
  const parent = path.slice(0, -1);
  if (known) return { shown: `${showPath([...parent, name])}…`, name };
  return { shown: parent.length ? `${showPath(parent)}.…` : '…', name: '' };
}

/**
 * The warning for new keys that look like a value typed into their name (`database_url "CHANGE-ME: x"` is the key
 * `database_url "CHANGE-ME`): each named by its first word only where that is a key the file had (keyValueName), by line and what its name
 * holds, and the key of that name the edit dropped, if any (`after` has no longer what `before` had); how to write
 * KEY: VALUE, and how to name such a key on purpose (in quotes, as ParseOptions.constructs does not record).
 */
function keyValueWarning(found: YamlConstruct[], before: MapNode, after: MapNode): string {
  const one = found.length === 1;
  const lines = found.map((c) => {
    const key = String(c.path.at(-1));
    const { shown, name } = keyValueName(c.path, before);
    const holds = /["']/.test(key) ? 'a quote' : /:[ \t]/.test(key) ? '": "' : 'a space after its first word';
    const old = [...c.path.slice(0, -1), name];
    const gone = name && nodeAt(after, old) === undefined ? `, and ${showPath(old)} is gone` : '';
    return `  ${shown} (line ${c.line}): a new key whose name holds ${holds}${gone}`;
  });
  return (
    `${one ? 'a new key' : `${found.length} new keys`} in the edited text ${one ? 'looks' : 'look'} like a value typed into the key's name (its ": " missing or misplaced?), which sops would store in clear text:\n` +
    `${lines.join('\n')}\n` +
    `write it KEY: VALUE (": " right after the key, the value in double quotes when it holds a quote or ": "); to name a key so on purpose, write the name in double quotes: "api token": ...`
  );
}

/** A map or list of `before` that `after` holds a single value (a scalar) in place of, with its path. */
interface ShapeLost {
  path: (string | number)[];
  was: MapNode | ListNode;
}

/**
 * The maps and lists of `before` that became one value in `after` (not null: emptied by deleting their lines; not
 * an empty one: nothing lost), in
 * document order: a line typed under `passwords:` without its ": " (`  admin@example.org Zq7`) is valid YAML that
 * makes the whole map one text. Pure.
 */
function shapesLost(before: TreeNode, after: TreeNode, path: (string | number)[] = []): ShapeLost[] {
  // an empty one ({} or []) loses nothing: given a value, it is filled
  if (before.kind === 'map' && after.kind === 'scalar') return before.entries.length ? [{ path, was: before }] : [];
  if (before.kind === 'list' && after.kind === 'scalar') return before.items.length ? [{ path, was: before }] : [];
  if (before.kind === 'map' && after.kind === 'map')
    return before.entries.flatMap(([k, v]) => {
      const now = getEntry(after, k);
      return now ? shapesLost(v, now, [...path, k]) : [];
    });
  if (before.kind === 'list' && after.kind === 'list') return before.items.flatMap((v, i) => (i < after.items.length ? shapesLost(v, after.items[i]!, [...path, i]) : []));
  return [];
}

/** A map's or list's size in words: "a map of 3 keys", "a list of 1 item". */
function sizeOf(node: MapNode | ListNode): string {
  const n = node.kind === 'map' ? node.entries.length : node.items.length;
  return `a ${node.kind} of ${n} ${node.kind === 'map' ? 'key' : 'item'}${n === 1 ? '' : 's'}`;
}

/**
 * The warning for maps and lists an edit turned into one value (shapesLost): each named by key and size (never
 * the value, nor the keys it held), and how to do it on purpose: `ops secrets set <env> <key> --replace`; for an
 * item of a list (key paths do not index lists), deleted in one edit and added in the next (an edit refuses the
 * change only where the value stays).
 */
function shapeWarning(lost: ShapeLost[], file: string): string {
  const env = environmentOfFile(file);
  const lines = lost.map(({ path, was }) => {
    const n = was.kind === 'map' ? was.entries.length : was.items.length;
    return `  ${showPath(path)}: held ${sizeOf(was)}, now one value: ${n === 1 ? 'it' : `all ${n}`} would be lost`;
  });
  // ops secrets set reaches keys only (no list index)
  const settable = lost.filter(({ path }) => path.every((p) => typeof p === 'string'));
  const set = settable.map(({ path }) => `ops secrets set ${env} ${quote((path as string[]).map(quotePart).join('.'))} --replace`);
  return (
    `${lost.length === 1 ? 'a map or list' : `${lost.length} maps or lists`} in the edited text became one value (a line typed without ": " after its key, or not indented under it?):\n` +
    `${lines.join('\n')}\n` +
    `put the keys or items back (one "key: value" or "- item" per line, indented under the key); to replace ${lost.length === 1 ? 'it' : 'them'} with one value on purpose: ` +
    [set.length ? `${set.join(', ')} (the value on stdin)` : '', set.length < lost.length ? `${set.length ? 'for an item of a list, ' : ''}delete it in one edit and add it with its value in the next` : ''].filter(Boolean).join('; ')
  );
}

/** A key of `before` gone from `after` while a key of a close name (a typo of it) came in its map: `from` → `to`. */
interface KeyRenamed {
  from: (string | number)[];
  to: (string | number)[];
}

/**
 * The keys an edit renamed by a slip: in a map both texts have, a key gone and a new key within a few typing
 * slips of it (edit distance 1 to 2, by the name's length, as "did you mean" does: distance()), in document
 * order: `client_id` → `clinet_id` saves valid YAML while the old key, and its value's name, are gone (a key
 * nothing reads is not refused by the .env's check). Each gone key paired once, with its closest new key. Pure.
 */
function keysRenamed(before: TreeNode, after: TreeNode, path: (string | number)[] = []): KeyRenamed[] {
  if (before.kind === 'list' && after.kind === 'list') return before.items.flatMap((v, i) => (i < after.items.length ? keysRenamed(v, after.items[i]!, [...path, i]) : []));
  if (before.kind !== 'map' || after.kind !== 'map') return [];
  const added = after.entries.map(([k]) => k).filter((k) => getEntry(before, k) === undefined);
  const out: KeyRenamed[] = [];
  for (const [k, v] of before.entries) {
    const now = getEntry(after, k);
    if (now) {
      out.push(...keysRenamed(v, now, [...path, k]));
      continue;
    }
    const near = added
      .map((a) => ({ a, d: distance(k.toLowerCase(), a.toLowerCase()) }))
      // 0: a change of case only (`Client_ID` → `client_id`), a slip too
      .filter(({ a, d }) => d <= Math.max(1, Math.floor(Math.min(k.length, a.length) / 4)))
      .sort((x, y) => x.d - y.d)[0];
    if (near) {
      added.splice(added.indexOf(near.a), 1);
      out.push({ from: [...path, k], to: [...path, near.a] });
    }
  }
  return out;
}

/**
 * The warning for keys an edit renamed by a slip (keysRenamed): each old and new name (names, never values), and
 * how to rename on purpose: in two edits, the new key added in one (or with ops secrets set), the old one deleted
 * in the next (neither alone is a rename to ask about).
 */
function renameWarning(renamed: KeyRenamed[], file: string): string {
  const one = renamed.length === 1;
  const env = environmentOfFile(file);
  const settable = renamed.filter(({ to }) => to.every((p) => typeof p === 'string'));
  const set = settable.map(({ to }) => `ops secrets set ${env} ${quote((to as string[]).map(quotePart).join('.'))}`);
  return (
    `${one ? 'a key' : `${renamed.length} keys`} in the edited text ${one ? 'was' : 'were'} renamed to a close name (a typo?): the old ${one ? 'key is' : 'keys are'} gone, and whatever reads ${one ? 'it' : 'them'} gets nothing:\n` +
    renamed.map(({ from, to }) => `  ${showPath(from)} → ${showPath(to)}`).join('\n') +
    `\nput the old name back; to rename on purpose, do it in two edits: add the new key (here, or with ${set.length ? `${set.join(', ')}, the value on stdin` : 'ops secrets set'}), then delete the old one in the next edit`
  );
}

/** How many times the editor is reopened on the user's text after the file changed on disk under it. */
const CONFLICT_ROUNDS = 3;
/** The first characters of the note lines put at the top of the text when the file changed on disk (dropped on save). */
const NOTE = '# ops: ';

/** The note put at the top of the user's text after `shown` changed on disk (names only, never values). */
function conflictNote(shown: string, changes: TreeChanges, round: number): string {
  const parts = [
    changes.added.length ? `added ${changes.added.join(', ')}` : '',
    changes.changed.length ? `changed ${changes.changed.join(', ')}` : '',
    changes.removed.length ? `removed ${changes.removed.join(', ')}` : '',
  ].filter(Boolean);
  const lines = [
    `${shown} was changed by another command while this text was open in the editor (round ${round} of ${CONFLICT_ROUNDS}):`,
    parts.length ? `meanwhile: ${parts.join('; ')}.` : 'its values are the same (only its encryption or recipients changed).',
    'Below is YOUR text, not saved yet: saving it replaces the file as it is now, so bring those changes into it',
    "(their values are not shown here; see them in another terminal with ops secrets show). These '# ops:' lines are dropped on save.",
  ];
  // a key holding a line break must not end the comment: the rest would be read as YAML
  return lines.map((l) => `${NOTE}${l.replace(/[\r\n\u2028\u2029\u0085]/g, ' ')}\n`).join('');
}

/** `text` without the note lines (conflictNote) at its top. */
/** dropNote on bytes that are not UTF-8 text (the note itself is ASCII): the `# ops:` lines at the top cut off. */
function dropNoteBytes(bytes: Buffer): Buffer {
  const note = Buffer.from(NOTE);
  let rest = bytes;
  for (let nl = rest.indexOf(0x0a); nl >= 0 && rest.subarray(0, note.length).equals(note); nl = rest.indexOf(0x0a)) rest = rest.subarray(nl + 1);
  return rest;
}

function dropNote(text: string): string {
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length - 1 && lines[i]!.startsWith(NOTE)) i++;
  return lines.slice(i).join('\n');
}


/**
 * Keep an edit that could not be saved (the file changed on disk under it) aside, encrypted to `recipients` as the
 * secrets file is, never as plaintext: `<name>.unsaved-edit-<UTC time>.sops.<ext>` beside `file` (`-2`, `-3`... when
 * that name is taken, e.g. two in the same second), mode 0600, or the secrets file's own where that is stricter
 * (0400 stays 0400). @returns its path. @throws the write's error (OpsError: nothing kept).
 */
async function keepAside(file: string, tree: MapNode, recipients: string[], format: Format, now = new Date()): Promise<string> {
  const mode = SECRETS_FILE_MODE & (await stat(file).then((s) => s.mode & 0o777, () => SECRETS_FILE_MODE));
  const stamp = now.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
  const stem = basename(file).replace(/\.sops\.(ya?ml|json)$/i, '').replace(/\.(ya?ml|json)$/i, '');
  const ext = format === 'json' ? 'json' : 'yaml';
  for (let n = 1; n <= 100; n++) {
    const aside = join(dirname(file), `${stem}.unsaved-edit-${stamp}${n > 1 ? `-${n}` : ''}.sops.${ext}`);
    const f = SecretsFile.create(aside, tree, { recipients, format, mode });
    try {
      await f.save(); // written only where no file is: over null (writeIfUnchanged)
      return aside;
    } catch (e) {
      if (!(e instanceof ChangedOnDiskError)) throw e;
    }
  }
  throw new OpsError(`cannot keep the unsaved edit beside ${shownPath(file)}: 100 files named ${stem}.unsaved-edit-${stamp}*.sops.${ext} already exist`, 'remove the old unsaved edits');
}

/** How to merge an edit kept aside at `aside` (shown) into `file`, for the end of an abort reason. */
function mergeHint(aside: string, file: string): string {
  const env = environmentOfFile(file);
  return `\n  to merge it: compare \`ops secrets decrypt ${aside}\` with \`ops secrets show ${env}\`, bring your changes in with \`ops secrets edit ${env}\`, then delete ${aside}`;
}

/** The key an edit kept aside holds the user's whole text under, when that text could not be stored as it stands. */
export const UNSAVED_TEXT_KEY = 'unsaved_edit_text';

/**
 * An edit aborted in a reopened round (`result`), kept aside (keepAside, encrypted to `base`'s recipients) so that
 * nothing typed is lost: the editor's text as left (`typed`, its bytes; blank or unreadable: `yours`, the text it was
 * reopened on), as YAML values when it parses to what was typed (no construct `allowed` refuses, nothing retyped, no
 * map or list become one value),
 * else whole, as one value (UNSAVED_TEXT_KEY; not UTF-8: its bytes, a binary value). Nothing is kept when the text
 * is the file's as it is now (`base`). @returns `result`, its reason naming the file kept and how to merge it.
 * @throws OpsError when it cannot be written (the abort reason said, the edit lost).
 */
async function keepReopened(result: { status: 'aborted'; reason: string }, typed: Buffer | undefined, yours: string, base: SecretsFile, allowed: (c: YamlConstruct) => boolean): Promise<EditResult> {
  let text: string | undefined;
  try {
    text = typed && dropNote(decodeUtf8(typed, 'the edited text'));
  } catch {
    text = undefined; // not UTF-8: kept as its bytes below
  }
  const fromEditor = text !== undefined && !isBlank(text) ? text : typed && text === undefined ? undefined : yours;
  let tree: MapNode | undefined;
  if (fromEditor !== undefined) {
    if (fromEditor === base.plaintext()) return result;
    try {
      const found: YamlConstruct[] = [];
      const retyped: Retyped[] = [];
      const t = parseTree(fromEditor, base.format, { file: 'the edited text', keys: 'lenient', retyped, constructs: found });
      if (treeEquals(t, base.tree)) return result;
      if (refusedConstructs(found, allowed, base.tree).length === 0 && shapesLost(base.tree, t).length === 0 && retyped.every((r) => leafText(base.tree, r.path) === leafText(t, r.path)) && !getEntry(t, 'sops')) tree = t;
    } catch (e) {
      if (!(e instanceof OpsError)) throw e; // not valid YAML: kept whole below
    }
  }
  const whole: MapNode = { kind: 'map', entries: [[UNSAVED_TEXT_KEY, fromEditor !== undefined ? str(fromEditor) : bytesNode(dropNoteBytes(typed!))]] };
  let aside: string;
  try {
    aside = shownPath(await keepAside(base.file, tree ?? whole, base.recipients, base.format));
  } catch (err) {
    if (!(err instanceof OpsError)) throw err;
    throw new OpsError(`${result.reason}; your edit could not be kept aside either: ${err.message}; it is lost`, err.hint);
  }
  const how = tree ? '' : ` (as you left it, which could not be saved as it stands: whole, as the value ${UNSAVED_TEXT_KEY})`;
  return { status: 'aborted', reason: `${result.reason}; your edit is kept, encrypted to the file's recipients, in ${aside}${how}${mergeHint(aside, base.file)}` };
}

/** A key path (showPath) as an edit names it: the outermost value typed in {...} or [...] holding it, else itself. */
function flowRoots(flows: YamlConstruct[]): (path: string) => string {
  const roots = flows.map((c) => showPath(c.path));
  const under = (p: string, r: string) => p === r || p.startsWith(`${r}.`) || p.startsWith(`${r}[`);
  // the outermost one typed on a line holds the others (`k: {a: [1]}`)
  const outer = roots.filter((r) => !roots.some((o) => o !== r && under(r, o)));
  return (p) => outer.find((r) => under(p, r)) ?? p;
}

/**
 * The changes of an edit with each value typed as a map or list on one line (`k: {a: 1}`, `k: [x]`: allowed over a
 * new key, one that held a map, a list or nothing) named by its own path only, never by the keys inside it: text
 * typed in braces may be a value meant as text (`password: {Zq7...}` is a map whose key is the password). `warn` is
 * told what was stored there (a map of N keys, a list of N items), still without them. Pure but for `warn`.
 */
function typedOnOneLine(changes: TreeChanges, flows: YamlConstruct[], tree: MapNode, warn: (message: string) => void): TreeChanges {
  if (!flows.length) return changes;
  const at = (path: (string | number)[]): TreeNode | undefined => {
    let node: TreeNode | undefined = tree;
    for (const p of path) node = node?.kind === 'map' && typeof p === 'string' ? getEntry(node, p) : node?.kind === 'list' && typeof p === 'number' ? node.items[p] : undefined;
    return node;
  };
  const outerOf = flowRoots(flows);
  const outer = flows.map((c) => showPath(c.path)).filter((p) => outerOf(p) === p);
  const collapse = (paths: string[]) => [...new Set(paths.map(outerOf))];
  const out = { added: collapse(changes.added), removed: collapse(changes.removed), changed: collapse(changes.changed) };
  const touched = new Set([...out.added, ...out.changed]);
  for (const c of flows) {
    const path = showPath(c.path);
    const node = at(c.path);
    if (!outer.includes(path) || !touched.has(path) || !node || (node.kind !== 'map' && node.kind !== 'list')) continue;
    const size = node.kind === 'map' ? `a map of ${node.entries.length} key${node.entries.length === 1 ? '' : 's'}` : `a list of ${node.items.length} item${node.items.length === 1 ? '' : 's'}`;
    warn(`${path} (line ${c.line}) was typed on one line in ${node.kind === 'map' ? '{...}' : '[...]'}: stored as ${size}, not as text (${node.kind === 'map' ? 'its keys are' : 'its items are'} not named here); if it was meant as text, edit it again and quote it (${path.split('.').at(-1)}: "...")`);
  }
  return out;
}

/**
 * `ops secrets edit`: the plaintext to a private temporary file (0600), the editor (`io.edit`), then the values
 * re-encrypted (unchanged ones keep their ciphertext); an emptied text (blank or comments only) aborts with
 * nothing changed; invalid YAML, or bytes that are not UTF-8 (decoded
 * strictly, utf8.ts), are offered back (`io.confirm`), and so is a value a deploy would refuse (`io.check`), and
 * a value YAML would read otherwise than typed (a tag `!x`, an alias `*x` (`<<: *base` too), an anchor `&x`, a
 * `#` comment, a plain value followed by ` #` on its line; over a value that held text, a flow map or list `{x}` `[x]`
 * or a null word `null` `~`; a plain value going on over the lines below it, folded into one: constructWarning) unless
 * it stood so in the text as opened; so is a new key typed plain
 * whose name holds a quote, ": " or a space between words (a value typed into it: keyValueWarning), and a map or list
 * that became one value (a nested line missing its ": ": shapeWarning), and a key renamed to a close name (a typo:
 * renameWarning; on purpose, in two edits); the file is not written until the text is valid.
 * A new or changed value that is weak (weak.ts) is saved with a warning (`io.warn`) naming its key.
 * When the file changed on disk while the editor was open (another command), the user is told which keys changed
 * (names only) and offered the editor again on their text, with a note at its top, up to 3 times; declined (or no
 * answer), or past the third, the edit is kept aside, encrypted to the file's recipients (keepAside), and named in
 * the abort reason with how to merge it; the file keeps the other command's change. An abort in a reopened round (a
 * refusal answered no, the editor failing, an emptied text, a signal) keeps the user's text aside the same way
 * (keepReopened), unless it is the file's as it is now.
 * @returns saved, unchanged, or aborted with the reason. The temporary file is removed whatever happens.
 */
export async function editSecrets(secrets: SecretsFile, io: EditIo): Promise<EditResult> {
  // In memory where the machine has it (/dev/shm): a kill -9 leaves no plaintext on a disk (edit-copy.ts).
  const dir = await makeCopyDir((m) => io.warn(m), io.copyPlaces);
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  process.on('exit', cleanup); // last resort if the process dies in between
  try {
    const tmp = join(dir, `secrets.${secrets.format}`);
    const shown = shownPath(secrets.file);
    // the file as last read from disk (reread when another command changed it meanwhile): what the edit is saved over
    let base = secrets;
    let before = base.tree;
    let beforeData = base.data;
    // the text put in the editor
    let original = before.entries.length === 0 ? '' : base.plaintext();
    // YAML constructs the text had as opened (a binary value sops writes as `!!binary`): kept as they are, not refused
    const allowed = new Set(constructsOf(original, secrets.format).map(constructId));
    let conflicts = 0;
    await writeFile(tmp, original, { mode: 0o600, flag: 'wx' });
    io.onTempFile?.(tmp);
    const aborted = (): EditResult | undefined =>
      io.signal?.aborted ? { status: 'aborted', reason: `interrupted (${String(io.signal.reason ?? 'signal')}); nothing was changed` } : undefined;
    /** Text refused for `warning`: undefined to reopen the editor on it (the user's answer), else the abort, for `reason`. */
    const offerBack = async (warning: string, reason: string): Promise<EditResult | undefined> => {
      io.warn(warning);
      if (await io.confirm('Reopen the editor to fix it? [Y/n] ')) return aborted();
      return aborted() ?? { status: 'aborted', reason };
    };
    // the user's text the editor was last reopened on (without the note), once the file changed on disk under an edit
    let yours: string | undefined;
    // set once the edit was kept aside (keepAside): an abort then has nothing more to keep
    let kept = false;
    // the values last typed as a map or list on one line ({...}, [...]): their keys may be text meant as a value
    let flows: YamlConstruct[] = [];
    const result = await (async (): Promise<EditResult> => {
      for (;;) {
        const exit = await io.edit(tmp);
        const stop = aborted();
        if (stop) return stop;
        if (exit.signal || exit.code !== 0) {
          const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
          return { status: 'aborted', reason: `the editor ${how}; nothing was changed` };
        }
        const bytes = await readFile(tmp);
        // after a change on disk, the text shown is the user's edit, not the file: saved even when left as it is
        if (conflicts === 0 && bytes.equals(Buffer.from(original, 'utf8'))) return { status: 'unchanged' };
        let text: string;
        try {
          // strictly: bytes that are not UTF-8 are offered back like invalid YAML, never stored as U+FFFD
          text = dropNote(decodeUtf8(bytes, 'the edited text'));
          // An emptied buffer is how editors abort (vim's :cq aside, git's "empty commit message"), or a slip:
          // never read as "delete every secret".
          if (isBlank(text)) {
            if (original === '') return { status: 'unchanged' };
            return {
              status: 'aborted',
              reason: `the edited text is empty (nothing but blank lines or comments): taken as an abort, nothing was changed (to delete secrets, remove their lines and keep the others; to delete them all, delete the file ${secrets.file})`,
            };
          }
          const typed: Retyped[] = [];
          const found: YamlConstruct[] = [];
          const tree = parseTree(text, secrets.format, { file: 'the edited text', keys: 'lenient', retyped: typed, constructs: found });
          const refused = refusedConstructs(found, (c) => allowed.has(constructId(c)), before);
          // a new key named like a value typed into it (`database_url "CHANGE-ME: x"`): asked, as invalid YAML is; first, so
          // that no later message names such a key (its name may hold a value: keyValueName masks it)
          const keyed = refused.filter((c) => c.kind === 'key-value');
          if (keyed.length) {
            const stop = await offerBack(
              keyValueWarning(keyed, before, tree),
              `${keyed.map((c) => keyValueName(c.path, before).shown).join(', ')} ${keyed.length === 1 ? 'looks' : 'look'} like a value typed into a key's name; nothing was changed`,
            );
            if (stop) return stop;
            continue;
          }
          // a password typed `!x`, `*x`, `&x y` or `#x` is not what YAML stores: asked, as invalid YAML is (not one the
          // text had as opened, e.g. a binary value sops writes as `!!binary`)
          const meant = refused.filter((c) => c.kind !== 'key-value');
          if (meant.length) {
            const stop = await offerBack(
              constructWarning(meant),
              `${[...new Set(meant.map((c) => showPath(c.path)))].join(', ')} would not be stored as typed (${meant.every((c) => c.kind === 'folded' || c.kind === 'quoted-lines') ? 'see above' : `quote ${meant.length === 1 ? 'it' : 'them'}`}); nothing was changed`,
            );
            if (stop) return stop;
            continue;
          }
          // a map or list become one value (a nested line missing its ": "): its keys would be lost, asked as invalid YAML is
          const lost = shapesLost(before, tree);
          if (lost.length) {
            const stop = await offerBack(
              shapeWarning(lost, secrets.file),
              `${lost.map(({ path, was }) => `${showPath(path)} (${sizeOf(was)})`).join(', ')} would become one value, ${lost.length === 1 ? 'its' : 'their'} keys or items lost; nothing was changed`,
            );
            if (stop) return stop;
            continue;
          }
          // a key renamed by a typo (client_id → clinet_id): the old one gone, asked as invalid YAML is
          const renamed = keysRenamed(before, tree);
          if (renamed.length) {
            const stop = await offerBack(
              renameWarning(renamed, secrets.file),
              `${renamed.map(({ from, to }) => `${showPath(from)} → ${showPath(to)}`).join(', ')}: ${renamed.length === 1 ? 'a key' : 'keys'} renamed to a close name (a typo?); nothing was changed`,
            );
            if (stop) return stop;
            continue;
          }
          // a value that would not be stored as typed (01234 is 668 to sops): asked, as invalid YAML is; not a value
          // left as it was shown (a stored 1e3 is shown as 1000.0, and reaches the .env as 1000.0: nothing new)
          const retyped = typed.filter((r) => leafText(before, r.path) !== leafText(tree, r.path));
          if (retyped.length) {
            const stop = await offerBack(
              retypedWarning(retyped, secrets.format, 'would not be'),
              `${retyped.map((r) => showPath(r.path)).join(', ')} would not be stored as typed (quote ${retyped.length === 1 ? 'it' : 'them'}); nothing was changed`,
            );
            if (stop) return stop;
            continue;
          }
          flows = found.filter((c) => (c.kind === 'flow-map' || c.kind === 'flow-list') && !allowed.has(constructId(c)));
          base.setTree(tree);
        } catch (e) {
          if (!(e instanceof OpsError)) throw e;
          const stop = await offerBack(formatError(e), 'the edited text was not valid; nothing was changed');
          if (stop) return stop;
          continue;
        }
        // a value every deploy or provision would refuse (a placeholder, a .env value its readers would not read back, a
        // packages secret provision would not write): offered back as invalid text is
        try {
          io.check?.(beforeData, base.data);
        } catch (e) {
          if (!(e instanceof OpsError)) throw e;
          const stop = await offerBack(formatError(e), 'a changed value would be refused by every deploy or provision (see above); nothing was changed');
          if (stop) return stop;
          continue;
        }
        const changes = typedOnOneLine(diffTrees(before, base.tree), flows, base.tree, io.warn);
        // a new or changed value that is weak is saved (a third party may dictate it), with a warning naming its key
        const old = new Map<string, string | undefined>();
        forEachLeaf(before, (leaf, _keys, path) => old.set(showPath(path), maskedText(leaf)));
        const named = flowRoots(flows);
        for (const w of weakSecretWarnings(base.tree, (text, path) => old.get(showPath(path)) !== text, (path) => named(showPath(path)))) io.warn(w);
        // a new or changed value the file's sops rules leave unencrypted (a key `x_unencrypted`): said, never silently in clear
        const now = new Map<string, string | undefined>();
        forEachLeaf(base.tree, (leaf, _keys, path) => now.set(showPath(path), maskedText(leaf)));
        const plain = base.plaintextPaths().filter((p) => !old.has(p) || old.get(p) !== now.get(p));
        if (plain.length) io.warn(base.plaintextWarning(shown, plain));
        const stop3 = aborted();
        if (stop3) return stop3;
        try {
          return (await base.save()) ? { status: 'saved', changes } : { status: 'unchanged' };
        } catch (e) {
          // interrupted while the save waited for the file's lock: nothing written, an abort like any other
          if (e instanceof InterruptedError) return { status: 'aborted', reason: e.message };
          if (!(e instanceof ChangedOnDiskError)) throw e;
          // Another command wrote the file while the editor was open: its change stays, and so does this edit (the
          // editor again on it, or kept aside encrypted), never written over the other's unseen.
          const edited = base.tree;
          let now: SecretsFile | undefined;
          try {
            now = await base.reopen();
          } catch (err) {
            if (!(err instanceof OpsError)) throw err; // removed, or no longer a sops file this key opens: kept aside below
          }
          const meanwhile = now ? diffTrees(before, now.tree) : undefined;
          const names = meanwhile ? [...meanwhile.added, ...meanwhile.changed, ...meanwhile.removed] : [];
          io.warn(
            `${shown} was changed by another command while it was open in the editor (another ops secrets command, a git checkout or pull?); ` +
              (now ? (names.length ? `keys changed there meanwhile: ${names.join(', ')}` : 'its values are the same (only its text or encryption changed)') : 'it can no longer be opened (removed?)') +
              '; your edit is not saved yet',
          );
          const again = now !== undefined && conflicts < CONFLICT_ROUNDS && (await io.confirm(`Reopen the editor on your text (with a note on what changed) to bring it in line, then save it over the file? [Y/n] `));
          // interrupted meanwhile (Ctrl-C at the question): the edit is kept aside all the same
          const stop = aborted();
          if (now && again && !stop) {
            conflicts++;
            base = now;
            before = now.tree;
            beforeData = now.data;
            original = conflictNote(shown, meanwhile!, conflicts) + text;
            yours = text;
            for (const c of constructsOf(now.plaintext(), secrets.format)) allowed.add(constructId(c));
            // a new file, 0600: the editor may have replaced the one it was given with one of the umask's mode (0644)
            await rm(tmp, { force: true });
            await writeFile(tmp, original, { mode: 0o600, flag: 'wx' });
            continue;
          }
          let aside: string;
          try {
            aside = shownPath(await keepAside(secrets.file, edited, (now ?? base).recipients, secrets.format));
          } catch (err) {
            if (!(err instanceof OpsError)) throw err;
            throw new OpsError(`this edit was not saved (${shown} keeps the other command's change), and could not be kept aside either: ${err.message}; your edit is lost`, err.hint);
          }
          kept = true;
          const why = stop && stop.status === 'aborted' ? `${stop.reason.replace(/; nothing was changed$/, '')}: this edit was not saved` : 'this edit was not saved';
          return {
            status: 'aborted',
            reason: `${why} (the file keeps the other command's change); your edit is kept, encrypted to the file's recipients, in ${aside}${mergeHint(aside, secrets.file)}`,
          };
        }
      }
    })();
    // An abort in a round reopened after a change on disk (a refusal answered no, the editor failing, an emptied
    // text, a signal) would lose an edit the user already made once: kept aside as a declined round's is.
    if (result.status !== 'aborted' || yours === undefined || kept) return result;
    const typed = await readFile(tmp).catch(() => undefined);
    return keepReopened(result, typed, yours, base, (c) => allowed.has(constructId(c)));
  } finally {
    cleanup();
    process.off('exit', cleanup);
  }
}
