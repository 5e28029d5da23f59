// Atomic file replacement: write a temporary file next to the target, fsync it, rename it over the
// target, fsync the directory. A crash at any point leaves either the old file or the new one, whole.
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readFile, readlink, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { lock } from 'proper-lockfile';
import { OpsError } from '../errors.ts';
import { quote } from '../shell.ts';

/** How many symbolic links a path may go through before it is taken for a loop (Linux's own limit). */
const MAX_LINKS = 40;

/**
 * The file a write to `file` must replace: `file` itself, or, when it is a symbolic link (a team's secrets kept in
 * a shared folder), the file it points to, through any chain of links (a link to a file not there yet gives that
 * file's path). Renaming over the link itself would put a regular file in its place, cutting the share.
 * `shown` names it in messages. @throws OpsError for a loop of links.
 */
export async function writeTarget(file: string, shown = shownPath(file)): Promise<string> {
  let path = file;
  for (let n = 0; n <= MAX_LINKS; n++) {
    let link: string;
    try {
      if (!(await lstat(path)).isSymbolicLink()) return path;
      link = await readlink(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return path;
      if ((e as NodeJS.ErrnoException).code === 'ELOOP') break; // a directory of the path loops
      throw e;
    }
    path = resolve(dirname(path), link);
  }
  throw new OpsError(`cannot write ${shown}: it is a symbolic link that leads to itself (a loop of links, or more than ${MAX_LINKS} in a row); nothing was written`, `point ${shown} at the real file (ls -l ${shown} shows where it points), or replace it with the file itself`);
}

/**
 * A write refused by the system as an OpsError saying which path and what to do: a read-only filesystem (EROFS),
 * a directory or file without write permission (EACCES, EPERM), a directory that does not exist (ENOENT, ENOTDIR:
 * a link into a share not mounted), no space left (ENOSPC, EDQUOT); else `err` as it is.
 * `target`: the file written (through a link: the file it points to), `shown` as named to the user.
 */
export function writeError(err: unknown, target: string, shown: string): unknown {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const via = target === shown || resolve(shown) === target ? '' : ` (through the link ${shown})`;
  const dir = dirname(target);
  if (code === 'EROFS') return new OpsError(`cannot write ${target}${via}: ${dir} is on a read-only filesystem; nothing was written`, `run the command where the project is on a writable filesystem (or remount it read-write)`);
  if (code === 'EACCES' || code === 'EPERM')
    return new OpsError(`cannot write ${target}${via}: permission denied (the file is written by creating a temporary file in ${dir} and renaming it over the old one, so the directory must be writable); nothing was written`, `make ${dir} writable for your user (ls -ld ${dir}; e.g. chmod u+w ${dir}), or run as its owner`);
  if (code === 'ENOENT' || code === 'ENOTDIR')
    return new OpsError(`cannot write ${target}${via}: its directory ${dir} does not exist${via ? ' (the link points into a folder that is not there: a share not mounted?)' : ''}; nothing was written`, via ? `make ${dir} available (mount the share), or point ${shown} at the right file` : `create ${dir} first`);
  if (code === 'ENOSPC' || code === 'EDQUOT') return new OpsError(`cannot write ${target}${via}: no space left on its filesystem (${code}); nothing was written`, `free some space in ${dir} and run again`);
  return err;
}

/**
 * Write `content` to `file` whole: a temporary file beside it, then rename(2), keeping the file's mode (or
 * `mode`). A crash or a full disk leaves the old file, never a truncated one. A symbolic link is written through
 * to the file it points to (writeTarget), and stays a link.
 * @throws OpsError for a loop of links, a read-only filesystem or directory, a full disk (writeError); else the write's error.
 */
export async function writeFileAtomic(file: string, content: string | Buffer, mode?: number): Promise<void> {
  const target = await writeTarget(file);
  try {
    await replaceFile(target, content, mode);
  } catch (e) {
    throw writeError(e, target, shownPath(file));
  }
}

/** Replace `file` (temporary file + rename), with `mode`, else the file's own, else (a new file) `newMode`. */
async function replaceFile(file: string, content: string | Buffer, mode?: number, newMode = 0o644): Promise<void> {
  const dir = dirname(file);
  const keep = mode ?? (await stat(file).then((s) => s.mode & 0o777, () => newMode));
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

/**
 * A command stopped by the user (Ctrl-C, or a signal) at a point where nothing was written: `message` says where and
 * that nothing was changed; `signal` the signal (SIGINT for Ctrl-C), for the exit code (130 for SIGINT).
 */
export class InterruptedError extends OpsError {
  constructor(
    message: string,
    readonly signal: string = 'SIGINT',
  ) {
    super(message);
  }
}

/**
 * The InterruptedError for `signal` (an AbortSignal's reason: the signal's name; SIGINT when none) stopping a command
 * `where` it was (e.g. "while waiting for the lock x.lock"): "interrupted[ by SIGTERM][ where]; nothing was changed".
 */
export function interruption(signal: unknown, where?: string): InterruptedError {
  const sig = typeof signal === 'string' && signal ? signal : 'SIGINT';
  return new InterruptedError(`interrupted${sig === 'SIGINT' ? '' : ` by ${sig}`}${where ? ` ${where}` : ''}; nothing was changed`, sig);
}

/** A file changed on disk between the moment it was read and the write meant to replace it (writeIfUnchanged). */
export class ChangedOnDiskError extends OpsError {}

/** A lock not refreshed for this long is stale, its holder having died (a held one is refreshed every LOCK_REFRESH_MS). */
const LOCK_STALE_MS = 10_000;
/** How often proper-lockfile refreshes (touches) a lock this command holds. */
const LOCK_REFRESH_MS = 5_000;
/**
 * proper-lockfile's own `stale`, beyond any wait: it never takes a lock over itself. Its takeover (stat the lock, find
 * it stale, remove it, mkdir) races: two commands that both saw the old lock stale can each remove what the other
 * has just made, and both hold the lock (a lost update). takeOver does it one command at a time instead.
 */
const NEVER_STALE_MS = 24 * 3600_000;
/** A takeover guard (takeOver) older than this was left by a command that died within its milliseconds of work. */
const TAKEOVER_STALE_MS = 5_000;

/**
 * Remove the stale lock `lockDir` (last refreshed `age` ms ago, past LOCK_STALE_MS), one command at a time: under a
 * guard directory `<lockDir>.takeover` (mkdir is atomic: the one command that made it goes on), the lock is stat'ed
 * again and removed only if it is still the stale one (same inode and mtime), so a lock another command has just
 * taken (fresh) is never removed. @returns whether this command removed it (the caller then takes the lock as a free one).
 */
async function takeOver(lockDir: string, seen: { ino: number; mtimeMs: number }): Promise<boolean> {
  const guard = `${lockDir}.takeover`;
  try {
    await mkdir(guard);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    // Another command is taking it over; one that died doing so left its guard: removed once old, then tried again.
    const age = await stat(guard).then((st) => Date.now() - st.mtimeMs, () => 0);
    if (age > TAKEOVER_STALE_MS) await rm(guard, { recursive: true, force: true });
    return false;
  }
  try {
    const now = await stat(lockDir).catch(() => undefined);
    if (!now || now.ino !== seen.ino || now.mtimeMs !== seen.mtimeMs) return false; // released, or taken afresh
    await rm(lockDir, { recursive: true, force: true });
    return true;
  } finally {
    await rm(guard, { recursive: true, force: true });
  }
}
/** How long a held lock is waited for: past its staleness, so a rerun right after a crash gets it. */
const LOCK_WAIT_MS = 15_000;
/** How long a lock is waited for before saying so: commands writing at once hold it for milliseconds each, unsaid. */
const LOCK_QUIET_MS = 1_000;

/**
 * Take the lock on `target`: proper-lockfile's `<target>.lock` directory (mkdir is atomic; refreshed every 5 s
 * while held; one not refreshed for 10 s is stale, its holder having died, and taken over). Waited for up to 15 s;
 * `notify` is told, once a second has passed, what is waited for (the lock's path, when it was last refreshed) and
 * how to clear it, and told when a lock left over (stale) is taken over. `shown`: the file as named in messages.
 * `signal` (the command's Ctrl-C) ends the wait, and a lock not taken yet is then not taken at all: nothing written.
 * @returns the release. @throws OpsError when the lock stays held; writeError's for a directory where it cannot be made;
 * InterruptedError once `signal` aborts (its reason: the signal's name) before the lock is taken.
 */
export async function takeLock(target: string, shown: string, notify: (message: string) => void, signal?: AbortSignal): Promise<HeldLock> {
  const lockDir = `${target}.lock`;
  const lockShown = `${shown}.lock`;
  const started = performance.now();
  const clear = `if no ops command is writing ${shown} any more (it crashed, or runs on another machine), remove the lock: rm -r ${quote(lockShown)}`;
  let told = false;
  const interrupted = (waiting: boolean) => interruption(signal!.reason, waiting ? `while waiting for the lock ${lockShown}` : `before writing ${shown}`);
  for (;;) {
    if (signal?.aborted) throw interrupted(false); // later rounds: checked after each pause
    const seen = await stat(lockDir).catch(() => undefined);
    const before = seen && Date.now() - seen.mtimeMs;
    // Left over by a command that died: removed by one command (takeOver), then taken as a free lock by whoever comes first.
    if (seen && before! > LOCK_STALE_MS && (await takeOver(lockDir, seen))) notify(`${lockShown} was left over (not refreshed for ${Math.round(before! / 1000)} s: its command died): taken over`);
    try {
      // A lock taken from this one all the same (removed by hand, or by an older ops's takeover) is found on its
      // refresh; proper-lockfile's default onCompromised throws from a timer and kills the command: recorded instead
      // (HeldLock.lost), and the write is not made.
      let lost: Error | undefined;
      const unlock = await lock(target, { realpath: false, stale: NEVER_STALE_MS, update: LOCK_REFRESH_MS, onCompromised: (e) => void (lost = e) });
      const release: HeldLock = Object.assign(() => unlock(), { lost: () => lost });
      if (signal?.aborted) {
        await release().catch(() => undefined); // interrupted while it was being taken: nothing written all the same
        throw interrupted(false);
      }
      return release;
    } catch (e) {
      if (e instanceof InterruptedError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      // A lock made and removed at once by another command taking over a stale one (proper-lockfile's stat of the lock
      // it has just made finds it gone): taken again, as a held one is, not said as a missing directory.
      const vanished = code === 'ENOENT' && (await stat(dirname(target)).then((st) => st.isDirectory(), () => false));
      // the lock is a directory made beside the file: a read-only directory refuses it first
      if (code !== 'ELOCKED' && !vanished) throw writeError(e, target, shown);
    }
    const waited = performance.now() - started;
    if (waited > LOCK_WAIT_MS) throw new OpsError(`${shown} is being written by another command: its lock ${lockShown} is held; nothing was written`, `wait for it to end and run again; ${clear}`);
    if (!told && waited > LOCK_QUIET_MS) {
      told = true;
      const age = before === undefined ? '' : ` (last refreshed ${Math.round(before / 1000)} s ago; a lock not refreshed for ${LOCK_STALE_MS / 1000} s is taken over)`;
      notify(`waiting up to ${LOCK_WAIT_MS / 1000} s for the lock ${lockShown}${age}: another command is writing ${shown}; ${clear}`);
    }
    // spread: commands waiting together do not all retry at once; an abort ends the pause at once
    await new Promise<void>((r) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        r();
      };
      const timer = setTimeout(done, 25 + Math.random() * 75);
      signal?.addEventListener('abort', done, { once: true });
    });
    if (signal?.aborted) throw interrupted(true);
  }
}

/** A lock takeLock took: called, it is released (rejects when it was lost); `lost()` says whether another command took it over meanwhile (its error). */
export type HeldLock = (() => Promise<void>) & { lost(): Error | undefined };

/** The default for writeIfUnchanged's `notify`: a warning on stderr. */
const warnOnStderr = (m: string) => {
  process.stderr.write(`warning: ${m}\n`);
};

/**
 * Replace `file` with `content` (writeFileAtomic) only if it still holds `expected` (its text as read; null: it did
 * not exist), checked and written under a lock on the file, so two commands changing it at once never both win:
 * the one that read a version another has since replaced gets ChangedOnDiskError, having written nothing (a
 * read-modify-write without it silently dropped the other's change). The lock is proper-lockfile's `<file>.lock`
 * (takeLock: a directory beside it; one not refreshed for 10 s, its holder having died, is taken over), waited for
 * about 15 s, `notify` told after a second what is waited for (default: stderr).
 * `shown`: the path in messages (as typed, when under the current directory).
 * The file keeps its mode; one not there yet is created with `newMode` (default 0644; 0600 for secrets: SecretsFile),
 * its temporary file too, so that its content is never readable by others, not even for a moment.
 * `signal` (the command's Ctrl-C) ends the wait for the lock: nothing written (takeLock).
 * @throws ChangedOnDiskError, OpsError when the lock stays taken, InterruptedError, or the write's error.
 */
export async function writeIfUnchanged(file: string, content: string | Buffer, expected: string | null, shown = shownPath(file), newMode = 0o644, notify: (message: string) => void = warnOnStderr, signal?: AbortSignal): Promise<void> {
  // a link is written through, and the lock taken on the file it points to: two links to one file share its lock
  const target = await writeTarget(file, shown);
  const release = await takeLock(target, shown, notify, signal);
  try {
    const now = await readFile(target, 'utf8').catch((e: NodeJS.ErrnoException) => {
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
    // A lock another command took over is no lock: written by the next round (retryOnChange), reading the file again.
    if (release.lost()) throw new ChangedOnDiskError(`${shown}'s lock was taken over by another command while this one held it: it was not written`, 'run the command again: it reads the file as it is now');
    try {
      await replaceFile(target, content, undefined, newMode);
    } catch (e) {
      throw writeError(e, target, shown);
    }
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
  const deadline = performance.now() + RETRY_FOR_MS;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (e) {
      if (!(e instanceof ChangedOnDiskError)) throw e;
      if (performance.now() > deadline)
        throw new ChangedOnDiskError(`${what}: the file kept changing for ${RETRY_FOR_MS / 1000} s (${n} attempts; ${e.message})`, 'run it again once the other commands writing it have ended');
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(500, 50 * n)));
    }
  }
}
