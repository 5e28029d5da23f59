// The lab itself, proven on real hosts: two hosts with their own addresses and keys, pinned keys checked by
// ssh and node-ssh, hosts isolated from each other but reaching the services, snapshots, teardown that leaves
// nothing; the chroot flavour and a bullseye host; the sample app's repository and the app running on this
// machine and (bullseye: Python 3.9, Node 12) inside a host. Needs root; every host is removed in afterAll.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeSSH } from 'node-ssh';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
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

const lab = inject('lab');
const id = process.pid.toString(36);
const APP_TREE = join(import.meta.dirname, '../fixtures/app/tree/v1');

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

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
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

/** Python snippet run on a host (stdin) with the sample app's own PostgreSQL client prepended. */
function pgProbe(sql: string): string {
  const client = readFileSync(join(APP_TREE, 'server/pg.py'), 'utf8');
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

  it('a host reaches the apt proxy, PostgreSQL and pebble on the services address, and nothing else', async () => {
    const s = lab.servicesAddress;
    const probe = (addr: string, port: number) => `timeout 3 bash -c '</dev/tcp/${addr}/${port}' 2>/dev/null && echo open || echo closed`;
    const r = await sshRun(
      a!,
      [probe(s, 3142), probe(s, 5432), probe(s, 14000), probe(b!.address, 22), probe(b!.gateway, 22), 'ip route show default | grep -c . || true', 'timeout 5 curl -sS -o /dev/null http://deb.debian.org/ 2>&1 | head -c 200; echo'].join('; '),
    );
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 5)).toEqual(['open', 'open', 'open', 'closed', 'closed']);
    expect(lines[5]).toBe('0'); // no default route
    expect(lines[6]).toMatch(/Could not resolve|Couldn't resolve/); // no DNS
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
});

describe('bullseye host (the seed VMs run bullseye)', () => {
  let h: Host | undefined;
  let db: Database | undefined;
  afterAll(async () => {
    await remove(h);
    if (db) await dropDatabase(db.name).catch(() => {});
  });

  it('runs the sample app with Debian\'s Python 3.9 and Node 12', async () => {
    h = await upHost({ name: `lab-bu-${id}`, suite: 'bullseye', fresh: true }); // builds the rootfs once (~80 s)
    const os = await sshRun(h, '. /etc/os-release; echo $VERSION_CODENAME; python3 --version');
    expect(os.stdout).toMatch(/^bullseye\nPython 3\.9\./);
    await sshRun(h, 'sudo timeout 120 apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends nodejs >/dev/null', { timeoutMs: 400_000 });
    db = await createDatabase(`t_bull_${id}`, `pw-${id}-bullseye`);
    const repo = mkdtempSync(join(tmpdir(), 'lab-app-'));
    try {
      await makeAppRepo(join(repo, 'app'));
      await run('sh', ['-c', `git -C ${cmd(join(repo, 'app'))} archive v1 | ssh ${cmd(...sshArgs(h))} 'mkdir -p app && tar -x -C app'`]);
    } finally {
      rmSync(repo, { recursive: true, force: true });
    }
    await sshRun(h, 'cat > app/.env', {
      input: `APP_PORT=3579\nAPP_DATABASE_URL=${db.url.replace('postgresql:', 'postgresql+asyncpg:')}\nVITE_API_SSR_URL=http://localhost:3579\n`,
    });
    const r = await sshRun(
      h,
      [
        'set -e',
        'cd app',
        'node --version',
        '(cd client && node scripts/build.js)',
        'python3 -m tools.migrate',
        'setsid python3 -m server.main >api.log 2>&1 </dev/null &',
        // Redirect the whole group: a background subshell keeping ssh's stdout would hold the session open.
        '(cd client && PORT=3000 exec setsid node ./build) >client.log 2>&1 </dev/null &',
        'for i in $(seq 100); do curl -sf http://127.0.0.1:3000/ >page.html && break; sleep 0.1; done',
        'cat page.html',
      ].join('\n'),
    );
    expect(r.stdout).toMatch(/^v12\./m);
    expect(r.stdout).toContain('migrate: applied 0002_tags.sql');
    expect(r.stdout).toContain('<p id="version">Version 1.0.0, revision unknown</p>');
    expect(r.stdout).toContain('<p id="users">No users yet.</p>');
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
    expect(await changed('v1', 'v2')).toEqual(['client/package-lock.json', 'client/package.json', 'client/src/page.js', 'migrations/0003_datasets.sql', 'server/queries.py', 'server/version.py']);
    expect(await changed('v2', 'deps-changed')).toEqual(['client/package-lock.json', 'client/package.json', 'requirements.txt']);
    for (const v of APP_VERSIONS.filter((v) => v.base === 'v1' && v.tag !== 'v2')) expect(await git('merge-base', '--is-ancestor', 'v1', v.tag).then(() => true)).toBe(true);
    expect(await git('log', '-1', '--format=%an <%ae> %ad', '--date=iso-strict', 'v1')).toBe('Sample App <sample-app@ops-pipeline.invalid> 2024-01-01T12:00:00+00:00');
  });
});

