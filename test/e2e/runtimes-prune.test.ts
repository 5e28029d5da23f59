// Provision removes the runtime versions nothing on the host uses, and only those: two apps share one host, one
// upgrades Node.js twice (Debian's 18, then 24, then 16 from the npm registry) while the other runs on 24. A version
// left from before that nothing uses goes (said with its size); 24 stays, named by both apps' kept releases and run
// by the other app, so a rollback to the release built on it still runs on it.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';
import { npmRegistryUrl } from '../hosts/index.ts';
import { APP, asRoot, get, labEnvironment, readable, webConfig } from './support.ts';

const SERVER = `require('http').createServer((q, s) => s.end(process.env.OPS_RELEASE + ' ' + process.version)).listen(Number(process.argv[2]), '127.0.0.1');\n`;
const STRAY = '/opt/ops-node/v9.9.9';

let repo: string;
const root = mkdtempSync(join(tmpdir(), 'ops-rtprune-'));
const onHost = (command: string) => asRoot(lab.host, command);
const ops = (...argv: string[]) => lab.ops(...argv);
const npmNode = (version: string) => ({ python: { strategy: 'debian', version: '3.11' }, node: { strategy: 'npm', version } });
const shop = (runtimes?: Record<string, unknown>) =>
  webConfig(lab.host, repo, {
    domain: 'shop.test',
    nginx: { default_server: true }, // answers the tests' requests by address
    programs: { web: { command: '{node} server.js {port}', port: 5100, health: '/health', env: {} } },
    packages: { npm_registry: npmRegistryUrl },
    ...(runtimes && { runtimes }),
  });
/** The second app on the same host, its own environment in the same project. */
function writeBlog(runtimes: Record<string, unknown>): void {
  const dir = join(lab.project.root, 'environments', 'blog');
  mkdirSync(dir, { recursive: true });
  const c = webConfig(lab.host, repo, {
    app: 'blog',
    domain: 'blog.test',
    programs: { web: { command: '{node} server.js {port}', port: 5300, health: '/health', env: {} } },
    packages: { npm_registry: npmRegistryUrl },
    runtimes,
  });
  writeFileSync(join(dir, 'environment.yml'), stringify(c));
}
const exists = async (dir: string) => (await onHost(`[ -d ${dir} ] && echo yes || echo no`)).trim();

const lab = labEnvironment(
  'rtp',
  (host) => {
    repo = join(root, 'app');
    initRepo(repo, { 'server.js': SERVER });
    gitIn(repo, ['tag', 'v1']);
    commit(repo, { 'server.js': `${SERVER}// 2\n` }, 'version 2');
    gitIn(repo, ['tag', 'v2']);
    commit(repo, { 'server.js': `${SERVER}// 3\n` }, 'version 3');
    gitIn(repo, ['tag', 'v3']);
    return webConfig(host, repo, { domain: 'shop.test', nginx: { default_server: true } });
  },
  {
    ready: async (l) => {
      l.project.write(shop());
      const d = await ops('deploy', 'e2e', '--ref', 'v1');
      expect(d.code, readable(d)).toBe(0);
    },
  },
);

describe.sequential('provision removes the runtimes nothing on the host uses', () => {
  it('Node.js upgraded twice beside another app: the version nothing uses goes, the ones kept releases or the other app use stay', async () => {
    const step = async (...argv: string[]) => {
      const r = await ops(...argv);
      expect(r.code, readable(r)).toBe(0);
      return readable(r);
    };
    lab.project.write(shop(npmNode('24.22.3')));
    await step('provision', 'e2e');
    await step('deploy', 'e2e', '--ref', 'v2');
    const v2 = (await onHost(`readlink /srv/${APP}/current | xargs basename`)).trim();
    writeBlog(npmNode('24.22.3'));
    await step('provision', 'blog');
    await step('deploy', 'blog', '--ref', 'v1');
    // A version left behind from before (an earlier pin): nothing names it.
    await onHost(`cp -a /opt/ops-node/v24.22.3 ${STRAY}`);
    lab.project.write(shop(npmNode('16.20.2')));
    const out = await step('provision', 'e2e');
    expect(out).toMatch(new RegExp(`removed the runtime ${STRAY} \\(\\d+ MB\\)`));
    expect(await exists(STRAY)).toBe('no');
    expect(out).not.toContain('removed the runtime /opt/ops-node/v24.22.3');
    expect(await exists('/opt/ops-node/v24.22.3')).toBe('yes');
    await step('deploy', 'e2e', '--ref', 'v3');
    expect((await get(lab.host)).body).toMatch(/ v16\.20\.2$/);
    // blog moves to 16 too: 24 is still the Node.js of a kept release of each app.
    writeBlog(npmNode('16.20.2'));
    expect(await step('provision', 'blog')).not.toContain('removed the runtime');
    expect(await exists('/opt/ops-node/v24.22.3')).toBe('yes');
    await step('rollback', 'e2e', '--to', v2);
    expect((await get(lab.host)).body).toBe(`${v2} v24.22.3`);
  }, 1_500_000);
});
