// Unicode line breaks in YAML scalars, read as go-yaml reads them. go-yaml (libyaml's scanner, so sops) takes NEL
// (U+0085), LS (U+2028) and PS (U+2029) for line breaks, as YAML 1.1 says; the `yaml` library reads YAML 1.2, where
// they are ordinary characters. go-yaml also writes them so: a value holding LS but no \n is written single-quoted,
// the LS raw and followed by the indentation of a new line ('a<LS>    b' for "a<LS>b"), and in a literal block the
// lines after an LS are indented too. Read as YAML 1.2, such a value keeps those spaces: a value sops left in clear
// (--encrypted-regex, --unencrypted-suffix...) then failed the MAC, and a plaintext `sops decrypt` wrote, given to
// `ops secrets encrypt`, was stored with spaces that were never in it; a line holding only such a break (go-yaml
// writes "one\n<LS>two" so) ended a literal block for the library, which then refused the file. A CR not followed
// by LF is a line break to go-yaml too. The library is given go-yaml's lines (goLines), and only scalars whose text
// holds one of these breaks raw are read again here; every other one is as the `yaml` library read it.
import { Parser, parse } from 'yaml';

/** NEL, LS, PS, and a CR not followed by LF (an old Mac line end): line breaks to go-yaml, not to the `yaml` library. */
const GO_ONLY_BREAK = /[\u0085\u2028\u2029]|\r(?!\n)/g;

/** Whether `text` holds a line break of go-yaml's only (GO_ONLY_BREAK) from `start` to before `end`. */
export function goOnlyBreak(text: string, start = 0, end = text.length): boolean {
  // the range and the character after it (a CR's LF), not the rest of the text: each scalar of a file is asked
  GO_ONLY_BREAK.lastIndex = 0;
  const found = GO_ONLY_BREAK.exec(text.slice(start, end + 1));
  return found !== null && found.index < end - start;
}

const BLANK = /[ \t]/;
const BREAK = /[\r\n\u0085\u2028\u2029]/;

/** The line break at `i` as libyaml reads it (READ_LINE): CR LF, CR, LF and NEL are "\n", LS and PS themselves; with its length. */
function lineBreak(text: string, i: number): [string, number] {
  if (text[i] === '\r' && text[i + 1] === '\n') return ['\n', 2];
  return [text[i] === '\u2028' || text[i] === '\u2029' ? text[i]! : '\n', 1];
}

/** The [start, end) offsets of the quoted scalars the `yaml` library's parser finds in `text` (its CST, no values). */
function quotedSpans(text: string): [number, number][] {
  const spans: [number, number][] = [];
  const walk = (t: unknown): void => {
    if (Array.isArray(t)) return t.forEach(walk);
    if (typeof t !== 'object' || t === null) return;
    const tok = t as { type?: string; offset?: number; source?: string };
    if ((tok.type === 'single-quoted-scalar' || tok.type === 'double-quoted-scalar') && tok.offset !== undefined && tok.source !== undefined) spans.push([tok.offset, tok.offset + tok.source.length]);
    else Object.values(t).forEach(walk);
  };
  for (const token of new Parser().parse(text)) walk(token);
  return spans;
}

/**
 * `text` with go-yaml's lines for the `yaml` library: each NEL, LS, PS or lone CR (GO_ONLY_BREAK) made "\n", the
 * same length, so every offset stays; but inside quotes, where the library reads them as text on one line and
 * go-yaml lets the lines after a break start at any column (`x: 'a<LS>b'`). go-yaml writes a value holding LS or PS
 * in a literal block with the break raw: a line holding only it (`one\n<LS>    two`) is an empty line to go-yaml, but
 * text less indented than the block to the library, which ends the block and refuses what follows; after a value
 * ending in one (`a<LS>`), the next key follows on the same line. The values are read from `text` itself
 * (goFlowScalar, goBlockScalar); this only gives the library go-yaml's lines. Quotes are found by the library's
 * parser, again on the text so changed (a block that swallowed a quote-looking line may end at such a break). Pure.
 */
export function goLines(text: string): string {
  if (!goOnlyBreak(text)) return text;
  let lines = text;
  for (let round = 0; round < 4; round++) {
    const spans = quotedSpans(lines).sort((x, y) => x[0] - y[0]);
    let at = 0; // the breaks come in order: the first span not ending before the one met
    const inQuotes = (i: number) => {
      while (at < spans.length && spans[at]![1] <= i) at += 1;
      return at < spans.length && spans[at]![0] <= i;
    };
    const next = text.replace(GO_ONLY_BREAK, (c, i: number) => (inQuotes(i) ? c : '\n'));
    if (next === lines) break;
    lines = next;
  }
  return lines;
}

