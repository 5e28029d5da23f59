// Test hosts: Debian root filesystems booted with systemd-nspawn (or sshd as PID 1 in a chroot), each in its
// own network namespace with a veth pair to the machine: 10.N.0.2 inside, 10.N.0.1 outside, a /32 route to the
// services address, nothing else (no default route, no DNS). Every host has its own hostname, machine-id and
// SSH host keys, and a `deploy` login with our client key and passwordless sudo.
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { OpsError } from '../../core/errors.ts';
import { quote } from '../../core/shell.ts';
import { checkSuite, ensureLab, requireRoot, rootfsTarball, type Suite } from './lab.ts';
import { APT_PROXY_PORT, FIRST_AUTO_OCTET, gatewayAddress, hostAddress, labTag, LAST_OCTET, NETWORKS_DIR, paths, SERVICES_ADDRESS } from './paths.ts';
import { isAlive, livePid, lockHolder, logTail, readPidFile, run, sleep, spawnDaemon, stopProcess, waitFor, withLock, writePidFile, type RunResult } from './proc.ts';

export type Init = 'systemd' | 'chroot';

export interface UpHostOptions {
  name: string;
  /** Debian release of a new host (default bookworm). Ignored with `from` (the snapshot's suite is used). */
  suite?: Suite;
  /** `systemd` (default): real systemd via systemd-nspawn. `chroot`: sshd as PID 1, `service` works, `systemctl` does not. */
  init?: Init;
  /** Start from a snapshot made by `snapshotHost` instead of the bare root filesystem. */
  from?: string;
  /** Use 10.<octet>.0.0/24 (the sandbox uses 231). Default: the first free one from 232 up. */
  octet?: number;
  /** Throw away a kept root filesystem of that name and start from a clean one (tests want this). */
  fresh?: boolean;
  /** Recorded with the host; `downAll({ owner })` removes only that owner's hosts (a test run's safety net). */
  owner?: string;
  /**
   * Directories of the host that get a small filesystem of their own (a tmpfs limited in size and inodes),
   * e.g. `[{ path: '/srv', sizeMb: 200, inodes: 20000 }]`: to fill a disk in a test without filling the
   * machine's. Seeded with what the root filesystem holds there; kept while the host is stopped, like a disk;
   * removed by `downHost(name, { purge: true })`.
   */
  filesystems?: SmallFilesystem[];
  /**
   * Private networks ("LANs") the host joins, beside its link to the machine: each is a bridge in a network
   * namespace of its own, that the machine has no address or route in. Hosts on the same LAN reach each other
   * there (e.g. a bastion and a host only it can reach); the host's address on it is in `Host.lans`.
   */
  lans?: string[];
}

export interface SmallFilesystem {
  /** Absolute path inside the host ("/srv"). */
  path: string;
  sizeMb: number;
  /** Inode limit (default: the kernel's, about one per 4 KiB page of memory). */
  inodes?: number;
}

export interface Host {
  name: string;
  /** 10.N.0.2: where the host's sshd listens. */
  address: string;
  /** 10.N.0.1: the machine's end of the host's veth. */
  gateway: string;
  octet: number;
  suite: Suite;
  init: Init;
  /** The host's ed25519 public key as "ssh-ed25519 AAAA...", read from its root filesystem (pin it; no TOFU). */
  hostKey: string;
  hostKeyFile: string;
  /** known_hosts file holding exactly `address hostKey`. */
  knownHostsFile: string;
  identityFile: string;
  user: 'deploy';
  /** The host's root filesystem on the machine. */
  root: string;
  /** Its network namespace (`ip netns exec <netns> ...` runs a command inside its network). */
  netns: string;
  owner?: string;
  filesystems: SmallFilesystem[];
  /** LAN name → the host's address on it (interface eth1, eth2... in the order given). */
  lans: Record<string, string>;
}

interface HostMeta {
  name: string;
  octet: number;
  suite: Suite;
  init: Init;
  /** What the root filesystem was made from: `rootfs:<tarball>` or `snapshot:<name>`. */
  origin: string;
  owner?: string;
  filesystems?: SmallFilesystem[];
  /** Each LAN joined, with the 10.N.0.0/24 network it had when the host started. */
  lans?: { name: string; octet: number }[];
}

const NAME = /^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$/;
const SNAPSHOT = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function checkHostName(name: string): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new OpsError(`invalid test host name ${JSON.stringify(name)}`, 'use 1-32 lower-case letters, digits and "-", starting with a letter (it becomes the hostname)');
  }
  return name;
}

function checkSnapshotName(name: string): string {
  if (typeof name !== 'string' || !SNAPSHOT.test(name)) {
    throw new OpsError(`invalid snapshot name ${JSON.stringify(name)}`, 'use lower-case letters, digits, ".", "_" and "-"');
  }
  return name;
}

