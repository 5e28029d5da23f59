// The parts of a secret that can show up in a log on their own: a URL's password (a hook printing
// `urlparse(DATABASE_URL).password`), the strings inside a JSON document (`json.loads(TOOLS_PASSWORDS)[email]`),
// and the forms those take once printed again as JSON. Masking registers all of them (core/report.ts), and finds
// each in any URL-encoding too (Masker, through percentEscapedChar below).

/**
 * The shortest text masking registers (core/report.ts, Masker): a part of a secret shorter than this (a one- or
 * two-character line, URL password or value) is masked nowhere, neither by ops nor by GitHub's add-mask (ops
 * hands it only what its Masker keeps): masking "a" or "1" would shred every log line. weak.ts warns about them.
 */
export const MIN_MASKED_LENGTH = 3;

/** A URL with an authority: scheme://[userinfo@]host... (RFC 3986; Python's urllib.parse.urlsplit reads it the same). */
const URL_AUTHORITY = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/;

/**
 * Percent-decoding as Python's urllib.parse.unquote does it: each run of %XX escapes is decoded as UTF-8
 * (invalid sequences become U+FFFD); a % not followed by two hex digits stays as it is.
 */
export function percentDecode(text: string): string {
  return text.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => Buffer.from(run.replace(/%/g, ''), 'hex').toString('utf8'));
}

/**
 * The password of a URL-shaped value, as written and percent-decoded, the way urllib.parse.urlsplit finds it:
 * the userinfo is what precedes the LAST "@" of the authority, the password what follows its FIRST ":".
 */
export function urlPassword(value: string): string[] {
  const m = URL_AUTHORITY.exec(value.trim());
  if (!m) return [];
  const authority = m[1]!;
  const at = authority.lastIndexOf('@');
  if (at < 0) return [];
  const userinfo = authority.slice(0, at);
  const colon = userinfo.indexOf(':');
  if (colon < 0) return [];
  const password = userinfo.slice(colon + 1);
  return password ? [password, percentDecode(password)] : [];
}

/** Every string inside a JSON document (not its keys, numbers or booleans), at any depth; [] when `value` is not JSON. */
export function jsonStrings(value: string): string[] {
  const t = value.trim();
  if (!/^[[{]/.test(t)) return [];
  let doc: unknown;
  try {
    doc = JSON.parse(t);
  } catch {
    return [];
  }
  const out: string[] = [];
  const walk = (node: unknown): void => {
    if (typeof node === 'string') out.push(node);
    else if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') Object.values(node).forEach(walk);
  };
  walk(doc);
  return out;
}

/** A string as JSON writes it inside quotes: JavaScript's escapes, and Python's json.dumps (ensure_ascii) ones. */
function jsonEscaped(text: string): string[] {
  const js = JSON.stringify(text).slice(1, -1);
  const ascii = js.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return [js, ascii];
}

/**
 * Everything to mask for one secret value: the value, the password of a URL (as written and decoded), the
 * strings of a JSON document (recursively: a URL inside JSON gives its password too), and each of them as
 * JSON escapes it (not with `escapes: false`). Duplicates and the value itself may be returned; callers drop short ones.
 */
export function secretParts(value: string, options: { escapes?: boolean } = {}): string[] {
  const parts = new Set<string>([value]);
  const visit = (v: string, depth: number): void => {
    for (const p of [...urlPassword(v), ...jsonStrings(v)]) {
      if (parts.has(p)) continue;
      parts.add(p);
      if (depth < 4) visit(p, depth + 1);
    }
  };
  visit(value, 0);
  if (options.escapes !== false) for (const p of [...parts]) for (const e of jsonEscaped(p)) parts.add(e);
  return [...parts];
}

/** The value of a hex digit of either case (RFC 3986 2.1: "%c3" and "%C3" are the same octet), or -1. */
function hexDigit(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  const lower = code | 32;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

/** The octet of a "%XX" escape at `at` (either hex case), or -1. */
function escapedOctet(text: string, at: number): number {
  if (text.charCodeAt(at) !== 37) return -1;
  const hi = hexDigit(text.charCodeAt(at + 1));
  const lo = hexDigit(text.charCodeAt(at + 2));
  return hi < 0 || lo < 0 ? -1 : (hi << 4) | lo;
}

/**
 * The one character percent-encoded at `at`, as RFC 3986 percent-encoding of UTF-8 writes it (Python's
 * urllib.parse.quote and quote_plus, SQLAlchemy's URL rendering, JavaScript's encodeURIComponent): the %XX
 * escapes of its 1 to 4 UTF-8 bytes, hex digits in either case. Returns the character and how many characters of
 * `text` encode it, or undefined where no complete, well-formed UTF-8 sequence is escaped there (a stray "%",
 * "%zz", a lone continuation byte, an overlong form or a surrogate: those are only ever the characters themselves).
 */
export function percentEscapedChar(text: string, at: number): [char: string, length: number] | undefined {
  const lead = escapedOctet(text, at);
  if (lead < 0) return undefined;
  if (lead < 0x80) return [String.fromCharCode(lead), 3];
  let bytes: number;
  let cp: number;
  if (lead >= 0xc2 && lead <= 0xdf) [bytes, cp] = [2, lead & 0x1f];
  else if (lead >= 0xe0 && lead <= 0xef) [bytes, cp] = [3, lead & 0x0f];
  else if (lead >= 0xf0 && lead <= 0xf4) [bytes, cp] = [4, lead & 0x07];
  else return undefined;
  for (let k = 1; k < bytes; k++) {
    const b = escapedOctet(text, at + 3 * k);
    if (b < 0 || (b & 0xc0) !== 0x80) return undefined;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (bytes === 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) return undefined;
  if (bytes === 4 && (cp < 0x10000 || cp > 0x10ffff)) return undefined;
  return [String.fromCodePoint(cp), 3 * bytes];
}
