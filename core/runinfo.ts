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

/** A GitHub repository's "owner/name" (GITHUB_REPOSITORY, an API's full_name). */
export const REPOSITORY = /^[A-Za-z0-9_.-]{1,100}\/[A-Za-z0-9_.-]{1,100}$/;

/**
 * The URL of the GitHub Actions run this process is part of (from GITHUB_SERVER_URL, GITHUB_REPOSITORY and
 * GITHUB_RUN_ID, which the runner sets), of its attempt when it is a re-run (GITHUB_RUN_ATTEMPT 2 or more: the run's
 * own URL shows its latest attempt, so a lock or an audit line of attempt 1 would point at attempt 2's log), or ""
 * outside Actions or when one is missing or not of its form (it goes into locks, audit lines and comments' links).
 */
export function runUrl(processEnv: NodeJS.ProcessEnv = process.env): string {
  const { GITHUB_SERVER_URL: server = '', GITHUB_REPOSITORY: repo = '', GITHUB_RUN_ID: id = '', GITHUB_RUN_ATTEMPT: attempt = '' } = processEnv;
  if (!/^https?:\/\/[A-Za-z0-9.-]+(:\d+)?\/?$/.test(server) || !REPOSITORY.test(repo) || !/^[1-9][0-9]{0,19}$/.test(id)) return '';
  const again = /^[1-9][0-9]{0,5}$/.test(attempt) && attempt !== '1' ? `/attempts/${attempt}` : '';
  return `${server.replace(/\/$/, '')}/${repo}/actions/runs/${id}${again}`;
}

/**
 * Who runs this and from where, from the process environment: in GitHub Actions, the person who started this
 * attempt (GITHUB_TRIGGERING_ACTOR: on a re-run, who re-ran it, where GITHUB_ACTOR stays the first run's; GitHub
 * changelog 2022-07-19, "Differentiating triggering actor from executing actor"; GITHUB_ACTOR where the runner
 * sets no such variable, GHES before 3.7) and the run's URL; elsewhere `user@hostname` (USER, else the OS account) and no URL. Values are printable ASCII, at most
 * 200 characters (they go into lock files and the audit log). Never throws.
 */
export function runInfo(processEnv: NodeJS.ProcessEnv = process.env): RunInfo {
  if (processEnv.GITHUB_ACTIONS === 'true' || processEnv.GITHUB_RUN_ID) {
    return { actor: clean(processEnv.GITHUB_TRIGGERING_ACTOR || processEnv.GITHUB_ACTOR || 'github-actions'), runUrl: runUrl(processEnv), via: 'github-actions' };
  }
  let user = processEnv.USER ?? '';
  try {
    user ||= userInfo().username;
  } catch {}
  return { actor: clean(`${user || 'unknown'}@${hostname()}`), runUrl: '', via: 'cli' };
}
