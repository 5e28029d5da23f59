// The action bundles run the way the GitHub runner runs them (node dist/index.js; INPUT_* variables with
// hyphens kept; GITHUB_OUTPUT, GITHUB_STEP_SUMMARY and GITHUB_EVENT_PATH files) against a real test host:
// provision, deploy, rollback, initdata (sops-encrypted data, masked), and the refusals that must happen
// before any connection (hostile ref) or at the handshake (wrong host key).
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateIdentity, SecretsFile, fromPlain, type MapNode } from '../../core/secrets/index.ts';
import { downHost, sshRun, type Host } from '../hosts/index.ts';
import { appRepo, get, makeProject, readyHost, sshLogins, testConfig, testDatabase, type TestProject } from './support.ts';

const ROOT = join(import.meta.dirname, '..', '..');

interface ActionRun {
  code: number;
  stdout: string;
  outputs: Record<string, string>;
  summary: string;
}

/** Parse $GITHUB_OUTPUT: `name<<delimiter` blocks (multi-line safe) or `name=value` lines. */
function parseOutputs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^=<]+)<<(.+)$/.exec(lines[i]!);
    if (m) {
      const value: string[] = [];
      while (++i < lines.length && lines[i] !== m[2]) value.push(lines[i]!);
      out[m[1]!] = value.join('\n');
    } else if (lines[i]!.includes('=')) {
      const eq = lines[i]!.indexOf('=');
      out[lines[i]!.slice(0, eq)] = lines[i]!.slice(eq + 1);
    }
  }
  return out;
}

function runBundle(name: string, inputs: Record<string, string>, workspace: string): Promise<ActionRun> {
  const dir = mkdtempSync(join(tmpdir(), `ops-runner-${name}-`));
  const files = { GITHUB_OUTPUT: join(dir, 'output'), GITHUB_STEP_SUMMARY: join(dir, 'summary'), GITHUB_ENV: join(dir, 'env'), GITHUB_STATE: join(dir, 'state'), GITHUB_PATH: join(dir, 'path') };
  for (const f of Object.values(files)) writeFileSync(f, '');
  const event = join(dir, 'event.json');
  writeFileSync(event, JSON.stringify({ inputs }));
  mkdirSync(join(dir, 'temp'));
  const env: Record<string, string> = {
    PATH: process.env.PATH!,
    HOME: dir,
    GITHUB_ACTIONS: 'true',
    GITHUB_EVENT_NAME: 'workflow_dispatch',
    GITHUB_EVENT_PATH: event,
    GITHUB_REPOSITORY: 'etalab/catalogage',
    GITHUB_SERVER_URL: 'https://github.com',
    GITHUB_RUN_ID: '4242',
    GITHUB_ACTOR: 'octo-deployer',
    GITHUB_WORKSPACE: workspace,
    RUNNER_TEMP: join(dir, 'temp'),
    ...files,
  };
  for (const [k, v] of Object.entries(inputs)) env[`INPUT_${k.toUpperCase()}`] = v;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(ROOT, 'actions', name, 'dist', 'index.js')], { env, cwd: workspace, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stdout += d));
    child.on('close', (code) =>
      resolve({ code: code ?? 1, stdout, outputs: parseOutputs(readFileSync(files.GITHUB_OUTPUT, 'utf8')), summary: readFileSync(files.GITHUB_STEP_SUMMARY, 'utf8') }),
    );
  });
}

let host: Host;
let project: TestProject;
let sshKey: string;
let repo: string;

beforeAll(async () => {
  host = await readyHost('act');
  repo = await appRepo();
  project = makeProject('e2e', testConfig([host], repo, await testDatabase(`actions_${process.pid}`)));
  sshKey = readFileSync(host.identityFile, 'utf8');
}, 900_000);

afterAll(async () => {
  if (host) await downHost(host.name, { purge: true });
  project?.cleanup();
});

