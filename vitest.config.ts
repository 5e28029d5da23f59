import { defineConfig } from 'vitest/config';
import { textModulesPlugin } from './scripts/text-modules.js';

// Two projects: `unit` (test/unit, test/integration) needs nothing but Node and a loopback sshd;
// `e2e` (test/e2e) runs against local Debian test hosts (test/hosts), which need root: its global
// setup builds or reuses the cached root filesystem and starts the lab's services once per run.
export default defineConfig({
  // .sh files import as their text (core/steps/libraries.ts), as in the bundles.
  plugins: [textModulesPlugin],
  test: {
    pool: 'forks',
    // Debian's bash reads ~/.bashrc for `bash -c` when its stdin is a socket (Node's pipes are) and SHLVL is unset
    // (SSH_SOURCE_BASHRC): run from a process without SHLVL, every bash the tests start would run this machine's
    // ~/.bashrc (a pyenv init there: seconds each, and its noise in what the tests compare).
    env: { SHLVL: process.env.SHLVL ?? '1' },
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts'],
          testTimeout: 60_000,
          // Unit tests first (fast feedback), then the end-to-end tests on their own.
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/e2e/setup.ts'],
          testTimeout: 300_000,
          hookTimeout: 1_200_000,
          // Hosts share two cores: a few files at a time keeps timings meaningful.
          maxWorkers: 3,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
