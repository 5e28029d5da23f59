// Models of the parsers that read a release's .env, written from their sources, so the writer (core/dotenv.ts)
// can pick for each value a quoting that every declared reader decodes to the exact value, or refuse it.
//
// A model gets the text after `KEY=` (up to the end of the binding; it may span lines) and returns the value
// the reader ends up with, or undefined when the reader would read something else or when the model is not
// sure (a model may be stricter than its reader, never looser: test/unit/dotenv-readers.test.ts checks every
// accepted form against the real parsers).
//
// Sources:
// - python-dotenv 0.21-1.2, src/dotenv/parser.py (quoted values, escapes) and main.py + variables.py
//   (`${VAR}` / `${VAR:-default}` interpolation, on by default in dotenv_values, load_dotenv and
//   pydantic-settings, whatever the quoting). Files are opened in text mode: \r\n and \r become \n.
// - dotenv (Node) 16-18, lib/main.js `parse`: \r\n and \r become \n first; quoted values end at the first
//   matching quote; in double quotes only \n and \r are decoded, nothing else (no \\, no \").
// - Node's own parser (node --env-file, process.loadEnvFile, util.parseEnv, Node 20.19+), src/node_dotenv.cc:
//   quoted values end at the first matching quote; only \n is decoded in double quotes.
// - dotenv-expand 12 (vite 6-8 bundle it), lib/main.js: after parsing, `${NAME}`, `${NAME:-x}`... and
//   `$NAME` not preceded by a backslash are replaced, then every `\$` becomes `$`. Next.js's @next/env 15
//   (`loadEnvConfig`, dist/index.js) bundles dotenv and an older dotenv-expand whose `_interpolate` also replaces
//   `$1`, `$_x` and a `${NAME` lacking its `}` (pattern `\${?([\w]+)(?::-([^}\\]*))?}?`).
// - vite 6-8 `loadEnv`: dotenv's parser (vite 6, 7) or Node's util.parseEnv (vite 8), then dotenv-expand.
// - bash/sh `set -a; . ./.env`: POSIX quoting.
// - django-environ 0.14, environ/environ.py: `Env.read_env` reads the file in text mode and one line at a time
//   (str.splitlines: \n, \r, \v, \f, \x1c-\x1e, NEL, U+2028, U+2029 all end a line), takes `'...'` off, then
//   `"..."`, decoding `\x` as x but `\n`, `\r`, `\t`, kept as written; `env(NAME)` / `env.str(NAME)` then takes a
//   value starting with `$` for the name of another variable (its "proxy", on by default, no escape unless the app
//   sets `escape_proxy`, which turns every `\$` into `$`). With `read_env(parse_comments=True)` a `#` outside
//   single quotes starts a comment.

/** The parsers a .env can be declared to be read by (`dotenv.readers` in environment.yml). */
export const READERS = ['python-dotenv', 'node-dotenv', 'node-env-file', 'dotenv-expand', 'vite', 'shell', 'django-environ'] as const;
export type Reader = (typeof READERS)[number];

/** The seed's app: pydantic-settings (python-dotenv) on the API, dotenv on the Node client. */
export const DEFAULT_READERS: Reader[] = ['python-dotenv', 'node-dotenv'];

