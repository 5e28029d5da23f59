// One entry point for the staging-sync action and `ops staging`: open the repository, run add or rebuild,
// report (log, outputs, job summary).
import { OpsError } from '../errors.ts';
import { quote } from '../shell.ts';
import type { Identity } from '../git.ts';
import { githubAccess } from '../github.ts';
import type { Reporter } from '../report.ts';
import { addToStaging } from './add.ts';
import { type AddResult, type RebuildResult, StagingRefusal, addSummary, rebuildSummary, short } from './messages.ts';
import { rebuildStaging } from './rebuild.ts';
import type { PullInfo, Source } from './refs.ts';
import { openRepository } from './remote.ts';
import { STAGING_DEFAULTS, type StagingContext, type StagingSettings, checkLabel } from './settings.ts';

export interface StagingRun {
  mode: 'add' | 'rebuild';
  /** add: the ref to bring in. */
  ref?: string;
  /** add: the pull request the ref belongs to (from the triggering event), for messages and outputs. */
  pull?: PullInfo;
  /** add: exactly this commit of the ref (the head the triggering event saw; see AddOptions.at). */
  at?: string;
  /** The repository to act on (a clone: working tree or bare). */
  repo: string;
  settings: StagingSettings;
  identity?: Identity;
  label?: string;
  comment?: boolean;
  token?: string;
  /** Let git prompt for credentials (CLI on a terminal). */
  interactive?: boolean;
  processEnv: NodeJS.ProcessEnv;
  reporter: Reporter;
  runUrl?: string;
}

/** How outputs name a source: "#12" for a pull request, else its name. */
const id = (s: Source) => (s.pull ? `#${s.pull.number}` : s.display);

/**
 * The staging-sync action and `ops staging`: open the repository, add or rebuild, then report (log lines,
 * outputs sha, previous-sha, changed, added, skipped, and the job summary).
 * @returns the add's or rebuild's result. @throws OpsError (no ref for an add, a ref for a rebuild, not a repository, no remote, a bad label)
 * or StagingRefusal (the ref itself does not apply: staging untouched).
 */
export async function runStaging(run: StagingRun): Promise<AddResult | RebuildResult> {
  const { settings, reporter } = run;
  // A ref with a rebuild would be dropped without a word (the manual run's mode defaults to rebuild): staging reset
  // to main, deployed, and the ref not in it. Refused before anything is fetched or pushed.
  if (run.mode === 'rebuild' && run.ref)
    throw new OpsError(`a rebuild takes no ref (given: ${JSON.stringify(run.ref)}): it resets ${settings.staging} to ${settings.main} and re-applies the labelled pull requests`, `to bring it into ${settings.staging}: mode add with that ref (ops staging add ${quote(run.ref)}); to rebuild: leave ref empty`);
  const git = await openRepository(run.repo, { identity: run.identity, processEnv: run.processEnv, interactive: run.interactive, remote: settings.remote });
  const ctx: StagingContext = { git, reporter, settings };
  if (run.mode === 'add' && !run.ref) throw new OpsError('nothing to add: no ref given', 'give the branch, tag, pull request (pull/12) or sha to add (input ref, or `ops staging add <ref>`)');
  const label = checkLabel(run.label ?? STAGING_DEFAULTS.label);
  const remoteUrl = (await git.run(['remote', 'get-url', '--', settings.remote])).stdout.trim();
  if (run.token) reporter.mask(run.token);
  const github = githubAccess({ token: run.token, processEnv: run.processEnv, remoteUrl });
  if (github.warning) reporter.warn(github.warning);
  if (run.mode === 'add') {
    const what = run.pull ? `pull request #${run.pull.number}` : run.ref;
    const outputs = (result: AddResult, own: boolean) => {
      reporter.output('sha', result.sha);
      reporter.output('previous-sha', result.before ?? '');
      reporter.output('changed', String(result.changed));
      reporter.output('added', [...(!own || result.outcome === 'already-contained' ? [] : [result.source]), ...result.alsoAdded.map((a) => a.source)].map(id).join(','));
      reporter.output('skipped', result.skipped.map((s) => id(s.source)).join(','));
    };
    let result: AddResult;
    try {
      result = await reporter.group(`add ${what} to ${settings.staging}`, () => addToStaging(ctx, run.ref!, run.pull, { labelled: { github, label }, at: run.at }));
    } catch (e) {
      // Its own ref refused after the other labelled pull requests were pushed: staging moved, said as on success
      // (sha, changed...; the ref itself not among `added`) for the workflow to deploy it, and the step still fails.
      if (e instanceof StagingRefusal && e.pushed) outputs(e.pushed, false);
      throw e;
    }
    outputs(result, true);
    await reporter.summary(addSummary(result, { staging: settings.staging, label }, reporter.values));
    return result;
  }
  const result = await reporter.group(`rebuild ${settings.staging} from ${settings.main}`, () =>
    rebuildStaging(ctx, { github, label, comment: run.comment ?? true, runUrl: run.runUrl }),
  );
  const names = { main: settings.main, staging: settings.staging, label };
  reporter.info(
    `${settings.staging}: ${short(result.before)} → ${short(result.after)}${result.dryRun ? ' (dry run: not pushed)' : ''}; ` +
      `added ${result.added.length}, skipped ${result.skipped.length}${result.pullsUnavailable ? '; labelled pull requests NOT re-applied' : ''}`,
  );
  reporter.output('sha', result.after);
  reporter.output('previous-sha', result.before ?? '');
  reporter.output('changed', String(result.changed));
  reporter.output('added', result.added.map((a) => id(a.source)).join(','));
  reporter.output('skipped', result.skipped.map((s) => id(s.source)).join(','));
  await reporter.summary(rebuildSummary(result, names, reporter.values));
  return result;
}
