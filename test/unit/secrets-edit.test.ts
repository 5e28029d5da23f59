// `ops secrets edit` keeping what the user typed: values YAML would read otherwise than typed (a tag, an alias,
// an anchor, a merge key, a comment) are refused and offered back; an edit whose file changed on disk meanwhile is
// offered back with a note, or kept aside encrypted; and secrets files written through a symbolic link, with a
// clear message when the directory cannot be written. The real sops (on PATH, as in secrets-sops.test.ts) checks
// what was stored.
import { chmodSync, existsSync, lstatSync, readFileSync, rmSync, readdirSync, readlinkSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InterruptedError, takeLock, writeError, writeIfUnchanged } from '../../core/secrets/atomic.ts';
import { type EditIo, editSecrets } from '../../core/secrets/edit.ts';
import { bytesNode, str } from '../../core/secrets/tree.ts';
import { cli, editor, newEnv, open, secretsFile, sops, tempDir } from './secrets.helpers.ts';

/** Every file under `dir` (recursively), as text. */
function allText(dir: string): string {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isFile())
    .map((p) => readFileSync(p, 'utf8'))
    .join('\n');
}

/**
 * An editor session scripted by `change` (the text as opened, and which round of this helper's edits it is, from 1),
 * answering the reopen prompt from `answers`, warnings collected.
 */
function scriptedEdit(change: (text: string, round: number) => string) {
  const warnings: string[] = [];
  let round = 0;
  const io = (answers: boolean[]): EditIo => ({
    edit: async (tmp) => {
      round++;
      writeFileSync(tmp, change(readFileSync(tmp, 'utf8'), round));
      return { code: 0, signal: null };
    },
    confirm: async () => answers.shift() ?? false,
    warn: (m) => warnings.push(m),
  });
  return { io, warnings, rounds: () => round };
}

