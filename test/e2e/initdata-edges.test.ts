// initdata on a real host as a team meets it: before any release is live, a large data file with what YAML
// allows (anchors used many times, multi-line strings, non-ASCII), a loader that fails half-way after printing a
// secret of the (sops-encrypted) file, a loader slow to stop at the time limit, and a run while a deploy holds the
// lock. Whatever happens: the file reaches the loader whole and private to the app user, no secret reaches the log,
// no copy stays on the host, and no loader goes on writing once its run has ended.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { initdata } from '../../core/ops/initdata.ts';
import { withSession } from '../../core/ops/hosts.ts';
import { withLock } from '../../core/ops/locked.ts';
import { runInitdata } from '../../core/steps/initdata.ts';
import { generateIdentity, SecretsFile, fromPlain, type MapNode } from '../../core/secrets/index.ts';
import { sshRun } from '../hosts/index.ts';
import { initRepo } from '../support/gitrepo.ts';
import { runOps, spawnOps } from '../support/cli.ts';
import { APP, labEnvironment, pythonWebApp, webConfig } from './support.ts';

// The loader: what it was given (mode and owner of the file and its directory, size, sha256), then, for a file
// that asks for it, a failure half-way that prints a secret of the file (as a loader's error message would).
const LOADER = String.raw`#!/bin/bash
set -euo pipefail
f=$1
echo "file $(stat -c '%a %U' "$f") dir $(stat -c '%a %U' "$(dirname "$f")") bytes $(wc -c < "$f") sha256 $(sha256sum < "$f" | cut -c1-64)"
if grep -q '^linger: true' "$f"; then
  # a loader slow to stop: it ignores SIGTERM, and writes (as to the database) once its sleep is over
  trap '' TERM
  echo "loading"
  sleep 12
  touch /tmp/lingered-ops-initdata
fi
if grep -q '^fail: true' "$f"; then
  echo "loaded 1 of 2 users"
  echo "initdata: user bob: cannot use password $(sed -n 's/^ *password: //p' "$f")" >&2
  exit 3
fi
`;

let ageKey: string;
let recipient: string;
const root = mkdtempSync(join(tmpdir(), 'ops-initdata-edges-'));
const SECRET = 'bob-pw-été-4471-very-secret';
const dataFile = () => join(lab.project.root, 'environments', 'e2e', 'assets', 'initdata.yml');
const ctx = () => ({ ...lab.project.ctx(), processEnv: { ...lab.project.ctx().processEnv, SOPS_AGE_KEY: ageKey } });
/** What initdata may leave on the host: its private directories under /tmp, files under the uploads directory. */
const leftovers = async () => (await sshRun(lab.host, `sudo bash -c 'ls -d /tmp/ops-initdata-* 2>/dev/null; find /srv/${APP}/.ops/uploads -type f 2>/dev/null; true'`)).stdout.trim();
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const lab = labEnvironment(
  'k8a',
  (host) => {
    const repo = join(root, 'app');
    initRepo(repo, { 'server.py': pythonWebApp('"ok"'), 'tools/load.sh': LOADER });
    return webConfig(host, repo, { initdata: { command: 'bash tools/load.sh {file}' } });
  },
  {
    ready: async ({ project }) => {
      const id = await generateIdentity();
      ageKey = id.secret;
      mkdirSync(join(project.root, 'environments', 'e2e', 'assets'));
      recipient = id.recipient;
    },
  },
);

