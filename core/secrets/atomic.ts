// Atomic file replacement: write a temporary file next to the target, fsync it, rename it over the
// target, fsync the directory. A crash at any point leaves either the old file or the new one, whole.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { lock } from 'proper-lockfile';
import { OpsError } from '../errors.ts';

/**
 * Write `content` to `file` whole: a temporary file beside it, then rename(2), keeping the file's mode (or
 * `mode`). A crash or a full disk leaves the old file, never a truncated one. @throws the write's error.
 */
export async function writeFileAtomic(file: string, content: string | Buffer, mode?: number): Promise<void> {
  const dir = dirname(file);
  const keep = mode ?? (await stat(file).then((s) => s.mode & 0o777, () => 0o644));
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', keep);
  try {
    try {
      await fh.chmod(keep); // the mode given to open() is reduced by the umask
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  try {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // some filesystems cannot fsync a directory; the rename itself is still atomic
  }
}

/** A file changed on disk between the moment it was read and the write meant to replace it (writeIfUnchanged). */
export class ChangedOnDiskError extends OpsError {}

/**
 * Replace `file` with `content` (writeFileAtomic) only if it still holds `expected` (its text as read; null: it did
 * not exist), checked and written under a lock on the file, so two commands changing it at once never both win:
 * the one that read a version another has since replaced gets ChangedOnDiskError, having written nothing (a
 * read-modify-write without it silently dropped the other's change). The lock is proper-lockfile's (an
 * `<file>.lock` directory beside it, mkdir being atomic; seen as stale after 10 s, its holder having died), waited
 * for a few seconds. @throws ChangedOnDiskError, OpsError when the lock stays taken, or the write's error.
 */
export async function writeIfUnchanged(file: string, content: string | Buffer, expected: string | null, shown = file): Promise<void> {
  let release: () => Promise<void>;
  try {
    release = await lock(file, { realpath: false, retries: { retries: 40, minTimeout: 25, maxTimeout: 250 } });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
    throw new OpsError(`${shown} is being written by another command (its lock ${shown}.lock is held)`, `wait for it to end and run again; a lock left by a command that died is ignored after 10 s`);
  }
  try {
    const now = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw e;
    });
    // Compared as decoded text: decodeUtf8 (what the file was read with) drops a byte order mark.
    const bare = (t: string | null) => t?.replace(/^\uFEFF/, '') ?? null;
    if (bare(now) !== bare(expected))
      throw new ChangedOnDiskError(
        `${shown} ${expected === null ? 'was created' : now === null ? 'was removed' : 'was changed'} by something else since this command read it (another ops secrets command, a git checkout or pull?): nothing was written`,
        'run the command again: it reads the file as it is now',
      );
    await writeFileAtomic(file, content);
  } finally {
    await release().catch(() => undefined);
  }
}
