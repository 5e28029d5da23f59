// Interoperability with the real sops: the pinned build that scripts/setup-machine.sh installs from the Go
// module proxy. sops reads every file ops writes (after set, rotate, recipients add/remove, encrypt); ops reads
// every file sops writes, with every value type, every encryption rule and several recipients, and agrees with
// sops on which tampering is refused; `sops edit` on a file ops wrote keeps it readable by ops.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { renderDotenv } from '../../core/dotenv.ts';
import { OpsError } from '../../core/errors.ts';
import { type Identities, identitiesFromText } from '../../core/secrets/keys.ts';
import { SOPS_VERSION } from '../../core/secrets/sops-metadata.ts';
import { SecretsFile } from '../../core/secrets/sops.ts';
import { parseTree } from '../../core/secrets/tree-parse.ts';
import { type Format, type PlainValue, toPlain } from '../../core/secrets/tree.ts';
import { runOps } from '../support/cli.ts';
import { environment } from '../support/dotenv-environment.ts';
import { cli, editor, newEnv, open, tempDir } from './secrets.helpers.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const PINNED = /^SOPS_VERSION=v(\S+)$/m.exec(readFileSync(join(ROOT, 'scripts/setup-machine.sh'), 'utf8'))![1]!;

interface Key {
  file: string;
  recipient: string;
  ids: Identities;
}

/** An age key made by age-keygen (Debian's age), as a user would make one. */
async function ageKey(dir: string, name: string): Promise<Key> {
  const file = join(dir, `${name}.txt`);
  execFileSync('age-keygen', ['-o', file], { stdio: 'ignore' });
  const recipient = execFileSync('age-keygen', ['-y', file], { encoding: 'utf8' }).trim();
  return { file, recipient, ids: await identitiesFromText(readFileSync(file, 'utf8'), file) };
}

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Run the sops on PATH with one key file and nothing else from this environment. */
function sops(args: string[], key: { file: string }, extra: NodeJS.ProcessEnv = {}): Run {
  const r = spawnSync('sops', args, {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: tempDir('ops-sops-home-'), SOPS_AGE_KEY_FILE: key.file, ...extra },
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: tempDir('ops-sops-cwd-'), // away from this project's .sops.yaml
    timeout: 30_000,
  });
  if (r.error) throw new Error(`cannot run sops (${r.error.message}): run ./scripts/setup-machine.sh, which installs sops ${PINNED}`);
  return { code: r.status ?? 1, out: r.stdout, err: r.stderr };
}

const plainOf = (text: string, format: Format): PlainValue => toPlain(parseTree(text, format, { file: 'plaintext' }));

/** Every kind of YAML value sops has a type for, in the spellings people write (go-yaml reads them). */
const YAML_CORPUS = `# a comment (sops encrypts it, and ops too)
str: hello
with_colon: "a: b # not a comment"
dollar: p$ss'w"rd \\ $(x) \`y\`
bool_t: true
bool_f: False
int: 42
neg: -7
plus: +12
octal_11: 0777
octal_12: 0o17
hex: 0x1F
underscored: 1_000
big: 9007199254740993
int64_max: 9223372036854775807
int64_min: -9223372036854775808
beyond_int64: 123456789012345678901234
float: 3.14
float_whole: 2.0
float_exp: 1.5e10
float_exp_small: 1e-7
float_neg_exp: -2.5E-3
float_dot: .5
float_trailing_dot: 1.
float_leading_zero: 08
too_big_float: 1e400
inf: .inf
pinf: +.Inf
ninf: -.inf
nan: .nan
null_word: null
null_tilde: ~
null_empty:
empty: ""
yes_word: yes
quoted_int: "42"
multi: |
  line one
  line two
folded: >
  folded
  text
keep: |+
  kept

strip: |-
  stripped
unicode_ключ: "värde ✓ 日本"
emoji_🔑: "🔐"
list: [a, 1, 2.5, true, null, ""]
list_of_maps:
  - name: a
    port: 1
  - name: b
    nested: {deep: [x, {y: z}]}
date: 2024-01-15
ts: 2024-01-15T10:20:30Z
ts_frac_tz: 2024-01-15T10:20:30.123456789+02:00
ts_zero_offset: 2024-01-15T10:20:30+00:00
ts_space: 2024-01-15 10:20:30
ts_short: 2024-1-5
quoted_date: "2024-01-15"
tagged_str: !!str 123
tagged_float: !!float 3
tagged_ts: !!timestamp 2024-01-15
tagged_ts_quoted: !!timestamp "2024-01-15 10:20:30.5"
tagged_omap: !!omap [{a: 1}, {b: two}]
tagged_pairs: !!pairs [{k: v}]
tagged_set: !!set {x, y}
binary: !!binary aGVsbG8=
password: s3cret
Password_db: other
token: tok
public_name: visible
desc: a description
db_pub: public too
api_secret: hidden
creds:
  pass_inner: inner
  user: bob
`;

const JSON_CORPUS = `{
  "str": "hello", "dollar": "p$ss'w\\"rd", "int": 42, "big": 9007199254740993, "int64_max": 9223372036854775807,
  "beyond": 123456789012345678901234, "float": 3.14, "whole": 2.0, "exp": 1e3, "neg": -0.5, "negzero": -0,
  "t": true, "f": false, "n": null, "empty": "", "unicode_ключ": "värde ✓", "html": "<a>&</a>", "multi": "a\\nb",
  "list": [1, "a", {"b": [true, null]}], "password": "s3cret", "Password_db": "other", "token": "tok", "public_name": "visible",
  "desc": "d", "db_pub": "p", "api_secret": "s", "creds": {"pass_inner": "inner", "user": "bob"}
}
`;

const CORPUS: Record<Format, string> = { yaml: YAML_CORPUS, json: JSON_CORPUS };

interface Rule {
  name: string;
  /** Command-line flags of `sops encrypt`... */
  args?: string[];
  /** ...or a creation rule of a .sops.yaml (mac_only_encrypted exists only there). */
  config?: Record<string, unknown>;
  /** keys left readable in the file, and keys encrypted */
  plain: string[];
  encrypted: string[];
}

/** The encryption rules sops has, including Go-only regexp syntax ((?i), \A); one per file, as sops allows. */
const RULES: Rule[] = [
  { name: 'default (_unencrypted suffix)', args: [], plain: [], encrypted: ['str', 'password', 'public_name'] },
  { name: '--unencrypted-suffix _pub', args: ['--unencrypted-suffix', '_pub'], plain: ['db_pub'], encrypted: ['password', 'public_name'] },
  { name: '--encrypted-suffix _secret', args: ['--encrypted-suffix', '_secret'], plain: ['password', 'str'], encrypted: ['api_secret'] },
  { name: '--encrypted-regex (?i)^(pass|token)', args: ['--encrypted-regex', '(?i)^(pass|token)'], plain: ['str', 'public_name'], encrypted: ['password', 'Password_db', 'token', 'pass_inner'] },
  { name: '--encrypted-regex \\Apass (Go-only \\A)', args: ['--encrypted-regex', '\\Apass'], plain: ['token', 'str'], encrypted: ['password', 'pass_inner'] },
  { name: '--unencrypted-regex ^(public|desc)', args: ['--unencrypted-regex', '^(public|desc)'], plain: ['public_name', 'desc'], encrypted: ['password', 'str'] },
  { name: 'mac_only_encrypted (.sops.yaml)', config: { mac_only_encrypted: true }, plain: [], encrypted: ['password'] },
  { name: 'mac_only_encrypted + encrypted_regex ^pass (.sops.yaml)', config: { mac_only_encrypted: true, encrypted_regex: '^pass' }, plain: ['str', 'token'], encrypted: ['password', 'pass_inner'] },
  { name: 'mac_only_encrypted + unencrypted_suffix _pub (.sops.yaml)', config: { mac_only_encrypted: true, unencrypted_suffix: '_pub' }, plain: ['db_pub'], encrypted: ['password'] },
  // no comment of the corpus matches: nothing encrypted, everything encrypted (marked comments: see "comments")
  { name: 'encrypted_comment_regex (.sops.yaml)', config: { encrypted_comment_regex: '(?i)^\\s*SOPS:ENC$' }, plain: ['str', 'password'], encrypted: [] },
  { name: 'unencrypted_comment_regex (.sops.yaml)', config: { unencrypted_comment_regex: '^ sops:plain$' }, plain: [], encrypted: ['str', 'password'] },
];

