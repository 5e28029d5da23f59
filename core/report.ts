// One reporter for every operation: a terminal (aligned, optionally coloured lines) or GitHub Actions (groups,
// masks, job summary, outputs: ActionsReporter in core/action.ts, so the CLI never loads @actions/core).
// Everything printed goes through `redact`, so a secret registered with `mask` never reaches a log, even where
// the runner's own masking does not apply (local runs).
import { AsyncLocalStorage } from 'node:async_hooks';
import { secretParts } from './secrets/parts.ts';

export type Stream = 'stdout' | 'stderr';

export interface Reporter {
  /**
   * Register a secret value: every later print replaces it with ***, and each of its lines, and its parts that
   * may be printed alone: a URL's password (as written and percent-decoded), the strings of a JSON document,
   * and those as JSON escapes them (core/secrets/parts.ts).
   */
  mask(value: string): void;
  redact(text: string): string;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** Run `fn` inside a titled, timed group (an Actions log group, or a heading on a terminal). */
  group<T>(title: string, fn: () => Promise<T>): Promise<T>;
  /** One line of output from a remote command, prefixed with the host it came from. */
  line(host: string, text: string, stream: Stream): void;
  /** Markdown for the job summary (Actions) or the end of the run (terminal). */
  summary(markdown: string): Promise<void>;
  /** A named result: a step output in Actions, ignored on a terminal. */
  output(name: string, value: string): void;
}

const MIN_SECRET_LENGTH = 3; // masking "a" or "1" would shred every log line

/**
 * Holds the registered secrets and redacts them; shared by both reporters. Redacting a line costs about its
 * length times the number of distinct secret lengths, not the number of secrets: a large encrypted file
 * (initdata: thousands of users, each value masked) must not make every log line of the run slow.
 */
export class Masker {
  /** Every secret, with the order it was registered in (ties between equal lengths go by it). */
  private readonly secrets = new Map<string, number>();
  /** Secrets by length, and the lengths in ascending order. */
  private readonly byLength = new Map<number, Set<string>>();
  private lengths: number[] = [];
  /** The first MIN_SECRET_LENGTH characters of every secret: where none starts, nothing is looked up. */
  private readonly starts = new Set<string>();
  /** Secrets holding "*": the "***" a replacement puts in can complete one. */
  private readonly starred: string[] = [];
  /** Register a value and its parts; returns what was new (each part and each of its lines, trimmed). */
  add(value: string): string[] {
    const added: string[] = [];
    for (const v of secretParts(value).flatMap((p) => [p, ...p.split(/\r?\n/)])) {
      const t = v.trim();
      if (t.length >= MIN_SECRET_LENGTH && !this.secrets.has(t)) {
        this.secrets.set(t, this.secrets.size);
        let same = this.byLength.get(t.length);
        if (!same) {
          this.byLength.set(t.length, (same = new Set()));
          this.lengths = [...this.byLength.keys()].sort((a, b) => a - b);
        }
        same.add(t);
        this.starts.add(t.slice(0, MIN_SECRET_LENGTH));
        if (t.includes('*')) this.starred.push(t);
        added.push(t);
      }
    }
    return added;
  }
  redact(text: string): string {
    if (this.secrets.size === 0) return text;
    // The secrets the text holds (and those a replacement could complete).
    const found = new Set<string>(this.starred);
    for (let i = 0; i + MIN_SECRET_LENGTH <= text.length; i++) {
      if (!this.starts.has(text.slice(i, i + MIN_SECRET_LENGTH))) continue;
      for (const n of this.lengths) {
        if (i + n > text.length) break;
        const piece = text.slice(i, i + n);
        if (this.byLength.get(n)!.has(piece)) found.add(piece);
      }
    }
    if (found.size === 0) return text;
    // Longest first, so a secret that contains another is replaced whole.
    const order = [...found].sort((a, b) => b.length - a.length || this.secrets.get(a)! - this.secrets.get(b)!);
    let out = text;
    for (const s of order) if (out.includes(s)) out = out.split(s).join('***');
    return out;
  }
}

