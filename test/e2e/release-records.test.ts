// What ops records of a release lives in root's .ops/releases/<id>/, not in the release directory the app user owns
// (core/layout.ts): a commit holding, or a build leaving, files named like ops's own (REVISION, release.json, the
// tree records, the failure mark) as links out of the release makes root write through none of them, and what ops
// reads of a release (its commit, its mark) is what ops wrote, whatever the app wrote at those names.
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CliResult } from '../support/cli.ts';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';
import { APP, asRoot, get, labEnvironment, pythonWebApp, webConfig } from './support.ts';

/** Serves VERSION. */
const SERVER = pythonWebApp('open("VERSION").read().strip()');
/** The build fails while this file exists on the host (a transient failure: the same commit deploys once it is gone). */
const FAIL_FLAG = '/tmp/ops-records-fail-build';
const BUILD = `if [ -e ${FAIL_FLAG} ]; then echo "build failed: ${FAIL_FLAG} exists" >&2; exit 1; fi`;

let repo: string;
let config: Record<string, unknown>;
const root = mkdtempSync(join(tmpdir(), 'ops-records-'));
/** On the host, as root. */
const onHost = (command: string) => asRoot(lab.host, command);
const cli = (...argv: string[]): Promise<CliResult> => lab.ops(...argv);
const version = async () => (await get(lab.host)).body;
/** The project's settings with this build command. */
const withBuild = (build: string) => ({ ...config, release: { ...(config.release as object), build } });

/** Commit symbolic links (path → target) with VERSION `v`; returns the sha. */
function commitLinks(links: Record<string, string>, v: string, message: string): string {
  for (const [path, target] of Object.entries(links)) symlinkSync(target, join(repo, path));
  writeFileSync(join(repo, 'VERSION'), `${v}\n`);
  gitIn(repo, ['add', '-A']);
  gitIn(repo, ['commit', '-q', '-m', message]);
  return gitIn(repo, ['rev-parse', 'HEAD']);
}

/** Remove the links again (a commit of its own, deployed), so the next case starts from a plain release. */
async function dropLinks(links: Record<string, string>, v: string): Promise<void> {
  for (const path of Object.keys(links)) rmSync(join(repo, path), { force: true });
  commit(repo, { VERSION: `${v}\n` }, 'links removed');
  await onHost(`rm -f ${FAIL_FLAG}`);
  expect((await cli('deploy', 'e2e', '--ref', 'main')).code).toBe(0);
}

