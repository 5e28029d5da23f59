// `ops secrets set` and `ops secrets edit` refuse what a later deploy or provision would refuse of the values they
// store, by the same checks and with the same messages, the file left byte for byte as it was; a refusal says what
// is true: which member is at fault (one already in the file, not the value just set), and whether a file exists.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../core/config/environment.ts';
import { environmentSecrets } from '../../core/ops/secrets.ts';
import { unmarked } from '../../core/report.ts';
import { packageIndexFiles } from '../../core/packages.ts';
import { type Env, cli, editor, newEnv, open, tempDir } from './secrets.helpers.ts';
import { renderDotenv } from '../../core/dotenv.ts';
import { readReal } from '../support/real-dotenv.ts';

/** python-dotenv (declared by env new) replaces "${...}" in every quoting: refused for a secret on its own (database_url). */
const interpolated = 'pw-${HOME}-Sekr1t';

function config(e: Env): string {
  return join(e.root, 'environments', 'qa', 'environment.yml');
}

/** A reporter that keeps what it is told (environmentSecrets warns about weak values and masks every value). */
function reporter() {
  const said: string[] = [];
  return { said, info: (m: string) => said.push(m), warn: (m: string) => said.push(m), error: (m: string) => said.push(m), mask: () => {}, group: async <T>(_: string, f: () => Promise<T>) => f() };
}

describe('a map an env entry names whole: members holding $', () => {
  it('set: members holding "${...}", $NAME and $$ are stored and every declared reader reads back the map as it was (the JSON writes $ as \\u0024: nothing to interpolate or expand)', async () => {
    const e = await newEnv();
    const passwords = { 'admin@example.org': interpolated, 'ci@example.org': 'x-${USER:-root}-$HOME-$$-\\$PATH' };
    for (const [user, pw] of Object.entries(passwords)) {
      const r = await cli(e.root, ['secrets', 'set', 'qa', `passwords."${user}"`], e.env, pw);
      expect(r.code, r.err).toBe(0);
    }
    const env = loadEnvironment('qa', e.root);
    const line = renderDotenv(env, (await open(e)).data).dotenv.split('\n').find((l) => l.startsWith('TOOLS_PASSWORDS='))!;
    expect(line).not.toContain('$');
    const dir = tempDir();
    writeFileSync(join(dir, '.env'), `${line}\n`);
    for (const reader of new Set(env.config.dotenv.readers.map((r) => (typeof r === 'string' ? r : r.reader))))
      for (const { how, values } of await readReal(reader, dir, ['TOOLS_PASSWORDS'])) expect(JSON.parse(values.TOOLS_PASSWORDS as string), how).toEqual(passwords);
  });
});

describe('a map named whole: quotes, # and backticks among its members', () => {
  it("set: members holding both quote kinds, a # and a backtick between them are carried (the JSON writes ', ` and \\ as \\u escapes), and read back by the app as they were", async () => {
    const e = await newEnv();
    writeFileSync(config(e), readFileSync(config(e), 'utf8').replace(/^  readers: \[.*\]$/m, '  readers: [python-dotenv, node-dotenv]'));
    const passwords = { 'admin@example.org': "it's-#1-password", 'x@example.org': 'back`tick-value-1', 'y@example.org': 'C:\\new\\"dir"' };
    for (const [user, pw] of Object.entries(passwords)) expect((await cli(e.root, ['secrets', 'set', 'qa', `passwords."${user}"`], e.env, pw)).code, user).toBe(0);
    const line = renderDotenv(loadEnvironment('qa', e.root), (await open(e)).data).dotenv.split('\n').find((l) => l.startsWith('TOOLS_PASSWORDS='))!;
    expect(line).toBe(`TOOLS_PASSWORDS='{"admin@example.org":"it\\u0027s-#1-password","x@example.org":"back\\u0060tick-value-1","y@example.org":"C:\\u005cnew\\u005c\\"dir\\""}'`);
    // what python-dotenv (the API's reader) and Node's dotenv make of that line: the same passwords
    const dir = tempDir();
    writeFileSync(join(dir, '.env'), `${line}\n`);
    for (const reader of ['python-dotenv', 'node-dotenv'] as const)
      for (const { how, values } of await readReal(reader, dir, ['TOOLS_PASSWORDS'])) expect(JSON.parse(values.TOOLS_PASSWORDS as string), how).toEqual(passwords);
  });
});

