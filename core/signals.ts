// Who answers the signals that end a process (RUN_SIGNALS: SIGINT, SIGTERM, SIGHUP, SIGQUIT...) in a command: a run under way (core/ops/locked.ts withLock, from its lock step on) stops
// itself and says what it had got to; before and outside it, the CLI's own handler (--json) does. Told apart here, not
// by counting the process's listeners: libraries add their own (proper-lockfile's signal-exit, loaded with the secrets
// file), and each handler then left the signal to the other (a --json deploy went on connecting after Ctrl-C).

import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync, writeSync } from 'node:fs';
import { constants } from 'node:os';
import { isatty } from 'node:tty';

/**
 * The exit code of a command stopped by `signal` (a name; SIGINT when not one node knows): 128 + its number, as a
 * shell reports a command killed by it (bash(1), EXIT STATUS): SIGHUP 129, SIGINT 130, SIGTERM 143, which CI runners
 * read as the run cancelled.
 */
export function signalExit(signal: string): number {
  return 128 + (constants.signals[signal as NodeJS.Signals] ?? constants.signals.SIGINT);
}

/**
 * The signals that stop a command cleanly (its lock released, its --json document printed): every signal whose default
 * action ends the process (signal(7)) and that a person, a runner or a limit sends from outside: Ctrl-C (SIGINT), a
 * cancelled workflow's SIGTERM, SIGHUP (the terminal closed, an SSH session to a jump box dropped), Ctrl-\ (SIGQUIT),
 * `ulimit -t`'s SIGXCPU, `ulimit -f`'s SIGXFSZ, and the rest (SIGUSR2, SIGALRM, SIGVTALRM, SIGPWR). Unanswered, each
 * would kill ops outright, as kill -9 does: its lock left stale, its build still running on the host. Not: SIGKILL and
 * SIGSTOP (no process can answer them), SIGUSR1 (Node's inspector), SIGPROF (V8's profiler), SIGPIPE (Node ignores
 * it: guardOutput answers a reader gone), SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP and SIGSYS (a fault of the
 * process itself: no JavaScript may run after it), SIGTSTP, SIGTTIN and SIGTTOU (a pause, not an end: Ctrl-Z's SIGTSTP
 * is refused while a run holds locks, refuseSuspend; the run's fence covers a run paused otherwise, kill -STOP).
 */
export const RUN_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGXCPU', 'SIGXFSZ', 'SIGUSR2', 'SIGALRM', 'SIGVTALRM', 'SIGPWR'];

const runHandlers = new Set<(signal: NodeJS.Signals) => void>();

/** Install `handler`, a run's, for RUN_SIGNALS until stopHandlingSignals(handler); runHandlesSignals() is then true. */
export function handleSignals(handler: (signal: NodeJS.Signals) => void): void {
  runHandlers.add(handler);
  for (const s of RUN_SIGNALS) process.on(s, handler);
}

/** Remove a handler handleSignals installed (again: nothing). */
export function stopHandlingSignals(handler: (signal: NodeJS.Signals) => void): void {
  runHandlers.delete(handler);
  for (const s of RUN_SIGNALS) process.off(s, handler);
}

/** Whether a run under way answers RUN_SIGNALS now (a handler installed by handleSignals). */
export function runHandlesSignals(): boolean {
  return runHandlers.size > 0;
}

/**
 * The signal a terminal's Ctrl-Z sends the foreground process group (SIGTSTP: stop, unless answered). Not SIGSTOP (no
 * process can answer it: `kill -STOP`, which the run's fence covers), nor SIGTTIN/SIGTTOU (a background job reading
 * or writing its terminal: ops never reads it during a run, and writes only with `stty tostop` set).
 */
export const SUSPEND_SIGNAL: NodeJS.Signals = 'SIGTSTP';

/**
 * From now until the returned function is called, Ctrl-Z (SUSPEND_SIGNAL) does not suspend the process: `say` is told
 * each time (what the run holds, why it goes on, how to stop it) and the process goes on. A run holding host locks is
 * suspended only with its SSH connections' keepalives: after HOLDER_SILENT_SECONDS (core/steps/lock.ts) its locks read
 * stale to every other run, which `ops lock release` then removes without --force, and a second run starts beside a
 * run that still believes it holds them (its fence refuses its steps once it is resumed: it then fails half-way). As a
 * terminal sends Ctrl-Z to the whole foreground process group, what else it stopped there (a local git or build
 * process the run waits for; npm, when run through `npm run ops` or npx) is continued at once (SIGCONT to the group:
 * nothing for a process not stopped). Nested calls each say their own; the default (stop) is back once all are undone.
 */
export function refuseSuspend(say: () => void): () => void {
  const answer = () => {
    try {
      process.kill(0, 'SIGCONT');
    } catch {
      // no group to signal (not allowed): only ops itself was kept running
    }
    say();
  };
  process.on(SUSPEND_SIGNAL, answer);
  let undone = false;
  return () => {
    if (undone) return;
    undone = true;
    process.off(SUSPEND_SIGNAL, answer);
  };
}

/** An error nobody caught or awaited (core/errors.ts onUncaught), met while a run holds locks: it stops the run. */
export interface RunFault {
  error: unknown;
}

const faultHandlers = new Set<(fault: RunFault) => void>();

