import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMMAND_START, HOST_COMMANDS, LOGIN_SHELL_PREFIX, REFUSED_PREFIX, START_MARKER, STEP_PATH, commandLine, scriptText, sshCommand, stepGuard, stepInput, uploadStep } from '../../core/remote/wrap.ts';
import { parseReports } from '../../core/remote/types.ts';
import { quote as quoteWord } from '../../core/shell.ts';
import type { Step } from '../../core/remote/types.ts';

describe('step wrapping', () => {
  // The bashes below get their stdin from spawnSync (a socket) and, under CI, no SHLVL: bash takes itself for the one
  // sshd started and reads ~/.bashrc. The runner's own (root's: pyenv init, which loops on the exported functions a
  // case below defines) would run in every case: each case gets an empty HOME unless it gives its own.
  const runnerHome = process.env.HOME;
  beforeAll(() => {
    process.env.HOME = mkdtempSync(join(tmpdir(), 'ops-wrap-home-'));
  });
  afterAll(() => {
    process.env.HOME = runnerHome;
  });
  // The step's first process: a bash -c (STEP_BOOT) that runs the rest ("$@") on the session's input.
  const BOOT = / bash -c ('[^']*(?:'\\''[^']*)*') ops-step /.exec(commandLine({ as: 'login', timeout: 30 }, 'deploy', 'shop'))![1];
  const STEP_HEAD = `/usr/bin/env -u BASH_ENV -u ENV -u SHELLOPTS -u BASHOPTS -u BASH_XTRACEFD -u LANGUAGE LC_ALL=C.UTF-8 PATH=${STEP_PATH} SHLVL=1 bash -c ${BOOT} ops-step`;
  const step = { name: 's', script: 'echo hi', timeout: 30 } as const;
  /** stderr without the line STEP_BOOT prints first (LOGIN_SHELL_PREFIX: the login's $SHELL). */
  const afterBoot = (stderr: string) => stderr.replace(new RegExp(`^${LOGIN_SHELL_PREFIX}.*\n`), '');
  it('runs login steps as the login, root steps through sudo unless the login is root, app steps as the app user', () => {
    expect(commandLine({ ...step, as: 'login' }, 'deploy', 'shop')).toBe(`${STEP_HEAD} /usr/bin/timeout -k 10 30 /usr/bin/env --default-signal -u BASH_ENV -u ENV -u SHELLOPTS -u BASHOPTS -u BASH_XTRACEFD -u LANGUAGE PATH=${STEP_PATH} OPS_STEP=1 SHLVL=1 bash -s`);
    expect(commandLine({ ...step, as: 'root' }, 'deploy', 'shop')).toBe(`${STEP_HEAD} /usr/bin/sudo -n -H -- /usr/bin/timeout -k 10 30 /usr/bin/env --default-signal -u BASH_ENV -u ENV -u SHELLOPTS -u BASHOPTS -u BASH_XTRACEFD -u LANGUAGE PATH=${STEP_PATH} OPS_STEP=1 SHLVL=1 bash -s`);
    expect(commandLine({ ...step, as: 'root' }, 'root', 'shop')).toBe(`${STEP_HEAD} /usr/bin/timeout -k 10 30 /usr/bin/env --default-signal -u BASH_ENV -u ENV -u SHELLOPTS -u BASHOPTS -u BASH_XTRACEFD -u LANGUAGE PATH=${STEP_PATH} OPS_STEP=1 SHLVL=1 bash -s`);
    expect(commandLine({ ...step, as: 'app' }, 'root', 'shop')).toBe(`${STEP_HEAD} /usr/bin/sudo -n -H -u shop -- /usr/bin/timeout -k 10 30 /usr/bin/env --default-signal -u BASH_ENV -u ENV -u SHELLOPTS -u BASHOPTS -u BASH_XTRACEFD -u LANGUAGE PATH=${STEP_PATH} OPS_STEP=1 SHLVL=1 bash -s`);
  });
  it("gives the script STEP_PATH whatever PATH sudo hands on (a sudoers' secure_path without /usr/sbin, or with the login's ~/bin first)", () => {
    // What runs after sudo, started with the PATH such a secure_path gives.
    const afterSudo = commandLine({ ...step, as: 'root' }, 'deploy', 'shop').split(' /usr/bin/sudo -n -H -- ')[1]!;
    const out = spawnSync('bash', ['-c', `PATH=/home/deploy/bin:/usr/bin:/bin exec ${afterSudo}`], { input: 'echo "$PATH"', encoding: 'utf8' });
    expect([out.stdout, out.status]).toEqual([`${STEP_PATH}\n`, 0]);
  });
  it("puts the connection's id in the script's own environment (env(1): its bash, not only its children, carries it), refusing an id that is not one word", () => {
    expect(commandLine({ ...step, as: 'app' }, 'deploy', 'shop', '0a1b2c')).toBe(`${STEP_HEAD} /usr/bin/sudo -n -H -u shop -- /usr/bin/timeout -k 10 30 /usr/bin/env --default-signal -u BASH_ENV -u ENV -u SHELLOPTS -u BASHOPTS -u BASH_XTRACEFD -u LANGUAGE PATH=${STEP_PATH} OPS_CONNECTION=0a1b2c OPS_STEP=1 SHLVL=1 bash -s`);
    const out = spawnSync('bash', ['-c', commandLine({ ...step, as: 'login' }, 'deploy', 'shop', 'c0ffee')], { input: 'tr "\\0" "\\n" < /proc/$$/environ', encoding: 'utf8' });
    expect(out.stdout.split('\n')).toContain('OPS_CONNECTION=c0ffee');
    expect(() => commandLine({ ...step, as: 'login' }, 'deploy', 'shop', 'a b')).toThrow(/not letters, digits/);
  });
  it('begins its command with COMMAND_START (how the transport tells a login shell\'s trace of it, set -x, from text)', () => {
    expect(sshCommand({ ...step, as: 'app' }, 'deploy', 'shop').startsWith(`exec ${COMMAND_START}`)).toBe(true);
  });
  it("reaches env(1) as the same words whatever the login's shell (sshd runs `$SHELL -c`: sh, bash, zsh, fish, csh, tcsh quote, `$`, `!` and `\\` differently), for every kind of step", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-argv-'));
    const dump = join(dir, 'dump');
    writeFileSync(dump, '#!/bin/sh\nprintf "%s\\0" "$@"\n', { mode: 0o755 });
    for (const as of ['login', 'root', 'app'] as const) {
      const command = sshCommand({ ...step, as }, 'deploy', 'shop', 'c0ffee');
      const words = (shell: string) => spawnSync(shell, ['-c', command.replace(`exec ${COMMAND_START}`, `exec ${dump} ${COMMAND_START.slice('/usr/bin/env '.length)}`)], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: dir } });
      const bash = words('bash');
      expect(bash.stdout.split('\0')).toContain('ops-step');
      for (const shell of ['dash', 'zsh', 'fish', 'csh', 'tcsh']) expect([shell, words(shell).stdout]).toEqual([shell, bash.stdout]);
    }
  });
  it("is exec'd by the login shell: a start-up file's EXIT trap neither adds text after the step nor turns its failure into a success", () => {
    const failing = { name: 's', script: 'echo hi; exit 3', timeout: 30, as: 'login' } as const;
    // What sshd runs: `$SHELL -c COMMAND`, after ~/.bashrc set its trap.
    const login = spawnSync('bash', ['-c', `trap 'echo "bye from bashrc"; exit 0' EXIT\n${sshCommand(failing, 'deploy', 'shop')}`], { input: stepInput(failing), encoding: 'utf8' });
    expect([login.stdout, login.status]).toEqual([`\n${START_MARKER}\nhi\n`, 3]);
  });
  it("runs the script's commands, not functions the login's environment exported (export -f in ~/.bashrc)", () => {
    const step = { name: 's', script: 'echo hi; cd /tmp; printf "%s\\n" "$PWD"', timeout: 30, as: 'login' } as const;
    const env = { ...process.env, 'BASH_FUNC_echo%%': '() { builtin echo "[12:00]" "$@"; }', 'BASH_FUNC_cd%%': '() { builtin cd "$@" && builtin echo "entered $PWD"; }', 'BASH_FUNC_printf%%': '() { builtin echo printf; }' };
    const out = spawnSync('bash', ['-c', sshCommand(step, 'deploy', 'shop')], { input: stepInput(step), encoding: 'utf8', env });
    expect([out.stdout, out.status]).toEqual([`\n${START_MARKER}\nhi\n/tmp\n`, 0]);
  });
  it("runs the guard and the script as sent though the login exported functions named after the very commands they use (unset, builtin, command, compgen: what removes functions; printf, exit, [, set, cd...)", () => {
    const step = { name: 's', script: 'echo hi; cd /tmp; printf "%s\\n" "$PWD"; test -d /tmp && echo "$(ulimit -n)" >/dev/null; exit 3', timeout: 30, as: 'login' } as const;
    // Each one prints FN and succeeds: standing in for `[`, it would have the guard refuse; for exit, let a refused step run.
    const names = ['unset', 'builtin', 'command', 'compgen', 'printf', 'exit', '[', 'test', 'set', 'cd', 'echo', 'readlink', 'ulimit', 'umask', 'export', 'declare', 'local', 'trap', 'shopt', 'eval', 'source', '.', 'read', 'mapfile'];
    // SHLVL 1: bash -c here stands in for the login shell, and with stdin a socket (node's stdio) and SHLVL unset or
    // 0 (a test run started as a background job) it reads /etc/bash.bashrc and ~/.bashrc itself (bash's isnetconn
    // rule), whose `[` and `export` are these functions; the login's start-up files are not what this test is about.
    const env = { ...process.env, SHLVL: '1', ...Object.fromEntries(names.map((n) => [`BASH_FUNC_${n}%%`, `() { /bin/echo FN ${n}; }`])) };
    const out = spawnSync('bash', ['-c', sshCommand(step, 'deploy', 'shop')], { input: stepInput(step), encoding: 'utf8', env, timeout: 20_000 });
    expect([out.stdout, afterBoot(out.stderr), out.status]).toEqual([`\n${START_MARKER}\nhi\n/tmp\n`, `\n${START_MARKER}\n`, 3]);
    // read by another shell: still refused (exit is bash's function only)
    const other = spawnSync('sh', ['-s'], { input: stepInput(step), encoding: 'utf8', env });
    expect([other.stdout, other.status]).toEqual([`\n${START_MARKER}\n${REFUSED_PREFIX}shell sh\n`, 125]);
  });
  it("has the start-up files read once, by the login shell: not again by the bashes of the command line, which Debian's bash would take for the one sshd started (SSH_CLIENT set, no SHLVL)", () => {
    const home = mkdtempSync(join(tmpdir(), 'ops-home-'));
    writeFileSync(join(home, '.bashrc'), 'echo "read by $$" >> "$HOME/sourced"\n');
    const step = { name: 's', script: 'echo hi', timeout: 30, as: 'login' } as const;
    // What sshd gives the login shell: SSH_CLIENT, no SHLVL; bash then reads ~/.bashrc itself (SSH_SOURCE_BASHRC).
    const env = { PATH: process.env.PATH, HOME: home, SSH_CLIENT: '10.0.0.1 50000 22', SSH_CONNECTION: '10.0.0.1 50000 10.0.0.2 22' };
    const out = spawnSync('bash', ['-c', sshCommand(step, 'deploy', 'shop')], { input: stepInput(step), encoding: 'utf8', env });
    expect([out.stdout, out.status]).toEqual([`\n${START_MARKER}\nhi\n`, 0]);
    expect(readFileSync(join(home, 'sourced'), 'utf8').trim().split('\n')).toHaveLength(1);
  });
  it("runs the script with no signal ignored, though the login shell ignored some (trap '' PIPE USR1 in ~/.bashrc: inherited through exec)", () => {
    // SIGPIPE (13) and SIGUSR1 (10) among the ignored (SigIgn, a mask of bit N-1); a writer to a closed pipe ends.
    const script = "ign=$(sed -n 's/^SigIgn:\\t//p' /proc/$$/status); echo \"ignored: $(( 0x$ign & (1 << 12 | 1 << 9) ))\"; { (while :; do echo y; done) | head -n 1; } || true";
    const step = { name: 's', script, timeout: 30, as: 'login' } as const;
    const out = spawnSync('bash', ['-c', `trap '' PIPE USR1\n${sshCommand(step, 'deploy', 'shop')}`], { input: stepInput(step), encoding: 'utf8', timeout: 20_000 });
    expect([out.stdout, out.status]).toEqual([`\n${START_MARKER}\nignored: 0\ny\n`, 0]);
  });
  it("runs the script with bash's own options, not those the login's environment exports (SHELLOPTS, BASHOPTS, BASH_ENV, BASH_XTRACEFD)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-opts-'));
    const bashEnv = join(dir, 'bash_env');
    writeFileSync(bashEnv, 'set -o noclobber\n');
    const step = { name: 's', script: `t=$(mktemp ${dir}/t.XXXXXX); echo x > "$t"; for f in ${dir}/none-*; do echo "$f"; done`, timeout: 30, as: 'login' } as const;
    // BASH_XTRACEFD=1 or 2: unset by the prelude, bash would close the step's stdout or stderr.
    for (const env of [{ SHELLOPTS: 'braceexpand:hashall:interactive-comments:noclobber' }, { BASHOPTS: 'failglob' }, { BASH_ENV: bashEnv }, { BASH_XTRACEFD: '1' }, { BASH_XTRACEFD: '2' }]) {
      // HOME and SHLVL as a login's: Debian's bash reads ~/.bashrc when its stdin is a socket and SHLVL is unset
      // (SSH_SOURCE_BASHRC), and this machine's own ~/.bashrc is not the subject here.
      const out = spawnSync('bash', ['-c', sshCommand(step, 'deploy', 'shop')], { input: stepInput(step), encoding: 'utf8', env: { ...process.env, HOME: dir, SHLVL: '1', ...env } });
      expect([out.stdout, afterBoot(out.stderr), out.status]).toEqual([`\n${START_MARKER}\n${dir}/none-*\n`, `\n${START_MARKER}\n`, 0]);
    }
  });
  it("runs the script in a defined environment, not the login's: its exports (NODE_ENV, npm_config_omit, GIT_DIR, TMPDIR...) unset, PATH Debian's, the proxy kept", () => {
    const step = { name: 's', script: 'env | sort', timeout: 30, as: 'login' } as const;
    const stray = { NODE_ENV: 'production', npm_config_omit: 'dev', NPM_CONFIG_IGNORE_SCRIPTS: 'true', NODE_OPTIONS: '--max-old-space-size=16', PIP_REQUIRE_VIRTUALENV: '1', UV_PYTHON: '/opt/py/bin/python3', VIRTUAL_ENV: '/opt/venv', PYTHONPATH: '/opt/lib', GIT_DIR: '/tmp/x.git', TMPDIR: '/nonexistent', LANG: 'xx_XX.UTF-8' };
    const env = { HOME: '/home/deploy', USER: 'deploy', LOGNAME: 'deploy', SSH_CONNECTION: '10.0.0.1 5000 10.0.0.2 22', https_proxy: 'http://proxy:3128', PATH: `/home/deploy/bin:${process.env.PATH}`, ...stray };
    const out = spawnSync('bash', ['-c', sshCommand(step, 'deploy', 'shop', 'c0ffee')], { input: stepInput(step), encoding: 'utf8', env });
    const vars = out.stdout.split('\n').filter((l) => /^[A-Za-z_]+=/.test(l)).map((l) => l.slice(0, l.indexOf('=')));
    expect(vars.filter((v) => v in stray)).toEqual([]);
    expect(out.stdout).toContain(`\nPATH=${STEP_PATH}\n`);
    for (const kept of ['HOME=/home/deploy', 'USER=deploy', 'SSH_CONNECTION=10.0.0.1 5000 10.0.0.2 22', 'OPS_CONNECTION=c0ffee', 'LC_ALL=C.UTF-8', 'https_proxy=http://proxy:3128']) expect(out.stdout).toContain(`\n${kept}\n`);
    expect(out.status).toBe(0);
  });
  it("unsets the login's locale without a word, though the host lacks it (fish's own LC_CTYPE=en_US.UTF-8, a ~/.bashrc's LC_MESSAGES): nothing on stderr for ops to blame on the login shell", () => {
    const step = { name: 's', script: 'echo hi; echo "$LC_ALL"', timeout: 30, as: 'login' } as const;
    const env = { PATH: process.env.PATH, HOME: '/home/deploy', LC_CTYPE: 'xx_XX.UTF-8', LC_MESSAGES: 'yy_YY.UTF-8', LANG: 'zz_ZZ.UTF-8' };
    const out = spawnSync('bash', ['-c', sshCommand(step, 'deploy', 'shop')], { input: stepInput(step), encoding: 'utf8', env });
    expect([out.stdout, afterBoot(out.stderr), out.status]).toEqual([`\n${START_MARKER}\nhi\nC.UTF-8\n`, `\n${START_MARKER}\n`, 0]);
  });
  it("finds env, timeout and bash where Debian puts them, not in a directory the login put first on PATH (a ~/bin/timeout of its own)", () => {
    const bin = mkdtempSync(join(tmpdir(), 'ops-bin-'));
    for (const name of ['env', 'timeout', 'bash', 'sudo']) {
      writeFileSync(join(bin, name), '#!/bin/sh\necho "the login\'s own $0" >&2; exit 42\n', { mode: 0o755 });
    }
    const step = { name: 's', script: 'echo hi', timeout: 30, as: 'login' } as const;
    const out = spawnSync('/bin/bash', ['-c', sshCommand(step, 'deploy', 'shop')], { input: stepInput(step), encoding: 'utf8', env: { ...process.env, HOME: bin, SHLVL: '1', PATH: `${bin}:${process.env.PATH}` } });
    expect([out.stdout, afterBoot(out.stderr), out.status]).toEqual([`\n${START_MARKER}\nhi\n`, `\n${START_MARKER}\n`, 0]);
  });
  it("runs sudo, timeout and env by their paths, not a wrapper or shadow in /usr/local/bin (first in STEP_PATH and sudo's secure_path), whose text ops would blame on the login's start-up files", () => {
    const step = { name: 's', script: 'echo hi', timeout: 30, as: 'login' } as const;
    // /usr/local/bin a tmpfs of the test's own (a mount namespace: the machine's is untouched), holding the shadows
    const shadows = ['timeout', 'env', 'sudo', 'flock'].map((name) => `printf '#!/bin/sh\\necho "a shadow %s" >&2\\nexec /usr/bin/%s "$@"\\n' ${name} ${name} > /usr/local/bin/${name} && chmod 755 /usr/local/bin/${name}`).join(' && ');
    const setup = `mount --make-rprivate / && mount -t tmpfs tmpfs /usr/local/bin && ${shadows} && exec ${commandLine(step, 'root', 'shop')}`;
    const out = spawnSync('unshare', ['-m', 'bash', '-c', setup], { input: scriptText(step), encoding: 'utf8', env: { ...process.env, SHLVL: '1' }, timeout: 30_000 });
    expect([out.stdout, afterBoot(out.stderr), out.status]).toEqual([`\n${START_MARKER}\nhi\n`, `\n${START_MARKER}\n`, 0]);
    for (const as of ['root', 'app'] as const) expect(commandLine({ ...step, as }, 'deploy', 'shop')).toContain(` ${HOST_COMMANDS.sudo} -n -H `);
    expect(HOST_COMMANDS).toEqual({ sudo: '/usr/bin/sudo', timeout: '/usr/bin/timeout', env: '/usr/bin/env', flock: '/usr/bin/flock' });
  });
  it('names sudo, timeout and flock by their paths in every step script too (core/steps, core/remote: the text they print would be blamed on the login)', () => {
    const root = fileURLToPath(new URL('../../core', import.meta.url));
    const files = ['steps', 'steps/sh', 'remote', 'ops'].flatMap((d) => readdirSync(join(root, d)).filter((f) => /\.(ts|sh)$/.test(f)).map((f) => join(root, d, f)));
    // a command word (not a hint's words to a person, `sudo systemctl …`): sudo -n, flock -…/fd, timeout N
    const bare = /(?<![\w./-])(?:sudo -n\b(?! asks)|flock (?:-[wsun]|\$|"\$|\d)|timeout (?:-k|\d|\$))/;
    const found = files.flatMap((f) => readFileSync(f, 'utf8').split('\n').map((line, i) => [`${f.slice(root.length + 1)}:${i + 1}`, line] as const)).filter(([, line]) => !/^\s*(#|\/\/|\*)/.test(line) && bare.test(line.replace(/(['"`]).*?sudo (?!-n)[^'"`]*\1/g, '')));
    expect(found.map(([where]) => where)).toEqual([]);
  });
  it("refuses before anything runs when a start-up file took the session's input away (exec </dev/null, exec <&- in ~/.bashrc): bash would read an empty script and end with exit code 0", () => {
    const step = { name: 's', script: 'echo hi', timeout: 30, as: 'login' } as const;
    expect(BOOT).toContain('exec "$@"');
    for (const [redirect, where] of [['exec </dev/null', '/dev/null'], ['exec 0<&-', 'closed']]) {
      const out = spawnSync('bash', ['-c', `${redirect}\n${sshCommand(step, 'deploy', 'shop')}`], { input: stepInput(step), encoding: 'utf8' });
      expect([out.stdout, out.status]).toEqual([`\n${START_MARKER}\n${REFUSED_PREFIX}input ${where}\n`, 125]);
    }
    // as sent: a pipe, a socket (sshd's), a file (a test's here-document)
    const dir = mkdtempSync(join(tmpdir(), 'ops-input-'));
    writeFileSync(join(dir, 'in'), stepInput(step));
    const fromFile = spawnSync('bash', ['-c', `{ ${sshCommand(step, 'deploy', 'shop')}; } < ${dir}/in`], { encoding: 'utf8' });
    expect([fromFile.stdout, fromFile.status]).toEqual([`\n${START_MARKER}\nhi\n`, 0]);
  });
  it("refuses before anything runs under a resource limit the login set (ulimit -n 64, -u 200, -s 256, ulimit -f, -t, -v or -d in ~/.bashrc), naming it", () => {
    const step = { name: 's', script: 'echo hi', timeout: 30, as: 'login' } as const;
    for (const [limit, line] of [['ulimit -n 64', 'limit ulimit -n 64'], ['ulimit -u 200', 'limit ulimit -u 200'], ['ulimit -s 256', 'limit ulimit -s 256'], ['ulimit -f 100000', 'limit ulimit -f 100000'], ['ulimit -t 600', 'limit ulimit -t 600'], ['ulimit -v 2000000', 'limit ulimit -v 2000000'], ['ulimit -d 4000000', 'limit ulimit -d 4000000']]) {
      const out = spawnSync('bash', ['-c', `${limit}\n${sshCommand(step, 'deploy', 'shop')}`], { input: stepInput(step), encoding: 'utf8' });
      expect([out.stdout, out.status]).toEqual([`\n${START_MARKER}\n${REFUSED_PREFIX}${line}\n`, 125]);
    }
    // Set before the login shell (pam_limits in sshd's session process, here a bash named sshd, the login shell its
    // child, not exec'd: `exit $?` after it, or bash would exec its last command): `session` after it; set by the login
    // shell itself: not.
    const dir = mkdtempSync(join(tmpdir(), 'ops-sshd-'));
    copyFileSync('/bin/bash', join(dir, 'sshd'));
    for (const [where, sessionWord] of [['sshd', ' session'], ['login', '']] as const) {
      const login = `${where === 'login' ? 'ulimit -n 256; ulimit -s 512\n' : ''}${sshCommand(step, 'deploy', 'shop')}`;
      const out = spawnSync(join(dir, 'sshd'), ['-c', `${where === 'sshd' ? 'ulimit -n 256; ulimit -s 512; ' : ''}bash -c "$0"; exit $?`, login], { input: stepInput(step), encoding: 'utf8' });
      expect([out.stdout, out.status]).toEqual([`\n${START_MARKER}\n${REFUSED_PREFIX}limit ulimit -n 256${sessionWord}\n`, 125]);
    }
    // pam_limits' nproc (/proc/PID/limits names that row in two words, "Max processes"): said as the session's too.
    const nproc = spawnSync(join(dir, 'sshd'), ['-c', 'ulimit -u 300; bash -c "$0"; exit $?', sshCommand(step, 'deploy', 'shop')], { input: stepInput(step), encoding: 'utf8' });
    expect([nproc.stdout, nproc.status]).toEqual([`\n${START_MARKER}\n${REFUSED_PREFIX}limit ulimit -u 300 session\n`, 125]);
    // Set by sudo's session (pam_limits for the user the step runs as, here a bash named sudo under the login's shell):
    // `sudo <user>` after it, whether or not the session began with a limit of its own (vice versa: the login's alone
    // is the session's, above). Before, no word: blamed on the login's ~/.bashrc, which sets none.
    writeFileSync(join(dir, 'sudo'), '#!/bin/bash\nulimit -u 300\nbash -c "$1"\nexit $?\n', { mode: 0o755 });
    const me = spawnSync('id', ['-un'], { encoding: 'utf8' }).stdout.trim();
    for (const sshdLimit of ['', 'ulimit -u 2000; ']) {
      const bySudo = spawnSync(join(dir, 'sshd'), ['-c', `${sshdLimit}bash -c "$0"; exit $?`, `${join(dir, 'sudo')} ${quoteWord(sshCommand(step, 'deploy', 'shop'))}; exit $?`], { input: stepInput(step), encoding: 'utf8' });
      expect([bySudo.stdout, bySudo.status]).toEqual([`\n${START_MARKER}\n${REFUSED_PREFIX}limit ulimit -u 300 sudo ${me}\n`, 125]);
    }
    // Linux's own stack size, or a larger one, and a processes limit of 1024 or more, run the step.
    const ok = spawnSync('bash', ['-c', `ulimit -s 8192; ulimit -u 4096\n${sshCommand(step, 'deploy', 'shop')}`], { input: stepInput(step), encoding: 'utf8' });
    expect([ok.stdout, ok.status]).toEqual([`\n${START_MARKER}\nhi\n`, 0]);
  });
  it('sends the script on stdin after the start marker (on both streams) and the strict prelude', () => {
    const text = scriptText({ ...step, as: 'login' });
    expect(text.startsWith('export LC_ALL=C.UTF-8\n')).toBe(true);
    expect(text).toContain(`\nprintf '\\n${START_MARKER}\\n'; printf '\\n${START_MARKER}\\n' >&2\nset -euo pipefail\n`);
    expect(text.endsWith('echo hi\n')).toBe(true);
    const out = spawnSync('bash', ['-s'], { input: text, encoding: 'utf8' });
    expect([out.stdout, out.stderr]).toEqual([`\n${START_MARKER}\nhi\n`, `\n${START_MARKER}\n`]);
  });
  it('sends the guard ahead of the script: run by the command line, the script runs; read by another shell, it stops at once saying so', () => {
    const text = stepInput({ ...step, as: 'login' });
    expect(text.startsWith(`${stepGuard}\n`)).toBe(true);
    expect(text).toContain(scriptText({ ...step, as: 'login' }));
    const ours = spawnSync('bash', ['-c', commandLine({ ...step, as: 'login' }, 'deploy', 'shop')], { input: text, encoding: 'utf8' });
    expect([ours.stdout, ours.status]).toEqual([`\n${START_MARKER}\nhi\n`, 0]);
    const other = spawnSync('sh', ['-s'], { input: text, encoding: 'utf8' });
    expect([other.stdout, other.status]).toEqual([`\n${START_MARKER}\n${REFUSED_PREFIX}shell sh\n`, 125]);
  });
  it('reads the script whole before it runs (not a byte a time, as bash -s reads a pipe): its commands cannot read its text, what follows it on stdin stays for them, and a script cut short runs not at all', () => {
    const run = (input: string | Buffer, s: Step) => spawnSync('bash', ['-c', commandLine({ ...s, as: 'login' }, 'deploy', 'shop')], { input, encoding: 'utf8' });
    // A command that reads stdin (cat) gets what follows the script, not the script's next lines.
    const reader: Step = { name: 'read', as: 'login', script: 'echo "got: $(cat)"\necho after' };
    expect(run(`${stepInput(reader)}tail bytes`, reader).stdout).toBe(`\n${START_MARKER}\ngot: tail bytes\nafter\n`);
    // Multibyte text (its size is in bytes) and a script's own `exit` status.
    const utf8: Step = { name: 'utf8', as: 'login', script: "echo 'é ✓ 🚀'\nexit 3" };
    expect([run(stepInput(utf8), utf8).stdout, run(stepInput(utf8), utf8).status]).toEqual([`\n${START_MARKER}\né ✓ 🚀\n`, 3]);
    // Cut anywhere before its end (the connection lost while it was sent): no line of it runs.
    const full = stepInput(reader);
    for (const keep of [full.length - 2, full.length - 10, full.indexOf('echo "got') + 5]) {
      const cut = run(full.slice(0, keep), reader);
      expect([cut.stdout, cut.status]).toEqual(['', 125]);
      expect(cut.stderr).toContain("the step's script arrived cut short");
    }
  });
  it('uploads: bash reads the script, then head takes exactly the bytes that follow, into a temp file renamed at the end', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-wrap-'));
    const content = Buffer.from([0x23, 0x21, 10, 0, 255, 0x65, 0x78, 0x69, 0x74, 10, 1, 2]); // '#!\n' ... 'exit\n': never run as script
    const step = uploadStep(`${dir}/f.env`, content.length, 0o640);
    const out = spawnSync('bash', ['-s'], { input: Buffer.concat([Buffer.from(scriptText(step)), content]) });
    expect(out.status).toBe(0);
    expect(readFileSync(`${dir}/f.env`).equals(content)).toBe(true);
    expect((statSync(`${dir}/f.env`).mode & 0o777).toString(8)).toBe('640');
    // Cut short (fewer bytes than announced): fails, and leaves neither the file nor a temporary one.
    const cut = spawnSync('bash', ['-s'], { input: Buffer.concat([Buffer.from(scriptText(uploadStep(`${dir}/g`, 100, 0o600))), content]) });
    expect(cut.status).toBe(1);
    expect(cut.stderr.toString()).toContain(`the upload of ${dir}/g was cut short: 12 of 100 bytes arrived`);
    expect(readdirSync(dir)).toEqual(['f.env']);
    expect(step.script).not.toContain(content.toString('latin1'));
    // A write that fails (set -e ends the script inside the upload's function: its EXIT trap then runs out of the
    // function's scope): no temporary file left, no word of the trap's own.
    const failed = spawnSync('bash', ['-c', 'ulimit -f 0; exec bash -s'], { input: Buffer.concat([Buffer.from(scriptText(uploadStep(`${dir}/h`, content.length, 0o600))), content]) });
    expect(failed.status).not.toBe(0);
    expect(failed.stderr.toString()).not.toMatch(/unbound variable/);
    expect(readdirSync(dir)).toEqual(['f.env']);
  });
  it('parses @ops report lines only', () => {
    expect(parseReports('x\n@ops a 1\n@ops b two words\n@opsx no\n@ops flag')).toEqual([
      ['a', '1'],
      ['b', 'two words'],
      ['flag', ''],
    ]);
  });
});
