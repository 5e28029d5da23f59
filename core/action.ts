// What every action entry point shares: inputs → OpsContext → operation → outputs, summary and failure.
// Keeps actions/<name>/main.ts to a few lines: read inputs, call one core operation, write outputs.
import * as core from '@actions/core';
import { OpsError, formatError, onUncaught } from './errors.ts';
import { Masker, seconds, urlEncodedForms, type Reporter } from './report.ts';
import type { OpsContext } from './context.ts';

export interface ActionContext {
  ops: OpsContext;
  reporter: ActionsReporter;
  /** A string input ('' when not given). */
  input(name: string, options?: { required?: boolean }): string;
  /** A boolean input; unset means `fallback` (the runner fills action.yml defaults, local harnesses may not). */
  flag(name: string, fallback?: boolean): boolean;
}

/** The reporter of the actions: log groups, masks (setSecret), job summary, outputs, through @actions/core. */
export class ActionsReporter implements Reporter {
  private readonly masker = new Masker();
  /** Whether an Actions log group is open now (they cannot nest). */
  private groupOpen = false;
  mask(value: string): void {
    // GitHub masks exact strings only: the encoded forms of each part too (a password in a database URL).
    for (const v of this.masker.add(value)) for (const form of [v, ...urlEncodedForms(v)]) core.setSecret(form);
  }
  redact(text: string): string {
    return this.masker.redact(text);
  }
  info(message: string): void {
    core.info(this.redact(message));
  }
  warn(message: string): void {
    core.warning(this.redact(message));
  }
  error(message: string): void {
    core.error(this.redact(message));
  }
  async group<T>(title: string, fn: () => Promise<T>): Promise<T> {
    // Actions log groups cannot nest: an inner (or concurrent) group becomes a plain heading. Whether a group is
    // open is what counts, not how many run: steps run at once (a deploy's Python set beside its node set and
    // build) end in any order, and a step starting after the grouped one ended gets a group of its own.
    const own = !this.groupOpen;
    const start = Date.now();
    if (own) {
      core.startGroup(this.redact(title));
      this.groupOpen = true;
    } else core.info(`▸ ${this.redact(title)}`);
    try {
      const result = await fn();
      core.info(`✓ ${this.redact(title)} (${seconds(Date.now() - start)})`);
      return result;
    } catch (e) {
      core.info(`✗ ${this.redact(title)} (${seconds(Date.now() - start)})`);
      throw e;
    } finally {
      if (own) {
        core.endGroup();
        this.groupOpen = false;
      }
    }
  }
  line(host: string, text: string): void {
    core.info(this.redact(`${host} ${text}`));
  }
  async summary(markdown: string): Promise<void> {
    await core.summary.addRaw(this.redact(markdown), true).write();
  }
  output(name: string, value: string): void {
    core.setOutput(name, this.redact(value));
  }
}


/** A boolean input: true/yes/1 or false/no/0; empty means `fallback` (local harnesses fill no defaults). */
export function booleanInput(name: string, value: string, fallback: boolean): boolean {
  const v = value.trim().toLowerCase();
  if (v === '') return fallback;
  if (['true', 'yes', '1'].includes(v)) return true;
  if (['false', 'no', '0'].includes(v)) return false;
  throw new OpsError(`invalid input ${name}: ${JSON.stringify(value)}`, `${name} is true or false`);
}

/**
 * Run an action body with the shared inputs handled once: `ssh-key` and `age-key` are masked (every line)
 * and handed to the core through the same variables the CLI reads (OPS_SSH_KEY, SOPS_AGE_KEY).
 */
export async function runAction(body: (ctx: ActionContext) => Promise<void>): Promise<void> {
  const reporter = new ActionsReporter();
  const processEnv: NodeJS.ProcessEnv = { ...process.env };
  onUncaught((message) => core.setFailed(reporter.redact(message)));
  try {
    const sshKey = core.getInput('ssh-key');
    if (sshKey) {
      reporter.mask(sshKey);
      processEnv.OPS_SSH_KEY = sshKey;
    }
    const ageKey = core.getInput('age-key');
    if (ageKey) {
      reporter.mask(ageKey);
      processEnv.SOPS_AGE_KEY = ageKey;
    }
    const root = core.getInput('working-directory') || process.env.GITHUB_WORKSPACE || process.cwd();
    await body({
      ops: { root, reporter, processEnv },
      reporter,
      input: (name, options) => {
        const value = core.getInput(name).trim();
        if (options?.required && !value) throw new OpsError(`input ${name} is required`, `give it in the step's with: block`);
        return value;
      },
      flag: (name, fallback = false) => booleanInput(name, core.getInput(name), fallback),
    });
  } catch (e) {
    core.setFailed(reporter.redact(formatError(e)));
  }
}
