// Steps are data: their scripts are checked by exact text (snapshots in __snapshots__/, reviewed like code)
// and by the properties that matter — who runs them, what is quoted, what is validated — without a host.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { asString, environLoader, renderDotenv } from '../../core/dotenv.ts';
import { OpsError } from '../../core/errors.ts';
import { acquireLock, releaseLock, settleLostRun } from '../../core/steps/lock.ts';
import { applyNginx, ensureUpstreams, provisionNginx, siteOwn } from '../../core/steps/nginx.ts';
import { BASE_CONFIG_PREVIOUS, baseConfig, cachesInherited, inheritedCacheLinesShell, releaseMap, renderTemplate, site, slotPortLinesShell, slotPortsElsewhere, upstreams } from '../../core/steps/nginx-config.ts';
import { appCommand, nodeDependencies, pythonDependencies } from '../../core/steps/app.ts';
import { carryAssets, createRelease, deployState, markRelease, mirrorGit, pruneReleases, releaseId } from '../../core/steps/release.ts';
import { expand, putPreviousBack, rollbackStep, slotConfig, stageAssets, startSlot, stopSlot, supervisorOwn, switchTo } from '../../core/steps/switch.ts';
import { onHost, quote } from '../../core/shell.ts';
import { appUser, debianRuntimeProblem, installPackages, packageIndexes, packageList, runtimes } from '../../core/steps/system.ts';
import { packageIndexFiles } from '../../core/packages.ts';
import { scriptPrelude, scriptText } from '../../core/remote/wrap.ts';
import { asShipped, putChecked, putFile, putUnlessHostOwn } from '../../core/steps/script.ts';
import { runInitdata } from '../../core/steps/initdata.ts';
import { ASSETS_FUNCTIONS, SYSTEM_FUNCTIONS } from '../../core/steps/libraries.ts';
import { gatePaths } from '../../core/steps/nginx-gate.ts';
import { visitorAddress } from '../../core/steps/libraries.ts';
import { nginxBlocker } from '../../core/ops/host-state.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

function env(extra: Record<string, unknown> = {}): Target {
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
  return resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }], appUser: 'shop', baseDir: '/srv/shop', url: 'https://shop.example.org' });
}

/** Every script must at least parse as bash. */
function bashSyntax(script: string): void {
  execFileSync('bash', ['-n'], { input: scriptText({ name: 'x', as: 'root', script }) });
}

describe('step scripts, by exact text', () => {
  const e = env();
  const release = '/srv/shop/releases/20261125T120000Z-0123456789ab';
  const steps = {
    lock: acquireLock(e, { operation: 'deploy', actor: "o'brien@laptop", runUrl: 'https://github.com/o/r/actions/runs/1', runId: '0123456789abcdef', wait: 0 }, 'ops_report extra 1'),
    unlock: releaseLock(e, '0123456789abcdef', ['{"a":1}']),
    settle: settleLostRun(e, '0123456789abcdef', ['0123456789ab']),
    state: deployState(e, ['0123456789abcdef0123456789abcdef01234567'], { commit: '0123456789abcdef0123456789abcdef01234567' }),
    release: createRelease(e, { id: '20261125T120000Z-0123456789ab', sha: '0123456789abcdef0123456789abcdef01234567', ref: 'v1', environment: 'test', actor: 'me', time: 't', run: '', deps: { python: 'p', node: 'n' } }, { dotenv: '/srv/shop/.ops/uploads/x.env', environ: '/srv/shop/.ops/uploads/x.environ', masks: '/srv/shop/.ops/uploads/x.masks' }),
    'python dependencies': pythonDependencies(e, release, 'aaaa'),
    'node dependencies': nodeDependencies(e, release, 'bbbb'),
    build: appCommand(e, release, 'build', 'make build'),
    start: startSlot(e, 'green', release, '20261125T120000Z-0123456789ab'),
    switch: switchTo(e, 'green', '20261125T120000Z-0123456789ab', true),
    stop: stopSlot(e, 'blue', 5),
    'previous back': putPreviousBack(e, 'green'),
    // The release chosen on the host; the audit line and the unlock as core/ops/locked.ts writes them.
    rollback: rollbackStep(e, undefined, markRelease(e, onHost('rollback_from'), 'abandoned', ['rolled back to ', onHost('release_id'), ' by me at t']).script, {
      done: releaseLock(e, '0123456789abcdef', ['{"a":1}']).script,
      refused: releaseLock(e, '0123456789abcdef').script,
    }, 'nginx=01234567,programs=89abcdef'),
    prune: pruneReleases(e, ['20261120T120000Z-0123456789ab', '20261121T120000Z-0123456789ab']),
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
    expect(steps['python dependencies'].as).toBe('app');
    expect(steps['node dependencies'].as).toBe('app');
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
  it("takes {{name}} as a literal {name} (a log format's fields), and leaves other braces as they are", () => {
    expect(expand(e, '{{asctime}} {{levelname}}: {{message}} on {port}', '/r', 'client', 'blue')).toBe('{asctime} {levelname}: {message} on 3000');
    expect(expand(e, '{{port:server}}', '/r', 'client', 'blue')).toBe('{port:server}');
    expect(expand(e, '{"a":{"b":1}} ${HOME} find . -exec ls {} ;', '/r', 'client', 'blue')).toBe('{"a":{"b":1}} ${HOME} find . -exec ls {} ;');
    // The setting is named, and the hint says how to write the literal.
    expect(() => expand(e, '{asctime}', '/r', 'client', 'blue', 'programs.client.env.LOG_FORMAT')).toThrow(/^programs\.client\.env\.LOG_FORMAT: unknown placeholder \{asctime\}$/);
    const conf = () => slotConfig(env({ programs: { server: { command: 'run', port: 3579, env: { FMT: '{levelname} {message}' } }, client: { command: 'run {x}', port: 3000 } } }), 'blue', '/r', 'id');
    // refused when the environment file is read (core/config/placeholders.ts), before any plan: every one, each with its literal
    expect(conf).toThrow(/^test has 2 problems:\n {2}- programs\.server\.env\.FMT: unknown placeholder \{levelname\}.*write \{\{levelname\}\}\)\n {2}- programs\.client\.command: unknown placeholder \{x\}/s);
  });
  it('writes supervisor values encoded for supervisor (% doubled, quoted for both shlex modes; see supervisor.test.ts)', () => {
    const conf = slotConfig(env({ programs: { server: { command: 'run --fmt %(h)s', port: 3579, env: { X: '100% "ok" now', Y: "it's" } }, client: { command: 'run', port: 3000 } } }), 'blue', '/r', 'id');
    expect(conf).toContain(`X='100%% "ok" now',Y="it's"`);
    expect(conf).toContain('command=run --fmt %%(h)s');
    expect(conf).toMatch(/OPS_RELEASE='id',OPS_SLOT='blue'/);
    expect(conf).toContain('[group:shop-blue]\nprograms=shop-blue-server,shop-blue-client');
    expect(conf).toContain('user=shop');
  });
  it('gives a program every variable of its env, named "__proto__" or "constructor" too; {port:constructor} names no program', () => {
    const conf = slotConfig(env({ programs: { server: { command: 'run', port: 3579, env: JSON.parse('{"__proto__": "p", "constructor": "c"}') }, client: { command: 'run', port: 3000 } } }), 'blue', '/r', 'id');
    expect(conf).toMatch(/OPS_SLOT='blue',__proto__='p',constructor='c'\n/);
    expect(() => expand(e, '{port:constructor}', '/r', 'client', 'blue')).toThrow(/names no program/);
  });
  it('points the upstreams at one slot', () => {
    expect(upstreams(e, 'green', '')).toContain('upstream shop_server {\n    server 127.0.0.1:3580;');
    expect(upstreams(e, 'blue', '')).toContain('default "blue";');
  });
});

describe("a deploy's read of nginx -t", () => {
  // nginx -t's own lines (nginx 1.22, Debian 12), as the state step reports them when it fails.
  const failing = (file: string) => [`nginx: [emerg] unknown directive "bogus_directive" in ${file}:1`, 'nginx: configuration file /etc/nginx/nginx.conf test failed'];
  it("names the first error of a file the switch does not write, and lets pass one of the app's own (the switch writes it again)", () => {
    const e = env();
    expect(nginxBlocker(e, [])).toBeUndefined();
    expect(nginxBlocker(e, failing('/etc/nginx/sites-enabled/handmade'))).toBe('[emerg] unknown directive "bogus_directive" in /etc/nginx/sites-enabled/handmade:1');
    for (const own of [e.layout.nginxSite, e.layout.nginxSiteEnabled, e.layout.nginxUpstreams]) expect(nginxBlocker(e, failing(own)), own).toBeUndefined();
    expect(nginxBlocker(e, ['nginx: [emerg] open() "/etc/nginx/nginx.conf" failed (2: No such file or directory)', 'nginx: configuration file /etc/nginx/nginx.conf test failed'])).toBe('[emerg] open() "/etc/nginx/nginx.conf" failed (2: No such file or directory)');
  });
  it("names a second default_server loaded before the app's site when the switch writes the site as the default server (it would not repair it), not otherwise", () => {
    const duplicate = (file: string) => [`nginx: [emerg] a duplicate default server for 0.0.0.0:80 in ${file}:2`, 'nginx: configuration file /etc/nginx/nginx.conf test failed'];
    const alone = env({ domain: undefined });
    expect(nginxBlocker(alone, duplicate(alone.layout.nginxSiteEnabled))).toBe(
      `[emerg] a duplicate default server for 0.0.0.0:80 in ${alone.layout.nginxSiteEnabled}:2: another enabled site says default_server for that address, loaded before shop's site, which the switch writes as the default server (it has no domain); nginx allows one per address`,
    );
    expect(nginxBlocker(env({ nginx: { default_server: true } }), duplicate(alone.layout.nginxSiteEnabled))).toContain('(nginx.default_server); nginx allows one per address');
    // Not the default server: the switch writes the site without it, which repairs it.
    expect(nginxBlocker(env(), duplicate(env().layout.nginxSiteEnabled))).toBeUndefined();
  });
  it('is read only by a deploy that goes on (with the commits it sends), not on the no-op path', () => {
    expect(deployState(env(), ['a'.repeat(40)]).script).toContain('nginx_all=$(nginx -T 2>&1)');
    expect(deployState(env()).script).not.toContain('nginx -T');
  });
});

