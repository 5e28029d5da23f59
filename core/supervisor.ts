// Values written into supervisor's configuration files, encoded so supervisor reads back exactly what the
// environment says, or refused (naming the program and the key, never the value) when supervisor cannot
// carry them. The rules come from supervisor's own source (supervisor/options.py, supervisor/datatypes.py,
// 4.2.x as Debian 11-13 ship it, and 4.3):
//
// 1. Files are read by `UnhosedConfigParser`, a RawConfigParser (no configparser interpolation) with
//    `inline_comment_prefixes=(';', '#')`: a `;` or `#` preceded by whitespace ANYWHERE on a line starts a
//    comment (quotes do not protect it); values are stripped; a line break starts a new option.
// 2. `expand_here` replaces the literal text `%(here)s` in every value of an included file with the file's
//    directory, before anything else.
// 3. Then every value read with `saneget` is %-formatted (`value % expansions`): a literal `%` is `%%`.
//    `stdout_logfile`/`stderr_logfile` are formatted twice (saneget, then `expand` again): `%` is `%%%%`.
//    `environment` is formatted once (read unexpanded, then `expand`).
// 4. `environment=` is split by `dict_of_key_value_pairs`: shlex in non-POSIX mode in 4.2 (quotes stay in the
//    token, no escapes, then `.strip('\'"')` removes every quote at either end), shlex in POSIX mode in 4.3
//    (quotes removed, `\\` and `\"` unescaped inside double quotes). A form both read the same way is used.
// 5. `command` is split by `shlex.split` (POSIX) when the program starts (supervisor/process.py,
//    get_execv_args): that is the command's own syntax, written as the user wrote it. No shell runs it: `&&`,
//    `|`, `>`, `$VAR`, `exec`, `cd`, `X=1 cmd` reach the program as words, or name a program that does not exist.
//    A quote left open or a trailing `\` is refused by shlex at the start ("can't parse command").
// 6. The first word is looked up before supervisor changes to the program's `directory`: a bare name on the
//    program's PATH (environment=), a path with a `/` as it is, from supervisord's own working directory (/ under
//    systemd): `venv/bin/python` is not found ("can't find command"), whatever `directory` says.
import { OpsError } from './errors.ts';
import { quote } from './shell.ts';

/** Where a value goes, for the error message: "programs.server.command", "programs.server.env.LOG_FORMAT". */
export type SupervisorKey = string;

// ASCII controls: a line break would start a new option; the others have no business in a config file.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f]/;
// Python's str.isspace() (what configparser's strip() removes): JavaScript's \s without U+FEFF, plus the
// information separators U+001C-U+001F and NEL (U+0085).
const PY_SPACE = '\\t\\n\\v\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
// Before ';' or '#': configparser's inline comment rule (rule 1).
const INLINE_COMMENT = new RegExp(`[${PY_SPACE}][;#]`, 'u');
// At either end: stripped from the value (rule 1).
const EDGE_SPACE = new RegExp(`^[${PY_SPACE}]|[${PY_SPACE}]$`, 'u');

/** A value supervisor cannot carry: `key` (where it goes), `why` and `fix`, never the value. */
export class SupervisorRefusal extends OpsError {
  constructor(
    readonly key: SupervisorKey,
    readonly why: string,
    readonly fix: string,
  ) {
    super(`${key}: supervisor cannot carry this value: ${why}`, fix);
  }
}

function refuse(key: SupervisorKey, why: string, hint: string): never {
  throw new SupervisorRefusal(key, why, hint);
}

/** Checks shared by every value (rules 1 and 2); never shows the value itself. */
function checkLine(key: SupervisorKey, value: string): void {
  if (CONTROL.test(value)) refuse(key, 'it contains a line break or another control character', 'put it on one line, without control characters');
  if (INLINE_COMMENT.test(value))
    refuse(key, 'it holds a ";" or "#" after a space, which supervisor\'s config parser reads as the start of a comment (quotes do not protect it)', 'remove the space before ";" or "#" (e.g. "a;b"), or move that part into a script the command runs');
  if (value.includes('%(here)s')) refuse(key, 'it holds the text "%(here)s", which supervisor replaces with the directory of the file before reading it', 'write it differently (e.g. from a script the command runs)');
}

