// No secret is ever printed, by kind: a URL's password written in environment.yml (every command masks it, `ops
// config` too: one openEnvironment, guarded), what errors quote of a file or an argument (a URL's password, a
// private key), a private key pasted into .sops.yaml, settings that must hold no password, and a value pasted as
// the key of `ops secrets set`. The real CLI (scripts/ops-bin.js) in a temporary project, as a user runs it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { hideSecrets, hideUrlPassword, isPrivateKey, privateKeysIn, urlPasswordsIn } from '../../core/secrets/parts.ts';
import { newEnv, tempRoot } from './secrets.helpers.ts';

const BIN = fileURLToPath(new URL('../../scripts/ops-bin.js', import.meta.url));
const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** `ops <argv>` as a process of its own, in project `root`, with `input` on stdin. */
function ops(root: string, argv: string[], input = '', env: NodeJS.ProcessEnv = {}): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...argv], { env: { PATH: process.env.PATH, HOME: '/nonexistent', OPS_ROOT: root, NO_COLOR: '1', ...env }, encoding: 'utf8', input, timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const PASSWORD = 'Zq9-hunter2-pw';
const DB_URL = `postgres://app:${PASSWORD}@db.internal/shop`;
/** A well-formed age private key nobody uses (the checksum of a key of age's own test vectors is not needed here). */
const PRIVATE_KEY = 'AGE-SECRET-KEY-1QXRVEJH9S4NQU0FPD6V79ESZQ8S6PXH3L8V40EVPTHFH6KNKD4DQ7SKC4Q';
const HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

/** A project with environment `demo` whose environment.yml holds `settings` over a minimal valid one (or `text` as is). */
function project(settings: Record<string, unknown> | string): string {
  const root = tempRoot();
  const dir = join(root, 'environments', 'demo');
  const base = { app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: HOST_KEY }], programs: { server: { command: 'run', port: 3579, health: '/health' }, client: { command: 'run', port: 3000 } } };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'environment.yml'), typeof settings === 'string' ? settings : stringify({ ...base, ...settings }));
  return root;
}

describe('the detectors (core/secrets/parts.ts)', () => {
  it('find and hide a URL password in running text, and a private key however pasted', () => {
    expect(urlPasswordsIn(`psql ${DB_URL} -c 'select 1'`)).toEqual([PASSWORD, PASSWORD]);
    expect(urlPasswordsIn('https://user@host/x and https://host/y')).toEqual([]);
    expect(hideUrlPassword(`got "${DB_URL}"`)).toBe('got "postgres://app:***@db.internal/shop"');
    expect(privateKeysIn(`# ${PRIVATE_KEY.toLowerCase()}, GE-SECRET-KEY-1ABC`)).toEqual([PRIVATE_KEY.toLowerCase(), 'GE-SECRET-KEY-1ABC']);
    expect(isPrivateKey(PRIVATE_KEY.slice(1))).toBe(true);
    expect(isPrivateKey('that is a private key (AGE-SECRET-KEY-…)')).toBe(false);
    const once = hideSecrets(`${PRIVATE_KEY} ${DB_URL}`);
    expect(once).not.toMatch(/Zq9|QXRVEJ/);
    expect(hideSecrets(once)).toBe(once);
  });
});

