// Errors meant for people: a message that says what is wrong, and a hint that says how to fix it.
// Entry points print `message` (and `hint`) without a stack trace; anything else is a bug and keeps its stack.

import { readdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { quote } from './shell.ts';
import { hideTokens, hideUrlCredentials, isTokenUser } from './secrets/parts.ts';
import { stopRunsOnFault } from './signals.ts';

export class OpsError extends Error {
  override name = 'OpsError';
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/**
 * The input given is wrong, and nothing was tried: a command-line value of the wrong form (validate, wholeNumber), an
 * environment or project that does not exist, a configuration file that does not validate (ConfigError). The CLI exits
 * 2 for it, as for any usage error (scripts/cli.ts): running it again as it is fails the same way, whatever the hosts
 * hold. What the state of the world refuses (a host, the lock, a release not kept, a key that does not open the
 * secrets) is an OpsError (exit 1).
 */
export class InputError extends OpsError {
  override name = 'InputError';
}

/**
 * A step that did not start on its host (the login shell or its start-up files ended, or ran it in a way ops refuses,
 * before the step's own script began): nothing of the step was done there (a lock step took no lock).
 */
export class NotStartedError extends OpsError {
  override name = 'NotStartedError';
}

/**
 * A sops file could not be decrypted for want of a key on this machine: no age identity found, none of those found a
 * recipient, a passphrase-protected SSH key, too few Shamir key groups opened. The file itself was read and is a sops
 * file (thrown after parseSops, before any value is decrypted): another machine holding the key may decrypt it, so
 * `ops config` says its secrets were not checked and goes on, where any other fault of the file is refused as the
 * deploy refuses it.
 */
export class KeyUnavailable extends OpsError {}

/** No age identity was found to decrypt an environment's secrets (an action says which input was empty). */
export class NoAgeIdentity extends KeyUnavailable {}

/**
 * A remote step exited non-zero (or timed out): names the step, the host, the exit code and the end of stderr.
 * `limit`: the seconds the step was given (its remote `timeout`, which exits 124 when it ends the step): a timed-out
 * step says after how long.
 */
export class StepError extends OpsError {
  override name = 'StepError';
  constructor(
    readonly step: string,
    readonly host: string,
    readonly exitCode: number | null,
    readonly stderrTail: string,
    readonly signal?: string,
    hint?: string,
    readonly limit?: number,
    /** What the step itself said of its failure, in one line (its reported `failure`: a start's health verdict), if it said. */
    readonly verdict?: string,
  ) {
    // 128 + the signal's number (bash(1), EXIT STATUS): a SIGTERM or SIGKILL that reached the script from outside the
    // run (its own timeout is 124), e.g. another ops lock release --force, the OOM killer (SIGKILL), an admin.
    const outside = exitCode === 143 ? 'SIGTERM' : exitCode === 137 ? 'SIGKILL' : undefined;
    const how = signal
      ? `was killed by ${signal}`
      : exitCode === 124
        ? `timed out${limit ? ` after ${limit} s` : ''}`
        : outside
          ? `was stopped by ${outside} from outside this run (exit code ${exitCode}: ops lock release --force by someone else, ${outside === 'SIGKILL' ? 'the kernel\'s OOM killer, ' : ''}an admin?)`
          : `failed with exit code ${exitCode}`;
    const tail = stderrTail.trim() ? `\n${indent(stderrTail.trim())}` : '';
    super(`step "${step}" on ${host} ${how}${tail}`, hint);
  }
}

/** What a migration cut off part-way means (a signal, its connection lost, killed from outside), and what to check. */
export const MIGRATION_CUT = 'the migration was stopped part-way: PostgreSQL rolls back a migration run in one transaction (alembic does); check the schema (e.g. alembic current) before deploying again';

/** What an initdata loader cut off part-way means (its time limit, a signal, its connection lost, killed from outside), and what to do. */
export const INITDATA_CUT = 'the initdata loader was stopped part-way: what it had written stays in the database unless it loads in one transaction (the sample app\'s does: PostgreSQL then rolls it back); check the data, then run initdata again (an idempotent loader adds only what is missing)';

/** What each step a signal may cut off part-way leaves to check (core/ops/locked.ts says it after the interruption). */
export const STEP_CUT: Readonly<Record<string, string>> = { migrate: MIGRATION_CUT, initdata: INITDATA_CUT };

/** sudo's refusal under `Defaults requiretty` (a session without a terminal). */
export const REQUIRETTY = /sudo: sorry, you must have a tty/;

/**
 * sudo's NOEXEC (`Defaults noexec`, or the `NOEXEC:` tag on the login's sudoers line, as hardening guides write): the
 * command sudo runs may start no other program (sudo's seccomp filter fails its execve with EACCES), so no step runs
 * (timeout cannot start env, env cannot start bash). What is wrong and the fix, for `login` on `host` (sudoers(5)).
 */
export const sudoNoexec = (login: string, host: string) => ({
  problem: `sudo on ${host} runs ${login}'s commands with NOEXEC (Defaults noexec, or the NOEXEC: tag on its sudoers line): the command it runs may not start another, and every step of ops's starts several (timeout, then the step's shell, apt, git, nginx, npm...)`,
  fix: `on ${host}, as root: remove "Defaults noexec" or the NOEXEC: tag for ${login} from /etc/sudoers or /etc/sudoers.d (sudo -l -U ${login} lists both; visudo -f FILE), e.g. "${login} ALL=(ALL) NOPASSWD: ALL"`,
});

/** What sudo's NOEXEC leaves a command that starts another: its `Permission denied` (coreutils' words: timeout, env). */
export const SUDO_NOEXEC = /\b(?:timeout: failed to run command|env:) ['‘](?:\/usr\/bin\/)?(?:env|true)['’]: Permission denied/;

/** The hint for a step that failed because sudo wants a password (or a terminal), from its stderr. */
export function sudoHint(stderr: string, login: string, host: string): string | undefined {
  // requiretty in sudoers: no password asked, sudo refuses any session without a terminal (ssh with a command has none).
  if (REQUIRETTY.test(stderr)) return `sudoers on ${host} requires a terminal (Defaults requiretty), which ops's sessions have not: add the line "Defaults:${login} !requiretty" to /etc/sudoers.d/${login} (visudo -f /etc/sudoers.d/${login})`;
  if (!/sudo: (a password is required|a terminal is required)|is not in the sudoers/.test(stderr)) return undefined;
  return `the login ${login} needs passwordless sudo on ${host}: add the line "${login} ALL=(ALL) NOPASSWD: ALL" to /etc/sudoers.d/${login} (visudo -f /etc/sudoers.d/${login})`;
}

/**
 * The start-up files a login shell reads for sshd's `$SHELL -c COMMAND` (`files`), and where a line meant for interactive
 * sessions only belongs instead (`place`, after "move it"): by the shell's name (`shell`: its path, from passwd or the
 * session's $SHELL; bash when unknown). zsh reads only ~/.zshenv (and /etc/zsh/zshenv) for a command, fish its
 * config.fish, csh and tcsh ~/.cshrc or ~/.tcshrc; dash, sh and the like read none (undefined).
 */
export function loginStartup(login: string, shell: string | undefined): { files: string; place: string } | undefined {
  const name = (shell || 'bash').split('/').pop()!;
  if (name === 'bash') return { files: `~${login}/.bashrc (or ~/.profile, /etc/bash.bashrc)`, place: `below the interactive guard at the top of ~${login}/.bashrc (case $- in *i*) ;; *) return;; esac)` };
  if (name === 'zsh') return { files: `~${login}/.zshenv (or /etc/zsh/zshenv)`, place: `out of ~${login}/.zshenv and /etc/zsh/zshenv (zsh reads them for every command) into ~${login}/.zshrc (interactive shells only)` };
  if (name === 'fish') return { files: `~${login}/.config/fish/config.fish (or ~/.config/fish/conf.d/, /etc/fish/config.fish)`, place: `inside "if status is-interactive … end" in ~${login}/.config/fish/config.fish (or /etc/fish/config.fish)` };
  if (name === 'tcsh' || name === 'csh') return { files: `~${login}/.tcshrc or ~/.cshrc (or /etc/csh.cshrc)`, place: `inside "if ($?prompt) then … endif" in ~${login}/.tcshrc or ~${login}/.cshrc (or /etc/csh.cshrc)` };
  return undefined;
}

/** A session that stays open after its command exited (StepResult.lingered): what is wrong, for `login`. */
export function lingerProblem(login: string): string {
  return `a session stays open after its command has exited: a start-up file of the login shell of ${login} starts a process in the background that keeps the session's output (e.g. watcher & in ~/.bashrc), so scp and rsync wait for it too`;
}

/** The fix for lingerProblem. */
export function lingerFix(login: string, shell?: string): string {
  return `start it with its output elsewhere (watcher >/dev/null 2>&1 &) or ${(loginStartup(login, shell) ?? loginStartup(login, 'bash')!).place}`;
}

/** A login whose start-up files start an ssh-agent for every session (StepResult.agentStopped): what is wrong, for `login`. */
export function agentProblem(login: string): string {
  return `a start-up file of the login shell of ${login} starts an ssh-agent for every session (e.g. eval $(ssh-agent) in ~/.bashrc), which nothing ends: one more stays on the host after each login (ops stops the ones its own sessions start)`;
}

/** The fix for agentProblem. */
export function agentFix(login: string, shell?: string): string {
  return `start it ${(loginStartup(login, shell) ?? loginStartup(login, 'bash')!).place}, and there only when none runs for the login (keychain: eval $(keychain --eval --quiet), or systemctl --user enable --now ssh-agent)`;
}

/** A login shell that traces its commands for non-interactive sessions (StepResult.xtrace): what is wrong, for `login`. */
export function xtraceProblem(login: string): string {
  return `the login shell of ${login} traces its commands for non-interactive sessions (set -x, xtrace: each command of its start-up files, and the one ops sends, on stderr), which ops ignores; but every tool run over ssh shows it, and a value a start-up file sets (an export of a token) is traced with it`;
}

/** The fix for xtraceProblem. */
export function xtraceFix(login: string, shell?: string): string {
  return `move set -x ${(loginStartup(login, shell) ?? loginStartup(login, 'bash')!).place}, or end it with set +x before that`;
}

/** A login whose start-up files start a D-Bus session bus for every session (StepResult.busStopped): what is wrong, for `login`. */
export function busProblem(login: string): string {
  return `a start-up file of the login shell of ${login} starts a D-Bus session bus for every session (e.g. eval $(dbus-launch --sh-syntax) in ~/.bashrc), which nothing ends: one more dbus-daemon stays on the host after each login (ops stops the ones its own sessions start)`;
}

/** The fix for busProblem. */
export function busFix(login: string, shell?: string): string {
  return `start it ${(loginStartup(login, shell) ?? loginStartup(login, 'bash')!).place}, or use the login's own bus instead (apt-get install dbus-user-session: systemd starts one per user, at /run/user/<uid>/bus)`;
}

/**
 * The fix for a warning sudo printed (a line `sudo: …` where sudo still ran the command), or undefined when `line` is
 * none. Its own problem, not the login shell's: "unable to resolve host" is a host name missing from /etc/hosts.
 */
export function sudoWarningFix(line: string, host: string): string | undefined {
  if (!/^sudo: /.test(line)) return undefined;
  const name = /^sudo: unable to resolve host ([^\s:]+)/.exec(line)?.[1];
  if (name) return `add the host's name to /etc/hosts on ${host} (as root: echo '127.0.1.1 ${name}' >> /etc/hosts): sudo looks it up on every command`;
  // sudo 1.8.29 to 1.9.x in a container (LXC, Docker) that forbids lowering its core size limit: harmless, on every command.
  if (/^sudo: setrlimit\(RLIMIT_CORE\): Operation not permitted/.test(line)) return `on ${host}, as root: echo 'Set disable_coredump false' >> /etc/sudo.conf (sudo lowers its core dump limit on every command, which this container forbids)`;
  return `see sudo's configuration on ${host} (/etc/sudoers, /etc/sudoers.d/) for what it warns about`;
}

/**
 * The dynamic loader's line (glibc's rtld: "ERROR: ld.so: object 'LIB' from LD_PRELOAD cannot be preloaded (REASON):
 * ignored."), printed by every program it starts while LD_PRELOAD, or /etc/ld.so.preload, names a library it cannot
 * load: a login's environment from pam_env (/etc/environment, ~/.pam_environment), sshd's SetEnv or a start-up file's
 * export, or a library uninstalled since. Before a step's script (the login shell, env, sudo, timeout: the step unsets
 * LD_PRELOAD, sudo drops it), so not the login shell's text: its own problem and fix. Undefined for any other line.
 */
export function preloadProblem(line: string, login: string, host: string): { problem: string; fix: string } | undefined {
  const m = /^ERROR: ld\.so: object '([^']*)' from (\S+) cannot be preloaded \((.*)\): ignored\.$/.exec(line);
  if (!m) return undefined;
  const [, lib, from, reason] = m as unknown as [string, string, string, string];
  if (from === 'LD_PRELOAD')
    return {
      problem: `the dynamic loader warns before every command of ${login}: LD_PRELOAD in its environment names ${lib}, which it cannot load (${reason}) (ops copes)`,
      fix: `on ${host}, as root: remove LD_PRELOAD from where ${login}'s sessions get it (grep -rs LD_PRELOAD /etc/environment /etc/security/pam_env.conf /etc/ssh/sshd_config /etc/ssh/sshd_config.d/ /etc/bash.bashrc ~${login}/.pam_environment ~${login}/.bashrc ~${login}/.profile ~${login}/.ssh/environment), or install ${lib}`,
    };
  return {
    problem: `the dynamic loader warns before every program on ${host}: ${from} names ${lib}, which it cannot load (${reason}) (ops copes)`,
    fix: `on ${host}, as root: remove the line ${lib} from ${from}, or install it`,
  };
}

