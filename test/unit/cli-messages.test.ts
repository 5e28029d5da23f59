// Messages for a mistyped command or path: the unknown word named (with a did-you-mean), a directory or a
// missing directory where a file is expected, --file read from the current directory, and secret key paths
// holding dots as `ops env new` writes them.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { command, JSON_OPTION } from '../../scripts/cli.ts';
import { handleSignals, stopHandlingSignals } from '../../core/signals.ts';
import { loadEnvironment } from '../../core/config/environment.ts';
import { lookup, renderDotenv } from '../../core/dotenv.ts';
import { initdata } from '../../core/ops/initdata.ts';
import { MemoryReporter } from '../../core/report.ts';
import type { Connector } from '../../core/context.ts';
import { OpsError } from '../../core/errors.ts';
import { refusePlaceholderAddress } from '../../core/remote/ssh-login.ts';
import { PLACEHOLDER_HOST_KEY, isPlaceholderHostKey, parseHostKeys } from '../../core/config/hostkey.ts';
import { runOps } from '../support/cli.ts';
import { cli as secretsCli, newEnv, tempDir } from './secrets.helpers.ts';
import { KEY, testEnv } from './status.helpers.ts';

const cli = (root: string, ...argv: string[]) => runOps(argv, { root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent' } });

describe('a mistyped subcommand', () => {
  it('is named, with the closest subcommand, in every group', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    const shw = await cli(root, 'secrets', 'shw', 'prod');
    expect(shw.code).toBe(2);
    expect(shw.err).toMatch(/^error: unknown subcommand "shw" for "ops secrets" \(did you mean "ops secrets show"\?\); its subcommands:\n  ops secrets decrypt <file>/);
    const lock = await cli(root, 'lock', 'foo', 'prod');
    expect(lock.code).toBe(2);
    expect(lock.err).toMatch(/^error: unknown subcommand "foo" for "ops lock"; its subcommands:\n  ops lock status <env>/);
    expect((await cli(root, 'lock', 'relase', 'prod')).err).toContain('(did you mean "ops lock release"?)');
    expect((await cli(root, 'lock')).err).toMatch(/^"ops lock" needs a subcommand:/);
    // the one line and its hint, not the whole help after them (which would push the line off the screen)
    expect((await cli(root, 'deplyo', 'prod')).err).toBe('error: unknown command "deplyo" (did you mean "ops deploy"?)\n  hint: `ops --help` lists the commands\n');
    expect((await cli(root, 'zzz', 'prod')).err).toMatch(/^error: unknown command "zzz"\n\nops: provision, deploy[^]*\ncommands:\n/);
    // two neighbouring letters swapped is one slip, as a person types it
    expect((await cli(root, 'pnig', 'prod')).err).toMatch(/^error: unknown command "pnig" \(did you mean "ops ping"\?\)/);
    // ops's own option typed as a command word
    for (const w of ['version', 'verison']) expect((await cli(root, w)).err, w).toMatch(new RegExp(`^error: unknown command "${w}" \\(did you mean "ops --version"\\?\\)\n`));
    // the whole command where the slip spans its two words or joins them
    for (const [argv, meant] of [[['secret', 'show', 'prod'], 'secrets show'], [['env-new', 'qa'], 'env new'], [['lock_status', 'prod'], 'lock status']] as const)
      expect((await cli(root, ...argv)).err, argv.join(' ')).toMatch(new RegExp(`^error: unknown command "${argv[0]}" \\(did you mean "ops ${meant}"\\?\\)`));
    // the environment typed before the command: the order said, with the line meant; a command taking none is not offered
    const swapped = await cli(root, 'prod', 'deploy', '--dry-run');
    expect(swapped).toMatchObject({ code: 2, err: 'error: unknown command "prod": the command comes first, then the environment (did you mean "ops deploy prod --dry-run"?)\n  hint: usage: ops deploy <env> [--ref REF] [--force] [--dry-run] [--forward-only] [--json]\n' });
    expect((await cli(root, 'qa', 'lock', 'status')).err).toMatch(/^error: unknown command "qa": the command comes first, then the environment \(did you mean "ops lock status qa"\?\)/);
    expect((await cli(root, 'foo', 'keygen')).err).toMatch(/^error: unknown command "foo"\n/);
    const json = await cli(root, 'prod', 'status', '--json');
    expect(JSON.parse(json.out)).toEqual({ ok: false, error: 'unknown command "prod": the command comes first, then the environment (did you mean "ops status prod --json"?)', hint: 'usage: ops status <env> [--json]', exitCode: 2 });
    const ad = await cli(root, 'secrets', 'recipients', 'prod', 'ad', 'age1x');
    expect(ad).toMatchObject({ code: 2, err: expect.stringContaining('error: unknown action "ad" (did you mean "add"?)') });
  });
});

describe('no command recognised, with --json', () => {
  it('prints its JSON error document on stdout (a script parsing it gets one), as every other --json usage error does', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    const doc = async (...argv: string[]) => {
      const r = await cli(root, ...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      return JSON.parse(r.out) as { ok: boolean; error: string; hint?: string; exitCode: number };
    };
    expect(await doc('deplyo', 'prod', '--json')).toEqual({ ok: false, error: 'unknown command "deplyo" (did you mean "ops deploy"?)', hint: '`ops --help` lists the commands', exitCode: 2 });
    expect(await doc('secrets', 'shw', 'prod', '--json')).toMatchObject({ ok: false, error: 'unknown subcommand "shw" for "ops secrets" (did you mean "ops secrets show"?)', hint: expect.stringContaining('its subcommands: ops secrets decrypt <file>') });
    expect(await doc('lock', '--json')).toMatchObject({ ok: false, error: '"ops lock" needs a subcommand', exitCode: 2 });
    expect(await doc('--json', 'deplyo')).toMatchObject({ ok: false, error: expect.stringContaining('unknown command "--json"') });
    // after `--` it is an argument, not the option: nothing on stdout
    expect((await cli(root, 'deplyo', '--', '--json')).out).toBe('');
  });
});

describe('npm run ops without `--`', () => {
  it('an option npm took as its own (npm run ops deploy prod --dry-run: npm_config_dry_run) is refused, not run without it; --json still gets its document', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    const npm = (extra: Record<string, string>, ...argv: string[]) => runOps(argv, { root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent', npm_command: 'run', npm_lifecycle_event: 'ops', ...extra } });
    const dry = await npm({ npm_config_dry_run: 'true' }, 'deploy', 'prod');
    expect(dry).toMatchObject({ code: 2, out: '' });
    expect(dry.err).toBe('error: npm took --dry-run as its own option: ops did not get it (npm reads the options of `npm run ops deploy ...` before a `--` as its own); nothing was done\n  hint: put -- between npm\'s words and ops\'s: npm run ops -- deploy ... (or npx ops deploy ...)\n');
    const json = await npm({ npm_config_json: 'true', npm_config_ref: 'true' }, 'diff', 'prod', 'v2');
    expect(json.code).toBe(2);
    expect(JSON.parse(json.out)).toMatchObject({ ok: false, error: expect.stringContaining('npm took --ref, --json as its own options: ops did not get them (npm reads the options of `npm run ops diff ...` before a `--` as its own, and the value after --ref became an argument)'), exitCode: 2 });
    // read by npm as another setting of its own: `rollback --to 3` would roll back to the previous release instead
    expect((await npm({ npm_config_token_description: '3' }, 'rollback', 'prod')).err).toMatch(/^error: npm took --to as its own option: ops did not get it \(npm reads the options of `npm run ops rollback \.\.\.` before a `--` as its own\); nothing was done/);
    // given to ops after `--`, npm's variable is no matter; outside npm run, no variable is looked at
    expect((await npm({ npm_config_dry_run: 'true' }, 'deploy', 'prod', '--dry-run', '--bogus')).err).toContain('unknown option --bogus');
    expect((await runOps(['deploy', 'prod', '--bogus'], { root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent', npm_config_dry_run: 'true' } })).err).toContain('unknown option --bogus');
    // an option's letter: npm leaves npm_config_<letter> (`keygen -o me.key`), or reads it as its own (`logs -f`: npm's --force)
    expect((await npm({ npm_config_force: 'true' }, 'logs', 'prod')).err).toMatch(/^error: npm took --follow as its own option: ops did not get it/);
    expect((await npm({ npm_config_o: 'true' }, 'keygen', 'me.key')).err).toMatch(/^error: npm took --output as its own option: ops did not get it \(npm reads the options of `npm run ops keygen \.\.\.` before a `--` as its own, and the value after --output became an argument\)/);
    expect((await npm({ npm_config_force: 'true' }, 'logs', 'prod', '-f', '--bogus')).err).toContain('unknown option --bogus');
    // an option that is no ops option (`status prod --host x`): npm took it, its value is left as an argument; said so
    expect((await npm({ npm_config_host: 'true' }, 'status', 'prod', 'x')).err).toBe("error: unexpected argument \"x\" for \"ops status\"\n  hint: usage: ops status <env> [--json]; under npm run, an option before `--` is npm's and its value is left as an argument: npm run ops -- status ...\n");
    expect((await cli(root, 'status', 'prod', 'x')).err).toBe('error: unexpected argument "x" for "ops status"\n  hint: usage: ops status <env> [--json]\n');
  });

  it('secrets show: npm takes --key (its own deprecated setting) leaving no trace, so without --key given to ops nothing is printed, not every secret', async () => {
    const e = await newEnv('qa');
    await secretsCli(e.root, ['secrets', 'set', 'qa', 'api_token'], e.env, 'Zq8-not-to-be-printed');
    const underNpm = { ...e.env, npm_command: 'run', npm_lifecycle_event: 'ops' };
    // `npm run ops secrets show qa --key api_token`: ops gets `secrets show qa`, and no npm_config_key (real npm 11: see below)
    const all = await secretsCli(e.root, ['secrets', 'show', 'qa'], underNpm);
    expect(all).toMatchObject({ code: 2, out: '' });
    expect(all.err).toBe(
      'error: ops cannot tell whether npm took --key of `npm run ops secrets show ...` (npm reads --key before a `--` as its own setting and passes on no trace of it); nothing was done\n' +
        '  hint: run it as npx ops secrets show ... (from bash or zsh) or node scripts/ops-bin.js secrets show ... (from the project folder); or give --key after the --: npm run ops -- secrets show ... --key PATH\n',
    );
    // `npm exec ops secrets show qa --key api_token` reads its options as npm run does; npx (known by the shell's $_) does not
    const exec = { ...e.env, npm_command: 'exec', npm_lifecycle_event: 'npx' };
    expect(await secretsCli(e.root, ['secrets', 'show', 'qa'], { ...exec, _: '/usr/bin/npm' })).toMatchObject({ code: 2, out: '', err: expect.stringMatching(/^error: ops cannot tell whether npm took --key of `npm exec ops secrets show \.\.\.`[^\n]*\n  hint: [^\n]*; or give --key after the --: npm exec -- ops secrets show \.\.\. --key PATH\n$/) });
    expect(await secretsCli(e.root, ['secrets', 'show', 'qa'], exec)).toMatchObject({ code: 2, out: '' });
    expect((await secretsCli(e.root, ['secrets', 'show', 'qa'], { ...exec, _: '/usr/local/bin/npx' })).out).toContain('Zq8-not-to-be-printed');
    expect((await runOps(['deploy', 'qa'], { root: e.root, processEnv: { ...exec, _: '/usr/bin/npm', npm_config_dry_run: 'true' } })).err).toMatch(/^error: npm took --dry-run as its own option: ops did not get it \(npm reads the options of `npm exec ops deploy \.\.\.` before a `--` as its own\); nothing was done\n  hint: put -- between npm's words and ops's: npm exec -- ops deploy \.\.\. \(or npx ops deploy \.\.\.\)\n$/);
    // given to ops after `--`: the one value; outside npm run: all of them, as asked
    expect(await secretsCli(e.root, ['secrets', 'show', 'qa', '--key', 'api_token'], underNpm)).toMatchObject({ code: 0, out: 'Zq8-not-to-be-printed' });
    expect((await secretsCli(e.root, ['secrets', 'show', 'qa', '--key=api_token'], underNpm)).code).toBe(0);
    expect((await secretsCli(e.root, ['secrets', 'show', 'qa'], e.env)).out).toContain('Zq8-not-to-be-printed');
    // an empty --key (an unset variable) is not "the default": leaving it out would print them all, and the hint says so
    expect(await secretsCli(e.root, ['secrets', 'show', 'qa', '--key', ''], e.env)).toMatchObject({ code: 2, out: '', err: 'error: --key needs a key path, got an empty one\n  hint: give the key (a.b for a nested one): an unset variable, as in --key "$VAR"? (leaving --key out prints every secret)\n' });
  });

  it('the real npm: `npm run ops secrets show qa --key api_token` prints no secret and says how to run it', async () => {
    const e = await newEnv('qa');
    await secretsCli(e.root, ['secrets', 'set', 'qa', 'api_token'], e.env, 'Zq8-not-to-be-printed');
    writeFileSync(join(e.root, 'package.json'), JSON.stringify({ name: 't', private: true, scripts: { ops: `node ${JSON.stringify(join(import.meta.dirname, '..', '..', 'scripts', 'ops-bin.js'))}` } }));
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(npm_|OPS_|SOPS_|INIT_CWD)/i.test(k)));
    const r = spawnSync('npm', ['run', 'ops', 'secrets', 'show', 'qa', '--key', 'api_token'], { cwd: e.root, env: { ...clean, ...e.env, NO_COLOR: '1', npm_config_update_notifier: 'false' }, encoding: 'utf8', timeout: 120_000 });
    expect(r.stdout + r.stderr).not.toContain('Zq8-not-to-be-printed');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('error: ops cannot tell whether npm took --key');
    // npm exec alike; npx hands the options on: the one value
    // ops as a project that installed it has it: node_modules/.bin/ops
    mkdirSync(join(e.root, 'node_modules', '.bin'), { recursive: true });
    symlinkSync(join(import.meta.dirname, '..', '..', 'scripts', 'ops-bin.js'), join(e.root, 'node_modules', '.bin', 'ops'));
    const x = spawnSync('npm', ['exec', 'ops', 'secrets', 'show', 'qa', '--key', 'api_token'], { cwd: e.root, env: { ...clean, ...e.env, NO_COLOR: '1', npm_config_update_notifier: 'false', _: '/usr/bin/npm' }, encoding: 'utf8', timeout: 120_000 });
    expect(x.stdout + x.stderr).not.toContain('Zq8-not-to-be-printed');
    expect(x.status).toBe(2);
    const npx = spawnSync('npx', ['ops', 'secrets', 'show', 'qa', '--key', 'api_token'], { cwd: e.root, env: { ...clean, ...e.env, NO_COLOR: '1', npm_config_update_notifier: 'false', _: '/usr/bin/npx' }, encoding: 'utf8', timeout: 120_000 });
    expect(npx).toMatchObject({ status: 0, stdout: 'Zq8-not-to-be-printed' });
  }, 120_000);

  it('the real npm: what it takes before `--` (deploy --dry-run and --dryrun, logs -n 5, ops -V) is refused, nothing done; a setting of ~/.npmrc is named as one', async () => {
    // a host nothing answers on: a deploy not refused fails at once (exit 1), never deploys
    const root = testEnv({}, [{ name: 'web1', address: '127.0.0.1', port: 1, host_key: KEY } as never], 'qa').root;
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 't', private: true, scripts: { ops: `node ${JSON.stringify(join(import.meta.dirname, '..', '..', 'scripts', 'ops-bin.js'))}` } }));
    const home = tempDir('ops-npm-home-');
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(npm_|OPS_|SOPS_|INIT_CWD)/i.test(k)));
    // CI's usual npm settings in the environment: none of them is an option typed
    const env = { ...clean, HOME: home, NO_COLOR: '1', npm_config_update_notifier: 'false', npm_config_yes: 'true', npm_config_loglevel: 'warn' };
    const npm = (...words: string[]) => spawnSync('npm', ['run', 'ops', ...words], { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
    const refused = (r: ReturnType<typeof npm>) => ({ status: r.status, stdout: r.stdout.replace(/^\n> ops\n> .*\n\n/, ''), error: /^error: .*\n  hint: .*\n/m.exec(r.stderr)?.[0] });
    expect(refused(npm('deploy', 'qa', '--dry-run'))).toMatchObject({ status: 2, stdout: '', error: expect.stringMatching(/^error: npm took --dry-run as its own option: ops did not get it/) });
    // a slip ops itself refuses (`--dryrun`): npm drops it, and the deploy would be real
    expect(refused(npm('deploy', 'qa', '--dryrun'))).toMatchObject({ status: 2, stdout: '', error: expect.stringMatching(/^error: npm took --dryrun \(did you mean --dry-run\?\) as its own option: ops did not get it/) });
    // npm's -n is its --no-yes: the 5 is left as an argument, taken for a program's name
    expect(refused(npm('logs', 'qa', '-n', '5'))).toMatchObject({ status: 2, error: "error: npm took --lines as its own option: ops did not get it (npm reads the options of `npm run ops logs ...` before a `--` as its own, and the value after --lines became an argument); nothing was done\n  hint: put -- between npm's words and ops's: npm run ops -- logs ... (or npx ops logs ...)\n" });
    expect(refused(npm('-V'))).toMatchObject({ status: 2, stdout: '', error: "error: npm took --version as its own option: ops did not get it (npm reads the options of `npm run ops ...` before a `--` as its own); nothing was done\n  hint: put -- between npm's words and ops's: npm run ops -- --version (or npx ops --version)\n" });
    expect(npm('--', '-V')).toMatchObject({ status: 0, stdout: expect.stringContaining('ops-pipeline ') });
    // after the `--` they are ops's, with CI's npm_config_yes=true about: run (and failing on the host nothing answers on)
    for (const words of [['logs', 'qa', '-n', '5'], ['deploy', 'qa', '--dry-run']]) expect(npm('--', ...words).stderr, words.join(' ')).not.toContain('npm took');
    // dry-run=true in ~/.npmrc reaches ops as --dry-run typed would: ops cannot tell, and names the file
    writeFileSync(join(home, '.npmrc'), 'dry-run=true\n');
    expect(refused(npm('--', 'deploy', 'qa'))).toMatchObject({ status: 2, stdout: '', error: `error: npm took --dry-run as its own option, or has it from ${join(home, '.npmrc')} (a setting of npm's config reaches ops as one typed before \`--\` does): ops did not get it (npm reads the options of \`npm run ops deploy ...\` before a \`--\` as its own); nothing was done\n  hint: typed: put -- between npm's words and ops's: npm run ops -- deploy ... (or npx ops deploy ...); from ${join(home, '.npmrc')}: take it out, or run npx ops deploy ...\n` });
  }, 120_000);
});

describe('a missing environment argument', () => {
  it('names the environments of the project (a first run of `ops config` knows none of them yet)', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    expect(await cli(root, 'config')).toMatchObject({ code: 2, err: 'error: missing argument <env> for "ops config"\n  hint: usage: ops config <env> [--json]; the environments: prod\n' });
    expect((await cli(root, 'lock', 'status')).err).toContain('; the environments: prod\n');
    // another argument missing: the usage only
    expect((await cli(root, 'secrets', 'set', 'prod')).err).toBe('error: missing argument <key> for "ops secrets set"\n  hint: usage: ops secrets set <env> <key> [--replace] [--empty] [--exact] [--force]\n');
  });
});