/**
 * A plain value (command, directory, user, ...) for a `key=value` line, `%` doubled for each %-formatting
 * supervisor applies to that key (`expansions`: 1, or 2 for log file names). Leading or trailing whitespace
 * (Python's str.isspace(), wider than JavaScript's trim(): NEL, U+001C-U+001F) would be stripped by
 * configparser: refused, as are line breaks and inline-comment sequences.
 * @throws OpsError naming `key` (never the value) when supervisor cannot carry it.
 */
export function supervisorValue(key: SupervisorKey, value: string, expansions: 1 | 2 = 1): string {
  checkLine(key, value);
  if (EDGE_SPACE.test(value)) refuse(key, 'it starts or ends with whitespace (as Python\'s str.isspace() has it, NEL U+0085 and U+2028 included), which supervisor strips', 'remove the leading/trailing spaces');
  return value.replace(/%/g, '%'.repeat(2 ** expansions));
}

/**
 * One environment value, quoted so that supervisor 4.2 (non-POSIX shlex, quotes stripped) and 4.3 (POSIX
 * shlex) both decode it to exactly `value`: single quotes when it has no `'` (no escapes inside them in
 * either mode), else double quotes when it has no `"`, no `\\` and no trailing `\` (4.3 would unescape those).
 * A value starting or ending with a quote character is refused: 4.2 strips every quote at either end.
 */
