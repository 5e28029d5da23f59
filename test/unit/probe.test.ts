// The health gate's probes (core/steps/sh/probe.sh) run by bash on this machine against real HTTP servers (Node's
// http module parses the requests bash writes): wait_healthy passes once a program that starts late answers, names
// what never answered and why (a closed port, an error status, a listener that never answers, an answer that is
// not HTTP), and runs no process at all (no curl, no `sleep` between rounds) where bash has net redirections.
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttp2Server } from 'node:http2';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { failureDetail } from '../../core/remote/types.ts';
import { START_MARKER, scriptPrelude } from '../../core/remote/wrap.ts';
import { PROBE_FUNCTIONS } from '../../core/steps/libraries.ts';
import { certificatePaths, probeHeaders, site } from '../../core/steps/nginx-config.ts';
import type { Target } from '../../core/target.ts';
import { healthReasons } from '../../core/steps/status.ts';
import { probes } from '../../core/steps/switch.ts';
import { testEnv } from './status.helpers.ts';
import { freePort, listening } from '../support/ports.ts';

const run = promisify(execFile);
const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((resolve) => s.close(() => resolve()));
});

/**
 * An HTTP server on 127.0.0.1 answering `status` (and `body`) to every request, on `port` (one picked before: a
 * program that starts late) or the kernel's pick; its port, and the requests it got, as "METHOD url host".
 */
async function serve(status: number, body = 'x', port = 0): Promise<{ port: number; seen: string[] }> {
  const seen: string[] = [];
  const s = createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.host}`);
    res.statusCode = status;
    res.end(body);
  });
  servers.push(s);
  return { port: await listening(s, port), seen };
}

/**
 * A program that starts late: serve() 200 on `port` after `ms`; the requests it got, once awaited (a failed listen
 * rejects there: awaited after the probe, it fails the test by its own error).
 */
function serveLate(port: number, ms: number): Promise<string[]> {
  const started = new Promise((resolve) => setTimeout(resolve, ms)).then(() => serve(200, 'x', port)).then((s) => s.seen);
  started.catch(() => undefined); // until awaited: no unhandled rejection meanwhile
  return started;
}

/**
 * Run the probe functions and `script` with bash; a `sleep` first on PATH records that it ran, a `curl` first on
 * PATH counts its runs (then runs the real one).
 */
async function bash(script: string): Promise<{ out: string; slept: boolean; curls: number }> {
  const bin = mkdtempSync(join(tmpdir(), 'ops-probe-'));
  writeFileSync(join(bin, 'sleep'), `#!/bin/sh\ntouch ${bin}/slept\nexec /bin/sleep "$@"\n`);
  writeFileSync(join(bin, 'curl'), `#!/bin/sh\necho >> ${bin}/curls\nexec /usr/bin/curl "$@"\n`);
  for (const f of ['sleep', 'curl']) chmodSync(join(bin, f), 0o755);
  const { stdout } = await run('bash', ['-c', `${scriptPrelude}\n${PROBE_FUNCTIONS}\n${script}`], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
  const curls = existsSync(join(bin, 'curls')) ? readFileSync(join(bin, 'curls'), 'utf8').length : 0;
  return { out: stdout.slice(stdout.indexOf(START_MARKER) + START_MARKER.length).trim(), slept: existsSync(join(bin, 'slept')), curls };
}

