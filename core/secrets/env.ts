// Secrets of an environment: where its sops files are, which identities open them, the generators for
// its random secrets, and the placeholder marker `ops env new` writes.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { parseDocument } from 'yaml';
import { refuseAliasBomb, refuseDeepNesting } from '../yaml-depth.ts';
import { ENVIRONMENT_YAML, SECRETS_FILE } from '../config/environment.ts';
import { InputError, OpsError, fileError, userFileExists } from '../errors.ts';
import { gitEnvironment } from '../git.ts';
import { keyName, own } from '../report.ts';
import { validate } from '../shell.ts';
import { type Identities, loadIdentities, parseIdentities } from './keys.ts';
import { isSopsText } from './sops-metadata.ts';
import { type MapNode, type ScalarNode, forEachLeaf, formatOf, fromPlain, showPath } from './tree.ts';


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
  if (userFileExists(secrets, `environments/${env}/${SECRETS_FILE}`)) files.push(secrets);
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

/** The one environment whose private key may live in the repository: the sandbox's (README, "Environments"). */
export const THROWAWAY_ENVIRONMENT = 'local';

/**
 * What git says of a file: tracked, ignored, or neither; undefined outside a git work tree (or without git). In ops's
 * git environment (gitEnvironment): a GIT_DIR or GIT_INDEX_FILE the user's shell exports (a dotfiles repository's)
 * would have git answer for another repository.
 */
function gitState(root: string, file: string, processEnv: NodeJS.ProcessEnv): 'tracked' | 'ignored' | 'untracked' | undefined {
  const env = gitEnvironment(processEnv);
  const git = (...args: string[]) => execFileSync('git', args, { cwd: root, env, stdio: ['ignore', 'pipe', 'ignore'], encoding: 'utf8' });
  try {
    if (git('rev-parse', '--is-inside-work-tree').trim() !== 'true') return undefined;
  } catch {
    return undefined;
  }
  try {
    if (git('ls-files', '--', file).trim()) return 'tracked';
  } catch {
    return undefined;
  }
  try {
    git('check-ignore', '-q', '--', file);
    return 'ignored';
  } catch {
    return 'untracked'; // exit code 1: not ignored
  }
}

/**
 * Why an environment's secrets.age_key_file (`path`, resolved) is a risk: a private key inside the repository
 * for an environment other than the throwaway sandbox, and one that git tracks (committed: anyone with the
 * repository decrypts the secrets) or does not ignore (the next `git add -A` commits it). One message each. `processEnv`:
 * the environment git is asked in (gitState).
 */
export function ageKeyFileProblems(root: string, env: string, path: string, processEnv: NodeJS.ProcessEnv = process.env): string[] {
  const rel = relative(root, path);
  if (rel.startsWith('..') || isAbsolute(rel) || env === THROWAWAY_ENVIRONMENT) return [];
  const shown = rel.split(sep).join('/');
  const out = [
    `environments/${env}/environment.yml: secrets.age_key_file is ${shown}, a private key inside the repository: that setting is only for the throwaway sandbox (${THROWAWAY_ENVIRONMENT}); keep ${env}'s key out of the repository ($SOPS_AGE_KEY, $SOPS_AGE_KEY_FILE, or the default key file) and remove the setting`,
  ];
  const state = gitState(root, rel, processEnv);
  if (state === 'tracked')
    out.push(`${shown} (${env}'s private age key) is tracked by git: it is committed, and anyone with the repository can decrypt ${env}'s secrets; git rm --cached ${shown}, add it to .gitignore, then make ${env} a new key (ops keygen, ops secrets recipients ${env} add/remove) and change the secrets themselves`);
  else if (state === 'untracked')
    out.push(`${shown} (${env}'s private age key) is not ignored by git: the next \`git add -A\` would commit it; move it out of the repository, or at least add it to .gitignore`);
  return out;
}

/**
 * The identities that open an environment's files: the user's own (SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, the
 * default key file), plus the environment's `secrets.age_key_file` when it declares one (throwaway
 * sandboxes only: `warn` is told when another environment's key is in the repository, and whether git tracks
 * or ignores it, see ageKeyFileProblems). environment.yml is read loosely here, so a broken config does not lock secrets away (and
 * quietly: what is wrong with it, an unknown tag included, is said once, by the environment's loader).
 */
