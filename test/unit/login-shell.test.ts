// How a step reaches a host through the login's shell (sshd runs `$SHELL -c COMMAND`, and bash sources ~/.bashrc for
// it, interactive or not): start-up files that exec another shell, exit, read stdin or redirect stderr, and login
// shells that run nothing (nologin, false). SshRemote over a connection whose exec runs the command locally the way
// sshd does: the "login shell" with -c, after sourcing the test's ~/.bashrc.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { NodeSSH } from 'node-ssh';
import { NotStartedError, OpsError, sudoHint, sudoNoexec } from '../../core/errors.ts';
import { readFacts } from '../../core/ops/ping.ts';
import { SshRemote, missingCommand } from '../../core/remote/ssh.ts';
import type { Step } from '../../core/remote/types.ts';
import { MemoryReporter } from '../../core/report.ts';

/**
 * A connection whose exec runs the command as sshd would with login shell `shell`: bash sourcing `bashrc` first
 * (what bash does for sshd), or `shell -c COMMAND` for another program. Channels are as ssh2's: data, stderr data,
 * exit, close.
 */
function localConnection(bashrc: string, shell = 'bash', files: Record<string, string> = {}): NodeSSH {
  const dir = mkdtempSync(join(tmpdir(), 'ops-login-'));
  const rc = join(dir, '.bashrc');
  writeFileSync(rc, `${bashrc}\n`);
  // Another shell's start-up files (~/.zshenv, ~/.config/fish/config.fish, ~/.cshrc), read by that shell itself.
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), `${text}\n`);
  }
  // sshd sets SHELL to the login's shell (passwd's), which the shell keeps.
  // SSH_CONNECTION, as sshd sets it: this connection's own (a client port of its own).
  const env = { ...process.env, HOME: dir, SHLVL: '1', SHELL: shell === 'bash' ? '/bin/bash' : shell, SSH_CONNECTION: `10.0.0.9 ${40000 + Math.floor(Math.random() * 20000)} 10.0.0.1 22` };
  const conn = Object.assign(new EventEmitter(), {
    exec(command: string, cb: (e: Error | undefined, c?: unknown) => void) {
      // Started once the input is sent: the transport listens by then (ssh2's channel keeps what comes before).
      const channel = Object.assign(new EventEmitter(), {
        stderr: new EventEmitter(),
        end: (input: Buffer) => {
          // SHLVL=1: Debian's bash also sources ~/.bashrc by itself when its stdin is a socket (Node's pipes are socket
          // pairs) and its shell level below 2 (SSH_SOURCE_BASHRC); an environment without SHLVL then read it twice.
          const child = shell === 'bash' ? spawn('bash', ['-c', `. ${rc}\n${command}`], { cwd: dir, env }) : spawn(shell, ['-c', command], { cwd: dir, env });
          child.stdin.on('error', () => undefined); // a shell that ended before reading its input
          child.stdout.on('data', (d: Buffer) => channel.emit('data', d));
          child.stderr.on('data', (d: Buffer) => channel.stderr.emit('data', d));
          // As sshd: the exit status when the command exits, the close once nothing holds its output any more.
          child.on('exit', (code, signal) => channel.emit('exit', code, signal ?? undefined));
          child.on('close', () => channel.emit('close'));
          channel.close = () => child.kill();
          child.stdin.end(input);
        },
        close: (): unknown => undefined,
      });
      setImmediate(() => cb(undefined, channel));
    },
  });
  return { connection: conn, dir } as unknown as NodeSSH;
}

const host = { name: 'web1', address: '10.0.0.1', port: 22, user: 'deploy', hostKey: 'ssh-ed25519 AAAA' };

/** Run a login step touching `marker` through a login shell with `bashrc`: what came back, and whether the step's script ran. */
async function runWith(bashrc: string, shell = 'bash', files: Record<string, string> = {}) {
  const conn = localConnection(bashrc, shell, files);
  const ran = join((conn as unknown as { dir: string }).dir, 'ran');
  const step: Step = { name: 'lock', script: `touch ${ran}\necho done`, as: 'login', timeout: 30 };
  const reporter = new MemoryReporter();
  const remote = new SshRemote(conn, host, 'app', reporter);
  const result = await remote.run(step).catch((e: unknown) => e);
  return { result, ran: existsSync(ran), warnings: reporter.lines.filter((l) => l.startsWith('warning:')) };
}