const netnsName = (name: string) => `opsth-${labTag()}${name}`;
const vethName = (octet: number) => `ops${octet}h`;
const rootDir = (name: string) => join(paths.hostsDir, name);
const metaFile = (name: string) => join(paths.hostsDir, `${name}.json`);
const knownHostsFile = (name: string) => join(paths.hostsDir, `${name}.known_hosts`);
const pidFile = (name: string) => join(paths.run, 'hosts', `${name}.pid`);
const hostLog = (name: string) => join(paths.logsDir, `host-${name}.log`);
const octetDir = (octet: number) => join(NETWORKS_DIR, String(octet));
/** Where a host's small filesystem for `path` is mounted on the machine (outside its root: a purge of the root never crosses it). */
const filesystemDir = (name: string, path: string) => join(paths.hostsDir, `${name}.fs`, path.replace(/^\/+/, '').replace(/\//g, '_'));
/** Machine-wide name of a host for network reservations: its root filesystem's path (unique across labs). */
const reservationOwner = (name: string) => rootDir(name);
const lanNs = (lan: string) => `opsth-${labTag()}lan-${lan}`;
/** A LAN's network reservation names it, so a host never takes it over while the LAN's namespace exists. */
const lanOwner = (lan: string) => `lan ${lanNs(lan)} ${join(paths.state, 'lans', lan)}`;
/**
 * LANs use 10.228.L.0/24, apart from the hosts' 10.N.0.0/24 (the machine routes those to their hosts: a LAN
 * there would be reachable). Host N's address on LAN L: 10.228.L.N.
 */
const LAN_PREFIX = '10.228';
const lanAddress = (lanOctet: number, hostOctet: number) => `${LAN_PREFIX}.${lanOctet}.${hostOctet}`;
/** LAN reservations sit beside the hosts' networks, named lan-L (machine-wide, like them). */
const lanDir = (octet: number) => join(NETWORKS_DIR, `lan-${octet}`);
/** Namespaces this lab created, so a sweep after a crash removes its own and never another lab's. */
const netnsRecord = (ns: string) => join(paths.run, 'netns', ns);

function readMeta(name: string): HostMeta | undefined {
  try {
    return JSON.parse(readFileSync(metaFile(name), 'utf8')) as HostMeta;
  } catch {
    return undefined;
  }
}

function hostInfo(meta: HostMeta): Host {
  const root = rootDir(meta.name);
  const hostKeyFile = join(root, 'etc/ssh/ssh_host_ed25519_key.pub');
  const hostKey = readFileSync(hostKeyFile, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  return {
    name: meta.name,
    address: hostAddress(meta.octet),
    gateway: gatewayAddress(meta.octet),
    octet: meta.octet,
    suite: meta.suite,
    init: meta.init,
    hostKey,
    hostKeyFile,
    knownHostsFile: knownHostsFile(meta.name),
    identityFile: paths.identityFile,
    user: 'deploy',
    root,
    netns: netnsName(meta.name),
    owner: meta.owner,
    filesystems: meta.filesystems ?? [],
    lans: Object.fromEntries((meta.lans ?? []).map((l) => [l.name, lanAddress(l.octet, meta.octet)])),
  };
}

export function isHostRunning(name: string): boolean {
  return !!livePid(pidFile(name));
}

/** The host as it is now, or undefined if it was never created (or purged). */
export function getHost(name: string): Host | undefined {
  const meta = readMeta(checkHostName(name));
  if (!meta || !existsSync(join(rootDir(name), 'etc/ssh/ssh_host_ed25519_key.pub'))) return undefined;
  return hostInfo(meta);
}

// ---- files inside a host's root, written from the machine ---------------------------------------

/**
 * Write a file inside a host's root filesystem without following links out of it: a host (or a snapshot of
 * one) may hold a symlink such as etc/hostname -> /etc/shadow, and root on the machine would follow it.
 */
function writeInRoot(root: string, relPath: string, content: string, mode = 0o644, owner?: { uid: number; gid: number }): void {
  const target = join(root, relPath);
  const parent = dirname(target);
  mkdirSync(parent, { recursive: true });
  const realRoot = realpathSync(root);
  const realParent = realpathSync(parent);
  if (realParent !== realRoot && !realParent.startsWith(`${realRoot}/`)) {
    throw new OpsError(`refusing to write ${relPath} in ${root}: ${dirname(relPath)} leads out of the host's root (symlink)`);
  }
  try {
    if (lstatSync(target).isSymbolicLink() || !lstatSync(target).isFile()) unlinkSync(target);
  } catch {
    /* does not exist */
  }
  writeFileSync(target, content, { mode, flag: 'w' });
  if (owner) chownSync(target, owner.uid, owner.gid);
}

function userIds(root: string, user: string): { uid: number; gid: number } {
  const line = readFileSync(join(root, 'etc/passwd'), 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  if (!line) throw new OpsError(`user ${user} missing in ${root}/etc/passwd`, 'rebuild the root filesystem: npm run hosts -- build --force');
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/** Delete a host's root filesystem, but never through a mount (a bind-mounted /dev would go with it). */
async function removeTree(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)));
  if (mounts.length) {
    throw new OpsError(`${dir} still has mounts: ${mounts.join(', ')}`, `unmount them first: umount -R ${quote(dir)}`);
  }
  // rm is faster than fs.rmSync on big trees, and --one-file-system is a second guard against crossing a mount.
  await run('rm', ['-rf', '--one-file-system', dir], { timeoutMs: 10 * 60_000 });
}

// ---- network -------------------------------------------------------------------------------------

async function netnsExists(ns: string): Promise<boolean> {
  return existsSync(join('/run/netns', ns));
}

async function linkExists(link: string): Promise<boolean> {
  return (await run('ip', ['link', 'show', 'dev', link], { allowFailure: true })).code === 0;
}

/** Networks the machine already uses that are not ours (10.N.x.x on any other interface): never taken. */
async function foreignOctets(): Promise<Set<number>> {
  const used = new Set<number>();
  const out = (await run('ip', ['-4', '-o', 'route', 'show', 'table', 'all'])).stdout + (await run('ip', ['-4', '-o', 'addr', 'show'])).stdout;
  for (const line of out.split('\n')) {
    const m = /\b10\.(\d{1,3})\.\d{1,3}\.\d{1,3}/.exec(line);
    if (!m) continue;
    const octet = Number(m[1]);
    if (!line.includes(` ${vethName(octet)}`) && !line.includes(` dev lo`)) used.add(octet);
  }
  return used;
}

/**
 * Claim a reservation (an atomic mkdir, then its owner file): true when claimed now, else who holds it ('' while
 * its owner file is being written, or left empty by a crash).
 */
function claim(dir: string, me: string): true | string {
  try {
    mkdirSync(dir);
    writeFileSync(join(dir, 'owner'), me);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  try {
    return readFileSync(join(dir, 'owner'), 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * Reserve 10.<octet>.0.0/24 for `name`: an atomic mkdir in the machine-wide networks dir, so two test processes
 * (or two labs) never get the same network. A reservation older than a minute is taken over when it is left
 * over: no link (a crash before the network was set up), or a host of this lab that is not running and whose
 * host lock nobody holds (a killed test run, a restarted machine); its namespace and link are removed first.
 */
async function reserveOctet(name: string, wanted?: number): Promise<number> {
  mkdirSync(NETWORKS_DIR, { recursive: true });
  const foreign = await foreignOctets();
  foreign.add(Number(SERVICES_ADDRESS.split('.')[1]));
  const me = reservationOwner(name);
  const candidates = wanted !== undefined ? [wanted] : Array.from({ length: LAST_OCTET - FIRST_AUTO_OCTET + 1 }, (_, i) => FIRST_AUTO_OCTET + i);
  for (const octet of candidates) {
    if (foreign.has(octet)) {
      if (wanted !== undefined) throw new OpsError(`10.${octet}.0.0/24 is already used on this machine (not by a test host)`, 'pick another octet, or free that network');
      continue;
    }
    const dir = octetDir(octet);
    const owner = claim(dir, me);
    if (owner === true) {
      if (!(await linkExists(vethName(octet)))) return octet;
      // Its link exists without a reservation (left by a crash before the reservation was made): not free.
      rmSync(dir, { recursive: true, force: true });
      if (wanted !== undefined) throw new OpsError(`10.${octet}.0.0/24 is in use (link ${vethName(octet)} exists)`, 'npm run hosts -- status; npm run hosts -- down --all removes leftovers');
      continue;
    }
    if (owner === me) return octet;
    let age = 0;
    try {
      age = Date.now() - lstatSync(dir).mtimeMs;
    } catch {
      continue;
    }
    if (age > 60_000 && !(await linkExists(vethName(octet)))) {
      writeFileSync(join(dir, 'owner'), me);
      return octet;
    }
    // A host of this lab that is not running and that nobody is starting or stopping (its processes died with
    // a killed test run, or the machine restarted): its network is left over. Clear it and take the network.
    if (age > 60_000 && dirname(owner) === paths.hostsDir) {
      const holder = basename(owner);
      if (!isHostRunning(holder) && !lockHolder(`host-${holder}`)) {
        await tearDownNetwork(holder, octet);
        writeFileSync(join(dir, 'owner'), me);
        return octet;
      }
    }
    if (wanted !== undefined) {
      throw new OpsError(`10.${octet}.0.0/24 is taken by test host ${owner || '?'}`, `take it down first (npm run hosts -- down NAME), or pick another octet`);
    }
  }
  throw new OpsError(`no free test network left (10.${FIRST_AUTO_OCTET}-${LAST_OCTET}.0.0/24 all taken)`, 'take hosts down: npm run hosts -- status; npm run hosts -- down --all');
}

function releaseOctet(name: string, octet: number): void {
  const dir = octetDir(octet);
  try {
    if (readFileSync(join(dir, 'owner'), 'utf8').trim() !== reservationOwner(name)) return;
  } catch {
    return;
  }
  rmSync(dir, { recursive: true, force: true });
}

/**
 * The LAN's bridge, in a namespace of its own (made on first use): its octet L (10.228.L.0/24), reserved by
 * atomic mkdir; a reservation whose namespace is gone (a crash) is taken over.
 */
async function ensureLan(lan: string): Promise<number> {
  checkHostName(lan);
  return withLock(
    `lan-${lan}`,
    async () => {
      const ns = lanNs(lan);
      const me = lanOwner(lan);
      mkdirSync(NETWORKS_DIR, { recursive: true });
      let octet: number | undefined;
      for (let o = 1; o <= 254 && octet === undefined; o++) {
        const dir = lanDir(o);
        const owner = claim(dir, me);
        if (owner === true || owner === me) octet = o;
        else if (owner.startsWith('lan ') && !(await netnsExists(owner.split(' ')[1]!)) && Date.now() - lstatSync(dir).mtimeMs > 60_000) {
          writeFileSync(join(dir, 'owner'), me);
          octet = o;
        }
      }
      if (octet === undefined) throw new OpsError('no free private network left (10.228.1-254.0/24 all taken)', 'take hosts down: npm run hosts -- down --all');
      // The machine must never send anything towards a LAN (its default route would take it off the machine):
      // an unreachable route makes a connection from here fail at once, as from outside a private network.
      await run('ip', ['route', 'replace', 'unreachable', `${LAN_PREFIX}.0.0/16`]);
      if (await netnsExists(ns)) return octet;
      mkdirSync(dirname(netnsRecord(ns)), { recursive: true });
      writeFileSync(netnsRecord(ns), `lan ${lan} ${octet}\n`);
      await run('ip', ['netns', 'add', ns]);
      await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      await run('ip', ['-n', ns, 'link', 'add', 'br0', 'type', 'bridge']);
      await run('ip', ['-n', ns, 'link', 'set', 'br0', 'up']);
      return octet;
    },
    { purpose: `making private network ${lan}` },
  );
}

/** Remove a LAN nobody is on any more (its last host's link went with that host's namespace). */
async function dropLanIfUnused(lan: string, octet: number): Promise<void> {
  const ns = lanNs(lan);
  if (await netnsExists(ns)) {
    const links = await run('ip', ['-n', ns, '-o', 'link', 'show', 'type', 'veth'], { allowFailure: true });
    if (links.stdout.trim()) return;
    await run('ip', ['netns', 'del', ns], { allowFailure: true });
  }
  rmSync(netnsRecord(ns), { force: true });
  try {
    if (readFileSync(join(lanDir(octet), 'owner'), 'utf8').trim() === lanOwner(lan)) rmSync(lanDir(octet), { recursive: true, force: true });
  } catch {
    /* not reserved any more */
  }
  // The last LAN on the machine (of any lab): its unreachable route goes too.
  if (!readdirSync(NETWORKS_DIR).some((d) => d.startsWith('lan-'))) await run('ip', ['route', 'del', 'unreachable', `${LAN_PREFIX}.0.0/16`], { allowFailure: true });
}

/** Join the host's namespace to each LAN: a veth from the LAN's bridge, eth1, eth2... inside, address 10.L.0.N. */
async function joinLans(name: string, octet: number, lans: { name: string; octet: number }[]): Promise<void> {
  for (const [i, lan] of lans.entries()) {
    const ns = lanNs(lan.name);
    const dev = `eth${i + 1}`;
    await run('ip', ['-n', ns, 'link', 'add', `h${octet}`, 'type', 'veth', 'peer', 'name', dev, 'netns', netnsName(name)]);
    await run('ip', ['-n', ns, 'link', 'set', `h${octet}`, 'master', 'br0']);
    await run('ip', ['-n', ns, 'link', 'set', `h${octet}`, 'up']);
    await run('ip', ['-n', netnsName(name), 'addr', 'add', `${lanAddress(lan.octet, octet)}/24`, 'dev', dev]);
    await run('ip', ['-n', netnsName(name), 'link', 'set', dev, 'up']);
  }
}

async function setUpNetwork(name: string, octet: number): Promise<void> {
  const ns = netnsName(name);
  const veth = vethName(octet);
  const gw = gatewayAddress(octet);
  mkdirSync(dirname(netnsRecord(ns)), { recursive: true });
  writeFileSync(netnsRecord(ns), `${name} ${octet}\n`);
  await run('ip', ['netns', 'add', ns]);
  // The inside end is created in the namespace directly, so it can be called eth0 like on a VM.
  await run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await run('ip', ['addr', 'add', `${gw}/24`, 'dev', veth]);
  await run('ip', ['link', 'set', veth, 'up']);
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  await run('ip', ['-n', ns, 'addr', 'add', `${hostAddress(octet)}/24`, 'dev', 'eth0']);
  await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  await run('ip', ['-n', ns, 'route', 'add', `${SERVICES_ADDRESS}/32`, 'via', gw]);
}

/** Kill whatever still runs in the host's namespace, then delete the namespace and the machine-side veth. */
async function tearDownNetwork(name: string, octet: number | undefined): Promise<void> {
  const ns = netnsName(name);
  if (await netnsExists(ns)) {
    for (let i = 0; i < 50; i++) {
      const pids = (await run('ip', ['netns', 'pids', ns], { allowFailure: true })).stdout.split(/\s+/).filter(Boolean).map(Number);
      if (!pids.length) break;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await sleep(100);
    }
    await run('ip', ['netns', 'del', ns], { allowFailure: true }); // deletes both veth ends
  }
  if (octet !== undefined && (await linkExists(vethName(octet)))) await run('ip', ['link', 'del', vethName(octet)], { allowFailure: true });
  rmSync(netnsRecord(ns), { force: true });
}

// ---- small filesystems ------------------------------------------------------------------------------

function isMountPoint(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4]?.replace(/\\040/g, ' ') === dir);
}

export function checkFilesystems(list: SmallFilesystem[]): SmallFilesystem[] {
  for (const f of list) {
    if (!/^\/[a-z0-9_][a-z0-9_./-]*$/i.test(f.path) || f.path.includes('..') || f.path === '/')
      throw new OpsError(`invalid filesystem path ${JSON.stringify(f.path)}`, 'an absolute directory of the host other than /, e.g. /srv');
    if (!Number.isInteger(f.sizeMb) || f.sizeMb < 1 || f.sizeMb > 65536) throw new OpsError(`invalid size for ${f.path}: ${f.sizeMb} MB`, 'a whole number of MB, 1-65536');
    if (f.inodes !== undefined && !(Number.isInteger(f.inodes) && f.inodes >= 16)) throw new OpsError(`invalid inode limit for ${f.path}: ${f.inodes}`, 'a whole number, 16 or more');
  }
  return list;
}

/**
 * Mount each small filesystem on the machine (a tmpfs with its size and inode limits), seeded with the root
 * filesystem's content there, unless it is mounted already (a restarted host keeps its content).
 */
async function mountFilesystems(meta: HostMeta, root: string): Promise<void> {
  for (const f of meta.filesystems ?? []) {
    const dir = filesystemDir(meta.name, f.path);
    if (isMountPoint(dir)) continue;
    mkdirSync(dir, { recursive: true });
    mkdirSync(join(root, f.path), { recursive: true });
    await run('mount', ['-t', 'tmpfs', '-o', `size=${f.sizeMb}m${f.inodes ? `,nr_inodes=${f.inodes}` : ''},mode=0755`, `ops-${meta.name}`, dir]);
    await run('cp', ['-a', '--', `${join(root, f.path)}/.`, `${dir}/`], { timeoutMs: 5 * 60_000 });
  }
}

async function unmountFilesystems(name: string): Promise<void> {
  const base = join(paths.hostsDir, `${name}.fs`);
  if (!existsSync(base)) return;
  for (const d of readdirSync(base)) {
    const dir = join(base, d);
    if (isMountPoint(dir)) await run('umount', ['-l', dir], { allowFailure: true });
  }
  rmSync(base, { recursive: true, force: true });
}

/**
 * Leave only `free` space and inodes on a host's small filesystem (a disk nearly full, without writing a
 * filler: tmpfs is resized in place to what it holds plus `free`); `free` undefined puts its limits back.
 * Works on a running host: the next write past the limit fails with ENOSPC, as on a full disk.
 */
export async function setFreeSpace(name: string, path: string, free?: { mb?: number; inodes?: number }): Promise<void> {
  const meta = readMeta(checkHostName(name));
  const fs = meta?.filesystems?.find((f) => f.path === path);
  const dir = filesystemDir(name, path);
  if (!fs || !isMountPoint(dir)) throw new OpsError(`test host ${name} has no small filesystem at ${path}`, 'give it one: upHost({ filesystems: [{ path, sizeMb }] })');
  let options = `size=${fs.sizeMb}m${fs.inodes ? `,nr_inodes=${fs.inodes}` : ''}`;
  if (free) {
    const usedKb = Number((await run('df', ['-Pk', dir])).stdout.split('\n')[1]!.split(/\s+/)[2]);
    const usedInodes = Number((await run('df', ['-Pi', dir])).stdout.split('\n')[1]!.split(/\s+/)[2]);
    options = [free.mb !== undefined && `size=${usedKb + Math.round(free.mb * 1024)}k`, free.inodes !== undefined && `nr_inodes=${usedInodes + free.inodes}`].filter(Boolean).join(',');
  }
  if (options) await run('mount', ['-o', `remount,${options}`, dir]);
}

/**
 * Each systemd host takes about ten inotify instances of root's (systemd, journald, logind...): the kernel's
 * default of 128 per user stops the 13th or so host at boot ("Failed to allocate manager object: Too many open
 * files"), and the benchmark runs fifteen beside other people's. Raised to 1024 when lower (a limit, not a
 * resource: nothing is used until a host asks).
 */
function roomForInotify(): void {
  const file = '/proc/sys/fs/inotify/max_user_instances';
  try {
    if (Number(readFileSync(file, 'utf8').trim()) < 1024) writeFileSync(file, '1024\n');
  } catch {
    // not writable (a container without that sysctl): hosts beyond the limit fail to boot, saying so in their log
  }
}

/** systemd-nspawn arguments (or chroot mounts) that put each small filesystem at its path in the host. */
const bindArgs = (meta: HostMeta) => (meta.filesystems ?? []).map((f) => `--bind=${filesystemDir(meta.name, f.path)}:${f.path}`);
const bindMounts = (meta: HostMeta, root: string) => (meta.filesystems ?? []).map((f) => `mount --bind ${quote(filesystemDir(meta.name, f.path))} ${quote(join(root, f.path))}`);

// ---- starting and stopping -----------------------------------------------------------------------

function startHost(meta: HostMeta): void {
  const root = rootDir(meta.name);
  const ns = netnsName(meta.name);
  const log = hostLog(meta.name);
  writeFileSync(log, `--- ${meta.name} (${meta.init}, ${meta.suite}) starting\n`, { flag: 'a' });
  let record;
  if (meta.init === 'systemd') {
    roomForInotify();
    // --keep-unit --register=no: no D-Bus/machined needed on the machine. The other flags keep the machine's
    // resolv.conf, timezone and journal out of the host (and the host's journal out of the machine).
    record = spawnDaemon(
      'systemd-nspawn',
      [
        '--quiet',
        `--directory=${root}`,
        `--machine=${meta.name}`,
        `--network-namespace-path=/run/netns/${ns}`,
        '--register=no',
        '--keep-unit',
        '--boot',
        '--console=passive',
        '--resolv-conf=off',
        '--timezone=off',
        '--link-journal=no',
        ...bindArgs(meta),
      ],
      log,
    );
  } else {
    // sshd as PID 1 of fresh pid/mount/uts/ipc namespaces: the mounts vanish with the host, nothing to unmount.
    const r = quote(root);
    const script = [
      'set -e',
      `mount -t proc proc ${r}/proc`,
      `mount -t sysfs -o ro sysfs ${r}/sys`,
      `mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts ${r}/dev/pts`,
      `mount -t tmpfs -o mode=1777 tmpfs ${r}/dev/shm`,
      `mount -t tmpfs -o mode=755 tmpfs ${r}/run`,
      `mkdir -p ${r}/run/sshd ${r}/run/lock`,
      ...bindMounts(meta, root),
      `hostname ${quote(meta.name)}`,
      `exec chroot ${r} /usr/sbin/sshd -D -e`,
    ].join('\n');
    record = spawnDaemon('ip', ['netns', 'exec', ns, 'unshare', '--mount', '--pid', '--uts', '--ipc', '--fork', '--kill-child', 'sh', '-c', script], log);
  }
  writePidFile(pidFile(meta.name), record);
}

/** Stop a host's machine (its init and everything in it), leaving its network and filesystems. */
async function stopMachine(name: string, meta: HostMeta | undefined): Promise<void> {
  const record = readPidFile(pidFile(name));
  if (isAlive(record)) {
    // nspawn turns SIGTERM into a clean poweroff of the booted system. `unshare` ignores SIGTERM while it
    // waits; SIGKILL makes --kill-child take the whole pid namespace down.
    if (meta?.init === 'systemd') await stopProcess(record, 'SIGTERM', 20_000);
    else await stopProcess(record, 'SIGKILL', 5_000);
  }
  rmSync(pidFile(name), { force: true });
  // systemd-nspawn's image lock next to the root dir; it stays behind when nspawn was killed.
  rmSync(join(paths.hostsDir, `.#${name}.lck`), { force: true });
}

async function stopHost(name: string, meta: HostMeta | undefined): Promise<void> {
  await stopMachine(name, meta);
  await tearDownNetwork(name, meta?.octet);
  for (const lan of meta?.lans ?? []) await dropLanIfUnused(lan.name, lan.octet);
}

function tcpOpen(address: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port, timeout: timeoutMs });
    socket.on('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', () => resolve(false));
  });
}