describe('wait_healthy', () => {
  it('passes once a program that starts late answers; a closed port is named when the time is up; no sleep process between rounds', async () => {
    const [late, closed] = [await freePort(), await freePort()];
    const started = serveLate(late, 1200);
    const r = await bash(`if wait_healthy 4 0.2 web:${late}:/health; then echo late=ok; else echo "late=$UNHEALTHY"; fi
if wait_healthy 1 0.2 api:${closed}:/health; then echo closed=ok; else echo "closed=$UNHEALTHY"; fi`);
    await started;
    expect(r.out).toMatch(new RegExp(`^late=ok\nclosed=no healthy answer within 1s from api:${closed}:/health \\(Failed to connect to 127\\.0\\.0\\.1 port ${closed}[^)]*\\)$`));
    expect(r.slept).toBe(false);
  });

  it('a listener that answers an error stays unhealthy, named with its path and the status', async () => {
    const { port } = await serve(503);
    expect((await bash(`wait_healthy 1 0.2 web:${port}:/health || echo "$UNHEALTHY"`)).out).toBe(`no healthy answer within 1s from web:${port}:/health (The requested URL returned error: 503 (HTTP/1.1 503 Service Unavailable), answering: x)`);
  });

  it('a program that accepts connections but never answers is told apart from one that is not listening; each probe named with its own reason', async () => {
    const closed = await freePort();
    // Listening (the kernel completes the handshake), never reading or answering: a hung worker, a raw TCP service.
    const s = createNetServer(() => undefined);
    const silent = await listening(s);
    try {
      const { port: ok } = await serve(200);
      const r = await bash(`wait_healthy 1 0.2 web:${silent}:/health api:${closed}:/ready ok:${ok}:/ || echo "$UNHEALTHY"`);
      expect(r.out).toMatch(new RegExp(`^no healthy answer within 1s from web:${silent}:/health \\(Operation timed out after \\d+ milliseconds with 0 bytes received\\), api:${closed}:/ready \\(Failed to connect to [^)]*\\)$`));
    } finally {
      s.close();
    }
  }, 20_000);

  it('runs no process: a refused port every round, a late listener seen within a round, the request a real HTTP server parses', async () => {
    const [closed, late] = [await freePort(), await freePort()];
    // 2 s at 0.05 s between rounds: 40 rounds, each a connect(2) by bash itself.
    const refused = await bash(`wait_healthy 2 0.05 api:${closed}:/health || echo "$UNHEALTHY"`);
    expect(refused.out).toBe(`no healthy answer within 2s from api:${closed}:/health (Failed to connect to 127.0.0.1 port ${closed}: Connection refused)`);
    const started = serveLate(late, 1300);
    const listenedAt = started.then(() => Date.now());
    listenedAt.catch(() => undefined);
    const r = await bash(`wait_healthy 6 0.05 'web:${late}:/v1/health.json?full=1&db=yes' && echo "ok $EPOCHREALTIME"`);
    const [ok, seenAt] = r.out.split(' ');
    expect(ok).toBe('ok');
    // Seen within a round or two (0.05 s each) of listening: counted from the listen, not from bash's start (a busy
    // machine's), with a second's room.
    expect(Number(seenAt) * 1000 - (await listenedAt)).toBeLessThan(1000);
    expect(await started).toEqual([`GET /v1/health.json?full=1&db=yes 127.0.0.1:${late}`]);
    expect([refused.curls, r.curls, Number(refused.slept), Number(r.slept)]).toEqual([0, 0, 0, 0]);
  });

  it("reads any answer's body with PROBE_READ_BODY (the switch's look at /.ops/slot: nginx's \"return 200 green\"), at PROBE_ADDR with PROBE_HOST, under probe_armed; no process", async () => {
    const { port, seen } = await serve(200, 'green');
    const { port: missing } = await serve(404, 'no such page\n');
    const look = (p: number) => `f() { local PROBE_ADDR=127.0.0.1 PROBE_HOST=shop.example.org PROBE_READ_BODY=1 PROBE_CONNECT_SECONDS=1; probe_send ${p} /.ops/slot && probe_answer "$PROBE_FD" $(( \${EPOCHREALTIME/./} + 1000000 )) && echo "$PROBE_CODE [$PROBE_BODY]"; }; probe_armed f`;
    const r = await bash(`${look(port)}\n${look(missing)}`);
    expect(r.out).toBe('200 [green]\n404 [no such page]');
    expect(seen).toEqual(['GET /.ops/slot shop.example.org']);
    expect([r.curls, Number(r.slept)]).toEqual([0, 0]);
    // Without it, a 2xx's body is not read (the health probes: a large page is not read to its end).
    expect((await bash(`probe_send ${port} / && probe_answer "$PROBE_FD" $(( \${EPOCHREALTIME/./} + 1000000 )) && echo "$PROBE_CODE [$PROBE_BODY]"`)).out).toBe('200 []');
  });

  it('a large page is not read to its end, and its server goes on serving', async () => {
    const { port: big, seen } = await serve(200, 'y'.repeat(4 << 20));
    const r = await bash(`wait_healthy 3 0.2 b:${big}:/ && echo ok\nwait_healthy 3 0.2 b:${big}:/ && echo again`);
    expect(r.out).toBe('ok\nagain');
    expect(seen).toHaveLength(2);
  });

  it('a listener that closes at once, or answers something not HTTP, is unhealthy with that said', async () => {
    // The probe closes without reading on: the server may see a reset, as from any client that goes away.
    const a = createNetServer((c) => c.on('error', () => undefined).destroy());
    const b = createNetServer((c) => c.on('error', () => undefined).end('SSH-2.0-OpenSSH_9.2\r\n'));
    const [closes, raw] = await Promise.all([listening(a), listening(b)]);
    try {
      const r = await bash(`wait_healthy 1 0.2 a:${closes}:/ b:${raw}:/ || echo "$UNHEALTHY"`);
      expect(r.out).toBe(`no healthy answer within 1s from a:${closes}:/ (Empty reply from server), b:${raw}:/ (not an HTTP answer: SSH-2.0-OpenSSH_9.2)`);
    } finally {
      a.close();
      b.close();
    }
  });

  it('this bash has net redirections; a bash without them (it looks for a file /dev/tcp/...) probes by curl, with curl\'s reasons', async () => {
    expect((await bash('net_redirections && echo yes')).out).toBe('yes');
    const [late, closed] = [await freePort(), await freePort()];
    const started = serveLate(late, 700);
    const without = 'probe_send() { PROBE_WHY=""; return 1; }\nNET_REDIRECTIONS=no';
    const r = await bash(`${without}\nwait_healthy 5 0.05 web:${late}:/ && echo ok\nwait_healthy 1 0.2 api:${closed}:/ || echo "$UNHEALTHY"`);
    await started;
    expect(r.out.split('\n')).toEqual(['ok', expect.stringMatching(new RegExp(`^no healthy answer within 1s from api:${closed}:/ \\(Failed to connect to 127\\.0\\.0\\.1 port ${closed}[^)]*\\)$`))]);
    expect(r.curls).toBeGreaterThan(0);
  });

  it('no room for temporary files (a full /tmp): nothing written, the verdict and its reasons stand', async () => {
    const closed = await freePort();
    const { port: ok } = await serve(200);
    const r = await bash(`export TMPDIR=/nonexistent-ops-tmp\nwait_healthy 2 0.2 web:${ok}:/ && echo ok\nwait_healthy 1 0.2 api:${closed}:/ || echo "$UNHEALTHY"\nls / | grep -c '^[0-9]$' || true`);
    expect(r.out.split('\n')).toEqual(['ok', `no healthy answer within 1s from api:${closed}:/ (Failed to connect to 127.0.0.1 port ${closed}: Connection refused)`, '0']);
  });

  it('a redirect is followed while it stays on the program (the check behind it counts), else named: a 3xx alone is not healthy; the same by curl', async () => {
    let port = 0;
    // As FastAPI (redirect_slashes: 307) and Django (APPEND_SLASH: 301) answer a route declared with a slash; /health/
    // is the real check, failing (its database is down).
    const s = createServer((req, res) => {
      const to: Record<string, [number, string]> = { '/health': [307, '/health/'], '/ready': [301, `http://127.0.0.1:${port}/ready/`], '/away': [302, 'https://example.org/login'], '/loop': [302, '/loop'], '/v1/up': [302, 'ok'], '/cached': [304, ''] };
      const hop = to[req.url ?? ''];
      if (hop) res.writeHead(hop[0], hop[1] ? { location: hop[1] } : {});
      else res.statusCode = req.url === '/health/' ? 503 : req.url === '/ready/' || req.url === '/v1/ok' ? 200 : 404;
      res.end();
    });
    servers.push(s);
    port = await listening(s);
    const script = `wait_healthy 2 0.2 ready:${port}:/ready && echo ready=ok
wait_healthy 2 0.2 up:${port}:/v1/up && echo relative=ok
wait_healthy 1 0.2 web:${port}:/health || echo "$UNHEALTHY"
wait_healthy 1 0.2 away:${port}:/away || echo "$UNHEALTHY"
wait_healthy 1 0.2 loop:${port}:/loop || echo "$UNHEALTHY"
wait_healthy 1 0.2 cached:${port}:/cached || echo "$UNHEALTHY"`;
    const [r, byCurl] = [await bash(script), await bash(`probe_send() { PROBE_WHY=""; return 1; }\nNET_REDIRECTIONS=no\n${script}`)];
    expect([r.curls, byCurl.out]).toEqual([0, r.out]); // the curl fallback (a bash without /dev/tcp) says the same
    expect(r.out.split('\n')).toEqual([
      'ready=ok',
      'relative=ok',
      `no healthy answer within 1s from web:${port}:/health (The requested URL returned error: 503 (HTTP/1.1 503 Service Unavailable))`,
      `no healthy answer within 1s from away:${port}:/away (answered 302, a redirect to https://example.org/login, off this program (the probe sent Host: 127.0.0.1:${port} and no forwarded header, as callers on 127.0.0.1 send: nginx routes none of the site's requests to it): the health path must answer 2xx itself)`,
      `no healthy answer within 1s from loop:${port}:/loop (redirects in a loop, back to /loop (GET /loop: 302 to /loop; the probe sent Host: 127.0.0.1:${port} and no forwarded header, as callers on 127.0.0.1 send: nginx routes none of the site's requests to it): a redirect rule of the app that matches its own target: the health path must answer 2xx itself)`,
      `no healthy answer within 1s from cached:${port}:/cached (answered 304 without a Location to follow, not 2xx: the health path must answer 2xx itself)`,
    ]);
  });

  it('a program listening on another address than 127.0.0.1 (IPv6 only: Node\'s listen(port, "localhost")) is named with where it listens', async () => {
    // A port picked below the ephemeral range: no listener of 127.0.0.1 (a port-0 one) lands on it meanwhile.
    const port = await freePort();
    const s = createServer((_, res) => res.end('x'));
    servers.push(s);
    await listening(s, port, '::1');
    const r = await bash(`wait_healthy 1 0.2 web:${port}:/health || echo "$UNHEALTHY"`);
    // curl's own words for a refused connection differ between versions ("Connection refused", "Couldn't connect to server").
    expect(r.out).toMatch(new RegExp(`^no healthy answer within 1s from web:${port}:/health \\(Failed to connect to 127\\.0\\.0\\.1 port ${port}[^;)]*; it listens on \\[::1\\]:${port} only: nginx and the health check connect to 127\\.0\\.0\\.1, so bind 127\\.0\\.0\\.1 or 0\\.0\\.0\\.0\\)$`));
  });
});

