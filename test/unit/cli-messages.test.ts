// Messages for a mistyped command or path: the unknown word named (with a did-you-mean), a directory or a
// missing directory where a file is expected, --file read from the current directory, and secret key paths
// holding dots as `ops env new` writes them.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../core/config/environment.ts';
import { renderDotenv } from '../../core/dotenv.ts';
import { initdata } from '../../core/ops/initdata.ts';
import { MemoryReporter } from '../../core/report.ts';
import { runOps } from '../support/cli.ts';
import { tempDir } from './secrets.helpers.ts';
import { testEnv } from './status.helpers.ts';

const cli = (root: string, ...argv: string[]) => runOps(argv, { root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent' } });

describe('a mistyped subcommand', () => {
  it('is named, with the closest subcommand, in every group', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    const shw = await cli(root, 'secrets', 'shw', 'prod');
    expect(shw.code).toBe(2);
    expect(shw.err).toMatch(/^error: unknown subcommand "shw" for "ops secrets" \(did you mean "ops secrets show"\?\); its subcommands:\n  ops secrets decrypt <file>/);
    const lock = await cli(root, 'lock', 'foo', 'prod');
    expect(lock.code).toBe(2);
    expect(lock.err).toMatch(/^error: unknown subcommand "foo" for "ops lock"; its subcommands:\n  ops lock status <env>/);
    expect((await cli(root, 'lock', 'relase', 'prod')).err).toContain('(did you mean "ops lock release"?)');
    expect((await cli(root, 'lock')).err).toMatch(/^"ops lock" needs a subcommand:/);
    expect((await cli(root, 'deplyo', 'prod')).err).toMatch(/^error: unknown command "deplyo" \(did you mean "ops deploy"\?\)/);
    const ad = await cli(root, 'secrets', 'recipients', 'prod', 'ad', 'age1x');
    expect(ad).toMatchObject({ code: 2, err: expect.stringContaining('error: unknown action "ad" (did you mean "add"?)') });
  });
});

describe('a path that is not the file expected', () => {
  it('secrets decrypt or encrypt of a directory, keygen -o into a missing directory: what was wrong and how to fix it', async () => {
    const root = testEnv({}, undefined, 'qb').root;
    const dir = join(root, 'environments', 'qb');
    const decrypt = await cli(root, 'secrets', 'decrypt', dir);
    expect(decrypt.code).toBe(1);
    expect(decrypt.err).toContain(`error: cannot read ${dir}: it is a directory, not a sops-encrypted file`);
    expect(decrypt.err).toContain(`hint: give the path of a sops-encrypted file (e.g. ${dir}/<name>)`);
    const encrypt = await cli(root, 'secrets', 'encrypt', dir);
    expect(encrypt).toMatchObject({ code: 1, err: expect.stringContaining("error: cannot read environments/qb: it is a directory, not a plain YAML or JSON file") });
    const nodir = join(tempDir(), 'nodir');
    const keygen = await cli(root, 'keygen', '-o', join(nodir, 'x.key'));
    expect(keygen.code).toBe(1);
    expect(keygen.err).toContain(`error: cannot write ${nodir}/x.key: its directory ${nodir} does not exist`);
    expect(keygen.err).toContain(`hint: create it first (mkdir -p ${nodir}), or choose a file in an existing directory`);
    expect(keygen.out).not.toContain('AGE-SECRET-KEY');
  });

  it('initdata --file is from the current directory: the file under environments/<env>/ is suggested, not "create" it', async () => {
    const env = testEnv({ domain: 'qa.example.org' }, undefined, 'qa');
    mkdirSync(join(env.dir, 'assets'), { recursive: true });
    writeFileSync(join(env.dir, 'assets', 'initdata.yml'), 'users: []\n');
    const ctx = { root: env.root, reporter: new MemoryReporter(), processEnv: {} };
    const err = await initdata(ctx, env, { file: 'assets/initdata.yml' }).catch((e: Error & { hint?: string }) => e);
    expect((err as Error).message).toBe(`initdata file ${join(process.cwd(), 'assets/initdata.yml')} does not exist (--file is a path from the current directory, ${process.cwd()}, not from environments/qa/)`);
    const there = join(env.dir, 'assets', 'initdata.yml');
    const shown = relative(process.cwd(), there);
    expect((err as { hint?: string }).hint).toBe(`did you mean ${there}? pass --file ${shown.startsWith('..') ? there : shown}, or leave --file out (it is initdata.file)`);
    expect((err as { hint?: string }).hint).not.toContain('create');
    const none = await initdata(ctx, env, { file: 'nothing.yml' }).catch((e: Error & { hint?: string }) => e);
    expect((none as { hint?: string }).hint).toBe("check the path, or leave --file out to load the environment's initdata.file");
  });
});

describe('a secret reference to a key holding dots', () => {
  it('is taken as ops env new and secrets set write it, plain or quoted; a malformed one says how to write it', () => {
    const env = testEnv({ env: { TOOLS_ADMIN: { secret: 'passwords.admin@example.org' }, TOOLS_NEW: { secret: 'passwords."new@x.org"' } } }, undefined, 'qa');
    const loaded = loadEnvironment('qa', env.root);
    const rendered = renderDotenv(loaded, { passwords: { 'admin@example.org': 'pw-1', 'new@x.org': 'pw-2' } });
    expect(rendered.environ).toContain('TOOLS_ADMIN=pw-1');
    expect(rendered.environ).toContain('TOOLS_NEW=pw-2');
    for (const bad of ['a..b', 'passwords."x', '.a']) {
      expect(() => testEnv({ env: { X: { secret: bad } } }, undefined, 'qa'), bad).toThrow(/passwords\.admin@example\.org\) or in double quotes \('passwords\."admin@example\.org"'\)/);
    }
  });
});
