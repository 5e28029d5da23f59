// SOPS_AGE_KEY_CMD and SOPS_AGE_SSH_PRIVATE_KEY_CMD, run as the real sops 3.13.3 runs them: split by google/shlex's
// rules and run WITHOUT a shell (getsops/sops age/keysource.go getOutputFromCmd). ops used to run them with `sh -c`,
// so `~`, pipes and `$VAR` worked in ops and failed in sops: a user tested with ops, then CI's sops failed. Each case
// is checked against the real sops binary: the words it passes, the commands it accepts, and those it refuses.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { OpsError } from '../../core/errors.ts';
import { NoKeyCommand, runKeyCommand, splitCommand } from '../../core/secrets/key-cmd.ts';
import { loadIdentities } from '../../core/secrets/keys.ts';
import { tempDir } from './secrets.helpers.ts';

/** An age key made by age-keygen, and a file the real sops encrypted to it only. */
function fixture() {
  const dir = tempDir('ops-keycmd-');
  const key = join(dir, 'k.txt');
  execFileSync('age-keygen', ['-o', key], { stdio: 'ignore' });
  const recipient = /age1[0-9a-z]+/.exec(readFileSync(key, 'utf8'))![0];
  writeFileSync(join(dir, 'plain.yaml'), 'a: 1\n');
  const enc = sops(['encrypt', '--age', recipient, 'plain.yaml'], dir, {});
  expect(enc.code, enc.err).toBe(0);
  writeFileSync(join(dir, 's.yaml'), enc.out);
  mkdirSync(join(dir, 'home'));
  return { dir, key, recipient, file: join(dir, 's.yaml'), home: join(dir, 'home') };
}

