// What core/dotenv.ts writes, read back by the REAL parsers (python-dotenv 1.2 and 0.21 from their pinned
// venvs, Node's dotenv 18 and 16, dotenv-expand 12, Node's util.parseEnv, vite 8's loadEnv, bash): every value
// is either read back exactly by every declared reader, or refused. A fixed corpus of hard values, then
// generated ones (fast-check).
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { asString, DEFAULT_READERS, encodeValue, READERS, renderDotenv, type Reader } from '../../core/dotenv.ts';
import { pythonInterpolates } from '../../core/dotenv-readers.ts';
import { OpsError } from '../../core/errors.ts';
import { dotenvDir, PYTHON_DOTENV_VERSIONS, pythonDotenv, readReal } from '../support/real-dotenv.ts';
import { environment } from '../support/dotenv-environment.ts';

/** Hard values: every quote kind, `$` forms, backslashes, `#`, `=`, spaces, tabs, line breaks, Unicode, long. */
export const CORPUS: string[] = [
  '',
  'plain',
  'pa$$w0rd',
  '$HOME',
  'x$HOMEy',
  '$1$2',
  'a$',
  '$',
  '\\$HOME',
  'x${HOME}y',
  '${HOME:-fallback}',
  '${',
  '${}',
  'a}b{c',
  "it's",
  'say "hi"',
  'back`tick`',
  `all three ' " \``,
  `'single quoted'`,
  `"double quoted"`,
  '`backticked`',
  "'",
  '"',
  '`',
  'C:\\path\\new',
  'C:\\path\\n',
  'ends with \\',
  ' needs quotes and ends with \\',
  "'quoted then \\",
  ' ',
  '\\',
  '\\\\',
  '\\n literally',
  '\\r\\t\\a\\b\\f\\v',
  "\\'",
  '\\"',
  'a#b',
  'a #b',
  '#start',
  '# comment-like',
  'key=value=x',
  '=',
  '==start',
  ' leading',
  'trailing ',
  '  both  ',
  '\ttab\tinside\t',
  'two\nlines',
  'trailing newline\n',
  '\nleading newline',
  'crlf\r\nline',
  'lone\rcr',
  '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n',
  'unicode: é ü ß 漢字 😀',
  'nbsp\u00a0inside',
  '\u00a0edge nbsp\u00a0',
  'line\u2028separator',
  'next\x85line',
  'vt\x0bff\x0c',
  'fs\x1cgs\x1d',
  'bom\ufeffinside',
  'postgresql+asyncpg://user:p%40ss$word@db.example.org:5432/app?sslmode=require',
  '{"admin@example.org": "s3cr\\"et", "b": "x$y"}',
  '$(id) `id` ;|&<>*?~!',
  // as teams' secrets come: a BOM a Windows editor left at the start, CRLF line ends, a pasted `export X=...` line,
  // a service account's JSON (its key's line breaks written \n), a value holding another assignment on its next line
  '\ufeffbom at the start',
  'value from a windows editor\r\n',
  '-----BEGIN PRIVATE KEY-----\r\nMIIEvQIBADANBg\r\n-----END PRIVATE KEY-----\r\n',
  'export API_KEY=abc',
  JSON.stringify({ type: 'service_account', private_key: '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n', client_email: 'x@y.iam.gserviceaccount.com' }, null, 2),
  'x\nOTHER=y',
  "x\n'y",
  '#',
  'x'.repeat(20_000),
  // white space to one parser and not another: a BOM at the end (JavaScript's trim() drops U+FEFF, Python's strip()
  // does not), the ideographic space and other Unicode spaces at an end, line and paragraph separators alone
  'ends in a bom\ufeff',
  '\ufeff',
  '\u3000ideographic\u3000',
  '\u2000en quad\u205f',
  '\u2028',
  '\u2029para',
  '\u1680ogham',
  '\u180emongolian',
  'ab$'.repeat(3000) + "'\"".repeat(10),
  // django-environ: a leading `$` is another variable's name; quotes taken off twice (`'"x"'` is x); `\$` (escape_proxy)
  '$DATABASE_URL',
  '$$double',
  `'"both quotes"'`,
  '"\\t"',
  'a\\$b',
  'rs\x1eus\x1f',
  '"a#b"', // django-environ read_env(parse_comments=True) cuts at a # outside single quotes
  // Next.js's @next/env (an older dotenv-expand) expands these too: `$` before a digit, `${NAME` with no `}`
  'pa$1word',
  '${abc',
  'x${A',
];

