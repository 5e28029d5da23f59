// The `ops` command-line framework: each file in scripts/commands exports `commands`, this file parses
// argv, prints help, and turns errors into messages for people (exit 1, or 2 for a usage error: EXIT_CODES) instead of stack traces.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { parseArgs } from 'node:util';
import { InputError, OpsError, cutLongWords, errorFields, failedResult, formatError, inputFailure, maskUncaught, showControls } from '../core/errors.ts';
import { homeDir } from '../core/home.ts';
import { quote, validate, wholeNumber, wholeNumberRange } from '../core/shell.ts';
import { RUN_SIGNALS, runHandlesSignals, signalExit } from '../core/signals.ts';
import { ConsoleReporter, outputClosed, type Reporter, type ValueFormat } from '../core/report.ts';
import { hideSecrets } from '../core/secrets/parts.ts';
import { findRoot, listEnvironments, projectRoot, userPath } from '../core/config/environment.ts';
import { didYouMean } from '../core/config/schema-object.ts';
import type { Connector, OpsContext } from '../core/context.ts';
import opsPackage from '../package.json' with { type: 'json' };

/** A command-line option: a string (repeatable with `multiple`), a flag, or a whole number (checked by wholeNumber). */
export type OptionSpec =
  | { type: 'string'; short?: string; multiple?: boolean; description: string; /** A file or directory: a relative one is resolved here against the directory the command was run from (see invocationDir). */ path?: boolean; /** Shown in help as the value's name ("--ref REF"). */ value?: string; /** The only values taken (anything else: a usage error). */ choices?: readonly string[]; /** What an empty value lacks, for its usage error ("a release id"; default: "a value"). */ what?: string; /** The hint of that error (default: give a value or leave the option out); `{env}` in it is the environment given (a command whose first argument is `<env>`). */ emptyHint?: string; /** false: no value starts with "-" (a git ref, a release id), so a word starting with "-" after the option is never explained as `--opt=-VALUE` (a number's and a choice's never do either: dashFree). */ dashes?: false }
  | { type: 'boolean'; short?: string; description: string }
  | { type: 'number'; short?: string; description: string; value?: string; min?: number; max?: number };

export type Options = Record<string, OptionSpec>;

/** The parsed value of one option: string (string[] when repeatable), boolean, or number; undefined when not given. */
type ValueOf<S extends OptionSpec> = S extends { type: 'boolean' } ? boolean : S extends { type: 'number' } ? number : S extends { multiple: true } ? string[] : string;

/** Parsed options, typed by the command's own option specs (plus the global ones). */
export type OptionValues<O extends Options> = { [K in keyof O]?: ValueOf<O[K]> } & { help?: boolean; identity?: string };

export interface CommandContext<O extends Options = Options> {
  /** Positional arguments after the command name. */
  args: string[];
  /** Parsed options. */
  values: OptionValues<O>;
  reporter: Reporter;
  /** Project root (holds environments/); for a command with `project: 'optional'` run outside any project, the directory it was run from. */
  root: string;
  /** Whether `root` is a project (false only for a `project: 'optional'` command run outside one). */
  inProject: boolean;
  /** The directory the command was run from (see invocationDir); path arguments are already resolved against it. */
  cwd: string;
  processEnv: NodeJS.ProcessEnv;
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** The context core operations take (connections use --identity, the process env, this reporter). */
  ops: OpsContext;
}

export interface Command<O extends Options = Options> {
  /** One or two words: "ping", "secrets show". */
  name: string;
  summary: string;
  /** Positional arguments: "<env>" required, "[program]" optional, "<file...>" one or more. */
  args?: string[];
  /** Which positional arguments (indexes) are files or directories: resolved like `path` options. */
  pathArgs?: readonly number[];
  options?: O;
  /** Longer help text shown by `ops <command> --help`. */
  help?: string;
  /**
   * 'optional': the command runs in any directory (making a key, decrypting a file it is given); inside a project it
   * still knows it. Default: it needs a project, found from the current directory or $OPS_ROOT.
   */
  project?: 'optional';
  /**
   * The option one word more than the arguments most often meant (`ops deploy qa v1`: --ref v1, as `git checkout v1`
   * or `cap deploy` take it): named in the usage error, with the command line meant.
   */
  extraArg?: string;
  /** true: the command logs in to the environment's hosts, so it takes --identity (the SSH key); the others refuse it (globalOptions). */
  hosts?: true;
  run(ctx: CommandContext<O>): Promise<number>;
}

/** A command with its option values typed from its own options (`values.lines` is a number when `lines` is one). */
export function command<const O extends Options = Record<never, OptionSpec>>(c: Command<O>): Command {
  return c as unknown as Command;
}

/**
 * Print a command's result: with --json, the result as JSON on stdout (for scripts); else `human(result)` on
 * stdout, or through the reporter as the job's summary (`summary`: Markdown) or a message (`info`); `human` writes values
 * from outside with the reporter's ValueFormat (escaped in a job summary, as they are on a terminal). Everything
 * goes through the reporter's redaction: a value registered as secret never reaches the output; human text also
 * through showControls (a commit subject's or a log line's escape sequences shown, not acted on).
 */
export async function printResult<T>(ctx: CommandContext, result: T, human: (r: T, v: ValueFormat) => string, via: 'stdout' | 'summary' | 'info' = 'stdout'): Promise<void> {
  const { reporter, stdout } = ctx;
  if (ctx.values.json) stdout.write(reporter.redact(JSON.stringify(result, null, 2)) + '\n');
  else if (via === 'summary') await reporter.summary(human(result, reporter.values));
  else if (via === 'info') reporter.info(human(result, reporter.values));
  else stdout.write(showControls(reporter.redact(human(result, reporter.values))) + '\n');
}

/** The `--json` option every command that prints a result has. */
export const JSON_OPTION = { type: 'boolean', description: 'print JSON for scripts' } as const;

/**
 * The exit status of every command, one scheme (README "CLI": "Exit status"), as git, systemctl and kamal keep one:
 * - 0 `ok`: done; what was asked now holds, also when it held already and nothing was to do (a deploy of the live
 *   commit, a rollback `--to` the live release, as `systemctl start` of a running unit: `noop` in --json tells them
 *   apart); a read-only command that found nothing wrong.
 * - 1 `failed`: tried and failed, or refused by the state of the world (a host, the lock, the releases kept, the
 *   repository, a key that does not open the secrets); a read-only command that found a problem (`ops status`).
 *   Running it again may succeed once the world changed.
 * - 2 `usage`: the command line or the project's files are wrong (a UsageError, any InputError: an unknown command
 *   or option, a value of the wrong form, an environment that does not exist, an environment.yml that does not
 *   validate); nothing was tried, and running it again as it is fails the same way.
 * - 128 + n: stopped by signal n (130 SIGINT, 143 SIGTERM, 129 SIGHUP: core/signals.ts signalExit).
 */
export const EXIT_CODES = { ok: 0, failed: 1, usage: 2 } as const;

/** A command line ops cannot run as typed (exit 2, as every InputError: see EXIT_CODES). */
export class UsageError extends InputError {}

/**
 * The exit code of a command that failed with `err`: the one place an error's class gives its code (EXIT_CODES): usage
 * for an InputError (a UsageError, a configuration that does not validate, a placeholder address, a path given that
 * does not exist...), failed for anything else.
 */
export function exitCodeOf(err: unknown): (typeof EXIT_CODES)['failed' | 'usage'] {
  return err instanceof InputError ? EXIT_CODES.usage : EXIT_CODES.failed;
}

/**
 * The exit code of a per-host report (`ops ping`, `status`, `certs`, `releases`, `audit`, `lock status`, `diff`), which
 * shows every host instead of throwing for one: as exitCodeOf would give for the worst host's error, usage when a
 * host's failure was an InputError (inputFailure: a placeholder address, a key file given that does not exist, the
 * same code a command that stops at that host exits with), else failed when the report found a `problem`, else ok.
 */
export function reportExitCode(hosts: object[], problem: boolean): number {
  if (hosts.some(inputFailure)) return EXIT_CODES.usage;
  return problem ? EXIT_CODES.failed : EXIT_CODES.ok;
}

const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  help: { type: 'boolean', short: 'h', description: 'show help' },
  identity: { type: 'string', short: 'i', value: 'FILE', path: true, description: 'SSH private key to log in with' },
};

/** The options every command takes besides its own: --help, and --identity for a command that logs in to hosts. */
function globalOptions(c: Command | undefined): Record<string, OptionSpec> {
  return c && !c.hosts ? { help: GLOBAL_OPTIONS.help! } : GLOBAL_OPTIONS;
}

