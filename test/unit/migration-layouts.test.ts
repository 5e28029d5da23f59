// Migration layouts real projects use, as alembic and the shell read them (core/changes.ts iniSections,
// alembicVersionDirs, migrationPaths, migrateCommandFiles). Found by two breaker rounds: layouts alembic reads (or
// files release.migrate runs) that ops did not, so a real change was classified "no migration changed" and
// release.migrate ran beside the build (a failed build then left the database migrated past the live release,
// while the error said it kept the live schema). Layouts checked by the breaker against alembic 1.20.1; the ini
// reader against Python's own configparser. Each repository also holds a Django migration where noted, so the
// "no migration found: wait" fallback does not hide a miss.
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { alembicVersionDirs, describeChange, iniSections } from '../../core/changes.ts';
import { git, releaseEnv } from './commits.helpers.ts';

const rev = '"""r"""\nrevision = "x"\n';

type Files = Record<string, string | { link: string }>;

/** A repository with two commits: `live`'s files, then `target`'s on top (a `{ link }` is a symbolic link). */
function twoCommits(live: Files, target: Files): { dir: string; shas: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'ops-layouts-'));
  git(dir, 'init', '-q', '-b', 'main');
  const shas: string[] = [];
  for (const files of [live, target]) {
    for (const [f, t] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, f)), { recursive: true });
      if (typeof t === 'string') writeFileSync(join(dir, f), t);
      else symlinkSync(t.link, join(dir, f));
    }
    git(dir, 'add', '-A');
    git(dir, 'commit', '-q', '--allow-empty', '-m', 'c');
    shas.push(git(dir, 'rev-parse', 'HEAD'));
  }
  return { dir, shas };
}

/** One test per case [name, release.migrate, live commit's files, target's files]: the change is a migration change. */
function waitForTheBuild(cases: [string, string, Files, Files][]): void {
  for (const [name, migrate, live, target] of cases) {
    it(name, async () => {
      const r = twoCommits(live, target);
      expect((await describeChange(r.dir, releaseEnv({ migrate }), r.shas[0]!, r.shas[1]!)).migrationsChanged).toBe(true);
    });
  }
}

describe('a new revision where alembic looks waits for the build (breaker 33)', () => {
  const cases: [string, string, Record<string, string>, string?][] = [
    // configparser keeps blank lines inside a multi-line value (empty_lines_in_values); alembic drops the empty item.
    ['a blank line inside version_locations (newline separator)', '[alembic]\nscript_location = %(here)s/db\nversion_path_separator = newline\nversion_locations =\n    %(here)s/db/versions\n\n    %(here)s/billing/versions\n', { 'billing/versions/0002_b.py': rev }],
    // configparser skips a full-line comment at column 0 inside a multi-line value; the value goes on after it.
    ['a column-0 comment inside version_locations', '[alembic]\nscript_location = %(here)s/db\nversion_path_separator = newline\nversion_locations =\n    %(here)s/db/versions\n# billing:\n    %(here)s/billing/versions\n', { 'billing/versions/0002_b.py': rev }],
    // alembic's documented multi-database layout: one .ini, one section per environment, `alembic -n analytics`.
    ['a second section run with alembic -n', '[alembic]\nscript_location = %(here)s/db\n\n[analytics]\nscript_location = %(here)s/analytics_db\n', { 'analytics_db/versions/0002_x.py': rev }, 'alembic upgrade head && alembic -n analytics upgrade head'],
  ];
  for (const [name, ini, added, migrate] of cases) {
    it(name, async () => {
      const r = twoCommits({ 'alembic.ini': ini, 'db/versions/0001.py': rev, 'billing/versions/0001_b.py': rev, 'analytics_db/versions/0001_x.py': rev }, added);
      const c = await describeChange(r.dir, releaseEnv(migrate ? { migrate } : {}), r.shas[0]!, r.shas[1]!);
      expect(c.migrations).toEqual(Object.keys(added));
      expect(c.migrationsChanged).toBe(true);
    });
  }
});

