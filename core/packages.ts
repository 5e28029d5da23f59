// Package indexes (`packages` in environment.yml): where the hosts' pip and npm install dependencies from.
// Rendered here into the app user's pip.conf, uv.toml and .npmrc (provision uploads them, 0600), so a deploy's installs
// (run as the app user, HOME set) use them without anything on a command line.
import { isDeepStrictEqual } from 'node:util';
import type { Environment } from './config/environment.ts';
import { lookup } from './dotenv.ts';
import { OpsError } from './errors.ts';
import { binaryRefused } from './secrets/tree.ts';
import { quote } from './shell.ts';

/** How each file packageIndexFiles renders begins: a file on a host whose first line starts so is ops's, the environment's. */
export const PROVISION_MARK = '# Written by ops-pipeline provision';

export interface PackageIndexFiles {
  /** pip's configuration file text (pip.conf, INI), or undefined when pip keeps its own default index. */
  pipConf?: string;
  /** uv's user configuration (uv.toml: the same index as pip's, as uv reads no pip.conf), or undefined. */
  uvToml?: string;
  /** npm's user configuration text (.npmrc), or undefined when npm keeps its own default registry. */
  npmrc?: string;
  /** The start of the .npmrc line holding the token ("//host/path/:_authToken="), when there is one. */
  npmTokenKey?: string;
}

/** What the package files are rendered from: an environment's name and settings. */
export type PackageSettings = Pick<Environment, 'name' | 'config'>;

/** True when rendering needs the decrypted secrets (a URL or token given as `{ secret: ... }`). */
export function packagesNeedSecrets(env: PackageSettings): boolean {
  const p = env.config.packages;
  return typeof p.pip_index_url === 'object' || p.npm_token !== undefined;
}

function secret(env: PackageSettings, secrets: unknown, setting: string, path: string): string {
  const value = lookup(secrets, path, env.name);
  if (value instanceof Uint8Array) throw binaryRefused(path, `for ${setting}`, env.name);
  if (typeof value !== 'string' || !value)
    throw new OpsError(`environments/${env.name}/secrets.sops.yaml lacks the secret "${path}" that ${setting} needs (a non-empty string)`, `set it: printf '%s' VALUE | ops secrets set ${env.name} ${quote(path)}`);
  return value;
}

/** One line of an INI/npmrc value: a value with a line break or NUL would inject other settings. */
function oneLine(env: PackageSettings, setting: string, value: string): string {
  if (/[\r\n]/.test(value)) throw new OpsError(`${setting} of ${env.name} holds a line break`, 'a URL or token is one line: fix the value (it was not printed)');
  if (value.includes('\0')) throw new OpsError(`${setting} of ${env.name} holds a NUL character`, 'a URL or token is text without NUL characters: fix the value (it was not printed)');
  return value;
}

// npm's ${NAME} substitution in .npmrc keys and values (@npmcli/config, env-replace.js): a run of backslashes
// before "${" is halved, and an odd run leaves the "${...}" as written. npm 9 and 10 take any name without $ { };
// npm 11 names without "?", and ${NAME?} (empty when unset): a name with a "?" before its end is substituted
// by the former only (from the environment, where no such variable is: left as written).
const NPM_ENV_EXPR = /(?<!\\)(\\*)\$\{([^${}]+)\}/g;

/**
 * A key or value of an .npmrc line written so that npm reads back exactly `value`. npm's config reader (the `ini`
 * package's decode, then @npmcli/config) drops what follows an unescaped ; or # (a comment), trims white space,
 * turns true/false/null into other types, JSON-decodes a value in double quotes, and substitutes ${NAME} from the
 * environment. A value of plain characters is written as it is; any other in double quotes as a JSON string
 * (read back by JSON.parse, whatever its ; # " ' \ or spaces), each ${...} escaped by an odd run of backslashes
 * (npm leaves it as written). Refused (OpsError naming `setting`, never the value): a line break or NUL (oneLine),
 * white space at either end (npm trims it), a value npm reads as true, false, null or undefined, a backslash
 * before a ${...} that npm versions read differently.
 */
