// esbuild settings shared by every bundle (the actions' dist/index.js and the CLI's cached bundle).
// Plain JS so the CLI launcher can use it without a TypeScript loader.

// ESM bundles of CommonJS dependencies still call require() and read __dirname (ssh2 does).
const banner = [
  "import { createRequire as __opsRequire } from 'node:module';",
  "import { fileURLToPath as __opsPath } from 'node:url';",
  "import { dirname as __opsDir } from 'node:path';",
  'const require = __opsRequire(import.meta.url);',
  'const __filename = __opsPath(import.meta.url);',
  'const __dirname = __opsDir(__filename);',
].join(' ');

export const bundleOptions = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // esbuild cannot load native addons; ssh2 then uses its pure-JS crypto.
  external: ['*.node'],
  banner: { js: banner },
  // The shell libraries (core/steps/sh/*.sh) are imported as their text (scripts/text-modules.js).
  loader: { '.sh': 'text' },
  logLevel: 'warning',
};
