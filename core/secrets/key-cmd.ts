// The key commands sops runs ($SOPS_AGE_KEY_CMD, $SOPS_AGE_SSH_PRIVATE_KEY_CMD), run as sops 3.13.3 runs them
// (getsops/sops age/keysource.go, getOutputFromCmd): the value split into words by github.com/google/shlex, the
// first word run as the program with the others as its arguments, WITHOUT a shell; stdin empty, stdout read as the
// key, stderr kept (sops shows neither). A command that needs a shell spells it out: `sh -c '…'`.
import { execFileSync } from 'node:child_process';
import { OpsError } from '../errors.ts';

/** A key command variable set to nothing to run (blank, or only a comment), on which sops 3.13.3 crashes: never skipped. */
export class NoKeyCommand extends OpsError {}

/** The variables that hold a command sops runs for a key. */
export type KeyCommandVariable = 'SOPS_AGE_KEY_CMD' | 'SOPS_AGE_SSH_PRIVATE_KEY_CMD';

/**
 * Split a command into words by the rules of github.com/google/shlex `Split` (commit e7afc7f), the splitter sops uses:
 * words are separated by space, tab, CR or LF; `'…'` keeps everything literally; `"…"` keeps everything except that
 * `\` takes the next character literally (any character: `"\a"` is `a`, unlike a POSIX shell); outside quotes `\`
 * takes the next character literally; `#` at the start of a word starts a comment to the end of the line (inside a
 * word it is literal). Nothing else is special: `~`, `$VAR`, `|`, `>`, `;`, `*` are plain characters.
 * @returns the words (`[]` for a blank or comment-only command).
 * @throws Error "EOF found when expecting closing quote" / "EOF found after escape character" (google/shlex's words).
 */
export function splitCommand(cmd: string): string[] {
  const words: string[] = [];
  let word: string | undefined; // undefined: between words
  let i = 0;
  const space = (c: string) => c === ' ' || c === '\t' || c === '\r' || c === '\n';
  while (i < cmd.length) {
    const c = cmd[i++]!;
    if (word === undefined) {
      if (space(c)) continue;
      if (c === '#') {
        // a comment, to the end of the line
        while (i < cmd.length && cmd[i] !== '\n') i++;
        continue;
      }
      word = '';
    } else if (space(c)) {
      words.push(word);
      word = undefined;
      continue;
    }
    if (c === '\\') {
      if (i >= cmd.length) throw new Error('EOF found after escape character');
      word += cmd[i++];
    } else if (c === "'") {
      const end = cmd.indexOf("'", i);
      if (end < 0) throw new Error('EOF found when expecting closing quote');
      word += cmd.slice(i, end);
      i = end + 1;
    } else if (c === '"') {
      for (;;) {
        if (i >= cmd.length) throw new Error('EOF found when expecting closing quote');
        const d = cmd[i++]!;
        if (d === '"') break;
        if (d === '\\') {
          if (i >= cmd.length) throw new Error('EOF found after escape character');
          word += cmd[i++];
        } else word += d;
      }
    } else word += c;
  }
  if (word !== undefined) words.push(word);
  return words;
}

/**
 * Words a shell would have given a meaning that sops, running the command without one, passes as they are; none when
 * the command is itself a shell given a script (`sh -c '…'`: its words are the shell's to read).
 */
function shellWords(words: string[]): string[] {
  if (/^(.*\/)?(sh|bash|dash|zsh|ksh|ash|busybox)$/.test(words[0]!) && words.includes('-c')) return [];
  return words.filter((w) => /^~|[$`|&;<>*?]|^\(|\)$/.test(w)).map((w) => (w.length > 30 ? `${w.slice(0, 27)}...` : w));
}

/** How to write the variable when the command needs a shell. */
function shellFix(variable: KeyCommandVariable): string {
  return `sops runs ${variable} without a shell (one program and its arguments, quoted with '…' or "…"); for ~, $VARIABLES, pipes or redirections, write the shell yourself: ${variable}="sh -c '<your command>'" (sops and ops run that alike)`;
}

/**
 * Run a key command (`cmd`, the value of `variable`) as sops 3.13.3 does: split by splitCommand, the first word run
 * without a shell with `env` as its environment, stdin empty. sops also adds SOPS_AGE_RECIPIENT (the recipient it is
 * decrypting for); ops loads keys once for all files, so the command runs once, without it.
 * @returns what the command printed on stdout (key material: never put it in a message).
 * @throws OpsError naming the variable, what went wrong and how to write it (sops fails on the same commands); the
 * command's output (stdout and stderr) is never in it. A blank or comment-only command, on which sops 3.13.3 crashes
 * (index out of range), is refused too (NoKeyCommand).
 */
export function runKeyCommand(variable: KeyCommandVariable, cmd: string, env: NodeJS.ProcessEnv): Buffer {
  // the key itself where the command goes: said without a word of it
  if (/AGE-SECRET-KEY-|PRIVATE KEY-----/i.test(cmd))
    throw new OpsError(`${variable} holds a private key, not a command that prints one (not shown)`, `give the key in ${variable === 'SOPS_AGE_KEY_CMD' ? 'SOPS_AGE_KEY' : 'a file named by SOPS_AGE_SSH_PRIVATE_KEY_FILE'}, or set ${variable} to a command that prints it`);
  let words: string[];
  try {
    words = splitCommand(cmd);
  } catch (e) {
    const what = /quote/.test((e as Error).message) ? 'has a quote (\' or ") with no closing one' : 'ends with a backslash';
    throw new OpsError(`${variable} ${what}: sops cannot split it into a command and its arguments (google/shlex: ${(e as Error).message})`, shellFix(variable));
  }
  if (words.length === 0) throw new NoKeyCommand(`${variable} is set but names no command${cmd.trim() ? ' (only a comment)' : ''}: sops 3.13.3 crashes on it`, `unset ${variable}, or set it to the command that prints your key`);
  const [program, ...args] = words as [string, ...string[]];
  try {
    return execFileSync(program, args, { stdio: ['ignore', 'pipe', 'pipe'], env, maxBuffer: 1024 * 1024 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { status?: number | null; signal?: string | null };
    const shell = shellWords(words);
    const hint = shell.length ? `; ${shell.join(', ')} ${shell.length === 1 ? 'is' : 'are'} passed to ${program} as ${shell.length === 1 ? 'it is' : 'they are'}, not read by a shell` : '';
    const why =
      err.code === 'ENOENT' ? `no program ${program} (looked in PATH${program.includes('/') ? ': it is a path' : ''})`
      : err.code === 'EACCES' ? `${program} cannot be run (permission denied)`
      : err.code === 'ENOBUFS' ? 'it printed more than 1 MiB (not a key)'
      : err.signal ? `${program} was killed by ${err.signal}`
      : typeof err.status === 'number' ? `${program} exited with status ${err.status}`
      : `${program} could not be run (${err.code ?? err.message.split('\n')[0]})`;
    throw new OpsError(`${variable} failed: ${why} (what it printed is not shown)${hint}`, shell.length ? shellFix(variable) : `run the command yourself to see what it says, fix it, or unset ${variable}`);
  }
}
