// The secrets commands that write several files in turn (rotate, recipients add/remove/sync, encrypt), interrupted
// (Ctrl-C, SIGTERM) half-way: they stop before the next file and say which files they had written and which not,
// with the signal's exit code, as `set` and `edit` say "interrupted; nothing was changed". They ended silently.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type Env, ageKey, cli, editor, newEnv } from './secrets.helpers.ts';

const OPS = fileURLToPath(new URL('../../scripts/ops-bin.js', import.meta.url));

/**
 * `ops <argv>` run as a process in e's project while `locked` (a file) is being written by "another command" (its
 * lock held): once the command says it waits for that lock, it is sent `signal`. @returns its exit code and stderr.
 */
async function interruptedAt(e: Env, argv: string[], locked: string, signal: NodeJS.Signals): Promise<{ code: number | null; err: string }> {
  mkdirSync(`${locked}.lock`);
  const child = spawn(process.execPath, [OPS, ...argv], { cwd: e.root, env: { PATH: process.env.PATH, HOME: e.root, OPS_ROOT: e.root, ...e.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let sent = false;
  child.stderr.on('data', (c) => {
    err += String(c);
    if (!sent && err.includes(`for the lock`)) {
      sent = true;
      child.kill(signal);
    }
  });
  const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  return { code, err };
}

/** An environment with two sops files: its secrets and an encrypted asset (written in that order). */
async function twoFiles(): Promise<{ e: Env; asset: string; files: () => string[] }> {
  const e = await newEnv();
  const asset = join(e.root, 'environments', 'qa', 'assets', 'initdata.yml');
  writeFileSync(asset, 'users: [{email: a@example.org, password: Zq8-asset-password}]\n');
  expect((await cli(e.root, ['secrets', 'encrypt', asset], e.env)).code).toBe(0);
  return { e, asset, files: () => [readFileSync(e.secrets, 'utf8'), readFileSync(asset, 'utf8'), readFileSync(join(e.root, '.sops.yaml'), 'utf8')] };
}

const SECRETS = 'environments/qa/secrets.sops.yaml';
const ASSET = 'environments/qa/assets/initdata.yml';

describe('interrupted between two files: what was written, and what not, said; the signal\'s exit code', () => {
  it('rotate, SIGTERM: the secrets file written, the asset not; exit 143', async () => {
    const { e, asset, files } = await twoFiles();
    const [secretsBefore, assetBefore] = files();
    const r = await interruptedAt(e, ['secrets', 'rotate', 'qa'], asset, 'SIGTERM');
    expect(r.err).toContain(`error: interrupted by SIGTERM half-way: already written (each whole): ${SECRETS}; not written: ${ASSET}; run the command again to finish`);
    expect(r.code, r.err).toBe(143);
    const [secretsAfter, assetAfter] = files();
    expect(secretsAfter).not.toBe(secretsBefore);
    expect(assetAfter).toBe(assetBefore);
  }, 60_000);

  it('recipients add, Ctrl-C (SIGINT): the files written, .sops.yaml not; exit 130', async () => {
    const { e, files } = await twoFiles();
    const [, , rulesBefore] = files();
    const other = ageKey();
    const r = await interruptedAt(e, ['secrets', 'recipients', 'qa', 'add', other.recipient], join(e.root, '.sops.yaml'), 'SIGINT');
    expect(r.err).toContain(`error: interrupted half-way: already written (each whole): ${SECRETS}, ${ASSET}; not written: .sops.yaml; run the command again to finish`);
    expect(r.code, r.err).toBe(130);
    expect(files()[2]).toBe(rulesBefore);
  }, 60_000);

  it('recipients remove and sync, and encrypt, stopped before their first file: "nothing was changed"', async () => {
    const { e, files } = await twoFiles();
    const before = files();
    const other = ageKey();
    expect((await cli(e.root, ['secrets', 'recipients', 'qa', 'add', other.recipient], e.env)).code).toBe(0);
    const added = files();
    const rm = await interruptedAt(e, ['secrets', 'recipients', 'qa', 'remove', other.recipient], e.secrets, 'SIGTERM');
    rmSync(`${e.secrets}.lock`, { recursive: true });
    expect(rm.err).toContain('error: interrupted by SIGTERM while waiting for the lock');
    expect(rm.err).toContain('nothing was changed');
    expect(rm.code, rm.err).toBe(143);
    expect(files()).toEqual(added);
    expect(before).not.toEqual(added);
    // .sops.yaml without the other key: a sync would remove it from both files
    const rules = join(e.root, '.sops.yaml');
    writeFileSync(rules, readFileSync(rules, 'utf8').replace(`,${other.recipient}`, ''));
    const synced = files();
    const sync = await interruptedAt(e, ['secrets', 'recipients', 'qa', 'sync'], e.secrets, 'SIGINT');
    expect(sync.err).toContain('error: interrupted while waiting for the lock');
    expect(sync.code, sync.err).toBe(130);
    expect(files()).toEqual(synced);
    const plain = join(e.root, 'environments', 'qa', 'assets', 'plain.yml');
    writeFileSync(plain, 'a: Zq8-plain-value\n');
    const enc = await interruptedAt(e, ['secrets', 'encrypt', plain], plain, 'SIGTERM');
    expect(enc.err).toContain('nothing was changed');
    expect(enc.code, enc.err).toBe(143);
    expect(readFileSync(plain, 'utf8')).toBe('a: Zq8-plain-value\n');
  }, 60_000);
});

describe('ops env new interrupted', () => {
  it('Ctrl-C while it writes (here: waiting for the lock of .sops.yaml, which another command holds): nothing is left of the new environment (folder, rule, a key nobody was shown); exit 130; made again at once', async () => {
    const e = await newEnv();
    const rules = join(e.root, '.sops.yaml');
    const before = readFileSync(rules, 'utf8');
    const r = await interruptedAt(e, ['env', 'new', 'staging2'], rules, 'SIGINT');
    expect(r.err).toContain('error: interrupted while waiting for the lock');
    expect(r.err).toContain('nothing was changed');
    expect(r.code, r.err).toBe(130);
    expect(existsSync(join(e.root, 'environments', 'staging2'))).toBe(false);
    expect(readFileSync(rules, 'utf8')).toBe(before);
    rmSync(`${rules}.lock`, { recursive: true });
    const again = await cli(e.root, ['env', 'new', 'staging2'], e.env);
    expect(again.code, again.err).toBe(0);
  }, 60_000);
});


describe('ops secrets edit ended by a signal other than Ctrl-C, SIGTERM or SIGHUP', () => {
  it("Ctrl-\\ (SIGQUIT) with the editor open: exit 131, nothing changed, the decrypted copy removed (killed outright, it stayed in the temporary directory)", async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const ed = editor('echo editing >&2; sleep 30');
    const child = spawn(process.execPath, [OPS, 'secrets', 'edit', 'qa'], { cwd: e.root, env: { PATH: process.env.PATH, HOME: e.root, OPS_ROOT: e.root, ...e.env, EDITOR: ed.cmd }, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    let sent = false;
    child.stderr.on('data', (c) => {
      err += String(c);
      // once: a second Ctrl-\ as ops exits (its handlers gone) kills it outright, as it would a shell
      if (!sent && err.includes('editing')) {
        sent = true;
        child.kill('SIGQUIT');
      }
    });
    const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    // the editor's record: the decrypted copy it was given
    const copy = readFileSync(ed.record, 'utf8').split(' ')[0] ?? '';
    expect(copy).toMatch(/ops-secrets-/);
    expect(code, err).toBe(131);
    expect(err).toContain('nothing was changed');
    expect(existsSync(copy)).toBe(false);
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  }, 60_000);
});
