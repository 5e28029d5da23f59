// SSH public keys as sops recipients (`ssh-ed25519 AAAA…`, `ssh-rsa AAAA…` in .sops.yaml: sops 3.10+ and age encrypt
// to them and decrypt with the SSH private key, found in SOPS_AGE_SSH_PRIVATE_KEY_FILE, the output of
// SOPS_AGE_SSH_PRIVATE_KEY_CMD, ~/.ssh/id_ed25519 and ~/.ssh/id_rsa). An operator whose only key is their SSH key
// could decrypt with sops but not with ops ("ops reads age keys only"), and `rotate`, `recipients add` and `sync`
// were refused for files with SSH recipients. Now ops finds the SSH keys where sops does, opens and writes such
// files, and sops reads what ops wrote. The files, keys and recipients are the real sops's and ssh-keygen's.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEnvIdentities } from '../../core/secrets/env.ts';
import { decryptFile } from '../../core/secrets/sops.ts';
import { cli, editor, newEnv, tempDir } from './secrets.helpers.ts';

interface SshKey {
  file: string;
  pub: string;
}

/** A new SSH key made by ssh-keygen (`form`: RSA as `-m PEM`, PKCS#1, or `-m PKCS8`), in `dir` as `name`. */
function sshKey(type: 'ed25519' | 'rsa', opts: { dir?: string; name?: string; form?: 'PEM' | 'PKCS8'; passphrase?: string } = {}): SshKey {
  const dir = opts.dir ?? tempDir('ops-ssh-key-');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, opts.name ?? `id_${type}`);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '3072'] : []), ...(opts.form ? ['-m', opts.form] : []), '-N', opts.passphrase ?? '', '-C', 'ana@laptop', '-f', file]);
  return { file, pub: readFileSync(`${file}.pub`, 'utf8').trim() };
}

/** A home directory holding `keys` in its ~/.ssh, as ssh-keygen leaves them. */
function homeWith(...keys: ('ed25519' | 'rsa')[]): { home: string; keys: SshKey[] } {
  const home = tempDir('ops-ssh-home-');
  return { home, keys: keys.map((t) => sshKey(t, { dir: join(home, '.ssh') })) };
}

