// How a step becomes one remote command: the command line (sudo, timeout) and the script fed on stdin.
// Both transports use this, so what the recording fake records is exactly what a host would run.
//
// OpenSSH runs every command through the login's shell (`$SHELL -c COMMAND`), and bash reads ~/.bashrc
// (and /etc/bash.bashrc) when sshd starts it, interactive or not: whatever those print before their
// interactive guard lands in our stdout and stderr, ahead of the script. So the script's first act is to
// print START_MARKER on both streams, and the transport drops everything before it (keeping it, to say so).
import { cmd, quote } from '../shell.ts';
import { DEFAULT_STEP_TIMEOUT, REPORT_PREFIX, type Step } from './types.ts';

/**
 * The line a script prints first on stdout and stderr: what comes before it is the login shell's. In the command line
 * sshd gets (STEP_BOOT, sshCommand) it and the refusal lines are printf's arguments, never in a format after `\n`: a
 * start-up file that echoes that command with its escapes read (an `exec` alias or function running `echo -e`, tcsh's
 * echo) then prints no line that reads as ops's own.
 */
export const START_MARKER = '@ops-start';

/** The line STEP_BOOT prints on stderr, before START_MARKER, when it stopped the ssh-agent the login's start-up files started. */
export const AGENT_STOPPED = '@ops-agent-stopped';

/**
 * The line STEP_BOOT prints first on stderr, before START_MARKER: `@ops-login-shell <$SHELL>`, the login's shell as sshd
 * set it (the one that ran the command): what ops names the start-up files by when the login misbehaves (~/.zshenv for
 * zsh, not ~/.bashrc).
 */
export const LOGIN_SHELL_PREFIX = '@ops-login-shell ';

/**
 * The line that follows START_MARKER on stdout when the guard (stepInput) refused to run the step: `@ops-refused
 * <why> <detail>`, `why` one of `shell` (the script is read by a shell other than the one ops's command line started:
 * `detail` its $0), `stdin` (a start-up file read the script's first line), `merged` (fd 1 and fd 2 are one pipe),
 * `limit` (the open files or processes limit is under 1024, the stack's under 8 MB, or a file size, CPU time, virtual memory or data
 * limit is set: `detail` the ulimit command and its value), `stderr` (fd 2 is not the channel's: `detail` where it goes) or `stdout` (fd 1 is a
 * file: `detail` which; this line then comes on stderr) or `input` (the script's standard input is not the session's,
 * STEP_BOOT: `detail` where it goes, or `closed`).
 */
export const REFUSED_PREFIX = '@ops-refused ';

/**
 * What the login's environment may hold that would change how bash runs a step's script (`set -o noclobber; export
 * SHELLOPTS` in ~/.bashrc: every upload's `>` fails; BASH_ENV: a file bash runs before the script; BASH_XTRACEFD=1 or 2:
 * the prelude's unset would close that descriptor, the step's stdout or stderr): env(1) drops them.
 */
const LOGIN_SHELL_ENV = ['BASH_ENV', 'ENV', 'SHELLOPTS', 'BASHOPTS', 'BASH_XTRACEFD'];

/**
 * GNU gettext's list of languages for messages (LANGUAGE=de_DE:de in /etc/default/locale, which sshd's pam_env exports,
 * or in a ~/.bashrc): it outranks LC_ALL for messages unless the locale is plain C (C.UTF-8 is not), so sudo's and
 * timeout's errors, which ops reads to give the fix (sudoHint), and bash's own would come in that language: env(1)
 * drops it, with LOGIN_SHELL_ENV.
 */
const MESSAGES_ENV = ['LANGUAGE'];

/** What ops's command line (and only it) puts in the environment of the shell that reads the script: the guard checks it. */
const STEP_ENV = 'OPS_STEP=1';

/**
 * For each bash of the command line (STEP_BOOT's and the script's): bash reads ~/.bashrc and /etc/bash.bashrc itself,
 * even non-interactive, when it takes itself for the one sshd started (SSH_CLIENT set, or its stdin a socket) and its
 * shell level is under 2; the login shell's `exec` leaves the level where it was (bash lowers SHLVL before an exec),
 * and sudo drops it. Without it the start-up files ran again in each (a second ssh-agent, a second `read` of the
 * script), and under sudo root's or the app user's own.
 */
