// Issue 15 and issue 22's release order, on a provisioned Debian host: what ops reports live is what serves.
// A small app of our own (Python's standard library only, no dependencies to install), in repositories made
// here the way users' look: a `%` in the command, hard environment values checked in /proc/<pid>/environ,
// supervisor refusing a file, a program that daemonizes itself, status catching a live slot that runs
// something other than `current`, pruning that keeps good releases, a runner whose clock is months behind,
// a submodule and Git LFS files, a branch and a tag of one name.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PRESET_VARIABLES } from '../../core/config/env-names.ts';
import { deploy } from '../../core/ops/deploy.ts';
import { listReleases } from '../../core/ops/records.ts';
import { rollback } from '../../core/ops/rollback.ts';
import { status } from '../../core/ops/status.ts';
import { quote } from '../../core/shell.ts';
import { sshRun } from '../hosts/index.ts';
import { commit, gitIn, initRepo, lfsTrack } from '../support/gitrepo.ts';
import { runOps } from '../support/cli.ts';
import { APP, get, labEnvironment } from './support.ts';

/** The app: answers /health, and / with its release, version, argv and a library file; optional pre-forked workers. */
const SERVER = String.raw`import json, os, socket, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

port = int(sys.argv[1])
workers = int(sys.argv[2]) if len(sys.argv) > 2 else 0

def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = b"ok"
        else:
            body = json.dumps({"release": os.environ.get("OPS_RELEASE"), "version": read("VERSION"), "lib": read("vendor/lib/VERSION"),
                               "argv": sys.argv, "log_format": os.environ.get("LOG_FORMAT")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", port), Handler)
# Pre-forked workers accept on the socket the master bound (like gunicorn or uvicorn --workers).
for _ in range(workers):
    if os.fork() == 0:
        break
server.serve_forever()
`;

let repo: string;
const root = mkdtempSync(join(tmpdir(), 'ops-truth-'));
const lab = labEnvironment('tru', () => {
  repo = join(root, 'app');
  initRepo(repo, { 'server.py': SERVER, 'VERSION': '1\n', 'build.sh': 'true\n' });
  gitIn(repo, ['tag', 'good1']);
  return config();
});

/** The environment: one program `web` of our app; the build fails in commits whose build.sh says so. */
function config(extra: { command?: string; env?: Record<string, string>; repository?: string; release?: Record<string, unknown> } = {}): Record<string, unknown> {
  return {
    app: APP,
    repository: extra.repository ?? repo,
    ref: 'good1',
    hosts: [{ name: lab.host.name, address: lab.host.address, user: lab.host.user, host_key: lab.host.hostKey }],
    ssh: { identity_file: lab.host.identityFile, connect_timeout: 10 },
    release: { python_requirements: '', node_dir: '', build: 'sh build.sh', migrate: 'true', keep: 3, keep_failed: 2, ...extra.release },
    switch: { drain: 5, health_timeout: 30 },
    programs: { web: { command: extra.command ?? '{python} server.py {port} 2', port: 5100, health: '/health', env: extra.env ?? {} } },
    routes: { '/': 'web' },
  };
}

async function page(): Promise<{ release: string; version: string; lib: string; argv: string[]; log_format: string | null }> {
  const r = await get(lab.host);
  expect(r.status).toBe(200);
  return JSON.parse(r.body);
}

/** On the host, as root. */
async function onHost(command: string): Promise<string> {
  return (await sshRun(lab.host, `sudo bash -c ${quote(command)}`)).stdout.trim();
}

/** The pid supervisor runs for `web` on the live slot. */
async function livePid(): Promise<string> {
  const slot = await onHost(`cat /srv/${APP}/.ops/slot`);
  return onHost(`supervisorctl pid ${APP}-${slot}:${APP}-${slot}-web`);
}

const run = (ref: string, options: { force?: boolean } = {}) => deploy(lab.project.ctx(), lab.project.env(), { ref, ...options });

