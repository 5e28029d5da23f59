// Shared by the secrets tests: the real-sops vectors, temporary project roots, and the CLI run in-process.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runOps, type CliResult } from '../support/cli.ts';
import { commands } from '../../scripts/commands/secrets.ts';
import { type Identities, identitiesFromText } from '../../core/secrets/keys.ts';

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
export function cli(root: string, argv: string[], env: NodeJS.ProcessEnv = {}, input = ''): Promise<CliResult> {
  return runOps(argv, { root, env: { PATH: process.env.PATH, HOME: root, ...env }, input, commands });
}
