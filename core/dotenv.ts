// The release's .env, rendered from the environment's `env` map (plain values and references to secrets) for
// the parsers declared in `dotenv.readers`: each value gets the first quoting that every reader of that variable
// decodes to exactly that value, and that every other declared reader (one limited by `only` to other names; it
// still parses the whole file) reads as one statement of that variable, so no value can end early for one parser
// and go on as another variable (core/dotenv-readers.ts models them from their sources). When no quoting does,
// the value is refused by name, never printed, before any host is touched.
//
// Beside it, the pipeline's own commands (build, migrate, hooks, initdata) get the same values from an
// unambiguous file, `environ`: NUL-separated NAME=VALUE records (like /proc/<pid>/environ), loaded by a bash
// loop that parses nothing (environLoader).
import { isDeepStrictEqual } from 'node:util';
import type { Environment } from './config/environment.ts';
import type { EnvironmentConfig } from './config/environment-schema.ts';
import { InputError, OpsError } from './errors.ts';
import { FORMS, type Form, writeForm } from './dotenv-forms.ts';
import { keepsStatement, needsQuotes, PY_LINE_END, pythonInterpolates, readsAs, type Reader } from './dotenv-readers.ts';
import { quote } from './shell.ts';
import { SopsTime, jsonScalarText, valueText } from './secrets/goyaml.ts';
import { dotenvJsonEscaped } from './secrets/parts.ts';
import { binaryRefused, binaryStoreNote, holdsBinary, isBinaryStoreData, mergedOnlyPath, quotePart, showPath, splitKeyPath } from './secrets/tree.ts';
import { closest } from './config/schema-object.ts';

export { DEFAULT_READERS, READERS, type Reader } from './dotenv-readers.ts';

/**
 * Whether a decrypted value (PlainValue) is a map: not a list, nor a binary value (a Uint8Array, whose byte indexes
 * are no keys: sops finds no `cert.0` in a `!!binary` cert), nor a timestamp (SopsTime).
 */
function isMapValue(n: unknown): n is Record<string, unknown> {
  return n !== null && typeof n === 'object' && !Array.isArray(n) && !(n instanceof Uint8Array) && !(n instanceof SopsTime);
}

/**
 * The node at a dotted key path ("a.b", or "passwords.admin@example.org": a key holding dots is read as written,
 * see splitKeyPath) of a decrypted secrets tree; undefined when any step is missing (or is no map: isMapValue).
 * `env`: the environment whose environment.yml holds the path (a `{ secret: }`), named in a refusal's hint.
 * @throws InputError for a path splitKeyPath refuses.
 */
export function lookup(tree: unknown, path: string, env?: string): unknown {
  const child = (n: unknown, k: string): unknown => (isMapValue(n) && Object.hasOwn(n, k) ? n[k] : undefined);
  const keysAt = (keys: string[]) => {
    const n = keys.reduce(child, tree);
    return isMapValue(n) ? Object.keys(n) : [];
  };
  return splitKeyPath(path, keysAt, env === undefined ? {} : { reference: { env } }).reduce(child, tree);
}

/** The key paths of a decrypted secrets tree, as `{ secret: … }` names them (a mapping's and its members', dotted). */
function secretPaths(tree: unknown, prefix = ''): string[] {
  if (!isMapValue(tree)) return [];
  return Object.entries(tree).flatMap(([k, v]) => [`${prefix}${k}`, ...secretPaths(v, `${prefix}${k}.`)]);
}

/**
 * A secret as the string the .env carries: a scalar as `sops exec-env` gives it (valueText: an int, a bigint here,
 * as its digits; a float, a number here, as sops writes it, `2.0`, `1.5E+10`; a timestamp in whole seconds),
 * mappings and lists as compact JSON, as `sops decrypt --output-type json` writes them (jsonText). Pure.
 */
export function asString(value: unknown): string {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean' || value instanceof SopsTime) return valueText(value);
  return jsonText(value) ?? 'null';
}

/**
 * A decrypted value (PlainValue) as compact JSON, as `sops decrypt --output-type json` writes it but for white space
 * (its stores/json/store.go writes maps and lists itself and hands every scalar to Go's encoding/json): numbers and
 * timestamps as jsonScalarText (an int's digits at any depth, which JSON.stringify would throw on; a float's
 * shortest digits, `2` for 2.0, `-0`; a timestamp with its fraction of a second), strings as jsonString, keys too;
 * undefined where it gives none.
 */
