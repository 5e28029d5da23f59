// What `ssh <address>` would do differently from ops, for a login that failed: ops reads no OpenSSH client
// configuration (~/.ssh/config, /etc/ssh/ssh_config: a known gap, README "Commands"), so a Host alias, or a HostName,
// Port, User, IdentityFile or ProxyJump set there for the address, works with plain ssh and not with ops. OpenSSH
// itself reads the configuration (`ssh -G`: no connection is made), so no parser of ours reads it.
import { execFile } from 'node:child_process';
import type { Endpoint } from './ssh-login.ts';

/** The settings `ssh -G` prints, by lower-case keyword: each keyword's values in order (identityfile has several). */
type Settings = Map<string, string[]>;

function sshG(address: string, configFile: string | undefined, timeoutMs: number): Promise<Settings | undefined> {
  return new Promise((resolve) => {
    // `--`: the address is never read as an option (the schema allows none that starts with "-" anyway)
    const args = [...(configFile ? ['-F', configFile] : []), '-G', '--', address];
    execFile('ssh', args, { timeout: timeoutMs, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } }, (err, stdout) => {
      if (err) return resolve(undefined);
      const settings: Settings = new Map();
      for (const line of stdout.split('\n')) {
        const m = /^(\S+) (.*)$/.exec(line);
        if (m) settings.set(m[1]!, [...(settings.get(m[1]!) ?? []), m[2]!]);
      }
      resolve(settings);
    });
  });
}

/**
 * What the OpenSSH client configuration sets for `ep.address` that differs from how ops connected to `ep` (HostName,
 * Port, User, IdentityFile, ProxyJump or ProxyCommand), as one sentence for a hint, naming where each goes in the
 * environment; undefined when it sets nothing that differs, or when ssh is not installed or does not answer within
 * `timeoutMs`. `configFile`: the file ssh reads (ssh's own choice when not given: ~/.ssh/config, then
 * /etc/ssh/ssh_config). Never throws.
 */
export async function sshConfigDifference(ep: Endpoint, hasBastion: boolean, configFile?: string, timeoutMs = 3000): Promise<string | undefined> {
  const [set, plain] = await Promise.all([sshG(ep.address, configFile, timeoutMs), sshG(ep.address, '/dev/null', timeoutMs)]);
  if (!set || !plain) return undefined;
  const one = (s: Settings, k: string) => s.get(k)?.[0];
  const differs: string[] = [];
  const hostname = one(set, 'hostname');
  if (hostname && hostname !== one(plain, 'hostname')) differs.push(`HostName ${hostname} (ops: address)`);
  const port = one(set, 'port');
  if (port && port !== one(plain, 'port') && port !== String(ep.port)) differs.push(`Port ${port} (ops: port)`);
  const user = one(set, 'user');
  if (user && user !== one(plain, 'user') && user !== ep.user) differs.push(`User ${user} (ops: user)`);
  const defaults = new Set(plain.get('identityfile') ?? []);
  const keys = (set.get('identityfile') ?? []).filter((f) => !defaults.has(f));
  if (keys.length) differs.push(`IdentityFile ${keys.join(', ')} (ops: --identity or ssh.identity_file)`);
  for (const [k, name] of [['proxyjump', 'ProxyJump'], ['proxycommand', 'ProxyCommand']] as const) {
    const v = one(set, k);
    if (v && v !== 'none' && v !== one(plain, k) && !hasBastion) differs.push(`${name} ${v} (ops: bastion${k === 'proxycommand' ? ', for a jump host' : ''})`);
  }
  if (!differs.length) return undefined;
  return `plain ssh ${ep.address} would use, from your ssh configuration: ${differs.join(', ')}; ops reads no ssh configuration: set them in the environment`;
}
