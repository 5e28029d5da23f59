// Reading sops files: the real-sops vectors decrypt and their MACs verify; every kind of tampering,
// a wrong key or no key is refused with a message that says what is wrong; every value reaches `mask`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OpsError } from '../../core/errors.ts';
import { loadEnvIdentities } from '../../core/secrets/env.ts';
import { generateIdentity, identitiesFromText, loadIdentities } from '../../core/secrets/keys.ts';
import { SecretsFile, decryptFile } from '../../core/secrets/sops.ts';
import { parseTree } from '../../core/secrets/tree-parse.ts';
import { MAX_NESTING, nestingDepth } from '../../core/yaml-depth.ts';
import { needsQuotesForGo, toJson, toYaml } from '../../core/secrets/tree-print.ts';
import { goFormatFloat } from '../../core/secrets/tree-scalars.ts';
import { type MapNode, fromPlain, getEntry } from '../../core/secrets/tree.ts';
import { readVector, tempDir, vector, vectorIdentities, vectorPlaintext } from './secrets.helpers.ts';

const RECIPIENTS = [
  'age1je6kjhzuhdjy3fqptpttxjh5k8q46vygzlgtpuq3030c947pc5tqz9dqvr',
  'age19j4d6v9j7rx5fs629fu387qz4zmlpsqjexa4s08tkfrrmfdl5cwqjlaupd',
  'age13runq29jhy9kfpaegczrzttykerswh0qprq59msgd754yermtfmsa3hwg2',
];

/** Decrypt text, expecting an OpsError; returns its message (and checks nothing was masked). */
async function refused(text: string, file: string, opts: Parameters<typeof SecretsFile.fromText>[2] = {}): Promise<string> {
  const masked: string[] = [];
  try {
    await SecretsFile.fromText(text, file, { identities: await vectorIdentities(), mask: (v) => masked.push(v), ...opts });
  } catch (e) {
    expect(e).toBeInstanceOf(OpsError);
    expect(masked, 'no value may be handed out (or masked) when the file is refused').toEqual([]);
    return (e as OpsError).message;
  }
  throw new Error('expected the file to be refused');
}