/** The real sops in `cwd` with exactly these variables (HOME an empty directory unless given). */
function sops(args: string[], cwd: string, env: NodeJS.ProcessEnv) {
  const r = spawnSync('sops', args, { cwd, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: tempDir('ops-sops-home-'), ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** `plain` encrypted by the real sops to `recipients` (comma-separated, as `--age` takes them). */
function sopsFile(recipients: string, plain = 'token: Zq8-only-ssh-opens-this\n'): { dir: string; file: string } {
  const dir = tempDir('ops-ssh-file-');
  writeFileSync(join(dir, 'plain.yaml'), plain);
  const enc = sops(['encrypt', '--age', recipients, 'plain.yaml'], dir, {});
  expect(enc.code, enc.err).toBe(0);
  writeFileSync(join(dir, 's.sops.yaml'), enc.out);
  return { dir, file: join(dir, 's.sops.yaml') };
}

const noBug = (r: { err: string }) => expect(r.err).not.toMatch(/internal error|\n\s+at |could be a secret/);
const noKeyShown = (text: string, key: SshKey) => {
  for (const line of readFileSync(key.file, 'utf8').split('\n').slice(1, -2).filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l))) expect(text).not.toContain(line);
};

describe('a file sops encrypted to SSH keys, opened with only an SSH key, where sops finds it', () => {
  it('each kind of key in each place sops looks: ops decrypts as sops does, and both refuse a key that is not a recipient', async () => {
    const e = await newEnv('qa');
    const ed = homeWith('ed25519');
    const rsa = homeWith('rsa');
    const pem = sshKey('rsa', { form: 'PEM' });
    const pkcs8 = sshKey('rsa', { form: 'PKCS8' });
    const viaVar = sshKey('ed25519', { name: 'work_key' });
    const viaCmd = sshKey('ed25519', { name: 'vault_key' });
    const cases: [string, string, NodeJS.ProcessEnv][] = [
      ['~/.ssh/id_ed25519', ed.keys[0]!.pub, { HOME: ed.home }],
      ['~/.ssh/id_rsa (OpenSSH form)', rsa.keys[0]!.pub, { HOME: rsa.home }],
      ['an RSA key in PEM form, SOPS_AGE_SSH_PRIVATE_KEY_FILE', pem.pub, { SOPS_AGE_SSH_PRIVATE_KEY_FILE: pem.file }],
      ['an RSA key in PKCS#8 form, SOPS_AGE_SSH_PRIVATE_KEY_FILE', pkcs8.pub, { SOPS_AGE_SSH_PRIVATE_KEY_FILE: pkcs8.file }],
      ['an ed25519 key elsewhere, SOPS_AGE_SSH_PRIVATE_KEY_FILE', viaVar.pub, { SOPS_AGE_SSH_PRIVATE_KEY_FILE: viaVar.file }],
      ['SOPS_AGE_SSH_PRIVATE_KEY_CMD', viaCmd.pub, { SOPS_AGE_SSH_PRIVATE_KEY_CMD: `cat ${viaCmd.file}` }],
      // a mixed file (an age key and the SSH key): the SSH key alone opens it
      ['~/.ssh/id_ed25519, a file open to an age key too', `${execFileSync('age-keygen', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).match(/public key: (age1\w+)/)![1]},${ed.keys[0]!.pub}`, { HOME: ed.home }],
    ];
    for (const [what, recipients, env] of cases) {
      const { dir, file } = sopsFile(recipients);
      const theirs = sops(['decrypt', '--extract', '["token"]', file], dir, env);
      expect(theirs.out, `${what}: ${theirs.err}`).toBe('Zq8-only-ssh-opens-this');
      const r = await cli(e.root, ['secrets', 'decrypt', file], env);
      noBug(r);
      expect(r.err, what).toBe('');
      expect(r.out, what).toBe('token: Zq8-only-ssh-opens-this\n');
    }
    // an SSH key that is not a recipient: both refuse; ops says where it looked, never the key
    const { dir, file } = sopsFile(ed.keys[0]!.pub);
    expect(sops(['decrypt', file], dir, { HOME: rsa.home }).code).not.toBe(0);
    const r = await cli(e.root, ['secrets', 'decrypt', file], { HOME: rsa.home });
    noBug(r);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toContain(`is a recipient of ${file}`);
    expect(r.err).toContain('which ops, as sops, decrypts with your SSH private key, looked for in SOPS_AGE_SSH_PRIVATE_KEY_FILE, SOPS_AGE_SSH_PRIVATE_KEY_CMD, ~/.ssh/id_ed25519 and ~/.ssh/id_rsa');
    expect(r.err).toContain(`${join(rsa.home, '.ssh', 'id_rsa')} (an ssh-rsa key)`);
    noKeyShown(r.err, rsa.keys[0]!);
  });

  it('a passphrase-protected SSH key the file needs: refused naming it and the ways on; beside a key that opens the file, unused', async () => {
    const e = await newEnv('qa');
    const locked = homeWith();
    const key = sshKey('ed25519', { dir: join(locked.home, '.ssh'), passphrase: 'correct horse' });
    const { dir, file } = sopsFile(key.pub);
    // sops asks for the passphrase at a terminal: with none, it fails
    expect(sops(['decrypt', file], dir, { HOME: locked.home }).code).not.toBe(0);
    for (const env of [{ HOME: locked.home }, { SOPS_AGE_SSH_PRIVATE_KEY_FILE: key.file }]) {
      const r = await cli(e.root, ['secrets', 'decrypt', file], env);
      noBug(r);
      expect(r.code).toBe(1);
      expect(r.out).toBe('');
      expect(r.err).toContain(`error: ${key.file}, the SSH key this file is encrypted to, is protected by a passphrase: ops does not ask for passphrases (sops asks at a terminal)`);
      expect(r.err).toContain(`ssh-keygen -p -N '' -f ${key.file}.sops && export SOPS_AGE_SSH_PRIVATE_KEY_FILE=${key.file}.sops`);
      expect(r.err).toContain('or use an age key: `ops keygen`');
      noKeyShown(r.err, key);
    }
    // an RSA key in PEM form, encrypted (Proc-Type: 4,ENCRYPTED): its public key from the .pub beside it, as sops reads it
    const pem = sshKey('rsa', { form: 'PEM', passphrase: 'correct horse' });
    const pemFile = sopsFile(pem.pub);
    const r = await cli(e.root, ['secrets', 'decrypt', pemFile.file], { SOPS_AGE_SSH_PRIVATE_KEY_FILE: pem.file });
    expect(r.code).toBe(1);
    expect(r.err).toContain(`error: ${pem.file}, the SSH key this file is encrypted to, is protected by a passphrase`);
    noKeyShown(r.err, pem);
    // the same key printed by SOPS_AGE_SSH_PRIVATE_KEY_CMD (sops refuses it: "password protected, which is unsupported")
    const cmd = await cli(e.root, ['secrets', 'decrypt', file], { SOPS_AGE_SSH_PRIVATE_KEY_CMD: `cat ${key.file}` });
    expect(cmd.code).toBe(1);
    expect(cmd.err).toContain('error: the SSH key SOPS_AGE_SSH_PRIVATE_KEY_CMD printed is protected by a passphrase (not shown)');
    noKeyShown(cmd.err, key);
    // a locked ~/.ssh/id_ed25519 (common: it is the login key) does not stand in the way of the age key
    const show = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'secret_key'], { ...e.env, HOME: locked.home });
    expect(show.err).toBe('');
    expect(show.out.length).toBeGreaterThan(40);
  });
});

