// ESM bundles of CommonJS dependencies still call require() and read __dirname (ssh2 does): the banner
// every bundle (actions and the CLI) starts with defines them.
export const banner = [
  "import { createRequire as __opsRequire } from 'node:module';",
  "import { fileURLToPath as __opsPath } from 'node:url';",
  "import { dirname as __opsDir } from 'node:path';",
  'const require = __opsRequire(import.meta.url);',
  'const __filename = __opsPath(import.meta.url);',
  'const __dirname = __opsDir(__filename);',
].join(' ');
