// A negative zero left unencrypted: the one value the real sops cannot read back as it sealed it (it writes the float
// -0.0 as `-0`, reads that as the integer 0, and fails its own MAC check). The files read here are written by the
// real sops; ops names the sops bug (not "changed without sops"), and refuses to write such a value itself.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatError } from '../../core/errors.ts';
import { identitiesFromText } from '../../core/secrets/keys.ts';
import { SecretsFile } from '../../core/secrets/sops.ts';
import { ageKey, cli, editor, newEnv, sops, tempDir, tempRoot } from './secrets.helpers.ts';

/** `plain` (a `.yaml` or `.json` name) encrypted by the real sops, to a fresh key. */
function sealedBySops(name: string, plain: string) {
  const key = ageKey();
  const dir = tempDir('ops-negzero-');
  const src = join(dir, `plain-${name}`);
  writeFileSync(src, plain);
  const r = sops(['encrypt', '--age', key.recipient, src], key.file);
  expect(r.code, r.err).toBe(0);
  const file = join(dir, name);
  writeFileSync(file, r.out);
  return { key, file };
}

async function openError(file: string, keyFile: string): Promise<string> {
  const ids = await identitiesFromText(readFileSync(keyFile, 'utf8'));
  try {
    await SecretsFile.open(file, { identities: ids });
  } catch (e) {
    return formatError(e);
  }
  throw new Error('opened');
}

describe('a negative zero sops wrote unencrypted', () => {
  const cases: [string, string][] = [
    ['secrets.sops.yaml', 'a_unencrypted: -0.0\nb: Zq7-a-long-secret\n'],
    ['secrets.sops.yaml', 'zero_unencrypted: 0\nb: Zq7-a-long-secret\nc_unencrypted: -0e5\nd_unencrypted: -1e-400\n'],
    ['secrets.sops.json', '{"a_unencrypted": -0.0, "b": "Zq7-a-long-secret", "z_unencrypted": 0}\n'],
  ];
  for (const [name, plain] of cases) {
    it(`is named as sops's bug, with the repair (${name}: ${JSON.stringify(plain).slice(0, 40)}...)`, async () => {
      const { key, file } = sealedBySops(name, plain);
      // sops itself cannot read what it wrote
      expect(sops(['decrypt', file], key.file).err).toMatch(/MAC mismatch/);
      const err = await openError(file, key.file);
      expect(err).toMatch(/MAC mismatch, from a sops bug, not a change/);
      expect(err).not.toMatch(/changed without sops/);
      const named = plain.match(/[a-z]+_unencrypted(?=":? ?: -|: -)/g) ?? [];
      for (const k of named) expect(err).toContain(k);
      expect(err).not.toContain('zero_unencrypted');
      expect(err).not.toContain('z_unencrypted');
      expect(err).not.toContain('Zq7-a-long-secret');
      // the repair the hint gives: write the value back as -0.0; sops and ops then read the file
      writeFileSync(file, readFileSync(file, 'utf8').replace(/(_unencrypted"?: )-0\b(?!\.)/g, '$1-0.0'));
      expect(sops(['decrypt', file], key.file).code).toBe(0);
      const ids = await identitiesFromText(readFileSync(key.file, 'utf8'));
      await expect(SecretsFile.open(file, { identities: ids })).resolves.toBeDefined();
    });
  }

  it('a file changed by hand as well keeps the plain message (a tampered value is not the bug)', async () => {
    const { key, file } = sealedBySops('secrets.sops.yaml', 'a_unencrypted: -0.0\nb_unencrypted: Zq7-plain\n');
    writeFileSync(file, readFileSync(file, 'utf8').replace('Zq7-plain', 'Zq7-other'));
    expect(await openError(file, key.file)).toMatch(/changed without sops or ops/);
  });
});

describe('ops never writes a negative zero unencrypted', () => {
  for (const [name, plain] of [
    ['init.yaml', 'a_unencrypted: -0.0\nb: x\n'],
    ['init.yaml', 'list_unencrypted:\n  - 1\n  - -.0\nb: x\n'],
    ['init.json', '{"a_unencrypted": -0.0, "b": "x"}\n'],
  ] as const) {
    it(`ops secrets encrypt refuses it, nothing written (${name})`, async () => {
      const root = tempRoot();
      const key = ageKey();
      writeFileSync(join(root, '.sops.yaml'), `creation_rules:\n  - age: ${key.recipient}\n`);
      const file = join(root, name);
      writeFileSync(file, plain);
      const r = await cli(root, ['secrets', 'encrypt', file], { SOPS_AGE_KEY_FILE: key.file });
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/is the float -0\.0: sops writes a negative zero/);
      expect(r.err).toMatch(/hint: store it as text, in double quotes \("-0\.0"\)/);
      expect(readFileSync(file, 'utf8')).toBe(plain);
    });
  }

  it('an encrypted -0.0, and a quoted one, are stored (sops reads them back)', async () => {
    const root = tempRoot();
    const key = ageKey();
    writeFileSync(join(root, '.sops.yaml'), `creation_rules:\n  - age: ${key.recipient}\n`);
    writeFileSync(join(root, 'init.json'), '{"a": -0.0, "b_unencrypted": "-0.0"}\n');
    expect((await cli(root, ['secrets', 'encrypt', join(root, 'init.json')], { SOPS_AGE_KEY_FILE: key.file })).code).toBe(0);
    expect(sops(['decrypt', join(root, 'init.json')], key.file).code).toBe(0);
  });

  it('ops secrets edit offers the editor back, and saves it quoted', async () => {
    const e = await newEnv();
    const ed = editor(`if grep -q z_unencrypted "$1"; then sed -i 's/^z_unencrypted: .*/z_unencrypted: "-0.0"/' "$1"; else printf 'z_unencrypted: -0.0\\n' >> "$1"; fi`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd }, 'y\n');
    expect(r.err).toMatch(/z_unencrypted: a value the file's sops rules leave unencrypted is the float -0\.0/);
    expect(r.err).toMatch(/hint: store it as text/);
    expect(r.code).toBe(0);
    expect(readFileSync(e.secrets, 'utf8')).toMatch(/^z_unencrypted: "-0\.0"$/m);
    expect(sops(['decrypt', e.secrets], e.keyFile).code).toBe(0);
  });

  it('a plain -0.0 the file already held (a YAML file, which reads back) is kept when another value changes', async () => {
    const { key, file } = sealedBySops('secrets.sops.yaml', 'a_unencrypted: -0.0\nb: Zq7-a-long-secret\n');
    // repaired by hand as the hint says (sops reads it)
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^a_unencrypted: -0$/m, 'a_unencrypted: -0.0'));
    const f = await SecretsFile.open(file, { identities: await identitiesFromText(readFileSync(key.file, 'utf8')) });
    f.set(['c'], { kind: 'scalar', type: 'str', value: 'Zq7-another-one' });
    await f.save();
    expect(sops(['decrypt', file], key.file).code).toBe(0);
  });
});
