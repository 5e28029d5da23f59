// Masking before cutting (core/steps/sh/mask.sh mask_string and mask_cut_end, core/steps/sh/probe.sh probe_printable
// and probe_body, core/steps/status.ts excerpt), the forms programs print of a secret (core/secrets/parts.ts
// printedForms: Python's ascii(), HTML escapers, pydantic's cut input_value, white space collapsed) and the masks
// kept for the logs of pruned releases (keep_masks, core/steps/release.ts pruneReleases): run by bash on a scratch
// host tree, with real HTTP servers and what python3 (pydantic, markupsafe, html) really prints.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { MemoryReporter } from '../../core/report.ts';
import { scriptText } from '../../core/remote/wrap.ts';
import { IDENTITY_FUNCTIONS, MASK_FUNCTIONS, maskLibrary, probeLibrary } from '../../core/steps/libraries.ts';
import { maskText, releaseMasks } from '../../core/steps/masks.ts';
import { pruneReleases } from '../../core/steps/release.ts';
import { excerpt, healthReasons } from '../../core/steps/status.ts';
import { auditReason, oneLine, StepError } from '../../core/errors.ts';
import { failureDetail, failureVerdict } from '../../core/remote/types.ts';
import { resolveTarget, type Target } from '../../core/target.ts';

const run = promisify(execFile);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

/** A passphrase with a tab and a double space (its one-line form is not itself), and a token. */
const PASSPHRASE = 'correct horse\tbattery  staple zebra';
const TOKEN = 'tok_9f8e7d6c5b4a39281706';
/** Any word of either, or the token's start: none may appear. */
const FRAGMENTS = /correct|horse|battery|staple|zebra|tok_9|9f8e7d/;

/** A scratch host tree: one release per `values` under releases/ (its environ), its masks file in its record (layout.record). */
function target(port: number, ...values: Record<string, string>[]): Target {
  const base = mkdtempSync(join(tmpdir(), 'ops-mask-order-'));
  const config = parseEnvironment(
    {
      app: 'shop',
      hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }],
      programs: { web: { command: 'run', port, health: '/health' } },
      routes: { '/': 'web' },
      env: { PASSPHRASE: { secret: 'passphrase' }, TOKEN: { secret: 'token' } },
    },
    'test',
  );
  const t = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [], appUser: 'root', baseDir: base, url: 'http://x' });
  mkdirSync(t.layout.state, { recursive: true });
  values.forEach((v, i) => release(t, `20261201T10000${i}Z-0123456789ab`, v));
  return { ...t, layout: { ...t.layout, logDir: join(base, 'log') } };
}

function release(t: Target, id: string, values: Record<string, string>): string {
  const dir = `${t.layout.releases}/${id}`;
  mkdirSync(dir, { recursive: true });
  const environ = Object.entries(values).map(([k, v]) => `${k}=${v}\0`).join('');
  writeFileSync(t.layout.environ(dir), environ, { mode: 0o600 });
  mkdirSync(t.layout.record(id), { recursive: true });
  writeFileSync(t.layout.masks(t.layout.record(id)), releaseMasks(t, environ), { mode: 0o600 });
  return dir;
}

/** `text` through the host's mask_text for `t`. */
function hostMasked(t: Target, text: string): string {
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', `set -euo pipefail\n${MASK_FUNCTIONS}\n${maskText(t)}`], { input: text, encoding: 'utf8' });
  expect(r.stderr).toBe('');
  return r.stdout;
}

/** wait_healthy's verdict on `t`'s program (probeLibrary: the step's own masks), as a status step runs it. */
async function verdict(t: Target, port: number): Promise<string> {
  const { stdout } = await run('bash', ['--norc', '--noprofile', '-c', `${probeLibrary(t)}\nwait_healthy 1 0.2 web:${port}:/health || printf '%s' "$UNHEALTHY"`], { encoding: 'utf8' });
  return stdout;
}

