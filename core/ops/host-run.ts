// The one step runner of operations, for one host: log groups, step durations for the summary, and a failure
// that ran out of disk space or inodes said as such.
import type { Target } from '../target.ts';
import type { OpsContext } from '../context.ts';
import { DISK_FULL, DiskFullError, StepError } from '../errors.ts';
import { failureDetail, failureVerdict, reported, reportedAll, type Remote, type RunOptions, type Step, type StepResult } from '../remote/types.ts';
import { describeDisk, diskSpace, exhausted, otherDiskFix, parseDisk, FACTS_KEYS, TEMP_DIR } from '../steps/facts.ts';
import { LIBRARY_KEYS } from '../steps/libraries.ts';

/** What a deploy or a rollback did on one host: the release it made live, the one before, its steps' durations. */
export interface HostSwitch {
  host: string;
  /** The release live after it. */
  release: string;
  /** The release live before it ('' on a first deploy). */
  previous: string;
  /** Nothing to do: `release` was already live. */
  noop: boolean;
  steps: { name: string; ms: number }[];
  notes: string[];
}

/**
 * When a switch (switchTo: a deploy's, or a rollback's inside its step) found nginx not running and its reload
 * started it (nginx_reload's `nginx_started` in the step's result `r`): warns, naming the host (the site was down
 * until then), and adds the warning to the host's notes. Nothing otherwise.
 */
export function reportNginxStarted(ctx: OpsContext, result: HostSwitch, r: StepResult): void {
  if (reported(r, LIBRARY_KEYS.nginx_started) === undefined) return;
  const started = `nginx was not running on ${result.host}: the switch started it (the site was down until then)`;
  ctx.reporter.warn(started);
  result.notes.push(`warning: ${started}`);
}

/**
 * Timed step runner for one host: a group in the log per step (quiet steps stay out of it), durations for the
 * summary. A step or upload that runs out of disk space or inodes fails saying so, with what is left under the
 * app's directory (one more round trip, on that failure only), and a hint ending "then <operation> again".
 */
export class HostRun {
  readonly steps: { name: string; ms: number }[] = [];
  constructor(
    readonly ctx: OpsContext,
    readonly remote: Remote,
    private readonly env: Target,
    /** What to do again once space is freed, in the hint: 'deploy' (default), 'provision', … */
    private readonly operation = 'deploy',
  ) {}
  /** Run `step`; `options.allowFailure`: a failed step's result is returned (see `failure`), not thrown. */
  async run(step: Step, options: RunOptions = {}): Promise<StepResult> {
    const started = performance.now();
    try {
      return await (step.quiet ? this.remote.run(step, options) : this.ctx.reporter.group(`${this.remote.name} · ${step.name}`, () => this.remote.run(step, options)));
    } catch (e) {
      throw await this.diskFull(e);
    } finally {
      this.steps.push({ name: step.name, ms: Math.round(performance.now() - started) });
    }
  }
  async upload(content: Buffer | string, path: string, mode: number): Promise<void> {
    await this.remote.upload(content, path, { mode }).catch(async (e: unknown) => {
      throw await this.diskFull(e);
    });
  }
  /**
   * A step's outcome that another step carried (a rollback's, at the end of the lock step) or that the script
   * reported rather than exited with: recorded under `name` (with `result`'s duration), and a `code` other than
   * 0 thrown as the StepError `run` would throw (a full disk said as such).
   */
  async record(name: string, result: StepResult, code = 0): Promise<void> {
    this.steps.push({ name, ms: result.durationMs });
    if (code !== 0) throw await this.failure(name, result, code);
  }
  /** The error of a step `name` that ended with `code` (its result read with allowFailure): a full disk said as such. */
  async failure(name: string, result: StepResult, code = result.code): Promise<unknown> {
    const redact = (t: string) => this.ctx.reporter.redact(t);
    return this.diskFull(new StepError(name, this.remote.name, code, failureDetail(result.stdout, result.stderr, redact), undefined, undefined, undefined, failureVerdict(result.stdout, redact)));
  }
  /**
   * A cleanup step whose own failure must not hide the original error: its result (whatever its exit code), or
   * undefined when it could not run (a lost connection, a timeout).
   */
  async tryRun(step: Step): Promise<StepResult | undefined> {
    return this.remote.run(step, { allowFailure: true }).catch(() => undefined);
  }
  /** A failed step: was the disk full? (diskFullError) */
  private diskFull(e: unknown): Promise<unknown> {
    return diskFullError(this.remote, this.env, e, this.operation);
  }
}