const NOT_TOP_LEVEL = 'SHLVL=1';

/**
 * The PATH every step starts with (Debian's sudo secure_path), set by commandLine for sudo and, after it, for the script: a directory the
 * login put first (`PATH=~/bin:$PATH` in ~/.bashrc, holding a `sudo`, `timeout` or `python3` of its own) runs none of
 * ops's commands. App commands put the configured runtimes and the venv ahead of it (core/steps/app.ts).
 */
export const STEP_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The commands ops's command line runs itself, by the paths Debian installs them at (`dpkg -S`: sudo's /usr/bin/sudo,
 * coreutils' /usr/bin/timeout and /usr/bin/env; util-linux's /usr/bin/flock, which the step scripts name so too), on
 * Debian 11 and 12 alike: STEP_PATH and sudo's secure_path put /usr/local/bin first, so a wrapper or shadow of the same
 * name there (a `timeout` that logs, a `sudo` that prints a banner) ran in their place, and what it printed was blamed on
 * the login's start-up files. A host without one is told which package to install (SshRemote's missingCommand).
 */
export const HOST_COMMANDS = { sudo: '/usr/bin/sudo', timeout: '/usr/bin/timeout', env: '/usr/bin/env', flock: '/usr/bin/flock' } as const;

/**
 * The proxy a host reaches the package indexes through (sudoers' `env_keep += "http_proxy https_proxy no_proxy"`,
 * Debian's way for a host behind one): kept, as it changes only the route, not what is installed (lockfiles, hashes).
 */
const PROXY_ENV = ['http_proxy', 'https_proxy', 'no_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY'];

/**
 * The variables a step keeps from the environment it was started in; every other one is unset by the prelude. What a
 * host's login leaves there (NODE_ENV=production or npm_config_omit=dev: npm ci then leaves out the build's devDependencies;
 * PIP_*, UV_*, VIRTUAL_ENV, PYTHONPATH, NODE_OPTIONS, GIT_DIR, TMPDIR...: exported by ~/.bashrc for a login step, kept
 * by sudoers' env_keep or `!env_reset`, read from /etc/environment by sudo's pam_env on Debian 11) must not change what
 * a step does: a deploy does the same on every host. Kept: PATH (STEP_PATH, set by commandLine; sudo's secure_path), who runs it (sudo sets HOME, USER, LOGNAME for the app user
 * and root; SUDO_* name the login), the connection (SSH_CONNECTION, SSH_ORIGINAL_COMMAND: read by hostFacts), ops's own.
 * What the app is meant to have is set by the step itself (appEnvironment, the release's environ).
 */
const KEPT_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'SUDO_USER', 'SUDO_UID', 'SUDO_GID', 'SUDO_COMMAND', 'SSH_CONNECTION', 'SSH_ORIGINAL_COMMAND', 'OPS_STEP', 'OPS_CONNECTION', ...PROXY_ENV];

/**
 * Removes the functions the login's environment exported (export -f echo cd in ~/.bashrc, imported by bash from
 * BASH_FUNC_*): none of them stands in for a command of ops's. One named unset, builtin, command or compgen would stand
 * in for the very commands that remove them (bash looks functions up before builtins): in POSIX mode, which assigning
 * POSIXLY_CORRECT turns on (an assignment, looked up nowhere), unset is a special builtin, found before any function.
 * Bash only (another shell imports none); `case`, a reserved word, is no command either. Function names are single
 * words: the split is the point. Unset, an exported function leaves the environment too: a bash exec'd next has none.
 */
const UNSET_FUNCTIONS = 'case ${BASH_VERSION-} in ?*) POSIXLY_CORRECT=1; unset -f unset builtin command compgen; unset POSIXLY_CORRECT; builtin unset -f $(builtin compgen -A function) ;; esac';

