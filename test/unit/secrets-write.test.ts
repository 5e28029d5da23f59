// Writing sops files: the golden test against the real sops output, round trips with every value type,
// unchanged plaintext → unchanged bytes, rotation, recipients, and atomic writes.
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { OpsError } from '../../core/errors.ts';
import { writeFileAtomic } from '../../core/secrets/atomic.ts';
import { MacBuilder, aadOf, encryptScalar, openText, parseEnc } from '../../core/secrets/cipher.ts';
import { generateIdentity, identitiesFromText } from '../../core/secrets/keys.ts';
import { SOPS_VERSION, parseSops } from '../../core/secrets/sops-metadata.ts';
import { SecretsFile } from '../../core/secrets/sops.ts';
import { parseTree } from '../../core/secrets/tree-parse.ts';
import { type MapNode, forEachLeaf, fromPlain, getEntry, mapLeaves, str } from '../../core/secrets/tree.ts';
import { readVector, tempDir, vectorIdentities } from './secrets.helpers.ts';

const ENC_VALUE = /ENC\[AES256_GCM,data:[^\]]+\]/g;

describe('golden test: the encryptor against the real sops 3.8.1 output', () => {
  for (const name of ['secret.enc.yaml', 'secret.enc.json']) {
    it(`re-encrypting ${name}'s plaintext with its own data key and IVs reproduces its values and MAC`, async () => {
      const text = readVector(name);
      const f = await SecretsFile.fromText(text, `/v/${name}`, { identities: await vectorIdentities() });
      const key = f.dataKeyForTests();
      const doc = parseSops(text, `/v/${name}`);
      // 1. value by value: same key, IV and path → the very ciphertext sops wrote
      const mac = new MacBuilder();
      const plainLeaves: { leaf: Parameters<MacBuilder['add']>[0]; keys: string[] }[] = [];
      forEachLeaf(f.tree, (leaf, keys) => plainLeaves.push({ leaf, keys }));
      let i = 0;
      forEachLeaf(doc.data, (stored, keys) => {
        const { leaf } = plainLeaves[i++]!;
        expect(encryptScalar(leaf, key, aadOf(keys), parseEnc(stored.value as string).iv)).toBe(stored.value);
        mac.add(leaf);
      });
      expect(i).toBe(9);
      // 2. the MAC: what sops stored (decrypted) is what we compute
      expect(openText(parseEnc(doc.meta.mac), key, doc.meta.lastModified)).toBe(mac.hex());
      // 3. the whole file, byte for byte (same lastmodified, same IV for the sealed MAC)
      const again = await f.render({ force: true, lastModified: doc.meta.lastModified, macIv: parseEnc(doc.meta.mac).iv });
      expect(again.text).toBe(text);
    });
  }
});

const doc0 = (text: string, file: string) => parseSops(text, file);

async function newKey() {
  const id = await generateIdentity();
  return { ...id, ids: await identitiesFromText(id.secret) };
}

/** Every kind of value; written as YAML so that numeric-like keys keep their order (a JS object would not). */
const SAMPLE = () =>
  parseTree(
    `text: hello
0word: numeric-like keys keep their place
"10": ten
"2": two
count: 42
ratio: 0.25
whole_float: 2.0
big: 1.0e+21
on: true
off: false
nothing: null
empty: ""
multi: |
  line 1
  line 2
unicode: "héllo ✓ <&>"
list: [a, b, {nested: c}, 7, [1.5]]
deep: {a: {b: {c: d}}}
user_unencrypted: visible
nested_unencrypted: {anything: below is visible too}
`,
    'yaml',
    { file: 'sample' },
  );

