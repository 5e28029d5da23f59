// The full deploy's two dependency sets made at once (issue 19): the Python set beside the node set and the
// build, on two exec channels of the one connection, migrations only once both succeeded (or, when no migration
// file changed since the live commit, beside the build once the Python set is made). Faults on either side
// while the other still works: what is reported, what the host and the database are left with, and what the next
// deploy does with the set that failed. The Python set's timing and failure come from a real sdist built by uv
// (a local path requirement whose setup.py sleeps, or fails, as files on the host say: a slow or broken package
// build, as a private package can be), the build's failure from the client's own syntax error (vite).
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { auditLog, getLockStatus } from '../../core/ops/records.ts';
import { downHost, querySql, sshRun, type Host } from '../hosts/index.ts';
import { spawnOps } from '../support/cli.ts';
import { appRepo, get, makeProject, readyHost, testConfig, testDatabase, type TestProject } from './support.ts';

let host: Host;
let project: TestProject;
let dbName = '';
let dbUrl = '';
let repo = '';

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', args, { cwd, env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@x.invalid', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@x.invalid' } }).toString();

// A package built from source by uv: sleeps while /tmp/ops-probe-sleep names seconds, fails while /tmp/ops-probe-fail exists.
const SETUP_PY = `import os, time
from setuptools import setup
if os.path.exists('/tmp/ops-probe-sleep'):
    time.sleep(float(open('/tmp/ops-probe-sleep').read()))
if os.path.exists('/tmp/ops-probe-fail'):
    time.sleep(3)
    raise SystemExit('ops-probe: the package build fails on purpose')
setup(name='ops-probe', version=os.environ.get('OPS_PROBE_VERSION', '1.0'), py_modules=[])
`;

