// The parts of a secret that can show up in a log on their own: a URL's password or token (a hook printing
// `urlparse(DATABASE_URL).password`), the strings inside a JSON document (`json.loads(TOOLS_PASSWORDS)[email]`),
// and the forms those take once printed again as JSON. Masking registers all of them (core/report.ts), and finds
// each in any URL-encoding too (Masker, through percentEscapedChar below).
import { dotenvWrittenForms } from '../dotenv-forms.ts';

/**
 * The shortest text masking registers (core/report.ts, Masker): a part of a secret shorter than this (a one- or
 * two-character line, URL password or value) is masked nowhere, neither by ops nor by GitHub's add-mask (ops
 * hands it only what its Masker keeps): masking "a" or "1" would shred every log line. weak.ts warns about them.
 */
export const MIN_MASKED_LENGTH = 3;

/** Parts of at least MIN_MASKED_LENGTH characters and fewer than this are masked, and garble the logs: warned about. */
export const SHORT_SECRET_LENGTH = 8;

/**
 * Words and numbers of SHORT_SECRET_LENGTH characters or more that logs and messages are full of, or that are
 * the first guesses for a password: masking them garbles the logs as a short value does (compared lowercase).
 */
export const COMMON = new Set([
  // first guesses for a password
  'password', 'password1', 'password123', 'passw0rd', 'p@ssw0rd', 'changeme', 'change-me', 'changeit', 'letmein1', 'iloveyou',
  'sunshine', 'football', 'baseball', 'welcome1', 'trustno1', 'superuser', 'supersecret', 'secret123', 'admin123',
  'qwertyui', 'qwertyuiop', 'qwerty123', 'abcdefgh', 'abcd1234', 'testtest', 'test1234', 'root1234',
  // words deploy logs and app output are full of
  'postgres', 'postgresql', 'username', 'database', 'localhost', '127.0.0.1', 'production', 'development',
  'administrator', 'application', 'deployment', 'undefined', 'disabled', 'password_hash',
  // numbers
  '12345678', '123456789', '1234567890', '87654321', '11111111', '00000000', '99999999',
]);

/** Whether a masked part (trimmed) is weak: shorter than SHORT_SECRET_LENGTH, or a common word or number (weak.ts). */
export function isWeakPart(part: string): boolean {
  return part.length < SHORT_SECRET_LENGTH || COMMON.has(part.toLowerCase());
}


/**
 * A URL's scheme and "://" (RFC 3986): its authority follows. Only where a scheme can start, not inside a run of its
 * characters: each is tried once, so a long line of letters (minified code) stays linear.
 */
const URL_SCHEME = /(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*:\/\//g;

/**
 * Percent-decoding as Python's urllib.parse.unquote does it: each run of %XX escapes is decoded as UTF-8
 * (invalid sequences become U+FFFD); a % not followed by two hex digits stays as it is.
 */
export function percentDecode(text: string): string {
  return text.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => Buffer.from(run.replace(/%/g, ''), 'hex').toString('utf8'));
}

/**
 * Token prefixes of the forges and registries whose tokens end up written as a URL's user
 * (`https://ghp_…@github.com/org/app.git`): GitHub's personal, OAuth, user-to-server, server-to-server and refresh
 * tokens and fine-grained PATs (ghp_ gho_ ghu_ ghs_ ghr_ github_pat_), GitLab's personal, deploy and pipeline
 * trigger tokens (glpat- gldt- glptt-), npm's (npm_) and Slack's (xoxb-, xoxp-, …), as the forges document their
 * formats (GitHub Docs, "About authentication to GitHub", GitHub's token formats; GitLab Docs, "Token overview",
 * token prefixes). At least 16 characters follow (each has 20 or more), so a user merely named like one ("npm_ci")
 * is no token.
 */
const TOKEN_PREFIX = /^(?:gh[pousr]_|github_pat_|glpat-|gldt-|glptt-|npm_|xox[a-z]-|xoxe\.xox[a-z]-|xapp-|[sr]k_(?:live|test)_|whsec_)[A-Za-z0-9_-]{16,}$/;

/**
 * Credentials by their documented shape, anywhere in running text (a server's words, an error page, an audit message),
 * where no value is known to mask: GitHub's tokens (gh[pousr]_ and 36 base62 characters; github_pat_ and 82), GitLab's
 * (glpat- gldt- glptt-, 20 or more), npm's (npm_ and 36), Slack's bot, user, app, refresh and app-level tokens
 * (xoxb-…, xoxe.xoxp-…, xapp-…), Stripe's secret, restricted and webhook keys (sk_live_, rk_test_, whsec_…), an AWS
 * access key id (AKIA or ASIA and 16 of A-Z 2-7), and a JWT (eyJ… header, payload and signature). Each prefix must be
 * followed by as many characters as its format has (so `npm_ci`, `sk_live_mode` or `xoxb-` in a sentence stay
 * shown), and no shape is hex alone: a commit sha, a sha256 or a UUID in the text is no token. Tried where a word
 * starts: linear.
 */
const TOKEN_IN_TEXT =
  /(?<![A-Za-z0-9_.-])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,}|gl(?:pat|dt|ptt)-[A-Za-z0-9_-]{20,}|npm_[A-Za-z0-9]{36,}|(?:xoxe\.)?xox[abposre]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{20,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|whsec_[A-Za-z0-9+/=]{24,}|A(?:KIA|SIA)[A-Z2-7]{16}(?![A-Za-z0-9])|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)/g;

/** Each credential of a documented shape in `text` (TOKEN_IN_TEXT: ghp_…, sk_live_…, AKIA…, a JWT), in order; [] for none. */
export function tokensIn(text: string): string[] {
  return [...text.matchAll(TOKEN_IN_TEXT)].map((m) => m[0]);
}

/** `text` with each credential of a documented shape in it (TOKEN_IN_TEXT) written `***`. Idempotent. */
export function hideTokens(text: string): string {
  return text.replace(TOKEN_IN_TEXT, '***');
}

/**
 * A user that looks generated: 20 or more letters and digits, both present, nothing else. Tokens without a known
 * prefix (Bitbucket and Azure DevOps PATs, Gitea's 40 hex digits, a random string) have that shape; names people
 * give a user (git, deploy, alice, ci-bot, first.last, svc_deploy_2024) are shorter or hold a separator (. - _), so
 * they stay shown and accepted. A long run of letters and digits named by hand is taken for a token: masked and
 * refused, which costs a rename; a token missed would be printed.
 */
