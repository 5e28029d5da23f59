// The real transport: one SSH connection per host per run (node-ssh over ssh2), shared by every step and
// every upload, each on its own exec channel. Operations may run steps at once (several channels); where sshd's
// MaxSessions leaves no room, a channel waits for one in flight to close, so `MaxSessions 1` still works (the
// steps then run one after another).
// No SFTP (sshd runs its subsystem through the login shell, whose startup files may print text into the
// binary stream) and no long-lived channel: a lock's holder is the connection's own sshd process
// (core/steps/lock.ts). Logging in (pinned host keys, retries, bastions): ssh-login.ts.
import type { ClientChannel } from 'ssh2';
import type { NodeSSH } from 'node-ssh';
import { randomBytes } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import { SUDO_NOEXEC, removedModuleHint, sourceBuildHint, sudoNoexec, agentFix, agentProblem, busFix, busProblem, xtraceFix, xtraceProblem, connectionLost, loginStartup, NotStartedError, OpsError, StepError, TransportError, lingerFix, lingerProblem, maskedText, oneLine, homeDirProblem, installScriptHint, preloadProblem, readOnlySetHint, sudoHint, sudoWarningFix, tail, translateError } from '../errors.ts';
import type { Reporter } from '../report.ts';
import type { Host } from '../config/environment.ts';
import { type Bastion, type LoginOptions, describeEndpoint, login } from './ssh-login.ts';
import { AGENT_STOPPED, BUS_STOPPED, COMMAND_START, EXEC_RETURNED, LOGIN_SHELL_PREFIX, REFUSED_PREFIX, START_MARKER, HOST_COMMANDS, sshCommand, stepInput, uploadStep } from './wrap.ts';
import { DEFAULT_STEP_TIMEOUT, REPORT_PREFIX, failureDetail, failureVerdict, parseReports, type Remote, type RunOptions, type Step, type StepResult, type UploadOptions } from './types.ts';

/** A host to connect to, how to log in, and what to run the app's steps as. */
export interface ConnectOptions extends LoginOptions {
  host: Host;
  appUser: string;
  /** Reach the host through this bastion's connection (a forwarded TCP stream) instead of directly. */
  via?: Bastion;
  /** Called once when this connection ends (closed by us or lost). */
  onClose?: () => void;
}

/** A command's end as ssh2 reports it: its exit code, or the signal that ended it; neither when none came. */
interface ExitStatus {
  code: number | null;
  signal?: string;
  /** The channel did not close within LINGER_MS of the exit status: ops closed it. */
  lingered?: boolean;
}

/**
 * How long a channel may stay open after its command's exit status came: sshd sends that status when the command
 * exits, then closes the channel once every process holding its output has let go. A background process the login
 * shell's start-up files started (`watcher &` in ~/.bashrc) holds it as long as it runs: the step is over all the
 * same (its output is in: the status follows what it printed).
 */
const LINGER_MS = 2000;
/** The longest a channel is waited for after its exit status, however much a background process still writes to it. */
const LINGER_MAX_MS = 5000;
/**
 * The longest a step's script may take to begin (its input sent, its start line back) before ops says so: a login whose
 * start-up file runs something slow (nvm or conda set up, a network call) for non-interactive sessions makes every step
 * of a deploy wait that long.
 */
const SLOW_START_MS = 1500;
/**
 * How long a step's script may take to begin before ops says so while it waits (once per connection): a start-up file
 * that waits on a network call (an nvm, pyenv or conda set-up checking for updates, a host that does not answer) holds
 * every step that long, up to its time limit, with nothing else on screen.
 */
const WAITING_START_MS = 10_000;

/** An exec channel just opened, and its end (listened for from the start). */
interface OpenChannel {
  channel: ClientChannel;
  ended: Promise<ExitStatus>;
  /** To be called on each chunk of output: after the exit status, it defers the end that LINGER_MS gives. */
  output: () => void;
}

/** Connect to a host (directly, or through `options.via`), with the pinned key and the given credentials. */
export async function connect(options: ConnectOptions): Promise<Remote> {
  const { host, via } = options;
  const where = via ? `${describeEndpoint(host)} through bastion ${via.endpoint.address}` : describeEndpoint(host);
  const ssh = await login(host, { where, keyField: 'hosts[].host_key', sock: via ? () => via.forward(host) : undefined }, options);
  return new SshRemote(ssh, host, options.appUser, options.reporter, options.onClose);
}

/**
 * Splits a stream into what the login shell printed before the script's start marker (kept as `preamble`)
 * and the script's own output (passed on as text). A stream that never shows the marker is all output: the
 * script did not start (sudo refused, the shell failed), and what was printed is the error.
 */
class AfterMarker {
  private static readonly MARK = `\n${START_MARKER}\n`;
  private head = '';
  private readonly decoder = new StringDecoder('utf8');
  started = false;
  /** When the marker came (performance.now(): the monotonic clock): how long the login took to begin the script. */
  startedAt?: number;
  preamble = '';
  constructor(private readonly emit: (text: string) => void) {}
  push(chunk: Buffer): void {
    this.feed(this.decoder.write(chunk));
  }
  end(): void {
    this.feed(this.decoder.end());
    if (!this.started && this.head) this.emit(this.head);
    this.head = '';
  }
  private feed(text: string): void {
    if (!text) return;
    if (this.started) return this.emit(text);
    this.head += text;
    const i = this.head.indexOf(AfterMarker.MARK);
    if (i < 0) return;
    this.started = true;
    this.startedAt = performance.now();
    this.preamble = this.head.slice(0, i);
    const rest = this.head.slice(i + AfterMarker.MARK.length);
    this.head = '';
    if (rest) this.emit(rest);
  }
}

