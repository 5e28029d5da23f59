#!/usr/bin/env node
// Starts the ops CLI fast. The sources are bundled once (esbuild, a fraction of a second; again whenever a
// source under core/ or scripts/ or the lockfile is newer) into node_modules/.cache/ops-pipeline/<checkout>/ops.cjs, and
// that bundle is compiled through V8's code cache (ops.cjs.<command>.v8cache, written after a command's first run): parsing and
// compiling 3 MB of JavaScript on every start costs more than everything else the CLI does before it connects
// (measured: 0.45 s → 0.2 s for a start on a busy 2-core machine, `npm run bench`). A CommonJS bundle because
// Node 20 has a code cache API only for scripts (vm.Script cachedData), not for ES modules.
// The same directory keeps parsed environment files (parsed/, see cacheParsedYaml in core/config/environment.ts).
// Without esbuild (a production install without dev dependencies), it falls back to tsx.
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, statSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Script } from 'node:vm';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// One cache per checkout: node_modules may be shared by several (a symlink, a workspace), and the bundle's
// freshness is judged by this checkout's sources only, so another checkout's bundle must never be found here.
const checkout = createHash('sha256').update(realpathSync(root)).digest('hex').slice(0, 12);
const cache = join(root, 'node_modules', '.cache', 'ops-pipeline', checkout);
const bundle = join(cache, 'ops.cjs');
/** One code cache per command (the functions a run compiled are in it): `ops deploy` loads what deploys use. */
const command = /^[a-z][a-z-]{0,30}$/.test(process.argv[2] ?? '') ? process.argv[2] : 'other';
const codeCache = `${bundle}.${command}.v8cache`;

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === 'dist') continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p));
    // .js too: bundle-options.js and the text-module rules shape the bundle as much as the sources do.
    else if (/\.(ts|sh|js)$/.test(e.name)) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

/** Write a file whole (temporary file + rename): two CLIs starting at once never read half of one. */
function writeWhole(file, data) {
  writeFileSync(`${file}.${process.pid}.tmp`, data);
  renameSync(`${file}.${process.pid}.tmp`, file);
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
  // A cache this user cannot write (node_modules installed by another account, a read-only install): tsx runs the
  // sources, silently, rather than esbuild printing "✘ [ERROR] Failed to write to output file" at every command.
  accessSync(cache, constants.W_OK);
  const { bundleOptions } = await import(pathToFileURL(join(root, 'scripts', 'bundle-options.js')).href);
  await esbuild.build({
    ...bundleOptions,
    // CommonJS: require() and __dirname are there, no banner needed.
    format: 'cjs',
    banner: {},
    entryPoints: [join(root, 'scripts', 'ops.ts')],
    outfile: `${bundle}.${process.pid}.tmp`,
    logLevel: 'error',
  });
  renameSync(`${bundle}.${process.pid}.tmp`, bundle);
  return true;
}

/** The bundle's exports, compiled with the code cache when it matches (V8 rejects a stale one: then it is made again). */
function loadBundle() {
  const source = readFileSync(bundle, 'utf8');
  let cachedData;
  try {
    if (statSync(codeCache).mtimeMs >= statSync(bundle).mtimeMs) cachedData = readFileSync(codeCache);
  } catch {
    /* no cache yet */
  }
  const script = new Script(Module.wrap(source), { filename: bundle, cachedData });
  const module = { exports: {} };
  script.runInThisContext().call(module.exports, module.exports, createRequire(bundle), module, bundle, cache);
  const saveCache = () => {
    // After the run: the functions it compiled are in the cache too.
    if (cachedData && !script.cachedDataRejected) return;
    try {
      writeWhole(codeCache, script.createCachedData());
    } catch {
      /* a read-only install runs without it */
    }
  };
  return { main: module.exports.main, saveCache };
}

// A failed bundle build (a broken cache) is no reason to fail: tsx runs the sources.
if (await ensureBundle().catch(() => false)) {
  const { main, saveCache } = loadBundle();
  process.exitCode = await main(process.argv.slice(2), { cacheDir: cache });
  saveCache();
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(join(root, 'scripts', 'register-text-modules.js')).href);
  const { main } = await import(pathToFileURL(join(root, 'scripts', 'ops.ts')).href);
  process.exitCode = await main(process.argv.slice(2));
}