describe('mask_string, mask_cut_end: masked whole, then cut', () => {
  const sh = (script: string) => spawnSync('bash', ['--norc', '--noprofile', '-c', `set -euo pipefail\n${MASK_FUNCTIONS}\nMASK_FORMS=(${JSON.stringify(PASSPHRASE)} ${JSON.stringify(TOKEN)})\n${script}`], { encoding: 'utf8' }).stdout;

  it('masks each form whole, as bytes, without a process', () => {
    expect(sh(`mask_string ${JSON.stringify(`a ${PASSPHRASE} b ${TOKEN}/é`)}; printf '%s' "$MASK_TEXT"`)).toBe('a *** b ***/é');
  });

  it("a cut drops what starts a secret (white space and all) and the word it fell in; between words, the word stays", () => {
    const cut = (text: string, between = '') => sh(`mask_cut_end ${JSON.stringify(text)} ${between}; printf '%s' "$MASK_TEXT"`);
    expect(cut('said: correct horse\tbatt')).toBe('said:');
    expect(cut('said: correct horse', '1')).toBe('said:'); // cut between two of its words: still its start
    expect(cut('see https://x.example/cb?token=tok_9f8')).toBe('see https://x.example/cb?token=');
    expect(cut('plain words here', '1')).toBe('plain words here');
    expect(cut('plain words he')).toBe('plain words');
  });
});

describe('probe verdicts: the answer masked as received, before any cut or change of its white space', () => {
  let server: Server | undefined;
  afterEach(() => server?.close());
  const serve = async (handler: Parameters<typeof createServer>[1]): Promise<number> => {
    server = createServer(handler);
    await new Promise<void>((ok) => server!.listen(0, '127.0.0.1', ok));
    return (server.address() as AddressInfo).port;
  };

  it('a passphrase with a tab and double spaces, whole, across the 200-character cut and across the 256 bytes read; a token across the cut', async () => {
    const bodies = [
      `{"error": "bad passphrase ${PASSPHRASE}"}`, // whole: its one-line form is not the secret
      `${'w'.repeat(170)} ${PASSPHRASE} tail`, // the 200-character cut falls in it
      `${'v  '.repeat(75)}${PASSPHRASE} end`, // the 256 bytes read end in it (collapsed, it is short of 200)
      `${'u'.repeat(185)} ${TOKEN}`, // the cut falls in the token
    ];
    for (const body of bodies) {
      const port = await serve((_, res) => {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end(body);
      });
      const t = target(port, { PASSPHRASE, TOKEN });
      const v = await verdict(t, port);
      expect(v).toMatch(/returned error: 503/);
      expect(v).not.toMatch(FRAGMENTS);
      // And as status quotes it on the runner, with the values known there too.
      const runner = new MemoryReporter();
      runner.mask(PASSPHRASE);
      runner.mask(TOKEN);
      const why = healthReasons(v, [`web:${port}:/health`], (x) => runner.redact(x)).get(`web:${port}:/health`)!;
      expect(why).not.toMatch(FRAGMENTS);
      server!.close();
    }
  }, 30_000);

  it("a redirect's Location with a token across its cut (off the program; in a loop's chain)", async () => {
    for (const location of [`https://login.example/cb?${'p'.repeat(260)}&token=${TOKEN}`, `/health?${'q'.repeat(80)}&token=${TOKEN}&x=1`]) {
      const port = await serve((_, res) => {
        res.writeHead(302, { location });
        res.end();
      });
      const v = await verdict(target(port, { PASSPHRASE, TOKEN }), port);
      expect(v).toMatch(/redirect/);
      expect(v).not.toMatch(FRAGMENTS);
      server!.close();
    }
  }, 30_000);

  it("status's excerpt on the runner: masked before its white space is collapsed and before its cut", () => {
    const runner = new MemoryReporter();
    runner.mask(PASSPHRASE);
    const redact = (x: string) => runner.redact(x);
    expect(excerpt(`error: ${PASSPHRASE}!`, redact)).toBe('error: ***!');
    expect(excerpt(`error: ${PASSPHRASE.replace(/\s+/g, ' ')}!`, redact)).toBe('error: ***!'); // its one-line form, as a host quotes it
    expect(excerpt(`${'w'.repeat(100)} ${PASSPHRASE} and more words after it`, redact)).not.toMatch(FRAGMENTS);
    expect(excerpt(`${'w'.repeat(100)} ${TOKEN}`)).toBe(`${'w'.repeat(100)}…`); // a word cut: dropped (maybe a token's start)
  });

  it("a login shell's text quoted on one line (oneLine): masked before it is put on one line and cut", () => {
    const runner = new MemoryReporter();
    runner.mask(PASSPHRASE);
    const redact = (x: string) => runner.redact(x);
    expect(oneLine(`welcome\n${'w'.repeat(60)} ${PASSPHRASE} and more`, 80, redact)).toBe(`welcome / ${'w'.repeat(60)} *** and…`);
    expect(oneLine(`${'w'.repeat(70)} ${TOKEN}`, 80, redact)).toBe(`${'w'.repeat(70)}…`);
  });
});