describe('an argument that is no argument', () => {
  it('an option pasted with a typographic dash (—dry-run, –ref, −f) is named with the option meant, not taken for an argument or the environment', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    const em = await cli(root, 'deploy', 'prod', '\u2014dry-run');
    expect(em).toMatchObject({ code: 2, err: 'error: "\u2014dry-run" starts with a typographic dash (U+2014), not "-": ops reads it as an argument, not an option\n  hint: type the option with plain hyphens (--dry-run): a document or chat it was copied from turned "--" into a dash; usage: ops deploy <env> [--ref REF] [--force] [--dry-run] [--forward-only] [--json]\n' });
    expect((await cli(root, 'config', '\u2013json', 'prod')).err).toMatch(/^error: "\u2013json" starts with a typographic dash \(U\+2013\)[^\n]*\n  hint: type the option with plain hyphens \(--json\)/);
    expect((await cli(root, 'logs', 'prod', '\u2212f')).err).toContain('(U+2212)');
    // a secrets command's argument may be a value: named by its place
    const secret = await cli(root, 'secrets', 'set', 'prod', 'k', '\u2014Zq8-value');
    expect(secret.err).toMatch(/^error: argument 3 starts with a typographic dash/);
    expect(secret.err).not.toContain('Zq8');
    // after `--`, an argument
    expect((await cli(root, 'config', 'prod', '--', '\u2014x')).err).toContain('unexpected argument "\u2014x"');
  });

  it('a letter option written with "=" (-o=me.key, -n=5): refused with the forms that work, no file "=me.key" written', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    const key = await runOps(['keygen', '-o=me.key'], { root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent', INIT_CWD: root } });
    expect(key).toMatchObject({ code: 2, out: '', err: 'error: -o= is no form of -o: it would take "=" as part of its value\n  hint: write -o me.key or --output=me.key; usage: ops keygen [--output FILE]\n' });
    expect(existsSync(join(root, '=me.key'))).toBe(false);
    expect((await cli(root, 'logs', 'prod', '-n=5')).err).toContain('hint: write -n 5 or --lines=5;');
  });

  it('an empty one (an unset variable: ops config "$ENV") is said to be empty', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    expect(await cli(root, 'config', '')).toMatchObject({ code: 2, err: 'error: <env> of "ops config" is empty\n  hint: give one (an unset variable, as in "$ENV"?); usage: ops config <env> [--json]\n' });
    expect((await cli(root, 'logs', 'prod', '')).err).toContain('error: [program] of "ops logs" is empty\n  hint: give one or leave it out');
  });
});

