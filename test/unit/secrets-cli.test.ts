// The secrets commands, run as a user would: env new, set from stdin, show, edit with a scripted $EDITOR,
// rotate, recipients add/remove/sync, keygen and the token generators.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, openSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { findRoot, loadEnvironment } from '../../core/config/environment.ts';
import type { OpsError } from '../../core/errors.ts';
import { hostSharing } from '../../core/config/siblings.ts';
import { lookup } from '../../core/dotenv.ts';
import { findPlaceholders } from '../../core/secrets/env.ts';
import { identitiesFromText } from '../../core/secrets/keys.ts';
import { SecretsFile } from '../../core/secrets/sops.ts';
import { addRecipientHint, editCommand, environmentOfFile } from '../../core/secrets/sops-metadata.ts';
import { formatOf, fromPlain, type MapNode } from '../../core/secrets/tree.ts';
import { PassThrough, Readable } from 'node:stream';
import { runCli } from '../../scripts/cli.ts';
import { commands as secretCommands } from '../../scripts/commands/secrets.ts';
import { runOps } from '../support/cli.ts';
import { type Env, cli, editor, newEnv, open, tempDir, tempRoot, vector } from './secrets.helpers.ts';

/** The OpsError `f` throws, as its message and hint. */
function formatError(f: () => unknown): { message: string; hint?: string } {
  try {
    f();
  } catch (e) {
    return { message: (e as Error).message, hint: (e as { hint?: string }).hint };
  }
  throw new Error('nothing thrown');
}

function recorded(record: string): { file: string; mode: string; dirMode: string }[] {
  return readFileSync(record, 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const [file, mode, dirMode] = l.split(' ');
      return { file: file!, mode: mode!, dirMode: dirMode! };
    });
}

