// Masking covers the parts of structured secrets, in every reporter (terminal, job log, job summary): a URL's
// password as written and percent-decoded, every string of a JSON document, and their JSON-escaped forms; and
// each of those in any URL-encoding (a character as itself or %XX in either hex case, a space also "+").
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ActionsReporter } from '../../core/action.ts';
import { ConsoleReporter, exactForms, exactFormsOf, Masker, maskedParts, MemoryReporter } from '../../core/report.ts';
import fc from 'fast-check';
import { asString, DEFAULT_READERS, encodeValue, READERS, type Reader, renderDotenv } from '../../core/dotenv.ts';
import { environment } from '../support/dotenv-environment.ts';
import { byteDumps, jsonStrings, nodeInspect, percentDecode, percentEscapedChar, printedForms, pythonBytesRepr, pythonRepr, secretParts, urlCredentials } from '../../core/secrets/parts.ts';
import { execFileSync, spawnSync } from 'node:child_process';
import { inspect } from 'node:util';
import { PassThrough } from 'node:stream';

describe('secret parts', () => {
  it("finds a URL's password where urllib.parse does: after the first ':' of what precedes the last '@'", () => {
    expect(urlCredentials('postgresql+asyncpg://app:p%40ss:w@rd@db.example.org:5432/app')).toEqual(['p%40ss:w@rd', 'p@ss:w@rd']);
    expect(urlCredentials('redis://:only-password@cache:6379/0')).toEqual(['only-password', 'only-password']);
    expect(urlCredentials('https://user@example.org/')).toEqual([]);
    expect(urlCredentials('not a url: x:y@z')).toEqual([]);
  });

  it('percent-decodes like urllib.parse.unquote (UTF-8 runs, stray % kept)', () => {
    expect(percentDecode('%C3%A9t%C3%A9 100% %zz %41')).toBe('été 100% %zz A');
  });

  it('reads one percent-encoded character: its UTF-8 bytes as %XX, hex in either case, nothing ill-formed', () => {
    expect(percentEscapedChar('x%C3%ABy', 1)).toEqual(['ë', 6]);
    expect(percentEscapedChar('%c3%Ab', 0)).toEqual(['ë', 6]);
    expect(percentEscapedChar('%F0%9F%94%91', 0)).toEqual(['🔑', 12]);
    expect(percentEscapedChar('%2b', 0)).toEqual(['+', 3]);
    for (const bad of ['%', '%2', '%zz', '%AB', '%C3', '%C3%41', '%C0%80', '%ED%A0%80', '%F5%80%80%80']) expect(percentEscapedChar(bad, 0), bad).toBeUndefined();
  });

  it('lists the strings inside JSON, at any depth, not its keys (nor numbers and booleans, which would shred logs)', () => {
    expect(jsonStrings('{"admin@example.org": "pw-1", "nested": {"list": ["pw-2", 5432, true]}}')).toEqual(['pw-1', 'pw-2']);
    expect(jsonStrings('{not json')).toEqual([]);
    expect(jsonStrings('plain')).toEqual([]);
  });

  it("includes a map member as the .env's JSON writes it (', `, \\ and $ as \\u escapes): an app printing that variable as it got it", () => {
    for (const v of [...PRINTED, 'pa$$word-$HOME-long-2026']) {
      const text = asString({ 'admin@example.org': v });
      const member = text.slice(text.indexOf(':"') + 2, -2);
      expect(secretParts(v), v).toContain(member);
    }
  });

  it('includes JSON-escaped forms and URLs inside JSON', () => {
    const parts = secretParts('{"db": "postgresql://u:s%C3%A9cret@h/db", "quote": "a\\"b", "uni": "pässwörd"}');
    expect(parts).toEqual(expect.arrayContaining(['s%C3%A9cret', 'sécret', 'a"b', 'a\\"b', 'pässwörd', 'p\\u00e4ssw\\u00f6rd']));
  });
});

// Values whose printed forms differ from themselves and from JSON's: quotes of both kinds, a backslash, controls,
// non-ASCII printable and not, an astral character.
const PRINTED = [
  'Pa"ss\\word-long-secret-2026',
  "it's-a-long-secret-2026",
  'both \'and" kinds\\ of quotes',
  'quotes \'"` and ${x} too',
  'tab\tnew\nline\rcr\x07bell\x7fdel',
  'pässwörd\u00a0nbsp\u200bzwsp\u0085nel-🔑-long',
];

/** A secret as password generators make them (the breaker's): a single quote, an ampersand, a space. */
const SHELL_SECRET = "Zq7'Wx9&vLm3 pR8";

/** What `program` prints for each of PRINTED (read as JSON on its stdin), one line each. */
function printedBy(command: string, args: string[]): string[] {
  return execFileSync(command, args, { input: JSON.stringify(PRINTED), encoding: 'utf8' }).split('\n').slice(0, PRINTED.length);
}

