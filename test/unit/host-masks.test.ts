// Secrets masked on the host (core/steps/masks.ts, core/steps/sh/mask.sh), for what ops status, ops logs and a failed
// start quote of the app's output where the runner may know no value (status.yml runs without the age key): run by
// bash on a scratch host tree, with what python3 and node really print, an HTTP server answering 503 with a secret
// in its body, and a log file.
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect, promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { MemoryReporter } from '../../core/report.ts';
import { parseReports, reported, type Step } from '../../core/remote/types.ts';
import { scriptText } from '../../core/remote/wrap.ts';
import { MASK_FUNCTIONS, probeLibrary, SUPERVISOR_FUNCTIONS } from '../../core/steps/libraries.ts';
import { logsStep } from '../../core/steps/logs.ts';
import { maskArgs, maskText, releaseMasks } from '../../core/steps/masks.ts';
import { healthShell, STATUS_KEYS } from '../../core/steps/status.ts';
import { startSlot } from '../../core/steps/switch.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { formatStatus, status } from '../../core/ops/status.ts';
import { RecordingRemote } from '../../core/remote/recording.ts';
import { SecretsFile, generateIdentity } from '../../core/secrets/index.ts';
import { fromPlain, type MapNode } from '../../core/secrets/tree.ts';
import { report, testEnv } from './status.helpers.ts';

const run = promisify(execFile);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

const SECRET_KEY = 'Pa"ss\\word-long-secret-2026';
const DB_PASSWORD = 's3cr@t Pw/ü';
const DATABASE_URL = `postgresql+asyncpg://app:${encodeURIComponent(DB_PASSWORD)}@10.230.0.1:5432/app`;
const PASSWORDS = JSON.stringify({ 'admin@example.org': "adm1n 'pass' word" });
const PEM = 'first-line-of-key\nsecond-line-of-key';
const VALUES = { SECRET_KEY, DATABASE_URL, PASSWORDS, PEM, FLAG: 'true', SHORT: 'ab' };
/** Every secret's tell-tale text: none may appear once masked. */
const TELLS = /long-secret|s3cr|adm1n|line-of-key/;

const ID = '20261201T100000Z-0123456789ab';

/**
 * A scratch host tree: releases/<id> with its environ, and its masks file where `masks` says: in its record
 * (layout.record, as ops makes a release), in its own directory (a release made by an older ops, which has no record),
 * or none (a release deployed before masks files).
 */
function target(port = 8000, masks: 'record' | 'own' | 'none' = 'record'): Target {
  const base = mkdtempSync(join(tmpdir(), 'ops-host-masks-'));
  const config = parseEnvironment(
    {
      app: 'shop',
      hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }],
      programs: { web: { command: 'run', port, health: '/health' } },
      routes: { '/': 'web' },
      env: { APP_NAME: 'shop-catalogue', ...Object.fromEntries(Object.keys(VALUES).map((k) => [k, { secret: k.toLowerCase() }])) },
    },
    'test',
  );
  const t = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'root', baseDir: base, url: 'http://x' });
  const dir = `${t.layout.releases}/${ID}`;
  mkdirSync(dir, { recursive: true });
  const environ = Object.entries({ APP_NAME: 'shop-catalogue', ...VALUES })
    .map(([k, v]) => `${k}=${v}\0`)
    .join('');
  writeFileSync(t.layout.environ(dir), environ, { mode: 0o600 });
  if (masks === 'record') mkdirSync(t.layout.record(ID), { recursive: true });
  if (masks !== 'none') writeFileSync(t.layout.masks(masks === 'record' ? t.layout.record(ID) : dir), releaseMasks(t, environ), { mode: 0o600 });
  return { ...t, layout: { ...t.layout, logDir: join(base, 'log') } };
}

/** `text` through the host's mask_text for `t`. */
function hostMasked(t: Target, text: string): string {
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', `set -euo pipefail\n${MASK_FUNCTIONS}\n${maskText(t)}`], { input: text, encoding: 'utf8', timeout: 10_000 });
  expect(r.error, 'mask_text ended').toBeUndefined();
  expect(r.stderr).toBe('');
  return r.stdout;
}

