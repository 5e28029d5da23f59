// A program's command as supervisor runs it: split into words by Python's shlex.split (POSIX mode), the first word
// executed, with no shell in between (supervisor/options.py, ProcessConfig.get_execv_args; core/supervisor.ts
// commandWords). What only a shell reads in it is never run as the file means: refused when the file is read.
import { commandWords } from '../supervisor.ts';

// Shell builtins and keywords: no executable file provides them, so supervisor cannot start them.
const SHELL_WORDS = new Set(['exec', 'cd', 'source', '.', 'export', 'eval', 'set', 'unset', 'ulimit', 'umask', 'alias', 'trap', 'shopt', 'if', 'for', 'while', 'until', 'case', 'function', '{', '!', '[[']);
const NO_SHELL = 'supervisor runs it without a shell (it only splits it into words as a shell would, and starts the first)';
const SHELL_FIX = "to use the shell, give it the line: sh -c '...' ending in exec (sh -c 'cd sub && exec venv/bin/app', so supervisor's stop reaches the program), or quote the character to pass it to the program as it is";

/**
 * Why `command` (programs.<name>.command, placeholders not expanded) would not run as written, supervisor starting it
 * without a shell, or undefined: what shlex refuses (a quote not closed, a trailing backslash), an empty first word, a
 * `NAME=value` before
 * the program, a shell builtin or keyword as the program (cd, exec, export...), a shell's syntax outside quotes
 * (`| & ; < >`, a backtick, `$NAME`, `${...}`, `$(...)`, a leading `~`; `$` and a backtick inside double quotes
 * too), or a Unicode space outside quotes (shlex does not split there: two words would reach the program as one).
 * Each said with what to write instead.
 */
export function programCommandProblem(command: string): string | undefined {
  const words = commandWords(command);
  if (!Array.isArray(words)) return `${words.problem}: ${words.fix}`;
  const first = words[0];
  if (first?.text === '') return 'its first word (the program to run) is empty: start it with the program to run';
  if (first) {
    const raw = command.slice(first.start, first.end);
    const assignment = /^[A-Za-z_][A-Za-z0-9_]*=/.exec(raw);
    if (assignment)
      return `${NO_SHELL}, so ${assignment[0]}... before the program is not an assignment but the program it would try to start: give the variable in programs.<name>.env, or write env ${assignment[0]}... <program>`;
    if (SHELL_WORDS.has(first.text) && raw === first.text)
      return `${NO_SHELL}, and "${first.text}" is a shell builtin or keyword, no program it can start: ${first.text === 'cd' ? 'give the directory in programs.<name>.directory' : first.text === 'exec' ? 'leave exec out (supervisor runs the program itself, as exec would)' : SHELL_FIX}`;
  }
  for (const w of words) {
    const shell = w.shell.find((s) => s !== 'space');
    if (shell === '$' || shell === '`')
      return `${NO_SHELL}, so "${w.text}" is passed as written, never expanded: use a placeholder ({release}, {port}...), give the value in programs.<name>.env, or ${SHELL_FIX}`;
    if (shell === '~') return `${NO_SHELL}, so the "~" starting "${w.text}" is passed as written, not a home directory: write the path itself, or ${SHELL_FIX}`;
    if (shell) return `${NO_SHELL}, so "${shell}" in "${w.text}" would be given to the program as an argument, not read by a shell: ${SHELL_FIX}`;
    if (w.shell.includes('space')) return `it holds a Unicode space (a no-break space, say) outside quotes, where supervisor's command parser does not split: two words would reach the program as one; type an ordinary space there (or quote the word if the space is meant)`;
  }
  return undefined;
}