// ---- root filesystem of a new host ---------------------------------------------------------------

async function extract(tarball: string, root: string): Promise<void> {
  mkdirSync(root, { recursive: true, mode: 0o755 });
  await run('tar', ['--numeric-owner', '--xattrs', "--xattrs-include=*", '--zstd', '-xpf', tarball, '-C', root], { timeoutMs: 5 * 60_000 });
}

/** Own SSH host keys and machine-id: a host made from a snapshot must not share them with its source. */
async function newIdentity(name: string, root: string): Promise<void> {
  const sshDir = join(root, 'etc/ssh');
  for (const f of readdirSync(sshDir)) if (f.startsWith('ssh_host_')) rmSync(join(sshDir, f), { force: true });
  await Promise.all(
    (
      [
        ['ed25519', []],
        ['ecdsa', []],
        ['rsa', ['-b', '3072']],
      ] as const
    ).map(([type, extra]) => run('ssh-keygen', ['-q', '-t', type, ...extra, '-N', '', '-C', `root@${name}`, '-f', join(sshDir, `ssh_host_${type}_key`)])),
  );
  writeInRoot(root, 'etc/machine-id', `${randomBytes(16).toString('hex')}\n`, 0o444);
}

/** What is (re)written at every start: name, no DNS, the apt proxy, our key for `deploy`. */
async function configure(meta: HostMeta, root: string): Promise<void> {
  const name = meta.name;
  writeInRoot(root, 'etc/hostname', `${name}\n`);
  writeInRoot(root, 'etc/hosts', `127.0.0.1\tlocalhost\n127.0.1.1\t${name}\n::1\tlocalhost ip6-localhost ip6-loopback\n`);
  writeInRoot(root, 'etc/resolv.conf', '');
  writeInRoot(root, 'etc/apt/apt.conf.d/01ops-testhost-proxy', `Acquire::http::Proxy "http://${SERVICES_ADDRESS}:${APT_PROXY_PORT}";\n`);
  const ids = userIds(root, 'deploy');
  const sshDir = join(root, 'home/deploy/.ssh');
  mkdirSync(sshDir, { recursive: true, mode: 0o700 });
  chownSync(sshDir, ids.uid, ids.gid);
  writeInRoot(root, 'home/deploy/.ssh/authorized_keys', readFileSync(`${paths.identityFile}.pub`, 'utf8'), 0o600, ids);
}

