// Where `ops secrets edit` puts the decrypted copy for the user's editor: in memory when the machine has a memory file
// system for it (Linux's /dev/shm), so that a kill -9 or a power cut leaves no plaintext on a disk; else in the
// temporary directory, saying so. Each copy's directory records its owner (process, start time, boot, machine): one
// left by an edit killed outright is removed by the next edit, never one whose owner may still be editing, nor
// another user's.
import { lstat, mkdtemp, readdir, readFile, rm, statfs, writeFile, access } from 'node:fs/promises';
import { constants } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';

/** A copy's directory name: this prefix and mkdtemp's six characters. */
export const COPY_PREFIX = 'ops-secrets-edit-';
/** The file in a copy's directory naming its owner: `pid=`, `start=`, `boot=`, `host=` lines. */
const OWNER = 'owner';
/** statfs(2) f_type of the memory file systems (linux/magic.h): tmpfs, ramfs. */
const MEMORY_FS = new Set([0x01021994, 0x858458f6]);

/** Where the copy is made: `memory` (a memory file system, tried first), else `disk`. Tests give their own. */
export interface CopyPlaces {
  memory: string;
  disk: string;
}

const DEFAULT_PLACES: CopyPlaces = { memory: '/dev/shm', disk: tmpdir() };

/** Whether `dir` is a directory on a memory file system that this user may write to. */
async function inMemory(dir: string): Promise<boolean> {
  try {
    await access(dir, constants.W_OK | constants.X_OK);
    return MEMORY_FS.has((await statfs(dir)).type);
  } catch {
    return false;
  }
}

/** This boot's id (Linux), '' where there is none. */
async function bootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
}

/** Process `pid`'s start time (clock ticks since boot, proc(5) stat field 22), '' where /proc has none. */
async function startOf(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // After the command name, which may hold spaces and parentheses: its last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
}

/** The owner lines of this process. */
async function ownerRecord(): Promise<string> {
  return `pid=${process.pid}\nstart=${await startOf(process.pid)}\nboot=${await bootId()}\nhost=${hostname()}\n`;
}

/**
 * Whether the owner `record` names is certainly gone: a process of this machine (same host name) that no longer runs,
 * whose pid now names another process (another start time), or of an earlier boot. False whenever it cannot be told
 * (no record, another machine's: a shared temporary directory), so that a copy still being edited is never removed.
 */
async function ownerGone(record: string): Promise<boolean> {
  const f = Object.fromEntries(record.split('\n').flatMap((l) => (l.includes('=') ? [[l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]] : [])));
  const pid = Number(f.pid);
  if (!Number.isInteger(pid) || pid <= 0 || f.host !== hostname()) return false;
  const boot = await bootId();
  if (f.boot && boot && f.boot !== boot) return true;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
  const start = await startOf(pid);
  return Boolean(f.start && start && f.start !== start);
}

/**
 * Removes the copies in `places` left by edits killed outright (SIGKILL, a crash: no clean-up ran): directories named
 * COPY_PREFIX…, of this user, not links, whose owner record says their owner is gone (ownerGone). @returns the
 * directories removed. Never throws: what cannot be read or removed is left.
 */
export async function removeLeftCopies(places: CopyPlaces = DEFAULT_PLACES): Promise<string[]> {
  const removed: string[] = [];
  const uid = process.getuid?.();
  for (const place of new Set([places.memory, places.disk])) {
    const names = await readdir(place).catch(() => [] as string[]);
    for (const name of names) {
      if (!name.startsWith(COPY_PREFIX)) continue;
      const dir = join(place, name);
      const st = await lstat(dir).catch(() => undefined);
      if (!st?.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
      const record = await readFile(join(dir, OWNER), 'utf8').catch(() => '');
      if (!(await ownerGone(record))) continue;
      await rm(dir, { recursive: true, force: true }).then(
        () => removed.push(dir),
        () => undefined,
      );
    }
  }
  return removed;
}

/**
 * A new private directory (0700, mkdtemp) for the decrypted copy, recording its owner: in `places.memory` when that is
 * a memory file system this user may write to, else in `places.disk`, and `note` says so (the copy is on a disk while
 * the editor is open; a kill -9 leaves it there until the next edit). Copies of earlier edits killed outright are
 * removed first (removeLeftCopies), each named to `note`. Throws what mkdtemp throws (no temporary directory).
 */
export async function makeCopyDir(note: (message: string) => void, places: CopyPlaces = DEFAULT_PLACES): Promise<string> {
  for (const dir of await removeLeftCopies(places)) note(`removed ${dir}: the decrypted copy of an earlier ops secrets edit that was killed before it could remove it`);
  const memory = await inMemory(places.memory);
  const dir = await mkdtemp(join(memory ? places.memory : places.disk, COPY_PREFIX));
  await writeFile(join(dir, OWNER), await ownerRecord(), { mode: 0o600 });
  if (!memory)
    note(
      `the decrypted copy for your editor is on disk, in ${dir} (${places.memory} is no memory file system here): it is removed when the edit ends; if ops is killed outright (kill -9), the next ops secrets edit removes it`,
    );
  return dir;
}