describe('a value too long for a process environment (the app and the release\'s commands get it as a variable)', () => {
  it('set: refused by variable and size, never the value, the file unchanged; a value within 128 KiB is stored', async () => {
    const e = await newEnv();
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'secret_key'], e.env, 'a-first-secret-key-5e1b9d')).code).toBe(0);
    const before = readFileSync(e.secrets, 'utf8');
    const long = 'Zq8-pasted-blob-'.repeat(9000);
    const r = await cli(e.root, ['secrets', 'set', 'qa', 'secret_key'], e.env, long);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`error: 1 .env value of qa is too long for a process environment`);
    expect(r.err).toContain('(nothing was written: environments/qa/secrets.sops.yaml is unchanged):\n  - APP_SECRET_KEY (secret "secret_key"): 144000 bytes');
    expect(r.err).not.toContain('Zq8-pasted');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'secret_key'], e.env, long.slice(0, 100_000))).code).toBe(0);
  });
});

describe('with no secrets file yet, a refusal says none was created', () => {
  it('set: "was not created", never "is unchanged"; no file is left', async () => {
    const e = await newEnv();
    rmSync(e.secrets);
    const r = await cli(e.root, ['secrets', 'set', 'qa', 'database_url'], e.env, interpolated);
    expect(r.code).toBe(2);
    expect(r.err).toContain('(nothing was written: environments/qa/secrets.sops.yaml was not created)');
    expect(r.err).not.toContain('is unchanged');
    expect(existsSync(e.secrets)).toBe(false);
    const p = await cli(e.root, ['secrets', 'set', 'qa', 'database_url'], e.env, 'CHANGE-ME later');
    expect(p.code).toBe(2);
    expect(p.err).toContain('was not created');
    expect(existsSync(e.secrets)).toBe(false);
    const ed = editor(`printf 'database_url: "${interpolated}"\\n' > "$1"`);
    const edited = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd }, 'n\n');
    expect(edited.code, edited.err).toBe(1);
    expect(edited.err).toContain('(nothing was written: environments/qa/secrets.sops.yaml was not created)');
    expect(existsSync(e.secrets)).toBe(false);
  });
});

