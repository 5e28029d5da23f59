// Day-2 steps and parsers without a host: the scripts are valid bash, the parts that can run here do run
// (certificate reading, log labelling and following), and the status parser turns reports into one line per
// problem. Operations run over recording remotes: one round trip per host, unreachable hosts reported.
import { certificatePaths } from '../../core/steps/nginx-config.ts';
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { Connector } from '../../core/context.ts';
import { certificates, formatCerts, renewCertificates } from '../../core/ops/certs.ts';
import { logsRequest } from '../../core/ops/logs.ts';
import { formatReleases, listReleases } from '../../core/ops/records.ts';
import { formatStatus, splitCommits, status, statusInterrupted, statusSummary } from '../../core/ops/status.ts';
import { RecordingRemote, type Responder } from '../../core/remote/recording.ts';
import { START_MARKER, scriptPrelude, scriptText } from '../../core/remote/wrap.ts';
import { formatPing, readFacts } from '../../core/ops/ping.ts';
import { MemoryReporter, plainValues } from '../../core/report.ts';
import { KEY, processXml, report, result, RUNNING, testEnv } from './status.helpers.ts';
import { LOCK_KEYS, lockStatus } from '../../core/steps/lock.ts';
import { PREVIOUS_RECORD, previousBackFunctions, probes, startSlot } from '../../core/steps/switch.ts';
import { CERTS_KEYS, listCertificates, parseCerts, renewalCheck, renewCertificate } from '../../core/steps/certs.ts';
import { logsStep } from '../../core/steps/logs.ts';
import { parseProcessInfo, programStates } from '../../core/steps/programs.ts';
import { failureDetail } from '../../core/remote/types.ts';
import { excerpt, healthReasons, healthShell, hostStatus, nginxMessages, LAST_RUN_SHOWN, nginxRouteShell, parseHostStatus, servedShell } from '../../core/steps/status.ts';
import { checkLog, upstreams } from '../../core/steps/nginx-config.ts';
import { quote } from '../../core/shell.ts';
import { createHash } from 'node:crypto';
import { writtenRecord } from '../../core/steps/script.ts';
import { issueCertificate, selfSignedCertificate } from '../../core/steps/tls.ts';
import { createServer } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { promisify } from 'node:util';
import { freePort, listening } from '../support/ports.ts';
import { waitFor } from '../hosts/proc.ts';
import { runOps } from '../support/cli.ts';
import { InputError, OpsError } from '../../core/errors.ts';
import { CERT_FUNCTIONS, LIBRARY_KEYS, MASK_FUNCTIONS, PROBE_FUNCTIONS, visitorAddress } from '../../core/steps/libraries.ts';
import { RELEASES_KEYS } from '../../core/steps/release-list.ts';
import { opsLines, type ReportText } from './reports.helpers.ts';
import { PROVISIONED_KEYS } from '../../core/steps/system.ts';

function bashSyntax(script: string): string {
  const r = spawnSync('bash', ['-n'], { input: script, encoding: 'utf8' });
  return r.status === 0 ? 'ok' : r.stderr;
}

describe('status step', () => {
  const env = testEnv();
  const step = hostStatus(env);

  it('is one read-only step, as root, quiet, valid bash, in every TLS mode', () => {
    expect(step).toMatchObject({ name: 'status', as: 'root', quiet: true });
    expect(bashSyntax(scriptText(step))).toBe('ok');
    for (const tls of [{ mode: 'self-signed' }, { mode: 'letsencrypt', email: 'ops@example.org' }]) {
      expect(bashSyntax(scriptText(hostStatus(testEnv({ domain: 'shop.example.org', tls }))))).toBe('ok');
    }
  });

  it("reuses the deploys' probes, the lock status script and supervisor's XML-RPC socket", () => {
    expect(step.script).toContain(PROBE_FUNCTIONS);
    expect(step.script).toContain(lockStatus(env).script);
    for (const slot of ['blue', 'green'] as const) expect(step.script).toContain(`wait_healthy 3 0.3 ${probes(env, slot).join(' ')}`);
    expect(step.script).toContain('rpc supervisor.getAllProcessInfo');
    expect(step.script).toContain('if xml=$(rpc supervisor.getAllProcessInfo 2>&1)'); // supervisorctl exits non-zero when a program is down
    expect(step.script).toContain('if out=$(nginx -t 2>&1)');
    // asked where the site's visitors arrive (visitorAddress), not at 127.0.0.1
    expect(step.script).toContain(`curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 5 http://"$gate_at"/`);
  });

  it('checks the certificate and fetches the site over TLS when TLS is on', () => {
    const tls = hostStatus(testEnv({ domain: 'shop.example.org', tls: { mode: 'self-signed' } }));
    expect(tls.script).toContain('cert_info /etc/ssl/shop/shop.example.org.crt');
    expect(tls.script).toContain('-k --resolve shop.example.org:443:"$gate_at" https://shop.example.org/');
    expect(tls.script).toContain('--resolve shop.example.org:443:"$gate_at" https://shop.example.org/.ops/slot');
    expect(step.script).not.toContain('cert_info /');
  });
});

