// Weak secrets (core/secrets/weak.ts): values so short or so common that masking them garbles the logs are
// stored and deployed, with a warning naming the key and the length, never the value; masking stays as it was
// (parts of 1 or 2 characters are masked nowhere, longer ones everywhere).
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../core/config/environment.ts';
import { environmentSecrets } from '../../core/ops/secrets.ts';
import { Masker, MemoryReporter, keyName, own, unmarked } from '../../core/report.ts';
import { SecretsFile } from '../../core/secrets/sops.ts';
import { parseTree } from '../../core/secrets/tree-parse.ts';
import { SHORT_SECRET_LENGTH, weakParts, weakSecretWarning } from '../../core/secrets/weak.ts';

/** The warning as printed (a reporter drops the marks of ops's own words: core/report.ts own). */
const warning = (...args: Parameters<typeof weakSecretWarning>) => unmarked(weakSecretWarning(...args));
import { cli, editor, newEnv, open } from './secrets.helpers.ts';
import { runOps } from '../support/cli.ts';

const STRONG = 'Zq8-vT3m-Lw5x-Pk2r';

describe('weakParts', () => {
  it('names short values (masked), values too short to be masked, and common words, by part and length only', () => {
    expect(weakParts('app')).toEqual([{ part: 'value', length: 3, why: 'short' }]);
    expect(weakParts('true')).toEqual([{ part: 'value', length: 4, why: 'short' }]);
    expect(weakParts('123')).toEqual([{ part: 'value', length: 3, why: 'short' }]);
    expect(weakParts('on')).toEqual([{ part: 'value', length: 2, why: 'unmasked' }]);
    expect(weakParts('Password')).toEqual([{ part: 'value', length: 8, why: 'common' }]);
    expect(weakParts('12345678')).toEqual([{ part: 'value', length: 8, why: 'common' }]);
    expect(weakParts('x'.repeat(SHORT_SECRET_LENGTH - 1))[0]).toMatchObject({ why: 'short' });
    expect(weakParts('x'.repeat(SHORT_SECRET_LENGTH))).toEqual([]);
    expect(weakParts(STRONG)).toEqual([]);
    expect(weakParts('')).toEqual([]);
  });

  it("looks at the parts masked on their own: a URL's password, a JSON document's strings, lines (not a line too short to be masked)", () => {
    expect(weakParts(`postgresql://app:pw@db.example.org/app`)).toEqual([{ part: 'URL password', length: 2, why: 'unmasked' }]);
    expect(weakParts(`postgresql://app:p%40ss@db.example.org/app`)).toEqual([
      { part: 'URL password', length: 6, why: 'short' },
      { part: 'URL password', length: 4, why: 'short' },
    ]);
    expect(weakParts(`postgresql://app:${STRONG}@db.example.org/app`)).toEqual([]);
    expect(weakParts(JSON.stringify({ 'admin@example.org': 'admin', other: STRONG }))).toEqual([{ part: 'part', length: 5, why: 'short' }]);
    expect(weakParts(`{\n  "key": "${STRONG}"\n}`)).toEqual([]); // "{" and "}" are lines, not secrets
    expect(weakParts(`${STRONG}\nabc\n`)).toEqual([{ part: 'line', length: 3, why: 'short' }]);
  });

  it('agrees with the Masker: what it calls too short is masked nowhere, what it calls short is masked even inside words', () => {
    const m = new Masker();
    m.add('on');
    m.add('app');
    expect(m.redact('turn it on: the application')).toBe('turn it on: the ***lication');
  });

  it('the warning gives the key, the length, what masking does and the way out, and never the value', () => {
    const w = warning('secret "db_user"', weakParts('s3c'));
    expect(w).toBe(
      'secret "db_user" is weak: its value is 3 characters long: it will be masked (***) wherever it appears in the logs, ops\'s messages and the app\'s output alike, even inside other words, making them hard to read; it is also easy to guess. Fix: a longer value (16 or more random characters, e.g. from `ops secretkey`); kept as it is if a third party dictates it',
    );
    expect(w).not.toContain('s3c');
    expect(warning('secret "x"', weakParts('on'))).toContain('its value is 2 characters long: too short to be masked, so the logs show it as it is');
    // two weak lines of one length: said once, not the same sentence twice
    const lines = warning('secret "multi"', weakParts('line1\nline2\n'));
    expect(lines.split('one of its lines (masked on its own) is 5 characters long').length).toBe(2);
  });
});