describe('wait_healthy against what real servers send', () => {
  it('a program that listens but no longer accepts (its accept queue full: the kernel drops the SYN) times out like curl --max-time 5, not after the kernel\'s SYN retries (~2 min); the other programs keep their own verdicts', async () => {
    const { port: ok } = await serve(200);
    // listen(0) and never accept; three connections fill the queue (a program stuck or overloaded: real kernel behaviour).
    const py = spawn('/usr/bin/python3', ['-c', `import socket, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)
cs = [socket.socket() for _ in range(3)]
for c in cs: c.setblocking(False); c.connect_ex(s.getsockname())
print('ready', s.getsockname()[1], flush=True); time.sleep(120)`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const stuck = await readyPort(py);
      const t0 = Date.now();
      const r = await bash(`wait_healthy 1 0.2 api:${stuck}:/health web:${ok}:/ || echo "$UNHEALTHY"`);
      expect(Date.now() - t0).toBeLessThan(12_000);
      expect(r.out).toMatch(new RegExp(`^no healthy answer within 1s from api:${stuck}:/health \\(Connection timed out after 5\\d{3} milliseconds: [^)]*accept[^)]*\\)$`));
      expect([r.curls, Number(r.slept)]).toEqual([0, 0]);
    } finally {
      py.kill();
    }
  }, 30_000);

  it('reads a bounded head: an endless line (a stream without newlines) is told in a second, not read for minutes; a redirect after many header lines is still followed', async () => {
    const s = createNetServer((c) => {
      c.on('error', () => undefined);
      c.once('data', (d) => {
        if (d.toString().startsWith('GET /many ')) {
          const fields = Array.from({ length: 150 }, (_, i) => `X-Field-${i}: ${'v'.repeat(100)}\r\n`).join('');
          c.end(`HTTP/1.1 302 Found\r\n${fields}Location: /ok\r\nContent-Length: 0\r\n\r\n`);
        } else if (d.toString().startsWith('GET /ok ')) c.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
        else {
          const t = setInterval(() => c.write('x'.repeat(65536)), 1);
          c.on('close', () => clearInterval(t));
        }
      });
    });
    const port = await listening(s);
    try {
      const t0 = Date.now();
      const r = await bash(`wait_healthy 1 0.2 many:${port}:/many && echo many=ok\nwait_healthy 1 0.2 stream:${port}:/stream || echo "$UNHEALTHY"`);
      expect(Date.now() - t0).toBeLessThan(8000);
      expect(r.out).toMatch(new RegExp(`^many=ok\nno healthy answer within 1s from stream:${port}:/stream \\(not an HTTP answer: \\.\\.\\.\\)$`)); // one word cut: dropped whole (it may be a secret's start)
    } finally {
      s.close();
    }
  }, 30_000);

  it('interim answers (103 Early Hints from Node\'s res.writeEarlyHints, 100 Continue) are skipped as curl does: the final answer counts', async () => {
    const s = createServer((req, res) => {
      if (req.url === '/hints') res.writeEarlyHints({ link: '</app.css>; rel=preload; as=style' });
      else res.writeContinue();
      if (req.url === '/moved') res.writeHead(301, { location: '/hints' });
      else res.statusCode = req.url === '/down' ? 503 : 200;
      res.end('ok');
    });
    servers.push(s);
    const port = await listening(s);
    const script = `wait_healthy 2 0.2 a:${port}:/hints b:${port}:/continue c:${port}:/moved && echo ok\nwait_healthy 1 0.2 d:${port}:/down || echo "$UNHEALTHY"`;
    const [r, byCurl] = [await bash(script), await bash(`probe_send() { PROBE_WHY=""; return 1; }\nNET_REDIRECTIONS=no\n${script}`)];
    expect(r.out).toBe(`ok\nno healthy answer within 1s from d:${port}:/down (The requested URL returned error: 503 (HTTP/1.1 503 Service Unavailable), answering: ok)`);
    expect(byCurl.out).toBe(r.out);
  });

  it('a redirect\'s Location is resolved as curl resolves it (RFC 3986 5.2: dot segments, a query alone, a fragment, spaces around it, scheme and host in capitals, no path, localhost): the same next request, by bash and by the curl fallback', async () => {
    const seen: string[] = [];
    let locations: string[] = []; // set once the port is known
    const s = createNetServer((c) => {
      c.on('error', () => undefined);
      c.once('data', (d) => {
        const url = d.toString().split(' ')[1] ?? '';
        const start = /^\/a\/b\/start(\d+)(\?full=1(\/x)?)?$/.exec(url);
        if (start) c.end(`HTTP/1.1 302 Found\r\nLocation: ${locations[Number(start[1])]}\r\nContent-Length: 0\r\n\r\n`);
        else {
          seen.push(url);
          c.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
        }
      });
    });
    const port = await listening(s);
    locations = ['\t/t1  ', '../t2', './t3/', '?q=t4', '/t5#top', `HTTP://127.0.0.1:${port}/t6`, `http://127.0.0.1:${port}`, `//127.0.0.1:${port}/t8/./x/../`, 't9%20x?y=%2F', `http://LOCALHOST:${port}/t10`, '/a/b/../../../t11'];
    try {
      // Each start, and two health paths with a query string (the schema allows one): relative to the path, not the query.
      const starts = [...locations.map((_, i) => `/a/b/start${i}`), '/a/b/start1?full=1', '/a/b/start3?full=1/x'];
      const script = starts.map((start) => `wait_healthy 2 0.2 r:${port}:${start} || echo "$UNHEALTHY"`).join('\n');
      const byCurlL: string[] = [];
      for (const start of starts) {
        await run('curl', ['-fsS', '-L', '--max-redirs', '1', '-o', '/dev/null', `http://127.0.0.1:${port}${start}`]);
        byCurlL.push(seen.pop()!);
      }
      expect(byCurlL).toEqual(['/t1', '/a/t2', '/a/b/t3/', '/a/b/start3?q=t4', '/t5', '/t6', '/', '/t8/', '/a/b/t9%20x?y=%2F', '/t10', '/t11', '/a/t2', '/a/b/start3?q=t4']);
      const r = await bash(script);
      expect([r.out, seen.splice(0)]).toEqual(['', byCurlL]);
      const byCurl = await bash(`probe_send() { PROBE_WHY=""; return 1; }\nNET_REDIRECTIONS=no\n${script}`);
      expect([byCurl.out, seen.splice(0)]).toEqual(['', byCurlL]);
    } finally {
      s.close();
    }
  });

  it('what a server sends is quoted without its control characters (an HTTP/2-only server, terminal escapes): the reason stays one readable line', async () => {
    // An h2c server answers an HTTP/1.1 request with HTTP/2 frames (SETTINGS, GOAWAY) and resets: what arrives first varies.
    const a = createHttp2Server((_, res) => res.end('ok'));
    const b = createNetServer((c) => c.on('error', () => undefined).end('\x1b[2J\x1b[31mhello\x07\r\n'));
    const d = createNetServer((c) => c.on('error', () => undefined).end('HTTP/1.1 302 Found\r\nLocation: https://example.org/\x1b[2Jx\r\n\r\n'));
    const [h2, esc, loc] = await Promise.all([listening(a), listening(b), listening(d)]);
    try {
      const r = await bash(`wait_healthy 1 0.2 a:${h2}:/ b:${esc}:/ c:${loc}:/ || echo "$UNHEALTHY"`);
      expect(r.out).toMatch(new RegExp(`^no healthy answer within 1s from a:${h2}:/ \\((?:not an HTTP answer: [^)]+|Empty reply from server)\\), b:${esc}:/ \\(not an HTTP answer: \\?\\[2J\\?\\[31mhello\\?\\), c:${loc}:/ \\(answered 302, a redirect to https://example\\.org/\\?\\[2Jx, off this program \\(the probe sent [^)]+\\): [^)]+\\)$`));
      expect(r.out).not.toMatch(/[\x00-\x1f\x7f]/);
    } finally {
      a.close();
      b.close();
      d.close();
    }
  });

  it('the watchdog, its input closed while armed (wait_healthy ended, SIGUSR2 no longer trapped), ends without a signal: the script lives on', async () => {
    const r = await bash(`me=$BASHPID
exec {ack}<> <(:)
exec {w}> >(probe_watchdog $me $ack >/dev/null 2>&1)
printf '5\\n' >&$w
exec {w}>&-
read -r -t 1.5 -u $ack _ || true
echo alive`);
    expect(r.out).toBe('alive');
  });
});

/** A server answering `answer` (status, headers, body) for each request it records (its headers). */
async function recording(answer: (req: IncomingMessage) => [number, Record<string, string>, string]): Promise<{ port: number; seen: IncomingMessage['headers'][] }> {
  const seen: IncomingMessage['headers'][] = [];
  const s = createServer((req, res) => {
    seen.push(req.headers);
    const [status, headers, body] = answer(req);
    res.writeHead(status, headers).end(body);
  });
  servers.push(s);
  return { port: await listening(s), seen };
}

/**
 * An environment serving TLS (self-signed) whose certificate is, or is not yet (`issued` false), where the probe looks
 * for it: its self-signed directory a temporary one of this machine.
 */
function tlsEnv(extra: Record<string, unknown> = {}, issued = true): Target {
  const env = testEnv({ tls: { mode: 'self-signed' }, ...extra });
  const dir = mkdtempSync(join(tmpdir(), 'ops-probe-cert-'));
  const withDir = { ...env, layout: { ...env.layout, selfSignedDir: dir } } as Target;
  if (issued) writeFileSync(certificatePaths(withDir)!.cert, '-----BEGIN CERTIFICATE-----\n');
  return withDir;
}

describe('what the probe sends: the request nginx passes the site\'s visitors (nginx-config.ts probeHeaders)', () => {
  const noCurl = 'probe_send() { PROBE_WHY=""; return 1; }\nNET_REDIRECTIONS=no';

  it('with a domain and TLS: Host the domain, X-Forwarded-Proto https, X-Forwarded-For and X-Real-IP 127.0.0.1, every header nginx sets; by bash and by the curl fallback', async () => {
    const env = tlsEnv({ domain: 'Shop.Example.org' });
    const { port, seen } = await recording(() => [200, {}, 'ok']);
    for (const fallback of ['', noCurl]) expect((await bash(`${probeHeaders(env)}\n${fallback}\nwait_healthy 2 0.2 client:${port}:/health && echo ok`)).out).toBe('ok');
    const want = { host: 'shop.example.org', 'x-forwarded-proto': 'https', 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1' };
    expect(seen).toEqual([expect.objectContaining(want), expect.objectContaining(want)]);
    // Every header the site's locations set reaches the program from the probe too; but Connection and Upgrade,
    // hop-by-hop: empty (nginx sends no empty header) for a request that is not a WebSocket handshake.
    const names = [...site(env, true).matchAll(/proxy_set_header (\S+) /g)].map((m) => m[1]!.toLowerCase()).filter((n) => n !== 'connection' && n !== 'upgrade');
    expect(new Set(names)).toEqual(new Set(Object.keys(want)));
  });

  it('without a domain: Host 127.0.0.1 without a port, as nginx\'s $host has a visitor\'s address (the program\'s port is in no request nginx passes), X-Forwarded-Proto http; a domain that is not a DNS name never reaches the shell', async () => {
    const { port, seen } = await recording(() => [200, {}, 'ok']);
    expect((await bash(`${probeHeaders(testEnv())}\nwait_healthy 2 0.2 client:${port}:/ && echo ok`)).out).toBe('ok');
    expect(seen[0]).toMatchObject({ host: '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1' });
    const env = testEnv({ domain: 'shop.example.org' });
    (env.config as { domain?: string }).domain = "x'; reboot; '";
    expect(() => probeHeaders(env)).toThrow(/not a DNS name or address/);
  });

  it('TLS on but its certificate not yet on the host: nginx serves the plain site (site(env, false)), so the probe forwards http, as nginx does; https once the certificate is there', async () => {
    const { port, seen } = await recording(() => [200, {}, 'ok']);
    const [waiting, issued] = [tlsEnv({ domain: 'shop.example.org' }, false), tlsEnv({ domain: 'shop.example.org' }, true)];
    // What nginx forwards: $scheme of the server that takes the visitor's request, port 80 only until the certificate.
    expect(site(waiting, false)).not.toMatch(/listen 443/);
    expect(site(issued, true)).toMatch(/listen 443 ssl/);
    for (const env of [waiting, issued]) expect((await bash(`${probeHeaders(env)}\nwait_healthy 2 0.2 client:${port}:/ && echo ok`)).out).toBe('ok');
    expect(seen.map((h) => h['x-forwarded-proto'])).toEqual(['http', 'https']);
    expect(seen[0]).toMatchObject({ host: 'shop.example.org' });
  });

  it('a redirect built from Host and X-Forwarded-Proto (FastAPI redirect_slashes behind proxy headers) is on the program and followed; one to https of a probe sent as http (SECURE_SSL_REDIRECT) is not, naming what was sent', async () => {
    const { port } = await recording((req) => {
      const base = `${req.headers['x-forwarded-proto'] === 'https' ? 'https' : 'http'}://${req.headers.host}`;
      if (req.url === '/health') return [307, { location: `${base}/health/` }, ''];
      // Django's SECURE_SSL_REDIRECT with SECURE_PROXY_SSL_HEADER = ('HTTP_X_FORWARDED_PROTO', 'https').
      if (req.url === '/secure' && req.headers['x-forwarded-proto'] !== 'https') return [301, { location: `https://${req.headers.host}/secure` }, ''];
      return [200, {}, 'ok'];
    });
    const tls = probeHeaders(tlsEnv({ domain: 'shop.example.org' }));
    const plain = probeHeaders(testEnv({ domain: 'shop.example.org' }));
    const script = (headers: string) => `${headers}\nwait_healthy 1 0.2 client:${port}:/health && echo slash=ok\nwait_healthy 1 0.2 client:${port}:/secure && echo secure=ok || echo "$UNHEALTHY"`;
    expect((await bash(script(tls))).out).toBe('slash=ok\nsecure=ok');
    for (const fallback of ['', noCurl])
      expect((await bash(`${fallback}\n${script(plain)}`)).out).toBe(
        `slash=ok\nno healthy answer within 1s from client:${port}:/secure (answered 301, a redirect to https://shop.example.org/secure, off this program (the probe sent Host: shop.example.org, X-Forwarded-Proto: http, as nginx forwards the site's requests): the health path must answer 2xx itself)`,
      );
  });

  it('a client error that persists (TrustedHostMiddleware\'s 400) ends the wait before its timeout, quoting the status line and the body\'s first printable characters, naming the headers sent; by bash and by curl', async () => {
    const { port } = await recording(() => [400, { 'content-type': 'text/plain' }, 'Invalid host header\x1b[2J\n' + 'x'.repeat(100_000)]);
    for (const fallback of ['', noCurl]) {
      const r = await bash(`${probeHeaders(testEnv())}\n${fallback}\nwait_healthy 12 0.2 client:${port}:/health || echo "$UNHEALTHY"`);
      // 3 s at least, a quarter of the timeout (the rounds' timing on a busy machine: not asserted further).
      expect(r.out.replace(/^the same client error for [3-9]s,/, 'the same client error for 3s,')).toBe(
        `the same client error for 3s, the program's answer to the probe (it runs, and refuses the request), from client:${port}:/health (The requested URL returned error: 400 (HTTP/1.1 400 Bad Request), answering: Invalid host header?[2J; the probe sends Host: 127.0.0.1, X-Forwarded-Proto: http, as nginx forwards the site's requests: a Host the app does not allow (Django's ALLOWED_HOSTS, Starlette's TrustedHostMiddleware), an auth middleware on the health path or a path that does not exist answer so; the health path must answer 2xx to this request)`,
      );
    }
  });

  it('408, 425 and 429 ask to come back: no verdict before the timeout; a client error that turns into 2xx passes', async () => {
    let n = 0;
    const { port } = await recording((req) => (req.url === '/busy' ? [429, {}, 'slow down'] : n++ < 3 ? [404, {}, 'not yet'] : [200, {}, 'ok']));
    const r = await bash(`wait_healthy 4 0.2 client:${port}:/busy || echo "$UNHEALTHY"\nwait_healthy 4 0.2 up:${port}:/up && echo up=ok`);
    expect(r.out).toBe(`no healthy answer within 4s from client:${port}:/busy (The requested URL returned error: 429 (HTTP/1.1 429 Too Many Requests), answering: slow down)\nup=ok`);
  });
});


describe('the probe, as real apps answer it: who gets the site\'s headers, how long a client error may last, what a verdict names', () => {
  const local = /^(127\.0\.0\.1|localhost)(:\d+)?$/;

  it('a program nginx never routes to (an internal API trusting Host 127.0.0.1 only, Django\'s ALLOWED_HOSTS) is asked as its callers ask; the one nginx proxies to gets the site\'s request', async () => {
    const api = await recording((req) => (local.test(req.headers.host ?? '') ? [200, {}, 'ok'] : [400, {}, 'Bad Request (400)']));
    const web = await recording((req) => (req.headers.host === 'shop.example.org' && req.headers['x-forwarded-proto'] === 'https' ? [200, {}, 'ok'] : [400, {}, 'Invalid host header']));
    const env = tlsEnv({ domain: 'shop.example.org', routes: { '/': 'client' }, programs: { client: { command: 'run', port: web.port }, server: { command: 'run', port: api.port, health: '/health' } } });
    expect((await bash(`${probeHeaders(env)}\nwait_healthy 10 0.2 ${probes(env, 'blue').join(' ')} && echo healthy || echo "$UNHEALTHY"`)).out).toBe('healthy');
    expect(api.seen[0]).toEqual(expect.objectContaining({ host: `127.0.0.1:${api.port}` }));
    expect(Object.keys(api.seen[0]!).filter((h) => /^x-(forwarded|real)/.test(h))).toEqual([]);
    expect(web.seen[0]).toEqual(expect.objectContaining({ host: 'shop.example.org', 'x-forwarded-proto': 'https', 'x-real-ip': '127.0.0.1' }));
  });

  it('a persistent client error ends the wait naming every other probe still pending with its reason (status marks each), and says "as nginx forwards" only of a routed program', async () => {
    const api = await recording(() => [404, {}, 'Cannot GET /health']);
    const down = await freePort();
    const env = testEnv({ domain: 'shop.example.org', routes: { '/': 'client' }, programs: { client: { command: 'run', port: down }, server: { command: 'run', port: api.port, health: '/health' } } });
    const list = probes(env, 'blue');
    const r = await bash(`${probeHeaders(env)}\nwait_healthy 8 0.2 ${list.join(' ')} || echo "$UNHEALTHY"\nls /proc/$$/fd | wc -l`);
    const [verdict = '', fds = ''] = r.out.split('\n');
    expect(verdict.replace(/^the same client error for \d+s,/, 'the same client error for 3s,')).toBe(
      `the same client error for 3s, the program's answer to the probe (it runs, and refuses the request), from server:${api.port}:/health (The requested URL returned error: 404 (HTTP/1.1 404 Not Found), answering: Cannot GET /health; the probe sends Host: 127.0.0.1:${api.port} and no forwarded header, as callers on 127.0.0.1 send: nginx routes none of the site's requests to it: a Host the app does not allow (Django's ALLOWED_HOSTS, Starlette's TrustedHostMiddleware), an auth middleware on the health path or a path that does not exist answer so; the health path must answer 2xx to this request); still waiting for client:${down}:/ (Failed to connect to 127.0.0.1 port ${down}: Connection refused)`,
    );
    expect(Number(fds)).toBeLessThan(8); // 0, 1, 2, the listing's own: no probe's connection left open
    const whys = healthReasons(verdict, list);
    expect(whys.get(`client:${down}:/`)).toBe(`Failed to connect to 127.0.0.1 port ${down}: Connection refused`);
    expect(whys.get(`server:${api.port}:/health`)).toMatch(/^The requested URL returned error: 404 .*to this request$/);
  });

  it('a client error while the app starts (routes mounted after it listens) lasts up to a quarter of the timeout: 4.5 s of 404 pass with a 20 s timeout', async () => {
    const up = Date.now() + 4500;
    const { port } = await recording(() => (Date.now() < up ? [404, {}, 'Cannot GET /health'] : [200, {}, 'ok']));
    expect((await bash(`wait_healthy 20 0.2 web:${port}:/health && echo ok || echo "$UNHEALTHY"`)).out).toBe('ok');
  });

  it('a TLS site\'s app without ProxyFix (Flask/Werkzeug) redirects to http://<its domain>/health/: the same program, followed; another host or port is not', async () => {
    const { port } = await recording((req) =>
      req.url === '/health' ? [308, { location: 'http://shop.example.org/health/' }, ''] : req.url === '/other' ? [308, { location: 'http://shop.example.org:8080/health/' }, ''] : [200, {}, 'ok'],
    );
    const env = tlsEnv({ domain: 'shop.example.org' });
    const r = await bash(`${probeHeaders(env)}\nwait_healthy 2 0.2 client:${port}:/health && echo ok\nwait_healthy 1 0.2 client:${port}:/other || echo "$UNHEALTHY"`);
    expect(r.out.split('\n')).toEqual(['ok', expect.stringMatching(/^no healthy answer within 1s from client:\d+:\/other \(answered 308, a redirect to http:\/\/shop\.example\.org:8080\/health\/, off this program/)]);
  });

  it('an error page\'s white space is one space, and a body cut short loses the word the cut falls in: no secret\'s first characters', async () => {
    const body = `<html>\n${' '.repeat(40)}Error: ${'b'.repeat(170)} SECRETVALUE0123456789 more`;
    const { port } = await recording(() => [500, {}, body]);
    const r = await bash(`wait_healthy 1 0.2 web:${port}:/ || echo "$UNHEALTHY"`);
    expect(r.out).toBe(`no healthy answer within 1s from web:${port}:/ (The requested URL returned error: 500 (HTTP/1.1 500 Internal Server Error), answering: <html> Error: ${'b'.repeat(170)}...)`); // a cut, said
  });

  it('a 4xx status line whose head never ends (over 100 KiB) is no answer, not a client error: the wait runs to its timeout', async () => {
    const s = createNetServer((c) => c.on('error', () => undefined).end(`HTTP/1.1 400 Bad Request\r\nX-A: ${'a'.repeat(120_000)}\r\n`));
    const port = await listening(s);
    try {
      expect((await bash(`wait_healthy 4 0.2 web:${port}:/ || echo "$UNHEALTHY"`)).out).toBe(`no healthy answer within 4s from web:${port}:/ (the answer's head is larger than 100 KiB)`);
    } finally {
      s.close();
    }
  });

  it('a domain written with its trailing dot (example.org.) is sent as nginx\'s $host has it, without', () => {
    expect(probeHeaders(testEnv({ domain: 'Shop.Example.org.' }))).toMatch(/^PROBE_SITE_HOST=shop\.example\.org /);
  });
});

/**
 * The port a program prints ("ready PORT" and a newline) once it listens (on port 0: the kernel's pick); rejects if
 * it ends first. The line may come in pieces (print writes its words apart when stdout is unbuffered).
 */
function readyPort(program: ReturnType<typeof spawn>): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    program.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const ready = /^ready (\d+)\n/.exec(out);
      if (ready) resolve(Number(ready[1]));
    });
    program.once('exit', (c) => reject(new Error(`${program.spawnfile} exited ${c} before it listened: ${JSON.stringify(out)}`)));
  });
}

