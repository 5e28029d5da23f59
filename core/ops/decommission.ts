// ops env remove <name>: the seed's "Démanteler un environnement" checklist as a guided command. It refuses
// while a host still serves a release, runs an operation (its lock held), or cannot be checked (unreachable), unless forced, removes environments/<name>/ and its .sops.yaml rule,
// and lists everything else to release by hand: VMs, database, DNS, certificates, OpenID Connect (DataPass)
// callback URLs, the GitHub environments (<name>, and <name>-status for status.yml) and their secrets, workflow
// options, the age key. What another environment also uses (domain, database, age recipient, and on a shared VM
// app name, user, base_dir) is named as shared with it and kept.
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isPair, isScalar, LineCounter, parseDocument, visit } from 'yaml';
import { environmentsDir, listEnvironments, noEnvironment, reservedApp, SECRETS_FILE, siteNames, systemAccount, type Environment } from '../config/environment.ts';
import { lookup } from '../dotenv.ts';
import { appDirectoryProblem, ownDirectoryProblem } from '../config/environment-schema.ts';
import { resolveTarget } from '../target.ts';
import { collisions, findSiblings, sharedParts, type SharedParts, type Sibling } from '../config/siblings.ts';
import type { Host } from '../config/environment.ts';
import type { OpsContext } from '../context.ts';
import { acmeCaPath } from '../steps/tls.ts';
import { HOST_APPS_DIR } from '../runtimes.ts';
import { writtenRecord } from '../steps/script.ts';
import { errorFieldsLine, errorParts, messageLine, OpsError } from '../errors.ts';
import { envPathRegex, readCreationRules, removeEnvRule, SOPS_CONFIG_FILE, type CreationRule } from '../secrets/sops-config.ts';
import { quote, validate } from '../shell.ts';
import type { HostStatus } from '../steps/status.ts';
import { documentationAddress, PLACEHOLDER_ADDRESS_SAID, PLACEHOLDER_HOST_KEY_SAID } from '../remote/ssh-login.ts';
import { status } from './status.ts';
import { runUnderWay } from '../steps/lock.ts';
import { openEnvironment } from './secrets.ts';

export interface RemoveOptions {
  /** Remove even if hosts still serve, or cannot be checked (no host is contacted). */
  force?: boolean;
  /** Check and list, change nothing. */
  dryRun?: boolean;
}

export interface RemoveResult {
  environment: string;
  removed: boolean;
  /** Files and rules removed (or that would be, with dryRun). */
  changes: string[];
  /** What each host was found doing ('' when not checked); `placeholder`: still at the documentation address or host key `ops env new` writes (never set up). */
  hosts: { host: string; address: string; state: string; placeholder?: boolean }[];
  /** What else to release by hand, one item a line. */
  checklist: string[];
}

/**
 * A host "still serves" when a release is live and something answers: its own site through nginx (not
 * another app's on a shared host), or a health check.
 */
export function servingHosts(hosts: HostStatus[]): HostStatus[] {
  return hosts.filter((h) => h.reachable && h.release && ((h.site && h.site.enabled && h.site.status > 0 && h.site.status < 500) || h.health?.some((x) => x.ok)));
}

function describeHost(h: HostStatus): string {
  if (!h.reachable) return `unreachable (${errorFieldsLine({ error: messageLine(h.error), hint: h.hint && messageLine(h.hint) })})`;
  if (h.error) return `reachable, but its status cannot be read (${errorFieldsLine({ error: messageLine(h.error), hint: h.hint && messageLine(h.hint) })})`;
  if (!h.release) return 'reachable, no live release';
  return `serves ${h.release.id}${h.release.ref ? ` (${h.release.ref})` : ''}${h.site?.status ? `, ${h.site.url} answers ${h.site.status}` : ''}`;
}

/** The keys under which a workflow lists an environment: a job's `environment:` (or its `name:`), an action's `with: environment:`, a `matrix: environment:` list, a choice input's `options:`. */
const LISTING_KEYS = new Set(['environment', 'options']);

/**
 * Lines of the workflows that list the environment `name`: a value that is the name whole, under a key of
 * LISTING_KEYS (or `name:` under `environment:`), read with the YAML parser, each as `.github/workflows/<file>:<line>:
 * <line's text>`. A workflow's title, a branch or a concurrency group spelled like the environment is not one of
 * them, nor a comment. A file that does not parse is named as such, to be checked by hand.
 */
