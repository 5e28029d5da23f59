// A port for a server a test starts itself (sshd, the sample app's API and client), picked the way that cannot
// race: below the kernel's ephemeral range (net.ipv4.ip_local_port_range), where listen(0) never lands, so the
// many servers other test files start on port 0 meanwhile cannot take it between our check and the real bind
// (seen: the sample app's client asked another test's fake API for /version and got 404).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The lowest port the kernel hands out by itself (32768 on Debian). */
function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

const handedOut = new Set<number>();

/**
 * A free TCP port on 127.0.0.1 between 20000 and the ephemeral range, chosen at random (test files run in
 * parallel; random picks rarely meet, and a pick found taken is skipped). @throws after 200 taken picks.
 */
export async function freePort(): Promise<number> {
  const low = 20_000;
  const high = Math.max(low + 1000, ephemeralLow());
  for (let i = 0; i < 200; i++) {
    const port = low + Math.floor(Math.random() * (high - low));
    // Never the same port twice in a process: a test that picks two before it listens on either (free both at the
    // check) would bind the second pick's server to the first's port.
    if (handedOut.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port between ${low} and ${high}`);
}
