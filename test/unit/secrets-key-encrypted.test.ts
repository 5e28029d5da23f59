// An operator's age key file protected with a passphrase (`age -p`, which sops 3.10+ and age itself read after asking
// for the passphrase): ops asks for none, and read its first line as a broken key ("not an age identity", with a
// hint to check the key's lines). It now names the file as passphrase-protected, with the way to have age decrypt it
// for ops (SOPS_AGE_KEY_CMD), whichever place the file was found in. The files are made by the real age.
// And a key file holding an age plugin identity (a YubiKey's) beside a native key, which sops reads with the native
// key: ops refused the whole file; it now skips the plugin identity, saying so, and uses the others.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, newEnv, tempDir } from './secrets.helpers.ts';

describe('a passphrase-protected age key file', () => {
  it('is named as such, wherever it is found, with the way to use it; the key never shown', async () => {
    const e = await newEnv('qa');
    for (const armored of [true, false]) {
      const sealed = passphraseProtected(e.keyFile, armored);
      const head = readFileSync(sealed, 'latin1');
      expect(head.startsWith(armored ? '-----BEGIN AGE ENCRYPTED FILE-----' : 'age-encryption.org/v1')).toBe(true);

      // named by SOPS_AGE_KEY_FILE
      const byVar = await cli(e.root, ['secrets', 'show', 'qa'], { SOPS_AGE_KEY_FILE: sealed });
      expect(byVar.code).toBe(2);
      expect(byVar.err).toContain(`error: ${sealed} is a passphrase-protected age key file (encrypted with \`age -p\`): ops does not ask for passphrases\n`);
      expect(byVar.err).toContain(`hint: unset SOPS_AGE_KEY_FILE, and have age decrypt it for each command: export SOPS_AGE_KEY_CMD='age -d ${sealed}'`);
      expect(byVar.err).not.toContain('not an age identity');

      // the default key file, which ops reads whenever it exists: moved away first
      const home = tempDir('ops-home-');
      mkdirSync(join(home, '.config', 'sops', 'age'), { recursive: true });
      const def = join(home, '.config', 'sops', 'age', 'keys.txt');
      writeFileSync(def, readFileSync(sealed), { mode: 0o600 });
      const byDefault = await cli(e.root, ['secrets', 'show', 'qa'], { HOME: home });
      expect(byDefault.code).toBe(2);
      expect(byDefault.err).toContain(`error: ${def} is a passphrase-protected age key file`);
      expect(byDefault.err).toContain(`hint: move it out of the default key file: mv ${def} ${join(home, '.config', 'sops', 'age', 'keys.age')}; then have age decrypt it for each command: export SOPS_AGE_KEY_CMD='age -d ${join(home, '.config', 'sops', 'age', 'keys.age')}'`);

      // its text given as the key itself
      const byText = await cli(e.root, ['secrets', 'show', 'qa'], { SOPS_AGE_KEY: readFileSync(sealed, 'utf8') });
      expect(byText.code).toBe(2);
      expect(byText.err).toContain('error: SOPS_AGE_KEY holds an age-encrypted file (passphrase-protected, as `age -p` writes it), not an age identity');

      for (const r of [byVar, byDefault, byText]) {
        expect(r.out).toBe('');
        expect(`${r.out}${r.err}`).not.toContain(e.key);
        expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
      }
    }
  });

  it('decrypted by age for ops, as the hint says (SOPS_AGE_KEY_CMD), opens the secrets', async () => {
    const e = await newEnv('qa');
    // the command the hint gives, `age -d`, with an identity standing in for the passphrase typed (age reads that from
    // a terminal only): what reaches ops is the command's output, the key file as written
    const recipient = execFileSync('age-keygen', ['-y', e.keyFile], { encoding: 'utf8' }).trim();
    const sealed = join(tempDir('ops-age-r-'), 'keys.age');
    execFileSync('age', ['-r', recipient, '-o', sealed, e.keyFile]);
    const r = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'secret_key'], { SOPS_AGE_KEY_CMD: `age -d -i '${e.keyFile}' '${sealed}'` });
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out.length).toBeGreaterThan(40);
  });
});