describe('placeholders (CHANGE-ME): refused when stored, as every deploy refuses them, whatever reads them', () => {
  it('set: a placeholder is refused for a key the .env reads and for one nothing reads (a deploy refuses both); the file unchanged', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    for (const key of ['database_url', 'smtp_password']) {
      const r = await cli(e.root, ['secrets', 'set', 'qa', key], e.env, 'CHANGE-ME: the real one later');
      expect(r.code).toBe(2);
      expect(r.err).toContain(`error: environments/qa/secrets.sops.yaml would hold a placeholder value (CHANGE-ME), which every deploy refuses (nothing was written: environments/qa/secrets.sops.yaml is unchanged): ${key}`);
      expect(r.err).toContain(`hint: set the real value (printf '%s' VALUE | ops secrets set qa ${key})`);
      expect(r.err).not.toContain('the real one later');
      expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    }
    // the deploy's own refusal of such a key, nothing reading it: the same rule
    const file = await open(e);
    file.set(['smtp_password'], { kind: 'scalar', type: 'str', value: 'CHANGE-ME' });
    await file.save();
    const rep = reporter();
    const err = await environmentSecrets({ root: e.root, reporter: rep, processEnv: e.env } as never, loadEnvironment('qa', e.root)).catch((x: Error) => x);
    expect(unmarked((err as Error).message)).toMatch(/still holds placeholder values \(CHANGE-ME\): database_url, .*smtp_password/);
  });

  it('placeholders left as they were do not hold back another key (the deploy names them), and edit refuses a new one', async () => {
    const e = await newEnv();
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'datapass_client_id'], e.env, 'client-4f9a2c81')).code).toBe(0);
    const before = readFileSync(e.secrets, 'utf8');
    const ed = editor(`sed -i 's/^datapass_client_id: .*/datapass_client_id: CHANGE-ME again/' "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: ed.cmd }, 'n\n');
    expect(r.code).toBe(1);
    expect(r.err).toContain('would hold a placeholder value (CHANGE-ME), which every deploy refuses (nothing was written: environments/qa/secrets.sops.yaml is unchanged): datapass_client_id');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  });

  it('an environment.yml that cannot be read does not stop the placeholder check (it needs none)', async () => {
    const e = await newEnv();
    writeFileSync(config(e), `${readFileSync(config(e), 'utf8')}\nnot_a_setting: 1\n`);
    const r = await cli(e.root, ['secrets', 'set', 'qa', 'smtp_password'], e.env, 'CHANGE-ME');
    expect(r.code).toBe(2);
    expect(r.err).toContain('would hold a placeholder value');
  });
});

describe('packages settings given as { secret: ... }: refused when stored as every provision refuses them', () => {
  async function withPackages(): Promise<Env> {
    const e = await newEnv();
    writeFileSync(config(e), `${readFileSync(config(e), 'utf8')}\npackages:\n  pip_index_url: { secret: pip.url }\n  npm_registry: https://npm.example.org/repo\n  npm_token: { secret: npm.token }\n`);
    return e;
  }

  it('set: not a URL, not http(s), a line break in a token: provision\'s own message, the file unchanged; a good value is stored', async () => {
    const e = await withPackages();
    const env = loadEnvironment('qa', e.root);
    const cases: [key: string, value: string, data: Record<string, unknown>][] = [
      ['pip.url', 'pypi.example.org/simple', { pip: { url: 'pypi.example.org/simple' }, npm: { token: 'npm-token-7d2e81aa' } }],
      ['pip.url', 'ftp://pypi.example.org/simple/', { pip: { url: 'ftp://pypi.example.org/simple/' }, npm: { token: 'npm-token-7d2e81aa' } }],
      ['npm.token', 'tok-4f9a\nregistry=https://evil.example/', { pip: { url: 'https://pypi.example.org/simple/' }, npm: { token: 'tok-4f9a\nregistry=https://evil.example/' } }],
    ];
    for (const [key, value, data] of cases) {
      const before = existsSync(e.secrets) ? readFileSync(e.secrets, 'utf8') : '';
      let provision = '';
      try {
        packageIndexFiles(env, data);
      } catch (err) {
        provision = (err as Error).message;
      }
      expect(provision, key).not.toBe('');
      const r = await cli(e.root, ['secrets', 'set', 'qa', key], e.env, value);
      expect(r.code, key).toBe(1);
      expect(r.err).toContain(`error: ${provision} (every provision would refuse it; nothing was written: environments/qa/secrets.sops.yaml is unchanged)`);
      expect(r.err).not.toMatch(/evil|pypi\.example/);
      expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    }
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'pip.url'], e.env, 'https://u:tok-7d2e81@pypi.example.org/simple/')).code).toBe(0);
    expect((await cli(e.root, ['secrets', 'set', 'qa', 'npm.token'], e.env, 'npm-token-7d2e81aa')).code).toBe(0);
    // removed by an edit: provision would lack it
    const before = readFileSync(e.secrets, 'utf8');
    const gone = editor(`sed -i '/^    token:/d' "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: gone.cmd }, 'n\n');
    expect(r.code, r.err).toBe(1);
    expect(r.err).toContain('lacks the secret "npm.token" that packages.npm_token needs (a non-empty string) (every provision would refuse it; nothing was written');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
  });
});

describe('a key "<<" (a YAML merge key to sops) holding a value: refused, as sops could no longer read the file', () => {
  /** The real sops on PATH (scripts/setup-machine.sh), with the environment's key only. */
  const sopsDecrypt = (e: Env) => spawnSync('sops', ['decrypt', e.secrets], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: tempDir('ops-sops-home-'), SOPS_AGE_KEY_FILE: e.keyFile }, cwd: tempDir('ops-sops-cwd-') });

  it('set and edit: refused by key path, the file unchanged and still read by sops; a map under "<<" is kept', async () => {
    const e = await newEnv();
    const before = readFileSync(e.secrets, 'utf8');
    for (const key of ['<<', 'smtp.<<']) {
      const r = await cli(e.root, ['secrets', 'set', 'qa', key], e.env, 'value-4f9a2c81-ok');
      expect(r.code, key).toBe(1);
      expect(r.err).toContain(`error: ${key}: a key "<<" is a YAML merge key to sops, whose value must be a map (or a list of maps): with this value sops could no longer read`);
      expect(r.err).not.toContain('value-4f9a2c81');
      expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    }
    const quoted = editor(`printf '"<<": value-4f9a2c81-ok\n' >> "$1"`);
    const r = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: quoted.cmd }, 'n\n');
    expect(r.code).toBe(1);
    expect(r.err).toContain('a key "<<" is a YAML merge key to sops');
    expect(readFileSync(e.secrets, 'utf8')).toBe(before);
    const map = editor(`printf '"<<":\n    merged: value-4f9a2c81-ok\n' >> "$1"`);
    expect((await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: map.cmd }, 'n\n')).code).toBe(0);
    const d = sopsDecrypt(e);
    expect(d.stderr).toBe('');
    expect(d.stdout).toContain('!!merge <<:\n    merged: value-4f9a2c81-ok');
  });
});