/** What apps print of the secrets: Python (print of a settings dict, repr, json.dumps, urlparse, quote_plus) and node. */
function printed(): string {
  const py = spawnSync(
    'python3',
    [
      '-c',
      `import json, os, sys, urllib.parse as u
v = json.load(sys.stdin)
print("settings", {k: v[k] for k in ("SECRET_KEY", "DATABASE_URL")})
print("repr", repr(v["SECRET_KEY"]), repr(v["SECRET_KEY"].encode()))
print("json", json.dumps(v), json.dumps(v, ensure_ascii=False))
p = u.urlparse(v["DATABASE_URL"]).password
print("password", p, u.unquote(p), u.quote(u.unquote(p)), u.quote_plus(u.unquote(p)))
print("passwords", json.loads(v["PASSWORDS"]))
print("pem", v["PEM"])`,
    ],
    { input: JSON.stringify(VALUES), encoding: 'utf8' },
  ).stdout;
  return `${py}node ${inspect({ ...VALUES })}\nnode ${JSON.stringify(VALUES)}\n`;
}

describe('mask_text: the secrets of the releases kept on a host, masked there', () => {
  it('masks what the runner masks, in what python3 and node print of them (a release with its masks file)', () => {
    const t = target();
    const text = printed();
    expect(text).toMatch(TELLS);
    const runner = new MemoryReporter();
    for (const v of [SECRET_KEY, DATABASE_URL, PASSWORDS, PEM]) runner.mask(v);
    const host = hostMasked(t, text);
    expect(host).not.toMatch(TELLS);
    // Line by line, as logs come (a multi-line value is masked a line at a time).
    expect(host).toBe(text.split('\n').map((l) => runner.redact(l)).join('\n'));
    // Plain values, booleans and parts too short to mask are left alone, as the runner leaves them.
    expect(hostMasked(t, 'shop-catalogue true ab\n')).toBe('shop-catalogue true ab\n');
  });

  it('masks each line of the values the environ holds for secret variables (a release deployed before masks files)', () => {
    const t = target(8000, 'none');
    const host = hostMasked(t, `raw ${SECRET_KEY}\npem ${PEM}\nurl ${DATABASE_URL}\nplain shop-catalogue true ab\n`);
    expect(host).toBe('raw ***\npem ***\n***\nurl ***\nplain shop-catalogue true ab\n');
  });

  it("the app user rewrites its release's environ and removes or replaces a masks file there: the record's masks file still masks every form; a FIFO is not read", () => {
    const t = target();
    const dir = `${t.layout.releases}/${ID}`;
    const other = join(t.layout.base, 'other-root-file');
    writeFileSync(other, 'nothing-secret-here\n');
    // What the app can do in its own directory: its environ rewritten without the secrets, a masks file of its own.
    writeFileSync(t.layout.environ(dir), 'APP_NAME=shop-catalogue\0');
    const text = printed();
    for (const replace of [() => {}, () => symlinkSync(other, t.layout.masks(dir)), () => spawnSync('mkfifo', [t.layout.masks(dir)])]) {
      rmSync(t.layout.masks(dir), { force: true });
      replace();
      const host = hostMasked(t, text);
      expect(host).not.toMatch(TELLS);
      expect(host).toContain("'SECRET_KEY': '***'");
    }
    // Its environ a FIFO (no writer: a read would wait for ever): skipped, the record's masks still read.
    rmSync(t.layout.environ(dir));
    spawnSync('mkfifo', [t.layout.environ(dir)]);
    expect(hostMasked(t, `raw ${SECRET_KEY}\n`)).toBe('raw ***\n');
  });

  it("a release made by an older ops (no record): its own directory's masks file, read for it alone", () => {
    const t = target(8000, 'own');
    writeFileSync(t.layout.environ(`${t.layout.releases}/${ID}`), ''); // its environ says nothing: the masks file alone
    expect(hostMasked(t, `url ${DATABASE_URL}\npassword ${encodeURIComponent(DB_PASSWORD)}\n`)).toBe('url ***\npassword ***\n');
  });

  it('hides two secrets printed together where one ends with the start of the other whole, as the runner does: mask_text and mask_string', () => {
    const t = target();
    // Two values whose overlap ("tY2") is printed once, and a value equal to one's start; a "*" value the *** completes.
    const values = { SECRET_KEY: 'Zq7Wx9vLm3pR8tY2', PEM: 'tY2-abcdefghijklmnop', PASSWORDS: 'Zq7Wx9vLm3', DATABASE_URL: '***-star' };
    const environ = Object.entries(values).map(([k, v]) => `${k}=${v}\0`).join('');
    writeFileSync(t.layout.environ(`${t.layout.releases}/${ID}`), environ);
    writeFileSync(t.layout.masks(t.layout.record(ID)), releaseMasks(t, environ), { mode: 0o600 });
    const text = 'key=Zq7Wx9vLm3pR8tY2-abcdefghijklmnop; id=Zq7Wx9vLm3 rest; twice=Zq7Wx9vLm3pR8tY2-abcdefghijklmnopZq7Wx9vLm3pR8tY2-abcdefghijklmnop; Zq7Wx9vLm3-star';
    const runner = new MemoryReporter();
    for (const v of Object.values(values)) runner.mask(v);
    const want = 'key=***; id=*** rest; twice=******; ***'; // two touching: two
    expect(runner.redact(text)).toBe(want);
    // Compared as "shown or not": a failure says which, never the rest of a secret.
    const leaks = (out: string) => (out === want ? 'hidden whole' : `shown: ${out.replace(/[A-Za-z0-9]/g, 'x')}`);
    expect(leaks(hostMasked(t, `${text}\n`).replace(/\n$/, ''))).toBe('hidden whole');
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', `set -euo pipefail\n${MASK_FUNCTIONS}\nmask_load ${maskArgs(t).map((a) => `'${a}'`).join(' ')}\nmask_string "$1"; printf '%s' "$MASK_TEXT"`, 'mask', text], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(leaks(r.stdout)).toBe('hidden whole');
  });

  it('masks as bytes: a value with bytes that are not UTF-8, a NUL and a regular expression\'s characters, in a line that is not UTF-8', () => {
    const t = target();
    const value = Buffer.from('a\\.*[x]+$(\xff\xfe)|^', 'latin1');
    writeFileSync(t.layout.masks(t.layout.record(ID)), Buffer.concat([value, Buffer.from('\n')]), { mode: 0o600 });
    const line = (v: Buffer) => Buffer.concat([Buffer.from('x\xc3 ', 'latin1'), v, Buffer.from('\0 a\\.x\n', 'latin1')]);
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', `set -euo pipefail\n${MASK_FUNCTIONS}\n${maskText(t)}`], { input: line(value) });
    expect(r.stderr.toString()).toBe('');
    expect(r.stdout.equals(line(Buffer.from('***')))).toBe(true);
  });

  it('masks a 1 MB log excerpt with 50 secrets (every form of each) in one pass, in seconds', () => {
    const t = target();
    const secrets = Array.from({ length: 50 }, (_, i) => `s3cr.t*${i}-"q" \\ $x [a-z]+ ü\xff/${'k'.repeat(i % 7)}`);
    const forms = [...new Set(secrets.flatMap((s) => releaseMasks(t, `SECRET_KEY=${s}\0`).split('\n').filter(Boolean)))];
    expect(forms.length).toBeGreaterThanOrEqual(300); // about seven a secret
    writeFileSync(t.layout.masks(t.layout.record(ID)), `${forms.sort((a, b) => b.length - a.length).join('\n')}\n`, { mode: 0o600 });
    const line = (i: number) => `2026-12-01T10:00:00Z worker ${i} said ${i % 97 === 0 ? `token ${forms[i % forms.length]} and ` : ''}nothing much at all, regex-ish [a-z]+ \\ $x *\n`;
    let text = '';
    for (let i = 0; text.length < 1_000_000; i++) text += line(i);
    const started = Date.now();
    const host = hostMasked(t, text);
    const took = Date.now() - started;
    expect(host.split('\n')).toHaveLength(text.split('\n').length);
    expect(host.includes('s3cr.t*')).toBe(false);
    expect(host).toContain('said token *** and nothing much');
    // A bound, not a benchmark: the old sed-per-form masker needed minutes here, one pass takes about 1.5 s on a busy runner.
    expect(took).toBeLessThan(10_000);
  }, 60_000);

  it("hides a secret a printer cut short at an ellipsis (node's JSON.parse error, Python's reprlib), as the runner does", () => {
    const t = target();
    const node = [SECRET_KEY, DATABASE_URL, `[1, ${DATABASE_URL}]`].map((doc) => {
      try {
        return `parsed ${JSON.parse(doc)}`;
      } catch (e) {
        return `SyntaxError: ${(e as Error).message}`;
      }
    });
    const python = spawnSync('python3', ['-c', 'import json, reprlib, sys\nv = json.load(sys.stdin)\nfor k in ("SECRET_KEY", "DATABASE_URL", "PASSWORDS"): print(k, reprlib.repr(v[k]), reprlib.repr({k: v[k]}))'], { input: JSON.stringify(VALUES), encoding: 'utf8' }).stdout;
    const text = `${node.join('\n')}\n${python}`;
    expect(text.match(/\.\.\./g)!.length).toBeGreaterThanOrEqual(7);
    const runner = new MemoryReporter();
    for (const v of [SECRET_KEY, DATABASE_URL, PASSWORDS, PEM]) runner.mask(v);
    const host = hostMasked(t, text);
    expect(host).not.toMatch(/Pa"ss|word-long|asyncpg|s3cr|adm1n|10\.230/);
    // by length alone: the host also hides a piece that is a common word, which the runner leaves (the URL's scheme)
    expect(host).toBe(text.split('\n').map((l) => runner.redact(l)).join('\n').replace(/postgresql"\.\.\./g, '***"...'));
    // an ellipsis of other text, and a piece from inside a word, stay
    const plain = 'Installing dependencies... done\nreleases: abc… ...more\nxPa"ss\\word...\n';
    expect(hostMasked(t, plain)).toBe(plain);
  });

  it("mask_string (a health answer's excerpt, a process's arguments) hides a secret cut short at an ellipsis by mask_text's own rule", () => {
    const t = target();
    const python = spawnSync('python3', ['-c', 'import json, reprlib, sys\nv = json.load(sys.stdin)\nfor k in ("SECRET_KEY", "DATABASE_URL", "PASSWORDS"): print(k, reprlib.repr(v[k]), reprlib.repr({k: v[k]}))'], { input: JSON.stringify(VALUES), encoding: 'utf8' }).stdout;
    let node = '';
    try {
      JSON.parse(SECRET_KEY);
    } catch (e) {
      node = `SyntaxError: ${(e as Error).message}`;
    }
    const texts = [...python.trim().split('\n'), node, `body: ${python}`, 'Installing dependencies... done\n', 'releases: abc… ...more'];
    const script = `set -euo pipefail\n${MASK_FUNCTIONS}\nmask_load ${maskArgs(t).map((a) => `'${a}'`).join(' ')}\nfor a; do mask_string "$a"; printf '%s\\0' "$MASK_TEXT"; done`;
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script, 'mask', ...texts], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const got = r.stdout.split('\0').slice(0, -1);
    expect(got).toHaveLength(texts.length);
    texts.forEach((text, i) => expect(got[i], text.replace(/[A-Za-z0-9]/g, 'x')).toBe(hostMasked(t, text)));
    expect(got.join('\n')).not.toMatch(/Pa"ss|word-long|asyncpg|s3cr|adm1n|10\.230/);
  });

  it('passes text through unchanged on a host without releases', () => {
    const t = target();
    expect(hostMasked({ ...t, layout: { ...t.layout, releases: '/nonexistent' } }, `keep ${SECRET_KEY}\n`)).toBe(`keep ${SECRET_KEY}\n`);
  });
});

describe('what status, logs and a failed start quote of the app is masked on the host', () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  it("status: a health check answered 503 with a secret in its body (the verdict's excerpt)", async () => {
    server = createServer((_, res) => {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `bad config: ${SECRET_KEY}` }));
    });
    await new Promise<void>((ok) => server!.listen(0, '127.0.0.1', ok));
    const t = target((server.address() as AddressInfo).port);
    const step: Step = { name: 'health', as: 'root', script: `${MASK_FUNCTIONS}\n${probeLibrary(t)}\n${healthShell(t, 'blue')}` };
    const { stdout } = await run('bash', ['--norc', '--noprofile', '-c', scriptText(step)], { encoding: 'utf8' });
    const health = reported({ stdout, stderr: '', code: 0, durationMs: 0, reports: parseReports(stdout) }, STATUS_KEYS.health)!;
    expect(health).toMatch(/returned error: 503/);
    expect(health).toContain('answering: {"error":"bad config: ***"}');
    expect(health).not.toMatch(TELLS);
  });

  it("a failed start (a rollback's, without the key): the programs' new log lines, the verdict and what previous_back says", () => {
    const t = target();
    const script = startSlot(t, 'green', `${t.layout.releases}/${ID}`, ID).script;
    // The start's failure branch as the step has it, run with supervisor stubbed: a log the new programs wrote to.
    const branch = script.slice(script.indexOf('if [ -n "$verdict" ]; then'), script.indexOf('fi >&2', script.indexOf('if [ -n "$verdict" ]; then')) + 'fi >&2'.length);
    expect(branch).toContain('mask_text');
    const log = join(t.layout.base, 'server-green.err.log');
    writeFileSync(log, `old line\nTraceback: settings {'SECRET_KEY': ${JSON.stringify(SECRET_KEY)}}\nValueError: ${inspect(PEM)}\n`);
    const stubs = `supervisorctl() { echo "shop-green:server FATAL"; }\nprevious_back() { echo "the previous release was started again but did not pass its checks (answering: ${SECRET_KEY.replace(/["\\$`]/g, '\\$&')})"; }\ndeclare -A LOG_START=([${log}]=9)\nkeep=/nonexistent\nlive_note="the live release keeps serving"\nverdict="release r1 did not become healthy on slot green: server:1:/health (answering: {\\"error\\": \\"${SECRET_KEY.replace(/["\\$`]/g, '\\$&')}\\"})"`;
    // log_tail (the end of each program's log) is a supervisor function: the stubs after it replace the rest.
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', `set -euo pipefail\n${MASK_FUNCTIONS}\n${SUPERVISOR_FUNCTIONS}\n${stubs}\n${branch}`], { encoding: 'utf8' });
    expect(r.status).toBe(3);
    expect(r.stderr).toContain('Traceback: settings');
    expect(r.stderr).toContain('did not become healthy');
    expect(r.stderr).toContain('did not pass its checks');
    expect(r.stderr).not.toMatch(TELLS);
  });

  it('logs: every line of the program logs', async () => {
    const t = target();
    mkdirSync(t.layout.logDir, { recursive: true });
    mkdirSync(t.layout.state, { recursive: true });
    writeFileSync(`${t.layout.state}/provisioned`, '2026-11-01T00:00:00Z\n');
    writeFileSync(join(t.layout.logDir, 'web-blue.err.log'), printed());
    const { stdout } = await run('bash', ['--norc', '--noprofile', '-c', scriptText(logsStep(t, { programs: ['web'], nginx: [], slots: 'live', lines: 50 }))], { encoding: 'utf8' });
    expect(stdout).toMatch(/web-blue.err \| settings \{'SECRET_KEY': '\*\*\*', 'DATABASE_URL': '\*\*\*'\}/);
    expect(stdout).not.toMatch(TELLS);
  });
});