describe('where values enter and where they are used', () => {
  it('ops secrets set stores a weak value, warning once (readable: written before the value is masked)', async () => {
    const e = await newEnv();
    const r = await cli(e.root, ['secrets', 'set', 'qa', 'db_user'], e.env, 'app');
    expect(r.code).toBe(0);
    // (and that nothing reads db_user yet: ops's own words too, whole though "app" is masked)
    expect(r.err).toBe(`warning: ${warning('secret "db_user"', weakParts('app'))}\nwarning: nothing in environments/qa/environment.yml reads the new secret db_user (no env entry or packages setting names it): no deploy sends it; refer to it in env (NAME: { secret: db_user }), or check its name\n`);
    expect(r.err).toContain('wherever it appears in the logs'); // not "***ears"
    expect((await open(e)).data.db_user).toBe('app');
    const strong = await cli(e.root, ['secrets', 'set', 'qa', 'db_user'], e.env, STRONG);
    expect(strong).toMatchObject({ code: 0, err: '' });
  });

  it('ops secrets edit saves weak values, warning for the new or changed ones only, naming their keys', async () => {
    const e = await newEnv();
    const first = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: editor(`printf 'user: app\\nkey: ${STRONG}\\n' >> "$1"`).cmd });
    expect(first.code).toBe(0);
    expect(first.err).toBe(`warning: ${warning('secret "user"', weakParts('app'))}\n`);
    // user unchanged: not named again; a new short one is
    const second = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: editor(`printf 'pin: 1234\\n' >> "$1"`).cmd });
    expect(second.code).toBe(0);
    // ...its warning whole though the weak value saved before ("app", masked since the file was opened) occurs in its
    // words: ops's own text (core/report.ts own), which a value masks nowhere (it garbled it: "wherever it ***ears")
    expect(second.err).toBe(`warning: ${warning('secret "pin"', weakParts('1234'))}\n`);
    expect(second.err).toContain('wherever it appears in the logs');
    expect((await open(e)).data).toMatchObject({ user: 'app', pin: 1234n }); // an int: a bigint (SecretsFile.data)
  });

  it("a deploy's secret loading warns once per weak value, naming every key holding it, before masking it", async () => {
    const e = await newEnv();
    const recipients = (await open(e)).recipients;
    const text = `db_user: app\nalso_user: app\ndatabase_url: postgresql://app:pw@db.example.org/app\nport: 5432\nflag: true\nempty: ""\nsecret_key: ${STRONG}\n`;
    await SecretsFile.create(e.secrets, parseTree(text, 'yaml', { file: 't' }), { recipients }).save({}, readFileSync(e.secrets, 'utf8')); // over the file env new wrote
    const reporter = new MemoryReporter();
    const data = await environmentSecrets({ root: e.root, reporter, processEnv: e.env }, loadEnvironment('qa', e.root));
    expect(data.db_user).toBe('app');
    const label = 'environments/qa/secrets.sops.yaml';
    expect(reporter.lines).toEqual([
      `warning: ${label}: ${warning('secrets "db_user" and "also_user" (the same value)', weakParts('app'))}`,
      `warning: ${label}: ${warning('secret "database_url"', weakParts('postgresql://app:pw@db.example.org/app'))}`,
      `warning: ${label}: ${warning('secret "port"', weakParts('5432'))}`,
    ]);
    // masked as before, once warned
    expect(reporter.redact('the application on port 5432')).toBe('the ***lication on port ***');
  });
});