describe('sample app, run on this machine against the lab database', () => {
  let repo: AppRepo;
  let base: string;
  let db: Database;
  const running: ChildProcess[] = [];

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'app-run-'));
    repo = await makeAppRepo(join(base, 'repo'));
    db = await createDatabase(`t_app_${id}`, `pw-${id}-app`);
  });
  afterAll(async () => {
    for (const p of running) if (p.exitCode === null) p.kill('SIGKILL');
    rmSync(base, { recursive: true, force: true });
    if (db) await dropDatabase(db.name).catch(() => {});
  });

  /** A release directory of `tag`, with .env as a deploy would write it. */
  async function release(tag: string): Promise<string> {
    const dir = join(base, tag);
    await exportAppVersion(repo.dir, tag, dir);
    writeFileSync(join(dir, 'REVISION'), `${repo.tags[tag]}\n`);
    writeFileSync(
      join(dir, '.env'),
      `APP_SERVER_MODE=live\nAPP_PORT=1\nAPP_DATABASE_URL=${db.url.replace('postgresql:', 'postgresql+asyncpg:')}\nTOOLS_PASSWORDS='{"admin@example.org": "admin-password"}'\nVITE_API_SSR_URL=http://localhost:1\n`,
    );
    return dir;
  }

  function sh(dir: string, command: string, env: NodeJS.ProcessEnv = {}) {
    return run('sh', ['-c', command], { cwd: dir, env: { ...process.env, ...env }, allowFailure: true, timeoutMs: 120_000 });
  }

  function start(program: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): { proc: ChildProcess; output: () => string } {
    let output = '';
    const proc = spawn(program, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (b: Buffer) => (output += b));
    proc.stderr!.on('data', (b: Buffer) => (output += b));
    running.push(proc);
    return { proc, output: () => output };
  }

  async function waitHttp(url: string): Promise<void> {
    for (let i = 0; i < 100; i++) {
      if (await get(url).then(() => true, () => false)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`nothing answers at ${url}`);
  }

  /** Start API + client of a release (ports from the process env override .env, as a deploy slot does). */
  async function serve(dir: string) {
    const [apiPort, webPort] = [await freePort(), await freePort()];
    const api = start('python3', ['-m', 'server.main'], dir, { APP_PORT: String(apiPort) });
    const web = start('node', ['./build'], join(dir, 'client'), { HOST: '127.0.0.1', PORT: String(webPort), VITE_API_SSR_URL: `http://localhost:${apiPort}` });
    await waitHttp(`http://127.0.0.1:${apiPort}/version`);
    await waitHttp(`http://127.0.0.1:${webPort}/health`);
    return {
      api: `http://127.0.0.1:${apiPort}`,
      web: `http://127.0.0.1:${webPort}`,
      async stop() {
        for (const p of [api.proc, web.proc]) {
          p.kill('SIGTERM');
          if (p.exitCode === null) await new Promise((r) => p.once('exit', r));
        }
      },
    };
  }

  async function build(dir: string) {
    const r = await sh(join(dir, 'client'), 'npm ci --no-audit --no-fund --offline && npm run build');
    expect(r.code, r.stderr).toBe(0);
  }

  it('v1: venv, migrate, initdata (twice), deterministic page; v2 adds its migration and datasets; v1 still serves the same bytes on the v2 schema', async () => {
    const v1 = await release('v1');
    const venv = await sh(v1, 'python3 -m venv venv && venv/bin/pip install --disable-pip-version-check -q -r requirements.txt');
    expect(venv.code, venv.stderr).toBe(0);
    await build(v1);
    const m1 = await sh(v1, 'make migrate');
    expect(m1.code, m1.stderr).toBe(0);
    expect(m1.stdout).toContain('migrate: applied 0001_users.sql\nmigrate: applied 0002_tags.sql');
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
    expect(page1.body).toContain(`<p id="version">Version 1.0.0, revision ${repo.tags.v1}</p>`);
    expect(page1.body).toContain('<li>admin@example.org (Admin) [admin]</li>\n<li>alice@example.org (Alice Martin)</li>');
    expect(page1.body).not.toContain('datasets');
    expect((await get(`${app.web}/`)).body).toBe(page1.body);
    await app.stop();

    const v2 = await release('v2');
    await build(v2);
    const m2 = await sh(v2, 'python3 -m tools.migrate');
    expect(m2.stdout.trim()).toBe('migrate: applied 0003_datasets.sql\nmigrate: 1 applied, 3 in total');
    app = await serve(v2);
    const page2 = await get(`${app.web}/`);
    expect(page2.body).toContain('<p id="banner">New in version 2: datasets.</p>');
    expect(page2.body).toContain('<ul id="datasets">\n<li>Air quality stations</li>\n<li>Public transport stops</li>\n</ul>');
    expect(page2.body).toContain('<footer>client 2.0.0</footer>');
    await app.stop();

    // Rollback: the old release on the newer schema serves exactly what it served before.
    const back = await sh(v1, 'make migrate');
    expect(back.stdout).toContain('does not know (left as they are): 0003_datasets.sql');
    app = await serve(v1);
    expect((await get(`${app.web}/`)).body).toBe(page1.body);
    await app.stop();
  });

  it('deps-changed: npm ci and the build work offline; the client reports its new version', async () => {
    const dir = await release('deps-changed');
    await build(dir);
    expect(readFileSync(join(dir, 'client/build/build-info.json'), 'utf8')).toContain('"version": "2.0.1"');
  });

  it('broken-migration: fails, says which file, and leaves nothing of it behind', async () => {
    const dir = await release('broken-migration');
    const before = await querySql(db.name, 'SELECT version FROM schema_migrations ORDER BY version');
    const r = await sh(dir, 'python3 -m tools.migrate');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/migrate: 0003_catalog_entries\.sql failed and was rolled back: ERROR 42703: column "missing_column" of relation "catalog_entries" does not exist/);
    expect(await querySql(db.name, "SELECT to_regclass('catalog_entries') IS NULL")).toBe('t\n');
    expect(await querySql(db.name, 'SELECT version FROM schema_migrations ORDER BY version')).toBe(before);
  });

  it('broken-build: npm run build fails and names the file', async () => {
    const dir = await release('broken-build');
    const r = await sh(join(dir, 'client'), 'npm run build');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/build failed: src\/catalog\.js: SyntaxError/);
    expect(existsSync(join(dir, 'client/build'))).toBe(false);
  });

  it('crash-on-start: the API exits at once with an error', async () => {
    const dir = await release('crash-on-start');
    const r = await sh(dir, 'timeout 10 python3 -m server.main', { APP_PORT: String(await freePort()) });
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
    const dir = join(base, 'v1');
    const webPort = await freePort();
    const deadPort = await freePort();
    const web = start('node', ['./build'], join(dir, 'client'), { PORT: String(webPort), VITE_API_SSR_URL: `http://127.0.0.1:${deadPort}` });
    await waitHttp(`http://127.0.0.1:${webPort}/health`);
    const page = await get(`http://127.0.0.1:${webPort}/`);
    expect(page.status).toBe(502);
    expect(page.body).toContain('<p id="error">The API is unavailable: /version unreachable (ECONNREFUSED).</p>');
    web.proc.kill('SIGTERM');
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
