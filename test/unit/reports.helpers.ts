// Fake step output for unit tests, built from the same report-key records the steps and parsers use
// (core/steps/*.ts `*_KEYS`): a line whose key the records do not declare does not compile.
import { reportLine, type ReportKey } from '../../core/remote/types.ts';

/** `key value` (or a bare `key`) where key is one of the record's keys. */
export type ReportText<R> = `${Extract<keyof R, string>} ${string}` | Extract<keyof R, string>;

/**
 * `@ops key value` lines, each ended by a newline, as a step's stdout: `opsLines(KEYS, 'slot blue', `has ${sha}`)`.
 * The key is the text before the first space, looked up in `keys` (throws when absent, for values built at run time).
 */
export function opsLines<R extends Record<string, ReportKey>>(keys: R, ...lines: ReportText<R>[]): string {
  return lines
    .map((line) => {
      const sp = line.indexOf(' ');
      const name = sp < 0 ? line : line.slice(0, sp);
      const key = keys[name];
      if (!key) throw new Error(`fake report line ${JSON.stringify(line)}: no such key`);
      return `${reportLine(key, sp < 0 ? '' : line.slice(sp + 1))}\n`;
    })
    .join('');
}