/** Splits text into lines for the live log, keeping the unfinished end for the next chunk. */
class LineSplitter {
  private rest = '';
  constructor(private readonly emit: (line: string) => void) {}
  push(text: string): void {
    const lines = (this.rest + text).split('\n');
    this.rest = lines.pop() ?? '';
    for (const l of lines) this.emit(l);
  }
  flush(): void {
    if (this.rest) this.emit(this.rest);
    this.rest = '';
  }
}

/**
 * The login shell's trace of its commands among the lines it printed before the script (`set -x` in ~/.bashrc: xtrace,
 * on stderr): found by its trace of ops's own command (COMMAND_START), after PS4's prefix (`+ `); every line that
 * begins as that prefix does (`+`, `++` in a command substitution) is the trace's. `text`: the other lines.
 */
export function xtraceOf(lines: string[]): { traced: boolean; text: string[] } {
  const own = lines.find((l) => l.includes(COMMAND_START));
  if (own === undefined) return { traced: false, text: lines };
  const mark = own.slice(0, own.indexOf(COMMAND_START)).trimStart()[0];
  // PS4's prefix is a sign (`+`), none for set -v; words (an exec function echoing its arguments) are no trace.
  if (mark !== undefined && /[\p{L}\p{N}]/u.test(mark)) return { traced: false, text: lines };
  return { traced: true, text: lines.filter((l) => l !== own && (mark === undefined || !l.trimStart().startsWith(mark))) };
}

/** sshd answered a channel open with "open failed" (MaxSessions reached, or a session still closing). */
function sessionRefused(e: unknown): boolean {
  const err = e as { message?: string; reason?: unknown };
  return /Channel open failure/.test(err?.message ?? '') && (err.reason === 1 || err.reason === 4 || /open failed|prohibited|shortage/i.test(err.message ?? ''));
}

/**
 * A Remote over one logged-in node-ssh connection (what `connect` returns). Exported for tests that drive it over
 * a connection they control; everything else goes through `connect`.
 */
export class SshRemote implements Remote {
  readonly name: string;
  readonly login: string;
  readonly connection = randomBytes(6).toString('hex');
  private lost?: Error;
  private closed = false;
  private warnedPreamble = false;
  private warnedSudo = false;
  private warnedHome = false;
  private warnedPreload = false;
  private warnedStderr = false;
  private warnedLinger = false;
  private warnedAgent = false;
  private warnedBus = false;
  private warnedXtrace = false;
  private warnedSlow = false;
  private warnedWaiting = false;
  /** The login's shell, as STEP_BOOT last said it ($SHELL): what the start-up files are named by. Bash until known. */
  private loginShell?: string;
  /** Reject the steps in flight when the connection goes away under them. */
  private readonly aborts = new Set<(e: Error) => void>();
  /** Channels open now, and who waits for one of them to close (a channel sshd refused for lack of sessions). */
  private open = 0;
  private waiting: (() => void)[] = [];
  /** Steps of ours asked for and not ended (their channel opening or open), by name: while there are several, each live line says which step it comes from. */
  private readonly running: string[] = [];
  /** Of those, the ones whose script was sent (begun on the host): what started names. */
  private readonly begun: string[] = [];
  /** Who waits for no step to run (whenIdle). */
  private idleWaiters: (() => void)[] = [];
  /** Why no new step may start (halt). */
  private haltedBy?: string;
  constructor(
    private readonly ssh: NodeSSH,
    host: Host,
    private readonly appUser: string,
    private readonly reporter: Reporter,
    private onClose?: () => void,
  ) {
    this.name = host.name;
    this.login = host.user;
    const conn = ssh.connection!;
    // ssh2 emits socket errors on the client at any time (between two steps too): never unhandled.
    conn.on('error', (e: Error) => this.gone(e));
    conn.on('close', () => this.gone(new Error('Not connected')));
  }

  inFlight(): string[] {
    return [...this.running];
  }

  started(): string[] {
    return [...this.begun];
  }

  whenIdle(): Promise<void> {
    return this.running.length ? new Promise((r) => this.idleWaiters.push(r)) : Promise.resolve();
  }

  halt(reason: string): void {
    this.haltedBy ??= reason;
  }

  private gone(e: Error): void {
    this.lost ??= e;
    for (const abort of this.aborts) abort(e);
    this.freed();
    const done = this.onClose;
    this.onClose = undefined;
    done?.();
  }

  /** A channel of ours closed (or the connection ended): whoever waits for a session tries again. */
  private freed(): void {
    for (const wake of this.waiting.splice(0)) wake();
  }