/** `sops encrypt` of a plaintext file to `recipients` under `rule`. */
function sopsEncrypt(plainFile: string, recipients: Key[], rule: Rule, key: Key): Run {
  const age = recipients.map((k) => k.recipient).join(',');
  if (!rule.config) return sops(['encrypt', '--age', age, ...(rule.args ?? []), plainFile], key);
  const config = join(tempDir('ops-sops-config-'), '.sops.yaml');
  writeFileSync(config, JSON.stringify({ creation_rules: [{ age, ...rule.config }] }));
  return sops(['--config', config, 'encrypt', plainFile], key);
}

/** The value text of `key` in an encrypted file (YAML `key: v` or JSON `"key": v`), or undefined. */
function stored(text: string, key: string): string | undefined {
  const m = new RegExp(`^\\s*"?${key}"?: (.*?),?$`, 'm').exec(text);
  return m?.[1];
}

let dir: string;
let k1: Key;
let k2: Key;
let k3: Key;

beforeAll(async () => {
  dir = tempDir('ops-sops-interop-');
  [k1, k2, k3] = [await ageKey(dir, 'k1'), await ageKey(dir, 'k2'), await ageKey(dir, 'k3')];
});

describe('the real sops', () => {
  it(`is the pinned build (${PINNED}), on PATH`, () => {
    const r = sops(['--version', '--disable-version-check'], k1);
    expect(r.out).toMatch(new RegExp(`^sops ${PINNED.replace(/\./g, '\\.')}\\b`));
    // and the version (and layout) ops writes new files in is that one's
    expect(SOPS_VERSION).toBe(PINNED);
  });
});

describe('sops reads what ops writes', () => {
  it('in the layout sops itself writes: the same lines but for ciphertexts (and the armored keys\' indentation)', async () => {
    const plainFile = join(dir, 'layout.yaml');
    writeFileSync(plainFile, 'a: x\nlist:\n  - y\n  - {k: v}\nn: 1\n');
    const theirs = sops(['encrypt', '--age', k1.recipient, plainFile], k1).out;
    const ours = (await SecretsFile.create(join(dir, 'layout-ops.yaml'), parseTree(readFileSync(plainFile, 'utf8'), 'yaml', { file: 'p' }), { recipients: [k1.recipient] }).render()).text;
    const shape = (t: string) =>
      t
        .replace(/ENC\[[^\]]+\]/g, 'ENC[...]')
        .replace(/"\d{4}-[^"]+Z"/g, '"TIME"')
        .split('\n')
        .filter((l) => !/^\s+[A-Za-z0-9+/=-]{20,}$|BEGIN AGE|END AGE/.test(l));
    expect(shape(ours)).toEqual(shape(theirs));
  });

  for (const format of ['yaml', 'json'] as const) {
    it(`every value type, to several recipients (${format})`, async () => {
      const file = join(dir, `ops-written.${format}`);
      const tree = parseTree(CORPUS[format], format, { file: 'corpus' });
      await SecretsFile.create(file, tree, { recipients: [k1.recipient, k2.recipient] }).save();
      for (const key of [k1, k2]) {
        const r = sops(['decrypt', file], key);
        expect(r.err).toBe('');
        expect(plainOf(r.out, format)).toEqual(toPlain(tree));
      }
      expect(sops(['decrypt', file], k3).code).not.toBe(0);
    });
  }

  it('a value ops secrets set refuses for the .env (python-dotenv would expand its ${...}) leaves the file as sops read it', async () => {
    const e = await newEnv();
    const key = { file: e.keyFile };
    const before = sops(['decrypt', e.secrets], key);
    expect(before.err).toBe('');
    const r = await cli(e.root, ['secrets', 'set', 'qa', 'database_url'], e.env, 'pw-${HOME}-Sekr1t');
    expect(r.code).toBe(2);
    expect(r.err).toContain('APP_DATABASE_URL (secret "database_url"; read by python-dotenv, node-dotenv');
    expect(sops(['decrypt', e.secrets], key)).toEqual(before);
  });

  it('after ops secrets set, rotate, recipients add and remove, and encrypt', async () => {
    const e = await newEnv();
    const decrypt = (file: string, key: { file: string } = { file: e.keyFile }) => sops(['decrypt', file], key);
    const value = "p$ss'word \\ \"q\"\nsecond line";
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'database.password'], e.env, value)).code).toBe(0);
    const afterSet = decrypt(e.secrets);
    expect(afterSet.err).toBe('');
    expect((plainOf(afterSet.out, 'yaml') as { database: { password: string } }).database.password).toBe(value);
    const before = plainOf(afterSet.out, 'yaml');

    expect((await cli(e.root, ['secrets', 'rotate', 'qa'], e.env)).code).toBe(0);
    expect(plainOf(decrypt(e.secrets).out, 'yaml')).toEqual(before);

    expect((await cli(e.root, ['secrets', 'recipients', 'qa', 'add', k2.recipient], e.env)).code).toBe(0);
    expect(plainOf(decrypt(e.secrets, k2).out, 'yaml')).toEqual(before);
    expect((await cli(e.root, ['secrets', 'recipients', 'qa', 'remove', k2.recipient], e.env)).code).toBe(0);
    expect(decrypt(e.secrets, k2).code).not.toBe(0);
    expect(plainOf(decrypt(e.secrets).out, 'yaml')).toEqual(before);

    const assets = join(e.root, 'environments/qa/assets');
    mkdirSync(assets, { recursive: true });
    for (const format of ['yaml', 'json'] as const) {
      const asset = join(assets, `data.${format}`);
      writeFileSync(asset, CORPUS[format]);
      const r = await cli(e.root, ['secrets', 'encrypt', asset], e.env);
      expect(r.code).toBe(0);
      expect(plainOf(decrypt(asset).out, format)).toEqual(plainOf(CORPUS[format], format));
    }
  });
});