describe('an option given twice', () => {
  it('with two values is refused naming both (never the last one silently: a deploy of another ref); the same value, or a switch twice, is taken', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    const twice = await cli(root, 'diff', 'prod', '--ref', 'v1', '--json', '--ref=v2');
    expect(twice).toMatchObject({ code: 2, err: 'error: --ref given twice, "v1" and "v2": ops takes one\n  hint: keep the one you mean; usage: ops diff <env> [--ref REF] [--json]\n' });
    expect(JSON.parse(twice.out)).toMatchObject({ ok: false, error: '--ref given twice, "v1" and "v2": ops takes one', exitCode: 2 });
    expect((await cli(root, 'logs', 'prod', '-n', '5', '--lines', '6')).err).toMatch(/^error: --lines given twice, "5" and "6": ops takes one\n/);
    expect((await cli(root, 'config', 'prod', '--json', '--json')).code).toBe(0);
    expect((await cli(root, 'diff', 'prod', '--ref', 'v1', '--ref', 'v1')).err).not.toContain('given twice');
  });
});

describe('a file a setting of environment.yml names', () => {
  it('missing: the setting, the path it became and that a relative one starts from the environment folder (nginx.site_template, tls.acme_ca_file)', async () => {
    const root = testEnv({ domain: 'shop.example.org', nginx: { site_template: 'site.conf' }, tls: { mode: 'letsencrypt', email: 'ops@shop.fr', acme_server: 'https://acme.test/dir', acme_ca_file: '../ca.pem' } }, undefined, 'prod').root;
    const config = await cli(root, 'config', 'prod');
    expect(config.code).toBe(2);
    expect(config.err).toContain(`nginx.site_template: cannot read ${join(root, 'environments', 'prod', 'site.conf')}: no such file\n  hint: check nginx.site_template in environments/prod/environment.yml ("site.conf"): a relative path starts from the environment's folder, environments/prod/; ~/ from your home directory`);
    writeFileSync(join(root, 'environments', 'prod', 'site.conf'), '{{upstreams_include}}\nserver { listen 80; {{locations}} }\n');
    // before any connection (its hosts are documentation addresses: none is tried)
    const provision = await cli(root, 'provision', 'prod');
    expect(provision.code).toBe(2);
    expect(provision.err).toBe(`error: tls.acme_ca_file: cannot read ${join(root, 'environments', 'ca.pem')}: no such file\n  hint: check tls.acme_ca_file in environments/prod/environment.yml ("../ca.pem"): a relative path starts from the environment's folder, environments/prod/; ~/ from your home directory\n`);
  });
});

