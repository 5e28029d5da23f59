// Files holding secrets (encrypted or not) or an edit are read and written by their owner only: a new secrets file,
// an edit kept aside and the editor's temporary file are 0600 whatever the umask; an edit kept aside is never
// more open than the secrets file it comes from; an existing secrets file keeps the mode it has.
import { chmodSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { editSecrets } from '../../core/secrets/edit.ts';
import { SecretsFile } from '../../core/secrets/sops.ts';
import { str } from '../../core/secrets/tree.ts';
import { type TestSecretsFile, cli, editWhileAnotherSaves, newEnv, secretsFile } from './secrets.helpers.ts';

const modeOf = (file: string) => (statSync(file).mode & 0o777).toString(8);

// the usual umask, under which a file created without a mode is 0644
let umask: number;
beforeAll(() => {
  umask = process.umask(0o022);
});
afterAll(() => {
  process.umask(umask);
});

/** An edit of `s` whose file another command changes while the editor is open, declined: kept aside. @returns the aside's path. */
async function keptAside(s: TestSecretsFile): Promise<string> {
  const r = await editSecrets(await s.open(), {
    edit: editWhileAnotherSaves(s),
    confirm: async () => false,
    warn: () => undefined,
  });
  expect(r).toMatchObject({ status: 'aborted', reason: expect.stringContaining('unsaved-edit') });
  return join(s.dir, readdirSync(s.dir).find((n) => n.includes('unsaved-edit'))!);
}

describe('modes of the files holding secrets', () => {
  it('a new secrets file is 0600: made by ops env new, by ops secrets set and by SecretsFile.save', async () => {
    const e = await newEnv('qa'); // ops env new
    expect(modeOf(e.secrets)).toBe('600');
    // ops secrets set on an environment without a secrets file creates it
    renameSync(e.secrets, `${e.secrets}.old`);
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'token'], e.env, 'Zq8-token-value')).code).toBe(0);
    expect(modeOf(e.secrets)).toBe('600');
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    expect(modeOf(s.file)).toBe('600');
  });

  it('an existing secrets file keeps its mode when rewritten (0640: shared with a group on purpose)', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    chmodSync(s.file, 0o640);
    const f = await s.open();
    f.set(['other'], str('Zq8-other-value'));
    await f.save();
    expect(modeOf(s.file)).toBe('640');
  });

  it('an edit kept aside is 0600, even beside a secrets file more open (0644)', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    chmodSync(s.file, 0o644);
    expect(modeOf(await keptAside(s))).toBe('600');
  });

  it('an edit kept aside is never more open than its secrets file: beside a 0440 one it is 0400', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    chmodSync(s.file, 0o440);
    expect(modeOf(await keptAside(s))).toBe('400');
  });

  it('the temporary file is 0600 again when the editor reopens on the text, though the editor replaced it with a 0644 one', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const modes: string[] = [];
    const r = await editSecrets(await s.open(), {
      edit: async (tmp) => {
        modes.push(modeOf(tmp));
        if (modes.length === 1) {
          // as an editor that writes a new file and renames it over the old one, with the umask's mode
          const text = `${readFileSync(tmp, 'utf8')}mine: Zq8-typed-by-me\n`;
          writeFileSync(`${tmp}.new`, text, { mode: 0o644 });
          renameSync(`${tmp}.new`, tmp);
          const f = await s.open();
          f.set(['theirs'], str('Zq8-their-value'));
          await f.save();
        } else writeFileSync(tmp, `${readFileSync(tmp, 'utf8')}theirs: Zq8-their-value\n`);
        return { code: 0, signal: null };
      },
      confirm: async () => true,
      warn: () => undefined,
    });
    expect(r).toMatchObject({ status: 'saved' });
    expect(modes).toEqual(['600', '600']);
  });
});