  /**
   * Open an exec channel. One refused for lack of sessions while others of ours are open waits until one of them
   * closes (however long its step takes); refused with none open, it is retried briefly: sshd frees a closed
   * session asynchronously. The caller must call `freed` once the channel closes.
   * `ended` resolves on the channel's close with the exit status: its listeners are attached in ssh2's callback
   * itself, because ssh2 handles every packet of one read at once: a command that fails at once (sudo asking for a
   * password) can have its exit-status and close handled before an `await` returns the channel, and ssh2 emits
   * `exit` once, to whoever listens then (output is kept: the channel is a paused stream until read).
   */
  private async channel(command: string, what: string): Promise<OpenChannel> {
    for (let attempt = 0; ; attempt++) {
      const conn = this.ssh.connection;
      if (this.closed) throw new TransportError(`${what} on ${this.name}: the connection was closed`);
      if (this.lost || !conn) throw translateError(this.lost ?? new Error('Not connected'), this.name, `${what} on ${this.name}`);
      try {
        const channel = await new Promise<OpenChannel>((resolve, reject) =>
          conn.exec(command, (e, c) => {
            if (e) return reject(e);
            const status: ExitStatus = { code: null };
            let exited = (): void => undefined;
            const ended = new Promise<ExitStatus>((closed) => {
              let linger: NodeJS.Timeout | undefined;
              let exitedAt: number | undefined;
              // After the exit status, each chunk of output waits LINGER_MS more for the close (what sshd still had),
              // up to LINGER_MAX_MS in all: a background process writing on and on never holds the step open.
              const wait = () => {
                if (exitedAt === undefined) return;
                clearTimeout(linger);
                linger = setTimeout(
                  () => {
                    status.lingered = true;
                    closed(status);
                    c.close();
                  },
                  Math.max(0, Math.min(LINGER_MS, exitedAt + LINGER_MAX_MS - performance.now())),
                );
              };
              exited = wait;
              c.on('close', () => {
                clearTimeout(linger);
                closed(status);
              });
              c.on('exit', (code: number | null, sig?: string) => {
                if (typeof code === 'number') status.code = code;
                else if (sig) status.signal = `SIG${sig}`.replace(/^SIGSIG/, 'SIG');
                exitedAt = performance.now();
                wait();
              });
            });
            c.on('error', () => undefined); // writes after the remote end closed: the exit status tells
            resolve({ channel: c, ended, output: () => exited() });
          }),
        );
        this.open++;
        return channel;
      } catch (e) {
        if (sessionRefused(e) && this.open > 0) {
          await new Promise<void>((wake) => this.waiting.push(wake));
          attempt = -1; // a fresh round of retries once one of ours closed
          continue;
        }
        if (sessionRefused(e) && attempt < 8) {
          await sleep(25 * 2 ** attempt); // 25 ms … 3.2 s: about 6 s in all
          continue;
        }
        if (sessionRefused(e))
          throw new TransportError(
            `sshd on ${this.name} refused to open a session for ${what}: its session limit is reached`,
            `ops needs 1 session per connection (it opens more, to run steps at once, where sshd allows); MaxSessions in ${this.name}'s /etc/ssh/sshd_config (or a Match block) must be at least 1: set it, then reload sshd (systemctl reload ssh)`,
          );
        // ssh2 fails an exec whose channel closed before sshd answered ("Unable to exec"); when that is the
        // connection going down, its close follows within moments: say the connection was lost, as for a step
        // that was running.
        const lost = this.lost ?? (await this.lostWithin(1000));
        if (lost) throw connectionLost(lost, this.name, `${what} on ${this.name} (connection lost)`);
        throw translateError(e, this.name, `${what} on ${this.name}`);
      }
    }
  }

  /** The error the connection ended with, if it ends within `ms` milliseconds; else undefined. */
  private lostWithin(ms: number): Promise<Error | undefined> {
    return new Promise((resolve) => {
      const done = (e?: Error) => {
        clearTimeout(timer);
        this.aborts.delete(done);
        resolve(e);
      };
      const timer = setTimeout(() => done(), ms);
      this.aborts.add(done);
    });
  }

