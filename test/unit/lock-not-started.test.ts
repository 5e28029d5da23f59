// A run whose lock step never began on a host (the login shell ended before it, or ran it in a shell ops refuses:
// NotStartedError) took no lock there: it must not say the lock "could not be released", nor tell the user to release it.
import { beforeAll, describe, expect, it } from 'vitest';
import { loadEnvironment } from '../../core/config/environment.ts';
import type { OpsContext } from '../../core/context.ts';
import { deploy } from '../../core/ops/deploy.ts';
import { NotStartedError } from '../../core/errors.ts';
import { MemoryReporter } from '../../core/report.ts';
import { RecordingRemote } from '../../core/remote/recording.ts';
import { TEST_HOST_KEY, scratchProject } from './project.helpers.ts';

let root: string;

beforeAll(async () => {
  ({ root } = await scratchProject('ops-lock-not-started-', 'e', {
    app: 'sample',
    ref: 'v1',
    hosts: [{ name: 'web1', address: '192.0.2.1', host_key: TEST_HOST_KEY }],
    programs: { server: { command: 'run', port: 3579, health: '/health' }, client: { command: 'run', port: 3000 } },
  }));
}, 60_000);

describe('a lock step that did not start', () => {
  it('fails the run with its own error and no word of a lock to release; nothing else is run there', async () => {
    const remote = new RecordingRemote('web1', 'deploy', 'sample');
    const run = remote.run.bind(remote);
    remote.run = async (step, options) => {
      if (step.name === 'lock' || step.name === 'unlock') throw new NotStartedError(`step "${step.name}" on web1 did not start: the login shell of deploy ended with exit code 0 before the step's script began`, 'the fix');
      return run(step, options);
    };
    const ctx: OpsContext = { root, reporter: new MemoryReporter(), processEnv: { PATH: process.env.PATH }, connector: async () => remote };
    const err = await deploy(ctx, loadEnvironment('e', root), {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe('step "lock" on web1 did not start: the login shell of deploy ended with exit code 0 before the step\'s script began');
    expect((err as NotStartedError).hint).toBe('the fix');
    expect(remote.stepNames().filter((n) => n !== 'lock')).toEqual([]);
  });
});
