// Test scaffolding for staging sync: real git (a bare repository as the remote, clones as the runner and as
// other people) and a fake of GitHub's REST API at the HTTP level (the endpoints staging uses, with
// pagination through Link headers and token checks), so the real Octokit client is exercised.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterEach, expect } from 'vitest';
import { OpsError } from '../../core/errors.ts';
import { MemoryReporter } from '../../core/report.ts';
import { Git, type GitResult } from '../../core/git.ts';
import { stagingSettings, type StagingContext, type StagingSettings } from '../../core/staging/settings.ts';
import { StagingRefusal } from '../../core/staging/messages.ts';

// People's commits: a fixed identity, a fixed clock that each commit advances (shas differ, runs are stable).
let clock = 1_780_000_000;
function personEnv(name = 'Dev Eloper'): NodeJS.ProcessEnv {
  clock += 60;
  const date = `${clock} +0000`;
  return {
    ...process.env,
    LC_ALL: 'C',
    GIT_AUTHOR_NAME: name,
    GIT_AUTHOR_EMAIL: 'dev@example.com',
    GIT_COMMITTER_NAME: name,
    GIT_COMMITTER_EMAIL: 'dev@example.com',
    GIT_AUTHOR_DATE: date,
    GIT_COMMITTER_DATE: date,
  };
}

export function git(dir: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd: dir, env: personEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** A person's clone of the scratch remote. */
export class Clone {
  constructor(readonly dir: string) {}
  git(...args: string[]): string {
    return git(this.dir, ...args);
  }
  /** Start `branch` from the remote's `from` (master by default). */
  branch(branch: string, from = 'master'): this {
    this.git('fetch', '-q', 'origin');
    this.git('checkout', '-q', '-B', branch, `origin/${from}`);
    return this;
  }
  /** Write files and commit them on the current branch; returns the new sha. */
  commit(files: Record<string, string>, message: string): string {
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(this.dir, path)), { recursive: true });
      writeFileSync(join(this.dir, path), content);
    }
    this.git('add', '-A');
    this.git('commit', '-q', '-m', message);
    return this.git('rev-parse', 'HEAD');
  }
  push(branch: string, options: { force?: boolean } = {}): void {
    this.git('push', '-q', ...(options.force ? ['--force'] : []), 'origin', `HEAD:refs/heads/${branch}`);
  }
  /** A new branch from master with one commit, pushed; returns its head. */
  feature(branch: string, files: Record<string, string>, message = `work on ${branch}`, from = 'master'): string {
    this.branch(branch, from);
    const sha = this.commit(files, message);
    this.push(branch);
    return sha;
  }
}

export const BASE_FILES = { 'README.md': '# app\n', 'app.txt': 'one\ntwo\nthree\nfour\nfive\n' };

/**
 * A scratch remote with master (and staging = master), people's clones, and helpers to read the remote.
 * Building a scene costs dozens of git processes, so tests build one once and `copy()` it (one `cp -a`).
 */
