// core/dotenv.ts's renderDotenv and environLoader on whole files: secrets of every shape (integers beyond 2^53
// in maps and lists), and the environ loader run by real bash with records named like bash's own variables.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseEnvironment, resolveEnvironment, type Environment } from '../../core/config/environment.ts';
import { asString, renderDotenv } from '../../core/dotenv.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

/** An environment whose .env is `env`, read by `readers` (dotenv.readers as written in environment.yml). */
export function environment(env: Record<string, unknown>, readers?: unknown[]): Environment {
  const config = parseEnvironment(
    {
      app: 'shop',
      tls: { mode: 'off' },
      hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }],
      programs: { server: { command: 'run', port: 8000 }, client: { command: 'run', port: 3000 } },
      env,
      ...(readers ? { dotenv: { readers } } : {}),
    },
    't',
  );
  return resolveEnvironment('t', '/x', config, [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }]);
}

describe('secrets of every shape', () => {
  it('an integer beyond 2^53 in a map or a list is written as its digits (as sops decrypt --output-type json), at any depth', () => {
    const big = 9007199254740993n;
    expect(asString({ chat_id: big })).toBe('{"chat_id":9007199254740993}');
    expect(asString([big, 2])).toBe('[9007199254740993,2]');
    expect(asString({ a: [{ b: -big, c: 'x"y', d: null, e: [true, 1.5] }] })).toBe('{"a":[{"b":-9007199254740993,"c":"x\\"y","d":null,"e":[true,1.5]}]}');
    // without bigints, exactly what JSON.stringify writes (own "__proto__" keys included)
    const plain = JSON.parse('{"__proto__":"p","1":[1e21,-0,"é\\u2028"],"z":{"y":{}}}');
    expect(asString(plain)).toBe(JSON.stringify(plain));
    const env = environment({ IDS: { secret: 'ids' }, LIST: { secret: 'list' } });
    const { dotenv, environ } = renderDotenv(env, { ids: { chat_id: big }, list: [big, 2] });
    expect(dotenv).toContain(`IDS='{"chat_id":9007199254740993}'`);
    expect(dotenv).toContain("LIST='[9007199254740993,2]'");
    expect(environ).toBe('IDS={"chat_id":9007199254740993}\0LIST=[9007199254740993,2]\0');
  });
});

describe('variable names', () => {
  it('"__proto__" and "constructor" are written like any other name, to the .env, the environ file and the forms', () => {
    const { dotenv, environ, forms } = renderDotenv(environment(JSON.parse('{"__proto__": "polluted", "constructor": "c"}')), {});
    expect(dotenv.split('\n').slice(1)).toEqual(["__proto__='polluted'", "constructor='c'", '']);
    expect(environ).toBe('__proto__=polluted\0constructor=c\0');
    expect(Object.entries(forms)).toEqual([['__proto__', 'single-quoted'], ['constructor', 'single-quoted']]);
  });
});
