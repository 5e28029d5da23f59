// The document model sops works on: an ordered tree of maps, lists and typed scalars. Key order is kept
// exactly (numeric-like keys included), because sops binds every value to its path and hashes values in
// document order. Here: the node types, walking, comparing, plain JS values. Parsing: tree-parse.ts; printing:
// tree-print.ts; a scalar's text as sops encrypts it: tree-scalars.ts. Nothing here knows about encryption.
import { InputError, OpsError } from '../errors.ts';
import { quote } from '../shell.ts';
import { SopsTime, intValue } from './goyaml.ts';
import { scalarText } from './tree-scalars.ts';

/**
 * sops's value types (`type:` in `ENC[...]`). `int` is Go's int64 (a bigint beyond 2^53, so it stays exact);
 * `time` is a YAML timestamp, held as Go's MarshalText writes it ("2024-01-15T00:00:00Z").
 */
export type ScalarType = 'str' | 'int' | 'float' | 'bool' | 'time';

export interface ScalarNode {
  kind: 'scalar';
  type: ScalarType;
  value: string | number | bigint | boolean;
  /**
   * Set on a `str` whose bytes are not UTF-8 text: a YAML `!!binary` value, which go-yaml hands sops as a Go
   * string of those bytes (sops encrypts and hashes the bytes, and writes them back as `!!binary <base64>`).
   * `value` is then their base64 text, for printing and comparing only: what the value is, is `bytes`.
   */
  bytes?: Uint8Array;
}

export interface NullNode {
  kind: 'null';
}

/**
 * A YAML comment, kept as sops keeps it (stores/yaml): its text after "#", and where it stands in its map or
 * list: before item `before` (the item count for one after the last item). `inline` when it followed a value
 * on that value's line. sops encrypts comments (type `comment`) with the path of their map as associated
 * data, and leaves them out of the MAC.
 */
export interface CommentNode {
  before: number;
  text: string;
  inline?: boolean;
}

export interface MapNode {
  kind: 'map';
  entries: [string, TreeNode][];
  comments?: CommentNode[];
}

export interface ListNode {
  kind: 'list';
  items: TreeNode[];
  comments?: CommentNode[];
}

export type TreeNode = ScalarNode | NullNode | MapNode | ListNode;

export type Format = 'yaml' | 'json';

/** What a plain JS value of a decrypted file looks like (a Uint8Array: a binary value, see ScalarNode.bytes). */
export type PlainValue = string | number | bigint | boolean | null | Uint8Array | SopsTime | PlainValue[] | { [key: string]: PlainValue };

/** A string scalar node. */
export const str = (value: string): ScalarNode => ({ kind: 'scalar', type: 'str', value });

/**
 * A string scalar of arbitrary bytes, as go-yaml decodes `!!binary` for sops: text when they are UTF-8, else a
 * binary node (`bytes` set, `value` their base64).
 */
export function bytesNode(bytes: Uint8Array): ScalarNode {
  const buf = Buffer.from(bytes);
  const text = buf.toString('utf8');
  return Buffer.from(text, 'utf8').equals(buf) ? str(text) : { kind: 'scalar', type: 'str', value: buf.toString('base64'), bytes: buf };
}

/**
 * The error for a binary value (see ScalarNode.bytes) where only text can go (`where`: "in the .env"), naming
 * the key path and what to do: store it as base64 text. The file itself is fine, and its other values usable.
 */
export function binaryRefused(path: string, where: string, env = '<env>'): OpsError {
  return new OpsError(
    `the secret "${path}" is a binary value (YAML !!binary: bytes that are not UTF-8 text); binary values are not supported ${where}`,
    `store it as base64 text and decode it where it is used: ops secrets show ${env} --key ${quote(path)} | base64 -w0 | ops secrets set ${env} ${quote(path)}`,
  );
}

/** Whether a plain value (toPlain) is or holds a binary value. */
export function holdsBinary(value: unknown): boolean {
  if (value instanceof Uint8Array) return true;
  if (Array.isArray(value)) return value.some(holdsBinary);
  return value !== null && typeof value === 'object' && Object.values(value).some(holdsBinary);
}

