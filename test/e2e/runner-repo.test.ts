// The runner's repository as CI and laptops give it, deployed to a real host: a shallow clone (actions/checkout's
// default fetch-depth: 1) first, then a full clone deploying commits the shallow one did not have (an older one, one
// on another branch), whose thin packs must not lean on history the host's mirror never received; a ref the shallow
// clone did not fetch; a linked worktree at a path with spaces and non-ASCII characters with uncommitted changes.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { OpsError } from '../../core/errors.ts';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';
import { APP, asRoot, labEnvironment, pythonWebApp, servesSoon, webConfig } from './support.ts';

/** The app: answers with its release and the VERSION file of its commit. */
const SERVER = pythonWebApp('os.environ["OPS_RELEASE"] + " " + open("VERSION").read().strip()');

const root = mkdtempSync(join(tmpdir(), 'ops-runner-repo-'));
/** The team's repository (what GitHub holds): clones are made from it as CI and laptops make them. */
const upstream = join(root, 'upstream');
const base = `/srv/${APP}`;
const onHost = (command: string) => asRoot(lab.host, command);
/** A deploy of `ref` from the checkout `repo` (the environment's `repository`). */
const run = (repo: string, ref: string, options: { dryRun?: boolean } = {}) => {
  lab.project.write(webConfig(lab.host, repo));
  return deploy(lab.project.ctx(), lab.project.env(), { ref, ...options });
};

/** What answers through nginx, once `release` does. */
const serves = (release: string) => servesSoon(lab.host, release);

// Big enough a file that git stores the versions as deltas of each other (a thin pack leans on the base).
const big = (n: number) => Array.from({ length: 3000 }, (_, i) => `line ${i} ${i === n ? 'changed' : ''}`).join('\n') + '\n';

const lab = labEnvironment('rrp', (host) => {
  // v1 (annotated) ← v2 (lightweight) ← main; the branch `side` starts from v1.
  initRepo(upstream, { 'server.py': SERVER, VERSION: '1\n', 'data.txt': big(1) });
  gitIn(upstream, ['tag', '-a', '-m', 'version 1', 'v1']);
  commit(upstream, { VERSION: '2\n', 'data.txt': big(2) }, 'version 2');
  gitIn(upstream, ['tag', 'v2']);
  commit(upstream, { VERSION: '3\n', 'data.txt': big(3) }, 'version 3');
  gitIn(upstream, ['checkout', '-q', '-b', 'side', 'v1']);
  commit(upstream, { VERSION: 'side\n', 'data.txt': big(4) }, 'side');
  gitIn(upstream, ['checkout', '-q', 'main']);
  return webConfig(host, upstream);
});