describe('secrets as programs print them quoted (the real printers: python3, node, bash)', () => {
  const inner = (quoted: string) => quoted.replace(/^b?(['"`])([\s\S]*)\1$/, '$2');

  it("Python's repr() of str, as CPython writes it (the tester's leak: a value with \" and \\ printed by ops logs)", () => {
    const reprs = printedBy('python3', ['-c', 'import json,sys\nfor v in json.load(sys.stdin): print(repr(v))']);
    PRINTED.forEach((v, i) => expect(pythonRepr(v), reprs[i]).toBe(inner(reprs[i]!)));
    expect(reprs[0]).toBe(`'Pa"ss\\\\word-long-secret-2026'`);
  });

  it("Python's repr() of the value's UTF-8 bytes", () => {
    const reprs = printedBy('python3', ['-c', 'import json,sys\nfor v in json.load(sys.stdin): print(repr(v.encode()))']);
    PRINTED.forEach((v, i) => expect(pythonBytesRepr(v), reprs[i]).toBe(inner(reprs[i]!)));
  });

  it("Node's util.inspect", () => {
    PRINTED.forEach((v) => expect(nodeInspect(v)).toBe(inner(inspect(v))));
  });

  it("a word as shells quote it (the real quoters: bash's xtrace, ${v@Q}, printf %q, declare -p; Python's shlex.quote): each, between its quotes, is one of its printed forms", () => {
    const words = [...PRINTED.filter((v) => /^[\x20-\x7e]*$/.test(v)), SHELL_SECRET, 'a~b#c=d:e,f%g+h@i!j$k`l"m\\n{o}p[q]r*s?t^u|v;w<x>y(z)_.-/'];
    const shlex = execFileSync('python3', ['-c', 'import json, shlex, sys\nfor v in json.load(sys.stdin): print(shlex.quote(v))'], { input: JSON.stringify(words), encoding: 'utf8' }).split('\n');
    const quoted = words.map((v, i) => {
      const bash = spawnSync('bash', ['--norc', '--noprofile', '-c', 'printf "%s\\n" "${V@Q}"; printf "%q\\n" "$V"; declare -p V; set -x; : "$V"'], { env: { PATH: process.env.PATH, V: v }, encoding: 'utf8' });
      const [atQ, q, declared] = bash.stdout.split('\n');
      const trace = bash.stderr.trim().replace(/^\+ : /, '');
      return [v, [atQ!, q!, declared!.replace(/^declare -x V=/, ''), trace, shlex[i]!]] as const;
    });
    const inner = (q: string) => q.replace(/^(['"])([\s\S]*)\1$/, '$2');
    for (const [v, forms] of quoted) for (const q of forms) expect([v, ...printedForms(v)], `${v}: ${q}`).toContain(inner(q));
    // The breaker's secret: each quoter writes it otherwise.
    expect(new Set(quoted.find(([v]) => v === SHELL_SECRET)![1].map(inner)).size).toBe(4);
  });

  it("a word holding a control character or beyond ASCII as bash quotes it $'...' (${v@Q}, printf %q, declare -p, set -x; UTF-8 and C locales): between $' and ', one of its printed forms, and masked in a line", () => {
    const words = [...PRINTED, 'Zq7\tWx9-vLm3-pR8-long', "esc\x1b[31m'q\"\\z\x01\v\f\b-long", 'x\u2028ls\ufeffbom🔑\u0378-long', 'päss-wörd-long-2026'];
    let checked = 0;
    for (const v of words)
      for (const locale of ['C.UTF-8', 'C']) {
        const bash = spawnSync('bash', ['--norc', '--noprofile', '-c', 'printf "%s\\n" "${V@Q}"; printf "%q\\n" "$V"; declare -p V; set -x; : "$V"'], { env: { PATH: process.env.PATH, V: v, LC_ALL: locale }, encoding: 'utf8' });
        const lines = [...bash.stdout.split('\n'), bash.stderr.trim()].map((l) => l.replace(/^(?:declare -x V=|\+ : )/, '')).filter((l) => l.startsWith("$'"));
        for (const q of lines) {
          expect(printedForms(v), `${JSON.stringify(v)} ${locale}: ${q}`).toContain(q.slice(2, -1));
          const runner = new MemoryReporter();
          runner.mask(v);
          expect(runner.redact(`+ curl_stub --password ${q} https://x`)).toBe("+ curl_stub --password $'***' https://x");
          checked += 1;
        }
      }
    expect(checked).toBeGreaterThan(30);
  });

  it('masks a secret base64-encoded inside what a log shows (curl -v\'s Basic auth of user:password, a docker auth field, a JWT payload), at every alignment, in both alphabets, as the hosts do and the runner does', () => {
    const secret = 'Zq7-Wx9&vLm3 pR8?ü';
    const encoded = [
      Buffer.from(`ci:${secret}`).toString('base64'), // Authorization: Basic
      Buffer.from(`deploy-user:${secret}`).toString('base64'),
      Buffer.from(`{"sub":"x","pw":"${secret}"}`).toString('base64url'), // a JWT payload
      Buffer.from(secret).toString('base64'),
    ];
    const runner = new MemoryReporter();
    runner.mask(secret);
    const forms = exactForms(maskedParts(secret)).sort((a, b) => b.length - a.length);
    for (const e of encoded) {
      const line = `> Authorization: Basic ${e}`;
      for (const masked of [runner.redact(line), forms.reduce((out, f) => out.split(f).join('***'), line)]) {
        expect(masked, e).toContain('***');
        // what is left of the encoding around the mask decodes to no more than 2 characters of the secret
        const left = masked.replace('> Authorization: Basic ', '').split('***');
        expect(left.join('').length, `${e} -> ${masked}`).toBeLessThanOrEqual(e.length - (secret.length * 4) / 3 + 8);
      }
    }
    // too short to mask on its own (a weak value), its base64 is no form either
    expect(maskedParts('short1').some((p) => /^[A-Za-z0-9+/_-]{8,}$/.test(p) && p !== 'short1')).toBe(false);
  });

  it('masks a secret quoted for a shell inside a command line, as the hosts do (their masks file) and the runner does', () => {
    const lines = [
      `running: curl -u 'ci:Zq7'"'"'Wx9&vLm3 pR8'`, // shlex.quote("ci:" + token)
      `+ curl_stub --header 'Authorization: Bearer Zq7'\\''Wx9&vLm3 pR8'`, // set -x
      'curl -u ci:Zq7\\\'Wx9\\&vLm3\\ pR8', // printf %q
      'declare -x API_TOKEN="a\\"b\\$c\\`d-Zq7-long"', // declare -p
    ];
    const runner = new MemoryReporter();
    runner.mask(SHELL_SECRET);
    runner.mask('a"b$c`d-Zq7-long');
    const masked = lines.map((l) => runner.redact(l));
    expect(masked).toEqual([`running: curl -u 'ci:***'`, `+ curl_stub --header 'Authorization: Bearer ***'`, 'curl -u ci:***', 'declare -x API_TOKEN="***"']);
    const forms = exactForms([...maskedParts(SHELL_SECRET), ...maskedParts('a"b$c`d-Zq7-long')]);
    expect(lines.map((l) => [...forms].sort((a, b) => b.length - a.length).reduce((out, f) => out.split(f).join('***'), l))).toEqual(masked);
  });

  it("masks a secret with its quotes doubled, as the real quoters write it: SQLite's quote() (SQL literals), PyYAML's and sops's (go-yaml) single-quoted scalars, Python's csv fields; in the runner and on the hosts", () => {
    const secrets = ["it's: Zq7Wx9-vLm3", "-Zq7'Wx9&vLm3 pR8", 'say "hi", Zq7Wx9vLm3', "back\\slash'Zq7Wx9-long", "'lead Zq7Wx9-vLm3"];
    const python = execFileSync(
      'python3',
      ['-c', 'import csv, json, sqlite3, sys, yaml\nvals = json.load(sys.stdin)\ndb = sqlite3.connect(":memory:")\nfor v in vals:\n  print("STATEMENT: ALTER ROLE app PASSWORD " + db.execute("select quote(?)", (v,)).fetchone()[0])\n  print(yaml.safe_dump({"password": v}, width=1000).strip())\n  csv.writer(sys.stdout, lineterminator="\\n").writerow(["app", v])'],
      { input: JSON.stringify(secrets), encoding: 'utf8' },
    ).trim().split('\n');
    // sops decrypt (go-yaml's writer) of a file holding them: what a hook running `sops decrypt` would print
    const sops = sopsDecrypted('ops-doubled-', (plain) => writeFileSync(plain, secrets.map((v, i) => `k${i}: ${JSON.stringify(v)}\n`).join('')));
    const lines = [...python, ...sops];
    // the real printers did double a quote (else this test checks nothing new)
    expect(lines.filter((l) => /''[^']|""/.test(l)).length).toBeGreaterThanOrEqual(8);
    expectMaskedBoth(secrets, lines, /Zq7|Wx9|vLm3|slash|hi/);
  });

  it('masks no printed form of a value too short to mask (README "Weak values"), however long the form', () => {
    const m = new Masker();
    for (const v of ['é1', 'a\\', "'\n"]) m.add(v);
    const line = `bytes \\xc3\\xa91 json "a\\\\" repr '\\'\\n' ${inspect("'\n")}`;
    expect(m.redact(line)).toBe(line);
  });

  it('masks each of them in a log line, in every reporter, and hands each to GitHub add-mask', () => {
    const python = printedBy('python3', ['-c', 'import json,sys\nfor v in json.load(sys.stdin): print({"secret_key": v}, v.encode())']);
    const lines = [...python, ...PRINTED.map((v) => `console.log: ${inspect({ secret: v })}`)];
    const reporter = new MemoryReporter();
    for (const v of PRINTED) reporter.mask(v);
    for (const l of lines) reporter.info(l);
    for (const [i, l] of reporter.lines.entries()) expect(l, lines[i]).not.toMatch(/long|secret-2026|kinds|pässw|tab/);
    const written: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (written.push(String(chunk)), true));
    try {
      const actions = new ActionsReporter();
      actions.mask(PRINTED[0]!);
    } finally {
      spy.mockRestore();
    }
    const masks = written.join('').split('\n').filter((l) => l.startsWith('::add-mask::')).map((l) => l.slice('::add-mask::'.length).replace(/%25/g, '%'));
    expect(masks).toContain('Pa"ss\\\\word-long-secret-2026');
  });

  it('masks a secret printed as hex (bytes.hex(), binascii.hexlify().upper(), xxd -p, hexdump, Buffer hex) and case-folded (SQL identifiers, upper-cased dumps); in the runner and on the hosts', () => {
    const secrets = ['Zq7Wx9-vLm3pR8', 'pässwört-Zq7Wx9', "it's Zq7 'Wx9'"];
    const python = execFileSync(
      'python3',
      ['-c', 'import binascii, json, sys\nfor v in json.load(sys.stdin):\n  b = v.encode()\n  print("hex", b.hex()); print("HEX", binascii.hexlify(b).upper().decode()); print("dump 00ff" + b.hex() + "0a"); print("role", v.lower(), "HEADER:", v.upper())'],
      { input: JSON.stringify(secrets), encoding: 'utf8' },
    ).trim().split('\n');
    const tools = secrets.flatMap((v) => [
      execFileSync('xxd', ['-p'], { input: v, encoding: 'utf8' }).trim(),
      execFileSync('hexdump', ['-v', '-e', '/1 "%02X"'], { input: `\x01${v}\x02`, encoding: 'utf8' }),
      `node ${Buffer.from(v).toString('hex')}`,
    ]);
    const lines = [...python, ...tools];
    const tells = new RegExp(secrets.flatMap((v) => [Buffer.from(v).toString('hex').slice(4, 16), 'zq7wx9', 'ZQ7WX9', 'zq7 \'wx9', 'ZQ7 \'WX9']).join('|'), 'i');
    for (const line of lines) expect(line, line).toMatch(tells);
    expectMaskedBoth(secrets, lines, tells);
    // a weak value has no hex or case forms: common text stays
    const weak = new Masker();
    for (const v of ['Password', 'abc12']) weak.add(v);
    const plain = `role password PASSWORD ${Buffer.from('Password').toString('hex')} ${Buffer.from('abc12').toString('hex')}`;
    expect(weak.redact(plain)).toBe(plain);
  });

  it("masks a secret's bytes as programs show them (Node's <Buffer 5a 71 …> and JSON of a Buffer, Python's bytes.hex(':'), list(b)), a hex key's decoded bytes, and a long secret piped to a wrapping base64 (GNU base64, openssl base64, base64.encodebytes); in the runner and on the hosts", () => {
    const hexKey = '9a7e992a8e71089408b8c86bf87fc5dd2c8b57b5b94a61d1a2158ab3e48d1744'; // secrets.token_hex(32)
    const pem = ['-----BEGIN OPENSSH PRIVATE KEY-----', 'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW', 'QyNTUxOQAAACBvZW1hc2tpbmctdGVzdC1rZXktbm90LWEtcmVhbC1vbmUAAAAAAAAAAA==', '-----END OPENSSH PRIVATE KEY-----', ''].join('\n');
    const secrets = ['Zq7Wx9-vLm3pR8tY2-uV4', 'pässwört-Zq7Wx9', 'postgresql://app:Zq7Wx9$vLm3"pR8@db.internal:5432/app?sslmode=require&application_name=web', hexKey, pem];
    const node = execFileSync(
      'node',
      ['-e', 'const vs = JSON.parse(require("fs").readFileSync(0, "utf8")); for (const v of vs) { console.log(Buffer.from(v)); console.log(JSON.stringify({ key: Buffer.from(v) })); if (/^[0-9a-f]+$/.test(v)) { console.log(Buffer.from(v, "hex")); console.log(Buffer.from(v, "hex").toString("base64")); } }'],
      { input: JSON.stringify(secrets), encoding: 'utf8' },
    ).trim().split('\n');
    const python = execFileSync(
      'python3',
      ['-c', 'import base64, json, sys\nfor v in json.load(sys.stdin):\n  b = v.encode(); print(b.hex(":")); print(b.hex("-")); print(b.hex(":").upper()); print(list(b))\n  if all(c in "0123456789abcdef" for c in v): print(bytes.fromhex(v)); print(bytes.fromhex(v).hex(" "))\n  print(base64.encodebytes(b).decode())'],
      { input: JSON.stringify(secrets), encoding: 'utf8' },
    ).trim().split('\n');
    const tools = secrets.flatMap((v) => [...execFileSync('base64', { input: v, encoding: 'utf8' }).split('\n'), ...execFileSync('openssl', ['base64'], { input: v, encoding: 'utf8' }).split('\n')]);
    const lines = [...node, ...python, ...tools].filter((l) => l.trim());
    const runner = new MemoryReporter();
    for (const v of secrets) runner.mask(v);
    const forms = [...new Set(secrets.flatMap((v) => exactFormsOf(v)))].sort((a, b) => b.length - a.length);
    const shown = (s: string) => s.replace(/\*\*\*/g, '').replace(/^<Buffer|\.\.\. \d+ more bytes>$|^\{"key":\{"type":"Buffer","data":\[|\]\}\}$|^b'|'$|[[\]>]/g, '').trim();
    for (const line of lines.filter((l) => shown(l).length >= 8)) {
      for (const masked of [runner.redact(line), forms.reduce((out, f) => out.split(f).join('***'), line)]) {
        expect(masked, line).toContain('***');
        expect(shown(masked).length, `${line}\n${masked}`).toBeLessThan(8);
      }
    }
    expect(lines.filter((l) => l.startsWith('<Buffer')).length).toBe(secrets.length + 1);
    expect(lines.filter((l) => /^[A-Za-z0-9+/=]{64}$/.test(l)).length).toBeGreaterThanOrEqual(4); // openssl's wrapped lines
    // a weak value has none of these forms: its bytes stay shown, and a dump holding it is no dump of it
    const weak = new Masker();
    for (const v of ['abc12', '2024', 'beef12']) weak.add(v);
    const plain = `${inspect(Buffer.from('abc12'))} ${Buffer.from('abc12').toString('hex').match(/../g)!.join(':')} 20:24:be:ef:12:00 [32, 36, 190, 239]`;
    expect(weak.redact(plain)).toBe(plain);
  });

  it('masks a value with control or non-ASCII characters in YAML double quotes (\\e \\N \\_ \\L \\P \\x.. \\u....): PyYAML with and without allow_unicode, sops decrypt (go-yaml); in the runner and on the hosts', () => {
    const secrets = ['esc\x1b[0m-Zq7Wx9\x00nul', 'pässwörd\u00a0Zq7Wx9\u0085nel-🔑\x1b', 'ls\u2028Zq7Wx9\u2029ps\x07bell', 'tab\tZq7Wx9\x7fdel-vLm3'];
    const python = execFileSync(
      'python3',
      ['-c', 'import json, sys, yaml\nfor v in json.load(sys.stdin):\n  print(yaml.dump({"password": v}, width=1000).strip()); print(yaml.dump({"password": v}, width=1000, allow_unicode=True).strip())'],
      { input: JSON.stringify(secrets), encoding: 'utf8' },
    ).trim().split('\n');
    // the plain file as PyYAML writes it (JSON's text would leave DEL, NEL and LS raw, which go-yaml refuses)
    const sops = sopsDecrypted('ops-yaml-dq-', (plain) =>
      execFileSync('python3', ['-c', 'import json, sys, yaml\nyaml.safe_dump({f"k{i}": v for i, v in enumerate(json.load(sys.stdin))}, open(sys.argv[1], "w"))', plain], { input: JSON.stringify(secrets) }));
    const lines = [...python, ...sops];
    // the real printers did write YAML escapes (else this test checks nothing new)
    expect(lines.filter((l) => /\\[eN_LPxu0a]/.test(l)).length).toBeGreaterThanOrEqual(10);
    expectMaskedBoth(secrets, lines, /Zq7|nul|nel|bell|vLm3/);
  });

  it("masks a secret as the release's .env writes it (its escapes: \\\" \\\\ \\' \\n \\r \\$, a tab or control character left raw beside them, which no other printer writes so): a build or hook that prints the .env; in the runner and on the hosts", () => {
    // each read by the reader that makes the writer escape it; a tab or lone carriage return beside the escapes
    const cases: [string, Reader[]][] = [
      ['Zq7\tWx9vLm3pR"\'', ['python-dotenv']],
      ['Zq7Wx9\rvLm3pR\tEf6Gh5', DEFAULT_READERS],
      ['Zq7Wx9\t$vLm3pR\rEf6Gh5', ['dotenv-expand']],
      ['Zq7Wx9\t`$vLm3pR\'" Ef6Gh5', ['dotenv-expand']],
    ];
    const written = cases.map(([v, readers], i) => renderDotenv(environment({ [`K${i}`]: { secret: `s${i}` } }, readers), { [`s${i}`]: v }));
    // the writer did escape them (else this test checks nothing new)
    expect(written.map((w) => Object.values(w.forms)[0])).toEqual(['double-quoted with backslash escapes', 'double-quoted with \\n for line breaks', 'double-quoted with \\n and \\$', 'unquoted with \\$']);
    expectMaskedBoth(cases.map(([v]) => v), written.flatMap((w) => w.dotenv.split('\n').slice(1, -1)), /Zq7|vLm3|Ef6G/);
  });

  it("masks every value the .env carries as the .env writes it, for every reader set (generated values of quotes, backslashes, $, line breaks, tabs, control and non-ASCII characters)", () => {
    const pieces = ['Zq7Wx9', 'vLm3pR', "'", '"', '`', '\\', '$', '\t', '\n', '\r', '\x1b', '\x7f', 'é', '😀', '#', ' ', '{', '}', 'n', '\u2028', '\x85', '\x0b'];
    const sets: Reader[][] = [DEFAULT_READERS, ...READERS.map((r) => [r]), ['python-dotenv', 'node-dotenv', 'vite'], ['python-dotenv', 'shell']];
    const leaks: string[] = [];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...pieces), { minLength: 3, maxLength: 10 }), (parts) => {
        const v = `Ab8Cd7${parts.join('')}Ef6Gh5`;
        const masker = new Masker();
        masker.add(v);
        // the hosts' masks: exact forms, one line at a time
        // (core/steps/masks.ts; and the value's own lines, which sh/mask.sh release_forms reads from its environ)
        const lines = v.split('\n').map((l) => l.trim()).filter((l) => l.length >= 3);
        const forms = [...exactFormsOf(v).filter((f) => !/[\r\n]/.test(f)), ...lines].sort((a, b) => b.length - a.length);
        const hosts = (text: string) => text.split('\n').map((line) => forms.reduce((out, f) => out.split(f).join('***'), line)).join('\n');
        for (const readers of sets) {
          const e = encodeValue(v, readers);
          if ('refused' in e) continue;
          // what is left between the *** of the masked text: none of the value's letters and digits in a run
          for (const [who, masked] of [['runner', masker.redact(e.text)], ['hosts', hosts(e.text)]])
            if (/[A-Za-z0-9]{6}/.test(masked!.split('***').join(' '))) leaks.push(`${who}, ${readers.join('+')}: ${JSON.stringify(e.text)}`);
        }
      }),
      { numRuns: 1500, seed: 75 },
    );
    expect(leaks.slice(0, 5)).toEqual([]);
  });
});

/**
 * What the real `sops decrypt` (go-yaml's writer) prints of a file encrypted by the real sops to a fresh age key:
 * its lines. `writePlain(path)` writes the plain YAML there first.
 */
function sopsDecrypted(prefix: string, writePlain: (path: string) => void): string[] {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const key = join(dir, 'key.txt');
  execFileSync('age-keygen', ['-o', key], { stdio: 'ignore' });
  const recipient = /age1[0-9a-z]+/.exec(readFileSync(key, 'utf8'))![0];
  writePlain(join(dir, 'plain.yaml'));
  const env = { PATH: process.env.PATH, HOME: dir, SOPS_AGE_KEY_FILE: key };
  writeFileSync(join(dir, 'secrets.sops.yaml'), execFileSync('sops', ['encrypt', '--age', recipient, 'plain.yaml'], { env, cwd: dir, encoding: 'utf8' }));
  return execFileSync('sops', ['decrypt', 'secrets.sops.yaml'], { env, cwd: dir, encoding: 'utf8' }).trim().split('\n');
}

/** Each line, masked by the runner (Masker) and by the hosts' exact forms alike, shows *** and nothing `forbidden` matches. */
function expectMaskedBoth(secrets: string[], lines: string[], forbidden: RegExp): void {
  const runner = new MemoryReporter();
  for (const v of secrets) runner.mask(v);
  const forms = [...new Set(secrets.flatMap((v) => exactForms(maskedParts(v))))].sort((a, b) => b.length - a.length);
  for (const line of lines) {
    for (const masked of [runner.redact(line), forms.reduce((out, f) => out.split(f).join('***'), line)]) {
      expect(masked, line).toContain('***');
      expect(masked, line).not.toMatch(forbidden);
    }
  }
}

const DB = 'postgresql+asyncpg://app_local:s3cr%40t-Pw@10.230.0.1:5432/app_local';
const PASSWORDS = JSON.stringify({ 'admin@example.org': 'adm1n "pass"', 'ops@example.org': 'ops-pässword' });
const LEAKS = [
  `url ${DB}`,
  'password s3cr%40t-Pw decoded s3cr@t-Pw',
  `map ${PASSWORDS}`,
  'admin adm1n "pass" ops ops-pässword',
  'json.dumps: "adm1n \\"pass\\"" "ops-p\\u00e4ssword"',
].join('\n');
const MASKED = ['url ***', 'password *** decoded ***', 'map ***', 'admin *** ops ***', 'json.dumps: "***" "***"'].join('\n');

describe('reporters mask the parts of structured secrets', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    delete process.env.GITHUB_STEP_SUMMARY;
  });

  it('the CLI (terminal reporter)', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c) => (text += String(c)));
    const r = new ConsoleReporter(out, out, { color: false });
    r.mask(DB);
    r.mask(PASSWORDS);
    r.info(LEAKS);
    expect(text).toBe(`${MASKED}\n`);
  });

  it('the job log (add-mask for every part) and the job summary', async () => {
    const written: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    const summary = join(mkdtempSync(join(tmpdir(), 'ops-summary-')), 'summary.md');
    writeFileSync(summary, '');
    process.env.GITHUB_STEP_SUMMARY = summary;
    const r = new ActionsReporter();
    r.mask(DB);
    r.mask(PASSWORDS);
    r.info(LEAKS);
    await r.summary(LEAKS);
    const log = written.join('');
    // Workflow commands escape % as %25 (the runner unescapes them).
    for (const part of ['s3cr%40t-Pw', 's3cr@t-Pw', 'adm1n "pass"', 'ops-pässword', 'ops-p\\u00e4ssword']) expect(log).toContain(`::add-mask::${part.replace(/%/g, '%25')}\n`);
    expect(log).toContain(MASKED.split('\n')[1]);
    expect(log.split('\n').filter((l) => !l.startsWith('::add-mask::')).join('\n')).not.toMatch(/s3cr|adm1n|pässword/);
    // the summary is Markdown: each mask written \*\*\* there, so it shows as *** (markdownMasks)
    expect(readFileSync(summary, 'utf8').trim()).toBe(MASKED.replace(/\*\*\*/g, '\\*\\*\\*'));
  });

  it("the job log's add-mask also gets the URL-encoded forms encoders write (GitHub masks exact strings only)", () => {
    const written: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    new ActionsReporter().mask("p@ss wörd/x!");
    const masks = written.join('').split('\n').filter((l) => l.startsWith('::add-mask::')).map((l) => l.slice('::add-mask::'.length).replace(/%25/g, '%'));
    // Python's quote(safe=''), quote() ("/" kept), encodeURIComponent, and each with "+" for a space (quote_plus).
    for (const form of ['p%40ss%20w%C3%B6rd%2Fx%21', 'p%40ss%20w%C3%B6rd/x%21', 'p%40ss%20w%C3%B6rd%2Fx!', 'p%40ss+w%C3%B6rd%2Fx%21', 'p%40ss+w%C3%B6rd/x%21'])
      expect(masks).toContain(form);
    expect(masks).toContain('p@ss wörd/x!');
    expect(new Set(masks).size).toBe(masks.length);
  });

  it('the in-memory reporter (JSON output, tests)', () => {
    const r = new MemoryReporter();
    r.mask(DB);
    r.mask(PASSWORDS);
    r.info(LEAKS);
    expect(r.text()).toBe(MASKED);
  });
});

