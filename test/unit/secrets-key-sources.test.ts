// Several key sources set at once, one of them broken (a stale SOPS_AGE_KEY_FILE, a SOPS_AGE_KEY in quotes, a key
// file saved with a BOM): sops 3.13.3 skips the broken one when another opens the file, so ops does too, warning;
// with no key from anywhere the broken source's own error stays the error. Each verdict checked against the real sops.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ageKey, cli, newEnv, tempDir } from './secrets.helpers.ts';

/** `sops decrypt --extract` of one key with exactly these key variables (HOME empty, away from any .sops.yaml). */
function sopsExtract(file: string, key: string, env: NodeJS.ProcessEnv): number {
  const r = spawnSync('sops', ['decrypt', '--extract', `["${key}"]`, file], { env: { PATH: process.env.PATH, HOME: tempDir('ops-sops-home-'), ...env }, cwd: tempDir(), encoding: 'utf8' });
  return r.status ?? 1;
}

describe('key sources that disagree', () => {
  it('a broken source beside one that opens the file: used as sops uses it, the broken one warned of, never shown', async () => {
    const e = await newEnv();
    const dir = tempDir();
    const bom = join(dir, 'bom.txt');
    writeFileSync(bom, `\ufeff${e.key}\n`, { mode: 0o600 });
    const cases: [string, NodeJS.ProcessEnv, RegExp][] = [
      ['a SOPS_AGE_KEY_FILE that is gone, SOPS_AGE_KEY right', { SOPS_AGE_KEY: e.key, SOPS_AGE_KEY_FILE: join(dir, 'gone.txt') }, /SOPS_AGE_KEY_FILE: cannot read .*gone\.txt.*: skipped, as sops skips it/],
      ['SOPS_AGE_KEY in quotes, the key file right', { SOPS_AGE_KEY: `'${e.key}'`, SOPS_AGE_KEY_FILE: e.keyFile }, /line 1 of SOPS_AGE_KEY is the key in quotes .*: skipped, as sops skips it/],
      ['SOPS_AGE_KEY not a key, the key file right', { SOPS_AGE_KEY: 'not-a-key', SOPS_AGE_KEY_FILE: e.keyFile }, /line 1 of SOPS_AGE_KEY is not an age identity: skipped/],
      ['a key file with a BOM, SOPS_AGE_KEY right', { SOPS_AGE_KEY: e.key, SOPS_AGE_KEY_FILE: bom }, /starts with a byte order mark .*: skipped, as sops skips it.*sed -i/],
    ];
    for (const [what, env, warned] of cases) {
      expect(sopsExtract(e.secrets, 'secret_key', env), what).toBe(0);
      const r = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'secret_key'], env);
      expect(r.code, `${what}: ${r.err}`).toBe(0);
      expect(r.out.length, what).toBe(86);
      expect(r.err, what).toMatch(warned);
      expect(r.err, what).not.toContain(e.key);
    }
  });

  it('no source gives a key: the broken one is the error, with its fix (as before); another key that is no recipient lists it where it looked', async () => {
    const e = await newEnv();
    const other = ageKey();
    const dir = tempDir();
    const none = await cli(e.root, ['secrets', 'show', 'qa'], { SOPS_AGE_KEY: 'not-a-key', SOPS_AGE_KEY_FILE: join(dir, 'gone.txt') });
    expect(sopsExtract(e.secrets, 'secret_key', { SOPS_AGE_KEY: 'not-a-key', SOPS_AGE_KEY_FILE: join(dir, 'gone.txt') })).not.toBe(0);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/^error: line 1 of SOPS_AGE_KEY is not an age identity/);
    const wrong = await cli(e.root, ['secrets', 'show', 'qa'], { SOPS_AGE_KEY: 'not-a-key', SOPS_AGE_KEY_FILE: other.file });
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/none of your age identities .* is a recipient/);
    expect(wrong.err).toMatch(/looked in: SOPS_AGE_KEY \(line 1 of SOPS_AGE_KEY is not an age identity; to fix: /);
    expect(wrong.out).toBe('');
    expect(readFileSync(e.secrets, 'utf8')).toContain('ENC[');
  });
});
