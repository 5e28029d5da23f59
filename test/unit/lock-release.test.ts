// `ops lock release` (core/steps/lock.ts forceReleaseLock), and a run's own release after an interruption
// (releaseLock with the connections that are gone), run by bash as root on this machine the way a host runs a step
// (commandLine + scriptText), in a mount namespace of its own (/run and the layout's parent are the test's tmpfs): a
// stale lock's run had what it left running stopped (its processes carry the connection id the lock recorded), a
// stubborn one killed; processes of other connections, and those of a run still connected, go on; a release whose
// runner dies meanwhile (its output pipe closed) still ends.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandLine, scriptText } from '../../core/remote/wrap.ts';
import { CONNECTION_FUNCTIONS } from '../../core/steps/libraries.ts';
import { forceReleaseLock, LOCK_KEYS, releaseLock } from '../../core/steps/lock.ts';
import type { Step } from '../../core/remote/types.ts';
import { quote } from '../../core/shell.ts';
import { formatLockRelease } from '../../core/ops/records.ts';
import { testEnv } from './status.helpers.ts';

interface Released {
  /** The step's report lines and the checks' `name=value` lines. */
  out: string;
  stderr: string;
  /** name -> alive | gone, for each process started beside the lock. */
  processes: Record<string, string>;
  lock: string;
  /** The audit log's content after the step. */
  audit: string;
}

/**
 * A lock of run r1 whose info records connection `gone` (held by a live process when `held`, else by a pid long
 * gone), four processes beside it (`stubborn` ignoring TERM and `plain`, both of connection `gone`; `other`, of
 * another connection; `step`, a step of connection `gone` waiting in bash itself), then a step (forceReleaseLock's; `ownRelease`: run r1's releaseLock for connection `gone`),
 * then which processes are left. `beside`: another step run a second after it begins (forceReleaseLock's, from another terminal). `immutable`: the directory holding the lock made immutable (chattr +i) for the step. `runnerGone`: the step's output is read up to its start line only (the runner
 * killed as the step begins: sshd closes the pipe), the rest is lost.
 */
