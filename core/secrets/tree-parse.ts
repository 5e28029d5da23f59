// YAML and JSON text into the ordered tree, with the rules of sops's parsers: go-yaml's scalar resolution
// (goyaml.ts), comments kept where they stand (comments.ts), a file with several YAML documents refused.
import { Scalar, isAlias, isMap, isScalar, isSeq, parseAllDocuments, type Alias } from 'yaml';
import { OpsError } from '../errors.ts';
import { quote } from '../shell.ts';
import { aliasTargets, refuseAliasBomb, refuseDeepNesting } from '../yaml-depth.ts';
import { type Anchor, type Branch, commentTokens, placeComments, positions } from './comments.ts';
import { type GoScalar, dotenvTime, goFloatText, intValue, resolveScalar } from './goyaml.ts';
import { jsonNumberText, yamlScalarText } from './tree-print.ts';
import { refuseLoneSurrogate } from './utf8.ts';
import { goBlockScalar, goFlowScalar, goLines, goOnlyBreak } from './yaml-breaks.ts';
import { yaml11Retypes } from './yaml11.ts';
import { type Format, type ListNode, type MapNode, type NullNode, type ScalarNode, type TreeNode, bytesNode, showPath, str } from './tree.ts';

export interface ParseOptions {
  /** For messages: the file the text came from. */
  file: string;
  /**
   * `strict` (encrypted files): a non-string map key is an error, as in sops.
   * `lenient` (text a person typed): `123:` or `true:` become the string keys "123", "true".
   */
  keys?: 'strict' | 'lenient';
  /**
   * YAML: collects each value typed plain (unquoted, untagged) that is read as a number, boolean or time
   * whose form as printed back differs from what was typed (`01234` is the octal 668, a long run of digits a
   * float): `ops secrets edit` asks before storing it. JSON: each number whose text as sops stores it (and as
   * it reaches the .env) differs from what was typed (1.0, 0.10, 1e3, -0, an integer beyond int64). Holds the
   * path and the type; the text stays here.
   */
  retyped?: Retyped[];
  /**
   * YAML: collects each place where YAML gives typed text a meaning of its own that a person typing a value
   * seldom means (a tag `!x`, an alias `*x` as in `<<: *base`, an anchor `&x`, a value that is all comment `#x`, a
   * value typed plain followed by ` #x` on its line, a comment cutting it short),
   * by path, kind and line (`ops secrets edit` refuses the new ones: the value would be lost or changed). A
   * `!!binary` holding base64 is not one (sops writes binary values so), nor a `!!merge` tag on a `<<` key (sops
   * writes one so, and keeps `<<` as a key: SecretsFile refuses one holding anything but a map); its text stays here.
   * Also each value (not key) written as a flow collection (`{abc}` is a map, `[abc]` a list) or as a null word typed
   * plain (`null`, `Null`, `NULL`, `~`): meant as text when it replaces a string (`ops secrets edit` decides).
   * Also each value in quotes that goes on over more lines (`quoted-lines`): YAML joins them with a space too, so a
   * PEM key pasted in quotes would lose its line breaks (a line break escaped with `\` in double quotes is meant).
   * Also each value typed plain that goes on over more lines (`folded`): `x: 1` then `  y z` below it is the one
   * value "1 y z" (YAML joins the lines with a space), most often a key typed without ": " or indented too deep.
   * Also each key typed plain that looks like a value typed into it (`key-value`): its name holds a quote, ": " or a
   * space between words (`database_url "CHANGE-ME: x"` is the key `database_url "CHANGE-ME`, `api_token Zq7: x` the
   * key `api_token Zq7`); a key written in quotes is not one (named so on purpose), nor one in a map typed on one line.
   */
  constructs?: YamlConstruct[];
  /**
   * YAML: collects the path of each value typed plain (unquoted, untagged) that sops (go-yaml) reads as text but a
   * YAML 1.1 reader takes for another type (yaml11Retypes, PyYAML's own booleans: `yes`, `no`, `on`, `off` in any of
   * their cases a boolean, `1:20` a number in base 60, `=` the value tag...): PyYAML, what an initdata loader reads
   * the decrypted file with, got a boolean or a number from the plain file, and gets the text once sops stores it
   * (`ops secrets encrypt` names them). Not `y` or `n` (PyYAML reads them as text, as go-yaml does).
   */
  yaml11?: (string | number)[][];
  /**
   * YAML: the same for map keys typed plain (`on:`, `yes:`, `1:20:`; not `<<`, a merge key to both): sops keeps the
   * key as text and writes it back quoted, so PyYAML, which got True or a number as the key from the plain file,
   * gets the text once encrypted (`ops secrets encrypt` names them). Each is the path of the key itself.
   */
  yaml11Keys?: (string | number)[][];
}

