// tls.mode letsencrypt when the site's names change: the site moves to them only once their certificate exists (tlsPlan,
// read from prepareTls's servingSite by real bash), the certificate naming names no longer served is reissued
// (cert_beyond), and the one ops issued for the old names is deleted once nothing serves it (retireCertificate).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseReports } from '../../core/remote/types.ts';
import { formatCerts, renewCertificates } from '../../core/ops/certs.ts';
import { CERTS_KEYS, listCertificates, renewCertificate, usedCertificates } from '../../core/steps/certs.ts';
import { RecordingRemote } from '../../core/remote/recording.ts';
import { MemoryReporter } from '../../core/report.ts';
import { LOCK_KEYS } from '../../core/steps/lock.ts';
import { opsLines } from './reports.helpers.ts';
import { deployState } from '../../core/steps/release.ts';
import { rollbackStep, switchTo } from '../../core/steps/switch.ts';
import { parseState, pendingNames, servedTarget } from '../../core/ops/host-state.ts';
import { refuseUnready } from '../../core/ops/deploy-host.ts';
import { scriptPrelude } from '../../core/remote/wrap.ts';
import { CERT_FUNCTIONS, LIBRARY_KEYS } from '../../core/steps/libraries.ts';
import { acmePendingSite, coveredTarget, site } from '../../core/steps/nginx-config.ts';
import { provisionNginx } from '../../core/steps/nginx.ts';
import { certbotCertonly, issueCertificate, parseTlsState, retireCertificate, servingSite, siteMoves, TLS_KEYS, tlsPlan, type TlsState } from '../../core/steps/tls.ts';
import { testEnv } from './status.helpers.ts';

const md5 = (text: string) => createHash('md5').update(text).digest('hex');
const LE = { mode: 'letsencrypt', email: 'ops@shop.fr' };
const env = (domain: string, aliases: string[] = [], tls: Record<string, unknown> = LE) => testEnv({ domain, aliases, tls });