describe('ops reads what sops writes', () => {
  for (const format of ['yaml', 'json'] as const) {
    for (const rule of RULES) {
      it(`${rule.name} (${format}), two recipients`, async () => {
        const plainFile = join(dir, `plain-${RULES.indexOf(rule)}.${format}`);
        writeFileSync(plainFile, CORPUS[format]);
        const r = sopsEncrypt(plainFile, [k1, k2], rule, k1);
        expect(r.err).toBe('');
        for (const k of rule.plain) expect(stored(r.out, k), k).not.toMatch(/^"?ENC\[/);
        for (const k of rule.encrypted) expect(stored(r.out, k), k).toMatch(/^"?ENC\[/);
        const theirs = plainOf(sopsDecryptText(r.out, format, k2), format);
        for (const key of [k1, k2]) {
          const ours = await SecretsFile.fromText(r.out, `sops-written.${format}`, { identities: key.ids });
          expect(toPlain(ours.tree)).toEqual(theirs);
        }
        expect(theirs).toEqual(plainOf(CORPUS[format], format));
      });
    }
  }
});

/** `text` encrypted by the real sops for the age recipient of environment `e`'s .sops.yaml rule (from a plain file `name` in the scratch directory). */
function sopsForEnvironment(e: { root: string }, name: string, text: string): Run {
  const plainFile = join(dir, name);
  writeFileSync(plainFile, text);
  const recipient = readFileSync(join(e.root, '.sops.yaml'), 'utf8').match(/age: (\S+)/)![1]!;
  return sops(['encrypt', '--age', recipient, plainFile], k1);
}

/** `sops decrypt` of an encrypted text (written to a file first: sops names formats by extension). */
function sopsDecryptText(text: string, format: Format, key: Key): string {
  const file = join(tempDir('ops-sops-text-'), `f.${format}`);
  writeFileSync(file, text);
  const r = sops(['decrypt', file], key);
  if (r.code !== 0) throw new Error(`sops decrypt failed: ${r.err}`);
  return r.out;
}

describe('key groups (Shamir)', () => {
  it('ops reads a file whose data key is split over three groups, two needed, with the keys of any two; one key is refused clearly', async () => {
    const plainFile = join(dir, 'shamir.yaml');
    writeFileSync(plainFile, YAML_CORPUS);
    const config = join(tempDir('ops-sops-config-'), '.sops.yaml');
    writeFileSync(config, JSON.stringify({ creation_rules: [{ shamir_threshold: 2, key_groups: [k1, k2, k3].map((k) => ({ age: [k.recipient] })) }] }));
    const r = sops(['--config', config, 'encrypt', plainFile], k1);
    expect(r.err).toBe('');
    expect(r.out).toContain('shamir_threshold: 2');
    const expected = plainOf(CORPUS.yaml, 'yaml');
    for (const pair of [[k1, k2], [k2, k3], [k1, k3]]) {
      const ids = await identitiesFromText(pair.map((k) => readFileSync(k.file, 'utf8')).join('\n'));
      expect(toPlain((await SecretsFile.fromText(r.out, 'shamir.yaml', { identities: ids })).tree)).toEqual(expected);
    }
    await expect(SecretsFile.fromText(r.out, 'shamir.yaml', { identities: k2.ids })).rejects.toThrow(
      'shamir.yaml is split into 3 key groups (Shamir), 2 of which are needed; your age identities open 1 (group 2)',
    );
    // rewriting it needs sops: refused, nothing written
    const both = await identitiesFromText([k1, k2].map((k) => readFileSync(k.file, 'utf8')).join('\n'));
    const opened = await SecretsFile.fromText(r.out, join(dir, 'shamir-copy.yaml'), { identities: both });
    opened.set(['str'], { kind: 'scalar', type: 'str', value: 'x' });
    await expect(opened.save()).rejects.toThrow(/key_groups keys, which this tool cannot re-encrypt to/);
  });
});

describe('tampering: ops refuses exactly what sops refuses', () => {
  /** Each line of the data part of a YAML file holding a scalar, changed: ciphertext flipped, or plaintext altered. */
  function tamperings(text: string): { line: string; text: string }[] {
    const lines = text.split('\n');
    const end = lines.indexOf('sops:');
    const out: { line: string; text: string }[] = [];
    lines.slice(0, end).forEach((l, i) => {
      const m = /^(\s*(?:- )?[^\s#][^:]*: )(.+)$/.exec(l);
      if (!m || m[2] === '|' || m[2] === '|-' || m[2] === '>') return;
      const v = m[2]!;
      const changed = v.startsWith('ENC[') ? v.replace(/data:(.)/, (_, c: string) => `data:${c === 'A' ? 'B' : 'A'}`) : /^-?\d+$/.test(v) ? String(Number(v) + 1) : v === 'true' ? 'false' : `${v}x`;
      const copy = [...lines];
      copy[i] = m[1] + changed;
      out.push({ line: l.trim().slice(0, 40), text: copy.join('\n') });
    });
    return out;
  }

  for (const rule of [RULES[0]!, RULES[1]!, RULES[7]!, RULES[8]!, RULES[9]!]) {
    it(`every value of a sops file, one at a time (${rule.name})`, async () => {
      const plainFile = join(dir, `tamper-${RULES.indexOf(rule)}.yaml`);
      writeFileSync(plainFile, 'a: one\nn: 5\nb_pub: plain\nlist:\n  - x\n  - y_pub: z\npassword: pw\nnested:\n  ok: true\n  pass_deep: d\n');
      const r = sopsEncrypt(plainFile, [k1], rule, k1);
      expect(r.err).toBe('');
      const cases = tamperings(r.out);
      expect(cases.length).toBeGreaterThanOrEqual(7);
      let refused = 0;
      for (const c of cases) {
        const file = join(tempDir('ops-tamper-'), 'f.yaml');
        writeFileSync(file, c.text);
        const theirs = sops(['decrypt', file], k1).code === 0;
        const ours = await SecretsFile.fromText(c.text, file, { identities: k1.ids }).then(
          () => true,
          () => false,
        );
        expect(ours, `${c.line}: ops ${ours ? 'accepts' : 'refuses'}, sops ${theirs ? 'accepts' : 'refuses'}`).toBe(theirs);
        if (!ours) refused++;
      }
      // without --mac-only-encrypted every value is covered by the MAC or by its own tag
      if (!rule.config?.mac_only_encrypted) expect(refused).toBe(cases.length);
      else expect(refused).toBeGreaterThan(0);
    });
  }

  it('a deleted value and reordered list items are refused by both', async () => {
    const plainFile = join(dir, 'reorder.yaml');
    writeFileSync(plainFile, 'a: one\nlist:\n  - x\n  - y\nb_unencrypted: keep\nc_unencrypted: gone\n');
    const r = sops(['encrypt', '--age', k1.recipient, plainFile], k1);
    const swapped = r.out.replace(/(\n {4}- )(ENC\[[^\n]+)(\n {4}- )(ENC\[[^\n]+)/, '$1$4$3$2');
    const deleted = r.out.replace(/\nc_unencrypted: gone/, '');
    for (const text of [swapped, deleted]) {
      expect(text).not.toBe(r.out);
      const file = join(tempDir('ops-tamper-'), 'f.yaml');
      writeFileSync(file, text);
      expect(sops(['decrypt', file], k1).code).not.toBe(0);
      await expect(SecretsFile.fromText(text, file, { identities: k1.ids })).rejects.toThrow(/MAC mismatch|does not decrypt/);
    }
  });
});

describe('sops edit on a file ops wrote', () => {
  it('keeps it readable by ops, with the edit and every other value as they were', async () => {
    const file = join(dir, 'edited.yaml');
    const tree = parseTree(YAML_CORPUS, 'yaml', { file: 'corpus' });
    await SecretsFile.create(file, tree, { recipients: [k1.recipient, k2.recipient] }).save();
    const script = join(dir, 'editor.sh');
    writeFileSync(script, `#!/bin/sh\nsed -i 's/^str: .*/str: edited by sops/' "$1"\nprintf 'added_by_sops:\\n  - when: 2025-02-03\\n    n: 7\\n' >> "$1"\n`);
    chmodSync(script, 0o755);
    const r = sops(['edit', file], k1, { EDITOR: script });
    expect(r.code, r.err).toBe(0);
    const back = await SecretsFile.open(file, { identities: k2.ids });
    const expected = toPlain(tree) as Record<string, PlainValue>;
    expect(toPlain(back.tree)).toEqual({ ...expected, str: 'edited by sops', added_by_sops: [{ when: '2025-02-03T00:00:00Z', n: 7 }] });
    // and ops writes it back so that sops still reads it
    back.set(['str'], { kind: 'scalar', type: 'str', value: 'set by ops' });
    await back.save();
    expect((plainOf(sops(['decrypt', file], k1).out, 'yaml') as Record<string, PlainValue>).str).toBe('set by ops');
  });
});

describe('ops secrets commands on sops-written files', () => {
  it('decrypt prints what sops decrypt prints (same values)', async () => {
    const e = await newEnv();
    const file = join(e.root, 'environments/qa/secrets.sops.yaml');
    writeFileSync(file, sopsForEnvironment(e, 'for-cli.yaml', YAML_CORPUS).out);
    const ours = await cli(e.root, ['secrets', 'decrypt', file], e.env);
    expect(ours.code).toBe(0);
    const theirs = sops(['decrypt', file], { file: e.keyFile });
    expect(theirs.code).toBe(0);
    expect(plainOf(ours.out, 'yaml')).toEqual(plainOf(theirs.out, 'yaml'));
  });

  it('a JSON file holding integers beyond 2^53 (a chat id, a snowflake): decrypt prints their digits, as sops decrypt does (was refused: "cannot be written in JSON"); show --key of a secrets file sops wrote from JSON too', async () => {
    const e = await newEnv();
    const file = join(e.root, 'environments/qa/assets/initdata.json');
    const plain = '{"chat_id": 123456789012345678, "min": -9223372036854775808, "ids": [9007199254740993, 1], "name": "x"}\n';
    writeFileSync(file, sopsForEnvironment(e, 'big.json', plain).out);
    const theirs = sops(['decrypt', file], { file: e.keyFile });
    expect(theirs.code).toBe(0);
    const ours = await cli(e.root, ['secrets', 'decrypt', file], e.env);
    expect(ours.err).toBe('');
    expect(ours.code).toBe(0);
    expect(plainOf(ours.out, 'json')).toEqual(plainOf(theirs.out, 'json'));
    expect(ours.out).toContain('123456789012345678');
    // the secrets file written by sops from JSON input (`sops encrypt secrets.json`, JSON text under the .yaml name)
    writeFileSync(e.secrets, sopsForEnvironment(e, 'secrets.json', plain).out);
    const shown = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'chat_id'], e.env);
    expect([shown.code, shown.out, shown.err]).toEqual([0, '123456789012345678', '']);
  });

  for (const [name, plain, store] of [['secrets.env', 'API_TOKEN=Zq8-dotenv-value\n', 'dotenv'], ['secrets.ini', '[app]\nAPI_TOKEN = Zq8-ini-value\n', 'INI']] as const)
    it(`a ${store} sops file saved under the secrets file's name (\`sops encrypt ${name} > secrets.sops.yaml\`) is named as such, with sops's way to make it YAML, which works (was "not a sops file" or "not valid YAML")`, async () => {
      const e = await newEnv();
      const encrypted = sopsForEnvironment(e, name, plain).out;
      writeFileSync(e.secrets, encrypted);
      for (const [argv, input] of [[['secrets', 'show', 'qa'], ''], [['secrets', 'set', 'qa', 'other'], 'Zq8-other-value'], [['secrets', 'decrypt', e.secrets], '']] as const) {
        const r = await cli(e.root, [...argv], e.env, input);
        expect(r.code, argv.join(' ')).toBe(1);
        expect(r.err).toContain(`${e.secrets} is a sops file in ${store} format (\`sops encrypt\` keeps the format of the file it encrypts, whatever the name its output is saved under): dotenv and INI sops files are not supported`);
        expect(r.err).not.toContain('Zq8');
        expect(readFileSync(e.secrets, 'utf8')).toBe(encrypted);
      }
      // the hint, run as given (from the project root, where sops finds .sops.yaml)
      const hint = (await cli(e.root, ['secrets', 'show', 'qa'], e.env)).err.match(/hint: make it YAML with sops, the plaintext only in the pipe \(never on disk\): (.*)/)![1]!;
      const files = () => execFileSync('find', ['.', '-path', './.git', '-prune', '-o', '-type', 'f', '-print'], { cwd: e.root, encoding: 'utf8' }).split('\n').sort();
      const before = files();
      execFileSync('bash', ['-c', hint], { cwd: e.root, env: { PATH: process.env.PATH, HOME: e.root, SOPS_AGE_KEY_FILE: e.keyFile }, stdio: 'ignore' });
      // no plaintext left in the working tree (was: plain.yaml, to delete by hand, or to commit by mistake)
      expect(files()).toEqual(before);
      expect(spawnSync('grep', ['-rl', `Zq8-${store === 'INI' ? 'ini' : 'dotenv'}-value`, '.'], { cwd: e.root, encoding: 'utf8' }).stdout).toBe('');
      const shown = await cli(e.root, ['secrets', 'show', 'qa', '--key', store === 'INI' ? 'app.API_TOKEN' : 'API_TOKEN'], e.env);
      expect([shown.code, shown.out]).toEqual([0, `Zq8-${store === 'INI' ? 'ini' : 'dotenv'}-value`]);
    });
});

describe('YAML merge keys and aliases, as sops writes them', () => {
  // sops 3.13.3 copies each alias, and keeps a merge key as the key `<<` (not merged), written `!!merge <<:`
  const PLAIN = 'base: &b {x: 1, s: str}\nder:\n  <<: *b\n  y: 2\nal: *b\nlist: [*b]\nquoted:\n  "<<": {q: 3}\n';

  it('ops reads a sops file with them (same tree, same MAC) and prints what sops decrypt prints', async () => {
    const plainFile = join(dir, 'merge.yaml');
    writeFileSync(plainFile, PLAIN);
    const enc = sops(['encrypt', '--age', k1.recipient, plainFile], k1);
    expect(enc.err).toBe('');
    expect(enc.out).toContain('!!merge <<:');
    const ours = await SecretsFile.fromText(enc.out, 'sops-merge.yaml', { identities: k1.ids });
    const theirs = sopsDecryptText(enc.out, 'yaml', k1);
    expect(ours.plaintext()).toBe(theirs);
    const theirsJson = JSON.parse(sopsDecryptJson(enc.out, k1)) as PlainValue;
    expect(toPlain(ours.tree)).toEqual(theirsJson);
    expect(theirsJson).toMatchObject({ der: { '<<': { x: 1, s: 'str' }, y: 2 }, al: { x: 1 }, quoted: { '<<': { q: 3 } } });
  });

  it('ops keeps them when it rewrites such a file, and encrypts a plain file with them as sops does', async () => {
    const e = await newEnv();
    const encrypted = sopsForEnvironment(e, 'merge-cli.yaml', PLAIN).out;
    writeFileSync(e.secrets, encrypted);
    const show = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'der'], e.env);
    expect(show).toMatchObject({ code: 0, err: '' });
    expect(show.out).toBe('!!merge <<:\n  x: 1\n  s: str\n"y": 2\n');
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'der.y'], e.env, 'three')).code).toBe(0);
    const after = sops(['decrypt', e.secrets], { file: e.keyFile });
    expect(after.err).toBe('');
    expect(after.out).toContain('der:\n    !!merge <<:\n        x: 1\n        s: str\n    "y": three\n');
    // ops secrets encrypt of the same plain file: sops decrypts it to what it decrypts its own to
    const asset = join(e.root, 'environments/qa/assets/merge.yaml');
    mkdirSync(join(asset, '..'), { recursive: true });
    writeFileSync(asset, PLAIN);
    expect((await cli(e.root, ['secrets', 'encrypt', asset], e.env)).code).toBe(0);
    const own = join(dir, 'merge-own.yaml');
    writeFileSync(own, encrypted);
    expect(sops(['decrypt', asset], { file: e.keyFile }).out).toBe(sops(['decrypt', own], { file: e.keyFile }).out);
  });

  it('a secret the .env (or show --key) names that the file holds only through a merge key is refused as missing saying so, with the path it is held at and the fix (was: only "needs the secret", "no key")', async () => {
    const plainFile = join(dir, 'merge-env.yaml');
    writeFileSync(plainFile, 'base: &b {user: app, host: db.internal}\nro: &r {user: reader, port: 5433}\ndb:\n  <<: [*r, *b]\n  password: Zq8-db-password\n  host: own.host\ncache:\n  <<: *b\n');
    const enc = sops(['encrypt', '--age', k1.recipient, plainFile], k1);
    expect(enc.err).toBe('');
    // sops finds no db.user: it merges nothing
    const encFile = join(dir, 'merge-env.sops.yaml');
    writeFileSync(encFile, enc.out);
    expect(sops(['decrypt', '--extract', '["db"]["user"]', encFile], k1)).toMatchObject({ code: 1, out: '' });
    const { data } = await SecretsFile.fromText(enc.out, 'merge-env.sops.yaml', { identities: k1.ids });
    const env = environment({ DB_USER: { secret: 'db.user' }, DB_PORT: { secret: 'db.port' }, DB_HOST: { secret: 'db.host' }, DB_PASSWORD: { secret: 'db.password' }, CACHE_HOST: { secret: 'cache.host' }, DB_NAME: { secret: 'db.name' } });
    let error: unknown;
    try {
      renderDotenv(env, data);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(OpsError);
    const { message, hint } = error as OpsError;
    expect(message).toContain('DB_USER needs the secret "db.user", which the file holds only through a YAML merge key, as "db.<<[0].user": sops keeps `<<` as a key of its own and merges nothing, so to sops and ops alike there is no "db.user"');
    expect(message).toContain('DB_PORT needs the secret "db.port", which the file holds only through a YAML merge key, as "db.<<[0].port"');
    expect(message).toContain('CACHE_HOST needs the secret "cache.host", which the file holds only through a YAML merge key, as "cache.<<.host"');
    expect(message).toMatch(/DB_NAME needs the secret "db\.name"$/);
    expect(message).not.toContain('DB_HOST'); // written in the map itself
    expect(message).not.toContain('Zq8');
    expect(hint).toBe("add them: printf '%s' VALUE | ops secrets set t <key>; a key merged in with `<<` is written out in its own map instead (ops secrets edit t)");
    // the same key written out in the map reaches the .env
    expect(renderDotenv(environment({ DB_HOST: { secret: 'db.host' }, CACHE_HOST: { secret: 'cache.<<.host' } }), data).environ).toBe('DB_HOST=own.host\0CACHE_HOST=db.internal\0');
    // ops secrets show --key says the same
    const e = await newEnv();
    writeFileSync(e.secrets, sopsForEnvironment(e, 'merge-show.yaml', 'base: &b {user: Zq8-user}\ncache:\n  <<: *b\n').out);
    const shown = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'cache.user'], e.env);
    expect([shown.code, shown.out]).toEqual([2, '']);
    expect(shown.err).toBe('error: no key cache.user in environments/qa/secrets.sops.yaml: the file holds it only through a YAML merge key, as "cache.<<.user", and sops keeps `<<` as a key of its own, merging nothing\n  hint: write it out in its own map (ops secrets edit qa); `ops secrets show qa` lists the keys as sops reads them\n');
  });

  it('a map or list the .env takes whole that holds a merge key is refused, naming where (sops gives the app a member "<<", not the keys it brings); by ops secrets set too', async () => {
    const plainFile = join(dir, 'merge-whole.yaml');
    writeFileSync(plainFile, 'base: &b {alice@example.org: Zq8-alice-password}\npasswords:\n  <<: *b\n  bob@example.org: Zq8-bob-password\nlisted:\n  - x: Zq8-x-value\n  - <<: *b\n');
    const enc = sops(['encrypt', '--age', k1.recipient, plainFile], k1);
    expect(enc.err).toBe('');
    const encFile = join(dir, 'merge-whole.sops.yaml');
    writeFileSync(encFile, enc.out);
    // what sops itself gives: the merge key as a member, alice's key not among the map's own
    const theirs = JSON.parse(sops(['decrypt', '--output-type', 'json', '--extract', '["passwords"]', encFile], k1).out) as Record<string, unknown>;
    expect(Object.keys(theirs)).toEqual(['<<', 'bob@example.org']);
    const { data } = await SecretsFile.fromText(enc.out, 'merge-whole.sops.yaml', { identities: k1.ids });
    const refusal = (env: Record<string, { secret: string }>): OpsError => {
      try {
        renderDotenv(environment(env), data);
      } catch (e) {
        return e as OpsError;
      }
      throw new Error('not refused');
    };
    for (const [env, where] of [
      [{ TOOLS_PASSWORDS: { secret: 'passwords' } }, 'TOOLS_PASSWORDS takes the secret "passwords" whole, as JSON, and it holds a YAML merge key, "passwords.<<"'],
      [{ LISTED: { secret: 'listed' } }, 'LISTED takes the secret "listed" whole, as JSON, and it holds a YAML merge key, "listed[1].<<"'],
    ] as const) {
      const e = refusal(env);
      expect(e).toBeInstanceOf(OpsError);
      expect(e.message).toBe(`${where}: sops keeps \`<<\` as a key of its own and merges nothing, so the app would get a member "<<" holding the map it names instead of the keys it brings`);
      expect(e.hint).toBe('write those keys out in the map itself and drop its `<<` line (ops secrets edit t), or name each key in env on its own ({ secret: ... })');
      expect(`${e.message}${e.hint}`).not.toContain('Zq8');
    }
    // ops secrets set of a member, on a map that a merge key made (env new's TOOLS_PASSWORDS takes it whole): refused
    // with the deploy's words, nothing written
    const e = await newEnv();
    writeFileSync(e.secrets, sopsForEnvironment(e, 'merge-set.yaml', 'base: &b {alice@example.org: Zq8-alice-password}\npasswords:\n  <<: *b\n').out);
    const before = readFileSync(e.secrets, 'utf8');
    const set = await cli(e.root, ['secrets', 'set', 'qa', 'passwords."bob@example.org"'], e.env, 'Zq8-bob-password');
    expect(set.code).toBe(2);
    expect(set.err).toContain('TOOLS_PASSWORDS takes the secret "passwords" whole, as JSON, and it holds a YAML merge key, "passwords.<<": sops keeps `<<` as a key of its own and merges nothing');
    expect(set.err).toContain('already in the file before this change: every deploy already refuses it; nothing was written');
    expect(set.err).not.toContain('Zq8');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  });
});

