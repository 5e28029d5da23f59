// The document model sops works on: an ordered tree of maps, lists and typed scalars. Key order is kept
// exactly (numeric-like keys included), because sops binds every value to its path and hashes values in
// document order. Parsing and printing of YAML and JSON live here; nothing here knows about encryption.
import { Document, Pair, Scalar, YAMLMap, YAMLSeq, isAlias, isMap, isScalar, isSeq, parseAllDocuments, visit, type Node as YamlNode } from 'yaml';
import { OpsError } from '../errors.ts';
import { type Anchor, type Branch, commentTokens, placeComments, positions } from './comments.ts';
import { type GoScalar, intValue, parseRfc3339, plainChangesMeaning, resolveScalar } from './goyaml.ts';

/**
 * sops's value types (`type:` in `ENC[...]`). `int` is Go's int64 (a bigint beyond 2^53, so it stays exact);
 * `time` is a YAML timestamp, held as Go's MarshalText writes it ("2024-01-15T00:00:00Z").
 */
export type ScalarType = 'str' | 'int' | 'float' | 'bool' | 'time';

export interface ScalarNode {
  kind: 'scalar';
  type: ScalarType;
  value: string | number | bigint | boolean;
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

/** What a plain JS value of a decrypted file looks like. */
export type PlainValue = string | number | bigint | boolean | null | PlainValue[] | { [key: string]: PlainValue };

/** A string scalar node. */
export const str = (value: string): ScalarNode => ({ kind: 'scalar', type: 'str', value });

// ---------------------------------------------------------------------------------------------------
// Format detection

/** The format of a sops file by its name: .json is JSON, anything else YAML. */
export function formatOf(file: string): Format {
  const lower = file.toLowerCase();
  if (lower.endsWith('.json')) return 'json';
  if (lower.endsWith('.yaml') || lower.endsWith('.yml')) return 'yaml';
  if (lower.endsWith('.env') || lower.endsWith('.ini')) {
    throw new OpsError(
      `${file}: dotenv and INI sops files are not supported`,
      'keep secrets in YAML (environments/<env>/secrets.sops.yaml) or JSON',
    );
  }
  throw new OpsError(`${file}: cannot tell its format from its name`, 'name it *.yaml, *.yml or *.json');
}

// ---------------------------------------------------------------------------------------------------
// Go-compatible number formatting (sops is written in Go: these strings are what gets encrypted and hashed)

/** strconv.FormatFloat(v, 'f', -1, 64): the shortest digits that round-trip, never an exponent. */
export function goFormatFloat(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (v === 0) return Object.is(v, -0) ? '-0' : '0';
  const s = String(v); // ECMAScript gives the shortest round-trip digits too
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return s;
  const [, sign, lead, frac = '', expText] = m;
  const digits = lead! + frac;
  const point = 1 + Number(expText); // position of the decimal point within `digits`
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length);
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** The bytes sops encrypts and hashes for a scalar (Go's ToBytes). */
export function scalarText(node: ScalarNode): string {
  switch (node.type) {
    case 'str':
      return node.value as string;
    case 'int':
      return String(node.value);
    case 'float':
      return goFormatFloat(node.value as number);
    case 'bool':
      return node.value ? 'True' : 'False';
    case 'time':
      return node.value as string;
  }
}

/** Parse decrypted text back to a typed scalar, with Go's strconv rules. Throws a plain Error. */
export function parseScalarText(text: string, type: string): ScalarNode {
  switch (type) {
    case 'str':
    case 'bytes':
      return str(text);
    case 'int':
    case 'int64': {
      // strconv.Atoi: base 10, an optional sign, within int64
      if (!/^[+-]?\d+$/.test(text)) throw new Error(`"int" value is not an integer`);
      const n = BigInt(text);
      if (n < -(2n ** 63n) || n >= 2n ** 63n) throw new Error('"int" value is out of the 64-bit range');
      return { kind: 'scalar', type: 'int', value: intValue(n) };
    }
    case 'time': {
      const t = parseRfc3339(text);
      if (!t) throw new Error('"time" value is not an RFC 3339 time');
      return { kind: 'scalar', type: 'time', value: t };
    }
    case 'float': {
      let n: number;
      if (/^[+-]?(inf|infinity)$/i.test(text)) n = text.startsWith('-') ? -Infinity : Infinity;
      else if (/^nan$/i.test(text)) n = NaN;
      else if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) n = Number(text);
      else throw new Error(`"float" value is not a number`);
      return { kind: 'scalar', type: 'float', value: n };
    }
    case 'bool':
      if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return { kind: 'scalar', type: 'bool', value: true };
      if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return { kind: 'scalar', type: 'bool', value: false };
      throw new Error(`"bool" value is neither true nor false`);
    default:
      throw new Error(`unknown value type "${type}" (this tool reads str, int, float, bool, time)`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Walking

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
      return a.type === s.type && (a.value === s.value || (typeof a.value === 'number' && Number.isNaN(a.value) && Number.isNaN(s.value)));
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

/** The value of `key` in a map node, or undefined. */
export function getEntry(map: MapNode, key: string): TreeNode | undefined {
  return map.entries.find(([k]) => k === key)?.[1];
}

// ---------------------------------------------------------------------------------------------------
// Plain JS values

/** The tree as plain JS values (objects, arrays, strings, numbers, booleans, null). */
export function toPlain(node: TreeNode): PlainValue {
  switch (node.kind) {
    case 'null':
      return null;
    case 'scalar':
      return node.value;
    case 'list':
      return node.items.map(toPlain);
    case 'map': {
      const out: { [key: string]: PlainValue } = {};
      // defineProperty: a key named "__proto__" stays an ordinary key
      for (const [k, v] of node.entries) Object.defineProperty(out, k, { value: toPlain(v), enumerable: true, writable: true, configurable: true });
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
    if (value < -(2n ** 63n) || value >= 2n ** 63n) throw new OpsError(`${showPath(path)}: the integer ${value} is out of the 64-bit range sops holds`);
    return { kind: 'scalar', type: 'int', value: intValue(value) };
  }
  if (Array.isArray(value)) return { kind: 'list', items: value.map((v, i) => fromPlain(v, [...path, i])) };
  if (typeof value === 'object') {
    return { kind: 'map', entries: Object.entries(value).map(([k, v]) => [k, fromPlain(v, [...path, k])]) };
  }
  throw new OpsError(`${showPath(path)}: a ${typeof value} cannot be stored in a secrets file`);
}

// ---------------------------------------------------------------------------------------------------
// Parsing

export interface ParseOptions {
  /** For messages: the file the text came from. */
  file: string;
  /**
   * `strict` (encrypted files): a non-string map key is an error, as in sops.
   * `lenient` (text a person typed): `123:` or `true:` become the string keys "123", "true".
   */
  keys?: 'strict' | 'lenient';
}

function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const col = offset - before.lastIndexOf('\n');
  return `line ${line}, column ${col}`;
}

/** A Go scalar as a tree node; a uint64 (which sops cannot encrypt either) is an error naming where. */
function goNode(v: GoScalar, where: () => string): ScalarNode | NullNode {
  if (v.type === 'null') return { kind: 'null' };
  if (v.type === 'uint64') throw new OpsError(`${where()}: the integer ${v.value} is above the 64-bit signed range sops accepts`, 'quote it to store it as a string');
  return { kind: 'scalar', type: v.type, value: v.value } as ScalarNode;
}

/**
 * Parse YAML or JSON into a tree whose top level is a map, reading values as sops does: YAML scalars with
 * go-yaml v3's rules (goyaml.ts), JSON numbers as Go's json.Number normalised by sops (an integer in the
 * 64-bit range is an `int`, anything else a `float`). Errors name the file and the place, never the text.
 */
export function parseTree(text: string, format: Format, options: ParseOptions): MapNode {
  const { file } = options;
  const docs = parseAllDocuments(text, {
    intAsBigInt: true,
    uniqueKeys: true,
    prettyErrors: false,
    // YAML: every scalar as its source text, resolved below as Go does; JSON: the JSON schema
    schema: format === 'json' ? 'json' : 'failsafe',
    merge: false,
    keepSourceTokens: false,
  });
  if (!Array.isArray(docs) || docs.length === 0) return { kind: 'map', entries: [] };
  if (docs.length > 1) {
    throw new OpsError(`${file} holds ${docs.length} YAML documents`, 'keep one document (no `---` separators) per secrets file');
  }
  const doc = docs[0]!;
  const err = doc.errors[0];
  if (err) {
    const where = err.pos ? ` at ${lineCol(text, err.pos[0])}` : '';
    // err.message is the parser's message only: no excerpt of the text (it may hold secrets)
    throw new OpsError(`${file} is not valid ${format === 'json' ? 'JSON' : 'YAML'}${where}: ${err.message.split('\n')[0]}`, 'fix the syntax and try again');
  }
  const scalar = (node: Scalar, path: (string | number)[]): ScalarNode | NullNode => {
    const v = node.value;
    const where = () => `${file}: ${showPath(path)}`;
    if (format === 'json') {
      if (v === null || v === undefined) return { kind: 'null' };
      if (typeof v === 'string') return str(v);
      if (typeof v === 'boolean') return { kind: 'scalar', type: 'bool', value: v };
      if (typeof v === 'bigint') return v >= -(2n ** 63n) && v < 2n ** 63n ? { kind: 'scalar', type: 'int', value: intValue(v) } : { kind: 'scalar', type: 'float', value: Number(v) };
      if (typeof v === 'number') return { kind: 'scalar', type: 'float', value: v };
      throw new OpsError(`${where()}: unsupported value`, 'use strings, numbers, booleans, lists and maps only');
    }
    // !!binary: the parser has decoded it already; sops holds the bytes as text
    if (v instanceof Uint8Array) return str(Buffer.from(v).toString('utf8'));
    try {
      return goNode(resolveScalar(String(v ?? ''), node.type === 'PLAIN' || node.type === undefined, node.tag), where);
    } catch (e) {
      if (e instanceof OpsError) throw e;
      throw new OpsError(`${where()}: ${(e as Error).message}`, 'remove the tag, or give a value of that type');
    }
  };
  const root = doc.contents;
  if (root === null || (isScalar(root) && scalar(root, []).kind === 'null')) return { kind: 'map', entries: [] };
  if (!isMap(root)) {
    throw new OpsError(`${file}: the top level must be a map of keys to values`, 'write it as `key: value` lines');
  }
  let aliases = 0;
  // Where each map key and list item stands (YAML), to place the comments afterwards
  const at = positions(text);
  const anchors: Anchor[] = [];
  const anchor = (offset: number | undefined, branch: Branch, index: number, value: unknown): Anchor | undefined => {
    if (format !== 'yaml' || offset === undefined || aliases) return undefined;
    const { line, col } = at(offset);
    const v = isAlias(value) ? undefined : (value as { range?: number[]; flow?: boolean } | null);
    const scalarOnLine = !(isMap(v) || isSeq(v)) || Boolean(v?.flow) || (v?.range ? at(v.range[0]!).line === line : true);
    const a: Anchor = { offset, line, col, branch, index, scalarOnLine };
    anchors.push(a);
    return a;
  };
  const offsetOf = (node: unknown): number | undefined => (node as { range?: number[] } | null)?.range?.[0];
  const convert = (node: unknown, path: (string | number)[], parent?: Anchor): TreeNode => {
    if (isAlias(node)) {
      if (++aliases > 1000) throw new OpsError(`${file}: too many YAML aliases`, 'expand the aliases (*name) by hand');
      if (path.length > 100) throw new OpsError(`${file}: ${showPath(path)}: nesting is too deep (recursive alias?)`);
      const resolved = convert(node.resolve(doc), path);
      aliases--;
      return resolved;
    }
    if (path.length > 100) throw new OpsError(`${file}: ${showPath(path)}: nesting is too deep`);
    if (isMap(node)) {
      const out: MapNode = { kind: 'map', entries: [] };
      const branch: Branch = { node: out, col: 0, parent };
      node.items.forEach((pair, i) => {
        const key = keyOf(pair.key, path);
        const a = anchor(offsetOf(pair.key), branch, i, pair.value);
        if (a && i === 0) branch.col = a.col;
        out.entries.push([key, convert(pair.value, [...path, key], a)]);
      });
      if (!parent && path.length === 0) rootBranch = branch;
      return out;
    }
    if (isSeq(node)) {
      const out: ListNode = { kind: 'list', items: [] };
      const branch: Branch = { node: out, col: 0, parent };
      node.items.forEach((item, i) => {
        // a block item's position is its "-"
        let o = offsetOf(item);
        if (o !== undefined && !node.flow) {
          let d = o - 1;
          while (d >= 0 && (text[d] === ' ' || text[d] === '\t')) d--;
          if (text[d] === '-') o = d;
        }
        const a = anchor(o, branch, i, item);
        if (a && i === 0) branch.col = a.col;
        out.items.push(convert(item, [...path, i], a));
      });
      return out;
    }
    if (node === null || node === undefined) return { kind: 'null' };
    if (isScalar(node)) return scalar(node, path);
    throw new OpsError(`${file}: ${showPath(path)}: unsupported value`, 'use strings, numbers, booleans, lists and maps only');
  };
  let rootBranch: Branch | undefined;
  const keyOf = (key: unknown, path: (string | number)[]): string => {
    const k = isAlias(key) ? key.resolve(doc) : key;
    if (isScalar(k)) {
      const v = scalar(k, path);
      if (v.kind === 'scalar' && v.type === 'str') return v.value as string;
      const source = String(k.value ?? '');
      if (options.keys === 'lenient' && v.kind === 'scalar') return typeof k.source === 'string' ? k.source : source;
      throw new OpsError(
        `${file}: ${showPath(path)}: the key ${source || 'null'} is not a string (sops accepts string keys only)`,
        `quote it: "${source}":`,
      );
    }
    throw new OpsError(`${file}: ${showPath(path)}: a map or list used as a key`, 'use string keys only');
  };
  const tree = convert(root, []) as MapNode;
  if (format === 'yaml' && rootBranch) placeComments(commentTokens(text), anchors, rootBranch);
  return tree;
}

// ---------------------------------------------------------------------------------------------------
// Printing

/**
 * Would this string, written plain, be read back as something else? By go-yaml (sops: goyaml.ts) or by a
 * YAML 1.1 reader (yes/no/on/off, which PyYAML still reads as booleans). Such strings are double-quoted, as
 * go-yaml does when it writes them (e.g. `lastmodified: "2024-…Z"`).
 */
export function needsQuotesForGo(s: string): boolean {
  if (s === '' || plainChangesMeaning(s)) return true;
  return /^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$/.test(s);
}

function yamlScalar(node: ScalarNode | NullNode): Scalar {
  if (node.kind === 'null') return new Scalar(null);
  const s = new Scalar(node.value);
  if (node.type === 'str' && needsQuotesForGo(node.value as string)) s.type = Scalar.QUOTE_DOUBLE;
  // A float that happens to be whole keeps a ".0", so that it is read back as a float (and keeps its type)
  if (node.type === 'float' && Number.isInteger(node.value)) s.minFractionDigits = 1;
  // A time is written plain, as go-yaml writes it, so that it is read back as a time
  if (node.type === 'time') s.type = Scalar.PLAIN;
  return s;
}

/** The comments before item `i`: those for the line above it, and an inline one for after its value (scalars only). */
function split(node: MapNode | ListNode, i: number, value: TreeNode | undefined): { head: string[]; inline: string[] } {
  const here = commentsAt(node, i);
  const scalar = value !== undefined && value.kind !== 'map' && value.kind !== 'list';
  return { head: here.filter((c) => !(c.inline && scalar)).map((c) => c.text), inline: here.filter((c) => c.inline && scalar).map((c) => c.text) };
}

const joinComment = (lines: string[]) => (lines.length ? lines.join('\n') : undefined);

function toYamlNode(node: TreeNode): YamlNode {
  switch (node.kind) {
    case 'map': {
      const m = new YAMLMap();
      node.entries.forEach(([k, v], i) => {
        const key = yamlScalar(str(k));
        const value = toYamlNode(v);
        const { head, inline } = split(node, i, v);
        if (head.length) key.commentBefore = joinComment(head);
        // one line comment per value: further ones go above the next line... of this value, as sops does
        if (inline.length) value.comment = inline.join(' #');
        m.items.push(new Pair(key, value));
      });
      const tail = commentsAt(node, node.entries.length).map((c) => c.text);
      if (tail.length) m.comment = joinComment(tail);
      return m;
    }
    case 'list': {
      const s = new YAMLSeq();
      node.items.forEach((v, i) => {
        const item = toYamlNode(v);
        const { head, inline } = split(node, i, v);
        if (head.length) item.commentBefore = joinComment(head);
        if (inline.length) item.comment = inline.join(' #');
        s.items.push(item);
      });
      const tail = commentsAt(node, node.items.length).map((c) => c.text);
      if (tail.length) s.comment = joinComment(tail);
      return s;
    }
    default:
      return yamlScalar(node);
  }
}

/**
 * How a file is laid out: YAML indentation (sops 3.13 writes 4 spaces, 3.8 wrote 2), JSON indentation (a tab,
 * or spaces), and the sops section (3.8: a fixed order with empty key lists; 3.13: sorted, empties left out).
 * A file is rewritten in the layout it has, so that a rewrite changes only what changed.
 */
export interface Layout {
  yamlIndent: number;
  jsonIndent: string;
  legacyMetadata: boolean;
}

/** What the pinned sops (scripts/setup-machine.sh) writes: new files get this layout. */
export const CURRENT_LAYOUT: Layout = { yamlIndent: 4, jsonIndent: '\t', legacyMetadata: false };
/** What sops 3.8 wrote (the vectors in test/fixtures/sops). */
export const LEGACY_LAYOUT: Layout = { yamlIndent: 2, jsonIndent: '  ', legacyMetadata: true };

/** The layout of an encrypted file's text (its first indented line; its sops section's style). */
export function detectLayout(text: string, format: Format, sops: MapNode | undefined): Layout {
  const legacyMetadata = sops !== undefined && getEntry(sops, 'kms') !== undefined;
  const base = legacyMetadata ? LEGACY_LAYOUT : CURRENT_LAYOUT;
  if (format === 'json') {
    const m = /^([ \t]+)"/m.exec(text);
    return { ...base, jsonIndent: m ? m[1]! : base.jsonIndent };
  }
  const m = /^( +)\S/m.exec(text);
  const n = m ? m[1]!.length : 0;
  return { ...base, yamlIndent: n >= 1 && n <= 8 ? n : base.yamlIndent };
}

/** YAML the way sops writes it: `indent` spaces, lists indented under their key, no line folding; comments where they stood. */
export function toYaml(tree: MapNode, indent = 2): string {
  if (tree.entries.length === 0) {
    const only = (tree.comments ?? []).map((c) => `#${c.text}\n`).join('');
    return `${only}{}\n`;
  }
  const doc = new Document();
  const root = toYamlNode(tree) as YAMLMap;
  // the top level's trailing comments belong to the document (after everything)
  if (root.comment) {
    doc.comment = root.comment;
    root.comment = undefined;
  }
  doc.contents = root;
  return doc.toString({ lineWidth: 0, minContentWidth: 0, indent, indentSeq: true });
}

/** A JSON string as Go's encoding/json writes it (HTML-safe escapes included). */
function goJsonString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function jsonValue(node: TreeNode, indent: string, step: string): string {
  const inner = indent + step;
  switch (node.kind) {
    case 'null':
      return 'null';
    case 'scalar':
      if (node.type === 'str') return goJsonString(node.value as string);
      if (node.type === 'bool') return node.value ? 'true' : 'false';
      if (node.type === 'time') return goJsonString(node.value as string);
      if (typeof node.value === 'bigint') return String(node.value);
      if (!Number.isFinite(node.value)) throw new OpsError(`${node.value} cannot be written in JSON`);
      return JSON.stringify(node.value);
    case 'list':
      if (node.items.length === 0) return '[]';
      return `[\n${node.items.map((v) => inner + jsonValue(v, inner, step)).join(',\n')}\n${indent}]`;
    case 'map':
      if (node.entries.length === 0) return '{}';
      return `{\n${node.entries.map(([k, v]) => `${inner}${goJsonString(k)}: ${jsonValue(v, inner, step)}`).join(',\n')}\n${indent}}`;
  }
}

/** JSON the way sops writes it: `indent` per level, final newline. */
export function toJson(tree: TreeNode, indent = '  '): string {
  return jsonValue(tree, '', indent) + '\n';
}

/** A tree as YAML or JSON text, in the given layout (indentation of the sops version that wrote the file). */
export function printTree(tree: MapNode, format: Format, layout: Layout = LEGACY_LAYOUT): string {
  return format === 'json' ? toJson(tree, layout.jsonIndent) : toYaml(tree, layout.yamlIndent);
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
      } else out.set(showPath(path), node.kind === 'null' ? 'null' : `${node.type}:${scalarText(node)}`);
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