// ---- public API ------------------------------------------------------------------------------------

/**
 * Bring a host up (or return it if it already runs with the same settings). A stopped host keeps its root
 * filesystem like a VM keeps its disk: `upHost` again boots it as it was (`fresh: true` starts clean).
 */
export async function upHost(options: UpHostOptions): Promise<Host> {
  const name = checkHostName(options.name);
  requireRoot();
  const init: Init = options.init ?? 'systemd';
  if (init !== 'systemd' && init !== 'chroot') throw new OpsError(`unknown init "${init}"`, 'use systemd or chroot');
  if (options.octet !== undefined && !(Number.isInteger(options.octet) && options.octet >= 1 && options.octet <= LAST_OCTET && options.octet !== 230)) {
    throw new OpsError(`invalid octet ${options.octet}`, `use 1-${LAST_OCTET} except 230 (the services network)`);
  }
  let suite: Suite;
  let origin: string;
  let tarball: string;
  if (options.from) {
    const snap = readSnapshotMeta(checkSnapshotName(options.from));
    suite = snap.suite;
    origin = `snapshot:${options.from}`;
    tarball = snapshotFile(options.from);
  } else {
    suite = checkSuite(options.suite ?? 'bookworm');
    tarball = rootfsTarball(suite);
    origin = `rootfs:${basename(tarball)}`;
  }
  await ensureLab({ suites: options.from ? [] : [suite] });

  const filesystems = options.filesystems && checkFilesystems(options.filesystems);
  return withLock(`host-${name}`, async () => {
    const old = readMeta(name);
    const otherFilesystems = filesystems !== undefined && JSON.stringify(filesystems) !== JSON.stringify(old?.filesystems ?? []);
    const otherLans = options.lans !== undefined && JSON.stringify(options.lans) !== JSON.stringify((old?.lans ?? []).map((l) => l.name));
    if (isHostRunning(name) && old) {
      if (options.fresh || old.init !== init || old.origin !== origin || (options.octet !== undefined && options.octet !== old.octet) || otherFilesystems || otherLans) {
        throw new OpsError(`test host "${name}" is already up with other settings (${old.init}, ${old.origin}, 10.${old.octet}.0.2)`, `take it down first: npm run hosts -- down ${name}`);
      }
      return hostInfo(old);
    }
    // Not running: clear what a crashed run may have left (processes in its netns, the netns, the veth).
    await stopHost(name, old);
    const root = rootDir(name);
    const reuse = !options.fresh && old && old.origin === origin && existsSync(join(root, 'etc/ssh/ssh_host_ed25519_key.pub'));
    // Small filesystems hold what the root held there: a new root, or other limits, start them again.
    if (!reuse || otherFilesystems) await unmountFilesystems(name);
    if (!reuse) {
      await removeTree(root);
      rmSync(metaFile(name), { force: true });
      await extract(tarball, root);
      await newIdentity(name, root);
    }
    const octet = await reserveOctet(name, options.octet ?? (reuse ? old!.octet : undefined)).catch(async (e) => {
      if (options.octet === undefined && reuse) return reserveOctet(name); // its old network is gone: take another
      throw e;
    });
    const lanNames = options.lans ?? (reuse ? old?.lans?.map((l) => l.name) : undefined) ?? [];
    const lans: { name: string; octet: number }[] = [];
    for (const lan of lanNames) lans.push({ name: lan, octet: await ensureLan(lan) });
    const meta: HostMeta = { name, octet, suite, init, origin, owner: options.owner ?? process.env.OPS_TESTHOSTS_OWNER ?? old?.owner, filesystems: filesystems ?? (reuse ? old?.filesystems : undefined), lans };
    if (!meta.owner) delete meta.owner;
    if (!meta.filesystems?.length) delete meta.filesystems;
    if (!meta.lans?.length) delete meta.lans;
    writeFileSync(metaFile(name), `${JSON.stringify(meta, null, 2)}\n`);
    await configure(meta, root);
    const info = hostInfo(meta);
    writeFileSync(info.knownHostsFile, `${info.address} ${info.hostKey}\n`);
    try {
      await mountFilesystems(meta, root);
      await setUpNetwork(name, octet);
      await joinLans(name, octet, lans);
      startHost(meta);
      try {
        await waitUntilReady(info);
      } catch (e) {
        // A booted machine whose sshd never came (seen once in CI: 3 machines booting beside busy test files, the
        // log silent for 90 s, where a boot takes ~3 s) is started once more, what it was doing said first; a
        // machine that stopped by itself, or fails again, fails the run.
        if (!(e instanceof BootTimeout)) throw e;
        process.stderr.write(`[lab] ${e.message.split('\n')[0]}; starting it again\n${e.diagnosis}\n`);
        writeFileSync(hostLog(name), `--- ${name}: no SSH within ${BOOT_WAIT_S} s, started again\n${e.diagnosis}\n`, { flag: 'a' });
        await stopMachine(name, meta); // its network stays as it is
        startHost(meta);
        await waitUntilReady(info);
      }
    } catch (e) {
      await stopHost(name, meta).catch(() => {});
      throw e;
    }
    return info;
  }, { purpose: `starting test host ${name}` });
}

