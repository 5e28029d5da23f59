// Steps are data: their scripts are checked by exact text (snapshots in __snapshots__/, reviewed like code)
// and by the properties that matter — who runs them, what is quoted, what is validated — without a host.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseEnvironment, type Environment } from '../../core/config/environment.ts';
import { quoteDotenv, renderDotenv } from '../../core/dotenv.ts';
import { acquireLock, releaseLock } from '../../core/steps/lock.ts';
import { applyNginx, renderTemplate, site, upstreams } from '../../core/steps/nginx.ts';
import { appCommand, createRelease, dependencies, deployState, pruneReleases, releaseId } from '../../core/steps/release.ts';
import { expand, slotConfig, startSlot, stopSlot, switchTo } from '../../core/steps/switch.ts';
import { installPackages, packageIndexes, packageList, runtimes } from '../../core/steps/system.ts';
import { packageIndexFiles } from '../../core/packages.ts';
import { scriptText } from '../../core/remote/wrap.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

function env(extra: Record<string, unknown> = {}): Environment {
  const config = parseEnvironment(
    {
      app: 'shop',
      domain: 'shop.example.org',
      hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }],
      programs: {
        server: { command: '{release}/venv/bin/python -m server.main', port: 3579, health: '/health', env: { APP_PORT: '{port}' } },
        client: { command: '{node} ./build', directory: 'client', port: 3000, env: { PORT: '{port}', API: 'http://127.0.0.1:{port:server}' } },
      },
      env: { MODE: 'live', DB: { secret: 'database_url' }, PASSWORDS: { secret: 'passwords' } },
      ...extra,
    },
    'test',
  );
  return { name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }], appUser: 'shop', baseDir: '/srv/shop', url: 'https://shop.example.org' };
}

/** Every script must at least parse as bash. */
function bashSyntax(script: string): void {
  execFileSync('bash', ['-n'], { input: scriptText({ name: 'x', as: 'root', script }) });
}

describe('step scripts, by exact text', () => {
  const e = env();
  const release = '/srv/shop/releases/20261125T120000Z-0123456789ab';
  const steps = {
    lock: acquireLock(e, { operation: 'deploy', actor: "o'brien@laptop", runUrl: 'https://github.com/o/r/actions/runs/1', holderPid: 4242, wait: 0 }, 'ops_report extra 1'),
    unlock: releaseLock(e, 4242, ['{"a":1}']),
    state: deployState(e, '0123456789abcdef0123456789abcdef01234567'),
    release: createRelease(e, { id: '20261125T120000Z-0123456789ab', sha: '0123456789abcdef0123456789abcdef01234567', ref: 'v1', environment: 'test', actor: 'me', time: 't', run: '', deps: { python: 'p', node: 'n' } }),
    dependencies: dependencies(e, release, { python: 'aaaa', node: 'bbbb' }),
    build: appCommand(e, release, 'build', 'make build'),
    start: startSlot(e, 'green', release, '20261125T120000Z-0123456789ab'),
    switch: switchTo(e, 'green', '20261125T120000Z-0123456789ab', true),
    stop: stopSlot(e, 'blue', 5),
    prune: pruneReleases(e, 5),
    packages: installPackages(e),
    runtimes: runtimes(e),
    'package indexes': packageIndexes(e, { pipConf: '/srv/shop/.ops/uploads/x.pipConf', npmrc: undefined }),
    'runtimes, node from the npm registry': (() => {
      const n = env({ runtimes: { node: { strategy: 'npm', version: '16.20.2' } }, packages: { npm_registry: 'https://npm.example.org/repo', npm_token: { secret: 'npm.token' } } });
      return runtimes(n, packageIndexFiles(n, { npm: { token: 't0ken' } }));
    })(),
  };
  it.each(Object.keys(steps))('%s', (name) => {
    const step = steps[name as keyof typeof steps];
    bashSyntax(step.script);
    expect({ as: step.as, timeout: step.timeout, script: step.script }).toMatchSnapshot();
  });

  it('run app code as the app user and system changes as root', () => {
    expect(steps.build.as).toBe('app');
    expect(steps.dependencies.as).toBe('app');
    for (const s of [steps.lock, steps.release, steps.start, steps.switch, steps.stop, steps.prune, steps.packages]) expect(s.as).toBe('root');
  });

  it('quote every value that reaches the shell', () => {
    expect(steps.lock.script).toContain(`'actor=o'\\''brien@laptop'`);
  });
});