describe('encrypting', () => {
  for (const format of ['yaml', 'json'] as const) {
    it(`round-trips every value type, key order and _unencrypted values (${format})`, async () => {
      const k = await newKey();
      const tree = SAMPLE();
      const file = `/x/s.${format}`;
      const { text } = await SecretsFile.create(file, tree, { recipients: [k.recipient] }).render();
      const back = await SecretsFile.fromText(text, file, { identities: k.ids });
      // an integer stays an int in JSON too, as sops (3.10 and later) reads JSON numbers
      expect(back.tree).toEqual(tree);
      // values are encrypted, except empty strings and _unencrypted ones; keys stay readable
      // Looked for outside the random parts (ciphertexts, IVs, tags, the age-wrapped data key, recipients), where
      // base64 or bech32 may spell any short word by chance.
      const readable = text
        .replace(/ENC\[[^\]]*\]/g, 'ENC[]')
        .replace(/-----BEGIN AGE ENCRYPTED FILE-----[\s\S]*?-----END AGE ENCRYPTED FILE-----/g, 'AGE')
        .replace(/age1[0-9a-z]+/g, 'age1');
      expect(readable).not.toContain('hello');
      expect(readable).not.toContain('ten');
      expect(text).toContain('visible');
      expect(text).toContain('below is visible too');
      expect(text).toContain('0word');
      expect(text).toMatch(/ENC\[AES256_GCM,data:[^,]+,iv:[^,]+,tag:[^,]+,type:int\]/);
      expect(doc0(text, file).data.entries.map(([key]) => key).slice(0, 4)).toEqual(['text', '0word', '10', '2']);
      expect(text).toMatch(/type:float\]/);
      expect(text).toMatch(/type:bool\]/);
      const doc = parseSops(text, file);
      expect(doc.meta.version).toBe(SOPS_VERSION);
      expect(doc.meta.unencryptedSuffix).toBe('_unencrypted');
      expect(doc.meta.lastModified).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      expect(getEntry(doc.data, 'empty')).toEqual(str(''));
      // every IV is 32 bytes, and fresh
      const ivs = [...text.matchAll(/iv:([^,]+),/g)].map((m) => m[1]!);
      expect(ivs.every((iv) => Buffer.from(iv, 'base64').length === 32)).toBe(true);
      expect(new Set(ivs).size).toBe(ivs.length);
    });
  }

  it('writes a new file the way the pinned sops lays it out; a file in sops 3.8.1\'s layout keeps it', async () => {
    const k = await newKey();
    const { text } = await SecretsFile.create('/x/s.yaml', fromPlain({ a: 'x', l: ['y'] }) as MapNode, { recipients: [k.recipient] }).render();
    // (the armored key's lines stand 2 columns deeper than go-yaml puts them: whitespace of a block scalar only)
    const head = ['a: ENC[', 'l:', '    - ENC[', 'sops:', '    age:', '        - enc: |', '              -----BEGIN AGE ENCRYPTED FILE-----'];
    const lines = text.split('\n');
    head.forEach((h, i) => expect(lines[i]!.startsWith(h), `line ${i + 1}: ${lines[i]}`).toBe(true));
    expect(text).toMatch(new RegExp(`\\n {10}recipient: ${k.recipient}\\n {4}lastmodified: "\\d{4}-[^"]+Z"\\n {4}mac: ENC\\[AES256_GCM,[^\\n]+type:str\\]\\n {4}unencrypted_suffix: _unencrypted\\n {4}version: 3\\.13\\.3\\n$`));
    // the 3.8.1 vector, changed and rewritten: 2-space indentation and the 3.8.1 sops section stay
    const old = await SecretsFile.fromText(readVector('secret.enc.yaml'), '/v/secret.enc.yaml', { identities: await vectorIdentities() });
    old.set(['string'], str('changed'));
    const again = (await old.render()).text;
    expect(again).toMatch(/\nsops:\n {2}kms: \[\]\n {2}gcp_kms: \[\]\n/);
    expect(again).toMatch(/\n {2}version: 3\.8\.1\n$/);
    expect(again).toContain('\n  array:\n    - ENC[');
  });

  it('re-encrypting an unchanged plaintext leaves the file byte-identical', async () => {
    const k = await newKey();
    const dir = tempDir();
    const file = join(dir, 'secrets.sops.yaml');
    await SecretsFile.create(file, SAMPLE(), { recipients: [k.recipient] }).save();
    const before = readFileSync(file, 'utf8');
    const f = await SecretsFile.open(file, { identities: k.ids });
    f.setTree(parseTree(f.plaintext(), 'yaml', { file: 'edited' })); // through text and back, as an edit does
    f.set(['text'], str('hello')); // the same value again
    expect(await f.save()).toBe(false);
    expect(readFileSync(file, 'utf8')).toBe(before);
    // even when forced to re-render, every value keeps its ciphertext (same IV)
    const forced = await f.render({ force: true });
    expect(forced.text.match(ENC_VALUE)!.slice(0, -1)).toEqual(before.match(ENC_VALUE)!.slice(0, -1));
  });

  it('changing one value re-encrypts only that value, and reseals the MAC', async () => {
    const k = await newKey();
    const dir = tempDir();
    const file = join(dir, 's.yaml');
    await SecretsFile.create(file, SAMPLE(), { recipients: [k.recipient] }).save();
    const before = readFileSync(file, 'utf8');
    const f = await SecretsFile.open(file, { identities: k.ids });
    f.set(['deep', 'a', 'b', 'c'], str('changed'));
    f.set(['new', 'nested', 'key'], str('created'));
    expect(await f.save({ now: new Date('2030-01-02T03:04:05Z') })).toBe(true);
    const after = readFileSync(file, 'utf8');
    const b = before.match(ENC_VALUE)!;
    const a = after.match(ENC_VALUE)!;
    const changed = a.filter((v) => !b.includes(v));
    expect(changed.length).toBe(3); // deep.a.b.c, new.nested.key, and the MAC
    expect(after).toContain('lastmodified: "2030-01-02T03:04:05Z"');
    const back = await SecretsFile.open(file, { identities: k.ids });
    expect(back.data.deep).toEqual({ a: { b: { c: 'changed' } } });
    expect(back.data.new).toEqual({ nested: { key: 'created' } });
  });

  it('refuses to set through a value that is not a map, and the reserved "sops" key', async () => {
    const f = SecretsFile.create('/x/s.yaml', fromPlain({ a: 'x', l: [1] }) as MapNode, { recipients: [(await newKey()).recipient] });
    expect(() => f.set(['a', 'b'], str('v'))).toThrow('cannot set a.b: a is a str, not a map');
    expect(() => f.set(['l', 'b'], str('v'))).toThrow('cannot set l.b: l is a list, not a map');
    expect(() => f.set(['sops'], str('v'))).toThrow('"sops" is reserved');
  });
});