describe('comments', () => {
  it('are placed where they stand (before an item, after a value, at the end of a map or list) and printed back there', () => {
    const text = `# top
a: 1 # after a
# before list
list:
  # first item
  - x # after x
  - z
  # end of list
nested:
  # first key
  k: v
  # end of nested
# end
`;
    const tree = parseTree(text, 'yaml', { file: 'f' });
    expect(tree.comments).toEqual([
      { before: 0, text: ' top' },
      { before: 0, text: ' after a', inline: true },
      { before: 1, text: ' before list' },
      { before: 3, text: ' end' },
    ]);
    expect(getEntry(tree, 'list')).toMatchObject({ comments: [{ before: 0, text: ' first item' }, { before: 0, text: ' after x', inline: true }, { before: 2, text: ' end of list' }] });
    expect(getEntry(tree, 'nested')).toMatchObject({ comments: [{ before: 0, text: ' first key' }, { before: 1, text: ' end of nested' }] });
    expect(toYaml(tree).replace(/\n\n# end\n$/, '\n# end\n')).toBe(text);
    // a "#" inside a value or a block scalar is text, not a comment
    expect(parseTree('a: "x # y"\nb: |\n  # not a comment\n', 'yaml', { file: 'f' }).comments).toBeUndefined();
  });
});

describe('files written by the real sops 3.8.1', () => {
  it('decrypt, with their MAC verified (YAML)', async () => {
    const r = await decryptFile(vector('secret.enc.yaml'), { identities: await vectorIdentities() });
    // an int is a bigint in the .env's view (SecretsFile.data), so that a whole float (JSON's 7, below) stays a float
    expect(r.data).toEqual({ ...vectorPlaintext(), int: 7n });
    expect(r.recipients).toEqual(RECIPIENTS);
    expect(r.lastModified).toBe('2024-03-25T22:08:10Z');
    expect(getEntry(r.tree, 'int')).toEqual({ kind: 'scalar', type: 'int', value: 7 });
    expect(getEntry(r.tree, 'float')).toEqual({ kind: 'scalar', type: 'float', value: 3.14 });
    expect(getEntry(r.tree, 'boolean')).toEqual({ kind: 'scalar', type: 'bool', value: true });
    expect(r.tree.entries.map(([k]) => k)).toEqual(['secret', 'string', 'int', 'float', 'boolean', 'complex']);
  });

  it('decrypt, with their MAC verified (JSON; numbers are floats there, as sops reads JSON)', async () => {
    const r = await decryptFile(vector('secret.enc.json'), { identities: await vectorIdentities() });
    expect(r.data).toEqual(vectorPlaintext());
    expect(getEntry(r.tree, 'int')).toEqual({ kind: 'scalar', type: 'float', value: 7 });
    expect(r.plaintext).toContain('"int": 7,');
  });

  it('decrypt with the key given in SOPS_AGE_KEY, SOPS_AGE_KEY_FILE or the default key file', async () => {
    const key = readVector('age-key.txt');
    const home = tempDir();
    const file = join(home, 'k.txt');
    writeFileSync(file, key);
    for (const processEnv of [{ SOPS_AGE_KEY: key, HOME: home }, { SOPS_AGE_KEY_FILE: file, HOME: home }]) {
      expect((await decryptFile(vector('secret.enc.yaml'), { processEnv })).data.secret).toBe('this is a secret');
    }
    const xdg = join(home, 'xdg');
    mkdirSync(join(xdg, 'sops', 'age'), { recursive: true });
    writeFileSync(join(xdg, 'sops', 'age', 'keys.txt'), key);
    expect((await decryptFile(vector('secret.enc.yaml'), { processEnv: { HOME: home, XDG_CONFIG_HOME: xdg } })).data.string).toBe('string');
  });
});

describe('a tampered file is refused, with nothing returned', () => {
  const yaml = readVector('secret.enc.yaml');
  const json = readVector('secret.enc.json');
  const Y = '/x/secret.enc.yaml';
  const J = '/x/secret.enc.json';

  it('one changed byte in a value', async () => {
    const t = yaml.replace('data:LNzAFGse,', 'data:MNzAFGse,');
    expect(t).not.toBe(yaml);
    expect(await refused(t, Y)).toMatch(/^\/x\/secret.enc.yaml: string does not decrypt: its ciphertext was changed/);
  });

  it('one changed byte in a tag, in JSON', async () => {
    const t = json.replace('tag:clb0yzj9gvJSvKmGFhlk5g==', 'tag:clb0yzj9gvJSvKmGFhlk5w==');
    expect(t).not.toBe(json);
    expect(await refused(t, J)).toContain('string does not decrypt');
  });

  it('a deleted value (caught by the MAC only: each remaining value still decrypts)', async () => {
    const t = yaml.replace(/^string: .*\n/m, '');
    expect(await refused(t, Y)).toContain('MAC mismatch');
    const j = json.replace(/^ {2}"string": .*\n/m, '');
    expect(await refused(j, J)).toContain('MAC mismatch');
  });

  it('a deleted list item', async () => {
    const t = yaml.replace(/^ {4}- ENC\[AES256_GCM,data:SBYe.*\n/m, '');
    expect(await refused(t, Y)).toContain('MAC mismatch');
  });

  it('a reordered list', async () => {
    const lines = yaml.split('\n');
    const a = lines.findIndex((l) => l.includes('data:dDBg,'));
    const b = lines.findIndex((l) => l.includes('data:SBYe,'));
    [lines[a], lines[b]] = [lines[b]!, lines[a]!];
    expect(await refused(lines.join('\n'), Y)).toContain('MAC mismatch');
  });

  it('a value moved to another key (its path is bound as associated data)', async () => {
    const secret = /^secret: (.*)$/m.exec(yaml)![1]!;
    const value = /^ {2}value: (.*)$/m.exec(yaml)![1]!;
    const t = yaml.replace(`secret: ${secret}`, `secret: ${value}`).replace(`  value: ${value}`, `  value: ${secret}`);
    expect(await refused(t, Y)).toContain('secret does not decrypt');
  });

  it('an added plain value (unencrypted values are in the MAC too)', async () => {
    expect(await refused(yaml.replace('sops:\n', 'extra_unencrypted: hello\nsops:\n'), Y)).toContain('MAC mismatch');
  });

  it('a changed MAC or lastmodified', async () => {
    expect(await refused(yaml.replace('mac: ENC[AES256_GCM,data:VkH', 'mac: ENC[AES256_GCM,data:WkH'), Y)).toContain('the stored MAC cannot be read');
    expect(await refused(yaml.replace('2024-03-25T22:08:10Z', '2024-03-25T22:08:11Z'), Y)).toContain('sops.mac or sops.lastmodified was changed');
    expect(await refused(yaml.replace(/^ {2}mac: .*\n/m, ''), Y)).toContain('has no MAC');
  });

  it('a malformed ENC value, with what is wrong with it', async () => {
    expect(await refused(yaml.replace('data:LNzAFGse,', 'data:LNz*FGse,'), Y)).toMatch(/string: malformed encrypted value: its data is not valid base64/);
    expect(await refused(yaml.replace(/^string: .*$/m, 'string: ENC[AES256_GCM,data:abc'), Y)).toMatch(/string: malformed encrypted value: it is not of the form ENC\[AES256_GCM/);
    expect(await refused(yaml.replace(/^string: .*$/m, 'string: 12'), Y)).toMatch(/string is a plain int where an encrypted value belongs/);
    const wrongType = yaml.replace('tag:PTFT1DrCt9SiLlspc14oBQ==,type:str', 'tag:PTFT1DrCt9SiLlspc14oBQ==,type:int');
    expect(await refused(wrongType, Y)).toMatch(/string does not decrypt: "int" value is not an integer/);
  });

  it('a file that is not a sops file, or not YAML at all', async () => {
    expect(await refused('a: 1\nb: two\n', '/x/plain.yaml')).toMatch(/^\/x\/plain.yaml is not a sops file: it has no "sops" section/);
    expect(await refused('a: [1\n', '/x/broken.yaml')).toMatch(/^\/x\/broken.yaml is not valid YAML at line 2, column 1/);
    expect(await refused(yaml.replace(/^ {2}lastmodified: .*\n/m, ''), Y)).toContain('sops.lastmodified is missing');
  });

  it('a plain file is said to be no sops file before anything its values break of sops\'s rules ("quote it" is no advice there)', async () => {
    const plain = {
      'an integer above int64': 'a: 10000000000000000000\n',
      'one nested in a list': 'a:\n  - b: 10000000000000000000\n',
      'a key that is no string': '1: x\n',
      '!!binary text that is not base64': 'a: !!binary "%%"\n',
      'an alias, and a key twice': 'a: &x 1\nb: *x\nb: 10000000000000000000\n',
    };
    for (const [what, text] of Object.entries(plain)) {
      const msg = await refused(text, '/x/plain.yaml');
      expect(msg, what).toMatch(/^\/x\/plain.yaml is not a sops file: it has no "sops" section/);
      expect(msg, what).not.toContain('quote');
    }
    expect(await refused('{"a": 10000000000000000000, "1": 2}', '/x/plain.json')).toMatch(/^\/x\/plain.json is not a sops file/);
    // several YAML documents, none of them with a sops section: no sops file either (a sops file's second document
    // is what is wrong with it: said so)
    expect(await refused('a: 1\n---\nb: 2\n', '/x/plain.yaml')).toMatch(/^\/x\/plain.yaml is not a sops file: it has no "sops" section/);
    expect(await refused(`${yaml}---\nb: 2\n`, Y)).toMatch(/holds 2 YAML documents/);
    // a sops file's own values are still judged by sops's rules
    expect(await refused(yaml.replace(/^string: .*$/m, 'string: 10000000000000000000'), Y)).toContain('an integer typed without quotes above the 64-bit signed range');
  });
});

describe('a file whose bytes are not UTF-8', () => {
  it('a plain one is no sops file, said so as of any plain file; a sops file with such a byte is said to be damaged', async () => {
    const dir = tempDir();
    const open = async (name: string, bytes: Buffer) => {
      writeFileSync(join(dir, name), bytes);
      return SecretsFile.open(join(dir, name), { identities: await vectorIdentities() }).then(() => 'opened', (e: OpsError) => e.message);
    };
    expect(await open('plain.yaml', Buffer.from('a: caf\xe9\n', 'latin1'))).toMatch(/plain\.yaml is not a sops file: it has no "sops" section/);
    expect(await open('plain.json', Buffer.from('{"a": "caf\xe9"}', 'latin1'))).toMatch(/plain\.json is not a sops file/);
    const damaged = Buffer.from(readVector('secret.enc.yaml'), 'utf8');
    const at = damaged.indexOf('string: ENC[AES256_GCM,data:') + 'string: ENC[AES256_GCM,data:'.length;
    damaged[at] = 0xe9;
    expect(await open('damaged.yaml', damaged)).toMatch(/damaged\.yaml is not UTF-8 text: invalid byte at offset/);
  });
});

describe('a file nested too deep (1,000 levels of [ ended the process: V8 out of memory inside the YAML parser)', () => {
  const deep = (n: number) => ({
    'flow lists': `a: ${'['.repeat(n)}${']'.repeat(n)}\n`,
    'flow maps': `a: ${'{b: '.repeat(n)}1${'}'.repeat(n)}\n`,
    'block maps': `a:\n${Array.from({ length: n }, (_, i) => `${' '.repeat(i + 1)}k${i}:\n`).join('')}`,
    'compact block lists': `a:\n  ${'- '.repeat(n)}x\n`,
  });

  it(`is refused before any parser reads it, past ${MAX_NESTING} levels, naming the file and the limit`, async () => {
    for (const [what, text] of Object.entries(deep(1000))) {
      expect(await refused(text, '/x/deep.yaml'), what).toMatch(new RegExp(`^/x/deep.yaml nests maps or lists more than ${MAX_NESTING} levels deep: ops reads no file nested so deep`));
      expect(() => parseTree(text, 'yaml', { file: 'f' }), what).toThrow(/nests maps or lists more than/);
    }
    // JSON is read by JSON.parse first: a plain one is no sops file, said so
    expect(await refused(`{"a": ${'['.repeat(1000)}${']'.repeat(1000)}}`, '/x/deep.json')).toMatch(/^\/x\/deep.json is not a sops file/);
  });

  it('nestingDepth: never below what a parser finds; brackets inside values, quotes and comments are no levels', () => {
    for (const [what, text] of Object.entries(deep(MAX_NESTING - 2))) {
      expect(nestingDepth(text), what).toBeLessThanOrEqual(MAX_NESTING);
      expect(nestingDepth(text), what).toBeGreaterThanOrEqual(MAX_NESTING - 2);
      expect(() => parseTree(text, 'yaml', { file: 'f' }), what).not.toThrow();
    }
    const values = `a: "[[[[[[[[[["\nb: '{{{{{{{{'\nc: x[[[[[[[[[[ # [[[[[[[[\nd: |\n  [[[[[[[[[[[[\n# {{{{{{{{{{{\ne: "a \\" [[[[[[[["\n`;
    expect(nestingDepth(values)).toBeLessThanOrEqual(2);
    // 4 levels each (the line a collection starts on may count once more: an upper bound)
    for (const text of ['{"a": [1, {"b": [2]}], "c": "[[[[["}', 'a:\n  b:\n    - c: 1\n    - - d\n']) {
      expect(nestingDepth(text), text).toBeGreaterThanOrEqual(4);
      expect(nestingDepth(text), text).toBeLessThanOrEqual(5);
    }
  });
});

describe('keys', () => {
  it('a wrong key: names your identities and the file\'s recipients', async () => {
    const other = await generateIdentity();
    const msg = await refused(readVector('secret.enc.yaml'), '/x/secret.enc.yaml', { identities: await identitiesFromText(other.secret) });
    expect(msg).toBe(`none of your age identities (${other.recipient}) is a recipient of /x/secret.enc.yaml; its recipients are: ${RECIPIENTS.join(', ')}`);
  });

  it('no key at all: says where it looked', async () => {
    const home = tempDir();
    const err = await SecretsFile.fromText(readVector('secret.enc.yaml'), '/x/s.yaml', { processEnv: { HOME: home } }).catch((e: OpsError) => e);
    expect(err).toBeInstanceOf(OpsError);
    const e = err as OpsError;
    expect(e.message).toBe(`no age identity to decrypt /x/s.yaml: looked in SOPS_AGE_KEY (not set), SOPS_AGE_KEY_FILE (not set), ${home}/.config/sops/age/keys.txt (no such file)`);
    expect(e.hint).toContain('set SOPS_AGE_KEY_FILE');
    // a new key is no way in: the one `ops env new` printed, or one a recipient added
    expect(e.hint).toMatch(/the one `ops env new` printed, or your own once someone who can decrypt added it \(`ops keygen` makes it; a new key alone decrypts nothing\)$/);
  });

  it('SOPS_AGE_KEY_FILE naming a missing file is an error, not silently skipped', async () => {
    await expect(loadIdentities({ SOPS_AGE_KEY_FILE: '/nonexistent/keys.txt', HOME: tempDir() })).rejects.toThrow('SOPS_AGE_KEY_FILE: cannot read /nonexistent/keys.txt: no such file');
  });

  it('SOPS_AGE_KEY may hold several identities, with comments and blank lines', async () => {
    const a = await generateIdentity();
    const b = await generateIdentity();
    const ids = await loadIdentities({ SOPS_AGE_KEY: `# team key\n${a.secret}\n\n  # ci\n${b.secret}\n`, HOME: tempDir() });
    expect(ids.identities.map((i) => i.recipient)).toEqual([a.recipient, b.recipient]);
    expect(ids.identities.map((i) => i.source)).toEqual(['SOPS_AGE_KEY', 'SOPS_AGE_KEY']);
  });

  it('a line that is not a key is refused without echoing it', async () => {
    const err = await loadIdentities({ SOPS_AGE_KEY: '# ok\nhunter2-SECRETVALUE\n', HOME: tempDir() }).catch((e: OpsError) => e);
    expect((err as OpsError).message).toBe('line 2 of SOPS_AGE_KEY is not an age identity');
    expect(JSON.stringify(err)).not.toContain('SECRETVALUE');
    const bad = 'AGE-SECRET-KEY-1QXRVEJH9S4NQU0FPD6V79ESZQ8S6PXH3L8V40EVPTHFH6KNKD4DQ7SKC4Q'; // checksum broken
    await expect(loadIdentities({ SOPS_AGE_KEY: bad, HOME: tempDir() })).rejects.toThrow('line 1 of SOPS_AGE_KEY is not a valid age identity');
  });

  it('a key pasted with what its shell or .env line had around it is named precisely, never shown; whitespace, CRLF and a whole key file are taken', async () => {
    const a = await generateIdentity();
    const home = tempDir();
    // what age's key-file format and sops take: surrounding whitespace, CRLF line ends, age-keygen's comment lines
    for (const value of [`${a.secret}  `, `  ${a.secret}\r\n`, a.keyFile, a.keyFile.replace(/\n/g, '\r\n')]) {
      expect((await loadIdentities({ SOPS_AGE_KEY: value, HOME: home })).identities.map((i) => i.recipient)).toEqual([a.recipient]);
    }
    const refused = async (value: string) => {
      const err = (await loadIdentities({ SOPS_AGE_KEY: value, HOME: home }).catch((e: OpsError) => e)) as OpsError;
      expect(err).toBeInstanceOf(OpsError);
      expect(JSON.stringify({ m: err.message, h: err.hint })).not.toContain(a.secret.slice(16));
      return `${err.message} | ${err.hint}`;
    };
    expect(await refused(`'${a.secret}'`)).toMatch(/^line 1 of SOPS_AGE_KEY is the key in quotes \('…'\); not shown \| SOPS_AGE_KEY's value must be the key alone, without quotes: sops and age read them as part of the key/);
    expect(await refused(`"${a.secret}"\r\n`)).toMatch(/^line 1 of SOPS_AGE_KEY is the key in quotes \("…"\)/);
    expect(await refused(`${a.secret}'`)).toMatch(/^line 1 of SOPS_AGE_KEY is the key with quote marks around it \(none before it, ' after it\)/);
    expect(await refused(`export SOPS_AGE_KEY=${a.secret}`)).toMatch(/^line 1 of SOPS_AGE_KEY is a whole shell or \.env line \(export SOPS_AGE_KEY=…\), not the key alone; not shown \| SOPS_AGE_KEY's value must be the key alone, AGE-SECRET-KEY-1…: the "export SOPS_AGE_KEY=" in front belong/);
    expect(await refused(`# .env\nSOPS_AGE_KEY='${a.secret}'`)).toMatch(/^line 2 of SOPS_AGE_KEY is a whole shell or \.env line \(SOPS_AGE_KEY='…'\)/);
    expect(await refused(`sops_age_key: ${a.secret}`)).toMatch(/is a whole YAML line \(sops_age_key: …\)/);
    expect(await refused(`${a.secret},${(await generateIdentity()).secret}`)).toMatch(/^line 1 of SOPS_AGE_KEY holds 2 private keys on one line \(not shown\) \| give one key a line/);
    expect(await refused(a.secret.toLowerCase())).toMatch(/is a private key written in lower case; not shown/);
    expect(await refused(`key ${a.secret};`)).toMatch(/holds a private key with other text around it \(4 characters before it, 1 after it; not shown\)/);
    // a key file kept on one line, \n for its line breaks (a .env value): its key sits in a comment
    expect(await refused(a.keyFile.trim().replace(/\n/g, '\\n'))).toMatch(/^line 1 of SOPS_AGE_KEY holds a private key with its line breaks written as \\n \(a key file on one line; not shown\) \| give the text with real line breaks/);
    expect(await refused(`${a.secret}\\n`)).toMatch(/written as \\n/);
    expect(await refused('~/.config/sops/age/keys.txt')).toMatch(/^line 1 of SOPS_AGE_KEY looks like a file's path, not a key \(not shown\) \| .*set SOPS_AGE_KEY_FILE to its path instead/);
    // in a key file, the line's place is its file:line
    const dir = tempDir();
    writeFileSync(join(dir, 'keys.txt'), `# created: x\n"${a.secret}"\n`);
    const err = (await loadIdentities({ SOPS_AGE_KEY_FILE: join(dir, 'keys.txt'), HOME: dir }).catch((e: OpsError) => e)) as OpsError;
    expect(err.message).toBe(`${join(dir, 'keys.txt')}:2 is the key in quotes ("…"); not shown`);
    expect(err.hint).toMatch(/^a key line must be the key alone, without quotes/);
  });

  it('a public key where the private key goes is named as such, with where the private key is', async () => {
    const a = await generateIdentity();
    const dir = tempDir();
    writeFileSync(join(dir, 'keys.txt'), `# public key: ${a.recipient}\n${a.recipient}\n`);
    const err = await loadIdentities({ SOPS_AGE_KEY_FILE: join(dir, 'keys.txt'), HOME: dir }).catch((e: OpsError) => e);
    expect((err as OpsError).message).toBe(`${join(dir, 'keys.txt')}:2 is a public key (age1…, a recipient), not an age identity`);
    expect((err as OpsError).hint).toContain('the AGE-SECRET-KEY-1… line');
  });
});

describe('the environment\'s age_key_file', () => {
  it('is read from an environment.yml with an unknown tag without a raw Node warning (its loader says what is wrong, once)', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'environments', 'x'), { recursive: true });
    writeFileSync(join(root, 'environments', 'x', 'environment.yml'), 'app: shop\nenv:\n  X: !!foo bar\nsecrets: {age_key_file: age-key.txt}\n');
    writeFileSync(join(root, 'environments', 'x', 'age-key.txt'), (await generateIdentity()).keyFile);
    const warnings: unknown[] = [];
    const listen = (w: unknown) => warnings.push(w);
    process.on('warning', listen);
    try {
      await loadEnvIdentities(root, 'x', {});
      await new Promise((r) => setImmediate(r)); // process.emitWarning emits on the next tick
    } finally {
      process.off('warning', listen);
    }
    expect(warnings).toEqual([]);
  });

  it('is read through a YAML merge key as the environment\'s loader reads it (config/environment.ts ENVIRONMENT_YAML)', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'environments', 'local'), { recursive: true });
    writeFileSync(join(root, 'environments', 'local', 'environment.yml'), 'app: shop\nenv: &keys {age_key_file: age-key.txt}\nsecrets:\n  <<: *keys\n');
    writeFileSync(join(root, 'environments', 'local', 'age-key.txt'), (await generateIdentity()).keyFile);
    const ids = await loadEnvIdentities(root, 'local', { HOME: root });
    expect(ids.identities).toHaveLength(1);
  });

  it('that cannot be read is said with why, and where a relative one starts from', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'environments', 'local', 'keys'), { recursive: true });
    writeFileSync(join(root, 'environments', 'local', 'environment.yml'), 'app: shop\nsecrets: {age_key_file: age-key.txt}\n');
    const missing = (await loadEnvIdentities(root, 'local', { HOME: root }).catch((e: OpsError) => e)) as OpsError;
    expect([missing.message, missing.hint]).toEqual([
      `secrets.age_key_file of environments/local/environment.yml: cannot read ${join(root, 'environments', 'local', 'age-key.txt')}: no such file`,
      "create it (`ops keygen --output <file>`) or remove that setting; a relative path starts from the environment's folder, environments/local/",
    ]);
    writeFileSync(join(root, 'environments', 'local', 'environment.yml'), 'app: shop\nsecrets: {age_key_file: keys}\n');
    expect(((await loadEnvIdentities(root, 'local', { HOME: root }).catch((e: OpsError) => e)) as OpsError).message).toBe(`secrets.age_key_file of environments/local/environment.yml: cannot read ${join(root, 'environments', 'local', 'keys')}: it is a directory, not an age key file`);
  });
});

