// `npm run ops -- <command>`: the CLI entry point. Commands live in scripts/commands/.
import { onUncaught } from '../core/errors.ts';
import { runCli } from './cli.ts';
import { allCommands } from './commands/index.ts';

// An error nobody awaited (a socket error between two steps) still ends as one message, not a stack trace.
onUncaught((message) => process.stderr.write(`error: ${message}\n`));

process.exitCode = await runCli(allCommands, { argv: process.argv.slice(2) });
