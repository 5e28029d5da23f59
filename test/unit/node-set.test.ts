// The node dependency set's step (core/steps/app.ts nodeDependencies) run by bash on a scratch release, with an
// `npm` standing in for npm ci's three outcomes seen on hosts: success (with npm's deprecation warnings), a
// failure (exit 1), and npm's own "success" after files it could not write while unpacking, reported only as
// `npm warn tar TAR_ENTRY_ERROR ENOSPC ...` warnings (npm/cli#3526, seen on a host whose /srv filled up during a
// deploy: the next deploy reused the half-written set and its client could not start).
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { scriptText } from '../../core/remote/wrap.ts';
import { nodeDependencies } from '../../core/steps/app.ts';
import { resolveTarget } from '../../core/target.ts';

const run = promisify(execFile);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

/** Run the node set's step with `npmBody` as npm (sh, run in node_dir); the set's directory and the outcome. */
async function nodeSet(npmBody: string): Promise<{ code: number; stderr: string; setDir: string }> {
  const base = mkdtempSync(join(tmpdir(), 'ops-nodeset-'));
  const release = join(base, 'releases', 'r1');
  mkdirSync(join(release, 'client'), { recursive: true });
  const npm = join(base, 'npm');
  writeFileSync(npm, `#!/bin/sh\n${npmBody}\n`);
  chmodSync(npm, 0o755);
  const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'run', port: 3000 } }, routes: { '/': 'web' }, release: { node_dir: 'client' } }, 'test');
  const t = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: base, url: 'http://x' });
  const step = nodeDependencies({ ...t, runtime: { ...t.runtime, npm } }, release, 'abcd');
  const r = await run('bash', ['-c', scriptText(step)], { encoding: 'utf8' }).then(
    (x) => ({ code: 0, stderr: x.stderr }),
    (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
  );
  return { ...r, setDir: join(t.layout.deps, 'node-abcd') };
}

describe('the node set (npm ci)', () => {
  it('a clean npm ci: the set is complete; its deprecation warnings are not shown', async () => {
    const r = await nodeSet(`mkdir -p node_modules/vite; echo 'npm warn deprecated inflight@1.0.6: leaks memory' >&2`);
    expect(r.code).toBe(0);
    expect(existsSync(join(r.setDir, '.complete'))).toBe(true);
    expect(existsSync(join(r.setDir, 'node_modules', 'vite'))).toBe(true);
    expect(r.stderr).not.toContain('deprecated');
  });

  it("npm's exit 0 after TAR_ENTRY_ERROR warnings (a full disk): the step fails with npm's lines; the set is not complete", async () => {
    const r = await nodeSet(`mkdir -p node_modules/vite
echo "npm warn tar TAR_ENTRY_ERROR ENOSPC: no space left on device, open '$PWD/node_modules/vite/dist/node/cli.js'" >&2
exit 0`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/npm ci could not write every file of node_modules, though it exited 0 \(npm\/cli#3526\):\nnpm warn tar TAR_ENTRY_ERROR ENOSPC: no space left on device, open '.*cli\.js'/);
    expect(existsSync(join(r.setDir, '.complete'))).toBe(false);
  });

  it('npm ci failing: its error is shown, not its deprecation warnings; the set is not complete', async () => {
    const r = await nodeSet(`echo 'npm warn deprecated glob@7.2.3: old' >&2; echo 'npm error code ENOSPC' >&2; echo 'npm error syscall write' >&2; exit 1`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('npm error code ENOSPC\nnpm error syscall write');
    expect(r.stderr).not.toContain('deprecated');
    expect(existsSync(join(r.setDir, '.complete'))).toBe(false);
  });
});
