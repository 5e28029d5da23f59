// The state step (core/steps/release.ts deployState) run by bash on a scratch host tree: what it reads for a
// deploy that is a no-op (the live check, nothing a deploy going on needs), for a deploy that goes on (releases,
// space, the mirror, dependency sets; no live check) and for a rollback (releases, no space or mirror). The live
// check runs for real: curl against a server of this process, ss and /proc for who answers, supervisor's socket
// (absent here: it runs no process for the slot, which the verdict must say).
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { parseState } from '../../core/ops/host-state.ts';
import { dotenvSums } from '../../core/ops/deploy-plan.ts';
import type { RenderedEnv } from '../../core/dotenv.ts';
import { parseReports, reported, reportedAll, type StepResult } from '../../core/remote/types.ts';
import { scriptText } from '../../core/remote/wrap.ts';
import { FACTS_KEYS } from '../../core/steps/facts.ts';
import { LIBRARY_KEYS, treeLibrary } from '../../core/steps/libraries.ts';
import { quote } from '../../core/shell.ts';
import { RELEASE_KEYS, deployState, receivePack } from '../../core/steps/release.ts';
import { knownCommits, packFor } from '../../core/source.ts';
import { commit, hermeticGitEnv, initRepo } from '../support/gitrepo.ts';
import { fingerprintRecords, slotConfig } from '../../core/steps/switch.ts';
import { site, upstreams } from '../../core/steps/nginx-config.ts';
import type { Step } from '../../core/remote/types.ts';
import { resolveTarget, type Target } from '../../core/target.ts';

const run = promisify(execFile);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const LIVE_SHA = 'a'.repeat(40);
const LIVE = `20261101T100000Z-${LIVE_SHA.slice(0, 12)}`;
const OLD = `20261001T100000Z-${'b'.repeat(12)}`;
const OTHER_SHA = 'c'.repeat(40);

/** What the live release was deployed with (deployFingerprint), as the switch records it. */
const FINGERPRINT = '0123456789abcdef0123456789abcdef';
/** The live release's own .env and environ, as its deploy wrote them. */
const DOTENV = { dotenv: 'TOKEN=live\nNOTE="a $b"\n', environ: 'TOKEN=live\0NOTE=a $b\0' };
/** The sha256 of those files (dotenvSums). */
const SUMS = dotenvSums(DOTENV as RenderedEnv);
/** The live release's record line after its id (fingerprintRecords): its fingerprint, the sums of the files its deploy wrote. */
const RECORD = `${FINGERPRINT} ${SUMS}`;
/** The settings alone (settingsDigest), the fifth field of a record since records have it. */
const SETTINGS = 'app=0123abcd,programs=4567ef01';
let server: Server;
let port: number;
beforeAll(async () => {
  // The live release's program, as far as HTTP goes: its health check answers 200.
  server = createServer((_, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/**
 * The environment on a scratch base directory; supervisor's and nginx's files of the app under `<base>/etc` (the
 * layout is where paths are spelt: the step reads them from there). `programEnv`: the program's environment.
 */
function env(base: string, programEnv: Record<string, string> = {}, more: Record<string, unknown> = {}): Target {
  const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'run', port, health: '/health', env: programEnv } }, routes: { '/': 'web' }, ...more }, 'test');
  const t = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: base, url: 'http://x' });
  return { ...t, layout: { ...t.layout, supervisorConf: (slot) => `${base}/etc/supervisor-${slot}.conf`, nginxSite: `${base}/etc/nginx-site`, nginxUpstreams: `${base}/etc/nginx-upstreams.conf`, selfSignedDir: `${base}/etc/ssl` } };
}

/** What a deploy of LIVE on slot blue leaves in supervisor's and nginx's files (slotConfig, site, upstreams), for `t`'s settings. */
function liveFiles(t: Target): void {
  mkdirSync(`${t.layout.base}/etc`, { recursive: true });
  writeFileSync(t.layout.supervisorConf('blue'), slotConfig(t, 'blue', `${t.layout.releases}/${LIVE}`, LIVE));
  writeFileSync(t.layout.nginxSite, site(t, false));
  writeFileSync(t.layout.nginxUpstreams, upstreams(t, 'blue', LIVE));
}

