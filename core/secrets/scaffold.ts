// `ops env new <name>`: a new environment folder with a config full of clearly marked placeholders, a
// new age identity (returned once, for the user to store), its `.sops.yaml` rule and an encrypted
// secrets file holding generated keys and placeholders for the rest.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { SCHEMA_COMMENT } from '../config/environment.ts';
import { PLACEHOLDER_HOST_KEY } from '../config/hostkey.ts';
import { OpsError } from '../errors.ts';
import { didYouMean } from '../config/schema.ts';
import { environmentFolders, validate } from '../shell.ts';
import { APP_SECRETS, PLACEHOLDER, envDir, generateApiKey, generateSecretKey, secretsPath } from './env.ts';
import { type NewIdentity, checkRecipient, generateIdentity } from './keys.ts';
import { envPathRegex, readCreationRules, removeEnvRule, setEnvRule } from './sops-config.ts';
import { SecretsFile } from './sops.ts';
import { interruption } from './atomic.ts';
import { type MapNode, type TreeNode, str } from './tree.ts';

/**
 * A placeholder address (TEST-NET-3, RFC 5737: it reaches nothing) that no environment of the project names:
 * with prod's, the new environment would be taken for one sharing prod's VM, as the same app (the collision check
 * refuses it, and `ops env remove` would have to keep all of its files). Files are read loosely (a broken one
 * still counts).
 */
