// The JSON Schema for environment.yml (what editors validate with): committed equal to a fresh render of the
// loader's schema, referenced by every environment file, and checked with a real validator (ajv) against the
// loader itself: the same verdict and the same key paths on every file of a corpus of broken ones.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ConfigError, JSON_SCHEMA_FILE, SCHEMA_COMMENT, environmentJsonSchema, listEnvironments, parseEnvironment } from '../../core/config/environment.ts';
import { environmentTemplate } from '../../core/secrets/scaffold.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const committed = JSON.parse(readFileSync(join(ROOT, JSON_SCHEMA_FILE), 'utf8')) as object;
const validate = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(committed);

/** A loader path ("hosts[0].port", "routes./api/") from a JSON pointer, walking the document for list indices. */
function loaderPath(doc: unknown, pointer: string, extra?: string): string {
  const segments = pointer === '' ? [] : pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) segments.push(extra);
  let path = '';
  let node: unknown = doc;
  for (const s of segments) {
    if (Array.isArray(node)) {
      path += `[${s}]`;
      node = node[Number(s)];
    } else {
      path += path ? `.${s}` : s;
      node = node && typeof node === 'object' ? (node as Record<string, unknown>)[s] : undefined;
    }
  }
  return path;
}

function schemaPaths(doc: unknown): string[] | 'valid' {
  if (validate(doc)) return 'valid';
  const at = (e: ErrorObject) => {
    const p = e.params as { missingProperty?: string; additionalProperty?: string; propertyName?: string };
    return loaderPath(doc, e.instancePath, p.missingProperty ?? p.additionalProperty ?? p.propertyName);
  };
  return [...new Set((validate.errors ?? []).map(at))] as string[];
}

function loaderPaths(doc: unknown): string[] | 'valid' {
  try {
    parseEnvironment(doc, 'environments/x/environment.yml');
    return 'valid';
  } catch (e) {
    if (e instanceof ConfigError) return [...new Set(e.problems.map((p) => p.path))];
    throw e;
  }
}

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const base = (): Record<string, any> => ({
  app: 'shop',
  ref: 'v1',
  hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }],
  ssh: { connect_timeout: 10 },
  runtimes: { python: { strategy: 'debian', version: '3.11' } },
  programs: { server: { command: 'run', port: 3579, env: { PORT: '{port}' } }, client: { command: 'run', port: 3000 } },
  routes: { '/': 'client', '/api/': 'server' },
  env: { SECRET_KEY: { secret: 'secret_key' }, MODE: 'prod' },
  tls: { mode: 'self-signed' },
});

/** Broken files: each gets the same verdict from both, and every path the loader names is named by the schema. */
const BROKEN: [string, (d: Record<string, any>) => void][] = [
  ['missing required key', (d) => delete d.app],
  ['required key left empty', (d) => (d.app = null)],
  ['unknown top-level key', (d) => (d.releases = { keep: 3 })],
  ['unknown nested key', (d) => (d.hosts[0].colour = 'blue')],
  ['wrong type', (d) => (d.hosts[0].port = 'abc')],
  ['integer out of range', (d) => (d.hosts[0].port = 70000)],
  ['float where an integer belongs', (d) => (d.release = { keep: 2.5 })],
  ['number out of range', (d) => (d.switch = { health_interval: 0 })],
  ['pattern mismatch', (d) => (d.app = 'Shop!')],
  ['bad git ref', (d) => (d.ref = '-rf..x')],
  ['enum', (d) => (d.tls.mode = 'on')],
  ['empty list', (d) => (d.hosts = [])],
  ['list of the wrong thing', (d) => (d.provision = { packages: ['ok', 'Not A Package'] })],
  ['record key pattern', (d) => (d.routes = { 'api/': 'server' })],
  ['record value', (d) => (d.programs.server.env = { PORT: 3579 })],
  ['record key (variable name)', (d) => (d.env['1BAD'] = 'x')],
  ['secret reference shape', (d) => (d.env.SECRET_KEY = { secret: 'a b' })],
  ['not a mapping', (d) => (d.ssh = 'fast')],
  ['malformed host key line', (d) => (d.hosts[0].host_key = 'ssh-dss AAAA')],
  ['neither host_key nor host_key_file', (d) => delete d.hosts[0].host_key],
  ['both host_key and host_key_file', (d) => (d.hosts[0].host_key_file = 'k.pub')],
  ['letsencrypt without domain and email', (d) => (d.tls = { mode: 'letsencrypt' })],
  ['pyenv without a full version', (d) => (d.runtimes.python = { strategy: 'pyenv', version: '3.8' })],
  ['nvm without a full version', (d) => (d.runtimes.node = { strategy: 'nvm', version: '16' })],
  ['several problems at once', (d) => {
    d.hosts.push({ name: 'Web 2', address: 'x y', port: 0 });
    d.switch = { batch_size: 'all', keep_previous: 'yes' };
  }],
];