describe.sequential('action bundles, run as the runner runs them', () => {
  const common = () => ({ environment: 'e2e', 'ssh-key': sshKey, 'working-directory': project.root });

  it('provision: nothing to change on a provisioned host; a summary table', async () => {
    const r = await runBundle('provision', common(), project.root);
    expect(r.code, r.stdout).toBe(0);
    expect(r.outputs.changed).toBe('false');
    expect(r.summary).toMatch(/\| host \| item \| state \|[\s\S]*\| nginx \| ok \|/);
    // The key is masked for the runner, line by line.
    expect(r.stdout).toContain('::add-mask::');
  }, 300_000);

  it('deploy: writes sha, release and url to GITHUB_OUTPUT and a summary table to GITHUB_STEP_SUMMARY', async () => {
    const r = await runBundle('deploy', { ...common(), ref: 'v1' }, project.root);
    expect(r.code, r.stdout).toBe(0);
    const sha = execFileSync('git', ['-C', repo, 'rev-parse', 'v1^{commit}'], { encoding: 'utf8' }).trim();
    expect(r.outputs.sha).toBe(sha);
    expect(r.outputs.release).toMatch(new RegExp(`^\\d{8}T\\d{6}Z-${sha.slice(0, 12)}$`));
    expect(r.outputs.url).toBe(`http://${host.address}`);
    expect(r.outputs['previous-release']).toBe('');
    expect(r.outputs.noop).toBe('false');
    expect(r.summary).toContain(`| sha | \`${sha}\` |`);
    expect(r.summary).toMatch(/\| step \| duration \|/);
    expect(r.summary).toContain('first deploy, nothing live yet');
    expect(r.stdout).toMatch(/::group::act\d+ · build/);
    expect((await get(host)).body).toContain('Version 1.0.0');
    const audit = await sshRun(host, 'sudo tail -n1 /srv/sample/.ops/audit.log');
    expect(JSON.parse(audit.stdout)).toMatchObject({ operation: 'deploy', result: 'success', actor: 'octo-deployer', run: 'https://github.com/etalab/catalogage/actions/runs/4242' });
  }, 300_000);

  it('rollback: back to the previous release, named in the outputs', async () => {
    const v2 = await runBundle('deploy', { ...common(), ref: 'v2' }, project.root);
    expect(v2.code, v2.stdout).toBe(0);
    // the job summary says what changed: v2's commits and the migration it adds
    expect(v2.summary).toContain('**Changes** (live → target)');
    expect(v2.summary).toMatch(/→ target [0-9a-f]{12}: \d+ new commits?\n/);
    expect(v2.summary).toMatch(/migrations added: (?!none)\S/);
    const r = await runBundle('rollback', common(), project.root);
    expect(r.code, r.stdout).toBe(0);
    expect(r.outputs.release).toBe(v2.outputs['previous-release']);
    expect(r.outputs['previous-release']).toBe(v2.outputs.release);
    expect((await get(host)).body).toContain('Version 1.0.0');
  }, 300_000);

  it('refuses a hostile ref before connecting to anything', async () => {
    const before = await sshLogins(host);
    for (const ref of ['$(touch /tmp/pwned)', 'v1; rm -rf /', '--upload-pack=evil', '../../etc']) {
      const r = await runBundle('deploy', { ...common(), ref }, project.root);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/::error::invalid git ref/);
    }
    expect((await sshLogins(host)) - before).toBe(1); // only the count's own login
  }, 120_000);

  it('refuses a host whose key differs from the pinned one', async () => {
    const other = makeProject('e2e', { ...testConfig([host], repo, 'postgresql://x'), hosts: [{ name: host.name, address: host.address, host_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P' }] });
    try {
      const r = await runBundle('deploy', { ...common(), 'working-directory': other.root }, other.root);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/::error::host key of act\d+ .* does not match the pinned key/);
      expect(r.stdout).toMatch(/presented: ssh-ed25519 SHA256:/);
    } finally {
      other.cleanup();
    }
  }, 120_000);
});

describe.sequential('initdata', () => {
  let ageKey: string;
  const secretPassword = 'alice-very-secret-pw-7719';

  beforeAll(async () => {
    const id = await generateIdentity();
    ageKey = id.secret;
    const file = join(project.root, 'environments', 'e2e', 'assets', 'initdata.yml');
    mkdirSync(join(project.root, 'environments', 'e2e', 'assets'), { recursive: true });
    const data = {
      users: [
        { email: 'admin@example.org', name: 'Admin', role: 'admin', password: '__env__' },
        { email: 'alice@example.org', name: 'Alice Martin', password: secretPassword },
      ],
      tags: ['transports', 'environnement'],
    };
    await SecretsFile.create(file, fromPlain(data) as MapNode, { recipients: [id.recipient] }).save();
    expect(readFileSync(file, 'utf8')).not.toContain(secretPassword);
  });

  const inputs = () => ({ environment: 'e2e', 'ssh-key': sshKey, 'age-key': ageKey, 'working-directory': project.root });

  it('loads the encrypted data (visible through the API), masks its values, leaves no file on the host', async () => {
    const r = await runBundle('initdata', inputs(), project.root);
    expect(r.code, r.stdout).toBe(0);
    // The runner swallows ::add-mask:: commands; everything else must show the value masked.
    const printed = r.stdout.split('\n').filter((l) => !l.startsWith('::add-mask::')).join('\n');
    expect(printed + r.summary).not.toContain(secretPassword);
    expect(r.stdout).toContain(`::add-mask::${secretPassword}`);
    expect(r.summary).toMatch(/created 2 user\(s\) and 2 tag\(s\)/);
    const users = JSON.parse((await get(host, '/api/users')).body) as { users: { email: string }[] };
    expect(users.users.map((u) => u.email).sort()).toEqual(['admin@example.org', 'alice@example.org']);
    const left = await sshRun(host, 'ls /tmp | grep -c ops-initdata || true; sudo find /srv/sample/.ops/uploads -type f | wc -l');
    expect(left.stdout.trim().split('\n')).toEqual(['0', '0']);
  }, 300_000);

  it('is idempotent: a second run creates nothing new', async () => {
    const r = await runBundle('initdata', inputs(), project.root);
    expect(r.code, r.stdout).toBe(0);
    expect(r.summary).toMatch(/nothing new/);
    const users = JSON.parse((await get(host, '/api/users')).body) as { users: unknown[] };
    expect(users.users).toHaveLength(2);
  }, 300_000);

  it('fails the action when the loader fails, and still leaves no file behind', async () => {
    const bad = join(project.root, 'bad.yml');
    writeFileSync(bad, 'groups:\n  - admins\n'); // valid YAML the loader refuses (unknown section)
    const r = await runBundle('initdata', { ...inputs(), file: 'bad.yml' }, project.root);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/::error::step "initdata" on act\d+ failed[\s\S]*unknown section/);
    const left = await sshRun(host, 'ls /tmp | grep -c ops-initdata || true');
    expect(left.stdout.trim()).toBe('0');
  }, 300_000);

  it('refuses invalid YAML and a missing file before touching the host', async () => {
    writeFileSync(join(project.root, 'broken.yml'), 'users: [unclosed\n');
    const before = await sshLogins(host);
    const broken = await runBundle('initdata', { ...inputs(), file: 'broken.yml' }, project.root);
    expect(broken.stdout).toMatch(/::error::.*broken.yml is not valid YAML/);
    const missing = await runBundle('initdata', { ...inputs(), file: 'nope.yml' }, project.root);
    expect(missing.stdout).toMatch(/::error::initdata file .*nope.yml does not exist/);
    expect((await sshLogins(host)) - before).toBe(1);
  }, 120_000);
});
