// What a deploy checks before it calls a release live, and what it cleans up after a start that failed, on a real
// host (nginx, supervisor), with a Node app that fails the way users' code does: a response head larger than nginx's
// proxy buffer (a big Set-Cookie: the app answers its health check on its port, nginx answers every visitor 502), and
// a program that daemonises (a detached child in a session of its own, the parent gone: out of the process group
// supervisor stops, holding the slot's port). The live release serves throughout, the deploy fails saying why, and the
// next deploy succeeds.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { status } from '../../core/ops/status.ts';
import { quote } from '../../core/shell.ts';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';
import { APP, asRoot, get, labEnvironment, RELOAD_NGINX, webConfig } from './support.ts';

/**
 * The app: Node's http server answering every GET with its VERSION. MODE=bigheader adds a session cookie of 10 KB
 * (frameworks that keep the session in the cookie send such); MODE=daemon daemonises: the process supervisor starts
 * spawns a detached copy of itself (setsid: a session and process group of its own) that serves, and exits;
 * MODE=crashlate serves, and exits 8 s after each start (supervisor restarts it: never FATAL).
 */
const SERVER = String.raw`const http = require('http');
const fs = require('fs');
const { spawn } = require('child_process');
const port = Number(process.argv[2]);
const mode = fs.readFileSync('MODE', 'utf8').trim();
const version = fs.readFileSync('VERSION', 'utf8').trim();
// A crash some seconds after each start (a timer, a first background job, a lost connection): after the health check.
if (mode === 'crashlate') setTimeout(() => process.exit(1), 8000);
if (mode === 'daemon' && process.argv[3] !== 'daemon') {
  spawn(process.execPath, [__filename, String(port), 'daemon'], { detached: true, stdio: 'ignore' }).unref();
  process.exit(0);
}
http
  .createServer((req, res) => {
    const headers = { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(version) };
    if (mode === 'bigheader') headers['Set-Cookie'] = 'session=' + 'a'.repeat(10000) + '; Path=/; HttpOnly';
    res.writeHead(200, headers);
    res.end(version);
  })
  .listen(port, '127.0.0.1');
`;

let repo: string;
const root = mkdtempSync(join(tmpdir(), 'ops-ngate-'));
/** On the host, as root. */
const onHost = (command: string) => asRoot(lab.host, command);
const current = () => onHost(`readlink /srv/${APP}/current`);
const liveSlot = () => onHost(`cat /srv/${APP}/.ops/slot`);

const lab = labEnvironment(
  'ngt',
  (host) => {
    repo = join(root, 'app');
    initRepo(repo, { 'server.js': SERVER, MODE: 'ok\n', VERSION: '1\n' });
    gitIn(repo, ['tag', 'good']);
    return webConfig(host, repo, { ref: 'good', programs: { web: { command: '{node} server.js {port}', port: 5100, health: '/health', env: {} } } });
  },
  {
    ready: async ({ host, project }) => {
      await deploy(project.ctx(), project.env(), { ref: 'good' });
      expect((await get(host)).body).toBe('1');
    },
  },
);