function jsonText(value: unknown): string | undefined {
  if (typeof value === 'number' || typeof value === 'bigint' || value instanceof SopsTime) return jsonScalarText(value);
  if (typeof value === 'string') return jsonString(value);
  if (Array.isArray(value)) return `[${value.map((v) => jsonText(v) ?? 'null').join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const members = Object.keys(value).flatMap((k) => {
      const text = jsonText((value as Record<string, unknown>)[k]);
      return text === undefined ? [] : [`${jsonString(k)}:${text}`];
    });
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * A JSON string as sops's JSON output writes it (Go's encoding/json: `<`, `>`, `&`, U+2028 and U+2029 as \u escapes),
 * but with `'`, a backtick, a backslash, `$` and NEL of the text written as \u escapes too (dotenvJsonEscaped):
 * the same string to every JSON parser, and a text that every reader carries in single quotes as written
 * (python-dotenv decodes `\\` and `\'` there, and nothing else; no `$` is left for python-dotenv to interpolate as
 * `${...}` in any quoting, nor for dotenv-expand to expand). Raw, a map whose members held both quote kinds and a
 * `#` (the TOOLS_PASSWORDS of one user's `it's` and another's `p#ss`), a backslash beside a quote, or a member
 * holding `${` (python-dotenv) or `$HOME` (dotenv-expand, beside python-dotenv, which has no `\$`) was refused. Pure.
 */
function jsonString(text: string): string {
  return `"${dotenvJsonEscaped(text)}"`;
}

/** Why a value cannot be written for the declared readers (never the value itself). */
export interface Refusal {
  /**
   * The readers that would corrupt it (each alone, or as a set that shares no form); [] when no reader could carry it
   * (a NUL, a lone surrogate): then no choice of readers helps, and the refusal offers only to change the value.
   */
  readers: Reader[];
  reason: string;
}

/** Lone UTF-16 surrogates: not Unicode, so not writable as UTF-8. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The forms every reader of `readers` reads back exactly and every reader of `others` reads as one whole statement. */
function formsFor(value: string, readers: readonly Reader[], others: readonly Reader[] = []): Form[] {
  return FORMS.filter((f) => {
    const text = writeForm(value, f);
    return readers.every((r) => readsAs(r, text, value)) && others.every((r) => keepsStatement(r, text));
  });
}

/** Why no quoting keeps `value` one statement for `reader`, which parses its line without having to read it exactly. */
function statementReason(reader: Reader, value: string): string {
  const why =
    reader === 'shell'
      ? 'bash runs what it expands, and the value holds a single quote together with $, `, " or \\'
      : reader === 'django-environ'
        ? djangoReason(value)
        : value.endsWith('\\')
        ? 'it ends with a backslash and needs quotes, which it reads past the closing quote'
        : reader === 'python-dotenv'
          ? 'it holds a character python-dotenv cannot read in any quoting'
          : `it ${holdsQuotesWith(reader, value)}${reader === 'node-env-file' || reader === 'vite' ? ', or a carriage return' : ''}`;
  return `${reader} parses every line of the .env (\`only\` limits which values it must read exactly, not the lines it reads), and no quoting keeps this one a single statement for it: ${why}`;
}

/**
 * Why no quoting carries `value` for a Node parser (`reader`) that decodes no escapes: what rules out each quote
 * kind (a `'`, a backtick, and a `"` or the backslash the double quotes would decode: any for Node's own parser, one
 * before n or r for dotenv's) together with what needs quotes (needsQuotes: a line break, a #, a quote as its first
 * character...), as the value holds them, not as such values may; never the value.
 */
function holdsQuotesWith(reader: Reader, value: string): string {
  const why = needsQuotes(value);
  const list = why.length > 1 ? `${why.slice(0, -1).join(', ')} and ${why[why.length - 1]}` : (why[0] ?? 'what needs quotes');
  const nodeOwn = reader === 'node-env-file' || reader === 'vite';
  const double = value.includes('"') ? '"' : nodeOwn ? 'a backslash' : 'a backslash before n or r';
  return `holds ', ${double} and \` together with ${list}`;
}

/**
 * Why django-environ cannot carry `value` (core/dotenv-readers.ts: its parser reads one line at a time, and `env()`
 * takes a leading `$` for another variable's name), in words that do not give the value away.
 */
function djangoReason(value: string): string {
  if (PY_LINE_END.test(value))
    return 'django-environ reads the .env one line at a time (Python\'s splitlines: a line break, \\v, \\f, \\x1c-\\x1e, NEL, U+2028 and U+2029 each end a line) and decodes no \\n, so the value, which holds one, would be cut there; store it on one line (base64), or in a file the app reads by its path';
  if (/^".*#.*"$/s.test(value))
    return 'django-environ takes the double quotes off a value starting and ending with one (inside single quotes too), and cuts at a # outside single quotes where the app reads with read_env(parse_comments=True), so the value, which holds one, cannot reach it whole';
  if (value.startsWith('$')) return 'django-environ takes a value starting with $ for the name of another variable (its proxy: `env()` returns that variable\'s value, or fails when it is unset), with no escape unless the app sets escape_proxy';
  return 'django-environ turns \\$ into $ where the app sets escape_proxy, and the value holds \\$';
}

/** Why `reader` alone cannot carry `value`, in words that do not give the value away. */
function aloneReason(reader: Reader, value: string): string {
  switch (reader) {
    case 'python-dotenv':
      if (pythonInterpolates(value)) return 'python-dotenv replaces "${...}" with the value of another variable (interpolation), in every quoting, and has no escape for it';
      return 'it ends with a backslash and needs quotes: python-dotenv 0.21 reads a quoted value ending in a backslash past its closing quote';
    case 'node-dotenv':
    case 'dotenv-expand':
      if (value.endsWith('\\')) return `it ends with a backslash and needs quotes: ${reader} reads a quoted value ending in a backslash past its closing quote`;
      if (value.includes('\r') && value.includes('"')) return `${reader} keeps a carriage return only as \\r inside double quotes, and the value holds a double quote`;
      return `${reader} decodes no escapes (only \\n and \\r in double quotes), and the value ${holdsQuotesWith(reader, value)}`;
    case 'node-env-file':
    case 'vite':
      if (value.endsWith('\\')) return `it ends with a backslash and needs quotes, which ${reader} may read past its closing quote`;
      if (value.includes('\r')) return `${reader === 'vite' ? 'vite 8 (Node\'s parser)' : 'Node\'s parser'} does not keep carriage returns`;
      return `${reader === 'vite' ? 'vite' : 'Node\'s parser'} decodes no escapes but \\n in double quotes, and the value ${holdsQuotesWith(reader, value)}`;
    case 'shell':
      return 'bash reads $, `, " and \\ specially unless in single quotes, and the value holds a single quote together with one of them';
    case 'django-environ':
      return djangoReason(value);
  }
}

/**
 * The text to write after `KEY=` so that every reader in `readers` reads back exactly `value` and every reader in
 * `others` (declared, but not for this variable: `only` in dotenv.readers) still reads it as one statement that
 * ends where the text ends, so that no reader sees another variable, or another value of one, in it; or why not.
 * Pure; the reasons never contain the value.
 */
export function encodeValue(value: string, readers: readonly Reader[], others: readonly Reader[] = []): { text: string; form: string } | { refused: Refusal } {
  const all = [...readers, ...others];
  if (value.includes('\0')) return { refused: { readers: [], reason: 'it holds a NUL character, which no process environment can carry (nor any .env reader)' } };
  if (LONE_SURROGATE.test(value)) return { refused: { readers: [], reason: 'it is not valid Unicode (a lone surrogate), so it cannot be written as UTF-8' } };
  const [form] = formsFor(value, readers, others);
  if (form) return { text: writeForm(value, form), form: form.name };
  /** The forms that suit reader `r` alone (exactly, or as a statement when it is one of `others`). */
  const suits = (rs: Reader[]) => formsFor(value, rs.filter((r) => readers.includes(r)), rs.filter((r) => !readers.includes(r)));
  const alone = all.filter((r) => suits([r]).length === 0);
  if (alone.length) return { refused: { readers: alone, reason: alone.map((r) => (readers.includes(r) ? aloneReason(r, value) : statementReason(r, value))).join('; ') } };
  // Each reader can carry it alone, but not all with one quoting: name the first pair that shares none.
  for (const [i, a] of all.entries())
    for (const b of all.slice(i + 1))
      if (suits([a, b]).length === 0) {
        const list = (r: Reader) => suits([r]).map((f) => f.name).join(', ');
        if (readers.includes(a) && readers.includes(b))
          return { refused: { readers: [a, b], reason: `no quoting is read the same by ${a} and ${b}: ${a} reads it back only ${list(a)}; ${b} only ${list(b)}` } };
        const part = (r: Reader) => (readers.includes(r) ? `${r} reads it back only ${list(r)}` : `${r}, which parses every line of the .env whatever its \`only\`, reads it as one statement only ${list(r)}`);
        return { refused: { readers: [a, b], reason: `no quoting suits both ${a} and ${b}: ${part(a)}; ${part(b)}` } };
      }
  return { refused: { readers: all, reason: 'no quoting is read back exactly by the readers of this variable while every other declared reader reads it as one statement' } };
}

/** The rendered files: `.env` for the app, `environ` (NUL-separated NAME=VALUE) for the pipeline's own commands. */
export interface RenderedEnv {
  dotenv: string;
  environ: string;
  /** variable → the quoting chosen for it (what `ops config` shows). */
  forms: Record<string, string>;
}

/** What the .env is rendered from: an environment's name and settings (its hosts play no part). */
export type DotenvSettings = Pick<Environment, 'name' | 'config'>;

/** The .env readers of an environment (`dotenv.readers`): each with the variable name prefix it is limited to ("" = all). */
export function dotenvReaders(env: DotenvSettings): { reader: Reader; only: string }[] {
  return env.config.dotenv.readers.map((r) => (typeof r === 'string' ? { reader: r, only: '' } : { reader: r.reader, only: r.only }));
}

/**
 * The readers that must read variable `key` exactly (those whose `only` prefix it has), and the other declared
 * readers, which still parse its line (every reader reads the whole file).
 */
function readersOf(env: DotenvSettings, key: string): { exact: Reader[]; others: Reader[] } {
  const declared = dotenvReaders(env);
  const exact = [...new Set(declared.filter((r) => key.startsWith(r.only)).map((r) => r.reader))];
  const others = [...new Set(declared.map((r) => r.reader))].filter((r) => !exact.includes(r));
  return { exact, others };
}

/** A variable whose value its readers would not read back: the line naming it, its source and why (never the value). */
interface RefusedVariable {
  /** The variable and its source: `KEY (secret "x"; read by ...)`. */
  head: string;
  /** Why its readers would not read it back. */
  reason: string;
  secret: boolean;
  /** The readers that would corrupt it ([]: none could carry it, Refusal.readers). */
  readers: Reader[];
}

/** The text after `KEY=` for variable `key` (`spec` says where its value comes from), or why its readers cannot carry `value`. */
function encodeVariable(env: DotenvSettings, key: string, spec: EnvironmentConfig['env'][string], value: string): { text: string; form: string } | { refused: RefusedVariable } {
  const { exact, others } = readersOf(env, key);
  const encoded = encodeValue(value, exact, others);
  if (!('refused' in encoded)) return encoded;
  const readBy = `read by ${exact.join(', ') || 'none of the declared readers'}${others.length ? `; its line also parsed by ${others.join(', ')}` : ''}`;
  return { refused: { head: `${key} (${sourceOf(spec)}; ${readBy})`, reason: encoded.refused.reason, secret: typeof spec !== 'string', readers: encoded.refused.readers } };
}

/**
 * The one refusal of .env values their readers would not read back (a deploy's, and `ops secrets set`/`edit`'s):
 * every variable named with its source and reason, never its value; `untouched` says what was left as it was;
 * the hint says where each kind of value is changed, or which readers to drop.
 */
function unreadableError(env: DotenvSettings, refused: RefusedVariable[], untouched: string): OpsError {
  const secrets = refused.some((r) => r.secret);
  const plain = refused.some((r) => !r.secret);
  const culprits = [...new Set(refused.flatMap((r) => r.readers))];
  return new InputError(
    `${refused.length} .env value${refused.length > 1 ? 's' : ''} of ${env.name} cannot be written so that ${refused.length > 1 ? 'their readers read them' : 'its readers read it'} back exactly (${untouched}):\n${refused.map((r) => `  - ${r.head}: ${r.reason}`).join('\n')}`,
    // a value no reader carries (a NUL) is not helped by dropping readers: only what the others name is offered
    `change the value (${secrets ? `a secret: printf '%s' NEW | ops secrets set ${env.name} <key>` : ''}${secrets && plain ? '; ' : ''}${plain ? `a plain value: its env entry in environments/${env.name}/environment.yml` : ''})${culprits.length ? `, or, if your app does not read .env with it, drop ${culprits.join(' / ')} from dotenv.readers in environments/${env.name}/environment.yml` : ''} (README: "The .env: which values each reader can carry")`,
  );
}

/**
 * Whether a decrypted secret holds, at any depth, a float64 whose shortest digits number more than 15: sops stores an
 * integer typed without quotes beyond the 64-bit range as a float64, in its YAML store (go-yaml) and its JSON store
 * alike (getsops/sops stores/json/store.go, normalizeJSONNumber: an integer within int64 is an int, anything else a
 * float64), any number typed with a fraction or an exponent, and `sops set` every number it is given (its value is
 * JSON, decoded into a float64: 12345678901234567 is stored as 12345678901234568); it encrypts the float's shortest
 * digits, not the text typed, so digits past the 17th are gone (`0.1234567890123456789` is 0.12345678901234568), and
 * the app would get another number than the one typed. Any text of at most 15 significant digits reads back as those
 * digits (a float64 holds 15 decimal digits exactly), so such a float was typed with more, and nothing tells whether
 * they were kept: refused, as rounded. A float of 15 digits or fewer (1e20, 100000000000000000000, 0.1, 1.5) is what
 * such a text means, and reaches the .env as sops gives it (1E+20 as a variable's whole value,
 * 100000000000000000000 inside JSON) (one typed with more digits that rounds to it, 100000000000000000001, cannot be
 * told apart: `ops secrets edit` names it as it is typed); so does a whole float within 2^53 (9007199254740991.0),
 * exact. (Integers within int64 are exact: bigints here.) Pure.
 */
export function holdsRoundedNumber(value: unknown): boolean {
  if (typeof value === 'number') return Number.isFinite(value) && !Number.isSafeInteger(value) && value.toExponential().replace(/^-?(\d)\.?(\d*)e.*$/, '$1$2').length > 15;
  if (Array.isArray(value)) return value.some(holdsRoundedNumber);
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) return Object.values(value).some(holdsRoundedNumber);
  return false;
}

/**
 * Linux's limit on one string of a process environment, `NAME=VALUE` and its NUL: MAX_ARG_STRLEN, 32 pages of
 * 4 KiB (include/uapi/linux/binfmts.h). The release's commands and the app get every .env value as a variable
 * (the environ file, exported), and a longer one makes every program they start fail (execve: E2BIG).
 */
export const MAX_ENVIRONMENT_STRING = 131_072;

/** Whether variable `key` holding `value` is longer than one process environment string can be (MAX_ENVIRONMENT_STRING). */
function overflowsEnvironment(key: string, value: string): boolean {
  return Buffer.byteLength(key) + Buffer.byteLength(value) + 2 > MAX_ENVIRONMENT_STRING;
}

/** The one refusal of .env values too long for a process environment (overflowsEnvironment): a deploy's, and `ops secrets set`/`edit`'s. Names each variable and its size, never its value. */
function overflowError(env: DotenvSettings, long: { key: string; source: string; bytes: number }[], untouched: string): OpsError {
  return new InputError(
    `${long.length === 1 ? '1 .env value' : `${long.length} .env values`} of ${env.name} ${long.length === 1 ? 'is' : 'are'} too long for a process environment: the release's commands and the app get each as an environment variable, and Linux starts no program whose environment holds one longer than ${MAX_ENVIRONMENT_STRING / 1024} KiB (NAME=VALUE; "Argument list too long") (${untouched}):\n${long.map((l) => `  - ${l.key} (${l.source}): ${l.bytes} bytes`).join('\n')}`,
    `keep each under ${MAX_ENVIRONMENT_STRING / 1024} KiB; a larger value belongs in a file the app reads by its path (e.g. sops-encrypted under environments/${env.name}/assets/), not in the .env`,
  );
}

/**
 * How much of a process environment the .env may take in all: Linux starts no program whose arguments and
 * environment, strings and pointers, exceed a quarter of the stack limit (fs/exec.c; 2 MiB with the usual 8 MiB),
 * and the host's own variables and each command's arguments need room too.
 */
export const MAX_ENVIRONMENT_TOTAL = 1024 * 1024;

/** The bytes variable `key` holding `value` takes in a process environment: its string, NUL and pointer. */
function environmentBytes(key: string, value: string): number {
  return Buffer.byteLength(key) + Buffer.byteLength(value) + 2 + 8;
}

/** The refusal of a .env too large in all for a process environment (MAX_ENVIRONMENT_TOTAL): its largest variables named by size, never a value. */
function totalError(env: DotenvSettings, sizes: { key: string; bytes: number }[], untouched: string): OpsError {
  const total = sizes.reduce((n, s) => n + s.bytes, 0);
  const largest = [...sizes].sort((a, b) => b.bytes - a.bytes).slice(0, 5);
  return new InputError(
    `the .env of ${env.name} takes ${total} bytes of a process environment, more than the ${MAX_ENVIRONMENT_TOTAL / 1024} KiB ops leaves it: the release's commands and the app get every value as an environment variable, and Linux starts no program whose environment and arguments exceed a quarter of the stack limit (2 MiB with the usual 8 MiB; "Argument list too long"), the host's own variables and the commands' arguments included (${untouched}); the largest:\n${largest.map((l) => `  - ${l.key}: ${l.bytes} bytes`).join('\n')}`,
    `make the largest smaller; a large value belongs in a file the app reads by its path (e.g. sops-encrypted under environments/${env.name}/assets/), not in the .env`,
  );
}

/** Where a variable's value comes from, as messages name it. */
function sourceOf(spec: EnvironmentConfig['env'][string]): string {
  return typeof spec === 'string' ? 'a plain value in environment.yml' : `secret "${spec.secret}"`;
}

/** A variable whose secret holds a number sops may have rounded (holdsRoundedNumber): `member` its key path inside that secret ([]: the secret itself). */
interface RoundedVariable {
  key: string;
  secret: string;
  member: string[];
  /** Already in the file before the change `ops secrets set`/`edit` makes. */
  old?: boolean;
}

/** The one refusal of secrets holding a number sops may have rounded (holdsRoundedNumber): a deploy's, and `ops secrets set`/`edit`'s. */
function roundedError(env: DotenvSettings, rounded: RoundedVariable[], untouched: string): OpsError {
  const first = rounded[0]!;
  const line = (r: RoundedVariable) => `  - ${r.key} (secret "${r.secret}"${r.member.length ? `, its member ${memberKey(r.secret, r.member)}` : ''}${r.old ? ', already in the file before this change: every deploy already refuses it' : ''})`;
  return new InputError(
    `environments/${env.name}/secrets.sops.yaml: ${rounded.length === 1 ? 'a secret the .env needs holds' : `${rounded.length} secrets the .env needs hold`} a number with more digits than a floating-point number holds exactly (over 15), which sops stored as one (as it stores an integer typed without quotes beyond the 64-bit range, a number with a fraction or an exponent, and every number given to \`sops set\`), keeping not the text typed but the float's digits, 17 at most, any past them rounded away, and nothing tells whether the text had more: the app could get another number than the one typed (${untouched}):\n${rounded.map(line).join('\n')}`,
    `quote it as a string, so that it is stored and given as typed: \`ops secrets edit ${env.name}\` and write it in double quotes (key: "..."), or set it again: printf '%s' VALUE | ops secrets set ${env.name} ${quote(memberKey(first.secret, first.member))} (always text)`,
  );
}

/** The key path, inside a secret, of its first member (maps followed; a list is one member) that `holds`: [] for the secret itself, undefined for none. */
function memberHolding(value: unknown, holds: (member: unknown) => boolean): string[] | undefined {
  return memberPaths(value).find((p) => holds(memberAt(value, p)));
}

/** Whether a plain value is or holds a float JSON has no text for (.inf, -.inf, .nan). */
function holdsNonFinite(value: unknown): boolean {
  if (typeof value === 'number') return !Number.isFinite(value);
  if (Array.isArray(value)) return value.some(holdsNonFinite);
  return value !== null && typeof value === 'object' && !(value instanceof Uint8Array) && Object.values(value).some(holdsNonFinite);
}

/**
 * The member of a map or list secret, written whole as JSON, that is or holds .inf, -.inf or .nan (JSON.stringify
 * writes null for them, and JSON has no text the app's JSON.parse and json.loads both read); undefined for none,
 * and for a secret that is such a float itself (written as text, `+Inf`: valueText).
 */
function nonFiniteMember(value: unknown): string[] | undefined {
  return value !== null && typeof value === 'object' ? memberHolding(value, holdsNonFinite) : undefined;
}

/** The refusal of a map or list secret holding .inf or .nan (nonFiniteMember) in the .env. */
function nonFiniteRefused(env: DotenvSettings, key: string, secret: string, member: string[]): OpsError {
  return new InputError(
    `the secret "${memberKey(secret, member)}" holds .inf, -.inf or .nan, typed without quotes, inside "${secret}", which the .env (${key}) takes whole as JSON: JSON has no text for such a float (it would be null)`,
    `quote it as text (\`ops secrets edit ${env.name}\`: "..."), or take the member on its own in env ({ secret: ${memberKey(secret, member)} })`,
  );
}

/**
 * Where a map or list secret the .env takes whole holds a YAML merge key (`<<: *base`), at any depth (maps and lists
 * followed): the key path from the secret to that `<<` key; undefined for none (and for a scalar). sops 3.13.3 keeps
 * `<<` as a key of its own and merges nothing (README, "Secrets"), so the JSON the .env carries, as `sops decrypt
 * --output-type json` writes it, holds a member "<<" (the map it names) where the keys it brings were meant: the
 * app's `json.loads(TOOLS_PASSWORDS)["alice@example.org"]` finds nothing, and a loop over its items takes "<<" for
 * one. Pure.
 */
function mergeKeyMember(value: unknown, path: (string | number)[] = []): (string | number)[] | undefined {
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = mergeKeyMember(item, [...path, i]);
      if (found) return found;
    }
    return undefined;
  }
  if (!isMapValue(value)) return undefined;
  if (Object.hasOwn(value, '<<')) return [...path, '<<'];
  for (const [k, v] of Object.entries(value)) {
    const found = mergeKeyMember(v, [...path, k]);
    if (found) return found;
  }
  return undefined;
}

