// Shared by the end-to-end tests: a scratch project with an environment pointing at lab hosts, the sample
// app's repository, a provisioned host snapshot built once per machine, and small probes.
import { createHash } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadEnvironment } from '../../core/config/environment.ts';
import { getLockStatus } from '../../core/ops/records.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { sshConnector, type Connector, type OpsContext } from '../../core/context.ts';
import { provision } from '../../core/ops/provision.ts';
import { MemoryReporter, type Reporter } from '../../core/report.ts';
import { provisionNginx } from '../../core/steps/nginx.ts';
import { packageIndexFiles } from '../../core/packages.ts';
import { SYSTEM_FUNCTIONS } from '../../core/steps/libraries.ts';
import { appUser, installPackages, packageIndexes, runtimes, supervisorService } from '../../core/steps/system.ts';
import { makeAppRepo } from '../fixtures/app/make-repo.ts';
import { rootfsTarball } from '../hosts/lab.ts';
import { createDatabase, downHost, listSnapshots, npmRegistryUrl, paths, pypiIndexUrl, snapshotHost, sshRun, upHost, withLabLock, type Host, type UpHostOptions } from '../hosts/index.ts';
import { quote } from '../../core/shell.ts';
import { afterAll, beforeAll, expect } from 'vitest';
import { runOps, type CliResult } from '../support/cli.ts';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';

export const APP = 'sample';

let repo: Promise<string> | undefined;
/** The sample app's repository (tags v1, v2, deps-changed, broken-*), made once per test worker. */
export function appRepo(): Promise<string> {
  repo ??= (async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'ops-app-')), 'app');
    await makeAppRepo(dir);
    return dir;
  })();
  return repo;
}

/**
 * The environment.yml of a test environment: the sample app on `hosts`, its database given in plain env, its
 * dependencies from the lab's PyPI and npm caches (hosts reach nothing else).
 */
export function testConfig(hosts: Host[], repository: string, databaseUrl: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    app: APP,
    repository,
    ref: 'v1',
    hosts: hosts.map((h) => ({ name: h.name, address: h.address, user: h.user, host_key: h.hostKey })),
    ssh: { identity_file: hosts[0]?.identityFile ?? join(paths.state, 'id_ed25519'), connect_timeout: 10 },
    // The default health timeout (60 s): test machines are busy; the never-healthy case sets its own.
    switch: { drain: 10 },
    programs: {
      server: { command: '{release}/venv/bin/python -m server.main', port: 3579, health: '/health', env: { APP_PORT: '{port}' } },
      client: { command: '{node} ./build', directory: 'client', port: 3000, health: '/', env: { HOST: '127.0.0.1', PORT: '{port}', VITE_API_SSR_URL: 'http://127.0.0.1:{port:server}' } },
    },
    env: { APP_SERVER_MODE: 'live', APP_DATABASE_URL: databaseUrl, TOOLS_PASSWORDS: '{"admin@example.org": "test-admin-password"}' },
    packages: { pip_index_url: pypiIndexUrl, npm_registry: npmRegistryUrl },
    ...extra,
  };
}

/**
 * The `server.py` of a webConfig app: Python's http.server on 127.0.0.1 and the port in argv[1], answering every GET
 * with 200 and `body` (a Python expression giving a str, evaluated per request; `os` is imported), after `prelude`
 * (module code run once at start: what the app reads when it starts). `handle`: Python lines run first in do_GET (a
 * path answered otherwise, a wait); `threaded`: requests served at once (ThreadingHTTPServer), as a long one must not
 * hold the others; `http11`: answers in HTTP/1.1 (a protocol switch, 101, needs it).
 */
export function pythonWebApp(body: string, prelude = '', { handle = '', threaded = false, http11 = false } = {}): string {
  const server = threaded ? 'ThreadingHTTPServer' : 'HTTPServer';
  const first = handle ? `${handle.replace(/\n$/, '').replace(/^/gm, '        ')}\n` : '';
  return String.raw`import os, sys
from http.server import BaseHTTPRequestHandler, ${server}
${prelude}
class Handler(BaseHTTPRequestHandler):
${http11 ? '    protocol_version = "HTTP/1.1"\n' : ''}    def do_GET(self):
${first}        body = (${body}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
${server}(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
`;
}


/**
 * A repository (under a new temporary directory, named `app`) of a pythonWebApp answering "version <n>" on every
 * path but /health ("ok"), tagged v1 to v4 (each tag changing only its VERSION file): the release a page shows is the
 * tag that went live. Returns the repository's path.
 */