describe('the environment\'s age_key_file in an environment.yml using aliases', () => {
  it('is read when 120 hosts share a key by alias (the yaml library\'s default limit, 100 uses, dropped it silently), not when the file is an alias bomb', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'environments', 'x'), { recursive: true });
    const id = await generateIdentity();
    writeFileSync(join(root, 'environments', 'x', 'age-key.txt'), id.keyFile);
    const hosts = Array.from({ length: 120 }, (_, i) => `  - {name: web${i}, host_key: ${i ? '*hk' : '&hk ssh-ed25519 AAAA'}}`).join('\n');
    writeFileSync(join(root, 'environments', 'x', 'environment.yml'), `app: shop\nhosts:\n${hosts}\nsecrets: {age_key_file: age-key.txt}\n`);
    const recipients = (ids: Awaited<ReturnType<typeof loadEnvIdentities>>) => ids.identities.some((i) => i.recipient === id.recipient);
    expect(recipients(await loadEnvIdentities(root, 'x', {}))).toBe(true);
    let bomb = 'app: shop\nsecrets: {age_key_file: age-key.txt}\na0: &a0 [x,x,x,x,x,x,x,x,x,x]\n';
    for (let i = 1; i <= 8; i++) bomb += `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(',')}]\n`;
    writeFileSync(join(root, 'environments', 'x', 'environment.yml'), bomb);
    expect(recipients(await loadEnvIdentities(root, 'x', {}))).toBe(false); // read loosely: the loader says what is wrong
  });
});