/**
 * `--identity`/`-i` given to a command that logs in to no host (`ops secrets show qa -i key.txt`, as age's and ssh's
 * `-i` read): refused, not ignored, saying what it is; a command that decrypts an environment's secrets names how the
 * age key is given instead, with the file typed (`SOPS_AGE_KEY_FILE=key.txt ops secrets show qa`). Undefined when
 * the command takes it or it was not given (only words before `--` are options).
 */
export function identityRefused(c: Command, args: string[]): UsageError | undefined {
  if (c.hosts) return undefined;
  const words = args.includes('--') ? args.slice(0, args.indexOf('--')) : args;
  const at = words.findIndex((w) => w === '--identity' || w.startsWith('--identity=') || w.startsWith('-i'));
  if (at < 0) return undefined;
  const w = words[at]!;
  // its value: glued on (`-ikey`, `--identity=key`), or the next word
  const glued = w.startsWith('--') ? (w.includes('=') ? w.slice(w.indexOf('=') + 1) : undefined) : w.slice(2).replace(/^=/, '') || undefined;
  const value = glued ?? words[at + 1];
  const rest = [...words.slice(0, at), ...words.slice(at + (glued !== undefined || value === undefined ? 1 : 2)), ...args.slice(words.length)];
  const line = `ops ${[...c.name.split(' '), ...rest].map(quote).join(' ')}`;
  const secrets = c.name.startsWith('secrets ') || c.name === 'config';
  return new UsageError(
    `--identity (-i) is the SSH key ops logs in to hosts with; "ops ${c.name}" logs in to none`,
    secrets ? `the age key that decrypts the secrets goes in $SOPS_AGE_KEY_FILE (or the key itself in $SOPS_AGE_KEY): SOPS_AGE_KEY_FILE=${quote(value ?? 'FILE')} ${line}` : `leave it out: ${line}`,
  );
}

/**
 * The project root for a command that does not need one: projectRoot's, or undefined where no project is found from
 * the current directory. A mistyped $OPS_ROOT is still refused (it was given on purpose).
 */
function optionalProjectRoot(value: string | undefined, cwd: string, home?: string): string | undefined {
  if (value) return projectRoot(value, cwd, home);
  try {
    return findRoot();
  } catch (e) {
    if (e instanceof OpsError) return undefined;
    throw e;
  }
}

function usageLine(c: Command): string {
  const opts = Object.entries(c.options ?? {}).map(([k, o]) => (o.type === 'boolean' ? `[--${k}]` : `[--${k} ${o.value ?? 'VALUE'}]`));
  return ['ops', c.name, ...(c.args ?? []), ...opts].join(' ');
}

function optionLines(options: Record<string, OptionSpec>): string[] {
  return Object.entries(options).map(([k, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${k}${o.type !== 'boolean' ? ` ${o.value ?? 'VALUE'}` : ''}`;
    return `  ${flag.padEnd(28)} ${o.description}`;
  });
}

export function commandHelp(c: Command): string {
  return [
    `usage: ${usageLine(c)}`,
    '',
    c.summary,
    ...(c.help ? ['', c.help.trim()] : []),
    '',
    'options:',
    ...optionLines({ ...(c.options ?? {}), ...globalOptions(c) }),
  ].join('\n');
}

export function mainHelp(commands: Command[]): string {
  // Aligned in a column of at most 34 characters; a longer usage gets its summary on the next line.
  const usage = (c: Command) => `${c.name} ${(c.args ?? []).join(' ')}`.trim();
  const width = Math.min(34, Math.max(...commands.map((c) => usage(c).length)) + 2);
  const line = (c: Command) => (usage(c).length < width ? `  ${usage(c).padEnd(width)}${c.summary}` : `  ${usage(c)}\n  ${''.padEnd(width)}${c.summary}`);
  return [
    'ops: provision, deploy and operate the environments in environments/ (the same code as the GitHub Actions)',
    '',
    'usage: ops <command> [arguments] [options]      (from the project: npm run ops -- <command> ...)',
    '',
    'commands:',
    ...commands.map(line),
    '',
    'Run `ops help <command>` (or `ops <command> --help`) for a command\'s options; `ops --version` for the version.',
  ].join('\n');
}

/**
 * `environments`: the project's environments, if one is found (named when `<env>` is missing). `typed`: the words after
 * the command as given and `given` the options parsed from them (a word more than the arguments is said as the
 * command's extraArg when that option was not given).
 */
function checkArgs(c: Command, args: string[], environments: () => string[], processEnv: NodeJS.ProcessEnv, typed: string[] = [], given: Record<string, unknown> = {}): void {
  const spec = c.args ?? [];
  const required = spec.filter((a) => a.startsWith('<')).length;
  const variadic = spec.some((a) => a.endsWith('...>') || a.endsWith('...]'));
  // an empty word is a variable that was not set (`ops deploy "$ENV"`), as for options (typedValues)
  const empty = args.indexOf('');
  if (empty >= 0) {
    const which = spec[Math.min(empty, spec.length - 1)];
    throw new UsageError(`${which ?? 'an argument'} of "ops ${c.name}" is empty`, `give one${which?.startsWith('[') ? ' or leave it out' : ''} (an unset variable, as in "$ENV"?); usage: ${usageLine(c)}`);
  }
  if (args.length < required) {
    const known = spec[args.length] === '<env>' ? environments() : [];
    throw new UsageError(`missing argument ${spec[args.length]} for "ops ${c.name}"`, `usage: ${usageLine(c)}${known.length ? `; the environments: ${known.join(', ')}` : ''}`);
  }
  if (!variadic && args.length > spec.length) {
    // An SSH public key typed unquoted (`add ssh-ed25519 AAAA… ana@laptop`): its words are public; one argument
    const sshAt = args.findIndex((a) => /^ssh-(ed25519|rsa)$/.test(a));
    if (c.name === 'secrets recipients' && sshAt >= 0 && /^AAAA[0-9A-Za-z+/=]+$/.test(args[sshAt + 1] ?? ''))
      throw new UsageError(`"ops ${c.name}": the SSH public key was given as ${args.length - sshAt} arguments (${args[sshAt]} ${args[sshAt + 1]!.slice(0, 16)}…)`, `put it in quotes, as one argument: ops ${c.name} ${args.slice(0, sshAt).join(' ')} '${args[sshAt]} AAAA…'; usage: ${usageLine(c)}`);
    // A secrets command's extra argument is most often the value typed on the command line: never shown.
    if (c.name.startsWith('secrets '))
      throw new UsageError(`unexpected argument (argument ${spec.length + 1}) for "ops ${c.name}": not shown, as it may be a secret value`, `values are read from stdin, never from arguments (which shell history and ps keep): printf '%s' 'the value' | ops ${c.name} ...; usage: ${usageLine(c)}`);
    // under npm run, a value most often stays behind when npm takes the option before it (`--host x`, `-n 5`)
    const npm = npmReading(processEnv);
    const npmNote = npm ? `; under ${npm.typed.replace(/ ops$/, '')}, an option before \`--\` is npm's and its value is left as an argument: ${npm.fixed} ${c.name} ...` : '';
    const extra = args[spec.length]!;
    // one word more, where the command has an option for it not given (`ops deploy qa v1`): that option, in the line meant
    if (c.extraArg && args.length === spec.length + 1 && given[c.extraArg] === undefined && !extra.startsWith('-') && typed.includes(extra)) {
      // the environment typed last (`ops deploy v1 qa`): it goes first, the other word is the option's
      const known = spec[0] === '<env>' ? environments() : [];
      const swapped = known.includes(extra) && !known.includes(args[0]!);
      const [value, env] = swapped ? [args[0]!, extra] : [extra, args[0]!];
      const words = typed.filter((w, i) => i !== typed.lastIndexOf(extra) && !(swapped && i === typed.indexOf(value)));
      const line = ['ops', c.name, ...[env, ...words.filter((w, i) => !(i === words.indexOf(env))), `--${c.extraArg}`, value].map(quote)].join(' ');
      throw new UsageError(`unexpected argument "${extra}" for "ops ${c.name}" (did you mean ${swapped ? `ops ${c.name} ${quote(env)} ` : ''}--${c.extraArg} ${quote(value)}?)`, `${line}${npmNote}`);
    }
    throw new UsageError(`unexpected argument "${extra}" for "ops ${c.name}"`, `usage: ${usageLine(c)}${npmNote}`);
  }
}

/**
 * Option values as the command's specs say: numbers parsed (one parser for every number: wholeNumber; a wrong one's
 * hint gives the range it takes, and the usage).
 */
function typedValues(specs: Options, raw: Record<string, string | boolean | string[] | undefined>, c: Command, env?: string): OptionValues<Options> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    const spec = specs[k];
    if (spec?.type === 'number' && typeof v === 'string') {
      try {
        out[k] = wholeNumber(v, `--${k}`, spec);
      } catch (e) {
        const { min, max } = wholeNumberRange(spec);
        throw new UsageError((e as OpsError).message, `give digits only, from ${min} to ${max}, or leave --${k} out for its default; usage: ${usageLine(c)}`);
      }
    } else if (spec?.type === 'string' && (Array.isArray(v) ? v : [v]).includes('')) {
      // An empty value is a variable that was not set (--ref "$TAG"), not "the default": refused for every option.
      throw new UsageError(`--${k} needs ${spec.what ?? 'a value'}, got an empty one`, spec.emptyHint?.replaceAll('{env}', env === undefined ? '<env>' : quote(env)) ?? `give one, or leave --${k} out for the default (an unset variable, as in --${k} "$VAR"?)`);
    } else if (spec?.type === 'string' && spec.choices && typeof v === 'string' && !spec.choices.includes(v)) {
      // the choice meant, as for an option's name (didYouMean: `--slot prev`, previous)
      const near = didYouMean(v, [...spec.choices]);
      throw new UsageError(`--${k} must be one of ${spec.choices.join(', ')}, got ${JSON.stringify(v)}${near ? ` (did you mean ${near}?)` : ''}`, `usage: ${usageLine(c)}`);
    } else out[k] = v;
  }
  return out as OptionValues<Options>;
}

