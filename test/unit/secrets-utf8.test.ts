// Secret text ops reads from a user (stdin of `secrets set`, the edited file, a file to encrypt) is decoded
// strictly: bytes that are not UTF-8 are refused with where they are and how to fix it, never stored as U+FFFD,
// and nothing is changed (the file to encrypt keeps its bytes, a previous value stays).
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeUtf8, invalidUtf8Offset } from '../../core/secrets/utf8.ts';
import { cli, editor, newEnv, open } from './secrets.helpers.ts';

describe('decodeUtf8', () => {
  it('decodes UTF-8 (a real U+FFFD and a BOM included) and names the first bad byte of anything else', () => {
    expect(decodeUtf8(Buffer.from('café \uFFFD \uFEFF 😀'), 'x')).toBe('café \uFFFD \uFEFF 😀');
    expect(invalidUtf8Offset(Buffer.from('ok\uFFFD'))).toBe(-1);
    expect(invalidUtf8Offset(Buffer.from([0x61, 0xef, 0xbf, 0xbd, 0x0a, 0x63, 0xe9, 0x2d]))).toBe(6);
    expect(invalidUtf8Offset(Buffer.from([0xc0, 0x80]))).toBe(0); // overlong
    expect(invalidUtf8Offset(Buffer.from([0xed, 0xa0, 0x80]))).toBe(0); // a surrogate
    expect(() => decodeUtf8(Buffer.from('a\nb: caf\xe9', 'latin1'), 'f.yml')).toThrow(/^f\.yml is not UTF-8 text: invalid byte at offset 8 \(line 2\)/);
  });
});

describe('bytes that are not UTF-8 are refused, nothing changed', () => {
  it('ops secrets set: invalid bytes on stdin (random bytes too) are refused, suggesting base64; the previous value stays', async () => {
    const e = await newEnv();
    expect((await cli(e.root, ['secrets', 'set', 'qa', 't_bin'], e.env, 'before')).code).toBe(0);
    const before = readFileSync(e.secrets);
    // 0xff never starts a UTF-8 character; 32 random bytes are UTF-8 with a chance of about 2^-30 (and start as UTF-16's mark 2^-15)
    let random = randomBytes(32);
    while (invalidUtf8Offset(random) < 0 || /^(fffe|feff)/.test(random.toString('hex'))) random = randomBytes(32);
    for (const input of [Buffer.from([0xff, 0x61]), random]) {
      const r = await cli(e.root, ['secrets', 'set', 'qa', 't_bin'], e.env, input);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/the value on stdin for t_bin is not UTF-8 text: invalid byte at offset \d+/);
      expect(r.err).toContain('base64 -w0 < FILE | ops secrets set qa t_bin');
      expect(r.err).not.toMatch(/\uFFFD|at .*\.ts:\d+/);
      expect(readFileSync(e.secrets)).toEqual(before);
    }
    expect((await open(e)).data.t_bin).toBe('before');
    // valid multi-byte text still goes through, as given
    expect((await cli(e.root, ['secrets', 'set', 'qa', 't_bin'], e.env, Buffer.from('café \uFFFD'))).code).toBe(0);
    expect((await open(e)).data.t_bin).toBe('café \uFFFD');
  });

  it('ops secrets set: UTF-16 text (`echo pw > pw.txt` in Windows PowerShell 5) is named as such, the fix to convert it, not to store it as base64', async () => {
    const e = await newEnv();
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'pw'], e.env, 'before')).code).toBe(0);
    for (const [input, bom] of [[Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('s3cret-4f9a\r\n', 'utf16le')]), 'FF FE'], [Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from('s3cret-4f9a', 'utf16le').swap16()]), 'FE FF']] as const) {
      const r = await cli(e.root, ['secrets', 'set', 'qa', 'pw'], e.env, input);
      expect(r.code).toBe(2);
      expect(r.err).toContain(`the value on stdin for pw is UTF-16 text (it starts with ${bom}, the byte order mark Windows PowerShell 5's \`>\` and Out-File write), not UTF-8; nothing was changed`);
      expect(r.err).toContain('iconv -f utf-16 -t utf-8 FILE');
      expect(r.err).not.toContain('base64');
    }
    expect((await open(e)).data.pw).toBe('before');
  });

  it('ops secrets edit: an editor saving Latin-1 gets the text back to fix (or the edit dropped), never U+FFFD stored', async () => {
    const e = await newEnv();
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'pw'], e.env, 'old')).code).toBe(0);
    const before = readFileSync(e.secrets);
    const latin1 = editor(`printf 'pw: caf\\351-s3cret\\n' > "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: latin1.cmd }, 'n\n');
    expect(r.code).toBe(1);
    expect(r.err).toContain('the edited text is not UTF-8 text: invalid byte at offset 7 (line 1)');
    expect(r.err).toContain('Reopen the editor to fix it? [Y/n]');
    expect(readFileSync(e.secrets)).toEqual(before);
    expect((await open(e)).data.pw).toBe('old');
  });

  it('ops secrets encrypt: a Latin-1 file is refused and left byte for byte as it was', async () => {
    const e = await newEnv();
    const file = join(e.root, 'environments', 'qa', 'assets', 'initdata.yml');
    mkdirSync(join(file, '..'), { recursive: true });
    const bytes = Buffer.from('users:\n  - name: Ren\xe9\n', 'latin1');
    writeFileSync(file, bytes);
    const r = await cli(e.root, ['secrets', 'encrypt', file], e.env);
    expect(r.code).toBe(2);
    expect(r.err).toContain('environments/qa/assets/initdata.yml is not UTF-8 text: invalid byte at offset 20 (line 2)');
    expect(r.err).toContain('iconv -f latin1 -t utf-8');
    expect(readFileSync(file)).toEqual(bytes);
  });
});