describe("a host address still the placeholder ops env new writes (a documentation address)", () => {
  it('is said before a missing SSH key (core/context.ts sshConnector): the address is the first thing to fix, whatever key there is', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    const r = await cli(root, 'ping', 'prod');
    expect(r.code).toBe(2);
    expect(r.out + r.err).toMatch(/is a documentation address \(RFC 5737\), which no machine has: the placeholder `ops env new` writes, still in place/);
    expect(r.out + r.err).not.toContain('no SSH key');
  });

  it('is a usage error (exit 2) from every command that reaches hosts, per-host reports included: one code for a configuration to fix first', async () => {
    const root = testEnv({ tls: { mode: 'self-signed' }, domain: 'shop.test' }, undefined, 'prod').root;
    for (const argv of [['ping'], ['status'], ['certs'], ['releases'], ['audit'], ['lock', 'status'], ['lock', 'release'], ['logs'], ['rollback'], ['provision']]) {
      const r = await cli(root, ...argv, 'prod');
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.out + r.err, argv.join(' ')).toContain('the placeholder `ops env new` writes, still in place');
    }
    // --json: the per-host document as before (no field added), the exit code the same
    const json = await cli(root, 'ping', 'prod', '--json');
    expect(json.code).toBe(2);
    expect(Object.keys((JSON.parse(json.out) as object[])[0]!).sort()).toEqual(['address', 'error', 'hint', 'host', 'ok', 'problems']);
  });

  it('among hosts that fail otherwise (one down, one at the placeholder): still exit 2, each host said, from a report and from a command that stops', async () => {
    const hosts = [
      { name: 'web1', address: '10.254.0.1', host_key: KEY },
      { name: 'web2', address: '203.0.113.10', host_key: KEY },
    ];
    const root = testEnv({}, hosts, 'prod').root;
    const connector: Connector = async (_e, host) => {
      if (host.address === '203.0.113.10') refusePlaceholderAddress(host, { where: host.name, keyField: 'hosts[].host_key' }, 'environments/prod/environment.yml');
      throw new OpsError(`cannot connect to ${host.name}: timed out`);
    };
    for (const argv of [['ping'], ['status'], ['releases'], ['provision']]) {
      const r = await runOps([...argv, 'prod'], { root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent' }, connector });
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.out + r.err, argv.join(' ')).toContain('cannot connect to web1: timed out');
      expect(r.out + r.err, argv.join(' ')).toContain('the placeholder `ops env new` writes');
    }
    // hosts down alone: the state of the world, exit 1
    const down: Connector = async (_e, host) => {
      throw new OpsError(`cannot connect to ${host.name}: timed out`);
    };
    for (const argv of [['ping'], ['status'], ['releases'], ['provision']])
      expect((await runOps([...argv, 'prod'], { root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent' }, connector: down })).code, argv.join(' ')).toBe(1);
  });
});

describe('hints name the environment, never a literal <env>', () => {
  it('a { secret: } reference holding KEY=VALUE: said as the reference in environment.yml, its environment in the fix, the value not shown (was: ops secrets set <env>, "nothing was changed")', async () => {
    const e = await newEnv('qa');
    const file = join(e.root, 'environments', 'qa', 'environment.yml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('APP_SECRET_KEY: { secret: secret_key }', 'APP_SECRET_KEY: { secret: "secret_key=Zq8-typed-value" }'));
    const r = await runOps(['config', 'qa'], { root: e.root, processEnv: { PATH: process.env.PATH, HOME: e.root, ...e.env } });
    expect(r.code).toBe(2);
    expect(r.err).toBe('error: the secret reference "secret_key=…" in environments/qa/environment.yml holds more than a key name: { secret: } names a key of the secrets file, not KEY=VALUE, KEY: VALUE, KEY:VALUE or KEY VALUE (what follows "secret_key" was not shown)\n' +
      `  hint: write the key alone there, { secret: secret_key }, and its value in the secrets file: printf '%s' 'the value' | ops secrets set qa secret_key; a key whose name holds =, : or a space goes in double quotes: '"secret_key=..."'\n`);
  });

  it('several recipients in one value: the command for each names the environment and subcommand given (recipients add/remove), or the option repeated (env new --recipient)', async () => {
    const e = await newEnv('qa');
    const r = e.out.match(/public key: (age1[0-9a-z]+)/)![1]!;
    const two = `${r},${r}`;
    for (const [argv, hint] of [
      [['secrets', 'recipients', 'qa', 'add', two], 'hint: give one recipient per value: run `ops secrets recipients qa add age1…` once for each'],
      [['secrets', 'recipients', 'qa', 'remove', two], 'hint: give one recipient per value: run `ops secrets recipients qa remove age1…` once for each'],
      [['env', 'new', 'qb', '--recipient', two], 'hint: give one recipient per value: repeat the option (--recipient age1… --recipient age1…)'],
    ] as const) {
      const x = await secretsCli(e.root, [...argv], e.env);
      expect(x.code, argv.join(' ')).toBe(2);
      expect(x.err, argv.join(' ')).toContain(hint);
      expect(x.err, argv.join(' ')).not.toContain('<env>');
    }
  });

  it('ops secrets set of a new key with a space at an end: the keys listed with the environment given', async () => {
    const e = await newEnv('qa');
    const r = await secretsCli(e.root, ['secrets', 'set', 'qa', 'api_token '], e.env, 'v');
    expect(r.code).toBe(2);
    expect(r.err).toContain('ops secrets show qa lists the keys there are');
    expect(r.err).not.toContain('<env>');
  });
});

describe('a host key still the placeholder ops env new writes, at a real address', () => {
  it('is refused as a placeholder to replace (exit 2, before any connection or SSH key), not said as a host key mismatch (was: exit 1, "does not match the pinned key")', async () => {
    const root = testEnv({ tls: { mode: 'self-signed' }, domain: 'shop.test' }, [{ name: 'web1', address: '10.254.0.1', host_key: PLACEHOLDER_HOST_KEY }], 'prod').root;
    for (const argv of [['ping'], ['status'], ['releases'], ['provision'], ['rollback']]) {
      const r = await cli(root, ...argv, 'prod');
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.out + r.err, argv.join(' ')).toContain('web1 (deploy@10.254.0.1:22): its pinned host key is still the placeholder `ops env new` writes, which no machine has; nothing was tried');
      expect(r.out + r.err, argv.join(' ')).toContain('paste it in hosts[].host_key of environments/prod/environment.yml');
      expect(r.out + r.err, argv.join(' ')).not.toMatch(/does not match|no SSH key|timed out/);
    }
  });

  it('is the key ops env new writes (and the shipped example environments pin), recognised whatever the comment around it', async () => {
    const e = await newEnv();
    expect(readFileSync(join(e.root, 'environments', 'qa', 'environment.yml'), 'utf8')).toContain(`host_key: ${PLACEHOLDER_HOST_KEY}\n`);
    for (const name of ['prod', 'staging', 'demo']) expect(loadEnvironment(name, join(import.meta.dirname, '..', '..')).hosts[0]!.hostKey, name).toBe(PLACEHOLDER_HOST_KEY);
    const pinned = parseHostKeys(`${PLACEHOLDER_HOST_KEY} web1`);
    expect(typeof pinned !== 'string' && isPlaceholderHostKey(pinned)).toBe(true);
    const real = parseHostKeys(KEY);
    expect(typeof real !== 'string' && isPlaceholderHostKey(real)).toBe(false);
  });
});

describe("provision's refusals before any host", () => {
  it("a name Let's Encrypt never issues for: a usage error (exit 2), no host tried", async () => {
    const root = testEnv({ domain: 'shop.example.org', tls: { mode: 'letsencrypt', email: 'ops@catalogue.fr' } }, [{ name: 'web1', address: '10.254.0.1', host_key: KEY }], 'prod').root;
    let tried = 0;
    const connector: Connector = async () => {
      tried++;
      throw new OpsError('cannot connect: timed out');
    };
    const r = await runOps(['provision', 'prod'], { root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent' }, connector });
    expect(r.code).toBe(2);
    expect(r.err).toContain("domain shop.example.org is reserved (RFC 2606, 6761, 6762) or never public: Let's Encrypt issues no certificate for it; nothing was done");
    expect(tried).toBe(0);
  });
});

describe('a key file given to --identity that cannot be one', () => {
  it('a path naming no file, or a public key, is a usage error (exit 2) from per-host reports as from the others', async () => {
    const root = testEnv({}, [{ name: 'web1', address: '10.254.0.1', host_key: KEY }], 'prod').root;
    const dir = tempDir();
    writeFileSync(join(dir, 'id.pub'), `${KEY} me@laptop\n`);
    for (const [file, said] of [[join(dir, 'nope'), 'no such file (the SSH key of --identity)'], [join(dir, 'id.pub'), 'holds a public key, not the private key']] as const) {
      for (const argv of [['ping'], ['status'], ['releases']]) {
        const r = await cli(root, ...argv, 'prod', '--identity', file);
        expect(r.code, `${argv.join(' ')} ${file}`).toBe(2);
        expect(r.out + r.err, argv.join(' ')).toContain(said);
      }
    }
  });
});

describe('a deploy with no repository to read', () => {
  it('outside a git checkout, no repository set: a usage error (exit 2) naming both fixes, not a ref said missing', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    for (const argv of [['deploy', 'prod'], ['deploy', 'prod', '--ref', 'v1'], ['deploy', 'prod', '--dry-run'], ['diff', 'prod']]) {
      const r = await cli(root, ...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toBe(
        `error: ${root} is not in a git checkout, and environments/prod/environment.yml sets no repository: ops deploys commits of the app's git repository, and has none to read\n` +
          `  hint: run ops from the app's git checkout (a clone holding this project), or set repository: in environments/prod/environment.yml to the path of the app's clone on this machine\n`,
      );
    }
    // one set that does not exist: the same code
    const missing = testEnv({ repository: '/nonexistent/app' }, undefined, 'prod').root;
    const r = await cli(missing, 'deploy', 'prod');
    expect(r.code).toBe(2);
    expect(r.err).toContain('repository "/nonexistent/app" (environments/prod/environment.yml) is /nonexistent/app, which does not exist');
  });
});

describe('an environment name written otherwise', () => {
  it('a path to its folder (as the shell completes it), upper case, "." or "_" for "-": the name meant is said', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    for (const [typed, meant] of [['environments/prod/', 'prod'], ['./environments/prod/environment.yml', 'prod'], ['prod/', 'prod'], ['PROD', 'prod'], ['qa.eu', 'qa-eu'], ['qa_eu', 'qa-eu']]) {
      const r = await cli(root, 'config', typed!);
      expect(r.code, typed).toBe(2);
      expect(r.err, typed).toContain(`error: invalid environment name ${JSON.stringify(typed)}: expected lower-case letters`);
      expect(r.err, typed).toContain(`hint: did you mean ${meant}? the name of its folder under environments/`);
    }
    expect((await cli(root, 'config', '../x')).err).not.toContain('did you mean');
  });

  it('a path typed from where the command ran (`ops config .` inside environments/prod, `../prod`, a full path, a file in it): the name meant is said', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    const folder = join(root, 'environments', 'prod');
    mkdirSync(join(folder, 'assets'));
    const from = (cwd: string, typed: string) => runOps(['config', typed], { root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent', INIT_CWD: cwd } });
    for (const [cwd, typed] of [[folder, '.'], [folder, './'], [folder, '../prod'], [folder, 'environment.yml'], [join(folder, 'assets'), '..'], [root, folder]] as const) {
      const r = await from(cwd, typed);
      expect(r.code, `${typed} in ${cwd}`).toBe(2);
      expect(r.err, `${typed} in ${cwd}`).toBe(`error: invalid environment name ${JSON.stringify(typed)}: expected lower-case letters, digits and "-", starting with a letter, at most 40 characters (e.g. prod, staging, demo-2)\n  hint: did you mean prod? the name of its folder under environments/ (\`ops env new <name>\` makes one)\n`);
    }
    // out of environments/: nothing is guessed
    expect((await from(folder, '..')).err).not.toContain('did you mean');
  });
});

describe('an option before the command', () => {
  it('(`ops --json deploy prod`) is said to go after it, with the command line reordered; --json still gets its document', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    const json = await cli(root, '--json', 'deploy', 'prod', '--dry-run');
    expect(json.code).toBe(2);
    expect(json.err).toBe('error: unknown command "--json": options go after the command, not before it\n  hint: ops deploy prod --dry-run --json\n');
    expect(JSON.parse(json.out)).toEqual({ ok: false, error: 'unknown command "--json": options go after the command, not before it', hint: 'ops deploy prod --dry-run --json', exitCode: 2 });
    const identity = await cli(root, '-i', 'my key', 'logs', 'prod', '--', '-x');
    expect(identity).toMatchObject({ code: 2, out: '' });
    expect(identity.err).toContain("hint: ops logs prod -i 'my key' -- -x\n");
    expect((await cli(root, '-v')).err).toContain('hint: usage: ops <command> [arguments] [options]');
    // npm's separator carried over (`npx ops -- deploy prod`): said as such
    expect((await cli(root, '--', 'deploy', 'prod')).err).toBe('error: unknown command "--": "--" separates npm\'s words from ops\'s in `npm run ops -- ...`; ops itself takes the command first\n  hint: ops deploy prod\n');
    // one the command does not take: moved as its closest one, or left out, said either way
    expect((await cli(root, '--dryrun', 'deploy', 'prod')).err).toBe('error: unknown command "--dryrun": options go after the command, not before it (--dryrun: did you mean --dry-run?)\n  hint: ops deploy prod --dry-run\n');
    expect((await cli(root, '-v', '--json', 'deploy', 'prod')).err).toBe('error: unknown command "-v": options go after the command, not before it (-v is no option of "ops deploy")\n  hint: ops deploy prod --json\n');
  });
});

describe("a mistyped command of the lab's scripts (npm run sandbox, npm run hosts)", () => {
  // run as npm runs them (tsx), stopping at the argument: no lab is touched
  const lab = (script: string, word: string) =>
    spawnSync(join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'tsx'), ['--import', './scripts/register-text-modules.js', script, word], { cwd: join(import.meta.dirname, '..', '..'), encoding: 'utf8' });
  it('is named, with the command meant, as ops names its own', () => {
    const sandbox = lab('scripts/sandbox.ts', 'stauts');
    expect({ status: sandbox.status, stderr: sandbox.stderr }).toEqual({ status: 2, stderr: 'error: unknown command "stauts" (did you mean "npm run sandbox -- status"?)\n  hint: usage: npm start | npm run sandbox -- up|down|status\n' });
    const hosts = lab('test/hosts/cli.ts', 'snapshto');
    expect({ status: hosts.status, stderr: hosts.stderr }).toEqual({ status: 1, stderr: 'error: unknown command "snapshto" (did you mean "npm run hosts -- snapshot"?)\n  hint: npm run hosts -- help\n' });
    expect(lab('test/hosts/cli.ts', 'zzz').stderr).toBe('error: unknown command "zzz"\n  hint: npm run hosts -- help\n');
  });
});

describe('a positional argument starting with "-"', () => {
  it('read as an unknown option says to give it after -- where one is still to come (a branch named -x), with the command to type', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    for (const [argv, fixed] of [
      [['staging', 'add', '-x'], 'ops staging add -- -x'],
      [['staging', 'add', '--dry-run', '-x'], 'ops staging add --dry-run -- -x'],
      [['staging', 'add', '--remote', 'up', '-x'], 'ops staging add --remote up -- -x'],
    ] as const) {
      const r = await cli(root, ...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toMatch(new RegExp(`^error: unknown option -x for "ops staging add"\n  hint: a <ref> starting with "-" goes after --: ${fixed.replace(/[-]/g, '\\-')}; usage: ops staging add <ref>`));
    }
    // no argument left to give: the usage alone
    expect((await cli(root, 'staging', 'add', 'main', '-x')).err).toMatch(/^error: unknown option -x for "ops staging add"\n  hint: usage: /);
    expect((await cli(root, 'env', 'remove', 'prod', '--bogus')).err).not.toMatch(/goes after --/);
  });
});

describe('a mistyped option', () => {
  it('is named with the closest option of the command (--dryrun: --dry-run), never its value; none when nothing is close', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    for (const [typed, near] of [['--dryrun', '--dry-run'], ['--dry_run', '--dry-run'], ['--DRY-RUN', '--dry-run'], ['--forse', '--force'], ['--jsn=Zq8-value', '--json']] as const) {
      const r = await cli(root, 'env', 'remove', 'prod', typed);
      expect(r.code, typed).toBe(2);
      expect(r.err, typed).toBe(`error: unknown option ${typed.split('=')[0]} for "ops env remove" (did you mean ${near}?)\n  hint: usage: ops env remove <name> [--force] [--dry-run] [--json]\n`);
    }
    expect((await cli(root, 'secrets', 'show', 'prod', '--keys', 'a')).err).toContain('error: unknown option --keys for "ops secrets show" (did you mean --key?)');
    // one dash before a long name, a letter in the other case
    expect((await cli(root, 'deploy', 'prod', '-dry-run')).err).toMatch(/^error: unknown option -dry-run for "ops deploy" \(did you mean --dry-run\?\)\n/);
    expect((await cli(root, 'logs', 'prod', '-N', '3')).err).toMatch(/^error: unknown option -N for "ops logs" \(did you mean -n\?\)\n/);
    // a letter glued to a value is never shown whole
    expect((await cli(root, 'logs', 'prod', '-xZq8-value')).err).toMatch(/^error: unknown option -x for "ops logs"\n/);
    for (const typed of ['--zzzzzz', '-x']) expect((await cli(root, 'env', 'remove', 'prod', typed)).err, typed).toMatch(new RegExp(`^error: unknown option ${typed} for "ops env remove"\n`));
    // a letter no option has: the one long option (without a letter) it starts; when two do, both named, none guessed (deploy: --force, --forward-only)
    expect((await cli(root, 'lock', 'release', 'prod', '-f')).err).toMatch(/^error: unknown option -f for "ops lock release" \(did you mean --force\?\)\n/);
    expect((await cli(root, 'env', 'remove', 'prod', '-d')).err).toMatch(/^error: unknown option -d for "ops env remove" \(did you mean --dry-run\?\)\n/);
    expect((await cli(root, 'deploy', 'prod', '-f')).err).toMatch(/^error: unknown option -f for "ops deploy" \(did you mean --force or --forward-only\?\)\n/);
  });
});

describe('help and version', () => {
  it('`ops --version` prints the version (exit 0), not "unknown command" and the whole help', async () => {
    const root = tempDir();
    const version = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { name: string; version: string };
    for (const flag of ['--version', '-V']) expect(await cli(root, flag)).toMatchObject({ code: 0, out: `${version.name} ${version.version}\n`, err: '' });
  });

  it('`ops --version --json` (either order, -V too) prints the version as JSON; anything else after --version is a usage error, a document with --json', async () => {
    const root = tempDir();
    const version = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { name: string; version: string };
    for (const argv of [['--version', '--json'], ['-V', '--json'], ['--json', '--version']])
      expect(await cli(root, ...argv), argv.join(' ')).toMatchObject({ code: 0, out: `${JSON.stringify({ name: version.name, version: version.version }, null, 2)}\n`, err: '' });
    const extra = await cli(root, '--version', 'deploy');
    expect(extra).toMatchObject({ code: 2, out: '' });
    expect(extra.err).toMatch(/^error: ops --version takes no argument but --json, got "deploy"\n  hint: /);
    const json = await cli(root, '--version', '--bogus', '--json');
    expect(json.code).toBe(2);
    expect(JSON.parse(json.out)).toMatchObject({ ok: false, error: 'ops --version takes no option but --json, got "--bogus"', exitCode: 2 });
  });

  it('a slip of --version or --help, before or after a command, is named with the option meant', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    for (const typed of ['-v', '--verison', '--vesion'])
      expect(await cli(root, typed)).toMatchObject({ code: 2, err: expect.stringMatching(new RegExp(`^error: unknown option ${typed} \\(did you mean "ops --version"\\?\\)\n`)) });
    for (const typed of ['--version', '-V', '--verison'])
      expect((await cli(root, 'ping', 'prod', typed)).err, typed).toMatch(new RegExp(`^error: unknown option ${typed} for "ops ping" \\(did you mean "ops --version"\\?\\)\n`));
    // a command's -v is not taken for the version
    expect((await cli(root, 'ping', 'prod', '-v')).err).toMatch(/^error: unknown option -v for "ops ping"\n/);
    // `ops --help ping` is `ops ping --help`, as `ops help ping` is
    const help = await cli(root, 'ping', '--help');
    expect(help.out).toMatch(/^usage: ops ping <env>/);
    expect(await cli(root, '--help', 'ping')).toEqual(help);
    expect(await cli(root, '-h', 'ping')).toEqual(help);
  });

  it('`ops help <command>` prints that command\'s help as `ops <command> --help` does; `ops help <group>` lists its subcommands; an unknown one is named', async () => {
    const root = tempDir();
    const deploy = await cli(root, 'deploy', '--help');
    expect(deploy.out).toMatch(/^usage: ops deploy <env>/);
    expect(await cli(root, 'help', 'deploy')).toEqual(deploy);
    expect(await cli(root, 'help', 'secrets', 'show')).toEqual(await cli(root, 'secrets', 'show', '--help'));
    const group = await cli(root, 'help', 'secrets');
    expect(group.code).toBe(0);
    expect(group.out).toMatch(/^"ops secrets" subcommands:\n {2}ops secrets \S+/);
    expect(group.out).toContain("\n  ops secrets show <env>");
    const unknown = await cli(root, 'help', 'deplyo');
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/^error: unknown command "deplyo" \(did you mean "ops deploy"\?\)/);
  });
});

