// The secrets commands at a real terminal (a pseudo-terminal driven by test/support/on_terminal.py, the `ops` binary as a
// person runs it): a value typed for `ops secrets set` is never shown, and the terminal is left as it was found.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { type Env, OPS, PTY, type Step, cli, editor, newEnv, onTerminal, open, tempDir } from './secrets.helpers.ts';

/**
 * `ops secrets set qa typed_key` on a new terminal in a new project, `steps` typed, for a run that must change nothing:
 * nothing typed (every value here starts Zq8-) shown, the terminal echoing again afterwards, the secrets file as it was.
 */
async function setChangingNothing(steps: Step[]): Promise<{ out: string; exit: number }> {
  const e = await newEnv();
  const before = readFileSync(e.secrets, 'utf8');
  const t = await onTerminal(e, 'node "$OPS" secrets set qa typed_key', steps);
  expect(t.out).not.toContain('Zq8-');
  expect(t.echo, t.out).toBe(true);
  expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  return t;
}

/** The same for a run that stores `stored`: nothing typed shown, exit 0, the terminal echoing again afterwards. */
async function setStoring(steps: Step[], stored: string): Promise<{ out: string; exit: number }> {
  const e = await newEnv();
  const t = await onTerminal(e, 'node "$OPS" secrets set qa typed_key', steps);
  expect(t.out).not.toContain('Zq8-');
  expect(t.exit, t.out).toBe(0);
  expect(t.echo, t.out).toBe(true);
  expect((await open(e)).data).toMatchObject({ typed_key: stored });
  return t;
}

describe('ops secrets set at a terminal: the value typed is not shown', () => {
  it('typed and Enter: stored, never on the screen, the terminal echoing again afterwards; backspace edits it', async () => {
    const t = await setStoring([['value for typed_key', 'Zq8-typed-secreX\x7ft\r']], 'Zq8-typed-secret');
    expect(t.out).toContain('value for typed_key');
  }, 180_000);

  it('Ctrl-Z, then fg (SIGCONT): the same value is read on, still not shown, and stored; the terminal echoing again afterwards', async () => {
    const t = await setStoring(
      [
        ['value for typed_key', 'Zq8-before-stop'],
        ['', '\x1a'],
        ['', { signal: 'SIGCONT' }],
        ['', '-after-cont\r'],
      ],
      'Zq8-before-stop-after-cont',
    );
    expect(t.out).not.toContain('after-cont');
  }, 180_000);

  it('Ctrl-C: exit 130, "interrupted; nothing was changed", the terminal echoing again, the file untouched', async () => {
    const t = await setChangingNothing([['value for typed_key', 'Zq8-half-typed\x03']]);
    expect(t.out).toContain('error: interrupted; nothing was changed');
    expect(t.exit, t.out).toBe(130);
  }, 180_000);

  it('a signal from outside while the value is typed: the terminal echoes again, nothing changed', async () => {
    const t = await setChangingNothing([
      ['value for typed_key', 'Zq8-half-typed'],
      ['', { signal: 'SIGTERM' }],
    ]);
    expect(t.out).toContain('interrupted by SIGTERM; nothing was changed');
    expect(t.exit, t.out).toBe(143);
  }, 180_000);

  it('a paste of several lines is refused, not cut to its first line; nothing shown or changed', async () => {
    const t = await setChangingNothing([['value for typed_key', 'Zq8-line-one\rZq8-line-two\r']]);
    expect(t.out).toContain('several lines');
    expect(t.out).toContain('ops secrets set qa typed_key < FILE');
    expect(t.exit, t.out).toBe(2);
  }, 180_000);

  it('Ctrl-D on an empty line: refused, nothing changed', async () => {
    const t = await setChangingNothing([['value for typed_key', '\x04']]);
    expect(t.out).toContain('no value typed for typed_key');
    expect(t.exit, t.out).toBe(2);
  }, 180_000);
});

/**
 * `script` (sh) run on a new terminal in e's project, `steps` typed, the terminal closed at the last one ({hangup}):
 * the shell's exit status (the command's own when exec'd), and what the command wrote to $LOG (its stderr sent there:
 * nothing reads a terminal once closed). A wait for `{ text }` waits for $LOG to hold it.
 */
async function hungUp(e: Env, script: string, steps: [wait: string | { text: string }, send: string | { hangup: true }][]): Promise<{ status: number; log: string }> {
  const log = join(tempDir(), 'log');
  const spec = { argv: ['sh', '-c', script], cwd: e.root, env: { PATH: process.env.PATH, HOME: e.root, OPS_ROOT: e.root, OPS: OPS, TERM: 'xterm', LOG: log, ...e.env }, steps: steps.map(([w, s]) => [typeof w === 'string' ? w : { ...w, file: log }, s]) };
  const { stdout } = await promisify(execFile)('python3', [PTY, JSON.stringify(spec)], { encoding: 'utf8', timeout: 150_000 });
  const { status } = JSON.parse(stdout) as { status: number };
  return { status, log: existsSync(log) ? readFileSync(log, 'utf8') : '' };
}

