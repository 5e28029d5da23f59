// Odd login shells and start-up files of the deploy login on a real host, through the CLI: a ~/.bashrc that execs
// another shell, exits, reads stdin or redirects stderr for non-interactive sessions; nologin as the login shell;
// sudo's own warning (the host name missing from /etc/hosts) and `Defaults requiretty`. Each: ops ping and a deploy
// say what is wrong and the fix; nothing runs in the wrong shell; no lock is said to be left where none was taken.
// The files are changed through the host's root filesystem (a broken login cannot repair itself).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downHost, paths, SERVICES_ADDRESS, sshRun, type Host } from '../hosts/index.ts';
import { APT_PROXY_PORT } from '../hosts/paths.ts';
import { quote } from '../../core/shell.ts';
import { runOps, type CliResult } from '../support/cli.ts';
import { appRepo, get, makeProject, readyHost, testConfig, testDatabase, RELOAD_SSHD, type TestProject } from './support.ts';

let host: Host;
let project: TestProject;
/** The environment as beforeAll wrote it (a test that changes it puts it back). */
let config: Record<string, unknown>;

const env = () => ({ PATH: process.env.PATH, HOME: process.env.HOME, USER: 'e2e', NO_COLOR: '1' });
const ops = (...argv: string[]) => runOps(argv, { root: project.root, processEnv: env() });
const text = (r: CliResult) => r.out + r.err;

/** A file of the host (its root filesystem here), changed for `fn` and put back whatever happens. */
async function withFile(path: string, change: (text: string) => string, fn: () => Promise<void>): Promise<void> {
  const file = join(paths.hostsDir, host.name, path);
  const before = readFileSync(file, 'utf8');
  const { uid, gid } = statSync(file);
  writeFileSync(file, change(before));
  chownSync(file, uid, gid);
  try {
    await fn();
  } finally {
    writeFileSync(file, before);
    chownSync(file, uid, gid);
  }
}

const bashrc = (line: string, fn: () => Promise<void>) => withFile('home/deploy/.bashrc', (t) => `${line}\n${t}`, fn);

beforeAll(async () => {
  host = await readyHost('lgs');
  config = testConfig([host], await appRepo(), await testDatabase(`login_${process.pid}`));
  project = makeProject('e2e', config);
}, 900_000);

afterAll(async () => {
  if (host) await downHost(host.name, { purge: true });
  project?.cleanup();
});

/** ops ping and a deploy both fail with `message` (and the hint `fix`); the deploy names no lock to release. */
async function bothSay(message: RegExp, fix: RegExp): Promise<void> {
  const ping = await ops('ping', 'e2e');
  expect(ping.code, text(ping)).toBe(1);
  expect(text(ping)).toMatch(message);
  expect(text(ping)).toMatch(fix);
  const deploy = await ops('deploy', 'e2e', '--ref', 'v1');
  expect(deploy.code, text(deploy)).not.toBe(0);
  expect(text(deploy)).toMatch(message);
  expect(text(deploy)).toMatch(fix);
  expect(text(deploy)).not.toMatch(/could not be released|ops lock release/);
}

