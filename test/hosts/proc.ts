// Process plumbing for the lab: run a command and fail clearly, start daemons detached, remember them
// by PID *and* start time (a stale pid file never makes us kill an unrelated process), stop them,
// and a cross-process lock (atomic mkdir) that survives a crashed holder.
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { OpsError, tail } from '../../core/errors.ts';
import { cmd } from '../../core/shell.ts';
import { paths } from './paths.ts';

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface RunOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  /** Return the result instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
  /** Text for the error message instead of the command line (e.g. when arguments hold a secret). */
  what?: string;
  hint?: string;
}

/** Run a program (no shell), collect its output; throw an OpsError with the end of stderr when it fails. */
export function run(program: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const what = options.what ?? cmd(program, ...args);
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = options.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, options.timeoutMs)
      : undefined;
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => {}); // a program that exits without reading its input is not our error
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        e.code === 'ENOENT'
          ? new OpsError(`${program}: command not found`, options.hint ?? 'run `npm run hosts -- check` to see what is missing')
          : e,
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = { stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code: code ?? 128 };
      if (result.code === 0 || options.allowFailure) return resolve(result);
      const how = timedOut ? `timed out after ${options.timeoutMs} ms` : signal ? `was killed by ${signal}` : `failed with exit code ${code}`;
      const detail = tail(result.stderr.trim() || result.stdout.trim(), 15);
      reject(new OpsError(`${what} ${how}${detail ? `\n${detail}` : ''}`, options.hint));
    });
    if (options.input !== undefined) child.stdin.end(options.input);
    else child.stdin.end();
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `check` until it returns a value (not undefined/false) or the deadline passes. */
export async function waitFor<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, intervalMs = 100): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) return undefined;
    await sleep(intervalMs);
  }
}

// ---- processes remembered by pid + start time --------------------------------------------------

export interface ProcessRecord {
  pid: number;
  /** Field 22 of /proc/PID/stat: start time in clock ticks since boot. Tells a reused PID apart. */
  start: string;
}

function readStat(pid: number): { state: string; start: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces and parentheses: fields are counted after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, start: fields[19]! };
  } catch {
    return undefined;
  }
}

export function recordOf(pid: number): ProcessRecord | undefined {
  const stat = readStat(pid);
  return stat ? { pid, start: stat.start } : undefined;
}

/** True while the recorded process runs (a zombie counts as gone, a reused PID as someone else). */
export function isAlive(record: ProcessRecord | undefined): boolean {
  if (!record) return false;
  const stat = readStat(record.pid);
  return !!stat && stat.start === record.start && stat.state !== 'Z' && stat.state !== 'X';
}