/** What Python's configparser (ConfigParser's defaults, no interpolation: alembic's own reader) makes of `text`. */
function pythonSections(text: string): Record<string, Record<string, string>> {
  const py = `import configparser, json, sys
c = configparser.ConfigParser(interpolation=None, strict=False)
c.read_string(sys.stdin.read())
print(json.dumps({s: dict(c[s]) for s in c.sections()}))`;
  const r = spawnSync('python3', ['-c', py], { input: text, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as Record<string, Record<string, string>>;
}

describe('iniSections reads an ini as Python\'s configparser does', () => {
  const texts = [
    '[alembic]\nscript_location = %(here)s/db\nversion_locations =\n    a/versions\n\n    b/versions\n# col-0 comment\n    c/versions\n  ; indented comment\n    d/versions\n\n\n[next]\nkey: value : with colon\nOther_Key = x = y\n',
    '[DEFAULT]\nhere_too = 1\n[alembic]\nscript_location=db\n  continued line\n\tand a tab\nempty =\n[loggers]\nkeys = root,sqlalchemy\n',
    '[a]\n  indented_key = v\n    more\n  next = w\n[a]\nlater = 2\n',
    '[alembic]\r\nscript_location = migrations\r\nversion_locations = one two,three\r\n',
  ];
  texts.forEach((text, i) => {
    it(`text ${i + 1}`, () => {
      const ours = Object.fromEntries([...iniSections(text)].map(([name, keys]) => [name, Object.fromEntries(keys)]));
      expect(ours).toEqual(pythonSections(text));
    });
  });

  it('alembic\'s separators: newline, path_separator (alembic 1.16), the legacy commas and spaces; every section', () => {
    expect(alembicVersionDirs('srv/alembic.ini', '[alembic]\nscript_location = %(here)s/db\npath_separator = newline\nversion_locations =\n  %(here)s/a b\n\n  %(here)s/c\n').dirs).toEqual(['srv/db/versions', 'srv/a b', 'srv/c']);
    expect(alembicVersionDirs('alembic.ini', '[alembic]\nscript_location = db\nversion_locations = x, y z\n[other]\nscript_location = other_db\n').dirs).toEqual(['db/versions', 'x', 'y', 'z', 'other_db/versions']);
  });
});

const revision = (id: string) => `revision = "${id}"\ndown_revision = None\n`;
const django = { 'shop/migrations/0001_initial.py': 'x\n' };

describe('a real migration change, in the layouts and commands projects use, waits for the build', () => {
  const cases: [string, string, Files, Files][] = [
    ['%(name)s interpolation in version_locations', 'alembic upgrade heads',
      { 'alembic/versions/0001.py': revision('a1'), 'alembic.ini': '[alembic]\nscript_location = %(here)s/alembic\nplugins = %(here)s/plugins\nversion_locations = %(here)s/alembic/versions %(plugins)s/versions\n', 'plugins/versions/p1.py': revision('p1') },
      { 'plugins/versions/p2.py': revision('p2') }],
    ['script_location relative to the directory alembic runs in (alembic -c db/alembic.ini)', 'alembic -c db/alembic.ini upgrade head',
      { ...django, 'db/alembic.ini': '[alembic]\nscript_location = db/schema\n', 'db/schema/versions/0001.py': revision('b1') },
      { 'db/schema/versions/0002.py': revision('b2') }],
    ['an ini of another name, given with --config=', 'alembic --config=db/prod.ini upgrade head',
      { ...django, 'db/prod.ini': '[alembic]\nscript_location = %(here)s/schema\n', 'db/schema/versions/0001.py': revision('c1') },
      { 'db/schema/versions/0002.py': revision('c2') }],
    ['pyproject.toml [tool.alembic] (alembic >= 1.16): not read, so nothing is ruled out', 'alembic upgrade head',
      { ...django, 'pyproject.toml': '[tool.alembic]\nscript_location = "%(here)s/db/schema"\n', 'db/schema/versions/0001.py': revision('g1') },
      { 'db/schema/versions/0002.py': revision('g2') }],
    ['path_separator is read before version_path_separator', 'alembic upgrade head',
      { 'alembic/versions/0001.py': revision('h1'), 'alembic.ini': '[alembic]\nscript_location = alembic\npath_separator = os\nversion_path_separator = space\nversion_locations = %(here)s/alembic/versions:%(here)s/extra/versions\n', 'extra/versions/e1.py': revision('e1') },
      { 'extra/versions/e2.py': revision('e2') }],
    ['a package resource in another section (alembic -n reports)', 'alembic -n reports upgrade head',
      { ...django, 'alembic.ini': '[alembic]\nscript_location = db\n[reports]\nscript_location = myapp.reports:schema\n', 'db/versions/1.py': revision('d1'), 'myapp/reports/schema/versions/r1.py': revision('r1') },
      { 'myapp/reports/schema/versions/r2.py': revision('r2') }],
    ['an ini with lone CR line endings', 'alembic upgrade head',
      { ...django, 'alembic.ini': '[alembic]\rscript_location = db/schema\r', 'db/schema/versions/0001.py': revision('k1') },
      { 'db/schema/versions/0002.py': revision('k2') }],
    ['bash -c "cd db && ./migrate.sh"', 'bash -c "cd db && ./migrate.sh"', { ...django, 'db/migrate.sh': 'true\n' }, { 'db/migrate.sh': 'psql -c "drop table t"\n' }],
    ['(cd tools && ./prep.sh); make migrate: the subshell cd does not last', '(cd tools && ./prep.sh); make migrate',
      { ...django, 'tools/prep.sh': 'true\n', Makefile: 'migrate:\n\ttrue\n' }, { Makefile: 'migrate:\n\tpsql -c "drop table t"\n' }],
    ['make -sC db migrate', 'make -sC db migrate', { ...django, 'db/Makefile': 'migrate:\n\ttrue\n' }, { 'db/Makefile': 'migrate:\n\tfalse\n' }],
    ['cd db && gmake migrate', 'cd db && gmake migrate', { ...django, 'db/Makefile': 'migrate:\n\ttrue\n' }, { 'db/Makefile': 'migrate:\n\tfalse\n' }],
    ['python -m app.migrate', 'python -m app.migrate', { ...django, 'app/migrate.py': '1\n' }, { 'app/migrate.py': '2\n' }],
    ['"$PWD/bin/migrate"', '"$PWD/bin/migrate"', { ...django, 'bin/migrate': '1\n' }, { 'bin/migrate': '2\n' }],
    ['npm run migrate (package.json scripts)', 'npm run migrate', { ...django, 'package.json': '{"scripts":{"migrate":"true"}}\n' }, { 'package.json': '{"scripts":{"migrate":"knex migrate:latest"}}\n' }],
  ];
  waitForTheBuild(cases);

  it('a code change beside those layouts still runs beside (nothing ruled in needlessly)', async () => {
    const r = twoCommits({ ...django, 'alembic.ini': '[alembic]\nscript_location = %(here)s/db\nversion_locations = %(here)s/db/versions\n', 'db/versions/1.py': revision('z1'), 'app/views.py': '1\n' }, { 'app/views.py': '2\n' });
    expect((await describeChange(r.dir, releaseEnv({ migrate: 'cd db && make migrate' }), r.shas[0]!, r.shas[1]!)).migrationsChanged).toBe(false);
  });

  it('what alembicVersionDirs makes of edge values: %(here)s alone, an interpolation it cannot resolve, a location outside the repository', () => {
    expect(alembicVersionDirs('alembic.ini', '[alembic]\nscript_location = %(here)s\n').dirs).toEqual(['versions']);
    expect(alembicVersionDirs('alembic.ini', '[alembic]\nscript_location = %(nope)s/db\n').unknown).toMatch(/an interpolation ops cannot resolve/);
    expect(alembicVersionDirs('db/alembic.ini', '[alembic]\nscript_location = /opt/schema\nversion_locations = %(here)s/../../elsewhere\n').dirs).toEqual([]);
  });
});

describe('more layouts and task runners (third breaker round, checked with alembic 1.20.1, bash, GNU make, coreutils env, npm)', () => {
  const rev0 = 'revision = "a"\ndown_revision = None\n';
  const rev = 'revision = "b"\ndown_revision = "a"\n';
  const django = { 'app/migrations/0001_initial.py': 'x = 1\n' };
  const cases: [string, string, Files, Files][] = [
    // alembic resolves "pkg:dir" in version_locations with importlib (site-packages): a requirements bump brings revisions.
    ['version_locations from an installed package, its pin bumped', 'alembic upgrade head',
      { 'alembic.ini': '[alembic]\nscript_location = alembic\nversion_locations = %(here)s/alembic/versions audit_log:versions\n', 'alembic/env.py': '', 'alembic/versions/a.py': rev0, 'requirements.txt': 'audit-log==1.0\n' },
      { 'requirements.txt': 'audit-log==1.1\n' }],
    // alembic lists a version location through a symlink (os.listdir follows it); git keeps the link as one blob.
    ['a version location that is a symlink in the repository', 'alembic upgrade head',
      { 'alembic.ini': '[alembic]\nscript_location = alembic\nversion_locations = %(here)s/alembic/versions %(here)s/alembic/billing\n', 'alembic/env.py': '', 'alembic/versions/a.py': rev0, 'alembic/billing': { link: '../services/billing/revisions' }, 'services/billing/revisions/z.py': 'revision = "z"\ndown_revision = None\n' },
      { 'services/billing/revisions/y.py': 'revision = "y"\ndown_revision = "z"\n' }],
    ['script_location a symlink (Django migration beside)', 'alembic upgrade head',
      { ...django, 'alembic.ini': '[alembic]\nscript_location = dbmig\n', dbmig: { link: 'src/app/db' }, 'src/app/db/env.py': '', 'src/app/db/versions/a.py': rev0 },
      { 'src/app/db/versions/b.py': rev }],
    ['alembic -c db/alembic.cfg (not .ini; Django migration beside)', 'alembic -c db/alembic.cfg upgrade head',
      { ...django, 'db/alembic.cfg': '[alembic]\nscript_location = %(here)s/schema\n', 'db/schema/env.py': '', 'db/schema/versions/a.py': rev0 },
      { 'db/schema/versions/b.py': rev }],
    // configparser lower-cases keys (optionxform): alembic reads Script_Location.
    ['Script_Location (Django migration beside)', 'alembic upgrade head',
      { ...django, 'alembic.ini': '[alembic]\nScript_Location = db/schema\n', 'db/schema/env.py': '', 'db/schema/versions/a.py': rev0 },
      { 'db/schema/versions/b.py': rev }],
    // Flask-Migrate sets script_location to its directory in code; the alembic.ini it keeps there has none.
    ['flask db upgrade -d db/schema (Django migration beside)', 'flask db upgrade -d db/schema',
      { ...django, 'db/schema/alembic.ini': '[alembic]\n\n[loggers]\nkeys = root\n', 'db/schema/env.py': '', 'db/schema/versions/a.py': rev0 },
      { 'db/schema/versions/b.py': rev }],
    ['pushd db && make migrate', 'pushd db && make migrate', { ...django, 'db/Makefile': 'migrate:\n\ttrue\n' }, { 'db/Makefile': 'migrate:\n\tfalse\n' }],
    ['env -C db ./migrate.sh', 'env -C db ./migrate.sh', { ...django, 'db/migrate.sh': 'true\n' }, { 'db/migrate.sh': 'false\n' }],
    ['make migrate, the target in an included makefile', 'make migrate', { ...django, Makefile: 'include db/migrate.mk\n', 'db/migrate.mk': 'migrate:\n\ttrue\n' }, { 'db/migrate.mk': 'migrate:\n\tfalse\n' }],
    ['npm --prefix db run migrate', 'npm --prefix db run migrate', { ...django, 'db/package.json': '{"scripts":{"migrate":"true"}}\n' }, { 'db/package.json': '{"scripts":{"migrate":"false"}}\n' }],
    ['npm -w db run migrate', 'npm -w db run migrate', { ...django, 'package.json': '{"workspaces":["db"]}\n', 'db/package.json': '{"name":"db","scripts":{"migrate":"true"}}\n' }, { 'db/package.json': '{"name":"db","scripts":{"migrate":"false"}}\n' }],
    ['yarn --cwd db migrate', 'yarn --cwd db migrate', { ...django, 'db/package.json': '{"scripts":{"migrate":"true"}}\n' }, { 'db/package.json': '{"scripts":{"migrate":"false"}}\n' }],
    ['pnpm -C db run migrate', 'pnpm -C db run migrate', { ...django, 'db/package.json': '{"scripts":{"migrate":"true"}}\n' }, { 'db/package.json': '{"scripts":{"migrate":"false"}}\n' }],
    ['uv run --directory db ./migrate.sh', 'uv run --directory db ./migrate.sh', { ...django, 'db/migrate.sh': 'true\n' }, { 'db/migrate.sh': 'false\n' }],
    ['task db:migrate (Taskfile.yml)', 'task db:migrate', { ...django, 'Taskfile.yml': 'version: 3\ntasks:\n  db:migrate:\n    cmds: [true]\n' }, { 'Taskfile.yml': 'version: 3\ntasks:\n  db:migrate:\n    cmds: [false]\n' }],
    ['pdm run migrate (pyproject scripts)', 'pdm run migrate', { ...django, 'pyproject.toml': '[tool.pdm.scripts]\nmigrate = "true"\n' }, { 'pyproject.toml': '[tool.pdm.scripts]\nmigrate = "false"\n' }],
    ['tox -e migrate (tox.ini)', 'tox -e migrate', { ...django, 'tox.ini': '[testenv:migrate]\ncommands = true\n' }, { 'tox.ini': '[testenv:migrate]\ncommands = false\n' }],
  ];
  waitForTheBuild(cases);
});