const READER_SETS: Reader[][] = [DEFAULT_READERS, ...READERS.map((r) => [r]), [...READERS], ['python-dotenv', 'node-dotenv', 'vite'], ['python-dotenv', 'shell'], ['node-dotenv', 'dotenv-expand'], ['node-env-file', 'vite']];

/**
 * Encode `values` for `readers`, write one .env of the accepted ones, read it with every real parser of every
 * declared reader; returns the mismatches ("how: index") and which values were accepted.
 */
async function roundTrip(values: string[], readers: readonly Reader[]): Promise<{ mismatches: string[]; accepted: boolean[] }> {
  const keys: string[] = [];
  const lines = ['# test'];
  const accepted = values.map((v, i) => {
    const e = encodeValue(v, readers);
    if ('refused' in e) return false;
    keys.push(`OPSX_${i}`);
    lines.push(`OPSX_${i}=${e.text}`);
    return true;
  });
  const { dir, remove } = dotenvDir(lines.join('\n') + '\n');
  const mismatches: string[] = [];
  try {
    for (const reader of readers)
      for (const { how, values: read } of await readReal(reader, dir, keys))
        for (const key of keys) {
          const want = values[Number(key.slice(5))];
          if (read[key] !== want) mismatches.push(`${how}: value #${key.slice(5)} ${JSON.stringify(want).slice(0, 80)} read as ${JSON.stringify(read[key])?.slice(0, 80)}`);
        }
  } finally {
    remove();
  }
  return { mismatches, accepted };
}

