// Stale code put live by ordering: a deploy that queued for the lock (switch.lock_wait) behind a run that changed
// what is live is refused when its target is not newer than the commit now live (an ancestor of it, beside it after
// a force-push, or one the clone cannot place), naming both and how to deploy it on purpose; one newer than it (the
// next push, queued) goes on. A manual deploy of an older commit not held up by another run goes on, saying it is
// older. The decisions of core/ops/deploy.ts, on a real git repository and the changes describeChanges reads from it.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeChanges } from '../../core/changes.ts';
import { olderThanLive, overtakenError } from '../../core/ops/deploy.ts';
import { git, releaseEnv } from './commits.helpers.ts';

let repo = '';
const sha: Record<string, string> = {};

beforeAll(() => {
  repo = mkdtempSync(join(tmpdir(), 'ops-deploy-order-'));
  git(repo, 'init', '-q', '-b', 'master');
  const commit = (name: string) => {
    writeFileSync(join(repo, 'VERSION'), `${name}\n`);
    git(repo, 'add', '-A');
    git(repo, 'commit', '-q', '-m', name);
    sha[name] = git(repo, 'rev-parse', 'HEAD');
  };
  commit('one');
  commit('two');
  commit('three');
  // master rewritten from `one` (a force-push): `other` contains neither two nor three.
  git(repo, 'checkout', '-q', '-b', 'rewritten', sha.one!);
  commit('other');
});

/** The changes a deploy of `target` reads on hosts a and b, both serving `live` (release r-<live>). */
const changesTo = (live: string, target: string) =>
  describeChanges(repo, releaseEnv(), ['a', 'b'].map((host) => ({ host, sha: sha[live]!, release: `r-${live}` })), sha[target]!);

/** Both hosts: `then` was live at the run's first look, `now` once it had the lock. */
const waited = (then: string, now: string) => new Map<string, [string, string]>(['a', 'b'].map((h) => [h, [`r-${then}`, `r-${now}`]]));

describe('a deploy queued behind a run that changed what is live', () => {
  it('its target an ancestor of the commit now live (a push older than the one deployed while it waited): refused, naming the release then and now, both commits and how to deploy it on purpose', async () => {
    const e = overtakenError(await changesTo('three', 'two'), sha.two!, waited('one', 'three'), 'prod');
    expect(e?.message).toContain(`a, b: r-one was live when this deploy was asked, and r-three (commit ${sha.three!.slice(0, 12)}) is live now that it has the lock`);
    expect(e?.message).toContain(`${sha.two!.slice(0, 12)} is older: an ancestor of it, 1 commit behind`);
    expect(e?.message).toContain('nothing was deployed');
    expect(e?.hint).toContain(`ops deploy prod --ref ${sha.two!.slice(0, 12)}`);
    expect(e?.hint).toContain('ops rollback prod');
  });

  it('a manual deploy going back from what was live when asked (two, from three), queued behind a redeploy: refused too, as a rollback queued so is', async () => {
    expect(overtakenError(await changesTo('three', 'one'), sha.one!, waited('two', 'three'), 'prod')?.message).toContain('is older: an ancestor of it, 2 commits behind');
  });

  it('histories diverged (master force-pushed, the older run of the old history served last): refused, saying which is newer cannot be told', async () => {
    const e = overtakenError(await changesTo('other', 'three'), sha.three!, waited('one', 'other'), 'prod');
    expect(e?.message).toContain('histories diverged');
    expect(e?.message).toContain(`commit ${sha.other!.slice(0, 12)}`);
  });

  it('its target newer than the commit now live (pushes queued in order), the same commit, or nothing changed while it waited: it goes on', async () => {
    expect(overtakenError(await changesTo('two', 'three'), sha.three!, waited('one', 'two'), 'prod')).toBeUndefined();
    expect(overtakenError(await changesTo('three', 'three'), sha.three!, waited('one', 'three'), 'prod')).toBeUndefined();
    expect(overtakenError(await changesTo('three', 'two'), sha.two!, new Map(), 'prod')).toBeUndefined();
  });

  it('one host of two changed under it: refused, naming that host only', async () => {
    const e = overtakenError(await changesTo('three', 'two'), sha.two!, new Map([['b', ['r-one', 'r-three'] as [string, string]]]), 'prod');
    expect(e?.message).toMatch(/^b: r-one was live/);
  });
});

describe('a manual deploy of a commit not newer than the live one, nothing queued ahead', () => {
  it('goes on, warned that it is older (an ancestor) or beside it (diverged), naming both commits; a newer one is not warned', async () => {
    expect(olderThanLive(await changesTo('three', 'one'), sha.one!)).toContain(`live ${sha.three!.slice(0, 12)}: ${sha.one!.slice(0, 12)} is older, an ancestor of it, 2 live commits taken away`);
    expect(olderThanLive(await changesTo('three', 'other'), sha.other!)).toContain('histories diverged');
    expect(olderThanLive(await changesTo('one', 'three'), sha.three!)).toBeUndefined();
  });
});
