// environments/<env>/environment.yml: the loader (schema: environment-schema.ts), the checks across keys the
// schema cannot express, the resolved Environment operations take, and where the files are.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { isIP, isIPv6 } from 'node:net';
import { isAbsolute, join, resolve } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import { type Document, isAlias, isPair, isSeq, parseDocument, visit, type Node as YamlNode, type YAMLError } from 'yaml';
import yamlPackage from 'yaml/package.json' with { type: 'json' };
import { nodeEnvFileProblem, readersTable } from '../dotenv-readers.ts';
import { InputError, OpsError, fileError, userFileExists } from '../errors.ts';
import { homeDir, noHomeReason } from '../home.ts';
import { isValid, validate } from '../shell.ts';
import { hideSecrets } from '../secrets/parts.ts';
import { syntaxProblem, syntaxWhat } from '../secrets/tree-parse.ts';
import { decodeUtf8 } from '../secrets/utf8.ts';
import { refuseAliasBomb, refuseDeepNesting } from '../yaml-depth.ts';
import { PRESET_VARIABLES, publicPrefixOf, reservedEnvName } from './env-names.ts';
import { type EnvironmentConfig, appDirectoryProblem, environmentSchema, ownDirectoryProblem } from './environment-schema.ts';
import { parseHostKeys } from './hostkey.ts';
import { PLACEHOLDER, placeholderProblem } from './placeholders.ts';
import { renderDocs, renderJsonSchema } from './schema-object.ts';
import { type JsonSchema, type Problem, didYouMean } from './schema.ts';
import { projectDirProblem } from './project-dir.ts';

