// Shared by the status tests: a throwaway environment, and what a host's status step would report.
import { PROVISIONED_KEYS } from '../../core/steps/system.ts';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadEnvironment } from '../../core/config/environment.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { parseReports, reportLine, type StepResult } from '../../core/remote/types.ts';
import { LIBRARY_KEYS } from '../../core/steps/libraries.ts';
import { LOCK_KEYS } from '../../core/steps/lock.ts';
import { STATUS_KEYS } from '../../core/steps/status.ts';

export const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

/** environments/<name>/environment.yml in a new temporary project, loaded. */
export function testEnv(extra: Record<string, unknown> = {}, hosts = [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], name = 'demo'): Target {
  const root = mkdtempSync(join(tmpdir(), 'ops-status-'));
  mkdirSync(join(root, 'environments', name), { recursive: true });
  writeFileSync(join(root, 'package.json'), '{}');
  writeFileSync(
    join(root, 'environments', name, 'environment.yml'),
    stringify({
      app: 'shop',
      hosts,
      programs: { server: { command: 'run', port: 3579, health: '/health' }, client: { command: 'run', port: 3000 } },
      ...extra,
    }),
  );
  return resolveTarget(loadEnvironment(name, root));
}

export function result(stdout: string, code = 0): StepResult {
  return { stdout, stderr: '', code, durationMs: 0, reports: parseReports(stdout) };
}

/** supervisor.getAllProcessInfo's answer as the status step reports it (newlines removed). */
export function processXml(procs: { name: string; group: string; state: string; start?: number; stop?: number; now?: number; pid?: number; description?: string; spawnerr?: string }[]): string {
  const member = (n: string, v: string | number) => `<member><name>${n}</name><value><${typeof v === 'number' ? 'int' : 'string'}>${v}</${typeof v === 'number' ? 'int' : 'string'}></value></member>`;
  const structs = procs.map(
    (p) =>
      `<value><struct>${member('name', p.name)}${member('group', p.group)}${member('start', p.start ?? 1000)}${member('stop', p.stop ?? 0)}${member('now', p.now ?? 4600)}${member('statename', p.state)}${member('spawnerr', p.spawnerr ?? '')}${member('pid', p.pid ?? 0)}${member('description', p.description ?? '')}</struct></value>`,
  );
  return `<?xml version='1.0'?><methodResponse><params><param><value><array><data>${structs.join('')}</data></array></value></param></params></methodResponse>`;
}

export const RUNNING = processXml([
  { name: 'shop-blue-server', group: 'shop-blue', state: 'RUNNING', pid: 211, description: 'pid 211, uptime 1:00:00' },
  { name: 'shop-blue-client', group: 'shop-blue', state: 'RUNNING', pid: 216, description: 'pid 216, uptime 1:00:00' },
  { name: 'shop-green-server', group: 'shop-green', state: 'RUNNING', pid: 300 },
  { name: 'shop-green-client', group: 'shop-green', state: 'RUNNING', pid: 301 },
  { name: 'other-thing', group: 'other', state: 'FATAL' },
]);

/** What the fake status step reports: its own keys, the certificate library's, and the lock's (status reads the lock in the same look). */
const KEYS = { ...PROVISIONED_KEYS, ...STATUS_KEYS, ...LIBRARY_KEYS, ...LOCK_KEYS };
type Lines = Partial<Record<keyof typeof KEYS, string | string[] | undefined>>;

/** The report of a healthy host, with `override` lines replacing those of the same key. */
export function report(override: Lines = {}): string {
  const base: Lines = {
    now: '2026-11-25T15:00:00Z',
    provisioned: '2026-11-01T10:00:00Z',
    current: '20261125T140000Z-0123456789ab',
    release_json: JSON.stringify({ id: '20261125T140000Z-0123456789ab', sha: '0123456789abcdef0123456789abcdef01234567', ref: 'v2', time: '2026-11-25T14:00:00.000Z', actor: 'alice@laptop', run: '' }),
    slot: 'blue',
    nginx: 'running',
    nginx_config: 'ok',
    nginx_test: ['nginx: the configuration file /etc/nginx/nginx.conf syntax is ok', 'nginx: configuration file /etc/nginx/nginx.conf test is successful'],
    site: '200',
    supervisor: 'running',
    supervisor_xml: RUNNING,
    health: 'ok',
    disk: ['/ 20000000 40000000'],
    lock: 'free',
    upstream: ['shop_server 127.0.0.1:3579', 'shop_client 127.0.0.1:3000'],
    nginx_slot: 'blue',
    ...override,
  };
  const lines: string[] = [];
  for (const [k, v] of Object.entries(base)) {
    if (v === undefined) continue;
    for (const x of Array.isArray(v) ? v : [v]) lines.push(reportLine(KEYS[k as keyof typeof KEYS], x));
  }
  return lines.join('\n') + '\n';
}
