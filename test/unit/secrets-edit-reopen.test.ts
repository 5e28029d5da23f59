// `ops secrets edit` reopened on the user's text after the file changed on disk: an abort chosen in that round (a
// refusal answered no, the editor failing, an emptied text, a signal) keeps the edit aside, encrypted, named in the
// message, as a declined round does; nothing when the text left is the file's as it is now. The real sops checks
// what was kept.
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type EditIo, type EditorExit, UNSAVED_TEXT_KEY, editSecrets } from '../../core/secrets/edit.ts';
import { type TestSecretsFile, editWhileAnotherSaves, secretsFile, sops } from './secrets.helpers.ts';

type S = TestSecretsFile;

const asides = (s: S) => readdirSync(s.dir).filter((n) => n.includes('unsaved-edit'));

/** Every file under `dir`, as text (nothing typed may be there in plaintext). */
const allText = (dir: string) =>
  readdirSync(dir)
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isFile())
    .map((p) => readFileSync(p, 'utf8'))
    .join('\n');

/**
 * An edit of `s`: the first round adds `mine` while another command adds `theirs` (so the editor is reopened on the
 * user's text); the second round is `second` (what the user does to the text, the editor's exit). Reopening and
 * every later question are answered `answer`.
 */
async function reopened(s: S, second: (tmp: string) => EditorExit | Promise<EditorExit>, answers: boolean[] = [true, false], signal?: AbortSignal) {
  let round = 0;
  const first = editWhileAnotherSaves(s);
  const warnings: string[] = [];
  const io: EditIo = {
    edit: async (tmp) => (++round > 1 ? second(tmp) : first(tmp)),
    confirm: async () => answers.shift() ?? false,
    warn: (m) => warnings.push(m),
    signal,
  };
  const r = await editSecrets(await s.open(), io);
  expect(round).toBeGreaterThanOrEqual(2);
  return { r, reason: r.status === 'aborted' ? r.reason : '', warnings };
}

const decrypt = (s: S, extract?: string) => sops(['decrypt', ...(extract ? ['--extract', extract] : []), join(s.dir, asides(s)[0]!)], s.key.file);