/**
 * How sshCommand's command begins, after its `exec`: a line of the login shell's output that holds it is that shell's
 * trace of ops's own command (`set -x` in ~/.bashrc: xtrace, on stderr, PS4's `+ ` before it; zsh's `+zsh:1> ` and
 * no `exec`), not text its start-up files print.
 */
export const COMMAND_START = '/usr/bin/env -u BASH_ENV -u ENV ';

/** The line STEP_BOOT prints on stderr, before START_MARKER, when it stopped the D-Bus session bus the login's start-up files started. */
export const BUS_STOPPED = '@ops-bus-stopped';

/**
 * STEP_BOOT's stop of the daemons a login's start-up files start for every session, each as `pid:command:line`: the
 * ssh-agent SSH_AGENT_PID names (`eval $(ssh-agent)`), and the D-Bus session bus of dbus-launch (`eval $(dbus-launch
 * --sh-syntax)`, which exports only its address, unix:path=/tmp/dbus-…: the dbus-daemon of this login run from this
 * connection, SSH_CONNECTION in its environment; DBUS_SESSION_BUS_PID when exported, `export $(dbus-launch)`). Each
 * stopped when it is that command and started after this process's login shell (start times: field 22 of stat, the 20th
 * after the command name; the fields there are letters and numbers: split, nothing to glob), saying so (AGENT_STOPPED,
 * BUS_STOPPED). A bus of systemd's (unix:path=/run/user/…) is the login's own: never looked for.
 */
const SESSION_DAEMONS =
  ` ops_d="\${SSH_AGENT_PID-}:ssh-agent:${AGENT_STOPPED} \${DBUS_SESSION_BUS_PID-}:dbus-daemon:${BUS_STOPPED}";` +
  ` case \${SSH_CONNECTION:+x}\${DBUS_SESSION_BUS_ADDRESS-} in xunix:*=/tmp/dbus-*) for ops_p in /proc/[0-9]*; do` +
  ` [ -O "$ops_p" ] && read -r ops_c 2>/dev/null < "$ops_p/comm" && [ "$ops_c" = dbus-daemon ] && mapfile -d "" ops_e 2>/dev/null < "$ops_p/environ"` +
  ` && case " \${ops_e[*]} " in *" SSH_CONNECTION=\${SSH_CONNECTION-} "*) ops_d="$ops_d \${ops_p#/proc/}:dbus-daemon:${BUS_STOPPED}" ;; *) false ;; esac; done ;; esac;` +
  ` read -r ops_s < "/proc/$$/stat"; ops_s=(\${ops_s##*) }); for ops_x in $ops_d; do ops_p=\${ops_x%%:*}; ops_x=\${ops_x#*:};` +
  ` if [ "\${ops_p:-0}" -gt 1 ] 2>/dev/null && read -r ops_c 2>/dev/null < "/proc/$ops_p/comm" && [ "$ops_c" = "\${ops_x%%:*}" ]` +
  ` && read -r ops_a 2>/dev/null < "/proc/$ops_p/stat" && ops_a=(\${ops_a##*) }) && [ "\${ops_a[19]}" -ge "\${ops_s[19]}" ]` +
  ` && kill "$ops_p" 2>/dev/null; then printf "%s\\n" "\${ops_x#*:}" >&2; fi; done;`;

/**
 * The step's first process (commandLine: a bash -c the login shell execs, so the login shell's own pid, with its
 * environment), before sudo: it runs the rest of the command line (`"$@"`: sudo, timeout, env, bash -s, which reads the
 * script from its standard input) when that input is the session's (a pipe or a socket; a file where a test feeds it).
 * A start-up file that took it away (`exec </dev/null` in ~/.bashrc, so that nothing a session starts waits on its
 * input; `exec <&-`) would have bash read nothing and end at once with exit code 0, as if the step had run: refused,
 * `input <where fd 0 goes>`. The functions go first (UNSET_FUNCTIONS: they would stand in for `[` and `exec` here), and
 * so never reach bash -s. A daemon the start-up files started for this session, one per step, none ever ended, is
 * stopped (SESSION_DAEMONS): when it started after this process (so after the login shell: one an earlier login
 * started, that keychain reuses, is left alone); its line (AGENT_STOPPED, BUS_STOPPED) on stderr says so, before the
 * start line.
 */