export interface Host {
  name: string;
  address: string;
  port: number;
  user: string;
  /** The pinned public key line ("ssh-ed25519 AAAA..."), or several (one per line). */
  hostKey: string;
  /** The file it was read from (host_key_file, absolute): where a changed key goes. */
  hostKeyFile?: string;
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
  /** As Host's. */
  hostKeyFile?: string;
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

export class ConfigError extends InputError {
  constructor(
    readonly file: string,
    readonly problems: Problem[],
    /** What to do when it is not the file that is wrong (a host not created yet); default: fix the file. */
    hint = 'fix the file; every key and its expected form is listed in the README under "Environment reference"',
  ) {
    const n = problems.length;
    // A problem quotes the value it is about: a URL's password or a private key pasted in the wrong place never shown.
    super(hideSecrets(`${file} has ${n} problem${n > 1 ? 's' : ''}:\n${problems.map((p) => `  - ${p.path || '(top level)'}: ${p.message}`).join('\n')}`), hint);
  }
}

/** <root>/environments: where the environment folders are. */
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

/**
 * The refusal of environment `name`, which `root` does not have (`missing`: what of it is not there, e.g.
 * "environments/qa/ does not exist"): with the one meant when a known name is a slip or two away (`stagin`: staging),
 * the known ones, and how a new one is made. One message for every command that takes an environment.
 */
export function noEnvironment(root: string, name: string, missing: string): InputError {
  const known = listEnvironments(root);
  const near = didYouMean(name, known);
  return new InputError(
    `no environment "${name}": ${missing}${near ? ` (did you mean ${near}?)` : ''}`,
    known.length
      ? `the environments are ${known.join(', ')}; a new one is made with \`ops env new <name>\` (its folder, key, .sops.yaml rule and secrets)`
      : `the project (${root}) has no environments yet: \`ops env new <name>\` makes one (its folder, key, .sops.yaml rule and secrets)`,
  );
}

/**
 * A path as a user writes it in a setting or a command-line option, made absolute: `~` and `~/...` are the home
 * directory (`home`: core/home.ts homeDir, $HOME else the account's), as a shell or ssh_config reads them (a shell
 * does not expand them after `--identity=`, nor does YAML); an absolute path is itself; anything else is relative to `base`.
 * @throws OpsError for `~user/...` (another account's home is not looked up: write the full path), and for `~` when
 * no home directory is known (HOME unset or empty under an account without one).
 */
export function userPath(base: string, p: string, home: string | undefined = homeDir()): string {
  if (p === '~' || p.startsWith('~/')) {
    if (!home) throw new InputError(`${p}: ${noHomeReason()}`, `write the full path, or set HOME to your home directory`);
    return join(home, p.slice(1));
  }
  if (p.startsWith('~')) throw new InputError(`${p}: another account's home directory (~name) is not looked up`, `write the full path (e.g. /home/${p.slice(1).split('/')[0]}${p.includes('/') ? p.slice(p.indexOf('/')) : ''})`);
  return isAbsolute(p) ? p : resolve(base, p);
}

const relativeTo = userPath;

/** One machine, whatever the environment calls it: the address (case-insensitive, no trailing dot; an IPv6 address in its canonical spelling) and SSH port. */
export function machineId(h: { address: string; port?: number }): string {
  // An IPv6 address has many spellings (leading zeros, `::`, case): its canonical one, as the WHATWG URL parser writes it.
  const address = isIPv6(h.address) ? new URL(`http://[${h.address}]/`).hostname : h.address.toLowerCase().replace(/\.$/, '');
  return `${address}:${h.port ?? 22}`;
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

/** What a reserved app name (RESERVED_APPS) would take on a host, or undefined for an app name of its own. */
export function reservedApp(app: string): string | undefined {
  return Object.hasOwn(RESERVED_APPS, app) ? RESERVED_APPS[app] : undefined;
}

/**
 * Accounts of Debian and of the services on these hosts, and whose they are: base-passwd's static users (uid
 * 0-99 on every Debian host, /usr/share/base-passwd/passwd.master), then those packages create (apt's _apt,
 * systemd's systemd-*, D-Bus's messagebus, OpenSSH's sshd, PostgreSQL's postgres, nginx.org's nginx...). As the
 * app user, provision would reuse one as it is (its files, its rights), and `ops env remove` would list
 * `userdel --remove` of it (postgres: /var/lib/postgresql, every cluster with it).
 */
const SYSTEM_ACCOUNTS: Record<string, string> = {
  ...Object.fromEntries(
    ['root', 'daemon', 'bin', 'sys', 'sync', 'games', 'man', 'lp', 'mail', 'news', 'uucp', 'proxy', 'backup', 'list', 'irc', 'gnats', 'nobody'].map((u) => [u, "one of Debian's base accounts (base-passwd)"]),
  ),
  'www-data': "the web server's account (base-passwd; nginx's workers run as it)",
  _apt: "apt's account",
  messagebus: "D-Bus's account",
  sshd: "OpenSSH's privilege separation account",
  postgres: "PostgreSQL's account (its home /var/lib/postgresql holds every cluster)",
  nginx: "nginx's account (nginx.org's packages)",
  supervisor: "supervisor's name (its service runs as root; keep the name for it)",
  polkitd: "polkit's account",
  tss: "the TPM software stack's account",
  uuidd: "uuidd's account",
  _chrony: "chrony's account",
  ntpsec: "ntpsec's account",
  dnsmasq: "dnsmasq's account",
  statd: "NFS statd's account",
  _rpc: "rpcbind's account",
  tcpdump: "tcpdump's account",
  avahi: "avahi's account",
  postfix: "postfix's account",
};

/** Whose `user` is when it is an account of Debian or of a service (SYSTEM_ACCOUNTS, systemd-*), or undefined. */
export function systemAccount(user: string): string | undefined {
  if (Object.hasOwn(SYSTEM_ACCOUNTS, user)) return SYSTEM_ACCOUNTS[user];
  if (user.startsWith('systemd-')) return "one of systemd's accounts";
  return undefined;
}

/**
 * Why a command or environment value that ops runs for one release (a program's command or env, release.build,
 * release.migrate, a value of the release's `.env`, which build, migrate and hooks get exported) must not name
 * `<base>/current` or `<base>/releases/...` by path, or undefined. The new release's programs start, are
 * health-checked and build/migrate BEFORE `current` flips to them (the blue/green switch), so `<base>/current` there
 * is the previous release: a deploy would go live running, building or migrating the old code (a
 * `PYTHONPATH=<base>/current/src` imports the live release's modules in the new one's migrate), and `releases/<id>`
 * pins one release for good. `where`: `program` takes {release} (programs' command and env, core/steps/switch.ts
 * expand); a `command` runs in the release directory (build, migrate); a `dotenv` value is read by commands and
 * programs running there.
 */
export function liveReleasePathProblem(text: string, base: string, where: 'program' | 'command' | 'dotenv'): string | undefined {
  const esc = base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // The path as a whole word: not a longer name (`/srv/app/currently`), in quotes, after `cd `, `=` or `:` alike.
  const m = new RegExp(`${esc}/+(current(?![A-Za-z0-9._-])|releases/+[^\\s/'"]+)`).exec(text);
  if (!m) return undefined;
  const what = m[1] === 'current' ? `${base}/current is the release live before this deploy (it flips to the new one only after its programs pass their health checks)` : `${base}/releases/... names one release by path, whichever is deployed`;
  const fix = { program: "write {release} (this release's directory) instead", command: 'write a path relative to the release (the command runs in it)', dotenv: "write a path relative to the release (its commands and programs run in it; e.g. PYTHONPATH=src)" }[where];
  return `names ${m[0]}: ${what}, so a deploy would run the wrong release's code; ${fix}`;
}

/**
 * Why a program's command or env value `text` (at `path`, programs.<name>.command or .env.<NAME>) must not hold a
 * program's port as a number, or undefined: that is the blue slot's port only. The green slot runs each program on
 * port + switch.port_offset, so a program told `--port 3579` there binds the live slot's port (it fails to start,
 * after the build) and one told `http://127.0.0.1:3579` of another program calls the live release's, not its own
 * slot's: {port} and {port:<program>} are expanded for the slot being started (core/steps/switch.ts expand). Only
 * where a number is a port: after a ":" (host:port, a URL), after an option or variable named for a port
 * (`--port 3579`, `PORT=3579`), or as the whole value of a variable named for one (`APP_PORT: "3579"`): a count or
 * a timeout equal to a port (`--workers 3000`) is not one. A value of the `.env` (`path` env.<NAME>), which takes no
 * placeholders, is asked about only when no program is given that variable itself (see its caller).
 */
function literalPortProblem(text: string, path: string, config: EnvironmentConfig): string | undefined {
  const own = path.split('.')[1]!;
  const bare = text.replace(PLACEHOLDER, '');
  const variable = /^(?:programs\.[^.]+\.)?env\.(.*)$/.exec(path)?.[1];
  for (const [name, p] of Object.entries(config.programs)) {
    const asPort = new RegExp(`(?::|port[\\w-]*['"]?(?:=|\\s+)['"]?)${p.port}(?!\\d)`, 'i').test(bare) || (variable !== undefined && /port/i.test(variable) && bare.trim() === String(p.port));
    if (!asPort) continue;
    const placeholder = name === own ? '{port}' : `{port:${name}}`;
    // A value of the .env (no placeholders there) that no program is given a value of its own for (programs.<p>.env,
    // which wins over the .env for its readers: envShadowProblems): every program of the green slot reads the blue one.
    if (path.startsWith('env.'))
      return `names port ${p.port}, program ${name}'s port in the blue slot only: the green slot runs it on ${p.port + config.switch.port_offset}, so a program of the green slot reading it would reach the live release's ${name} (after the switch, the previous release, kept warm there), not its own slot's (or, ${name} itself, take the live slot's port); the .env takes no placeholders: give it to the programs that read it in programs.<program>.env as ${variable}: "${text.replace(new RegExp(`(?<!\\d)${p.port}(?!\\d)`), `{port:${name}}`)}" (their own value wins over the .env's)`;
    return `names port ${p.port}, ${name === own ? "this program's" : `program ${name}'s`} port in the blue slot only: the green slot runs it on ${p.port + config.switch.port_offset}, so ${name === own ? "there it would take the live slot's port and fail to start" : `there it would reach the live release's ${name}, not its own slot's`}; write ${placeholder} (expanded for each slot)`;
  }
  return undefined;
}

/**
 * Names of `env` that differ only in case, where python-dotenv reads either (its `only` prefix): pydantic-settings,
 * how apps read the .env with python-dotenv, matches names case-insensitively by default (it lowercases every name
 * of the file and of the environment), so APP_KEY and app_key are one setting to it, holding whichever comes last:
 * one variable's value would reach the app as the other's.
 */
function envCaseProblems(config: EnvironmentConfig, problems: Problem[]): void {
  const prefixes = config.dotenv.readers.flatMap((r) => (r === 'python-dotenv' ? [''] : typeof r === 'object' && r.reader === 'python-dotenv' ? [r.only] : []));
  if (!prefixes.length) return;
  const byLower = new Map<string, string>();
  for (const name of Object.keys(config.env)) {
    const other = byLower.get(name.toLowerCase());
    if (other === undefined) byLower.set(name.toLowerCase(), name);
    else if ([name, other].some((n) => prefixes.some((p) => n.startsWith(p))))
      problems.push({ path: `env.${name}`, message: `differs from env.${other} only in case: pydantic-settings (how apps read python-dotenv's .env) matches names case-insensitively by default, so both would be one setting holding the value of whichever comes last; rename one` });
  }
}

/**
 * Names of `env` that a variable the reading process already has shadows (PRESET_VARIABLES, and each program's
 * programs.<p>.env): python-dotenv's readers (pydantic-settings, load_dotenv) and Node's (dotenv, --env-file, vite's
 * loadEnv) let the process environment win over the .env, and pydantic-settings matches names ignoring case, so
 * the app would read the other variable's value, not this one. Refused where a reader of that kind reads the name
 * (its `only` prefix): a name differing only in case where python-dotenv does; the same name as one ops, supervisor
 * or the host sets in the programs' environment where any reader but shell does (bash's `. .env` assigns over it).
 * The same name as a program's own env is that program's value on purpose (APP_PORT: "{port}" over the .env's, for
 * each slot): refused only where shell reads it, which would assign the .env's over the program's, unless the
 * same text without a placeholder. Names bash or ops reserve are refused by the schema already (reservedEnvName).
 */
function envShadowProblems(config: EnvironmentConfig, problems: Problem[]): void {
  const readers = config.dotenv.readers.map((r) => (typeof r === 'string' ? { reader: r, only: '' } : r));
  const readBy = (name: string, which: (r: string) => boolean) => readers.some((r) => which(r.reader) && name.startsWith(r.only));
  const preset = new Map<string, { name: string; by: string; app: boolean; host?: boolean; value?: string }[]>();
  const add = (name: string, v: { by: string; app: boolean; host?: boolean; value?: string }) => preset.set(name.toLowerCase(), [...(preset.get(name.toLowerCase()) ?? []), { name, ...v }]);
  for (const [name, v] of PRESET_VARIABLES) add(name, v);
  for (const [p, prog] of Object.entries(config.programs)) for (const [k, v] of Object.entries(prog.env)) add(k, { by: `programs.${p}.env`, app: true, value: v });
  for (const [name, spec] of Object.entries(config.env)) {
    if (reservedEnvName(name)) continue;
    for (const other of preset.get(name.toLowerCase()) ?? []) {
      const by = other.value === undefined ? `${other.name}, which ${other.by} sets` : `${other.by}.${other.name}`;
      if (other.name !== name && readBy(name, (r) => r === 'python-dotenv'))
        problems.push({ path: `env.${name}`, message: `differs only in case from ${by}: pydantic-settings (how apps read python-dotenv's .env) matches names ignoring case and lets the process environment win, so the app would read ${other.name}'s value, not this one; rename env.${name}` });
      else if (other.name === name && other.value === undefined && other.app && readBy(name, (r) => r !== 'shell'))
        problems.push({
          path: `env.${name}`,
          message: `${by} too: python-dotenv's and Node's .env readers let the process environment win, so the app would never see this value; rename env.${name}${other.host ? ` (to set ${name} for the programs themselves, give it in programs.<program>.env)` : ''}`,
        });
      // the same text, without a placeholder (expanded in the program's env only), is one value: nothing is lost
      else if (other.name === name && other.value !== undefined && !(other.value === spec && !spec.includes('{')) && readBy(name, (r) => r === 'shell'))
        problems.push({
          path: `env.${name}`,
          message: `${by} gives that program its own value of this variable, and the shell reader (\`. .env\`) assigns the .env's over it, so that program would run with ${typeof spec === 'string' ? 'the .env\'s value' : 'the .env\'s secret'}, not its own; rename env.${name}, or give both the same text`,
        });
    }
  }
}

/**
 * Secrets under a name that front-end builds inline into the client bundle (publicPrefixOf: VITE_*, NEXT_PUBLIC_*,
 * PUBLIC_*, REACT_APP_*..., and a vite reader's `only` prefix): the build gets the release's values (environ) and
 * writes such a value into the JavaScript it serves to every visitor, so a secret there is published. Refused
 * unless marked `public: true` (a publishable key, meant for the browser); never a value in the message.
 */
function envPublicProblems(config: EnvironmentConfig, problems: Problem[]): void {
  const vite = config.dotenv.readers.flatMap((r) => (typeof r === 'object' && r.reader === 'vite' ? [r.only] : []));
  for (const [name, spec] of Object.entries(config.env)) {
    if (typeof spec === 'string' || spec.public) continue;
    const found = publicPrefixOf(name, vite);
    if (found)
      problems.push({
        path: `env.${name}`,
        message: `takes the secret "${spec.secret}", but ${found.tool} inline${found.tool.includes(',') ? '' : 's'} variables named ${found.prefix}* into the JavaScript the build serves to every visitor, so its value would be public: rename the variable without that prefix (the server reads it from the .env), or, for a value meant for the browser (a publishable key), mark it { secret: ${spec.secret}, public: true }`,
      });
  }
}

/** Rules across keys that neither the schema language nor JSON Schema can express (so editors do not check them). */
/** A path nginx reads as it is written (no quoting, no variable). */
export const NGINX_PATH = /^[A-Za-z0-9._/-]+$/;

/** The lowest port a user other than root may listen on (Linux's net.ipv4.ip_unprivileged_port_start, Debian's default). */
const UNPRIVILEGED_PORT = 1024;

function crossCheck(config: EnvironmentConfig, problems: Problem[], routesGiven: boolean): void {
  const names = new Map<string, string>(config.domain ? [[config.domain, 'domain']] : []);
  config.aliases.forEach((a, i) => {
    if (!config.domain) problems.push({ path: `aliases[${i}]`, message: `${a}: an alias redirects to the site's domain, and there is none: set domain (the site's one name) first` });
    const before = names.get(a);
    if (before) problems.push({ path: `aliases[${i}]`, message: `${a} is already ${before}: each name once (the domain is the site's own name, not an alias)` });
    names.set(a, `aliases[${i}]`);
  });
  const seen = new Set<string>();
  const machines = new Map<string, string>();
  config.hosts.forEach((h, i) => {
    if (seen.has(h.name)) problems.push({ path: `hosts[${i}].name`, message: `duplicate host name "${h.name}"` });
    seen.add(h.name);
    const other = machines.get(machineId(h));
    if (other) problems.push({ path: `hosts[${i}].address`, message: `${h.address} port ${h.port} is also host ${other}: one machine listed twice would run the app twice on the same ports` });
    machines.set(machineId(h), h.name);
  });
  // nginx's site names base_dir when it serves release.asset_dirs (nginx-config.ts assetLocations): nothing it would misread.
  if (config.base_dir && !NGINX_PATH.test(config.base_dir) && assetDirs(config).some((a) => a.url))
    problems.push({ path: 'base_dir', message: `${JSON.stringify(config.base_dir)} cannot be written into the nginx site that serves release.asset_dirs' urls: only letters, digits, ".", "_", "-" and "/" (or give release.asset_dirs without url)` });
  const programs = Object.keys(config.programs);
  if (!programs.length) problems.push({ path: 'programs', message: 'expected at least one program (a long-running process of a release: its command and port)' });
  else if (!routesGiven && Object.values(config.routes).some((program) => !config.programs[program])) {
    // routes left out: the default's programs (client, server) named, not keys the file never wrote
    const shown = Object.entries(config.routes).map(([prefix, program]) => `${prefix}: ${program}`).join(', ');
    problems.push({ path: 'routes', message: `missing, and the default (${shown}) names programs this file does not have (programs: ${programs.join(', ')}): give the URL prefixes nginx sends to yours, e.g. routes: { "/": ${programs[0]} }` });
  } else
    for (const [prefix, program] of Object.entries(config.routes)) {
      if (!config.programs[program]) problems.push({ path: `routes.${prefix}`, message: `no program named "${program}"${didYouMean(program, programs) ? ` (did you mean ${didYouMean(program, programs)}?)` : ''} (programs: ${programs.join(', ')})` });
    }
  // Ports the host's own services listen on, then each program's two slots.
  const ports = new Map<number, string>([
    [80, 'nginx (http)'],
    [443, 'nginx (https)'],
  ]);
  for (const h of config.hosts) if (!ports.has(h.port)) ports.set(h.port, `sshd (hosts[].port of ${h.name})`);
  for (const [pname, p] of Object.entries(config.programs)) {
    const green = p.port + config.switch.port_offset;
    // The program runs as the app user (never root, refused below): Linux lets only root listen below
    // net.ipv4.ip_unprivileged_port_start (1024 on Debian), so it would fail at its start (EACCES), after the build.
    if (p.port < UNPRIVILEGED_PORT)
      problems.push({
        path: `programs.${pname}.port`,
        message: `${p.port} is a privileged port (below ${UNPRIVILEGED_PORT}), where Linux lets only root listen: the program runs as the app user and would fail at its start; choose one from ${UNPRIVILEGED_PORT} (nginx listens on 80 and 443 and passes the requests on)`,
      });
    if (green > 65535) {
      problems.push({
        path: `programs.${pname}.port`,
        message: `${p.port} + switch.port_offset ${config.switch.port_offset} = ${green}, the green slot's port, is above 65535: expected a port from ${UNPRIVILEGED_PORT} to ${65535 - config.switch.port_offset} (or a smaller switch.port_offset)`,
      });
    }
    // Each taker once: a program given another's port takes both its slots' ports (one mistake, one problem).
    const taken = new Map<string, number[]>();
    for (const port of green > 65535 ? [p.port] : [p.port, green]) {
      const other = ports.get(port);
      if (other) taken.set(other, [...(taken.get(other) ?? []), port]);
      ports.set(port, pname);
    }
    for (const [other, list] of taken)
      problems.push({ path: `programs.${pname}.port`, message: `${list.length > 1 ? `ports ${list.join(' and ')} are` : `port ${list[0]} is`} also used by ${other} (each program needs port and port + switch.port_offset free)` });
  }
  // A command or value that names the live release by path runs the live release's code, not its own.
  const base = (config.base_dir ?? `/srv/${config.app}`).replace(/\/+$/, '');
  const named: [string, string][] = [
    ...Object.entries(config.programs).flatMap(([pname, p]): [string, string][] => [[`programs.${pname}.command`, p.command], ...Object.entries(p.env).map(([k, v]): [string, string] => [`programs.${pname}.env.${k}`, v])]),
    ['release.build', config.release.build],
    ['release.migrate', config.release.migrate],
    // The .env's plain values: build, migrate and hooks get them exported (a secret's value is not read here).
    ...Object.entries(config.env).flatMap(([k, v]): [string, string][] => (typeof v === 'string' ? [[`env.${k}`, v]] : [])),
  ];
  // Placeholders, expanded in programs' command and env only: an unknown one said now, not at the deploy's plan
  for (const [path, text] of named.filter(([p]) => p.startsWith('programs.'))) {
    const why = placeholderProblem(text, programs) ?? literalPortProblem(text, path, config);
    if (why) problems.push({ path, message: why });
  }
  // The .env's plain values that name a program's port, unless each program is given its own (its slot's) value.
  const given = new Set(Object.values(config.programs).flatMap((p) => Object.keys(p.env)));
  for (const [path, text] of named.filter(([p]) => p.startsWith('env.') && !given.has(p.slice('env.'.length)))) {
    const why = literalPortProblem(text, path, config);
    if (why) problems.push({ path, message: why });
  }
  for (const [path, text] of named) {
    const why = liveReleasePathProblem(text, base, path.startsWith('programs.') ? 'program' : path.startsWith('env.') ? 'dotenv' : 'command');
    if (why) problems.push({ path, message: why });
  }
  const reserved = reservedApp(config.app);
  if (reserved) problems.push({ path: 'app', message: `"${config.app}" would take ${reserved}, which belongs to the system: pick another app name` });
  const appUser = config.app_user ?? config.app;
  // The schema checked the path alone (ownDirectoryProblem); what depends on the app and its user is checked here.
  if (config.base_dir && !ownDirectoryProblem(config.base_dir)) {
    const why = appDirectoryProblem(config.base_dir, config.app, appUser);
    if (why) problems.push({ path: 'base_dir', message: why });
  }
  const login = config.hosts.find((h) => h.user === appUser);
  const system = systemAccount(appUser);
  if (appUser === 'root' || login)
    problems.push({
      path: config.app_user ? 'app_user' : 'app',
      message: `the app would run as "${appUser}", ${login ? `the SSH login of host ${login.name} (with its sudo rights)` : 'root'}: set app_user to a user of its own`,
    });
  else if (system)
    problems.push({
      path: config.app_user ? 'app_user' : 'app',
      message: `the app would run as "${appUser}"${config.app_user ? '' : ' (app_user defaults to the app name)'}, ${system}: provision would take it over and ops env remove would delete it; set app_user to a user of its own`,
    });
  envCaseProblems(config, problems);
  envShadowProblems(config, problems);
  envPublicProblems(config, problems);
  const { node } = config.runtimes;
  if (node.npm && node.strategy !== 'npm') problems.push({ path: 'runtimes.node.npm', message: 'only with strategy npm (the other strategies bring their own npm)' });
  if (node.strategy === 'npm' && !config.packages.npm_registry)
    problems.push({ path: 'runtimes.node.strategy', message: 'strategy npm downloads Node.js from packages.npm_registry: set it (e.g. https://registry.npmjs.org/)' });
  if (config.packages.npm_token && !config.packages.npm_registry) problems.push({ path: 'packages.npm_token', message: 'needs packages.npm_registry (the registry the token is for)' });
  // the .env is written for node-env-file as Node 20.13+ reads it: an older pinned Node would lose or crash on values
  const nodeEnvFile = config.dotenv.readers.some((r) => (typeof r === 'string' ? r : r.reader) === 'node-env-file') ? nodeEnvFileProblem(node.version) : undefined;
  if (nodeEnvFile)
    problems.push({
      path: 'dotenv.readers',
      message: `node-env-file is the parser of the Node.js runtimes.node pins, and ${nodeEnvFile}: pin Node.js 20.13 or later (not 21, nor 22.0), or drop node-env-file if the app does not read the .env with Node's own parser`,
    });
}

/** Every key path of the schema ("switch.port_offset", "hosts[].port", "programs.<name>.health"), by its last key. */
let keyPaths: Map<string, string[]> | undefined;

/**
 * An unknown key that is a setting at another level (`port_offset` at the top, `drain` under release: a block
 * indented one level off, or a key copied without its parent) said with where it goes, in place of the list of the
 * keys of its own level. A misspelt key keeps its "did you mean".
 */
function misplacedKeys(problems: Problem[]): void {
  keyPaths ??= (environmentSchema.rows?.('') ?? []).reduce((m, r) => m.set(r.path.split('.').pop()!, [...(m.get(r.path.split('.').pop()!) ?? []), r.path]), new Map<string, string[]>());
  for (const p of problems) {
    if (!p.message.startsWith('unknown key; known keys here')) continue;
    const key = p.path.split('.').pop()!;
    const parent = p.path.slice(0, -key.length - 1).replace(/\[\d+\]/g, '[]');
    const elsewhere = (keyPaths.get(key) ?? []).filter((path) => path.slice(0, -key.length - 1) !== parent);
    const list = elsewhere.length > 1 ? `${elsewhere.slice(0, -1).join(', ')} or ${elsewhere.at(-1)}` : elsewhere[0];
    if (list) p.message = `unknown key here: the setting is ${list}; move it there (indented under ${elsewhere.length > 1 ? 'its parent' : elsewhere[0]!.slice(0, -key.length - 1)})`;
  }
}

/**
 * The names the site serves (its server_name and its aliases' server blocks): the domain, then the aliases; [] without
 * a domain (the site answers any name then; aliases need a domain). The one list of "the site's names": what another
 * environment on the host or another nginx server block must not claim, what certbot validates at each renewal, what the site's DNS records and certificate name.
 */
export function siteNames(env: { config: { domain?: string | undefined; aliases: readonly string[] } }): string[] {
  return env.config.domain ? [env.config.domain, ...env.config.aliases] : [];
}

/** Validate a parsed environment document; throws ConfigError listing every problem. */
export function parseEnvironment(doc: unknown, file: string): EnvironmentConfig {
  const problems: Problem[] = [];
  const config = environmentSchema.check(doc, '', problems);
  misplacedKeys(problems);
  if (config) crossCheck(config, problems, doc !== null && typeof doc === 'object' && Object.hasOwn(doc, 'routes'));
  if (problems.length || !config) throw new ConfigError(file, problems);
  return config;
}

let parsedDir: string | undefined;
/** Entries kept in the parsed-YAML cache; the least recently written go first. */
const PARSED_KEPT = 64;

/**
 * Keep what readYamlFile parses in `dir` between runs (the CLI's cache, given by scripts/ops-bin.js; undefined:
 * none, as in the actions). Why: the yaml library runs interpreted in a process that just started (5-15 ms a
 * file) and a deploy reads every environment file of the project (apps sharing hosts), before its connection can
 * make progress. An entry is named by the sha256 of everything the parse depends on: the file's text, the yaml
 * library's version (an upgrade may parse the same text otherwise), the checks made before keeping it (READ_CHECKS) and Node's (v8.serialize's format), so an
 * edited file is parsed again; it holds the sha256 of its payload (32 bytes), then the parsed value as
 * v8.serialize writes it (aliases' shared objects, NaN and Infinity kept, as JSON would not), never an error. An
 * entry whose payload does not match its sha256 (a damaged disk, a hand edit: v8 data with a changed byte often
 * still reads, as another value) is not believed: the file is parsed again. A cache that cannot be read or
 * written is ignored.
 */
export function cacheParsedYaml(dir: string | undefined): void {
  parsedDir = dir;
}

/**
 * The version of what readYamlFile refuses before it keeps a parse (tags, numbers written in a non-decimal form...):
 * part of an entry's name, so a file parsed and kept before a check was added is checked again. Raise it with them.
 */
const READ_CHECKS = 2;

/** Bytes of an entry's digest, before its payload. */
const DIGEST = 32;

function parsedEntry(text: string): string | undefined {
  return parsedDir && join(parsedDir, createHash('sha256').update(`${process.version}\0yaml ${yamlPackage.version} ${JSON.stringify(ENVIRONMENT_YAML)} checks ${READ_CHECKS}\0${text}`).digest('hex'));
}

/** The value an entry holds, or undefined when it is missing or damaged. */
function readParsed(entry: string): { value: unknown } | undefined {
  try {
    const data = readFileSync(entry);
    const payload = data.subarray(DIGEST);
    if (data.length <= DIGEST || !createHash('sha256').update(payload).digest().equals(data.subarray(0, DIGEST))) return undefined;
    return { value: deserialize(payload) };
  } catch {
    return undefined;
  }
}

function keepParsed(entry: string, value: unknown): void {
  const tmp = `${entry}.${process.pid}.tmp`;
  try {
    mkdirSync(parsedDir!, { recursive: true });
    const payload = serialize(value);
    writeFileSync(tmp, Buffer.concat([createHash('sha256').update(payload).digest(), payload]));
    renameSync(tmp, entry);
    const names = readdirSync(parsedDir!).filter((n) => /^[0-9a-f]{64}$/.test(n));
    if (names.length <= PARSED_KEPT) return;
    const byAge = names.map((n) => ({ n, t: statSync(join(parsedDir!, n)).mtimeMs })).sort((a, b) => a.t - b.t);
    for (const { n } of byAge.slice(0, names.length - PARSED_KEPT)) unlinkSync(join(parsedDir!, n));
  } catch {
    /* a read-only, full or shared cache: parsed again next time (a half-written file of ours is not left behind) */
    try {
      rmSync(tmp, { force: true });
    } catch {
      /* nothing of ours there */
    }
  }
}

/**
 * How every environment file is parsed (readYamlFile; the loose read of secrets.age_key_file, core/secrets/env.ts):
 * YAML 1.2 with YAML 1.1's merge keys, as hand-written configs share a block through an anchor (`<<: *common`, or a
 * list `<<: [*a, *b]`, the first one's keys winning); a key written in the mapping wins over a merged one, before or
 * after the `<<`.
 */
export const ENVIRONMENT_YAML = { merge: true } as const;

/**
 * An alias (`*common`) naming no anchor set before it: refused by its name and line, with the anchors there are. The
 * yaml library says it only once it builds the value, and under a merge key (`<<: *comon`) as "Merge sources must be
 * maps", which sent people to the merge syntax instead of the misspelt or misplaced anchor.
 */
function refuseUnresolvedAliases(doc: Document, text: string, label: string): void {
  const anchors: string[] = [];
  let missing: { name: string; line: number } | undefined;
  visit(doc, {
    Node(_, node) {
      if (missing) return visit.BREAK;
      if ('anchor' in node && typeof node.anchor === 'string' && node.anchor) anchors.push(node.anchor);
      if (isAlias(node) && !anchors.includes(node.source)) missing = { name: node.source, line: text.slice(0, node.range?.[0] ?? 0).split('\n').length };
      return undefined;
    },
  });
  if (!missing) return;
  throw new InputError(
    hideSecrets(`${label}: the alias *${missing.name} (line ${missing.line}) names no anchor set before it`),
    anchors.length ? `anchors set before it: ${[...new Set(anchors)].map((a) => `&${a}`).join(', ')}; an anchor (x-common: &common {...}) comes before the aliases that use it` : 'set the anchor first, above its aliases (x-common: &common {...}, then <<: *common)',
  );
}

/**
 * A YAML file's content (any shape), `label` naming it in errors; through the parsed-YAML cache when one is set
 * (cacheParsedYaml).
 * @throws OpsError when it cannot be read, is not UTF-8 (the byte offset and line) or cannot be parsed (with the line and column).
 */
export function readYamlFile(file: string, label = file): unknown {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    const why = fileError(e, label, 'read', 'a YAML file');
    throw new OpsError(why.message, why.hint);
  }
  // strictly: a lenient read made a byte that is not UTF-8 (a Latin-1 é in an env value) a U+FFFD in the .env
  const text = decodeUtf8(bytes, label, 'convert it to UTF-8 (e.g. `iconv -f latin1 -t utf-8`)');
  refuseDeepNesting(text, label);
  const entry = parsedEntry(text);
  const kept = entry ? readParsed(entry) : undefined;
  if (kept) return kept.value;
  let value: unknown;
  try {
    const doc = parseDocument(text, { ...ENVIRONMENT_YAML, prettyErrors: true });
    if (doc.errors.length) throw new InputError(yamlErrorMessage(label, text, doc.errors[0]!), yamlErrorHint(doc.errors[0]!, undefined, text));
    const warnings = yamlWarnings(doc, text);
    const numbers = numberFormProblems(doc, text);
    if (warnings.length || numbers.length)
      throw new InputError(
        hideSecrets(`${label} is not read as written:\n${[...warnings, ...numbers].map((w) => `  - ${w}`).join('\n')}`),
        [
          ...(warnings.length ? ['remove the tag (a value needs none: quote it to make it a string), or write the value in the form its key expects'] : []),
          ...(numbers.length ? ['write a number in plain decimal digits, without a leading 0 (22, 800), or in quotes when it is text ("0800")'] : []),
        ].join('; '),
      );
    refuseUnresolvedAliases(doc, text, label);
    refuseAliasBomb(doc, label);
    value = doc.toJS({ maxAliasCount: -1 }); // counted above, by what the copies make (the library counts alias uses)
  } catch (e) {
    if (e instanceof OpsError) throw e;
    // Whatever else the yaml library throws reading a user's file is about that file, not a bug of ours.
    const message = String((e as Error).message);
    throw new InputError(
      hideSecrets(`${label} cannot be read as YAML: ${(e as Error).message ?? e}`),
      /^Merge sources/.test(message) ? 'a merge key (<<) takes a mapping, an alias of one (<<: *common) or a list of them (<<: [*a, *b])' : 'fix the file (see the message above)',
    );
  }
  if (entry) keepParsed(entry, value);
  return value;
}

/**
 * A YAML parse error as said to the user, on one line: `file:line:column: not valid YAML: what` (the form editors and
 * terminals jump to), what by its kind (syntaxProblem, as for a secrets file), without the excerpt of the file the
 * library adds (a caret under a tab points at nothing visible, and the line quoted may hold a secret). The hint
 * (yamlErrorHint) says the fix.
 */
export function yamlErrorMessage(label: string, text: string, error: YAMLError): string {
  // in words that quote nothing of the file (the library's quote what they met: part of a secret, maybe)
  const start = indicatorStart(text, error);
  const what = start
    ? `the value of ${start.key} starts with ${start.char}, which YAML reads as ${INDICATORS[start.char]}, not as the start of a text${start.key === 'host_key' ? ' (as a known_hosts line is: ssh-keyscan -p\'s "[host]:2222 ssh-ed25519 ...", a hashed "|1|...")' : ''}`
    : error.code === 'DUPLICATE_KEY' && duplicateKey(text, error)
      ? `${syntaxProblem(error.code)}: ${duplicateKey(text, error)}`
      : syntaxWhat(text, error);
  const at = error.linePos?.[0];
  return at ? `${label}:${at.line}:${at.col}: not valid YAML: ${what}` : `${label}: not valid YAML: ${what}`;
}

/** The key a DUPLICATE_KEY error is at (`ref` of `ref: v1`), with the line it was first given on when found; undefined when the line is not `key: ...`. */
function duplicateKey(text: string, error: YAMLError): string | undefined {
  const at = error.linePos?.[0];
  const lines = text.split(/\r?\n/);
  const m = at && /^(\s*(?:-\s+)?)([A-Za-z0-9_.\/-]+):(\s|$)/.exec(lines[at.line - 1] ?? '');
  if (!at || !m) return undefined;
  // the first one: the nearest line above at the same indentation with that key (a list item's dash as indentation)
  const indent = m[1]!.length;
  for (let i = at.line - 2; i >= 0; i--) {
    const o = /^(\s*(?:-\s+)?)([A-Za-z0-9_.\/-]+):(\s|$)/.exec(lines[i]!);
    if (o && o[1]!.length === indent && o[2] === m[2]) return `${m[2]} (first given at line ${i + 1})`;
  }
  return m[2];
}

/** What YAML reads a plain value starting with each of these as (YAML 1.2, 5.3 "Indicator Characters"). */
const INDICATORS: Record<string, string> = {
  '[': 'a list ([...])',
  '{': 'a mapping ({...})',
  '|': 'a block of text on the lines below (|)',
  '>': 'a block of text on the lines below (>)',
  '@': 'a character it reserves',
  '`': 'a character it reserves',
};

/**
 * A syntax error caused by a value pasted without quotes that starts with a character YAML reads as syntax (`host_key:
 * [10.0.0.5]:2222 ssh-ed25519 AAAA...`, `|1|salt|hash ...`, `@...`): the key and that character, when the error is on
 * the line of `key: <value>` at or after where the value starts; undefined otherwise.
 */
function indicatorStart(text: string, error: YAMLError): { key: string; char: string } | undefined {
  const at = error.linePos?.[0];
  if (!at) return undefined;
  const line = text.split(/\r?\n/)[at.line - 1] ?? '';
  const m = /^(\s*(?:-\s+)?)([A-Za-z0-9_.\/-]+):[ \t]+(\S)/.exec(line);
  if (!m || !(m[3]! in INDICATORS)) return undefined;
  const valueColumn = m[0].length; // 1-based column of the value's first character
  return at.col >= valueColumn ? { key: m[2]!, char: m[3]! } : undefined;
}

/**
 * What to do about a YAML syntax error, by its kind (the yaml library's code); the message says where. One for every
 * YAML file a person writes (environment.yml, .sops.yaml); `oneDocument`: the hint for a second document in it.
 */
export function yamlErrorHint(
  error: YAMLError,
  oneDocument = 'an environment file is one YAML document: remove the `---` line and what is another document after it (each environment has its own folder)',
  text?: string,
): string {
  const start = text === undefined ? undefined : indicatorStart(text, error);
  if (start) return `put the whole value in single quotes: ${start.key}: '...' (a ' inside it written twice, '')`;
  switch (error.code) {
    case 'MULTIPLE_DOCS':
      return oneDocument;
    case 'TAB_AS_INDENT':
      return 'replace the tab at the start of the line with spaces (set your editor to insert spaces for Tab)';
    case 'DUPLICATE_KEY':
      return 'keep one of the two: YAML takes no key twice in one mapping (merge their contents under one)';
    default:
      return 'fix the file at that line (a quote, bracket or indentation left open often shows on the next line)';
  }
}

/** The key path of `node` in its document ("env.X", "hosts[0].port"), from its ancestors as `visit` gives them. */
function keyPath(ancestors: readonly unknown[], node: unknown): string {
  const chain = [...ancestors, node];
  let path = '';
  chain.forEach((a, i) => {
    const child = chain[i + 1];
    if (isPair(a)) path += `${path ? '.' : ''}${String((a.key as { value?: unknown } | null)?.value ?? a.key)}`;
    else if (isSeq(a) && child) path += `[${a.items.indexOf(child as never)}]`;
  });
  return path;
}

/**
 * Numbers written in a form that YAML 1.1 and YAML 1.2 read differently, each with its key path and line: a leading 0
 * (`port: 022` is 22 in YAML 1.2, which ops reads, and 18, octal, in YAML 1.1: PyYAML, Ansible, older editors; `0800`
 * is 800 here, text there), or YAML 1.2's `0o` octal (`0o22` is 18 here, text in YAML 1.1). None is what a person
 * means by a port, a count or seconds, and a value meant as text (a ZIP code, an id) loses its zeros: refused, never
 * read silently as a number the file does not show. Hex (`0x1F`) is read alike by both, and left alone.
 */
function numberFormProblems(doc: Document, text: string): string[] {
  const found: string[] = [];
  visit(doc, {
    Scalar(_key, node, ancestors) {
      if (typeof node.value !== 'number' || !node.range || node.type !== 'PLAIN') return;
      const source = text.slice(node.range[0], node.range[1]);
      const form = /^[-+]?0\d+$/.test(source) ? 'a leading 0' : /^[-+]?0o/i.test(source) ? "YAML 1.2's octal 0o" : undefined;
      if (!form) return;
      const line = text.slice(0, node.range[0]).split('\n').length;
      found.push(`${keyPath(ancestors, node) || '(top level)'}: ${source} (line ${line}) is written with ${form}: ops reads it as the number ${node.value}, YAML 1.1 tools (PyYAML, Ansible) ${/^[-+]?0[0-7]+$/.test(source) ? `as the octal number ${parseInt(source, 8)}` : 'as text'}; write ${node.value} if it is a number, "${source}" in quotes if it is text`);
    },
  });
  return found;
}

/**
 * The yaml library's warnings about a document (an unknown tag such as `!!foo` or `!local`, which it would read
 * as the plain value and print as a Node warning), each with the key path of the value and where it is.
 */
function yamlWarnings(doc: Document, text: string): string[] {
  if (!doc.warnings.length) return [];
  // Tagged nodes, by where they start, with their key path ("env.X", "hosts[0]").
  const tagged: { start: number; path: string }[] = [];
  visit(doc, {
    Node(_key, node, ancestors) {
      if (!(node as YamlNode).tag || !(node as YamlNode).range) return;
      tagged.push({ start: (node as YamlNode).range![0], path: keyPath(ancestors, node) });
    },
  });
  return doc.warnings.map((w) => {
    const where = w.linePos?.[0] ? `line ${w.linePos[0].line}, column ${w.linePos[0].col}` : `offset ${w.pos[0]}`;
    if (w.code !== 'TAG_RESOLVE_FAILED') return `${where}: ${w.message.split('\n')[0]}`;
    // The tag's node starts after the tag (and a space).
    const node = tagged.filter((t) => t.start >= w.pos[1]).sort((a, b) => a.start - b.start)[0];
    return `${node?.path || '(top level)'}: unknown YAML tag ${text.slice(w.pos[0], w.pos[1])} (${where}): it would be read as a plain value`;
  });
}

/**
 * Read and validate environments/<name>/environment.yml under the project root, without resolving its hosts
 * (their pinned key files): what needs only the settings, such as `ops secrets set` checking a value against
 * `dotenv.readers`, works before the hosts exist. Throws OpsError (ConfigError for an invalid file).
 */
export function readEnvironmentConfig(envName: string, root: string): { dir: string; label: string; config: EnvironmentConfig } {
  validate('environment', envName);
  const dir = join(environmentsDir(root), envName);
  const file = join(dir, ENVIRONMENT_FILE);
  if (!userFileExists(file, `environments/${envName}/${ENVIRONMENT_FILE}`)) {
    // the folder is there with the settings under another name (environment.yaml, config.yml): said with the rename
    const other = existsSync(dir) && statSync(dir).isDirectory() ? readdirSync(dir).find((f) => /\.(ya?ml|json)$/i.test(f) && !f.includes('.sops.')) : undefined;
    if (other)
      throw new InputError(
        `environments/${envName}/ has no ${ENVIRONMENT_FILE}: the settings are read from that name only, and it holds ${other}`,
        `if ${other} holds the settings, rename it: git mv environments/${envName}/${other} environments/${envName}/${ENVIRONMENT_FILE} (or mv)`,
      );
    throw noEnvironment(root, envName, `environments/${envName}/${ENVIRONMENT_FILE} does not exist`);
  }
  const label = `environments/${envName}/${ENVIRONMENT_FILE}`;
  const doc = readYamlFile(file, label);
  // nothing, or comments only (saved empty, emptied by a bad merge): said as that, not "expected a mapping, got null"
  if (doc === null || doc === undefined)
    throw new InputError(`${label} is empty: it holds no settings (nothing but comments or blank lines)`, `write its settings (\`git checkout -- ${label}\` brings back the committed ones; \`ops env new <name>\` writes a full file to start from; every key is in the README under "Environment reference")`);
  return { dir, label, config: parseEnvironment(doc, label) };
}

/** Load, validate and resolve environments/<name>/environment.yml under the project root. */
export function loadEnvironment(envName: string, root: string): Environment {
  const { dir, label, config } = readEnvironmentConfig(envName, root);
  const problems: Problem[] = [];
  /** A pinned key, from the file when one is named (problems recorded at `path`). */
  let hostsMissing = 0; // host key files not there: hosts not created yet, the file may be right
  const pinnedKey = (key: string | undefined, file: string | undefined, path: string): string => {
    if (!file) return key ?? '';
    const keyFile = relativeTo(dir, file);
    try {
      // as ssh reads a known_hosts file: comment lines ("# web1:22 SSH-2.0-...") and blank ones are no key; every
      // other line is one (`ssh-keyscan host > web1.keys` gives one per type the host has: any of them is accepted)
      const text = readFileSync(keyFile, 'utf8')
        .split(/\r?\n/)
        .filter((l) => !/^\s*(#|$)/.test(l))
        .join('\n')
        .trim();
      const parsed = parseHostKeys(text);
      if (typeof parsed === 'string') problems.push({ path: `${path}.host_key_file`, message: `${keyFile}: ${parsed}` });
      return text;
    } catch (e) {
      // what is wrong with the path, as the system said it: only a missing file may be a host not created yet
      const code = (e as NodeJS.ErrnoException).code;
      const why =
        code === 'EISDIR' ? 'it is a directory: name the key file in it (e.g. ssh_host_ed25519_key.pub)' : code === 'EACCES' ? 'permission denied' : code === 'ENOENT' ? 'no such file (is the host created? for the local sandbox: npm start)' : `${code ?? 'unreadable'}`;
      problems.push({ path: `${path}.host_key_file`, message: `cannot read ${keyFile}: ${why}` });
      if (code === 'ENOENT') hostsMissing++;
      return '';
    }
  };
  const bastion = (b: NonNullable<EnvironmentConfig['bastion']> | undefined, path: string): Bastion | undefined =>
    b && { name: 'bastion', address: b.address, port: b.port, user: b.user, hostKey: pinnedKey(b.host_key, b.host_key_file, path), ...(b.host_key_file && { hostKeyFile: relativeTo(dir, b.host_key_file) }), ...(b.identity_file && { identityFile: relativeTo(dir, b.identity_file) }) };
  const shared = bastion(config.bastion, 'bastion');
  const hosts: Host[] = config.hosts.map((h, i) => {
    const via = h.bastion ? bastion(h.bastion, `hosts[${i}].bastion`) : shared;
    return { name: h.name, address: h.address, port: h.port, user: h.user, hostKey: pinnedKey(h.host_key, h.host_key_file, `hosts[${i}]`), ...(h.host_key_file && { hostKeyFile: relativeTo(dir, h.host_key_file) }), ...(via && { bastion: via }) };
  });
  if (problems.length)
    throw new ConfigError(label, problems, ...(hostsMissing === problems.length ? ['create the host first (the local sandbox: `npm start`), or point host_key_file at its public host key'] : []));
  return resolveEnvironment(envName, root, config, hosts);
}

/** The environment a validated configuration describes: its names and paths filled in (app user, base dir, URL). */
export function resolveEnvironment(envName: string, root: string, config: EnvironmentConfig, hosts: Host[]): Environment {
  const appUser = config.app_user ?? config.app;
  const scheme = config.tls.mode === 'off' ? 'http' : 'https';
  // An IPv6 address in a URL is written in brackets (RFC 3986, IP-literal).
  const site = config.domain ?? (isIP(hosts[0]!.address) === 6 ? `[${hosts[0]!.address}]` : hosts[0]!.address);
  const url = config.url ?? `${scheme}://${site}`;
  return { name: envName, dir: join(environmentsDir(root), envName), root, config, hosts, appUser, baseDir: config.base_dir ?? `/srv/${config.app}`, url };
}

/** release.asset_dirs as one form: each directory, with the URL prefix nginx serves it at when one is given. */
export function assetDirs(config: EnvironmentConfig): { dir: string; url?: string }[] {
  return config.release.asset_dirs.map((a) => (typeof a === 'string' ? { dir: a } : a));
}

/** Resolve a path from the environment's file (relative to its folder). */
export function envPath(env: Environment, p: string): string {
  return relativeTo(env.dir, p);
}

/**
 * The text of a file a setting of environment.yml names (`tls.acme_ca_file`, `nginx.site_template`), from its folder.
 * @throws OpsError naming the setting, the file it became and why it cannot be read (fileError); a missing one with
 * where a relative path starts from (the environment's folder, not the project's or the current directory).
 */
export function readEnvFile(env: Environment, setting: string, value: string, expected = 'a file'): string {
  const file = envPath(env, value);
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const why = fileError(e, file, 'read', expected);
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new InputError(
      `${setting}: ${why.message}`,
      missing ? `check ${setting} in environments/${env.name}/environment.yml (${JSON.stringify(value)}): a relative path starts from the environment's folder, environments/${env.name}/; ~/ from your home directory` : why.hint,
    );
  }
}

/**
 * The project root: the nearest folder from `from` up holding an `environments` folder and a package.json.
 * @throws OpsError saying what was looked for, from where, which folder had only one of the two, and how to fix it.
 */
export function findRoot(from = process.cwd()): string {
  let dir = resolve(from);
  const halves: string[] = []; // folders holding one of the two: most likely the project, missing the other
  for (;;) {
    const envs = existsSync(join(dir, 'environments')) && statSync(join(dir, 'environments')).isDirectory();
    const pkg = existsSync(join(dir, 'package.json'));
    if (envs && pkg) return dir;
    if (envs) halves.push(`${dir} has environments/ but no package.json`);
    else if (pkg && halves.length < 3) halves.push(`${dir} has a package.json but no environments/ folder${existsSync(join(dir, 'environments')) ? ' (its environments is a file)' : ''}`);
    const parent = resolve(dir, '..');
    if (parent === dir) {
      throw new InputError(
        `no ops project found: looked for a folder holding both an environments/ folder and a package.json, in ${resolve(from)} (the current directory) and each folder above it${halves.length ? `; ${halves.join('; ')}` : ''}`,
        'run ops from inside the project, or set OPS_ROOT to the project folder; a project needs both: `npm init -y` writes a package.json, `mkdir environments` makes the folder (then `ops env new <name>`)',
      );
    }
    dir = parent;
  }
}

/**
 * The project root named by `$OPS_ROOT` (`value`, relative paths from `cwd`), or found from the process directory up (findRoot)
 * when it is unset or empty. A mistyped OPS_ROOT is refused here, naming what is wrong with it: never taken as a
 * project with no environments yet (where `ops env new` would start a new one in the wrong place).
 * @throws OpsError for an OPS_ROOT that does not exist, is not a folder, or holds no environments/ folder.
 */
export function projectRoot(value: string | undefined, cwd: string, home?: string): string {
  if (!value) return findRoot(); // from the process directory, as before: under npm, the project root
  // a path as every path typed is read: a `~` the shell left (quoted) is the home directory
  const dir = userPath(cwd, value, home);
  const what = projectDirProblem(dir);
  if (!what) return dir;
  // a folder inside a project (its environments/ folder, an environment's): the project it is in is named
  let inside: string | undefined;
  try {
    inside = existsSync(dir) ? findRoot(dir) : undefined;
  } catch {
    inside = undefined;
  }
  // white space at an end (`OPS_ROOT=" "`, a value pasted with its newline): said, quoted, where it would not be seen
  const spaced = value.trim() !== value;
  throw new InputError(
    `OPS_ROOT=${spaced ? JSON.stringify(value) : value} is not an ops project: ${spaced ? JSON.stringify(dir) : dir} ${what}${spaced ? (value.trim() ? ' (the value has white space at an end)' : ' (the value is only white space)') : ''}`,
    inside
      ? `it is inside the project ${inside}: set OPS_ROOT=${inside}, or unset it to find the project from the current directory`
      : 'set OPS_ROOT to the project folder (the one holding environments/ and package.json), or unset it to find the project from the current directory; a new project needs both: `npm init -y` writes a package.json, `mkdir environments` makes the folder (then `ops env new <name>`)',
  );
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
    description: 'Generated by `npm run docs` from core/config/environment.ts; the loader checks the same rules, plus a few editors cannot (duplicate host names, routes naming programs, port collisions and green ports above 65535, system directories as base_dir, commands naming the live release by path, client_max_body_size over the limit of nginx, host key contents).',
  });
}
