// The secrets file's lock (core/secrets/atomic.ts takeLock) when proper-lockfile meets another command's takeover of
// a stale lock: the lock it has just made is gone when it looks at it (ENOENT). Taken again, not said as a missing
// directory (several sets meeting a lock left over failed so, now and then, on a busy machine).
import { mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { takeLock, writeIfUnchanged } from '../../core/secrets/atomic.ts';
import { tempDir } from './secrets.helpers.ts';

const vanishing = vi.hoisted(() => ({ times: 0 }));
vi.mock('proper-lockfile', async (importOriginal) => {
  const real = await importOriginal<typeof import('proper-lockfile')>();
  return {
    ...real,
    lock: async (...args: Parameters<typeof real.lock>) => {
      if (vanishing.times > 0) {
        vanishing.times--;
        throw Object.assign(new Error(`ENOENT: no such file or directory, stat '${String(args[0])}.lock'`), { code: 'ENOENT' });
      }
      return real.lock(...args);
    },
  };
});

describe('the lock made and removed at once by another command', () => {
  it('is taken again: the write lands', async () => {
    const dir = tempDir('ops-lock-race-');
    const file = join(dir, 's.sops.yaml');
    writeFileSync(file, 'old\n');
    vanishing.times = 2;
    await writeIfUnchanged(file, 'new\n', 'old\n', 's.sops.yaml', 0o600, () => undefined);
    expect(readFileSync(file, 'utf8')).toBe('new\n');
  });

  it('a directory that is really missing is still said so', async () => {
    const dir = tempDir('ops-lock-race-');
    mkdirSync(join(dir, 'there'));
    vanishing.times = 1;
    const err = await writeIfUnchanged(join(dir, 'gone', 's.sops.yaml'), 'new\n', null, 'gone/s.sops.yaml', 0o600, () => undefined).catch((e: Error) => e);
    expect((err as Error).message).toContain('its directory');
    expect((err as Error).message).toContain('does not exist');
  });
});

describe('a held lock another command took over (two takers of one stale lock)', () => {
  it('is recorded as lost, not thrown from proper-lockfile\'s refresh timer (which killed the command)', async () => {
    const dir = tempDir('ops-lock-race-');
    const file = join(dir, 's.sops.yaml');
    writeFileSync(file, 'old\n');
    const held = await takeLock(file, 's.sops.yaml', () => undefined);
    expect(held.lost()).toBeUndefined();
    // what the other taker does: removes the lock it took for stale, makes its own (another mtime)
    rmSync(`${file}.lock`, { recursive: true });
    mkdirSync(`${file}.lock`);
    utimesSync(`${file}.lock`, new Date(Date.now() + 60_000), new Date(Date.now() + 60_000));
    // proper-lockfile refreshes a held lock every stale/2 (5 s) and finds it not its own then (up to 15 s: a busy machine)
    for (let i = 0; i < 150 && !held.lost(); i++) await new Promise((r) => setTimeout(r, 100));
    expect(held.lost()).toBeInstanceOf(Error);
    await held().catch(() => undefined);
  }, 30_000);
});

describe('a stale lock met by several commands at once', () => {
  it('is taken over by one at a time: no two ever hold it together (a lost update); a guard left by a dead taker does not block', async () => {
    vanishing.times = 0;
    for (let round = 0; round < 5; round++) {
      const dir = tempDir('ops-lock-stale-');
      const file = join(dir, 's.sops.yaml');
      writeFileSync(file, 'old\n');
      mkdirSync(`${file}.lock`);
      const old = new Date(Date.now() - 60_000);
      utimesSync(`${file}.lock`, old, old);
      if (round === 4) {
        // a takeover guard left by a command that died while taking over (older than its few milliseconds)
        mkdirSync(`${file}.lock.takeover`);
        utimesSync(`${file}.lock.takeover`, old, old);
      }
      let inside = 0;
      let most = 0;
      const notes: string[] = [];
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          const held = await takeLock(file, 's.sops.yaml', (m) => notes.push(m));
          inside++;
          most = Math.max(most, inside);
          await new Promise((r) => setTimeout(r, 30));
          inside--;
          await held();
        }),
      );
      expect(most).toBe(1);
      // said once, by the one that took it over
      expect(notes.filter((n) => n.includes('was left over'))).toHaveLength(1);
    }
  }, 60_000);
});