const GENERATED_USER = /^(?=[A-Za-z0-9]*[A-Za-z])(?=[A-Za-z0-9]*[0-9])[A-Za-z0-9]{20,}$/;

/**
 * A JSON Web Token (RFC 7519, in JWS compact form): base64url header, payload and signature joined by ".", the
 * header a JSON object, so its base64url starts "eyJ" (`{"`). Names never start so and hold two dots.
 */
const JWT = /^eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*$/;

/**
 * A base64url run (letters, digits, "-", "_") of 20 characters or more, letters and digits both in it: a token
 * without a known prefix may hold "-" and "_" (base64url, RFC 4648 §5), as a name does (deploy-bot, ci_user).
 */
const BASE64URL_RUN = /^(?=.*[A-Za-z])(?=.*[0-9])[A-Za-z0-9_-]{20,}$/;

/**
 * Of the pairs of neighbouring letters and digits in `s` (pairs across a "-" or "_" not counted), the share that
 * change kind where a word would not: lower case to upper case, a letter to a digit, a digit to a letter. An upper
 * case letter followed by lower case is how a word starts (Deploy, GitHub), so it does not count.
 */
function kindChanges(s: string): number {
  const kind = (c: string): string => (c >= 'a' && c <= 'z' ? 'l' : c >= 'A' && c <= 'Z' ? 'U' : c >= '0' && c <= '9' ? 'd' : '');
  let pairs = 0;
  let changes = 0;
  for (let i = 1; i < s.length; i++) {
    const [a, b] = [kind(s[i - 1]!), kind(s[i]!)];
    if (!a || !b) continue;
    pairs++;
    if (a !== b && !(a === 'U' && b === 'l')) changes++;
  }
  return pairs ? changes / pairs : 0;
}

/**
 * A base64url run (BASE64URL_RUN) whose letters and digits change kind at a quarter of their pairs or more
 * (kindChanges): drawn at random from 64 characters they do so at about 4 pairs in 10, while names people write
 * change kind at word boundaries only, being words and numbers (John-Smith-2024-Deploy-Bot 0,
 * DeployBot_Production_2024 0.05, k8s-Prod-EU-West-1-Deployer 0.13). The idea of gitleaks' generic rule (a random
 * look tells a secret), measured on words rather than on letter frequencies: a Shannon entropy threshold also passes
 * names of many distinct characters (ci-bot-0123456789-abcdef0123 has 4.2 bits a character, a random 20-character
 * token 4.3). A random token of 20 characters falls under it about once in 20 (once in 200 at 40): shown as a
 * name would be.
 */
function isRandomRun(s: string): boolean {
  return BASE64URL_RUN.test(s) && kindChanges(s) >= 0.25;
}

/**
 * AWS IAM unique identifiers of what is no credential (IAM User Guide, "IAM identifiers", unique ID prefixes): a
 * user (AIDA), a group (AGPA), a role (AROA), a public key (APKA: the SSH key id CodeCommit takes as the user of
 * `ssh://APKA…@git-codecommit.<region>.amazonaws.com/v1/repos/<repo>`), an instance profile (AIPA), a managed policy
 * and its versions (ANPA, ANVA), a certificate (ASCA). The console lists them and policies name them, like a user
 * name: shown and accepted. Access key ids (AKIA, ASIA), bearer tokens (ABIA) and context-specific credentials (ACCA)
 * are half a credential or one: not listed here, so GENERATED_USER takes them for tokens.
 */
const AWS_PUBLIC_ID = /^A(?:IDA|GPA|ROA|PKA|IPA|NPA|NVA|SCA)[A-Z0-9]{16,17}$/;

/**
 * Whether a URL's user, or a part of a git address's userinfo (TOKEN@host:path, oauth2:TOKEN@host:path), as written,
 * is a token rather than a name: a known prefix (TOKEN_PREFIX), a JWT, or a generated look (GENERATED_USER:
 * long hex too; isRandomRun: a UUID too); never an AWS identifier (AWS_PUBLIC_ID).
 */
export function isTokenUser(user: string): boolean {
  if (AWS_PUBLIC_ID.test(user)) return false;
  return TOKEN_PREFIX.test(user) || JWT.test(user) || GENERATED_USER.test(user) || isRandomRun(user);
}

/** A port after a host's ":" (up to 5 digits, or none: urllib reads `host:` as no port): not a password. */
const PORT = /^[0-9]{0,5}$/;

/**
 * Where the credentials are in the URL whose authority starts at `start` of `text`, read as urllib.parse.urlsplit
 * reads it: the authority runs to the first "/", "?" or "#" (or a character of `stop`), its userinfo is what
 * precedes the LAST "@", the password what follows its FIRST ":". Without an "@" there, a ":" followed by
 * something other than a port is read as SQLAlchemy's make_url reads it: the password runs past "/", "?" and "#"
 * to the first "@" (`postgresql://app:pa/ss@db/x`, where urllib sees host "app" and port "pa"). Returns the user
 * when it is a token (isTokenUser) and the password (when not empty), each as [start, end) in `text`.
 */
function urlSpans(text: string, start: number, stop: RegExp, nextAt: (from: number) => number): [start: number, end: number][] {
  let end = start;
  while (end < text.length && !'/?#'.includes(text[end]!) && !stop.test(text[end]!)) end++;
  const authority = text.slice(start, end);
  let at = authority.lastIndexOf('@');
  const colon = (at < 0 ? authority : authority.slice(0, at)).indexOf(':');
  if (at < 0) {
    // an IPv6 literal's colons ([::1]:8080) are no password's
    if (colon < 0 || authority.startsWith('[') || PORT.test(authority.slice(colon + 1))) return [];
    const past = nextAt(end);
    if (past < 0) return [];
    at = past - start;
  }
  const userEnd = colon < 0 ? at : colon;
  const spans: [number, number][] = [];
  if (isTokenUser(text.slice(start, start + userEnd))) spans.push([start, start + userEnd]);
  if (colon >= 0 && colon + 1 < at) spans.push([start + colon + 1, start + at]);
  return spans;
}

