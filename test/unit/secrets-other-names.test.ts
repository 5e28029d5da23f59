// A sops file an environment holds under another name than secrets.sops.yaml, as a new user makes one following
// sops's own documentation with the real sops (the pinned build on PATH, as in secrets-sops.test.ts): `sops encrypt
// secrets.json > secrets.sops.json`, `secrets.enc.yaml`, `secrets.yaml`, `secrets.env` (dotenv), `secrets.ini`, and
// a name sops knows no format of (its binary store, `secrets.txt`). ops reads an environment's secrets from
// secrets.sops.yaml only: a deploy refused them as "does not exist ... create it: ops secrets set", and `ops secrets
// set`/`edit` created a second, empty secrets.sops.yaml beside the user's file, whose secrets then reached no
// deploy. Now each command names the file and its format (never a value) and gives the sops commands that make it
// secrets.sops.yaml, which run as given.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../core/config/environment.ts';
import { OpsError } from '../../core/errors.ts';
import { environmentSecrets } from '../../core/ops/secrets.ts';
import { MemoryReporter } from '../../core/report.ts';
import { runOps } from '../support/cli.ts';
import { cli, newEnv, sops, tempDir } from './secrets.helpers.ts';

const VALUES: Record<string, string> = {
  secret_key: 'Zq7Wx9vLm3Kp2Rt8Yb4Nc6Hd-secret-key',
  database_url: 'postgresql://app:Zq7Wx9vLm3Kp2pw@db:5432/app',
  config_repo_api_key: 'Kp2Rt8Yb4Nc6HdZq7Wx9vLm3-api-key',
  datapass_client_id: 'client-Zq7Wx9vLm3Kp2',
  datapass_client_secret: 'Yb4Nc6HdZq7Wx9vLm3Kp2Rt8-client',
};
const ADMIN = 'admin-pw-Zq7Wx9vLm3Kp2';

/** The plaintext a user writes in each format: the secrets `ops env new`'s environment.yml reads. */
function plaintext(format: 'yaml' | 'json' | 'dotenv' | 'ini'): string {
  const pairs = Object.entries(VALUES);
  switch (format) {
    case 'yaml':
      return pairs.map(([k, v]) => `${k}: ${v}\n`).join('') + `passwords:\n  admin@example.org: ${ADMIN}\n`;
    case 'json':
      return JSON.stringify({ ...VALUES, passwords: { 'admin@example.org': ADMIN } }, null, 2);
    case 'dotenv': // flat: the key holding a dot is read as written (passwords.admin@example.org)
      return pairs.map(([k, v]) => `${k}=${v}\n`).join('') + `passwords.admin@example.org=${ADMIN}\n`;
    case 'ini':
      return `[DEFAULT]\n${pairs.map(([k, v]) => `${k} = ${v}\n`).join('')}[passwords]\nadmin@example.org = ${ADMIN}\n`;
  }
}

// name: as saved in environments/qa/; typed: the plaintext file the user encrypts (sops picks its store by that name)
const CASES: { name: string; typed: string; format: 'yaml' | 'json' | 'dotenv' | 'ini'; said: string; convertible: boolean }[] = [
  { name: 'secrets.enc.yaml', typed: 'secrets.yaml', format: 'yaml', said: '(YAML)', convertible: true },
  { name: 'secrets.yaml', typed: 'secrets.yaml', format: 'yaml', said: '(YAML)', convertible: true },
  { name: 'secrets.sops.json', typed: 'secrets.json', format: 'json', said: '(JSON)', convertible: true },
  { name: 'secrets.env', typed: 'secrets.env', format: 'dotenv', said: '(dotenv)', convertible: true },
  { name: 'secrets.ini', typed: 'secrets.ini', format: 'ini', said: '(INI)', convertible: false }, // its sections: a YAML map of maps, not these keys
  { name: 'secrets.enc.txt', typed: 'secrets.txt', format: 'yaml', said: "(sops's binary format: its whole plaintext is one value, `data`)", convertible: true },
];

