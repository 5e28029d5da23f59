// What a new user types on the first day that ops read wrongly: age's and ssh's `-i KEY` given to a command that logs
// in to no host (taken as ops's SSH key, then ignored: the secrets still "no age identity"), and a group's subcommand
// typed after the environment (`ops secrets qa show`, `ops lock qa`), as `ops qa deploy` is already said.
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allCommands } from '../../scripts/commands/index.ts';
import { runOps } from '../support/cli.ts';
import { testEnv } from './status.helpers.ts';

const cli = (root: string, ...argv: string[]) => runOps(argv, { root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent' } });

/** A project with environments prod and qa. */
function project(): string {
  const root = testEnv({}, undefined, 'prod').root;
  cpSync(join(root, 'environments', 'prod'), join(root, 'environments', 'qa'), { recursive: true });
  return root;
}

describe('--identity (-i) given to a command that logs in to no host', () => {
  it('is refused, whatever its form or place, saying what it is; for the secrets, how the age key is given, with the file typed', async () => {
    const root = project();
    const said = (command: string) => `error: --identity (-i) is the SSH key ops logs in to hosts with; "ops ${command}" logs in to none\n`;
    const age = (line: string) => `  hint: the age key that decrypts the secrets goes in $SOPS_AGE_KEY_FILE (or the key itself in $SOPS_AGE_KEY): ${line}\n`;
    for (const [argv, line] of [
      [['secrets', 'show', 'qa', '-i', '/keys/qa.txt'], 'SOPS_AGE_KEY_FILE=/keys/qa.txt ops secrets show qa'],
      [['secrets', 'show', 'qa', '--identity=/keys/qa.txt', '--key', 'secret_key'], 'SOPS_AGE_KEY_FILE=/keys/qa.txt ops secrets show qa --key secret_key'],
      [['secrets', 'edit', 'qa', '-i/keys/my key.txt'], "SOPS_AGE_KEY_FILE='/keys/my key.txt' ops secrets edit qa"],
      [['config', 'qa', '--identity', '/k'], 'SOPS_AGE_KEY_FILE=/k ops config qa'],
      [['-i', '/k', 'secrets', 'rotate', 'qa'], 'SOPS_AGE_KEY_FILE=/k ops secrets rotate qa'],
      [['secrets', 'set', 'qa', 'a', '-i'], 'SOPS_AGE_KEY_FILE=FILE ops secrets set qa a'],
    ] as const) {
      const r = await cli(root, ...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toBe(said(argv[0] === '-i' ? 'secrets rotate' : argv[0] === 'config' ? 'config' : `secrets ${argv[1]}`) + age(line));
    }
    // one that reads no secrets: leave it out
    expect((await cli(root, 'keygen', '-i', '/k')).err).toBe(`${said('keygen')}  hint: leave it out: ops keygen\n`);
    expect((await cli(root, 'env', 'new', 'dev', '--identity', '/k')).err).toBe(`${said('env new')}  hint: leave it out: ops env new dev\n`);
    // after `--`, a word, not an option
    expect((await cli(root, 'secrets', 'set', 'qa', 'a', '--', '-i')).err).not.toContain('--identity');
  });

  it('is in the help of every command that logs in to hosts, and of no other', async () => {
    const root = project();
    const withIt: string[] = [];
    for (const c of allCommands) {
      const r = await cli(root, ...c.name.split(' '), '--help');
      expect(r.code, c.name).toBe(0);
      if (r.out.includes('--identity FILE')) withIt.push(c.name);
    }
    expect(withIt.sort()).toEqual(['audit', 'certs', 'deploy', 'diff', 'env remove', 'initdata', 'lock release', 'lock status', 'logs', 'ping', 'provision', 'releases', 'rollback', 'status']);
  });
});

describe("a group's subcommand typed after the environment", () => {
  it('is said in that order, with the line meant; the subcommand left out after an environment: the ones taking it', async () => {
    const root = project();
    for (const [argv, what, meant] of [
      [['secrets', 'qa', 'show'], 'environment', '"ops secrets show qa"'],
      [['secrets', 'qa', 'set', 'database_url', '--empty'], 'environment', '"ops secrets set qa database_url --empty"'],
      [['env', 'qa', 'remove', '--dry-run'], 'name', '"ops env remove qa --dry-run"'],
      [['lock', 'qa'], 'environment', '"ops lock status qa" or "ops lock release qa"'],
      [['env', 'prod'], 'environment', '"ops env remove prod"'],
      [['secrets', 'qa'], 'environment', '"ops secrets <subcommand> qa"'],
    ] as const) {
      const r = await cli(root, ...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err.split('\n')[0], argv.join(' ')).toBe(`error: unknown subcommand "${argv[1]}" for "ops ${argv[0]}": the subcommand comes first, then the ${what} (did you mean ${meant}?)`);
      expect(r.err.split('\n')[1], argv.join(' ')).toMatch(new RegExp(`^  hint: its subcommands: ops ${argv[0]} \\S+ <`));
    }
    // --json: its one document
    const json = await cli(root, 'lock', 'qa', 'status', '--json');
    expect(JSON.parse(json.out)).toMatchObject({ ok: false, error: expect.stringContaining('(did you mean "ops lock status qa --json"?)'), exitCode: 2 });
    // a word that is neither an environment nor before a subcommand: as before
    expect((await cli(root, 'lock', 'qq')).err).toMatch(/^error: unknown subcommand "qq" for "ops lock"; its subcommands:\n/);
  });
});

describe('ops env new > FILE', () => {
  it('writes a key file: stdout holds the key alone (with its comments), what was written and what next go to stderr', async () => {
    const root = project();
    const made = await cli(root, 'env', 'new', 'dev');
    expect(made.code).toBe(0);
    expect(made.out.split('\n').filter((l) => l.trim() && !l.startsWith('#'))).toEqual([expect.stringMatching(/^AGE-SECRET-KEY-1[0-9A-Z]+$/)]);
    expect(made.err).toContain('wrote environments/dev/secrets.sops.yaml\n');
    expect(made.err).toContain('next: replace the PLACEHOLDER values in environments/dev/environment.yml');
    // that file decrypts the new environment's secrets
    const keyFile = join(root, '..', `dev-key-${process.pid}.txt`);
    writeFileSync(keyFile, made.out, { mode: 0o600 });
    const shown = await runOps(['secrets', 'show', 'dev', '--key', 'secret_key'], { root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent', SOPS_AGE_KEY_FILE: keyFile } });
    expect(shown.err).toBe('');
    expect(shown).toMatchObject({ code: 0, out: expect.stringMatching(/^[\w-]{40,}$/) });
  });
});

describe('one word more than a command takes, where an option of it is meant', () => {
  it('(`ops deploy qa v1`, as git checkout takes a ref) is named as that option, with the command line meant', async () => {
    const root = project();
    for (const [argv, meant, line] of [
      [['deploy', 'qa', 'v1'], '--ref v1', 'ops deploy qa --ref v1'],
      [['deploy', 'qa', 'v1', '--dry-run'], '--ref v1', 'ops deploy qa --dry-run --ref v1'],
      [['diff', 'qa', 'my branch'], "--ref 'my branch'", "ops diff qa --ref 'my branch'"],
      [['rollback', 'qa', '20261207T075711Z-934cf6375ff2'], '--to 20261207T075711Z-934cf6375ff2', 'ops rollback qa --to 20261207T075711Z-934cf6375ff2'],
      [['initdata', 'qa', 'users.yml'], '--file users.yml', 'ops initdata qa --file users.yml'],
      // the environment typed last
      [['deploy', 'v1', '--dry-run', 'qa'], 'ops deploy qa --ref v1', 'ops deploy qa --dry-run --ref v1'],
    ] as const) {
      const r = await cli(root, ...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toBe(`error: unexpected argument "${argv.at(-1) === '--dry-run' ? argv[2] : argv.at(-1)}" for "ops ${argv[0]}" (did you mean ${meant}?)\n  hint: ${line}\n`);
    }
    // the option given already, or two words more: the usage
    expect((await cli(root, 'deploy', 'qa', '--ref', 'v1', 'v2')).err).toBe('error: unexpected argument "v2" for "ops deploy"\n  hint: usage: ops deploy <env> [--ref REF] [--force] [--dry-run] [--forward-only] [--json]\n');
    expect((await cli(root, 'deploy', 'qa', 'v1', 'v2')).err).toMatch(/^error: unexpected argument "v1" for "ops deploy"\n  hint: usage:/);
  });
});