describe('ops secrets edit: a value YAML reads otherwise than typed', () => {
  // each as a user types a password; what the yaml package made of it before: "", null, "y", garbage bytes, null, ""
  const CASES: [key: string, typed: string, quoted: string, kind: RegExp][] = [
    ['password', '!Zq7-secret', '"!Zq7-secret"', /starts with "!", which YAML reads as a tag/],
    ['token', '*Zq7abc', "'*Zq7abc'", /starts with "\*", which YAML reads as an alias/],
    ['pw', '&Zq7x word', '"&Zq7x word"', /starts with "&", which YAML reads as an anchor/],
    ['hash', '#Zq7hash', '"#Zq7hash"', /starts with "#", which YAML reads as a comment/],
    ['typed', '!!str', '"!!str"', /starts with "!", which YAML reads as a tag/],
    ['phrase', 'correct horse #battery', "'correct horse #battery'", /holds " #" \(a space, then #\), where YAML starts a comment: the value would be cut short/],
  ];

  for (const [key, typed, quoted, kind] of CASES) {
    it(`${key}: ${typed} is refused naming key, line and kind (never the value), the file byte-identical; reopened and quoted, stored as typed`, async () => {
      const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
      const before = readFileSync(s.file, 'utf8');
      const { io, warnings } = scriptedEdit((text) => `${text}${key}: ${typed}\n`);
      const aborted = await editSecrets(await s.open(), io([false]));
      expect(aborted).toEqual({ status: 'aborted', reason: `${key} would not be stored as typed (quote it); nothing was changed` });
      expect(warnings.join('\n')).toMatch(new RegExp(`^a value in the edited text would not be stored as typed:\\n  ${key} \\(line 2\\): `));
      expect(warnings.join('\n')).toMatch(kind);
      expect(warnings.join('\n')).toContain('put it in double quotes');
      expect(warnings.join('\n')).not.toContain(typed.replace(/^[!*&#]+/, ''));
      expect(readFileSync(s.file, 'utf8')).toBe(before);
      // reopened on the same text: the user quotes it, and sops itself reads back exactly what was typed
      const quoting = scriptedEdit((text, round) => (round === 1 ? `${text}${key}: ${typed}\n` : text.replace(`${key}: ${typed}`, `${key}: ${quoted}`)));
      const saved = await editSecrets(await s.open(), quoting.io([true]));
      expect(saved).toMatchObject({ status: 'saved', changes: { added: [key] } });
      expect(quoting.rounds()).toBe(2);
      const r = sops(['decrypt', '--extract', `["${key}"]`, s.file], s.key.file);
      expect(r.err).toBe('');
      expect(r.out).toBe(typed);
    });
  }

  it('a value that gained a continuation line (x: 1 then "  y z" below: YAML folds it into "1 y z") is refused naming key, line and the fix (never the value); reopened and fixed, saved', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const before = readFileSync(s.file, 'utf8');
    // a key typed without ": ", indented under the one above
    const typing = (text: string, round: number) => (round === 1 ? `${text}  extra Zq8-typed-word\n` : text.replace('  extra Zq8-typed-word', 'extra: Zq8-typed-word'));
    const { io, warnings } = scriptedEdit(typing);
    expect(await editSecrets(await s.open(), io([false]))).toEqual({ status: 'aborted', reason: 'name would not be stored as typed (see above); nothing was changed' });
    const w = warnings.join('\n');
    expect(w).toMatch(/^a value in the edited text would not be stored as typed:\n {2}name \(line 1\): goes on over the line\(s\) below it \(typed deeper than its key, without ": "\), which YAML joins to the value with a space/);
    expect(w).toContain('give each key its own line with ": " at its indentation, or, for text of several lines, write it as a block (key: |, the lines indented below)');
    expect(w).not.toContain('double quotes');
    expect(w).not.toContain('Zq8');
    expect(readFileSync(s.file, 'utf8')).toBe(before);
    const reopened = scriptedEdit(typing);
    expect(await editSecrets(await s.open(), reopened.io([true]))).toMatchObject({ status: 'saved', changes: { added: ['extra'], changed: [] } });
    expect(reopened.rounds()).toBe(2);
    expect((await s.open()).data).toEqual({ name: 'Zq8-vT3m-Lw5x-Pk2r', extra: 'Zq8-typed-word' });
  });

  it('an anchor, an alias (a merge <<: *b too) and a tag all at once: each named with its line; nothing written', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const before = readFileSync(s.file, 'utf8');
    const warnings: string[] = [];
    const r = await editSecrets(await s.open(), {
      edit: async (tmp) => (writeFileSync(tmp, 'base: &b\n  user: Zq8-admin-user\nother:\n  <<: *b\nname: !vault Zq8-vT3m\n'), { code: 0, signal: null }),
      confirm: async () => false,
      warn: (m) => warnings.push(m),
    });
    expect(r.status).toBe('aborted');
    const w = warnings.join('\n');
    expect(w).toContain('3 values in the edited text would not be stored as typed:');
    expect(w).toContain('  base (line 1): starts with "&"');
    expect(w).toContain('  other.<< (line 4): starts with "*"');
    expect(w).toContain('  name (line 5): starts with "!"');
    expect(w).not.toMatch(/vault|Zq8/);
    expect(readFileSync(s.file, 'utf8')).toBe(before);
  });

  it('!!binary with text that is not base64 is refused (sops refuses it too), never saved as garbage bytes', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const before = readFileSync(s.file, 'utf8');
    const warnings: string[] = [];
    const r = await editSecrets(await s.open(), {
      edit: async (tmp) => (writeFileSync(tmp, `${readFileSync(tmp, 'utf8')}blob: !!binary zz%%Zq7\n`), { code: 0, signal: null }),
      confirm: async () => false,
      warn: (m) => warnings.push(m),
    });
    expect(r).toEqual({ status: 'aborted', reason: 'the edited text was not valid; nothing was changed' });
    expect(warnings.join('\n')).toContain('the edited text: blob: tagged !!binary, but its text is not valid base64');
    expect(readFileSync(s.file, 'utf8')).toBe(before);
    // and the real sops refuses such a file itself
    const plain = join(s.dir, 'p.yaml');
    writeFileSync(plain, 'blob: !!binary zz%%Zq7\n');
    expect(sops(['encrypt', '--age', s.key.recipient, plain], s.key.file).code).not.toBe(0);
  });

  it('a control character typed raw (a terminal colour code pasted with a password, DEL, C1, U+FFFE), which the real sops refuses, is refused by line and column, never shown; written as an escape in double quotes, stored', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const before = readFileSync(s.file, 'utf8');
    for (const typed of ['pw: Zq7-secret\x1b[0m\n', 'pw: "Zq7\x7fsecret"\n', "pw: 'Zq7\x9bsecret'\n", '# note \x01\npw: Zq7-secret\n', 'pw: Zq7\ufffe\n']) {
      const warnings: string[] = [];
      const r = await editSecrets(await s.open(), { edit: async (tmp) => (writeFileSync(tmp, `${readFileSync(tmp, 'utf8')}${typed}`), { code: 0, signal: null }), confirm: async () => false, warn: (m) => warnings.push(m) });
      expect(r, JSON.stringify(typed)).toEqual({ status: 'aborted', reason: 'the edited text was not valid; nothing was changed' });
      expect(warnings.join('\n')).toMatch(/the edited text is not valid YAML at line \d+, column \d+: an invisible control character \(or U\+FFFE, U\+FFFF\), which sops's YAML parser refuses anywhere in the file/);
      expect(warnings.join('\n')).not.toMatch(/Zq7|secret/);
      expect(readFileSync(s.file, 'utf8')).toBe(before);
      const plain = join(s.dir, 'p.yaml');
      writeFileSync(plain, typed);
      expect(sops(['encrypt', '--age', s.key.recipient, plain], s.key.file).err, JSON.stringify(typed)).toContain('control characters are not allowed');
    }
    const r = await editSecrets(await s.open(), { edit: async (tmp) => (writeFileSync(tmp, `${readFileSync(tmp, 'utf8')}pw: "Zq7-secret\\e[0m"\n`), { code: 0, signal: null }), confirm: async () => false, warn: () => {} });
    expect(r.status).toBe('saved');
    expect(sops(['decrypt', '--extract', '["pw"]', s.file], s.key.file).out).toBe('Zq7-secret\x1b[0m');
  });

  it('a PEM key pasted in quotes over several indented lines (YAML joins them with a space) is named by key and line and offered back, never shown; a line break escaped at a line\'s end, or \\n, is meant', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const before = readFileSync(s.file, 'utf8');
    for (const typed of ['tls_key: "-----BEGIN KEY-----\n  Zq7-secret\n  -----END KEY-----"\n', "tls_key: '-----BEGIN KEY-----\n\n  Zq7-secret'\n"]) {
      const warnings: string[] = [];
      const r = await editSecrets(await s.open(), { edit: async (tmp) => (writeFileSync(tmp, `${readFileSync(tmp, 'utf8')}${typed}`), { code: 0, signal: null }), confirm: async () => false, warn: (m) => warnings.push(m) });
      expect(r, typed).toEqual({ status: 'aborted', reason: 'tls_key would not be stored as typed (see above); nothing was changed' });
      expect(warnings.join('\n')).toMatch(/tls_key \(line \d+\): is quoted over several lines, which YAML joins with a space .*write it as a block \(key: \|, the lines indented below\)/);
      expect(warnings.join('\n')).not.toMatch(/Zq7|BEGIN|put it in double quotes/);
      expect(readFileSync(s.file, 'utf8')).toBe(before);
    }
    const r = await editSecrets(await s.open(), { edit: async (tmp) => (writeFileSync(tmp, `${readFileSync(tmp, 'utf8')}tls_key: "-----BEGIN KEY-----\\n\\\n  Zq7-secret\\n"\n`), { code: 0, signal: null }), confirm: async () => false, warn: () => {} });
    expect(r.status).toBe('saved');
    expect(sops(['decrypt', '--extract', '["tls_key"]', s.file], s.key.file).out).toBe('-----BEGIN KEY-----\nZq7-secret\n');
  });

  it('a JSON file: a line break or tab typed raw inside a string (a pasted PEM key) and a number beyond the float range, which the real sops refuses, are refused by place, never shown (the line breaks were joined with a space, the number stored as +Inf)', async () => {
    const s = await secretsFile('{"name": "Zq8-vT3m-Lw5x-Pk2r"}', 'secrets.json');
    const before = readFileSync(s.file, 'utf8');
    for (const [typed, said] of [
      ['{"name": "Zq8-vT3m-Lw5x-Pk2r", "key": "-----BEGIN KEY-----\nZq7-secret\n-----END KEY-----"}\n', /the edited text is not valid JSON at line 1, column 59: a line break, tab or other control character typed raw inside a string, which sops refuses/],
      ['{"name": "Zq8-vT3m-Lw5x-Pk2r", "pw": "Zq7\tsecret"}\n', /not valid JSON at line 1, column 42: a line break, tab or other control character typed raw inside a string/],
      ['{"name": "Zq8-vT3m-Lw5x-Pk2r", "limit": 1e400}\n', /the edited text: limit: a number beyond the floating-point range \(about 1\.8e308\), which sops refuses \("value out of range"\)/],
    ] as const) {
      const warnings: string[] = [];
      const r = await editSecrets(await s.open(), { edit: async (tmp) => (writeFileSync(tmp, typed), { code: 0, signal: null }), confirm: async () => false, warn: (m) => warnings.push(m) });
      expect(r, typed).toEqual({ status: 'aborted', reason: 'the edited text was not valid; nothing was changed' });
      expect(warnings.join('\n')).toMatch(said);
      expect(warnings.join('\n')).not.toMatch(/Zq7|secret"|1e400/);
      expect(readFileSync(s.file, 'utf8')).toBe(before);
      const plain = join(s.dir, 'p.json');
      writeFileSync(plain, typed);
      expect(sops(['encrypt', '--age', s.key.recipient, plain], s.key.file).err, typed).toMatch(/invalid character|value out of range/);
    }
  });

  it('what the file already had as shown (a binary value as !!binary, a key "<<" as !!merge <<) is kept when another value is edited', async () => {
    const s = await secretsFile('base:\n  user: Zq8-admin-user\nother:\n  <<:\n    user: Zq8-admin-user\nname: Zq8-vT3m-Lw5x-Pk2r\nkept: Zq8-kept-value # a comment the file has\n');
    const f = await s.open();
    f.set(['blob'], bytesNode(Buffer.from([0xff, 0xfe, 0x01])));
    await f.save();
    const shown = (await s.open()).plaintext();
    expect(shown).toContain('!!binary');
    expect(shown).toContain('!!merge <<');
    expect(shown).toContain('kept: Zq8-kept-value # a comment the file has');
    const warnings: string[] = [];
    const r = await editSecrets(await s.open(), {
      edit: async (tmp) => (writeFileSync(tmp, readFileSync(tmp, 'utf8').replace('Zq8-vT3m-Lw5x-Pk2r', 'Zq8-vT3m-Lw5x-Pk2s')), { code: 0, signal: null }),
      confirm: async () => false,
      warn: (m) => warnings.push(m),
    });
    expect(warnings).toEqual([]);
    expect(r).toEqual({ status: 'saved', changes: { added: [], removed: [], changed: ['name'] } });
  });

  it('through the CLI: refused and offered back; answered n, the file is byte-identical', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const ed = editor(`printf 'admin_password: !Zq7-secret\\n' >> "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd }, 'n\n');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/admin_password \(line \d+\): starts with "!", which YAML reads as a tag/);
    expect(r.err).toContain('Reopen the editor to fix it? [Y/n]');
    expect(r.err).not.toContain('Zq7-secret');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  });

  it('a new key given a map or list on one line ({...}, [...]): stored so, said so, and named by its own key only, never by the text inside', async () => {
    const e = await newEnv();
    const ed = editor(`printf 'newkey: {Zq7-secret: 1}\\nlst: [Zq7-item, x]\\n' >> "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe('environments/qa/secrets.sops.yaml: updated (added newkey, lst)\n');
    expect(r.err).toMatch(/newkey \(line \d+\) was typed on one line in \{\.\.\.\}: stored as a map of 1 key, not as text \(its keys are not named here\); if it was meant as text, edit it again and quote it \(newkey: "\.\.\."\)/);
    expect(r.err).toMatch(/lst \(line \d+\) was typed on one line in \[\.\.\.\]: stored as a list of 2 items/);
    expect(`${r.out}${r.err}`).not.toContain('Zq7');
    expect(((await open(e)).data as Record<string, unknown>).newkey).toEqual({ 'Zq7-secret': 1n }); // an int: a bigint (SecretsFile.data)
  });

  it('text that does not parse is named by line, column and kind, never quoting the value (an invalid escape: the parser quoted its characters)', async () => {
    const e = await newEnv();
    // printf formats: two backslashes print one
    for (const typed of ['admin_password: "pa\\\\Zq7-secret"\\n', 'admin_password: |Zq7-secret\\n  x\\n']) {
      const ed = editor(`printf '${typed}' >> "$1"`);
      const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd }, 'n\n');
      expect(r.code, typed).toBe(1);
      expect(r.err, typed).toMatch(/the edited text is not valid YAML at line \d+, column \d+: /);
      expect(r.err, typed).not.toMatch(/Zq|Z|q7/);
    }
  });
  it('an escape \\/ in double quotes (YAML 1.2 has it, sops\'s go-yaml refuses it: "found unknown escape character") is refused by place, the file unchanged; \\\\/ (a backslash, then /) is stored', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    // printf formats: two backslashes print one
    const ed = editor(`printf 'webhook_url: "https:\\\\/\\\\/hooks.example.org\\\\/Zq7-secret"\\n' >> "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd }, 'n\n');
    expect(r.code, r.err).toBe(1);
    expect(r.err).toMatch(/the edited text is not valid YAML at line \d+, column 21: the escape \\\/ in a double-quoted string, which YAML 1\.2 has but sops's YAML parser \(go-yaml\) does not know/);
    expect(r.err).not.toMatch(/Zq7|hooks/);
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    const ok = editor(`printf 'webhook_url: "a\\\\\\\\/b"\\n' >> "$1"`);
    const stored = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ok.cmd }, 'n\n');
    expect(stored.code, stored.err).toBe(0);
    expect(((await open(e)).data as Record<string, unknown>).webhook_url).toBe('a\\/b');
  });
  it('a quoted value pasted on at the start of the next lines (a PEM key) is named as such by line, not as a quote not closed (sops would store it with its line breaks as spaces); never quoting it', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const lineFile = join(tempDir(), 'line');
    const ed = editor(`printf 'tls_key: "-----BEGIN PRIVATE KEY-----\\nZq7-secret\\n-----END PRIVATE KEY-----"\\n' >> "$1" && grep -n '^tls_key' "$1" | cut -d: -f1 > '${lineFile}'`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd }, 'n\n');
    expect(r.code, r.err).toBe(1);
    const line = readFileSync(lineFile, 'utf8').trim();
    expect(r.err).toContain(`the edited text is not valid YAML at line ${line}, column 38: a quoted value whose next line is not indented past its key, so YAML ends it at this line: its closing quote is missing, or it goes on at the start of a line`);
    expect(r.err).toContain('write `key: |` with its lines indented below');
    expect(r.err).not.toMatch(/Zq7|BEGIN/);
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  });
  it('a comment typed right after a closing quote or bracket (`"…"# old one`; sops\'s go-yaml reads it, YAML 1.2 does not) is named as such by place, not as a quote not closed; never quoting it', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    for (const typed of ['api_token: "Zq7-secret"# rotated in May', "api_token: 'Zq7-secret'#old", 'hosts: [Zq7-a, b]#x']) {
      const ed = editor(`printf '%s\\n' '${typed.replace(/'/g, "'\\''")}' >> "$1"`);
      const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd }, 'n\n');
      expect(r.code, typed).toBe(1);
      expect(r.err, typed).toMatch(/the edited text is not valid YAML at line \d+, column \d+: a # right after a closing quote or bracket: a comment needs a space before its #/);
      expect(r.err, typed).not.toContain('not closed');
      expect(r.err, typed).not.toMatch(/Zq7|rotated|old/);
    }
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  });
});