/** Options other tools name the environment with (`--env qa`, `-e qa`): ops takes it as the first argument. */
const ENV_OPTIONS = ['--env', '--environment', '--stage', '--target', '-e'];

/** Options by the names other tools give them, and the option of ops meant, where the command has it. */
const OTHER_OPTIONS: Record<string, string> = { tag: 'ref', branch: 'ref', commit: 'ref', sha: 'ref', rev: 'ref', revision: 'ref', release: 'to', id: 'to', tail: 'lines' };

/** Positional arguments no value of which starts with "-": names ops validates (an environment's, a program's). */
const NO_DASH_ARGUMENTS = ['<env>', '<name>', '[program]'];

/**
 * node:util parseArgs's error (the one library parsing argv), as a one-line usage error in ops's words: an option that
 * takes a value given none ("argument missing" at the end; "argument is ambiguous", three lines suggesting --ref=-XYZ,
 * when a word starting with "-" follows) says `--ref needs a value`, and when that word is no option of the command
 * how a value starting with "-" is written (or, for an option none of whose values starts with one, what it takes: dashFree); an unknown option is named with the closest option of the command
 * (didYouMean); a switch given a value (`--dry-run=yes`) says it takes none; any other keeps its first sentence. The hint is the usage.
 */
function parseArgsError(e: unknown, specs: Options, c: Command, args: string[]): UsageError {
  const message = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: unknown }).code;
  const usage = `usage: ${usageLine(c)}`;
  // "Option '-r, --ref <value>' argument missing", "Option '--ref' argument is ambiguous.\n…", "Option '-r' …"
  const named = code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && /^Option '([^']*)' argument (?:missing|is ambiguous)/.exec(message);
  if (named) {
    const flag = named[1]!.replace(/ <value>$/, '').split(', ').at(-1)!;
    const name = flag.startsWith('--') ? flag.slice(2) : Object.keys(specs).find((k) => `-${specs[k]!.short}` === flag);
    const spec = name === undefined ? undefined : specs[name];
    const what = spec?.type === 'string' ? (spec.what ?? (spec.choices ? `one of ${spec.choices.join(', ')}` : 'a value')) : spec?.type === 'number' ? 'a whole number' : 'a value';
    const display = name === undefined ? flag : `--${name}`;
    // the word after the option as typed (node names it "-r, --ref <value>"): none when it was last
    const at = Math.max(...named[1]!.replace(/ <value>$/, '').split(', ').map((f) => args.lastIndexOf(f)));
    const next = at < 0 ? undefined : args[at + 1];
    const option = (w: string) => w === '--' || Object.entries(specs).some(([k, o]) => w === `--${k}` || w.startsWith(`--${k}=`) || (o.short !== undefined && w === `-${o.short}`));
    // a value starting with "-" is written --file=-VALUE; an option whose values never start with one (dashFree) says what it takes
    const dashed = next === undefined || option(next) ? '' : spec && dashFree(spec) ? `${display} takes ${what}, which never starts with "-" (${next} is read as an option); ` : `a value starting with "-" is written ${display}=-VALUE; `;
    return new UsageError(`${display} needs ${what}, got none`, `${dashed}${usage}`);
  }
  // a switch given a value (`--dry-run=yes`, `--force=false`): node says "Option '-d, --dry-run' does not take an argument"
  const valued = code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && /^Option '(?:-\w, )?(--[^']*)' does not take an argument/.exec(message);
  if (valued) return new UsageError(`${valued[1]} takes no value: give ${valued[1]} alone to turn it on, or leave it out`, usage);
  // an option the command does not take, named with the closest one it does (`--dryrun`: --dry-run); node's message
  // holds the option without its =value, and a single dash's first letter only (`-dry-run`: '-d')
  const unknown = code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && /^Unknown option '(--?)([^'=]*)'/.exec(message);
  if (unknown) {
    const given = unknown[1]! + unknown[2]!;
    const typed = unknown[1] === '-' ? (args.find((a) => a.startsWith(given) && !a.startsWith('--')) ?? given) : given;
    const at = args.findIndex((a) => a === typed || a.startsWith(`${typed}=`));
    // the environment given as an option, as other tools take it (`--env qa`, `-e qa`): it is the first argument here
    if (c.args?.[0] === '<env>' && ENV_OPTIONS.includes(typed) && at >= 0) {
      const inline = args[at]!.includes('=');
      const env = inline ? args[at]!.slice(args[at]!.indexOf('=') + 1) : args[at + 1];
      const rest = args.filter((_, i) => i !== at && (inline || i !== at + 1));
      const line = env === undefined || env.startsWith('-') ? undefined : ['ops', c.name, env, ...rest].map((w, i) => (i < 1 + c.name.split(' ').length ? w : quote(w))).join(' ');
      return new UsageError(`unknown option ${typed} for "ops ${c.name}": the environment is its first argument, not an option${line ? ` (did you mean "${line}"?)` : ''}`, usage);
    }
    // an option by the name another tool gives it (`--tag`, `--branch`: --ref; `--release`: rollback's --to; `--tail`: --lines)
    const other = typed.startsWith('--') && Object.hasOwn(OTHER_OPTIONS, typed.slice(2)) && specs[OTHER_OPTIONS[typed.slice(2)]!] ? `--${OTHER_OPTIONS[typed.slice(2)]}` : undefined;
    const near = other ?? nearOption(typed, specs);
    // a word typed after one dash shown whole only when it is a long option's name (never a value glued to a letter)
    const shown = near?.startsWith('--') && typed !== given ? typed : given;
    // where a positional argument is still to come (a branch named -x), how to give one starting with "-": after --;
    // not for an argument no value of which starts with "-" (an environment's name, a program's), where the word is
    // only an option the command lacks
    const slot = at < 0 ? undefined : openArgument(c, specs, args.slice(0, at));
    const dashed = slot && !NO_DASH_ARGUMENTS.includes(slot) ? `a ${slot} starting with "-" goes after --: ops ${c.name} ${[...args.slice(0, at), '--', ...args.slice(at)].map(quote).join(' ')}; ` : '';
    return new UsageError(`unknown option ${shown} for "ops ${c.name}"${near ? ` (did you mean ${near}?)` : ''}`, `${dashed}${usage}`);
  }
  return new UsageError(message.split('\n')[0]!.replace(/\. To specify.*$/, ''), usage);
}

/**
 * The positional argument (as the usage names it: `<ref>`) the next word of a command line would be, after `before`
 * (its words so far: options, their values, positional arguments), or undefined when none is left to give.
 */
