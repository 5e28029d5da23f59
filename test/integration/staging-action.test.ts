// The committed staging-sync bundle, run the way the runner runs it: `node actions/staging-sync/dist/index.js`
// in a clean environment with INPUT_* variables and the GITHUB_OUTPUT / GITHUB_STEP_SUMMARY / GITHUB_EVENT_PATH
// files, against a scratch remote (a bare repository; the runner's checkout is a clone) and the fake API.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { mdText } from '../../core/report.ts';
import { Scratch, line2, perTest } from './staging.support.ts';

const SCENE_TIMEOUT = 60_000; // building a scene runs dozens of git processes

const BUNDLE = resolve(import.meta.dirname, '../../actions/staging-sync/dist/index.js');

interface ActionRun {
  code: number | null;
  stdout: string;
  outputs: Record<string, string>;
  summary: string;
}

/** Parse $GITHUB_OUTPUT: `name<<delimiter`, the value's lines, the delimiter. */
function parseOutputs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/^([^\n<]+)<<(ghadelimiter_[^\n]+)\n([\s\S]*?)\n?\2$/gm)) out[m[1]!] = m[3]!;
  return out;
}

/** Run the bundle with only what a runner would give it (no inherited environment beyond PATH). */
async function runAction(workspace: string, inputs: Record<string, string>, env: Record<string, string>, event: unknown = {}): Promise<ActionRun> {
  const dir = mkdtempSync(join(tmpdir(), 'ops-action-'));
  try {
    const files = { GITHUB_OUTPUT: 'output', GITHUB_STEP_SUMMARY: 'summary', GITHUB_ENV: 'env', GITHUB_PATH: 'path', GITHUB_STATE: 'state' };
    for (const f of Object.values(files)) writeFileSync(join(dir, f), '');
    writeFileSync(join(dir, 'event.json'), JSON.stringify(event));
    mkdirSync(join(dir, 'home'));
    mkdirSync(join(dir, 'temp'));
    const childEnv: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: join(dir, 'home'), // no global git config: the identity must come from the action
      GITHUB_ACTIONS: 'true',
      GITHUB_WORKSPACE: workspace,
      GITHUB_EVENT_PATH: join(dir, 'event.json'),
      GITHUB_EVENT_NAME: 'pull_request',
      GITHUB_SERVER_URL: 'https://github.example',
      GITHUB_RUN_ID: '4242',
      RUNNER_TEMP: join(dir, 'temp'),
      ...Object.fromEntries(Object.entries(files).map(([k, f]) => [k, join(dir, f)])),
      ...Object.fromEntries(Object.entries(inputs).map(([k, v]) => [`INPUT_${k.toUpperCase()}`, v])),
      ...env,
    };
    // Spawned without a shell: dash would drop the INPUT_ names that contain "-".
    const child = spawn(process.execPath, [BUNDLE], { cwd: workspace, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stdout += d));
    const code = await new Promise<number | null>((done) => child.on('close', done));
    return { code, stdout, outputs: parseOutputs(readFileSync(join(dir, 'output'), 'utf8')), summary: readFileSync(join(dir, 'summary'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let template: Scratch;
const sha: Record<string, string> = {};
beforeAll(() => {
  template = Scratch.create();
  const dev = template.clone('dev');
  template.clone('runner');
  template.clone('other');
  sha.b = dev.feature('feature/b', { 'app.txt': line2('b') }, 'b edits line two');
  sha.c = dev.feature('feature/c', { 'app.txt': line2('c') }, 'c edits line two');
  sha.d = dev.feature('feature/d', { 'd.txt': 'd\n' }, 'd work');
  sha.master = template.sha('master')!;
}, SCENE_TIMEOUT);
afterAll(() => template.cleanup());

const each = perTest();
const scene = () => each.scene(template);

const pullEvent = (number: number, branch: string, head: string) => ({
  action: 'labeled',
  pull_request: { number, title: `PR ${number}`, html_url: `https://github.example/acme/webapp/pull/${number}`, head: { ref: branch, sha: head, repo: { full_name: 'acme/webapp' } } },
});

describe('the staging-sync bundle, as the runner runs it', () => {
  it('mode add on a pull_request event: adds that pull request, writes outputs and the job summary', async () => {
    const { s, runner } = scene();
    const r = await runAction(runner.dir, { mode: 'add' }, { GITHUB_REPOSITORY: 'acme/webapp' }, pullEvent(12, 'feature/d', sha.d!));
    expect(r.code, r.stdout).toBe(0);
    expect(r.outputs).toEqual({ sha: sha.d, 'previous-sha': sha.master, changed: 'true', added: '#12', skipped: '' });
    expect(s.sha('staging')).toBe(sha.d);
    expect(s.tracking()).toEqual({ 'refs/staging-heads/heads/feature/d': sha.d });
    expect(r.summary).toContain(`### staging sync: add ${mdText('#12 (feature/d)')}`);
    expect(r.summary).toMatch(/\\#\u206012 \(feature\/d\) \(`[0-9a-f]{7}`\) added to staging by fast-forward/);
    expect(r.stdout).toContain('::group::add pull request #12 to staging');
  });

  it('mode add on a pull_request event whose branch is named with characters git allows (feat/été): added by its pull ref', async () => {
    const { s, dev, runner } = scene();
    const head = dev.feature('feat/été', { 'e.txt': 'été\n' }, 'summer work');
    s.setPullRef(14, head); // GitHub keeps refs/pull/N/head for every pull request
    const r = await runAction(runner.dir, { mode: 'add' }, { GITHUB_REPOSITORY: 'acme/webapp' }, pullEvent(14, 'feat/été', head));
    expect(r.code, r.stdout).toBe(0);
    expect(r.outputs).toMatchObject({ sha: head, changed: 'true', added: '#14', skipped: '' });
    expect(s.sha('staging')).toBe(head);
    expect(s.tracking()).toEqual({ 'refs/staging-heads/pull/14/head': head });
  });

  it('mode add on a pull_request event whose branch moved since (the run waited): adds the commit the event saw, says what was left out', async () => {
    const { s, dev, runner } = scene();
    dev.git('checkout', '-q', 'feature/d');
    const unreviewed = dev.commit({ 'd.txt': 'd, unreviewed\n' }, 'pushed after the label');
    dev.push('feature/d');
    const r = await runAction(runner.dir, { mode: 'add' }, { GITHUB_REPOSITORY: 'acme/webapp' }, pullEvent(12, 'feature/d', sha.d!));
    expect(r.code, r.stdout).toBe(0);
    expect(r.outputs).toMatchObject({ sha: sha.d, changed: 'true', added: '#12' });
    expect(s.sha('staging')).toBe(sha.d);
    expect(s.tracking()).toEqual({ 'refs/staging-heads/heads/feature/d': sha.d });
    expect(r.stdout).toContain(`::warning::#12 (feature/d) is at ${unreviewed.slice(0, 7)} now, not at the labelled commit ${sha.d!.slice(0, 7)}`);
    expect(r.summary).toContain(`1 newer commit not added, waiting for a new label: ${unreviewed.slice(0, 7)} pushed after the label`);
  });

  it('mode add on a pull_request event without a head sha: refused, staging untouched', async () => {
    const { s, runner } = scene();
    const before = s.refs();
    const event = { action: 'labeled', pull_request: { number: 12, head: { ref: 'feature/d', repo: { full_name: 'acme/webapp' } } } };
    const r = await runAction(runner.dir, { mode: 'add' }, { GITHUB_REPOSITORY: 'acme/webapp' }, event);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/::error::the event of pull request #12 names no head commit/);
    expect(s.refs()).toEqual(before);
  });

  it('mode add with a ref: a merge commit made by the configured committer, not by any git config', async () => {
    const { s, runner } = scene();
    await runAction(runner.dir, { mode: 'add', ref: 'feature/d' }, { GITHUB_REPOSITORY: 'acme/webapp' });
    const r = await runAction(runner.dir, { mode: 'add', ref: 'feature/b', 'committer-name': 'Staging Bot', 'committer-email': 'bot@example.org' }, { GITHUB_REPOSITORY: 'acme/webapp' });
    expect(r.code, r.stdout).toBe(0);
    expect(r.outputs).toMatchObject({ changed: 'true', added: 'feature/b', 'previous-sha': sha.d });
    expect(s.git('log', '-1', '--format=%an <%ae>|%s', r.outputs.sha!)).toBe(`Staging Bot <bot@example.org>|Merge feature/b at ${sha.b!.slice(0, 12)} into staging`);
  });

  it('mode rebuild: resets to master, re-applies labelled pull requests through the API, comments on the skipped one', async () => {
    const { s, runner } = scene();
    await runAction(runner.dir, { mode: 'add', ref: 'feature/d' }, { GITHUB_REPOSITORY: 'acme/webapp' }); // unlabelled: will be dropped
    const api = await each.github();
    api.pulls.push(
      { number: 5, title: 'B', created_at: '2026-01-01T00:00:00Z', head: { ref: 'feature/b', sha: sha.b!, repo: { full_name: 'acme/webapp' } }, labels: ['staging'] },
      { number: 3, title: 'C', created_at: '2026-01-02T00:00:00Z', head: { ref: 'feature/c', sha: sha.c!, repo: { full_name: 'acme/webapp' } }, labels: ['staging'] },
    );
    const r = await runAction(runner.dir, { mode: 'rebuild', 'github-token': api.token, label: 'staging' }, { GITHUB_REPOSITORY: api.repository, GITHUB_API_URL: api.url }, { schedule: '0 4 * * 1-5' });
    expect(r.code, r.stdout).toBe(0);
    expect(r.outputs).toEqual({ sha: sha.b, 'previous-sha': sha.d, changed: 'true', added: '#5', skipped: '#3' });
    expect(s.sha('staging')).toBe(sha.b); // master + #5 is a fast-forward
    expect(r.summary).toContain('### staging sync: rebuild staging from master');
    expect(r.summary).toMatch(/\| \[#5\]\(.*\/pull\/5\) B \| `[0-9a-f]{7}` \| fast-forward \|/);
    expect(r.summary).toMatch(/\| \[#3\]\(.*\/pull\/3\) C \| `[0-9a-f]{7}` \| \*\*skipped\*\* \(conflict: `app\.txt`\) \|/);
    expect(r.summary).toContain('No longer in staging: `feature/d`.');
    expect(api.comments).toHaveLength(1);
    expect(api.comments[0]).toMatchObject({ issue: 3 });
    expect(api.comments[0]!.body).toContain('[the rebuild of `staging`](https://github.example/acme/webapp/actions/runs/4242)');
    expect(r.stdout).toContain(`::add-mask::${api.token}`);
  });

  it('mode rebuild without API access: resets anyway and warns that labelled pull requests were not re-applied', async () => {
    const { s, runner } = scene();
    await runAction(runner.dir, { mode: 'add', ref: 'feature/d' }, {});
    const r = await runAction(runner.dir, { mode: 'rebuild' }, {});
    expect(r.code, r.stdout).toBe(0);
    expect(r.outputs).toMatchObject({ sha: sha.master, changed: 'true', added: '', skipped: '' });
    expect(s.sha('staging')).toBe(sha.master);
    expect(r.stdout).toMatch(/::warning::labelled pull requests will NOT be re-applied: the GitHub repository is unknown/);
    expect(r.summary).toMatch(/were \*\*not re-applied\*\*/);
  });

  it('fails the step with a clear error on a conflict, staging untouched and no outputs', async () => {
    const { s, runner } = scene();
    await runAction(runner.dir, { mode: 'add', ref: 'feature/b' }, {});
    const before = s.refs();
    const r = await runAction(runner.dir, { mode: 'add', ref: 'feature/c' }, {});
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/::error::feature\/c \([0-9a-f]{7}\) conflicts with staging \([0-9a-f]{7}\) in 1 file; staging was not changed:%0A {2}app\.txt/);
    expect(r.outputs).toEqual({});
    expect(s.refs()).toEqual(before);
  });

  it('the scenario of the issue: add A (fast-forward), add B (merge), rebase A and add again (refused), rebuild', async () => {
    const { s, dev, runner } = scene();
    const env = { GITHUB_REPOSITORY: 'acme/webapp' };
    const addA = await runAction(runner.dir, { mode: 'add', ref: 'feature/d' }, env);
    expect(addA.outputs).toMatchObject({ sha: sha.d, added: 'feature/d' });
    expect(addA.summary).toMatch(/by fast-forward/);
    const addB = await runAction(runner.dir, { mode: 'add', ref: 'feature/b' }, env);
    expect(addB.summary).toMatch(/by merge commit/);

    dev.branch('feature/d', 'master');
    const d2 = dev.commit({ 'd.txt': 'd, rebased\n' }, 'd work, rebased');
    dev.push('feature/d', { force: true });
    const again = await runAction(runner.dir, { mode: 'add', ref: 'feature/d' }, env);
    expect(again.code).toBe(1);
    expect(again.stdout).toMatch(/::error::feature\/d was rewritten since it was added to staging.*%0AIn staging, but no longer in feature\/d:%0A {2}[0-9a-f]{7} d work%0AIn feature\/d now instead:%0A {2}[0-9a-f]{7} d work, rebased/);
    expect(s.sha('staging')).toBe(addB.outputs.sha);

    const api = await each.github();
    const pr = (number: number, branch: string, head: string, day: number) => ({
      number,
      created_at: `2026-01-0${day}T00:00:00Z`,
      head: { ref: branch, sha: head, repo: { full_name: 'acme/webapp' } },
      labels: ['staging'],
    });
    api.pulls.push(pr(1, 'feature/d', d2, 1), pr(2, 'feature/b', sha.b!, 2), pr(3, 'feature/c', sha.c!, 3));
    const rebuild = await runAction(runner.dir, { mode: 'rebuild', 'github-token': api.token }, { GITHUB_REPOSITORY: api.repository, GITHUB_API_URL: api.url });
    expect(rebuild.code, rebuild.stdout).toBe(0);
    expect(rebuild.outputs).toMatchObject({ added: '#1,#2', skipped: '#3', changed: 'true' });
    const staging = s.sha('staging')!;
    expect(s.isAncestor(d2, staging) && s.isAncestor(sha.b!, staging) && !s.isAncestor(sha.d!, staging)).toBe(true);
    expect(rebuild.summary).toMatch(/\*\*skipped\*\* \(conflict: `app\.txt`\)/);
    expect(api.comments.map((c) => c.issue)).toEqual([3]);
  });

  it('refuses bad inputs before doing anything', async () => {
    const { s, runner } = scene();
    const before = s.refs();
    expect((await runAction(runner.dir, { mode: 'sync' }, {})).stdout).toMatch(/::error::invalid input mode: "sync"%0A  hint: mode is "add" or "rebuild"/);
    expect((await runAction(runner.dir, {}, {})).stdout).toMatch(/::error::input mode is required%0A  hint: give it in the step's with: block/);
    expect((await runAction(runner.dir, { mode: 'add' }, {})).stdout).toMatch(/::error::nothing to add: no ref given/);
    expect((await runAction(runner.dir, { mode: 'add', ref: '$(reboot)' }, {})).stdout).toMatch(/::error::invalid ref "\$\(reboot\)"/);
    expect((await runAction(runner.dir, { mode: 'rebuild', 'main-branch': 'a..b' }, {})).stdout).toMatch(/::error::invalid main branch/);
    // A main branch the remote lacks (the default `master` where GitHub named the repository's first branch `main`): its default branch named.
    expect((await runAction(runner.dir, { mode: 'rebuild', 'main-branch': 'main' }, {})).stdout).toMatch(
      /::error::the main branch "main" does not exist on origin%0A  hint: origin's default branch is "master": give main-branch: master to the staging-sync step \(staging.yml\), or --main master to ops staging$/m,
    );
    expect((await runAction(runner.dir, { mode: 'add', ref: 'feature/b', 'dry-run': 'maybe' }, {})).stdout).toMatch(/::error::invalid input dry-run: "maybe"%0A  hint: dry-run is true or false$/m);
    expect(s.refs()).toEqual(before);
  });
});