describe('status parser', () => {
  const env = testEnv();
  const parse = (o: Record<string, string | string[] | undefined> = {}) => parseHostStatus(env, { name: 'web1', address: '192.0.2.1' }, result(report(o)));

  it('a healthy host: release, programs with uptimes, health, disk, lock; no problem', () => {
    const s = parse();
    expect(s.problems).toEqual([]);
    expect(s.warnings).toEqual([]);
    expect(s.release).toMatchObject({ id: '20261125T140000Z-0123456789ab', ref: 'v2', actor: 'alice@laptop' });
    expect(s.supervisor!.programs.map((p) => `${p.program} ${p.slot} ${p.live} ${p.state} ${p.seconds}`)).toEqual([
      'server blue true RUNNING 3600',
      'client blue true RUNNING 3600',
      'server green false RUNNING 3600',
      'client green false RUNNING 3600',
    ]);
    expect(s.health).toEqual([
      { program: 'server', ok: true, detail: 'ok' },
      { program: 'client', ok: true, detail: 'ok' },
    ]);
    expect(s.disk).toEqual([{ mount: '/', freeMb: 19531, sizeMb: 39063, usedPercent: 50 }]);
    expect(s.lock!.state).toBe('free');
  });

  it('a live program supervisor started again since its release\'s start (a crash after its health check passed): a problem in its first minute, a warning for ten; its first start (within 5 s of its slot\'s file\'s time, touched as it starts) or one just after supervisord\'s own start is none', () => {
    const at = (start: number, now: number) =>
      processXml([
        { name: 'shop-blue-server', group: 'shop-blue', state: 'RUNNING', pid: 211, start, now },
        { name: 'shop-blue-client', group: 'shop-blue', state: 'RUNNING', pid: 216, start: 1002, now },
      ]);
    const loop = parse({ supervisor_xml: at(2000, 2008), live_started: '1000 500' });
    expect(loop.problems).toEqual([
      'program server (live slot blue, pid 211) was started again 8s ago, 1000s after its release\'s start, supervisor\'s log does not say why (a restart by hand reads the same for 10 minutes): it exits and supervisor restarts it (a crash after its health check passed, at start: see ops logs demo)',
    ]);
    // supervisord's log says how it last ended (supervisor/process.py, finish): on its own, or asked to (by hand).
    const crashed = parse({
      supervisor_xml: at(2000, 2008),
      live_started: '1000 500',
      live_ended: ['server\t2026-12-03 12:00:00,001 INFO stopped: shop-blue-server (terminated by SIGTERM)', 'server\t2026-12-03 12:30:00,416 WARN exited: shop-blue-server (exit status 1; not expected)', 'client\t2026-12-03 12:00:00,002 INFO stopped: shop-blue-client (exit status 0)'],
    });
    expect(crashed.problems).toEqual([
      'program server (live slot blue, pid 211) was started again 8s ago, 1000s after its release\'s start, after its process exited (supervisor: exit status 1; not expected): it exits and supervisor restarts it (a crash after its health check passed, at start: see ops logs demo)',
    ]);
    const byHand = parse({
      supervisor_xml: at(2000, 2008),
      live_started: '1000 500',
      live_ended: ['server\t2026-12-03 12:30:00,416 WARN exited: shop-blue-server (exit status 1; not expected)', 'server\t2026-12-03 12:40:00,001 INFO stopped: shop-blue-server (terminated by SIGTERM)'],
    });
    expect(byHand.problems).toEqual([]);
    expect(byHand.warnings).toEqual([]);
    expect(parse({ supervisor_xml: at(2000, 2300), live_started: '1000 500' }).warnings).toEqual([expect.stringMatching(/^program server \(live slot blue, pid 211\) was started again 300s ago/)]);
    for (const quiet of [parse({ supervisor_xml: at(2000, 2700), live_started: '1000 500' }), parse({ supervisor_xml: at(1004, 1010), live_started: '1000 500' }), parse({ supervisor_xml: at(2000, 2008), live_started: '1000 1997' }), parse({ supervisor_xml: at(2000, 2008) })]) {
      expect(quiet.problems).toEqual([]);
      expect(quiet.warnings).toEqual([]);
    }
  });

  it('a stopped program fails, naming the program, its slot and its state, and the commands that say why and start it again', () => {
    const xml = processXml([
      { name: 'shop-blue-server', group: 'shop-blue', state: 'STOPPED', stop: 4000, description: 'Nov 25 03:08 PM' },
      { name: 'shop-blue-client', group: 'shop-blue', state: 'RUNNING', pid: 216 },
    ]);
    const s = parse({ supervisor_xml: xml, health: 'no healthy answer within 3s from server:3579:/health' });
    expect(s.problems).toEqual(['program server (live slot blue) is STOPPED (why: ops logs demo server; then ops deploy demo --ref 0123456789abcdef0123456789abcdef01234567 --force starts the live commit again, or ops rollback demo goes back)', 'health check of server failed: no 2xx answer on 127.0.0.1:3579/health within 3s']);
    expect(s.supervisor!.programs[0]).toMatchObject({ state: 'STOPPED', seconds: 600, description: '' });
  });

  it('a program supervisor gave up on shows why; the previous slot only warns', () => {
    const xml = processXml([
      { name: 'shop-blue-server', group: 'shop-blue', state: 'FATAL', description: 'Exited too quickly (process log may have details)' },
      { name: 'shop-blue-client', group: 'shop-blue', state: 'RUNNING' },
      { name: 'shop-green-client', group: 'shop-green', state: 'BACKOFF', spawnerr: "can't find command 'node'" },
    ]);
    const s = parse({ supervisor_xml: xml });
    expect(s.problems).toEqual(['program server (live slot blue) is FATAL: Exited too quickly (process log may have details) (why: ops logs demo server; then ops deploy demo --ref 0123456789abcdef0123456789abcdef01234567 --force starts the live commit again, or ops rollback demo goes back)']);
    expect(s.warnings).toEqual(["program client of the previous release (slot green) is BACKOFF: a rollback would restart it"]);
    const missing = parse({ supervisor_xml: processXml([{ name: 'shop-blue-client', group: 'shop-blue', state: 'RUNNING' }]) });
    expect(missing.problems).toEqual(['program server of the live slot (blue) is not loaded in supervisor (why: ops logs demo server; then ops deploy demo --ref 0123456789abcdef0123456789abcdef01234567 --force starts the live commit again, or ops rollback demo goes back)']);
  });

  it("the fix that starts the live release again deploys the live commit by its sha (without --ref a deploy takes the environment's default ref, not what a rollback left live); from the release's id when its release.json is unreadable", () => {
    const xml = processXml([
      { name: 'shop-blue-server', group: 'shop-blue', state: 'STOPPED', stop: 4000 },
      { name: 'shop-blue-client', group: 'shop-blue', state: 'RUNNING', pid: 216 },
    ]);
    const rolledBack = parse({ supervisor_xml: xml, release_json: JSON.stringify({ sha: 'a'.repeat(40), ref: 'v1' }) });
    expect(rolledBack.problems[0]).toContain(`then ops deploy demo --ref ${'a'.repeat(40)} --force starts the live commit again`);
    expect(parse({ supervisor_xml: xml, release_json: '{"sha": "01' }).problems).toContainEqual(expect.stringContaining('then ops deploy demo --ref 0123456789ab --force starts the live commit again'));
  });

  it('the previous slot stopped (a rollback would start it cold) or its port taken by a foreign process: warnings, not problems', () => {
    const xml = processXml([
      { name: 'shop-blue-server', group: 'shop-blue', state: 'RUNNING', pid: 211 },
      { name: 'shop-blue-client', group: 'shop-blue', state: 'RUNNING', pid: 216 },
      { name: 'shop-green-server', group: 'shop-green', state: 'STOPPED', stop: 4000, description: 'Nov 25 03:08 PM' },
      { name: 'shop-green-client', group: 'shop-green', state: 'RUNNING', pid: 301 },
    ]);
    const green = env.port('server', 'green');
    const s = parse({ supervisor_xml: xml, listener: `green\tserver\t999\tother\t\t/tmp\tpython3 -m http.server ${green}` });
    expect(s.problems).toEqual([]);
    expect(s.warnings).toEqual([
      'program server of the previous release (slot green) is STOPPED: a rollback would have to start it cold (it is not kept warm)',
      `port ${green} of server (previous slot green) is answered by pid 999 (python3 -m http.server ${green}) running an unknown release, which supervisor did not start for it: a rollback or the next deploy (both use slot green) would find the port taken`,
    ]);
    // What our own programs left there outside supervisor (report_slot's own): the next start stops it, said as such.
    const own = parse({ supervisor_xml: xml, listener: `green\tserver\t998\town\t\t/srv/shop/releases/20261001T000000Z-bbbbbbbbbbbb\tnode server.js ${green} daemon` });
    expect(own.warnings.at(-1)).toBe(
      `port ${green} of server (previous slot green) is held by pid 998 (node server.js ${green} daemon) running 20261001T000000Z-bbbbbbbbbbbb, which a program of this environment left running outside supervisor: the next deploy or rollback on slot green stops it first`,
    );
    expect(own.warnings.join('\n')).not.toContain('would find the port taken');
    // A socket ss names no process for (report_slot: pid 0) is said as such.
    const client = env.port('client', 'green');
    expect(parse({ listener: `green\tclient\t0\tother\t\t\t` }).warnings).toEqual([
      `port ${client} of client (previous slot green) is answered by a listening socket ss names no process for, which supervisor did not start for it: a rollback or the next deploy (both use slot green) would find the port taken`,
    ]);
    // With switch.keep_previous false the previous slot is stopped on purpose after each switch: nothing to say.
    const cold = testEnv({ switch: { keep_previous: false } });
    expect(parseHostStatus(cold, { name: 'web1', address: '192.0.2.1' }, result(report({ supervisor_xml: xml }))).warnings).toEqual([]);
  });

  it('the previous slot empty, or running a release that never went live (an interrupted start), while a rollback has a release to go to: a warning each', () => {
    const live = processXml([
      { name: 'shop-blue-server', group: 'shop-blue', state: 'RUNNING', pid: 211 },
      { name: 'shop-blue-client', group: 'shop-blue', state: 'RUNNING', pid: 216 },
    ]);
    const previous = '20261124T100000Z-aaaaaaaaaaaa';
    expect(parse({ supervisor_xml: live, rollback_to: previous }).warnings).toEqual([
      `no release is kept warm on the previous slot (green: no program of it is loaded in supervisor): a rollback to ${previous} would start it cold (a failed start that could not start it again, or a run interrupted during its start, leaves the slot so; the next good deploy keeps the release it replaces warm again)`,
    ]);
    // Nothing to go back to (a first deploy): an empty previous slot is as it should be.
    expect(parse({ supervisor_xml: live, rollback_to: '' }).warnings).toEqual([]);
    const stray = '20261125T150000Z-bbbbbbbbbbbb';
    const procs = [`green\tserver\t300\t${stray}\t/srv/shop/releases/${stray}\tuvicorn`, `green\tclient\t301\t${stray}\t/srv/shop/releases/${stray}\tnode`];
    expect(parse({ proc: procs, rollback_to: previous, never_live: `${stray} ` }).warnings).toEqual([
      `the previous slot (green) runs ${stray}, a release that never went live (a deploy interrupted during its start leaves it running): a rollback would go to ${previous} and start it cold there; the next ops deploy demo (or ops rollback demo) stops it before it starts there, with what it left running outside supervisor (supervisorctl stop would leave a program that daemonised running)`,
    ]);
    // Never `supervisorctl stop` (it leaves a program that daemonised running): the ops command that stops a slot the
    // one way (slotDown), by the lock: a stale one's release stops what its gone run started; a live run's own end does.
    const fixOf = (lock: string) => parse({ proc: procs, rollback_to: previous, never_live: `${stray} `, lock, holder: ['operation=deploy', 'actor=bob', 'since=2026-11-25T15:00:00Z'] }).warnings.find((w) => w.startsWith('the previous slot'))!;
    expect(fixOf('stale')).toMatch(/; ops lock release demo stops it and puts back the release the slot held before \(the run that started it is gone\)$/);
    expect(fixOf('held')).toMatch(/; the run holding the lock stops it when it ends, unless it puts it live$/);
    for (const lock of ['free', 'stale', 'held']) expect(fixOf(lock)).not.toContain('supervisorctl stop \'');
    // A release rolled back from went live once: the slot runs it after every rollback, as expected.
    expect(parse({ proc: procs, rollback_to: previous, never_live: '' }).warnings).toEqual([]);
    // With switch.keep_previous false the previous slot is stopped on purpose: nothing to say.
    const cold = testEnv({ switch: { keep_previous: false } });
    expect(parseHostStatus(cold, { name: 'web1', address: '192.0.2.1' }, result(report({ supervisor_xml: live, rollback_to: previous }))).warnings).toEqual([]);
  });

  it('the last run here failed (the audit log\'s last line): a warning saying which, by whom, when and why, cut short and masked; a success or no-op says nothing', () => {
    const line = (entry: Record<string, string>) => JSON.stringify({ time: '2026-11-25T14:30:00.000Z', environment: 'test', operation: 'deploy', actor: 'bob', ...entry });
    const why = `step "migrate" on web1 failed with exit code 1: psycopg.errors.UndefinedTable: relation "orders" does not exist; password=hunter2 ${'x'.repeat(300)}`;
    const s = parse({ last_run: line({ result: 'failed', release: '20261125T143000Z-abcdefabcdef', message: why }) });
    expect(s.problems).toEqual([]);
    expect(s.lastRun).toMatchObject({ operation: 'deploy', result: 'failed', message: why });
    expect(s.warnings).toHaveLength(1);
    expect(s.warnings[0]).toMatch(new RegExp(String.raw`^the last run here failed: deploy by bob at 2026-11-25T14:30:00\.000Z: step "migrate" on web1 failed with exit code 1: psycopg\.errors\.UndefinedTable: relation "orders" does not exist; password=\*\*\*… \(ops audit ${env.name} has it whole\)$`));
    // The cut fell in the long word after the mask: that word is dropped whole (oneLine).
    expect(s.warnings[0]!.split(': ').slice(2).join(': ').replace(/ \(ops audit.*$/, '').length).toBeLessThanOrEqual(LAST_RUN_SHOWN);
    expect(parse({ last_run: line({ result: 'success' }) }).warnings).toEqual([]);
    expect(parse({ last_run: line({ result: 'no-op', message: 'already live' }) }).warnings).toEqual([]);
    expect(parse({ last_run: 'cut short by a full disk {"time' }).warnings).toEqual([]);
    // The last lines read (oldest first): a last one torn by a full disk, or a line edited by hand, hides no run.
    const failed = line({ result: 'failed', message: 'migration failed' });
    for (const after of ['{"time":"2026-11-25T14:31', '# checked by hand, all fine', '']) {
      const t = parse({ last_run: [line({ result: 'success' }), failed, after] });
      expect(t.lastRun).toMatchObject({ result: 'failed', message: 'migration failed' });
      expect(t.warnings).toEqual([expect.stringMatching(/^the last run here failed: deploy by bob at .*: migration failed /)]);
    }
    expect(parse({ last_run: [failed, line({ result: 'success' }), 'torn {"ti'] }).warnings).toEqual([]);
  });

  it("a broken nginx configuration fails with nginx's own message", () => {
    const s = parse({
      nginx_config: 'invalid',
      nginx_test: ['nginx: [emerg] unknown directive "no_such_directive" in /etc/nginx/sites-enabled/broken:3', 'nginx: configuration file /etc/nginx/nginx.conf test failed'],
    });
    expect(s.problems).toEqual(['nginx configuration is invalid (nginx -t): [emerg] unknown directive "no_such_directive" in /etc/nginx/sites-enabled/broken:3 — nginx keeps serving its last valid configuration, but a reload or restart will fail']);
    expect(nginxMessages(['2026/11/25 15:04:49 [emerg] 533#533: unexpected end of file, expecting "}" in /etc/nginx/sites-enabled/b:2'])).toEqual(['[emerg] unexpected end of file, expecting "}" in /etc/nginx/sites-enabled/b:2']);
    expect(parse({ nginx: 'stopped enabled', nginx_config: 'invalid', nginx_test: 'nginx: [emerg] x' }).problems).toEqual([
      "nginx is not running: the site is down (sudo systemctl start nginx; the next deploy's switch starts it too, saying so)",
      'nginx configuration is invalid (nginx -t): [emerg] x — nginx cannot start until it is fixed',
    ]);
  });

  it("another nginx file sending requests to a slot's port itself: a problem naming file, line and whose port, with the fix (a deploy refuses it)", () => {
    const port = env.port(Object.keys(env.config.programs)[0]!, 'blue');
    const s = parse({ nginx_slot_port: `/etc/nginx/sites-enabled/api:5:     proxy_pass http://127.0.0.1:${port};` });
    expect(s.problems).toHaveLength(1);
    expect(s.problems[0]).toMatch(new RegExp(`^nginx on web1 reads a file besides ${env.config.app}'s site that sends requests to a slot's port itself, /etc/nginx/sites-enabled/api:5: 127\\.0\\.0\\.1:${port} \\(program \\w+'s port on slot blue\\): .*; deploys refuse until it is fixed \\(fix: name the upstreams instead in /etc/nginx/sites-enabled/api `));
    expect(parse({}).problems).toEqual([]);
  });

  it("one of the site's names another nginx file gives a server block first (name_taken): a problem naming it, with the fix; the status step asks nginx -T once", () => {
    const taken = "www.example.org (aliases[0]) is a server_name of /etc/nginx/sites-enabled/00-www, which nginx loads before shop's site";
    expect(parse({ name_taken: taken }).problems).toEqual([`${taken} (fix: remove that server block or the name from its server_name, reload nginx; deploys refuse until then)`]);
    const script = hostStatus(env).script;
    expect(script.match(/\$\(nginx -T/g)).toHaveLength(1);
    expect(script).toContain('ops_report name_taken "$names_taken"');
  });

  it('nginx stopped: a problem that says what a deploy does about it (starts it, saying so; refuses while the unit is masked)', () => {
    expect(parse({ nginx: 'stopped enabled' }).problems).toEqual(["nginx is not running: the site is down (sudo systemctl start nginx; the next deploy's switch starts it too, saying so)"]);
    expect(parse({ nginx: 'stopped disabled' }).problems).toEqual(["nginx is not running: the site is down (sudo systemctl start nginx; the next deploy's switch starts it too, saying so); it is not enabled at boot either (ops provision enables it)"]);
    expect(parse({ nginx: 'stopped masked' }).problems).toEqual(['nginx is not running, and its unit is masked: the site is down, and deploys and rollbacks refuse until it may run (sudo systemctl unmask nginx && sudo systemctl start nginx)']);
    expect(parse({ nginx: 'stopped masked-runtime' }).problems).toEqual(['nginx is not running, and its unit is masked: the site is down, and deploys and rollbacks refuse until it may run (sudo systemctl unmask --runtime nginx && sudo systemctl start nginx)']);
    // An older status step said "stopped" alone.
    expect(parse({ nginx: 'stopped' }).nginx!.running).toBe(false);
  });

  it('nginx running without its pid file (or with a stale one): running, from its master, and a warning naming the pid file', () => {
    const s = parse({ nginx_pidfile: 'missing 4242' });
    expect(s.nginx!.running).toBe(true);
    expect(s.problems).toEqual([]);
    expect(s.warnings).toEqual(['nginx runs (master pid 4242), but its pid file /run/nginx.pid is missing: systemctl reload/stop nginx and nginx -s do not reach it (the next deploy writes it back)']);
    expect(parse({ nginx_pidfile: 'stale 4242' }).warnings).toEqual(['nginx runs (master pid 4242), but its pid file /run/nginx.pid names another process: systemctl reload/stop nginx and nginx -s do not reach it (the next deploy writes it back)']);
  });

  it("a file ops writes whole changed on the host since (host_changed): a warning naming it, what replaces it and when, and where the backup goes; not a problem", () => {
    const s = parse({ host_changed: ['/etc/nginx/sites-available/shop', '/etc/supervisor/conf.d/shop-blue.conf'] });
    expect(s.problems).toEqual([]);
    expect(s.warnings).toEqual([
      "/etc/nginx/sites-available/shop was changed on this host since ops wrote it: it serves as changed until the next provision or deploy, which replaces it, keeping what it holds in /var/backups/ops-pipeline/etc/nginx/sites-available/shop.<time> (make the change in the environment's settings to keep it)",
      "/etc/supervisor/conf.d/shop-blue.conf was changed on this host since ops wrote it: it serves as changed until the next start of a release on that slot (deploy, rollback), which replaces it, keeping what it holds in /var/backups/ops-pipeline/etc/supervisor/conf.d/shop-blue.conf.<time> (make the change in the environment's settings to keep it)",
    ]);
    expect(hostStatus(env).script).toContain("ops_report host_changed /etc/nginx/sites-available/shop");
  });

  it('a lock held by a live run is shown and warned about, not a problem (a deploy under way); a stale lock fails, naming the run', () => {
    const held = parse({ lock: 'held', holder: ['operation=deploy', 'actor=bob@ci', 'since=2026-11-25T14:59:00Z', 'holder_pid=12'] });
    expect(held.problems).toEqual([]);
    expect(held.warnings).toEqual(['locked by a deploy run by bob@ci, started 2026-11-25T14:59:00Z: an operation is under way (what this status read may be mid-change)']);
    expect(held.lock).toMatchObject({ state: 'held', holder: { operation: 'deploy', actor: 'bob@ci' } });
    const stale = parse({ lock: 'stale', holder: ['operation=deploy', 'actor=bob@ci', 'since=x'] });
    expect(stale.problems[0]).toMatch(/^stale lock left by a deploy run by bob@ci, started x, which is gone \(ops lock release demo stops what it left running and frees it\)$/);
    // Why it reads gone when its holder pid may be a live process: the host rebooted, or its connection went silent.
    expect(parse({ lock: 'stale', holder: ['operation=deploy', 'actor=bob@ci', 'since=x', 'rebooted=yes'] }).problems[0]).toBe('stale lock left by a deploy run by bob@ci, started x, which is gone (the host has rebooted since it was taken) (ops lock release demo stops what it left running and frees it)');
  });

  it('nginx or supervisor running but not started at the next boot: a warning each, with the fix; stopped: said in its problem', () => {
    const boot = (nginx: string, supervisor: string) => ({ boot_unit: [`nginx ${nginx}`, `supervisor ${supervisor}`] });
    expect(parse(boot('enabled', 'enabled')).warnings).toEqual([]);
    expect(parse(boot('enabled', 'alias')).warnings).toEqual([]);
    expect(parse(boot('disabled', 'enabled-runtime')).warnings).toEqual([
      'nginx runs, but is not enabled at boot (systemctl is-enabled nginx: disabled): after the next reboot nginx is not running and the site is down (sudo systemctl enable nginx, or run: ops provision demo)',
      'supervisor runs, but is not enabled at boot (systemctl is-enabled supervisor: enabled-runtime): after the next reboot supervisor is not running and no program of shop runs (the site answers 502) (sudo systemctl enable supervisor, or run: ops provision demo)',
    ]);
    // Stopped (as after that reboot): the problems say it, once each; the visitors get nothing, not the live release.
    const down = parse({ ...boot('disabled', 'disabled'), nginx: 'stopped disabled', site: '000', supervisor: 'supervisor does not answer on /var/run/supervisor.sock (is it running?)', supervisor_xml: undefined, served_url: 'http://192.0.2.1', served_proof: '1' });
    expect(down.warnings).toEqual([]);
    expect(down.problems).toContain('supervisor does not answer on /var/run/supervisor.sock (is it running?): no program of shop runs, and deploys and rollbacks refuse until it does (sudo systemctl start supervisor); it is not enabled at boot either (sudo systemctl enable supervisor, or run: ops provision demo)');
    expect(down.problems.filter((p) => p.includes('not enabled at boot'))).toHaveLength(2);
    expect(down.served).toMatchObject({ ok: false });
    expect(parse({ served_url: 'http://192.0.2.1', served_proof: '1' }).served).toMatchObject({ ok: true });
  });

  it('502 through nginx, supervisor down, nothing deployed, not provisioned, a full disk', () => {
    expect(parse({ site: '502' }).problems).toEqual(['the site answers 502 through nginx (http://127.0.0.1/)']);
    expect(parse({ site: '000' }).problems).toEqual(['the site does not answer through nginx (http://127.0.0.1/)']);
    expect(parse({ supervisor: 'curl: (7) Failed to connect to localhost port 80', supervisor_xml: undefined }).problems).toEqual(['supervisor does not answer on its socket: curl: (7) Failed to connect to localhost port 80: no program of shop runs, and deploys and rollbacks refuse until it does (sudo systemctl start supervisor)']);
    // the script reports rpc_error's words (core/steps/sh/supervisor.sh), which name the socket: said once, no markup
    expect(hostStatus(testEnv()).script).toContain('ops_report supervisor "$(rpc_error "$xml")"');
    expect(parse({ supervisor: 'supervisor does not answer on /var/run/supervisor.sock (is it running?)', supervisor_xml: undefined }).problems).toEqual(['supervisor does not answer on /var/run/supervisor.sock (is it running?): no program of shop runs, and deploys and rollbacks refuse until it does (sudo systemctl start supervisor)']);
    expect(parse({ current: '', release_json: undefined, slot: '', health: undefined, site: '404' }).problems).toEqual(['no release is live (run: ops deploy demo)']);
    expect(parse({ provisioned: 'no', current: '', slot: '', health: undefined, site: '000' }).problems).toEqual(['not provisioned for demo (run: ops provision demo)']);
    expect(parse({ disk: '/ 100000 40000000' }).problems).toEqual(['disk / is nearly full: 98 MB free (100% used)']);
    expect(parse({ disk: '/ 3000000 40000000' }).warnings).toEqual(['disk / is 93% used (2930 MB free)']);
  });

  it("one disk line per mount, though df's lines for / and base_dir on one filesystem differ (written to between them)", () => {
    expect(parse({ disk: ['/ 20000000 40000000', '/ 19999000 40000000'] }).disk).toEqual([{ mount: '/', freeMb: 19531, sizeMb: 39063, usedPercent: 50 }]);
  });

  it('a live release with an unreadable release.json: shown by id with a warning, not a crash', () => {
    const r = parse({ release_json: '{"sha": "01234' });
    expect(r.release).toEqual({ id: '20261125T140000Z-0123456789ab', sha: '', ref: '', time: '', actor: '', run: '' });
    expect(r.warnings).toContain('release 20261125T140000Z-0123456789ab has an unreadable release.json');
    expect(r.problems).toEqual([]);
  });

  it('ops releases lists every release by its directory, most recently live first, and says why each is kept', async () => {
    const env = testEnv({ release: { keep: 2, keep_failed: 1 } });
    const a = '20261125T130000Z-aaaaaaaaaaaa';
    const b = '20261125T133000Z-bbbbbbbbbbbb';
    const c = '20261125T140000Z-cccccccccccc';
    const d = '20250101T000000Z-dddddddddddd'; // made by a runner whose clock was far behind: live last all the same
    const e = '20261125T150000Z-eeeeeeeeeeee';
    const stdout = opsLines(
      { ...RELEASES_KEYS, ...LIBRARY_KEYS },
      `current ${d}`,
      'slot green',
      `release ${a} ${'a'.repeat(40)} ok 1 1`,
      `release ${b} ${'b'.repeat(40)} failed - 2`,
      `release ${c} ${'c'.repeat(40)} ok 3 3`,
      `release ${d} ${'d'.repeat(40)} ok 5 5`,
      `release ${e} ${'e'.repeat(40)} failed - 4`,
      `slot_release blue ${a}`,
      `slot_release green ${d}`,
      `release_json ${a} ${JSON.stringify({ id: 'x', sha: 'a'.repeat(40), ref: 'v1', time: 't1', actor: 'alice', run: '' })}`,
      `release_json ${b} {"sha": "bb`,
      `release_json ${d} ${JSON.stringify({ sha: 'd'.repeat(40), ref: 'v2 with spaces', time: 't2', actor: 'bob', run: 'https://ci/1' })}`,
    );
    const connector: Connector = async (_e, host) => new RecordingRemote(host.name, 'deploy', 'shop', (step) => (step.name === 'releases' ? { stdout } : {}));
    const [host] = await listReleases({ root: env.root, reporter: new MemoryReporter(), processEnv: {}, connector }, env);
    expect(host!.releases.map((r) => [r.id, r.status, r.kept])).toEqual([
      [d, 'current', 'live (1 of keep 2)'],
      [c, 'ok', 'good: 2 of keep 2'],
      [a, 'ok', 'warm on slot blue'],
      [e, 'failed', 'failed: 1 of keep_failed 1, for inspection'],
      [b, 'failed', undefined],
    ]);
    expect(host!.releases[0]).toMatchObject({ sha: 'd'.repeat(40), ref: 'v2 with spaces', actor: 'bob', run: 'https://ci/1', liveSeq: 5 });
    expect(host!.releases[4]).toMatchObject({ sha: '', unreadable: true });
    expect(formatReleases([{ host: 'web1', releases: host!.releases }])).toMatch(/\* 20250101T000000Z-dddddddddddd .* — kept: live[\s\S]*20261125T133000Z-bbbbbbbbbbbb .*\[failed\]  — pruned by the next deploy/);
  });

  it('certificates: expired or about to fail; late renewals and a stale nginx only warn', () => {
    const tlsEnv = testEnv({ domain: 'shop.example.org', tls: { mode: 'self-signed' } });
    const path = '/etc/ssl/shop/shop.example.org.crt';
    const cert = (notAfter: string, served = 'AB12') =>
      parseHostStatus(tlsEnv, { name: 'web1', address: 'a' }, result(report({ site: '200', cert: [`${path}\tnotAfter=${notAfter}`, `${path}\tserial=AB12`, `${path}\tDNS:shop.example.org`], served_serial: served })));
    expect(cert('Dec 30 12:00:00 2026 GMT').problems).toEqual([]);
    expect(cert('Dec 30 12:00:00 2026 GMT').certificate).toMatchObject({ daysLeft: 34, names: ['shop.example.org'], serial: 'AB12', servedSerial: 'AB12' });
    expect(cert('Dec 10 12:00:00 2026 GMT').warnings).toEqual(['TLS certificate expires in 14 days (2026-12-10): it should have been renewed by now (ops certs demo --renew)']);
    expect(cert('Nov 28 12:00:00 2026 GMT').problems).toEqual(['TLS certificate expires in 2 days (2026-11-28): renewal is failing (ops certs demo --renew)']);
    expect(cert('Nov 20 12:00:00 2026 GMT').problems).toEqual(['TLS certificate expired on 2026-11-20: browsers refuse the site; renewal is failing: ops certs demo --renew']);
    expect(cert('Dec 30 12:00:00 2026 GMT', 'FF00').warnings).toEqual([`nginx serves another certificate (serial FF00) than ${path} (serial AB12) where the site's visitors are: reload nginx; if it still does, another server block takes the site's https visitors: one listening on the host's address itself (listen <address>:443) or naming the domain in a file loaded first (nginx -T shows them): remove it or its listen/server_name`]);
    const missing = parseHostStatus(tlsEnv, { name: 'web1', address: 'a' }, result(report({ cert: `${path}\tmissing` })));
    expect(missing.problems).toEqual([`TLS certificate ${path} is missing: nginx cannot serve the site over https with it (ops provision demo gets one)`]);
  });

  it("certificates: certbot's renewal timer stopped or not coming back after a reboot says the certificate will not renew, with the fix; a certificate not naming the domain (the domain changed, a lineage reused) is a problem", () => {
    const leEnv = testEnv({ domain: 'shop.example.org', tls: { mode: 'letsencrypt', email: 'ops@example.org' } });
    const path = '/etc/letsencrypt/live/shop.example.org/fullchain.pem';
    const judged = (notAfter: string, renewal: string | undefined, names = ['shop.example.org']) =>
      parseHostStatus(leEnv, { name: 'web1', address: 'a' }, result(report({ site: '200', cert: [`${path}\tnotAfter=${notAfter}`, `${path}\tserial=AB12`, ...names.map((n) => `${path}\tDNS:${n}`)], served_serial: 'AB12' }) + (renewal === undefined ? '' : `\n${opsLines(CERTS_KEYS, `renewal ${renewal}`)}`)));
    expect(hostStatus(leEnv).script).toContain('systemctl is-enabled certbot.timer');
    // the timer running and enabled: nothing said
    expect(judged('Feb 20 12:00:00 2027 GMT', 'certbot.timer active enabled')).toMatchObject({ problems: [], warnings: [] });
    const fix = 'sudo systemctl enable --now certbot.timer; ops provision does it too';
    expect(judged('Feb 20 12:00:00 2027 GMT', 'certbot.timer inactive disabled').warnings).toEqual([`certbot's renewal timer is not running (certbot.timer inactive): the certificate (86 days left, 2027-02-20) will not be renewed; ${fix}`]);
    expect(judged('Feb 20 12:00:00 2027 GMT', 'certbot.timer active disabled').warnings).toEqual([`certbot's renewal timer stops at the next reboot (certbot.timer disabled): the certificate (86 days left, 2027-02-20) will not be renewed; ${fix}`]);
    expect(judged('Feb 20 12:00:00 2027 GMT', 'none').warnings).toEqual([`certbot's renewal is not scheduled (no certbot.timer, no /etc/cron.d/certbot): the certificate (86 days left, 2027-02-20) will not be renewed; ops provision sets it up`]);
    // five days left with the timer off: the cause named, not "renewal is failing"
    expect(judged('Nov 30 16:00:00 2026 GMT', 'certbot.timer inactive disabled').problems).toEqual([`TLS certificate expires in 5 days (2026-11-30): certbot's renewal timer is not running (certbot.timer inactive) (${fix}), so nothing renews it (ops certs demo --renew)`]);
    expect(judged('Nov 20 12:00:00 2026 GMT', 'certbot.timer inactive masked').problems).toEqual([`TLS certificate expired on 2026-11-20: browsers refuse the site; certbot's renewal timer is not running (certbot.timer inactive) (${fix}), so nothing renews it: ops certs demo --renew`]);
    // names: the domain, a wildcard over it, or another name
    expect(judged('Feb 20 12:00:00 2027 GMT', undefined, ['*.example.org']).problems).toEqual([]);
    expect(judged('Feb 20 12:00:00 2027 GMT', undefined, ['*.shop.example.org', 'www.shop.example.org']).problems).toEqual([`TLS certificate ${path} names *.shop.example.org, www.shop.example.org, not shop.example.org: browsers refuse the site as another's; ops certs demo --renew gets one for shop.example.org`]);
    expect(judged('Feb 20 12:00:00 2027 GMT', undefined, ['old.example.org']).problems).toHaveLength(1);
  });

  it("certificates: a renewal scheduled but bound to fail (the HTTP-01 path answered by a site template or a redirect, certbot.service's last run failed) is said with its cause and fix, a problem once the certificate is due", () => {
    const leEnv = testEnv({ domain: 'shop.example.org', tls: { mode: 'letsencrypt', email: 'ops@example.org' }, nginx: { site_template: 'site.conf' } });
    const path = '/etc/letsencrypt/live/shop.example.org/fullchain.pem';
    const judged = (notAfter: string, ...renewal: ReportText<typeof CERTS_KEYS>[]) =>
      parseHostStatus(leEnv, { name: 'web1', address: 'a' }, result(report({ site: '200', cert: [`${path}\tnotAfter=${notAfter}`, `${path}\tserial=AB12`, `${path}\tDNS:shop.example.org`], served_serial: 'AB12' }) + `\n${opsLines(CERTS_KEYS, 'renewal certbot.timer active enabled', ...renewal)}`));
    expect(hostStatus(leEnv).script).toContain('rn_names=(shop.example.org)\nfor rn_name in "${rn_names[@]}"; do\n  rn_one=$(acme_path_problem "$rn_name" /var/www/letsencrypt "$gate_at")');
    expect(hostStatus(leEnv).script).toContain('systemctl show certbot.service -p Result --value');
    // all well: nothing said (a timer that never ran yet reports success and no time)
    expect(judged('Feb 20 12:00:00 2027 GMT', 'renewal_path ', 'renewal_last success ')).toMatchObject({ problems: [], warnings: [] });
    expect(judged('Feb 20 12:00:00 2027 GMT', 'renewal_last success 2026-12-01T06:00:00Z')).toMatchObject({ problems: [], warnings: [] });
    const answered = 'http://shop.example.org/.well-known/acme-challenge/ on this host answers HTTP 301 (redirected to https://shop.example.org/.well-known/acme-challenge/...), not the ACME webroot /var/www/letsencrypt; the nginx files naming shop.example.org: /etc/nginx/sites-enabled/shop ';
    const fixPath = 'put {{acme_location}} in the port-80 server of the site template (nginx.site_template), or remove the server block that answers instead, then ops provision demo';
    expect(judged('Feb 20 12:00:00 2027 GMT', `renewal_path ${answered}`, 'renewal_last success ').warnings).toEqual([`certbot's renewal would fail: ${answered.trim()}: the certificate (86 days left, 2027-02-20) will not be renewed; ${fixPath}`]);
    expect(judged('Nov 30 16:00:00 2026 GMT', `renewal_path ${answered}`).problems).toEqual([`TLS certificate expires in 5 days (2026-11-30): certbot's renewal would fail: ${answered.trim()} (${fixPath}), so nothing renews it (ops certs demo --renew)`]);
    const fixRun = 'why, on the host: sudo journalctl -u certbot.service -n 50; then sudo systemctl start certbot.service to try again';
    expect(judged('Feb 20 12:00:00 2027 GMT', 'renewal_path ', 'renewal_last exit-code 2026-12-01T06:00:00Z').warnings).toEqual([`certbot's last renewal run (2026-12-01T06:00:00Z) failed (certbot.service: exit-code): the certificate (86 days left, 2027-02-20) will not be renewed; ${fixRun}`]);
    expect(judged('Nov 30 16:00:00 2026 GMT', 'renewal_last exit-code 2026-12-01T06:00:00Z').problems).toEqual([`TLS certificate expires in 5 days (2026-11-30): certbot's last renewal run (2026-12-01T06:00:00Z) failed (certbot.service: exit-code) (${fixRun}), so nothing renews it (ops certs demo --renew)`]);
  });

  it("certificates: certbot's renewal configuration edited by hand (its webroot removed or moved, another authenticator) is said before the renewal fails, with the fix; as certbot writes it, nothing", () => {
    const leEnv = testEnv({ domain: 'shop.example.org', aliases: ['www.shop.example.org'], tls: { mode: 'letsencrypt', email: 'ops@example.org' } });
    const path = '/etc/letsencrypt/live/shop.example.org/fullchain.pem';
    const conf = (...lines: string[]) => lines.map((l) => `renewal_conf ${l}` as ReportText<typeof CERTS_KEYS>);
    const judged = (...renewal: ReportText<typeof CERTS_KEYS>[]) =>
      parseHostStatus(leEnv, { name: 'web1', address: 'a' }, result(report({ site: '200', cert: [`${path}\tnotAfter=Feb 20 12:00:00 2027 GMT`, `${path}\tserial=AB12`, `${path}\tDNS:shop.example.org`, `${path}\tDNS:www.shop.example.org`], served_serial: 'AB12' }) + `\n${opsLines(CERTS_KEYS, 'renewal certbot.timer active enabled', 'renewal_path ', 'renewal_last success ', ...renewal)}`));
    // As certbot 2.1 (Debian 12) writes it: nothing to say; a map entry in any case, a folder with a final slash, quoted values.
    const written = ['[renewalparams]', 'account = 0123abcd', 'authenticator = webroot', 'webroot_path = /var/www/letsencrypt,', 'server = https://acme.example/dir', 'key_type = ecdsa', '[[webroot_map]]', 'shop.example.org = /var/www/letsencrypt', 'www.shop.example.org = /var/www/letsencrypt'];
    expect(judged(...conf(...written))).toMatchObject({ problems: [], warnings: [] });
    expect(judged(...conf('[renewalparams]', 'authenticator = "webroot"', "webroot_path = '/var/www/letsencrypt/',", '[[webroot_map]]', 'WWW.Shop.Example.org = /var/www/letsencrypt/'))).toMatchObject({ problems: [], warnings: [] });
    // No renewal configuration reported (a step before this one, a certificate certbot did not make): nothing judged.
    expect(judged()).toMatchObject({ problems: [], warnings: [] });
    const fix = 'ops certs demo --renew gets the certificate again with the webroot, which rewrites it';
    const said = (why: string) => [`certbot's renewal would fail: its configuration /etc/letsencrypt/renewal/shop.example.org.conf (edited by hand?): ${why}: the certificate (86 days left, 2027-02-20) will not be renewed; ${fix}`];
    // The webroot lines removed by hand: certbot renew stops asking for a webroot it cannot be given.
    expect(judged(...conf('[renewalparams]', 'account = 0123abcd', 'authenticator = webroot', 'server = https://acme.example/dir')).warnings).toEqual(said('it gives shop.example.org, www.shop.example.org no webroot, not /var/www/letsencrypt where the site answers the ACME challenge'));
    // One name moved to another folder (the map wins over webroot_path, whose last folder serves the names it lacks).
    expect(judged(...conf('[renewalparams]', 'authenticator = webroot', 'webroot_path = /var/www/html, /var/www/letsencrypt', '[[webroot_map]]', 'www.shop.example.org = /var/www/html')).warnings).toEqual(said('it gives www.shop.example.org the webroot /var/www/html, not /var/www/letsencrypt where the site answers the ACME challenge'));
    // Another authenticator: standalone cannot bind port 80 while nginx holds it.
    expect(judged(...conf('[renewalparams]', 'authenticator = standalone')).warnings).toEqual(said("it renews with certbot's standalone authenticator, not the webroot /var/www/letsencrypt the site answers the ACME challenge from"));
    // A key of another section named like one read is not read as it.
    expect(judged(...conf(...written, '[other]', 'authenticator = standalone'))).toMatchObject({ problems: [], warnings: [] });
  });

  it("certificates: the renewal check asks the HTTP-01 path of every name certbot validates at renewal, the aliases too, and says each that fails", () => {
    const leEnv = testEnv({ domain: 'shop.example.org', aliases: ['www.shop.example.org', 'shop.example.net'], tls: { mode: 'letsencrypt', email: 'ops@example.org' } });
    // acme_path_problem (cert.sh) stood in for: the alias www.* is answered by another server block.
    const run = (reaching: string) =>
      execFileSync('bash', ['-c', `set -euo pipefail
ops_report() { printf '%s=%s\\n' "$1" "$2"; }
systemctl() { :; }
acme_path_problem() { echo "$1 $2" >> "$ASKED"; case $1 in ${reaching}) ;; *) printf 'http://%s/.well-known/acme-challenge/ on this host answers HTTP 404' "$1" ;; esac; }
${renewalCheck(leEnv)}`], { encoding: 'utf8', env: { ...process.env, ASKED: asked } });
    const dir = mkdtempSync(join(tmpdir(), 'ops-renewal-'));
    const asked = join(dir, 'asked');
    const out = run('shop.example.org|shop.example.net');
    expect(readFileSync(asked, 'utf8')).toBe('shop.example.org /var/www/letsencrypt\nwww.shop.example.org /var/www/letsencrypt\nshop.example.net /var/www/letsencrypt\n');
    expect(out).toContain('renewal_path=http://www.shop.example.org/.well-known/acme-challenge/ on this host answers HTTP 404\n');
    expect(run('shop.example.org')).toContain('renewal_path=http://www.shop.example.org/.well-known/acme-challenge/ on this host answers HTTP 404; http://shop.example.net/.well-known/acme-challenge/ on this host answers HTTP 404\n');
    expect(run('*')).toContain('renewal_path=\n');
    rmSync(dir, { recursive: true, force: true });
  });

  it('parses XML-RPC entities and self-closing values', () => {
    const recs = parseProcessInfo("<value><struct><member><name>name</name><value><string>a&amp;b &lt;c&gt;</string></value></member><member><name>x</name><value><nil/></value></member></struct></value>");
    expect(recs).toEqual([{ name: 'a&b <c>', x: '' }]);
    expect(programStates(env, parseProcessInfo(RUNNING), 'green').filter((p) => p.live).map((p) => p.slot)).toEqual(['green', 'green']);
  });

  it('a program still STARTING (startsecs) counts its time from its start, as a RUNNING one does; a stopped one from its stop', () => {
    const xml = processXml([
      { name: 'shop-blue-server', group: 'shop-blue', state: 'STARTING', pid: 211, start: 4598, now: 4600 },
      { name: 'shop-blue-client', group: 'shop-blue', state: 'STOPPED', start: 1000, stop: 4500, now: 4600 },
    ]);
    expect(programStates(env, parseProcessInfo(xml), 'blue').map((p) => `${p.program} ${p.state} ${p.seconds}`)).toEqual(['server STARTING 2', 'client STOPPED 100']);
  });
});

describe('cert_info, run here on real certificates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ops-certs-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '10', '-subj', '/CN=shop.test', '-addext', 'subjectAltName=DNS:shop.test,DNS:www.shop.test', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'ignore' });
  writeFileSync(join(dir, 'garbage.pem'), 'not a certificate\n');

  it('reports expiry, serial, subject, issuer and names; missing and unreadable files say so', () => {
    const out = execFileSync('bash', ['-s'], { input: `${scriptPrelude}\n${CERT_FUNCTIONS}\nfor f in c.pem nope.pem garbage.pem; do cert_info ${dir}/$f; done`, encoding: 'utf8' });
    const certs = parseCerts(result(out), new Date());
    expect(certs.map((c) => c.state)).toEqual(['ok', 'missing', 'unreadable']);
    const serial = execFileSync('openssl', ['x509', '-in', join(dir, 'c.pem'), '-noout', '-serial'], { encoding: 'utf8' }).trim().slice('serial='.length);
    expect(certs[0]).toMatchObject({ path: join(dir, 'c.pem'), daysLeft: 9, names: ['shop.test', 'www.shop.test'], serial });
    expect(certs[0]!.subject).toMatch(/CN ?= ?shop.test/);
    expect(Date.parse(certs[0]!.notAfter!) - Date.now()).toBeGreaterThan(9.9 * 86400_000);
  });

  it('a self-signed certificate for a domain that is an IP address names it as one (IP:, what curl and browsers check), and is listed by it', () => {
    for (const [domain, shown] of [['10.231.0.9', 'IP Address:10.231.0.9'], ['shop.test', 'DNS:shop.test']] as const) {
      const env = testEnv({ domain, tls: { mode: 'self-signed' } });
      const here = mkdtempSync(join(tmpdir(), 'ops-selfsigned-'));
      const script = selfSignedCertificate(env).replaceAll(env.layout.selfSignedDir, here);
      execFileSync('bash', ['-c', `set -e; CHANGED=0\n${script}`], { stdio: 'ignore' });
      const cert = join(here, `${domain}.crt`);
      expect(execFileSync('openssl', ['x509', '-in', cert, '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' }), domain).toContain(shown);
      const out = execFileSync('bash', ['-s'], { input: `${scriptPrelude}\n${CERT_FUNCTIONS}\ncert_info ${cert}`, encoding: 'utf8' });
      expect(parseCerts(result(out), new Date())[0]!.names, domain).toEqual([domain]);
    }
  });
});

describe('logs step, run here on a copy of the layout', () => {
  const env = testEnv();
  const dir = mkdtempSync(join(tmpdir(), 'ops-logs-'));
  mkdirSync(join(dir, 'app'));
  mkdirSync(join(dir, 'nginx'));
  writeFileSync(join(dir, 'slot'), 'green\n');
  writeFileSync(join(dir, 'provisioned'), '2026-11-01T00:00:00Z\n');
  for (const slot of ['blue', 'green']) {
    writeFileSync(join(dir, 'app', `server-${slot}.out.log`), `server ${slot} line 1\n\nserver ${slot} line 2\n`);
    writeFileSync(join(dir, 'app', `server-${slot}.err.log`), `server ${slot} error\n`);
    writeFileSync(join(dir, 'app', `client-${slot}.out.log`), `client ${slot} line\n`);
  }
  writeFileSync(join(dir, 'nginx', 'error.log'), 'nginx error 1\nnginx error 2\n');
  writeFileSync(join(dir, 'nginx', 'access.log'), 'GET /\n');
  /** The real script, with the host's paths pointed at the scratch copy. */
  const local = (text: string) => text.replaceAll('/var/log/shop', join(dir, 'app')).replaceAll('/srv/shop/.ops/slot', join(dir, 'slot')).replaceAll('/srv/shop/.ops/provisioned', join(dir, 'provisioned')).replaceAll('/var/log/nginx', join(dir, 'nginx'));
  const run = (req: Parameters<typeof logsRequest>[1]) =>
    execFileSync('bash', ['-s'], { input: local(scriptText(logsStep(env, logsRequest(env, req)))), encoding: 'utf8' }).replace(`\n${START_MARKER}\n`, '');

  it("prints the live slot's programs and nginx's error log, each line labelled with its log", () => {
    expect(run({ lines: 1 }).trim().split('\n')).toEqual(['server-green.out | server green line 2', 'server-green.err | server green error', 'client-green.out | client green line', 'nginx.error | nginx error 2']);
  });

  it('one program, the previous slot or both, nginx alone; empty lines dropped', () => {
    expect(run({ program: 'server', slots: 'previous', lines: 5 }).trim().split('\n')).toEqual(['server-blue.out | server blue line 1', 'server-blue.out | server blue line 2', 'server-blue.err | server blue error']);
    expect(run({ program: 'client', slots: 'both' }).trim().split('\n')).toEqual(['client-green.out | client green line', 'client-blue.out | client blue line']);
    expect(run({ program: 'nginx', lines: 1 }).trim().split('\n')).toEqual(['nginx.error | nginx error 2', 'nginx.access | GET /']);
  });

  it('a host never provisioned for the environment (no provision marker): says so, as every command does, and shows no log (not even the host-wide nginx log another app writes); exit 0, as "no logs yet"', () => {
    const script = local(scriptText(logsStep(env, logsRequest(env, { lines: 5 })))).replaceAll(join(dir, 'provisioned'), join(dir, 'never-written'));
    const r = spawnSync('bash', ['-s'], { input: script, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.replace(`\n${START_MARKER}\n`, '')).toBe('');
    expect(r.stderr).toContain(`not provisioned for demo (run: ops provision demo): no logs of shop on ${execFileSync('hostname', { encoding: 'utf8' }).trim()}`);
  });

  it("each slot's programs are those its supervisor file names (the release there runs them), not the settings': a program renamed or removed since shows in the release that still runs it", () => {
    const conf = join(dir, 'conf.d');
    mkdirSync(conf, { recursive: true });
    // the previous release (blue) ran server and worker; worker is gone from the settings since
    writeFileSync(join(conf, 'shop-blue.conf'), '[group:shop-blue]\nprograms=shop-blue-server,shop-blue-worker\n\n[program:shop-blue-server]\ncommand=run\n\n[program:shop-blue-worker]\ncommand=run\n');
    writeFileSync(join(dir, 'app', 'worker-blue.out.log'), 'worker blue line\n');
    // the live release (green) runs api, the settings' server renamed on a branch not deployed yet
    writeFileSync(join(conf, 'shop-green.conf'), '[program:shop-green-api]\ncommand=run\n');
    writeFileSync(join(dir, 'app', 'api-green.err.log'), 'api green error\n');
    const withConf = (req: Parameters<typeof logsRequest>[1]) =>
      execFileSync('bash', ['-s'], { input: local(scriptText(logsStep(env, logsRequest(env, req)))).replaceAll('/etc/supervisor/conf.d', conf), encoding: 'utf8' }).replace(`\n${START_MARKER}\n`, '').trim().split('\n');
    try {
      expect(withConf({ slots: 'previous', lines: 1 })).toEqual(['server-blue.out | server blue line 2', 'server-blue.err | server blue error', 'worker-blue.out | worker blue line', 'nginx.error | nginx error 2']);
      expect(withConf({ lines: 1 })).toEqual(['api-green.err | api green error', 'nginx.error | nginx error 2']);
      // one program asked for: that program's logs, whatever the slot's file names
      expect(withConf({ program: 'server', lines: 1 })).toEqual(['server-green.out | server green line 2', 'server-green.err | server green error']);
    } finally {
      rmSync(conf, { recursive: true });
      rmSync(join(dir, 'app', 'worker-blue.out.log'));
      rmSync(join(dir, 'app', 'api-green.err.log'));
    }
  });

  it('refuses unknown programs and bad line counts, naming the choices', () => {
    expect(() => logsRequest(env, { program: 'worker' })).toThrow(/"worker" is not a program of demo/);
    // a slip of a program's name (or nginx's): the one meant named
    expect(() => logsRequest(env, { program: 'servr' })).toThrow('"servr" is not a program of demo (did you mean server?)');
    expect(() => logsRequest(env, { program: 'ngnix' })).toThrow('"ngnix" is not a program of demo (did you mean nginx?)');
    expect(() => logsRequest(env, { program: 'worker' })).toThrow(expect.objectContaining({ hint: expect.stringContaining('ops logs demo --slot previous shows every program it runs') }));
    expect(() => logsRequest(env, { lines: -1 })).toThrow(/--lines must be a whole number from 0 to 10000/);
    expect(() => logsRequest(env, { lines: 1.5 })).toThrow(/--lines/);
    expect(() => logsRequest(env, { slots: 'all' as never })).toThrow(/--slot must be one of live, previous, both, got "all"/);
  });

  it('--follow streams new lines as they are written and stops when the holder process ends', async () => {
    const holder = spawn('sleep', ['30']);
    const script = local(scriptText(logsStep(env, { ...logsRequest(env, { program: 'server', lines: 1 }), follow: { holderPid: holder.pid! } })));
    // setsid: the script ends with `kill 0` (its process group), as on a host under `timeout`.
    const child = spawn('setsid', ['bash', '-s'], { stdio: ['pipe', 'pipe', 'inherit'] });
    child.stdin.end(script);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    // Up to 20 s each: tail -F on a busy machine.
    const shown = async (text: string) => {
      await waitFor(() => out.includes(text), 20_000, 50);
      expect(out).toContain(text);
    };
    await shown('server-green.out | server green line 2');
    appendFileSync(join(dir, 'app', 'server-green.err.log'), 'a new error\n');
    await shown('server-green.err | a new error');
    const exited = new Promise((r) => child.once('exit', r));
    holder.kill();
    await exited; // within a second of the holder's end
  }, 15_000);

  it("--follow across a switch (a deploy puts the other slot live): says so and follows the new live release's program logs, from its last lines; --slot previous moves to the other slot alike", async () => {
    const follow = (slots: 'live' | 'previous') => {
      const holder = spawn('sleep', ['60']);
      const script = local(scriptText(logsStep(env, { ...logsRequest(env, { program: 'server', lines: 1, slots }), follow: { holderPid: holder.pid! } })));
      const child = spawn('setsid', ['bash', '-s'], { stdio: ['pipe', 'pipe', 'inherit'] });
      child.stdin.end(script);
      const seen = { out: '' };
      child.stdout.on('data', (d: Buffer) => (seen.out += d));
      const shown = async (text: string) => {
        await waitFor(() => seen.out.includes(text), 20_000, 50);
        expect(seen.out).toContain(text);
      };
      const stop = async () => {
        const exited = new Promise((r) => child.once('exit', r));
        holder.kill();
        await exited;
      };
      return { seen, shown, stop };
    };
    const live = follow('live');
    try {
      await live.shown('server-green.out | server green line 2');
      writeFileSync(join(dir, 'slot'), 'blue\n');
      await live.shown('--- the blue slot went live (a deploy or rollback switched');
      await live.shown('server-blue.out | server blue line 2');
      appendFileSync(join(dir, 'app', 'server-blue.err.log'), 'blue after the switch\n');
      await live.shown('server-blue.err | blue after the switch');
      await live.stop();
      // the slot now live is blue: --slot previous follows green, then blue once green is live again
      const previous = follow('previous');
      await previous.shown('server-green.out | server green line 2');
      writeFileSync(join(dir, 'slot'), 'green\n');
      await previous.shown("following the previous release's logs on the blue slot now");
      await previous.shown('server-blue.err | blue after the switch');
      await previous.stop();
    } finally {
      writeFileSync(join(dir, 'slot'), 'green\n');
    }
  }, 60_000);
});

describe("logs step: the live release's lines, not those of a release before it on the same slot", () => {
  const env = testEnv();
  const dir = mkdtempSync(join(tmpdir(), 'ops-logs-release-'));
  const app = join(dir, 'app');
  mkdirSync(app);
  mkdirSync(join(dir, 'ops'));
  writeFileSync(join(dir, 'ops', 'slot'), 'green\n');
  writeFileSync(join(dir, 'ops', 'provisioned'), '2026-11-01T00:00:00Z\n');
  const out = join(app, 'server-green.out.log');
  /** The real script, with the host's paths pointed at the scratch copy. */
  const local = (text: string) => text.replaceAll('/var/log/shop', app).replaceAll('/srv/shop/.ops', join(dir, 'ops'));
  const run = (req: Parameters<typeof logsRequest>[1]) =>
    execFileSync('bash', ['-s'], { input: local(scriptText(logsStep(env, logsRequest(env, req)))), encoding: 'utf8' }).replace(`\n${START_MARKER}\n`, '').trim().split('\n');
  /** What startSlot runs around starting the slot's programs: where each log ends is taken before, kept once healthy. */
  const started = () => {
    const script = startSlot(env, 'green', `${env.layout.releases}/20261201T100000Z-0123456789ab`, '20261201T100000Z-0123456789ab').script;
    const cut = (from: string, to: string) => script.slice(script.indexOf(from), script.indexOf(to, script.indexOf(from)) + to.length);
    execFileSync('bash', ['-s'], { input: local(`set -euo pipefail\n${previousBackFunctions(env)}\n${cut('log_at=', '\n')}${cut('log_record green', '\n')}`) });
  };
  /**
   * previous_back on green (a failed start's, a failed switch's, an interrupted run's): the real function, blue live,
   * supervisor's part left out (its programs' stop and start are the test's appends), the slot holding no file before.
   */
  const putBack = () => {
    const lock = mkdtempSync(join(tmpdir(), 'ops-logs-lock-'));
    writeFileSync(join(lock, PREVIOUS_RECORD), 'green 0 0 - -\n');
    writeFileSync(join(dir, 'ops', 'slot'), 'blue\n');
    const stubs = 'group_down() { :; }; leftovers_down() { :; }; reread() { :; }; group_add() { :; }';
    const back = execFileSync('bash', ['-s'], { input: local(`set -euo pipefail\n${previousBackFunctions(env)}\n${stubs}\nprevious_back green ${lock}`).replaceAll('/etc/supervisor/conf.d', dir), encoding: 'utf8' });
    expect(back).toContain('slot green held no release before this run');
  };

  it('shows only what the release running on the live slot wrote; with more lines than it wrote, no older line', () => {
    writeFileSync(out, 'started version 10\nv10 request\n');
    writeFileSync(join(app, 'server-green.err.log'), 'v10 warning\n');
    started();
    appendFileSync(out, 'started version 12\nv12 request 1\nv12 request 2\n');
    expect(run({ program: 'server', lines: 50 })).toEqual(['server-green.out | started version 12', 'server-green.out | v12 request 1', 'server-green.out | v12 request 2']);
    expect(run({ program: 'server', lines: 1 })).toEqual(['server-green.out | v12 request 2']);
    expect(readFileSync(join(dir, 'ops', 'log-start-green'), 'utf8')).toMatch(new RegExp(`^\\d+ 31 ${out}$`, 'm'));
  });

  it('a log supervisor rotated since the release started (another file) is all newer; one with no record (a slot started before ops kept them) is shown whole', () => {
    execFileSync('rm', ['-f', join(app, 'server-green.err.log')]);
    writeFileSync(out, 'started version 10\n');
    started();
    appendFileSync(out, 'started version 12\n');
    execFileSync('mv', [out, `${out}.1`]);
    writeFileSync(out, 'after the rotation\n');
    expect(run({ program: 'server', lines: 50 })).toEqual(['server-green.out | after the rotation']);
    writeFileSync(out, 'started version 10\nstarted version 12\n');
    execFileSync('rm', ['-f', join(dir, 'ops', 'log-start-green')]);
    expect(run({ program: 'server', lines: 50 })).toEqual(['server-green.out | started version 10', 'server-green.out | started version 12']);
  });

  it('--follow starts from the release\'s last lines, then streams what it writes', async () => {
    writeFileSync(out, 'started version 10\n');
    started();
    appendFileSync(out, 'started version 12\n');
    const holder = spawn('sleep', ['30']);
    const child = spawn('setsid', ['bash', '-s'], { stdio: ['pipe', 'pipe', 'inherit'] });
    child.stdin.end(local(scriptText(logsStep(env, { ...logsRequest(env, { program: 'server', lines: 5 }), follow: { holderPid: holder.pid! } }))));
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d));
    const shown = async (line: string) => {
      await waitFor(() => text.includes(line), 20_000, 50);
      expect(text).toContain(line);
    };
    await shown('server-green.out | started version 12');
    appendFileSync(out, 'v12 request\n');
    await shown('server-green.out | v12 request');
    const exited = new Promise((r) => child.once('exit', r));
    holder.kill();
    await exited;
    expect(text).not.toContain('version 10');
  }, 15_000);

  it("after a failed start or a failed switch on the slot, then a rollback that reuses the release put back there: only that release's lines since it came back, never the failed release's", () => {
    execFileSync('rm', ['-f', join(app, 'server-green.err.log')]);
    // A failed switch: version 12 started (healthy: its record written), the switch failed, version 10 put back.
    writeFileSync(out, 'started version 10\n');
    started();
    appendFileSync(out, 'started version 12\nv12 request\n');
    putBack();
    appendFileSync(out, 'started version 10 again\nv10 request\n');
    writeFileSync(join(dir, 'ops', 'slot'), 'green\n'); // the rollback to version 10, warm there: reused
    expect(run({ program: 'server', lines: 50 })).toEqual(['server-green.out | started version 10 again', 'server-green.out | v10 request']);
    // A failed start: version 13 never healthy (no record written), version 10 put back.
    writeFileSync(out, 'started version 10\n');
    started();
    appendFileSync(out, 'v10 request\nstarted version 13\nv13 failed\n');
    putBack();
    appendFileSync(out, 'started version 10 again\n');
    writeFileSync(join(dir, 'ops', 'slot'), 'green\n');
    expect(run({ program: 'server', lines: 50 })).toEqual(['server-green.out | started version 10 again']);
  });
});