/** A YAML construct with a meaning of its own in typed text (ParseOptions.constructs). */
export interface YamlConstruct {
  path: (string | number)[];
  kind: 'tag' | 'alias' | 'anchor' | 'comment' | 'trailing' | 'flow-map' | 'flow-list' | 'null' | 'folded' | 'quoted-lines' | 'key-value';
  /** 1-based line of the text where it stands. */
  line: number;
  /** For comparison only (the tag as resolved, e.g. `!secret`): it is part of what was typed, so never shown. */
  tag?: string;
}

/** A value typed plain that sops reads as another type, printed back differently (see ParseOptions.retyped). */
export interface Retyped {
  path: (string | number)[];
  type: ScalarNode['type'];
  /** How it was typed, as a kind (never the text): leading zero, digits only, a timestamp with a fraction of a second, or another form. */
  typed: 'leading-zero' | 'digits' | 'fraction' | 'other';
}

const MERGE_TAG = 'tag:yaml.org,2002:merge';
const BINARY_TAG = 'tag:yaml.org,2002:binary';

function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const col = offset - before.lastIndexOf('\n');
  return `line ${line}, column ${col}`;
}

/**
 * What a YAML parse error (the `yaml` library's code) means, in words that quote nothing of the text: the library's
 * own messages quote what they met ("Invalid escape sequence \\q", "Unresolved tag: ...", a block scalar header),
 * which may be part of a secret. Pure.
 */
export function syntaxProblem(code: string): string {
  const words: Record<string, string> = {
    ALIAS_PROPS: 'an alias (*name) given a tag or an anchor',
    BAD_ALIAS: 'an alias (*name) that names no anchor before it',
    BAD_DIRECTIVE: 'a % directive YAML does not support',
    BAD_DQ_ESCAPE: 'an invalid escape sequence in a double-quoted string (a backslash must start \\\\, \\", \\n, \\t, \\xXX, \\uXXXX...; for a literal backslash, write \\\\ or use single quotes)',
    BAD_INDENT: 'bad indentation',
    BAD_PROP_ORDER: 'a tag or anchor in the wrong place',
    BAD_SCALAR_START: 'a plain value starting with a character YAML reserves (quote the value)',
    BLOCK_AS_IMPLICIT_KEY: 'a map nested on one line (a plain value holding ": "? quote the value)',
    BLOCK_IN_FLOW: 'a block value inside [...] or {...}',
    DUPLICATE_KEY: 'a key given twice in the same map',
    KEY_OVER_1024_CHARS: 'a key longer than 1024 characters',
    MISSING_CHAR: 'a quote or bracket that is not closed',
    MULTILINE_IMPLICIT_KEY: 'a key spread over several lines (a value indented under another value?)',
    MULTIPLE_ANCHORS: 'two anchors (&name) on one value',
    MULTIPLE_DOCS: 'several YAML documents',
    MULTIPLE_TAGS: 'two tags on one value',
    NON_STRING_KEY: 'a key that is not a string',
    RESOURCE_EXHAUSTION: 'too many aliases',
    TAB_AS_INDENT: 'a tab used as indentation (indent with spaces)',
    TAG_RESOLVE_FAILED: 'a tag (!name) that cannot be resolved, or a value JSON does not allow (quote the value)',
    UNEXPECTED_TOKEN: 'unexpected characters (a block scalar header | or > followed by text, or text after a closing quote or bracket?)',
    BAD_COLLECTION_TYPE: 'a tag that does not fit the value it is on',
  };
  return words[code] ?? `a syntax error (${code})`;
}

/** A key that looks like a value typed into it: it holds a quote, ": " or a space between words (`api_token Zq7: x`). */
const VALUE_IN_KEY = /["']|:[ \t]|\S[ \t]+\S/;

/**
 * A key path as this parser's errors name it: a key that looks like a value typed into it (VALUE_IN_KEY) as "…",
 * for what it holds may be a secret (the error comes before `ops secrets edit` can ask about it: keyValueWarning).
 */
function errorPath(path: (string | number)[]): string {
  return showPath(path.map((p) => (typeof p === 'string' && VALUE_IN_KEY.test(p) ? '…' : p)));
}

/**
 * The path of the first key given twice in one map of a parsed document (in the order of the text), or undefined.
 * Pure.
 */
function duplicateKeyPath(node: unknown, path: (string | number)[]): (string | number)[] | undefined {
  if (isMap(node)) {
    const seen = new Set<unknown>();
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? pair.key.value : pair.key;
      if (seen.has(key)) return [...path, String(key)];
      seen.add(key);
      const inner = duplicateKeyPath(pair.value, [...path, String(key)]);
      if (inner) return inner;
    }
  } else if (isSeq(node)) {
    for (const [i, item] of node.items.entries()) {
      const inner = duplicateKeyPath(item, [...path, i]);
      if (inner) return inner;
    }
  }
  return undefined;
}