/** The refusal of a map or list secret taken whole that holds a YAML merge key (mergeKeyMember, at `member`). Never a value. */
function mergeKeyRefused(env: DotenvSettings, key: string, secret: string, member: (string | number)[]): OpsError {
  return new InputError(
    `${key} takes the secret "${secret}" whole, as JSON, and it holds a YAML merge key, "${showPath([secret, ...member])}": sops keeps \`<<\` as a key of its own and merges nothing, so the app would get a member "<<" holding the map it names instead of the keys it brings`,
    `write those keys out in the map itself and drop its \`<<\` line (ops secrets edit ${env.name}), or name each key in env on its own ({ secret: ... })`,
  );
}

/** The refusal of a binary value in the .env (binaryRefused), naming the member that holds it when the secret is a map named whole. */
function binaryMemberRefused(env: DotenvSettings, key: string, secret: string, member: string[]): OpsError {
  return binaryRefused(memberKey(secret, member), `in the .env (${key}${member.length ? `, which takes the map "${secret}" whole` : ''})`, env.name);
}

/**
 * Render the .env and the environ file. Every missing secret, then every secret holding a number sops may have rounded
 * (holdsRoundedNumber), then every value that cannot be written for the declared readers, is reported at once
 * (by variable and source, never by value), before anything reaches a host. Throws OpsError.
 */
