// A scratch project for operation tests over recorded remotes: the sample app's repository (tags v1, v2) and one
// environment file, as a user's project holds them.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { git } from '../../core/git.ts';
import { makeAppRepo } from '../fixtures/app/make-repo.ts';

/** A pinned host key for 192.0.2.x hosts nobody connects to (the remotes are recorded). */
export const TEST_HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

/**
 * Make the project under a new temporary directory: `app/` (the sample app's repository), `package.json`, and
 * `environments/<env>/environment.yml` holding `config` with `repository` set to the app. Returns the root, the
 * repository and the sha of tag v1.
 */
export async function scratchProject(prefix: string, env: string, config: Record<string, unknown>): Promise<{ root: string; repo: string; v1: string }> {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const repo = join(root, 'app');
  await makeAppRepo(repo);
  const v1 = (await git(repo, ['rev-parse', 'v1^{commit}'])).trim();
  mkdirSync(join(root, 'environments', env), { recursive: true });
  writeFileSync(join(root, 'package.json'), '{}');
  writeFileSync(join(root, 'environments', env, 'environment.yml'), stringify({ ...config, repository: repo }));
  return { root, repo, v1 };
}
