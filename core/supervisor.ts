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
// 5. `command` is split by `shlex.split` (POSIX) when the program starts: that is the command's own syntax,
//    written as the user wrote it.
import { OpsError } from './errors.ts';

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
 * be variable names ([A-Za-z_][A-Za-z0-9_]*: shlex word characters).
 * @param keyOf where each variable comes from, for errors ("programs.server.env.X").
 * @param refused given: each variable supervisor cannot carry is passed to it (and left out) instead of thrown,
 *   so that every one is found in one pass.
 */
export function supervisorEnvironment(vars: Record<string, string>, keyOf: (name: string) => SupervisorKey, refused?: (r: SupervisorRefusal) => void): string {
  return Object.entries(vars)
    .flatMap(([k, v]) => {
      try {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) refuse(keyOf(k), 'the variable name is not a shell variable name', 'use letters, digits and "_"');
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