function workflowMentions(root: string, name: string): string[] {
  const dir = join(root, '.github', 'workflows');
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const f of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    const text = readFileSync(join(dir, f), 'utf8');
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines });
    if (doc.errors.length) {
      out.push(`.github/workflows/${f}: not valid YAML (${messageLine(doc.errors[0]!.message)}): look for ${name} by hand`);
      continue;
    }
    const textLines = text.split('\n');
    const found = new Set<number>();
    // The nearest key above each value: the map key it is the value of, or its list's key.
    visit(doc, {
      Scalar(_key, node, path) {
        if (String(node.value) !== name || !node.range) return;
        const parent = path[path.length - 1];
        if (isPair(parent) && parent.key === node) return; // a key, not a value
        const pairs = path.filter(isPair);
        const key = pairs.length ? String(isScalar(pairs[pairs.length - 1]!.key) ? (pairs[pairs.length - 1]!.key as { value: unknown }).value : '') : '';
        const above = pairs.length > 1 ? String(isScalar(pairs[pairs.length - 2]!.key) ? (pairs[pairs.length - 2]!.key as { value: unknown }).value : '') : '';
        if (LISTING_KEYS.has(key) || (key === 'name' && above === 'environment')) found.add(lines.linePos(node.range[0]).line);
      },
    });
    for (const n of [...found].sort((a, b) => a - b)) out.push(`.github/workflows/${f}:${n}: ${textLines[n - 1]!.trim()}`);
  }
  return out;
}

/**
 * Shell commands, run on a host, that take the environment's app off it and leave every other app there as it
 * is: only its supervisor groups are updated, only its nginx files removed (then a graceful reload), only its
 * certificate, directories, logs and user deleted. `others`: the other environments on that host; what one of
 * them also takes (the same app name, user, base_dir or domain: what the deploy's collision check refuses) is
 * not removed, but named as shared and kept.
 */
