// A switch reports success only when nginx serves the new slot, on a real host, through the CLI as a user runs it:
// nginx's pid file gone (the master is found and signalled, status still sees nginx running), a master that does not
// take up the reload, a hand-made map that keeps /.ops/slot from naming the new slot (deploy and rollback fail, the
// previous routing is back, `current` unchanged, the live release serving), /.ops/slot refused to other machines,
// a rollback refused by nginx -t that keeps the warm slot running, and a deploy refused while supervisord is stopped;
// and what a browser holding a page across switches sees: its hashed assets (release.asset_dirs), its request in flight
// to the release kept warm when the next deploy replaces it, its WebSocket.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';
import { APP, asRoot, readable, assetApp, get, labEnvironment, pythonWebApp, versionedApp, RELOAD_NGINX, webConfig } from './support.ts';

let repo = '';
const lab = labEnvironment('swt', (host) => webConfig(host, (repo = versionedApp('ops-switch-'))), {
  ready: async () => {
    for (const ref of ['v1', 'v2']) expect((await ops('deploy', 'e2e', '--ref', ref)).code).toBe(0);
    expect(await serving()).toBe('version 2');
  },
});
const ops = (...argv: string[]) => lab.ops(...argv);

/** On the host, as root. */
const onHost = (command: string): Promise<string> => asRoot(lab.host, command);

/** The version "/" answers through nginx, from this machine. */
async function serving(): Promise<string> {
  const r = await get(lab.host);
  expect(r.status).toBe(200);
  return r.body;
}

const current = () => onHost(`readlink /srv/${APP}/current`);
const liveSlot = () => onHost(`cat /srv/${APP}/.ops/slot`);
const master = () => onHost('systemctl show -p MainPID --value nginx');
/** The release a slot's supervisor file names ('' when the slot has none). */
const slotRelease = (slot: string) => onHost(`sed -n 's/^; Managed by ops-pipeline: slot .* release \\(.*\\)\\. Rewritten by deploys\\.$/\\1/p' /etc/supervisor/conf.d/${APP}-${slot}.conf 2>/dev/null || true`);
/** The pid supervisor runs a slot's program `web` as, once RUNNING (its startsecs, 3 s, after a start), within 10 s: else ''. */
async function slotPid(slot: string): Promise<string> {
  for (let i = 0; i < 40; i++) {
    const pid = /RUNNING\s+pid (\d+)/.exec(await onHost(`supervisorctl status '${APP}-${slot}:${APP}-${slot}-web' || true`))?.[1];
    if (pid) return pid;
    await new Promise((ok) => setTimeout(ok, 250));
  }
  return '';
}

/** What the host serves and records, which a failed switch must leave as it was. */
async function snapshot(): Promise<{ page: string; current: string; slot: string }> {
  return { page: await serving(), current: await current(), slot: await liveSlot() };
}

