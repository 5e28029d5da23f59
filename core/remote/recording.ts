// A transport for tests: records every step and upload, answers with scripted results.
import { OpsError, StepError } from '../errors.ts';
import { scriptText, sshCommand } from './wrap.ts';
import { failureDetail, failureVerdict, parseReports, type Remote, type RunOptions, type Step, type StepResult, type UploadOptions } from './types.ts';

export interface Recorded {
  step: Step;
  commandLine: string;
  stdin: string;
}

export type Responder = (step: Step) => Partial<Pick<StepResult, 'stdout' | 'stderr' | 'code'>> | undefined;

export class RecordingRemote implements Remote {
  readonly runs: Recorded[] = [];
  readonly uploads: { path: string; content: Buffer; mode: number; guard?: string }[] = [];
  readonly connection = 'recorded';
  closed = false;
  constructor(
    readonly name = 'test-host',
    readonly login = 'deploy',
    private readonly appUser = 'app',
    private readonly respond: Responder = () => undefined,
  ) {}
  async run(step: Step, options: RunOptions = {}): Promise<StepResult> {
    if (this.halted) throw new OpsError(`step "${step.name}" on ${this.name} not started: ${this.halted}`);
    this.runs.push({ step, commandLine: sshCommand(step, this.login, this.appUser), stdin: scriptText(step) });
    const r = this.respond(step) ?? {};
    const result: StepResult = { stdout: r.stdout ?? '', stderr: r.stderr ?? '', code: r.code ?? 0, durationMs: 0, reports: parseReports(r.stdout ?? '') };
    if (result.code !== 0 && !options.allowFailure) throw new StepError(step.name, this.name, result.code, failureDetail(result.stdout, result.stderr, (t) => t), undefined, undefined, step.timeout, failureVerdict(result.stdout, (t) => t)); // as ssh.ts builds it (no reporter here: the operations mask its message again)
    return result;
  }
  /** Recorded steps answer at once: none is ever in flight. */
  inFlight(): string[] {
    return [];
  }
  started(): string[] {
    return [];
  }
  async whenIdle(): Promise<void> {}
  /** Why later steps are refused (halt), as the SSH transport refuses them. */
  halted?: string;
  halt(reason: string): void {
    this.halted ??= reason;
  }
  async upload(content: string | Buffer, path: string, options: UploadOptions = {}): Promise<void> {
    this.uploads.push({ path, content: Buffer.from(content), mode: options.mode ?? 0o600, ...(options.guard && { guard: options.guard }) });
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  stepNames(): string[] {
    return this.runs.map((r) => r.step.name);
  }
}