const STEP_BOOT =
  `${UNSET_FUNCTIONS};` +
  ` printf "${LOGIN_SHELL_PREFIX}%s\\n" "\${SHELL-}" >&2;` +
  SESSION_DAEMONS +
  ` if [ -p /dev/fd/0 ] || [ -S /dev/fd/0 ] || [ -f /dev/fd/0 ]; then exec "$@"; fi;` +
  // Where fd 0 goes, looked at before a command substitution's pipe could take a closed fd 0.
  ` ops_in=closed; if [ -e /dev/fd/0 ]; then ops_in=$(readlink /proc/$$/fd/0 2>/dev/null || echo unknown); fi;` +
  ` printf "\\n%s\\n%sinput %s\\n" ${START_MARKER} ${quote(REFUSED_PREFIX)} "$ops_in"; exit 125`;

/**
 * Lines sent ahead of the script: they remove the functions the login's environment exported (whatever their names),
 * then check the script is read as ops sent it, or print START_MARKER and why not
 * (REFUSED_PREFIX) and exit 125 before anything is done. A login shell's start-up file (~/.bashrc run for sshd's
 * `$SHELL -c`) that `exec`s another shell has that shell read our stdin in place of sudo/timeout/bash: no OPS_STEP.
 * One that reads stdin (`read`, up to three lines) takes our first line: no ops_line1. One that redirects stderr (`exec 2>>file`)
 * leaves the step's errors unseen: fd 2 is then not a pipe or socket while fd 1 is. One that sends stdout to a file
 * (`exec >>file`, `exec >/dev/null`) would have the script run unseen: fd 1 is then a file (the refusal on stderr; a pipe
 * elsewhere the transport finds: the start line on stderr alone). One that sends both to one place (`exec >&2`, `exec >
 * >(logger) 2>&1`): fd 1 and fd 2 are then one pipe. One that sets a resource limit (ulimit) a deploy fails under.
 * POSIX sh: the wrong shell may be dash or zsh.
 */
