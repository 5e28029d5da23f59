// The secrets commands as a process of their own (signal tests): node --import tsx test/unit/secrets-cli.entry.ts <argv>
import { runCli } from '../../scripts/cli.ts';
import { commands as environmentCommands } from '../../scripts/commands/environments.ts';
import { commands as secretCommands } from '../../scripts/commands/secrets.ts';

const commands = [...secretCommands, ...environmentCommands];

process.exitCode = await runCli(commands, { argv: process.argv.slice(2) });