describe('ops secrets edit: a line with no ": " after its key', () => {
  it('KEY VALUE, KEY=VALUE, KEY:VALUE (before another key, a nested key, or at the end) is named by its line and how to write it, not as a quote not closed; never quoting the value', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const line = join(tempDir(), 'line');
    for (const [what, sed] of [
      ['a space, before another key', 's/^config_repo_api_key: /config_repo_api_key Zq7/'],
      ['=, before another key', 's/^config_repo_api_key: /config_repo_api_key=Zq7/'],
      ['a space, nested under a key', 's/^\\( *\\)admin@example.org: /\\1ops@example.org Zq7-secret\\n&/'],
      ['a space, at the end', '$s/$/\\nnew_key Zq7-secret/'],
      [':, at the end', '$s/$/\\nnew_key:Zq7-secret/'],
    ]) {
      const ed = editor(`sed -i '${sed}' "$1" && grep -n 'Zq7' "$1" | cut -d: -f1 > '${line}'`);
      const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd }, 'n\n');
      expect(r.code, what).toBe(1);
      const n = readFileSync(line, 'utf8').trim();
      expect(r.err, what).toMatch(new RegExp(`the edited text is not valid YAML at line ${n}, column \\d+: a line with no ": " after its key \\(a space, = or : alone between the key and its value\\?\\): write it KEY: VALUE\n`));
      expect(r.err, what).not.toContain('not closed');
      expect(r.err, what).not.toContain('Zq7');
    }
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  });
});

