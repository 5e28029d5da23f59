// The CLI entry point: `main(argv)` runs one command and returns its exit code. scripts/ops-bin.js (the `ops`
// binary, `npm run ops -- <command>`) loads it from a cached bundle; commands live in scripts/commands/.
import { join } from 'node:path';
import { cacheParsedYaml } from '../core/config/environment.ts';
import { onUncaught } from '../core/errors.ts';
import { guardOutput } from '../core/report.ts';
import { guardHungUpTerminals } from '../core/signals.ts';
import { runCli } from './cli.ts';
import { allCommands } from './commands/index.ts';

/**
 * Run the command in `argv` (without node and the script); resolves to the exit code (scripts/cli.ts EXIT_CODES: 0 done, 1 failed or refused, 2 usage).
 * `cacheDir`: the launcher's cache directory (scripts/ops-bin.js), where parsed environment files are kept too.
 */
export async function main(argv: string[], options: { cacheDir?: string } = {}): Promise<number> {
  // An error nobody awaited (a socket error between two steps) still ends as one message, not a stack trace.
  onUncaught((message) => process.stderr.write(`error: ${message}\n`));
  // Its own output failing (a reader gone, a full disk) never ends a run half-way.
  guardOutput();
  // Its terminal closed (SIGHUP) ends it with 129, not with Node's abort at exit.
  guardHungUpTerminals();
  cacheParsedYaml(options.cacheDir && join(options.cacheDir, 'parsed'));
  return runCli(allCommands, { argv });
}
