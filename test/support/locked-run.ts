// A real node process running core/ops/locked.ts withLock over the recording transport (no host): what the terminal
// and signal tests (run-background, output-paused) start on a real pty, each with its own run body.
import { join } from 'node:path';
import { quote } from '../../core/shell.ts';

const CORE = join(import.meta.dirname, '..', '..', 'core');
const imp = (file: string) => JSON.stringify(join(CORE, file));

/**
 * The text of an ES module that opens a Session to environment `test` (one host, web1, over RecordingRemote: the lock
 * step answers "acquired", every other step "released"), notes `pid <n>` and each step (`step <name>`, then
 * `stepNote`'s JavaScript expression when given) as lines of the file `log`, runs `before`, then `body` inside
 * withLock(ctx, session, 'deploy'), then reports `done` and runs `after`. In scope for the JavaScript given: `note(line)`,
 * `reporter` (a ConsoleReporter after guardOutput), `ctx` (with `ctxFields`, JavaScript object members, added).
 */
export function lockedRunScript(log: string, run: { body: string; before?: string; after?: string; ctxFields?: string; stepNote?: string }): string {
  return `const { appendFileSync } = await import('node:fs');
const { parseEnvironment } = await import(${imp('config/environment.ts')});
const { resolveTarget } = await import(${imp('target.ts')});
const { Session } = await import(${imp('ops/hosts.ts')});
const { withLock } = await import(${imp('ops/locked.ts')});
const { ConsoleReporter, guardOutput } = await import(${imp('report.ts')});
const { RecordingRemote } = await import(${imp('remote/recording.ts')});
const { LOCK_KEYS } = await import(${imp('steps/lock.ts')});
const note = (line) => appendFileSync(${JSON.stringify(log)}, line + '\\n');
note('pid ' + process.pid);
const lines = (...l) => l.map((x) => LOCK_KEYS[x.split(' ')[0]] + ' ' + x.split(' ').slice(1).join(' ')).join('\\n') + '\\n';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { web: { command: 'true', port: 3000 } }, routes: { '/': 'web' } }, 'test');
const env = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }], appUser: 'shop', baseDir: '/srv/shop', url: 'http://192.0.2.1' });
// A new connection each time (the release after a signal reconnects: the old one is halted).
const connect = async () => new RecordingRemote('web1', 'deploy', 'shop', (step) => {
  note('step ' + step.name${run.stepNote ? ` + ${run.stepNote}` : ''});
  return { stdout: step.name === 'lock' ? lines('lock acquired', 'holder since=2026-12-05T11:01:00Z') : lines('lock released') };
});
guardOutput();
const reporter = new ConsoleReporter();
const ctx = { root: '/nonexistent', reporter, processEnv: {}, connector: connect${run.ctxFields ? `, ${run.ctxFields}` : ''} };
const session = await Session.open(ctx, env);
${run.before ?? ''}
await withLock(ctx, session, 'deploy', async () => {
  ${run.body}
});
reporter.info('done');
${run.after ?? ''}`;
}

/** The shell command (quoted words) running `script` as an ES module under node with tsx and the project's text modules. */
export function nodeCommand(script: string): string {
  return [process.execPath, '--import', 'tsx', '--import', join(CORE, '..', 'scripts', 'register-text-modules.js'), '--input-type=module', '-e', script].map(quote).join(' ');
}
