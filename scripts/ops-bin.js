#!/usr/bin/env node
// Starts the ops CLI fast: from a bundle cached in node_modules/.cache/ops-pipeline/, rebuilt with esbuild
// (a fraction of a second) whenever a source under core/ or scripts/ is newer. Transpiling the TypeScript
// on every start (tsx) costs over a second, which matters for commands like a no-op deploy or a rollback.
// Without esbuild (a production install), it falls back to tsx.
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cache = join(root, 'node_modules', '.cache', 'ops-pipeline');
const bundle = join(cache, 'ops.mjs');

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === 'dist') continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p));
    else if (e.name.endsWith('.ts') || e.name.endsWith('.sh')) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

async function ensureBundle() {
  const built = existsSync(bundle) ? statSync(bundle).mtimeMs : 0;
  if (built > Math.max(newest(join(root, 'core')), newest(join(root, 'scripts')), statSync(join(root, 'package-lock.json')).mtimeMs)) return true;
  let esbuild;
  try {
    esbuild = await import('esbuild');
  } catch {
    return false;
  }
  mkdirSync(cache, { recursive: true });
  const { bundleOptions } = await import(pathToFileURL(join(root, 'scripts', 'bundle-options.js')).href);
  await esbuild.build({
    ...bundleOptions,
    entryPoints: [join(root, 'scripts', 'ops.ts')],
    outfile: `${bundle}.${process.pid}.tmp`,
    logLevel: 'error',
  });
  const { renameSync } = await import('node:fs');
  renameSync(`${bundle}.${process.pid}.tmp`, bundle);
  return true;
}

// A failed bundle build (a broken cache) is no reason to fail: tsx runs the sources.
if (await ensureBundle().catch(() => false)) {
  await import(pathToFileURL(bundle).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(join(root, 'scripts', 'register-text-modules.js')).href);
  await import(pathToFileURL(join(root, 'scripts', 'ops.ts')).href);
}
