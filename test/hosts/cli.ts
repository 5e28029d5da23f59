// `npm run hosts -- <command>`: the lab by hand. Thin: parses arguments, calls test/hosts/index.ts, prints.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { formatError, OpsError } from '../../core/errors.ts';
import { unknownSubcommand } from '../../scripts/cli.ts';
import { LAB_TOOLS, requireTools } from './lab.ts';
import {
  acquireLab,
  createDatabase,
  dropDatabase,
  deleteSnapshot,
  downAll,
  downHost,
  ensureDatabase,
  ensureLab,
  ensurePebble,
  ensureRootfs,
  getHost,
  requireRoot,
  snapshotHost,
  sshArgs,
  status,
  upHost,
  type Host,
  type Init,
  type SmallFilesystem,
  type Suite,
} from './index.ts';

const USAGE = `usage: npm run hosts -- <command> [options]

  check                         root and every program the lab needs (prints the apt command if not)
  build [--suite S] [--force]   build the cached root filesystem (bookworm default; bullseye, trixie)
  up NAME... [--suite S] [--init systemd|chroot] [--from SNAPSHOT] [--fresh] [--octet N] [--fs PATH:MB[:INODES]]... [--lan NAME]...
                                bring hosts up (kept root filesystems are reused unless --fresh);
                                --fs gives PATH a small filesystem of its own (tmpfs: size, inodes);
                                --lan joins a private network (hosts on it reach each other; the machine does not)
  down NAME... [--purge]        stop hosts (--purge also deletes their root filesystems)
  down --all [--purge]          everything: hosts, services, namespaces, addresses (caches stay)
  status [--json]               hosts, services, cached root filesystems, snapshots
  ssh NAME [COMMAND...]         log in to a host as deploy (pinned host key)
  snapshot NAME SNAPSHOT        save a host's root filesystem; later: up NEW --from SNAPSHOT
  snapshot --delete SNAPSHOT
  services                      start the apt proxy, PyPI and npm caches, PostgreSQL and pebble on 10.230.0.1
  db NAME [--drop]              create database + login NAME (password from $OPS_DB_PASSWORD or random), or drop them
`;

const CLI_LEASE = 'cli';

/** --fs /srv:200:20000 → { path: '/srv', sizeMb: 200, inodes: 20000 } (checked by upHost). */
function parseFilesystem(spec: string): SmallFilesystem {
  const [path = '', size = '', inodes] = spec.split(':');
  return { path, sizeMb: Number(size), ...(inodes !== undefined && { inodes: Number(inodes) }) };
}

function printHost(h: Host): void {
  console.log(`${h.name.padEnd(12)} ${h.address.padEnd(12)} ${h.init.padEnd(8)} ${h.suite.padEnd(9)} ${h.hostKey.slice(0, 40)}...`);
  for (const [lan, address] of Object.entries(h.lans)) console.log(`  on private network ${lan}: ${address}`);
}