describe('ops env new', () => {
  let e: Env & { out: string };
  beforeAll(async () => {
    e = await newEnv('qa');
  });

  it('writes a valid environment (checked by the environment loader)', () => {
    const env = loadEnvironment('qa', e.root);
    expect(env.name).toBe('qa');
    expect(env.hosts[0]!.hostKey).toMatch(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI/);
    expect(readFileSync(join(e.root, 'environments/qa/environment.yml'), 'utf8')).toContain('# PLACEHOLDER');
  });

  it('prints the new identity once and stores it nowhere', () => {
    expect(e.out).toContain('shown once');
    const everything = ['.sops.yaml', 'environments/qa/environment.yml', 'environments/qa/secrets.sops.yaml'].map((f) => readFileSync(join(e.root, f), 'utf8')).join('\n');
    expect(everything).not.toContain(e.key);
  });

  it('writes the .sops.yaml rule and secrets that decrypt with the printed key', async () => {
    const rules = readFileSync(join(e.root, '.sops.yaml'), 'utf8');
    expect(rules).toMatch(/path_regex: \(\^\|\/\)environments\/qa\/\n\s+age: age1/);
    const s = await open(e);
    const data = s.data as Record<string, unknown>;
    expect(data.secret_key).toMatch(/^[A-Za-z0-9_-]{50,}$/);
    expect(data.config_repo_api_key).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    expect(Object.keys(data)).toEqual(['secret_key', 'database_url', 'config_repo_api_key', 'datapass_client_id', 'datapass_client_secret', 'passwords']);
    expect(findPlaceholders(s.tree)).toEqual(['database_url', 'datapass_client_id', 'datapass_client_secret', 'passwords.admin@example.org']);
  });

  it('writes only secrets its environment.yml reads, and each placeholder is one the README names', async () => {
    const env = loadEnvironment('qa', e.root);
    const read = new Set(Object.values(env.config.env).flatMap((v) => (typeof v === 'string' ? [] : [v.secret])));
    const s = await open(e);
    // A secret nothing reads would still block every deploy while it holds CHANGE-ME (there is no secrets unset).
    expect(Object.keys(s.data as Record<string, unknown>).filter((k) => !read.has(k))).toEqual([]);
    const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
    const adding = readme.slice(readme.indexOf('### Adding an environment'), readme.indexOf('**A second environment on the sandbox host**'));
    for (const p of findPlaceholders(s.tree)) expect(adding, p).toContain(p);
  });

  it("gives the new environment a placeholder address no other environment names: never taken for one sharing prod's VM as the same app", async () => {
    const root = tempRoot();
    const made = await cli(root, ['env', 'new', 'prod']);
    expect(made.code).toBe(0);
    expect(loadEnvironment('prod', root).hosts[0]!.address).toBe('203.0.113.10');
    const qd = await cli(root, ['env', 'new', 'qd']);
    expect(qd.code).toBe(0);
    expect(loadEnvironment('qd', root).hosts[0]!.address).toBe('203.0.113.11');
    expect(qd.err).toContain("its host's address 203.0.113.11 is a placeholder no other environment uses: set the VM's own; on a VM that already runs another environment, qd also needs its own app name");
    expect(hostSharing(loadEnvironment('qd', root)).siblings).toEqual([]);
    // No workflows in this project: nothing said of them. With them, what GitHub Actions needs for the new one.
    expect(qd.err).not.toContain('GitHub Actions');
    // A name a letter from an existing one: made, and the one perhaps meant named (not between short names: qd, qe).
    const slip = await cli(root, ['env', 'new', 'prdo']);
    expect(slip.code).toBe(0);
    expect(slip.out + slip.err).toContain('prdo is a slip away from the existing environment prod: if you meant to work on prod, take this one back (ops env remove prdo) and use prod');
    mkdirSync(join(root, '.github', 'workflows'), { recursive: true });
    const qe = await cli(root, ['env', 'new', 'qe']);
    expect(qe.code).toBe(0);
    expect(qe.out + qe.err).not.toContain('slip away');
    expect(qe.err).toContain('to run it from GitHub Actions: add qe to the environment options of the manual workflows (deploy, rollback, provision, initdata) and to the matrix of status.yml, and create the GitHub environments qe (secrets SSH_PRIVATE_KEY and SOPS_AGE_KEY) and qe-status (SSH_PRIVATE_KEY only)');
    const dry = await cli(root, ['env', 'remove', 'qd', '--dry-run', '--force']);
    expect(dry.code).toBe(0);
    expect(dry.out).toContain('VM web1 (203.0.113.11): delete it at the hosting provider');
    expect(dry.out).not.toContain('also runs prod');
    expect(loadEnvironment('prod', root).hosts[0]!.address).toBe('203.0.113.10');
  });

  it('env remove of an environment whose .sops.yaml rule is shared through a YAML alias: refused before anything is removed', async () => {
    const root = tempRoot();
    expect((await cli(root, ['env', 'new', 'qd'])).code).toBe(0);
    const config = join(root, '.sops.yaml');
    const text = readFileSync(config, 'utf8').replace('- path_regex: (^|/)environments/qd/', '- &qd\n    path_regex: (^|/)environments/qd/') + '  - *qd\n';
    writeFileSync(config, text);
    const r = await cli(root, ['env', 'remove', 'qd', '--force']);
    expect(r.code, r.err).toBe(1);
    expect(r.err).toContain('the rule of qd, is written with a YAML anchor, alias or merge key');
    expect(existsSync(join(root, 'environments', 'qd', 'environment.yml'))).toBe(true);
    expect(readFileSync(config, 'utf8')).toBe(text);
  });

  it('refuses an existing environment, and a bad name, changing nothing', async () => {
    const before = readFileSync(join(e.root, '.sops.yaml'), 'utf8');
    const again = await cli(e.root, ['env', 'new', 'qa']);
    expect(again.code).toBe(1);
    expect(again.err).toContain('environments/qa already exists');
    const bad = await cli(e.root, ['env', 'new', 'Bad;name']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('invalid environment name');
    // <env>-status is the GitHub environment status.yml uses for <env> (its deploy key, no reviewers).
    for (const name of ['prod-status', 'qa-status', 'other-status']) {
      const status = await cli(e.root, ['env', 'new', name]);
      expect(status.code, name).toBe(2);
      expect(status.err).toContain(`invalid environment name "${name}": a name ending in "-status" is refused: ${name} is the GitHub environment status.yml uses for environment ${name.slice(0, -7)}`);
      expect(existsSync(join(e.root, 'environments', name)), name).toBe(false);
    }
    expect(readFileSync(join(e.root, '.sops.yaml'), 'utf8')).toBe(before);
  });
});

describe('ops secrets set / show / decrypt', () => {
  it('a value typed on the command line (as an argument, or as KEY=VALUE) is refused and never shown; a key with a space at an end or a control character is refused; nothing is written', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const value = 'MyArgvS3cretPassXYZ';
    const extra = await cli(e.root, ['secrets', 'set', 'qa', 'database_url', value], e.env, '');
    expect(extra.code).toBe(2);
    expect(extra.err).toContain('unexpected argument (argument 3) for "ops secrets set": not shown');
    const assigned = await cli(e.root, ['secrets', 'set', 'qa', `api_token=${value}`], e.env, 'x');
    expect(assigned.code).toBe(2);
    expect(assigned.err).toContain('the key path holds "api_token=…": a key path is a name, not KEY=VALUE');
    // the environment typed, never a literal <env>
    expect(assigned.err).toContain("printf '%s' 'the value' | ops secrets set qa api_token (or ops secrets edit qa)");
    expect(assigned.err).not.toContain('<env>');
    for (const r of [extra, assigned]) expect(`${r.out}${r.err}`).not.toContain(value);
    for (const [key, said] of [['database_url ', 'a space or tab at an end'], [' database_url', 'a space or tab at an end'], ['data\nbase', 'a control character'], ['datapass.client_id\t', 'a space or tab at an end']] as const) {
      const r = await cli(e.root, ['secrets', 'set', 'qa', key], e.env, 'new-value');
      expect(r.code, key).toBe(2);
      expect(r.err, key).toContain(said);
    }
    // A quoted part is taken as written: a key holding = on purpose.
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'passwords."a=b@example.org"'], e.env, 'pw-Ky7q-long-enough')).code).toBe(0);
    const after = await open(e);
    expect(Object.keys(after.data as Record<string, unknown>)).toEqual(Object.keys((await open({ ...e, secrets: e.secrets })).data as Record<string, unknown>));
    expect(before).not.toBe(readFileSync(e.secrets, 'utf8'));
    expect(Object.keys((after.data as Record<string, Record<string, unknown>>).passwords!)).toContain('a=b@example.org');
    expect(Object.keys(after.data as Record<string, unknown>)).not.toContain('database_url ');
  });

  it('a value typed into the key as `KEY: VALUE` (copied from a secrets file) or `KEY VALUE` is refused like KEY=VALUE: not stored as a key name (sops keeps those in clear text), never shown, stdin or not', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const token = 'ghp_Zq8SecretTypedInArgv';
    for (const [key, said] of [
      [`api_token: ${token}`, 'the key path holds "api_token: …"'],
      [`api_token ${token}`, 'the key path holds "api_token …"'],
      [`api_token\t${token}`, 'the key path holds "api_token …"'],
      [`datapass.client_secret: ${token}`, 'the key path holds "datapass.client_secret: …"'],
      [`api_token:${token}`, 'the key path holds "api_token:…"'],
    ] as const) {
      // with the value on stdin, and with nothing there (its "no value on stdin" hint repeated the key)
      for (const input of ['anything-long-enough-1', '']) {
        const r = await cli(e.root, ['secrets', 'set', 'qa', key], e.env, input);
        expect(r.code, key).toBe(2);
        expect(r.err, key).toContain(`${said}: a key path is a name, not KEY=VALUE, KEY: VALUE, KEY:VALUE or KEY VALUE`);
        expect(r.err, key).toMatch(/hint: give the value on stdin: printf '%s' 'the value' \| ops secrets set qa (api_token|datapass\.client_secret) /);
        expect(r.out + r.err, key).not.toContain(token);
        expect(r.err.trim().split('\n'), key).toHaveLength(2); // the error and its hint
      }
    }
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    // show --key takes the same paths: refused the same way, the value not echoed
    const shown = await cli(e.root, ['secrets', 'show', 'qa', '--key', `api_token: ${token}`], e.env);
    expect(shown.code).toBe(2);
    expect(shown.err).toContain('the key path holds "api_token: …"');
    expect(shown.out + shown.err).not.toContain(token);
    // its hint is show's: how to print the key, not how to set it (nothing is written by show)
    expect(shown.err).toContain(`hint: to print that key's value: ops secrets show qa --key api_token; a key whose name holds =, : or a space goes in double quotes: '"api_token: ..."'`);
    expect(shown.err).not.toMatch(/secrets set|nothing was changed|committed/);
    // a key holding a space on purpose is written in double quotes, as env's { secret: } references write it
    expect((await cli(e.root, ['secrets', 'set', 'qa', '"my key"'], e.env, 'pw-Ky7q-long-enough')).code).toBe(0);
    expect((await cli(e.root, ['secrets', 'show', 'qa', '--key', '"my key"'], e.env)).out).toBe('pw-Ky7q-long-enough');
    // and one holding a colon
    expect((await cli(e.root, ['secrets', 'set', 'qa', '"redis:url"'], e.env, 'redis://cache:6379/0')).code).toBe(0);
    expect((await cli(e.root, ['secrets', 'show', 'qa', '--key', '"redis:url"'], e.env)).out).toBe('redis://cache:6379/0');
  });

  it('set reads the value from stdin, creates nested keys; show prints it', async () => {
    const e = await newEnv();
    const url = 'postgresql+asyncpg://app:p%40ss-w0rd-Ky7q@db.example.org:5432/catalogage';
    const r = await cli(e.root, ['secrets', 'set', 'qa', 'database_url'], e.env, `${url}\n`);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toBe('environments/qa/secrets.sops.yaml: set database_url\n');
    expect(r.out).not.toContain(url);
    expect(readFileSync(e.secrets, 'utf8')).not.toContain('db.example.org');
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'datapass.client_id'], e.env, 'abc-123')).code).toBe(0);

    const show = await cli(e.root, ['secrets', 'show', 'qa'], e.env);
    expect(show.code).toBe(0);
    expect(show.out).toContain(`database_url: ${url}\n`);
    expect(show.out).toContain('datapass:\n    client_id: abc-123\n');
    expect((await cli(e.root, ['secrets', 'show', 'qa', '--key', 'database_url'], e.env)).out).toBe(url);
    expect((await cli(e.root, ['secrets', 'show', 'qa', '--key', 'datapass.client_id'], e.env)).out).toBe('abc-123');
    const missing = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'nope'], e.env);
    expect(missing).toMatchObject({ code: 2, out: '' });
    expect(missing.err).toContain('no key nope');
    expect(missing.err).not.toContain('did you mean');
    // A typo: the closest key where the path stops matching (key names are in clear in a sops file).
    const typo = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'database_ur'], e.env);
    expect(typo).toMatchObject({ code: 2, out: '' });
    expect(typo.err).toContain('did you mean database_url?');
    expect((await cli(e.root, ['secrets', 'show', 'qa', '--key', 'datapass.client_di'], e.env)).err).toContain('did you mean datapass.client_id?');
  });

  it('show --key prints the value exactly (no newline added): piped into set, it is copied unchanged', async () => {
    const e = await newEnv();
    const copied = async (value: string, flags: string[]) => {
      expect((await cli(e.root, ['secrets', 'set', 'qa', 'a', '--exact'], e.env, value)).code).toBe(0);
      const shown = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'a'], e.env);
      expect(shown).toMatchObject({ code: 0, out: value });
      expect((await cli(e.root, ['secrets', 'set', 'qa', 'b', ...flags], e.env, shown.out)).code).toBe(0);
      return ((await open(e)).data as Record<string, unknown>).b;
    };
    // one line, several lines, several lines ending in a newline (a PEM key): `set` keeps them as shown
    for (const value of ['one-line-Zq7', 'l1-Zq7\nl2-Zq7', 'l1-Zq7\nl2-Zq7\n']) {
      expect(await copied(value, []), JSON.stringify(value)).toBe(value);
      expect(await copied(value, ['--exact']), JSON.stringify(value)).toBe(value);
    }
    // one line ending in a newline: `set` drops that newline (what echo adds), --exact keeps it
    expect(await copied('one-line-Zq7\n', [])).toBe('one-line-Zq7');
    expect(await copied('one-line-Zq7\n', ['--exact'])).toBe('one-line-Zq7\n');
    // on a terminal only, a newline ends a value that has none (the prompt on a line of its own)
    const onTerminal = async (value: string) => {
      expect((await cli(e.root, ['secrets', 'set', 'qa', 'a', '--exact'], e.env, value)).code).toBe(0);
      const out = new PassThrough();
      const chunks: Buffer[] = [];
      out.on('data', (c: Buffer) => chunks.push(c));
      Object.assign(out, { isTTY: true });
      const code = await runCli(secretCommands, { argv: ['secrets', 'show', 'qa', '--key', 'a'], root: e.root, processEnv: { PATH: process.env.PATH, HOME: e.root, ...e.env }, stdin: Readable.from(['']), stdout: out, stderr: new PassThrough() });
      expect(code).toBe(0);
      return Buffer.concat(chunks).toString('utf8');
    };
    expect(await onTerminal('one-line-Zq7')).toBe('one-line-Zq7\n');
    expect(await onTerminal('l1-Zq7\nl2-Zq7\n')).toBe('l1-Zq7\nl2-Zq7\n');
  });

  it('a key holding dots (the e-mail keys env new writes under passwords) is set, shown and read by the .env as the placeholder message names it', async () => {
    const e = await newEnv();
    // The deploy's refusal names it `passwords.admin@example.org` and says to set it with `ops secrets set`.
    const set = await cli(e.root, ['secrets', 'set', 'qa', 'passwords.admin@example.org'], e.env, 'pw-1');
    expect(set).toMatchObject({ code: 0, out: 'environments/qa/secrets.sops.yaml: set passwords.admin@example.org\n' });
    const data = (await open(e)).data as { passwords: Record<string, unknown> };
    expect(data.passwords).toEqual({ 'admin@example.org': 'pw-1' }); // not { 'admin@example': { org: ... } }
    expect(findPlaceholders((await open(e)).tree)).not.toContain('passwords.admin@example.org');
    expect((await cli(e.root, ['secrets', 'show', 'qa', '--key', 'passwords.admin@example.org'], e.env)).out).toBe('pw-1');
    // A new nested key still nests at each dot; an existing dotted key wins over nesting.
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'smtp.host'], e.env, 'mail.example.org')).code).toBe(0);
    expect(((await open(e)).data as { smtp: unknown }).smtp).toEqual({ host: 'mail.example.org' });
    // environment.yml's { secret: a.b } reads the same key.
    expect(lookup((await open(e)).data, 'passwords.admin@example.org')).toBe('pw-1');
  });

  it('a new key with dots under an existing map is refused as ambiguous, never nested silently; quotes say which is meant, for set, show and the .env alike', async () => {
    const e = await newEnv();
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'passwords.admin@example.org'], e.env, 'pw-1')).code).toBe(0);
    const before = readFileSync(e.secrets, 'utf8');
    const r = await cli(e.root, ['secrets', 'set', 'qa', 'passwords.new@x.org'], e.env, 'pw-2');
    expect(r.code).toBe(2);
    expect(r.err).toContain('the key path "passwords.new@x.org" is ambiguous: passwords has no key new@x.org');
    expect(r.err).toContain(`say which with double quotes (one quoted part is one key): 'passwords."new@x.org"' or 'passwords."new@x"."org"'`);
    expect(r.err).not.toContain('pw-2');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    // one key holding dots
    const one = await cli(e.root, ['secrets', 'set', 'qa', 'passwords."new@x.org"'], e.env, 'pw-2');
    expect(one).toMatchObject({ code: 0, out: 'environments/qa/secrets.sops.yaml: set passwords.new@x.org\n' });
    expect(((await open(e)).data as { passwords: unknown }).passwords).toEqual({ 'admin@example.org': 'pw-1', 'new@x.org': 'pw-2' });
    // then it exists: the plain spelling reaches it, for set, show and environment.yml's { secret: ... }
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'passwords.new@x.org'], e.env, 'pw-3')).code).toBe(0);
    expect((await cli(e.root, ['secrets', 'show', 'qa', '--key', 'passwords.new@x.org'], e.env)).out).toBe('pw-3');
    expect((await cli(e.root, ['secrets', 'show', 'qa', '--key', 'passwords."new@x.org"'], e.env)).out).toBe('pw-3');
    expect(lookup((await open(e)).data, 'passwords."new@x.org"')).toBe('pw-3');
    // nested, said so
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'passwords."team"."lead"'], e.env, 'pw-4')).code).toBe(0);
    expect(((await open(e)).data as { passwords: Record<string, unknown> }).passwords.team).toEqual({ lead: 'pw-4' });
    // a new key one level down is not ambiguous, nor two new parts at the top level (README: datapass.client_secret)
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'passwords.plain'], e.env, 'pw-5')).code).toBe(0);
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'smtp.host'], e.env, 'h')).code).toBe(0);
    expect(((await open(e)).data as { smtp: unknown }).smtp).toEqual({ host: 'h' });
    // three new parts at the top level are a guess too (admins.new@x.org: admins holding new@x.org?)
    const top = await cli(e.root, ['secrets', 'set', 'qa', 'admins.new@x.org'], e.env, 'a');
    expect(top.code).toBe(2);
    expect(top.err).toContain(`the key path "admins.new@x.org" is ambiguous: there is no key admins`);
    expect(top.err).toContain(`'admins."new@x.org"' or '"admins"."new@x"."org"'`);
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'admins."new@x.org"'], e.env, 'a')).code).toBe(0);
    expect((await cli(e.root, ['secrets', 'set', 'qa', '"mail"."smtp"."host"'], e.env, 'm')).code).toBe(0);
    expect((await open(e)).data).toMatchObject({ admins: { 'new@x.org': 'a' }, mail: { smtp: { host: 'm' } } });
    // malformed quoting is refused before stdin is read
    for (const bad of ['passwords."x', 'a.""', '"a"b']) expect((await cli(e.root, ['secrets', 'set', 'qa', bad], e.env, 'v')).err).toContain(`invalid key path "${bad}"`);
  });

  it('set keeps a value of several lines exact (a PEM key keeps its final newline); a one-line value loses the newline echo adds', async () => {
    const e = await newEnv();
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n';
    for (const [input, want] of [
      [pem, pem],
      [pem.replace(/\n/g, '\r\n'), pem.replace(/\n/g, '\r\n')],
      ['two\nlines', 'two\nlines'],
      ['ends in two\n\n', 'ends in two\n\n'],
      ['echoed-t0ken-4f9a\n', 'echoed-t0ken-4f9a'],
      ['crlf-t0ken-4f9a\r\n', 'crlf-t0ken-4f9a'],
      ['printf-t0ken-4f9a', 'printf-t0ken-4f9a'],
    ]) {
      const r = await cli(e.root, ['secrets', 'set', 'qa', 'tls.key'], e.env, input);
      expect(r.code, JSON.stringify(input)).toBe(0);
      expect(lookup((await open(e)).data, 'tls.key'), JSON.stringify(input)).toBe(want);
    }
    // --exact: byte for byte, the one way to store a one-line value ending in a newline (or one starting with a byte order mark).
    for (const v of ['one line\n', 'crlf\r\n', 'two\nlines\n\n', 'plain', '\uFEFFmarked']) {
      expect((await cli(e.root, ['secrets', 'set', 'qa', 'tls.key', '--exact'], e.env, v)).code, JSON.stringify(v)).toBe(0);
      expect(lookup((await open(e)).data, 'tls.key'), JSON.stringify(v)).toBe(v);
    }
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'tls.key', '--exact'], e.env, '')).err).toContain('no value on stdin');
    const help = await cli(e.root, ['secrets', 'set', '--help'], e.env);
    expect(help.out).toContain('--exact');
    expect(help.out).toContain('a one-line value loses the one newline');
    expect(help.out).toContain('--empty');
  });

  it("set from a file a Windows editor wrote: its byte order mark is dropped, said; CRLF line ends are kept, said with how to store plain newlines; --exact keeps both", async () => {
    const e = await newEnv();
    const bom = await cli(e.root, ['secrets', 'set', 'qa', 'tls.token'], e.env, '\uFEFFnotepad-t0ken-4f9a\r\n');
    expect(bom.code, bom.err).toBe(0);
    expect(lookup((await open(e)).data, 'tls.token')).toBe('notepad-t0ken-4f9a');
    expect(bom.out).toContain('the byte order mark (U+FEFF) a Windows editor puts at the start of a file was dropped from the value of tls.token');
    expect(bom.out + bom.err).not.toContain('CRLF');
    const pem = '-----BEGIN PRIVATE KEY-----\r\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\r\n-----END PRIVATE KEY-----\r\n';
    const crlf = await cli(e.root, ['secrets', 'set', 'qa', 'tls.key'], e.env, `\uFEFF${pem}`);
    expect(crlf.code, crlf.err).toBe(0);
    expect(lookup((await open(e)).data, 'tls.key')).toBe(pem);
    expect(crlf.err).toContain("the value of tls.key has Windows line ends (CRLF): stored with them; to store plain newlines, pipe it through `tr -d '\\r'`");
    // UTF-16 (Windows PowerShell's `>`): named, with the conversion that keeps the text, not latin1's; nothing written
    const before = readFileSync(join(e.root, 'environments/qa/secrets.sops.yaml'));
    const utf16 = await cli(e.root, ['secrets', 'set', 'qa', 'tls.token'], e.env, Buffer.from('\uFEFFps-t0ken-4f9a\r\n', 'utf16le'));
    expect(utf16.code).toBe(2);
    expect(utf16.err).toContain('the value on stdin for tls.token is UTF-16 text (it starts with FF FE');
    expect(utf16.err).toContain('iconv -f utf-16 -t utf-8');
    expect(readFileSync(join(e.root, 'environments/qa/secrets.sops.yaml'))).toEqual(before);
    const exact = await cli(e.root, ['secrets', 'set', 'qa', 'tls.token', '--exact'], e.env, '\uFEFFx-t0ken-4f9a\r\n');
    expect(exact.code, exact.err).toBe(0);
    expect(lookup((await open(e)).data, 'tls.token')).toBe('\uFEFFx-t0ken-4f9a\r\n');
  });

  it('set stores an empty value only when --empty says so (stdin is not read)', async () => {
    const e = await newEnv();
    const refused = await cli(e.root, ['secrets', 'set', 'qa', 'smtp.password'], e.env, '');
    expect(refused.code).toBe(2);
    expect(refused.err).toContain('no value on stdin');
    expect(refused.err).toContain('to store an empty value, give --empty');
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'smtp.password'], e.env, '\n')).err).toContain('no value on stdin');
    const r = await cli(e.root, ['secrets', 'set', 'qa', 'smtp.password', '--empty'], e.env, '');
    expect(r).toMatchObject({ code: 0, out: 'environments/qa/secrets.sops.yaml: set smtp.password\n' });
    expect(lookup((await open(e)).data, 'smtp.password')).toBe('');
  });

  it('set with stdin a directory (`< DIR`) says so (EISDIR) and how to give the file, not "no value on stdin"', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const dir = openSync(join(e.root, 'environments'), 'r');
    try {
      const r = spawnSync(process.execPath, [fileURLToPath(new URL('../../scripts/ops-bin.js', import.meta.url)), 'secrets', 'set', 'qa', 'tls.key'], {
        env: { PATH: process.env.PATH, HOME: e.root, OPS_ROOT: e.root, ...e.env },
        stdio: [dir, 'pipe', 'pipe'],
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(r.status).toBe(2);
      expect(r.stderr).toBe(
        'error: stdin is a directory (EISDIR: `< DIR` gave a folder, not the file holding the value for tls.key); nothing was changed\n' +
          `  hint: give the file holding the value: ops secrets set qa tls.key < DIR/FILE, or pipe it in: printf '%s' "$VALUE" | ops secrets set qa tls.key\n`,
      );
    } finally {
      closeSync(dir);
    }
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  }, 40_000);

  it('set --empty with a value piped in is refused, not the piped value dropped silently; so is --empty with --exact', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const piped = await cli(e.root, ['secrets', 'set', 'qa', 'smtp.password', '--empty'], e.env, 'piped-Zq7');
    expect(piped.code).toBe(2);
    expect(piped.err).toContain('--empty stores an empty value without reading stdin, but a value was piped in for smtp.password; nothing was changed');
    expect(piped.err).toContain('to store the piped value, drop --empty');
    expect(piped.err).not.toContain('Zq7');
    const both = await cli(e.root, ['secrets', 'set', 'qa', 'smtp.password', '--empty', '--exact'], e.env, '');
    expect(both.code).toBe(2);
    expect(both.err).toContain('--empty and --exact cannot be given together');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  });

  it('set refuses an empty stdin, a path through a non-map, and an unknown environment', async () => {
    const e = await newEnv();
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'x'], e.env, '')).err).toContain('no value on stdin');
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'datapass_client_id.sub'], e.env, 'v')).err).toContain('cannot set datapass_client_id.sub: datapass_client_id is a str, not a map');
    expect((await cli(e.root, ['secrets', 'set', 'nope', 'x'], e.env, 'v')).err).toContain('no environment "nope"');
    expect((await cli(e.root, ['secrets', 'set', 'qa'], e.env, 'v')).code).toBe(2); // the value never comes from argv
  });

  it('set refuses to replace a map (all its nested secrets) with one value, naming the keys it would delete, unless --replace', async () => {
    const e = await newEnv();
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'passwords."team"."lead"'], e.env, 'pw-lead')).code).toBe(0);
    const before = readFileSync(e.secrets, 'utf8');
    const r = await cli(e.root, ['secrets', 'set', 'qa', 'passwords'], e.env, 'v');
    expect(r.code).toBe(2);
    expect(r.err).toContain('passwords is a map holding 2 secrets (passwords.admin@example.org, passwords.team.lead): setting it to one value would delete them; nothing was changed');
    expect(r.err).toMatch(/hint: .*ops secrets set qa 'passwords\.<key>'.*--replace/);
    expect(r.err).not.toMatch(/pw-lead|CHANGE-ME/);
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    const replaced = await cli(e.root, ['secrets', 'set', 'qa', 'passwords', '--replace'], e.env, 'v');
    expect(replaced).toMatchObject({ code: 0, out: 'environments/qa/secrets.sops.yaml: set passwords\n' });
    expect(((await open(e)).data as { passwords: unknown }).passwords).toBe('v');
  });

  it('show --key with a malformed key path: refused as such (exit 2) before the secrets are decrypted, no key needed', async () => {
    const e = await newEnv();
    const noKey = { PATH: process.env.PATH, HOME: '/nonexistent' };
    for (const key of ['a..b', 'list[0]', '"open']) {
      const r = await cli(e.root, ['secrets', 'show', 'qa', '--key', key], noKey);
      expect(r.code, key).toBe(2);
      expect(r.err, key).toMatch(new RegExp(`^error: invalid key path "${key.replace(/[[\]().]/g, '\\$&')}"`));
      expect(r.err, key).not.toContain('no age identity');
    }
  });

  it('set on a list: refused as a list (not a map), with a list hint; list[0] is refused, never made a new key', async () => {
    const e = await newEnv();
    const s = await open(e);
    s.set(['list'], fromPlain(['item-a', { two: 'item-b' }]));
    await s.save();
    const before = readFileSync(e.secrets, 'utf8');
    const whole = await cli(e.root, ['secrets', 'set', 'qa', 'list'], e.env, 'v');
    expect(whole.code).toBe(2);
    expect(whole.err).toContain('error: list is a list of 2 items: setting it to one value would replace the whole list; nothing was changed');
    expect(whole.err).toContain('hint: key paths do not index lists: change its items with `ops secrets edit qa`, or give --replace to replace the whole list with this value');
    expect(whole.err).not.toMatch(/map|list\[|<key>/);
    for (const key of ['list[0]', 'list[1].two', 'list.[0]', 'a]']) {
      const r = await cli(e.root, ['secrets', 'set', 'qa', key], e.env, 'v');
      expect(r.code, key).toBe(2);
      expect(r.err, key).toContain(`error: invalid key path "${key}": key paths do not index lists, and a key holding [ or ] must be in double quotes`);
      expect(r.err, key).toContain('hint: change a list\'s items with `ops secrets edit qa`');
    }
    // show's hint says how to print the list, not how to change its items
    for (const [key, list] of [['list[0]', 'list'], ['list.[0]', 'list'], ['"list".[1]', `'"list"'`]] as const) {
      const shown = await cli(e.root, ['secrets', 'show', 'qa', '--key', key], e.env);
      expect(shown.code, key).toBe(2);
      expect(shown.err, key).toContain(`error: invalid key path "${key}": key paths do not index lists`);
      expect(shown.err, key).toContain(`hint: print the whole list: ops secrets show qa --key ${list} (a key path reaches a whole list, not an item)`);
      expect(shown.err, key).not.toMatch(/secrets (set|edit)/);
    }
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    const under = await cli(e.root, ['secrets', 'set', 'qa', 'list.x'], e.env, 'v');
    expect(under.err).toContain('error: cannot set list.x: list is a list, not a map');
    expect(under.err).toContain("hint: key paths do not index lists: change the list's items with `ops secrets edit`");
    // a map holding a list names the list once, not its items as paths a key path cannot take
    const m = await open(e);
    m.set(['group'], fromPlain({ a: 'value-a', l: ['value-y', 'value-z'] }));
    await m.save();
    const g = await cli(e.root, ['secrets', 'set', 'qa', 'group'], e.env, 'v');
    expect(g.err).toContain('group is a map holding 2 secrets (group.a, group.l (a list of 2)): setting it to one value would delete them');
    // a key holding brackets, quoted, is one key as written
    expect((await cli(e.root, ['secrets', 'set', 'qa', '"b[0]"'], e.env, 'v')).code).toBe(0);
    const data = (await open(e)).data as Record<string, unknown>;
    expect(data['b[0]']).toBe('v');
    expect(data.list).toEqual(['item-a', { two: 'item-b' }]);
    expect(Object.keys(data).filter((k) => k.includes('['))).toEqual(['b[0]']);
  });

  it('decrypt prints a real-sops file; refuses a tampered one and a missing key', async () => {
    const root = tempRoot();
    const keyEnv = { SOPS_AGE_KEY_FILE: vector('age-key.txt') };
    const ok = await cli(root, ['secrets', 'decrypt', vector('secret.enc.yaml')], keyEnv);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('secret: this is a secret\n');
    const tampered = join(tempDir(), 'secret.enc.yaml');
    writeFileSync(tampered, readFileSync(vector('secret.enc.yaml'), 'utf8').replace(/^string: .*\n/m, ''));
    const bad = await cli(root, ['secrets', 'decrypt', tampered], keyEnv);
    expect(bad).toMatchObject({ code: 1, out: '' });
    expect(bad.err).toContain('MAC mismatch');
    const nokey = await cli(root, ['secrets', 'decrypt', vector('secret.enc.json')]);
    expect(nokey.code).toBe(1);
    expect(nokey.err).toContain('looked in SOPS_AGE_KEY (not set), SOPS_AGE_KEY_FILE (not set)');
  });
});

