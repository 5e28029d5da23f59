// The shell libraries (core/steps/sh/*.sh) run by bash on this machine, against real processes: what the
// steps rely on them for (a lost connection's processes found by their environment; a process's start time).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { scriptPrelude } from '../../core/remote/wrap.ts';
import { CONNECTION_FUNCTIONS, visitorAddress } from '../../core/steps/libraries.ts';

const run = promisify(execFile);
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

async function bash(script: string): Promise<string> {
  return (await run('bash', ['-c', `${scriptPrelude}\n${script}`])).stdout;
}

/** A process started "for" connection `id`: OPS_CONNECTION in its environment, as every step's children have. */
function startedFor(id: string): ChildProcess {
  const child = spawn('sleep', ['60'], { env: { ...process.env, OPS_CONNECTION: id }, stdio: 'ignore' });
  children.push(child);
  return child;
}

describe('connection.sh', () => {
  it('connection_pids finds the processes a connection left, by their environment, and no others', async () => {
    const left = [startedFor('c0ffee01'), startedFor('c0ffee02')];
    const other = startedFor('c0ffee0102'); // an id that starts like one asked for
    const out = await bash(`${CONNECTION_FUNCTIONS}\nconnection_pids c0ffee01 c0ffee02`);
    const pids = out.replace(/@ops-start/g, '').trim().split(/\s+/).map(Number);
    expect(pids.sort()).toEqual(left.map((c) => c.pid!).sort());
    expect(pids).not.toContain(other.pid);
    expect((await bash(`${CONNECTION_FUNCTIONS}\nconnection_pids ffffffff`)).replace(/@ops-start/g, '').trim()).toBe('');
  });

  it('proc_start is field 22 of /proc/PID/stat, also for a command name with spaces and parentheses', async () => {
    const child = spawn('bash', ['-c', 'exec -a "a (b) c" sleep 60'], { stdio: 'ignore' });
    children.push(child);
    await new Promise((r) => setTimeout(r, 200));
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
    const out = await bash(`${CONNECTION_FUNCTIONS}\nproc_start ${child.pid}`);
    expect(out.replace(/@ops-start/g, '').trim()).toBe(fields[19]);
  });
});

describe('visitorAddress (libraries.ts)', () => {
  // A step runs under sudo, whose env_reset drops SSH_CONNECTION: the address is read from a process above it.
  const under = async (conn: string) => {
    const env: Record<string, string> = { ...(process.env as Record<string, string>), OPS_FILLER: 'x'.repeat(3000), SSH_CONNECTION: conn };
    // The parent keeps it (its environment has it), the step itself has it not (env -u, as sudo's env_reset).
    const step = `${scriptPrelude}\n${visitorAddress()}\necho "$gate_at $gate_at_shown"`;
    return (await run('bash', ['-c', `env -u SSH_CONNECTION bash -c "$STEP"; true`], { env: { ...env, STEP: step } })).stdout.trim().split('\n').pop();
  };
  it("takes the address the SSH connection reached from the first process above the step that has it (its environment read by bash itself); IPv6 in brackets; not an address: 127.0.0.1", async () => {
    expect(await under('198.51.100.7 50123 203.0.113.20 22')).toBe('203.0.113.20 203.0.113.20');
    expect(await under('2001:db8::7 50123 2001:db8::20 22')).toBe('[2001:db8::20] [2001:db8::20]');
    expect(await under('not an address here')).toBe('127.0.0.1 127.0.0.1');
  });
});
