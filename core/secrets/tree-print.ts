// The ordered tree back to YAML or JSON text, in the layout of the sops version that wrote the file (indent,
// metadata order), quoting strings where Go's YAML would read them as another type.
import { Document, type DocumentOptions, Pair, Scalar, type SchemaOptions, type ScalarTag, YAMLMap, YAMLSeq, type Node as YamlNode } from 'yaml';
import { OpsError } from '../errors.ts';
import { plainChangesMeaning } from './goyaml.ts';
import { yaml11Retypes } from './yaml11.ts';
import { type Format, type ListNode, type MapNode, type NullNode, type ScalarNode, type TreeNode, commentsAt, getEntry, str } from './tree.ts';

/**
 * Would this string, written plain, be read back as something else? By go-yaml (sops: goyaml.ts) or by a
 * YAML 1.1 reader (yaml11.ts: PyYAML, which an app's loader reads a decrypted file with, takes 12:30 for 750,
 * yes/no for booleans, `=` for the value tag). Such strings are double-quoted, as go-yaml does when it writes
 * them (e.g. `lastmodified: "2024-…Z"`).
 */
export function needsQuotesForGo(s: string): boolean {
  return s === '' || plainChangesMeaning(s) || yaml11Retypes(s);
}

/**
 * A float as this printer writes it in YAML: JavaScript's shortest round-trip digits, always with a "." (and a
 * signed exponent, as JavaScript writes it from 1e21 and below 1e-6), so that both YAML 1.2 (go-yaml, so sops) and
 * YAML 1.1 (PyYAML, whose float needs a "." and a signed exponent: a bare 1e+21 is a string to it) read back this
 * very float: 1.0e+21, 5.0e-324, 1.7976931348623157e+308, -0.0 (its sign kept), 2.0, .inf, -.inf, .nan. Pure.
 */
export function yamlFloatText(v: number): string {
  if (Number.isNaN(v)) return '.nan';
  if (!Number.isFinite(v)) return v < 0 ? '-.inf' : '.inf';
  if (Object.is(v, -0)) return '-0.0';
  const [digits, exp] = String(v).split('e');
  const withPoint = digits!.includes('.') ? digits! : `${digits}.0`;
  return exp === undefined ? withPoint : `${withPoint}e${exp}`;
}

/** The format a float Scalar is given so that FLOAT_TAG writes it (yamlFloatText). */
const OPS_FLOAT = 'ops-float';

// How a float is written: picked by its format (OPS_FLOAT), default (no `!!float` written before it). Only for
// writing: its `test` matches nothing (the library picks among tags with one), so no plain scalar is read with it.
const FLOAT_TAG: ScalarTag = {
  tag: 'tag:yaml.org,2002:float',
  format: OPS_FLOAT,
  default: true,
  identify: (v) => typeof v === 'number',
  test: /(?!)/,
  resolve: (s) => Number(s),
  stringify: (node) => yamlFloatText(Number((node as Scalar).value)),
};

// Characters a YAML 1.1 reader cannot take as they stand in the text: DEL and the C1 controls are not printable
// (PyYAML refuses the whole text), NEL, LS and PS are line breaks to it (in quotes, folded to a space), U+FFFE and
// U+FFFF are not printable to any YAML reader. The library's double-quoted style leaves them raw (it starts from
// JSON.stringify, which escapes only C0 controls), and its plain and block styles cannot escape at all.
const RAW_UNSAFE = /[\x7f-\x9f\u2028\u2029\ufffe\uffff]/;

