// The rollback action: inputs → core rollback → outputs and job summary.
import { runAction } from '../../core/action.ts';
import { openEnvironment } from '../../core/ops/secrets.ts';
import { rollback, rollbackSummary } from '../../core/ops/rollback.ts';

await runAction({ required: ['environment', 'ssh-key'] }, async ({ ops, reporter, input }) => {
  const env = openEnvironment(ops, input('environment', { required: true }));
  const result = await rollback(ops, env, input('to') || undefined);
  reporter.output('release', result.hosts[0]?.release ?? '');
  reporter.output('previous-release', result.hosts[0]?.previous ?? '');
  reporter.output('url', result.url);
  await reporter.summary(rollbackSummary(result, reporter.values));
});
