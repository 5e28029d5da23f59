// A start that fails on a variable of the release's .env the program does not get in its environment (settings read
// from the process environment: Django's checklist's os.environ['SECRET_KEY']): the error says why and the ways out.
import { describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { StepError } from '../../core/errors.ts';
import { withDotenvOnlyHint } from '../../core/ops/deploy-host.ts';
import { resolveTarget } from '../../core/target.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const config = parseEnvironment(
  {
    app: 'shop',
    hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }],
    env: { DJANGO_SECRET_KEY: 'x', APP_PORT: '1', DEBUG: 'no' },
    programs: { web: { command: 'x', port: 3579, env: { APP_PORT: '{port}' } } },
    routes: { '/': 'web' },
  },
  'test',
);
const env = resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }], appUser: 'shop', baseDir: '/srv/shop', url: 'http://192.0.2.1' });
const failedStart = (tail: string, hint?: string) => new StepError('start blue', 'web1', 3, tail, undefined, hint);

describe('withDotenvOnlyHint', () => {
  it('names a .env variable the log names and no program gets, keeping the hint there was', () => {
    const e = withDotenvOnlyHint(env, failedStart("    SECRET_KEY = ***\nKeyError: 'DJANGO_SECRET_KEY'\nDEBUGGING", 'earlier hint')) as StepError;
    expect(e).toBeInstanceOf(StepError);
    expect(e.message).toContain("KeyError: 'DJANGO_SECRET_KEY'");
    expect(e.hint).toMatch(/^earlier hint; the programs' log names DJANGO_SECRET_KEY, of the release's \.env: build, migrate and hooks get/);
    expect(e.hint).toContain(`sh -c 'set -a; . {release}/.env; exec <program>'`);
  });

  it('leaves alone a failure naming no such variable: one the program gets (APP_PORT), a name inside a word (DEBUGGING), another error', () => {
    const plain = failedStart('APP_PORT is taken\nDEBUGGING on');
    expect(withDotenvOnlyHint(env, plain)).toBe(plain);
    const other = new Error('DJANGO_SECRET_KEY');
    expect(withDotenvOnlyHint(env, other)).toBe(other);
  });
});

// A program run in a directory of its own (`directory: web`, an Express app calling require('dotenv').config()):
// its reader looks for .env in the working directory, and the release's .env is at the root.
describe('withDotenvOnlyHint, a program in a directory of its own', () => {
  const twoDirs = resolveTarget({
    ...env,
    config: parseEnvironment(
      {
        app: 'shop',
        hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }],
        env: { SECRET_KEY: 'x', DATABASE_URL: 'y' },
        programs: {
          api: { command: 'x', port: 5000 },
          web: { command: 'x', port: 8080, directory: 'web' },
          admin: { command: 'x', port: 8090, directory: 'apps/admin/' },
        },
        routes: { '/': 'web' },
      },
      'test',
    ),
  });
  const log = (program: string, line: string) => `--- /var/log/shop/${program}-green.err.log\n${line}\n`;

  it('names each such program whose own log names the variable, with the path of the .env from its directory', () => {
    const e = withDotenvOnlyHint(twoDirs, failedStart(log('api', 'Listening') + log('web', '◇ injected env (0) from .env\nSECRET_KEY is not set') + log('admin', 'KeyError: DATABASE_URL'))) as StepError;
    expect(e.hint).toContain(`web runs in web/ and the .env is at the release's root, ../.env from there`);
    expect(e.hint).toContain(`dotenv.config({ path: '../.env' })`);
    expect(e.hint).toContain(`admin runs in apps/admin/ and the .env is at the release's root, ../../.env from there`);
  });

  it("lines above the first log header (the error's tail cut it off): each program with a directory of its own", () => {
    const e = withDotenvOnlyHint(twoDirs, failedStart('SECRET_KEY is not set\n' + log('api', 'Listening'))) as StepError;
    expect(e.hint).toContain(`web runs in web/ and the .env is at the release's root, ../.env from there`);
    expect(e.hint).toContain(`admin runs in apps/admin/`);
    expect(e.hint).not.toContain('api runs in');
  });

  it("a log the health verdict quotes (not shown again under its header): that program's, not the one whose section comes before", () => {
    const verdict = "release r1 did not become healthy on slot green: program admin keeps exiting (3 exits since its start, the last with exit status 1): it ran past supervisor's startsecs (3s) each time, so supervisor restarts it without end; /var/log/shop/admin-green.err.log ends: KeyError: DATABASE_URL (waiting for admin:8090:/health); the live release keeps serving";
    const e = withDotenvOnlyHint(twoDirs, failedStart(log('web', 'listening') + 'shop-green:shop-green-admin RUNNING\n' + verdict)) as StepError;
    expect(e.hint).toContain('admin runs in apps/admin/');
    expect(e.hint).not.toContain('web runs in');
  });

  it('says nothing of directories for a program at the release root, or one whose log does not name it', () => {
    const e = withDotenvOnlyHint(twoDirs, failedStart(log('api', 'KeyError: SECRET_KEY') + log('web', 'listening on 8081'))) as StepError;
    expect(e.hint).toMatch(/with shell in dotenv\.readers$/);
  });
});
