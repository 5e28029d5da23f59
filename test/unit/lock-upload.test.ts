// Uploads under a run's lock are fenced as its steps are (core/ops/locked.ts FencedRemote, lockGuard first in the
// upload's own script): a run paused while its lock was released by force writes no file when it resumes. The upload
// script run by bash as a host runs it (commandLine + scriptText, the content after the script on stdin), in a mount
// namespace of its own (the layout's parent is the test's tmpfs); and a deploy's uploads through the lock carry the guard.
import { spawnSync } from 'node:child_process';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandLine, scriptText, uploadStep } from '../../core/remote/wrap.ts';
import { LOCK_LOST_EXIT, LOCK_LOST_MARK } from '../../core/steps/libraries.ts';
import { lockGuard } from '../../core/steps/lock.ts';
import { quote } from '../../core/shell.ts';
import { testEnv } from './status.helpers.ts';

/** Uploads `content` to the layout's uploads directory over connection `conn`, beside a lock whose info holds `info`. */
function upload(info: string[], conn = 'c0ffee'): { out: string; stderr: string; code: number; file: string } {
  const env = testEnv();
  const L = env.layout;
  const path = `${L.uploads}/release.env`;
  const content = 'SECRET=1\n';
  const step = uploadStep(path, Buffer.byteLength(content), 0o600, lockGuard(env));
  const setup = `mount --make-rprivate / && mount -t tmpfs tmpfs ${quote(dirname(env.baseDir))}
mkdir -p ${quote(L.uploads)} ${quote(L.lock)}
printf '%s\\n' ${info.map(quote).join(' ')} > ${quote(`${L.lock}/info`)}
code=0; ${commandLine(step, 'root', 'app', conn)} || code=$?
echo "code=$code"
echo "file=$(cat ${quote(path)} 2>/dev/null || echo none)"`;
  const r = spawnSync('unshare', ['-m', 'bash', '-c', setup], { input: Buffer.concat([Buffer.from(scriptText(step)), Buffer.from(content)]), encoding: 'utf8', timeout: 30_000 });
  return { out: r.stdout, stderr: r.stderr, code: Number(/^code=(\d+)$/m.exec(r.stdout)?.[1] ?? -1), file: /^file=(.*)$/m.exec(r.stdout)?.[1] ?? '' };
}

describe('an upload fenced by the run\'s lock', () => {
  it('the lock still the run\'s (its connection recorded): written', () => {
    const r = upload(['operation=deploy', 'run_id=r1', 'connection=c0ffee']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.file).toBe('SECRET=1');
  });

  it('released by force (broken_run_id), or another run\'s now: nothing written, exit LOCK_LOST_EXIT with the guard\'s line', () => {
    for (const info of [['operation=deploy', 'broken_run_id=r1', 'connection=c0ffee'], ['operation=deploy', 'actor=bob', 'run_id=r2', 'connection=beef']]) {
      const r = upload(info);
      expect(r.code, r.out + r.stderr).toBe(LOCK_LOST_EXIT);
      expect(r.stderr).toContain(`${LOCK_LOST_MARK}`);
      expect(r.file).toBe('none');
    }
  });
});
