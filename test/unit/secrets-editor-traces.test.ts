// `ops secrets edit` in vim with a vimrc many people have (backups, undo files and swap files kept in one place under
// ~/.vim, away from the edited file's folder): vim wrote the decrypted file whole to ~/.vim/backup, the changes typed
// to ~/.vim/undo, and, the terminal closed mid-edit, a swap file to ~/.vim/swap, all left there in clear after ops
// removed its own copy. Now vim (vi, when it is vim) runs with none of these (-n, -i NONE, and after the vimrc: no
// backup, no undo file). The real vim, on a terminal (test/support/on_terminal.py).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
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