export class Scratch {
  readonly remote: string;
  private readonly people: string[] = [];
  private constructor(readonly root: string) {
    this.remote = join(root, 'remote.git');
  }
  static create(options: { staging?: boolean } = {}): Scratch {
    const s = new Scratch(mkdtempSync(join(tmpdir(), 'ops-staging-')));
    execFileSync('git', ['init', '-q', '--bare', '-b', 'master', s.remote]);
    const seed = s.clone('seed');
    seed.git('checkout', '-q', '-b', 'master');
    seed.commit(BASE_FILES, 'initial');
    seed.git('push', '-q', 'origin', 'master');
    if (options.staging !== false) seed.git('push', '-q', 'origin', 'master:refs/heads/staging');
    return s;
  }
  /** A copy of the whole scene (remote and clones), the clones pointed at the copied remote. */
  copy(): Scratch {
    const s = new Scratch(mkdtempSync(join(tmpdir(), 'ops-staging-')));
    execFileSync('cp', ['-a', `${this.root}/.`, s.root]);
    for (const name of this.people) {
      s.people.push(name);
      const config = join(s.root, name, '.git', 'config');
      writeFileSync(config, readFileSync(config, 'utf8').split(this.remote).join(s.remote));
    }
    return s;
  }
  clone(name: string, ...extra: string[]): Clone {
    const dir = join(this.root, name);
    execFileSync('git', ['clone', '-q', ...extra, extra.length ? `file://${this.remote}` : this.remote, dir], { stdio: 'ignore', env: personEnv() });
    if (!extra.length) this.people.push(name);
    return new Clone(dir);
  }
  /** A clone made earlier (kept by copy()). */
  person(name: string): Clone {
    return new Clone(join(this.root, name));
  }
  /** git in the remote (bare) repository. */
  git(...args: string[]): string {
    return git(this.remote, ...args);
  }
  /** The remote's value of a ref, or undefined. */
  sha(ref: string): string | undefined {
    try {
      return git(this.remote, 'rev-parse', '--verify', '--quiet', ref);
    } catch {
      return undefined;
    }
  }
  /** Every ref of the remote: name → sha. */
  refs(): Record<string, string> {
    const out = git(this.remote, 'for-each-ref', '--format=%(refname) %(objectname)');
    return Object.fromEntries(out.split('\n').filter(Boolean).map((l) => l.split(' ') as [string, string]));
  }
  tracking(): Record<string, string> {
    return Object.fromEntries(Object.entries(this.refs()).filter(([k]) => k.startsWith('refs/staging-heads/')));
  }
  /** Files of a commit on the remote. */
  files(rev: string): string[] {
    return git(this.remote, 'ls-tree', '-r', '--name-only', rev).split('\n').filter(Boolean);
  }
  show(rev: string, path: string): string {
    return git(this.remote, 'show', `${rev}:${path}`);
  }
  isAncestor(a: string, b: string): boolean {
    try {
      git(this.remote, 'merge-base', '--is-ancestor', a, b);
      return true;
    } catch {
      return false;
    }
  }
  /** GitHub's pull refs: refs/pull/N/head on the base repository. */
  setPullRef(number: number, sha: string): void {
    git(this.remote, 'update-ref', `refs/pull/${number}/head`, sha);
  }
  /** A pre-receive hook on the remote (e.g. one that refuses every push, like a branch protection). */
  hook(name: string, script: string): void {
    const file = join(this.remote, 'hooks', name);
    writeFileSync(file, `#!/bin/sh\n${script}\n`);
    chmodSync(file, 0o755);
  }
  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** A Git runner that runs `beforePush` once, right before its first push: a concurrent push in between. */
export class RacingGit extends Git {
  private raced = false;
  beforePush?: () => Promise<void> | void;
  override async run(args: string[], options?: { input?: string; env?: Record<string, string> }): Promise<GitResult> {
    if (args[0] === 'push' && !this.raced && this.beforePush) {
      this.raced = true;
      await this.beforePush();
    }
    return super.run(args, options);
  }
}

export function context(dir: string, overrides: Partial<StagingSettings> = {}, g?: Git): StagingContext & { reporter: MemoryReporter } {
  const reporter = new MemoryReporter();
  return { git: g ?? new Git(dir), reporter, settings: { ...stagingSettings({ retryDelayMs: 0 }), ...overrides } };
}

// ---------------------------------------------------------------------------------------------------------
// Fake GitHub REST API

export interface FakePull {
  number: number;
  title?: string;
  created_at: string;
  head: { ref: string; sha: string; repo: { full_name: string } | null };
  labels: string[];
  state?: 'open' | 'closed';
  /** A plain issue, not a pull request: in the issues listing only (GitHub lists pull requests there too). */
  issue?: true;
}

export interface FakeComment {
  id: number;
  issue: number;
  body: string;
  updated: number;
  /** Its author (default: the token's bot, as for the comments the fake creates) and their association with the repository. */
  user?: { login: string; type: 'Bot' | 'User' };
  association?: string;
}

/** A deployment and its statuses (oldest first, as written), as the fake keeps them. */
export interface FakeDeployment {
  id: number;
  sha: string;
  environment: string;
  created_at: string;
  statuses: { id: number; state: string; description: string; environment_url: string; log_url: string; target_url: string; created_at: string }[];
}

export interface FakeGitHub {
  url: string;
  repository: string;
  token: string;
  pulls: FakePull[];
  comments: FakeComment[];
  deployments: FakeDeployment[];
  /**
   * Write a deployment status as GitHub does (what Actions does at a job's start and end): with auto_inactive
   * (default true) a success adds an inactive status to every other deployment of the environment whose last
   * status is success.
   */
  deploymentStatus(id: number, state: string, fields?: { description?: string; environment_url?: string; log_url?: string; auto_inactive?: boolean }): void;
  requests: { method: string; path: string; authorized: boolean }[];
  close(): Promise<void>;
}

/**
 * A fake of GitHub's REST API (the part staging uses), over HTTP on 127.0.0.1: pull requests and comments,
 * paginated `pageSize` at a time with Link headers. `hang`: requests it picks are held, never answered (an
 * API that stopped responding), until close(). `answer`: requests it picks get that answer.
 */
export interface CannedAnswer {
  status: number;
  headers?: Record<string, string>;
  /** JSON, as the API answers; a string with `html` (a proxy's or GitHub's own error page), sent as text/html. */
  body: unknown;
  html?: boolean;
}

export async function startFakeGitHub(
  options: {
    repository?: string;
    token?: string;
    pageSize?: number;
    hang?: (request: { method: string; path: string }) => boolean;
    /** An answer of GitHub's own for the requests it picks (a rate limit, an outage), instead of the fake's. */
    answer?: (request: { method: string; path: string }) => CannedAnswer | undefined;
  } = {},
): Promise<FakeGitHub> {
  const repository = options.repository ?? 'acme/webapp';
  const token = options.token ?? 'ghs_test_token_123';
  const pageSize = options.pageSize ?? 2;
  let nextId = 1000;
  let tick = Date.parse('2026-04-01T00:00:00Z');
  const now = () => new Date((tick += 1000)).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const state: FakeGitHub = {
    url: '',
    repository,
    token,
    pulls: [],
    comments: [],
    deployments: [],
    requests: [],
    close: async () => {},
    deploymentStatus(id, st, fields = {}) {
      const d = state.deployments.find((x) => x.id === id);
      if (!d) throw new Error(`no deployment ${id}`);
      const log = fields.log_url ?? '';
      d.statuses.push({ id: nextId++, state: st, description: fields.description ?? '', environment_url: fields.environment_url ?? '', log_url: log, target_url: log, created_at: now() });
      if (st === 'success' && fields.auto_inactive !== false) {
        for (const o of state.deployments) {
          if (o.id === id || o.environment !== d.environment || o.statuses.at(-1)?.state !== 'success') continue;
          o.statuses.push({ id: nextId++, state: 'inactive', description: '', environment_url: '', log_url: '', target_url: '', created_at: d.statuses.at(-1)!.created_at });
        }
      }
    },
  };

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
    res.end(JSON.stringify(body));
  };
  const readBody = (req: IncomingMessage) =>
    new Promise<Record<string, unknown>>((resolve) => {
      let data = '';
      req.on('data', (c) => (data += c));
      req.on('end', () => resolve(data ? (JSON.parse(data) as Record<string, unknown>) : {}));
    });
  const paginate = (res: ServerResponse, url: URL, items: unknown[]) => {
    const page = Number(url.searchParams.get('page') ?? '1');
    const size = Math.min(pageSize, Number(url.searchParams.get('per_page') ?? '30'));
    const slice = items.slice((page - 1) * size, page * size);
    const headers: Record<string, string> = {};
    if (page * size < items.length) {
      const next = new URL(url);
      next.searchParams.set('page', String(page + 1));
      headers.link = `<${state.url}${next.pathname}${next.search}>; rel="next"`;
    }
    send(res, 200, slice, headers);
  };
  const pullJson = (p: FakePull) => ({
    number: p.number,
    title: p.title ?? `Pull request ${p.number}`,
    state: p.state ?? 'open',
    html_url: `https://github.example/${repository}/pull/${p.number}`,
    created_at: p.created_at,
    head: { ref: p.head.ref, sha: p.head.sha, repo: p.head.repo },
    labels: p.labels.map((name, i) => ({ id: i + 1, name })),
  });

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const authorized = req.headers.authorization === `token ${token}` || req.headers.authorization === `Bearer ${token}`;
    state.requests.push({ method: req.method ?? '', path: `${url.pathname}${url.search}`, authorized });
    if (options.hang?.({ method: req.method ?? '', path: `${url.pathname}${url.search}` })) return;
    const canned = options.answer?.({ method: req.method ?? '', path: `${url.pathname}${url.search}` });
    if (canned?.html) {
      res.writeHead(canned.status, { 'content-type': 'text/html; charset=utf-8', ...canned.headers });
      return res.end(String(canned.body));
    }
    if (canned) return send(res, canned.status, canned.body, canned.headers);
    if (!authorized) return send(res, 401, { message: 'Bad credentials' });
    const repo = `/repos/${repository}`;
    const m = url.pathname.startsWith(`${repo}/`) ? url.pathname.slice(repo.length) : undefined;
    if (m === undefined) return send(res, 404, { message: 'Not Found' });
    if (req.method === 'GET' && (m === '/pulls' || m === '/issues')) {
      const wanted = url.searchParams.get('state') ?? 'open';
      const asc = url.searchParams.get('direction') === 'asc';
      // the issues listing: every label asked for (comma-separated, any case), pull requests marked as such
      const labels = m === '/issues' ? (url.searchParams.get('labels')?.split(',').map((l) => l.toLowerCase()) ?? []) : [];
      const list = state.pulls
        .filter((p) => (m === '/issues' || !p.issue) && (wanted === 'all' || (p.state ?? 'open') === wanted))
        .filter((p) => labels.every((l) => p.labels.some((x) => x.toLowerCase() === l)))
        .sort((a, b) => (asc ? 1 : -1) * a.created_at.localeCompare(b.created_at))
        .map((p) => (m === '/pulls' ? pullJson(p) : { ...pullJson(p), head: undefined, ...(!p.issue && { pull_request: { html_url: pullJson(p).html_url } }) }));
      return paginate(res, url, list);
    }
    const one = /^\/pulls\/(\d+)$/.exec(m);
    if (req.method === 'GET' && one) {
      const pull = state.pulls.find((p) => p.number === Number(one[1]) && !p.issue);
      return pull ? send(res, 200, pullJson(pull)) : send(res, 404, { message: 'Not Found' });
    }
    let c = /^\/issues\/(\d+)\/comments$/.exec(m);
    if (c && req.method === 'GET') {
      const issue = Number(c[1]);
      return paginate(
        res,
        url,
        state.comments.filter((x) => x.issue === issue).map((x) => ({ id: x.id, body: x.body, user: x.user ?? { login: 'github-actions[bot]', type: 'Bot' }, author_association: x.association ?? 'NONE' })),
      );
    }
    if (c && req.method === 'POST') {
      const body = await readBody(req);
      const comment = { id: nextId++, issue: Number(c[1]), body: String(body.body), updated: 0 };
      state.comments.push(comment);
      return send(res, 201, { id: comment.id, body: comment.body });
    }
    c = /^\/issues\/comments\/(\d+)$/.exec(m);
    if (c && req.method === 'PATCH') {
      const comment = state.comments.find((x) => x.id === Number(c![1]));
      if (!comment) return send(res, 404, { message: 'Not Found' });
      comment.body = String((await readBody(req)).body);
      comment.updated++;
      return send(res, 200, { id: comment.id, body: comment.body });
    }
    if (req.method === 'GET' && m === '/deployments') {
      const env = url.searchParams.get('environment');
      const sha = url.searchParams.get('sha');
      const list = state.deployments
        .filter((d) => (!env || d.environment === env) && (!sha || d.sha === sha))
        .sort((a, b) => b.created_at.localeCompare(a.created_at) || b.id - a.id)
        .map(({ statuses: _, ...d }) => d);
      return paginate(res, url, list);
    }
    c = /^\/deployments\/(\d+)\/statuses$/.exec(m);
    if (c) {
      const id = Number(c[1]);
      const d = state.deployments.find((x) => x.id === id);
      if (!d) return send(res, 404, { message: 'Not Found' });
      if (req.method === 'GET') return paginate(res, url, [...d.statuses].reverse());
      if (req.method === 'POST') {
        const body = await readBody(req);
        const valid = ['error', 'failure', 'inactive', 'in_progress', 'queued', 'pending', 'success'];
        if (!valid.includes(String(body.state))) return send(res, 422, { message: `invalid state ${String(body.state)}` });
        state.deploymentStatus(id, String(body.state), {
          description: body.description as string | undefined,
          environment_url: body.environment_url as string | undefined,
          log_url: (body.log_url ?? body.target_url) as string | undefined,
          auto_inactive: body.auto_inactive as boolean | undefined,
        });
        return send(res, 201, d.statuses.at(-1));
      }
    }
    return send(res, 404, { message: `no fake for ${req.method} ${m}` });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return state;
}