  /** Run `command` with `input` on stdin; output before the start marker is the login shell's, not ours. */
  private async exec(step: Step, command: string, input: Buffer, options: RunOptions): Promise<StepResult> {
    const started = performance.now();
    const what = `step "${step.name}"`;
    if (this.haltedBy) throw new OpsError(`${what} on ${this.name} not started: ${this.haltedBy}`);
    // A quiet step shows nothing live: no splitting into lines (its output may be one long line of data).
    const show = (stream: 'stdout' | 'stderr') =>
      step.quiet
        ? { push: () => undefined, flush: () => undefined }
        : new LineSplitter((line) => {
            if (!line.startsWith(REPORT_PREFIX) && !line.startsWith(REFUSED_PREFIX)) this.reporter.line(this.name, this.running.length > 1 ? `[${step.name}] ${line}` : line, stream);
          });
    const outLines = show('stdout');
    const errLines = show('stderr');
    let stdout = '';
    let stderr = '';
    const out = new AfterMarker((t) => {
      stdout += t;
      outLines.push(t);
    });
    const err = new AfterMarker((t) => {
      stderr += t;
      errLines.push(t);
    });
    // Asked for from this moment (opening a channel is a round trip): a run halted meanwhile does not start it once
    // the channel opens; started (started) once its script is sent.
    this.running.push(step.name);
    let begun = false;
    const done = () => {
      this.running.splice(this.running.indexOf(step.name), 1);
      if (begun) this.begun.splice(this.begun.indexOf(step.name), 1);
      if (!this.running.length) for (const idle of this.idleWaiters.splice(0)) idle();
    };
    let opened: OpenChannel;
    try {
      opened = await this.channel(command, what);
    } catch (e) {
      done();
      throw e;
    }
    const { channel, ended, output } = opened;
    if (this.haltedBy) {
      channel.close();
      this.open--;
      done();
      this.freed();
      throw new OpsError(`${what} on ${this.name} not started: ${this.haltedBy}`);
    }
    // Guard against a channel that never closes (the remote `timeout` should always end it first).
    const limit = ((step.timeout ?? DEFAULT_STEP_TIMEOUT) + 30) * 1000;
    let guard: NodeJS.Timeout | undefined;
    let waiting: NodeJS.Timeout | undefined;
    let sent = performance.now();
    let abort = (_: Error): void => undefined;
    const status = await new Promise<ExitStatus>((resolve, reject) => {
      abort = (e) => reject(connectionLost(e, this.name, `${what} on ${this.name} (connection lost)`));
      this.aborts.add(abort);
      waiting = setTimeout(() => {
        if (out.started || err.started || this.warnedWaiting) return;
        this.warnedWaiting = true;
        const { files, place } = this.startupFiles();
        this.reporter.warn(`${this.name}: ${what} has not begun ${WAITING_START_MS / 1000} s after ops sent it: a start-up file of the login shell of ${this.login}, ${files}, or sshd's ~/.ssh/rc waits for something for non-interactive sessions (a network call, a sleep, a prompt); ops waits up to the step's time limit (${limit / 1000} s): move what waits ${place}`);
      }, WAITING_START_MS);
      guard = setTimeout(() => {
        channel.close();
        // Not even the start line: the login shell never began the script (it did nothing), it waited before it.
        reject(out.started || err.started ? new StepError(step.name, this.name, null, 'no answer from the host before the step timeout', 'timeout') : this.neverBegan(what, limit / 1000));
      }, limit);
      channel.on('data', (d: Buffer) => {
        output();
        out.push(d);
      });
      channel.stderr.on('data', (d: Buffer) => {
        output();
        err.push(d);
      });
      void ended.then(resolve);
      sent = performance.now();
      // begun from here (the host runs the script it reads on stdin): a signal now lets a switch end, say, where one
      // whose channel was still opening is not started at all (halt) and is no step to wait for
      this.begun.push(step.name);
      begun = true;
      channel.end(input);
    }).finally(() => {
      clearTimeout(guard);
      clearTimeout(waiting);
      this.aborts.delete(abort);
      this.open--;
      done();
      this.freed();
    });
    out.end();
    err.end();
    outLines.flush();
    errLines.flush();
    const preamble = [out.preamble, err.preamble].map((p) => p.trim()).filter(Boolean).join('\n');
    // A restricted shell (rbash) refuses the exec, says so, and goes on to sshCommand's refusal: its own error.
    if (out.started && stdout.startsWith(EXEC_RETURNED) && /\bexec: restricted\b/.test(`${preamble}\n${stderr}`)) throw this.notStarted(what, status.code ?? 255, `${preamble}\n${stderr}`.trim());
    // sudo's own warnings (it ran the command) come before the marker too: they are not the login shell's; nor is
    // AGENT_STOPPED (ops's own word: it stopped the ssh-agent the start-up files started).
    // (and with no start line on stderr, where sudo refused the step, it is in stderr: taken out of its words)
    // (and LOGIN_SHELL_PREFIX's line: ops's own too)
    const ours = (l: string) => l === AGENT_STOPPED || l === BUS_STOPPED || l.startsWith(LOGIN_SHELL_PREFIX);
    const bootLines = [...preamble.split('\n'), ...(err.started ? [] : stderr.split('\n'))];
    const agentStopped = bootLines.includes(AGENT_STOPPED);
    const busStopped = bootLines.includes(BUS_STOPPED);
    const shellLine = bootLines.find((l) => l.startsWith(LOGIN_SHELL_PREFIX));
    if (shellLine) this.loginShell = shellLine.slice(LOGIN_SHELL_PREFIX.length).trim() || undefined;
    if (!err.started) stderr = stderr.split('\n').filter((l) => !ours(l)).join('\n');
    const lines = preamble.split('\n').filter((l) => l && !ours(l));
    const sudoLines = lines.filter((l) => sudoWarningFix(l, this.name));
    // sshd's own line (it cannot enter the login's home): its own problem, not the start-up files'.
    const homeLine = lines.find((l) => homeDirProblem(l, this.login, this.name));
    // The dynamic loader's (LD_PRELOAD naming a library it cannot load): printed by each program before the script.
    const preloadLines = lines.filter((l) => preloadProblem(l, this.login, this.name));
    const { traced, text } = xtraceOf(lines.filter((l) => !sudoWarningFix(l, this.name) && l !== homeLine && !preloadLines.includes(l)));
    const shellText = text.join('\n');
    const quoted = (text: string) => oneLine(text, 80, (t) => this.reporter.redact(t));
    const { files, place } = this.startupFiles();
    if (sudoLines.length && !this.warnedSudo) {
      this.warnedSudo = true;
      this.reporter.warn(`${this.name}: sudo warns: "${quoted(sudoLines.join('\n'))}"; fix: ${sudoWarningFix(sudoLines[0]!, this.name)}`);
    }
    const home = homeLine && homeDirProblem(homeLine, this.login, this.name);
    if (home && !this.warnedHome) {
      this.warnedHome = true;
      this.reporter.warn(`${this.name}: ${home.problem}; fix: ${home.fix}`);
    }
    const preload = preloadLines[0] && preloadProblem(preloadLines[0], this.login, this.name);
    if (preload && !this.warnedPreload) {
      this.warnedPreload = true;
      this.reporter.warn(`${this.name}: ${preload.problem}; fix: ${preload.fix}`);
    }
    if (traced && !this.warnedXtrace) {
      this.warnedXtrace = true;
      this.reporter.warn(`${this.name}: ${xtraceProblem(this.login)}; fix: ${xtraceFix(this.login, this.loginShell)}`);
    }
    if (shellText && !this.warnedPreamble) {
      this.warnedPreamble = true;
      this.reporter.warn(`${this.name}: the login shell of ${this.login} prints text for non-interactive sessions ("${quoted(shellText)}"); ops ignores it, but scp, rsync and sftp break: move it ${place} (or out of sshd's ~/.ssh/rc, if it prints it: ops ping says)`);
    }
    const began = Math.min(out.startedAt ?? Infinity, err.startedAt ?? Infinity) - sent;
    if (began > SLOW_START_MS && Number.isFinite(began) && !this.warnedSlow) {
      this.warnedSlow = true;
      this.reporter.warn(`${this.name}: ${what} began ${(began / 1000).toFixed(1)} s after ops sent it: a start-up file of the login shell of ${this.login}, ${files}, or sshd's ~/.ssh/rc runs something slow for non-interactive sessions (or sudo is slow), and every step waits as long; move it ${place}`);
    }
    if (agentStopped && !this.warnedAgent) {
      this.warnedAgent = true;
      this.reporter.warn(`${this.name}: ${agentProblem(this.login)}; fix: ${agentFix(this.login, this.loginShell)}`);
    }
    if (busStopped && !this.warnedBus) {
      this.warnedBus = true;
      this.reporter.warn(`${this.name}: ${busProblem(this.login)}; fix: ${busFix(this.login, this.loginShell)}`);
    }
    if (status.lingered && !this.warnedLinger) {
      this.warnedLinger = true;
      this.reporter.warn(`${this.name}: ${lingerProblem(this.login)}; ops closed it: ${lingerFix(this.login, this.loginShell)}`);
    }
    // The login shell's exec returned after ops's command ran inside the function that stood in for it: done, its exit
    // code lost (the function's, then sshCommand's 125).
    if (out.started && !stdout.startsWith(REFUSED_PREFIX) && stdout.endsWith(`\n${START_MARKER}\n${EXEC_RETURNED}\n`)) {
      const { files, place } = this.startupFiles();
      throw new OpsError(
        `${what} on ${this.name} ran, but its exit code is lost: ${files} on ${this.name} defines a function (or alias) named exec, which the login shell ran in place of its exec builtin, and which ran ops's command and returned`,
        `remove that exec function, rename it, or define it ${place}; then check what the step did and run it again`,
      );
    }
    if (out.started && stdout.startsWith(REFUSED_PREFIX)) throw this.refused(what, stdout.slice(REFUSED_PREFIX.length).split('\n')[0]!);
    if (!out.started && err.started && stderr.startsWith(REFUSED_PREFIX)) throw this.refused(what, stderr.slice(REFUSED_PREFIX.length).split('\n')[0]!);
    // Its start line came on stderr, never on stdout: the script ran, its stdout went elsewhere (a pipe the guard cannot
    // tell from the channel's, e.g. exec > >(logger)): what it reported is lost, so it cannot be taken as done.
    if (!out.started && err.started && status.code !== null)
      throw new OpsError(
        `${what} on ${this.name} ran (exit code ${status.code}), but its standard output never reached ops: a start-up file of the login shell of ${this.login}, ${files}, sends the standard output of non-interactive sessions elsewhere, so what the step reported is lost`,
        `move any redirection of the standard output (exec >…) ${place}, then run it again`,
      );
    // The script ran, but its start line on stderr never came: its stderr goes elsewhere (a redirection stepGuard cannot
    // see, e.g. behind sudo's own pipes). Its errors would be lost: said once.
    if (out.started && !err.started && status.code !== null && !this.warnedStderr) {
      this.warnedStderr = true;
      this.reporter.warn(`${this.name}: the standard error of ${what} did not reach ops (its start line never came): a start-up file of the login shell of ${this.login}, ${files}, or sudo sends it elsewhere, so a failing step's errors are not seen; move any redirection of the standard error (exec 2>…) ${place}`);
    }
    // ssh2 reports no exit status when the channel closed without one: a failure, never a success.
    const code = status.code ?? (status.signal ? 128 : 255);
    // No start line, an exit status: the login shell (or a start-up file) ended before the script began; unless sudo
    // refused to run it (its own `sudo: …` error, other than a warning: the StepError below, with sudoHint).
    const sudoRefused = code !== 0 && stderr.split('\n').some((l) => /^sudo: /.test(l) && !/^sudo: unable to resolve host/.test(l));
    if (!out.started && status.code !== null && (!sudoRefused || missingCommand(code, stderr))) throw this.notStarted(what, code, failureDetail(stdout, stderr, (t) => this.reporter.redact(t)));
    const result: StepResult = { stdout, stderr, code, durationMs: Math.round(performance.now() - started), reports: parseReports(stdout), preamble: shellText, ...(status.lingered && { lingered: true }), ...(agentStopped && { agentStopped: true }), ...(busStopped && { busStopped: true }), ...(traced && { xtrace: true }), ...(homeLine && { homeDir: homeLine }), ...(preloadLines[0] && { preload: preloadLines[0] }) };
    if (code !== 0 && !options.allowFailure) {
      const detail = failureDetail(stdout, stderr, (t) => this.reporter.redact(t));
      throw new StepError(step.name, this.name, code, detail, status.signal, sudoHint(stderr, this.login, this.name) ?? readOnlySetHint(step.name, detail) ?? installScriptHint(step.name, maskedText(`${stderr}\n${stdout}`, (t) => this.reporter.redact(t))) ?? sourceBuildHint(step.name, maskedText(`${stderr}\n${stdout}`, (t) => this.reporter.redact(t))) ?? removedModuleHint(failureDetail(stdout, stderr, (t) => this.reporter.redact(t))), step.timeout ?? DEFAULT_STEP_TIMEOUT, failureVerdict(stdout, (t) => this.reporter.redact(t)));
    }
    return result;
  }

