// The lab itself, proven on real hosts: two hosts with their own addresses and keys, pinned keys checked by
// ssh and node-ssh, hosts isolated from each other but reaching the services, snapshots, teardown that leaves
// nothing; the chroot flavour and a bullseye host; the sample app's repository and the app running on this
// machine and (bullseye: the API on Python 3.9, pip 20.3) inside a host. Needs root; every host is removed in afterAll.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeSSH } from 'node-ssh';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { encodeValue } from '../../core/dotenv.ts';
import { cmd } from '../../core/shell.ts';
import { APP_VERSIONS, exportAppVersion, makeAppRepo, MASTER_TAG, type AppRepo } from '../fixtures/app/make-repo.ts';
import {
  createDatabase,
  deleteSnapshot,
  downHost,
  dropDatabase,
  listHosts,
  NETWORKS_DIR,
  paths,
  querySql,
  setFreeSpace,
  snapshotHost,
  sshArgs,
  sshRun,
  upHost,
  type Database,
  type Host,
} from '../hosts/index.ts';
import { isAlive, recordOf, run, type ProcessRecord } from '../hosts/proc.ts';
import { freePort } from '../support/ports.ts';

const lab = inject('lab');
const id = process.pid.toString(36);

// ---- helpers -------------------------------------------------------------------------------------

/** Everything a host could leave on the machine; [] when it is really gone. */
async function leftovers(host: Host, processes: ProcessRecord[]): Promise<string[]> {
  const found: string[] = [];
  if (existsSync(`/run/netns/${host.netns}`)) found.push(`netns ${host.netns}`);
  if ((await run('ip', ['link', 'show', `ops${host.octet}h`], { allowFailure: true })).code === 0) found.push(`link ops${host.octet}h`);
  if ((await run('ip', ['-4', '-o', 'addr', 'show'])).stdout.includes(` ${host.gateway}/`)) found.push(`address ${host.gateway}`);
  for (const p of processes) if (isAlive(p)) found.push(`process ${p.pid}`);
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(host.root));
  found.push(...mounts.map((m) => `mount ${m.split(' ')[4]}`));
  if (existsSync(host.root)) found.push(`dir ${host.root}`);
  if (existsSync(join(NETWORKS_DIR, String(host.octet)))) found.push(`octet reservation ${host.octet}`);
  if (existsSync(join(paths.run, 'hosts', `${host.name}.pid`))) found.push('pid file');
  return found;
}

/** The host's main process and every process in its network namespace, by pid + start time. */
async function hostProcesses(host: Host): Promise<ProcessRecord[]> {
  const main = listHosts().find((h) => h.name === host.name)?.pid;
  const inside = (await run('ip', ['netns', 'pids', host.netns], { allowFailure: true })).stdout.split(/\s+/).filter(Boolean).map(Number);
  return [main, ...inside].filter((p): p is number => !!p).map((p) => recordOf(p)).filter((r): r is ProcessRecord => !!r);
}