/** An address where nothing listens (for "API unreachable"). */
export async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

// ---------------------------------------------------------------------------------------------------------
// Test helpers

export interface Scene {
  s: Scratch;
  dev: Clone;
  runner: Clone;
  other: Clone;
}

/** A copy of a prepared scene, for one test. */
export function fresh(template: Scratch): Scene {
  const s = template.copy();
  return { s, dev: s.person('dev'), runner: s.person('runner'), other: s.person('other') };
}

/**
 * Scenes and fake APIs for the tests of one file, cleaned up after each test (call it at the file's top level):
 * `scene(template)` is a fresh copy of a prepared scene, `github()` a fake API.
 */
export function perTest(): { scene(template: Scratch): Scene; github(options?: Parameters<typeof startFakeGitHub>[0]): Promise<FakeGitHub> } {
  let scratch: Scratch | undefined;
  let api: FakeGitHub | undefined;
  afterEach(async () => {
    scratch?.cleanup();
    scratch = undefined;
    await api?.close();
    api = undefined;
  });
  return {
    scene: (template) => {
      const s = fresh(template);
      scratch = s.s;
      return s;
    },
    github: async (options) => (api = await startFakeGitHub(options)),
  };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (err: unknown) => err,
  );
}

export async function refusal(p: Promise<unknown>): Promise<StagingRefusal> {
  const e = await rejection(p);
  expect(e).toBeInstanceOf(StagingRefusal);
  return e as StagingRefusal;
}

export async function failure(p: Promise<unknown>): Promise<OpsError> {
  const e = await rejection(p);
  expect(e).toBeInstanceOf(OpsError);
  return e as OpsError;
}

export const line2 = (who: string) => `one\nTWO (${who})\nthree\nfour\nfive\n`;
export const line3 = (who: string) => `one\ntwo\nTHREE (${who})\nfour\nfive\n`;
