// The staging-sync action: inputs → core/staging/run.ts → outputs and job summary. All logic lives in the core.
import { eventPayload, runAction } from '../../core/action.ts';
import { refFromEvent } from '../../core/staging/refs.ts';
import { DEFAULT_IDENTITY } from '../../core/git.ts';
import { runUrl } from '../../core/runinfo.ts';
import { runStaging } from '../../core/staging/run.ts';
import { stagingSettings } from '../../core/staging/settings.ts';

await runAction({ required: ['mode'], choices: { mode: ['add', 'rebuild'] }, flags: { 'dry-run': false, comment: true } }, async ({ ops, reporter, input, flag }) => {
  const mode = input('mode') as 'add' | 'rebuild';
  // add without a ref, on a pull_request event: that pull request, at the head commit the event saw (a label
  // approves those commits, not what is pushed before the run starts).
  const event = mode === 'add' && !input('ref') ? refFromEvent(eventPayload(ops.processEnv), ops.processEnv.GITHUB_REPOSITORY) : undefined;
  await runStaging({
    mode,
    ref: input('ref') || event?.ref,
    pull: event?.pull,
    at: event?.sha,
    repo: ops.root,
    settings: stagingSettings({
      remote: input('remote'),
      main: input('main-branch'),
      staging: input('staging-branch'),
      retries: input('retries') || undefined,
      dryRun: flag('dry-run'),
    }),
    identity: { name: input('committer-name') || DEFAULT_IDENTITY.name, email: input('committer-email') || DEFAULT_IDENTITY.email },
    label: input('label') || undefined,
    comment: flag('comment'),
    token: input('github-token') || undefined,
    processEnv: ops.processEnv,
    reporter,
    runUrl: runUrl(ops.processEnv) || undefined,
  });
});
