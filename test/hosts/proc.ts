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

/**
 * Run `fn` holding the lab-wide lock `name`: an atomic mkdir under the run dir, with the holder's pid inside.
 * A lock whose holder died (crash, kill -9) is taken over; two processes never both hold it.
 */
export async function withLock<T>(name: string, fn: () => Promise<T>, timeoutMs = 15 * 60_000): Promise<T> {
  const dir = join(paths.run, 'locks', `${name}.lock`);
  mkdirSync(dirname(dir), { recursive: true });
  const me = recordOf(process.pid)!;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(dir);
      writePidFile(join(dir, 'owner'), me);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = readPidFile(join(dir, 'owner'));
    if (!owner) {
      // Just created by someone else, owner file not written yet; or left empty by a crash. Give it a moment.
      await sleep(200);
      if (!readPidFile(join(dir, 'owner')) && existsSync(dir)) breakLock(dir, undefined);
      continue;
    }
    if (!isAlive(owner)) {
      breakLock(dir, owner);
      continue;
    }
    if (Date.now() > deadline) {
      throw new OpsError(`lock "${name}" is held by pid ${owner.pid} for too long`, `if that process is stuck, stop it (kill ${owner.pid})`);
    }
    await sleep(200);
  }
  try {
    return await fn();
  } finally {
    rmSync(dir, { recursive: true, force: true });
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