/** `keyFile` encrypted with the real `age -p` (armored or binary), the passphrase typed at the terminal script(1) gives age (it reads one from a terminal only). */
function passphraseProtected(keyFile: string, armored: boolean): string {
  const out = join(tempDir('ops-age-p-'), armored ? 'keys.txt' : 'keys.age');
  const typed = `sleep 0.3; printf 'correct horse battery\\n'; sleep 0.3; printf 'correct horse battery\\n'; sleep 0.3`;
  execFileSync('sh', ['-c', `(${typed}) | script -qec "age -p ${armored ? '-a ' : ''}-o '${out}' '${keyFile}'" /dev/null`], { stdio: 'ignore', timeout: 20_000 });
  return out;
}

/** A syntactically valid age plugin identity (AGE-PLUGIN-YUBIKEY-1…: Bech32, BIP 173), as age-plugin-yubikey writes one. */
function pluginIdentity(): string {
  const charset = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
  const polymod = (values: number[]) => {
    const gen = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
    let chk = 1;
    for (const v of values) {
      const b = chk >>> 25;
      chk = (((chk & 0x1ffffff) << 5) ^ v) >>> 0;
      for (let i = 0; i < 5; i++) if ((b >>> i) & 1) chk = (chk ^ gen[i]!) >>> 0;
    }
    return chk;
  };
  const hrp = 'age-plugin-yubikey-';
  const data: number[] = [];
  let acc = 0;
  let bits = 0;
  for (let byte = 0; byte < 32; byte++) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) data.push((acc >>> (bits -= 5)) & 31);
  }
  if (bits) data.push((acc << (5 - bits)) & 31);
  const expanded = [...[...hrp].map((c) => c.charCodeAt(0) >> 5), 0, ...[...hrp].map((c) => c.charCodeAt(0) & 31)];
  const pm = (polymod([...expanded, ...data, 0, 0, 0, 0, 0, 0]) ^ 1) >>> 0;
  const checksum = [0, 1, 2, 3, 4, 5].map((i) => (pm >>> (5 * (5 - i))) & 31);
  return `${hrp}1${[...data, ...checksum].map((d) => charset[d]).join('')}`.toUpperCase();
}

describe('a key file holding an age plugin identity (a YubiKey\'s) beside a native key', () => {
  it('is read as sops reads it: the native key opens the secrets, the plugin identity skipped with a warning', async () => {
    const e = await newEnv('qa');
    const mixed = join(tempDir('ops-age-plugin-'), 'keys.txt');
    writeFileSync(mixed, `# yubikey\n${pluginIdentity()}\n# laptop\n${e.key}\n`, { mode: 0o600 });
    // the real sops takes this file (the test of the identity's form)
    const sops = spawnSync('sops', ['decrypt', '--extract', '["secret_key"]', e.secrets], { env: { PATH: process.env.PATH, HOME: tempDir(), SOPS_AGE_KEY_FILE: mixed }, encoding: 'utf8' });
    expect(sops.stderr).toBe('');
    const r = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'secret_key'], { SOPS_AGE_KEY_FILE: mixed });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(sops.stdout);
    expect(r.err).toBe(`warning: ${mixed}:2: age plugin identity (AGE-PLUGIN-…, a YubiKey's, a TPM's), which ops cannot use: skipped; the native keys beside it are used (sops and age use a plugin identity through its plugin program; for ops, a native key AGE-SECRET-KEY-1… must be a recipient)\n`);
    // alone: no key, said with what was skipped
    writeFileSync(mixed, `${pluginIdentity()}\n`, { mode: 0o600 });
    const alone = await cli(e.root, ['secrets', 'show', 'qa'], { SOPS_AGE_KEY_FILE: mixed });
    expect(alone.code).toBe(1);
    expect(alone.err).toContain(`SOPS_AGE_KEY_FILE=${mixed} (0 keys, 1 plugin identity skipped)`);
  });
});