describe("a deploy's read of other nginx files naming a slot's port", () => {
  // nginx -T's text (nginx 1.22): each file after its "# configuration file <path>:" line.
  const dump = (e: ReturnType<typeof env>) =>
    [
      '# configuration file /etc/nginx/nginx.conf:',
      'http {',
      '    include /etc/nginx/sites-enabled/*;',
      '}',
      `# configuration file ${e.layout.nginxSiteEnabled}:`,
      `include ${e.layout.nginxUpstreams};`,
      `# configuration file ${e.layout.nginxUpstreams}:`,
      'upstream shop_server {',
      '    server 127.0.0.1:3579;',
      '}',
      '# configuration file /etc/nginx/sites-enabled/api-by-hand:',
      'server {',
      '    listen 127.0.0.1:3000;',
      '    server_name api.example.org;',
      '    # proxy_pass http://127.0.0.1:3579; (an old one)',
      '    location / { proxy_pass http://localhost:3580/; }',
      '    location /x { proxy_pass http://127.0.0.1:35799; }',
      '}',
      '# configuration file /etc/nginx/conf.d/monitor.conf:',
      'upstream metrics { server [::1]:3000 max_fails=0; }',
    ].join('\n');
  const run = (e: ReturnType<typeof env>, text: string) =>
    execFileSync('bash', ['-c', `set -euo pipefail\nnginx() { printf '%s\\n' "$NGINX_T"; }\n${slotPortLinesShell(e)}\n[ -z "$nginx_pinned" ] || while IFS= read -r line; do echo "pinned $line"; done <<< "$nginx_pinned"`], { encoding: 'utf8', env: { PATH: process.env.PATH, NGINX_T: text } });
  it("reports the lines of files other than the app's site and upstreams that name a slot's port at a local address (not a listen, not a comment, not a longer port), with mawk; the runner names each with whose port it is", () => {
    const e = env();
    const out = run(e, dump(e));
    expect(out.split('\n').filter(Boolean)).toEqual([
      'pinned /etc/nginx/sites-enabled/api-by-hand:5:     location / { proxy_pass http://localhost:3580/; }',
      'pinned /etc/nginx/conf.d/monitor.conf:1: upstream metrics { server [::1]:3000 max_fails=0; }',
    ]);
    const lines = out.split('\n').filter(Boolean).map((l) => l.replace(/^pinned /, ''));
    const err = slotPortsElsewhere(e, 'web1', lines, 'nothing was started (no build, no migration)')!;
    expect(err.message).toBe(
      "nginx on web1 reads files besides shop's site that send requests to a slot's port itself, /etc/nginx/sites-enabled/api-by-hand:5: localhost:3580 (program server's port on slot green); /etc/nginx/conf.d/monitor.conf:1: [::1]:3000 (program client's port on slot blue): nginx would reach that slot whatever the switch does (it moves traffic by the upstreams file), so every other deploy would go live there while the previous release, kept warm on that slot, goes on serving; nothing was started (no build, no migration)",
    );
    expect(err.hint).toBe('name the upstreams instead in /etc/nginx/sites-enabled/api-by-hand, /etc/nginx/conf.d/monitor.conf (proxy_pass http://shop_server, http://shop_client: the site\'s upstreams file defines them for every file nginx reads), or remove what is no longer used; then deploy again');
    expect(slotPortsElsewhere(e, 'web1', [], 'x')).toBeUndefined();
    // nginx -T failing (a configuration nginx -t refuses: reported apart) reports nothing and fails nothing.
    expect(execFileSync('bash', ['-c', `set -euo pipefail\nnginx() { return 1; }\n${slotPortLinesShell(e)}\necho "done$nginx_pinned"`], { encoding: 'utf8' })).toBe('done\n');
  });
  it('is read by a deploy that goes on, with nginx -t', () => {
    expect(deployState(env(), ['a'.repeat(40)]).script).toContain('"$nginx_all" | awk');
    expect(deployState(env()).script).not.toContain('nginx -T');
  });
});

