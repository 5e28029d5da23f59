// Where an in-process ops-pipeline operation spends its time: a connector that wraps the real one and records
// the connection and every remote call (step scripts, uploads) with start and duration.
import type { OpsContext } from '../core/context.ts';
import { sshConnector } from '../core/context.ts';
import type { Remote } from '../core/remote/types.ts';

export interface Phase {
  host: string;
  what: string;
  /** ms after the operation started. */
  at: number;
  ms: number;
}

export function profiled(ctx: OpsContext): { ctx: OpsContext; phases: Phase[]; start(): void } {
  const phases: Phase[] = [];
  let t0 = performance.now();
  const real = sshConnector(ctx);
  const time = async <T>(host: string, what: string, fn: () => Promise<T>): Promise<T> => {
    const at = performance.now();
    try {
      return await fn();
    } finally {
      phases.push({ host, what, at: Math.round(at - t0), ms: Math.round(performance.now() - at) });
    }
  };
  const connector = async (...args: Parameters<ReturnType<typeof sshConnector>>): Promise<Remote> => {
    const host = args[1].name;
    const remote = await time(host, 'connect', () => real(...args));
    // Wrap in place: a Remote is a class instance whose methods use `this`.
    const run = remote.run.bind(remote);
    const upload = remote.upload.bind(remote);
    const close = remote.close.bind(remote);
    remote.run = (step, options) => time(host, `run: ${step.name}`, () => run(step, options));
    remote.upload = (content, path, options) => time(host, `upload ${path.split('/').pop()}`, () => upload(content, path, options));
    remote.close = () => time(host, 'close', () => close());
    return remote;
  };
  return {
    ctx: { ...ctx, connector },
    phases,
    start() {
      t0 = performance.now();
      phases.length = 0;
    },
  };
}