function openArgument(c: Command, specs: Options, before: string[]): string | undefined {
  let given = 0;
  for (let i = 0; i < before.length; i++) {
    const w = before[i]!;
    if (w === '--') return undefined; // every word after it is positional already
    if (!w.startsWith('-') || w === '-') given++;
    else if (!w.includes('=')) {
      // an option taking a value takes the next word
      const spec = w.startsWith('--') ? specs[w.slice(2)] : Object.values(specs).find((o) => w === `-${o.short}`);
      if (spec && spec.type !== 'boolean') i++;
    }
  }
  const args = c.args ?? [];
  const last = args.at(-1);
  return args[given] ?? (last?.endsWith('...>') || last?.endsWith('...]') ? last : undefined);
}

/** Whether no value of the option starts with "-": a number, one with choices none of which does, or one marked `dashes: false`. */
function dashFree(spec: OptionSpec): boolean {
  if (spec.type === 'number') return true;
  if (spec.type !== 'string') return false;
  return spec.dashes === false || (spec.choices !== undefined && !spec.choices.some((c) => c.startsWith('-')));
}

/**
 * An option taking one value given twice with different values (`--ref v1 ... --ref v2`, a line edited and run again):
 * refused, both named, rather than the last one silently taken (a deploy of another ref than the one read first).
 */
function refuseRepeated(specs: Options, tokens: ReturnType<typeof parseArgs>['tokens'], c: Command): void {
  const seen = new Map<string, string>();
  for (const t of tokens ?? []) {
    if (t.kind !== 'option' || t.value === undefined) continue;
    const spec = specs[t.name];
    if (!spec || spec.type === 'boolean' || ('multiple' in spec && spec.multiple)) continue;
    const before = seen.get(t.name);
    if (before !== undefined && before !== t.value) throw new UsageError(`--${t.name} given twice, ${JSON.stringify(before)} and ${JSON.stringify(t.value)}: ops takes one`, `keep the one you mean; usage: ${usageLine(c)}`);
    seen.set(t.name, t.value);
  }
}

/**
 * A letter option written with "=" (`-o=me.key`, `-n=5`): node takes "=me.key" as its value, which would write a file
 * named "=me.key" or fail as "=5"; refused with the two forms that work (a space, or the long name with "=").
 */
function refuseLetterEquals(tokens: ReturnType<typeof parseArgs>['tokens'], c: Command): void {
  for (const t of tokens ?? []) {
    if (t.kind !== 'option' || t.rawName.startsWith('--') || !t.inlineValue || !t.value?.startsWith('=')) continue;
    // a secrets command's value may be a secret: the option's forms only
    const value = c.name.startsWith('secrets ') ? 'VALUE' : t.value.slice(1);
    throw new UsageError(`${t.rawName}= is no form of ${t.rawName}: it would take "=" as part of its value`, `write ${quote(t.rawName)} ${quote(value)} or --${t.name}=${quote(value)}; usage: ${usageLine(c)}`);
  }
}

/**
 * An option typed with a typographic dash (`—dry-run`, `–ref`: what a word processor, a chat or a web page makes of
 * `--`, then pasted): node reads it as an argument, so it would be refused as an unexpected one or taken for the
 * environment. Refused naming the dash and the option meant. Only before a `--` (after it, words are arguments).
 */
function refuseTypographicDashes(specs: Options, tokens: ReturnType<typeof parseArgs>['tokens'], c: Command): void {
  for (const t of tokens ?? []) {
    if (t.kind === 'option-terminator') return;
    if (t.kind !== 'positional') continue;
    const dash = /^[\u2010-\u2015\u2212\ufe58\ufe63\uff0d]+/.exec(t.value);
    if (!dash) continue;
    const word = t.value.slice(dash[0].length).split('=')[0]!;
    const near = nearOption(`--${word}`, specs) ?? (word.length === 1 ? nearOption(`-${word}`, specs) : undefined);
    const code = [...new Set(dash[0])].map((ch) => `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`).join(', ');
    // a secrets command's argument may be a value typed on the command line: named by its place, not shown
    const shown = c.name.startsWith('secrets ') ? `argument ${t.index + 1}` : JSON.stringify(t.value);
    throw new UsageError(
      `${shown} starts with a typographic dash (${code}), not "-": ops reads it as an argument, not an option`,
      `type the option with plain hyphens${near ? ` (${near})` : ''}: a document or chat it was copied from turned "--" into a dash; usage: ${usageLine(c)}`,
    );
  }
}

/** The command taking an environment that `argv` names after its first word (`ops qa status`: status), if any. */
function envCommandAfter(commands: Command[], argv: string[]): Command | undefined {
  return commands.find((c) => c.args?.[0] === '<env>' && c.name === argv.slice(1, 1 + c.name.split(' ').length).join(' '));
}

/**
 * A group's subcommand typed after its argument (`ops secrets qa show`, `ops env qa remove`), or left out after an
 * argument that is one of the project's environments (`ops lock qa`): the command lines meant (every subcommand of
 * the group taking an environment, when none was typed) and what the word is. Undefined when the word is neither.
 */
function subcommandAfter(group: Command[], argv: string[], root: string | undefined, processEnv: NodeJS.ProcessEnv): { lines: string[]; what: string } | undefined {
  const [first, word, next, ...after] = argv as [string, string, string | undefined, ...string[]];
  const line = (c: Command, rest: string[]) => ['ops', c.name, word, ...rest].map((w, i) => (i < 2 ? w : quote(w))).join(' ');
  const swapped = group.find((c) => c.name === `${first} ${next}`);
  if (swapped) return { lines: [line(swapped, after)], what: swapped.args?.[0] === '<env>' ? 'environment' : (swapped.args?.[0]?.replace(/^[<[]|[>\]]$/g, '') ?? 'argument') };
  let environments: string[] = [];
  try {
    const found = root ?? optionalProjectRoot(processEnv.OPS_ROOT, invocationDir(processEnv), homeDir(processEnv));
    environments = found === undefined ? [] : listEnvironments(found);
  } catch {
    return undefined; // no project: no environment to recognise
  }
  if (!environments.includes(word)) return undefined;
  // an environment that exists is not made again (`env new`)
  const takers = group.filter((c) => (c.args?.[0] === '<env>' || c.args?.[0] === '<name>') && !c.name.endsWith(' new'));
  if (!takers.length) return undefined;
  // more than two: the line with its place, the hint lists them
  const lines = takers.length > 2 ? [['ops', first, '<subcommand>', ...argv.slice(1).map(quote)].join(' ')] : takers.map((c) => line(c, argv.slice(2)));
  return { lines, what: 'environment' };
}

/** What `ops` itself takes before any command (`ops --version`, `ops --help`): named by nearOption as `ops --version`. */
const TOP_OPTIONS: Options = {
  version: { type: 'boolean', short: 'V', description: 'print the version' },
  help: GLOBAL_OPTIONS.help!,
};

/**
 * The option closest to a mistyped one, as it is typed: among `specs` (`--dryrun`, `-dry-run`: --dry-run; `-f`, a letter
 * no option has, where --force alone starts with it: --force; `-N` where
 * -n is one: -n), else among ops's own (`-v` alone, `--verison`, a command's `--version` or `-V`: `ops --version`).
 * One mechanism for an option typed anywhere; `specs` empty: typed before any command.
 */
export function nearOption(typed: string, specs: Options): string | undefined {
  const word = typed.replace(/^--?/, '');
  /** The key of the option meant among `options`, and whether it was typed as its letter. */
  const pick = (options: Options, anyCase: boolean): { key: string; letter: boolean } | undefined => {
    if (!typed.startsWith('--') && word.length === 1) {
      const same = (short: string | undefined) => short === word || (anyCase && short?.toLowerCase() === word.toLowerCase());
      const key = Object.keys(options).find((k) => same(options[k]!.short));
      return key === undefined ? undefined : { key, letter: true };
    }
    const key = didYouMean(word, Object.keys(options));
    return key === undefined ? undefined : { key, letter: false };
  };
  // a letter no option of the command has: the long options without a letter of their own that start with it
  // (`ops lock release -f`: --force); when several do, each is named and none guessed (deploy's -f: --force or
  // --forward-only)
  const starting = typed.startsWith('--') || word.length !== 1 ? [] : Object.keys(specs).filter((k) => specs[k]!.short === undefined && k.startsWith(word.toLowerCase()));
  const mine = pick(specs, true) ?? (starting.length === 1 ? { key: starting[0]!, letter: false } : undefined);
  if (mine) return mine.letter ? `-${specs[mine.key]!.short}` : `--${mine.key}`;
  if (starting.length > 1) return starting.map((k) => `--${k}`).join(' or ');
  // after a command, its letter exactly (`ops ping -V`); alone, in either case (`ops -v`): a command's -v is not
  // taken for the version
  const top = pick(Object.fromEntries(Object.entries(TOP_OPTIONS).filter(([k]) => !(k in specs))), Object.keys(specs).length === 0);
  return top && `"ops --${top.key}"`;
}