/**
 * The refusal of a JSON file with a key given twice in one map (RFC 8259 leaves such names' meaning to the reader).
 * sops encrypts and decrypts such a file keeping both, and its own readers disagree on which is the value (sops 3.13:
 * `decrypt --extract` gives the first, `exec-env` the last, its dotenv output both lines), so ops reads neither: the
 * key named (its path, errorPath: never a value), and, for a file sops encrypted (`encrypted`: its `sops` key),
 * `sops edit`, which opens it with both, to keep one.
 */
function duplicateJsonKey(file: string, path: (string | number)[], at: string | undefined, encrypted: boolean): OpsError {
  return new OpsError(
    `${file}: the key ${errorPath(path)} is given twice in one map${at ? ` (${at})` : ''}: sops keeps both, and its readers disagree on which is the value (\`sops decrypt --extract\` gives the first, \`sops exec-env\` the last), so ops reads neither`,
    encrypted ? `keep one of them: sops edit ${quote(file)} opens it with both; remove the other, save, then try again` : `keep one of them in ${file}, then try again`,
  );
}

/**
 * A parse error of `text` said as " at line L, column C: <what>": by place and the error's code, never by the
 * parser's message, which quotes the text it met (an escape's characters, a tag, a scalar, a block header), and the
 * text may be a secret. Pure.
 */
export function syntaxError(text: string, err: { code: string; pos?: [number, number]; message?: string }): string {
  return `${err.pos ? ` at ${lineCol(text, err.pos[0])}` : ''}: ${syntaxWhat(text, err)}`;
}

/**
 * What a parse error of `text` is, in words that quote nothing of the text (syntaxError's part after the place): by the
 * error's code, the library's message (never shown) and the lines around it. One reading for every YAML file a person
 * writes (a secrets file, environment.yml, .sops.yaml, initdata). Pure.
 */