describe('masking with many secrets (a large encrypted data file: every value of thousands of users)', () => {
  // The rule, written the obvious way: every occurrence of every secret in the text as it is, a stretch of
  // overlapping ones as one ***; then a secret holding "*" that the *** completed, longest first.
  const obvious = (secrets: string[], text: string) => {
    const spans = secrets.flatMap((s) => [...text.matchAll(new RegExp(`(?=${s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')})`, 'g'))].map((m) => [m.index, m.index + s.length] as const)).sort((x, y) => x[0] - y[0]);
    let out = '';
    let copied = 0;
    for (let k = 0; k < spans.length; ) {
      let to = spans[k]![1];
      out += `${text.slice(copied, spans[k]![0])}***`;
      for (k++; k < spans.length && spans[k]![0] < to; k++) to = Math.max(to, spans[k]![1]);
      copied = to;
    }
    out += text.slice(copied);
    return secrets.filter((s) => s.includes('*')).sort((a, b) => b.length - a.length).reduce((o, s) => o.split(s).join('***'), out);
  };

  it('hides exactly what every secret covers in the text as it is (overlapping ones as one ***), then a secret holding "*" the *** completes', () => {
    const secrets = ['abc', 'abcdefghijk', 'defghijklmn', 'user1@example.org', 'user12@example.org', 'pw*x', '**a', 'zz*', 'Zoë Ñandú', 'xyz', 'xyzxyzxyzxyz'];
    const m = new Masker();
    for (const s of secrets) m.add(s);
    let seed = 7;
    const pick = <T,>(xs: T[]): T => xs[(seed = (seed * 1103515245 + 12345) % 2 ** 31) % xs.length]!;
    const pieces = [...secrets, ...secrets.map((s) => s.slice(1)), ...secrets.map((s) => s.slice(0, -1)), ' ', '*', 'a', 'user', 'é', 'xy'];
    for (let n = 0; n < 3000; n++) {
      // inside a line ("#" at its ends): a fold's piece of a secret, at a line's end, is hidden too (hidePieces' test)
      const text = `#${Array.from({ length: 1 + (n % 9) }, () => pick(pieces)).join('')}#`;
      expect(m.redact(text), text).toBe(obvious(secrets, text));
    }
  });

  it('hides two secrets printed together where one ends with the start of the other, whole: neither shows its rest', () => {
    const m = new Masker();
    m.add('Zq7Wx9vLm3pR8tY2');
    m.add('tY2-abcdefghijklmnop');
    m.add('Zq7Wx9vLm3'); // a value equal to another's start
    expect(m.redact('key=Zq7Wx9vLm3pR8tY2-abcdefghijklmnop; id=Zq7Wx9vLm3 rest')).toBe('key=***; id=*** rest');
  });

  it('keeps a log line cheap with 30 000 secrets', () => {
    const m = new Masker();
    for (let i = 0; i < 10_000; i++) {
      m.add(`user${i}@example.org`);
      m.add(`User Number ${i}`);
      m.add(`pw-${i}-${(i * 7919).toString(36)}-secret`);
    }
    const started = Date.now();
    const lines: string[] = [];
    for (let i = 0; i < 2000; i++) lines.push(m.redact(`created user user${i}@example.org (User Number ${i}) with role user`));
    const ms = Date.now() - started;
    expect(lines[5]).toBe('created user *** (***) with role user');
    expect(lines[1999]).toBe('created user *** (***) with role user');
    expect(ms).toBeLessThan(1500); // one by one over every secret: about 15 s
  });
});

