// Secrets of an environment: where its sops files are, which identities open them, the generators for
// its random secrets, and the placeholder marker `ops env new` writes.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { SECRETS_FILE } from '../config/environment.ts';
import { OpsError } from '../errors.ts';
import { validate } from '../shell.ts';
import { type Identities, loadIdentities, parseIdentities } from './keys.ts';
import { isSopsText } from './sops-metadata.ts';
import { type MapNode, forEachLeaf, formatOf, showPath } from './tree.ts';


/** <root>/environments/<env>. @throws OpsError for an invalid environment name. */
export function envDir(root: string, env: string): string {
  return join(root, 'environments', validate('environment', env));
}

/** environments/<env>/secrets.sops.yaml */
export function secretsPath(root: string, env: string): string {
  return join(envDir(root, env), SECRETS_FILE);
}

/** Every sops-encrypted file of an environment: its secrets file, and encrypted assets (assets/*.yml|yaml|json). */
export function envSopsFiles(root: string, env: string): string[] {
  const dir = envDir(root, env);
  const files: string[] = [];
  const secrets = join(dir, SECRETS_FILE);
  if (existsSync(secrets)) files.push(secrets);
  const assets = join(dir, 'assets');
  if (existsSync(assets)) {
    for (const name of readdirSync(assets).sort()) {
      if (!/\.(ya?ml|json)$/i.test(name)) continue;
      const file = join(assets, name);
      try {
        if (isSopsText(readFileSync(file, 'utf8'), formatOf(file))) files.push(file);
      } catch {
        // unreadable or a directory: not ours to judge here
      }
    }
  }
  return files;
}

/**
 * The identities that open an environment's files: the user's own (SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, the
 * default key file), plus the environment's `secrets.age_key_file` when it declares one (throwaway
 * sandboxes only). environment.yml is read loosely here, so a broken config does not lock secrets away (and
 * quietly: what is wrong with it, an unknown tag included, is said once, by the environment's loader).
 */
export async function loadEnvIdentities(root: string, env: string, processEnv: NodeJS.ProcessEnv = process.env): Promise<Identities> {
  const ids = await loadIdentities(processEnv);
  const configFile = join(envDir(root, env), 'environment.yml');
  if (!existsSync(configFile)) return ids;
  let keyFile: unknown;
  try {
    keyFile = (parseYaml(readFileSync(configFile, 'utf8'), { logLevel: 'error' }) as { secrets?: { age_key_file?: unknown } } | null)?.secrets?.age_key_file;
  } catch {
    return ids;
  }
  if (typeof keyFile !== 'string' || !keyFile) return ids;
  const path = isAbsolute(keyFile) ? keyFile : resolve(envDir(root, env), keyFile);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new OpsError(`environments/${env}/environment.yml names secrets.age_key_file ${path}, which cannot be read`, 'create it (`ops keygen --output <file>`) or remove that setting');
  }
  const found = await parseIdentities(text, path);
  const known = new Set(ids.identities.map((i) => i.secret));
  return {
    identities: [...ids.identities, ...found.filter((i) => !known.has(i.secret))],
    tried: [...ids.tried, `${path} (secrets.age_key_file, ${found.length} key${found.length === 1 ? '' : 's'})`],
    defaultFile: ids.defaultFile,
  };
}

// ---------------------------------------------------------------------------------------------------
// Generated secrets (the seed's `make secretkey` / `make apikey`: random URL-safe tokens)

/** A random URL-safe token: `bytes` random bytes, base64url (no padding). */
export function generateToken(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}

/** secret_key: 64 random bytes → 86 URL-safe characters. */
export function generateSecretKey(): string {
  return generateToken(64);
}

/** config_repo_api_key: 32 random bytes → 43 URL-safe characters. */
export function generateApiKey(): string {
  return generateToken(32);
}

// ---------------------------------------------------------------------------------------------------
// Placeholders

/** Values `ops env new` cannot know start with this; a deploy should refuse them (see findPlaceholders). */
export const PLACEHOLDER = 'CHANGE-ME';

/** Key paths whose value is still a placeholder. */
export function findPlaceholders(tree: MapNode): string[] {
  const found: string[] = [];
  forEachLeaf(tree, (leaf, _keys, path) => {
    if (leaf.type === 'str' && (leaf.value as string).startsWith(PLACEHOLDER)) found.push(showPath(path));
  });
  return found;
}

/** The secrets the application reads (brief: "Secrets per environment"), with what each one is. */
export const APP_SECRETS: { key: string; about: string }[] = [
  { key: 'host', about: 'IP address of the VM (the seed kept it with the secrets)' },
  { key: 'secret_key', about: 'cookie encryption key (generated: `ops secretkey`)' },
  { key: 'database_url', about: 'postgresql+asyncpg://user:password@host:5432/db, the password URL-encoded' },
  { key: 'config_repo_api_key', about: 'API key of the configuration repository (generated: `ops apikey`)' },
  { key: 'datapass_client_id', about: 'OpenID Connect client ID at Comptes DataPass' },
  { key: 'datapass_client_secret', about: 'OpenID Connect client secret at Comptes DataPass' },
  { key: 'passwords', about: 'initdata users: e-mail -> password (TOOLS_PASSWORDS, used where initdata says __env__)' },
];