/**
 * sshd's line, before every command, when it cannot enter the login's home directory (OpenSSH session.c, do_child:
 * "Could not chdir to home directory DIR: REASON"; the command then runs in /): a login made by `useradd` without -m,
 * or a directory's user (LDAP, SSSD) whose home pam_mkhomedir never made, its keys read from elsewhere
 * (AuthorizedKeysFile, AuthorizedKeysCommand). Not the login shell's text: its own problem and fix. Undefined for any
 * other line.
 */
export function homeDirProblem(line: string, login: string, host: string): { problem: string; fix: string } | undefined {
  const m = /^Could not chdir to home directory (\S+): (.+)$/.exec(line);
  if (!m) return undefined;
  const [, dir, reason] = m as unknown as [string, string, string];
  return {
    problem: `sshd cannot enter the home directory of ${login}, ${dir} (${reason}), and says so before every command (ops copes)`,
    fix: /No such file/.test(reason) ? `on ${host}, as root: mkhomedir_helper ${login} (makes ${dir} from /etc/skel, owned by ${login})` : `on ${host}, as root: let ${login} into ${dir} (ls -ld ${dir}: owned by ${login}, or a mode that lets it in)`,
  };
}

/**
 * The hint for an app command (build, migrate, a hook) that failed writing into a dependency set, from its output: a
 * set is read-only once made (core/steps/app.ts, dependencySet), as releases share it. `step`: the step's name (a
 * step making a set gets none: its own write failing is not the app's doing).
 */