describe.sequential('a switch reports success only when nginx serves the new slot', () => {
  it('/.ops/slot answers 403 to another machine, and the slot to the host itself', async () => {
    const remote = await get(lab.host, '/.ops/slot');
    expect(remote.status).toBe(403);
    expect(remote.body).not.toMatch(/^(blue|green)$/);
    expect(await onHost('curl -s http://127.0.0.1/.ops/slot')).toBe(await liveSlot());
  });

  it("a site template carried over from before blue/green (proxy_pass to the app's port itself): refused before any host, naming the line; the live release serves on", async () => {
    // The port of the slot live now: the one the deploy would leave to the previous release, kept warm there.
    const port = (await liveSlot()) === 'blue' ? 5100 : 5101;
    const before = await snapshot();
    writeFileSync(join(lab.project.root, 'environments', 'e2e', 'site.conf'), `{{upstreams_include}}\nserver {\n    listen 80{{default_server}};\n    server_name {{server_name}};\n    {{slot_location}}\n    location / {\n        proxy_pass http://127.0.0.1:${port};\n    }\n}\n`);
    lab.project.write(webConfig(lab.host, repo, { nginx: { site_template: 'site.conf' } }));
    const d = await ops('deploy', 'e2e', '--ref', 'v3');
    const text = readable(d);
    // Unrefused, it went "live" on the other slot while nginx went on asking the previous release: `current` said v3, the site v2.
    expect({ code: d.code, current: await current(), page: await serving() }, text).toEqual({ code: 2, current: before.current, page: before.page });
    expect(text).toContain(`environments/e2e/site.conf sends requests to a slot's port itself, line 7: 127.0.0.1:${port} (program web's port on slot ${before.slot})`);
    expect(text).toContain('proxy_pass http://');
    lab.project.write(webConfig(lab.host, repo));
  });

  it('nginx.pid gone: status says nginx runs and the pid file is missing; a deploy signals the master and really serves', async () => {
    await onHost('mv /run/nginx.pid /root/nginx.pid.moved');
    const pid = await master();
    const s = await ops('status', 'e2e');
    const text = readable(s);
    expect(text).not.toMatch(/NOT running/);
    expect(text).toMatch(/pid file \/run\/nginx\.pid is missing/);
    const d = await ops('deploy', 'e2e', '--ref', 'v3');
    expect(d.code, readable(d)).toBe(0);
    expect(await serving()).toBe('version 3');
    expect(await onHost('curl -s http://127.0.0.1/.ops/slot')).toBe(await liveSlot());
    expect(await onHost('cat /run/nginx.pid')).toBe(pid);
  });

  it('a rollback that nginx -t refuses (a hand-made site) changes nothing: the warm slot keeps running, the message is true', async () => {
    const idle = (await liveSlot()) === 'blue' ? 'green' : 'blue';
    const conf = `/etc/supervisor/conf.d/${APP}-${idle}.conf`;
    const warm = await onHost(`sed -n 's/^; Managed by ops-pipeline: slot .* release \\(.*\\)\\. Rewritten by deploys\\.$/\\1/p' ${conf}`);
    expect(warm).toMatch(/^\d{8}T\d{6}Z-/);
    const before = await snapshot();
    await onHost("echo 'bogus_directive on;' > /etc/nginx/sites-enabled/handmade");
    try {
      const r = await ops('rollback', 'e2e', '--to', warm);
      const text = readable(r);
      expect(r.code, text).not.toBe(0);
      expect(text).toMatch(/nginx -t fails/);
      expect(text).toMatch(/bogus_directive/);
      expect(text).toMatch(/nothing was changed/i);
      expect(await snapshot()).toEqual(before);
      expect(await onHost(`test -f ${conf} && echo kept`)).toBe('kept');
      expect(await onHost(`supervisorctl status '${APP}-${idle}:*'`)).toMatch(/RUNNING/);
    } finally {
      await onHost('rm -f /etc/nginx/sites-enabled/handmade');
    }
  });

  it('supervisord stopped: a deploy refuses before building, naming it, and does not claim the live release serves', async () => {
    const releases = await onHost(`ls /srv/${APP}/releases | wc -l`);
    await onHost('systemctl stop supervisor');
    try {
      const r = await ops('deploy', 'e2e', '--ref', 'v4');
      const text = readable(r);
      expect(r.code, text).not.toBe(0);
      expect(text).toContain(`supervisord is not running on ${lab.host.name} (systemctl start supervisor)`);
      expect(text).not.toMatch(/live release keeps serving/);
      expect(await onHost(`ls /srv/${APP}/releases | wc -l`)).toBe(releases);
    } finally {
      await onHost('systemctl start supervisor');
    }
    for (let i = 0; i < 60 && (await get(lab.host)).status !== 200; i++) await new Promise((ok) => setTimeout(ok, 500));
    expect(await serving()).toBe('version 3');
  });

  it('a master that does not take up the reload: rollback and deploy fail naming nginx reload, the live release serves, current unchanged, the warm slot kept', async () => {
    const before = await snapshot();
    const idle = before.slot === 'blue' ? 'green' : 'blue';
    const pid = await master();
    await onHost(`kill -STOP ${pid}`);
    try {
      for (const argv of [['rollback', 'e2e'], ['deploy', 'e2e', '--ref', 'v4']]) {
        const r = await ops(...argv);
        const text = readable(r);
        expect(r.code, text).not.toBe(0);
        expect(text).toMatch(/nginx reload failed/);
        expect(text).not.toMatch(/live: .* on slot/);
        expect(await snapshot()).toEqual(before);
        // The rollback reused the warm previous slot: it keeps running; the deploy replaced it with its own start, and
        // its failed switch put it back.
        expect(await slotPid(idle), `${argv[0]}: the idle slot runs`).toMatch(/^\d+$/);
      }
    } finally {
      await onHost(`kill -CONT ${pid}`);
    }
    // Resumed, the master takes up the reloads it was sent meanwhile, with the files as they are now (put back): once a
    // reload of those has taken (rather than a second's sleep), the site is as it was.
    await onHost(RELOAD_NGINX);
    expect(await snapshot()).toEqual(before);
  });

  it('/.ops/slot not naming the new slot after the reload: deploy and rollback fail and put the previous routing back', async () => {
    const before = await snapshot();
    // A hand-made map loaded after the app's site: nginx's slot variable stays "pinned" whatever the upstreams say.
    await onHost(`printf 'map "" $ops_slot_${APP} {\\n    default "pinned";\\n}\\n' > /etc/nginx/sites-enabled/zz-pin && nginx -t && ${RELOAD_NGINX}`);
    try {
      for (const argv of [['deploy', 'e2e', '--ref', 'v4'], ['rollback', 'e2e']]) {
        const r = await ops(...argv);
        const text = readable(r);
        expect(r.code, text).not.toBe(0);
        expect(text).toMatch(/did not take: nginx was reloaded, but its \/\.ops\/slot answers 'pinned'/);
        expect(text).toMatch(/previous nginx files are back in place and serve again/);
        expect(await snapshot()).toEqual(before);
      }
    } finally {
      await onHost(`rm -f /etc/nginx/sites-enabled/zz-pin && ${RELOAD_NGINX}`);
    }
  });

  it('a deploy (or a rollback to an older release) whose switch fails puts the previous release back on the idle slot, warm: a rollback then only moves traffic (the same process)', async () => {
    // A new live release, so that the idle slot holds the previous one warm (whatever the tests before left there).
    commit(repo, { 'VERSION': '5\n' }, 'version 5');
    const d = await ops('deploy', 'e2e', '--ref', 'main');
    expect(d.code, readable(d)).toBe(0);
    const before = await snapshot();
    const idle = before.slot === 'blue' ? 'green' : 'blue';
    const warm = await slotRelease(idle);
    expect(warm).toMatch(/^\d{8}T\d{6}Z-/);
    expect(await slotPid(idle), 'the previous release runs warm').toMatch(/^\d+$/);
    commit(repo, { 'VERSION': '6\n' }, 'version 6');
    await onHost(`printf 'map "" $ops_slot_${APP} {\\n    default "pinned";\\n}\\n' > /etc/nginx/sites-enabled/zz-pin && nginx -t && ${RELOAD_NGINX}`);
    let pid = '';
    try {
      const r = await ops('deploy', 'e2e', '--ref', 'main');
      const text = readable(r);
      expect(r.code, text).not.toBe(0);
      expect(text).toMatch(/did not take/);
      expect(text).toContain(`the previous release ${warm} is back on slot ${idle}, healthy: kept warm, a rollback to it only moves traffic`);
      expect(await snapshot()).toEqual(before);
      // The slot holds the release it held before the deploy, running (started again: the start had replaced it).
      expect(await slotRelease(idle)).toBe(warm);
      expect(await slotPid(idle), 'the previous release runs again on the idle slot').toMatch(/^\d+$/);
      // A rollback to an older release (started cold on that slot) whose switch fails puts it back the same way.
      const older = (await onHost(`grep -lx 1 /srv/${APP}/releases/*/VERSION | head -n 1`)).split('/').at(-2)!;
      expect(older).toMatch(/^\d{8}T\d{6}Z-/);
      const rb = await ops('rollback', 'e2e', '--to', older);
      const said = readable(rb);
      expect(rb.code, said).not.toBe(0);
      expect(said).toMatch(/did not take/);
      expect(said).toContain(`the previous release ${warm} is back on slot ${idle}, healthy: kept warm, a rollback to it only moves traffic`);
      expect(await snapshot()).toEqual(before);
      expect(await slotRelease(idle)).toBe(warm);
      pid = await slotPid(idle);
      expect(pid, 'the previous release runs again on the idle slot').toMatch(/^\d+$/);
    } finally {
      await onHost(`rm -f /etc/nginx/sites-enabled/zz-pin && ${RELOAD_NGINX}`);
    }
    const r = await ops('rollback', 'e2e');
    expect(r.code, readable(r)).toBe(0);
    expect(await serving()).toBe(`version ${await onHost(`cat /srv/${APP}/releases/${warm}/VERSION`)}`);
    expect(await current()).toBe(`/srv/${APP}/releases/${warm}`);
    // Reused as it ran: the process the failed deploy put back is the one that serves now.
    expect(await slotPid(idle), 'rollback reused the warm slot').toBe(pid);
  }, 600_000);
});

