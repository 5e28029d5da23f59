// What other frameworks' defaults ask of a deploy, on a real host (supervisor, nginx, npm): a Next.js-style program
// started by `npm start` from a subdirectory of the release (npm puts every parent's node_modules/.bin on its PATH,
// <base>/releases/node_modules/.bin among them: no release's code), listening on every address as `next start` does
// (warned of); and a Django-style API that routes its full paths (urls.py's api/..., admin/...), given them whole
// by strip_prefix: false.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deploy } from '../../core/ops/deploy.ts';
import { MemoryReporter } from '../../core/report.ts';
import { initRepo } from '../support/gitrepo.ts';
import { get, labEnvironment, webConfig } from './support.ts';

/** Answers every GET with its path (as it reached the program); health: /api/health/ only, as a Django urls.py would. */
const SERVER = String.raw`import os
from http.server import BaseHTTPRequestHandler, HTTPServer
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        known = self.path.startswith("/api/") or self.path == "/healthz"
        body = (self.path if known else "not found").encode()
        self.send_response(200 if known else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
HTTPServer((os.environ.get("BIND", "127.0.0.1"), int(os.environ["PORT"])), Handler).serve_forever()
`;

const root = mkdtempSync(join(tmpdir(), 'ops-frameworks-'));

const lab = labEnvironment('fwk', (host) => {
  const repo = join(root, 'app');
  initRepo(repo, {
    'frontend/package.json': JSON.stringify({ name: 'frontend', private: true, scripts: { start: 'exec python3 server.py' } }, null, 2),
    'frontend/server.py': SERVER,
    'backend/server.py': SERVER,
  });
  return webConfig(host, repo, {
    programs: {
      web: { command: '{npm} start', directory: 'frontend', port: 5100, health: '/healthz', env: { PORT: '{port}', BIND: '0.0.0.0' } },
      api: { command: '{python} server.py', directory: 'backend', port: 5200, health: '/api/health/', strip_prefix: false, env: { PORT: '{port}' } },
    },
    routes: { '/': 'web', '/api/': 'api' },
  });
});

describe('other frameworks\' defaults', () => {
  it('an npm start program in a subdirectory goes live (warned of for listening on every address); a strip_prefix: false API gets /api/... whole', async () => {
    const reporter = new MemoryReporter();
    await deploy(lab.project.ctx(reporter), lab.project.env(), {});
    expect(await get(lab.host, '/api/books/?page=2')).toEqual({ status: 200, body: '/api/books/?page=2' });
    expect(await get(lab.host, '/healthz')).toEqual({ status: 200, body: '/healthz' });
    expect(reporter.lines.join('\n')).toMatch(/warning: program web listens on 0\.0\.0\.0:5100, not only on 127\.0\.0\.1: it is reachable around nginx/);
    expect(reporter.lines.join('\n')).not.toMatch(/warning: program api listens/);
  }, 600_000);
});
