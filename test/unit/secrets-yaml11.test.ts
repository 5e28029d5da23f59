// Decrypted YAML is read by apps with YAML 1.1 readers: the initdata loader reads the plaintext of an encrypted
// initdata file with PyYAML (yaml.safe_load), which takes a bare 12:30 for 750, 2024-01-15 for a date, yes for
// true, `=` for the value tag (and fails). Every string must come back from the real PyYAML as the same string.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decryptFile } from '../../core/secrets/index.ts';
import { identitiesFromText } from '../../core/secrets/keys.ts';
import { yaml11Retypes } from '../../core/secrets/yaml11.ts';
import { cli, newEnv } from './secrets.helpers.ts';
import { SAFE_LOAD_REPR, TRICKY, withPyyaml } from '../support/pyyaml.ts';

describe('decrypted YAML as a YAML 1.1 reader (PyYAML) reads it', () => {
  it('every tricky string, as a value, a list item and a key, comes back from the real PyYAML as the same string', async () => {
    const e = await newEnv('qa');
    const dir = join(e.root, 'environments', 'qa', 'assets');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'initdata.yml');
    // the plain file with every string double-quoted (JSON strings are YAML): no reader can mistake it
    const values = TRICKY.map((s, i) => `v${i}: ${JSON.stringify(s)}`);
    const keys = TRICKY.filter((s) => s !== '<<').map((s) => `  ${JSON.stringify(s)}: k`);
    const items = TRICKY.map((s) => `  - ${JSON.stringify(s)}`);
    writeFileSync(file, [...values, 'keys:', ...keys, 'items:', ...items, ''].join('\n'));
    const want = withPyyaml(SAFE_LOAD_REPR, readFileSync(file, 'utf8'));
    const enc = await cli(e.root, ['secrets', 'encrypt', file], e.env);
    expect(enc.err).not.toMatch(/error/i);
    expect(enc.code).toBe(0);
    // what ops initdata sends the loader (decryptFile's plaintext), and what ops secrets decrypt prints
    const decrypted = await decryptFile(file, { identities: await identitiesFromText(e.key) });
    expect(withPyyaml(SAFE_LOAD_REPR, decrypted.plaintext)).toEqual(want);
    const shown = await cli(e.root, ['secrets', 'decrypt', file], e.env);
    expect(shown.code).toBe(0);
    expect(withPyyaml(SAFE_LOAD_REPR, shown.out)).toEqual(want);
    // and the strings are those of the table (the check above compares with what PyYAML made of the source)
    expect((want as [string, unknown][]).slice(0, TRICKY.length).map(([, v]) => v)).toEqual(TRICKY.map((s) => withPyyaml('import json, sys; print(json.dumps(repr(sys.stdin.read())))', s)));
  });

  it('quotes every string the real PyYAML resolver would type otherwise when bare (a generated table)', () => {
    // strings made of the characters the YAML 1.1 types are written with, up to 4 long, plus dates and times
    const alphabet = ['0', '1', '7', '9', ':', '.', '_', '-', '+', 'e', 'x', 'b', 'o'];
    const made: string[] = [''];
    let level = [''];
    for (let n = 1; n <= 4; n++) {
      level = level.flatMap((p) => alphabet.map((c) => p + c));
      made.push(...level);
    }
    for (const d of ['2024-01-15', '2024-1-5', '2024-01-5']) for (const t of ['', 'T1:02:03', ' 10:00:00.', 't10:00:00.5', ' 10:00:00 Z', '10:00:00+5', ' 10:00:00 -05:30', ' 10:00']) made.push(d + t);
    // PyYAML's own resolver: the tag it gives each as a plain scalar
    const tags = withPyyaml(
      'import json, sys, yaml\nr = yaml.resolver.Resolver()\nprint(json.dumps([r.resolve(yaml.ScalarNode, s, (True, False)) for s in json.load(sys.stdin)]))',
      JSON.stringify([...made, ...TRICKY]),
    ) as string[];
    const missed = [...made, ...TRICKY].filter((s, i) => tags[i] !== 'tag:yaml.org,2002:str' && !yaml11Retypes(s));
    expect(missed).toEqual([]);
  });
});
