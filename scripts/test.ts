// The test command (npm test): runs vitest and ends with the closing line CI reads, `N passed, N failed`.
// Extra arguments go to vitest (e.g. `npm test -- test/unit`).
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Per run, outside the clone: two runs at once must not read each other's counts.
const report = join(tmpdir(), `ops-vitest-${process.pid}.json`);
rmSync(report, { force: true });
const run = spawnSync(
  'npx',
  ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)],
  { stdio: 'inherit', env: { ...process.env, CI: process.env.CI ?? 'true' } },
);
let passed = 0;
let failed = 0;
try {
  const r = JSON.parse(readFileSync(report, 'utf8')) as { numPassedTests: number; numFailedTests: number; numFailedTestSuites: number };
  passed = r.numPassedTests;
  // A test file that fails to load (syntax error, failing beforeAll) counts as a failure too.
  failed = r.numFailedTests + (r.numFailedTests === 0 && r.numFailedTestSuites > 0 ? r.numFailedTestSuites : 0);
} catch {
  failed = 1; // vitest crashed before writing its report
}
// A run that failed without a failed test (an unhandled error, a broken config) is still a failure.
if (run.status !== 0 && failed === 0) failed = 1;
rmSync(report, { force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(run.status === 0 && failed === 0 ? 0 : 1);
