// What a YAML scalar means to sops. sops is written in Go and reads YAML with go-yaml v3 (go.yaml.in/yaml/v3,
// resolve.go): its plain scalars follow YAML 1.1-ish rules that differ from YAML 1.2's core schema (`0777` is
// octal 511, `1_000` is 1000, `08` is the float 8, `2024-01-15` is a timestamp, `yes` is a string). The values
// sops encrypts and hashes into the MAC are those Go values, so this tool resolves scalars exactly the same
// way, and formats them back with Go's rules (strconv, time.MarshalText).

/** The typed value of a scalar, as sops holds it. `int` is Go's int64; `time` is RFC 3339 text (Go's MarshalText). */
export type GoScalar =
  | { type: 'null' }
  | { type: 'str'; value: string }
  | { type: 'bool'; value: boolean }
  | { type: 'int'; value: number | bigint }
  | { type: 'float'; value: number }
  | { type: 'time'; value: string }
  /** An integer in (2^63, 2^64): go-yaml gives a uint64, which sops cannot encrypt. */
  | { type: 'uint64'; value: bigint };

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** An integer as this tool holds it: a number when exact, else a bigint. */
export function intValue(n: bigint): number | bigint {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

/**
 * A timestamp (held as MarshalText writes it) as sops gives it where only text can go (`sops decrypt --output-type
 * dotenv`, `sops exec-env`: Go's time.Format(time.RFC3339)): whole seconds, its fraction of a second dropped
 * (`2024-01-15T10:00:00.5Z` is `2024-01-15T10:00:00Z`). Pure.
 */
export function dotenvTime(marshal: string): string {
  return marshal.replace(/\.\d+(?=Z$|[+-]\d\d:\d\d$)/, '');
}

/** Where a SopsTime keeps its MarshalText: a symbol key, so that the time is no map to Object.keys (it has no members) yet two times still differ to isDeepStrictEqual. */
const MARSHAL = Symbol('MarshalText');

/**
 * A timestamp of a decrypted file as the .env view holds it (toPlain 'dotenv'): sops gives it two texts, and which
 * one depends on where it goes, so the view keeps the time itself. As a variable's whole value (`sops exec-env`,
 * `--output-type dotenv`: valueText, String()) it is dotenvTime's whole seconds; inside a map or list taken whole as
 * JSON (`--output-type json`: Go's encoding/json calls time.MarshalJSON, RFC 3339 with nanoseconds) it is the
 * MarshalText, its fraction of a second kept (toJSON).
 */
export class SopsTime {
  readonly [MARSHAL]: string;
  constructor(marshal: string) {
    this[MARSHAL] = marshal;
  }
  /** As a variable's whole value: whole seconds (dotenvTime). */
  toString(): string {
    return dotenvTime(this[MARSHAL]);
  }
  /** As a member of JSON: Go's MarshalText, its fraction of a second kept. */
  toJSON(): string {
    return this[MARSHAL];
  }
}

/**
 * A number or timestamp inside a map or list taken whole, as `sops decrypt --output-type json` writes it (its
 * stores/json/store.go hands every scalar to Go's encoding/json): an int as its digits; a float in the shortest
 * digits, plain from 1e-6 up to 1e21 and with an exponent outside (`1e-7`, `1e+21`), the thresholds and forms of
 * ECMAScript's Number#toString too, and -0.0 as `-0`, whose sign JSON.stringify drops; a timestamp quoted, as its
 * MarshalText. Not for a float JSON has no text for (.inf, .nan: sops fails, the .env refuses them). Pure.
 */
export function jsonScalarText(value: number | bigint | SopsTime): string {
  if (value instanceof SopsTime) return JSON.stringify(value.toJSON());
  if (Object.is(value, -0)) return '-0';
  return typeof value === 'bigint' ? value.toString() : JSON.stringify(value);
}

/**
 * A float as sops gives it where only text can go (`sops decrypt --output-type dotenv`, `sops exec-env`: its
 * stores.ValToString): Go's shortest form, strconv.FormatFloat(v, 'G', -1, 64), an exponent from 1e6 and below 1e-4
 * (`1.5E+10`, `1E-07`), and ".0" after one that would read as an integer (`2.0`, `-0.0`); `+Inf`, `-Inf`, `NaN`. Pure.
 */
export function goFloatText(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v < 0 ? '-Inf' : '+Inf';
  const sign = v < 0 || Object.is(v, -0) ? '-' : '';
  // JavaScript's shortest round-trip digits, as Go's: d.ddd and the exponent
  const [mantissa, e] = Math.abs(v).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const exp = Number(e);
  let text: string;
  if (exp < -4 || exp >= 6) text = `${digits[0]}${digits.length > 1 ? `.${digits.slice(1)}` : ''}E${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  else if (exp < 0) text = `0.${'0'.repeat(-exp - 1)}${digits}`;
  else text = digits.length > exp + 1 ? `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}` : `${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
  return sign + text;
}

/**
 * A scalar of a decrypted file, as toPlain's .env view gives it (an int a bigint, a float a number), as sops gives
 * a variable its value where only text can go (`sops exec-env`, `sops decrypt --output-type dotenv`: its
 * stores.ValToString): a string as it is, an int as its digits, a float as goFloatText (`2.0`, `1.5E+10`, `1E-07`,
 * `-0.0`, `+Inf`), a bool as `true` or `false`, a timestamp in whole seconds (SopsTime). What the .env carries
 * (core/dotenv.ts, asString) and masking registers (tree-scalars.ts, maskedText). Pure.
 */
export function valueText(value: string | number | bigint | boolean | SopsTime): string {
  return typeof value === 'number' ? goFloatText(value) : String(value);
}

/** Go's strconv.ParseInt(s, 0, 64) (and ParseUint): sign, then 0x / 0o / 0b / leading-0 octal / decimal. */
function goParseInteger(s: string, unsigned: boolean): bigint | undefined {
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (!m) return undefined;
  const [, sign, digits] = m;
  if (unsigned && sign) return undefined;
  let n: bigint;
  if (/^0[oO]/.test(digits!)) n = BigInt(`0o${digits!.slice(2)}`);
  else if (/^0[0-7]+$/.test(digits!)) n = BigInt(`0o${digits!.slice(1)}`);
  else n = BigInt(digits!.toLowerCase());
  if (sign === '-') n = -n;
  if (unsigned) return n <= UINT64_MAX ? n : undefined;
  return n >= INT64_MIN && n <= INT64_MAX ? n : undefined;
}

const YAML_STYLE_FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;

/** Go's strconv.ParseFloat for decimal text: undefined when it does not parse or is out of range (as go-yaml ignores those). */
function goParseDecimalFloat(s: string): number | undefined {
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

interface TimeParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  /** Fraction digits as written (Go keeps nanoseconds: at most 9 are used). */
  fraction: string;
  /** Minutes east of UTC. */
  offset: number;
}

function validTime(t: TimeParts): boolean {
  const dim = t.month === 2 && isLeap(t.year) ? 29 : DAYS[t.month - 1];
  return t.month >= 1 && t.month <= 12 && t.day >= 1 && dim !== undefined && t.day <= dim && t.hour < 24 && t.minute < 60 && t.second < 60;
}

function offsetOf(zone: string | undefined): number | undefined {
  if (!zone || zone === 'Z') return 0;
  const m = /^([+-])(\d\d):(\d\d)$/.exec(zone)!;
  const [h, min] = [Number(m[2]), Number(m[3])];
  if (h > 24 || min > 60) return undefined;
  return (m[1] === '-' ? -1 : 1) * (h * 60 + min);
}

/** Go's time.MarshalText (RFC 3339 with nanoseconds, trailing zeros dropped; "Z" for a zero offset). */
function formatTime(t: TimeParts): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const frac = t.fraction.slice(0, 9).replace(/0+$/, '');
  const off = Math.abs(t.offset);
  const zone = t.offset === 0 ? 'Z' : `${t.offset < 0 ? '-' : '+'}${p(Math.floor(off / 60))}:${p(off % 60)}`;
  return `${p(t.year, 4)}-${p(t.month)}-${p(t.day)}T${p(t.hour)}:${p(t.minute)}:${p(t.second)}${frac ? `.${frac}` : ''}${zone}`;
}

