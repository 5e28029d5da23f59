// A configuration file provision writes whole on a host an admin may have lived on (nginx.conf; the app user's pip.conf,
// uv.toml and .npmrc): replaced only when it is ops's own or its Debian package's as shipped (script.ts putUnlessHostOwn,
// asShipped), run by bash against this machine's real dpkg database and files; the package index files refused otherwise.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { SYSTEM_FUNCTIONS } from '../../core/steps/libraries.ts';
import { asShipped, putUnlessHostOwn } from '../../core/steps/script.ts';
import { packageIndexes } from '../../core/steps/system.ts';
import { parseEnvironment } from '../../core/config/environment.ts';
import { resolveTarget } from '../../core/target.ts';

const run = promisify(execFile);
async function bash(script: string): Promise<{ stdout: string; stderr: string; code: number }> {
  return run('bash', ['-c', `set -euo pipefail\n${script}`]).then(
    (r) => ({ stdout: r.stdout, stderr: r.stderr, code: 0 }),
    (e: { stdout: string; stderr: string; code: number }) => ({ stdout: e.stdout, stderr: e.stderr, code: e.code }),
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
  const older = '# Managed by ops-pipeline: local changes are overwritten.\nops 1\n';
  const put = (path: string) => bash(`${SYSTEM_FUNCTIONS}\n${putUnlessHostOwn(path, content, 'base-files', 'what it means.', [createHash('md5').update(older).digest('hex')])}\necho "changed=$CHANGED"`);

  it("writes it when absent, and over ops's own as ops wrote it (this version, or an older one of `previous`)", async () => {
    const f = join(dir, 'absent.conf');
    expect((await put(f)).stdout).toBe('changed=1\n');
    expect(readFileSync(f, 'utf8')).toBe(content);
    expect((await put(f)).stdout, 'the same again: nothing written').toBe('changed=0\n');
    writeFileSync(f, older);
    expect((await put(f)).stdout).toBe('changed=1\n');
    expect(readFileSync(f, 'utf8')).toBe(content);
  });

  it("keeps ops's own that someone changed since (its header kept), saying which directives were added or changed and removed, never their values", async () => {
    const f = join(dir, 'changed.conf');
    const changed = '# Managed by ops-pipeline: local changes are overwritten.\nops 2\n    client_max_body_size 50m;\n# a comment\n';
    writeFileSync(f, changed);
    const r = await put(f);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`kept this host's own ${f} as it is: ops wrote it, but someone changed it here since (added or changed: client_max_body_size; removed: none), and ops never overwrites a change; what it means.\nchanged=0\n`);
    expect(readFileSync(f, 'utf8')).toBe(changed);
    writeFileSync(f, '# Managed by ops-pipeline: local changes are overwritten.\nops 3\n');
    expect((await put(f)).stdout).toContain('(added or changed: ops; removed: ops)');
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

describe("packageIndexes: the app user's pip.conf, uv.toml and .npmrc, written only over provision's own", () => {
  const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
  const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { server: { command: 'x', port: 3579 } }, routes: { '/': 'server' } }, 'test');
  const env = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: '/srv/shop', url: 'http://x' });
  const home = join(dir, 'home');
  const mark = '# Written by ops-pipeline provision (packages.npm_registry): do not edit on the host.\n';
  /** The step's script with the app user's home here; `install` says what it would write (no user shop here, nor root). */
  const step = () => {
    const up = (n: string) => { const f = join(dir, n); writeFileSync(f, 'new\n'); return f; };
    const script = packageIndexes(env, { pipConf: up('up.pip'), uvToml: up('up.uv'), npmrc: up('up.npmrc') }).script.replaceAll('/home/shop', home);
    return bash(`ops_report() { echo "report $*"; }\ninstall() { [ "$1" = -d ] || echo "writes \${*: -1}"; }\n${script}`);
  };

  it("refuses a file of the host's own (a token of the admin's), naming each with its setting, before writing any", async () => {
    mkdirSync(join(home, '.config/pip'), { recursive: true });
    const own = '//npm.pkg.github.com/:_authToken=admin-token\n';
    writeFileSync(join(home, '.npmrc'), own);
    writeFileSync(join(home, '.config/pip/pip.conf'), '[global]\ntimeout = 60\n');
    const r = await step();
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`the app user's ${home}/.npmrc is this host's own (its first line is not "# Written by ops-pipeline provision ...": someone wrote it here), and provision would replace it with the one packages.npm_registry makes, losing what it holds (a token, a setting): its registry and token belong in packages.npm_registry and packages.npm_token (a secret), a scope's registry in the commit's .npmrc. Put what you need there, then move the file away (mv ${home}/.npmrc ${home}/.npmrc.before-ops) and run provision again\n`);
    expect(r.stderr).toContain(`the app user's ${home}/.config/pip/pip.conf is this host's own`);
    expect(r.stderr).not.toContain('uv.toml');
    expect(r.stderr).toMatch(/nothing of the package indexes was changed\n$/);
    expect(readFileSync(join(home, '.npmrc'), 'utf8')).toBe(own);
  });

  it("writes over provision's own and where there is none; a symlink is the host's own", async () => {
    rmSync(home, { recursive: true, force: true });
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, '.npmrc'), `${mark}registry=http://old/\n`);
    const r = await step();
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`writes ${home}/.config/pip/pip.conf\nwrites ${home}/.config/uv/uv.toml\nwrites ${home}/.npmrc\nreport item package indexes changed\n`);
    rmSync(join(home, '.npmrc'));
    symlinkSync(join(dir, 'elsewhere'), join(home, '.npmrc'));
    expect((await step()).stderr).toContain(`the app user's ${home}/.npmrc is this host's own`);
  });
});
