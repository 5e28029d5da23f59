// Issue 5's checks on a real provisioned Debian host: v1 → v2 without a failed request, rollback in
// seconds, every failure leaving v1 serving byte for byte, locks (concurrent, killed runner), no-op
// redeploys over one SSH connection, dependencies reused on code-only changes.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { auditLog, breakLock, getLockStatus, listReleases } from '../../core/ops/records.ts';
import { rollback } from '../../core/ops/rollback.ts';
import { MemoryReporter } from '../../core/report.ts';
import { downHost, sshRun, type Host } from '../hosts/index.ts';
import { runOps, spawnOps } from '../support/cli.ts';
import { startLoad } from '../support/load.ts';
import { appRepo, asRoot, get, makeProject, readyHost, sshLogins, testConfig, testDatabase, untilHolderGone, type TestProject } from './support.ts';


let host: Host;
let project: TestProject;
let v1Page = '';
let v1Release = '';

beforeAll(async () => {
  host = await readyHost('dep');
  const db = await testDatabase(`deploy_${process.pid}`);
  project = makeProject('e2e', testConfig([host], await appRepo(), db));
}, 900_000);

afterAll(async () => {
  if (host) await downHost(host.name, { purge: true });
  project?.cleanup();
});

const run = (ref: string, options: { force?: boolean } = {}) => deploy(project.ctx(), project.env(), { ref, ...options });

