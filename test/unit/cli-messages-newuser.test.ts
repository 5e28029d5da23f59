// What a new user meets first, following the README: an environment's name mistyped on any command (named with
// the one meant, from the project's environments), and an environment.yml pasted into by hand (a value starting
// with a character YAML reads as syntax, such as a known_hosts line; a key given twice): each said by key and line,
// with the fix, exit 1, nothing written.
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runOps } from '../support/cli.ts';
import { KEY, testEnv } from './status.helpers.ts';

const cli = (root: string, ...argv: string[]) => runOps(argv, { root, processEnv: { PATH: process.env.PATH, HOME: '/nonexistent' } });

/** A project with environments prod, staging and qa (copies of one file). */
function project(): string {
  const root = testEnv({}, undefined, 'prod').root;
  for (const name of ['staging', 'qa']) cpSync(join(root, 'environments', 'prod'), join(root, 'environments', name), { recursive: true });
  return root;
}

describe('an environment name mistyped', () => {
  it('is named with the environment meant, whichever command takes it', async () => {
    const root = project();
    for (const [argv, meant] of [
      [['config', 'stagin'], 'staging'],
      [['status', 'prdo'], 'prod'],
      [['lock', 'status', 'qaa'], 'qa'],
      [['logs', 'stagng', 'server'], 'staging'],
      [['deploy', 'prod2', '--dry-run'], 'prod'],
      [['secrets', 'edit', 'stagin'], 'staging'],
      [['secrets', 'show', 'qq'], 'qa'],
      [['env', 'remove', 'stagin'], 'staging'],
    ] as const) {
      const r = await cli(root, ...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toMatch(new RegExp(`^error: no environment "${argv.at(argv[0] === 'logs' ? -2 : argv[0] === 'deploy' ? 1 : -1)}": environments/\\S+ does not exist \\(did you mean ${meant}\\?\\)\n  hint: the environments are prod, qa, staging; a new one is made with \`ops env new <name>\``));
      expect(r.err).not.toMatch(/\n\s+at /);
    }
    // nothing close: no guess, the list only
    expect((await cli(root, 'config', 'zzzzzz')).err).toMatch(/^error: no environment "zzzzzz": environments\/zzzzzz\/environment.yml does not exist\n  hint: the environments are prod, qa, staging;/);
  });

  it('written in a form no name has (qa_, Stagin, prod.): the existing environment meant, not a new name', async () => {
    const root = project();
    for (const [typed, meant] of [['qa_', 'qa'], ['Stagin', 'staging'], ['prod.', 'prod'], ['QA', 'qa']] as const) {
      const r = await cli(root, 'config', typed);
      expect(r.code, typed).toBe(2);
      expect(r.err, typed).toContain(`hint: did you mean ${meant}? the name of its folder under environments/`);
    }
  });
});

describe('environment.yml edited by hand', () => {
  const withLine = (root: string, replace: RegExp, by: string) => {
    const file = join(root, 'environments', 'prod', 'environment.yml');
    writeFileSync(file, readFileSync(file, 'utf8').replace(replace, by));
    return file;
  };
  const hostKeyLine = /host_key: ssh-ed25519\s+\S+/; // as testEnv writes it, folded onto a second line

  it('a value starting with a character YAML reads as syntax (a known_hosts line, a backquoted command): its key, the character, and to quote the value', async () => {
    for (const [value, key, char] of [
      [`host_key: [203.0.113.11]:2222 ${KEY}`, 'host_key', '['],
      [`host_key: |1|c2FsdA==|aGFzaA== ${KEY}`, 'host_key', '|'],
      [`host_key: @cert-authority * ${KEY}`, 'host_key', '@'],
      [`host_key: ${KEY}\napp_user: \`whoami\``, 'app_user', '`'],
      [`host_key: ${KEY}\ndomain: {shop}.example.org`, 'domain', '{'],
    ] as const) {
      const root = testEnv({}, undefined, 'prod').root;
      const file = withLine(root, hostKeyLine, value);
      const before = readFileSync(file, 'utf8');
      const r = await cli(root, 'config', 'prod');
      expect(r.code, value).toBe(2);
      expect(r.err, value).toMatch(new RegExp(`^error: environments/prod/environment.yml:\\d+:\\d+: not valid YAML: the value of ${key} starts with \\${char}, which YAML reads as `));
      expect(r.err, value).toContain(`hint: put the whole value in single quotes: ${key}: '...'`);
      expect(readFileSync(file, 'utf8')).toBe(before);
    }
    // quoted as the hint says, a known_hosts line of a non-standard port is taken
    const root = testEnv({}, undefined, 'prod').root;
    withLine(root, hostKeyLine, `host_key: '[203.0.113.11]:2222 ${KEY}'`);
    const ok = await cli(root, 'config', 'prod');
    expect(ok.code, ok.err).toBe(0);
  });

  it('syntax slips said as what they are, as for a secrets file: a key one space too far in, no space after its colon, a { not closed', async () => {
    for (const [from, to, what] of [
      [/^    port: 3000$/m, '     port: 3000', /:\d+:\d+: not valid YAML: line (\d+) is indented further than the key on line \d+, so YAML reads it as going on with that key's value: indent it as the keys beside it/],
      [/^    port: 3000$/m, '    port:3000', /: not valid YAML: a line with no ": " after its key .*: write it KEY: VALUE/],
      [/^    port: 3000$/m, '    port 3000', /: not valid YAML: a line with no ": " after its key/],
      [/^app: shop$/m, 'app: shop\nssh: { connect_timeout: 5', /: not valid YAML: a \[\.\.\.\] or \{\.\.\.\} not closed before this line/],
    ] as const) {
      const root = testEnv({}, undefined, 'prod').root;
      withLine(root, from, to);
      const r = await cli(root, 'config', 'prod');
      expect(r.code, to).toBe(2);
      expect(r.err, to).toMatch(what);
    }
  });

  it('a key given twice: named, with the line it was first given on', async () => {
    const root = testEnv({}, undefined, 'prod').root;
    withLine(root, /^app: shop$/m, 'app: shop\nref: main\nref: v1');
    const r = await cli(root, 'config', 'prod');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^error: environments\/prod\/environment.yml:(\d+):1: not valid YAML: a key given twice in the same map: ref \(first given at line (\d+)\)\n/);
    const [, dup, first] = /:(\d+):1: .*line (\d+)\)/.exec(r.err)!;
    expect(Number(dup)).toBe(Number(first) + 1);
  });
});