describe.sequential('initdata on a real host', () => {
  it('before any release is live: refused, saying to deploy first, nothing sent', async () => {
    writeFileSync(dataFile(), 'users: []\n');
    const e = await initdata(ctx(), lab.project.env()).then(() => undefined, (x: Error & { hint?: string }) => x);
    expect(e?.message).toBe(`no release is live on ${lab.host.name} yet`);
    expect(e?.hint).toBe('deploy first: ops deploy e2e');
    expect(await leftovers()).toBe('');
  }, 120_000);

  it('a large file with anchors used many times, multi-line strings and non-ASCII: whole, private to the app user, then gone', async () => {
    await deploy(lab.project.ctx(), lab.project.env());
    let text = '# données initiales\ndefaults: &user {role: user, password: __env__}\nnote: |\n  première ligne\n  deuxième ligne — “quotes”\nusers:\n';
    for (let i = 0; text.length < 3_000_000; i++) text += `  - <<: *user\n    email: user${i}@example.org\n    name: "Zoë Ñandú ${i} 日本"\n    bio: >\n      folded text ${i}\n      continues\n`;
    writeFileSync(dataFile(), text);
    const r = await initdata(ctx(), lab.project.env());
    expect(r.hosts[0]!.output).toBe(`file 600 ${APP} dir 700 ${APP} bytes ${Buffer.byteLength(text)} sha256 ${sha256(text)}`);
    expect(await leftovers()).toBe('');
  }, 300_000);

  it('a loader failing half-way, printing a secret of the encrypted file: the run fails, the secret masked, nothing left', async () => {
    await SecretsFile.create(dataFile(), fromPlain({ fail: true, users: [{ email: 'bob@example.org', password: SECRET }] }) as MapNode, { recipients: [recipient] }).save({}, existsSync(dataFile()) ? readFileSync(dataFile(), 'utf8') : null); // over the plain file the tests before wrote
    expect(readFileSync(dataFile(), 'utf8')).not.toContain(SECRET);
    const r = await runOps(['initdata', 'e2e'], { root: lab.project.root, processEnv: ctx().processEnv });
    expect(r.code, r.err).toBe(1);
    expect(r.err).toMatch(/step "initdata" on .* failed/);
    expect(r.err).toContain('cannot use password ***');
    expect(r.out + r.err).not.toContain(SECRET);
    expect(await leftovers()).toBe('');
  }, 300_000);

  /** The slow loader (sleep 12, then it writes /tmp/lingered-ops-initdata) stopped with its run: not running, its file never made by 14 s after `started`, nothing of the run left. */
  async function loaderGone(started: number): Promise<void> {
    expect((await sshRun(lab.host, `pgrep -u ${APP} -f 'sleep 12' || true`)).stdout.trim()).toBe('');
    await new Promise((r) => setTimeout(r, Math.max(0, started + 14_000 - Date.now())));
    expect((await sshRun(lab.host, 'ls /tmp/lingered-ops-initdata 2>/dev/null || true')).stdout.trim()).toBe('');
    expect(await leftovers()).toBe('');
  }
  it('a loader slow to stop (it ignores SIGTERM) at the step\'s time limit: stopped with the step, not left writing after it', async () => {
    const c = ctx();
    const env = lab.project.env();
    await sshRun(lab.host, 'sudo rm -f /tmp/lingered-ops-initdata');
    const started = Date.now();
    const e = await withSession(c, env, (session) =>
      withLock(c, session, 'initdata', async () => {
        const remote = session.remote(lab.host.name);
        const uploaded = `${env.layout.uploads}/initdata-linger.yml`;
        await remote.upload('linger: true\n', uploaded, { mode: 0o600 });
        // the step as initdata runs it, its 1800 s limit made 2 s
        return remote.run({ ...runInitdata(env, uploaded, 'initdata.yml'), timeout: 2 }).then(() => undefined, (x: Error) => x);
      }),
    );
    expect(e?.message).toMatch(/step "initdata" on .* (timed out|failed)/);
    // runuser SIGKILLed the app user's bash 2 s after the step's SIGTERM, before it stopped the loader: left running
    await loaderGone(started);
  }, 120_000);

  it('Ctrl-C while that loader runs: exit 130, the loader stopped (not left writing), the data said to be possibly half-loaded, nothing left', async () => {
    writeFileSync(dataFile(), 'linger: true\n');
    await sshRun(lab.host, 'sudo rm -f /tmp/lingered-ops-initdata');
    const started = Date.now();
    const ops = await spawnOps(['initdata', 'e2e'], lab.project.root, (out) => out.includes('loading'), 'the loader running', 120_000);
    expect(await ops.stop('SIGINT')).toBe(130);
    expect(ops.out()).toContain(`SIGINT received during initdata on ${lab.host.name}: stopping them, releasing the lock`);
    expect(ops.out()).toContain('the initdata loader was stopped part-way: what it had written stays in the database unless it loads in one transaction');
    expect(ops.out()).not.toMatch(/^\s+at /m);
    await loaderGone(started);
  }, 120_000);

  it('while a deploy holds the lock: refused naming the holder, nothing sent', async () => {
    writeFileSync(dataFile(), 'users: []\n');
    const c = ctx();
    const env = lab.project.env();
    const e = await withSession(c, env, (session) => withLock(c, session, 'deploy', () => initdata(ctx(), lab.project.env()).then(() => undefined, (x: Error) => x)));
    expect(e?.message).toMatch(new RegExp(`^environment e2e is locked on ${lab.host.name} by a deploy run`));
    expect(await leftovers()).toBe('');
    expect((await initdata(ctx(), env)).hosts[0]!.output).toMatch(/^file 600 /); // released: it runs now
  }, 300_000);
});