describe('.env values read back by the real parsers', () => {
  for (const readers of READER_SETS)
    it(`corpus, readers ${readers.join(' + ')}: read back exactly, or refused`, async () => {
      const { mismatches } = await roundTrip(CORPUS, readers);
      expect(mismatches).toEqual([]);
    });

  it('the default readers (python-dotenv + node-dotenv) carry every corpus value but those holding "${...}", or ending in a backslash and needing quotes', async () => {
    const { accepted } = await roundTrip(CORPUS, DEFAULT_READERS);
    expect(CORPUS.filter((_, i) => !accepted[i])).toEqual(['x${HOME}y', '${HOME:-fallback}', '${}', ' needs quotes and ends with \\', "'quoted then \\", `'"both quotes"'`]);
  });

  it("carries a value holding ', \" and ` with no line break, #, or spaces at its ends for Node's parser and vite (unquoted: only a leading quote makes a quoted value), as the real parsers read it", async () => {
    const values = [`a'b"c\`d`, `it's "x" \`y\``, `{"k": 'v', "t": \`x\`}`, `x=1'"\`=`];
    for (const readers of [['vite'], ['node-env-file'], ['python-dotenv', 'node-dotenv', 'vite'], ['node-env-file', 'vite']] as Reader[][]) {
      const { mismatches, accepted } = await roundTrip(values, readers);
      expect(mismatches, readers.join(' + ')).toEqual([]);
      expect(accepted, readers.join(' + ')).toEqual(values.map(() => true));
    }
  });

  it('names the readers a value defeats, and why, without the value', () => {
    const refusal = (v: string, readers: Reader[]) => {
      const e = encodeValue(v, readers);
      if (!('refused' in e)) throw new Error('accepted');
      expect(e.refused.reason).not.toContain(v);
      return e.refused;
    };
    expect(refusal('a${B}c', DEFAULT_READERS)).toEqual({ readers: ['python-dotenv'], reason: expect.stringContaining('python-dotenv replaces "${...}"') });
    expect(refusal(`it's "q"\nx`, DEFAULT_READERS)).toEqual({
      readers: ['python-dotenv', 'node-dotenv'],
      reason: expect.stringMatching(/^no quoting is read the same by python-dotenv and node-dotenv: python-dotenv reads it back only double-quoted with backslash escapes, single-quoted with backslash escapes; node-dotenv only backtick-quoted/),
    });
    expect(refusal('pa$HOME', ['python-dotenv', 'vite'])).toEqual({ readers: ['python-dotenv', 'vite'], reason: expect.stringContaining('no quoting is read the same by python-dotenv and vite') });
    expect(refusal('nul\0', DEFAULT_READERS).reason).toContain('NUL');
    expect(refusal('\r"', ['node-dotenv']).reason).toContain('carriage return only as \\r inside double quotes');
  });

  it("a value Node's parsers cannot carry (no quote kind left) is refused saying what it holds that needs quotes and rules out each quoting, not what such values may hold (was: \"a line break, a #, or spaces at its ends\" for one starting with a quote)", async () => {
    const reason = (v: string, reader: Reader) => {
      const e = encodeValue(v, [reader]);
      if (!('refused' in e)) throw new Error(`accepted for ${reader}`);
      expect(e.refused.reason).not.toContain(v);
      return e.refused.reason;
    };
    const quote = `'x"y\`z`; // a password starting with a quote, on one line, no # and no spaces
    expect(reason(quote, 'node-dotenv')).toMatch(/the value holds ', " and ` together with a quote as its first character$/);
    expect(reason(quote, 'node-env-file')).toMatch(/the value holds ', " and ` together with a quote as its first character$/);
    expect(reason(quote, 'vite')).toContain('together with a quote as its first character');
    expect(reason(`a'b"c\`d #e`, 'node-dotenv')).toMatch(/together with a #$/);
    expect(reason(` a'b"c\`d\u2028`, 'node-dotenv')).toMatch(/together with a Unicode line separator \(U\+2028, U\+2029 or NEL\) and white space at an end$/);
    expect(reason(`a'b"c\`\nd #`, 'node-dotenv')).toMatch(/together with a line break and a #$/);
    // no double quote: a backslash rules double quotes out (Node's parser decodes only \n there; dotenv \n and \r)
    expect(reason("a'`\\x #", 'node-env-file')).toMatch(/the value holds ', a backslash and ` together with a #$/);
    expect(reason("a'`\\n #", 'node-dotenv')).toMatch(/the value holds ', a backslash before n or r and ` together with a #$/);
    // as refused, for a reason: written unquoted, a leading quote makes Node's parser read on into the next line
    const { dir, remove } = dotenvDir(`A=${quote}\nB='b'\n`);
    try {
      expect((await readReal('node-env-file', dir, ['A', 'B']))[0]!.values).toEqual({ A: 'x"y`z\nB=' });
    } finally {
      remove();
    }
  });

  // What the default readers cannot share: python-dotenv decodes backslash escapes in quotes, Node's dotenv
  // decodes none, so a value needing quotes with both quote kinds, or with a backslash in some places, is refused.
  it('with the default readers, printable-ASCII values without "${" are accepted unless they hold a backslash or both quote kinds; >= 99% overall', () => {
    let refused = 0;
    let total = 0;
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i))), maxLength: 30 }), (v) => {
        fc.pre(!v.includes('${'));
        total++;
        if (!('refused' in encodeValue(v, DEFAULT_READERS))) return;
        refused++;
        expect(v.includes('\\') || (v.includes("'") && v.includes('"')), JSON.stringify(v)).toBe(true);
      }),
      { numRuns: 5000 },
    );
    expect(refused / total).toBeLessThan(0.01);
  });

  // Generated values, biased towards what parsers treat specially.
  const special = fc.constantFrom('$', '{', '}', '${', "'", '"', '`', '\\', '#', '=', ' ', '\t', '\n', '\r', '\r\n', 'n', 'r', 'a', 'HOME', ':-', '\u00a0', '\u2028', '\x85', '\x0b', 'é', '😀', '\0', '\ud800');
  const value = fc.string({ unit: fc.oneof({ arbitrary: special, weight: 3 }, { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), weight: 1 }), maxLength: 40 });
  for (const readers of READER_SETS)
    it(`generated values, readers ${readers.join(' + ')}: read back exactly, or refused`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(value, { minLength: 1, maxLength: 60 }), async (values) => {
          const { mismatches } = await roundTrip(values, readers);
          expect(mismatches).toEqual([]);
        }),
        { numRuns: 25 },
      );
    });
});