export function supervisorEnvValue(key: SupervisorKey, value: string): string {
  checkLine(key, value);
  if (/^['"]|['"]$/.test(value))
    refuse(key, 'it starts or ends with a quote character, which supervisor 4.2 strips from environment values', 'move the quote inside the value, or pass it another way (e.g. the .env file)');
  if (!value.includes("'")) return `'${value}'`;
  if (!value.includes('"') && !value.includes('\\\\') && !value.endsWith('\\')) return `"${value}"`;
  refuse(
    key,
    value.includes('"') ? 'it holds both kinds of quotes (\' and ")' : 'it holds a single quote together with "\\\\" or a trailing backslash',
    'supervisor\'s environment= cannot quote it: change the value, or pass it another way (e.g. the .env file)',
  );
}

/**
 * The `environment=` value: KEY='value' pairs joined by commas, `%` doubled (one %-formatting). Keys must
 * be variable names ([A-Za-z_][A-Za-z0-9_]*: shlex word characters). A value naming one of `vars` as `$NAME` or
 * `${NAME}` (PATH=bin:$PATH) is refused: supervisor expands none, the program would get the text.
 * @param keyOf where each variable comes from, for errors ("programs.server.env.X").
 * @param refused given: each variable supervisor cannot carry is passed to it (and left out) instead of thrown,
 *   so that every one is found in one pass.
 */
export function supervisorEnvironment(vars: Record<string, string>, keyOf: (name: string) => SupervisorKey, refused?: (r: SupervisorRefusal) => void): string {
  return Object.entries(vars)
    .flatMap(([k, v]) => {
      try {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) refuse(keyOf(k), 'the variable name is not a shell variable name', 'use letters, digits and "_"');
        // supervisor expands no $NAME in environment= (only %(ENV_NAME)s, which is escaped here): PATH=bin:$PATH
        // would give the program the text "$PATH", and no command beyond bin would be found.
        const named = [...v.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!).find((n) => Object.hasOwn(vars, n));
        if (named)
          refuse(keyOf(k), `it names $${named}, a variable of the program's environment, which supervisor does not expand: the program would get the text "$${named}"`, `write the value itself instead of $${named}${named === 'PATH' ? ' (e.g. PATH: "{release}/bin:{release}/venv/bin:/usr/local/bin:/usr/bin:/bin")' : ''}`);
        return [`${k}=${supervisorEnvValue(keyOf(k), v)}`];
      } catch (e) {
        if (!refused || !(e instanceof SupervisorRefusal)) throw e;
        refused(e);
        return [];
      }
    })
    .join(',')
    .replace(/%/g, '%%');
}

/** One word of a command as Python's shlex.split (POSIX mode) reads it, with where it is in the text. */
export interface CommandWord {
  /** The word shlex gives (quotes removed, escapes applied). */
  text: string;
  /** Its place in the command: [start, end) of its raw text. */
  start: number;
  end: number;
  /**
   * What a shell would act on in it and supervisor does not: `| & ; < >`, a backtick, `$` before a name, `{` or `(`
   * and a `~` starting the word, outside quotes (`$` and a backtick inside double quotes too); "space" for a Unicode
   * space outside quotes, where shlex does not split.
   */
  shell: string[];
}

// shlex's whitespace (Lib/shlex.py: ' \t\r\n'), and the characters a shell acts on outside quotes.
const SHLEX_SPACE = ' \t\r\n';
// Parentheses are left alone: a shell refuses them unquoted (no silent change), and supervisor carries %(h)s as written.
const SHELL_OPERATORS = '|&;<>';
// Python's str.isspace() that shlex does not split at: a no-break space copied from a web page joins two words.
const ODD_SPACE = new RegExp(`[${PY_SPACE.replace('\\t\\n\\v\\f\\r', '\\v\\f')}]`, 'u');

/**
 * `command` split into words as supervisor splits it when it starts the program (rule 5: Python's shlex.split, POSIX
 * mode: whitespace ' \t\r\n', `\` escapes the next character outside quotes, inside double quotes only `"` and `\`,
 * single quotes take everything literally; no comments), with the shell syntax each word holds (CommandWord.shell);
 * or, where shlex refuses the line (a quote not closed, a trailing backslash), why and how to fix it.
 */
export function commandWords(command: string): CommandWord[] | { problem: string; fix: string } {
  const words: CommandWord[] = [];
  let current: CommandWord | undefined;
  const refused = (what: string, fix: string) => ({ problem: `${what}, which supervisor's command parser (Python's shlex) refuses when the program starts`, fix });
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (SHLEX_SPACE.includes(c)) {
      if (current) words.push({ ...current, end: i });
      current = undefined;
      continue;
    }
    const w = (current ??= { text: '', start: i, end: i, shell: [] });
    if (c === '\\') {
      if (i + 1 >= command.length) return refused('it ends with a backslash', "remove it, or quote it ('\\\\')");
      w.text += command[++i];
    } else if (c === "'") {
      const close = command.indexOf("'", i + 1);
      if (close < 0) return refused('a single quote is not closed', "close it, or escape the quote (\\')");
      w.text += command.slice(i + 1, close);
      i = close;
    } else if (c === '"') {
      for (i++; ; i++) {
        if (i >= command.length) return refused('a double quote is not closed', 'close it, or escape the quote (\\")');
        const d = command[i]!;
        if (d === '"') break;
        if (d === '\\' && (command[i + 1] === '"' || command[i + 1] === '\\')) w.text += command[++i];
        else {
          if ((d === '$' && /[A-Za-z_{(]/.test(command[i + 1] ?? '')) || d === '`') w.shell.push(d);
          w.text += d;
        }
      }
    } else {
      if (SHELL_OPERATORS.includes(c) || c === '`' || (c === '$' && /[A-Za-z_{(]/.test(command[i + 1] ?? '')) || (c === '~' && w.start === i)) w.shell.push(c);
      if (ODD_SPACE.test(c)) w.shell.push('space');
      w.text += c;
    }
  }
  if (current) words.push({ ...current, end: command.length });
  return words;
}

/**
 * The program's `command` (placeholders expanded) as supervisor must be given it so that it starts what the command
 * says, run in `directory` (absolute): a first word that is a relative path with a `/` (venv/bin/python) is made
 * absolute from `directory` (rule 6; shell-quoted when it needs it), the rest kept as written; then encoded as
 * supervisorValue does. A shell's syntax in it was refused when the environment was read
 * (core/config/program-command.ts programCommandProblem).
 * @throws SupervisorRefusal naming `key` when shlex cannot split it or its first word is empty.
 */
export function supervisorCommand(key: SupervisorKey, command: string, directory: string): string {
  const words = commandWords(command);
  if (!Array.isArray(words)) refuse(key, words.problem, words.fix);
  const program = words[0];
  if (!program || program.text === '') refuse(key, 'its first word (the program to run) is empty', 'start it with the program to run');
  if (!program.text.includes('/') || program.text.startsWith('/')) return supervisorValue(key, command);
  return supervisorValue(key, `${command.slice(0, program.start)}${quote(`${directory.replace(/\/+$/, '')}/${program.text}`)}${command.slice(program.end)}`);
}