// Version skew as a browser sees it: a page loaded before a switch asks for its content-hashed assets after it. The
// app lists its assets once, at start, as adapter-node's sirv does (SvelteKit's /_app/immutable): a file put into its
// release later is never served.
describe('asset bridging (release.asset_dirs)', () => {
  const { server: assetServer, build } = assetApp;

  it('serves the assets of the page live before the switch after it, one release long, never over the new ones', async () => {
    const assets = join(mkdtempSync(join(tmpdir(), 'ops-assets-')), 'app');
    initRepo(assets, { 'server.py': assetServer, 'app.js': 'console.log(1)\n' });
    lab.project.write(webConfig(lab.host, assets, { release: { python_requirements: '', node_dir: '', build, migrate: 'true', asset_dirs: ['static'] } }));
    const deployed = async (js: string): Promise<string> => {
      commit(assets, { 'app.js': js }, js);
      const r = await ops('deploy', 'e2e', '--ref', 'main');
      expect(r.code, readable(r)).toBe(0);
      const page = await serving();
      expect(page).toMatch(/^\/static\/app-[0-9a-f]{12}\.js$/);
      expect(await get(lab.host, page)).toEqual({ status: 200, body: js });
      // A file of the same name in both releases is the new release's own.
      expect(await get(lab.host, '/static/version.txt')).toEqual({ status: 200, body: page.slice('/static/app-'.length, -'.js'.length) });
      return page;
    };
    const first = await deployed('console.log("first")\n');
    const second = await deployed('console.log("second")\n');
    // The page of the first release, loaded before the switch, gets its script from the second.
    expect(await get(lab.host, first)).toEqual({ status: 200, body: 'console.log("first")\n' });
    const third = await deployed('console.log("third")\n');
    expect(await get(lab.host, second)).toEqual({ status: 200, body: 'console.log("second")\n' });
    // Bounded: the first release's assets were the second's by carrying, not its own: not carried on.
    expect((await get(lab.host, first)).status).toBe(404);
    expect(third).not.toBe(second);
  }, 600_000);

  it('given a url, nginx serves them from disk: after a rollback to the warm release (which listed its files at its start), a page of the release rolled back from keeps its assets', async () => {
    const assets = join(mkdtempSync(join(tmpdir(), 'ops-assets-')), 'app');
    initRepo(assets, { 'server.py': assetServer, 'app.js': 'console.log(1)\n' });
    lab.project.write(webConfig(lab.host, assets, { release: { python_requirements: '', node_dir: '', build, migrate: 'true', asset_dirs: [{ dir: 'static', url: '/static/' }] } }));
    const pages: string[] = [];
    for (const js of ['console.log("one")\n', 'console.log("two")\n']) {
      commit(assets, { 'app.js': js }, js);
      const r = await ops('deploy', 'e2e', '--ref', 'main');
      expect(r.code, readable(r)).toBe(0);
      pages.push(await serving());
      // static/version.txt, a name every release has, changed content: served for good, so browsers keep the first they got.
      if (pages.length === 2) expect(readable(r)).toMatch(/warning: .*release\.asset_dirs\[0\] \(static, served at \/static\/ with "expires max".*since release \S+: static\/version\.txt: a browser that fetched one keeps the previous release's/);
    }
    const [one, two] = pages as [string, string];
    const rb = await ops('rollback', 'e2e');
    expect(rb.code, readable(rb)).toBe(0);
    expect(await serving()).toBe(one);
    // The page of release two, loaded before the rollback, asks the warm release one for its script.
    expect(await get(lab.host, two)).toEqual({ status: 200, body: 'console.log("two")\n' });
    expect(await get(lab.host, one)).toEqual({ status: 200, body: 'console.log("one")\n' });
    // The live release's own file first; cached for good (hashed names); no dotfile, nothing but the directory.
    const version = await onHost(`curl -si http://127.0.0.1${'/static/version.txt'}`);
    expect(version).toMatch(/Cache-Control: max-age=315360000/);
    expect(version.trim().endsWith(one.slice('/static/app-'.length, -'.js'.length))).toBe(true);
    await onHost(`echo secret > /srv/${APP}/current/static/.hidden`);
    expect((await get(lab.host, '/static/.hidden')).status).toBe(404);
    expect((await get(lab.host, '/static/../ASSET')).status).not.toBe(200);
  }, 600_000);

  it("given a url, nginx serves from disk a build's files not readable by all (umask 077: a copy, the release's own untouched) and its links to files of the release", async () => {
    const assets = join(mkdtempSync(join(tmpdir(), 'ops-assets-')), 'app');
    initRepo(assets, { 'server.py': assetServer, 'app.js': 'console.log("private")\n', 'images/logo.txt': 'logo\n' });
    const linked = `${build} && ln -s ../images/logo.txt static/logo.txt`;
    lab.project.write(webConfig(lab.host, assets, { release: { python_requirements: '', node_dir: '', build: `umask 077 && ${linked}`, migrate: 'true', asset_dirs: [{ dir: 'static', url: '/static/' }] } }));
    const r = await ops('deploy', 'e2e', '--ref', 'main');
    expect(r.code, readable(r)).toBe(0);
    const page = await serving();
    const file = `/srv/${APP}/current${page}`;
    expect(await onHost(`stat -c %a ${file}`)).toBe('600');
    // From disk: nginx's answer (cached for good), not the app's (which lists these files too, as its own user).
    const fromDisk = async (path: string) => {
      const answer = await onHost(`curl -si http://127.0.0.1${path}`);
      return { status: answer.split(' ')[1], cached: /\r\nCache-Control: max-age=315360000\r\n/.test(answer), body: answer.slice(answer.indexOf('\r\n\r\n') + 4) };
    };
    // (What the host printed, its last line break trimmed.)
    expect(await fromDisk(page)).toEqual({ status: '200', cached: true, body: 'console.log("private")' });
    expect(await fromDisk('/static/logo.txt')).toEqual({ status: '200', cached: true, body: 'logo' });
    expect(await onHost(`stat -c %a ${file}`)).toBe('600');
  }, 600_000);
});

// A request in flight when the next deploy (or a rollback) starts on the idle slot: nginx's old workers still send it
// to the release that slot runs (the one kept warm), which the start replaces.
describe('requests in flight to the previous release', () => {
  const go = '/run/ops-test-go';
  // /slow answers once the test lets it (the file `go` exists): an upload, a long poll or a report taking its time.
  const slowServer = pythonWebApp('"slow done" if self.path == "/slow" else open("VERSION").read()', 'import time', {
    threaded: true,
    handle: `if self.path == "/slow":
    end = time.time() + 120
    while not os.path.exists(${JSON.stringify(go)}) and time.time() < end:
        time.sleep(0.1)`,
  });

  it('the next deploy waits (switch.drain at most) for those of the release it replaces on the idle slot before stopping it', async () => {
    const slow = join(mkdtempSync(join(tmpdir(), 'ops-slow-')), 'app');
    initRepo(slow, { 'server.py': slowServer, 'VERSION': 'a' });
    lab.project.write(webConfig(lab.host, slow, { switch: { drain: 60, health_timeout: 30 } }));
    await onHost(`rm -f ${go}`);
    for (const v of ['b', 'c']) {
      commit(slow, { 'VERSION': v }, v);
      const r = await ops('deploy', 'e2e', '--ref', 'main');
      expect(r.code, readable(r)).toBe(0);
    }
    expect(await serving()).toBe('c');
    // A request to release c, then a switch away from it: c stays warm on the idle slot, the request in flight there.
    let settled: { status: number; body: string } | Error | undefined;
    const request = fetch(`http://${lab.host.address}/slow`, { signal: AbortSignal.timeout(150_000) }).then(
      async (res) => (settled = { status: res.status, body: await res.text() }),
      (e: Error) => (settled = e),
    );
    await new Promise((ok) => setTimeout(ok, 500));
    commit(slow, { 'VERSION': 'd' }, 'd');
    const d = await ops('deploy', 'e2e', '--ref', 'main');
    expect(d.code, readable(d)).toBe(0);
    expect(settled, 'the switch lets the request in flight go on').toBeUndefined();
    // The next deploy starts on the slot that runs c.
    commit(slow, { 'VERSION': 'e' }, 'e');
    const e = ops('deploy', 'e2e', '--ref', 'main');
    for (let i = 0; i < 600 && !(await onHost(`test -e /srv/${APP}/.ops/lock/started && echo started || true`)); i++) await new Promise((ok) => setTimeout(ok, 100));
    for (let i = 0; i < 50 && !settled; i++) await new Promise((ok) => setTimeout(ok, 100));
    expect(settled, 'the start waits for the request in flight to the release it replaces').toBeUndefined();
    await onHost(`touch ${go}`);
    await request;
    expect(settled).toEqual({ status: 200, body: 'slow done' });
    const r = await e;
    expect(r.code, readable(r)).toBe(0);
    expect(readable(r)).toMatch(/slot (blue|green): waited \d+ s for 1 request\(s\) nginx still had in flight to the release it ran\n/);
    expect(await serving()).toBe('e');
    await onHost(`rm -f ${go}`);
  }, 600_000);
});

// A WebSocket through the built-in site: its handshake reaches the program, and the connection stays open across a
// switch (nginx's old worker keeps it, to the previous release kept warm).
describe('a WebSocket across a switch', () => {
  // After a handshake, each chunk comes back upper-cased after the release's VERSION: not WebSocket frames, but nginx
  // only relays bytes once the program switched protocols.
  const wsServer = pythonWebApp('VERSION', 'import base64, hashlib\nVERSION = open("VERSION").read().strip()', {
    threaded: true,
    http11: true,
    handle: String.raw`if self.headers.get("Upgrade", "").lower() == "websocket" and "upgrade" in self.headers.get("Connection", "").lower():
    accept = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    self.send_response(101)
    self.send_header("Upgrade", "websocket")
    self.send_header("Connection", "Upgrade")
    self.send_header("Sec-WebSocket-Accept", accept)
    self.end_headers()
    self.wfile.flush()
    while True:
        data = self.connection.recv(1024)
        if not data:
            return
        self.connection.sendall(VERSION.encode() + b":" + data.upper())`,
  });
  /** A WebSocket handshake with the site: the connection once the program switched protocols. */
  const upgrade = (): Promise<Socket> =>
    new Promise((ok, fail) => {
      const req = request({ host: lab.host.address, port: 80, path: '/ws', headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': randomBytes(16).toString('base64'), 'Sec-WebSocket-Version': '13' }, timeout: 10_000 });
      req.on('upgrade', (_res, socket: Socket) => ok(socket));
      req.on('response', (res) => fail(new Error(`the site answered the handshake with ${res.statusCode}, not 101`)));
      req.on('error', fail);
      req.end();
    });
  const echo = (socket: Socket, text: string) =>
    new Promise<string>((ok, fail) => {
      socket.once('data', (d: Buffer) => ok(d.toString()));
      socket.once('close', () => fail(new Error('the WebSocket was closed')));
      socket.write(text);
    });

  it('its handshake reaches the program, and the connection stays open across a switch, to the release it began with', async () => {
    const ws = join(mkdtempSync(join(tmpdir(), 'ops-ws-')), 'app');
    initRepo(ws, { 'server.py': wsServer, 'VERSION': 'x' });
    lab.project.write(webConfig(lab.host, ws));
    let r = await ops('deploy', 'e2e', '--ref', 'main');
    expect(r.code, readable(r)).toBe(0);
    const socket = await upgrade();
    try {
      expect(await echo(socket, 'hello')).toBe('x:HELLO');
      commit(ws, { 'VERSION': 'y' }, 'y');
      r = await ops('deploy', 'e2e', '--ref', 'main');
      expect(r.code, readable(r)).toBe(0);
      expect(await serving()).toBe('y');
      expect(await echo(socket, 'after')).toBe('x:AFTER');
      const fresh = await upgrade();
      expect(await echo(fresh, 'new')).toBe('y:NEW');
      fresh.destroy();
    } finally {
      socket.destroy();
    }
  }, 600_000);
});

// A site served over https: its port 80 only redirects there, so nginx must answer the new slot on 443, where the
// visitors are; another site that nginx takes first for the name on 443 (a certbot-made site of the same domain,
// left behind: nginx warns "conflicting server name", ignored) keeps every visitor there.
describe('a site served over https', () => {
  it('another enabled site taking the domain on 443: the deploy fails (not live), the previous routing back', async () => {
    const domain = 'app.swt.test'; // its certbot-made site file, named after it, sorts before the app's (sample)
    const https = () => onHost(`curl -sk --resolve ${domain}:443:127.0.0.1 https://${domain}/`);
    commit(repo, { 'VERSION': 'a\n' }, 'a');
    lab.project.write({ ...webConfig(lab.host, repo), domain, tls: { mode: 'self-signed' } });
    let r = await ops('provision', 'e2e');
    expect(r.code, readable(r)).toBe(0);
    r = await ops('deploy', 'e2e', '--ref', 'main');
    expect(r.code, readable(r)).toBe(0);
    expect(await https()).toBe('version a');
    // Sorted before the app's own site: nginx keeps this server block for the name on 443 and ignores the app's.
    await onHost(`openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=${domain} -keyout /etc/nginx/old.key -out /etc/nginx/old.crt 2>/dev/null
printf 'server {\\n    listen 443 ssl;\\n    listen [::]:443 ssl;\\n    server_name ${domain};\\n    ssl_certificate /etc/nginx/old.crt;\\n    ssl_certificate_key /etc/nginx/old.key;\\n    location / { return 200 "old site"; }\\n}\\n' > /etc/nginx/sites-enabled/${domain}
nginx -t && ${RELOAD_NGINX}`);
    try {
      expect(await https()).toBe('old site');
      const before = { current: await current(), slot: await liveSlot() };
      commit(repo, { 'VERSION': 'b\n' }, 'b');
      r = await ops('deploy', 'e2e', '--ref', 'main');
      const text = readable(r);
      expect(r.code, text).not.toBe(0);
      // Found before the build (the deploy's state read asks nginx for the health path as the switch does): nothing sent.
      expect(text).toContain(`another server block answers ${lab.host.address}:443 for the site's name`);
      expect(text).toContain(`/etc/nginx/sites-enabled/${domain}`);
      expect(text).toContain('nothing was sent, built or started');
      expect({ current: await current(), slot: await liveSlot() }).toEqual(before);
      // ops status says where the visitors are, rather than "healthy".
      const st = await ops('status', 'e2e');
      expect(st.code).not.toBe(0);
      expect(readable(st)).toContain(`nginx answers /.ops/slot with "old site", not a slot (over http: ${before.slot}): another enabled site takes ${domain} on port 443`);
    } finally {
      await onHost(`rm -f /etc/nginx/sites-enabled/${domain} /etc/nginx/old.key /etc/nginx/old.crt && ${RELOAD_NGINX}`);
    }
  }, 600_000);
});

// An alias is a name of the site as the domain is: an old hand-made www site left enabled, loaded before the app's
// (nginx only warns "conflicting server name"), would quietly take the alias's visitors while the domain served.
describe('an alias another enabled site claims', () => {
  it('the deploy refuses before its build, naming the alias, the file and the app; the previous release serves on', async () => {
    const domain = 'app.swt.test';
    const alias = 'www.app.swt.test';
    const aliasGets = () => onHost(`curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: ${alias}' http://127.0.0.1/x`);
    commit(repo, { 'VERSION': 'a\n' }, 'a');
    lab.project.write({ ...webConfig(lab.host, repo), domain, aliases: [alias] });
    let r = await ops('deploy', 'e2e', '--ref', 'main');
    expect(r.code, readable(r)).toBe(0);
    expect(await aliasGets()).toBe(`301 http://${domain}/x`);
    // Sorted before the app's own site: nginx keeps this server block for the alias and ignores the app's.
    await onHost(`printf 'server {\\n    listen 80;\\n    listen [::]:80;\\n    server_name ${alias};\\n    location / { return 200 "old www site"; }\\n}\\n' > /etc/nginx/sites-enabled/00-www
nginx -t && ${RELOAD_NGINX}`);
    try {
      expect(await aliasGets()).toBe('200');
      const before = { current: await current(), slot: await liveSlot() };
      commit(repo, { 'VERSION': 'b\n' }, 'b');
      r = await ops('deploy', 'e2e', '--ref', 'main');
      const text = readable(r);
      expect(r.code, text).not.toBe(0);
      // Found by the deploy's state read (nginx -T: the file loaded before the app's site that lists the alias), not by the switch after the build.
      expect(text).toContain(`${alias} (aliases[0]) is a server_name of /etc/nginx/sites-enabled/00-www, which nginx loads before ${APP}'s site`);
      expect(text).toContain('nothing was sent, built or started');
      expect({ current: await current(), slot: await liveSlot() }).toEqual(before);
      // ops status names it too.
      const st = await ops('status', 'e2e');
      expect(st.code).not.toBe(0);
      expect(readable(st)).toContain(`${alias} (aliases[0]) is a server_name of /etc/nginx/sites-enabled/00-www`);
    } finally {
      await onHost(`rm -f /etc/nginx/sites-enabled/00-www && ${RELOAD_NGINX}`);
    }
  }, 600_000);
});

// What a visitor gets through nginx must come from the new release: a custom site that answers its own page when the
// release cannot be reached (error_page 502 =200: the health path through nginx answers 200 while every visitor gets
// the maintenance page), and a server block of another file that takes the visitors' address before the app's site
// (listen <address>:80: nginx picks among the servers of the most specific address, so requests from the host itself,
// to 127.0.0.1, still reach the app's site). The deploy must fail, the previous release serve on, `current` stay.
describe('the response visitors get comes from the new release', () => {
  /** A server.py answering as the others but with a 10 KB Set-Cookie: more than nginx's proxy_buffer_size (502 through nginx). */
  const BIG_HEADER = pythonWebApp('"ok" if self.path == "/health" else "version " + VERSION', 'VERSION = open("VERSION").read().strip()').replace('        self.send_header("Content-Length"', '        self.send_header("Set-Cookie", "s=" + "a" * 10000)\n        self.send_header("Content-Length"');

  it('a custom site with error_page 502 =200 (a maintenance page): the deploy of a release nginx cannot pass on fails, naming what answered; the previous release serves', async () => {
    lab.project.write(webConfig(lab.host, repo));
    expect((await ops('deploy', 'e2e', '--ref', 'v2')).code).toBe(0);
    writeFileSync(
      join(lab.project.root, 'environments', 'e2e', 'site.conf'),
      `{{upstreams_include}}\nserver {\n    listen 80{{default_server}};\n    server_name {{server_name}};\n    {{logs}}\n    error_page 502 503 504 =200 /maintenance.html;\n    location = /maintenance.html {\n        internal;\n        default_type text/plain;\n        return 200 "down for maintenance";\n    }\n    {{slot_location}}\n    {{locations}}\n}\n`,
    );
    lab.project.write(webConfig(lab.host, repo, { nginx: { site_template: 'site.conf' } }));
    expect((await ops('deploy', 'e2e', '--ref', 'v3')).code).toBe(0);
    const before = await snapshot();
    expect(before.page).toBe('version 3');
    commit(repo, { 'server.py': BIG_HEADER }, 'a big cookie');
    gitIn(repo, ['tag', 'bigcookie']);
    gitIn(repo, ['reset', '--hard', 'HEAD~1']);
    const d = await ops('deploy', 'e2e', '--ref', 'bigcookie');
    const text = readable(d);
    // Unchecked, it went live: `current` the new release, every visitor the maintenance page.
    expect({ code: d.code, ...(await snapshot()) }, text).toEqual({ code: 1, ...before });
    expect(text).toContain('GET /health (program web): nginx answered 200, but the release answered 502 (127.0.0.1:');
    expect(text).toMatch(/error_page/);
    expect(text).toMatch(/previous nginx files are back in place and serve again/);
    lab.project.write(webConfig(lab.host, repo));
  }, 600_000);

  it("another server block listening on the host's address takes its visitors: deploy and rollback fail naming its file; the previous release serves", async () => {
    lab.project.write(webConfig(lab.host, repo));
    expect((await ops('deploy', 'e2e', '--ref', 'v4')).code).toBe(0);
    const before = await snapshot();
    await onHost(`printf 'server {\\n    listen ${lab.host.address}:80;\\n    location / { return 200 "other site"; }\\n}\\n' > /etc/nginx/conf.d/other.conf && nginx -t && ${RELOAD_NGINX}`);
    try {
      expect(await serving()).toBe('other site');
      for (const argv of [['deploy', 'e2e', '--ref', 'v3'], ['rollback', 'e2e']]) {
        const r = await ops(...argv);
        const text = readable(r);
        // Unchecked, both went "live": the switch's own looks, at 127.0.0.1, reach the app's site.
        expect({ code: r.code, current: await current(), slot: await liveSlot() }, text).toEqual({ code: 1, current: before.current, slot: before.slot });
        // Both refuse before anything changes (their state read asks nginx as the switch does): a deploy before its
        // build, a rollback before any slot is started.
        expect(text).toContain(`GET /health (program web): nginx answered 200, not from this site's server block: another server block answers ${lab.host.address}:80 for the site's name`);
        expect(text).toContain(argv[0] === 'deploy' ? 'nothing was sent, built or started' : 'nothing was changed (no slot started or stopped; nginx and current as they were)');
        expect(text).toContain('/etc/nginx/conf.d/other.conf');
      }
    } finally {
      await onHost(`rm -f /etc/nginx/conf.d/other.conf && ${RELOAD_NGINX}`);
    }
    expect(await snapshot()).toEqual(before);
  }, 600_000);
});
