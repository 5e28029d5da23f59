// The SQLite databases a build or migration writes in its release (appCommand with `sqlite`), found by real bash on
// real files: a framework's default database in the project (Django's db.sqlite3) is reported, by path in the
// release; one the command left alone, a file named *.db that is no SQLite database, and the dependency sets are not.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { scriptText } from '../../core/remote/wrap.ts';
import { reportLine } from '../../core/remote/types.ts';
import { APP_KEYS, appCommand, sqliteWarning } from '../../core/steps/app.ts';
import { resolveTarget } from '../../core/target.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const root = mkdtempSync(join(tmpdir(), 'ops-sqlite-'));
const release = join(root, 'releases', 'r1');
const config = parseEnvironment({ app: 'shop', domain: 'shop.example.org', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'x', port: 3579 } }, routes: { '/': 'web' } }, 'test');
const env = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }], appUser: 'shop', baseDir: root, url: 'https://shop.example.org' });
/** Python making a SQLite database at argv[1] (what Django's migrate does to db.sqlite3). */
const MAKE_DB = 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("create table t (x)"); c.commit()';

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('appCommand with sqlite: the SQLite databases the command wrote in the release', () => {
  it('reports a database the migration made, by its path in the release; not one it left alone, a *.db that is no database, nor the venv\'s', () => {
    mkdirSync(join(release, 'backend'), { recursive: true });
    mkdirSync(join(release, 'venv', 'lib'), { recursive: true });
    // committed long ago and not touched by the command (a read-only seed database)
    execFileSync('python3', ['-c', MAKE_DB, join(release, 'seed.sqlite3')]);
    execFileSync('touch', ['-d', '2020-01-01', join(release, 'seed.sqlite3')]);
    const command = `python3 -c '${MAKE_DB}' backend/db.sqlite3 && python3 -c '${MAKE_DB}' venv/lib/cache.db && echo text > notes.db`;
    const r = spawnSync('bash', ['-s'], { input: scriptText(appCommand(env, release, 'migrate', command, 60, { sqlite: true })), encoding: 'utf8', cwd: release, timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const made = r.stdout.split('\n').filter((l) => l.startsWith(reportLine(APP_KEYS.sqlite_made, '')));
    expect(made).toEqual([reportLine(APP_KEYS.sqlite_made, 'backend/db.sqlite3')]);
  });

  it('a failing command fails the step, as without the check', () => {
    const r = spawnSync('bash', ['-s'], { input: scriptText(appCommand(env, release, 'migrate', 'exit 3', 60, { sqlite: true })), encoding: 'utf8', cwd: release, timeout: 60_000 });
    expect(r.status).toBe(3);
  });

  it('the warning names the files, what becomes of their data, and a place outside the releases', () => {
    expect(sqliteWarning(env, 'release.migrate', 'r1', [])).toBeUndefined();
    const w = sqliteWarning(env, 'release.migrate', 'r1', ['backend/db.sqlite3'])!;
    expect(w).toContain('release.migrate wrote a SQLite database in release r1 (backend/db.sqlite3)');
    expect(w).toContain('the next release starts without it');
    expect(w).toContain(`sudo install -d -o shop -g shop ${root}/data`);
  });
});
