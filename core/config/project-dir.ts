// What makes a folder an ops project to a command told where it is ($OPS_ROOT, an action's working-directory):
// one check for both, so a mistyped path is named as such, never taken for a project without that environment.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Why `dir` is not a project folder (`does not exist`, `is not a folder`, `has no environments/ folder`), or undefined when it is. */
export function projectDirProblem(dir: string): string | undefined {
  if (!existsSync(dir)) return 'does not exist';
  if (!statSync(dir).isDirectory()) return 'is not a folder';
  const envs = join(dir, 'environments');
  if (!existsSync(envs)) return 'has no environments/ folder';
  if (!statSync(envs).isDirectory()) return 'has no environments/ folder (its environments is a file)';
  return undefined;
}
