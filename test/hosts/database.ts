// The lab's database server: the machine's own PostgreSQL binaries running a cluster of ours (data in the
// state dir, owned by `postgres`), listening only on the services address, so every host reaches it at
// 10.230.0.1:5432 like a separate database server. One database + login per environment.
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OpsError } from '../../core/errors.ts';
import { ensureServicesAddress, requireRoot, requireTools } from './lab.ts';
import { paths, POSTGRES_PORT, SERVICES_ADDRESS } from './paths.ts';
import { isAlive, livePid, logTail, readPidFile, run, spawnDaemon, stopProcess, waitFor, withLock, writePidFile } from './proc.ts';

export interface Database {
  /** postgresql://user:password@10.230.0.1:5432/name (password URL-encoded). */
  url: string;
  name: string;
  user: string;
  password: string;
  host: string;
  port: number;
}

export interface DatabaseServer {
  host: string;
  port: number;
  version: string;
}

/** The newest PostgreSQL installed on the machine (Debian: /usr/lib/postgresql/<major>/bin). */
function postgresBin(): { dir: string; version: string } {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => existsSync(join(base, v, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions.length) {
    throw new OpsError('PostgreSQL is not installed on this machine (the lab runs its database server with it)', 'apt-get install -y --no-install-recommends postgresql');
  }
  return { dir: join(base, versions[0]!, 'bin'), version: versions[0]! };
}

function postgresUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'))
    ?.split(':');
  if (!line || line.length < 4) throw new OpsError('no "postgres" user on this machine', 'apt-get install -y postgresql (creates it)');
  return { uid: Number(line[2]), gid: Number(line[3]) };
}

const dataDir = (version: string) => join(paths.state, 'db', `pg${version}`);
const socketDir = () => join(paths.run, 'db');
const pidFile = () => join(paths.run, 'postgres.pid');
const log = () => join(paths.logsDir, 'postgres.log');

async function asPostgres(program: string, args: string[], input?: string, what?: string) {
  return run('runuser', ['-u', 'postgres', '--', program, ...args], { input, what: what ?? program, timeoutMs: 60_000 });
}

/** Start the database server unless it runs. Quick when it does (about 20 ms). */
export async function ensureDatabase(): Promise<DatabaseServer> {
  requireRoot();
  const { dir, version } = postgresBin();
  requireTools(['psql', 'pg_isready']);
  await ensureServicesAddress();
  await withLock('database', async () => {
    if (livePid(pidFile())) return;
    const pg = postgresUser();
    const data = dataDir(version);
    if (!existsSync(join(data, 'PG_VERSION'))) {
      rmSync(data, { recursive: true, force: true });
      mkdirSync(join(paths.state, 'db'), { recursive: true, mode: 0o755 }); // postgres must traverse it
      mkdirSync(data, { mode: 0o700 });
      chownSync(data, pg.uid, pg.gid);
      await asPostgres(join(dir, 'initdb'), ['-D', data, '-U', 'postgres', '-E', 'UTF8', '--locale=C.UTF-8', '--auth-local=peer', '--auth-host=scram-sha-256'], undefined, 'initdb');
      // Logins from the test network and from the machine (which dials 10.230.0.1 too) use passwords.
      writeFileSync(
        join(data, 'pg_hba.conf'),
        ['# written by test/hosts/database.ts', 'local all postgres peer', `host all all ${SERVICES_ADDRESS}/32 scram-sha-256`, 'host all all 10.0.0.0/8 scram-sha-256', ''].join('\n'),
      );
    }
    mkdirSync(socketDir(), { recursive: true });
    chownSync(socketDir(), pg.uid, pg.gid);
    mkdirSync(paths.logsDir, { recursive: true });
    writeFileSync(log(), '', { flag: 'a' });
    chownSync(log(), pg.uid, pg.gid);
    // A test database: durability traded for speed (fsync off). Only the services address, no TCP elsewhere.
    const record = spawnDaemon(
      join(dir, 'postgres'),
      [
        '-D',
        data,
        '-c',
        `listen_addresses=${SERVICES_ADDRESS}`,
        '-c',
        `port=${POSTGRES_PORT}`,
        '-c',
        `unix_socket_directories=${socketDir()}`,
        '-c',
        'fsync=off',
        '-c',
        'synchronous_commit=off',
        '-c',
        'full_page_writes=off',
        '-c',
        'max_connections=200',
      ],
      log(),
      { uid: pg.uid, gid: pg.gid, cwd: data, env: { PATH: process.env.PATH, LANG: 'C.UTF-8' } },
    );
    const ready = await waitFor(async () => {
      if (!isAlive(record)) return 'died';
      const r = await run('pg_isready', ['-q', '-h', socketDir(), '-p', String(POSTGRES_PORT)], { allowFailure: true });
      return r.code === 0 ? 'up' : undefined;
    }, 30_000);
    if (ready !== 'up') {
      await stopProcess(record, 'SIGINT', 5_000);
      throw new OpsError(
        `the lab's PostgreSQL did not start on ${SERVICES_ADDRESS}:${POSTGRES_PORT}\n${logTail(log())}`,
        `is the port taken (ss -ltnp | grep ${POSTGRES_PORT})? A system cluster listening on '*' would be; log: ${log()}`,
      );
    }
    writePidFile(pidFile(), record);
  }, { purpose: 'starting PostgreSQL' });
  return { host: SERVICES_ADDRESS, port: POSTGRES_PORT, version };
}

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