describe('a key that does not open an environment\'s secrets', () => {
  it('is said with the command that adds one, naming the environment (never a literal <env>)', async () => {
    const e = await newEnv();
    const other = await newEnv('qb');
    const r = await cli(e.root, ['secrets', 'show', 'qa'], { SOPS_AGE_KEY: other.key });
    expect(r.code).toBe(1);
    expect(r.err).toContain('(`ops secrets recipients qa add <age1...>`)');
    expect(r.err).not.toContain('<env>');
    expect(environmentOfFile('/p/environments/qa/assets/initdata.yml')).toBe('qa');
    expect(environmentOfFile('/p/data/initdata.yml')).toBe('<env>');
    expect(environmentOfFile('/srv/environments/shop/environments/prod/secrets.sops.yaml')).toBe('prod');
  });

  it('a dotenv or INI sops file by its name: the hint names the environment whose folder holds it (was: a literal `<env>`), and in no environment\'s folder says YAML or JSON alone', () => {
    expect(formatError(() => formatOf('/p/environments/qa/assets/db.sops.env'))).toEqual({
      message: '/p/environments/qa/assets/db.sops.env: dotenv and INI sops files are not supported',
      hint: 'keep secrets in YAML (environments/qa/secrets.sops.yaml) or JSON',
    });
    expect(formatError(() => formatOf('/p/environments/prod/settings.ini')).hint).toBe('keep secrets in YAML (environments/prod/secrets.sops.yaml) or JSON');
    expect(formatError(() => formatOf('/p/data/secrets.env')).hint).toBe('keep secrets in YAML or JSON');
  });

  it('of a file in no environment\'s folder (a copy elsewhere): said with sops\'s own way to add one, never `ops secrets recipients <env>`', async () => {
    const e = await newEnv();
    const other = await newEnv('qb');
    const copy = join(tempDir(), 'copy.sops.yaml');
    writeFileSync(copy, readFileSync(e.secrets));
    const r = await cli(e.root, ['secrets', 'decrypt', copy], { SOPS_AGE_KEY: other.key });
    expect(r.code).toBe(1);
    expect(r.err).toContain(`(the public key added to the .sops.yaml creation rule matching ${copy}, then \`sops updatekeys ${copy}\`)`);
    expect(r.err).not.toContain('<env>');
    expect(addRecipientHint('/p/environments/qa/assets/initdata.yml')).toBe('`ops secrets recipients qa add <age1...>`');
    expect(editCommand('/p/environments/qa/secrets.sops.yaml')).toBe('ops secrets edit qa');
    expect(editCommand('/p/environments/qa/assets/initdata.yml')).toBe('sops edit /p/environments/qa/assets/initdata.yml');
    expect(editCommand('/tmp/x.sops.yaml')).toBe('sops edit /tmp/x.sops.yaml');
  });
});

describe("an environment's secrets file that is not a sops file (decrypted in place, written by hand)", () => {
  it('is told how to restore or encrypt that file, not to give another path (a copy elsewhere keeps the general hint)', async () => {
    const e = await newEnv();
    writeFileSync(e.secrets, 'database_url: Zq8-plain-value\n');
    const r = await cli(e.root, ['secrets', 'show', 'qa'], e.env);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`error: ${e.secrets} is not a sops file: it has no "sops" section\n  hint: restore it (git checkout -- environments/qa/secrets.sops.yaml), or encrypt what it holds in place: ops secrets encrypt environments/qa/secrets.sops.yaml (a value that was committed or pushed in plain text is exposed: change it)\n`);
    // the fix it names works
    expect((await cli(e.root, ['secrets', 'encrypt', e.secrets], e.env)).code).toBe(0);
    expect((await cli(e.root, ['secrets', 'show', 'qa', '--key', 'database_url'], e.env)).out).toBe('Zq8-plain-value');
    const copy = join(tempDir(), 'plain.yaml');
    writeFileSync(copy, 'a: 1\n');
    expect((await cli(e.root, ['secrets', 'decrypt', copy], e.env)).err).toContain('hint: give the path of a file encrypted with sops');
  });
});