describe("a state read of a response cache the site answers through from a file it does not write", () => {
  // nginx -T's text: each file after its "# configuration file <path>:" line, written as admins write them (nginx -t
  // accepts each: directives ending at ";" wherever the line ends, comments, quoted words).
  const conf = (e: ReturnType<typeof env>, files: Record<string, string[]>) =>
    [
      '# configuration file /etc/nginx/nginx.conf:',
      'user www-data;',
      'events { worker_connections 768; }',
      'http {',
      '    include /etc/nginx/mime.types; default_type application/octet-stream;',
      '    include /etc/nginx/conf.d/*.conf;',
      '    include /etc/nginx/sites-enabled/*;',
      '}',
      '# configuration file /etc/nginx/mime.types:',
      'types { text/html html; }',
      ...Object.entries(files).filter(([f]) => f !== '/etc/nginx/snippets/pages.conf').flatMap(([f, lines]) => [`# configuration file ${f}:`, ...lines]),
      `# configuration file ${e.layout.nginxSiteEnabled}:`,
      `include ${e.layout.nginxUpstreams};`,
      'server {',
      '    listen 80;',
      '    # the site includes a snippet of its own',
      ...(files['/etc/nginx/snippets/pages.conf'] ? ['    include snippets/pages.conf;'] : []),
      '    location / { proxy_pass http://shop_client; }',
      '}',
      `# configuration file ${e.layout.nginxUpstreams}:`,
      'upstream shop_client { server 127.0.0.1:3000; }',
      // A file included from the site's block: printed after it (nginx -T prints files in the order it reads them).
      ...(files['/etc/nginx/snippets/pages.conf'] ? ['# configuration file /etc/nginx/snippets/pages.conf:', ...files['/etc/nginx/snippets/pages.conf']] : []),
    ].join('\n');
  const run = (e: ReturnType<typeof env>, text: string) =>
    execFileSync('bash', ['-c', `set -euo pipefail\nnginx() { printf '%s\\n' "$NGINX_T"; }\n${inheritedCacheLinesShell(e)}\nprintf '%s' "$nginx_cached"`], { encoding: 'utf8', env: { PATH: process.env.PATH, NGINX_T: text } })
      .split('\n')
      .filter(Boolean);
  const PATH = 'proxy_cache_path /var/cache/nginx-micro levels=1:2 keys_zone=micro:1m;';
  it('finds proxy_cache at the http level however it is written: two directives on a line, one split over lines, a comment after it, a site file at its top', () => {
    const e = env();
    expect(run(e, conf(e, { '/etc/nginx/conf.d/micro.conf': [`${PATH} proxy_cache micro; proxy_cache_valid 200 1s;`] }))).toEqual(['/etc/nginx/conf.d/micro.conf:1: proxy_cache micro;']);
    expect(run(e, conf(e, { '/etc/nginx/conf.d/micro.conf': [PATH, 'proxy_cache', '    micro  # every site', '  ;'] }))).toEqual(['/etc/nginx/conf.d/micro.conf:2: proxy_cache micro;']);
    expect(run(e, conf(e, { '/etc/nginx/sites-enabled/other': ['proxy_cache micro;', 'server { listen 8080; }'] }))).toEqual(['/etc/nginx/sites-enabled/other:1: proxy_cache micro;']);
    // In nginx.conf's own http block, after a block closed on the same line.
    const main = conf(e, {}).replace('    include /etc/nginx/conf.d/*.conf;', `    ${PATH} map $uri $x { default "{"; } proxy_cache micro;`);
    expect(run(e, main)).toEqual(['/etc/nginx/nginx.conf:5: proxy_cache micro;']);
  });
  it('finds it in a file included from within the site\'s own server block; not in another site\'s server, a comment, a quoted word, nor proxy_cache off', () => {
    const e = env();
    const snippet = run(e, conf(e, { '/etc/nginx/conf.d/zone.conf': [PATH], '/etc/nginx/snippets/pages.conf': ['proxy_cache micro;', 'proxy_cache_valid 200 10m;'] }));
    expect(snippet).toEqual(['/etc/nginx/snippets/pages.conf:1: proxy_cache micro; @in-site']);
    // said as the site's own include (no other site concerned; a second proxy_cache beside it nginx refuses)
    const err = cachesInherited(e, 'web1', snippet, 'nothing was started');
    expect(err?.message).toMatch(/^shop's site includes \/etc\/nginx\/snippets\/pages\.conf, which caches its answers \(\/etc\/nginx\/snippets\/pages\.conf:1: proxy_cache micro;\), under a key .* \(on web1\); nothing was started$/);
    expect(err?.hint).toMatch(/^take that include out of shop's site template .*, or key it by the live release/);
    const quiet = {
      '/etc/nginx/conf.d/zone.conf': [PATH, '# proxy_cache micro;', 'add_header X-Note "no; proxy_cache micro; here";', "map $uri $y { default '}'; }", 'proxy_cache off;'],
      '/etc/nginx/sites-enabled/blog': ['server {', '    listen 8081;', '    include /etc/nginx/snippets/blog-cache.conf;', '}'],
      '/etc/nginx/snippets/blog-cache.conf': ['proxy_cache micro;'],
    };
    expect(run(e, conf(e, quiet))).toEqual([]);
  });
  it('says nothing when every key for the site names the live release; names the keys that do not', () => {
    const e = env();
    const keyed = `proxy_cache_key $scheme$proxy_host$request_uri$${e.layout.nginxReleaseVariable};`;
    expect(run(e, conf(e, { '/etc/nginx/conf.d/micro.conf': [PATH, 'proxy_cache micro;', keyed] }))).toEqual([]);
    expect(run(e, conf(e, { '/etc/nginx/conf.d/micro.conf': [PATH, 'proxy_cache micro; proxy_cache_key', '  $scheme$request_uri;'] }))).toEqual([
      '/etc/nginx/conf.d/micro.conf:2: proxy_cache micro;',
      '/etc/nginx/conf.d/micro.conf:2: proxy_cache_key $scheme$request_uri;',
    ]);
    const err = cachesInherited(e, 'web1', run(e, conf(e, { '/etc/nginx/conf.d/micro.conf': [`${PATH} proxy_cache micro;`] })), 'nothing was started');
    expect(err?.message).toContain("nginx on web1 caches every site's answers, shop's too, from /etc/nginx/conf.d/micro.conf (/etc/nginx/conf.d/micro.conf:1: proxy_cache micro;)");
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
  it('a program with strip_prefix: false gets the URL as the visitor sent it on each of its routes (Django\'s /api/ and /admin/), its assets\' fallback too; the others still strip', () => {
    const e = env({
      programs: {
        api: { command: '{release}/venv/bin/gunicorn mysite.wsgi', port: 8000, health: '/api/health/', strip_prefix: false, env: {} },
        web: { command: '{npm} start', port: 3000, health: '/healthz', env: {} },
        metrics: { command: 'm', port: 9100, health: '/', env: {} },
      },
      routes: { '/': 'web', '/api/': 'api', '/admin/': 'api', '/metrics/': 'metrics' },
      release: { asset_dirs: [{ dir: 'backend/staticfiles', url: '/admin/static/' }] },
    });
    const s = site(e, true);
    expect(s).toContain('location /api/ {\n        proxy_pass http://shop_api;');
    expect(s).toContain('location /admin/ {\n        proxy_pass http://shop_api;');
    expect(s).toContain('location /metrics/ {\n        proxy_pass http://shop_metrics/;');
    expect(s).toContain('location @shop_assets_0 {\n        proxy_pass http://shop_api;');
    // The switch asks nginx at the path the program answers on its own port.
    expect(gatePaths(e)).toEqual([
      { program: 'api', path: '/api/health/' },
      { program: 'web', path: '/healthz' },
      { program: 'metrics', path: '/metrics/' },
    ]);
    // A health path outside every route of its (unstripped) program: not asked through nginx.
    expect(gatePaths(env({ programs: { api: { command: 'a', port: 8000, health: '/healthz', strip_prefix: false, env: {} }, web: { command: 'b', port: 3000, env: {} } }, routes: { '/': 'web', '/api/': 'api' } }))).toEqual([{ program: 'web', path: '/' }]);
  });
  it('until the certificate exists, answers the ACME challenge on port 80 and keeps serving the app there (TLS just turned on, a new domain, certbot failing)', () => {
    const s = site(env({ tls: { mode: 'letsencrypt', email: 'ops@example.org' } }), false);
    expect(s).not.toContain('listen 443');
    expect(s).toContain('location ^~ /.well-known/acme-challenge/');
    expect(s).toContain('location / {\n        proxy_pass http://shop_client;');
    expect(s).not.toContain('return 503');
  });
  it("a switch without the environment's certificate on the host keeps the site nginx has and moves only the upstreams", () => {
    const e = env({ tls: { mode: 'letsencrypt', email: 'ops@example.org' } });
    const siteFile = `put_file ${e.layout.nginxSite} `;
    expect(switchTo(e, 'green', '20261125T120000Z-0123456789ab', true).script).toContain(siteFile);
    const without = switchTo(e, 'green', '20261125T120000Z-0123456789ab', false).script;
    expect(without).not.toContain(siteFile);
    expect(without).toContain(`put_file ${e.layout.nginxUpstreams} `);
    // TLS off: there is no certificate to wait for, the site is written.
    expect(switchTo(env({ tls: { mode: 'off' } }), 'green', '20261125T120000Z-0123456789ab', false).script).toContain(siteFile);
  });
  it("no route's location is one the site already has (nginx -t refuses a duplicate location): every route accepted, with each TLS mode, before and after the certificate", () => {
    // nginx's rule (src/http/ngx_http.c, ngx_http_join_exact_locations): two prefix locations (none or ^~) or two exact
    // ones (=) of the same text in one server are "duplicate location"; regex and named ones are not compared.
    const duplicates = (text: string) =>
      text.split(/^server \{$/m).slice(1).flatMap((server) => {
        const seen = new Set<string>();
        return [...server.matchAll(/^\s*location\s+(=|\^~)?\s*([^\s~@{][^\s{]*)\s*\{/gm)].flatMap((m) => {
          const id = `${m[1] === '=' ? 'exact' : 'prefix'} ${m[2]}`;
          if (seen.has(id)) return [id];
          seen.add(id);
          return [];
        });
      });
    const routes = { '/': 'client', '/api/': 'server', '/.well-known/': 'server', '/.well-known/acme-challenge/x/': 'server', '/.ops/': 'server', '/favicon.ico/': 'server' };
    for (const tls of [{ mode: 'off' }, { mode: 'letsencrypt', email: 'ops@example.org' }, { mode: 'self-signed' }])
      for (const ready of [true, false]) expect(duplicates(site(env({ tls, routes }), ready)), `${tls.mode} ${ready}`).toEqual([]);
    // without a route for "/": the paths no route takes answer 404 (not nginx's own root, its welcome page), in the
    // server that serves the app
    const apiOnly = { '/api/': 'server', '/app/': 'client' };
    for (const tls of [{ mode: 'off' }, { mode: 'letsencrypt', email: 'ops@example.org' }, { mode: 'self-signed' }])
      for (const ready of [true, false]) {
        const text = site(env({ tls, routes: apiOnly }), ready);
        expect(duplicates(text), `${tls.mode} ${ready}`).toEqual([]);
        expect(text.split(/^server \{$/m).at(-1), `${tls.mode} ${ready}`).toContain('location / {\n        return 404;\n    }');
      }
    expect(site(env({ routes }), true)).not.toContain('return 404;');
    expect(duplicates('server {\n    location ^~ /a/ {}\n    location /a/ {}\n}\n')).toEqual(['prefix /a/']);
    expect(() => env({ routes: { '/': 'client', '/.well-known/acme-challenge/': 'server' } })).toThrow(/routes\.\/\.well-known\/acme-challenge\/: .*nginx refuses a second location of the same prefix/);
  });
  it('plain http when TLS is off', () => {
    const s = site(env({ tls: { mode: 'off' } }), true);
    expect(s).not.toContain('ssl_');
    // With a domain and not marked the default server, it answers for its domain only.
    expect(s).toContain('listen 80;\n    listen [::]:80;\n    server_name shop.example.org;');
  });
  it('serves release.asset_dirs given a url from disk: the live release, then the one a rollout is about to switch to, then the one live before it (the same text for every release), then the app; never a dotfile', () => {
    const e = env({ release: { asset_dirs: ['carried/only', { dir: 'client/build/client/_app/immutable', url: '/_app/immutable/' }, { dir: 'dist/assets', url: '/api/assets.v1/' }] } });
    const s = site(e, true);
    expect(s).toContain(
      'location ~ ^/_app/immutable/(?!(?:.*/)?\\.)(.+)$ {\n        root /srv/shop/.ops/assets;\n        disable_symlinks on;\n        expires max;\n        try_files /current/client/build/client/_app/immutable/$1 /next/client/build/client/_app/immutable/$1 /previous/client/build/client/_app/immutable/$1 @shop_assets_1;\n    }',
    );
    expect(s).toContain('location @shop_assets_1 {\n        proxy_pass http://shop_client;');
    // Under a route that strips its prefix, the app gets the URL as its own location passes it.
    expect(s).toContain('location ~ ^/api/assets\\.v1/(?!(?:.*/)?\\.)(.+)$ {');
    expect(s).toContain('location @shop_assets_2 {\n        rewrite ^/api/(.*)$ /$1 break;\n        proxy_pass http://shop_server;');
    expect(s).not.toContain('carried/only');
    // The switch links the new release's served directories before the reload; once `current` is renamed into place,
    // the release live until now becomes `previous`, and `next` (the rollout's release, staged) is done with.
    const sw = switchTo(e, 'green', '20261125T120000Z-0123456789ab', true).script;
    // What the rollout staged as `next` is linked when it was made of this release as it is (no file copied again).
    const link =
      'assets_reuse /srv/shop/releases/"$release_id" /srv/shop/.ops/assets/next /srv/shop/.ops/assets/.new /srv/shop/releases/"$release_id"/.ops-assets-carried client/build/client/_app/immutable dist/assets || assets_link /srv/shop/releases/"$release_id" /srv/shop/.ops/assets/.new shop /srv/shop/shared/deps /srv/shop/releases/"$release_id"/.ops-assets-carried client/build/client/_app/immutable dist/assets';
    expect(sw).toContain(link);
    expect(sw.indexOf(link)).toBeLessThan(sw.indexOf('if ! nginx_reload'));
    expect(sw.indexOf('mv -T /srv/shop/.ops/assets/current /srv/shop/.ops/assets/previous')).toBeGreaterThan(sw.indexOf('mv -T /srv/shop/.current.new /srv/shop/current'));
    expect(sw.indexOf('rm -rf /srv/shop/.ops/assets/next')).toBeGreaterThan(sw.indexOf('mv -T /srv/shop/.ops/assets/.new /srv/shop/.ops/assets/current'));
    bashSyntax(sw);
    bashSyntax(stageAssets(e, '20261125T120000Z-0123456789ab').script);
    expect(switchTo(env(), 'green', '20261125T120000Z-0123456789ab', true).script).not.toContain('.ops/assets');
  });
  it('refuses a base_dir nginx would misread when it serves assets', () => {
    const e = env({ release: { asset_dirs: [{ dir: 'dist/assets', url: '/assets/' }] } });
    expect(() => site({ ...e, layout: { ...e.layout, base: '/srv/my shop' } }, true)).toThrow(/nginx cannot serve release.asset_dirs from base_dir "\/srv\/my shop"/);
  });
  it('names unknown placeholders of a custom template', () => {
    expect(() => renderTemplate('{{app}} {{oops}}', { app: 'x' }, 'my.conf')).toThrow(/my.conf uses unknown placeholder \{\{oops\}\}/);
  });
  it("refuses a custom template that proxies to a slot's port itself (nginx would not follow the switch), naming the line", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-template-'));
    const e = { ...env({ nginx: { site_template: 'site.conf' } }), dir };
    // A hand-written site carried over from before ops: the app's port written in, as it was before blue/green.
    writeFileSync(join(dir, 'site.conf'), '{{upstreams_include}}\nserver {\n    listen 80;\n    # was: proxy_pass http://127.0.0.1:3579;\n    location /api/ { proxy_pass http://127.0.0.1:3579/; }\n    location / { proxy_pass http://localhost:3001; }\n    location /metrics { proxy_pass http://127.0.0.1:9100; }\n}\n');
    expect(() => site(e, true)).toThrow(
      "environments/test/site.conf sends requests to a slot's port itself, line 5: 127.0.0.1:3579 (program server's port on slot blue); line 6: localhost:3001 (program client's port on slot green)",
    );
    expect(() => site(e, true)).toThrow(expect.objectContaining({ hint: expect.stringContaining('proxy_pass http://shop_server, http://shop_client;') }));
    // Through the upstreams the switch rewrites, and another service's port: as before.
    writeFileSync(join(dir, 'site.conf'), '{{upstreams_include}}\nserver {\n    location /api/ { proxy_pass http://shop_server/; }\n    location /metrics { proxy_pass http://127.0.0.1:9100; }\n    {{slot_location}}\n}\n');
    expect(site(e, true)).toContain('proxy_pass http://shop_server/;');
    rmSync(dir, { recursive: true });
  });
  it('refuses a custom template whose response cache is not keyed by the live release (the same key before and after a switch), naming each line and the key to write', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-template-'));
    const e = { ...env({ nginx: { site_template: 'site.conf' } }), dir };
    const write = (body: string) => writeFileSync(join(dir, 'site.conf'), `proxy_cache_path /var/cache/nginx/shop keys_zone=shop:1m;\n{{upstreams_include}}\nserver {\n    listen 80;\n${body}    location / { proxy_pass http://shop_client; }\n}\n`);
    write('    proxy_cache shop; proxy_cache_valid 200 1m;\n');
    expect(() => site(e, true)).toThrow("environments/test/site.conf caches the release's answers under a key that does not name the live release, line 5: proxy_cache shop; proxy_cache_valid 200 1m; (under nginx's default key, $scheme$proxy_host$request_uri): ");
    expect(() => site(e, true)).toThrow(expect.objectContaining({ hint: expect.stringContaining('proxy_cache_key $scheme$proxy_host$request_uri$ops_release_shop;') }));
    // A key of its own without the release (the slot is not enough either: a slot serves every other release).
    write('    proxy_cache shop;\n    proxy_cache_key "$host$request_uri$ops_slot_shop";\n');
    expect(() => site(e, true)).toThrow(/line 6: proxy_cache_key "\$host\$request_uri\$ops_slot_shop";: the key is the same before and after a switch/);
    // fastcgi_cache alike; a key in a comment does not count.
    write('    fastcgi_cache shop; # fastcgi_cache_key $ops_release_shop;\n');
    expect(() => site(e, true)).toThrow(expect.objectContaining({ hint: expect.stringContaining('fastcgi_cache_key $scheme$request_method$host$request_uri$ops_release_shop;') }));
    // Keyed by the release, or no cache (off, the key or its zone's path alone): as before.
    for (const body of ['    proxy_cache shop;\n    proxy_cache_key $scheme$host$request_uri$ops_release_shop;\n', '    proxy_cache off;\n', '    proxy_cache_key $host;\n'])  {
      write(body);
      expect(site(e, true)).toContain(body);
    }
    rmSync(dir, { recursive: true });
  });
  it('the upstreams name the live release for the cache keys; the switch writes the id chosen on the host', () => {
    expect(upstreams(env(), 'green', '20261125T120000Z-0123456789ab')).toContain('map "" $ops_release_shop {\n    default "20261125T120000Z-0123456789ab";\n}\n');
    const sw = switchTo(env(), 'green', { variable: 'release_id' }, true).script;
    expect(sw).toContain('ups_text=${ups_text//"@@ops-release-id@@"/"$release_id"}');
    expect(sw.indexOf('ups_b64=$(')).toBeLessThan(sw.indexOf("put_file /etc/nginx/ops-upstreams/shop.conf 0644 root:root \"$ups_b64\""));
  });
  it("provision writes nginx.conf only over ops's own or nginx-common's as shipped, and checks that nginx reads the site before reloading", () => {
    const s = provisionNginx(env(), true).script;
    // The one write of nginx.conf, under the guard.
    expect(s).toContain(putUnlessHostOwn('/etc/nginx/nginx.conf', baseConfig(), { kind: 'kept', package: 'nginx-common', kept: '', previous: BASE_CONFIG_PREVIOUS }).split('\nelif ')[0]);
    expect(s.split(putFile('/etc/nginx/nginx.conf', baseConfig())).length).toBe(2);
    const check = s.indexOf("'# configuration file /etc/nginx/sites-enabled/shop:'");
    expect(check).toBeGreaterThan(s.indexOf('if ! out=$(nginx -t 2>&1)'));
    expect(check).toBeLessThan(s.indexOf('if ! nginx_reload'));
  });

  it("ops's nginx.conf holds any DNS name in server_name (253 characters; the schema lets every one through), and an nginx.conf it wrote before is its own, replaced", () => {
    // nginx's rule (ngx_hash.c, NGX_HASH_ELT_SIZE, on 64 bits): a pointer, the length and the name rounded up to 8
    // bytes, then the bucket's closing pointer; with 128, names of 111 characters and more fail nginx -t ("could not
    // build server_names_hash, you should increase server_names_hash_bucket_size: 128").
    const bucket = Number(/server_names_hash_bucket_size (\d+);/.exec(baseConfig())![1]);
    const needs = (len: number) => 8 + Math.ceil((len + 2) / 8) * 8 + 8;
    expect(needs(110)).toBe(128);
    expect(bucket).toBeGreaterThanOrEqual(needs(253));
    expect(BASE_CONFIG_PREVIOUS).toContain('fb3f482212f633e3f41ab39733ec101d'); // the previous one (bucket 128), ops's untouched
    // A host's own nginx.conf (kept) too small for a name: nginx's refusal is said with the name and where the setting goes.
    const s = provisionNginx(env(), true).script;
    expect(s).toContain(`could\\ not\\ build\\ (the\\ )?server_names_hash,\\ you\\ should\\ increase\\ server_names_hash_bucket_size:\\ ([0-9]+) ]]; then`);
    expect(s).toContain(`add \\"server_names_hash_bucket_size ${bucket};\\" (room for any DNS name) to the http block of /etc/nginx/nginx.conf`);
    // The name (and a duplicate default server's claimants) read from the files nginx refused, not from those put back.
    const refused = s.indexOf('if ! out=$(nginx -t 2>&1); then');
    for (const hint of ["grep -hsoE '^[^#]*server_name", "grep -ls 'default_server'"]) {
      expect(s.indexOf(hint), hint).toBeGreaterThan(refused);
      expect(s.indexOf(hint), hint).toBeLessThan(s.indexOf('nginx_put_back\n', refused));
    }
  });

  it("the app's site, in provision and in the switch, is written as a file ops renders: a version changed on the host is moved to a backup and replaced, said with where such a change lasts", () => {
    const write = (certificateReady: boolean) => putUnlessHostOwn('/etc/nginx/sites-available/shop', site(env(), certificateReady), siteOwn(env()));
    expect(provisionNginx(env(), true).script).toContain(write(true));
    expect(switchTo(env(), 'green', { variable: 'release_id' }, true).script).toContain(write(true));
    expect(switchTo(env(), 'green', { variable: 'release_id' }, true).script.split('put_file /etc/nginx/sites-available/shop ').length, 'written once, under the rule').toBe(2);
    expect(write(true)).toContain("stamped_next /var/backups/ops-pipeline/etc/nginx/sites-available/shop ''");
    expect(siteOwn(env())).toMatchObject({ kind: 'replaced', lasts: expect.stringContaining('nginx.site_template') });
  });

  it("provision refuses a site under the app's name that ops did not write, before ops set the app up on the host, before anything changes", () => {
    const s = provisionNginx(env(), true).script;
    const guard = s.indexOf("if [ ! -e /etc/nginx/ops-upstreams/shop.conf ] && { { [ -e /etc/nginx/sites-available/shop ] && [ \"$(head -n1 /etc/nginx/sites-available/shop)\" != '# Managed by ops-pipeline: local changes are overwritten.' ]; }");
    expect(guard).toBeGreaterThan(0);
    expect(guard).toBeLessThan(s.indexOf('backup=$(mktemp'));
    expect(s).toContain("that ops did not write (ops has not set shop up here: no /etc/nginx/ops-upstreams/shop.conf), and provision would replace it");
  });

  it("provision disables Debian's default site only as shipped (or a link to nothing), keeping an admin's enabled, said", () => {
    const s = provisionNginx(env(), true).script;
    expect(s).toContain(`[ "$(readlink -f /etc/nginx/sites-enabled/default)" = /etc/nginx/sites-available/default ] && ${asShipped('nginx-common', '/etc/nginx/sites-available/default')}`);
    expect(s).toContain("own default site /etc/nginx/sites-enabled/default enabled: it is not Debian");
  });

  it("logs nginx's record of the switch's own requests (X-Ops-Check: which upstream answered, with what), beside the site's access log; a custom template without {{upstreams_include}} (where the format is) gets none, and its switch does not claim a proof", () => {
    const line = 'access_log /var/log/nginx/shop.check.log ops_check_shop if=$ops_check_shop;';
    const format = "log_format ops_check_shop '$http_x_ops_check|$status|$upstream_status|$upstream_addr|$upstream_cache_status';";
    const builtIn = site(env({ tls: { mode: 'off' } }), true);
    expect(builtIn).toContain(`access_log /var/log/nginx/shop.access.log;\n    error_log /var/log/nginx/shop.error.log;\n    ${line}`);
    expect(builtIn).toContain(`map $http_x_ops_check $ops_check_shop {\n    default 1;\n    '' 0;\n}\n${format}`);
    expect(builtIn.indexOf(format)).toBeLessThan(builtIn.indexOf('server {'));
    const proving = switchTo(env({ tls: { mode: 'off' } }), 'green', '20261125T120000Z-0123456789ab', true).script;
    // nginx's line for the request, read from one tail -F of the check log (no tail | grep per look).
    expect(proving).toContain('[[ $gate_got == "$gate_id|"* ]]');
    expect(proving).toContain('tail -c +$(( gate_check_from + 1 )) -F -s 0.05 --pid=$$ -- /var/log/nginx/shop.check.log');
    expect(proving).toContain('\ngate_proves=1\n');
    const dir = mkdtempSync(join(tmpdir(), 'ops-template-'));
    const e = { ...env({ tls: { mode: 'off' }, nginx: { site_template: 'site.conf' } }), dir };
    writeFileSync(join(dir, 'site.conf'), '{{upstreams_include}}\nserver {\n    {{logs}}\n    {{slot_location}}\n    {{locations}}\n}\n');
    expect(site(e, true)).toContain(line);
    expect(switchTo(e, 'green', '20261125T120000Z-0123456789ab', true).script).toContain('\ngate_proves=1\n');
    // Its own upstream blocks (another service's) and no {{upstreams_include}}: nginx would not know the format.
    writeFileSync(join(dir, 'site.conf'), 'server {\n    {{logs}}\n    location / { proxy_pass http://127.0.0.1:9100; }\n}\n');
    expect(site(e, true)).toContain('error_log /var/log/nginx/shop.error.log;\n');
    expect(site(e, true)).not.toContain('shop.check.log');
    expect(switchTo(e, 'green', '20261125T120000Z-0123456789ab', true).script).toContain('\ngate_proves=0\n');
    expect(switchTo(e, 'green', '20261125T120000Z-0123456789ab', true).script).toContain('warning: the custom site template has no {{logs}} with {{upstreams_include}}');
    expect(proving).not.toContain('warning: the custom site template has no {{logs}}');
    rmSync(dir, { recursive: true });
  });
  it('restores the previous files and fails with nginx\'s message when nginx -t or the reload refuses', () => {
    const s = applyNginx({ item: 'x', files: [{ path: '/etc/nginx/x.conf', content: 'y' }] }).script;
    expect(s).toContain('nginx_put_back() { rm -rf /etc/nginx; mv "$backup/nginx" /etc/nginx; }');
    // (after reading what nginx named from the files it refused: its hints)
    expect(s).toMatch(/if ! out=\$\(nginx -t 2>&1\); then\n[\s\S]*?\n    nginx_put_back\n    if \[ "\$nginx_changed" = 1 \]/);
    // And when the running server refuses what nginx -t accepted (test/e2e/provision.test.ts, a port taken).
    expect(s).toMatch(/if ! nginx_reload; then\n    nginx_put_back\n/);
    // Under the host's nginx lock, taken before the snapshot, let go before what follows the reload.
    expect(s.indexOf('host_lock nginx')).toBeLessThan(s.indexOf('cp -a /etc/nginx'));
    expect(s.indexOf('host_unlock nginx')).toBeGreaterThan(s.indexOf('if ! nginx_reload'));
    bashSyntax(s);
  });
});

describe("provision's upstreams file (ensureUpstreams)", () => {
  it("adds the upstream of a program it lacks at the slot it routes to, leaving the others' ports; then nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-upstreams-'));
    const file = join(dir, 'shop.conf');
    const e = env();
    // as a deploy to green left it, before the config gained `client`
    const live = upstreams(e, 'green', '').replace(/upstream shop_client \{[^}]*\}\n/, '').replace('127.0.0.1:3580;', '127.0.0.1:9999;');
    writeFileSync(file, live);
    const run = () => execFileSync('bash', ['-c', `CHANGED=0\n${ensureUpstreams(e).replaceAll('/etc/nginx/ops-upstreams/shop.conf', file)}\necho "$CHANGED"`], { encoding: 'utf8' }).trim();
    expect(run()).toBe('1');
    expect(readFileSync(file, 'utf8')).toBe(`${live}\nupstream shop_client {\n    server 127.0.0.1:${e.port('client', 'green')};\n    keepalive 16;\n}\n`);
    expect(run()).toBe('0');
    // One an older version wrote, without the release's map (a cache key names it): given one naming no release.
    writeFileSync(file, live.replace(releaseMap(e, ''), ''));
    expect(run()).toBe('1');
    expect(readFileSync(file, 'utf8')).toContain('}\nmap "" $ops_release_shop {\n    default "";\n}\n');
    expect(run()).toBe('0');
    rmSync(dir, { recursive: true });
  });
});

describe('the switch asks nginx for the health paths as visitors do (nginxGate)', () => {
  it('each routed program\'s health path under its route (the prefix replaced by "/", as nginx passes it); a route another program\'s longer one takes is skipped; an unrouted program is not asked', () => {
    const three = (routes: Record<string, string>) =>
      env({
        programs: {
          server: { command: 'a', port: 3579, health: '/health', env: {} },
          client: { command: 'b', port: 3000, health: '/', env: {} },
          worker: { command: 'c', port: 3100, health: '/ready?deep=1', env: {} },
        },
        routes,
      });
    expect(gatePaths(three({ '/': 'client', '/api/': 'server' }))).toEqual([
      { program: 'server', path: '/api/health' },
      { program: 'client', path: '/' },
    ]);
    // The server's /api/health under "/" is the client's (/api/ is longer): not the server's to answer through nginx.
    const taken = (routes: Record<string, string>) =>
      gatePaths(
        env({
          programs: {
            server: { command: 'a', port: 3579, health: '/api/health', env: {} },
            client: { command: 'b', port: 3000, health: '/', env: {} },
            worker: { command: 'c', port: 3100, health: '/ready?deep=1', env: {} },
          },
          routes,
        }),
      );
    expect(taken({ '/': 'server', '/api/': 'client', '/w/': 'worker' })).toEqual([
      { program: 'client', path: '/api/' },
      { program: 'worker', path: '/w/ready?deep=1' },
    ]);
    expect(taken({ '/': 'server', '/api/': 'client', '/s/': 'server' })).toEqual([
      { program: 'server', path: '/s/api/health' },
      { program: 'client', path: '/api/' },
    ]);
  });

  it('runs after the look at /.ops/slot, in the switch\'s verify (a 5xx puts the previous files back), over https when the site serves TLS', () => {
    const tls = switchTo(env({ tls: { mode: 'self-signed' } }), 'green', '20261125T120000Z-0123456789ab', true).script;
    // At the address the deploy's SSH connection reached (where a server block of another file may listen), not 127.0.0.1.
    expect(tls).toContain('gate_port=443; gate_opts=(-k --resolve shop.example.org:443:"$gate_at"); gate_base=https://shop.example.org;');
    expect(tls).toContain('"${gate_opts[@]}" -H "X-Ops-Check: $gate_id" "$gate_base$1"');
    expect(tls).toContain('gate_ask "$gate_path"');
    // Over https the look at /.ops/slot is curl's; over http bash's own request (probe_send), its connect bounded.
    expect(tls).toContain("curl --noproxy '*' -sk --max-time 1 --resolve shop.example.org:443:\"$gate_at\" https://shop.example.org/.ops/slot");
    expect(tls).not.toContain('probe_armed slot_looks');
    const plain = switchTo(env({ tls: { mode: 'off' } }), 'green', '20261125T120000Z-0123456789ab', true).script;
    expect(plain).toContain(`gate_port=80; gate_host=shop.example.org; gate_opts=(-H "Host: $gate_host"); gate_base="http://$gate_at";`);
    expect(plain).toContain('if [ "$gate_port" = 80 ] && declare -F probe_armed > /dev/null; then probe_armed gate_asks; else gate_asks; fi');
    expect(plain).toContain('probe_armed slot_looks');
    expect(plain).toContain('PROBE_HOST=shop.example.org PROBE_HEADERS="" PROBE_READ_BODY=1 PROBE_CONNECT_SECONDS=1');
    expect(plain).toContain('read -r _ _ gate_at _ <<< "$gate_conn"');
    expect(plain.indexOf('nginxServed: the health paths')).toBeGreaterThan(plain.indexOf('slot_seen=""'));
    expect(plain.indexOf('nginxServed: the health paths')).toBeLessThan(plain.indexOf('nginx_put_back\n  if nginx_reload'));
  });

  it('looks for the new slot at /.ops/slot where the visitors are: over https alone when the site serves TLS (port 80 only redirects; another site taking the name on 443 would keep them), else over http', () => {
    const tls = switchTo(env({ tls: { mode: 'self-signed' } }), 'green', '20261125T120000Z-0123456789ab', true).script;
    // At the address the visitors reach (visitorAddress): a server block on 127.0.0.1 alone (a status page) takes a look there.
    expect(tls).toContain(`got=$(curl --noproxy '*' -sk --max-time 1 --resolve shop.example.org:443:"$gate_at" https://shop.example.org/.ops/slot 2>/dev/null || true)`);
    expect(tls).not.toContain('/.ops/slot 2>/dev/null || true)'.replace('/', 'http://127.0.0.1/'));
    expect(tls.indexOf(visitorAddress())).toBeLessThan(tls.indexOf('got=$(curl'));
    const plain = switchTo(env({ tls: { mode: 'off' } }), 'green', '20261125T120000Z-0123456789ab', true).script;
    expect(plain).toContain(`got=$(curl --noproxy '*' -s --max-time 1 -H 'Host: shop.example.org' http://"$gate_at"/.ops/slot 2>/dev/null || true)`);
  });
});

describe('a start that fails after taking the slot down puts the previous release back (previous_back)', () => {
  const e = env();
  const id = '20261125T120000Z-0123456789ab';
  const before = '20261120T120000Z-0123456789ab';
  const script = startSlot(e, 'green', `/srv/shop/releases/${id}`, id).script;

  it("writes the slot's supervisor file as a file ops renders: one changed on the host is moved to a backup and replaced, said (putUnlessHostOwn replaced), after the copy previous_back puts back", () => {
    const write = putUnlessHostOwn('/etc/supervisor/conf.d/shop-green.conf', { b64Word: '"$conf_b64"' }, supervisorOwn(e));
    expect(script).toContain(write);
    expect(script.indexOf(write)).toBeGreaterThan(script.indexOf('restore() {'));
    expect(script.split('put_file /etc/supervisor/conf.d/shop-green.conf ').length, 'written once, under the rule').toBe(2);
    expect(supervisorOwn(e)).toMatchObject({ kind: 'replaced', lasts: expect.stringContaining('programs.<name>.command, .env') });
  });

  it('runs it on every failure after the group_down of the previous release, before the clean exit', () => {
    const after = script.slice(script.indexOf('\ngroup_down shop-green 15\n'));
    const exits = after.split('exit 3').slice(0, -1);
    expect(exits).toHaveLength(3); // a port taken, supervisor refusing the group, not healthy or not its identity
    // (after a failed health check or identity, its line printed masked: back_msg, mask_text)
    for (const part of exits) expect(part).toMatch(/(previous_back green "\$keep"( >&2)? \|\| true|back_msg=\$\(previous_back green "\$keep"\) \|\| true\n.*\| mask_text .*)\n?\s*;?\s*$/);
    // The new programs no longer leave the slot empty on their way out.
    expect(after).not.toContain('rm -f "$conf"');
  });

  it('says what serves when it fails: the live release, or nothing on a host where none went live yet (a first deploy)', () => {
    const line = script.split('\n').find((l) => l.includes('live_note='))!;
    const dir = mkdtempSync(join(tmpdir(), 'live-note-'));
    const note = () => execFileSync('bash', ['-c', `${line.replaceAll('/srv/shop/current', `${dir}/current`)}\necho "$live_note"`], { encoding: 'utf8' }).trim();
    try {
      expect(note()).toBe('no release was live on this host: nothing serves yet');
      symlinkSync(`${dir}/releases/${before}`, `${dir}/current`);
      expect(note()).toBe('the live release keeps serving');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(script).not.toContain('; the live release keeps serving');
    expect(script.split('$live_note').length).toBe(6);
  });

  it('keeps what the slot held in the run\'s lock before the slot is touched, not in a file gone with the step', () => {
    const kept = script.indexOf('> "$keep/previous.new"');
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(script.indexOf('put_file /etc/supervisor/conf.d/shop-green.conf'));
    expect(script).toContain("keep=/srv/shop/.ops/lock\n");
    expect(script).not.toMatch(/trap 'rm -f "\$prev"' EXIT/);
  });

  const user = `${execFileSync('id', ['-un'], { encoding: 'utf8' }).trim()}:${execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim()}`;
  /** A function of the script: on one line, or up to the first line that is a lone "}". */
  const fn = (name: string) => script.match(new RegExp(`^${name}\\(\\) \\{.*\\}$`, 'm'))?.[0] ?? script.match(new RegExp(`^${name}\\(\\) \\{\\n[\\s\\S]*?^\\}$`, 'm'))![0];

  /**
   * previous_back as the script defines it, the slot's files in a directory of the test's, supervisor and the health
   * checks stubbed, the records a start keeps (`prev`: the slot's file before it; `ran`: its programs ran; none at all
   * when `records` is false): its line, its exit code, what it did, the slot's file after, the records left.
   */
  function back(files: { prev?: string }, ran: boolean, verdict = 'ok', o: { records?: boolean; liveSlot?: string; addKilled?: boolean; mode?: string; leftovers?: string; started?: string } = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'ops-prev-back-'));
    try {
      const lock = join(dir, 'lock');
      mkdirSync(lock);
      if (o.records !== false) {
        writeFileSync(join(lock, 'started'), `green ${id}\n`);
        writeFileSync(join(lock, 'previous'), `green ${files.prev === undefined ? '0' : '1'} ${ran ? 1 : 0} ${files.prev === undefined ? '- -' : `${o.mode ?? '644'} ${user}`}\n`);
        if (files.prev !== undefined) writeFileSync(join(lock, 'previous.conf'), files.prev, { mode: 0o600 });
      }
      writeFileSync(join(dir, 'conf'), o.started ? slotConfig(e, 'green', `/srv/shop/releases/${o.started}`, o.started) : 'the new release\n');
      if (o.liveSlot) writeFileSync(join(dir, 'slot'), `${o.liveSlot}\n`);
      const stubs = String.raw`did() { echo "$*" >> ${dir}/did; }
leftovers_down() { echo "$*" > ${dir}/leftovers; ${o.leftovers ? `printf '%s\\n' '${o.leftovers}'` : ':'}; }
group_down() { did "down $1"; }; group_add() { did "add $1"; ${o.addKilled ? 'kill -KILL $$; ' : ''}}; reread() { did reread; }
live_verdict() { did "verdict $1 $2 $3 $4"; printf %s ${verdict === 'ok' ? 'ok' : `'${verdict}'`}; }
previous_slot() { case "$1" in green) conf=${dir}/conf; group=shop-green; checks=(web:3580:/health) ;; *) return 1 ;; esac; }`;
      const functions = `${fn('back_say')}\n${fn('previous_file')}\n${fn('previous_back')}`.replaceAll('/srv/shop/.ops/slot', join(dir, 'slot'));
      const run = spawnSync('bash', ['-c', `set -euo pipefail\ntouch ${dir}/did\n${stubs}\n${functions}\nrc=0; previous_back green ${lock} || rc=$?; echo "rc=$rc"`], { encoding: 'utf8' });
      const out = run.stdout.trim().split('\n');
      const rc = /^rc=(\d+)$/.exec(out.at(-1) ?? '')?.[1];
      let conf: string | undefined;
      let mode: string | undefined;
      try {
        conf = readFileSync(join(dir, 'conf'), 'utf8');
        mode = execFileSync('stat', ['-c', '%a', join(dir, 'conf')], { encoding: 'utf8' }).trim();
      } catch {
        conf = undefined;
      }
      const did = readFileSync(join(dir, 'did'), 'utf8').trim();
      const leftovers = existsSync(join(dir, 'leftovers')) ? readFileSync(join(dir, 'leftovers'), 'utf8').trim() : undefined;
      return { leftovers, said: (rc === undefined ? out : out.slice(0, -1)).join('\n'), rc: rc === undefined ? `ended by ${run.signal ?? run.status}` : Number(rc), did: did ? did.split('\n') : [], conf, mode, left: readdirSync(lock).sort() };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const today = slotConfig(e, 'green', `/srv/shop/releases/${before}`, before);

  it('the previous release, its file as today\'s settings render it and healthy again: back and said warm (a rollback only moves traffic); the records gone', () => {
    const r = back({ prev: today }, true, 'ok', { mode: '640' });
    expect(r.rc).toBe(0);
    expect(r.did).toEqual(['down shop-green', 'reread', 'add shop-green', `verdict ${before} /srv/shop/releases/${before} shop-green 30`]);
    expect(r.conf).toBe(today);
    expect(r.mode, 'the file\'s own mode, not the copy\'s 0600').toBe('640');
    expect(r.said).toBe(`the previous release ${before} is back on slot green, healthy: kept warm, a rollback to it only moves traffic`);
    expect(r.left).toEqual([]);
  });

  it('not healthy within the bound: left as supervisor has it, and said to be cold for a rollback', () => {
    const r = back({ prev: today }, true, 'no healthy answer within 30s from server:3580:/health');
    expect(r.conf).toBe(today);
    expect(r.said).toBe(`the previous release ${before} was started again on slot green but did not pass its checks within 30s (no healthy answer within 30s from server:3580:/health): left as supervisor has it; a rollback to it would start it cold`);
  });

  it('what the failed release left running outside supervisor (a daemon) is stopped after its programs (leftovers_down, for the release the slot\'s file names), and said before the line', () => {
    const r = back({ prev: today }, true, 'ok', { started: id, leftovers: 'stopped what release X left running on slot green outside supervisor: pid 7 (node server.js)' });
    expect(r.leftovers).toBe(`green ${id} /srv/shop/releases/${id} shop web:3580:/health`);
    expect(r.said).toBe(`stopped what release X left running on slot green outside supervisor: pid 7 (node server.js); the previous release ${before} is back on slot green, healthy: kept warm, a rollback to it only moves traffic`);
    // A file that names no release: the slot's ports alone.
    expect(back({ prev: today }, true).leftovers).toBe('green   shop web:3580:/health');
  });

  it('a file today\'s settings render otherwise (a program added, a port changed): started as it ran, not checked against today\'s probes, said cold', () => {
    const old = today.replace('APP_PORT', 'OLD_PORT');
    const r = back({ prev: old }, true);
    expect(r.did).toEqual(['down shop-green', 'reread', 'add shop-green']);
    expect(r.conf).toBe(old);
    expect(r.said).toMatch(new RegExp(`^the previous release ${before} runs again on slot green as it ran, but .*a rollback to it would start it afresh \\(cold\\)$`));
  });

  it('a previous release that was not running: its file back, not started; no previous file: the slot left empty, said so', () => {
    const stopped = back({ prev: today }, false);
    expect(stopped.did).toEqual(['down shop-green', 'reread']);
    expect(stopped.conf).toBe(today);
    expect(stopped.said).toMatch(/did not run before this run's start and were not started/);
    const none = back({}, false);
    expect(none.conf).toBeUndefined();
    expect(none.said).toBe("slot green held no release before this run's start: none is kept warm there");
    expect(none.left).toEqual([]);
  });

  it('cut off between the file\'s return and its group\'s start: the records stay, so the next caller (an interrupted run\'s lock release) does it all again', () => {
    const r = back({ prev: today }, true, 'ok', { addKilled: true });
    expect(r.rc).toBe('ended by SIGKILL');
    expect(r.did).toEqual(['down shop-green', 'reread', 'add shop-green']);
    expect(r.conf).toBe(today);
    expect(r.left).toEqual(['previous', 'previous.conf', 'started']);
  });

  it('no record of this slot (a start that reused it, or kept none): nothing done, exit 1 (the caller stops the slot); the live slot: never touched, exit 2', () => {
    const none = back({ prev: today }, true, 'ok', { records: false });
    expect(none.rc).toBe(1);
    expect(none.did).toEqual([]);
    expect(none.conf).toBe('the new release\n');
    const live = back({ prev: today }, true, 'ok', { liveSlot: 'green' });
    expect(live.rc).toBe(2);
    expect(live.did).toEqual([]);
    expect(live.conf).toBe('the new release\n');
    expect(live.said).toBe('slot green is the live one: left as it is');
  });
});

describe("git on the host reads none of the host's configuration (hostGit)", () => {
  it("provision's git init of the mirror takes no template, hook or branch name from root's ~/.gitconfig, and the mirror's git runs no hook", () => {
    const base = mkdtempSync(join(tmpdir(), 'ops-hostgit-'));
    const home = join(base, 'root-home');
    const template = join(home, 'template');
    mkdirSync(join(template, 'hooks'), { recursive: true });
    const ran = join(base, 'hook-ran');
    for (const hook of ['reference-transaction', 'post-update']) writeFileSync(join(template, 'hooks', hook), `#!/bin/sh\necho ${hook} >> ${ran}\n`, { mode: 0o755 });
    writeFileSync(join(home, '.gitconfig'), `[init]\n\ttemplateDir = ${template}\n\tdefaultBranch = trunk\n[core]\n\thooksPath = ${join(template, 'hooks')}\n`);
    const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'run', port: 3000 } }, routes: { '/': 'web' } }, 'test');
    const t = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: base, url: 'http://x' });
    const init = appUser(t, 'deploy').script.split('\n').find((l) => l.includes(t.layout.mirror));
    const sh = (script: string) => execFileSync('bash', ['-c', script], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: home } });
    sh(init!);
    expect(existsSync(join(t.layout.mirror, 'hooks', 'reference-transaction'))).toBe(false);
    expect(readFileSync(join(t.layout.mirror, 'HEAD'), 'utf8')).not.toContain('trunk');
    // A mirror an older version made from such a template: its hooks stay, and never run.
    mkdirSync(join(t.layout.mirror, 'hooks'), { recursive: true });
    writeFileSync(join(t.layout.mirror, 'hooks', 'reference-transaction'), `#!/bin/sh\necho mirror >> ${ran}\n`, { mode: 0o755 });
    const git = mirrorGit(t.layout.mirror);
    const tree = sh(`${git} mktree < /dev/null`).trim();
    const commit = sh(`GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@x GIT_COMMITTER_NAME=a GIT_COMMITTER_EMAIL=a@x ${git} commit-tree ${tree} -m x`).trim();
    sh(`${git} update-ref refs/ops/sha/${commit} ${commit}`);
    expect(existsSync(ran)).toBe(false);
    rmSync(base, { recursive: true, force: true });
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
    // a host that reaches no github.com (a closed network): git's line alone would not say the way out
    expect(runtimes(managed).script).toMatch(/pyenv\.git \S+ \|\| \{ echo "runtimes\.python strategy pyenv needs the host to reach github\.com .*use strategy debian/);
    expect(runtimes(managed).script).toMatch(/nvm install 16\.13\.2' >\/dev\/null \|\| \{ echo "runtimes\.node strategy nvm needs .*use strategy npm/);
    // pyenv's build dependencies by real package names: Debian 13's libncursesw5-dev is only a name libncurses-dev provides,
    // which dpkg-query never finds installed (every provision would install it again, reporting packages changed).
    expect(packageList(managed)).toContain('libncurses-dev');
    expect(packageList(managed)).not.toContain('libncursesw5-dev');
  });
  it("says which strategy debian versions the host's Debian release ships (the hint of a failed package install)", () => {
    expect(debianRuntimeProblem(env(), 'web1', 'bookworm')).toBeUndefined();
    const newer = env({ runtimes: { python: { strategy: 'debian', version: '3.12' }, node: { strategy: 'debian', version: '20' } } });
    const e = debianRuntimeProblem(newer, 'web1', 'bookworm')!;
    expect(e.message).toBe("web1 runs Debian 12 (bookworm), whose packages cannot give strategy debian's runtimes.python 3.12: it has Python 3.11 only; runtimes.node 20: it has Node.js 18 only");
    expect(e.hint).toMatch(/python: pyenv, node: nvm .* or npm/);
    expect(debianRuntimeProblem(newer, 'web1', 'trixie')!.message).toBe("web1 runs Debian 13 (trixie), whose packages cannot give strategy debian's runtimes.python 3.12: it has Python 3.13 only");
    // Other strategies bring their own versions.
    expect(debianRuntimeProblem(env({ runtimes: { python: { strategy: 'pyenv', version: '3.12.1' }, node: { strategy: 'nvm', version: '22.11.0' } } }), 'web1', 'bookworm')).toBeUndefined();
  });
});

/**
 * The packages step run by bash here, with dpkg-query, apt-get, apt-mark and find stubbed on PATH: `status` maps a
 * package to dpkg-query's Status ("install ok installed" when absent), `update` and `install` what `apt-get update`
 * and `apt-get install` print, and their exit status. What it printed, its exit status and the apt-get calls it made.
 */
function packagesStep(e: Target, status: Record<string, string>, update: { out: string; code: number } = { out: '', code: 0 }, install: { out: string; code: number } = { out: '', code: 0 }, provides: string[] = []): { status: number | null; out: string; calls: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'ops-apt-'));
  const stub = (name: string, body: string) => writeFileSync(join(dir, name), `#!/bin/bash\n${body}\n`, { mode: 0o755 });
  const statuses = Object.entries(status).map(([p, st]) => `${quote(p)}) echo -n ${quote(st)} ;;`).join(' ');
  // Without a package name (its last argument the format): each package's status and Provides, `provides` ("ii  name (= v), ...").
  stub('dpkg-query', `p=\${@: -1}; case $p in -f*) printf '%s\\n' ${provides.map(quote).join(' ')} ;; ${statuses} *) echo -n 'install ok installed' ;; esac`);
  stub('apt-mark', `[ "$1" = showhold ] && for p in ${Object.entries(status).filter(([, st]) => st.startsWith('hold ')).map(([p]) => quote(p)).join(' ')}; do echo "$p"; done; true`);
  stub('find', 'true'); // the package lists: none fresh
  stub('apt-get', `echo "$*" >> ${quote(join(dir, 'calls'))}; case " $* " in *" update "*) out=${quote(update.out)}; code=${update.code} ;; *" install "*) out=${quote(install.out)}; code=${install.code} ;; esac; [ -z "$out" ] || printf '%s\\n' "$out"; exit "\${code:-0}"`);
  const r = spawnSync('bash', ['--norc', '--noprofile', '-s'], { input: scriptText(installPackages(e)), encoding: 'utf8', env: { PATH: `${dir}:/usr/bin:/bin` } });
  const calls = existsSync(join(dir, 'calls')) ? readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n').map((c) => c.replace(/^-q (-o \S+ )*/, '')) : [];
  rmSync(dir, { recursive: true, force: true });
  return { status: r.status, out: r.stdout + r.stderr, calls };
}

