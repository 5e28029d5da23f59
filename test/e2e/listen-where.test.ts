// Where a new release's program listens, on a real host, with gunicorn from the lab's package index: a program that
// does not listen on the port its slot gives it (a port written in its command instead of {port}, a unix socket) is
// named as soon as it listens elsewhere, with where and the fix, and never takes the live slot's visitors meanwhile.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { pypiIndexUrl } from '../hosts/index.ts';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';
import { APP, asRoot, get, labEnvironment } from './support.ts';

/** A WSGI app (gunicorn's own example's shape): every path answers 200 with the commit's VERSION. */
const WSGI = `def app(environ, start_response):
    with open("VERSION", "rb") as f:
        body = f.read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
`;

let repo: string;
const root = mkdtempSync(join(tmpdir(), 'ops-listen-'));
const lab = labEnvironment('lsn', () => {
  repo = join(root, 'app');
  initRepo(repo, { 'app.py': WSGI, 'VERSION': 'v1\n', 'requirements.txt': 'gunicorn==23.0.0\n' });
  return config();
});

/** The environment: gunicorn started as its docs show, its bind where the case puts it; `api` when given. */
function config(extra: { api?: string; health_timeout?: number } = {}): Record<string, unknown> {
  const gunicorn = '{release}/venv/bin/gunicorn';
  return {
    app: APP,
    repository: repo,
    ref: 'main',
    hosts: [{ name: lab.host.name, address: lab.host.address, user: lab.host.user, host_key: lab.host.hostKey }],
    ssh: { identity_file: lab.host.identityFile, connect_timeout: 10 },
    release: { python_requirements: 'requirements.txt', node_dir: '', build: 'true', migrate: 'true' },
    packages: { pip_index_url: pypiIndexUrl },
    switch: { drain: 1, health_timeout: extra.health_timeout ?? 30 },
    programs: {
      web: { command: `${gunicorn} app:app`, port: 5100, health: '/health' },
      ...(extra.api ? { api: { command: `${gunicorn} ${extra.api} app:app`, port: 5200, health: '/health' } } : {}),
    },
    routes: { '/': 'web' },
  };
}

const run = (ref: string) => deploy(lab.project.ctx(), lab.project.env(), { ref });

/** What the site answers, asked back to back until `work` settles: each status and body, how many times, first and last (ms). */
async function watch<T>(work: Promise<T>): Promise<{ result: T | Error; seen: Record<string, { n: number; first: number; last: number }> }> {
  const seen: Record<string, { n: number; first: number; last: number }> = {};
  let over = false;
  const settled = work.then((r) => r, (e: Error) => e).finally(() => { over = true; });
  while (!over) {
    const r = await get(lab.host).catch((e: Error) => ({ status: 0, body: e.message }));
    const key = `${r.status} ${r.body.trim()}`;
    const now = Date.now();
    seen[key] = { n: (seen[key]?.n ?? 0) + 1, first: seen[key]?.first ?? now, last: now };
  }
  return { result: await settled, seen };
}

describe.sequential('where a new release listens', () => {
  it("gunicorn.conf.py binding the blue slot's port with reuse_port: the green start fails at once naming it, stopped before it answers more than a moment of the live slot's visitors", async () => {
    // gunicorn reads ./gunicorn.conf.py from its working directory: the bind is the app's, not the command's.
    commit(repo, { 'gunicorn.conf.py': 'bind = "127.0.0.1:5100"\nreuse_port = True\n' }, 'bind in gunicorn.conf.py');
    gitIn(repo, ['tag', 'conf1']);
    await run('conf1');
    expect((await get(lab.host)).body).toBe('v1\n');
    commit(repo, { 'VERSION': 'v2\n' }, 'v2');
    gitIn(repo, ['tag', 'conf2']);
    const { result, seen } = await watch(run('conf2'));
    const message = (result as Error).message;
    console.log('answers the site gave during the failed deploy:', seen);
    expect(message).toMatch(/release \S+ did not become healthy on slot green: program web listens on 127\.0\.0\.1:5100, slot blue's port \(the live release's, or the one kept warm there\): a port the app takes from elsewhere than its slot .*gunicorn's reuse_port.*\{port\}/);
    expect(message).toMatch(/the live release keeps serving/);
    // Looked for twice a second and stopped at once: the live slot's visitors got the failed release for a moment
    // (about a second), not for the health timeout's 30 s.
    const v2 = seen['200 v2'];
    if (v2) expect(v2.last - v2.first).toBeLessThan(2500);
    // Stopping it drops what the kernel had queued on its listening socket (Linux resets connections a closed
    // SO_REUSEPORT listener had not accepted, unless net.ipv4.tcp_migrate_req): a few 502s from nginx right after its
    // last answer, nothing else and never later.
    const others = Object.entries(seen).filter(([k]) => k !== '200 v1' && k !== '200 v2');
    for (const [k, x] of others) {
      expect(k, 'only nginx 502s, as the failed release stops').toMatch(/^502 /);
      expect(v2, 'a 502 only after the failed release answered').toBeDefined();
      expect(x.n).toBeLessThanOrEqual(5);
      expect(x.first).toBeGreaterThanOrEqual(v2!.first);
      expect(x.last - v2!.last).toBeLessThan(1500);
    }
    expect((await get(lab.host)).body).toBe('v1\n');
    expect(await asRoot(lab.host, 'ss -Htlnp sport = :5100')).not.toMatch(/,pid=\d+.*\n.*pid=/);
  }, 600_000);

  it('a program listening on its framework\'s default port, another on a unix socket only: the verdict names where each listens and the fix', async () => {
    gitIn(repo, ['rm', '-q', 'gunicorn.conf.py']);
    commit(repo, {}, 'no gunicorn.conf.py: gunicorn binds its default, 127.0.0.1:8000');
    gitIn(repo, ['tag', 'default-port']);
    lab.project.write(config({ api: '--bind unix:/tmp/sample-api.sock', health_timeout: 6 }));
    const message = ((await run('default-port').catch((e: Error) => e)) as Error).message;
    expect(message).toMatch(/web:510\d:\/health \(Failed to connect to 127\.0\.0\.1 port 510\d[^)]*; program web listens on 127\.0\.0\.1:8000, not on its port 510\d: .*\{port\}/);
    expect(message).toMatch(/api:520\d:\/health \(Failed to connect to 127\.0\.0\.1 port 520\d[^)]*; program api listens on unix socket \/tmp\/sample-api\.sock, not on its port 520\d/);
    expect((await get(lab.host)).body).toBe('v1\n');
  }, 600_000);
});