// Readers limited to a prefix (`only`) still parse every line of the file: whatever their `only`, each line must
// be one statement with the same bounds for every declared reader, so that no value makes any reader see another
// variable or another value of one. Whole files, rendered by renderDotenv, read by the real parsers.
describe('a map or list an env entry takes whole, written as JSON', () => {
  // the JSON of every corpus value as one member (TOOLS_PASSWORDS: e-mail -> password), keys with quotes and backslashes too
  const MAPS = [...CORPUS.map((v) => asString({ 'admin@example.org': v })), asString(Object.fromEntries(CORPUS.slice(0, 40).map((v, i) => [`u${i}'\`\\@x.org`, v]))), asString(CORPUS.slice(0, 40)),
    // as they come: a password holding ' and # (the JSON adds "), one user's ' beside another's #, a backslash beside quotes
    ...[{ a: "it's-#1-password" }, { a: "it's", b: 'p#ss' }, { a: 'back`tick', b: "it's #" }, { a: "C:\\new\\'dir'" }, ["O'Neil", 'x #y']].map(asString)];

  for (const readers of READER_SETS)
    it(`readers ${readers.join(' + ')}: read back exactly, or refused`, async () => {
      expect((await roundTrip(MAPS, readers)).mismatches).toEqual([]);
    });

  it("every reader set carries every one, members holding \"${\", $HOME or $$ too (', `, \\ and $ are \\u escapes in the JSON: the text is single-quoted whatever its members hold), and the app's JSON parsers get the map back", async () => {
    const dollars = [{ 'admin@example.org': 'pa$${HOME}x', 'ops@example.org': '$HOME', 'db@example.org': '\\$PATH $$' }, { 'a${b}': ['${X:-y}', '$1'] }];
    for (const readers of [DEFAULT_READERS, ['python-dotenv', 'dotenv-expand'], [...READERS]] as Reader[][]) {
      const { mismatches, accepted } = await roundTrip([...MAPS, ...dollars.map(asString)], readers);
      expect(mismatches, readers.join(' + ')).toEqual([]);
      expect(accepted.every(Boolean), readers.join(' + ')).toBe(true);
    }
    // the text read back is JSON that Node's and Python's parsers both decode to the secret as stored
    for (const map of dollars) {
      expect(JSON.parse(asString(map))).toEqual(map);
      const py = execFileSync(pythonDotenv(PYTHON_DOTENV_VERSIONS[0]!), ['-c', 'import json, sys; sys.stdout.write(json.dumps(json.loads(sys.argv[1])))', asString(map)], { encoding: 'utf8' });
      expect(JSON.parse(py)).toEqual(map);
    }
  });
});