describe('a value of several lines whose first text starts with a tab (a pasted TSV row, a Makefile recipe)', () => {
  const VALUES = { first_tab_unencrypted: '\tname\tvalue\nrow\t1\n', blank_then_tab_unencrypted: '\n\tx', tab_only_first_unencrypted: '\t\nx', later_tab_unencrypted: 'a\n\tb', secret: '\tx\ny' };

  it('is written so that sops reads it: in clear (an _unencrypted key) in the file ops writes, and in ops secrets decrypt\'s text', async () => {
    const file = join(dir, 'tabs.yaml');
    await SecretsFile.create(file, parseTree(JSON.stringify(VALUES), 'json', { file: 'tabs' }), { recipients: [k1.recipient] }).save();
    const r = sops(['decrypt', '--output-type', 'json', file], k1);
    expect(r.err).toBe(''); // go-yaml refused a literal block whose first text is a tab: "found a tab character where an indentation space is expected"
    expect(JSON.parse(r.out)).toEqual(VALUES);
    // the plaintext ops prints, encrypted again by sops (written as JSON: sops's own YAML writes such a value in
    // clear as null, then fails its MAC, a go-yaml emitter fault of sops 3.13.3)
    const plainFile = join(dir, 'tabs-plain.yaml');
    writeFileSync(plainFile, (await SecretsFile.open(file, { identities: k1.ids })).plaintext());
    const again = sops(['encrypt', '--age', k1.recipient, '--output-type', 'json', plainFile], k1);
    expect(again.err).toBe('');
    const json = join(dir, 'tabs-again.json');
    writeFileSync(json, again.out);
    expect(JSON.parse(sops(['decrypt', json], k1).out)).toEqual(VALUES);
  });
});

