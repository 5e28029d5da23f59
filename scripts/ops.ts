// `npm run ops -- <command>`: the CLI entry point. Commands live in scripts/commands/.
import { runCli } from './cli.ts';
import { allCommands } from './commands/index.ts';

process.exitCode = await runCli(allCommands, { argv: process.argv.slice(2) });
