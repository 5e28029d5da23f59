// An environment's decrypted secrets for an operation: MAC verified, every value masked before use, and
// refused while they are still placeholders or still readable with the published example key.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SECRETS_FILE, loadEnvironment, readEnvironmentConfig, type Environment } from '../config/environment.ts';
import type { OpsContext } from '../context.ts';
import { refuseUnreadableSecrets, renderDotenv, type ChangeCheckContext, type RenderedEnv } from '../dotenv.ts';
import { InputError, KeyUnavailable, messageLine, OpsError, userFileExists } from '../errors.ts';
import { packagesNeedSecrets, refusePackageSecrets } from '../packages.ts';
import { tokensIn, urlCredentials, urlCredentialsIn } from '../secrets/parts.ts';
import { splitKeyPath } from '../secrets/tree.ts';
import { distance } from '../config/schema-object.ts';
import { keyName, own } from '../report.ts';
import { EXAMPLE_RECIPIENT } from '../secrets/key-file.ts';

export { EXAMPLE_RECIPIENT };

/**
 * The credentials written in plain values of environment.yml (committed in the clear): a URL's password or a token as
 * the user of a URL or a git address (scheme://user:PASSWORD@host, scheme://TOKEN@host, TOKEN@host:path:
 * core/secrets/parts.ts urlCredentials), or a token of a documented shape (ghp_…, sk_live_…, AKIA…, a JWT: tokensIn), in
 * `env` or a program's `env`,
 * each with the setting it is in. `{ secret: key }` references are not plain: their values come from the secrets file.
 */
export function plainPasswords(env: Environment): { path: string; passwords: string[] }[] {
  const values: [string, unknown][] = [
    ...Object.entries(env.config.env).map(([k, v]): [string, unknown] => [`env.${k}`, v]),
    ...Object.entries(env.config.programs).flatMap(([name, p]) => Object.entries(p.env).map(([k, v]): [string, unknown] => [`programs.${name}.env.${k}`, v])),
  ];
  return values.flatMap(([path, v]) => {
    if (typeof v !== 'string') return [];
    const inUrls = urlCredentials(v);
    const passwords = [...inUrls, ...tokensIn(v).filter((t) => !inUrls.includes(t))];
    return passwords.length ? [{ path, passwords }] : [];
  });
}

/**
 * Every URL password or token written anywhere in the environment's settings (any string at any depth: an env value,
 * a command line, a package index URL), as written and percent-decoded (urlCredentialsIn), and every token of a
 * documented shape (tokensIn).
 */
export function settingsPasswords(env: Pick<Environment, 'config'>): string[] {
  const out = new Set<string>();
  const walk = (node: unknown): void => {
    if (typeof node === 'string') for (const p of [...urlCredentialsIn(node), ...tokensIn(node)]) out.add(p);
    else if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') Object.values(node).forEach(walk);
  };
  walk(env.config);
  return [...out];
}

/**
 * The one way a command or an action loads an environment: loadEnvironment (its errors thrown as they are), then
 * every URL password or token in its settings masked in all ops prints from then on (settingsPasswords): `ops config`, a
 * deploy and a status alike. The secrets file's values are masked where it is decrypted (environmentSecrets,
 * dotenvPreview, status's and logs' masking). Guarded: test/unit/printed-secrets.test.ts fails on a command,
 * action or operation calling loadEnvironment itself.
 */
export function openEnvironment(ctx: Pick<OpsContext, 'root' | 'reporter'>, name: string): Environment {
  const env = loadEnvironment(name, ctx.root);
  for (const p of settingsPasswords(env)) ctx.reporter.mask(p);
  return env;
}

/**
 * Mask the passwords of plain values (plainPasswords) in everything ops prints: a build or migration printing its
 * database URL shows `***` as for a secret. With `warn`, say once which settings hold one and how to move it to the
 * secrets file (a deploy's and initdata's read; status and logs only mask).
 */
export function maskPlainPasswords(ctx: OpsContext, env: Environment, warn: boolean): void {
  const found = plainPasswords(env);
  for (const { passwords } of found) for (const p of passwords) ctx.reporter.mask(p);
  if (warn && found.length)
    ctx.reporter.warn(
      `environments/${env.name}/environment.yml holds a credential in plain text in ${found.map((f) => f.path).join(', ')} (a URL's password, user:PASSWORD@, a token as the user of a URL or a git address, https://TOKEN@host, TOKEN@host:path, or a token of a known shape, sk_live_…, ghp_…, AKIA…, a JWT): it is masked in ops's output, but committed in the clear; move the value to the secrets file (ops secrets set ${env.name} <key>) and refer to it (KEY: { secret: <key> })`,
    );
}

