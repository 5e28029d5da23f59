// The deploy fingerprint as a user meets it on a real host (sshd, supervisor, nginx) with secrets in a sops file
// changed by the real `sops` binary: a deploy of the live sha is a no-op ("already live") only when the live
// release was deployed with the same .env and the settings that shape a host; a changed secret, a changed file a
// setting names (the nginx site template), the live release's .env edited on the host, a host whose record is
// garbage, a file of the live release's commit edited or deleted on the host: deployed again, saying why; a rotated data key, a comment, a key order, the rollout's pace, a rollback to
// a release with these settings: still a no-op.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { deploy } from '../../core/ops/deploy.ts';
import { rollback } from '../../core/ops/rollback.ts';
import { generateIdentity, SecretsFile, setEnvRule, fromPlain, type MapNode } from '../../core/secrets/index.ts';
import { quote } from '../../core/shell.ts';
import { downHost, sshRun, type Host } from '../hosts/index.ts';
import { runOps } from '../support/cli.ts';
import { initRepo } from '../support/gitrepo.ts';
import { get, makeProject, pythonWebApp, readyHost, webConfig, type TestProject } from './support.ts';

/** The app: answers every path with its release and the secret its .env gave it when it started (a hash of it). */
const SERVER = pythonWebApp(
  'os.environ["OPS_RELEASE"] + " " + hashlib.sha256(TOKEN.encode()).hexdigest()[:12]',
  String.raw`import hashlib
TOKEN = ""
for line in open(".env"):
    if line.startswith("API_TOKEN="):
        TOKEN = line.split("=", 1)[1].strip().strip("'").strip('"')`,
);