describe('a path that is not the file expected', () => {
  it('secrets decrypt or encrypt of a directory, keygen -o into a missing directory: what was wrong and how to fix it', async () => {
    const root = testEnv({}, undefined, 'qb').root;
    const dir = join(root, 'environments', 'qb');
    const decrypt = await cli(root, 'secrets', 'decrypt', dir);
    expect(decrypt.code).toBe(2);
    expect(decrypt.err).toContain(`error: cannot read ${dir}: it is a directory, not a sops-encrypted file`);
    expect(decrypt.err).toContain(`hint: give the path of a sops-encrypted file (e.g. ${dir}/<name>)`);
    const encrypt = await cli(root, 'secrets', 'encrypt', dir);
    expect(encrypt).toMatchObject({ code: 2, err: expect.stringContaining("error: cannot read environments/qb: it is a directory, not a plain YAML or JSON file") });
    // a directory the user named: a file in it to give, not one to move aside (rmdir)
    expect(encrypt.err).toMatch(/hint: give one file in it: \S*environments\/qb\/environment\.yml/);
    expect(encrypt.err).not.toMatch(/rmdir|move it aside/);
    const nodir = join(tempDir(), 'nodir');
    const keygen = await cli(root, 'keygen', '-o', join(nodir, 'x.key'));
    expect(keygen.code).toBe(2);
    expect(keygen.err).toContain(`error: cannot write ${nodir}/x.key: its directory ${nodir} does not exist`);
    expect(keygen.err).toContain(`hint: create it first (mkdir -p ${nodir}), or choose a file in an existing directory`);
    expect(keygen.out).not.toContain('AGE-SECRET-KEY');
    // an existing directory: said so, not "already exists" (the write never overwrites), -o wanting a file's path
    for (const given of [dir, `${dir}/`]) {
      const intoDir = await cli(root, 'keygen', '-o', given);
      expect(intoDir).toMatchObject({ code: 2, out: '' });
      expect(intoDir.err).toBe(`error: cannot write ${given}: it is a directory; -o takes the path of the key file to create\n  hint: give a file path: ops keygen -o ${dir}/age-key.txt\n`);
    }
  });

  it('initdata --file is from the current directory: the file under environments/<env>/ is suggested, not "create" it', async () => {
    const env = testEnv({ domain: 'qa.example.org' }, undefined, 'qa');
    mkdirSync(join(env.dir, 'assets'), { recursive: true });
    writeFileSync(join(env.dir, 'assets', 'initdata.yml'), 'users: []\n');
    const ctx = { root: env.root, reporter: new MemoryReporter(), processEnv: {} };
    const err = await initdata(ctx, env, { file: 'assets/initdata.yml' }).catch((e: Error & { hint?: string }) => e);
    expect((err as Error).message).toBe(`initdata file ${join(process.cwd(), 'assets/initdata.yml')} does not exist (--file is relative to the directory the command was run from, ${process.cwd()}, not to environments/qa/)`);
    const there = join(env.dir, 'assets', 'initdata.yml');
    const shown = relative(process.cwd(), there);
    expect((err as { hint?: string }).hint).toBe(`did you mean ${there}? pass --file ${shown.startsWith('..') ? there : shown}, or leave --file out (it is initdata.file)`);
    expect((err as { hint?: string }).hint).not.toContain('create');
    const none = await initdata(ctx, env, { file: 'nothing.yml' }).catch((e: Error & { hint?: string }) => e);
    expect((none as { hint?: string }).hint).toBe("check the path, or leave --file out to load the environment's initdata.file");
  });
});