/** The live release's .env and environ as its deploy wrote them (DOTENV). */
function liveDotenv(base: string): void {
  const t = env(base);
  writeFileSync(t.layout.dotenv(`${base}/releases/${LIVE}`), DOTENV.dotenv);
  writeFileSync(t.layout.environ(`${base}/releases/${LIVE}`), DOTENV.environ);
}

/** A scratch base directory: two releases, LIVE current on slot blue (its supervisor and nginx files), provisioned, one complete dependency set. */
function host(): string {
  const base = mkdtempSync(join(tmpdir(), 'ops-state-'));
  liveFiles(env(base));
  mkdirSync(join(base, '.ops'));
  writeFileSync(join(base, '.ops', 'provisioned'), '2026-11-01T00:00:00Z\n');
  writeFileSync(join(base, '.ops', 'slot'), 'blue\n');
  writeFileSync(join(base, '.ops', 'fingerprint'), `${LIVE} ${RECORD}\n`);
  for (const [id, sha] of [[OLD, 'b'.repeat(40)], [LIVE, LIVE_SHA]]) {
    mkdirSync(join(base, 'releases', id!), { recursive: true });
    writeFileSync(join(base, 'releases', id!, 'REVISION'), `${sha}\n`);
  }
  liveDotenv(base);
  symlinkSync(join(base, 'releases', LIVE), join(base, 'current'));
  mkdirSync(join(base, 'shared', 'deps', 'venv-0123'), { recursive: true });
  writeFileSync(join(base, 'shared', 'deps', 'venv-0123', '.complete'), '');
  return base;
}

/** `step` run by bash from a file (a TLS site's state script is past the 128 KiB a single argument may hold: E2BIG). */
async function runStep(step: Step): Promise<StepResult> {
  const file = join(mkdtempSync(join(tmpdir(), 'ops-state-step-')), 'step.sh');
  writeFileSync(file, scriptText(step));
  const { stdout, stderr } = await run('bash', [file], { encoding: 'utf8' });
  return { stdout, stderr, code: 0, durationMs: 0, reports: parseReports(stdout) };
}

