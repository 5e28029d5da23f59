// Files imported from TypeScript as their text: the shell libraries in core/steps/sh/ (core/steps/libraries.ts).
// One rule, three runners: esbuild's `text` loader in the bundles (bundle-options.js), these Node module
// hooks under tsx and node (scripts/register-text-modules.js, `--import`), and the same as a vite plugin under
// vitest (vitest.config.ts). Plain JS: loaded before any TypeScript loader.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** File endings imported as text (a default export holding the file's content, UTF-8). */
export const TEXT_EXTENSIONS = ['.sh'];

const isText = (path) => TEXT_EXTENSIONS.some((e) => path.endsWith(e));
const textModule = (path) => `export default ${JSON.stringify(readFileSync(path, 'utf8'))};\n`;

/** Node's `load` module hook (https://nodejs.org/api/module.html#loadurl-context-nextload). */
export async function load(url, context, nextLoad) {
  if (url.startsWith('file:') && isText(fileURLToPath(url))) return { format: 'module', source: textModule(fileURLToPath(url)), shortCircuit: true };
  return nextLoad(url, context);
}

/** The same for vite (vitest). */
export const textModulesPlugin = {
  name: 'ops-text-modules',
  enforce: 'pre',
  load(id) {
    const path = id.split('?')[0];
    return isText(path) ? textModule(path) : undefined;
  },
};
