// A scalar's text as sops encrypts and hashes it, and back: sops is written in Go, so numbers are formatted
// as Go formats them (strconv.FormatFloat 'f' -1: never an exponent; int64 exact), booleans and times as Go writes them.
import { SopsTime, intValue, jsonScalarText, parseRfc3339, valueText } from './goyaml.ts';
import { type ScalarNode, str, toPlain } from './tree.ts';

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

/**
 * The text masking registers for a decrypted scalar: exactly as it reaches the app in the .env as a variable's whole
 * value (valueText: a float `2.0` or `1E-07`, a timestamp without its fraction of a second), a string as it is;
 * undefined for a boolean, which is not masked (one bit: masking "true" would shred every log line that says true).
 */
export function maskedText(s: ScalarNode): string | undefined {
  if (s.type === 'bool') return undefined;
  return s.type === 'str' ? (s.value as string) : valueText(toPlain(s, 'dotenv') as number | bigint | SopsTime);
}

/**
 * Every text masking registers for a decrypted scalar: maskedText, and a number's or timestamp's text inside a map
 * or list the .env takes whole as JSON, when that differs (jsonScalarText: `1e-7` for 1E-07, a timestamp with its
 * fraction of a second, unquoted); a string's forms inside JSON are secretParts'. [] for a boolean.
 */
export function maskedTexts(s: ScalarNode): string[] {
  const text = maskedText(s);
  if (text === undefined) return [];
  if (s.type === 'str' || s.type === 'bool') return [text];
  const value = toPlain(s, 'dotenv') as number | bigint | SopsTime;
  // NaN and ±Inf have no JSON text (refused inside JSON); a timestamp's is quoted: unquoted, as the app prints it
  const json = typeof value === 'number' && !Number.isFinite(value) ? text : value instanceof SopsTime ? value.toJSON() : jsonScalarText(value);
  return json === text ? [text] : [text, json];
}

/** The bytes sops encrypts and hashes for a scalar (Go's ToBytes): a binary value's own bytes, else scalarText's. */
export function scalarBytes(node: ScalarNode): Buffer {
  return node.bytes ? Buffer.from(node.bytes) : Buffer.from(scalarText(node), 'utf8');
}

/** The text sops encrypts and hashes for a scalar (Go's ToBytes); a binary value's base64 (see scalarBytes). */
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
