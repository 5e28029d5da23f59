// The actions as GitHub sees them: committed bundles equal a fresh build, action.yml declares every input
// its entry point reads (and the runtime GitHub runs), and each entry point stays thin.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = join(import.meta.dirname, '..', '..');
const actions = readdirSync(join(ROOT, 'actions'), { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name);

/** A module and every module of this repository it imports, transitively (relative imports only). */
function reachable(entry: string): string[] {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file) || !existsSync(file)) return;
    seen.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)\s[^;]*?from '(\.[^']+\.ts)';/gms)) visit(resolve(dirname(file), m[1]!));
  };
  visit(entry);
  return [...seen];
}

describe('action bundles', () => {
  it('are committed and equal a fresh build (run `npm run build` and commit actions/*/dist)', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/.bin/tsx'), join(ROOT, 'scripts/build.ts'), '--check'], { encoding: 'utf8' });
    expect(r.stderr + r.stdout).toMatch(/checked \d+ action bundles/);
    expect(r.status).toBe(0);
  }, 120_000);

  it('each loads as the runner starts it (node dist/index.js, another working directory, no inputs): the missing input said, no module missing', () => {
    for (const a of actions) {
      const r = spawnSync(process.execPath, [join(ROOT, 'actions', a, 'dist', 'index.js')], { encoding: 'utf8', cwd: tmpdir(), env: { PATH: process.env.PATH ?? '' }, timeout: 60_000 });
      // A dependency the bundler could not follow (a UMD build's require) fails here with "Cannot find module".
      expect(r.stderr + r.stdout, a).not.toMatch(/Cannot find module|ERR_MODULE_NOT_FOUND|^\s+at /m);
      expect(r.stdout, a).toMatch(/^::error::/m);
    }
  }, 120_000);

  it("each loads whatever the runner's variables hold (a $GITHUB_API_URL that is no URL, an event file that is no JSON): an ::error:: line, no stack trace", () => {
    const event = join(mkdtempSync(join(tmpdir(), 'ops-event-')), 'event.json');
    writeFileSync(event, 'not json');
    for (const a of actions) {
      const env = { PATH: process.env.PATH ?? '', GITHUB_API_URL: 'ghe.example.com/api/v3', GITHUB_EVENT_PATH: event, GITHUB_EVENT_NAME: 'pull_request_target' };
      const r = spawnSync(process.execPath, [join(ROOT, 'actions', a, 'dist', 'index.js')], { encoding: 'utf8', cwd: tmpdir(), env, timeout: 60_000 });
      // @actions/github read both as it loaded: a TypeError's stack on stderr, before any action code ran.
      expect(r.stderr + r.stdout, a).not.toMatch(/Invalid URL|SyntaxError|^\s+at /m);
      expect(r.stdout, a).toMatch(/^::error::/m);
    }
  }, 120_000);

  it('are tracked by git', () => {
    const tracked = execFileSync('git', ['-C', ROOT, 'ls-files', 'actions'], { encoding: 'utf8' });
    expect(actions.length).toBeGreaterThanOrEqual(6);
    for (const a of actions) expect(tracked).toContain(`actions/${a}/dist/index.js`);
  });
});

describe.each(actions)('actions/%s', (name) => {
  const dir = join(ROOT, 'actions', name);
  const meta = parse(readFileSync(join(dir, 'action.yml'), 'utf8')) as {
    name: string;
    description: string;
    inputs?: Record<string, { description: string; required?: boolean; default?: string }>;
    outputs?: Record<string, { description: string }>;
    runs: { using: string; main: string };
  };
  const source = readFileSync(join(dir, 'main.ts'), 'utf8');

  it('runs the committed bundle on GitHub\'s current Node runtime', () => {
    expect(meta.runs).toEqual({ using: 'node24', main: 'dist/index.js' });
    expect(existsSync(join(dir, meta.runs.main))).toBe(true);
    expect(meta.name).toBeTruthy();
    expect(meta.description.length).toBeGreaterThan(40);
  });

  it('declares every input its entry point reads, each with a description', () => {
    const read = new Set([...source.matchAll(/\b(?:input|flag)\(\s*'([a-z0-9-]+)'/g)].map((m) => m[1]!));
    // core/action.ts reads these for every action that declares them.
    for (const shared of ['ssh-key', 'age-key', 'working-directory']) if (meta.inputs?.[shared]) read.add(shared);
    const declared = Object.keys(meta.inputs ?? {});
    expect(read.has('environment') || name === 'staging-sync', 'reads its environment').toBe(true);
    expect(declared.length).toBeGreaterThan(0);
    for (const i of read) expect(declared, `input ${i} is read but not declared`).toContain(i);
    for (const [k, v] of Object.entries(meta.inputs ?? {})) expect(v.description, `input ${k}`).toBeTruthy();
    for (const k of declared) expect(k).toMatch(/^[a-z][a-z0-9-]*$/);
  });

  it('writes exactly the outputs it declares (from its entry point or the core modules it runs)', () => {
    const files = reachable(join(dir, 'main.ts'));
    expect(files.some((f) => f.includes('/core/')), 'the entry point reaches core/').toBe(true);
    const written = new Set(files.flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/\boutput\(\s*'([a-z0-9-]+)'/g)].map((m) => m[1]!)));
    expect([...written].sort()).toEqual(Object.keys(meta.outputs ?? {}).sort());
  });

  it('checks its flags, required inputs and key inputs before any work (runAction\'s spec, core/action.ts)', () => {
    const spec = /runAction\(\s*(\{[^\n]*\}),\s*async/.exec(source)?.[1];
    expect(spec, 'runAction(spec, body)').toBeTruthy();
    const flags = /flags: \{([^}]*)\}/.exec(spec!)?.[1] ?? '';
    for (const m of source.matchAll(/\bflag\(\s*'([a-z0-9-]+)'/g)) expect(flags, `flag ${m[1]} is checked first`).toMatch(new RegExp(`'?${m[1]}'?:`));
    for (const [k, v] of Object.entries(meta.inputs ?? {})) if (v.required) expect(spec, `required input ${k} is checked first`).toContain(`'${k}'`);
  });

  it('keeps its entry point thin (the logic lives in core/)', () => {
    expect(source.split('\n').length).toBeLessThan(60);
    expect(source).toMatch(/from '\.\.\/\.\.\/core\//);
  });
});
