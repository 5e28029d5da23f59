// Commands about secrets: sops files with age recipients, handled without the sops binary.
// `secrets decrypt` and `secrets show` are the only commands that print plaintext.
import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, fstatSync, openSync, realpathSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import { type Interface, createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { InputError, OpsError, fileError, userFileExists } from '../../core/errors.ts';
import type { EditIo, EditorExit } from '../../core/secrets/edit.ts';
import type { Identities } from '../../core/secrets/keys.ts';
import { goFloatText } from '../../core/secrets/goyaml.ts';
import { defaultKeyFile } from '../../core/secrets/key-file.ts';
import type { OpenWith } from '../../core/secrets/recipients.ts';
import type { TreeNode } from '../../core/secrets/tree.ts';
import { discardsOutput, keyName, own, writeToKeep } from '../../core/report.ts';
import { quote, validate } from '../../core/shell.ts';
import { guardHungUpTerminals, RUN_SIGNALS, signalExit } from '../../core/signals.ts';
import { UsageError, command, type Command, type CommandContext } from '../cli.ts';
import { didYouMean } from '../../core/config/schema-object.ts';

function show(root: string, file: string): string {
  const rel = relative(root, file);
  return rel.startsWith('..') ? file : rel;
}

/** The environment a path belongs to (environments/<env>/...), if any. */
function envOfPath(root: string, file: string): string | undefined {
  const rel = relative(root, file).split(sep).join('/');
  return /^environments\/([a-z][a-z0-9-]{0,39})\//.exec(rel)?.[1];
}

async function identitiesFor(ctx: CommandContext, env: string | undefined): Promise<Identities> {
  const { loadEnvIdentities } = await import('../../core/secrets/env.ts');
  const { loadIdentities } = await import('../../core/secrets/keys.ts');
  return env ? loadEnvIdentities(ctx.root, env, ctx.processEnv, (m) => ctx.reporter.warn(m)) : loadIdentities(ctx.processEnv);
}

/** How an environment's files are opened: its identities, every decrypted value masked (its key names never), what a save waits for said. */
async function openWith(ctx: CommandContext, env: string): Promise<OpenWith> {
  return { identities: await identitiesFor(ctx, env), mask: (v) => ctx.reporter.mask(v), allow: (k) => ctx.reporter.allow?.(k), warn: (m) => ctx.reporter.warn(m) };
}

/**
 * All of a stream's bytes (decoded by the caller: strictly, see core/secrets/utf8.ts).
 * @throws InterruptedError once `signal` aborts first (a stdin nobody ends, and Ctrl-C).
 */
async function readAll(stream: NodeJS.ReadableStream, signal?: AbortSignal): Promise<Buffer> {
  const { interruption } = await import('../../core/secrets/atomic.ts');
  return new Promise((res, rej) => {
    const chunks: Buffer[] = [];
    const onAbort = () => {
      stream.pause();
      rej(interruption(signal!.reason, 'while reading the value from stdin'));
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    stream.on('data', (c: Buffer | string) => chunks.push(typeof c === 'string' ? Buffer.from(c) : c));
    stream.on('end', () => {
      signal?.removeEventListener('abort', onAbort);
      res(Buffer.concat(chunks));
    });
    stream.on('error', (e) => {
      signal?.removeEventListener('abort', onAbort);
      rej(e);
    });
    stream.resume();
  });
}

/**
 * A one-line value loses the one newline ending it (\n or \r\n: what echo, a here-string or a one-line file
 * add); a value with another line break is kept exact, its final newline included (a PEM key needs it). Pure.
 */
function setValueFromInput(text: string): string {
  const cut = text.replace(/\r?\n$/, '');
  return /[\r\n]/.test(cut) ? text : cut;
}

/**
 * One line typed at the terminal `stdin`, not shown, as passwd reads one: readline reads the terminal in raw mode
 * (echo off; its line editing kept: backspace, Ctrl-U) and draws the line on an output that drops everything.
 * `prompt` goes to `stderr` (again after Ctrl-Z and fg). The terminal gets its modes back (echo on) on Enter, Ctrl-C and Ctrl-D (rl.close), while stopped by Ctrl-Z, and on
 * `signal`'s abort (SIGTERM, SIGHUP, SIGINT from outside: signalsAbort; their default action leaves the terminal raw).
 * A paste of several lines is refused (`fromFile`: how to give such a value), never cut to its first line; so are
 * bytes that are not UTF-8 (a terminal set to latin1), never stored as U+FFFD.
 * A terminal that hangs up meanwhile (its window closed, the ssh connection lost: stdin reads its end, and giving it
 * its modes back fails with EIO) ends the read as SIGHUP does, said so.
 * @returns the line without its end ('' for Ctrl-D on an empty line). @throws InterruptedError on Ctrl-C, a signal or a hang-up.
 */
async function readHidden(stdin: NodeJS.ReadStream, stderr: NodeJS.WritableStream, prompt: string, fromFile: string, signal: AbortSignal): Promise<string> {
  const { interruption } = await import('../../core/secrets/atomic.ts');
  const { invalidUtf8Offset } = await import('../../core/secrets/utf8.ts');
  return new Promise((res, rej) => {
    const muted = new Writable({ write: (_chunk, _enc, done) => done() });
    const rl = createInterface({ input: stdin, output: muted, terminal: true, historySize: 0 });
    // the bytes typed, as they came: readline decodes them leniently (bytes that are not UTF-8 become U+FFFD)
    const raw: Buffer[] = [];
    const onData = (c: Buffer | string) => raw.push(Buffer.from(c));
    stdin.on('data', onData);
    stderr.write(prompt); // once the terminal is raw: a Ctrl-C typed after the prompt is read here, not a signal
    const lines: string[] = [];
    let settled = false;
    // a signal from outside (kill, a closed terminal: `signal`, the command's) would end the process with the
    // terminal left raw, echo off
    const onAbort = () => finish(interruption(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    // readline gives the terminal its modes back (setRawMode) on its input's end too: on a terminal that hung up that
    // fails, an 'error' event on stdin that readline passes on as its own, which unheard ended the process as
    // "internal error: setRawMode EIO"
    rl.on('error', (e: NodeJS.ErrnoException) =>
      finish(e.code === 'EIO' ? interruption('SIGHUP', 'while the value was typed: the terminal was closed') : new OpsError(`cannot read the value from the terminal: ${e.message}; nothing was changed`, 'run the command again')),
    );
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      stdin.off('data', onData);
      const rest = rl.line; // a paste's last line without its end, still in readline's buffer
      rl.close(); // the terminal's modes back: echo on (the error of a terminal gone is heard, and dropped: settled)
      stdin.pause();
      stderr.write('\n'); // the Enter typed was not echoed either
      if (err) rej(err);
      else if (lines.length > 1 || rest) rej(new InputError(`the value typed for this key held several lines (a paste?): a value of several lines cannot be typed at a terminal; nothing was changed`, `give it from a file: ${fromFile}`));
      else if (invalidUtf8Offset(Buffer.concat(raw)) >= 0) rej(new InputError(`the value typed for this key is not UTF-8 text (the terminal sends another encoding: see its settings and LANG); it would be stored changed, so nothing was changed`, `set the terminal to UTF-8, or give the value from a file: ${fromFile}`));
      else res(lines[0] ?? '');
    };
    // the lines of one paste arrive in one chunk, one event each: the first is taken once they are all in
    rl.on('line', (line) => {
      lines.push(line);
      if (lines.length === 1) setImmediate(() => finish());
    });
    rl.on('SIGINT', () => finish(interruption('SIGINT'))); // Ctrl-C, read as a key on the raw terminal
    // Ctrl-Z then fg: readline (node:readline, its Ctrl-Z) stops the process with the terminal's modes back, and on
    // SIGCONT makes the terminal raw again but leaves its input paused: nothing else keeping the process alive, it
    // exited 0 with nothing stored, and what was typed next went to the shell. Reading goes on where it was.
    rl.on('SIGCONT', () => {
      stderr.write(prompt);
      rl.resume();
    });
    rl.on('close', () => finish());
    if (signal.aborted) onAbort();
  });
}

/** Whether file descriptor `fd` is open on a directory (false when it cannot be checked). */
function isDirectoryFd(fd: number): boolean {
  try {
    return fstatSync(fd).isDirectory();
  } catch {
    return false;
  }
}

/** Whether `path` is a directory (a symlink followed; false when nothing is there or it cannot be checked). */
function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * A value piped from a file a Windows editor wrote: the byte order mark Notepad or PowerShell put before the text is
 * an encoding mark, no part of the value (else stored first, unseen, and the app's password check fails): dropped,
 * said. Lines ending in CRLF are kept (a PEM file reads the same either way; the one ending a one-line value goes as
 * any final newline does), said, with how to store plain newlines. --exact keeps both: stdin byte for byte.
 */
function windowsText(ctx: CommandContext, key: string, text: string): string {
  const unmarked = text.replace(/^\uFEFF/, '');
  if (unmarked !== text) ctx.reporter.info(`the byte order mark (U+FEFF) a Windows editor puts at the start of a file was dropped from the value of ${key} (--exact keeps it)`);
  const lines = unmarked.replace(/\r?\n$/, '');
  if (/\r\n/.test(lines))
    ctx.reporter.warn(`the value of ${key} has Windows line ends (CRLF): stored with them; to store plain newlines, pipe it through \`tr -d '\\r'\` (or dos2unix) first`);
  return unmarked;
}

/**
 * `ops secrets set`'s value: stdin, as UTF-8 text, through setValueFromInput unless `exact` (--exact: byte for byte,
 * for a one-line value that ends in a newline, which setValueFromInput would drop).
 * @throws InputError (exit 2) when stdin is a directory (`< DIR`), empty (--empty stores an empty value) or not UTF-8 text; InterruptedError once
 * `signal` aborts (Ctrl-C at the terminal too).
 */
async function valueFromStdin(ctx: CommandContext, env: string, key: string, exact: boolean, signal: AbortSignal): Promise<string> {
  if ((ctx.stdin as NodeJS.ReadStream).isTTY) {
    const typed = await readHidden(ctx.stdin as NodeJS.ReadStream, ctx.stderr, `value for ${key} (not shown; Enter ends it): `, `ops secrets set ${env} ${quote(key)} < FILE`, signal);
    if (typed === '') throw new InputError(`no value typed for ${key}; nothing was changed`, `type the value and press Enter; to store an empty value, give --empty`);
    return typed;
  }
  // `< DIR`: node's stdin on a directory reads as empty (no EISDIR), which was said as "no value on stdin"
  if (ctx.stdin === process.stdin && isDirectoryFd(0))
    throw new InputError(`stdin is a directory (EISDIR: \`< DIR\` gave a folder, not the file holding the value for ${key}); nothing was changed`, `give the file holding the value: ops secrets set ${env} ${quote(key)} < DIR/FILE, or pipe it in: printf '%s' "$VALUE" | ops secrets set ${env} ${quote(key)}`);
  const { decodeUtf8 } = await import('../../core/secrets/utf8.ts');
  const hint = `store binary data as base64 text (\`base64 -w0 < FILE | ops secrets set ${env} ${quote(key)}\`), or convert text to UTF-8 first (\`iconv -f latin1 -t utf-8\`)`;
  const bytes = await readAll(ctx.stdin, signal);
  // UTF-16 (PowerShell 5's `>`) is named by decodeUtf8, with the conversion that keeps the text
  const text = decodeUtf8(bytes, `the value on stdin for ${key}`, hint);
  const value = exact ? text : setValueFromInput(windowsText(ctx, key, text));
  if (value === '') throw new InputError('no value on stdin', `pipe the value in: printf '%s' "$VALUE" | ops secrets set ${env} ${quote(key)}; to store an empty value, give --empty`);
  return value;
}

/**
 * Whether a stdin that is not a terminal holds data (a value piped in), for a flag that says stdin is not read
 * (--empty): true on the first non-empty chunk; false at its end, or when nothing came within `waitMs` (a stdin left
 * open that nobody writes to: the command must not hang on it). A terminal is never read (false).
 */
function pipedInput(stdin: NodeJS.ReadableStream, waitMs = 1000): Promise<boolean> {
  if ((stdin as NodeJS.ReadStream).isTTY || (stdin as NodeJS.ReadStream).readableEnded) return Promise.resolve(false);
  return new Promise((res) => {
    const done = (v: boolean) => {
      clearTimeout(timer);
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', onEnd);
      stdin.pause();
      res(v);
    };
    const onData = (c: Buffer | string) => {
      if (c.length) done(true);
    };
    const onEnd = () => done(false);
    const timer = setTimeout(() => done(false), waitMs);
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    stdin.on('error', onEnd);
    stdin.resume();
  });
}

/**
 * Where the editor draws its screen (its stdout): ops's stdout when that is a terminal; else the person's terminal
 * (/dev/tty, as git does for its editor: `ops secrets edit qa | tee log` at a terminal is edited seeing the text);
 * else, with no terminal at all (a CI job), nowhere: a terminal editor draws the plaintext on its screen, which
 * ops's stdout (a CI log) must never get. @returns what to give spawn, and a close for an fd opened here.
 */
function editorScreen(): { stdout: 'inherit' | 'ignore' | number; close: () => void } {
  if (process.stdout.isTTY) return { stdout: 'inherit', close: () => undefined };
  let fd: number;
  try {
    fd = openSync('/dev/tty', 'w'); // ENXIO when the process has no controlling terminal
  } catch {
    return { stdout: 'ignore', close: () => undefined };
  }
  return { stdout: fd, close: () => closeSync(fd) };
}

/** `file` as a command run in `cwd` names it: relative when it is below `cwd`, else absolute (never `../..`). */
function fromHere(cwd: string, file: string): string {
  const rel = relative(cwd, file);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file;
}

/**
 * The editor the user chose and the variable that chose it: $VISUAL, else $EDITOR (the convention git, sudoedit,
 * crontab and less follow: VISUAL names the full-screen editor, EDITOR the line one); undefined when neither is set
 * (non-empty).
 */
function chosenEditor(processEnv: NodeJS.ProcessEnv): { variable: 'VISUAL' | 'EDITOR'; command: string } | undefined {
  // one holding only white space names no command: run, `exec  "$@"` would run the decrypted file itself
  if (processEnv.VISUAL?.trim()) return { variable: 'VISUAL', command: processEnv.VISUAL };
  if (processEnv.EDITOR?.trim()) return { variable: 'EDITOR', command: processEnv.EDITOR };
  return undefined;
}

/**
 * GUI editors whose command hands the file to a window and returns at once unless given a flag to wait (their own
 * docs: `code --help` "-w, --wait Wait for the files to be closed before returning", subl, atom, mate, zed alike;
 * gvim's -f/--nofork; kate's -b/--block; gedit's -w): by program name, the flags that make each wait.
 */
const FORKING_EDITORS: [RegExp, string[]][] = [
  [/^(code|code-insiders|code-oss|codium|vscodium|cursor|windsurf|subl|sublime_text|atom|mate|zed|zeditor|bbedit|gedit)$/, ['--wait', '-w']],
  [/^(gvim|mvim|gview|vimx)$/, ['-f', '--nofork']],
  [/^kate$/, ['-b', '--block']],
];

/**
 * The editor command's program and the flag it lacks when it would return before the file is closed (FORKING_EDITORS;
 * `emacsclient -n`, which never waits; `vim -g` without -f): ops would then find the file unchanged, remove it and
 * drop what is typed in the window after. Undefined for any other command. Pure.
 */
export function returnsAtOnce(command: string): { program: string; fix: string } | undefined {
  const { program, args } = editorProgram(command);
  if (program === 'emacsclient') return args.some((a) => a === '-n' || a === '--no-wait') ? { program, fix: `${command.replace(/\s(-n|--no-wait)(?=\s|$)/, '')}` } : undefined;
  if (/^(vim?|nvim)$/.test(program) && args.includes('-g') && !args.some((a) => a === '-f' || a === '--nofork')) return { program: `${program} -g`, fix: `${command.trim()} -f` };
  const known = FORKING_EDITORS.find(([name]) => name.test(program));
  if (!known || args.some((a) => known[1].includes(a) || (known[1].includes('-w') && /^-[a-zA-Z]*w[a-zA-Z]*$/.test(a)))) return undefined;
  return { program, fix: `${command.trim()} ${known[1][0]}` };
}

/**
 * Whether $EDITOR may be npm's default rather than the user's choice: run by npm (`npm run ops`, npx: npm_lifecycle_event
 * or npm_execpath set), EDITOR is vi and neither VISUAL nor npm's own editor setting chose it. npm 11 sets EDITOR to
 * its `editor` setting for a script (VISUAL, else EDITOR, else vi), so vi there most often means none was chosen.
 */
function npmDefaultEditor(processEnv: NodeJS.ProcessEnv): boolean {
  const underNpm = Boolean(processEnv.npm_lifecycle_event || processEnv.npm_execpath);
  return underNpm && !processEnv.VISUAL && !processEnv.npm_config_editor && processEnv.EDITOR === 'vi';
}

/** Editors that draw on a terminal and read their keys from stdin, by program name (vim.basic: Debian's alternatives). */
const TERMINAL_EDITORS = new Set(['vi', 'vim', 'vim.basic', 'vim.tiny', 'vim.nox', 'view', 'nvim', 'nvi', 'elvis', 'vile', 'ex', 'nano', 'rnano', 'pico', 'emacs', 'mg', 'jove', 'zile', 'micro', 'hx', 'helix', 'kak', 'joe', 'jed', 'ne', 'mcedit', 'dte']);

/**
 * The program of an editor command that needs a terminal (vi, nano, emacs...), undefined for any other: a GUI editor
 * (code --wait, subl -w, gvim -f), a script, an editor ops does not know. By the command's first word (a path's last
 * part; VAR=value words and `env` before it skipped), as the shell runs it (runEditor): emacs and vim with a window
 * (emacs where $DISPLAY or $WAYLAND_DISPLAY is set and no -nw; vim -g) need none; emacsclient does with -t/-nw/--tty.
 * Pure.
 */
function terminalEditor(command: string, processEnv: NodeJS.ProcessEnv): string | undefined {
  const { program, args } = editorProgram(command);
  if (program === 'emacsclient') return args.some((a) => ['-t', '-nw', '--tty'].includes(a)) ? program : undefined;
  if (!TERMINAL_EDITORS.has(program)) return undefined;
  if (program === 'emacs' && (processEnv.DISPLAY || processEnv.WAYLAND_DISPLAY) && !args.some((a) => a === '-nw' || a === '--no-window-system')) return undefined;
  if (/^(vim?|view)$/.test(program) && args.includes('-g')) return undefined;
  return program;
}

/** An editor command's program (a path's last part; VAR=value words and `env` before it skipped) and its arguments. Pure. */
function editorProgram(command: string): { program: string; word: string; args: string[] } {
  const words = command.trim().split(/\s+/).map((w) => w.replace(/^(['"])(.*)\1$/, '$2'));
  while (words.length > 1 && (/^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0]!) || words[0] === 'env')) words.shift();
  return { program: words[0]!.split('/').at(-1)!, word: words[0]!, args: words.slice(1) };
}

/**
 * The arguments that keep an editor from writing the decrypted text anywhere else than the file ops removes, by the
 * program the command runs (a name that is a link, Debian's vi or editor through /etc/alternatives, followed):
 * - vim and neovim (vi, view, gvim... when they are vim): no swap file (-n; a `directory=~/.vim/swap//` keeps one,
 *   which a closed terminal leaves behind), no viminfo or shada (-i NONE: registers hold yanked values), and, after
 *   the vimrc (-c), no backup (`set backup backupdir=~/.vim/backup//` kept the whole file there) and no undo file
 *   (`set undofile undodir=...`: every change, the values typed included).
 * - GNU nano (rnano, and pico when it is nano): -I, no nanorc read (nano(1)): its options on the command line can
 *   only turn settings on, so a nanorc's `set backup` / `set backupdir` (the decrypted file kept whole) and
 *   `set historylog` (the strings searched for) are undone only by not reading it; key bindings and colours of the
 *   nanorc are left out for this edit.
 * - GNU Emacs (emacs, emacs-nox, emacs-gtk...): before the file is visited (--eval), no backup files
 *   (make-backup-files nil) and no auto-save (auto-save-default nil: #file# beside it, or under
 *   auto-save-file-name-transforms elsewhere). emacsclient edits in a running Emacs, whose settings ops cannot set.
 * None for other editors. `processEnv`'s PATH finds the program.
 */
export function privateEditorArgs(command: string, processEnv: NodeJS.ProcessEnv): string[] {
  const { program, word } = editorProgram(command);
  const vim = /^(g|r|rg)?vim(\.[a-z]+)?$|^nvim$/;
  const nano = /^r?nano$/;
  const emacs = /^emacs(-[a-z]+)?(-?[0-9][0-9.]*)?$/;
  if (!/^(g|r|rg)?(vim?|view|vimdiff)(\.[a-z]+)?$|^nvim$/.test(program) && !/^(r?nano|pico|editor)$/.test(program) && !emacs.test(program)) return [];
  // vi, view, pico or editor may be another program (nvi, elvis, busybox, alpine's pico): by what the name leads to
  let real = program;
  // as the shell finds it: the first executable file of that name on PATH (none: the shell says so when it runs it)
  for (const f of word.includes('/') ? [word] : (processEnv.PATH ?? '').split(':').map((d) => join(d || '.', word))) {
    try {
      accessSync(f, constants.X_OK);
      if (statSync(f).isDirectory()) continue;
      real = realpathSync(f).split('/').at(-1)!;
      break;
    } catch {
      // not there, or not executable: the next
    }
  }
  if (vim.test(real)) return ['-n', '-i', 'NONE', '-c', 'set nobackup nowritebackup noundofile noswapfile'];
  if (nano.test(real)) return ['-I'];
  if (emacs.test(real)) return ['--eval', '(setq make-backup-files nil auto-save-default nil)'];
  return [];
}

/**
 * An editor command written with a path holding a space, unquoted (`/opt/My Editor/ed --wait`): the longest run of its
 * first words, joined by single spaces, that is an existing file (an absolute or ./ path only), and the words after
 * it; undefined for any other command. What the shell, splitting it, could not find.
 */
function spacedPath(command: string): { path: string; rest: string } | undefined {
  const words = command.trim().split(/ +/);
  if (!/^(\/|\.{1,2}\/)/.test(words[0] ?? '')) return undefined;
  for (let n = words.length; n > 1; n--) {
    const path = words.slice(0, n).join(' ');
    if (existsSync(path)) return { path, rest: words.slice(n).map((w) => ` ${w}`).join('') };
  }
  return undefined;
}

/**
 * Run $VISUAL (else $EDITOR, else vi) through the shell, as git does, so "code --wait" works; its stdout is the
 * person's terminal, never a pipe or a log (editorScreen). Rejects with an InputError (exit 2: the variable must change)
 * when the shell cannot start the editor (127: no such command; 126: not an executable), naming the command and the
 * variable to set; the caller removes the decrypted copy, the secrets file untouched.
 */
function runEditor(file: string, processEnv: NodeJS.ProcessEnv, signal: AbortSignal): Promise<EditorExit> {
  const chosen = chosenEditor(processEnv);
  const editor = chosen?.command ?? 'vi';
  // the hint names the variable to change: the one that chose this editor (EDITOR when none did)
  const variable = chosen?.variable ?? 'EDITOR';
  return new Promise((res, rej) => {
    const screen = editorScreen();
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn('sh', ['-c', `exec ${editor} "$@"`, 'editor', ...privateEditorArgs(editor, processEnv), file], { stdio: ['inherit', screen.stdout, 'inherit'], env: processEnv });
    } finally {
      screen.close(); // the child has its own copy
    }
    const stop = () => child.kill('SIGTERM');
    signal.addEventListener('abort', stop, { once: true });
    child.on('error', (e) => {
      signal.removeEventListener('abort', stop);
      rej(new OpsError(`cannot start the editor "${editor}": ${e.message}`, `set ${variable} to your editor command`));
    });
    child.on('exit', (code, sig) => {
      signal.removeEventListener('abort', stop);
      // 127 and 126 are the shell's own (POSIX): no such command, or one it cannot run. The editor never ran.
      const spaced = code === 127 ? spacedPath(editor) : undefined;
      if (spaced)
        rej(new InputError(`cannot start the editor "${editor}": its path holds a space, and the shell (which runs it, as git does) took the path's first word as the command (exit 127); nothing was changed`, `quote the path inside the variable: ${variable}='"${spaced.path}"${spaced.rest}'`));
      else if (code === 127 || code === 126)
        rej(new InputError(`cannot start the editor "${editor}": the shell ${code === 127 ? 'found no such command' : 'could not run it (not an executable file)'} (exit ${code}); nothing was changed`, `set ${variable} to an installed editor, e.g. ${variable}=nano, or ${variable}="code --wait" for one that needs arguments${chosen ? ` ($${chosen.variable} is used before ${chosen.variable === 'VISUAL' ? '$EDITOR' : 'the default, vi'})` : ''}`));
      else res({ code, signal: sig });
    });
  });
}

/**
 * `run`'s exit code; a command interrupted where nothing was written (InterruptedError: Ctrl-C while a value is typed,
 * a signal while the file's lock is waited for) says so on one line, with a signal's exit code (130 for Ctrl-C).
 */
async function exitOnInterrupt(ctx: CommandContext, run: () => Promise<number>): Promise<number> {
  const { InterruptedError } = await import('../../core/secrets/atomic.ts');
  try {
    return await run();
  } catch (e) {
    if (!(e instanceof InterruptedError)) throw e;
    ctx.reporter.error(e.message);
    return signalExit(e.signal);
  }
}

/**
 * A signal for a command that stops cleanly when interrupted: once `listen` is called, each of RUN_SIGNALS (SIGINT, SIGTERM,
 * SIGHUP, Ctrl-\'s SIGQUIT... core/signals.ts) aborts it (its reason: the signal's name) instead of ending the process, until `stop` (call it whatever happens). Only for
 * code that heeds it (the editor stopped, a lock's wait ended: nothing half done); anything else runs on to its end.
 */
function signalsAbort(): { signal: AbortSignal; listen: () => void; stop: () => void } {
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => abort.abort(sig);
  // the same list as a deploy's: one unanswered (SIGQUIT) killed `edit` outright, its decrypted copy left on disk
  const signals = RUN_SIGNALS;
  return {
    signal: abort.signal,
    listen: () => {
      guardHungUpTerminals();
      signals.forEach((s) => process.on(s, onSignal));
    },
    stop: () => signals.forEach((s) => process.off(s, onSignal)),
  };
}

/**
 * Run a command that writes several files in turn with RUN_SIGNALS heeded (signalsAbort): `run` gets
 * the signal and stops before its next write once it aborts, saying what it had written (stoppedWriting), with the
 * signal's exit code (exitOnInterrupt); a signal never ends it silently half-way.
 */
export function interruptible(ctx: CommandContext, run: (signal: AbortSignal) => Promise<number>): Promise<number> {
  return exitOnInterrupt(ctx, async () => {
    const abort = signalsAbort();
    abort.listen();
    try {
      return await run(abort.signal);
    } finally {
      abort.stop();
    }
  });
}

/** The answers given on one stdin: the lines read and not yet taken, and whether it ended. */
interface Answers {
  rl: Interface;
  lines: string[];
  ended: boolean;
  /** Called when a line arrives or the input ends, while a question waits. */
  wake?: () => void;
}

// One line reader per stdin, shared by every question of a run: readline reads ahead (a pipe's whole chunk), so a
// reader per question lost the lines after its answer (piped "y\ny\n": the second question answered no).
const answerSources = new WeakMap<NodeJS.ReadableStream, Answers>();

function answersOf(input: NodeJS.ReadableStream): Answers {
  let a = answerSources.get(input);
  if (!a) {
    const made: Answers = { rl: createInterface({ input, terminal: false }), lines: [], ended: false };
    made.rl.on('line', (line) => {
      made.lines.push(line);
      made.wake?.();
    });
    made.rl.on('close', () => {
      made.ended = true;
      made.wake?.();
    });
    answerSources.set(input, (a = made));
  }
  return a;
}

/**
 * Ask a yes/no question on stderr, the answer a line of stdin (empty or anything but n/no: yes), each question the
 * next line (piped answers are taken in order). No answer (stdin ended, or the run aborted): no, said so. Stdin is
 * read only while a question waits (paused after each answer: the editor reads the terminal in between). A stdin
 * already ended before the first question answers no at once: a reader made on an ended stream would never close,
 * and the command ended without a word (exit 13, a promise never settled).
 */
function confirm(ctx: CommandContext, question: string, signal: AbortSignal): Promise<boolean> {
  return new Promise((res) => {
    ctx.stderr.write(question);
    const stdin = ctx.stdin as NodeJS.ReadStream;
    if (!answerSources.has(stdin) && stdin.readableEnded) {
      ctx.stderr.write('(no more input: no)\n');
      res(false);
      return;
    }
    const a = answersOf(stdin);
    let answered = false;
    const done = (v: boolean) => {
      if (answered) return;
      answered = true;
      a.wake = undefined;
      signal.removeEventListener('abort', onAbort);
      // Node 24's readline throws on pause/resume once closed (ERR_USE_AFTER_CLOSE: every piped answer read, stdin
      // ended); Node 20 ignored it
      if (!a.ended) a.rl.pause();
      res(v);
    };
    const onAbort = () => done(false);
    const next = (): boolean => {
      const line = a.lines.shift();
      if (line !== undefined) {
        if (!stdin.isTTY) ctx.stderr.write(`${line}\n`);
        done(!/^\s*n/i.test(line));
      } else if (a.ended) {
        ctx.stderr.write('(no more input: no)\n');
        done(false);
      }
      return answered;
    };
    if (next()) return;
    signal.addEventListener('abort', onAbort, { once: true });
    a.wake = next;
    if (!a.ended) a.rl.resume();
  });
}

/** What an edit changed, by key (keyName: left whole in messages though a value may occur in one), never by value. */
function changeSummary(c: { added: string[]; removed: string[]; changed: string[] }): string {
  const keys = (list: string[]) => list.map(keyName).join(', ');
  const parts = [c.changed.length ? own`changed ${keys(c.changed)}` : '', c.added.length ? own`added ${keys(c.added)}` : '', c.removed.length ? own`removed ${keys(c.removed)}` : ''].filter(Boolean);
  return parts.join('; ') || own`formatting only`;
}

/** The paths of the values under a map (key names only, never a value), nested maps followed; a list named once, as a list (key paths do not index lists). */
function leafPaths(node: TreeNode, prefix: string[]): string[] {
  if (node.kind === 'map') return node.entries.flatMap(([k, v]) => leafPaths(v, [...prefix, k]));
  const path = prefix.join('.');
  return [node.kind === 'list' ? `${path} (a list of ${node.items.length})` : path];
}

/**
 * After a value was written: a warning when the environment's files are encrypted to other keys than .sops.yaml lists
 * (recipientsDrift: a key taken out of it still decrypts what was just written). Never fails the command.
 */
async function warnRecipientsDrift(ctx: CommandContext, env: string): Promise<void> {
  const { recipientsDrift } = await import('../../core/secrets/recipients.ts');
  try {
    const drift = recipientsDrift(ctx.root, env);
    if (drift) ctx.reporter.warn(`${drift}; the value written is encrypted to the file's own recipients`);
  } catch (e) {
    if (!(e instanceof OpsError)) throw e; // another file of the environment that is not sops: its own commands say so
  }
}

/**
 * The value typed where the key goes (a URL with its password, a git address with a token, a private key), for `ops
 * secrets <set|unset> <env> <key>`: refused (a usage error) before anything is read or written, its secret part never
 * quoted; it is in the shell's history now, so said.
 */
async function refuseValueAsKey(key: string, env: string, command: 'set' | 'unset'): Promise<void> {
  const { hideSecrets, isPrivateKey, urlCredentialsIn } = await import('../../core/secrets/parts.ts');
  if (!isPrivateKey(key) && !urlCredentialsIn(key).length) return;
  // typed after a key name (`database_url=postgres://...`): the name alone, as for any KEY=VALUE (nothing after it shown)
  const at = key.search(/(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*:\/\//);
  const shown = at > 0 ? `${key.slice(0, at)}…` : hideSecrets(key);
  throw new UsageError(
    `the key given is ${isPrivateKey(key) ? 'an age private key' : `a ${key.includes('://') ? 'URL' : 'git address'} with credentials (${shown})`}, not a key name: was the value pasted in place of the key? nothing was changed`,
    `${command === 'set' ? `give a key name and pipe the value in: printf '%s' "$VALUE" | ops secrets set ${env} <key>` : `give the key name: ops secrets unset ${env} <key>`}; the value is in your shell's history now: change it if others can read that`,
  );
}

/** Where key path `parts` leads in `tree`: the node (undefined when it names none) and how many of its parts exist. */
function findKey(tree: TreeNode, parts: string[], getEntry: (map: Extract<TreeNode, { kind: 'map' }>, key: string) => TreeNode | undefined): { node: TreeNode | undefined; found: number } {
  let node: TreeNode | undefined = tree;
  let found = 0;
  for (const k of parts) {
    node = node?.kind === 'map' ? getEntry(node, k) : undefined;
    if (node) found++;
  }
  return { node, found };
}

/**
 * No key `key` (split as `parts`, of which `found` exist) in the secrets file `shown` of `env`: the closest key where
 * the path stops matching (key names are in clear in a sops file: no secret shown), or one the file holds only through
 * a YAML merge key (sops merges none). An InputError (exit 2: the command line names what the file lacks, and running it
 * again as it is fails the same way), as an environment that does not exist is.
 */
async function noKey(secrets: { tree: TreeNode; data: unknown }, env: string, shown: string, key: string, parts: string[], found: number): Promise<InputError> {
  const { binaryStoreNote, isBinaryStoreData, mapKeysAt, mergedOnlyPath } = await import('../../core/secrets/tree.ts');
  if (key !== 'data' && isBinaryStoreData(secrets.data)) {
    const { why, fix } = binaryStoreNote(shown, env);
    return new InputError(`no key ${key} in ${shown}: ${why}`, fix);
  }
  const merged = mergedOnlyPath(secrets.data as Parameters<typeof mergedOnlyPath>[0], key);
  if (merged)
    return new InputError(
      `no key ${key} in ${shown}: the file holds it only through a YAML merge key, as "${merged}", and sops keeps \`<<\` as a key of its own, merging nothing`,
      `write it out in its own map (ops secrets edit ${env}); \`ops secrets show ${env}\` lists the keys as sops reads them`,
    );
  const near = found < parts.length ? didYouMean(parts[found]!, mapKeysAt(secrets.tree, parts.slice(0, found))) : undefined;
  const written = (k: string) => (k.includes('.') ? `"${k}"` : k);
  const suggestion = near === undefined ? '' : `did you mean ${[...parts.slice(0, found), near].map(written).join('.')}? `;
  return new InputError(`no key ${key} in ${shown}`, `${suggestion}\`ops secrets show ${env}\` lists them all`);
}

/** `ops secrets recipients`: list, add, remove or sync; `signal` heeded between the files written (interruptible). */
async function recipients(ctx: CommandContext, signal: AbortSignal): Promise<number> {
  const { addRecipient, listRecipients, recipientsDrift, removeRecipient, syncRecipients } = await import('../../core/secrets/recipients.ts');
  const { requireEnvironment } = await import('../../core/secrets/files.ts');
  const env = validate('environment', ctx.args[0]!);
  requireEnvironment(ctx.root, env); // `add` to an unknown name would write a .sops.yaml rule for the typo
  const action = ctx.args[1];
  // a flag that means nothing here is refused, never ignored
  if (ctx.values.force && (action === undefined || action === 'add')) throw new UsageError(`--force applies to remove and sync only (the last of your own keys taken away), not to ${action ?? 'listing'}`, `leave --force out`);
  if (!action) {
    const view = listRecipients(ctx.root, env);
    const lines = (list: string[]) => list.map((r) => `  ${r}`).join('\n') || '  (none)';
    ctx.stdout.write(`.sops.yaml (${view.rule ? `creation_rules[${view.rule.index}]` : 'no matching rule'}):\n${lines(view.rule?.age ?? [])}\n`);
    for (const f of view.files) ctx.stdout.write(`${show(ctx.root, f.file)}:\n${lines(f.recipients)}\n`);
    const drift = recipientsDrift(ctx.root, env);
    if (drift) ctx.reporter.warn(drift);
    return 0;
  }
  if (!['add', 'remove', 'sync'].includes(action)) {
    const near = didYouMean(action, ['add', 'remove', 'sync']);
    throw new UsageError(`unknown action "${action}"${near ? ` (did you mean "${near}"?)` : ''}`, 'use add, remove or sync');
  }
  const recipient = ctx.args[2];
  if (action !== 'sync' && !recipient) throw new UsageError(`"secrets recipients ${env} ${action}" needs a recipient: an age public key (age1...) or an SSH public key in quotes ('ssh-ed25519 AAAA...')`);
  if (action === 'sync' && recipient) throw new UsageError('"sync" takes no recipient: it uses .sops.yaml');
  const force = ctx.values.force === true;
  const open = { ...(await openWith(ctx, env)), signal };
  if (action === 'sync') {
    const changes = await syncRecipients(ctx.root, env, open, force);
    for (const c of changes) {
      const what = [c.added.length ? `added ${c.added.join(', ')}` : '', c.removed.length ? `removed ${c.removed.join(', ')} (new data key)` : ''].filter(Boolean).join('; ');
      ctx.reporter.info(`${show(ctx.root, c.file)}: ${c.written ? what : 'already in sync'}`);
    }
    if (!changes.length) ctx.reporter.info(`environments/${env} has no sops-encrypted files yet`);
    return 0;
  }
  if (action === 'add') {
    for (const c of await addRecipient(ctx.root, env, recipient!, open)) ctx.reporter.info(`${show(ctx.root, c.file)}: ${c.written ? `added ${recipient}` : `${recipient} was already a recipient`}`);
    ctx.reporter.info(`.sops.yaml: ${env}'s rule lists ${recipient}`);
    return 0;
  }
  const removed = await removeRecipient(ctx.root, env, recipient!, open, force);
  for (const c of removed.files) ctx.reporter.info(`${show(ctx.root, c.file)}: removed ${recipient}; new data key for ${c.recipients.join(', ')}`);
  if (removed.fromRule) ctx.reporter.info(`.sops.yaml: ${recipient} removed from ${env}'s rule`);
  ctx.reporter.warn('the removed key can still open old copies of these files (git history): change the secrets themselves if it leaked');
  return 0;
}

export const commands: Command[] = [
  command({
    name: 'secrets decrypt',
    project: 'optional',
    summary: 'print the plaintext of a sops-encrypted file (verifies its MAC)',
    args: ['<file>'],
    pathArgs: [0],
    help: `Decrypts with your age identities: $SOPS_AGE_KEY, $SOPS_AGE_KEY_FILE, $SOPS_AGE_KEY_CMD and ${defaultKeyFile()}.
The file's MAC is verified as sops does: a changed, deleted or reordered value is refused.`,
    async run(ctx) {
      const { SecretsFile } = await import('../../core/secrets/sops.ts');
      const file = ctx.args[0]!; // absolute: the CLI resolves it
      const secrets = await SecretsFile.open(file, { identities: await identitiesFor(ctx, ctx.inProject ? envOfPath(ctx.root, file) : undefined), mask: (v) => ctx.reporter.mask(v), allow: (k) => ctx.reporter.allow?.(k) });
      ctx.stdout.write(secrets.plaintext());
      return 0;
    },
  }),
  command({
    name: 'secrets show',
    summary: "print an environment's secrets in plaintext (all of them, or one key)",
    args: ['<env>'],
    options: { key: { type: 'string', value: 'PATH', what: 'a key path', emptyHint: 'give the key (a.b for a nested one): an unset variable, as in --key "$VAR"? (leaving --key out prints every secret)', description: 'print only this value, exactly (no newline added unless stdout is a terminal: `show --key a | set b` copies it unchanged; a.b for nested keys; "a.b" in double quotes for one key holding dots); a binary value (!!binary) as its bytes' } },
    async run(ctx) {
      const { secretsPath } = await import('../../core/secrets/env.ts');
      const { SecretsFile } = await import('../../core/secrets/sops.ts');
      const { printTree, toYaml } = await import('../../core/secrets/tree-print.ts');
      const { getEntry, mapKeysAt, splitKeyPath } = await import('../../core/secrets/tree.ts');
      const env = validate('environment', ctx.args[0]!);
      const { requireEnvironment } = await import('../../core/secrets/files.ts');
      requireEnvironment(ctx.root, env); // an unknown name: the environments there, never `edit <typo>` (which would create it)
      // a malformed key path is refused before anything is read (no key needed to say so), as set and unset refuse it
      if (ctx.values.key) splitKeyPath(ctx.values.key, () => [], { show: { env } });
      const file = secretsPath(ctx.root, env);
      if (!userFileExists(file, show(ctx.root, file))) {
        const { otherSopsFilesRefusal } = await import('../../core/secrets/env.ts');
        throw otherSopsFilesRefusal(ctx.root, env, 'nothing shown') ?? new OpsError(`environments/${env} has no secrets file (${show(ctx.root, file)})`, `create it with \`ops secrets edit ${env}\` or \`ops secrets set ${env} <key>\``);
      }
      const secrets = await SecretsFile.open(file, await openWith(ctx, env));
      const key = ctx.values.key;
      if (!key) {
        ctx.stdout.write(secrets.plaintext());
        return 0;
      }
      ctx.reporter.allow?.(key); // typed on the command line: no secret, whole in messages
      const parts = splitKeyPath(key, (p) => mapKeysAt(secrets.tree, p), { show: { env } });
      const { node, found } = findKey(secrets.tree, parts, getEntry);
      if (!node) throw await noKey(secrets, env, show(ctx.root, file), key, parts, found);
      // One value exactly as stored, as `sops decrypt --extract` hands it on (a binary value: its bytes): no newline
      // added, so that `show --key a | set b` copies it unchanged. On a terminal only, a newline ends a value that
      // has none, so that the prompt starts on a line of its own (nothing reads the value there).
      const tty = (ctx.stdout as NodeJS.WriteStream).isTTY === true;
      const exact = (v: string | Uint8Array) => {
        ctx.stdout.write(v);
        const last = typeof v === 'string' ? v.at(-1) : v.length ? String.fromCharCode(v[v.length - 1]!) : undefined;
        if (tty && last !== '\n') ctx.stdout.write('\n');
      };
      if (node.kind === 'scalar' && node.bytes) exact(node.bytes);
      // a float as the .env gives it to the app, as sops gives it in text (2.0, +Inf, -0.0, 1E-07: goFloatText), not JavaScript's
      else if (node.kind === 'scalar') exact(node.type === 'float' ? goFloatText(node.value as number) : String(node.value));
      else if (node.kind === 'null') exact('null');
      else ctx.stdout.write(node.kind === 'map' ? printTree(node, secrets.format) : toYaml({ kind: 'map', entries: [[key, node]] }));
      return 0;
    },
  }),
  command({
    name: 'secrets edit',
    summary: "edit an environment's secrets in $VISUAL (else $EDITOR); they are re-encrypted on save",
    args: ['<env>'],
    options: { force: { type: 'boolean', description: 'create the secrets file even when none of its .sops.yaml recipients is a key of yours (an age key from $SOPS_AGE_KEY, its file, the default key file, or an SSH key where sops looks): you could not decrypt it' } },
    help: `The plaintext goes to a private temporary file (mode 0600, in a 0700 directory) that is removed afterwards, whatever happens:
in memory (/dev/shm) where the machine has it, so that ops killed outright (kill -9) leaves no plaintext on a disk;
else in the temporary directory, said so. A copy left by an edit killed outright is removed by the next edit, said
so (only your own, and only once the edit that made it is gone: never the copy of an edit still open).
Values you did not change keep their ciphertext; an unchanged file is not rewritten.
Text that is not valid YAML is offered back to the editor (answer n to drop the edit), and so is a value typed
without quotes that sops would store in another form (01234 is an octal number to sops): quote it to keep it as typed.
So is a value YAML reads otherwise than typed, named by key and line: one starting with ! (a tag), * (an alias),
& (an anchor), # (a comment), a plain value holding " #" (cut short there), !!binary text that is not base64, and,
over a value that held text, {...} or [...] (a map or a list) or null/~ (no value): quote it (password: "!x").
A new key (or one that held a map, a list or nothing) may be given [a, b], {k: v} or null: stored as a list, a map
or nothing, said so, and named by that key only (never the text inside the brackets, which may be a value).
Slips that are still valid YAML are offered back too: a new key whose name holds a quote, ": " or a space
between words (database_url "CHANGE-ME: x" makes all before its ": " one key; a value typed into a key would be
stored in clear text), named up to the slip: write a key named so on purpose in double quotes ("api token": ...).
And a map or list that became one value (a line under passwords: typed without its ": " makes the whole map that
one text), named with how many keys or items it held: to replace one with a single value on purpose, use
ops secrets set <env> <key> --replace.
When the file changed on disk while the editor was open (another command), the keys changed meanwhile are named and
the editor is offered again on your text (up to 3 times); declined, or with no answer, your edit is kept aside,
encrypted, as environments/<env>/secrets.unsaved-edit-<UTC time>.sops.yaml (mode 0600), and the message says how to merge it;
so is your text when you abort in such a reopened round (unless it is the file's as it is now).
An emptied text (nothing but blank lines or comments) drops the edit: nothing is changed.
A new or changed value the environment's .env carries that its readers (dotenv.readers) would not read back
exactly is offered back too (every deploy would refuse it), named by variable and reader, never by value; and so
is a placeholder (CHANGE-ME), a packages secret provision would not write, and a key "<<" holding a value.
A new or changed value that is weak (fewer than 8 characters, or a common word or number) is saved with a
warning naming its key: it is masked wherever it appears in the logs, making them hard to read.
A secrets file created by edit (the environment had none) encrypted to none of your own age keys is refused before the
editor opens, unless --force, as ops secrets encrypt refuses it.
With stdin not a terminal (CI, a pipe), an editor that needs a terminal (vi, the default with no $EDITOR or
$VISUAL set; vim, nvim, nano, emacs without a display or with -nw, micro, hx...: it would wait forever for keys) is
refused before anything is decrypted; any other editor is run whatever stdin is (code --wait, subl -w, a script).
A GUI editor that returns before its window is closed (code, subl, gvim without --wait, -w or -f; emacsclient -n)
is refused before anything is decrypted, naming the flag that makes it wait.`,
    run: (ctx) =>
      exitOnInterrupt(ctx, async () => {
        const { editSecrets } = await import('../../core/secrets/edit.ts');
        const { openEnvSecrets, requireEnvironment } = await import('../../core/secrets/files.ts');
        const { secretsChangeCheck } = await import('../../core/ops/secrets.ts');
        const env = validate('environment', ctx.args[0]!);
        // a mistyped name first: fixing the editor would only lead to "no environment" (the name is never created here)
        requireEnvironment(ctx.root, env);
        // A terminal editor (vi, the default; vim, nano...) reads its keys from stdin, which it shares with ops: on a
        // stdin that is no terminal (CI, a pipe) it waits forever for keys that never come. Refused before anything is
        // decrypted. Any other editor is run whatever stdin is: a GUI one (code --wait) or a script needs no terminal.
        // TERM is not looked at: git refuses its default editor on TERM=dumb (Emacs's shell buffer), where vi is
        // awkward but still ends on :q; what hangs is no terminal at all.
        const chosen = chosenEditor(ctx.processEnv);
        const needsTerminal = terminalEditor(chosen?.command ?? 'vi', ctx.processEnv);
        if (needsTerminal && !(ctx.stdin as NodeJS.ReadStream).isTTY) {
          const set = `set one value: printf '%s' "$VALUE" | ops secrets set ${env} <key>`;
          if (!chosen)
            throw new InputError(
              'no $EDITOR or $VISUAL is set and stdin is not a terminal: vi, the default editor, would wait forever for keys; nothing was changed',
              `run it in a terminal, or set EDITOR to an editor that needs none (EDITOR='code --wait'), or ${set}`,
            );
          // npm (`npm run ops`, npx) sets EDITOR=vi, its default, for a script when the user set no EDITOR or VISUAL
          // (npm 11; one the user set is passed on): not said to be the user's choice
          if (npmDefaultEditor(ctx.processEnv))
            throw new InputError(
              '$EDITOR is vi, npm\'s default editor (npm sets it when you set no EDITOR or VISUAL), which needs a terminal, and stdin is not a terminal (CI, a pipe): it would wait forever for keys; nothing was changed',
              `run it in a terminal, or choose an editor that needs none, which npm passes on: EDITOR='code --wait' npx ops secrets edit ${env} (or set VISUAL), or ${set}`,
            );
          throw new InputError(
            `$${chosen.variable} is ${needsTerminal}, an editor that needs a terminal, and stdin is not a terminal (CI, a pipe): it would wait forever for keys; nothing was changed`,
            `run it in a terminal, or use a GUI editor that waits for its window to close (${chosen.variable}='code --wait', 'subl -w'), or ${set}`,
          );
        }
        // An editor that hands the file to a window and returns (code without --wait): ops would find no change and
        // remove the file while it is being typed into. Refused before anything is decrypted.
        const forking = returnsAtOnce(chosen?.command ?? 'vi');
        if (chosen && forking)
          throw new InputError(
            `$${chosen.variable} is ${forking.program}, which returns at once without waiting for the file to be closed: ops would find nothing changed and remove the decrypted file while you edit it, your changes lost; nothing was changed`,
            `make it wait: ${chosen.variable}='${forking.fix}'`,
          );
        const abort = signalsAbort();
        // the signal reaches the file's save too: a Ctrl-C while it waits for the lock ends the wait, nothing written
        const { secrets, created } = await openEnvSecrets(ctx.root, env, { ...(await openWith(ctx, env)), signal: abort.signal }, { redo: `ops secrets edit ${env}`, force: ctx.values.force === true });
        abort.listen();
        const io: EditIo = {
          edit: (file) => runEditor(file, ctx.processEnv, abort.signal),
          confirm: (q) => confirm(ctx, q, abort.signal),
          warn: (m) => ctx.reporter.warn(m),
          check: await secretsChangeCheck(ctx.root, env, (m) => ctx.reporter.warn(m), 'edit'),
          signal: abort.signal,
        };
        try {
          const result = await editSecrets(secrets, io);
          const file = show(ctx.root, secrets.file);
          if (result.status === 'unchanged') ctx.reporter.info(`${file}: no changes${created ? ' (nothing written)' : ''}`);
          else if (result.status === 'saved') {
            // the keys named are no secrets (a value typed may occur in a new key's name)
            for (const k of [...result.changes.added, ...result.changes.changed, ...result.changes.removed]) ctx.reporter.allow?.(k);
            ctx.reporter.info(`${file}: ${created ? 'created' : 'updated'} (${changeSummary(result.changes)})`);
            await warnRecipientsDrift(ctx, env);
          } else {
            ctx.reporter.error(`${file}: ${result.reason}`);
            return abort.signal.aborted ? signalExit(String(abort.signal.reason)) : 1;
          }
          return 0;
        } finally {
          abort.stop();
        }
      }),
  }),
  command({
    name: 'secrets encrypt',
    summary: 'encrypt a plain YAML/JSON file in place (e.g. environments/<env>/assets/initdata.yml) to its .sops.yaml recipients',
    args: ['<file>'],
    pathArgs: [0],
    options: { force: { type: 'boolean', description: 'encrypt even when none of the recipients is a key of yours (an age key from $SOPS_AGE_KEY, its file, the default key file, or an SSH key where sops looks): you can no longer decrypt the file' } },
    help: `The recipients are those of the .sops.yaml rule for the file's path. When none of them is one of your own age keys
(you could no longer decrypt the file), it is refused, nothing changed, unless --force: add a key of yours to the rule first.`,
    run: (ctx) =>
      interruptible(ctx, async (signal) => {
        const { encryptInPlace } = await import('../../core/secrets/files.ts');
        const file = ctx.args[0]!; // absolute: the CLI resolves it
        const env = envOfPath(ctx.root, file);
        const lockout = { identities: await identitiesFor(ctx, env), ...(env && { env }), force: ctx.values.force === true };
        const secrets = await encryptInPlace(ctx.root, file, { shown: show(ctx.root, file), typed: fromHere(ctx.cwd, file), warn: (m) => ctx.reporter.warn(m), signal, lockout });
        ctx.reporter.info(`${show(ctx.root, file)}: encrypted to ${secrets.recipients.length} recipient(s)`);
        const plain = secrets.plaintextPaths(); // left in clear by the file's sops rules (`password_unencrypted`): said
        if (plain.length) ctx.reporter.warn(secrets.plaintextWarning(show(ctx.root, file), plain));
        return 0;
      }),
  }),
  command({
    name: 'secrets set',
    summary: 'set one secret from stdin (never from the command line), creating nested keys',
    args: ['<env>', '<key>'],
    options: {
      replace: { type: 'boolean', description: 'replace a map (all the secrets nested under the key) with this one value' },
      empty: { type: 'boolean', description: 'set the empty value (stdin is not read; a value piped in is refused, not dropped): an empty stdin is refused, as a value lost on the way' },
      exact: { type: 'boolean', description: 'take stdin byte for byte: no final newline dropped (a one-line value that ends in a newline)' },
      force: { type: 'boolean', description: 'create the secrets file even when none of its .sops.yaml recipients is a key of yours (an age key from $SOPS_AGE_KEY, its file, the default key file, or an SSH key where sops looks): you could not decrypt it' },
    },
    help: `The value is read from stdin, exactly as given, except that a one-line value loses the one newline
ending it (what echo and a one-line file add); a value of several lines is kept as it is, its final newline
included (a PEM key, a certificate). A byte order mark at its start (Notepad's) is dropped, said; Windows
line ends (CRLF) in a value of several lines are kept, with a warning:
  printf '%s' "$DATABASE_URL" | ops secrets set prod database_url
  ops secrets set prod datapass.client_secret < secret.txt
  ops secrets set prod tls.key < server.key
With --exact stdin is taken byte for byte, nothing dropped (a one-line value that ends in a newline):
  printf 'line\n' | ops secrets set prod motd --exact
At a terminal (nothing piped in), the value is typed on one line, not shown, and Enter ends it (Ctrl-C
changes nothing); a value of several lines is given from a file instead (< FILE).
An empty stdin is refused (a value lost on the way), and so is a directory (< DIR: give the file in it); to
store an empty value, give --empty:
  ops secrets set prod smtp.password --empty
(--empty with a value piped in, or with --exact, is refused: say which value you mean.)
A value typed into the key (api_token=..., 'api_token: ...', api_token:..., 'api_token ...') is refused before stdin is read, what
follows the key never shown (sops keeps key names in clear text); a key holding = or a space goes in double quotes.
The key path is split at dots; an existing key holding dots is found as written (passwords.admin@example.org).
A key in double quotes is one key, dots included: ops secrets set prod 'passwords."new@example.org"'.
New keys nest at dots where that is no guess (datapass.client_id); a new key with dots under an existing
map, or three or more new levels, is refused as ambiguous: quote it as one key ('passwords."a.b"'), or
quote each part to nest ('"mail"."smtp"."host"').
A key holding a map (passwords) is not replaced by one value unless --replace is given: set one of its keys
instead (passwords.admin@example.org). Key paths do not index lists (list[0] is refused; a key holding [ or ]
goes in double quotes): a list is replaced whole with --replace, its items changed with ops secrets edit.
A weak value (fewer than 8 characters, or a common word or number) is stored with a warning: it is masked
wherever it appears in the logs (one of 1 or 2 characters is too short to be masked at all).
A value the environment's .env carries (an env entry names its key) that its readers (dotenv.readers) would not
read back exactly is refused, nothing written, as every deploy would refuse it (README: "The .env: which values
each reader can carry"); so are a placeholder (a value starting with CHANGE-ME: every deploy refuses it) and a
packages.pip_index_url or npm_token secret provision would not write (README: "Secrets").
A secrets file created by set (the environment had none) encrypted to none of your own age keys (the .sops.yaml rule
lists none of them) is refused, nothing written, unless --force, as ops secrets encrypt refuses it.`,
    run: (ctx) =>
      exitOnInterrupt(ctx, async () => {
        const { openEnvSecrets } = await import('../../core/secrets/files.ts');
        const { getEntry, mapKeysAt, quotePart, showPath, splitKeyPath, str } = await import('../../core/secrets/tree.ts');
        const env = validate('environment', ctx.args[0]!);
        const key = ctx.args[1]!;
        await refuseValueAsKey(key, env, 'set');
        splitKeyPath(key, () => [], { set: { env } }); // a malformed path is refused before stdin is read
        // so is an unknown environment: nothing read, nor warned about, for a file that will not be written
        const { requireEnvironment } = await import('../../core/secrets/files.ts');
        requireEnvironment(ctx.root, env);
        // a flag that drops an input is refused, never obeyed silently: which value was meant is for the user to say
        if (ctx.values.empty && ctx.values.exact) throw new UsageError('--empty and --exact cannot be given together: --empty stores an empty value without reading stdin, --exact says how stdin is read', `give one: --empty for an empty value, or --exact to take the piped value byte for byte`);
        if (ctx.values.empty && (await pipedInput(ctx.stdin)))
          throw new UsageError(
            `--empty stores an empty value without reading stdin, but a value was piped in for ${key}; nothing was changed`,
            `to store the piped value, drop --empty: ... | ops secrets set ${env} ${quote(key)}; to store an empty value, give --empty with nothing piped (< /dev/null)`,
          );
        // a signal (Ctrl-C, a kill) while the value is read or the file's lock waited for: nothing written, said (exitOnInterrupt)
        const abort = signalsAbort();
        abort.listen();
        try {
          const value = ctx.values.empty ? '' : await valueFromStdin(ctx, env, key, ctx.values.exact === true, abort.signal);
          // a weak value is named before it is masked, so that the warning reads whole (it never holds the value)
          const { weakParts, weakSecretWarning } = await import('../../core/secrets/weak.ts');
          const weak = weakParts(value);
          if (weak.length) ctx.reporter.warn(weakSecretWarning(own`secret "${keyName(key)}"`, weak));
          // the key as typed names no secret (argv), nor do its parts: a value inside them leaves them whole in messages
          for (const k of [key, ...splitKeyPath(key, () => [], { set: { env } })]) ctx.reporter.allow?.(k);
          if (value) ctx.reporter.mask(value);
          // Read, change, write; written only over the version read (SecretsFile.save): when another command wrote the
          // file meanwhile (sets run at once), this one reads it again and sets its key on that, never dropping the other's.
          const { retryOnChange } = await import('../../core/secrets/atomic.ts');
          const open = { ...(await openWith(ctx, env)), signal: abort.signal };
          return await retryOnChange(`ops secrets set ${env} ${quote(key)}`, async () => {
            const { secrets, created } = await openEnvSecrets(ctx.root, env, open, { redo: `ops secrets set ${env} ${quote(key)}`, force: ctx.values.force === true });
            const path = splitKeyPath(key, (p) => mapKeysAt(secrets.tree, p), { creating: true, set: { env } });
            ctx.reporter.allow?.(path.join('.'));
            let existing: TreeNode | undefined = secrets.tree;
            for (const k of path) existing = existing?.kind === 'map' ? getEntry(existing, k) : undefined;
            // a new key holding U+FFFD: what bytes of the command line that are not UTF-8 became (a latin1 terminal)
            if (!existing && key.includes('\uFFFD'))
              throw new InputError(`the key ${key} holds U+FFFD (\uFFFD), which is what bytes that are not UTF-8 (a terminal set to latin1) become: it would be created with another name than typed; nothing was changed`, 'type the key in UTF-8 (set the terminal to UTF-8), or create it with ops secrets edit');
            if (existing?.kind === 'list' && !ctx.values.replace) {
              const n = existing.items.length;
              throw new InputError(
                `${path.join('.')} is a list of ${n} item${n === 1 ? '' : 's'}: setting it to one value would replace the whole list; nothing was changed`,
                `key paths do not index lists: change its items with \`ops secrets edit ${env}\`, or give --replace to replace the whole list with this value`,
              );
            }
            if (existing?.kind === 'map' && !ctx.values.replace) {
              const lost = leafPaths(existing, path);
              throw new InputError(
                `${path.join('.')} is a ${existing.kind} holding ${lost.length} secret${lost.length === 1 ? '' : 's'} (${lost.join(', ') || 'none'}): setting it to one value would delete ${lost.length === 1 ? 'it' : 'them'}; nothing was changed`,
                `set one key under it (ops secrets set ${env} '${path.map(quotePart).join('.')}.<key>'), or give --replace to replace the whole map with this value`,
              );
            }
            const before = secrets.data;
            secrets.set(path, str(value));
            // a value every deploy of env would refuse (its .env readers would not read it back) is refused now, unwritten
            const { secretsChangeCheck } = await import('../../core/ops/secrets.ts');
            (await secretsChangeCheck(ctx.root, env, (m) => ctx.reporter.warn(m), 'set'))(before, secrets.data);
            const written = await secrets.save();
            ctx.reporter.info(`${show(ctx.root, secrets.file)}: ${written ? (created ? own`created with` : own`set`) : own`unchanged,`} ${keyName(path.join('.'))}`);
            if (written) await warnRecipientsDrift(ctx, env);
            // A new key nothing reads (DATABASE_URL for database_url): stored, but said, as no deploy would send it.
            if (!existing) {
              const { unreadSecretWarning } = await import('../../core/ops/secrets.ts');
              const { readEnvironmentConfig } = await import('../../core/config/environment.ts');
              let unread: string | undefined;
              try {
                unread = unreadSecretWarning({ name: env, config: readEnvironmentConfig(env, ctx.root).config }, secrets.data, path, (name) => ctx.reporter.allow?.(name));
              } catch (e) {
                if (!(e instanceof OpsError)) throw e; // an environment.yml that cannot be read: the change check said so
              }
              if (unread) ctx.reporter.warn(unread);
            }
            // sops leaves some keys unencrypted by the file's rules (`x_unencrypted`): said, never silently in clear text
            const shown = showPath(path);
            const plain = secrets.plaintextPaths().filter((p) => p === shown || p.startsWith(`${shown}.`) || p.startsWith(`${shown}[`));
            if (plain.length) ctx.reporter.warn(secrets.plaintextWarning(show(ctx.root, secrets.file), plain));
            return 0;
          });
        } finally {
          abort.stop();
        }
      }),
  }),
  command({
    name: 'secrets unset',
    summary: 'remove one secret (a CHANGE-ME placeholder nothing reads, a key no longer used), without an editor',
    args: ['<env>', '<key>'],
    options: {
      recursive: { type: 'boolean', description: 'remove a map with all the secrets nested under the key' },
    },
    help: `The key path is read as ops secrets set reads it (a.b for a nested key, "a.b" in double quotes for one key
holding dots); the maps holding the key stay. A key holding a map (passwords) is not removed with all it holds unless
--recursive is given: remove one of its keys instead (passwords.admin@example.org).
A secret the environment's .env takes (an env entry names it) or a packages setting reads is refused, nothing
written, as every deploy would refuse its absence: take that entry out of environment.yml first.
A key the file does not hold: nothing to do, exit 0 (the secret is not there, as asked), with a warning naming the
closest key, in case of a typo.
  ops secrets unset prod datapass_client_secret
  ops secrets unset prod 'passwords."admin@example.org"'`,
    run: (ctx) =>
      interruptible(ctx, async (signal) => {
        const { otherSopsFilesRefusal, secretsPath } = await import('../../core/secrets/env.ts');
        const { openEnvSecrets, requireEnvironment } = await import('../../core/secrets/files.ts');
        const { getEntry, mapKeysAt, showPath, splitKeyPath } = await import('../../core/secrets/tree.ts');
        const { retryOnChange } = await import('../../core/secrets/atomic.ts');
        const env = validate('environment', ctx.args[0]!);
        const key = ctx.args[1]!;
        await refuseValueAsKey(key, env, 'unset');
        splitKeyPath(key, () => [], { unset: { env } }); // a malformed path is refused before anything is read
        requireEnvironment(ctx.root, env);
        const file = secretsPath(ctx.root, env);
        // no file: the key is not there, as a key missing from one (exit 0: what was asked holds, README "Exit status")
        if (!userFileExists(file, show(ctx.root, file))) {
          // unless the secrets are in a sops file under another name, which ops does not read: said, not "nothing to do"
          const other = otherSopsFilesRefusal(ctx.root, env, 'nothing was written');
          if (other) throw other;
          ctx.reporter.warn(`environments/${env} has no secrets file (${show(ctx.root, file)}): no key ${key} to remove, nothing changed`);
          return 0;
        }
        // the key as typed names no secret (argv), nor do its parts
        for (const k of [key, ...splitKeyPath(key, () => [])]) ctx.reporter.allow?.(k);
        const redo = `ops secrets unset ${env} ${quote(key)}`;
        const open = { ...(await openWith(ctx, env)), signal };
        return await retryOnChange(redo, async () => {
          const { secrets } = await openEnvSecrets(ctx.root, env, open, { redo });
          const path = splitKeyPath(key, (p) => mapKeysAt(secrets.tree, p), { unset: { env } });
          ctx.reporter.allow?.(path.join('.'));
          const { node, found } = findKey(secrets.tree, path, getEntry);
          if (!node) {
            const missing = await noKey(secrets, env, show(ctx.root, file), key, path, found);
            ctx.reporter.warn(`${missing.message}: nothing to remove, nothing changed${missing.hint ? ` (${missing.hint})` : ''}`);
            return 0;
          }
          if (node.kind === 'map' && node.entries.length && !ctx.values.recursive) {
            const held = leafPaths(node, path);
            throw new InputError(
              `${path.join('.')} is a map holding ${held.length} secret${held.length === 1 ? '' : 's'} (${held.join(', ') || 'none'}): removing it would remove ${held.length === 1 ? 'it' : 'them all'}; nothing was changed`,
              `remove one key under it (ops secrets unset ${env} '${path.map((k) => (k.includes('.') ? `"${k}"` : k)).join('.')}.<key>'), or give --recursive to remove the whole map`,
            );
          }
          const before = secrets.data;
          secrets.unset(path);
          // a secret a deploy needs (its .env takes it, a packages setting reads it) is refused now, unwritten
          const { secretsChangeCheck } = await import('../../core/ops/secrets.ts');
          (await secretsChangeCheck(ctx.root, env, (m) => ctx.reporter.warn(m), 'set'))(before, secrets.data);
          await secrets.save();
          ctx.reporter.info(`${show(ctx.root, secrets.file)}: ${own`removed`} ${keyName(showPath(path))}`);
          await warnRecipientsDrift(ctx, env);
          return 0;
        });
      }),
  }),
  command({
    name: 'secrets rotate',
    summary: "give an environment's sops files a new data key (values kept, all re-encrypted)",
    args: ['<env>'],
    run: (ctx) =>
      interruptible(ctx, async (signal) => {
        const { recipientsDrift, rotateDataKeys } = await import('../../core/secrets/recipients.ts');
        const { requireEnvironment } = await import('../../core/secrets/files.ts');
        const env = validate('environment', ctx.args[0]!);
        requireEnvironment(ctx.root, env);
        for (const f of await rotateDataKeys(ctx.root, env, { ...(await openWith(ctx, env)), signal })) {
          ctx.reporter.info(`${show(ctx.root, f.file)}: new data key, for ${f.recipients.length} recipient${f.recipients.length > 1 ? 's' : ''}`);
        }
        // a key taken out of .sops.yaml is not revoked by a rotate (each file keeps its recipients, as in sops): said
        const drift = recipientsDrift(ctx.root, env);
        if (drift) ctx.reporter.warn(`${drift}; a rotate keeps each file's recipients`);
        return 0;
      }),
  }),
  command({
    name: 'secrets recipients',
    summary: "list, add or remove who can decrypt an environment's secrets, or sync them from .sops.yaml",
    args: ['<env>', '[add|remove|sync]', '[recipient]'],
    options: { force: { type: 'boolean', description: 'remove or sync away even the last of your own keys (age keys from $SOPS_AGE_KEY, its file, the default key file; SSH keys where sops looks) that a file is encrypted to: you can no longer decrypt it' } },
    help: `  ops secrets recipients prod                    list the recipients (file and .sops.yaml)
  ops secrets recipients prod add age1...        add one to .sops.yaml and to every sops file of prod
  ops secrets recipients prod remove age1...     remove one, and rotate the data key (the removed key
                                                 may have kept the old one)
  ops secrets recipients prod sync               make the files' recipients those of .sops.yaml
                                                 (like sops updatekeys; rotates if one is removed)
A recipient is an age public key (age1...) or an SSH public key line in quotes ('ssh-ed25519 AAAA...',
'ssh-rsa AAAA...'), which sops and ops decrypt with that SSH private key.
Files: environments/<env>/secrets.sops.yaml and sops-encrypted files in environments/<env>/assets/.
A remove or sync that would take away the last of your own keys a file is encrypted to (you could no longer
decrypt it) is refused, nothing changed, unless --force: add another key of yours first.
Interrupted (Ctrl-C, SIGTERM) while the files are written, it stops before the next one and names those already
written and those not (each file is written whole); run it again to finish.`,
    run: (ctx) => interruptible(ctx, (signal) => recipients(ctx, signal)),
  }),  command({
    name: 'keygen',
    project: 'optional',
    summary: 'make a new age identity: prints the private key once, and its public key (recipient)',
    options: { output: { type: 'string', short: 'o', value: 'FILE', path: true, description: 'write the key to FILE (mode 0600, never overwritten) instead of printing it' } },
    async run(ctx) {
      const { generateIdentity } = await import('../../core/secrets/keys.ts');
      const out = ctx.values.output;
      if (!out && discardsOutput(ctx.stdout)) throw new OpsError('stdout is /dev/null: the new private key, printed once, would be lost', 'run it with stdout to a terminal or a file you keep, or write the key to a file: ops keygen -o FILE');
      // a directory given for the file: its EEXIST (the write never overwrites) said "already exists"
      if (out && isDirectory(out)) throw new InputError(`cannot write ${out}: it is a directory; -o takes the path of the key file to create`, `give a file path: ops keygen -o ${join(out, 'age-key.txt')}`);
      const id = await generateIdentity();
      if (out) {
        const path = out; // absolute: the CLI resolves it
        try {
          await writeFile(path, id.keyFile, { mode: 0o600, flag: 'wx' });
        } catch (e) {
          const err = fileError(e, path, 'write', 'a key file');
          throw (e as NodeJS.ErrnoException).code === 'EEXIST' ? new OpsError(err.message, 'choose another file: keys are never overwritten') : err;
        }
        ctx.stdout.write(`${id.recipient}\n`);
        ctx.stderr.write(`private key written to ${path}; public key (recipient) above\n`);
        const inProject = relative(ctx.root, path);
        if (ctx.inProject && !inProject.startsWith('..') && !isAbsolute(inProject))
          ctx.reporter.warn(`${path} is inside the project (${ctx.root}): never commit it; move it out (e.g. to ${defaultKeyFile(ctx.processEnv)}) or add it to .gitignore`);
        return 0;
      }
      // synchronously, said when it fails (stdout full or gone): a key nobody saw is no key
      const failed = writeToKeep(id.keyFile, ctx.stdout);
      if (failed) throw new OpsError(`cannot print the new private key to stdout (${failed}): it is not kept anywhere; nothing was changed`, 'run it again with stdout to a terminal or a file you keep, or write the key to a file: ops keygen -o FILE');
      ctx.stderr.write(
        `This private key is shown once: store it (password manager; ${defaultKeyFile(ctx.processEnv)} or $SOPS_AGE_KEY_FILE; the SOPS_AGE_KEY secret in CI).\n` +
          `Give the public key to whoever adds you: ops secrets recipients <env> add ${id.recipient}\n`,
      );
      return 0;
    },
  }),
  command({
    name: 'secretkey',
    project: 'optional',
    summary: 'print a new random secret_key (86 URL-safe characters)',
    async run(ctx) {
      const { generateSecretKey } = await import('../../core/secrets/env.ts');
      ctx.stdout.write(`${generateSecretKey()}\n`);
      return 0;
    },
  }),
  command({
    name: 'apikey',
    project: 'optional',
    summary: 'print a new random API key (43 URL-safe characters)',
    async run(ctx) {
      const { generateApiKey } = await import('../../core/secrets/env.ts');
      ctx.stdout.write(`${generateApiKey()}\n`);
      return 0;
    },
  })

];