describe('relative paths under npm run (INIT_CWD: the directory npm was run from)', () => {
  const fromDir = (root: string, dir: string, ...argv: string[]) => runOps(argv, { root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent', INIT_CWD: dir } });

  it('keygen -o, secrets encrypt/decrypt and initdata --file resolve from INIT_CWD, not the project root', async () => {
    const env = testEnv({ domain: 'qa.example.org' }, undefined, 'qa');
    const assets = join(env.dir, 'assets');
    mkdirSync(assets, { recursive: true });
    // keygen -o from environments/qa: written there (and a warning: a private key inside the project), not at the root
    const kg = await fromDir(env.root, env.dir, 'keygen', '-o', 'mykey.txt');
    expect(kg.code).toBe(0);
    expect(existsSync(join(env.dir, 'mykey.txt'))).toBe(true);
    expect(existsSync(join(env.root, 'mykey.txt'))).toBe(false);
    expect(existsSync(join(process.cwd(), 'mykey.txt'))).toBe(false);
    expect(kg.err).toContain(`private key written to ${join(env.dir, 'mykey.txt')}`);
    expect(kg.out + kg.err).toContain(`${join(env.dir, 'mykey.txt')} is inside the project (${env.root}): never commit it`);
    // a file outside the project: no warning
    const outside = tempDir();
    const kg2 = await fromDir(env.root, outside, 'keygen', '-o', 'k.txt');
    expect(existsSync(join(outside, 'k.txt'))).toBe(true);
    expect(kg2.out + kg2.err).not.toContain('inside the project');
    // secrets encrypt assets/data.yml from environments/qa (the recipient: the key just made, through .sops.yaml)
    const recipient = kg.out.trim();
    writeFileSync(join(env.root, '.sops.yaml'), `creation_rules:\n  - path_regex: (^|/)environments/qa/\n    age: ${recipient}\n`);
    writeFileSync(join(assets, 'data.yml'), 'users: []\n');
    // (run holding that key: encrypting to none of yours is refused)
    const enc = await runOps(['secrets', 'encrypt', 'assets/data.yml'], { root: env.root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent', INIT_CWD: env.dir, SOPS_AGE_KEY_FILE: join(env.dir, 'mykey.txt') } });
    expect(enc.err).toBe('');
    expect(enc.code).toBe(0);
    expect(readFileSync(join(assets, 'data.yml'), 'utf8')).toContain('sops:');
    const dec = await runOps(['secrets', 'decrypt', 'data.yml'], { root: env.root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent', INIT_CWD: assets, SOPS_AGE_KEY_FILE: join(env.dir, 'mykey.txt') } });
    expect(dec).toMatchObject({ code: 0, out: 'users: []\n' });
    // $SOPS_AGE_KEY_FILE named relative starts from there too (npm runs ops from the root: it was looked for there)
    const relativeKey = await runOps(['secrets', 'decrypt', 'data.yml'], { root: env.root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent', INIT_CWD: assets, SOPS_AGE_KEY_FILE: '../mykey.txt' } });
    expect(relativeKey).toMatchObject({ code: 0, out: 'users: []\n', err: '' });
    const noKey = await runOps(['secrets', 'decrypt', 'data.yml'], { root: env.root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent', INIT_CWD: assets, SOPS_AGE_KEY_FILE: 'mykey.txt' } });
    expect(noKey.err).toContain(`error: SOPS_AGE_KEY_FILE: cannot read ${join(assets, 'mykey.txt')}: no such file`);
    // a `~` the shell left (quoted: SOPS_AGE_KEY_FILE='~/...') is the home directory, as in every path typed
    const tildeKey = await runOps(['secrets', 'decrypt', 'data.yml'], { root: env.root, processEnv: { PATH: process.env.PATH, HOME: env.dir, INIT_CWD: assets, SOPS_AGE_KEY_FILE: '~/mykey.txt' } });
    expect(tildeKey).toMatchObject({ code: 0, out: 'users: []\n', err: '' });
    // missing: the path as resolved, and where a relative one starts
    const missing = await fromDir(env.root, env.dir, 'secrets', 'encrypt', 'assets/nope.yml');
    expect(missing.code).toBe(2);
    expect(missing.err).toContain(`error: ${join(assets, 'nope.yml')} does not exist (assets/nope.yml is relative to the directory the command was run from, ${env.dir})`);
    const nodec = await fromDir(env.root, assets, 'secrets', 'decrypt', 'nope.yml');
    expect(nodec.err).toContain(`error: cannot read ${join(assets, 'nope.yml')}: no such file (nope.yml is relative to the directory the command was run from, ${assets})`);
    const init = await fromDir(env.root, assets, 'initdata', 'qa', '--file', 'nope.yml');
    expect(init.code).toBe(2);
    expect(init.err).toContain(`error: initdata file ${join(assets, 'nope.yml')} does not exist (--file is relative to the directory the command was run from, ${assets}, not to environments/qa/)`);
  });

  it('without INIT_CWD (ops run directly), or with one inherited after leaving the package root, paths start from the current directory', async () => {
    const env = testEnv({ domain: 'qa.example.org' }, undefined, 'qa');
    const missing = await cli(env.root, 'secrets', 'encrypt', 'nope.yml');
    expect(missing.err).toContain(`error: ${join(process.cwd(), 'nope.yml')} does not exist (nope.yml is relative to the directory the command was run from, ${process.cwd()})`);
    const npmEnv = (pkg: string) => ({ PATH: process.env.PATH, HOME: '/nonexistent', INIT_CWD: env.dir, npm_package_json: join(pkg, 'package.json') });
    const stale = await runOps(['secrets', 'encrypt', 'nope.yml'], { root: env.root, processEnv: npmEnv(tempDir()) });
    expect(stale.err).toContain(`error: ${join(process.cwd(), 'nope.yml')} does not exist`);
    const underNpm = await runOps(['secrets', 'encrypt', 'nope.yml'], { root: env.root, processEnv: npmEnv(process.cwd()) });
    expect(underNpm.err).toContain(`error: ${join(env.dir, 'nope.yml')} does not exist`);
  });
});

describe('a secret reference to a key holding dots', () => {
  it('is taken as ops env new and secrets set write it, plain or quoted; a malformed one says how to write it', () => {
    const env = testEnv({ env: { TOOLS_ADMIN: { secret: 'passwords.admin@example.org' }, TOOLS_NEW: { secret: 'passwords."new@x.org"' } } }, undefined, 'qa');
    const loaded = loadEnvironment('qa', env.root);
    const rendered = renderDotenv(loaded, { passwords: { 'admin@example.org': 'pw-1', 'new@x.org': 'pw-2' } });
    expect(rendered.environ).toContain('TOOLS_ADMIN=pw-1');
    expect(rendered.environ).toContain('TOOLS_NEW=pw-2');
    for (const bad of ['a..b', 'passwords."x', '.a']) {
      expect(() => testEnv({ env: { X: { secret: bad } } }, undefined, 'qa'), bad).toThrow(/passwords\.admin@example\.org\) or in double quotes \('passwords\."admin@example\.org"', a quote or backslash in it as \\" or \\\\\)/);
    }
  });

  it('takes no list index: list[0] is refused as the secrets commands refuse it, "b[0]" quoted is one key', () => {
    expect(() => testEnv({ env: { X: { secret: 'list[0]' } } }, undefined, 'qa')).toThrow(/no list indexes \(\[ and \] only in a quoted key\)/);
    expect(() => lookup({ list: ['a'] }, 'list[0]')).toThrow('key paths do not index lists');
    const env = testEnv({ env: { X: { secret: '"b[0]"' } } }, undefined, 'qa');
    expect(renderDotenv(loadEnvironment('qa', env.root), { 'b[0]': 'v' }).environ).toContain('X=v');
  });
});

describe('exit status 2 (usage) for a command line that lacks or holds a word it must not, whichever command reads it', () => {
  it('secrets recipients add without its recipient, sync with one; set with nothing on stdin', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    const add = await cli(root, 'secrets', 'recipients', 'prod', 'add');
    expect(add).toMatchObject({ code: 2, err: expect.stringContaining('"secrets recipients prod add" needs a recipient') });
    const sync = await cli(root, 'secrets', 'recipients', 'prod', 'sync', 'age1xyz');
    expect(sync).toMatchObject({ code: 2, err: expect.stringContaining('"sync" takes no recipient') });
    const set = await cli(root, 'secrets', 'set', 'prod', 'smtp_password');
    expect(set).toMatchObject({ code: 2, err: expect.stringContaining('no value on stdin') });
  });
});

describe('an argument that is not UTF-8 (node makes each such byte U+FFFD)', () => {
  it('is said as that, whatever the value is (an environment, a ref, a release id), exit 2', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    for (const argv of [['config', 'pr\uFFFDd'], ['deploy', 'prod', '--ref', 'v\uFFFD1'], ['rollback', 'prod', '--to', '2026\uFFFD']]) {
      const r = await cli(root, ...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toContain('hint: it holds U+FFFD (\uFFFD), what bytes that are not UTF-8 become (a terminal or a script in another encoding, such as latin1): give it in UTF-8');
    }
  });
});

describe('a very long argument (a file pasted as one word, a script gone wrong)', () => {
  it('is quoted cut, its length said, in every error that names it; the --json document stays one document', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    const long = 'b'.repeat(3000);
    for (const argv of [['config', 'prod', long], ['config', long], ['config', 'prod', `--${long}`], ['deploy', 'prod', '--ref', long], [long, 'prod'], ['deploy', long, '--json']]) {
      const r = await cli(root, ...argv);
      const said = argv.map((a) => a.slice(0, 12)).join(' ');
      expect(r.code, said).toBe(2);
      expect(r.err, said).toContain(`${'b'.repeat(58)}…[`);
      expect(r.err, said).not.toContain('b'.repeat(201));
      expect(r.err.split('\n')[0]!.length, said).toBeLessThan(600);
      if (argv.includes('--json')) expect((JSON.parse(r.out) as { error: string }).error).toMatch(/b…\[29\d\d characters\]…b/);
    }
  });
});

describe('--json on a failure', () => {
  it('stdout still holds one JSON document, the error and hint as on stderr, for every command that takes --json', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    for (const argv of [
      ['deploy', 'nope', '--json'],
      ['rollback', 'prod', '--to', 'not-a-release', '--json'],
      ['deploy', 'prod', '--ref', '..', '--json'],
    ]) {
      const r = await cli(root, ...argv);
      expect(r.code).toBe(2);
      const doc = JSON.parse(r.out) as { ok: boolean; error: string; hint?: string; exitCode: number };
      expect(doc).toMatchObject({ ok: false, exitCode: 2 });
      expect(r.err).toContain(`error: ${doc.error}`);
      if (doc.hint) expect(r.err).toContain(`hint: ${doc.hint}`);
    }
    // Deploy, rollback and initdata, failed before any host: the same fields (the environment, the release attempted,
    // live before and now: null, not known, with why no release; each host's; the reason), as once a host was reached.
    const releaseFields = ['environment', 'release', 'releaseNote', 'previous', 'live', 'hosts', 'reason'];
    for (const argv of [
      ['deploy', 'prod', '--ref', '..', '--json'],
      ['rollback', 'prod', '--to', 'not-a-release', '--json'],
      ['initdata', 'prod', '--file', join(root, 'nope.yml'), '--json'],
    ]) {
      const doc = JSON.parse((await cli(root, ...argv)).out) as Record<string, unknown>;
      expect(Object.keys(doc), argv[0]).toEqual(expect.arrayContaining(releaseFields));
      expect(doc, argv[0]).toMatchObject({ environment: 'prod', release: null, previous: null, live: null, reason: expect.any(String) });
      expect((doc.hosts as unknown[]).length, argv[0]).toBeGreaterThan(0);
    }
    // staging add and rebuild (the staging-sync action's): what was attempted (mode, branch, ref) and the reason; no
    // release fields (staging makes no release).
    const staging = JSON.parse((await cli(root, 'staging', 'add', 'feature', '--repo', join(root, 'environments'), '--json')).out) as Record<string, unknown>;
    // (--repo naming no git repository: the command line to fix, exit 2)
    expect(staging).toMatchObject({ ok: false, mode: 'add', staging: 'staging', ref: 'feature', dryRun: false, reason: expect.any(String), exitCode: 2 });
    // Without --json, nothing on stdout; a usage error (exit 2: the arguments not parsed) with --json among them: its
    // document all the same; after `--` it is no flag.
    expect((await cli(root, 'deploy', 'nope')).out).toBe('');
    for (const argv of [['deploy', 'prod', '--json', '--bogus'], ['deploy', '--json'], ['rollback', 'prod', '--json', '--to']]) {
      const r = await cli(root, ...argv);
      expect(JSON.parse(r.out || 'null'), argv.join(' ')).toMatchObject({ ok: false, error: expect.any(String), exitCode: 2 });
    }
    expect((await cli(root, 'deploy', 'prod', '--bogus', '--', '--json')).out).toBe('');
    // --json given to a command that takes none: refused (exit 2), and still the document the script parses
    for (const argv of [['apikey', '--json'], ['secrets', 'show', 'prod', '--json'], ['keygen', '--json']]) {
      const r = await cli(root, ...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(JSON.parse(r.out || 'null'), argv.join(' ')).toEqual({ ok: false, error: `unknown option --json for "ops ${argv.slice(0, argv.length - (argv[0] === 'secrets' ? 2 : 1)).join(' ')}"`, hint: expect.stringMatching(/^usage: /), exitCode: 2 });
    }
  });
});

/** process.exit replaced for a test: `exit` settles with the code the CLI exits with (spy.mockRestore() puts it back). */
function trapExit() {
  let exited!: (code: number | undefined) => void;
  const exit = new Promise<number | undefined>((r) => (exited = r));
  const spy = vi.spyOn(process, 'exit').mockImplementation(((code?: number) => exited(code)) as never);
  return { exit, spy };
}

/** A command `slow` that never ends on its own (only once `exit` settles): `begun` once it runs, after `first`. */
function slowCommand(exit: Promise<unknown>, first: () => unknown = () => undefined) {
  let began!: () => void;
  const begun = new Promise<void>((r) => (began = r));
  const slow = command({ name: 'slow', summary: 'x', args: ['<env>'], options: { json: JSON_OPTION }, run: () => (first(), began(), exit.then(() => 1)) });
  return { slow, begun };
}

describe('--json, a signal outside a run\'s lock (connecting, planning)', () => {
  it('stdout still holds one JSON document (result interrupted, the signal, release fields null saying why), exit 130; none of its own inside a run\'s lock', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    const { exit, spy } = trapExit();
    try {
      // A command still planning when Ctrl-C comes: it never ends on its own.
      // A library's own listeners added meanwhile (proper-lockfile's signal-exit, loaded with the secrets file: it
      // leaves a signal to others) are no run of ours: the CLI still answers.
      const library = () => undefined;
      const { slow, begun } = slowCommand(exit, () => process.on('SIGINT', library).on('SIGTERM', library));
      const run = runOps(['slow', 'prod', '--json'], { root, processEnv: { PATH: process.env.PATH }, commands: [slow] });
      await begun;
      process.emit('SIGINT', 'SIGINT');
      expect(await exit).toBe(130);
      const r = await run;
      expect(JSON.parse(r.out)).toMatchObject({ ok: false, result: 'interrupted', signal: 'SIGINT', command: 'slow', environment: 'prod', release: null, releaseNote: expect.any(String), previous: null, live: null, exitCode: 130 });
      expect(r.err).toContain('error: interrupted by SIGINT');
      process.off('SIGINT', library).off('SIGTERM', library);
      // Inside a run's lock (its handler installed: core/signals.ts): the run stops itself and prints its document; not this one.
      let inside!: () => void;
      const entered = new Promise<void>((r) => (inside = r));
      const own = () => undefined;
      const locked = command({ name: 'locked', summary: 'x', args: ['<env>'], options: { json: JSON_OPTION }, run: async () => {
        handleSignals(own);
        inside();
        await new Promise((r) => setTimeout(r, 50));
        stopHandlingSignals(own);
        return 0;
      } });
      spy.mockClear();
      const r2 = runOps(['locked', 'prod', '--json'], { root, processEnv: { PATH: process.env.PATH }, commands: [locked] });
      await entered;
      process.emit('SIGTERM', 'SIGTERM');
      expect((await r2).out).toBe('');
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
    // The listeners go with the command.
    const before = process.listenerCount('SIGINT');
    await runOps(['slow2', 'prod', '--json'], { root, processEnv: { PATH: process.env.PATH }, commands: [command({ name: 'slow2', summary: 'x', args: ['<env>'], options: { json: JSON_OPTION }, run: async () => 0 })] });
    expect(process.listenerCount('SIGINT')).toBe(before);
  });
});

describe('SIGHUP (the terminal closed, a dropped SSH session to a jump box)', () => {
  it('is answered as SIGINT and SIGTERM are: a run\'s handler gets it, and outside a run --json prints its document and exits 129', async () => {
    const own = vi.fn();
    handleSignals(own);
    try {
      process.emit('SIGHUP', 'SIGHUP');
      expect(own).toHaveBeenCalledWith('SIGHUP');
    } finally {
      stopHandlingSignals(own);
    }
    expect(process.listeners('SIGHUP')).not.toContain(own);
    const root = testEnv({}, undefined, 'prod').root;
    const { exit, spy } = trapExit();
    try {
      const { slow, begun } = slowCommand(exit);
      const run = runOps(['slow', 'prod', '--json'], { root, processEnv: { PATH: process.env.PATH }, commands: [slow] });
      await begun;
      process.emit('SIGHUP', 'SIGHUP');
      expect(await exit).toBe(129);
      expect(JSON.parse((await run).out)).toMatchObject({ ok: false, result: 'interrupted', signal: 'SIGHUP', exitCode: 129 });
    } finally {
      spy.mockRestore();
    }
  });
});

describe('ops config checks what a deploy renders for the hosts', () => {
  it("an unknown placeholder in a program's command (refused as the file is read, with the name meant), and a {release} a spaced base_dir splits: refused by ops config as deploy --dry-run refuses them, all at once", async () => {
    const ok = testEnv({}, undefined, 'qa');
    expect((await cli(ok.root, 'config', 'qa')).code).toBe(0);
    // written by hand: the helper loads what it writes, which the loader now refuses
    const one = testEnv({}, undefined, 'qa');
    const file = join(one.root, 'environments', 'qa', 'environment.yml');
    writeFileSync(file, readFileSync(file, 'utf8').replace(/command: run\n(\s+)port: 3579/, 'command: run --port {prot}\n$1port: 3579').replace(/command: run\n(\s+)port: 3000/, 'command: run {prot}\n$1port: 3000'));
    const r = await cli(one.root, 'config', 'qa');
    expect(r.code).toBe(2);
    expect(r.err).toContain('environments/qa/environment.yml has 2 problems:');
    expect(r.err).toContain('programs.server.command: unknown placeholder {prot} (did you mean {port}?)');
    expect(r.err).toContain('programs.client.command: unknown placeholder {prot}');
    expect(r.err).toMatch(/placeholders: \{release\}/);
    const two = testEnv({ base_dir: '/srv/demo app', programs: { server: { command: '{release}/venv/bin/app', port: 3579, health: '/health' }, client: { command: '{release}/client', port: 3000 } } }, undefined, 'qa');
    const both = await cli(two.root, 'config', 'qa');
    expect(both.code).toBe(2);
    expect(both.err).toContain('2 program settings of qa cannot be given to supervisor as written');
    expect(both.err).toMatch(/programs\.server\.command: \{release\} expands to a path holding a space[^]*programs\.client\.command: \{release\} expands to a path holding a space/);
  });
});