/** What each reader is, who uses it, and what it cannot carry: the README's table (`npm run docs`). */
export const READER_DOCS: Record<Reader, { what: string; cannot: string }> = {
  'python-dotenv': {
    what: 'python-dotenv 0.21-1.2 with interpolation on (the default of `load_dotenv`, `dotenv_values`, and so of pydantic-settings `BaseSettings`)',
    cannot: 'a `${...}` (`${NAME}`, `${NAME:-default}`): replaced by another variable\'s value in every quoting, with no escape; a value ending in a backslash that needs quotes (spaces at its ends, a line break, a `#`, a leading quote): 0.21 reads it past the closing quote',
  },
  'node-dotenv': {
    what: 'Node\'s `dotenv` 16-18 (`require(\'dotenv\').config()`, `dotenv.parse`)',
    cannot: 'a value holding `\'`, `` ` `` and a `"` (or a `\\n` or `\\r` it holds as text, which double quotes would decode) together with a line break (or U+2028, U+2029, NEL), a `#`, a quote as its first character or spaces at its ends (no escapes: only `\\n` and `\\r` in double quotes); a carriage return together with a `"`; a value ending in a backslash that needs quotes (read on past the closing quote)',
  },
  'node-env-file': {
    what: 'Node\'s built-in parser: `node --env-file`, `process.loadEnvFile`, `util.parseEnv` (Node 20.19+; refused when `runtimes.node` pins one whose parser reads values otherwise or has none: before 20.13, 21, 22.0)',
    cannot: 'a value holding `\'`, `` ` `` and a `"` or a backslash (double quotes decode only `\\n`) together with a line break (or U+2028, U+2029, NEL), a `#`, a quote as its first character or spaces at its ends; a carriage return; a value ending in a backslash that needs quotes',
  },
  'dotenv-expand': {
    what: 'Node\'s `dotenv` then `dotenv-expand` 12 (`expand(config())`), and Next.js\'s `.env` loading (`@next/env` 15 and 16, an older dotenv-expand); `$` is written `\\$`',
    cannot: 'what node-dotenv cannot; with python-dotenv or shell also declared: a `$` before a letter, a digit, `_` or `{` (they do not read its `\\$` escape)',
  },
  vite: {
    what: 'vite 6-8 `loadEnv` (and so SvelteKit\'s `$env`): dotenv\'s parser (vite 6, 7) or Node\'s (vite 8), then dotenv-expand',
    cannot: 'what node-dotenv, node-env-file and dotenv-expand cannot',
  },
  shell: {
    what: 'bash/sh `set -a; . ./.env` (Makefiles, shell scripts, Docker entrypoints)',
    cannot: 'a `\'` together with a `$`, `` ` ``, `"` or `\\`',
  },
  'django-environ': {
    what: 'django-environ 0.14 `environ.Env.read_env()` then `env(\'NAME\')` / `env.str(\'NAME\')` (Django settings; a parser of its own, not python-dotenv\'s)',
    cannot: 'a value starting with `$` (taken for another variable\'s name, its proxy); a `\\$` (read as `$` where the app sets `escape_proxy`); a line break, or a character Python ends a line at (`\\v`, `\\f`, `\\x1c`-`\\x1e`, NEL, U+2028, U+2029): it reads the `.env` one line at a time and decodes no `\\n` (only `env.str(..., multiline=True)` does); a `#` in a value starting and ending with `"` (its quotes are taken off even inside single quotes, and `read_env(parse_comments=True)` cuts at a `#` outside them)',
  },
};


/**
 * Why Node.js `version` (runtimes.node.version: "18", or a full "20.11.1") does not read a .env as the node-env-file
 * model does, in words that name no value; undefined when it does, or may (a major alone, as Debian's package is
 * pinned: Debian 13's 20 is 20.19). From each version's own `node --env-file`, run on what the writer writes (the
 * corpus of test/unit/dotenv-readers.test.ts; 20.13 to 20.18, 22.1 to 22.9, 24 and 25 read it all back exactly):
 * before 20.6 there is no such parser; 20.6-20.11 and 21.0-21.6 read a value one line at a time and decode no `\n`
 * (a value of several lines is lost); 20.12, 21.7 and 22.0 parse with a C++ std::regex that overflows the stack on a
 * value of a few tens of KiB (the program dies of a segmentation fault before it starts).
 */
