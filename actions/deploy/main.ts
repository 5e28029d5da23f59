// The deploy action: inputs → core deploy → outputs and job summary.
import { runAction } from '../../core/action.ts';
import { openEnvironment } from '../../core/ops/secrets.ts';
import { deploy, deploySummary, refuseUnreadPlan, reportDeploy } from '../../core/ops/deploy.ts';

await runAction({ required: ['environment', 'ssh-key'], flags: { force: false, 'dry-run': false, 'forward-only': false } }, async ({ ops, reporter, input, flag }) => {
  const env = openEnvironment(ops, input('environment', { required: true }));
  const result = await deploy(ops, env, { ref: input('ref') || undefined, force: flag('force'), dryRun: flag('dry-run'), forwardOnly: flag('forward-only') });
  reportDeploy(reporter, result);
  await reporter.summary(deploySummary(result, reporter.values));
  refuseUnreadPlan(result);
});