/** A commit on `base` tagged `tag`: `write(tree)` changes a worktree of `base`, all of it is committed. */
function commitOn(tag: string, base: string, write: (tree: string) => void): string {
  const work = mkdtempSync(join(tmpdir(), 'ops-parallel-'));
  const tree = join(work, 'tree');
  try {
    git(repo, 'worktree', 'add', '-q', '--detach', tree, base);
    write(tree);
    git(tree, 'add', '-A');
    git(tree, 'commit', '-q', '--no-verify', '-m', tag);
    git(tree, 'tag', '-f', tag);
    return tag;
  } finally {
    git(repo, 'worktree', 'remove', '--force', tree);
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * A commit on `base` (tagged `tag`): a new migration creating table `table` after revision `down`, the Python
 * requirements (hashes dropped) plus the local package `vendor/ops-probe` (`marker` makes the set new), and
 * `client.file` as it is in ref `client.from` when given.
 */
function commit(tag: string, base: string, down: string, table: string, marker: string, client?: { file: string; from: string }): string {
  return commitOn(tag, base, (tree) => {
    const req = git(repo, 'show', 'v2:requirements.txt').replace(/ \\\n\s+--hash=sha256:[0-9a-f]+/g, '');
    writeFileSync(join(tree, 'requirements.txt'), `${req}./vendor/ops-probe\n# ${marker}\n`);
    mkdirSync(join(tree, 'vendor', 'ops-probe'), { recursive: true });
    writeFileSync(join(tree, 'vendor', 'ops-probe', 'setup.py'), SETUP_PY);
    writeFileSync(
      join(tree, 'migrations', 'versions', `${table}.py`),
      `"""${table}"""\nfrom alembic import op\nimport sqlalchemy as sa\n\nrevision = "${table}"\ndown_revision = "${down}"\nbranch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n    op.create_table("${table}", sa.Column("id", sa.Integer, primary_key=True))\n\n\ndef downgrade():\n    op.drop_table("${table}")\n`,
    );
    if (client) writeFileSync(join(tree, client.file), git(repo, 'show', `${client.from}:${client.file}`));
  });
}

/** A commit on `base` (tagged `tag`) writing `files` (path → content, or `{ from: ref }` for that ref's file): no migration. */
function codeCommit(tag: string, base: string, files: Record<string, string | { from: string }>): string {
  return commitOn(tag, base, (tree) => {
    for (const [f, c] of Object.entries(files)) writeFileSync(join(tree, f), typeof c === 'string' ? c : git(repo, 'show', `${c.from}:${f}`));
  });
}

/** When the build and the migrations started and ended on the host (ns; 0: not run), as the commands below record them. */
async function times(): Promise<Record<'buildStart' | 'buildEnd' | 'migrateStart' | 'migrateEnd' | 'migrateNice', number>> {
  const r = await sshRun(host, 'for f in build-start build-end migrate-start migrate-end migrate-nice; do cat /tmp/ops-times-$f 2>/dev/null || echo 0; done; sudo rm -f /tmp/ops-times-*'); // the app user's files (sticky /tmp)
  const [buildStart = 0, buildEnd = 0, migrateStart = 0, migrateEnd = 0, migrateNice = 0] = r.stdout.trim().split('\n').map(Number);
  return { buildStart, buildEnd, migrateStart, migrateEnd, migrateNice };
}

/** The Python sets on the host: directory name → complete. */
async function pythonSets(): Promise<Record<string, boolean>> {
  const r = await sshRun(host, `sudo bash -c 'cd /srv/sample/shared/deps && for d in venv-*; do if [ -f "$d/.complete" ]; then echo "$d yes"; else echo "$d no"; fi; done'`);
  return Object.fromEntries(r.stdout.trim().split('\n').map((l) => [l.split(' ')[0]!, l.endsWith(' yes')]));
}

/** Processes of the app user still running a package manager or a build (none once a deploy has reported). */
async function stillWorking(): Promise<string> {
  return (await sshRun(host, "ps -u sample -o args= | grep -E 'uv |setup.py|npm|vite' | grep -v grep || true")).stdout.trim();
}

const table = async (name: string) => (await querySql(dbName, `SELECT to_regclass('${name}') IS NOT NULL`)).trim();

beforeAll(async () => {
  host = await readyHost('par');
  dbName = `parallel_${process.pid}`;
  dbUrl = await testDatabase(dbName);
  repo = await appRepo();
  project = makeProject('e2e', testConfig([host], repo, dbUrl));
  await deploy(project.ctx(), project.env(), { ref: 'v2' });
}, 900_000);

afterAll(async () => {
  await sshRun(host, 'sudo rm -f /tmp/ops-probe-sleep /tmp/ops-probe-fail /tmp/ops-times-*', { allowFailure: true }).catch(() => undefined);
  if (host) await downHost(host.name, { purge: true });
  project?.cleanup();
});

describe.sequential('a full deploy makes its Python set beside the node set and the build', () => {
  it('a Python set failing while the build runs: the Python failure reported once the build ended, site and database as they were; the next deploy makes the set again', async () => {
    const page = (await get(host)).body;
    const ref = commit(`par-python-fails-${process.pid}`, 'v2', '0003_datasets', 'ops_par_python', `python fails ${process.pid}`);
    await sshRun(host, 'touch /tmp/ops-probe-fail');
    const before = await pythonSets();
    const err = await deploy(project.ctx(), project.env(), { ref }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^step "python dependencies" on \S+ failed with exit code \d+\n[\s\S]*ops-probe: the package build fails on purpose[\s\S]*still serves \S+; nothing was switched/);
    // The build beside it was waited for (nothing of the deploy still runs), the migration never ran.
    expect(await stillWorking()).toBe('');
    expect(await table('ops_par_python')).toBe('f');
    expect((await get(host)).body).toBe(page);
    const failedSet = Object.entries(await pythonSets()).filter(([name]) => !(name in before));
    expect(failedSet).toEqual([[expect.stringMatching(/^venv-/), false]]); // left without .complete

    await sshRun(host, 'rm -f /tmp/ops-probe-fail');
    const again = await deploy(project.ctx(), project.env(), { ref });
    expect(again.hosts[0]!.notes).toEqual(expect.arrayContaining(['dependencies: python installed (uv)', 'dependencies: node reused']));
    expect((await pythonSets())[failedSet[0]![0]]).toBe(true);
    expect(await table('ops_par_python')).toBe('t');
    expect((await get(host)).body).toContain('Version 2.0.0');
  }, 600_000);

  it('a build failing while the Python set is still being made: the build failure reported once the set is made, site and database as they were; the next deploy reuses the set', async () => {
    const page = (await get(host)).body;
    const base = `par-python-fails-${process.pid}`; // live now, its migration applied
    const broken = commit(`par-build-fails-${process.pid}`, base, 'ops_par_python', 'ops_par_build', `build fails ${process.pid}`, { file: 'client/src/lib/format.js', from: 'broken-build' });
    // Long enough for the build (npm's set is reused) to fail well before the package is built.
    await sshRun(host, 'echo 25 > /tmp/ops-probe-sleep');
    const before = await pythonSets();
    const err = await deploy(project.ctx(), project.env(), { ref: broken })
      .catch((e: Error) => e)
      .finally(() => sshRun(host, 'rm -f /tmp/ops-probe-sleep'));
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^step "build" on \S+ failed[\s\S]*src\/lib\/format\.js \(3:\d+\): Expected[\s\S]*still serves \S+; nothing was switched/);
    expect(await stillWorking()).toBe('');
    // The Python set beside it ran to its end before the failure was reported: complete, reused next time.
    const made = Object.entries(await pythonSets()).filter(([name]) => !(name in before));
    expect(made).toEqual([[expect.stringMatching(/^venv-/), true]]);
    expect(await table('ops_par_build')).toBe('f');
    expect((await get(host)).body).toBe(page);

    // The same requirements with the client fixed: the set made beside the failed build is reused.
    const fixed = commit(`par-build-fixed-${process.pid}`, base, 'ops_par_python', 'ops_par_build', `build fails ${process.pid}`);
    const next = await deploy(project.ctx(), project.env(), { ref: fixed });
    expect(next.hosts[0]!.notes).toEqual(expect.arrayContaining(['dependencies: python reused', 'dependencies: node reused']));
    expect(await table('ops_par_build')).toBe('t');
  }, 600_000);

  it('a SIGTERM (a cancelled workflow) while the Python set and the build run (the terminal shows them side by side, lines tagged with their step): exit 143, nothing of the run left running, the lock free, the interruption audited, the half-made set not marked complete; the next deploy makes it again', async () => {
    const page = (await get(host)).body;
    const ref = commit(`par-sigterm-${process.pid}`, `par-build-fixed-${process.pid}`, 'ops_par_build', 'ops_par_term', `sigterm ${process.pid}`);
    await sshRun(host, 'echo 40 > /tmp/ops-probe-sleep');
    const before = await pythonSets();
    let out = '';
    try {
      // Both under way: the Python set started and the build printed a line of its own (tagged with its step).
      const ops = await spawnOps(['deploy', 'e2e', '--ref', ref], project.root, (o) => o.includes('· python dependencies') && /^ {2}\S+ \[build\] /m.test(o), 'the Python set and the build running at once', 240_000);
      await new Promise((r) => setTimeout(r, 2000)); // both well under way
      expect(await ops.stop('SIGTERM')).toBe(143);
      out = ops.out();
    } finally {
      await sshRun(host, 'rm -f /tmp/ops-probe-sleep');
    }
    // The steps it cut off are named, both of them (in the order they started).
    expect(out).toMatch(new RegExp(`SIGTERM received during (python dependencies on ${host.name}, build on ${host.name}|build on ${host.name}, python dependencies on ${host.name}): stopping them, releasing the lock`));
    // The terminal: the two steps are siblings (not one nested in the other), the build's lines say they are its own.
    expect(out).toMatch(/^▸ \S+ · python dependencies$/m);
    expect(out).toMatch(/^▸ \S+ · build$/m);
    // Tagged once both channels are open: the build's first lines (its command, npm's banner) may come before the
    // Python set's channel opens; its later lines are tagged.
    expect(out).toMatch(/^ {2}\S+ (\[build\] )?cd client && npm run build$/m);
    expect(out).toMatch(/^ {2}\S+ \[build\] \S/m);
    expect(await stillWorking()).toBe('');
    expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
    expect((await auditLog(project.ctx(), project.env(), 3))[0]!.entries.map((e) => e.message)).toContainEqual(expect.stringMatching(/^interrupted by SIGTERM during .*build on /));
    const half = Object.entries(await pythonSets()).filter(([name]) => !(name in before));
    expect(half.every(([, complete]) => !complete)).toBe(true);
    expect(await table('ops_par_term')).toBe('f');
    expect((await get(host)).body).toBe(page);

    const again = await deploy(project.ctx(), project.env(), { ref });
    expect(again.hosts[0]!.notes).toEqual(expect.arrayContaining(['dependencies: python installed (uv)']));
    expect(await table('ops_par_term')).toBe('t');
  }, 600_000);

  it('no migration file changed since the live commit: migrations run beside the build (ended before it), the plan and the log say so; a build failing then leaves the site and the schema as they were; a commit adding a migration waits for the build again', async () => {
    // The build made slower than the migrations, each recording when it ran (the app's own commands inside).
    const stamp = (name: string) => `date +%s%N > /tmp/ops-times-${name}`;
    const build = `s=0; ${stamp('build-start')} && sleep 3 && { make build || s=$?; }; ${stamp('build-end')}; exit $s`;
    const migrate = `${stamp('migrate-start')} && ps -o ni= -p $$ > /tmp/ops-times-migrate-nice && make migrate && ${stamp('migrate-end')}`;
    project.write(testConfig([host], repo, dbUrl, { release: { build, migrate } }));
    const live = `par-sigterm-${process.pid}`; // live now (its migration applied)
    const ok = codeCommit(`par-beside-${process.pid}`, live, { 'NOTES.md': `beside ${process.pid}\n` });
    const plan = await deploy(project.ctx(), project.env(), { ref: ok, dryRun: true });
    expect(plan.plan!.join('\n')).toContain('migrate: beside the build on the first host (no migration file changed since the live commit on any host: nothing new to apply)');
    await times();
    const r = await deploy(project.ctx(), project.env(), { ref: ok });
    expect(r.hosts[0]!.notes).toContain(`migrate: beside the build (no migration file changed since the live commit): ${migrate}`);
    let t = await times();
    expect(t.migrateStart).toBeGreaterThan(0);
    expect(t.migrateEnd).toBeLessThan(t.buildEnd); // beside it, not after it
    expect(t.migrateStart).toBeGreaterThan(t.buildStart - 30e9);
    expect(t.migrateNice).toBe(10); // beside the build, it takes what CPU the build leaves

    // A broken client, no migration: the migrations ran beside the failing build and changed nothing.
    const page = (await get(host)).body;
    const tables = await querySql(dbName, "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'");
    const broken = codeCommit(`par-beside-broken-${process.pid}`, ok, { 'client/src/lib/format.js': { from: 'broken-build' } });
    const err = await deploy(project.ctx(), project.env(), { ref: broken }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^step "build" on \S+ failed[\s\S]*src\/lib\/format\.js \(3:\d+\): Expected/);
    expect((err as Error).message).toMatch(/ran on \S+ beside its build \(.*\); no migration file changed since the live commit, so the database keeps the live release's schema/);
    t = await times();
    expect(t.migrateEnd).toBeGreaterThan(0);
    expect(t.migrateEnd).toBeLessThan(t.buildEnd);
    expect(await stillWorking()).toBe('');
    expect((await get(host)).body).toBe(page);
    expect(await querySql(dbName, "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'")).toBe(tables);

    // A migration added (over the broken commit's base): the plan says it waits, and it starts once the build ended.
    const added = commit(`par-after-build-${process.pid}`, ok, 'ops_par_term', 'ops_par_after', `after build ${process.pid}`);
    expect((await deploy(project.ctx(), project.env(), { ref: added, dryRun: true })).plan!.join('\n')).toContain('migrate: on the first host once its build succeeded (a failed build leaves the database untouched)');
    const after = await deploy(project.ctx(), project.env(), { ref: added });
    expect(after.hosts[0]!.notes.join('\n')).not.toContain('migrate: beside');
    t = await times();
    expect(t.migrateStart).toBeGreaterThan(t.buildEnd);
    expect(t.migrateNice).toBe(0);
    expect(await table('ops_par_after')).toBe('t');
  }, 900_000);
});
