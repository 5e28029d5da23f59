// A program's command as supervisor runs it: split into words by Python's shlex.split (POSIX mode), the first word
// executed, with no shell in between (supervisor/options.py, ProcessConfig.get_execv_args). What only a shell reads
// in it is never run as the file means.

/**
 * A word of a command line as shlex.split (POSIX) makes it; `plain`: no quote or backslash in it (an operator's form);
 * `expandable`: its text outside single quotes and escapes, where a shell would expand `$NAME` (supervisor does not).
 */
interface Word {
  text: string;
  plain: boolean;
  expandable: string;
}

/** `line` split as Python's shlex.split (POSIX mode) splits it, or undefined when a quote is left open. */
export function shlexWords(line: string): Word[] | undefined {
  const words: Word[] = [];
  let text = '';
  let plain = true;
  let expandable = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) return undefined;
      text += line.slice(i + 1, end);
      i = end;
      plain = false;
      inWord = true;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        // inside double quotes, shlex's POSIX escapes are \" and \\ only
        if (line[j] === '\\' && (line[j + 1] === '"' || line[j + 1] === '\\')) j++;
        text += line[j];
        expandable += line[j];
      }
      if (j >= line.length) return undefined;
      i = j;
      plain = false;
      inWord = true;
    } else if (c === '\\') {
      text += line[i + 1] ?? '';
      i++;
      plain = false;
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push({ text, plain, expandable });
      text = '';
      plain = true;
      expandable = '';
      inWord = false;
    } else {
      text += c;
      expandable += c;
      inWord = true;
    }
  }
  if (inWord) words.push({ text, plain, expandable });
  return words;
}

/** Words a shell reads as its own and supervisor passes on as arguments. */
const OPERATORS = /^(?:&&|\|\||\||\|&|;|;;|&|\d*>>?|\d*>&\d*|&>>?|<<?<?|\d*<)$/;
/** Shell builtins, which no executable file provides: supervisor cannot start them. */
const BUILTINS = new Set(['cd', 'export', 'source', '.', 'exec', 'set', 'ulimit', 'umask', 'eval', 'alias', 'unset']);

/**
 * Why `command` (programs.<name>.command) would not run as written, supervisor starting it without a shell, or
 * undefined: a shell operator among its words (`&&`, `|`, `;`, `>`, `2>&1`...), a `VAR=value` before the program,
 * a shell builtin as the program (cd, export, exec...), an unquoted `$VAR`, `$(...)` or backquote (never expanded).
 * A quote left open is also said (shlex refuses the line: the program never starts).
 */
export function programCommandProblem(command: string): string | undefined {
  const words = shlexWords(command);
  if (!words) return 'a quote is left open: supervisor splits the command into words as a shell would, and refuses it';
  const fix = "to use the shell, give it the line: bash -c '...' (with exec before the program, so supervisor's stop reaches it)";
  const first = words[0];
  if (first && first.plain && /^[A-Za-z_][A-Za-z0-9_]*=/.test(first.text))
    return `supervisor runs it without a shell, so ${first.text.split('=')[0]}=... before the program is not an assignment but the program it would try to start; give the variable in programs.<name>.env`;
  if (first && BUILTINS.has(first.text))
    return `supervisor runs it without a shell, and "${first.text}" is a shell builtin, no program it can start; ${first.text === 'cd' ? 'give the directory in programs.<name>.directory' : first.text === 'exec' ? 'leave exec out' : fix}`;
  const op = words.find((w) => w.plain && (OPERATORS.test(w.text) || /^[^;|&]+;$/.test(w.text) || /^\d*>[^&]/.test(w.text) || /^[^<>]+(?:>|>>)$/.test(w.text)));
  if (op) return `supervisor runs it without a shell (it splits the line into words and starts the first), so "${op.text}" would be an argument given to the program, not the shell's; ${fix}`;
  const expansion = words.find((w) => /\$(?:[A-Za-z_{(]|\d)|`/.test(w.expandable));
  if (expansion) return `supervisor runs it without a shell, so "${expansion.text}" is passed as written, never expanded; use a placeholder ({release}, {port}...), give the value in programs.<name>.env, or ${fix}`;
  return undefined;
}