describe('ops config checks the .env values against dotenv.readers', () => {
  it('fails naming the variable and the reader, without the value; passes once the value or the readers change', async () => {
    const e = await newEnv();
    const secret = 'pw-${HOME}-Sekr1t';
    // stored while the readers allow it (`secrets set` refuses it for python-dotenv), then python-dotenv declared again
    const file = join(e.root, 'environments', 'qa', 'environment.yml');
    const declared = readFileSync(file, 'utf8');
    writeFileSync(file, declared.replace(/^  readers: \[.*\]$/m, '  readers: [node-dotenv]'));
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'database_url'], e.env, secret)).code).toBe(0);
    writeFileSync(file, declared);
    const config = (env: NodeJS.ProcessEnv) => runOps(['config', 'qa'], { root: e.root, processEnv: { PATH: process.env.PATH, HOME: e.root, ...env } });
    const refused = await config(e.env);
    expect(refused).toMatchObject({ code: 2, out: '' });
    expect(refused.err).toMatch(/APP_DATABASE_URL \(secret "database_url"; read by python-dotenv, node-dotenv(; its line also parsed by vite)?\): python-dotenv replaces "\$\{\.\.\.\}"/);
    expect(refused.err).toContain('drop python-dotenv from dotenv.readers');
    expect(refused.err).not.toContain('Sekr1t');

    // The app reads its .env with Node's dotenv only: the same value is fine.
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^  readers: \[.*\]$/m, '  readers: [node-dotenv]'));
    const ok = await config(e.env);
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toContain('APP_DATABASE_URL: single-quoted');

    // Without a key, plain values are still checked and the output says secrets were not.
    const nokey = await config({});
    expect(nokey.code).toBe(0);
    expect(nokey.err).toMatch(/warning: \d+ secret value\(s\) not checked against dotenv.readers: no age identity/);
  });
});

describe('ops secrets set / edit refuse a value every deploy would refuse for its .env readers', () => {
  // python-dotenv (declared by env new) replaces "${...}" in every quoting: the app would read another value.
  const interpolated = 'pw-${HOME}-Sekr1t';

  it('set: refused with the deploy\'s message for the variable that carries it, the file unchanged; a key no .env variable names is stored', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const r = await cli(e.root, ['secrets', 'set', 'qa', 'database_url'], e.env, interpolated);
    expect(r).toMatchObject({ code: 2, out: '' });
    expect(r.err).toContain('1 .env value of qa cannot be written so that its readers read it back exactly (nothing was written: environments/qa/secrets.sops.yaml is unchanged)');
    expect(r.err).toMatch(/APP_DATABASE_URL \(secret "database_url"; read by python-dotenv, node-dotenv; its line also parsed by vite\): python-dotenv replaces "\$\{\.\.\.\}"/);
    expect(r.err).toContain("hint: change the value (a secret: printf '%s' NEW | ops secrets set qa <key>), or, if your app does not read .env with it, drop python-dotenv from dotenv.readers");
    expect(r.err).not.toContain('Sekr1t');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    // a key under a map an env entry names whole (TOOLS_PASSWORDS: { secret: passwords }) is carried: its JSON writes $ as \u0024
    const nested = await cli(e.root, ['secrets', 'set', 'qa', 'passwords.admin@example.org'], e.env, interpolated);
    expect(nested.code, nested.err).toBe(0);
    expect(((await open(e)).data.passwords as Record<string, string>)['admin@example.org']).toBe(interpolated);
    // a secret no env entry names never reaches the .env
    const unread = await cli(e.root, ['secrets', 'set', 'qa', 'smtp_password'], e.env, interpolated);
    expect(unread).toMatchObject({ code: 0, err: 'warning: nothing in environments/qa/environment.yml reads the new secret smtp_password (no env entry or packages setting names it): no deploy sends it; refer to it in env (NAME: { secret: smtp_password }), or check its name\n' });
    expect((await open(e)).data.smtp_password).toBe(interpolated);
  });

  it('set: a new key nothing reads is stored and said, with the secret read under the name typed (the variable\'s, DATABASE_URL) or a close one; a key read, or under a map read, is not', async () => {
    const e = await newEnv();
    const value = 'postgresql://app:Long-Passw0rd-Zq7w@db/app';
    const warning = (key: string, ref: string, reader: string) =>
      `warning: nothing in environments/qa/environment.yml reads the new secret ${key} (no env entry or packages setting names it): no deploy sends it; did you mean ${ref} (read as ${reader})? Set that one, and delete this one with ops secrets edit qa\n`;
    expect(await cli(e.root, ['secrets', 'set', 'qa', 'APP_DATABASE_URL'], e.env, value)).toMatchObject({ code: 0, err: warning('APP_DATABASE_URL', 'database_url', 'APP_DATABASE_URL') });
    expect(await cli(e.root, ['secrets', 'set', 'qa', 'DATABASE_URL'], e.env, value)).toMatchObject({ code: 0, err: warning('DATABASE_URL', 'database_url', 'APP_DATABASE_URL') });
    expect(await cli(e.root, ['secrets', 'set', 'qa', 'secret_kye'], e.env, value)).toMatchObject({ code: 0, err: warning('secret_kye', 'secret_key', 'APP_SECRET_KEY') });
    // read: the key an env entry names (not new either), a new key under a map one names whole
    expect(await cli(e.root, ['secrets', 'set', 'qa', 'database_url'], e.env, value)).toMatchObject({ code: 0, err: '' });
    expect(await cli(e.root, ['secrets', 'set', 'qa', 'passwords."bob@example.org"'], e.env, 'Long-Passw0rd-Bob1')).toMatchObject({ code: 0, err: '' });
  });

  it('set: the readers environment.yml declares decide; an environment.yml that cannot be read does not hold the value back, and says it was not checked', async () => {
    const e = await newEnv();
    const file = join(e.root, 'environments', 'qa', 'environment.yml');
    const declared = readFileSync(file, 'utf8');
    writeFileSync(file, declared.replace(/^  readers: \[.*\]$/m, '  readers: [node-dotenv]'));
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'database_url'], e.env, interpolated)).code).toBe(0);
    // a value stored before is the deploy's to refuse: setting another key is not held back by it
    writeFileSync(file, declared);
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'datapass_client_id'], e.env, 'client-4f9a2c')).code).toBe(0);
    writeFileSync(file, `${declared}\nnot_a_setting: 1\n`);
    const unchecked = await cli(e.root, ['secrets', 'set', 'qa', 'datapass_client_secret'], e.env, interpolated);
    expect(unchecked.code).toBe(0);
    expect(unchecked.err).toMatch(/warning: the values were not checked against dotenv\.readers or packages \(environments\/qa\/environment\.yml has 1 problem: not_a_setting[^\n]*\): a deploy checks them/);
    expect((await open(e)).data).toMatchObject({ database_url: interpolated, datapass_client_id: 'client-4f9a2c', datapass_client_secret: interpolated });
  });

  it('edit or set --replace removing a secret the .env needs (or making it null): refused, naming the variable, nothing written', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    for (const edit of [`sed -i '/^database_url:/d' "$1"`, `sed -i 's/^database_url: .*/database_url:/' "$1"`]) {
      const gone = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: editor(edit).cmd }, 'n\n');
      expect(gone.code).toBe(1);
      expect(gone.err).toContain('this change removes a secret the .env needs, so every deploy would refuse it (nothing was written: environments/qa/secrets.sops.yaml is unchanged):\n  - APP_DATABASE_URL needs the secret "database_url"');
      expect(gone.err).toContain('hint: keep it; to drop it, remove the env entry naming it from environments/qa/environment.yml first');
      expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    }
    // a map an entry names whole, replaced by a map without the key an entry names inside it
    const file = join(e.root, 'environments', 'qa', 'environment.yml');
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^env:\n/m, 'env:\n  ADMIN_PW: { secret: passwords.admin@example.org }\n'));
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'passwords.admin@example.org'], e.env, 'a-long-admin-password-1')).code).toBe(0);
    const kept = readFileSync(e.secrets, 'utf8');
    const replaced = await cli(e.root, ['secrets', 'set', 'qa', 'passwords', '--replace'], e.env, 'plain-string-value-1');
    expect(replaced.code).toBe(2);
    expect(replaced.err).toContain('  - ADMIN_PW needs the secret "passwords.admin@example.org"');
    expect(readFileSync(e.secrets, 'utf8')).toBe(kept);
  });

  it('edit: offered back like invalid text; answered n, nothing is written; reopened and fixed, saved', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const bad = editor(`sed -i 's/^database_url: .*/database_url: "${interpolated}"/' "$1"`);
    const aborted = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: bad.cmd }, 'n\n');
    expect(aborted.code).toBe(1);
    expect(aborted.err).toMatch(/APP_DATABASE_URL \(secret "database_url"; read by python-dotenv, node-dotenv; its line also parsed by vite\): python-dotenv replaces/);
    expect(aborted.err).toContain('hint: change the value');
    expect(aborted.err).toContain('Reopen the editor to fix it? [Y/n]');
    expect(aborted.err).toContain('a changed value would be refused by every deploy or provision (see above); nothing was changed');
    expect(aborted.out + aborted.err).not.toContain('Sekr1t');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    // reopened: the second run sees the edited text (the edit is not lost) and changes the value
    const count = join(tempDir(), 'n');
    const fix = editor(`n=$(cat '${count}' 2>/dev/null || echo 0); echo $((n+1)) > '${count}'
if [ "$n" = 0 ]; then sed -i 's/^database_url: .*/database_url: "${interpolated}"/' "$1"; else grep -q 'HOME' "$1" && sed -i 's/[$][{]HOME[}]/HOME/' "$1"; fi`);
    const fixed = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: fix.cmd }, 'y\n');
    expect(fixed.code, fixed.err).toBe(0);
    expect(recorded(fix.record).length).toBe(2);
    expect((await open(e)).data.database_url).toBe('pw-HOME-Sekr1t');
    // piped answers run out (the editor keeps writing the refused value): the next question is answered no, the
    // command ends saying so (before: it ended at once without a word, exit 13)
    const stubborn = editor(`sed -i 's/^database_url: .*/database_url: "${interpolated}"/' "$1"`);
    const ran = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: stubborn.cmd }, 'y\n');
    expect(ran.code, ran.err).toBe(1);
    expect(recorded(stubborn.record).length).toBe(2);
    expect(ran.err).toContain('(no more input: no)');
    expect(ran.err).toContain('nothing was changed');
    expect((await open(e)).data.database_url).toBe('pw-HOME-Sekr1t');
  });

  it('piped answers are taken one per question, in order: none is lost to an earlier question reading ahead', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    // the editor keeps typing a value YAML reads as an alias: refused each round
    const stubborn = editor(`sed -i 's/^secret_key: .*/secret_key: *Zq8alias/' "$1"`);
    const twice = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: stubborn.cmd }, 'y\ny\nn\n');
    expect(twice.code, twice.err).toBe(1);
    // before: the first question read all three lines, the second found none left ("no more input: no")
    expect(recorded(stubborn.record).length).toBe(3);
    expect(twice.err.match(/Reopen the editor to fix it\? \[Y\/n\] (\S+)/g)).toEqual(['y', 'y', 'n'].map((a) => `Reopen the editor to fix it? [Y/n] ${a}`));
    expect(twice.err).not.toContain('no more input');
    expect(twice.err).not.toContain('Zq8alias');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  });
});