/**
 * Decrypted secrets for a deploy: MAC verified, masked; refused while encrypted to the example key or holding
 * placeholders. A weak value (core/secrets/weak.ts: short, or a common word or number) is warned about once,
 * naming its keys, never the value: masking it garbles the logs.
 */
export async function environmentSecrets(ctx: OpsContext, env: Environment): Promise<Record<string, unknown>> {
  maskPlainPasswords(ctx, env, true);
  const file = join(env.dir, SECRETS_FILE);
  const label = `environments/${env.name}/${SECRETS_FILE}`;
  if (!userFileExists(file, label)) {
    const missing = await missingSecretsRefusal(env);
    if (missing) throw missing;
    return {};
  }
  // The sops and age code is loaded only for an environment that has secrets (a deploy's start-up without them).
  const { decryptFile, findPlaceholders, loadEnvIdentities, placeholderError } = await import('../secrets/index.ts');
  const { weakSecretWarnings } = await import('../secrets/weak.ts');
  const identities = await loadEnvIdentities(env.root, env.name, ctx.processEnv, (m) => ctx.reporter.warn(m));
  // The values are masked once the weak ones are named: a warning about the secret "app" must not read
  // "***ears" (it names keys and lengths, never a value). Nothing is printed in between.
  allowSecretRefs(env, ctx);
  const masked: string[] = [];
  let decrypted: Awaited<ReturnType<typeof decryptFile>>;
  try {
    decrypted = await decryptFile(file, { identities, mask: (v) => masked.push(v), allow: (k) => ctx.reporter.allow?.(k) });
    const seen = new Set(masked);
    for (const w of weakSecretWarnings(decrypted.tree, (text) => seen.has(text))) ctx.reporter.warn(`${label}: ${w}`);
  } finally {
    for (const v of masked) ctx.reporter.mask(v);
  }
  if (decrypted.recipients.includes(EXAMPLE_RECIPIENT))
    throw new OpsError(
      `${label} is still encrypted to the published example key (environments/example-age-key.txt): anyone can read it`,
      `add your own key and drop the example one: ops secrets recipients ${env.name} add <age1...>; ops secrets recipients ${env.name} remove ${EXAMPLE_RECIPIENT}; then set real values`,
    );
  const placeholders = findPlaceholders(decrypted.tree);
  if (placeholders.length) throw placeholderError(label, env.name, placeholders);
  return decrypted.data;
}

/**
 * The deploy's refusal of an environment without its secrets file (secrets.sops.yaml) whose `env` or `packages` refer
 * to secrets: a sops file under another name named with the sops commands that make it secrets.sops.yaml
 * (otherSopsFilesRefusal), else "does not exist". Undefined when nothing refers to a secret (no file is needed).
 */
async function missingSecretsRefusal(env: Environment): Promise<OpsError | undefined> {
  if (!Object.values(env.config.env).some((v) => typeof v !== 'string') && !packagesNeedSecrets(env)) return undefined;
  const { otherSopsFilesRefusal } = await import('../secrets/env.ts');
  const label = `environments/${env.name}/${SECRETS_FILE}`;
  return otherSopsFilesRefusal(env.root, env.name, 'nothing was sent to any host') ?? new OpsError(`${label} does not exist, but the environment's env or packages refer to secrets`, `create it: printf '%s' VALUE | ops secrets set ${env.name} <key>`);
}

/**
 * The key paths the environment's `env` names (`{ secret: <key path> }`) are no secrets, whether the file holds them
 * or not: told to the reporter (allow), so that a value occurring in one leaves it whole where a message names it.
 */
function allowSecretRefs(env: Pick<Environment, 'config'>, ctx: OpsContext): void {
  for (const v of Object.values(env.config.env)) if (typeof v !== 'string') ctx.reporter.allow?.(v.secret);
}