export function freePlaceholderAddress(root: string): string {
  const used = new Set<string>();
  const envs = join(root, 'environments');
  for (const e of existsSync(envs) ? readdirSync(envs, { withFileTypes: true }) : []) {
    const file = join(envs, e.name, 'environment.yml');
    if (!e.isDirectory() || !existsSync(file)) continue;
    for (const m of readFileSync(file, 'utf8').matchAll(/address:\s*["']?([0-9a-fA-F.:]+)/g)) used.add(m[1]!);
  }
  for (let n = 10; n < 255; n++) if (!used.has(`203.0.113.${n}`)) return `203.0.113.${n}`;
  return '203.0.113.10';
}

/** environment.yml for a new environment: the catalogue app, every value to replace marked PLACEHOLDER. */
export function environmentTemplate(name: string, address = '203.0.113.10'): string {
  return `${SCHEMA_COMMENT}
# The ${name} environment (see the README, "Environment reference"). Written by \`ops env new ${name}\`.
# PLACEHOLDER values are marked: replace them before the first real run.
app: catalogage
ref: master
domain: ${name}.catalogue.example.org            # PLACEHOLDER: the public DNS name

hosts:
  - name: web1
    address: ${address}       # PLACEHOLDER (TEST-NET address, used by no other environment here): the VM's address
    user: deploy
    # PLACEHOLDER key (it belongs to no machine: every command that connects refuses it until you replace it):
    # read the real one on the VM's console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and paste
    # /etc/ssh/ssh_host_ed25519_key.pub here.
    host_key: ${PLACEHOLDER_HOST_KEY}

tls:
  mode: letsencrypt
  email: ops@example.org   # PLACEHOLDER: who Let's Encrypt writes to about expiring certificates

runtimes:
  python: { strategy: debian, version: "3.11" }
  node: { strategy: debian, version: "18" }

release:
  build: make build
  migrate: make migrate
  keep: 5

programs:
  server:
    command: "{release}/venv/bin/python -m server.main"
    port: 3579
    health: /health
    env:
      APP_PORT: "{port}"
  client:
    command: "{node} ./build"
    directory: client
    port: 3000
    health: /
    env:
      HOST: 127.0.0.1
      PORT: "{port}"
      VITE_API_SSR_URL: "http://127.0.0.1:{port:server}"

routes:
  /: client
  /api/: server

# Values from secrets.sops.yaml (edit them with \`ops secrets edit ${name}\`)
env:
  APP_SERVER_MODE: live
  APP_PORT: "3579"
  APP_DATABASE_URL: { secret: database_url }
  APP_SECRET_KEY: { secret: secret_key }
  APP_CONFIG_REPO_API_KEY: { secret: config_repo_api_key }
  APP_DATAPASS_CLIENT_ID: { secret: datapass_client_id }
  APP_DATAPASS_CLIENT_SECRET: { secret: datapass_client_secret }
  TOOLS_PASSWORDS: { secret: passwords }
  VITE_SERVER_MODE: live
  VITE_API_BROWSER_URL: /api
  VITE_API_SSR_URL: http://127.0.0.1:3579

# Who reads the .env: each value is written so that they all read it back exactly, or refused by name
# (README: "The .env: which values each reader can carry").
dotenv:
  readers: [python-dotenv, node-dotenv, { reader: vite, only: VITE_ }]
`;
}

/** The secrets the `env` of environmentTemplate refers to (`{ secret: <key> }`), in the order written there. */
export function templateSecretKeys(): string[] {
  return [...environmentTemplate('x').matchAll(/\{ secret: ([A-Za-z0-9_.-]+) \}/g)].map((m) => m[1]!);
}

/**
 * The first secrets: generated keys, and a placeholder (starting with CHANGE-ME) for the others, of the secrets
 * the new environment.yml refers to: no placeholder that nothing reads (a deploy refuses every one left).
 */
export function initialSecrets(): MapNode {
  const generated: Record<string, string> = { secret_key: generateSecretKey(), config_repo_api_key: generateApiKey() };
  const read = new Set(templateSecretKeys());
  const entries: [string, TreeNode][] = APP_SECRETS.filter(({ key }) => read.has(key)).map(({ key, about }) => {
    if (generated[key]) return [key, str(generated[key]!)];
    if (key === 'passwords') {
      return [key, { kind: 'map', entries: [['admin@example.org', str(`${PLACEHOLDER}: password of this initdata user`)]] }];
    }
    return [key, str(`${PLACEHOLDER}: ${about}`)];
  });
  return { kind: 'map', entries };
}

export interface NewEnvironment {
  dir: string;
  /** The new identity: show `identity.secret` once, never store it in the repository. */
  identity: NewIdentity;
  recipients: string[];
  /** Files written, relative to the root. */
  files: string[];
  /** The placeholder address of its host: one no other environment names. */
  address: string;
  /** An existing environment its name is a slip or two from (`stagin` beside `staging`): perhaps the one meant. */
  near?: string;
}

/**
 * Scaffold environments/<name>/. `recipients` (e.g. the team's existing keys) are added to the new
 * identity's. Once everything is written, `deliver` hands the new identity to the person (prints it); it throws
 * when it cannot (stdout full or gone): the secrets would be encrypted to a key nobody holds. Nothing is left
 * half-made: on failure (`deliver`'s included), or `signal` aborted (a Ctrl-C: InterruptedError, "nothing was
 * changed"), the new folder is removed and the rule taken back.
 */
export async function newEnvironment(
  root: string,
  name: string,
  opts: {
    recipients?: string[];
    signal?: AbortSignal;
    deliver?: (identity: NewIdentity) => void | Promise<void>;
    /** A check of where the result goes (stdout), run once the request itself is known good, before anything is written. */
    beforeWrite?: (recipients: string[]) => void | Promise<void>;
  } = {},
): Promise<NewEnvironment> {
  // A signal (Ctrl-C) heeded between the writes: what was written is undone below, and it is said as nothing changed.
  const heed = () => {
    if (opts.signal?.aborted) throw interruption(opts.signal.reason, `while creating environments/${name}`);
  };
  validate('environment', name);
  const dir = envDir(root, name);
  if (existsSync(dir)) throw new OpsError(`environments/${name} already exists`, `choose another name, or remove environments/${name} first`);
  const extra = (opts.recipients ?? []).map((r) => checkRecipient(r, '--recipient'));
  const identity = await generateIdentity();
  const recipients = [identity.recipient, ...extra.filter((r) => r !== identity.recipient)];
  const hadRule = readCreationRules(root).some((r) => r.pathRegex === envPathRegex(name));
  if (hadRule) throw new OpsError(`.sops.yaml already has a rule for environments/${name}/`, 'remove it first, or choose another name');
  const configBefore = existsSync(join(root, '.sops.yaml'));
  const address = freePlaceholderAddress(root);
  // Names of 4 characters and more: between short ones (qa, qb) a letter apart is a naming, not a slip.
  const near = name.length >= 4 ? didYouMean(name, environmentFolders(root)) : undefined;
  // what is wrong with the request itself (a name taken, a bad recipient) is said first: a check of the output
  // comes after it, so fixing the one it names is not followed by another the person could have been told of
  await opts.beforeWrite?.(extra);
  heed();
  await mkdir(join(dir, 'assets'), { recursive: true });
  try {
    await writeFile(join(dir, 'environment.yml'), environmentTemplate(name, address), { flag: 'wx' });
    heed();
    await setEnvRule(root, name, recipients, opts.signal);
    heed();
    const secrets = SecretsFile.create(secretsPath(root, name), initialSecrets(), { recipients });
    await secrets.save();
    heed();
    await opts.deliver?.(identity); // last: once the key is shown, the environment is the person's
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    await removeEnvRule(root, name).catch(() => undefined);
    if (!configBefore) await rm(join(root, '.sops.yaml'), { force: true });
    throw e;
  }
  const files = [join(dir, 'environment.yml'), join(root, '.sops.yaml'), secretsPath(root, name)].map((f) => relative(root, f));
  return { dir, identity, recipients, files, address, ...(near && { near }) };
}