export function removeAppCommands(environment: Environment, others: Environment[] = []): string[] {
  const env = resolveTarget(environment);
  const L = env.layout;
  const c = env.config;
  const parts = others.map((o) => ({ name: o.name, shared: sharedParts(environment, o) }));
  /** The environments that also use a part ('' when none does). */
  const sharers = (part: keyof SharedParts) => parts.filter((p) => p.shared[part]).map((p) => p.name).join(', ');
  const kept = (what: string, part: keyof SharedParts, why: string) => `# ${what}: shared with ${sharers(part)} (${why}): kept`;
  const appShared = sharers('app');
  const sameApp = `the same app name "${c.app}"`;
  const cmds: string[] = [];
  if (appShared) {
    cmds.push(kept(`supervisor groups ${L.supervisorGroup('blue')}, ${L.supervisorGroup('green')} (${L.supervisorConf('blue')}, ${L.supervisorConf('green')})`, 'app', sameApp));
    cmds.push(kept(`nginx site and upstreams ${L.nginxSiteEnabled}, ${L.nginxSite}, ${L.nginxUpstreams}`, 'app', sameApp));
  } else
    cmds.push(
      // `supervisorctl update NAME` fails ("no such group") for a slot never started (an environment deployed once
      // runs blue only), which would stop a copied chain there: only the groups supervisor runs are named.
      `sudo rm -f ${quote(L.supervisorConf('blue'))} ${quote(L.supervisorConf('green'))} ${quote(writtenRecord(L.supervisorConf('blue')))} ${quote(writtenRecord(L.supervisorConf('green')))} && for g in ${quote(L.supervisorGroup('blue'))} ${quote(L.supervisorGroup('green'))}; do if sudo supervisorctl status | grep -q "^$g:"; then sudo supervisorctl update "$g"; fi; done`,
      `sudo rm -f ${quote(L.nginxSiteEnabled)} ${quote(L.nginxAcmePending)} ${quote(L.nginxSite)} ${quote(writtenRecord(L.nginxSite))} ${quote(L.nginxUpstreams)} && sudo nginx -t && sudo nginx -s reload`,
    );
  // Each command can be run again after an interruption (a dropped connection, Ctrl-C): what is already gone is
  // said so, never an error that would stop a pasted chain or read as "not ours".
  if (c.tls.mode === 'letsencrypt' && c.domain) {
    if (sharers('domain')) cmds.push(kept(`certificate ${c.domain}`, 'domain', `the same domain`));
    // -n: certbot delete asks "Are you sure" (with no terminal it takes the default, with a warning saying to pass -n).
    else cmds.push(`if sudo test -e ${quote(`/etc/letsencrypt/renewal/${c.domain}.conf`)}; then sudo certbot delete -n --cert-name ${quote(c.domain)}; else echo ${quote(`certificate ${c.domain}: already deleted`)}; fi`);
  }
  if (c.tls.mode === 'letsencrypt' && c.tls.acme_ca_file) {
    if (appShared) cmds.push(kept(`test ACME CA ${acmeCaPath(env)}`, 'app', sameApp));
    else cmds.push(`sudo rm -f ${quote(acmeCaPath(env))}`);
  }
  const reserved = reservedApp(c.app);
  // A file older than the checks (or edited since) may name a shared directory: never offer to remove one.
  if (c.tls.mode === 'self-signed' && !reserved) {
    if (appShared) cmds.push(kept(`self-signed certificate ${L.selfSignedDir}`, 'app', sameApp));
    else cmds.push(`sudo rm -rf ${quote(L.selfSignedDir)}`);
  }
  const baseShared = sharers('baseDir');
  // The base directory as the configuration check reads it (with the app and its user: not another's home, not
  // the log directory, which is listed once, as the logs).
  const baseWhy = appDirectoryProblem(L.base, c.app, env.appUser);
  const own = [...(baseShared || baseWhy ? [] : [L.base]), ...(reserved || appShared || ownDirectoryProblem(L.logDir) ? [] : [L.logDir])];
  const logs = appShared ? [] : [`${quote(L.nginxAccessLog)}*`, `${quote(L.nginxErrorLog)}*`, `${quote(L.nginxCheckLog)}*`];
  if (own.length || logs.length) cmds.push(`sudo rm -rf ${[...own.map(quote), ...logs].join(' ')}`);
  if (baseShared) cmds.push(kept(`base_dir ${L.base}`, 'baseDir', `base directories ${[env.baseDir, ...others.filter((o) => parts.find((p) => p.name === o.name)?.shared.baseDir).map((o) => o.baseDir)].join(', ')} overlap`));
  if (appShared && !reserved) cmds.push(kept(`logs ${L.logDir}, ${L.nginxAccessLog}*, ${L.nginxErrorLog}*, ${L.nginxCheckLog}*`, 'app', sameApp));
  // The host's record of the app's runtimes (provision writes it): left, it pins them for every other app's provision.
  if (appShared) cmds.push(kept(`record of its runtimes ${HOST_APPS_DIR}/${c.app}`, 'app', sameApp));
  else cmds.push(`sudo rm -f ${quote(`${HOST_APPS_DIR}/${c.app}`)}`);
  // userdel --remove deletes the user's home: only for a user ops made (home /home/<user>, as provision creates
  // it and accepts an existing one), never root, the SSH login or an account of the system or of a service (a
  // file older than the checks may name one: postgres's home holds every cluster).
  const u = env.appUser;
  const notOurs = u === 'root' ? 'root' : environment.hosts.some((h) => h.user === u) ? 'the SSH login' : systemAccount(u);
  if (notOurs) cmds.push(`# app user ${u} is ${notOurs}, not a user ops made: not removed`);
  else if (sharers('user')) cmds.push(kept(`app user ${u}`, 'user', `the same app user`));
  else
    cmds.push(
      `if ! getent passwd ${quote(u)} >/dev/null; then echo ${quote(`app user ${u}: already removed`)}; elif [ "$(getent passwd ${quote(u)} | cut -d: -f6)" = ${quote(`/home/${u}`)} ]; then sudo userdel --remove ${quote(u)}; else echo ${quote(`${u}: its home is not /home/${u}, so ops did not make it: kept`)}; fi`,
    );
  const why = baseWhy;
  if (why && !baseShared) cmds.push(`# base_dir ${L.base} is not a directory of its own (${why}): remove ${c.app}'s files from it by hand (releases, shared, current, repo.git, .ops), nothing else`);
  if (reserved) cmds.push(`# app "${c.app}" names ${reserved}, which belongs to the system: its files there are not removed`);
  return cmds;
}

/**
 * On a VM kept for other environments: the line of this environment's key in its SSH login's authorized_keys, which
 * deleting the GitHub secrets does not take off the VM (README, "Setting up the repository": one key per environment,
 * SSH_PRIVATE_KEY of `<name>` and `<name>-status`). ops never installs keys, so it cannot tell the line: the commands
 * take it from the private key the user holds (`ssh-keygen -y` prints its public half; the key's base64 body, field 2
 * of an authorized_keys line, is what is matched). When another environment logs in as the same user there, it is
 * named: one key per environment means its line is another, unless the team used one key for both.
 */
function loginKeyCommands(name: string, host: Host, on: Sibling[]): string[] {
  const sameLogin = on.filter((s) => s.hosts.some((x) => x.mine.name === host.name && x.theirs.user === host.user)).map((s) => s.env.name);
  const file = `~${host.user}/.ssh/authorized_keys`;
  return [
    `# the SSH key ${name} logs in with (${host.user}@${host.address}; GitHub secret SSH_PRIVATE_KEY of "${name}" and "${name}-status"): deleting the secrets leaves it authorized here. With its private key at hand (KEY=<file>), drop its line${sameLogin.length ? ` (${sameLogin.join(', ')} also log${sameLogin.length > 1 ? '' : 's'} in as ${host.user}: keep the line if ${sameLogin.length > 1 ? 'they use' : 'it uses'} the same key)` : ''}:`,
    `body=$(ssh-keygen -y -f "$KEY" | cut -d' ' -f2) && ssh -p ${host.port} ${quote(`${host.user}@${host.address}`)} "sudo sed -i.ops-bak '\\|$body|d' ${file}"`,
  ];
}