function release(held: boolean, { ownRelease = false, queued = false, runnerGone = false, force = false, immutable = false, beside = undefined as Step | undefined, connectionLines = (id: string) => [`connection=${id}`] } = {}): Released {
  const env = testEnv();
  const lock = env.layout.lock;
  const gone = randomBytes(6).toString('hex');
  const other = randomBytes(6).toString('hex');
  // `queued`: run r2's release after a Ctrl-C while it waited behind r1 (its own connection `other` gone): not its lock.
  const step = queued ? releaseLock(env, 'r2', ['interrupted'], [other]) : ownRelease ? releaseLock(env, 'r1', ['interrupted'], [gone]) : forceReleaseLock(env, force);
  const reader = runnerGone ? ` | { IFS= read -r _; IFS= read -r _; }` : '';
  const holder = held ? 'sleep 120 </dev/null >/dev/null 2>&1 & holder=$!; start=$(proc_start "$holder")' : 'holder=999999999; start=1';
  const setup = `${CONNECTION_FUNCTIONS}
mount --make-rprivate / && mount -t tmpfs tmpfs /run && mkdir -p /run/lock
mount -t tmpfs tmpfs ${quote(dirname(env.baseDir))}
${holder}
mkdir -p ${quote(lock)}
printf '%s\\n' operation=deploy actor=me run_id=r1 ${connectionLines(gone).map(quote).join(' ')} since=x "holder_pid=$holder" "holder_start=$start" > ${quote(`${lock}/info`)}
OPS_CONNECTION=${gone} bash -c 'trap "" TERM; exec sleep 120' </dev/null >/dev/null 2>&1 & stubborn=$!
OPS_CONNECTION=${gone} sleep 120 </dev/null >/dev/null 2>&1 & plain=$!
OPS_CONNECTION=${other} sleep 120 </dev/null >/dev/null 2>&1 & other=$!
# A step of connection \`gone\` as a host runs it, waiting in a bash builtin (no child to find it by): its timeout's pid.
mkfifo /run/ops-fifo
${commandLine({ as: 'login', timeout: 120 }, 'root', 'app', gone)} <<< 'exec 3<>/run/ops-fifo; read -r -t 120 -u 3 _ || true' >/dev/null 2>&1 & step=$!
# Until each runs as it will be looked for (sleep exec'd: its environment and TERM ignored; the step at its read), up
# to 20 s on a busy machine: a forked shell not yet exec'd has neither.
for _ in {1..400}; do
  for p in $stubborn $plain $other; do [ "$(cat /proc/$p/comm 2>/dev/null)" = sleep ] || continue 2; done
  [ -n "$(find /proc/[0-9]*/fd -lname /run/ops-fifo 2>/dev/null | head -n 1)" ] && break
  sleep 0.05
done
${immutable ? `chattr +i ${quote(env.layout.state)}\n` : ''}${beside ? `# Another step from another terminal a second after the first (its output last, each line marked "first").
# (a job in the background reads /dev/null: the script saved first)
cat > /run/ops-step.sh
{ ${commandLine(step, 'root', 'app')} < /run/ops-step.sh > /run/ops-first.out 2>&1 || echo "code=$?" >> /run/ops-first.out; } & first=$!
sleep 1
${commandLine(beside, 'root', 'app')} <<< ${quote(scriptText(beside))} || echo "code=$?"
wait $first; sed 's/^/first /' /run/ops-first.out
` : `${commandLine(step, 'root', 'app')}${reader} || echo "code=$?"`}
${runnerGone ? `# With the runner gone, the step goes on alone: waited for by its lock, as a later run would.
for _ in {1..100}; do [ -d ${quote(lock)} ] || break; sleep 0.2; done` : ''}
sleep 0.3
# A killed child not yet reaped is a zombie (state Z): gone all the same.
for p in stubborn plain other step; do s=$(proc_state "\${!p}"); echo "process $p=\${s:-gone}"; done
echo "pids=$stubborn $plain"
[ -d ${quote(lock)} ] && echo lock=kept || echo lock=removed
[ -f ${quote(`${lock}/info`)} ] && echo details=kept || echo details=removed
echo "audit=$(cat ${quote(env.layout.audit)} 2>/dev/null)"
kill -KILL $stubborn $plain $other $step \${holder#999999999} 2>/dev/null || true
chattr -i ${quote(env.layout.state)} 2>/dev/null || true`;
  const state = `proc_state() { local s f; read -r s 2>/dev/null < "/proc/$1/stat" || return 0; read -r -a f <<< "\${s##*) }"; [ "\${f[0]}" = Z ] || echo alive; }\n`;
  // From a file, not one `bash -c` argument: with a forced release beside it the script passes 128 KiB, Linux's limit
  // for one argument (MAX_ARG_STRLEN: spawn fails with E2BIG).
  const dir = mkdtempSync(join(tmpdir(), 'ops-lock-release-'));
  writeFileSync(join(dir, 'setup.sh'), state + setup);
  const r = spawnSync('unshare', ['-m', 'bash', join(dir, 'setup.sh')], { input: scriptText(step), encoding: 'utf8', timeout: 60_000 });
  rmSync(dir, { recursive: true, force: true });
  if (r.error) throw r.error;
  const processes: Record<string, string> = {};
  for (const m of r.stdout.matchAll(/^process (\w+)=(\w+)$/gm)) processes[m[1]!] = m[2]!;
  return { out: r.stdout, stderr: r.stderr, processes, lock: /^lock=(\w+)$/m.exec(r.stdout)?.[1] ?? '', audit: /^audit=(.*)$/m.exec(r.stdout)?.[1] ?? '' };
}