function timeFrom(m: RegExpExecArray, zone: string | undefined): string | undefined {
  const offset = offsetOf(zone);
  if (offset === undefined) return undefined;
  const t: TimeParts = {
    year: Number(m[1]),
    month: Number(m[2]),
    day: Number(m[3]),
    hour: Number(m[4] ?? 0),
    minute: Number(m[5] ?? 0),
    second: Number(m[6] ?? 0),
    fraction: m[7] ?? '',
    offset,
  };
  return validTime(t) ? formatTime(t) : undefined;
}

/**
 * go-yaml's parseTimestamp: "2006-1-2T15:4:5.999999999Z07:00" (also with "t"), "2006-1-2 15:4:5.999999999"
 * (UTC) or "2006-1-2"; returns the time as Go's MarshalText writes it, or undefined.
 */
export function parseYamlTimestamp(s: string): string | undefined {
  let m = /^(\d{4})-(\d{1,2})-(\d{1,2})[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,](\d+))?(Z|[+-]\d\d:\d\d)$/.exec(s);
  if (m) return timeFrom(m, m[8]);
  m = /^(\d{4})-(\d{1,2})-(\d{1,2})(?: (\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,](\d+))?)?$/.exec(s);
  if (m) return timeFrom(m, undefined);
  return undefined;
}

