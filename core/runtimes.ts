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

/** major.minor of a version string ("3.11.2" -> "3.11"). */
export function minor(version: string): string {
  return version.split('.').slice(0, 2).join('.');
}

export function runtimePaths(env: Environment): RuntimePaths {
  const { python, node } = env.config.runtimes;
  const py = python.strategy === 'pyenv' ? `${PYENV_ROOT}/versions/${python.version}/bin/python3` : `/usr/bin/python${minor(python.version)}`;
  const nodeBin = node.strategy === 'nvm' ? `${NVM_DIR}/versions/node/v${node.version}/bin` : '/usr/bin';
  return { python: py, node: `${nodeBin}/node`, npm: `${nodeBin}/npm` };
}
