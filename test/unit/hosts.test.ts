// The one way operations run on hosts (core/ops/hosts.ts), against recording transports: a Session's `each`
// all at once, in batches and one after another, stopping before the next batch after a failure; `eachHost`
// turning an unreachable host into a value.
import { describe, expect, it } from 'vitest';
import type { Connector, OpsContext } from '../../core/context.ts';
import { InputError, OpsError, inputFailure } from '../../core/errors.ts';
import { Session, eachHost, withSession } from '../../core/ops/hosts.ts';
import { MemoryReporter } from '../../core/report.ts';
import { RecordingRemote } from '../../core/remote/recording.ts';
import { testEnv } from './status.helpers.ts';
import { auditLog, formatAudit, formatLock, formatReleases, getLockStatus, listReleases, someUnread } from '../../core/ops/records.ts';
import { readLive } from '../../core/ops/host-state.ts';
import { logs } from '../../core/ops/logs.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const env = testEnv({}, ['web1', 'web2', 'web3', 'web4', 'web5'].map((name, i) => ({ name, address: `192.0.2.${i + 1}`, host_key: KEY })));

function context(unreachable: string[] = [], misconfigured: string[] = []) {
  const remotes: RecordingRemote[] = [];
  const connector: Connector = async (_e, host) => {
    if (misconfigured.includes(host.name)) throw new InputError(`${host.name}: 203.0.113.10 is a documentation address`, 'set its address');
    if (unreachable.includes(host.name)) throw new OpsError(`cannot connect to ${host.name}: timed out`);
    const r = new RecordingRemote(host.name);
    remotes.push(r);
    return r;
  };
  const ctx: OpsContext = { root: env.root, reporter: new MemoryReporter(), processEnv: {}, connector };
  return { ctx, remotes };
}

/** Runs `fn` per host with a log of when each started and ended, so the tests see the batches. */
async function trace(batch: number | undefined, failOn?: string) {
  const { ctx, remotes } = context();
  const events: string[] = [];
  const result = await withSession(ctx, env, (session) =>
    session.each(
      async (remote, host) => {
        events.push(`start ${host.name}`);
        await new Promise((r) => setTimeout(r, 5));
        events.push(`end ${host.name}`);
        if (host.name === failOn) throw new OpsError(`${host.name} failed`);
        return remote.name;
      },
      batch === undefined ? {} : { batch },
    ),
  ).catch((e: Error) => e);
  return { result, events, remotes };
}

describe('Session.each', () => {
  it('all at once by default, results in host order, connections closed after', async () => {
    const { result, events, remotes } = await trace(undefined);
    expect(result).toEqual(['web1', 'web2', 'web3', 'web4', 'web5']);
    expect(events.slice(0, 5)).toEqual(['start web1', 'start web2', 'start web3', 'start web4', 'start web5']);
    expect(remotes.every((r) => r.closed)).toBe(true);
  });

  it('in batches: a batch ends before the next starts', async () => {
    const { events } = await trace(2);
    expect(events).toEqual(['start web1', 'start web2', 'end web1', 'end web2', 'start web3', 'start web4', 'end web3', 'end web4', 'start web5', 'end web5']);
  });

  it('one after another with batch 1; a failure stops before the next host and is thrown', async () => {
    const { result, events } = await trace(1, 'web2');
    expect((result as Error).message).toBe('web2 failed');
    expect(events).toEqual(['start web1', 'end web1', 'start web2', 'end web2']);
  });

  it('a failed batch settles whole before its error is thrown (no step left running behind it)', async () => {
    const { result, events } = await trace(3, 'web1');
    expect((result as Error).message).toBe('web1 failed');
    expect(events).toEqual(['start web1', 'start web2', 'start web3', 'end web1', 'end web2', 'end web3']);
  });

  it('several hosts unreachable: each line keeps its own hint (what to check), not only its error', async () => {
    const connector: Connector = async (_e, host) => {
      if (host.name === 'web2' || host.name === 'web4') throw new OpsError(`cannot connect to ${host.name}: connection refused`, `check that sshd listens on ${host.name}'s port`);
      return new RecordingRemote(host.name);
    };
    const ctx: OpsContext = { root: env.root, reporter: new MemoryReporter(), processEnv: {}, connector };
    const err = await withSession(ctx, env, async () => undefined).catch((e: Error) => e);
    expect((err as Error).message.split('\n').slice(1)).toEqual([
      "  - cannot connect to web2: connection refused; hint: check that sshd listens on web2's port",
      "  - cannot connect to web4: connection refused; hint: check that sshd listens on web4's port",
    ]);
  });

  it('opens all connections or none: one unreachable host and nothing runs', async () => {
    const { ctx, remotes } = context(['web3']);
    let ran = 0;
    const err = await withSession(ctx, env, (s) => s.each(async () => ran++)).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/^cannot reach 1 of 5 hosts; nothing was changed:\n {2}- cannot connect to web3: timed out$/);
    expect(ran).toBe(0);
    expect(remotes.every((r) => r.closed)).toBe(true);
  });
});

