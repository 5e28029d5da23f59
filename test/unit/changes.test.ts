// What a deploy changes (core/changes.ts), on the sample app's real repository and on small repositories made
// here: commits added or taken away (a rollback in disguise), "N more" past the limit, migrations found by
// default (migrations/ dirs, alembic versions/ wherever alembic.ini points) or where configured, dependency sets.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { COMMIT_LIMIT, describeChange, describeChanges, formatChanges, migrateCommandFiles, migrationsUnchanged } from '../../core/changes.ts';
import { dependencyInputs } from '../../core/dependency-inputs.ts';
import { makeAppRepo } from '../fixtures/app/make-repo.ts';
import { git, releaseEnv } from './commits.helpers.ts';

const env = releaseEnv;

/** A repository with one commit per entry: files written, then committed with the message. */
function repoWith(commits: { message: string; files: Record<string, string> }[]): { dir: string; shas: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'ops-changes-'));
  git(dir, 'init', '-q', '-b', 'main');
  const shas: string[] = [];
  for (const c of commits) {
    for (const [f, text] of Object.entries(c.files)) {
      mkdirSync(dirname(join(dir, f)), { recursive: true });
      writeFileSync(join(dir, f), text);
    }
    git(dir, 'add', '-A');
    git(dir, 'commit', '-q', '--allow-empty', '-m', c.message);
    shas.push(git(dir, 'rev-parse', 'HEAD'));
  }
  return { dir, shas };
}

let app: string;
const sha = (ref: string) => git(app, 'rev-parse', `${ref}^{commit}`);

beforeAll(async () => {
  app = join(mkdtempSync(join(tmpdir(), 'ops-changes-app-')), 'app');
  await makeAppRepo(app);
}, 60_000);