/** Seconds a starting machine has to accept SSH (a boot takes ~3 s here; a busy CI machine, many times that). */
const BOOT_WAIT_S = 90;

/** A machine still running that did not accept SSH in BOOT_WAIT_S, with what its init was doing (`diagnosis`). */
class BootTimeout extends OpsError {
  constructor(message: string, hint: string, readonly diagnosis: string) {
    super(message, hint);
  }
}

/**
 * What a booted (systemd) machine is doing, read from inside through nsenter into its init (nspawn's child; the
 * machine runs --console=passive and --register=no, so its boot messages and machinectl are not at hand): its state,
 * the jobs it waits on, failed units and ssh's status. '' when it cannot be read. Bounded to 20 s.
 */
async function bootDiagnosis(pid: number): Promise<string> {
  let init: string | undefined;
  try {
    init = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0];
  } catch {
    return '';
  }
  if (!init) return '';
  const script = 'systemctl is-system-running; systemctl list-jobs --no-pager | head -20; systemctl --failed --no-pager | head -20; systemctl status ssh --no-pager -n 10 2>&1 | tail -15';
  const r = await run('nsenter', ['-t', init, '-a', 'sh', '-c', script], { allowFailure: true, timeoutMs: 20_000 }).catch((e: Error) => ({ stdout: '', stderr: e.message }));
  return `${r.stdout}${r.stderr}`.trim();
}