/** The real sops with exactly these variables (HOME an empty directory unless given). */
function sops(args: string[], cwd: string, env: NodeJS.ProcessEnv) {
  const r = spawnSync('sops', args, { cwd, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: tempDir('ops-sops-home-'), ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('splitCommand: the words sops passes to the program', () => {
  it('are those of the real sops, for quotes, backslashes, spaces and comments', () => {
    const f = fixture();
    // a program that writes the arguments it was given (NUL-separated) and prints the key
    const argv = join(f.dir, 'argv');
    writeFileSync(argv, `#!/bin/sh\nprintf '%s\\0' "$@" > "$OUT"\ncat ${f.key}\n`);
    chmodSync(argv, 0o755);
    const cases = [
      `${argv} plain words`,
      `${argv}   several\tspaces\nand lines `,
      `${argv} 'single quoted \\ "x" $HOME' "double \\" \\\\ \\a $HOME"`,
      `${argv} back\\ slash\\'s a\\\\b`,
      `${argv} '' "" mid'dle'"word"`,
      `${argv} a#b # a comment\n after`,
      `${argv} ~/k.txt $HOME | cat > x; *`,
    ];
    for (const [i, cmd] of cases.entries()) {
      const out = join(f.dir, `out${i}`);
      const r = sops(['decrypt', f.file], f.dir, { SOPS_AGE_KEY_CMD: cmd, OUT: out });
      expect(r.code, `${cmd}: ${r.err}`).toBe(0);
      const theirs = readFileSync(out, 'utf8').split('\0').slice(0, -1);
      expect(splitCommand(cmd), cmd).toEqual([argv, ...theirs]);
    }
  });

  it('fails where sops fails to split (a quote left open, a backslash at the end), and is empty where sops crashes', () => {
    const f = fixture();
    for (const cmd of [`cat '${f.key}`, `cat "${f.key}`, `cat ${f.key}\\`, `cat "${f.key}\\`]) {
      const r = sops(['decrypt', f.file], f.dir, { SOPS_AGE_KEY_CMD: cmd });
      expect(r.err, cmd).toContain('failed to parse command');
      expect(() => splitCommand(cmd), cmd).toThrow(/^EOF found/);
    }
    for (const cmd of ['', '  \t', '# only a comment']) {
      const r = sops(['decrypt', f.file], f.dir, { SOPS_AGE_KEY_CMD: cmd });
      expect(r.err, cmd).toContain('panic: runtime error');
      expect(splitCommand(cmd)).toEqual([]);
    }
  });
});

describe('a key command ops and sops agree on', () => {
  it('finds the key where sops does, and not where sops does not (~, pipes, $VAR without a shell)', async () => {
    const f = fixture();
    writeFileSync(join(f.home, 'k.txt'), readFileSync(f.key));
    const cases: [string, boolean][] = [
      [`cat ${f.key}`, true],
      [`cat "${f.key}" # mine`, true],
      ['cat ~/k.txt', false],
      [`cat ${f.key} | cat`, false],
      ['cat $HOME/k.txt', false],
      [`cat ${f.key} > /dev/null`, false],
      ["sh -c 'cat ~/k.txt | cat'", true],
      ['sh -c "cat $HOME/k.txt"', true],
      ['nosuchprogram-ops', false],
    ];
    for (const [cmd, opens] of cases) {
      const env = { PATH: process.env.PATH, HOME: f.home, SOPS_AGE_KEY_CMD: cmd };
      expect(sops(['decrypt', f.file], f.dir, env).code === 0, `sops: ${cmd}`).toBe(opens);
      const ids = await loadIdentities(env);
      expect(ids.identities.map((i) => i.recipient), `ops: ${cmd}`).toEqual(opens ? [f.recipient] : []);
      if (!opens) expect(ids.tried.join(', '), cmd).toMatch(/SOPS_AGE_KEY_CMD \((failed|has a)/);
    }
  });

  it('a failing command is no error when another key opens the file, as in sops', async () => {
    const f = fixture();
    const env = { PATH: process.env.PATH, HOME: f.home, SOPS_AGE_KEY_FILE: f.key, SOPS_AGE_KEY_CMD: 'false' };
    expect(sops(['decrypt', f.file], f.dir, env).code).toBe(0);
    const ids = await loadIdentities(env);
    expect(ids.identities.map((i) => i.recipient)).toEqual([f.recipient]);
  });

  it('says what is wrong and how to write it, naming the variable, never what the command printed', async () => {
    const f = fixture();
    const secret = readFileSync(f.key, 'utf8').match(/AGE-SECRET-KEY-1\w+/)![0];
    const env = { PATH: process.env.PATH, HOME: f.home };
    const tried = async (cmd: string) => (await loadIdentities({ ...env, SOPS_AGE_KEY_CMD: cmd })).tried.join(', ');
    const piped = await tried(`cat ${f.key} | cat`);
    expect(piped).toContain('SOPS_AGE_KEY_CMD (failed: cat exited with status 1 (what it printed is not shown); | is passed to cat as it is, not read by a shell');
    expect(piped).toContain(`SOPS_AGE_KEY_CMD="sh -c '<your command>'"`);
    expect(await tried(`cat '${f.key}`)).toContain(`SOPS_AGE_KEY_CMD (has a quote (' or ") with no closing one`);
    expect(await tried('nosuchprogram-ops')).toContain('no program nosuchprogram-ops (looked in PATH)');
    // the key on stdout and a message on stderr, then a failure: neither is said
    const loud = await tried(`sh -c 'cat ${f.key}; echo vault-says-sealed >&2; exit 3'`);
    expect(loud).toContain('sh exited with status 3 (what it printed is not shown)');
    expect(loud).not.toContain(secret);
    expect(loud).not.toContain('vault-says');
    // the key itself where the command goes: never echoed back as "no program AGE-SECRET-KEY-1…"
    const pasted = await tried(secret);
    expect(pasted).toContain('SOPS_AGE_KEY_CMD (holds a private key, not a command that prints one (not shown)');
    expect(pasted).not.toContain(secret.slice(15));
    // set but blank: sops crashes, ops says so
    for (const cmd of ['', ' ', '#x']) {
      const e = await loadIdentities({ ...env, SOPS_AGE_KEY_CMD: cmd }).catch((x: unknown) => x);
      expect(e, JSON.stringify(cmd)).toBeInstanceOf(NoKeyCommand);
      expect((e as OpsError).message).toMatch(/^SOPS_AGE_KEY_CMD is set but names no command.*: sops 3.13.3 crashes on it$/);
    }
  });
});

describe('SOPS_AGE_SSH_PRIVATE_KEY_CMD, run as sops runs it', () => {
  it('opens the file where sops does, and not where a shell was needed', async () => {
    const dir = tempDir('ops-keycmd-ssh-');
    const home = join(dir, 'home');
    mkdirSync(join(home, 'keys'), { recursive: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'x', '-f', join(home, 'keys', 'id')]);
    const pub = readFileSync(join(home, 'keys', 'id.pub'), 'utf8').trim();
    writeFileSync(join(dir, 'plain.yaml'), 'a: 1\n');
    const enc = sops(['encrypt', '--age', pub, 'plain.yaml'], dir, {});
    expect(enc.code, enc.err).toBe(0);
    writeFileSync(join(dir, 's.yaml'), enc.out);
    const cases: [string, boolean][] = [
      [`cat ${join(home, 'keys', 'id')}`, true],
      ['cat ~/keys/id', false],
      ['cat $HOME/keys/id', false],
      ["sh -c 'cat ~/keys/id'", true],
    ];
    for (const [cmd, opens] of cases) {
      const env = { PATH: process.env.PATH, HOME: home, SOPS_AGE_SSH_PRIVATE_KEY_CMD: cmd };
      expect(sops(['decrypt', join(dir, 's.yaml')], dir, env).code === 0, `sops: ${cmd}`).toBe(opens);
      const ids = await loadIdentities(env);
      expect(ids.identities.some((i) => i.ssh), `ops: ${cmd}`).toBe(opens);
      if (!opens) expect(ids.problems?.join('; '), cmd).toContain('SOPS_AGE_SSH_PRIVATE_KEY_CMD failed: cat exited with status 1 (what it printed is not shown)');
    }
    expect(() => runKeyCommand('SOPS_AGE_SSH_PRIVATE_KEY_CMD', '  ', { PATH: process.env.PATH })).toThrow(NoKeyCommand);
    await expect(loadIdentities({ PATH: process.env.PATH, HOME: home, SOPS_AGE_SSH_PRIVATE_KEY_CMD: '' })).rejects.toThrow(/^SOPS_AGE_SSH_PRIVATE_KEY_CMD is set but names no command/);
  });
});
