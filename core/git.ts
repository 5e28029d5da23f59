// The one way ops runs git on the runner (or laptop): source resolution, packing, the tree a release needs,
// `ops diff` and the plan, staging. Every call is `git -C <dir> <args...>` as an argument array (never a shell
// string), in one repository, with one environment:
// - every GIT_* variable of the process is dropped (a git hook's GIT_DIR or GIT_INDEX_FILE, a GIT_WORK_TREE,
//   GIT_TRACE, a replace-ref base... would point git at another repository or change what it prints), except
//   the ones that say how to reach a remote and which configuration to read (GIT_SSH_COMMAND, GIT_ASKPASS,
//   GIT_SSL_*, GIT_HTTP_*, GIT_PROXY_COMMAND, GIT_CONFIG_*: credentials keep working);
// - LC_ALL=C and LANGUAGE=C: messages we read (conflicts, errors) in one language;
// - no pager, and no prompt for credentials unless asked for (a laptop): a runner never hangs on a question;
// - an explicit author and committer for the commits it makes, instead of the user's global config.
// node:child_process, not @actions/exec: @actions/exec writes `input` to the child's stdin without an error
// handler, so a git that exits before reading it (a pack-objects or a push that fails at once) raises an
// unhandled EPIPE that kills the whole process instead of returning git's exit code and message.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { OpsError, indent, tail } from './errors.ts';

export interface Identity {
  name: string;
  email: string;
}

/** Author and committer of what ops commits (staging merges) unless told otherwise. */
export const DEFAULT_IDENTITY: Identity = { name: 'ops-pipeline', email: 'ops-pipeline@users.noreply.github.com' };

export interface GitResult {
  /** git's exit code. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface GitOptions {
  /** The process environment to start from (default: this process's); GIT_* variables are dropped as above. */
  processEnv?: NodeJS.ProcessEnv;
  /** Author and committer of the commits this runner creates (default DEFAULT_IDENTITY). */
  identity?: Identity;
  /** Allow git to prompt on the terminal for credentials (a laptop); off on runners. */
  interactive?: boolean;
}

export interface RunOptions {
  /** Bytes (or UTF-8 text) on git's stdin; nothing otherwise (stdin is closed at once). */
  input?: string | Buffer;
  /** Variables added for this call only (GIT_INDEX_FILE for a throwaway index, commit dates...). */
  env?: Record<string, string>;
  /**
   * Milliseconds after which git (a call that reaches a remote: it may hang on the network) and what it started are
   * stopped with SIGTERM: its exit code is then 128 + 15 and its stderr says it took too long. None by default.
   */
  timeoutMs?: number;
}

/** A git command failed: names the command, the exit code and the end of its stderr. */
export class GitError extends OpsError {
  override name = 'GitError';
  constructor(
    readonly args: string[],
    readonly result: GitResult,
    hint?: string,
  ) {
    const stderr = tail(result.stderr.trim() || result.stdout.trim(), 15);
    super(`git ${args.join(' ')} failed (exit code ${result.code})${stderr ? `\n${indent(stderr)}` : ''}`, hint);
  }
}

/**
 * Refuse identities that would break a commit header.
 * @returns the identity, unchanged. @throws OpsError naming the bad name or email.
 */
export function checkIdentity(identity: Identity): Identity {
  if (!identity.name.trim() || /[<>\n\r\0]/.test(identity.name)) {
    throw new OpsError(`invalid committer name ${JSON.stringify(identity.name)}`, 'a non-empty name without < > or line breaks');
  }
  if (!/^[^\s<>@]+@[^\s<>@]+$/.test(identity.email)) {
    throw new OpsError(`invalid committer email ${JSON.stringify(identity.email)}`, 'an address like ops-pipeline@users.noreply.github.com');
  }
  return identity;
}

/** GIT_* variables kept from the process environment: how to reach remotes, authenticate, and which config to read. */
const KEPT = /^GIT_(SSH|SSH_COMMAND|SSH_VARIANT|ASKPASS|PROXY_COMMAND|SSL_[A-Z_]+|HTTP_[A-Z_]+|CONFIG_(GLOBAL|SYSTEM|NOSYSTEM|COUNT|KEY_\d+|VALUE_\d+))$/;

/**
 * The environment git runs in, from a process environment (see the top of this file). Pure.
 * @returns only defined values (what a child process can receive).
 */
export function gitEnvironment(processEnv: NodeJS.ProcessEnv, options: { identity?: Identity; interactive?: boolean } = {}): Record<string, string> {
  const identity = checkIdentity(options.identity ?? DEFAULT_IDENTITY);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(processEnv)) if (v !== undefined && (!k.startsWith('GIT_') || KEPT.test(k))) out[k] = v;
  return {
    ...out,
    LC_ALL: 'C',
    LANGUAGE: 'C',
    GIT_PAGER: 'cat',
    PAGER: 'cat',
    GIT_AUTHOR_NAME: identity.name,
    GIT_AUTHOR_EMAIL: identity.email,
    GIT_COMMITTER_NAME: identity.name,
    GIT_COMMITTER_EMAIL: identity.email,
    ...(options.interactive ? {} : { GIT_TERMINAL_PROMPT: '0', GCM_INTERACTIVE: 'never' }),
  };
}

