// Shared by the secrets tests: the real-sops vectors, temporary project roots, and the CLI run in-process.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runOps, type CliResult } from '../support/cli.ts';
import { commands as environmentCommands } from '../../scripts/commands/environments.ts';
import { commands as secretCommands } from '../../scripts/commands/secrets.ts';

const commands = [...secretCommands, ...environmentCommands];
import { type Identities, identitiesFromText } from '../../core/secrets/keys.ts';
import { SecretsFile } from '../../core/secrets/sops.ts';
import { expect } from 'vitest';

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

export function tempDir(prefix = 'ops-secrets-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
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
  expect(r.err).toBe('');
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