/** The commands main takes (USAGE's), for naming the one meant by a typo. */
const COMMANDS = ['check', 'build', 'up', 'down', 'status', 'ssh', 'snapshot', 'services', 'db', 'help'];

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  // a typo (`stauts`) is named with the command meant, as ops does, before its options are read
  if (command !== undefined && !command.startsWith('-') && !COMMANDS.includes(command)) throw unknownSubcommand('npm run hosts --', command, COMMANDS, 'npm run hosts -- help');
  if (command === 'ssh') {
    // Everything after the host name is the remote command, options included: no parsing.
    const [name, ...remote] = rest;
    if (!name) throw new OpsError('which host?', 'npm run hosts -- ssh NAME [COMMAND...]');
    const host = getHost(name);
    if (!host) throw new OpsError(`no test host named "${name}"`, 'npm run hosts -- status');
    const child = spawn('ssh', [...sshArgs(host), ...(remote.length ? [remote.join(' ')] : [])], { stdio: 'inherit' });
    return new Promise((resolve) => child.on('close', (code) => resolve(code ?? 1)));
  }
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: {
      suite: { type: 'string' },
      init: { type: 'string' },
      from: { type: 'string' },
      fresh: { type: 'boolean' },
      octet: { type: 'string' },
      fs: { type: 'string', multiple: true },
      lan: { type: 'string', multiple: true },
      purge: { type: 'boolean' },
      all: { type: 'boolean' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
      delete: { type: 'boolean' },
      drop: { type: 'boolean' },
    },
  });
  const log = (line: string) => console.log(line);
  switch (command) {
    case 'check': {
      requireRoot();
      requireTools([...LAB_TOOLS, 'openssl', 'pebble', 'pebble-challtestsrv', 'psql', 'pg_isready', 'git']);
      console.log('ok: root, and every program the lab needs is installed');
      return 0;
    }
    case 'build': {
      requireRoot();
      const file = await ensureRootfs((values.suite ?? 'bookworm') as Suite, { force: values.force, log });
      console.log(file);
      return 0;
    }
    case 'up': {
      if (!positionals.length) throw new OpsError('which host(s)?', 'npm run hosts -- up NAME [NAME...]');
      await ensureLab({ suites: values.from ? [] : [(values.suite ?? 'bookworm') as Suite], log });
      acquireLab(CLI_LEASE, { persistent: true });
      for (const name of positionals) {
        const started = Date.now();
        const host = await upHost({
          name,
          suite: values.suite as Suite | undefined,
          init: values.init as Init | undefined,
          from: values.from,
          fresh: values.fresh,
          octet: values.octet === undefined ? undefined : Number(values.octet),
          ...(values.fs && { filesystems: values.fs.map(parseFilesystem) }),
          ...(values.lan && { lans: values.lan }),
        });
        printHost(host);
        console.log(`  up in ${((Date.now() - started) / 1000).toFixed(1)} s; log in: npm run hosts -- ssh ${host.name}`);
      }
      return 0;
    }
    case 'down': {
      if (values.all) {
        const hosts = await downAll({ purge: values.purge });
        console.log(`down: ${hosts.length ? hosts.join(', ') : 'no hosts'}; services stopped${values.purge ? '; state purged' : ''} (caches kept)`);
        return 0;
      }
      if (!positionals.length) throw new OpsError('which host(s)?', 'npm run hosts -- down NAME [NAME...] [--purge], or down --all');
      for (const name of positionals) await downHost(name, { purge: values.purge });
      console.log(`down: ${positionals.join(', ')}${values.purge ? ' (purged)' : ' (root filesystems kept; --purge deletes them)'}`);
      return 0;
    }
    case 'status': {
      const s = status();
      if (values.json) {
        console.log(JSON.stringify(s, null, 2));
        return 0;
      }
      const onOff = (r: boolean, pid?: number) => (r ? `running (pid ${pid})` : 'stopped');
      console.log(`services on ${s.servicesAddress}:`);
      console.log(`  apt proxy   ${onOff(s.aptProxy.running, s.aptProxy.pid)}  ${s.aptProxy.url}`);
      console.log(`  pypi cache  ${onOff(s.pypiCache.running, s.pypiCache.pid)}  ${s.pypiCache.url}`);
      console.log(`  npm cache   ${onOff(s.npmCache.running, s.npmCache.pid)}  ${s.npmCache.url}`);
      console.log(`  postgresql  ${onOff(s.database.running, s.database.pid)}  ${s.database.address}`);
      console.log(`  pebble      ${onOff(s.pebble.running, s.pebble.pid)}  ${s.pebble.directoryUrl}`);
      console.log(`hosts:${s.hosts.length ? '' : ' none'}`);
      for (const h of s.hosts) console.log(`  ${h.name.padEnd(12)} ${h.address.padEnd(12)} ${(h.running ? 'up' : 'down').padEnd(5)} ${h.init.padEnd(8)} ${h.suite.padEnd(9)} ${h.origin}${h.owner ? ` (owner ${h.owner})` : ''}`);
      console.log('root filesystems:');
      for (const r of s.rootfs) console.log(`  ${r.suite.padEnd(9)} ${r.cached ? `${(r.bytes! / 1e6).toFixed(0)} MB ${r.file}` : 'not built'}`);
      console.log(`snapshots: ${s.snapshots.join(', ') || 'none'}`);
      console.log(`leases: ${s.leases.join(', ') || 'none'}`);
      console.log(`dirs: cache ${s.paths.cache}, state ${s.paths.state}, run ${s.paths.run}`);
      return 0;
    }
    case 'snapshot': {
      if (values.delete) {
        if (positionals.length !== 1) throw new OpsError('which snapshot?', 'npm run hosts -- snapshot --delete SNAPSHOT');
        deleteSnapshot(positionals[0]!);
        console.log(`deleted snapshot ${positionals[0]}`);
        return 0;
      }
      if (positionals.length !== 2) throw new OpsError('expected a host and a snapshot name', 'npm run hosts -- snapshot HOST SNAPSHOT');
      console.log(await snapshotHost(positionals[0]!, positionals[1]!));
      return 0;
    }
    case 'services': {
      const lab = await ensureLab({ log });
      acquireLab(CLI_LEASE, { persistent: true });
      const db = await ensureDatabase();
      const pebble = await ensurePebble();
      console.log(`apt proxy   ${lab.aptProxyUrl}`);
      console.log(`pypi cache  ${lab.pypiIndexUrl}`);
      console.log(`npm cache   ${lab.npmRegistryUrl}`);
      console.log(`postgresql  ${db.host}:${db.port} (PostgreSQL ${db.version})`);
      console.log(`pebble      ${pebble.directoryUrl} (API CA ${pebble.apiCaFile}, issuing root ${pebble.rootCaFile})`);
      return 0;
    }
    case 'db': {
      if (positionals.length !== 1) throw new OpsError('which database?', 'npm run hosts -- db NAME [--drop]');
      if (values.drop) {
        await dropDatabase(positionals[0]!);
        console.log(`dropped database and login ${positionals[0]}`);
        return 0;
      }
      await ensureLab({ log });
      acquireLab(CLI_LEASE, { persistent: true });
      const password = process.env.OPS_DB_PASSWORD || randomBytes(18).toString('base64url');
      const db = await createDatabase(positionals[0]!, password);
      console.log(db.url);
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return command ? 0 : 1;
    default:
      throw unknownSubcommand('npm run hosts --', command, COMMANDS, 'npm run hosts -- help');
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`error: ${formatError(err)}`);
    process.exit(1);
  },
);
