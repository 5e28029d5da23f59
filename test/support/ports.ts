// A port for a server a test starts itself (sshd, the sample app's API and client), picked the way that cannot
// race: below the kernel's ephemeral range (net.ipv4.ip_local_port_range), where listen(0) never lands, so the
// many servers other test files start on port 0 meanwhile cannot take it between our check and the real bind
// (seen: the sample app's client asked another test's fake API for /version and got 404). Each pick is held for the
// picking process's life by a lock the other test processes see: two test files running side by side can pick the
// same port, both find it free, and the second to bind fails with EADDRINUSE (seen in CI: an uncaught error, a test
// waiting out its 60 s). A server the test starts in Node itself listens on port 0 instead (listening()): no pick.
import { readFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Server } from 'node:net';

/** The lowest port the kernel hands out by itself (32768 on Debian). */
function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

/**
 * Listen on `at` (a port, or an abstract unix socket's name): true once listening, false if it is taken; the
 * server is left listening when `keep`, else closed first.
 */
function tryListen(srv: Server, at: number | string, keep: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    srv.once('error', () => resolve(false));
    const listening = () => (keep ? resolve(true) : srv.close(() => resolve(true)));
    if (typeof at === 'number') srv.listen(at, '127.0.0.1', listening);
    else srv.listen(at, listening);
  });
}

/**
 * Claim `port` among this machine's test processes: an abstract unix socket named for it (Linux), which the kernel
 * removes when its process ends, however it ends (no lock file left by a killed test to clean up); unref'd, so that
 * it does not keep the process alive.
 */
async function claim(port: number): Promise<boolean> {
  const lock = createServer();
  const ok = await tryListen(lock, `\0ops-pipeline-test-port-${port}`, true);
  if (ok) lock.unref();
  return ok;
}

const handedOut = new Set<number>();

/**
 * A free TCP port on 127.0.0.1 between 20000 and the ephemeral range, chosen at random, for a server whose port must
 * be known before it starts (a program started later, a port left closed on purpose, another program's own bind):
 * no other test process on this machine is handed it while this one runs, and it was free when checked.
 * @throws after 200 taken picks.
 */
export async function freePort(): Promise<number> {
  const low = 20_000;
  const high = Math.max(low + 1000, ephemeralLow());
  for (let i = 0; i < 200; i++) {
    const port = low + Math.floor(Math.random() * (high - low));
    // Never the same port twice in a process: a test that picks two before it listens on either (free both at the
    // check) would bind the second pick's server to the first's port.
    if (handedOut.has(port)) continue;
    if (!(await claim(port))) continue;
    handedOut.add(port);
    if (await tryListen(createServer(), port, false)) return port;
  }
  throw new Error(`no free port between ${low} and ${high}`);
}

/**
 * Start `server` listening on 127.0.0.1 (or `host`) at `port`, port 0 (the kernel's pick, bound at once) unless the
 * port had to be known before: its port once listening; rejects if the listen fails (EADDRINUSE said at once, not an
 * uncaught error and a test waiting out its time limit).
 */
export function listening(server: Server, port = 0, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
