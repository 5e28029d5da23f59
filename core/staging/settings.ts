// Staging sync's settings (branches, remote, retries) from action inputs or CLI options, validated, and the
// context every step of it runs with: the git runner, the reporter, the settings.
import { OpsError } from '../errors.ts';
import { Git } from '../git.ts';
import type { Reporter } from '../report.ts';
import { validate, wholeNumber } from '../shell.ts';

export const STAGING_DEFAULTS = {
  remote: 'origin',
  main: 'master',
  staging: 'staging',
  label: 'staging',
  retries: 3,
  retryDelayMs: 2000,
} as const;

export interface StagingSettings {
  remote: string;
  main: string;
  staging: string;
  /** Extra attempts when staging moved on the remote between our fetch and our push. */
  retries: number;
  /** Base delay before a retry (grows with the attempt, with jitter). */
  retryDelayMs: number;
  /** Compute and report, push nothing, comment nothing. */
  dryRun: boolean;
}

/**
 * A branch's short name, as the branch inputs and options take it: a ref name (validate) that is neither HEAD nor
 * a full ref. Pushed as refs/heads/<name>, those would make a branch "HEAD" or "refs/heads/staging" on the remote.
 * @throws OpsError naming `what` and the value.
 */
function branchName(name: string, what: string): void {
  validate('gitRef', name, what);
  if (name === 'HEAD' || name.startsWith('refs/'))
    throw new OpsError(`invalid ${what} "${name}": expected a branch's short name`, `the name as git branch lists it (staging, not refs/heads/staging); HEAD is no branch`);
}

/** Settings from raw inputs (action inputs or CLI options): defaults filled in, every name validated. */
export function stagingSettings(raw: { remote?: string; main?: string; staging?: string; retries?: string | number; retryDelayMs?: number; dryRun?: boolean }): StagingSettings {
  const remote = raw.remote || STAGING_DEFAULTS.remote;
  const main = raw.main || STAGING_DEFAULTS.main;
  const staging = raw.staging || STAGING_DEFAULTS.staging;
  validate('gitRef', remote, 'remote name');
  branchName(main, 'main branch');
  branchName(staging, 'staging branch');
  if (main === staging) throw new OpsError(`the main branch and the staging branch are both "${main}"`, 'staging must be a branch of its own (default: staging)');
  const retries = wholeNumber(String(raw.retries ?? STAGING_DEFAULTS.retries), 'retries', { max: 99 });
  return { remote, main, staging, retries, retryDelayMs: raw.retryDelayMs ?? STAGING_DEFAULTS.retryDelayMs, dryRun: raw.dryRun ?? false };
}

/**
 * A GitHub label name (the `label` input, `--label`): trimmed; refused when empty, over 50 characters, or
 * holding a comma or a line break (GitHub's own limits), with the form expected.
 * @throws OpsError naming the label.
 */
export function checkLabel(label: string): string {
  if (!label.trim() || label.length > 50 || /[\r\n,]/.test(label)) throw new OpsError(`invalid label ${JSON.stringify(label)}`, 'a GitHub label name: up to 50 characters, no commas or line breaks');
  return label.trim();
}

export interface StagingContext {
  git: Git;
  reporter: Reporter;
  settings: StagingSettings;
}
