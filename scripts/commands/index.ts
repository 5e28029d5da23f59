// Every CLI command, in the order `ops --help` lists them. Each command file imports its implementation (core/ops,
// core/secrets, core/staging) inside `run` (`await import`): a start evaluates only the command it runs, and the
// launcher's V8 code cache for that command holds only its code (scripts/ops-bin.js).
import type { Command } from '../cli.ts';
import { commands as day2 } from './day2.ts';
import { commands as deploy } from './deploy.ts';
import { commands as environments } from './environments.ts';
import { commands as hosts } from './hosts.ts';
import { commands as secrets } from './secrets.ts';
import { commands as staging } from './staging.ts';

export const allCommands: Command[] = [...hosts, ...deploy, ...day2, ...environments, ...staging, ...secrets];
