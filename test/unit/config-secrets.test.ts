// `ops config <env>` and the environment's secrets file: a check command must not pass what the deploy refuses. It
// only warned (exit 0, "not checked against dotenv.readers") where the file could not be read: missing, under another
// name, in sops's dotenv format under the YAML name, its MAC not matching. Now it refuses those (exit 2) with the
// deploy's own message; only a key this machine lacks (a laptop without the deploy key) stays a warning: the file
// may be right, and the deploy that has the key checks it.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../core/config/environment.ts';
import { OpsError } from '../../core/errors.ts';
import { environmentSecrets } from '../../core/ops/secrets.ts';
import { MemoryReporter } from '../../core/report.ts';
import { runOps } from '../support/cli.ts';
import { ageKey, newEnv, sops, tempDir, type Env } from './secrets.helpers.ts';

const config = (e: Env, env: NodeJS.ProcessEnv) => runOps(['config', 'qa'], { root: e.root, processEnv: { PATH: process.env.PATH, HOME: e.root, ...env } });

/** What the deploy's secrets step says of the environment's secrets (its refusal), or undefined when it takes them. */
async function deployRefusal(e: Env): Promise<OpsError | undefined> {
  return environmentSecrets({ root: e.root, reporter: new MemoryReporter(), processEnv: e.env }, loadEnvironment('qa', e.root)).then(
    () => undefined,
    (err: unknown) => {
      expect(err).toBeInstanceOf(OpsError);
      return err as OpsError;
    },
  );
}

/** The file as the real sops writes it from `name` holding `text`, encrypted to the environment's recipient. */
function sopsEncrypted(e: Env, name: string, text: string): string {
  const recipient = readFileSync(join(e.root, '.sops.yaml'), 'utf8').match(/age1[0-9a-z]+/)![0];
  const plain = join(tempDir('ops-config-plain-'), name);
  writeFileSync(plain, text);
  const enc = sops(['encrypt', '--age', recipient, plain], e.keyFile);
  expect(enc.err).toBe('');
  return enc.out;
}

describe('ops config refuses the secrets file a deploy refuses, with its message', () => {
  const cases: { name: string; make: (e: Env) => void; said: RegExp }[] = [
    { name: 'missing', make: (e) => rmSync(e.secrets), said: /secrets\.sops\.yaml does not exist, but the environment's env or packages refer to secrets/ },
    {
      name: 'under another name (secrets.enc.yaml)',
      make: (e) => {
        writeFileSync(join(e.root, 'environments', 'qa', 'secrets.enc.yaml'), sopsEncrypted(e, 'secrets.yaml', 'database_url: postgresql://a:Zq7pw@db/app\n'));
        rmSync(e.secrets);
      },
      said: /secrets\.sops\.yaml does not exist, but environments\/qa\/secrets\.enc\.yaml \(YAML\) is a sops file/,
    },
    { name: "in sops's dotenv format under the YAML name", make: (e) => writeFileSync(e.secrets, sopsEncrypted(e, 'secrets.env', 'database_url=postgresql://a:Zq7pw@db/app\n')), said: /dotenv/ },
    {
      name: 'its MAC not matching (a value changed by hand)',
      make: (e) => writeFileSync(e.secrets, readFileSync(e.secrets, 'utf8').replace(/(mac: ENC\[AES256_GCM,data:)(.)/, (_, a: string, c: string) => a + (c === 'A' ? 'B' : 'A'))),
      said: /secrets\.sops\.yaml/,
    },
  ];
  for (const c of cases)
    it(`${c.name}: exit 2 with the deploy's message, with the key and without it (was: a warning, exit 0)`, async () => {
      const e = await newEnv('qa');
      c.make(e);
      const refusal = await deployRefusal(e);
      expect(refusal?.message).toMatch(c.said);
      const withKey = await config(e, e.env);
      expect([withKey.code, withKey.out]).toEqual([2, '']);
      expect(withKey.err).toContain(`error: ${refusal!.message}`);
      if (refusal!.hint) expect(withKey.err).toContain(`hint: ${refusal!.hint}`);
      if (c.name.startsWith('its MAC')) return; // only a key finds it
      const noKey = await config(e, {});
      expect([noKey.code, noKey.err]).toEqual([2, withKey.err]);
    });

  it('a key this machine lacks (none at all, or not a recipient) stays a warning: the file may be right, the deploy that has the key checks it', async () => {
    const e = await newEnv('qa');
    const noKey = await config(e, {});
    expect(noKey.code, noKey.err).toBe(0);
    expect(noKey.err).toMatch(/warning: \d+ secret value\(s\) not checked against dotenv.readers: no age identity/);
    const other = await config(e, { SOPS_AGE_KEY_FILE: ageKey().file });
    expect(other.code, other.err).toBe(0);
    expect(other.err).toMatch(/warning: \d+ secret value\(s\) not checked against dotenv.readers: none of your age identities \(age1[0-9a-z]+\) is a recipient/);
    const ok = await config(e, e.env);
    expect([ok.code, ok.err]).toEqual([0, expect.not.stringContaining('not checked')]);
  });
});
