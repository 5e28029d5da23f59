// Several environments (apps) on one host. The project's other environments whose hosts are the same
// machines (address and SSH port) as this one's are its siblings; they can share those machines only when
// nothing an app takes on a host collides: ports (both slots), app name (nginx site, supervisor groups,
// /var/log/<app>), app user, base directory (releases, lock, audit log), domain and aliases, the default server, and the
// names derived from them. Checked before anything runs, from the environment files alone: cheap (a few
// small YAML files) and independent of the hosts' state.
import { join, posix } from 'node:path';
import { errorParts, InputError, messageLine } from '../errors.ts';
import { layout, slotPort, type Slot } from '../layout.ts';
import type { Reporter } from '../report.ts';
import {
  ENVIRONMENT_FILE,
  environmentsDir,
  listEnvironments,
  machineId,
  parseEnvironment,
  readYamlFile,
  resolveEnvironment,
  siteNames,
  type Environment,
  type Host,
} from './environment.ts';

export interface Sibling {
  /** The sibling as its file describes it (host keys not read: no connection is made to it). */
  env: Environment;
  /** The machines both use: this environment's host, and the sibling's name for the same machine. */
  hosts: { mine: Host; theirs: Host }[];
}

export interface HostSharing {
  siblings: Sibling[];
  /** One sentence per collision, naming both environments, the machine and what collides. */
  collisions: string[];
  /** Environments whose file cannot be read, so whether they share a host (and collide) is not known. */
  unreadable: string[];
}

/** Does the app's site answer requests for names no other site serves (and by address)? */
export function isDefaultServer(env: Environment): boolean {
  return !env.config.domain || env.config.nginx.default_server;
}

/** The `hosts` of an environment file that does not validate, as far as they can be read. */
function rawMachines(doc: unknown): string[] | undefined {
  const hosts = (doc as { hosts?: unknown } | null)?.hosts;
  if (!Array.isArray(hosts)) return undefined;
  return hosts.flatMap((h) => {
    const { address, port } = (h ?? {}) as { address?: unknown; port?: unknown };
    return typeof address === 'string' ? [machineId({ address, port: typeof port === 'number' ? port : 22 })] : [];
  });
}

/** The project's other environments on this environment's machines; unreadable files are listed, not fatal. */
export function findSiblings(env: Environment): { siblings: Sibling[]; unreadable: string[] } {
  const mine = new Map(env.hosts.map((h) => [machineId(h), h]));
  const siblings: Sibling[] = [];
  const unreadable: string[] = [];
  for (const name of listEnvironments(env.root)) {
    if (name === env.name) continue;
    const label = `environments/${name}/${ENVIRONMENT_FILE}`;
    let doc: unknown;
    try {
      doc = readYamlFile(join(environmentsDir(env.root), name, ENVIRONMENT_FILE), label);
      const config = parseEnvironment(doc, label);
      const theirs = config.hosts.map((h): Host => ({ name: h.name, address: h.address, port: h.port, user: h.user, hostKey: '' }));
      const shared = theirs.filter((h) => mine.has(machineId(h))).map((h) => ({ mine: mine.get(machineId(h))!, theirs: h }));
      if (shared.length) siblings.push({ env: resolveEnvironment(name, env.root, config, theirs), hosts: shared });
    } catch (e) {
      const machines = rawMachines(doc);
      // A broken file that names none of our machines is no sibling; one we cannot tell about is reported.
      if (!machines || machines.some((m) => mine.has(m)))
        unreadable.push(`${label} cannot be read (${messageLine(errorParts(e).message)}): whether ${name} shares a host with ${env.name}, and collides with it, is not checked`);
    }
  }
  return { siblings, unreadable };
}

interface Claim {
  /** The thing taken on the host; equal keys collide. */
  key: string;
  /** Where it comes from in the environment's file. */
  source: string;
  /** A name derived from the app name (collides with a different app name only by coincidence of spelling). */
  derived?: boolean;
}

/** Everything the environment takes on each of its hosts (see core/layout.ts). */
export function hostClaims(env: Environment): Claim[] {
  const c = env.config;
  const L = layout(env);
  const claims: Claim[] = [];
  for (const program of Object.keys(c.programs)) {
    for (const slot of ['blue', 'green'] as Slot[]) {
      claims.push({ key: `port ${slotPort(env, program, slot)}`, source: `programs.${program}.port${slot === 'green' ? ' + switch.port_offset' : ''}, ${slot} slot` });
      claims.push({ key: `supervisor program ${L.supervisorProgram(slot, program)}`, source: `app + programs.${program}`, derived: true });
    }
    claims.push({ key: `nginx upstream ${L.nginxUpstream(program)}`, source: `app + programs.${program}`, derived: true });
  }
  claims.push({ key: `app name "${c.app}"`, source: 'app: nginx site, supervisor groups, /var/log/<app>' });
  claims.push({ key: `nginx variable $${L.nginxSlotVariable}`, source: 'app', derived: true });
  claims.push({ key: `app user "${env.appUser}"`, source: c.app_user ? 'app_user' : 'app_user, default: the app name' });
  // Each name the site answers (siteNames: the domain, its aliases' redirects; its certificate names them all): nginx
  // serves a name for one site only.
  siteNames(env).forEach((n, i) => claims.push({ key: `domain ${n}`, source: i === 0 ? 'domain' : `aliases[${i - 1}]` }));
  if (c.domain && c.nginx.default_server) claims.push({ key: 'the default server', source: 'nginx.default_server' });
  return claims;
}

