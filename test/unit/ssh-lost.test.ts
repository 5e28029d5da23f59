// SshRemote over a connection that goes down while a step's exec channel is being opened: ssh2 fails the exec
// ("Unable to exec") moments before the connection's close arrives. The step must be reported as the connection
// lost (hostile.test.ts cuts a real connection; this race there was seen once in CI).
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { NodeSSH } from 'node-ssh';
import { ConnectionLostError } from '../../core/errors.ts';
import { SshRemote } from '../../core/remote/ssh.ts';
import type { Step } from '../../core/remote/types.ts';
import { MemoryReporter } from '../../core/report.ts';

/** A connection whose every exec fails as ssh2's does when its channel closes unanswered; `closeAfter` ms later (if set) the connection closes. */
function dyingConnection(closeAfter?: number): NodeSSH {
  const conn = Object.assign(new EventEmitter(), {
    exec(_command: string, cb: (e: Error | undefined) => void) {
      setImmediate(() => cb(new Error('Unable to exec')));
      if (closeAfter !== undefined) setTimeout(() => conn.emit('close'), closeAfter);
    },
  });
  return { connection: conn } as unknown as NodeSSH;
}

const host = { name: 'web1', address: '10.0.0.1', port: 22, user: 'deploy', hostKey: 'ssh-ed25519 AAAA' };
const step: Step = { name: 'release', script: 'true', as: 'app' };

describe('a step whose exec fails as the connection goes down', () => {
  it('is reported as the connection lost, naming the step and the host', async () => {
    const remote = new SshRemote(dyingConnection(20), host, 'app', new MemoryReporter());
    await expect(remote.run(step)).rejects.toThrow(/^step "release" on web1 \(connection lost\): the SSH connection was already closed$/);
    // Of its own kind: what the step did is the host's to say (a switch goes on there), asked over a new connection.
    await expect(new SshRemote(dyingConnection(20), host, 'app', new MemoryReporter()).run(step)).rejects.toBeInstanceOf(ConnectionLostError);
  });

  it('an exec refused on a connection that stays up keeps ssh2\'s words', async () => {
    const remote = new SshRemote(dyingConnection(), host, 'app', new MemoryReporter());
    await expect(remote.run(step)).rejects.toThrow(/^step "release" on web1 failed: Unable to exec$/);
  });
});

/** A connection whose exec channel opens after `openMs`; the step's script, once sent, ends with exit 0 after `runMs`. */
function slowConnection(openMs: number, runMs: number): { ssh: NodeSSH; sent: string[] } {
  const sent: string[] = [];
  const conn = Object.assign(new EventEmitter(), {
    exec(command: string, cb: (e: Error | undefined, c?: unknown) => void) {
      setTimeout(() => {
        const channel = Object.assign(new EventEmitter(), {
          stderr: new EventEmitter(),
          close: () => channel.emit('close', null),
          end: () => {
            sent.push(command);
            setTimeout(() => {
              channel.emit('exit', 0);
              channel.emit('close', 0);
            }, runMs);
          },
        });
        cb(undefined, channel);
      }, openMs);
    },
  });
  return { ssh: { connection: conn } as unknown as NodeSSH, sent };
}

describe('a step in flight (inFlight: what an interruption lets end or stops)', () => {
  it('is one whose script was sent; one whose channel is still opening is not (halted, it never starts), so no "letting switch end" is said of it', async () => {
    const { ssh, sent } = slowConnection(50, 50);
    const remote = new SshRemote(ssh, host, 'app', new MemoryReporter());
    const run = remote.run({ name: 'switch', script: 'true', as: 'app' });
    run.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 10));
    expect(remote.inFlight()).toEqual(['switch']); // asked for, its channel opening
    expect(remote.started()).toEqual([]);
    remote.halt('interrupted by SIGINT');
    await expect(run).rejects.toThrow(/^step "switch" on web1 not started: interrupted by SIGINT$/);
    expect(sent).toEqual([]);
    await remote.whenIdle();
    // sent: in flight until it ends
    const other = slowConnection(10, 100);
    const started = new SshRemote(other.ssh, host, 'app', new MemoryReporter());
    const running = started.run({ name: 'switch', script: 'true', as: 'app' });
    running.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 60));
    expect(other.sent.length).toBe(1);
    expect(started.inFlight()).toEqual(['switch']);
    expect(started.started()).toEqual(['switch']);
    await running.catch(() => undefined);
    expect(started.inFlight()).toEqual([]);
    expect(started.started()).toEqual([]);
  });
});
