// SSH public keys as sops recipients (`ssh-ed25519 AAAA…` in .sops.yaml: sops 3.10+ and age encrypt to them and
// decrypt with the SSH private key), as a team may already use them. ops reads and writes age keys only: it said
// "no age identity" of a file only an SSH key opens, `ops secrets rotate` ended in "internal error: unrecognized
// recipient type", and `recipients sync`/`add`/`remove` called the public key a value that "could be a secret". Now
// each says what the SSH recipient is and the way on; removing one works (the new data key goes to the age keys).
// The files and the SSH recipients are the real sops's and ssh-keygen's.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, newEnv, tempDir } from './secrets.helpers.ts';

/** A new SSH key (ssh-keygen): its private key file and its public key line (with ssh-keygen's comment). */
function sshKey(): { file: string; pub: string } {
  const file = join(tempDir('ops-ssh-key-'), 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ana@laptop', '-f', file]);
  return { file, pub: readFileSync(`${file}.pub`, 'utf8').trim() };
}

/** The real sops in `cwd` with exactly these keys. */
function sops(args: string[], cwd: string, env: NodeJS.ProcessEnv) {
  const r = spawnSync('sops', args, { cwd, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: tempDir('ops-sops-home-'), ...env }, timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const noBug = (r: { err: string }) => expect(r.err).not.toMatch(/internal error|\n\s+at |could be a secret/);

describe('a file encrypted only to an SSH key', () => {
  it('is said to be, with the way on, with no key and with an age key that is not its recipient', async () => {
    const key = sshKey();
    const dir = tempDir('ops-ssh-only-');
    writeFileSync(join(dir, 'plain.yaml'), 'token: Zq8-only-ssh-opens-this\n');
    const enc = sops(['encrypt', '--age', key.pub, 'plain.yaml'], dir, {});
    expect(enc.code).toBe(0);
    writeFileSync(join(dir, 's.sops.yaml'), enc.out);
    expect(sops(['decrypt', 's.sops.yaml'], dir, { SOPS_AGE_SSH_PRIVATE_KEY_FILE: key.file }).out).toContain('Zq8-only-ssh-opens-this');

    const e = await newEnv('qa');
    for (const env of [{}, e.env]) {
      const r = await cli(e.root, ['secrets', 'decrypt', join(dir, 's.sops.yaml')], env);
      expect(r.code).toBe(1);
      expect(r.out).toBe('');
      expect(r.err).toContain('it is encrypted only to SSH public keys (ssh-ed25519: sops and age decrypt with your SSH private key), which ops cannot decrypt with: it reads age keys (AGE-SECRET-KEY-1…) only');
      expect(r.err).toContain('hint: have someone who can decrypt');
      expect(r.err).toContain('until then the sops binary reads it with your SSH key (SOPS_AGE_SSH_PRIVATE_KEY_FILE, else ~/.ssh/id_ed25519)');
    }
  });
});

describe('an environment whose files sops encrypted to an age key and an SSH key too', () => {
  async function setUp() {
    const e = await newEnv('qa');
    const key = sshKey();
    const conf = join(e.root, '.sops.yaml');
    writeFileSync(conf, readFileSync(conf, 'utf8').replace(/(age: age1[0-9a-z]+)/, `$1,${key.pub}`));
    const up = sops(['updatekeys', '-y', e.secrets], e.root, { SOPS_AGE_KEY_FILE: e.keyFile });
    expect(up.code, up.err).toBe(0);
    expect(readFileSync(e.secrets, 'utf8')).toContain(`recipient: ${key.pub}`);
    return { e, key };
  }

  it('rotate, add, sync: refused saying why, nothing written; set keeps the SSH key\'s copy', async () => {
    const { e, key } = await setUp();
    const before = readFileSync(e.secrets, 'utf8');
    const rot = await cli(e.root, ['secrets', 'rotate', 'qa'], e.env);
    noBug(rot);
    expect(rot.code).toBe(1);
    expect(rot.err).toContain(`a new data key cannot be encrypted to its SSH recipient (${key.pub}: sops encrypts to SSH public keys, ops to age keys only); nothing was written`);
    expect(rot.err).toContain('hint: do this with the sops binary (sops rotate -i FILE, sops updatekeys FILE)');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);

    const sync = await cli(e.root, ['secrets', 'recipients', 'qa', 'sync'], e.env);
    noBug(sync);
    expect(sync.code).toBe(1);
    expect(sync.err).toContain(`.sops.yaml creation_rules[0].age[1]: ${key.pub} is an SSH public key (a recipient sops and age encrypt to), not an age recipient: ops encrypts to age keys (age1…) only`);

    const add = await cli(e.root, ['secrets', 'recipients', 'qa', 'add', sshKey().pub], e.env);
    noBug(add);
    expect(add.code).toBe(1);
    expect(add.err).toMatch(/^error: recipient: ssh-ed25519 AAAA\S+ ana@laptop is an SSH public key/);
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);

    // a set keeps the data key: the SSH key still opens the file, the new value included
    const set = await cli(e.root, ['secrets', 'set', 'qa', 'token'], e.env, 'Zq8-set-beside-ssh');
    expect(set.code, set.err).toBe(0);
    const r = sops(['decrypt', '--extract', '["token"]', e.secrets], e.root, { SOPS_AGE_SSH_PRIVATE_KEY_FILE: key.file });
    expect(r.err).toBe('');
    expect(r.out).toBe('Zq8-set-beside-ssh');
  });

  it('remove takes the SSH recipient away (a new data key for the age keys), which sops then reads as ops wrote it', async () => {
    const { e, key } = await setUp();
    const rm = await cli(e.root, ['secrets', 'recipients', 'qa', 'remove', key.pub.split(' ').slice(0, 2).join(' ')], e.env);
    noBug(rm);
    expect(rm.code, rm.err).toBe(0);
    expect(readFileSync(e.secrets, 'utf8')).not.toContain('ssh-ed25519');
    expect(readFileSync(join(e.root, '.sops.yaml'), 'utf8')).not.toContain('ssh-ed25519');
    expect(sops(['decrypt', e.secrets], e.root, { SOPS_AGE_SSH_PRIVATE_KEY_FILE: key.file }).code).not.toBe(0);
    const r = sops(['decrypt', '--extract', '["secret_key"]', e.secrets], e.root, { SOPS_AGE_KEY_FILE: e.keyFile });
    expect(r.err).toBe('');
    expect(r.out.length).toBeGreaterThan(40);
  });
});

describe('an SSH key given where the age key goes', () => {
  it('is named as one (private: never shown; public), with the age key asked for, not "line 1 is not an age identity"', async () => {
    const e = await newEnv('qa');
    const key = sshKey();
    const secret = readFileSync(key.file, 'utf8');
    const cases: [NodeJS.ProcessEnv, string][] = [
      [{ SOPS_AGE_KEY_FILE: key.file }, `error: ${key.file} is an SSH private key, not an age key file (not shown)`],
      [{ SOPS_AGE_KEY_FILE: `${key.file}.pub` }, `error: ${key.file}.pub is an SSH public key, not an age key file`],
      [{ SOPS_AGE_KEY: secret }, 'error: SOPS_AGE_KEY holds an SSH private key, not an age key (not shown)'],
    ];
    for (const [env, said] of cases) {
      const r = await cli(e.root, ['secrets', 'show', 'qa'], env);
      expect(r.code).toBe(1);
      expect(r.out).toBe('');
      expect(r.err).toContain(said);
      expect(r.err).toContain('hint: ops decrypts with age keys (AGE-SECRET-KEY-1…, from `ops keygen` or age-keygen) only');
      for (const line of secret.split('\n').slice(1, -2)) expect(r.err).not.toContain(line);
    }
  });
});
