// Who runs this, and from where: recorded in locks, release metadata and the audit log.
import { hostname, userInfo } from 'node:os';

export interface RunInfo {
  actor: string;
  /** URL of the GitHub Actions run, or "" from a laptop. */
  runUrl: string;
  /** "github-actions" or "cli". */
  via: string;
}

function clean(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
}

export function runInfo(env: NodeJS.ProcessEnv = process.env): RunInfo {
  if (env.GITHUB_ACTIONS === 'true' || env.GITHUB_RUN_ID) {
    const runUrl = env.GITHUB_SERVER_URL && env.GITHUB_REPOSITORY && env.GITHUB_RUN_ID ? `${env.GITHUB_SERVER_URL}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}` : '';
    return { actor: clean(env.GITHUB_ACTOR ?? 'github-actions'), runUrl: clean(runUrl), via: 'github-actions' };
  }
  let user = env.USER ?? '';
  try {
    user ||= userInfo().username;
  } catch {}
  return { actor: clean(`${user || 'unknown'}@${hostname()}`), runUrl: '', via: 'cli' };
}