describe.sequential('what nginx answers, and what a failed start leaves', () => {
  it('a release whose response head is too big for nginx (it answers its health check on its port, nginx answers 502): not switched, the deploy fails with nginx\'s words and the fix; the previous release serves', async () => {
    const before = { current: await current(), slot: await liveSlot() };
    commit(repo, { MODE: 'bigheader\n', VERSION: '2\n' }, 'a release that sends a 10 KB cookie');
    gitIn(repo, ['tag', 'bigheader']);
    const err = await deploy(lab.project.ctx(), lab.project.env(), { ref: 'bigheader' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const message = (err as Error).message;
    expect(message).toMatch(/answers its health checks on its own ports, but nginx answers the site's visitors 5xx for them once it routes to slot \w+ \(http:\/\/[0-9.]+\): GET \/health \(program web\): 502/);
    expect(message).toContain('upstream sent too big header');
    expect(message).toContain('proxy_buffer_size');
    expect(message).toContain('nothing was switched');
    expect(await get(lab.host)).toEqual({ status: 200, body: '1' });
    expect({ current: await current(), slot: await liveSlot() }).toEqual(before);
  }, 600_000);

  it('a release whose program daemonises (out of supervisor\'s process group, holding the port): its start fails, what it left is stopped and said, the previous release is back warm on the slot, and the next deploy succeeds', async () => {
    // Two good deploys: the idle slot runs the previous one warm.
    const previous = await deploy(lab.project.ctx(), lab.project.env(), { ref: 'good', force: true });
    await deploy(lab.project.ctx(), lab.project.env(), { ref: 'good', force: true });
    const idle = (await liveSlot()) === 'blue' ? 'green' : 'blue';
    commit(repo, { MODE: 'daemon\n', VERSION: '3\n' }, 'a release whose program daemonises');
    gitIn(repo, ['tag', 'daemon']);
    const err = await deploy(lab.project.ctx(), lab.project.env(), { ref: 'daemon' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const message = (err as Error).message;
    expect(message).toMatch(new RegExp(`stopped what release \\S+ left running on slot ${idle} outside supervisor .*: pid \\d+ \\(\\S+ \\S*/server\\.js \\d+ daemon, `));
    expect(message).toContain(`the previous release ${previous.release} is back on slot ${idle}, healthy: kept warm`);
    expect(await get(lab.host)).toEqual({ status: 200, body: '1' });
    // Nothing of the failed release runs; the idle slot's port is the previous release's.
    expect(await onHost("pgrep -f 'server.js [0-9]+ daemon' || true")).toBe('');
    // The next deploy starts on that slot again, and goes live.
    commit(repo, { MODE: 'ok\n', VERSION: '4\n' }, 'a good release again');
    gitIn(repo, ['tag', 'good-again']);
    await deploy(lab.project.ctx(), lab.project.env(), { ref: 'good-again' });
    expect(await get(lab.host)).toEqual({ status: 200, body: '4' });
  }, 900_000);

  it("another site of the host, made by hand for its own hostname, sending requests to a slot's port itself: the deploy is refused before anything starts, naming the file, the line and the upstream to name instead; named so, that hostname follows the switch", async () => {
    const env = lab.project.env();
    const live = (await liveSlot()) as 'blue' | 'green';
    const before = { current: await current(), slot: live };
    const file = '/etc/nginx/sites-enabled/api-by-hand';
    const site = (to: string) => `server {\n    listen 80;\n    server_name api.example.test;\n    location / {\n        proxy_pass ${to};\n    }\n}\n`;
    const viaApi = () => onHost("curl -s -H 'Host: api.example.test' http://127.0.0.1/");
    await onHost(`printf '%s' ${quote(site(`http://127.0.0.1:${env.port('web', live)}`))} > ${file} && nginx -t -q && ${RELOAD_NGINX}`);
    try {
      commit(repo, { VERSION: '6\n' }, 'version 6');
      gitIn(repo, ['tag', 'six']);
      const err = (await deploy(lab.project.ctx(), env, { ref: 'six' }).catch((e: unknown) => e)) as Error & { hint?: string };
      expect(err).toBeInstanceOf(Error);
      expect(err.message).toContain(
        `reads a file besides ${APP}'s site that sends requests to a slot's port itself, ${file}:5: 127.0.0.1:${env.port('web', live)} (program web's port on slot ${live}): nginx would reach that slot whatever the switch does`,
      );
      expect(err.message).toContain('nothing was started (no build, no migration)');
      expect(err.hint).toContain(`name the upstreams instead in ${file} (proxy_pass http://${env.layout.nginxUpstream('web')}`);
      expect({ current: await current(), slot: await liveSlot() }).toEqual(before);
      // ops status says it too (the hourly status workflow fails on it).
      expect((await status(lab.project.ctx(), env)).hosts[0]!.problems.join('\n')).toContain(`${file}:5: 127.0.0.1:${env.port('web', live)} (program web's port on slot ${live})`);
      // The hint done: the hand-made site names the upstream, and follows each switch.
      await onHost(`printf '%s' ${quote(site(`http://${env.layout.nginxUpstream('web')}`))} > ${file} && nginx -t -q && ${RELOAD_NGINX}`);
      await deploy(lab.project.ctx(), env, { ref: 'six' });
      expect(await get(lab.host)).toEqual({ status: 200, body: '6' });
      expect(await viaApi()).toBe('6');
    } finally {
      await onHost(`rm -f ${file} && ${RELOAD_NGINX}`);
    }
  }, 600_000);

  it('a release that exits some seconds after each start (after its health check passed): ops status says its program is started again and again, not healthy', async () => {
    commit(repo, { MODE: 'crashlate\n', VERSION: '5\n' }, 'a release that crashes 8 s after each start');
    gitIn(repo, ['tag', 'crashlate']);
    await deploy(lab.project.ctx(), lab.project.env(), { ref: 'crashlate' });
    const slot = await liveSlot();
    const pid = async () => /RUNNING\s+pid (\d+)/.exec(await onHost(`supervisorctl status '${APP}-${slot}:${APP}-${slot}-web' || true`))?.[1];
    // Until supervisor has started it again (it exits 8 s after a start; the deploy's first start is 30 s back at most).
    // Right after the deploy it may still be STARTING (startsecs): its first pid is the first RUNNING one seen.
    let first = await pid();
    for (let i = 0; i < 120 && !first; i++) {
      await new Promise((ok) => setTimeout(ok, 250));
      first = await pid();
    }
    expect(first).toBeDefined();
    let again = first;
    for (let i = 0; i < 120 && (again === first || !again); i++) {
      await new Promise((ok) => setTimeout(ok, 250));
      again = await pid();
    }
    expect(again).not.toBe(first);
    const problems = (await status(lab.project.ctx(), lab.project.env())).hosts[0]!.problems;
    expect(problems.join('\n')).toMatch(/program web \(live slot \w+(, pid \d+)?\) was started again \d+s ago, \d+s after its release's start, after its process exited \(supervisor: [^)]*; not expected\): it exits and supervisor restarts it/);
  }, 600_000);
});