describe("status on the runner: with a key, the secrets' values are masked there too", () => {
  it('masks a verdict a host sent unmasked (a host not yet deployed with masks) when a key opens the secrets; quietly does without one', async () => {
    const env = testEnv({ env: { APP_SECRET_KEY: { secret: 'secret_key' } } });
    const id = await generateIdentity();
    await SecretsFile.create(join(env.dir, 'secrets.sops.yaml'), fromPlain({ secret_key: SECRET_KEY }) as MapNode, { recipients: [id.recipient] }).save();
    const verdict = `no healthy answer within 3s from server:3579:/health (The requested URL returned error: 503 (HTTP/1.1 503 Service Unavailable), answering: {"error":"bad config: ${SECRET_KEY}"})`;
    const connector = async (_e: unknown, host: { name: string }) => new RecordingRemote(host.name, 'deploy', 'shop', () => ({ stdout: report({ health: verdict }) }));
    const withKey = new MemoryReporter();
    const r = await status({ root: env.root, reporter: withKey, processEnv: { SOPS_AGE_KEY: id.secret }, connector }, env);
    expect(formatStatus(r)).toContain('bad config: ***'); // masked before status quotes it (excerpt: before any cut)
    expect(JSON.stringify(r)).not.toMatch(TELLS); // the result itself, as JSON
    expect(withKey.lines).toEqual([]); // nothing said about keys
    const without = new MemoryReporter();
    await status({ root: env.root, reporter: without, processEnv: {}, connector }, env);
    expect(without.lines).toEqual([]);
  });
});
