// A new user's first day, typed as they would type it with the installed `ops` binary (scripts/ops-bin.js, its own
// process, run from the project or a folder inside it, no $OPS_ROOT): `ops env new`, the environment edited for a
// fresh host, `ops ping` before provision (not provisioned, and the next step), a deploy refused there, a missing age
// key, provision, a first deploy, a ref mistyped, a rollback to a release never kept, `ops env remove` refused while
// the environment serves; and the slips on the way (a command or subcommand mistyped or in the wrong order, an option
// before its command, age's `-i` given for the age key, `--help` of every command). Each answer: what was wrong and
// the fix, never a stack trace.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { allCommands } from '../../scripts/commands/index.ts';
import { commit, gitIn, initRepo } from '../support/gitrepo.ts';
import { APP, asRoot, get, labHost, pythonWebApp, RELOAD_NGINX } from './support.ts';

const BIN = join(import.meta.dirname, '..', '..', 'scripts', 'ops-bin.js');
const base = mkdtempSync(join(tmpdir(), 'ops-firstday-'));
/** The project: the app's own repository (ops deploys its own checkout by default), with package.json and environments/. */
const root = join(base, 'catalogue');
const sub = join(root, 'src', 'deep');
/** The user's home: no age key there yet, as on a new laptop. */
const home = join(base, 'home');
const keyFile = join(home, 'qa-age-key.txt');
const APP_NAME = 'firstday'; // its own base_dir on the snapshot host: never provisioned for it

interface Typed {
  code: number;
  out: string;
  err: string;
  /** stdout and stderr, as a terminal shows them. */
  text: string;
}

/** `ops <argv>` typed in `cwd` (default: a folder inside the project), as a user's shell runs the installed binary. */
function ops(argv: string[], { cwd = sub, env = {}, input }: { cwd?: string; env?: Record<string, string>; input?: string } = {}): Promise<Typed> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...argv], { cwd, env: { PATH: process.env.PATH!, HOME: home, USER: 'e2e', NO_COLOR: '1', ...env }, timeout: 240_000, maxBuffer: 1 << 24 }, (error, out, err) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      const text = `${out}${err}`;
      console.log(`$ ops ${argv.join(' ')}  [exit ${code}]\n${text}`);
      // never a stack trace, whatever was typed
      expect(text, argv.join(' ')).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
      resolve({ code, out, err, text });
    });
    child.stdin!.end(input ?? '');
  });
}
const withKey = { SOPS_AGE_KEY_FILE: keyFile };

const lab = labHost('fdy');