/** A piece of a value written inside YAML double quotes (read back by the `yaml` library as that piece). */
function escaped(s: string): string {
  return s.replace(/[\\"\x00-\x1f\x7f\u0085\u2028\u2029]/g, (c) =>
    c === '\\' ? '\\\\' : c === '"' ? '\\"' : c === '\n' ? '\\n' : c === '\t' ? '\\t' : c === '\u2028' ? '\\L' : c === '\u2029' ? '\\P' : c === '\u0085' ? '\\N' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/**
 * A flow scalar's text (between its quotes; a plain scalar whole) read as go-yaml reads it: libyaml's
 * yaml_parser_scan_flow_scalar (and scan_plain_scalar) loop of non-blank runs, then blanks and breaks joined: a single
 * "\n" break (CR LF, CR, LF, NEL) folded into a space, further breaks kept, an LS or PS kept as itself, the blanks
 * around breaks dropped; in double quotes, escapes are kept for the `yaml` library to decode, and a backslash before a
 * break joins the lines. Pure.
 */
export function goFlowScalar(text: string, style: 'plain' | 'single' | 'double'): string {
  let out = '';
  let i = 0;
  const n = text.length;
  while (i < n) {
    let leading = false;
    while (i < n && !BLANK.test(text[i]!) && !BREAK.test(text[i]!)) {
      const c = text[i]!;
      if (style === 'double' && c === '\\' && i + 1 < n) {
        if (BREAK.test(text[i + 1]!)) {
          i += 1 + lineBreak(text, i + 1)[1];
          leading = true;
          break;
        }
        out += c + text[i + 1];
        i += 2;
      } else if (style === 'single' && c === "'" && text[i + 1] === "'") {
        out += "'";
        i += 2;
      } else {
        out += style === 'double' ? c : escaped(c);
        i += 1;
      }
    }
    let whitespace = '';
    let first = '';
    let more = '';
    while (i < n && (BLANK.test(text[i]!) || BREAK.test(text[i]!))) {
      if (BLANK.test(text[i]!)) {
        if (!leading) whitespace += text[i];
        i += 1;
        continue;
      }
      const [b, width] = lineBreak(text, i);
      if (!leading) [whitespace, first, leading] = ['', b, true];
      else more += b;
      i += width;
    }
    if (i >= n && style === 'plain') break; // a plain scalar ends at its last non-blank character
    if (leading) out += first === '\n' ? (more ? escaped(more) : ' ') : escaped(first + more);
    else out += escaped(whitespace);
  }
  // a double-quoted scalar of escapes the `yaml` library read already: it decodes them; its messages (which quote
  // the text) are never printed
  return parse(`"${out}"`, { schema: 'failsafe', logLevel: 'silent' }) as string;
}

/**
 * A block scalar's value (`source`: its text from the `|` or `>` header on) as go-yaml reads it, `parent` the
 * indentation of the collection holding it: libyaml's yaml_parser_scan_block_scalar, where NEL, LS and PS end a line
 * as LF does (so the next line's indentation is no part of the value, and a line holding only one is an empty line),
 * NEL is kept as "\n" and LS and PS as themselves; the content's indentation is the header's indicator past `parent`,
 * else the most of the first line with text and the empty lines before it (at least `parent` + 1); in a folded block
 * (`>`) a "\n" between two lines not starting with a blank becomes a space (one NEL too), an LS or PS never; then
 * the header's chomping (`-` strip, `+` keep). Pure.
 */
export function goBlockScalar(source: string, parent: number): string {
  const literal = source[0] === '|';
  const header = /^[|>]([-+]?)([1-9]?)([-+]?)/.exec(source)!;
  const chomping = `${header[1]}${header[3]}`;
  let indent = header[2] ? Math.max(parent, 0) + Number(header[2]) : 0;
  let i = source.search(BREAK);
  if (i < 0) return '';
  const n = source.length;
  const readLine = (): string => {
    const [b, width] = lineBreak(source, i);
    i += width;
    return b;
  };
  readLine(); // the header's own line break
  let column = 0;
  /** Empty lines (spaces up to the indentation, then a break): their breaks; with no indentation yet, it is found. */
  const breaks = (): string => {
    let out = '';
    let most = 0;
    for (;;) {
      column = 0;
      while ((indent === 0 || column < indent) && source[i] === ' ') [i, column] = [i + 1, column + 1];
      most = Math.max(most, column);
      if (i >= n || !BREAK.test(source[i]!)) break;
      out += readLine();
    }
    if (indent === 0) indent = Math.max(most, parent + 1, 1);
    return out;
  };
  let value = '';
  let leadingBreak = '';
  let leadingBlank = false;
  let trailingBreaks = breaks();
  while (column === indent && i < n) {
    const trailingBlank = BLANK.test(source[i]!);
    if (!literal && leadingBreak === '\n' && !leadingBlank && !trailingBlank) {
      if (trailingBreaks === '') value += ' ';
    } else value += leadingBreak;
    value += trailingBreaks;
    leadingBlank = trailingBlank;
    const start = i;
    while (i < n && !BREAK.test(source[i]!)) i += 1;
    value += source.slice(start, i);
    leadingBreak = i < n ? readLine() : '';
    trailingBreaks = breaks();
  }
  if (chomping !== '-') value += leadingBreak;
  if (chomping === '+') value += trailingBreaks;
  return value;
}
