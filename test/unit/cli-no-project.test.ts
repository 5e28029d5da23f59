// Commands that need no project (making keys, decrypting a file given by path) run in any directory: the real CLI
// (scripts/ops-bin.js) in an empty temporary folder. The others still say no project was found.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { vector, vectorPlaintext } from './secrets.helpers.ts';

const BIN = join(import.meta.dirname, '..', '..', 'scripts', 'ops-bin.js');
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(OPS_|SOPS_)/.test(k)));

function ops(cwd: string, argv: string[], extra: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...argv], { cwd, env: { ...env, NO_COLOR: '1', ...extra }, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('outside any project', () => {
  it('keygen, secretkey, apikey and secrets decrypt <file> run; a command that needs a project says none was found', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-no-project-'));
    const keygen = ops(dir, ['keygen']);
    expect(keygen).toMatchObject({ code: 0 });
    expect(keygen.out).toMatch(/^AGE-SECRET-KEY-1/m);
    const written = ops(dir, ['keygen', '-o', 'me.key']);
    expect(written.code).toBe(0);
    expect(written.err).not.toMatch(/inside the project/);
    expect(readFileSync(join(dir, 'me.key'), 'utf8')).toMatch(/^AGE-SECRET-KEY-1/m);
    expect(ops(dir, ['secretkey']).out).toMatch(/^[\w-]{86}\n$/);
    expect(ops(dir, ['apikey']).out).toMatch(/^[\w-]{43}\n$/);
    const decrypted = ops(dir, ['secrets', 'decrypt', vector('secret.enc.json')], { SOPS_AGE_KEY_FILE: vector('age-key.txt') });
    expect(decrypted.err).toBe('');
    expect(decrypted.code).toBe(0);
    expect(JSON.parse(decrypted.out)).toMatchObject({ [Object.keys(vectorPlaintext())[0]!]: expect.anything() });
    const ping = ops(dir, ['ping', 'x']);
    expect(ping.code).toBe(2);
    expect(ping.err).toMatch(/^error: no ops project found/);
    expect(existsSync(join(dir, 'environments'))).toBe(false);
  }, 180_000);
  it('OPS_ROOT holding only white space, or a path with white space at an end (pasted with its newline): said, quoted, exit 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-no-project-'));
    const blank = ops(dir, ['status', 'qa'], { OPS_ROOT: ' ' });
    expect(blank.code).toBe(2);
    expect(blank.err).toMatch(/^error: OPS_ROOT=" " is not an ops project: "[^"]*\/ " does not exist \(the value is only white space\)\n/);
    const newline = ops(dir, ['status', 'qa'], { OPS_ROOT: `${dir}\n` });
    expect(newline.code).toBe(2);
    expect(newline.err).toContain(`error: OPS_ROOT=${JSON.stringify(`${dir}\n`)} is not an ops project: ${JSON.stringify(`${dir}\n`)} does not exist (the value has white space at an end)`);
  }, 120_000);
});