export function nodeEnvFileProblem(version: string): string | undefined {
  const [major = 0, minor] = version.split('.').map(Number);
  const known = minor !== undefined;
  if (major < 20 || (major === 20 && known && minor < 6)) return `Node.js ${version} has no .env parser of its own (\`node --env-file\` came in 20.6, \`process.loadEnvFile\` in 20.12): the app could not read the .env with it`;
  if ((major === 20 && known && minor < 12) || (major === 21 && (!known || minor < 7)))
    return `Node.js ${version}'s .env parser reads each value on one line and decodes no \\n in double quotes: a value of several lines (a PEM key) would be lost or changed`;
  if ((major === 20 && minor === 12) || major === 21 || (major === 22 && minor === 0))
    return `Node.js ${version}'s .env parser (a C++ std::regex) crashes the program (segmentation fault) on a value of a few tens of KiB`;
  return undefined;
}

/** The README table of readers (appended to the environment reference by `npm run docs`). */
export function readersTable(): string {
  return [
    '`dotenv.readers` names the parsers that read the release\'s `.env`. Each value is written in the first quoting that every declared reader decodes to exactly that value; a value no quoting can carry is refused before any host is touched.',
    '',
    '| reader | what it is | cannot carry |',
    '|---|---|---|',
    ...READERS.map((r) => `| \`${r}\` | ${READER_DOCS[r].what} | ${READER_DOCS[r].cannot} |`),
  ].join('\n');
}

type Decode = (text: string) => string | undefined;

/** Whitespace by either JavaScript's `\s` or Python's str.isspace (\x1c-\x1f, \x85): trimmed by one reader or another. */
const EDGE_SPACE = /[\s\x1c-\x1f\x85]/;

/**
 * An unquoted value every parser reads as written: one line, no `#` (a comment for Node's dotenv), not starting
 * with a quote (a quoted value for every parser), no whitespace at its ends (trimmed), no Unicode line separators
 * (line ends for dotenv 18's fast parser).
 */
