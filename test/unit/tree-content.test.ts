// What `git archive` leaves out, found on the runner (treeContent): submodules (nested too) with their commits
// from the runner's checkout, Git LFS contents (made by the real git-lfs), export-ignore paths; and, when the
// runner's checkout lacks submodules or LFS content, a refusal naming paths and the checkout fix.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { OpsError } from '../../core/errors.ts';
import { blobTexts, parseLfsPointer, treeContent } from '../../core/tree-content.ts';
import { commit, gitIn, initRepo, lfsTrack } from '../support/gitrepo.ts';

let root: string;
let app: string;
let head: string;
const blob = randomBytes(3000);

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ops-tree-'));
  // A library with a submodule of its own, used by the app as vendor/lib.
  initRepo(join(root, 'inner'), { 'INNER.txt': 'inner\n' });
  const lib = join(root, 'lib');
  initRepo(lib, { 'VERSION': 'lib 1\n' });
  gitIn(lib, ['submodule', 'add', '-q', '../inner', 'deps/inner']);
  commit(lib, {}, 'lib with inner');
  app = join(root, 'app');
  initRepo(app, { 'app.py': 'print(1)\n', '.gitattributes': 'docs/ export-ignore\ndocs export-ignore\n*.secret export-ignore\n', 'docs/guide.md': 'x\n', 'notes.secret': 's\n' });
  lfsTrack(app, '*.bin');
  gitIn(app, ['submodule', 'add', '-q', '../lib', 'vendor/lib']);
  gitIn(app, ['submodule', 'update', '--init', '--recursive', '-q']);
  head = commit(app, { 'assets/model.bin': blob, 'small.txt': 'version https://git-lfs.github.com/spec/v1\nnot a pointer\n' }, 'app with a submodule and LFS');
});

