// Text from a host quoted to the user on the runner (a login shell's preamble, a failed lock or unlock step's output, a
// live release's health verdict) goes through the same masking as every other host text: the run's secret values
// (the reporter's redact) and what looks like a secret (maskSecretLike), over the whole text before any cut.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadEnvironment } from '../../core/config/environment.ts';
import type { OpsContext } from '../../core/context.ts';
import { oneLine } from '../../core/errors.ts';
import { parseState } from '../../core/ops/host-state.ts';
import { readFacts } from '../../core/ops/ping.ts';
import { rollback } from '../../core/ops/rollback.ts';
import { MemoryReporter } from '../../core/report.ts';
import { RecordingRemote } from '../../core/remote/recording.ts';
import { parseReports } from '../../core/remote/types.ts';
import { LOCK_KEYS } from '../../core/steps/lock.ts';
import { RELEASE_KEYS } from '../../core/steps/release.ts';
import { opsLines } from './reports.helpers.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const LEAK = 'hunter2-from-bashrc';
const KNOWN = 'a-secret-the-run-knows';

describe('host text quoted on the runner is masked', () => {
  it('oneLine masks what looks like a secret even without a redact (a login shell exporting a password)', () => {
    expect(oneLine(`welcome\nexport DB_PASSWORD=${LEAK}`)).toBe('welcome / export DB_PASSWORD=***');
    expect(oneLine(`postgres://app:${LEAK}@db/app`)).toBe('postgres://app:***@db/app');
  });

  it("oneLine shows the start of a first word longer than the cut (a banner's row of \"=\", a long URL), not \"…\" alone; never a token's", () => {
    expect(oneLine('='.repeat(120))).toBe(`${'='.repeat(79)}…`);
    expect(oneLine(`==== Welcome to ${'x'.repeat(100)}`)).toBe('==== Welcome to…');
    expect(oneLine(`https://status.example.com/${'incident-'.repeat(12)}`)).toBe(`https://status.example.com/${'incident-'.repeat(12)}`.slice(0, 79) + '…');
    // a start-up file's echo of a token: nothing of it
    expect(oneLine(`ghp_${'aB3dE5fG7h'.repeat(10)}`)).toBe('***'); // a documented shape: masked whole first (maskSecretLike)
    expect(oneLine(`=====${'Zm9vYmFyQmF6cXV4'.repeat(3)}+/${'K8sLm2Np4Qr6St8V'.repeat(4)}`)).toBe('…');
  });

  it("ops ping: the login shell's text, in the problem and in --json (loginShellOutput), masked whole", () => {
    const reporter = new MemoryReporter();
    reporter.mask(KNOWN);
    const r = readFacts({ name: 'prod' }, { name: 'web1', user: 'deploy' }, { stdout: '', stderr: '', code: 0, durationMs: 1, reports: [], preamble: `Welcome!\nexport API_TOKEN=${LEAK}\necho ${KNOWN}` }, (t) => reporter.redact(t));
    const said = JSON.stringify(r);
    expect(said).not.toContain(LEAK);
    expect(said).not.toContain(KNOWN);
    expect(r.problems.map((p) => p.problem)).toContain('the login shell of deploy prints text for non-interactive sessions: "Welcome! / export API_TOKEN=*** / echo ***" (ops copes; scp, rsync and sftp break)');
    expect(r.loginShellOutput).toBe('Welcome!\nexport API_TOKEN=***\necho ***');
  });

  it("a live release's health verdict (a deploy of the live sha says it), masked as received", () => {
    const stdout = opsLines(RELEASE_KEYS, `live_health web:5100:/health answered 500: {"password": "${LEAK}"}`);
    const state = parseState({ stdout, stderr: '', code: 0, durationMs: 0, reports: parseReports(stdout) });
    expect(state.liveHealth).toBe('web:5100:/health answered 500: {"password": ***}');
  });

  it("a lock step that failed: its output quoted in the error masked, as any failed step's (failureDetail)", async () => {
    const root = mkdtempSync(join(tmpdir(), 'ops-host-text-'));
    writeFileSync(join(root, 'package.json'), '{}');
    mkdirSync(join(root, 'environments', 'one'), { recursive: true });
    writeFileSync(
      join(root, 'environments', 'one', 'environment.yml'),
      stringify({ app: 'sample', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { server: { command: 'run', port: 3579, health: '/health' } }, routes: { '/': 'server' } }),
    );
    const ctx: OpsContext = {
      root,
      reporter: new MemoryReporter(),
      processEnv: { PATH: process.env.PATH, USER: 'alice' },
      connector: async (_env, host) => new RecordingRemote(host.name, 'deploy', 'sample', (step) => (step.name === 'lock' ? { code: 1, stdout: opsLines(LOCK_KEYS, 'lock acquired'), stderr: `bash: line 3: DATABASE_URL=postgres://app:${LEAK}@db/app: No such file or directory` } : undefined)),
    };
    const e = (await rollback(ctx, loadEnvironment('one', root)).catch((x: unknown) => x)) as Error;
    expect(e.message).toContain('step "lock, state" on web1 failed with exit code 1');
    expect(e.message).toContain('postgres://app:***@db/app');
    expect(e.message).not.toContain(LEAK);
  });
});