/**
 * The settings `ops config` prints, each key name marked as one (keyName) and told to `reporter` (allow): the
 * structure is shown whole, though a secret's value occurs in a key or is one (a key `debug`, a secret "debug", a
 * secret "app" in `app_user`): key names are environment.yml's, in clear in the repository, no secret. The values
 * are masked as ever. `plain(key)`: whether the key prints as it is (a key the output quotes, `"null"`, is not
 * marked: a mark inside it would change how it is quoted).
 */
export function markSettingKeys(node: unknown, reporter: OpsContext['reporter'], plain: (key: string) => boolean): unknown {
  if (Array.isArray(node)) return node.map((item) => markSettingKeys(item, reporter, plain));
  if (!node || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node).map(([k, v]) => {
      reporter.allow?.(k);
      return [plain(k) ? keyName(k) : k, markSettingKeys(v, reporter, plain)];
    }),
  );
}

/**
 * The .env a deploy would render, for `ops config`: plain values always; secrets too when a key opens the
 * secrets file (masked; placeholders and the example key are allowed here). Throws the deploy's OpsError for a
 * missing secret or a value the declared readers cannot carry, and the deploy's refusal of the secrets file itself
 * (missing while the env or packages refer to secrets, under another name, not a sops YAML file, its MAC not
 * matching), as an InputError (the project's files are wrong: the CLI exits 2). Only a key this machine lacks
 * (KeyUnavailable, or a key setting loadEnvIdentities refuses: a laptop without the deploy's key) leaves the
 * secrets out, `unchecked` saying why: the file may be right, and the deploy that has the key checks it.
 */
export async function dotenvPreview(ctx: OpsContext, env: Environment): Promise<RenderedEnv & { unchecked?: string }> {
  const file = join(env.dir, SECRETS_FILE);
  const refs = Object.entries(env.config.env).filter(([, v]) => typeof v !== 'string');
  const refused = (e: OpsError) => new InputError(e.message, e.hint);
  allowSecretRefs(env, ctx);
  if (!userFileExists(file, `environments/${env.name}/${SECRETS_FILE}`)) {
    const missing = await missingSecretsRefusal(env);
    if (missing) throw refused(missing);
    return renderDotenv(env, {});
  }
  const { decryptFile, loadEnvIdentities } = await import('../secrets/index.ts');
  // the file is read and parsed whatever the key: a key setting refused here is this machine's, said as unchecked
  let keySetting: OpsError | undefined;
  const identities = await loadEnvIdentities(env.root, env.name, ctx.processEnv, (m) => ctx.reporter.warn(m)).catch((e: unknown) => {
    if (!(e instanceof OpsError)) throw e;
    keySetting = e;
    return { identities: [], tried: [] };
  });
  const decrypted = await decryptFile(file, { identities, mask: (v) => ctx.reporter.mask(v), allow: (k) => ctx.reporter.allow?.(k) }).catch((e: unknown) => {
    if (e instanceof KeyUnavailable) return messageLine(keySetting ?? e);
    throw e instanceof OpsError && !(e instanceof InputError) ? refused(e) : e;
  });
  if (typeof decrypted !== 'string') return renderDotenv(env, decrypted.data);
  const plainOnly: Environment = { ...env, config: { ...env.config, env: Object.fromEntries(Object.entries(env.config.env).filter(([, v]) => typeof v === 'string')) } };
  return { ...renderDotenv(plainOnly, {}), ...(refs.length && { unchecked: `${refs.length} secret value(s) not checked against dotenv.readers: ${decrypted}` }) };
}

/**
 * The check `ops secrets set` and `ops secrets edit` (`command`) run on a change of environment `envName`'s
 * secrets before writing it: what a deploy or a provision would refuse of the values the change sets, alters or
 * removes, by the same checks and with the same messages: a placeholder (CHANGE-ME, refused by every deploy,
 * whatever reads it: core/secrets/env.ts), a .env value its readers would not read back or a secret the .env needs
 * removed (core/dotenv.ts, refuseUnreadableSecrets), and a `packages` secret provision would not write
 * (core/packages.ts, refusePackageSecrets). Each message says nothing was written, and whether the file exists.
 * An environment.yml that cannot be read does not hold the change back (its secrets may be set before it is
 * fixed): `warn` says the values were not checked against it, and why; the deploy still checks them.
 */