/** Accepted by both: empty optional keys, defaults, the other forms a value may take. */
const VALID: [string, (d: Record<string, any>) => void][] = [
  ['the base file', () => {}],
  ['optional keys left empty', (d) => Object.assign(d, { ref: null, ssh: null, release: null, tls: null })],
  ['a nested optional key left empty', (d) => (d.hosts[0].port = null)],
  ['host_key_file instead of host_key', (d) => (d.hosts[0] = { name: 'web1', address: 'a', host_key_file: 'web1.pub' })],
  ['a known_hosts line with a comment', (d) => (d.hosts[0].host_key = `web1 ${KEY} root@web1`)],
  ['letsencrypt with domain and email', (d) => Object.assign(d, { domain: 'x.example.org', tls: { mode: 'letsencrypt', email: 'a@example.org' } })],
  ['pyenv with a full version', (d) => (d.runtimes.python = { strategy: 'pyenv', version: '3.8.9' })],
];

/** What only the loader checks (code after the schema, or a host key's decoded contents): editors accept them. */
const LOADER_ONLY: [string, (d: Record<string, any>) => void, string][] = [
  ['duplicate host names', (d) => d.hosts.push({ name: 'web1', address: 'b', host_key: KEY }), 'hosts[1].name'],
  ['a route to no program', (d) => (d.routes['/admin/'] = 'admin'), 'routes./admin/'],
  ['ports that collide with the other slot', (d) => (d.programs.client.port = 3580), 'programs.client.port'],
  ['a program run from the live release by path', (d) => (d.programs.client.command = 'cd /srv/shop/current && node build'), 'programs.client.command'],
  ['a host key whose data is another type', (d) => (d.hosts[0].host_key = `ssh-rsa ${KEY.split(' ')[1]}`), 'hosts[0].host_key'],
];

describe('JSON Schema of environment.yml', () => {
  it(`${JSON_SCHEMA_FILE} is a fresh render of the loader's schema (run \`npm run docs\` after changing it)`, () => {
    expect(committed).toEqual(environmentJsonSchema());
  });

  it('every committed environment file points editors at it and validates', () => {
    const names = listEnvironments(ROOT);
    expect(names.length).toBeGreaterThanOrEqual(4);
    for (const name of names) {
      const file = join(ROOT, 'environments', name, 'environment.yml');
      const text = readFileSync(file, 'utf8');
      expect(text.split('\n')[0], name).toBe(SCHEMA_COMMENT);
      const target = resolve(dirname(file), SCHEMA_COMMENT.split('$schema=')[1]!);
      expect(existsSync(target), target).toBe(true);
      const doc = parse(text);
      expect(schemaPaths(doc), name).toBe('valid');
      expect(loaderPaths(doc), name).toBe('valid');
    }
  });

  it('what `ops env new` writes points at it and validates', () => {
    const text = environmentTemplate('qa');
    expect(text.split('\n')[0]).toBe(SCHEMA_COMMENT);
    expect(schemaPaths(parse(text))).toBe('valid');
  });

  for (const [name, mutate] of VALID) {
    it(`accepted by both: ${name}`, () => {
      const doc = base();
      mutate(doc);
      expect(loaderPaths(doc)).toBe('valid');
      expect(schemaPaths(doc)).toBe('valid');
    });
  }

  for (const [name, mutate] of BROKEN) {
    it(`refused by both, at the same key paths: ${name}`, () => {
      const doc = base();
      mutate(doc);
      const loader = loaderPaths(doc);
      const schema = schemaPaths(doc);
      expect(loader).not.toBe('valid');
      expect(schema).not.toBe('valid');
      expect((loader as string[]).length).toBeGreaterThan(0);
      for (const p of loader as string[]) expect(schema, `the schema also names ${p || '(top level)'}`).toContain(p);
    });
  }

  for (const [name, mutate, path] of LOADER_ONLY) {
    it(`only the loader refuses (documented): ${name}`, () => {
      const doc = base();
      mutate(doc);
      expect(loaderPaths(doc)).toEqual([path]);
      expect(schemaPaths(doc)).toBe('valid');
    });
  }
});