describe('the state step on a host (bash)', () => {
  it('a deploy of the live commit: the live check runs (health, then who answers), and nothing a deploy going on needs is read', async () => {
    const e = env(host());
    const r = await runStep(deployState(e, [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT }));
    const state = parseState(r);
    expect(state).toMatchObject({ provisioned: true, current: LIVE, liveSha: LIVE_SHA, liveChanged: false, slot: 'blue', releases: [], depsHas: [], has: [], disk: undefined });
    // Its health check answers, but supervisor runs no process for the slot: what answers is not the live release.
    expect(state.liveHealth).toContain(`port ${port} of program web is answered by pid ${process.pid}`);
    expect(state.liveHealth).toContain('while supervisor runs no process for shop-blue:shop-blue-web');
    expect(reportedAll(r, LIBRARY_KEYS.release)).toEqual([]);
  }, 30_000);

  it("a dry run's read (no shas, `deps`): the complete dependency sets, for the plan's reused or new set; without `deps`, none read", async () => {
    const base = host();
    mkdirSync(join(base, 'shared', 'deps', 'node-4567'), { recursive: true }); // not complete: not counted
    const e = env(base);
    expect(parseState(await runStep(deployState(e, undefined, { deps: true, fingerprint: FINGERPRINT }))).depsHas).toEqual(['venv-0123']);
    expect(parseState(await runStep(deployState(e, undefined, { fingerprint: FINGERPRINT }))).depsHas).toEqual([]);
  }, 30_000);

  it('a deploy going on: the runtimes the dependency sets are made with that the host lacks (runtime_missing), by a test of each path', async () => {
    const e = env(host());
    const state = parseState(await runStep(deployState({ ...e, runtime: { ...e.runtime, uv: '/nonexistent/uv', python: process.execPath } }, [OTHER_SHA])));
    expect(state.runtimesMissing).toContain('/nonexistent/uv');
    expect(state.runtimesMissing).not.toContain(process.execPath);
  }, 30_000);

  it("the live commit is its record's (root's), not the REVISION in its directory (the app's: a build may write it, a commit hold it as a link); a release made by an older ops (no record) is read from its own", async () => {
    const e = env(host());
    const rec = e.layout.record(LIVE);
    mkdirSync(rec, { recursive: true });
    writeFileSync(join(rec, 'REVISION'), `${LIVE_SHA}\n`);
    writeFileSync(join(e.layout.releases, LIVE, 'REVISION'), 'built 1796412224\n');
    writeFileSync(join(e.layout.releases, OLD, 'REVISION'), `${'c'.repeat(40)}\n`);
    const state = parseState(await runStep(deployState(e, [LIVE_SHA])));
    expect(state.liveSha).toBe(LIVE_SHA);
    expect(state.releases.map((r) => [r.id, r.sha])).toEqual([[OLD, 'c'.repeat(40)], [LIVE, LIVE_SHA]]);
  }, 30_000);

  it('the live commit deployed with another .env or settings (another fingerprint, or none on record: deployed before records were kept): live_changed, no live check, and the rest is read as for any deploy', async () => {
    for (const recorded of [`fedcba9876543210fedcba9876543210 ${SUMS}`, undefined]) {
      const base = host();
      if (recorded) writeFileSync(join(base, '.ops', 'fingerprint'), `${LIVE} ${recorded}\n`);
      else rmSync(join(base, '.ops', 'fingerprint'));
      const r = await runStep(deployState(env(base), [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT }));
      const state = parseState(r);
      expect(state).toMatchObject({ current: LIVE, liveSha: LIVE_SHA, liveChanged: true, liveUnrecorded: !recorded, liveHealth: '', depsHas: ['venv-0123'] });
      expect(state.releases.map((x) => x.id)).toEqual([OLD, LIVE]);
      expect(reported(r, FACTS_KEYS.disk)).toMatch(/^\d+ \d+ \d+ /);
    }
    // The fingerprint of another release (the one live before) is not this one's; garbage, an empty
    // record or a directory in its place are no record either: deployed again, said as no record.
    for (const damage of [`${OLD} ${FINGERPRINT}\n`, 'garbage\n', '', 'directory']) {
      const base = host();
      const file = join(base, '.ops', 'fingerprint');
      rmSync(file, { force: true });
      if (damage === 'directory') mkdirSync(file);
      else writeFileSync(file, damage);
      expect(parseState(await runStep(deployState(env(base), [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT }))), damage).toMatchObject({ liveChanged: true, liveUnrecorded: true, liveHealth: '' });
    }
  });

  it("records of several releases (a rollback put an older one live): the live release's own line counts wherever it is; a live release whose .env is a link (the shared .env of releases made before each had its own) has none", async () => {
    const base = host();
    writeFileSync(join(base, '.ops', 'fingerprint'), `${LIVE} ${RECORD}\n${OLD} ${'e'.repeat(32)}\n`);
    const same = parseState(await runStep(deployState(env(base), [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT })));
    expect(same).toMatchObject({ current: LIVE, liveChanged: false });
    expect(same.liveHealth, 'the live check ran (a no-op if healthy)').not.toBe('');
    // Its own .env (a file) is what its record says it was deployed with: still a no-op.
    expect(parseState(await runStep(deployState(env(base), undefined, { fingerprint: FINGERPRINT }))).liveChanged).toBe(false);
    // Made by an older version: its .env a link to the shared one, which a later deploy may have rewritten.
    rmSync(join(base, 'releases', LIVE, '.env'));
    symlinkSync('../../shared/.env', join(base, 'releases', LIVE, '.env'));
    expect(parseState(await runStep(deployState(env(base), [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT })))).toMatchObject({ current: LIVE, liveChanged: true, liveUnrecorded: true, liveHealth: '' });
    rmSync(join(base, 'releases', LIVE, '.env'));
    writeFileSync(join(base, '.ops', 'fingerprint'), `${OLD} ${FINGERPRINT}\n${LIVE} ${'e'.repeat(32)} ${SUMS}\n`);
    expect(parseState(await runStep(deployState(env(base), undefined, { fingerprint: FINGERPRINT })))).toMatchObject({ liveChanged: true, liveUnrecorded: false });
  });

  it('the live commit with this record, but its slot or nginx runs other settings (a rollback started it with those of its own day, a file changed by hand or missing): live_changed settings, no live check; the same files again: a no-op', async () => {
    const damages: [string, (base: string) => void][] = [
      ['its slot started with another program environment', (base) => writeFileSync(env(base).layout.supervisorConf('blue'), slotConfig(env(base, { GREETING: 'two' }), 'blue', `${base}/releases/${LIVE}`, LIVE))],
      ['the slot file of another release', (base) => writeFileSync(env(base).layout.supervisorConf('blue'), slotConfig(env(base), 'blue', `${base}/releases/${OLD}`, OLD))],
      ['nginx\'s site changed by hand', (base) => writeFileSync(env(base).layout.nginxSite, `${site(env(base), false)}# edited\n`)],
      ['nginx\'s upstreams on the other slot', (base) => writeFileSync(env(base).layout.nginxUpstreams, upstreams(env(base), 'green', LIVE))],
      // The release a cache key names ($ops_release_<app>): another's, or none (written before the file named it).
      ['nginx\'s upstreams naming another release', (base) => writeFileSync(env(base).layout.nginxUpstreams, upstreams(env(base), 'blue', OLD))],
      ['the slot file missing', (base) => rmSync(env(base).layout.supervisorConf('blue'))],
    ];
    for (const [label, damage] of damages) {
      const base = host();
      damage(base);
      const r = await runStep(deployState(env(base), [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT }));
      expect(parseState(r), label).toMatchObject({ current: LIVE, liveChanged: true, liveUnrecorded: false, liveHealth: '' });
      expect(parseState(await runStep(deployState(env(base), undefined, { fingerprint: FINGERPRINT }))).liveChanged, `${label}: the dry run's read`).toBe(true);
      liveFiles(env(base));
      expect(parseState(await runStep(deployState(env(base), [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT }))), label).toMatchObject({ liveChanged: false, liveUnrecorded: false });
    }
  });

  it("the live commit with this record and these files, but its own .env or environ not the bytes its deploy wrote (the record's sums: edited on the host, rewritten by the app, missing): live_changed settings, no live check; written back: a no-op", async () => {
    const damages: [string, (release: string, t: Target) => void][] = [
      ['.env edited by hand', (release, t) => writeFileSync(t.layout.dotenv(release), `${DOTENV.dotenv}DEBUG=1\n`)],
      ['.env rewritten by the app (the same values, reordered)', (release, t) => writeFileSync(t.layout.dotenv(release), 'NOTE="a $b"\nTOKEN=live\n')],
      ['environ with another value', (release, t) => writeFileSync(t.layout.environ(release), 'TOKEN=other\0NOTE=a $b\0')],
      ['.env missing', (release, t) => rmSync(t.layout.dotenv(release))],
      ['environ missing', (release, t) => rmSync(t.layout.environ(release))],
      ['.env a directory', (release, t) => (rmSync(t.layout.dotenv(release)), mkdirSync(t.layout.dotenv(release)))],
    ];
    for (const [label, damage] of damages) {
      const base = host();
      damage(`${base}/releases/${LIVE}`, env(base));
      const r = await runStep(deployState(env(base), [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT }));
      expect(parseState(r), label).toMatchObject({ current: LIVE, liveChanged: true, liveUnrecorded: false, liveHealth: '' });
      expect(parseState(await runStep(deployState(env(base), undefined, { fingerprint: FINGERPRINT }))).liveChanged, `${label}: the dry run's read`).toBe(true);
      rmSync(env(base).layout.dotenv(`${base}/releases/${LIVE}`), { recursive: true, force: true });
      liveDotenv(base);
      expect(parseState(await runStep(deployState(env(base), [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT }))), label).toMatchObject({ liveChanged: false, liveUnrecorded: false });
    }
  });

  it('a record written before records had sums (the fingerprint alone): the files are not compared, the fingerprint decides; another one is no record this ops can compare (an older ops fingerprinted the settings of its day)', async () => {
    const base = host();
    writeFileSync(join(base, '.ops', 'fingerprint'), `${LIVE} ${FINGERPRINT}\n`);
    writeFileSync(env(base).layout.dotenv(`${base}/releases/${LIVE}`), 'TOKEN=edited\n');
    expect(parseState(await runStep(deployState(env(base), [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT })))).toMatchObject({ liveChanged: false, liveUnrecorded: false });
    expect(parseState(await runStep(deployState(env(base), undefined, { fingerprint: 'f'.repeat(32) })))).toMatchObject({ liveChanged: true, liveUnrecorded: true });
  });

  it('the records .ops/fingerprint holds as ops f60824ff (2026-12-01) wrote them, its live release deployed again with the same environment.yml today: no record this ops can compare, never "another .env or other settings"', async () => {
    // Captured from a host provisioned and deployed (v1, then v2) by the CLI of commit f60824ff: its fingerprint
    // covered the settings of its day, with their defaults; today's has more of them, so it differs for the same file.
    const base = host();
    writeFileSync(join(base, '.ops', 'fingerprint'), `${OLD} aaef8f3b50d1330b1af4349624abd920\n${LIVE} 6cad8f9cb099a61b05c16fbbfa61d428\n`);
    for (const shas of [[LIVE_SHA], undefined]) {
      expect(parseState(await runStep(deployState(env(base), shas, { commit: shas?.[0], fingerprint: FINGERPRINT })))).toMatchObject({ liveChanged: true, liveUnrecorded: true, liveHealth: '' });
    }
  });

  it("the live commit with this record, but a file of its commit changed, gone or rewritten on the host since it went live (tree.sh): live_changed files naming it, no live check; what the build, the migrations and the app write is never compared", async () => {
    const t0 = new Date('2026-11-01T09:00:00Z'); // git archive gives every file the commit's time
    /** The live release as made (its commit's files, as createRelease runs tree_made), built and started (the build, the app), then switched to (tree_record). */
    const made = async (base: string) => {
      const e = env(base);
      const dir = `${base}/releases/${LIVE}`;
      const files: Record<string, string> = { 'server/app.py': 'print("hello")\n', 'static/app.js': 'go()\n', 'data.db': 'v1', 'version.txt': 'dev\n', 'cache/__pycache__/m.cpython-311.pyc': 'pyc', 'logs/.gitkeep': '', 'odd name\twith tab.py': 'x = 1\n', 'db.sqlite3': 'empty', 'debug.log': '' };
      for (const [path, text] of Object.entries(files)) {
        mkdirSync(join(dir, path, '..'), { recursive: true });
        writeFileSync(join(dir, path), text);
        utimesSync(join(dir, path), t0, t0);
      }
      // Its record (root's, as createRelease makes it): its commit, and the records of its files.
      const rec = e.layout.record(LIVE);
      mkdirSync(rec, { recursive: true });
      writeFileSync(join(rec, 'REVISION'), `${LIVE_SHA}\n`);
      await run('bash', ['-c', `set -euo pipefail\n${treeLibrary(e)}\ntree_made ${quote(dir)} ${quote(rec)}`]);
      // The build: its own files, and one of the commit's rewritten; the migrations and the start: a database of the commit written, Python's caches, a log.
      mkdirSync(join(dir, 'dist'));
      writeFileSync(join(dir, 'dist', 'bundle.js'), 'built()\n');
      writeFileSync(join(dir, 'version.txt'), 'v1.2.3\n');
      writeFileSync(join(dir, 'data.db'), 'v1 migrated');
      mkdirSync(join(dir, 'server', '__pycache__'));
      writeFileSync(join(dir, 'server', '__pycache__', 'app.cpython-311.pyc'), 'pyc');
      writeFileSync(join(dir, 'logs', 'app.log'), 'started\n');
      await run('bash', ['-c', `set -euo pipefail\n${treeLibrary(e)}\ntree_record ${quote(dir)} ${quote(rec)}`]);
      expect(statSync(e.layout.treeLive(rec)).mode & 0o777).toBe(0o600);
      return dir;
    };
    const state = async (base: string) => parseState(await runStep(deployState(env(base), [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT })));
    const later = new Date('2026-11-02T09:00:00Z');
    const damages: [string, string, (dir: string) => void][] = [
      ['a hotfix in the code', 'server/app.py', (dir) => writeFileSync(join(dir, 'server', 'app.py'), 'print("hotfix")\n')],
      ['an edit that keeps the size (a later mtime)', 'static/app.js', (dir) => (writeFileSync(join(dir, 'static', 'app.js'), 'no()\n'), utimesSync(join(dir, 'static', 'app.js'), later, later))],
      ['a file of the commit deleted', 'static/app.js', (dir) => rmSync(join(dir, 'static', 'app.js'))],
      ['a name with a tab', 'odd name?with tab.py', (dir) => writeFileSync(join(dir, 'odd name\twith tab.py'), 'x = 2\n')],
    ];
    for (const [label, file, damage] of damages) {
      const base = host();
      const dir = await made(base);
      expect(await state(base), `${label}: as it went live`).toMatchObject({ liveChanged: false });
      // What the app writes as it runs: caches, logs, its database, files of its own; a committed .pyc Python rewrites.
      writeFileSync(join(dir, 'logs', 'app.log'), 'started\nserved\n');
      writeFileSync(join(dir, 'data.db'), 'v1 migrated, and rows');
      writeFileSync(join(dir, 'server', '__pycache__', 'app.cpython-311.pyc'), 'pyc again');
      writeFileSync(join(dir, 'cache', '__pycache__', 'm.cpython-311.pyc'), 'rewritten');
      writeFileSync(join(dir, 'uploads.txt'), 'a new file');
      writeFileSync(join(dir, 'db.sqlite3'), 'the first rows, on a request'); // committed, written only after the switch
      writeFileSync(join(dir, 'debug.log'), 'a line');
      rmSync(join(dir, 'dist', 'bundle.js'));
      rmSync(join(dir, 'logs', '.gitkeep'));
      writeFileSync(join(dir, 'version.txt'), 'v1.2.3, the build\'s, rewritten\n'); // the build rewrote it: the app's (not compared)
      expect(await state(base), `${label}: after the app wrote its own`).toMatchObject({ liveChanged: false });
      damage(dir);
      const r = await runStep(deployState(env(base), [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT }));
      expect(parseState(r), label).toMatchObject({ current: LIVE, liveChanged: true, liveUnrecorded: false, liveChangedFile: file, liveHealth: '' });
      expect(parseState(await runStep(deployState(env(base), undefined, { fingerprint: FINGERPRINT }))).liveChangedFile, `${label}: the dry run's read`).toBe(file);
    }
    // A release made or switched to by an older version (no record of its files): they are not compared.
    const base = host();
    const dir = await made(base);
    rmSync(env(base).layout.treeLive(env(base).layout.record(LIVE)));
    writeFileSync(join(dir, 'server', 'app.py'), 'print("hotfix")\n');
    expect(await state(base)).toMatchObject({ liveChanged: false });
  }, 60_000);

  it('with TLS: the site is the one for whether the certificate is there (a deploy before it was issued, or after `ops certs`)', async () => {
    const base = host();
    const tls = env(base, {}, { domain: 'shop.example.org', tls: { mode: 'self-signed' } });
    const state = () => runStep(deployState(tls, [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT })).then(parseState);
    writeFileSync(tls.layout.nginxSite, site(tls, false));
    expect(await state(), 'no certificate yet: the site before its certificate').toMatchObject({ liveChanged: false });
    mkdirSync(tls.layout.selfSignedDir, { recursive: true });
    const certificate = (names: string[]) =>
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '5', '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`, '-keyout', `${tls.layout.selfSignedDir}/shop.example.org.key`, '-out', `${tls.layout.selfSignedDir}/shop.example.org.crt`], { stdio: 'ignore' });
    certificate(['shop.example.org']);
    expect(await state(), 'the certificate there, the site still without it').toMatchObject({ liveChanged: true, liveUnrecorded: false });
    writeFileSync(tls.layout.nginxSite, site(tls, true));
    expect(await state(), 'the site with TLS').toMatchObject({ liveChanged: false });
    // an alias added, its certificate not issued yet: the site a deploy writes then serves the domain alone over https
    const alias = env(base, {}, { domain: 'shop.example.org', aliases: ['www.shop.example.org'], tls: { mode: 'self-signed' } });
    const aliased = () => runStep(deployState(alias, [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT })).then(parseState);
    expect(await aliased(), 'the site without the alias is what a deploy writes').toMatchObject({ liveChanged: false });
    certificate(['shop.example.org', 'www.shop.example.org']);
    expect(await aliased(), 'issued: the site is to name the alias').toMatchObject({ liveChanged: true, certLacks: [] });
    writeFileSync(alias.layout.nginxSite, site(alias, true));
    expect(await aliased(), 'the site with the alias').toMatchObject({ liveChanged: false });
  });

  it('records whatever their line ending (the last line without its newline, CRLF: written by hand or an editor): the live release\'s line counts, and the switch keeps the others', async () => {
    for (const [label, text] of [
      ['no final newline', `${OLD} ${'e'.repeat(32)}\n${LIVE} ${RECORD}`],
      ['CRLF', `${OLD} ${'e'.repeat(32)}\r\n${LIVE} ${RECORD}\r\n`],
    ]) {
      const base = host();
      const file = join(base, '.ops', 'fingerprint');
      writeFileSync(file, text!);
      expect(parseState(await runStep(deployState(env(base), [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT }))), label).toMatchObject({ liveChanged: false, liveUnrecorded: false });
      const NEXT = `20261201T100000Z-${'d'.repeat(12)}`;
      mkdirSync(join(base, 'releases', NEXT));
      await run('bash', ['-c', `set -euo pipefail; release_id=${NEXT}\n${fingerprintRecords(env(base), { fingerprint: 'f'.repeat(32), dotenvSums: SUMS, settings: SETTINGS })}`]);
      expect(readFileSync(`${file}.new`, 'utf8'), label).toBe(`${OLD} ${'e'.repeat(32)}\n${LIVE} ${RECORD}\n${NEXT} ${'f'.repeat(32)} ${SUMS} ${SETTINGS}\n`);
    }
  });

  it('the switch\'s new records (fingerprintRecords): the kept releases\' lines, not the pruned ones\' nor an empty one, this release\'s last and once, 0600', async () => {
    const base = host();
    const file = join(base, '.ops', 'fingerprint');
    writeFileSync(file, `${OLD} ${'1'.repeat(32)}\n20250101T000000Z-pruned00000 ${'2'.repeat(32)}\n\n${LIVE} ${'3'.repeat(32)}\n`);
    const write = (id: string) => run('bash', ['-c', `set -euo pipefail; release_id=${id}\n${fingerprintRecords(env(base), { fingerprint: FINGERPRINT, dotenvSums: SUMS, settings: SETTINGS })}`]);
    await write(LIVE);
    expect(readFileSync(`${file}.new`, 'utf8')).toBe(`${OLD} ${'1'.repeat(32)}\n${LIVE} ${RECORD} ${SETTINGS}\n`);
    expect(statSync(`${file}.new`).mode & 0o777, "root's alone: digests of 0600 files").toBe(0o600);
    // No records yet, or a directory in their place: this release's line alone.
    rmSync(file);
    mkdirSync(file);
    await write(OLD);
    expect(readFileSync(`${file}.new`, 'utf8')).toBe(`${OLD} ${RECORD} ${SETTINGS}\n`);
  });

  it('a record with the settings alone after the sums (fifth field): the no-op still compares the fingerprint and the two sums; a sum that differs still counts', async () => {
    const base = host();
    const file = join(base, '.ops', 'fingerprint');
    writeFileSync(file, `${OLD} ${'e'.repeat(32)}\n${LIVE} ${RECORD} ${SETTINGS}\n`);
    expect(parseState(await runStep(deployState(env(base), [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT })))).toMatchObject({ liveChanged: false, liveUnrecorded: false });
    writeFileSync(file, `${LIVE} ${FINGERPRINT} ${'9'.repeat(64)} ${SUMS.split(' ')[1]} ${SETTINGS}\n`);
    expect(parseState(await runStep(deployState(env(base), [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT })))).toMatchObject({ liveChanged: true, liveUnrecorded: false });
  });

  it("a dry run's read (the fingerprint alone): live_changed only when the live release was deployed with another; no live check", async () => {
    const base = host();
    const same = parseState(await runStep(deployState(env(base), undefined, { fingerprint: FINGERPRINT })));
    expect(same).toMatchObject({ current: LIVE, liveChanged: false, liveHealth: '' });
    expect(same.releases.map((x) => x.id)).toEqual([OLD, LIVE]);
    expect(parseState(await runStep(deployState(env(base), undefined, { fingerprint: 'f'.repeat(32) }))).liveChanged).toBe(true);
  });

  it('a deploy of another commit: releases, free space, commits and dependency sets; no live check', async () => {
    const e = env(host());
    const r = await runStep(deployState(e, [OTHER_SHA], { commit: OTHER_SHA }));
    const state = parseState(r);
    expect(state).toMatchObject({ provisioned: true, current: LIVE, liveSha: LIVE_SHA, liveHealth: '', depsHas: ['venv-0123'] });
    expect(state.releases.map((x) => [x.id, x.sha])).toEqual([[OLD, 'b'.repeat(40)], [LIVE, LIVE_SHA]]);
    expect(reported(r, RELEASE_KEYS.live_health)).toBeUndefined();
    expect(reported(r, FACTS_KEYS.disk)).toMatch(/^\d+ \d+ \d+ /);
  });

  it('a rollback (no commits to send): releases and history, no free space, mirror or dependency sets', async () => {
    const e = env(host());
    const r = await runStep(deployState(e));
    const state = parseState(r);
    expect(state.releases.map((x) => x.id)).toEqual([OLD, LIVE]);
    expect(state).toMatchObject({ current: LIVE, liveSha: LIVE_SHA, slot: 'blue', depsHas: [], disk: undefined, liveHealth: '' });
  });

  it("a mirror fed from a shallow clone: the commits it holds without their history are reported (its shallow file, and a pinned commit whose parent it lacks, as older versions left it), and receive records the ones a pack brings without their parents", async () => {
    const g = (cwd: string, args: string[], input?: string | Buffer) => execFileSync('git', args, { cwd, input, env: { ...hermeticGitEnv(cwd) }, maxBuffer: 1 << 26 });
    const work = mkdtempSync(join(tmpdir(), 'ops-shallow-'));
    const up = join(work, 'up');
    initRepo(up, { a: '1\n' });
    const second = commit(up, { a: '2\n' }, 'second');
    const third = commit(up, { a: '3\n' }, 'third');
    const clone = join(work, 'clone');
    g(work, ['clone', '-q', '--depth', '1', `file://${up}`, clone]);
    // As a deploy of an older version left it: the shallow clone's commit, pinned, its parent missing, no shallow file.
    const base = host();
    const e = env(base);
    g(base, ['init', '-q', '--bare', e.layout.mirror]);
    const legacy = (await packFor(clone, third, [])).bytes;
    g(base, ['--git-dir', e.layout.mirror, 'index-pack', '--stdin', '--fix-thin'], legacy);
    g(base, ['--git-dir', e.layout.mirror, 'update-ref', `refs/ops/sha/${third}`, third]);
    expect(parseState(await runStep(deployState(e, [OTHER_SHA], { commit: OTHER_SHA }))).shallow).toEqual([third]);
    // A thin pack that leans on the history such a mirror lacks (here: nothing sent, the parent taken as there):
    // receive reports the commit incomplete and pins nothing, for the runner to send it whole.
    const leaning = await packFor(up, second, [third]);
    writeFileSync(join(base, 'thin.pack'), leaning.bytes);
    const received = await runStep(receivePack(e, [join(base, 'thin.pack')], [second]));
    expect(reportedAll(received, RELEASE_KEYS.incomplete)).toEqual([second]);
    expect(g(base, ['--git-dir', e.layout.mirror, 'for-each-ref', '--format=%(refname)']).toString().trim()).toBe(`refs/ops/sha/${third}`);

    // The same through receive from a shallow clone: the commit recorded as shallow; a full pack of its parent then
    // brings the history, and the mirror is whole (git fsck).
    const base2 = host();
    const e2 = env(base2);
    g(base2, ['init', '-q', '--bare', e2.layout.mirror]);
    const pack = await packFor(clone, third, []);
    expect(pack.shallow).toEqual([third]);
    writeFileSync(join(base2, 'p1.pack'), pack.bytes);
    await runStep(receivePack(e2, [join(base2, 'p1.pack')], [third], [], pack.shallow));
    expect(readFileSync(join(e2.layout.mirror, 'shallow'), 'utf8')).toBe(`${third}\n`);
    const state = parseState(await runStep(deployState(e2, [second], { commit: second })));
    expect(state).toMatchObject({ known: [third], shallow: [third], has: [] });
    // A full clone's pack of the parent, with the host's shallow commit as git's --shallow: the parent itself is sent.
    const older = await packFor(up, second, await knownCommits(up, state.known), await knownCommits(up, state.shallow));
    expect(older.shallow).toEqual([]);
    writeFileSync(join(base2, 'p2.pack'), older.bytes);
    await runStep(receivePack(e2, [join(base2, 'p2.pack')], [second], [], older.shallow));
    expect(g(base2, ['--git-dir', e2.layout.mirror, 'archive', second, 'a']).includes('2\n')).toBe(true);
    // Without --shallow, the pack would have been empty: git takes a commit the host holds to come with its history.
    expect((await packFor(up, second, [third])).bytes.length).toBeLessThan(100);
  }, 30_000);

  it('a current that is not a release directory has no live commit', async () => {
    const base = host();
    const e = env(base);
    await run('ln', ['-sfn', join(base, 'elsewhere'), join(base, 'current')]);
    const state = parseState(await runStep(deployState(e, [LIVE_SHA], { commit: LIVE_SHA, fingerprint: FINGERPRINT })));
    expect(state).toMatchObject({ current: 'elsewhere', liveSha: '', liveHealth: '', liveChanged: false });
  });
});
