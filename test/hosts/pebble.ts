// The lab's ACME server: Debian's pebble (a small Let's Encrypt stand-in) and pebble-challtestsrv as its DNS,
// on the services address. Domains resolve only to what `addHostName` says, so pebble's HTTP-01 validation
// really fetches http://<domain>/.well-known/acme-challenge/... from the test host's nginx.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { OpsError } from '../../core/errors.ts';
import { ensureServicesAddress, findProgram, requireRoot, requireTools } from './lab.ts';
import { paths, SERVICES_ADDRESS } from './paths.ts';
import { isAlive, livePid, logTail, readPidFile, run, spawnDaemon, stopProcess, waitFor, withLock, writePidFile } from './proc.ts';

export const PEBBLE_PORT = 14000;
export const PEBBLE_MANAGEMENT_PORT = 15000;
const DNS_PORT = 8053;
const CHALLTESTSRV_MANAGEMENT_PORT = 8055;

export interface Pebble {
  /** ACME directory, for certbot's --server. */
  directoryUrl: string;
  /** CA of pebble's own HTTPS API: give it to certbot as REQUESTS_CA_BUNDLE. */
  apiCaFile: string;
  /** Root that issues the certificates (changes at every pebble start): clients verify served certs with it. */
  rootCaFile: string;
  /** Make `domain` resolve (for pebble's validation) to `address`, e.g. a test host's 10.N.0.2. */
  addHostName(domain: string, address: string): Promise<void>;
  removeHostName(domain: string): Promise<void>;
}

