// An environment's sops files opened for a change: its secrets file (created for .sops.yaml's recipients when
// it does not exist yet), and a plain YAML/JSON file encrypted in place to its .sops.yaml recipients.
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { OpsError } from '../errors.ts';
import { validate } from '../shell.ts';
import { secretsPath } from './env.ts';
import type { OpenWith } from './recipients.ts';
import { recipientsFor } from './sops-config.ts';
import { isSopsText } from './sops-metadata.ts';
import { SecretsFile } from './sops.ts';
import { parseTree } from './tree-parse.ts';
import { formatOf } from './tree.ts';

/**
 * The secrets file of environment `env` under project `root`, opened (MAC verified, values masked); or, when
 * there is none yet, a new empty one for .sops.yaml's recipients (written by its first `save`).
 * @throws OpsError for an invalid name, an environment folder that does not exist, or a file that cannot be opened.
 */
export async function openEnvSecrets(root: string, env: string, open: OpenWith): Promise<{ secrets: SecretsFile; created: boolean }> {
  validate('environment', env);
  const file = secretsPath(root, env);
  if (existsSync(file)) return { secrets: await SecretsFile.open(file, open), created: false };
  if (!existsSync(dirname(file))) throw new OpsError(`no environment "${env}": environments/${env}/ does not exist`, 'create one with `ops env new <name>`');
  return { secrets: SecretsFile.create(file, { kind: 'map', entries: [] }, { recipients: recipientsFor(root, file) }), created: true };
}

/**
 * Encrypt a plain YAML or JSON file in place (e.g. environments/<env>/assets/initdata.yml) to the recipients
 * .sops.yaml gives its path; `shown` names it in messages. @returns the file, saved (written whole, temporary
 * file + rename). @throws OpsError when it does not exist, is already a sops file, or does not parse.
 */
export async function encryptInPlace(root: string, file: string, shown = file): Promise<SecretsFile> {
  if (!existsSync(file)) throw new OpsError(`${shown} does not exist`);
  const text = readFileSync(file, 'utf8');
  if (isSopsText(text, formatOf(file))) throw new OpsError(`${shown} is already a sops file`, 'edit it with ops secrets edit, or decrypt it first');
  const secrets = SecretsFile.create(file, parseTree(text, formatOf(file), { file: shown }), { recipients: recipientsFor(root, file) });
  await secrets.save();
  return secrets;
}