describe.sequential("the runner's repository as CI and laptops give it", () => {
  it("a shallow clone deploys its commit; a full clone then deploys an older commit and another branch's to that host; a ref the shallow clone lacks is refused, nothing changed", async () => {
    // actions/checkout's default: the one commit, no tags, origin/main.
    const shallow = join(root, 'shallow');
    gitIn(root, ['clone', '-q', '--depth', '1', '--no-tags', `file://${upstream}`, shallow]);
    expect(gitIn(shallow, ['rev-parse', '--is-shallow-repository'])).toBe('true');
    const first = await run(shallow, 'main');
    expect(await serves(first.release)).toBe(`${first.release} 3`);

    // A laptop's full clone: v1's branch `side` (its base, v1, is an ancestor of what the host holds, but the host
    // never received it), then v2 (older than what is live: all of it "reachable" from main, but not on the host).
    const full = join(root, 'full');
    gitIn(root, ['clone', '-q', upstream, full]);
    const side = await run(full, 'side');
    expect(side.sha).toBe(gitIn(upstream, ['rev-parse', 'side']));
    expect(await serves(side.release)).toBe(`${side.release} side`);
    const older = await run(full, 'v2');
    expect(older.matched).toBe('tag v2');
    expect(await serves(older.release)).toBe(`${older.release} 2`);
    const annotated = await run(full, 'v1');
    expect(annotated.sha).toBe(gitIn(upstream, ['rev-parse', 'v1^{commit}']));
    expect(await serves(annotated.release)).toBe(`${annotated.release} 1`);

    // The shallow clone asked for a tag it did not fetch: refused before any host is touched, saying how to fetch it.
    const releases = await onHost(`ls ${base}/releases`);
    const err = (await run(shallow, 'v2').catch((e: unknown) => e)) as OpsError;
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toMatch(/ref "v2" is not a tag, branch or commit/);
    expect(err.hint).toMatch(/fetch-depth: 0/);
    expect(await onHost(`ls ${base}/releases`)).toBe(releases);
    expect(await serves(annotated.release)).toBe(`${annotated.release} 1`);

    // The next CI run, shallow again, on a new commit: deployed.
    commit(upstream, { VERSION: '4\n', 'data.txt': big(5) }, 'version 4');
    const shallow2 = join(root, 'shallow2');
    gitIn(root, ['clone', '-q', '--depth', '1', '--no-tags', `file://${upstream}`, shallow2]);
    const next = await run(shallow2, 'main');
    expect(await serves(next.release)).toBe(`${next.release} 4`);
    // And the mirror on the host is sound: git itself finds nothing missing.
    expect(await onHost(`git --git-dir=${base}/repo.git fsck --connectivity-only 2>&1 && echo fsck-ok`)).toMatch(/fsck-ok$/);
  }, 900_000);

  it("a mirror an earlier version fed from a deeper shallow clone (fetch-depth: 2, no shallow file): a full clone's thin pack leans on history it lacks, and the deploy sends the commit whole instead", async () => {
    // The mirror as an earlier version leaves it after a deploy from a clone of depth 2: the boundary a commit deep,
    // not recorded anywhere (what receive writes now, removed by hand).
    await onHost(`rm -rf ${base}/repo.git && git init -q --bare ${base}/repo.git`);
    commit(upstream, { VERSION: '5\n', 'data.txt': big(6) }, 'version 5');
    commit(upstream, { VERSION: '6\n', 'data.txt': big(7) }, 'version 6');
    const deeper = join(root, 'depth2');
    gitIn(root, ['clone', '-q', '--depth', '2', '--no-tags', `file://${upstream}`, deeper]);
    const six = await run(deeper, 'main');
    expect(await serves(six.release)).toBe(`${six.release} 6`);
    await onHost(`rm -f ${base}/repo.git/shallow`);
    // v2 is in the history of what the host holds; the host does not have it.
    const full = join(root, 'full');
    gitIn(full, ['fetch', '-q', 'origin']);
    const r = await run(full, 'v2');
    expect(r.hosts[0]!.notes.join('\n')).toMatch(/the host's git mirror lacked history its commits imply \([0-9a-f]{12}\): sent again with their full history/);
    expect(await serves(r.release)).toBe(`${r.release} 2`);
    // Its files whole in the mirror (the boundary commit an earlier version did not record stays as it was).
    expect(await onHost(`git --git-dir=${base}/repo.git rev-list --objects ${r.sha} >/dev/null && echo whole`)).toBe('whole');
  }, 600_000);

  it('a linked worktree (.git is a file) at a path with spaces and non-ASCII characters, with uncommitted changes: the commit is deployed and the plan says the changes are not', async () => {
    const full = join(root, 'full');
    const wt = join(root, 'työ kopio (wt)');
    gitIn(full, ['worktree', 'add', '-q', '--detach', wt, 'origin/main']);
    const sha = commit(wt, { VERSION: 'worktree\n' }, 'made in a worktree');
    writeFileSync(join(wt, 'VERSION'), 'edited, not committed\n');
    writeFileSync(join(wt, 'new.txt'), 'untracked\n');
    const plan = await run(wt, sha, { dryRun: true });
    expect(plan.plan!.join('\n')).toMatch(/warning: not deployed: the uncommitted changes in .*työ kopio \(wt\) \(1 changed, 1 untracked files: VERSION, new\.txt\); the release is commit [0-9a-f]{12} as committed/);
    const r = await run(wt, sha);
    expect(r.sha).toBe(sha);
    expect(await serves(r.release)).toBe(`${r.release} worktree`);
  }, 600_000);
});