// go-yaml, so sops, reads NEL, LS and PS as line breaks (YAML 1.1), and writes a value holding LS raw in single
// quotes, the LS followed by a new line's indentation: read as YAML 1.2 those spaces were part of the value.
describe('NEL, LS and PS (line breaks to go-yaml) in YAML, as sops reads and writes them', () => {
  const [NEL, LS, PS] = ['\u0085', '\u2028', '\u2029'];
  /** Plain YAML texts: as sops writes them, and as people type them (each parsed by go-yaml when sops encrypts it). */
  const TEXTS = [
    `x: '${LS}    ls'\n`, `x: 'a${LS}b'\n`, `x: 'a ${LS}  b'\n`, `x: 'a${LS}${LS}  b'\n`, `x: 'a${LS}\n  b'\n`, `x: 'a${NEL}b'\n`, `x: 'a${NEL}${NEL}b'\n`, `x: 'a${PS}  b'\n`,
    `x: "a${LS}  b"\n`, `x: "a\\L  b${NEL} c"\n`, `x: "a${NEL}\n b"\n`, `x: a${LS} b\n`, `x: a ${NEL} b\n`,
    `x: |\n    a${LS}    b\n    c\n`, `x: |-\n  a ${PS}  b\n`, `x: |2\n     a${LS}   b\n`,
    `? 'k${LS}    ey'\n: v\n`, `x: [ 'a${LS}  b', "c${LS} d" ]\n`, `x: {k: 'a${LS}  b'}\n`,
    // a folded block: a NEL folds as LF does (into a space between two lines), an LS or PS never
    `x: >\n  a${NEL}  b\n  c\n`, `x: >-\n  a${LS}  b\n  c\n`, `x: >\n  a\n  ${NEL}  b\n`, `x: >\n  a${NEL}${NEL}  b\n`, `l:\n  - >\n    a${NEL}    b\n  - x\n`,
    // a line holding only a break is an empty line; after a break, text less indented ends the block
    `x: |\n  a\n${LS}  b\n`, `x: |\n  a${LS}y: 1\n`, `n:\n  x: |\n    a${LS}  y: 1\n`, `x: >+\n  ${LS}\ny: 1\n`, `x: |\n   ${NEL}${LS}${NEL} \n   \n  \ny: 1\n`,
    // a CR not followed by LF (an old Mac line end) is a line break to go-yaml too
    `a: b\rc: d\n`, `x: 'a\rb'\n`, `x: a\r  b\n`, `x: |\n  a\r  b\r\ny: 1\n`,
  ];

  it('ops reads each value and key as sops does (sops encrypt, then sops decrypt --output-type json)', () => {
    for (const [i, text] of TEXTS.entries()) {
      const plainFile = join(dir, `breaks-${i}.yaml`);
      writeFileSync(plainFile, text);
      const enc = sops(['encrypt', '--age', k1.recipient, plainFile], k1);
      expect(enc.err, JSON.stringify(text)).toBe('');
      expect(plainOf(text, 'yaml'), JSON.stringify(text)).toEqual(JSON.parse(sopsDecryptJson(enc.out, k1)));
    }
  });

  it('a file sops wrote with such values left in clear (--unencrypted-regex) opens with ops (same MAC, same values), and its plaintext from sops decrypt is read by ops as it was (what ops secrets encrypt stores)', async () => {
    const values = {
      ls: `a${LS}b`, ps: `${PS}p`, both: `x${LS}${PS}y`, multi: `one\ntwo${LS}three\n`, [`k${LS}ey`]: 'v',
      // a line break then LS or PS: go-yaml writes the LS at the start of a line of a literal block (no indentation),
      // and after a value ending in one the next key on the same line
      after_break: `one\n${LS}two`, ends: `x\n${PS}`, nested: { deeper: { k: `a\n\n${LS}b${LS}` } }, list: [`a\n${PS}${PS}b\n`, { q: `x\n${LS}` }],
    };
    const plainFile = join(dir, 'breaks-clear.json');
    writeFileSync(plainFile, JSON.stringify(values));
    const enc = sops(['encrypt', '--unencrypted-regex', '.', '--input-type', 'json', '--output-type', 'yaml', '--age', k1.recipient, plainFile], k1);
    expect(enc.err).toBe('');
    expect(enc.out).toContain(`ls: 'a${LS}`); // in clear, the LS raw, as go-yaml writes it
    expect(enc.out).toContain(`after_break: |-\n    one\n${LS}    two\n`);
    const ours = await SecretsFile.fromText(enc.out, 'sops-breaks.yaml', { identities: k1.ids });
    expect(toPlain(ours.tree)).toEqual(values);
    const plaintext = sopsDecryptText(enc.out, 'yaml', k1);
    expect(plaintext).toMatch(new RegExp(`${LS} +`)); // a new line's indentation after the LS
    expect(plainOf(plaintext, 'yaml')).toEqual(values);
  });
});

