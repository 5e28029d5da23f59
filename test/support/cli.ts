// The `ops` CLI run in process, its output captured: how tests check exit codes, messages and --json output
// exactly as a user sees them, without spawning node.
import { PassThrough, Readable } from 'node:stream';
import { runCli, type Command, type RunIo } from '../../scripts/cli.ts';
import { allCommands } from '../../scripts/commands/index.ts';

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (c) => (text += String(c)));
  return { stream, text: () => text };
}

/** `ops <argv>` with `root` as the project, only the environment variables given, and `input` on stdin. */
export async function runOps(argv: string[], io: Pick<RunIo, 'root' | 'processEnv' | 'connector'> & { input?: string; commands?: Command[] }): Promise<CliResult> {
  const out = collect();
  const err = collect();
  const code = await runCli(io.commands ?? allCommands, { argv, root: io.root, processEnv: io.processEnv ?? {}, stdin: Readable.from([io.input ?? '']), stdout: out.stream, stderr: err.stream, connector: io.connector });
  return { code, out: out.text(), err: err.text() };
}
