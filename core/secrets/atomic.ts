// Atomic file replacement: write a temporary file next to the target, fsync it, rename it over the
// target, fsync the directory. A crash at any point leaves either the old file or the new one, whole.
import { randomBytes } from 'node:crypto';
import { open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

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
