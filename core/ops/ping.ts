// ops ping <env>: per host, can we reach it with the pinned key, what is it, and will a deploy work there.
// A preflight: besides the facts it fails (with the exact fix) on what makes a deploy fail or other tools
// break: sudo asking for a password, a login shell that prints text, sshd's session limit, too little free
// disk or inodes under the app's directory. A host not provisioned for the environment yet is said too, with the
// next step (ops provision <env>): not a fault (ping is what a new user runs before the first provision), so it
// does not fail ping, but never a plain ✓ either.
import type { Environment } from '../config/environment.ts';
import { resolveTarget } from '../target.ts';
import type { OpsContext } from '../context.ts';
import { REQUIRETTY, SUDO_NOEXEC, sudoNoexec, agentFix, busFix, busProblem, xtraceFix, xtraceProblem, loginStartup, agentProblem, lingerFix, lingerProblem, maskedText, oneLine, homeDirProblem, preloadProblem, sudoWarningFix } from '../errors.ts';
import { describeDisk, exhausted, hostFacts, otherDiskFix, parseDisk, type DiskSpace, FACTS_KEYS } from '../steps/facts.ts';
import { reported, type StepResult } from '../remote/types.ts';
import { eachHost } from './hosts.ts';
import { notProvisioned, provisionedIn } from '../steps/system.ts';

/** Sessions ops opens at once on a connection (one step or upload at a time). */
export const SESSIONS_NEEDED = 1;
/** Free space and inodes under the app's directory below which a deploy is refused by ping, at the least. */
export const MIN_FREE_MB = 256;
export const MIN_FREE_INODES = 10_000;

export interface PingProblem {
  problem: string;
  fix: string;
}

export interface PingResult {
  host: string;
  address: string;
  /** Reachable, and no problem (a host only waiting for its provision is ok: see `next`). */
  ok: boolean;
  /** The connection failed: nothing else is known (one line; `hint`: how to fix it). */
  error?: string;
  hint?: string;
  hostname?: string;
  os?: string;
  uptimeSeconds?: number;
  /** Free space and inodes where releases go (`path`: the app's directory or its nearest existing parent). */
  disk?: DiskSpace & { needMb: number; needInodes: number };
  sudo?: boolean;
  /** sshd's MaxSessions for this connection, when sudo can read it. */
  maxSessions?: number;
  /** What the login shell printed before our command ran (it should print nothing). */
  loginShellOutput?: string;
  /** What makes a deploy or other tools fail there, each with its fix: ping exits 1. */
  problems: PingProblem[];
  /** Provision's marker is there (notProvisioned); undefined when unknown (unreachable, or the login may not read it: sudo asks for a password). */
  provisioned?: boolean;
  /**
   * Not faults: what to run before a deploy can work there, each with its command (`fix`): a host not provisioned for
   * the environment yet (notProvisioned). Ping exits 0 for them (ping, then provision, then deploy is the first run).
   */
  next?: PingProblem[];
  latencyMs?: number;
}

/**
 * Where to silence what a login prints before a command runs, for its shell (`shell`, from passwd; bash when unknown:
 * a facts step of an older ops): the start-up files that shell reads for `shell -c` (sshd's way to run a command), and
 * sshd's own rc file (`sshRc`: ~/.ssh/rc or /etc/ssh/sshrc), run before every command whatever the shell; and
 * sshd's ForceCommand when it ran ours (`forced`).
 */
export function quietLoginFix(login: string, shell: string | undefined, sshRc: string | undefined, forced = false): string {
  const fix = startupFilesFix(login, shell, sshRc);
  // A ForceCommand that runs ours (a wrapper: SSH_ORIGINAL_COMMAND set) may print it too.
  return forced ? `${fix}; or the ForceCommand sshd runs for ${login} prints it (on the host, as root: sshd -T -C user=${login} | grep -i forcecommand)` : fix;
}

function startupFilesFix(login: string, shell: string | undefined, sshRc: string | undefined): string {
  // dash, sh, ksh and the like read no start-up file for a command: the text is sshd's rc file's (or a ForceCommand's).
  const startup = loginStartup(login, shell);
  const shellFix = startup && `move it ${startup.place}${(shell || 'bash').endsWith('bash') ? ', or out of /etc/bash.bashrc' : ''}`;
  const rc = sshRc && `remove it from ${sshRc} (sshd runs it before every command)`;
  if (rc && shellFix) return `${shellFix}; or ${rc}`;
  return rc ?? shellFix ?? `the login shell of ${login} (${shell}) reads no start-up file for a command: look for a ForceCommand for ${login} in /etc/ssh/sshd_config (sshd -T -C user=${login} | grep -i forcecommand)`;
}

/** The shell's words for a command it cannot find (bash, dash, zsh): `bash: line 38: sudo: command not found`. */
const SUDO_MISSING = /\bsudo: (command )?not found|sudo: No such file or directory/;

