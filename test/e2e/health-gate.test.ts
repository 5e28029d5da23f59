// The health gate on a real host (supervisor, curl, ss), with programs that fail the way users' do: one that exits
// as soon as it starts (a missing module, a bad setting), writing to its own log file rather than to supervisor; one
// that accepts connections but never answers HTTP.
// What the deploy says, how soon, and that the live release serves throughout.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { rollback } from '../../core/ops/rollback.ts';
import { status } from '../../core/ops/status.ts';
import { auditLog, formatReleases, listReleases, RELEASE_REASON_SHOWN } from '../../core/ops/records.ts';
import { MemoryReporter } from '../../core/report.ts';
import { quote } from '../../core/shell.ts';
import { downHost, pypiIndexUrl, sshRun, type Host } from '../hosts/index.ts';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';
import { APP, get, makeProject, readyHost, untilListening, webConfig, type TestProject } from './support.ts';

/**
 * The app: serves its version; MODE=exit exits at once, MODE=late-exit answers and exits a second later, MODE=silent
 * listens and never answers (a hung worker), MODE=slow-exit connects to its database for 4 s (past supervisor's
 * startsecs, 3 s) and exits for a setting not given (supervisor restarts it without end, never FATAL).
 */
const SERVER = String.raw`import os, socket, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
port = int(sys.argv[1])
mode = open("MODE").read().strip()
if mode == "exit":
    sys.exit("ModuleNotFoundError: No module named 'settings_local'")
if mode == "slow-exit":
    print("connecting to the database...", file=sys.stderr, flush=True)
    time.sleep(4)
    sys.exit("RuntimeError: DATABASE_URL is not set (export it in the .env)")
if mode == "late-exit":
    # Up and answering at once, gone a second later (a worker thread failing on its first connection).
    import threading
    threading.Timer(1.0, lambda: os._exit(1)).start()
if mode == "silent":
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(16)
    while True:
        time.sleep(60)
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = open("VERSION").read().strip().encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", port), Handler).serve_forever()
`;

let host: Host;
let project: TestProject;
let repo: string;
let config: Record<string, unknown>;
const root = mkdtempSync(join(tmpdir(), 'ops-gate-'));
/** On the host, as root. */
const onHost = async (command: string) => (await sshRun(host, `sudo bash -c ${quote(command)}`)).stdout.trim();

beforeAll(async () => {
  host = await readyHost('gat');
  repo = join(root, 'app');
  initRepo(repo, { 'server.py': SERVER, MODE: 'ok\n', VERSION: '1\n' });
  gitIn(repo, ['tag', 'good']);
  config = webConfig(host, repo, {
    ref: 'good',
    switch: { drain: 1, health_timeout: 45 },
    // The app writes its own log file (as many do): supervisor sees no output, only the exit.
    programs: { web: { command: "sh -c 'exec {python} server.py {port} >> /tmp/ops-gate-web.log 2>&1'", port: 5100, health: '/health', env: {} } },
  });
  project = makeProject('e2e', config);
  await deploy(project.ctx(), project.env(), { ref: 'good' });
}, 900_000);

afterAll(async () => {
  if (host) await downHost(host.name, { purge: true });
  project?.cleanup();
});

