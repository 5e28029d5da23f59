// The status action: inputs → core status → outputs and job summary; fails (gating the workflow) when any host
// is unhealthy, with one line per problem.
import { runAction } from '../../core/action.ts';
import { openEnvironment } from '../../core/ops/secrets.ts';
import { OpsError } from '../../core/errors.ts';
import { status, statusSummary } from '../../core/ops/status.ts';

// Its key comes from the GitHub environment <env>-status (status.yml; README "Repository checklist").
await runAction({ required: ['environment', 'ssh-key'], flags: { 'fail-on-unhealthy': true }, secretsFrom: (e) => `${e}-status` }, async ({ ops, reporter, input, flag }) => {
  const env = openEnvironment(ops, input('environment', { required: true }));
  const result = await status(ops, env);
  reporter.output('healthy', String(result.healthy));
  reporter.output('problems', result.problems.join('\n'));
  reporter.output('json', JSON.stringify(result));
  await reporter.summary(statusSummary(result, reporter.values));
  for (const w of result.warnings) reporter.warn(w);
  if (!result.healthy && flag('fail-on-unhealthy'))
    throw new OpsError(`${env.name} is unhealthy:\n${result.problems.map((p) => `  ${p}`).join('\n')}`, `details in the job summary; locally: ops status ${env.name}`);
});