async function waitUntilReady(host: Host): Promise<void> {
  const record = readPidFile(pidFile(host.name));
  const log = hostLog(host.name);
  const deadline = Date.now() + BOOT_WAIT_S * 1000;
  let last: RunResult | undefined;
  for (;;) {
    if (!isAlive(record)) throw new OpsError(`test host "${host.name}" stopped while starting\n${logTail(log)}`, `full log: ${log}`);
    if (await tcpOpen(host.address, 22)) {
      last = await sshRun(host, 'true', { allowFailure: true, timeoutMs: 10_000 });
      if (last.code === 0) break;
    }
    if (Date.now() > deadline) {
      const message = `test host "${host.name}" did not accept SSH within ${BOOT_WAIT_S} s${last ? `\n${last.stderr.trim()}` : ''}\n${logTail(log)}`;
      if (host.init !== 'systemd' || !record) throw new OpsError(message, `full log: ${log}`);
      const diagnosis = await bootDiagnosis(record.pid);
      throw new BootTimeout(`${message}${diagnosis ? `\ninside the machine:\n${diagnosis}` : ''}`, `full log: ${log}`, diagnosis);
    }
    await sleep(150);
  }
  if (host.init === 'systemd') {
    // Let the boot finish so tests do not race units still starting ("degraded" is fine, it is reported).
    await sshRun(host, 'timeout 60 systemctl is-system-running --wait >/dev/null 2>&1 || true', { timeoutMs: 70_000 });
  }
}

