import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ConfigError, environmentReference, listEnvironments, loadEnvironment, parseEnvironment } from '../../core/config/environment.ts';
import { fingerprint, parseHostKey } from '../../core/config/hostkey.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const minimal = () => ({
  app: 'shop',
  hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }],
  programs: { server: { command: 'run', port: 3579 }, client: { command: 'run', port: 3000 } },
});

function problems(doc: unknown): string[] {
  try {
    parseEnvironment(doc, 'environments/x/environment.yml');
  } catch (e) {
    if (e instanceof ConfigError) return e.problems.map((p) => `${p.path}: ${p.message}`);
    throw e;
  }
  return [];
}

describe('environment schema', () => {
  it('keeps every key of a free mapping as its own, "__proto__" and "constructor" too, and none a mapping does not have', () => {
    const doc = parse(`app: shop
hosts: [{ name: web1, address: 192.0.2.1, host_key: ${KEY} }]
programs:
  server: { command: run, port: 3579, env: { __proto__: p, constructor: c } }
  client: { command: run, port: 3000 }
env: { __proto__: { secret: db }, constructor: c, toString: t }
`);
    const c = parseEnvironment(doc, 'f');
    expect(Object.entries(c.env)).toEqual([['__proto__', { secret: 'db' }], ['constructor', 'c'], ['toString', 't']]);
    expect(Object.entries(c.programs.server!.env)).toEqual([['__proto__', 'p'], ['constructor', 'c']]);
    // nothing inherited, and no mapping's prototype replaced
    for (const map of [c.env, c.programs, c.routes, c.programs.client!.env] as Record<string, unknown>[]) {
      expect(map.secret).toBeUndefined();
      expect(Object.hasOwn(map, 'constructor') || map.constructor === undefined).toBe(true);
    }
    // a route to a program named like a property every object inherits is a route to no program
    expect(problems({ ...minimal(), routes: { '/': 'constructor' } })).toEqual(['routes./: no program named "constructor" (programs: server, client)']);
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
        'programs.server.port: expected an integer 1-65535, got "3579"',
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
      'routes./api?x/: expected a URL path: "/" then letters, digits, ".", "_", "~", "/" or "-", got "/api?x/"',
    ]);
  });

  it('an address is an IP address or a DNS name: a port written into it, brackets, a malformed IPv4 address are refused saying what to write', () => {
    const ok = ['192.0.2.1', '2001:db8::5', '::1', 'fe80::1:22', 'web1', 'web-1.example.org', 'web1.example.org.'];
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
    ];
    for (const [address, why] of refused) {
      const doc = { ...minimal(), hosts: [{ name: 'web1', address, host_key: KEY }], bastion: { address, host_key: KEY } };
      expect(problems(doc), address).toEqual([expect.stringMatching(new RegExp(`^hosts\\[0\\]\\.address: expected an IP address or DNS name, got .*${why.source}`)), expect.stringMatching(new RegExp(`^bastion\\.address: .*${why.source}`))]);
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
    expect(env.hosts[0]!.bastion).toEqual({ name: 'bastion', address: 'jump.example.org', port: 22, user: 'ops', hostKey: `${other} root@jump`, identityFile: join(root, 'environments', 'x', 'jump_key') });
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