  /** The error for a step whose script had not begun when its time was up (`seconds`): the login waited before it. */
  private neverBegan(what: string, seconds: number): NotStartedError {
    const { files, place } = this.startupFiles();
    return new NotStartedError(
      `${what} on ${this.name} did not start: in ${seconds} s the login shell of ${this.login} had not begun the step's script (nothing came back): a start-up file, ${files}, or sshd's ~/.ssh/rc waits for something for non-interactive sessions (a sleep, a network call, a prompt)`,
      `move what waits ${place}`,
    );
  }

  /**
   * The start-up files the login's shell reads for sshd's command, and where lines for interactive shells only go
   * (loginStartup): by the shell STEP_BOOT said on this connection; bash's before any did, or for a shell that reads none.
   */
  private startupFiles(): { files: string; place: string } {
    return loginStartup(this.login, this.loginShell) ?? loginStartup(this.login, 'bash')!;
  }

  /** The error for a step the guard refused because its stdout and stderr are one pipe (`merged`): it did nothing. */
  private mergedOutput(what: string, stopped: string): NotStartedError {
    const { files, place } = this.startupFiles();
    return new NotStartedError(
      `${what} on ${this.name} did not run: ${files} on ${this.name} sends the standard output and standard error of non-interactive sessions to one place (e.g. exec >&2, exec 2>&1, exec > >(logger) 2>&1), so what a step reports would be lost or mixed with its errors; ${stopped}`,
      `move that redirection ${place}`,
    );
  }