/** A certificate (and its key) naming `names`, made by openssl in `dir`. */
function certificate(dir: string, names: string[]): { cert: string; key: string } {
  const cert = join(dir, `${names[0]}.crt`);
  const key = join(dir, `${names[0]}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '5', '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`, '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

describe('the site serving now, read by real bash (servingSite)', () => {
  it("ops's TLS site for the old names: its names and certificate; its key replaced: not servable; a site not ops's, or not enabled: nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-tls-names-'));
    const old = env('old.example.org', ['www.old.example.org']);
    const now = env('new.example.org');
    const c = certificate(dir, ['old.example.org', 'www.old.example.org']);
    const text = site(old, true).replaceAll(`/etc/letsencrypt/live/old.example.org/fullchain.pem`, c.cert).replaceAll(`/etc/letsencrypt/live/old.example.org/privkey.pem`, c.key);
    const sitePath = join(dir, 'site');
    const enabled = join(dir, 'enabled');
    writeFileSync(sitePath, text);
    writeFileSync(enabled, text);
    const read = () => {
      const script = servingSite(now).replaceAll(now.layout.nginxSite, sitePath).replaceAll(now.layout.nginxSiteEnabled, enabled);
      const out = execFileSync('bash', ['-c', `${scriptPrelude}\n${CERT_FUNCTIONS}\n${script}`], { encoding: 'utf8' });
      return parseTlsState({ stdout: out, stderr: '', code: 0, durationMs: 0, reports: [...parseReports(out), ['certificate', 'no']] });
    };
    expect(read()).toEqual({ certificate: false, lacks: [], site: { names: ['old.example.org', 'www.old.example.org'], cert: c.cert, certOk: true } });
    writeFileSync(c.key, execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']));
    expect(read().site?.certOk).toBe(false);
    writeFileSync(sitePath, text.replace(/^[^\n]*\n/, '# my own site\n'));
    expect(read().site).toBeUndefined();
    writeFileSync(sitePath, site(old, false));
    expect(read().site).toEqual({ names: ['old.example.org', 'www.old.example.org'], cert: '', certOk: false });
  });
});

describe('tlsPlan: the site moves to its names only once their certificate exists', () => {
  const served = (names: string[], cert = '/etc/letsencrypt/live/old.example.org/fullchain.pem', certOk = true): TlsState['site'] => ({ names, cert, certOk });
  it('every shape of a change of names', () => {
    const e = env('example.org', ['www.example.org']);
    // issued and naming them all (a name removed too): the site is written for them
    expect(tlsPlan(e, { certificate: true, lacks: [], site: served(['example.org', 'www.example.org', 'old.example.org']) })).toEqual({ ready: true, missing: [] });
    // a name added beside the domain: its certificate lacks it; the site kept, the challenge of the new name beside it
    expect(tlsPlan(e, { certificate: true, lacks: ['www.example.org'], site: served(['example.org'], '/etc/letsencrypt/live/example.org/fullchain.pem') })).toEqual({
      ready: false, missing: ['www.example.org'], keep: { serving: ['example.org'], pending: ['www.example.org'] },
    });
    // the domain replaced: a lineage not issued yet
    expect(tlsPlan(env('new.example.org'), { certificate: false, lacks: [], site: served(['old.example.org']) })).toEqual({
      ready: false, missing: ['new.example.org'], keep: { serving: ['old.example.org'], pending: ['new.example.org'] },
    });
    // tls off -> letsencrypt, the same names: the plain site is written again (nothing else to keep)
    expect(tlsPlan(e, { certificate: false, lacks: [], site: served(['www.example.org', 'example.org'], '', false) })).toEqual({ ready: false, missing: ['example.org', 'www.example.org'] });
    // tls off -> letsencrypt with the domain replaced: the plain site of the old names is kept
    expect(tlsPlan(env('new.example.org'), { certificate: false, lacks: [], site: served(['old.example.org'], '', false) }).keep).toEqual({ serving: ['old.example.org'], pending: ['new.example.org'] });
    // the certificate of the same names not servable (its key replaced by hand): nothing to keep, http until it is issued
    expect(tlsPlan(e, { certificate: false, lacks: [], site: served(['example.org', 'www.example.org'], '/etc/letsencrypt/live/example.org/fullchain.pem', false) }).keep).toBeUndefined();
    // a first provision: nothing serves
    expect(tlsPlan(e, { certificate: false, lacks: [] })).toEqual({ ready: false, missing: ['example.org', 'www.example.org'] });
  });

  it('what a failure says: the names without a certificate, what still serves, what to do; a first provision: nothing to keep', () => {
    const e = env('new.example.org');
    const state: TlsState = { certificate: false, lacks: [], site: { names: ['old.example.org'], cert: '/etc/letsencrypt/live/old.example.org/fullchain.pem', certOk: true } };
    expect(issueCertificate(e, false, tlsPlan(e, state), state).script).toContain(
      "cert_left='no certificate yet for new.example.org: the site still serves old.example.org as before (https, with its current certificate), and answers only the ACME challenge of new.example.org (port 80); once the DNS of new.example.org points at this host (A/AAAA records), run ops provision demo again: the site then moves to new.example.org'",
    );
    const first: TlsState = { certificate: false, lacks: [] };
    expect(issueCertificate(e, false, tlsPlan(e, first), first).script).toContain('no certificate yet for new.example.org, and no https site here before to keep serving (a first provision): the site answers on port 80 only (http) until it is issued');
  });

  it("provision's nginx: kept, the site is not written and the pending names get the challenge alone; once ready, that server goes", () => {
    const e = env('new.example.org');
    const kept = provisionNginx(e, false, { pending: ['new.example.org'] }).script;
    expect(kept).not.toContain(e.layout.nginxSite + "'");
    expect(kept).not.toContain('server_name new.example.org;\n    access_log /var/log/nginx/shop.access.log;\n    error_log /var/log/nginx/shop.error.log;\n    ops_check');
    expect(kept).toContain('/etc/nginx/sites-enabled/shop.acme-pending');
    expect(acmePendingSite(e, ['new.example.org'])).toContain('server_name new.example.org;');
    expect(acmePendingSite(e, ['new.example.org'])).toContain('location ^~ /.well-known/acme-challenge/ {\n        root /var/www/letsencrypt;');
    expect(provisionNginx(e, true).script).toContain("[ ! -e /etc/nginx/sites-enabled/shop.acme-pending ] || { rm -f /etc/nginx/sites-enabled/shop.acme-pending; CHANGED=1; }");
  });
});

describe('certificates of names no longer served', () => {
  it('cert_beyond names what the certificate lists beyond the names served (compared in lower case); the certificate step reissues it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-tls-beyond-'));
    const c = certificate(dir, ['example.org', 'WWW.example.org', 'old.example.net']);
    const beyond = (...names: string[]) => execFileSync('bash', ['-c', `ops_report() { :; }\n${CERT_FUNCTIONS}\ncert_beyond "$@"`, 'x', c.cert, ...names], { encoding: 'utf8' });
    expect(beyond('example.org', 'www.example.org')).toBe('old.example.net');
    expect(beyond('example.org', 'Www.example.org', 'old.example.net', 'new.example.org')).toBe('');
    expect(beyond('example.org')).toBe('www.example.org old.example.net');
    expect(issueCertificate(env('example.org'), false).script).toContain('elif cert_extra=$(cert_beyond /etc/letsencrypt/live/example.org/fullchain.pem example.org) && [ -n "$cert_extra" ]; then');
  });

  it("retireCertificate: only a lineage of certbot's that ops issued (its webroot), not the site's own, once no file nginx loads names it", () => {
    const e = env('new.example.org');
    expect(retireCertificate(e, '/etc/letsencrypt/live/new.example.org/fullchain.pem')).toBeUndefined();
    expect(retireCertificate(e, '/etc/ssl/shop/old.example.org.crt')).toBeUndefined();
    const dir = mkdtempSync(join(tmpdir(), 'ops-tls-retire-'));
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const conf = join(dir, 'old.example.org.conf');
    // nginx -T: what the stub is given; certbot: says what it was asked
    writeFileSync(join(bin, 'nginx'), `#!/bin/sh\ncat ${dir}/loaded\n[ ! -e ${dir}/broken ]\n`);
    writeFileSync(join(bin, 'certbot'), `#!/bin/sh\necho "$*" > ${dir}/asked\n`);
    chmodSync(join(bin, 'nginx'), 0o755);
    chmodSync(join(bin, 'certbot'), 0o755);
    const run = (renewal: string, loaded: string) => {
      writeFileSync(conf, renewal);
      writeFileSync(join(dir, 'loaded'), loaded);
      writeFileSync(join(dir, 'asked'), '');
      const script = retireCertificate(e, '/etc/letsencrypt/live/old.example.org/fullchain.pem')!.script.replaceAll('/etc/letsencrypt/renewal/old.example.org.conf', conf);
      const out = execFileSync('bash', ['-c', `${scriptPrelude}\n${script.replace('host_lock certbot 300', ':').replace('host_unlock certbot', ':')}`], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
      return { out, asked: execFileSync('cat', [join(dir, 'asked')], { encoding: 'utf8' }).trim() };
    };
    const ours = '[renewalparams]\nauthenticator = webroot\nwebroot_path = /var/www/letsencrypt,\n[[webroot_map]]\nold.example.org = /var/www/letsencrypt\n';
    const deleted = run(ours, '# configuration file /etc/nginx/sites-enabled/shop:\n    ssl_certificate /etc/letsencrypt/live/new.example.org/fullchain.pem;\n');
    expect(deleted.asked).toBe('delete -n --cert-name old.example.org');
    expect(deleted.out).toContain('deleted the certificate ops had issued for old.example.org (certbot delete --cert-name old.example.org): the site no longer serves those names');
    // still named by a file nginx loads (another site of the host's): kept
    expect(run(ours, '    ssl_certificate /etc/letsencrypt/live/old.example.org/fullchain.pem;\n').asked).toBe('');
    // nginx -T failing (what nginx loads not known): kept
    writeFileSync(join(dir, 'broken'), '');
    expect(run(ours, '').asked).toBe('');
    rmSync(join(dir, 'broken'));
    expect(run(ours, '').asked).toBe('delete -n --cert-name old.example.org');
    // issued by someone else (another authenticator, another webroot): never touched
    expect(run('[renewalparams]\nauthenticator = nginx\n', '').asked).toBe('');
    expect(run(ours.replaceAll('/var/www/letsencrypt', '/var/www/html'), '').asked).toBe('');
  });
});

