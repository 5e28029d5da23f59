import { defineConfig } from 'vitest/config';

// Unit tests (test/unit) need nothing but Node. End-to-end tests (test/e2e) run against local Debian
// test hosts (test/hosts): they need root; the global setup builds or reuses the cached root filesystem.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 600_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
