// Interop with independent implementations: files this project writes decrypt with sops-age (another
// sops reader), and each recipient's copy of their data key opens with Debian's `age` CLI.
// Needs the `age` package (apt-get install age); CI installs it.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decryptSops } from 'sops-age';
import { describe, expect, it } from 'vitest';
import { generateIdentity, identitiesFromText } from '../../core/secrets/keys.ts';
import { parseSops } from '../../core/secrets/sops-metadata.ts';
import { SecretsFile } from '../../core/secrets/sops.ts';
import { parseTree } from '../../core/secrets/tree-parse.ts';
import { type MapNode, toPlain } from '../../core/secrets/tree.ts';
import { readVector, tempDir, vectorPlaintext } from './secrets.helpers.ts';

function ageCli(): string {
  try {
    return execFileSync('age', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('the `age` command is missing: apt-get install -y age (Debian\'s age 1.1.1 is what these tests check against)');
  }
}

// sops-age leaves numeric map keys out of the associated data, so the interop sample has none
const SAMPLE = (): MapNode =>
  parseTree(
    `database_url: postgresql+asyncpg://user:p%40ss@db:5432/app
secret_key: abcdefghijklmnopqrstuvwxyz0123456789
port: 5432
ratio: 0.5
whole: 3.0
debug: false
enabled: true
nothing: null
empty: ""
multi: |
  first
  second
list: [one, two, {nested: three}]
deep: {a: {b: {c: "d: e"}}}
note_unencrypted: readable
`,
    'yaml',
    { file: 'sample' },
  );

describe('files written by this project', () => {
  for (const fileType of ['yaml', 'json'] as const) {
    it(`decrypt with sops-age, an independent implementation (${fileType})`, async () => {
      const [a, b] = [await generateIdentity(), await generateIdentity()];
      const { text } = await SecretsFile.create(`/x/s.${fileType}`, SAMPLE(), { recipients: [a.recipient, b.recipient] }).render();
      const expected = toPlain(SAMPLE());
      expect(await decryptSops(text, { secretKey: a.secret, fileType })).toEqual(expected);
      expect(await decryptSops(text, { secretKey: b.secret, fileType })).toEqual(expected);
      // and sops-age's own output for the real-sops vectors matches ours
      expect(await decryptSops(readVector(`secret.enc.${fileType}`), { secretKey: readVector('age-key.txt').match(/AGE-SECRET-KEY-\S+/)![0], fileType })).toEqual(vectorPlaintext());
    });
  }

  it("each recipient's copy of the data key opens with Debian's age CLI", async () => {
    ageCli();
    const dir = tempDir();
    const ids = [await generateIdentity(), await generateIdentity()];
    const file = join(dir, 'secrets.sops.yaml');
    const f = SecretsFile.create(file, SAMPLE(), { recipients: ids.map((i) => i.recipient) });
    await f.save();
    const key = (await SecretsFile.open(file, { identities: await identitiesFromText(ids[0]!.secret) })).dataKeyForTests();
    const doc = parseSops(readFileSync(file, 'utf8'), file);
    expect(doc.meta.age.map((s) => s.recipient)).toEqual(ids.map((i) => i.recipient));
    doc.meta.age.forEach((stanza, i) => {
      const keyFile = join(dir, `key${i}.txt`);
      writeFileSync(keyFile, ids[i]!.keyFile, { mode: 0o600 });
      const out = execFileSync('age', ['-d', '-i', keyFile], { input: stanza.enc });
      expect(out.length).toBe(32);
      expect(out.equals(key)).toBe(true);
    });
    // the other way round: a key file written by age-keygen works here
    const keygen = join(dir, 'from-age-keygen.txt');
    execFileSync('age-keygen', ['-o', keygen], { stdio: 'ignore' });
    const theirs = readFileSync(keygen, 'utf8');
    const recipient = execFileSync('age-keygen', ['-y', keygen], { encoding: 'utf8' }).trim();
    f.addRecipient(recipient);
    await f.save();
    const opened = await SecretsFile.open(file, { identities: await identitiesFromText(theirs, keygen) });
    expect(opened.data.port).toBe(5432n); // an int: a bigint (SecretsFile.data)
  });
});