/**
 * The refusal of a sops file of the formats sops has besides YAML and JSON (its dotenv and INI stores): `written`
 * says how it was found to be one, when its name does not say so (its text: sopsStoreOf), and the hint then how
 * sops itself turns it into YAML under the same name (its creation rule chosen by that name), decrypting into a pipe
 * that sops encrypts from (stdin; an empty one it refuses, so a failed decrypt replaces nothing): no plaintext
 * file is left in the working tree, where it could be committed.
 */
export function unsupportedStore(file: string, store: 'dotenv' | 'INI', written?: 'text'): OpsError {
  if (!written) {
    const env = environmentFolderOf(file);
    return new OpsError(`${file}: dotenv and INI sops files are not supported`, `keep secrets in YAML${env ? ` (environments/${env}/secrets.sops.yaml)` : ''} or JSON`);
  }
  const type = store === 'INI' ? 'ini' : 'dotenv';
  const [f, next] = [quote(file), quote(`${file}.new`)];
  return new OpsError(
    `${file} is a sops file in ${store} format (\`sops encrypt\` keeps the format of the file it encrypts, whatever the name its output is saved under): dotenv and INI sops files are not supported`,
    `make it YAML with sops, the plaintext only in the pipe (never on disk): sops decrypt --input-type ${type} --output-type yaml ${f} | sops encrypt --filename-override ${f} --input-type yaml --output-type yaml > ${next} && mv ${next} ${f}`,
  );
}

/**
 * The environment whose folder holds `file` (the last `environments/<name>/` of its path: a project may sit in a
 * folder named so), or undefined for a file in none (sops-metadata.ts environmentOfFile). Pure.
 */
export function environmentFolderOf(file: string): string | undefined {
  return /^(?:.*\/)?environments\/([^/]+)\//.exec(file)?.[1];
}

/**
 * Whether a decrypted secrets tree (toPlain) is what sops's binary store makes: one key, `data`, holding text.
 * `sops encrypt` stores a file whose name says no format it knows (`secrets.txt`, `secrets.conf`, `secrets.toml`:
 * getsops/sops cmd/sops/formats, binary for any other extension) whole, as that one value, so `sops encrypt
 * secrets.txt > secrets.sops.yaml` gives a secrets file whose keys are all inside one string. Pure.
 */
export function isBinaryStoreData(data: unknown): boolean {
  return data !== null && typeof data === 'object' && !Array.isArray(data) && Object.keys(data).length === 1 && typeof (data as Record<string, unknown>).data === 'string';
}

/**
 * What to say of secrets file `file` (as the commands name it, from the project's root) whose tree is sops's binary
 * store (isBinaryStoreData) when a key is looked for in it: why it has none, and how sops itself makes it the YAML
 * file it was meant to be, its plaintext only in the pipe (never on disk; it must be YAML or JSON text).
 */
export function binaryStoreNote(file: string, env: string): { why: string; fix: string } {
  const [f, next] = [quote(file), quote(`${file}.new`)];
  return {
    why: `it holds one value, "data", as sops's binary format writes a whole file (\`sops encrypt\` of a name whose format it does not know, secrets.txt, saved as ${file}): the keys written in that text are no keys of the file`,
    fix: `make it YAML with sops, the plaintext only in the pipe (never on disk; the text must be YAML or JSON): sops decrypt --extract '["data"]' ${f} | sops encrypt --filename-override ${f} --input-type yaml --output-type yaml > ${next} && mv ${next} ${f}, then check it with \`ops secrets show ${env}\``,
  };
}

/** The format of a sops file by its name: .json is JSON, .yaml and .yml YAML. @throws OpsError for .env and .ini (unsupportedStore) and any other name. */
export function formatOf(file: string): Format {
  const lower = file.toLowerCase();
  if (lower.endsWith('.json')) return 'json';
  if (lower.endsWith('.yaml') || lower.endsWith('.yml')) return 'yaml';
  if (lower.endsWith('.env') || lower.endsWith('.ini')) throw unsupportedStore(file, lower.endsWith('.ini') ? 'INI' : 'dotenv');
  throw new OpsError(`${file}: cannot tell its format from its name`, 'name it *.yaml, *.yml or *.json');
}

/**
 * Where a decrypted secrets tree holds key path `path` (as `{ secret: … }` and `ops secrets show --key` name it) only
 * through YAML merge keys, as a YAML reader that merges would find it: the path the file holds it at (`db.<<.user` for
 * `db: { <<: *base }` and a base holding user; a key written in the map wins over a merged one, the first map of
 * `<<: [*a, *b]` over the next); undefined when no merge holds it. sops 3.13.3 keeps `<<` as a key of its own and merges nothing (README, "Secrets"),
 * so such a key is missing to sops (`sops decrypt --extract`), to the .env and to `show --key` alike. Pure.
 */