/** A duration for a log line: "1.2s". */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/**
 * A terminal: groups as headings, their output indented. Steps run at once (hosts of a rollout, a deploy's Python
 * set beside its node set and build) are siblings: a group is nested only in the group whose work started it (its
 * async context), never in one that merely runs at the same time, and it ends at the depth it began. A remote
 * command's lines (from the connection, outside any group's context) are indented once while a group is open.
 */
export class ConsoleReporter implements Reporter {
  private readonly masker = new Masker();
  /** The depth of the groups enclosing the caller's work. */
  private readonly nesting = new AsyncLocalStorage<number>();
  /** Groups open now, on any flow. */
  private open = 0;
  private readonly color: boolean;
  constructor(
    private readonly out: NodeJS.WritableStream = process.stdout,
    private readonly err: NodeJS.WritableStream = process.stderr,
    options: { color?: boolean } = {},
  ) {
    this.color = options.color ?? (Boolean((out as NodeJS.WriteStream).isTTY) && !process.env.NO_COLOR);
  }
  private paint(code: string, text: string): string {
    return this.color ? `\x1b[${code}m${text}\x1b[0m` : text;
  }
  private write(stream: NodeJS.WritableStream, text: string, depth = this.nesting.getStore() ?? (this.open ? 1 : 0)): void {
    const pad = '  '.repeat(depth);
    stream.write(
      this.redact(text)
        .split('\n')
        .map((l) => pad + l)
        .join('\n') + '\n',
    );
  }
  mask(value: string): void {
    this.masker.add(value);
  }
  redact(text: string): string {
    return this.masker.redact(text);
  }
  info(message: string): void {
    this.write(this.out, message);
  }
  warn(message: string): void {
    this.write(this.err, this.paint('33', `warning: ${message}`));
  }
  error(message: string): void {
    this.write(this.err, this.paint('31', `error: ${message}`));
  }
  async group<T>(title: string, fn: () => Promise<T>): Promise<T> {
    const start = Date.now();
    const depth = this.nesting.getStore() ?? 0;
    this.write(this.out, this.paint('1', `▸ ${title}`), depth);
    this.open++;
    try {
      const result = await this.nesting.run(depth + 1, fn);
      this.write(this.out, this.paint('2', `✓ ${title} (${seconds(Date.now() - start)})`), depth);
      return result;
    } catch (e) {
      this.write(this.err, this.paint('31', `✗ ${title} (${seconds(Date.now() - start)})`), depth);
      throw e;
    } finally {
      this.open--;
    }
  }
  line(host: string, text: string, stream: Stream): void {
    this.write(stream === 'stderr' ? this.err : this.out, `${this.paint('36', host)} ${text}`);
  }
  async summary(markdown: string): Promise<void> {
    this.write(this.out, markdown);
  }
  output(): void {}
}

/** A reporter that keeps everything in memory: for tests and for commands that print JSON. */
export class MemoryReporter implements Reporter {
  private readonly masker = new Masker();
  readonly lines: string[] = [];
  readonly outputs: Record<string, string> = {};
  readonly summaries: string[] = [];
  mask(value: string): void {
    this.masker.add(value);
  }
  redact(text: string): string {
    return this.masker.redact(text);
  }
  info(message: string): void {
    this.lines.push(this.redact(message));
  }
  warn(message: string): void {
    this.lines.push(this.redact(`warning: ${message}`));
  }
  error(message: string): void {
    this.lines.push(this.redact(`error: ${message}`));
  }
  async group<T>(title: string, fn: () => Promise<T>): Promise<T> {
    this.lines.push(this.redact(`▸ ${title}`));
    return fn();
  }
  line(host: string, text: string): void {
    this.lines.push(this.redact(`${host} ${text}`));
  }
  async summary(markdown: string): Promise<void> {
    this.summaries.push(this.redact(markdown));
  }
  output(name: string, value: string): void {
    this.outputs[name] = this.redact(value);
  }
  text(): string {
    return this.lines.join('\n');
  }
}