describe('ops secrets edit: a slip that is still valid YAML', () => {
  /** A new environment whose passwords map holds 3 keys (set as a user sets them). */
  async function threePasswords() {
    const e = await newEnv();
    for (const who of ['admin', 'ops', 'dev']) expect((await cli(e.root, ['secrets', 'set', 'qa', `passwords."${who}@example.org"`], e.env, `pw-${who}-Kq8v-long`)).code).toBe(0);
    return e;
  }

  it('a map whose nested lines became one line without ": " (passwords: a map of 3 keys, now one text) is refused naming key and size, never the value; the file byte-identical; set --replace, as the hint says, does it on purpose', async () => {
    const e = await threePasswords();
    const before = readFileSync(e.secrets, 'utf8');
    // passwords is the last key: its nested lines replaced by one, its ": " forgotten
    const ed = editor(`sed -i '/^passwords:/q' "$1"; printf '  admin@example.org Zq7\\n' >> "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd }, 'n\n');
    expect(r.code, r.err).toBe(1);
    expect(r.err).toContain('a map or list in the edited text became one value (a line typed without ": " after its key, or not indented under it?):\n  passwords: held a map of 3 keys, now one value: all 3 would be lost\n');
    expect(r.err).toContain("to replace it with one value on purpose: ops secrets set qa passwords --replace (the value on stdin)\n");
    expect(r.err).toContain('Reopen the editor to fix it? [Y/n]');
    expect(r.err).toContain('environments/qa/secrets.sops.yaml: passwords (a map of 3 keys) would become one value, its keys or items lost; nothing was changed');
    expect(r.err).not.toContain('Zq7');
    expect(r.out).toBe('');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    // on purpose, the way the hint names (deleting passwords in an edit is refused here: the .env needs it)
    expect(await cli(e.root, ['secrets', 'set', 'qa', 'passwords', '--replace'], e.env, 'one-value-Kq8v-long')).toMatchObject({ code: 0 });
    expect((await open(e)).data.passwords).toBe('one-value-Kq8v-long');
  });

  it('answered y: the editor reopens on the text as the user left it (the slip there to fix), then saves the fix', async () => {
    const e = await threePasswords();
    const count = join(tempDir(), 'n');
    const seen = join(tempDir(), 'seen');
    const ed = editor(`n=$(cat '${count}' 2>/dev/null || echo 0); echo $((n+1)) > '${count}'
if [ "$n" = 0 ]; then sed -i '/^passwords:/q' "$1"; printf '  admin@example.org Zq7-slip\\n' >> "$1"; sed -i '1i mine: typed-by-me-Kq8v' "$1"; else cp "$1" '${seen}'; sed -i 's/^  admin@example.org Zq7-slip$/  admin@example.org: Zq7-fixed-long/' "$1"; fi`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd }, 'y\n');
    expect(r.code, r.err).toBe(0);
    expect(readFileSync(count, 'utf8').trim()).toBe('2');
    expect(r.err).toContain('passwords: held a map of 3 keys, now one value');
    // what the user changed in the first round (a key added, two deleted) is still there on the second
    const text = readFileSync(seen, 'utf8');
    expect(text).toMatch(/^mine: typed-by-me-Kq8v\n/);
    expect(text).toMatch(/\npasswords:\n {2}admin@example.org Zq7-slip\n$/);
    expect(r.out).toBe('environments/qa/secrets.sops.yaml: updated (changed passwords.admin@example.org; added mine; removed passwords.ops@example.org, passwords.dev@example.org)\n');
    expect((await open(e)).data).toMatchObject({ mine: 'typed-by-me-Kq8v', passwords: { 'admin@example.org': 'Zq7-fixed-long' } });
  });

  it('a list become one value, and a map nested deeper: each named by its path and size', async () => {
    const s = await secretsFile('hosts:\n  - Zq8-a\n  - Zq8-b\nsmtp:\n  auth:\n    user: Zq8-user\n    password: Zq8-pass\n');
    const before = readFileSync(s.file, 'utf8');
    const warnings: string[] = [];
    const r = await editSecrets(await s.open(), {
      edit: async (tmp) => (writeFileSync(tmp, 'hosts: Zq8-a Zq8-b\nsmtp:\n  auth:\n    user Zq8-user\n'), { code: 0, signal: null }),
      confirm: async () => false,
      warn: (m) => warnings.push(m),
    });
    expect(r).toEqual({ status: 'aborted', reason: 'hosts (a list of 2 items), smtp.auth (a map of 2 keys) would become one value, their keys or items lost; nothing was changed' });
    const w = warnings.join('\n');
    expect(w).toContain('2 maps or lists in the edited text became one value');
    expect(w).toContain('  hosts: held a list of 2 items, now one value: all 2 would be lost\n  smtp.auth: held a map of 2 keys, now one value: all 2 would be lost\n');
    expect(w).toContain("ops secrets set <env> hosts --replace, ops secrets set <env> smtp.auth --replace (the value on stdin)");
    expect(w).not.toContain('Zq8');
    expect(readFileSync(s.file, 'utf8')).toBe(before);
  });

  it('a key whose ": " slipped into its value (database_url "CHANGE-ME: x", Zq7 api_token: x) is refused naming the key up to the slip and the key gone, never what follows, nor a first word the file had no key of; quoted on purpose, saved', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    // the second: a password typed at the wrong place, its first word the secret (a key the file never had: not shown)
    const ed = editor(`sed -i 's/^database_url: "CHANGE-ME/database_url "CHANGE-ME/' "$1"; printf 'Zq7-secret-long api_token: x\\n' >> "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd }, 'n\n');
    expect(r.code, r.err).toBe(1);
    expect(r.err).toMatch(/2 new keys in the edited text look like a value typed into the key's name \(its ": " missing or misplaced\?\), which sops would store in clear text:\n  database_url… \(line \d+\): a new key whose name holds a quote, and database_url is gone\n  … \(line \d+\): a new key whose name holds a space after its first word\n/);
    expect(r.err).toContain('to name a key so on purpose, write the name in double quotes: "api token": ...');
    expect(r.err).toContain('environments/qa/secrets.sops.yaml: database_url…, … look like a value typed into a key\'s name; nothing was changed');
    expect(r.err).not.toMatch(/Zq7|CHANGE-ME: x/);
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    // a key named with a space on purpose: in double quotes
    const ok = editor(`printf '"api token": Zq7-secret-long\\n' >> "$1"`);
    expect(await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ok.cmd })).toMatchObject({ code: 0, out: 'environments/qa/secrets.sops.yaml: updated (added api token)\n' });
    // once in the file, such a key is no new slip: another value edited beside it saves
    const again = editor(`printf 'other: Zq7-other-long\\n' >> "$1"`);
    expect(await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: again.cmd })).toMatchObject({ code: 0, out: 'environments/qa/secrets.sops.yaml: updated (added other)\n' });
  });
  it('a new key holding a value (Zq7-secret word: ...) that does not parse as typed is named in the error as "…", never by its words', async () => {
    const s = await secretsFile('db:\n  name: Zq8-vT3m-Lw5x-Pk2r\n');
    for (const typed of ['Zq7-secret-word more: !!int abc', 'Zq7-secret-word more: 18446744073709551615']) {
      const warnings: string[] = [];
      const r = await editSecrets(await s.open(), {
        edit: async (tmp) => (writeFileSync(tmp, readFileSync(tmp, 'utf8').replace(/^( +)name: .*$/m, (line, indent: string) => `${line}\n${indent}${typed}`)), { code: 0, signal: null }),
        confirm: async () => false,
        warn: (m) => warnings.push(m),
      });
      expect(r).toEqual({ status: 'aborted', reason: 'the edited text was not valid; nothing was changed' });
      expect(warnings.join('\n')).toMatch(/^the edited text: db\.…: /);
      expect(warnings.join('\n')).not.toContain('Zq7');
    }
  });

  it('a key renamed by a typo (datapass.client_id → datapass.clinet_id), read by nothing, is offered back naming both keys (never the value); renamed in two edits, saved', async () => {
    const s = await secretsFile('datapass:\n  client_id: Zq8-vT3m-Lw5x-Pk2r\n  other: Zq8-other-value\n');
    const before = readFileSync(s.file, 'utf8');
    const warnings: string[] = [];
    const r = await editSecrets(await s.open(), {
      edit: async (tmp) => (writeFileSync(tmp, readFileSync(tmp, 'utf8').replace('client_id:', 'clinet_id:')), { code: 0, signal: null }),
      confirm: async () => false,
      warn: (m) => warnings.push(m),
    });
    expect(r).toEqual({ status: 'aborted', reason: 'datapass.client_id → datapass.clinet_id: a key renamed to a close name (a typo?); nothing was changed' });
    const w = warnings.join('\n');
    expect(w).toContain('a key in the edited text was renamed to a close name (a typo?): the old key is gone, and whatever reads it gets nothing:\n  datapass.client_id → datapass.clinet_id\n');
    expect(w).toContain("to rename on purpose, do it in two edits: add the new key (here, or with ops secrets set <env> datapass.clinet_id, the value on stdin), then delete the old one in the next edit");
    expect(w).not.toContain('Zq8');
    expect(readFileSync(s.file, 'utf8')).toBe(before);
    // on purpose, in two edits: neither alone is a rename; a key of a name not close is no typo either
    const step = async (change: (text: string) => string) =>
      editSecrets(await s.open(), { edit: async (tmp) => (writeFileSync(tmp, change(readFileSync(tmp, 'utf8'))), { code: 0, signal: null }), confirm: async () => false, warn: () => undefined });
    expect(await step((t) => t.replace(/( +)other:/, '$1clinet_id: Zq8-vT3m-Lw5x-Pk2r\n$1other:'))).toMatchObject({ status: 'saved' });
    expect(await step((t) => t.replace(/ +client_id: .*\n/, ''))).toMatchObject({ status: 'saved' });
    expect(await step((t) => t.replace('other:', 'api_secret:'))).toMatchObject({ status: 'saved' });
    expect((await s.open()).data).toEqual({ datapass: { clinet_id: 'Zq8-vT3m-Lw5x-Pk2r', api_secret: 'Zq8-other-value' } });
  });
  it('an empty map or list ({}, []) given one value loses nothing: saved', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\nempty: {}\nnone: []\n');
    const r = await editSecrets(await s.open(), {
      edit: async (tmp) => (writeFileSync(tmp, 'name: Zq8-vT3m-Lw5x-Pk2r\nempty: Zq8-filled-value\nnone: Zq8-other-value\n'), { code: 0, signal: null }),
      confirm: async () => false,
      warn: () => undefined,
    });
    expect(r).toMatchObject({ status: 'saved' });
    expect((await s.open()).data).toEqual({ name: 'Zq8-vT3m-Lw5x-Pk2r', empty: 'Zq8-filled-value', none: 'Zq8-other-value' });
  });

  it('a key holding a space inside a map typed on one line ({...}: maybe text meant as a value) is no slip to name: stored as typedOnOneLine says, never named', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const warnings: string[] = [];
    const r = await editSecrets(await s.open(), {
      edit: async (tmp) => (writeFileSync(tmp, `${readFileSync(tmp, 'utf8')}newkey: {Zq8 secret words: 1}\n`), { code: 0, signal: null }),
      confirm: async () => false,
      warn: (m) => warnings.push(m),
    });
    expect(r).toEqual({ status: 'saved', changes: { added: ['newkey'], removed: [], changed: [] } });
    expect(warnings.join('\n')).toContain('newkey (line 2) was typed on one line in {...}: stored as a map of 1 key');
    expect(warnings.join('\n')).not.toContain('Zq8');
  });
});

