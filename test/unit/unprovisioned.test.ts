// A host never provisioned for the environment (no provision marker, <base>/.ops/provisioned) is said so by every
// command, from the step it already runs: the real steps run by bash on a scratch base directory (through the
// recording transport where a command is run whole), their parsers, and the lock step that refuses before it makes
// anything there. Steps run as the login read the marker through sudo -n; what they cannot read is unknown, not "no".
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadEnvironment } from '../../core/config/environment.ts';
import { formatChanges, describeChanges } from '../../core/changes.ts';
import { parseState } from '../../core/ops/host-state.ts';
import { RecordingRemote } from '../../core/remote/recording.ts';
import { parseReports, type Step, type StepResult } from '../../core/remote/types.ts';
import { HOST_COMMANDS, scriptText } from '../../core/remote/wrap.ts';
import { acquireLock, LOCK_UNPROVISIONED_EXIT, lockStatus } from '../../core/steps/lock.ts';
import { deployState } from '../../core/steps/release.ts';
import { parseHostStatus, STATUS_KEYS } from '../../core/steps/status.ts';
import { PROVISIONED_KEYS, provisionedIn, unprovisionedNote } from '../../core/steps/system.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { runOps } from '../support/cli.ts';
import { opsLines } from './reports.helpers.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
let root: string;
/** Stands for the host's /srv/sample (the environment's base_dir), under `hostDir`. */
let base: string;
let hostDir: string;
/** Directories holding a `sudo`: one that works without a password (drops -n), one that asks for a password. */
const sudoDirs: Record<'works' | 'refuses', string> = { works: '', refuses: '' };
/** The unprivileged user a login step may run as (nobody). */
const NOBODY = 65534;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ops-unprovisioned-'));
  writeFileSync(join(root, 'package.json'), '{}');
  mkdirSync(join(root, 'environments', 'qa'), { recursive: true });
  writeFileSync(
    join(root, 'environments', 'qa', 'environment.yml'),
    stringify({ app: 'sample', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { server: { command: 'run', port: 3579, health: '/health' } }, routes: { '/': 'server' } }),
  );
  hostDir = mkdtempSync(join(tmpdir(), 'ops-unprovisioned-host-'));
  chmodSync(hostDir, 0o755);
  base = join(hostDir, 'srv', 'sample');
  const tools = mkdtempSync(join(tmpdir(), 'ops-unprovisioned-sudo-'));
  chmodSync(tools, 0o755);
  const scripts = { works: '[ "$1" = -n ] && shift\nexec "$@"', refuses: 'echo "sudo: a password is required" >&2\nexit 1' };
  for (const kind of ['works', 'refuses'] as const) {
    sudoDirs[kind] = join(tools, kind);
    mkdirSync(sudoDirs[kind], { mode: 0o755 });
    writeFileSync(join(sudoDirs[kind], 'sudo'), `#!/bin/bash\n${scripts[kind]}\n`);
    chmodSync(join(sudoDirs[kind], 'sudo'), 0o755);
  }
});

function qa(): Target {
  return resolveTarget(loadEnvironment('qa', root));
}

/** A host never provisioned: nothing under its base directory (the directory above it there). */
function bare(): void {
  rmSync(join(hostDir, 'srv'), { recursive: true, force: true });
  mkdirSync(join(hostDir, 'srv'), { recursive: true });
}

/** Provisioned: the marker provision writes last. */
function provisioned(): void {
  mkdirSync(join(base, '.ops'), { recursive: true });
  writeFileSync(join(base, '.ops', 'provisioned'), '2026-11-01T00:00:00Z\n');
}

