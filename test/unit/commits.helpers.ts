// What the unit tests that read commits share (changes.test.ts, dependency-inputs.test.ts): a small environment
// whose release settings a test chooses, and git run hermetically (no user or system configuration, a fixed author).
import { execFileSync } from 'node:child_process';
import { parseEnvironment, type Environment } from '../../core/config/environment.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

/** An environment "x" of the app "sample" on one host, with `release` settings over the defaults. */
export function releaseEnv(release: Record<string, unknown> = {}): Environment {
  const config = parseEnvironment(
    { app: 'sample', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { server: { command: 'run', port: 3579 } }, routes: { '/': 'server' }, release },
    'environments/x/environment.yml',
  );
  return { name: 'x', dir: '/x', root: '/x', config, hosts: [], appUser: 'sample', baseDir: '/srv/sample', url: 'http://x' };
}

/** git in `cwd` with nothing of this machine's configuration; its output trimmed. */
export const git = (cwd: string, ...args: string[]): string =>
  execFileSync('git', args, { cwd, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: cwd, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'Ada', GIT_AUTHOR_EMAIL: 'a@x', GIT_COMMITTER_NAME: 'Ada', GIT_COMMITTER_EMAIL: 'a@x' } }).trim();