describe('slots and programs', () => {
  const e = env();
  it('expands placeholders per slot, with each program on its slot port', () => {
    expect(expand(e, 'http://127.0.0.1:{port:server}', '/r', 'client', 'blue')).toBe('http://127.0.0.1:3579');
    expect(expand(e, '{port}', '/r', 'client', 'green')).toBe('3001');
    expect(expand(e, '{node} ./build', '/r', 'client', 'blue')).toBe('/usr/bin/node ./build');
    expect(() => expand(e, '{nope}', '/r', 'client', 'blue')).toThrow(/unknown placeholder \{nope\}/);
    expect(() => expand(e, '{port:db}', '/r', 'client', 'blue')).toThrow(/names no program/);
  });
  it('writes supervisor environment values escaped (% doubled, quotes escaped)', () => {
    const conf = slotConfig(env({ programs: { server: { command: 'run', port: 3579, env: { X: '100% "ok"' } }, client: { command: 'run', port: 3000 } } }), 'blue', '/r', 'id');
    expect(conf).toContain('X="100%% \\"ok\\""');
    expect(conf).toContain('[group:shop-blue]\nprograms=shop-blue-server,shop-blue-client');
    expect(conf).toContain('user=shop');
  });
  it('points the upstreams at one slot', () => {
    expect(upstreams(e, 'green')).toContain('upstream shop_server {\n    server 127.0.0.1:3580;');
    expect(upstreams(e, 'blue')).toContain('default "blue";');
  });
});

describe('nginx site', () => {
  it('routes / to the client and strips /api/ for the API; security headers; no version', () => {
    const s = site(env({ tls: { mode: 'letsencrypt', email: 'ops@example.org' } }), true);
    expect(s).toContain('location /api/ {\n        proxy_pass http://shop_server/;');
    expect(s).toContain('location / {\n        proxy_pass http://shop_client;');
    expect(s).toContain('add_header X-Frame-Options DENY always;');
    expect(s).toContain('ssl_certificate /etc/letsencrypt/live/shop.example.org/fullchain.pem;');
    expect(s).toContain('return 301 https://$host$request_uri;');
  });
  it('serves only the ACME challenge until the certificate exists', () => {
    const s = site(env({ tls: { mode: 'letsencrypt', email: 'ops@example.org' } }), false);
    expect(s).not.toContain('listen 443');
    expect(s).toContain('location ^~ /.well-known/acme-challenge/');
  });
  it('plain http when TLS is off', () => {
    const s = site(env({ tls: { mode: 'off' } }), true);
    expect(s).not.toContain('ssl_');
    expect(s).toContain('listen 80 default_server;');
  });
  it('names unknown placeholders of a custom template', () => {
    expect(() => renderTemplate('{{app}} {{oops}}', { app: 'x' }, 'my.conf')).toThrow(/my.conf uses unknown placeholder \{\{oops\}\}/);
  });
  it('restores the previous files and fails with nginx\'s message when nginx -t refuses', () => {
    const s = applyNginx({ item: 'x', files: [{ path: '/etc/nginx/x.conf', content: 'y' }] }).script;
    expect(s).toMatch(/if ! out=\$\(nginx -t 2>&1\); then\n    rm -rf \/etc\/nginx\n    mv "\$backup\/nginx" \/etc\/nginx/);
    bashSyntax(s);
  });
});

describe('packages and runtimes', () => {
  it('installs the runtimes of the chosen strategy and certbot only with Let\'s Encrypt', () => {
    expect(packageList(env())).toEqual(expect.arrayContaining(['python3.11', 'python3.11-venv', 'nodejs', 'npm']));
    expect(packageList(env())).not.toContain('certbot');
    expect(packageList(env({ tls: { mode: 'letsencrypt', email: 'a@b.c' } }))).toContain('certbot');
    const managed = env({ runtimes: { python: { strategy: 'pyenv', version: '3.8.9' }, node: { strategy: 'nvm', version: '16.13.2' } } });
    expect(packageList(managed)).not.toContain('nodejs');
    expect(runtimes(managed).script).toContain('/opt/nvm/versions/node/v16.13.2/bin/node');
    expect(runtimes(managed).script).toContain('/opt/pyenv/versions/3.8.9/bin/python3');
  });
});

describe('release ids', () => {
  it('sort by time and hold the sha', () => {
    expect(releaseId('0123456789abcdef0123456789abcdef01234567', new Date('2026-11-25T12:34:56.789Z'))).toBe('20261125T123456Z-0123456789ab');
  });
});

describe('.env', () => {
  it('reads back exactly through bash (set -a; . ./.env)', () => {
    const values = { MODE: 'live', DB: 'postgresql://u:p%40ss@h/db', PASSWORDS: { 'a@b.c': 'pa$$ "w0rd" `x` \\ end' } };
    const e = env();
    const text = renderDotenv(e, { database_url: values.DB, passwords: values.PASSWORDS });
    const dir = mkdtempSync(join(tmpdir(), 'ops-dotenv-'));
    writeFileSync(join(dir, '.env'), text);
    const out = execFileSync('bash', ['-c', 'set -a; . ./.env; set +a; printf "%s\\n" "$MODE" "$DB" "$PASSWORDS"'], { cwd: dir, encoding: 'utf8' });
    expect(out).toBe(`live\n${values.DB}\n${JSON.stringify(values.PASSWORDS)}\n`);
  });
  it('lists every missing secret at once', () => {
    expect(() => renderDotenv(env(), {})).toThrow(/lacks 2 secrets the .env needs:\n  - DB needs the secret "database_url"\n  - PASSWORDS needs the secret "passwords"/);
  });
  it('escapes what a shell would expand', () => {
    expect(quoteDotenv('$(id) `id` "q" \\')).toBe('"\\$(id) \\`id\\` \\"q\\" \\\\"');
  });
});