describe('the forced release of a lock', () => {
  it('a stale lock: what its run left running is stopped first (KILL for what ignores TERM), then the lock is removed; other connections\' processes go on', () => {
    const r = release(false);
    expect(r.out, r.stderr).toContain('@ops lock stale');
    expect(r.out).not.toContain('code=');
    expect(r.processes).toEqual({ stubborn: 'gone', plain: 'gone', other: 'alive', step: 'gone' });
    const pids = /^pids=(.*)$/m.exec(r.out)![1]!.split(' ').sort();
    const stopped = new RegExp(`^@ops ${LOCK_KEYS.stopped} (.*)$`, 'm').exec(r.out)?.[1]?.trim().split(' ').sort();
    expect(stopped).toEqual(expect.arrayContaining(pids));
    expect(r.lock).toBe('removed');
    // A lock without a start record (its run never started a slot): nothing said of the file it lacks.
    expect(r.stderr).not.toContain('No such file');
  }, 60_000);

  it('a lock whose run is still connected: left as it is (a second run would start beside that one), its processes too', () => {
    const r = release(true);
    expect(r.out, r.stderr).toContain('@ops lock held');
    expect(r.out).toContain(`@ops ${LOCK_KEYS.refused} 1`);
    expect(r.out).not.toContain(`@ops ${LOCK_KEYS.stopped}`);
    expect(r.processes).toEqual({ stubborn: 'alive', plain: 'alive', other: 'alive', step: 'alive' });
    expect(r.lock).toBe('kept');
  }, 60_000);

  it('--force on a lock whose run is still connected (a stuck run): its processes stopped, the lock removed', () => {
    const r = release(true, { force: true });
    expect(r.out, r.stderr).toContain('@ops lock held');
    expect(r.processes).toEqual({ stubborn: 'gone', plain: 'gone', other: 'alive', step: 'gone' });
    expect(r.lock).toBe('removed');
  }, 60_000);

  it('connection lines written by hand (a trailing space, two of them, one not an id): each id is looked for', () => {
    const r = release(false, { connectionLines: (id) => [`connection=${id} `, 'connection=$(touch /tmp/x)', `connection=${id}`] });
    expect(r.processes, r.stderr).toEqual({ stubborn: 'gone', plain: 'gone', other: 'alive', step: 'gone' });
    expect(r.lock).toBe('removed');
  }, 60_000);

  it('a lock without a connection id (taken by an older ops): removed, and it says its run\'s processes were not looked for', () => {
    const r = release(false, { connectionLines: () => [] });
    expect(r.out, r.stderr).toMatch(new RegExp(`^@ops ${LOCK_KEYS.unchecked} the lock records no connection id`, 'm'));
    expect(r.processes).toEqual({ stubborn: 'alive', plain: 'alive', other: 'alive', step: 'alive' });
    expect(r.lock).toBe('removed');
  }, 60_000);

  it('a lock that cannot be removed (its directory made immutable, chattr +i): left whole, its details too (not a lock without details, "an unknown run"), never said released; the step fails saying why', () => {
    for (const options of [{}, { ownRelease: true }]) {
      const r = release(false, { ...options, immutable: true });
      expect(r.out, r.stderr).not.toContain(`@ops ${LOCK_KEYS.lock} released`);
      expect(r.out).toContain('code=1');
      expect(r.lock).toBe('kept');
      expect(r.out).toMatch(/^details=kept$/m);
      expect(r.stderr).toMatch(/cannot remove the lock \/\S+\/lock: cannot move .*Operation not permitted/);
    }
  }, 120_000);

  it('two at once (two terminals; an interrupted run\'s own release and ops lock release): the second reads the lock once the first is done (free), never stopping or putting back what the first does, nor removing a lock taken meanwhile', () => {
    for (const options of [{}, { ownRelease: true }]) {
      const r = release(false, { ...options, beside: forceReleaseLock(testEnv()) });
      expect(r.out, r.stderr).toMatch(/^first @ops stopped /m);
      expect(r.out).toMatch(/^@ops lock free$/m);
      expect(r.out).not.toMatch(/^@ops (stopped|live_after)/m);
      expect(r.out).not.toContain('code=');
      expect(r.processes).toEqual({ stubborn: 'gone', plain: 'gone', other: 'alive', step: 'gone' });
      expect(r.lock).toBe('removed');
    }
  }, 120_000);

  it('a run\'s own release after an interruption, its runner killed as it begins (a cancelled workflow\'s SIGKILL): it still stops the run\'s processes, appends the audit line and removes the lock', () => {
    const r = release(false, { ownRelease: true, runnerGone: true });
    expect(r.processes, r.stderr).toEqual({ stubborn: 'gone', plain: 'gone', other: 'alive', step: 'gone' });
    expect(r.audit).toBe('interrupted');
    expect(r.lock).toBe('removed');
  }, 60_000);

  it('the release of a run stopped while queued behind another (Ctrl-C during switch.lock_wait): only its own waiting step stopped; the holder\'s lock, processes and audit log left alone', () => {
    const r = release(true, { queued: true });
    expect(r.processes, r.stderr).toEqual({ stubborn: 'alive', plain: 'alive', other: 'gone', step: 'alive' });
    expect(r.audit, 'no line for a run that never held the lock').toBe('');
    expect(r.lock).toBe('kept');
    expect(r.out).not.toContain(`@ops ${LOCK_KEYS.lock} released`);
  }, 60_000);
});