describe('masking', () => {
  it('masks a URL secret and its password alone, encoded or not', () => {
    const r = new MemoryReporter();
    r.mask('postgresql://app:p%40ss-w0rd@db.example.org:5432/app');
    r.info('url postgresql://app:p%40ss-w0rd@db.example.org:5432/app, raw p@ss-w0rd, encoded p%40ss-w0rd');
    expect(r.text()).toBe('url ***, raw ***, encoded ***');
  });
});

describe('status over recording remotes', () => {
  it('one step per host; an unreachable host is a problem that does not hide the others', async () => {
    const env = testEnv({}, [
      { name: 'web1', address: '192.0.2.1', host_key: KEY },
      { name: 'web2', address: '192.0.2.2', host_key: KEY },
    ]);
    const remotes: RecordingRemote[] = [];
    const connector: Connector = async (_e, host) => {
      if (host.name === 'web2') throw new Error('cannot connect to web2 (deploy@192.0.2.2:22): connect ECONNREFUSED');
      const r = new RecordingRemote(host.name, 'deploy', 'shop', () => ({ stdout: report() }));
      remotes.push(r);
      return r;
    };
    const r = await status({ root: env.root, reporter: new MemoryReporter(), processEnv: {}, connector }, env);
    expect(remotes[0]!.stepNames()).toEqual(['status']);
    expect(remotes[0]!.closed).toBe(true);
    expect(r.healthy).toBe(false);
    expect(r.problems).toEqual(['web2: cannot reach it: cannot connect to web2 (deploy@192.0.2.2:22): connect ECONNREFUSED']);
    const text = formatStatus(r, new Date('2026-11-25T15:00:00Z'));
    expect(text).toContain('✓ web1 (192.0.2.1)');
    expect(text).toContain('release     20261125T140000Z-0123456789ab  0123456789ab  v2  2026-11-25 14:00 (1h 00m ago) by alice@laptop  [slot blue]');
    // Read by a machine whose clock is behind the one that deployed (a clock stepped): said so, not "0s ago".
    expect(formatStatus(r, new Date('2026-11-25T12:00:00Z'))).toContain('2026-11-25 14:00 (2h 00m after this machine\'s time: a clock is off) by alice@laptop');
    expect(text).toContain('✗ web2 (192.0.2.2) — 1 problem');
    expect(text.trim().split('\n').slice(-2)).toEqual(['demo: UNHEALTHY', '  web2: cannot reach it: cannot connect to web2 (deploy@192.0.2.2:22): connect ECONNREFUSED']);
    expect(statusSummary(r)).toContain('| web2 | unreachable |');
  });

  it('several hosts: the previous slot is judged for the release ops rollback takes each host to, ONE for the environment (a host left behind by a stopped rollout already serves it: nothing to keep warm); hosts that do not agree on one: a warning that the rollback refuses without --to', async () => {
    const env = testEnv({}, [
      { name: 'web1', address: '192.0.2.1', host_key: KEY },
      { name: 'web2', address: '192.0.2.2', host_key: KEY },
    ]);
    const [OLD, LIVE, NEW] = ['20261123T100000Z-aaaaaaaaaaaa', '20261124T100000Z-bbbbbbbbbbbb', '20261125T140000Z-0123456789ab'];
    // Only the live slot's programs loaded: the previous slot keeps nothing warm.
    const live = processXml([
      { name: 'shop-blue-server', group: 'shop-blue', state: 'RUNNING', pid: 211 },
      { name: 'shop-blue-client', group: 'shop-blue', state: 'RUNNING', pid: 216 },
    ]);
    const run = async (hosts: Record<string, [current: string, previous: string]>) => {
      const connector: Connector = async (_e, host) => new RecordingRemote(host.name, 'deploy', 'shop', () => ({ stdout: report({ supervisor_xml: live, current: hosts[host.name]![0], rollback_to: hosts[host.name]![1] }) }));
      return status({ root: env.root, reporter: new MemoryReporter(), processEnv: {}, connector, now: () => new Date('2026-11-25T15:00:00Z') }, env);
    };
    const cold = (host: string, to: string) => `${host}: no release is kept warm on the previous slot (green: no program of it is loaded in supervisor): a rollback to ${to} would start it cold (a failed start that could not start it again, or a run interrupted during its start, leaves the slot so; the next good deploy keeps the release it replaces warm again)`;
    // web1 on NEW, web2 left behind on LIVE: the rollback takes both to LIVE, not web2 to OLD.
    expect((await run({ web1: [NEW, LIVE], web2: [LIVE, OLD] })).warnings).toEqual([cold('web1', LIVE)]);
    expect((await run({ web1: [NEW, LIVE], web2: [NEW, OLD] })).warnings).toEqual([
      cold('web1', LIVE),
      cold('web2', OLD),
      `rollback: the hosts do not agree on the release to roll back to (web1 serves ${NEW} (before it: ${LIVE}), web2 serves ${NEW} (before it: ${OLD})): ops rollback demo refuses without --to <release>`,
    ]);
  });

  it('several hosts serving different commits (a rollout stopped part-way, a host deployed alone): one warning naming each commit and its hosts, and what to do; one commit (under other release ids too), hosts not read and a single host: nothing', () => {
    const on = (host: string, sha: string, id = `20261125T140000Z-${sha.slice(0, 12)}`, ref = 'v2') => ({ host, reachable: true, release: { id, sha, ref, time: '', actor: '', run: '' } });
    const [A, B] = ['a'.repeat(40), 'b'.repeat(40)];
    expect(splitCommits({ name: 'demo' }, [on('web1', A), on('web2', B, undefined, 'v1'), on('web3', B, undefined, 'v1'), { host: 'web4', reachable: true }])).toBe(
      'the hosts serve different commits: web1: aaaaaaaaaaaa (v2); web2, web3: bbbbbbbbbbbb (v1); web4: nothing live; visitors get either, as a load balancer sends them (a rollout stopped part-way?): deploy one commit to every host (ops deploy demo --ref <commit>), or roll back (ops rollback demo)',
    );
    expect(splitCommits({ name: 'demo' }, [on('web1', A), on('web2', A, '20261126T100000Z-aaaaaaaaaaaa')])).toBeUndefined();
    expect(splitCommits({ name: 'demo' }, [on('web1', A), { host: 'web2', reachable: false }, { host: 'web3', reachable: true, error: 'its status check failed' }])).toBeUndefined();
    expect(splitCommits({ name: 'demo' }, [on('web1', A)])).toBeUndefined();
  });

  it("the job summary shows what hosts report as it is (a program's state, a release's ref, the lock's holder, error text): no cell split, no markup, HTML or mention", () => {
    const odd = 'RUNNING|x <img src=x> @octocat';
    const host = {
      host: 'web1',
      release: { id: '20261125T140000Z-0123456789ab', ref: 'feat/a|b <b>' },
      nginx: { running: true, configOk: true },
      supervisor: { programs: [{ program: 'server', state: odd, pid: 211, release: 'r|1', live: true }] },
      health: [{ program: 'server', ok: true }],
      lock: { state: 'held', holder: { operation: 'deploy', actor: '@alice | **x**' } },
    };
    const r = { environment: 'demo', url: '', healthy: false, hosts: [host], problems: ['web1: nginx says: <details><summary>x</summary>'], warnings: ['web1: see #123'] } as unknown as Parameters<typeof statusSummary>[0];
    const md = statusSummary(r);
    const row = md.split('\n').find((l) => l.startsWith('| web1'))!;
    expect(row.split(/(?<!\\)\|/).length - 2).toBe(10);
    expect(row).toBe(
      '| web1 | `20261125T140000Z-0123456789ab` feat/a\\|b \\<b\\> | running, valid |  | server RUNNING\\|x \\<img src=x\\> @\u2060octocat pid 211 runs `r\\|1` |  | server ok |  |  | held: deploy by @\u2060alice \\| \\*\\*x\\*\\* |',
    );
    expect(md).toContain('- web1: nginx says: \\<details\\>\\<summary\\>x\\</summary\\>');
    expect(md).toContain('- web1: see #\u2060123');
    // On a terminal (plainValues, the console reporter's) the same values read as they are: no escapes, no joiners.
    const plain = statusSummary(r, plainValues);
    expect(plain).toContain('| held: deploy by @alice | **x** |');
    expect(plain).toContain('- web1: nginx says: <details><summary>x</summary>');
    expect(plain).not.toMatch(/\\|\u2060/);
  });

  it('--json, stopped by SIGINT/SIGTERM while a host has not answered: its document gives what each host had answered by then (its live release; null for one not answered, saying so), exit 130', async () => {
    const env = testEnv({}, [
      { name: 'web1', address: '192.0.2.1', host_key: KEY },
      { name: 'web2', address: '192.0.2.2', host_key: KEY },
    ]);
    let exited!: (code: number | undefined) => void;
    const exit = new Promise<number | undefined>((r) => (exited = r));
    const spy = vi.spyOn(process, 'exit').mockImplementation(((code?: number) => exited(code)) as never);
    let answer!: () => void;
    const web2 = new Promise<void>((r) => (answer = r));
    let web1Read = false;
    const connector: Connector = async (_e, host) => {
      if (host.name === 'web2') {
        await web2;
        throw new Error('cannot connect to web2: connect ETIMEDOUT');
      }
      return new RecordingRemote(host.name, 'deploy', 'shop', () => ((web1Read = true), { stdout: report() }));
    };
    const docs: Record<string, unknown>[] = [];
    const reporter = new MemoryReporter();
    try {
      const run = status({ root: env.root, reporter, processEnv: {}, connector, interrupted: (d) => docs.push(d) }, env);
      expect(await waitFor(() => web1Read, 20_000, 10)).toBe(true);
      await new Promise((r) => setTimeout(r, 50));
      process.emit('SIGINT', 'SIGINT');
      expect(await exit).toBe(130);
      expect(docs).toHaveLength(1);
      expect(docs[0]).toMatchObject({
        result: 'interrupted',
        signal: 'SIGINT',
        operation: 'status',
        environment: 'demo',
        release: '20261125T140000Z-0123456789ab',
        previous: '20261125T140000Z-0123456789ab',
        live: '20261125T140000Z-0123456789ab',
        hosts: [
          { host: 'web1', release: '20261125T140000Z-0123456789ab', previous: '20261125T140000Z-0123456789ab', live: '20261125T140000Z-0123456789ab' },
          { host: 'web2', release: null, previous: null, live: null },
        ],
        reason: "interrupted by SIGINT while reading the hosts' status (not answered yet: web2); status changes nothing",
        exitCode: 130,
      });
      expect(docs[0]).not.toHaveProperty('releaseNote');
      expect(reporter.text()).toContain('error: interrupted by SIGINT');
      answer();
      await run;
    } finally {
      spy.mockRestore();
    }
    // The first host not answered (or not reachable), another with no live release: null saying why, and '' (known: none).
    const none = new Map([['web2', parseHostStatus(env, { name: 'web2', address: '192.0.2.2' }, result(report({ current: undefined, release_json: undefined })))]]);
    const doc = statusInterrupted(env, none, 'SIGTERM');
    expect(doc).toMatchObject({ release: null, releaseNote: 'not known: web1 had not answered when the status was interrupted', previous: null, live: null, exitCode: 143 });
    expect(doc.hosts).toEqual([
      { host: 'web1', release: null, previous: null, live: null },
      { host: 'web2', release: '', previous: '', live: '' },
    ]);
  });

  it("a host's clock far from the runner's: a warning saying what goes by it and how to put it right; the certificate's days left counted by the runner's clock (a host 10 days behind does not hide an expired certificate)", async () => {
    const tlsEnv = testEnv({ domain: 'shop.example.org', tls: { mode: 'self-signed' } });
    const path = '/etc/ssl/shop/shop.example.org.crt';
    const run = async (runner: string) => {
      const connector: Connector = async (_e, host) => new RecordingRemote(host.name, 'deploy', 'shop', () => ({ stdout: report({ now: '2026-11-15T15:00:00Z', site: '200', cert: [`${path}\tnotAfter=Nov 20 12:00:00 2026 GMT`, `${path}\tDNS:shop.example.org`] }) }));
      return status({ root: tlsEnv.root, reporter: new MemoryReporter(), processEnv: {}, connector, now: () => new Date(runner) }, tlsEnv);
    };
    const skewed = await run('2026-11-25T15:00:00Z');
    expect(skewed.warnings).toContainEqual(expect.stringMatching(/^web1: its clock is 10 days behind this runner's: certbot renews by it, .* put the wrong clock right \(on the host: sudo timedatectl set-ntp true, then timedatectl status\)$/));
    expect(skewed.problems).toContain('web1: TLS certificate expired on 2026-11-20: browsers refuse the site; renewal is failing: ops certs demo --renew');
    const agreed = await run('2026-11-15T15:00:30Z');
    expect(agreed.warnings.filter((w) => w.includes('clock'))).toEqual([]);
    expect(agreed.problems.filter((p) => p.includes('TLS'))).toEqual(['web1: TLS certificate expires in 4 days (2026-11-20): renewal is failing (ops certs demo --renew)']);
  });

  it('a deploy under way (the lock held by a live run) leaves the environment healthy, the lock shown with who and since when', async () => {
    const env = testEnv();
    const lines = report({ lock: 'held', holder: ['operation=deploy', 'actor=bob@ci', 'since=2026-11-25T14:59:00Z', 'holder_pid=12'] });
    const connector: Connector = async (_e, host) => new RecordingRemote(host.name, 'deploy', 'shop', () => ({ stdout: lines }));
    const r = await status({ root: env.root, reporter: new MemoryReporter(), processEnv: {}, connector }, env);
    expect(r.healthy).toBe(true);
    expect(r.problems).toEqual([]);
    const text = formatStatus(r, new Date('2026-11-25T15:00:00Z'));
    expect(text).toContain('✓ web1 (192.0.2.1)');
    expect(text).toContain('    lock        held: deploy by bob@ci since 2026-11-25T14:59:00Z');
    expect(text).not.toContain('✗');
    expect(text.trim().split('\n').at(-1)).toBe('demo: healthy');
    // A stale lock (its run is gone) still fails.
    const stale = report({ lock: 'stale', holder: ['operation=deploy', 'actor=bob@ci', 'since=2026-11-25T14:59:00Z'] });
    const s = await status({ root: env.root, reporter: new MemoryReporter(), processEnv: {}, connector: async (_e, host) => new RecordingRemote(host.name, 'deploy', 'shop', () => ({ stdout: stale })) }, env);
    expect(s.healthy).toBe(false);
    expect(formatStatus(s)).toContain('    lock        ✗ stale: deploy by bob@ci');
  });

  it('right after a deploy, a live program still STARTING that passes its health check is marked fine, as the verdict says', async () => {
    const env = testEnv();
    const xml = processXml([
      { name: 'shop-blue-server', group: 'shop-blue', state: 'STARTING', start: 4598, pid: 211 },
      { name: 'shop-blue-client', group: 'shop-blue', state: 'RUNNING', pid: 216 },
      { name: 'shop-green-server', group: 'shop-green', state: 'RUNNING', pid: 300 },
      { name: 'shop-green-client', group: 'shop-green', state: 'RUNNING', pid: 301 },
    ]);
    const run = async (lines: string) => status({ root: env.root, reporter: new MemoryReporter(), processEnv: {}, connector: async (_e, host) => new RecordingRemote(host.name, 'deploy', 'shop', () => ({ stdout: lines })) }, env);
    const r = await run(report({ supervisor_xml: xml }));
    expect(r.healthy).toBe(true);
    const text = formatStatus(r, new Date('2026-11-25T15:00:00Z'));
    expect(text).not.toContain('✗');
    expect(text).toMatch(/^ {4}supervisor {2}✓ server {5}STARTING for 2s .*blue \(live\).* starting \(health check passed\)$/m);
    // STARTING and failing its health check: a problem, and marked so.
    const failing = await run(report({ supervisor_xml: xml, health: 'no healthy answer within 3s from server:3579:/health (Failed to connect to 127.0.0.1 port 3579: Connection refused)' }));
    expect(failing.healthy).toBe(false);
    expect(formatStatus(failing)).toMatch(/^ {4}supervisor {2}✗ server {5}STARTING/m);
  });

  it('a host whose status step fails (no sudo) is reachable, and its problem says why and how to fix it', async () => {
    const env = testEnv();
    const connector: Connector = async (_e, host) =>
      new RecordingRemote(host.name, 'deploy', 'shop', () => ({ code: 1, stderr: 'sudo: a password is required' }));
    const r = await status({ root: env.root, reporter: new MemoryReporter(), processEnv: {}, connector }, env);
    expect(r.hosts[0]).toMatchObject({ reachable: true });
    expect(r.problems).toEqual(['web1: the status check itself failed: step "status" on web1 failed with exit code 1; sudo: a password is required']);
    expect(formatStatus(r)).toContain('    status check failed: step "status" on web1 failed with exit code 1');
  });
});

describe('certificates over recording remotes', () => {
  const env = testEnv({ domain: 'shop.example.org', tls: { mode: 'letsencrypt', email: 'ops@example.org', acme_ca_file: 'ca.pem' } });
  writeFileSync(join(env.dir, 'ca.pem'), 'CA\n');
  const live = '/etc/letsencrypt/live/shop.example.org/fullchain.pem';
  const listing = opsLines(
    { ...CERTS_KEYS, ...LIBRARY_KEYS },
    `configured ${live}`,
    `cert ${live}\tnotAfter=Feb 20 10:00:00 2027 GMT`,
    `cert ${live}\tserial=0A`,
    `cert ${live}\tDNS:shop.example.org`,
    `cert ${live}\tissuer=CN = Pebble Intermediate CA`,
    'served_serial 0A',
    'renewal certbot.timer active',
  );

  it('lists with expiry, the served serial and the renewal schedule', async () => {
    const remote = new RecordingRemote('web1', 'deploy', 'shop', () => ({ stdout: listing }));
    const r = await certificates({ root: env.root, reporter: new MemoryReporter(), processEnv: {}, connector: async () => remote }, env);
    expect(remote.stepNames()).toEqual(['certificates']);
    expect(r.ok).toBe(true);
    const text = formatCerts(r);
    expect(text).toContain('✓ shop.example.org (used by nginx)');
    expect(text).toContain('serial   0A  (served on :443)');
    expect(text).toContain('renewal: certbot.timer active');
  });

  it('says what is wrong as status does: a renewal timer stopped (a warning), a certificate naming another domain (exit 1); days counted by the runner\'s clock', async () => {
    const listed = async (text: string, now: string) => {
      const remote = new RecordingRemote('web1', 'deploy', 'shop', () => ({ stdout: text }));
      return certificates({ root: env.root, reporter: new MemoryReporter(), processEnv: {}, connector: async () => remote, now: () => new Date(now) }, env);
    };
    const stopped = await listed(listing.replace('certbot.timer active', 'certbot.timer inactive disabled'), '2027-01-01T00:00:00Z');
    expect(stopped.ok).toBe(true);
    expect(formatCerts(stopped)).toContain("  ! certbot's renewal timer is not running (certbot.timer inactive): the certificate (50 days left, 2027-02-20) will not be renewed; sudo systemctl enable --now certbot.timer; ops provision does it too");
    const other = await listed(listing.replace(`DNS:shop.example.org`, 'DNS:old.example.org'), '2027-01-01T00:00:00Z');
    expect(other.ok).toBe(false);
    expect(formatCerts(other)).toContain(`  ✗ TLS certificate ${live} names old.example.org, not shop.example.org: browsers refuse the site as another's; ops certs demo --renew gets one for shop.example.org`);
    const late = await listed(listing, '2027-02-18T00:00:00Z');
    expect(late.ok).toBe(false);
    expect(late.hosts[0]!.problems).toEqual(['TLS certificate expires in 2 days (2027-02-20): renewal is failing (ops certs demo --renew)']);
  });

  it('renews under the lock, trusting the test ACME CA, and records it in the audit log', async () => {
    const remote = new RecordingRemote('web1', 'deploy', 'shop', (step) => (step.name === 'lock' ? { stdout: opsLines(LOCK_KEYS, 'lock acquired') } : step.name === 'renew certificate' ? { stdout: listing } : undefined));
    const r = await renewCertificates({ root: env.root, reporter: new MemoryReporter(), processEnv: {}, connector: async () => remote }, env);
    expect(remote.stepNames()).toEqual(['lock', 'renew certificate', 'unlock']);
    // certonly, not renew: a host whose ACME account key is gone registers a new account (renew fails on it).
    expect(remote.runs[1]!.step.script).toMatch(/REQUESTS_CA_BUNDLE=\/usr\/local\/share\/ops-pipeline\/shop-acme-ca.pem \/usr\/bin\/timeout 240 certbot certonly -n .*--cert-name shop.example.org --expand --no-random-sleep-on-renew .*--force-renewal --no-directory-hooks >"\$certbot_log" 2>&1/);
    expect(remote.runs[2]!.step.script).toMatch(/"operation":"certs renew","actor":.*"result":"success".*certificate renewed, expires 2027-02-20/);
    expect(r.hosts[0]!.renewed).toBe(true);
  });

  it('renewal reloads nginx only after nginx -t; self-signed mode makes a new certificate', () => {
    const le = renewCertificate(env, false).script;
    expect(le.indexOf('if ! out=$(nginx -t 2>&1); then')).toBeLessThan(le.indexOf('\nnginx_reload\n'));
    expect(le.indexOf('certbot certonly')).toBeLessThan(le.indexOf('if ! out=$(nginx -t'));
    expect(le).not.toContain('REQUESTS_CA_BUNDLE');
    const self = renewCertificate(testEnv({ domain: 'shop.test', tls: { mode: 'self-signed' } }), false).script;
    expect(self).toContain('if true; then\n  install -d -m 0755 /etc/ssl/shop\n  if ! (umask 077; openssl req -x509');
    for (const s of [renewCertificate(env, true), renewCertificate(testEnv({ tls: { mode: 'self-signed' } }), false), listCertificates(env)]) expect(bashSyntax(scriptText(s))).toBe('ok');
  });

  it("the certificate checks ask nginx where the site's visitors (and the ACME server) reach the host, not 127.0.0.1: a server block listening on that address itself takes them first", () => {
    const calls = (script: string) => script.split('\n').filter((l) => /\b(served_serial|acme_path_problem) "/.test(l) || /\$\((served_serial|acme_path_problem) /.test(l));
    const scripts = { list: listCertificates(env).script, renew: renewCertificate(env, false).script, issue: issueCertificate(env, false).script, status: hostStatus(env).script };
    for (const [name, script] of Object.entries(scripts)) {
      expect(calls(script).length, name).toBeGreaterThan(0);
      for (const line of calls(script)) expect(line, name).toContain('"$gate_at")');
      expect(script.indexOf(visitorAddress()), name).toBeGreaterThan(-1);
      expect(script.indexOf(visitorAddress()), name).toBeLessThan(script.indexOf('"$gate_at")'));
    }
    // What curl is asked: the name resolved to that address, on both ports the ACME server may be sent to.
    const dir = mkdtempSync(join(tmpdir(), 'ops-acme-at-'));
    writeFileSync(join(dir, 'curl'), '#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\nprintf "nginx 404\\n404 http://x/"\n', { mode: 0o755 });
    const said = execFileSync('bash', ['-c', `${CERT_FUNCTIONS}\nacme_path_problem shop.example.org "$1" 192.0.2.7`, 'x', join(dir, 'webroot')], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, ARGS_FILE: join(dir, 'args') } });
    expect(readFileSync(join(dir, 'args'), 'utf8')).toContain('--resolve\nshop.example.org:80:192.0.2.7\n--resolve\nshop.example.org:443:192.0.2.7\n');
    expect(said).toMatch(/^http:\/\/shop\.example\.org\/\.well-known\/acme-challenge\/ on this host answers HTTP 404 \(redirected to http:\/\/x\/\.\.\.\) \(asked at 192\.0\.2\.7\), not the ACME webroot /);
  });

  it('an environment without TLS has no certificates: a clear error', async () => {
    const plain = testEnv();
    await expect(certificates({ root: plain.root, reporter: new MemoryReporter(), processEnv: {} }, plain)).rejects.toThrow(/serves plain http \(tls.mode is off\): it has no certificates/);
    await expect(renewCertificates({ root: plain.root, reporter: new MemoryReporter(), processEnv: {} }, plain)).rejects.toThrow(/tls.mode is off/);
  });
});

describe('logs step text', () => {
  it('is valid bash, follows with tail -F until the holder ends, and never uses supervisorctl', () => {
    const env = testEnv();
    const follow = logsStep(env, { ...logsRequest(env, {}), follow: { holderPid: 4242 } });
    expect(bashSyntax(scriptText(follow))).toBe('ok');
    expect(follow.script).toContain('release_tail "$f" 50 "$@" | sed -u');
    expect(follow.script).toContain('show_files -F --pid="$round"');
    expect(follow.script).toContain('holder=4242\nwhile kill -0 "$holder" 2>/dev/null; do\n  sleep 0.2\n');
    expect(follow.script).toMatch(/\n  program_round\ndone\nkill 0$/);
    // By default, the SSH server process of the step's own connection.
    expect(logsStep(env, { ...logsRequest(env, {}), follow: {} }).script).toContain('holder=$(conn_pid)\nwhile kill -0');
    expect(follow.timeout).toBe(7 * 86400);
    expect(follow.quiet).toBeFalsy(); // lines stream to the reporter (host prefix, masking) as they come
  });
});

describe('ops ping, a preflight', () => {
  const facts = (lines: string[], preamble = '') => readFacts({ name: 'prod' }, { name: 'web1', user: 'deploy' }, { stdout: '', stderr: '', code: 0, durationMs: 1, reports: lines.map((l) => [l.split(' ')[0]!, l.slice(l.indexOf(' ') + 1)] as [string, string]), preamble });
  const healthy = ['hostname web1', 'os Debian GNU/Linux 12 (bookworm)', 'uptime 100.5', 'login deploy', 'sudo yes ', 'max_sessions 10', 'disk 2097152 1000000 900000 /srv/shop', 'footprint 300000 20000'];

  it('a healthy host: facts, no problem; the need is the live release with its dependency sets, at least 256 MB and 10000 inodes', () => {
    const r = facts(healthy);
    expect(r.problems).toEqual([]);
    expect(r.disk).toEqual({ path: '/srv/shop', freeMb: 2048, freeInodes: 900000, needMb: 293, needInodes: 20000 });
    expect(facts(healthy.filter((l) => !l.startsWith('footprint'))).disk).toMatchObject({ needMb: 256, needInodes: 10000 });
  });

  it('each thing that makes a deploy fail is a problem with its exact fix', () => {
    const r = facts(['login deploy', 'sudo no sudo: a password is required', 'max_sessions 0', 'disk 1024 500 20 /srv'], 'Welcome!\nhave a nice day');
    expect(r.problems.map((p) => p.problem)).toEqual([
      'sudo does not work without a password for deploy (sudo: a password is required): provision and every deploy need it',
      'the login shell of deploy prints text for non-interactive sessions: "Welcome! / have a nice day" (ops copes; scp, rsync and sftp break)',
      'sshd allows 0 session(s) per connection; ops needs 1',
      'only 1 MB free under /srv; a deploy may need 256 MB (a release with new dependencies)',
      'only 20 free inodes under /srv; a deploy may need 10000',
    ]);
    expect(r.problems[0]!.fix).toBe("on web1, as root: echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy && chmod 0440 /etc/sudoers.d/deploy (or visudo -f /etc/sudoers.d/deploy)");
    expect(r.problems[2]!.fix).toMatch(/^set MaxSessions 1 or more in \/etc\/ssh\/sshd_config/);
    const text = formatPing([{ host: 'web1', address: '192.0.2.1', ok: false, latencyMs: 5, ...r }]);
    // One line per problem, naming the host, what is wrong and the fix.
    expect(text.split('\n').slice(1)).toHaveLength(5);
    expect(text.split('\n')[2]).toMatch(/^ {4}✗ web1: the login shell of deploy prints text .*; fix: move it below the interactive guard/);
  });

  it('a host without sudo (Debian installed with a root password): said as not installed, the fix installs it (and gives the login its sudoers line)', () => {
    const r = facts(['login deploy', 'sudo no bash: line 38: sudo: command not found', 'disk 2097152 1000000 900000 /srv']);
    expect(r.problems).toEqual([
      {
        problem: 'sudo is not installed on web1 (bash: line 38: sudo: command not found): provision and every deploy run their steps through it',
        fix: "on web1, as root: apt-get install -y sudo && echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy && chmod 0440 /etc/sudoers.d/deploy",
      },
    ]);
    const root = readFacts({ name: 'prod' }, { name: 'web1', user: 'root' }, { stdout: '', stderr: '', code: 0, durationMs: 1, reports: [['sudo', 'no sh: 1: sudo: not found']] });
    expect(root.problems[0]!.fix).toBe('ops provision prod installs it (logged in as root, its steps need no sudo), or on web1: apt-get install -y sudo');
  });

  it('a filesystem without inode counts (btrfs) has no inode limit', () => {
    expect(facts(['sudo yes', 'disk 2097152 0 0 /srv']).disk).toEqual({ path: '/srv', freeMb: 2048, needMb: 256, needInodes: 10000 });
    expect(facts(['sudo yes', 'disk 2097152 0 0 /srv']).problems).toEqual([]);
  });
});

describe('health reasons, from the real probes', () => {
  it("says why each health check failed in curl's words: an error status, nothing listening, no answer in time", async () => {
    // A program whose database is down (503 with a JSON error at once), and one stopped (SIGSTOP): the kernel
    // accepts its connections, nothing ever answers.
    const http = createServer((_req, res) => { res.statusCode = 503; res.end('{"error":"database unavailable",\n"dsn":"postgresql://app:s3cr3t@db:5432/app","password":"hunter2"}'); });
    const sockets: Socket[] = [];
    const stuck = createNetServer((c) => void sockets.push(c));
    const [error, closed, silent] = [await listening(http), await freePort(), await listening(stuck)];
    const env = testEnv({ programs: { server: { command: 'run', port: error, health: '/health' }, client: { command: 'run', port: closed }, worker: { command: 'run', port: silent, health: '/ready' } } });
    try {
      // The status step's own health lines, run here.
      const script = `${scriptPrelude}\n${PROBE_FUNCTIONS}\n${MASK_FUNCTIONS}\n${healthShell(env, 'blue')}`;
      expect(hostStatus(env).script).toContain(healthShell(env, 'blue'));
      const { stdout } = await promisify(execFile)('bash', ['-c', script], { encoding: 'utf8' });
      const lines = stdout.slice(stdout.indexOf(START_MARKER) + START_MARKER.length);
      const s = parseHostStatus(env, { name: 'web1', address: '192.0.2.1' }, result(report({ health: undefined, upstream: undefined, supervisor_xml: undefined, supervisor: 'running' }) + lines));
      const detail = Object.fromEntries(s.health!.map((h) => [h.program, h.detail]));
      // The status and the first bytes of the answer, on one line, what looks like a secret masked.
      expect(detail.server).toBe(`The requested URL returned error: 503 (HTTP/1.1 503 Service Unavailable), answering: {"error":"database unavailable", "dsn":"postgresql://app:***@db:5432/app","password":***} (GET 127.0.0.1:${error}/health, no 2xx answer within 3s)`);
      expect(detail.client).toMatch(new RegExp(`^Failed to connect to 127\\.0\\.0\\.1 port ${closed}: Connection refused \\(GET 127\\.0\\.0\\.1:${closed}/, no 2xx answer within 3s\\)$`));
      expect(detail.worker).toMatch(new RegExp(`^Operation timed out after \\d+ milliseconds with 0 bytes received \\(GET 127\\.0\\.0\\.1:${silent}/ready, no 2xx answer within 3s\\)$`));
      expect(s.problems).toContain(`health check of server failed: ${detail.server}`);
    } finally {
      for (const c of sockets) c.destroy();
      await new Promise((r) => http.close(r));
      await new Promise((r) => stuck.close(r));
    }
  }, 20_000);

  it('an answer quoted is bounded, on one line, without control characters, its secrets masked', () => {
    expect(excerpt('xxxxxxx '.repeat(60))).toBe(`${'xxxxxxx '.repeat(15).trimEnd()}…`);
    expect(excerpt(`${'xxxxxxx '.repeat(14)}yyyyyyyyyyyyyyyyyyyyyyyyyyyyy`)).toBe(`${'xxxxxxx '.repeat(14).trimEnd()}…`); // the word cut dropped (a token's start)
    expect(excerpt('x'.repeat(500))).toBe('…');
    expect(excerpt('a\r\n\tb\u001b[31mc')).toBe('a b?[31mc');
    expect(excerpt('token=abc&user=bob; Authorization: Bearer xyz')).toBe('token=***&user=bob; Authorization: Bearer ***');
    expect(excerpt("{'api_key': 'k1', \"DB_PASSWORD\": \"p w\"} redis://:pw@cache:6379")).toBe("{'api_key': ***, \"DB_PASSWORD\": ***} redis://:***@cache:6379");
  });

  it('a deploy\'s or rollback\'s failure quotes the health verdict with the same masking (failureDetail, maskSecretLike)', () => {
    const verdict = 'release r1 did not become healthy on slot green: no healthy answer within 60s from server:3579:/health (The requested URL returned error: 500 (HTTP/1.1 500 Internal Server Error), answering: OperationalError: could not connect postgresql://app:hunter2@db/app token=abc123 retrying)';
    const detail = failureDetail(`@ops start failed\n${verdict}; the live release keeps serving`, '', (t) => t);
    expect(detail).toBe(`${verdict.replace('app:hunter2@', 'app:***@').replace('token=abc123', 'token=***')}; the live release keeps serving`);
    expect(detail).not.toMatch(/hunter2|abc123/);
  });

  it('a reason holding parentheses or commas (what a server sent) is kept whole', () => {
    const list = ['server:3579:/health', 'client:3000:/'];
    const r = healthReasons('no healthy answer within 3s from server:3579:/health (not an HTTP answer: SSH-2.0 (x), y), client:3000:/ (Empty reply from server)', list);
    expect(Object.fromEntries(r)).toEqual({ 'server:3579:/health': 'not an HTTP answer: SSH-2.0 (x), y', 'client:3000:/': 'Empty reply from server' });
    expect(healthReasons('no healthy answer within 3s from server:3579:/health', list).size).toBe(0);
  });
});

describe('where nginx sends the traffic, read by real bash from an upstreams file', () => {
  /** nginxRouteShell run here: the upstreams file at `file`, a `curl` first on PATH answering `answer` (its arguments kept). */
  function look(env: ReturnType<typeof testEnv>, file: string | undefined, answer: string): { lines: string; curlArgs: string } {
    const dir = mkdtempSync(join(tmpdir(), 'ops-route-'));
    const path = join(dir, 'upstreams.conf');
    if (file !== undefined) writeFileSync(path, file);
    writeFileSync(join(dir, 'curl'), `#!/bin/sh\nprintf '%s\\n' "$*" > ${dir}/args\nprintf '%s' '${answer}'\n`);
    chmodSync(join(dir, 'curl'), 0o755);
    const script = nginxRouteShell(env).replaceAll(env.layout.nginxUpstreams, path);
    const out = execFileSync('bash', ['-c', `${scriptPrelude}\n${script}`], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
    return { lines: out.slice(out.indexOf(START_MARKER) + START_MARKER.length), curlArgs: readFileSync(join(dir, 'args'), 'utf8').trim() };
  }
  const env = testEnv();
  const parse = (lines: string, slot = 'green') => {
    const rest = report({ slot, upstream: undefined, nginx_slot: undefined, supervisor: 'no answer', supervisor_xml: undefined, health: undefined });
    return parseHostStatus(env, { name: 'web1', address: '192.0.2.1' }, result(rest + lines)).problems.filter((p) => !p.startsWith('supervisor'));
  };

  it('green live, its upstreams file edited by hand to the blue ports and nginx reloaded: a problem per program, with the fix', () => {
    const edited = upstreams(env, 'green', '').replaceAll(`127.0.0.1:${env.port('server', 'green')}`, `127.0.0.1:${env.port('server', 'blue')}`).replaceAll(`127.0.0.1:${env.port('client', 'green')}`, `127.0.0.1:${env.port('client', 'blue')}`);
    expect(edited).not.toBe(upstreams(env, 'green', ''));
    const { lines, curlArgs } = look(env, edited, 'green'); // the map of the slot left as it was: /.ops/slot still says green
    expect(curlArgs).toBe('--noproxy * -s --max-time 2 http://127.0.0.1/.ops/slot'); // no SSH_CONNECTION here: 127.0.0.1
    expect(parse(lines)).toEqual([
      `nginx's upstreams file /etc/nginx/ops-upstreams/shop.conf sends server to 127.0.0.1:${env.port('server', 'blue')} (the previous slot, blue), not to the live slot green (127.0.0.1:${env.port('server', 'green')}): from the reload that loaded it (or from the next), the site serves something other than the live release (ops deploy demo --ref 0123456789abcdef0123456789abcdef01234567 --force writes it again)`,
      `nginx's upstreams file /etc/nginx/ops-upstreams/shop.conf sends client to 127.0.0.1:${env.port('client', 'blue')} (the previous slot, blue), not to the live slot green (127.0.0.1:${env.port('client', 'green')}): from the reload that loaded it (or from the next), the site serves something other than the live release (ops deploy demo --ref 0123456789abcdef0123456789abcdef01234567 --force writes it again)`,
    ]);
  });

  it("nginx still on the other slot's upstreams (not reloaded): a problem naming the reload; the file as the switch writes it and nginx on it: none", () => {
    expect(parse(look(env, upstreams(env, 'green', ''), 'blue').lines)).toEqual([
      'nginx routes to slot blue (its /.ops/slot answers blue), not to the live slot green: the site serves the previous slot (reload nginx: systemctl reload nginx, when its upstreams file is right; else ops deploy demo --ref 0123456789abcdef0123456789abcdef01234567 --force writes it again)',
    ]);
    expect(parse(look(env, upstreams(env, 'green', ''), 'green').lines)).toEqual([]);
    // Mid-switch (a run holds the lock): a warning, not a problem.
    const held = report({ slot: 'green', upstream: undefined, nginx_slot: 'blue', lock: 'held', holder: ['operation=deploy', 'actor=bob@ci', 'since=x'] });
    const mid = parseHostStatus(env, { name: 'web1', address: '192.0.2.1' }, result(held + look(env, upstreams(env, 'green', ''), 'blue').lines));
    expect(mid.problems.filter((p) => /nginx/.test(p))).toEqual([]);
    expect(mid.warnings).toContain('nginx routes to slot blue (its /.ops/slot answers blue), not to the live slot green: the site serves the previous slot (reload nginx: systemctl reload nginx, when its upstreams file is right; else ops deploy demo --ref 0123456789abcdef0123456789abcdef01234567 --force writes it again) (a run holds the lock: a switch may be under way)');
    // A custom site template without {{slot_location}}: whatever answers there is no slot, and says nothing.
    expect(parse(look(env, upstreams(env, 'green', ''), '<html>404</html>').lines)).toEqual([]);
  });

  it('a site served over https: another enabled site taking its name on 443 (its visitors get that one) is a problem, though http answers the slot', () => {
    const tls = testEnv({ domain: 'shop.example.org', tls: { mode: 'self-signed' } });
    const dir = mkdtempSync(join(tmpdir(), 'ops-route-tls-'));
    writeFileSync(join(dir, 'upstreams.conf'), upstreams(tls, 'green', ''));
    writeFileSync(join(dir, 'cert.crt'), 'x');
    // nginx over http: the site's own server block (the slot); over https: the other site's.
    writeFileSync(join(dir, 'curl'), `#!/bin/sh\ncase "$*" in *https://*) printf 'old site' ;; *) printf green ;; esac\n`);
    chmodSync(join(dir, 'curl'), 0o755);
    const script = nginxRouteShell(tls).replaceAll(tls.layout.nginxUpstreams, join(dir, 'upstreams.conf')).replaceAll(certificatePaths(tls)!.cert, join(dir, 'cert.crt'));
    const out = execFileSync('bash', ['-c', `${scriptPrelude}\n${script}`], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
    const rest = report({ slot: 'green', upstream: undefined, nginx_slot: undefined, supervisor: 'no answer', supervisor_xml: undefined, health: undefined });
    const problems = parseHostStatus(tls, { name: 'web1', address: '192.0.2.1' }, result(rest + out.slice(out.indexOf(START_MARKER) + START_MARKER.length))).problems.filter((p) => !p.startsWith('supervisor'));
    expect(problems).toEqual([
      'over https, where the site\'s visitors are, nginx answers /.ops/slot with "old site", not a slot (over http: green): another enabled site takes shop.example.org on port 443 (nginx -t warns "conflicting server name"); remove the site no longer used, or its server_name, then reload nginx',
    ]);
  });

  it('a missing upstreams file, a program without its upstream; the domain as Host, as the switch looks', () => {
    expect(parse(look(env, undefined, '').lines)).toEqual(["nginx's upstreams file /etc/nginx/ops-upstreams/shop.conf is missing: nginx cannot reload or restart (ops deploy demo --ref 0123456789abcdef0123456789abcdef01234567 --force writes it again)"]);
    const noClient = upstreams(env, 'green', '').replace(/upstream shop_client \{[^}]*\}/, '');
    expect(parse(look(env, noClient, 'green').lines)).toEqual([
      `nginx's upstreams file /etc/nginx/ops-upstreams/shop.conf sends client to nowhere (no upstream for it), not to the live slot green (127.0.0.1:${env.port('client', 'green')}): from the reload that loaded it (or from the next), the site serves something other than the live release (ops deploy demo --ref 0123456789abcdef0123456789abcdef01234567 --force writes it again)`,
    ]);
    expect(look(testEnv({ domain: 'shop.example.org' }), upstreams(env, 'green', ''), 'green').curlArgs).toBe('--noproxy * -s --max-time 2 -H Host: shop.example.org http://127.0.0.1/.ops/slot');
    expect(hostStatus(env).script).toContain(nginxRouteShell(env));
  });
});

describe('--json errors, one line each', () => {
  const twoHosts = [
    { name: 'web1', address: '192.0.2.1', host_key: KEY },
    { name: 'web2', address: '192.0.2.2', host_key: KEY },
  ];
  const oneLine = (text: unknown) => expect(typeof text === 'string' && !text.includes('\n'), JSON.stringify(text)).toBe(true);

  it('a host not read: its error and its hint in fields of their own, in status, ping, certs, releases, audit and lock status', async () => {
    const env = testEnv({ domain: 'shop.example.org', tls: { mode: 'self-signed' } }, twoHosts);
    // web1's error as a key missing says it (core/remote/identity.ts), on two lines to be sure they are joined
    const connector: Connector = async (_e, host) => {
      if (host.name === 'web1') throw new OpsError('no SSH key to log in with:\n  none found', 'tried --identity and ~/.ssh:\n  give one of them');
      return new RecordingRemote(host.name, 'deploy', 'shop', () => ({ stdout: '' }));
    };
    for (const argv of [['status'], ['ping'], ['certs'], ['releases'], ['audit'], ['lock', 'status']]) {
      const r = await runOps([...argv, 'demo', '--json'], { root: env.root, processEnv: { PATH: process.env.PATH }, connector });
      const doc = JSON.parse(r.out) as { hosts?: Record<string, unknown>[]; warnings?: string[]; problems?: string[] } | Record<string, unknown>[];
      const web1 = (Array.isArray(doc) ? doc : doc.hosts!).find((h) => h.host === 'web1')!;
      expect(web1, argv.join(' ')).toMatchObject({ error: 'no SSH key to log in with: none found', hint: 'tried --identity and ~/.ssh: give one of them' });
      if (!Array.isArray(doc)) for (const w of [...(doc.warnings ?? []), ...(doc.problems ?? [])]) oneLine(w);
    }
    // A terminal gets the hint too.
    const text = await runOps(['releases', 'demo'], { root: env.root, processEnv: { PATH: process.env.PATH }, connector });
    expect(text.out).toContain('web1: cannot be read: no SSH key to log in with: none found\n  hint: tried --identity and ~/.ssh: give one of them');
  });

  it('ops diff and deploy --dry-run: a host not read is said with its hint and the command exits 1 (the other host still shown); every host read: exit 0', async () => {
    const env = testEnv({ release: { node_dir: '', build: 'true', migrate: 'true' } }, twoHosts);
    writeFileSync(join(env.root, 'requirements.txt'), '');
    const git = (...a: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.org', ...a], { cwd: env.root });
    git('init', '-q', '-b', 'master');
    git('add', '-A');
    git('commit', '-qm', 'app');
    const connector = (down: boolean): Connector => async (_e, host) => {
      if (down && host.name === 'web1') throw new OpsError('cannot connect to web1: timed out', 'is the host up?');
      return new RecordingRemote(host.name, 'deploy', 'shop', () => ({ stdout: opsLines(PROVISIONED_KEYS, 'provisioned yes') }));
    };
    for (const argv of [['diff', 'demo'], ['deploy', 'demo', '--dry-run']]) {
      const r = await runOps(argv, { root: env.root, processEnv: { PATH: process.env.PATH }, connector: connector(true) });
      const text = r.out + r.err;
      expect({ code: r.code, down: text.includes('web1: cannot be read: cannot connect to web1: timed out\n'), hint: text.includes('  hint: is the host up?'), web2: /web2: live \(nothing\)/.test(text) }, argv.join(' ')).toEqual({ code: 1, down: true, hint: true, web2: true });
      expect((await runOps(argv, { root: env.root, processEnv: { PATH: process.env.PATH }, connector: connector(false) })).code, argv.join(' ')).toBe(0);
    }
    // the dry run says why it failed after its plan
    expect((await runOps(['deploy', 'demo', '--dry-run'], { root: env.root, processEnv: { PATH: process.env.PATH }, connector: connector(true) })).err).toContain('error: dry run of demo: web1 could not be read, so what the deploy would change there is unknown (the plan above says why)\n  hint: fix the connection (ops ping demo), then run the dry run again\n');
    // a host not tried for input to fix (its placeholder address): exit 2 with or without --json, as the deploy itself
    const misconfigured: Connector = async (_e, host) => {
      if (host.name === 'web1') throw new InputError('web1 (deploy@203.0.113.10:22): 203.0.113.10 is a documentation address', 'set its address');
      return new RecordingRemote(host.name, 'deploy', 'shop', () => ({ stdout: opsLines(PROVISIONED_KEYS, 'provisioned yes') }));
    };
    for (const argv of [['diff', 'demo'], ['deploy', 'demo', '--dry-run'], ['deploy', 'demo', '--dry-run', '--json']]) {
      const r = await runOps(argv, { root: env.root, processEnv: { PATH: process.env.PATH }, connector: misconfigured });
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.out + r.err, argv.join(' ')).toContain('203.0.113.10 is a documentation address');
    }
  });

  it('with no SSH key at all (the real lookup): status gives each host\'s hint apart; a failure\'s document (no host read, several hosts\' errors) has a one-line error', async () => {
    // Addresses of real networks (never reached: no key): a documentation address is refused before the key is looked for.
    const env = testEnv({}, twoHosts.map((h, i) => ({ ...h, address: `10.254.0.${i + 1}` })));
    const processEnv = { PATH: process.env.PATH, HOME: mkdtempSync(join(tmpdir(), 'ops-nokey-')) };
    const status = JSON.parse((await runOps(['status', 'demo', '--json'], { root: env.root, processEnv })).out) as { hosts: { error: string; hint?: string }[] };
    expect(status.hosts[0]).toMatchObject({ error: 'no SSH key to log in with', hint: expect.stringContaining('give one of them') });
    for (const h of status.hosts) [h.error, h.hint].forEach(oneLine);
    for (const argv of [['releases'], ['audit'], ['lock', 'status'], ['rollback']]) {
      const r = await runOps([...argv, 'demo', '--json'], { root: env.root, processEnv });
      const doc = JSON.parse(r.out) as { ok: boolean; error: string; hint?: string };
      expect(doc.ok, argv.join(' ')).toBe(false);
      oneLine(doc.error);
      if (doc.hint !== undefined) oneLine(doc.hint);
    }
    // Both hosts failing alike: said once, its hint apart.
    const releases = JSON.parse((await runOps(['releases', 'demo', '--json'], { root: env.root, processEnv })).out) as { error: string; hint: string };
    expect(releases).toMatchObject({ error: 'cannot read any of the 2 hosts (web1, web2): no SSH key to log in with', hint: expect.stringContaining('give one of them') });
    // Failing each its own way: the error of several lines (one per host, on a terminal) is one line in the document.
    const connector: Connector = async (_e, host) => {
      throw host.name === 'web1' ? new OpsError('no SSH key to log in with', 'give one') : new OpsError('cannot connect to web2: timed out');
    };
    const r = await runOps(['audit', 'demo', '--json'], { root: env.root, processEnv, connector });
    expect(r.err).toContain('cannot read any of the 2 hosts:\n  - web1: no SSH key to log in with; hint: give one\n  - web2: cannot connect to web2: timed out\n');
    expect(JSON.parse(r.out)).toMatchObject({ error: 'cannot read any of the 2 hosts: web1: no SSH key to log in with; hint: give one; web2: cannot connect to web2: timed out' });
  });
});

describe("what the site's visitors get, proven by nginx's check log, read by real bash (servedShell: the switch's nginxServed)", () => {
  const env = testEnv({ programs: { server: { command: 'run', port: 3579, health: '/health' } }, routes: { '/': 'server' } });
  const CURRENT = '20261125T140000Z-0123456789ab';
  /**
   * servedShell run here on the live slot blue: nginx's check log and the enabled site are files of a temporary
   * directory (the site keeping the check log unless `unlogged`), and a `curl` first on PATH stands for nginx: it
   * writes the check log's line for each marked request as `answer(path)` says ('' for none: a location or server
   * block that does not keep it), and answers `code` (200 unless said). The host is reached at 192.0.2.1
   * (SSH_CONNECTION). `before`: shell run first (what the status step's earlier parts set).
   */
  /** `site`: the site's text instead (its check log kept or not as it is); `record`: ops's record of writing it (writtenRecord) beside it. */
  function served(answer: Record<string, string>, { logs = true, code = '200', before = '', site = undefined as string | undefined, record = false } = {}): string {
    const dir = mkdtempSync(join(tmpdir(), 'ops-served-'));
    const log = join(dir, 'check.log');
    writeFileSync(log, '');
    // (The check log's own path in its line, as the script's is replaced.)
    writeFileSync(join(dir, 'site'), site ?? (logs ? `server {\n    ${checkLog(env).replace(env.layout.nginxCheckLog, log)}\n}\n` : 'server {\n}\n'));
    if (record) writeFileSync(join(dir, '.site.ops-md5'), `${createHash('md5').update(site ?? '').digest('hex')}\n`);
    const cases = Object.entries(answer).map(([path, line]) => `  ${quote(path)}) ${line ? `printf '%s|%s\\n' "$id" ${quote(line)} >> ${quote(log)}` : ':'} ;;`).join('\n');
    writeFileSync(join(dir, 'curl'), `#!/bin/bash\nid=""; url=""\nwhile [ $# -gt 0 ]; do case $1 in -H) case $2 in "X-Ops-Check: "*) id=\${2#X-Ops-Check: } ;; esac; shift 2 ;; *) url=$1; shift ;; esac; done\npath=/\${url#*://*/}\ncase $path in\n${cases}\nesac\nprintf ${code}\n`);
    chmodSync(join(dir, 'curl'), 0o755);
    const script = servedShell(env).replaceAll(env.layout.nginxCheckLog, log).replaceAll(env.layout.nginxSiteEnabled, join(dir, 'site')).replaceAll(writtenRecord(env.layout.nginxSite), join(dir, '.site.ops-md5')).replaceAll(env.layout.nginxSite, join(dir, 'site'));
    const out = execFileSync('bash', ['-c', `${scriptPrelude}\n${MASK_FUNCTIONS}\ncur=${CURRENT}; live_slot=blue\n${before}\n${script}`], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, SSH_CONNECTION: '198.51.100.7 50000 192.0.2.1 22' } });
    // (The check log's path as the host's, in what the fixes quote.)
    return out.slice(out.indexOf(START_MARKER) + START_MARKER.length).replaceAll(log, env.layout.nginxCheckLog);
  }
  const parse = (lines: string) => parseHostStatus(env, { name: 'web1', address: '192.0.2.1' }, result(report({ upstream: ['shop_server 127.0.0.1:3579'], supervisor: 'no answer', supervisor_xml: undefined }) + lines));
  const port = env.port('server', 'blue');

  it("the live slot's port answered, nginx's line says so: served, proven; no problem", () => {
    const s = parse(served({ '/health': `200|200|127.0.0.1:${port}|-` }));
    expect(s.served).toEqual({ url: 'http://192.0.2.1', proven: true, ok: true });
    expect(s.problems.filter((p) => !p.startsWith('supervisor'))).toEqual([]);
    expect(s.warnings).toEqual([]);
  });

  it('no line for the request, none for /.ops/slot either: another server block takes the visitors, a problem saying the release is not what serves, with the fix', () => {
    const s = parse(served({ '/health': '', '/.ops/slot': '' }));
    expect(s.served).toMatchObject({ ok: false });
    expect(s.problems.filter((p) => !p.startsWith('supervisor'))).toEqual([
      `what the site's visitors get (http://192.0.2.1) is not release ${CURRENT} (live slot blue), which is current here: GET /health (program server): nginx answered 200, not from this site's server block: another server block answers 192.0.2.1:80 for the site's name (one listening on that address, "listen <address>:<port>", is taken before the site's "listen <port>"; or a default_server, or the same server_name loaded first), in: (no other file listens on port 80: see nginx -T) - remove it, or its listen/server_name, and reload nginx`,
    ]);
  });

  it("no line for the health path but one for /.ops/slot (the site's own server block answered; its health location sets its own access_log): unproven, a warning with the fix, not another server block", () => {
    const s = parse(served({ '/health': '', '/.ops/slot': '403|-|-|-' }));
    expect(s.served).toEqual({ url: 'http://192.0.2.1', proven: false, ok: true });
    expect(s.problems.filter((p) => !p.startsWith('supervisor'))).toEqual([]);
    expect(s.warnings).toEqual([
      `what the site's visitors get (http://192.0.2.1) cannot be proven to be release ${CURRENT} (live slot blue): GET /health (program server): nginx answered 200, the site's own server block answered, but the location that serves it sets its own access_log (e.g. "access_log off;"), which replaces the site's logs there, so nginx keeps no record of which upstream answered: add the check log's line to that location in a site template (nginx.site_template in environments/demo/environment.yml: the built-in one with these lines added), "${checkLog(env)}", so that what serves it can be proven`,
    ]);
  });

  it("a site sending the visitors elsewhere (edited by hand to the previous slot's port), and one answering itself: problems naming what answered", () => {
    const other = env.port('server', 'green');
    expect(parse(served({ '/health': `200|200|127.0.0.1:${other}|-` })).problems.filter((p) => !p.startsWith('supervisor'))).toEqual([
      `what the site's visitors get (http://192.0.2.1) is not release ${CURRENT} (live slot blue), which is current here: GET /health (program server): nginx answered 200 from 127.0.0.1:${other}, not from the slot's port 127.0.0.1:${port}: the site passes the health path to another address than the slot's (its own upstream or proxy_pass) in a site template (nginx.site_template in environments/demo/environment.yml: the built-in one with these lines added): proxy_pass http://shop_<program> (the upstream the switch moves), or {{locations}}`,
    ]);
    expect(parse(served({ '/health': '200|-|-|-' })).problems.filter((p) => !p.startsWith('supervisor'))[0]).toMatch(/GET \/health \(program server\): nginx answered 200 itself, from no upstream: the site answers the health path without passing it to the release/);
    // A maintenance page (error_page 502 =200) in front of a release nginx cannot pass on.
    expect(parse(served({ '/health': `200|502|127.0.0.1:${port}|-` })).problems.filter((p) => !p.startsWith('supervisor'))[0]).toMatch(
      new RegExp(`^nginx does not give the site's visitors what release ${CURRENT} \\(live slot blue\\) answers \\(http://192\\.0\\.2\\.1\\): GET /health \\(program server\\): nginx answered 200, but the release answered 502 \\(127\\.0\\.0\\.1:${port}\\); .*drop "=<code>"`),
    );
  });

  it("a 5xx through nginx while the live release fails its own health checks (a program stopped): said to be the release's failure passed on, never that the release answers its checks and nginx cannot pass them on", () => {
    const fail = (before: string) => parse(served({ '/health': `502|502|127.0.0.1:${port}|-` }, { code: '502', before })).problems.filter((p) => p.startsWith('nginx does not give'));
    const [own] = fail('health_failed=1');
    expect(own).toMatch(new RegExp(`^nginx does not give the site's visitors what release ${CURRENT} \\(live slot blue\\) answers \\(http://192\\.0\\.2\\.1\\): GET /health \\(program server\\): 502; `));
    expect(own).toContain('the release fails its health checks on its own ports too (see the health check problem): nginx passes on its failure');
    expect(own).not.toContain('answers its health checks on its own ports');
    // Its own probes passed: nginx is what fails it (the switch's words).
    expect(fail('health_failed=0')[0]).toContain('the release answers its health checks on its own ports, but nginx cannot pass them on');
    // The status step sets it in its health probes, before it asks nginx.
    const script = hostStatus(env).script;
    expect(script.indexOf('health_failed=1')).toBeGreaterThan(-1);
    expect(script.indexOf('health_failed=1')).toBeLessThan(script.indexOf(servedShell(env)));
  });

  it('a site that keeps no check log (a custom template without {{logs}}, a site edited by hand): a warning that nothing is proven; the one-screen view says so', () => {
    const s = parse(served({ '/health': '' }, { logs: false }));
    expect(s.served).toEqual({ url: 'http://192.0.2.1', proven: false, ok: true });
    expect(s.warnings).toEqual([`what the site's visitors get (http://192.0.2.1) cannot be proven to be release ${CURRENT} (live slot blue): the enabled site /etc/nginx/sites-enabled/shop does not keep nginx's check log ("${checkLog(env)}": a custom site template without {{logs}} with {{upstreams_include}}, or a site edited by hand; ops deploy demo --ref 0123456789abcdef0123456789abcdef01234567 --force writes it again)`]);
    const text = formatStatus({ environment: 'demo', url: '', healthy: true, hosts: [s], problems: [], warnings: [] }, new Date('2026-11-25T15:00:00Z'));
    expect(text).toContain(`    visitors    ? get release ${CURRENT} (not proven: see warnings) at http://192.0.2.1`);
    const bad = parse(served({ '/health': '', '/.ops/slot': '' }));
    expect(formatStatus({ environment: 'demo', url: '', healthy: false, hosts: [bad], problems: [], warnings: [] })).toContain(`    visitors    ✗ do NOT get release ${CURRENT} (see problems) at http://192.0.2.1`);
  });

  it('a site an older ops wrote (f60824ff: before sites kept the check log; its header, no record of ops writing it): said to be that, and that the next deploy or provision writes it with the log; the same site with a record (this ops wrote it, edited since): the generic warning', () => {
    // The site as ops f60824ff (2026-12-01) wrote it on a real host: test/fixtures/upgrade-f60824ff/README.md.
    const older = readFileSync(new URL('../fixtures/upgrade-f60824ff/nginx-site', import.meta.url), 'utf8');
    const s = parse(served({ '/health': '' }, { site: older }));
    expect(s.served).toEqual({ url: 'http://192.0.2.1', proven: false, ok: true });
    expect(s.warnings).toEqual([`what the site's visitors get (http://192.0.2.1) cannot be proven to be release ${CURRENT} (live slot blue): the enabled site /etc/nginx/sites-enabled/shop was written by an older ops (its header, and no record of this one writing it), before sites kept nginx's check log ("${checkLog(env)}"); the next deploy or provision writes it with it (now: ops deploy demo --ref 0123456789abcdef0123456789abcdef01234567 --force, or ops provision demo)`]);
    expect(parse(served({ '/health': '' }, { site: older, record: true })).warnings[0]).toContain('a custom site template without {{logs}} with {{upstreams_include}}, or a site edited by hand');
  });

  it("is the status step's, in the one step, after the health probes", () => {
    const script = hostStatus(env).script;
    expect(script).toContain(servedShell(env));
    expect(script.indexOf(servedShell(env))).toBeGreaterThan(script.indexOf('wait_healthy'));
  });
});
