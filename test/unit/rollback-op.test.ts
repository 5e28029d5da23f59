// The rollback operation against the recording transport (no host): one host rolls back in the lock step (one
// round trip after connecting), several hosts take every lock before any host changes; what the host reports
// (its choice, a refusal, a failed start) becomes the result or the error. The host's side of the choice runs
// with bash on a scratch release tree: refusals and the no-op end with `refused`, never with `done`.
import { PROVISIONED_KEYS } from '../../core/steps/system.ts';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadEnvironment, parseEnvironment } from '../../core/config/environment.ts';
import type { OpsContext } from '../../core/context.ts';
import { refusedOrNoop, rollback, rollbackSettings, rollbackSummary, settingsNote, unlessRefused } from '../../core/ops/rollback.ts';
import { auditTemplate, type AuditEntry } from '../../core/steps/audit.ts';
import { settingsDigest } from '../../core/ops/deploy-plan.ts';
import { ConnectionLostError, OpsError, failedResult } from '../../core/errors.ts';
import { MemoryReporter } from '../../core/report.ts';
import { RecordingRemote, type Responder } from '../../core/remote/recording.ts';
import { parseReports, reported } from '../../core/remote/types.ts';
import { scriptText } from '../../core/remote/wrap.ts';
import { onHost, quote } from '../../core/shell.ts';
import { LIBRARY_KEYS, LOCK_LOST_EXIT, LOCK_LOST_MARK } from '../../core/steps/libraries.ts';
import { describeHolder, LOCK_KEYS, LOCK_UNPROVISIONED_EXIT } from '../../core/steps/lock.ts';
import { runInfo } from '../../core/runinfo.ts';
import { PREFLIGHT_KEYS, RELEASE_KEYS, markRelease } from '../../core/steps/release.ts';
import { RELEASES_KEYS } from '../../core/steps/release-list.ts';
import { PREVIOUS_KEYS, ROLLBACK_KEYS, START_FAILED_CLEAN, recordSettings, rollbackStep, slotConfig, slotConfigShell, unstageAssets } from '../../core/steps/switch.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { opsLines } from './reports.helpers.ts';
import { runOps } from '../support/cli.ts';

const KEYS = { ...PROVISIONED_KEYS, ...LOCK_KEYS, ...RELEASE_KEYS, ...LIBRARY_KEYS, ...ROLLBACK_KEYS, ...PREFLIGHT_KEYS };
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const OLD = '20261101T100000Z-aaaaaaaaaaaa';
const LIVE = '20261102T100000Z-bbbbbbbbbbbb';
let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ops-rollback-op-'));
  writeFileSync(join(root, 'package.json'), '{}');
  // Two hosts at other addresses than the one: a different set of hosts, not two apps sharing one.
  // 'assets': two hosts serving an asset directory (a rollout stages its release's there as `next`).
  for (const [name, hosts, net, release] of [['one', ['web1'], '192.0.2', {}], ['two', ['web1', 'web2'], '198.51.100', {}], ['assets', ['web1', 'web2'], '203.0.113', { asset_dirs: [{ dir: 'static', url: '/static/' }] }], ['three', ['web1', 'web2', 'web3'], '192.168.50', {}]] as const) {
    mkdirSync(join(root, 'environments', name), { recursive: true });
    writeFileSync(
      join(root, 'environments', name, 'environment.yml'),
      stringify({ app: 'sample', hosts: hosts.map((h, i) => ({ name: h, address: `${net}.${i + 1}`, host_key: KEY })), programs: { server: { command: 'run', port: 3579, health: '/health' } }, routes: { '/': 'server' }, release }),
    );
  }
});

/** What a host's lock step reports before the rollback's part: the lock taken, the state. */
const STATE = opsLines(KEYS, 'lock acquired', 'provisioned yes', `current ${LIVE}`, 'slot blue', `release ${OLD} x ok 1 1`, `release ${LIVE} x ok 2 2`, `now ${Math.floor(Date.now() / 1000)}`);

/** The audit entry an unlock step appends (its first line), parsed. */
function auditOf(stdin: string): AuditEntry {
  return JSON.parse(/'(\{"time":[^']*\})'/.exec(stdin)![1]!) as AuditEntry;
}

function harness(respond: (step: Parameters<Responder>[0], host: string) => ReturnType<Responder>) {
  const remotes = new Map<string, RecordingRemote>();
  const ctx: OpsContext = {
    root,
    reporter: new MemoryReporter(),
    processEnv: { PATH: process.env.PATH, USER: 'alice' },
    connector: async (_env, host) => {
      const remote = new RecordingRemote(host.name, 'deploy', 'sample', (step) => respond(step, host.name));
      remotes.set(host.name, remote);
      return remote;
    },
  };
  return { ctx, remotes, names: (host = 'web1') => remotes.get(host)!.stepNames() };
}

