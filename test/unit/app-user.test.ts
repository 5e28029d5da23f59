// The app user is never an account of the system or of a service: refused in the configuration, refused by
// provision when an existing user was not made by ops, and never deleted by the commands ops env remove lists.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseEnvironment } from '../../core/config/environment.ts';
import { removeAppCommands } from '../../core/ops/decommission.ts';
import { quote } from '../../core/shell.ts';
import { ensureAppUser } from '../../core/steps/system.ts';
import { KEY, testEnv } from './status.helpers.ts';

const doc = (extra: Record<string, unknown>) => ({
  app: 'shop',
  hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }],
  programs: { server: { command: 'run', port: 3579 }, client: { command: 'run', port: 3000 } },
  ...extra,
});

function problems(extra: Record<string, unknown>): string[] {
  try {
    parseEnvironment(doc(extra), 'environments/x/environment.yml');
  } catch (e) {
    if (e instanceof ConfigError) return e.problems.map((p) => `${p.path}: ${p.message}`);
    throw e;
  }
  return [];
}

describe('app user: not an account of the system or of a service', () => {
  it('refuses them as app_user, and as the app name the app user defaults to', () => {
    for (const user of ['postgres', 'www-data', 'sshd', 'nobody', 'daemon', 'messagebus', 'systemd-network', 'supervisor', 'nginx', 'bin', 'backup'])
      expect(problems({ app_user: user }), user).toEqual([expect.stringMatching(new RegExp(`^app_user: the app would run as "${user}", .*: provision would take it over and ops env remove would delete it; set app_user to a user of its own$`))]);
    expect(problems({ app_user: 'postgres' })).toEqual([
      'app_user: the app would run as "postgres", PostgreSQL\'s account (its home /var/lib/postgresql holds every cluster): provision would take it over and ops env remove would delete it; set app_user to a user of its own',
    ]);
    expect(problems({ app: 'postgres' })).toEqual([expect.stringMatching(/^app: the app would run as "postgres" \(app_user defaults to the app name\), PostgreSQL's account/)]);
    // The login (hosts[].user) and root keep their own message.
    expect(problems({ app_user: 'deploy' })).toEqual([expect.stringMatching(/^app_user: the app would run as "deploy", the SSH login of host web1/)]);
    expect(problems({ app_user: 'root' })).toEqual([expect.stringMatching(/^app_user: the app would run as "root", root/)]);
    for (const user of ['shop', 'postgresql-app', 'www', 'catalogue']) expect(problems({ app_user: user }), user).toEqual([]);
  });

  /** The provision snippet run by bash with `id`, `getent` and `useradd` answering as a host whose users are `passwd`. */
  function provisionUser(user: string, passwd: string[], login = 'deploy') {
    const stubs = [
      `PASSWD=${quote(passwd.join('\n'))}`,
      'getent() { printf "%s\\n" "$PASSWD" | grep "^$2:"; }',
      'id() { getent passwd "$2" | cut -d: -f3 | grep .; }',
      'useradd() { echo "useradd $*"; }',
    ].join('\n');
    try {
      return { code: 0, out: execFileSync('bash', ['-c', `set -euo pipefail\n${stubs}\n${ensureAppUser(user, login)}\necho "changed=\${CHANGED:-0}"`], { encoding: 'utf8', stdio: 'pipe' }) };
    } catch (e) {
      const err = e as { status: number; stdout: string; stderr: string };
      return { code: err.status, out: err.stdout, err: err.stderr };
    }
  }

  it('provision creates a missing user, takes one ops made (home /home/<user>), refuses any other existing one', () => {
    const accounts = [
      'root:x:0:0:root:/root:/bin/bash',
      'www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin',
      'postgres:x:104:111:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash',
      'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
      'shop:x:998:998::/home/shop:/usr/sbin/nologin',
      'deploy:x:1000:1000::/home/deploy:/bin/bash',
      'toor:x:0:0::/home/toor:/bin/bash',
    ];
    expect(provisionUser('fresh', accounts)).toEqual({ code: 0, out: 'useradd --system --user-group --create-home --home-dir /home/fresh --shell /usr/sbin/nologin fresh\nchanged=1\n' });
    expect(provisionUser('shop', accounts)).toEqual({ code: 0, out: 'changed=0\n' });
    for (const [user, uid, home] of [
      ['postgres', 104, '/var/lib/postgresql'],
      ['www-data', 33, '/var/www'],
      ['nobody', 65534, '/nonexistent'],
      ['root', 0, '/root'],
      ['toor', 0, '/home/toor'],
      ['deploy', 1000, '/home/deploy'],
    ] as const) {
      const r = provisionUser(user, accounts);
      expect(r.code, user).toBe(1);
      expect(r.out, user).toBe('');
      expect(r.err, user).toContain(`the app user ${user} already exists on this host (uid ${uid}, home ${home}) and is not one ops made (home /home/${user})`);
    }
  });

  it('env remove never lists userdel of such an account, and deletes only a user whose home is /home/<user>', () => {
    const env = testEnv();
    const userdel = (cmds: string[]) => cmds.filter((c) => /userdel/.test(c));
    expect(userdel(removeAppCommands(env))).toEqual([`if ! getent passwd shop >/dev/null; then echo 'app user shop: already removed'; elif [ "$(getent passwd shop | cut -d: -f6)" = /home/shop ]; then sudo userdel --remove shop; else echo 'shop: its home is not /home/shop, so ops did not make it: kept'; fi`]);
    // A file older than the checks may still name one.
    for (const appUser of ['postgres', 'www-data', 'root', 'deploy', 'systemd-timesync']) {
      const cmds = removeAppCommands({ ...env, appUser });
      expect(userdel(cmds), appUser).toEqual([]);
      expect(cmds.at(-1), appUser).toMatch(new RegExp(`^# app user ${appUser} is .*, not a user ops made: not removed$`));
    }
  });

  it('provision refuses an existing user named as the app user whose home is not /home/<user>, even with a uid like the ones ops makes', () => {
    const r = provisionUser('shop', ['shop:x:998:998::/srv/shop:/usr/sbin/nologin']);
    expect(r).toMatchObject({ code: 1, err: expect.stringContaining('(uid 998, home /srv/shop)') });
  });
});