describe.sequential('what ops reports live is what serves', () => {
  it('a % in the command and hard environment values reach the process exactly (argv, /proc/<pid>/environ); status is healthy', async () => {
    // Each value supervisor can carry, from environment.yml to the running process, byte for byte.
    const hard: Record<string, string> = {
      PERCENT: '100% %(h)s %(program_name)s',
      DOUBLE_QUOTES: 'say "hi" now',
      SINGLE_QUOTE: "it's",
      COMMA: 'a,b=c,d',
      BACKSLASH: 'C:\\path\\new',
      SPACES: '  spaced  out  ',
      EQUALS: 'x=y=z',
      UNICODE: 'ünïcödé ✓ 日本語',
      // not $HOME or $PATH: a variable the program is given, named so, is refused (supervisor expands none)
      DOLLAR: '$UNSET ${NOPE} `id`',
      EMPTY: '',
    };
    lab.project.write(config({ command: 'env LOG_FORMAT=%(h)s {python} server.py {port} 2', env: hard }));
    const r = await run('good1');
    const p = await page();
    expect(p.release).toBe(r.release);
    expect(p.log_format).toBe('%(h)s');
    const pid = await livePid();
    expect(await onHost(`tr '\\0' ' ' < /proc/${pid}/cmdline`)).toMatch(/^\/usr\/bin\/python3\.11 server\.py 510\d 2 ?$/);
    const environ = await onHost(`base64 -w0 /proc/${pid}/environ`);
    const vars = Object.fromEntries(
      Buffer.from(environ, 'base64')
        .toString('utf8')
        .split('\0')
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    );
    for (const [k, v] of Object.entries(hard)) expect(vars[k], k).toBe(v);
    expect(vars.LOG_FORMAT).toBe('%(h)s');
    expect(vars.OPS_RELEASE).toBe(r.release);
    // every other variable the program has is one ops knows the process environment sets (PRESET_VARIABLES), so
    // that a .env key of that name, which the app's .env readers would let it win over, is refused by the config
    const others = Object.keys(vars).filter((k) => !(k in hard) && k !== 'LOG_FORMAT');
    expect(others.filter((k) => !PRESET_VARIABLES.get(k)?.app)).toEqual([]);
    expect(others).toEqual(expect.arrayContaining(['INVOCATION_ID', 'JOURNAL_STREAM', 'SUPERVISOR_PROCESS_NAME']));
    const s = await status(lab.project.ctx(), lab.project.env());
    expect(s.problems).toEqual([]);
    expect(s.hosts[0]!.supervisor!.programs.find((x) => x.live)).toMatchObject({ release: r.release, pid: Number(pid), deleted: false });
    expect(s.hosts[0]!.supervisor!.programs.find((x) => x.live)!.listeners).toHaveLength(3); // the master and two workers
  }, 300_000);

  it('a value supervisor cannot carry is refused at plan time, by name, without the value; the host is untouched', async () => {
    const before = await page();
    lab.project.write(config({ env: { BOTH: `it's "x" y` } }));
    const err = (await run('good1', { force: true }).catch((e: Error) => e)) as Error;
    expect(err.message).toMatch(/^programs\.web\.env\.BOTH: supervisor cannot carry this value: it holds both kinds of quotes/);
    expect(err.message).not.toContain(`it's "x" y`);
    lab.project.write(config());
    expect(await page()).toEqual(before);
    // Then a normal deploy works.
    const r = await run('good1', { force: true });
    expect((await page()).release).toBe(r.release);
  }, 300_000);

  it('supervisor refusing the new file fails the deploy with its own message; the previous file is back, the next deploy works', async () => {
    const before = await page();
    const slot = await onHost(`cat /srv/${APP}/.ops/slot`);
    const idle = slot === 'blue' ? 'green' : 'blue';
    const previousFile = await onHost(`cat /etc/supervisor/conf.d/${APP}-${idle}.conf`);
    // A log directory removed by hand: supervisor refuses any program logging there.
    await onHost(`mv /var/log/${APP} /var/log/${APP}.away`);
    try {
      const err = (await run('good1', { force: true }).catch((e: Error) => e)) as Error;
      expect(err.message).toMatch(new RegExp(`supervisor refuses its configuration, with or without this deploy's change \\(fix the file it names\\): CANT_REREAD: The directory named as part of the path /var/log/${APP}/web-(blue|green)\\.out\\.log does not exist`));
      expect(err.message).toMatch(/the previous file is back in place; the live release keeps serving/);
      expect(await onHost(`cat /etc/supervisor/conf.d/${APP}-${idle}.conf`)).toBe(previousFile);
      expect(await page()).toEqual(before);
    } finally {
      await onHost(`mv /var/log/${APP}.away /var/log/${APP}`);
    }
    const r = await run('good1', { force: true });
    expect((await page()).release).toBe(r.release);
    expect((await status(lab.project.ctx(), lab.project.env())).problems).toEqual([]);
  }, 300_000);

  it('a program that daemonizes itself answers the health check but not as supervisor\'s process: refused before the switch, naming it', async () => {
    const before = await page();
    commit(repo, { 'VERSION': 'daemon\n' }, 'a version whose program daemonizes');
    gitIn(repo, ['tag', 'daemon']);
    lab.project.write(config({ command: `sh -c '(setsid {python} server.py {port} > /dev/null 2>&1 &); exec sleep 3600'` }));
    try {
      const err = (await run('daemon').catch((e: Error) => e)) as Error;
      expect(err.message).toMatch(/is not what answers on slot \w+: port 510\d of program web is answered by pid \d+ \(\/usr\/bin\/python3\.11 server\.py 510\d\) running \d{8}T\d{6}Z-[0-9a-f]{12}, in \/srv\/sample\/releases\/\S+, which supervisor did not start \(its process for web is pid \d+\)/);
      expect(err.message).toMatch(/still serves .*; nothing was switched/);
      expect(await page()).toEqual(before);
    } finally {
      // The daemon outlived its supervisor group (it left the process group): stop it by hand.
      // Gone before the next test's start needs its port (tail --pid: until it exits, 10 s at most).
      await onHost(`for p in $(pgrep -f '^/usr/bin/python3.11 server.py'); do [ "$(awk '/^PPid:/ { print $2 }' /proc/$p/status)" = 1 ] && kill $p && timeout 10 tail --pid=$p -f /dev/null; done; true`);
      lab.project.write(config());
    }
  }, 300_000);

  it('supervisor refusing this deploy\'s own file (a hand-written program clashes with it): its message, the file taken back, next deploy works', async () => {
    const before = await page();
    const slot = await onHost(`cat /srv/${APP}/.ops/slot`);
    const idle = slot === 'blue' ? 'green' : 'blue';
    // The idle slot emptied (the failed start above put its previous release back there: stopped and forgotten by
    // supervisor's update once its file is gone), then a hand-written file claims its program's name.
    await onHost(`rm -f /etc/supervisor/conf.d/${APP}-${idle}.conf && supervisorctl update >/dev/null`);
    expect(await onHost(`test -e /etc/supervisor/conf.d/${APP}-${idle}.conf && echo yes || echo no`)).toBe('no');
    await onHost(`printf '[fcgi-program:${APP}-${idle}-web]\\nsocket=tcp://127.0.0.1:9\\ncommand=/bin/true\\nautostart=false\\n' > /etc/supervisor/conf.d/zz-by-hand.conf`);
    try {
      const err = (await run('good1', { force: true }).catch((e: Error) => e)) as Error;
      expect(err.message).toMatch(new RegExp(`supervisor refused the new configuration of slot ${idle} \\(/etc/supervisor/conf.d/${APP}-${idle}.conf\\): CANT_REREAD: .*${APP}-${idle}-web is ambiguous \\(exists as program and fcgi-program\\)`));
      expect(await onHost(`test -e /etc/supervisor/conf.d/${APP}-${idle}.conf && echo yes || echo no`)).toBe('no');
      expect(await page()).toEqual(before);
    } finally {
      await onHost('rm -f /etc/supervisor/conf.d/zz-by-hand.conf');
    }
    const r = await run('good1', { force: true });
    expect((await page()).release).toBe(r.release);
  }, 300_000);

  it('status catches a live slot that runs something other than current, and a process running from a deleted directory', async () => {
    const r = await run('good1', { force: true });
    const releases = (await listReleases(lab.project.ctx(), lab.project.env()))[0]!.releases;
    const other = releases.find((x) => x.status !== 'current' && x.id !== r.release)!;
    // Broken on purpose: `current` names another release than the one the live slot runs.
    await onHost(`ln -sfn /srv/${APP}/releases/${other.id} /srv/${APP}/current`);
    try {
      const s = await status(lab.project.ctx(), lab.project.env());
      expect(s.healthy).toBe(false);
      expect(s.problems).toContainEqual(expect.stringMatching(new RegExp(`program web \\(live slot \\w+, pid \\d+\\) runs release ${r.release}, but current is ${other.id}`)));
      const cli = await runOps(['status', 'e2e'], { root: lab.project.root, processEnv: { PATH: process.env.PATH, HOME: process.env.HOME } });
      expect(cli.code).toBe(1);
      expect(cli.out).toMatch(new RegExp(`pid \\d+ runs ${r.release}`));
    } finally {
      await onHost(`ln -sfn /srv/${APP}/releases/${r.release} /srv/${APP}/current`);
    }
    // The live release's directory removed by hand: its processes run deleted code.
    await onHost(`mv /srv/${APP}/releases/${r.release} /srv/${APP}/releases/.gone && rm -rf /srv/${APP}/releases/.gone`);
    const s = await status(lab.project.ctx(), lab.project.env());
    expect(s.problems).toContainEqual(expect.stringMatching(/program web \(live slot \w+, pid \d+\) runs from a directory that no longer exists/));
    const again = await run('good1', { force: true });
    expect((await page()).release).toBe(again.release);
  }, 300_000);

  it('keep 3: one good, four failed, one good deploy → ops rollback goes to the previous good release, which was kept', async () => {
    const good1 = await run('good1', { force: true });
    commit(repo, { 'build.sh': 'echo "build failed on purpose" >&2; exit 1\n' }, 'broken build');
    gitIn(repo, ['tag', 'broken']);
    for (let i = 0; i < 4; i++) await expect(run('broken', { force: true })).rejects.toThrow(/step "build" .* failed[\s\S]*build failed on purpose/);
    commit(repo, { 'build.sh': 'true\n', 'VERSION': '2\n' }, 'version 2');
    gitIn(repo, ['tag', 'good2']);
    const good2 = await run('good2');
    expect((await page()).version).toBe('2');
    const list = (await listReleases(lab.project.ctx(), lab.project.env()))[0]!.releases;
    expect(list.find((x) => x.id === good1.release)?.kept).toMatch(/good: 2 of keep 3/);
    expect(list.filter((x) => x.status === 'failed')).toHaveLength(2);
    expect(list.filter((x) => x.status === 'failed').every((x) => /^failed: \d of keep_failed 2/.test(x.kept ?? ''))).toBe(true);
    // No process of this app runs from a deleted directory.
    expect(await onHost(`for p in /proc/[0-9]*; do readlink $p/cwd; done 2>/dev/null | grep -c '/srv/${APP}/releases/.*(deleted)' || true`)).toBe('0');
    const back = await rollback(lab.project.ctx(), lab.project.env());
    expect(back.hosts[0]).toMatchObject({ previous: good2.release, release: good1.release });
    expect((await page()).release).toBe(good1.release);
    expect((await status(lab.project.ctx(), lab.project.env())).problems).toEqual([]);
  }, 600_000);

  it('a deploy from a runner whose clock is months behind, then ops rollback: back to the release live before it', async () => {
    const before = await run('good2', { force: true });
    commit(repo, { 'VERSION': '3\n' }, 'version 3');
    gitIn(repo, ['tag', 'good3']);
    const skewed = await deploy({ ...lab.project.ctx(), now: () => new Date(Date.now() - 150 * 86_400_000) }, lab.project.env(), { ref: 'good3' });
    expect(skewed.release < before.release).toBe(true); // its id sorts first...
    expect(skewed.hosts[0]!.notes.join('\n')).toMatch(/warning: this runner's clock is 150 days behind/);
    expect((await page()).version).toBe('3');
    const list = (await listReleases(lab.project.ctx(), lab.project.env()))[0]!.releases;
    expect(list[0]).toMatchObject({ id: skewed.release, status: 'current' }); // ...but it went live last
    const back = await rollback(lab.project.ctx(), lab.project.env());
    expect(back.hosts[0]!.release).toBe(before.release);
    expect((await page()).release).toBe(before.release);
  }, 300_000);

  it('a submodule and Git LFS files: their contents are in the release; a checkout without them is refused, current unchanged', async () => {
    const lib = join(root, 'lib');
    initRepo(lib, { 'VERSION': 'lib 7\n' });
    const blob = randomBytes(5000);
    lfsTrack(repo, '*.bin');
    gitIn(repo, ['submodule', 'add', '-q', '../lib', 'vendor/lib']);
    commit(repo, { 'assets/model.bin': blob, 'VERSION': '4\n' }, 'version 4: a submodule and an LFS file');
    gitIn(repo, ['tag', 'with-sub']);
    const r = await run('with-sub');
    expect(r.hosts[0]!.notes.join('\n')).toMatch(/submodules included: vendor\/lib \([0-9a-f]{12}\)[\s\S]*Git LFS contents included: 1 file/);
    expect(await page()).toMatchObject({ version: '4', lib: 'lib 7' });
    expect(await onHost(`sha256sum < /srv/${APP}/current/assets/model.bin | cut -d' ' -f1`)).toBe(createHash('sha256').update(blob).digest('hex'));
    // A runner that checked out without submodules and LFS content: refused before anything changes.
    const clone = join(root, 'clone');
    gitIn(root, ['clone', '-q', repo, clone], { GIT_LFS_SKIP_SMUDGE: '1' });
    gitIn(repo, ['commit', '-q', '--allow-empty', '-m', 'version 4b']);
    gitIn(repo, ['tag', 'with-sub-2']);
    gitIn(clone, ['fetch', '-q', '--tags']);
    lab.project.write(config({ repository: clone }));
    try {
      const err = (await run('with-sub-2').catch((e: Error) => e)) as Error & { hint?: string };
      expect(err.message).toMatch(/cannot be deployed complete: submodule not checked out on this runner: vendor\/lib \(commit [0-9a-f]{12}\); Git LFS file without content on this runner \(only the pointer\): assets\/model\.bin; nothing was changed/);
      expect(err.hint).toMatch(/submodules: recursive/);
      expect(await onHost(`readlink /srv/${APP}/current`)).toBe(`/srv/${APP}/releases/${r.release}`);
    } finally {
      lab.project.write(config());
    }
  }, 300_000);

  it('a branch and a tag of one name: refused as ambiguous; refs/tags/X deploys the tag', async () => {
    const tagged = gitIn(repo, ['rev-parse', 'good2']);
    gitIn(repo, ['tag', 'release', tagged]);
    gitIn(repo, ['branch', 'release', 'with-sub']);
    const cli = await runOps(['deploy', 'e2e', '--ref', 'release'], { root: lab.project.root, processEnv: { PATH: process.env.PATH, HOME: process.env.HOME } });
    expect(cli.code).toBe(1);
    expect(cli.err).toMatch(/ref "release" is ambiguous: it names a tag \([0-9a-f]{12}\) and a branch \([0-9a-f]{12}\)/);
    expect(cli.err).toMatch(/say which one: refs\/tags\/release or refs\/heads\/release/);
    const r = await run('refs/tags/release');
    expect(r).toMatchObject({ sha: tagged, matched: 'tag release' });
    expect((await page()).version).toBe('2');
  }, 300_000);
});
