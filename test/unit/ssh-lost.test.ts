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