  /** The error for a step the guard refused (stepGuard: `why` and its detail, REFUSED_PREFIX's line): it did nothing. */
  private refused(what: string, line: string): NotStartedError {
    const [why, ...rest] = line.split(' ');
    const detail = rest.join(' ');
    const { files, place } = this.startupFiles();
    const stopped = 'ops stopped it before it did anything';
    if (why === 'stdin')
      return new NotStartedError(
        `${what} on ${this.name} did not run: ${files} on ${this.name} reads standard input for non-interactive sessions (a read), which took the first line of the step's script; ${stopped}`,
        `move that read ${place}, or make it read from /dev/tty`,
      );
    if (why === 'input')
      return new NotStartedError(
        `${what} on ${this.name} did not run: ${files} on ${this.name} takes standard input away from non-interactive sessions (${detail === 'closed' ? 'closes it, e.g. exec <&-' : `to ${detail || 'unknown'}, e.g. exec </dev/null`}), and ops sends each step's script on it: the script would be read as empty; ${stopped}`,
        `move that redirection ${place}; to keep one command of it from reading the session's input, redirect that command alone (command </dev/null)`,
      );
    if (why === 'stdout')
      return new NotStartedError(
        `${what} on ${this.name} did not run: ${files} on ${this.name} ${detail === 'closed' ? 'closes the standard output of non-interactive sessions (e.g. exec >&-)' : `sends the standard output of non-interactive sessions elsewhere (to ${detail || 'unknown'}, e.g. exec >>file)`}, so what a step reports would not be seen; ${stopped}`,
        `move that redirection ${place}`,
      );
    // The session's sshd process had that limit already (stepGuard): not the start-up files' doing.
    const session = why === 'limit' ? /^(.*) session$/.exec(detail)?.[1] : undefined;
    if (session)
      return new NotStartedError(
        `${what} on ${this.name} did not run: ${this.login}'s sessions on ${this.name} begin with a resource limit (${session}), set before the login shell runs (by pam_limits, from /etc/security/limits.conf or /etc/security/limits.d/, or by sshd's service), under which an install, a build or an upload fails half-way; ${stopped}`,
        `on ${this.name}, as root: find the line that sets it (grep -rs -e nofile -e nproc -e stack -e fsize -e cpu -e as -e data /etc/security/limits.conf /etc/security/limits.d/; systemctl show ssh -p LimitNOFILE,LimitNPROC,LimitSTACK) and remove it or raise it for ${this.login}, e.g. "${this.login} - ${/^ulimit -u /.test(session) ? 'nproc 4096' : 'nofile 65536'}" in /etc/security/limits.d/${this.login}.conf (a \`*\` line limits ${this.appUser} too, through sudo's session: raise it for both); a new session takes it`,
      );
    // Set by sudo's own session for the user the step runs as (stepGuard): the login has no such limit.
    const bySudo = why === 'limit' ? /^(.*) sudo (\S+)$/.exec(detail) : null;
    if (bySudo) {
      const [, limit, user] = bySudo as unknown as [string, string, string];
      return new NotStartedError(
        `${what} on ${this.name} did not run: ${user}'s processes on ${this.name} get a resource limit (${limit}) that ${this.login}'s session does not have, set when ops switches to ${user} with sudo (pam_limits in sudo's session, from a line of /etc/security/limits.conf or /etc/security/limits.d/ for ${user}, its group, or \`*\`), not by a start-up file, under which an install, a build or an upload fails half-way; ${stopped}`,
        `on ${this.name}, as root: find the line that sets it (grep -rs -e nofile -e nproc -e stack -e fsize -e cpu -e as -e data /etc/security/limits.conf /etc/security/limits.d/) and remove it or raise it for ${user}, e.g. "${user} - ${/^ulimit -u /.test(limit) ? 'nproc 4096' : 'nofile 65536'}" in /etc/security/limits.d/${user}.conf (a line naming the user outranks a \`*\` one); the next step takes it`,
      );
    }
    if (why === 'limit')
      return new NotStartedError(
        `${what} on ${this.name} did not run: ${files} on ${this.name} sets a resource limit for non-interactive sessions (${detail}), under which an install, a build or an upload fails half-way; ${stopped}`,
        `remove that ulimit, or move it ${place}; a limit for every login is a line in /etc/security/limits.conf`,
      );
    if (why === 'merged') return this.mergedOutput(what, stopped);
    if (why === 'exec')
      return new NotStartedError(
        `${what} on ${this.name} did not run: ${files} on ${this.name} defines a function (or alias) named exec, which the login shell ran in place of its exec builtin, and which returned without running the command ops sent; ${stopped}`,
        `remove that exec function, rename it, or define it ${place}`,
      );
    if (why === 'stderr')
      return new NotStartedError(
        `${what} on ${this.name} did not run: ${files} on ${this.name} ${detail === 'closed' ? 'closes the standard error of non-interactive sessions (e.g. exec 2>&-)' : `sends the standard error of non-interactive sessions elsewhere (to ${detail || 'unknown'}, e.g. exec 2>>file)`}, so a failing step's errors would not be seen; ${stopped}`,
        `move that redirection ${place}`,
      );
    return new NotStartedError(
      `${what} on ${this.name} did not run: ${files} on ${this.name} starts another shell (${detail || 'unknown'}, an exec) for non-interactive sessions, and that shell read the step's script in place of the command ops sent (sudo, its time limit); ${stopped}`,
      `move the exec ${place}; to use another login shell, set it with chsh -s`,
    );
  }