describe('ops secrets edit: an editor that trims whitespace on save', () => {
  it('changes no value but the one edited: a value with a space or tab ending a line, or ending in an empty line, is shown on one line, double-quoted', async () => {
    const e = await newEnv();
    // as teams' values come: a mail signature ("-- " and a line ending in two spaces, Markdown's line break), a
    // certificate pasted with a space after a line, a TSV with an empty last cell, text ending in an empty line
    const values: Record<string, string> = {
      signature: '-- \nBest regards,  \nThe Team\n',
      cert: '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU \n-----END CERTIFICATE-----\n',
      tsv: 'name\tvalue\t\nkey\t\n',
      spaced: 'first\n  \nlast',
      blank_end: 'line one\nline two\n\n',
      ends_space: 'line one\nline two ',
    };
    for (const [k, v] of Object.entries(values)) expect((await cli(e.root, ['secrets', 'set', 'qa', `texts.${k}`], e.env, v)).code, k).toBe(0);
    // the editor changes one value, and trims every line's trailing spaces and tabs and the file's final empty
    // lines on save (VS Code's files.trimTrailingWhitespace and trimFinalNewlines, .editorconfig's trim_trailing_whitespace)
    const ed = editor(`sed -i -e 's/[ \t]*$//' -e 's/^datapass_client_id: .*/datapass_client_id: client-Zq8-new/' "$1" && printf '%s\n' "$(cat "$1")" > "$1.t" && cat "$1.t" > "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd }, '');
    expect(r.code, r.err).toBe(0);
    expect(r.out + r.err).toContain('(changed datapass_client_id)');
    const data = (await open(e)).data as { texts: Record<string, string>; datapass_client_id: string };
    expect(data.texts).toEqual(values);
    expect(data.datapass_client_id).toBe('client-Zq8-new');
  });
});

describe('ops secrets edit: the file changed on disk while the editor was open', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Another command's change, made while the editor is open: `other` set to `value` and saved. */
  async function changeOnDisk(s: Awaited<ReturnType<typeof secretsFile>>, key: string, value: string) {
    const f = await s.open();
    f.set([key], str(value));
    await f.save();
  }

  it('the editor reopens on the user text with a note naming the keys changed meanwhile (names only); saved, the note dropped', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\nkept: Zq8-kept-value-1\n');
    const texts: string[] = [];
    const questions: string[] = [];
    const warnings: string[] = [];
    const r = await editSecrets(await s.open(), {
      edit: async (tmp) => {
        const text = readFileSync(tmp, 'utf8');
        texts.push(text);
        if (texts.length === 1) {
          writeFileSync(tmp, `${text}mine: Zq8-typed-by-me\n`);
          await changeOnDisk(s, 'theirs', 'Zq8-their-value');
        } else writeFileSync(tmp, `${text}theirs: Zq8-their-value\n`); // the user brings the other change in
        return { code: 0, signal: null };
      },
      confirm: async (q) => (questions.push(q), true),
      warn: (m) => warnings.push(m),
    });
    expect(r).toMatchObject({ status: 'saved', changes: { added: ['mine'] } });
    expect(texts.length).toBe(2);
    expect(questions).toEqual(['Reopen the editor on your text (with a note on what changed) to bring it in line, then save it over the file? [Y/n] ']);
    expect(warnings.join('\n')).toContain('was changed by another command while it was open in the editor');
    expect(warnings.join('\n')).toContain('keys changed there meanwhile: theirs');
    // the note: a YAML comment at the top naming the key, never its value; below it the user's text
    expect(texts[1]).toMatch(/^# ops: .*secrets\.sops\.yaml was changed by another command while this text was open in the editor \(round 1 of 3\):\n# ops: meanwhile: added theirs\.\n/);
    expect(texts[1]).toContain('mine: Zq8-typed-by-me\n');
    expect(texts[1]).not.toContain('Zq8-their-value');
    const data = (await s.open()).data;
    expect(data).toMatchObject({ name: 'Zq8-vT3m-Lw5x-Pk2r', kept: 'Zq8-kept-value-1', mine: 'Zq8-typed-by-me', theirs: 'Zq8-their-value' });
    // the note is not saved as a comment
    expect(sops(['decrypt', s.file], s.key.file).out).not.toContain('ops:');
  });

  it('declined (or no answer): the edit is kept aside, encrypted to the same recipients (sops opens it), never as plaintext; the file keeps the other change', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    let seen = '';
    const r = await editSecrets(await s.open(), {
      edit: async (tmp) => {
        writeFileSync(tmp, `${readFileSync(tmp, 'utf8')}# my note\nmine: Zq8-typed-by-me\n`);
        await changeOnDisk(s, 'theirs', 'Zq8-their-value');
        seen = readFileSync(s.file, 'utf8');
        return { code: 0, signal: null };
      },
      confirm: async () => false,
      warn: () => undefined,
    });
    expect(r.status).toBe('aborted');
    const reason = (r as { reason: string }).reason;
    const aside = /in (\S+secrets\.unsaved-edit-\d{8}T\d{6}Z\.sops\.yaml)/.exec(reason)?.[1];
    expect(aside, reason).toBeDefined();
    expect(reason).toContain('to merge it: compare `ops secrets decrypt');
    expect(readFileSync(s.file, 'utf8')).toBe(seen);
    const kept = join(s.dir, readdirSync(s.dir).find((n) => n.includes('unsaved-edit'))!);
    const d = sops(['decrypt', kept], s.key.file);
    expect(d.err).toBe('');
    expect(d.out).toContain('name: Zq8-vT3m-Lw5x-Pk2r\n');
    expect(d.out).toContain('mine: Zq8-typed-by-me\n');
    expect(d.out).toContain('# my note\n');
    expect(d.out).not.toContain('theirs');
    expect(allText(s.dir)).not.toContain('Zq8-typed-by-me');
    expect(sops(['filestatus', kept], s.key.file).out).toContain('"encrypted":true');
  });

  it('two kept aside in the same second get names of their own', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-12-03T02:03:04.500Z'));
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const reasons: string[] = [];
    for (const mine of ['Zq8-first-edit', 'Zq8-second-edit']) {
      const r = await editSecrets(await s.open(), {
        edit: async (tmp) => {
          writeFileSync(tmp, `${readFileSync(tmp, 'utf8')}mine: ${mine}\n`);
          await changeOnDisk(s, `theirs_${mine.length}${reasons.length}`, 'Zq8-their-value');
          return { code: 0, signal: null };
        },
        confirm: async () => false,
        warn: () => undefined,
      });
      reasons.push((r as { reason: string }).reason);
    }
    expect(readdirSync(s.dir).filter((n) => n.includes('unsaved-edit')).sort()).toEqual(['secrets.unsaved-edit-20261203T020304Z-2.sops.yaml', 'secrets.unsaved-edit-20261203T020304Z.sops.yaml']);
    expect(sops(['decrypt', '--extract', '["mine"]', join(s.dir, 'secrets.unsaved-edit-20261203T020304Z-2.sops.yaml')], s.key.file).out).toBe('Zq8-second-edit');
  });

  it('reopened at most 3 times: a file that keeps changing gets the edit kept aside', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    let edits = 0;
    let asked = 0;
    const r = await editSecrets(await s.open(), {
      edit: async (tmp) => {
        edits++;
        writeFileSync(tmp, `${readFileSync(tmp, 'utf8')}mine${edits}: Zq8-typed-by-me\n`);
        await changeOnDisk(s, `theirs${edits}`, 'Zq8-their-value');
        return { code: 0, signal: null };
      },
      confirm: async () => (asked++, true),
      warn: () => undefined,
    });
    expect(edits).toBe(4);
    expect(asked).toBe(3);
    expect(r).toMatchObject({ status: 'aborted', reason: expect.stringContaining('secrets.unsaved-edit-') });
    expect((await s.open()).data).toMatchObject({ theirs4: 'Zq8-their-value' });
  });

  it('through the CLI answered y: reopened on the user text with the note, then saved with both changes', async () => {
    const e = await newEnv();
    const a = readFileSync(e.secrets, 'utf8');
    // the version another terminal writes while the editor is open: theirs added
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'theirs'], e.env, 'their-value-Zq7w')).code).toBe(0);
    const b = join(tempDir(), 'b.sops.yaml');
    writeFileSync(b, readFileSync(e.secrets, 'utf8'));
    writeFileSync(e.secrets, a);
    const count = join(tempDir(), 'n');
    const seen = join(tempDir(), 'seen');
    const ed = editor(`n=$(cat '${count}' 2>/dev/null || echo 0); echo $((n+1)) > '${count}'
if [ "$n" = 0 ]; then printf 'mine: typed-by-me-Zq7w\n' >> "$1"; cp '${b}' '${e.secrets}'; else cp "$1" '${seen}'; printf 'theirs: their-value-Zq7w\n' >> "$1"; fi`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd }, 'y\n');
    expect(r.err).toContain('keys changed there meanwhile: theirs; your edit is not saved yet');
    expect(r).toMatchObject({ code: 0, out: 'environments/qa/secrets.sops.yaml: updated (added mine)\n' });
    const note = readFileSync(seen, 'utf8');
    expect(note).toMatch(/^# ops: .*\n# ops: meanwhile: added theirs\.\n/);
    expect(note).toContain('mine: typed-by-me-Zq7w\n');
    expect(note).not.toContain('their-value');
    expect((await open(e)).data).toMatchObject({ mine: 'typed-by-me-Zq7w', theirs: 'their-value-Zq7w' });
    expect(readdirSync(join(e.root, 'environments/qa')).filter((n) => n.includes('unsaved'))).toEqual([]);
  });

  it('through the CLI with no answer (piped input ended): kept aside and said where and how to merge', async () => {
    const e = await newEnv();
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'kept'], e.env, 'first-value-Zq7w')).code).toBe(0);
    const before = readFileSync(e.secrets, 'utf8');
    const ed = editor(`printf 'edited: in-the-editor-Zq7w\\n' >> "$1"; printf '\\n' >> '${e.secrets}'`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/your edit is kept, encrypted to the file's recipients, in \S+environments\/qa\/secrets\.unsaved-edit-\d{8}T\d{6}Z\.sops\.yaml\n\s+to merge it: compare `ops secrets decrypt \S+` with `ops secrets show qa`, bring your changes in with `ops secrets edit qa`/);
    expect(readFileSync(e.secrets, 'utf8')).toBe(`${before}\n`);
    expect((await open(e)).data.edited).toBeUndefined();
    const aside = readdirSync(join(e.root, 'environments/qa')).find((n) => n.includes('unsaved-edit'))!;
    const d = await cli(e.root, ['secrets', 'decrypt', join(e.root, 'environments/qa', aside)], e.env);
    expect(d.out).toContain('edited: in-the-editor-Zq7w');
    expect(allText(join(e.root, 'environments'))).not.toContain('in-the-editor-Zq7w');
  });
});

