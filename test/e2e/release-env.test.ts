// A release's own .env as a user meets it on a real host (sshd, supervisor, nginx), through the cases a new user
// would not think of: a host deployed by an older version of ops (every release's .env a link to one
// shared/.env, made here by hand from releases of this one), then upgraded: its first deploy, a rollback to an
// old release and a restart, initdata there, a deploy of the old release's commit, and the pruning that removes
// the shared files with the last release linked to them. Then a rollback made with other program settings than
// the release rolled back to was deployed with, and a deploy of its commit with those: what serves must be
// what the deploy says is live, and the rollback says it ran with today's program settings. Last, a rollback to a
// release whose own .env holds a database password rotated since: the error says so.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { initdata } from '../../core/ops/initdata.ts';
import { rollback } from '../../core/ops/rollback.ts';
import { OpsError } from '../../core/errors.ts';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';
import { APP, asRoot, labEnvironment, pythonWebApp, servesSoon, webConfig } from './support.ts';

/** The app: answers with its release, the MARK its .env gave it when it started, and its program's GREETING. */
const SERVER = pythonWebApp(
  'os.environ["OPS_RELEASE"] + " " + MARK + " " + os.environ.get("GREETING", "-")',
  String.raw`MARK = "-"
for line in open(".env"):
    if line.startswith("MARK="):
        MARK = line.split("=", 1)[1].strip().strip("'").strip('"')`,
);

let repo: string;
let config: Record<string, unknown>;
const root = mkdtempSync(join(tmpdir(), 'ops-release-env-'));
const base = `/srv/${APP}`;
/** On the host, as root. */
const onHost = (command: string) => asRoot(lab.host, command);
const run = (options: { ref?: string; force?: boolean } = {}) => deploy(lab.project.ctx(), lab.project.env(), options);
/** The environment with `changes` over the base configuration (top-level keys). */
const withConfig = (changes: Record<string, unknown>) => lab.project.write({ ...config, ...changes });
/** A new commit with VERSION `version`, tagged v<version>. */
function version(v: string): string {
  commit(repo, { VERSION: `${v}\n` }, `version ${v}`);
  gitIn(repo, ['tag', `v${v}`]);
  return `v${v}`;
}

/** What answers through nginx, once `release` does (a restart or a switch takes a moment). */
const serves = (release: string) => servesSoon(lab.host, release);

const lab = labEnvironment(
  'k7a',
  (host) => {
    repo = join(root, 'app');
    initRepo(repo, { 'server.py': SERVER, VERSION: '0\n' });
    config = webConfig(host, repo, {
      release: { python_requirements: '', node_dir: '', build: 'true', migrate: 'true', keep: 2 },
      env: { MARK: 'legacy-mark' },
      initdata: { file: 'initdata.yml', command: 'printf "mark:%s\\n" "$MARK"' },
    });
    return config;
  },
  {
    ready: async ({ project }) => {
      writeFileSync(join(project.root, 'environments', 'e2e', 'initdata.yml'), 'users: []\n');
    },
  },
);