const lab = labEnvironment(
  'rrec',
  (host) => {
    repo = join(root, 'app');
    initRepo(repo, { 'server.py': SERVER, VERSION: '1\n' });
    config = webConfig(host, repo, { switch: { drain: 1, health_timeout: 20 } });
    config.release = { ...(config.release as object), build: BUILD };
    return config;
  },
  {
    ready: async () => {
      const r = await cli('deploy', 'e2e', '--ref', 'main');
      expect(r.code, r.out + r.err).toBe(0);
    },
  },
);

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe.sequential("a release's records (root's) and the app's files named like them", () => {
  it('a commit holding REVISION, release.json and .ops-files as symbolic links out of the release: the release step (root) writes through none of them, nothing appears in /etc', async () => {
    const links = { REVISION: '/etc/ops-rrec-a-REVISION', 'release.json': '/etc/ops-rrec-a-release.json', '.ops-files': '/etc/ops-rrec-a-files' };
    commitLinks(links, '2', 'links named like the release files');
    try {
      const r = await cli('deploy', 'e2e', '--ref', 'main');
      expect(r.code, r.out + r.err).toBe(0);
      expect(await onHost('ls -l /etc/ops-rrec-a-* 2>/dev/null || true')).toBe('');
    } finally {
      await dropLinks(links, '3');
    }
  }, 300_000);

  it("a build (as the app user) that leaves .ops-failed as a symbolic link into /etc and fails: marking the release failed (root) does not write the failure's text into /etc", async () => {
    lab.project.write(withBuild('ln -s /etc/ops-rrec-b-failed .ops-failed; echo "planted"; exit 1'));
    commit(repo, { VERSION: '4\n' }, 'a build that fails');
    try {
      const r = await cli('deploy', 'e2e', '--ref', 'main');
      expect(r.code).toBe(1);
      expect(await version()).toBe('3');
      expect(await onHost('ls -l /etc/ops-rrec-b-failed 2>/dev/null || true')).toBe('');
      // It is marked failed all the same (in its record).
      expect((await cli('releases', 'e2e')).out.split('\n').filter((l) => l.includes('[failed'))).toHaveLength(1);
    } finally {
      lab.project.write(config);
    }
  }, 300_000);

  it('a commit whose REVISION is a symbolic link out of the release: after a failed deploy of the next commit, a deploy of that commit again is not taken as "already live" and serves it', async () => {
    const links = { REVISION: '/srv/ops-rrec-d-REVISION' };
    const p = commitLinks(links, '5', 'REVISION as a link');
    try {
      expect((await cli('deploy', 'e2e', '--ref', 'main')).code).toBe(0);
      expect(await version()).toBe('5');
      const q = commit(repo, { VERSION: '6\n' }, 'version 6');
      // The build fails once (a flaky download): the release of q is made, the link in it too.
      await onHost(`touch ${FAIL_FLAG}`);
      expect((await cli('deploy', 'e2e', '--ref', 'main')).code).toBe(1);
      await onHost(`rm -f ${FAIL_FLAG}`);
      expect(await version()).toBe('5');
      // ops status names the live release's commit, not the failed one's.
      const st = await cli('status', 'e2e');
      expect(st.out).toContain(p.slice(0, 12));
      expect(st.out).not.toContain(q.slice(0, 12));
      // The same commit again, the flake gone: it goes live.
      const r = await cli('deploy', 'e2e', '--ref', 'main');
      expect(r.code).toBe(0);
      expect(r.out).not.toContain('already live');
      expect(await version()).toBe('6');
    } finally {
      await dropLinks(links, '7');
    }
  }, 300_000);

  it('a commit holding .ops-failed as a symbolic link (the same target in every release): one failed deploy does not mark the releases that went live as failed, and ops rollback returns the release that served before', async () => {
    const links = { '.ops-failed': `/srv/${APP}-rrec-failed-marker` };
    const v8 = commitLinks(links, '8', 'a link named like the failure marker');
    try {
      expect((await cli('deploy', 'e2e', '--ref', 'main')).code).toBe(0);
      const v9 = commit(repo, { VERSION: '9\n' }, 'version 9');
      expect((await cli('deploy', 'e2e', '--ref', 'main')).code).toBe(0);
      const v10 = commit(repo, { VERSION: '10\n' }, 'version 10');
      await onHost(`touch ${FAIL_FLAG}`);
      expect((await cli('deploy', 'e2e', '--ref', 'main')).code).toBe(1);
      await onHost(`rm -f ${FAIL_FLAG}`);
      expect(await version()).toBe('9');
      // Of these three, only the release that failed is marked so (the failed releases of the cases before are kept too).
      const listed = (await cli('releases', 'e2e')).out.split('\n').filter((l) => l.includes('[failed'));
      expect(listed.filter((l) => [v8, v9, v10].some((v) => l.includes(v.slice(0, 12))))).toEqual([expect.stringContaining(v10.slice(0, 12))]);
      // 8 served before 9: the rollback brings it back.
      const r = await cli('rollback', 'e2e');
      expect(r.code, r.out + r.err).toBe(0);
      expect(await version()).toBe('8');
    } finally {
      await dropLinks(links, '11');
    }
  }, 300_000);

  it('a build that writes REVISION itself (as Capistrano-era build scripts do): ops diff and the deploy plan still name the live commit, not the text the build wrote', async () => {
    lab.project.write(withBuild('echo "built $(date +%s)" > REVISION'));
    const sha = commit(repo, { VERSION: '20\n' }, 'version 20');
    try {
      expect((await cli('deploy', 'e2e', '--ref', 'main')).code).toBe(0);
      expect(await version()).toBe('20');
      const d = await cli('diff', 'e2e');
      expect(d.out).not.toContain('not in this repository');
      expect(d.out).toMatch(new RegExp(`live ${sha.slice(0, 12)}`));
    } finally {
      lab.project.write(config);
    }
  }, 300_000);

  it('a build (as the app user) that leaves .ops-tree.new as a symbolic link to a root file: the switch (root) neither writes that file nor changes its mode', async () => {
    await onHost('printf "keep\\n" > /etc/ops-rrec-h-tree && chmod 0644 /etc/ops-rrec-h-tree');
    lab.project.write(withBuild('ln -s /etc/ops-rrec-h-tree .ops-tree.new'));
    commit(repo, { VERSION: '21\n' }, 'version 21');
    try {
      await cli('deploy', 'e2e', '--ref', 'main');
      expect(await onHost('stat -c "%a %s" /etc/ops-rrec-h-tree; cat /etc/ops-rrec-h-tree')).toBe('644 5\nkeep');
    } finally {
      lab.project.write(config);
    }
  }, 300_000);

  it('a run of failed deploys (a broken commit deployed on every push): after each, the failed releases past release.keep_failed are pruned, not kept until the next deploy that goes live; the live release serves as before', async () => {
    lab.project.write({ ...config, release: { ...(config.release as object), build: BUILD, keep_failed: 1 } });
    await onHost(`touch ${FAIL_FLAG}`);
    try {
      const live = await onHost(`readlink /srv/${APP}/current`);
      const served = await version();
      let last = '';
      for (const v of ['30', '31', '32']) {
        last = commit(repo, { VERSION: `${v}\n` }, `broken ${v}`);
        const r = await cli('deploy', 'e2e', '--ref', 'main');
        expect(r.code, r.out + r.err).toBe(1);
      }
      // One failed release left, the latest (its record's mark and commit), beside the live one.
      const failed = (await onHost(`cd /srv/${APP}/.ops/releases && for d in */; do [ -e "$d.ops-failed" ] && cat "$d"REVISION; done; true`)).split('\n').filter(Boolean);
      expect(failed).toEqual([last]);
      expect(await onHost(`readlink /srv/${APP}/current`)).toBe(live);
      expect(await version()).toBe(served);
    } finally {
      await onHost(`rm -f ${FAIL_FLAG}`);
      lab.project.write(config);
    }
  }, 300_000);
});