export function versionedApp(prefix: string): string {
  const repo = join(mkdtempSync(join(tmpdir(), prefix)), 'app');
  initRepo(repo, { 'server.py': pythonWebApp('"ok" if self.path == "/health" else "version " + VERSION', 'VERSION = open("VERSION").read().strip()'), 'VERSION': '1\n' });
  gitIn(repo, ['tag', 'v1']);
  for (const v of ['2', '3', '4']) {
    commit(repo, { 'VERSION': `${v}\n` }, `version ${v}`);
    gitIn(repo, ['tag', `v${v}`]);
  }
  return repo;
}
/**
 * An environment of one program `web` on `host`: `{python} server.py {port}` from the repository (Python's standard
 * library only: nothing to install, a build and migration that do nothing), health `/health`, ref `main`;
 * `overrides` replace top-level keys.
 */
export function webConfig(host: Host, repository: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    app: APP,
    repository,
    ref: 'main',
    hosts: [{ name: host.name, address: host.address, user: host.user, host_key: host.hostKey }],
    ssh: { identity_file: host.identityFile, connect_timeout: 10 },
    release: { python_requirements: '', node_dir: '', build: 'true', migrate: 'true' },
    switch: { drain: 1, health_timeout: 30 },
    programs: { web: { command: '{python} server.py {port}', port: 5100, health: '/health', env: {} } },
    routes: { '/': 'web' },
    ...overrides,
  };
}

/** While this file exists on a host, assetApp's health path answers 503 there: a release started on it stays unhealthy (not refused). */
export const ASSET_HOLD = '/run/ops-test-hold';

/**
 * An app with content-hashed assets (release.asset_dirs: `static`), as a browser meets one across switches: `build`
 * names a copy of app.js after a hash of its content (vite's way), static/app-<12 hex>.js, and writes the page ("/"
 * answers the asset's URL, nothing else) and static/version.txt (the hash: a name every release has). `server` lists
 * the files of static/ once, at its start, as adapter-node's sirv does (SvelteKit's /_app/immutable): a file put into
 * its release later is never served by it; it answers 404 for any other path, and 503 for its health path while
 * ASSET_HOLD exists. assetPage: the page a release of an app.js serves.
 */
export const assetApp = {
  server: String.raw`import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
FILES = {"/static/" + n: open("static/" + n, "rb").read() for n in os.listdir("static")} if os.path.isdir("static") else {}
PAGE = open("ASSET").read().strip()
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        held = self.path == "/health" and os.path.exists(${JSON.stringify(ASSET_HOLD)})
        body = b"ok" if self.path == "/health" else PAGE.encode() if self.path == "/" else FILES.get(self.path)
        self.send_response(503 if held else 404 if body is None else 200)
        body = body or b""
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
`,
  build: 'h=$(sha256sum app.js | cut -c1-12) && mkdir -p static && cp app.js static/app-$h.js && echo /static/app-$h.js > ASSET && printf %s $h > static/version.txt',
};

/** The page (the URL of its script) assetApp serves for a release whose app.js is `js`. */
export function assetPage(js: string): string {
  return `/static/app-${createHash('sha256').update(js).digest('hex').slice(0, 12)}.js`;
}

export interface TestProject {
  root: string;
  name: string;
  env(): Target;
  ctx(reporter?: Reporter): OpsContext & { reporter: Reporter };
  write(config: Record<string, unknown>): void;
  cleanup(): void;
}