/**
 * The refusal of an unknown subcommand of one of the project's other scripts (`npm run sandbox -- stauts`): named, with
 * the one meant when one is close (didYouMean), as ops names its own; `usage` is the hint.
 */
export function unknownSubcommand(script: string, word: string, known: readonly string[], usage: string): UsageError {
  const near = didYouMean(word, [...known]);
  return new UsageError(`unknown command ${JSON.stringify(word)}${near ? ` (did you mean "${script} ${near}"?)` : ''}`, usage);
}

/**
 * The directory the command was run from, which relative path arguments start from: npm's INIT_CWD when npm
 * set it (`npm run ops -- ...` and `npx ops` run the command from the package root, INIT_CWD is where npm was
 * run), else the process's current directory. An INIT_CWD inherited by a process that has left the package
 * root (a script of an npm script that changed directory, then ran `ops`) is stale: the current directory counts.
 */
export function invocationDir(processEnv: NodeJS.ProcessEnv): string {
  const dir = processEnv.INIT_CWD;
  const left = processEnv.npm_package_json && isAbsolute(processEnv.npm_package_json) && dirname(processEnv.npm_package_json) !== process.cwd();
  return dir && isAbsolute(dir) && !left ? dir : process.cwd();
}

/** A missing-file error about a path typed relative, saying where it was taken from (unless it already does). */
function relativeNote(e: unknown, typed: Map<string, string>, cwd: string): unknown {
  if (!(e instanceof OpsError) || !/does not exist|no such file/.test(e.message) || e.message.includes('the directory the command was run from')) return e;
  for (const [abs, text] of typed) {
    if (!e.message.includes(abs)) continue;
    const Kind = e.constructor as new (message: string, hint?: string) => OpsError;
    return new Kind(`${e.message} (${text} is relative to the directory the command was run from, ${cwd})`, e.hint);
  }
  return e;
}

/**
 * How npm ran ops when it read the options before a `--` as its own, for messages: what was typed (`npm run ops`,
 * `npm exec ops`) and how it is written with the `--` (`npm run ops --`, `npm exec -- ops`); undefined otherwise. npx
 * is `npm exec` too (npm_command=exec), but it hands every word after the command's name to it: known by the shell's
 * $_ (bash and zsh set it to the program run); without $_, taken as `npm exec`.
 */
function npmReading(processEnv: NodeJS.ProcessEnv): { typed: string; fixed: string } | undefined {
  if (!processEnv.npm_lifecycle_event) return undefined;
  if (['run', 'run-script'].includes(processEnv.npm_command ?? '')) return { typed: 'npm run ops', fixed: 'npm run ops --' };
  if (processEnv.npm_command === 'exec' && !/(^|\/)npx$/.test(processEnv._ ?? '')) return { typed: 'npm exec ops', fixed: 'npm exec -- ops' };
  return undefined;
}

/** An ops option npm took as its own (npmTookOptions). */
interface NpmTook {
  /** The option's key among the command's specs. */
  key: string;
  /** As it is named in the message: `--lines`, or the word npm read when it is none of ops's (`--dryrun`: `--dryrun (did you mean --dry-run?)`). */
  named: string;
  /** npm read it as a switch (`--ref` as `true`, `-n` as its --no-yes): the value typed after it was left among the arguments. */
  valueLeft: boolean;
  /** An npm config file that sets the same setting: npm passes that on to the script alike, so it may not have been typed. */
  file?: string;
}

/**
 * The options of the command that npm took as its own config (`npm run ops deploy qa --dry-run`, without `--`; `npm exec` alike): npm
 * passes them to the script as npm_config_<name> (`true`, or the value after `=`; a value after a space becomes an argument) and drops them from
 * its arguments, so the command would run without them (a real deploy for a dry run). Those not among `args`; also a switch npm
 * took under a name close to one of them (`--dryrun`: refused by ops itself, but npm drops it and the deploy would be real).
 * npm exports its config files' settings the same way (a user's `force=true` in ~/.npmrc): such a setting is counted
 * all the same (ops cannot tell it from one typed), with its file named (npmConfigFile).
 */
function npmTookOptions(specs: Options, args: string[], processEnv: NodeJS.ProcessEnv): NpmTook[] {
  if (!npmReading(processEnv)) return [];
  const given = (k: string) => args.some((a) => a === `--${k}` || a.startsWith(`--${k}=`) || (specs[k]!.short !== undefined && a.startsWith(`-${specs[k]!.short}`) && !a.startsWith('--')));
  const traced = new Set<string>();
  const took: NpmTook[] = [];
  for (const [k, spec] of Object.entries(specs)) {
    const found = npmTraces(k, spec).filter((t) => {
      traced.add(t.variable);
      return processEnv[t.variable] !== undefined && (t.value === undefined || processEnv[t.variable] === t.value);
    });
    if (!found.length || given(k)) continue;
    const valueLeft = spec.type !== 'boolean' && found.some((t) => t.value !== undefined || processEnv[t.variable] === 'true');
    took.push({ key: k, named: `--${k}`, valueLeft, file: npmConfigFile(found.map((t) => t.variable), processEnv) });
  }
  // a switch npm kept under another name (`--dryrun`, which it does not know): the option meant, when one is close
  for (const [variable, value] of Object.entries(processEnv)) {
    if (value !== 'true' || !variable.startsWith('npm_config_') || traced.has(variable)) continue;
    const word = `--${variable.slice('npm_config_'.length).replace(/_/g, '-')}`;
    const near = nearOption(word, specs);
    const key = near?.startsWith('--') ? near.slice(2) : undefined;
    if (key === undefined || given(key)) continue;
    took.push({ key, named: `${word} (did you mean ${near}?)`, valueLeft: false, file: npmConfigFile([variable], processEnv) });
  }
  return took;
}

/**
 * The refusal of what npm took (npmTookOptions) from `${npm.typed} <command> ...`, or with no command from `npm run ops -V`
 * (`command` undefined: the line meant is ops's own options, `npm run ops -- --version`): the options named, and where the `--` goes.
 */
