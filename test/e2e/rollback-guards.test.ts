// ops rollback refuses, before it touches anything, what a deploy refuses before its build, as a user in an incident
// meets it on a real host: another server block that takes the site's visitors, another nginx file that sends
// requests to a slot's port itself, a second default_server loaded before the app's site (which the switch writes as
// the default server: found by a deploy and a rollback only at their switch before). Each says what is wrong and the
// fix; the host (slots, nginx's files, current, the history) stays as it was and the lock is let go. And a rollback
// right after a failed deploy says which release it left: the one that served all along, not the failed one.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';
import { APP, asRoot, get, labEnvironment, pythonWebApp, readable, RELOAD_NGINX, webConfig } from './support.ts';

/** The app: answers every path with its release and version. */
const SERVER = pythonWebApp('os.environ["OPS_RELEASE"] + " " + open("VERSION").read().strip()');

let repo: string;
const root = mkdtempSync(join(tmpdir(), 'ops-rollback-guards-'));
const onHost = (command: string) => asRoot(lab.host, command);
const ops = (...argv: string[]) => lab.ops(...argv);
/** What a rollback or deploy would change: the history, the slot, nginx's files, what supervisor runs, the releases, current, the lock. */
const look = () =>
  onHost(
    `for i in $(seq 100); do supervisorctl status | grep -q STARTING || break; sleep 0.1; done; cat /srv/${APP}/.ops/history /srv/${APP}/.ops/slot /etc/nginx/ops-upstreams/${APP}.conf /etc/nginx/sites-enabled/${APP}; ls /srv/${APP}/releases /etc/supervisor/conf.d; readlink /srv/${APP}/current; supervisorctl status | awk '{ print $1, $2, ($2 == "RUNNING" ? $4 : "") }'; test -d /srv/${APP}/.ops/lock && echo held || echo free`,
  );
const UNTOUCHED = 'nothing was changed (no slot started or stopped; nginx and current as they were)';

const lab = labEnvironment(
  'rbg',
  (host) => {
    repo = join(root, 'app');
    initRepo(repo, { 'server.py': SERVER, VERSION: '0\n' });
    return webConfig(host, repo);
  },
  {
    ready: async () => {
      for (const v of ['1', '2']) {
        commit(repo, { VERSION: `${v}\n` }, `version ${v}`);
        gitIn(repo, ['tag', `v${v}`]);
        expect((await ops('deploy', 'e2e', '--ref', `v${v}`)).code).toBe(0);
      }
    },
  },
);

