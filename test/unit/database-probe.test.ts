// ops status with the app's PostgreSQL down: a failed health check comes with its likely cause, the database as the
// host sees it (refused, timed out, a name that does not resolve, something else there), or, when it answers, that
// the cause is past the connection. The probe itself (the host's python3) run here against real sockets.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatStatus, statusSummary } from '../../core/ops/status.ts';
import { databaseProbeShell, databaseVariables } from '../../core/steps/database.ts';
import { hostStatus, parseHostStatus } from '../../core/steps/status.ts';
import { report, result, testEnv } from './status.helpers.ts';

const PASSWORD = 'Sup3r-s3cret-pw';
const env = testEnv({ env: { APP_DATABASE_URL: { secret: 'database_url' }, APP_MODE: 'live' } });

/** The probe's report lines for an environ holding `records` (NAME=VALUE), as the status step runs it. */
async function probe(records: string[], e = env): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ops-dbprobe-'));
  const environ = join(dir, 'environ');
  writeFileSync(environ, records.map((r) => `${r}\0`).join(''));
  // Not execFileSync: the servers below answer from this process's event loop.
  const { stdout: out } = await promisify(execFile)('bash', ['-c', `ops_report() { printf '%s\\n' "$2"; }\nwhile IFS= read -r line; do ops_report db_probe "$line"; done < <(${databaseProbeShell(e, JSON.stringify(environ))})`], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean);
}

let pg: Server;
let pgPort = 0;
let silent: Server;
let silentPort = 0;
const sockets: Socket[] = [];
beforeAll(async () => {
  // PostgreSQL's answer to an SSLRequest: one byte, N (no TLS here).
  pg = createServer((s) => s.once('data', () => s.end('N')));
  silent = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => pg.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  pgPort = (pg.address() as { port: number }).port;
  silentPort = (silent.address() as { port: number }).port;
});
afterAll(() => {
  sockets.forEach((s) => s.destroy());
  pg.close();
  silent.close();
});

describe('the database probe on the host', () => {
  it('names the variables that point at PostgreSQL, from the settings', () => {
    expect(databaseVariables(env)).toEqual(['APP_DATABASE_URL']);
    expect(databaseVariables(testEnv({ env: { DATABASE_URL: 'x', PGHOST: 'db', PGPORT: '5433', APP_DB_URI: 'y', DB_NAME: 'z' } }))).toEqual(['DATABASE_URL', 'PGHOST', 'PGPORT', 'APP_DB_URI']);
    // none: nothing probed, nothing run
    expect(databaseProbeShell(testEnv({ env: { APP_MODE: 'x' } }), '"$x"')).toBeUndefined();
  });

  it('says whether PostgreSQL answers at each address, never printing the password, user or database', async () => {
    const url = (port: number, host = '127.0.0.1') => `APP_DATABASE_URL=postgresql+asyncpg://shop_user:${encodeURIComponent(PASSWORD + '@/#')}@${host}:${port}/shop_db?ssl=prefer`;
    expect(await probe([url(pgPort)])).toEqual([`APP_DATABASE_URL\t127.0.0.1:${pgPort}\tanswers\t`]);
    const lines = [...(await probe([url(1)])), ...(await probe([url(pgPort, "no-such-host.invalid")])), ...(await probe([url(silentPort)]))];
    expect(lines[0]).toBe('APP_DATABASE_URL\t127.0.0.1:1\trefused\t');
    expect(lines[1]).toMatch(new RegExp(`^APP_DATABASE_URL\tno-such-host\\.invalid:${pgPort}\tunresolved\t.+`));
    expect(lines[2]).toBe(`APP_DATABASE_URL\t127.0.0.1:${silentPort}\ttimeout\t`);
    for (const l of lines) expect(l).not.toMatch(/Sup3r|shop_user|shop_db/);
  }, 20_000);

  it("follows libpq's forms: several hosts, host= and port= parameters, a Unix socket, PGHOST/PGPORT; an unreadable URL is said so", async () => {
    expect(await probe([`APP_DATABASE_URL=postgresql://u:p@127.0.0.1:${pgPort},127.0.0.1:1/db`])).toEqual([`APP_DATABASE_URL\t127.0.0.1:${pgPort}\tanswers\t`, 'APP_DATABASE_URL\t127.0.0.1:1\trefused\t']);
    expect(await probe([`APP_DATABASE_URL=postgresql://u:p@/db?host=/nonexistent-dir&port=5433`])).toEqual(['APP_DATABASE_URL\t/nonexistent-dir/.s.PGSQL.5433\trefused\tno socket']);
    expect(await probe(['APP_DATABASE_URL=postgresql://u:p@127.0.0.1:99999/db'])).toEqual(['APP_DATABASE_URL\t\tunreadable\tnot a URL with a valid host and port']);
    const pgvars = testEnv({ env: { PGHOST: '127.0.0.1', PGPORT: String(pgPort) } });
    expect(await probe(['PGHOST=127.0.0.1', `PGPORT=${pgPort}`], pgvars)).toEqual([`PGHOST\t127.0.0.1:${pgPort}\tanswers\t`]);
    // Not a PostgreSQL URL (another database's): not probed.
    expect(await probe(['APP_DATABASE_URL=mysql://u:p@127.0.0.1/db'])).toEqual([]);
  });

  it('runs in the status step only after a failed health check, from the live release', () => {
    const script = hostStatus(env).script;
    expect(script).toMatch(/if \[ "\$\{health_failed:-0\}" = 1 \] && \[ -n "\$cur" \]; then\n  db_release=/);
    expect(script).toMatch(/python3 -c '.*' "\$db_environ" APP_DATABASE_URL/s);
  });
});