function npmTookError(took: NpmTook[], npm: { typed: string; fixed: string }, command?: string): UsageError {
  const one = took.length === 1;
  const line = command === undefined ? took.map((t) => `--${t.key}`).join(' ') : `${command} ...`;
  const valued = took.filter((t) => t.valueLeft).map((t) => `--${t.key}`);
  const files = [...new Set(took.flatMap((t) => (t.file ? [t.file] : [])))];
  const typed = `${npm.fixed} ${line} (or npx ops ${line})`;
  return new UsageError(
    `npm took ${took.map((t) => t.named).join(', ')} as its own option${one ? '' : 's'}${files.length ? `, or has ${one ? 'it' : 'them'} from ${files.join(' and ')} (a setting of npm's config reaches ops as one typed before \`--\` does)` : ''}: ops did not get ${one ? 'it' : 'them'} (npm reads the options of \`${npm.typed}${command === undefined ? '' : ` ${command}`} ...\` before a \`--\` as its own${valued.length ? `, and the value after ${valued.join(', ')} became an argument` : ''}); nothing was done`,
    files.length ? `typed: put -- between npm's words and ops's: ${typed}; from ${files.join(' and ')}: take it out, or run npx ops ${line}` : `put -- between npm's words and ops's: ${typed}`,
  );
}

/**
 * What npm 11 leaves the script for an ops option typed before `--`: the npm_config_ variable of its long name (or of the
 * setting npm reads it as: NPM_NAMES) and of its letter (`-o`: npm_config_o; `-V`: npm_config_v; `-f`, `-n`: npm's
 * own, NPM_SHORT), with the value that tells it when the variable is one of npm's settings (`-n` leaves yes empty,
 * where CI's npm_config_yes=true is no trace of it).
 */
function npmTraces(k: string, spec: OptionSpec): { variable: string; value?: string }[] {
  const long = { variable: `npm_config_${NPM_NAMES[k] ?? k.replace(/-/g, '_')}` };
  if (spec.short === undefined) return [long];
  const own = NPM_SHORT[spec.short];
  return [long, own ? { variable: `npm_config_${own.setting}`, value: own.value } : { variable: `npm_config_${spec.short.toLowerCase()}` }];
}

/** ops option letters that are npm's shorthands for a setting of its own, and the value each leaves (npm 11: `-f` is --force, `-n` --no-yes). */
/**
 * Commands typed by the name other tools give the job (`init`, `decommission`, `secrets get`, `secrets list`): the
 * command of ops that does it, never a spelling neighbour that does something else (`secrets get` is no slip of
 * `secrets set`, `init` of `initdata` only maybe). Keys: the words typed (a command, or a group and its subcommand);
 * values: the commands meant, in the order said, with the option the words after the first go to, if any (`secrets
 * get qa db.password`: `secrets show qa --key db.password`).
 */
const OTHER_NAMES: Record<string, string[]> = {
  init: ['env new', 'initdata'],
  new: ['env new'],
  create: ['env new'],
  decommission: ['env remove'],
  destroy: ['env remove'],
  unlock: ['lock release'],
  'env create': ['env new'],
  'env add': ['env new'],
  'env init': ['env new'],
  'env delete': ['env remove'],
  'env rm': ['env remove'],
  'env destroy': ['env remove'],
  'env decommission': ['env remove'],
  'secrets new': ['env new'],
  'secrets init': ['env new'],
  'secrets get': ['secrets show --key'],
  'secrets list': ['secrets show'],
  'secrets ls': ['secrets show'],
  'secrets view': ['secrets show'],
  'secrets cat': ['secrets show'],
  'secrets delete': ['secrets unset'],
  'secrets remove': ['secrets unset'],
  'secrets rm': ['secrets unset'],
  'lock unlock': ['lock release'],
  'lock show': ['lock status'],
};

/** `(did you mean "ops env new qa" or "ops initdata qa"?)` for words OTHER_NAMES knows, `after` the words typed after them; else undefined. */
function otherName(typed: string, after: string[]): string | undefined {
  const meant = Object.hasOwn(OTHER_NAMES, typed) ? OTHER_NAMES[typed] : undefined;
  const line = (m: string) => {
    const [name, option] = m.split(' --');
    const words = option && after.length > 1 ? [after[0]!, `--${option}`, ...after.slice(1)] : after;
    return `"ops ${[name, ...words.map(quote)].join(' ')}"`;
  };
  return meant && ` (did you mean ${meant.map(line).join(' or ')}?)`;
}

const NPM_SHORT: Record<string, { setting: string; value: string }> = { f: { setting: 'force', value: 'true' }, n: { setting: 'yes', value: '' } };

/**
 * The npm config file (user, global, project, npm's built-in) that sets one of these npm_config_ `variables`, if any: npm
 * passes a file's settings on to the script as it does options typed before `--`. A file not read is none.
 */
function npmConfigFile(variables: string[], processEnv: NodeJS.ProcessEnv): string | undefined {
  const execpath = processEnv.npm_execpath;
  const files = [
    processEnv.npm_config_userconfig,
    processEnv.npm_config_local_prefix && join(processEnv.npm_config_local_prefix, '.npmrc'),
    processEnv.npm_config_globalconfig,
    execpath && isAbsolute(execpath) && join(dirname(execpath), '..', 'npmrc'),
  ];
  for (const file of files) {
    if (!file) continue;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    // `key = value` lines (ini); npm names a setting's variable in lower case with `_` for `-`
    const keys = text.split('\n').map((l) => /^\s*([^=;#\s][^=]*?)\s*=/.exec(l)?.[1]);
    if (keys.some((key) => key !== undefined && variables.includes(`npm_config_${key.replace(/-/g, '_').toLowerCase()}`))) return file;
  }
  return undefined;
}

/**
 * ops options npm reads as another of its settings (npm 11: an abbreviation expanded, `--to 3` as --token-description,
 * taking the value with it; `--no-X` setting X): the npm_config_ name each leaves.
 */
const NPM_NAMES: Record<string, string> = { to: 'token_description', replace: 'replace_registry_host', 'no-comment': 'comment' };

/**
 * ops options npm takes, value and all, while leaving the script no npm_config_ trace of them (npm 11 exports no
 * deprecated setting, and `key` is one): under `npm run` or `npm exec`, a command taking one of them cannot tell "not given" from
 * "given before `--`", so it runs only when the option reached it (`secrets show qa --key a` would print every secret).
 */
const NPM_UNTRACED = ['key'];

/**
 * A command run by `npm run` or `npm exec` (npmReading) that takes an option npm would swallow without trace (NPM_UNTRACED), not given to it:
 * refused, naming the option, since it may have been typed before a `--` (the command would do more than asked).
 */
function npmMayHaveTaken(command: Command, args: string[], processEnv: NodeJS.ProcessEnv): UsageError | undefined {
  const npm = npmReading(processEnv);
  if (!npm) return undefined;
  const flags = args.includes('--') ? args.slice(0, args.indexOf('--')) : args;
  const missing = NPM_UNTRACED.filter((k) => command.options?.[k] && !flags.some((a) => a === `--${k}` || a.startsWith(`--${k}=`)));
  if (!missing.length) return undefined;
  const named = missing.map((k) => `--${k}`).join(', ');
  return new UsageError(
    `ops cannot tell whether npm took ${named} of \`${npm.typed} ${command.name} ...\` (npm reads ${named} before a \`--\` as its own setting and passes on no trace of it); nothing was done`,
    `run it as npx ops ${command.name} ... (from bash or zsh) or node scripts/ops-bin.js ${command.name} ... (from the project folder); or give ${named} after the --: ${npm.fixed} ${command.name} ... ${missing.map((k) => `--${k} ${command.options![k]!.type === 'boolean' ? '' : (command.options![k] as { value?: string }).value ?? 'VALUE'}`.trim()).join(' ')}`,
  );
}

export interface RunIo {
  argv: string[];
  processEnv?: NodeJS.ProcessEnv;
  stdin?: NodeJS.ReadableStream;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  reporter?: Reporter;
  root?: string;
  /** How commands reach hosts (tests inject one); default SSH. */
  connector?: Connector;
}

/**
 * `ops --json deploy prod`, `ops -i key ping prod`: an option typed before the command (as Ansible's and many tools'
 * global options go). Options follow the command here: the usage error says so with the command line reordered, and,
 * with --json among them, prints its document on stdout as any usage error does. Exit 2.
 */
function optionBeforeCommand(commands: Command[], argv: string[], stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream, shown: (text: string) => string, documentText: (doc: Record<string, unknown>) => string): number {
  const at = argv.findIndex((a) => commands.some((c) => c.name.split(' ')[0] === a));
  const leading = at < 0 ? argv.slice(0, 1) : argv.slice(0, at);
  const first = leading.find((a) => a.startsWith('-'))!;
  // no command at all, and a slip of ops's own options (`ops -v`, `ops --verison`): the option meant is named
  const meant = at < 0 ? nearOption(first, {}) : undefined;
  // a `--` first: npm's separator (`npm run ops -- deploy`) carried over to ops itself (`npx ops -- deploy`)
  const separator = first === '--' ? ': "--" separates npm\'s words from ops\'s in `npm run ops -- ...`; ops itself takes the command first' : undefined;
  let error = meant ? `unknown option ${first} (did you mean ${meant}?)` : `unknown command "${first}"${separator ?? ': options go after the command, not before it'}`;
  let hint = 'usage: ops <command> [arguments] [options] (`ops --help` lists the commands)';
  const command = at < 0 ? undefined : commands.find((c) => c.name.split(' ').every((w, i) => argv[at + i] === w));
  // --identity before a command that logs in to no host: said as it is after one (identityRefused)
  const words = command ? argv.slice(at + command.name.split(' ').length) : [];
  const cut = words.includes('--') ? words.indexOf('--') : words.length;
  const identity = command && identityRefused(command, [...words.slice(0, cut), ...leading.filter((a) => a !== '--'), ...words.slice(cut)]);
  if (identity) {
    error = identity.message;
    hint = identity.hint!;
  } else if (at >= 0) {
    const after = argv.slice(at);
    const end = after.includes('--') ? after.indexOf('--') : after.length;
    // an option the command does not take, moved as its closest one (`ops --dryrun deploy`: --dry-run), or said
    const specs = { ...(command?.options ?? {}), ...globalOptions(command) };
    const said: string[] = [];
    const moved = leading.map((a) => {
      if (!command || !a.startsWith('-') || a === '--') return a;
      const [name, ...value] = a.split('=');
      const known = Object.entries(specs).some(([k, o]) => name === `--${k}` || (o.short !== undefined && a.startsWith(`-${o.short}`) && !a.startsWith('--')));
      if (known) return a;
      const near = nearOption(name!, specs);
      said.push(near ? `${name}: did you mean ${near}?` : `${name} is no option of "ops ${command.name}"`);
      // one with nothing close is left out of the command line shown (it would be refused there again)
      return near?.startsWith('-') ? [near, ...value].join('=') : undefined;
    }).filter((a) => a !== undefined);
    if (said.length) error += ` (${said.join('; ')})`;
    // a leading `--` ends nothing there: it is dropped, not moved
    hint = `ops ${[...after.slice(0, end), ...moved.filter((a) => a !== '--'), ...after.slice(end)].map(quote).join(' ')}`;
  }
  stderr.write(showControls(shown(`error: ${error}\n  hint: ${hint}`)) + '\n');
  // --json given: a command that takes it, or none recognised (whether the one meant takes it is not known)
  const flags = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  // --json given: the document a script parses, whether or not the command takes --json (the error may be that it does not)
  if (flags.includes('--json')) {
    stdout.write(documentText({ ok: false, ...errorFields(new UsageError(error, hint)), exitCode: EXIT_CODES.usage }) + '\n');
  }
  return EXIT_CODES.usage;
}

/** Run the CLI; returns the exit code (EXIT_CODES: 0 done, 1 failed or refused by the world, 2 usage; 128 + n for signal n). */
export async function runCli(commands: Command[], io: RunIo): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  let processEnv = io.processEnv ?? process.env;
  const argv = io.argv;
  // stdout closed by the caller (`ops status qa >&-`): whatever ops would print there would go nowhere, unseen, as
  // `cat FILE >&-` fails with "write error: Bad file descriptor"; refused before anything is tried (exit 1: nothing
  // written where output was required). `> /dev/null` discards it on purpose and runs.
  if (outputClosed(stdout, stderr)) {
    stderr.write('error: stdout is closed (`>&-`): what ops prints would be lost; nothing was done\n  hint: give it somewhere to write: > /dev/null to discard it, or > FILE to keep it\n');
    return EXIT_CODES.failed;
  }
  // `ops --version` (`-V`), with --json in either order (`ops --json --version`): `{ name, version }` for scripts
  const asked = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  if ((argv[0] === '--version' || argv[0] === '-V' || (argv[0] === '--json' && (argv[1] === '--version' || argv[1] === '-V'))) && asked.every((a) => ['--version', '-V', '--json'].includes(a))) {
    stdout.write(asked.includes('--json') ? `${JSON.stringify({ name: opsPackage.name, version: opsPackage.version }, null, 2)}\n` : `${opsPackage.name} ${opsPackage.version}\n`);
    return 0;
  }
  if (argv[0] === '--version' || argv[0] === '-V') {
    // anything else after it (`ops --version deploy`): said, not ignored
    const extra = asked.find((a) => !['--version', '-V', '--json'].includes(a)) ?? '--';
    const error = `ops ${argv[0]} takes no ${extra.startsWith('-') ? 'option' : 'argument'} but --json, got ${JSON.stringify(extra)}`;
    const hint = 'ops --version prints the version (--json: as JSON); a command\'s own options go after it: ops <command> [arguments] [options]';
    stderr.write(`error: ${showControls(cutLongWords(error))}\n  hint: ${hint}\n`);
    if (asked.includes('--json')) stdout.write(JSON.stringify({ ok: false, ...errorFields(new UsageError(error, hint)), exitCode: EXIT_CODES.usage }, null, 2) + '\n');
    return EXIT_CODES.usage;
  }
  // `ops help deploy` (and `ops --help deploy`, `ops -h deploy`) is `ops deploy --help`
  if ((argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') && argv.length > 1 && !argv[1]!.startsWith('-')) return runCli(commands, { ...io, argv: [...argv.slice(1), '--help'] });
  // `npm run ops -V` (no `--`): npm took -V, ops got no words at all; said, not answered with the help
  const tookTop = argv.length === 0 ? npmTookOptions(TOP_OPTIONS, [], processEnv) : [];
  if (tookTop.length) {
    stderr.write(`error: ${formatError(npmTookError(tookTop, npmReading(processEnv)!), processEnv)}\n`);
    return EXIT_CODES.usage;
  }
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    stdout.write(mainHelp(commands) + '\n');
    return argv.length === 0 ? 2 : 0;
  }
  // Longest match first: "secrets show" before "secrets".
  const command = [...commands].sort((a, b) => b.name.split(' ').length - a.name.split(' ').length).find((c) => {
    const words = c.name.split(' ');
    return words.every((w, i) => argv[i] === w);
  });
  // With --json, stdout carries only the JSON: progress goes to stderr.
  const reporter = io.reporter ?? (argv.includes('--json') ? new ConsoleReporter(stderr, stderr) : new ConsoleReporter(stdout, stderr));
  /**
   * An error as printed: masked (the run's secret values), and what it quotes of the arguments or a file (a word typed
   * in the wrong place, an option's value, a setting) with a URL's password and a private key hidden (hideSecrets).
   */
  const shown = (text: string): string => cutLongWords(hideSecrets(reporter.redact(text)));
  /** A JSON document as printed: its texts masked and cut as `shown` does (the JSON text itself is never cut: it stays a document). */
  const documentText = (doc: Record<string, unknown>): string =>
    hideSecrets(reporter.redact(JSON.stringify(Object.fromEntries(Object.entries(doc).map(([k, v]) => [k, typeof v === 'string' ? shown(v) : v])), null, 2)));
  // an error nobody caught is printed by scripts/ops.ts's handler: masked as every other error
  maskUncaught(shown);
  if (!command) {
    // --json typed anywhere before `--`: no command was recognised to say whether it takes --json, and a script that
    // gave it parses stdout all the same (as for any usage error): the error as a document there too
    const flags = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
    const document = (error: string, hint: string) => {
      if (flags.includes('--json')) stdout.write(documentText({ ok: false, ...errorFields(new UsageError(error, hint)), exitCode: EXIT_CODES.usage }) + '\n');
    };
    const group = commands.filter((c) => c.name.startsWith(`${argv[0]} `));
    const word = argv[1];
    const subcommands = group.map((c) => `  ${usageLine(c)}`).join('\n');
    const listHint = `its subcommands: ${group.map((c) => usageLine(c)).join('; ')}`;
    if (group.length && word !== undefined && !word.startsWith('-') && subcommandAfter(group, argv, io.root, processEnv)) {
      // the environment typed before the subcommand (`ops secrets qa show`, `ops lock qa`): the order said, with the line meant
      const meant = subcommandAfter(group, argv, io.root, processEnv)!;
      const error = `unknown subcommand "${word}" for "ops ${argv[0]}": the subcommand comes first, then the ${meant.what} (did you mean ${meant.lines.map((l) => `"${l}"`).join(' or ')}?)`;
      stderr.write(showControls(shown(`error: ${error}\n  hint: ${listHint}\n`)));
      document(error, listHint);
    } else if (group.length && word !== undefined && !word.startsWith('-')) {
      const other = otherName(`${argv[0]} ${word}`, argv.slice(2).filter((w) => !w.startsWith('-')));
      const near = other ? undefined : didYouMean(word, group.map((c) => c.name.split(' ')[1]!));
      const error = `unknown subcommand "${word}" for "ops ${argv[0]}"${other ?? (near ? ` (did you mean "ops ${argv[0]} ${near}"?)` : '')}`;
      stderr.write(showControls(shown(`error: ${error}; its subcommands:\n${subcommands}\n`)));
      document(error, listHint);
    } else if (group.length && (word === '--help' || word === '-h')) {
      stdout.write(`"ops ${argv[0]}" subcommands:\n${group.map((c) => `  ${usageLine(c)}\n      ${c.summary}`).join('\n')}\n`);
      return 0;
    } else if (group.length) {
      stderr.write(`"ops ${argv[0]}" needs a subcommand:\n${subcommands}\n`);
      document(`"ops ${argv[0]}" needs a subcommand`, listHint);
    } else if (argv[0]!.startsWith('-')) {
      return optionBeforeCommand(commands, argv, stdout, stderr, shown, documentText);
    } else if (envCommandAfter(commands, argv)) {
      // the environment typed before the command (`ops qa status`): the order said, with the line meant
      const c = envCommandAfter(commands, argv)!;
      const after = argv.slice(1 + c.name.split(' ').length);
      const error = `unknown command "${argv[0]}": the command comes first, then the environment (did you mean "ops ${[c.name, argv[0], ...after].join(' ')}"?)`;
      stderr.write(showControls(shown(`error: ${error}`)) + `\n  hint: usage: ${usageLine(c)}\n`);
      // --json asked of a command that takes it: its one document, as for any usage error
      document(error, `usage: ${usageLine(c)}`);
    } else {
      // the whole command meant, where the slip spans its two words (`secret show`: secrets show) or joins them
      // (`env-new`, `lock_status`: env new, lock status); else its first word (`deplyo`: deploy)
      const groups = commands.filter((c) => c.name.includes(' ')).map((c) => c.name);
      const second = argv[1] !== undefined && !argv[1].startsWith('-') ? argv[1] : undefined;
      const near =
        (second === undefined ? undefined : didYouMean(`${argv[0]} ${second}`, groups)) ??
        (/[-_]/.test(argv[0]!) ? didYouMean(argv[0]!.replace(/[-_]+/g, ' '), groups) : undefined) ??
        didYouMean(argv[0]!, [...new Set(commands.map((c) => c.name.split(' ')[0]!))]);
      // ops's own option typed as a word (`ops version`): the option meant
      const own = near ? undefined : nearOption(`--${argv[0]}`, {});
      // a name another tool gives the job (`init`, `decommission`): the command that does it, before any neighbour
      const other = otherName(argv[0]!, argv.slice(1).filter((w) => !w.startsWith('-')));
      const error = `unknown command "${argv[0]}"${other ?? (near ? ` (did you mean "ops ${near}"?)` : own ? ` (did you mean ${own}?)` : '')}`;
      // the command meant named: that line and the hint (the whole help after it would push it off the screen);
      // none close: the commands to choose from
      stderr.write(showControls(shown(`error: ${error}`)) + (other || near || own ? '\n  hint: `ops --help` lists the commands\n' : `\n\n${mainHelp(commands)}\n`));
      document(error, '`ops --help` lists the commands');
    }
    return EXIT_CODES.usage;
  }
  const rest = argv.slice(command.name.split(' ').length);
  const cwd = invocationDir(processEnv);
  /** Path arguments typed relative: resolved path -> as typed. */
  const typedPaths = new Map<string, string>();
  const absolute = (p: string): string => {
    if (isAbsolute(p) || p === '') return p;
    const abs = userPath(cwd, p, homeDir(processEnv));
    if (!p.startsWith('~')) typedPaths.set(abs, p);
    return abs;
  };
  /** --json was given and parsed: a failure is printed as JSON on stdout too, so a script reading it always gets a document. */
  let json = false;
  /**
   * With --json, a signal outside a run's lock (connecting, planning, a command that takes none): its document, then the
   * exit a signal gives (128 + its number: 130, 143, 129). Inside the lock the run stops itself (core/ops/locked.ts:
   * runHandlesSignals) and prints its own (ops.interrupted).
   */
  let environment: string | undefined;
  const outsideRun = (signal: NodeJS.Signals) => {
    if (runHandlesSignals()) return; // the run stops itself
    const exitCode = signalExit(signal);
    const error = `interrupted by ${signal} (outside the run's lock: what it had done is not known here; see ops status and ops audit)`;
    stderr.write(`error: ${error}\n`);
    const doc = { ok: false, result: 'interrupted', signal, command: command.name, ...(environment && { environment }), release: null, releaseNote: 'not known: the run was interrupted outside its lock', previous: null, live: null, reason: error, error, exitCode };
    stdout.write(reporter.redact(JSON.stringify(doc, null, 2)) + '\n');
    process.exit(exitCode);
  };
  try {
    // A key file named relative ($SOPS_AGE_KEY_FILE=keys.txt) starts from where the command was run, and a `~` (quoted,
    // so the shell left it: SOPS_AGE_KEY_FILE='~/keys.txt') is the home directory, as in every path typed (userPath;
    // npm runs ops from the project root: a relative one was read from there, not found).
    const keyFile = processEnv.SOPS_AGE_KEY_FILE;
    if (keyFile && !isAbsolute(keyFile)) processEnv = { ...processEnv, SOPS_AGE_KEY_FILE: userPath(cwd, keyFile, homeDir(processEnv)) };
    const specs = { ...(command.options ?? {}), ...globalOptions(command) };
    const refused = identityRefused(command, rest);
    if (refused) throw refused;
    const took = npmTookOptions(specs, rest, processEnv);
    if (took.length) {
      // --json among them: the document a script expects, as for any usage error
      if (took.some((t) => t.key === 'json') && command.options && 'json' in command.options) json = true;
      throw npmTookError(took, npmReading(processEnv)!, command.name);
    }
    const untraced = npmMayHaveTaken(command, rest, processEnv);
    if (untraced) throw untraced;
    let parsed;
    try {
      parsed = parseArgs({
        args: rest,
        allowPositionals: true,
        strict: true,
        tokens: true,
        options: Object.fromEntries(
          Object.entries(specs).map(([k, o]) => [k, { type: o.type === 'boolean' ? 'boolean' : 'string', ...(o.short ? { short: o.short } : {}), ...('multiple' in o && o.multiple ? { multiple: true } : {}) }]),
        ),
      });
    } catch (e) {
      throw parseArgsError(e, specs, command, rest);
    }
    refuseRepeated(specs, parsed.tokens, command);
    refuseTypographicDashes(specs, parsed.tokens, command);
    refuseLetterEquals(parsed.tokens, command);
    if (parsed.values.help) {
      stdout.write(commandHelp(command) + '\n');
      return 0;
    }
    checkArgs(command, parsed.positionals, () => {
      try {
        const found = io.root ?? optionalProjectRoot(processEnv.OPS_ROOT, cwd, homeDir(processEnv));
        return found === undefined ? [] : listEnvironments(found);
      } catch {
        return []; // no project to name them from: the usage alone
      }
    }, processEnv, rest, parsed.values);
    const root = io.root ?? (command.project === 'optional' ? optionalProjectRoot(processEnv.OPS_ROOT, cwd, homeDir(processEnv)) : projectRoot(processEnv.OPS_ROOT, cwd, homeDir(processEnv)));
    const inProject = root !== undefined;
    const values = typedValues(specs, parsed.values as Record<string, string | boolean | string[] | undefined>, command, command.args?.[0] === '<env>' ? parsed.positionals[0] : undefined);
    json = 'json' in specs && values.json === true;
    // Every relative path argument, here in one place, from the directory the command was run from
    for (const [k, spec] of Object.entries(specs)) {
      const v = (values as Record<string, unknown>)[k];
      if (spec.type === 'string' && spec.path && v !== undefined) (values as Record<string, unknown>)[k] = Array.isArray(v) ? v.map(absolute) : absolute(v as string);
    }
    const args = parsed.positionals.map((a, i) => (command.pathArgs?.includes(i) ? absolute(a) : a));
    // read here, where the directory it was typed in is known: a path for it (`ops config .` in environments/qa) is named
    if (command.args?.[0] === '<env>' && root !== undefined) validate('environment', args[0]!, undefined, { cwd, root });
    // A run stopped by a signal exits from inside (core/ops/locked.ts): with --json, its document first, as a failure's.
    const interrupted = (doc: Record<string, unknown>) => stdout.write(reporter.redact(JSON.stringify({ ok: false, ...doc }, null, 2)) + '\n');
    const ops: OpsContext = { root: root ?? cwd, cwd, reporter, processEnv, identityFile: values.identity, ...(io.connector ? { connector: io.connector } : {}), ...(json && { interrupted }) };
    if (json) {
      if (command.args?.[0] === '<env>') environment = args[0];
      for (const s of RUN_SIGNALS) process.on(s, outsideRun);
    }
    return await command.run({ args, values, reporter, root: root ?? cwd, inProject, cwd, processEnv, stdin: io.stdin ?? process.stdin, stdout, stderr, ops });
  } catch (err) {
    const e = relativeNote(err, typedPaths, cwd);
    stderr.write(`error: ${showControls(shown(formatError(e, processEnv)))}\n`);
    const code = exitCodeOf(e);
    // A usage error stops the parse before --json is read: a script that gave it reads stdout all the same.
    const flags = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
    // --json typed to a command that takes none (`ops apikey --json`): refused, and still the document the script parses
    if (code === EXIT_CODES.usage && flags.includes('--json')) json = true;
    // The same words as on stderr (a bug's stack stays there), as `{ ok: false, error, hint? }`, one line each.
    // Not a run that stopped itself (a signal, an error nobody caught): its document is printed as the process exits
    // (ops.interrupted), once.
    if (json && !failedResult(err)?.stopped) {
      // With what the operation had got to where it applies (a deploy's release attempted, what is live: withResult).
      stdout.write(documentText({ ok: false, ...failedResult(err), ...errorFields(e), exitCode: code }) + '\n');
    }
    return code;
  } finally {
    for (const s of RUN_SIGNALS) process.off(s, outsideRun);
  }
}