/**
 * Everything outside the repository that the environment used, from its configuration, in the order to do it:
 * first what needs the environment's folder and hosts (saving the audit log and logs: `ops env remove` deletes
 * the folder ops reads them through, and deleting the VMs or removeAppCommands deletes the app's directory with
 * its audit log), then out of service (DNS, the certificate, the VMs), then the rest. `removed`: the folder is
 * gone (the checklist printed after `ops env remove`): what is left of the audit log and logs is on the hosts.
 */
export function decommissionChecklist(name: string, env: Environment | undefined, ctx: Pick<OpsContext, 'root' | 'reporter'>, options: { removed?: boolean; rules?: CreationRule[]; databases?: ReadonlyMap<string, string> } = {}): string[] {
  const list: string[] = [];
  const c = env?.config;
  const root = ctx.root;
  const others = env ? otherEnvironments(ctx, env) : [];
  /** The other environments with the same domain (DNS record, certificate, callback URLs). */
  const sameDomain = env && c?.domain ? others.filter((o) => o.config.domain === c.domain).map((o) => o.name) : [];
  const sameUrl = env ? others.filter((o) => o.url === env.url || sameDomain.includes(o.name)).map((o) => o.name) : [];
  const vms: string[] = [];
  if (env) {
    const L = resolveTarget(env).layout;
    list.push(
      options.removed
        ? `the audit log and logs: environments/${name}/ is removed, so ops audit and ops logs no longer reach them; what is left is on the hosts (${L.audit}, ${L.logDir}/) until the VMs are deleted or the commands below run`
        : `first, before anything below and before ops env remove ${name} without --dry-run (it removes environments/${name}/, which ops audit and ops logs read; deleting the VMs, or the commands below, deletes the audit log with ${L.base}): save what you may need (audit log: ops audit ${name} --json > ${name}-audit.json; logs: ops logs ${name} --lines 10000)`,
    );
    const { siblings } = findSiblings(env);
    for (const h of env.hosts) {
      const on = siblings.filter((s) => s.hosts.some((x) => x.mine.name === h.name));
      const others = on.map((s) => s.env.name);
      if (!others.length) vms.push(`VM ${h.name} (${h.address}): delete it at the hosting provider (and its disks, snapshots, backups, firewall rules)`);
      else {
        const clash = on.flatMap((s) => collisions(env, s)).map((x) => `      # ${x}`);
        vms.push(
          `VM ${h.name} (${h.address}) also runs ${others.join(', ')}: keep it, and take ${env.config.app} off it (these touch nothing of ${others.join(', ')}):\n` +
            (clash.length ? `      # ${name}'s configuration collides with ${others.join(', ')} on this VM (a deploy of either refuses it):\n${clash.join('\n')}\n` : '') +
            [...removeAppCommands(env, on.map((s) => s.env)), ...loginKeyCommands(name, h, on)].map((cmd) => `      ${cmd}`).join('\n'),
        );
      }
    }
  } else list.push(`the VMs of ${name} (environment.yml could not be read: see its history in git; other environments may share them)`);
  const secretRefs = Object.entries(c?.env ?? {}).filter(([, v]) => typeof v !== 'string').map(([k, v]) => `${k} ← secret ${(v as { secret: string }).secret}`);
  const dbVars = Object.keys(c?.env ?? {}).filter((k) => /DATABASE/i.test(k));
  // Out of service in this order: no new visitors (DNS), the certificate revoked while its key is still there, then the VMs.
  // Every name the site serves has its record (the domain and each alias: siteNames), each kept while another
  // environment serves it too.
  const names = c ? siteNames({ config: c }) : [];
  const own: string[] = [];
  for (const n of names) {
    const sharing = others.filter((o) => siteNames(o).includes(n)).map((o) => o.name);
    if (sharing.length) list.push(`DNS: the record of ${n}: shared with ${sharing.join(', ')} (${n === c!.domain ? 'the same domain' : 'the same name'}): keep it`);
    else own.push(n);
  }
  if (own.length) list.push(`DNS: remove the record${own.length > 1 ? 's' : ''} of ${own.join(', ')}`);
  else if (!names.length) list.push('DNS: remove any record pointing at the VMs');
  // One certificate (its lineage named after the domain) names the aliases too.
  const certNames = names.length > 1 ? ` (it names ${names.join(', ')})` : '';
  if (c?.tls.mode === 'letsencrypt' && sameDomain.length) list.push(`TLS: the certificate of ${c.domain}: shared with ${sameDomain.join(', ')} (the same domain): keep it, do not revoke it`);
  else if (c?.tls.mode === 'letsencrypt') list.push(`TLS: revoke the certificate${certNames} before deleting the VM if its key may leak (on the host: certbot revoke --cert-name ${c.domain}); it expires by itself otherwise`);
  list.push(...vms);
  const db = databaseSharing(env, dbVars, others);
  if (db.sharedWith.length)
    list.push(`PostgreSQL database (${dbVars.join(', ')}): shared with ${db.sharedWith.join(', ')} (the same ${db.vars.join(', ')}): keep it, and its login`);
  else
    list.push(
      `PostgreSQL database${dbVars.length ? ` (${dbVars.join(', ')})` : ''}: drop the database and its login, or the whole instance if it was this environment's own (keep a final dump if required)` +
        (db.unknown.length ? `; unless ${db.unknown.join(', ')} on the same VM use${db.unknown.length > 1 ? '' : 's'} it too (compare their database URLs: ops secrets show ${name} --key <secret>): then keep it` : '') +
        dropDatabaseText(name, env, dbVars, options.databases, Boolean(options.removed)),
    );
  // The callback URLs are the OpenID Connect provider's to drop: only for an app that signs in through one (its env
  // names the client, as the catalogue's APP_DATAPASS_CLIENT_ID), or whose configuration could not be read.
  const signsIn = !c || Object.keys(c.env ?? {}).some((k) => /DATAPASS|OIDC|OPENID/i.test(k));
  if (signsIn)
    list.push(
      sameUrl.length
        ? `OpenID Connect ("Comptes DataPass"): the callback URLs of ${env!.url}: shared with ${sameUrl.join(', ')} (the same ${sameDomain.length ? 'domain' : 'URL'}): keep them, and the client id/secret if ${sameUrl.length > 1 ? 'they use' : 'it uses'} the same (compare: ops secrets show ${name})`
        : `OpenID Connect ("Comptes DataPass"): ask the DataPass team (BetaGouv) to remove the callback URLs of ${env?.url ?? name}, and drop the client id/secret of this environment`,
    );
  // status.yml checks each environment from the GitHub environment <name>-status (README, "Status environments").
  list.push(
    `GitHub: delete the environment "${name}" (Settings → Environments) and its secrets (SSH key, SOPS_AGE_KEY), and its deployment history if wanted; and the environment "${name}-status" that status.yml uses for ${name}, with its secret SSH_PRIVATE_KEY`,
  );
  const mentions = workflowMentions(root, name);
  if (mentions.length) list.push(`workflows still name ${name}: remove it from them (the workflow tests check that the options match environments/):\n${mentions.map((m) => `      ${m}`).join('\n')}`);
  list.push(ageKeyItem(name, root, options.rules ?? readCreationRules(root), secretRefs));
  list.push(`remove ${name} from the team's documentation (the list of environments), then review and commit: git add -A environments/${name} ${SOPS_CONFIG_FILE} && git commit -m "Decommission ${name}"`);
  return list;
}