/** `step` run by bash on the scratch host (its /srv/sample at `base`), with `sudo` working or not, as root or as `uid`. */
function runStep(step: Step, sudo: 'works' | 'refuses' = 'works', uid?: number): StepResult {
  // the fake sudo on PATH stands where the host's is (the scripts name it by its path: HOST_COMMANDS)
  const script = scriptText(step).replaceAll('/srv/sample', base).replaceAll(HOST_COMMANDS.sudo, 'sudo');
  const [cmd, args] = uid === undefined ? ['bash', ['-c', script]] : ['setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'bash', '-c', script]];
  const r = spawnSync(cmd as string, args as string[], { encoding: 'utf8', cwd: '/', env: { ...process.env, PATH: `${sudoDirs[sudo]}:${process.env.PATH}` } });
  return { stdout: r.stdout, stderr: r.stderr, code: r.status ?? -1, durationMs: 0, reports: parseReports(r.stdout) };
}

/** `ops <args>` with each step run by bash on the scratch host (sudo works). */
function ops(args: string[]) {
  return runOps(args, {
    root,
    processEnv: { PATH: process.env.PATH },
    connector: async (_env, host) => new RecordingRemote(host.name, 'deploy', 'sample', (step) => runStep(step)),
  });
}

describe('the marker, read (provisionedIn, unprovisionedNote)', () => {
  it('a date (or anything but no/unknown) is provisioned; no is not; unknown or not reported is not known', () => {
    const of = (...lines: string[]) => provisionedIn({ stdout: '', stderr: '', code: 0, durationMs: 0, reports: parseReports(opsLines(PROVISIONED_KEYS, ...(lines as `provisioned ${string}`[]))) });
    expect(of('provisioned 2026-11-01T00:00:00Z')).toBe(true);
    expect(of('provisioned yes')).toBe(true);
    expect(of('provisioned no')).toBe(false);
    expect(of('provisioned unknown')).toBeUndefined();
    expect(of()).toBeUndefined();
    expect(unprovisionedNote('web1', { name: 'qa' })).toBe('web1: not provisioned for qa (run: ops provision qa)');
    expect(unprovisionedNote(undefined, { name: 'qa' })).toBe('not provisioned for qa (run: ops provision qa)');
  });
});

describe('a step run as the login reads the marker through sudo -n; unreadable is unknown, never "no"', () => {
  it('sudo works: no marker is no, the marker is its date', () => {
    bare();
    expect(provisionedIn(runStep(lockStatus(qa()), 'works', NOBODY))).toBe(false);
    provisioned();
    const r = runStep(lockStatus(qa()), 'works', NOBODY);
    expect(r.reports).toContainEqual(['provisioned', '2026-11-01T00:00:00Z']);
    expect(provisionedIn(r)).toBe(true);
  });

  it('sudo asks for a password and the login may not look under the app\'s directory: unknown (not "not provisioned")', () => {
    bare();
    provisioned();
    chmodSync(hostDir, 0o700);
    try {
      const r = runStep(lockStatus(qa()), 'refuses', NOBODY);
      expect(r.code).toBe(0);
      expect(r.reports).toContainEqual(['provisioned', 'unknown']);
      expect(provisionedIn(r)).toBeUndefined();
      // Not there either: still unknown, since it cannot be told.
      bare();
      expect(runStep(lockStatus(qa()), 'refuses', NOBODY).reports).toContainEqual(['provisioned', 'unknown']);
    } finally {
      chmodSync(hostDir, 0o755);
    }
  });

  it('sudo asks for a password, the directories open: the marker read directly (its date), or absent (no)', () => {
    chmodSync(hostDir, 0o755);
    bare();
    expect(runStep(lockStatus(qa()), 'refuses', NOBODY).reports).toContainEqual(['provisioned', 'no']);
    mkdirSync(join(base, '.ops'), { recursive: true });
    expect(runStep(lockStatus(qa()), 'refuses', NOBODY).reports).toContainEqual(['provisioned', 'no']);
    provisioned();
    expect(runStep(lockStatus(qa()), 'refuses', NOBODY).reports).toContainEqual(['provisioned', '2026-11-01T00:00:00Z']);
  });
});

describe('the lock step of an operation that needs a provisioned host', () => {
  const request = { operation: 'deploy', actor: 'alice', runUrl: '', runId: 'r1', wait: 0 };

  it('on a host never provisioned: ends at once (LOCK_UNPROVISIONED_EXIT), reporting provisioned no, and makes nothing there', () => {
    bare();
    const r = runStep(acquireLock(qa(), { ...request, provisioned: true }, 'echo INSPECTED'));
    expect(r.code).toBe(LOCK_UNPROVISIONED_EXIT);
    expect(provisionedIn(r)).toBe(false);
    expect(r.stdout).not.toContain('INSPECTED');
    expect(existsSync(base)).toBe(false);
    // The base directory there, no marker (a provision that did not finish): no .ops made either.
    mkdirSync(base, { recursive: true });
    expect(runStep(acquireLock(qa(), { ...request, provisioned: true })).code).toBe(LOCK_UNPROVISIONED_EXIT);
    expect(existsSync(join(base, '.ops'))).toBe(false);
  });

  it('provisioned, it goes on to take the lock; an operation that provisions (no `provisioned`) is not asked', () => {
    bare();
    provisioned();
    // Past the marker: here it stops at the SSH server process it looks for (none in a test), not at the marker.
    const r = runStep(acquireLock(qa(), { ...request, provisioned: true }));
    expect(r.code).not.toBe(LOCK_UNPROVISIONED_EXIT);
    expect(r.stderr).toContain('cannot find the SSH server process');
    expect(acquireLock(qa(), request).script).not.toContain('.ops/provisioned');
  });
});

describe('read-only commands on a host never provisioned say so, from the step they already run', () => {
  it('ops releases, ops audit, ops lock status: "web1: not provisioned for qa (run: ops provision qa)", not "(no releases)", "(empty)", "free"', async () => {
    bare();
    const releases = await ops(['releases', 'qa']);
    expect(releases.out.trim()).toBe('web1: not provisioned for qa (run: ops provision qa)');
    const audit = await ops(['audit', 'qa']);
    expect(audit.out.trim()).toBe('web1: not provisioned for qa (run: ops provision qa): no audit log (nothing ran there)');
    const lock = await ops(['lock', 'status', 'qa']);
    expect(lock.out.trim()).toBe('web1: not provisioned for qa (run: ops provision qa): no lock (nothing ran there)');
    expect(lock.code).toBe(0);
    // --json says it too.
    expect(JSON.parse((await ops(['releases', 'qa', '--json'])).out)).toEqual([{ host: 'web1', releases: [], unprovisioned: 'web1: not provisioned for qa (run: ops provision qa)' }]);
    // Provisioned, nothing yet: as before.
    provisioned();
    expect((await ops(['releases', 'qa'])).out.trim()).toBe('web1:\n  (no releases)');
    expect((await ops(['audit', 'qa'])).out.trim()).toBe('web1:\n  (empty)');
    expect((await ops(['lock', 'status', 'qa'])).out.trim()).toBe('web1: free');
  });

  it('ops certs: the host is said not provisioned (not "no certificate"), and certs fails', async () => {
    bare();
    const tls = join(root, 'environments', 'tls');
    mkdirSync(tls, { recursive: true });
    writeFileSync(
      join(tls, 'environment.yml'),
      stringify({ app: 'sample', domain: 'shop.example', tls: { mode: 'self-signed' }, hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { server: { command: 'run', port: 3579, health: '/health' } }, routes: { '/': 'server' } }),
    );
    const r = await runOps(['certs', 'tls'], {
      root,
      processEnv: { PATH: process.env.PATH },
      // The certificates step's marker part, as bash runs it on the bare host (the rest reads /etc and :443).
      connector: async (_env, host) => new RecordingRemote(host.name, 'deploy', 'sample', (step) => (step.name === 'certificates' ? { stdout: execFileSync('bash', ['-c', `ops_report() { echo "@ops $1 $2"; }\n${step.script.split('\n').find((l) => l.startsWith('provisioned=no'))}\nops_report provisioned "$provisioned"`.replaceAll('/srv/sample', base)], { encoding: 'utf8' }) } : undefined)),
    });
    expect(r.out).toContain('web1:\n  ✗ not provisioned for tls (run: ops provision tls)');
    expect(r.out).not.toContain('(no certificate)');
    expect(r.code).toBe(1);
  });

  it('ops diff and deploy --dry-run: the state step says provisioned no on a bare host; the change says not provisioned, not "first deploy"', async () => {
    bare();
    const state = parseState(runStep(deployState(qa())));
    expect(state.provisioned).toBe(false);
    const lives = [
      { host: 'web1', sha: '', release: '', unprovisioned: unprovisionedNote('web1', qa()) },
      { host: 'web2', sha: '', release: '' },
    ];
    const changes = await describeChanges(root, loadEnvironment('qa', root), lives, 'a'.repeat(40));
    expect(changes[0]!.change).toBeUndefined();
    const text = formatChanges(changes, 'a'.repeat(40));
    expect(text[0]).toBe('web1: not provisioned for qa (run: ops provision qa): a deploy refuses there until it is');
    expect(text[1]).toMatch(/^web2: live \(nothing\) → target aaaaaaaaaaaa: first deploy/);
  });

  it('ops status: not provisioned is the one problem, not its symptoms (nginx stopped, its site missing, supervisord down)', () => {
    const r = (lines: string[]): StepResult => ({ stdout: '', stderr: '', code: 0, durationMs: 0, reports: parseReports(opsLines({ ...PROVISIONED_KEYS, ...STATUS_KEYS }, ...(lines as never[]))) });
    const symptoms = ['current ', 'slot ', 'nginx stopped disabled', 'nginx_config invalid', 'nginx_test nginx: [emerg] open() failed', 'site_enabled no', 'site 0', 'supervisor unix:///var/run/supervisor.sock no such file'];
    const s = parseHostStatus(qa(), { name: 'web1', address: '192.0.2.1' }, r(['provisioned no', ...symptoms]));
    expect(s.provisioned).toBe(false);
    expect(s.problems).toEqual(['not provisioned for qa (run: ops provision qa)']);
    // Not known (an older step, or unreadable): the symptoms are the problems, never "not provisioned".
    const unknown = parseHostStatus(qa(), { name: 'web1', address: '192.0.2.1' }, r(['provisioned unknown', ...symptoms]));
    expect(unknown.problems.length).toBeGreaterThan(1);
    expect(unknown.problems.join('\n')).not.toContain('not provisioned');
  });
});