describe('ops secrets edit', () => {
  it('re-encrypts what changed, in a private temporary file that is then removed', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const ed = editor(`sed -i 's/^datapass_client_id: .*/datapass_client_id: 10.0.0.9/' "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd });
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toBe('environments/qa/secrets.sops.yaml: updated (changed datapass_client_id)\n');
    const [rec] = recorded(ed.record);
    expect(rec).toMatchObject({ mode: '600', dirMode: '700' });
    expect(existsSync(rec!.file)).toBe(false);
    expect(existsSync(join(rec!.file, '..'))).toBe(false);
    expect((await open(e)).data.datapass_client_id).toBe('10.0.0.9');
    // only datapass_client_id's ciphertext (and the MAC) changed
    const after = readFileSync(e.secrets, 'utf8');
    const line = (t: string, k: string) => t.split('\n').find((l) => l.startsWith(`${k}:`));
    expect(line(after, 'datapass_client_id')).not.toBe(line(before, 'datapass_client_id'));
    for (const k of ['secret_key', 'database_url', 'config_repo_api_key']) expect(line(after, k)).toBe(line(before, k));
  });

  it('an unchanged file leaves the ciphertext byte-identical', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    for (const body of ['exit 0', `cp "$1" "$1.x" && mv "$1.x" "$1"`]) {
      const ed = editor(body);
      const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, VISUAL: ed.cmd });
      expect(r.out).toBe('environments/qa/secrets.sops.yaml: no changes\n');
      expect(readFileSync(e.secrets, 'utf8')).toBe(before);
      expect(existsSync(recorded(ed.record)[0]!.file)).toBe(false);
    }
  });

  it('invalid YAML: reopen and fix, or abort; never a half-written file', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    // abort
    const bad = editor(`printf 'datapass_client_id: [unclosed\\n' > "$1"`);
    const aborted = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: bad.cmd }, 'n\n');
    expect(aborted.code).toBe(1);
    expect(aborted.err).toContain('the edited text is not valid YAML at line 2');
    expect(aborted.err).toContain('Reopen the editor to fix it? [Y/n]');
    expect(aborted.err).toContain('nothing was changed');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    expect(existsSync(recorded(bad.record)[0]!.file)).toBe(false);
    // end of input counts as "no"
    expect((await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: bad.cmd }, '')).code).toBe(1);
    // reopen: the second run sees the broken text, and fixes it
    const count = join(tempDir(), 'n');
    const fix = editor(`n=$(cat '${count}' 2>/dev/null || echo 0); echo $((n+1)) > '${count}'
if [ "$n" = 0 ]; then printf 'datapass_client_id: [unclosed\\n' >> "$1"; else grep -q unclosed "$1" && sed -i '/unclosed/d; s/^datapass_client_id: .*/datapass_client_id: fixed.example.org/' "$1"; fi`);
    const fixed = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: fix.cmd }, 'y\n');
    expect(fixed.code).toBe(0);
    expect(recorded(fix.record).length).toBe(2);
    expect((await open(e)).data.datapass_client_id).toBe('fixed.example.org');
    for (const r of recorded(fix.record)) expect(existsSync(r.file)).toBe(false);
  });

  it('a value typed unquoted that sops reads as another number (01234: octal; long digits: a float) is named, never shown, and asked about: reopen to quote it, or abort', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    // numbers as typed (5432, 1.5, true, an existing value printed back) and yes/on (strings to sops) pass unasked
    const fine = editor(`printf 'port: 5432\\nratio: 1.5\\nflag: true\\nword: yes\\nsw: on\\nquoted: "01234"\\n' >> "$1"`);
    const ok = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: fine.cmd }, '');
    expect(ok.code).toBe(0);
    expect(ok.err).not.toContain('Reopen');
    // short values are saved, with a warning each (weak.ts); a boolean is not masked, so not weak
    expect(ok.err.match(/^warning: secret "(\w+)" is weak/gm)).toEqual(['port', 'ratio', 'word', 'sw', 'quoted'].map((k) => `warning: secret "${k}" is weak`));
    expect((await open(e)).data).toMatchObject({ port: 5432n, ratio: 1.5, flag: true, word: 'yes', sw: 'on', quoted: '01234' }); // an int: a bigint (SecretsFile.data)
    const kept = readFileSync(e.secrets, 'utf8');
    // abort: nothing written, keys and kinds named, values never printed
    const typed = `printf 'zip: 01234\\nbig: 0123456789012345678901\\nhex: 0x1F\\nlist:\\n  - 0777\\n' >> "$1"`;
    const bad = editor(typed);
    const aborted = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: bad.cmd }, 'n\n');
    expect(aborted.code).toBe(1);
    expect(aborted.err).toContain('4 values typed without quotes would not be stored as typed:');
    expect(aborted.err).toContain('zip: typed as digits with a leading 0, which sops reads as an octal number: another number would be stored, without the leading 0');
    expect(aborted.err).toContain('big: typed as digits with a leading 0, which sops reads as a floating-point number: leading zeros are dropped and digits past the 17th rounded');
    expect(aborted.err).toContain('hex: sops reads what was typed as an integer, stored in another form than typed');
    expect(aborted.err).toContain('list[0]: typed as digits with a leading 0, which sops reads as an octal number');
    expect(aborted.err).toContain('put each in double quotes: key: "..."');
    expect(aborted.err).toContain('Reopen the editor to fix it? [Y/n]');
    expect(aborted.err).toContain('zip, big, hex, list[0] would not be stored as typed (quote them); nothing was changed');
    expect(aborted.out + aborted.err).not.toMatch(/01234|668|0123456789012345678901|1\.234|0x1F|31|0777|511/);
    expect(readFileSync(e.secrets, 'utf8')).toBe(kept);
    // reopen: the second run quotes the value, which is then stored as typed
    const count = join(tempDir(), 'n');
    const fix = editor(`n=$(cat '${count}' 2>/dev/null || echo 0); echo $((n+1)) > '${count}'
if [ "$n" = 0 ]; then printf 'zip: 01234\\n' >> "$1"; else sed -i 's/^zip: 01234$/zip: "01234"/' "$1"; fi`);
    const fixed = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: fix.cmd }, 'y\n');
    expect(fixed.code).toBe(0);
    expect(recorded(fix.record).length).toBe(2);
    expect((await open(e)).data.zip).toBe('01234');
    expect(before).not.toBe(kept);
  });

  it('an emptied text (nothing, blanks, or comments only) aborts with nothing changed, never deletes every secret', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    for (const body of ['truncate -s0 "$1"', `printf '\\n  \\n' > "$1"`, `printf '# all gone\\n\\n' > "$1"`]) {
      const ed = editor(body);
      const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd });
      expect(r.code, body).toBe(1);
      expect(r.err, body).toContain('the edited text is empty (nothing but blank lines or comments): taken as an abort, nothing was changed');
      expect(r.out, body).not.toContain('removed');
      expect(readFileSync(e.secrets, 'utf8'), body).toBe(before);
      expect(existsSync(recorded(ed.record)[0]!.file)).toBe(false);
    }
  });

  it('creates the secrets file when there is none (recipients from .sops.yaml)', async () => {
    const e = await newEnv();
    rmSync(e.secrets);
    const ed = editor(`printf 'database_url: postgresql://x\\nnested:\\n  key: v\\n' > "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd });
    expect(r.out).toBe('environments/qa/secrets.sops.yaml: created (added database_url, nested.key)\n');
    expect((await open(e)).data).toEqual({ database_url: 'postgresql://x', nested: { key: 'v' } });
  });

  it('an editor that fails changes nothing', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    const ed = editor(`echo 'datapass_client_id: x' > "$1"; exit 3`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd });
    expect(r.code).toBe(1);
    expect(r.err).toContain('the editor exited with code 3; nothing was changed');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    expect(existsSync(recorded(ed.record)[0]!.file)).toBe(false);
  });

  it('an EDITOR the shell cannot find or run (exit 127, 126) is said as that, with how to set one, not as the editor failing: a usage error (exit 2), nothing left', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    for (const [EDITOR, why] of [['no-such-editor-zq7', 'found no such command (exit 127)'], [e.root, 'could not run it (not an executable file) (exit 126)'], ['/nonexistent', 'found no such command (exit 127)']] as const) {
      const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR });
      expect(r.code, EDITOR).toBe(2);
      expect(r.err, EDITOR).toContain(`error: cannot start the editor "${EDITOR}": the shell ${why}; nothing was changed\n  hint: set EDITOR to an installed editor`);
    }
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  });

  it('$VISUAL is used before $EDITOR (as git, sudoedit and crontab do), and a hint names the variable that chose the editor', async () => {
    const e = await newEnv();
    const visual = editor('exit 0');
    const plain = editor('exit 0');
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, VISUAL: visual.cmd, EDITOR: plain.cmd });
    expect(r.code, r.err).toBe(0);
    expect(recorded(visual.record)).toHaveLength(1);
    expect(existsSync(plain.record)).toBe(false);
    const broken = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, VISUAL: 'no-such-editor-zq7', EDITOR: plain.cmd });
    expect(broken.err).toContain('error: cannot start the editor "no-such-editor-zq7": the shell found no such command (exit 127); nothing was changed\n  hint: set VISUAL to an installed editor, e.g. VISUAL=nano');
    expect(broken.err).toContain('($VISUAL is used before $EDITOR)');
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} while the editor runs: the edit is dropped and the temporary file removed`, async () => {
      const e = await newEnv();
      const before = readFileSync(e.secrets, 'utf8');
      // the editor changes the file, then the ops process is signalled; the editor is stopped by ops
      const ed = editor(`echo 'datapass_client_id: changed' > "$1"; kill -${signal.slice(3)} $PPID; sleep 30`);
      const entry = fileURLToPath(new URL('./secrets-cli.entry.ts', import.meta.url));
      const child = spawn(process.execPath, ['--import', 'tsx', '--import', fileURLToPath(new URL('../../scripts/register-text-modules.js', import.meta.url)), entry, 'secrets', 'edit', 'qa'], {
        env: { PATH: process.env.PATH, HOME: e.root, OPS_ROOT: e.root, EDITOR: ed.cmd, ...e.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr.on('data', (c) => (err += String(c)));
      const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
      expect(err).toContain('interrupted');
      expect(code).toBe(signal === 'SIGINT' ? 130 : 143);
      expect(readFileSync(e.secrets, 'utf8')).toBe(before);
      expect(existsSync(recorded(ed.record)[0]!.file)).toBe(false);
    }, 30_000);
  }
});

describe('ops secrets edit with no $EDITOR/$VISUAL and stdin not a terminal (CI, a pipe)', () => {
  it('ends at once with an error saying to set $EDITOR or run it in a terminal, instead of waiting forever in vi; nothing changed', () => {
    const e = (async () => newEnv())();
    return e.then((e) => {
      const before = readFileSync(e.secrets, 'utf8');
      const started = Date.now();
      const r = spawnSync(process.execPath, [fileURLToPath(new URL('../../scripts/ops-bin.js', import.meta.url)), 'secrets', 'edit', 'qa'], {
        env: { PATH: process.env.PATH, HOME: e.root, OPS_ROOT: e.root, ...e.env },
        input: '',
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(Date.now() - started).toBeLessThan(15_000); // it returned on its own, not stopped by the timeout
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/^error: no \$EDITOR or \$VISUAL is set and stdin is not a terminal: vi, the default editor, would wait forever for keys; nothing was changed\n  hint: run it in a terminal, or set EDITOR to an editor that needs none \(EDITOR='code --wait'\), or set one value: printf '%s' "\$VALUE" \| ops secrets set qa <key>\n$/);
      expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    });
  }, 40_000);
});

describe('ops secrets edit with a terminal editor set and stdin not a terminal (CI, a pipe)', () => {
  it('vim, nano, emacs (no display), emacsclient -t... are refused before anything is decrypted; GUI editors and scripts are run', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    // stand-ins on PATH under the editors' names, each exiting at once as if nothing was edited: run, they leave "no changes"
    const bin = tempDir('ops-editors-');
    for (const name of ['vim', 'nvim', 'nano', 'hx', 'emacs', 'emacsclient', 'code', 'subl', 'gvim']) {
      writeFileSync(join(bin, name), '#!/bin/sh\nexit 0\n');
      chmodSync(join(bin, name), 0o755);
    }
    const PATH = `${bin}:${process.env.PATH}`;
    for (const [EDITOR, program] of [['vim', 'vim'], [`${bin}/nvim -u NONE`, 'nvim'], ['nano', 'nano'], ['FOO=1 env hx', 'hx'], ['emacs', 'emacs'], ['emacsclient -t', 'emacsclient'], ['vi', 'vi']]) {
      // no age key given: a decryption would fail otherwise, so the refusal comes first
      const r = await cli(e.root, ['secrets', 'edit', 'qa'], { PATH, EDITOR }, '');
      expect(r.code, EDITOR).toBe(2);
      expect(r.err, EDITOR).toBe(
        `error: $EDITOR is ${program}, an editor that needs a terminal, and stdin is not a terminal (CI, a pipe): it would wait forever for keys; nothing was changed\n` +
          `  hint: run it in a terminal, or use a GUI editor that waits for its window to close (EDITOR='code --wait', 'subl -w'), or set one value: printf '%s' "$VALUE" | ops secrets set qa <key>\n`,
      );
    }
    // a mistyped environment is said first, not the editor (set, it would only lead there)
    expect((await cli(e.root, ['secrets', 'edit', 'qa2'], { PATH, EDITOR: 'vim' }, '')).err).toMatch(/^error: no environment "qa2": environments\/qa2\/ does not exist \(did you mean qa\?\)\n  hint: the environments are qa;/);
    const visual = await cli(e.root, ['secrets', 'edit', 'qa'], { PATH, VISUAL: 'nano' }, '');
    expect(visual.err).toContain('error: $VISUAL is nano, an editor that needs a terminal');
    // under npm (npm run ops, npx), EDITOR=vi is what npm 11 sets when the user set none: not called the user's choice
    const npm = { PATH, EDITOR: 'vi', npm_lifecycle_event: 'ops', npm_command: 'run-script', npm_execpath: '/usr/lib/node_modules/npm/bin/npm-cli.js' };
    expect((await cli(e.root, ['secrets', 'edit', 'qa'], npm, '')).err).toBe(
      'error: $EDITOR is vi, npm\'s default editor (npm sets it when you set no EDITOR or VISUAL), which needs a terminal, and stdin is not a terminal (CI, a pipe): it would wait forever for keys; nothing was changed\n' +
        `  hint: run it in a terminal, or choose an editor that needs none, which npm passes on: EDITOR='code --wait' npx ops secrets edit qa (or set VISUAL), or set one value: printf '%s' "$VALUE" | ops secrets set qa <key>\n`,
    );
    // one the user chose is passed on by npm and named as theirs
    expect((await cli(e.root, ['secrets', 'edit', 'qa'], { ...npm, EDITOR: 'nano' }, '')).err).toContain('error: $EDITOR is nano, an editor that needs a terminal');
    expect((await cli(e.root, ['secrets', 'edit', 'qa'], { ...npm, VISUAL: 'vi' }, '')).err).toContain('error: $VISUAL is vi, an editor that needs a terminal');
    for (const [EDITOR, extra] of [['code --wait', {}], ['subl -w', {}], ['gvim -f', {}], ['emacs', { DISPLAY: ':0' }], ['emacsclient', {}], [editor('').cmd, {}]] as const) {
      const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, PATH, EDITOR, ...extra }, '');
      expect(r.code, `${EDITOR}: ${r.err}`).toBe(0);
      expect(r.out, EDITOR).toContain('no changes');
    }
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  });
});

describe('ops secrets edit with stdout not a terminal (piped, a CI log)', () => {
  it('the editor\'s screen (a terminal editor draws the plaintext there) does not reach stdout', async () => {
    const e = await newEnv();
    const set = await cli(e.root, ['secrets', 'set', 'qa', 'database_url'], e.env, 'postgresql://app:Zq8-drawn-on-screen@db/app');
    expect(set.code, set.err).toBe(0);
    // `cat` stands for vi drawing its screen: the text on the editor's stdout
    const entry = fileURLToPath(new URL('./secrets-cli.entry.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', '--import', fileURLToPath(new URL('../../scripts/register-text-modules.js', import.meta.url)), entry, 'secrets', 'edit', 'qa'], {
      env: { PATH: process.env.PATH, HOME: e.root, OPS_ROOT: e.root, EDITOR: 'cat', ...e.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += String(c)));
    child.stderr.on('data', (c) => (err += String(c)));
    const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    expect(code, err).toBe(0);
    expect(out + err).toContain('no changes');
    expect(out + err).not.toContain('Zq8-drawn-on-screen');
  }, 30_000);
});

describe('ops secrets rotate / recipients', () => {
  it('rotate: a new data key for every sops file of the environment, values kept', async () => {
    const e = await newEnv();
    const asset = join(e.root, 'environments/qa/assets/initdata.yml');
    const rule = readFileSync(join(e.root, '.sops.yaml'), 'utf8').match(/age: (\S+)/)![1]!;
    await SecretsFile.create(asset, fromPlain({ users: [{ email: 'a@example.org', password: '__env__' }] }) as MapNode, { recipients: [rule] }).save();
    writeFileSync(join(e.root, 'environments/qa/assets/plain.yml'), 'not: encrypted\n');
    const s1 = await open(e);
    const a1 = await SecretsFile.open(asset, { identities: await identitiesFromText(e.key) });
    const r = await cli(e.root, ['secrets', 'rotate', 'qa'], e.env);
    expect(r.code).toBe(0);
    expect(r.out).toBe('environments/qa/secrets.sops.yaml: new data key, for 1 recipient\nenvironments/qa/assets/initdata.yml: new data key, for 1 recipient\n');
    const s2 = await open(e);
    const a2 = await SecretsFile.open(asset, { identities: await identitiesFromText(e.key) });
    expect(s2.dataKeyForTests().equals(s1.dataKeyForTests())).toBe(false);
    expect(a2.dataKeyForTests().equals(a1.dataKeyForTests())).toBe(false);
    expect(s2.tree).toEqual(s1.tree);
    expect(a2.tree).toEqual(a1.tree);
    expect(readFileSync(join(e.root, 'environments/qa/assets/plain.yml'), 'utf8')).toBe('not: encrypted\n');
  });

  it('add, remove (that key can no longer decrypt), and sync from .sops.yaml', async () => {
    const e = await newEnv();
    const dir = tempDir();
    const k2File = join(dir, 'k2.txt');
    const kg = await cli(e.root, ['keygen', '--output', k2File]);
    expect(kg.code).toBe(0);
    const r2 = kg.out.trim();
    expect(statSync(k2File).mode & 0o777).toBe(0o600);
    const k2 = readFileSync(k2File, 'utf8');

    const add = await cli(e.root, ['secrets', 'recipients', 'qa', 'add', r2], e.env);
    expect(add.code).toBe(0);
    expect((await open(e, k2)).data.secret_key).toBe((await open(e)).data.secret_key);
    expect(readFileSync(join(e.root, '.sops.yaml'), 'utf8')).toContain(`,${r2}`);

    const list = await cli(e.root, ['secrets', 'recipients', 'qa'], e.env);
    expect(list.out.match(new RegExp(r2, 'g'))?.length).toBe(2); // in the rule and in the file
    expect(list.err).toBe('');

    const keyBefore = (await open(e)).dataKeyForTests();
    const rm = await cli(e.root, ['secrets', 'recipients', 'qa', 'remove', r2], e.env);
    expect(rm.code).toBe(0);
    expect(rm.err).toContain('can still open old copies');
    await expect(open(e, k2)).rejects.toThrow(`none of your age identities (${r2}) is a recipient of`);
    expect((await open(e)).dataKeyForTests().equals(keyBefore)).toBe(false);
    expect(readFileSync(join(e.root, '.sops.yaml'), 'utf8')).not.toContain(r2);
    const viaCli = await cli(e.root, ['secrets', 'show', 'qa'], { SOPS_AGE_KEY_FILE: k2File });
    expect(viaCli.code).toBe(1);
    expect(viaCli.err).toContain('none of your age identities');

    // someone edits .sops.yaml by hand: sync brings the file in line
    const cfg = join(e.root, '.sops.yaml');
    writeFileSync(cfg, readFileSync(cfg, 'utf8').replace(/age: (\S+)/, `age: $1,${r2}`));
    expect((await cli(e.root, ['secrets', 'recipients', 'qa'], e.env)).err).toContain('run `ops secrets recipients qa sync`');
    const sync = await cli(e.root, ['secrets', 'recipients', 'qa', 'sync'], e.env);
    expect(sync.out).toBe(`environments/qa/secrets.sops.yaml: added ${r2}\n`);
    expect((await open(e, k2)).data.datapass_client_id).toBeDefined();
    expect((await cli(e.root, ['secrets', 'recipients', 'qa', 'sync'], e.env)).out).toBe('environments/qa/secrets.sops.yaml: already in sync\n');

    const last = await cli(e.root, ['secrets', 'recipients', 'qa', 'remove', 'age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq'], e.env);
    expect(last.code).toBe(1);
    expect(last.err).toContain('is not a recipient of');
  });

  it('encrypt to none of your own keys (a .sops.yaml rule listing others only): refused, nothing changed, unless --force', async () => {
    const e = await newEnv();
    const mine = (await identitiesFromText(e.key)).identities[0]!.recipient;
    const k2File = join(tempDir(), 'k2.txt');
    const r2 = (await cli(e.root, ['keygen', '--output', k2File])).out.trim();
    const cfg = join(e.root, '.sops.yaml');
    writeFileSync(cfg, readFileSync(cfg, 'utf8').replace(mine, r2)); // the rule names someone else's key only
    const plain = join(e.root, 'environments', 'qa', 'assets', 'data.yml');
    writeFileSync(plain, 'a: Zq8-plain-value\n');
    const r = await cli(e.root, ['secrets', 'encrypt', plain], e.env);
    expect(r.code, r.err).toBe(1);
    expect(r.err).toContain(`environments/qa/assets/data.yml would be encrypted to ${r2} (the .sops.yaml rule for it), none of them a key of yours (${mine} (your key from ${e.keyFile})): you could no longer decrypt it`);
    expect(r.err).toContain('nothing was changed');
    expect(r.err).toContain(`ops secrets recipients qa add <age1...>`);
    expect(r.err).toContain('ops secrets encrypt environments/qa/assets/data.yml --force');
    expect(readFileSync(plain, 'utf8')).toBe('a: Zq8-plain-value\n');
    // no key of yours at all: said where ops looked
    const none = await cli(e.root, ['secrets', 'encrypt', plain], { HOME: tempDir() });
    expect(none.code, none.err).toBe(1);
    expect(none.err).toMatch(/and you hold no age or SSH key \(looked at: .*\): you could no longer decrypt it/);
    // holding that key: encrypted; --force without it: encrypted, as asked
    expect((await cli(e.root, ['secrets', 'encrypt', plain], { SOPS_AGE_KEY_FILE: k2File })).code).toBe(0);
    writeFileSync(plain, 'a: Zq8-plain-value\n');
    const forced = await cli(e.root, ['secrets', 'encrypt', plain, '--force'], e.env);
    expect(forced.code, forced.err).toBe(0);
    expect(forced.out).toContain('encrypted to 1 recipient(s)');
  });

  it('remove or sync taking away the last of your own keys: refused, nothing changed, unless --force', async () => {
    const e = await newEnv();
    const mine = (await identitiesFromText(e.key)).identities[0]!.recipient;
    const k2File = join(tempDir(), 'k2.txt');
    const r2 = (await cli(e.root, ['keygen', '--output', k2File])).out.trim();
    expect((await cli(e.root, ['secrets', 'recipients', 'qa', 'add', r2], e.env)).code).toBe(0);
    const cfg = join(e.root, '.sops.yaml');
    const files = () => [readFileSync(e.secrets, 'utf8'), readFileSync(cfg, 'utf8')];
    const before = files();

    const rm = await cli(e.root, ['secrets', 'recipients', 'qa', 'remove', mine], e.env);
    expect(rm.code, rm.err).toBe(1);
    expect(rm.err).toContain(`this would remove ${mine} (your key from ${e.keyFile}), the only age key of yours that qa's secrets are encrypted to: you could no longer decrypt them`);
    expect(rm.err).toContain('nothing was changed');
    expect(rm.err).toContain(`ops secrets recipients qa remove ${mine} --force`);
    expect(rm.err).toContain('add another key of yours first');
    expect(files()).toEqual(before);

    // sync to a .sops.yaml edited by hand that no longer lists your key: the same
    writeFileSync(cfg, before[1]!.replace(`${mine},${r2}`, r2));
    const sync = await cli(e.root, ['secrets', 'recipients', 'qa', 'sync'], e.env);
    expect(sync.code, sync.err).toBe(1);
    expect(sync.err).toContain(`.sops.yaml does not list ${mine} (your key from ${e.keyFile}): a sync would remove it, the only age key of yours`);
    expect(sync.err).toContain('ops secrets recipients qa sync --force');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before[0]);
    writeFileSync(cfg, before[1]!);

    // holding the other key too: you keep access, nothing to confirm
    const both = `${e.key}\n${readFileSync(k2File, 'utf8')}`;
    const kept = await cli(e.root, ['secrets', 'recipients', 'qa', 'remove', mine], { SOPS_AGE_KEY: both });
    expect(kept.code, kept.err).toBe(0);
    expect((await cli(e.root, ['secrets', 'recipients', 'qa', 'add', mine], { SOPS_AGE_KEY: both })).code).toBe(0);

    // --force: done, and said as any remove is
    const forced = await cli(e.root, ['secrets', 'recipients', 'qa', 'remove', mine, '--force'], e.env);
    expect(forced.code, forced.err).toBe(0);
    expect(forced.out).toContain(`removed ${mine}`);
    await expect(open(e)).rejects.toThrow('none of your age identities');

    // a flag that means nothing there is refused, not ignored
    const add = await cli(e.root, ['secrets', 'recipients', 'qa', 'add', mine, '--force'], { SOPS_AGE_KEY_FILE: k2File });
    expect(add.code).toBe(2);
    expect(add.err).toContain('--force applies to remove and sync only');
  });
});