/** The project's other environments that can be read (one that cannot is compared with nothing), their passwords masked (openEnvironment). */
function otherEnvironments(ctx: Pick<OpsContext, 'root' | 'reporter'>, env: Environment): Environment[] {
  return listEnvironments(env.root)
    .filter((n) => n !== env.name)
    .flatMap((n) => {
      try {
        return [openEnvironment(ctx, n)];
      } catch {
        return [];
      }
    });
}

/**
 * The age key item: the recipients of the environment's .sops.yaml rule (`rules`: read before ops env remove
 * takes it out) that another rule also lists open those environments' secrets too: deleting the key would lose
 * them. Those are named, to keep; only a recipient no other rule lists is to delete.
 */
function ageKeyItem(name: string, root: string, rules: CreationRule[], secretRefs: string[]): string {
  const dead = secretRefs.length ? `; its secrets (${secretRefs.join(', ')}) are dead with it` : '';
  const mine = rules.find((r) => r.pathRegex === envPathRegex(name));
  if (!mine?.age.length) return `age key of ${name}: delete it from the password manager and the CI secrets${dead}`;
  const names = listEnvironments(root).filter((n) => n !== name);
  const label = (r: CreationRule) => names.find((n) => r.pathRegex === envPathRegex(n)) ?? `the rule ${r.pathRegex ?? '(every file)'}`;
  const opens = (recipient: string) => rules.filter((r) => r !== mine && r.age.includes(recipient)).map(label);
  const shared = mine.age.filter((a) => opens(a).length);
  const own = mine.age.filter((a) => !opens(a).length);
  const keep = shared.map((a) => `${a}: it also opens ${opens(a).join(', ')} (.sops.yaml)`);
  if (!own.length)
    return `age key of ${name}: keep it: ${keep.length > 1 ? 'each of its recipients also opens other environments: ' : ''}${keep.join('; ')}; deleting it would leave their secrets undecryptable (only ${name}'s copy in the GitHub environment goes with it)`;
  return `age key of ${name}${mine.age.length > 1 ? ` (${own.join(', ')})` : ''}: delete it from the password manager and the CI secrets${dead}${keep.length ? `; keep ${keep.join('; ')}` : ''}`;
}

