// The sandbox: the whole pipeline on this machine, no cloud account. `npm start` (= `sandbox up`) brings up
// the lab, its database and one Debian host "sandbox" at 10.231.0.2 (the `local` environment points there),
// builds the sample app's repository, then provisions the host and deploys the app with the `ops` CLI, as a
// user would. Re-running reuses what exists (and never replaces what was deployed since).
// `npm run sandbox -- down` removes it all (caches stay); `npm run sandbox -- status` shows what runs.
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatError, OpsError } from '../core/errors.ts';
import { unknownSubcommand } from './cli.ts';
import { makeAppRepo } from '../test/fixtures/app/make-repo.ts';
import {
  acquireLab,
  createDatabase,
  describeLease,
  downHost,
  dropDatabase,
  ensureDatabase,
  ensureLab,
  paths,
  releaseLab,
  SANDBOX_OCTET,
  status,
  upHost,
} from '../test/hosts/index.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const HOST = 'sandbox';
const LEASE = 'sandbox';
// Must match environments/local (its database_url secret holds this password; a throwaway on purpose).
const DATABASE = { name: 'app_local', password: 'local-sandbox-password' };

function since(start: number): string {
  return `${((Date.now() - start) / 1000).toFixed(1)} s`;
}

/** Run an `ops` command the way a user would; stop the sandbox run if it fails. */
function ops(...args: string[]): void {
  console.log(`\n$ npm run ops -- ${args.join(' ')}`);
  const r = spawnSync('npm', ['run', '--silent', 'ops', '--', ...args], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new OpsError(`\`npm run ops -- ${args.join(' ')}\` failed (exit ${r.status ?? r.signal})`, 'the sandbox host stays up: fix, then run `npm start` again');
}

async function up(): Promise<void> {
  const start = Date.now();
  const log = (line: string) => console.log(`  ${line}`);
  console.log('sandbox: lab (root filesystem, apt proxy, PyPI and npm caches)...');
  await ensureLab({ log });
  acquireLab(LEASE, { persistent: true });
  console.log('sandbox: database...');
  await ensureDatabase();
  const db = await createDatabase(DATABASE.name, DATABASE.password);
  console.log('sandbox: sample app repository...');
  const repo = await makeAppRepo(paths.sampleAppRepo);
  console.log(`sandbox: host "${HOST}"...`);
  const host = await upHost({ name: HOST, octet: SANDBOX_OCTET });
  console.log(`sandbox: ready in ${since(start)}`);

  ops('ping', 'local');
  ops('provision', 'local'); // idempotent: seconds when nothing changed
  // Deploy only a fresh sandbox: a re-run must not replace what the user deployed since (v2, a rollback...).
  const live = liveRelease();
  if (live) console.log(`\nalready deployed: ${live.ref} (${live.sha.slice(0, 12)}), release ${live.id}: kept`);
  else ops('deploy', 'local');
  const url = `http://${host.address}/`;
  const page = await fetchStatus(url);
  if (page !== 200) throw new OpsError(`${url} answers ${page ?? 'nothing'} after the deploy`, 'see `npm run ops -- releases local` and the logs on the host: npm run hosts -- ssh sandbox');

  console.log(`
sandbox up in ${since(start)}
  URL        ${url}
  host       ${host.name}: ${host.user}@${host.address}, host key pinned from ${host.hostKeyFile}
  database   postgresql://${db.user}:***@${db.host}:${db.port}/${db.name}
  app repo   ${repo.dir} (tags: ${Object.keys(repo.tags).join(', ')})

next:
  npm run ops -- deploy local --ref v2       a new migration and a changed page
  npm run ops -- releases local              what is kept, what is live
  npm run ops -- rollback local              back to the previous release in seconds
  npm run ops -- deploy local --ref broken-migration   fails; the site keeps serving
  npm run ops -- audit local                 who ran what, when
  npm run ops -- initdata local              load users and tags (encrypted environments/local/assets/initdata.yml)
  npm run ops -- status local                one screen: release, nginx, programs, health, lock
  ${`npm run hosts -- ssh ${host.name}`.padEnd(42)} log in to the host
  npm run sandbox -- down                    remove it all (caches stay)`);
}

interface Release {
  id: string;
  sha: string;
  ref: string;
  status: string;
}

/** The release live on the sandbox host, if any (from `ops releases local --json`). */
function liveRelease(): Release | undefined {
  const r = spawnSync('npm', ['run', '--silent', 'ops', '--', 'releases', 'local', '--json'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  try {
    const hosts = JSON.parse(r.stdout) as { host: string; releases: Release[] }[];
    return hosts.find((h) => h.host === HOST)?.releases.find((rel) => rel.status === 'current');
  } catch {
    return undefined;
  }
}

function fetchStatus(url: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = request(url, { timeout: 10_000, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

async function down(): Promise<void> {
  const start = Date.now();
  if (status().database.running) await dropDatabase(DATABASE.name);
  await downHost(HOST, { purge: true });
  const stopped = await releaseLab(LEASE, { purge: true });
  console.log(
    `sandbox down in ${since(start)}: host removed${stopped ? ', services stopped' : ' (services kept: still used by ' + status().leases.map(describeLease).join(', ') + ')'}; ` +
      `kept: caches in ${paths.cache}, the app repository ${paths.sampleAppRepo}`,
  );
}

function showStatus(): void {
  const s = status();
  const sandbox = s.hosts.find((h) => h.name === HOST);
  console.log(`sandbox host: ${sandbox ? `${sandbox.running ? 'up' : 'down'} at ${sandbox.address}` : 'not created'}`);
  console.log(`services: apt proxy ${s.aptProxy.running ? 'up' : 'down'}, pypi cache ${s.pypiCache.running ? 'up' : 'down'}, npm cache ${s.npmCache.running ? 'up' : 'down'}, postgresql ${s.database.running ? 'up' : 'down'}, pebble ${s.pebble.running ? 'up' : 'down'}`);
  console.log(`other hosts: ${s.hosts.filter((h) => h.name !== HOST).map((h) => h.name).join(', ') || 'none'}; leases: ${s.leases.join(', ') || 'none'}`);
}

const USAGE = 'usage: npm start | npm run sandbox -- up|down|status';
const command = process.argv[2] ?? 'up';
const actions: Record<string, () => Promise<void> | void> = { up, down, status: showStatus };
const action = actions[command];
if (['help', '--help', '-h'].includes(command)) {
  console.log(USAGE);
  process.exit(0);
}
if (!action) {
  // a typo (`stauts`) is named with the command meant, as ops does
  console.error(`error: ${formatError(unknownSubcommand('npm run sandbox --', command, Object.keys(actions), USAGE))}`);
  process.exit(2);
}
Promise.resolve()
  .then(action)
  .then(
    () => process.exit(0),
    (e) => {
      console.error(`error: ${formatError(e)}`);
      process.exit(1);
    },
  );