describe.sequential("a new user's first day, with the installed ops", () => {
  it('env new from a folder inside the project; ping before provision says what to do next; slips before the first deploy, each with its fix', async () => {
    mkdirSync(home, { recursive: true });
    initRepo(root, { 'server.py': pythonWebApp('"ok" if self.path == "/health" else "version " + VERSION', 'VERSION = open("VERSION").read().strip()'), VERSION: '1\n', 'package.json': '{"name": "catalogue", "private": true}\n', 'src/deep/README': 'code\n' });
    gitIn(root, ['tag', 'v1']);
    commit(root, { VERSION: '2\n' }, 'version 2');
    gitIn(root, ['tag', 'v2']);
    mkdirSync(join(root, 'environments'));

    // `ops env new qa > FILE`: stdout is the key file alone
    const made = await ops(['env', 'new', 'qa']);
    expect(made.code).toBe(0);
    expect(made.out.split('\n').filter((l) => l.trim() && !l.startsWith('#'))).toEqual([expect.stringMatching(/^AGE-SECRET-KEY-1/)]);
    expect(made.err).toContain('wrote environments/qa/environment.yml');
    // the user edits the file the scaffold wrote: the host, no TLS, the app's one program; keeps a secret in env
    const file = join(root, 'environments', 'qa', 'environment.yml');
    const header = readFileSync(file, 'utf8').split('\n')[0];
    const h = lab.host;
    writeFileSync(
      file,
      `${header}\n${stringify({
        app: APP_NAME,
        ref: 'main',
        hosts: [{ name: 'web1', address: h.address, user: h.user, host_key: h.hostKey }],
        ssh: { identity_file: h.identityFile, connect_timeout: 10 },
        tls: { mode: 'off' },
        release: { python_requirements: '', node_dir: '', build: 'true', migrate: 'true' },
        switch: { drain: 1, health_timeout: 30 },
        programs: { web: { command: '{python} server.py {port}', port: 5300, health: '/health' } },
        routes: { '/': 'web' },
        env: { APP_SECRET_KEY: { secret: 'secret_key' } },
      })}`,
    );
    // a fresh host: no other app's site (the snapshot's default server)
    await asRoot(h, `rm -f /etc/nginx/sites-enabled/${APP} && ${RELOAD_NGINX}`);

    const ping = await ops(['ping', 'qa']);
    expect(ping.code).toBe(0);
    expect(ping.text).toContain('→ web1: not provisioned for qa yet: deploy, rollback and initdata refuse until it is; next: ops provision qa, then ops deploy qa');

    // the key not stored yet: where ops looked, and what to do
    const noKey = await ops(['deploy', 'qa', '--ref', 'v1']);
    expect(noKey.code).toBe(1);
    expect(noKey.err).toMatch(/^error: no age identity to decrypt .*looked in SOPS_AGE_KEY \(not set\), SOPS_AGE_KEY_FILE \(not set\)/);
    // age's -i for it: refused, with the way the key is given
    const ageI = await ops(['secrets', 'show', 'qa', '-i', keyFile]);
    expect(ageI.code).toBe(2);
    expect(ageI.err).toBe(`error: --identity (-i) is the SSH key ops logs in to hosts with; "ops secrets show" logs in to none\n  hint: the age key that decrypts the secrets goes in $SOPS_AGE_KEY_FILE (or the key itself in $SOPS_AGE_KEY): SOPS_AGE_KEY_FILE=${keyFile} ops secrets show qa\n`);
    writeFileSync(keyFile, made.out, { mode: 0o600 });
    // and given as the SSH key: said as the age key it is
    const asSsh = await ops(['ping', 'qa', '-i', keyFile]);
    expect(asSsh.code).toBe(2); // a key given that is not one: the command line to fix (README "Exit status")
    expect(asSsh.text).toContain(`key file ${keyFile} holds an age key (not shown: the key that decrypts the secrets), not an SSH private key`);
    expect(asSsh.text).not.toContain('AGE-SECRET-KEY-1');

    const placeholders = await ops(['deploy', 'qa', '--ref', 'v1'], { env: withKey });
    expect(placeholders.code).toBe(2); // the secrets file still holds placeholders: a usage error (README "Exit status")
    expect(placeholders.err).toContain('still holds placeholder values (CHANGE-ME): database_url, datapass_client_id, datapass_client_secret, passwords.admin@example.org');
    for (const k of ['database_url', 'datapass_client_id', 'datapass_client_secret', 'passwords.admin@example.org']) {
      expect((await ops(['secrets', 'set', 'qa', k], { env: withKey, input: `value-of-${k}-${process.pid}\n` })).code, k).toBe(0);
    }
    // the ref as git checkout takes it
    const bare = await ops(['deploy', 'qa', 'v1'], { env: withKey });
    expect(bare.code).toBe(2);
    expect(bare.err).toBe('error: unexpected argument "v1" for "ops deploy" (did you mean --ref v1?)\n  hint: ops deploy qa --ref v1\n');
    const early = await ops(['deploy', 'qa', '--ref', 'v1'], { env: withKey });
    expect(early.code).toBe(1);
    expect(early.err).toContain('error: web1 is not provisioned for qa (run: ops provision qa): nothing was sent, built or started\n  hint: run: ops provision qa, then ops deploy qa');
    // the new environment, not committed yet, is what ops reads: never said as "not deployed"
    expect(early.text).not.toContain('not deployed');
  }, 600_000);

  it('provision, a first deploy, a ref mistyped, a rollback to a release named otherwise or never kept, env remove refused while it serves', async () => {
    const prov = await ops(['provision', 'qa'], { env: withKey });
    expect(prov.code).toBe(0);
    const ping = await ops(['ping', 'qa']);
    expect(ping.code).toBe(0);
    expect(ping.text).not.toContain('not provisioned');

    const first = await ops(['deploy', 'qa', '--ref', 'v1'], { env: withKey });
    expect(first.code).toBe(0);
    expect(first.text).not.toContain('not deployed');
    expect((await get(lab.host)).body).toBe('version 1');
    const id = /release (\d{8}T\d{6}Z-[0-9a-f]{12}) \([0-9a-f]{12}, v1\)/.exec(first.text)![1]!;

    for (const [ref, meant] of [['v11', 'v1'], ['mian', 'main']] as const) {
      const typo = await ops(['deploy', 'qa', '--ref', ref], { env: withKey });
      expect(typo.code, ref).toBe(1);
      expect(typo.err, ref).toMatch(new RegExp(`^error: ref "${ref}" is not a tag, branch or commit of ${root} \\(did you mean ${meant}\\?\\)`));
    }

    const second = await ops(['deploy', 'qa', '--ref', 'v2'], { env: withKey });
    expect(second.code).toBe(0);
    expect((await get(lab.host)).body).toBe('version 2');

    // back to v1 as people name it: the id meant said, nothing changed
    for (const to of ['v1', id.split('-')[1]!.slice(0, 7), `* ${id}`]) {
      const named = await ops(['rollback', 'qa', '--to', to], { env: withKey });
      expect(named.code, to).toBe(2); // a usage error (README "Exit status"): the command line names a release another way
      expect(named.err, to).toContain(`  hint: ops rollback qa --to ${id}\n`);
    }
    expect((await get(lab.host)).body).toBe('version 2');
    const notKept = await ops(['rollback', 'qa', '--to', '20200101T000000Z-0123456'], { env: withKey });
    expect(notKept.code).toBe(1);
    expect(notKept.err).toMatch(/^error: release 20200101T000000Z-0123456 is not on web1 \(kept: \S+, \S+\)\n  hint: see ops releases qa\n/);
    const back = await ops(['rollback', 'qa', '--to', id], { env: withKey });
    expect(back.code).toBe(0);
    expect((await get(lab.host)).body).toBe('version 1');

    const remove = await ops(['env', 'remove', 'qa'], { env: withKey });
    expect(remove.code).toBe(1);
    expect(remove.err).toMatch(/^error: environment qa still serves: refusing to remove it\n {2}web1 \(\S+\) serves \S+ \(v1\)/);
    expect(readFileSync(join(root, 'environments', 'qa', 'environment.yml'), 'utf8')).toContain(APP_NAME);
    expect((await get(lab.host)).body).toBe('version 1');
  }, 600_000);

  it('words in the wrong order, and --help of every command: each said with the line meant', async () => {
    expect((await ops(['secrets', 'qa', 'show'])).err).toMatch(/^error: unknown subcommand "qa" for "ops secrets": the subcommand comes first, then the environment \(did you mean "ops secrets show qa"\?\)\n/);
    expect((await ops(['lock', 'qa'])).err).toMatch(/^error: unknown subcommand "qa" for "ops lock": the subcommand comes first, then the environment \(did you mean "ops lock status qa" or "ops lock release qa"\?\)\n/);
    const withIdentity: string[] = [];
    for (const c of allCommands) {
      const r = await ops([...c.name.split(' '), '--help'], { cwd: root });
      expect(r.code, c.name).toBe(0);
      expect(r.out, c.name).toMatch(new RegExp(`^usage: ops ${c.name}`));
      if (r.out.includes('--identity FILE')) withIdentity.push(c.name);
    }
    expect(withIdentity.sort()).toEqual(allCommands.filter((c) => c.hosts).map((c) => c.name).sort());
  }, 300_000);
});
