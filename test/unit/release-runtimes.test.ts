// A release's recorded runtimes (layout.runtimes, written by releaseRecord) are what its slot file is rendered with on
// the host (slotConfigShell for a release chosen there: a rollback, a slot's previous release started again), run by
// bash on a scratch release tree: its own Node.js and Python, whatever `runtimes` pins today; today's for a release
// an older ops made (no record); refused, saying how to fix it, when the one it was built with is gone (its Node.js,
// a {python}, its venv's interpreter).
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { scriptPrelude } from '../../core/remote/wrap.ts';
import { onHost } from '../../core/shell.ts';
import { releaseRecord } from '../../core/steps/release.ts';
import { slotConfig, slotConfigShell } from '../../core/steps/switch.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const ID = '20260101T000000Z-0123456789ab';

function env(base: string, extra: Record<string, unknown> = {}): Target {
  const config = parseEnvironment(
    {
      app: 'shop',
      hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }],
      programs: { web: { command: '{node} server.js {port}', port: 4000 } },
      routes: { '/': 'web' },
      release: { python_requirements: '', node_dir: '' },
      runtimes: { python: { strategy: 'debian', version: '3.11' }, node: { strategy: 'npm', version: '24.22.3' } },
      packages: { npm_registry: 'http://registry.example/' },
      ...extra,
    },
    'test',
  );
  return resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: base, url: 'http://x' });
}

/** A scratch base dir holding release ID (its directory and record directory). */
function scratch(): string {
  const base = mkdtempSync(join(tmpdir(), 'ops-runtimes-'));
  mkdirSync(join(base, 'releases', ID), { recursive: true });
  mkdirSync(join(base, '.ops', 'releases', ID), { recursive: true });
  return base;
}

/** An executable at `path` (made under the scratch base: a runtime "installed" there). */
function exe(path: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, '#!/bin/sh\n');
  chmodSync(path, 0o755);
}

/** slotConfigShell's rendering for release_id=ID on `e`'s scratch host: the file's text, or the refusal (exit 3, stderr). */
function render(e: Target): { text?: string; refused?: string } {
  const script = `${scriptPrelude}\nrelease_id=${ID}\n${slotConfigShell(e, 'blue', onHost('release_id'), 'echo "$rt_missing" >&2; exit 3')}\nprintf %s "$conf_b64" | base64 -d`;
  try {
    return { text: execFileSync('bash', ['-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).replace(/^\n@ops-start\n/, '') };
  } catch (err) {
    const e2 = err as { status: number; stderr: string };
    expect(e2.status).toBe(3);
    return { refused: e2.stderr };
  }
}

describe("a release's recorded runtimes", () => {
  it('releaseRecord writes the pinned runtimes, version and absolute path', () => {
    const base = scratch();
    const e = env(base);
    const dir = join(base, 'releases', '.new');
    mkdirSync(dir);
    execFileSync('bash', ['-c', `${scriptPrelude}\n${releaseRecord(e, dir, { id: ID, sha: 'a'.repeat(40), ref: 'v1', environment: 'test', actor: 'me', time: 't', run: 'r', deps: { python: '', node: '' } })}`]);
    expect(execFileSync('cat', [e.layout.runtimes(e.layout.record(ID))], { encoding: 'utf8' })).toBe('python 3.11 /usr/bin/python3.11\nnode 24.22.3 /opt/ops-node/v24.22.3/bin/node\n');
  });

  it("a release built on another Node.js is rendered with that one (command and PATH), not today's pin", () => {
    const base = scratch();
    const old = join(base, 'opt', 'v18.20.8', 'bin', 'node');
    exe(old);
    writeFileSync(join(base, '.ops', 'releases', ID, '.ops-runtimes'), `python 3.11 /usr/bin/python3.11\nnode 18.20.8 ${old}\n`);
    const e = env(base);
    const { text } = render(e);
    expect(text).toBe(slotConfig(e, 'blue', `${e.layout.releases}/${ID}`, ID, { python: '/usr/bin/python3.11', node: old, npm: old.replace(/node$/, 'npm') }));
    expect(text).toContain(`command=${old} server.js 4000`);
    expect(text).not.toContain('/opt/ops-node/v24.22.3');
  });

  it("a release an older ops made (no record) is rendered with today's runtimes, as before", () => {
    const base = scratch();
    const e = env(base);
    expect(render(e).text).toBe(slotConfig(e, 'blue', `${e.layout.releases}/${ID}`, ID));
  });

  it('a release whose Node.js is gone is refused, naming it and how to fix it', () => {
    const base = scratch();
    writeFileSync(join(base, '.ops', 'releases', ID, '.ops-runtimes'), `python 3.11 /usr/bin/python3.11\nnode 16.20.2 ${base}/gone/bin/node\n`);
    const { refused } = render(env(base));
    expect(refused).toContain(`release ${ID} was built with Node.js 16.20.2 (${base}/gone/bin/node), which is not on this host any more`);
    expect(refused).toContain('Nothing was changed');
    expect(refused).toContain('ops provision');
    expect(refused).toContain('ops deploy test --ref');
  });

  it("a gone Node.js is not refused when no program needs one (no node_dir, no {node} or {npm})", () => {
    const base = scratch();
    writeFileSync(join(base, '.ops', 'releases', ID, '.ops-runtimes'), `python 3.11 /usr/bin/python3.11\nnode 16.20.2 ${base}/gone/bin/node\n`);
    const e = env(base, { programs: { web: { command: 'venv/bin/python -m app', port: 4000 } } });
    expect(render(e).text).toContain('command=');
  });

  it('a {python} whose interpreter is gone, and a venv whose interpreter is gone, are refused', () => {
    const base = scratch();
    writeFileSync(join(base, '.ops', 'releases', ID, '.ops-runtimes'), `python 3.8.9 ${base}/pyenv/3.8.9/bin/python3\nnode 18 /usr/bin/node\n`);
    const py = env(base, { programs: { web: { command: '{python} -m app', port: 4000 } } });
    expect(render(py).refused).toContain(`was built with Python 3.8.9 (${base}/pyenv/3.8.9/bin/python3), which is not on this host any more`);

    const venvBase = scratch();
    mkdirSync(join(venvBase, 'releases', ID, 'venv', 'bin'), { recursive: true });
    symlinkSync(join(venvBase, 'pyenv', '3.8.9', 'bin', 'python3'), join(venvBase, 'releases', ID, 'venv', 'bin', 'python'));
    const venv = env(venvBase, { programs: { web: { command: 'venv/bin/python -m app', port: 4000 } }, release: { python_requirements: 'requirements.txt', node_dir: '' } });
    expect(render(venv).refused).toContain(`release ${ID} was built with a venv on a Python (${venvBase}/pyenv/3.8.9/bin/python3), which is not on this host any more`);
  });

  it('a record line that is not an absolute path of plain characters is not used', () => {
    const base = scratch();
    writeFileSync(join(base, '.ops', 'releases', ID, '.ops-runtimes'), 'node 18 /x"y/node\n');
    const e = env(base);
    expect(render(e).text).toBe(slotConfig(e, 'blue', `${e.layout.releases}/${ID}`, ID));
  });
});