describe('generators', () => {
  it('keygen prints a key file and its recipient; --output never overwrites', async () => {
    const root = tempRoot();
    const r = await cli(root, ['keygen']);
    expect(r.out).toMatch(/^# created: \S+\n# public key: (age1[0-9a-z]+)\nAGE-SECRET-KEY-1[0-9A-Z]+\n$/);
    const recipient = /# public key: (\S+)/.exec(r.out)![1]!;
    const ids = await identitiesFromText(r.out);
    expect(ids.identities[0]!.recipient).toBe(recipient);
    const file = join(tempDir(), 'k.txt');
    writeFileSync(file, 'existing');
    const again = await cli(root, ['keygen', '-o', file]);
    expect(again.code).toBe(1);
    expect(again.err).toContain('it already exists');
    expect(readFileSync(file, 'utf8')).toBe('existing');
  });

  it('secretkey and apikey print fresh URL-safe tokens', async () => {
    const root = tempRoot();
    const [s1, s2] = [(await cli(root, ['secretkey'])).out, (await cli(root, ['secretkey'])).out];
    expect(s1).toMatch(/^[A-Za-z0-9_-]{86}\n$/);
    expect(s1).not.toBe(s2);
    expect((await cli(root, ['apikey'])).out).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
    expect(readdirSync(root).sort()).toEqual(['environments', 'package.json']);
  });
});

describe('the temporary folders of these tests', () => {
  let made = '';
  it('a folder a test makes (tempDir: projects, keys, editors) exists while it runs', () => {
    made = tempDir();
    writeFileSync(join(made, 'f'), 'x');
    expect(existsSync(made)).toBe(true);
  });

  it('and is removed once that test ended (no /tmp/ops-secrets-test-* left behind)', () => {
    expect(made).not.toBe('');
    expect(existsSync(made)).toBe(false);
  });
});

describe('an environment name that does not exist', () => {
  it('every secrets command names the environments there and `ops env new`, never a command that would create the typo', async () => {
    const e = await newEnv();
    const rules = readFileSync(join(e.root, '.sops.yaml'), 'utf8');
    const recipient = (await cli(e.root, ['secrets', 'recipients', 'qa'], e.env)).out.match(/age1[0-9a-z]+/)![0];
    for (const argv of [['show', 'qz'], ['show', 'qz', '--key', 'a'], ['set', 'qz', 'a'], ['edit', 'qz'], ['rotate', 'qz'], ['recipients', 'qz'], ['recipients', 'qz', 'add', recipient], ['recipients', 'qz', 'sync']]) {
      const r = await cli(e.root, ['secrets', ...argv], { ...e.env, EDITOR: 'false' }, 'value-Zq7w');
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toContain('no environment "qz": environments/qz/ does not exist (did you mean qa?)');
      expect(r.err, argv.join(' ')).toContain('hint: the environments are qa; a new one is made with `ops env new <name>`');
      expect(r.err, argv.join(' ')).not.toMatch(/(edit|set|add|new) qz/);
    }
    expect(readFileSync(join(e.root, '.sops.yaml'), 'utf8')).toBe(rules);
    expect(existsSync(join(e.root, 'environments', 'qz'))).toBe(false);
  });

  it('`set` refuses it before reading the value: no weak-value warning about a value that is not stored', async () => {
    const e = await newEnv();
    const r = await cli(e.root, ['secrets', 'set', 'qz', 'a'], e.env, 'x');
    expect(r.code).toBe(2);
    expect(r.err).toContain('no environment "qz"');
    expect(r.err).not.toContain('weak');
  });
});

describe('a value the file\'s sops rules leave unencrypted (a key ending in _unencrypted)', () => {
  it('set: stored as sops stores it (in clear), with a warning naming the key and the rule, never the value', async () => {
    const e = await newEnv();
    for (const key of ['api_unencrypted', 'cfg_unencrypted.token']) {
      const r = await cli(e.root, ['secrets', 'set', 'qa', key], e.env, 'Zq8-clear-value-123');
      expect(r.code, r.err).toBe(0);
      expect(r.err).toContain(`warning: ${key} is stored in plain text in environments/qa/secrets.sops.yaml, not encrypted: the file's sops rules (unencrypted_suffix "_unencrypted")`);
      expect(r.err).not.toContain('Zq8-clear-value-123');
    }
    const quiet = await cli(e.root, ['secrets', 'set', 'qa', 'api_key2'], e.env, 'Zq8-secret-value-123');
    expect(quiet.err).not.toContain('plain text');
  });

  it('encrypt: each value left in clear is named', async () => {
    const e = await newEnv();
    const file = join(e.root, 'environments', 'qa', 'assets', 'users.yml');
    writeFileSync(file, 'users:\n  - email: a@example.org\n    password_unencrypted: Zq8-clear-value-123\n    password: Zq8-secret-value-123\n');
    const r = await cli(e.root, ['secrets', 'encrypt', file], e.env);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/warning: users\[0\]\.password_unencrypted is stored in plain text in \S*environments\/qa\/assets\/users\.yml, not encrypted/);
    expect(r.err).not.toContain('Zq8-');
  });

  it('edit: a new or changed one is named; one left as it was is not', async () => {
    const e = await newEnv();
    const added = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: editor(`printf 'note_unencrypted: Zq8-clear-value-123\\n' >> "$1"`).cmd });
    expect(added.code, added.err).toBe(0);
    expect(added.err).toMatch(/warning: note_unencrypted is stored in plain text in \S*environments\/qa\/secrets\.sops\.yaml, not encrypted/);
    expect(added.err).not.toContain('Zq8-clear-value-123');
    const other = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: editor(`printf 'other: Zq8-secret-value-123\\n' >> "$1"`).cmd });
    expect(other.code, other.err).toBe(0);
    expect(other.err).not.toContain('plain text');
  });
});