describe('a command typed by the name another tool gives the job', () => {
  it('names the command of ops that does it, never a spelling neighbour doing something else (was: secrets get: "did you mean secrets set?", init: initdata alone, decommission: the whole help)', async () => {
    const root = project();
    for (const [argv, meant] of [
      [['init', 'qa'], '(did you mean "ops env new qa" or "ops initdata qa"?)'],
      [['decommission', 'qa'], '(did you mean "ops env remove qa"?)'],
      [['secrets', 'get', 'qa', 'db.password'], '(did you mean "ops secrets show qa --key db.password"?)'],
      [['secrets', 'list', 'qa'], '(did you mean "ops secrets show qa"?)'],
      [['secrets', 'new', 'qa'], '(did you mean "ops env new qa"?)'],
      [['env', 'create', 'qa'], '(did you mean "ops env new qa"?)'],
      [['unlock', 'qa'], '(did you mean "ops lock release qa"?)'],
    ] as const) {
      const r = await cli(root, ...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err.split('\n')[0], argv.join(' ')).toContain(meant);
      expect(r.err.split('\n')[0], argv.join(' ')).not.toContain('secrets set');
      expect(r.err, argv.join(' ')).not.toMatch(/\n\s+at /);
    }
    // a slip still named as before
    expect((await cli(root, 'deplyo', 'qa')).err).toContain('(did you mean "ops deploy"?)');
  });
});

describe('an option typed by the name another tool gives it', () => {
  it("names the option of ops meant (--tag, --branch: --ref; --release: --to; --tail: --lines), and an environment given as an option (--env qa, -e qa) the line meant, never `-- --env` as if it were an environment's name", async () => {
    const root = project();
    for (const [argv, said] of [
      [['deploy', 'qa', '--tag', 'v1'], 'unknown option --tag for "ops deploy" (did you mean --ref?)'],
      [['diff', 'qa', '--branch=main'], 'unknown option --branch for "ops diff" (did you mean --ref?)'],
      [['rollback', 'qa', '--release', 'x'], 'unknown option --release for "ops rollback" (did you mean --to?)'],
      [['logs', 'qa', '--tail', '5'], 'unknown option --tail for "ops logs" (did you mean --lines?)'],
      [['deploy', '--env', 'qa', '--dry-run'], 'unknown option --env for "ops deploy": the environment is its first argument, not an option (did you mean "ops deploy qa --dry-run"?)'],
      [['status', '-e', 'qa'], 'unknown option -e for "ops status": the environment is its first argument, not an option (did you mean "ops status qa"?)'],
      [['secrets', 'show', '--environment=qa'], 'unknown option --environment for "ops secrets show": the environment is its first argument, not an option (did you mean "ops secrets show qa"?)'],
    ] as const) {
      const r = await cli(root, ...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err.split('\n')[0], argv.join(' ')).toBe(`error: ${said}`);
      expect(r.err, argv.join(' ')).not.toMatch(/goes after --/);
    }
    // an option the command lacks where an environment or a program is still to come: no `--` to give it after
    expect((await cli(root, 'logs', 'qa', '--since', '1h')).err).toBe('error: unknown option --since for "ops logs"\n  hint: usage: ops logs <env> [program] [--lines N] [--follow] [--slot WHICH]\n');
  });
});