let host: Host;
let project: TestProject;
let config: Record<string, unknown>;
let dir = '';
let keyFile = '';
const root = mkdtempSync(join(tmpdir(), 'ops-fingerprint-'));
const onHost = async (command: string) => (await sshRun(host, `sudo bash -c ${quote(command)}`)).stdout.trim();
const run = (options: { ref?: string; force?: boolean } = {}) => deploy(project.ctx(), project.env(), options);
/** The real sops binary on the environment's secrets file, with the environment's age key. */
const sops = (...args: string[]) => execFileSync('sops', args, { cwd: dir, env: { PATH: process.env.PATH, HOME: root, SOPS_AGE_KEY_FILE: keyFile }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
/** The first 12 hex digits of a secret's sha256, as the app answers it. */
const hash = (token: string) => createHash('sha256').update(token).digest('hex').slice(0, 12);

/** Restart the app's processes (what a crash or a reboot does) and wait until `release` answers again. */
async function restartedServes(release: string): Promise<void> {
  await onHost('supervisorctl restart all >/dev/null');
  let body = '';
  for (let i = 0; i < 100 && !body.startsWith(release); i++) {
    body = await get(host).then((x) => (x.status === 200 ? x.body : ''), () => '');
    if (!body.startsWith(release)) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  expect(body.startsWith(release), `${release} answers after a restart`).toBe(true);
}
const cli = (argv: string[]) => runOps(argv, { root: project.root, processEnv: { PATH: process.env.PATH, HOME: process.env.HOME, USER: 'e2e', NO_COLOR: '1' } });

beforeAll(async () => {
  host = await readyHost('fpr');
  const repo = join(root, 'app');
  initRepo(repo, { 'server.py': SERVER });
  config = webConfig(host, repo, {
    secrets: { age_key_file: join(root, 'age-key.txt') }, // outside the repository, where a real key lives
    env: { API_TOKEN: { secret: 'api.token' }, MODE: 'live', REGION: 'eu' },
  });
  project = makeProject('e2e', config);
  dir = join(project.root, 'environments', 'e2e');
  const id = await generateIdentity();
  keyFile = join(root, 'age-key.txt');
  writeFileSync(keyFile, id.keyFile, { mode: 0o600 });
  await setEnvRule(project.root, 'e2e', [id.recipient]);
  await SecretsFile.create(join(dir, 'secrets.sops.yaml'), fromPlain({ api: { token: 'first-token' } }) as MapNode, { recipients: [id.recipient] }).save();
}, 900_000);

afterAll(async () => {
  if (host) await downHost(host.name, { purge: true });
  project?.cleanup();
});

describe.sequential('the deploy fingerprint on a real host', () => {
  let first = '';
  it('deploys, then the same deploy is a no-op', async () => {
    const r = await run();
    first = r.release;
    expect(r.noop).toBe(false);
    expect((await run()).noop).toBe(true);
  }, 300_000);

  it('sops rotate (a new data key, the same values): still a no-op', async () => {
    const before = sops('decrypt', 'secrets.sops.yaml');
    sops('rotate', '-i', 'secrets.sops.yaml');
    expect(sops('decrypt', 'secrets.sops.yaml')).toBe(before);
    expect((await run()).noop).toBe(true);
  }, 120_000);

  it('a comment and another key order in environment.yml: still a no-op', async () => {
    const reordered = { ...config, env: { REGION: 'eu', MODE: 'live', API_TOKEN: { secret: 'api.token' } } };
    writeFileSync(join(dir, 'environment.yml'), `# a comment\n${stringify(Object.fromEntries(Object.entries(reordered).reverse()))}`);
    try {
      const r = await run();
      expect(r.hosts[0]!.notes.join('\n')).not.toMatch(/deployed again/);
      expect(r.noop).toBe(true);
    } finally {
      project.write(config);
    }
  }, 120_000);

  it('a secret changed with sops set: deployed again, saying why (ops diff says so first); the new value serves', async () => {
    sops('set', 'secrets.sops.yaml', '["api"]["token"]', '"second-token"');
    // ops diff of the live commit says what the deploy then does (its fingerprint), not "already live".
    const d = await cli(['diff', 'e2e']);
    expect(d.out, d.err).toMatch(/live, with another \.env or other settings than this deploy's: deployed again/);
    const r = await run();
    expect(r.noop).toBe(false);
    expect(r.hosts[0]!.notes.join('\n')).toMatch(/with another \.env or other settings/);
    expect((await get(host)).body).toBe(`${r.release} ${createHash('sha256').update('second-token').digest('hex').slice(0, 12)}`);
    expect((await run()).noop).toBe(true);
    expect((await cli(['diff', 'e2e'])).out).toMatch(/already live, nothing changes/);
  }, 180_000);

  it("the live release's own .env edited on the host (what its app reads after a restart is not what its deploy wrote): deployed again, saying why; the deploy's value serves", async () => {
    const live = (await onHost('readlink /srv/sample/current')).split('/').pop()!;
    await onHost("sed -i 's/^API_TOKEN=.*/API_TOKEN=edited-by-hand/' /srv/sample/current/.env");
    await restartedServes(live);
    expect((await get(host)).body).toBe(`${live} ${hash('edited-by-hand')}`);
    const r = await run();
    expect(r.noop).toBe(false);
    expect(r.hosts[0]!.notes.join('\n')).toMatch(/with another \.env or other settings/);
    expect((await get(host)).body).toBe(`${r.release} ${hash('second-token')}`);
    expect((await run()).noop).toBe(true);
  }, 180_000);

  it("a file of the live release's commit edited on the host (a hotfix), or deleted: deployed again, naming it (ops diff says so first), and the commit's code serves; what the app writes itself (a log, Python's caches, a new file) keeps the no-op", async () => {
    const live = (await onHost('readlink /srv/sample/current')).split('/').pop()!;
    const owner = await onHost('stat -c %U /srv/sample/current/server.py');
    await onHost(`runuser -u ${owner} -- bash -c 'cd /srv/sample/current && echo served >> app.log && mkdir -p __pycache__ && echo x > __pycache__/extra.cpython-311.pyc && echo data > uploads.json'`);
    expect((await run()).noop, "the app's own files").toBe(true);
    await onHost(`sed -i 's/hexdigest()\\[:12\\]/hexdigest()[:12] + " hotfix"/' /srv/sample/current/server.py`);
    await restartedServes(live);
    expect((await get(host)).body).toBe(`${live} ${hash('second-token')} hotfix`);
    expect((await cli(['diff', 'e2e'])).out).toMatch(/with its files changed on the host since it went live \(e\.g\. server\.py\): deployed again/);
    const r = await run();
    expect(r.noop).toBe(false);
    expect(r.hosts[0]!.notes.join('\n')).toMatch(/with its files changed on the host since it went live \(e\.g\. server\.py\): deployed again/);
    expect((await get(host)).body).toBe(`${r.release} ${hash('second-token')}`);
    expect((await run()).noop).toBe(true);
    await onHost('rm /srv/sample/current/server.py');
    const gone = await run();
    expect(gone.noop, 'a file deleted').toBe(false);
    expect(gone.hosts[0]!.notes.join('\n')).toMatch(/\(e\.g\. server\.py\): deployed again/);
    expect((await get(host)).body).toBe(`${gone.release} ${hash('second-token')}`);
    expect((await run()).noop).toBe(true);
  }, 300_000);

  it('the nginx site template a setting names, changed: deployed again; the new site serves', async () => {
    const template = (header: string) => `{{upstreams_include}}
server {
    listen 80{{default_server}};
    server_name {{server_name}};
    {{logs}}
    add_header X-Site ${header} always;
    {{acme_location}}
    {{slot_location}}
    {{locations}}
}
`;
    writeFileSync(join(dir, 'site.conf'), template('one'));
    const withTemplate = { ...config, nginx: { site_template: 'site.conf' } };
    project.write(withTemplate);
    try {
      expect((await run()).noop).toBe(false);
      expect(await onHost('curl -si http://127.0.0.1/ | grep -i x-site')).toMatch(/one/);
      writeFileSync(join(dir, 'site.conf'), template('two'));
      const r = await run();
      expect(r.noop).toBe(false);
      expect(await onHost('curl -si http://127.0.0.1/ | grep -i x-site')).toMatch(/two/);
    } finally {
      project.write(config);
    }
    expect((await run()).noop).toBe(false);
  }, 300_000);

  it('switch.batch_size changed: still a no-op', async () => {
    project.write({ ...config, switch: { ...(config.switch as object), batch_size: 3 } });
    try {
      expect((await run()).noop).toBe(true);
    } finally {
      project.write(config);
    }
  }, 120_000);

  it("a record that is garbage, empty, another release's, or not a file at all: deployed again, and what serves is what is reported", async () => {
    const damages = [
      'printf "garbage\\n" > /srv/sample/.ops/fingerprint',
      ': > /srv/sample/.ops/fingerprint',
      `read -r id fp < /srv/sample/.ops/fingerprint; printf '%s %s\\n' ${quote(first)} "$fp" > /srv/sample/.ops/fingerprint`,
      // Not a file: the switch cannot replace it (a warning); the release it made live is said live, and serves.
      'rm -f /srv/sample/.ops/fingerprint; mkdir /srv/sample/.ops/fingerprint',
    ];
    for (const damage of damages) {
      await onHost(damage);
      const r = await run();
      expect(r.noop, damage).toBe(false);
      expect(r.hosts[0]!.notes.join('\n'), damage).toMatch(/with no record of what it was deployed with .*: deployed again/);
      expect((await get(host)).body, damage).toContain(r.release);
      expect(await onHost('readlink /srv/sample/current'), damage).toBe(`/srv/sample/releases/${r.release}`);
      await onHost('[ ! -d /srv/sample/.ops/fingerprint ] || rmdir /srv/sample/.ops/fingerprint');
      if (!(await run()).noop) expect((await run()).noop, damage).toBe(true);
    }
  }, 600_000);

  it('rollback, then a deploy of the now-live sha: a no-op when both releases were deployed with these settings, deployed again with others; dry runs say which', async () => {
    // Two releases of one commit deployed with the same settings (the benchmark's rounds).
    if (!(await run()).noop) expect((await run()).noop).toBe(true);
    const first = (await run()).release;
    const second = await run({ force: true });
    expect(second.release).not.toBe(first);
    // Back to the first release: already live with these settings, nothing deployed.
    await rollback(project.ctx(), project.env());
    expect(await onHost('readlink /srv/sample/current')).toBe(`/srv/sample/releases/${first}`);
    const plan = await cli(['deploy', 'e2e', '--dry-run']);
    expect(plan.code, plan.err).toBe(0);
    expect(plan.out).toMatch(/already live, nothing changes/);
    const same = await run();
    expect(same.noop).toBe(true);
    expect(same.release).toBe(first);
    // With other settings, the first release live is deployed again, as another .env.
    project.write({ ...config, env: { ...(config.env as object), REGION: 'us' } });
    try {
      const dry = await cli(['deploy', 'e2e', '--dry-run']);
      expect(dry.out).toMatch(/live, with another \.env or other settings than this deploy's: deployed again/);
      const r = await run();
      expect(r.noop).toBe(false);
      expect(r.hosts[0]!.notes.join('\n')).toMatch(/with another \.env or other settings: deployed again/);
      expect((await get(host)).body).toContain(r.release);
    } finally {
      project.write(config);
    }
    // Back to these settings for the tests after this one (deployed again: the live release has the other's).
    expect((await run()).noop).toBe(false);
    expect((await run()).noop).toBe(true);
  }, 300_000);

  it("rollback from a release deployed with another secret: the release rolled back to runs with its own .env, after a restart too, and a deploy with that secret is a no-op; with the other one, deployed again", async () => {
    const token = sops('decrypt', '--extract', '["api"]["token"]', 'secrets.sops.yaml').trim();
    if (!(await run()).noop) expect((await run()).noop).toBe(true);
    const first = (await run()).release;
    sops('set', 'secrets.sops.yaml', '["api"]["token"]', '"token-of-the-release-rolled-back-from"');
    const later = await run();
    expect(later.noop).toBe(false);
    expect((await get(host)).body).toBe(`${later.release} ${hash('token-of-the-release-rolled-back-from')}`);
    sops('set', 'secrets.sops.yaml', '["api"]["token"]', JSON.stringify(token));
    await rollback(project.ctx(), project.env());
    expect(await onHost('readlink /srv/sample/current')).toBe(`/srv/sample/releases/${first}`);
    expect((await get(host)).body).toBe(`${first} ${hash(token)}`);
    // What the app reads when it starts again (a crash, a reboot, supervisorctl restart): still its own .env.
    await restartedServes(first);
    expect((await get(host)).body).toBe(`${first} ${hash(token)}`);
    // A deploy with the secret the rolled-back-to release was deployed with: nothing to do.
    expect((await run()).noop, 'rolled back to a release deployed with this secret').toBe(true);
    // With the later secret: deployed again, saying why.
    sops('set', 'secrets.sops.yaml', '["api"]["token"]', '"token-of-the-release-rolled-back-from"');
    const r = await run();
    expect(r.noop).toBe(false);
    expect(r.hosts[0]!.notes.join('\n')).toMatch(/with another \.env or other settings: deployed again/);
    expect((await get(host)).body).toBe(`${r.release} ${hash('token-of-the-release-rolled-back-from')}`);
    sops('set', 'secrets.sops.yaml', '["api"]["token"]', JSON.stringify(token));
    expect((await run()).noop).toBe(false);
    expect((await run()).noop).toBe(true);
  }, 300_000);

  it("a deploy with another secret that fails before its switch leaves the live release's .env as it was: after a restart the app still reads its own, and a deploy of the live sha with it is a no-op", async () => {
    const token = sops('decrypt', '--extract', '["api"]["token"]', 'secrets.sops.yaml').trim();
    if (!(await run()).noop) expect((await run()).noop).toBe(true);
    const live = await onHost('readlink /srv/sample/current');
    // A commit whose server exits at once, on a branch of its own (main stays the live sha).
    const repo = join(root, 'app');
    const git = (...args: string[]) => execFileSync('git', ['-C', repo, ...args], { stdio: 'pipe' });
    git('checkout', '-q', '-b', 'crashes');
    git('commit', '-q', '--allow-empty', '-m', 'crash');
    writeFileSync(join(repo, 'server.py'), 'import sys\nsys.exit(3)\n');
    git('commit', '-q', '-am', 'exits at start');
    git('checkout', '-q', 'main');
    sops('set', 'secrets.sops.yaml', '["api"]["token"]', '"token-of-a-failed-deploy"');
    await expect(run({ ref: 'crashes' })).rejects.toThrow();
    // The failed release has the secret it was given; nothing the live release reads does.
    expect(await onHost('grep -l token-of-a-failed-deploy /srv/sample/releases/*/.env | wc -l')).toBe('1');
    expect(await onHost('grep -c token-of-a-failed-deploy /srv/sample/current/.env /srv/sample/current/.ops-environ || true')).toBe('/srv/sample/current/.env:0\n/srv/sample/current/.ops-environ:0');
    await restartedServes(live.split('/').pop()!);
    expect((await get(host)).body).toBe(`${live.split('/').pop()} ${hash(token)}`);
    sops('set', 'secrets.sops.yaml', '["api"]["token"]', JSON.stringify(token));
    expect((await run()).noop).toBe(true);
  }, 300_000);

  it('a host added to the environment: it deploys, the other is a no-op; then hosts that differ (one record damaged): only that one deploys', async () => {
    const second = await readyHost('fpq');
    try {
      const both = { ...config, hosts: [...(config.hosts as object[]), { name: second.name, address: second.address, user: second.user, host_key: second.hostKey }] };
      project.write(both);
      const r = await run();
      expect(r.noop).toBe(false);
      expect(r.hosts.map((h) => [h.host, h.noop])).toEqual([[host.name, true], [second.name, false]]);
      expect((await run()).hosts.map((h) => h.noop)).toEqual([true, true]);
      await onHost('printf "garbage\\n" > /srv/sample/.ops/fingerprint');
      const again = await run();
      expect(again.hosts.map((h) => [h.host, h.noop])).toEqual([[host.name, false], [second.name, true]]);
      expect((await get(host)).body).toContain(again.hosts[0]!.release);
    } finally {
      project.write(config);
      await downHost(second.name, { purge: true });
    }
  }, 600_000);
});