describe('OPS_ROOT', () => {
  const opsRoot = (value: string, argv: string[]) => runOps(argv, { processEnv: { PATH: process.env.PATH, HOME: '/nonexistent', OPS_ROOT: value, INIT_CWD: tempDir() } });

  it('mistyped (no such folder, a file, a folder without environments/) is refused naming it, never taken for an empty project', async () => {
    const dir = tempDir('ops-root-');
    writeFileSync(join(dir, 'file'), '');
    for (const [value, what] of [[join(dir, 'nope'), 'does not exist'], [join(dir, 'file'), 'is not a folder'], [dir, 'has no environments/ folder']] as const) {
      for (const argv of [['secrets', 'show', 'qa'], ['env', 'new', 'qa']]) {
        const r = await opsRoot(value, argv);
        expect(r.code, `${value} ${argv.join(' ')}`).toBe(2);
        expect(r.err).toContain(`OPS_ROOT=${value} is not an ops project: ${value} ${what}`);
        expect(r.err).toContain('set OPS_ROOT to the project folder');
        expect(r.err).not.toContain('has no environments yet');
      }
    }
    expect(existsSync(join(dir, 'nope'))).toBe(false);
    expect(existsSync(join(dir, 'environments'))).toBe(false);
  });

  it('a project folder, relative paths from where ops was run, is taken as the project', async () => {
    const e = await newEnv();
    const r = await runOps(['secrets', 'recipients', 'qa'], { processEnv: { PATH: process.env.PATH, HOME: '/nonexistent', OPS_ROOT: '.', INIT_CWD: e.root, ...e.env } });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/age1/);
  });

  it('a ~ the shell left (quoted) is the home directory; a folder inside a project (its environments/) names the project', async () => {
    const e = await newEnv();
    const home = dirname(e.root);
    const tilde = await runOps(['secrets', 'recipients', 'qa'], { processEnv: { PATH: process.env.PATH, HOME: home, OPS_ROOT: `~/${basename(e.root)}`, INIT_CWD: tempDir(), ...e.env } });
    expect(tilde.code, tilde.err).toBe(0);
    const inside = await opsRoot(join(e.root, 'environments'), ['secrets', 'recipients', 'qa']);
    expect(inside.code).toBe(2);
    expect(inside.err).toContain(`hint: it is inside the project ${e.root}: set OPS_ROOT=${e.root}, or unset it`);
  });
});

describe('the project not found', () => {
  it('says what was looked for and from where, which folder has only one of the two, and how to fix it', () => {
    const root = tempDir('ops-noproject-');
    mkdirSync(join(root, 'environments', 'qa'), { recursive: true });
    const err = (() => {
      try {
        findRoot(join(root, 'environments', 'qa'));
      } catch (e) {
        return e as OpsError;
      }
      throw new Error('found a root');
    })();
    expect(err.message).toContain(`looked for a folder holding both an environments/ folder and a package.json, in ${join(root, 'environments', 'qa')} (the current directory) and each folder above it`);
    expect(err.message).toContain(`${root} has environments/ but no package.json`);
    expect(err.message).not.toContain('no environments/ folder found');
    expect(err.hint).toContain('set OPS_ROOT to the project folder');
    expect(err.hint).toContain('`npm init -y` writes a package.json');
  });

  it('an environments that is a file, not a folder, is said so (from the current directory and through OPS_ROOT)', async () => {
    const root = tempDir('ops-noproject-');
    writeFileSync(join(root, 'package.json'), '{}');
    writeFileSync(join(root, 'environments'), '');
    expect(() => findRoot(root)).toThrow(`${root} has a package.json but no environments/ folder (its environments is a file)`);
    const r = await runOps(['config', 'qa'], { processEnv: { PATH: process.env.PATH, HOME: '/nonexistent', OPS_ROOT: root, INIT_CWD: root } });
    expect(r.err).toContain(`${root} has no environments/ folder (its environments is a file)`);
  });
});

