// The switch's critical section (core/steps/sh/critical.sh) with real bash, flock(1) and timeout(1), run the way a
// host runs a step (commandLine + scriptText), in a mount namespace of its own: /run is the test's tmpfs, so the
// host-wide lock file is the test's alone.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandLine, scriptText } from '../../core/remote/wrap.ts';
import { CRITICAL_FUNCTIONS, HOST_LOCK_FUNCTIONS, SYSTEM_FUNCTIONS } from '../../core/steps/libraries.ts';
import { quote } from '../../core/shell.ts';
import type { Step } from '../../core/remote/types.ts';
import { releaseLock } from '../../core/steps/lock.ts';
import { testEnv } from './status.helpers.ts';

/**
 * Runs `step` as root in a private /run, another process holding the switch lock for `heldSeconds` first (a switch
 * of another app on the host, or a release waiting on critical_wait).
 */
function runHeld(step: Step, heldSeconds: number, prepare = '') {
  const setup = `mount --make-rprivate / && mount -t tmpfs tmpfs /run && mkdir -p /run/lock
${prepare}
flock /run/lock/ops-pipeline-switch.lock sleep ${heldSeconds} </dev/null >/dev/null 2>&1 &
${heldSeconds > 0 ? '# Until the lock is held (up to 20 s on a busy machine).\nfor _ in {1..400}; do flock -n /run/lock/ops-pipeline-switch.lock true || break; sleep 0.05; done' : 'sleep 0.3'}
exec ${commandLine(step, 'root', 'app')}`;
  return spawnSync('unshare', ['-m', 'bash', '-c', setup], { input: scriptText(step), encoding: 'utf8', timeout: 60_000 });
}

