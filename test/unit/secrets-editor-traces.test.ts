// `ops secrets edit` in vim with a vimrc many people have (backups, undo files and swap files kept in one place under
// ~/.vim, away from the edited file's folder): vim wrote the decrypted file whole to ~/.vim/backup, the changes typed
// to ~/.vim/undo, and, the terminal closed mid-edit, a swap file to ~/.vim/swap, all left there in clear after ops
// removed its own copy. Now vim (vi, when it is vim) runs with none of these (-n, -i NONE, and after the vimrc: no
// backup, no undo file). The real vim, on a terminal (test/support/on_terminal.py).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { privateEditorArgs } from '../../scripts/commands/secrets.ts';
import { newEnv, onTerminal, tempDir } from './secrets.helpers.ts';

/** A home whose ~/.vimrc keeps vim's backup, undo and swap files under ~/.vim; those folders. */
function vimHome(): { home: string; dirs: string[] } {
  const home = tempDir('ops-vim-home-');
  const dirs = ['backup', 'undo', 'swap'].map((d) => join(home, '.vim', d));
  for (const d of dirs) mkdirSync(d, { recursive: true });
  writeFileSync(join(home, '.vimrc'), 'set backup\nset backupdir=~/.vim/backup//\nset undofile\nset undodir=~/.vim/undo//\nset directory=~/.vim/swap//\n');
  return { home, dirs };
}

const left = (dirs: string[]) => dirs.flatMap((d) => readdirSync(d).map((f) => join(d, f)));

