// The CLI entry point: `main(argv)` runs one command and returns its exit code. scripts/ops-bin.js (the `ops`
// binary, `npm run ops -- <command>`) loads it from a cached bundle; commands live in scripts/commands/.
import { onUncaught } from '../core/errors.ts';
import { runCli } from './cli.ts';
import { allCommands } from './commands/index.ts';

/** Run the command in `argv` (without node and the script); resolves to the exit code (0, 1, or 2 for usage). */
export async function main(argv: string[]): Promise<number> {
  // An error nobody awaited (a socket error between two steps) still ends as one message, not a stack trace.
  onUncaught((message) => process.stderr.write(`error: ${message}\n`));
  return runCli(allCommands, { argv });
}
