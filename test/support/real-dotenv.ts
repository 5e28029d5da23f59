// The real .env parsers, run on a real file, in batches (one python or bash process per file, not per value):
// how the tests check that what core/dotenv.ts writes is read back exactly. python-dotenv runs from the pinned
// venvs scripts/setup-machine.sh makes; Node's dotenv (18 and 16), dotenv-expand 12, Next.js's @next/env, Node's util.parseEnv and
// vite's loadEnv are the devDependencies, called as an app calls them.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import type { Reader } from '../../core/dotenv.ts';

const require = createRequire(import.meta.url);
const dotenv18 = require('dotenv') as { parse(src: string, options?: { fast?: boolean }): Record<string, string> };
const dotenv16 = require('dotenv-16') as { parse(src: string): Record<string, string> };
const NEXT_ENV_VERSION = (require('@next/env/package.json') as { version: string }).version;
const { expand } = require('dotenv-expand') as { expand(o: { parsed: Record<string, string>; processEnv: Record<string, string> }): { parsed: Record<string, string> } };

/** The pinned python-dotenv versions (test/support/python-dotenv.txt), first = the sample app's. */
export const PYTHON_DOTENV_VERSIONS = readFileSync(join(import.meta.dirname, 'python-dotenv.txt'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

export function pythonDotenv(version: string): string {
  return `/var/cache/ops-pipeline/py/python-dotenv-${version}/bin/python`;
}

/** A clean process environment: nothing for `${HOME}` or `$PATH` to pick up by chance. */
const CLEAN_ENV = { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' };

/** python-dotenv's dotenv_values (interpolation on, as load_dotenv and pydantic-settings use it). */
export function readPython(file: string, version: string): Record<string, string | null> {
  const code = 'import json, sys\nfrom dotenv import dotenv_values\nsys.stdout.write(json.dumps(dotenv_values(sys.argv[1])))';
  return JSON.parse(execFileSync(pythonDotenv(version), ['-c', code, file], { env: CLEAN_ENV, encoding: 'utf8', maxBuffer: 1 << 28 }));
}

/** The pinned django-environ version (test/support/django-environ.txt), installed by scripts/setup-machine.sh. */
export const DJANGO_ENVIRON_VERSION = readFileSync(join(import.meta.dirname, 'django-environ.txt'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .find((l) => l && !l.startsWith('#'))!;

/**
 * django-environ as a Django settings module uses it: `Env.read_env(file)` (with its option `parse_comments`, which
 * cuts an unquoted value at a `#`, or not), then `env(NAME)` for every variable the file gave the process (its proxy
 * resolved: a value starting with `$` names another variable); one `env()` refuses gives `<ImproperlyConfigured>`.
 */
export function readDjangoEnviron(file: string, parseComments: boolean): Record<string, string> {
  const code = [
    'import json, os, sys, environ',
    'before = set(os.environ)',
    'environ.Env.read_env(sys.argv[1], parse_comments=sys.argv[2] == "1")',
    'env = environ.Env()',
    'def get(k):',
    '    try:',
    '        return env(k)',
    '    except environ.ImproperlyConfigured:',
    "        return '<ImproperlyConfigured>'",
    'sys.stdout.write(json.dumps({k: get(k) for k in os.environ if k not in before}))',
  ].join('\n');
  const python = `/var/cache/ops-pipeline/py/django-environ-${DJANGO_ENVIRON_VERSION}/bin/python`;
  return JSON.parse(execFileSync(python, ['-c', code, file, parseComments ? '1' : '0'], { env: CLEAN_ENV, encoding: 'utf8', maxBuffer: 1 << 28 }));
}

/**
 * bash: `set -a; . ./.env`, then every variable it exported, as bash has it (`env -0`), but those bash and the
 * clean environment have anyway (PATH, LANG, PWD, SHLVL, _) unless `keys` names them.
 */
export function readShell(file: string, keys: string[]): Record<string, string> {
  const out = execFileSync('bash', ['--norc', '--noprofile', '-c', 'set -a; . "$1"; set +a; exec env -0', 'bash', file], { env: CLEAN_ENV, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 1 << 28 });
  const result: Record<string, string> = {};
  for (const record of out.split('\0').slice(0, -1)) {
    const name = record.slice(0, record.indexOf('='));
    if (keys.includes(name) || !['PATH', 'LANG', 'PWD', 'SHLVL', '_'].includes(name)) result[name] = record.slice(name.length + 1);
  }
  return result;
}

/**
 * vite's loadEnv (vite 8: Node's util.parseEnv, then dotenv-expand), reading `dir/.env`: every variable it read
 * (with prefix "" it adds the test process's own environment: those are left out, unless `keys` names them).
 */
async function readVite(dir: string, keys: string[]): Promise<Record<string, string | undefined>> {
  const { loadEnv } = await import('vite');
  const all = loadEnv('production', dir, '');
  return Object.fromEntries(Object.entries(all).filter(([k]) => keys.includes(k) || !(k in process.env)));
}

/**
 * Next.js's own loader (@next/env's loadEnvConfig, as `next build` and `next start` call it: production, `dir/.env`,
 * with its bundled dotenv-expand, an older one than dotenv-expand 12): every variable it read. It sets them in
 * process.env, and takes values for `$NAME` from there: both put back as they were.
 */
function readNext(dir: string): Record<string, string> {
  const { loadEnvConfig } = require('@next/env') as { loadEnvConfig(dir: string, dev: boolean, log: { info(): void; error(): void }, forceReload: boolean): { parsedEnv?: Record<string, string> } };
  const before = { ...process.env };
  try {
    return loadEnvConfig(dir, false, { info() {}, error() {} }, true).parsedEnv ?? {};
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in before)) delete process.env[k];
    Object.assign(process.env, before);
  }
}

/**
 * Every way a reader is run for real: a name ("python-dotenv 1.2.4", "vite 8 loadEnv"...) and every variable it
 * read from `dir/.env` (`keys`: the variables the file is meant to hold).
 */
export async function readReal(reader: Reader, dir: string, keys: string[]): Promise<{ how: string; values: Record<string, string | null | undefined> }[]> {
  const file = join(dir, '.env');
  const text = readFileSync(file, 'utf8');
  switch (reader) {
    case 'python-dotenv':
      return PYTHON_DOTENV_VERSIONS.map((v) => ({ how: `python-dotenv ${v}`, values: readPython(file, v) }));
    case 'node-dotenv':
      return [
        { how: 'dotenv 18 parse', values: dotenv18.parse(text) },
        { how: 'dotenv 18 parse (fast)', values: dotenv18.parse(text, { fast: true }) },
        { how: 'dotenv 16 parse', values: dotenv16.parse(text) },
      ];
    case 'node-env-file':
      return [{ how: `Node ${process.version} util.parseEnv`, values: parseEnv(text) }];
    case 'dotenv-expand':
      return [
        { how: 'dotenv 18 + dotenv-expand 12', values: expand({ parsed: dotenv18.parse(text), processEnv: {} }).parsed },
        { how: `Next.js @next/env ${NEXT_ENV_VERSION} loadEnvConfig`, values: readNext(dir) },
      ];
    case 'vite':
      return [
        { how: 'dotenv 16 + dotenv-expand 12 (vite 6, 7)', values: expand({ parsed: dotenv16.parse(text), processEnv: {} }).parsed },
        { how: 'vite 8 loadEnv', values: await readVite(dir, keys) },
      ];
    case 'shell':
      return [{ how: 'bash set -a; . ./.env', values: readShell(file, keys) }];
    case 'django-environ':
      return [
        { how: `django-environ ${DJANGO_ENVIRON_VERSION} read_env + env()`, values: readDjangoEnviron(file, false) },
        { how: `django-environ ${DJANGO_ENVIRON_VERSION} read_env(parse_comments=True) + env()`, values: readDjangoEnviron(file, true) },
      ];
  }
}

/** A private directory holding `.env` with `text`; removed by the returned function. */
export function dotenvDir(text: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'ops-dotenv-'));
  writeFileSync(join(dir, '.env'), text);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