describe('an SSH key ops cannot use, where sops looks', () => {
  it('is named by path and what is wrong, only when no key opens the file, never shown and never a stack trace', async () => {
    const e = await newEnv('qa');
    const { dir, file } = sopsFile(sshKey('ed25519').pub);
    const ec = homeWith();
    const ecdsa = join(ec.home, '.ssh', 'id_ed25519');
    mkdirSync(join(ec.home, '.ssh'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ecdsa', '-N', '', '-f', ecdsa]);
    const pub = sshKey('ed25519');
    const cases: [NodeJS.ProcessEnv, string][] = [
      [{ HOME: ec.home }, `${ecdsa}: an ecdsa-sha2-nistp256 SSH key, which age cannot decrypt with (ssh-ed25519 and ssh-rsa only)`],
      [{ SOPS_AGE_SSH_PRIVATE_KEY_FILE: `${pub.file}.pub` }, `${pub.file}.pub: an SSH public key (what its .pub holds), not the private key`],
      [{ SOPS_AGE_SSH_PRIVATE_KEY_CMD: 'echo not-a-key' }, 'SOPS_AGE_SSH_PRIVATE_KEY_CMD: not an SSH private key ops and sops can read'],
      [{ SOPS_AGE_SSH_PRIVATE_KEY_CMD: 'false' }, 'SOPS_AGE_SSH_PRIVATE_KEY_CMD failed'],
    ];
    for (const [env, said] of cases) {
      expect(sops(['decrypt', file], dir, env).code).not.toBe(0);
      const r = await cli(e.root, ['secrets', 'decrypt', file], env);
      noBug(r);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`error: no age identity or SSH key to decrypt ${file}`);
      expect(r.err).toContain(said);
    }
    // beside the age key that opens the file, the unusable key is not said at all
    const ok = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'secret_key'], { ...e.env, HOME: ec.home });
    expect(ok.err).toBe('');
    expect(ok.code).toBe(0);
  });
});