describe('writing a secrets file', () => {
  it('a signal (the command\'s abort) before or while the lock is taken: nothing written, no lock left, said so', async () => {
    const dir = tempDir('ops-abort-');
    const file = join(dir, 's.sops.yaml');
    writeFileSync(file, 'old\n');
    const early = await writeIfUnchanged(file, 'new\n', 'old\n', 's.sops.yaml', 0o600, () => undefined, AbortSignal.abort('SIGINT')).catch((e: Error) => e);
    expect(early).toBeInstanceOf(InterruptedError);
    expect((early as Error).message).toBe('interrupted before writing s.sops.yaml; nothing was changed');
    // while another command holds it: the wait ends at the signal, long before the lock's 15 s
    const held = await takeLock(file, 's.sops.yaml', () => undefined);
    try {
      const abort = new AbortController();
      setTimeout(() => abort.abort('SIGTERM'), 200);
      const started = Date.now();
      const waiting = await writeIfUnchanged(file, 'new\n', 'old\n', 's.sops.yaml', 0o600, () => undefined, abort.signal).catch((e: Error) => e);
      expect(Date.now() - started).toBeLessThan(5000);
      expect((waiting as InterruptedError).signal).toBe('SIGTERM');
      expect((waiting as Error).message).toBe('interrupted by SIGTERM while waiting for the lock s.sops.yaml.lock; nothing was changed');
    } finally {
      await held();
    }
    expect(readFileSync(file, 'utf8')).toBe('old\n');
    expect(readdirSync(dir)).toEqual(['s.sops.yaml']);
  });

  it('a secrets file that is a symbolic link (a shared folder) is written through to its target and stays a link', async () => {
    const e = await newEnv();
    const shared = tempDir('ops-shared-');
    const target = join(shared, 'qa.sops.yaml');
    renameSync(e.secrets, target);
    symlinkSync(target, e.secrets);
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'database_url'], e.env, 'postgresql://db.example.org/Zq7')).code).toBe(0);
    const ed = editor(`sed -i 's/^datapass_client_id: .*/datapass_client_id: via-the-link-Zq7/' "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd });
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(lstatSync(e.secrets).isSymbolicLink()).toBe(true);
    expect(readlinkSync(e.secrets)).toBe(target);
    const data = (await open(e)).data;
    expect(data).toMatchObject({ database_url: 'postgresql://db.example.org/Zq7', datapass_client_id: 'via-the-link-Zq7' });
    // a relative link, through a chain of links
    const second = join(shared, 'link2.sops.yaml');
    symlinkSync('qa.sops.yaml', second);
    rmSync(e.secrets);
    symlinkSync(second, e.secrets);
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'database_url'], e.env, 'postgresql://db2.example.org/Zq7')).code).toBe(0);
    expect(lstatSync(second).isSymbolicLink()).toBe(true);
    expect(lstatSync(e.secrets).isSymbolicLink()).toBe(true);
    expect((await open(e)).data.database_url).toBe('postgresql://db2.example.org/Zq7');
    expect(readdirSync(shared).sort()).toEqual(['link2.sops.yaml', 'qa.sops.yaml']);
  });

  it('a loop of links is refused with a clear message, nothing written', async () => {
    const dir = tempDir('ops-loop-');
    const a = join(dir, 'a.sops.yaml');
    symlinkSync(join(dir, 'b'), a);
    symlinkSync(a, join(dir, 'b'));
    const err = await writeIfUnchanged(a, 'x', null, 'environments/qa/secrets.sops.yaml').catch((e: Error) => e);
    expect((err as Error).message).toBe('cannot write environments/qa/secrets.sops.yaml: it is a symbolic link that leads to itself (a loop of links, or more than 40 in a row); nothing was written');
    expect((err as { hint?: string }).hint).toContain('point environments/qa/secrets.sops.yaml at the real file');
    // and through the CLI: an OpsError, no stack trace
    const e = await newEnv();
    rmSync(e.secrets);
    symlinkSync(join(e.root, 'environments/qa/loop'), e.secrets);
    symlinkSync(e.secrets, join(e.root, 'environments/qa/loop'));
    const r = await cli(e.root, ['secrets', 'set', 'qa', 'database_url'], e.env, 'postgresql://db.example.org/Zq7');
    expect(r.code).toBe(2);
    expect(r.err).toContain('it is a symbolic link that leads to itself');
    expect(r.err).not.toMatch(/internal error|    at /);
  });

  it('a directory it cannot write: which path and what to do, no stack trace, the file unchanged', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    let dir = join(e.root, 'environments/qa');
    if (process.getuid?.() === 0) {
      // root writes anywhere a mode allows: sysfs refuses new files even to root
        rmSync(e.secrets);
      symlinkSync('/sys/ops-test-secrets.sops.yaml', e.secrets);
      dir = '/sys';
    } else chmodSync(dir, 0o555);
    try {
      const r = await cli(e.root, ['secrets', 'set', 'qa', 'database_url'], e.env, 'postgresql://db.example.org/Zq7');
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/cannot write \S+( \(through the link \S+\))?: permission denied/);
      expect(r.err).toContain(`make ${dir} writable`);
      expect(r.err).not.toMatch(/internal error|    at /);
    } finally {
      chmodSync(join(e.root, 'environments/qa'), 0o755);
    }
    if (existsSync(e.secrets) && !lstatSync(e.secrets).isSymbolicLink()) expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  });

  it('a link into a folder that is not there (a share not mounted): said so, no stack trace', async () => {
    const e = await newEnv();
    rmSync(e.secrets);
    const gone = join(tempDir('ops-share-'), 'not-mounted');
    symlinkSync(join(gone, 'qa.sops.yaml'), e.secrets);
    const r = await cli(e.root, ['secrets', 'set', 'qa', 'database_url'], e.env, 'postgresql://db.example.org/Zq7');
    expect(r.code).toBe(1);
    expect(r.err).toContain(`cannot write ${join(gone, 'qa.sops.yaml')} (through the link `);
    expect(r.err).toContain(`its directory ${gone} does not exist (the link points into a folder that is not there: a share not mounted?)`);
    expect(r.err).not.toMatch(/internal error|    at /);
    expect(existsSync(gone)).toBe(false);
  });

  it('a read-only filesystem (EROFS) is said so, with the path', () => {
    const err = Object.assign(new Error('EROFS: read-only file system, open'), { code: 'EROFS' });
    const e = writeError(err, '/srv/shared/qa.sops.yaml', 'environments/qa/secrets.sops.yaml') as Error & { hint?: string };
    expect(e.message).toBe('cannot write /srv/shared/qa.sops.yaml (through the link environments/qa/secrets.sops.yaml): /srv/shared is on a read-only filesystem; nothing was written');
    expect(e.hint).toContain('writable filesystem');
  });
});