/**
 * Install `handler`, a run's, for errors nobody caught while it runs (an exception thrown in an event handler, a promise
 * nobody awaited that rejects), until stopHandlingFaults(handler). Without it such an error exits the process at once,
 * leaving the run's locks held and its steps running on the hosts; with it the run stops as on a signal (its locks
 * released, its audit lines written), then exits 1.
 */
export function handleFaults(handler: (fault: RunFault) => void): void {
  faultHandlers.add(handler);
}

/** Remove a handler handleFaults installed (again: nothing). */
export function stopHandlingFaults(handler: (fault: RunFault) => void): void {
  faultHandlers.delete(handler);
}

/**
 * Hands `error`, one nobody caught, to the runs under way (handleFaults). @returns whether one took it: it then stops
 * and exits the process itself; otherwise the caller exits.
 */
export function stopRunsOnFault(error: unknown): boolean {
  for (const h of faultHandlers) h({ error });
  return faultHandlers.size > 0;
}

/**
 * Whether a line written to `fd` now would stop this process (SIGTTOU, termios(3) TOSTOP; tty(4)): the process is in
 * the background of that terminal (inBackgroundOf) and the terminal stops the output of background jobs (`stty tostop`,
 * read with stty: a background job may read the settings, not change them). Node can neither ignore nor block SIGTTOU:
 * a handler only has the write restarted, signalled again, forever.
 */
export function terminalStopsWrite(fd: number): boolean {
  return inBackgroundOf(fd) && terminalHasTostop(fd);
}

/**
 * Whether `fd` is this process's controlling terminal (proc(5) stat's tty_nr, the device fstat names) and another
 * process group than the process's own is in its foreground (tpgid: a shell job started with `&`, or one the shell
 * took the terminal back from, after a Ctrl-Z stopped npx or npm around ops). False wherever any of it cannot be read.
 */
export function inBackgroundOf(fd: number): boolean {
  if (!isatty(fd)) return false;
  try {
    // After the command name, which may hold spaces and parentheses: state, ppid, pgrp, session, tty_nr, tpgid.
    const [, , pgrp, , ttyNr, tpgid = -1] = readFileSync('/proc/self/stat', 'utf8').replace(/^.*\) /s, '').split(' ').map(Number);
    return tpgid > 0 && tpgid !== pgrp && fstatSync(fd).rdev === ttyNr;
  } catch {
    return false;
  }
}

/** Whether the terminal on `fd` has TOSTOP set (`stty tostop`), as stty -a says (`tostop`, `-tostop` when not). */
export function terminalHasTostop(fd: number): boolean {
  if (!isatty(fd)) return false;
  const r = spawnSync('stty', ['-a'], { stdio: [fd, 'pipe', 'ignore'], encoding: 'utf8', timeout: 5000 });
  return r.status === 0 && /(^|\s)tostop(\s|;|$)/m.test(r.stdout);
}

/**
 * Before a run takes any lock: when a line it writes would stop it (terminalStopsWrite, on stderr or stdout: a
 * background job on a terminal with `stty tostop`), `say` is called (the reporter's warning of it), and the process is
 * stopped at that write, or at a carriage return written after it, until the shell brings it to the foreground (`fg`;
 * `bg` has it stopped again at the same write). Stopped later, holding its locks, it would send nothing to its hosts:
 * after HOLDER_SILENT_SECONDS (core/steps/lock.ts) they read stale to other runs. @returns whether it waited.
 */
export function awaitTerminal(say: () => void): boolean {
  const fd = [2, 1].find(terminalStopsWrite);
  if (fd === undefined) return false;
  say();
  try {
    // The warning's write blocks while the terminal's output is; a reporter that queued it instead: here.
    while (terminalStopsWrite(fd)) writeSync(fd, '\r');
  } catch {
    // the terminal gone (EIO): the run's own output says so
  }
  return true;
}

let hungUpGuarded = false;

/**
 * Makes a terminal that hangs up (its window closed, the SSH session to a jump box dropped: SIGHUP, then EIO on every
 * use of it) no reason to crash at exit: Node gives each stdio terminal back the modes it had at start as the process
 * exits (node.cc ResetStdio: tcsetattr), and aborts the process (a native assertion: SIGABRT, or SIGSEGV) when that
 * fails, as it does on a terminal hung up: a deploy stopped by its terminal's SIGHUP, its lock released, then died
 * so, its exit code (129) and --json's document lost, a cancelled run read as a crash. Each of stdin, stdout and
 * stderr that was a terminal at the start and answers as one no more (isatty fails on a terminal hung up) is given
 * /dev/null in its place as the process exits (another file: Node leaves it alone); what is written to it meanwhile
 * is dropped (guardOutput: EIO). Nothing for a terminal still there, a pipe or a file. Once per process (the CLI's
 * entry point, for every command); again: nothing.
 */
export function guardHungUpTerminals(): void {
  if (hungUpGuarded) return;
  hungUpGuarded = true;
  const terminals = [0, 1, 2].filter((fd) => isatty(fd));
  if (!terminals.length) return;
  process.once('exit', () => {
    for (const fd of terminals) {
      if (isatty(fd)) continue;
      try {
        closeSync(fd);
        openSync('/dev/null', fd === 0 ? 'r' : 'w'); // the lowest free descriptor: this one
      } catch {
        // left as it is: nothing more can be done as the process exits
      }
    }
  });
}