/**
 * Reboot a running systemd host for real, as `systemctl reboot` inside does on a VM: its services stop as systemd
 * stops them, /run (a tmpfs) and /tmp (Debian's tmpfiles.d `D /tmp`) start empty, units enabled at boot start. nspawn
 * ends when its machine asks for a reboot (exit 133; no machined here to start it again), so the machine is booted
 * once more on the same root filesystem, network and small filesystems. The reboot is asked for from a login of its
 * own (an engineer's `sudo systemctl reboot`): the caller's other sessions to the host are cut as a reboot cuts them.
 * Resolves once the new boot accepts SSH and finished booting (as upHost); rejects if the host is not a running
 * systemd host, or did not stop within 60 s of the request (it is then left as it was) or come back.
 */
export async function rebootHost(name: string): Promise<Host> {
  checkHostName(name);
  requireRoot();
  return withLock(`host-${name}`, async () => {
    const meta = readMeta(name);
    const record = readPidFile(pidFile(name));
    if (!meta || !isAlive(record)) throw new OpsError(`test host "${name}" is not running`, `start it: npm run hosts -- up ${name}`);
    if (meta.init !== 'systemd') throw new OpsError(`test host "${name}" runs sshd as PID 1 (init chroot): it cannot reboot`, 'use a systemd host');
    const info = hostInfo(meta);
    writeFileSync(hostLog(name), `--- ${name}: reboot asked\n`, { flag: 'a' });
    // The session ends with the machine (ssh then fails: not an error here); --no-block lets it say so first.
    await sshRun(info, 'sudo systemctl reboot --no-block', { allowFailure: true, timeoutMs: 30_000 });
    if (!(await waitFor(() => !isAlive(record), 60_000, 100))) throw new OpsError(`test host "${name}" did not stop within 60 s of systemctl reboot`, `see its log: ${hostLog(name)}`);
    rmSync(pidFile(name), { force: true });
    rmSync(join(paths.hostsDir, `.#${name}.lck`), { force: true });
    startHost(meta);
    await waitUntilReady(info);
    return info;
  }, { purpose: `rebooting test host ${name}` });
}

/** Stop a host (processes by PID, its netns and veth). `purge` also deletes its root filesystem. Idempotent. */
export async function downHost(name: string, options: { purge?: boolean } = {}): Promise<void> {
  checkHostName(name);
  requireRoot();
  await withLock(`host-${name}`, async () => {
    const meta = readMeta(name);
    await stopHost(name, meta);
    if (meta) releaseOctet(name, meta.octet);
    if (options.purge) {
      await unmountFilesystems(name);
      await removeTree(rootDir(name));
      rmSync(metaFile(name), { force: true });
      rmSync(knownHostsFile(name), { force: true });
      rmSync(hostLog(name), { force: true });
    }
  }, { purpose: `stopping test host ${name}` });
}

export interface HostStatus {
  name: string;
  running: boolean;
  pid?: number;
  address: string;
  octet: number;
  suite: Suite;
  init: Init;
  origin: string;
  owner?: string;
}

export function listHosts(): HostStatus[] {
  if (!existsSync(paths.hostsDir)) return [];
  return readdirSync(paths.hostsDir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => readMeta(f.slice(0, -5)))
    .filter((m): m is HostMeta => !!m)
    .map((m) => {
      const record = livePid(pidFile(m.name));
      return { name: m.name, running: !!record, pid: record?.pid, address: hostAddress(m.octet), octet: m.octet, suite: m.suite, init: m.init, origin: m.origin, owner: m.owner };
    });
}

