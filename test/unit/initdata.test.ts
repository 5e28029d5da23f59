// ops initdata before any host: the data file is checked the way the app's loader will read it (a YAML
// document), then sent whole. A file the loader reads must not be refused, and a broken one never leaves the runner.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { RecordingRemote } from '../../core/remote/recording.ts';
import { LOCK_KEYS } from '../../core/steps/lock.ts';
import { RELEASE_KEYS } from '../../core/steps/release.ts';
import { opsLines } from './reports.helpers.ts';
import { runOps } from '../support/cli.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ops-initdata-'));
  writeFileSync(join(root, 'package.json'), '{}');
  mkdirSync(join(root, 'environments', 'x'), { recursive: true });
  writeFileSync(
    join(root, 'environments', 'x', 'environment.yml'),
    stringify({ app: 'sample', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { server: { command: 'run', port: 3579 } }, routes: { '/': 'server' } }),
  );
});

/** `ops initdata x --file <text>` against a recorded host with a live release: the exit, stderr and what was uploaded. */
async function load(name: string, text: string) {
  const file = join(root, name);
  writeFileSync(file, text);
  let host: RecordingRemote | undefined;
  const r = await runOps(['initdata', 'x', '--file', file], {
    root,
    processEnv: { PATH: process.env.PATH },
    connector: async () =>
      (host = new RecordingRemote('web1', 'deploy', 'sample', (step) =>
        step.name === 'lock' ? { stdout: opsLines({ ...LOCK_KEYS, ...RELEASE_KEYS }, 'lock acquired', 'current 20261125T120000Z-0123456789ab') } : undefined,
      )),
  });
  return { ...r, uploads: host?.uploads ?? [], steps: host?.stepNames() ?? [] };
}

/** What PyYAML (the sample app's loader: yaml.safe_load) makes of the text, as JSON; or its error. */
function pyyaml(text: string): { ok: boolean; out: string } {
  const r = spawnSync('python3', ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))'], { input: text, encoding: 'utf8' });
  return { ok: r.status === 0, out: r.stdout.trim() || r.stderr.trim().split('\n').pop()! };
}

describe('initdata: the file is checked as the loader will read it', () => {
  it('sends a file that shares defaults through an anchor used by many entries (PyYAML reads it)', async () => {
    let text = 'defaults: &user {role: user, password: __env__}\nusers:\n';
    for (let i = 0; i < 150; i++) text += `  - <<: *user\n    email: user${i}@example.org\n    name: "Utilisateur n°${i}"\n`;
    const py = pyyaml(text);
    expect(py.ok, py.out).toBe(true);
    const r = await load('anchors.yml', text);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.uploads).toHaveLength(1);
    expect(r.uploads[0]!.content.toString('utf8')).toBe(text);
    expect(r.steps).toContain('initdata');
  });

  it('checks a large file (20 000 entries sharing one anchor) in seconds', async () => {
    let text = 'defaults: &user {role: user}\nusers:\n';
    for (let i = 0; i < 20_000; i++) text += `  - <<: *user\n    email: user${i}@example.org\n`;
    const started = Date.now();
    const r = await load('large.yml', text);
    expect(r.code, r.err).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000); // resolving each alias by a search of the whole document: hours
  });

  it('still refuses what is not one YAML document, before any step runs on the host', async () => {
    for (const [name, text, why] of [
      ['unclosed.yml', 'users: [unclosed\n', /not valid YAML/],
      ['two.yml', 'users: []\n---\ntags: []\n', /not valid YAML: .*multiple documents/],
      ['dup.yml', 'users: []\nusers: []\n', /not valid YAML: .*unique/],
      ['unknown-alias.yml', 'users: [*nobody]\n', /not valid YAML/],
    ] as const) {
      expect(pyyaml(text).ok, name).toBe(name === 'dup.yml'); // PyYAML takes the last of duplicate keys; YAML forbids them
      const r = await load(name, text);
      expect(r.code, name).toBe(1);
      expect(r.err, name).toMatch(why);
      expect(r.err, name).toMatch(/nothing was sent/);
      expect(r.uploads, name).toHaveLength(0);
    }
  });
});