describe('the change a deploy makes', () => {
  it('ahead: the commits, the migration the target adds, dependency sets unchanged', async () => {
    const c = await describeChange(app, env(), sha('v1'), sha('v2'));
    expect(c.relation).toBe('ahead');
    expect(c.added).toBe(1);
    expect(c.commits[0]).toEqual({ sha: sha('v2'), author: 'Sample App', subject: expect.stringContaining('datasets') });
    expect(c.migrations.length).toBeGreaterThan(0);
    expect(c.migrations.every((m) => /migrations|versions/.test(m))).toBe(true);
    expect(c.dependencies.map((d) => d.changed)).toEqual([false, false]);
  });

  it('dependency sets that change are named; a release version bump in the lockfile is no change', async () => {
    const lock = (version: string, dep: string) => JSON.stringify({ name: 'client', version, lockfileVersion: 3, packages: { '': { version }, 'node_modules/x': { version: dep } } });
    const r = repoWith([
      { message: 'app', files: { 'requirements.txt': 'fastapi==0.115.0\n', 'client/package-lock.json': lock('1.0.0', '1.0.0') } },
      { message: 'bump x', files: { 'client/package-lock.json': lock('1.0.0', '1.1.0') } },
      { message: 'release 1.1.0', files: { 'client/package-lock.json': lock('1.1.0', '1.1.0') } },
      { message: 'bump fastapi', files: { 'requirements.txt': 'fastapi==0.116.0\n' } },
    ]);
    const deps = async (i: number) => (await describeChange(r.dir, env(), r.shas[i - 1]!, r.shas[i]!)).dependencies.map((d) => `${d.name} ${d.files} ${d.changed}`);
    expect(await deps(1)).toEqual(['python requirements.txt false', 'node client/package-lock.json true']);
    expect(await deps(2)).toEqual(['python requirements.txt false', 'node client/package-lock.json false']);
    expect(await deps(3)).toEqual(['python requirements.txt true', 'node client/package-lock.json false']);
    const c = await describeChange(r.dir, env(), r.shas[0]!, r.shas[3]!);
    expect(formatChanges([{ hosts: ['web1'], live: { host: 'web1', sha: r.shas[0]!, release: 'r1' }, change: c }], r.shas[3]!).join('\n')).toContain(
      'dependencies: python CHANGED (requirements.txt): a new set is installed; node CHANGED (client/package-lock.json): a new set is installed',
    );
  });

  it('a set is said reused only where the host has it: settings in its name changed since (python_installer, the runtime) make a new one, said so; a redeploy of the live commit too', async () => {
    const lock = JSON.stringify({ name: 'client', version: '1.0.0', lockfileVersion: 3, packages: { '': { version: '1.0.0' }, 'node_modules/x': { version: '1.0.0' } } });
    const r = repoWith([
      { message: 'app', files: { 'requirements.txt': 'flask==3.0.0\n', 'client/package-lock.json': lock } },
      { message: 'code', files: { 'app.py': 'print(1)\n' } },
    ]);
    const pip = env({ python_installer: 'pip' });
    const [made, now] = [await dependencyInputs(r.dir, r.shas[1]!, env()), await dependencyInputs(r.dir, r.shas[1]!, pip)];
    // web1's sets were made by uv (the live release's); web2 was deployed with pip already.
    const uvSets = [`venv-${made.python.hash}`, `node-${made.node.hash}`];
    const live = { host: 'web1', sha: r.shas[0]!, release: 'r1', depsHas: uvSets };
    const groups = await describeChanges(r.dir, pip, [live, { ...live, host: 'web2', depsHas: [`venv-${now.python.hash}`, `node-${now.node.hash}`] }, { ...live, host: 'web3', sha: r.shas[1]!, changed: true }], r.shas[1]!);
    expect(groups.map((g) => g.hosts)).toEqual([['web1'], ['web2'], ['web3']]);
    const text = formatChanges(groups, r.shas[1]!).join('\n');
    expect(text).toContain('dependencies: python NEW SET: its files are unchanged, but the host has no set for these settings (the runtime\'s version or release.python_installer changed since the live release\'s was made): a new set is installed; node unchanged (reused)');
    expect(text).toContain('dependencies: python unchanged (reused); node unchanged (reused)');
    // The live commit deployed again (its settings changed): what it installs is said too.
    expect(text).toMatch(/web3: live [0-9a-f]{12} \(r1\) → target [0-9a-f]{12}: live, with another \.env or other settings than this deploy's: deployed again \(a new release of the same commit\)\n {2}dependencies: python NEW SET: /);
    // Not read (ops diff of an older host, say): said from the commits alone, as before.
    expect(formatChanges(await describeChanges(r.dir, pip, [{ host: 'web1', sha: r.shas[0]!, release: 'r1' }], r.shas[1]!), r.shas[1]!).join('\n')).toContain('dependencies: python unchanged (reused); node unchanged (reused)');
  });

  it('behind: a rollback in disguise, said loudly, with the migrations it cannot undo', async () => {
    const c = await describeChange(app, env(), sha('v2'), sha('v1'));
    expect(c.relation).toBe('behind');
    expect(c.removed).toBe(1);
    expect(c.migrations).toEqual([]);
    expect(c.migrationsLiveOnly.length).toBeGreaterThan(0);
    const text = formatChanges([{ hosts: ['web1', 'web2'], live: { host: 'web1', sha: sha('v2'), release: 'r2' }, change: c }], sha('v1')).join('\n');
    expect(text).toMatch(/^web1, web2: live [0-9a-f]{12} \(r2\) → target [0-9a-f]{12}\n {2}!!! ROLLBACK IN DISGUISE: the target is BEHIND the live commit: 1 live commit would be taken away !!!/);
    expect(text).toContain('commits taken away:');
    expect(text).toContain('!!! migrations live now that the target lacks');
  });

  it('diverged, first deploy, same commit, and a live commit this repository lacks', async () => {
    expect((await describeChange(app, env(), sha('v2'), sha('broken-build'))).relation).toBe('diverged');
    expect((await describeChange(app, env(), '', sha('v1'))).relation).toBe('first');
    const same = await describeChange(app, env(), sha('v1'), sha('v1'));
    expect(same.relation).toBe('same');
    // The same commit, live with another .env or settings (the host's fingerprint differs): the plan says it deploys.
    const live = { host: 'web1', sha: sha('v1'), release: 'r1' };
    expect(formatChanges([{ hosts: ['web1'], live, change: same }], sha('v1')).join('\n')).toMatch(/already live, nothing changes$/);
    expect(formatChanges([{ hosts: ['web1'], live: { ...live, changed: true }, change: same }], sha('v1')).join('\n')).toMatch(/live, with another \.env or other settings than this deploy's: deployed again/);
    // No record of what it was deployed with (an older release, damaged records): said as such, not as another .env.
    expect(formatChanges([{ hosts: ['web1'], live: { ...live, changed: true, changedFile: 'server/app.py' }, change: same }], sha('v1')).join('\n')).toMatch(/live, with its files changed on the host since it went live \(e\.g\. server\/app\.py\): deployed again/);
    expect(formatChanges([{ hosts: ['web1'], live: { ...live, changed: true, unrecorded: true }, change: same }], sha('v1')).join('\n')).toMatch(/live, with no record of what it was deployed with that this ops can compare \(deployed by an older ops, whose record is the fingerprint of its own day's settings alone; before such records were kept or while releases shared one .env; or its record missing or damaged\): deployed again/);
    const grouped = await describeChanges(app, env(), [live, { ...live, host: 'web2', changed: true }, { ...live, host: 'web3', changed: true, unrecorded: true }], sha('v1'));
    expect(grouped.map((g) => g.hosts)).toEqual([['web1'], ['web2'], ['web3']]);
    const unknown = await describeChange(app, env(), 'f'.repeat(40), sha('v1'));
    expect(unknown.relation).toBe('unknown');
    expect(formatChanges([{ hosts: ['web1'], live: { host: 'web1', sha: 'f'.repeat(40), release: '' }, change: unknown }], sha('v1')).join('\n')).toContain('fetch');
  });

  it(`lists at most ${COMMIT_LIMIT} commits, then "N more"`, async () => {
    const r = repoWith(Array.from({ length: COMMIT_LIMIT + 6 }, (_, i) => ({ message: `change ${i}`, files: { [`f${i}`]: `${i}` } })));
    const c = await describeChange(r.dir, env({ python_requirements: '', node_dir: '' }), r.shas[0]!, r.shas.at(-1)!);
    expect(c.added).toBe(COMMIT_LIMIT + 5);
    expect(c.commits).toHaveLength(COMMIT_LIMIT);
    expect(c.commits[0]!.subject).toBe(`change ${COMMIT_LIMIT + 5}`);
    const text = formatChanges([{ hosts: ['web1'], live: { host: 'web1', sha: r.shas[0]!, release: '' }, change: c }], r.shas.at(-1)!).join('\n');
    expect(text).toContain('... and 5 more');
    expect(text).toContain('(Ada)');
  });

  it('finds migrations where alembic.ini points, in migrations/ dirs, or where the environment says', async () => {
    const r = repoWith([
      { message: 'app', files: { 'server/alembic.ini': '[alembic]\nscript_location = %(here)s/db\n', 'server/db/env.py': '', 'server/db/versions/001_init.py': '', 'other/x.py': '' } },
      { message: 'two migrations', files: { 'server/db/versions/002_tags.py': '', 'server/db/versions/__init__.py': '', 'web/migrations/0002_b.sql': '', 'schema/changes/7.sql': '', 'other/y.py': '' } },
    ]);
    const c = await describeChange(r.dir, env({ python_requirements: '', node_dir: '' }), r.shas[0]!, r.shas[1]!);
    expect(c.migrations).toEqual(['server/db/versions/002_tags.py', 'web/migrations/0002_b.sql']);
    const configured = await describeChange(r.dir, env({ python_requirements: '', node_dir: '', migration_paths: ['schema/changes/*.sql'] }), r.shas[0]!, r.shas[1]!);
    expect(configured.migrations).toEqual(['schema/changes/7.sql']);
  });

  it('whether migrations have anything new on every host (then they run beside the build): any file under the migration paths or an alembic.ini, added, edited or removed, counts; a host not compared makes it false', async () => {
    const r = repoWith([
      { message: 'app', files: { 'alembic.ini': '[alembic]\nscript_location = db\n', 'db/env.py': 'a', 'db/versions/001_init.py': 'x', 'web/page.js': '1' } },
      { message: 'code only', files: { 'web/page.js': '2' } },
      { message: 'env.py edited', files: { 'db/env.py': 'b' } },
      { message: 'a migration edited in place', files: { 'db/versions/001_init.py': 'y' } },
      { message: 'alembic.ini edited', files: { 'alembic.ini': '[alembic]\nscript_location = db\nsqlalchemy.url = x\n' } },
    ]);
    const e = env({ python_requirements: '', node_dir: '' });
    const changed = async (from: number, to: number) => (await describeChange(r.dir, e, r.shas[from]!, r.shas[to]!)).migrationsChanged;
    expect([await changed(0, 1), await changed(1, 2), await changed(2, 3), await changed(3, 4), await changed(1, 0)]).toEqual([false, true, true, true, false]);
    expect(await changed(2, 1)).toBe(true); // going back over an edit is a change too
    expect((await describeChange(r.dir, e, r.shas[1]!, r.shas[1]!)).migrationsChanged).toBe(false);
    // The app's own repository: v2 adds a revision; deps-changed (on v2) and broken-build (on v1) add none.
    expect([(await describeChange(app, env(), sha('v1'), sha('v2'))).migrationsChanged, (await describeChange(app, env(), sha('v2'), sha('deps-changed'))).migrationsChanged, (await describeChange(app, env(), sha('v1'), sha('broken-build'))).migrationsChanged]).toEqual([true, false, false]);
    const live = (host: string, at: string) => ({ host, sha: at, release: 'r' });
    expect(migrationsUnchanged(await describeChanges(r.dir, e, [live('a', r.shas[0]!), live('b', r.shas[1]!)], r.shas[1]!))).toBe(true);
    expect(migrationsUnchanged(await describeChanges(r.dir, e, [live('a', r.shas[1]!), live('b', r.shas[2]!)], r.shas[1]!))).toBe(false); // b is ahead with an edited env.py
    expect(migrationsUnchanged(await describeChanges(r.dir, e, [live('a', r.shas[0]!), live('b', '')], r.shas[1]!))).toBe(false); // b has nothing live
    expect(migrationsUnchanged(await describeChanges(r.dir, e, [live('a', r.shas[0]!), live('b', 'f'.repeat(40))], r.shas[1]!))).toBe(false); // a commit the runner lacks
    expect(migrationsUnchanged(await describeChanges(r.dir, e, [live('a', r.shas[0]!), { ...live('b', ''), error: 'connection refused' }], r.shas[1]!))).toBe(false);
    expect(migrationsUnchanged([])).toBe(false);
    // Migrations where the paths do not look (Flyway's db/migration): not known to be unchanged, until configured.
    const flyway = repoWith([
      { message: 'app', files: { 'db/migration/V1__init.sql': 'create table a (id int);', 'src/App.java': '1' } },
      { message: 'code only', files: { 'src/App.java': '2' } },
    ]);
    expect((await describeChange(flyway.dir, e, flyway.shas[0]!, flyway.shas[1]!)).migrationsChanged).toBe(true);
    expect((await describeChange(flyway.dir, env({ python_requirements: '', node_dir: '', migration_paths: ['db/migration/**'] }), flyway.shas[0]!, flyway.shas[1]!)).migrationsChanged).toBe(false);
  });

  it("alembic's version_locations (split on its version_path_separator) are migration paths too: a revision added there is new", async () => {
    const ini = (extra: string) => `[alembic]\nscript_location = %(here)s/migrations\n${extra}`;
    const e = env({ python_requirements: '', node_dir: '' });
    for (const [locations, dir] of [
      ['version_locations = %(here)s/migrations/versions %(here)s/extra_versions\n', 'extra_versions'],
      ['version_path_separator = os\nversion_locations = %(here)s/migrations/versions:%(here)s/more/revs\n', 'server/more/revs'],
      ['version_locations =\n    %(here)s/migrations/versions,\n    ./legacy\n', 'server/legacy'],
    ] as const) {
      const at = dir.startsWith('server/') ? 'server/' : '';
      const r = repoWith([
        { message: 'app', files: { [`${at}alembic.ini`]: ini(locations), [`${at}migrations/env.py`]: '', [`${at}migrations/versions/001_init.py`]: 'x', [`${dir}/README`]: 'revisions', 'web/page.js': '1' } },
        { message: 'a revision where version_locations points', files: { [`${dir}/002_more.py`]: 'y' } },
        { message: 'code only', files: { 'web/page.js': '2' } },
      ]);
      const first = await describeChange(r.dir, e, r.shas[0]!, r.shas[1]!);
      expect([first.migrations, first.migrationsChanged]).toEqual([[`${dir}/002_more.py`], true]);
      expect((await describeChange(r.dir, e, r.shas[1]!, r.shas[2]!)).migrationsChanged).toBe(false);
    }
  });

  it('the files release.migrate runs count as migrations changed (its makefile, also after a cd, its script); a directory it cds into does not', async () => {
    const r = repoWith([
      { message: 'app', files: { 'Makefile': 'migrate:\n\talembic upgrade head\n', 'scripts/migrate.sh': 'alembic upgrade head\n', 'server/app.py': '1', 'server/Makefile': 'db:\n\ttrue\n', 'db/versions/001.py': 'x', 'alembic.ini': '[alembic]\nscript_location = db\n' } },
      { message: 'the migrate recipe', files: { 'Makefile': 'migrate:\n\talembic upgrade head && python -m tools.backfill\n' } },
      { message: 'the script', files: { 'scripts/migrate.sh': 'alembic upgrade head\npython -m tools.backfill\n' } },
      { message: 'app code', files: { 'server/app.py': '2' } },
      { message: "server's makefile", files: { 'server/Makefile': 'db:\n\talembic upgrade head\n' } },
    ]);
    const changed = async (migrate: string, step: number) => (await describeChange(r.dir, env({ python_requirements: '', node_dir: '', migrate }), r.shas[step - 1]!, r.shas[step]!)).migrationsChanged;
    expect([await changed('make migrate', 1), await changed('make migrate', 2), await changed('make migrate', 3)]).toEqual([true, false, false]);
    expect([await changed('./scripts/migrate.sh', 1), await changed('./scripts/migrate.sh', 2), await changed('bash scripts/migrate.sh', 2)]).toEqual([false, true, true]);
    expect([await changed('cd server && alembic upgrade head', 3), await changed('make -C server db', 3), await changed('make -C server db', 4)]).toEqual([false, false, true]);
    expect(migrateCommandFiles('make -C server db')).toEqual(expect.arrayContaining(['server/Makefile', 'server/GNUmakefile', 'server/makefile']));
    // A makefile reached by `cd`, by make's other spellings of its directory, a script named by a variable.
    expect([await changed('cd server && make db', 4), await changed('make --directory server db', 4), await changed('make -Cserver db', 4)]).toEqual([true, true, true]);
    expect(await changed('SCRIPT=scripts/migrate.sh; bash "$SCRIPT"', 2)).toBe(true);
    expect(migrateCommandFiles('cd server && make -f build/mk db')).toEqual(expect.arrayContaining(['server/build/mk']));
  });

  it('groups hosts serving the same commit; a host that could not be read is said so', async () => {
    const groups = await describeChanges(
      app,
      env(),
      [
        { host: 'a', sha: sha('v1'), release: 'r1' },
        { host: 'b', sha: sha('v1'), release: 'r1' },
        { host: 'c', sha: '', release: '', error: 'connection refused' },
      ],
      sha('v2'),
    );
    expect(groups.map((g) => g.hosts)).toEqual([['a', 'b'], ['c']]);
    expect(formatChanges(groups, sha('v2')).at(-1)).toBe('c: cannot be read: connection refused');
  });
});