describe.sequential('odd login shells, through the CLI', () => {
  for (const [line, shell] of [
    ['[ -z "${INNER:-}" ] && export INNER=1 && exec /bin/bash', '/bin/bash'],
    ['exec /bin/sh', '/bin/sh'],
  ] as const) {
    it(`a ~/.bashrc that starts another shell (${line}): nothing runs in it, ping and deploy name ~/.bashrc and the fix`, async () => {
      await bashrc(line, () => bothSay(new RegExp(`did not run: ~deploy/\\.bashrc \\(or ~/\\.profile, /etc/bash\\.bashrc\\) on ${host.name} starts another shell \\(${shell}, an exec\\)`), /move the exec below the interactive guard/));
    }, 300_000);
  }

  for (const [line, code] of [
    ['exit 7', 7],
    ['[ -z "$PS1" ] && exit', 0],
  ] as const) {
    it(`a ~/.bashrc that ends the shell first (${line}): did not start, exit code ${code}, the fix; no lock said to be left`, async () => {
      await bashrc(line, () => bothSay(new RegExp(`did not start: the login shell of deploy ended with exit code ${code} before the step's script began`), /must not exit or exec for non-interactive sessions/));
    }, 300_000);
  }

  it('nologin as the login shell: said so, with chsh', async () => {
    await withFile('etc/passwd', (t) => t.replace(/^(deploy:.*:)[^:\n]*$/m, '$1/usr/sbin/nologin'), () =>
      bothSay(/did not start: the login shell of deploy \(its login shell is nologin\) ended with exit code 1 before the step's script began, printing: "This account is currently not available\."/, /chsh -s \/bin\/bash deploy/),
    );
  }, 300_000);

  it("root on a cloud image (cloud-init's command=\"…\" before the key in ~root/.ssh/authorized_keys): ping and deploy say to log in as debian, with the setting", async () => {
    const file = join(paths.hostsDir, host.name, 'root/.ssh/authorized_keys');
    const key = readFileSync(join(paths.hostsDir, host.name, 'home/deploy/.ssh/authorized_keys'), 'utf8').trim();
    writeFileSync(file, `no-port-forwarding,no-agent-forwarding,no-X11-forwarding,command="echo 'Please login as the user \\"debian\\" rather than the user \\"root\\".';echo;sleep 10;exit 142" ${key}\n`, { mode: 0o600 });
    project.write({ ...config, hosts: (config.hosts as object[]).map((h) => ({ ...h, user: 'root' })) });
    try {
      await bothSay(/did not start: \S+ lets ops's key in as root only to say to log in as debian, then exit 142 \(a command="…" before the key in ~root\/\.ssh\/authorized_keys/, /log in as debian: set user: debian for \S+ in hosts\[\]/);
    } finally {
      project.write(config);
      rmSync(file);
    }
  }, 300_000);

  it('a command="…" before ops\'s key in ~deploy/.ssh/authorized_keys (a key meant for backups only, restrict): ping and deploy name authorized_keys beside the ForceCommand, no lock said to be left', async () => {
    const file = join(paths.hostsDir, host.name, 'home/deploy/.ssh/authorized_keys');
    const before = readFileSync(file, 'utf8');
    const { uid, gid } = statSync(file);
    writeFileSync(file, before.replace(/^(ssh-|ecdsa-)/m, `restrict,command="echo 'This key runs the nightly backup only'; exit 1" $1`));
    chownSync(file, uid, gid);
    try {
      await bothSay(/did not start: the login shell of deploy ended with exit code 1 before the step's script began, printing: "This key runs the nightly backup only"/, /or a command="…" option before ops's key in deploy's authorized_keys \(~deploy\/\.ssh\/authorized_keys, or where sshd's AuthorizedKeysFile says\): remove it for ops's key, or have it run "\$SSH_ORIGINAL_COMMAND"/);
    } finally {
      writeFileSync(file, before);
      chownSync(file, uid, gid);
    }
  }, 300_000);

  it("fish as the login shell (which exports LC_CTYPE=en_US.UTF-8, a locale the host lacks): ping finds nothing wrong, a deploy works without a warning", async () => {
    await sshRun(host, 'sudo timeout 240 apt-get install -y -qq fish >/dev/null', { timeoutMs: 300_000 });
    await withFile('etc/passwd', (t) => t.replace(/^(deploy:.*:)[^:\n]*$/m, '$1/usr/bin/fish'), async () => {
      const ping = await ops('ping', 'e2e');
      expect(ping.code, text(ping)).toBe(0);
      expect(text(ping)).not.toMatch(/prints text|setlocale/);
      const deploy = await ops('deploy', 'e2e', '--ref', 'v1');
      expect(deploy.code, text(deploy)).toBe(0);
      expect(text(deploy)).not.toMatch(/prints text|setlocale/);
      expect((await get(host)).body).toContain('Version 1.0.0');
    });
  }, 900_000);

  it('a ~/.bashrc that waits for non-interactive sessions (a sleep): ping says the script never began, naming the start-up files, at its time limit', async () => {
    await bashrc('sleep 600', async () => {
      const ping = await ops('ping', 'e2e');
      expect(ping.code, text(ping)).toBe(1);
      expect(text(ping)).toMatch(/did not start: in \d+ s the login shell of deploy had not begun the step's script \(nothing came back\): a start-up file, ~deploy\/\.bashrc \(or ~\/\.profile/);
      expect(text(ping)).toMatch(/move what waits below the interactive guard/);
    });
  }, 300_000);

  it("sshd's ForceCommand internal-sftp for deploy (a Match block): ping and deploy say sftp only, with where to look", async () => {
    // Changed through root's login: deploy's runs no command once it is in place.
    const root = join(paths.hostsDir, host.name);
    const rootKeys = join(root, 'root/.ssh/authorized_keys');
    const conf = join(root, 'etc/ssh/sshd_config.d/70-sftp-only.conf');
    writeFileSync(rootKeys, readFileSync(join(root, 'home/deploy/.ssh/authorized_keys')), { mode: 0o600 });
    // Host's user is deploy by type: root is this test's only.
    const reload = () => sshRun({ ...host, user: 'root' } as unknown as Host, `sshd -t && ${RELOAD_SSHD}`);
    writeFileSync(conf, 'Match User deploy\n    ForceCommand internal-sftp\n');
    try {
      await reload();
      await bothSay(/did not start: sshd there lets deploy use sftp only \(ForceCommand internal-sftp/, /sshd -T -C user=deploy \| grep -i forcecommand shows it; take deploy out of that Match block/);
    } finally {
      rmSync(conf);
      await reload();
      rmSync(rootKeys);
    }
  }, 300_000);

  it('a ~/.bashrc that reads stdin: the step is stopped before it does anything, saying so', async () => {
    await bashrc('read -r -t 1 _discard || true', () => bothSay(/reads standard input for non-interactive sessions \(a read\), which took the first line of the step's script; ops stopped it before it did anything/, /move that read below the interactive guard/));
  }, 300_000);

  it('a ~/.bashrc that sends stderr to a file: ping refuses, naming the file', async () => {
    await bashrc('exec 2>>~/.bash_errors', async () => {
      const ping = await ops('ping', 'e2e');
      expect(ping.code, text(ping)).toBe(1);
      expect(text(ping)).toMatch(/sends the standard error of non-interactive sessions elsewhere \(to \/home\/deploy\/\.bash_errors, e\.g\. exec 2>>file\)/);
      const deploy = await ops('deploy', 'e2e', '--ref', 'v1');
      expect(deploy.code, text(deploy)).not.toBe(0);
      expect(text(deploy)).toMatch(/standard error/);
    });
  }, 300_000);

  it('a ~/.bashrc that sends stdout to a file: nothing runs, ping and deploy name the redirection (not "did not start")', async () => {
    await bashrc('exec >>~/.bash_out', () => bothSay(/did not run: ~deploy\/\.bashrc \(or ~\/\.profile, \/etc\/bash\.bashrc\) on \S+ sends the standard output of non-interactive sessions elsewhere \(to \/home\/deploy\/\.bash_out, e\.g\. exec >>file\)/, /move that redirection below the interactive guard/));
  }, 300_000);

  it('a ~/.bashrc that sends stdout and stderr to syslog (exec > >(logger) 2>&1): nothing runs, no lock is left, ping and deploy say so', async () => {
    // Before: the lock step ran (the lock taken), its report lost; the unlock's too, so the lock stayed.
    await bashrc('exec > >(logger -t bashrc) 2>&1', () => bothSay(/did not run: ~deploy\/\.bashrc \(or ~\/\.profile, \/etc\/bash\.bashrc\) on \S+ sends the standard output and standard error of non-interactive sessions to one place/, /move that redirection below the interactive guard/));
  }, 300_000);

  // -v: a build of the sample app otherwise fails in Node.js ("WebAssembly.instantiate(): Out of memory"), the host changed.
  // -s 256: Node.js dies of SIGSEGV on a deep recursion (exit code 139), the build's failure.
  // -u 200: processes and threads of the user, the running slots' included (Node.js starts about ten per process).
  for (const limit of ['ulimit -n 64', 'ulimit -v 2000000', 'ulimit -s 256', 'ulimit -u 200'])
    it(`a ~/.bashrc that sets ${limit} for non-interactive sessions: nothing runs, ping and deploy name the limit and the fix`, async () => {
      await bashrc(limit, () => bothSay(new RegExp(`did not run: ~deploy/\\.bashrc \\(or ~/\\.profile, /etc/bash\\.bashrc\\) on \\S+ sets a resource limit for non-interactive sessions \\(${limit}\\)`), /remove that ulimit, or move it below the interactive guard/));
    }, 300_000);

  it("a limit every session of deploy begins with (pam_limits: deploy - nofile 256 in /etc/security/limits.d/): nothing runs, ping and deploy name limits.conf, not ~/.bashrc", async () => {
    const file = join(paths.hostsDir, host.name, 'etc/security/limits.d/zz-e2e.conf');
    writeFileSync(file, 'deploy - nofile 256\n');
    try {
      await bothSay(/did not run: deploy's sessions on \S+ begin with a resource limit \(ulimit -n 256\), set before the login shell runs \(by pam_limits/, /\/etc\/security\/limits\.d\/deploy\.conf/);
    } finally {
      rmSync(file);
    }
  }, 300_000);

  it("a ~/.bashrc that exports functions named echo and cd (export -f): ping's facts are the host's, whole", async () => {
    await bashrc('echo() { builtin echo "[$(date +%T)]" "$@"; }; cd() { builtin cd "$@" && builtin echo "entered $PWD"; }; export -f echo cd', async () => {
      const ping = await ops('ping', 'e2e');
      expect(ping.code, text(ping)).toBe(0);
      expect(ping.out).toMatch(new RegExp(`✓ ${host.name} \\(${host.address.replace(/\./g, '\\.')}\\): key verified, ${host.name}, Debian GNU/Linux 12 \\(bookworm\\), .*, sudo ok, MaxSessions 10 `));
    });
  }, 300_000);

  it('a ~/.bashrc that takes the input of non-interactive sessions away (exec </dev/null): nothing runs, ping and deploy name the redirection and the fix (not "ended with exit code 0")', async () => {
    await bashrc('exec </dev/null', () => bothSay(/did not run: ~deploy\/\.bashrc \(or ~\/\.profile, \/etc\/bash\.bashrc\) on \S+ takes standard input away from non-interactive sessions \(to \/dev\/null, e\.g\. exec <\/dev\/null\), and ops sends each step's script on it/, /move that redirection below the interactive guard/));
  }, 300_000);

  it("a ~/.bashrc that exports functions named builtin, unset, command and printf (export -f): ping's facts are the host's, whole, nothing said to be printed; a deploy works", async () => {
    await bashrc('builtin() { echo "builtin $*"; }; unset() { echo "unset $*"; }; command() { echo "command $*"; }; printf() { echo "printf $*"; }; export -f builtin unset command printf', async () => {
      const ping = await ops('ping', 'e2e');
      expect(ping.code, text(ping)).toBe(0);
      expect(ping.out).toMatch(new RegExp(`✓ ${host.name} \\(${host.address.replace(/\./g, '\\.')}\\): key verified, ${host.name}, Debian GNU/Linux 12 \\(bookworm\\), .*, sudo ok, MaxSessions 10 `));
      expect(text(ping)).not.toMatch(/prints text/);
      const deploy = await ops('deploy', 'e2e', '--ref', 'v2');
      expect(deploy.code, text(deploy)).toBe(0);
      expect((await get(host)).body).toContain('Version 2.0.0');
    });
  }, 900_000);

  it("a ~/.bashrc that starts an ssh-agent (eval $(ssh-agent)): a deploy works and leaves no agent behind (one per step before); ping and the deploy say so once, with the fix", async () => {
    const agents = async () => Number((await sshRun(host, 'pgrep -c -x -u deploy ssh-agent || true')).stdout.trim());
    const before = await agents();
    await bashrc('eval "$(ssh-agent -s)" >/dev/null', async () => {
      const ping = await ops('ping', 'e2e');
      expect(text(ping)).toMatch(/starts an ssh-agent for every session \(e\.g\. eval \$\(ssh-agent\) in ~\/\.bashrc\)/);
      expect(text(ping)).toMatch(/keychain --eval/);
      const deploy = await ops('deploy', 'e2e', '--ref', 'v1');
      expect(deploy.code, text(deploy)).toBe(0);
      expect(text(deploy).match(/starts an ssh-agent for every session/g)).toHaveLength(1);
    });
    expect(await agents()).toBe(before);
  }, 900_000);

  it('a ~/.bashrc that exports its shell options (set -o noclobber; export SHELLOPTS): a deploy works (its uploads write as ops sent them)', async () => {
    await bashrc('set -o noclobber; export SHELLOPTS', async () => {
      const deploy = await ops('deploy', 'e2e', '--ref', 'v2');
      expect(deploy.code, text(deploy)).toBe(0);
      expect((await get(host)).body).toContain('Version 2.0.0');
    });
  }, 900_000);

  it("a login whose ~/.bashrc exports NODE_ENV=production and npm_config_omit=dev (kept by sudoers' env_keep) and puts a ~/bin/sudo first on PATH: a deploy builds as on a clean login, the wrapper never runs", async () => {
    const root = join(paths.hostsDir, host.name);
    const { uid, gid } = statSync(join(root, 'home/deploy'));
    const wrapper = join(root, 'home/deploy/bin/sudo');
    mkdirSync(join(root, 'home/deploy/bin'), { recursive: true });
    writeFileSync(wrapper, '#!/bin/sh\necho "$*" >> "$HOME/wrapped"\nexec /usr/bin/sudo "$@"\n', { mode: 0o755 });
    chownSync(wrapper, uid, gid);
    const keep = join(root, 'etc/sudoers.d/keep-node-env');
    writeFileSync(keep, 'Defaults env_keep += "NODE_ENV npm_config_omit GIT_DIR"\n', { mode: 0o440 });
    try {
      await bashrc('export NODE_ENV=production npm_config_omit=dev GIT_DIR=/nonexistent PATH="$HOME/bin:$PATH"', async () => {
        const deploy = await ops('deploy', 'e2e', '--ref', 'deps-changed');
        expect(deploy.code, text(deploy)).toBe(0);
        expect((await get(host)).status).toBe(200);
      });
      expect(existsSync(join(root, 'home/deploy/wrapped'))).toBe(false);
    } finally {
      rmSync(keep, { force: true });
      rmSync(join(root, 'home/deploy/bin'), { recursive: true, force: true });
      rmSync(join(root, 'home/deploy/wrapped'), { force: true });
    }
  }, 900_000);

  it("a sudoers' own secure_path, without /usr/sbin and with ~deploy/bin first (holding a git, tar and nginx of the login's): a deploy finds nginx and runuser where Debian puts them, none of the login's commands runs", async () => {
    const root = join(paths.hostsDir, host.name);
    const bin = join(root, 'home/deploy/bin');
    const marks = join(root, 'home/deploy/wrapped.d');
    mkdirSync(bin, { recursive: true });
    mkdirSync(marks, { mode: 0o1777 });
    execFileSync('chmod', ['1777', marks]);
    for (const [name, real] of [['git', '/usr/bin/git'], ['tar', '/usr/bin/tar'], ['nginx', '/usr/sbin/nginx']] as const)
      writeFileSync(join(bin, name), `#!/bin/sh\ntouch "/home/deploy/wrapped.d/${name}.$$"\nexec ${real} "$@"\n`, { mode: 0o755 });
    const path = join(root, 'etc/sudoers.d/secure-path');
    writeFileSync(path, 'Defaults secure_path="/home/deploy/bin:/usr/bin:/bin"\n', { mode: 0o440 });
    try {
      // one of the two changes what is live, whichever was
      for (const ref of ['v1', 'v2']) {
        const deploy = await ops('deploy', 'e2e', '--ref', ref);
        expect(deploy.code, text(deploy)).toBe(0);
      }
      expect((await get(host)).status).toBe(200);
      const rollback = await ops('rollback', 'e2e');
      expect(rollback.code, text(rollback)).toBe(0);
      expect(readdirSync(marks)).toEqual([]);
    } finally {
      rmSync(path, { force: true });
      rmSync(bin, { recursive: true, force: true });
      rmSync(marks, { recursive: true, force: true });
    }
  }, 900_000);

  it("a host behind an HTTP proxy (http_proxy in ~/.bashrc, kept by sudoers' env_keep as Debian's sudoers suggests; no_proxy naming the package caches only): deploys switch and status sees nginx's slot, asked of nginx, not the proxy", async () => {
    // The lab's apt proxy stands in for the site's proxy: a real one, which cannot reach the host's 127.0.0.1.
    const proxy = `http://${SERVICES_ADDRESS}:${APT_PROXY_PORT}`;
    const keep = join(paths.hostsDir, host.name, 'etc/sudoers.d/keep-proxy');
    writeFileSync(keep, 'Defaults env_keep += "http_proxy https_proxy no_proxy"\n', { mode: 0o440 });
    try {
      await bashrc(`export http_proxy=${proxy} https_proxy=${proxy} no_proxy=${SERVICES_ADDRESS}`, async () => {
        for (const ref of ['v1', 'v2']) {
          const deploy = await ops('deploy', 'e2e', '--ref', ref);
          expect(deploy.code, text(deploy)).toBe(0);
        }
        expect((await get(host)).body).toContain('Version 2.0.0');
        const status = await ops('status', 'e2e', '--json');
        expect(status.code, text(status)).toBe(0);
        expect(JSON.parse(status.out)).toMatchObject({ healthy: true, problems: [], hosts: [{ site: { status: 200 } }] });
      });
    } finally {
      rmSync(keep, { force: true });
    }
  }, 900_000);

  it('a login in a German locale (/etc/default/locale: LANG, and LANGUAGE, which gettext puts before LC_ALL) whose sudo asks for a password: the deploy still gives the sudoers line to add', async () => {
    await sshRun(host, "sudo apt-get install -y -qq locales >/dev/null && echo 'de_DE.UTF-8 UTF-8' | sudo tee -a /etc/locale.gen >/dev/null && sudo locale-gen >/dev/null", { timeoutMs: 300_000 });
    const locale = join(paths.hostsDir, host.name, 'etc/default/locale');
    writeFileSync(locale, 'LANG=de_DE.UTF-8\nLANGUAGE=de_DE:de\n');
    try {
      await withFile('etc/sudoers.d/deploy', () => 'deploy ALL=(ALL:ALL) ALL\n', async () => {
        const deploy = await ops('deploy', 'e2e', '--ref', 'v1');
        expect(deploy.code, text(deploy)).toBe(1);
        expect(text(deploy)).toMatch(/hint: the login deploy needs passwordless sudo on \S+: add the line "deploy ALL=\(ALL\) NOPASSWD: ALL" to \/etc\/sudoers\.d\/deploy/);
      });
    } finally {
      rmSync(locale);
    }
  }, 600_000);

  it("a login without a home directory (useradd without -m; its key in /etc/ssh/keys/%u, sshd's AuthorizedKeysFile): ping names the home and mkhomedir_helper, not ~/.bashrc; a deploy works, saying so once", async () => {
    const root = join(paths.hostsDir, host.name);
    const conf = join(root, 'etc/ssh/sshd_config.d/05-keys.conf');
    const keys = join(root, 'etc/ssh/keys');
    const reload = () => sshRun(host, `sudo sshd -t && sudo ${RELOAD_SSHD}`);
    mkdirSync(keys, { recursive: true });
    writeFileSync(join(keys, 'deploy'), readFileSync(join(root, 'home/deploy/.ssh/authorized_keys')), { mode: 0o644 });
    writeFileSync(conf, 'AuthorizedKeysFile /etc/ssh/keys/%u .ssh/authorized_keys\n');
    await reload();
    renameSync(join(root, 'home/deploy'), join(root, 'home/deploy.away'));
    try {
      const ping = await ops('ping', 'e2e');
      expect(ping.code, text(ping)).toBe(1);
      expect(text(ping)).toMatch(/sshd cannot enter the home directory of deploy, \/home\/deploy \(No such file or directory\).*mkhomedir_helper deploy/s);
      expect(text(ping)).not.toMatch(/prints text/);
      const deploy = await ops('deploy', 'e2e', '--ref', 'v2');
      expect(deploy.code, text(deploy)).toBe(0);
      expect(text(deploy).match(/sshd cannot enter the home directory of deploy/g)).toHaveLength(1);
      expect(text(deploy)).not.toMatch(/prints text/);
    } finally {
      renameSync(join(root, 'home/deploy.away'), join(root, 'home/deploy'));
      rmSync(conf);
      await reload();
      rmSync(keys, { recursive: true, force: true });
    }
  }, 900_000);

  it("sshd's ForceCommand recording sessions under a terminal (script -qfec \"$SSH_ORIGINAL_COMMAND\"): ping and deploy say the commands run under a terminal, with where to look; nothing runs", async () => {
    // Changed through root's login: deploy's commands all run under the terminal once it is in place.
    const root = join(paths.hostsDir, host.name);
    const rootKeys = join(root, 'root/.ssh/authorized_keys');
    const conf = join(root, 'etc/ssh/sshd_config.d/70-record.conf');
    writeFileSync(rootKeys, readFileSync(join(root, 'home/deploy/.ssh/authorized_keys')), { mode: 0o600 });
    const reload = () => sshRun({ ...host, user: 'root' } as unknown as Host, `sshd -t && ${RELOAD_SSHD}`);
    writeFileSync(conf, 'Match User deploy\n    ForceCommand /usr/bin/script -qfec "$SSH_ORIGINAL_COMMAND" /dev/null\n');
    try {
      await reload();
      await bothSay(/did not run: deploy's commands run under a terminal there \(\/dev\/pts\/\d+: script\(1\) or a session recorder/, /sshd -T -C user=deploy \| grep -i forcecommand shows the ForceCommand: have it run "\$SSH_ORIGINAL_COMMAND" without a terminal/);
    } finally {
      rmSync(conf);
      await reload();
      rmSync(rootKeys);
    }
  }, 300_000);

  it("sshd's ~/.ssh/rc printing text: ping names that file, not ~/.bashrc", async () => {
    const rc = join(paths.hostsDir, host.name, 'home/deploy/.ssh/rc');
    const { uid, gid } = statSync(join(paths.hostsDir, host.name, 'home/deploy/.ssh'));
    writeFileSync(rc, 'echo "rc says hi"\n');
    chownSync(rc, uid, gid);
    try {
      const ping = await ops('ping', 'e2e');
      expect(ping.code, text(ping)).toBe(1);
      expect(ping.out).toMatch(/✗ \S+: the login shell of deploy prints text for non-interactive sessions: "rc says hi" .*; fix: move it below the interactive guard at the top of ~deploy\/\.bashrc .*; or remove it from \/home\/deploy\/\.ssh\/rc \(sshd runs it before every command\)$/m);
    } finally {
      rmSync(rc);
    }
  }, 300_000);

  it("LD_PRELOAD in /etc/environment naming a library that is not there (pam_env exports it to every session): ping names the loader and where LD_PRELOAD comes from, not ~/.bashrc; a deploy works, saying so once", async () => {
    await withFile('etc/environment', (t) => `${t}LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n`, async () => {
      const ping = await ops('ping', 'e2e');
      expect(ping.code, text(ping)).toBe(1);
      expect(ping.out).toMatch(/✗ \S+: the dynamic loader warns before every command of deploy: LD_PRELOAD in its environment names \/usr\/lib\/x86_64-linux-gnu\/libjemalloc\.so\.2, which it cannot load \(cannot open shared object file\) \(ops copes\); fix: on \S+, as root: remove LD_PRELOAD from where deploy's sessions get it \(grep -rs LD_PRELOAD \/etc\/environment /);
      expect(text(ping)).not.toMatch(/prints text|interactive guard/);
      const deploy = await ops('deploy', 'e2e', '--ref', 'v2');
      expect(deploy.code, text(deploy)).toBe(0);
      expect(text(deploy).match(/the dynamic loader warns/g)).toHaveLength(1);
      expect(text(deploy)).not.toMatch(/prints text/);
    });
  }, 900_000);

  it("sudo's warning (the host name missing from /etc/hosts): its own fix, not the login shell's", async () => {
    await withFile('etc/hosts', (t) => t.split('\n').filter((l) => !l.includes(host.name)).join('\n'), async () => {
      const ping = await ops('ping', 'e2e');
      expect(text(ping)).toMatch(/sudo warns on every command: "sudo: unable to resolve host [^"]*"; fix: add the host's name to \/etc\/hosts/);
      expect(text(ping)).not.toMatch(/login shell of deploy prints text/);
    });
  }, 300_000);

  it("a ~/.bashrc whose EXIT trap prints and exits 0: a failing build still fails the deploy, the live release serves, the trap's text is nowhere", async () => {
    await bashrc(`trap 'echo "bye from bashrc"; exit 0' EXIT`, async () => {
      const v1 = await ops('deploy', 'e2e', '--ref', 'v1');
      expect(v1.code, text(v1)).toBe(0);
      const broken = await ops('deploy', 'e2e', '--ref', 'broken-build');
      expect(broken.code, text(broken)).toBe(1);
      expect(text(broken)).toMatch(/step "build" on .* failed/);
      expect((await get(host)).body).toContain('Version 1.0.0');
      const logs = await ops('logs', 'e2e', 'server', '-n', '5');
      expect(logs.code, text(logs)).toBe(0);
      for (const r of [v1, broken, logs]) expect(text(r)).not.toContain('bye from bashrc');
    });
  }, 900_000);

  it('sudo hardened as CIS benchmarks ask (Defaults use_pty, logfile, log_output; lecture=always): ping finds nothing wrong, a deploy works, no text said to be printed', async () => {
    const file = join(paths.hostsDir, host.name, 'etc/sudoers.d/zz-pty');
    writeFileSync(file, 'Defaults use_pty\nDefaults logfile="/var/log/sudo.log"\nDefaults log_output\nDefaults lecture=always\nDefaults log_subcmds\n', { mode: 0o440 });
    try {
      const ping = await ops('ping', 'e2e');
      expect(ping.code, text(ping)).toBe(0);
      expect(text(ping)).not.toMatch(/prints text|sudo warns|requires a terminal/);
      const deploy = await ops('deploy', 'e2e', '--ref', 'v1');
      expect(deploy.code, text(deploy)).toBe(0);
      expect(text(deploy)).not.toMatch(/prints text|sudo warns/);
      expect((await get(host)).body).toContain('Version 1.0.0');
    } finally {
      rmSync(file);
    }
  }, 900_000);

  it("zsh as the login shell with a chatty ~/.zshenv and set -x: ping names ~/.zshenv and xtrace, not ~/.bashrc", async () => {
    await sshRun(host, 'sudo timeout 240 apt-get install -y -qq zsh >/dev/null', { timeoutMs: 300_000 });
    const zshenv = join(paths.hostsDir, host.name, 'home/deploy/.zshenv');
    const { uid, gid } = statSync(join(paths.hostsDir, host.name, 'home/deploy/.bashrc'));
    writeFileSync(zshenv, 'set -x\necho "Welcome to zsh"\n');
    chownSync(zshenv, uid, gid);
    try {
      await withFile('etc/passwd', (t) => t.replace(/^(deploy:.*:)[^:\n]*$/m, '$1/usr/bin/zsh'), async () => {
        const ping = await ops('ping', 'e2e');
        expect(ping.code, text(ping)).toBe(1);
        expect(text(ping)).toMatch(/prints text for non-interactive sessions: "Welcome to zsh".*fix: move it out of ~deploy\/\.zshenv/);
        expect(text(ping)).toMatch(/traces its commands .*fix: move set -x out of ~deploy\/\.zshenv/);
        expect(text(ping)).not.toMatch(/bashrc/);
      });
    } finally {
      rmSync(zshenv);
    }
  }, 600_000);

  it('Defaults requiretty: ping says so, with !requiretty, not NOPASSWD', async () => {
    const file = join(paths.hostsDir, host.name, 'etc/sudoers.d/zz-tty');
    writeFileSync(file, 'Defaults requiretty\n', { mode: 0o440 });
    try {
      const ping = await ops('ping', 'e2e');
      expect(ping.code, text(ping)).toBe(1);
      expect(text(ping)).toMatch(/Defaults:deploy !requiretty/);
      expect(text(ping)).not.toMatch(/NOPASSWD/);
    } finally {
      const { rmSync } = await import('node:fs');
      rmSync(file);
    }
  }, 300_000);

  it("sudo's NOEXEC (Defaults noexec, a hardening guide's): nothing runs, ping and deploy name it and the sudoers fix, not the login shell", async () => {
    const file = join(paths.hostsDir, host.name, 'etc/sudoers.d/zz-noexec');
    writeFileSync(file, 'Defaults noexec\n', { mode: 0o440 });
    try {
      await bothSay(/sudo on \S+ runs deploy's commands with NOEXEC \(Defaults noexec, or the NOEXEC: tag on its sudoers line\)/, /remove "Defaults noexec" or the NOEXEC: tag for deploy/);
    } finally {
      rmSync(file);
    }
  }, 300_000);
});

// The host's own settings of the package managers and of git, as real hosts carry them: a deploy installs and builds
// what the commit and the environment say, whatever they say (README "Host settings a deploy does not read").
describe.sequential('host settings of npm, uv and git', () => {
  const base = '/srv/sample';

  /** Lines appended to host files (made when missing) as root, each file put back as it was after `fn`. */
  async function withHostFiles(files: [path: string, text: string][], fn: () => Promise<void>): Promise<void> {
    const put = files.map(([p, t]) => `sudo mkdir -p ${quote(p.replace(/\/[^/]*$/, ''))}; sudo cp -a ${quote(p)} ${quote(`${p}.e2e-before`)} 2>/dev/null || true; printf %s ${quote(t)} | sudo tee -a ${quote(p)} >/dev/null`);
    const back = files.map(([p]) => `if sudo test -e ${quote(`${p}.e2e-before`)}; then sudo mv -f ${quote(`${p}.e2e-before`)} ${quote(p)}; else sudo rm -f ${quote(p)}; fi`);
    await sshRun(host, put.join('\n'));
    try {
      await fn();
    } finally {
      await sshRun(host, back.join('\n'));
    }
  }

  /** The tag to deploy next: one that is not live. Every dependency set but the live release's is removed first, so its are made again. */
  async function nextRef(): Promise<string> {
    const live = (await sshRun(host, `sudo cat ${base}/current/REVISION`, { allowFailure: true })).stdout.trim();
    const v1 = execFileSync('git', ['-C', await appRepo(), 'rev-parse', 'v1^{commit}'], { encoding: 'utf8' }).trim();
    await sshRun(
      host,
      `sudo bash -c ${quote(`keep=$(readlink -f ${base}/current/venv ${base}/current/client/node_modules 2>/dev/null || true); cd ${base}/shared/deps && for d in */; do d=\${d%/}; [ -d "$d" ] || continue; grep -qF "/$d" <<< "$keep" || { chmod -R u+w "$d"; rm -rf "$d"; }; done`)}`,
    );
    return live === v1 ? 'deps-changed' : 'v1';
  }

  it("npm's settings on the host (/etc/npmrc omit=dev, production; lines added to the app user's ~/.npmrc: bin-links=false, ignore-scripts): npm ci installs the lockfile's devDependencies, the build runs", async () => {
    const globalconfig = (await sshRun(host, 'cd / && sudo -u sample -H /usr/bin/npm config get globalconfig')).stdout.trim();
    expect(globalconfig).toMatch(/^\/.*npmrc$/);
    const ref = await nextRef();
    await withHostFiles(
      [
        [globalconfig, 'omit=dev\nproduction=true\n'],
        ['/home/sample/.npmrc', 'bin-links=false\nignore-scripts=true\n'],
      ],
      async () => {
        const deploy = await ops('deploy', 'e2e', '--ref', ref);
        expect(deploy.code, text(deploy)).toBe(0);
        expect((await get(host)).status).toBe(200);
        await sshRun(host, `sudo test -x ${base}/current/client/node_modules/.bin/vite`);
      },
    );
  }, 900_000);

  it("uv's settings on the host (/etc/uv/uv.toml, a uv.toml above the release, in /srv: link-mode symlink): the venv holds its own files, not links into uv's cache", async () => {
    const ref = await nextRef();
    const symlinks = '[pip]\nlink-mode = "symlink"\n';
    await withHostFiles(
      [
        ['/etc/uv/uv.toml', symlinks],
        ['/srv/uv.toml', symlinks],
      ],
      async () => {
        const deploy = await ops('deploy', 'e2e', '--ref', ref);
        expect(deploy.code, text(deploy)).toBe(0);
        expect((await get(host)).status).toBe(200);
        const links = await sshRun(host, `sudo bash -c 'find "$(readlink -e ${base}/current/venv)/lib" -type l -print -quit'`);
        expect(links.stdout.trim()).toBe('');
      },
    );
  }, 900_000);

  it("pip's settings on the host (/etc/pip.conf user = true, with release.python_installer pip): the venv is made", async () => {
    const ref = await nextRef();
    project.write({ ...config, release: { python_installer: 'pip' } });
    try {
      await withHostFiles([['/etc/pip.conf', '[global]\nuser = true\n']], async () => {
        const deploy = await ops('deploy', 'e2e', '--ref', ref);
        expect(deploy.code, text(deploy)).toBe(0);
        expect((await get(host)).status).toBe(200);
      });
    } finally {
      project.write(config);
    }
  }, 900_000);

  it("root's git settings (~/.gitconfig core.autocrlf=true, tar.umask 0077; ~/.config/git/attributes export-ignore): the release's files are the commit's, bytes and modes", async () => {
    const ref = await nextRef();
    await withHostFiles(
      [
        ['/root/.gitconfig', '[core]\n\tautocrlf = true\n[tar]\n\tumask = 0077\n'],
        ['/root/.config/git/attributes', 'Makefile export-ignore\n'],
      ],
      async () => {
        const deploy = await ops('deploy', 'e2e', '--ref', ref);
        expect(deploy.code, text(deploy)).toBe(0);
        expect((await get(host)).status).toBe(200);
        for (const file of ['Makefile', 'server/main.py']) {
          const want = createHash('sha256').update(execFileSync('git', ['-C', await appRepo(), 'show', `${ref}:${file}`])).digest('hex');
          const got = await sshRun(host, `sudo stat -c %a ${base}/current/${file} && sudo sha256sum ${base}/current/${file}`);
          // 664: git archive's own tar.umask (0002), as on a host without settings
          expect(got.stdout).toBe(`664\n${want}  ${base}/current/${file}\n`);
        }
      },
    );
  }, 900_000);

  it('/tmp mounted noexec (CIS benchmarks\' hardening), uv not yet installed: provision installs it (its pip runs from beside uv, not /tmp), then a deploy works', async () => {
    const ops_uv = (await sshRun(host, 'ls -d /opt/ops-uv/v*/bin/uv')).stdout.trim();
    await sshRun(host, 'sudo mount -o remount,noexec /tmp && sudo rm -rf /opt/ops-uv');
    try {
      const provision = await ops('provision', 'e2e');
      expect(provision.code, text(provision)).toBe(0);
      expect((await sshRun(host, `${ops_uv} --version && ls -A /opt/ops-uv`)).stdout).toMatch(/^uv [^\n]+\nv[^\n]*\n$/);
      const deploy = await ops('deploy', 'e2e', '--ref', await nextRef());
      expect(deploy.code, text(deploy)).toBe(0);
    } finally {
      await sshRun(host, 'sudo mount -o remount,exec /tmp');
    }
  }, 900_000);
});
