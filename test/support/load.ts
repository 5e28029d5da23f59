// A steady stream of HTTP requests (fixed rate, several in flight) counting every non-2xx answer and every
// error: how the tests and benchmarks prove that a deploy drops nothing.
import { request, Agent } from 'node:http';

export interface LoadResult {
  sent: number;
  ok: number;
  failed: number;
  /** Status codes or error codes of the failures, with counts. */
  failures: Record<string, number>;
  worstMs: number;
  p99Ms: number;
}

export interface LoadRun {
  stop(): Promise<LoadResult>;
}

/** Start `rate` requests per second to `url` until stop() is called. New connections each time (as browsers behind NAT do). */
export function startLoad(url: string, rate = 40): LoadRun {
  const agent = new Agent({ keepAlive: false });
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  let sent = 0;
  let ok = 0;
  const inflight = new Set<Promise<void>>();
  const one = () => {
    sent++;
    const started = performance.now();
    const p = new Promise<void>((resolve) => {
      const req = request(url, { agent, timeout: 10_000 }, (res) => {
        res.resume();
        res.on('end', () => {
          latencies.push(performance.now() - started);
          if (res.statusCode && res.statusCode >= 200 && res.statusCode < 300) ok++;
          else failures[String(res.statusCode)] = (failures[String(res.statusCode)] ?? 0) + 1;
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('ETIMEDOUT')));
      req.on('error', (e: NodeJS.ErrnoException) => {
        latencies.push(performance.now() - started);
        failures[e.code ?? e.message] = (failures[e.code ?? e.message] ?? 0) + 1;
        resolve();
      });
      req.end();
    });
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  };
  const timer = setInterval(one, 1000 / rate);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(inflight);
      agent.destroy();
      const sorted = [...latencies].sort((a, b) => a - b);
      return {
        sent,
        ok,
        failed: sent - ok,
        failures,
        worstMs: Math.round(sorted.at(-1) ?? 0),
        p99Ms: Math.round(sorted[Math.floor(sorted.length * 0.99)] ?? 0),
      };
    },
  };
}