describe('data key and recipients', () => {
  it('rotation: new data key, every value re-encrypted, values kept', async () => {
    const k = await newKey();
    const file = join(tempDir(), 's.yaml');
    await SecretsFile.create(file, SAMPLE(), { recipients: [k.recipient] }).save();
    const before = readFileSync(file, 'utf8');
    const f = await SecretsFile.open(file, { identities: k.ids });
    const oldKey = f.dataKeyForTests();
    f.rotate();
    expect(await f.save()).toBe(true);
    const after = readFileSync(file, 'utf8');
    const b = new Set(before.match(ENC_VALUE));
    expect(after.match(ENC_VALUE)!.filter((v) => b.has(v))).toEqual([]);
    const back = await SecretsFile.open(file, { identities: k.ids });
    expect(back.dataKeyForTests().equals(oldKey)).toBe(false);
    expect(back.tree).toEqual(SAMPLE());
  });

  it('adding a recipient keeps the data key; removing one rotates it, and that key can no longer decrypt', async () => {
    const a = await newKey();
    const b = await newKey();
    const file = join(tempDir(), 's.yaml');
    await SecretsFile.create(file, SAMPLE(), { recipients: [a.recipient] }).save();
    const f = await SecretsFile.open(file, { identities: a.ids });
    const key1 = f.dataKeyForTests();
    expect(f.addRecipient(b.recipient)).toBe(true);
    expect(f.addRecipient(b.recipient)).toBe(false);
    await f.save();
    const asB = await SecretsFile.open(file, { identities: b.ids });
    expect(asB.dataKeyForTests().equals(key1)).toBe(true);
    expect(asB.recipients).toEqual([a.recipient, b.recipient]);

    asB.removeRecipient(b.recipient);
    await asB.save();
    await expect(SecretsFile.open(file, { identities: b.ids })).rejects.toThrow(`none of your age identities (${b.recipient}) is a recipient of ${file}; its recipients are: ${a.recipient}`);
    const asA = await SecretsFile.open(file, { identities: a.ids });
    expect(asA.dataKeyForTests().equals(key1)).toBe(false);
    expect(asA.tree).toEqual(SAMPLE());
    expect(() => asA.removeRecipient(a.recipient)).toThrow('is the only recipient');
    expect(() => asA.addRecipient('age1notakey')).toThrow('is not a valid age recipient');
    // several, as .sops.yaml lists them: said so, with how to give each
    expect(() => asA.addRecipient(`${a.recipient},${b.recipient}`)).toThrow(`recipient: 2 recipients in one value (${a.recipient}, ${b.recipient})`);
    expect(() => asA.addRecipient(a.secret)).toThrow('that is a private key (AGE-SECRET-KEY-…), not a recipient');
    // A private key or another value pasted in the wrong place, however damaged, is never quoted.
    for (const pasted of [a.secret.slice(1), `# ${a.secret}`, a.secret.toLowerCase(), `Age-Secret-Key-1${a.secret.slice(16)}`, 'ghp_R3alT0kenL00king1234567890abcdef', `${a.secret.slice(0, 14)}`]) {
      let said = '';
      try {
        asA.addRecipient(pasted);
      } catch (e) {
        said = `${(e as Error).message}\n${(e as OpsError).hint ?? ''}`;
      }
      expect(said, pasted).toMatch(/is not an age recipient|not a recipient/);
      expect(said, pasted).not.toContain(pasted.slice(-20));
    }
  });

  it('setRecipients (updatekeys): adds without rotating, rotates when one is removed', async () => {
    const [a, b, c] = [await newKey(), await newKey(), await newKey()];
    const file = join(tempDir(), 's.json');
    await SecretsFile.create(file, SAMPLE(), { recipients: [a.recipient, b.recipient] }).save();
    const f = await SecretsFile.open(file, { identities: a.ids });
    const key1 = f.dataKeyForTests();
    expect(f.setRecipients([a.recipient, b.recipient, c.recipient])).toEqual({ added: [c.recipient], removed: [] });
    expect(f.dataKeyForTests().equals(key1)).toBe(true);
    expect(f.setRecipients([a.recipient, c.recipient])).toEqual({ added: [], removed: [b.recipient] });
    expect(f.dataKeyForTests().equals(key1)).toBe(false);
    await f.save();
    expect((await SecretsFile.open(file, { identities: c.ids })).recipients).toEqual([a.recipient, c.recipient]);
    await expect(SecretsFile.open(file, { identities: b.ids })).rejects.toThrow('none of your age identities');
  });
});

describe('atomic writes', () => {
  it('replace the file by rename (a new inode), keep its mode, leave no temporary file', async () => {
    const dir = tempDir();
    const file = join(dir, 's.yaml');
    writeFileSync(file, 'old\n', { mode: 0o640 });
    const ino = statSync(file).ino;
    await writeFileAtomic(file, 'new\n');
    expect(readFileSync(file, 'utf8')).toBe('new\n');
    expect(statSync(file).ino).not.toBe(ino); // the old file was never truncated in place
    expect(statSync(file).mode & 0o777).toBe(0o640);
    expect(readdirSync(dir)).toEqual(['s.yaml']);
  });

  it('a failed write leaves the old file whole and no temporary file', async () => {
    const dir = tempDir();
    const target = join(dir, 'target');
    mkdirSync(target); // rename() onto a directory fails
    writeFileSync(join(target, 'keep'), 'x');
    await expect(writeFileAtomic(target, 'new')).rejects.toThrow();
    expect(existsSync(join(target, 'keep'))).toBe(true);
    expect(readdirSync(dir)).toEqual(['target']);
  });
});
