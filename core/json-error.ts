// Where a text stops being JSON, and what was met there, in words that quote none of it (the text may be a
// decrypted secret). Node 20's JSON.parse says "at position N" for some faults and, for others, quotes the text
// instead ("Unexpected token 'x', "..." is not valid JSON"; "Unexpected end of JSON input"): no place. Microsoft's
// jsonc-parser (VS Code's JSON reader) scans strictly when told to (no comments, no trailing commas, no empty text)
// and gives each fault as a code and an offset: this only turns its first fault into words.
import { parse, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { positions } from './secrets/comments.ts';

/** The first fault of `text` as JSON (RFC 8259; no byte order mark): its offset (UTF-16 units) and what it is. */
export interface JsonFault {
  offset: number;
  what: string;
}

/** What jsonc-parser's fault `e` is, in words that never quote `text` (the character there only picks the words). */
function faultWords(text: string, e: ParseError): string {
  const at = text[e.offset];
  const value = (expected: string): string => {
    if (e.offset >= text.length) return `the text ends where ${expected} was expected (a bracket or quote not closed?)`;
    if (at === ']' || at === '}') return `a comma before ${at}, which JSON does not allow (a trailing comma)`;
    return `an unexpected character where ${expected} was expected`;
  };
  // Switched on by name: jsonc-parser's ParseErrorCode is a const enum, which this project's TypeScript settings cannot read.
  const code = printParseErrorCode(e.error);
  switch (code) {
    case 'InvalidSymbol':
      if (at === "'") return 'a single quote: JSON quotes strings with "';
      if (at !== undefined && /[A-Za-z_$]/.test(at)) return "a word not in double quotes (JSON's only bare words are true, false and null)";
      if (at !== undefined && /[-+.\d]/.test(at)) return 'a number JSON does not allow (a leading 0, a leading + or ., a trailing ., hex, NaN or Infinity)';
      return 'a character JSON does not allow here';
    case 'InvalidNumberFormat':
    case 'UnexpectedEndOfNumber':
      return 'a number JSON does not allow (a leading 0, a leading + or ., a trailing ., hex, NaN or Infinity)';
    case 'InvalidCommentToken':
    case 'UnexpectedEndOfComment':
      return 'a comment, which JSON does not have';
    case 'UnexpectedEndOfString':
      return 'a string whose closing " is missing (or a line break inside it: write it \\n)';
    case 'InvalidCharacter':
      return 'a string holding a control character (a tab is written \\t, a line break \\n)';
    case 'InvalidEscapeCharacter':
    case 'InvalidUnicode':
      return 'a string with an escape JSON does not have (only \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)';
    case 'CommaExpected':
      if (/\d/.test(text[e.offset - 1] ?? '') && /\d/.test(at ?? '')) return 'a number JSON does not allow (a leading 0)';
      return 'a comma missing between two values (those of an object or array are separated by commas)';
    case 'ColonExpected':
      return 'a colon missing after a key';
    case 'PropertyNameExpected':
      return value('a key in double quotes');
    case 'ValueExpected':
      return value('a value');
    case 'CloseBraceExpected':
    case 'CloseBracketExpected':
      return e.offset >= text.length ? value('a value') : `a comma or ${code === 'CloseBraceExpected' ? '}' : ']'} missing`;
    case 'EndOfFileExpected':
      return 'more text after the JSON value (one file holds one value: wrap several in [ ], separated by commas)';
    default:
      return 'text JSON does not allow';
  }
}

/**
 * The first place `text` breaks RFC 8259's grammar as jsonc-parser reads it strictly (no comments, no trailing
 * commas, no empty text), or undefined when it finds none. `what` names the fault without quoting the text. Pure.
 */
export function jsonFault(text: string): JsonFault | undefined {
  const errors: ParseError[] = [];
  parse(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  const first = errors[0];
  return first && { offset: first.offset, what: faultWords(text, first) };
}

/** `text`'s first JSON fault said as ` at line L, column C: what` (both 1-based; column in characters), or ''. Pure. */
export function jsonFaultPlace(text: string): string {
  const fault = jsonFault(text);
  if (!fault) return '';
  const { line, col } = positions(text)(fault.offset);
  return ` at line ${line + 1}, column ${col + 1}: ${fault.what}`;
}
