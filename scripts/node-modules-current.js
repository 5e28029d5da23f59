#!/usr/bin/env node
// Whether node_modules holds what package-lock.json pins, judged by content, for scripts/setup-machine.sh:
// exit 0 when it does (npm ci not needed), 1 when it does not (or no install is there), 2 on a usage error.
// npm ci empties node_modules first, following a symlink: a checkout sharing another's node_modules (a git
// worktree) would wipe that one's while it runs. A file date cannot tell: a checkout writes package-lock.json
// anew (newer than the install) with the same content. npm's hidden lockfile, node_modules/.package-lock.json
// (npm docs, "package-lock.json": "Hidden Lockfiles"), lists what it installed; it lacks only the optional
// packages of other platforms (esbuild's binaries, say). Plain Node.js, no dependency: it runs before they exist.
// Usage: node scripts/node-modules-current.js [PROJECT_DIR]   (default: the current directory)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * Compares a lockfile's packages with npm's hidden lockfile of an install.
 * @param {Record<string, {version?: string, optional?: boolean}>} pinned package-lock.json's `packages`
 * @param {Record<string, {version?: string}>} installed node_modules/.package-lock.json's `packages`
 * @returns {string[]} what differs, one line each (empty when the install is current)
 */
export function installDifferences(pinned, installed) {
  const out = [];
  for (const [path, entry] of Object.entries(pinned)) {
    if (path === '') continue; // the project itself
    const got = installed[path];
    if (!got) {
      if (!entry.optional) out.push(`${path}: not installed`);
    } else if (got.version !== entry.version) {
      out.push(`${path}: ${got.version} installed, ${entry.version} pinned`);
    }
  }
  for (const path of Object.keys(installed)) if (!(path in pinned)) out.push(`${path}: installed, not pinned`);
  return out;
}

function packagesOf(file) {
  return JSON.parse(readFileSync(file, 'utf8')).packages ?? {};
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dir = process.argv[2] ?? '.';
  let pinned, installed;
  try {
    pinned = packagesOf(join(dir, 'package-lock.json'));
  } catch (e) {
    console.error(`cannot read ${join(dir, 'package-lock.json')}: ${e.message}`);
    process.exit(2);
  }
  try {
    installed = packagesOf(join(dir, 'node_modules', '.package-lock.json'));
  } catch {
    process.exit(1); // no install (or an unreadable one): npm ci
  }
  const diff = installDifferences(pinned, installed);
  if (diff.length) {
    console.log(`node_modules differs from package-lock.json (${diff.length}): ${diff.slice(0, 3).join('; ')}`);
    process.exit(1);
  }
}