describe('the escape \\\' in YAML double quotes, which go-yaml (so sops) reads as \'', () => {
  // YAML 1.2 has no such escape (the `yaml` library refuses it), but libyaml's scanner, which go-yaml ports, has:
  // sops encrypts such a file and gives back ', so ops reads it so too (ops secrets edit, encrypt) rather than refusing it
  const TEXTS = [`a: "it\\'s"\n`, `a: "x\\\\'y"\n`, `a: "\\'\\\\\\'"\n`, `"k\\'ey": "v"\n`, `l: ["\\'x", {q: "y\\'"}]\n`, `a: "one\\'\n  two \\\n  three\\'"\n`];

  it('ops reads each value and key as sops does (sops encrypt, then sops decrypt --output-type json)', () => {
    for (const [i, text] of TEXTS.entries()) {
      const plainFile = join(dir, `quote-escape-${i}.yaml`);
      writeFileSync(plainFile, text);
      const enc = sops(['encrypt', '--age', k1.recipient, plainFile], k1);
      expect(enc.err, JSON.stringify(text)).toBe('');
      expect(plainOf(text, 'yaml'), JSON.stringify(text)).toEqual(JSON.parse(sopsDecryptJson(enc.out, k1)));
    }
    expect(plainOf(TEXTS[0]!, 'yaml')).toEqual({ a: "it's" });
    expect(plainOf(TEXTS[1]!, 'yaml')).toEqual({ a: "x\\'y" }); // an escaped backslash, then a plain '
  });
});