async function remove(...hosts: (Host | undefined)[]): Promise<void> {
  for (const h of hosts) if (h) await downHost(h.name, { purge: true }).catch((e) => console.error(`cleanup of ${h.name}: ${e}`));
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { timeout: 10_000, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

/** Python snippet run on a host (stdin) with a small PostgreSQL client prepended (a bare host has no psycopg). */
function pgProbe(sql: string): string {
  const client = readFileSync(join(import.meta.dirname, '../support/pg_probe.py'), 'utf8');
  return `${client}\nimport sys\ntry:\n    with connect(sys.argv[1]) as c:\n        print(c.query(${JSON.stringify(sql)}).rows[0][0])\nexcept Exception as e:\n    print("ERR", e)\n    sys.exit(3)\n`;
}

// ---- two hosts -------------------------------------------------------------------------------------

describe('two test hosts', () => {
  let a: Host | undefined;
  let b: Host | undefined;
  let db: Database | undefined;
  let other: Database | undefined;

  beforeAll(async () => {
    const started = Date.now();
    // In parallel on purpose: two hosts created at once must get different networks.
    [a, b] = await Promise.all([upHost({ name: `lab-a-${id}`, fresh: true }), upHost({ name: `lab-b-${id}`, fresh: true })]);
    console.log(`two hosts up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });

  afterAll(async () => {
    await remove(a, b);
    if (db) await dropDatabase(db.name).catch(() => {});
    if (other) await dropDatabase(other.name).catch(() => {});
  });

  it('each host has its own address, hostname, host key and machine-id', async () => {
    expect(a!.address).not.toBe(b!.address);
    expect(a!.address).toMatch(/^10\.(23[2-9]|24\d|25[0-4])\.0\.2$/);
    expect(a!.hostKey).toMatch(/^ssh-ed25519 AAAA[0-9A-Za-z+/]+=*$/);
    expect(a!.hostKey).not.toBe(b!.hostKey);
    expect(readFileSync(a!.hostKeyFile, 'utf8')).toContain(a!.hostKey);
    const ra = await sshRun(a!, 'hostname; cat /etc/machine-id');
    const rb = await sshRun(b!, 'hostname; cat /etc/machine-id');
    expect(ra.stdout.split('\n')[0]).toBe(a!.name);
    expect(rb.stdout.split('\n')[0]).toBe(b!.name);
    expect(ra.stdout.split('\n')[1]).not.toBe(rb.stdout.split('\n')[1]);
    expect(a!.owner).toBe(lab.owner);
  });

  it('ssh accepts the pinned key and refuses a host presenting another one', async () => {
    const scanned = await run('ssh-keyscan', ['-t', 'ed25519', a!.address]);
    expect(scanned.stdout.trim()).toBe(`${a!.address} ${a!.hostKey}`);
    const wrong = join(mkdtempSync(join(tmpdir(), 'lab-')), 'known_hosts');
    writeFileSync(wrong, `${a!.address} ${b!.hostKey}\n`); // b's key pinned for a's address
    const args = sshArgs(a!).map((x) => (x === `UserKnownHostsFile=${a!.knownHostsFile}` ? `UserKnownHostsFile=${wrong}` : x));
    const refused = await run('ssh', [...args, 'true'], { allowFailure: true });
    expect(refused.code).toBe(255);
    expect(refused.stderr).toMatch(/host key|HOST IDENTIFICATION HAS CHANGED|verification failed/i);
    rmSync(wrong, { force: true });
  });

  it('node-ssh with a hostVerifier on the pinned key connects; with another key it is refused', async () => {
    const connect = (pinned: string) =>
      new NodeSSH().connect({
        host: a!.address,
        username: a!.user,
        privateKeyPath: a!.identityFile,
        readyTimeout: 10_000,
        algorithms: { serverHostKey: ['ssh-ed25519'] },
        hostVerifier: (key: Buffer) => key.equals(Buffer.from(pinned.split(' ')[1]!, 'base64')),
      });
    const ssh = await connect(a!.hostKey);
    try {
      const r = await ssh.execCommand('id -un; sudo -n id -u');
      expect(r.stdout.split('\n')).toEqual(['deploy', '0']);
    } finally {
      ssh.dispose();
    }
    await expect(connect(b!.hostKey)).rejects.toThrow(/verification failed|Host denied/i);
  });

  it('is a bare VM: systemd as PID 1, passwordless sudo for deploy, no nginx/supervisor/postgresql yet', async () => {
    const r = await sshRun(a!, 'ps -p 1 -o comm=; systemctl is-system-running; sudo -n true && echo sudo-ok; for p in nginx supervisor postgresql; do dpkg -s $p >/dev/null 2>&1 && echo "$p installed"; done; python3 --version; true');
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('systemd');
    expect(lines[1]).toMatch(/^(running|degraded)$/);
    expect(lines).toContain('sudo-ok');
    expect(r.stdout).not.toContain('installed');
    expect(r.stdout).toMatch(/Python 3\.11/);
  });

  it('a host reaches the apt proxy, the PyPI and npm caches, PostgreSQL and pebble on the services address, and nothing else', async () => {
    const s = lab.servicesAddress;
    const probe = (addr: string, port: number) => `timeout 3 bash -c '</dev/tcp/${addr}/${port}' 2>/dev/null && echo open || echo closed`;
    const r = await sshRun(
      a!,
      [probe(s, 3142), probe(s, 3141), probe(s, 4873), probe(s, 5432), probe(s, 14000), probe(b!.address, 22), probe(b!.gateway, 22), 'ip route show default | grep -c . || true', 'timeout 5 curl -sS -o /dev/null http://deb.debian.org/ 2>&1 | head -c 200; echo'].join('; '),
    );
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 7)).toEqual(['open', 'open', 'open', 'open', 'open', 'closed', 'closed']);
    expect(lines[7]).toBe('0'); // no default route
    expect(lines[8]).toMatch(/Could not resolve|Couldn't resolve/); // no DNS
    // The caches answer as the real indexes do: pip's simple API and npm's package documents.
    const idx = await sshRun(a!, `curl -fsS ${cmd(`${lab.pypiIndexUrl}pyyaml/`)} | grep -ci 'pyyaml-6.0.3.tar.gz'; curl -fsS ${cmd(`${lab.npmRegistryUrl}left-pad`)} | python3 -c 'import json, sys; print(json.load(sys.stdin)["name"])'`);
    expect(idx.stdout).toMatch(/^[1-9]\d*\nleft-pad\n$/);
    const apt = await sshRun(a!, 'sudo timeout 120 apt-get update -q', { timeoutMs: 150_000 });
    expect(apt.stdout).toMatch(/Reading package lists/);
    expect(apt.stdout + apt.stderr).not.toMatch(/^(W|E): /m);
  });

  it('an environment database is reachable from a host with its own login, not with another one', async () => {
    db = await createDatabase(`t_lab_${id}`, `pw-${id}-with'quote and space`);
    other = await createDatabase(`t_other_${id}`, `pw-${id}-other`);
    const ok = await sshRun(a!, `python3 - ${cmd(db.url)}`, { input: pgProbe('SELECT current_user || \'@\' || current_database()') });
    expect(ok.stdout.trim()).toBe(`${db.name}@${db.name}`);
    const crossUrl = db.url.replace(new RegExp(`/${db.name}$`), `/${other.name}`);
    const denied = await sshRun(a!, `python3 - ${cmd(crossUrl)}`, { input: pgProbe('SELECT 1'), allowFailure: true });
    expect(denied.code).toBe(3);
    expect(denied.stdout).toMatch(/permission denied for database/);
    const badPassword = await sshRun(a!, `python3 - ${cmd(db.url.replace(/:[^:@]+@/, ':wrong-password@'))}`, { input: pgProbe('SELECT 1'), allowFailure: true });
    expect(badPassword.stdout).toMatch(/password authentication failed/);
  });

  it('a snapshot carries a host\'s files to a new host, which still gets its own identity', async () => {
    const snap = `lab-snap-${id}`;
    let c: Host | undefined;
    try {
      await sshRun(a!, 'echo provisioned | sudo tee /etc/ops-lab-marker >/dev/null');
      await snapshotHost(a!.name, snap);
      c = await upHost({ name: `lab-c-${id}`, from: snap, fresh: true });
      const r = await sshRun(c, 'cat /etc/ops-lab-marker; hostname; cat /etc/machine-id');
      const [marker, hostname, machineId] = r.stdout.trim().split('\n');
      expect(marker).toBe('provisioned');
      expect(hostname).toBe(c.name);
      expect(machineId).not.toBe((await sshRun(a!, 'cat /etc/machine-id')).stdout.trim());
      expect(c.hostKey).not.toBe(a!.hostKey);
      expect(c.address).not.toBe(a!.address);
    } finally {
      await remove(c);
      deleteSnapshot(snap);
    }
  });

  it('taking a host down leaves nothing: processes, namespace, link, address, mounts, files', async () => {
    const host = b!;
    const processes = await hostProcesses(host);
    expect(processes.length).toBeGreaterThan(3); // nspawn + systemd + journald + sshd ...
    // The detector sees a live host (so an empty answer below means something).
    expect(await leftovers(host, processes)).toEqual(
      expect.arrayContaining([`netns ${host.netns}`, `link ops${host.octet}h`, `address ${host.gateway}`, `process ${processes[0]!.pid}`, `dir ${host.root}`, `octet reservation ${host.octet}`, 'pid file']),
    );
    await downHost(host.name, { purge: true });
    expect(await leftovers(host, processes)).toEqual([]);
    b = undefined;
  });
});

// ---- other flavours -----------------------------------------------------------------------------

describe('chroot flavour', () => {
  let h: Host | undefined;
  afterAll(() => remove(h));

  it('runs sshd as PID 1 of its own namespaces, and goes away completely', async () => {
    h = await upHost({ name: `lab-ch-${id}`, init: 'chroot', fresh: true });
    const r = await sshRun(h, 'ps -p 1 -o comm=; hostname; sudo -n id -u');
    expect(r.stdout.trim().split('\n')).toEqual(['sshd', h.name, '0']);
    const processes = await hostProcesses(h);
    await downHost(h.name, { purge: true });
    expect(await leftovers(h, processes)).toEqual([]);
    h = undefined;
  });

  it("takes over the network a killed run left behind (its host's processes gone, namespace and link still there)", async () => {
    const old = await upHost({ name: `lab-k1-${id}`, init: 'chroot', fresh: true });
    let taker: Host | undefined;
    try {
      const processes = await hostProcesses(old);
      for (const p of processes) process.kill(p.pid, 'SIGKILL');
      // What a killed run leaves: the namespace, the link and the reservation, older than a minute.
      const reservation = join(NETWORKS_DIR, String(old.octet));
      const past = new Date(Date.now() - 120_000);
      utimesSync(reservation, past, past);
      expect(await leftovers(old, processes)).toEqual(expect.arrayContaining([`netns ${old.netns}`, `link ops${old.octet}h`, `octet reservation ${old.octet}`]));
      taker = await upHost({ name: `lab-k2-${id}`, init: 'chroot', fresh: true, octet: old.octet });
      expect(taker.octet).toBe(old.octet);
      expect(existsSync(`/run/netns/${old.netns}`)).toBe(false);
      expect((await sshRun(taker, 'hostname')).stdout.trim()).toBe(taker.name);
    } finally {
      await remove(taker, old);
    }
  });
});

describe('bullseye host (the seed VMs run bullseye)', () => {
  let h: Host | undefined;
  let db: Database | undefined;
  afterAll(async () => {
    await remove(h);
    if (db) await dropDatabase(db.name).catch(() => {});
  });

  it("runs the sample app's API with Debian's Python 3.9 and pip, its hashed requirements from the lab's PyPI cache", async () => {
    h = await upHost({ name: `lab-bu-${id}`, suite: 'bullseye', fresh: true }); // builds the rootfs once (~80 s)
    const os = await sshRun(h, '. /etc/os-release; echo $VERSION_CODENAME; python3 --version');
    expect(os.stdout).toMatch(/^bullseye\nPython 3\.9\./);
    await sshRun(h, 'sudo timeout 120 apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends python3-venv make >/dev/null', { timeoutMs: 400_000 });
    db = await createDatabase(`t_bull_${id}`, `pw-${id}-bullseye`);
    const repo = mkdtempSync(join(tmpdir(), 'lab-app-'));
    try {
      await makeAppRepo(join(repo, 'app'));
      await run('sh', ['-c', `git -C ${cmd(join(repo, 'app'))} archive v1 | ssh ${cmd(...sshArgs(h))} 'mkdir -p app && tar -x -C app'`]);
    } finally {
      rmSync(repo, { recursive: true, force: true });
    }
    await sshRun(h, 'cat > app/.env', { input: `APP_PORT=3579\nAPP_DATABASE_URL=${db.url.replace('postgresql:', 'postgresql+asyncpg:')}\n` });
    const r = await sshRun(
      h,
      [
        'set -e',
        'cd app',
        'python3 -m venv venv',
        'venv/bin/pip --version | cut -d" " -f1-2',
        // Bullseye's pip 20.3: hash-checking mode, wheels for Python 3.9, from the cache (the host reaches nothing else). pip waits 60 s a read (15 by default): the cache fetches what it lacks from PyPI first, slower on a loaded machine.
        `timeout 600 venv/bin/pip install -q --timeout 60 --index-url ${cmd(lab.pypiIndexUrl)} --trusted-host ${cmd(new URL(lab.pypiIndexUrl).host)} --require-hashes -r requirements.txt`,
        'make migrate',
        'setsid venv/bin/python -m server.main >api.log 2>&1 </dev/null &',
        'for i in $(seq 150); do curl -sf http://127.0.0.1:3579/health >/dev/null && break; sleep 0.2; done',
        'curl -s http://127.0.0.1:3579/health; curl -s http://127.0.0.1:3579/version',
      ].join('\n'),
      { timeoutMs: 900_000 },
    );
    expect(r.stdout).toMatch(/^pip 20\.3\./m);
    expect(r.stdout).toContain('migrate: at 0002_tags');
    expect(r.stdout).toContain('{"status": "ok"}\n{"revision": null, "version": "1.0.0"}');
  });
});

// ---- the sample app --------------------------------------------------------------------------------

describe('sample app repository', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('has every tag, with the same commits on every build, and master at v2', async () => {
    const [d1, d2] = [mkdtempSync(join(tmpdir(), 'app-a-')), mkdtempSync(join(tmpdir(), 'app-b-'))];
    dirs.push(d1, d2);
    const first = await makeAppRepo(join(d1, 'repo'));
    const second = await makeAppRepo(join(d2, 'repo'));
    expect(Object.keys(first.tags)).toEqual(['v1', 'v2', 'deps-changed', 'broken-migration', 'broken-build', 'crash-on-start', 'never-healthy']);
    expect(second.tags).toEqual(first.tags);
    expect((await makeAppRepo(join(d1, 'repo'))).reused).toBe(true);
    const git = (...args: string[]) => run('git', ['-C', first.dir, ...args]).then((r) => r.stdout.trim());
    expect(await git('rev-parse', 'master')).toBe(first.tags[MASTER_TAG]);
    expect(await git('status', '--porcelain')).toBe('');
    const changed = async (from: string, to: string) => (await git('diff', '--name-only', from, to)).split('\n').sort();
    expect(await changed('v1', 'v2')).toEqual([
      'client/package-lock.json',
      'client/package.json',
      'client/src/routes/+page.server.js',
      'client/src/routes/+page.svelte',
      'migrations/versions/0003_datasets.py',
      'server/queries.py',
      'server/version.py',
    ]);
    expect(await changed('v2', 'deps-changed')).toEqual(['client/package-lock.json', 'client/package.json', 'requirements.in', 'requirements.txt']);
    // Real dependency sets: a web framework pinned with hashes, a lockfile of real npm packages.
    const requirements = await git('show', 'v1:requirements.txt');
    expect(requirements).toMatch(/^fastapi==[\d.]+ \\\n    --hash=sha256:[0-9a-f]{64}/m);
    expect(requirements).toMatch(/^uvicorn==0\.38\.0 /m);
    expect(await git('show', 'deps-changed:requirements.txt')).toMatch(/^uvicorn==0\.39\.0 /m);
    const lock = JSON.parse(await git('show', 'v1:client/package-lock.json')) as { packages: Record<string, { version?: string }> };
    expect(lock.packages['node_modules/@sveltejs/kit']?.version).toMatch(/^2\./);
    expect(Object.keys(lock.packages).length).toBeGreaterThan(50);
    const onV1 = APP_VERSIONS.filter((v) => v.base === 'v1' && v.tag !== 'v2');
    expect(onV1.length).toBeGreaterThanOrEqual(3); // the broken variants made from v1
    for (const v of onV1) expect(await git('merge-base', '--is-ancestor', 'v1', v.tag).then(() => true)).toBe(true);
    expect(await git('log', '-1', '--format=%an <%ae> %ad', '--date=iso-strict', 'v1')).toBe('Sample App <sample-app@ops-pipeline.invalid> 2024-01-01T12:00:00+00:00');
  });
});

describe('sample app, run on this machine against the lab database', () => {
  let repo: AppRepo;
  let base: string;
  let db: Database;
  const running: ChildProcess[] = [];
  // Dependencies from the lab's caches, as the hosts get them.
  const installEnv = { PIP_INDEX_URL: lab.pypiIndexUrl, PIP_TRUSTED_HOST: new URL(lab.pypiIndexUrl).host, PIP_FIND_LINKS: '', npm_config_registry: lab.npmRegistryUrl };

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'app-run-'));
    repo = await makeAppRepo(join(base, 'repo'));
    db = await createDatabase(`t_app_${id}`, `pw-${id}-app`);
    // One venv for every tag with v1's requirements (deps-changed only bumps uvicorn): made once, linked in.
    await exportAppVersion(repo.dir, 'v1', join(base, 'venv-src'));
    const venv = await sh(join(base, 'venv-src'), `/usr/bin/python3 -m venv ${cmd(join(base, 'venv'))} && ${cmd(join(base, 'venv/bin/pip'))} install -q --require-hashes -r requirements.txt`);
    expect(venv.code, venv.stderr).toBe(0);
  }, 600_000);
  afterAll(async () => {
    for (const p of running) if (p.exitCode === null) p.kill('SIGKILL');
    rmSync(base, { recursive: true, force: true });
    if (db) await dropDatabase(db.name).catch(() => {});
  });

  /** A release directory of `tag`, with .env as a deploy would write it and the shared venv linked in. */
  async function release(tag: string, env = ''): Promise<string> {
    const dir = join(base, tag);
    rmSync(dir, { recursive: true, force: true });
    await exportAppVersion(repo.dir, tag, dir);
    writeFileSync(join(dir, 'REVISION'), `${repo.tags[tag]}\n`);
    writeFileSync(
      join(dir, '.env'),
      `APP_SERVER_MODE=live\nAPP_PORT=1\nAPP_DATABASE_URL=${db.url.replace('postgresql:', 'postgresql+asyncpg:')}\nTOOLS_PASSWORDS='{"admin@example.org": "admin-password"}'\nVITE_API_SSR_URL=http://localhost:1\n${env}`,
    );
    symlinkSync(join(base, 'venv'), join(dir, 'venv'));
    return dir;
  }

  function sh(dir: string, command: string, env: NodeJS.ProcessEnv = {}) {
    return run('sh', ['-c', command], { cwd: dir, env: { ...process.env, ...installEnv, ...env }, allowFailure: true, timeoutMs: 300_000 });
  }

  function start(program: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): { proc: ChildProcess; output: () => string } {
    let output = '';
    const proc = spawn(program, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (b: Buffer) => (output += b));
    proc.stderr!.on('data', (b: Buffer) => (output += b));
    running.push(proc);
    return { proc, output: () => output };
  }

  /** Until `url` answers; with `started`, only while that process lives (another server on its port is no answer). */
  async function waitHttp(url: string, started?: { proc: ChildProcess; output: () => string }): Promise<void> {
    for (let i = 0; i < 150; i++) {
      if (started && (started.proc.exitCode !== null || started.proc.signalCode !== null)) throw new Error(`${url}: the process exited before it answered:\n${started.output()}`);
      if (await get(url).then(() => true, () => false)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`nothing answers at ${url}`);
  }

  async function terminate(p: ChildProcess): Promise<void> {
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
  }

  /** Start API + client of a release (ports from the process env override .env, as a deploy slot does). */
  async function serve(dir: string) {
    const [apiPort, webPort] = [await freePort(), await freePort()];
    const api = start(join(dir, 'venv/bin/python'), ['-m', 'server.main'], dir, { APP_PORT: String(apiPort) });
    const web = start('node', ['build'], join(dir, 'client'), { HOST: '127.0.0.1', PORT: String(webPort), VITE_API_SSR_URL: `http://localhost:${apiPort}` });
    await waitHttp(`http://127.0.0.1:${apiPort}/version`, api);
    await waitHttp(`http://127.0.0.1:${webPort}/health`, web);
    return {
      api: `http://127.0.0.1:${apiPort}`,
      web: `http://127.0.0.1:${webPort}`,
      apiSocket: join(dir, '.debug', `api-${apiPort}.sock`),
      webSocket: join(dir, '.debug', `client-${webPort}.sock`),
      /** SIGTERM one process and wait for it to exit. */
      terminate: terminate,
      procs: { api: api.proc, web: web.proc },
      apiOutput: api.output,
      /** The client first (its requests in flight still need the API), then the API. */
      async stop() {
        await terminate(web.proc);
        await terminate(api.proc);
      },
    };
  }

  async function build(dir: string) {
    const r = await sh(join(dir, 'client'), 'npm ci --no-audit --no-fund && npm run build');
    expect(r.code, r.stderr).toBe(0);
  }

  /** A built, migrated release of `tag` (the one an earlier test made, else a new one): tests can run alone. */
  async function built(tag: string): Promise<string> {
    const dir = existsSync(join(base, tag, 'client/build')) ? join(base, tag) : await release(tag);
    if (!existsSync(join(dir, 'client/build'))) await build(dir);
    const m = await sh(dir, 'make migrate');
    expect(m.code, m.stderr).toBe(0);
    return dir;
  }

  /** The page's text without Svelte's hydration markers (<!--[-->, <!---->...). */
  const text = (html: string) => html.replace(/<!--[\s\S]*?-->/g, '');

  it('v1: migrate, initdata (twice), deterministic page; v2 adds its migration and datasets; v1 still serves the same bytes on the v2 schema', async () => {
    const v1 = await release('v1');
    await build(v1);
    const m1 = await sh(v1, 'make migrate');
    expect(m1.code, m1.stderr).toBe(0);
    expect(m1.stderr).toContain('Running upgrade  -> 0001_users, users');
    expect(m1.stderr).toContain('Running upgrade 0001_users -> 0002_tags, tags');
    expect(m1.stdout).toContain('migrate: at 0002_tags');
    const i1 = await sh(v1, 'venv/bin/python -m tools.initdata --no-input initdata.example.yml');
    expect(i1.code, i1.stderr).toBe(0);
    expect(i1.stdout).toContain('created 2 user(s) and 2 tag(s)');
    const i2 = await sh(v1, 'venv/bin/python -m tools.initdata --no-input initdata.example.yml');
    expect(i2.stdout.trim()).toBe('initdata: nothing new: all 2 user(s) and 2 tag(s) already exist');
    expect(await querySql(db.name, "SELECT count(*) FROM users WHERE password_hash LIKE 'pbkdf2_sha256$%'")).toBe('2\n');

    let app = await serve(v1);
    const health = await get(`${app.api}/health`);
    expect(health).toEqual({ status: 200, body: '{"status": "ok"}\n' });
    expect(JSON.parse((await get(`${app.api}/version`)).body)).toEqual({ version: '1.0.0', revision: repo.tags.v1 });
    const page1 = await get(`${app.web}/`);
    expect(page1.status).toBe(200);
    expect(text(page1.body)).toContain(`<p id="version">Version 1.0.0, revision ${repo.tags.v1}</p>`);
    expect(text(page1.body)).toContain('<ul id="users"><li>admin@example.org (Admin) [admin]</li><li>alice@example.org (Alice Martin)</li></ul>');
    expect(text(page1.body)).toContain('<footer>client 1.0.0</footer>');
    expect(page1.body).not.toContain('datasets');
    expect(page1.body).not.toContain('<script'); // rendered on the server only
    expect((await get(`${app.web}/`)).body).toBe(page1.body);
    await app.stop();

    const v2 = await release('v2');
    await build(v2);
    const m2 = await sh(v2, 'make migrate');
    expect(m2.stderr).toContain('Running upgrade 0002_tags -> 0003_datasets');
    expect(m2.stdout).toContain('migrate: at 0003_datasets');
    app = await serve(v2);
    const page2 = text((await get(`${app.web}/`)).body);
    expect(page2).toContain('<p id="banner">New in version 2: datasets.</p>');
    expect(page2).toContain('<ul id="datasets"><li>Air quality stations</li><li>Public transport stops</li></ul>');
    expect(page2).toContain('<footer>client 2.0.0</footer>');
    await app.stop();

    // Deploying v1 again on the newer schema: its migrations know nothing of 0003, which is left alone (expand/contract).
    const back = await sh(v1, 'make migrate');
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toContain('does not know (left as they are): 0003_datasets');
    app = await serve(v1);
    expect((await get(`${app.web}/`)).body).toBe(page1.body);
    await app.stop();
  });

  it('both sides read .env with real parsers (pydantic-settings/python-dotenv, Node dotenv, vite): the debug sockets report the same sha256', async () => {
    const value = "p@ss w0rd #not-a-comment 'q' é = ok";
    // Written the way deploys write .env (core/dotenv.ts), for the app's three readers.
    const quoted = (v: string) => {
      const r = encodeValue(v, ['python-dotenv', 'node-dotenv', 'vite']);
      if ('refused' in r) throw new Error(`test value refused: ${r.refused.reason}`);
      return r.text;
    };
    const dir = await release('v1', `APP_SECRET_KEY=${quoted(value)}\nVITE_SERVER_MODE=${quoted('live mode')}\n`);
    await build(dir);
    const app = await serve(dir);
    try {
      const viaSocket = async (socket: string) => JSON.parse((await run('curl', ['-sf', '--unix-socket', socket, 'http://localhost/settings'])).stdout);
      const sha = (v: string) => createHash('sha256').update(v, 'utf8').digest('hex');
      const api = await viaSocket(app.apiSocket);
      const web = await viaSocket(app.webSocket);
      expect(api.sha256.APP_SECRET_KEY).toBe(sha(value));
      expect(web.sha256.runtime.APP_SECRET_KEY).toBe(sha(value));
      expect(web.sha256.build.VITE_SERVER_MODE).toBe(sha('live mode'));
      // The process environment wins over .env (per-slot ports).
      expect(api.sha256.APP_PORT).toBe(sha(new URL(app.api).port));
      // Only from the host: the sockets are not on any TCP port, and the site knows no such path.
      expect((await get(`${app.web}/settings`)).status).toBe(404);
      expect((await get(`${app.api}/settings`)).status).toBe(404);
    } finally {
      await app.stop();
    }
  });

  it('deps-changed: npm ci installs the bumped lockfile from the cache and the build carries the new version', async () => {
    const dir = await release('deps-changed');
    await build(dir);
    expect(JSON.parse(readFileSync(join(dir, 'client/node_modules/vite/package.json'), 'utf8')).version).toBe('6.4.6');
    const app = await serve(dir);
    try {
      expect(text((await get(`${app.web}/`)).body)).toContain('<footer>client 2.0.1</footer>');
    } finally {
      await app.stop();
    }
  });

  it('broken-migration: fails, says what, and leaves nothing of it behind', async () => {
    const dir = await release('broken-migration');
    const before = await querySql(db.name, 'SELECT version_num FROM alembic_version');
    const r = await sh(dir, 'make migrate');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Running upgrade 0003_datasets -> 0004_catalog_entries');
    expect(r.stderr).toMatch(/column "missing_column" of relation "catalog_entries" does not exist/);
    expect(await querySql(db.name, "SELECT to_regclass('catalog_entries') IS NULL")).toBe('t\n');
    expect(await querySql(db.name, 'SELECT version_num FROM alembic_version')).toBe(before);
  });

  it('broken-build: npm run build fails and names the file', async () => {
    const dir = await release('broken-build');
    const r = await sh(join(dir, 'client'), 'npm ci --no-audit --no-fund && npm run build');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/src\/lib\/format\.js \(3:\d+\): Expected/);
    expect(existsSync(join(dir, 'client/build'))).toBe(false);
  });

  it('crash-on-start: the API exits at once with an error', async () => {
    const dir = await release('crash-on-start');
    const r = await sh(dir, 'timeout 10 venv/bin/python -m server.main', { APP_PORT: String(await freePort()) });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('crash-on-start');
  });

  it('never-healthy: /health answers 503 while the rest works', async () => {
    const dir = await release('never-healthy');
    await build(dir);
    const app = await serve(dir);
    try {
      const health = await get(`${app.api}/health`);
      expect(health.status).toBe(503);
      expect(health.body).toContain('never-healthy');
      expect((await get(`${app.api}/version`)).status).toBe(200);
      expect((await get(`${app.web}/`)).status).toBe(200);
    } finally {
      await app.stop();
    }
  });

  it('the page reports an unreachable API with a 502 and a stable message', async () => {
    const dir = await built('v1');
    const webPort = await freePort();
    const deadPort = await freePort();
    const web = start('node', ['build'], join(dir, 'client'), { HOST: '127.0.0.1', PORT: String(webPort), VITE_API_SSR_URL: `http://127.0.0.1:${deadPort}` });
    await waitHttp(`http://127.0.0.1:${webPort}/health`);
    const page = await get(`http://127.0.0.1:${webPort}/`);
    expect(page.status).toBe(502);
    expect(text(page.body)).toContain('<p id="error">The API is unavailable: /version unreachable (ECONNREFUSED).</p>');
    web.proc.kill('SIGTERM');
  });

  it('SIGTERM lets the pages being rendered finish, then the client exits; the API stops on SIGTERM too', async () => {
    const dir = await built('v1');
    const app = await serve(dir);
    const calls = () => app.apiOutput().split('\n').filter((l) => l.includes('"GET /version HTTP/1.1" 200')).length;
    const before = calls();
    // Pages in flight: the client has asked the API for /version for each (the API's access log says so) and
    // still has /users to fetch when it gets SIGTERM. Every one must finish with 200.
    const pages = Array.from({ length: 4 }, () => get(`${app.web}/`));
    for (let i = 0; i < 3000 && calls() < before + 4; i++) await new Promise((r) => setTimeout(r, 10));
    expect(calls()).toBe(before + 4);
    await app.terminate(app.procs.web);
    const statuses = (await Promise.allSettled(pages)).map((r) => (r.status === 'fulfilled' ? r.value.status : String(r.reason)));
    expect(statuses).toEqual([200, 200, 200, 200]);
    await app.terminate(app.procs.api);
    expect(app.apiOutput()).toContain('Finished server process');
    expect(await get(`${app.api}/users`).then((r) => r.status, (e: Error) => e.message)).toMatch(/ECONNREFUSED/);
  });
});