describe('a critical section and its step\'s timeout', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ops-critical-'));
  /** A section that needs `needs` seconds: half done (a), then done (b). */
  const section = (name: string, needs: number, takes: number, timeout: number): Step => ({
    name,
    as: 'root',
    timeout,
    script: `${CRITICAL_FUNCTIONS}
critical_begin ${needs}
touch ${quote(join(dir, `${name}.a`))}
sleep ${takes}
touch ${quote(join(dir, `${name}.b`))}
critical_end
echo done`,
  });

  it('a section that could not end before the step is killed (the wait for the lock ate its time) is not begun: nothing is half done, and it says why', () => {
    // 2 s waiting for the lock, then 12 s of work in a 3 s step: timeout's SIGTERM is ignored inside the section, but
    // its SIGKILL 10 s later is not.
    const r = runHeld(section('late', 12, 12, 3), 2);
    const half = existsSync(join(dir, 'late.a'));
    const whole = existsSync(join(dir, 'late.b'));
    expect({ half, whole }, r.stderr).not.toEqual({ half: true, whole: false });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/not begun: nothing changed/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  }, 60_000);

  it('a section with the time it needs waits for the lock, then runs whole through the step\'s SIGTERM', () => {
    // 1 s of wait, then 6 s of work (it said 4) in a 6 s step: timeout's SIGTERM at 6 s falls inside and is ignored.
    const r = runHeld(section('fits', 4, 6, 6), 1);
    // timeout(1) says 124 (its time ran out) whatever the script then did: the section's own reports say it ended.
    expect([0, 124], r.stderr).toContain(r.status);
    expect(existsSync(join(dir, 'fits.a')) && existsSync(join(dir, 'fits.b'))).toBe(true);
    expect(r.stdout).toContain('done');
  }, 60_000);

  it('the release of a gone connection\'s lock waits out a switch under way (as long as a switch may last) and still lets go of the lock', () => {
    // A switch may last its section's time and timeout's 10 s of grace (nginx.ts): 32 s here, beyond a 30 s unlock.
    const env = testEnv();
    const lock = env.layout.lock;
    // The layout's parent (/srv) is the test's tmpfs too: nothing is left on this machine.
    const prepare = `mount -t tmpfs tmpfs ${quote(dirname(env.baseDir))}
mkdir -p ${quote(lock)} && printf 'run_id=r1\\n' > ${quote(`${lock}/info`)}`;
    const r = runHeld(releaseLock(env, 'r1', [], ['gone1']), 32, prepare);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('@ops lock released');
  }, 90_000);

  it('/run filling up during a section (a volatile journal, say) does not cut it off half-way: its output still comes back', () => {
    // /run a 1 MiB tmpfs; the section fills it between its two halves, then prints.
    const step: Step = {
      name: 'full',
      as: 'root',
      timeout: 60,
      script: `${CRITICAL_FUNCTIONS}
critical_begin 5
touch ${quote(join(dir, 'full.a'))}
head -c 2M /dev/zero > /run/filler 2>/dev/null || true
echo "the section's report"
touch ${quote(join(dir, 'full.b'))}
critical_end
echo done`,
    };
    const r = runHeld(step, 0, 'umount /run && mount -t tmpfs -o size=1m tmpfs /run && mkdir -p /run/lock');
    expect({ half: existsSync(join(dir, 'full.a')), whole: existsSync(join(dir, 'full.b')) }, r.stderr).toEqual({ half: true, whole: true });
    expect(r.stdout).toContain("the section's report");
    expect(r.status, r.stderr).toBe(0);
  }, 60_000);

  it('/run already full: the section is not begun, nothing changed, and it says so', () => {
    const step: Step = { name: 'nospace', as: 'root', timeout: 60, script: `${CRITICAL_FUNCTIONS}\ncritical_begin 5\ntouch ${quote(join(dir, 'nospace.a'))}\ncritical_end` };
    const r = runHeld(step, 0, 'umount /run && mount -t tmpfs -o size=1m tmpfs /run && mkdir -p /run/lock && head -c 2M /dev/zero > /run/filler 2>/dev/null || true');
    expect(existsSync(join(dir, 'nospace.a'))).toBe(false);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/the switch was not begun: nothing changed.*\/run/);
  }, 60_000);

  it('the buffer a SIGKILLed section left in /run (its reserved room) is removed by the next section', () => {
    const step: Step = { name: 'stale', as: 'root', timeout: 60, script: `${CRITICAL_FUNCTIONS}\ncritical_begin 5\ncritical_end\nls -A /run` };
    const r = runHeld(step, 0, 'mkdir /run/.ops-critical.KILLED && head -c 300K /dev/zero > /run/.ops-critical.KILLED/out');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).not.toContain('.ops-critical.');
  }, 60_000);
});

describe('a service started on a host without systemd', () => {
  it('keeps none of the locks the step holds: a step that ends without letting go (it failed after the start) leaves them free', () => {
    // The daemon Debian's `service` starts is the step's own descendant: it inherited the step's descriptors, so the
    // host's nginx lock and the switch lock stayed held as long as it ran (each later nginx change waited 45 s, failed).
    const step: Step = {
      name: 'start',
      as: 'root',
      timeout: 60,
      script: `${SYSTEM_FUNCTIONS}
${HOST_LOCK_FUNCTIONS}
${CRITICAL_FUNCTIONS}
service() { sleep 30 </dev/null >/dev/null 2>&1 & echo $! > /run/daemon.pid; }
host_lock nginx
critical_begin 5
svc nginx start
exit 1`,
    };
    const check = `flock -n /run/lock/ops-pipeline-nginx.lock true && echo nginx-lock-free
flock -n /run/lock/ops-pipeline-switch.lock true && echo switch-lock-free
kill "$(cat /run/daemon.pid)"`;
    const setup = `mount --make-rprivate / && mount -t tmpfs tmpfs /run && mkdir -p /run/lock
${commandLine(step, 'root', 'app')} >/dev/null 2>&1 <<'STEP' || true
${scriptText(step)}
STEP
kill -0 "$(cat /run/daemon.pid)" && echo daemon-running
${check}`;
    const r = spawnSync('unshare', ['-m', 'bash', '-c', setup], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stdout.split('\n').filter(Boolean), r.stderr).toEqual(['daemon-running', 'nginx-lock-free', 'switch-lock-free']);
  }, 60_000);
});