export function syntaxWhat(text: string, err: { code: string; pos?: [number, number]; message?: string }): string {
  // an unclosed [ or { is a BAD_INDENT at the next line to the library: said as what it most likely is (the
  // library's own words, not the text, tell it apart; they are never shown)
  const message = err.message ?? '';
  // a line with no ": " after its key (`KEY VALUE`, KEY=VALUE, KEY:VALUE): a key missing its value to the library when
  // a blank line, a comment or the end follows ("Implicit map keys need to be followed by map values", said as a
  // quote not closed), or a plain key going on to the next line when a `key: value` does ("Implicit keys need to be on
  // a single line"); the place is that line's start either way. A quoted key over several lines is the latter too.
  const noColon =
    (err.code === 'MISSING_CHAR' && /^Implicit map keys need to be followed by map values/.test(message)) ||
    (err.code === 'MULTILINE_IMPLICIT_KEY' && err.pos !== undefined && !/["']/.test(text[err.pos[0]] ?? ''));
  // a quoted value the library ends at its line's end, with more text below: the lines below are not indented past
  // its key, so they are no part of it to YAML (a quoted value typed or pasted on at column 0), or its quote is missing
  const quoteEndsAtLine =
    err.code === 'MISSING_CHAR' && /^Missing closing ["']quote/.test(message) && err.pos !== undefined && /^[\r\n]/.test(text.slice(err.pos[0])) && text.slice(err.pos[0]).trim() !== '';
  // `\'` in double quotes: go-yaml (so sops) reads it as ', YAML 1.2 and the `yaml` library have no such escape
  const quoteEscaped = err.code === 'BAD_DQ_ESCAPE' && message === "Invalid escape sequence \\'";
  // `"value"# note`: go-yaml (so sops) takes the # for a comment, YAML 1.2 and the library want white space before it
  const tightComment = err.code === 'MISSING_CHAR' && /^Comments must be separated from other tokens by white space/.test(message);
  // a key indented further than the key above it (`    directory: client` then `     port: 3000`): YAML reads its line
  // as going on with that key's plain value, then refuses the `: ` in it, at the line above
  const deeper = (err.code === 'BLOCK_AS_IMPLICIT_KEY' || err.code === 'MULTILINE_IMPLICIT_KEY') && err.pos !== undefined ? overIndented(text, err.pos[0]) : undefined;
  const what = deeper
    ? `line ${deeper.line} is indented further than the key on line ${deeper.above}, so YAML reads it as going on with that key's value: indent it as the keys beside it (the same number of spaces)`
    : tightComment
    ? 'a # right after a closing quote or bracket: a comment needs a space before its # (`"value" # note`); a # meant as part of the value goes inside the quotes'
    : quoteEscaped
      ? "the escape \\' in a double-quoted string, which YAML 1.2 and JSON do not have: inside double quotes write ' on its own (only \\\" and \\\\ need a backslash)"
      : quoteEndsAtLine
        ? 'a quoted value whose next line is not indented past its key, so YAML ends it at this line: its closing quote is missing, or it goes on at the start of a line (a quoted value goes on only on lines indented past its key, and those are joined with spaces; for a value of several lines, such as a PEM key, write `key: |` with its lines indented below)'
        : err.code === 'BAD_INDENT' && /^Flow (sequence|map) in block collection/.test(message)
          ? 'a [...] or {...} not closed before this line (its ] or } missing?), or its next lines not indented under its key'
          : noColon
            ? 'a line with no ": " after its key (a space, = or : alone between the key and its value?): write it KEY: VALUE'
            : syntaxProblem(err.code);
  return what;
}

/**
 * The line (1-based) after the one holding `offset`, when it is a `key: ...` line (or a `- ` item) indented further than
 * the key starting that line, with a plain value there: what a key typed one space too far in looks like. Comments and
 * blank lines between are skipped. Undefined otherwise.
 */
function overIndented(text: string, offset: number): { line: number; above: number } | undefined {
  const lines = text.split('\n');
  const at = text.slice(0, offset).split('\n').length - 1;
  const key = /^(\s*)(?:-\s+)?[^\s#:][^:#]*:[ \t]+[^\s#|>&*!'"[{]/.exec(lines[at] ?? '');
  if (!key) return undefined;
  for (let i = at + 1; i < lines.length; i++) {
    const l = lines[i]!.replace(/\r$/, '');
    if (/^\s*(#|$)/.test(l)) continue;
    const next = /^(\s*)(?:-\s|[^\s#:][^:#]*:(\s|$))/.exec(l);
    return next && next[1]!.length > key[1]!.length ? { line: i + 1, above: at + 1 } : undefined;
  }
  return undefined;
}

/**
 * Refuses a double-quoted YAML scalar (`text` from `start` to `end`) holding the escape `\/`: YAML 1.2 has it, and the
 * `yaml` library decodes it to `/`, but go-yaml, so sops, does not know it ("found unknown escape character"): stored,
 * the file would be one sops itself can no longer read. Said by place, never quoting the text. Throws OpsError.
 */
function refuseNonGoEscape(text: string, start: number, end: number, file: string): void {
  // each backslash pairs with the character after it: `\\/` is an escaped backslash, then a plain `/`
  for (const m of text.slice(start, end).matchAll(/\\[\s\S]/g))
    if (m[0] === '\\/')
      throw new OpsError(`${file} is not valid YAML at ${lineCol(text, start + m.index)}: the escape \\/ in a double-quoted string, which YAML 1.2 has but sops's YAML parser (go-yaml) does not know`, 'write / on its own (it needs no escape), and try again');
}

/**
 * What go-yaml's reader (readerc.go, yaml_parser_update_buffer) refuses anywhere in a YAML text, raw: a control
 * character (C0 but tab, LF and CR; DEL; C1 but NEL) and U+FFFE, U+FFFF. Written as an escape in double quotes
 * (`"\e"`, `"\x01"`) it is allowed.
 */
const GO_YAML_UNREADABLE = /[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/u;

/**
 * Refuses a YAML text a person typed or wrote (not an encrypted file, read as it is) that holds a character sops's
 * YAML parser refuses raw ("control characters are not allowed", GO_YAML_UNREADABLE): most often invisible, pasted
 * with a value (a terminal's colour code, ESC [ 0 m), it would be stored as part of it. Said by place, never by the
 * character or the text around it. Throws OpsError.
 */
function refuseControlCharacter(text: string, file: string): void {
  const at = GO_YAML_UNREADABLE.exec(text);
  if (at)
    throw new OpsError(
      `${file} is not valid YAML at ${lineCol(text, at.index)}: an invisible control character (or U+FFFE, U+FFFF), which sops's YAML parser refuses anywhere in the file ("control characters are not allowed")`,
      'remove it (pasted with a value, from a terminal\'s colours or a rich-text editor?); to store one on purpose, write it as an escape in double quotes ("\\e", "\\x01"), and try again',
    );
}

/**
 * Refuses a JSON string (`text` from `start` to `end`, quotes included) holding a control character raw, a line break
 * or a tab too: JSON has them only as escapes, and Go's encoding/json, so sops, refuses the file ("invalid character
 * in string literal"), where the `yaml` library would read on, joining the lines of a pasted PEM key with a space.
 * Said by place, never quoting the text. Throws OpsError.
 */
function refuseRawJsonControl(text: string, start: number, end: number, file: string): void {
  const at = /[\x00-\x1f]/.exec(text.slice(start, end));
  if (at)
    throw new OpsError(
      `${file} is not valid JSON at ${lineCol(text, start + at.index)}: a line break, tab or other control character typed raw inside a string, which sops refuses ("invalid character in string literal")`,
      'write it as an escape inside the string (\\n for a line break, \\t for a tab, \\u0001...), and try again',
    );
}

/** Whether a quoted scalar's source (quotes included) holds a line break YAML folds: in double quotes, one not escaped. */
function quotedBreak(source: string, type: 'QUOTE_DOUBLE' | 'QUOTE_SINGLE'): boolean {
  return /[\r\n\x85]/.test(type === 'QUOTE_DOUBLE' ? source.replace(/\\(?:\r\n|[\s\S])/g, '') : source);
}

/** A Go scalar as a tree node; a uint64 (which sops cannot encrypt either) is an error naming where. */
function goNode(v: GoScalar, where: () => string): ScalarNode | NullNode {
  if (v.type === 'null') return { kind: 'null' };
  // never the value in the message: it is a secret (sops's own refusal: "Cannot walk value, unknown type: uint64")
  if (v.type === 'uint64') throw new OpsError(`${where()}: an integer typed without quotes above the 64-bit signed range, which sops cannot encrypt (it reads it as a uint64)`, 'quote it to store it as a string');
  return { kind: 'scalar', type: v.type, value: v.value } as ScalarNode;
}

/**
 * Whether a double-quoted YAML scalar's source holds the escape `\'`: go-yaml (libyaml's scanner), so sops, reads it as
 * `'`; YAML 1.2 and the `yaml` library have no such escape (BAD_DQ_ESCAPE, keeping the backslash). Each backslash
 * pairs with the character after it: `\\'` is an escaped backslash, then a plain `'`. Pure.
 */
function hasQuoteEscape(source: string): boolean {
  return [...source.matchAll(/\\[\s\S]/g)].some((m) => m[0] === "\\'");
}

/** A double-quoted scalar's text with each escape `\'` written `'` (as go-yaml reads it: hasQuoteEscape). Pure. */
function withoutQuoteEscapes(source: string): string {
  return source.replace(/\\[\s\S]/g, (m) => (m === "\\'" ? "'" : m));
}

/**
 * A YAML scalar's value as go-yaml reads it where its text holds NEL, LS, PS or a lone CR raw (line breaks to go-yaml, see
 * yaml-breaks.ts); any other scalar's value as the `yaml` library read it (from `lines`, goLines(text)).
 */
function goBreaks(text: string, lines: string, node: Scalar): unknown {
  const [start, end] = node.range ?? [];
  if (typeof node.value !== 'string' || start === undefined || end === undefined) return node.value;
  const source = text.slice(start, end);
  const quoteEscape = node.type === 'QUOTE_DOUBLE' && hasQuoteEscape(source);
  if (!goOnlyBreak(text, start, end) && !quoteEscape) return node.value;
  try {
    if (node.type === 'QUOTE_DOUBLE') return goFlowScalar(withoutQuoteEscapes(source.slice(1, -1)), 'double');
    if (node.type === 'QUOTE_SINGLE') return goFlowScalar(source.slice(1, -1), 'single');
    if (node.type === 'PLAIN') return goFlowScalar(source, 'plain');
    // a block: the collection holding it is the one its header's line starts (`x: |`, `- |`, `- x: |`)
    const head = lines.slice(Math.max(lines.lastIndexOf('\n', start - 1), lines.lastIndexOf('\r', start - 1)) + 1, start);
    const collection = /^((?: *-(?= ))*) *(\S?)/.exec(head)!;
    return goBlockScalar(source, collection[2] ? collection[0].length - 1 : collection[1] ? collection[1].length - 1 : -1);
  } catch {
    return node.value; // never a message quoting the text (a secret): the value as read, which the MAC then checks
  }
}

/**
 * Parse YAML or JSON into a tree whose top level is a map, reading values as sops does: YAML scalars with
 * go-yaml v3's rules (goyaml.ts), JSON numbers as Go's json.Number normalised by sops (an integer in the
 * 64-bit range is an `int`, anything else a `float`). Aliases are expanded, each use a copy (sops encrypts each
 * copy on its own); a YAML merge key (`<<: *base`, `!!merge <<:`) is not merged but kept as the key `<<`, as
 * sops 3.13.3 reads it (its decrypted tree, `--output-type json` and MAC have `<<` as a key; it writes it back as
 * `!!merge <<:`, see tree-print.ts). Errors name the file and the place, never the text.
 */
export function parseTree(text: string, format: Format, options: ParseOptions): MapNode {
  const { file } = options;
  refuseDeepNesting(text, file);
  if (format === 'yaml' && options.keys !== 'strict') refuseControlCharacter(text, file);
  // YAML: the lines go-yaml sees (NEL, LS and PS end lines to it), the values read from `text` (goBreaks)
  const lines = format === 'yaml' ? goLines(text) : text;
  const docs = parseAllDocuments(lines, {
    intAsBigInt: true,
    uniqueKeys: true,
    prettyErrors: false,
    // YAML: every scalar as its source text, resolved below as Go does (explicit tags too: the library would resolve
    // !!timestamp, !!binary, !!omap, !!pairs and !!set itself, to a Date, bytes, pairs, whatever the schema); JSON: the JSON schema
    schema: format === 'json' ? 'json' : 'failsafe',
    resolveKnownTags: false,
    merge: false,
    keepSourceTokens: false,
  });
  if (!Array.isArray(docs) || docs.length === 0) return { kind: 'map', entries: [] };
  if (docs.length > 1) {
    throw new OpsError(`${file} holds ${docs.length} YAML documents`, 'keep one document (no `---` separators) per secrets file');
  }
  const doc = docs[0]!;
  // `\'` in double quotes is go-yaml's (so sops's) escape for ', which the `yaml` library refuses: read below (goBreaks)
  const err = doc.errors.find((e) => !(format === 'yaml' && e.code === 'BAD_DQ_ESCAPE' && e.message === "Invalid escape sequence \\'"));
  if (err) {
    const twice = format === 'json' && err.code === 'DUPLICATE_KEY' ? duplicateKeyPath(doc.contents, []) : undefined;
    if (twice) throw duplicateJsonKey(file, twice, err.pos ? lineCol(text, err.pos[0]) : undefined, isMap(doc.contents) && doc.contents.has('sops'));
    throw new OpsError(`${file} is not valid ${format === 'json' ? 'JSON' : 'YAML'}${syntaxError(text, err)}`, 'fix the syntax and try again');
  }
  const scalar = (node: Scalar, path: (string | number)[]): ScalarNode | NullNode => {
    if (format === 'yaml' && node.type === 'QUOTE_DOUBLE') refuseNonGoEscape(text, node.range?.[0] ?? 0, node.range?.[1] ?? 0, file);
    if (format === 'json' && node.type === 'QUOTE_DOUBLE') refuseRawJsonControl(text, node.range?.[0] ?? 0, node.range?.[1] ?? 0, file);
    const v = format === 'yaml' ? goBreaks(text, lines, node) : node.value;
    const where = () => `${file}: ${errorPath(path)}`;
    // a value or key (path: its map's) escaping half a surrogate pair: stored as U+FFFD, so refused (as sops does in YAML)
    if (typeof v === 'string') refuseLoneSurrogate(v, () => `${where()}${node.range ? ` (${lineCol(text, node.range[0])})` : ''}`);
    if (format === 'json') {
      if (v === null || v === undefined) return { kind: 'null' };
      if (typeof v === 'string') return str(v);
      if (typeof v === 'boolean') return { kind: 'scalar', type: 'bool', value: v };
      if (typeof v === 'bigint') return v >= -(2n ** 63n) && v < 2n ** 63n ? { kind: 'scalar', type: 'int', value: intValue(v) } : { kind: 'scalar', type: 'float', value: Number(v) };
      // Go's strconv.ParseFloat: "value out of range", which sops refuses (the `yaml` library reads it as Infinity)
      if (typeof v === 'number' && !Number.isFinite(v)) throw new OpsError(`${where()}: a number beyond the floating-point range (about 1.8e308), which sops refuses ("value out of range")`, 'quote it to store it as text, or give a smaller number');
      if (typeof v === 'number') return { kind: 'scalar', type: 'float', value: v };
      throw new OpsError(`${where()}: unsupported value`, 'use strings, numbers, booleans, lists and maps only');
    }
    // !!binary: go-yaml hands sops the decoded bytes as a string; bytes that are not UTF-8 are a binary value
    if (node.tag === BINARY_TAG || v instanceof Uint8Array) {
      // strictly, as go-yaml (so sops) decodes it: Buffer.from(…, 'base64') skips what is not base64, saving garbage
      const b64 = (typeof node.source === 'string' ? node.source : String(v ?? '')).replace(/\s+/g, '');
      if (b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64))
        throw new OpsError(`${where()}: tagged !!binary, but its text is not valid base64 (which sops refuses too)`, 'give base64 text after !!binary (`base64 -w0 < FILE`), or, for text, drop the tag and put the value in double quotes');
      return bytesNode(Buffer.from(b64, 'base64'));
    }
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
  refuseAliasBomb(doc, file); // before any copy is made
  const targets = aliasTargets(doc);
  const target = (alias: Alias): unknown => targets.get(alias);
  let aliases = 0; // aliases being copied now (inside a copy: nothing recorded)
  // Where each map key and list item stands (YAML), to place the comments afterwards
  const at = positions(lines);
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
  const lineOf = (offset: number | undefined): number => (offset === undefined ? 0 : at(offset).line + 1);
  /** Records what gives `node` (a value or a key at `path`) a YAML meaning of its own (ParseOptions.constructs); not inside an alias's copy. */
  const record = (node: unknown, path: (string | number)[], keyAt?: number) => {
    const found = options.constructs;
    if (!found || format !== 'yaml' || aliases) return;
    // a map's value: its key's line (a block value starts on the lines below it)
    const line = lineOf(keyAt ?? offsetOf(node));
    if (isAlias(node)) return found.push({ path, kind: 'alias', line });
    const n = node as { anchor?: string; tag?: string; source?: unknown; value?: unknown; type?: string; range?: number[] } | null;
    if (!n) return;
    if (n.anchor) found.push({ path, kind: 'anchor', line });
    const empty = isScalar(n) && String(n.source ?? n.value ?? '') === '';
    // !!binary with base64 is how sops writes bytes (checked strictly by `scalar`); an empty one reads as nothing
    if (n.tag && n.tag !== MERGE_TAG && !(n.tag === BINARY_TAG && !empty)) found.push({ path, kind: 'tag', line, tag: n.tag });
    // `key: #text`: the value is a comment, so the key holds nothing (null)
    if (isScalar(n) && empty && !n.tag && n.type === 'PLAIN' && n.range && /^[ \t]*#/.test(text.slice(n.range[0], n.range[2]))) found.push({ path, kind: 'comment', line });
    // `key: abc #def`: the value ends before " #", the rest is a comment (a password holding " #" loses its tail)
    else if (isScalar(n) && !empty && n.type === 'PLAIN' && n.range && /^[ \t]+#/.test(text.slice(n.range[1], n.range[2]))) found.push({ path, kind: 'trailing', line });
  };
  /** Records a value (not a key) written as a flow collection or a null word typed plain (ParseOptions.constructs). */
  const recordValue = (node: unknown, path: (string | number)[], keyAt?: number) => {
    const found = options.constructs;
    if (!found || format !== 'yaml' || aliases) return;
    const line = lineOf(keyAt ?? offsetOf(node));
    if ((isMap(node) || isSeq(node)) && node.flow) found.push({ path, kind: isMap(node) ? 'flow-map' : 'flow-list', line });
    // go-yaml's null words (an empty value is null too, but typed so on purpose: not recorded)
    else if (isScalar(node) && node.type === 'PLAIN' && !node.tag && /^(?:~|null|Null|NULL)$/.test(String(node.source ?? node.value ?? ''))) found.push({ path, kind: 'null', line });
    // a plain value over more lines: YAML folds them into one (`x: 1` then `  y z` is "1 y z")
    else if (isScalar(node) && node.type === 'PLAIN' && node.range && text.slice(node.range[0], node.range[1]).includes('\n')) found.push({ path, kind: 'folded', line });
    // a quoted value over more lines: YAML joins them with a space too (a line break escaped, `\` at a line's end,
    // joins them on purpose), so a PEM key pasted in quotes loses its line breaks
    else if (isScalar(node) && (node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE') && node.range && quotedBreak(lines.slice(node.range[0], node.range[1]), node.type))
      found.push({ path, kind: 'quoted-lines', line });
  };
  /** Records a key typed plain that looks like a value typed into it (ParseOptions.constructs, `key-value`). */
  const recordKey = (node: unknown, path: (string | number)[]) => {
    const found = options.constructs;
    if (!found || format !== 'yaml' || aliases || !isScalar(node) || node.type !== 'PLAIN' || node.tag) return;
    if (VALUE_IN_KEY.test(String(path.at(-1)))) found.push({ path, kind: 'key-value', line: lineOf(offsetOf(node)) });
  };
  const convert = (node: unknown, path: (string | number)[], parent?: Anchor, keyAt?: number): TreeNode => {
    record(node, path, keyAt);
    recordValue(node, path, keyAt);
    if (isAlias(node)) {
      if (++aliases > 1000) throw new OpsError(`${file}: too many YAML aliases`, 'expand the aliases (*name) by hand');
      if (path.length > 100) throw new OpsError(`${file}: ${errorPath(path)}: nesting is too deep (recursive alias?)`);
      const resolved = convert(target(node), path);
      aliases--;
      return resolved;
    }
    if (path.length > 100) throw new OpsError(`${file}: ${errorPath(path)}: nesting is too deep`);
    if (isMap(node)) {
      const out: MapNode = { kind: 'map', entries: [] };
      const branch: Branch = { node: out, col: 0, parent };
      node.items.forEach((pair, i) => {
        const key = keyOf(pair.key, path);
        record(pair.key, [...path, key]);
        // not in a map typed on one line ({...}): its keys may be a value meant as text, never named (ops secrets edit)
        if (!node.flow) recordKey(pair.key, [...path, key]);
        if (options.yaml11Keys && format === 'yaml' && isScalar(pair.key) && pair.key.type === 'PLAIN' && !pair.key.tag && key !== '<<' && key !== '' && !/^[yYnN]$/.test(key) && yaml11Retypes(key)) options.yaml11Keys.push([...path, key]);
        const a = anchor(offsetOf(pair.key), branch, i, pair.value);
        if (a && i === 0) branch.col = a.col;
        out.entries.push([key, convert(pair.value, [...path, key], a, offsetOf(pair.key))]);
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
    if (isScalar(node)) {
      const v = scalar(node, path);
      if (options.retyped && format === 'yaml' && v.kind === 'scalar' && v.type !== 'str' && !v.bytes && (node.type === 'PLAIN' || node.type === undefined) && !node.tag) {
        const text = String(node.value ?? '');
        // printed back otherwise, or a float that reaches the .env otherwise (1e3 is 1000.0 there, 1e-7 is 1E-07:
        // goFloatText); not a float typed in the exponent form it reaches the .env in (1E-07), only printed back with a "." (1.0e-7)
        const sameExponent = v.type === 'float' && /e/i.test(text) && goFloatText(v.value as number) === text;
        if ((yamlScalarText(v) !== text && !sameExponent) || (v.type === 'float' && goFloatText(v.value as number) !== text)) options.retyped.push({ path, type: v.type, typed: /^[-+]?0[0-9_]/.test(text) ? 'leading-zero' : /^[-+]?[0-9]+$/.test(text) ? 'digits' : 'other' });
        // kept whole, but the .env gets it as sops's dotenv output does: without its fraction of a second
        else if (v.type === 'time' && dotenvTime(v.value as string) !== v.value) options.retyped.push({ path, type: 'time', typed: 'fraction' });
      }
      if (options.yaml11 && format === 'yaml' && v.kind === 'scalar' && v.type === 'str' && !v.bytes && (node.type === 'PLAIN' || node.type === undefined) && !node.tag) {
        const text = String(node.value ?? '');
        if (text !== '' && !/^[yYnN]$/.test(text) && yaml11Retypes(text)) options.yaml11.push(path);
      }
      // A JSON number is what sops's JSON store makes of it (getsops/sops stores/json/store.go, normalizeJSONNumber:
      // the decoder runs with UseNumber; an integer within int64 is an int, anything else a float64): 1.0 comes
      // back as 1, 0.10 as 0.1, 1e3 as 1000, -0 as 0, and an integer beyond int64 loses its digits past the 17th
      if (options.retyped && format === 'json' && v.kind === 'scalar' && (v.type === 'int' || v.type === 'float')) {
        const text = typeof node.source === 'string' ? node.source : String(node.value);
        // (and a float that reaches the .env otherwise: 1e-7 is 1E-07 there, goFloatText)
        if (jsonNumberText(v) !== text || (v.type === 'float' && goFloatText(v.value as number) !== text)) options.retyped.push({ path, type: v.type, typed: /^-?[0-9]+$/.test(text) ? 'digits' : 'other' });
      }
      return v;
    }
    throw new OpsError(`${file}: ${errorPath(path)}: unsupported value`, 'use strings, numbers, booleans, lists and maps only');
  };
  let rootBranch: Branch | undefined;
  const keyOf = (key: unknown, path: (string | number)[]): string => {
    const k = isAlias(key) ? target(key) : key;
    // A YAML merge key (`<<: *base`, `!!merge <<:`): sops (3.13, through go-yaml v3's node API) does not merge,
    // it keeps `<<` as an ordinary key whose value is the aliased map, copied (and writes it back as `!!merge <<`)
    if (isScalar(k) && k.tag === MERGE_TAG) {
      const source = typeof k.source === 'string' ? k.source : String(k.value ?? '');
      if (source === '<<' || source === '') return '<<';
      throw new OpsError(`${file}: ${errorPath(path)}: the key ${source} is tagged !!merge, which only << may be`, 'remove the tag');
    }
    if (isScalar(k)) {
      const v = scalar(k, path);
      // sops keeps such a key as its bytes (its values' AES-GCM data names it so: read under its base64 text, they
      // would not decrypt) and writes it back `!!binary`: ops keeps keys as text. A key is no secret: named.
      if (v.kind === 'scalar' && v.bytes)
        throw new OpsError(`${file}: the key !!binary ${String(v.value)}${path.length ? ` under ${errorPath(path)}` : ''} holds bytes that are not UTF-8 text, which ops does not support (keys are text)`, 'rename it to a text key (`sops edit` the file: the key without !!binary)');
      if (v.kind === 'scalar' && v.type === 'str') return v.value as string;
      const source = String(k.value ?? '');
      if (options.keys === 'lenient' && v.kind === 'scalar') return typeof k.source === 'string' ? k.source : source;
      throw new OpsError(
        `${file}: ${errorPath(path)}: the key ${source || 'null'} is not a string (sops accepts string keys only)`,
        `quote it: "${source}":`,
      );
    }
    throw new OpsError(`${file}: ${errorPath(path)}: a map or list used as a key`, 'use string keys only');
  };
  const tree = convert(root, []) as MapNode;
  if (format === 'yaml' && rootBranch) placeComments(commentTokens(lines), anchors, rootBranch);
  return tree;
}