describe('masking a secret in its URL-encodings (each character as itself or %XX in either hex case, a space also "+")', () => {
  // The tester's case: the secret is a database URL whose password, Sëcr%t@Pw#1 $x, is percent-encoded in it.
  // The expected forms were printed by Python 3.11 (urllib.parse) and SQLAlchemy 2.1.9, not derived here.
  const URL_SECRET = 'postgresql+psycopg://app:S%C3%ABcr%25t%40Pw%231%20%24x@db.example.org:5432/app';
  const forms = {
    // make_url(URL_SECRET).render_as_string(hide_password=False): the space left as it is
    sqlalchemy: 'postgresql+psycopg://app:S%C3%ABcr%25t%40Pw%231 %24x@db.example.org:5432/app',
    quoteSafeNone: 'S%C3%ABcr%25t%40Pw%231%20%24x', // quote(pw, safe='')
    quoteSafeSlashSpace: 'S%C3%ABcr%25t%40Pw%231 %24x', // quote(pw, safe='/ ')
    quotePlus: 'S%C3%ABcr%25t%40Pw%231+%24x', // quote_plus(pw)
    lowerHex: 'S%c3%abcr%25t%40Pw%231%20%24x', // quote(pw, safe='') with its hex digits lowercased
    mixedHex: 'S%c3%ABcr%25t%40Pw%231%20%24x',
    literalPlus: 'Sëcr%t@Pw#1+$x', // the password as written, its space as "+"
    // quote(URL_SECRET, safe=''): the URL encoded once more, so its password twice
    urlQuoted: 'postgresql%3A%2F%2Fapp%3AS%25C3%25ABcr%2525t%2540Pw%25231%2520%2524x%40db%2Fapp',
  };

  const redacted = (line: string) => {
    const r = new MemoryReporter();
    r.mask(URL_SECRET);
    r.info(line);
    return r.text();
  };

  it("masks SQLAlchemy's rendering of the URL (the tester's leak, as `ops logs` printed it)", () => {
    expect(redacted(`INFO sqlalchemy.engine connecting to ${forms.sqlalchemy} (pool_size=5)`)).toBe('INFO sqlalchemy.engine connecting to postgresql+psycopg://app:***@db.example.org:5432/app (pool_size=5)');
  });

  for (const [name, form] of Object.entries(forms).filter(([n]) => n !== 'sqlalchemy' && n !== 'urlQuoted'))
    it(`masks the password as ${name} writes it, inside a log line`, () => {
      expect(redacted(`[app] db password=${form}; retrying`)).toBe('[app] db password=***; retrying');
    });

  it('masks the URL encoded once more (its password then encoded twice)', () => {
    expect(redacted(`next=${forms.urlQuoted}&x=1`)).not.toMatch(/S%25C3|Pw%2523/);
  });

  it('leaves near misses alone: another last character, and "+" written as %2B (a plus, not a space)', () => {
    for (const near of ['S%C3%ABcr%25t%40Pw%231%20%24y', 'S%C3%ABcr%25t%40Pw%231%2B%24x', 'S%C3%ABcr%25t%40Pw%231%20%24', 'S%C3%ABcr%25t%40Pw%231%2%24x'])
      expect(redacted(`password=${near} end`)).toBe(`password=${near} end`);
  });

  it('masks the encodings of every secret, not only of URL passwords', () => {
    const r = new MemoryReporter();
    r.mask('tøken with spaces/&=?');
    r.info('a tøken+with+spaces%2F%26%3D%3F b'); // quote_plus
    r.info('a t%C3%B8ken%20with%20spaces%2F%26%3D%3F b'); // encodeURIComponent
    r.info('a t%c3%b8ken with spaces/%26%3d%3f b');
    r.info('a t%C3%B8ken%20with%20spaces%2F%26%3D%3 b'); // cut short: not the secret
    expect(r.lines).toEqual(['a *** b', 'a *** b', 'a *** b', 'a t%C3%B8ken%20with%20spaces%2F%26%3D%3 b']);
  });

  it('masks exactly the forms the rule allows (checked against a regular expression written from the rule)', () => {
    // The rule as a regular expression, for short secrets only: each character as itself, or its UTF-8 bytes as
    // %XX in any case, a space also "+"; the secrets trimmed, as they are registered, the too-short left out.
    const escapeRe = (c: string) => c.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
    const rule = (secret: string) =>
      [...secret]
        .map((c) => {
          const hex = [...Buffer.from(c, 'utf8')].map((b) => '%' + [...b.toString(16).padStart(2, '0')].map((d) => (/[a-f]/.test(d) ? `[${d}${d.toUpperCase()}]` : d)).join('')).join('');
          return `(?:${escapeRe(c)}|${hex}${c === ' ' ? '|\\+' : ''})`;
        })
        .join('');
    let seed = 11;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const alphabet = ['a', 'B', 'c', '2', '5', 'f', '%', '+', ' ', 'ë', '🔑', '@'];
    for (let round = 0; round < 300; round++) {
      const secrets = Array.from({ length: 1 + rand(3) }, () => Array.from({ length: 3 + rand(4) }, () => alphabet[rand(alphabet.length)]).join(''));
      const m = new Masker();
      for (const s of secrets) m.add(s);
      const oracle = new RegExp(secrets.map((s) => s.trim()).filter((s) => s.length >= 3).map(rule).join('|') || '(?!)');
      const form = (s: string) =>
        [...s]
          .map((c) => {
            const way = rand(4);
            if (way === 0) return c;
            if (way === 3 && c === ' ') return '+';
            const hex = [...Buffer.from(c, 'utf8')].map((b) => '%' + b.toString(16).padStart(2, '0')).join('');
            return way === 1 ? hex.toUpperCase() : hex;
          })
          .join('');
      const noise = () => Array.from({ length: rand(5) }, () => alphabet[rand(alphabet.length)]).join('') + (rand(2) ? '%2' : '');
      for (let n = 0; n < 10; n++) {
        const text = noise() + (rand(3) ? form(secrets[rand(secrets.length)]!) : '') + noise();
        const out = m.redact(text);
        if (!oracle.test(text)) expect(out, JSON.stringify({ secrets, text })).toBe(text);
        else expect(oracle.test(out), JSON.stringify({ secrets, text, out })).toBe(false);
      }
    }
  });

  it("keeps the exact forms of a long value (100 KB, as the .env carries up to 128 KiB) a small multiple of its size: the hosts' masks file and GitHub's add-mask (was: every printed form URL-encoded twelve ways, about 460 times its size, 46 MB, and seconds to compute); a short one's URL-encodings all kept", () => {
    let seed = 75;
    const printable = (n: number) => Array.from({ length: n }, () => String.fromCharCode(32 + ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % 95))).join('');
    const long = printable(100_000);
    const size = (forms: string[]) => forms.reduce((n, f) => n + f.length, 0);
    expect(size(exactFormsOf(long))).toBeLessThan(64 * long.length);
    // the value itself, its lines and its printed forms are still there; a URL-encoding of it is left to the runner
    const forms = new Set(exactFormsOf(long));
    expect(forms.has(long)).toBe(true);
    expect(forms.has(JSON.stringify(long).slice(1, -1))).toBe(true);
    const m = new Masker();
    m.add(long);
    expect(m.redact(`body=${encodeURIComponent(long)}`)).toBe('body=***');
    const short = `${printable(40)} é/`;
    expect(exactFormsOf(short)).toEqual(expect.arrayContaining([encodeURIComponent(short), encodeURIComponent(short).replace(/%20/g, '+')]));
  });

  it("keeps the byte dumps of a long value out of the exact forms, as its URL-encodings (was: seven dumps of it, 20 times its size: the masks file of 100 KB of printable text 55 times it, now 35); the runner still hides every dump of it, and a part up to 16 KiB keeps them all", () => {
    let seed = 76;
    const printable = (n: number) => Array.from({ length: n }, () => String.fromCharCode(33 + ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % 94))).join('');
    const size = (forms: string[]) => forms.reduce((n, f) => n + f.length, 0);
    const pairs = (s: string) => Buffer.from(s).toString('hex').match(/../g)!;
    const dumps = (s: string) => [pairs(s).join(':'), pairs(s).join(' '), [...Buffer.from(s)].join(','), [...Buffer.from(s)].join(', ')];
    for (const n of [16 * 1024 + 1, 100_000]) {
      const long = printable(n);
      expect(size(byteDumps(long))).toBeLessThan(200);
      expect(size(exactFormsOf(long))).toBeLessThan(40 * long.length);
      const forms = new Set(exactFormsOf(long));
      for (const d of dumps(long)) expect(forms.has(d)).toBe(false);
      // what Node shows of it (its first 50 bytes) is short, and kept
      expect(forms.has(pairs(long).slice(0, 50).join(' '))).toBe(true);
      const m = new Masker();
      m.add(long);
      for (const d of dumps(long)) expect(m.redact(`dump=${d}`)).toBe('dump=***');
      expect(m.redact(JSON.stringify({ key: Buffer.from(long) }))).not.toMatch(/\d{2,3},\d{2,3},\d{2,3},\d{2,3}/);
    }
    const bound = printable(16 * 1024);
    const kept = new Set(exactFormsOf(bound));
    for (const d of dumps(bound)) expect(kept.has(d)).toBe(true);
  });

  it('keeps the minimum length: a secret too short to mask is not masked encoded either', () => {
    const r = new MemoryReporter();
    r.mask('é!');
    r.info('x %C3%A9%21 y');
    expect(r.lines).toEqual(['x %C3%A9%21 y']);
  });

  it('stays fast on pathological input (a secret of "%" and "+", a line of escapes) and with many secrets', () => {
    const m = new Masker();
    m.add('%'.repeat(40) + '+'.repeat(40));
    m.add('% + '.repeat(30));
    for (let i = 0; i < 10_000; i++) {
      m.add(`user${i}@example.org`);
      m.add(`pw ${i} ${(i * 7919).toString(36)}+secret`);
    }
    const started = Date.now();
    const hostile = '%25'.repeat(2000) + '+'.repeat(2000) + '%2'.repeat(2000) + '% + '.repeat(500);
    for (let i = 0; i < 5; i++) expect(m.redact(hostile)).toContain('%25%25%25');
    const lines: string[] = [];
    for (let i = 0; i < 2000; i++) lines.push(m.redact(`created user${i}%40example.org with pw+${i}+${(i * 7919).toString(36)}%2Bsecret (100% done)`));
    expect(lines[7]).toBe('created *** with *** (100% done)');
    expect(lines[1999]).toBe('created *** with *** (100% done)');
    expect(Date.now() - started).toBeLessThan(1500);
  });
});

