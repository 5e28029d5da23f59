// Where a text stops being JSON, and what was met there, in words that quote none of it (the text may be a
// decrypted secret). Node 20's JSON.parse says "at position N" for some faults and, for others, quotes the text
// instead ("Unexpected token 'x', "..." is not valid JSON"; "Unexpected end of JSON input"): no place. No library
// the project has reads JSON strictly and tells the place (the `yaml` library's JSON schema reads YAML flow syntax:
// a trailing comma or single quotes pass), so this follows RFC 8259's grammar, only to find the place of a fault
// JSON.parse found. It builds no value.
import { positions } from './secrets/comments.ts';

/** The first fault of `text` as JSON (RFC 8259; no byte order mark): its offset (UTF-16 units) and what it is. */
export interface JsonFault {
  offset: number;
  what: string;
}

/**
 * The first place `text` breaks RFC 8259's grammar, or undefined when it is one JSON value (as JSON.parse reads
 * it). `what` names the fault without quoting the text (a trailing comma, single quotes, a comment, a missing
 * comma, an unquoted key or word, a raw control character in a string, a bad escape or number, the end reached
 * inside a value, text after the value). Recursion is bounded by refuseDeepNesting's check before. Pure.
 */
export function jsonFault(text: string): JsonFault | undefined {
  let i = 0;
  const fail = (what: string, at = i): never => {
    throw Object.assign(new Error(what), { jsonFault: { offset: at, what } });
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const unexpected = (expected: string): never => {
    if (i >= text.length) return fail(`the text ends where ${expected} was expected (a bracket or quote not closed?)`);
    const c = text[i]!;
    if (expected.startsWith('a comma') && /["{[\d-]/.test(c)) return fail('a comma missing between two values (those of an object or array are separated by commas)');
    if (c === "'") return fail(`a single quote where ${expected} was expected: JSON quotes strings with "`);
    if (c === '/' || c === '#') return fail(`a comment, which JSON does not have`);
    if (/[A-Za-z_$]/.test(c)) return fail(`a word not in double quotes where ${expected} was expected (JSON's only bare words are true, false and null)`);
    return fail(`an unexpected character where ${expected} was expected`);
  };
  const string = () => {
    i++;
    for (;;) {
      if (i >= text.length) fail('a string whose closing " is missing');
      const c = text.charCodeAt(i);
      if (c === 0x22) return void i++;
      if (c < 0x20) fail(c === 0x0a ? 'a line break inside a string (its closing " is missing, or write it \\n)' : 'a control character inside a string (a tab is written \\t)');
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u' && /^[0-9A-Fa-f]{4}$/.test(text.slice(i + 2, i + 6))) i += 6;
        else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else fail('an escape JSON does not have (only \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)');
      } else i++;
    }
  };
  const number = () => {
    const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) fail('a number JSON does not allow');
    i += m![0].length;
    if (/^[0-9A-Za-z.+-]/.test(text[i] ?? '')) fail('a number JSON does not allow (a leading 0, a leading + or ., a trailing ., hex, NaN or Infinity)', i - m![0].length);
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') {
          if (text[i] === '}') fail('a comma before }, which JSON does not allow (a trailing comma)');
          unexpected('a key in double quotes');
        }
        string();
        ws();
        if (text[i] !== ':') unexpected('a colon after the key');
        i++;
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') return void i++;
        unexpected('a comma or }');
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        ws();
        if (text[i] === ']') fail('a comma before ], which JSON does not allow (a trailing comma)');
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') return void i++;
        unexpected('a comma or ]');
      }
    }
    if (c === '"') return string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return number();
    for (const word of ['true', 'false', 'null']) if (text.startsWith(word, i) && !/[A-Za-z0-9_]/.test(text[i + word.length] ?? '')) return void (i += word.length);
    unexpected('a value');
  };
  try {
    value();
    ws();
    if (i < text.length) fail('more text after the JSON value (one file holds one value: wrap several in [ ], separated by commas)');
    return undefined;
  } catch (e) {
    const fault = (e as { jsonFault?: JsonFault }).jsonFault;
    if (fault) return fault;
    throw e;
  }
}

/** `text`'s first JSON fault said as ` at line L, column C: what` (both 1-based; column in characters), or ''. Pure. */
export function jsonFaultPlace(text: string): string {
  const fault = jsonFault(text);
  if (!fault) return '';
  const { line, col } = positions(text)(fault.offset);
  return ` at line ${line + 1}, column ${col + 1}: ${fault.what}`;
}
