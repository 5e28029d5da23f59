// A steady stream of HTTP requests through nginx (fixed rate, several in flight) that keeps a timeline: when
// each request started and ended, its status (or network error) and which client version answered (the page
// footer "client X"). The tests count its failures (startLoad); the benchmark reads the timeline (bench/load.ts).
import { Agent, request } from 'node:http';

export interface Sample {
  url: string;
  /** ms (performance.now()) when the request was sent and when it ended. */
  start: number;
  end: number;
  /** HTTP status, or the error code ("ECONNREFUSED", "ETIMEDOUT"...). */
  status: number | string;
  /** The client version in the page footer, when there was one. */
  version?: string;
  /** Who answered an error: "nginx" (no upstream), or the client's own message ("API unavailable: ..."). */
  reason?: string;
}

export interface Stream {
  /** The requests answered so far. */
  peek(): Sample[];
  stop(): Promise<Sample[]>;
}

const FOOTER = /<footer>client ([^<]*)<\/footer>/;

function reasonOf(body: string): string {
  if (/<center>nginx<\/center>/.test(body)) return 'nginx';
  const api = /The API is unavailable: ([^<]*?)\.?</.exec(body);
  if (api) return `API unavailable: ${api[1]!.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, '').trim()}`;
  return body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 60);
}

/**
 * `rate` GET requests per second in all, taking `urls` in turn (several hosts share the rate, as behind a load
 * balancer), a new connection each time (like browsers behind NAT).
 */
export function startStream(urls: string[], rate: number): Stream {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const samples: Sample[] = [];
  const inflight = new Set<Promise<void>>();
  const one = (url: string) => {
    const start = performance.now();
    const p = new Promise<void>((resolve) => {
      const req = request(url, { agent, timeout: 10_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString();
          const status = res.statusCode ?? 0;
          samples.push({ url, start, end: performance.now(), status, version: FOOTER.exec(body)?.[1], reason: status === 200 ? undefined : reasonOf(body) });
          resolve();
        });
        res.on('error', () => {
          samples.push({ url, start, end: performance.now(), status: 'ERESPONSE' });
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
      req.on('error', (e: NodeJS.ErrnoException) => {
        samples.push({ url, start, end: performance.now(), status: e.code ?? e.message });
        resolve();
      });
      req.end();
    });
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  };
  let next = 0;
  const timer = setInterval(() => one(urls[next++ % urls.length]!), 1000 / rate);
  return {
    peek: () => samples,
    async stop() {
      clearInterval(timer);
      await Promise.all(inflight);
      agent.destroy();
      return samples.sort((a, b) => a.start - b.start);
    },
  };
}

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

/** Start `rate` requests per second to `url` until stop() is called; any answer but 2xx is a failure. */
export function startLoad(url: string, rate = 40): LoadRun {
  const stream = startStream([url], rate);
  return {
    async stop() {
      const samples = await stream.stop();
      const failures: Record<string, number> = {};
      let ok = 0;
      for (const s of samples) {
        if (typeof s.status === 'number' && s.status >= 200 && s.status < 300) ok++;
        else failures[String(s.status)] = (failures[String(s.status)] ?? 0) + 1;
      }
      const sorted = samples.map((s) => s.end - s.start).sort((a, b) => a - b);
      return {
        sent: samples.length,
        ok,
        failed: samples.length - ok,
        failures,
        worstMs: Math.round(sorted.at(-1) ?? 0),
        p99Ms: Math.round(sorted[Math.floor(sorted.length * 0.99)] ?? 0),
      };
    },
  };
}
