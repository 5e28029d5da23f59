// The editor `ops secrets edit` runs, as a new user sets it: a variable holding only white space, and GUI editors
// that hand the file to a window and return at once (code without --wait), which would lose the edit.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { returnsAtOnce } from '../../scripts/commands/secrets.ts';
import { cli, editor, newEnv, tempDir } from './secrets.helpers.ts';

/** A program `name` on a PATH of its own that records it ran and returns at once, as `code` does without --wait. */
function forking(name: string): { path: string; ran: string } {
  const dir = tempDir('ops-forking-');
  const ran = join(dir, 'ran');
  writeFileSync(join(dir, name), `#!/bin/sh\necho "$@" > '${ran}'\nexit 0\n`);
  chmodSync(join(dir, name), 0o755);
  return { path: `${dir}:${process.env.PATH}`, ran };
}

describe('the editor ops secrets edit runs', () => {
  for (const [cmd, fix] of [
    ['code', "EDITOR='code --wait'"],
    ['subl', "EDITOR='subl --wait'"],
    ['gvim', "EDITOR='gvim -f'"],
    ['emacsclient -n', "EDITOR='emacsclient'"],
  ] as const)
    it(`one that returns before the file is closed (${cmd}) is refused before anything is decrypted, saying how to make it wait`, async () => {
      const e = await newEnv();
      const before = readFileSync(e.secrets, 'utf8');
      const prog = forking(cmd.split(' ')[0]!);
      const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, PATH: prog.path, EDITOR: cmd });
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/which returns at once without waiting for the file to be closed: .*nothing was changed/);
      expect(r.err).toContain(`hint: make it wait: ${fix}`);
      expect(existsSync(prog.ran)).toBe(false);
      expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    });

  it('the same editors told to wait are run', () => {
    for (const c of ['code --wait', 'code -w', 'subl -w', 'gvim -f', 'vim -g -f', 'emacsclient', 'kate -b', 'vim', 'nano', '/opt/x/my-editor.sh']) expect(returnsAtOnce(c), c).toBeUndefined();
  });

  it('a variable holding only white space is taken as not set (was: the shell ran the decrypted file itself as the command)', async () => {
    const e = await newEnv();
    const ed = editor("printf 'added_key: Zq7-added-by-editor\\n' >> \"$1\"");
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, VISUAL: '  ', EDITOR: ed.cmd });
    expect(r.err).not.toMatch(/Permission denied|cannot start the editor/);
    expect(r.code).toBe(0);
    expect(readFileSync(ed.record, 'utf8')).toMatch(/secrets/);
    const blank = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ' \t' });
    expect(blank.code).toBe(2);
    expect(blank.err).toContain('no $EDITOR or $VISUAL is set and stdin is not a terminal');
  });

  it('a path holding a space, unquoted, is named so, with the quoting that works (was: "no such command", set EDITOR to an installed editor)', async () => {
    const e = await newEnv();
    const ed = editor("printf 'added_key: Zq7-added-by-editor\\n' >> \"$1\"");
    const dir = join(tempDir(), 'My Editor');
    mkdirSync(dir);
    const spaced = join(dir, 'ed.sh');
    writeFileSync(spaced, readFileSync(ed.cmd));
    chmodSync(spaced, 0o755);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: spaced });
    expect(r.code).toBe(2); // the variable to fix: a usage error;
    expect(r.err).toContain('its path holds a space');
    const fix = /hint: quote the path inside the variable: EDITOR='(.*)'/.exec(r.err)![1]!;
    expect(fix).toBe(`"${spaced}"`);
    const again = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: fix });
    expect(again.err).toBe('');
    expect(again.code).toBe(0);
    expect(readFileSync(ed.record, 'utf8')).toMatch(/secrets/);
  });
});