/** `s` double-quoted on one line with every RAW_UNSAFE character escaped (\uXXXX: YAML 1.1 and 1.2 both read it). Pure. */
function escapedDoubleQuoted(s: string): string {
  return JSON.stringify(s).replace(new RegExp(RAW_UNSAFE.source, 'g'), (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

// A space or tab before a line break: the library's double-quoted style breaks the line there, the space escaped
// (`\ `) at the line's end, where an editor trimming trailing whitespace leaves a `\` that joins the lines.
const SPACE_BEFORE_BREAK = /[ \t]\n/;

// How a string holding a RAW_UNSAFE character or SPACE_BEFORE_BREAK is written (keys too): escapedDoubleQuoted, on
// one line, whatever style it was given. Only for writing: its `test` matches nothing, so no plain scalar is read with it.
const ESCAPED_STR_TAG: ScalarTag = {
  tag: 'tag:yaml.org,2002:str',
  default: true,
  identify: (v) => typeof v === 'string' && (RAW_UNSAFE.test(v) || SPACE_BEFORE_BREAK.test(v)),
  test: /(?!)/,
  resolve: (s) => s,
  stringify: (node) => escapedDoubleQuoted(String((node as Scalar).value)),
};

/** The options every document this printer writes is made with (the float and escaped string tags above). */
const DOC_OPTIONS: DocumentOptions & SchemaOptions = { customTags: [FLOAT_TAG, ESCAPED_STR_TAG] };

/**
 * Would the style the yaml library picks for this string by itself (plain, or a block literal for several lines)
 * make another string of it for some reader? A tab in a one-line string: PyYAML cannot read it plain ("found
 * character '\t' that cannot start any token"). Several lines whose first text starts with a space: the library's
 * indentation indicator counts 2 spaces whatever the indentation (`|2-` under 4-space indentation, sops 3.13's),
 * so every reader, this one too, reads the value's lines with 2 more spaces. Several lines of nothing but
 * whitespace: the spaces are written on lines every reader takes for empty (" \n" read back as "\n"). Several
 * lines whose first text starts with a tab: go-yaml (sops, yq) refuses the block ("found a tab character where an
 * indentation space is expected": it finds the block's indentation on that line), so sops could not read a file
 * holding one in clear (an `_unencrypted` key), nor `ops secrets decrypt`'s output. Several lines with a space or
 * tab ending one of them, or ending in an empty line (a `|+` block): an editor that trims trailing whitespace or
 * final empty lines on save (VS Code's files.trimTrailingWhitespace, .editorconfig's trim_trailing_whitespace)
 * would change the value during `ops secrets edit` of another key. Such strings are double-quoted (escapes, one
 * line: nothing at a line's end). Pure.
 */
function styleChangesText(s: string): boolean {
  if (!s.includes('\n')) return s.includes('\t');
  return /^\n*[ \t]/.test(s) || /^[ \t\n]*$/.test(s) || /[ \t](\n|$)/.test(s) || /\n\n$/.test(s);
}

function yamlScalar(node: ScalarNode | NullNode): Scalar {
  if (node.kind === 'null') return new Scalar(null);
  // a binary value as go-yaml v3 (so sops) writes bytes that are not UTF-8: `!!binary <base64>`, or, from 70
  // characters of base64 on, a literal block of 70-character lines each ending in a line break
  if (node.bytes) {
    const b64 = node.value as string;
    if (b64.length < 70) return Object.assign(new Scalar(b64), { tag: 'tag:yaml.org,2002:binary', type: Scalar.PLAIN });
    return Object.assign(new Scalar(`${b64.match(/.{1,70}/g)!.join('\n')}\n`), { tag: 'tag:yaml.org,2002:binary', type: Scalar.BLOCK_LITERAL });
  }
  const s = new Scalar(node.value);
  if (node.type === 'str' && (needsQuotesForGo(node.value as string) || styleChangesText(node.value as string))) s.type = Scalar.QUOTE_DOUBLE;
  // A float is written with a "." (a whole one keeps a ".0"), so that it is read back as a float by YAML 1.2 and 1.1
  if (node.type === 'float') s.format = OPS_FLOAT;
  // A time is written plain, as go-yaml writes it, so that it is read back as a time
  if (node.type === 'time') s.type = Scalar.PLAIN;
  return s;
}

/** A scalar as this printer writes it in YAML (what `ops secrets edit` shows for it). */
export function yamlScalarText(node: ScalarNode): string {
  return new Document(yamlScalar(node), DOC_OPTIONS).toString({ lineWidth: 0 }).replace(/\n$/, '');
}

/**
 * A number as this printer writes it in JSON, and as it reaches the .env inside a map or list taken whole
 * (core/dotenv.ts, asString): an integer as its digits, a float as JavaScript's shortest round-trip text (1.0 is 1,
 * 0.10 is 0.1, 1e3 is 1000).
 */
export function jsonNumberText(node: ScalarNode): string {
  return typeof node.value === 'bigint' ? String(node.value) : JSON.stringify(node.value);
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
        // go-yaml v3 (so sops) writes a `<<` key as a merge key, `!!merge <<:`, however it was read
        if (k === '<<') Object.assign(key, { tag: 'tag:yaml.org,2002:merge', type: Scalar.PLAIN });
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
  const doc = new Document(undefined, DOC_OPTIONS);
  const root = toYamlNode(tree) as YAMLMap;
  // the top level's trailing comments belong to the document (after everything)
  if (root.comment) {
    doc.comment = root.comment;
    root.comment = undefined;
  }
  doc.contents = root;
  return doc.toString({ lineWidth: 0, minContentWidth: 0, indent, indentSeq: true });
}

/**
 * A JSON string as Go's encoding/json writes it (HTML-safe escapes included), and DEL, the C1 controls, U+FFFE and
 * U+FFFF escaped too (RAW_UNSAFE): the initdata loader reads a decrypted JSON file with PyYAML, which refuses them
 * raw, and takes a raw NEL for a line break (the same string to every JSON reader).
 */
function goJsonString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\x7f-\x9f\u2028\u2029\ufffe\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function jsonValue(node: TreeNode, indent: string, step: string): string {
  const inner = indent + step;
  switch (node.kind) {
    case 'null':
      return 'null';
    case 'scalar':
      if (node.bytes) throw new OpsError('a binary value (bytes that are not UTF-8 text) cannot be written in JSON', 'store it as base64 text');
      if (node.type === 'str') return goJsonString(node.value as string);
      if (node.type === 'bool') return node.value ? 'true' : 'false';
      if (node.type === 'time') return goJsonString(node.value as string);
      // an int beyond 2^53 is a bigint, written as its digits (jsonNumberText), as Go's encoding/json writes an int64
      if (typeof node.value === 'number' && !Number.isFinite(node.value)) throw new OpsError(`${node.value} cannot be written in JSON`);
      // an exponent gets a "." before it (1.0e+21, still JSON): a YAML 1.1 reader (PyYAML reads a decrypted
      // initdata.json) takes a bare 1e+21 for a string. A whole float stays digits, as Go (sops) writes it: sops 3.8
      // stored every JSON number as a float, so 7 is what was typed
      return node.type === 'float' ? jsonNumberText(node).replace(/^(-?\d+)e/, '$1.0e') : jsonNumberText(node);
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
