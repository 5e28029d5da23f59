// What the benchmark reads from the request stream's timeline (test/support/load.ts): the failed requests, the
// worst latency, how long errors lasted, the failures after the deploy tool had already reported success, and
// when the target version was first served.
import type { Sample } from '../test/support/load.ts';

export interface StreamStats {
  sent: number;
  failed: number;
  /** Failures among requests sent after the deploy tool had exited with success. */
  failedAfterDone: number;
  /** Status or error code -> count. */
  failures: Record<string, number>;
  worstMs: number;
  /** The longest outage on one host: from the start of the first to the end of the last of consecutive failed
   * requests (0 without failures). */
  errorWindowMs: number;
  /** The three slowest requests: when they were sent (ms after t0), how long they took, their status. */
  slowest: { atMs: number; ms: number; status: number | string }[];
  /** From `t0` until the first 200 answer carrying `target` (among requests sent after t0), on the slowest of the
   * streamed hosts; undefined if one never served it. */
  servedMs?: number;
}

function longestOutage(samples: Sample[]): number {
  let longest = 0;
  for (const url of new Set(samples.map((s) => s.url))) {
    let first: Sample | undefined;
    for (const s of samples.filter((x) => x.url === url)) {
      if (s.status === 200) first = undefined;
      else {
        first ??= s;
        longest = Math.max(longest, s.end - first.start);
      }
    }
  }
  return Math.round(longest);
}

export function analyse(samples: Sample[], t0: number, done: number, target?: string): StreamStats {
  const failed = samples.filter((s) => s.status !== 200);
  const failures: Record<string, number> = {};
  for (const s of failed) {
    const key = s.reason ? `${s.status} ${s.reason}` : String(s.status);
    failures[key] = (failures[key] ?? 0) + 1;
  }
  let servedMs: number | undefined;
  if (target !== undefined) {
    const perUrl = [...new Set(samples.map((s) => s.url))].map((url) => samples.find((s) => s.url === url && s.start >= t0 && s.status === 200 && s.version === target));
    servedMs = perUrl.every((s) => s) ? Math.round(Math.max(...perUrl.map((s) => s!.end - t0))) : undefined;
  }
  return {
    sent: samples.length,
    failed: failed.length,
    failedAfterDone: failed.filter((s) => s.start >= done).length,
    failures,
    worstMs: Math.round(Math.max(0, ...samples.map((s) => s.end - s.start))),
    errorWindowMs: longestOutage(samples),
    slowest: [...samples]
      .sort((a, b) => b.end - b.start - (a.end - a.start))
      .slice(0, 3)
      .map((s) => ({ atMs: Math.round(s.start - t0), ms: Math.round(s.end - s.start), status: s.status })),
    servedMs,
  };
}