function npmrcText(env: PackageSettings, setting: string, value: string): string {
  oneLine(env, setting, value);
  if (value !== value.trim())
    throw new OpsError(`${setting} of ${env.name} starts or ends with white space, which npm drops when it reads .npmrc`, 'remove it from the value (it was not printed)');
  if (['true', 'false', 'null', 'undefined'].includes(value)) throw new OpsError(`${setting} of ${env.name} is a word npm reads as another type in .npmrc (true, false, null, undefined)`, 'use the real value (it was not printed)');
  if (!/[;#\\"'$]/.test(value)) return value;
  const escaped = value.replace(NPM_ENV_EXPR, (m, esc: string, name: string) => {
    if (/^[^?]+\??$/.test(name)) return `${esc}${esc}\\${m.slice(esc.length)}`; // every npm substitutes it
    // only npm 9 and 10 see it: they halve the backslashes before it, npm 11 keeps them
    if (esc) throw new OpsError(`${setting} of ${env.name} holds a backslash before a "\${...}" with a "?" inside, which npm versions read differently in .npmrc`, 'change the value (it was not printed)');
    return m;
  });
  return JSON.stringify(escaped);
}

/**
 * Seconds pip and uv wait for a package index's answer (one read, not the whole download) before they retry: their
 * defaults (pip 15 s, PIP_DEFAULT_TIMEOUT; uv 30 s, UV_HTTP_TIMEOUT) fail a deploy when a caching proxy in front of
 * the index (devpi, a pull-through cache) fetches a large package upstream before it answers.
 */
export const INDEX_READ_TIMEOUT = 120;

/**
 * The files for the environment's `packages` settings, secrets resolved. `secrets` is the decrypted tree (only
 * read when packagesNeedSecrets). Errors name the setting and the secret, never the value.
 * Formats: pip's configuration file (https://pip.pypa.io/en/stable/topics/configuration/), npm's .npmrc
 * (https://docs.npmjs.com/cli/configuring-npm/npmrc: per-registry `//host/path/:_authToken`).
 */
export function packageIndexFiles(env: PackageSettings, secrets: unknown): PackageIndexFiles {
  const p = env.config.packages;
  const out: PackageIndexFiles = {};
  if (p.pip_index_url !== undefined) {
    const url = oneLine(env, 'packages.pip_index_url', typeof p.pip_index_url === 'string' ? p.pip_index_url : secret(env, secrets, 'packages.pip_index_url', p.pip_index_url.secret));
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      // most often a password holding a character that ends the user info (pip reads it the same way)
      throw new OpsError(
        `packages.pip_index_url of ${env.name} is not a URL`,
        'expected https://host/simple/ or https://user:password@host/simple/, with characters of user and password percent-encoded as pip decodes them (# as %23, / as %2F, ? as %3F, : as %3A, @ as %40, % as %25); the value was not printed',
      );
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new OpsError(`packages.pip_index_url of ${env.name} must be an http(s) URL`);
    const lines = [`${PROVISION_MARK} (packages.pip_index_url): do not edit on the host.`, '[global]', `index-url = ${url}`];
    // pip ignores a plain-http index unless its host is trusted (a cache on a private network).
    if (parsed.protocol === 'http:') lines.push(`trusted-host = ${parsed.host}`);
    out.pipConf = lines.join('\n') + '\n';
    // uv's format (https://docs.astral.sh/uv/configuration/indexes/): the default index replaces PyPI. A TOML
    // basic string: the URL has no line break; quotes, backslashes and control characters escaped as JSON does,
    // and DEL too (JSON leaves it, TOML wants it escaped).
    out.uvToml = [`${PROVISION_MARK} (packages.pip_index_url): do not edit on the host.`, '[[index]]', `url = ${JSON.stringify(url).replace(/\x7f/g, '\\u007f')}`, 'default = true', ''].join('\n');
  }
  if (p.npm_registry !== undefined) {
    const registry = p.npm_registry.endsWith('/') ? p.npm_registry : `${p.npm_registry}/`;
    const lines = [`${PROVISION_MARK} (packages.npm_registry): do not edit on the host.`, `registry=${npmrcText(env, 'packages.npm_registry', registry)}`];
    if (p.npm_token) {
      const token = npmrcText(env, 'packages.npm_token', secret(env, secrets, 'packages.npm_token', p.npm_token.secret));
      // the key npm looks the token up by: the registry's "nerf dart", //host/path/ as its URL parser gives it
      const u = new URL(registry);
      const key = `//${u.host}${u.pathname}:_authToken`;
      if (key.includes('=') || u.search || u.hash)
        throw new OpsError(`packages.npm_registry of ${env.name} has "=", "?" or "#" in it, which the .npmrc key of its token cannot hold`, 'use the registry\'s URL without them');
      out.npmTokenKey = `${npmrcText(env, 'packages.npm_registry', key)}=`;
      lines.push(`${out.npmTokenKey}${token}`);
    }
    out.npmrc = lines.join('\n') + '\n';
  }
  return out;
}

/**
 * What `ops secrets set` and `ops secrets edit` check before they write: each `packages` setting given as
 * `{ secret: ... }` whose secret the change (`before` → `after`, decrypted data) sets, alters or removes is
 * rendered as provision renders it (packageIndexFiles), so a value every provision would refuse (not a non-empty
 * string, a line break, not an http(s) URL, binary, a token npm cannot read back: npmrcText) is refused when it is
 * stored, with provision's own message.
 * A secret the change leaves as it was is provision's to refuse. Throws OpsError.
 */
export function refusePackageSecrets(env: PackageSettings, before: unknown, after: unknown): void {
  const { pip_index_url: pip, npm_token: npm, ...rest } = env.config.packages;
  const changed = (ref: { secret: string } | undefined) => ref !== undefined && !isDeepStrictEqual(lookup(before, ref.secret, env.name), lookup(after, ref.secret, env.name));
  const packages = { ...rest, ...(typeof pip === 'object' && changed(pip) && { pip_index_url: pip }), ...(changed(npm) && { npm_token: npm }) };
  if (packages.pip_index_url === undefined && packages.npm_token === undefined) return;
  packageIndexFiles({ name: env.name, config: { ...env.config, packages } }, after);
}