// ---- a private network and a small filesystem ------------------------------------------------------

describe('a private network between two hosts, and a small filesystem', () => {
  const lan = `l${id}`.slice(0, 12);
  let a: Host | undefined;
  let b: Host | undefined;
  afterAll(async () => {
    await remove(a, b);
  });

  it('hosts on a LAN reach each other there, the machine does not; a small filesystem fills up like a disk; nothing is left afterwards', async () => {
    [a, b] = await Promise.all([
      upHost({ name: `lab-la-${id}`, fresh: true, lans: [lan], filesystems: [{ path: '/srv', sizeMb: 8, inodes: 1000 }] }),
      upHost({ name: `lab-lb-${id}`, fresh: true, lans: [lan] }),
    ]);
    const there = b!.lans[lan]!;
    expect(there).toMatch(/^10\.228\.\d+\.\d+$/);
    expect(a!.lans[lan]!.split('.').slice(0, 3)).toEqual(there.split('.').slice(0, 3));
    // b's sshd answers a on the LAN; the machine has no route there.
    expect((await sshRun(a!, `timeout 5 bash -c 'exec 3<>/dev/tcp/${there}/22 && head -c 7 <&3'`)).stdout).toBe('SSH-2.0');
    // From the machine: no route (the lab's unreachable route; nothing leaves the machine).
    expect((await run('ip', ['route', 'get', there], { allowFailure: true })).stderr).toMatch(/No route to host|unreachable/i);
    const df = await sshRun(a!, 'df -Pk /srv | tail -1; df -Pi /srv | tail -1');
    expect(df.stdout).toMatch(/^\S+\s+8192\s/m);
    expect(df.stdout).toMatch(/^\S+\s+1000\s/m);
    await setFreeSpace(a!.name, '/srv', { mb: 1 });
    const full = await sshRun(a!, 'sudo dd if=/dev/zero of=/srv/fill bs=1M count=4 2>&1', { allowFailure: true });
    expect(full.code).not.toBe(0);
    expect(full.stdout).toContain('No space left on device');
    await setFreeSpace(a!.name, '/srv');
    expect((await sshRun(a!, 'sudo rm -f /srv/fill && sudo dd if=/dev/zero of=/srv/fill bs=1M count=4 2>&1', { allowFailure: true })).code).toBe(0);
    const lanNetns = `/run/netns/opsth-lan-${lan}`;
    expect(existsSync(lanNetns)).toBe(true);
    await remove(a, b);
    expect(existsSync(lanNetns)).toBe(false); // went with its last host
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(`${a!.name}.fs`);
    a = b = undefined;
  }, 300_000);
});