export const stepGuard = [
  'ops_line1=1',
  // Lines a start-up file may read (one `read` a line) with the guard still there to see ops_line1 missing.
  ':',
  ':',
  // Here too: the shell that reads the script may be one a start-up file exec'd (no STEP_BOOT before it).
  '# shellcheck disable=SC2046',
  UNSET_FUNCTIONS,
  // (with the login's $SHELL on stderr, as STEP_BOOT, which did not run, would have said it: the files to name are its)
  `if [ "\${OPS_STEP-}" != 1 ]; then printf '${LOGIN_SHELL_PREFIX}%s\\n' "\${SHELL-}" >&2; printf '\\n${START_MARKER}\\n${REFUSED_PREFIX}shell %s\\n' "$0"; exit 125;` +
    ` elif [ "\${ops_line1-}" != 1 ]; then printf '\\n${START_MARKER}\\n${REFUSED_PREFIX}stdin\\n'; exit 125;` +
    // stdout closed (exec >&-) or stderr closed (exec 2>&-): looked at before any command substitution, whose pipe
    // would take the closed descriptor's number. The refusal goes to the other stream.
    ` elif [ ! -e /dev/fd/1 ]; then printf '\\n${START_MARKER}\\n${REFUSED_PREFIX}stdout closed\\n' >&2; exit 125;` +
    ` elif [ ! -e /dev/fd/2 ]; then printf '\\n${START_MARKER}\\n${REFUSED_PREFIX}stderr closed\\n'; exit 125;` +
    // stdout to a file (exec >>file, or >/dev/null): the refusal goes to stderr, the channel's still.
    ` elif [ -f /dev/fd/1 ] || [ "$(readlink /proc/$$/fd/1 2>/dev/null)" = /dev/null ]; then printf '\\n${START_MARKER}\\n${REFUSED_PREFIX}stdout %s\\n' "$(readlink /proc/$$/fd/1 2>/dev/null || echo unknown)" >&2; exit 125;` +
    // stdout and stderr one pipe (exec >&2, exec 2>&1, exec > >(logger) 2>&1): sshd gives each its own, so one was sent
    // to the other: its reports lost on stderr, or errors mixed into them. Refused on that pipe (when it is logger's,
    // nowhere ops sees: exit 125 alone).
    ` elif [ /dev/fd/1 -ef /dev/fd/2 ]; then printf '\\n${START_MARKER}\\n${REFUSED_PREFIX}merged\\n'; exit 125;` +
    ` elif { [ -p /dev/fd/1 ] || [ -S /dev/fd/1 ]; } && ! { [ -p /dev/fd/2 ] || [ -S /dev/fd/2 ]; }; then printf '\\n${START_MARKER}\\n${REFUSED_PREFIX}stderr %s\\n' "$(readlink /proc/$$/fd/2 2>/dev/null || echo unknown)"; exit 125; fi`,
  // A limit a deploy fails under, refused before anything is done: `ulimit -n 64`, `ulimit -f 1000` in ~/.bashrc (bash
  // sets the hard limit too, sudo keeps it) would fail npm ci or an upload half-way (EMFILE, SIGXFSZ). Where it was
  // set, up the chain of parents: `sudo <user>` after the value when the process that ran sudo (the login's side) does
  // not have it: sudo's own PAM session set it for the user the step runs as (Debian's /etc/pam.d/sudo runs
  // pam_limits, reading limits.conf for that user: a line naming it, its group, or `*` with none for the login);
  // `session` when the session's sshd process (`sshd: <login>@notty`; sshd-session from OpenSSH 9.8) has it already:
  // set before the login shell began (pam_limits' /etc/security/limits.conf, sshd's service); else the login shell's
  // start-up files. /proc/PID/limits is in bytes where ulimit counts KiB (-s, -f, -v, -d).
  String.raw`ops_refuse_limit() {
  ops_v=$(ulimit -"$1"); ops_from=''; ops_u=1024; ops_p=$$; ops_sudo=''
  case $1 in n) ops_row='Max open files' ops_u=1 ;; u) ops_row='Max processes' ops_u=1 ;; t) ops_row='Max cpu time' ops_u=1 ;; s) ops_row='Max stack size' ;; f) ops_row='Max file size' ;; v) ops_row='Max address space' ;; *) ops_row='Max data size' ;; esac
  # ops_has PID: whether that process has the limit (its soft one). A row's name is three words but for "Max
  # processes": its soft limit then in the third field.
  ops_has() {
    while read -r ops_x ops_y ops_z ops_s _; do
      case "$ops_x $ops_y $ops_z $ops_s" in "$ops_row $((ops_v * ops_u))" | "$ops_row $((ops_v * ops_u)) "*) return 0 ;; esac
    done 2>/dev/null < "/proc/$1/limits"
    return 1
  }
  while [ "$ops_p" -gt 1 ] 2>/dev/null && read -r ops_c 2>/dev/null < "/proc/$ops_p/comm"; do
    case $ops_c in
      sshd | sshd-session) ! ops_has "$ops_p" || ops_from=' session'; break ;;
      # sudo itself (and its monitor, with use_pty) runs with limits of its own making: the one that ran it is asked.
      sudo) ops_sudo=1 ;;
      *) if [ "$ops_sudo" = 1 ]; then ops_sudo=2; if [ -r "/proc/$ops_p/limits" ] && ! ops_has "$ops_p"; then ops_from=" sudo $(id -un 2>/dev/null || echo '?')"; break; fi; fi ;;
    esac
    ops_p=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$ops_p/status" 2>/dev/null)
  done
  printf '\n${START_MARKER}\n${REFUSED_PREFIX}limit ulimit -%s %s%s\n' "$1" "$ops_v" "$ops_from"; exit 125
}`,
  'if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 1024 ]; then ops_refuse_limit n; fi',
  // Processes under 1024 (`ulimit -u 100` in ~/.bashrc, `* hard nproc 200` in limits.conf, a hardening guide's): it
  // counts every process and thread of the user on the host, the live and the previous slot's programs included, and
  // sudo keeps it for the app user (pam_limits sets only the items limits.conf names), so a build's threads (Node.js
  // starts about ten, esbuild and uv one or more per core) fail to start half-way ("fork: Resource temporarily
  // unavailable", "pthread_create"), or a new slot's programs cannot start.
  'if [ "$(ulimit -u)" != unlimited ] && [ "$(ulimit -u)" -lt 1024 ]; then ops_refuse_limit u; fi',
  // A stack under Linux's 8 MB (`ulimit -s 256`): V8 sizes Node.js's JavaScript stack at about 1 MB whatever the limit,
  // and glibc gives each thread a stack of the limit's size, so a build's deep parse ends in SIGSEGV, not an error.
  'if [ "$(ulimit -s)" != unlimited ] && [ "$(ulimit -s)" -lt 8192 ]; then ops_refuse_limit s; fi',
  // Any file size (-f), CPU time (-t: a build killed once it used that many seconds), virtual memory (-v: Node.js
  // reserves more for WebAssembly than a few GB allow, "WebAssembly.instantiate(): Out of memory") or data (-d: the
  // heap and every private writable mapping, Node.js's and Python's, count against it) limit, likewise.
  'for ops_l in f t v d; do if [ "$(ulimit -$ops_l)" != unlimited ]; then ops_refuse_limit $ops_l; fi; done',
].join('\n');

