// The one git runner (core/git.ts) and what runs through it: source resolution, packing, the tree a release
// needs, `ops diff`'s changes and staging all read the repository they are given, whatever GIT_* variables the
// process carries (run from a git hook, a worktree, a CI that exports GIT_DIR...), in the C locale, never
// prompting on a runner.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseEnvironment, type Environment } from '../../core/config/environment.ts';
import { describeChange } from '../../core/changes.ts';
import { Git, GitError, gitEnvironment } from '../../core/git.ts';
import type { OpsError } from '../../core/errors.ts';
import { openRepository } from '../../core/staging/remote.ts';
import { packFor, resolveRef, sourceRepository } from '../../core/source.ts';
import { treeContent } from '../../core/tree-content.ts';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
let ours: string;
let other: string;
const sha: Record<string, string> = {};

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'ops-git-'));
  ours = join(dir, 'ours');
  other = join(dir, 'other');
  sha.one = initRepo(ours, { 'a.txt': 'one\n' });
  sha.two = commit(ours, { 'migrations/0002.sql': 'create table t ();\n' }, 'two');
  gitIn(ours, ['tag', 'v2']);
  gitIn(ours, ['remote', 'add', 'origin', join(dir, 'remote.git')]);
  sha.other = initRepo(other, { 'b.txt': 'other\n' });
  gitIn(other, ['tag', 'v2']);
});

/** The variables a git hook (or a worktree's shell) leaves in the environment: all pointing at the other repository. */
const HOSTILE = () => ({
  GIT_DIR: join(other, '.git'),
  GIT_WORK_TREE: other,
  GIT_INDEX_FILE: join(other, '.git', 'index'),
  GIT_OBJECT_DIRECTORY: join(other, '.git', 'objects'),
  GIT_CEILING_DIRECTORIES: '/',
  GIT_TRACE: '1',
  LC_ALL: 'fr_FR.UTF-8',
});
const saved: Record<string, string | undefined> = {};
function hostileProcessEnv(): void {
  for (const [k, v] of Object.entries(HOSTILE())) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
}
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

function env(): Environment {
  const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { server: { command: 'run', port: 3579 }, client: { command: 'run', port: 3000 } } }, 'test');
  return { name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: '/srv/shop', url: '' };
}