describe.sequential('the health gate', () => {
  it('a program that exits as soon as it starts: supervisor never takes it as started, gives up on it (FATAL), and the deploy fails saying so without waiting out the health timeout', async () => {
    commit(repo, { MODE: 'exit\n', VERSION: '2\n' }, 'a release whose program exits at once');
    gitIn(repo, ['tag', 'exits']);
    // supervisord notices exits once per second, after deciding whether a program has started (startsecs): a
    // program that exits at once must never count as started, or supervisor restarts it forever (never FATAL).
    for (let i = 0; i < 2; i++) {
      const err = await deploy(project.ctx(), project.env(), { ref: 'exits', force: true }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/did not become healthy on slot \w+: supervisor gave up on program web, which keeps exiting/);
      expect((await get(host)).body).toBe('1');
    }
    // supervisor's own log: the failing release's starts were exits "too quickly", not taken as started, so that
    // supervisor gave up on it each time. One start may still be taken as started on a loaded machine (the
    // interpreter alone taking over startsecs, 3 s, to reach its exit): never all of them.
    const log = await onHost(`grep -E "${APP}-(blue|green)-web" /var/log/supervisor/supervisord.log`);
    const live = await onHost(`cat /srv/${APP}/.ops/slot`);
    const failing = log.split('\n').filter((l) => !l.includes(`${APP}-${live}-web`));
    expect(failing.filter((l) => l.includes('gave up'))).toHaveLength(2);
    const spawned = failing.filter((l) => l.includes('spawned:')).length;
    expect(spawned).toBeGreaterThanOrEqual(4);
    expect(failing.filter((l) => l.includes('entered RUNNING state')).length).toBeLessThan(spawned / 2);
  }, 600_000);

  it("a typo in a program's command (its executable not found): the deploy fails at once naming the program, supervisor's words and the fix; the live release serves on", async () => {
    project.write({ ...config, programs: { web: { command: 'pyhton3 server.py {port}', port: 5100, health: '/health', env: {} } } });
    try {
      const started = Date.now();
      const err = await deploy(project.ctx(), project.env(), { ref: 'good', force: true }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/did not become healthy on slot \w+: supervisor could not start program web: can't find command 'pyhton3' \(no such file, or no such name on its PATH\); fix programs\.web\.command: /);
      expect(Date.now() - started).toBeLessThan(40_000);
      expect((await get(host)).body).toBe('1');
    } finally {
      project.write(config);
    }
  }, 600_000);

  it("a program whose server is not installed (python -m gunicorn without gunicorn): the verdict quotes what it wrote on stderr since this start, not \"its log says why\"", async () => {
    project.write({ ...config, programs: { web: { command: '{python} -m gunicorn --bind 127.0.0.1:{port} server:app', port: 5100, health: '/health', env: {} } } });
    try {
      const err = await deploy(project.ctx(), project.env(), { ref: 'good', force: true }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/did not become healthy on slot \w+: supervisor gave up on program web, which keeps exiting; \/\S+\.err\.log ends: \S*python[\d.]*: No module named gunicorn \(waiting for web:\d+:\/health\); the live release keeps serving/);
      expect((await get(host)).body).toBe('1');
    } finally {
      project.write(config);
    }
  }, 600_000);

  it('a program that listens but never answers HTTP: the deploy fails naming the probe and why (no answer in time, not "nothing listens"); the audit line and ops releases say why too', async () => {
    commit(repo, { MODE: 'silent\n', VERSION: '3\n' }, 'a release whose program listens but never answers');
    gitIn(repo, ['tag', 'silent']);
    project.write({ ...config, switch: { drain: 1, health_timeout: 8 } });
    const err = await deploy(project.ctx(), project.env(), { ref: 'silent' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/did not become healthy on slot \w+: no healthy answer within 8s from web:\d+:\/health \(Operation timed out after \d+ milliseconds with 0 bytes received\); the live release keeps serving/);
    expect((await get(host)).body).toBe('1');
    // Read later, the records say why, not just "failed": the step and its health verdict, on one line.
    const why = /^step "start (blue|green)" on \S+ failed with exit code \d+: release (\S+) did not become healthy on slot \1: no healthy answer within 8s from web:\d+:\/health \(Operation timed out after \d+ milliseconds with 0 bytes received\)$/;
    const line = (await auditLog(project.ctx(), project.env(), 1))[0]!.entries[0]!;
    expect(line).toMatchObject({ operation: 'deploy', result: 'failed' });
    expect(line.message).toMatch(why);
    const failed = why.exec(line.message!)![2]!;
    expect(line.release).toBe(failed);
    const listed = await listReleases(project.ctx(), project.env());
    expect(listed[0]!.releases.find((r) => r.id === failed)).toMatchObject({ status: 'failed', reason: line.message });
    const shown = formatReleases(listed).split('\n').find((l) => l.includes(failed))!;
    // The list: cut short on the release's line (--json, the listing, has it whole).
    // A cut drops the word it falls in (oneLine: it may start a secret).
    const cut = /\[failed: ([^\]]*)…\]/.exec(shown)![1]!;
    expect(line.message!.startsWith(cut)).toBe(true);
    expect(cut.length).toBeLessThan(RELEASE_REASON_SHOWN);
    expect(cut.length).toBeGreaterThan(RELEASE_REASON_SHOWN - 20);
    expect(line.message![cut.length]).toMatch(/\s/);
  }, 300_000);

  it('a failed deploy puts the release the idle slot kept warm back there: the deploy says so, ops status does not warn, and ops rollback only moves traffic to it (its process the same)', async () => {
    project.write(config);
    // Two good deploys: the first runs warm on the idle slot, the rollback target.
    const previous = await deploy(project.ctx(), project.env(), { ref: 'good', force: true });
    await deploy(project.ctx(), project.env(), { ref: 'good', force: true });
    const idle = (await onHost(`cat /srv/${APP}/.ops/slot`)) === 'blue' ? 'green' : 'blue';
    const pid = () => onHost(`supervisorctl pid ${APP}-${idle}:${APP}-${idle}-web`);
    // A release whose program exits at once (its own commit: this case runs alone too).
    commit(repo, { MODE: 'exit\n', VERSION: '4\n' }, 'another release whose program exits at once');
    gitIn(repo, ['tag', 'exits-again']);
    const err = await deploy(project.ctx(), project.env(), { ref: 'exits-again' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/did not become healthy on slot \w+: supervisor gave up/);
    expect((err as Error).message).toContain(`the previous release ${previous.release} is back on slot ${idle}, healthy: kept warm, a rollback to it only moves traffic`);
    expect((await get(host)).body).toBe('1');
    // On the host: the slot's file names the previous release again, and supervisor runs it.
    expect(await onHost(`head -n 1 /etc/supervisor/conf.d/${APP}-${idle}.conf`)).toContain(`, release ${previous.release}.`);
    // (It may still be STARTING: startsecs.)
    expect(await onHost(`supervisorctl status ${APP}-${idle}:*`)).toMatch(/RUNNING|STARTING/);
    const warnings = (await status(project.ctx(), project.env())).hosts[0]!.warnings;
    expect(warnings.filter((w) => /kept warm|previous slot/.test(w))).toEqual([]);
    // The rollback reuses it as it runs: the same process serves, nothing was started.
    const running = await pid();
    expect(Number(running)).toBeGreaterThan(0);
    const back = await rollback(project.ctx(), project.env());
    expect(back.hosts[0]!.release).toBe(previous.release);
    expect(await onHost(`cat /srv/${APP}/.ops/slot`)).toBe(idle);
    expect(await pid()).toBe(running);
    expect((await get(host)).body).toBe('1');
  }, 600_000);

  it('a program that answers its health check and exits a second later (supervisor restarts it): the deploy fails naming it before any traffic goes there, the live release serves on', async () => {
    project.write(config);
    const live = await onHost(`readlink /srv/${APP}/current`);
    commit(repo, { MODE: 'late-exit\n', VERSION: '5\n' }, 'a release whose program dies a second after it starts');
    gitIn(repo, ['tag', 'late-exit']);
    const err = await deploy(project.ctx(), project.env(), { ref: 'late-exit' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/release \S+ did not keep running on slot \w+: program web exited after it answered its health check, within 3s of its start \(supervisor: \w+; it ran as pid \d+\)/);
    expect((err as Error).message).not.toMatch(/^Error|\n\s+at /);
    expect(await onHost(`readlink /srv/${APP}/current`)).toBe(live);
    for (let i = 0; i < 3; i++) {
      expect((await get(host)).body).toBe('1');
      await new Promise((r) => setTimeout(r, 500));
    }
  }, 600_000);

  it('a program that exits after supervisor took it as started (past startsecs), again and again: the deploy fails before the health timeout saying it keeps exiting, with its exit status and its last log lines once, the live release serving', async () => {
    project.write({ ...config, switch: { drain: 1, health_timeout: 90 }, programs: { web: { command: '{python} server.py {port}', port: 5100, health: '/health', env: {} } } });
    try {
      const live = await onHost(`readlink /srv/${APP}/current`);
      commit(repo, { MODE: 'slow-exit\n', VERSION: '7\n' }, 'a release whose program exits 4 s after each start');
      gitIn(repo, ['tag', 'slow-exit']);
      const started = Date.now();
      const err = await deploy(project.ctx(), project.env(), { ref: 'slow-exit' }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      const message = (err as Error).message;
      expect(message).toMatch(/did not become healthy on slot \w+: program web keeps exiting \(\d+ exits since its start, the last with exit status 1\)/);
      expect(message).toContain('RuntimeError: DATABASE_URL is not set (export it in the .env)');
      // Said once: in the verdict, not again under the log's header.
      expect(message.split('DATABASE_URL is not set').length).toBe(2);
      expect(message).not.toMatch(/^Error|\n\s+at /);
      expect(Date.now() - started).toBeLessThan(80_000);
      expect(await onHost(`readlink /srv/${APP}/current`)).toBe(live);
      expect((await get(host)).body).toBe('1');
    } finally {
      project.write(config);
    }
  }, 600_000);

  it("a start script that runs <base>/current's files (written for a layout deployed in place): the deploy fails naming the path and the live release it is, before any traffic goes there", async () => {
    // Its working directory and OPS_RELEASE are the new release's; `current` names the live release until the
    // switch, so the program would serve the live release's code under the new one's name, for good.
    project.write({ ...config, programs: { web: { command: 'sh start.sh {port}', port: 5100, health: '/health', env: {} } } });
    try {
      const live = await onHost(`readlink /srv/${APP}/current`);
      commit(repo, { MODE: 'ok\n', VERSION: '6\n', 'start.sh': `exec python3 /srv/${APP}/current/server.py "$1" >> /tmp/ops-gate-web.log 2>&1\n` }, 'a start script through current');
      gitIn(repo, ['tag', 'through-current']);
      const err = await deploy(project.ctx(), project.env(), { ref: 'through-current' }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      const id = live.split('/').pop()!;
      expect((err as Error).message).toMatch(new RegExp(`port \\d+ of program web is answered by pid \\d+ \\(python3 /srv/${APP}/current/server\\.py \\d+\\) running \\S+, in /srv/${APP}/releases/\\S+, whose command line or environment names /srv/${APP}/current/server\\.py, release ${id}'s code, not release`));
      expect((err as Error).message).not.toMatch(/^Error|\n\s+at /);
      expect(await onHost(`readlink /srv/${APP}/current`)).toBe(live);
      expect((await get(host)).body).toBe('1');
    } finally {
      project.write(config);
    }
  }, 600_000);
});

describe.sequential('what the start and the switch would meet, read before building', () => {
  /** The releases on the host (to see that a refused deploy made none). */
  const releases = async () => onHost(`ls /srv/${APP}/releases`);
  /** The port of program web on the slot a deploy starts on (port_offset 1). */
  const idlePort = async () => ((await onHost(`cat /srv/${APP}/.ops/slot`)) === 'blue' ? 5101 : 5100);

  it('a foreign process on the idle slot\'s port: refused before building, naming host, port, pid and command; the warm previous release there is not foreign', async () => {
    project.write(config);
    // Two good deploys: the idle slot then runs the previous release, kept warm, which the next deploy replaces itself.
    await deploy(project.ctx(), project.env(), { ref: 'good', force: true });
    await deploy(project.ctx(), project.env(), { ref: 'good', force: true });
    // Both slots run (the live one may still be STARTING: startsecs).
    expect(await onHost(`supervisorctl status | grep -cE 'RUNNING|STARTING' || true`)).toBe('2');
    const port = await idlePort();
    // The warm previous release holds the idle port: stopped (as a tester did), so that something else can take it.
    await onHost(`supervisorctl stop ${APP}-${port === 5101 ? 'green' : 'blue'}:*`);
    await onHost(`systemd-run --unit=ops-squat -- python3 -m http.server ${port} --bind 127.0.0.1; ${untilListening(port)}`);
    try {
      const before = await releases();
      const pid = await onHost('systemctl show -p MainPID --value ops-squat');
      const err = await deploy(project.ctx(), project.env(), { ref: 'good', force: true }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(
        new RegExp(`^the ports this release would start on \\(slot (blue|green)\\) are taken on ${host.name}: port ${port} \\(program web\\) is held by pid ${pid} \\((/usr/bin/)?python3 -m http\\.server ${port} --bind 127\\.0\\.0\\.1\\)\\. Its start would fail, so nothing was started \\(no build, no migration\\); ${host.name} still serves \\S+$`),
      );
      expect((err as { hint?: string }).hint).toContain(`sudo kill ${pid}`);
      expect(await releases()).toBe(before);
      expect((await get(host)).body).toBe('1');
    } finally {
      await onHost('systemctl stop ops-squat || true');
    }
    const r = await deploy(project.ctx(), project.env(), { ref: 'good', force: true });
    expect(r.noop).toBe(false);
    expect((await get(host)).body).toBe('1');
  }, 600_000);

  it('nginx stopped: ops status says a deploy starts it; the deploy warns, naming the host, and its switch starts it, saying so; masked, the deploy refuses before building', async () => {
    await onHost('systemctl stop nginx');
    try {
      const s = await status(project.ctx(), project.env());
      expect(s.hosts[0]!.problems).toContain("nginx is not running: the site is down (sudo systemctl start nginx; the next deploy's switch starts it too, saying so)");
      await onHost('systemctl mask nginx');
      const before = await releases();
      const err = await deploy(project.ctx(), project.env(), { ref: 'good', force: true }).catch((e: Error) => e);
      expect((err as Error).message).toMatch(new RegExp(`^nginx is not running on ${host.name} and its unit is masked \\(systemctl mask nginx\\): the switch could not start it, so nothing was started`));
      expect(await releases()).toBe(before);
      expect(await onHost('systemctl is-active nginx || true')).toBe('inactive');
      await onHost('systemctl unmask nginx');
      const reporter = new MemoryReporter();
      const r = await deploy(project.ctx(reporter), project.env(), { ref: 'good', force: true });
      expect(reporter.lines).toContain(`warning: nginx is not running on ${host.name}: the site is down; the switch will start it`);
      expect(reporter.lines).toContain(`warning: nginx was not running on ${host.name}: the switch started it (the site was down until then)`);
      expect(r.hosts[0]!.notes).toContain(`warning: nginx was not running on ${host.name}: the switch started it (the site was down until then)`);
      expect(await onHost('systemctl is-active nginx || true')).toBe('active');
      expect((await get(host)).body).toBe('1');
      expect((await status(project.ctx(), project.env())).hosts[0]!.problems).toEqual([]);
    } finally {
      await onHost('systemctl unmask nginx; systemctl start nginx || true');
    }
  }, 600_000);
});

/**
 * A Starlette app as users write them: TrustedHostMiddleware allows the site's name only (Django's ALLOWED_HOSTS
 * does the same), under uvicorn, which takes X-Forwarded-Proto from 127.0.0.1 (its proxy headers, on by default).
 * Versions pinned as the sample app's (test/fixtures/app: the lab's PyPI cache has them).
 */
const STARLETTE = String.raw`from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
async def health(request):
    return PlainTextResponse(request.url.scheme + " " + request.headers["x-forwarded-for"])
app = Starlette(routes=[Route("/health", health)], middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=["gate.example.test"])])
`;
const STARLETTE_REQUIREMENTS = `starlette==0.49.3
uvicorn==0.38.0
anyio==4.12.1
click==8.1.8
h11==0.16.0
idna==3.20
typing-extensions==4.16.0
exceptiongroup==1.3.2 ; python_full_version < '3.11'
`;

describe.sequential('the request the health probe makes: the one nginx passes the site\'s visitors', () => {
  const trusted = (domain: string | undefined, healthTimeout: number) => {
    const c = {
      ...config,
      ref: 'trusted',
      switch: { drain: 1, health_timeout: healthTimeout },
      release: { python_requirements: 'requirements.txt', node_dir: '', build: 'true', migrate: 'true' },
      packages: { pip_index_url: pypiIndexUrl },
      programs: { web: { command: '{release}/venv/bin/python -m uvicorn asgi:app --host 127.0.0.1 --port {port}', port: 5100, health: '/health', env: {} } },
    };
    return domain ? { ...c, domain } : c;
  };

  it('TrustedHostMiddleware allowing the domain: healthy (Host the domain, X-Forwarded-Proto as the site serves); without a domain it answers 400 to the probe, and the deploy fails within seconds quoting it, not after health_timeout', async () => {
    commit(repo, { 'asgi.py': STARLETTE, 'requirements.txt': STARLETTE_REQUIREMENTS }, 'a Starlette app that trusts its domain only');
    gitIn(repo, ['tag', 'trusted']);
    project.write(trusted('gate.example.test', 45));
    await deploy(project.ctx(), project.env(), { ref: 'trusted', force: true });
    // What nginx passes it: the same headers (the scheme uvicorn took from X-Forwarded-Proto, the client address).
    expect(await onHost("curl -s -H 'Host: gate.example.test' http://127.0.0.1/health")).toBe('http 127.0.0.1');

    project.write(trusted(undefined, 120));
    const started = Date.now();
    const err = await deploy(project.ctx(), project.env(), { ref: 'trusted', force: true }).catch((e: Error) => e);
    const seconds = (Date.now() - started) / 1000;
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(
      /did not become healthy on slot \w+: the same client error for \d+s, the program's answer to the probe \(it runs, and refuses the request\), from web:\d+:\/health \(The requested URL returned error: 400 \(HTTP\/1\.1 400 Bad Request\), answering: Invalid host header; the probe sends Host: 127\.0\.0\.1, X-Forwarded-Proto: http, as nginx forwards the site's requests: .*Django's ALLOWED_HOSTS, Starlette's TrustedHostMiddleware/,
    );
    expect(seconds).toBeLessThan(120);
    // The live release (the domain's) keeps serving.
    expect(await onHost("curl -s -H 'Host: gate.example.test' http://127.0.0.1/health")).toBe('http 127.0.0.1');
  }, 900_000);
});
