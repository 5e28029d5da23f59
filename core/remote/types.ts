// The contract between steps (what to run) and transports (how it reaches a host).
// A step is data: a bash script plus who runs it. It never opens a connection, so it is unit-tested
// by its exact text. A Remote runs steps over one connection per host (node-ssh) or records them (tests).
import { DISK_FULL, maskedText, tail } from '../errors.ts';

/** Who runs a script on the host: the SSH login itself, root (through sudo), or the unprivileged app user. */
export type RunAs = 'login' | 'root' | 'app';

export interface Step {
  /** Short name, shown in logs and in errors ("step \"build\" on web1 failed ..."). */
  name: string;
  /** Bash script body. The transport prepends `set -euo pipefail` and the helpers from `scriptPrelude`. */
  script: string;
  as: RunAs;
  /** Seconds before the remote process group is killed (default 600). */
  timeout?: number;
  /** Keep output out of the live log (it is still returned and used in errors). */
  quiet?: boolean;
}

export interface StepResult {
  stdout: string;
  stderr: string;
  code: number;
  durationMs: number;
  /** `@ops key value` lines the script printed with `ops_report`, in order (values may repeat per key). */
  reports: [string, string][];
  /**
   * What the login's shell printed (stdout, then stderr) before the script started: ~/.bashrc or
   * /etc/bash.bashrc writing text for non-interactive sessions. Not part of stdout/stderr. '' when quiet.
   */
  preamble?: string;
  /**
   * The session stayed open after the step's command had exited: something the login shell started in the background
   * (`cmd &` in ~/.bashrc) holds its output, and ops closed it (ssh.ts LINGER_MS). scp and rsync wait for it.
   */
  lingered?: boolean;
  /** The login shell's start-up files started an ssh-agent for this session, which ops stopped (wrap.ts STEP_BOOT). */
  agentStopped?: boolean;
  /** The login shell traced its commands (set -x in its start-up files: xtrace, on stderr) before the script: its lines are not in `preamble`. */
  xtrace?: boolean;
  /** STEP_BOOT stopped the D-Bus session bus (dbus-daemon) the login's start-up files started for this session. */
  busStopped?: boolean;
  /** sshd's line saying it cannot enter the login's home directory (errors.ts homeDirProblem), before the script: not in `preamble`. */
  homeDir?: string;
  /** The dynamic loader's line saying it cannot load a library LD_PRELOAD or /etc/ld.so.preload names (errors.ts preloadProblem), before the script: not in `preamble`. */
  preload?: string;
}

export interface RunOptions {
  /** Resolve with the result instead of throwing when the script exits non-zero. */
  allowFailure?: boolean;
}

export interface UploadOptions {
  /** File mode given at creation (no window where the file is readable by others). Default 0o600. */
  mode?: number;
  /**
   * Shell run first in the upload's own script, before a byte is written (no round trip of its own): it may exit
   * (the upload then throws its StepError, nothing written). The run's lock guard (core/ops/locked.ts fences uploads).
   */
  guard?: string;
}

export interface Remote {
  /** Host name from the environment (log prefix). */
  readonly name: string;
  /** The SSH login; steps with `as: 'root'` use sudo unless this is root. */
  readonly login: string;
  /** Random id of this connection, in the environment of every step it runs as OPS_CONNECTION (commandLine). */
  readonly connection: string;
  run(step: Step, options?: RunOptions): Promise<StepResult>;
  /**
   * Write bytes to a path in a directory the login can write, over the same connection (an exec channel,
   * content on stdin, never on a command line): temporary file then rename, so the path is either the old
   * file or the whole new one. Throws a StepError named `upload <file>` (e.g. disk full).
   */
  upload(content: string | Buffer, remotePath: string, options?: UploadOptions): Promise<void>;
  /**
   * Names of the steps asked for on this connection and not ended, in the order they were asked: their script sent, or
   * their channel still opening (a lock step queued behind another run is one, whichever).
   */
  inFlight(): string[];
  /**
   * Of inFlight, the steps whose script was sent (begun on the host): a switch still opening its channel is not one
   * (halt keeps it from starting at all), so an interruption does not wait for it to end.
   */
  started(): string[];
  /** Resolves once no step runs on this connection (at once when none does; a lost connection ends its steps). */
  whenIdle(): Promise<void>;
  /**
   * Start no more steps or uploads on this connection (an interruption: what runs ends or is stopped, nothing new
   * begins); each later `run` or `upload` rejects with an OpsError naming `reason`.
   */
  halt(reason: string): void;
  /** End the connection (idempotent). Whatever runs on the host for it ends with it. */
  close(): Promise<void>;
}

/** Marker for machine-readable lines in a step's stdout; hidden from the live log. */
export const REPORT_PREFIX = '@ops ';

/**
 * What a step reports when it fails, saying why in one line (`ops_report ${FAILURE_KEYS.failure} "$verdict"`: a start's
 * health verdict): failureDetail puts it in the step's error whatever else the step printed, on either stream and
 * however much (its tail alone could leave the verdict in the live log only).
 */