export function writePidFile(file: string, record: ProcessRecord): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${record.pid} ${record.start}\n`);
}

export function readPidFile(file: string): ProcessRecord | undefined {
  try {
    const [pid, start] = readFileSync(file, 'utf8').trim().split(/\s+/);
    const n = Number(pid);
    return Number.isInteger(n) && n > 1 && start ? { pid: n, start } : undefined;
  } catch {
    return undefined;
  }
}

/** The process a pid file names, if it still runs; a stale file is removed. */
export function livePid(file: string): ProcessRecord | undefined {
  const record = readPidFile(file);
  if (isAlive(record)) return record;
  if (existsSync(file)) rmSync(file, { force: true });
  return undefined;
}

/** Signal the recorded process, wait up to `graceMs` for it to end, then SIGKILL it. Never touches a reused PID. */
export async function stopProcess(record: ProcessRecord | undefined, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  if (!isAlive(record)) return;
  try {
    process.kill(record!.pid, signal);
  } catch {
    return;
  }
  if (await waitFor(() => !isAlive(record), graceMs)) return;
  try {
    process.kill(record!.pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitFor(() => !isAlive(record), 10_000);
}

/**
 * Start a long-lived process detached from us (own session, output to a log file) and return its record.
 * It outlives this Node process on purpose: services are shared by test runs and the sandbox.
 */
export function spawnDaemon(program: string, args: string[], log: string, options: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number; cwd?: string } = {}): ProcessRecord {
  mkdirSync(dirname(log), { recursive: true });
  const fd = openSync(log, 'a');
  try {
    const child = spawn(program, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: options.env ?? process.env,
      uid: options.uid,
      gid: options.gid,
      cwd: options.cwd,
    });
    child.on('error', () => {}); // reported by the caller's readiness check, with the log
    child.unref();
    if (!child.pid) throw new OpsError(`could not start ${program}`, `see ${log}`);
    const record = recordOf(child.pid);
    if (!record) throw new OpsError(`${program} exited at once`, `see ${log}`);
    return record;
  } finally {
    closeSync(fd);
  }
}

export function logTail(log: string, lines = 15): string {
  try {
    return tail(readFileSync(log, 'utf8'), lines);
  } catch {
    return '';
  }
}

// ---- cross-process lock -------------------------------------------------------------------------

export interface LabLockOptions {
  /** What the holder does with it, recorded in the lock and shown to whoever waits ("building the bookworm root filesystem"). */
  purpose?: string;
  /** Where a waiter says what it waits for (default: stderr, "[lab] ..."). */
  log?: (line: string) => void;
  /** Give up waiting for a live holder after this long (default 30 min), naming it. */
  timeoutMs?: number;
}

interface LockOwner extends ProcessRecord {
  purpose: string;
  since: string;
  command: string;
}

function readOwner(file: string): LockOwner | undefined {
  const record = readPidFile(file);
  if (!record) return undefined;
  try {
    const [, ...rest] = readFileSync(file, 'utf8').split('\n');
    const fields = Object.fromEntries(rest.filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    return { ...record, purpose: fields.purpose ?? '', since: fields.since ?? '', command: fields.command ?? '' };
  } catch {
    return { ...record, purpose: '', since: '', command: '' };
  }
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ').slice(0, 200);
  } catch {
    return '';
  }
}

const describeOwner = (o: LockOwner) => `pid ${o.pid}${o.command ? ` (${o.command})` : ''}${o.purpose ? `, ${o.purpose}` : ''}${o.since ? `, since ${o.since}` : ''}`;

/** Who holds the lab lock `name` now (a live process), or undefined when nobody does. */
export function lockHolder(name: string): ProcessRecord | undefined {
  const owner = readPidFile(join(paths.run, 'locks', `${name}.lock`, 'owner'));
  return isAlive(owner) ? owner : undefined;
}

/**
 * The lab's one cross-process lock (rootfs and snapshot builds, services, hosts, bench): run `fn` holding
 * `name`, an atomic mkdir under the run dir. The holder is recorded (pid + start time, so a reused pid is
 * never taken for it, its command line, what it does, since when); a waiter says what it waits for, then
 * every 30 s; a lock whose holder died (crash, kill -9, a cancelled CI job) is taken over at once. Two
 * processes never both hold it.
 */
export async function withLock<T>(name: string, fn: () => Promise<T>, options: LabLockOptions = {}): Promise<T> {
  const dir = join(paths.run, 'locks', `${name}.lock`);
  const ownerFile = join(dir, 'owner');
  mkdirSync(dirname(dir), { recursive: true });
  const me = recordOf(process.pid)!;
  const log = options.log ?? ((line: string) => process.stderr.write(`[lab] ${line}\n`));
  const timeoutMs = options.timeoutMs ?? 30 * 60_000;
  const started = Date.now();
  let lastSaid = 0;
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(ownerFile, `${me.pid} ${me.start}\npurpose=${options.purpose ?? name}\nsince=${new Date().toISOString()}\ncommand=${commandOf(process.pid)}\n`);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = readOwner(ownerFile);
    if (!owner) {
      // Just created by someone else, owner file not written yet; or left empty by a crash. Give it a moment.
      await sleep(200);
      if (!readPidFile(ownerFile) && existsSync(dir)) {
        log(`lock "${name}" has no owner (left by a crash): taking it over`);
        breakLock(dir, undefined);
      }
      continue;
    }
    if (!isAlive(owner)) {
      log(`lock "${name}" was held by ${describeOwner(owner)}, which is gone: taking it over`);
      breakLock(dir, owner);
      continue;
    }
    if (Date.now() - started > timeoutMs) {
      throw new OpsError(`gave up waiting ${Math.round(timeoutMs / 60_000)} min for lock "${name}", held by ${describeOwner(owner)}`, `if that process is stuck, stop it (kill ${owner.pid}); its lock is then taken over`);
    }
    if (Date.now() - lastSaid >= 30_000) {
      lastSaid = Date.now();
      // Two tasks of one process (the sandbox starts the caches, the database and pebble at once): the holder is
      // this process itself, which its pid and command line alone would not tell the reader.
      const self = owner.pid === me.pid && owner.start === me.start;
      log(`waiting for lock "${name}", held by ${self ? `another task of this same process (pid ${owner.pid}${owner.purpose ? `, ${owner.purpose}` : ''}${owner.since ? `, since ${owner.since}` : ''})` : describeOwner(owner)}`);
    }
    await sleep(200);
  }
  try {
    return await fn();
  } finally {
    // Only our own: a lock broken by mistake and re-taken by someone else stays theirs.
    const owner = readPidFile(ownerFile);
    if (owner && owner.pid === me.pid && owner.start === me.start) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Remove a dead holder's lock. Rename first, so of two processes breaking it at once only one succeeds;
 * if what we renamed turns out to be a fresh lock of a live process (it was re-taken in between), put it back.
 */
function breakLock(dir: string, dead: ProcessRecord | undefined): void {
  const trash = `${dir}.stale-${process.pid}-${Date.now()}`;
  try {
    renameSync(dir, trash);
  } catch {
    return; // someone else broke it first
  }
  const owner = readPidFile(join(trash, 'owner'));
  if (owner && isAlive(owner) && (!dead || owner.pid !== dead.pid || owner.start !== dead.start)) {
    try {
      renameSync(trash, dir);
      return;
    } catch {
      /* fall through: the lock was re-taken meanwhile, ours is stale anyway */
    }
  }
  rmSync(trash, { recursive: true, force: true });
}
