// The initdata action: inputs → core initdata → job summary with the loader's (masked) output.
import { resolve } from 'node:path';
import { runAction } from '../../core/action.ts';
import { openEnvironment } from '../../core/ops/secrets.ts';
import { initdata, initdataSummary } from '../../core/ops/initdata.ts';

await runAction({ required: ['environment', 'ssh-key'], flags: { 'live-settings': false } }, async ({ ops, reporter, input, flag }) => {
  const env = openEnvironment(ops, input('environment', { required: true }));
  const file = input('file');
  // resolve, not join: an absolute path (a file an earlier step wrote under $RUNNER_TEMP) is that file
  const result = await initdata(ops, env, { file: file ? resolve(ops.root, file) : undefined, liveSettings: flag('live-settings') });
  await reporter.summary(initdataSummary(result, reporter.values));
});