/** Whether one directory is the other or inside it, compared as the kernel resolves them (".", "..", "//" and a trailing "/" normalized away; no symbolic links followed). */
function overlaps(a: string, b: string): boolean {
  const [x, y] = [posix.normalize(a).replace(/\/+$/, ''), posix.normalize(b).replace(/\/+$/, '')];
  return x === y || x.startsWith(`${y}/`) || y.startsWith(`${x}/`);
}

/** What of `env`'s on a shared host `other` takes too (the same claims the collision check compares). */
export interface SharedParts {
  /** The app name: its nginx site and upstreams, supervisor groups, /var/log/<app>, nginx logs, TLS files named after it. */
  app: boolean;
  user: boolean;
  /** The base directories are the same, or one is inside the other. */
  baseDir: boolean;
  domain: boolean;
}

/** What `env` and `other` both take on a machine they share (what removing one of them must leave to the other). */
export function sharedParts(env: Environment, other: Environment): SharedParts {
  const theirs = new Set(hostClaims(other).map((c) => c.key));
  const mine = hostClaims(env);
  const takes = (prefix: string) => mine.some((c) => c.key.startsWith(prefix) && theirs.has(c.key));
  return { app: takes('app name '), user: takes('app user '), baseDir: overlaps(env.baseDir, other.baseDir), domain: takes('domain ') };
}

/** Why `env` and `sibling` cannot share their common machines (nothing: they can). */
export function collisions(env: Environment, sibling: Sibling): string[] {
  const other = sibling.env;
  const where = sibling.hosts.map(({ mine, theirs }) => `${mine.address}${mine.port !== 22 ? ` port ${mine.port}` : ''} (${env.name}: ${mine.name}, ${other.name}: ${theirs.name})`).join(', ');
  const both = `environments ${env.name} and ${other.name} share ${where}`;
  const out: string[] = [];
  for (const e of [env, other].filter((x) => !x.config.domain)) {
    const o = e === env ? other : env;
    out.push(`${both}, but ${e.name} has no domain: its site answers every name on the host, ${o.name}'s too; on a shared host each app needs its own domain (set domain in environments/${e.name}/${ENVIRONMENT_FILE}; nginx.default_server: true keeps it answering by address)`);
  }
  const byKey = (claims: Claim[]) => {
    const m = new Map<string, Claim[]>();
    for (const c of claims) m.set(c.key, [...(m.get(c.key) ?? []), c]);
    return m;
  };
  const theirs = byKey(hostClaims(other));
  const sameApp = env.config.app === other.config.app;
  for (const [key, mine] of byKey(hostClaims(env))) {
    const clash = theirs.get(key);
    // Names derived from the same app name say nothing more than "same app name".
    if (!clash || (mine[0]!.derived && sameApp)) continue;
    out.push(`${both}, but both take ${key} (${env.name}: ${mine.map((x) => x.source).join('; ')} — ${other.name}: ${clash.map((x) => x.source).join('; ')})`);
  }
  if (overlaps(env.baseDir, other.baseDir))
    out.push(`${both}, but their base directories overlap: ${env.name} ${env.baseDir}, ${other.name} ${other.baseDir} (releases, shared files, the lock and the audit log live there; set base_dir, default /srv/<app>)`);
  const [n1, n2] = [env.config.runtimes.node, other.config.runtimes.node];
  if (n1.strategy === 'debian' && n2.strategy === 'debian' && n1.version.split('.')[0] !== n2.version.split('.')[0])
    out.push(`${both}, but ${env.name} pins Debian's Node.js ${n1.version} and ${other.name} ${n2.version}: a host has one Debian nodejs package (pin the same version, or use strategy nvm)`);
  return out;
}

/** The siblings of an environment and what collides with them. */
export function hostSharing(env: Environment): HostSharing {
  const { siblings, unreadable } = findSiblings(env);
  return { siblings, unreadable, collisions: siblings.flatMap((s) => collisions(env, s)) };
}

export const SHARING_HINT = 'each environment on a host needs its own app name, app user, base_dir, domain and ports (port and port + switch.port_offset); see the README, "Several environments on one host"';

/**
 * Before an operation that sets a host up for the environment (provision, deploy): refuse when it collides
 * with a sibling, naming both; warn about siblings that cannot be read. Throws InputError (the settings must change:
 * exit 2); nothing has run.
 */
export function refuseCollisions(env: Environment, reporter: Reporter): HostSharing {
  const sharing = hostSharing(env);
  for (const u of sharing.unreadable) reporter.warn(u);
  if (sharing.collisions.length)
    throw new InputError(`${env.name} cannot share its hosts as configured; nothing was changed:\n${sharing.collisions.map((c) => `  - ${c}`).join('\n')}`, SHARING_HINT);
  return sharing;
}

/** What a plan says about each host: the other environments on it, and which names this app's site answers. */
export function sharingPlan(env: Environment, sharing: HostSharing): string[] {
  const [domain, ...aliases] = siteNames(env);
  const redirects = aliases.length ? ` (redirecting ${aliases.join(', ')} to it)` : '';
  const answers = domain ? `answers ${domain}${redirects}${env.config.nginx.default_server ? ' and, as the default server, any other name' : ''}` : 'answers every name (no domain: it must be the only app on the host)';
  return env.hosts.map((h) => {
    const others = sharing.siblings.filter((s) => s.hosts.some((x) => x.mine.name === h.name)).map((s) => `${s.env.name}${siteNames(s.env).length ? ` (${siteNames(s.env).join(', ')})` : ''}`);
    return `${h.name} (${h.address}): ${others.length ? `shared with ${others.join(', ')}` : 'no other environment of this project'}; ${env.config.app} ${answers}`;
  });
}
