// The slot a gone run's start filled with a release that never went live, stopped by the release of that run's lock
// (core/steps/lock.ts stopStartedSlot, in `ops lock release` and in the run's own release after an interruption)
// without the start's records of what the slot held before (a start of an older version): stopped the one way
// (slotDown), so what its programs left running outside supervisor's process group (a daemon) is stopped too. Run by
// bash as root on this machine the way a host runs a step, in mount and network namespaces of its own (the layout's
// directories, /etc/supervisor/conf.d and /etc/passwd with the app's user are the test's; no supervisord answers).
import { spawnSync } from 'node:child_process';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandLine, scriptText } from '../../core/remote/wrap.ts';
import { CONNECTION_FUNCTIONS } from '../../core/steps/libraries.ts';
import { forceReleaseLock, LOCK_KEYS, releaseLock } from '../../core/steps/lock.ts';
import { quote } from '../../core/shell.ts';
import type { Step } from '../../core/remote/types.ts';
import { startSlot } from '../../core/steps/switch.ts';
import { testEnv } from './status.helpers.ts';

const STARTED = '20261201T200000Z-0123456789ab';
const LIVE = '20261201T190000Z-ba9876543210';

/** Runs `step` (made for `env`) beside a stale lock of run r1 whose start filled slot green with STARTED; a daemon of that release runs as the app's user. */
function run(env: ReturnType<typeof testEnv>, step: Step): { out: string; stderr: string; daemon: string; conf: string } {
  const L = env.layout;
  const setup = `${CONNECTION_FUNCTIONS}
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs ${quote(dirname(env.baseDir))}
mkdir -p /run/ops-test && mount -t tmpfs tmpfs /run/ops-test
cp /etc/passwd /run/ops-test/passwd && echo ${quote(`${env.appUser}:x:4242:4242::/nonexistent:/usr/sbin/nologin`)} >> /run/ops-test/passwd && mount --bind /run/ops-test/passwd /etc/passwd
mkdir -p ${quote(dirname(L.supervisorConf('green')))} && mount -t tmpfs tmpfs ${quote(dirname(L.supervisorConf('green')))}
mkdir -p ${quote(L.lock)} ${quote(`${L.releases}/${STARTED}`)} ${quote(`${L.releases}/${LIVE}`)}
ln -sfn ${quote(`${L.releases}/${LIVE}`)} ${quote(L.current)}
echo blue > ${quote(L.slotFile)}
printf '%s\\n' operation=deploy actor=me run_id=r1 connection=c0ffee since=x holder_pid=999999999 holder_start=1 > ${quote(`${L.lock}/info`)}
echo 'green ${STARTED}' > ${quote(`${L.lock}/started`)}
echo '; Managed by ops-pipeline: slot green of ${env.config.app}, release ${STARTED}. Rewritten by deploys.' > ${quote(L.supervisorConf('green'))}
set +e
# What the release's program left behind when it daemonised: its own session, supervisor's environment kept.
OPS_RELEASE=${STARTED} OPS_SLOT=green setpriv --reuid=4242 --regid=4242 --clear-groups setsid sleep 120 </dev/null >/dev/null 2>&1 & daemon=$!
# Until it runs as it will be looked for (sleep exec'd, with its environment), up to 20 s on a busy machine.
for _ in {1..400}; do [ "$(cat /proc/$daemon/comm 2>/dev/null)" = sleep ] && break; sleep 0.05; done
${commandLine(step, 'root', 'app')} || echo "code=$?"
sleep 0.2
s=""; read -r s 2>/dev/null < "/proc/$daemon/stat"; f=(\${s##*) }); [ -n "$s" ] && [ "\${f[0]}" != Z ] && echo daemon=alive || echo daemon=gone
[ -e ${quote(L.supervisorConf('green'))} ] && echo conf=kept || echo conf=removed
kill -KILL $daemon 2>/dev/null || true`;
  const r = spawnSync('unshare', ['-mn', 'bash', '-c', setup], { input: scriptText(step), encoding: 'utf8', timeout: 60_000 });
  return { out: r.stdout, stderr: r.stderr, daemon: /^daemon=(\w+)$/m.exec(r.stdout)?.[1] ?? '', conf: /^conf=(\w+)$/m.exec(r.stdout)?.[1] ?? '' };
}

describe('a gone run\'s started slot, without the start\'s records of what it held before', () => {
  for (const [name, step] of [
    ['ops lock release (a stale lock)', (env: ReturnType<typeof testEnv>) => forceReleaseLock(env)],
    ['the run\'s own release after an interruption', (env: ReturnType<typeof testEnv>) => releaseLock(env, 'r1', ['interrupted'], ['c0ffee'])],
  ] as const) {
    it(`${name}: the slot's programs and what they left running outside supervisor (a daemon) are stopped, and said`, () => {
      const env = testEnv();
      const r = run(env, step(env));
      expect(r.out, r.stderr).not.toContain('code=');
      expect(r.out).toMatch(new RegExp(`^@ops ${LOCK_KEYS.stopped_slot} green ${STARTED}$`, 'm'));
      expect(r.conf).toBe('removed');
      expect(r.daemon, r.out).toBe('gone');
      expect(r.out).toMatch(new RegExp(`^@ops ${LOCK_KEYS.previous_back} stopped what release ${STARTED} left running on slot green outside supervisor .*started by release ${STARTED}'s programs`, 'm'));
    }, 60_000);
  }
});

describe('a start stopping what its slot held before', () => {
  it('stops that release the one way too: its programs, then what they left outside supervisor (leftovers_down, the release its previous file names), before the ports are checked', () => {
    const env = testEnv();
    const script = startSlot(env, 'green', `${env.layout.releases}/${STARTED}`, STARTED).script;
    const down = script.indexOf('group_down shop-green ');
    const left = script.indexOf('left_gone=$(leftovers_down green "$left_id" ', down);
    expect(down).toBeGreaterThan(0);
    expect(left, 'leftovers_down after the group is down').toBeGreaterThan(down);
    expect(script.indexOf('LISTEN_TABLE=$(ss -Htlnp', down), 'and before the ports are checked').toBeGreaterThan(left);
    expect(script).toContain('IFS= read -r left_head < "$keep/previous.conf"');
  });
});
