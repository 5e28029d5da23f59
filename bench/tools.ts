// The two tools as a user runs them, timed from spawn to exit: the `ops` CLI (node scripts/ops-bin.js, start-up
// included) and Debian's ansible-playbook with the seed's ansible.cfg (or the same plus pipelining). Also the
// host-side count of SSH logins (sshd's "Accepted publickey" lines in the host's journal).
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { OpsError, tail } from '../core/errors.ts';
import { sshRun, type Host } from '../test/hosts/index.ts';
import type { OursEnv } from './lab.ts';

export const ROOT = join(import.meta.dirname, '..');
export const ANSIBLE_DIR = join(ROOT, 'bench', 'ansible');

export type Side = 'ours' | 'seed' | 'pipelining';
export const ANSIBLE_CONFIGS: Record<Exclude<Side, 'ours'>, string> = {
  seed: join(ANSIBLE_DIR, 'ansible.cfg'),
  pipelining: join(ANSIBLE_DIR, 'ansible-pipelining.cfg'),
};

/** Children still running, killed (by pid) if the benchmark is interrupted. */
export const children = new Set<ChildProcess>();

export interface Timed {
  ms: number;
  stdout: string;
  stderr: string;
}

let logFile = '';
export function setLogFile(file: string): void {
  logFile = file;
  mkdirSync(join(file, '..'), { recursive: true });
}

/** Run a program, time it from spawn to exit, keep its output in the log; throw an OpsError when it fails. */
export function timed(program: string, args: string[], options: { env?: NodeJS.ProcessEnv; label: string; onStart?: (t0: number) => void }): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(program, args, { cwd: ROOT, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    options.onStart?.(t0);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      children.delete(child);
      reject(e.code === 'ENOENT' ? new OpsError(`${program}: command not found`, 'prepare the machine: sudo scripts/setup-machine.sh') : e);
    });
    child.on('close', (code, signal) => {
      const ms = performance.now() - t0;
      children.delete(child);
      const stdout = Buffer.concat(out).toString();
      const stderr = Buffer.concat(err).toString();
      if (logFile) appendFileSync(logFile, `\n===== ${options.label}: ${program} ${args.join(' ')} -> ${code ?? signal} in ${(ms / 1000).toFixed(2)} s\n${stdout}${stderr ? `\n--- stderr\n${stderr}` : ''}`);
      if (code !== 0) {
        reject(new OpsError(`${options.label}: \`${program} ${args.join(' ')}\` failed (${code ?? signal})\n${tail(`${stdout}\n${stderr}`, 25)}`, logFile ? `full output: ${logFile}` : undefined));
      } else resolve({ ms, stdout, stderr });
    });
  });
}

/** `ops <args>` through the CLI launcher, with OPS_ROOT at the environment's scratch project. */
export function ops(env: OursEnv, args: string[], label: string, onStart?: (t0: number) => void): Promise<Timed> {
  return timed(process.execPath, [join(ROOT, 'scripts', 'ops-bin.js'), ...args], { env: { OPS_ROOT: env.project.root, NO_COLOR: '1' }, label, onStart });
}

/**
 * The launcher rebuilds its cached bundle when a source under core/ or scripts/ is newer (other people edit the
 * tree while this runs). A user's installed CLI does not rebuild, so make sure the bundle is fresh before timing.
 */
export async function warmCli(): Promise<number> {
  return (await timed(process.execPath, [join(ROOT, 'scripts', 'ops-bin.js'), '--help'], { label: 'ops --help' })).ms;
}

export function ansible(side: Exclude<Side, 'ours'>, inventory: string, vars: string, tag: 'provision' | 'deploy', ref: string | undefined, label: string, onStart?: (t0: number) => void): Promise<Timed> {
  const args = ['-i', inventory, '-e', `@${vars}`, ...(ref ? ['-e', `git_version=${ref}`] : []), '-t', tag, join(ANSIBLE_DIR, 'playbook.yml')];
  return timed('ansible-playbook', args, { env: { ANSIBLE_CONFIG: ANSIBLE_CONFIGS[side], ANSIBLE_NOCOLOR: '1', ANSIBLE_FORCE_COLOR: '0' }, label, onStart });
}

/** SSH logins the host's sshd accepted so far, counted on the host (the count's own login included). */
export async function sshLogins(host: Host): Promise<number> {
  const r = await sshRun(host, "sudo journalctl _COMM=sshd --no-pager -o cat | grep -c 'Accepted publickey' || true");
  const n = Number(r.stdout.trim());
  if (!Number.isInteger(n)) throw new OpsError(`could not count SSH logins on ${host.name}: ${r.stdout.trim()} ${r.stderr.trim()}`);
  return n;
}