describe('a sops file under another name than secrets.sops.yaml', () => {
  for (const c of CASES)
    it(`${c.name} (${c.format} written by the real sops from ${c.typed}): named by deploy, config, show, set, unset and edit, nothing created, no value shown; the hint's sops commands make it secrets.sops.yaml`, async () => {
      const e = await newEnv('qa');
      const dir = join(e.root, 'environments', 'qa');
      const recipient = readFileSync(join(e.root, '.sops.yaml'), 'utf8').match(/age1[0-9a-z]+/)![0];
      const plain = join(tempDir('ops-other-name-'), c.typed);
      writeFileSync(plain, plaintext(c.format));
      const enc = sops(['encrypt', '--age', recipient, plain], e.keyFile);
      expect(enc.err).toBe('');
      rmSync(e.secrets);
      writeFileSync(join(dir, c.name), enc.out);
      const named = `environments/qa/secrets.sops.yaml does not exist, but environments/qa/${c.name} ${c.said} is a sops file in environments/qa/`;
      const secretsShown = (text: string) => [...Object.values(VALUES), ADMIN].filter((v) => text.includes(v));

      // a deploy (its secrets step): refused before any host, naming the file and the fix
      const refusal = await environmentSecrets({ root: e.root, reporter: new MemoryReporter(), processEnv: e.env }, loadEnvironment('qa', e.root)).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refusal).toBeInstanceOf(OpsError);
      const err = refusal as OpsError;
      expect(err.message).toBe(
        `${named}: ops reads an environment's secrets from secrets.sops.yaml only (whatever format another name has), so its secrets would reach no deploy, and a new secrets.sops.yaml would be a second file beside it (nothing was sent to any host)`,
      );
      if (c.format === 'ini') expect(err.hint).toContain('(each INI section becomes a map: a key of [DEFAULT] is then DEFAULT.<key>; move the keys your env entries name to the top with `ops secrets edit qa`)');
      expect(err.hint).toContain(`sops encrypt --filename-override environments/qa/secrets.sops.yaml --input-type yaml --output-type yaml > environments/qa/secrets.sops.yaml.new && mv environments/qa/secrets.sops.yaml.new environments/qa/secrets.sops.yaml, check it with \`ops secrets show qa\``);
      expect(err.hint).toContain(`, then remove environments/qa/${c.name}`);

      // ops config: refused as the deploy refuses it (exit 2, its message)
      const config = await runOps(['config', 'qa'], { root: e.root, processEnv: { PATH: process.env.PATH, HOME: e.root, ...e.env } });
      expect([config.code, config.err]).toEqual([2, expect.stringContaining(`error: ${err.message}`)]);
      // show, set and edit: refused, no second file written
      const show = await cli(e.root, ['secrets', 'show', 'qa'], e.env);
      expect([show.code, show.err]).toEqual([1, expect.stringContaining(`error: ${named}`)]);
      const set = await cli(e.root, ['secrets', 'set', 'qa', 'new_key'], e.env, 'Zq7Wx9vLm3Kp2Rt8-new-value');
      expect([set.code, set.err]).toEqual([1, expect.stringContaining(`error: ${named}`)]);
      expect(set.err).toContain('(nothing was written)');
      const unset = await cli(e.root, ['secrets', 'unset', 'qa', 'database_url'], e.env);
      expect([unset.code, unset.err]).toEqual([1, expect.stringContaining(`error: ${named}`)]);
      const edit = await cli(e.root, ['secrets', 'edit', 'qa'], { ...e.env, EDITOR: 'true' });
      expect([edit.code, edit.err]).toEqual([1, expect.stringContaining(`error: ${named}`)]);
      expect(existsSync(e.secrets)).toBe(false);
      for (const r of [config, show, set, unset, edit]) expect(secretsShown(r.out + r.err)).toEqual([]);
      expect(secretsShown(err.message + err.hint)).toEqual([]);

      if (!c.convertible) return;
      // the hint's commands, run as given from the project's root by bash with the real sops
      const run = spawnSync('bash', ['-c', err.hint!.slice(err.hint!.indexOf(': sops decrypt') + 2, err.hint!.indexOf(', check it with'))], {
        cwd: e.root,
        encoding: 'utf8',
        env: { PATH: process.env.PATH, HOME: tempDir('ops-sops-home-'), SOPS_AGE_KEY_FILE: e.keyFile },
      });
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      const shown = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'database_url'], e.env);
      expect([shown.code, shown.out]).toEqual([0, VALUES.database_url]);
      const admin = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'passwords.admin@example.org'], e.env);
      expect([admin.code, admin.out]).toEqual([0, ADMIN]);
      const secrets = await environmentSecrets({ root: e.root, reporter: new MemoryReporter(), processEnv: e.env }, loadEnvironment('qa', e.root));
      expect(secrets.secret_key).toBe(VALUES.secret_key);
    });
});