describe('rollback operation', () => {
  it('ops rollback --to \'\' (an unset variable) is a usage error, not the release before: no host is reached', async () => {
    let connected = 0;
    const r = await runOps(['rollback', 'one', '--to', ''], { root, processEnv: { PATH: process.env.PATH }, connector: async () => (connected++, new RecordingRemote()) });
    expect(r.code).toBe(2);
    expect(r.err).toContain('--to needs a release id, got an empty one');
    // the hint names the environment given, never a literal <env>
    expect(r.err).toContain('hint: see ops releases one; without --to: the release before the live one');
    expect(connected).toBe(0);
  });

  it('one host: lock, state, choice, start, switch, mark, audit and unlock in ONE step after connecting', async () => {
    const h = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') } : undefined));
    const r = await rollback(h.ctx, loadEnvironment('one', root));
    expect(h.remotes.size).toBe(1);
    expect(h.names()).toEqual(['lock']);
    expect(r.hosts[0]).toMatchObject({ host: 'web1', release: OLD, previous: LIVE, noop: false });
    expect(r.noop).toBe(false);
    expect(rollbackSummary(r)).toMatch(/^### Rollback of one\n/);
    expect(r.hosts[0]!.steps.map((s) => s.name)).toEqual(['lock + start green + switch']);
    const lock = h.remotes.get('web1')!.runs[0]!;
    // The host chooses (no --to), then its audit line takes release and previous from the host's variables.
    expect(lock.stdin).toContain("rollback_choice \"$rollback_from\" ''");
    expect(lock.stdin).toContain(`"release":"'"\${release_id}"'","previous":"'"\${audit_previous}"'"`);
    expect(lock.stdin).toContain('"result":"success"');
    // Time for a start and a switch, beyond the lock's own 30 s.
    expect(lock.step.timeout).toBeGreaterThan(30 + 120 + 60);
  });

  it('one host, its connection lost while the lock step (its work: a switch goes on without its runner) ran: what the host says is live once that step ended, in the error, the --json fields and the audit line', async () => {
    const h = harness((step) => {
      if (step.name === 'lock') throw new ConnectionLostError('step "lock" on web1 (connection lost): the SSH connection was already closed', 'try again');
      if (step.name === 'settle') return { stdout: opsLines(LOCK_KEYS, `live_after ${OLD}`) };
      return undefined;
    });
    const e = (await rollback(h.ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as OpsError;
    expect(e.message).toBe(`step "lock" on web1 (connection lost): the SSH connection was already closed\n${OLD} is live on web1 (what current names once the step ended there)`);
    expect(e.hint).toBe('try again');
    expect(failedResult(e)).toMatchObject({ live: OLD });
    expect(h.names()).toEqual(['settle', 'unlock']);
    expect(auditOf(h.remotes.get('web1')!.runs.at(-1)!.stdin).message).toContain(`${OLD} is live on web1`);
  });

  it.each([OLD, LIVE, 'nothing (not answering again)'])('several hosts, the connection to one lost while its rollback step (a switch goes on without its runner) ran, the host saying %s is live once it ended: said as the host says, never assumed', async (live) => {
    const h = harness((step, host) => {
      if (step.name === 'lock') return { stdout: STATE };
      if (step.name === 'rollback' && host === 'web2') throw new ConnectionLostError('step "rollback" on web2 (connection lost): the SSH connection was already closed', 'try again');
      if (step.name === 'rollback') return { stdout: opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') };
      if (step.name === 'settle') return live.startsWith('nothing') ? { code: 255 } : { stdout: opsLines(LOCK_KEYS, `live_after ${live}`) };
      return undefined;
    });
    const e = (await rollback(h.ctx, loadEnvironment('two', root)).catch((x: unknown) => x)) as OpsError;
    expect(e.message).toContain('step "rollback" on web2 (connection lost): the SSH connection was already closed\n');
    const audit = auditOf(h.remotes.get('web2')!.runs.at(-1)!.stdin);
    if (live === OLD) {
      expect(e.message).toContain(`${OLD} is live on web2 and serves: the switch ended on the host after the connection was lost`);
      expect(e.message).not.toContain('web2 still serves');
      expect(audit).toMatchObject({ result: 'failed', release: OLD, previous: LIVE, message: expect.stringMatching(/^live, but /) });
    } else if (live.startsWith('nothing')) {
      expect(e.message).toContain('what is live on web2 is not known');
      expect(e.message).not.toContain('still serves');
      expect(audit).toMatchObject({ result: 'failed', message: expect.stringMatching(/is not known/) });
    } else {
      expect(e.message).toContain(`web2 still serves ${LIVE}`);
      expect(audit).toMatchObject({ result: 'failed', previous: LIVE, message: expect.stringMatching(/^step "rollback" on web2 \(connection lost\)/) });
    }
    expect(h.names('web2')).toEqual(['settle', 'unlock']);
  });

  it('--to with an id not kept, a slip away from one that is: the kept one named; far from any: none', async () => {
    const refused = async (to: string) => {
      const h = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, 'rollback not_kept', `rollback_from ${LIVE}`) } : undefined));
      return ((await rollback(h.ctx, loadEnvironment('one', root), to).catch((e: unknown) => e)) as Error).message;
    };
    // A digit mistyped (ids of one day differ in a few digits).
    expect(await refused('20261101T100001Z-aaaaaaaaaaaa')).toContain(`(kept: ${OLD}, ${LIVE}) (did you mean ${OLD}?)`);
    expect(await refused('20261102T100000Z-bbbbbbbbbbbc')).toContain(`(did you mean ${LIVE}?)`);
    // Another day's id: no guess.
    expect(await refused('20261001T100000Z-cccccccccccc')).not.toContain('did you mean');
  });

  it('--to given as people name a release (its ref, its commit, the id\'s time, the id with `ops releases`\' marker): the id meant named, after one read of what is kept; nothing rolled back', async () => {
    const A = 'a'.repeat(40);
    const B = 'b'.repeat(40);
    const listing = (ref = 'v1') => opsLines({ ...KEYS, ...RELEASES_KEYS }, 'provisioned yes', `current ${LIVE}`, 'slot blue', `release ${OLD} ${A} ok 1 1`, `release ${LIVE} ${B} ok 2 2`, `release_json ${OLD} {"sha":"${A}","ref":"${ref}"}`, `release_json ${LIVE} {"sha":"${B}","ref":"main"}`);
    const refused = async (to: string, ref?: string) => {
      const h = harness((step) => (step.name === 'releases' ? { stdout: listing(ref) } : undefined));
      const e = (await rollback(h.ctx, loadEnvironment('one', root), to).catch((x: unknown) => x)) as OpsError;
      // one read, no lock taken: nothing changed
      expect(h.remotes.size ? h.names() : [], to).toEqual(to.startsWith('*') ? [] : ['releases']);
      return [e.message, e.hint];
    };
    for (const to of ['v1', 'aaaaaaa', 'AAAAAAAAAAAA', '20261101T100000Z', '20261101']) {
      expect(await refused(to), to).toEqual([`--to takes a release id: ${to} is release ${OLD}`, `ops rollback one --to ${OLD}`]);
    }
    // main deployed twice
    expect(await refused('main', 'main')).toEqual([`--to takes a release id: main names 2 kept releases, ${LIVE}, ${OLD}`, `pick one (ops releases one says which went live when): ops rollback one --to ${LIVE}`]);
    expect(await refused('v0')).toEqual([`--to takes a release id, and no release kept is v0 (kept: ${LIVE} (main), ${OLD} (v1))`, 'ops releases one lists them with their ids; a release no longer kept comes back by a deploy of its commit (ops deploy one --ref <ref>)']);
    expect(await refused(`* ${OLD}`)).toEqual([`--to "* ${OLD}" holds the live marker of ops releases ("*"): the release id is ${OLD}`, `ops rollback one --to ${OLD}`]);
  });

  it('one host, --to: the id travels quoted, checked on the host; a release not kept there is refused, audited as failed saying why when the lock is let go', async () => {
    const to = '20261001T100000Z-cccccccccccc';
    const h = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, 'rollback not_kept', `rollback_from ${LIVE}`) } : undefined));
    await expect(rollback(h.ctx, loadEnvironment('one', root), to)).rejects.toThrow(`release ${to} is not on web1 (kept: ${OLD}, ${LIVE})`);
    expect(h.names()).toEqual(['lock', 'unlock']);
    expect(auditOf(h.remotes.get('web1')!.runs.at(-1)!.stdin)).toMatchObject({ operation: 'rollback', result: 'failed', previous: LIVE, message: `refused, nothing changed: release ${to} is not on web1 (kept: ${OLD}, ${LIVE})` });
    // The lock step itself never lets go without an audit line (a refusal, nginx masked too, keeps the lock for the runner's).
    const lock = h.remotes.get('web1')!.runs[0]!.stdin;
    expect(lock).toContain('ops_report lock released');
    expect(lock).not.toMatch(/then\nrm -rf "\$lock"; ops_report lock released/);
    expect(h.remotes.get('web1')!.runs[0]!.stdin).toContain(`rollback_choice "$rollback_from" ${to}`);
  });

  it('one host, --to a release that never went live (its deploy failed): refused, saying so and what to run instead; audited as failed', async () => {
    const FAILED = '20261103T100000Z-cccccccccccc';
    const state = STATE + opsLines(KEYS, `release ${FAILED} ${'c'.repeat(40)} failed - 3`);
    const h = harness((step) => (step.name === 'lock' ? { stdout: state + opsLines(KEYS, 'rollback never_live', `rollback_from ${LIVE}`) } : undefined));
    const e = await rollback(h.ctx, loadEnvironment('one', root), FAILED).catch((x: unknown) => x as OpsError);
    expect(e).toBeInstanceOf(OpsError);
    expect((e as OpsError).message).toBe(`release ${FAILED} never went live on web1 (its deploy failed): a rollback goes back to a release that served; web1 still serves ${LIVE}`);
    expect((e as OpsError).hint).toBe(`to run that commit, deploy it (a new release, built and health-checked): ops deploy one --ref ${'c'.repeat(40)}`);
    expect(h.names()).toEqual(['lock', 'unlock']);
    expect(auditOf(h.remotes.get('web1')!.runs.at(-1)!.stdin)).toMatchObject({ result: 'failed', message: expect.stringMatching(/^refused, nothing changed: release \S+ never went live on web1 \(its deploy failed\)/) });
  });

  it('one host with nothing earlier: the same error as ever, audited as failed saying why; already live (--to the live id): a no-op, audited in the lock step as a deploy\'s no-op is', async () => {
    const none = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, 'rollback none', `rollback_from ${LIVE}`) } : undefined));
    const refused = (await rollback(none.ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as OpsError;
    expect(refused.message).toMatch(/web1 has no earlier healthy release to roll back to \(kept: /);
    // An older release that served is kept: --to can name it.
    expect(refused.hint).toBe('pick one with --to (see ops releases one)');
    expect(none.names()).toEqual(['lock', 'unlock']);
    // Only the live release kept (a first deploy): no --to can help, a deploy can.
    const alone = harness((step) => (step.name === 'lock' ? { stdout: opsLines(KEYS, 'lock acquired', 'provisioned yes', `current ${LIVE}`, 'slot blue', `release ${LIVE} x ok 2 2`, `now ${Math.floor(Date.now() / 1000)}`, 'rollback none', `rollback_from ${LIVE}`) } : undefined));
    const first = (await rollback(alone.ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as OpsError;
    expect(first.message).toBe(`web1 has no earlier healthy release to roll back to (kept: ${LIVE})`);
    expect(first.hint).toBe('no other release that served is kept on web1: deploy the commit you want instead (ops deploy one --ref <ref>)');
    // The release before was rolled back from (a rollback --to the live one, forward): skipped by default, yet it
    // served and --to takes it, so the hint says so rather than "no other release that served is kept".
    const back = harness((step) => (step.name === 'lock' ? { stdout: opsLines(KEYS, 'lock acquired', 'provisioned yes', `current ${LIVE}`, 'slot blue', `release ${OLD} x abandoned 3 6`, `release ${LIVE} x ok 5 5`, `now ${Math.floor(Date.now() / 1000)}`, 'rollback none', `rollback_from ${LIVE}`) } : undefined));
    const skipped = (await rollback(back.ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as OpsError;
    expect(skipped.message).toBe(`web1 has no earlier healthy release to roll back to (kept: ${OLD}, ${LIVE})`);
    expect(skipped.hint).toBe('pick one with --to (see ops releases one): a release rolled back from is never the default, but it served, and --to takes it');
    expect(auditOf(none.remotes.get('web1')!.runs.at(-1)!.stdin)).toMatchObject({ result: 'failed', previous: LIVE, message: expect.stringMatching(/^refused, nothing changed: web1 has no earlier healthy release to roll back to \(kept: /) });
    const noop = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, 'rollback noop', `rollback_from ${LIVE}`, `rollback_to ${LIVE}`, 'lock released') } : undefined));
    const r = await rollback(noop.ctx, loadEnvironment('one', root), LIVE);
    expect(r.hosts[0]).toMatchObject({ release: LIVE, previous: LIVE, noop: true, notes: [`${LIVE} is already live`] });
    // exit 0 (the release asked for is live), told apart from a rollback by `noop`, as a deploy's no-op is, and by its heading
    expect(r.noop).toBe(true);
    expect(rollbackSummary(r)).toMatch(/^### Rollback of one: already live, nothing to do\n/);
    expect(noop.names()).toEqual(['lock']);
    const lock = noop.remotes.get('web1')!.runs[0]!.stdin;
    expect(lock).toContain('if [ "$rollback_verdict" = noop ]; then');
    expect(lock).toMatch(/"result":"no-op".*"message":"already live"/);
  });

  it('two hosts, --to the release live on both: a no-op on each, each audited (no-op, already live) when its lock is let go', async () => {
    const h = harness((step) => (step.name === 'lock' ? { stdout: STATE } : step.name === 'rollback' ? { stdout: opsLines(KEYS, 'rollback noop', `rollback_from ${LIVE}`, `rollback_to ${LIVE}`) } : undefined));
    const r = await rollback(h.ctx, loadEnvironment('two', root), LIVE);
    expect(r.hosts.map((x) => x.noop)).toEqual([true, true]);
    for (const host of ['web1', 'web2']) {
      const unlock = h.remotes.get(host)!.runs.at(-1)!;
      expect(unlock.step.name).toBe('unlock');
      expect(unlock.stdin).toContain(`"result":"no-op","message":"already live","release":"${LIVE}","previous":"${LIVE}"`);
    }
  });

  it('one host, a start that failed cleanly: "still serves", nothing stopped, the failure audited when the lock is let go', async () => {
    const h = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'rollback_exit 3'), stderr: 'release did not become healthy on slot green' } : undefined));
    const err = (await rollback(h.ctx, loadEnvironment('one', root)).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/^step "lock \+ start green \+ switch" on web1 failed with exit code 3\n[\s\S]*did not become healthy[\s\S]*\nweb1 still serves 20261102T100000Z-bbbbbbbbbbbb$/);
    expect(h.names()).toEqual(['lock', 'disk space', 'unlock']);
    const unlock = h.remotes.get('web1')!.runs.at(-1)!.stdin;
    expect(unlock).toContain('"result":"failed"');
    expect(unlock).not.toContain('"result":"success"');
  });

  it('ops rollback --json, failed: the release it went back to, the one live before and now, and why, as the success\'s document has them', async () => {
    const h = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'rollback_exit 3'), stderr: 'release did not become healthy on slot green' } : undefined));
    const cli = await runOps(['rollback', 'one', '--json'], { root, processEnv: { PATH: process.env.PATH, USER: 'alice' }, connector: h.ctx.connector });
    expect(cli.code, cli.err).toBe(1);
    const doc = JSON.parse(cli.out) as Record<string, unknown>;
    expect(doc).toMatchObject({ ok: false, environment: 'one', url: expect.any(String), release: OLD, previous: LIVE, live: LIVE, exitCode: 1 });
    expect(doc.reason).toMatch(/^step "lock \+ start green \+ switch" on web1 failed with exit code 3/);
    expect(doc.hosts).toEqual([{ host: 'web1', release: OLD, previous: LIVE, live: LIVE }]);
    expect(doc.error).toMatch(/web1 still serves /);
  });

  it('ops rollback --json, its one-host lock step failed (timed out, killed): the release the host chose, else --to, else null saying none was chosen; live before and now from what the step read', async () => {
    const json = async (stdout: string, to?: string) => {
      const h = harness((step) => (step.name === 'lock' ? { stdout, code: 124, stderr: 'Terminated' } : undefined));
      const cli = await runOps(['rollback', 'one', '--json', ...(to ? ['--to', to] : [])], { root, processEnv: { PATH: process.env.PATH, USER: 'alice' }, connector: h.ctx.connector });
      expect(cli.code, cli.err).toBe(1);
      return { doc: JSON.parse(cli.out) as Record<string, unknown>, audit: auditOf(h.remotes.get('web1')!.runs.at(-1)!.stdin) };
    };
    // The host chose, then the step was cut off: that release, and what was live.
    const chose = await json(STATE + opsLines(KEYS, `rollback_from ${LIVE}`, 'rollback ok', `rollback_to ${OLD}`));
    expect(chose.doc).toMatchObject({ ok: false, environment: 'one', release: OLD, previous: LIVE, live: LIVE, exitCode: 1 });
    expect(chose.doc.hosts).toEqual([{ host: 'web1', release: OLD, previous: LIVE, live: LIVE }]);
    expect(chose.doc.reason).toMatch(/^step "lock, state" on web1 timed out/);
    expect(chose.doc).not.toHaveProperty('releaseNote');
    // Its audit line says so too.
    expect(chose.audit).toMatchObject({ result: 'failed', release: OLD, previous: LIVE });
    // Cut off before the host chose: no release, said so (null and why), never an empty string.
    const none = await json(STATE);
    expect(none.doc).toMatchObject({ release: null, releaseNote: expect.stringMatching(/^none was chosen/), previous: LIVE, live: LIVE });
    expect(none.doc.hosts).toEqual([{ host: 'web1', release: null, previous: LIVE, live: LIVE }]);
    // --to: the release asked for.
    const to = await json(STATE, OLD);
    expect(to.doc).toMatchObject({ release: OLD, previous: LIVE, live: LIVE });
    // Before the state was read (the lock step cut off at once): what was live is not known (null), not "none" ('').
    const early = await json(opsLines(KEYS, 'lock acquired'));
    expect(early.doc).toMatchObject({ release: null, previous: null, live: null });
  });

  it('exit status, by kind (README "Exit status"): --to of the wrong form 2 (usage, nothing changed), a release not kept 1 (refused by the hosts), --to the live release 0 with noop true, a rollback 0 with noop false', async () => {
    const A = 'a'.repeat(40);
    const listing = opsLines({ ...KEYS, ...RELEASES_KEYS }, 'provisioned yes', `current ${LIVE}`, 'slot blue', `release ${OLD} ${A} ok 1 1`, `release_json ${OLD} {"sha":"${A}","ref":"v1"}`);
    const run = async (lock: string, ...argv: string[]) => {
      const h = harness((step) => (step.name === 'lock' ? { stdout: STATE + lock } : step.name === 'releases' ? { stdout: listing } : undefined));
      const r = await runOps(['rollback', 'one', '--json', ...argv], { root, processEnv: { PATH: process.env.PATH, USER: 'alice' }, connector: h.ctx.connector });
      return { code: r.code, doc: JSON.parse(r.out) as { ok?: boolean; exitCode?: number; noop?: boolean }, steps: h.remotes.size ? h.names() : [] };
    };
    for (const to of ['not a release', 'v1', `* ${OLD}`]) {
      const r = await run('', '--to', to);
      expect([r.code, r.doc.exitCode], to).toEqual([2, 2]);
      expect(r.steps, to).not.toContain('lock');
    }
    const notKept = await run(opsLines(KEYS, 'rollback not_kept', `rollback_from ${LIVE}`), '--to', '20261001T100000Z-cccccccccccc');
    expect([notKept.code, notKept.doc.exitCode]).toEqual([1, 1]);
    const live = await run(opsLines(KEYS, 'rollback noop', `rollback_from ${LIVE}`, `rollback_to ${LIVE}`, 'lock released'), '--to', LIVE);
    expect([live.code, live.doc.noop]).toEqual([0, true]);
    const back = await run(opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released'));
    expect([back.code, back.doc.noop]).toEqual([0, false]);
  });

  it('ops rollback --json, refused on the host with no release to go back to, or before any host (an invalid --to): release null saying why, every release field there', async () => {
    const h = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, 'rollback none', `rollback_from ${LIVE}`) } : undefined));
    const none = await runOps(['rollback', 'one', '--json'], { root, processEnv: { PATH: process.env.PATH, USER: 'alice' }, connector: h.ctx.connector });
    expect(JSON.parse(none.out)).toMatchObject({ ok: false, environment: 'one', release: null, releaseNote: expect.any(String), previous: LIVE, live: LIVE, hosts: [{ host: 'web1', release: null, previous: LIVE, live: LIVE }] });
    const bad = await runOps(['rollback', 'one', '--json', '--to', 'not a release'], { root, processEnv: { PATH: process.env.PATH, USER: 'alice' }, connector: h.ctx.connector });
    expect(JSON.parse(bad.out)).toMatchObject({ ok: false, environment: 'one', release: null, previous: null, live: null, reason: expect.stringMatching(/^invalid release/), hosts: [{ host: 'web1', release: null, previous: null, live: null }] });
    // a word a release is named by otherwise (a ref): refused after reading what is kept, with the same fields
    const named = await runOps(['rollback', 'one', '--json', '--to', 'not-a-release'], { root, processEnv: { PATH: process.env.PATH, USER: 'alice' }, connector: h.ctx.connector });
    expect(JSON.parse(named.out)).toMatchObject({ ok: false, environment: 'one', release: null, previous: null, live: null, reason: expect.stringMatching(/^--to takes a release id, and no release kept is not-a-release/), hosts: [{ host: 'web1', release: null, previous: null, live: null }] });
  });

  it('one host, a switch that failed without the step putting the slot back (the new slot may run): the slot\'s previous release is put back, said in the error', async () => {
    const back = "slot green held no release before this run's start: none is kept warm there";
    const h = harness((step) => {
      if (step.name === 'lock') return { stdout: STATE + opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'rollback_exit 1'), stderr: 'nginx rejected the new configuration' };
      if (step.name === 'previous back green') return { stdout: opsLines(PREVIOUS_KEYS, `previous_back ${back}`) };
      return undefined;
    });
    await expect(rollback(h.ctx, loadEnvironment('one', root))).rejects.toThrow(new RegExp(`nginx rejected[\\s\\S]*\nweb1: ${back}\nweb1 still serves`));
    expect(h.names()).toEqual(['lock', 'disk space', 'previous back green', 'unlock']);
  });

  it('one host, supervisord not running: refused in the lock step before anything is touched, naming the host and the fix; audited as failed when the lock is let go', async () => {
    const h = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, 'supervisor_down 1', 'rollback supervisor_down', `rollback_from ${LIVE}`) } : undefined));
    const e = (await rollback(h.ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as OpsError;
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message).toBe(`supervisord is not running on web1 (systemctl start supervisor): nothing was changed (no slot started or stopped; nginx and current as they were), and no program of the live release (${LIVE}) runs until it does`);
    expect(e.hint).toBe('start it (sudo systemctl start supervisor), check ops status one, then roll back again');
    expect(h.names()).toEqual(['lock', 'unlock']);
    expect(auditOf(h.remotes.get('web1')!.runs.at(-1)!.stdin)).toMatchObject({ result: 'failed', message: expect.stringMatching(/^refused, nothing changed: supervisord is not running on web1/) });
    // The lock step asks whether supervisord runs, and the rollback's part refuses on it before choosing.
    const lock = h.remotes.get('web1')!.runs[0]!.stdin;
    expect(lock).toContain('ops_report supervisor_down 1');
    expect(lock).toContain('rollback_verdict=supervisor_down');
  });

  it('one host never provisioned (no provision marker): its lock step refuses before it makes anything (no lock taken, no inspect, no work), said as not provisioned; nothing to let go', async () => {
    const h = harness((step) => (step.name === 'lock' ? { stdout: opsLines(KEYS, 'provisioned no'), code: LOCK_UNPROVISIONED_EXIT } : undefined));
    const e = (await rollback(h.ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as OpsError;
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message).toBe('web1 is not provisioned for one (run: ops provision one): nothing was changed (no slot started or stopped; nginx and current as they were)');
    expect(e.hint).toBe('run: ops provision one, then ops deploy one');
    // The lock was never taken there: no unlock, no audit line (the audit log is under the directory it would make).
    expect(h.names()).toEqual(['lock']);
    // The marker is looked for first, before the lock's directory is made.
    const lock = h.remotes.get('web1')!.runs[0]!.stdin;
    const check = lock.indexOf(`if [ ! -f /srv/sample/.ops/provisioned ]; then ops_report provisioned no; exit ${LOCK_UNPROVISIONED_EXIT}; fi`);
    expect(check).toBeGreaterThan(-1);
    expect(check).toBeLessThan(lock.indexOf('install -d -m 0755 -o root -g root'));
  });

  it('two hosts, supervisord not running on the first and the second never provisioned: the second is said, as not provisioned, before the first one\'s supervisord; the first one\'s lock let go, audited as refused', async () => {
    const h = harness((step, host) => {
      if (step.name === 'lock') return host === 'web1' ? { stdout: STATE + opsLines(KEYS, 'supervisor_down 1') } : { stdout: opsLines(KEYS, 'provisioned no'), code: LOCK_UNPROVISIONED_EXIT };
      return undefined;
    });
    await expect(rollback(h.ctx, loadEnvironment('two', root))).rejects.toThrow(/^web2 is not provisioned for two \(run: ops provision two\): nothing was changed \(no slot started or stopped; nginx and current as they were\) on any host/);
    expect(h.names('web1')).toEqual(['lock', 'unlock']);
    expect(h.names('web2')).toEqual(['lock']);
    expect(auditOf(h.remotes.get('web1')!.runs.at(-1)!.stdin)).toMatchObject({ result: 'failed', message: expect.stringMatching(/^refused, nothing changed: web2 is not provisioned for two/) });
  });

  it('two hosts, supervisord not running on the second: refused once every lock is taken, before any host changes; every lock let go', async () => {
    const h = harness((step, host) => {
      if (step.name === 'lock') return { stdout: host === 'web2' ? STATE + opsLines(KEYS, 'supervisor_down 1') : STATE };
      if (step.name === 'rollback') return { stdout: opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') };
      return undefined;
    });
    await expect(rollback(h.ctx, loadEnvironment('two', root))).rejects.toThrow(/^supervisord is not running on web2 \(systemctl start supervisor\): nothing was changed \(no slot started or stopped; nginx and current as they were\) on any host/);
    for (const host of ['web1', 'web2']) expect(h.names(host)).toEqual(['lock', 'unlock']);
    // A run that failed, with nothing changed: each host's audit line says why.
    for (const host of ['web1', 'web2']) {
      const line = /'(\{"time":[^']*\})'/.exec(h.remotes.get(host)!.runs.at(-1)!.stdin)![1]!;
      expect(JSON.parse(line)).toMatchObject({ operation: 'rollback', result: 'failed', message: expect.stringMatching(/^refused, nothing changed: supervisord is not running on web2 \(systemctl start supervisor\): nothing was changed/) });
    }
  });

  it('two hosts, supervisord down on both: one refusal naming both hosts, each with its live release', async () => {
    const h = harness((step) => {
      if (step.name === 'lock') return { stdout: STATE + opsLines(KEYS, 'supervisor_down 1') };
      return undefined;
    });
    const e = (await rollback(h.ctx, loadEnvironment('two', root)).catch((x: unknown) => x)) as OpsError;
    expect(e.message).toMatch(/^supervisord is not running on 2 hosts \(web1, web2; systemctl start supervisor\): nothing was changed \(no slot started or stopped; nginx and current as they were\) on any host, and no program of the live release runs there until it does:\n  - web1: live release \S+ not running\n  - web2: live release \S+ not running$/);
    expect(e.hint).toMatch(/^start it on each of them \(sudo systemctl start supervisor\)/);
    for (const host of ['web1', 'web2']) expect(h.names(host)).toEqual(['lock', 'unlock']);
  });

  it('two hosts, the second locked by another run: refused; the first, whose lock this run took, audits the refused run saying whose lock it met (the second: none, it never held it)', async () => {
    const h = harness((step, host) => {
      if (step.name === 'lock') return host === 'web2' ? { code: 3, stdout: opsLines(KEYS, 'lock held', 'holder operation=deploy', 'holder actor=bob', 'holder since=2026-12-02T16:00:00Z') } : { stdout: STATE };
      return undefined;
    });
    const err = await rollback(h.ctx, loadEnvironment('two', root), OLD).catch((e: unknown) => e);
    expect(err).toMatchObject({ message: 'environment two is locked on web2 by a deploy run by bob, started 2026-12-02T16:00:00Z' });
    // The loser is told how to free it, should that run be stuck (it is connected: only --force breaks its lock).
    expect((err as { hint?: string }).hint).toMatch(/; if that run is stuck, ops lock release two --force stops what it runs on the hosts and frees the lock$/);
    expect(h.names('web1')).toEqual(['lock', 'unlock']);
    expect(auditOf(h.remotes.get('web1')!.runs.at(-1)!.stdin)).toMatchObject({ operation: 'rollback', result: 'failed', release: OLD, message: 'refused, nothing changed: environment two is locked on web2 by a deploy run by bob, started 2026-12-02T16:00:00Z' });
    expect(h.names('web2')).toEqual(['lock']);
  });

  it('two hosts, one with nothing earlier to go back to: refused there by its rollback step, audited as failed saying why', async () => {
    const h = harness((step, host) => {
      if (step.name === 'lock') return { stdout: STATE };
      if (step.name === 'rollback') return { stdout: host === 'web2' ? opsLines(KEYS, 'rollback none', `rollback_from ${LIVE}`) : opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') };
      return undefined;
    });
    await expect(rollback(h.ctx, loadEnvironment('two', root))).rejects.toThrow(/^web2 has no earlier healthy release to roll back to/);
    const line = /'(\{"time":[^']*\})'/.exec(h.remotes.get('web2')!.runs.at(-1)!.stdin)![1]!;
    expect(JSON.parse(line)).toMatchObject({ operation: 'rollback', result: 'failed', previous: LIVE, message: expect.stringMatching(/^refused, nothing changed: web2 has no earlier healthy release to roll back to \(kept: /) });
  });

  it.each([
    ['nothing live (added to the environment since its last deploy)', opsLines(KEYS, 'lock acquired', 'provisioned yes', `now ${Math.floor(Date.now() / 1000)}`), undefined, `web2 has no live release (never deployed: added to the environment since its last deploy?)`],
    ['--to a release it does not keep', opsLines(KEYS, 'lock acquired', 'provisioned yes', `current ${LIVE}`, 'slot blue', `release ${LIVE} x ok 2 2`), OLD, `web2 does not keep ${OLD} (it serves ${LIVE}; kept: ${LIVE})`],
    ['--to a release that never went live there', opsLines(KEYS, 'lock acquired', 'provisioned yes', `current ${LIVE}`, 'slot blue', `release ${OLD} x failed - 3`, `release ${LIVE} x ok 2 2`), OLD, `${OLD} never went live on web2 (its deploy there failed; it serves ${LIVE})`],
  ])('three hosts, one at a time, the second with %s: refused once every lock is taken, before any host changes (not after the first rolled back), naming it and what to run; every lock let go, audited', async (_what, second, to, said) => {
    const h = harness((step, host) => {
      if (step.name === 'lock') return { stdout: host === 'web2' ? second : STATE + opsLines(KEYS, `rollback_previous ok ${OLD}`) };
      if (step.name === 'rollback') return { stdout: opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') };
      return undefined;
    });
    const err = (await rollback(h.ctx, loadEnvironment('three', root), to).catch((e: unknown) => e)) as OpsError;
    expect(err.message).toBe(`the rollback of three to ${OLD} cannot go on every host: ${said}; nothing was changed (no slot started or stopped; nginx and current as they were) on any host`);
    expect(err.hint).toBe(`to put its commit live on every host, deploy it (built anew where it is missing): ops deploy three --ref x; or leave web2 out of the hosts in environments/three/environment.yml while you roll the others back`);
    for (const host of ['web1', 'web2', 'web3']) {
      expect(h.names(host)).toEqual(['lock', 'unlock']);
      expect(auditOf(h.remotes.get(host)!.runs.at(-1)!.stdin)).toMatchObject({ operation: 'rollback', result: 'failed', message: expect.stringMatching(/^refused, nothing changed: the rollback of three to /) });
    }
  });

  it('three hosts, the third added since (nothing before the release all serve): refused before any host changes, saying so (not as histories that differ, nor to pass --to, which cannot go there) and the deploy to run instead', async () => {
    const h = harness((step, host) => {
      if (step.name === 'lock') return { stdout: host === 'web3' ? opsLines(KEYS, 'lock acquired', 'provisioned yes', `current ${LIVE}`, 'slot blue', `release ${LIVE} x ok 1 1`) : STATE + opsLines(KEYS, `rollback_previous ok ${OLD}`) };
      return undefined;
    });
    const err = (await rollback(h.ctx, loadEnvironment('three', root)).catch((e: unknown) => e)) as OpsError;
    expect(err.message).toBe(`web3 (serves ${LIVE}) has no earlier release to go back to (deployed there first by the release it serves: added to the environment since?), while the other hosts go back to ${OLD}: nothing was changed (no slot started or stopped; nginx and current as they were) on any host`);
    expect(err.hint).toBe('deploy the commit to go back to on every host instead (ops deploy three --ref <commit>: ops releases three lists each release\'s), or leave web3 out of the hosts in environments/three/environment.yml while you roll the others back');
    for (const host of ['web1', 'web2', 'web3']) expect(h.names(host)).toEqual(['lock', 'unlock']);
  });

  it('three hosts, one at a time, the second failing at its start: the error says what each host serves (the first rolled back, the third never reached), and the third audits the rollback stopped before its turn', async () => {
    const h = harness((step, host) => {
      if (step.name === 'lock') return { stdout: STATE + opsLines(KEYS, `rollback_previous ok ${OLD}`) };
      if (step.name === 'rollback')
        return host === 'web2'
          ? { stdout: opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'rollback_exit 3'), stderr: 'release did not become healthy on slot green' }
          : { stdout: opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') };
      return undefined;
    });
    const err = (await rollback(h.ctx, loadEnvironment('three', root)).catch((e: unknown) => e)) as OpsError;
    expect(err.message).toMatch(/^step "start green \+ switch" on web2 failed with exit code 3\n[\s\S]*\nweb2 still serves 20261102T100000Z-bbbbbbbbbbbb\n/);
    expect(err.message.split('\n').slice(-4)).toEqual(['rollback stopped; hosts now run:', `  web1: ${OLD} (rolled back)`, '  web2: see its error above', `  web3: unchanged (${LIVE} still live; the rollback stopped before its turn)`]);
    expect(failedResult(err)).toMatchObject({ hosts: [{ host: 'web1', live: OLD }, { host: 'web2', live: LIVE }, { host: 'web3', live: LIVE }] });
    expect(h.names('web3')).toEqual(['lock', 'unlock']);
    expect(auditOf(h.remotes.get('web3')!.runs.at(-1)!.stdin)).toMatchObject({ operation: 'rollback', result: 'failed', previous: LIVE, message: expect.stringMatching(/^rollback stopped before this host \(web2 failed: step "start green \+ switch" on web2 failed/) });
  });

  it('one host, a port of the idle slot held by a process not its own: refused in the lock step (ports_taken) before anything is touched, naming port, pid, command, what still serves and the fix; audited as failed', async () => {
    const squat = 'listener green\tserver\t4242\tother\t\t/tmp\tpython3 -m http.server 3580';
    const h = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, squat, 'rollback ports_taken', `rollback_from ${LIVE}`) } : undefined));
    const e = (await rollback(h.ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as OpsError;
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message).toBe(
      `the ports this rollback would start its release on (slot green) are taken on web1: port 3580 (program server) is held by pid 4242 (python3 -m http.server 3580). Its start would fail, so nothing was changed (no slot started or stopped; nginx and current as they were); web1 still serves ${LIVE}`,
    );
    expect(e.hint).toBe('stop what holds them on web1 (sudo kill 4242, or stop the service it belongs to: ps -o unit= -p 4242), or move it off port 3580; ops status one warns about it; then roll back again');
    expect(h.names()).toEqual(['lock', 'unlock']);
    expect(auditOf(h.remotes.get('web1')!.runs.at(-1)!.stdin)).toMatchObject({ result: 'failed', message: expect.stringMatching(/^refused, nothing changed: the ports this rollback would start its release on \(slot green\) are taken on web1/) });
    // The lock step reads who holds the ports of the slot the rollback starts on (green unless green is live), in
    // the same step as the rollback's part, which refuses on what it found: no round trip of its own.
    const lock = h.remotes.get('web1')!.runs[0]!.stdin;
    expect(lock).toContain('green) report_slot blue sample-blue sample /srv/sample/releases server:3579 ;;');
    expect(lock).toContain('*) report_slot green sample-green sample /srv/sample/releases server:3580 ;;');
    expect(lock).toContain('rollback_verdict=ports_taken');
    // The previous release kept warm there is the slot's own: the rollback goes on (and reuses it).
    const warm = harness((step) =>
      step.name === 'lock'
        ? { stdout: STATE + opsLines(KEYS, `listener green\tserver\t501\ttree\t${OLD}\t/srv/sample/releases/${OLD}\tpython -m server`, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') }
        : undefined,
    );
    expect((await rollback(warm.ctx, loadEnvironment('one', root))).hosts[0]).toMatchObject({ release: OLD, previous: LIVE });
  });

  it('two hosts with ports taken on their idle slots: one refusal naming both, once every lock is taken, before any host changes; every lock let go', async () => {
    const h = harness((step, host) => {
      if (step.name === 'lock') return { stdout: STATE + opsLines(KEYS, host === 'web1' ? 'listener green\tserver\t4242\tother\t\t/tmp\tpython3 -m http.server 3580' : 'listener green\tserver\t0\tother\t\t\t') };
      if (step.name === 'rollback') return { stdout: opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') };
      return undefined;
    });
    const e = (await rollback(h.ctx, loadEnvironment('two', root)).catch((x: unknown) => x)) as OpsError;
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message).toBe(
      [
        'the ports this rollback would start its release on are taken on 2 hosts (web1, web2). Its start would fail there, so nothing was changed (no slot started or stopped; nginx and current as they were) on any host:',
        `  - web1 (slot green): port 3580 (program server) is held by pid 4242 (python3 -m http.server 3580); web1 still serves ${LIVE}`,
        `  - web2 (slot green): port 3580 (program server) is held by a socket ss names no process for; web2 still serves ${LIVE}`,
      ].join('\n'),
    );
    expect(e.hint).toMatch(/^stop what holds them \(on web1: sudo kill 4242, or stop the service it belongs to: ps -o unit= -p 4242; on web2: sudo ss -tlnp shows it\), or move it off port 3580; ops status two warns about it; then roll back again$/);
    for (const host of ['web1', 'web2']) expect(h.names(host)).toEqual(['lock', 'unlock']);
    // One of them only: one sentence, still for every host.
    const one = harness((step, host) => (step.name === 'lock' ? { stdout: STATE + (host === 'web2' ? opsLines(KEYS, 'listener green\tserver\t0\tother\t\t\t') : '') } : undefined));
    await expect(rollback(one.ctx, loadEnvironment('two', root))).rejects.toThrow(/^the ports this rollback would start its release on \(slot green\) are taken on web2: [^\n]*nothing was changed \(no slot started or stopped; nginx and current as they were\) on any host; web2 still serves /);
    for (const host of ['web1', 'web2']) expect(one.names(host)).toEqual(['lock', 'unlock']);
  });

  it('one host, nginx stopped with its unit masked: refused in the lock step before anything is touched, as a deploy refuses it; audited as failed, as a deploy audits it', async () => {
    const h = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, 'supervisor_down 1', 'nginx_stopped masked', 'rollback nginx_masked') } : undefined));
    const e = (await rollback(h.ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as OpsError;
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message).toBe('nginx is not running on web1 and its unit is masked (systemctl mask nginx): the switch could not start it, so nothing was changed (no slot started or stopped; nginx and current as they were); the site stays down as it is');
    expect(e.hint).toBe('if nginx was stopped on purpose, roll back once it may run again; otherwise: sudo systemctl unmask nginx (unmask --runtime for a mask made with --runtime) && sudo systemctl start nginx, then roll back again');
    expect(h.names()).toEqual(['lock', 'unlock']);
    expect(auditOf(h.remotes.get('web1')!.runs.at(-1)!.stdin)).toMatchObject({ result: 'failed', previous: LIVE, message: expect.stringMatching(/^refused, nothing changed: nginx is not running on web1 and its unit is masked/) });
    // The lock step reads whether nginx runs, and the rollback's part refuses on what it found: no round trip of its own.
    const lock = h.remotes.get('web1')!.runs[0]!.stdin;
    expect(lock).toContain('nginx_master >/dev/null || { REPORT_NGINX_STOPPED=$(nginx_unit); ops_report nginx_stopped "$REPORT_NGINX_STOPPED"; }');
    expect(lock).toContain('if [[ ${REPORT_NGINX_STOPPED:-} == masked || ${REPORT_NGINX_STOPPED:-} == masked-runtime ]]; then');
    // stopped but not masked: the switch starts it, the rollback goes on
    const stopped = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, 'nginx_stopped disabled', 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'nginx_started 1', 'lock released') } : undefined));
    expect((await rollback(stopped.ctx, loadEnvironment('one', root))).hosts[0]).toMatchObject({ release: OLD, previous: LIVE });
  });

  it("one host, something in nginx the switch would fail on (another server block, nginx -t on a file it does not write, a file naming a slot's port): refused in the lock step before anything is touched, as a deploy refuses it; audited as failed", async () => {
    const cases: [lines: string[], message: string, hint: string][] = [
      [
        ["nginx_taken GET /h (program server): nginx answered 200, not from this site's server block: another server block answers 192.0.2.1:80 for the site's name (...), in: /etc/nginx/conf.d/other.conf - remove it, or its listen/server_name, and reload nginx (asked at http://192.0.2.1)"],
        "the site's visitors on web1 do not reach sample's nginx site: GET /h (program server): nginx answered 200, not from this site's server block",
        'reload nginx, check ops status one, then roll back again',
      ],
      [
        ['nginx_invalid nginx: [emerg] unknown directive "bogus" in /etc/nginx/sites-enabled/handmade:1', 'nginx_invalid nginx: configuration file /etc/nginx/nginx.conf test failed'],
        'nginx -t fails on web1: [emerg] unknown directive "bogus" in /etc/nginx/sites-enabled/handmade:1. The switch could not reload nginx, so nothing was changed (no slot started or stopped; nginx and current as they were)',
        'fix or remove that file (hand-edited? ops status one shows nginx -t), then roll back again',
      ],
      [
        ['nginx_slot_port /etc/nginx/sites-enabled/api-by-hand:5:         proxy_pass http://127.0.0.1:3579;'],
        "nginx on web1 reads a file besides sample's site that sends requests to a slot's port itself, /etc/nginx/sites-enabled/api-by-hand:5: 127.0.0.1:3579 (program server's port on slot blue)",
        'or remove what is no longer used; then roll back again',
      ],
      [
        ['nginx_cache /etc/nginx/conf.d/micro.conf:1: proxy_cache micro;'],
        "nginx on web1 caches every site's answers, sample's too, from /etc/nginx/conf.d/micro.conf (/etc/nginx/conf.d/micro.conf:1: proxy_cache micro;), under a key that does not name the live release",
        'proxy_cache_key $scheme$proxy_host$request_uri$ops_release_sample; with proxy_cache_bypass $http_x_ops_check; proxy_no_cache $http_x_ops_check; then roll back again',
      ],
    ];
    for (const [lines, message, hint] of cases) {
      const h = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, ...(lines as [never]), 'rollback nginx_unready') } : undefined));
      const e = (await rollback(h.ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as OpsError;
      expect(e).toBeInstanceOf(OpsError);
      expect(e.message).toContain(message);
      expect(e.message).toContain('nothing was changed (no slot started or stopped; nginx and current as they were)');
      expect(e.hint).toContain(hint);
      expect(h.names()).toEqual(['lock', 'unlock']);
      expect(h.remotes.get('web1')!.runs.at(-1)!.stdin).toMatch(/"result":"failed".*"message":"refused, nothing changed: /);
    }
    // The lock step asks what a deploy's read asks (one nginx -T, nginxServed on the live slot), and the rollback's part refuses on it: no round trip of its own.
    const h = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') } : undefined));
    await rollback(h.ctx, loadEnvironment('one', root));
    const lock = h.remotes.get('web1')!.runs[0]!.stdin;
    expect(lock).toContain('nginx_all=$(nginx -T 2>&1)');
    expect(lock).toContain('# nginxServed: the health paths through nginx');
    expect(lock).toContain('elif [ -n "${REPORT_NGINX_UNREADY:-}" ]; then');
    // A cache from another file refuses there too (inheritedCacheLinesShell judges it in the same read).
    expect(lock).toContain('if [ -n "$nginx_cached" ]; then REPORT_NGINX_UNREADY=cached;');
  });

  it('two hosts, another server block takes the visitors on the second: refused once every lock is taken, before any host changes; every lock let go', async () => {
    const h = harness((step, host) => {
      if (step.name === 'lock') return { stdout: STATE + opsLines(KEYS, ...(host === 'web2' ? (["nginx_taken GET /h (program server): nginx answered 200, not from this site's server block (asked at http://192.0.2.2)"] as const) : ([] as const))) };
      if (step.name === 'rollback') return { stdout: opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') };
      return undefined;
    });
    const e = (await rollback(h.ctx, loadEnvironment('two', root)).catch((x: unknown) => x)) as OpsError;
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message).toContain("the site's visitors on web2 do not reach sample's nginx site");
    expect(e.message).toContain('nothing was changed (no slot started or stopped; nginx and current as they were) on any host');
    for (const host of ['web1', 'web2']) expect(h.names(host)).toEqual(['lock', 'unlock']);
  });

  it('two hosts, nginx masked on both: one refusal naming both, once every lock is taken, before any host changes; every lock let go', async () => {
    const h = harness((step, host) => {
      if (step.name === 'lock') return { stdout: STATE + opsLines(KEYS, `nginx_stopped ${host === 'web2' ? 'masked-runtime' : 'masked'}`, ...(host === 'web2' ? (['supervisor_down 1'] as const) : ([] as const))) };
      if (step.name === 'rollback') return { stdout: opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') };
      return undefined;
    });
    const e = (await rollback(h.ctx, loadEnvironment('two', root)).catch((x: unknown) => x)) as OpsError;
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message).toBe('nginx is not running on 2 hosts (web1, web2) and its unit is masked (systemctl mask nginx): the switch could not start it, so nothing was changed (no slot started or stopped; nginx and current as they were) on any host; their sites stay down as they are');
    expect(e.hint).toContain('sudo systemctl unmask nginx (unmask --runtime for a mask made with --runtime) && sudo systemctl start nginx on each of them, then roll back again');
    for (const host of ['web1', 'web2']) expect(h.names(host)).toEqual(['lock', 'unlock']);
  });

  it('nginx was not running and the rollback\'s switch started it: a warning naming the host, and a note, as a deploy says it', async () => {
    const h = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'nginx_started 1', 'lock released') } : undefined));
    const r = await rollback(h.ctx, loadEnvironment('one', root));
    const said = 'nginx was not running on web1: the switch started it (the site was down until then)';
    expect((h.ctx.reporter as MemoryReporter).lines).toContain(`warning: ${said}`);
    expect(r.hosts[0]!.notes).toContain(`warning: ${said}`);
    // Several hosts: from each host's own rollback step.
    const two = harness((step, host) => {
      if (step.name === 'lock') return { stdout: STATE };
      if (step.name === 'rollback') return { stdout: opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', ...(host === 'web2' ? (['nginx_started 1'] as const) : []), 'lock released') };
      return undefined;
    });
    const r2 = await rollback(two.ctx, loadEnvironment('two', root));
    expect(r2.hosts.map((x) => x.notes.some((n) => n.startsWith('warning: nginx was not running')))).toEqual([false, true]);
  });

  it('one host whose release last ran with other settings and its own .env: the rollback says so in one line (keys, no value), and records today\'s for it', async () => {
    const today = settingsDigest(loadEnvironment('one', root));
    const then = today.replace(/programs=[0-9a-f]{8}/, 'programs=00000000');
    const h = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, `rollback_settings ${then}`, 'rollback_dotenv differs', 'rollback_slot green', 'lock released') } : undefined));
    const r = await rollback(h.ctx, loadEnvironment('one', root));
    const line = `settings: today's, not those ${OLD} last ran with (they differ: programs); its .env is its own, from its deploy, and differs from the one ${LIVE} ran with`;
    expect(r.hosts[0]!.notes).toEqual([line]);
    expect((h.ctx.reporter as MemoryReporter).lines.join('\n')).toContain(`web1: ${line}`);
    expect(rollbackSummary(r)).toContain(`- web1: ${line}`);
    // What it runs with from now on is recorded for it (the next rollback to it compares with those).
    expect(h.remotes.get('web1')!.runs[0]!.stdin).toContain(`fp="\${BASH_REMATCH[1]} ${today}"`);
  });

  it('one host never deployed (nothing live): refused, saying nothing changed and the deploy to run instead', async () => {
    const h = harness((step) => (step.name === 'lock' ? { stdout: opsLines(KEYS, 'lock acquired', 'provisioned yes', 'current ', 'slot ', `now ${Math.floor(Date.now() / 1000)}`, 'rollback no_live', 'rollback_from ') } : undefined));
    const e = (await rollback(h.ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as OpsError;
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message).toBe('web1 has no live release to roll back from (current names none): nothing was changed (no slot started or stopped; nginx and current as they were)');
    expect(e.hint).toBe('a rollback only moves traffic back between kept releases: deploy instead (ops deploy one --ref <ref>; ops releases one lists what is kept there)');
  });

  it('one host right after a failed deploy (its release never went live): the rollback says it went back from the release that served, not from that deploy, and how to return; nothing said without one', async () => {
    const NEW = '20261103T100000Z-cccccccccccc';
    const h = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, `release ${NEW} x failed - 3`, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') } : undefined));
    const r = await rollback(h.ctx, loadEnvironment('one', root));
    const line = `the deploy after ${LIVE} (${NEW}) failed and never went live, so ${LIVE} served until now: this rollback went back from it to ${OLD}, not from that deploy (ops rollback one --to ${LIVE} returns to it)`;
    expect(r.hosts[0]!.notes).toEqual([line]);
    expect((h.ctx.reporter as MemoryReporter).lines.join('\n')).toContain(`web1: ${line}`);
    // a failure before the live release went live is not after it
    const before = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, `release ${NEW} x failed - 1`, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') } : undefined));
    expect((await rollback(before.ctx, loadEnvironment('one', root))).hosts[0]!.notes).toEqual([]);
  });

  it('one host: settings as its release last ran with and the same .env say nothing; a record without settings (an older version\'s) says nothing of them', async () => {
    const today = settingsDigest(loadEnvironment('one', root));
    for (const [reports, note] of [
      [[`rollback_settings ${today}`, 'rollback_dotenv same'], undefined],
      [['rollback_dotenv same'], undefined],
      [[], undefined],
      [['rollback_dotenv differs'], `settings: today's (whether they differ from those it last ran with is not recorded); its .env is its own, from its deploy, and differs from the one ${LIVE} ran with`],
      [[`rollback_settings ${today}`, 'rollback_dotenv differs'], `settings: those ${OLD} last ran with; its .env is its own, from its deploy, and differs from the one ${LIVE} ran with`],
    ] as const) {
      const h = harness((step) => (step.name === 'lock' ? { stdout: STATE + opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, ...reports, 'rollback_slot green', 'lock released') } : undefined));
      const r = await rollback(h.ctx, loadEnvironment('one', root));
      expect(r.hosts[0]!.notes, reports.join(' ')).toEqual(note ? [note] : []);
    }
    // Settings a rollback does not apply (the .env's, the build's) are not said to differ: the release keeps its own.
    const other = today.replace(/(^|,)release=[0-9a-f]{8}/, '$1release=00000000').replace(/(^|,)env=[0-9a-f]{8}/, '$1env=00000000');
    expect(other).not.toBe(today);
    expect(settingsNote(OLD, LIVE, rollbackSettings({ stdout: opsLines(KEYS, `rollback_settings ${other}`), stderr: '', code: 0, durationMs: 0, reports: [['rollback_settings', other]] }, today))).toBeUndefined();
  });

  it('one host, the release started with another .env than the one left and never healthy (an older database password): the error hints at it and at the deploy to run instead; still serves', async () => {
    const sha = 'a'.repeat(40);
    const state = opsLines(KEYS, 'lock acquired', 'provisioned yes', `current ${LIVE}`, 'slot blue', `release ${OLD} ${sha} ok 1 1`, `release ${LIVE} ${'b'.repeat(40)} ok 2 2`);
    const h = harness((step) => (step.name === 'lock' ? { stdout: state + opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_dotenv differs', 'rollback_slot green', 'rollback_exit 3'), stderr: `release ${OLD} did not become healthy on slot green: server: /health did not answer within 60 s; the live release keeps serving` } : undefined));
    const e = (await rollback(h.ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as OpsError;
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message).toMatch(new RegExp(`did not become healthy[\\s\\S]*\\nweb1 still serves ${LIVE}$`));
    expect(e.hint).toBe(`${OLD} runs its own .env, from its deploy, which differs from the one ${LIVE} ran with: a secret changed since (a database password?) may keep it from answering. To run its code with today's settings and .env, deploy it: ops deploy one --ref ${sha}`);
    // Started with today's settings, which differ from those it last ran with (its .env the left one's): said too.
    const then = settingsDigest(loadEnvironment('one', root)).replace(/routes=[0-9a-f]{8}/, 'routes=00000000');
    const settings = harness((step) => (step.name === 'lock' ? { stdout: state + opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, `rollback_settings ${then}`, 'rollback_dotenv same', 'rollback_slot green', 'rollback_exit 3'), stderr: `release ${OLD} did not become healthy on slot green` } : undefined));
    expect(((await rollback(settings.ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as OpsError).hint).toBe(
      `${OLD} was started with today's settings (its programs and nginx), which differ from those it last ran with (routes). To run its code with today's settings and .env, deploy it: ops deploy one --ref ${sha}`,
    );
    // Another failure (supervisor refused the file) gets no such hint; nor does a release with the .env of the one left.
    const refused = harness((step) => (step.name === 'lock' ? { stdout: state + opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_dotenv differs', 'rollback_slot green', 'rollback_exit 3'), stderr: 'supervisor refused the new configuration of slot green' } : undefined));
    expect(((await rollback(refused.ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as OpsError).hint).toBeUndefined();
    const same = harness((step) => (step.name === 'lock' ? { stdout: state + opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_dotenv same', 'rollback_slot green', 'rollback_exit 3'), stderr: `release ${OLD} did not become healthy on slot green` } : undefined));
    expect(((await rollback(same.ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as OpsError).hint).toBeUndefined();
  });

  it('two hosts after a rollout stopped part-way (web1 on NEW, web2 left on LIVE): ONE target, LIVE, for both (not OLD on web2); web2 a no-op, said and audited so; its assets `next` dropped unless a live release\'s', async () => {
    const NEW = '20261103T100000Z-cccccccccccc';
    const h = harness((step, host) => {
      if (step.name === 'lock')
        return { stdout: host === 'web1' ? opsLines(KEYS, 'lock acquired', 'provisioned yes', `current ${NEW}`, 'slot green', `release ${OLD} x ok 1 1`, `release ${LIVE} x ok 2 2`, `release ${NEW} x ok 3 3`, `rollback_previous ok ${LIVE}`) : STATE + opsLines(KEYS, `rollback_previous ok ${OLD}`) };
      // The host's side: the release the runner sends (--to), else its own previous one (each host's history).
      if (step.name === 'rollback') {
        const sent = step.script.includes(`rollback_choice "$rollback_from" ${quote(LIVE)}`);
        if (host === 'web1') return { stdout: opsLines(KEYS, 'rollback ok', `rollback_from ${NEW}`, `rollback_to ${LIVE}`, 'rollback_slot blue', 'lock released') };
        return { stdout: sent ? opsLines(KEYS, 'rollback noop', `rollback_from ${LIVE}`) : opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') };
      }
      return undefined;
    });
    const r = await rollback(h.ctx, loadEnvironment('assets', root));
    expect(r.hosts.map((x) => [x.host, x.release, x.previous, x.noop])).toEqual([['web1', LIVE, NEW, false], ['web2', LIVE, LIVE, true]]);
    expect(r.noop).toBe(false); // one host rolled back: not nothing to do
    expect(r.hosts[1]!.notes).toContain(`${LIVE} is already live`);
    expect(h.remotes.get('web2')!.runs.at(-1)!.stdin).toContain(`"result":"no-op","message":"already live","release":"${LIVE}","previous":"${LIVE}"`);
    // The no-op host's `next` (NEW's, staged by the rollout) goes unless it names a release live somewhere; web1's switch dropped its own.
    expect(h.names('web1')).toEqual(['lock', 'rollback']);
    expect(h.names('web2')).toEqual(['lock', 'rollback', 'unstage assets', 'unlock']);
    const unstage = h.remotes.get('web2')!.runs.find((x) => x.step.name === 'unstage assets')!.step.script;
    expect(unstage).toContain(`case "\${next_source##*/}" in ${quote(LIVE)}) ;;`);
  });

  it('two hosts whose histories differ (each on LIVE, going back to another release): refused before any host changes, in one line naming each host\'s release and --to; every lock let go, audited as refused', async () => {
    const OTHER = '20261031T100000Z-eeeeeeeeeeee';
    const h = harness((step, host) => {
      if (step.name === 'lock') return { stdout: STATE + opsLines(KEYS, `rollback_previous ok ${host === 'web1' ? OLD : OTHER}`) };
      if (step.name === 'rollback') return { stdout: opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') };
      return undefined;
    });
    const err = (await rollback(h.ctx, loadEnvironment('two', root)).catch((e: unknown) => e)) as OpsError;
    expect(err.message).toBe(`the hosts do not agree on the release to roll back to (web1 serves ${LIVE} (before it: ${OLD}), web2 serves ${LIVE} (before it: ${OTHER})): nothing was changed (no slot started or stopped; nginx and current as they were) on any host; pass --to <release> to choose it`);
    expect(err.hint).toBe('ops releases two lists each host\'s releases; then ops rollback two --to <release>');
    for (const host of ['web1', 'web2']) {
      expect(h.names(host)).toEqual(['lock', 'unlock']);
      expect(auditOf(h.remotes.get(host)!.runs.at(-1)!.stdin)).toMatchObject({ operation: 'rollback', result: 'failed', message: expect.stringMatching(/^refused, nothing changed: the hosts do not agree/) });
    }
  });

  it('two hosts: every lock first (state only), then each host its rollback step, which ends with the audit line and the unlock', async () => {
    const h = harness((step) => {
      if (step.name === 'lock') return { stdout: STATE };
      if (step.name === 'rollback') return { stdout: opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') };
      return undefined;
    });
    const r = await rollback(h.ctx, loadEnvironment('two', root));
    for (const host of ['web1', 'web2']) {
      expect(h.names(host)).toEqual(['lock', 'rollback']);
      expect(h.remotes.get(host)!.runs[0]!.stdin).not.toContain('rollback_choice "$rollback_from"');
    }
    expect(r.hosts.map((x) => [x.host, x.release, x.previous])).toEqual([['web1', OLD, LIVE], ['web2', OLD, LIVE]]);
    expect(r.hosts[0]!.steps.map((s) => s.name)).toEqual(['start green + switch']);
  });
});

function target(base: string, command = '{release}/venv/bin/python -m web --pct "100%"'): Target {
  const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command, port: 4000, health: '/h', env: { WHERE: '{release}/data', RELEASE_NOTE: "it's {release}" } } }, routes: { '/': 'web' } }, 'test');
  return resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'shop', baseDir: base, url: 'http://x' });
}

/** A script in a file of its own, for bash to run: a step's text is longer than one argument may be (E2BIG past 128 KiB). */
function scriptFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'ops-rollback-script-')), 'step.sh');
  writeFileSync(file, text);
  return file;
}

describe('the rollback step on a host (bash)', () => {
  /** A scratch base directory: OLD then LIVE went live, LIVE current on slot blue. */
  function host(): string {
    const base = mkdtempSync(join(tmpdir(), 'ops-rollback-'));
    mkdirSync(join(base, '.ops'));
    writeFileSync(join(base, '.ops', 'slot'), 'blue\n');
    for (const id of [OLD, LIVE]) mkdirSync(join(base, 'releases', id), { recursive: true });
    writeFileSync(join(base, '.ops', 'history'), `1\tt\tlive\t${OLD}\tdeploy\n2\tt\tlive\t${LIVE}\tdeploy\n`);
    symlinkSync(join(base, 'releases', LIVE), join(base, 'current'));
    return base;
  }
  /** A directory of stand-ins for systemctl and service: supervisord runs (`up`) or not; any other use is logged in `used`. */
  const supervisord = (up: boolean): string => {
    const bin = mkdtempSync(join(tmpdir(), 'ops-rollback-svc-'));
    for (const cmd of ['systemctl', 'service']) writeFileSync(join(bin, cmd), `#!/bin/sh\ncase "$*" in *is-active*supervisor*|*supervisor*status*) exit ${up ? 0 : 3} ;; esac\necho "${cmd} $*" >> "$(dirname "$0")/used"\nexit 0\n`, { mode: 0o755 });
    return bin;
  };
  const run = (e: Target, to?: string, up = true) => {
    const mark = markRelease(e, onHost('rollback_from'), 'abandoned', ['rolled back to ', onHost('release_id')]).script;
    const step = rollbackStep(e, to, mark, { done: 'ops_report done', refused: 'ops_report refused' });
    return parseReports(execFileSync('bash', [scriptFile(scriptText(step))], { encoding: 'utf8', env: { ...process.env, PATH: `${supervisord(up)}:${process.env.PATH}` } }));
  };
  const at = (reports: [string, string][], key: string) => reported({ stdout: '', stderr: '', code: 0, durationMs: 0, reports }, key as never);

  it('a one-host rollback\'s `refused` end (refusedOrNoop): the no-op writes its audit line, the live id read on the host; a refusal keeps the lock (the runner audits it)', () => {
    const base = host();
    const e = target(base);
    const unlock = (entry?: Partial<AuditEntry>, vars?: Partial<Record<keyof AuditEntry, string>>) =>
      entry ? `ops_report audit ${auditTemplate({ time: 't', environment: 'one', operation: 'rollback', actor: 'alice', ...entry } as AuditEntry, vars ?? {})}` : 'ops_report let_go';
    const end = (to: string) => parseReports(execFileSync('bash', [scriptFile(scriptText(rollbackStep(e, to, ':', { done: 'ops_report done', refused: refusedOrNoop(unlock) })))], { encoding: 'utf8', env: { ...process.env, PATH: `${supervisord(true)}:${process.env.PATH}` } }));
    const noop = end(LIVE);
    expect(JSON.parse(at(noop, 'audit')!)).toEqual({ time: 't', environment: 'one', operation: 'rollback', actor: 'alice', result: 'no-op', message: 'already live', release: LIVE, previous: LIVE });
    expect(at(noop, 'let_go')).toBeUndefined();
    const refused = end('20260101T000000Z-0000000000aa');
    expect([at(refused, 'rollback'), at(refused, 'audit'), at(refused, 'let_go')]).toEqual(['not_kept', undefined, undefined]);
  });

  it('unstageAssets after a rollback with no-op hosts: `next` goes unless its tree (.ops-source: the release path it was made of) is of a release live somewhere; a tree without its record goes too', () => {
    const base = mkdtempSync(join(tmpdir(), 'ops-rollback-next-'));
    const e = target(base);
    const next = join(e.layout.assets, 'next');
    const run = (source: string | undefined) => {
      rmSync(e.layout.assets, { recursive: true, force: true });
      mkdirSync(next, { recursive: true });
      writeFileSync(join(next, 'app.js'), 'x');
      if (source !== undefined) writeFileSync(join(next, '.ops-source'), `${source} 0123abcd\n`);
      execFileSync('bash', [scriptFile(scriptText(unstageAssets(e, [LIVE, OLD])))], { encoding: 'utf8' });
      return existsSync(next);
    };
    expect(run(join(e.layout.releases, '20261103T100000Z-cccccccccccc'))).toBe(false);
    expect(run(join(e.layout.releases, LIVE))).toBe(true);
    expect(run(join(e.layout.releases, OLD))).toBe(true);
    expect(run(undefined)).toBe(false);
    // No release given: dropped whatever it names (a rollout stopped with its release live nowhere).
    mkdirSync(next, { recursive: true });
    writeFileSync(join(next, '.ops-source'), `${join(e.layout.releases, LIVE)} 0\n`);
    execFileSync('bash', [scriptFile(scriptText(unstageAssets(e)))], { encoding: 'utf8' });
    expect(existsSync(next)).toBe(false);
  });

  it('refusals and the no-op end with `refused`: nothing else runs, nothing changes', () => {
    const base = host();
    const e = target(base);
    for (const [to, verdict] of [['20260101T000000Z-0000000000aa', 'not_kept'], [LIVE, 'noop']] as const) {
      const r = run(e, to);
      expect([at(r, 'rollback'), at(r, 'refused'), at(r, 'done'), at(r, 'rollback_slot')]).toEqual([verdict, '', undefined, undefined]);
    }
    writeFileSync(join(base, 'releases', OLD, '.ops-failed'), 'x\n');
    expect(at(run(e), 'rollback')).toBe('none');
    expect(readlinkSync(join(base, 'current'))).toBe(join(base, 'releases', LIVE));
  });

  it('nginx stopped with its unit masked, as the lock step\'s state read found it (REPORT_NGINX_STOPPED): refused (nginx_masked) before the rollback\'s part, with `refused`; stopped otherwise, the part runs', () => {
    const base = host();
    const e = target(base);
    const step = rollbackStep(e, undefined, ':', { done: 'ops_report done', refused: 'ops_report refused' });
    const guarded = (unit: string) =>
      parseReports(execFileSync('bash', [scriptFile(scriptText({ ...step, script: `REPORT_NGINX_STOPPED=${unit}\n${unlessRefused(step.script, 'ops_report refused')}` }))], { encoding: 'utf8', env: { ...process.env, PATH: `${supervisord(false)}:${process.env.PATH}` } }));
    // masked for good, or until the next boot (systemctl mask --runtime: is-enabled says masked-runtime)
    for (const unit of ['masked', 'masked-runtime']) {
      const masked = guarded(unit);
      expect([at(masked, 'rollback'), at(masked, 'refused'), at(masked, 'done'), at(masked, 'rollback_from')]).toEqual(['nginx_masked', '', undefined, undefined]);
    }
    expect(readlinkSync(join(base, 'current'))).toBe(join(base, 'releases', LIVE));
    // not masked: the rollback's own part decides (here supervisord is down: its refusal)
    for (const unit of ['disabled', "''"]) expect(at(guarded(unit), 'rollback')).toBe('supervisor_down');
  });

  it("something in nginx the switch would fail on, as the lock step's state read found it (REPORT_NGINX_UNREADY: nginxReadiness): refused (nginx_unready) before the rollback's part, with `refused`", () => {
    const base = host();
    const e = target(base);
    const step = rollbackStep(e, undefined, ':', { done: 'ops_report done', refused: 'ops_report refused' });
    const guarded = (unready: string) =>
      parseReports(execFileSync('bash', [scriptFile(scriptText({ ...step, script: `REPORT_NGINX_UNREADY=${unready}\n${unlessRefused(step.script, 'ops_report refused')}` }))], { encoding: 'utf8', env: { ...process.env, PATH: `${supervisord(false)}:${process.env.PATH}` } }));
    for (const unready of ['taken', 'invalid', 'pinned']) {
      const r = guarded(unready);
      expect([at(r, 'rollback'), at(r, 'refused'), at(r, 'done'), at(r, 'rollback_from')]).toEqual(['nginx_unready', '', undefined, undefined]);
    }
    expect(readlinkSync(join(base, 'current'))).toBe(join(base, 'releases', LIVE));
    expect(at(guarded("''"), 'rollback')).toBe('supervisor_down');
  });

  it('supervisord not running: refused (supervisor_down) before the choice, with `refused`: no slot, nginx, current or mark touched', () => {
    const base = host();
    const e = target(base);
    for (const to of [undefined, OLD]) {
      const r = run(e, to, false);
      expect([at(r, 'rollback'), at(r, 'refused'), at(r, 'done'), at(r, 'rollback_to'), at(r, 'rollback_slot'), at(r, 'rollback_exit')]).toEqual(['supervisor_down', '', undefined, undefined, undefined, undefined]);
    }
    expect(readlinkSync(join(base, 'current'))).toBe(join(base, 'releases', LIVE));
    expect(existsSync(join(base, 'releases', LIVE, '.ops-abandoned'))).toBe(false);
    expect(existsSync(join(base, '.ops', 'slot.new'))).toBe(false);
  });

  it('a port of the idle slot taken, as the lock step\'s state read found it (REPORT_SLOT_FOREIGN): refused (ports_taken) after the choice, with `refused`: no slot, nginx, current or mark touched', () => {
    const base = host();
    const e = target(base);
    const step = rollbackStep(e, undefined, markRelease(e, onHost('rollback_from'), 'abandoned', ['rolled back to ', onHost('release_id')]).script, { done: 'ops_report done', refused: 'ops_report refused' });
    const bin = supervisord(true);
    const r = parseReports(execFileSync('bash', [scriptFile(scriptText({ ...step, script: `REPORT_SLOT_FOREIGN=1\n${step.script}` }))], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } }));
    expect([at(r, 'rollback'), at(r, 'refused'), at(r, 'done'), at(r, 'rollback_slot'), at(r, 'rollback_exit')]).toEqual(['ports_taken', '', undefined, undefined, undefined]);
    expect(existsSync(join(bin, 'used'))).toBe(false);
    expect(readlinkSync(join(base, 'current'))).toBe(join(base, 'releases', LIVE));
    expect(existsSync(join(base, 'releases', LIVE, '.ops-abandoned'))).toBe(false);
    // Nothing to go back to is said as such, whatever the ports.
    writeFileSync(join(base, 'releases', OLD, '.ops-failed'), 'x\n');
    const none = parseReports(execFileSync('bash', [scriptFile(scriptText({ ...step, script: `REPORT_SLOT_FOREIGN=1\n${step.script}` }))], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } }));
    expect(at(none, 'rollback')).toBe('none');
  });

  it('what the release chosen last ran with: its record\'s settings (fifth field; none in an older record), its .env and environ against the left one\'s (same, differs; not compared when one is missing)', () => {
    const base = host();
    const e = target(base);
    // The start stands in for a clean failure: the step ends before any slot is touched, its reports made.
    const step = rollbackStep(e, OLD, ':', { done: 'ops_report done', refused: 'ops_report refused' }, 'app=01234567,programs=89abcdef');
    const script = step.script.replace('ops_part rollback_start', `part_rc=${START_FAILED_CLEAN}`);
    const reports = () => parseReports(spawnSync('bash', [scriptFile(scriptText({ ...step, script }))], { encoding: 'utf8', env: { ...process.env, PATH: `${supervisord(true)}:${process.env.PATH}` } }).stdout);
    const sums = `${'1'.repeat(64)} ${'2'.repeat(64)}`;
    const files = (id: string, dotenv: string, environ: string) => {
      writeFileSync(join(base, 'releases', id, '.env'), dotenv);
      writeFileSync(join(base, 'releases', id, '.ops-environ'), environ);
    };
    let r = reports();
    expect([at(r, 'rollback_to'), at(r, 'rollback_settings'), at(r, 'rollback_dotenv')]).toEqual([OLD, undefined, undefined]);
    writeFileSync(join(base, '.ops', 'fingerprint'), `${OLD} ${'e'.repeat(32)} ${sums} app=01234567,programs=00000000\r\n${LIVE} ${'f'.repeat(32)} ${sums}\n`);
    files(OLD, 'DB=postgresql://u:old@h/db\n', 'DB=old\0');
    files(LIVE, 'DB=postgresql://u:new@h/db\n', 'DB=new\0');
    r = reports();
    expect([at(r, 'rollback_settings'), at(r, 'rollback_dotenv')]).toEqual(['app=01234567,programs=00000000', 'differs']);
    files(LIVE, 'DB=postgresql://u:old@h/db\n', 'DB=old\0');
    expect(at(reports(), 'rollback_dotenv')).toBe('same');
    files(LIVE, 'DB=postgresql://u:old@h/db\n', 'DB=new\0');
    expect(at(reports(), 'rollback_dotenv')).toBe('differs');
    writeFileSync(join(base, '.ops', 'fingerprint'), `${OLD} ${'e'.repeat(32)}\n`);
    expect(at(reports(), 'rollback_settings')).toBeUndefined();
    // A release of an older version: its .env a link to the shared one, not its own: not compared.
    mkdirSync(join(base, 'shared'));
    writeFileSync(join(base, 'shared', '.env'), 'DB=postgresql://u:legacy@h/db\n');
    rmSync(join(base, 'releases', OLD, '.env'));
    symlinkSync('../../shared/.env', join(base, 'releases', OLD, '.env'));
    expect(at(reports(), 'rollback_dotenv')).toBeUndefined();
  });

  it('recordSettings: the release\'s line gets the settings it now runs with (replaced or added), its fingerprint and sums kept; other lines and an older record as they are; no records, none made', () => {
    const base = host();
    const e = target(base);
    const file = join(base, '.ops', 'fingerprint');
    const sums = `${'1'.repeat(64)} ${'2'.repeat(64)}`;
    const record = (id: string) => execFileSync('bash', ['-c', `set -euo pipefail; release_id=${id}; f() {\n${recordSettings(e, 'app=01234567,programs=89abcdef')}\n}; f`], { encoding: 'utf8' });
    writeFileSync(file, `${OLD} ${'e'.repeat(32)} ${sums} app=01234567,programs=00000000\n${LIVE} ${'f'.repeat(32)} ${sums}\n20250101T000000Z-0123456789ab ${'d'.repeat(32)}\n`);
    record(OLD);
    record(LIVE);
    record('20250101T000000Z-0123456789ab');
    expect(readFileSync(file, 'utf8')).toBe(`${OLD} ${'e'.repeat(32)} ${sums} app=01234567,programs=89abcdef\n${LIVE} ${'f'.repeat(32)} ${sums} app=01234567,programs=89abcdef\n20250101T000000Z-0123456789ab ${'d'.repeat(32)}\n`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    rmSync(file);
    record(OLD);
    expect(existsSync(file)).toBe(false);
    expect(() => recordSettings(e, 'programs=1; rm -rf /')).toThrow(/not a settings digest/);
  });

  it('the supervisor file for a release chosen on the host is, byte for byte, the one rendered for that id on the runner', () => {
    // A base directory with a "%" (supervisor doubles it), programs whose command and environment name the release; with a
    // space too, the environment only (a command's {release} under a base_dir with a space is refused: supervisor splits it).
    const spaced = target(join(mkdtempSync(join(tmpdir(), 'ops rollback ')), 'srv 100%'), 'venv/bin/python -m web --pct "100%"');
    for (const e of [spaced, target(join(mkdtempSync(join(tmpdir(), 'ops-rollback-')), 'srv-100%'))])
      for (const slot of ['blue', 'green'] as const) {
        const out = execFileSync('bash', ['-c', `release_id=${OLD}\n${slotConfigShell(e, slot, onHost('release_id'))}\nprintf %s "$conf_b64"`], { encoding: 'utf8' });
        expect(Buffer.from(out, 'base64').toString()).toBe(slotConfig(e, slot, `${e.layout.releases}/${OLD}`, OLD));
        expect(out).toBe(execFileSync('bash', ['-c', `${slotConfigShell(e, slot, OLD)}\nprintf %s "$conf_b64"`], { encoding: 'utf8' }));
      }
  });
});

describe('a rollback whose lock is taken away on a host while it is paused (ops lock release --force by someone else)', () => {
  it('two hosts: its step there, fenced by the lock, changes nothing; nothing more runs there (no slot put back), the error says what is live, and the audit line says failed', async () => {
    const h = harness((step, host) => {
      if (step.name === 'lock') return { stdout: STATE };
      if (step.name === 'rollback' && host === 'web1') return { code: LOCK_LOST_EXIT, stderr: `${LOCK_LOST_MARK}it was released by force (ops lock release --force); this step changed nothing (current names ${LIVE})\n` };
      if (step.name === 'rollback') return { stdout: opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green', 'lock released') };
      if (step.name === 'unlock' && host === 'web1') return { stdout: opsLines(KEYS, 'lock not_held') };
      if (step.name === 'read audit log') return { stdout: `@ops entry ${JSON.stringify({ time: new Date().toISOString(), environment: 'two', operation: 'lock release', actor: 'bob', result: 'success' })}\n` };
      return undefined;
    });
    const e = (await rollback(h.ctx, loadEnvironment('two', root)).catch((x: unknown) => x)) as OpsError;
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message).toMatch(/^step "rollback" on web1 changed nothing: this run's lock there is no longer its own \(it was released by force \(ops lock release --force\)\)\nweb1 still serves /);
    expect(e.message).toContain(`\nweb1: the lock on web1 was released by force by bob at `);
    expect(e.message).toContain(` (ops lock release --force) while this run was paused or held up (its next step there, "rollback", found it so and changed nothing); nothing more was changed there: ${LIVE} is live (what current names)`);
    expect(h.names('web1')).toEqual(['lock', 'rollback', 'unlock', 'read audit log', 'audit']);
    const audit = h.remotes.get('web1')!.runs.at(-1)!.stdin;
    expect(audit).toContain('"operation":"rollback"');
    expect(audit).toMatch(/"result":"failed".*its lock released by force by bob at /);
    expect(h.remotes.get('web1')!.runs[1]!.stdin).toContain('\nrun_lock_guard\n');
  });

  // 143: the step's bash ended on the release's SIGTERM; 128: ssh2 saw the channel end on a signal, with no exit status.
  it.each([143, 128])('one host, its work (in the lock step) stopped by a forced release of its lock (exit code %i): said as that release in the first line, by whom, and audited as failed (the unlock found the lock gone)', async (code) => {
    const h = harness((step) => {
      // The release stops the lock step's processes: the step, having taken the lock and begun the start, ends on SIGTERM.
      if (step.name === 'lock') return { code, stdout: STATE + opsLines(KEYS, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green'), stderr: 'Terminated\n' };
      if (step.name === 'unlock') return { stdout: opsLines(KEYS, 'lock not_held') };
      if (step.name === 'read audit log') return { stdout: `@ops entry ${JSON.stringify({ time: new Date().toISOString(), environment: 'one', operation: 'lock release', actor: 'bob', result: 'success', message: 'removed held lock of a rollback run by alice' })}\n` };
      return undefined;
    });
    const e = (await rollback(h.ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as OpsError;
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message.split('\n')[0]).toMatch(/^step "lock, state" on web1 was stopped: this run's lock there was released by force by bob at \S+ \(ops lock release --force: "removed held lock of a rollback run by alice"\) while the step ran$/);
    expect(e.message).toContain('\nweb1: this run\'s lock was released by force by bob at ');
    expect(e.message).toContain('(ops lock release --force: "removed held lock of a rollback run by alice") while it ran: that stopped the run\'s steps there');
    expect(h.names()).toEqual(['lock', 'unlock', 'read audit log', 'audit']);
    const line = auditOf(h.remotes.get('web1')!.runs.at(-1)!.stdin);
    expect(line).toMatchObject({ operation: 'rollback', result: 'failed', message: expect.stringMatching(/^step "lock, state" on web1 .*: its lock released by force by bob at /) });
    // The CLI's exit code: a deploy whose lock was released by force exits 1 (test/e2e/interrupt.test.ts), so does this.
    const cli = await runOps(['rollback', 'one'], { root, processEnv: { PATH: process.env.PATH, USER: 'alice' }, connector: h.ctx.connector });
    expect(cli.code, cli.err).toBe(1);
    expect(cli.err).toMatch(/^error: step "lock, state" on web1 was stopped: this run's lock there was released by force by bob/);
  });

  it('one host, its lock released by force just after another run\'s was (both in the audit log\'s leeway): the breaker named is the one of its own lock (the time its lock step took it), waited for', async () => {
    const since = '2026-12-03T06:46:09Z';
    const actor = runInfo({ USER: 'alice' }).actor;
    const entry = (by: string, message: string) => JSON.stringify({ time: new Date().toISOString(), environment: 'one', operation: 'lock release', actor: by, result: 'success', message });
    const other = entry('bob', 'removed held lock of a deploy run by root, started 2026-12-03T06:45:50Z; 20261102T100000Z-bbbbbbbbbbbb is live');
    const ours = entry('carol', `removed held lock of ${describeHolder({ operation: 'rollback', actor, since })}; stopped what its run left running (processes 447)`);
    let reads = 0;
    const h = harness((step) => {
      if (step.name === 'lock') return { code: 143, stdout: STATE + opsLines(KEYS, `holder since=${since}`, 'rollback ok', `rollback_from ${LIVE}`, `rollback_to ${OLD}`, 'rollback_slot green'), stderr: 'Terminated\n' };
      if (step.name === 'unlock') return { stdout: opsLines(KEYS, 'lock not_held') };
      // The breaker writes its line once its release ended: not there at the first look.
      if (step.name === 'read audit log') return { stdout: [other, ...(reads++ ? [ours] : [])].map((l) => `@ops entry ${l}\n`).join('') };
      return undefined;
    });
    const e = (await rollback(h.ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as OpsError;
    expect(e.message).toContain('\nweb1: this run\'s lock was released by force by carol at ');
    expect(e.message).not.toContain('by bob');
    expect(auditOf(h.remotes.get('web1')!.runs.at(-1)!.stdin).message).toMatch(/: its lock released by force by carol at /);
  });
});
