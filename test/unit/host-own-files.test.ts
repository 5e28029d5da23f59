// A configuration file provision writes whole on a host an admin may have lived on (nginx.conf; the app user's pip.conf,
// uv.toml and .npmrc): replaced only when it is ops's own or its Debian package's as shipped (script.ts putUnlessHostOwn,
// asShipped), run by bash against this machine's real dpkg database and files; the package index files refused otherwise.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { SYSTEM_FUNCTIONS } from '../../core/steps/libraries.ts';
import { asShipped, HOST_OWN_BACKUPS, HOST_OWN_BACKUPS_KEPT, notAsWritten, putUnlessHostOwn, writtenRecord } from '../../core/steps/script.ts';
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
  const put = (path: string) => bash(`${SYSTEM_FUNCTIONS}\n${putUnlessHostOwn(path, content, { kind: 'kept', package: 'base-files', kept: 'what it means.', previous: [createHash('md5').update(older).digest('hex')] })}\necho "changed=$CHANGED"`);

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

  it("recognizes ops's own under the header an older ops wrote (previousFirstLines): as written, replaced; changed since, kept as ops's changed", async () => {
    const oldHeader = '# Managed by ops-pipeline: local changes are overwritten.';
    const now = '# Managed by ops-pipeline: a change made here is kept.\nops 2\n';
    const before = `${oldHeader}\nops 1\n`;
    const putNow = (path: string) => bash(`${SYSTEM_FUNCTIONS}\n${putUnlessHostOwn(path, now, { kind: 'kept', package: 'base-files', kept: 'what it means.', previous: [createHash('md5').update(before).digest('hex')], previousFirstLines: [oldHeader] })}\necho "changed=$CHANGED"`);
    const f = join(dir, 'old-header.conf');
    writeFileSync(f, before);
    expect((await putNow(f)).stdout).toBe('changed=1\n');
    expect(readFileSync(f, 'utf8')).toBe(now);
    writeFileSync(f, `${before}    client_max_body_size 50m;\n`);
    // Named against the new one: its own line changed too (ops 1 to ops 2); the header is no directive.
    expect((await putNow(f)).stdout).toContain(`kept this host's own ${f} as it is: ops wrote it, but someone changed it here since (added or changed: client_max_body_size ops; removed: ops)`);
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

describe("putUnlessHostOwn, replaced: a file ops renders from the settings on every run (the app's nginx site), changed on the host", () => {
  const v1 = '# Managed by ops-pipeline: local changes are overwritten.\nserver { client_max_body_size 10m; }\n';
  const v2 = '# Managed by ops-pipeline: local changes are overwritten.\nserver { client_max_body_size 20m; }\n';
  const backups = join(dir, 'backups');
  const put = (path: string, content: string) =>
    bash(`${SYSTEM_FUNCTIONS}\n${putUnlessHostOwn(path, content, { kind: 'replaced', lasts: 'how to make it last.' }).replaceAll(HOST_OWN_BACKUPS, backups)}\necho "changed=$CHANGED"`);
  const backupsOf = (f: string) => (existsSync(join(backups, f, '..')) ? readdirSync(join(backups, f, '..')).filter((n) => n.startsWith(`${f.split('/').pop()}.`)) : []);

  it("writes ops's own over ops's own as it last wrote it (a setting changed) without a word, recording what it wrote", async () => {
    const f = join(dir, 'site-a');
    expect((await put(f, v1)).stdout).toBe('changed=1\n');
    expect(readFileSync(writtenRecord(f), 'utf8')).toBe(`${createHash('md5').update(v1).digest('hex')}\n`);
    expect((await put(f, v1)).stdout).toBe('changed=0\n');
    expect((await put(f, v2)).stdout).toBe('changed=1\n');
    expect(readFileSync(f, 'utf8')).toBe(v2);
    expect(backupsOf(f)).toEqual([]);
  });

  it('a file changed here (a location added) is moved to a backup and replaced, said naming the file, the backup and how to make the change last', async () => {
    const f = join(dir, 'site-b');
    await put(f, v1);
    const edited = v1.replace('}\n', '  location /admin/ { deny all; }\n}\n');
    writeFileSync(f, edited);
    const r = await put(f, v2);
    expect(r.code).toBe(0);
    const [b] = backupsOf(f);
    expect(b).toMatch(/^site-b\.\d{8}T\d{6}Z$/);
    const backup = join(backups, f, '..', b!);
    expect(r.stdout).toBe(`replaced ${f}: someone changed it here since ops wrote it; what it held is kept in ${backup} (diff ${backup} ${f} shows what differs). ops writes this file from the environment's settings on every provision and deploy, so a change made on the host does not last: how to make it last.\nchanged=1\n`);
    expect(readFileSync(backup, 'utf8')).toBe(edited);
    expect(readFileSync(f, 'utf8')).toBe(v2);
    expect(statSync(join(backups)).mode & 0o777).toBe(0o700);
    expect((await put(f, v2)).stdout, 'then nothing to say').toBe('changed=0\n');
  });

  it(`keeps the newest ${HOST_OWN_BACKUPS_KEPT} backups of a file changed here run after run, removing older ones; another file's backups are not touched`, async () => {
    const f = join(dir, 'site-many');
    await put(f, v1);
    const folder = join(backups, dir);
    mkdirSync(folder, { recursive: true });
    // Backups of earlier runs (2020, one a day), and of another file whose name starts with this one's.
    const old = Array.from({ length: HOST_OWN_BACKUPS_KEPT + 2 }, (_, i) => `site-many.202001${String(i + 10).padStart(2, '0')}T000000Z`);
    for (const b of old) writeFileSync(join(folder, b), 'an older change\n');
    writeFileSync(join(folder, 'site-many.conf.20200101T000000Z'), 'another file\n');
    writeFileSync(f, v1.replace('}\n', '  location /x/ {}\n}\n'));
    expect((await put(f, v2)).stdout).toContain(`replaced ${f}: someone changed it here since ops wrote it`);
    const now = backupsOf(f).filter((n) => !n.startsWith('site-many.conf.')).sort();
    expect(now).toHaveLength(HOST_OWN_BACKUPS_KEPT);
    expect(now.slice(0, -1), 'the oldest three gone').toEqual(old.slice(3));
    expect(now.at(-1)).not.toMatch(/^site-many\.2020/);
    expect(existsSync(join(folder, 'site-many.conf.20200101T000000Z'))).toBe(true);
  });

  it('two changes backed up in the same second (provision, then a deploy at once): two backups, the second never over the first; both count among the newest kept', async () => {
    const f = join(dir, 'site-same-second');
    // A clock that says the same second to every call: the runs as fast as they can be.
    const sameSecond = (content: string) =>
      bash(`date() { echo 20261206T215000Z; }\n${SYSTEM_FUNCTIONS}\n${putUnlessHostOwn(f, content, { kind: 'replaced', lasts: 'how.' }).replaceAll(HOST_OWN_BACKUPS, backups)}`);
    await put(f, v1);
    writeFileSync(f, 'first change\n');
    await sameSecond(v2);
    writeFileSync(f, 'second change\n');
    const r = await sameSecond(v2);
    expect(r.stdout).toContain(`kept in ${join(backups, f)}.20261206T215000Z.2 `);
    expect(backupsOf(f).sort()).toEqual(['site-same-second.20261206T215000Z', 'site-same-second.20261206T215000Z.2']);
    expect(backupsOf(f).sort().map((b) => readFileSync(join(backups, f, '..', b), 'utf8'))).toEqual(['first change\n', 'second change\n']);
  });

  it(`past .9 in one second (.10, .11...) the newest ${HOST_OWN_BACKUPS_KEPT} are kept by number, not by the names' text (where .10 sorts before .2)`, async () => {
    const f = join(dir, 'site-many-same-second');
    await put(f, v1);
    const changes = HOST_OWN_BACKUPS_KEPT + 3;
    for (let i = 1; i <= changes; i++) {
      writeFileSync(f, `change ${i}\n`);
      await bash(`date() { echo 20261206T215000Z; }\n${SYSTEM_FUNCTIONS}\n${putUnlessHostOwn(f, v2, { kind: 'replaced', lasts: 'how.' }).replaceAll(HOST_OWN_BACKUPS, backups)}`);
    }
    const held = backupsOf(f).map((b) => readFileSync(join(backups, f, '..', b), 'utf8').trim());
    expect(held.sort((a, b) => Number(a.split(' ')[1]) - Number(b.split(' ')[1]))).toEqual(Array.from({ length: HOST_OWN_BACKUPS_KEPT }, (_, i) => `change ${changes - HOST_OWN_BACKUPS_KEPT + 1 + i}`));
  });

  it('a clock set back (an NTP step, a VM restored from a snapshot): the new backup still counts as the newest, named after the newest one there with the next number, never removed at once', async () => {
    const f = join(dir, 'site-clock-back');
    await put(f, v1);
    const folder = join(backups, dir);
    mkdirSync(folder, { recursive: true });
    const later = Array.from({ length: HOST_OWN_BACKUPS_KEPT }, (_, i) => `site-clock-back.203001${String(i + 10).padStart(2, '0')}T000000Z`);
    for (const b of later) writeFileSync(join(folder, b), 'made while the clock was ahead\n');
    writeFileSync(f, 'changed after the clock went back\n');
    const r = await bash(`date() { echo 20261206T215000Z; }\n${SYSTEM_FUNCTIONS}\n${putUnlessHostOwn(f, v2, { kind: 'replaced', lasts: 'how.' }).replaceAll(HOST_OWN_BACKUPS, backups)}`);
    expect(r.stdout).toContain(`kept in ${join(folder, later.at(-1)!)}.2 `);
    expect(readFileSync(join(folder, `${later.at(-1)!}.2`), 'utf8')).toBe('changed after the clock went back\n');
    expect(backupsOf(f).sort()).toEqual([...later.slice(1), `${later.at(-1)!}.2`].sort());
  });

  it("one ops has no record of (an older ops's, or someone's) that differs is backed up too, saying ops cannot tell; one equal to ops's is only recorded", async () => {
    const own = join(dir, 'site-own');
    writeFileSync(own, 'server { listen 8080; }\n');
    expect((await put(own, v2)).stdout).toContain(`replaced ${own}: it is not the one ops writes, and ops has no record of writing it (written by someone here, or by an older ops); what it held is kept in `);
    const f = join(dir, 'site-c');
    writeFileSync(f, v1);
    const r = await put(f, v2);
    expect(r.stdout).toContain(`replaced ${f}: written by an older ops (its first line is ops's header), which kept no record of what it wrote: a change made here since cannot be told from it; what it held is kept in `);
    // Put back after a failure (a failed start's previous file), the version said is no new change.
    writeFileSync(f, v1);
    expect((await put(f, v2)).stdout).toBe('changed=1\n');
    const g = join(dir, 'site-d');
    writeFileSync(g, v2);
    expect((await put(g, v2)).stdout).toBe('changed=0\n');
    expect(existsSync(writtenRecord(g))).toBe(true);
  });

  it("a slot's supervisor file, the nginx site and the app user's .npmrc as ops f60824ff wrote them (no record beside them): said to be an older ops's, backed up, replaced, recorded; the next run says nothing", async () => {
    // Captured from a real host that ops f60824ff (2026-12-01) deployed: test/fixtures/upgrade-f60824ff/README.md.
    for (const name of ['supervisor-sample-green.conf', 'nginx-site', 'npmrc']) {
      const f = join(dir, `older-${name}`);
      writeFileSync(f, readFileSync(new URL(`../fixtures/upgrade-f60824ff/${name}`, import.meta.url)));
      const r = await put(f, v2);
      expect(r.stdout, name).toContain(`replaced ${f}: written by an older ops (its first line is ops's header), which kept no record of what it wrote: a change made here since cannot be told from it; what it held is kept in `);
      expect(readFileSync(f, 'utf8')).toBe(v2);
      expect((await put(f, v2)).stdout, name).toBe('changed=0\n');
    }
  });

  it("a content made on the host (a slot's supervisor file: { b64Word }) is treated the same; a version ops wrote before, put back after a failure, is ops's own", async () => {
    const f = join(dir, 'slot.conf');
    const putWord = (content: string) =>
      bash(`${SYSTEM_FUNCTIONS}\nconf_b64=${Buffer.from(content).toString('base64')}\n${putUnlessHostOwn(f, { b64Word: '"$conf_b64"' }, { kind: 'replaced', lasts: 'how.', when: 'start' }).replaceAll(HOST_OWN_BACKUPS, backups)}\necho "changed=$CHANGED"`);
    expect((await putWord('[program:a]\ncommand=a 1\n')).stdout).toBe('changed=1\n');
    expect((await putWord('[program:a]\ncommand=a 2\n')).stdout).toBe('changed=1\n');
    writeFileSync(f, '[program:a]\ncommand=a 1\n');
    expect((await putWord('[program:a]\ncommand=a 3\n')).stdout, 'the previous one put back: no word').toBe('changed=1\n');
    writeFileSync(f, '[program:a]\ncommand=a 3\nenvironment=DEBUG="1"\n');
    const r = await putWord('[program:a]\ncommand=a 3\n');
    expect(r.stdout).toContain(`replaced ${f}: someone changed it here since ops wrote it; what it held is kept in `);
    expect(r.stdout).toContain("ops writes this file from the environment's settings on every start, so a change made on the host does not last: how.");
    expect(readFileSync(f, 'utf8')).toBe('[program:a]\ncommand=a 3\n');
    expect(readFileSync(writtenRecord(f), 'utf8').split('\n').filter(Boolean).length, 'the versions written').toBe(3);
  });

  it("notAsWritten, recorded (status's test): true only for a file changed since ops recorded writing it, a symlink in its place", async () => {
    const f = join(dir, 'site-status');
    const changed = async () => holds(notAsWritten(f, true));
    expect(await changed(), 'nothing there').toBe('no');
    writeFileSync(f, v1);
    expect(await changed(), 'no record: cannot tell').toBe('no');
    await put(f, v1);
    expect(await changed()).toBe('no');
    writeFileSync(f, v2);
    expect(await changed()).toBe('yes');
    rmSync(f);
    symlinkSync(join(dir, 'elsewhere-status'), f);
    expect(await changed()).toBe('yes');
  });

  it("a symlink put in its place (into another directory, Debian's sites-available way) is kept as the link in the backup; a mode changed here is set back, said", async () => {
    const f = join(dir, 'site-e');
    await put(f, v1);
    const target = join(dir, 'elsewhere-site');
    writeFileSync(target, v1);
    rmSync(f);
    symlinkSync(target, f);
    const r = await put(f, v1);
    expect(r.stdout).toContain(`replaced ${f}: someone changed it here since ops wrote it; what it held is kept in `);
    const [b] = backupsOf(f);
    expect(readlinkSync(join(backups, f, '..', b!))).toBe(target);
    expect(lstatSync(f).isSymbolicLink()).toBe(false);
    expect(readFileSync(target, 'utf8'), "the link's target is left as it is").toBe(v1);
    chmodSync(f, 0o600);
    expect((await put(f, v1)).stdout).toBe(`set ${f} back to mode 0644, owner root:root (ops's), from 600 root:root here: a mode or owner of your own does not last on a file ops writes\nchanged=1\n`);
  });
});

describe("packageIndexes: the app user's pip.conf, uv.toml and .npmrc, written only over provision's own", () => {
  const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
  const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { server: { command: 'x', port: 3579 } }, routes: { '/': 'server' } }, 'test');
  const env = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: '/srv/shop', url: 'http://x' });
  const home = join(dir, 'home');
  const mark = '# Written by ops-pipeline provision (packages.npm_registry): do not edit on the host.\n';
  const backups = join(dir, 'index-backups');
  /** This machine's user and group: the files' owner here (`chown` does nothing: no user shop here). */
  const me = execFileSync('id', ['-un']).toString().trim() + ':' + execFileSync('id', ['-gn']).toString().trim();
  /** The step's script with the app user's home here; `install -d` makes the directory; `uploads`: which files the environment sets. */
  const step = (uploads: ('pipConf' | 'uvToml' | 'npmrc')[] = ['pipConf', 'uvToml', 'npmrc']) => {
    const up = (n: string) => { const f = join(dir, n); writeFileSync(f, `${mark}new\n`); return f; };
    const files = { pipConf: up('up.pip'), uvToml: up('up.uv'), npmrc: up('up.npmrc') };
    const script = packageIndexes(env, Object.fromEntries(uploads.map((k) => [k, files[k]]))).script.replaceAll('/home/shop', home).replaceAll(HOST_OWN_BACKUPS, backups).replaceAll('shop:shop', me);
    return bash(`ops_report() { echo "report $*"; }\ninstall() { [ "$1" = -d ] && mkdir -p "\${*: -1}"; }\nchown() { :; }\n${script}`);
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

  it("writes where there is none and over provision's own; provision's own with a token of the admin's added is backed up and replaced, said; a symlink is the host's own", async () => {
    rmSync(home, { recursive: true, force: true });
    mkdirSync(home, { recursive: true });
    expect((await step()).stdout).toBe('report item package indexes changed\n');
    expect(readFileSync(join(home, '.npmrc'), 'utf8')).toBe(`${mark}new\n`);
    expect((await step()).stdout).toBe('report item package indexes ok\n');
    const added = `${mark}new\n//npm.pkg.github.com/:_authToken=admin-token\n`;
    writeFileSync(join(home, '.npmrc'), added);
    const r = await step();
    expect(r.code).toBe(0);
    const said = r.stdout.match(new RegExp(`^replaced ${home}/.npmrc: someone changed it here since ops wrote it; what it held is kept in (\\S+) \\(diff `));
    expect(said, r.stdout).not.toBeNull();
    expect(r.stdout).toContain("ops writes this file from the environment's settings on every provision, so a change made on the host does not last: its registry and token belong in packages.npm_registry and packages.npm_token (a secret), a scope's registry in the commit's .npmrc; then provision\n");
    expect(r.stdout).not.toContain('admin-token');
    expect(readFileSync(said![1]!, 'utf8')).toBe(added);
    expect(readFileSync(join(home, '.npmrc'), 'utf8')).toBe(`${mark}new\n`);
    // The environment no longer sets it: removed; changed here, backed up first, said.
    writeFileSync(join(home, '.npmrc'), added);
    const gone = await step(['pipConf', 'uvToml']);
    expect(gone.stdout).toMatch(new RegExp(`^removed ${home}/.npmrc \\(the environment no longer sets it\\): someone changed it here since ops wrote it; what it held is kept in \\S+\\. ops writes`));
    expect(existsSync(join(home, '.npmrc'))).toBe(false);
    symlinkSync(join(dir, 'elsewhere'), join(home, '.npmrc'));
    expect((await step()).stderr).toContain(`the app user's ${home}/.npmrc is this host's own`);
  });
});
