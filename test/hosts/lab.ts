// The lab itself: checks the machine, builds and caches the Debian root filesystem the hosts start
// from, puts the services address on `lo`, runs the apt proxy.
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { delimiter, join } from 'node:path';
import { OpsError } from '../../core/errors.ts';
import { ensureNpmCache, ensurePypiCache } from './caches.ts';
import { APT_PROXY_PORT, paths, SERVICES_ADDRESS } from './paths.ts';
import { isAlive, livePid, logTail, readPidFile, run, spawnDaemon, stopProcess, waitFor, withLock, writePidFile, type ProcessRecord } from './proc.ts';

export type Suite = 'bookworm' | 'bullseye' | 'trixie';
export const SUITES: readonly Suite[] = ['bookworm', 'bullseye', 'trixie'];

// What a bare Debian cloud VM has, no more: the provision action installs nginx, supervisor, node, etc.
// (and is tested doing so). dbus + systemd-sysv make `systemd-nspawn -b` boot a real systemd.
export const ROOTFS_PACKAGES = [
  'openssh-server',
  'sudo',
  'ca-certificates',
  'curl',
  'python3',
  'systemd-sysv',
  'dbus',
  'iproute2',
  'procps',
  'less',
  'passwd',
  'netbase',
];

// Run by mmdebstrap inside the new tree ($1). Identity (host keys, hostname, machine-id) is stripped so every
// host gets its own; the `deploy` login is created the way cloud-init creates the image's default user.
// apt's daily timers are disabled: a background `apt-get update` racing the provision tests is noise, not a test.
const CUSTOMIZE_HOOK = String.raw`set -e
R="$1"
rm -f "$R"/etc/ssh/ssh_host_* "$R"/etc/hostname
: > "$R"/etc/resolv.conf
: > "$R"/etc/machine-id
chroot "$R" useradd --create-home --shell /bin/bash --user-group deploy
chroot "$R" usermod -p '*' deploy
printf 'deploy ALL=(ALL:ALL) NOPASSWD: ALL\n' > "$R"/etc/sudoers.d/deploy
chmod 0440 "$R"/etc/sudoers.d/deploy
mkdir -p "$R"/etc/ssh/sshd_config.d
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\n' > "$R"/etc/ssh/sshd_config.d/10-testhost.conf
rm -f "$R"/etc/systemd/system/timers.target.wants/apt-daily.timer "$R"/etc/systemd/system/timers.target.wants/apt-daily-upgrade.timer
`;

// From Debian 13 on, a fresh install (and the cloud images) keeps apt's sources in deb822 form in
// /etc/apt/sources.list.d/debian.sources, with no /etc/apt/sources.list (Debian 13 release notes, "Deb822 style
// sources"); mmdebstrap writes a one-line sources.list, so the hook rewrites it as the installer would.
const deb822SourcesHook = (suite: Suite): string => String.raw`rm -f "$R"/etc/apt/sources.list
cat > "$R"/etc/apt/sources.list.d/debian.sources <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: ${suite} ${suite}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: ${suite}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
`;

/** The suite's customize hook: the common one, plus deb822 sources for the releases whose installer writes them. */
function customizeHook(suite: Suite): string {
  return suite === 'trixie' ? CUSTOMIZE_HOOK + deb822SourcesHook(suite) : CUSTOMIZE_HOOK;
}

function sources(suite: Suite): string[] {
  return [
    `deb http://deb.debian.org/debian ${suite} main`,
    `deb http://deb.debian.org/debian ${suite}-updates main`,
    `deb http://deb.debian.org/debian-security ${suite}-security main`,
  ];
}

/** The cached tarball's name changes whenever what goes into it changes, so a stale cache is never used. */
export function rootfsTarball(suite: Suite): string {
  const recipe = JSON.stringify({ v: 1, suite, packages: ROOTFS_PACKAGES, hook: customizeHook(suite), sources: sources(suite) });
  const hash = createHash('sha256').update(recipe).digest('hex').slice(0, 12);
  return join(paths.rootfsDir, `${suite}-${hash}.tar.zst`);
}