export function mergedOnlyPath(tree: unknown, path: string): string | undefined {
  const isMap = (n: unknown): n is Record<string, unknown> => n !== null && typeof n === 'object' && !Array.isArray(n) && !(n instanceof Uint8Array);
  // key `k` of map `n` as a merging reader finds it: the value, and the keys (list indexes too) that reach it from `n`
  const find = (n: unknown, k: string): { value: unknown; via: (string | number)[] } | undefined => {
    if (!isMap(n)) return undefined;
    if (Object.hasOwn(n, k)) return { value: n[k], via: [k] };
    if (!Object.hasOwn(n, '<<')) return undefined;
    const merged = n['<<'];
    for (const [i, source] of (Array.isArray(merged) ? merged : [merged]).entries()) {
      const f = find(source, k);
      if (f) return { value: f.value, via: ['<<', ...(Array.isArray(merged) ? [i] : []), ...f.via] };
    }
    return undefined;
  };
  const keysOf = (n: unknown): string[] => {
    if (!isMap(n)) return [];
    const merged = Object.hasOwn(n, '<<') ? n['<<'] : undefined;
    return [...Object.keys(n), ...(Array.isArray(merged) ? merged : [merged]).flatMap(keysOf)];
  };
  const walk = (keys: string[]) => keys.reduce<{ value: unknown; via: (string | number)[] } | undefined>((at, k) => {
    const f = at && find(at.value, k);
    return f && { value: f.value, via: [...at!.via, ...f.via] };
  }, { value: tree, via: [] });
  const found = walk(splitKeyPath(path, (keys) => keysOf(walk(keys)?.value)));
  return found && found.via.includes('<<') ? showPath(found.via) : undefined;
}

