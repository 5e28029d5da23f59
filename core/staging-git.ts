// The small git runner staging uses on a local repository: every call is `git <args...>` through execFile
// (an argument array, never a shell string), in one repository, with a fixed environment: C locale, an
// explicit author/committer instead of the user's global config, and no credential prompts unless interactive.
import { execFile } from 'node:child_process';
import { OpsError, indent, tail } from './errors.ts';

export interface Identity {
  name: string;
  email: string;
}

export const DEFAULT_IDENTITY: Identity = { name: 'ops-pipeline', email: 'ops-pipeline@users.noreply.github.com' };

export interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface GitOptions {
  /** Base environment (the process env by default); GIT_* variables that would redirect git are dropped. */
  env?: NodeJS.ProcessEnv;
  /** Author and committer of the commits this runner creates. */
  identity?: Identity;
  /** Allow git to prompt on the terminal for credentials (a laptop); off on runners. */
  interactive?: boolean;
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

/** Refuse identities that would break a commit header. */
export function checkIdentity(identity: Identity): Identity {
  if (!identity.name.trim() || /[<>\n\r\0]/.test(identity.name)) {
    throw new OpsError(`invalid committer name ${JSON.stringify(identity.name)}`, 'a non-empty name without < > or line breaks');
  }
  if (!/^[^\s<>@]+@[^\s<>@]+$/.test(identity.email)) {
    throw new OpsError(`invalid committer email ${JSON.stringify(identity.email)}`, 'an address like ops-pipeline@users.noreply.github.com');
  }
  return identity;
}

// Variables that would make git act on another repository or index than the one asked for.
const DROPPED = ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_NAMESPACE', 'GIT_CEILING_DIRECTORIES', 'GIT_PREFIX'];

export class Git {
  private readonly env: NodeJS.ProcessEnv;
  constructor(
    readonly dir: string,
    options: GitOptions = {},
  ) {
    const identity = checkIdentity(options.identity ?? DEFAULT_IDENTITY);
    const env: NodeJS.ProcessEnv = { ...(options.env ?? process.env) };
    for (const k of DROPPED) delete env[k];
    this.env = {
      ...env,
      LC_ALL: 'C',
      LANGUAGE: 'C',
      GIT_AUTHOR_NAME: identity.name,
      GIT_AUTHOR_EMAIL: identity.email,
      GIT_COMMITTER_NAME: identity.name,
      GIT_COMMITTER_EMAIL: identity.email,
      ...(options.interactive ? {} : { GIT_TERMINAL_PROMPT: '0', GCM_INTERACTIVE: 'never' }),
    };
  }

  /** Run git (with `input` on its stdin, `env` added) and return its exit code and output, whatever the code. */
  run(args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<GitResult> {
    const env = options.env ? { ...this.env, ...options.env } : this.env;
    const input = options.input;
    return new Promise((resolve, reject) => {
      const child = execFile('git', args, { cwd: this.dir, env, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') {
          if (err.code === 'ENOENT') reject(new OpsError('git is not installed (or not on PATH)', 'install git 2.38 or later'));
          else reject(new OpsError(`cannot run git ${args.join(' ')}: ${err.message}`));
          return;
        }
        resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
      });
      child.stdin?.on('error', () => {}); // git may exit before reading its input; the exit code tells
      child.stdin?.end(input ?? '');
    });
  }

  /** Run git; throw a GitError unless it exits 0; return stdout without its final newline. */
  async out(args: string[], options: { hint?: string; input?: string; env?: Record<string, string> } = {}): Promise<string> {
    const r = await this.run(args, options);
    if (r.code !== 0) throw new GitError(args, r, options.hint);
    return r.stdout.replace(/\n$/, '');
  }

  /** The full sha of a commit-ish, or undefined when it does not resolve to a commit here. */
  async commit(rev: string): Promise<string | undefined> {
    const r = await this.run(['rev-parse', '--verify', '--quiet', '--end-of-options', `${rev}^{commit}`]);
    return r.code === 0 ? r.stdout.trim() : undefined;
  }

  /** Is `ancestor` reachable from `descendant` (a commit is its own ancestor)? */
  async isAncestor(ancestor: string, descendant: string): Promise<boolean> {
    const args = ['merge-base', '--is-ancestor', ancestor, descendant];
    const r = await this.run(args);
    if (r.code === 0) return true;
    if (r.code === 1) return false;
    throw new GitError(args, r);
  }

  /** [major, minor] of the git on PATH. */
  async version(): Promise<[number, number]> {
    const v = await this.out(['version']);
    const m = /(\d+)\.(\d+)/.exec(v);
    if (!m) throw new OpsError(`cannot read the git version from "${v}"`);
    return [Number(m[1]), Number(m[2])];
  }
}
