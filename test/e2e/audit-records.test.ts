// The audit log over a long life on a real host (core/steps/audit.ts): bounded at the end of every run, a no-op deploy's
// too (its one round trip: no switch, no prune), and read back by ops audit across its archives, newest last.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { initRepo } from '../support/gitrepo.ts';
import { APP, asRoot, labEnvironment, pythonWebApp, webConfig } from './support.ts';

const root = mkdtempSync(join(tmpdir(), 'ops-audit-records-'));
const AUDIT = `/srv/${APP}/.ops/audit.log`;

const lab = labEnvironment(
  'arec',
  (host) => {
    const repo = join(root, 'app');
    initRepo(repo, { 'server.py': pythonWebApp('"v1"') });
    return webConfig(host, repo, { switch: { drain: 1, health_timeout: 20 } });
  },
  {
    ready: async (l) => {
      const r = await l.ops('deploy', 'e2e', '--ref', 'main');
      expect(r.code, r.out + r.err).toBe(0);
    },
  },
);

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe.sequential('the audit log over a long life', () => {
  it('a log past 4 MiB (months of scheduled no-op deploys) is rotated by the next no-op deploy; ops audit --lines reads on into the archive, newest last', async () => {
    // 11,000 earlier no-op lines (about 430 bytes each) before what the log holds.
    await asRoot(
      lab.host,
      `f=${AUDIT}; pad=$(printf 'x%.0s' $(seq 1 300)); { for i in $(seq 1 11000); do printf '{"time":"2026-01-01T00:00:00Z","environment":"e2e","operation":"deploy","result":"no-op","actor":"cron","message":"earlier %05d %s"}\\n' "$i" "$pad"; done; cat "$f"; } > "$f.new" && chmod 0644 "$f.new" && mv "$f.new" "$f"`,
    );
    const before = Number(await asRoot(lab.host, `wc -l < ${AUDIT}`));
    expect(Number(await asRoot(lab.host, `stat -c %s ${AUDIT}`))).toBeGreaterThan(4 * 1024 * 1024);
    const r = await lab.ops('deploy', 'e2e', '--ref', 'main');
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out + r.err).toMatch(/already live|no-op/i);
    expect(await asRoot(lab.host, `ls /srv/${APP}/.ops/ | grep -c '^audit\\.log\\..*\\.gz$'`)).toBe('1');
    const kept = Number(await asRoot(lab.host, `wc -l < ${AUDIT}`));
    expect(kept).toBeLessThan(1100);
    expect(Number(await asRoot(lab.host, `{ zcat /srv/${APP}/.ops/audit.log.*.gz; cat ${AUDIT}; } | wc -l`))).toBe(before + 1);
    // More lines than the live log holds: the archive's last ones first, the no-op's own line last.
    const a = await lab.ops('audit', 'e2e', '--lines', String(kept + 5), '--json');
    expect(a.code, a.out + a.err).toBe(0);
    const entries = (JSON.parse(a.out) as { entries: { message?: string; result: string; actor: string }[] }[])[0]!.entries;
    expect(entries).toHaveLength(kept + 5);
    expect(entries.slice(0, 5).every((e) => e.message?.startsWith('earlier '))).toBe(true);
    expect(entries.at(-1)!.result).toBe('no-op');
    expect(entries.at(-1)!.actor).not.toBe('cron');
  }, 600_000);
});
