// A host after months of use, in a few minutes: many deploys in a row with keep 2 and keep_failed 1, the
// dependencies changing every other commit (a local package: a new Python set each time), a program renamed, a
// rollback, a failed deploy. After each, what is on the host must stay bounded by what is kept (releases, their
// records, dependency sets, fingerprint lines, mirror refs, program logs of programs no slot runs), and every release
// `ops releases` lists must be whole: its dependency set there, so it is still a rollback target.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { listReleases } from '../../core/ops/records.ts';
import { rollback } from '../../core/ops/rollback.ts';
import { npmRegistryUrl, pypiIndexUrl } from '../hosts/index.ts';
import { commit, initRepo } from '../support/gitrepo.ts';
import { APP, asRoot, labEnvironment, pythonWebApp, webConfig } from './support.ts';

let repo: string;
const root = mkdtempSync(join(tmpdir(), 'ops-lifecycle-'));
const base = `/srv/${APP}`;
const KEEP = 2;
const KEEP_FAILED = 1;
/** On the host, as root. */
const onHost = (command: string) => asRoot(lab.host, command);

const server = pythonWebApp('os.environ["OPS_RELEASE"] + " " + mylib.WORD', 'import mylib');
/** A commit whose local package (a dependency: its own Python set) says `word`; `note` changes the app's code alone. */
const files = (word: string, note = '') => ({
  'requirements.txt': './lib\n',
  'server.py': `${server}# ${note}\n`,
  'lib/pyproject.toml': '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n[project]\nname = "mylib"\nversion = "1.0.0"\n',
  'lib/mylib/__init__.py': `WORD = ${JSON.stringify(word)}\n`,
});

/** The environment with program `program` and `build` as the release's build command. */
function webConfigFor(program: string, build: string): Record<string, unknown> {
  return webConfig(lab.host, repo, {
    release: { python_requirements: 'requirements.txt', node_dir: '', build, migrate: 'true', keep: KEEP, keep_failed: KEEP_FAILED },
    programs: { [program]: { command: '{release}/venv/bin/python server.py {port}', port: 5100, health: '/health', env: {} } },
    routes: { '/': program },
    packages: { pip_index_url: pypiIndexUrl, npm_registry: npmRegistryUrl },
  });
}

/** What is on the host that grows with deploys, one number each, and the checks that must hold after every prune. */
async function measure(step: string): Promise<Record<string, string>> {
  const out = await onHost(`cd ${base}
echo "releases=$(ls releases | wc -l)"
echo "records=$(ls .ops/releases | wc -l)"
echo "deps=$(ls shared/deps | wc -l)"
echo "fingerprint=$(wc -l < .ops/fingerprint)"
echo "refs=$(git --git-dir=repo.git for-each-ref refs/ops/sha/ | wc -l)"
echo "history=$(wc -l < .ops/history)"
echo "audit=$(wc -l < .ops/audit.log)"
echo "kept_masks=$(cat .ops/kept-masks 2>/dev/null | wc -l)"
echo "logs=$(ls /var/log/${APP} | tr '\\n' ' ')"
echo "uv_cache_kb=$(du -sk /home/${APP}/.cache/uv 2>/dev/null | cut -f1)"
echo "leftovers=$(ls -A releases shared/deps | grep -c '^\\.' || true)"
# Every kept release whole: its venv link resolves to a complete set.
for r in releases/*/; do [ -e "$r"venv/bin/python ] || echo "broken=$r"; done`);
  const m: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) m[line.slice(0, i)] = (m[line.slice(0, i)] ? `${m[line.slice(0, i)]} ` : '') + line.slice(i + 1);
  }
  console.log(`${step}: ${JSON.stringify(m)}`);
  return m;
}

/** The invariants after a prune: bounded by keep, keep_failed and the warm release; every kept release whole. */
async function check(step: string, programs: string[]): Promise<void> {
  const m = await measure(step);
  const releases = Number(m.releases);
  expect(releases, `${step}: releases`).toBeLessThanOrEqual(KEEP + KEEP_FAILED + 1);
  expect(m.records, `${step}: a record per release`).toBe(m.releases);
  expect(Number(m.deps), `${step}: dependency sets`).toBeLessThanOrEqual(releases);
  expect(Number(m.fingerprint), `${step}: fingerprint lines`).toBeLessThanOrEqual(releases);
  expect(Number(m.refs), `${step}: mirror refs`).toBeLessThanOrEqual(releases);
  expect(m.broken, `${step}: every kept release has its dependency set`).toBeUndefined();
  expect(m.leftovers, `${step}: no leftovers`).toBe('0');
  const logPrograms = new Set((m.logs ?? '').split(' ').filter(Boolean).map((f) => f.replace(/-(blue|green)\..*$/, '')));
  expect([...logPrograms].sort(), `${step}: program logs only of programs a slot runs`).toEqual([...programs].sort());
  const [listed] = await listReleases(lab.project.ctx(), lab.project.env());
  expect(listed!.releases.length, `${step}: ops releases lists what is on the host`).toBe(releases);
}

const lab = labEnvironment('lcy', () => {
  repo = join(root, 'app');
  initRepo(repo, files('zero'));
  return webConfigFor('web', 'true');
});

describe.sequential('a host after many deploys', () => {
  it('stays bounded by what is kept: releases, records, sets, fingerprints, refs, logs of renamed programs; every kept release whole', async () => {
    const run = async (word: string, note: string) => {
      commit(repo, files(word, note), `${word} ${note}`);
      return deploy(lab.project.ctx(), lab.project.env(), { ref: 'main' });
    };
    await run('one', 'a');
    await check('1', ['web']);
    await run('two', 'a');
    await check('2', ['web']);
    // The program renamed: the release kept warm still runs `web`, so its logs stay until it is replaced.
    lab.project.write(webConfigFor('www', 'true'));
    await run('two', 'b');
    await check('3 (renamed)', ['web', 'www']);
    await run('three', 'b');
    await check('4', ['www']);
    await rollback(lab.project.ctx(), lab.project.env());
    await check('rollback', ['www']);
    // A failed deploy: kept for inspection, keep_failed of them.
    lab.project.write(webConfigFor('www', 'false'));
    await expect(run('four', 'c')).rejects.toThrow();
    await check('5 (failed)', ['www']);
    lab.project.write(webConfigFor('www', 'true'));
    for (const [i, word] of ['four', 'four', 'five', 'five', 'six'].entries()) {
      await run(word, `d${i}`);
      await check(`${6 + i}`, ['www']);
    }
    // Back one: the release it goes to is whole (its set kept) and serves.
    await rollback(lab.project.ctx(), lab.project.env());
    await check('rollback 2', ['www']);
  }, 900_000);
});