/** git in one repository (or git directory), with the environment above. */
export class Git {
  private readonly env: Record<string, string>;

  /** `dir`: the working tree or git directory every call runs in (`git -C dir`). @throws OpsError for a bad identity. */
  constructor(
    readonly dir: string,
    options: GitOptions = {},
  ) {
    this.env = gitEnvironment(options.processEnv ?? process.env, options);
  }

  /**
   * Run git; stdout as bytes (packs, blobs), whatever the exit code.
   * @throws OpsError only when git cannot be started (not installed, `dir` missing).
   */
  async runBytes(args: string[], options: RunOptions = {}): Promise<{ code: number; stdout: Buffer; stderr: string }> {
    const env = options.env ? { ...this.env, ...options.env } : this.env;
    return new Promise((resolve, reject) => {
      // With a timeout, git leads a process group of its own: what it runs to reach the remote (ssh, upload-pack)
      // is stopped with it, not left holding the output open.
      const child = spawn('git', ['-C', this.dir, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'], detached: Boolean(options.timeoutMs) });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      child.on('error', (e: NodeJS.ErrnoException) =>
        reject(e.code === 'ENOENT' ? new OpsError('git is not installed (or not on PATH)', 'install git 2.38 or later') : new OpsError(`cannot run git ${args.join(' ')} in ${this.dir}: ${e.message}`)),
      );
      let timedOut = false;
      const timer = options.timeoutMs
        ? setTimeout(() => {
            timedOut = true;
            try {
              process.kill(-child.pid!, 'SIGTERM');
            } catch {
              child.kill('SIGTERM');
            }
          }, options.timeoutMs)
        : undefined;
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const stderr = Buffer.concat(err).toString('utf8') + (timedOut ? `\ngit ${args[0]} stopped: no answer within ${options.timeoutMs! / 1000} s` : '');
        resolve({ code: code ?? 128 + (signal ? constants.signals[signal] : 0), stdout: Buffer.concat(out), stderr });
      });
      // git may exit without reading its input (a failure): its exit code and message tell, not an EPIPE.
      child.stdin.on('error', () => {});
      child.stdin.end(options.input ?? '');
    });
  }

  /** Run git; its exit code and output as text, whatever the code. @throws OpsError only when git cannot start. */
  async run(args: string[], options: RunOptions = {}): Promise<GitResult> {
    const r = await this.runBytes(args, options);
    return { code: r.code, stdout: r.stdout.toString('utf8'), stderr: r.stderr };
  }

  /** Run git; stdout without its final newline. @throws GitError (command, exit code, stderr) unless it exits 0. */
  async out(args: string[], options: RunOptions & { hint?: string } = {}): Promise<string> {
    const r = await this.run(args, options);
    if (r.code !== 0) throw new GitError(args, r, options.hint);
    return r.stdout.replace(/\n$/, '');
  }

  /** Run git; stdout as bytes. @throws GitError unless it exits 0. */
  async bytes(args: string[], options: RunOptions & { hint?: string } = {}): Promise<Buffer> {
    const r = await this.runBytes(args, options);
    if (r.code !== 0) throw new GitError(args, { code: r.code, stdout: '', stderr: r.stderr }, options.hint);
    return r.stdout;
  }

  /** The full sha of a commit-ish, or undefined when it does not resolve to a commit here. */
  async commit(rev: string): Promise<string | undefined> {
    const r = await this.run(['rev-parse', '--verify', '--quiet', '--end-of-options', `${rev}^{commit}`]);
    return r.code === 0 ? r.stdout.trim() : undefined;
  }

  /** Is `ancestor` reachable from `descendant` (a commit is its own ancestor)? @throws GitError when either is unknown. */
  async isAncestor(ancestor: string, descendant: string): Promise<boolean> {
    const args = ['merge-base', '--is-ancestor', ancestor, descendant];
    const r = await this.run(args);
    if (r.code === 0) return true;
    if (r.code === 1) return false;
    throw new GitError(args, r);
  }

  /** [major, minor] of the git on PATH. @throws OpsError when its version line cannot be read. */
  async version(): Promise<[number, number]> {
    const v = await this.out(['version']);
    const m = /(\d+)\.(\d+)/.exec(v);
    if (!m) throw new OpsError(`cannot read the git version from "${v}"`);
    return [Number(m[1]), Number(m[2])];
  }
}

/**
 * git in `dir` (a working tree or git directory): its stdout as written, as text.
 * @throws GitError (command, exit code, stderr) unless it exits 0; OpsError when git cannot start.
 */
export async function git(dir: string, args: string[], options: RunOptions = {}): Promise<string> {
  const r = await new Git(dir).run(args, options);
  if (r.code !== 0) throw new GitError(args, r);
  return r.stdout;
}