describe('the git environment', () => {
  it('drops every GIT_* variable but the ones that reach remotes and pick the configuration; C locale; no pager; no prompt on runners', () => {
    const e = gitEnvironment({ ...HOSTILE(), PATH: '/usr/bin', HOME: '/home/me', GIT_SSH_COMMAND: 'ssh -i key', GIT_ASKPASS: '/bin/askpass', GIT_SSL_CAINFO: '/ca.pem', GIT_CONFIG_GLOBAL: '/g', GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'http.extraheader', GIT_CONFIG_VALUE_0: 'x', GIT_EDITOR: 'vim', GIT_NAMESPACE: 'n' });
    for (const k of ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_CEILING_DIRECTORIES', 'GIT_TRACE', 'GIT_EDITOR', 'GIT_NAMESPACE']) expect(e[k], k).toBeUndefined();
    expect(e).toMatchObject({ PATH: '/usr/bin', HOME: '/home/me', GIT_SSH_COMMAND: 'ssh -i key', GIT_ASKPASS: '/bin/askpass', GIT_SSL_CAINFO: '/ca.pem', GIT_CONFIG_GLOBAL: '/g', GIT_CONFIG_KEY_0: 'http.extraheader' });
    expect(e).toMatchObject({ LC_ALL: 'C', LANGUAGE: 'C', GIT_PAGER: 'cat', GIT_TERMINAL_PROMPT: '0', GCM_INTERACTIVE: 'never', GIT_AUTHOR_NAME: 'ops-pipeline', GIT_COMMITTER_EMAIL: 'ops-pipeline@users.noreply.github.com' });
    expect(gitEnvironment({}, { interactive: true }).GIT_TERMINAL_PROMPT).toBeUndefined();
  });

  it('runs in the repository it is given, bytes in and out; a failure names the command and says why', async () => {
    hostileProcessEnv();
    const g = new Git(ours);
    expect(await g.commit('HEAD')).toBe(sha.two);
    expect(await g.isAncestor(sha.one!, sha.two!)).toBe(true);
    expect((await g.bytes(['cat-file', 'blob', `${sha.one}:a.txt`])).toString()).toBe('one\n');
    expect(await g.out(['hash-object', '--stdin'], { input: Buffer.from('one\n') })).toBe(execFileSync('git', ['hash-object', '--stdin'], { input: 'one\n', env: { PATH: process.env.PATH } }).toString().trim());
    const err = await g.out(['rev-parse', '--verify', 'nope']).catch((e) => e);
    expect(err).toBeInstanceOf(GitError);
    expect(err.message).toMatch(/^git rev-parse --verify nope failed \(exit code 128\)\n {2}\| fatal: Needed a single revision/);
    // A git that exits without reading its input: its exit code, not an EPIPE that kills the process.
    expect((await g.run(['rev-parse', '--verify', 'nope'], { input: Buffer.alloc(4 * 1024 * 1024, 'a') })).code).toBe(128);
  });
});

describe('the repository an environment names', () => {
  it('relative, starts from the project folder; one that does not exist is said with where it was looked for, and where it is when written from the environment folder', async () => {
    const project = mkdtempSync(join(tmpdir(), 'ops-project-'));
    mkdirSync(join(project, 'environments', 'qa'), { recursive: true });
    const env = { name: 'qa', dir: join(project, 'environments', 'qa') };
    expect(await sourceRepository(project, '.', env)).toBe(project);
    const missing = (await sourceRepository(project, '../app', env).catch((e: OpsError) => e)) as OpsError;
    expect(missing.message).toBe(`repository "../app" (environments/qa/environment.yml) is ${join(project, '..', 'app')}, which does not exist: a relative repository starts from the project folder, ${project}`);
    expect(missing.hint).toMatch(/^set repository to the app's git clone on this machine/);
    // the clone beside the environment's files, as ssh.identity_file would be read
    mkdirSync(join(project, 'environments', 'app'));
    const fromEnv = (await sourceRepository(project, '../app', env).catch((e: OpsError) => e)) as OpsError;
    expect(fromEnv.hint).toBe(`it names ${join(project, 'environments', 'app')} from the environment's folder: write it from the project folder, repository: environments/app (or absolute)`);
    expect(((await sourceRepository(project, '/nonexistent/app', env).catch((e: OpsError) => e)) as OpsError).message).toBe('repository "/nonexistent/app" (environments/qa/environment.yml) is /nonexistent/app, which does not exist');
  });
});

describe('what runs through it ignores GIT_* of the process', () => {
  it('source resolution and the repository deployed from', async () => {
    hostileProcessEnv();
    expect((await resolveRef(ours, 'v2')).sha).toBe(sha.two);
    expect(await sourceRepository(join(ours, 'migrations'), undefined)).toBe(ours);
  });

  it('packing: the pack holds our commit', async () => {
    hostileProcessEnv();
    const { bytes: pack } = await packFor(ours, sha.two!, [sha.one!]);
    const bare = mkdtempSync(join(tmpdir(), 'ops-git-bare-'));
    execFileSync('git', ['init', '-q', '--bare', bare], { env: { PATH: process.env.PATH } });
    execFileSync('git', ['--git-dir', bare, 'index-pack', '--stdin', '--fix-thin'], { input: pack, env: { PATH: process.env.PATH } });
    // A thin pack needs its base: the second commit and its new tree and blob arrive, the first commit is only referenced.
    expect(execFileSync('git', ['--git-dir', bare, 'cat-file', '-t', sha.two!], { env: { PATH: process.env.PATH } }).toString().trim()).toBe('commit');
  });

  it('the tree content and the changes a deploy makes', async () => {
    hostileProcessEnv();
    expect(await treeContent(ours, sha.two!)).toEqual({ submodules: [], lfs: [], exportIgnored: [] });
    const change = await describeChange(ours, env(), sha.one!, sha.two!);
    expect(change).toMatchObject({ relation: 'ahead', added: 1, migrations: ['migrations/0002.sql'] });
  });

  it('staging opens the repository it is given', async () => {
    hostileProcessEnv();
    const g = await openRepository(ours, { remote: 'origin' });
    expect(await g.commit('HEAD')).toBe(sha.two);
  });
});

describe('a git call that reaches a remote', () => {
  it('is stopped after its timeout when the remote does not answer, saying so (a laptop offline waits no longer)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-git-hang-'));
    initRepo(join(dir, 'remote'), { 'a.txt': 'a\n' });
    initRepo(join(dir, 'local'), { 'b.txt': 'b\n' });
    const hang = join(dir, 'hang');
    writeFileSync(hang, '#!/bin/sh\nsleep 30\n');
    chmodSync(hang, 0o755);
    gitIn(join(dir, 'local'), ['remote', 'add', 'origin', `file://${join(dir, 'remote')}`]);
    gitIn(join(dir, 'local'), ['config', 'remote.origin.uploadpack', hang]);
    const started = Date.now();
    const r = await new Git(join(dir, 'local')).run(['ls-remote', 'origin', 'refs/heads/main'], { timeoutMs: 500 });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/git ls-remote stopped: no answer within 0\.5 s$/);
  });
});
