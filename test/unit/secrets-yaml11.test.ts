// Decrypted YAML is read by apps with YAML 1.1 readers: the initdata loader reads the plaintext of an encrypted
// initdata file with PyYAML (yaml.safe_load), which takes a bare 12:30 for 750, 2024-01-15 for a date, yes for
// true, `=` for the value tag (and fails). Every string must come back from the real PyYAML as the same string.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { decryptFile } from '../../core/secrets/index.ts';
import { identitiesFromText } from '../../core/secrets/keys.ts';
import { yaml11Retypes } from '../../core/secrets/yaml11.ts';
import { cli, newEnv } from './secrets.helpers.ts';

/** The Python of the pinned PyYAML venv scripts/setup-machine.sh makes (test/support/pyyaml.txt). */
const PYYAML = `/var/cache/ops-pipeline/py/pyyaml-${readFileSync(join(import.meta.dirname, '..', 'support', 'pyyaml.txt'), 'utf8').split('\n').find((l) => l.trim() && !l.startsWith('#'))!.trim()}/bin/python`;

/** Run `script` with the pinned PyYAML, `input` on stdin; its stdout as JSON. */
function python(script: string, input: string): unknown {
  const r = spawnSync(PYYAML, ['-c', script], { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`PyYAML failed: ${r.stderr.trim().split('\n').pop()}`);
  return JSON.parse(r.stdout);
}

/** Each mapping's keys and values as Python's repr, so that 750 and '12:30' differ (a date is not JSON). */
const LOAD = `import json, sys, yaml
def show(v):
    if isinstance(v, dict): return [[repr(k), show(x)] for k, x in v.items()]
    if isinstance(v, list): return [show(x) for x in v]
    return repr(v)
print(json.dumps(show(yaml.safe_load(sys.stdin.read()))))`;

/** Strings a YAML 1.1 resolver types otherwise when bare, by kind (yaml.org/type), and some near misses. */
const TRICKY = [
  // int and float in base 60
  '1:20', '12:30', '-1:20', '+1:20', '190:20:30', '1:20.5', '190:20:30.15', '1_0:20',
  // timestamps
  '2024-01-15', '2024-1-5 1:02:03', '2002-12-14t21:59:43.10-05:00', '2001-12-14 21:59:43.10 -5', '2024-01-01 10:00:00.', '2001-12-14 21:59:43 +35', '2001-12-14T21:59:43Z',
  // value, merge, null
  '=', '<<', '~', 'null', 'Null', 'NULL', '',
  // bool
  'y', 'Y', 'n', 'N', 'yes', 'Yes', 'NO', 'on', 'ON', 'off', 'Off', 'true', 'False',
  // int
  '0o17', '0x1F', '0x_1', '0b101', '+0b1', '1_000', '017', '0_1', '-0', '+1', '12',
  // float
  '.inf', '-.Inf', '+.INF', '.NaN', '.nan', '1.', '1e3', '1.5e3', '1.0e+3', '.5', '+.5', '1_0.5', '.5_e+3', '1_.',
  // near misses, strings to every reader (left as they are or quoted: either way they must come back)
  '1:60', '0:0', '00:00', '._1', '1__0', '0x', '0b', '-', '+', '.', '_', '0_', 'a=b', '<<x', '12:30 pm', '2024-01', '3.8.1', 'age1abc', 'hello world',
];

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
    const want = python(LOAD, readFileSync(file, 'utf8'));
    const enc = await cli(e.root, ['secrets', 'encrypt', file], e.env);
    expect(enc.err).not.toMatch(/error/i);
    expect(enc.code).toBe(0);
    // what ops initdata sends the loader (decryptFile's plaintext), and what ops secrets decrypt prints
    const decrypted = await decryptFile(file, { identities: await identitiesFromText(e.key) });
    expect(python(LOAD, decrypted.plaintext)).toEqual(want);
    const shown = await cli(e.root, ['secrets', 'decrypt', file], e.env);
    expect(shown.code).toBe(0);
    expect(python(LOAD, shown.out)).toEqual(want);
    // and the strings are those of the table (the check above compares with what PyYAML made of the source)
    expect((want as [string, unknown][]).slice(0, TRICKY.length).map(([, v]) => v)).toEqual(TRICKY.map((s) => python('import json, sys; print(json.dumps(repr(sys.stdin.read())))', s)));
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
    const tags = python(
      'import json, sys, yaml\nr = yaml.resolver.Resolver()\nprint(json.dumps([r.resolve(yaml.ScalarNode, s, (True, False)) for s in json.load(sys.stdin)]))',
      JSON.stringify([...made, ...TRICKY]),
    ) as string[];
    const missed = [...made, ...TRICKY].filter((s, i) => tags[i] !== 'tag:yaml.org,2002:str' && !yaml11Retypes(s));
    expect(missed).toEqual([]);
  });
});