/** A throwaway project root holding environments/<name>/environment.yml. */
export function makeProject(name: string, config: Record<string, unknown>): TestProject {
  const root = mkdtempSync(join(tmpdir(), 'ops-project-'));
  writeFileSync(join(root, 'package.json'), '{}\n');
  const dir = join(root, 'environments', name);
  mkdirSync(dir, { recursive: true });
  const project: TestProject = {
    root,
    name,
    env: () => resolveTarget(loadEnvironment(name, root)),
    ctx: (reporter = new MemoryReporter()) => ({ root, reporter, processEnv: { PATH: process.env.PATH, HOME: process.env.HOME, USER: 'e2e' } }),
    write: (c) => writeFileSync(join(dir, 'environment.yml'), stringify(c)),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
  project.write(config);
  return project;
}

/** A database and login per test environment, on the lab's PostgreSQL. */
export async function testDatabase(name: string): Promise<string> {
  const db = await createDatabase(name, `pw-${name}-${createHash('sha256').update(name).digest('hex').slice(0, 12)}`);
  return db.url.replace(/^postgresql:/, 'postgresql+asyncpg:');
}

/**
 * A snapshot of a bookworm host provisioned for the sample app, made once per machine and reused by every
 * test that needs a ready host (provision itself is tested from a bare host in provision.test.ts).
 * Keyed by the root filesystem and the provision scripts, so a change to either builds a new one.
 */
export async function provisionedSnapshot(): Promise<string> {
  const probe = makeProject('snap', testConfig([{ name: 'x', address: '10.0.0.1', user: 'deploy', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P' } as Host], '/nonexistent', 'postgresql://x'));
  const env = probe.env();
  probe.cleanup();
  const files = packageIndexFiles(env, {});
  const scripts = [installPackages(env), appUser(env, 'deploy'), packageIndexes(env, {}), runtimes(env, files), supervisorService(), provisionNginx(env, false)].map((s) => s.script).join('\n');
  const key = createHash('sha256').update(rootfsTarball('bookworm')).update(scripts).update(JSON.stringify(files)).digest('hex').slice(0, 12);
  const name = `provisioned-${key}`;
  if (listSnapshots().some((s) => s.name === name)) return name;
  // One builder per machine; the others wait (saying for whom), and take over from a builder that died.
  return withLabLock(
    `snapshot-${name}`,
    async () => {
      if (listSnapshots().some((s) => s.name === name)) return name; // built by the holder before us
      const host = await upHost({ name: `snap${key.slice(0, 4)}`, fresh: true, owner: process.env.OPS_TESTHOSTS_OWNER });
      try {
        const project = makeProject('snap', testConfig([host], '/nonexistent', 'postgresql://x'));
        await provision(project.ctx(), project.env());
        project.cleanup();
        await snapshotHost(host.name, name);
      } finally {
        await downHost(host.name, { purge: true });
      }
      return name;
    },
    { purpose: `building the provisioned snapshot ${name} (a host provisioned once, a few minutes)` },
  );
}

/** A host started from the provisioned snapshot, named uniquely for this test run; `options`: more of upHost's. */
export async function readyHost(prefix: string, options: Pick<UpHostOptions, 'filesystems' | 'lans'> = {}): Promise<Host> {
  const from = await provisionedSnapshot();
  return upHost({ name: `${prefix}${process.pid % 1000}`, from, fresh: true, owner: process.env.OPS_TESTHOSTS_OWNER, ...options });
}

/**
 * A host from the provisioned snapshot for all the tests of the calling file, by its hooks: started before its first
 * test (readyHost(`prefix`, `options`)), taken down and purged after its last (or after a set-up that failed).
 * Returns the object the hooks fill in: read `host` in tests and hooks; a test that replaces the host (a reboot) sets
 * it there, so that one is taken down.
 */
export function labHost(prefix: string, options: Pick<UpHostOptions, 'filesystems' | 'lans'> = {}): { host: Host } {
  const lab = {} as { host: Host };
  beforeAll(async () => {
    lab.host = await readyHost(prefix, options);
  }, 900_000);
  afterAll(async () => {
    if (lab.host) await downHost(lab.host.name, { purge: true });
  });
  return lab;
}

/** What labEnvironment's hooks make for a test file: filled in before its first test (read it in tests and hooks). */
export interface LabEnvironment {
  /** The host started from the provisioned snapshot (see labHost). */
  host: Host;
  /** The scratch project holding environments/<name>/environment.yml (the config given, for `host`). */
  project: TestProject;
  /** The real `ops` CLI, in process, in the project (userEnv()): its exit code and output. */
  ops(...argv: string[]): Promise<CliResult>;
}

/** The process environment of a user's shell the tests run `ops` in: this process's PATH and HOME, USER e2e, NO_COLOR 1. */
export function userEnv(): Record<string, string | undefined> {
  return { PATH: process.env.PATH, HOME: process.env.HOME, USER: 'e2e', NO_COLOR: '1' };
}

/**
 * The set-up an end-to-end file on one provisioned host shares, as hooks of the calling file. Before all its tests:
 * labHost(`prefix`, options.host), then a scratch project (makeProject) whose environment `options.name` (default
 * `e2e`) is `config(host)`, then `options.ready` (the file's own set-up: its first deploys, secrets...) with both in
 * place. After all its tests, and after a set-up that failed part-way: the project's folder is removed and the host
 * taken down and purged; the app's repository and any database the config names are the file's (left as they are).
 * Returns the object the hooks fill in.
 */
export function labEnvironment(
  prefix: string,
  config: (host: Host) => Record<string, unknown> | Promise<Record<string, unknown>>,
  options: { name?: string; host?: Pick<UpHostOptions, 'filesystems' | 'lans'>; ready?: (lab: LabEnvironment) => Promise<void> } = {},
): LabEnvironment {
  const lab = labHost(prefix, options.host) as LabEnvironment;
  lab.ops = (...argv) => runOps(argv, { root: lab.project.root, processEnv: userEnv() });
  beforeAll(async () => {
    lab.project = makeProject(options.name ?? 'e2e', await config(lab.host));
    await options.ready?.(lab);
  }, 900_000);
  afterAll(() => lab.project?.cleanup());
  return lab;
}

/** Asserts that the deploy lock of `project`'s environment, on its one host, is free (as getLockStatus reads it). */
export async function lockIsFree(project: TestProject): Promise<void> {
  expect((await getLockStatus(project.ctx(), project.env())).map((l) => l.lock.state)).toEqual(['free']);
}

/**
 * Shell, for a command run on a test host as root (any shell: it runs bash itself), that reloads sshd (after
 * `sshd -t`) and returns once it listens again: a reload (SIGHUP) makes sshd close its listening sockets and
 * re-execute itself, after systemctl has returned, so "something listens on port 22" right after it may still be
 * the old sockets, and the next login is refused. Waits (20 s at most) until port 22's listening sockets are not
 * the ones from before the reload (their inodes, ss -e) and the same on two looks 100 ms apart (all of them bound);
 * fails saying so when sshd does not listen again.
 */
export const RELOAD_SSHD = `bash -c ${quote(`listeners() { ss -Hltne 'sport = :22' | grep -o 'ino:[0-9]*' | sort | tr '\\n' ' '; }
old=$(listeners)
systemctl reload ssh || exit
last=
for i in $(seq 200); do now=$(listeners); [ -n "$now" ] && [ "$now" != "$old" ] && [ "$now" = "$last" ] && exit 0; last=$now; sleep 0.1; done
echo "sshd did not listen again on port 22 within 20 s of its reload (listening sockets before: \${old:-none}, now: \${now:-none}); journalctl -u ssh says:" >&2
journalctl -u ssh -n 5 -o cat --no-pager >&2
exit 1`)}`;

/** Replace sshd's drop-in configuration of the test (sshd_config.d/60-test.conf; none when `lines` is empty), then reload sshd (RELOAD_SSHD). */
export async function configureSshd(host: Host, lines: string[]): Promise<void> {
  await sshRun(host, `printf '%s\\n' ${lines.map(quote).join(' ') || "''"} | sudo tee /etc/ssh/sshd_config.d/60-test.conf >/dev/null && sudo sshd -t && sudo ${RELOAD_SSHD}`);
}

/**
 * Shell that waits until something listens on TCP `port` of the host (a process the test started there, such as a
 * squatter on a slot's port): up to `seconds` (a busy test host), then fails if nothing does.
 */
export function untilListening(port: number, seconds = 20): string {
  const listens = `ss -Hltn 'sport = :${port}' | grep -q .`;
  return `for i in $(seq ${seconds * 10}); do ${listens} && break; sleep 0.1; done; ${listens}`;
}

/**
 * Shell (as root) that waits until the SSH server process a lock names as its holder (holder_pid in `lockDir`/info:
 * its run's connection, conn_pid in core/steps/sh/connection.sh) is gone, as the next run's look at the lock requires
 * to call it stale: a runner killed outright drops its TCP connection, and sshd ends that session a moment later, on
 * a busy host later still. Up to `seconds`, then fails saying the holder still runs.
 */
export function untilHolderGone(lockDir = `/srv/${APP}/.ops/lock`, seconds = 20): string {
  const holder = `sed -n 's/^holder_pid=//p' ${quote(`${lockDir}/info`)}`;
  return `(p=$(${holder}); [ -n "$p" ] || { echo "no holder_pid in ${lockDir}/info" >&2; exit 1; }; for i in $(seq ${seconds * 10}); do kill -0 "$p" 2>/dev/null || exit 0; sleep 0.1; done; echo "the lock's holder (pid $p, $(ps -o args= -p "$p")) still runs ${seconds} s on" >&2; exit 1)`;
}

/** Shell that waits until nothing listens on TCP `port` of the host (a process the test started there stopped): up to `seconds`, then fails if something still does. */
export function untilFree(port: number, seconds = 20): string {
  const free = `! ss -Hltn 'sport = :${port}' | grep -q .`;
  return `for i in $(seq ${seconds * 10}); do ${free} && break; sleep 0.1; done; ${free} || { echo 'port ${port} still taken ${seconds} s on' >&2; false; }`;
}

/**
 * Make the deploy login's shell chatty, as real servers are: ~/.bashrc printing to stdout and stderr before
 * its interactive guard (a greeting, a line without a newline), a MOTD and an sshd Banner. `false` undoes it.
 */
export async function chattyLogin(host: Host, on: boolean): Promise<void> {
  const greeting = ['echo "Welcome to $(hostname), $(date +%A)!"', 'echo "[bashrc] loading profile..." >&2', "printf 'no newline here'"].join('\n');
  await sshRun(
    host,
    on
      ? `cp -n ~/.bashrc ~/.bashrc.orig && { printf '%s\\n' ${quote(greeting)}; cat ~/.bashrc.orig; } > ~/.bashrc.new && mv ~/.bashrc.new ~/.bashrc && echo 'Authorised use only (motd)' | sudo tee /etc/motd >/dev/null && echo 'Authorised use only (banner)' | sudo tee /etc/ssh/ops-test-banner >/dev/null`
      : 'if [ -f ~/.bashrc.orig ]; then mv ~/.bashrc.orig ~/.bashrc; fi',
  );
}

/** What a user reads of an `ops` run: its output (stdout then stderr); fails the test on a stack trace in it. */
export function readable(r: CliResult): string {
  const text = r.out + r.err;
  expect(text).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  return text;
}

/**
 * Shell, for a command run on a test host as root (any shell: it runs bash itself), that reloads nginx and returns
 * only once the new configuration serves alone; append it where a test changes nginx's files (after `nginx -t`).
 * A bare `nginx -s reload` returns as soon as the master has the signal: for a moment the old workers (the old
 * configuration) and the new ones both accept on the shared listening sockets, so one look that sees the new page
 * proves nothing and the next may get the old one. This is the product's own reload (nginx_reload in
 * core/steps/sh/system.sh: waits, 10 s at most, until a new worker runs and every old one is gone or titled
 * "shutting down", which it takes on before it stops accepting); it fails, saying "nginx reload failed: ..." and
 * nginx's last error lines, when nginx does not take the reload up. nginx not running is started (said on stderr).
 */
export const RELOAD_NGINX = `bash -c ${quote(`ops_report() { echo "nginx was not running: started it" >&2; }\n${SYSTEM_FUNCTIONS}\nnginx_reload`)}`;

/** `command` run on the host as root (sudo bash -c): its stdout, trimmed; rejects when it fails. */
export async function asRoot(host: Host, command: string): Promise<string> {
  return (await sshRun(host, `sudo bash -c ${quote(command)}`)).stdout.trim();
}

/**
 * GET through nginx on the host, each on a new connection (as a new visitor): status, body, headers; rejects after 10 s.
 * Not fetch(): its pool reuses kept-alive connections, and one that nginx's old worker closes as a reload ends it is
 * lost as "other side closed" when a request races the close (a browser retries that; a test would fail on it).
 */
export function visit(host: Host, path = '/'): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: host.address, port: 80, path, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET http://${host.address}${path}: no answer in 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** GET through nginx on the host as `visit` does: status and body only (what most checks compare whole). */
export async function get(host: Host, path = '/'): Promise<{ status: number; body: string }> {
  const { status, body } = await visit(host, path);
  return { status, body };
}

/**
 * What "/" answers through nginx on the host once its body starts with `release` (a restart or a switch takes a
 * moment): asked every 200 ms, up to 100 times (20 s and more); then the last 200 answer's body ('' when none was).
 */
export async function servesSoon(host: Host, release: string): Promise<string> {
  let body = '';
  for (let i = 0; i < 100 && !body.startsWith(release); i++) {
    body = await get(host).then((x) => (x.status === 200 ? x.body : ''), () => '');
    if (!body.startsWith(release)) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return body;
}

/** SSH logins the host's sshd accepted so far (each `sshRun` adds one: its own). */
export async function sshLogins(host: Host): Promise<number> {
  const r = await sshRun(host, "sudo journalctl _COMM=sshd --no-pager -o cat | grep -c 'Accepted publickey' || true");
  return Number(r.stdout.trim());
}


/**
 * A connector like the real one (real SSH, real hosts), whose connection to host `name` hands each upload to
 * `through` first and uploads what it returns: a byte flipped on the way, the host cut off mid-transfer.
 */
export function throughUploads(ctx: OpsContext, name: string, through: (content: Buffer, path: string) => Buffer): Connector {
  const real = sshConnector(ctx);
  return async (env, host) => {
    const remote = await real(env, host);
    if (host.name !== name) return remote;
    const upload = remote.upload.bind(remote);
    remote.upload = (content, path, options) => upload(through(Buffer.from(content), path), path, options);
    return remote;
  };
}
