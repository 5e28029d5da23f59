// Unicode line breaks in YAML scalars, read as go-yaml reads them. go-yaml (libyaml's scanner, so sops) takes NEL
// (U+0085), LS (U+2028) and PS (U+2029) for line breaks, as YAML 1.1 says; the `yaml` library reads YAML 1.2, where
// they are ordinary characters. go-yaml also writes them so: a value holding LS but no \n is written single-quoted,
// the LS raw and followed by the indentation of a new line ('a<LS>    b' for "a<LS>b"), and in a literal block the
// lines after an LS are indented too. Read as YAML 1.2, such a value keeps those spaces: a value sops left in clear
// (--encrypted-regex, --unencrypted-suffix...) then failed the MAC, and a plaintext `sops decrypt` wrote, given to
// `ops secrets encrypt`, was stored with spaces that were never in it. Only scalars whose text holds one of these
// characters raw are read again here; every other one is as the `yaml` library read it.
import { parse } from 'yaml';

/** NEL, LS, PS: line breaks to go-yaml, not to the `yaml` library. */
export const UNICODE_BREAK = /[\u0085\u2028\u2029]/;

const BLANK = /[ \t]/;
const BREAK = /[\r\n\u0085\u2028\u2029]/;

/** The line break at `i` as libyaml reads it (READ_LINE): CR LF, CR, LF and NEL are "\n", LS and PS themselves; with its length. */
function lineBreak(text: string, i: number): [string, number] {
  if (text[i] === '\r' && text[i + 1] === '\n') return ['\n', 2];
  return [text[i] === '\u2028' || text[i] === '\u2029' ? text[i]! : '\n', 1];
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
 * A literal block scalar's value as go-yaml reads it, from the value the `yaml` library read (`value`) and the
 * block's `indent` (in spaces): after each NEL, LS or PS (a line break to go-yaml, NEL read as "\n") the next
 * line's indentation, up to `indent` spaces, is not part of the value. Pure.
 */
export function goLiteralBlock(value: string, indent: number): string {
  return value.replace(new RegExp(`([\\u0085\\u2028\\u2029]) {0,${indent}}`, 'g'), (_, b: string) => (b === '\u0085' ? '\n' : b));
}
