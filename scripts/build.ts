// Bundles each action (actions/<name>/main.ts) into actions/<name>/dist/index.js with esbuild.
// The bundles are committed: GitHub runs an action straight from the repository, without npm install.
// `npm run build -- --check` builds into a temporary folder and fails if a committed bundle differs.
import { build } from 'esbuild';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bundleOptions } from './bundle-options.js';

const root = resolve(import.meta.dirname, '..');

export function actionNames(): string[] {
  return readdirSync(join(root, 'actions'), { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(root, 'actions', d.name, 'main.ts')))
    .map((d) => d.name)
    .sort();
}

export async function bundle(name: string, outfile: string): Promise<void> {
  await build({
    ...bundleOptions,
    entryPoints: [join(root, 'actions', name, 'main.ts')],
    outfile,
    legalComments: 'eof',
  });
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  const names = actionNames();
  const tmp = check ? mkdtempSync(join(tmpdir(), 'ops-bundles-')) : '';
  const stale: string[] = [];
  try {
    await Promise.all(
      names.map(async (name) => {
        const committed = join(root, 'actions', name, 'dist', 'index.js');
        const out = check ? join(tmp, `${name}.js`) : committed;
        await bundle(name, out);
        if (check && (!existsSync(committed) || !readFileSync(out).equals(readFileSync(committed)))) stale.push(name);
      }),
    );
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
  if (stale.length) {
    console.error(`stale bundles: ${stale.join(', ')} — run \`npm run build\` and commit actions/*/dist`);
    process.exit(1);
  }
  console.log(`${check ? 'checked' : 'built'} ${names.length} action bundles: ${names.join(', ')}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