describe('what git archive leaves out', () => {
  it('finds submodules (nested too) in the checkout, LFS contents in its store, and export-ignored paths', async () => {
    const t = await treeContent(app, head);
    const lib = gitIn(app, ['rev-parse', `${head}:vendor/lib`]);
    expect(t.submodules.map((s) => [s.path, s.sha])).toEqual([
      ['vendor/lib', lib],
      ['vendor/lib/deps/inner', gitIn(join(app, 'vendor/lib'), ['rev-parse', 'HEAD:deps/inner'])],
    ]);
    expect(t.lfs).toEqual([{ path: 'assets/model.bin', oid: createHash('sha256').update(blob).digest('hex'), size: 3000, file: expect.stringMatching(/\.git\/lfs\/objects\/..\/..\/[0-9a-f]{64}$/) }]);
    expect(t.exportIgnored.sort()).toEqual(['docs/', 'notes.secret']);
  });

  it('a checkout without its submodules or LFS contents: refused before anything is sent, naming paths and the fix', async () => {
    const clone = join(root, 'clone');
    // Like actions/checkout without `submodules:` and `lfs:` (pointers only, no smudge).
    gitIn(root, ['clone', '-q', app, clone], { GIT_LFS_SKIP_SMUDGE: '1' });
    const err = (await treeContent(clone, head).catch((e: unknown) => e)) as OpsError;
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toMatch(/cannot be deployed complete: submodule not checked out on this runner: vendor\/lib \(commit [0-9a-f]{12}\); Git LFS file without content on this runner \(only the pointer\): assets\/model\.bin; nothing was changed/);
    expect(err.hint).toMatch(/actions\/checkout with `submodules: recursive`.*actions\/checkout with `lfs: true`/);
  });

  it("a submodule marked `update = none` (git submodule update and actions/checkout skip it): said so, with the command that checks it out, not the one that skips it again", async () => {
    const repo = join(root, 'update-none');
    initRepo(repo, { 'app.py': 'x\n' });
    gitIn(repo, ['submodule', 'add', '-q', join(root, 'lib'), 'vendor/lib']);
    gitIn(repo, ['config', '-f', '.gitmodules', 'submodule.vendor/lib.update', 'none']);
    const sha = commit(repo, {}, 'lib not updated by default');
    const clone = join(root, 'update-none-clone');
    gitIn(root, ['clone', '-q', repo, clone]);
    // What the hint of a missing submodule says to run: it leaves this one out.
    gitIn(clone, ['submodule', 'update', '--init', '--recursive', '-q']);
    const err = (await treeContent(clone, sha).catch((e: unknown) => e)) as OpsError;
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toMatch(/cannot be deployed complete: submodule marked `update = none` in \.gitmodules, so git submodule update \(and actions\/checkout\) left it out: vendor\/lib \(commit [0-9a-f]{12}\); nothing was changed$/);
    expect(err.hint).toBe('check it out on purpose: git submodule update --init --recursive --checkout -- vendor/lib (in a workflow, a step after actions/checkout)');
    // And that command does what the hint says: the release can then be made.
    gitIn(clone, ['submodule', 'update', '--init', '--recursive', '--checkout', '-q', '--', 'vendor/lib']);
    expect((await treeContent(clone, sha)).submodules.map((x) => x.path)).toEqual(['vendor/lib', 'vendor/lib/deps/inner']);
  });

  it("a submodule checked out without the commit deployed (a newer commit of the app moved it; the checkout is older): not called 'not checked out'", async () => {
    const clone = join(root, 'stale-sub');
    gitIn(root, ['clone', '-q', '--recurse-submodules', app, clone], { GIT_LFS_SKIP_SMUDGE: '1' });
    // Upstream moves vendor/lib to a new commit of lib; the clone fetches the app only (git fetch --no-recurse-submodules).
    const lib = join(root, 'lib');
    commit(lib, { VERSION: 'lib 2\n' }, 'lib 2');
    gitIn(join(app, 'vendor/lib'), ['pull', '-q', 'origin', 'main']);
    const newer = commit(app, {}, 'lib 2 in the app');
    // As actions/checkout fetches (git fetch's own default, on-demand, would fetch the submodule's new commit too).
    gitIn(clone, ['fetch', '-q', '--no-recurse-submodules', 'origin']);
    const err = (await treeContent(clone, newer).catch((e: unknown) => e)) as OpsError;
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toMatch(/submodule checked out on this runner without the commit deployed \(the checkout is at another commit of the app, or the submodule was not fetched since\): vendor\/lib \(commit [0-9a-f]{12}\)/);
    expect(err.hint).toMatch(/check out the commit deployed, then git submodule update --init --recursive/);
  });

  it("LFS files .lfsconfig's lfs.fetchexclude leaves out (git lfs pull, actions/checkout's lfs: true skip them): said so, with the pull that fetches them", async () => {
    const repo = join(root, 'lfs-excluded');
    initRepo(repo, { 'a.txt': 'a\n' });
    lfsTrack(repo, '*.bin');
    const sha = commit(repo, { 'media/big.bin': randomBytes(2000), 'small.bin': randomBytes(2000), '.lfsconfig': '[lfs]\n\tfetchexclude = media\n' }, 'media excluded');
    const clone = join(root, 'lfs-excluded-clone');
    gitIn(root, ['clone', '-q', repo, clone], { GIT_LFS_SKIP_SMUDGE: '1' });
    gitIn(clone, ['lfs', 'install', '--local']);
    // What the generic hint says to run: it fetches small.bin, not media/big.bin.
    gitIn(clone, ['lfs', 'pull']);
    const err = (await treeContent(clone, sha).catch((e: unknown) => e)) as OpsError;
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toMatch(/Git LFS file without content on this runner \(only the pointer\): media\/big\.bin \(\.lfsconfig's lfs\.fetchexclude = media leaves it out of git lfs pull\); nothing was changed$/);
    expect(err.hint).toBe('fetch it past those filters: git lfs pull --include=media/big.bin --exclude= (in a workflow, a step after actions/checkout)');
    // The hint's command does it.
    gitIn(clone, ['lfs', 'pull', '--include=media/big.bin', '--exclude=']);
    expect((await treeContent(clone, sha)).lfs.map((f) => f.path).sort()).toEqual(['media/big.bin', 'small.bin']);
  });

  it("files only this clone sends through LFS (.git/info/attributes, not the commit's .gitattributes): refused, not deployed as their pointer text; once the rule is committed, their content is the release's", async () => {
    const repo = join(root, 'lfs-own-rules');
    initRepo(repo, { 'a.txt': 'a\n' });
    gitIn(repo, ['lfs', 'install', '--local']);
    mkdirSync(join(repo, '.git', 'info'), { recursive: true });
    writeFileSync(join(repo, '.git', 'info', 'attributes'), '*.bin filter=lfs diff=lfs merge=lfs -text\n');
    const model = randomBytes(3000);
    const sha = commit(repo, { 'model.bin': model }, 'model by a rule of this clone alone');
    // What the commit holds, and what any other clone (a CI runner) checks out: the pointer.
    expect(parseLfsPointer(gitIn(repo, ['cat-file', '-p', `${sha}:model.bin`]) + '\n')).toBeDefined();
    const err = (await treeContent(repo, sha).catch((e: unknown) => e)) as OpsError;
    expect(err).toBeInstanceOf(OpsError);
    expect(err.message).toBe(
      `${sha.slice(0, 12)} cannot be deployed complete: file this clone sends through Git LFS by attribute rules of its own (.git/info/attributes, core.attributesFile or /etc/gitattributes), not by the commit's .gitattributes: the commit holds only its pointer, which every other clone, and the release, would get as the file: model.bin; nothing was changed`,
    );
    expect(err.hint).toMatch(/^track them in the commit: move the filter=lfs rule into \.gitattributes/);
    // The same with a .gitattributes that sends other files through LFS (its rules were all that was read then).
    const psd = commit(repo, { '.gitattributes': '*.psd filter=lfs diff=lfs merge=lfs -text\n' }, 'psd files by LFS');
    expect(((await treeContent(repo, psd).catch((e: unknown) => e)) as OpsError).message).toMatch(/not by the commit's \.gitattributes: .*: model\.bin; nothing was changed$/);
    // The hint done: the rule committed, the pointer already in the tree is the file's content in the release.
    const tracked = commit(repo, { '.gitattributes': '*.psd filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n' }, 'bin files by LFS too');
    expect((await treeContent(repo, tracked)).lfs).toEqual([{ path: 'model.bin', oid: createHash('sha256').update(model).digest('hex'), size: 3000, file: expect.stringMatching(/\.git\/lfs\/objects\/..\/..\/[0-9a-f]{64}$/) }]);
  });

  it('a plain repository costs one tree listing and finds nothing', async () => {
    const plain = join(root, 'plain');
    const sha = initRepo(plain, { 'a.txt': 'a\n' });
    expect(await treeContent(plain, sha)).toEqual({ submodules: [], lfs: [], exportIgnored: [] });
  });

  it('LFS pointers by the spec; anything else is content', () => {
    expect(parseLfsPointer(`version https://git-lfs.github.com/spec/v1\noid sha256:${'a'.repeat(64)}\nsize 12\n`)).toEqual({ oid: 'a'.repeat(64), size: 12 });
    expect(parseLfsPointer('version https://git-lfs.github.com/spec/v1\nnot a pointer\n')).toBeUndefined();
  });
});

describe('blobTexts: many blobs through one git cat-file --batch', () => {
  it('reads each name (blob id or commit:path) by its own size, and leaves out names that do not resolve', async () => {
    const repo = join(root, 'batch');
    // Contents with newlines, an empty file, a path with spaces, UTF-8, a file ending without a newline.
    const sha = initRepo(repo, { 'a.ini': '[alembic]\nscript_location = db\n\n', 'empty.cfg': '', 'with space/x y.conf': 'é\nz', 'b.ini': 'b' });
    const ids = ['a.ini', 'empty.cfg', 'b.ini'].map((p) => gitIn(repo, ['rev-parse', `${sha}:${p}`]));
    const names = [ids[0]!, `${sha}:missing file.ini`, ids[1]!, `${sha}:with space/x y.conf`, 'a name\nwith a newline', `${sha}:nothing`, ids[2]!];
    const texts = await blobTexts(repo, names);
    expect([...texts.entries()]).toEqual([
      [ids[0], '[alembic]\nscript_location = db\n\n'],
      [ids[1], ''],
      [`${sha}:with space/x y.conf`, 'é\nz'],
      [ids[2], 'b'],
    ]);
    expect(await blobTexts(repo, [])).toEqual(new Map());
  });
});