describe('key names and paths are no secrets: a weak value inside one leaves it whole where ops names it', () => {
  it('the Masker: a value wholly inside an allowed key stays there, and is masked anywhere else', () => {
    const m = new Masker();
    m.add('admin');
    m.allow('admin@example.org');
    m.allow('passwords.admin@example.org');
    expect(m.redact('set passwords.admin@example.org')).toBe('set passwords.admin@example.org');
    expect(m.redact('login admin, then admin@example.org; administrator')).toBe('login ***, then admin@example.org; ***istrator');
    // a key that is the value itself, nothing more, or a value equal to a key, covers nothing
    const n = new Masker();
    n.add('db-user');
    n.allow('db-user');
    expect(n.redact('db-user logged in')).toBe('*** logged in');
    const o = new Masker();
    o.add('admin');
    o.add('admin@example.org');
    o.allow('admin@example.org');
    expect(o.redact('admin@example.org')).toBe('***');
  });

  it('ops secrets set, show, edit and a deploy name a key holding a weak value whole, masking the value elsewhere', async () => {
    const e = await newEnv();
    // the key env new wrote: passwords.admin@example.org
    const set = await cli(e.root, ['secrets', 'set', 'qa', 'passwords.admin@example.org'], e.env, 'admin');
    expect(set.code, set.err).toBe(0);
    expect(set.out).toBe('environments/qa/secrets.sops.yaml: set passwords.admin@example.org\n');
    // a new key holding it, typed on the command line
    const set2 = await cli(e.root, ['secrets', 'set', 'qa', 'passwords."admin2@example.org"'], e.env, STRONG);
    expect(set2.out).toBe('environments/qa/secrets.sops.yaml: set passwords.admin2@example.org\n');
    const show = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'passwords.admin@example.com'], e.env);
    expect(show.err).toContain('no key passwords.admin@example.com in');
    expect(show.code).toBe(2); // a key the file lacks is the command line's fault, as a missing environment (was: 1)
    const ed = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: editor(`printf 'admin_user: admin-x\\n' >> "$1"`).cmd });
    expect(ed.code, ed.err).toBe(0);
    expect(ed.out).toBe('environments/qa/secrets.sops.yaml: updated (added admin_user)\n');
    // a deploy's secret loading: its warning names the key whole; the value is masked as ever elsewhere
    const reporter = new MemoryReporter();
    await environmentSecrets({ root: e.root, reporter, processEnv: e.env }, loadEnvironment('qa', e.root)).catch(() => undefined);
    expect(reporter.lines.join('\n')).toContain('"passwords.admin@example.org"');
    expect(reporter.redact('user admin')).toBe('user ***');
  });
});

