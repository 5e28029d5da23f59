// What a program finds in its environment, as the environment reference says it: the variables the slot's
// supervisor file gives it (slotConfig), and not the release's .env (a file the app reads itself).
import { describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { environmentSchema } from '../../core/config/environment-schema.ts';
import { renderDocs } from '../../core/config/schema-object.ts';
import { slotConfig } from '../../core/steps/switch.ts';
import { resolveTarget } from '../../core/target.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';

describe('programs.<name>.command: its environment, as documented', () => {
  it('names every variable the supervisor file gives a program, and says the .env is not among them', () => {
    const config = parseEnvironment(
      { app: 'sample', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { server: { command: 'run', port: 3579, env: { OWN_SETTING: 'x' } } }, routes: { '/': 'server' }, env: { APP_SECRET: 'plain' } },
      'environments/x/environment.yml',
    );
    const env = resolveTarget({ name: 'x', dir: '/x', root: '/x', config, hosts: [], appUser: 'sample', baseDir: '/srv/sample', url: 'http://x' });
    const conf = slotConfig(env, 'blue', '/srv/sample/releases/r1', 'r1');
    const line = /^environment=(.*)$/m.exec(conf)![1]!;
    const given = [...line.matchAll(/(?:^|,)([A-Za-z_][A-Za-z0-9_]*)=/g)].map((m) => m[1]!);
    // The .env's variables are not in it: supervisor starts the program without them.
    expect(given).not.toContain('APP_SECRET');
    const row = renderDocs(environmentSchema).split('\n').find((l) => l.startsWith('| `programs.<name>.command` |'))!;
    for (const name of given.filter((n) => n !== 'OWN_SETTING')) expect(row, name).toContain(name);
    expect(row).toContain('`env`');
    expect(row).not.toMatch(/with the release `\.env` loaded/);
    expect(row).toMatch(/not the release `\.env`/);
  });
});