describe('readers limited to a prefix read every line: no value changes another variable, for any reader', () => {
  /** Values made to end a statement early in one quoting or another and start a line of their own. */
  const HOSTILE = [
    `it's "new"\nAPP_DATABASE_URL=postgres://evil@x/db`,
    `abc'\nVITE_API=https://evil.example`,
    `it's a\nmulti"line`,
    'x`\nSH_A=evil`',
    `a"\nN_A=evil"`,
    `'\nP_A=evil\n'`,
    `"\nX_A=evil\n"`,
    '`\nAPP_DATABASE_URL=evil\n`',
    `it's "both" \`and\`\nVITE_API=evil`,
    'ends with \\',
    'ends with \\\nAPP_DATABASE_URL=evil',
    `a\\'\nVITE_API=evil'`,
    `a\\"\nVITE_API=evil"`,
    'cr\rVITE_API=evil',
    'pa$HOME ${HOME} $(id)',
    '#\nVITE_API=evil #',
    ' spaced \n VITE_API=evil ',
    'u\u2028VITE_API=evil',
  ];
  const VALUES = [...HOSTILE, ...CORPUS];
  const SETUPS: unknown[][] = [
    [{ reader: 'python-dotenv', only: 'APP_' }, { reader: 'vite', only: 'VITE_' }],
    ['python-dotenv', { reader: 'node-dotenv', only: 'N_' }, { reader: 'shell', only: 'SH_' }],
    [{ reader: 'node-env-file', only: 'N_' }, { reader: 'python-dotenv', only: 'P_' }, { reader: 'dotenv-expand', only: 'X_' }],
    [{ reader: 'shell', only: 'SH_' }, { reader: 'vite', only: 'VITE_' }, { reader: 'node-dotenv', only: 'APP_' }],
    [{ reader: 'python-dotenv', only: 'APP_' }, { reader: 'python-dotenv', only: 'P_' }, { reader: 'node-dotenv', only: 'VITE_' }],
    // a Django API reading DJ_* with django-environ, which reads the file one line at a time, beside a Node client
    [{ reader: 'django-environ', only: 'DJ_' }, { reader: 'node-dotenv', only: 'N_' }, { reader: 'python-dotenv', only: 'P_' }],
  ];
  const PREFIXES = ['APP_', 'VITE_', 'N_', 'SH_', 'P_', 'X_', 'DJ_', 'NOTE_'];

  /**
   * Render `env` for `readers` (dropping what is refused: named, never printing any of `secret`), read the file with
   * every declared reader's real parsers: what each got wrong (variables beyond or missing, covered values not
   * exact), and the variables written.
   */
  async function wholeFile(env: Record<string, string>, readers: unknown[], secret: string[]): Promise<{ problems: string[]; keys: string[] }> {
    let rendered: ReturnType<typeof renderDotenv>;
    try {
      rendered = renderDotenv(environment(env, readers), {});
    } catch (e) {
      if (!(e instanceof OpsError)) throw e;
      for (const v of secret) expect(e.message + e.hint).not.toContain(v);
      const refused = [...e.message.matchAll(/^ {2}- (\w+) \(/gm)].map((m) => m[1]!);
      expect(refused.length).toBeGreaterThan(0);
      for (const k of refused) delete env[k];
      rendered = renderDotenv(environment(env, readers), {});
    }
    const keys = Object.keys(env);
    const declared = readers.map((r) => (typeof r === 'string' ? { reader: r as Reader, only: '' } : (r as { reader: Reader; only: string })));
    const { dir, remove } = dotenvDir(rendered.dotenv);
    const problems: string[] = [];
    try {
      for (const reader of new Set(declared.map((d) => d.reader))) {
        const covers = (k: string) => declared.some((d) => d.reader === reader && k.startsWith(d.only));
        for (const { how, values } of await readReal(reader, dir, keys)) {
          const got = Object.keys(values).sort();
          if (JSON.stringify(got) !== JSON.stringify([...keys].sort())) problems.push(`${how} read the variables ${got.filter((k) => !keys.includes(k)).join(', ') || '(none more)'} beyond, and not ${keys.filter((k) => !got.includes(k)).join(', ') || '(none less)'}`);
          for (const k of keys.filter(covers)) if (values[k] !== env[k]) problems.push(`${how}: ${k} read as ${JSON.stringify(values[k])}`);
        }
      }
    } finally {
      remove();
    }
    return { problems, keys };
  }

  for (const readers of SETUPS) {
    const named = readers.map((r) => (typeof r === 'string' ? r : `${(r as { reader: string }).reader} (${(r as { only: string }).only}*)`)).join(' + ');
    it(`${named}: every real parser reads exactly the variables written, and each one it covers exactly`, async () => {
      const env: Record<string, string> = { APP_DATABASE_URL: 'postgres://real@db/app', VITE_API: '/api' };
      for (const p of PREFIXES) VALUES.forEach((v, i) => (env[`${p}${i}`] = v));
      const { problems, keys } = await wholeFile(env, readers, HOSTILE);
      expect(problems).toEqual([]);
      // most values are still carried
      expect(keys.length).toBeGreaterThan(PREFIXES.length * VALUES.length * 0.5);
    });
  }

  it('generated values, each set-up: every real parser reads exactly the variables written, and each one it covers exactly', async () => {
    const piece = fc.constantFrom('$', '${', '}', "'", '"', '`', '\\', '#', '=', ' ', '\t', '\n', '\r', '\r\n', 'a', 'APP_X=', '\nVITE_Y=', '\nN_Z=', '\u2028', '\x85');
    const value = fc.string({ unit: piece, maxLength: 12 });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...SETUPS), fc.array(fc.tuple(fc.constantFrom(...PREFIXES), value), { minLength: 1, maxLength: 30 }), async (readers, vars) => {
        const env: Record<string, string> = { APP_X: 'x', VITE_Y: 'y', N_Z: 'z' };
        vars.forEach(([p, v], i) => (env[`${p}G${i}`] = v));
        expect((await wholeFile(env, readers, [])).problems).toEqual([]);
      }),
      { numRuns: 30 },
    );
  });

  it("the tester's file: a value vite carries only in backticks is refused by name, as python-dotenv would split it", () => {
    const readers = [{ reader: 'python-dotenv', only: 'APP_' }, { reader: 'vite', only: 'VITE_' }];
    const env = { APP_DATABASE_URL: 'postgres://real@db/app', VITE_API: '/api', VITE_MOTD: `it's "new"\nAPP_DATABASE_URL=postgres://evil@x/db`, NOTE: `abc'\nVITE_API=https://evil.example` };
    expect(() => renderDotenv(environment(env, readers), {})).toThrow(
      /^1 \.env value of t cannot .*\n {2}- VITE_MOTD \(a plain value in environment\.yml; read by vite; its line also parsed by python-dotenv\): no quoting suits both vite and python-dotenv: .*python-dotenv, which parses every line of the \.env whatever its `only`/,
    );
    // NOTE, read exactly by no reader, is still written so that both read it as one statement
    const { VITE_MOTD: _, ...rest } = env;
    expect(renderDotenv(environment(rest, readers), {}).dotenv).toContain('NOTE="abc\'\\nVITE_API=https://evil.example"\n');
    // a value only python-dotenv cannot keep whole, for a variable it does not read
    expect(encodeValue(' ends with \\', [], ['python-dotenv'])).toEqual({ refused: { readers: ['python-dotenv'], reason: expect.stringContaining('python-dotenv parses every line of the .env') } });
  });
});