/**
 * The value of each DATABASE variable of the environment's `env` (`vars`) that can be read here: a plain value as
 * written, a secret's when a key at hand opens the secrets file (decrypted values masked, as every command masks
 * them); a variable that cannot be read is absent (no key: status.yml's runner, a CI without SOPS_AGE_KEY).
 */
async function databaseUrls(ctx: OpsContext, env: Environment, vars: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const secrets = vars.filter((k) => typeof env.config.env[k] !== 'string');
  for (const k of vars) if (typeof env.config.env[k] === 'string') out.set(k, env.config.env[k] as string);
  const file = join(env.dir, SECRETS_FILE);
  if (!secrets.length || !existsSync(file)) return out;
  try {
    const { decryptFile, loadEnvIdentities } = await import('../secrets/index.ts');
    const identities = await loadEnvIdentities(env.root, env.name, ctx.processEnv, () => {});
    if (!identities.identities.length) return out;
    const { data } = await decryptFile(file, { identities, mask: (v) => ctx.reporter.mask(v) });
    for (const k of secrets) {
      const v = lookup(data, (env.config.env[k] as { secret: string }).secret, env.name);
      if (typeof v === 'string' && v) out.set(k, v);
    }
  } catch {
    // No key that opens it, or a file that cannot be read: the checklist says how to get the commands.
  }
  return out;
}

/** An SQL identifier in double quotes (PostgreSQL's "Identifiers and Key Words": a quote inside doubled). */
const sqlIdentifier = (s: string) => `"${s.replace(/"/g, '""')}"`;

/**
 * The commands that keep a final dump of the database a PostgreSQL URL names, then drop it and its login (role), for
 * the user to review and run (ops runs none of them): pg_dump as the app's login (it asks for its password: never
 * printed), then psql as a superuser, `IF EXISTS` so that a chain run again after an interruption goes on. Names are
 * read with the WHATWG URL parser and decoded; every value is SQL-quoted, then shell-quoted. undefined for a URL that
 * parser cannot read (several hosts, no host but a socket parameter) or that names no database or login.
 */
