// The `ops` CLI run in process, its output captured: how tests check exit codes, messages and --json output
// exactly as a user sees them, without spawning node; and, for signals, the binary as a process of its own.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { runCli, type Command, type RunIo } from '../../scripts/cli.ts';
import { allCommands } from '../../scripts/commands/index.ts';

export interface CliResult {
  code: number;
  out: string;
  err: string;
  /** stdout's bytes as written (a binary value from ops secrets show --key is no text). */
  outBytes?: Buffer;
}

function collect(): { stream: PassThrough; text: () => string; bytes: () => Buffer } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer | string) => chunks.push(Buffer.from(c)));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8'), bytes: () => Buffer.concat(chunks) };
}

/** `ops <argv>` with `root` as the project, only the environment variables given, and `input` on stdin. */
export async function runOps(argv: string[], io: Pick<RunIo, 'root' | 'processEnv' | 'connector'> & { input?: string | Uint8Array; commands?: Command[] }): Promise<CliResult> {
  const out = collect();
  const err = collect();
  const code = await runCli(io.commands ?? allCommands, { argv, root: io.root, processEnv: io.processEnv ?? {}, stdin: Readable.from([io.input ?? '']), stdout: out.stream, stderr: err.stream, connector: io.connector });
  return { code, out: out.text(), err: err.text(), outBytes: out.bytes() };
}

export interface SpawnedOps {
  child: ChildProcess;
  /** Everything it printed so far (stdout and stderr, interleaved as they came). */
  out: () => string;
  /** Send `signal` and wait for the exit code. */
  stop: (signal: NodeJS.Signals) => Promise<number | null>;
}

/**
 * The installed `ops` binary (scripts/ops-bin.js) as a separate process, as a user or a workflow runs it (signals
 * reach it as they would), with `root` as the project; resolves once its output satisfies `until` (e.g. a step
 * began), rejects naming `what` and the output when `timeoutMs` pass first.
 */
export async function spawnOps(argv: string[], root: string, until: (out: string) => boolean, what: string, timeoutMs: number): Promise<SpawnedOps> {
  const child = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'scripts', 'ops-bin.js'), ...argv], {
    env: { ...process.env, OPS_ROOT: root, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} never happened:\n${out}`)), timeoutMs);
    const watch = (d: Buffer) => {
      out += d;
      if (until(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', watch);
    child.stderr!.on('data', watch);
    // `until` may hold before any output (a test that watches the host rather than what ops prints).
    watch(Buffer.alloc(0));
  });
  return {
    child,
    out: () => out,
    stop: (signal) => {
      child.kill(signal);
      return exited;
    },
  };
}