describe.sequential('deploy on a provisioned host', () => {
  // The first deploy on a fresh host installs the app's whole dependency sets (pip and npm, from the lab's
  // caches) and builds the client: minutes on a busy machine, so apart from the timed scenarios.
  it('deploys v1 on a fresh host, installing its dependencies', async () => {
    const first = await run('v1');
    expect(first.hosts[0]!.previous).toBe('');
    expect(first.hosts[0]!.notes).toEqual(expect.arrayContaining(['dependencies: python installed (uv)', 'dependencies: node installed']));
    const page = await get(host);
    expect(page.status).toBe(200);
    expect(page.body).toContain('Version 1.0.0');
    v1Page = page.body;
    v1Release = first.release;
  }, 900_000);

  it('deploys v2 under a steady request stream without a single failed request', async () => {
    const load = startLoad(`http://${host.address}/`, 10);
    await new Promise((r) => setTimeout(r, 500));
    const second = await run('v2');
    await new Promise((r) => setTimeout(r, 500));
    const stats = await load.stop();
    expect(stats.sent).toBeGreaterThan(50);
    expect(stats.failures).toEqual({});
    expect(stats.failed).toBe(0);
    expect(second.previous).toBe(v1Release);
    expect((await get(host)).body).toContain('Version 2.0.0');
    // v1 → v2 bumps only the app's own version in the lockfile: a code-only change, nothing reinstalled.
    expect(second.hosts[0]!.notes).toEqual(expect.arrayContaining(['dependencies: python reused', 'dependencies: node reused']));
  }, 180_000);

  it('the settings reach the running API and client unchanged: sha256 on their debug sockets, reachable only from the host', async () => {
    const r = await sshRun(
      host,
      [
        'slot=$(cat /srv/sample/.ops/slot)',
        'if [ "$slot" = blue ]; then api=3579; web=3000; else api=3580; web=3001; fi',
        'sudo curl -sf --unix-socket /srv/sample/current/.debug/api-$api.sock http://localhost/settings',
        'sudo curl -sf --unix-socket /srv/sample/current/.debug/client-$web.sock http://localhost/settings',
        'sudo stat -c "%a %U" /srv/sample/current/.debug',
      ].join('\n'),
    );
    const [api, web, perms] = r.stdout.trim().split('\n');
    const sha = (v: string) => createHash('sha256').update(v, 'utf8').digest('hex');
    const env = Object.entries(project.env().config.env);
    const apiSeen = JSON.parse(api!).sha256 as Record<string, string>;
    const webSeen = JSON.parse(web!).sha256.runtime as Record<string, string>;
    // Every value of the environment's .env, as each side's own parser read it (python-dotenv through
    // pydantic-settings; Node's dotenv), byte for byte: TOOLS_PASSWORDS' JSON double quotes included.
    expect(env.length).toBeGreaterThanOrEqual(3);
    for (const [name, value] of env) {
      expect(typeof value, `${name}: the test environment holds plain values`).toBe('string');
      expect(apiSeen[name], `${name} (API)`).toBe(sha(value as string));
      expect(webSeen[name], `${name} (client)`).toBe(sha(value as string));
    }
    expect(perms).toBe('700 sample');
    // nginx serves no such thing: the debug endpoints are not part of the site.
    expect((await get(host, '/settings')).status).toBe(404);
    expect((await get(host, '/api/settings')).status).toBe(404);
  }, 60_000);

  // Timings are measured by the benchmark (npm run bench); tests only guard against gross regressions.
  it('rolls back to v1 in seconds, through the warm previous slot', async () => {
    const started = Date.now();
    const done = rollback(project.ctx(), project.env());
    let servedAfter = -1;
    while (servedAfter < 0 && Date.now() - started < 20_000) {
      if ((await get(host).catch(() => ({ body: '' }))).body.includes('Version 1.0.0')) servedAfter = Date.now() - started;
      else await new Promise((r) => setTimeout(r, 50));
    }
    const result = await done;
    expect(servedAfter).toBeGreaterThan(0);
    expect(servedAfter).toBeLessThan(8000);
    // One step after connecting: the lock step took the lock, chose v1 on the host, started (reused) it, switched, marked, audited, let go.
    expect(result.hosts[0]!.steps.map((s) => s.name)).toEqual(['lock + start blue + switch']);
    expect(result.hosts[0]!.previous).not.toBe(result.hosts[0]!.release);
    expect((await get(host)).body).toBe(v1Page);
    const list = await listReleases(project.ctx(), project.env());
    const statuses = Object.fromEntries(list[0]!.releases.map((r) => [r.ref, r.status]));
    expect(statuses).toMatchObject({ v1: 'current', v2: 'abandoned' });
  }, 60_000);

  it('a dry run of v2 with v1 live lists v2\'s commits and its new migration, and ops diff says the same; nothing changes', async () => {
    const repo = await appRepo();
    const git = (...args: string[]) => execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8' }).trim();
    const [v1, v2] = [git('rev-parse', 'v1^{commit}'), git('rev-parse', 'v2^{commit}')];
    const subjects = git('log', '--format=%s', 'v1..v2').split('\n').filter(Boolean);
    expect(subjects.length).toBeGreaterThan(0);
    const releasesBefore = await listReleases(project.ctx(), project.env());
    const auditBefore = await auditLog(project.ctx(), project.env(), 100);
    const cli = (...argv: string[]) => runOps(argv, { root: project.root, processEnv: { PATH: process.env.PATH, HOME: process.env.HOME, USER: 'e2e', NO_COLOR: '1' } });

    const plan = await cli('deploy', 'e2e', '--ref', 'v2', '--dry-run');
    expect(plan.code, plan.err).toBe(0);
    expect(plan.out).toContain(`${host.name}: live ${v1.slice(0, 12)}`);
    expect(plan.out).toContain(`→ target ${v2.slice(0, 12)}: ${subjects.length} new commit`);
    for (const s of subjects) expect(plan.out).toContain(s);
    // the migration v2 adds (SQL file or alembic revision: found either way)
    const migrations = /migrations added: (.+)/.exec(plan.out)?.[1] ?? '';
    expect(migrations).not.toBe('none');
    expect(migrations.split(', ').every((m) => /(migrations|versions)\//.test(m))).toBe(true);
    expect(git('diff', '--name-only', '--diff-filter=A', 'v1', 'v2').split('\n')).toEqual(expect.arrayContaining(migrations.split(', ')));

    const diff = await cli('diff', 'e2e', '--ref', 'v2');
    expect(diff.code, diff.err).toBe(0);
    expect(diff.out).toContain(`migrations added: ${migrations}`);
    expect(diff.out).not.toContain('release ');
    const json = JSON.parse((await cli('diff', 'e2e', '--ref', 'v2', '--json')).out) as { changes: { change: { relation: string; live: string } }[] };
    expect(json.changes[0]!.change).toMatchObject({ relation: 'ahead', live: v1 });

    expect(await listReleases(project.ctx(), project.env())).toEqual(releasesBefore);
    expect(await auditLog(project.ctx(), project.env(), 100)).toEqual(auditBefore);
  }, 120_000);

  it('a dry run lists a commit whose subject holds a terminal escape sequence (an outside contributor wrote it) as visible text, not sent raw to the terminal', async () => {
    const repo = await appRepo();
    const git = (...args: string[]) => execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8' }).trim();
    // a commit on top of v2 on a branch of its own (plumbing: the repository's checkout is left as it is)
    const sha = git('commit-tree', 'v2^{tree}', '-p', 'v2^{commit}', '-m', 'fix \x1b]0;pwned\x07typo\x1b[2J');
    git('update-ref', 'refs/heads/escape-subject', sha);
    const cli = (...argv: string[]) => runOps(argv, { root: project.root, processEnv: { PATH: process.env.PATH, HOME: process.env.HOME, USER: 'e2e', NO_COLOR: '1' } });
    const plan = await cli('deploy', 'e2e', '--ref', 'escape-subject', '--dry-run');
    expect(plan.code, plan.err).toBe(0);
    expect(plan.out).toContain('fix \\x1b]0;pwned\\x07typo\\x1b[2J');
    expect(plan.out + plan.err).not.toContain('\x1b');
    // --json keeps the subject exact (JSON escapes it)
    const json = await cli('deploy', 'e2e', '--ref', 'escape-subject', '--dry-run', '--json');
    expect(json.code, json.err).toBe(0);
    expect(json.out).toContain('fix \\u001b]0;pwned\\u0007typo\\u001b[2J');
  }, 120_000);

  it('the live sha with a changed .env value is deployed again, not reported as already live; then it is a no-op again', async () => {
    const config = testConfig([host], await appRepo(), '');
    const good = { ...config, env: project.env().config.env };
    project.write({ ...good, env: { ...good.env, OPS_E2E_MARK: `changed-${process.pid}` } });
    try {
      // The dry run says so too (it reads the host's record of what the live release was deployed with).
      const dry = await deploy(project.ctx(), project.env(), { ref: 'v1', dryRun: true });
      expect(dry.changes.map((c) => c.live.changed)).toEqual([true]);
      const r = await run('v1');
      expect(r.noop).toBe(false);
      // v1 went live by the rollback above, with the record of its own deploy: another .env than this one's.
      expect(r.hosts[0]!.notes.join('\n')).toMatch(/is live \(\S+\) with another \.env or other settings: deployed again/);
      expect((await sshRun(host, `sudo grep -c 'OPS_E2E_MARK=.*changed-${process.pid}' /srv/sample/current/.env`)).stdout.trim()).toBe('1');
      expect((await run('v1')).noop).toBe(true);
    } finally {
      project.write(good);
    }
    // Back to the settings before: deployed again too (what serves is what was asked), as another .env.
    const back = await run('v1');
    expect(back.noop).toBe(false);
    expect(back.hosts[0]!.notes.join('\n')).toMatch(/is live \(\S+\) with another \.env or other settings: deployed again/);
  }, 300_000);

  it('redeploys the live sha as a no-op (health verified, nothing run), over one SSH connection', async () => {
    const before = await sshLogins(host);
    const started = Date.now();
    const r = await run('v1');
    const elapsed = Date.now() - started;
    const after = await sshLogins(host);
    expect(r.noop).toBe(true);
    expect(elapsed).toBeLessThan(8000);
    expect(r.hosts[0]!.steps).toEqual([]); // lock, state and health ran in the lock step; unlock wrote the audit line
    expect(after - before - 1).toBe(1); // minus the login of the second count itself
  }, 60_000);

  const failures: [string, RegExp][] = [
    // alembic's own report (the app's output: its last lines travel in the error), the migration rolled back.
    ['broken-migration', /step "migrate" on .* failed[\s\S]*column "missing_column" of relation "catalog_entries" does not exist/],
    // vite (rollup) names the file and position of the syntax error.
    ['broken-build', /step "build" on .* failed[\s\S]*src\/lib\/format\.js \(3:\d+\): Expected/],
    // the program's line in its log's section, or in the verdict's quote of that log (then not shown twice)
    ['crash-on-start', /^(?=[\s\S]*exits at start on purpose)[\s\S]*did not become healthy on slot \w+: (supervisor gave up|no healthy answer)/],
    ['never-healthy', /did not become healthy on slot .*: no healthy answer within 10s from server:\d+:\/health/],
  ];
  // never-healthy waits for the whole health timeout: a short one for that case.
  const overrides: Record<string, Record<string, unknown>> = { 'never-healthy': { switch: { health_timeout: 10, drain: 10 } } };
  it.each(failures)('%s: fails clearly and v1 keeps serving, byte for byte', async (ref, message) => {
    const config = testConfig([host], await appRepo(), '');
    const good = { ...config, env: project.env().config.env };
    if (overrides[ref]) project.write({ ...good, ...overrides[ref] });
    const err = await run(ref)
      .catch((e: Error) => e)
      .finally(() => project.write(good));
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toMatch(/still serves .*; nothing was switched/);
    expect((await get(host)).body).toBe(v1Page);
  }, 180_000);

  it('an invalid nginx template fails with nginx\'s own message, and v1 keeps serving', async () => {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(project.root, 'environments', 'e2e', 'broken.conf'), 'server {\n    listen 80;\n    no_such_directive on;\n}\n');
    const config = testConfig([host], await appRepo(), '');
    const good = project.env().config.env;
    project.write({ ...config, env: good, nginx: { site_template: 'broken.conf' } });
    try {
      const err = await run('v2').catch((e: Error) => e);
      expect((err as Error).message).toMatch(/nginx rejected the new configuration[\s\S]*unknown directive "no_such_directive"/);
      expect((await get(host)).body).toBe(v1Page);
    } finally {
      project.write({ ...config, env: good });
    }
  }, 120_000);

  it('a deploy killed with SIGKILL leaves the site serving; the next run reports the stale lock and, once released, succeeds', async () => {
    // The CLI as users run it (its launcher runs in this very process, so SIGKILL kills the runner itself).
    const ops = await spawnOps(['deploy', 'e2e', '--ref', 'deps-changed'], project.root, (out) => /· (python|node) dependencies/.test(out), 'the deploy reaching its dependencies step', 60_000);
    await ops.stop('SIGKILL');
    try {
      expect((await get(host)).body).toBe(v1Page);
      await asRoot(host, untilHolderGone()); // sshd ended the dead run's session
      const err = await run('v2').catch((e: Error) => e);
      expect((err as Error).message).toMatch(/stale lock on .*, left by a deploy run by .*, which is no longer connected/);
      expect((err as { hint?: string }).hint).toMatch(/ops lock release e2e/);
    } finally {
      const released = await breakLock(project.ctx(), project.env());
      expect(released[0]!.lock.state).toBe('stale');
    }
    const ok = await run('v2');
    expect(ok.hosts[0]!.release).toMatch(/-[0-9a-f]{12}$/);
    expect((await get(host)).body).toContain('Version 2.0.0');
  }, 180_000);

  it('two deploys at once: one fails naming the holder, never both run', async () => {
    const results = await Promise.allSettled([run('v1'), new Promise((r) => setTimeout(r, 300)).then(() => run('deps-changed'))]);
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(failed).toHaveLength(1);
    expect(String(failed[0]!.reason.message)).toMatch(/is locked on .* by a deploy run by/);
    expect((await get(host)).body).toContain('Version 1.0.0');
  }, 180_000);

  it('a SIGTERM (a cancelled workflow) stops the run, releases the lock and records the interruption', async () => {
    const ops = await spawnOps(['deploy', 'e2e', '--ref', 'deps-changed'], project.root, (out) => out.includes('· release'), 'the deploy reaching its release step', 60_000);
    expect(await ops.stop('SIGTERM')).toBe(143);
    const out = ops.out();
    // Said with the steps it cut off (the release step, or the dependency sets and the build after it).
    expect(out).toMatch(new RegExp(`SIGTERM received(: releasing the lock and stopping| during [^:\\n]+ on ${host.name}: stopping them, releasing the lock)`));
    const locks = await getLockStatus(project.ctx(), project.env());
    expect(locks[0]!.lock.state).toBe('free');
    const audit = await auditLog(project.ctx(), project.env(), 3);
    expect(audit[0]!.entries.map((e) => e.message)).toContainEqual(expect.stringMatching(/^interrupted by SIGTERM( during .+ on \S+)?(; \S+ did not go live, (\S+ is still live|no release was live before))?$/));
    expect((await get(host)).body).toContain('Version 1.0.0');
  }, 180_000);

  it('a SIGTERM while the migration runs: it is named as cut off part-way, with what to check; the migration process is gone, the lock free, v1 serves', async () => {
    const config = testConfig([host], await appRepo(), '');
    const good = { ...config, env: project.env().config.env };
    // A migration slow to start (a lock wait, a long data change): its own marker to look for on the host.
    project.write({ ...good, release: { migrate: `sleep 77${process.pid % 10} && make migrate` } });
    try {
      const ops = await spawnOps(['deploy', 'e2e', '--ref', 'v2', '--force'], project.root, (out) => out.includes('· migrate'), 'the deploy reaching its migration', 240_000);
      // The migration's command under way on the host (its step began a moment before).
      await sshRun(host, `for i in $(seq 300); do pgrep -f '[s]leep 77${process.pid % 10}' >/dev/null && exit 0; sleep 0.1; done; echo 'the migration never started' >&2; exit 1`);
      expect(await ops.stop('SIGTERM')).toBe(143);
      const out = ops.out();
      expect(out).toContain(`SIGTERM received during migrate on ${host.name}: stopping them, releasing the lock`);
      expect(out).toMatch(/the migration was stopped part-way: .*check the schema/);
      expect((await sshRun(host, `pgrep -f '[s]leep 77${process.pid % 10}' || true`)).stdout.trim()).toBe('');
      expect((await getLockStatus(project.ctx(), project.env()))[0]!.lock.state).toBe('free');
      expect((await auditLog(project.ctx(), project.env(), 3))[0]!.entries.map((e) => e.message)).toContainEqual(expect.stringMatching(new RegExp(`^interrupted by SIGTERM during migrate on ${host.name}; \\S+ did not go live, (\\S+ is still live|no release was live before)$`)));
      expect((await get(host)).body).toContain('Version 1.0.0');
    } finally {
      project.write(good);
    }
  }, 300_000);

  it('a lockfile change installs dependencies again, then reuses them', async () => {
    const changed = await run('deps-changed');
    expect(changed.hosts[0]!.notes).toContain('dependencies: python installed (uv)');
    const reporter = new MemoryReporter();
    const back = await deploy(project.ctx(reporter), project.env(), { ref: 'v1' });
    expect(back.hosts[0]!.notes).toEqual(expect.arrayContaining(['dependencies: python reused', 'dependencies: node reused']));
    // Many deploys later, the host keeps `release.keep` (5) good releases, the live one among them, and at most
    // `release.keep_failed` (2) failed or abandoned ones; each says why it is kept.
    const list = await listReleases(project.ctx(), project.env());
    expect(list[0]!.releases.every((r) => r.kept)).toBe(true);
    expect(list[0]!.releases.filter((r) => /^(live|good)/.test(r.kept!)).length).toBeLessThanOrEqual(5);
    expect(list[0]!.releases.filter((r) => /keep_failed/.test(r.kept!)).length).toBeLessThanOrEqual(2);
    expect(list[0]!.releases.filter((r) => r.status === 'current')).toHaveLength(1);
  }, 600_000); // two deploys, the first installing a whole dependency set again
});