export function dropDatabaseCommands(url: string): { dump: string; drop: string; where: string; onHost: boolean } | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (!/^postgres(ql)?(\+|:)/.test(u.protocol)) return undefined;
  const dbName = decodeURIComponent(u.pathname.replace(/^\//, ''));
  const user = decodeURIComponent(u.username);
  if (!dbName || !user || dbName.includes('/')) return undefined;
  const local = onTheHost(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = u.port || '5432';
  // On the VM itself: as its postgres user (peer authentication), no address; elsewhere: its host and port.
  const at = local ? [] : [`--host=${quote(host)}`, `--port=${quote(port)}`];
  const file = quote(`${dbName}-final.dump`);
  const dump = local
    ? `sudo -u postgres pg_dump --format=custom ${quote(`--dbname=${dbName}`)} > ${file}`
    : `pg_dump --format=custom ${at.join(' ')} ${quote(`--username=${user}`)} ${quote(`--dbname=${dbName}`)} --file=${file}`;
  const sql = [`DROP DATABASE IF EXISTS ${sqlIdentifier(dbName)};`, `DROP ROLE IF EXISTS ${sqlIdentifier(user)};`].map((x) => `-c ${quote(x)}`).join(' ');
  const drop = local ? `sudo -u postgres psql -v ON_ERROR_STOP=1 ${sql}` : `psql ${at.join(' ')} --username=postgres --dbname=postgres -v ON_ERROR_STOP=1 ${sql}`;
  return { dump, drop, where: local ? 'on the VM itself' : `${host.includes(':') ? `[${host}]` : host}:${port}`, onHost: local };
}

/**
 * The database item's commands (dropDatabaseCommands), one block per database variable whose URL is known
 * (`urls`: databaseUrls), each after its backup; for one not known, how to get them. '' without DATABASE variables.
 */
function dropDatabaseText(name: string, env: Environment | undefined, vars: string[], urls: ReadonlyMap<string, string> | undefined, removed: boolean): string {
  if (!env || !vars.length) return '';
  const blocks: string[] = [];
  const seen = new Set<string>();
  for (const k of vars) {
    const url = urls?.get(k);
    const spec = env.config.env[k];
    const source = typeof spec === 'string' ? 'its plain value' : `secret ${(spec as { secret: string }).secret}`;
    if (url === undefined) {
      blocks.push(
        removed
          ? `      # ${k} (${source}) could not be read here (no key that opens the secrets): drop its database and login by hand, after a final dump`
          : `      # ${k} (${source}) could not be read here (no key that opens the secrets): with the environment's age key, ops env remove ${name} --dry-run prints the commands (ops secrets show ${name} --key <secret> shows the URL)`,
      );
      continue;
    }
    const c = dropDatabaseCommands(url);
    if (!c) {
      blocks.push(`      # ${k} (${source}) is not a PostgreSQL URL with one host, a login and a database that can be read here: drop them by hand, after a final dump`);
      continue;
    }
    if (seen.has(c.drop)) continue;
    seen.add(c.drop);
    blocks.push(
      `      # ${k}: PostgreSQL ${c.where}${c.onHost ? ' (deleting the VM deletes it: dump it before)' : ''}. Review, then run them yourself (nothing here runs them): first a final dump (pg_dump asks for the login's password),`,
      `      ${c.dump}`,
      `      # then drop the database and its login, as a superuser of that server:`,
      `      ${c.drop}`,
    );
  }
  return blocks.length ? `:\n${blocks.join('\n')}` : '';
}

/** Whether a database URL names a server on the host itself (localhost, 127.x, ::1, a Unix socket), or cannot be read. */
function onTheHost(url: string): boolean {
  try {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    return host === '' || host === 'localhost' || host.startsWith('127.') || host === '::1' || /(^|[?&])host=\//.test(new URL(url).search);
  } catch {
    return true;
  }
}

/**
 * Which other environments use its database: the same plain value of a DATABASE variable (`sharedWith`; on the
 * same VM only when it names the host itself), or, on the same VM, both a secret whose value is not read here
 * (`unknown`: it may be the same).
 */
function databaseSharing(env: Environment | undefined, dbVars: string[], others: Environment[]): { sharedWith: string[]; vars: string[]; unknown: string[] } {
  const out = { sharedWith: [] as string[], vars: [] as string[], unknown: [] as string[] };
  if (!env || !dbVars.length) return out;
  const siblings = new Set(findSiblings(env).siblings.map((s) => s.env.name));
  // The same plain URL of a database server is the same database wherever the other runs; one on the host itself
  // (localhost, a socket) only on the same VM, as a secret URL is only suspected to be.
  for (const other of others) {
    const near = siblings.has(other.name);
    const same = dbVars.filter((k) => typeof env.config.env[k] === 'string' && env.config.env[k] === other.config.env[k] && (near || !onTheHost(env.config.env[k] as string)));
    if (same.length) {
      out.sharedWith.push(other.name);
      out.vars.push(...same.filter((k) => !out.vars.includes(k)));
    } else if (near && dbVars.some((k) => typeof env.config.env[k] !== 'string') && Object.entries(other.config.env).some(([k, v]) => /DATABASE/i.test(k) && typeof v !== 'string')) out.unknown.push(other.name);
  }
  return out;
}

/**
 * `ops env remove`: refuse while a host still serves the environment, a run holds its lock on a host (runUnderWay), or
 * a host cannot be checked (unreachable, or its status unreadable), unless `force`; then remove
 * environments/<name>/ and its .sops.yaml rule, and list what else to release. `dryRun` changes nothing.
 * @throws OpsError for an invalid or unknown name, or a host that serves, runs an operation or cannot be checked (naming it and why).
 */
export async function removeEnvironment(ctx: OpsContext, name: string, options: RemoveOptions = {}): Promise<RemoveResult> {
  validate('environment', name);
  const dir = join(environmentsDir(ctx.root), name);
  if (!existsSync(dir)) {
    throw noEnvironment(ctx.root, name, `environments/${name}/ does not exist`);
  }
  let env: Environment | undefined;
  let loadError: unknown;
  try {
    env = openEnvironment(ctx, name);
  } catch (e) {
    loadError = e;
  }
  // The database URLs as they can be read now: the folder (and its secrets) is gone once it is removed.
  const databases = env ? await databaseUrls(ctx, env, Object.keys(env.config.env ?? {}).filter((k) => /DATABASE/i.test(k))) : undefined;
  const result: RemoveResult = { environment: name, removed: false, changes: [], hosts: [], checklist: decommissionChecklist(name, env, ctx, { databases }) };
  if (!options.force) {
    if (!env)
      throw new OpsError(`cannot tell whether ${name}'s hosts still serve: ${messageLine(errorParts(loadError).message)}`, `fix environments/${name}/environment.yml, or remove it anyway with --force`);
    const st = await status(ctx, env);
    // A host refused as still at a documentation address (the placeholder `ops env new` writes, RFC 5737/3849/2606)
    // is no machine: nothing serves there, so an environment made by mistake (a typo of `ops env new`) goes without --force.
    // Nor did ops ever reach a host still pinned to the placeholder host key (no machine presents it): nothing of the
    // environment was set up or serves there, whatever runs at its address.
    const placeholder = (h: (typeof st.hosts)[number]) =>
      !h.reachable && h.error?.includes(PLACEHOLDER_ADDRESS_SAID) && documentationAddress(h.address)
        ? `${documentationAddress(h.address)}, the placeholder ops env new writes`
        : !h.reachable && h.error?.includes(PLACEHOLDER_HOST_KEY_SAID)
          ? 'its host key is the placeholder ops env new writes'
          : undefined;
    result.hosts = st.hosts.map((h) => (placeholder(h) ? { host: h.host, address: h.address, state: `never set up: ${placeholder(h)}`, placeholder: true } : { host: h.host, address: h.address, state: describeHost(h) }));
    // An unreachable host may well still serve (to others than us: a missing key, a firewall, a VPN down).
    const unknown = st.hosts.filter((h) => (!h.reachable || h.error) && !placeholder(h));
    if (unknown.length)
      throw new OpsError(
        `cannot tell whether ${name}'s hosts still serve:\n${unknown.map((h) => `  ${h.host} (${h.address}) ${describeHost(h)}`).join('\n')}`,
        `fix access to the host (ops ping ${name} and ops status ${name} show the same), or, if it is gone or out of service, remove the folder anyway with --force (no host is contacted)`,
      );
    // A run under way (a first deploy, not serving yet; a provision) would go on making what the checklist says to
    // release, for an environment whose folder is gone: removed once it ended, never beside it.
    const running = st.hosts.flatMap((h) => {
      const under = h.lock && runUnderWay(h.lock);
      return under ? [`  ${h.host}: ${under}`] : [];
    });
    if (running.length)
      throw new OpsError(
        `environment ${name} has a run under way: refusing to remove it\n${running.join('\n')}`,
        `wait until it is done (ops lock status ${name} says who holds the lock), then run this again; if that run is stuck, ops lock release ${name} --force stops it`,
      );
    const serving = servingHosts(st.hosts);
    if (serving.length)
      throw new OpsError(
        `environment ${name} still serves: refusing to remove it\n${serving.map((h) => `  ${h.host} (${h.address}) ${describeHost(h)}`).join('\n')}`,
        `take it out of service first (DNS, then the VMs: see the checklist with --dry-run --force), or remove the folder anyway with --force`,
      );
  }
  result.changes.push(`environments/${name}/ (${countFiles(dir)} files)`);
  if (readCreationRules(ctx.root).some((r) => r.pathRegex === envPathRegex(name))) result.changes.push(`${SOPS_CONFIG_FILE}: the creation rule for environments/${name}/`);
  if (options.dryRun) return result;
  const rules = readCreationRules(ctx.root);
  // the rule first: a rule ops cannot take out (shared through a YAML alias) refuses before anything is removed
  await removeEnvRule(ctx.root, name);
  rmSync(dir, { recursive: true, force: true });
  result.removed = true;
  result.checklist = decommissionChecklist(name, env, ctx, { removed: true, rules, databases });
  return result;
}

function countFiles(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? countFiles(join(dir, e.name)) : 1;
  return n;
}

/** `ops env remove` for a terminal: the hosts, what was (or would be) removed, and the checklist. */
export function formatRemove(r: RemoveResult, dryRun = false): string {
  const out: string[] = [];
  if (r.hosts.length) out.push(`hosts of ${r.environment}:`, ...r.hosts.map((h) => `  ${h.host} (${h.address}): ${h.state}`), '');
  out.push(`${dryRun ? 'would remove' : r.removed ? 'removed' : 'not removed'}:`, ...r.changes.map((c) => `  - ${c}`), '');
  // Made by `ops env new` and never given a machine: most of the list may never have existed; said, not cut (a DNS
  // record, a database or the GitHub environments may have been made by hand before the hosts were set).
  if (r.hosts.length && r.hosts.every((h) => h.placeholder))
    out.push(`none of ${r.environment}'s hosts was ever set up (each still at the placeholder address or host key ops env new writes): of what follows, only what was made by hand for it exists (a DNS record, a database, the GitHub environments, its age key in a password manager or CI); the rest never did`, '');
  out.push(`still to release by hand (the repository cannot):`, ...r.checklist.map((c, i) => `  ${i + 1}. ${c}`));
  return out.join('\n');
}
