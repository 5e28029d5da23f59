// Small git repositories shaped like users' ones, made in a temp dir by the tests that need them: with a
// submodule, Git LFS files (the real git-lfs), export-ignore paths, a branch and a tag of one name.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gitEnvironment, type Identity } from '../../core/git.ts';

/**
 * The environment of git in tests and fixtures: core/git.ts's (GIT_* cleared, C locale, an identity) with no user
 * or system configuration (no hooks, signing, autocrlf...) and UTC dates, so every machine gets the same result.
 */
export function hermeticGitEnv(home: string, identity: Identity = { name: 'Test', email: 'test@ops-pipeline.invalid' }): Record<string, string> {
  return gitEnvironment({ PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', TZ: 'UTC' }, { identity });
}

/** Git with no user or system configuration, a fixed identity, and local file:// submodules allowed. */
export function gitIn(cwd: string, args: string[], env: Record<string, string> = {}): string {
  return execFileSync('git', ['-c', 'protocol.file.allow=always', ...args], {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...hermeticGitEnv(cwd), ...env },
  }).trim();
}

/** Write files (path → content) under `dir`. */
export function writeFiles(dir: string, files: Record<string, string | Buffer>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
}

/** A new repository at `dir` (branch main) with `files` committed; returns the commit sha. */
export function initRepo(dir: string, files: Record<string, string | Buffer>, message = 'first'): string {
  mkdirSync(dir, { recursive: true });
  gitIn(dir, ['init', '-q', '-b', 'main']);
  return commit(dir, files, message);
}

/** Commit `files` (added or changed) in `dir`; returns the commit sha. */
export function commit(dir: string, files: Record<string, string | Buffer>, message: string): string {
  writeFiles(dir, files);
  gitIn(dir, ['add', '-A']);
  gitIn(dir, ['commit', '-q', '-m', message]);
  return gitIn(dir, ['rev-parse', 'HEAD']);
}

/** Turn on the real git-lfs in this repository only (its filters in .git/config) and track `pattern`. */
export function lfsTrack(dir: string, pattern: string): void {
  gitIn(dir, ['lfs', 'install', '--local']);
  gitIn(dir, ['lfs', 'track', pattern]);
}
