// The deployment-superseded action: inputs → core/deployments.ts → outputs and job summary.
import { runAction } from '../../core/action.ts';
import { markSuperseded } from '../../core/deployments.ts';
import { OpsError } from '../../core/errors.ts';
import { runUrl } from '../../core/runinfo.ts';

await runAction({ required: ['environment', 'sha', 'github-token'] }, async ({ ops, reporter, input }) => {
  const env = ops.processEnv;
  // git reads a sha in either case; GitHub's API matches deployments by the lower-case one
  const given = input('sha', { required: true });
  const sha = given.toLowerCase();
  if (!/^[0-9a-f]{40}$/.test(sha)) throw new OpsError(`invalid input sha: ${JSON.stringify(given)}: not a full commit sha (40 hexadecimal digits)`, 'give the full commit sha the deploy job was asked for (github.sha)');
  const token = input('github-token', { required: true });
  reporter.mask(token);
  const environment = input('environment', { required: true });
  if (!env.GITHUB_REPOSITORY) throw new OpsError('$GITHUB_REPOSITORY is not set', 'this action runs in a GitHub Actions job');
  const r = await markSuperseded(
    { token, repository: env.GITHUB_REPOSITORY, apiUrl: env.GITHUB_API_URL || 'https://api.github.com', environment, sha, runId: env.GITHUB_RUN_ID, logUrl: runUrl(env) || undefined },
    reporter,
  );
  reporter.output('deployment', String(r.deployment));
  reporter.output('marked', r.marked);
  reporter.output('restored', r.restored.join(','));
  await reporter.summary(
    [`### Deployment record: ${reporter.values.text(environment)} @ ${sha.slice(0, 12)} skipped (forward-only)`, '', `Deployment ${r.deployment}: ${r.marked}.`, r.restored.length ? `Given their success back (the commit live): ${r.restored.join(', ')}.` : '', ''].join('\n'),
  );
});
