// The ops CLI run where the home directory is not what a login shell gives: HOME empty (a CI container, `HOME= cmd`)
// made ops read the default age key file and SSH keys relative to the directory it ran in
// (.config/sops/age/keys.txt, .ssh/id_ed25519 inside the project: node's os.homedir() gives "" then); HOME unset
// under a uid the password database does not list (`docker run --user 1234`, `env -i`) ended every command in a
// stack trace (os.homedir() throws, at load). Now: $HOME when absolute, else the account's, else no home directory,
// said where a key was looked for, and `~` in a path refused saying why.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveCredentials } from '../../core/remote/identity.ts';
import { MemoryReporter } from '../../core/report.ts';
import { newEnv, tempDir } from './secrets.helpers.ts';

const OPS = join(import.meta.dirname, '..', '..', 'scripts', 'ops-bin.js');

/** The installed ops, run from `cwd` with exactly `env` (and PATH), optionally as `uid` (setpriv, as root). */
function ops(argv: string[], cwd: string, env: NodeJS.ProcessEnv, uid?: number) {
  const [cmd, args] = uid === undefined ? [process.execPath, [OPS, ...argv]] : ['setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, OPS, ...argv]];
  const r = spawnSync(cmd, args, { cwd, env: { PATH: process.env.PATH, NO_COLOR: '1', ...env }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('HOME empty', () => {
  it('reads no age key file relative to the directory ops runs in: the account\'s home is looked in', async () => {
    const e = await newEnv('qa');
    // the environment's own key, left where a relative ~/.config would find it: in the project
    mkdirSync(join(e.root, '.config', 'sops', 'age'), { recursive: true });
    writeFileSync(join(e.root, '.config', 'sops', 'age', 'keys.txt'), `${e.key}\n`, { mode: 0o600 });
    const r = ops(['secrets', 'show', 'qa', '--key', 'secret_key'], e.root, { HOME: '' });
    expect(r.out).toBe('');
    expect(r.code).toBe(1);
    expect(r.err).toContain(`looked in SOPS_AGE_KEY (not set), SOPS_AGE_KEY_FILE (not set), ${join(userInfo().homedir, '.config', 'sops', 'age', 'keys.txt')} (no such file)`);
    // a relative XDG_CONFIG_HOME is ignored too (the XDG specification; Go's os.UserConfigDir, so sops)
    const x = ops(['secrets', 'show', 'qa', '--key', 'secret_key'], e.root, { HOME: '', XDG_CONFIG_HOME: '.config' });
    expect(x.out).toBe('');
    expect(x.code).toBe(1);
  });

  it('offers no SSH key file relative to the directory ops runs in', () => {
    const dir = join(tempDir('ops-home-unset-'), 'project');
    mkdirSync(join(dir, '.ssh'), { recursive: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, '.ssh', 'id_ed25519')]);
    // as the CLI runs: its process environment is process.env
    const before = { cwd: process.cwd(), home: process.env.HOME };
    process.chdir(dir);
    process.env.HOME = '';
    try {
      let creds: ReturnType<typeof resolveCredentials> | undefined;
      let err: unknown;
      try {
        creds = resolveCredentials({ processEnv: process.env }, new MemoryReporter());
      } catch (e) {
        err = e;
      }
      const said = `${creds?.describe ?? ''} ${(creds?.skipped ?? []).join(' ')} ${(err as Error | undefined)?.message ?? ''}`;
      expect(said).not.toMatch(/(^|[\s:])\.ssh\/id_ed25519/);
      for (const k of creds?.defaultKeys ?? []) expect(k.file.startsWith(userInfo().homedir)).toBe(true);
    } finally {
      process.chdir(before.cwd);
      process.env.HOME = before.home;
    }
  });
});

describe.runIf(process.getuid?.() === 0)('HOME unset, under a uid with no account', () => {
  it('says there is no home directory, with no stack trace', async () => {
    const e = await newEnv('qa');
    // readable by that uid: the project (its temporary folders are 0700)
    for (let d = e.root; d !== '/' && d.startsWith('/tmp/'); d = join(d, '..')) chmodSync(d, 0o755);
    chmodSync(join(e.root, 'environments', 'qa', 'secrets.sops.yaml'), 0o644);
    const r = ops(['secrets', 'show', 'qa'], e.root, {}, 48_213);
    expect(r.err).not.toMatch(/\n\s+at |SystemError|uv_os_homedir/);
    expect(r.code).toBe(1);
    expect(r.err).toContain('~/.config/sops/age/keys.txt (no home directory: HOME is not set, and uid 48213 has none in the password database)');
    expect(r.err).toContain('once HOME names your home directory');
    // a ~ in a path typed: refused saying why, never taken relative
    const t = ops(['secrets', 'show', 'qa'], e.root, { SOPS_AGE_KEY_FILE: '~/keys.txt' }, 48_213);
    expect(t.err).toBe('error: ~/keys.txt: no home directory: HOME is not set, and uid 48213 has none in the password database\n  hint: write the full path, or set HOME to your home directory\n');
    expect(t.code).toBe(2);
    // a key given works as anywhere
    const k = ops(['secrets', 'show', 'qa', '--key', 'secret_key'], e.root, { SOPS_AGE_KEY: e.key }, 48_213);
    expect(k.err).toBe('');
    expect(k.code).toBe(0);
  });
});