describe('a password written in a plain value of environment.yml', () => {
  it('a token of a known shape written as a plain value (a Stripe key, an AWS key id) is masked and warned of too, as a URL password is', async () => {
    const { testEnv } = await import('./status.helpers.ts');
    const { environmentSecrets, plainPasswords, settingsPasswords } = await import('../../core/ops/secrets.ts');
    const stripe = 'sk_live_4eC39HqLyjWDarjtT1zdp7dc';
    const aws = 'AKIAIOSFODNN7EXAMPLE';
    const env = testEnv({
      env: { STRIPE_SECRET_KEY: stripe, SITE: 'https://example.org/x', MODE: 'sk_live_mode' },
      programs: { web: { command: 'run', port: 4000, env: { AWS_ACCESS_KEY_ID: aws } } },
      routes: { '/': 'web' },
    });
    expect(plainPasswords(env)).toEqual([
      { path: 'env.STRIPE_SECRET_KEY', passwords: [stripe] },
      { path: 'programs.web.env.AWS_ACCESS_KEY_ID', passwords: [aws] },
    ]);
    expect(settingsPasswords(env)).toEqual(expect.arrayContaining([stripe, aws]));
    const reporter = new MemoryReporter();
    await environmentSecrets({ root: env.root, reporter, processEnv: {} }, env);
    const warning = reporter.lines.find((l) => l.includes('holds a credential in plain text'))!;
    expect(warning).toContain('in env.STRIPE_SECRET_KEY, programs.web.env.AWS_ACCESS_KEY_ID (');
    expect(warning).toContain('move the value to the secrets file');
    expect(warning).not.toContain('4eC39Hq');
    // a build printing its settings: no value shown (the reporter masks them, not a message's own rules)
    reporter.info(`brk1 [build] stripe=${stripe} aws=${aws} mode=sk_live_mode`);
    expect(reporter.lines.at(-1)).toBe('brk1 [build] stripe=*** aws=*** mode=sk_live_mode');
  });

  it('is masked in what ops prints and warned of once, naming the settings, never the value', async () => {
    const { testEnv } = await import('./status.helpers.ts');
    const { environmentSecrets, plainPasswords } = await import('../../core/ops/secrets.ts');
    const env = testEnv({
      env: { DATABASE_URL: 'postgresql://app:S3cr3t-Passw0rd@db.internal/app', SITE: 'https://example.org/x', NOPASS: 'postgresql://app@db/app' },
      programs: { web: { command: 'run', port: 4000, env: { CACHE: 'redis://:c4che-pw%21@cache:6379/0', MIRROR: 'ghp_0123456789abcdefABCDEF0123456789abcd@github.com:org/app.git' } } },
      routes: { '/': 'web' },
    });
    expect(plainPasswords(env)).toEqual([
      { path: 'env.DATABASE_URL', passwords: ['S3cr3t-Passw0rd', 'S3cr3t-Passw0rd'] },
      { path: 'programs.web.env.CACHE', passwords: ['c4che-pw%21', 'c4che-pw!'] },
      { path: 'programs.web.env.MIRROR', passwords: ['ghp_0123456789abcdefABCDEF0123456789abcd', 'ghp_0123456789abcdefABCDEF0123456789abcd'] },
    ]);
    const reporter = new MemoryReporter();
    await environmentSecrets({ root: env.root, reporter, processEnv: {} }, env);
    // a token is no password: the warning names what it found neutrally
    const warning = reporter.lines.find((l) => l.includes('holds a credential in plain text'))!;
    expect(warning).toContain('env.DATABASE_URL, programs.web.env.CACHE, programs.web.env.MIRROR');
    expect(warning).not.toContain('0123456789abcdef');
    expect(warning).not.toContain('S3cr3t');
    reporter.info('brk1 [build] connecting to postgresql://app:S3cr3t-Passw0rd@db.internal/app and c4che-pw!');
    expect(reporter.lines.at(-1)).toBe('brk1 [build] connecting to postgresql://app:***@db.internal/app and ***');
  });
});