describe('the packages step on hosts as they are (stubbed dpkg and apt)', () => {
  it('a package on hold that provision needs is refused by name with the fix, before apt runs; one on hold and installed is installed', () => {
    const e = env({ provision: { packages: ['lsof'] } });
    const held = packagesStep(e, { lsof: 'hold ok not-installed' });
    expect(held.status).toBe(1);
    expect(held.out).toContain('on hold on this host: lsof (apt-mark hold: kept from being installed or changed), and provision needs it installed: apt-mark unhold lsof (or take it out of provision.packages), then run provision again');
    expect(held.calls).toEqual([]);
    const kept = packagesStep(e, { nginx: 'hold ok installed' });
    expect(kept.status, kept.out).toBe(0);
    expect(kept.out).toContain('@ops item packages ok');
    expect(kept.calls).toEqual([]);
  });
  it('a name only an installed package provides (Debian 13: libncursesw5-dev, by libncurses-dev) is installed: no apt run, packages ok', () => {
    const e = env({ provision: { packages: ['libncursesw5-dev'] } });
    const r = packagesStep(e, { 'libncursesw5-dev': 'unknown ok not-installed' }, undefined, undefined, ['ii  libc6 ', 'ii  libncursesw5-dev (= 6.5+20250216-2), libtinfo-dev (= 6.5+20250216-2)']);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain('@ops item packages ok');
    expect(r.calls).toEqual([]);
    // Provided by a package that is not installed (its Provides still listed: "rc", config files left): installed by apt.
    const gone = packagesStep(e, { 'libncursesw5-dev': 'unknown ok not-installed' }, undefined, undefined, ['rc  libncursesw5-dev (= 6.5+20250216-2)']);
    expect(gone.calls).toEqual(['update -qq', 'install -y -qq --no-install-recommends libncursesw5-dev']);
  });
  it('a package source apt-get update cannot read is said, and apt goes on with the lists it has', () => {
    const r = packagesStep(env({ provision: { packages: ['ed'] } }), { ed: 'unknown ok not-installed' }, { out: "E: The repository 'http://10.99.99.99/debian bookworm Release' does not have a Release file.", code: 100 });
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain("apt-get update could not read every package source of this host, so apt goes on with the lists it has:\nE: The repository 'http://10.99.99.99/debian bookworm Release' does not have a Release file.\nfix or remove that source (in ");
    expect(r.calls).toEqual(['update -qq', 'install -y -qq --no-install-recommends ed']);
  });
  it('a package no apt source has (a typo in provision.packages) is named with the setting and the fix; apt\'s repeated lines once', () => {
    const missing = { out: 'E: Unable to locate package nginxx\nE: Unable to locate package nginxx', code: 100 };
    const r = packagesStep(env({ provision: { packages: ['nginxx'] } }), { nginxx: 'unknown ok not-installed' }, { out: '', code: 0 }, missing);
    expect(r.status).toBe(1);
    expect(r.out).toContain('apt could not install nginxx; its last lines:\nE: Unable to locate package nginxx\nnginxx, in provision.packages, is in none of this host\'s apt sources (Debian ');
    expect(r.out).toContain("): correct its name in environments/test/environment.yml, or add the apt source that has it, then run provision again");
    expect(r.calls).toEqual(['update -qq', 'install -y -qq --no-install-recommends nginxx']);
  });
  it("keeps apt's log in a file of its own (mktemp), never at a fixed name in /tmp another user could have made first", () => {
    expect(installPackages(env()).script).not.toMatch(/\/tmp\/ops-apt\.log/);
    expect(installPackages(env()).script).toContain('apt_log=$(mktemp /tmp/ops-apt.XXXXXX)');
  });
});