describe("a failed step's quoted lines: masked as its log lines are, the run's values first (maskedText)", () => {
  const SECRET = "Zq7'Wx9&vLm3 pR8";
  it("bash's trace of an Authorization header (set -x): its error's lines, and its audit reason, as the log's line", () => {
    const runner = new MemoryReporter();
    runner.mask(SECRET);
    const redact = (x: string) => runner.redact(x);
    const trace = `+ curl_stub --header 'Authorization: Bearer Zq7'\\''Wx9&vLm3 pR8'`;
    expect(redact(trace)).toBe(`+ curl_stub --header 'Authorization: Bearer ***'`); // the step's log line
    // Masked by the field's look first, the value was cut at its "&" and the rest shown: `Bearer ***&vLm3 pR8'`.
    for (const detail of [failureDetail('', `${trace}\n`, redact), failureDetail(`${trace}\n`, '', redact), failureVerdict(`@ops failure ${trace}`, redact)!]) {
      expect(detail).not.toMatch(/Zq7|Wx9|vLm3|pR8/);
      expect(detail).toContain('Authorization: Bearer ***');
    }
    const reason = auditReason(new StepError('build', 'web1', 4, failureDetail('', `${trace}\n`, redact)), redact);
    expect(reason).toBe(`step "build" on web1 failed with exit code 4: + curl_stub --header 'Authorization: Bearer ***`);
  });
});

describe("a process's command line (status, the identity checks): each argument masked, then on one line, then cut", () => {
  it('a secret given as an argument, with its white space; a long one cut whole', () => {
    const t = target(8000, { PASSPHRASE, TOKEN });
    const script = `${maskLibrary(t)}\n${IDENTITY_FUNCTIONS}
bash -c 'sleep 9; :' x --passphrase=${JSON.stringify(PASSPHRASE)} "$(printf 'a\\tb')" & p1=$!
bash -c 'sleep 9; :' x ${'a'.repeat(130)} ${TOKEN} & p2=$!
# Until both run their own command line (a forked shell not yet exec'd shows this script's), up to 20 s.
for _ in {1..400}; do [ "$(head -c 8 /proc/$p1/cmdline | tr '\\0' ' ')$(head -c 8 /proc/$p2/cmdline | tr '\\0' ' ')" = 'bash -c bash -c ' ] && break; sleep 0.05; done
proc_cmd $p1; echo; proc_cmd $p2; echo; kill $p1 $p2`;
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script], { encoding: 'utf8' });
    expect(r.stdout).toBe(`bash -c sleep 9; : x --passphrase=*** a b\nbash -c sleep 9; : x ${'a'.repeat(130)} ***\n`);
    const cut = spawnSync('bash', ['--norc', '--noprofile', '-c', script.replace(`\${TOKEN}`, '').replace(TOKEN, `${'b'.repeat(20)}${TOKEN}`)], { encoding: 'utf8' });
    expect(cut.stdout.split('\n')[1]).toBe(`bash -c sleep 9; : x ${'a'.repeat(130)}...`);
  });
});