/**
 * Take every host down (only `owner`'s if given). Without an owner, also sweep what a crash can leave behind,
 * and only what this lab recorded as its own: network namespaces (run dir) and network reservations.
 */
export async function downHosts(options: { purge?: boolean; owner?: string } = {}): Promise<string[]> {
  const hosts = listHosts().filter((h) => options.owner === undefined || h.owner === options.owner);
  for (const h of hosts) await downHost(h.name, { purge: options.purge });
  if (options.owner !== undefined) return hosts.map((h) => h.name);
  const records = join(paths.run, 'netns');
  for (const ns of existsSync(records) ? readdirSync(records) : []) {
    const fields = readFileSync(join(records, ns), 'utf8').trim().split(' ');
    if (fields[0] === 'lan') {
      await dropLanIfUnused(fields[1]!, Number(fields[2]));
      continue;
    }
    const [name, octet] = fields;
    if (name && !isHostRunning(name)) await tearDownNetwork(name, octet ? Number(octet) : undefined);
    else if (!name) rmSync(join(records, ns), { force: true });
  }
  for (const o of existsSync(NETWORKS_DIR) ? readdirSync(NETWORKS_DIR) : []) {
    let owner = '';
    try {
      owner = readFileSync(join(NETWORKS_DIR, o, 'owner'), 'utf8').trim();
    } catch {
      continue;
    }
    if (o.startsWith('lan-')) {
      // A LAN of this lab whose namespace is gone (a crash): its reservation goes too.
      const [, ns = '', path = ''] = owner.split(' ');
      if (dirname(path) === join(paths.state, 'lans') && !(await netnsExists(ns))) rmSync(join(NETWORKS_DIR, o), { recursive: true, force: true });
      continue;
    }
    if (dirname(owner) !== paths.hostsDir) continue; // another lab's
    const name = basename(owner);
    if (!isHostRunning(name)) {
      await tearDownNetwork(name, Number(o));
      rmSync(join(NETWORKS_DIR, o), { recursive: true, force: true });
    }
  }
  return hosts.map((h) => h.name);
}

// ---- snapshots ---------------------------------------------------------------------------------------

interface SnapshotMeta {
  name: string;
  suite: Suite;
  source: string;
  init: Init;
}

const snapshotFile = (name: string) => join(paths.snapshotsDir, `${name}.tar.zst`);
const snapshotMetaFile = (name: string) => join(paths.snapshotsDir, `${name}.json`);

function readSnapshotMeta(name: string): SnapshotMeta {
  try {
    if (!existsSync(snapshotFile(name))) throw new Error('missing');
    return JSON.parse(readFileSync(snapshotMetaFile(name), 'utf8')) as SnapshotMeta;
  } catch {
    throw new OpsError(`no snapshot named "${name}"`, 'list them with `npm run hosts -- status`; make one with `npm run hosts -- snapshot HOST NAME`');
  }
}

/**
 * Save a host's root filesystem as a snapshot (tar.zst in the cache) that later hosts start from (`upHost({ from })`).
 * Host keys and machine-id are left out (every host gets its own). Snapshot a quiet host: files being written
 * while tar reads them (a database, dpkg) are captured as they are.
 */
export async function snapshotHost(name: string, snapshotName: string): Promise<string> {
  checkHostName(name);
  checkSnapshotName(snapshotName);
  requireRoot();
  const meta = readMeta(name);
  if (!meta || !existsSync(rootDir(name))) throw new OpsError(`no test host named "${name}"`, 'bring it up first: npm run hosts -- up NAME');
  mkdirSync(paths.snapshotsDir, { recursive: true });
  const file = snapshotFile(snapshotName);
  const partial = `${file}.partial-${process.pid}`;
  try {
    await run(
      'tar',
      [
        '--numeric-owner',
        '--xattrs',
        '--xattrs-include=*',
        '-I',
        'zstd -T0 -3',
        '--exclude=./etc/ssh/ssh_host_*',
        '--exclude=./etc/machine-id',
        '--exclude=./var/cache/apt/archives/*.deb',
        '-cpf',
        partial,
        '-C',
        rootDir(name),
        '.',
      ],
      { timeoutMs: 10 * 60_000 },
    );
    renameSync(partial, file);
  } finally {
    rmSync(partial, { force: true });
  }
  const snap: SnapshotMeta = { name: snapshotName, suite: meta.suite, source: name, init: meta.init };
  writeFileSync(snapshotMetaFile(snapshotName), `${JSON.stringify(snap, null, 2)}\n`);
  return file;
}

export function listSnapshots(): SnapshotMeta[] {
  if (!existsSync(paths.snapshotsDir)) return [];
  return readdirSync(paths.snapshotsDir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => {
      try {
        return readSnapshotMeta(f.slice(0, -5));
      } catch {
        return undefined;
      }
    })
    .filter((s): s is SnapshotMeta => !!s);
}

export function deleteSnapshot(name: string): void {
  checkSnapshotName(name);
  rmSync(snapshotFile(name), { force: true });
  rmSync(snapshotMetaFile(name), { force: true });
}

// ---- running commands on a host (tests, the CLI) -------------------------------------------------

/** Arguments for the OpenSSH client that trust only the host's pinned key and log in as `deploy`. */
export function sshArgs(host: Host): string[] {
  return [
    '-F',
    '/dev/null',
    '-i',
    host.identityFile,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `UserKnownHostsFile=${host.knownHostsFile}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'HostKeyAlgorithms=ssh-ed25519',
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=5',
    '-o',
    'LogLevel=ERROR',
    `${host.user}@${host.address}`,
  ];
}

/** Run a shell command on a host as `deploy` (use `sudo` inside for root). */
export function sshRun(host: Host, command: string, options: { input?: string | Buffer; timeoutMs?: number; allowFailure?: boolean } = {}): Promise<RunResult> {
  return run('ssh', [...sshArgs(host), command], { timeoutMs: options.timeoutMs ?? 120_000, input: options.input, allowFailure: options.allowFailure, what: `ssh ${host.name} ${JSON.stringify(command.length > 80 ? `${command.slice(0, 77)}...` : command)}` });
}