function plainUnquoted(text: string): boolean {
  if (text === '' || /[\n\r#\u2028\u2029\x85]/.test(text) || /^['"`]/.test(text)) return false;
  return !EDGE_SPACE.test(text[0]!) && !EDGE_SPACE.test(text[text.length - 1]!);
}

/**
 * What keeps `text` from being written unquoted (plainUnquoted), in words that give nothing of it away: what a
 * refusal of a value every quoting fails (it holds all three quote kinds) names as what it holds. [] for none.
 */
export function needsQuotes(text: string): string[] {
  const why: string[] = [];
  if (/[\n\r]/.test(text)) why.push('a line break');
  if (/[\u2028\u2029\x85]/.test(text)) why.push('a Unicode line separator (U+2028, U+2029 or NEL)');
  if (text.includes('#')) why.push('a #');
  if (/^['"`]/.test(text)) why.push('a quote as its first character');
  if (text !== '' && (EDGE_SPACE.test(text[0]!) || EDGE_SPACE.test(text[text.length - 1]!))) why.push('white space at an end');
  return why;
}

/** `'...'` / `"..."` / `` `...` `` with `quote` nowhere inside: its content, else undefined. */
function quotedWithout(text: string, quote: string): string | undefined {
  if (text.length < 2 || text[0] !== quote || text[text.length - 1] !== quote) return undefined;
  const content = text.slice(1, -1);
  return content.includes(quote) ? undefined : content;
}

const PY_ESCAPES: Record<string, string> = { '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };
/**
 * Whether python-dotenv would replace part of `value` (variables.py `_posix_variable`, the pattern
 * `\$\{(?P<name>[^\}:]*)(?::-(?P<default>[^\}]*))?\}`): a `${` whose first `}` after it comes before its first `:`, or
 * whose first `:` is followed by `-` with a `}` after it. A scan in linear time: the pattern as a regular expression
 * rescans to the end from every `${` with no `}` after it (minutes for a few hundred KB of `${x `).
 */
export function pythonInterpolates(value: string): boolean {
  // The first `}` and `:` at or after a position: each only moves forward as the `${` found do.
  let close = 0;
  let colon = 0;
  for (let i = value.indexOf('${'); i !== -1; i = value.indexOf('${', i + 1)) {
    const from = i + 2;
    if (close < from) close = value.indexOf('}', from);
    if (close === -1) return false; // no `}` after this one, so none after any later one either
    if (colon !== -1 && colon < from) colon = value.indexOf(':', from);
    if (colon === -1 || colon > close || value[colon + 1] === '-') return true;
  }
  return false;
}

/** python-dotenv 0.21-1.2's parser (parser.py parse_value), before interpolation. */
const pythonParse: Decode = (text) => {
  if (text.includes('\r')) return undefined; // read in text mode: a raw \r never survives
  let value: string;
  const q = text[0];
  if (q === "'" || q === '"') {
    // 1.x: a backslash always pairs with the next character; a quote not in a pair closes the value.
    const m = (q === "'" ? /^'((?:\\[\s\S]|[^'\\])*)'$/ : /^"((?:\\[\s\S]|[^"\\])*)"$/).exec(text);
    if (!m) return undefined;
    // 0.21 pairs a backslash only with the quote: a value ending in "\\" would run past its closing quote.
    if (m[1]!.endsWith('\\')) return undefined;
    value = m[1]!.replace(q === "'" ? /\\[\\']/g : /\\[\\'"abfnrtv]/g, (e) => PY_ESCAPES[e[1]!]!);
  } else if (text === '') {
    value = '';
  } else {
    if (!plainUnquoted(text)) return undefined;
    value = text;
  }
  return value;
};

/** python-dotenv 0.21-1.2 (parser.py parse_value, then main.py resolve_variables: no `${...}` left to replace). */
const pythonDotenv: Decode = (text) => {
  const value = pythonParse(text);
  return value === undefined || pythonInterpolates(value) ? undefined : value;
};

/**
 * Node's parsers share a shape: \r\n and \r become \n; a quoted value ends at its first matching quote
 * (held here to values without that quote) not preceded by a backslash (dotenv's `\\'` alternative: a value
 * ending in a backslash runs on to the next quote in the file); only double quotes decode escapes, with `double`.
 */
function nodeStyle(double: (content: string) => string | undefined, unquoted: (text: string) => boolean): Decode {
  return (text) => {
    if (text.includes('\r')) return undefined;
    const q = text[0];
    if (q === "'" || q === '`' || q === '"') {
      const content = quotedWithout(text, q);
      if (content === undefined || content.endsWith('\\')) return undefined;
      return q === '"' ? double(content) : content;
    }
    return unquoted(text) ? text : undefined;
  };
}

/** dotenv (Node) 16-18 `parse` (the regular and the `fast` parser agree on these forms): \n and \r decoded. */
const nodeDotenv = nodeStyle((c) => c.replace(/\\n/g, '\n').replace(/\\r/g, '\r'), plainUnquoted);

/**
 * Node's built-in parser (node_dotenv.cc), held to what Node 20.19 to 24 read alike: only \n is decoded in
 * double quotes (any other backslash is left to versions that differ). An unquoted value is read as written,
 * quotes inside it too: only its first character makes it a quoted value (as for dotenv).
 */
const nodeEnvFile = nodeStyle((c) => (c.replace(/\\n/g, '').includes('\\') ? undefined : c.replace(/\\n/g, '\n')), plainUnquoted);

/**
 * dotenv-expand on a parsed value: refuse anything it would expand; `\$` becomes `$`. Version 12 expands `${...}` and
 * `$NAME` (a letter or `_` first); the older one Next.js's @next/env bundles (`_interpolate`, 15.5) also `$1...` and a
 * `${NAME` with no `}` (its pattern `\${?([\w]+)`): both are refused.
 */
function expand(parsed: string | undefined): string | undefined {
  if (parsed === undefined || /(?<!\\)\$(?:\{[^{}]+\}|\{?\w)/.test(parsed)) return undefined;
  return parsed.replace(/\\\$/g, '$');
}

/** bash/sh `set -a; . ./.env`, held to quoting that leaves nothing to expand. */
const shell: Decode = (text) => {
  if (text[0] === "'") return quotedWithout(text, "'");
  if (text[0] === '"') {
    const content = quotedWithout(text, '"');
    return content === undefined || /[$`\\]/.test(content) ? undefined : content;
  }
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(text) ? text : undefined;
};

/** What Python's str.splitlines ends a line at: django-environ reads the .env one line at a time with it. */
export const PY_LINE_END = /[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]/;

/**
 * django-environ's `read_env` on one line (environ.py): `'...'` taken off, then `"..."`, its `\x` decoded as x;
 * `\n`, `\r`, `\t` in double quotes are refused (0.14 keeps them as written, older versions decoded them as n, r, t),
 * and so is a `#` outside single quotes (where `parse_comments=True` starts a comment).
 */
const djangoParse: Decode = (text) => {
  if (PY_LINE_END.test(text)) return undefined;
  const single = /^'(.*)'$/.exec(text);
  // read_env(parse_comments=True), an option apps set, cuts a value at its first # unless single-quoted
  if (!single && text.includes('#')) return undefined;
  let value = single?.[1] ?? text;
  const double = /^"(.*)"$/.exec(value);
  if (double) {
    if (/\\[rnt]/.test(double[1]!.replace(/\\\\/g, ''))) return undefined;
    value = double[1]!.replace(/\\(.)/g, '$1');
  }
  return value;
};

/** django-environ's `env(NAME)`: a value starting with `$` names another variable; `\$` is `$` with escape_proxy. */
const djangoEnviron: Decode = (text) => {
  const value = djangoParse(text);
  return value === undefined || value.startsWith('$') || value.includes('\\$') ? undefined : value;
};

/** Each reader as the decoders that must all give the value back (vite: both parsers it may use). */
export const MODELS: Record<Reader, Decode[]> = {
  'python-dotenv': [pythonDotenv],
  'node-dotenv': [nodeDotenv],
  'node-env-file': [nodeEnvFile],
  'dotenv-expand': [(t) => expand(nodeDotenv(t))],
  vite: [(t) => expand(nodeDotenv(t)), (t) => expand(nodeEnvFile(t))],
  shell: [shell],
  'django-environ': [djangoEnviron],
};

/** True when `reader` reads `text` (what follows `KEY=`) as exactly `value`. */
export function readsAs(reader: Reader, text: string, value: string): boolean {
  return MODELS[reader].every((decode) => decode(text) === value);
}

/**
 * Each reader as the parsers that must all read `text` as one binding ending where `text` ends, whatever value
 * they make of it: what a reader that does not have to read a variable exactly (`only` in dotenv.readers) still
 * needs, since it parses every line of the file. Interpolation (python-dotenv) and expansion (dotenv-expand)
 * change only the value of the variable they are in, so they are left out; Node's parsers may decode any escape
 * in double quotes; bash runs what it expands, so it still has nothing to expand.
 */
export const STATEMENTS: Record<Reader, Decode[]> = {
  'python-dotenv': [pythonParse],
  'node-dotenv': [nodeStyle((c) => c, plainUnquoted)],
  'node-env-file': [nodeStyle((c) => c, plainUnquoted)],
  'dotenv-expand': [nodeStyle((c) => c, plainUnquoted)],
  vite: [nodeStyle((c) => c, plainUnquoted)],
  shell: [shell],
  'django-environ': [djangoParse],
};

/**
 * True when `reader` reads `text` (what follows `KEY=`, up to the end of the binding) as one binding of that key
 * that ends where `text` ends: it neither reads on into the next line nor leaves part of it to be read as a line
 * of its own (another variable, or a line it skips), so no other variable is changed.
 */
export function keepsStatement(reader: Reader, text: string): boolean {
  return STATEMENTS[reader].every((parse) => parse(text) !== undefined);
}
