// Shared by the secrets tests: the real-sops vectors, temporary project roots (removed after each test, or after
// the file for those made outside a test), the CLI run in-process, the real sops and age-keygen, a secrets file
// holding given text, and an editor open while another command saves the file.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runOps, type CliResult } from '../support/cli.ts';
import { commands as environmentCommands } from '../../scripts/commands/environments.ts';
import { commands as secretCommands } from '../../scripts/commands/secrets.ts';

const commands = [...secretCommands, ...environmentCommands];
import type { EditorExit } from '../../core/secrets/edit.ts';
import { type Identities, identitiesFromText } from '../../core/secrets/keys.ts';
import { SecretsFile } from '../../core/secrets/sops.ts';
import { parseTree } from '../../core/secrets/tree-parse.ts';
import { formatOf, str } from '../../core/secrets/tree.ts';
import { afterAll, expect, onTestFinished } from 'vitest';

/** Files written by the real sops 3.8.1 (test/fixtures/sops/README.md), copied from ../shared/vectors/sops. */
export const VECTORS = fileURLToPath(new URL('../fixtures/sops', import.meta.url));
export const vector = (name: string) => join(VECTORS, name);
export const readVector = (name: string) => readFileSync(vector(name), 'utf8');

export async function vectorIdentities(): Promise<Identities> {
  return identitiesFromText(readVector('age-key.txt'), 'age-key.txt');
}

/** The vectors' plaintext (secret.json without `0word`, which the encrypted files lack). */
export function vectorPlaintext(): Record<string, unknown> {
  const p = JSON.parse(readVector('secret.json')) as Record<string, unknown>;
  delete p['0word'];
  return p;
}

