// The provision action: inputs → core provision → outputs and job summary.
import { runAction } from '../../core/action.ts';
import { openEnvironment } from '../../core/ops/secrets.ts';
import { provision, provisionSummary } from '../../core/ops/provision.ts';

await runAction({ required: ['environment', 'ssh-key'] }, async ({ ops, reporter, input }) => {
  const env = openEnvironment(ops, input('environment', { required: true }));
  const results = await provision(ops, env);
  reporter.output('changed', String(results.some((r) => r.items.some((i) => i.state === 'changed'))));
  await reporter.summary(provisionSummary(env, results, reporter.values));
});