describe('an age_key_file inside the repository', () => {
  it('is said for an environment other than the sandbox, with whether git tracks (committed) or ignores it; never for local or a key outside', async () => {
    const root = tempDir();
    const git = (...args: string[]) => execFileSync('git', args, { cwd: root, stdio: 'ignore' });
    git('init', '-q');
    const key = (await generateIdentity()).keyFile;
    for (const env of ['qa', 'local']) {
      mkdirSync(join(root, 'environments', env), { recursive: true });
      writeFileSync(join(root, 'environments', env, 'environment.yml'), 'app: shop\nsecrets: {age_key_file: age-key.txt}\n');
      writeFileSync(join(root, 'environments', env, 'age-key.txt'), key);
    }
    const warned = async (env: string) => {
      const w: string[] = [];
      const ids = await loadEnvIdentities(root, env, { HOME: root }, (m) => w.push(m));
      expect(ids.identities.length).toBe(1); // still used
      return w;
    };
    const inside = "environments/qa/environment.yml: secrets.age_key_file is environments/qa/age-key.txt, a private key inside the repository: that setting is only for the throwaway sandbox (local); keep qa's key out of the repository";
    let w = await warned('qa');
    expect(w).toHaveLength(2);
    expect(w[0]).toContain(inside);
    expect(w[1]).toBe("environments/qa/age-key.txt (qa's private age key) is not ignored by git: the next `git add -A` would commit it; move it out of the repository, or at least add it to .gitignore");
    git('add', 'environments/qa/age-key.txt');
    w = await warned('qa');
    expect(w[1]).toMatch(/^environments\/qa\/age-key\.txt \(qa's private age key\) is tracked by git: it is committed, and anyone with the repository can decrypt qa's secrets; git rm --cached environments\/qa\/age-key\.txt/);
    git('rm', '-q', '--cached', 'environments/qa/age-key.txt');
    writeFileSync(join(root, '.gitignore'), 'age-key.txt\n');
    w = await warned('qa');
    expect(w).toHaveLength(1);
    expect(w[0]).toContain(inside);
    expect(JSON.stringify(w)).not.toContain('AGE-SECRET-KEY');
    expect(await warned('local')).toEqual([]);
    // A GIT_DIR the user's shell exports (a dotfiles repository's): git is still asked of the project's own.
    git('add', '-f', 'environments/qa/age-key.txt');
    const dotfiles = tempDir();
    execFileSync('git', ['init', '-q', '--bare', dotfiles]);
    const before = process.env.GIT_DIR;
    process.env.GIT_DIR = dotfiles;
    try {
      const w2: string[] = [];
      await loadEnvIdentities(root, 'qa', { HOME: root, GIT_DIR: dotfiles }, (m) => w2.push(m));
      expect(w2[1]).toMatch(/^environments\/qa\/age-key\.txt \(qa's private age key\) is tracked by git/);
    } finally {
      if (before === undefined) delete process.env.GIT_DIR;
      else process.env.GIT_DIR = before;
    }
    git('rm', '-q', '--cached', 'environments/qa/age-key.txt');
    // a key outside the repository is what the setting is for (an absolute path)
    const outside = join(tempDir(), 'k.txt');
    writeFileSync(outside, key);
    writeFileSync(join(root, 'environments', 'qa', 'environment.yml'), `app: shop\nsecrets: {age_key_file: ${outside}}\n`);
    expect(await warned('qa')).toEqual([]);
  });
});

describe('masking', () => {
  it('every decrypted value, and each line of a multi-line one, reaches mask before it is returned', async () => {
    const id = await generateIdentity();
    const tree = fromPlain({ a: 'one secret', multi: 'first line\nsecond line\n', n: 12345, list: ['x1', { deep: 'y2' }], plain_unencrypted: 'public' }) as MapNode;
    const text = (await SecretsFile.create('/x/s.yaml', tree, { recipients: [id.recipient] }).render()).text;
    const masked: string[] = [];
    const f = await SecretsFile.fromText(text, '/x/s.yaml', { identities: await identitiesFromText(id.secret), mask: (v) => masked.push(v) });
    expect(f.data.multi).toBe('first line\nsecond line\n');
    expect(masked).toEqual(['one secret', 'first line\nsecond line\n', 'first line', 'second line', '12345', 'x1', 'y2']);
  });

  it('the vectors: all eight encrypted values', async () => {
    const masked: string[] = [];
    await decryptFile(vector('secret.enc.yaml'), { identities: await vectorIdentities(), mask: (v) => masked.push(v) });
    expect(masked).toEqual(['this is a secret', 'string', '7', '3.14', 'this is a secret', 'one', 'two', 'three']);
  });
});

describe('the document model', () => {
  it('formats floats as Go does (what sops encrypts and hashes)', () => {
    expect(goFormatFloat(3.14)).toBe('3.14');
    expect(goFormatFloat(7)).toBe('7');
    expect(goFormatFloat(-0)).toBe('-0');
    expect(goFormatFloat(1e21)).toBe('1000000000000000000000');
    expect(goFormatFloat(1.5e-7)).toBe('0.00000015');
    expect(goFormatFloat(-2.5e25)).toBe('-25000000000000000000000000');
    expect(goFormatFloat(Infinity)).toBe('+Inf');
    expect(goFormatFloat(NaN)).toBe('NaN');
  });

  it('keeps key order, numeric-like keys included, and types', () => {
    const t = parseTree('b: 1\n"10": x\n"2": y\na: 1.0\nc: true\nd: ~\ne: "7"\n', 'yaml', { file: 'f' });
    expect(t.entries.map(([k]) => k)).toEqual(['b', '10', '2', 'a', 'c', 'd', 'e']);
    expect(t.entries.map(([, v]) => (v.kind === 'scalar' ? v.type : v.kind))).toEqual(['int', 'str', 'str', 'float', 'bool', 'null', 'str']);
    // and prints them back so that they read the same
    expect(parseTree(toYaml(t), 'yaml', { file: 'f' })).toEqual(t);
    expect(parseTree(toJson(t), 'json', { file: 'f' }).entries.map(([k]) => k)).toEqual(['b', '10', '2', 'a', 'c', 'd', 'e']);
  });

  it('quotes strings that Go YAML would read as something else', () => {
    for (const s of ['yes', 'on', 'True', '1_000', '0x1F', '2024-01-01', '.inf', '12', '']) expect(needsQuotesForGo(s), s).toBe(true);
    for (const s of ['3.8.1', 'age1abc', 'hello world', 'ENC[AES256_GCM,data:x]']) expect(needsQuotesForGo(s), s).toBe(false);
    const t = fromPlain({ v: 'yes', num: '1_000', d: '2024-01-01', n: 'x' }) as MapNode;
    expect(toYaml(t)).toBe('v: "yes"\nnum: "1_000"\nd: "2024-01-01"\n"n": x\n'); // go-yaml quotes the YAML 1.1 booleans too
  });

  it('a syntax error is said by line, column and kind, never quoting the text it met (it may be a secret)', () => {
    // each case holds the secret-looking text "Zq7" right where the parser fails; the yaml library's own messages
    // quoted it ("Invalid escape sequence \\Zq7", "Unresolved tag: Zq7", "...extra characters: |Zq7")
    const cases: [string, 'yaml' | 'json', RegExp][] = [
      ['a: "s3cr\\Zq7"\n', 'yaml', /line 1, column \d+: an invalid escape sequence in a double-quoted string/],
      // JSON has no \' escape (Go's encoding/json, so sops, refuses it; go-yaml reads it as ' in YAML: secrets-sops.test.ts)
      ['{"a": "it\\\'s-Zq7"}', 'json', /line 1, column \d+: the escape \\' in a double-quoted string, which YAML 1.2 and JSON do not have: inside double quotes write ' on its own/],
      ['a: "s\\xZq7"\n', 'yaml', /an invalid escape sequence/],
      ['a: "s\\uZq77"\n', 'yaml', /an invalid escape sequence/],
      ['a: !Zq7!x y\n', 'yaml', /a tag/],
      ['a: |Zq7\n  x\n', 'yaml', /unexpected characters/],
      ['%YAML 9.Zq7\n---\na: b\n', 'yaml', /not valid YAML/],
      ['{"a": "x\\Zq7"}', 'json', /not valid JSON at line 1, column \d+: an invalid escape sequence/],
      ['{"a": Zq7}', 'json', /not valid JSON/],
    ];
    for (const [text, format, why] of cases) {
      let message = '';
      try {
        parseTree(text, format, { file: 'f', keys: 'lenient' });
      } catch (e) {
        message = `${(e as OpsError).message} ${(e as OpsError).hint ?? ''}`;
      }
      expect(message, text).toMatch(why);
      expect(message, text).not.toMatch(/Zq|Z|q7/);
    }
  });

  it('refuses non-string keys in encrypted files, accepts them (as text) in what a person typed', () => {
    expect(() => parseTree('123: x\n', 'yaml', { file: 'f', keys: 'strict' })).toThrow(/the key 123 is not a string/);
    expect(parseTree('123: x\n', 'yaml', { file: 'f', keys: 'lenient' }).entries[0]![0]).toBe('123');
  });
});
