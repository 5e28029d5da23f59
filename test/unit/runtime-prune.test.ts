// Provision's runtimes step removes the runtime versions nothing on the host can use (pruneRuntimes), run by bash on a
// scratch host root: an app's pins (registerRuntimes, every app on the host), the .ops-runtimes of any kept release of
// any app, a venv's interpreter, a supervisor file, a running process keep a version; a release or an app an older
// ops made (nothing recorded of its runtimes) keeps them all, and says so.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { scriptPrelude } from '../../core/remote/wrap.ts';
import { REPORT_PREFIX } from '../../core/remote/types.ts';
import { pruneRuntimes, registerRuntimes } from '../../core/steps/system.ts';
import { SYSTEM_FUNCTIONS } from '../../core/steps/libraries.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

function env(app: string, node: string, python = '3.11'): Target {
  const config = parseEnvironment(
    {
      app,
      hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }],
      programs: { web: { command: '{node} server.js {port}', port: app === 'shop' ? 4000 : 5000 } },
      routes: { '/': 'web' },
      runtimes: { python: python === '3.11' ? { strategy: 'debian', version: '3.11' } : { strategy: 'pyenv', version: python }, node: { strategy: 'npm', version: node } },
      packages: { npm_registry: 'http://registry.example/' },
    },
    'test',
  );
  return resolveTarget({ name: app, dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: app, baseDir: `/srv/${app}`, url: 'http://x' });
}

/** A runtime version "installed" under the scratch root: its directory with a binary. */
function runtime(root: string, dir: string): void {
  mkdirSync(join(root, dir, 'bin'), { recursive: true });
  writeFileSync(join(root, dir, 'bin', 'node'), '');
}

/** A kept release `id` of app `app` (under /srv/<app>), with its .ops-runtimes lines (none: made by an older ops). */
function release(root: string, app: string, id: string, runtimes?: string[]): void {
  mkdirSync(join(root, 'srv', app, 'releases', id), { recursive: true });
  mkdirSync(join(root, 'srv', app, '.ops', 'releases', id), { recursive: true });
  if (runtimes) writeFileSync(join(root, 'srv', app, '.ops', 'releases', id, '.ops-runtimes'), runtimes.map((l) => `${l}\n`).join(''));
}

function host(): string {
  const root = mkdtempSync(join(tmpdir(), 'ops-rtprune-'));
  mkdirSync(join(root, 'etc', 'supervisor', 'conf.d'), { recursive: true });
  mkdirSync(join(root, 'proc'), { recursive: true });
  return root;
}