function checkDatabaseName(name: string): string {
  if (typeof name !== 'string' || !IDENT.test(name) || name === 'postgres' || name.startsWith('pg_') || name.startsWith('template')) {
    throw new OpsError(`invalid database name ${JSON.stringify(name)}`, 'use lower-case letters, digits and "_", starting with a letter (e.g. app_local)');
  }
  return name;
}

/** SQL run by the superuser through psql (stdin, so no value shows in `ps`); values bound as psql variables. */
async function superuserSql(sql: string, vars: Record<string, string>): Promise<string> {
  const args = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', socketDir(), '-p', String(POSTGRES_PORT), '-d', 'postgres'];
  for (const [k, v] of Object.entries(vars)) args.push('-v', `${k}=${v}`);
  return (await asPostgres('psql', args, sql, 'psql (lab database admin)')).stdout;
}

/**
 * A database and a login of the same name, owned by it, reachable from every host. Idempotent: the password is
 * (re)set each time. Other logins cannot connect to it (CONNECT revoked from PUBLIC).
 */
export async function createDatabase(name: string, password: string): Promise<Database> {
  checkDatabaseName(name);
  if (typeof password !== 'string' || password.length < 8 || /[\0\n\r]/.test(password)) {
    throw new OpsError(`invalid password for database ${name}`, 'use at least 8 characters, no newline or NUL');
  }
  await ensureDatabase();
  // The name goes in as a psql variable (argv); the password must stay out of argv (visible in `ps`), so it is
  // a literal in the SQL text on stdin, quoted here (standard_conforming_strings: only ' needs doubling).
  const literal = `'${password.replace(/'/g, "''")}'`;
  await superuserSql(
    [
      `SELECT format('CREATE ROLE %I LOGIN', :'name') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'name') \\gexec`,
      `ALTER ROLE :"name" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${literal};`,
      `SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'name') \\gexec`,
      `REVOKE ALL ON DATABASE :"name" FROM PUBLIC;`,
      `GRANT ALL ON DATABASE :"name" TO :"name";`,
      '',
    ].join('\n'),
    { name },
  );
  return {
    url: `postgresql://${name}:${encodeUserinfo(password)}@${SERVICES_ADDRESS}:${POSTGRES_PORT}/${name}`,
    name,
    user: name,
    password,
    host: SERVICES_ADDRESS,
    port: POSTGRES_PORT,
  };
}

/** Percent-encode for a URL's userinfo, including the characters encodeURIComponent leaves ('()*!). */
function encodeUserinfo(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Drop an environment's database and login (tests clean up with this). Idempotent. */
export async function dropDatabase(name: string): Promise<void> {
  checkDatabaseName(name);
  await ensureDatabase();
  await superuserSql(`DROP DATABASE IF EXISTS :"name" WITH (FORCE);\nDROP ROLE IF EXISTS :"name";\n`, { name });
}

/** Run SQL as the superuser in one database and return psql's unaligned output (tests inspect state with it). */
export async function querySql(database: string, sql: string): Promise<string> {
  checkDatabaseName(database);
  const args = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', socketDir(), '-p', String(POSTGRES_PORT), '-d', database];
  return (await asPostgres('psql', args, sql, `psql (${database})`)).stdout;
}

export function databaseStatus(): { running: boolean; pid?: number; address: string } {
  const record = livePid(pidFile());
  return { running: !!record, pid: record?.pid, address: `${SERVICES_ADDRESS}:${POSTGRES_PORT}` };
}

/** Fast shutdown by PID (SIGINT); `purge` also deletes the cluster's data. */
export async function stopDatabase(options: { purge?: boolean } = {}): Promise<void> {
  await stopProcess(readPidFile(pidFile()), 'SIGINT', 20_000);
  rmSync(pidFile(), { force: true });
  rmSync(socketDir(), { recursive: true, force: true });
  if (options.purge) rmSync(join(paths.state, 'db'), { recursive: true, force: true });
}

