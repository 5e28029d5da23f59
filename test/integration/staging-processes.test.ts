// How many git processes a rebuild runs per labelled pull request: each merge needs its own merge-tree and
// commit-tree, the rest is asked once for all (a merge's date from one listing of committer times; contained,
// fast-forward or merge from one merge-base). Five per pull request made a rebuild of 300 take 30 s.
import { afterAll, describe, expect, it } from 'vitest';
import { Git } from '../../core/git.ts';
import { githubAccess } from '../../core/github.ts';
import { rebuildStaging } from '../../core/staging/rebuild.ts';
import { Scratch, context, perTest } from './staging.support.ts';

const each = perTest();
let scene: Scratch | undefined;
afterAll(() => scene?.cleanup());

describe('staging rebuild: git processes', () => {
  it('about three per labelled pull request (its merge-base, merge-tree, commit-tree), whatever their number; the same staging made again', async () => {
    scene = Scratch.create();
    const dev = scene.clone('dev');
    const runner = scene.clone('runner');
    const N = 12;
    const sha: string[] = [];
    for (let i = 0; i < N; i++) {
      dev.branch('master');
      sha.push(dev.feature(`feature/p${i}`, { [`p${i}.txt`]: `${i}\n` }));
    }
    const gh = await each.github();
    for (let i = 0; i < N; i++) {
      gh.pulls.push({ number: i + 1, created_at: `2026-01-01T00:00:${String(i).padStart(2, '0')}Z`, head: { ref: `feature/p${i}`, sha: sha[i]!, repo: { full_name: gh.repository } }, labels: ['staging'] });
    }
    const access = githubAccess({ token: gh.token, processEnv: { GITHUB_REPOSITORY: gh.repository, GITHUB_API_URL: gh.url } });
    const ran: string[] = [];
    const runBytes = Git.prototype.runBytes;
    Git.prototype.runBytes = function (args, options) {
      ran.push(args.join(' '));
      return runBytes.call(this, args, options);
    };
    try {
      const first = await rebuildStaging(context(runner.dir), { github: access, label: 'staging', comment: false });
      expect(first.added).toHaveLength(N);
      const firstRun = ran.length;
      ran.length = 0;
      const again = await rebuildStaging(context(runner.dir), { github: access, label: 'staging', comment: false });
      // a rebuild with nothing new makes the same merges, dated as before: staging does not move
      expect(again.after).toBe(first.after);
      expect(again.changed).toBe(false);
      for (const count of [firstRun, ran.length]) expect(count).toBeLessThanOrEqual(3 * N + 12);
    } finally {
      Git.prototype.runBytes = runBytes;
    }
  }, 300_000);
});
