// A daemon of the environment's own programs on an idle slot's port, on a real host (supervisor, nginx): a program
// that serves from a detached child (setsid: a session and process group of its own) keeps that child running when
// supervisor stops the program (by hand, or with the slot's file gone), and the child keeps the slot's port. The next
// rollback or deploy on that slot tells it from a foreign process (the programs' user, run from a release directory
// of this environment: report_slot's "own"), stops it before the start and says so; a process of another user on that
// port is still refused, named, and left running.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { MemoryReporter } from '../../core/report.ts';
import { rollback } from '../../core/ops/rollback.ts';
import { status } from '../../core/ops/status.ts';
import { quote } from '../../core/shell.ts';
import type { Slot } from '../../core/layout.ts';
import { gitIn, initRepo } from '../support/gitrepo.ts';
import { APP, asRoot, get, labEnvironment, webConfig } from './support.ts';

/**
 * The app: supervisor's process spawns a detached copy of itself (a session of its own) that serves every GET with
 * VERSION on the port, and waits; stopped, it exits and leaves the copy running (a daemon), holding the port.
 */
const SERVER = String.raw`const http = require('http');
const fs = require('fs');
const { spawn } = require('child_process');
const port = Number(process.argv[2]);
const version = fs.readFileSync('VERSION', 'utf8').trim();
if (process.argv[3] !== 'daemon') {
  spawn(process.execPath, [__filename, String(port), 'daemon'], { detached: true, stdio: 'ignore' });
  process.on('SIGTERM', () => process.exit(0));
  setInterval(() => {}, 60000);
} else {
  http.createServer((req, res) => res.end(version)).listen(port, '127.0.0.1');
}
`;

const root = mkdtempSync(join(tmpdir(), 'ops-sdaemon-'));
const lab = labEnvironment(
  'sdm',
  (host) => {
    const repo = join(root, 'app');
    initRepo(repo, { 'server.js': SERVER, VERSION: '1\n' });
    gitIn(repo, ['tag', 'v1']);
    return webConfig(host, repo, { ref: 'v1', programs: { web: { command: '{node} server.js {port}', port: 5100, health: '/health', env: {} } } });
  },
  {
    ready: async ({ host, project }) => {
      await deploy(project.ctx(), project.env(), { ref: 'v1' });
      expect((await get(host)).body).toBe('1');
    },
  },
);
/** On the host, as root. */
const onHost = (command: string) => asRoot(lab.host, command);
const liveSlot = async () => (await onHost(`cat /srv/${APP}/.ops/slot`)) as Slot;
const idleSlot = async (): Promise<Slot> => ((await liveSlot()) === 'blue' ? 'green' : 'blue');
const port = (slot: Slot) => lab.project.env().port('web', slot);
/** The pid listening on `port` ('' when none). */
const holder = (p: number) => onHost(`ss -Htlnp 'sport = :${p}' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2`);
const alive = async (pid: string) => (await onHost(`kill -0 ${pid} 2>/dev/null && echo yes || echo no`)) === 'yes';
/** Until `p` is held by a process other than `not` (a daemon binds its port a moment after its start): up to 30 s. */
async function heldBy(p: number, not = ''): Promise<string> {
  for (let i = 0; i < 150; i++) {
    const pid = await holder(p);
    if (pid && pid !== not) return pid;
    await new Promise((ok) => setTimeout(ok, 200));
  }
  throw new Error(`nothing listens on port ${p}`);
}

describe.sequential('a daemon of our own programs on the idle slot', () => {
  it('supervisor stopped the warm slot by hand, its daemon holds the port: status says so, a rollback stops it before its start, says so, and goes live', async () => {
    const first = (await deploy(lab.project.ctx(), lab.project.env(), { ref: 'v1', force: true })).release;
    const previous = (await deploy(lab.project.ctx(), lab.project.env(), { ref: 'v1', force: true })).release;
    expect(previous).not.toBe(first);
    const idle = await idleSlot();
    const warm = await heldBy(port(idle));
    await onHost(`supervisorctl stop '${APP}-${idle}:*'`);
    // The daemon outlived its parent: still on the idle slot's port.
    expect(await holder(port(idle))).toBe(warm);
    const warnings = (await status(lab.project.ctx(), lab.project.env())).hosts[0]!.warnings.join('\n');
    expect(warnings).toContain(`port ${port(idle)} of web (previous slot ${idle}) is held by pid ${warm} `);
    expect(warnings).toContain('which a program of this environment left running outside supervisor: the next deploy or rollback on slot');
    const out = new MemoryReporter();
    const ctx = lab.project.ctx(out);
    const r = await rollback(ctx, lab.project.env());
    expect(r.hosts[0]).toMatchObject({ release: first, previous });
    expect(out.text()).toMatch(new RegExp(`stopped what release ${first} left running on slot ${idle} outside supervisor .*: pid ${warm} \\(\\S*node \\S*server\\.js ${port(idle)} daemon, `));
    expect(await alive(warm)).toBe(false);
    expect(await liveSlot()).toBe(idle);
    expect(await get(lab.host)).toEqual({ status: 200, body: '1' });
  }, 900_000);

  it('the idle slot\'s file gone (supervisor removed its group), its daemon holds the port: the deploy stops it before its start (no release named by a file: by the port), says so, and goes live', async () => {
    const idle = await idleSlot();
    const warm = await heldBy(port(idle));
    await onHost(`rm -f ${lab.project.env().layout.supervisorConf(idle)} && supervisorctl update >/dev/null`);
    expect(await holder(port(idle))).toBe(warm);
    const out = new MemoryReporter();
    const ctx = lab.project.ctx(out);
    await deploy(ctx, lab.project.env(), { ref: 'v1', force: true });
    expect(out.text()).toMatch(new RegExp(`stopped what release of unknown id left running on slot ${idle} outside supervisor .*: pid ${warm} \\(\\S*node \\S*server\\.js ${port(idle)} daemon, listening on port ${port(idle)}\\)`));
    expect(await alive(warm)).toBe(false);
    expect(await liveSlot()).toBe(idle);
    expect(await get(lab.host)).toEqual({ status: 200, body: '1' });
  }, 900_000);

  it('another user\'s process on the idle slot\'s port, even run from one of our release directories: refused with the clear message, never stopped', async () => {
    const idle = await idleSlot();
    const warm = await heldBy(port(idle));
    await onHost(`supervisorctl stop '${APP}-${idle}:*' && kill ${warm}`);
    for (let i = 0; i < 150 && (await holder(port(idle))); i++) await new Promise((ok) => setTimeout(ok, 200));
    const release = await onHost(`readlink -f /srv/${APP}/current`);
    await onHost(`cd ${quote(release)} && (setsid runuser -u nobody -- python3 -m http.server ${port(idle)} --bind 127.0.0.1 </dev/null >/dev/null 2>&1 &)`);
    const foreign = await heldBy(port(idle));
    try {
      const err = await deploy(lab.project.ctx(), lab.project.env(), { ref: 'v1', force: true }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(
        new RegExp(`^the ports this release would start on \\(slot ${idle}\\) are taken on ${lab.host.name}: port ${port(idle)} \\(program web\\) is held by pid ${foreign} \\((/usr/bin/)?python3 -m http\\.server ${port(idle)} --bind 127\\.0\\.0\\.1\\)`),
      );
      expect(await alive(foreign)).toBe(true);
    } finally {
      await onHost(`kill ${foreign} || true`);
    }
  }, 900_000);
});