describe('asset bridging (carryAssets)', () => {
  it("carries the live release's hashed files the new one lacks, never its hidden ones (Sprockets' .sprockets-manifest-<hex>.json: Rails would read the old release's; Vite's .vite/manifest.json)", () => {
    const base = mkdtempSync(join(tmpdir(), 'ops-carry-'));
    const config = parseEnvironment({ app: 'shop', domain: 'shop.example.org', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'x', port: 3000 } }, routes: { '/': 'web' }, release: { asset_dirs: ['public/assets', '.next/static'] } }, 'test');
    const target = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }], appUser: 'shop', baseDir: base, url: 'https://shop.example.org' });
    const live = '20261120T120000Z-0123456789ab';
    const id = '20261121T120000Z-0123456789ac';
    const files = { 'public/assets/app-1a2b.js': true, 'public/assets/.sprockets-manifest-0ld.json': false, 'public/assets/.vite/manifest.json': false, '.next/static/chunks/p-9f.js': true, '.next/static/.cache/x': false };
    for (const f of Object.keys(files)) {
      mkdirSync(join(base, 'releases', live, f, '..'), { recursive: true });
      writeFileSync(join(base, 'releases', live, f), 'old');
    }
    mkdirSync(join(base, 'releases', id, 'public/assets'), { recursive: true });
    writeFileSync(join(base, 'releases', id, 'public/assets/.sprockets-manifest-n3w.json'), 'new');
    const r = spawnSync('bash', ['--norc', '--noprofile', '-s'], { input: scriptText(carryAssets(target, id, live)), encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('@ops carried 2');
    expect(Object.fromEntries(Object.keys(files).map((f) => [f, existsSync(join(base, 'releases', id, f))]))).toEqual(files);
    rmSync(base, { recursive: true, force: true });
  });
});