describe.runIf((() => {
  try {
    execFileSync('vim', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})())('ops secrets edit in vim, with a vimrc keeping backups, undo files and swap files under ~/.vim', () => {
  it('saved: nothing of the decrypted text is left there (vim, and vi when it is vim)', async () => {
    for (const editor of ['vim', 'vi']) {
      const e = await newEnv('qa');
      const secret = execFileSync('sops', ['decrypt', '--extract', '["secret_key"]', e.secrets], { env: { PATH: process.env.PATH, SOPS_AGE_KEY_FILE: e.keyFile }, encoding: 'utf8' });
      const { home, dirs } = vimHome();
      const t = await onTerminal(e, 'node "$OPS" secrets edit qa', [['config_repo_api_key', 'Gonewsecret: Zq8-typed-in-vim\x1b:wq\r'], ['added newsecret', '']], { HOME: home, EDITOR: editor });
      expect(t.exit, t.out).toBe(0);
      expect(left(dirs), editor).toEqual([]);
      // and nowhere else in that home
      const found = spawnSync('grep', ['-rlF', '-e', secret.trim(), '-e', 'Zq8-typed-in-vim', home], { encoding: 'utf8' });
      expect(found.status, editor).toBe(1); // grep: nothing found
      expect(found.stdout).toBe('');
    }
  });

  it('the terminal closed while it is open: no swap file left either, nothing changed', async () => {
    const e = await newEnv('qa');
    const before = readFileSync(e.secrets, 'utf8');
    const { home, dirs } = vimHome();
    // ops ends on the hang-up (its own test: secrets-interrupt); what matters here is what stays on disk
    await onTerminal(e, 'node "$OPS" secrets edit qa', [['config_repo_api_key', 'Gonewsecret: Zq8-typed-in-vim\x1b'], ['Zq8-typed-in-vim', { hangup: true }]], { HOME: home, EDITOR: 'vim' }).catch(() => undefined);
    for (let i = 0; i < 50 && left(dirs).length; i++) await new Promise((r) => setTimeout(r, 100));
    expect(left(dirs)).toEqual([]);
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  });
});

// nano with a nanorc keeping backups (`set backup`, `set backupdir`: the decrypted file whole, at each save) and the
// strings searched for (`set historylog`), and emacs with its backup files (file~) and auto-saves (#file#): the same
// fault as vim's. nano is run with -I (nano(1): no nanorc read; its command line can only turn settings on), emacs
// with make-backup-files and auto-save-default nil before the file is visited.
describe('the arguments that keep an editor from copying the decrypted file (privateEditorArgs)', () => {
  /** A PATH folder holding, under each name, a link to an executable file named as its target (as /etc/alternatives does). */
  function linked(links: Record<string, string>): string {
    const dir = tempDir('ops-editor-path-');
    for (const [name, target] of Object.entries(links)) {
      const real = join(dir, 'real', target);
      mkdirSync(join(dir, 'real'), { recursive: true });
      writeFileSync(real, '#!/bin/sh\n', { mode: 0o755 });
      symlinkSync(real, join(dir, name));
    }
    return dir;
  }
  const nanoArgs = ['-I'];
  const emacsArgs = ['--eval', '(setq make-backup-files nil auto-save-default nil)'];
  const vimArgs = ['-n', '-i', 'NONE', '-c', 'set nobackup nowritebackup noundofile noswapfile'];

  it('nano, rnano, and pico or editor when they are nano: -I; emacs, emacs-nox, emacs-gtk and editor when it is emacs: no backup, no auto-save', () => {
    const PATH = linked({ nano: 'nano', rnano: 'rnano', pico: 'nano', editor: 'nano', emacs: 'emacs-gtk', 'emacs-nox': 'emacs-nox', vi: 'vim.basic', mg: 'mg' });
    for (const command of ['nano', 'rnano', 'pico', 'editor', 'env LANG=C nano', `${PATH}/nano`, 'nano -l']) expect(privateEditorArgs(command, { PATH }), command).toEqual(nanoArgs);
    for (const command of ['emacs', 'emacs -nw', 'emacs-nox', 'TERM=xterm emacs']) expect(privateEditorArgs(command, { PATH }), command).toEqual(emacsArgs);
    expect(privateEditorArgs('vi', { PATH })).toEqual(vimArgs);
    const emacsEditor = linked({ editor: 'emacs-nox', pico: 'pico' });
    expect(privateEditorArgs('editor', { PATH: emacsEditor })).toEqual(emacsArgs);
    // another program under one of those names (alpine's pico), or one ops knows nothing of: none
    expect(privateEditorArgs('pico', { PATH: emacsEditor })).toEqual([]);
    for (const command of ['mg', 'code --wait', 'emacsclient -t']) expect(privateEditorArgs(command, { PATH }), command).toEqual([]);
  });
});

describe.runIf(spawnSync('nano', ['--version'], { stdio: 'ignore' }).status === 0)('ops secrets edit in nano, with a nanorc keeping backups and search history under ~', () => {
  it('saved: nothing of the decrypted text is left in that home (the real nano, on a terminal)', async () => {
    const e = await newEnv('qa');
    const secret = execFileSync('sops', ['decrypt', '--extract', '["secret_key"]', e.secrets], { env: { PATH: process.env.PATH, SOPS_AGE_KEY_FILE: e.keyFile }, encoding: 'utf8' });
    const home = tempDir('ops-nano-home-');
    mkdirSync(join(home, 'nano-backups'));
    // as $XDG_CONFIG_HOME/nano/nanorc, which nano reads before ~/.nanorc (nanorc(5)): run as root, nano takes ~ from
    // the password file, not $HOME
    mkdirSync(join(home, '.config', 'nano'), { recursive: true });
    writeFileSync(join(home, '.config', 'nano', 'nanorc'), `set backup\nset backupdir "${join(home, 'nano-backups')}"\nset historylog\n`);
    // a line typed at the top, a search for it (the history), saved (^O, Enter), and out (^X)
    const t = await onTerminal(e, 'node "$OPS" secrets edit qa', [['config_repo_api_key', 'newsecret: Zq8-typed-in-nano\r\x17Zq8-typed\r\x0f\r\x18'], ['added newsecret', '']], { HOME: home, XDG_CONFIG_HOME: join(home, '.config'), XDG_DATA_HOME: join(home, '.local', 'share'), EDITOR: 'nano' });
    expect(t.exit, t.out).toBe(0);
    const found = spawnSync('grep', ['-rlF', '-e', secret.trim(), '-e', 'Zq8-typed', home], { encoding: 'utf8' });
    expect(found.stdout).toBe('');
    expect(found.status).toBe(1); // grep: nothing found
    expect(readdirSync(join(home, 'nano-backups'))).toEqual([]);
  });
});