describe.sequential("a release's own .env on a real host", () => {
  it('a host upgraded from releases that share one .env: deploy, rollback to an old release and restart, initdata there, its commit deployed again; pruning removes the shared files with the last release linked to them', async () => {
    await run({ ref: version('1') });
    const old = (await run({ ref: version('2') })).release;
    // The older layout, by hand: every release's .env a link to shared/.env, the environ shared too.
    await onHost(`set -e; cd ${base}
cp -p releases/${old}/.env shared/.env; cp -p releases/${old}/.ops-environ shared/environ
for r in releases/*/; do rm -f "$r.env" "$r.ops-environ"; ln -s ../../shared/.env "$r.env"; chown -h sample:sample "$r.env"; done
supervisorctl restart all >/dev/null`);
    expect(await serves(old)).toBe(`${old} legacy-mark -`);

    // The upgraded version's first deploy: a release with its own .env (0600, the app user's); the shared one untouched.
    withConfig({ env: { MARK: 'new-mark' } });
    const first = await run({ ref: version('3') });
    expect(first.noop).toBe(false);
    expect(await serves(first.release)).toBe(`${first.release} new-mark -`);
    expect(await onHost(`stat -c '%a %U %F' ${base}/releases/${first.release}/.env ${base}/releases/${first.release}/.ops-environ`)).toBe('600 sample regular file\n600 sample regular file');
    expect(await onHost(`cat ${base}/shared/.env`)).toMatch(/^MARK=.?legacy-mark/m);
    expect(await onHost(`readlink ${base}/releases/${old}/.env`)).toBe('../../shared/.env');

    // Back to the old release: it reads the shared .env, also once its processes start again; initdata there too.
    await rollback(lab.project.ctx(), lab.project.env());
    expect(await serves(old)).toBe(`${old} legacy-mark -`);
    await onHost('supervisorctl restart all >/dev/null');
    expect(await serves(old)).toBe(`${old} legacy-mark -`);
    // The environment now says new-mark: initdata refuses to load with the rolled-back release's other values,
    // unless asked to (--live-settings).
    await expect(initdata(lab.project.ctx(), lab.project.env())).rejects.toThrow(/runs with other settings or secrets/);
    const loaded = await initdata(lab.project.ctx(), lab.project.env(), { liveSettings: true });
    expect(loaded.hosts[0]!.output).toMatch(/^mark:legacy-mark$/m);

    // Its commit deployed again with the settings it had: no record of what it was deployed with, so a new release.
    withConfig({ env: { MARK: 'legacy-mark' } });
    const again = await run({ ref: 'v2' });
    expect(again.noop).toBe(false);
    expect(again.hosts[0]!.notes.join('\n')).toMatch(/with no record of what it was deployed with .*: deployed again/);
    expect(await serves(again.release)).toBe(`${again.release} legacy-mark -`);
    expect(await onHost(`test -f ${base}/shared/.env && test -f ${base}/shared/environ && echo kept`), 'the old release is still kept (warm)').toBe('kept');
    expect((await run({ ref: 'v2' })).noop).toBe(true);

    // The old release pruned (keep: 2, no longer warm): the shared files go with it.
    withConfig({ env: { MARK: 'new-mark' } });
    const last = await run({ ref: 'v3' });
    expect(await onHost(`ls ${base}/releases`)).not.toContain(old);
    expect(await onHost(`ls -A ${base}/shared`)).not.toMatch(/^(\.env|environ)$/m);
    expect(await serves(last.release)).toBe(`${last.release} new-mark -`);
    expect((await initdata(lab.project.ctx(), lab.project.env())).hosts[0]!.output).toMatch(/^mark:new-mark$/m);
  }, 900_000);

  it('rolled back with other program settings than its release was deployed with, then its commit deployed with those: deployed again, and they serve', async () => {
    const programs = (greeting: string) => ({ programs: { web: { command: '{python} server.py {port}', port: 5100, health: '/health', env: { GREETING: greeting } } } });
    const env = { env: { MARK: 'new-mark' } };
    withConfig({ ...env, ...programs('one') });
    const a = await run({ ref: version('4') });
    expect(await serves(a.release)).toBe(`${a.release} new-mark one`);
    withConfig({ ...env, ...programs('two') });
    const b = await run({ ref: version('5') });
    expect(await serves(b.release)).toBe(`${b.release} new-mark two`);
    // The rollback starts the release with today's programs (its slot's file rewritten): it runs with GREETING=two,
    // and says so (the settings' keys, no value); its .env is b's (the same MARK): nothing said of it.
    const back = await rollback(lab.project.ctx(), lab.project.env());
    expect(back.hosts[0]!.notes).toEqual([`settings: today's, not those ${a.release} last ran with (they differ: programs)`]);
    expect(await serves(a.release)).toBe(`${a.release} new-mark two`);
    // Forward to b and back to a again with the same settings: a last ran with them, nothing to say.
    expect((await rollback(lab.project.ctx(), lab.project.env(), b.release)).hosts[0]!.notes).toEqual([]);
    expect((await rollback(lab.project.ctx(), lab.project.env(), a.release)).hosts[0]!.notes).toEqual([]);
    expect(await serves(a.release)).toBe(`${a.release} new-mark two`);
    // Its commit with the settings it was deployed with: not what runs, so not "already live".
    withConfig({ ...env, ...programs('one') });
    const r = await run({ ref: 'v4' });
    expect(r.noop, `a no-op would leave ${a.release} serving GREETING=two`).toBe(false);
    expect(await serves(r.release)).toBe(`${r.release} new-mark one`);
    expect((await run({ ref: 'v4' })).noop).toBe(true);
  }, 900_000);

  it('a rollback to a release whose .env holds a database password rotated since: it never answers; the error says it runs its own older .env and what to deploy instead; the live release serves on', async () => {
    // The database's password, on the host; the app exits at start when its .env's MARK is not it (as a failed login).
    await onHost('printf pw1 > /etc/ops-e2e-dbpass; chmod 644 /etc/ops-e2e-dbpass');
    commit(repo, { 'server.py': SERVER.replace('\nclass Handler', '\nif MARK != open("/etc/ops-e2e-dbpass").read().strip():\n    sys.exit("database: password authentication failed")\nclass Handler') }, 'checks its database password at start');
    // Not kept warm: the release rolled back to starts again, as after a reboot.
    const settings = { ...config, switch: { drain: 1, health_timeout: 30, keep_previous: false } };
    lab.project.write({ ...settings, env: { MARK: 'pw1' } });
    const c = await run({ ref: version('6') });
    expect(await serves(c.release)).toBe(`${c.release} pw1 -`);
    await onHost('printf pw2 > /etc/ops-e2e-dbpass');
    lab.project.write({ ...settings, env: { MARK: 'pw2' } });
    const d = await run({ ref: version('7') });
    expect(await serves(d.release)).toBe(`${d.release} pw2 -`);
    const e = (await rollback(lab.project.ctx(), lab.project.env()).catch((x: unknown) => x)) as OpsError;
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message).toContain(`release ${c.release} did not become healthy`);
    expect(e.message).toMatch(new RegExp(`still serves ${d.release}$`));
    expect(e.hint).toContain(`${c.release} runs its own .env, from its deploy, which differs from the one ${d.release} ran with: a secret changed since (a database password?) may keep it from answering`);
    expect(e.hint).toMatch(/ops deploy e2e --ref [0-9a-f]{40}$/);
    expect(e.hint).not.toMatch(/pw1|pw2/);
    expect(await serves(d.release)).toBe(`${d.release} pw2 -`);
  }, 900_000);
  it('a build that rewrites the release\'s .env (appends to it, copies .env.example over it): refused before the start, naming the file; the live release serves on', async () => {
    commit(repo, { 'server.py': SERVER }, 'no database check at start');
    lab.project.write(config);
    const live = await run({ ref: version('8') });
    expect(await serves(live.release)).toBe(`${live.release} legacy-mark -`);
    for (const [i, build] of ['printf "MARK=from-the-build\\n" >> .env', 'cp -f VERSION .env', 'rm -f .ops-environ'].entries()) {
      lab.project.write({ ...config, release: { ...(config.release as object), build } });
      const e = (await run({ ref: version(`9${i}`) }).catch((x: unknown) => x)) as OpsError;
      expect(e, build).toBeInstanceOf(OpsError);
      expect(e.message).toMatch(new RegExp(`: its (\\.env|\\.ops-environ) no longer hold what this deploy wrote there: something run in the release since \\(release.build, release.migrate or a before_switch hook\\) rewrote or removed it`));
      expect(e.message).toContain(`still serves ${live.release}`);
      expect(await serves(live.release)).toBe(`${live.release} legacy-mark -`);
    }
    lab.project.write(config);
  }, 900_000);
});