export async function loadEnvIdentities(root: string, env: string, processEnv: NodeJS.ProcessEnv = process.env, warn?: (message: string) => void): Promise<Identities> {
  const ids = await loadIdentities(processEnv);
  if (warn) for (const w of ids.warnings ?? []) warn(w);
  const configFile = join(envDir(root, env), 'environment.yml');
  if (!userFileExists(configFile, `environments/${env}/environment.yml`)) return ids;
  let keyFile: unknown;
  try {
    const text = readFileSync(configFile, 'utf8');
    refuseDeepNesting(text, configFile);
    const doc = parseDocument(text, { ...ENVIRONMENT_YAML, logLevel: 'error' });
    if (doc.errors.length) return ids;
    refuseAliasBomb(doc, configFile); // refused quietly here (the loader says so), never built
    keyFile = (doc.toJS({ maxAliasCount: -1 }) as { secrets?: { age_key_file?: unknown } } | null)?.secrets?.age_key_file;
  } catch {
    return ids;
  }
  if (typeof keyFile !== 'string' || !keyFile) return ids;
  const path = isAbsolute(keyFile) ? keyFile : resolve(envDir(root, env), keyFile);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    // why (no such file, a directory...), and, missing, where a relative one starts from
    const why = fileError(e, path, 'read', 'an age key file');
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new OpsError(`secrets.age_key_file of environments/${env}/environment.yml: ${why.message}`, missing ? `create it (\`ops keygen --output <file>\`) or remove that setting; a relative path starts from the environment's folder, environments/${env}/` : why.hint);
  }
  const found = await parseIdentities(text, path);
  if (warn) for (const w of ageKeyFileProblems(root, env, path, processEnv)) warn(w);
  const known = new Set(ids.identities.map((i) => i.secret));
  return {
    identities: [...ids.identities, ...found.filter((i) => !known.has(i.secret))],
    tried: [...ids.tried, `${path} (secrets.age_key_file, ${found.length} key${found.length === 1 ? '' : 's'})`],
    defaultFile: ids.defaultFile,
    ...(ids.problems && { problems: ids.problems }),
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

/** The one rule for a placeholder: a text value starting with CHANGE-ME (what `ops env new` writes). */
export function isPlaceholder(leaf: ScalarNode): boolean {
  return leaf.type === 'str' && typeof leaf.value === 'string' && leaf.value.startsWith(PLACEHOLDER);
}

/** Key paths whose value is still a placeholder. */
export function findPlaceholders(tree: MapNode): string[] {
  const found: string[] = [];
  forEachLeaf(tree, (leaf, _keys, path) => {
    if (isPlaceholder(leaf)) found.push(showPath(path));
  });
  return found;
}

/**
 * The refusal of placeholder values (every deploy's, initdata's, and a provision's that reads secrets; and
 * `ops secrets set`/`edit`'s for a value they would store): `keys` named, never their values. `stored` says what
 * the file holds: "still holds" (a deploy) or what a change would leave (nothing written).
 */
export function placeholderError(label: string, env: string, keys: string[], change?: { untouched: string }): InputError {
  // ops's own words and the keys marked as such (core/report.ts own, keyName): a weak value ("deploy") masks neither
  const named = keys.map(keyName).join(', ');
  const what = keys.length === 1 ? own`a placeholder value (CHANGE-ME)` : own`placeholder values (CHANGE-ME)`;
  return change
    ? new InputError(
        own`${label} would hold ${what}, which every deploy refuses (${change.untouched}): ${named}`,
        own`set the real value (printf '%s' VALUE | ops secrets set ${env} ${keys.length === 1 ? keyName(keys[0]!) : '<key>'}); a value starting with CHANGE-ME is taken for one \`ops env new\` wrote`,
      )
    : new InputError(
        own`${label} still holds placeholder values (CHANGE-ME): ${named}`,
        // `ops env new` writes the catalogue's secrets: another app may use none of them (README: "Adding an environment").
        own`set them: printf '%s' VALUE | ops secrets set ${env} <key>; one your app does not use: drop the env line naming it, if any, and delete it (ops secrets edit ${env})`,
      );
}

/**
 * The placeholders a change of the decrypted data (`before` → `after`) brings: values the change sets or alters
 * that are placeholders (isPlaceholder), by key path; those left as they were are the deploy's to refuse.
 */
export function newPlaceholders(before: unknown, after: unknown): string[] {
  const old = new Map<string, unknown>();
  forEachLeaf(fromPlain(before), (leaf, _keys, path) => old.set(showPath(path), leaf.value));
  const found: string[] = [];
  forEachLeaf(fromPlain(after), (leaf, _keys, path) => {
    if (isPlaceholder(leaf) && old.get(showPath(path)) !== leaf.value) found.push(showPath(path));
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
