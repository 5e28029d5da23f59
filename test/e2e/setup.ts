// vitest globalSetup for the end-to-end tests: makes the lab ready once per run (cached root filesystems, apt
// proxy, PyPI and npm caches, PostgreSQL, pebble) and hands its coordinates to the test files through provide/inject.
// Teardown: takes down any host this run left behind (a crashed test file), then releases the run's lease;
// the shared services stop only if nobody else (the sandbox, another run) still uses them.
import type { TestProject } from 'vitest/node';
import { acquireLab, downHosts, ensureDatabase, ensureLab, ensurePebble, releaseLab, SUITES } from '../hosts/index.ts';

export interface LabContext {
  /** Hosts made by this run carry this owner (OPS_TESTHOSTS_OWNER), so teardown finds leftovers. */
  owner: string;
  servicesAddress: string;
  aptProxyUrl: string;
  /** The lab's package caches: pip's index URL (devpi) and npm's registry (verdaccio). */
  pypiIndexUrl: string;
  npmRegistryUrl: string;
  identityFile: string;
  database: { host: string; port: number };
  pebble: { directoryUrl: string; apiCaFile: string; rootCaFile: string };
}

declare module 'vitest' {
  export interface ProvidedContext {
    lab: LabContext;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const owner = `vitest-${process.pid}`;
  // Test workers are forked after this runs and inherit it: upHost records it on every host they create.
  process.env.OPS_TESTHOSTS_OWNER = owner;
  const started = Date.now();
  acquireLab(owner);
  // Every suite's root filesystem, built once per machine (in parallel on a fresh one) before the files start, rather
  // than inside the first test that asks for a bullseye or trixie host.
  const lab = await ensureLab({ suites: [...SUITES], log: (line) => console.log(`[lab] ${line}`) });
  const db = await ensureDatabase();
  const pebble = await ensurePebble();
  console.log(`[lab] ready in ${((Date.now() - started) / 1000).toFixed(1)} s (services on ${lab.servicesAddress})`);
  project.provide('lab', {
    owner,
    servicesAddress: lab.servicesAddress,
    aptProxyUrl: lab.aptProxyUrl,
    pypiIndexUrl: lab.pypiIndexUrl,
    npmRegistryUrl: lab.npmRegistryUrl,
    identityFile: lab.identityFile,
    database: { host: db.host, port: db.port },
    pebble: { directoryUrl: pebble.directoryUrl, apiCaFile: pebble.apiCaFile, rootCaFile: pebble.rootCaFile },
  });
  return async () => {
    const left = await downHosts({ owner, purge: true });
    if (left.length) console.log(`[lab] removed hosts left behind by test files: ${left.join(', ')}`);
    const stopped = await releaseLab(owner);
    console.log(`[lab] ${stopped ? 'services stopped' : 'services kept (still in use by another lease)'}`);
  };
}