describe("a weak value masks neither ops's own words nor key names where ops names them; everywhere else it is masked", () => {
  it('the Masker: marks count around own templates\' fixed text and allowed key names only, for weak values only', () => {
    const m = new Masker();
    for (const v of ['deploy', 'sops', 'admin', 'Zq8-real-secret-1234']) m.add(v);
    m.allow('admin');
    // ops's fixed words are left whole; what a template quotes is masked as ever
    expect(m.redact(own`the deploy failed; ${'deploy'} quoted`)).toBe('the deploy failed; *** quoted');
    expect(m.redact('the deploy failed')).toBe('the *** failed'); // not marked: it could be anything's
    // a key named as its own value: whole where ops names it as a key (keyName), masked where it stands bare
    expect(m.redact(`secret "${keyName('admin')}" is weak; user admin`)).toBe('secret "admin" is weak; user ***');
    // a mark around text ops was not told of (an app's output holding the mark characters) unmasks nothing
    expect(m.redact(keyName('deploy'))).toBe('***');
    expect(m.redact(`\uE000sops\uE001 and ${keyName('Zq8-real-secret-1234')}`)).toBe('*** and ***');
    // a real (not weak) value is masked even inside a mark that counts; so is one straddling a mark's edge
    m.add('every deploy refuses');
    expect(m.redact(own`every deploy refuses`)).toBe('***');
    const n = new Masker();
    n.add('failed-Zq8-1234');
    expect(n.redact(`${own`the deploy failed`}-Zq8-1234`)).toBe('the deploy ***');
    // a line holding "%" or "+" (read for URL-encoded forms) leaves an allowed path whole too, as any line does
    m.allow('environments/qa/secrets.sops.yaml');
    expect(m.redact("printf '%s' V | ops secrets set qa k: environments/qa/secrets.sops.yaml, sops")).toBe("printf '%s' V | ops secrets set qa k: environments/qa/secrets.sops.yaml, ***");
    // the marks never reach the output
    expect(new Masker().redact(own`every deploy refuses`)).toBe('every deploy refuses');
    expect(unmarked(own`every deploy refuses ${keyName('k')}`)).toBe('every deploy refuses k');
  });

  it('set, config and a placeholder refusal: the key `admin` holding "admin" named whole as a key, file names and ops\'s words whole', async () => {
    const e = await newEnv();
    const set = await cli(e.root, ['secrets', 'set', 'qa', 'admin'], e.env, 'admin');
    expect(set.code, set.err).toBe(0);
    expect(set.err).toContain('warning: secret "admin" is weak');
    expect(set.out).toBe('environments/qa/secrets.sops.yaml: set admin\n');
    for (const [k, v] of [['sopsval', 'sops'], ['dep', 'deploy'], ['app_name', 'app'], ['dp', 'datapass']]) expect((await cli(e.root, ['secrets', 'set', 'qa', k!], e.env, v)).code).toBe(0);
    // the next command opens the file: every value masked, ops's words and key names left whole
    const again = await cli(e.root, ['secrets', 'set', 'qa', 'admin'], e.env, 'admin');
    expect(again.out).toBe('environments/qa/secrets.sops.yaml: unchanged, admin\n');
    const ph = await cli(e.root, ['secrets', 'set', 'qa', 'datapass.client_id'], e.env, 'CHANGE-ME now');
    expect(ph.code).toBe(2);
    expect(ph.err).toContain('error: environments/qa/secrets.sops.yaml would hold a placeholder value (CHANGE-ME), which every deploy refuses (nothing was written: environments/qa/secrets.sops.yaml is unchanged): datapass.client_id');
    expect(ph.err).toContain('a value starting with CHANGE-ME is taken for one');
    const config = await runOps(['config', 'qa'], { root: e.root, processEnv: { PATH: process.env.PATH, HOME: e.root, ...e.env } });
    expect(config.out).toContain('app_user: ');
    expect(config.out).toContain('APP_DATAPASS_CLIENT_ID: <secret datapass_client_id>');
    expect(config.out).not.toMatch(/\*\*\*_(user|client_id)|secrets\.\*\*\*\.yaml/);
  });

  it('a placeholder exactly CHANGE-ME (what the shipped environments hold): the refusals of set and of a deploy read CHANGE-ME, not ***, and no weak warning', async () => {
    const e = await newEnv();
    const set = await cli(e.root, ['secrets', 'set', 'qa', 'datapass_client_id'], e.env, 'CHANGE-ME');
    expect(set.code).toBe(2);
    expect(set.err).toContain('would hold a placeholder value (CHANGE-ME), which every deploy refuses');
    expect(set.err).toContain('a value starting with CHANGE-ME is taken for one');
    expect(set.err).not.toContain('***');
    expect(set.err).not.toContain('is weak');
    const recipients = (await open(e)).recipients;
    await SecretsFile.create(e.secrets, parseTree(`datapass_client_id: CHANGE-ME\nsecret_key: ${STRONG}\n`, 'yaml', { file: 't' }), { recipients }).save({}, readFileSync(e.secrets, 'utf8'));
    const reporter = new MemoryReporter();
    const err = await environmentSecrets({ root: e.root, reporter, processEnv: e.env }, loadEnvironment('qa', e.root)).catch((x: Error) => x);
    expect(reporter.redact((err as Error).message)).toContain('still holds placeholder values (CHANGE-ME): datapass_client_id');
    // An app other than the catalogue uses none of the secrets `ops env new` wrote: the way out for those too.
    expect(reporter.redact((err as { hint: string }).hint)).toContain('one your app does not use: drop the env line naming it, if any, and delete it (ops secrets edit qa)');
    expect(reporter.lines).toEqual([]);
  });

  it('ops config: a secret equal to a key name (a value "keep", the key `keep`) leaves the key shown, its structure whole; values are masked as ever', async () => {
    const e = await newEnv();
    for (const [k, v] of [['k1', 'keep'], ['k2', 'strategy'], ['k3', 'python_installer']]) expect((await cli(e.root, ['secrets', 'set', 'qa', k!], e.env, v)).code).toBe(0);
    const debian = await cli(e.root, ['secrets', 'set', 'qa', 'k4'], e.env, 'debian');
    expect(debian.code, debian.err).toBe(0);
    for (const argv of [['config', 'qa'], ['config', 'qa', '--json']]) {
      const config = await runOps(argv, { root: e.root, processEnv: { PATH: process.env.PATH, HOME: e.root, ...e.env } });
      expect(config.code, config.err).toBe(0);
      expect(config.out).not.toContain('\uE000');
      if (argv.length === 2) {
        expect(config.out).toMatch(/^ {2}keep: 5$/m);
        expect(config.out).toMatch(/^ {2}python_installer: /m);
        // a value that is a secret stays masked
        expect(config.out).toMatch(/^ {4}strategy: \*\*\*$/m);
      } else {
        expect(JSON.parse(config.out).release).toHaveProperty('keep', 5);
        expect(config.out).toContain('"strategy": "***"');
      }
      expect(config.out).not.toContain('***:');
      expect(config.out).not.toContain('debian');
    }
  });
});
