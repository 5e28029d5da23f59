// The programs of an environment as the host reports them: supervisor's getAllProcessInfo (XML-RPC) and
// report_slot's `proc` / `listener` lines (core/steps/sh/identity.sh): what each process runs and who listens.
import type { Target } from '../target.ts';
import type { Slot } from '../layout.ts';
import { reportedAll, type StepResult } from '../remote/types.ts';
import { LIBRARY_KEYS } from './libraries.ts';

export interface ProgramState {
  program: string;
  slot: Slot;
  live: boolean;
  /** supervisor's state name: RUNNING, STOPPED, FATAL, BACKOFF, STARTING, EXITED... */
  state: string;
  pid?: number;
  /** Seconds since it started (RUNNING, STARTING), or since it stopped. */
  seconds?: number;
  /** When it started (RUNNING, STARTING: supervisor's `start`, epoch seconds on the host's clock). */
  started?: number;
  description: string;
  /** The release the process runs, read from the process (OPS_RELEASE, else its working directory), not from `current`. */
  release?: string;
  /** Its working directory; `deleted` when that directory no longer exists. */
  cwd?: string;
  deleted?: boolean;
  /** The processes listening on its port: pid, whether supervisor's process for it is their ancestor, their release. */
  listeners?: { pid: number; supervised: boolean; release: string; command: string }[];
}

/** One `proc` or `listener` report of `report_slot` (tab-separated). */
export interface ProcReport {
  slot: string;
  program: string;
  pid: number;
  supervised?: boolean;
  /**
   * A listener not in that tree that a program of this environment left running outside supervisor (report_slot's
   * `own`: the programs' user, run from one of our release directories, in no supervisor tree): the start on that
   * slot stops it (leftovers_down) rather than refusing.
   */
  leftover?: boolean;
  release: string;
  cwd: string;
  command: string;
}

/** The release a process runs: its OPS_RELEASE, else the release directory its working directory is in. */
function processRelease(env: Target, envRelease: string, cwd: string): string {
  if (envRelease) return envRelease;
  const prefix = `${env.layout.releases}/`;
  return cwd.startsWith(prefix) ? cwd.slice(prefix.length).split(/[/ ]/)[0]! : '';
}

/**
 * report_slot's `proc` (supervisor's process of each program) and `listener` (who listens on its port) lines,
 * each with the release it runs (OPS_RELEASE, else its working directory).
 */
export function parseProcReports(env: Target, r: StepResult): { procs: ProcReport[]; listeners: ProcReport[] } {
  const parse = (line: string, withTree: boolean): ProcReport => {
    const f = line.split('\t');
    const [slot = '', program = '', pid = '0'] = f;
    const rest = withTree ? f.slice(4) : f.slice(3);
    const [envRelease = '', cwd = '', ...command] = rest;
    return { slot, program, pid: Number(pid), ...(withTree && { supervised: f[3] === 'tree' }), ...(withTree && f[3] === 'own' && { leftover: true }), release: processRelease(env, envRelease, cwd), cwd, command: command.join(' ') };
  };
  return { procs: reportedAll(r, LIBRARY_KEYS.proc).map((l) => parse(l, false)), listeners: reportedAll(r, LIBRARY_KEYS.listener).map((l) => parse(l, true)) };
}

/** A process in a message: "pid 123 (python -m server.main) running 2026...-abc". */
export function describeProcess(p: { pid: number; command: string; release: string }): string {
  if (!p.pid) return 'a listening socket ss names no process for';
  return `pid ${p.pid}${p.command ? ` (${p.command})` : ''} running ${p.release || 'an unknown release'}`;
}

/**
 * The listeners on `slot`'s ports (report_slot's) that are neither in the tree of the process supervisor runs for
 * that program of the slot nor left running by our own programs (leftoverListeners): what a start on that slot
 * cannot stop (it stops the slot's own group and our leftovers) and would find holding the port. `ops status` warns
 * about them on the idle slot; a deploy refuses before building.
 */
export function foreignListeners(listeners: ProcReport[], slot: Slot): ProcReport[] {
  return listeners.filter((x) => x.slot === slot && !x.supervised && !x.leftover);
}

/**
 * The listeners on `slot`'s ports that a program of this environment left running outside supervisor (report_slot's
 * `own`: a daemon of a release, its parent stopped): the next start on that slot stops them first (leftovers_down).
 */
export function leftoverListeners(listeners: ProcReport[], slot: Slot): ProcReport[] {
  return listeners.filter((x) => x.slot === slot && x.leftover);
}

const XML_ENTITIES: Record<string, string> = { '&lt;': '<', '&gt;': '>', '&amp;': '&', '&quot;': '"', '&apos;': "'" };

function unescapeXml(s: string): string {
  return s.replace(/&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (m) =>
    m.startsWith('&#x') ? String.fromCodePoint(parseInt(m.slice(3, -1), 16)) : m.startsWith('&#') ? String.fromCodePoint(Number(m.slice(2, -1))) : (XML_ENTITIES[m] ?? m),
  );
}

/** supervisor.getAllProcessInfo's XML-RPC answer: one record per process, members as strings. */
export function parseProcessInfo(xml: string): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  for (const struct of xml.split('<struct>').slice(1)) {
    const body = struct.split('</struct>')[0]!;
    const rec: Record<string, string> = {};
    for (const m of body.matchAll(/<member>\s*<name>([^<]*)<\/name>\s*<value>\s*(?:<(\w+)>([^<]*)<\/\2>|<(\w+)\s*\/>|([^<]*))\s*<\/value>\s*<\/member>/g)) {
      rec[m[1]!] = unescapeXml(m[3] ?? m[5] ?? '');
    }
    out.push(rec);
  }
  return out;
}

/** The environment's programs in supervisor (both slots), from getAllProcessInfo records. */
export function programStates(env: Target, records: Record<string, string>[], liveSlot: Slot | undefined): ProgramState[] {
  const app = env.config.app;
  const states: ProgramState[] = [];
  for (const r of records) {
    const slot = r.group === `${app}-blue` ? 'blue' : r.group === `${app}-green` ? 'green' : undefined;
    if (!slot) continue;
    const program = (r.name ?? '').slice(`${app}-${slot}-`.length);
    if (!env.config.programs[program]) continue;
    const now = Number(r.now);
    // A STARTING process runs too (startsecs not yet over: 3 s after every start): its time counts from its start.
    const since = r.statename === 'RUNNING' || r.statename === 'STARTING' ? Number(r.start) : Number(r.stop);
    states.push({
      program,
      slot,
      live: slot === liveSlot,
      state: r.statename ?? 'UNKNOWN',
      pid: Number(r.pid) > 0 ? Number(r.pid) : undefined,
      seconds: now > 0 && since > 0 && now >= since ? now - since : undefined,
      started: (r.statename === 'RUNNING' || r.statename === 'STARTING') && Number(r.start) > 0 ? Number(r.start) : undefined,
      // For RUNNING and STOPPED, supervisor's description is a pid/uptime or a date: shown as numbers instead.
      description: r.spawnerr || (['RUNNING', 'STOPPED', 'STARTING', 'STOPPING'].includes(r.statename ?? '') ? '' : (r.description ?? '')),
    });
  }
  const order = Object.keys(env.config.programs);
  return states.sort((a, b) => Number(b.live) - Number(a.live) || a.slot.localeCompare(b.slot) || order.indexOf(a.program) - order.indexOf(b.program));
}

