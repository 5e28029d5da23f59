// `ops secrets unset <env> <key>`: one secret removed without an editor (a CHANGE-ME placeholder for a secret nothing
// reads blocks every deploy), checked as `secrets set` is (key path, a value typed as the key, what the deploy needs),
// the file still one the real sops decrypts, the other values keeping their ciphertext.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { cli, newEnv, sops, type Env } from './secrets.helpers.ts';

/** The line of top-level key `key` in a sops file's text (its ciphertext). */
const lineOf = (text: string, key: string) => text.split('\n').find((l) => l.startsWith(`${key}:`));

/** environment.yml of `e`'s qa without the env entry `name` (nothing reads its secret any more). */
function dropEnvEntry(e: Env, name: string): void {
  const yml = join(e.root, 'environments', 'qa', 'environment.yml');
  const text = readFileSync(yml, 'utf8');
  const without = text.replace(new RegExp(`^\\s*${name}:.*\\n`, 'm'), '');
  expect(without).not.toBe(text);
  writeFileSync(yml, without);
}

const decrypted = (e: Env) => {
  const r = sops(['decrypt', e.secrets], e.keyFile);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  return parse(r.out) as Record<string, unknown>;
};

describe('ops secrets unset', () => {
  it('removes a CHANGE-ME placeholder nothing reads: the real sops decrypts the rest, unchanged; a secret the .env takes is refused; a key not there is nothing to do (exit 0, said, the closest key named)', async () => {
    const e = await newEnv('qa');
    const first = readFileSync(e.secrets, 'utf8');
    const plain = decrypted(e);
    expect(plain.datapass_client_secret).toMatch(/^CHANGE-ME/);
    // still read by an env entry: every deploy would refuse it gone, so refused now, nothing written
    const read = await cli(e.root, ['secrets', 'unset', 'qa', 'datapass_client_secret'], e.env);
    expect(read.code).toBe(2); // the settings and the secrets together are wrong: a usage error, as a deploy refuses it
    expect(read.err).toMatch(/^error: this change removes a secret[^]*APP_DATAPASS_CLIENT_SECRET needs the secret "datapass_client_secret"/);
    expect(readFileSync(e.secrets, 'utf8')).toBe(first);

    dropEnvEntry(e, 'APP_DATAPASS_CLIENT_SECRET');
    const r = await cli(e.root, ['secrets', 'unset', 'qa', 'datapass_client_secret'], e.env);
    expect(r.err).not.toMatch(/^(warning|error):/m);
    expect(r.code).toBe(0);
    expect(r.out).toContain('environments/qa/secrets.sops.yaml: removed datapass_client_secret');
    const after = readFileSync(e.secrets, 'utf8');
    const { datapass_client_secret: _gone, ...rest } = plain;
    expect(decrypted(e)).toEqual(rest);
    // the values left keep their ciphertext (a diff shows the one key gone)
    for (const k of ['secret_key', 'config_repo_api_key', 'database_url']) expect(lineOf(after, k), k).toBe(lineOf(first, k));

    // again: the secret is not there, as asked: exit 0, nothing written, said
    const again = await cli(e.root, ['secrets', 'unset', 'qa', 'datapass_client_secret'], e.env);
    expect(again.code).toBe(0);
    expect(again.err).toMatch(/^warning: no key datapass_client_secret in environments\/qa\/secrets\.sops\.yaml: nothing to remove, nothing changed/m);
    expect(readFileSync(e.secrets, 'utf8')).toBe(after);
    // a typo: the closest key named
    const typo = await cli(e.root, ['secrets', 'unset', 'qa', 'secret_kye'], e.env);
    expect(typo.code).toBe(0);
    expect(typo.err).toContain('did you mean secret_key?');
    expect(readFileSync(e.secrets, 'utf8')).toBe(after);
  });

  it('a map is removed whole only with --recursive; one key in it by its path; the maps holding it stay', async () => {
    const e = await newEnv('qa');
    dropEnvEntry(e, 'TOOLS_PASSWORDS');
    const before = readFileSync(e.secrets, 'utf8');
    const map = await cli(e.root, ['secrets', 'unset', 'qa', 'passwords'], e.env);
    expect(map.code).toBe(2);
    expect(map.err).toContain('passwords is a map holding 1 secret (passwords.admin@example.org): removing it would remove it; nothing was changed');
    expect(map.err).toContain('--recursive');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    const one = await cli(e.root, ['secrets', 'unset', 'qa', 'passwords.admin@example.org'], e.env);
    expect(one.code).toBe(0);
    expect(decrypted(e).passwords).toEqual({});
    const whole = await cli(e.root, ['secrets', 'unset', 'qa', 'passwords', '--recursive'], e.env);
    expect(whole.code).toBe(0);
    expect(decrypted(e)).not.toHaveProperty('passwords');
  });

  it('usage errors (exit 2), nothing read or written: a value typed as the key (never shown), an extra argument, an unknown environment, a malformed path (KEY=VALUE too)', async () => {
    const e = await newEnv('qa');
    const before = readFileSync(e.secrets, 'utf8');
    const url = await cli(e.root, ['secrets', 'unset', 'qa', 'postgres://app:Zq8-pw-typed@db/app'], e.env);
    expect(url.code).toBe(2);
    expect(url.err).toContain('not a key name: was the value pasted in place of the key?');
    expect(url.err).toContain('ops secrets unset qa <key>');
    expect(url.err).not.toContain('Zq8-pw-typed');
    const extra = await cli(e.root, ['secrets', 'unset', 'qa', 'database_url', 'Zq8-value'], e.env);
    expect(extra.code).toBe(2);
    expect(extra.err).not.toContain('Zq8-value');
    const unknown = await cli(e.root, ['secrets', 'unset', 'qz', 'database_url'], e.env);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('no environment "qz"');
    for (const key of ['a..b', 'database_url=Zq8-typed', '"a']) {
      const path = await cli(e.root, ['secrets', 'unset', 'qa', key], e.env);
      expect(path.code, key).toBe(2);
      expect(path.err, key).not.toContain('Zq8-typed');
    }
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  });
  it('a value typed into the key (KEY=VALUE) is refused with unset\'s own hint, the key alone; no secrets file is a key not there (exit 0, said)', async () => {
    const e = await newEnv('qa');
    const before = readFileSync(e.secrets, 'utf8');
    const typed = await cli(e.root, ['secrets', 'unset', 'qa', 'smtp_password=Zq9-hunter2'], e.env);
    expect(typed.code).toBe(2);
    expect(typed.err).toMatch(/^error: the key path holds "smtp_password=…": a key path is a name, not KEY=VALUE[^\n]*unset takes no value; nothing was changed\n  hint: to remove that key, give its name alone: ops secrets unset qa smtp_password;/);
    expect(typed.err).not.toMatch(/secrets set|Zq9/);
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    rmSync(e.secrets);
    const none = await cli(e.root, ['secrets', 'unset', 'qa', 'smtp_password'], e.env);
    expect(none).toMatchObject({ code: 0, out: '' });
    expect(none.err).toMatch(/^warning: environments\/qa has no secrets file \(environments\/qa\/secrets\.sops\.yaml\): no key smtp_password to remove, nothing changed/m);
    expect(existsSync(e.secrets)).toBe(false);
  });
});