describe('a secret a printer cut short, the cut marked by an ellipsis (the real printers: V8, Python reprlib)', () => {
  const SECRETS = ['Zq7Wx9vLm3pR8sT2uV4-aB5cD6eF7gH8', 'postgresql+asyncpg://app:p%40ss%3Aw%2Frd%25-Zq7Wx9vLm3@db:5432/app', JSON.stringify({ 'admin@example.org': "Zq7'Wx9&vLm3 pR8-long-enough-2026" })];
  const node = SECRETS.flatMap((v) =>
    [v, `[1, 2, ${v}]`, `{"a": ${v}}`, `${'x'.repeat(40)} ${v}`].map((doc) => {
      try {
        JSON.parse(doc);
        return `parsed ${doc}`;
      } catch (e) {
        return `error: internal error: ${(e as Error).message}`;
      }
    }),
  );
  const python = execFileSync('python3', ['-c', 'import json, reprlib, sys\nfor v in json.load(sys.stdin):\n  print(reprlib.repr(v)); print(reprlib.repr({"secret_key": v})); print(reprlib.repr(["padding to cut", v]))'], { input: JSON.stringify(SECRETS), encoding: 'utf8' })
    .trim()
    .split('\n');

  it('hides the start or end it shows, in every reporter, whatever the secret (a token, a URL, a JSON map)', () => {
    const lines = [...node, ...python];
    // the printers did cut them (else this checks nothing new)
    expect(lines.filter((l) => /\.\.\./.test(l)).length).toBeGreaterThanOrEqual(15);
    const runner = new MemoryReporter();
    for (const v of SECRETS) runner.mask(v);
    for (const line of lines) {
      const masked = runner.redact(line);
      expect(masked, line).not.toMatch(/Zq7|Wx9|vLm|p%40|p@s|asyncpg|adm1n/);
    }
    expect(runner.redact(`Unexpected token 'Z', "Zq7Wx9vLm3"... is not valid JSON`)).toBe(`Unexpected token 'Z', "***"... is not valid JSON`);
    expect(runner.redact(`'Zq7Wx9vLm3pR...cD6eF7gH8'`)).toBe(`'***...***'`);
  });

  it('leaves an ellipsis of other text as it is: a piece inside a word, or the start of a weak value', () => {
    const runner = new MemoryReporter();
    for (const v of [...SECRETS, 'install', 'entropy-Xk2Lm9Qw4Zp7']) runner.mask(v);
    for (const line of ['Installing dependencies...', 'Waiting for the deployment... done', 'releases: abc…', '... 3 more lines', 'instal...', 'Zq7 is not Zq7W-it…'])
      expect(runner.redact(line), line).toBe(line);
  });
});
