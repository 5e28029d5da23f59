// A user's file that is there but cannot be read (a symlink loop, a directory where a file belongs, a path through
// a file) is said as what it is, never as absent ("no secrets file"); a dangling symlink is nothing there.
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OpsError, userFileExists } from '../../core/errors.ts';
import { cli, newEnv, tempDir } from './secrets.helpers.ts';

function caught(fn: () => unknown): OpsError {
  try {
    fn();
  } catch (e) {
    if (e instanceof OpsError) return e;
    throw e;
  }
  throw new Error('no error');
}

describe('userFileExists', () => {
  it('false only for nothing there (a dangling symlink too); an unreadable one is an error naming what to fix', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'file'), 'x');
    symlinkSync('loop', join(dir, 'loop'));
    symlinkSync('nowhere', join(dir, 'dangling'));
    mkdirSync(join(dir, 'folder'));
    expect(userFileExists(join(dir, 'file'))).toBe(true);
    expect(userFileExists(join(dir, 'missing'))).toBe(false);
    expect(userFileExists(join(dir, 'dangling'))).toBe(false);
    const loop = caught(() => userFileExists(join(dir, 'loop'), 'environments/qa/secrets.sops.yaml'));
    expect(loop.message).toBe('cannot read environments/qa/secrets.sops.yaml: it is a symbolic link that leads to itself (a loop of links, or too many in a row)');
    expect(loop.hint).toMatch(/^fix or remove it/);
    expect(caught(() => userFileExists(join(dir, 'folder'), 'keys.txt', 'an age key file')).message).toBe('cannot read keys.txt: it is a directory, not an age key file');
    expect(caught(() => userFileExists(join(dir, 'file', 'below'), 'x.yml')).message).toBe('cannot read x.yml: a part of the path is a file, not a directory');
  });
});

describe('where the commands look for user files', () => {
  it('ops secrets show on a secrets file that is a symlink loop says so, not "no secrets file"', async () => {
    const e = await newEnv();
    const { rmSync } = await import('node:fs');
    rmSync(e.secrets);
    symlinkSync('secrets.sops.yaml', e.secrets);
    const r = await cli(e.root, ['secrets', 'show', 'qa'], e.env);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^error: cannot read environments\/qa\/secrets\.sops\.yaml: it is a symbolic link that leads to itself .*\n {2}hint: fix or remove it/);
    expect(r.err).not.toMatch(/no secrets file/);
  });

  it('environment.yml and the default age key file that are directories are said as such', async () => {
    const e = await newEnv();
    const config = join(e.root, 'environments', 'qa', 'environment.yml');
    const { rmSync } = await import('node:fs');
    // The default key file ($HOME/.config/sops/age/keys.txt: HOME is the root) a directory: not "no such file".
    mkdirSync(join(e.root, '.config', 'sops', 'age', 'keys.txt'), { recursive: true });
    const decrypt = await cli(e.root, ['secrets', 'decrypt', e.secrets]);
    expect(decrypt.err).toMatch(/cannot read \S+keys\.txt: it is a directory, not an age key file/);
    rmSync(join(e.root, '.config'), { recursive: true });
    rmSync(config);
    mkdirSync(config);
    const r = await cli(e.root, ['secrets', 'show', 'qa'], e.env);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/cannot read environments\/qa\/environment\.yml: it is a directory, not a file/);
  });
});