export const FAILURE_KEYS = reportKeys('failure');

/**
 * Lines of a failed step's output its error quotes (failureDetail). 60, not 20: a failed start's verdict gives each
 * program's last lines under a `--- <log file>` header (8, or from a Node error's message on, 30 at most: log_tail in
 * core/steps/sh/supervisor.sh), then supervisor's status of each and the verdict; two programs took 21 lines and more,
 * and the cut hid the first program's header and message, the line that names what failed.
 */
const FAILURE_DETAIL_LINES = 60;

/**
 * What a failed step's error quotes: the end of its stderr (FAILURE_DETAIL_LINES), or of its stdout (report lines left out) when stderr is
 * empty, then each `failure` it reported (FAILURE_KEYS) that this end does not hold already, then the first line of
 * either stream that says a disk was full (DISK_FULL) when this end does not: a tool can print ENOSPC early and die of
 * its consequence later (npm unpacks a truncated esbuild, whose install script then crashes with SIGSEGV), and the
 * cleanup that follows may give the space back, so this line is what tells the run a full disk failed it (HostRun's
 * diskFull); masked as the step's log lines are, by maskedText (`redact`: the reporter's, the run's secret values;
 * then what looks like a secret, maskSecretLike: a health verdict quotes the first bytes of an error page,
 * core/steps/sh/probe.sh probe_body), on whole lines: a line's end is never cut off before it is masked.
 */
export function failureDetail(stdout: string, stderr: string, redact: (text: string) => string): string {
  const end = tail(stderr.trim() ? stderr : stdout.split('\n').filter((l) => !l.startsWith(REPORT_PREFIX)).join('\n'), FAILURE_DETAIL_LINES);
  const why = parseReports(stdout).flatMap(([k, v]) => (k === FAILURE_KEYS.failure && v.trim() && !end.includes(v) ? [v] : []));
  const full = DISK_FULL.test(end) ? undefined : `${stderr}\n${stdout}`.split('\n').find((l) => DISK_FULL.test(l))?.trim();
  return maskedText([end, ...why, ...(full ? [full] : [])].filter((t) => t.trim()).join('\n'), redact);
}

/** What a failed step said of its failure itself (each `failure` it reported, FAILURE_KEYS), masked (maskedText), one a line; undefined if nothing. */
export function failureVerdict(stdout: string, redact: (text: string) => string): string | undefined {
  const why = parseReports(stdout).flatMap(([k, v]) => (k === FAILURE_KEYS.failure && v.trim() ? [v.trim()] : []));
  return why.length ? maskedText(why.join('\n'), redact) : undefined;
}

/** Parse `@ops key value` lines. */
export function parseReports(stdout: string): [string, string][] {
  const out: [string, string][] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith(REPORT_PREFIX)) continue;
    const rest = line.slice(REPORT_PREFIX.length);
    const sp = rest.indexOf(' ');
    out.push(sp < 0 ? [rest, ''] : [rest.slice(0, sp), rest.slice(sp + 1)]);
  }
  return out;
}

declare const reportKeyBrand: unique symbol;

/**
 * The key of an `@ops key value` line, declared once by the step module that emits it (`reportKeys`). A bare
 * string is not one, so reading a misspelt or undeclared key (`reported(r, 'curent')`) does not compile.
 */
export type ReportKey<K extends string = string> = K & { readonly [reportKeyBrand]: true };

/** The report keys of one capability, as `reportKeys` builds them: name → the same name, typed. */
export type ReportKeys<K extends string> = { readonly [P in K]: ReportKey<P> };

/**
 * Declare the keys a step reports: `reportKeys('current', 'slot')` → `{ current: 'current', slot: 'slot' }`,
 * frozen. The step's script interpolates them (`ops_report ${STATE.current} "$cur"`), its parser reads them
 * (`reported(r, STATE.current)`), and unit fakes build their lines from them (`reportLine`). Keys are
 * `[a-z_]+` (a key ends at the line's first space); anything else throws when the module loads.
 */
export function reportKeys<K extends string>(...keys: K[]): ReportKeys<K> {
  const record: Record<string, string> = {};
  for (const key of keys) {
    if (!/^[a-z_]+$/.test(key)) throw new Error(`report key ${JSON.stringify(key)}: use lower-case letters and _`);
    record[key] = key;
  }
  return Object.freeze(record) as ReportKeys<K>;
}

/** One `@ops key value` line (no newline), as `ops_report key value` prints it (core/remote/wrap.ts). */
export function reportLine(key: ReportKey, value: string): string {
  return `${REPORT_PREFIX}${key} ${value}`;
}

/** The last value reported for `key`, if any. */
export function reported(result: StepResult, key: ReportKey): string | undefined {
  let v: string | undefined;
  for (const [k, val] of result.reports) if (k === key) v = val;
  return v;
}

/** Every value reported for `key`, in order ([] when none). */
export function reportedAll(result: StepResult, key: ReportKey): string[] {
  return result.reports.filter(([k]) => k === key).map(([, v]) => v);
}

export const DEFAULT_STEP_TIMEOUT = 600;