/** Functions every step script may use. Kept small: they are sent with every step. */
export const scriptPrelude = [
  // The step's locale first, and kept through the unsets: with LC_ALL unset, bash sets each category again from what is
  // left, and warns on stderr for a locale the host lacks (fish exports LC_CTYPE=en_US.UTF-8 itself; a ~/.bashrc's
  // export LC_MESSAGES=...), text ops would blame on the login shell.
  'export LC_ALL=C.UTF-8',
  // The step's environment: KEPT_ENV of the one it was started in (a readonly variable stays: unset says so before
  // the start marker, where the transport ignores it).
  `for ops_v in $(builtin compgen -e); do case $ops_v in ${[...KEPT_ENV, 'LC_ALL'].join('|')}) ;; *) builtin unset "$ops_v" ;; esac; done; builtin unset ops_v`,
  // The leading newline ends whatever line the login shell left unfinished.
  `printf '\\n${START_MARKER}\\n'; printf '\\n${START_MARKER}\\n' >&2`,
  'set -euo pipefail',
  'umask 022', // files that must stay private (.env, keys) are created with explicit modes
  'export DEBIAN_FRONTEND=noninteractive',
  '# shellcheck disable=SC2317 # for the step\'s own lines: some report nothing',
  `ops_report() { printf '${REPORT_PREFIX}%s %s\\n' "$1" "\${2:-}"; }`,
  'cd /',
].join('\n');

/**
 * The remote command line for a step. `timeout` runs the script in its own process group and, when
 * the time is up, signals the whole group (children included), then SIGKILLs it 10 s later. `connection` (the
 * transport's id of the connection, letters, digits, `_` and `-`) is put in the script's environment by env(1) as
 * OPS_CONNECTION, so the step's own bash carries it in /proc/PID/environ as well as everything it starts (an
 * `export` inside the script would reach only its children, not a loop of the script itself): whatever a lost
 * connection left running on the host can be found and stopped before its lock is released (connection_pids).
 * OPS_STEP=1 (always): what stepGuard checks, so a script read by another shell is told apart. LOGIN_SHELL_ENV and
 * MESSAGES_ENV: removed.
 * env(1) is named by its path and sets STEP_PATH: the login's PATH chooses none of the commands (a ~/bin/sudo); sudo, timeout
 * and env run by their paths (HOST_COMMANDS): neither does a /usr/local/bin/timeout. It
 * starts STEP_BOOT's bash first, which runs the rest (sudo, timeout, the script's bash) once it has checked the input.
 */