describe('ops certs: the certificates no served name uses', () => {
  it('the files nginx -T names (ssl_certificate, not _key, nor in a comment), read by real bash; one of certbot\'s none names is said unused, with the command that deletes it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-tls-used-'));
    writeFileSync(join(dir, 'nginx'), `#!/bin/sh\nprintf '%s\\n' '# configuration file /etc/nginx/sites-enabled/shop:' '    ssl_certificate /etc/letsencrypt/live/new.example.org/fullchain.pem;' '    ssl_certificate_key /etc/letsencrypt/live/new.example.org/privkey.pem;' '#   ssl_certificate /etc/letsencrypt/live/gone.example.org/fullchain.pem;' 'ssl_certificate /etc/ssl/x.crt; # other'\n`);
    chmodSync(join(dir, 'nginx'), 0o755);
    const script = listCertificates(env('new.example.org')).script;
    const loop = script.slice(script.indexOf('while IFS= read -r f; do [ -z "$f" ] || ops_report nginx_cert'));
    const out = execFileSync('bash', ['-c', `${scriptPrelude}\n${loop.slice(0, loop.indexOf('sort -u)') + 'sort -u)'.length)}`], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
    const used = usedCertificates({ stdout: out, stderr: '', code: 0, durationMs: 0, reports: parseReports(out) });
    expect([...(used ?? [])]).toEqual(['/etc/letsencrypt/live/new.example.org/fullchain.pem', '/etc/ssl/x.crt']);
    expect(CERTS_KEYS.nginx_cert).toBe('nginx_cert');
    const cert = (path: string) => ({ path, state: 'ok' as const, names: ['x.example.org'], daysLeft: 80, notAfter: '2027-03-01T00:00:00.000Z', serial: 'AB' });
    const text = formatCerts({ environment: 'demo', mode: 'letsencrypt', ok: true, hosts: [{ host: 'web1', configured: '/etc/letsencrypt/live/new.example.org/fullchain.pem', certificates: [cert('/etc/letsencrypt/live/new.example.org/fullchain.pem'), cert('/etc/letsencrypt/live/gone.example.org/fullchain.pem')], unused: ['/etc/letsencrypt/live/gone.example.org/fullchain.pem'], problems: [], warnings: [] }] });
    expect(text).toContain("      file     /etc/letsencrypt/live/gone.example.org/fullchain.pem\n      unused   no server block of nginx names it: no served name uses it, and certbot's timer still renews it (failing once its names' DNS moves); if nothing else needs it: sudo certbot delete --cert-name gone.example.org");
    expect(text.match(/unused/g)).toHaveLength(1);
  });
});