/**
 * The facts step's report, read: facts, problems (each with its fix) and next steps (a host not provisioned for `env`
 * yet: notProvisioned's words). What the login shell printed is masked as other text from a host is (`redact`, the
 * reporter's, then maskSecretLike: maskedText), whole, before it is quoted or cut.
 */
export function readFacts(env: { name: string }, host: { name: string; user: string }, r: StepResult, redact: (text: string) => string = (t) => t): Omit<PingResult, 'host' | 'address' | 'ok' | 'latencyMs'> {
  const problems: PingProblem[] = [];
  const login = reported(r, FACTS_KEYS.login) || host.user;
  const [sudoState = 'no', ...why] = (reported(r, FACTS_KEYS.sudo) ?? 'no').split(' ');
  const sudo = sudoState === 'yes';
  if (!sudo && REQUIRETTY.test(why.join(' ')))
    problems.push({
      problem: `sudo refuses ${login} without a terminal (${why.join(' ')}: Defaults requiretty in sudoers), and ops's sessions have none: provision and every deploy need sudo`,
      fix: `on ${host.name}, as root: echo 'Defaults:${login} !requiretty' > /etc/sudoers.d/${login}-tty && chmod 0440 /etc/sudoers.d/${login}-tty (or visudo -f /etc/sudoers.d/${login}-tty)`,
    });
  // a Debian installed with a root password has no sudo at all: no sudoers line makes it work, installing it does
  else if (!sudo && SUDO_MISSING.test(why.join(' ')))
    problems.push({
      problem: `sudo is not installed on ${host.name} (${why.join(' ')}): provision and every deploy run their steps through it`,
      // root runs provision's steps without sudo, and provision installs it (the app user's steps need it)
      fix:
        login === 'root'
          ? `ops provision ${env.name} installs it (logged in as root, its steps need no sudo), or on ${host.name}: apt-get install -y sudo`
          : `on ${host.name}, as root: apt-get install -y sudo && echo '${login} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/${login} && chmod 0440 /etc/sudoers.d/${login}`,
    });
  else if (!sudo && SUDO_NOEXEC.test(why.join(' '))) problems.push(sudoNoexec(login, host.name));
  else if (!sudo)
    problems.push({
      problem: `sudo does not work without a password for ${login}${why.length ? ` (${why.join(' ')})` : ''}: provision and every deploy need it`,
      fix: `on ${host.name}, as root: echo '${login} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/${login} && chmod 0440 /etc/sudoers.d/${login} (or visudo -f /etc/sudoers.d/${login})`,
    });
  // sudo works but warns (on every command): its own problem, with its own fix.
  const warning = why.join(' ');
  const warningFix = sudo ? sudoWarningFix(warning, host.name) : undefined;
  if (warningFix) problems.push({ problem: `sudo warns on every command: "${oneLine(warning, 80, redact)}"`, fix: warningFix });
  const preamble = maskedText(r.preamble ?? '', redact).trim();
  if (preamble)
    problems.push({
      problem: `the login shell of ${login} prints text for non-interactive sessions: "${oneLine(preamble, 80, redact)}" (ops copes; scp, rsync and sftp break)`,
      fix: quietLoginFix(login, reported(r, FACTS_KEYS.shell), reported(r, FACTS_KEYS.ssh_rc), reported(r, FACTS_KEYS.forced) === 'yes'),
    });
  const home = r.homeDir && homeDirProblem(r.homeDir, login, host.name);
  if (home) problems.push(home);
  const preload = r.preload && preloadProblem(r.preload, login, host.name);
  if (preload) problems.push(preload);
  if (r.lingered) problems.push({ problem: lingerProblem(login), fix: lingerFix(login, reported(r, FACTS_KEYS.shell)) });
  if (r.agentStopped) problems.push({ problem: agentProblem(login), fix: agentFix(login, reported(r, FACTS_KEYS.shell)) });
  if (r.xtrace) problems.push({ problem: xtraceProblem(login), fix: xtraceFix(login, reported(r, FACTS_KEYS.shell)) });
  if (r.busStopped) problems.push({ problem: busProblem(login), fix: busFix(login, reported(r, FACTS_KEYS.shell)) });
  const sessions = Number(reported(r, FACTS_KEYS.max_sessions));
  const maxSessions = Number.isInteger(sessions) && reported(r, FACTS_KEYS.max_sessions) ? sessions : undefined;
  if (maxSessions !== undefined && maxSessions < SESSIONS_NEEDED)
    problems.push({ problem: `sshd allows ${maxSessions} session(s) per connection; ops needs ${SESSIONS_NEEDED}`, fix: `set MaxSessions ${SESSIONS_NEEDED} or more in /etc/ssh/sshd_config (and Match blocks), then: systemctl reload ssh` });
  const [footKb, footInodes] = (reported(r, FACTS_KEYS.footprint) ?? '').split(' ').map(Number);
  const free = parseDisk(reported(r, FACTS_KEYS.disk));
  const disk = free && { ...free, needMb: Math.max(MIN_FREE_MB, Math.ceil((footKb || 0) / 1024)), needInodes: Math.max(MIN_FREE_INODES, footInodes || 0) };
  if (disk) {
    const fix = `free space under ${disk.path} on ${host.name} (old releases: lower release.keep; logs), or grow its filesystem`;
    if (disk.freeMb < disk.needMb) problems.push({ problem: `only ${disk.freeMb} MB free under ${disk.path}; a deploy may need ${disk.needMb} MB (a release with new dependencies)`, fix });
    if (disk.freeInodes !== undefined && disk.freeInodes < disk.needInodes)
      problems.push({ problem: `only ${disk.freeInodes} free inodes under ${disk.path}; a deploy may need ${disk.needInodes}`, fix });
  }
  // /tmp full while the app's filesystem has room (a tmpfs of its own): every step's temporary files go there.
  const temp = parseDisk(reported(r, FACTS_KEYS.temp_disk));
  if (exhausted(temp) && !(free && free.freeMb === temp!.freeMb && free.freeInodes === temp!.freeInodes)) {
    const inodes = temp!.freeMb >= 1;
    problems.push({ problem: `${temp!.path} is full (${describeDisk(temp!)}): steps make their temporary files there, so a deploy that installs dependencies fails`, fix: otherDiskFix(host.name, temp!, inodes) });
  }
  const [appUser, appHome] = (reported(r, FACTS_KEYS.app_home) ?? '').split(/ (.*)/s);
  if (appUser && appHome)
    problems.push({
      problem: `the home directory of ${appUser}, ${appHome} (its entry in /etc/passwd), does not exist: npm and uv keep their caches there, so a deploy that makes a new dependency set fails`,
      fix: `on ${host.name}, as root: usermod -d /home/${appUser} ${appUser} && install -d -o ${appUser} -g "$(id -gn ${appUser})" /home/${appUser} (a user made by adduser --system has /nonexistent)`,
    });
  // A facts step of an older ops says nothing of it: nothing said either.
  const provisioned = provisionedIn(r);
  const bare = notProvisioned(env);
  const next = provisioned === false ? [{ problem: `${bare.problem} yet: deploy, rollback and initdata refuse until it is`, fix: `${bare.fix}, then ops deploy ${env.name}` }] : [];
  return {
    hostname: reported(r, FACTS_KEYS.hostname),
    os: reported(r, FACTS_KEYS.os),
    uptimeSeconds: Math.round(Number(reported(r, FACTS_KEYS.uptime))),
    disk,
    sudo,
    ...(maxSessions !== undefined && { maxSessions }),
    ...(preamble && { loginShellOutput: preamble }),
    problems,
    ...(provisioned !== undefined && { provisioned }),
    ...(next.length && { next }),
  };
}