describe('a step through the login shell', () => {
  it('runs as sent with a quiet ~/.bashrc', async () => {
    const { result, ran, warnings } = await runWith('# nothing');
    expect(result).toMatchObject({ code: 0, stdout: 'done\n' });
    expect(ran).toBe(true);
    expect(warnings).toEqual([]);
  });

  it.each([
    ['[ -z "${INNER:-}" ] && export INNER=1 && exec /bin/bash', '/bin/bash'],
    ['exec /bin/sh', '/bin/sh'],
    ['exec dash', 'dash'],
  ])('refuses to run a script that another shell read (%s in ~/.bashrc): nothing done, the fix named', async (rc, shell) => {
    const { result, ran } = await runWith(rc);
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    const e = result as NotStartedError;
    expect(e.message).toBe(
      `step "lock" on web1 did not run: ~deploy/.bashrc (or ~/.profile, /etc/bash.bashrc) on web1 starts another shell (${shell}, an exec) for non-interactive sessions, and that shell read the step's script in place of the command ops sent (sudo, its time limit); ops stopped it before it did anything`,
    );
    expect(e.hint).toMatch(/^move the exec below the interactive guard at the top of ~deploy\/\.bashrc \(case \$- in \*i\*\) ;; \*\) return;; esac\)/);
  });

  it.each([
    ['exec() { echo "exec is disabled here"; }', 'did not run: ~deploy/.bashrc (or ~/.profile, /etc/bash.bashrc) on web1 defines a function (or alias) named exec, which the login shell ran in place of its exec builtin, and which returned without running the command ops sent; ops stopped it before it did anything', false],
    // echoing ops's command with its escapes read: no line of it reads as ops's start line or refusal
    ['exec() { echo -e "$@"; }', 'did not run: ~deploy/.bashrc (or ~/.profile, /etc/bash.bashrc) on web1 defines a function (or alias) named exec, which the login shell ran in place of its exec builtin, and which returned without running the command ops sent; ops stopped it before it did anything', false],
    ['exec() { echo "exec $1" >> ~/exec.log; "$@"; }', 'ran, but its exit code is lost: ~deploy/.bashrc (or ~/.profile, /etc/bash.bashrc) on web1 defines a function (or alias) named exec, which the login shell ran in place of its exec builtin, and which ran ops\'s command and returned', true],
  ])("a function named exec in ~/.bashrc (%s), which bash calls in place of the builtin: said so, not the generic \"ended with exit code\"", async (rc, message, ran) => {
    const { result, ran: didRun } = await runWith(rc);
    expect(didRun).toBe(ran);
    expect(result).toBeInstanceOf(OpsError);
    expect(result).toSatisfy((e: unknown) => (e instanceof NotStartedError) === !ran);
    expect((result as Error).message).toBe(`step "lock" on web1 ${message}`);
    expect((result as OpsError).hint).toMatch(/^remove that exec function, rename it, or define it below the interactive guard at the top of ~deploy\/\.bashrc/);
  });

  it("an alias of exec to tcsh's echo, which reads escapes (\\n) in ops's command: said as the exec alias, not as ops's own refusal of the input", async () => {
    const { result, ran } = await runWith('', '/usr/bin/tcsh', { '.tcshrc': 'alias exec echo' });
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe('step "lock" on web1 did not run: ~deploy/.tcshrc or ~/.cshrc (or /etc/csh.cshrc) on web1 defines a function (or alias) named exec, which the login shell ran in place of its exec builtin, and which returned without running the command ops sent; ops stopped it before it did anything');
  });

  it("an alias named exec in a csh login's ~/.cshrc (csh expands it in sshd's command too): said so, naming ~/.cshrc, not ~/.bashrc", async () => {
    const { result, ran, warnings } = await runWith('', '/usr/bin/csh', { '.cshrc': "alias exec 'echo exec is disabled'" });
    expect(ran).toBe(false);
    // its echo of ops's command is no trace (set -x)
    expect(warnings.filter((w) => /xtrace/.test(w))).toEqual([]);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe('step "lock" on web1 did not run: ~deploy/.tcshrc or ~/.cshrc (or /etc/csh.cshrc) on web1 defines a function (or alias) named exec, which the login shell ran in place of its exec builtin, and which returned without running the command ops sent; ops stopped it before it did anything');
    expect((result as NotStartedError).hint).toBe('remove that exec function, rename it, or define it inside "if ($?prompt) then … endif" in ~deploy/.tcshrc or ~deploy/.cshrc (or /etc/csh.cshrc)');
  });

  it("a zsh login whose ~/.zshenv exits for non-interactive sessions, before any step said the login's shell: the hint names zsh's file too", async () => {
    const { result, ran } = await runWith('', '/usr/bin/zsh', { '.zshenv': '[[ -o interactive ]] || exit 3' });
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toMatch(/^step "lock" on web1 did not start: the login shell of deploy ended with exit code 3 before the step's script began$/);
    expect((result as NotStartedError).hint).toContain('its start-up files, ~deploy/.bashrc (or ~/.profile, /etc/bash.bashrc) (zsh: ~deploy/.zshenv; fish: ~deploy/.config/fish/config.fish; csh, tcsh: ~deploy/.cshrc, ~/.tcshrc), must not exit or exec');
  });

  it.each([
    ['exit 7', 'bash', 7, ''],
    ['[ -z "${PS1:-}" ] && exit', 'bash', 0, ''],
    ['set -e\nfalse', 'bash', 1, ''],
    ['', '/bin/false', 1, ''],
    ['', '/usr/sbin/nologin', 1, ' (its login shell is nologin)'],
  ])('says the login shell ended before the step began (~/.bashrc %j, shell %s): exit code, the account\'s shell, the fix', async (rc, shell, code, nologin) => {
    const { result, ran } = await runWith(rc, shell);
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    const e = result as NotStartedError;
    expect(e.message).toMatch(new RegExp(`^step "lock" on web1 did not start: the login shell of deploy${nologin.replace(/[()]/g, '\\$&')} ended with exit code ${code} before the step's script began`));
    if (nologin) expect(e.message).toContain('printing: "This account is currently not available."');
    expect(e.hint).toContain('getent passwd deploy shows it; /usr/sbin/nologin and /bin/false run nothing: chsh -s /bin/bash deploy');
    expect(e.hint).toContain('must not exit or exec for non-interactive sessions');
    // set -e then a failing command ends the login as an exit does: named among the causes
    expect(e.hint).toContain('set -e');
  });

  it.each([
    ['set -u\n[ -z "$PS1" ] && return', /runs set -u \(nounset\), then reads \$PS1, which is not set in non-interactive sessions: the login shell ended there, with exit code 127, printing: ".*PS1: unbound variable"$/, /^write \$\{PS1-\} there \(empty when unset\), or move set -u below the interactive guard at the top of ~deploy\/\.bashrc/],
    ['set -o nounset; case "$PROMPT_COMMAND" in *history*) ;; esac', /runs set -u \(nounset\), then reads \$PROMPT_COMMAND,/, /^write \$\{PROMPT_COMMAND-\} there/],
  ])('a ~/.bashrc under set -u that reads a variable only interactive sessions set (%j): said so, with the fix, not "ended with exit code 127" alone', async (rc, message, hint) => {
    const { result, ran } = await runWith(rc);
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toMatch(/^step "lock" on web1 did not start: ~deploy\/\.bashrc \(or ~\/\.profile, \/etc\/bash\.bashrc\) on web1 /);
    expect((result as Error).message).toMatch(message);
    expect((result as NotStartedError).hint).toMatch(hint);
  });

  it.each([
    // tmux's own words without a terminal (run here), and screen's
    ['exec tmux new-session -A -s main', 'tmux', 'open terminal failed: not a terminal', /^start tmux only below the interactive guard at the top of ~deploy\/\.bashrc .*, e\.g\. \[ -z "\$TMUX" \] && exec tmux new-session -A -s main$/],
    ['echo "Must be connected to a terminal."; exit 1', 'screen', 'Must be connected to a terminal.', /^start screen only below the interactive guard/],
  ])('a ~/.bashrc that attaches to a terminal multiplexer at login (%s): said so, with the fix', async (rc, multiplexer, words, hint) => {
    const { result, ran } = await runWith(rc);
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe(
      `step "lock" on web1 did not start: ~deploy/.bashrc (or ~/.profile, /etc/bash.bashrc) on web1 starts ${multiplexer} for non-interactive sessions too, and ${multiplexer} needs a terminal, which ops's sessions have not: the login shell ended with exit code 1, printing: "${words}"`,
    );
    expect((result as NotStartedError).hint).toMatch(hint);
  });

  it('ends a step when its command exits, though a process ~/.bashrc started in the background holds the output; says so once, with the fix', async () => {
    const started = Date.now();
    const { result, ran, warnings } = await runWith('( sleep 60 ) &');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(ran).toBe(true);
    expect(result).toMatchObject({ code: 0, stdout: 'done\n', lingered: true });
    expect(warnings).toEqual([
      'warning: web1: a session stays open after its command has exited: a start-up file of the login shell of deploy starts a process in the background that keeps the session\'s output (e.g. watcher & in ~/.bashrc), so scp and rsync wait for it too; ops closed it: start it with its output elsewhere (watcher >/dev/null 2>&1 &) or below the interactive guard at the top of ~deploy/.bashrc (case $- in *i*) ;; *) return;; esac)',
    ]);
  }, 20_000);

  it('ends a step LINGER_MAX_MS after its exit at most, though the background process writes on and on (each chunk would defer the close)', async () => {
    const started = Date.now();
    const { result, ran } = await runWith('( for i in $(seq 100); do echo tick >&2; sleep 0.2; done ) &');
    expect(Date.now() - started).toBeLessThan(12_000);
    expect(ran).toBe(true);
    expect(result).toMatchObject({ code: 0, lingered: true });
  }, 40_000);

  it('sudo missing on the host (env, which runs it in the C locale, cannot find it): said so, with the package', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-nosudo-'));
    const shell = join(dir, 'shell');
    // A login shell whose PATH has env but no sudo.
    writeFileSync(shell, `#!/bin/bash\nmkdir -p ${dir}/bin && ln -sf "$(command -v env)" ${dir}/bin/env\nPATH=${dir}/bin exec /bin/bash "$@"\n`, { mode: 0o755 });
    const conn = localConnection('', shell);
    const remote = new SshRemote(conn, host, 'app', new MemoryReporter());
    const result = await remote.run({ name: 'lock', script: 'echo done', as: 'root', timeout: 30 }).catch((e: unknown) => e);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toMatch(/^step "lock" on web1 did not start: sudo is not installed there/);
    expect((result as NotStartedError).hint).toContain('apt-get install sudo');
  });

  it("a host whose env (coreutils 8.30, Debian 10) has no --default-signal: said so, with the Debian releases ops supports, not the login shell's fault", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-oldenv-'));
    const shell = join(dir, 'shell');
    // What Debian 10's env says of the option it lacks (getopt_long, glibc 2.28), and exits with, before the script.
    writeFileSync(shell, `#!/bin/sh\necho "env: unrecognized option '--default-signal'" >&2\necho "Try 'env --help' for more information." >&2\nexit 125\n`, { mode: 0o755 });
    const { result, ran } = await runWith('', shell);
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe('step "lock" on web1 did not start: its env (coreutils) is older than 8.31 and has no --default-signal, which ops uses so that a step starts with no signal ignored: web1 runs Debian 10 or older (coreutils 8.30)');
    expect((result as NotStartedError).hint).toBe('ops supports Debian 11 and 12: upgrade web1 (Debian 11 has coreutils 8.32), or deploy to a Debian 11 or 12 host');
  });

  it("a resource limit the session began with (pam_limits' /etc/security/limits.conf in sshd's session process): said so, with where to look, not ~/.bashrc", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-pamlimits-'));
    // sshd's session process (its name), with the limit pam_limits gave it, and the login shell its child.
    const sshd = join(dir, 'sshd');
    writeFileSync(sshd, '#!/bin/bash\nulimit -n 256\n/bin/bash "$@"\nexit $?\n', { mode: 0o755 });
    const { result, ran } = await runWith('', sshd);
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe("step \"lock\" on web1 did not run: deploy's sessions on web1 begin with a resource limit (ulimit -n 256), set before the login shell runs (by pam_limits, from /etc/security/limits.conf or /etc/security/limits.d/, or by sshd's service), under which an install, a build or an upload fails half-way; ops stopped it before it did anything");
    expect((result as NotStartedError).hint).toMatch(/^on web1, as root: find the line that sets it \(grep -rs .* \/etc\/security\/limits\.conf \/etc\/security\/limits\.d\/;.*"deploy - nofile 65536" in \/etc\/security\/limits\.d\/deploy\.conf/);
  });

  it("a resource limit sudo's session gives the user the step runs as (pam_limits: `shop hard nproc 200`, or `*` with the login's own line), which the login has not: said so, naming that user and limits.conf, not ~/.bashrc", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-sudolimits-'));
    // sudo (its name) with the limit its PAM session set, under the login's side, which has none.
    writeFileSync(join(dir, 'sudo'), '#!/bin/bash\nulimit -u 200\nbash -c "$1"\nexit $?\n', { mode: 0o755 });
    const shell = join(dir, 'shell');
    writeFileSync(shell, `#!/bin/bash\nexec ${join(dir, 'sudo')} "$2"\n`, { mode: 0o755 });
    const { result, ran } = await runWith('', shell);
    const me = execFileSync('id', ['-un'], { encoding: 'utf8' }).trim();
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe(`step "lock" on web1 did not run: ${me}'s processes on web1 get a resource limit (ulimit -u 200) that deploy's session does not have, set when ops switches to ${me} with sudo (pam_limits in sudo's session, from a line of /etc/security/limits.conf or /etc/security/limits.d/ for ${me}, its group, or \`*\`), not by a start-up file, under which an install, a build or an upload fails half-way; ops stopped it before it did anything`);
    expect((result as NotStartedError).hint).toMatch(new RegExp(`^on web1, as root: find the line that sets it \\(grep -rs .* /etc/security/limits\\.conf /etc/security/limits\\.d/\\) and remove it or raise it for ${me}, e\\.g\\. "${me} - nproc 4096" in /etc/security/limits\\.d/${me}\\.conf`));
  });

  it('a command of the command line missing, named by its path (HOST_COMMANDS): sudo\'s "command not found" for timeout (exit 1), the shells\' and env\'s words (exit 127): said as not installed, with the package', async () => {
    // what each says (bash 5.2, dash, coreutils 9.1 and sudo 1.9, in C.UTF-8) when the host lacks the command
    expect(missingCommand(127, 'ops-step: line 1: /usr/bin/sudo: No such file or directory')).toBe('sudo');
    expect(missingCommand(127, 'sh: 1: exec: /usr/bin/env: not found')).toBe('env');
    expect(missingCommand(127, "/usr/bin/env: 'bash': No such file or directory")).toBe('bash');
    expect(missingCommand(127, "/usr/bin/timeout: failed to run command '/usr/bin/env': No such file or directory")).toBe('env');
    expect(missingCommand(127, 'ops-step: line 1: exec: sudo: not found')).toBe('sudo');
    expect(missingCommand(1, 'sudo: /usr/bin/timeout: command not found')).toBe('timeout');
    expect(missingCommand(127, 'bash: line 3: node: command not found')).toBeUndefined();
    expect(missingCommand(1, 'sudo: a password is required')).toBeUndefined();
    expect(missingCommand(1, 'sudo: /usr/bin/timeout: command not found\nbut exit 2')).toBe('timeout');
    const dir = mkdtempSync(join(tmpdir(), 'ops-notimeout-'));
    const shell = join(dir, 'shell');
    writeFileSync(shell, '#!/bin/sh\necho "sudo: /usr/bin/timeout: command not found" >&2\nexit 1\n', { mode: 0o755 });
    const { result, ran } = await runWith('', shell);
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe('step "lock" on web1 did not start: timeout is not installed there (sudo could not find /usr/bin/timeout, exit code 1, printing: "sudo: /usr/bin/timeout: command not found")');
    expect((result as NotStartedError).hint).toContain('install coreutils on web1 (apt-get install coreutils), as root');
  });

  it("sudo's NOEXEC (Defaults noexec in sudoers): said so, with the sudoers fix, not the login shell's fault", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-noexec-'));
    const shell = join(dir, 'shell');
    // What timeout says (coreutils 9.1, C.UTF-8) and exits with when sudo's seccomp filter refuses its execve of env.
    writeFileSync(shell, '#!/bin/sh\necho "timeout: failed to run command ‘env’: Permission denied" >&2\nexit 126\n', { mode: 0o755 });
    const { result, ran } = await runWith('', shell);
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe(`step "lock" on web1 did not start: ${sudoNoexec('deploy', 'web1').problem}, printing: "timeout: failed to run command ‘env’: Permission denied"`);
    expect((result as Error).message).toMatch(/did not start: sudo on web1 runs deploy's commands with NOEXEC \(Defaults noexec/);
    expect((result as NotStartedError).hint).toMatch(/remove "Defaults noexec" or the NOEXEC: tag for deploy from \/etc\/sudoers or \/etc\/sudoers\.d \(sudo -l -U deploy lists both/);
  });

  it('a restricted login shell (rbash, which refuses exec): said so, with chsh', async () => {
    const { result, ran } = await runWith('', 'rbash');
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toMatch(/^step "lock" on web1 did not start: the login shell of deploy is a restricted shell \(rbash\), which refuses to exec the command ops sends, printing: ".*exec: restricted"$/);
    expect((result as NotStartedError).hint).toMatch(/^give deploy a plain shell: on web1, as root: chsh -s \/bin\/bash deploy/);
  });

  it("says what else ends a session before the step begins: sshd's ForceCommand or an authorized_keys command=\"…\" (a command run in place of ops's, printing and exiting 0)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-forced-'));
    const forced = join(dir, 'forced');
    writeFileSync(forced, '#!/bin/sh\necho "This account is restricted to maintenance tasks"\n', { mode: 0o755 });
    const { result, ran } = await runWith('', forced);
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toMatch(/ended with exit code 0 before the step's script began, printing: "This account is restricted to maintenance tasks"/);
    expect((result as NotStartedError).hint).toMatch(/or sshd runs another command in place of ops's: a ForceCommand for deploy \(on web1, as root: sshd -T -C user=deploy \| grep -i forcecommand\), or a command="…" option before ops's key in deploy's authorized_keys \(~deploy\/\.ssh\/authorized_keys, or where sshd's AuthorizedKeysFile says\): remove it for ops's key, or have it run "\$SSH_ORIGINAL_COMMAND"$/);
  });

  it("sshd's ForceCommand internal-sftp for the login (a Match block for an sftp-only group): said so, with where to look, not the login shell", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-sftponly-'));
    const forced = join(dir, 'forced');
    // What sshd prints and exits with when a command is asked of a session its ForceCommand internal-sftp serves.
    writeFileSync(forced, '#!/bin/sh\necho "This service allows sftp connections only."\nexit 1\n', { mode: 0o755 });
    const { result, ran } = await runWith('', forced);
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe('step "lock" on web1 did not start: sshd there lets deploy use sftp only (ForceCommand internal-sftp, e.g. in a Match block of /etc/ssh/sshd_config or sshd_config.d for an sftp-only group), so it runs no command');
    expect((result as NotStartedError).hint).toBe('on web1, as root: sshd -T -C user=deploy | grep -i forcecommand shows it; take deploy out of that Match block (or its group), then systemctl reload ssh');
  });

  it("a cloud image's root key (cloud-init: a command=\"…\" in authorized_keys saying whom to log in as, exit 142): names that login and the setting, not the login shell", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-cloudroot-'));
    const forced = join(dir, 'forced');
    // What cloud-init puts before the key in ~root/.ssh/authorized_keys (disable_root), run by sshd in place of ops's command.
    writeFileSync(forced, `#!/bin/sh\necho 'Please login as the user "debian" rather than the user "root".';echo;exit 142\n`, { mode: 0o755 });
    const { result, ran } = await runWith('', forced);
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe('step "lock" on web1 did not start: web1 lets ops\'s key in as deploy only to say to log in as debian, then exit 142 (a command="…" before the key in ~deploy/.ssh/authorized_keys, as cloud images have for root)');
    expect((result as NotStartedError).hint).toBe("log in as debian: set user: debian for web1 in hosts[] of the environment (ops runs root's steps through its passwordless sudo)");
  });

  it.each([1, 3])('refuses, before doing anything, a script whose first lines a start-up file read from stdin (%i reads)', async (reads) => {
    const { result, ran } = await runWith('read -r _discard || true\n'.repeat(reads));
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe(
      `step "lock" on web1 did not run: ~deploy/.bashrc (or ~/.profile, /etc/bash.bashrc) on web1 reads standard input for non-interactive sessions (a read), which took the first line of the step's script; ops stopped it before it did anything`,
    );
  });

  it.each([
    ['exec </dev/null', 'to /dev/null, e.g. exec </dev/null'],
    ['exec 0</dev/null', 'to /dev/null, e.g. exec </dev/null'],
    ['exec 0<&-', 'closes it, e.g. exec <&-'],
  ])('refuses a step whose standard input a start-up file took away (%s): said so, not "ended with exit code 0"', async (rc, how) => {
    const { result, ran } = await runWith(rc);
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe(
      `step "lock" on web1 did not run: ~deploy/.bashrc (or ~/.profile, /etc/bash.bashrc) on web1 takes standard input away from non-interactive sessions (${how}), and ops sends each step's script on it: the script would be read as empty; ops stopped it before it did anything`,
    );
    expect((result as NotStartedError).hint).toMatch(/^move that redirection below the interactive guard at the top of ~deploy\/\.bashrc .*; to keep one command of it from reading the session's input, redirect that command alone \(command <\/dev\/null\)$/);
  });

  it('refuses a step whose stderr a start-up file sends elsewhere (its errors would be lost)', async () => {
    const { result, ran } = await runWith('exec 2>>~/.bash_errors');
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toMatch(/^step "lock" on web1 did not run: ~deploy\/\.bashrc \(or ~\/\.profile, \/etc\/bash\.bashrc\) on web1 sends the standard error of non-interactive sessions elsewhere \(to \/\S+\/\.bash_errors, e\.g\. exec 2>>file\), so a failing step's errors would not be seen/);
    expect((result as NotStartedError).hint).toMatch(/^move that redirection below the interactive guard/);
  });
  it.each([
    ['exec >>~/.bash_out', /sends the standard output of non-interactive sessions elsewhere \(to \/\S+\/\.bash_out, e\.g\. exec >>file\)/],
    ['exec >/dev/null', /sends the standard output of non-interactive sessions elsewhere \(to \/dev\/null, e\.g\. exec >>file\)/],
    // closed: before, the script ran without it (the lock taken, its report lost)
    ['exec >&-', /closes the standard output of non-interactive sessions \(e\.g\. exec >&-\), so what a step reports would not be seen/],
    ['exec 2>&-', /closes the standard error of non-interactive sessions \(e\.g\. exec 2>&-\), so a failing step's errors would not be seen/],
  ])('refuses a step whose stdout or stderr a start-up file sends to a file or closes (%s): nothing done, said so, not "did not start"', async (rc, where) => {
    const { result, ran } = await runWith(rc);
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toMatch(/^step "lock" on web1 did not run: ~deploy\/\.bashrc \(or ~\/\.profile, \/etc\/bash\.bashrc\) on web1 /);
    expect((result as Error).message).toMatch(where);
    expect((result as NotStartedError).hint).toMatch(/^move that redirection below the interactive guard/);
  });

  it.each([
    ['exec 1>&2', ''],
    ['exec 2>&1', ''],
    // logger's pipe: the refusal goes there too, the step ends with exit 125 alone
    ['exec > >(cat >/dev/null) 2>&1', ' (its refusal went there too)'],
  ])('refuses a step whose stdout and stderr a start-up file sends to one place (%s): nothing done (no lock taken), said so', async (rc, also) => {
    const { result, ran } = await runWith(rc);
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe(
      `step "lock" on web1 did not run: ~deploy/.bashrc (or ~/.profile, /etc/bash.bashrc) on web1 sends the standard output and standard error of non-interactive sessions to one place (e.g. exec >&2, exec 2>&1, exec > >(logger) 2>&1), so what a step reports would be lost or mixed with its errors; ops stopped it before it did anything${also}`,
    );
    expect((result as NotStartedError).hint).toMatch(/^move that redirection below the interactive guard/);
  });

  it('a step whose stdout a start-up file pipes elsewhere (the guard cannot tell): it ran, its reports are lost; an error saying so, never "did not start" or a success', async () => {
    const { result, ran } = await runWith('exec > >(cat >/dev/null)');
    expect(ran).toBe(true);
    expect(result).toBeInstanceOf(OpsError);
    expect(result).not.toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe(
      'step "lock" on web1 ran (exit code 0), but its standard output never reached ops: a start-up file of the login shell of deploy, ~deploy/.bashrc (or ~/.profile, /etc/bash.bashrc), sends the standard output of non-interactive sessions elsewhere, so what the step reported is lost',
    );
  });

  it("warns when the script's stderr is lost where the guard cannot see it (a pipe to elsewhere: its start line on stderr never came)", async () => {
    const { result, ran, warnings } = await runWith('exec 2> >(cat >/dev/null)');
    expect(result).toMatchObject({ code: 0, stdout: 'done\n' });
    expect(ran).toBe(true);
    expect(warnings).toEqual([
      'warning: web1: the standard error of step "lock" did not reach ops (its start line never came): a start-up file of the login shell of deploy, ~deploy/.bashrc (or ~/.profile, /etc/bash.bashrc), or sudo sends it elsewhere, so a failing step\'s errors are not seen; move any redirection of the standard error (exec 2>…) below the interactive guard at the top of ~deploy/.bashrc (case $- in *i*) ;; *) return;; esac)',
    ]);
  });

  it("a ~/.bashrc that starts an ssh-agent (eval $(ssh-agent)): each step's is stopped, not left on the host; one an earlier login started (keychain's) is left alone; said once, with the fix", async () => {
    // The agent an earlier login started, which keychain hands to each new one.
    const kept = spawnSync('ssh-agent', ['-s'], { encoding: 'utf8' });
    const keptPid = Number(/SSH_AGENT_PID=(\d+)/.exec(kept.stdout)![1]);
    // (a stopped one may stay a zombie here, where nothing reaps what is reparented)
    const alive = (pid: number) => existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'ssh-agent' && !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    try {
      for (const [rc, stopped] of [
        ['eval "$(ssh-agent -s)" >/dev/null; echo "$SSH_AGENT_PID" >> "$HOME/agents"', true],
        [`SSH_AGENT_PID=${keptPid}; export SSH_AGENT_PID; echo "$SSH_AGENT_PID" >> "$HOME/agents"`, false],
      ] as const) {
        const conn = localConnection(rc);
        const reporter = new MemoryReporter();
        const remote = new SshRemote(conn, host, 'app', reporter);
        for (const i of [1, 2, 3]) expect(await remote.run({ name: `step ${i}`, script: 'echo done', as: 'login', timeout: 30 })).toMatchObject({ code: 0, stdout: 'done\n', preamble: '', ...(stopped && { agentStopped: true }) });
        const agents = readFileSync(join((conn as unknown as { dir: string }).dir, 'agents'), 'utf8').trim().split('\n').map(Number);
        expect(agents).toHaveLength(3);
        // ssh-agent ends on SIGTERM at once, or nearly (up to 10 s on a busy machine)
        for (let i = 0; i < 500 && agents.some(alive) === stopped; i++) await new Promise((r) => setTimeout(r, 20));
        expect(agents.map(alive)).toEqual(agents.map(() => !stopped));
        expect(reporter.lines.filter((l) => l.startsWith('warning:'))).toEqual(
          stopped
            ? [
                'warning: web1: a start-up file of the login shell of deploy starts an ssh-agent for every session (e.g. eval $(ssh-agent) in ~/.bashrc), which nothing ends: one more stays on the host after each login (ops stops the ones its own sessions start); fix: start it below the interactive guard at the top of ~deploy/.bashrc (case $- in *i*) ;; *) return;; esac), and there only when none runs for the login (keychain: eval $(keychain --eval --quiet), or systemctl --user enable --now ssh-agent)',
              ]
            : [],
        );
      }
    } finally {
      process.kill(keptPid);
    }
  });

  it("a ~/.bashrc that starts a D-Bus session bus (eval $(dbus-launch --sh-syntax), its pid not exported): each step's is stopped, not left on the host; one of another login (its address exported) is left alone; said once, with the fix", async () => {
    // A bus another login started (no SSH_CONNECTION of this connection in its environment), whose address ~/.bashrc reuses.
    const other = spawnSync('dbus-launch', ['--sh-syntax'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    const otherPid = Number(/DBUS_SESSION_BUS_PID=(\d+)/.exec(other.stdout)![1]);
    const otherAddress = /DBUS_SESSION_BUS_ADDRESS='([^']+)'/.exec(other.stdout)![1]!;
    const alive = (pid: number) => existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'dbus-daemon' && !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    try {
      for (const [rc, stopped] of [
        ['eval "$(dbus-launch --sh-syntax)"; echo "$DBUS_SESSION_BUS_PID" >> "$HOME/buses"', true],
        [`DBUS_SESSION_BUS_ADDRESS='${otherAddress}'; export DBUS_SESSION_BUS_ADDRESS; echo ${otherPid} >> "$HOME/buses"`, false],
      ] as const) {
        const conn = localConnection(rc);
        const reporter = new MemoryReporter();
        const remote = new SshRemote(conn, host, 'app', reporter);
        for (const i of [1, 2, 3]) expect(await remote.run({ name: `step ${i}`, script: 'echo done', as: 'login', timeout: 30 })).toMatchObject({ code: 0, stdout: 'done\n', preamble: '', ...(stopped && { busStopped: true }) });
        const buses = readFileSync(join((conn as unknown as { dir: string }).dir, 'buses'), 'utf8').trim().split('\n').map(Number);
        expect(buses).toHaveLength(3);
        for (let i = 0; i < 500 && buses.some(alive) === stopped; i++) await new Promise((r) => setTimeout(r, 20));
        expect(buses.map(alive)).toEqual(buses.map(() => !stopped));
        expect(reporter.lines.filter((l) => l.startsWith('warning:'))).toEqual(
          stopped
            ? [
                'warning: web1: a start-up file of the login shell of deploy starts a D-Bus session bus for every session (e.g. eval $(dbus-launch --sh-syntax) in ~/.bashrc), which nothing ends: one more dbus-daemon stays on the host after each login (ops stops the ones its own sessions start); fix: start it below the interactive guard at the top of ~deploy/.bashrc (case $- in *i*) ;; *) return;; esac), or use the login\'s own bus instead (apt-get install dbus-user-session: systemd starts one per user, at /run/user/<uid>/bus)',
              ]
            : [],
        );
      }
    } finally {
      process.kill(otherPid);
    }
  });

  it('a ~/.bashrc that is slow for non-interactive sessions (2 s): the step runs, ops says every step waits as long, once', async () => {
    const { result, ran, warnings } = await runWith('sleep 2');
    expect(ran).toBe(true);
    expect(result).toMatchObject({ code: 0, stdout: 'done\n' });
    expect(warnings).toHaveLength(1);
    // 2 s and what a busy machine adds: the time said, not a budget.
    expect(warnings[0]).toMatch(/^warning: web1: step "lock" began (?:[2-9]|\d\d)\.\d s after ops sent it: a start-up file of the login shell of deploy, ~deploy\/\.bashrc \(or ~\/\.profile, \/etc\/bash\.bashrc\), or sshd's ~\/\.ssh\/rc runs something slow for non-interactive sessions \(or sudo is slow\), and every step waits as long; move it below the interactive guard at the top of ~deploy\/\.bashrc \(case \$- in \*i\*\) ;; \*\) return;; esac\)$/);
  }, 20_000);

  it('a ~/.bashrc that waits (a sleep, a network call) for non-interactive sessions: at the time limit, did not start, naming the start-up files, not "no answer from the host"', async () => {
    const conn = localConnection('sleep 60');
    const reporter = new MemoryReporter();
    const remote = new SshRemote(conn, host, 'app', reporter);
    // The shortest limit: the step's second and the transport's 30 s of grace.
    const result = await remote.run({ name: 'lock', script: 'echo done', as: 'login', timeout: 1 }).catch((e: unknown) => e);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe(
      'step "lock" on web1 did not start: in 31 s the login shell of deploy had not begun the step\'s script (nothing came back): a start-up file, ~deploy/.bashrc (or ~/.profile, /etc/bash.bashrc), or sshd\'s ~/.ssh/rc waits for something for non-interactive sessions (a sleep, a network call, a prompt)',
    );
    expect((result as NotStartedError).hint).toMatch(/^move what waits below the interactive guard/);
    // said while it waited, not only at the end
    expect(reporter.lines.filter((l) => l.startsWith('warning:'))).toEqual([
      'warning: web1: step "lock" has not begun 10 s after ops sent it: a start-up file of the login shell of deploy, ~deploy/.bashrc (or ~/.profile, /etc/bash.bashrc), or sshd\'s ~/.ssh/rc waits for something for non-interactive sessions (a network call, a sleep, a prompt); ops waits up to the step\'s time limit (31 s): move what waits below the interactive guard at the top of ~deploy/.bashrc (case $- in *i*) ;; *) return;; esac)',
    ]);
  }, 90_000); // 31 s of waiting by design: room for a busy machine

  // sshd runs `$SHELL -c COMMAND` whatever the login's shell: the command line must parse the same in each (no `$?`,
  // `&&`, `!` or newline of its own), and what ops says of a start-up file names that shell's.
  it.each([
    ['/usr/bin/zsh', '.zshenv', 'move it out of ~deploy/.zshenv and /etc/zsh/zshenv (zsh reads them for every command) into ~deploy/.zshrc (interactive shells only)'],
    ['/usr/bin/fish', '.config/fish/config.fish', 'move it inside "if status is-interactive … end" in ~deploy/.config/fish/config.fish (or /etc/fish/config.fish)'],
    ['/usr/bin/csh', '.cshrc', 'move it inside "if ($?prompt) then … endif" in ~deploy/.tcshrc or ~deploy/.cshrc (or /etc/csh.cshrc)'],
    ['/usr/bin/tcsh', '.tcshrc', 'move it inside "if ($?prompt) then … endif" in ~deploy/.tcshrc or ~deploy/.cshrc (or /etc/csh.cshrc)'],
  ])('a login shell %s with a chatty %s: the step runs as sent, and the warning names that shell\'s file, not ~/.bashrc', async (shell, file, place) => {
    const { result, ran, warnings } = await runWith('echo from bashrc', shell, { [file]: 'echo "Welcome, friend"' });
    expect(ran).toBe(true);
    expect(result).toMatchObject({ code: 0, stdout: 'done\n', preamble: 'Welcome, friend' });
    expect(warnings).toEqual([`warning: web1: the login shell of deploy prints text for non-interactive sessions ("Welcome, friend"); ops ignores it, but scp, rsync and sftp break: ${place} (or out of sshd's ~/.ssh/rc, if it prints it: ops ping says)`]);
  });

  it("a zsh login whose ~/.zshenv execs bash: refused, naming ~/.zshenv (the login's shell), not ~/.bashrc", async () => {
    const { result, ran } = await runWith('', '/usr/bin/zsh', { '.zshenv': '[[ -o interactive ]] || exec bash' });
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe(`step "lock" on web1 did not run: ~deploy/.zshenv (or /etc/zsh/zshenv) on web1 starts another shell (bash, an exec) for non-interactive sessions, and that shell read the step's script in place of the command ops sent (sudo, its time limit); ops stopped it before it did anything`);
    expect((result as NotStartedError).hint).toMatch(/^move the exec out of ~deploy\/\.zshenv/);
  });

  it("a zsh login whose ~/.zshenv reads stdin (a read): refused, naming ~/.zshenv and where the line goes", async () => {
    const { result, ran } = await runWith('', '/usr/bin/zsh', { '.zshenv': 'read -r line' });
    expect(ran).toBe(false);
    expect(result).toBeInstanceOf(NotStartedError);
    expect((result as Error).message).toBe(`step "lock" on web1 did not run: ~deploy/.zshenv (or /etc/zsh/zshenv) on web1 reads standard input for non-interactive sessions (a read), which took the first line of the step's script; ops stopped it before it did anything`);
    expect((result as NotStartedError).hint).toMatch(/^move that read out of ~deploy\/\.zshenv and \/etc\/zsh\/zshenv .* into ~deploy\/\.zshrc/);
  });

  it.each([
    ['bash', {}, 'set -x\nx=$(echo y)\necho "Welcome, friend"', 'below the interactive guard at the top of ~deploy/.bashrc (case $- in *i*) ;; *) return;; esac)'],
    ['/usr/bin/zsh', { '.zshenv': 'set -x\necho "Welcome, friend"' }, '', 'out of ~deploy/.zshenv and /etc/zsh/zshenv (zsh reads them for every command) into ~deploy/.zshrc (interactive shells only)'],
  ] as const)('a login shell (%s) whose start-up files set -x: named as xtrace, the trace (of ops\'s own command too) not quoted as text the login prints; its real text still is', async (shell, files, rc, place) => {
    const { result, ran, warnings } = await runWith(rc, shell, files);
    expect(ran).toBe(true);
    expect(result).toMatchObject({ code: 0, stdout: 'done\n', preamble: 'Welcome, friend', xtrace: true });
    expect(warnings).toEqual([
      `warning: web1: the login shell of deploy traces its commands for non-interactive sessions (set -x, xtrace: each command of its start-up files, and the one ops sends, on stderr), which ops ignores; but every tool run over ssh shows it, and a value a start-up file sets (an export of a token) is traced with it; fix: move set -x ${place}, or end it with set +x before that`,
      `warning: web1: the login shell of deploy prints text for non-interactive sessions ("Welcome, friend"); ops ignores it, but scp, rsync and sftp break: move it ${place} (or out of sshd's ~/.ssh/rc, if it prints it: ops ping says)`,
    ]);
  });

  it("tells sudo's own warnings apart from the login shell's text, each with its fix", async () => {
    const { result, warnings } = await runWith('echo "sudo: unable to resolve host brk1: Name or service not known" >&2\necho Welcome');
    expect(result).toMatchObject({ code: 0, stdout: 'done\n', preamble: 'Welcome' });
    expect(warnings).toEqual([
      `warning: web1: sudo warns: "sudo: unable to resolve host brk1: Name or service not known"; fix: add the host's name to /etc/hosts on web1 (as root: echo '127.0.1.1 brk1' >> /etc/hosts): sudo looks it up on every command`,
      'warning: web1: the login shell of deploy prints text for non-interactive sessions ("Welcome"); ops ignores it, but scp, rsync and sftp break: move it below the interactive guard at the top of ~deploy/.bashrc (case $- in *i*) ;; *) return;; esac) (or out of sshd\'s ~/.ssh/rc, if it prints it: ops ping says)',
    ]);
  });
});

describe("the dynamic loader's warning before every command (LD_PRELOAD naming a library that is not there)", () => {
  it('a step runs; said once as the loader\'s, with where LD_PRELOAD comes from, never as text the login shell prints', async () => {
    const { result, ran, warnings } = await runWith('export LD_PRELOAD=/nonexistent/libops-test.so');
    expect(result).toMatchObject({ code: 0, stdout: 'done\n', preamble: '', preload: expect.stringMatching(/^ERROR: ld\.so: object '\/nonexistent\/libops-test\.so' from LD_PRELOAD cannot be preloaded/) });
    expect(ran).toBe(true);
    expect(warnings).toEqual([
      expect.stringMatching(/^warning: web1: the dynamic loader warns before every command of deploy: LD_PRELOAD in its environment names \/nonexistent\/libops-test\.so, which it cannot load \(cannot open shared object file\) \(ops copes\); fix: on web1, as root: remove LD_PRELOAD from where deploy's sessions get it \(grep -rs LD_PRELOAD \/etc\/environment .*\), or install \/nonexistent\/libops-test\.so$/),
    ]);
  });

  it('ops ping: its own problem and fix, not the login shell\'s; /etc/ld.so.preload named as such', () => {
    const facts = (line: string) => readFacts({ name: 'prod' }, { name: 'web1', user: 'deploy' }, { stdout: '', stderr: '', code: 0, durationMs: 1, reports: [['login', 'deploy'], ['sudo', 'yes ']], preamble: '', preload: line }).problems;
    expect(facts("ERROR: ld.so: object '/usr/lib/libjemalloc.so.2' from LD_PRELOAD cannot be preloaded (cannot open shared object file): ignored.")).toEqual([{ problem: expect.stringMatching(/^the dynamic loader warns before every command of deploy: LD_PRELOAD/), fix: expect.stringMatching(/grep -rs LD_PRELOAD \/etc\/environment/) }]);
    expect(facts("ERROR: ld.so: object '/lib/libgone.so' from /etc/ld.so.preload cannot be preloaded (cannot open shared object file): ignored.")).toEqual([{ problem: expect.stringMatching(/^the dynamic loader warns before every program on web1: \/etc\/ld\.so\.preload names \/lib\/libgone\.so/), fix: 'on web1, as root: remove the line /lib/libgone.so from /etc/ld.so.preload, or install it' }]);
  });
});

describe('ops ping on a host where steps cannot make their files', () => {
  const facts = (...reports: [string, string][]) => readFacts({ name: 'prod' }, { name: 'web1', user: 'deploy' }, { stdout: '', stderr: '', code: 0, durationMs: 1, reports: [['login', 'deploy'], ['sudo', 'yes '], ['disk', '90000000 5000000 4000000 /srv'], ...reports], preamble: '' }).problems;

  it('/tmp a filesystem of its own, out of inodes or space: named, with what to run there; the app\'s room is no problem', () => {
    expect(facts(['temp_disk', '800000 50000 0 /tmp'])).toEqual([{ problem: '/tmp is full (781 MB and 0 inodes free under /tmp): steps make their temporary files there, so a deploy that installs dependencies fails', fix: expect.stringMatching(/^free inodes on web1 under \/tmp \(as root, find \/tmp -xdev /) }]);
    expect(facts(['temp_disk', '100 50000 40000 /tmp'])).toEqual([{ problem: expect.stringMatching(/^\/tmp is full \(0 MB and 40000 inodes free under \/tmp\)/), fix: expect.stringMatching(/^free space on web1 under \/tmp \(as root, du -xsh \/tmp\/\* /) }]);
    expect(facts(['temp_disk', '800000 50000 30000 /tmp'])).toEqual([]);
  });

  it("the app user's home missing (adduser --system's /nonexistent): named, with usermod", () => {
    expect(facts(['app_home', 'shop /nonexistent'])).toEqual([
      { problem: 'the home directory of shop, /nonexistent (its entry in /etc/passwd), does not exist: npm and uv keep their caches there, so a deploy that makes a new dependency set fails', fix: 'on web1, as root: usermod -d /home/shop shop && install -d -o shop -g "$(id -gn shop)" /home/shop (a user made by adduser --system has /nonexistent)' },
    ]);
  });
});

describe('ops ping on a login that reaches sudo oddly', () => {
  const facts = (sudo: string) => readFacts({ name: 'prod' }, { name: 'web1', user: 'deploy' }, { stdout: '', stderr: '', code: 0, durationMs: 1, reports: [['login', 'deploy'], ['sudo', sudo]], preamble: '' });

  it("reports sudo's NOEXEC (Defaults noexec: sudo runs env, env may not start true) with the sudoers fix, not a password", () => {
    const r = facts('no env: ‘true’: Permission denied');
    expect(r.sudo).toBe(false);
    expect(r.problems).toEqual([sudoNoexec('deploy', 'web1')]);
    expect(r.problems[0]!.problem).toMatch(/^sudo on web1 runs deploy's commands with NOEXEC \(Defaults noexec, or the NOEXEC: tag on its sudoers line\)/);
  });

  it("reports sudo's warning (its host name missing from /etc/hosts) as a problem with its fix, sudo working", () => {
    const r = facts('yes sudo: unable to resolve host brk1: Name or service not known');
    expect(r.sudo).toBe(true);
    expect(r.problems).toEqual([{ problem: 'sudo warns on every command: "sudo: unable to resolve host brk1: Name or service not known"', fix: "add the host's name to /etc/hosts on web1 (as root: echo '127.0.1.1 brk1' >> /etc/hosts): sudo looks it up on every command" }]);
    expect(facts('yes ').problems).toEqual([]);
  });

  it("reports sudo's warning in a container that forbids lowering its core limit (setrlimit(RLIMIT_CORE)) with its own fix (sudo.conf), sudo working", () => {
    const r = facts('yes sudo: setrlimit(RLIMIT_CORE): Operation not permitted');
    expect(r.sudo).toBe(true);
    expect(r.problems).toEqual([{ problem: 'sudo warns on every command: "sudo: setrlimit(RLIMIT_CORE): Operation not permitted"', fix: "on web1, as root: echo 'Set disable_coredump false' >> /etc/sudo.conf (sudo lowers its core dump limit on every command, which this container forbids)" }]);
  });

  it('tells requiretty (sudo wants a terminal) apart from a password, with its own fix, in ping and in a failed step', () => {
    const r = facts('no sudo: sorry, you must have a tty to run sudo');
    expect(r.problems).toEqual([
      {
        problem: "sudo refuses deploy without a terminal (sudo: sorry, you must have a tty to run sudo: Defaults requiretty in sudoers), and ops's sessions have none: provision and every deploy need sudo",
        fix: "on web1, as root: echo 'Defaults:deploy !requiretty' > /etc/sudoers.d/deploy-tty && chmod 0440 /etc/sudoers.d/deploy-tty (or visudo -f /etc/sudoers.d/deploy-tty)",
      },
    ]);
    expect(sudoHint('sudo: sorry, you must have a tty to run sudo\n', 'deploy', 'web1')).toBe(
      'sudoers on web1 requires a terminal (Defaults requiretty), which ops\'s sessions have not: add the line "Defaults:deploy !requiretty" to /etc/sudoers.d/deploy (visudo -f /etc/sudoers.d/deploy)',
    );
    expect(facts('no sudo: a password is required').problems[0]!.fix).toContain('NOPASSWD');
  });

  it('a session that stayed open after its command (a background process of ~/.bashrc): a problem, with the fix', () => {
    const r = readFacts({ name: 'prod' }, { name: 'web1', user: 'deploy' }, { stdout: '', stderr: '', code: 0, durationMs: 1, reports: [['login', 'deploy'], ['sudo', 'yes ']], preamble: '', lingered: true });
    expect(r.problems).toEqual([{ problem: expect.stringMatching(/^a session stays open after its command has exited/), fix: expect.stringMatching(/^start it with its output elsewhere \(watcher >\/dev\/null 2>&1 &\)/) }]);
  });

  it('a login whose start-up files start an ssh-agent for every session (the facts step stopped its own): a problem, with the fix', () => {
    const r = readFacts({ name: 'prod' }, { name: 'web1', user: 'deploy' }, { stdout: '', stderr: '', code: 0, durationMs: 1, reports: [['login', 'deploy'], ['sudo', 'yes ']], preamble: '', agentStopped: true });
    expect(r.problems).toEqual([{ problem: expect.stringMatching(/^a start-up file of the login shell of deploy starts an ssh-agent for every session/), fix: expect.stringMatching(/^start it below the interactive guard at the top of ~deploy\/\.bashrc .*keychain/) }]);
  });

  describe("names the file that prints, for the login's shell and sshd's rc file", () => {
    const chatty = (reports: [string, string][]) => readFacts({ name: 'prod' }, { name: 'web1', user: 'deploy' }, { stdout: '', stderr: '', code: 0, durationMs: 1, reports: [['login', 'deploy'], ['sudo', 'yes '], ...reports], preamble: 'hello there' }).problems.map((p) => p.fix);
    it('bash (and a facts step that does not say): ~/.bashrc', () => {
      expect(chatty([['shell', '/bin/bash']])).toEqual([expect.stringMatching(/^move it below the interactive guard at the top of ~deploy\/\.bashrc/)]);
      expect(chatty([])).toEqual(chatty([['shell', '/bin/bash']]));
    });
    it('zsh: ~/.zshenv and /etc/zsh/zshenv, not ~/.bashrc', () => {
      const [fix] = chatty([['shell', '/usr/bin/zsh']]);
      expect(fix).toBe('move it out of ~deploy/.zshenv and /etc/zsh/zshenv (zsh reads them for every command) into ~deploy/.zshrc (interactive shells only)');
    });
    it("sshd's ~/.ssh/rc: named, beside the shell's files; alone for a shell that reads none (dash)", () => {
      expect(chatty([['shell', '/bin/bash'], ['ssh_rc', '/home/deploy/.ssh/rc']])[0]).toMatch(/\.bashrc.*; or remove it from \/home\/deploy\/\.ssh\/rc \(sshd runs it before every command\)$/);
      expect(chatty([['shell', '/bin/dash'], ['ssh_rc', '/etc/ssh/sshrc']])).toEqual(['remove it from /etc/ssh/sshrc (sshd runs it before every command)']);
      expect(chatty([['shell', '/bin/dash']])[0]).toMatch(/^the login shell of deploy \(\/bin\/dash\) reads no start-up file for a command: look for a ForceCommand/);
    });
    it("sshd's ForceCommand that ran ours (SSH_ORIGINAL_COMMAND set): named beside the shell's files", () => {
      expect(chatty([['shell', '/bin/bash'], ['forced', 'yes']])[0]).toMatch(/\.bashrc.*; or the ForceCommand sshd runs for deploy prints it \(on the host, as root: sshd -T -C user=deploy \| grep -i forcecommand\)$/);
    });
  });
});