describe('binary values (YAML !!binary), as sops writes them', () => {
  const LONG = Buffer.alloc(100, 0xff);
  const PLAIN = `database_url: !!binary /+8=\nlong: !!binary ${LONG.toString('base64')}\ntext: !!binary aGk=\nother: ok\n`;

  it('a binary value leaves the file intact: ops reads it (same MAC), prints what sops prints, hands the bytes on as sops --extract does, and keeps them on a rewrite', async () => {
    const e = await newEnv();
    const enc = sopsForEnvironment(e, 'binary.yaml', PLAIN);
    expect(enc.err).toBe('');
    writeFileSync(e.secrets, enc.out);
    const key = { file: e.keyFile };
    const theirs = sops(['decrypt', e.secrets], key).out;
    expect(theirs).toContain('database_url: !!binary /+8=\n');
    const ours = await open(e);
    expect(ours.plaintext()).toBe(theirs);
    expect(ours.data).toMatchObject({ database_url: Buffer.from([0xff, 0xef]), long: LONG, text: 'hi', other: 'ok' });
    const dec = await cli(e.root, ['secrets', 'decrypt', e.secrets], e.env);
    expect(dec).toMatchObject({ code: 0, out: theirs });
    // show --key: the other values as text, the binary one as its bytes (what sops decrypt --extract gives)
    expect((await cli(e.root, ['secrets', 'show', 'qa', '--key', 'other'], e.env)).out).toBe('ok');
    const extract = spawnSync('sops', ['decrypt', '--extract', '["database_url"]', e.secrets], { env: { PATH: process.env.PATH, SOPS_AGE_KEY_FILE: e.keyFile, HOME: tempDir() } });
    expect(extract.stdout).toEqual(Buffer.from([0xff, 0xef]));
    expect((await cli(e.root, ['secrets', 'show', 'qa', '--key', 'database_url'], e.env)).outBytes).toEqual(Buffer.from([0xff, 0xef]));
    // a rewrite keeps the binary values' bytes (and ciphertexts): sops reads them as before
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'other'], e.env, 'second')).code).toBe(0);
    expect(readFileSync(e.secrets, 'utf8').split('\n')[0]).toBe(enc.out.split('\n')[0]);
    expect(sops(['decrypt', e.secrets], key).out).toBe(theirs.replace('other: ok', 'other: second'));
    // ops secrets edit shows it as sops does, and an edit elsewhere keeps it
    const ed = editor(`grep -q '^database_url: !!binary /+8=$' "$1" && sed -i 's/^other: second$/other: edited/' "$1"`);
    expect((await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd })).out).toBe('environments/qa/secrets.sops.yaml: updated (changed other)\n');
    expect(readFileSync(e.secrets, 'utf8').split('\n')[0]).toBe(enc.out.split('\n')[0]);
    expect(sops(['decrypt', e.secrets], key).out).toBe(theirs.replace('other: ok', 'other: edited'));
    // where only text can go (the .env), it is refused by name, saying what to do; not "corrupt"
    const config = await runOps(['config', 'qa'], { root: e.root, processEnv: { PATH: process.env.PATH, HOME: e.root, ...e.env } });
    expect(config.code).toBe(1);
    expect(config.err).toContain('the secret "database_url" is a binary value (YAML !!binary: bytes that are not UTF-8 text); binary values are not supported in the .env (APP_DATABASE_URL)');
    expect(config.err).toContain('ops secrets show qa --key database_url | base64 -w0 | ops secrets set qa database_url');
    expect(config.err).not.toMatch(/corrupt|does not decrypt|git history/);
    // the text equal to its base64 is another value: a new IV (never the binary value's), and sops reads text
    const iv = (t: string) => /^database_url: ENC\[.*iv:([^,]+)/m.exec(t)![1];
    const before = readFileSync(e.secrets, 'utf8');
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'database_url'], e.env, '/+8=')).code).toBe(0);
    expect(iv(readFileSync(e.secrets, 'utf8'))).not.toBe(iv(before));
    expect(sops(['decrypt', e.secrets], key).out).toContain('database_url: /+8=\n');
  });

  it('a binary key: one of UTF-8 bytes is read as its text, as sops reads it; one of other bytes (sops keeps its bytes, and its value decrypts only under them) is refused by name, not as a changed ciphertext', async () => {
    const e = await newEnv();
    writeFileSync(e.secrets, sopsForEnvironment(e, 'binary-key.yaml', 'other: ok\n!!binary aGk=: text\nnested:\n    !!binary /+8=: v\n').out);
    expect(sops(['decrypt', e.secrets], { file: e.keyFile }).out).toContain('nested:\n    !!binary /+8=: v\n');
    const dec = await cli(e.root, ['secrets', 'decrypt', e.secrets], e.env);
    expect(dec.code).toBe(1);
    expect(dec.err).toContain('secrets.sops.yaml: the key !!binary /+8= under nested holds bytes that are not UTF-8 text, which ops does not support (keys are text)');
    expect(dec.err).toContain('rename it to a text key');
    expect(dec.err).not.toMatch(/does not decrypt|changed/);
    writeFileSync(e.secrets, sopsForEnvironment(e, 'text-key.yaml', 'other: ok\n!!binary aGk=: text\n').out);
    expect((await cli(e.root, ['secrets', 'show', 'qa', '--key', 'hi'], e.env)).out).toBe('text');
  });

  it('ops secrets encrypt writes binary values as sops does', async () => {
    const e = await newEnv();
    const asset = join(e.root, 'environments/qa/assets/binary.yaml');
    mkdirSync(join(asset, '..'), { recursive: true });
    writeFileSync(asset, PLAIN);
    expect((await cli(e.root, ['secrets', 'encrypt', asset], e.env)).code).toBe(0);
    const own = join(dir, 'binary-own.enc.yaml');
    writeFileSync(own, sopsForEnvironment(e, 'binary-own.yaml', PLAIN).out);
    expect(sops(['decrypt', asset], { file: e.keyFile }).out).toBe(sops(['decrypt', own], { file: e.keyFile }).out);
  });

  it('a key path into a binary value names no secret, as to sops (its byte indexes are no keys): the .env refuses it as missing, never giving a byte', async () => {
    const e = await newEnv();
    writeFileSync(e.secrets, sopsForEnvironment(e, 'binary-path.yaml', PLAIN).out);
    const key = { file: e.keyFile };
    const extract = sops(['decrypt', '--extract', '["database_url"]["1"]', e.secrets], key);
    expect([extract.code === 0, extract.out]).toEqual([false, '']);
    const { data } = await open(e);
    let error: unknown;
    try {
      renderDotenv(environment({ DB: { secret: 'database_url.1' }, LONG: { secret: 'long.0' } }), data);
    } catch (x) {
      error = x;
    }
    expect(error).toBeInstanceOf(OpsError);
    expect((error as OpsError).message).toBe('environments/t/secrets.sops.yaml lacks 2 secrets the .env needs:\n  - DB needs the secret "database_url.1" (the file has "database_url": did you mean it?)\n  - LONG needs the secret "long.0"');
  });
});

/** `sops decrypt --output-type json` of an encrypted YAML text. */
function sopsDecryptJson(text: string, key: Key): string {
  const file = join(tempDir('ops-sops-text-'), 'f.yaml');
  writeFileSync(file, text);
  const r = sops(['decrypt', '--output-type', 'json', file], key);
  if (r.code !== 0) throw new Error(`sops decrypt failed: ${r.err}`);
  return r.out;
}