export function commandLine(step: Pick<Step, 'as' | 'timeout'>, login: string, appUser: string, connection?: string): string {
  const seconds = step.timeout ?? DEFAULT_STEP_TIMEOUT;
  if (connection !== undefined && !/^[A-Za-z0-9_-]+$/.test(connection)) throw new Error(`connection id ${JSON.stringify(connection)} is not letters, digits, _ and -`);
  const unset = [...LOGIN_SHELL_ENV, ...MESSAGES_ENV].flatMap((v) => ['-u', v]);
  // --default-signal: a signal the login shell ignored (trap '' PIPE in ~/.bashrc) would stay ignored through every
  // exec, in the script and all it starts (a `while …; do echo; done | head -1` then loops on write errors until the
  // time limit); timeout restores only the ones it handles itself (coreutils 8.31: Debian 11 has 8.32).
  // PATH again after sudo, whose secure_path replaces the one it was given: a sudoers' own (`secure_path` without
  // /usr/sbin: nginx, runuser "not found"; or with ~deploy/bin first: the login's `git` run as root) chooses none of
  // the script's commands.
  const run = [HOST_COMMANDS.timeout, '-k', '10', String(seconds), HOST_COMMANDS.env, '--default-signal', ...unset, `PATH=${STEP_PATH}`, ...(connection ? [`OPS_CONNECTION=${connection}`] : []), STEP_ENV, NOT_TOP_LEVEL, 'bash', '-s'];
  // sudo and timeout speak English, whatever locale the login has (/etc/default/locale): their errors are read
  // (sudoHint, sudoWarningFix) to give the fix.
  // env(1) by its path, with STEP_PATH, finds bash (STEP_BOOT), not in the login's PATH; sudo, timeout and the env after
  // it by their paths (HOST_COMMANDS), not by STEP_PATH or sudo's secure_path (/usr/local/bin first); LOGIN_SHELL_ENV
  // unset for that bash too (and again after sudo: its pam_env may set them).
  const english = [HOST_COMMANDS.env, ...unset, 'LC_ALL=C.UTF-8', `PATH=${STEP_PATH}`, NOT_TOP_LEVEL, 'bash', '-c', STEP_BOOT, 'ops-step'];
  if (step.as === 'app') return cmd(...english, HOST_COMMANDS.sudo, '-n', '-H', '-u', appUser, '--', ...run);
  if (step.as === 'root' && login !== 'root') return cmd(...english, HOST_COMMANDS.sudo, '-n', '-H', '--', ...run);
  return cmd(...english, ...run);
}

/**
 * The command sent to sshd for a step: commandLine, `exec`ed by the login shell, so nothing of that shell runs after it.
 * A start-up file's `trap … EXIT` (~/.bashrc, ~/.zshenv) would otherwise run once the step ended: its text after the
 * step's output, and its `exit 0` turning a failed step into a success.
 */
export function sshCommand(step: Pick<Step, 'as' | 'timeout'>, login: string, appUser: string, connection?: string): string {
  // What follows the exec runs only when `exec` was not the shell's own (a function named exec in ~/.bashrc, which bash
  // calls in its place): it returned. Said as a refusal (EXEC_RETURNED), in words every login shell parses alike
  // (sh, bash, zsh, fish, csh: no $?, &&, ! or newline), with the login's $SHELL as STEP_BOOT would have said it
  // (LOGIN_SHELL_PREFIX; on stdout: csh cannot redirect stderr alone), whose start-up files are to be named.
  return `exec ${commandLine(step, login, appUser, connection)}; printf '%s%s\\n\\n%s\\n%s\\n' '${LOGIN_SHELL_PREFIX}' "$SHELL" '${START_MARKER}' '${EXEC_RETURNED}'; exit 125`;
}

/**
 * The line sshCommand prints after START_MARKER when the login shell's `exec` returned: a function (or alias) of its
 * start-up files stood in for the builtin. Ops's command then ran inside it, or not at all, and its exit code is lost.
 */
export const EXEC_RETURNED = `${REFUSED_PREFIX}exec`;

