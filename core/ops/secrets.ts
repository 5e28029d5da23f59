// An environment's decrypted secrets for an operation: MAC verified, every value masked before use.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SECRETS_FILE, type Environment } from '../config/environment.ts';
import type { OpsContext } from '../context.ts';
import { OpsError } from '../errors.ts';
import { decryptFile, loadEnvIdentities } from '../secrets/index.ts';

export async function environmentSecrets(ctx: OpsContext, env: Environment): Promise<Record<string, unknown>> {
  const file = join(env.dir, SECRETS_FILE);
  const needed = Object.values(env.config.env).some((v) => typeof v !== 'string');
  if (!existsSync(file)) {
    if (needed) throw new OpsError(`environments/${env.name}/${SECRETS_FILE} does not exist, but the environment's env refers to secrets`, `create it: ops secrets set ${env.name} <key> (value on stdin)`);
    return {};
  }
  const identities = await loadEnvIdentities(env.root, env.name, ctx.env);
  const decrypted = await decryptFile(file, { identities, mask: (v) => ctx.reporter.mask(v) });
  return decrypted.data;
}