describe("secrets.sops.yaml in sops's binary format", () => {
  it('`sops encrypt secrets.txt > secrets.sops.yaml` (every key inside one value, "data"): a deploy and show --key say so, never a value, with the sops commands that make it YAML (was: "lacks 6 secrets", hint: add them with ops secrets set, beside the text that holds them)', async () => {
    const e = await newEnv('qa');
    const recipient = readFileSync(join(e.root, '.sops.yaml'), 'utf8').match(/age1[0-9a-z]+/)![0];
    const plain = join(tempDir('ops-other-name-'), 'secrets.txt');
    writeFileSync(plain, plaintext('yaml'));
    const enc = sops(['encrypt', '--age', recipient, plain], e.keyFile);
    expect(enc.err).toBe('');
    writeFileSync(e.secrets, enc.out);
    const why = 'it holds one value, "data", as sops\'s binary format writes a whole file (`sops encrypt` of a name whose format it does not know, secrets.txt, saved as environments/qa/secrets.sops.yaml): the keys written in that text are no keys of the file';
    const refusal = (await environmentSecrets({ root: e.root, reporter: new MemoryReporter(), processEnv: e.env }, loadEnvironment('qa', e.root)).then(() => undefined, (err: unknown) => err)) as OpsError | undefined;
    // the secrets step decrypts; the .env's render refuses (deploy, --dry-run and ops config alike)
    expect(refusal).toBeUndefined();
    const config = await runOps(['config', 'qa'], { root: e.root, processEnv: { PATH: process.env.PATH, HOME: e.root, ...e.env } });
    expect(config.code).toBe(2);
    expect(config.err).toContain(`error: environments/qa/secrets.sops.yaml lacks 6 secrets the .env needs: ${why}:\n  - APP_DATABASE_URL needs the secret "database_url"\n`);
    expect(config.err).not.toContain('ops secrets set');
    const show = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'database_url'], e.env);
    expect([show.code, show.err.split('\n')[0]]).toEqual([2, `error: no key database_url in environments/qa/secrets.sops.yaml: ${why}`]);
    for (const text of [config.out, config.err, show.out, show.err]) expect([...Object.values(VALUES), ADMIN].filter((v) => text.includes(v))).toEqual([]);
    // the hint's commands, as given, from the project's root, with the real sops
    const hint = show.err.slice(show.err.indexOf('hint: '));
    const run = spawnSync('bash', ['-c', hint.slice(hint.indexOf(': sops decrypt') + 2, hint.indexOf(', then check it with'))], {
      cwd: e.root,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, HOME: tempDir('ops-sops-home-'), SOPS_AGE_KEY_FILE: e.keyFile },
    });
    expect(run.stderr).toBe('');
    const shown = await cli(e.root, ['secrets', 'show', 'qa', '--key', 'database_url'], e.env);
    expect([shown.code, shown.out]).toEqual([0, VALUES.database_url]);
    expect((await runOps(['config', 'qa'], { root: e.root, processEnv: { PATH: process.env.PATH, HOME: e.root, ...e.env } })).code).toBe(0);
  });
});

describe('a copy of secrets.sops.yaml kept on purpose', () => {
  it('secrets.sops.yaml.old (moved aside to start anew) is no other secrets file: ops secrets set creates secrets.sops.yaml', async () => {
    const e = await newEnv('qa');
    writeFileSync(`${e.secrets}.old`, readFileSync(e.secrets));
    rmSync(e.secrets);
    const set = await cli(e.root, ['secrets', 'set', 'qa', 'token'], e.env, 'Zq7Wx9vLm3Kp2Rt8-token');
    expect([set.code, set.out]).toEqual([0, 'environments/qa/secrets.sops.yaml: created with token\n']);
  });
});
