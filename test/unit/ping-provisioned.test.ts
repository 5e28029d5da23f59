// `ops ping` on a host never provisioned for the environment (no provision marker, <base>/.ops/provisioned): the real
// facts step run by bash on a scratch base directory (through the recording transport), read and printed as the CLI
// prints it. Not a ✓: the next step is said (ops provision <env>), and ping still exits 0 for it (a new user runs
// ping, then provision, then deploy); a real problem beside it still fails ping.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { RecordingRemote } from '../../core/remote/recording.ts';
import { HOST_COMMANDS, scriptText } from '../../core/remote/wrap.ts';
import { runOps } from '../support/cli.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
let root: string;
/** Stands for the host's /srv/sample (the environment's base_dir). */
let base: string;
/** Directories holding a `sudo`: one that works without a password (drops -n), one that asks for a password. */
const sudoDirs: Record<'works' | 'refuses', string> = { works: '', refuses: '' };

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ops-ping-provisioned-'));
  writeFileSync(join(root, 'package.json'), '{}');
  mkdirSync(join(root, 'environments', 'qa'), { recursive: true });
  writeFileSync(
    join(root, 'environments', 'qa', 'environment.yml'),
    stringify({ app: 'sample', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { server: { command: 'run', port: 3579, health: '/health' } }, routes: { '/': 'server' } }),
  );
  base = join(root, 'host', 'srv', 'sample');
  const scripts = { works: '[ "$1" = -n ] && shift\nexec "$@"', refuses: 'echo "sudo: a password is required" >&2\nexit 1' };
  for (const kind of ['works', 'refuses'] as const) {
    sudoDirs[kind] = join(root, `sudo-${kind}`);
    mkdirSync(sudoDirs[kind]);
    writeFileSync(join(sudoDirs[kind], 'sudo'), `#!/bin/bash\n${scripts[kind]}\n`);
    chmodSync(join(sudoDirs[kind], 'sudo'), 0o755);
  }
});

/** `ops ping qa [--json]`, the facts step run by bash with the host's /srv/sample at `base`; `sudo`: whether sudo works. */
async function ping(json: boolean, sudo: 'works' | 'refuses' = 'works') {
  return runOps(['ping', 'qa', ...(json ? ['--json'] : [])], {
    root,
    processEnv: { PATH: process.env.PATH },
    connector: async (_env, host) =>
      new RecordingRemote(host.name, 'deploy', 'sample', (step) => {
        if (step.name !== 'host facts') return undefined;
        // the fake sudo on PATH stands where the host's is (the scripts name it by its path: HOST_COMMANDS)
        const script = scriptText(step).replaceAll('/srv/sample', base).replaceAll(HOST_COMMANDS.sudo, 'sudo');
        return { stdout: execFileSync('bash', ['-c', script], { encoding: 'utf8', env: { ...process.env, PATH: `${sudoDirs[sudo]}:${process.env.PATH}` } }) };
      }),
  });
}

describe('ops ping on a host never provisioned for the environment', () => {
  it('no provision marker: not a ✓; the host is marked ! and the next step is said (ops provision qa); exit 0, so that ping && provision && deploy runs', async () => {
    rmSync(base, { recursive: true, force: true });
    const r = await ping(false);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^! web1 \(192\.0\.2\.1\): key verified, /);
    expect(r.out).toContain('\n    → web1: not provisioned for qa yet: deploy, rollback and initdata refuse until it is; next: ops provision qa, then ops deploy qa');
    expect(r.out).not.toContain('✓');
    const doc = JSON.parse((await ping(true)).out) as Record<string, unknown>[];
    expect(doc[0]).toMatchObject({ host: 'web1', ok: true, provisioned: false, problems: [], next: [{ problem: 'not provisioned for qa yet: deploy, rollback and initdata refuse until it is', fix: 'ops provision qa, then ops deploy qa' }] });
  });

  it('the base directory there but no marker (a provision that did not finish): still not provisioned', async () => {
    rmSync(base, { recursive: true, force: true });
    mkdirSync(join(base, '.ops'), { recursive: true });
    const doc = JSON.parse((await ping(true)).out) as Record<string, unknown>[];
    expect(doc[0]).toMatchObject({ ok: true, provisioned: false });
  });

  it('provisioned (the marker provision writes last): a plain ✓, nothing next', async () => {
    mkdirSync(join(base, '.ops'), { recursive: true });
    writeFileSync(join(base, '.ops', 'provisioned'), '2026-11-01T00:00:00Z\n');
    const r = await ping(false);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^✓ web1 \(192\.0\.2\.1\): key verified, /);
    expect(r.out).not.toContain('→');
    const doc = JSON.parse((await ping(true)).out) as Record<string, unknown>[];
    expect(doc[0]).toMatchObject({ ok: true, provisioned: true });
    expect(doc[0]).not.toHaveProperty('next');
  });

  it('a problem beside it (sudo asks for a password: provision would fail too): ping fails on the problem, its fix first, then the next step', async () => {
    rmSync(base, { recursive: true, force: true });
    const r = await ping(false, 'refuses');
    expect(r.code).toBe(1);
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^✗ web1 \(192\.0\.2\.1\): /);
    expect(lines[1]).toMatch(/^ {4}✗ web1: sudo does not work without a password for .*; fix: /);
    expect(lines.at(-1)).toBe('    → web1: not provisioned for qa yet: deploy, rollback and initdata refuse until it is; next: ops provision qa, then ops deploy qa');
  });
});