  /** The error for a step whose login shell ended (exit `code`, after printing `output`) before its script began. */
  private notStarted(what: string, code: number, output: string): NotStartedError {
    const printed = output.trim() ? `, printing: ${JSON.stringify(tail(maskedText(output.trim(), (t) => this.reporter.redact(t)), 3))}` : '';
    const nologin = /This account is currently not available/.test(output) ? ' (its login shell is nologin)' : '';
    // A restricted shell (rbash) refuses the exec that runs each step (sshCommand).
    if (/\bexec: restricted\b/.test(output))
      return new NotStartedError(
        `${what} on ${this.name} did not start: the login shell of ${this.login} is a restricted shell (rbash), which refuses to exec the command ops sends${printed}`,
        `give ${this.login} a plain shell: on ${this.name}, as root: chsh -s /bin/bash ${this.login} (ops runs each step through sudo: a restricted shell restricts nothing then)`,
      );
    // STEP_BOOT's refusal of an input that is a terminal, in a terminal's line ends (\r\n): the command ran under a pty
    // (script(1) or a session recorder in a ForceCommand or a start-up file), which echoes the script back and makes
    // stdout and stderr one stream. Nothing else gives the command a terminal: ops asks sshd for none.
    const tty = new RegExp(`\r\n${START_MARKER}\r\n${REFUSED_PREFIX}input (\\S+)`).exec(output)?.[1];
    if (tty) {
      const { place } = this.startupFiles();
      return new NotStartedError(
        `${what} on ${this.name} did not run: ${this.login}'s commands run under a terminal there (${tty}: script(1) or a session recorder in sshd's ForceCommand or a start-up file), which would echo each step's script back and mix its errors into its output; ops stopped it before it did anything`,
        `on ${this.name}, as root: sshd -T -C user=${this.login} | grep -i forcecommand shows the ForceCommand: have it run "$SSH_ORIGINAL_COMMAND" without a terminal when that is set (ops sends one per step), or take ${this.login} out of its Match block; a start-up file that records sessions: move it ${place}`,
      );
    }
    // A cloud image's root key (cloud-init's disable_root: a command="…" before it in ~root/.ssh/authorized_keys) lets
    // the login in only to say whom to log in as, then exits 142: nothing of the login shell is at fault.
    const loginAs = /Please login as the user "([a-z_][a-z0-9_-]{0,31})" rather than the user "/.exec(output);
    if (loginAs)
      return new NotStartedError(
        `${what} on ${this.name} did not start: ${this.name} lets ops's key in as ${this.login} only to say to log in as ${loginAs[1]}, then exit ${code} (a command="…" before the key in ~${this.login}/.ssh/authorized_keys, as cloud images have for root)`,
        `log in as ${loginAs[1]}: set user: ${loginAs[1]} for ${this.name} in hosts[] of the environment (ops runs root's steps through its passwordless sudo)`,
      );
    // sshd's own words for ForceCommand internal-sftp (a Match block for an sftp-only group or user).
    if (/This service allows sftp connections only/.test(output))
      return new NotStartedError(
        `${what} on ${this.name} did not start: sshd there lets ${this.login} use sftp only (ForceCommand internal-sftp, e.g. in a Match block of /etc/ssh/sshd_config or sshd_config.d for an sftp-only group), so it runs no command`,
        `on ${this.name}, as root: sshd -T -C user=${this.login} | grep -i forcecommand shows it; take ${this.login} out of that Match block (or its group), then systemctl reload ssh`,
      );
    // `set -u` in a start-up file, then a variable that only interactive shells set ($PS1 in `[ -z "$PS1" ] && return`):
    // bash ends the login there, in bash's words `…: PS1: unbound variable` (zsh's: `PS1: parameter not set`).
    const unbound = /:\s*([A-Za-z_][A-Za-z0-9_]*): (?:unbound variable|parameter not set)/.exec(output)?.[1];
    if (unbound) {
      const { files, place } = this.startupFiles();
      return new NotStartedError(
        `${what} on ${this.name} did not start: ${files} on ${this.name} runs set -u (nounset), then reads $${unbound}, which is not set in non-interactive sessions: the login shell ended there, with exit code ${code}${printed}`,
        `write \${${unbound}-} there (empty when unset), or move set -u ${place}`,
      );
    }
    // A start-up file that starts tmux or screen (to attach at login) for every session: they need a terminal, which
    // ops's sessions have not.
    const multiplexer = /open terminal failed: not a terminal/.test(output) ? 'tmux' : /Must be connected to a terminal/.test(output) ? 'screen' : undefined;
    if (multiplexer) {
      const { files, place } = this.startupFiles();
      return new NotStartedError(
        `${what} on ${this.name} did not start: ${files} on ${this.name} starts ${multiplexer} for non-interactive sessions too, and ${multiplexer} needs a terminal, which ops's sessions have not: the login shell ended with exit code ${code}${printed}`,
        `start ${multiplexer} only ${place}${multiplexer === 'tmux' ? ', e.g. [ -z "$TMUX" ] && exec tmux new-session -A -s main' : ''}`,
      );
    }
    // env(1) of coreutils before 8.31 (Debian 10) has no --default-signal, which commandLine gives it: getopt's words,
    // exit 125, before the script. No fallback: a step would then start with the signals the login ignored.
    if (code === 125 && /\benv: unrecognized option '--default-signal'/.test(output))
      return new NotStartedError(
        `${what} on ${this.name} did not start: its env (coreutils) is older than 8.31 and has no --default-signal, which ops uses so that a step starts with no signal ignored: ${this.name} runs Debian 10 or older (coreutils 8.30)`,
        `ops supports Debian 11 and 12: upgrade ${this.name} (Debian 11 has coreutils 8.32), or deploy to a Debian 11 or 12 host`,
      );
    // sudo's NOEXEC (`Defaults noexec`, or the NOEXEC: tag on the login's sudoers line, a hardening guide's): the command
    // sudo runs, timeout, may start no other (sudo's seccomp filter fails its execve), so env and the step's bash never
    // run: timeout's words (in English: LC_ALL=C.UTF-8), exit 126, before the script. Not the login shell's fault.
    if (code === 126 && SUDO_NOEXEC.test(output)) {
      const { problem, fix } = sudoNoexec(this.login, this.name);
      return new NotStartedError(`${what} on ${this.name} did not start: ${problem}${printed}`, fix);
    }
    // The guard's refusal (exit 125) with nothing at all come back: it went where stdout and stderr both go (exec >
    // >(logger) 2>&1); env and timeout say why when they exit 125 themselves.
    if (code === 125 && !output.trim())
      return this.mergedOutput(what, 'ops stopped it before it did anything (its refusal went there too)');
    // A command of ops's own command line (sudo, timeout, env, bash) missing: the host lacks it, the shell is fine.
    const missing = missingCommand(code, output);
    if (missing) {
      const pkg = missing === 'sudo' ? 'sudo' : missing === 'bash' ? 'bash' : 'coreutils';
      return new NotStartedError(
        `${what} on ${this.name} did not start: ${missing} is not installed there (${code === 127 ? `the login shell of ${this.login} ended with exit code 127` : `sudo could not find ${HOST_COMMANDS[missing as 'timeout' | 'env'] ?? missing}, exit code ${code}`}${printed})`,
        `ops runs each step through ${HOST_COMMANDS.sudo}, ${HOST_COMMANDS.timeout} and ${HOST_COMMANDS.env} (coreutils) and bash: install ${pkg} on ${this.name} (apt-get install ${pkg}), as root`,
      );
    }
    const { files, place } = this.startupFiles();
    // A login shell that ended before any step began never said which it is (STEP_BOOT): the other shells' files too.
    const others = this.loginShell ? '' : ` (zsh: ~${this.login}/.zshenv; fish: ~${this.login}/.config/fish/config.fish; csh, tcsh: ~${this.login}/.cshrc, ~/.tcshrc)`;
    return new NotStartedError(
      `${what} on ${this.name} did not start: the login shell of ${this.login}${nologin} ended with exit code ${code} before the step's script began${printed}`,
      `ops runs every step through the login shell of ${this.login}: on ${this.name} it must be a shell such as /bin/bash (getent passwd ${this.login} shows it; /usr/sbin/nologin and /bin/false run nothing: chsh -s /bin/bash ${this.login}), and its start-up files, ${files}${others}, must not exit or exec for non-interactive sessions (nor run set -e: a command failing after it ends the login as an exit does): put such lines ${place}; or sshd runs another command in place of ops's: a ForceCommand for ${this.login} (on ${this.name}, as root: sshd -T -C user=${this.login} | grep -i forcecommand), or a command="…" option before ops's key in ${this.login}'s authorized_keys (~${this.login}/.ssh/authorized_keys, or where sshd's AuthorizedKeysFile says): remove it for ops's key, or have it run "$SSH_ORIGINAL_COMMAND"`,
    );
  }