describe('the terminal closed (hang-up) while a secrets command reads it: ends as SIGHUP does, nothing changed', () => {
  it('set, the value half typed, its shell left alive (the command reads the end of a closed terminal): exit 129, said plainly, nothing written', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const status = join(tempDir(), 'status');
    const t = await hungUp(e, `trap '' HUP; node "$OPS" secrets set qa typed_key 2>"$LOG"; echo $? > '${status}'`, [
      [{ text: 'value for typed_key' }, 'Zq8-half-typed'],
      ['', { hangup: true }],
    ]);
    const log = t.log; // the shell, ignoring the hang-up, waits for the command: both ended now
    expect(log).toContain('interrupted by SIGHUP while the value was typed: the terminal was closed; nothing was changed');
    expect(log).not.toMatch(/internal error|setRawMode|Assertion/i);
    expect(readFileSync(status, 'utf8').trim(), log).toBe('129');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    expect(existsSync(`${e.secrets}.lock`)).toBe(false);
  }, 180_000);

  it("set, the command the terminal's own process (sent SIGHUP; its stderr the terminal too): exit 129, no crash, nothing written", async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const t = await hungUp(e, 'exec node "$OPS" secrets set qa typed_key', [
      ['value for typed_key', 'Zq8-half-typed'],
      ['', { hangup: true }],
    ]);
    expect(t.status).toBe(129);
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    expect(existsSync(`${e.secrets}.lock`)).toBe(false);
  }, 180_000);

  it('edit, the editor open: exit 129, "interrupted (SIGHUP); nothing was changed", no crash as the process exits', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const ed = editor('echo editing; sleep 30');
    const t = await hungUp({ ...e, env: { ...e.env, EDITOR: ed.cmd } }, 'exec node "$OPS" secrets edit qa 2>"$LOG"', [['editing', { hangup: true }]]);
    expect(t.log).toContain('interrupted (SIGHUP); nothing was changed');
    expect(t.log).not.toMatch(/internal error|Assertion/i);
    expect(t.status, t.log).toBe(129);
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  }, 180_000);
});

describe('ops secrets edit: the editor draws on the person\'s terminal, never into a pipe or a log', () => {
  /** An environment holding a value, and an editor that says whether its stdout is a terminal, then draws the text there (as vi does). */
  async function setUp() {
    const e = await newEnv();
    const set = await cli(e.root, ['secrets', 'set', 'qa', 'database_url'], e.env, 'postgresql://app:Zq8-drawn-on-screen@db/app');
    expect(set.code, set.err).toBe(0);
    const seen = join(tempDir(), 'seen');
    const ed = editor(`if [ -t 1 ]; then echo tty > '${seen}'; else echo no-tty > '${seen}'; fi; cat "$1"`);
    return { e, seen, ed };
  }

  it('stdout piped at a terminal (ops secrets edit qa | tee log): the editor\'s stdout is the terminal; the log gets none of the text', async () => {
    const { e, seen, ed } = await setUp();
    const log = join(tempDir(), 'log');
    const t = await onTerminal({ ...e, env: { ...e.env, EDITOR: ed.cmd, LOG: log } }, 'node "$OPS" secrets edit qa | cat > "$LOG"', []);
    expect(readFileSync(seen, 'utf8')).toBe('tty\n');
    expect(t.out).toContain('Zq8-drawn-on-screen'); // the person sees what they edit
    expect(readFileSync(log, 'utf8')).toContain('no changes');
    expect(readFileSync(log, 'utf8')).not.toContain('Zq8-drawn-on-screen');
  }, 180_000);

  it('no terminal at all (a CI job): the editor\'s stdout goes nowhere; nothing of the text reaches ops\'s output', async () => {
    const { e, seen, ed } = await setUp();
    // detached: a session of its own, without a controlling terminal (/dev/tty cannot be opened), as in a CI runner
    const child = spawn(process.execPath, [OPS, 'secrets', 'edit', 'qa'], {
      cwd: e.root,
      env: { PATH: process.env.PATH, HOME: e.root, OPS_ROOT: e.root, EDITOR: ed.cmd, ...e.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    child.stdout.on('data', (c) => (out += String(c)));
    child.stderr.on('data', (c) => (out += String(c)));
    const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    expect(code, out).toBe(0);
    expect(readFileSync(seen, 'utf8')).toBe('no-tty\n');
    expect(out).toContain('no changes');
    expect(out).not.toContain('Zq8-drawn-on-screen');
  }, 180_000);
});