/** A key path for messages: `db.password`, `complex.array[1]`. */
export function showPath(path: (string | number)[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${p}` : p;
  return out || '(top level)';
}

/**
 * Rebuild a tree, passing every non-null scalar (in document order, the order sops walks) to `fn`.
 * `keys` is the path of map keys only (what sops uses as associated data); `path` includes list indices.
 */
export function mapLeaves<T extends TreeNode>(
  node: T,
  fn: (leaf: ScalarNode, keys: string[], path: (string | number)[]) => ScalarNode,
  keys: string[] = [],
  path: (string | number)[] = [],
): T {
  switch (node.kind) {
    case 'map':
      return { ...node, entries: node.entries.map(([k, v]) => [k, mapLeaves(v, fn, [...keys, k], [...path, k])]) } as T;
    case 'list':
      return { ...node, items: node.items.map((v, i) => mapLeaves(v, fn, keys, [...path, i])) } as T;
    case 'null':
      return node;
    case 'scalar':
      return fn(node, keys, path) as T;
  }
}

/** Rebuild a tree, passing every comment to `fn` with the map keys of the map or list holding it, and that map or list. */
export function mapComments<T extends TreeNode>(node: T, fn: (comment: CommentNode, keys: string[], branch: MapNode | ListNode) => CommentNode, keys: string[] = []): T {
  const own = (n: MapNode | ListNode) => (n.comments?.length ? { comments: n.comments.map((c) => fn(c, keys, n)) } : {});
  switch (node.kind) {
    case 'map':
      return { ...node, entries: node.entries.map(([k, v]) => [k, mapComments(v, fn, [...keys, k])]), ...own(node) } as T;
    case 'list':
      return { ...node, items: node.items.map((v) => mapComments(v, fn, keys)), ...own(node) } as T;
    default:
      return node;
  }
}

/**
 * The comments before a value or comment, one list per enclosing map or list (outermost first): those since
 * the previous item at that level, as they read in the tree. sops matches its comment rules against it.
 */
export type CommentStack = string[][];

export interface Walker {
  leaf(leaf: ScalarNode, keys: string[], path: (string | number)[], stack: CommentStack): ScalarNode;
  comment(comment: CommentNode, keys: string[], stack: CommentStack, branch: MapNode | ListNode): CommentNode;
}

/**
 * Rebuild a tree visiting values and comments in document order with their comment stack, as sops walks a
 * tree (sops.go walkBranch/walkSlice): a comment joins the stack of its level before it is visited; a value
 * clears its level after it.
 */
export function walkTree<T extends TreeNode>(node: T, walker: Walker, keys: string[] = [], path: (string | number)[] = [], stack: CommentStack = []): T {
  if (node.kind === 'scalar') return walker.leaf(node, keys, path, stack) as T;
  if (node.kind === 'null') return node;
  const level: string[] = [];
  const snapshot = (): CommentStack => [...stack.map((l) => [...l]), [...level]];
  const comments: CommentNode[] = [];
  const size = node.kind === 'map' ? node.entries.length : node.items.length;
  const visitComments = (i: number) => {
    for (const c of commentsAt(node, i)) {
      level.push(c.text);
      comments.push(walker.comment(c, keys, snapshot(), node));
    }
  };
  const walkItem = <V extends TreeNode>(i: number, value: V, k: string[], p: (string | number)[]): V => {
    visitComments(i);
    const out = walkTree(value, walker, k, p, snapshot());
    level.length = 0;
    return out;
  };
  let out: MapNode | ListNode;
  if (node.kind === 'map') out = { ...node, entries: node.entries.map(([k, v], i) => [k, walkItem(i, v, [...keys, k], [...path, k])]) };
  else out = { ...node, items: node.items.map((v, i) => walkItem(i, v, keys, [...path, i])) };
  visitComments(size);
  if (comments.length) out.comments = comments;
  return out as T;
}

/** The comments standing before item `i` of a map or list, in order. */
export function commentsAt(node: MapNode | ListNode, i: number): CommentNode[] {
  return (node.comments ?? []).filter((c) => c.before === i);
}

/** Call `fn` on every scalar of the tree, with its key path (map keys) and full path (keys and list indexes). */
export function forEachLeaf(node: TreeNode, fn: (leaf: ScalarNode, keys: string[], path: (string | number)[]) => void): void {
  mapLeaves(node, (leaf, keys, path) => {
    fn(leaf, keys, path);
    return leaf;
  });
}

function sameComments(a: MapNode | ListNode, b: MapNode | ListNode): boolean {
  const x = a.comments ?? [];
  const y = b.comments ?? [];
  return x.length === y.length && x.every((c, i) => c.before === y[i]!.before && c.text === y[i]!.text && Boolean(c.inline) === Boolean(y[i]!.inline));
}

/** Whether two trees hold the same keys, order and values (types included). */
export function treeEquals(a: TreeNode, b: TreeNode): boolean {
  if (a.kind !== b.kind) return false;
  switch (a.kind) {
    case 'null':
      return true;
    case 'scalar': {
      const s = b as ScalarNode;
      return a.type === s.type && Boolean(a.bytes) === Boolean(s.bytes) && (a.value === s.value || (typeof a.value === 'number' && Number.isNaN(a.value) && Number.isNaN(s.value)));
    }
    case 'list': {
      const l = b as ListNode;
      return sameComments(a, l) && a.items.length === l.items.length && a.items.every((v, i) => treeEquals(v, l.items[i]!));
    }
    case 'map': {
      const m = b as MapNode;
      return (
        sameComments(a, m) &&
        a.entries.length === m.entries.length &&
        a.entries.every(([k, v], i) => m.entries[i]![0] === k && treeEquals(v, m.entries[i]![1]))
      );
    }
  }
}

interface KeyPart {
  key: string;
  quoted: boolean;
}

const PATH_HINT = 'keys separated by dots, e.g. database_url or datapass.client_id; a key holding dots in double quotes: passwords."admin@example.org" (a quote inside it as \\")';

/**
 * The parts of a key path: dot-separated, a part in double quotes taken verbatim (dots included), but for `\"` and
 * `\\`, a quote and a backslash of the key. `show`: the path
 * is `ops secrets show <env> --key`'s (its refusals' hints say how to print, not how to set or edit); `unset`: `ops
 * secrets unset`'s (how to remove one); `set`: `ops secrets set`'s, its environment named in the hints; `reference`: an
 * `env` entry's or a setting's `{ secret: }` in environments/<env>/environment.yml, its environment named (else
 * `<env>`: a path read from elsewhere, with no environment known).
 */
function keyPathParts(text: string, show?: { env: string }, unset?: { env: string }, set?: { env: string }, reference?: { env: string }): KeyPart[] {
  const env = set?.env ?? reference?.env ?? '<env>';
  const parts: KeyPart[] = [];
  const bad = (why: string) => new InputError(`invalid key path "${text}": ${why}`, PATH_HINT);
  let i = 0;
  for (;;) {
    if (text[i] === '"') {
      // `\"` is a quote of the key and `\\` a backslash (quotePart writes them so); any other backslash is itself
      let key = '';
      let close = i + 1;
      for (; close < text.length && text[close] !== '"'; close++) {
        if (text[close] === '\\' && (text[close + 1] === '"' || text[close + 1] === '\\')) close++;
        key += text[close];
      }
      if (close >= text.length) throw bad('a quote is not closed (a quote inside a quoted key is written \\")');
      if (key === '') throw bad('an empty key ("")');
      parts.push({ key, quoted: true });
      i = close + 1;
      if (i < text.length && text[i] !== '.') throw bad('a quoted key must be followed by a dot or the end');
    } else {
      const dot = text.indexOf('.', i);
      const key = text.slice(i, dot < 0 ? text.length : dot);
      if (key === '') throw bad('an empty key (two dots in a row, or a dot at an end)');
      // A value typed into the key: `KEY=VALUE`, `KEY: VALUE` (copied from a secrets file) or `KEY VALUE`. It never
      // reaches a message, nor the file, whose key names sops keeps in clear text. A key whose name holds = or a
      // space (or a colon) is written in double quotes (as env's { secret: } references must write it too).
      const lead = key.length - key.trimStart().length;
      const rest = key.slice(lead);
      // `KEY:VALUE` too (no space: what follows may be a token): a key holding a colon is quoted like one holding =.
      const at = rest.search(/[=:]|[ \t]/);
      if (at >= 0 && (rest[at] === '=' || rest[at] === ':' || rest.slice(at).trim() !== '')) {
        const name = `${text.slice(0, i)}${rest.slice(0, at)}`;
        const sep = rest[at] === '=' ? '=' : rest[at] === ':' ? (/[ \t]/.test(rest[at + 1] ?? '') ? ': ' : ':') : ' ';
        const quoted = `a key whose name holds =, : or a space goes in double quotes: '"${name}${sep}..."'`;
        if (show)
          throw new InputError(
            `the key path holds "${name}${sep}…": a key path is a name, not KEY=VALUE, KEY: VALUE, KEY:VALUE or KEY VALUE (what follows "${name}" was not shown)`,
            `to print that key's value: ops secrets show ${show.env} --key ${name || '<key>'}; ${quoted}`,
          );
        // a reference in environment.yml: the key alone goes there, its value in the secrets file
        if (reference)
          throw new InputError(
            `the secret reference "${name}${sep}…" in environments/${reference.env}/environment.yml holds more than a key name: { secret: } names a key of the secrets file, not KEY=VALUE, KEY: VALUE, KEY:VALUE or KEY VALUE (what follows "${name}" was not shown)`,
            `write the key alone there, { secret: ${name || '<key>'} }, and its value in the secrets file: printf '%s' 'the value' | ops secrets set ${reference.env} ${name || '<key>'}; ${quoted}`,
          );
        // unset takes no value at all: the key alone is what it removes
        if (unset)
          throw new InputError(
            `the key path holds "${name}${sep}…": a key path is a name, not KEY=VALUE, KEY: VALUE, KEY:VALUE or KEY VALUE (what follows "${name}" was not shown), and unset takes no value; nothing was changed`,
            `to remove that key, give its name alone: ops secrets unset ${unset.env} ${name || '<key>'}; ${quoted}`,
          );
        throw new InputError(
          `the key path holds "${name}${sep}…": a key path is a name, not KEY=VALUE, KEY: VALUE, KEY:VALUE or KEY VALUE (what follows "${name}" was not shown: sops keeps key names in clear text, so a value there would be committed unencrypted); nothing was changed`,
          `give the value on stdin: printf '%s' 'the value' | ops secrets set ${env} ${name || '<key>'} (or ops secrets edit ${env}); ${quoted}`,
        );
      }
      // `list[0]` reads as an index, which key paths do not have: never taken as a new key named so
      if (/[[\]]/.test(key)) {
        // the path up to the [: the list meant (`list[0]`, `list.[0]`)
        const at = key.indexOf('[');
        const list = at > 0 ? `${text.slice(0, i)}${key.slice(0, at)}` : at === 0 && i > 0 ? text.slice(0, i - 1) : '';
        const whole = list ? `print the whole list: ops secrets show ${show?.env} --key ${/["\s]/.test(list) ? `'${list}'` : list}` : `\`ops secrets show ${show?.env}\` prints them all`;
        throw new InputError(
          `invalid key path "${text}": key paths do not index lists, and a key holding [ or ] must be in double quotes`,
          `${show ? `${whole} (a key path reaches a whole list, not an item)` : `change a list's items with \`ops secrets edit ${unset?.env ?? env}\` (a key path reaches a whole list, not an item)`}; a key whose name holds brackets: '"${key}"'`,
        );
      }
      parts.push({ key, quoted: false });
      i = dot < 0 ? text.length : dot;
    }
    if (i >= text.length) return parts;
    i++; // the dot
    if (i >= text.length) throw bad('an empty key (two dots in a row, or a dot at an end)');
  }
}

/**
 * A key path part as `ops secrets set`, `show --key` and `{ secret: ... }` read it back (splitKeyPath): as it is when
 * keyPathParts reads it so (one key, unquoted), else in double quotes: a dot, a leading quote, `=`, `:`, a space or
 * tab inside, `[` or `]` (`passwords."Jane Doe"`, `"redis:password"`), a `"` or `\` in it then written `\"`, `\\`
 * (`users."Dwayne \"The Rock\" Johnson"`). Pure.
 */
export function quotePart(k: string): string {
  try {
    const parts = keyPathParts(k);
    if (parts.length === 1 && !parts[0]!.quoted && parts[0]!.key === k) return k;
  } catch {
    // not readable unquoted (KEY=VALUE, KEY VALUE, brackets, an empty key): quoted below
  }
  return `"${k.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * A dotted key path as a user writes it (`datapass.client_id`, `passwords.admin@example.org`,
 * `passwords."new@example.org"`), split into keys against what exists: at each level the longest run of
 * dot-separated parts that names an existing key is one key (so a key holding dots, as e-mail keys do, is
 * reached as written and as showPath prints it); a part in double quotes is one key as written, dots included.
 * Where the path leaves what exists, each remaining part is a key of its own (new keys nest at every dot).
 * `keysAt(path)` gives the keys of the map at `path` (empty when there is none).
 *
 * `creating` (ops secrets set): where new keys would be a guess, the path is refused, the hint showing quoted
 * spellings: new unquoted parts with a dot between them under an existing map (`passwords.new@x.org` when
 * passwords has no `new@x.org`: one key holding dots, or nested keys?), or three or more at the top level. Two new
 * parts at the top level (`datapass.client_id`) make a map holding a key, as the README shows.
 * `show` (ops secrets show --key): refusals' hints say how to print a key; `unset` (ops secrets unset): how to remove one
 * (how to set one, otherwise; `set`: ops secrets set's, its environment named there; `reference`: a `{ secret: }` of
 * that environment's environment.yml).
 * @throws InputError (a usage error: exit 2) for an empty part ("a..b", ".a", "a.", `""`), an unclosed quote, or (creating) such an ambiguous key;
 * and for a path that names two existing keys as written (`db.password` beside a key "db.password" and
 * db: { password }), naming both in their quoted spellings, which name one each.
 */
export function splitKeyPath(text: string, keysAt: (path: string[]) => readonly string[], options: { creating?: boolean; show?: { env: string }; unset?: { env: string }; set?: { env: string }; reference?: { env: string } } = {}): string[] {
  const parts = keyPathParts(text, options.show, options.unset, options.set, options.reference);
  // Two secrets the path names as written (a key "db.password" beside db: { password }): the longest run would
  // take one of them silently, so a deploy could give the app the other's value than the one meant.
  const readings = existingReadings(parts, keysAt, 0, [], 2);
  if (readings.length > 1) {
    const [a, b] = readings as [string[], string[]];
    const which = (r: string[]) => (r.length === 1 ? `the key "${r[0]}"` : `the key ${quotePart(r[r.length - 1]!)} inside ${r.slice(0, -1).map(quotePart).join('.')}`);
    const quoted = (r: string[]) => `'${r.map((k) => `"${k}"`).join('.')}'`;
    throw new InputError(
      `the key path "${text}" names two secrets: ${which(a)}, and ${which(b)}`,
      `write the one meant with its keys in double quotes, ${quoted(a)} for the first, ${quoted(b)} for the second (as { secret: ... } in environment.yml, and for ops secrets set and show), or rename one of them (ops secrets edit)`,
    );
  }
  const path: string[] = [];
  for (let i = 0; i < parts.length; ) {
    if (parts[i]!.quoted) {
      path.push(parts[i]!.key);
      i++;
      continue;
    }
    const keys = new Set(keysAt(path));
    let run = i;
    while (run < parts.length && !parts[run]!.quoted) run++; // parts[i..run) are unquoted
    let end = run;
    while (end > i && !keys.has(parts.slice(i, end).map((p) => p.key).join('.'))) end--;
    if (end > i) {
      path.push(parts.slice(i, end).map((p) => p.key).join('.'));
      i = end;
      continue;
    }
    // a new key: the rest nests at every dot, unless that is a guess (see `creating`)
    const rest = parts.slice(i, run).map((p) => p.key);
    if (options.creating && rest.length > (path.length > 0 ? 1 : 2)) {
      const quoted = (keys: string[]) => keys.map((k) => `"${k}"`).join('.');
      const [one, nested] =
        path.length > 0
          ? [`${showPath(path)}."${rest.join('.')}"`, `${showPath(path)}.${quoted(rest)}`]
          : [`${rest[0]}."${rest.slice(1).join('.')}"`, quoted(rest)];
      throw new InputError(
        `the key path "${text}" is ambiguous: ${path.length > 0 ? `${showPath(path)} has no key ${rest.join('.')}` : `there is no key ${rest[0]}`}, and its new keys could hold dots or nest at each one`,
        `say which with double quotes (one quoted part is one key): '${one}' or '${nested}' (single quotes keep the shell off the double quotes)`,
      );
    }
    for (const p of parts.slice(i)) {
      if (options.creating) checkNewKey(p, options.set?.env);
      path.push(p.key);
    }
    break;
  }
  return path;
}

/**
 * The ways `parts` (from `from`, below `path`) name keys that all exist, a run of unquoted parts being one key holding
 * dots or several nested ones; at most `limit`, longest runs first (splitKeyPath's own reading is the first).
 * Only existing keys are followed, so the search is bounded by the tree, not by the number of dots.
 */
function existingReadings(parts: KeyPart[], keysAt: (path: string[]) => readonly string[], from: number, path: string[], limit: number): string[][] {
  if (from === parts.length) return path.length ? [path] : [];
  const keys = new Set(keysAt(path));
  if (parts[from]!.quoted) return keys.has(parts[from]!.key) ? existingReadings(parts, keysAt, from + 1, [...path, parts[from]!.key], limit) : [];
  let run = from;
  while (run < parts.length && !parts[run]!.quoted) run++;
  const found: string[][] = [];
  for (let end = run; end > from && found.length < limit; end--) {
    const key = parts.slice(from, end).map((p) => p.key).join('.');
    if (keys.has(key)) found.push(...existingReadings(parts, keysAt, end, [...path, key], limit - found.length));
  }
  return found;
}

/**
 * A new key `ops secrets set` would create, refused where it is a mistake the app never sees as meant: a space at an
 * end (a paste: `database_url ` beside `database_url`) or a control character (a newline).
 */
function checkNewKey(part: KeyPart, env = '<env>'): void {
  if (/^\s|\s$/.test(part.key) || /[\p{Cc}]/u.test(part.key))
    throw new InputError(
      `a new key ${JSON.stringify(part.key)} would be created with ${/[\p{Cc}]/u.test(part.key.trim()) ? 'a control character (a newline, a tab) in it' : 'a space or tab at an end'}: no env entry or app would name it so`,
      `type the key without it${part.key.trim() && !/[\p{Cc}]/u.test(part.key.trim()) ? ` (${part.key.trim()})` : ''}; ops secrets show ${env} lists the keys there are`,
    );
}

/** The keys of the map node at `path` under `node` (empty when it is not a map), for splitKeyPath. */
export function mapKeysAt(node: TreeNode, path: string[]): string[] {
  let at: TreeNode | undefined = node;
  for (const k of path) at = at?.kind === 'map' ? getEntry(at, k) : undefined;
  return at?.kind === 'map' ? at.entries.map(([k]) => k) : [];
}

/** The value of `key` in a map node, or undefined. */
export function getEntry(map: MapNode, key: string): TreeNode | undefined {
  return map.entries.find(([k]) => k === key)?.[1];
}

/**
 * The tree as plain JS values (objects, arrays, strings, numbers, booleans, null; a binary value as a Buffer), as
 * sops gives them: `'marshal'`, as its JSON and YAML output (`sops decrypt`), a timestamp as Go's MarshalText (its
 * fraction of a second kept), an int as a number (a bigint beyond 2^53), where an int and a whole float read the
 * same (`2`); or `'dotenv'`, as the app gets them in the .env (`sops exec-env`, `--output-type dotenv`; a map or
 * list taken whole, `--output-type json`), a timestamp as a SopsTime (whole seconds as a variable's whole value, its
 * fraction kept inside JSON), and an int always a bigint, so that a float is the only number and a whole one stays
 * a float: exec-env gives the float 2.0 as `2.0` and the int 2 as `2` (valueText).
 */
export function toPlain(node: TreeNode, view: 'marshal' | 'dotenv' = 'marshal'): PlainValue {
  switch (node.kind) {
    case 'null':
      return null;
    case 'scalar':
      if (view === 'dotenv' && node.type === 'time') return new SopsTime(node.value as string);
      if (view === 'dotenv' && node.type === 'int') return BigInt(node.value as number | bigint);
      return node.bytes ? Buffer.from(node.bytes) : node.value;
    case 'list':
      return node.items.map((item) => toPlain(item, view));
    case 'map': {
      const out: { [key: string]: PlainValue } = {};
      // defineProperty: a key named "__proto__" stays an ordinary key
      for (const [k, v] of node.entries) Object.defineProperty(out, k, { value: toPlain(v, view), enumerable: true, writable: true, configurable: true });
      return out;
    }
  }
}

/** A tree from plain JS values: whole numbers (and bigints in the 64-bit range) become `int`, others `float`. */
export function fromPlain(value: unknown, path: (string | number)[] = []): TreeNode {
  if (value === null || value === undefined) return { kind: 'null' };
  if (typeof value === 'string') return str(value);
  if (typeof value === 'boolean') return { kind: 'scalar', type: 'bool', value };
  if (typeof value === 'number') {
    return { kind: 'scalar', type: Number.isSafeInteger(value) ? 'int' : 'float', value };
  }
  if (typeof value === 'bigint') {
    if (value < -(2n ** 63n) || value >= 2n ** 63n) throw new OpsError(`${showPath(path)}: an integer out of the 64-bit range sops holds` /* never the value: it is a secret */);
    return { kind: 'scalar', type: 'int', value: intValue(value) };
  }
  if (value instanceof Uint8Array) return bytesNode(value);
  if (Array.isArray(value)) return { kind: 'list', items: value.map((v, i) => fromPlain(v, [...path, i])) };
  if (typeof value === 'object') {
    return { kind: 'map', entries: Object.entries(value).map(([k, v]) => [k, fromPlain(v, [...path, k])]) };
  }
  throw new OpsError(`${showPath(path)}: a ${typeof value} cannot be stored in a secrets file`);
}

export interface TreeChanges {
  added: string[];
  removed: string[];
  changed: string[];
}

/** Which key paths were added, removed or changed between two documents (names only, never values). */
export function diffTrees(before: MapNode, after: MapNode): TreeChanges {
  const flat = (tree: MapNode) => {
    const out = new Map<string, string>();
    const walk = (node: TreeNode, path: (string | number)[]) => {
      if (node.kind === 'map') {
        if (node.entries.length === 0 && path.length) out.set(showPath(path), '{}');
        for (const [k, v] of node.entries) walk(v, [...path, k]);
      } else if (node.kind === 'list') {
        if (node.items.length === 0) out.set(showPath(path), '[]');
        node.items.forEach((v, i) => walk(v, [...path, i]));
      } else out.set(showPath(path), node.kind === 'null' ? 'null' : `${node.type}${node.bytes ? '(binary)' : ''}:${scalarText(node)}`);
    };
    walk(tree, []);
    return out;
  };
  const a = flat(before);
  const b = flat(after);
  return {
    added: [...b.keys()].filter((k) => !a.has(k)),
    removed: [...a.keys()].filter((k) => !b.has(k)),
    changed: [...b.keys()].filter((k) => a.has(k) && a.get(k) !== b.get(k)),
  };
}