const dir = () => join(paths.state, 'pebble');
const pebblePid = () => join(paths.run, 'pebble.pid');
const challPid = () => join(paths.run, 'pebble-challtestsrv.pid');
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/** API certificate for pebble, made once: a private CA, and a server cert for the services address. */
async function ensureApiCertificate(): Promise<void> {
  const d = dir();
  if (existsSync(join(d, 'cert.pem')) && existsSync(join(d, 'ca.pem'))) return;
  mkdirSync(d, { recursive: true, mode: 0o700 });
  const o = (args: string[], input?: string) => run('openssl', args, { cwd: d, input });
  await o(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '3650', '-subj', '/CN=ops-testhosts pebble API CA', '-keyout', 'ca.key', '-out', 'ca.pem']);
  await o(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=pebble', '-keyout', 'key.pem', '-out', 'api.csr']);
  writeFileSync(join(d, 'api.ext'), `subjectAltName=IP:${SERVICES_ADDRESS},IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
  await o(['x509', '-req', '-in', 'api.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '3650', '-out', 'cert.pem', '-extfile', 'api.ext']);
}

function fetchText(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString()) : reject(new Error(`${url}: HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timeout`)));
    req.on('error', reject);
    req.end();
  });
}

function managementPost(path: string, body: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = httpRequest(
      { host: SERVICES_ADDRESS, port: CHALLTESTSRV_MANAGEMENT_PORT, path, method: 'POST', timeout: 5000, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } },
      (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new OpsError(`pebble-challtestsrv ${path}: HTTP ${res.statusCode}`))));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => reject(new OpsError(`pebble-challtestsrv is not reachable (${e.message})`, 'start it: ensurePebble() / npm run hosts -- services')));
    req.end(data);
  });
}

/** Start pebble + its DNS unless they run; fetch the issuing root. Quick when already running. */
export async function ensurePebble(): Promise<Pebble> {
  requireRoot();
  requireTools(['pebble', 'pebble-challtestsrv', 'openssl']);
  await ensureServicesAddress();
  const d = dir();
  const apiCaFile = join(d, 'ca.pem');
  const rootCaFile = join(d, 'issuing-root.pem');
  await withLock('pebble', async () => {
    if (livePid(pebblePid()) && livePid(challPid()) && existsSync(rootCaFile)) return;
    await stopPebble({}); // one of the two died: restart both (pebble's state is in memory anyway)
    await ensureApiCertificate();
    writeFileSync(
      join(d, 'pebble-config.json'),
      `${JSON.stringify(
        {
          pebble: {
            listenAddress: `${SERVICES_ADDRESS}:${PEBBLE_PORT}`,
            managementListenAddress: `${SERVICES_ADDRESS}:${PEBBLE_MANAGEMENT_PORT}`,
            certificate: join(d, 'cert.pem'),
            privateKey: join(d, 'key.pem'),
            httpPort: 80,
            tlsPort: 443,
            ocspResponderURL: '',
            externalAccountBindingRequired: false,
          },
        },
        null,
        2,
      )}\n`,
    );
    const chLog = join(paths.logsDir, 'pebble-challtestsrv.log');
    // Only the fake DNS and its management API; no default answer, so an unknown name fails validation clearly.
    const chall = spawnDaemon(
      findProgram('pebble-challtestsrv')!,
      ['-defaultIPv4', '', '-defaultIPv6', '', '-dns01', `${SERVICES_ADDRESS}:${DNS_PORT}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `${SERVICES_ADDRESS}:${CHALLTESTSRV_MANAGEMENT_PORT}`],
      chLog,
    );
    writePidFile(challPid(), chall);
    const pLog = join(paths.logsDir, 'pebble.log');
    // No random validation sleep, no random nonce rejection: tests stay fast and deterministic.
    const pebble = spawnDaemon(findProgram('pebble')!, ['-config', join(d, 'pebble-config.json'), '-dnsserver', `${SERVICES_ADDRESS}:${DNS_PORT}`], pLog, {
      env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' },
    });
    writePidFile(pebblePid(), pebble);
    const ca = readFileSync(apiCaFile, 'utf8');
    const root = await waitFor(async () => {
      if (!isAlive(pebble) || !isAlive(chall)) return 'died';
      try {
        return await fetchText(`https://${SERVICES_ADDRESS}:${PEBBLE_MANAGEMENT_PORT}/roots/0`, ca);
      } catch {
        return undefined;
      }
    }, 15_000);
    if (!root || root === 'died') {
      await stopPebble({});
      throw new OpsError(`pebble did not start on ${SERVICES_ADDRESS}:${PEBBLE_PORT}\n${logTail(pLog)}\n${logTail(chLog)}`, `logs: ${pLog}, ${chLog}`);
    }
    writeFileSync(rootCaFile, root);
  }, { purpose: 'starting pebble (the ACME test server)' });
  return {
    directoryUrl: `https://${SERVICES_ADDRESS}:${PEBBLE_PORT}/dir`,
    apiCaFile,
    rootCaFile,
    async addHostName(domain: string, address: string) {
      if (!DOMAIN.test(domain)) throw new OpsError(`invalid domain ${JSON.stringify(domain)}`, 'use a DNS name such as app.test');
      if (!IPV4.test(address)) throw new OpsError(`invalid IPv4 address ${JSON.stringify(address)}`);
      await managementPost('/add-a', { host: domain, addresses: [address] });
    },
    async removeHostName(domain: string) {
      if (!DOMAIN.test(domain)) throw new OpsError(`invalid domain ${JSON.stringify(domain)}`);
      await managementPost('/clear-a', { host: domain });
    },
  };
}

export function pebbleStatus(): { running: boolean; pid?: number; directoryUrl: string } {
  const record = livePid(pebblePid());
  return { running: !!record && !!livePid(challPid()), pid: record?.pid, directoryUrl: `https://${SERVICES_ADDRESS}:${PEBBLE_PORT}/dir` };
}

export async function stopPebble(options: { purge?: boolean }): Promise<void> {
  await stopProcess(readPidFile(pebblePid()), 'SIGTERM', 5_000);
  await stopProcess(readPidFile(challPid()), 'SIGTERM', 5_000);
  rmSync(pebblePid(), { force: true });
  rmSync(challPid(), { force: true });
  rmSync(join(dir(), 'issuing-root.pem'), { force: true }); // belongs to the pebble that just stopped
  if (options.purge) rmSync(dir(), { recursive: true, force: true });
}

