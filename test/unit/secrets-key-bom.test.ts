// An age key file saved "UTF-8 with BOM" (Windows Notepad, PowerShell's Out-File): ops read it (JavaScript's trim
// drops U+FEFF) but the real sops refuses it ("unknown identity type"), so `ops secrets edit`, which runs sops, failed
// later with sops's message. Now ops refuses it up front, as sops does, naming the BOM and how to take it out; the
// file fixed that way opens with both. The same for a BOM before a later line, after a key, and in SOPS_AGE_KEY.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, newEnv, tempDir } from './secrets.helpers.ts';

const BOM = '\uFEFF';

/** The real sops decrypting the environment's secrets with `env` added to a bare environment: its exit status. */
function sopsDecrypts(secrets: string, env: NodeJS.ProcessEnv): number | null {
  return spawnSync('sops', ['decrypt', secrets], { env: { PATH: process.env.PATH, HOME: tempDir('ops-bom-home-'), ...env }, encoding: 'utf8' }).status;
}

describe('an age key with a byte order mark (BOM)', () => {
  it('is refused up front, as the real sops refuses it, wherever the BOM sits; fixed as the hint says, both read it', async () => {
    const e = await newEnv('qa');
    const keyText = readFileSync(e.keyFile, 'utf8');
    const dir = tempDir('ops-bom-');
    const cases: [string, string, RegExp][] = [
      ['start', `${BOM}${keyText}`, /:1 starts with a byte order mark/],
      ['before a comment', `${BOM}# created: today\n${keyText}`, /:1 starts with a byte order mark/],
      ['a later line', `# created: today\n${BOM}${keyText}`, /:2 starts with a byte order mark/],
      ['after the key', `${keyText.trimEnd()}${BOM}\n`, /:1 ends with a byte order mark/],
    ];
    for (const [name, text, message] of cases) {
      const file = join(dir, `${name.replace(/ /g, '-')}.txt`);
      writeFileSync(file, text, { mode: 0o600 });
      // sops refuses it: ops and sops agree
      expect(sopsDecrypts(e.secrets, { SOPS_AGE_KEY_FILE: file }), name).not.toBe(0);
      const r = await cli(e.root, ['secrets', 'show', 'qa'], { SOPS_AGE_KEY_FILE: file });
      expect(r.code, name).toBe(2);
      expect(r.out).toBe('');
      expect(r.err, name).toMatch(message);
      expect(r.err).toContain(`(BOM, U+FEFF: an editor saved it as "UTF-8 with BOM"), which sops and age do not skip: they cannot read the file (the key was not shown)\n  hint: take it out (GNU sed): sed -i 's/\\xEF\\xBB\\xBF//g' ${file}; or save the file as UTF-8 without BOM\n`);
      expect(r.err).not.toContain(e.key);
      // the hint's command, run: both read it
      execFileSync('sh', ['-c', r.err.match(/sed -i [^;]+/)![0]]);
      expect(readFileSync(file, 'utf8')).not.toContain(BOM);
      expect(sopsDecrypts(e.secrets, { SOPS_AGE_KEY_FILE: file }), name).toBe(0);
      expect((await cli(e.root, ['secrets', 'show', 'qa', '--key', 'secret_key'], { SOPS_AGE_KEY_FILE: file })).code, name).toBe(0);
    }
    // a BOM after a comment's text: a comment still, to sops as to ops
    const trailing = join(dir, 'comment.txt');
    writeFileSync(trailing, `# created: today${BOM}\n${keyText}`, { mode: 0o600 });
    expect(sopsDecrypts(e.secrets, { SOPS_AGE_KEY_FILE: trailing })).toBe(0);
    expect((await cli(e.root, ['secrets', 'show', 'qa', '--key', 'secret_key'], { SOPS_AGE_KEY_FILE: trailing })).code).toBe(0);
    // the key given in SOPS_AGE_KEY, copied from such a file
    const value = `${BOM}${e.key}`;
    expect(sopsDecrypts(e.secrets, { SOPS_AGE_KEY: value })).not.toBe(0);
    const byVar = await cli(e.root, ['secrets', 'show', 'qa'], { SOPS_AGE_KEY_FILE: '', SOPS_AGE_KEY: value });
    expect(byVar.code).toBe(2);
    expect(byVar.err).toMatch(/^error: line 1 of SOPS_AGE_KEY starts with a byte order mark [^\n]*they cannot read that value \(the key was not shown\)\n  hint: give SOPS_AGE_KEY without it/);
    expect(byVar.err).not.toContain(e.key);
  });
});
