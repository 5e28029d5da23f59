// esbuild settings shared by every bundle (the actions' dist/index.js and the CLI's cached bundle).
// Plain JS so the CLI launcher can use it without a TypeScript loader.

import { fileURLToPath } from 'node:url';

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
  // Paths (the alias below, the file names in the bundle's comments) from the project's root, whatever the caller's
  // working directory: the ops CLI builds its bundle from wherever it is run.
  absWorkingDir: fileURLToPath(new URL('..', import.meta.url)),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // esbuild cannot load native addons; ssh2 then uses its pure-JS crypto.
  external: ['*.node'],
  banner: { js: banner },
  // The shell libraries (core/steps/sh/*.sh) are imported as their text (scripts/text-modules.js).
  loader: { '.sh': 'text' },
  // jsonc-parser's "main" is a UMD build whose require() calls sit in a factory esbuild cannot follow (the bundle
  // failed at load: "Cannot find module './impl/format'"); its ES module build bundles whole.
  alias: { 'jsonc-parser': 'jsonc-parser/lib/esm/main.js' },
  logLevel: 'warning',
};