export function renderDotenv(env: Environment, secrets: unknown): RenderedEnv {
  const declared = dotenvReaders(env).map((r) => (r.only ? `${r.reader} (${r.only}*)` : r.reader));
  const missing: string[] = [];
  let mergedOnly = false;
  const rounded: RoundedVariable[] = [];
  const refused: RefusedVariable[] = [];
  const long: { key: string; source: string; bytes: number }[] = [];
  const lines = [`# Rendered by ops-pipeline for ${env.name} (readers: ${declared.join(', ')}): do not edit on the host, change environments/${env.name}/ instead.`];
  const records: string[] = [];
  const sizes: { key: string; bytes: number }[] = [];
  const forms = Object.create(null) as Record<string, string>; // no prototype: a variable may be named __proto__
  for (const [key, spec] of Object.entries(env.config.env)) {
    let value: string;
    if (typeof spec === 'string') value = spec;
    else {
      const found = lookup(secrets, spec.secret, env.name);
      if (found === undefined || found === null) {
        // null (`~`, `null`, nothing after the key): sops's dotenv output would give `<nil>`; no value for the app
        // a key misspelt on either side (environment.yml's `secret:` or the file's key): the one the file has, named
        // one a YAML merge key (`<<: *base`) holds, which sops does not merge: said so, the fix being to write it out
        const merged = found === undefined ? mergedOnlyPath(secrets, spec.secret) : undefined;
        const near = found === undefined && !merged ? closest(spec.secret, secretPaths(secrets)) : undefined;
        if (merged) mergedOnly = true;
        missing.push(
          `${key} needs the secret "${spec.secret}"${found === null ? ', which holds no value (null: typed as ~, null or nothing after its key)' : merged ? `, which the file holds only through a YAML merge key, as "${merged}": sops keeps \`<<\` as a key of its own and merges nothing, so to sops and ops alike there is no "${spec.secret}"` : near ? ` (the file has "${near}": did you mean it?)` : ''}`,
        );
        continue;
      }
      const binary = memberHolding(found, holdsBinary);
      if (binary) throw binaryMemberRefused(env, key, spec.secret, binary);
      const infinite = nonFiniteMember(found);
      if (infinite) throw nonFiniteRefused(env, key, spec.secret, infinite);
      const merge = mergeKeyMember(found);
      if (merge) throw mergeKeyRefused(env, key, spec.secret, merge);
      const round = memberHolding(found, holdsRoundedNumber);
      if (round) {
        rounded.push({ key, secret: spec.secret, member: round });
        continue;
      }
      value = asString(found);
    }
    if (overflowsEnvironment(key, value)) {
      long.push({ key, source: sourceOf(spec), bytes: Buffer.byteLength(value) });
      continue;
    }
    const encoded = encodeVariable(env, key, spec, value);
    if ('refused' in encoded) {
      refused.push(encoded.refused);
      continue;
    }
    lines.push(`${key}=${encoded.text}`);
    records.push(`${key}=${value}\0`);
    sizes.push({ key, bytes: environmentBytes(key, value) });
    forms[key] = encoded.form;
  }
  if (missing.length) {
    // every key inside one text, as sops's binary store writes a file (`sops encrypt secrets.txt`): adding keys beside it is no fix
    const binary = isBinaryStoreData(secrets) ? binaryStoreNote(`environments/${env.name}/secrets.sops.yaml`, env.name) : undefined;
    throw new InputError(
      `environments/${env.name}/secrets.sops.yaml lacks ${missing.length} secret${missing.length > 1 ? 's' : ''} the .env needs${binary ? `: ${binary.why}` : ''}:\n${missing.map((m) => `  - ${m}`).join('\n')}`,
      binary ? binary.fix : `add them: printf '%s' VALUE | ops secrets set ${env.name} <key>${mergedOnly ? `; a key merged in with \`<<\` is written out in its own map instead (ops secrets edit ${env.name})` : ''}`,
    );
  }
  if (rounded.length) throw roundedError(env, rounded, 'nothing was sent to any host');
  if (long.length) throw overflowError(env, long, 'nothing was sent to any host');
  if (refused.length) throw unreadableError(env, refused, 'nothing was sent to any host');
  if (sizes.reduce((n, v) => n + v.bytes, 0) > MAX_ENVIRONMENT_TOTAL) throw totalError(env, sizes, 'nothing was sent to any host');
  return { dotenv: lines.join('\n') + '\n', environ: records.join(''), forms };
}

/** How `ops secrets set` or `ops secrets edit` met a refusal: which command, and what it left as it was (said in the message). */
export interface ChangeCheckContext {
  command: 'set' | 'edit';
  /** What was left as it was, e.g. "nothing was written: environments/qa/secrets.sops.yaml is unchanged" (or "was not created"). */
  untouched: string;
}

/** The leaves of a decrypted map (maps followed; a list, a scalar or an empty map is one leaf), each as its key path from the map. */
function memberPaths(value: unknown, path: string[] = []): string[][] {
  if (!isMapValue(value) || (path.length && Object.keys(value).length === 0)) return [path];
  return Object.keys(value).flatMap((k) => memberPaths((value as Record<string, unknown>)[k], [...path, k]));
}

function memberAt(value: unknown, path: string[]): unknown {
  return path.reduce<unknown>((n, k) => (isMapValue(n) && Object.hasOwn(n, k) ? n[k] : undefined), value);
}

/** A member's key path as `ops secrets set` takes it: the secret as env names it, each key below quoted as it needs (quotePart). */
function memberKey(secret: string, path: string[]): string {
  return [secret, ...path.map(quotePart)].join('.');
}

/**
 * What `ops secrets set` and `ops secrets edit` check before they write: each .env variable of `env` that takes
 * its value from a secret the change alters (`before` → `after`, decrypted data as a deploy gets it) must be
 * writable for the declared readers as renderDotenv writes it, else the change is refused with the deploy's own
 * message, so that the value is refused when it is stored, not at the next deploy (in CI). Only the variables the
 * change alters are held to it: a value stored before is the deploy's to refuse, and a secret still missing is not
 * refused (a file is filled one key at a time), but one the change removes (or sets to null) is: the .env needs it. A secret no `env` entry names never reaches the .env and is not
 * checked; a secret some entry names as a whole (a map, written as JSON) is checked as that JSON (which every
 * reader carries whatever its members hold, jsonString: only its size, or a member holding a binary value, a
 * number sops may have rounded or .inf, can refuse it, and those by member). `how` says which command runs it and what it left
 * as it was. Throws OpsError.
 */
export function refuseUnreadableSecrets(env: DotenvSettings, before: unknown, after: unknown, how: ChangeCheckContext = { command: 'set', untouched: `nothing was written: environments/${env.name}/secrets.sops.yaml is unchanged` }): void {
  const refused: RefusedVariable[] = [];
  const rounded: RoundedVariable[] = [];
  const removed: string[] = [];
  const long: { key: string; source: string; bytes: number }[] = [];
  for (const [key, spec] of Object.entries(env.config.env)) {
    if (typeof spec === 'string') continue;
    const found = lookup(after, spec.secret, env.name);
    const had = lookup(before, spec.secret, env.name);
    if ((found === undefined || found === null) && had !== undefined && had !== null) removed.push(`${key} needs the secret "${spec.secret}"`);
    if (found === undefined || found === null || isDeepStrictEqual(found, had)) continue;
    const binary = memberHolding(found, holdsBinary);
    if (binary) {
      const e = binaryMemberRefused(env, key, spec.secret, binary);
      const old = binary.length > 0 && isDeepStrictEqual(memberAt(had, binary), memberAt(found, binary));
      throw new InputError(`${e.message} (${old ? 'already in the file before this change: every deploy already refuses it; ' : ''}${how.untouched})`, !old ? e.hint : how.command === 'edit' ? `${e.hint}; or change it in this same edit` : `${e.hint}; then run this one again`);
    }
    const infinite = nonFiniteMember(found);
    if (infinite) {
      const e = nonFiniteRefused(env, key, spec.secret, infinite);
      throw new InputError(`${e.message} (${how.untouched})`, e.hint);
    }
    const merge = mergeKeyMember(found);
    if (merge) {
      const e = mergeKeyRefused(env, key, spec.secret, merge);
      const old = isDeepStrictEqual(mergeKeyMember(had), merge);
      throw new InputError(`${e.message} (${old ? 'already in the file before this change: every deploy already refuses it; ' : ''}${how.untouched})`, !old ? e.hint : how.command === 'edit' ? `${e.hint}; or change it in this same edit` : `${e.hint}; then run this one again`);
    }
    // new ones are asked about before they get here (secrets edit) and never typed by secrets set: one already
    // in a map named whole, which the change alters, is named as such
    const round = memberHolding(found, holdsRoundedNumber);
    if (round) {
      rounded.push({ key, secret: spec.secret, member: round, old: round.length > 0 && isDeepStrictEqual(memberAt(had, round), memberAt(found, round)) });
      continue;
    }
    const value = asString(found);
    if (overflowsEnvironment(key, value)) {
      long.push({ key, source: sourceOf(spec), bytes: Buffer.byteLength(value) });
      continue;
    }
    const encoded = encodeVariable(env, key, spec, value);
    if ('refused' in encoded) refused.push(encoded.refused);
  }
  if (removed.length)
    throw new InputError(
      `this change removes ${removed.length === 1 ? 'a secret' : `${removed.length} secrets`} the .env needs, so every deploy would refuse it (${how.untouched}):\n${removed.map((m) => `  - ${m}`).join('\n')}`,
      `keep ${removed.length === 1 ? 'it' : 'them'}; to drop ${removed.length === 1 ? 'it' : 'them'}, remove the env ${removed.length === 1 ? 'entry' : 'entries'} naming ${removed.length === 1 ? 'it' : 'them'} from environments/${env.name}/environment.yml first`,
    );
  if (rounded.length) throw roundedError(env, rounded, how.untouched);
  if (long.length) throw overflowError(env, long, how.untouched);
  const sizesIn = (secrets: unknown) =>
    Object.entries(env.config.env).flatMap(([key, spec]) => {
      const value = typeof spec === 'string' ? spec : lookup(secrets, spec.secret, env.name);
      return value === undefined || value === null || holdsBinary(value) ? [] : [{ key, bytes: environmentBytes(key, asString(value)) }];
    });
  const [sizesBefore, sizesAfter] = [sizesIn(before), sizesIn(after)];
  const sum = (sizes: { bytes: number }[]) => sizes.reduce((n, v) => n + v.bytes, 0);
  // only a change that makes it larger, beyond the limit, is refused (a smaller one is the way out)
  if (sum(sizesAfter) > MAX_ENVIRONMENT_TOTAL && sum(sizesAfter) > sum(sizesBefore)) throw totalError(env, sizesAfter, how.untouched);
  if (refused.length) throw unreadableError(env, refused, how.untouched);
}

/**
 * Bash that exports every record of an environ file (NUL-separated NAME=VALUE) as it is: `read -d ''` splits
 * on NUL only, and `export "NAME=VALUE"` assigns without any further expansion. The first of `files` that exists
 * is read (none: nothing is exported). It uses no variable of its own but bash's REPLY (unset after), a name
 * the config refuses like every other bash gives a meaning to (core/config/env-names.ts): a record can neither
 * change the loop nor how the rest of the script runs.
 */
export function environLoader(...files: string[]): string {
  // shellcheck reads `export "$REPLY"` as a mistake for `export REPLY`: here each record is NAME=VALUE on purpose.
  const tests = files.map((f, i) => `${i ? 'elif' : 'if'} [ -f ${quote(f)} ]; then\n  while IFS= read -r -d ''; do export -- "$REPLY"; done < ${quote(f)}`);
  if (!tests.length) return '';
  return `# shellcheck disable=SC2163 # each record is NAME=VALUE, exported as it is\n${tests.join('\n')}\nfi\nunset -v REPLY`;
}
