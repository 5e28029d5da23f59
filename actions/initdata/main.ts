// The initdata action: inputs → core initdata → job summary with the loader's (masked) output.
import { runAction } from '../../core/action.ts';
import { openEnvironment } from '../../core/ops/secrets.ts';
import { initdata, initdataFileInput, initdataSummary } from '../../core/ops/initdata.ts';

await runAction({ required: ['environment', 'ssh-key'], flags: { 'live-settings': false } }, async ({ ops, reporter, input, flag }) => {
  const env = openEnvironment(ops, input('environment', { required: true }));
  const file = input('file');
  // from the repository's root; an absolute path (a file an earlier step wrote under $RUNNER_TEMP) is that file
  const result = await initdata(ops, env, { file: file || undefined, fileOption: initdataFileInput(ops.root), liveSettings: flag('live-settings') });
  await reporter.summary(initdataSummary(result, reporter.values));
});