describe.sequential('ops rollback refuses what a deploy refuses, before anything changes', () => {
  it("another server block listening on the host's address takes the visitors: refused naming its file and the fix; removed, the rollback goes", async () => {
    await onHost(`printf 'server {\\n    listen ${lab.host.address}:80;\\n    location / { return 200 "other site"; }\\n}\\n' > /etc/nginx/conf.d/other.conf && nginx -t -q && ${RELOAD_NGINX}`);
    try {
      const before = await look();
      const text = readable(await ops('rollback', 'e2e'));
      expect(text).toContain(`error: the site's visitors on ${lab.host.name} do not reach ${APP}'s nginx site: GET /health (program web): nginx answered 200, not from this site's server block: another server block answers ${lab.host.address}:80`);
      expect(text).toContain('/etc/nginx/conf.d/other.conf');
      expect(text).toContain(`The switch would refuse any release there, so ${UNTOUCHED}`);
      expect(text).toContain('then roll back again');
      expect(await look()).toBe(before);
    } finally {
      await onHost(`rm -f /etc/nginx/conf.d/other.conf && ${RELOAD_NGINX}`);
    }
  }, 300_000);

  it("another site of the host sending requests to a slot's port itself: refused naming the file, the line and the upstream to name instead", async () => {
    const env = lab.project.env();
    const live = (await onHost(`cat /srv/${APP}/.ops/slot`)) as 'blue' | 'green';
    const file = '/etc/nginx/sites-enabled/api-by-hand';
    await onHost(`printf 'server {\\n    listen 80;\\n    server_name api.example.test;\\n    location / {\\n        proxy_pass http://127.0.0.1:${env.port('web', live)};\\n    }\\n}\\n' > ${file} && nginx -t -q && ${RELOAD_NGINX}`);
    try {
      const before = await look();
      const text = readable(await ops('rollback', 'e2e'));
      expect(text).toContain(`error: nginx on ${lab.host.name} reads a file besides ${APP}'s site that sends requests to a slot's port itself, ${file}:5: 127.0.0.1:${env.port('web', live)} (program web's port on slot ${live})`);
      expect(text).toContain(UNTOUCHED);
      expect(text).toContain(`name the upstreams instead in ${file} (proxy_pass http://${env.layout.nginxUpstream('web')}`);
      expect(text).toContain('then roll back again');
      expect(await look()).toBe(before);
    } finally {
      await onHost(`rm -f ${file} && ${RELOAD_NGINX}`);
    }
  }, 300_000);

  it("a second default_server loaded before the app's site (the app has no domain: the switch writes it as the default server): a deploy refuses before its build, a rollback before any slot, naming the cause and the fix", async () => {
    await onHost(`printf 'server {\\n    listen 80 default_server;\\n    return 444;\\n}\\n' > /etc/nginx/sites-enabled/000-catchall`);
    try {
      const before = await look();
      commit(repo, { VERSION: '3\n' }, 'version 3');
      gitIn(repo, ['tag', 'v3']);
      for (const argv of [['deploy', 'e2e', '--ref', 'v3'], ['rollback', 'e2e']]) {
        const r = await ops(...argv);
        const text = readable(r);
        expect(r.code, text).toBe(1);
        expect(text).toContain(`error: nginx -t fails on ${lab.host.name}: [emerg] a duplicate default server for 0.0.0.0:80 in /etc/nginx/sites-enabled/${APP}:`);
        expect(text).toContain(`another enabled site says default_server for that address, loaded before ${APP}'s site, which the switch writes as the default server (it has no domain)`);
        expect(text).toContain(argv[0] === 'deploy' ? 'nothing was started (no build, no migration)' : UNTOUCHED);
        expect(text).toContain('remove default_server from the other site (grep -l default_server /etc/nginx/sites-enabled/* /etc/nginx/conf.d/*.conf names them');
        expect(text).not.toContain('▸ ');
        expect(await look()).toBe(before);
      }
    } finally {
      await onHost(`rm -f /etc/nginx/sites-enabled/000-catchall && nginx -t -q && ${RELOAD_NGINX}`);
    }
    // All fixed: the rollback goes, and says so.
    const back = await ops('rollback', 'e2e');
    expect(back.code, readable(back)).toBe(0);
    expect((await get(lab.host)).body).toMatch(/ 1$/);
  }, 300_000);

  it('right after a failed deploy (its release never went live): the rollback leaves the release that served all along, and says so, with the --to that returns to it', async () => {
    // A release live with one before it (whatever the cases before left), then a deploy that fails at its start.
    commit(repo, { VERSION: '5\n' }, 'version 5');
    gitIn(repo, ['tag', 'v5']);
    expect((await ops('deploy', 'e2e', '--ref', 'v5')).code).toBe(0);
    const live = await onHost(`basename "$(readlink /srv/${APP}/current)"`);
    commit(repo, { 'server.py': 'import sys\nsys.exit(3)\n' }, 'exits at start');
    gitIn(repo, ['tag', 'broken']);
    const failed = await ops('deploy', 'e2e', '--ref', 'broken');
    expect(failed.code, readable(failed)).toBe(1);
    expect(await onHost(`basename "$(readlink /srv/${APP}/current)"`)).toBe(live);
    const r = await ops('rollback', 'e2e');
    const text = readable(r);
    expect(r.code, text).toBe(0);
    expect(text).toMatch(new RegExp(`warning: ${lab.host.name}: the deploy after ${live} \\(\\S+\\) failed and never went live, so ${live} served until now: this rollback went back from it to \\S+, not from that deploy \\(ops rollback e2e --to ${live} returns to it\\)`));
  }, 300_000);
});