describe('ops lock release, for a terminal', () => {
  const lock = (state: 'stale' | 'held') => ({ state, holder: { operation: 'deploy', actor: 'bob', since: '2026-12-01T20:00:00Z' } });
  it('one line per host: what it stopped and what is live, or why the lock was left and how to force it', () => {
    const text = formatLockRelease(
      [
        { host: 'web1', lock: { state: 'free', holder: {} }, stopped: [], refused: false },
        { host: 'web2', lock: lock('stale'), stopped: ['41', '42'], refused: false, live: '20261201T190000Z-abc' },
        { host: 'web3', lock: lock('stale'), stopped: [], unchecked: 'the lock records no connection id of its run', refused: false, live: '' },
        { host: 'web4', lock: lock('held'), stopped: [], refused: true },
      ],
      'prod',
    );
    expect(text.split('\n')).toEqual([
      'web1: was not locked',
      'web2: released (STALE lock (its run is gone): a deploy run by bob, started 2026-12-01T20:00:00Z); stopped what its run had left running there (processes 41 42); 20261201T190000Z-abc is live',
      'web3: released (STALE lock (its run is gone): a deploy run by bob, started 2026-12-01T20:00:00Z); the lock records no connection id of its run: check with ps; nothing is live',
      'web4: NOT released (locked: a deploy run by bob, started 2026-12-01T20:00:00Z): its run is still connected and ends on its own; if it is stuck, ops lock release prod --force stops what it runs there and removes the lock',
    ]);
  });

  it('a slot the dead run had started, stopped: a deploy\'s release never went live; a rollback\'s target had been live before (it only was not switched to again)', () => {
    const stale = (operation: string) => ({ state: 'stale' as const, holder: { operation, actor: 'bob', since: '2026-12-01T20:00:00Z' } });
    const text = formatLockRelease(
      [
        { host: 'web1', lock: stale('deploy'), stopped: ['41'], refused: false, live: '20261201T190000Z-abc', stoppedSlot: 'green 20261201T200000Z-def' },
        { host: 'web2', lock: stale('rollback'), stopped: ['42'], refused: false, live: '20261201T190000Z-abc', stoppedSlot: 'green 20261130T100000Z-012' },
      ],
      'prod',
    );
    expect(text).toContain('web1: released (STALE lock (its run is gone): a deploy run by bob, started 2026-12-01T20:00:00Z); stopped what its run had left running there (processes 41); stopped slot green, where the interrupted run had started 20261201T200000Z-def (it never went live); 20261201T190000Z-abc is live');
    expect(text).toContain('web2: released (STALE lock (its run is gone): a rollback run by bob, started 2026-12-01T20:00:00Z); stopped what its run had left running there (processes 42); stopped slot green, where the interrupted rollback had started 20261130T100000Z-012 (live before; the rollback did not switch to it); 20261201T190000Z-abc is live');
    expect(text).not.toMatch(/20261130T100000Z-012 \(it never went live\)/);
  });
});
