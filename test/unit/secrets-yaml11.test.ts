// Decrypted YAML is read by apps with YAML 1.1 readers: the initdata loader reads the plaintext of an encrypted
// initdata file with PyYAML (yaml.safe_load), which takes a bare 12:30 for 750, 2024-01-15 for a date, yes for
// true, `=` for the value tag (and fails). Every string must come back from the real PyYAML as the same string.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decryptFile } from '../../core/secrets/index.ts';
import { identitiesFromText } from '../../core/secrets/keys.ts';
import { yaml11Retypes } from '../../core/secrets/yaml11.ts';
import { parseTree, type Retyped } from '../../core/secrets/tree-parse.ts';
import { LEGACY_LAYOUT, printTree, toYaml } from '../../core/secrets/tree-print.ts';
import { type MapNode, str } from '../../core/secrets/tree.ts';
import { cli, editor, newEnv } from './secrets.helpers.ts';
import { SAFE_LOAD_REPR, TRICKY, withPyyaml } from '../support/pyyaml.ts';

describe('decrypted YAML as a YAML 1.1 reader (PyYAML) reads it', () => {
  it('ops secrets encrypt names each value typed plain that PyYAML read as a boolean, a number or a date and sops stores as text (yes, off, 1:20...): exactly those the loader gets otherwise once encrypted', async () => {
    const e = await newEnv('qa');
    const dir = join(e.root, 'environments', 'qa', 'assets');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'initdata.yml');
    // typed plain as a user writes an initdata file for PyYAML; the quoted ones and true/false/y mean the same to both
    const text = 'users:\n  - email: a@example.org\n    active: yes\n    admin: off\n    staff: ON\n    quoted: "no"\n    real: false\n    legacy: y\n    minutes: 1:20\n    at: 2001-12-14 21:59:43.10 -5\n    name: Zq8-name\n';
    writeFileSync(file, text);
    const before = withPyyaml(SAFE_LOAD_REPR, text) as [string, [string, string][][]][];
    const enc = await cli(e.root, ['secrets', 'encrypt', file], e.env);
    expect(enc.code).toBe(0);
    const after = withPyyaml(SAFE_LOAD_REPR, (await decryptFile(file, { identities: await identitiesFromText(e.key) })).plaintext) as typeof before;
    // the real PyYAML: what changed for the loader
    const changed = before[0]![1][0]!.filter(([, v], i) => after[0]![1][0]![i]![1] !== v).map(([k]) => `users[0].${k.slice(1, -1)}`);
    expect(changed).toEqual(['users[0].active', 'users[0].admin', 'users[0].staff', 'users[0].minutes', 'users[0].at']);
    expect(enc.err).toContain(
      `warning: environments/qa/assets/initdata.yml: 5 values typed without quotes are read by sops as text, but by a YAML 1.1 reader as a boolean, a number or a date (yes, no, on, off; 1:20, a number in base 60; 2001-12-14 21:59:43.10 -5), and PyYAML, which an initdata loader reads the decrypted file with, is one: it got those types from the plain file, and gets the text once encrypted ("off" or "no" is true to Python):\n${changed.map((p) => `  ${p}`).join('\n')}\nfor a boolean write true or false, for a number its digits (every reader reads them so); to keep the text, put it in double quotes: key: "..."\n`,
    );
    expect(enc.err).not.toContain('Zq8');
  });

  it('ops secrets encrypt names each map key typed plain that PyYAML reads as a boolean or a number (on:, Yes:, 1:20:), which it gets as text once encrypted; quoted ones and y: are not named', async () => {
    const e = await newEnv('qa');
    const dir = join(e.root, 'environments', 'qa', 'assets');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'initdata.yml');
    // a workflow-like map and a schedule keyed by times, typed as a user would for PyYAML
    const text = 'triggers:\n  on: Zq8-push\n  "off": Zq8-b\n  y: Zq8-c\n  name: Zq8-d\nanswers:\n  Yes: Zq8-a\nschedule:\n  1:20: Zq8-e\n';
    writeFileSync(file, text);
    const keysOf = 'import json, sys, yaml\nd = yaml.safe_load(sys.stdin)\nprint(json.dumps({k: [repr(x) for x in v] for k, v in d.items()}))';
    const before = withPyyaml(keysOf, text) as Record<string, string[]>;
    const enc = await cli(e.root, ['secrets', 'encrypt', file], e.env);
    expect(enc.code).toBe(0);
    const after = withPyyaml(keysOf, (await decryptFile(file, { identities: await identitiesFromText(e.key) })).plaintext) as typeof before;
    // the real PyYAML: the keys the loader gets otherwise once encrypted
    const changed = Object.entries(before).flatMap(([top, keys]) => keys.flatMap((k, i) => (after[top]![i] !== k ? [`${top}.${k}`] : [])));
    expect(changed).toEqual(['triggers.True', 'answers.True', 'schedule.80']);
    expect(enc.err).toContain(
      'warning: environments/qa/assets/initdata.yml: 3 keys typed without quotes are read by sops as text, but by a YAML 1.1 reader as a boolean, a number or a date (yes, no, on, off; 1:20, a number in base 60; 2001-12-14 21:59:43.10 -5), and PyYAML, which an initdata loader reads the decrypted file with, is one: it got those types from the plain file, and gets the text once encrypted ("off" or "no" is true to Python):\n  triggers.on\n  answers.Yes\n  schedule.1:20\nto keep the text (what every other reader, and sops, takes), put the key in double quotes: "on": ...\n',
    );
    expect(enc.err).not.toContain('values typed');
    expect(enc.err).not.toContain('Zq8');
  });

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

  it('every float, of every magnitude, comes back from the real PyYAML as the same float (a bare 1e+21 is a string to YAML 1.1)', async () => {
    const floats = [1e21, -1e21, 1e22, 1e20, 1e-7, 1e-6, -2e-3, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 2 ** 53, 2 ** 53 + 2, 0.1, 1.5, -5, 0, -0, Infinity, -Infinity, NaN];
    for (let e = -320; e <= 300; e += 20) floats.push(Number(`1e${e}`), Number(`-1.25e${e}`), Number(`9.999999999999999e${e}`));
    // the plain source as YAML 1.2 reads it (a float: 1e+21, 2.0, -0.0, .inf), each as a value, a list item and a nested value
    const src = (v: number) => (Number.isNaN(v) ? '.nan' : !Number.isFinite(v) ? (v < 0 ? '-.inf' : '.inf') : Object.is(v, -0) ? '-0.0' : /[.e]/.test(String(v)) ? String(v) : `${v}.0`);
    const lines = [...floats.map((v, i) => `v${i}: ${src(v)}`), 'items:', ...floats.map((v) => `  - ${src(v)}`), 'nested:', '  deeper:', ...floats.map((v, i) => `    n${i}: ${src(v)}`), ''];
    // Python's own repr of each float (repr(float('1e+21')) is '1e+21', of -0.0 '-0.0')
    const want = withPyyaml('import json, sys\nprint(json.dumps([repr(float(s)) for s in json.load(sys.stdin)]))', JSON.stringify(floats.map((v) => (Object.is(v, -0) ? '-0' : String(v))))) as string[];
    const expected = [...want.map((r, i) => [`'v${i}'`, r]), ["'items'", want], ["'nested'", [["'deeper'", want.map((r, i) => [`'n${i}'`, r])]]]];

    const e = await newEnv('qa');
    const dir = join(e.root, 'environments', 'qa', 'assets');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'initdata.yml');
    writeFileSync(file, lines.join('\n'));
    // read as floats by the parser (sops's YAML 1.2), and so encrypted
    const tree = parseTree(lines.join('\n'), 'yaml', { file: 'src' });
    expect((tree.entries.slice(0, floats.length) as [string, { type?: string; value?: unknown }][]).map(([, v]) => [v.type, Object.is(v.value, -0) ? '-0' : String(v.value)])).toEqual(floats.map((v) => ['float', Object.is(v, -0) ? '-0' : String(v)]));
    const enc = await cli(e.root, ['secrets', 'encrypt', file], e.env);
    expect(enc.code).toBe(0);
    // what ops initdata sends the loader, what ops secrets decrypt prints, and the printer itself
    const decrypted = await decryptFile(file, { identities: await identitiesFromText(e.key) });
    expect(withPyyaml(SAFE_LOAD_REPR, decrypted.plaintext)).toEqual(expected);
    const shown = await cli(e.root, ['secrets', 'decrypt', file], e.env);
    expect(shown.code).toBe(0);
    expect(withPyyaml(SAFE_LOAD_REPR, shown.out)).toEqual(expected);
    expect(withPyyaml(SAFE_LOAD_REPR, toYaml(tree, 4))).toEqual(expected);
    // and the printed text is read back by the YAML 1.2 parser (sops's) as the same floats
    expect(parseTree(shown.out, 'yaml', { file: 'out' })).toEqual(decrypted.tree);
  });

  it('decrypted JSON (an initdata.json the loader reads with PyYAML): a float in exponent form comes back as the same float', () => {
    const floats = [1e21, -1e21, 1e-7, 5e-324, -2e-3, 1.7976931348623157e308, 1.5e300, 0.5];
    // as sops's JSON store reads the plain file (every number here a float)
    const tree = parseTree(`{${floats.map((v, i) => `"v${i}": ${String(v)}`).join(', ')}}\n`, 'json', { file: 'src' });
    // in the layout of a file sops 3.8 wrote (two spaces; PyYAML refuses the tabs sops 3.13 indents JSON with)
    const text = printTree(tree, 'json', LEGACY_LAYOUT);
    // still JSON, with the same numbers
    expect(JSON.parse(text)).toEqual(Object.fromEntries(floats.map((v, i) => [`v${i}`, v])));
    expect(parseTree(text, 'json', { file: 'out' })).toEqual(tree);
    const want = withPyyaml('import json, sys\nprint(json.dumps([repr(float(s)) for s in json.load(sys.stdin)]))', JSON.stringify(floats.map(String))) as string[];
    expect(withPyyaml(SAFE_LOAD_REPR, text)).toEqual(want.map((r, i) => [`'v${i}'`, r]));
  });

  it('decrypted JSON: DEL, C1 controls, NEL, LS and PS come back from the real PyYAML as the same string (escaped, not raw)', () => {
    const strings = ['del\x7f', 'c1\x80\x9f', 'nel\x85x', 'ls\u2028x', 'ps\u2029x', 'ff\ufffe\uffff', 'a\tb', ' x\n  y\n'];
    const tree: MapNode = { kind: 'map', entries: strings.map((s, i) => [`v${i}`, str(s)]) };
    // as ops initdata sends a decrypted JSON file to the loader: two-space indentation
    const text = printTree(tree, 'json', LEGACY_LAYOUT);
    expect(JSON.parse(text)).toEqual(Object.fromEntries(strings.map((s, i) => [`v${i}`, s])));
    expect(parseTree(text, 'json', { file: 'out' })).toEqual(tree);
    expect(withPyyaml('import json, sys, yaml\nprint(json.dumps(yaml.safe_load(sys.stdin.read())))', text)).toEqual(Object.fromEntries(strings.map((s, i) => [`v${i}`, s])));
  });

  it('a string a YAML 1.1 writer (PyYAML) leaves bare that YAML 1.2 reads as a number is named when encrypted (1e5, 1.0e5, 0o17)', () => {
    // the reverse direction: PyYAML writes these strings plain (to it they are strings); sops reads them as numbers
    const strings = ['1e5', '1.0e5', '1E5', '-2e-3', '0o17', '0x_1'];
    const dumped = withPyyaml('import json, sys, yaml\nprint(json.dumps(yaml.safe_dump({("k%d" % i): s for i, s in enumerate(json.load(sys.stdin))})))', JSON.stringify(strings)) as string;
    const retyped: Retyped[] = [];
    const tree: MapNode = parseTree(dumped, 'yaml', { file: 'dumped', retyped });
    const plainStrings = tree.entries.filter(([, v]) => v.kind === 'scalar' && v.type === 'str').map(([k]) => k);
    // each either read as the string it is, or named as stored in another form than typed
    expect([...plainStrings, ...retyped.map((r) => String(r.path[0]))].sort()).toEqual(strings.map((_, i) => `k${i}`).sort());
  });

  it('every string of spaces, line breaks, tabs and characters YAML 1.1 cannot take raw comes back the same, from PyYAML and from this parser, at 2- and 4-space indentation', () => {
    // DEL and C1 controls (not printable: PyYAML refuses the whole text), NEL and LS (line breaks to YAML 1.1), a
    // tab (PyYAML cannot read one plain), leading spaces of a value of several lines (the block style's indentation
    // indicator) and lines of nothing but spaces: every string of them up to 4 characters long
    const alphabet = [' ', '\n', '\t', 'a', '\x7f', '\x85', '\u2028'];
    const made: string[] = [];
    const grow = (p: string) => {
      if (p) made.push(p);
      if (p.length < 4) for (const c of alphabet) grow(p + c);
    };
    grow('');
    made.push('\x80\x9f', '\u2029', '\ufffe\uffff', '-----BEGIN KEY-----\n abc\n-----END KEY-----\n');
    const values = (): MapNode => ({ kind: 'map', entries: made.map((s, i) => [`v${i}`, str(s)]) });
    // as values, list items, nested values and keys
    const tree: MapNode = { kind: 'map', entries: [['top', values()], ['items', { kind: 'list', items: made.map((s) => str(s)) }], ['nested', { kind: 'map', entries: [['deeper', values()]] }], ['keys', { kind: 'map', entries: made.map((s, i) => [s, str(`k${i}`)]) }]] };
    const want = { top: Object.fromEntries(made.map((s, i) => [`v${i}`, s])), items: made, nested: { deeper: Object.fromEntries(made.map((s, i) => [`v${i}`, s])) }, keys: Object.fromEntries(made.map((s, i) => [s, `k${i}`])) };
    for (const indent of [2, 4]) {
      const text = toYaml(tree, indent);
      expect(parseTree(text, 'yaml', { file: 'out' })).toEqual(tree);
      expect(withPyyaml('import json, sys, yaml\nprint(json.dumps(yaml.safe_load(sys.stdin.read())))', text)).toEqual(want);
    }
  });

  it('ops secrets edit keeps a value of several lines that starts with a space as it is when another value changes', async () => {
    const e = await newEnv('qa');
    for (const [key, value] of [['indented', ' x\n  y\n'], ['spaces', ' \n']] as const) expect((await cli(e.root, ['secrets', 'set', 'qa', key, '--exact'], e.env, value)).code).toBe(0);
    const ed = editor(`sed -i 's/^secret_key: .*/secret_key: Zq8-vT3m-Lw5x-Pk2r-Hy7u/' "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd });
    expect(r.code).toBe(0);
    for (const [key, value] of [['indented', ' x\n  y\n'], ['spaces', ' \n'], ['secret_key', 'Zq8-vT3m-Lw5x-Pk2r-Hy7u']] as const) expect((await cli(e.root, ['secrets', 'show', 'qa', '--key', key], e.env)).out).toBe(value);
  });
});
