// `ops secrets edit`: a value that held text, typed over as `{abc}`, `[abc]` (a map or a list written on one line)
// or as a null word (`null`, `~`), is refused and offered back, named by key and line with how to quote it, as a tag
// is; a new key, or one that held a map, a list or nothing, may be given a list, a map or null so.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { editSecrets } from '../../core/secrets/edit.ts';
import { identitiesFromText } from '../../core/secrets/keys.ts';
import { SecretsFile } from '../../core/secrets/sops.ts';
import { parseTree } from '../../core/secrets/tree-parse.ts';
import { cli, editor, newEnv, tempDir } from './secrets.helpers.ts';

async function secretsFile(text: string) {
  const keyFile = join(tempDir('ops-flow-key-'), 'key.txt');
  execFileSync('age-keygen', ['-o', keyFile], { stdio: 'ignore' });
  const recipient = execFileSync('age-keygen', ['-y', keyFile], { encoding: 'utf8' }).trim();
  const file = join(tempDir('ops-flow-'), 'secrets.sops.yaml');
  const ids = await identitiesFromText(readFileSync(keyFile, 'utf8'));
  await SecretsFile.create(file, parseTree(text, 'yaml', { file: 't' }), { recipients: [recipient] }).save();
  return { file, open: () => SecretsFile.open(file, { identities: ids }) };
}

/** Edit `start` into `edited` (the whole text); reopened (`answers`), the user quotes `[Zq8-OLD]`. */
async function edit(start: string, edited: (text: string) => string, answers: boolean[] = []) {
  const s = await secretsFile(start);
  const before = readFileSync(s.file, 'utf8');
  const warnings: string[] = [];
  let rounds = 0;
  const r = await editSecrets(await s.open(), {
    edit: async (tmp) => {
      rounds++;
      writeFileSync(tmp, rounds === 1 ? edited(readFileSync(tmp, 'utf8')) : readFileSync(tmp, 'utf8').replace('[Zq8-OLD]', '"[Zq8-OLD]"'));
      return { code: 0, signal: null };
    },
    confirm: async () => answers.shift() ?? false,
    warn: (m) => warnings.push(m),
  });
  return { r, warnings: warnings.join('\n'), unchanged: readFileSync(s.file, 'utf8') === before, data: (await s.open()).data, rounds };
}

describe('ops secrets edit: a map, a list or null typed over text', () => {
  const CASES: [typed: string, kind: RegExp][] = [
    ['{Zq8abc}', /starts with "\{", which YAML reads as a map written on one line/],
    ['{Zq8: abc}', /starts with "\{", which YAML reads as a map/],
    ['{}', /starts with "\{"/],
    ['[Zq8abc]', /starts with "\[", which YAML reads as a list written on one line/],
    ['[Zq8, abc]', /starts with "\[", which YAML reads as a list/],
    ['[]', /starts with "\["/],
    ['null', /is a word YAML reads as null \(null, Null, NULL or ~\): the key would hold no value/],
    ['~', /reads as null/],
    ['NULL', /reads as null/],
  ];
  for (const [typed, kind] of CASES) {
    it(`password: ${typed} over a password: refused by key and line, how to quote it, never the value; answered n, the file unchanged`, async () => {
      const { r, warnings, unchanged } = await edit('name: Zq8-vT3m-Lw5x-Pk2r\npassword: Zq8-old-password\n', (t) => t.replace('Zq8-old-password', typed));
      expect(r).toMatchObject({ status: 'aborted', reason: 'password would not be stored as typed (quote it); nothing was changed' });
      expect(warnings).toMatch(kind);
      expect(warnings).toContain('password (line 2): held text, and now');
      expect(warnings).toContain('put it in double quotes');
      if (typed.includes('Zq8')) expect(warnings).not.toContain(typed);
      expect(unchanged).toBe(true);
    });
  }

  it('a list item that held text, typed over as ~: refused too', async () => {
    const { r, warnings } = await edit('hosts:\n  - Zq8-first\n  - Zq8-second\n', (t) => t.replace('Zq8-second', '~'));
    expect(r.status).toBe('aborted');
    expect(warnings).toContain('hosts[1] (line 3): held text, and now is a word YAML reads as null');
  });

  it('quoted, or fixed after a reopen, it is stored as the text typed', async () => {
    const quoted = await edit('password: Zq8-old-password\n', (t) => t.replace('Zq8-old-password', '"{Zq8abc}"'));
    expect(quoted.r.status).toBe('saved');
    expect(quoted.data).toEqual({ password: '{Zq8abc}' });
    const fixed = await edit('password: Zq8-old-password\n', (t) => t.replace('Zq8-old-password', '[Zq8-OLD]'), [true]);
    expect(fixed.rounds).toBe(2);
    expect(fixed.r.status).toBe('saved');
    expect(fixed.data).toEqual({ password: '[Zq8-OLD]' });
  });

  it('a new key, or one that held a list, a map or nothing, takes a list, a map or null written so: not refused', async () => {
    const { r, warnings, data } = await edit('hosts:\n  - a.example\nopts:\n  x: "1"\nempty:\nname: Zq8-vT3m-Lw5x-Pk2r\n', (t) =>
      t.replace(/hosts:\n(?: {2,}- a\.example\n)/, 'hosts: [a.example, b.example]\n').replace(/opts:\n\s+x: "1"\n/, 'opts: {x: "2"}\n').replace(/empty: null\n/, 'empty: ~\n') + 'list: [Zq8-one, Zq8-two]\nnothing: null\nmap: {k: v}\n',
    );
    expect(warnings).not.toContain('would not be stored');
    expect(r.status).toBe('saved');
    expect(data).toEqual({ hosts: ['a.example', 'b.example'], opts: { x: '2' }, empty: null, name: 'Zq8-vT3m-Lw5x-Pk2r', list: ['Zq8-one', 'Zq8-two'], nothing: null, map: { k: 'v' } });
  });

  it('through the CLI: refused and offered back; answered n, the file is byte-identical', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const ed = editor(`sed -i 's/^secret_key: .*/secret_key: [Zq8abc]/' "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd }, 'n\n');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/secret_key \(line \d+\): held text, and now starts with "\[", which YAML reads as a list/);
    expect(r.err).not.toContain('Zq8abc');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  });
});
