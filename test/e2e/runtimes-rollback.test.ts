// A release runs on the runtimes it was built with, whatever `runtimes` pins today: after an upgrade of the pinned
// Node.js (Debian's 18, then 24 from the npm registry) and a deploy on it, a rollback starts the release before on
// its own Node.js (what /proc/<pid>/exe of its program is, and what it answers), and a supervisor restart keeps it
// there; a rollback to a release whose Node.js is gone from the host is refused before anything changes, saying how
// to fix it.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';
import { npmRegistryUrl } from '../hosts/index.ts';
import { APP, asRoot, get, labEnvironment, readable, webConfig } from './support.ts';

/** The app: Node's http server answering every path with its release and the Node.js version it runs on. */
const SERVER = `require('http').createServer((q, s) => s.end(process.env.OPS_RELEASE + ' ' + process.version + ' ' + require('fs').readFileSync('VERSION', 'utf8').trim())).listen(Number(process.argv[2]), '127.0.0.1');\n`;
const NEW_NODE = '24.22.3';
const NEW_BIN = `/opt/ops-node/v${NEW_NODE}/bin/node`;

let repo: string;
const root = mkdtempSync(join(tmpdir(), 'ops-runtimes-'));
const onHost = (command: string) => asRoot(lab.host, command);
const ops = (...argv: string[]) => lab.ops(...argv);
const config = (node?: Record<string, string>) =>
  webConfig(lab.host, repo, {
    programs: { web: { command: '{node} server.js {port}', port: 5100, health: '/health', env: {} } },
    packages: { npm_registry: npmRegistryUrl },
    ...(node && { runtimes: { python: { strategy: 'debian', version: '3.11' }, node } }),
  });
/** The executable of the live slot's program (what the kernel runs, links resolved). */
const liveExe = () => onHost(`slot=$(cat /srv/${APP}/.ops/slot); readlink /proc/$(supervisorctl pid ${APP}-$slot:${APP}-$slot-web)/exe`);
/** What a refused rollback must leave as it was. */
const look = () => onHost(`cat /srv/${APP}/.ops/history /srv/${APP}/.ops/slot; readlink /srv/${APP}/current; ls /etc/supervisor/conf.d; cat /etc/supervisor/conf.d/*; supervisorctl status | awk '{ print $1, $2 }'`);

const lab = labEnvironment(
  'rtm',
  (host) => {
    repo = join(root, 'app');
    initRepo(repo, { 'server.js': SERVER, VERSION: '1\n' });
    gitIn(repo, ['tag', 'v1']);
    commit(repo, { VERSION: '2\n' }, 'version 2');
    gitIn(repo, ['tag', 'v2']);
    return webConfig(host, repo);
  },
  {
    ready: async (l) => {
      l.project.write(config());
      expect(readable(await ops('deploy', 'e2e', '--ref', 'v1'))).toContain('v1');
    },
  },
);

describe.sequential('a release runs on the runtimes it was built with', () => {
  let v1 = '';
  let v2 = '';
  let oldExe = '';
  it('Node.js upgraded between two deploys: the rollback runs the release before on its own Node.js, and a restart keeps it there', async () => {
    v1 = await onHost(`readlink /srv/${APP}/current | xargs basename`);
    oldExe = await liveExe();
    expect(oldExe).toMatch(/^\/usr\/bin\/node/);
    expect((await get(lab.host)).body).toMatch(/ v18\.\d+\.\d+ 1$/);
    lab.project.write(config({ strategy: 'npm', version: NEW_NODE }));
    const provisioned = await ops('provision', 'e2e');
    expect(provisioned.code, readable(provisioned)).toBe(0);
    const deployed = await ops('deploy', 'e2e', '--ref', 'v2');
    expect(deployed.code, readable(deployed)).toBe(0);
    v2 = await onHost(`readlink /srv/${APP}/current | xargs basename`);
    expect(await liveExe()).toBe(NEW_BIN);
    expect((await get(lab.host)).body).toBe(`${v2} v${NEW_NODE} 2`);

    const rolled = await ops('rollback', 'e2e');
    expect(rolled.code, readable(rolled)).toBe(0);
    expect(await liveExe()).toBe(oldExe);
    expect((await get(lab.host)).body).toMatch(new RegExp(`^${v1} v18\\.\\d+\\.\\d+ 1$`));
    // A restart of its programs (a reboot, an admin's supervisorctl restart) starts them from the same file.
    await onHost(`slot=$(cat /srv/${APP}/.ops/slot); supervisorctl restart ${APP}-$slot:* >/dev/null; sleep 2`);
    expect(await liveExe()).toBe(oldExe);
  }, 900_000);

  it("a rollback to a release whose Node.js is gone from the host is refused before anything changes, saying how to fix it", async () => {
    await onHost(`mv /opt/ops-node/v${NEW_NODE} /opt/ops-node/away-${NEW_NODE}`);
    try {
      const before = await look();
      const text = readable(await ops('rollback', 'e2e', '--to', v2));
      expect(text).toContain(`release ${v2} was built with Node.js ${NEW_NODE} (${NEW_BIN}), which is not on this host any more`);
      expect(text).toContain('Nothing was changed');
      expect(text).toContain('ops provision');
      expect(await look()).toBe(before);
      expect(await liveExe()).toBe(oldExe);
    } finally {
      await onHost(`mv /opt/ops-node/away-${NEW_NODE} /opt/ops-node/v${NEW_NODE}`);
    }
    const back = await ops('rollback', 'e2e', '--to', v2);
    expect(back.code, readable(back)).toBe(0);
    expect(await liveExe()).toBe(NEW_BIN);
  }, 600_000);
});
