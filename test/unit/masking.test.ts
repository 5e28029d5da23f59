// Masking covers the parts of structured secrets, in every reporter (terminal, job log, job summary): a URL's
// password as written and percent-decoded, every string of a JSON document, and their JSON-escaped forms.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ActionsReporter } from '../../core/action.ts';
import { ConsoleReporter, Masker, MemoryReporter } from '../../core/report.ts';
import { jsonStrings, percentDecode, percentEscapedChar, secretParts, urlPassword } from '../../core/secrets/parts.ts';
import { PassThrough } from 'node:stream';

describe('secret parts', () => {
  it("finds a URL's password where urllib.parse does: after the first ':' of what precedes the last '@'", () => {
    expect(urlPassword('postgresql+asyncpg://app:p%40ss:w@rd@db.example.org:5432/app')).toEqual(['p%40ss:w@rd', 'p@ss:w@rd']);
    expect(urlPassword('redis://:only-password@cache:6379/0')).toEqual(['only-password', 'only-password']);
    expect(urlPassword('https://user@example.org/')).toEqual([]);
    expect(urlPassword('not a url: x:y@z')).toEqual([]);
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

  it('includes JSON-escaped forms and URLs inside JSON', () => {
    const parts = secretParts('{"db": "postgresql://u:s%C3%A9cret@h/db", "quote": "a\\"b", "uni": "pässwörd"}');
    expect(parts).toEqual(expect.arrayContaining(['s%C3%A9cret', 'sécret', 'a"b', 'a\\"b', 'pässwörd', 'p\\u00e4ssw\\u00f6rd']));
  });
});

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
    expect(readFileSync(summary, 'utf8').trim()).toBe(MASKED);
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
  // The rule, written the obvious way: every secret, longest first, replaced everywhere.
  const obvious = (secrets: string[], text: string) => [...secrets].sort((a, b) => b.length - a.length).reduce((out, s) => out.split(s).join('***'), text);

  it('hides exactly what replacing every secret, longest first, hides', () => {
    const secrets = ['abc', 'abcdefghijk', 'defghijklmn', 'user1@example.org', 'user12@example.org', 'pw*x', '**a', 'zz*', 'Zoë Ñandú', 'xyz', 'xyzxyzxyzxyz'];
    const m = new Masker();
    for (const s of secrets) m.add(s);
    let seed = 7;
    const pick = <T,>(xs: T[]): T => xs[(seed = (seed * 1103515245 + 12345) % 2 ** 31) % xs.length]!;
    const pieces = [...secrets, ...secrets.map((s) => s.slice(1)), ...secrets.map((s) => s.slice(0, -1)), ' ', '*', 'a', 'user', 'é', 'xy'];
    for (let n = 0; n < 3000; n++) {
      const text = Array.from({ length: 1 + (n % 9) }, () => pick(pieces)).join('');
      expect(m.redact(text), text).toBe(obvious(secrets, text));
    }
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