/**
 * Git's scp-like address, `[user@]host:path` (git-clone(1), "GIT URLS": no "//" after the ":", no "/" before it),
 * with its userinfo: a token as the user (`ghp_…@github.com:org/app.git`) or after a ":" (`oauth2:glpat-…@gitlab.com:g/p.git`)
 * gets there as into a URL. In running text it starts a word (after white space, a quote, "(", "<", "=", ",", ";"),
 * and its userinfo holds none of those: each character is tried as a start once (a line of "a=a=a=…" stays linear).
 */
const SCP_ADDRESS = /(?<![^\s"'`(<=,;])([^\s"'`<>/@(=,;]+)@(?:\[[^\]\s/]+\]|[^\s"'`<>/:@[\]]+):(?!\/\/)/g;

/**
 * Where the credentials are in a git address's userinfo at `start` of `text` (SCP_ADDRESS): its user, and what
 * follows a ":" in it, each when it is a token (isTokenUser). ssh has no password field there, so only a token's
 * shape says a part is one: `deploy:x@host:path` is shown, as is `git@github.com:org/app.git`.
 */
function scpSpans(userinfo: string, start: number): [start: number, end: number][] {
  const colon = userinfo.indexOf(':');
  const parts: [number, number][] = colon < 0 ? [[0, userinfo.length]] : [[0, colon], [colon + 1, userinfo.length]];
  return parts.filter(([a, b]) => isTokenUser(userinfo.slice(a, b))).map(([a, b]) => [start + a, start + b]);
}

/** What ends a URL or a git address in running text: white space, a quote, "<" or ">". */
const TEXT_STOP = /[\s"'`<>]/;
/** Nothing ends a value's URL but the value's end (urllib takes a space or a quote into the authority). */
const VALUE_STOP = /(?!)/;

/**
 * For `text`: the first "@" at or after a place with no `stop` character before it, or -1 (where SQLAlchemy's
 * reading of a password ends: urlSpans). Asked at places that only grow, it keeps what it found: one pass over the
 * text however many URLs it holds.
 */
function atFinder(text: string, stop: RegExp): (from: number) => number {
  const stops = new RegExp(stop.source, 'g');
  let at = -1; // the first "@" at or after the place last asked; text.length for none
  let block = -1; // the first stop character there, likewise
  return (from) => {
    if (at < from) {
      const i = text.indexOf('@', from);
      at = i < 0 ? text.length : i;
    }
    if (block < from) {
      stops.lastIndex = from;
      block = stops.exec(text)?.index ?? text.length;
    }
    return at < text.length && at < block ? at : -1;
  };
}

/**
 * The one reading of credentials in URLs and git addresses: where each is in `text` (urlSpans for each
 * `scheme://`, scpSpans for each `user@host:path`), sorted, for urlCredentials, urlCredentialsIn and
 * hideUrlCredentials. `whole`: `text` is one value (a setting), not running text: only a URL or a git address at
 * its start counts, read to its end.
 */
function credentialSpans(text: string, whole: boolean): [start: number, end: number][] {
  const spans: [number, number][] = [];
  const stop = whole ? VALUE_STOP : TEXT_STOP;
  const nextAt = atFinder(text, stop);
  for (const m of text.matchAll(URL_SCHEME)) {
    if (whole && m.index !== 0) break;
    spans.push(...urlSpans(text, m.index + m[0].length, stop, nextAt));
  }
  for (const m of text.matchAll(SCP_ADDRESS)) {
    if (whole && m.index !== 0) break;
    spans.push(...scpSpans(m[1]!, m.index));
  }
  // a span inside one before it (a URL's password read past "/" over the next URL): read once, as the first
  const kept: [number, number][] = [];
  for (const span of spans.sort((a, b) => a[0] - b[0])) if (!kept.length || span[0] >= kept.at(-1)![1]) kept.push(span);
  return kept;
}

/** Each span's text as written and percent-decoded. */
const spanTexts = (text: string, spans: [number, number][]): string[] => spans.flatMap(([a, b]) => [text.slice(a, b), percentDecode(text.slice(a, b))]);

/**
 * The credentials of a URL-shaped value or a git address (credentialSpans: its password, and its user when that is a
 * token), each as written and percent-decoded; [] for none (`https://alice@host/`, `ssh://git@host/`,
 * `git@github.com:org/app.git`, not a URL).
 */
export function urlCredentials(value: string): string[] {
  const v = value.trim();
  return spanTexts(v, credentialSpans(v, true));
}

/**
 * The credentials of every URL and git address found in running text (a message, a command line, a setting holding
 * a URL among other words: `psql postgres://u:PW@h/db`, `git clone https://ghp_…@github.com/o/r`), each as written
 * and percent-decoded (credentialSpans), in order; [] for none.
 */
export function urlCredentialsIn(text: string): string[] {
  return spanTexts(text, credentialSpans(text, false));
}

/**
 * `s` with the credentials of every URL and git address in it written `***` (credentialSpans:
 * `scheme://user:***@host`, `https://***@github.com/o/r`, `***@github.com:o/r` for a token as the user; the scheme, a
 * user that is a name and the host kept, so the message still says which URL). Idempotent.
 */
export function hideUrlCredentials(s: string): string {
  const pieces: string[] = [];
  let from = 0;
  for (const [a, b] of credentialSpans(s, false)) {
    pieces.push(s.slice(from, a), '***');
    from = b;
  }
  return pieces.join('') + s.slice(from);
}

/**
 * An age private key however pasted, as it appears in text: whole (AGE-SECRET-KEY-1…, AGE-SECRET-KEY-PQ-1…), cut at
 * its start (GE-SECRET-KEY-1…), behind a comment mark, or in lower case (bech32 ignores case: still the same key).
 * Some of its data must follow "SECRET-KEY-": the bare shape, as messages and hints say it ("AGE-SECRET-KEY-…",
 * "AGE-SECRET-KEY-1…": the "1" is bech32's separator, the same in every key), is no key.
 */
const PRIVATE_KEY_IN_TEXT = /(?<![0-9A-Za-z-])[0-9A-Za-z-]*secret-key-(?!(?:pq-)?1(?![0-9A-Za-z-]))[0-9A-Za-z-]+/gi; // tried at a run's start only: linear

/** Whether `s` holds an age private key (PRIVATE_KEY_IN_TEXT's shapes): never to be quoted, said by its shape. */
export function isPrivateKey(s: string): boolean {
  return /secret-key-(?!(?:pq-)?1(?![0-9a-z-]))[0-9a-z-]/i.test(s);
}

/** The age private keys in `text` (PRIVATE_KEY_IN_TEXT's shapes), as written; [] for none. */
export function privateKeysIn(text: string): string[] {
  return text.match(PRIVATE_KEY_IN_TEXT) ?? [];
}

/** How a message says an age private key it must not quote: by its shape. */
export const PRIVATE_KEY_SHOWN = '<an age private key (AGE-SECRET-KEY-…), not shown>';

/**
 * `text` as a message may quote it (an argument, a setting's value, a YAML excerpt): each age private key said by its
 * shape (PRIVATE_KEY_SHOWN), each URL's credentials written `***` (hideUrlCredentials).
 */
export function hideSecrets(text: string): string {
  return hideUrlCredentials(text.replace(PRIVATE_KEY_IN_TEXT, PRIVATE_KEY_SHOWN));
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

/**
 * A string as the release's .env writes it inside a map or list taken whole as JSON (core/dotenv.ts, asString),
 * between its quotes: as `sops decrypt --output-type json` writes it (Go's encoding/json: JSON.stringify's escapes,
 * and `<`, `>`, `&`, U+2028 and U+2029 as \u escapes, \u003c, \u003e, \u0026, \u2028, \u2029), but for `'`, a
 * backtick, a backslash and `$`, also \u escapes (\u0027, \u0060, \u005c, \u0024), and NEL (\u0085, where
 * django-environ's line-by-line reader, Python's splitlines, ends a line), which every .env reader then carries
 * single-quoted as written: the same string to every JSON parser. Pure.
 */
export function dotenvJsonEscaped(text: string): string {
  return JSON.stringify(text)
    .slice(1, -1)
    .replace(/\\[\s\S]|['`$<>&\x85\u2028\u2029]/g, (m) => (m === '\\\\' ? '\\u005c' : m.length === 1 ? `\\u${m.charCodeAt(0).toString(16).padStart(4, '0')}` : m));
}

/**
 * A string as JSON writes it inside quotes: JavaScript's escapes, Python's json.dumps (ensure_ascii) ones, and the
 * .env's (dotenvJsonEscaped: an app printing a map variable's text as it got it).
 */
function jsonEscaped(text: string): string[] {
  const js = JSON.stringify(text).slice(1, -1);
  const ascii = js.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return [js, ascii, dotenvJsonEscaped(text)];
}

/** Python's str.isprintable() is false for these (CPython Tools/unicode/makeunicodedata.py: categories Cc Cf Cs Co Cn Zl Zp Zs, but the space). */
const PY_UNPRINTABLE = /^[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]$/u;

/** The quote Python's repr() puts around a str or bytes (CPython unicode_repr, PyBytes_Repr): ' unless the text holds ' and no ". */
const pyQuote = (text: string): string => (text.includes("'") && !text.includes('"') ? '"' : "'");

const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0');

/**
 * A string as Python's repr() writes it between its quotes (CPython Objects/unicodeobject.c, unicode_repr): the
 * quote chosen (pyQuote) and "\\" escaped with a backslash, tab, newline and carriage return as \t \n \r, other
 * ASCII controls and DEL as \xNN, non-ASCII characters as themselves when printable, else \xNN, \uNNNN or
 * \UNNNNNNNN (lowercase hex). What `print(settings)`, `%r`, f"{x!r}", a dict or list printed, a traceback's
 * locals show (the tester's leak: 'Pa"ss\\word-long-secret-2026').
 */
export function pythonRepr(text: string): string {
  const quote = pyQuote(text);
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (ch === quote || ch === '\\') out += `\\${ch}`;
    else if (ch === '\t') out += '\\t';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${hex(cp, 2)}`;
    else if (cp < 0x7f || !PY_UNPRINTABLE.test(ch)) out += ch;
    else if (cp <= 0xff) out += `\\x${hex(cp, 2)}`;
    else if (cp <= 0xffff) out += `\\u${hex(cp, 4)}`;
    else out += `\\U${hex(cp, 8)}`;
  }
  return out;
}

/**
 * The text's UTF-8 bytes as Python's repr() of bytes writes them between its quotes (CPython
 * Objects/bytesobject.c, PyBytes_Repr): as pythonRepr for ASCII, every other byte as \xNN. What printing
 * `value.encode()` or a bytes setting shows.
 */
export function pythonBytesRepr(text: string): string {
  return bytesRepr(Buffer.from(text, 'utf8'), pyQuote(text));
}

/** Bytes as Python's repr() of bytes writes them between its quotes (`quote`, ' by default: pythonBytesRepr). */
function bytesRepr(bytes: Buffer, quote = bytes.includes(0x27) && !bytes.includes(0x22) ? '"' : "'"): string {
  let out = '';
  for (const b of bytes) {
    const ch = String.fromCharCode(b);
    if (ch === quote || ch === '\\') out += `\\${ch}`;
    else if (ch === '\t') out += '\\t';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (b < 0x20 || b >= 0x7f) out += `\\x${hex(b, 2)}`;
    else out += ch;
  }
  return out;
}

/**
 * A string as Node's util.inspect writes it between its quotes (lib/internal/util/inspect.js, strEscape): what
 * console.log of an object, a thrown error's properties or a REPL show. Single quotes, unless the text holds one:
 * then double quotes when it holds none, else backticks when it holds no backtick and no "${", else single
 * quotes with \' inside. Backslash doubled, \b \t \n \f \r, other C0 controls, DEL and C1 controls as \xNN
 * (uppercase hex).
 */
export function nodeInspect(text: string): string {
  const single = !text.includes("'") || (text.includes('"') && (text.includes('`') || text.includes('${')));
  const named: Record<string, string> = { '\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r' };
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === "'" && single) out += "\\'";
    else if (named[ch]) out += named[ch];
    else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) out += `\\x${hex(cp, 2).toUpperCase()}`;
    else out += ch;
  }
  return out;
}

/**
 * A string as Python's ascii() writes it between its quotes (CPython Objects/object.c PyObject_ASCII: repr(), then
 * every non-ASCII character as \xNN, \uNNNN or \UNNNNNNNN, lowercase hex): what `%a`, f"{x!a}" and repr() under
 * an ASCII-only console show ("p\xe9ss" for "péss").
 */
export function pythonAscii(text: string): string {
  return pythonRepr(text).replace(/[^\x00-\x7f]/gu, (ch) => {
    const cp = ch.codePointAt(0)!;
    return cp <= 0xff ? `\\x${hex(cp, 2)}` : cp <= 0xffff ? `\\u${hex(cp, 4)}` : `\\U${hex(cp, 8)}`;
  });
}

/**
 * pydantic's quote of an input in a validation error (pydantic v2, pydantic-core's ValidationError display:
 * `input_value='abc...xyz'`): the input's Python repr, quotes and all, and when that is longer than 50 bytes of
 * UTF-8 its first 25 bytes and last 24 bytes (each cut back to a whole character) around "..."; checked against
 * pydantic 2.13 (pydantic-core 2.46). Only the cut form: the whole one is the repr, masked already. Undefined when
 * not cut.
 */
export function pydanticInputValue(text: string): string | undefined {
  const q = pyQuote(text);
  const chars = [...`${q}${pythonRepr(text)}${q}`];
  const bytes = (c: string) => Buffer.byteLength(c, 'utf8');
  if (chars.reduce((n, c) => n + bytes(c), 0) <= 50) return undefined;
  let head = '';
  for (let i = 0, n = 0; i < chars.length && n + bytes(chars[i]!) <= 25; n += bytes(chars[i]!), i++) head += chars[i];
  let tail = '';
  for (let i = chars.length - 1, n = 0; i >= 0 && n + bytes(chars[i]!) <= 24; n += bytes(chars[i]!), i--) tail = chars[i] + tail;
  return `${head}...${tail}`;
}

/**
 * A string as HTML escapers write it (an error page quoting a setting, a template rendering it): & < > always, the
 * quotes as each writes them. Python's html.escape (Django's escape): &quot; &#x27;; with quote=False (and
 * xml.sax.saxutils.escape): quotes as they are; MarkupSafe (Jinja2, Flask): &#34; &#39;; escape-html (Express,
 * the npm package): &quot; &#39;. None when the text holds none of &<>"'.
 */
export function htmlEscapedForms(text: string): string[] {
  if (!/[&<>"']/.test(text)) return [];
  const base = text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const quoted = (dq: string, sq: string) => base.replace(/"/g, dq).replace(/'/g, sq);
  return [...new Set([quoted('&quot;', '&#x27;'), base, quoted('&#34;', '&#39;'), quoted('&quot;', '&#39;')])].filter((f) => f !== text);
}

/**
 * The text with each run of white space (space, tab, CR, LF, FF, VT) one space, trimmed: as a quote of an answer
 * on one line shows it (core/steps/sh/probe.sh probe_body, core/steps/status.ts excerpt), where a passphrase's
 * double spaces or tabs are no longer what the secret holds.
 */
export function collapsedSpace(text: string): string {
  return text.replace(/[ \t\r\n\f\v]+/g, ' ').trim();
}

/**
 * A word as shells and programs quote it for a shell, between the outer quotes (which stay unmasked): the forms a
 * command line printed before it runs, a trace or a listing of variables shows of a secret. Each, checked against
 * bash 5.2 and Python 3.11:
 * - POSIX single quotes, each ' written '\'': bash's xtrace (`set -x`), `${v@Q}` and `set`'s listing (bash
 *   lib/sh/shquote.c sh_single_quote);
 * - Python's shlex.quote, each ' written '"'"' (Lib/shlex.py; the text is quoted whole when it holds a ');
 * - a backslash before each character a shell reads specially, as bash's `printf %q` writes it (sh_backslash_quote:
 *   space and !"$&'()*,;<>?[\]^`{|}; a ~ or # that starts the word too, whose rest is still this form);
 * - double quotes with a backslash before " \ $ and ` (the characters a backslash escapes there: POSIX Shell Command
 *   Language 2.2.3), as `declare -p` and `export -p` list a variable (sh_double_quote).
 * For text holding a control character bash writes ANSI-C quotes instead, and may for other text beyond printable
 * ASCII (ansiCQuotedForms); a form may equal the text itself.
 */
function shellQuotedForms(text: string): string[] {
  // beyond printable ASCII, bash may quote it $'...' (a C1 control, a line separator; any non-ASCII byte under the C locale)
  const ansiC = /[^\x20-\x7e]/.test(text) ? ansiCQuotedForms(text) : [];
  if (/[\u0000-\u001f\u007f]/.test(text)) return ansiC;
  return [
    ...ansiC,
    text.replace(/'/g, "'\\''"),
    text.replace(/'/g, `'"'"'`),
    text.replace(/[ !"$&'()*,;<>?[\\\]^`{|}]/g, '\\$&'),
    text.replace(/["\\$`]/g, '\\$&'),
  ];
}

/** bash's one-letter escapes in $'...' (lib/sh/strtrans.c, ansic_quote); ESC is \E. */
const ANSI_C_LETTER: Record<string, string> = { '\x07': 'a', '\b': 'b', '\t': 't', '\n': 'n', '\v': 'v', '\f': 'f', '\r': 'r', '\x1b': 'E', "'": "'", '\\': '\\' };

/** What glibc's iswprint takes as not printable (bash octal-escapes it in $'...' under a UTF-8 locale): controls, line and paragraph separators, unassigned. */
const C_UNPRINTABLE = /^[\p{Cc}\p{Zl}\p{Zp}\p{Cn}]$/u;

/**
 * A word as bash quotes it when it holds a control character, between `$'` and `'`: `${v@Q}`, `printf %q`,
 * `declare -p`/`export -p` and xtrace (`set -x`) write `$'pass\tword'` (lib/sh/strtrans.c, ansic_quote): \a \b \t \n
 * \v \f \r, ESC as \E, ' and \ behind a backslash, any other byte that is not printable as three octal digits;
 * under a UTF-8 locale (the hosts' C.UTF-8) a printable non-ASCII character as itself, under the C locale each
 * of its bytes in octal. Checked against bash 5.2.
 */
function ansiCQuotedForms(text: string): string[] {
  const octal = (ch: string) => [...Buffer.from(ch, 'utf8')].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
  const quoted = (asciiOnly: boolean) =>
    [...text].map((ch) => ANSI_C_LETTER[ch] !== undefined ? `\\${ANSI_C_LETTER[ch]}` : ch < '\x7f' && ch >= ' ' ? ch : asciiOnly || C_UNPRINTABLE.test(ch) ? octal(ch) : ch).join('');
  return [...new Set([quoted(false), quoted(true)])];
}

/**
 * A string as the quote-doubling quoters write it, between their quotes: SQL string literals (PostgreSQL's
 * quote_literal and its statement logs, SQLite's quote(): each ' written ''; PostgreSQL's E'...' form, for a text
 * holding a backslash, each \ written \\ too), YAML single-quoted scalars (PyYAML's and go-yaml's, so sops's,
 * dumps of a text holding ": " or starting with a sign: ' written ''; YAML 1.2 section 7.3.2), and CSV fields and
 * SQL identifiers (Python's csv module, PostgreSQL's quote_ident: each " written ""; RFC 4180). None when the text
 * holds no quote nor backslash.
 */
function doubledQuoteForms(text: string): string[] {
  const forms: string[] = [];
  if (text.includes("'")) forms.push(text.replace(/'/g, "''"));
  if (text.includes('\\')) forms.push(text.replace(/\\/g, '\\\\').replace(/'/g, "''"));
  if (text.includes('"')) forms.push(text.replace(/"/g, '""'));
  return forms;
}

/** The one-letter escapes of YAML's double-quoted style (YAML 1.2 section 5.7) the YAML writers use: PyYAML's ESCAPE_REPLACEMENTS, libyaml's and go-yaml's emitter. */
const YAML_ESCAPE: Record<string, string> = {
  '\0': '0', '\x07': 'a', '\b': 'b', '\t': 't', '\n': 'n', '\v': 'v', '\f': 'f', '\r': 'r', '\x1b': 'e', '"': '"', '\\': '\\',
  '\x85': 'N', '\xa0': '_', '\u2028': 'L', '\u2029': 'P',
};

/**
 * A string holding a control or non-ASCII character as YAML writers print it double-quoted, between the quotes
 * (YAML 1.2 section 7.3.1; what they choose for such a text): each of `"`, `\`, NEL, LS, PS, BOM and every character
 * the writer takes as unprintable written as its one-letter escape (\0 \a \b \t \n \v \f \r \e \" \\ \N \_ \L
 * \P: YAML_ESCAPE), else as \xXX, \uXXXX or \UXXXXXXXX (uppercase hex). Three writers, three ideas of printable:
 * PyYAML's yaml.dump by default (printable ASCII only: "p\xE9ss", NBSP as \_), with allow_unicode (also U+00A0 to
 * U+FFFD but for surrogates: an emoji still \U0001F511), and go-yaml (gopkg.in/yaml.v3: `sops decrypt`; any printable
 * character as itself, libyaml's rule). Checked against PyYAML 6 and sops 3. None for printable ASCII (the JSON form then).
 */
export function yamlDoubleQuotedForms(text: string): string[] {
  if (!/[^\x20-\x7e]/.test(text)) return [];
  const bmp = (cp: number) => (cp >= 0xa0 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd);
  const writers: ((cp: number) => boolean)[] = [() => false, bmp, (cp) => bmp(cp) || cp >= 0x10000];
  const escaped = (printable: (cp: number) => boolean) =>
    [...text]
      .map((ch) => {
        const cp = ch.codePointAt(0)!;
        const always = '"\\\x85\u2028\u2029\ufeff'.includes(ch);
        if (!always && ((cp >= 0x20 && cp <= 0x7e) || printable(cp))) return ch;
        if (YAML_ESCAPE[ch] !== undefined) return `\\${YAML_ESCAPE[ch]}`;
        const h = cp.toString(16).toUpperCase();
        return cp <= 0xff ? `\\x${h.padStart(2, '0')}` : cp <= 0xffff ? `\\u${h.padStart(4, '0')}` : `\\U${h.padStart(8, '0')}`;
      })
      .join('');
  return [...new Set(writers.map(escaped))];
}

/**
 * A string as programs print it quoted, between the quotes (which stay unmasked): JSON (JavaScript's
 * JSON.stringify, Python's json.dumps with and without ensure_ascii), Python's repr() and ascii() of str and repr()
 * of its bytes, Node's util.inspect, quoted for a shell (shellQuotedForms: bash's xtrace and printf %q, Python's
 * shlex.quote, declare -p); HTML-escaped (htmlEscapedForms); pydantic's cut quote of a long
 * input, quotes included (pydanticInputValue); a quote doubled, as SQL, YAML and CSV write it (doubledQuoteForms);
 * YAML's double-quoted escapes (yamlDoubleQuotedForms); on one line (collapsedSpace); and as the release's .env writes
 * it (core/dotenv-forms.ts, dotenvWrittenForms: its `\"`, `\\`, `\'`, `\n`, `\r`, `\$` escapes, a tab or other control
 * character left raw beside them). Each may equal the text itself (then it adds nothing).
 */
export function printedForms(text: string): string[] {
  const pydantic = pydanticInputValue(text);
  return [
    ...jsonEscaped(text),
    pythonRepr(text),
    pythonAscii(text),
    pythonBytesRepr(text),
    ...(pydantic ? [pydantic] : []),
    ...htmlEscapedForms(text),
    collapsedSpace(text),
    nodeInspect(text),
    ...shellQuotedForms(text),
    ...doubledQuoteForms(text),
    ...yamlDoubleQuotedForms(text),
    ...dotenvWrittenForms(text),
  ];
}

/**
 * Everything to mask for one secret value: the value, the credentials of a URL (urlCredentials), the
 * strings of a JSON document (recursively: a URL inside JSON gives its password too), and each of them as
 * programs print it quoted (printedForms: JSON, Python's repr, Node's util.inspect, shell quoting, YAML; not with
 * `escapes: false`); for a part that is not weak (isWeakPart), also its base64 (base64Forms, wrapped too), hex
 * (hexForms), its lower- and upper-case copies (caseFolded), and for a hex key the bytes it stands for (hexKeyForms);
 * not its byte dumps (byteDumps). Duplicates and the value itself may be returned; callers drop short ones.
 */
export function secretParts(value: string, options: { escapes?: boolean } = {}): string[] {
  const parts = structuralParts(value);
  // A part too short to mask is masked in no form either (README "Weak values"): its printed forms may be longer
  // (a 2-character value's repr() of bytes, \xc3\xa91), yet they show it all the same.
  if (options.escapes !== false)
    for (const p of [...parts]) {
      if (p.trim().length >= MIN_MASKED_LENGTH) for (const e of printedForms(p)) parts.add(e);
      if (!isWeakPart(p.trim())) for (const e of [...base64Forms(p), ...hexForms(p), ...caseFolded(p), ...hexKeyForms(p.trim())]) parts.add(e);
    }
  return [...parts];
}

/** The value, the credentials of its URLs and the strings of its JSON, recursively (secretParts before their forms). */
function structuralParts(value: string): Set<string> {
  const parts = new Set<string>([value]);
  const visit = (v: string, depth: number): void => {
    for (const p of [...urlCredentials(v), ...jsonStrings(v)]) {
      if (parts.has(p)) continue;
      parts.add(p);
      if (depth < 4) visit(p, depth + 1);
    }
  };
  visit(value, 0);
  return parts;
}

/**
 * The longest part (characters; bytes for a dump) whose URL-encodings (core/report.ts exactForms) and byte dumps
 * (byteDumps) the masks that see exact strings only are given (GitHub's add-mask, the hosts' masks file). No URL
 * holding a longer one is served or sent (Node's HTTP parser refuses a header section over 16 KiB, its
 * --max-http-header-size; nginx a request line over 8 KiB, large_client_header_buffers; Apache one over 8190 bytes,
 * LimitRequestLine), and a dump of a longer one is a line of 48 KiB or more (journald splits lines at 48 KiB, its
 * LineMax; Docker's json-file logs at 16 KiB). Past it, twelve URL-encodings of every printed form of a long value
 * (100 KB of printable text: 46 MB, 460 times its size) and seven dumps of it (20 times its size) would fill the
 * hosts' masks file and GitHub's add-mask; the runner's Masker still reads any URL-encoding and any dump of any length
 * (Masker.redact, Masker.dumpsRead).
 */
export const MAX_ENCODED_PART = 16 * 1024;

/**
 * The byte dumps of a secret value, for masks that see exact strings only (GitHub's add-mask, the hosts' mask_text:
 * core/report.ts exactFormsOf): for each part secretParts takes whole (the value, a URL's credentials, the strings of
 * a JSON value) that is not weak, its UTF-8 bytes, and for a hex key the bytes it stands for, as bytesDumps writes
 * them; of bytes longer than MAX_ENCODED_PART, only what Node shows of them (its first 50 bytes: bytesDumps). The
 * runner's Masker registers none of them: it reads each dump in a text back to hex (Masker.dumpsRead).
 */
export function byteDumps(value: string): string[] {
  const out = new Set<string>();
  const add = (bytes: Buffer) => {
    for (const d of bytes.length <= MAX_ENCODED_PART ? bytesDumps(bytes) : [nodeBufferDump(bytes)]) out.add(d);
  };
  for (const p of structuralParts(value)) {
    const t = p.trim();
    if (isWeakPart(t)) continue;
    add(Buffer.from(p, 'utf8'));
    if (isHexKey(t)) add(Buffer.from(t, 'hex'));
  }
  return [...out];
}

/**
 * The base64 text (standard and URL-safe alphabets) of the text's UTF-8 bytes wherever it stands in what is encoded,
 * at each of the three alignments to base64's 3-byte groups, only the characters its bytes alone decide: what a log
 * shows of a password inside `Authorization: Basic base64(user:password)` (curl -v, an HTTP client's debug log),
 * a docker or npm `auth` field, or a JWT's payload (as GitHub's runner masks base64 of a secret); and the lines of
 * the text encoded from its start and wrapped (wrappedBase64Lines). Pure.
 */
export function base64Forms(text: string): string[] {
  return bytesBase64Forms(Buffer.from(text, 'utf8'));
}

/** base64Forms of bytes. */
function bytesBase64Forms(bytes: Buffer): string[] {
  const forms = new Set<string>();
  for (const shift of [0, 1, 2]) {
    const b64 = Buffer.concat([Buffer.alloc(shift), bytes]).toString('base64');
    // character i holds bits [6i, 6i + 6) of the bytes encoded: kept when they all are the text's own
    const first = Math.ceil((8 * shift) / 6);
    const end = Math.floor((8 * (shift + bytes.length)) / 6);
    const form = b64.slice(first, end);
    if (form.length >= SHORT_SECRET_LENGTH) forms.add(form).add(form.replace(/\+/g, '-').replace(/\//g, '_'));
    if (shift === 0) for (const line of wrappedBase64Lines(form)) forms.add(line);
  }
  return [...forms];
}

/**
 * The lines of `b64` (a text's base64 from its start, the characters its bytes alone decide) as encoders that wrap
 * write it: 76 characters a line (GNU `base64`, Python's base64.encodebytes, MIME) and 64 (`openssl base64`, PEM);
 * each line a log shows of a long secret piped to one, none shorter than SHORT_SECRET_LENGTH (the last line's
 * rest). The secret encoded from elsewhere than its start is not covered: its lines' edges fall anywhere.
 */
function wrappedBase64Lines(b64: string): string[] {
  const lines: string[] = [];
  for (const width of [76, 64]) {
    if (b64.length <= width) continue;
    for (let i = 0; i < b64.length; i += width) {
      const line = b64.slice(i, i + width);
      if (line.length >= SHORT_SECRET_LENGTH) lines.push(line);
    }
  }
  return lines;
}

/**
 * The text's UTF-8 bytes as continuous hex, lowercase and uppercase: Python's bytes.hex() and binascii.hexlify,
 * `xxd -p` (a line of 30 bytes: a secret of 30 bytes or fewer printed from its start), `od`/`hexdump` formats without
 * separators, Node's Buffer.toString('hex'), Go's %x and %X. A hex dump starting anywhere is cut at whole bytes, so
 * a secret inside it shows as this very text; a dump with separators is read back to this text (bytesDumps). Past
 * 50 bytes, also the hex of the first 50 alone (what Node shows of a Buffer: bytesDumps). Pure.
 */
export function hexForms(text: string): string[] {
  const hexed = Buffer.from(text, 'utf8').toString('hex');
  const forms = [hexed, hexed.toUpperCase()];
  if (hexed.length > 2 * NODE_INSPECT_MAX_BYTES) forms.push(hexed.slice(0, 2 * NODE_INSPECT_MAX_BYTES));
  return forms;
}

/** Node's util.inspect shows this many bytes of a Buffer, then `... N more bytes` (buffer.INSPECT_MAX_BYTES). */
const NODE_INSPECT_MAX_BYTES = 50;

/**
 * Bytes as programs print them a byte at a time: a hex pair a byte, separated by a space, ":" or "-", lowercase as
 * Node, Python and Go write them (Node's `<Buffer 5a 71 …>`, of the first 50 bytes alone past that; Go's `% x`;
 * Python's bytes.hex(":"), bytes.hex("-")), and `5A:71:…` (openssl's and fingerprints' style); and in decimal
 * between commas (Node's JSON.stringify of a Buffer, `{"type":"Buffer","data":[90,113,…]}`, as JSON loggers write
 * one; Python's list(b), `[90, 113, …]`). What the runner's Masker reads back to hex in any text (DUMP_RUN); listed
 * for the masks that see exact strings only (byteDumps). Pure.
 */
function bytesDumps(bytes: Buffer): string[] {
  const pairs = bytes.toString('hex').match(/../g) ?? [];
  const numbers = [...bytes].map(String);
  const forms = [pairs.join(' '), pairs.join(':'), pairs.join('-'), pairs.join(':').toUpperCase(), numbers.join(','), numbers.join(', ')];
  if (bytes.length > NODE_INSPECT_MAX_BYTES) forms.push(nodeBufferDump(bytes));
  return forms;
}

/** What Node's util.inspect shows of a Buffer's bytes: the hex pairs of its first 50 (NODE_INSPECT_MAX_BYTES), spaced. Pure. */
function nodeBufferDump(bytes: Buffer): string {
  return (bytes.subarray(0, NODE_INSPECT_MAX_BYTES).toString('hex').match(/../g) ?? []).join(' ');
}

/**
 * A run of four or more bytes printed a byte at a time in `text` (bytesDumps's shapes, either hex case, one separator
 * throughout): hex pairs (group 2 the separator) or decimal numbers between commas (group 3 the separator). Tried
 * where a hex digit or number starts, each run once: linear.
 */
export const DUMP_RUN = /(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{2}([ :-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){2,}|[0-9]{1,3}(, ?)[0-9]{1,3}(?:\2[0-9]{1,3}){2,})(?![0-9A-Za-z])/g;

/**
 * A line of a hex dump as `xxd` (its default 2-byte groups, -g1, -u, -c), `hexdump -C` and `od -t x1` (with -A or
 * -An, with z's column) write it: an optional offset (hex, ":" after it or not), groups of hex digits of one even
 * width (the last one shorter) apart by one or two spaces, and an optional column showing each byte as one character
 * (`.` for one not printable), after two spaces or more, between `|` or `>` and `<` or not. Returns the line's bytes as
 * continuous hex (`hex`), where each byte's two digits stand in the line (`at`: [start, end) of each byte's pair), and
 * where the column starts (`column`: its character i shows byte i; undefined without one), or undefined for any
 * other line. One byte at least (`od -w1`); a last group after two spaces, as long as the bytes before it, is their
 * column (`xxd -c 2`'s "f3"). Not `hexdump`'s default nor `od -x` (2-byte words, their bytes swapped). Linear.
 */
export function dumpLine(line: string): { hex: string; at: number[]; column: number | undefined } | undefined {
  const offset = /^(?: *[0-9A-Fa-f]{4,16}(?::|(?= )))?/.exec(line)!;
  const group = / {1,2}([0-9A-Fa-f]{2,8})(?= |$)/y;
  let p = offset[0].length;
  let width = 0;
  let hex = '';
  const at: number[] = [];
  let before = p; // where the last group's spaces start
  for (let m: RegExpExecArray | null; (group.lastIndex = p), (m = group.exec(line)); p = group.lastIndex) {
    const g = m[1]!;
    // one width throughout (the first group's), a shorter last group only; an odd count is no bytes
    if (g.length % 2 || (width && g.length > width) || (width && at.length && hex.length % width)) break;
    width ||= g.length;
    const start = group.lastIndex - g.length;
    for (let k = 0; k < g.length; k += 2) at.push(start + k);
    hex += g;
    before = p;
  }
  // a last group after two spaces as long as the bytes before it is their column (`xxd -c 2`'s "f3")
  const last = line.slice(before, p);
  if (p === line.length && /^ {2}/.test(last) && last.length - 2 === at.length - (last.length - 2) / 2) {
    at.length -= (last.length - 2) / 2;
    hex = hex.slice(0, 2 * at.length);
    p = before;
  }
  if (at.length < 1) return undefined;
  const rest = line.slice(p);
  if (!rest.trim()) return { hex, at, column: undefined };
  const framed = /^ {2,}([|>])([^]*)([|<])$/.exec(rest);
  if (framed && framed[2]!.length === at.length) return { hex, at, column: p + rest.indexOf(framed[1]!) + 1 };
  const plain = /^ {2,}/.exec(rest);
  if (plain && rest.length - plain[0].length === at.length) return { hex, at, column: p + plain[0].length };
  return undefined;
}

/** Whether `text` is a hex key: an even number of hex digits, 16 at least (`openssl rand -hex 32`, secrets.token_hex). */
function isHexKey(text: string): boolean {
  return text.length >= 16 && text.length % 2 === 0 && /^[0-9A-Fa-f]+$/.test(text);
}

/**
 * A hex key (isHexKey) as an app shows the bytes it decodes it to: Python's repr() of `bytes.fromhex(key)`
 * (`b'\x9a~\x99*…'`) and their base64 (a key converted for another tool); their hex is the key itself, a byte at a
 * time in bytesDumps (Node's `<Buffer 9a 7e …>` of `Buffer.from(key, 'hex')`). [] for any other text. Pure.
 */
export function hexKeyForms(text: string): string[] {
  if (!isHexKey(text)) return [];
  const bytes = Buffer.from(text, 'hex');
  return [bytesRepr(bytes), ...bytesBase64Forms(bytes)];
}

/**
 * The text folded to lower and to upper case, when that changes it: PostgreSQL folds an unquoted identifier to lower
 * case (a secret used as a role or database name, echoed in its errors), HTTP tooling and loggers upper-case header
 * values and environment dumps, and case-insensitive tokens (hex keys, bech32) are printed in either case. Only for
 * parts that are not weak (secretParts): a common word's case forms are everywhere.
 */
export function caseFolded(text: string): string[] {
  return [text.toLowerCase(), text.toUpperCase()].filter((f) => f !== text);
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