/** Go's time.UnmarshalText (RFC 3339), what sops uses to decrypt a `time` value; returns MarshalText's form. */
export function parseRfc3339(s: string): string | undefined {
  const m = /^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?([Zz]|[+-]\d\d:\d\d)$/.exec(s);
  return m ? timeFrom(m, m[8]!.toUpperCase()) : undefined;
}

const NULLS = new Set(['', '~', 'null', 'Null', 'NULL']);
const TRUES = new Set(['true', 'True', 'TRUE']);
const FALSES = new Set(['false', 'False', 'FALSE']);

/** A plain (unquoted, untagged) scalar as go-yaml v3 resolves it. */
export function resolvePlain(text: string): GoScalar {
  if (NULLS.has(text)) return { type: 'null' };
  if (TRUES.has(text)) return { type: 'bool', value: true };
  if (FALSES.has(text)) return { type: 'bool', value: false };
  if (/^\.(nan|NaN|NAN)$/.test(text)) return { type: 'float', value: NaN };
  if (/^\+?\.(inf|Inf|INF)$/.test(text)) return { type: 'float', value: Infinity };
  if (/^-\.(inf|Inf|INF)$/.test(text)) return { type: 'float', value: -Infinity };
  const hint = text[0]!;
  if (hint === '.') {
    const f = goParseDecimalFloat(text);
    return f === undefined ? { type: 'str', value: text } : { type: 'float', value: f };
  }
  if (/[0-9+-]/.test(hint)) {
    const time = parseYamlTimestamp(text);
    if (time) return { type: 'time', value: time };
    const plain = text.replace(/_/g, '');
    const i = goParseInteger(plain, false);
    if (i !== undefined) return { type: 'int', value: intValue(i) };
    const u = goParseInteger(plain, true);
    if (u !== undefined) return { type: 'uint64', value: u };
    if (YAML_STYLE_FLOAT.test(plain)) {
      const f = goParseDecimalFloat(plain);
      if (f !== undefined) return { type: 'float', value: f };
    }
  }
  return { type: 'str', value: text };
}

const TAG = 'tag:yaml.org,2002:';
/** The core tags go-yaml v3 resolves a scalar's text by (resolve.go resolvableTag, decode.go null): it must be of that type. */
const RESOLVED_TAGS = new Set(['bool', 'int', 'float', 'timestamp', 'null']);

/**
 * A scalar with its YAML presentation: plain scalars resolve as above, quoted and block scalars are strings,
 * explicit core tags (!!int, !!float, !!bool, !!timestamp, !!null) resolve the text and must agree (go-yaml refuses
 * `!!int x`), any other tag (`!!merge`, `!!set`, `!!seq`, `!x`) leaves the text a string, as go-yaml does,
 * !!binary is base64 decoded to text (bytes that are not UTF-8 throw here, never become U+FFFD: tree-parse.ts
 * reads them as a binary value first). Throws a plain Error.
 */
export function resolveScalar(text: string, plain: boolean, tag: string | undefined): GoScalar {
  if (!tag || tag === '!') return plain ? resolvePlain(text) : { type: 'str', value: text };
  if (!tag.startsWith(TAG)) return { type: 'str', value: text };
  const want = tag.slice(TAG.length);
  if (want === 'str') return { type: 'str', value: text };
  // go-yaml v3 resolves only these tags (resolve.go resolvableTag, and decode.go's !!null): a scalar under any other
  // (`!!merge <<`, which sops writes for the text "<<" left unencrypted; `!!set x`, `!!seq x`, `!!foo 12`) is its text
  if (!RESOLVED_TAGS.has(want) && want !== 'binary') return { type: 'str', value: text };
  if (want === 'binary') return { type: 'str', value: new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(text.replace(/\s+/g, ''), 'base64')) };
  const r = resolvePlain(text);
  const got = r.type === 'uint64' ? 'int' : r.type === 'time' ? 'timestamp' : r.type;
  if (want === got) return r;
  if (want === 'float' && r.type === 'int') return { type: 'float', value: Number(r.value) };
  if (want === 'timestamp' && r.type === 'str') throw new Error(`cannot decode a !!str as a !!timestamp`);
  throw new Error(`cannot decode a !!${got === 'null' ? 'null' : got} as a !!${want}`);
}

/** Would go-yaml read this text, written plain, as something other than this very string? (Then it is quoted.) */
export function plainChangesMeaning(s: string): boolean {
  const r = resolvePlain(s);
  return r.type !== 'str' || r.value !== s;
}
