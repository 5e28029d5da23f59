// Atomic file replacement: write a temporary file next to the target, fsync it, rename it over the
// target, fsync the directory. A crash at any point leaves either the old file or the new one, whole.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
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
 * for about 15 s (past that staleness). `shown`: the path in messages (as typed, when under the current directory).
 * @throws ChangedOnDiskError, OpsError when the lock stays taken, or the write's error.
 */
export async function writeIfUnchanged(file: string, content: string | Buffer, expected: string | null, shown = shownPath(file)): Promise<void> {
  let release: () => Promise<void>;
  try {
    // Waited for longer than a dead holder's lock takes to be stale (10 s): a rerun right after a crash gets it.
    release = await lock(file, { realpath: false, retries: { retries: 60, minTimeout: 25, maxTimeout: 250 } });
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
        `${shown} ${expected === null ? 'was created' : now === null ? 'was removed' : 'was changed'} by something else since this command read it (another ops secrets command, a git checkout or pull?): it was not written`,
        'run the command again: it reads the file as it is now',
      );
    await writeFileAtomic(file, content);
  } finally {
    await release().catch(() => undefined);
  }
}

/** A path for messages: relative to the directory the command runs in when inside it (as the user typed it), else as it is. */
export function shownPath(file: string): string {
  const r = relative(process.cwd(), file);
  return r && !r.startsWith('..') && !isAbsolute(r) ? r : file;
}

/** How long retryOnChange keeps going, in milliseconds. */
const RETRY_FOR_MS = 30_000;

/**
 * Run `attempt` (a whole read-change-write of one file, ending in writeIfUnchanged) again each time it meets
 * ChangedOnDiskError, after a random pause growing to 0.5 s (commands started together then spread out), for up to
 * 30 s: the change is made on what the file is when written, never over another's. `what` names the change for the
 * error. @throws ChangedOnDiskError when the file kept changing for 30 s (nothing written), or `attempt`'s error.
 */
export async function retryOnChange<T>(what: string, attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + RETRY_FOR_MS;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (e) {
      if (!(e instanceof ChangedOnDiskError)) throw e;
      if (Date.now() > deadline)
        throw new ChangedOnDiskError(`${what}: the file kept changing for ${RETRY_FOR_MS / 1000} s (${n} attempts; ${e.message})`, 'run it again once the other commands writing it have ended');
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(500, 50 * n)));
    }
  }
}