// Folders made outside a test (beforeAll, a describe's body): removed once the file's tests have run.
const madeForTheFile: string[] = [];
afterAll(() => {
  for (const dir of madeForTheFile.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A new folder under the system's temporary one, removed when the test that made it ends (else after the file). */
export function tempDir(prefix = 'ops-secrets-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  } catch {
    madeForTheFile.push(dir); // not inside a test
  }
  return dir;
}

/** The real sops (on PATH: ./scripts/setup-machine.sh), run with `keyFile` as its age key, in a clean HOME and directory. */
export function sops(args: string[], keyFile: string): { code: number; out: string; err: string } {
  const r = spawnSync('sops', args, { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: tempDir('ops-sops-home-'), SOPS_AGE_KEY_FILE: keyFile }, cwd: tempDir('ops-sops-cwd-'), timeout: 30_000 });
  if (r.error) throw new Error(`cannot run sops (${r.error.message}): run ./scripts/setup-machine.sh`);
  return { code: r.status ?? 1, out: r.stdout, err: r.stderr };
}

/** A new age key (age-keygen), in a key file of its own. */
export function ageKey(): { file: string; recipient: string } {
  const file = join(tempDir('ops-age-key-'), 'key.txt');
  execFileSync('age-keygen', ['-o', file], { stdio: 'ignore' });
  return { file, recipient: execFileSync('age-keygen', ['-y', file], { encoding: 'utf8' }).trim() };
}

/** A secrets file `name` (its format from the name) holding `text`, encrypted to a fresh key, in a folder of its own. */
export async function secretsFile(text: string, name = 'secrets.sops.yaml') {
  const key = ageKey();
  const dir = tempDir('ops-secrets-file-');
  const file = join(dir, name);
  const ids = await identitiesFromText(readFileSync(key.file, 'utf8'));
  await SecretsFile.create(file, parseTree(text, formatOf(file), { file: 't' }), { recipients: [key.recipient] }).save();
  return { key, dir, file, ids, open: () => SecretsFile.open(file, { identities: ids }) };
}

export type TestSecretsFile = Awaited<ReturnType<typeof secretsFile>>;

/**
 * An editor (EditIo.edit) that appends `typed` to the text and, while it is open, has another command save the file
 * with `theirs` set: the edit then meets a file changed on disk.
 */
export function editWhileAnotherSaves(s: { open: () => Promise<SecretsFile> }, typed = 'mine: Zq8-typed-by-me\n', theirs: [string, string] = ['theirs', 'Zq8-their-value']): (tmp: string) => Promise<EditorExit> {
  return async (tmp) => {
    writeFileSync(tmp, `${readFileSync(tmp, 'utf8')}${typed}`);
    const f = await s.open();
    f.set([theirs[0]], str(theirs[1]));
    await f.save();
    return { code: 0, signal: null };
  };
}

/** A project root: package.json and an environments/ folder. */
export function tempRoot(): string {
  const root = tempDir('ops-root-');
  mkdirSync(join(root, 'environments'));
  writeFileSync(join(root, 'package.json'), '{"name":"t","private":true}\n');
  return root;
}

/** Run `ops <argv>` with the secrets commands, a clean environment (HOME = root) and `input` on stdin. */
export function cli(root: string, argv: string[], env: NodeJS.ProcessEnv = {}, input: string | Uint8Array = ''): Promise<CliResult> {
  return runOps(argv, { root, processEnv: { PATH: process.env.PATH, HOME: root, ...env }, input, commands });
}

export interface Env {
  root: string;
  key: string;
  keyFile: string;
  env: NodeJS.ProcessEnv;
  secrets: string;
}

/** `ops env new <name>` in a fresh root; the printed key saved to a key file. */
export async function newEnv(name = 'qa'): Promise<Env & { out: string }> {
  const root = tempRoot();
  const r = await cli(root, ['env', 'new', name]);
  // stderr: what was written and what next, no warning
  expect(r.err).not.toMatch(/^(warning|error):/m);
  expect(r.code).toBe(0);
  const keys = r.out.match(/AGE-SECRET-KEY-1[0-9A-Z]+/g) ?? [];
  expect(keys.length).toBe(1);
  const keyFile = join(tempDir(), 'keys.txt');
  writeFileSync(keyFile, `${keys[0]}\n`, { mode: 0o600 });
  return { root, key: keys[0]!, keyFile, env: { SOPS_AGE_KEY_FILE: keyFile }, secrets: join(root, 'environments', name, 'secrets.sops.yaml'), out: r.out };
}

export async function open(e: Env, keyText = e.key): Promise<SecretsFile> {
  return SecretsFile.open(e.secrets, { identities: await identitiesFromText(keyText) });
}

/** A scripted $EDITOR: records the file it was given (and its modes), then runs `body` on it ($1). */
export function editor(body: string): { cmd: string; record: string } {
  const dir = tempDir('ops-editor-');
  const record = join(dir, 'record');
  const script = join(dir, 'editor.sh');
  writeFileSync(script, `#!/bin/sh\nprintf '%s %s %s\\n' "$1" "$(stat -c %a "$1")" "$(stat -c %a "$(dirname "$1")")" >> '${record}'\n${body}\n`);
  chmodSync(script, 0o755);
  return { cmd: script, record };
}


export const PTY = fileURLToPath(new URL('../support/on_terminal.py', import.meta.url));
export const OPS = fileURLToPath(new URL('../../scripts/ops-bin.js', import.meta.url));

/** A step on a terminal (test/support/on_terminal.py): the text to wait for, then what to type or the signal to send. */
export type Step = [wait: string, send: string | { signal: NodeJS.Signals } | { hangup: true }];

/**
 * `script` (sh) run on a new terminal in e's project, `steps` typed as their text appears; what the terminal showed,
 * with the shell's last word: `exit=<ops's exit code>` and `stty -a` (the terminal's modes once ops has ended).
 * `env` adds to (or replaces) the variables it runs with (HOME is the project's otherwise).
 */
export async function onTerminal(e: Env, script: string, steps: Step[], env: NodeJS.ProcessEnv = {}): Promise<{ out: string; exit: number; echo: boolean }> {
  const spec = { argv: ['sh', '-c', `${script}; echo "exit=$?"; stty -a`], cwd: e.root, env: { PATH: process.env.PATH, HOME: e.root, OPS_ROOT: e.root, OPS: OPS, TERM: 'xterm', ...e.env, ...env }, steps };
  const { stdout } = await promisify(execFile)('python3', [PTY, JSON.stringify(spec)], { encoding: 'utf8', timeout: 150_000 });
  const { out } = JSON.parse(stdout) as { out: string };
  const exit = /exit=(\d+)/.exec(out);
  expect(exit, out).not.toBeNull();
  // stty -a lists "echo" when the terminal echoes what is typed, "-echo" when not
  const modes = out.slice(out.indexOf('exit='));
  expect(modes, out).toMatch(/(^|\s)-?echo(\s|$)/);
  return { out, exit: Number(exit![1]), echo: /(^|\s)echo(\s|$)/.test(modes) };
}