describe('ops status with the database down', () => {
  const failed = { health: 'server:3579:/health: HTTP/1.1 503 Service Unavailable: database: connection refused' };
  const parse = (lines: string[]) => parseHostStatus(env, { name: 'web1', address: '192.0.2.1' }, result(report({ ...failed, db_probe: lines })));

  it('names the cause and what to check: refused, timed out, unresolved', () => {
    const refused = parse(['APP_DATABASE_URL\t10.0.0.5:5432\trefused\t']);
    expect(refused.problems).toContainEqual(expect.stringMatching(/^PostgreSQL at 10\.0\.0\.5:5432 \(APP_DATABASE_URL of the live release's \.env\) refused the connection: nothing listens there .*systemctl status postgresql/));
    expect(parse(['APP_DATABASE_URL\t10.0.0.5:5432\ttimeout\t']).problems).toContainEqual(expect.stringMatching(/PostgreSQL at 10\.0\.0\.5:5432 .* did not answer within 3s \(connection timed out\): the server is down or a firewall drops the traffic/));
    expect(parse(['APP_DATABASE_URL\tdb.internal:5432\tunresolved\tName or service not known']).problems).toContainEqual(expect.stringMatching(/the host name does not resolve on this host \(Name or service not known\)/));
    const screen = formatStatus({ environment: 'demo', url: '', healthy: false, hosts: [refused], problems: [], warnings: [] });
    expect(screen).toContain('    database    ✗ 10.0.0.5:5432 refused');
    // The job summary (status.yml's): the database in the host's row, not only among the problems below the table.
    const md = statusSummary({ environment: 'demo', url: '', healthy: false, hosts: [refused], problems: refused.problems, warnings: [] });
    const [head, , row] = md.split('\n').filter((l) => l.startsWith('|'));
    const cells = (l: string) => l.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
    expect(cells(row!)[cells(head!).indexOf('database')]).toBe('✗ 10.0.0.5:5432 refused');
    // Every line the terminal shows of a host has its column (supervisor's: its live programs).
    const labels = screen.split('\n').flatMap((l) => /^ {4}([a-z]+) +\S/.exec(l)?.[1] ?? []);
    expect(labels).toEqual(expect.arrayContaining(['release', 'nginx', 'database', 'health', 'disk', 'lock']));
    expect(cells(head!)).toEqual(expect.arrayContaining(labels.map((l) => (l === 'supervisor' ? 'programs (live)' : l))));
  });

  it('when it answers: a warning that the cause is past the connection (a password rotated, a role dropped)', () => {
    const s = parse(['APP_DATABASE_URL\t10.0.0.5:5432\tanswers\t']);
    expect(s.problems.some((p) => p.startsWith('PostgreSQL'))).toBe(false);
    expect(s.warnings).toContainEqual(expect.stringMatching(/^PostgreSQL at 10\.0\.0\.5:5432 answers from this host: .*a wrong password after a rotation/));
  });
});
