// `ops secrets edit` killed outright (kill -9, the OOM killer: no clean-up runs) while the editor is open: its
// decrypted copy stayed in /tmp/ops-secrets-* on the disk, for good. Now the copy is in memory where the machine has it
// (/dev/shm), in a 0700 directory recording its owner, and the next edit removes it once its owner is gone; never the
// copy of an edit still open, nor one it cannot tell the owner of. Real processes, the real ops binary.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { COPY_PREFIX, makeCopyDir } from '../../core/secrets/edit-copy.ts';
import { type Env, cli, editor, newEnv, tempDir } from './secrets.helpers.ts';

const OPS = fileURLToPath(new URL('../../scripts/ops-bin.js', import.meta.url));

/** `ops secrets edit qa` as a process, its editor recording its file then sleeping: resolves once the editor is open. */
async function editing(e: Env): Promise<{ copy: string; kill: (signal: NodeJS.Signals) => Promise<void> }> {
  const ed = editor('echo editing >&2; exec sleep 30');
  const child = spawn(process.execPath, [OPS, 'secrets', 'edit', 'qa'], { cwd: e.root, env: { PATH: process.env.PATH, HOME: e.root, OPS_ROOT: e.root, ...e.env, EDITOR: ed.cmd }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let err = '';
  await new Promise<void>((resolve) => child.stderr.on('data', (c) => (err += String(c)).includes('editing') && resolve()));
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  return {
    copy: readFileSync(ed.record, 'utf8').split(' ')[0] ?? '',
    // ops, then its editor (its own process group: a kill -9 of ops alone leaves the editor running, as it would)
    kill: async (signal) => {
      child.kill(signal);
      await exited;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone with it
      }
    },
  };
}

describe('ops secrets edit killed outright with the editor open', () => {
  it('its copy was in memory (/dev/shm), 0700; the next edit removes it, saying so; a copy of an edit still open is left', async () => {
    const e = await newEnv();
    const killed = await editing(e);
    const dir = join(killed.copy, '..');
    expect(dir.startsWith(`/dev/shm/${COPY_PREFIX}`), killed.copy).toBe(true);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(killed.copy).mode & 0o777).toBe(0o600);
    // Another edit opened meanwhile (its owner alive: left as it is), before the kill -9 (it would remove that copy).
    const open = await editing(e);
    await killed.kill('SIGKILL');
    expect(existsSync(killed.copy), 'no clean-up ran').toBe(true);
    try {
      const next = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: 'true' });
      expect(next.code, next.err).toBe(0);
      expect(next.err).toContain(`removed ${dir}: the decrypted copy of an earlier ops secrets edit that was killed before it could remove it`);
      expect(existsSync(dir)).toBe(false);
      expect(existsSync(open.copy), 'the copy of an edit still open').toBe(true);
      expect(next.err).not.toContain(join(open.copy, '..'));
    } finally {
      await open.kill('SIGTERM');
    }
    expect(existsSync(open.copy)).toBe(false);
  }, 60_000);

  it('a directory named so that records no owner (whose it is cannot be told), or a link, is left as it is', async () => {
    const memory = tempDir('ops-copy-places-');
    const disk = tempDir('ops-copy-disk-');
    const unknown = mkdtempSync(join(memory, COPY_PREFIX));
    writeFileSync(join(unknown, 'secrets.yaml'), 'a: 1\n');
    const other = mkdtempSync(join(memory, COPY_PREFIX));
    writeFileSync(join(other, 'owner'), 'pid=999999999\nstart=1\nboot=x\nhost=another-machine\n');
    // A link to a directory whose owner is gone (this test's own pid, at another boot): followed, it would be removed.
    const target = mkdtempSync(join(disk, 'target-'));
    writeFileSync(join(target, 'owner'), `pid=${process.pid}\nstart=1\nboot=an-earlier-boot\nhost=${hostname()}\n`);
    const link = join(memory, `${COPY_PREFIX}link00`);
    symlinkSync(target, link);
    const notes: string[] = [];
    const made = await makeCopyDir((m) => notes.push(m), { memory, disk });
    expect(existsSync(join(target, 'owner'))).toBe(true);
    expect(existsSync(unknown)).toBe(true);
    expect(existsSync(other)).toBe(true);
    expect(notes.some((n) => n.startsWith('removed'))).toBe(false);
    rmSync(made, { recursive: true });
  });

  it('where the place in memory is no memory file system (or missing): the copy goes to the temporary directory, saying so', async () => {
    const notMemory = tempDir('ops-copy-places-');
    const disk = tempDir('ops-copy-disk-');
    for (const memory of [notMemory, join(notMemory, 'missing')]) {
      const notes: string[] = [];
      const made = await makeCopyDir((m) => notes.push(m), { memory, disk });
      expect(made.startsWith(join(disk, COPY_PREFIX))).toBe(true);
      expect(statSync(made).mode & 0o777).toBe(0o700);
      expect(notes).toEqual([`the decrypted copy for your editor is on disk, in ${made} (${memory} is no memory file system here): it is removed when the edit ends; if ops is killed outright (kill -9), the next ops secrets edit removes it`]);
      rmSync(made, { recursive: true });
    }
  });
});