export async function secretsChangeCheck(root: string, envName: string, warn: (message: string) => void, command: 'set' | 'edit' = 'set'): Promise<(before: unknown, after: unknown) => void> {
  // loaded here, not at the top: a deploy's start-up without secrets loads no sops or age code
  const { newPlaceholders, placeholderError } = await import('../secrets/env.ts');
  const label = `environments/${envName}/${SECRETS_FILE}`;
  const how: ChangeCheckContext = { command, untouched: `nothing was written: ${label} ${existsSync(join(root, 'environments', envName, SECRETS_FILE)) ? 'is unchanged' : 'was not created'}` };
  const placeholders = (before: unknown, after: unknown) => {
    const found = newPlaceholders(before, after);
    if (found.length) throw placeholderError(label, envName, found, how);
  };
  let settings: Pick<Environment, 'name' | 'config'>;
  try {
    settings = { name: envName, config: readEnvironmentConfig(envName, root).config };
  } catch (e) {
    if (!(e instanceof OpsError)) throw e;
    // The error's heading ends in "has N problems:", each problem on a line of its own: all of them said.
    const why = messageLine(e);
    return (before, after) => {
      placeholders(before, after);
      warn(`the values were not checked against dotenv.readers or packages (${why}): a deploy checks them`);
    };
  }
  return (before, after) => {
    placeholders(before, after);
    refuseUnreadableSecrets(settings, before, after, how);
    try {
      refusePackageSecrets(settings, before, after);
    } catch (e) {
      if (!(e instanceof OpsError)) throw e;
      throw new OpsError(`${e.message} (every provision would refuse it; ${how.untouched})`, e.hint);
    }
  };
}

/**
 * The warning for a secret `ops secrets set` creates at `path` that nothing of the environment reads: no `env` entry
 * or `packages` setting names it, a map holding it or a key inside it, so no deploy sends it. Most likely a mistyped
 * key: the variable's name for its secret's (`DATABASE_URL` for `database_url`), or a typo; the closest secret read is
 * suggested. undefined when something reads it. `data`: the secrets after the change (refs resolve against it).
 */
export function unreadSecretWarning(settings: Pick<Environment, 'name' | 'config'>, data: unknown, path: string[], allow?: (name: string) => void): string | undefined {
  const c = settings.config;
  const refs: Array<{ ref: string; reader: string }> = [
    ...Object.entries(c.env).flatMap(([name, v]) => (typeof v === 'string' ? [] : [{ ref: v.secret, reader: name }])),
    ...(['pip_index_url', 'npm_token'] as const).flatMap((k) => {
      const v = c.packages?.[k];
      return v && typeof v !== 'string' ? [{ ref: v.secret, reader: `packages.${k}` }] : [];
    }),
  ];
  const isMap = (n: unknown): n is Record<string, unknown> => n !== null && typeof n === 'object' && !Array.isArray(n);
  const keysAt = (keys: string[]) => {
    const n = keys.reduce<unknown>((t, k) => (isMap(t) ? t[k] : undefined), data);
    return isMap(n) ? Object.keys(n) : [];
  };
  const prefix = (a: string[], b: string[]) => a.length <= b.length && a.every((k, i) => k === b[i]);
  const read = refs.map((r) => ({ ...r, path: splitKeyPath(r.ref, keysAt, { reference: { env: settings.name } }) }));
  if (read.some((r) => prefix(r.path, path) || prefix(path, r.path))) return undefined;
  const typed = path.join('.').toLowerCase();
  const near = read.find((r) => r.reader.toLowerCase() === typed || r.reader.toLowerCase().endsWith(`_${typed}`)) ??
    read.map((r) => ({ r, d: distance(typed, r.ref.toLowerCase()) })).sort((a, b) => a.d - b.d).find((x) => x.d <= Math.max(1, Math.floor(typed.length / 3)))?.r;
  // Key and variable names, no secrets: said whole (ops's own words around them too), whatever value is masked.
  const key = path.join('.');
  for (const name of [key, ...(near ? [near.ref, near.reader] : [])]) allow?.(name);
  return (
    own`nothing in environments/${keyName(settings.name)}/environment.yml reads the new secret ${keyName(key)} (no env entry or packages setting names it): no deploy sends it` +
    (near
      ? own`; did you mean ${keyName(near.ref)} (read as ${keyName(near.reader)})? Set that one, and delete this one with ops secrets edit ${keyName(settings.name)}`
      : own`; refer to it in env (NAME: { secret: ${keyName(key)} }), or check its name`)
  );
}
