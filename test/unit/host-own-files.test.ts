// A configuration file provision writes whole (nginx.conf) on a host an admin may have lived on: replaced only when it
// is ops's own or its Debian package's as shipped (script.ts putUnlessHostOwn, asShipped), run by bash against this
// machine's real dpkg database and files.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { SYSTEM_FUNCTIONS } from '../../core/steps/libraries.ts';
import { asShipped, putUnlessHostOwn } from '../../core/steps/script.ts';

const run = promisify(execFile);
async function bash(script: string): Promise<{ stdout: string; code: number }> {
  return run('bash', ['-c', `set -euo pipefail\n${script}`]).then(
    (r) => ({ stdout: r.stdout, code: 0 }),
    (e: { stdout: string; code: number }) => ({ stdout: e.stdout, code: e.code }),
  );
}
const holds = async (test: string) => (await bash(`if ${test}; then echo yes; else echo no; fi`)).stdout.trim();

const dir = mkdtempSync(join(tmpdir(), 'ops-host-own-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A configuration file of base-files on this machine as the package shipped it (its md5 the one dpkg recorded), if any. */
async function shippedConffile(): Promise<string | undefined> {
  const out = (await bash(`dpkg-query -W -f='\${Conffiles}\\n' base-files 2>/dev/null | while read -r f sum _; do [ -f "$f" ] && [ "$(md5sum < "$f" | cut -d' ' -f1)" = "$sum" ] && { echo "$f"; break; }; done || true`)).stdout.trim();
  return out || undefined;
}

describe('asShipped: a Debian configuration file as its package shipped it (dpkg\'s md5)', () => {
  it('holds for the file at its path, not for the same content elsewhere, another package\'s name, or a file absent', async () => {
    const f = await shippedConffile();
    expect(f, 'base-files has a configuration file untouched on this machine').toBeDefined();
    expect(await holds(asShipped('base-files', f!))).toBe('yes');
    const copy = join(dir, 'copy');
    writeFileSync(copy, readFileSync(f!));
    expect(await holds(asShipped('base-files', copy))).toBe('no');
    expect(await holds(asShipped('no-such-package-ops', f!))).toBe('no');
    expect(await holds(asShipped('base-files', join(dir, 'absent')))).toBe('no');
  });
});

describe("putUnlessHostOwn: provision's way to write a file an admin may have made the host's own", () => {
  const content = '# Managed by ops-pipeline: local changes are overwritten.\nops 2\n';
  const put = (path: string) => bash(`${SYSTEM_FUNCTIONS}\n${putUnlessHostOwn(path, content, 'base-files', 'what it means.')}\necho "changed=$CHANGED"`);

  it("writes it when absent, and over ops's own (its first line), whatever else ops's older version held", async () => {
    const f = join(dir, 'absent.conf');
    expect((await put(f)).stdout).toBe('changed=1\n');
    expect(readFileSync(f, 'utf8')).toBe(content);
    expect((await put(f)).stdout, 'the same again: nothing written').toBe('changed=0\n');
    writeFileSync(f, '# Managed by ops-pipeline: local changes are overwritten.\nops 1\n');
    expect((await put(f)).stdout).toBe('changed=1\n');
    expect(readFileSync(f, 'utf8')).toBe(content);
  });

  it("keeps the host's own as it is, saying which file, why and what it means; the step goes on", async () => {
    const f = join(dir, 'own.conf');
    writeFileSync(f, 'user www-data;\nhttp { client_max_body_size 50m; }\n');
    const r = await put(f);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `kept this host's own ${f} as it is: it is neither the one ops writes (its first line: # Managed by ops-pipeline: local changes are overwritten.) nor base-files's as shipped (its md5 differs from the one dpkg recorded: someone changed it here), and ops never overwrites it; what it means.\nchanged=0\n`,
    );
    expect(readFileSync(f, 'utf8')).toBe('user www-data;\nhttp { client_max_body_size 50m; }\n');
  });
});