describe("dotenv-expand as Next.js's @next/env (15, 16) bundles it", () => {
  // @next/env 15.5 (loadEnvConfig) reads `A='pa$1word'` as "pa", `'$9'` as "", `'${abc'` as "" and `'x${A'` as "x":
  // its older dotenv-expand (`_interpolate`, pattern `\${?([\w]+)(?::-([^}\\]*))?}?`) expands a `$` before a digit
  // and a `${NAME` lacking its `}`, which dotenv-expand 12 leaves; so they are written with `\$`, which both read as `$`
  // (dotenv-expand 12's reading is checked against the real one in the corpus above).
  it('writes a $ before a digit, or a ${ before a name with no }, as \\$ for dotenv-expand and vite; refused beside python-dotenv, which has no \\$', () => {
    for (const [value, text] of [['pa$1word', "'pa\\$1word'"], ['$9', "'\\$9'"], ['${abc', "'\\${abc'"], ['x${A', "'x\\${A'"], ['a$-b', "'a$-b'"]] as const) {
      expect(encodeValue(value, ['dotenv-expand']), value).toEqual({ text, form: expect.stringContaining('') });
      expect(encodeValue(value, ['vite']), value).toHaveProperty('text', text);
    }
    expect(encodeValue('pa$1word', ['python-dotenv', 'dotenv-expand'])).toEqual({ refused: { readers: ['python-dotenv', 'dotenv-expand'], reason: expect.stringContaining('no quoting is read the same by python-dotenv and dotenv-expand') } });
  });
});