/** A Python program (`code`, printing "ready PORT" once it listens) run by `python`; its port; ended after the test. */
async function python(code: string, python = '/usr/bin/python3'): Promise<number> {
  const py = spawn(python, ['-c', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  pythons.push(py);
  return readyPort(py);
}
const pythons: ReturnType<typeof spawn>[] = [];
afterEach(() => {
  for (const p of pythons.splice(0)) p.kill();
});
/** The Python of the pinned Flask venv scripts/setup-machine.sh makes (test/support/flask.txt), for the test that runs a real Flask app. */
const FLASK = `/var/cache/ops-pipeline/py/flask-${readFileSync(join(import.meta.dirname, '..', 'support', 'flask.txt'), 'utf8').split('\n').find((l) => l.trim() && !l.startsWith('#'))!.trim()}/bin/python`;

describe('redirect loops and answers cut off, as real servers make them: said as such, with what was received', () => {
  it('a Flask app without ProxyFix that sends plain http to https, behind a TLS site: a loop back to the health path, its Location named, the cause hinted; with ProxyFix(x_proto=1) it is healthy', async () => {
    const app = (proxyFix: boolean) => `from flask import Flask, redirect, request
${proxyFix ? 'from werkzeug.middleware.proxy_fix import ProxyFix\n' : ''}app = Flask(__name__)
@app.before_request
def https_only():
    if not request.is_secure:
        return redirect(request.url.replace('http://', 'https://', 1), 301)
@app.get('/health')
def health():
    return 'ok'
${proxyFix ? 'app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1)\n' : ''}import logging; logging.getLogger('werkzeug').disabled = True
from werkzeug.serving import make_server
srv = make_server('127.0.0.1', 0, app)
print('ready', srv.server_port, flush=True)
srv.serve_forever()`;
    const [bare, fixed] = await Promise.all([python(app(false), FLASK), python(app(true), FLASK)]);
    const env = tlsEnv({ domain: 'shop.example.org' });
    const r = await bash(`${probeHeaders(env)}\nwait_healthy 1 0.2 client:${bare}:/health || echo "$UNHEALTHY"\nwait_healthy 2 0.2 client:${fixed}:/health && echo fixed=ok`);
    expect(r.out.split('\n')).toEqual([
      `no healthy answer within 1s from client:${bare}:/health (redirects in a loop, back to /health (GET /health: 301 to https://shop.example.org/health; the probe sent Host: shop.example.org, X-Forwarded-Proto: https, as nginx forwards the site's requests): the app builds each Location from the scheme and host it takes the request for, and nginx would hand it the request it redirects to as this one again: usually it takes the request for plain http, as it does not trust the X-Forwarded-Proto nginx sends (uvicorn: --proxy-headers with --forwarded-allow-ips 127.0.0.1; Flask/Werkzeug: ProxyFix(app.wsgi_app, x_proto=1); Django: SECURE_PROXY_SSL_HEADER = ('HTTP_X_FORWARDED_PROTO', 'https'); Express: app.set('trust proxy', 'loopback')))`,
      'fixed=ok',
    ]);
  }, 20_000);

  it('a trailing-slash loop between two paths (Python\'s http.server), and more than 5 redirects, show the requests and Locations; a secret in a Location is masked where the verdict is shown', async () => {
    const port = await python(`from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(301 if self.path in to else 404)
        if self.path in to: self.send_header('Location', to[self.path])
        self.send_header('Content-Length', '0'); self.end_headers()
    def log_message(self, *a): pass
srv = HTTPServer(('127.0.0.1', 0), H)
port = srv.server_address[1]
to = {'/a': '/a/', '/a/': 'http://127.0.0.1:%d/a' % port, '/s': '/s?token=s3cr3tvalue', '/s?token=s3cr3tvalue': '/s'}
to.update({'/c%d' % i: '/c%d' % (i + 1) for i in range(9)})
print('ready', port, flush=True)
srv.serve_forever()`);
    const r = await bash(`for p in /a /c0 /s; do wait_healthy 1 0.2 web:${port}:$p || echo "$UNHEALTHY"; done`);
    const [slash = '', many = '', secret = ''] = r.out.split('\n');
    expect(slash).toBe(
      `no healthy answer within 1s from web:${port}:/a (redirects in a loop, back to /a (GET /a: 301 to /a/; GET /a/: 301 to http://127.0.0.1:${port}/a; the probe sent Host: 127.0.0.1:${port} and no forwarded header, as callers on 127.0.0.1 send: nginx routes none of the site's requests to it): redirect rules of the app that undo each other (a trailing slash added by one, taken off by another): the health path must answer 2xx itself)`,
    );
    expect(many).toBe(`no healthy answer within 1s from web:${port}:/c0 (more than 5 redirects (GET /c0: 301 to /c1; GET /c1: 301 to /c2; GET /c2: 301 to /c3; GET /c3: 301 to /c4; GET /c4: 301 to /c5; GET /c5: 301 to /c6))`);
    expect(secret).toContain('301 to /s?token=s3cr3tvalue');
    // What the user reads: status's reasons (healthReasons) and a failed step's detail (failureDetail) mask it.
    const shown = healthReasons(secret, [`web:${port}:/s`]).get(`web:${port}:/s`);
    expect(shown).toMatch(/^redirects in a loop, back to \/s \(GET \/s: 301 to \/s\?token=\*\*\*; GET \/s\?token=\*\*\*/);
    expect(shown).not.toContain('s3cr3tvalue');
    expect(failureDetail('', secret, (t) => t)).not.toContain('s3cr3tvalue');
  });

  it('a head that stops coming (a status line, then nothing: a worker stuck after it began its answer) times out saying what came, not a success', async () => {
    const held: import('node:net').Socket[] = [];
    const s = createNetServer((c) => {
      c.on('error', () => undefined);
      c.once('data', () => c.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n'));
      held.push(c);
    });
    const port = await listening(s);
    try {
      const r = await bash(`wait_healthy 1 0.2 web:${port}:/health && echo web=ok || echo "$UNHEALTHY"`);
      expect(r.out).toMatch(new RegExp(`^no healthy answer within 1s from web:${port}:/health \\(Operation timed out after 5\\d{3} milliseconds with 43 bytes received: "HTTP/1\\.1 200 OK" and 1 header field, the head not ended\\)$`));
    } finally {
      for (const c of held) c.destroy();
      s.close();
    }
  }, 20_000);

  it('an answer whose connection closes in its head says what was received (curl\'s "Empty reply from server" only for nothing): a 200 cut off is not healthy (nginx answers 502 for it), nor a 503, nor an interim answer alone; by bash and by curl', async () => {
    const heads: Record<string, string> = {
      ok: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n',
      down: 'HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/html\r\n',
      moved: 'HTTP/1.1 302 Found\r\nLocation: /ok\r\n',
      half: 'HTTP/1.1 200 O',
      early: 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n',
      none: '',
    };
    const s = createNetServer((c) => {
      c.on('error', () => undefined);
      c.once('data', (d) => c.end(heads[(d.toString().split(' ')[1] ?? '').slice(1)] ?? ''));
    });
    const port = await listening(s);
    try {
      const script = Object.keys(heads).map((k) => `wait_healthy 1 0.2 ${k}:${port}:/${k} && echo ${k}=ok || echo "$UNHEALTHY"`).join('\n');
      const cut = (head: string, status: string, fields: number) =>
        `the connection closed after ${Buffer.byteLength(heads[head]!)} bytes, in the answer's head: "${status}" and ${fields} header field${fields === 1 ? '' : 's'}, without the empty line that ends a head (nginx answers the site's visitors 502 for it: upstream prematurely closed connection)`;
      const want = [
        cut('ok', 'HTTP/1.1 200 OK', 1),
        cut('down', 'HTTP/1.1 503 Service Unavailable', 2),
        cut('moved', 'HTTP/1.1 302 Found', 1),
        cut('half', 'HTTP/1.1 200 O', 0),
        `the connection closed after ${Buffer.byteLength(heads.early!)} bytes: an interim answer (HTTP/1.1 103 Early Hints) and no final one`,
        'Empty reply from server',
      ].map((why, i) => `no healthy answer within 1s from ${Object.keys(heads)[i]}:${port}:/${Object.keys(heads)[i]} (${why})`);
      expect((await bash(script)).out.split('\n')).toEqual(want);
      // curl passes on the head lines it received (its -i output): the same words; where it parsed no status line of
      // a final answer (a cut one, an interim answer alone), its own words (curl: (52) Empty reply from server).
      const byCurl = (await bash(`probe_send() { PROBE_WHY=""; return 1; }\nNET_REDIRECTIONS=no\n${script}`)).out.split('\n');
      expect(byCurl.slice(0, 3)).toEqual(want.slice(0, 3));
      for (const line of byCurl.slice(3)) expect(line).toMatch(/^no healthy answer within 1s from \w+:\d+:\/\w+ \(.+\)$/);
    } finally {
      s.close();
    }
  });
});