describe('an environment encrypted to SSH keys, worked on by someone holding only an SSH key', () => {
  it('show, set, edit, rotate, recipients add/sync, deploy reading: all with the SSH key; sops reads every file ops wrote with each SSH key', async () => {
    const e = await newEnv('qa');
    const ed = homeWith('ed25519');
    const rsa = sshKey('rsa', { form: 'PEM' });
    const conf = join(e.root, '.sops.yaml');
    writeFileSync(conf, readFileSync(conf, 'utf8').replace(/(age: age1[0-9a-z]+)/, `$1,${ed.keys[0]!.pub},${rsa.pub}`));
    const up = sops(['updatekeys', '-y', e.secrets], e.root, { SOPS_AGE_KEY_FILE: e.keyFile });
    expect(up.code, up.err).toBe(0);
    const mine = { HOME: ed.home }; // no age key anywhere: the SSH key alone
    const sopsReads = (key: NodeJS.ProcessEnv, name: string) => sops(['decrypt', '--extract', `["${name}"]`, e.secrets], e.root, key);
    const everyKeyReads = (name: string, value: string) => {
      for (const key of [{ HOME: ed.home }, { SOPS_AGE_SSH_PRIVATE_KEY_FILE: rsa.file }, { SOPS_AGE_KEY_FILE: e.keyFile }]) {
        const r = sopsReads(key, name);
        expect(r.err, JSON.stringify(key)).toBe('');
        expect(r.out).toBe(value);
      }
    };

    const show = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'secret_key'], mine);
    expect(show.err).toBe('');
    expect(show.out).toBe(sopsReads(mine, 'secret_key').out);

    const set = await cli(e.root, ['secrets', 'set', 'qa', 'token'], mine, 'Zq8-set-with-ssh');
    expect(set.code, set.err).toBe(0);
    everyKeyReads('token', 'Zq8-set-with-ssh');

    const ed1 = editor(`sed -i 's/^token: .*/token: Zq8-edited-with-ssh/' "$1"`);
    const edit = await cli(e.root, ['secrets', 'edit', 'qa'], { ...mine, EDITOR: ed1.cmd });
    expect(edit.code, edit.err).toBe(0);
    everyKeyReads('token', 'Zq8-edited-with-ssh');

    const rot = await cli(e.root, ['secrets', 'rotate', 'qa'], mine);
    noBug(rot);
    expect(rot.code, rot.err).toBe(0);
    everyKeyReads('token', 'Zq8-edited-with-ssh');

    const list = await cli(e.root, ['secrets', 'recipients', 'qa'], mine);
    expect(list.code, list.err).toBe(0);
    expect(list.out).toContain(rsa.pub.split(' ')[1]);

    // a new colleague's SSH key, added by ops: sops opens the file with it
    const theirs = homeWith('rsa');
    // typed unquoted, its words are three arguments: said so, with the quotes to add
    const split = await cli(e.root, ['secrets', 'recipients', 'qa', 'add', ...theirs.keys[0]!.pub.split(' ')], mine);
    expect(split.code).toBe(2);
    expect(split.err).toContain('the SSH public key was given as 3 arguments (ssh-rsa AAAAB3NzaC1yc2EA…)');
    expect(split.err).toContain("put it in quotes, as one argument: ops secrets recipients qa add 'ssh-rsa AAAA…'");
    const add = await cli(e.root, ['secrets', 'recipients', 'qa', 'add', theirs.keys[0]!.pub], mine);
    noBug(add);
    expect(add.code, add.err).toBe(0);
    expect(sopsReads({ HOME: theirs.home }, 'token').out).toBe('Zq8-edited-with-ssh');
    const sync = await cli(e.root, ['secrets', 'recipients', 'qa', 'sync'], mine);
    noBug(sync);
    expect(sync.code, sync.err).toBe(0);

    // a deploy (core/ops/secrets.ts, also status, logs, initdata) reads them so: the SSH key opens them
    const ids = await loadEnvIdentities(e.root, 'qa', { PATH: process.env.PATH, ...mine });
    expect((await decryptFile(e.secrets, { identities: ids })).data.token).toBe('Zq8-edited-with-ssh');

    // a file ops encrypts new to the rule (SSH recipients and all): sops reads it with the SSH key
    const plain = join(e.root, 'environments', 'qa', 'extra.sops.yaml');
    writeFileSync(plain, 'extra: Zq8-new-file\n');
    const enc = await cli(e.root, ['secrets', 'encrypt', plain], mine);
    expect(enc.code, enc.err).toBe(0);
    const r = sops(['decrypt', '--extract', '["extra"]', plain], e.root, { SOPS_AGE_SSH_PRIVATE_KEY_FILE: rsa.file });
    expect(r.err).toBe('');
    expect(r.out).toBe('Zq8-new-file');
  });

  it('remove takes an SSH recipient away (a new data key for the others), which sops then reads as ops wrote it', async () => {
    const { e, key, conf } = await withSshRecipient();
    const rm = await cli(e.root, ['secrets', 'recipients', 'qa', 'remove', key.pub.split(' ').slice(0, 2).join(' ')], e.env);
    noBug(rm);
    expect(rm.code, rm.err).toBe(0);
    expect(readFileSync(e.secrets, 'utf8')).not.toContain('ssh-ed25519');
    expect(readFileSync(conf, 'utf8')).not.toContain('ssh-ed25519');
    expect(sops(['decrypt', e.secrets], e.root, { SOPS_AGE_SSH_PRIVATE_KEY_FILE: key.file }).code).not.toBe(0);
    const r = sops(['decrypt', '--extract', '["secret_key"]', e.secrets], e.root, { SOPS_AGE_KEY_FILE: e.keyFile });
    expect(r.err).toBe('');
    expect(r.out.length).toBeGreaterThan(40);
  });
});