describe('a URL password written in environment.yml', () => {
  it('ops config masks it, as deploy and status do', () => {
    const root = project({ env: { DATABASE_URL: DB_URL }, programs: { server: { command: 'run', port: 3579, health: '/health', env: { MIRROR: `redis://:${PASSWORD}x@cache/0` } }, client: { command: 'run', port: 3000 } } });
    const r = ops(root, ['config', 'demo']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain('DATABASE_URL: postgres://app:***@db.internal/shop');
    expect(r.out).toContain('MIRROR: redis://:***@cache/0');
    expect(r.out + r.err).not.toContain(PASSWORD);
  });

  it('every command, action and operation opens an environment through openEnvironment, never loadEnvironment itself', () => {
    const files = [
      ...readdirSync(join(REPO, 'scripts'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join('scripts', f)),
      ...readdirSync(join(REPO, 'actions'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && !f.includes('dist')).map((f) => join('actions', f)),
      ...readdirSync(join(REPO, 'core', 'ops')).filter((f) => f.endsWith('.ts') && f !== 'secrets.ts').map((f) => join('core', 'ops', f)),
    ];
    expect(files.length).toBeGreaterThan(20);
    const direct = files.filter((f) => /\bloadEnvironment\s*\(/.test(readFileSync(join(REPO, f), 'utf8')));
    expect(direct, 'use openEnvironment (core/ops/secrets.ts): it masks the URL passwords of the settings').toEqual([]);
  });
});

describe('errors quote no password and no private key', () => {
  it('a config error quoting a value', () => {
    const root = project({ env: { DATABASE_URL: DB_URL }, hosts: PRIVATE_KEY, domain: `${DB_URL}/and/more/words/to/make/it/long/enough/to/be/cut` });
    const r = ops(root, ['config', 'demo']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('has 2 problems');
    expect(r.err).toContain('got "postgres://app:***@db.internal/shop/and/more/words/to/mak..."');
    expect(r.err).toContain('got "<an age private key (AGE-SECRET-KEY-…), not shown>"');
    expect(r.err).not.toMatch(/Zq9|QXRVEJ/);
  });

  it("a YAML error's excerpt of the file", () => {
    const root = project(`app: shop\nenv:\n  DATABASE_URL: ${DB_URL}: x: y\n`);
    const r = ops(root, ['config', 'demo']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('is not valid YAML');
    expect(r.err).toContain('  DATABASE_URL: postgres://app:***@db.internal/shop: x: y\n');
    expect(r.err).not.toContain(PASSWORD);
    // a line longer than the library's 80-character excerpt: never cut through the URL
    const long = project(`app: shop\nenv:\n  ${'A'.repeat(50)}: postgres://app:${'p'.repeat(40)}@db/x: y: z\n`);
    const l = ops(long, ['config', 'demo']);
    expect(l.err).toContain('postgres://app:***@db/x: y: z');
    expect(l.err).not.toContain('ppp');
    const key = project(`app: shop\nkey: ${PRIVATE_KEY}: [\n`);
    expect(ops(key, ['config', 'demo']).err).not.toContain('QXRVEJ');
  });

  it('an argument error: a password or a private key where a name or an option value goes, with and without --json', () => {
    const root = project({});
    for (const argv of [['config', DB_URL], ['config', PRIVATE_KEY], ['logs', 'demo', '--lines', DB_URL], [DB_URL], ['deploy', 'demo', '--ref', DB_URL, '--json'], ['lock', PRIVATE_KEY]]) {
      const r = ops(root, argv);
      expect(r.code, argv.join(' ')).not.toBe(0);
      expect(r.err, argv.join(' ')).toMatch(/error: /);
      expect(r.out + r.err, argv.join(' ')).not.toMatch(/Zq9|QXRVEJ/);
    }
    expect(ops(root, ['config', DB_URL]).err).toContain('invalid environment name "postgres://app:***@db.internal/shop"');
    expect(ops(root, ['config', PRIVATE_KEY]).err).toContain('invalid environment name "<an age private key (AGE-SECRET-KEY-…), not shown>"');
  });
});

describe('a private key pasted into .sops.yaml', () => {
  it('is refused by ops secrets recipients, never listed', async () => {
    const e = await newEnv('qa');
    const sops = join(e.root, '.sops.yaml');
    const before = readFileSync(sops, 'utf8');
    writeFileSync(sops, before.replace(/age: (\S+)/, `age: $1,${e.key}`));
    const r = ops(e.root, ['secrets', 'recipients', 'qa'], '', { SOPS_AGE_KEY_FILE: e.keyFile });
    expect(r.code).toBe(1);
    expect(r.err).toContain('.sops.yaml creation_rules[0].age[1]: that is a private key (AGE-SECRET-KEY-…), not a recipient; it was not shown');
    expect(r.out + r.err).not.toContain(e.key.slice(20));
  });
});

describe('settings that are URLs but must never hold a password', () => {
  it('repository, url and tls.acme_server are refused with one, the password masked', () => {
    const root = project({ repository: `https://bob:${PASSWORD}@git.example.org/shop.git`, url: `https://u:${PASSWORD}@shop.example.org`, domain: 'shop.example.org', tls: { mode: 'letsencrypt', email: 'ops@example.org', acme_server: `https://u:${PASSWORD}@acme.example.org/dir` } });
    const r = ops(root, ['config', 'demo']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('has 3 problems');
    for (const [k, v] of <[string, string][]>[['repository', 'https://bob:***@git.example.org/shop.git'], ['url', 'https://u:***@shop.example.org'], ['tls.acme_server', 'https://u:***@acme.example.org/dir']])
      expect(r.err).toMatch(new RegExp(`  - ${k.replace('.', '\\.')}: expected .*, got "${v.replace(/[.*?]/g, '\\$&')}" \\(a URL with a password in it: .*put credentials elsewhere: `));
    expect(r.err).not.toContain(PASSWORD);
    // without a password, they are read
    const fine = project({ repository: 'https://bob@git.example.org/shop.git', url: 'https://shop.example.org' });
    expect(ops(fine, ['config', 'demo']).code).toBe(0);
  });
});

describe('ops secrets set with the value pasted as the key', () => {
  it('a URL with a password, or a private key, as the key: refused, masked, nothing written', async () => {
    const e = await newEnv('qa');
    const before = readFileSync(e.secrets, 'utf8');
    for (const key of [DB_URL, PRIVATE_KEY]) {
      const r = ops(e.root, ['secrets', 'set', 'qa', key], 'a-value\n', { SOPS_AGE_KEY_FILE: e.keyFile });
      expect(r.code, key).toBe(2);
      expect(r.err).toContain(key === DB_URL ? 'the key given is a URL with a password (postgres://app:***@db.internal/shop), not a key name' : 'the key given is an age private key, not a key name');
      expect(r.out + r.err).not.toMatch(/Zq9|QXRVEJ/);
    }
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    expect(existsSync(e.secrets)).toBe(true);
  });
});