describe('comments sops keeps', () => {
  for (const [rule, marker, marked, unmarked] of [
    ['encrypted_comment_regex', 'sops:enc', 'ENC', 'plain'],
    ['unencrypted_comment_regex', 'sops:plain', 'plain', 'ENC'],
  ] as const) {
    it(`${rule}: ops reads what sops writes, and sops reads what ops rewrites, with the same values encrypted`, async () => {
      const plainFile = join(dir, `${rule}.yaml`);
      writeFileSync(plainFile, `# ${marker}\npassword: s3cret\nuser: bob\nnested:\n  # ${marker}\n  token: t\n  other: o\n# a note\nlast: l\n`);
      const r = sopsEncrypt(plainFile, [k1], { name: rule, config: { [rule]: marker }, plain: [], encrypted: [] }, k1);
      expect(r.err).toBe('');
      const pattern = (text: string) => ['password', 'user', 'token', 'other', 'last'].map((k) => `${k}:${/^"?ENC\[/.test(stored(text, k) ?? '') ? 'ENC' : 'plain'}`);
      const expected = [`password:${marked}`, `user:${unmarked}`, `token:${marked}`, `other:${unmarked}`, `last:${unmarked}`];
      expect(pattern(r.out)).toEqual(expected);
      const file = join(dir, `${rule}.enc.yaml`);
      writeFileSync(file, r.out);
      const ours = await SecretsFile.open(file, { identities: k1.ids });
      expect(toPlain(ours.tree)).toEqual(plainOf(sops(['decrypt', file], k1).out, 'yaml'));
      expect(ours.plaintext()).toContain(`# ${marker}\npassword: s3cret`);
      ours.set(['user'], { kind: 'scalar', type: 'str', value: 'alice' });
      ours.set(['nested', 'token'], { kind: 'scalar', type: 'str', value: 't2' });
      await ours.save();
      const after = readFileSync(file, 'utf8');
      expect(pattern(after)).toEqual(expected);
      expect(after).toContain(`# ${marker}`);
      const back = sops(['decrypt', file], k1);
      expect(back.err).toBe('');
      expect(plainOf(back.out, 'yaml')).toMatchObject({ user: 'alice', nested: { token: 't2', other: 'o' }, password: 's3cret' });
    });
  }

  const COMMENTED = `# top comment
str: hello # inline str
# before list
list:
  # inside list first
  - a # inline a
  - b
  # trailing list
# before nested
nested: # on parent key
  # inside nested
  k: v
  deeper:
    # deep
    x: 1
  # trailing nested
public_unencrypted:
  # stays readable
  y: 2
# between
last: x
# trailing top
`;
  /** The comment lines of a YAML text, in order, without their indentation. */
  const commentLines = (text: string) => text.split('\n').flatMap((l) => /(^|\s)#.*$/.exec(l)?.[0].trim() ?? []);

  it('ops shows the comments of a sops file where sops shows them, and keeps them when it rewrites the file', async () => {
    const e = await newEnv();
    writeFileSync(e.secrets, sopsForEnvironment(e, 'commented.yaml', COMMENTED).out);
    expect(readFileSync(e.secrets, 'utf8')).toContain('#ENC[AES256_GCM');
    expect(readFileSync(e.secrets, 'utf8')).toContain('# stays readable');
    const theirs = sops(['decrypt', e.secrets], { file: e.keyFile }).out;
    const ours = await cli(e.root, ['secrets', 'decrypt', e.secrets], e.env);
    expect(ours.code).toBe(0);
    expect(commentLines(ours.out)).toEqual(commentLines(COMMENTED));
    expect(commentLines(theirs)).toEqual(commentLines(COMMENTED));
    expect(plainOf(ours.out, 'yaml')).toEqual(plainOf(theirs, 'yaml'));

    // ops rewrites the file: the comments are still there for sops, and for ops
    const set = await cli(e.root, ['secrets', 'set', 'qa', 'last'], e.env, 'y-Qm4-Tz8r-Lx2w'); // not a weak value: no warning (secrets-weak.test.ts)
    expect(set.code, set.err).toBe(0);
    expect(set.err).toBe('');
    const after = sops(['decrypt', e.secrets], { file: e.keyFile });
    expect(after.err).toBe('');
    expect(commentLines(after.out).sort()).toEqual(commentLines(COMMENTED).sort());
    expect(commentLines((await cli(e.root, ['secrets', 'decrypt', e.secrets], e.env)).out)).toEqual(commentLines(COMMENTED));
    expect(readFileSync(e.secrets, 'utf8')).toContain('# stays readable'); // under an _unencrypted key, as sops leaves it
  });

  it('sops reads the comments ops writes; an unchanged commented file is rewritten byte for byte', async () => {
    const file = join(dir, 'ops-commented.yaml');
    await SecretsFile.create(file, parseTree(COMMENTED, 'yaml', { file: 'corpus' }), { recipients: [k1.recipient] }).save();
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain('# top comment');
    expect(commentLines(text).filter((c) => c.startsWith('#ENC[')).length).toBe(commentLines(COMMENTED).length - 1);
    const r = sops(['decrypt', file], k1);
    expect(r.err).toBe('');
    expect(commentLines(r.out).sort()).toEqual(commentLines(COMMENTED).sort());
    const opened = await SecretsFile.open(file, { identities: k1.ids });
    expect((await opened.render({ force: false })).changed).toBe(false);
    // re-encrypted on purpose, unchanged comments keep their ciphertext (their IVs are kept, as sops does)
    const comments = (t: string) => t.split('\n').filter((l) => l.includes('type:comment'));
    expect(comments((await opened.render({ force: true })).text)).toEqual(comments(text));
  });
});

describe('a scalar under a tag go-yaml does not resolve by (!!merge, !!set, !!seq, !!foo...), as sops reads it', () => {
  // go-yaml v3 checks a scalar's text against !!bool, !!int, !!float, !!timestamp and !!null only (resolve.go
  // resolvableTag); under any other tag the text is a string, which sops encrypts as type str. ops refused them all
  // ("cannot decode a !!str as a !!merge"), and with them a file sops wrote: the text "<<" left unencrypted is written
  // `!!merge <<` by sops's YAML emitter, so no command could open that environment's secrets.
  const TEXTS = ['a: !!merge <<\n', 'a: !!merge x\n', 'a: !!set x\n', 'a: !!omap x\n', 'a: !!seq x\n', 'a: !!map x\n', 'a: !!value x\n', 'a: !!foo 12\n', 'a: !!pairs "q"\n'];

  it('ops reads each as sops does (sops encrypt, then sops decrypt --output-type json); the resolved tags still refuse text of another type, as go-yaml does', () => {
    for (const text of TEXTS) {
      const plainFile = join(dir, 'tagged.yaml');
      writeFileSync(plainFile, text);
      const enc = sops(['encrypt', '--age', k1.recipient, plainFile], k1);
      expect(enc.err, text).toBe('');
      expect(plainOf(text, 'yaml'), text).toEqual(JSON.parse(sopsDecryptJson(enc.out, k1)));
    }
    for (const text of ['a: !!bool x\n', 'a: !!null x\n', 'a: !!int x\n']) {
      writeFileSync(join(dir, 'tagged.yaml'), text);
      expect(sops(['encrypt', '--age', k1.recipient, join(dir, 'tagged.yaml')], k1).code, text).not.toBe(0);
      expect(() => plainOf(text, 'yaml'), text).toThrow(/cannot decode a !!str as a !!(bool|null|int)/);
    }
  });

  it('a file sops wrote with the text "<<" left unencrypted (`!!merge <<`) opens (same MAC), and the .env gets "<<" as sops exec-env gives it', async () => {
    const plainFile = join(dir, 'merge-text.yaml');
    writeFileSync(plainFile, 'op_unencrypted: "<<"\ntoken: Zq7Wx9vLm3Kp2Rt8\n');
    const enc = sops(['encrypt', '--unencrypted-suffix', '_unencrypted', '--age', k1.recipient, plainFile], k1);
    expect(enc.err).toBe('');
    expect(enc.out).toContain('op_unencrypted: !!merge <<\n');
    const file = join(dir, 'merge-text.enc.yaml');
    writeFileSync(file, enc.out);
    const ours = await SecretsFile.open(file, { identities: k1.ids });
    const run = sops(['exec-env', '--pristine', file, 'printf %s "$op_unencrypted"'], k1);
    expect([run.err, run.out]).toEqual(['', '<<']);
    const { environ } = renderDotenv(environment({ OP: { secret: 'op_unencrypted' }, TOKEN: { secret: 'token' } }), ours.data);
    expect(environ).toBe('OP=<<\0TOKEN=Zq7Wx9vLm3Kp2Rt8\0');
  });
});

describe('a key given twice in one JSON map, as sops encrypts it', () => {
  it('sops keeps both, and its readers disagree on which counts (--extract: the first, exec-env: the last): refused naming the key and its place, with `sops edit` to keep one (was: "not valid JSON", fix the syntax)', async () => {
    const plainFile = join(dir, 'twice.json');
    writeFileSync(plainFile, '{\n  "api_token": "Zq7-first",\n  "other": "x",\n  "api_token": "Zq7-last"\n}\n');
    const r = sops(['encrypt', '--age', k1.recipient, plainFile], k1);
    expect([r.code, r.err]).toEqual([0, '']);
    const file = join(tempDir('ops-sops-twice-'), 'assets.enc.json');
    writeFileSync(file, r.out);
    // what the real sops makes of it: both kept, the first extracted, the last in the environment
    expect(sops(['decrypt', '--extract', '["api_token"]', file], k1).out).toBe('Zq7-first');
    expect(sops(['exec-env', file, 'printf %s "$api_token"'], k1, { SOPS_AGE_KEY_FILE: k1.file }).out).toBe('Zq7-last');
    const err = await SecretsFile.fromText(r.out, file, { identities: k1.ids }).then(
      () => undefined,
      (e: unknown) => e as OpsError,
    );
    expect(err).toBeInstanceOf(OpsError);
    expect(err!.message).toBe(
      `${file}: the key api_token is given twice in one map (line 4, column 2): sops keeps both, and its readers disagree on which is the value (\`sops decrypt --extract\` gives the first, \`sops exec-env\` the last), so ops reads neither`,
    );
    expect(err!.hint).toBe(`keep one of them: sops edit ${file} opens it with both; remove the other, save, then try again`);
    expect(`${err!.message} ${err!.hint}`).not.toMatch(/Zq7/);
    // a plain JSON file alike (ops secrets encrypt), its own fix
    expect(() => parseTree('{"a": 1, "db": {"password": "Zq7-a", "password": "Zq7-b"}}', 'json', { file: 'plain.json' })).toThrow(/^plain\.json: the key db\.password is given twice in one map \(line 1, column 38\)/);
  });
});