export function checkSuite(suite: string): Suite {
  if (!(SUITES as readonly string[]).includes(suite)) {
    throw new OpsError(`unknown Debian suite "${suite}"`, `use one of: ${SUITES.join(', ')}`);
  }
  return suite as Suite;
}

// ---- machine checks -------------------------------------------------------------------------------

/** program -> Debian package that provides it. */
const TOOLS: Record<string, string> = {
  ip: 'iproute2',
  unshare: 'util-linux',
  tar: 'tar',
  zstd: 'zstd',
  mmdebstrap: 'mmdebstrap',
  'apt-cacher-ng': 'apt-cacher-ng',
  'systemd-nspawn': 'systemd-container',
  ssh: 'openssh-client',
  'ssh-keygen': 'openssh-client',
  openssl: 'openssl',
  pebble: 'pebble',
  'pebble-challtestsrv': 'pebble',
  psql: 'postgresql-client',
  pg_isready: 'postgresql-client',
  git: 'git',
};

export function findProgram(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return file;
    } catch {
      /* next */
    }
  }
  return undefined;
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new OpsError(
      'the test hosts need root (network namespaces, chroot, systemd-nspawn)',
      'run as root, e.g. `sudo -E npm run hosts -- up` (in CI the job runs as root)',
    );
  }
}

/** Throw one error listing every missing program, with the apt command that installs them all. */
export function requireTools(programs: string[]): void {
  const missing = programs.filter((p) => !findProgram(p));
  if (!missing.length) return;
  const packages = [...new Set(missing.map((p) => TOOLS[p] ?? p))];
  throw new OpsError(
    `missing programs for the test hosts: ${missing.join(', ')}`,
    `apt-get install -y --no-install-recommends ${packages.join(' ')}   (the full list: test/hosts/debian-packages.txt)`,
  );
}

export const LAB_TOOLS = ['ip', 'unshare', 'tar', 'zstd', 'mmdebstrap', 'apt-cacher-ng', 'systemd-nspawn', 'ssh', 'ssh-keygen'];

// ---- client key -------------------------------------------------------------------------------------

/** The key pair every host's `deploy` user trusts; made once per machine. */
export async function ensureClientKey(): Promise<{ identityFile: string; publicKey: string }> {
  const file = paths.identityFile;
  if (!existsSync(file) || !existsSync(`${file}.pub`)) {
    mkdirSync(paths.state, { recursive: true, mode: 0o755 });
    rmSync(file, { force: true });
    rmSync(`${file}.pub`, { force: true });
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ops-testhosts', '-f', file]);
  }
  return { identityFile: file, publicKey: readFileSync(`${file}.pub`, 'utf8').trim() };
}

// ---- root filesystem -----------------------------------------------------------------------------