describe('eachHost', () => {
  it('every host on its own: an unreachable one is a value, the others answer', async () => {
    const { ctx, remotes } = context(['web2']);
    const out = await eachHost(
      ctx,
      env,
      async (remote, host, started) => `${host.name} ok ${remote.name === host.name} ${started <= Date.now()}`,
      (host, fields, connected) => `${host.name} ${connected ? 'failed' : 'unreachable'}: ${fields.error}`,
    );
    expect(out).toEqual(['web1 ok true true', 'web2 unreachable: cannot connect to web2: timed out', 'web3 ok true true', 'web4 ok true true', 'web5 ok true true']);
    expect(remotes.every((r) => r.closed)).toBe(true);
  });
});

describe('a host that fails on input to fix (an InputError: a placeholder address) among others', () => {
  it('keeps its class: marked in a per-host report (not in its JSON), and an error gathering the hosts\' is an InputError', async () => {
    const { ctx } = context(['web2'], ['web3']);
    const releases = await listReleases(ctx, env);
    expect(releases.map((r) => inputFailure(r))).toEqual([false, false, true, false, false]);
    // a copy keeps it (status rebuilds its hosts), JSON never shows it
    expect(inputFailure({ ...releases[2]! })).toBe(true);
    expect(Object.keys(JSON.parse(JSON.stringify(releases[2])) as object).sort()).toEqual(['error', 'hint', 'host', 'releases']);
    // no host read, one of them for input to fix: the error is an InputError (exit 2), every host said
    const none = context(['web1', 'web2', 'web4', 'web5'], ['web3']);
    const all = (await listReleases(none.ctx, env).catch((e: Error) => e)) as Error;
    expect(all).toBeInstanceOf(InputError);
    expect(all.message).toContain('web3: web3: 203.0.113.10 is a documentation address');
    // hosts down alone: not one
    expect(await listReleases(context(['web1', 'web2', 'web3', 'web4', 'web5']).ctx, env).catch((e: Error) => e)).not.toBeInstanceOf(InputError);
    // a session on every host (deploy, rollback, provision), and ops logs showing the others
    expect(await Session.open(ctx, env).catch((e: Error) => e)).toBeInstanceOf(InputError);
    expect(await Session.open(context(['web2']).ctx, env).catch((e: Error) => e)).not.toBeInstanceOf(InputError);
    expect(await logs(context([], ['web3']).ctx, env, { program: 'nginx' }).catch((e: Error) => e)).toBeInstanceOf(InputError);
  });
});

describe('read-only commands with a host down (ops releases, lock status, audit, logs, diff)', () => {
  it('show every host that answers and say which could not be read, instead of failing for all', async () => {
    const { ctx } = context(['web2']);
    const releases = await listReleases(ctx, env);
    expect(releases.map((r) => [r.host, r.error ?? 'read'])).toEqual([['web1', 'read'], ['web2', 'cannot connect to web2: timed out'], ['web3', 'read'], ['web4', 'read'], ['web5', 'read']]);
    expect(someUnread(releases)).toBe(true);
    expect(formatReleases(releases).split('\n')).toContain('web2: cannot be read: cannot connect to web2: timed out');
    const locks = await getLockStatus(ctx, env);
    expect(locks[1]).toEqual({ host: 'web2', lock: { state: 'unknown', holder: {} }, error: 'cannot connect to web2: timed out' });
    expect(formatLock(locks).split('\n')[1]).toBe('web2: cannot be read: cannot connect to web2: timed out');
    const audit = await auditLog(ctx, env, 5);
    expect(audit.filter((a) => a.error).map((a) => a.host)).toEqual(['web2']);
    expect(formatAudit(audit).split('\n')).toContain('web1:');
    // No host answers: nothing to show, the command fails as before (every host's reason in one error).
    const none = context(['web1', 'web2', 'web3', 'web4', 'web5']);
    expect(((await listReleases(none.ctx, env).catch((e: Error) => e)) as Error).message).toMatch(/^cannot read any of the 5 hosts:\n {2}- web1: cannot connect to web1: timed out\n/);
    const live = await readLive(ctx, env);
    expect(live.map((l) => l.error ?? 'read')).toEqual(['read', 'cannot connect to web2: timed out', 'read', 'read', 'read']);
  });

  it('ops logs: the hosts that answer are shown, one after another; the others are warned of, then the command fails', async () => {
    const { ctx, remotes } = context(['web4']);
    const err = await logs(ctx, env, { program: 'nginx' }).catch((e: Error) => e);
    // Two steps on each: a look at the lock (a run under way is said first), then the logs.
    expect(remotes.map((r) => [r.name, r.runs.length])).toEqual([['web1', 2], ['web2', 2], ['web3', 2], ['web5', 2]]);
    expect((ctx.reporter as MemoryReporter).lines.join('\n')).toContain('cannot reach web4, its logs are not shown: cannot connect to web4: timed out');
    expect((err as Error).message).toBe('the logs of web4 are not shown: cannot reach it (see above)');
    expect(remotes.every((r) => r.closed)).toBe(true);
    // No host at all: the usual error, before anything.
    const none = context(['web1', 'web2', 'web3', 'web4', 'web5']);
    expect(((await logs(none.ctx, env, { program: 'nginx' }).catch((e: Error) => e)) as Error).message).toMatch(/^cannot reach 5 of 5 hosts/);
  });
});