  run(step: Step, options: RunOptions = {}): Promise<StepResult> {
    return this.exec(step, sshCommand(step, this.login, this.appUser, this.connection), Buffer.from(stepInput(step)), options);
  }

  async upload(content: string | Buffer, remotePath: string, options: UploadOptions = {}): Promise<void> {
    const data = typeof content === 'string' ? Buffer.from(content) : content;
    const step = uploadStep(remotePath, data.length, options.mode ?? 0o600, options.guard);
    await this.exec(step, sshCommand(step, this.login, this.appUser, this.connection), Buffer.concat([Buffer.from(stepInput(step)), data]), {});
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ssh.dispose();
    this.gone(new Error('Not connected'));
  }
}

/**
 * The command of ops's own command line (commandLine: sudo, timeout and env by their paths, HOST_COMMANDS; bash by
 * STEP_PATH) a host lacks, from what a step that never started printed and its exit code; undefined for anything else.
 * Read: a shell's words for a command it cannot run, exit 127 (dash `exec: /usr/bin/env: not found`, bash
 * `/usr/bin/sudo: No such file or directory` for a path, `sudo: not found` for a name), env's and timeout's for the
 * command after them (`/usr/bin/env: 'bash': No such file or directory`, `timeout: failed to run command
 * '/usr/bin/env': No such file or directory`, exit 127), and sudo's own for the command it was to run (`sudo:
 * /usr/bin/timeout: command not found`, exit 1). Pure.
 */
export function missingCommand(code: number, output: string): 'sudo' | 'timeout' | 'env' | 'bash' | undefined {
  const name = String.raw`(?:/usr)?(?:/bin/)?(sudo|timeout|env|bash)`;
  const found = (re: string) => (new RegExp(re, 'm').exec(output)?.slice(1).find(Boolean) as 'sudo' | 'timeout' | 'env' | 'bash' | undefined);
  if (code === 127) return found(String.raw`(?:^|[\s:])${name}: (?:command )?not found|(?:^|: )${name}: No such file or directory|\b(?:env: |failed to run command )['‘]${name}['’]: No such file or directory`);
  if (code === 1) return found(String.raw`^sudo: ${name}: command not found`);
  return undefined;
}