/** Every host is tried (a failure on one does not hide the others); ok only if all answered without a problem. */
export async function ping(ctx: OpsContext, environment: Environment): Promise<PingResult[]> {
  const env = resolveTarget(environment);
  return eachHost(
    ctx,
    env,
    async (remote, host, started): Promise<PingResult> => {
      const facts = readFacts(env, host, await remote.run(hostFacts(env)), (t) => ctx.reporter.redact(t));
      return { host: host.name, address: host.address, ok: facts.problems.length === 0, ...facts, latencyMs: Math.round(performance.now() - started) };
    },
    (host, fields): PingResult => ({ host: host.name, address: host.address, ok: false, ...fields, problems: [] }),
  );
}

function duration(s: number): string {
  if (s >= 86400) return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 60)}m ${s % 60}s`;
}

/**
 * `ops ping` for a terminal: one block per host, with the fix for each problem on one line (✗), then each next step
 * with its command (→). A host with next steps and no problem is marked `!`, not ✓.
 */
export function formatPing(results: PingResult[]): string {
  return results
    .map((r) => {
      if (r.error) return `✗ ${r.host} (${r.address}): ${r.error}${r.hint ? `\n    hint: ${r.hint}` : ''}`;
      const disk = r.disk ? `, ${describeDisk(r.disk)}` : '';
      const facts = `key verified, ${r.hostname}, ${r.os}, up ${duration(r.uptimeSeconds ?? 0)}${disk}${r.sudo ? ', sudo ok' : ''}${r.maxSessions !== undefined ? `, MaxSessions ${r.maxSessions}` : ''} [${r.latencyMs} ms]`;
      const next = (r.next ?? []).map((n) => `    → ${r.host}: ${n.problem}; next: ${n.fix}`);
      if (r.ok) return [`${next.length ? '!' : '✓'} ${r.host} (${r.address}): ${facts}`, ...next].join('\n');
      return [`✗ ${r.host} (${r.address}): ${facts}`, ...r.problems.map((p) => `    ✗ ${r.host}: ${p.problem}; fix: ${p.fix}`), ...next].join('\n');
    })
    .join('\n');
}