/** Environment qa, whose secrets the real sops re-encrypted (updatekeys) to its age key and a new ed25519 SSH key too. */
async function withSshRecipient() {
  const e = await newEnv('qa');
  const key = sshKey('ed25519');
  const conf = join(e.root, '.sops.yaml');
  writeFileSync(conf, readFileSync(conf, 'utf8').replace(/(age: age1[0-9a-z]+)/, `$1,${key.pub}`));
  expect(sops(['updatekeys', '-y', e.secrets], e.root, { SOPS_AGE_KEY_FILE: e.keyFile }).code).toBe(0);
  return { e, key, conf };
}

describe('removing the only SSH key of yours that an environment is encrypted to', () => {
  it('is refused naming it as an SSH key, not "the only age key of yours"', async () => {
    const { e, key, conf } = await withSshRecipient();
    const before = readFileSync(e.secrets, 'utf8');
    const bare = key.pub.split(' ').slice(0, 2).join(' ');
    const rm = await cli(e.root, ['secrets', 'recipients', 'qa', 'remove', bare], { SOPS_AGE_SSH_PRIVATE_KEY_FILE: key.file });
    noBug(rm);
    expect(rm.code, rm.err).toBe(1);
    expect(rm.err).toContain(`(your key from ${key.file}), the only SSH key of yours that qa's secrets are encrypted to: you could no longer decrypt them`);
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  });
});

describe('an SSH key given where the age key goes', () => {
  it('is named as one (private: never shown; public), with where an SSH key goes, not "line 1 is not an age identity"', async () => {
    const e = await newEnv('qa');
    const key = sshKey('ed25519');
    const secret = readFileSync(key.file, 'utf8');
    const cases: [NodeJS.ProcessEnv, string][] = [
      [{ SOPS_AGE_KEY_FILE: key.file }, `error: ${key.file} is an SSH private key, not an age key file (not shown)`],
      [{ SOPS_AGE_KEY_FILE: `${key.file}.pub` }, `error: ${key.file}.pub is an SSH public key, not an age key file`],
      [{ SOPS_AGE_KEY: secret }, 'error: SOPS_AGE_KEY holds an SSH private key, not an age key (not shown)'],
    ];
    for (const [env, said] of cases) {
      const r = await cli(e.root, ['secrets', 'show', 'qa'], env);
      expect(r.code).toBe(2);
      expect(r.out).toBe('');
      expect(r.err).toContain(said);
      expect(r.err).toContain('an SSH private key goes in SOPS_AGE_SSH_PRIVATE_KEY_FILE (its path), as sops reads it');
      noKeyShown(r.err, key);
    }
  });
});