describe('asset directories nginx serves for good (carryAssets: names that change content)', () => {
  // SvelteKit's whole _app given (not _app/immutable): its version.json and env.js keep their names from build to
  // build; nginx serves the directory `expires max`, so a browser would keep the first it fetched for good.
  const carry = (dirs: unknown[], changed: boolean) => {
    const base = mkdtempSync(join(tmpdir(), 'ops-served-'));
    const config = parseEnvironment({ app: 'shop', domain: 'shop.example.org', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'x', port: 3000 } }, routes: { '/': 'web' }, release: { asset_dirs: dirs } }, 'test');
    const target = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }], appUser: 'shop', baseDir: base, url: 'https://shop.example.org' });
    const live = '20261120T120000Z-0123456789ab';
    const id = '20261121T120000Z-0123456789ac';
    const put = (release: string, f: string, text: string) => {
      mkdirSync(join(base, 'releases', release, f, '..'), { recursive: true });
      writeFileSync(join(base, 'releases', release, f), text);
    };
    for (const r of [live, id]) {
      put(r, 'build/client/_app/immutable/entry/start.CFvAqHEp.js', 'same');
      put(r, 'build/client/_app/.hidden', r);
    }
    put(live, 'build/client/_app/version.json', '{"version":"1764950000000"}');
    put(id, 'build/client/_app/version.json', changed ? '{"version":"1764953600000"}' : '{"version":"1764950000000"}');
    const r = spawnSync('bash', ['--norc', '--noprofile', '-s'], { input: scriptText(carryAssets(target, id, live)), encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
    rmSync(base, { recursive: true, force: true });
    return r;
  };
  it('reports (for the deploy to warn) a served directory whose file changed content under its name since the live release, naming it and the fix', () => {
    const r = carry([{ dir: 'build/client/_app', url: '/_app/' }], true);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('@ops unhashed release.asset_dirs[0] (build/client/_app, served at /_app/ with "expires max": browsers keep each file for good, never asking again) holds files whose content changed under the same name since release 20261120T120000Z-0123456789ab: build/client/_app/version.json: a browser that fetched one keeps the previous release\'s, whatever is live.');
    expect(r.stdout).toContain('SvelteKit: _app/immutable, not _app');
  });
  it('says nothing of names whose content is the same, nor of a directory the app serves itself (no url)', () => {
    for (const r of [carry([{ dir: 'build/client/_app', url: '/_app/' }], false), carry(['build/client/_app'], true)]) {
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).not.toContain('unhashed');
    }
  });
});

