// Errors meant for people: a message that says what is wrong, and a hint that says how to fix it.
// Entry points print `message` (and `hint`) without a stack trace; anything else is a bug and keeps its stack.

export class OpsError extends Error {
  override name = 'OpsError';
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** A remote step exited non-zero (or timed out): names the step, the host, the exit code and the end of stderr. */
export class StepError extends OpsError {
  override name = 'StepError';
  constructor(
    readonly step: string,
    readonly host: string,
    readonly exitCode: number | null,
    readonly stderrTail: string,
    readonly signal?: string,
    hint?: string,
  ) {
    const how = signal ? `was killed by ${signal}` : exitCode === 124 ? 'timed out' : `failed with exit code ${exitCode}`;
    const tail = stderrTail.trim() ? `\n${indent(stderrTail.trim())}` : '';
    super(`step "${step}" on ${host} ${how}${tail}`, hint);
  }
}

export function indent(text: string, prefix = '  | '): string {
  return text
    .split('\n')
    .map((line) => prefix + line)
    .join('\n');
}

/** The last `n` non-empty lines of a text. */
export function tail(text: string, n = 20): string {
  const lines = text.split('\n');
  while (lines.length && lines[lines.length - 1]!.trim() === '') lines.pop();
  return lines.slice(-n).join('\n');
}

/** Render an error for a terminal or a job log: OpsErrors as message + hint, anything else with its stack. */
export function formatError(err: unknown): string {
  if (err instanceof OpsError) return err.hint ? `${err.message}\n  hint: ${err.hint}` : err.message;
  if (err instanceof Error) return err.stack ?? err.message;
  return String(err);
}