/** The runtimes step's registration of `e` then the prune, on `root`: its reports. */
function provision(root: string, e: Target): { removed: string[]; kept: string[] } {
  const script = `${scriptPrelude}\n${SYSTEM_FUNCTIONS}\n${registerRuntimes(e, root)}\n${pruneRuntimes(root)}`;
  const out = execFileSync('bash', ['-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const reports = out.split('\n').filter((l) => l.startsWith(REPORT_PREFIX)).map((l) => l.slice(REPORT_PREFIX.length));
  return {
    removed: reports.filter((l) => l.startsWith('runtime_removed ')).map((l) => l.replace(/^runtime_removed \d+ /, '')),
    kept: reports.filter((l) => l.startsWith('runtime_kept ')),
  };
}

const NODE = (v: string) => `/opt/ops-node/v${v}`;

describe('pruneRuntimes', () => {
  it('removes a Node.js no app pins and no kept release was built with; keeps the one a kept release names', () => {
    const root = host();
    for (const v of ['20.1.0', '22.1.0', '24.1.0']) runtime(root, NODE(v));
    release(root, 'shop', 'r1', ['python 3.11 /usr/bin/python3.11', `node 22.1.0 ${NODE('22.1.0')}/bin/node`]);
    release(root, 'shop', 'r2', ['python 3.11 /usr/bin/python3.11', `node 24.1.0 ${NODE('24.1.0')}/bin/node`]);
    const r = provision(root, env('shop', '24.1.0'));
    expect(r).toEqual({ removed: [NODE('20.1.0')], kept: [] });
    expect(existsSync(join(root, NODE('20.1.0')))).toBe(false);
    expect(existsSync(join(root, NODE('22.1.0')))).toBe(true); // a rollback to r1 runs on it
    expect(existsSync(join(root, NODE('24.1.0')))).toBe(true);
  });

  it("keeps what another app on the host pins or its kept releases name, not a version that only prefixes another's", () => {
    const root = host();
    runtime(root, NODE('20.1.0'));
    release(root, 'blog', 'b1', [`node 22.1.0 ${NODE('22.1.0')}/bin/node`]);
    expect(provision(root, env('blog', '20.1.0')).removed).toEqual([]);
    for (const v of ['20.1.01', '22.1.0', '24.1.0']) runtime(root, NODE(v));
    const r = provision(root, env('shop', '24.1.0'));
    expect(r.removed).toEqual([NODE('20.1.01')]);
    for (const v of ['20.1.0', '22.1.0', '24.1.0']) expect(existsSync(join(root, NODE(v)))).toBe(true);
  });

  it('keeps a version a supervisor file names, a running process runs, or a venv of a dependency set is made on', () => {
    const root = host();
    for (const v of ['18.0.0', '19.0.0', '20.1.0', '24.1.0']) runtime(root, NODE(v));
    mkdirSync(join(root, 'opt/pyenv/versions/3.8.9/bin'), { recursive: true });
    mkdirSync(join(root, 'opt/pyenv/versions/3.9.1/bin'), { recursive: true });
    writeFileSync(join(root, 'etc/supervisor/conf.d/worker.conf'), `[program:worker]\ncommand=${NODE('18.0.0')}/bin/node worker.js\n`);
    mkdirSync(join(root, 'proc/4242'), { recursive: true });
    symlinkSync(`${NODE('19.0.0')}/bin/node`, join(root, 'proc/4242/exe'));
    const venv = join(root, 'srv/shop/shared/deps/venv-0123456789abcdef/bin');
    mkdirSync(venv, { recursive: true });
    symlinkSync(join(root, 'opt/pyenv/versions/3.8.9/bin/python3'), join(venv, 'python'));
    const r = provision(root, env('shop', '24.1.0'));
    expect(r.removed.sort()).toEqual([NODE('20.1.0'), '/opt/pyenv/versions/3.9.1']);
    for (const d of [NODE('18.0.0'), NODE('19.0.0'), '/opt/pyenv/versions/3.8.9']) expect(existsSync(join(root, d))).toBe(true);
  });

  it('keeps everything, and says why, for a kept release an older ops made (no record of its runtimes)', () => {
    const root = host();
    for (const v of ['20.1.0', '24.1.0']) runtime(root, NODE(v));
    release(root, 'shop', 'old');
    const r = provision(root, env('shop', '24.1.0'));
    expect(r.removed).toEqual([]);
    expect(r.kept.join('\n')).toMatch(/release old of .*srv\/shop has no record of the runtimes it was built with/);
    expect(existsSync(join(root, NODE('20.1.0')))).toBe(true);
  });

  it('keeps everything, and says why, while another app ops set up here has no record of its pins (an older ops)', () => {
    const root = host();
    for (const v of ['20.1.0', '24.1.0']) runtime(root, NODE(v));
    mkdirSync(join(root, 'etc/nginx/ops-upstreams'), { recursive: true });
    writeFileSync(join(root, 'etc/nginx/ops-upstreams/blog.conf'), '');
    writeFileSync(join(root, 'etc/supervisor/conf.d/shop-blue.conf'), '');
    const r = provision(root, env('shop', '24.1.0'));
    expect(r.removed).toEqual([]);
    expect(r.kept.join('\n')).toMatch(/the app blog on this host has no record of its runtimes/);
    // Once blog is provisioned with this ops, its pins are known: what neither uses goes.
    expect(provision(root, env('blog', '24.1.0')).removed).toEqual([NODE('20.1.0')]);
  });
});
