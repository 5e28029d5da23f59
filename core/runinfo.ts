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

/**
 * The URL of the GitHub Actions run this process is part of (from GITHUB_SERVER_URL, GITHUB_REPOSITORY and
 * GITHUB_RUN_ID, which the runner sets), or "" outside Actions or when one is missing.
 */
export function runUrl(processEnv: NodeJS.ProcessEnv = process.env): string {
  const { GITHUB_SERVER_URL: server, GITHUB_REPOSITORY: repo, GITHUB_RUN_ID: id } = processEnv;
  return server && repo && id ? clean(`${server}/${repo}/actions/runs/${id}`) : '';
}

/**
 * Who runs this and from where, from the process environment: in GitHub Actions, GITHUB_ACTOR and the run's
 * URL; elsewhere `user@hostname` (USER, else the OS account) and no URL. Values are printable ASCII, at most
 * 200 characters (they go into lock files and the audit log). Never throws.
 */
export function runInfo(processEnv: NodeJS.ProcessEnv = process.env): RunInfo {
  if (processEnv.GITHUB_ACTIONS === 'true' || processEnv.GITHUB_RUN_ID) {
    return { actor: clean(processEnv.GITHUB_ACTOR ?? 'github-actions'), runUrl: runUrl(processEnv), via: 'github-actions' };
  }
  let user = processEnv.USER ?? '';
  try {
    user ||= userInfo().username;
  } catch {}
  return { actor: clean(`${user || 'unknown'}@${hostname()}`), runUrl: '', via: 'cli' };
}