describe('what frameworks print of a secret, masked by its forms (computed when the masks are written)', () => {
  const SECRET = `pé'ss"<wörd>&\tmore  text-long-secret-value-2026`;
  const TELL = /pé|p\\xe9|wörd|w\\xf6rd|long-secret|more/;
  it('Python ascii(), pydantic\'s cut input_value, html.escape, markupsafe, one-line form: on the host and the runner', () => {
    const py = spawnSync(
      'python3',
      [
        '-c',
        `import sys, html
s = sys.stdin.read()
print("ascii", ascii(s))
print("html", html.escape(s), html.escape(s, quote=False))
try:
    import markupsafe
    print("markupsafe", markupsafe.escape(s))
except ImportError:
    pass
import pydantic
class M(pydantic.BaseModel):
    n: int
try:
    M(n=s)
except pydantic.ValidationError as e:
    print(e)
print("line", " ".join(s.split()))`,
      ],
      { input: SECRET, encoding: 'utf8' },
    );
    expect(py.status, py.stderr).toBe(0);
    const text = py.stdout;
    expect(text).toContain('input_value=');
    expect(text).toMatch(TELL);
    const t = target(8000, { PASSPHRASE: SECRET, TOKEN });
    const host = hostMasked(t, text);
    expect(host).not.toMatch(TELL);
    expect(host).toContain('input_value=***');
    const runner = new MemoryReporter();
    runner.mask(SECRET);
    expect(text.split('\n').map((l) => runner.redact(l)).join('\n')).not.toMatch(TELL);
  });

  it("a command line quoting it for a shell (bash's set -x, printf %q, declare -p; Python's shlex.quote): on the host and the runner", () => {
    const secret = "Zq7'Wx9&vLm3 pR8\\$`x";
    const bash = spawnSync('bash', ['--norc', '--noprofile', '-c', 'printf "curl -u ci:%q\\n" "$T"; declare -p T; set -x; curl_stub() { :; }; curl_stub -H "Authorization: Bearer $T"'], { env: { PATH: process.env.PATH, T: secret }, encoding: 'utf8' });
    const py = spawnSync('python3', ['-c', 'import os, shlex; print("running: curl -u " + shlex.quote("ci:" + os.environ["T"]))'], { env: { PATH: process.env.PATH, T: secret }, encoding: 'utf8' });
    const text = `${bash.stdout}${bash.stderr}${py.stdout}`;
    const TELL = /Zq7|Wx9|vLm3|pR8/;
    expect(text.split('\n').filter((l) => TELL.test(l))).toHaveLength(4);
    const t = target(8000, { PASSPHRASE: secret, TOKEN });
    expect(hostMasked(t, text)).not.toMatch(TELL);
    const runner = new MemoryReporter();
    runner.mask(secret);
    expect(text.split('\n').map((l) => runner.redact(l)).join('\n')).not.toMatch(TELL);
  });

  it('keeps the minimum length: a value too short to mask is masked in none of its forms either', () => {
    const t = target(8000, { PASSPHRASE: 'a&', TOKEN: 'ab' });
    expect(hostMasked(t, 'a&amp; ab a& x\n')).toBe('a&amp; ab a& x\n');
  });
});

describe('the masks of pruned releases are kept: their programs\' lines stay in the logs', () => {
  it('a rotated secret: the old value stays masked in the logs after the release that had it is pruned', () => {
    const t = target(8000);
    const old = release(t, '20261201T100000Z-0123456789ab', { PASSPHRASE, TOKEN });
    release(t, '20261202T100000Z-0123456789ab', { PASSPHRASE: 'the new passphrase value', TOKEN: 'tok_new_0000000000' });
    const log = `started with ${TOKEN} and ${PASSPHRASE}\n`;
    expect(hostMasked(t, log)).toBe('started with *** and ***\n');
    // The real prune step, on this tree (no mirror: its git refs stubbed by a `git` first in PATH; a function would
    // be dropped by the script's prelude, as the login's exported functions are).
    const step = pruneReleases(t, ['20261201T100000Z-0123456789ab']);
    const bin = join(t.baseDir, 'stub-bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'git'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', scriptText(step)], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(old)).toBe(false);
    expect(existsSync(t.layout.record('20261201T100000Z-0123456789ab')), 'its record (and masks file) pruned with it').toBe(false);
    expect(hostMasked(t, log)).toBe('started with *** and ***\n');
    expect(statSync(t.layout.keptMasks).mode & 0o777).toBe(0o600);
    expect(readFileSync(t.layout.keptMasks, 'utf8')).not.toContain('tok_new'); // the kept releases' own are not copied
    // Its masks file's forms, read from its record (its environ holds the plain values alone).
    expect(readFileSync(t.layout.keptMasks, 'utf8').split('\n')).toContain(encodeURIComponent(PASSPHRASE));
    rmSync(t.layout.base, { recursive: true, force: true });
  });
});
