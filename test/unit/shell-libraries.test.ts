// The shell libraries (core/steps/sh/*.sh) run by bash on this machine, against real processes: what the
// steps rely on them for (a lost connection's processes found by their environment; a process's start time).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { scriptPrelude } from '../../core/remote/wrap.ts';
import { CONNECTION_FUNCTIONS } from '../../core/steps/libraries.ts';

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
