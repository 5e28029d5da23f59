// Secrets of an environment: where its sops files are, which identities open them, the generators for
// its random secrets, and the placeholder marker `ops env new` writes.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { parseDocument } from 'yaml';
import { refuseAliasBomb, refuseDeepNesting } from '../yaml-depth.ts';
import { ENVIRONMENT_FILE, ENVIRONMENT_YAML, SECRETS_FILE } from '../config/environment.ts';
import { InputError, OpsError, fileError, userFileExists } from '../errors.ts';
import { gitEnvironment } from '../git.ts';
import { keyName, own } from '../report.ts';
import { quote, validate } from '../shell.ts';
import { type Identities, loadIdentities, parseIdentities } from './keys.ts';
import { isSopsText, sopsStoreOf } from './sops-metadata.ts';
import { type MapNode, type ScalarNode, forEachLeaf, formatOf, fromPlain, showPath } from './tree.ts';


/** <root>/environments/<env>. @throws OpsError for an invalid environment name. */
export function envDir(root: string, env: string): string {
  return join(root, 'environments', validate('environment', env));
}

/** environments/<env>/secrets.sops.yaml */
export function secretsPath(root: string, env: string): string {
  return join(envDir(root, env), SECRETS_FILE);
}

/** The store (format) sops wrote a file in: getsops/sops stores/ (yaml, json, dotenv, ini; binary, written as JSON). */
export type SopsStore = 'yaml' | 'json' | 'binary' | 'dotenv' | 'ini';

/**
 * The sops files in environments/<env>/ itself (not assets/) other than secrets.sops.yaml, the one file ops reads an
 * environment's secrets from, each with the store sops wrote it in, told from its text as sops's stores write their
 * metadata (getsops/sops stores/: a top-level `sops` map in YAML and JSON, its binary store being JSON holding only
 * `data` and `sops`; `sops_mac=` lines in dotenv; a `[sops]` section in INI: sopsStoreOf), whatever the name: what a
 * new user following sops's own documentation makes (`secrets.enc.yaml`, `sops encrypt secrets.json >
 * secrets.sops.json`, `secrets.yaml`, `secrets.env`), which no deploy would read. Files over 4 MiB, unreadable ones,
 * copies of secrets.sops.yaml (`secrets.sops.yaml.old`) and the edits `ops secrets edit` keeps aside (`*.unsaved-edit-*`)
 * are passed over. Sorted by name; [] when there is none.
 */
export function otherSopsFiles(root: string, env: string): { name: string; store: SopsStore }[] {
  const dir = envDir(root, env);
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  return names.flatMap((name): { name: string; store: SopsStore }[] => {
    // a copy of secrets.sops.yaml kept on purpose (`.old`, `.bak`, `~`: moved aside to start anew), and an edit `ops
    // secrets edit` kept aside (core/secrets/edit.ts), which has its own way back, are no secrets file meant to be read
    if (name.startsWith(SECRETS_FILE) || name === ENVIRONMENT_FILE || name.includes('.unsaved-edit-')) return [];
    let text: string;
    try {
      const st = statSync(join(dir, name));
      if (!st.isFile() || st.size > 4 * 1024 * 1024) return [];
      text = readFileSync(join(dir, name), 'utf8');
    } catch {
      return [];
    }
    if (!text.includes('sops')) return [];
    const other = sopsStoreOf(text);
    if (other) return [{ name, store: other === 'INI' ? 'ini' : 'dotenv' }];
    const json = /^\s*\{/.test(text);
    if (!isSopsText(text, json ? 'json' : 'yaml')) return [];
    // sops's binary store: the whole plaintext is the one value `data` (a file of a type sops does not know by its name)
    let binary = false;
    try {
      binary = json && Object.keys(JSON.parse(text) as object).sort().join() === 'data,sops';
    } catch {
      // not JSON.parse's JSON: judged as YAML or JSON by isSopsText already
    }
    return [{ name, store: binary ? 'binary' : json ? 'json' : 'yaml' }];
  });
}

/**
 * The refusal for environment `env` of project `root` whose secrets.sops.yaml does not exist while another sops file
 * in its folder does (otherSopsFiles): ops reads that file from secrets.sops.yaml only, so its secrets would reach no
 * deploy, and a new secrets.sops.yaml (`ops secrets set`/`edit`) would be a second file beside it. `doing` says what was
 * stopped (`nothing was sent to any host`, `nothing was written`). The hint makes it secrets.sops.yaml with sops itself,
 * the plaintext only in the pipe, encrypted for the recipients .sops.yaml gives that name; nothing is printed of any
 * value. undefined when there is no other sops file.
 */
export function otherSopsFilesRefusal(root: string, env: string, doing: string): OpsError | undefined {
  const found = otherSopsFiles(root, env);
  const first = found[0];
  if (!first) return undefined;
  const rel = (name: string) => `environments/${env}/${name}`;
  const [target, next] = [quote(rel(SECRETS_FILE)), quote(`${rel(SECRETS_FILE)}.new`)];
  const named = found.map((f) => `${rel(f.name)} (${f.store === 'binary' ? "sops's binary format: its whole plaintext is one value, `data`" : `${f.store === 'ini' ? 'INI' : f.store === 'json' ? 'JSON' : f.store === 'yaml' ? 'YAML' : 'dotenv'}`})`);
  // binary: the file that was encrypted is the value `data` (as for a secrets.sops.yaml in that format: binaryStoreNote); made YAML, it must be YAML (or JSON) itself
  const decrypt = first.store === 'binary' ? `sops decrypt --input-type json --extract '["data"]' ${quote(rel(first.name))}` : `sops decrypt --input-type ${first.store} --output-type yaml ${quote(rel(first.name))}`;
  return new OpsError(
    `${rel(SECRETS_FILE)} does not exist, but ${found.length === 1 ? `${named[0]} is a sops file` : `these are sops files: ${named.join(', ')}`} in environments/${env}/: ops reads an environment's secrets from ${SECRETS_FILE} only (whatever format another name has), so ${found.length === 1 ? 'its' : 'their'} secrets would reach no deploy, and a new ${SECRETS_FILE} would be a second file beside ${found.length === 1 ? 'it' : 'them'} (${doing})`,
    `make it ${rel(SECRETS_FILE)} with sops, the plaintext only in the pipe (never on disk)${first.store === 'binary' ? ' (its plaintext must be YAML or JSON text)' : ''}: ${decrypt} | sops encrypt --filename-override ${target} --input-type yaml --output-type yaml > ${next} && mv ${next} ${target}, check it with \`ops secrets show ${env}\`${first.store === 'ini' ? ` (each INI section becomes a map: a key of [DEFAULT] is then DEFAULT.<key>; move the keys your env entries name to the top with \`ops secrets edit ${env}\`)` : ''}, then remove ${quote(rel(first.name))}`,
  );
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