/**
 * The text sent on stdin: prelude, then the step's own script. OPS_STEP_TIMEOUT is the step's timeout in seconds
 * (commandLine's): with bash's SECONDS, the time the script has left (a critical section is not begun without the
 * time it needs, core/steps/sh/critical.sh).
 */
export function scriptText(step: Step): string {
  return `${scriptPrelude}\n# shellcheck disable=SC2034 # read by critical_begin (core/steps/sh/critical.sh)\nOPS_STEP_TIMEOUT=${step.timeout ?? DEFAULT_STEP_TIMEOUT}\n${step.script.trimEnd()}\n`;
}

/** The last line of the script stepInput sends: the script arrived whole when its text ends with it. */
const SCRIPT_END = '# ops: end of the step';

/**
 * What a transport sends on stdin for `step`: stepGuard, then one line that reads scriptText whole (its exact size in
 * bytes, with `head -c`) and evals it. Why not let `bash -s` read on: bash reads a script from a pipe one byte at a
 * time (a read(2) each, so as not to take what its commands read: bash's input.c), which cost 40-50 ms for a step
 * of 300 KB on a test host, against 11 ms read whole (measured, issue 19). head -c reads no further than it is asked
 * (coreutils' head_bytes), so what follows the script on stdin (an upload's content) stays for the script's own
 * commands, and nothing the script starts can read its text. A script cut short (the connection lost while it was
 * sent) does not end with SCRIPT_END: nothing of it runs.
 */
export function stepInput(step: Step): string {
  const text = `${scriptText(step)}${SCRIPT_END}\n`;
  const bytes = Buffer.byteLength(text, 'utf8');
  // $(...) drops the text's last newline only; ops_script is unset before the script's first command.
  const read = `ops_script=$(head -c ${bytes}) && [ "\${ops_script: -${SCRIPT_END.length}}" = '${SCRIPT_END}' ] || { echo "the step's script arrived cut short (the connection was lost while it was sent): nothing of it ran" >&2; exit 125; }; eval "builtin unset ops_script; $ops_script"`;
  return `${stepGuard}\n${read}\n${text}`;
}

/**
 * An upload as a step whose stdin carries the script, then the file's bytes: bash reads a script from a
 * pipe one byte at a time (it must not swallow what its commands read), so `head -c` gets exactly the
 * content. Written to a private temporary file in the target's directory (mode 0600 from creation), checked
 * for size, given its mode, then renamed over the target: a reader never sees a partial file, a failure
 * (cut connection, full disk) leaves no file behind. The content never appears on a command line. `guard`: shell run
 * first (UploadOptions.guard: the run's lock guard), which may exit before anything is written.
 */
export function uploadStep(remotePath: string, size: number, mode: number, guard?: string): Step {
  const dir = remotePath.replace(/\/[^/]*$/, '') || '/';
  return {
    name: `upload ${remotePath.split('/').pop()}`,
    as: 'login',
    timeout: 600 + Math.ceil(size / 100_000), // at least 100 kB/s
    quiet: true,
    // One line to end with: bash has parsed and run the whole function before the content starts. `guard` runs
    // before it (it reads no stdin: the content stays for head), in braces: the library functions it brings that an
    // upload does not call are not findings (shellcheck reads them as unreachable before the script's last exit).
    script: `${guard ? `# shellcheck disable=SC2317 # the guard's library functions an upload does not call\n{\n${guard}\n}\n` : ''}` + String.raw`ops_upload() {
  # tmp not local: the EXIT trap also runs where set -e ended the script inside this function, out of its scope.
  local got
  tmp=$(mktemp ${quote(`${dir}/.ops-upload.XXXXXX`)})
  trap 'rm -f "$tmp"' EXIT
  head -c ${size} > "$tmp"
  got=$(stat -c %s "$tmp")
  if [ "$got" != ${size} ]; then echo "the upload of ${quote(remotePath)} was cut short: $got of ${size} bytes arrived" >&2; exit 1; fi
  chmod ${mode.toString(8).padStart(4, '0')} "$tmp"
  mv -f "$tmp" ${quote(remotePath)}
  trap - EXIT
}
ops_upload; exit $?`,
  };
}