describe('assets nginx serves (stageAssets, the switch: sh/assets.sh)', () => {
  it("stages a prepared release's served directories as next: every file readable by all (a copy, root's, when the build's is not: the release's own untouched), a link to a file or directory of the release as that file or its files, no other link", () => {
    const base = mkdtempSync(join(tmpdir(), 'ops-stage-'));
    const config = parseEnvironment({ app: 'shop', domain: 'shop.example.org', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'x', port: 3000 } }, routes: { '/': 'web' }, release: { asset_dirs: [{ dir: 'static', url: '/static/' }] } }, 'test');
    const target = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }], appUser: userInfo().username, baseDir: base, url: 'https://shop.example.org' });
    const id = '20261121T120000Z-0123456789ac';
    const release = join(base, 'releases', id);
    mkdirSync(join(release, 'static'), { recursive: true });
    mkdirSync(join(release, 'images'));
    writeFileSync(join(release, 'static/app-1a2b.js'), 'app');
    // A build run with umask 077.
    writeFileSync(join(release, 'static/chunk-3c4d.js'), 'chunk', { mode: 0o600 });
    utimesSync(join(release, 'static/chunk-3c4d.js'), 1_700_000_000, 1_700_000_000);
    writeFileSync(join(release, 'images/logo-5e6f.svg'), '<svg/>');
    writeFileSync(join(release, '.env'), 'SECRET=x', { mode: 0o600 });
    symlinkSync('../images/logo-5e6f.svg', join(release, 'static/logo-5e6f.svg'));
    symlinkSync('../.env', join(release, 'static/env.txt'));
    symlinkSync('/etc/hostname', join(release, 'static/hostname.txt'));
    symlinkSync('../images', join(release, 'static/images'));
    symlinkSync('gone.js', join(release, 'static/dangling.js'));
    const r = spawnSync('bash', ['--norc', '--noprofile', '-s'], { input: scriptText(stageAssets(target, id)), encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
    expect(r.status, r.stderr).toBe(0);
    const next = join(base, '.ops/assets/next/static');
    expect(readdirSync(next).sort()).toEqual(['app-1a2b.js', 'chunk-3c4d.js', 'images', 'logo-5e6f.svg']);
    for (const f of readdirSync(next)) expect(lstatSync(join(next, f)).isSymbolicLink()).toBe(false);
    // A link to a directory of the release: its files.
    expect(statSync(join(next, 'images/logo-5e6f.svg')).ino).toBe(statSync(join(release, 'images/logo-5e6f.svg')).ino);
    // Linked: the release's own file.
    expect(statSync(join(next, 'app-1a2b.js')).ino).toBe(statSync(join(release, 'static/app-1a2b.js')).ino);
    expect(statSync(join(next, 'logo-5e6f.svg')).ino).toBe(statSync(join(release, 'images/logo-5e6f.svg')).ino);
    // Copied, readable by all, its mtime kept; the release's file as its build made it.
    const copy = statSync(join(next, 'chunk-3c4d.js'));
    expect(copy.ino).not.toBe(statSync(join(release, 'static/chunk-3c4d.js')).ino);
    expect(copy.mode & 0o777).toBe(0o644);
    expect(copy.mtimeMs).toBe(1_700_000_000_000);
    expect(readFileSync(join(next, 'chunk-3c4d.js'), 'utf8')).toBe('chunk');
    expect(statSync(join(release, 'static/chunk-3c4d.js')).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(base, '.ops/assets'))).toEqual(['next']);
    rmSync(base, { recursive: true, force: true });
  });
});