describe('certbot_failure names the names the ACME server could not validate', () => {
  it("certbot's Domain: lines, not the lineage's name; without them, the lineage's", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-tls-failure-'));
    const log = join(dir, 'log');
    const say = (text: string) => {
      writeFileSync(log, text);
      return execFileSync('bash', ['-c', `${scriptPrelude}\n${CERT_FUNCTIONS}\ncertbot_failure 1 ${log} example.org https://acme.test/dir /var/www/letsencrypt 'left' 2>&1`], { encoding: 'utf8' });
    };
    const out = say('Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:\n  Domain: www.example.org\n  Type:   connection\n  Detail: could not resolve\n');
    expect(out).toContain('certbot could not get a certificate for example.org: www.example.org must resolve to this host');
    expect(out).toContain('the ACME server could not validate www.example.org (Type: connection Detail: could not resolve). left. To fix: the DNS record of www.example.org (A/AAAA to this host)');
    expect(say('Challenge failed\n')).toContain('example.org must resolve to this host and its port 80 be reachable from the ACME server, answering /.well-known/acme-challenge/ from /var/www/letsencrypt; the ACME server could not validate it. left');
  });
});

describe("another certbot run on the host (the renewal timer's) holding certbot's own lock", () => {
  /** certbotCertonly run by bash with a certbot on PATH that finds the lock held for its first `held` runs, then succeeds: its output, exit code and runs. */
  const run = (held: number) => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-certbot-lock-'));
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(dir, 'bin', 'certbot'), `#!/bin/bash\nn=$(( $(cat ${dir}/runs 2>/dev/null || echo 0) + 1 )); echo $n > ${dir}/runs\nif [ $n -le ${held} ]; then echo 'Another instance of Certbot is already running.'; exit 1; fi\necho issued\n`);
    chmodSync(join(dir, 'bin', 'certbot'), 0o755);
    const env = testEnv({ domain: 'example.org', tls: { mode: 'letsencrypt', email: 'ops@example.org' } });
    // The waits between tries (sleep 5) and the host's locks stood in for; the HTTP-01 path taken as reaching the webroot.
    const script = `${scriptPrelude}\n${CERT_FUNCTIONS}\nhost_lock() { :; }\nhost_unlock() { :; }\nsleep() { :; }\nacme_path_problem() { :; }\n${certbotCertonly(env, false, '', 'left')}\necho certbot done`;
    const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}` } });
    const runs = Number(readFileSync(join(dir, 'runs'), 'utf8'));
    rmSync(dir, { recursive: true, force: true });
    return { out: r.stdout + r.stderr, code: r.status, runs };
  };

  it('is waited for (certbot tried again every 5 s), not failed on; past 120 s, said as such with what to check', () => {
    expect(run(0)).toMatchObject({ code: 0, runs: 1 });
    const waited = run(3);
    expect(waited).toMatchObject({ code: 0, runs: 4 });
    expect(waited.out).toContain('certbot done');
    const lasting = run(1000);
    expect(lasting).toMatchObject({ code: 1, runs: 25 });
    expect(lasting.out).toContain("certbot could not get a certificate for example.org: another certbot run on this host (its renewal timer's, certbot.service, or one started by hand) held certbot's lock all the time this run waited. left. Run ops provision demo again once fixed. To fix: see what runs (systemctl status certbot.service; pgrep -a certbot), then run again once it ends");
  });
});

describe('the names nginx serves over https are names the certificate in use names (a deploy, a rollback after a provision adding an alias failed)', () => {
  const e = () => env('example.org', ['www.example.org']);
  /** The lines of `script` (a step's) that start with `start`, run by real bash with the certificate at `cert` for the environment's. */
  const runLines = (script: string, start: string, cert: string, tail = '') => {
    const lines = script.split('\n').filter((l) => l.trimStart().startsWith(start)).join('\n');
    expect(lines).not.toBe('');
    return execFileSync('bash', ['-c', `${scriptPrelude}\n${CERT_FUNCTIONS}\n${lines.replaceAll('/etc/letsencrypt/live/example.org/fullchain.pem', cert)}\n${tail}`], { encoding: 'utf8' }).replace(/^\n?@ops-start\n/, '');
  };

  it("the deploy's state read says which names the certificate lacks; the switch writes the site for the others only, said", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-tls-deploy-'));
    const c = certificate(dir, ['example.org']);
    const out = runLines(deployState(e()).script, 'ops_report certificate', c.cert) + runLines(deployState(e()).script, 'ops_report cert_lacks', c.cert);
    const state = parseState({ stdout: out, stderr: '', code: 0, durationMs: 0, reports: parseReports(out) });
    expect(state).toMatchObject({ certificate: true, certLacks: ['www.example.org'] });
    const written = switchTo(servedTarget(e(), state), 'green', 'r1', state.certificate).script;
    // the site written (its 443 server with the domain's certificate) names the alias nowhere: not served until issued
    const domainOnly = site(e(), true).replaceAll('www.example.org', 'x');
    expect(written).toContain(`host_file_new=${md5(site(coveredTarget(e(), ['www.example.org']), true))}`);
    expect(site(coveredTarget(e(), ['www.example.org']), true)).not.toContain('www.example.org');
    expect(domainOnly).toContain('server_name example.org;');
    expect(written).not.toContain(`host_file_new=${md5(site(e(), true))}`);
    expect(pendingNames(e(), 'web1', state)).toBe(
      'web1: the TLS certificate there does not name www.example.org yet (aliases added since it was issued), so the site serves example.org only and that name gets no https until its certificate exists: ops provision demo issues it (its DNS pointing at the host) and the site then serves it',
    );
    // issued for both: the site names both, nothing said
    const both = certificate(dir, ['example.org', 'www.example.org']);
    const ready = runLines(deployState(e()).script, 'ops_report cert_lacks', both.cert);
    const full = parseState({ stdout: ready, stderr: '', code: 0, durationMs: 0, reports: [...parseReports(ready), ['certificate', 'yes']] });
    expect(full.certLacks).toEqual([]);
    expect(switchTo(servedTarget(e(), full), 'green', 'r1', true).script).toContain(`host_file_new=${md5(site(e(), true))}`);
    expect(pendingNames(e(), 'web1', full)).toBeUndefined();
  });

  it('a certificate not naming the domain is none of the site: the deploy refuses, nothing changed', () => {
    const state = { certificate: true, certLacks: ['example.org'] };
    expect(() => refuseUnready(e(), [{ host: 'web1', state: { ...parseState({ stdout: '', stderr: '', code: 0, durationMs: 0, reports: [] }), ...state } }])).toThrow(
      "web1's TLS certificate /etc/letsencrypt/live/example.org/fullchain.pem does not name example.org",
    );
  });

  it("a rollback's switch keeps the site as it serves (over https) when the certificate lacks an alias, as the host tells it", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-tls-rollback-'));
    const script = rollbackStep(e(), undefined, '', { done: ':', refused: ':' }).script;
    const verdict = (names: string[]) => runLines(script, 'cert=no;', certificate(dir, names).cert, 'printf %s "$cert"');
    expect(verdict(['example.org'])).toBe('kept');
    expect(verdict(['example.org', 'www.example.org'])).toBe('yes');
    // the variant run then writes no site, and asks for the slot over https
    const kept = switchTo(e(), 'green', 'r1', 'kept', 'rollback').script;
    expect(kept).not.toContain(`put_file ${e().layout.nginxSite} `);
    expect(switchTo(e(), 'green', 'r1', true, 'rollback').script).toContain(`put_file ${e().layout.nginxSite} `);
    expect(kept).toContain('--resolve example.org:443:"$gate_at" https://example.org/.ops/slot');
    expect(script).toContain('green:kept)');
  });

  it("the no-op's look at the live site expects the site a deploy writes for the certificate there", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-tls-live-'));
    const script = deployState(e(), [], { commit: 'a'.repeat(40), fingerprint: 'f' }).script;
    const start = script.indexOf('if [ ! -s /etc/letsencrypt/live/example.org/fullchain.pem ]; then expected_site=');
    expect(start).toBeGreaterThan(-1);
    const block = script.slice(start, script.indexOf('\nfi\n', start) + 3);
    // the certificate's path in the tests only (not in the site's text)
    const test = (cert: string) => block.replaceAll('-s /etc/letsencrypt/live/example.org/fullchain.pem', `-s ${cert}`).replaceAll('cert_lacks /etc/letsencrypt/live/example.org/fullchain.pem', `cert_lacks ${cert}`);
    const expected = (names: string[]) =>
      execFileSync('bash', ['-c', `${CERT_FUNCTIONS}\n${test(certificate(dir, names).cert)}\nprintf %s "$expected_site"`], { encoding: 'utf8' });
    expect(expected(['example.org'])).toBe(site(coveredTarget(e(), ['www.example.org']), true));
    expect(expected(['example.org', 'www.example.org'])).toBe(site(e(), true));
  });
});

describe('ops certs --renew while the site serves other names than the settings', () => {
  it('the site moves once the certificate exists (provision\'s nginx step), read from what serves (siteMoves)', () => {
    const e = env('example.org', ['www.example.org']);
    const state = (names: string[]): TlsState => ({ certificate: true, lacks: [], site: { names, cert: '/etc/letsencrypt/live/example.org/fullchain.pem', certOk: true } });
    expect(siteMoves(e, state(['example.org']))).toBe(true);
    expect(siteMoves(e, state(['example.org', 'WWW.example.org']))).toBe(false);
    expect(siteMoves(e, state(['example.org', 'www.example.org', 'old.example.org']))).toBe(true);
    expect(siteMoves(e, { certificate: true, lacks: [] })).toBe(false);
    // the site on port 80 only (TLS turned on, its certificate not got then): moved to https once it exists
    expect(siteMoves(e, { certificate: true, lacks: [], site: { names: ['example.org', 'www.example.org'], cert: '', certOk: false } })).toBe(true);
    // the renewal step reads the site serving (servingSite's reports), as provision's TLS step does
    expect(renewCertificate(e, false).script).toContain(servingSite(e));
    const text = formatCerts({ environment: 'demo', mode: 'letsencrypt', ok: true, hosts: [{ host: 'web1', certificates: [], problems: [], warnings: [], renewed: true, moved: ['example.org', 'www.example.org'] }] });
    expect(text).toContain('the site now serves example.org, www.example.org: their certificate exists, so the site moved to them (as ops provision moves it)');
  });

  it('a renewal on a host whose site serves the domain alone while the settings add an alias: the site moves (provision\'s nginx step), then the certificates are read again; serving the settings\' names: nothing more', async () => {
    const e = env('example.org', ['www.example.org']);
    const live = '/etc/letsencrypt/live/example.org/fullchain.pem';
    const renewed = (names: string) =>
      opsLines({ ...CERTS_KEYS, ...LIBRARY_KEYS, ...TLS_KEYS }, `site_names ${names}`, `site_cert ${live}`, 'site_cert_ok yes', `configured ${live}`, `cert ${live}\tnotAfter=Feb 20 10:00:00 2027 GMT`, `cert ${live}\tDNS:example.org`, `cert ${live}\tDNS:www.example.org`, 'served_serial 0A');
    const run = async (names: string) => {
      const remote = new RecordingRemote('web1', 'deploy', 'shop', (step) => (step.name === 'lock' ? { stdout: opsLines(LOCK_KEYS, 'lock acquired') } : step.name === 'renew certificate' || step.name === 'certificates' ? { stdout: renewed(names) } : undefined));
      const r = await renewCertificates({ root: e.root, reporter: new MemoryReporter(), processEnv: {}, connector: async () => remote }, e);
      return { r, remote };
    };
    const moved = await run('example.org');
    expect(moved.remote.stepNames()).toEqual(['lock', 'renew certificate', 'nginx', 'certificates', 'unlock']);
    expect(moved.remote.runs[2]!.step.script).toContain(`host_file_new=${md5(site(e, true))}`);
    expect(moved.r.hosts[0]!.moved).toEqual(['example.org', 'www.example.org']);
    expect(moved.remote.runs[4]!.step.script).toMatch(/certificate renewed, expires 2027-02-20T10:00:00.000Z; the site moved to example.org, www.example.org/);
    const kept = await run('example.org www.example.org');
    expect(kept.remote.stepNames()).toEqual(['lock', 'renew certificate', 'unlock']);
    expect(kept.r.hosts[0]!.moved).toBeUndefined();
  });
});
