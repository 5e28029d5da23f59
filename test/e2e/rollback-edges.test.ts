// ops rollback as a new user drives it, on a real host (supervisor, nginx, the host's history): release ids that
// are not releases (malformed, shell metacharacters, not kept) refused before anything changes; and a roll
// forward (`--to` the release just rolled back from), after which the next deploy can still be rolled back to it;
// `--to` a release whose deploy failed refused (it never served); supervisord stopped, or a port of the idle slot held
// by a process that is not the slot's own, or nginx stopped with its unit masked: refused before anything changes;
// nginx stopped: started by the switch, saying so.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { listReleases } from '../../core/ops/records.ts';
import { rollback } from '../../core/ops/rollback.ts';
import { MemoryReporter } from '../../core/report.ts';
import { quote } from '../../core/shell.ts';
import { downHost, sshRun, type Host } from '../hosts/index.ts';
import { runOps } from '../support/cli.ts';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';
import { APP, get, makeProject, pythonWebApp, readyHost, untilListening, webConfig, type TestProject } from './support.ts';

/** The app: answers every path with its release and version. */
const SERVER = pythonWebApp('os.environ["OPS_RELEASE"] + " " + open("VERSION").read().strip()');

let host: Host;
let project: TestProject;
let repo: string;
const root = mkdtempSync(join(tmpdir(), 'ops-rollback-'));
/** On the host, as root. */
const onHost = async (command: string) => (await sshRun(host, `sudo bash -c ${quote(command)}`)).stdout.trim();
const cli = (argv: string[]) => runOps(argv, { root: project.root, processEnv: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1' } });
/** Deploy a new commit with VERSION `version`; its release id. */
async function release(version: string): Promise<string> {
  commit(repo, { VERSION: `${version}\n` }, `version ${version}`);
  gitIn(repo, ['tag', `v${version}`]);
  return (await deploy(project.ctx(), project.env(), { ref: `v${version}` })).release;
}

beforeAll(async () => {
  host = await readyHost('rbe');
  repo = join(root, 'app');
  initRepo(repo, { 'server.py': SERVER, VERSION: '0\n' });
  project = makeProject('e2e', webConfig(host, repo, { release: { python_requirements: '', node_dir: '', build: 'true', migrate: 'true', keep: 5 } }));
}, 900_000);

afterAll(async () => {
  if (host) await downHost(host.name, { purge: true });
  project?.cleanup();
});

describe.sequential('ops rollback', () => {
  it('--to a malformed id, one with shell metacharacters, one not kept: refused with one message each (the two forms a usage error, exit 2; the id not kept, refused by the host, exit 1); nothing on the host changes', async () => {
    const v1 = await release('1');
    const before = await onHost(`cat /srv/${APP}/.ops/history; ls /srv/${APP}/releases`);
    for (const to of ['$(touch /tmp/ops-pwned)', `${v1}; touch /tmp/ops-pwned`, '../../etc']) {
      const r = await cli(['rollback', 'e2e', '--to', to]);
      expect(r.code).toBe(2);
      expect(r.err).toContain(`error: invalid release id ${JSON.stringify(to)}: expected YYYYMMDDTHHMMSSZ-<sha>, as \`ops releases\` lists them\n  hint: copy the id from \`ops releases e2e\``);
      expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
    }
    // a word a release could be named by (a ref): what is kept read, none is it
    const latest = await cli(['rollback', 'e2e', '--to', 'latest']);
    expect(latest.code).toBe(2);
    expect(latest.err).toContain(`error: --to takes a release id, and no release kept is latest (kept: ${v1}`);
    const missing = '20990101T000000Z-0123456789ab';
    const r = await cli(['rollback', 'e2e', '--to', missing]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`error: release ${missing} is not on ${host.name} (kept: ${v1})`);
    expect(await onHost('ls /tmp/ops-pwned 2>/dev/null || echo none')).toBe('none');
    expect(await onHost(`cat /srv/${APP}/.ops/history; ls /srv/${APP}/releases`)).toBe(before);
    expect((await get(host)).body).toBe(`${v1} 1`);
  }, 300_000);

  it('a roll forward (--to the release just rolled back from) makes it a rollback target again: the next deploy rolls back to it', async () => {
    const v2 = await release('2');
    const v1 = (await rollback(project.ctx(), project.env())).hosts[0]!.release;
    expect((await get(host)).body).toBe(`${v1} 1`);
    // The cause was elsewhere after all: forward again to v2.
    expect((await rollback(project.ctx(), project.env(), v2)).hosts[0]).toMatchObject({ release: v2, previous: v1 });
    expect((await get(host)).body).toBe(`${v2} 2`);
    const listed = (await listReleases(project.ctx(), project.env()))[0]!.releases;
    expect(listed.find((x) => x.id === v2)!.status).toBe('current');
    const v3 = await release('3');
    expect((await listReleases(project.ctx(), project.env()))[0]!.releases.find((x) => x.id === v2)!.status).toBe('ok');
    // v2 was live right before v3: that is where a rollback goes (v1 was rolled back from, by the roll forward).
    expect((await rollback(project.ctx(), project.env())).hosts[0]).toMatchObject({ release: v2, previous: v3 });
    expect((await get(host)).body).toBe(`${v2} 2`);
  }, 300_000);

  it('--to a release that never went live (its deploy failed at the start): refused, saying so and the deploy to run instead; nothing on the host changes', async () => {
    const live = (await listReleases(project.ctx(), project.env()))[0]!.releases.find((x) => x.status === 'current')!.id;
    commit(repo, { 'server.py': 'import sys\nsys.exit(3)\n' }, 'exits at start');
    gitIn(repo, ['tag', 'crashes']);
    await expect(deploy(project.ctx(), project.env(), { ref: 'crashes' })).rejects.toThrow(/still serves/);
    const failed = (await listReleases(project.ctx(), project.env()))[0]!.releases.find((x) => x.status === 'failed')!.id;
    const before = await onHost(`cat /srv/${APP}/.ops/history; ls /srv/${APP}/releases; readlink /srv/${APP}/current`);
    const r = await cli(['rollback', 'e2e', '--to', failed]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`error: release ${failed} never went live on ${host.name} (its deploy failed): a rollback goes back to a release that served; ${host.name} still serves ${live}`);
    expect(r.err).toMatch(/ops deploy e2e --ref [0-9a-f]{40}/);
    expect(r.err).not.toMatch(/\n\s+at /);
    expect(await onHost(`cat /srv/${APP}/.ops/history; ls /srv/${APP}/releases; readlink /srv/${APP}/current`)).toBe(before);
    expect((await get(host)).body).toContain(live);
    expect(await onHost(`test -d /srv/${APP}/.ops/lock && echo held || echo free`)).toBe('free');
  }, 300_000);

  it('supervisord stopped: refused before any slot, nginx or current is touched, naming the host and its start; the lock let go', async () => {
    const releases = (await listReleases(project.ctx(), project.env()))[0]!.releases;
    const live = releases.find((x) => x.status === 'current')!.id;
    // A release the rollback would otherwise go to (one that went live: rolled back from, or kept ok).
    const to = releases.find((x) => x.status !== 'current' && x.status !== 'failed')!.id;
    const look = `cat /srv/${APP}/.ops/history /srv/${APP}/.ops/slot /etc/nginx/ops-upstreams/${APP}.conf; ls /srv/${APP}/releases /srv/${APP}/releases/*/.ops-* /etc/supervisor/conf.d; readlink /srv/${APP}/current`;
    const before = await onHost(look);
    await onHost('systemctl stop supervisor');
    try {
      const r = await cli(['rollback', 'e2e', '--to', to]);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`error: supervisord is not running on ${host.name} (systemctl start supervisor): nothing was changed (no slot started or stopped; nginx and current as they were)`);
      expect(r.err).not.toMatch(/\n\s+at /);
      expect(await onHost(look)).toBe(before);
      expect(await onHost(`test -d /srv/${APP}/.ops/lock && echo held || echo free`)).toBe('free');
    } finally {
      await onHost('systemctl start supervisor');
    }
    // supervisord back: the live release serves again (its programs start with it), and was never left.
    const until = Date.now() + 30_000;
    let body = '';
    while (Date.now() < until && !body.startsWith(live)) {
      body = await get(host).then((x) => x.body, () => '');
      if (!body.startsWith(live)) await new Promise((r) => setTimeout(r, 250));
    }
    expect(body).toContain(live);
  }, 300_000);

  it('a foreign process on the idle slot\'s port: refused in the lock step before any slot, nginx or current is touched, naming host, port, pid, command and the fix; the lock let go; freed, the rollback goes, and back to the warm slot (its own) too', async () => {
    const releases = (await listReleases(project.ctx(), project.env()))[0]!.releases;
    const live = releases.find((x) => x.status === 'current')!.id;
    const to = releases.find((x) => x.status !== 'current' && x.status !== 'failed')!.id;
    const look = `cat /srv/${APP}/.ops/history /srv/${APP}/.ops/slot /etc/nginx/ops-upstreams/${APP}.conf; ls /srv/${APP}/releases /srv/${APP}/releases/*/.ops-* /etc/supervisor/conf.d; readlink /srv/${APP}/current`;
    const idle = (await onHost(`cat /srv/${APP}/.ops/slot`)) === 'blue' ? 'green' : 'blue';
    // port_offset 1: program web on 5100 (blue), 5101 (green). Whatever the idle slot runs is stopped first.
    const port = idle === 'blue' ? 5100 : 5101;
    await onHost(`supervisorctl stop '${APP}-${idle}:*' || true`);
    await onHost(`systemd-run --unit=ops-squat-rb -- python3 -m http.server ${port} --bind 127.0.0.1; ${untilListening(port)}`);
    try {
      const pid = await onHost('systemctl show -p MainPID --value ops-squat-rb');
      const before = await onHost(look);
      const r = await cli(['rollback', 'e2e', '--to', to]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(
        new RegExp(
          `error: the ports this rollback would start its release on \\(slot ${idle}\\) are taken on ${host.name}: port ${port} \\(program web\\) is held by pid ${pid} \\((/usr/bin/)?python3 -m http\\.server ${port} --bind 127\\.0\\.0\\.1\\)\\. Its start would fail, so nothing was changed \\(no slot started or stopped; nginx and current as they were\\); ${host.name} still serves ${live}`,
        ),
      );
      expect(r.err).toContain(`sudo kill ${pid}`);
      expect(r.err).not.toMatch(/\n\s+at /);
      expect(await onHost(look)).toBe(before);
      expect(await onHost(`test -d /srv/${APP}/.ops/lock && echo held || echo free`)).toBe('free');
      expect((await get(host)).body).toContain(live);
    } finally {
      await onHost('systemctl stop ops-squat-rb || true');
    }
    // Freed: the rollback goes; and back, to the release left running warm on the other slot (its own, not foreign).
    expect((await rollback(project.ctx(), project.env(), to)).hosts[0]).toMatchObject({ release: to, previous: live });
    expect((await get(host)).body).toContain(to);
    const back = await rollback(project.ctx(), project.env(), live);
    expect(back.hosts[0]).toMatchObject({ release: live, previous: to });
    expect((await get(host)).body).toContain(live);
  }, 300_000);

  it('nginx stopped with its unit masked: refused in the lock step before any slot, nginx or current is touched, as a deploy is; the lock let go', async () => {
    const releases = (await listReleases(project.ctx(), project.env()))[0]!.releases;
    const to = releases.find((x) => x.status !== 'current' && x.status !== 'failed')!.id;
    // what supervisor runs too (name, state, pid): the slot the rollback would start is not started
    const look = `cat /srv/${APP}/.ops/history /srv/${APP}/.ops/slot /etc/nginx/ops-upstreams/${APP}.conf; ls /srv/${APP}/releases /srv/${APP}/releases/*/.ops-* /etc/supervisor/conf.d; readlink /srv/${APP}/current; supervisorctl status | awk '{ print $1, $2, ($2 == "RUNNING" ? $4 : "") }'`;
    // what an earlier case started may still be STARTING (supervisor's startsecs): settled first, so that what is
    // compared is what the rollback did
    const settled = `for i in $(seq 100); do supervisorctl status | grep -q STARTING || break; sleep 0.1; done; ${look}`;
    await onHost('systemctl stop nginx; systemctl mask nginx');
    try {
      const before = await onHost(settled);
      const r = await cli(['rollback', 'e2e', '--to', to]);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`error: nginx is not running on ${host.name} and its unit is masked (systemctl mask nginx): the switch could not start it, so nothing was changed (no slot started or stopped; nginx and current as they were)`);
      expect(r.err).toContain('sudo systemctl unmask nginx (unmask --runtime for a mask made with --runtime) && sudo systemctl start nginx, then roll back again');
      expect(r.err).not.toMatch(/\n\s+at /);
      expect(await onHost(look)).toBe(before);
      expect(await onHost(`test -d /srv/${APP}/.ops/lock && echo held || echo free`)).toBe('free');
      // masked until the next boot (systemctl mask --runtime; is-enabled says masked-runtime): refused alike
      await onHost('systemctl unmask nginx; systemctl mask --runtime nginx');
      expect(await onHost('systemctl is-enabled nginx || true')).toBe('masked-runtime');
      const again = await onHost(settled);
      const runtime = await cli(['rollback', 'e2e', '--to', to]);
      expect(runtime.code).toBe(1);
      expect(runtime.err).toContain(`error: nginx is not running on ${host.name} and its unit is masked`);
      expect(await onHost(look)).toBe(again);
    } finally {
      await onHost('systemctl unmask nginx; systemctl unmask --runtime nginx; systemctl start nginx');
    }
  }, 300_000);

  it('nginx stopped: the rollback\'s switch starts it and says so, naming the host (a warning and a note), as a deploy\'s does', async () => {
    const releases = (await listReleases(project.ctx(), project.env()))[0]!.releases;
    const live = releases.find((x) => x.status === 'current')!.id;
    const to = releases.find((x) => x.status !== 'current' && x.status !== 'failed')!.id;
    await onHost('systemctl stop nginx');
    try {
      const reporter = new MemoryReporter();
      const r = await rollback(project.ctx(reporter), project.env(), to);
      const said = `nginx was not running on ${host.name}: the switch started it (the site was down until then)`;
      expect(reporter.lines).toContain(`warning: ${said}`);
      expect(r.hosts[0]).toMatchObject({ release: to, previous: live });
      expect(r.hosts[0]!.notes).toContain(`warning: ${said}`);
      expect(await onHost('systemctl is-active nginx || true')).toBe('active');
      expect((await get(host)).body).toContain(to);
    } finally {
      await onHost('systemctl start nginx || true');
    }
  }, 300_000);
});