export function readOnlySetHint(step: string, output: string): string | undefined {
  if (/dependencies$/.test(step)) return undefined;
  const line = output.split('\n').find((l) => /EACCES|EPERM|EROFS|Permission denied|Read-only file system/i.test(l) && /shared\/deps\/|(^|[\s'"/])(node_modules|venv)\//.test(l));
  if (!line) return undefined;
  const set = /shared\/deps\/((?:node|venv)-[0-9a-f]+)/.exec(line)?.[1];
  const where = set ? `the dependency set shared/deps/${set}` : /(^|[\s'"/])venv\//.test(line) && !/node_modules\//.test(line) ? 'the venv (a dependency set)' : 'node_modules (a dependency set)';
  return `${step} wrote into ${where}, which is read-only (shared by releases, the live one too): write generated code and caches into the release (e.g. prisma's output setting, a build tool's cache directory), not node_modules or the venv`;
}

/**
 * The hint for a node set's step (`node dependencies`) whose npm failed in a package's install script that fetches a
 * prebuilt binary and else compiles one (node-pre-gyp's `install --fallback-to-build`, prebuild-install || node-gyp:
 * bcrypt, better-sqlite3, argon2...), from its output (`npm ERR!` or, npm 10 and later, `npm error` lines): the
 * download's host the host could not reach (DNS, refused, timed out) and a compiler, make or Python node-gyp found
 * missing, with the fixes (reach the host, provision.packages, a package whose binaries come from the registry).
 * undefined for another step, or output that names neither.
 */
export function installScriptHint(step: string, output: string): string | undefined {
  if (step !== 'node dependencies') return undefined;
  const lines = output.split('\n');
  const npmLine = (key: string) => lines.map((l) => new RegExp(`npm (?:ERR!|error) ${key} (.+)$`).exec(l)?.[1]?.trim()).filter((v): v is string => !!v);
  const pkg = npmLine('path').map((p) => /node_modules\/((?:@[\w.-]+\/)?[\w.-]+)\/?$/.exec(p)?.[1]).find(Boolean);
  // npm's words for a failed script: `command failed`, then `command sh -c <the script>`.
  const command = npmLine('command').find((c) => c.startsWith('sh -c '))?.slice('sh -c '.length);
  if (!pkg || !command) return undefined;
  const unreachable = [
    ...new Set(
      lines
        .filter((l) => /EAI_AGAIN|ENOTFOUND|ECONNREFUSED|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|ECONNRESET|socket hang up/.test(l))
        .map((l) => /https?:\/\/([a-z0-9.-]+\.[a-z]{2,})[:/]/i.exec(l)?.[1] ?? /getaddrinfo \w+ ([a-z0-9.-]+\.[a-z]{2,})/i.exec(l)?.[1])
        .filter((h): h is string => !!h),
    ),
  ];
  const noCompiler = lines.some((l) => /\b(cc|gcc|c\+\+|g\+\+|make): (No such file or directory|not found|command not found)|not found: (make|cc|gcc|g\+\+)\b/.test(l));
  const noPython = lines.some((l) => /gyp ERR! find Python|Could not find any Python installation/.test(l));
  if (!unreachable.length && !noCompiler && !noPython) return undefined;
  const tools = [...(noCompiler ? ['build-essential'] : []), ...(noPython ? ['python3'] : [])];
  const what = [
    ...(unreachable.length ? [`it downloads a prebuilt binary from ${unreachable.slice(0, 2).join(', ')}, which the host could not reach`] : []),
    ...(tools.length ? [`${unreachable.length ? 'then ' : ''}it compiles the addon, and the host lacks ${[...(noCompiler ? ['a C/C++ compiler (cc, g++)'] : []), ...(noPython ? ['Python (node-gyp runs it)'] : [])].join(' and ')}`] : []),
  ];
  const fixes = [
    ...(unreachable.length ? [`let the hosts reach ${unreachable[0]} (or a proxy to it in the app user's environment)`] : []),
    ...(tools.length || unreachable.length ? [`add ${tools.length ? tools.join(' and ') : 'build-essential and python3'} to provision.packages and run ops provision, so the host compiles it`] : []),
    `use a package whose binaries come from the npm registry${pkg === 'bcrypt' ? ' (bcryptjs, in JavaScript)' : ''}`,
  ];
  return `${pkg}'s install script (${command}) failed: ${what.join('; ')}; fix: ${fixes.join('; or ')}`;
}

/**
 * The hint for a Python set's step (`python dependencies`) whose installer failed building a requirement from its
 * source distribution, from its output: uv's "Failed to build `name==version`" (uv 0.4 and later; "Failed to download
 * and build", "Failed to build: `...`" before), pip's "Failed building wheel for name", "Could not build wheels for
 * name", "Failed to build name ..." and its metadata step's "Encountered error while generating package metadata"
 * (then "╰─> name"), and its "× Getting requirements to build wheel did not run successfully" (the sdist's file names it, when shown). uv and pip build from source only when the index has no wheel of that release for the host's
 * Python and platform: most often an old pin (2022's asyncpg 0.25, uvloop 0.16, psycopg2-binary 2.9.3) under a newer
 * Python than it was released for (Debian 12's 3.11), where the build then fails for want of a compiler, Python's
 * headers, a library's (pg_config), or on its own. Names the requirements and, when the output says it, what the
 * host lacked; the fixes: a release with wheels for the host's Python, runtimes.python at a version that one has
 * wheels for, or the build tools in provision.packages. undefined for another step, or output naming no such build.
 */
export function sourceBuildHint(step: string, output: string): string | undefined {
  if (step !== 'python dependencies') return undefined;
  const lines = output.split('\n');
  const names: string[] = [];
  const sdists: string[] = [];
  let pipBuild = false;
  const add = (n: string | undefined) => {
    const name = n?.trim();
    if (name && !names.includes(name)) names.push(name);
  };
  lines.forEach((l, i) => {
    const uv = /Failed to (?:download and )?build:? `([^`]+)`/.exec(l);
    if (uv) add(uv[1]);
    const wheel = /Failed building wheel for (\S+)|Could not build wheels for ([^,\s]+)/.exec(l);
    if (wheel) add(wheel[1] ?? wheel[2]);
    const summary = /^(?:ERROR: )?Failed to build ((?:[\w.-]+ ?)+)$/.exec(l.trim());
    if (summary) for (const n of summary[1]!.split(' ')) add(n);
    if (/Encountered error while generating package metadata/.test(l)) add(/╰─>\s*(\S+)/.exec(lines[i + 1] ?? '')?.[1] ?? /╰─>\s*(\S+)/.exec(lines[i + 2] ?? '')?.[1]);
    // pip's build steps, which name no package (pip -q shows no "Collecting" line): the sdist's file, when shown
    if (/× (?:Getting requirements to build wheel|Preparing metadata \(pyproject\.toml\)|Building wheel for \S+ \(.*\)) did not run successfully/.test(l)) {
      pipBuild = true;
      add(/Building wheel for (\S+)/.exec(l)?.[1]);
    }
    const sdist = /\/([A-Za-z0-9][\w.]*?)-(\d[\w.]*)\.(?:tar\.gz|zip)\b/.exec(l);
    if (sdist) sdists.push(`${sdist[1]}==${sdist[2]}`);
  });
  if (pipBuild && !names.length) for (const n of sdists) add(n);
  if (!names.length && !pipBuild) return undefined;
  if (!names.length) names.push('a requirement (its name is above pip\'s error)');
  const lacks = [
    ...(lines.some((l) => /\b(?:[\w-]*-)?(?:gcc|cc|c\+\+|g\+\+)['"]?(?::| failed:) (?:No such file or directory|not found|command not found)|command '[^']*(?:gcc|cc)' failed/.test(l)) ? ['a C compiler (build-essential)'] : []),
    ...(lines.some((l) => /Python\.h: No such file or directory/.test(l)) ? ["Python's headers (python3-dev)"] : []),
    ...(lines.some((l) => /pg_config executable not found|pg_config: (?:not found|No such file)/.test(l)) ? ["PostgreSQL's client headers and pg_config (libpq-dev)"] : []),
  ];
  const shown = `${names.slice(0, 3).join(', ')}${names.length > 3 ? ` and ${names.length - 3} more` : ''}`;
  const packages = ['build-essential', 'python3-dev', ...(lacks.some((l) => l.includes('libpq-dev')) ? ['libpq-dev'] : [])];
  return (
    `${shown} ${names.length > 1 ? 'were' : 'was'} built from source on the host, which failed${lacks.length ? ` (the host lacks ${lacks.join(', ')})` : ''}: pip and uv build a package only when the package index has no wheel of that release for the host's Python (runtimes.python) and platform, as for a release older than that Python; ` +
    `fix: pin ${names.length > 1 ? 'releases' : 'a release'} with wheels for that Python (the index lists each release's files: cp311 for 3.11), or set runtimes.python to a version ${names.length > 1 ? 'they have' : 'it has'} wheels for (Debian 12's package is 3.11, Debian 11's 3.9; strategy pyenv installs any, with the internet on the hosts), then ops provision; or let the hosts compile ${names.length > 1 ? 'them' : 'it'}: ${packages.join(', ')} in provision.packages, then ops provision`
  );
}

/**
 * Modules an older app (or a package it pins) imports that today's Python or setuptools no longer provide, each with
 * what removed it: setuptools 81 removed pkg_resources (setuptools' changelog, v81.0.0); Python 3.12 removed
 * distutils (PEP 632), imp, asynchat, asyncore and smtpd; Python 3.13 the "dead batteries" of PEP 594.
 */
const REMOVED_MODULES: Record<string, string> = {
  pkg_resources: 'setuptools 81',
  ...Object.fromEntries(['distutils', 'imp', 'asynchat', 'asyncore', 'smtpd'].map((m) => [m, 'Python 3.12'])),
  ...Object.fromEntries(['aifc', 'audioop', 'cgi', 'cgitb', 'chunk', 'crypt', 'imghdr', 'mailcap', 'msilib', 'nis', 'nntplib', 'ossaudiodev', 'pipes', 'sndhdr', 'spwd', 'sunau', 'telnetlib', 'uu', 'xdrlib'].map((m) => [m, 'Python 3.13'])),
};

/**
 * The hint for a step (a build, migration, start, hook) whose output ends in Python's `ModuleNotFoundError: No module
 * named 'X'` for a module today's setuptools or Python removed (REMOVED_MODULES): an app pinned years ago (the data
 * catalogue's 2022 punq 0.6.2 imports pkg_resources) runs with the newest setuptools the Python set was seeded with,
 * or under a newer Python than it was written for. Names the package whose file imported it (the traceback's last
 * site-packages frame), and the fix: pin setuptools below 81, or runtimes.python below the version that removed it,
 * or a release of that package without the import. undefined for any other output.
 */
export function removedModuleHint(output: string): string | undefined {
  const lines = output.split('\n');
  const at = lines.findIndex((l) => /ModuleNotFoundError: No module named '([\w.]+)'/.test(l));
  if (at < 0) return undefined;
  const module = /No module named '([\w.]+)'/.exec(lines[at]!)![1]!.split('.')[0]!;
  const removedBy = REMOVED_MODULES[module];
  if (!removedBy) return undefined;
  const frame = lines.slice(0, at).reverse().map((l) => /File "[^"]*\/site-packages\/([A-Za-z0-9_.-]+?)(?:\/|\.py")/.exec(l)?.[1]).find(Boolean);
  const importer = frame ? `${frame}, a pinned package, imports it` : 'the code imports it';
  const fix =
    removedBy.startsWith('setuptools')
      ? `pin setuptools<81 in release.python_requirements (the Python set is seeded with the newest setuptools)${frame ? `, or a release of ${frame} that no longer imports it` : ', or use importlib.metadata instead'}`
      : `set runtimes.python to a version before ${removedBy.replace('Python ', '')}, then ops provision${frame ? `, or pin a release of ${frame} that no longer imports it` : ', or stop importing it'}`;
  return `${module} is no longer provided (${removedBy} removed it) and ${importer}; fix: ${fix}`;
}

/** A step that failed because the host's disk (or its inodes) ran out: the step's error, then what is free. */
export class DiskFullError extends StepError {
  override name = 'DiskFullError';
  constructor(cause: StepError, summary: string, hint: string) {
    super(cause.step, cause.host, cause.exitCode, cause.stderrTail, cause.signal, hint, cause.limit, summary);
    this.message = `${cause.message}\n${summary}`;
  }
}

/** The text of an error that says a disk or quota is full (ENOSPC, EDQUOT, as tools print them). */
export const DISK_FULL = /No space left on device|Disk quota exceeded/i;

/** `text` with `prefix` before each line (quoted tool output inside a message). */
export function indent(text: string, prefix = '  | '): string {
  return text
    .split('\n')
    .map((line) => prefix + line)
    .join('\n');
}

/**
 * Text on one line ("a / b"), cut to `max` characters: what a host printed, quoted in a message. Masked by `redact`
 * (the reporter's: the run's secret values) and maskSecretLike (what looks like a secret, where no value is known)
 * before it is put on one line or cut, and again after (a value found whole only once on one line); a cut drops the
 * word it falls in (it may be a secret's start), unless that word is the first (its start is then shown, when no part
 * of it looks like a token). The one way to quote a host's text in a message.
 */
export function oneLine(text: string, max = 80, redact: (text: string) => string = (t) => t): string {
  const clean = (t: string) => maskedText(t, redact);
  const one = clean(clean(text).trim().replace(/\s*\n\s*/g, ' / '));
  if (one.length <= max) return one;
  const cut = one.slice(0, max - 1);
  const whole = /\s/.test(one[max - 1]!) ? cut.trimEnd() : cut.replace(/\S*$/, '').trimEnd();
  // One word longer than `max` (a banner's row of "=", a long URL): nothing would be left but "…". Its start is
  // shown unless a part of it looks like a token (isTokenUser: a start-up file's `echo $TOKEN`); hex digits and
  // dashes alone are a hash, a commit sha, a UUID or a release's id in a path, shown (a token of that shape, as
  // Gitea's 40 hex digits, is shown then: rarer in a host's words than hashes, which ops prints everywhere).
  if (!whole && !cut.split(/[^A-Za-z0-9_-]+/).some((part) => isTokenUser(part) && !/^[0-9A-Fa-f-]+$/.test(part))) return `${cut}…`;
  return `${whole}…`;
}

/**
 * `text` from a host (a step's output, a login shell's words) as a message may quote it: the run's secret values
 * masked first (`redact`, the reporter's: every exact form of each, as the step's log lines are masked), then what
 * looks like a secret (maskSecretLike). The one way such text is masked, in that order: the heuristic run first cuts
 * a quoted form of a value at a character it ends a field at (bash's trace `'Authorization: Bearer Zq7'\''Wx9&vLm3
 * pR8'` masked up to the "&"), and the exact form is then no longer found, so the rest of the value is shown.
 */
export function maskedText(text: string, redact: (text: string) => string): string {
  return maskSecretLike(redact(text));
}

/**
 * `text` with what looks like a secret masked as "***": a URL's or git address's credentials (hideUrlCredentials:
 * its password, scheme://user:***@host, or a token as its user, https://***@host, ***@host:path), a credential of a
 * documented shape anywhere (hideTokens: ghp_…, AKIA…, xoxb-…, sk_live_…, a JWT), the value of a password, secret, token, key
 * or authorization field (`password=...`, `"api_key": "..."`, `Authorization: Bearer
 * ...`). For what quotes a server's words where the environment's secret values are not known to mask (status
 * decrypts none) or not whole (a body cut short): status's excerpts of health answers, a failed step's detail
 * (failureDetail: a deploy's or rollback's health verdict quoting an error page).
 */
export function maskSecretLike(text: string): string {
  // a field's name is tried where a word or a quote starts, not inside a word: a long line stays linear
  return hideTokens(hideUrlCredentials(text)).replace(/(?:(?<![\w-])|(?=["']))(["']?[\w-]*(?:passw(?:or)?d|pwd|secret|token|api[_-]?key|private[_-]?key|authorization|credentials?)[\w-]*["']?\s*[:=]\s*(?:(?:Bearer|Basic|Token|Digest)\s+)?)("[^"]*"|'[^']*'|[^\s,;&}]+)/gi, '$1***');
}

/**
 * An error's whole message on one line, for where a message is quoted inside another (a warning, a host's row, an audit
 * line): cutting to the first line would keep only a heading such as "environment.yml has 1 problem:". Each line is
 * trimmed of its indent and list or quote marks ("- ", "| "), empty ones dropped; a line ending in ":" is followed by a
 * space, any other by "; " ("environment.yml has 1 problem: programs.api.command: ..."). `err`: an Error (its message,
 * or its name when empty), or anything else as text (a message kept as a string).
 */
export function messageLine(err: unknown): string {
  const message = err instanceof Error ? err.message || err.name : String(err);
  const lines = message
    .split(/\r?\n/)
    .map((l) => l.trim().replace(/^(?:[-*|]\s+|\|$)/, '').trim())
    .filter(Boolean);
  return lines.reduce((out, line) => (out ? `${out}${/:$/.test(out) ? ' ' : '; '}${line}` : line), '');
}

/** The longest reason auditReason gives (characters): an audit line stays one readable line. */
export const AUDIT_REASON_MAX = 400;

/** A line of a failed step's output that says what went wrong (not a stack frame, not a pointer to a log file). */
const SAYS_WHY = /error|fail|fatal|denied|refused|not found|no such|does not exist|cannot|can't|unable|invalid|exception|timed out|killed|in use|missing|no space/i;
const NOISE = /^\s*(at\s|Node\.js v\d|npm (ERR|error)! (A complete log|Log files)|\^+\s*$|-+\s*$)/;

/**
 * Why a run failed, for its audit line and its release's mark: the error's message on one line (messageLine), or a
 * failed step's first line then the step's own verdict (its reported `failure`, e.g. a start's health verdict; a full disk's summary) or else the last
 * line of its output that says what went wrong (a migration's "relation x does not exist"). `redact` (the reporter's:
 * the run's secret values) and maskSecretLike mask the whole text before anything is picked or cut, so no part of a
 * secret survives; then every control character (a newline too) becomes a space and the result is cut to `max`
 * characters ("…" at the end). Always one line; never empty.
 */
export function auditReason(err: unknown, redact: (text: string) => string = (t) => t, max = AUDIT_REASON_MAX): string {
  const clean = (text: string) => maskedText(text, redact);
  const message = err instanceof Error ? err.message || err.name : String(err);
  const [head = '', ...rest] = clean(message).split('\n');
  // A step's first line names it and the lines after are its output (picked from below); any other error's lines are
  // all its message (a config error's problems under its heading).
  const first = err instanceof StepError ? head : messageLine(clean(message));
  let why = '';
  if (err instanceof StepError) {
    const lines = (err.verdict ? clean(err.verdict).split('\n') : rest.map((l) => l.replace(/^ {2}\| ?/, ''))).map((l) => l.trim()).filter((l) => l && !NOISE.test(l));
    why = err.verdict ? lines.join(' / ') : (lines.filter((l) => SAYS_WHY.test(l)).at(-1) ?? lines.at(-1) ?? '');
  }
  const text = [first, why].filter((t) => t.trim()).join(': ') || 'failed (no reason given)';
  const one = printableLine(text);
  return one.length > max ? `${one.slice(0, max - 1).trimEnd()}…` : one;
}

/**
 * Control characters a terminal acts on (C0 but tab and newline, DEL, C1), found one by one: CONTROL_RUN for runs.
 * ESC and BEL in an app's log line or a commit subject set the terminal's title, clear the screen or move the cursor.
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;
/** Runs of control characters, newlines and tab included, and the Unicode line and paragraph separators. */
// eslint-disable-next-line no-control-regex
const CONTROL_RUN = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;

/** The longest word an error shows whole (a word: a run of characters without white space); a longer one is cut (cutLongWords). */
export const WORD_MAX = 200;

/**
 * `text` with each word longer than WORD_MAX characters (an argument of thousands, a file pasted as one word) cut to its
 * first 60 and last 20 characters around `…[N characters]…`: an error quoting one stays a line to read, not a screen
 * of it. Counted in code points (a pair of surrogates never split). Only for text shown to people: apply it to what is
 * already masked (a secret value cut first would no longer match its mask).
 */
export function cutLongWords(text: string): string {
  return text.replace(new RegExp(`\\S{${WORD_MAX + 1},}`, 'gu'), (word) => {
    const chars = [...word];
    if (chars.length <= WORD_MAX) return word;
    return `${chars.slice(0, 60).join('')}…[${chars.length - 80} characters]…${chars.slice(-20).join('')}`;
  });
}

/**
 * `text` as it may reach a terminal or a job log: each control character that text from outside carries (an app's
 * log line, a commit subject, a host's output, an audit entry) shown as visible text, `\x1b` for ESC, `\x07` for BEL
 * (two lowercase hex digits, C1 ones too: `\x9b`), so it is read, never acted on. Tab and newline stay (lines and
 * columns), and a carriage return before a newline is dropped (a CRLF line end); a lone one is shown (`\x0d`: it
 * would overwrite the line). The one way to make outside text safe for a person's screen: the reporters' lines and the
 * CLI's human output go through it; --json output does not (JSON escapes them itself).
 */
export function showControls(text: string): string {
  return text.replace(CONTROL, (c, at: number) => (c === '\r' && text[at + 1] === '\n' ? '' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/** `text` on one line of printable characters: every run of control characters (a newline too) and spaces as one space, trimmed. */
export function printableLine(text: string): string {
  return text.replace(CONTROL_RUN, ' ').replace(/\s+/g, ' ').trim();
}

/** The last `n` non-empty lines of a text. */
export function tail(text: string, n = 20): string {
  const lines = text.split('\n');
  while (lines.length && lines[lines.length - 1]!.trim() === '') lines.pop();
  return lines.slice(-n).join('\n');
}

/** Errors of ops's own output (markOwnOutput): which stream. */
const ownOutput = new WeakMap<object, string>();

/**
 * Marks `err` as a failure to write ops's own output to `stream` ("stdout", "stderr": core/report.ts guardOutput), so
 * that describeLowLevel never blames it on a host: an EPIPE there is a reader that stopped (`| head`), not a
 * connection the host closed; an ENOSPC, where that output goes (`> /dev/full`).
 */
export function markOwnOutput(err: unknown, stream: string): void {
  if (typeof err === 'object' && err !== null) ownOutput.set(err, stream);
}

/** Whether `err` is a failure to write ops's own output (markOwnOutput). */
export function isOwnOutputError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && ownOutput.has(err);
}

/**
 * What a low-level failure (ssh2, Node's sockets and DNS, the file system) means, in words, with what to do;
 * undefined for an error that is none of these (a bug). The codes are Node's (`err.code`: ECONNRESET...)
 * and ssh2's (`err.level`: client-socket, client-timeout, handshake, protocol; channel open failures).
 */
export function describeLowLevel(err: unknown): { what: string; hint?: string } | undefined {
  if (!(err instanceof Error)) return undefined;
  const e = err as Error & { code?: unknown; level?: unknown; reason?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  const m = e.message;
  const network = 'check the address and port, that sshd runs, and that a firewall lets this machine in';
  const stream = ownOutput.get(err);
  if (stream) return { what: `ops could not write its own output (${stream}: ${code || m})`, hint: code === 'EPIPE' ? 'the program reading it (head, a pager, a closed terminal) stopped reading' : 'check where that output goes (a full disk here, not on the hosts)' };
  if (/Channel open failure/.test(m)) {
    if (/administratively prohibited|open failed|resource shortage/i.test(m) || e.reason === 1 || e.reason === 4)
      return { what: `sshd refused to open a session on the connection (${m.replace(/^\(SSH\) /, '')})`, hint: 'ops needs 1 session per connection: check MaxSessions in the host\'s /etc/ssh/sshd_config (at least 1), then reload sshd' };
    return { what: m.replace(/^\(SSH\) /, ''), hint: 'sshd refused a session on the connection: check its log on the host (journalctl -u ssh), then try again' };
  }
  if (/Packet length \d+ exceeds max length/.test(m))
    return { what: 'the SSH stream was corrupted: text printed by the login shell (~/.bashrc, /etc/bash.bashrc) got mixed into a binary protocol', hint: 'move what prints text under the interactive guard of ~/.bashrc (`case $- in *i*) ;; *) return;; esac` comes first)' };
  if (code === 'ECONNREFUSED') return { what: 'connection refused (nothing listens on that port, or a firewall rejects it)', hint: network };
  if (code === 'ETIMEDOUT' || /Timed out while waiting for handshake/.test(m)) return { what: 'no answer before the timeout', hint: network };
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return { what: 'no route to the host', hint: network };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || e.level === 'client-dns') return { what: 'the name does not resolve (DNS)', hint: 'check the address in the environment, and this machine\'s DNS' };
  // Closed before any SSH was spoken: also what a port of another server does (a web server answers an SSH greeting 400 and closes).
  if (/Connection lost before handshake/.test(m)) return { what: 'the connection was closed before the SSH handshake', hint: "check that the port is sshd's (hosts[].port: not a web server's or another service's), that sshd runs and lets this machine in (MaxStartups, fail2ban, a firewall); then try again" };
  if (code === 'ECONNRESET' || code === 'EPIPE') return { what: 'the connection was closed by the other end', hint: 'the host may have rebooted, or sshd or a firewall dropped the connection: try again' };
  if (/^No response from server/.test(m)) return { what: 'the connection closed before the host answered', hint: 'the host may have rebooted, or sshd or a firewall dropped the connection: try again' };
  if (e.level === 'client-timeout' || /Keepalive timeout/.test(m)) return { what: 'the host stopped answering (no reply to SSH keepalives)', hint: 'check the host and the network between; then try again' };
  if (/^Not connected/.test(m)) return { what: 'the SSH connection was already closed', hint: 'the host may have rebooted, or sshd or a firewall dropped the connection (or sshd\'s process for it was killed): try again' };
  if (e.level === 'handshake' || /^Handshake failed/.test(m)) return { what: `the SSH handshake failed: ${m}`, hint: 'the host\'s sshd and ops have no algorithm in common, or it is not an SSH server' };
  if (e.level === 'protocol' || e.level === 'client-socket') return { what: `SSH protocol error: ${m}`, hint: 'try again; if it keeps happening, check the network between and the host\'s sshd log (journalctl -u ssh)' };
  if (code === 'ENOSPC' || code === 'EDQUOT') return { what: `no space left on this machine (${m})`, hint: 'free disk space here (not on the hosts) and try again' };
  if (code === 'EACCES' || code === 'EPERM') return { what: `permission denied on this machine (${m})`, hint: 'check the permissions of that path here (not on the hosts)' };
  if (code === 'ENOENT') return { what: `a file is missing on this machine (${m})`, hint: 'check that path here (not on the hosts): a key file, the project\'s directory' };
  return undefined;
}

/**
 * A local file that cannot be read or written, as an OpsError saying what was wrong with `path` (shown as given)
 * and how to fix it, from the Node.js error code: a directory, a missing file or parent directory, no permission, a
 * loop of symbolic links. A path that is wrong as given (a directory, missing, a file for a directory, a loop, too
 * long) is an InputError (exit 2: usage, nothing tried); permission denied and a file already there are the state of
 * the world (exit 1).
 */
export function fileError(err: unknown, path: string, action: 'read' | 'write', expected = 'a file'): OpsError {
  const code = (err as NodeJS.ErrnoException | null)?.code ?? '';
  const fail = `cannot ${action} ${path}`;
  if (code === 'EISDIR') {
    // a directory named as a file (environment.yml made by `mkdir -p`): it is in the file's place, not a folder to put one in
    const named = /\.[A-Za-z0-9]{1,5}$/.test(path.replace(/\/+$/, ''));
    return new InputError(`${fail}: it is a directory, not ${expected}`, named ? `a directory stands where ${expected} goes: move it aside or remove it (rmdir ${quote(path)} when empty), then write the file there` : `give the path of ${expected} (e.g. ${path.replace(/\/+$/, '')}/<name>)`);
  }
  if (code === 'ENOENT' && action === 'read') return new InputError(`${fail}: no such file`, 'check the path (a relative one starts from the directory the command was run from)');
  if (code === 'ENOENT') return new InputError(`${fail}: its directory ${dirname(path)} does not exist`, `create it first (mkdir -p ${dirname(path)}), or choose a file in an existing directory`);
  if (code === 'ENOTDIR') return new InputError(`${fail}: a part of the path is a file, not a directory`, 'check the path');
  if (code === 'EACCES' || code === 'EPERM') return new OpsError(`${fail}: permission denied`, `check the permissions of ${path} and its directory`);
  if (code === 'EEXIST') return new OpsError(`${fail}: it already exists`);
  if (code === 'ELOOP') return new InputError(`${fail}: it is a symbolic link that leads to itself (a loop of links, or too many in a row)`, `fix or remove it (ls -l ${path} shows where it points)`);
  if (code === 'ENAMETOOLONG') return new InputError(`${fail}: the path is too long`, 'check the path');
  return new OpsError(`${fail}: ${code || (err instanceof Error ? err.message : String(err))}`);
}

/**
 * Whether a user's file (a secrets file, .sops.yaml, environment.yml, a key file, an initdata file) is there, for code
 * that treats "not there" as a case of its own: false only when nothing is at `path` (ENOENT; a dangling symlink points
 * at nothing, so it is nothing there too). Anything that is there but cannot be read is never taken as absent (which
 * would say "no secrets file" of a broken one): it throws an OpsError naming `shown` (the path as the user knows it)
 * and what to fix: a symlink loop, a directory where `expected` ("a file", "an age key file") should be, a part of
 * the path that is a file, a directory that may not be searched. `given`: the user named this path (a command's
 * argument or option), so a directory there is one they meant to pass, not one standing where a project's file goes:
 * told to give a file, the first files in it named, not to move or remove it. Reads only that directory's names on
 * that error, and changes nothing.
 */
export function userFileExists(path: string, shown: string = path, expected = 'a file', given = false): boolean {
  try {
    if (!statSync(path).isDirectory()) return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw fileError(e, shown, 'read', expected);
  }
  if (given) {
    let files: string[] = [];
    try {
      files = readdirSync(path, { withFileTypes: true }).filter((d) => d.isFile() && !d.name.startsWith('.')).map((d) => d.name).sort();
    } catch {
      // unreadable: the hint names none
    }
    const dir = shown.replace(/\/+$/, '');
    const some = files.slice(0, 5).map((f) => quote(`${dir}/${f}`)).join(', ');
    throw new InputError(
      `cannot read ${shown}: it is a directory, not ${expected}`,
      files.length ? `give one file in it: ${some}${files.length > 5 ? `, ... (${files.length} files)` : ''}` : `give the path of ${expected}; this directory holds no file`,
    );
  }
  throw fileError(Object.assign(new Error('EISDIR'), { code: 'EISDIR' }), shown, 'read', expected);
}

/** An error out of the SSH library, a socket or the network, translated: what happened on which host. */
export class TransportError extends OpsError {
  override name = 'TransportError';
}

/**
 * A step's connection lost while the step ran (or as it began): what the step did on the host is not known here, and a
 * step that protects itself (a switch) goes on there without it: the host is asked (LockedRun.settleLost).
 */
export class ConnectionLostError extends TransportError {
  override name = 'ConnectionLostError';
}

/** translateError for a step whose connection was lost: a ConnectionLostError (an OpsError of ours passes through). */
export function connectionLost(err: unknown, host: string, where: string): OpsError {
  const e = translateError(err, host, where);
  return e instanceof TransportError ? Object.assign(new ConnectionLostError(e.message, e.hint), { cause: e.cause }) : e;
}

/**
 * `err` as an OpsError saying what happened `where` ("step \"build\" on web1", "connecting to web1"), which
 * names `host`; OpsErrors pass through unchanged.
 */
export function translateError(err: unknown, host: string, where: string): OpsError {
  if (err instanceof OpsError) return err;
  const known = describeLowLevel(err);
  if (known) return new TransportError(`${where}: ${known.what}`, known.hint);
  const message = err instanceof Error ? err.message : String(err);
  // A message that already names the host says what happened where.
  if (message.includes(host)) return new TransportError(message);
  // Kept as its cause: errorParts says how to see its stack (debugAdvice, for where the error is printed), and shows it.
  return Object.assign(new TransportError(`${where} failed: ${message}`, 'if this keeps happening, report it'), { cause: err });
}

/**
 * How to see an internal error's stack (errorParts): in a GitHub Actions job, "Re-run jobs → Enable debug logging"
 * (RUNNER_DEBUG=1, GitHub docs "Enabling debug logging"), as the workflow's env (OPS_DEBUG) is the default branch's,
 * not the user's to edit; elsewhere OPS_DEBUG=1.
 */
function debugAdvice(processEnv: NodeJS.ProcessEnv): string {
  return processEnv.GITHUB_ACTIONS === 'true' ? 're-run the job with debug logging (Re-run jobs, then "Enable debug logging")' : 'run again with OPS_DEBUG=1';
}

/**
 * Render an error for a terminal or a job log: one message and a hint, never a stack trace. OpsErrors as
 * they are; low-level errors (sockets, SSH) in words; anything else is a bug, said so, with its stack only
 * when OPS_DEBUG is set (in a GitHub Actions job, also RUNNER_DEBUG=1: a re-run with debug logging).
 */
export function formatError(err: unknown, processEnv: NodeJS.ProcessEnv = process.env): string {
  const { message, hint } = errorParts(err, processEnv);
  return hint ? `${message}\n  hint: ${hint}` : message;
}

/**
 * formatError's two parts: what went wrong (an internal error's stack appended with OPS_DEBUG) and, when there is
 * one, how to fix it. For a `--json` failure document (scripts/cli.ts).
 */
export function errorParts(err: unknown, processEnv: NodeJS.ProcessEnv = process.env): { message: string; hint?: string } {
  // What debugAdvice tells to set: OPS_DEBUG, or in a GitHub Actions job RUNNER_DEBUG=1 (a re-run with debug logging).
  const debugOn = Boolean(processEnv.OPS_DEBUG || (processEnv.GITHUB_ACTIONS === 'true' && processEnv.RUNNER_DEBUG === '1'));
  if (err instanceof OpsError) {
    // An unexpected error said in words (translateError) keeps it as its cause: how to see its stack, or the stack.
    const unexpected = err.cause instanceof Error && !(err.cause instanceof OpsError) ? err.cause : undefined;
    const more = !unexpected ? '' : debugOn ? (unexpected.stack ? `\n${unexpected.stack}` : '') : ` (${debugAdvice(processEnv)} to see where it happened)`;
    return { message: err.message + (err.hint ? '' : more), ...(err.hint && { hint: err.hint + more }) };
  }
  const debug = debugOn && err instanceof Error && err.stack ? `\n${err.stack}` : '';
  const known = describeLowLevel(err);
  if (known) return { message: known.what + (known.hint ? '' : debug), ...(known.hint && { hint: known.hint + debug }) };
  const message = err instanceof Error ? err.message || err.name : String(err);
  return { message: `internal error: ${message}`, hint: `this is a bug in ops-pipeline: ${debugAdvice(processEnv)} to see where it happened, and report it` + debug };
}

/**
 * Marks ErrorFields made of an InputError (inputFailure): a symbol key, so that a spread (`{ ...fields }`, a host's
 * result copied) keeps it while JSON leaves it out; what a per-host report's exit code is decided by (scripts/cli.ts
 * reportExitCode), the host's error object itself being gone by then.
 */
const INPUT_FAILURE = Symbol('InputError');

/** An error as a `--json` document gives it: what went wrong, and how to fix it when there is a hint; one line each. */
export interface ErrorFields {
  error: string;
  hint?: string;
  /** Set when the error was an InputError (inputFailure); never in JSON. */
  [INPUT_FAILURE]?: true;
}

/**
 * errorParts as `--json` fields, each on one line (messageLine: a config error's problems after its heading, a step's
 * output after its first line): the one shape of an error in --json output, a failure's document's and a host's.
 * Those of an InputError are marked so (inputFailure).
 */
export function errorFields(err: unknown, processEnv: NodeJS.ProcessEnv = {}): ErrorFields {
  const { message, hint } = errorParts(err, processEnv);
  return { error: messageLine(message), ...(hint && { hint: messageLine(hint) }), ...(err instanceof InputError && { [INPUT_FAILURE]: true as const }) };
}

/**
 * Whether `result` (a host's result in a per-host report: `ops ping`, `status`, `certs`, `releases`...) holds the
 * ErrorFields of an InputError (errorFields): that host failed on something the command line or the project's files
 * must change (a placeholder address, a key file given that does not exist), not on the state of the host.
 */
export function inputFailure(result: object): boolean {
  return (result as ErrorFields)[INPUT_FAILURE] === true;
}

/**
 * One error gathering several (one per host, `errors`): an InputError when any of them is one (the input must change
 * before the whole can succeed: the CLI's usage exit code, as for that error alone), else an OpsError.
 */
export function gatheredError(errors: unknown[], message: string, hint?: string): OpsError {
  return errors.some((e) => e instanceof InputError) ? new InputError(message, hint) : new OpsError(message, hint);
}

/** ErrorFields for a terminal, on one line: the error, then `; hint: …` when there is one. */
export function errorFieldsLine(e: ErrorFields): string {
  return e.hint ? `${e.error}; hint: ${e.hint}` : e.error;
}

/** A host a read-only command could not read, for a terminal: `<host>: cannot be read: <why>`, its hint on the next line. */
export function unreadLine(host: string, e: Partial<ErrorFields>): string {
  return `${host}: cannot be read: ${e.error}${e.hint ? `\n  hint: ${e.hint}` : ''}`;
}

let uncaughtHandler: ((err: unknown) => void) | undefined;
/** What onUncaught masks a message with before printing it: the run's reporter's (maskUncaught), none before there is one. */
let uncaughtRedact: (text: string) => string = (text) => text;

/**
 * Make onUncaught's message pass through `redact` (a reporter's: the run's secret values masked) before it is printed:
 * an error nobody caught (a library's, a bug's) may quote a decrypted value, and its printer is installed before any
 * reporter exists (scripts/ops.ts). scripts/cli.ts sets it as soon as it has the run's reporter.
 */
export function maskUncaught(redact: (text: string) => string): void {
  uncaughtRedact = redact;
}

/**
 * Last line of defence for entry points: an exception or rejection nobody caught (an ssh2 socket error
 * emitted between two steps) is printed as one message, masked (maskUncaught), and the process exits 1; while a run holds locks
 * (core/signals.ts handleFaults: core/ops/locked.ts withLock), the run first stops as on a signal, releasing them.
 */
export function onUncaught(print: (message: string) => void): void {
  // Once per process: an entry point run again in it (the tests' in-process actions) replaces its printer.
  if (uncaughtHandler) {
    process.off('uncaughtException', uncaughtHandler);
    process.off('unhandledRejection', uncaughtHandler);
  }
  const handle = (uncaughtHandler = (err: unknown) => {
    // ops's own output failing never ends a run half-way (core/report.ts guardOutput decides what it does).
    if (isOwnOutputError(err)) return;
    // its message may quote a host's words: shown as the reporters show them
    print(showControls(uncaughtRedact(formatError(err))));
    // Exiting here would leave the run's locks held and its steps running: the run stops, then exits.
    if (stopRunsOnFault(err)) return;
    process.exit(1);
  });
  process.on('uncaughtException', handle);
  process.on('unhandledRejection', handle);
}

/** Fields of a failed operation's result, per error (withResult). */
const failedResults = new WeakMap<object, Record<string, unknown>>();

/**
 * Attaches to `e` (an error an operation throws) the fields of the operation's result that apply to its failure (a
 * deploy's release attempted, the one live before and now, the reason), for `--json` (scripts/cli.ts prints them beside
 * the error, as the success's document has them). Fields attached before (nearer the failure) win, unless `over` (an
 * operation's last word, completing what was attached before: core/ops/locked.ts failedRun). Returns `e`.
 */
export function withResult<E>(e: E, fields: Record<string, unknown>, over = false): E {
  if (typeof e === 'object' && e !== null) failedResults.set(e, over ? { ...failedResults.get(e), ...fields } : { ...fields, ...failedResults.get(e) });
  return e;
}

/** The result fields attached to `e` (withResult), or undefined. */
export function failedResult(e: unknown): Record<string, unknown> | undefined {
  return typeof e === 'object' && e !== null ? failedResults.get(e) : undefined;
}
