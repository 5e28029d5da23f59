// alembic.ini as alembic reads it (core/changes.ts iniSections, alembicVersionDirs). Found by a breaker against
// 52bd7d9: layouts alembic reads but the old reader did not, so a real new revision was classified "no migration
// changed" and release.migrate ran beside the build (a failed build then left the database migrated past the live
// release, while the error said it kept the live schema). The reader is checked against Python's own configparser.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { alembicVersionDirs, describeChange, iniSections } from '../../core/changes.ts';
import { git, releaseEnv } from './commits.helpers.ts';

const rev = '"""r"""\nrevision = "x"\n';

function twoCommits(live: Record<string, string>, target: Record<string, string>): { dir: string; shas: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'ops-breaker33-'));
  git(dir, 'init', '-q', '-b', 'main');
  const shas: string[] = [];
  for (const files of [live, target]) {
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, f)), { recursive: true });
      writeFileSync(join(dir, f), text);
    }
    git(dir, 'add', '-A');
    git(dir, 'commit', '-q', '--allow-empty', '-m', 'c');
    shas.push(git(dir, 'rev-parse', 'HEAD'));
  }
  return { dir, shas };
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
    expect(alembicVersionDirs('srv/alembic.ini', '[alembic]\nscript_location = %(here)s/db\npath_separator = newline\nversion_locations =\n  %(here)s/a b\n\n  %(here)s/c\n')).toEqual(['srv/db/versions', 'srv/a b', 'srv/c']);
    expect(alembicVersionDirs('alembic.ini', '[alembic]\nscript_location = db\nversion_locations = x, y z\n[other]\nscript_location = other_db\n')).toEqual(['db/versions', 'x', 'y', 'z', 'other_db/versions']);
  });
});