/**
 * The absolute paths the lines of `text` that say a disk was full (DISK_FULL) name, in order, at most 3: the file a
 * tool could not write (`sort: write failed: /tmp/x: No space left on device`, mktemp's `‘/tmp/tmp.XXXXXXXXXX’`,
 * Python's `[Errno 28] No space left on device: '/srv/…'`). Only what a path holds (no quote, colon or space).
 */
export function fullPaths(text: string): string[] {
  const paths = text
    .split('\n')
    .filter((l) => DISK_FULL.test(l))
    .flatMap((l) => [...l.matchAll(/(?:^|[\s'"‘`(=])(\/[\w.+@%\/-]+)/g)].map((m) => m[1]!))
    .filter((p) => p.length <= 300 && !p.split('/').includes('..'));
  return [...new Set(paths)].slice(0, 3);
}

/**
 * `e` (a failed step on `remote`) as a DiskFullError when the disk was full: said in its error (ENOSPC), or not (a
 * tool that hides its cause, like venv's ensurepip): the space and inodes left after it tell (one more round trip).
 * The filesystem named is the one that is out: the app's (base_dir), else one the error names or the temporary
 * directory's (/tmp, a tmpfs of its own on many hosts), when the error said ENOSPC and that one is out while the app's
 * has room; its hint then says what is not there (ops's releases). Its hint ends "then <operation> again". `e` itself
 * otherwise.
 */
export async function diskFullError(remote: Remote, env: Target, e: unknown, operation: string): Promise<unknown> {
  if (!(e instanceof StepError) || e.exitCode === null) return e;
  const said = DISK_FULL.test(e.message);
  const elsewhere = said ? [...new Set([...fullPaths(e.message), TEMP_DIR])] : [];
  const r = await remote.run(diskSpace(env, elsewhere), { allowFailure: true }).catch(() => undefined);
  const disks = r ? reportedAll(r, FACTS_KEYS.disk).map(parseDisk) : [];
  const base = disks[0];
  const baseOut = exhausted(base);
  if (!said && !baseOut) return e;
  // The app's filesystem has room and another one the failure wrote to is out: that one is named.
  const other = !baseOut ? disks.slice(1).find(exhausted) : undefined;
  const disk = other ?? base;
  // ENOSPC names neither, and the failed step's cleanup may have given some back before this look (npm removes
  // what it unpacked): few inodes left beside space to spare means the inodes ran out.
  const inodes = disk?.freeInodes !== undefined && (disk.freeInodes === 0 || (disk.freeInodes < 1000 && disk.freeMb >= 64));
  const what = inodes ? 'free inodes' : 'disk space';
  if (other && base)
    return new DiskFullError(
      e,
      `${remote.name} ran out of ${what}: ${describeDisk(other)}${other.path === TEMP_DIR ? ' (where steps make their temporary files)' : ''}; ops's own files have room (${describeDisk(base)})`,
      `${otherDiskFix(remote.name, other, inodes)}, then ${operation} again`,
    );
  return new DiskFullError(
    e,
    `${remote.name} ran out of ${what}${disk ? `: ${describeDisk(disk)}` : ` under ${env.baseDir}`}`,
    `free space on ${remote.name} under ${disk?.path ?? env.baseDir} (failed releases, old dependency sets under shared/deps, logs; or lower release.keep), then ${operation} again`,
  );
}

/** Run `fn` over `items`, at most `limit` at a time; the first failure is thrown once all started ones end. */
export async function pooled<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const worker = async () => {
    while (next < items.length && !errors.length) {
      const item = items[next++]!;
      await fn(item).catch((e: unknown) => void errors.push(e));
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (errors.length) throw errors[0];
}