describe('sh/assets.sh: the trees of a release nginx serves, made once', () => {
  /** A host's layout in a temporary directory: a release with a build's asset directory, a dependency set beside it. */
  function layout() {
    const base = mkdtempSync(join(tmpdir(), 'ops-assets-'));
    const release = join(base, 'releases', 'r1');
    const deps = join(base, 'shared', 'deps');
    mkdirSync(join(release, 'static'), { recursive: true });
    mkdirSync(join(deps, 'node-1', 'node_modules', 'lib', 'dist'), { recursive: true });
    mkdirSync(join(base, '.ops', 'assets'), { recursive: true });
    return { base, release, deps, tree: (name: string) => join(base, '.ops', 'assets', name), carried: join(release, '.ops-assets-carried') };
  }
  const user = userInfo().username;
  const bash = (script: string) => execFileSync('bash', ['--norc', '--noprofile', '-c', `${scriptPrelude}\n${script}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const link = (l: ReturnType<typeof layout>, tree: string, ...dirs: string[]) =>
    bash(`${ASSETS_FUNCTIONS}\nassets_link ${[l.release, l.tree(tree), user, l.deps, l.carried, ...(dirs.length ? dirs : ['static'])].map(quote).join(' ')}`);
  const files = (dir: string): string[] =>
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => !e.isDirectory())
      .map((e) => relative(dir, join(e.parentPath, e.name)))
      .sort();

  it("assets_link serves what a build's links name in the release or its dependency sets (files and directories), nothing out of them, and ends a link loop", () => {
    const l = layout();
    try {
      mkdirSync(join(l.release, 'vendor', 'fonts'), { recursive: true });
      writeFileSync(join(l.release, 'vendor', 'fonts', 'a-1f2e.woff2'), 'font');
      writeFileSync(join(l.release, 'vendor', 'fonts', '.npmrc'), '//registry/:_authToken=x', { mode: 0o600 });
      writeFileSync(join(l.release, '.env'), 'SECRET=1\n');
      writeFileSync(join(l.deps, 'node-1', 'node_modules', 'lib', 'dist', 'lib-9c8b.js'), 'lib');
      writeFileSync(join(l.release, 'static', 'app-0a1b.js'), 'app');
      symlinkSync('../vendor/fonts', join(l.release, 'static', 'fonts')); // a directory of the release
      symlinkSync(join(l.deps, 'node-1', 'node_modules', 'lib', 'dist'), join(l.release, 'static', 'lib')); // a dependency set's directory
      symlinkSync(join(l.deps, 'node-1', 'node_modules', 'lib', 'dist', 'lib-9c8b.js'), join(l.release, 'static', 'lib.js'));
      symlinkSync('/etc/hostname', join(l.release, 'static', 'host.txt')); // out of both
      symlinkSync('../.env', join(l.release, 'static', 'env.txt')); // a hidden file
      symlinkSync('..', join(l.release, 'static', 'up')); // a loop (and the release's hidden files through it)
      link(l, 'current');
      const got = files(l.tree('current')).filter((f) => !f.startsWith('static/up/'));
      expect(got).toEqual(['.ops-source', 'static/app-0a1b.js', 'static/fonts/a-1f2e.woff2', 'static/lib.js', 'static/lib/lib-9c8b.js']);
      expect(readFileSync(join(l.tree('current'), 'static', 'lib', 'lib-9c8b.js'), 'utf8')).toBe('lib');
      // Through the loop, never a hidden file, and it ends.
      expect(files(l.tree('current')).filter((f) => /(^|\/)\.env$/.test(f))).toEqual([]);
      expect(files(l.tree('current')).filter((f) => f.startsWith('static/up/')).length).toBeLessThan(100);
    } finally {
      rmSync(l.base, { recursive: true, force: true });
    }
  });

  it("assets_link: hashed names, nested directories, names with spaces and non-ASCII, a build's dotfiles kept out of no tree but carried files left out", () => {
    const l = layout();
    try {
      mkdirSync(join(l.release, 'static', 'chunks', 'pages'), { recursive: true });
      mkdirSync(join(l.release, 'static', '.vite'), { recursive: true });
      writeFileSync(join(l.release, 'static', 'chunks', 'pages', 'index-3f9a.js'), 'x');
      writeFileSync(join(l.release, 'static', 'a b ü-7e.css'), 'y');
      writeFileSync(join(l.release, 'static', '.vite', 'manifest.json'), '{}');
      writeFileSync(join(l.release, 'static', 'old-5d.js'), 'carried');
      writeFileSync(l.carried, 'static/old-5d.js\0../../etc/passwd\0');
      link(l, 'current');
      expect(files(l.tree('current'))).toEqual(['.ops-source', 'static/.vite/manifest.json', 'static/a b ü-7e.css', 'static/chunks/pages/index-3f9a.js']);
    } finally {
      rmSync(l.base, { recursive: true, force: true });
    }
  });

  it('assets_reuse: the switch links what staging made (a file not readable by all copied once per release), and makes it afresh once the release changed', () => {
    const l = layout();
    const reuse = () => bash(`${ASSETS_FUNCTIONS}\nassets_reuse ${[l.release, l.tree('next'), l.tree('.new'), l.carried, 'static'].map(quote).join(' ')} && echo reused || echo made`);
    try {
      writeFileSync(join(l.release, 'static', 'app-0a1b.js'), 'app', { mode: 0o600 });
      chmodSync(join(l.release, 'static', 'app-0a1b.js'), 0o600);
      writeFileSync(join(l.release, 'static', 'app-0a1b.css'), 'css');
      link(l, 'next');
      const copy = statSync(join(l.tree('next'), 'static', 'app-0a1b.js'));
      expect(copy.ino).not.toBe(statSync(join(l.release, 'static', 'app-0a1b.js')).ino);
      expect(copy.mode & 0o777).toBe(0o644);
      // Files carried in after the staging (the switch's carry) are not its own: the staged tree still fits.
      writeFileSync(join(l.release, 'static', 'old-5d.js'), 'carried');
      writeFileSync(l.carried, 'static/old-5d.js\0');
      expect((reuse()).trim()).toMatch(/reused$/);
      expect(statSync(join(l.tree('.new'), 'static', 'app-0a1b.js')).ino).toBe(copy.ino);
      expect(existsSync(l.tree('next'))).toBe(true);
      // The release changed since: its tree is not that of the release.
      writeFileSync(join(l.release, 'static', 'late-11.js'), 'late');
      expect((reuse()).trim()).toMatch(/^made$/m);
      // Another release's tree never fits.
      const other = join(l.base, 'releases', 'r2');
      cpSync(l.release, other, { recursive: true, preserveTimestamps: true });
      link(l, 'next');
      expect((bash(`${ASSETS_FUNCTIONS}\nassets_reuse ${[other, l.tree('next'), l.tree('.new'), join(other, '.ops-assets-carried'), 'static'].map(quote).join(' ')} && echo reused || echo made`)).trim()).toMatch(/made$/);
    } finally {
      rmSync(l.base, { recursive: true, force: true });
    }
  });
});

describe('release ids', () => {
  it('sort by time and hold the sha', () => {
    expect(releaseId('0123456789abcdef0123456789abcdef01234567', new Date('2026-11-25T12:34:56.789Z'))).toBe('20261125T123456Z-0123456789ab');
  });
});

describe('.env', () => {
  const hard = { DB: 'postgresql://u:pa$$%40w"rd\'@h/db', PASSWORDS: { 'a@b.c': 'pa$$ "w0rd" `x` \\ end\n-n\r\n=' } };
  const render = (extra: Record<string, unknown> = {}, secrets: unknown = { database_url: hard.DB, passwords: hard.PASSWORDS }) => renderDotenv(env(extra), secrets);

  it("gives the pipeline's own commands the exact values: NUL-separated records, exported by a loop that parses nothing", () => {
    const { environ } = render();
    const dir = mkdtempSync(join(tmpdir(), 'ops-environ-'));
    writeFileSync(join(dir, 'environ'), environ);
    const script = `${environLoader(join(dir, 'environ'))}\nprintf '%s\\0' "$MODE" "$DB" "$PASSWORDS"`;
    const out = execFileSync('bash', ['--norc', '-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out).toBe(['live', hard.DB, asString(hard.PASSWORDS), ''].join('\0'));
    expect(JSON.parse(out.split('\0')[2]!)).toEqual(hard.PASSWORDS); // the map as JSON (its ', ` and \ as \u escapes)
  });

  it('writes each value in a quoting every declared reader reads back (the real parsers: dotenv-readers.test.ts)', () => {
    const { dotenv, forms } = render({}, { database_url: 'pa$$w0rd', passwords: "it's" });
    expect(dotenv.split('\n').slice(1)).toEqual(["MODE='live'", "DB='pa$$w0rd'", 'PASSWORDS="it\'s"', '']);
    expect(forms).toEqual({ MODE: 'single-quoted', DB: 'single-quoted', PASSWORDS: 'double-quoted with \\n for line breaks' });
    expect(dotenv.split('\n')[0]).toMatch(/^# Rendered by ops-pipeline for test \(readers: python-dotenv, node-dotenv\)/);
  });

  it('refuses, by variable and reader, never printing the value, a value no quoting carries for the readers', () => {
    const secret = 'x${HOME}y-Sekr1t';
    const refused = () => render({}, { database_url: secret, passwords: 'ok' });
    expect(refused).toThrow(OpsError);
    try {
      refused();
    } catch (e) {
      const err = e as OpsError;
      expect(err.message).toContain('1 .env value of test cannot be written so that its readers read it back exactly (nothing was sent to any host)');
      expect(err.message).toContain('DB (secret "database_url"; read by python-dotenv, node-dotenv): python-dotenv replaces "${...}"');
      expect(err.message + err.hint).not.toContain('Sekr1t');
      expect(err.hint).toContain('drop python-dotenv from dotenv.readers');
    }
    // Without python-dotenv among the readers the same value is written, and node-dotenv reads it as is.
    expect(render({ dotenv: { readers: ['node-dotenv'] } }, { database_url: secret, passwords: 'ok' }).dotenv).toContain(`DB='${secret}'`);
  });

  it('a reader limited to a prefix (vite exposes only VITE_*) constrains only those variables', () => {
    const readers = { dotenv: { readers: ['python-dotenv', 'node-dotenv', { reader: 'vite', only: 'VITE_' }] } };
    const ok = render({ ...readers, env: { VITE_MODE: 'live', DB: { secret: 'database_url' } } }, { database_url: 'pa$HOME' });
    expect(ok.dotenv.split('\n')[0]).toContain('(readers: python-dotenv, node-dotenv, vite (VITE_*))');
    expect(ok.dotenv).toContain("DB='pa$HOME'");
    expect(() => render({ ...readers, env: { VITE_KEY: 'pa$HOME' } })).toThrow(/VITE_KEY \(a plain value in environment.yml; read by python-dotenv, node-dotenv, vite\): no quoting is read the same by python-dotenv and vite/);
    // The hint says where a plain value is changed (not with ops secrets set).
    const hint = (() => {
      try {
        render({ ...readers, env: { VITE_KEY: 'pa$HOME' } });
      } catch (e) {
        return (e as OpsError).hint;
      }
    })();
    expect(hint).toMatch(/^change the value \(a plain value: its env entry in environments\/\w+\/environment.yml\), or/);
  });

  it('writes a 64-bit integer secret (held exactly, as sops does) digit for digit', () => {
    expect(render({}, { database_url: 9007199254740993n, passwords: 'x' }).dotenv).toContain("DB='9007199254740993'");
  });
  it('lists every missing secret at once', () => {
    expect(() => renderDotenv(env(), {})).toThrow(/lacks 2 secrets the .env needs:\n  - DB needs the secret "database_url"\n  - PASSWORDS needs the secret "passwords"/);
    // a secret that is there but null (typed ~, null or nothing): named so, not given as sops's `<nil>`
    expect(() => renderDotenv(env(), { database_url: null, passwords: {} })).toThrow(/lacks 1 secret the .env needs:\n  - DB needs the secret "database_url", which holds no value \(null: typed as ~, null or nothing after its key\)$/m);
  });
  it('names the key the file has where the one asked for is a slip away (databse_url, a member path): a typo on either side', () => {
    expect(() => renderDotenv(env(), { databse_url: 'x', passwords: 'y' })).toThrow(/lacks 1 secret the .env needs:\n  - DB needs the secret "database_url" \(the file has "databse_url": did you mean it\?\)$/m);
    expect(() => renderDotenv(env(), { database_url: 'x', pass: { words: 'y' } })).toThrow(/  - PASSWORDS needs the secret "passwords" \(the file has "pass.words": did you mean it\?\)$/m);
    // nothing close: no guess
    expect(() => renderDotenv(env(), { database_url: 'x', other: 'y' })).toThrow(/  - PASSWORDS needs the secret "passwords"$/m);
  });
});

describe('initdata', () => {
  it('removes the uploaded file whatever happens, also under a base_dir that needs quoting', () => {
    // Not under /tmp: base_dir may not be there (cleaned at boot). node_modules/.cache is the clone's own scratch.
    const scratch = join(process.cwd(), 'node_modules', '.cache');
    mkdirSync(scratch, { recursive: true });
    const dir = mkdtempSync(join(scratch, 'ops initdata '));
    try {
      const uploaded = join(dir, 'initdata-0123.yml');
      writeFileSync(uploaded, 'users: []\n');
      const script = runInitdata(env({ base_dir: dir }), uploaded, 'initdata.yml').script;
      // The step's first two lines (private directory, cleanup trap), then a failure: the trap must still run.
      const head = script.split('\n').slice(0, 2).join('\n');
      const r = spawnSync('bash', ['-c', `set -e\n${head}\nexit 3`], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(3);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