// django-environ (a Django settings module's `environ.Env.read_env()` then `env('NAME')`) has a parser of its own, not
// python-dotenv's: one line at a time, and a value starting with `$` is taken for another variable's name.
describe('django-environ: its line-by-line parser and its proxy', () => {
  const reason = (v: string, readers: Reader[] = ['django-environ']) => {
    const e = encodeValue(v, readers);
    if (!('refused' in e)) throw new Error('accepted');
    expect(e.refused.reason).not.toContain(v);
    expect(e.refused.readers).toEqual(['django-environ']);
    return e.refused.reason;
  };

  it("refuses, saying why, a value starting with $ (its proxy), holding \\$ (escape_proxy) or a line break, as the real django-environ would give the app another value", async () => {
    expect(reason('$PGPASSWORD-x9', ['python-dotenv', 'django-environ'])).toMatch(/^django-environ takes a value starting with \$ for the name of another variable/);
    expect(reason('$$a')).toContain('name of another variable');
    expect(reason('p\\$ss')).toContain('escape_proxy');
    expect(reason('"a#b"')).toContain('parse_comments=True');
    for (const v of ['-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n', 'a\rb', 'form\ffeed', 'nel\x85x', 'ls\u2028x', 'gs\x1dx']) expect(reason(v), JSON.stringify(v)).toContain('one line at a time');
    // a `$` elsewhere, quotes, `#`, backslashes and spaces are carried
    for (const v of ['pa$$w0rd', 'a$HOME', '"x"', `'"x"'`, 'a #b', 'C:\\new\\t', ' both ']) expect(encodeValue(v, ['django-environ']), v).toHaveProperty('text');
    // as refused, for a reason: what the real reader gives the app for each, written as python-dotenv alone would have it
    const lines = [`A=${(encodeValue('$PGPASSWORD-x9', ['python-dotenv']) as { text: string }).text}`, `B=${(encodeValue('x\ny', ['python-dotenv']) as { text: string }).text}`, `C=${(encodeValue('p\\$ss', ['python-dotenv']) as { text: string }).text}`];
    const { dir, remove } = dotenvDir(lines.join('\n') + '\n');
    try {
      const [real] = await readReal('django-environ', dir, ['A', 'B', 'C']);
      expect(real!.values).toEqual({ A: '<ImproperlyConfigured>', B: "'x", C: 'p\\$ss' });
    } finally {
      remove();
    }
  });

  it('a Django environment (dotenv.readers: [django-environ]) refuses such a secret by name before any host is touched, never printing it', () => {
    const env = environment({ DATABASE_PASSWORD: '$ecretStart99', SECRET_KEY: 'k$y-fine' }, ['django-environ']);
    expect(() => renderDotenv(env, {})).toThrow(/^1 \.env value of t cannot .*\n {2}- DATABASE_PASSWORD \(a plain value in environment\.yml; read by django-environ\): django-environ takes a value starting with \$/);
    expect(() => renderDotenv(env, {})).not.toThrow(/ecretStart99/);
  });
});

describe('python-dotenv interpolation, found in linear time (pythonInterpolates)', () => {
  // python-dotenv's own pattern (variables.py _posix_variable), the reference: the same answer on any text.
  const PATTERN = /\$\{[^}:]*(?::-[^}]*)?\}/;

  it('answers as python-dotenv\'s pattern does, on any mix of $ { } : - and text', () => {
    const text = fc.array(fc.constantFrom('$', '{', '}', ':', '-', 'x', '${', ':-', ' '), { maxLength: 40 }).map((parts) => parts.join(''));
    fc.assert(fc.property(text, (value) => pythonInterpolates(value) === PATTERN.test(value)), { numRuns: 5000 });
    for (const [value, expected] of [['${A}', true], ['${A:-b}', true], ['${A:b}', false], ['${A:b} ${C}', true], ['${A', false], ['${:-}', true], ['$${A}', true], ['${A:b}:-}', false]] as const)
      expect(pythonInterpolates(value), value).toBe(expected);
  });

  it('a long value of many "${" and no "}" (a pasted blob) is answered, not rescanned from each "${" (minutes with the pattern)', () => {
    const blob = 'a ${x'.repeat(200_000);
    expect(pythonInterpolates(blob)).toBe(false);
    expect(pythonInterpolates(`${blob}:-}`)).toBe(true);
    // Every form encodeValue weighs asks it (python-dotenv among the readers): carried, as no "${...}" is there.
    expect(encodeValue(blob, DEFAULT_READERS)).toHaveProperty('text');
  });
});
