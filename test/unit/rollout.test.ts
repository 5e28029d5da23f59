// Pieces of the faster paths that need no host: an audit line written by the host itself (a no-op deploy's
// lock step), who builds and who receives in a rollout, and a packed build checked on the runner.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildGroups, describeBuilds } from '../../core/ops/build-once.ts';
import { ARTIFACT_KEYS, checkPart, parseChunk, parsePacked } from '../../core/steps/artifact.ts';
import { auditTemplate, type AuditEntry } from '../../core/steps/audit.ts';
import { REPORT_PREFIX, parseReports, type StepResult } from '../../core/remote/types.ts';
import { platformReport } from '../../core/steps/release.ts';
import type { Target } from '../../core/target.ts';
import { opsLines } from './reports.helpers.ts';

describe('an audit line written on the host', () => {
  it('takes the fields named from shell variables, the rest as quoted literals', () => {
    const entry: AuditEntry = { time: '2026-11-25T14:05:01.000Z', environment: 'prod', operation: 'deploy', result: 'no-op', actor: "o'brien", ref: 'v1', sha: 'a'.repeat(40), release: '', previous: '', message: "it's \"live\" $(id) `x`" };
    const word = auditTemplate(entry, { release: 'cur_id', previous: 'cur_id' });
    const line = execFileSync('bash', ['-c', `cur_id=20261125T140501Z-0123456789ab; printf '%s\\n' ${word}`], { encoding: 'utf8' });
    expect(JSON.parse(line)).toEqual({ ...entry, release: '20261125T140501Z-0123456789ab', previous: '20261125T140501Z-0123456789ab' });
    expect(() => auditTemplate(entry, { release: 'x; rm -rf /' })).toThrow(/not a shell variable name/);
  });
});

describe('build once per rollout', () => {
  it('the platform line names a runtime the host lacks "none", on one line (not the shell\'s error text)', () => {
    const report = (python: string, node: string) =>
      execFileSync('bash', ['-c', `set -euo pipefail; ops_report() { printf '${REPORT_PREFIX}%s %s\\n' "$1" "$2"; }\n${platformReport({ runtime: { python, node } } as unknown as Target)}`], { encoding: 'utf8' });
    expect(report('/nonexistent/python3.11', process.execPath)).toMatch(new RegExp(`^${REPORT_PREFIX}platform \\S+ \\S+ \\S+ python none node ${process.version.replace(/\./g, '\\.')}\\n$`));
    expect(report('/usr/bin/python3', '/nonexistent/node')).toMatch(new RegExp(`^${REPORT_PREFIX}platform \\S+ \\S+ \\S+ python 3\\.\\d+\\.\\d+ node none\\n$`));
  });

  it('one builder per platform, in host order; an unknown platform builds for itself', () => {
    const g = buildGroups([
      { name: 'a', platform: 'debian 12 x86_64 python 3.11.2 node v18.20.4' },
      { name: 'b', platform: 'debian 12 x86_64 python 3.11.2 node v18.20.4' },
      { name: 'c', platform: 'debian 11 x86_64 python 3.9.2 node v18.20.4' },
      { name: 'd', platform: 'debian 12 x86_64 python 3.11.2 node v18.20.4' },
      { name: 'e' },
    ]);
    expect(g.map((x) => [x.builder.name, x.receivers.map((r) => r.name)])).toEqual([
      ['a', ['b', 'd']],
      ['c', []],
      ['e', []],
    ]);
    expect(describeBuilds(g)).toEqual([
      'build once: a builds, b, d receive its build (sha256-checked) — same platform: debian 12 x86_64 python 3.11.2 node v18.20.4',
      'c builds for itself: its platform differs (debian 11 x86_64 python 3.9.2 node v18.20.4) — differs in OS release debian 11 (a: debian 12), python 3.9.2 (a: 3.11.2)',
      'e builds for itself: its platform is unknown',
    ]);
    // Hosts differing only in Python's patch release or Node's minor version: each builds, and the plan says in what.
    const patch = buildGroups([
      { name: 'web1', platform: 'debian 12 x86_64 python 3.11.2 node v20.11.0' },
      { name: 'web2', platform: 'debian 12 x86_64 python 3.11.9 node v20.11.0' },
      { name: 'web3', platform: 'debian 12 x86_64 python 3.11.2 node v20.18.1' },
      { name: 'web4', platform: 'debian 12 x86_64 python 3.11.9 node v20.11.0' },
    ]);
    expect(describeBuilds(patch)).toEqual([
      'web1 builds for itself: no other host has its platform (debian 12 x86_64 python 3.11.2 node v20.11.0)',
      'build once: web2 builds, web4 receives its build (sha256-checked) — same platform: debian 12 x86_64 python 3.11.9 node v20.11.0 — differs in python 3.11.9 (web1: 3.11.2)',
      'web3 builds for itself: its platform differs (debian 12 x86_64 python 3.11.2 node v20.18.1) — differs in node v20.18.1 (web1: v20.11.0)',
    ]);
    // One host alone: nothing to say.
    expect(describeBuilds(buildGroups([{ name: 'a', platform: 'x' }]))).toEqual([]);
  });

  it('a packed part is read in chunks, each of the length asked, and its hash checked on the runner', () => {
    const data = Buffer.from('a gzip stream, say');
    const sha = createHash('sha256').update(data).digest('hex');
    const packed = (line: string): StepResult => {
      const stdout = opsLines(ARTIFACT_KEYS, `part ${line}`);
      return { stdout, stderr: '', code: 0, durationMs: 0, reports: parseReports(stdout) };
    };
    const [part] = parsePacked(packed(`release ${sha} ${data.length}`), 'web1');
    expect(part).toEqual({ name: 'release', sha256: sha, size: data.length });
    expect(() => parsePacked(packed(`release; ${sha} 12`), 'web1')).toThrow(/reported a part the runner cannot read/);
    // With what it takes unpacked (du on the builder): what a receiver's space is checked against.
    expect(parsePacked(packed(`venv-0a ${sha} 12 4096000 900`), 'web1')).toEqual([{ name: 'venv-0a', sha256: sha, size: 12, unpacked: { bytes: 4096000, inodes: 900 } }]);
    for (const bad of [`release ${sha} 12 4096000`, `release ${sha} 12 x 9`, `release ${sha} 12 1 2 3`]) expect(() => parsePacked(packed(bad), 'web1'), bad).toThrow(/cannot read/);
    const chunk = (b64: string): StepResult => {
      const stdout = opsLines(ARTIFACT_KEYS, `chunk ${b64}`);
      return { stdout, stderr: '', code: 0, durationMs: 0, reports: parseReports(stdout) };
    };
    expect(parseChunk(chunk(data.subarray(4, 10).toString('base64')), part!, 4, 6, 'web1')).toEqual(data.subarray(4, 10));
    expect(() => parseChunk(chunk(data.subarray(4, 9).toString('base64')), part!, 4, 6, 'web1')).toThrow(/arrived short on the runner: 5 of 6 bytes from byte 4/);
    expect(() => checkPart(part!, sha, 'web1')).not.toThrow();
    const damaged = Buffer.from(data);
    damaged.writeUInt8(damaged.readUInt8(3) ^ 1, 3);
    expect(() => checkPart(part!, createHash('sha256').update(damaged).digest('hex'), 'web1')).toThrow(/the release part of the build packed on web1 arrived damaged on the runner/);
  });
});