describe('ops secrets set interrupted while reading the value', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} while a stdin nobody ends is read: exit ${signal === 'SIGINT' ? 130 : 143}, said, nothing changed (not the part read stored)`, async () => {
      const e = await newEnv();
      const before = readFileSync(e.secrets, 'utf8');
      const stdin = new PassThrough();
      stdin.write('partial-Zq7w');
      const err = new PassThrough();
      let said = '';
      err.on('data', (c) => (said += String(c)));
      const listening = process.listenerCount(signal);
      const run = runCli(secretCommands, { argv: ['secrets', 'set', 'qa', 'k'], root: e.root, processEnv: { PATH: process.env.PATH, HOME: e.root, ...e.env }, stdin, stdout: new PassThrough(), stderr: err });
      // the signal as the process gets it, once set listens for it (a real one before that ends the process, as ever)
      for (let waited = 0; process.listenerCount(signal) === listening; waited += 10) {
        if (waited > 10_000) throw new Error(`ops secrets set never listened for ${signal} while reading stdin: it would end without a word`);
        await new Promise((r) => setTimeout(r, 10));
      }
      process.emit(signal, signal);
      expect(await run).toBe(signal === 'SIGINT' ? 130 : 143);
      expect(said).toBe(`error: interrupted${signal === 'SIGINT' ? '' : ` by ${signal}`} while reading the value from stdin; nothing was changed\n`);
      expect(process.listenerCount(signal)).toBe(listening);
      expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    });
  }
});

describe('a lock left on the secrets file', () => {
  const lockOf = (e: Env) => `${e.secrets}.lock`;
  const leaveLock = (e: Env, ageMs = 0) => {
    mkdirSync(lockOf(e));
    const t = new Date(Date.now() - ageMs);
    utimesSync(lockOf(e), t, t);
  };

  it('held by another command (refreshed): said after a second what is waited for and how to clear it; taken when released', async () => {
    const e = await newEnv();
    leaveLock(e);
    // the holder refreshes it, as proper-lockfile does every 5 s, until it releases it
    const refresh = setInterval(() => utimesSync(lockOf(e), new Date(), new Date()), 1000);
    const release = setTimeout(() => {
      clearInterval(refresh);
      rmSync(lockOf(e), { recursive: true, force: true });
    }, 6000);
    try {
      const r = await cli(e.root, ['secrets', 'set', 'qa', 'k'], e.env, 'value-Zq7w-long');
      expect(r.code, r.err).toBe(0);
      // (paths as typed: relative to the directory the command runs in, absolute here)
      expect(r.err).toContain(`waiting up to 15 s for the lock ${lockOf(e)} (last refreshed `);
      expect(r.err).toMatch(/ s ago; a lock not refreshed for 10 s is taken over\): another command is writing /);
      expect(r.err).toContain(`remove the lock: rm -r ${lockOf(e)}`);
      expect(r.err).not.toContain('was left over');
      expect(((await open(e)).data as Record<string, unknown>).k).toBe('value-Zq7w-long');
    } finally {
      clearInterval(refresh);
      clearTimeout(release);
    }
  });

  // A person's Ctrl-C (SIGINT), or a signal from outside, while ops waits: said, as for every wait of set and edit.
  for (const [what, argv, editorBody] of [
    ['set', ['secrets', 'set', 'qa', 'k'], undefined],
    ['edit', ['secrets', 'edit', 'qa'], `echo 'k: Zq7w-edited' >> "$1"`],
  ] as const) {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      it(`${signal} while ${what} waits for the lock: exit ${signal === 'SIGINT' ? 130 : 143}, "interrupted while waiting for the lock; nothing was changed", the file untouched`, async () => {
        const e = await newEnv();
        const before = readFileSync(e.secrets, 'utf8');
        leaveLock(e);
        const refresh = setInterval(() => utimesSync(lockOf(e), new Date(), new Date()), 1000);
        try {
          const ed = editorBody && editor(editorBody);
          const child = spawn(process.execPath, [fileURLToPath(new URL('../../scripts/ops-bin.js', import.meta.url)), ...argv], {
            cwd: e.root,
            env: { PATH: process.env.PATH, HOME: e.root, OPS_ROOT: e.root, ...(ed ? { EDITOR: ed.cmd } : {}), ...e.env },
            stdio: ['pipe', 'pipe', 'pipe'],
          });
          child.stdin.end(ed ? '' : 'value-Zq7w-long');
          let err = '';
          let sent = false; // once: a second signal, once the first has been handled, ends the process as it would
          child.stdout.on('data', (c) => (err += String(c)));
          child.stderr.on('data', (c) => {
            err += String(c);
            if (!sent && err.includes('waiting up to 15 s for the lock')) sent = child.kill(signal);
          });
          const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
          expect(err).toContain(`interrupted${signal === 'SIGINT' ? '' : ` by ${signal}`} while waiting for the lock environments/qa/secrets.sops.yaml.lock; nothing was changed`); // (relative: run in the project)
          expect(err.split('\n').filter((l) => l.includes('interrupted'))).toHaveLength(1);
          expect(code, err).toBe(signal === 'SIGINT' ? 130 : 143);
          expect(readFileSync(e.secrets, 'utf8')).toBe(before);
          if (ed) expect(existsSync(recorded(ed.record)[0]!.file)).toBe(false);
        } finally {
          clearInterval(refresh);
        }
      }, 60_000);
    }
  }

  it('left over by a command that died (not refreshed for 10 s): taken over at once, and said so', async () => {
    const e = await newEnv();
    leaveLock(e, 20_000);
    const started = Date.now();
    const r = await cli(e.root, ['secrets', 'set', 'qa', 'k'], e.env, 'value-Zq7w-long');
    expect(r.code, r.err).toBe(0);
    expect(Date.now() - started).toBeLessThan(8000);
    expect(r.err).toMatch(/\.lock was left over \(not refreshed for 2\d s: its command died\): taken over/);
    expect(((await open(e)).data as Record<string, unknown>).k).toBe('value-Zq7w-long');
    expect(existsSync(lockOf(e))).toBe(false);
  });

  it('left over, met by several sets at once: each lands, nothing left beside the file', async () => {
    const e = await newEnv();
    leaveLock(e, 20_000);
    const keys = Array.from({ length: 6 }, (_, i) => `after_crash_${i}`);
    const runs = await Promise.all(keys.map((k) => cli(e.root, ['secrets', 'set', 'qa', k], e.env, `value-of-${k}-Zq7w`)));
    for (const r of runs) expect(r.code, r.err).toBe(0);
    const data = (await open(e)).data as Record<string, unknown>;
    for (const k of keys) expect(data[k]).toBe(`value-of-${k}-Zq7w`);
    expect(readdirSync(join(e.root, 'environments', 'qa')).filter((n) => n.includes('.lock'))).toEqual([]);
  });
});

describe('two secrets commands writing one file at once', () => {
  // nothing said but, on a busy machine, that the lock was waited for over a second (the lock says what it waits for)
  const expectLanded = (r: { code: number; err: string }) => {
    expect(r.code, r.err).toBe(0);
    expect(r.err.split('\n').filter((l) => l && !l.startsWith('warning: waiting up to 15 s for the lock ') && !l.startsWith('warning: nothing in environments/qa/environment.yml reads the new secret '))).toEqual([]);
  };

  it('sets run together all land (each reads the file again when another wrote it first); nothing is lost', async () => {
    const e = await newEnv();
    const keys = Array.from({ length: 8 }, (_, i) => `extra_${i}`);
    const runs = await Promise.all(keys.map((k) => cli(e.root, ['secrets', 'set', 'qa', k], e.env, `value-of-${k}-Zq7w`)));
    for (const r of runs) expectLanded(r);
    const data = (await open(e)).data;
    for (const k of keys) expect(data[k]).toBe(`value-of-${k}-Zq7w`);
    expect(readdirSync(join(e.root, 'environments', 'qa'))).not.toContain('secrets.sops.yaml.lock');
  });

  it('many sets at once (more than the machine has cores) all land, spread out by random pauses', async () => {
    const e = await newEnv();
    const keys = Array.from({ length: 24 }, (_, i) => `many_${i}`);
    // each in-process run listens for the stop signals while it runs: 24 at once in one process are no leak
    const limit = process.getMaxListeners();
    process.setMaxListeners(limit + keys.length * 2);
    const runs = await Promise.all(keys.map((k) => cli(e.root, ['secrets', 'set', 'qa', k], e.env, `value-of-${k}-Zq7w`))).finally(() => process.setMaxListeners(limit));
    for (const r of runs) expectLanded(r);
    const data = (await open(e)).data;
    for (const k of keys) expect(data[k]).toBe(`value-of-${k}-Zq7w`);
  }, 60_000);

  it('.sops.yaml changed for two environments at once (a recipient added to each): both rules keep their new recipient', async () => {
    const e = await newEnv();
    const qb = await cli(e.root, ['env', 'new', 'qb']);
    expect(qb.code).toBe(0);
    // Both environments' keys in one key file, as a team member who opens both has.
    writeFileSync(e.keyFile, `${e.key}\n${qb.out.match(/AGE-SECRET-KEY-1[0-9A-Z]+/)![0]}\n`, { mode: 0o600 });
    const recipients = await Promise.all([1, 2].map(async () => (await cli(e.root, ['keygen', '--output', join(tempDir(), 'k.txt')])).out.trim()));
    const runs = await Promise.all(['qa', 'qb'].map((env, i) => cli(e.root, ['secrets', 'recipients', env, 'add', recipients[i]!], e.env)));
    for (const r of runs) expect(r.code, r.err).toBe(0);
    const rules = readFileSync(join(e.root, '.sops.yaml'), 'utf8');
    for (const r of recipients) expect(rules).toContain(r);
    // And the files agree with their rules: nothing for `recipients sync` to take back.
    for (const env of ['qa', 'qb']) expect((await cli(e.root, ['secrets', 'recipients', env], e.env)).err).toBe('');
  });

  it('an edit whose file changed while the editor was open is not saved over the other change, and says so (the edit kept aside: secrets-edit.test.ts)', async () => {
    const e = await newEnv();
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'kept'], e.env, 'first-value-Zq7w')).code).toBe(0);
    const before = readFileSync(e.secrets, 'utf8');
    // While the editor is open, the file on disk changes (another command, a git pull): here, a line added to it.
    const ed = editor(`printf 'edited: in-the-editor-Zq7w\\n' >> "$1"; printf '\\n' >> '${e.secrets}'`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/environments\/qa\/secrets\.sops\.yaml was changed by another command while it was open in the editor .*; your edit is not saved yet\n/);
    expect(r.err).toContain('environments/qa/secrets.sops.yaml: this edit was not saved (the file keeps the other command\'s change)');
    expect(readFileSync(e.secrets, 'utf8')).toBe(`${before}\n`);
    const data = (await open(e)).data;
    expect(data.kept).toBe('first-value-Zq7w');
    expect(data.edited).toBeUndefined();
  });
});

describe('a file nested 1,000 levels deep (it ended the process: V8 out of memory in the YAML parser)', () => {
  it('decrypt and encrypt of such a file, and encrypt under a .sops.yaml so nested: refused, naming the file, nothing changed', async () => {
    const e = await newEnv();
    const deep = `a: ${'['.repeat(1000)}${']'.repeat(1000)}\n`;
    const plain = join(e.root, 'environments', 'qa', 'assets', 'deep.yaml');
    writeFileSync(plain, deep);
    for (const cmd of ['decrypt', 'encrypt']) {
      const r = await cli(e.root, ['secrets', cmd, plain], e.env);
      expect(r.code, cmd).toBe(1);
      expect(r.err, cmd).toMatch(/deep\.yaml nests maps or lists more than 100 levels deep: ops reads no file nested so deep/);
      expect(r.err, cmd).not.toMatch(/internal error|out of memory/);
    }
    expect(readFileSync(plain, 'utf8')).toBe(deep);
    const rules = join(e.root, '.sops.yaml');
    writeFileSync(rules, `${readFileSync(rules, 'utf8')}x: ${'{a: '.repeat(1000)}1${'}'.repeat(1000)}\n`);
    const shallow = join(e.root, 'environments', 'qa', 'assets', 'shallow.yaml');
    writeFileSync(shallow, 'a: 1\n');
    const enc = await cli(e.root, ['secrets', 'encrypt', shallow], e.env);
    expect(enc.code).toBe(1);
    expect(enc.err).toMatch(/\.sops\.yaml nests maps or lists more than 100 levels deep/);
    expect(readFileSync(shallow, 'utf8')).toBe('a: 1\n');
  });
});

describe('a file with a YAML alias bomb (nested aliases: it ran for minutes, then out of memory)', () => {
  it('secrets encrypt refuses it in one line naming the aliases, as environment.yml is refused; the file unchanged', () => {
    const root = tempDir('ops-alias-bomb-');
    mkdirSync(join(root, 'environments', 'qa', 'assets'), { recursive: true });
    writeFileSync(join(root, 'package.json'), '{}');
    const key = spawnSync('age-keygen', [], { encoding: 'utf8' }).stdout;
    const recipient = /public key: (age1[0-9a-z]+)/.exec(key)![1]!;
    writeFileSync(join(root, 'key.txt'), key, { mode: 0o600 });
    writeFileSync(join(root, '.sops.yaml'), `creation_rules:\n  - path_regex: (^|/)environments/qa/\n    age: ${recipient}\n`);
    // 10^8 values from 90 aliases
    let text = 'a0: &a0 [x,x,x,x,x,x,x,x,x,x]\n';
    for (let i = 1; i <= 8; i++) text += `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(',')}]\n`;
    const file = join(root, 'environments', 'qa', 'assets', 'initdata.yml');
    writeFileSync(file, text);
    const r = spawnSync(process.execPath, [fileURLToPath(new URL('../../scripts/ops-bin.js', import.meta.url)), 'secrets', 'encrypt', file], {
      env: { PATH: process.env.PATH, HOME: root, OPS_ROOT: root, SOPS_AGE_KEY_FILE: join(root, 'key.txt'), NODE_OPTIONS: '--max-old-space-size=512' },
      encoding: 'utf8',
      timeout: 40_000,
    });
    expect(r.stderr).not.toMatch(/Last few GCs|heap out of memory/);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^error: environments\/qa\/assets\/initdata\.yml makes more than 1000000 values by copying YAML aliases \(\*name\), counting those inside what an alias repeats \(an alias bomb\?\): ops reads no such file; nothing was changed\n  hint: write some values out instead of aliasing them\n$/);
    expect(readFileSync(file, 'utf8')).toBe(text);
  }, 60_000);

  it('.sops.yaml holding one is refused in one line by the commands reading its rules, as environment.yml is; nothing changed', async () => {
    const e = await newEnv();
    let bomb = 'a0: &a0 [x,x,x,x,x,x,x,x,x,x]\n';
    for (let i = 1; i <= 8; i++) bomb += `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(',')}]\n`;
    const config = join(e.root, '.sops.yaml');
    writeFileSync(config, `${bomb}${readFileSync(config, 'utf8')}`);
    const plain = join(e.root, 'environments', 'qa', 'assets', 'initdata.yml');
    mkdirSync(dirname(plain), { recursive: true });
    writeFileSync(plain, 'users: []\n');
    const before = [readFileSync(config, 'utf8'), readFileSync(e.secrets, 'utf8'), readFileSync(plain, 'utf8')];
    for (const argv of [['secrets', 'recipients', 'qa'], ['secrets', 'recipients', 'qa', 'sync'], ['secrets', 'encrypt', plain], ['env', 'new', 'qb']]) {
      const r = await cli(e.root, argv, e.env);
      expect(r.code, argv.join(' ')).toBe(1);
      expect(r.err, argv.join(' ')).toBe(
        'error: .sops.yaml makes more than 1000000 values by copying YAML aliases (*name), counting those inside what an alias repeats (an alias bomb?): ops reads no such file; nothing was changed\n  hint: write some values out instead of aliasing them\n',
      );
    }
    expect([readFileSync(config, 'utf8'), readFileSync(e.secrets, 'utf8'), readFileSync(plain, 'utf8')]).toEqual(before);
    expect(existsSync(join(e.root, 'environments', 'qb'))).toBe(false);
  });

  it('secrets edit refuses such a text typed in the editor, by the same limit; 20,000 uses of one alias are read', async () => {
    const e = await newEnv();
    const bomb = editor(`printf 'a0: &a0 [x,x,x,x,x,x,x,x,x,x]\\n' > "$1"; for i in 1 2 3 4 5 6 7; do printf "a$i: &a$i [*a$((i-1)),*a$((i-1)),*a$((i-1)),*a$((i-1)),*a$((i-1)),*a$((i-1)),*a$((i-1)),*a$((i-1)),*a$((i-1)),*a$((i-1))]\\n" >> "$1"; done`);
    const before = readFileSync(e.secrets, 'utf8');
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: bomb.cmd }, 'n\n');
    expect(r.err).toContain('the edited text makes more than 1000000 values by copying YAML aliases (*name)');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    const shared = join(e.root, 'environments', 'qa', 'assets', 'shared.yml');
    writeFileSync(shared, `key: &k Zq8-shared-long-enough\nhosts:\n${Array.from({ length: 20_000 }, (_, i) => `  - {name: web${i}, key: *k}`).join('\n')}\n`);
    expect((await cli(e.root, ['secrets', 'encrypt', shared], e.env)).code).toBe(0);
  });
});

describe('ops secrets encrypt of a file already encrypted', () => {
  it('refuses it with a hint that works for that file: an asset is seen with decrypt and changed with sops edit or encrypt again; the secrets file with ops secrets edit <env>', async () => {
    const e = await newEnv();
    const file = join(e.root, 'environments', 'qa', 'assets', 'initdata.yml');
    mkdirSync(join(e.root, 'environments', 'qa', 'assets'), { recursive: true });
    writeFileSync(file, 'users:\n  admin: Zq8-long-enough-password\n');
    expect((await cli(e.root, ['secrets', 'encrypt', file], e.env)).code).toBe(0);
    const encrypted = readFileSync(file, 'utf8');
    const again = await cli(e.root, ['secrets', 'encrypt', file], { ...e.env, INIT_CWD: e.root }); // run from the project's folder
    expect(again.code).toBe(1);
    expect(again.err).toBe(
      'error: environments/qa/assets/initdata.yml is already a sops file; it was left as it was\n' +
        '  hint: see it with `ops secrets decrypt environments/qa/assets/initdata.yml`; to change it, `sops edit environments/qa/assets/initdata.yml` (its plaintext only in a temporary file sops removes; a plaintext copy in the working tree, to edit and encrypt again, could be committed by mistake)\n',
    );
    expect(readFileSync(file, 'utf8')).toBe(encrypted);
    const secrets = await cli(e.root, ['secrets', 'encrypt', e.secrets], e.env);
    expect(secrets.code).toBe(1);
    expect(secrets.err).toContain('hint: change it with `ops secrets edit qa` (or one value: ops secrets set qa <key>)');
  });

  it("run from the asset's folder, for a name with a space: the hint's commands name the file from there, quoted, so they run as copied", async () => {
    const e = await newEnv();
    const dir = join(e.root, 'environments', 'qa', 'assets');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'init data.yml');
    writeFileSync(file, 'users:\n  admin: Zq8-long-enough-password\n');
    const here = { ...e.env, INIT_CWD: dir };
    expect((await cli(e.root, ['secrets', 'encrypt', 'init data.yml'], here)).code).toBe(0);
    const again = await cli(e.root, ['secrets', 'encrypt', 'init data.yml'], here);
    expect(again.code).toBe(1);
    expect(again.err).toContain('error: environments/qa/assets/init data.yml is already a sops file; it was left as it was\n');
    expect(again.err).toContain(
      "hint: see it with `ops secrets decrypt 'init data.yml'`; to change it, `sops edit 'init data.yml'` (its plaintext only in a temporary file sops removes; a plaintext copy in the working tree, to edit and encrypt again, could be committed by mistake)",
    );
    // the hint's first command, as copied, from that folder
    expect((await cli(e.root, ['secrets', 'decrypt', 'init data.yml'], here)).out).toContain('Zq8-long-enough-password');
  });
});