/** Build the suite's tarball unless it is cached. Safe when several processes ask at once (one builds). */
export async function ensureRootfs(suite: Suite, options: { force?: boolean; log?: (line: string) => void } = {}): Promise<string> {
  const tarball = rootfsTarball(suite);
  if (existsSync(tarball) && !options.force) return tarball;
  return withLock(`rootfs-${suite}`, async () => {
    if (existsSync(tarball) && !options.force) return tarball; // built by whoever held the lock before us
    requireTools(['mmdebstrap', 'zstd']);
    mkdirSync(paths.rootfsDir, { recursive: true });
    const partial = tarball.replace(/\.tar\.zst$/, `.partial-${process.pid}.tar.zst`);
    const log = join(paths.logsDir, `rootfs-${suite}.log`);
    mkdirSync(paths.logsDir, { recursive: true });
    options.log?.(`building the ${suite} root filesystem (about 90 s, once per machine) -> ${tarball}`);
    const started = Date.now();
    try {
      const args = ['--variant=minbase', `--include=${ROOTFS_PACKAGES.join(',')}`, `--customize-hook=${customizeHook(suite)}`, suite, partial, ...sources(suite)];
      const result = await run('mmdebstrap', args, {
        timeoutMs: 20 * 60_000,
        what: `mmdebstrap (${suite})`,
        hint: `full log: ${log}; the machine must reach deb.debian.org`,
        allowFailure: true,
      });
      writeFileSync(log, result.stdout + result.stderr);
      if (result.code !== 0) {
        throw new OpsError(`building the ${suite} root filesystem failed (mmdebstrap exit ${result.code})\n${logTail(log)}`, `full log: ${log}; the machine must reach deb.debian.org`);
      }
      renameSync(partial, tarball);
    } finally {
      rmSync(partial, { force: true });
    }
    // Older tarballs of this suite (another package list) are dead weight now.
    for (const f of readdirSync(paths.rootfsDir)) {
      if (f.startsWith(`${suite}-`) && join(paths.rootfsDir, f) !== tarball) rmSync(join(paths.rootfsDir, f), { force: true });
    }
    options.log?.(`built ${tarball} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return tarball;
  }, { purpose: `building the ${suite} root filesystem (mmdebstrap, about 90 s)`, log: options.log });
}

// ---- services address and apt proxy --------------------------------------------------------------

const addressMarker = () => join(paths.run, 'services-address');

export async function hasServicesAddress(): Promise<boolean> {
  const r = await run('ip', ['-4', '-o', 'addr', 'show', 'dev', 'lo']);
  return r.stdout.includes(` ${SERVICES_ADDRESS}/32 `);
}

/** Put 10.230.0.1/32 on lo (every host has a /32 route to it). Remembered, so teardown removes only what it added. */
export async function ensureServicesAddress(): Promise<void> {
  if (!/^10\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(SERVICES_ADDRESS) || SERVICES_ADDRESS.split('.').some((n) => Number(n) > 255)) {
    throw new OpsError(`invalid services address ${JSON.stringify(SERVICES_ADDRESS)} (OPS_TESTHOSTS_SERVICES_ADDRESS)`, 'use an address in 10.0.0.0/8 that nothing else uses, e.g. 10.229.0.1');
  }
  await withLock('services-address', async () => {
    if (await hasServicesAddress()) return;
    await run('ip', ['addr', 'add', `${SERVICES_ADDRESS}/32`, 'dev', 'lo']);
    mkdirSync(paths.run, { recursive: true });
    writeFileSync(addressMarker(), `${SERVICES_ADDRESS}/32 dev lo\n`);
  }, { purpose: `adding the services address ${SERVICES_ADDRESS}` });
}

/** Remove the services address, only if this lab added it. */
export async function removeServicesAddress(): Promise<void> {
  if (!existsSync(addressMarker())) return;
  if (await hasServicesAddress()) await run('ip', ['addr', 'del', `${SERVICES_ADDRESS}/32`, 'dev', 'lo'], { allowFailure: true });
  rmSync(addressMarker(), { force: true });
}

/** Any HTTP answer at all means something listens there. */
export function httpAnswers(url: string, timeoutMs = 1000): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = request(url, { timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

export const aptProxyUrl = `http://${SERVICES_ADDRESS}:${APT_PROXY_PORT}`;
const aptPidFile = () => join(paths.run, 'apt-cacher-ng.pid');

/**
 * apt-cacher-ng on 10.230.0.1:3142 with a config of our own: Debian's default one remaps deb.debian.org to a
 * backend that does not resolve here, and apt then hangs for minutes.
 */
export async function ensureAptProxy(): Promise<string> {
  await withLock('apt-proxy', async () => {
    if (livePid(aptPidFile())) return;
    requireTools(['apt-cacher-ng']);
    const conf = join(paths.state, 'apt-cacher-ng');
    const logDir = join(paths.logsDir, 'apt-cacher-ng');
    for (const d of [conf, logDir, paths.aptCacheDir]) mkdirSync(d, { recursive: true });
    writeFileSync(
      join(conf, 'acng.conf'),
      [
        `CacheDir: ${paths.aptCacheDir}`,
        `LogDir: ${logDir}`,
        `SocketPath: ${join(paths.run, 'apt-cacher-ng.socket')}`,
        `Port: ${APT_PROXY_PORT}`,
        `BindAddress: ${SERVICES_ADDRESS}`,
        '',
      ].join('\n'),
    );
    const log = join(paths.logsDir, 'apt-cacher-ng.log');
    const record = spawnDaemon(findProgram('apt-cacher-ng')!, ['-c', conf, 'ForeGround=1'], log);
    const up = await waitFor(async () => {
      if (!isAlive(record)) return 'died';
      return (await httpAnswers(`${aptProxyUrl}/`)) ? 'up' : undefined;
    }, 15_000);
    if (up !== 'up') {
      await stopProcess(record, 'SIGKILL');
      throw new OpsError(
        `the apt proxy (apt-cacher-ng) did not start on ${SERVICES_ADDRESS}:${APT_PROXY_PORT}\n${logTail(log)}`,
        `is port ${APT_PROXY_PORT} taken? Debian's own apt-cacher-ng service listens on all addresses: \`systemctl disable --now apt-cacher-ng\` (log: ${log})`,
      );
    }
    writePidFile(aptPidFile(), record);
  }, { purpose: 'starting the apt proxy' });
  return aptProxyUrl;
}

export async function stopAptProxy(options: { purge?: boolean } = {}): Promise<void> {
  await stopProcess(readPidFile(aptPidFile()), 'SIGTERM', 5_000);
  rmSync(aptPidFile(), { force: true });
  rmSync(join(paths.run, 'apt-cacher-ng.socket'), { force: true });
  if (options.purge) rmSync(join(paths.state, 'apt-cacher-ng'), { recursive: true, force: true }); // its config; the cache stays
}

// ---- the entry point ----------------------------------------------------------------------------

export interface Lab {
  servicesAddress: string;
  aptProxyUrl: string;
  /** PyPI cache (devpi-server): the simple index URL for pip's index-url. */
  pypiIndexUrl: string;
  /** npm cache (verdaccio): the registry URL for npm's registry. */
  npmRegistryUrl: string;
  identityFile: string;
  publicKey: string;
  rootfs: Partial<Record<Suite, string>>;
}

/**
 * Make the machine ready for hosts: root and tools checked, client key, cached root filesystem(s) of `suites`
 * (default bookworm; built in parallel, once per machine),
 * services address, apt proxy, PyPI and npm caches (each started if absent, even when the others already run:
 * the lab is shared by every test run). Idempotent and quick once done (about 0.1 s).
 */
export async function ensureLab(options: { suites?: Suite[]; log?: (line: string) => void } = {}): Promise<Lab> {
  requireRoot();
  requireTools(LAB_TOOLS);
  for (const d of [paths.cache, paths.state, paths.run, paths.hostsDir, paths.logsDir]) mkdirSync(d, { recursive: true, mode: 0o755 });
  const key = await ensureClientKey();
  const rootfs: Partial<Record<Suite, string>> = {};
  // Built at once (each under its own lock): on a fresh machine the suites' mmdebstrap runs overlap.
  const suites = (options.suites ?? ['bookworm']).map(checkSuite);
  const built = await Promise.all(suites.map((suite) => ensureRootfs(suite, { log: options.log })));
  suites.forEach((suite, i) => (rootfs[suite] = built[i]));
  await ensureServicesAddress();
  const url = await ensureAptProxy();
  const [pypiIndexUrl, npmRegistryUrl] = await Promise.all([ensurePypiCache(), ensureNpmCache()]);
  return { servicesAddress: SERVICES_ADDRESS, aptProxyUrl: url, pypiIndexUrl, npmRegistryUrl, identityFile: key.identityFile, publicKey: key.publicKey, rootfs };
}

export function aptProxyStatus(): { running: boolean; pid?: number; url: string } {
  const record: ProcessRecord | undefined = livePid(aptPidFile());
  return { running: !!record, pid: record?.pid, url: aptProxyUrl };
}