describe('ops secrets edit: an abort in a round reopened after a change on disk keeps the edit aside', () => {
  it('a value refused in that round (a tag), answered no: the text kept whole, as the user left it, encrypted', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const { r, reason } = await reopened(s, (tmp) => (writeFileSync(tmp, `${readFileSync(tmp, 'utf8')}pw: !Zq8-bang\n`), { code: 0, signal: null }));
    expect(r.status).toBe('aborted');
    expect(reason).toContain('would not be stored as typed');
    expect(reason).toMatch(/your edit is kept, encrypted to the file's recipients, in \S+secrets\.unsaved-edit-\d{8}T\d{6}Z\.sops\.yaml \(as you left it.*unsaved_edit_text\)\n\s+to merge it: compare `ops secrets decrypt/);
    expect(asides(s).length).toBe(1);
    const d = decrypt(s, `["${UNSAVED_TEXT_KEY}"]`);
    expect(d.err).toBe('');
    expect(d.out).toContain('mine: Zq8-typed-by-me\n');
    expect(d.out).toContain('pw: !Zq8-bang\n');
    expect(d.out).not.toContain('# ops:');
    expect(allText(s.dir)).not.toContain('Zq8-typed-by-me');
    expect(allText(s.dir)).not.toContain('Zq8-bang');
    // the file keeps the other command's change only
    expect((await s.open()).data).toEqual({ name: 'Zq8-vT3m-Lw5x-Pk2r', theirs: 'Zq8-their-value' });
  });

  it('a map become one value in that round (a nested line missing its ": "), answered no: kept whole, as typed, not as that value', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\nsmtp:\n  user: Zq8-user\n  password: Zq8-pass\n');
    const { reason } = await reopened(s, (tmp) => (writeFileSync(tmp, readFileSync(tmp, 'utf8').replace(/\n +user: .*\n +password: .*\n/, '\n    user Zq8-slip\n')), { code: 0, signal: null }));
    expect(reason).toContain('smtp (a map of 2 keys) would become one value');
    expect(reason).toContain(`(as you left it, which could not be saved as it stands: whole, as the value ${UNSAVED_TEXT_KEY})`);
    const d = decrypt(s, `["${UNSAVED_TEXT_KEY}"]`);
    expect(d.out).toContain('smtp:\n    user Zq8-slip\n');
    expect(d.out).toContain('mine: Zq8-typed-by-me\n');
  });

  it('text that is not valid YAML in that round, answered no: kept whole', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const { reason } = await reopened(s, (tmp) => (writeFileSync(tmp, `${readFileSync(tmp, 'utf8')}broken: [Zq8-unclosed\n`), { code: 0, signal: null }));
    expect(reason).toContain('the edited text was not valid');
    expect(reason).toContain('unsaved-edit');
    const d = decrypt(s, `["${UNSAVED_TEXT_KEY}"]`);
    expect(d.out).toContain('broken: [Zq8-unclosed\n');
    expect(d.out).toContain('mine: Zq8-typed-by-me\n');
  });

  it('text that is not UTF-8 in that round, the editor failing: its bytes kept, without the note ops put at its top', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const { reason } = await reopened(s, (tmp) => {
      const shown = readFileSync(tmp);
      expect(shown.toString('utf8')).toMatch(/^# ops: /);
      writeFileSync(tmp, Buffer.concat([shown, Buffer.from('latin: caf\xe9-Zq8\n', 'latin1')]));
      return { code: 1, signal: null };
    });
    expect(reason).toContain(`whole, as the value ${UNSAVED_TEXT_KEY}`);
    const d = decrypt(s, `["${UNSAVED_TEXT_KEY}"]`);
    expect(d.err).toBe('');
    expect(d.out).toContain('mine: Zq8-typed-by-me\n');
    expect(d.out).not.toContain('# ops:');
  });

  it('the editor failing in that round (vim :cq): the text as left kept as YAML values, comments too', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const { reason } = await reopened(s, (tmp) => (writeFileSync(tmp, `${readFileSync(tmp, 'utf8')}# why\nalso: Zq8-second-round\n`), { code: 1, signal: null }));
    expect(reason).toMatch(/^the editor exited with code 1; nothing was changed; your edit is kept, encrypted to the file's recipients, in \S+unsaved-edit-\S+\.sops\.yaml\n/);
    const d = decrypt(s);
    expect(d.err).toBe('');
    expect(d.out).toContain('mine: Zq8-typed-by-me\n');
    expect(d.out).toContain('# why\nalso: Zq8-second-round\n');
    expect(d.out).not.toContain(UNSAVED_TEXT_KEY);
  });

  it('an emptied text in that round: the text it was reopened on kept (the edit made before)', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const { reason } = await reopened(s, (tmp) => (writeFileSync(tmp, '\n'), { code: 0, signal: null }));
    expect(reason).toContain('the edited text is empty');
    expect(reason).toContain('unsaved-edit');
    const d = decrypt(s, '["mine"]');
    expect(d.out).toBe('Zq8-typed-by-me');
  });

  it('a signal in that round: kept', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const abort = new AbortController();
    const { reason } = await reopened(
      s,
      (tmp) => {
        writeFileSync(tmp, `${readFileSync(tmp, 'utf8')}also: Zq8-second-round\n`);
        abort.abort('SIGINT');
        return { code: null, signal: 'SIGTERM' };
      },
      [true],
      abort.signal,
    );
    expect(reason).toMatch(/^interrupted \(SIGINT\); nothing was changed; your edit is kept/);
    expect(decrypt(s, '["also"]').out).toBe('Zq8-second-round');
  });

  it('a signal at the question whether to reopen (Ctrl-C at the prompt): the edit kept aside all the same', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const abort = new AbortController();
    const r = await editSecrets(await s.open(), {
      edit: editWhileAnotherSaves(s),
      // as the CLI's prompt: an abort answers it (false)
      confirm: async () => (abort.abort('SIGINT'), false),
      warn: () => undefined,
      signal: abort.signal,
    });
    expect(r).toMatchObject({ status: 'aborted', reason: expect.stringMatching(/^interrupted \(SIGINT\): this edit was not saved \(the file keeps the other command's change\); your edit is kept/) });
    expect(decrypt(s, '["mine"]').out).toBe('Zq8-typed-by-me');
  });

  it('nothing kept when the text left is the file as it is now (the user took their change back)', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const { reason } = await reopened(s, async (tmp) => {
      writeFileSync(tmp, (await s.open()).plaintext());
      return { code: 1, signal: null };
    });
    expect(reason).toBe('the editor exited with code 1; nothing was changed');
    expect(asides(s)).toEqual([]);
  });

  it('an abort before any change on disk keeps nothing aside (the file is as it was: nothing of the user was saved over)', async () => {
    const s = await secretsFile('name: Zq8-vT3m-Lw5x-Pk2r\n');
    const r = await editSecrets(await s.open(), {
      edit: async (tmp) => (writeFileSync(tmp, `${readFileSync(tmp, 'utf8')}pw: !Zq8-bang\n`), { code: 0, signal: null }),
      confirm: async () => false,
      warn: () => undefined,
    });
    expect(r).toMatchObject({ status: 'aborted' });
    expect(asides(s)).toEqual([]);
  });
});
