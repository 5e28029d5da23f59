// What deploys write into supervisor files, read back by supervisor's own code (the PyPI package at the
// version Debian ships, 4.2.5, and the latest release, 4.3.0; installed by scripts/setup-machine.sh), plus
// the POSIX-mode environment reading of supervisor's development branch: every value either reaches the
// program exactly (command argv, environment, directory, log file) or is refused at plan time, naming the
// program and key and never showing the value.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseEnvironment } from '../../core/config/environment.ts';
import { resolveTarget, type Target } from '../../core/target.ts';
import { OpsError } from '../../core/errors.ts';
import { slotConfig } from '../../core/steps/switch.ts';
import { supervisorEnvValue, supervisorValue } from '../../core/supervisor.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
const CACHE = process.env.OPS_TESTHOSTS_CACHE || '/var/cache/ops-testhosts';
const VERSIONS = ['4.2.5', '4.3.0'];
const PARSER = join(import.meta.dirname, '..', 'support', 'supervisor_parse.py');

interface Parsed {
  error?: string;
  programs?: Record<string, { command: string; argv: string[]; environment: Record<string, string>; environment_posix: Record<string, string>; directory: string; stdout_logfile: string }>;
}

function env(programs: Record<string, unknown>): Target {
  const config = parseEnvironment({ app: 'shop', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs, routes: { '/': Object.keys(programs)[0] } }, 'test');
  return resolveTarget({ name: 'test', dir: '/nonexistent', root: '/nonexistent', config, hosts: [{ name: 'web1', address: '192.0.2.1', port: 22, user: 'deploy', hostKey: KEY }], appUser: 'root', baseDir: '/srv/shop', url: 'http://x' });
}

/** Parse one slot file with supervisor `version`, as supervisord would (main file including conf.d/*.conf). */
function parse(version: string, conf: string): Parsed {
  const dir = mkdtempSync(join(tmpdir(), 'ops-supervisor-'));
  mkdirSync(join(dir, 'conf.d'));
  writeFileSync(join(dir, 'main.conf'), `[supervisord]\nlogfile=${dir}/supervisord.log\npidfile=${dir}/supervisord.pid\n[include]\nfiles = conf.d/*.conf\n`);
  // supervisor refuses a log file whose directory does not exist: logs go to the scratch directory here.
  writeFileSync(join(dir, 'conf.d', 'shop-blue.conf'), conf.replaceAll('_logfile=/var/log/shop/', `_logfile=${dir}/`));
  try {
    return JSON.parse(execFileSync(join(CACHE, 'python', `supervisor-${version}`, 'bin', 'python'), [PARSER, join(dir, 'main.conf')], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'pipe'] })) as Parsed;
  } catch (e) {
    return { error: String((e as { stderr?: string }).stderr ?? e) };
  }
}

const installed = VERSIONS.every((v) => existsSync(join(CACHE, 'python', `supervisor-${v}`, 'bin', 'python')));

/** Hard values: either carried exactly or refused. */
const HARD = [
  '100%',
  '%(h)s %(r)s %(s)s',
  '%(program_name)s',
  '%%',
  'say "hi"',
  'say "hi" twice',
  "it's",
  'a,b,c',
  'k=v,k2=v2',
  'C:\\path\\new',
  'trailing\\',
  'two\\\\backslashes',
  "it's C:\\path",
  'spaces  inside  ',
  '  leading and trailing  ',
  'x=y=z',
  'ünïcödé ✓ 日本語 🚀',
  '#hash',
  'a#b',
  'a;b',
  'a ;b',
  'a #b',
  '',
  '"quoted"',
  "'single'",
  'both \' and "',
  'line\nbreak',
  'tab\there',
  '%(here)s',
  '$HOME ${PATH} `id`',
  '$UNSET ${NOPE} `id`',
  'postgresql://u:p%40ss@db/x?sslmode=require',
];

describe('supervisor files, read back by supervisor itself', () => {
  it('supervisor\'s parser is installed (scripts/setup-machine.sh)', () => expect(installed).toBe(true));
  it('a % in a command (gunicorn access log format, env VAR=...) reaches the program exactly, argv and all', () => {
    const commands = {
      gunicorn: "{python} -m gunicorn --access-logformat '%(h)s %(l)s \"%(r)s\" %(s)s' app:app",
      env: 'env LOG_FORMAT=%(h)s {python} -m http.server {port}',
      percent: 'sh -c "echo 100%; exec sleep 1000"',
      names: 'echo %(program_name)s %(ENV_HOME)s',
    };
    const e = env(Object.fromEntries(Object.entries(commands).map(([name, command], i) => [name, { command, port: 4000 + i * 10 }])));
    const conf = slotConfig(e, 'blue', '/srv/shop/releases/r1', 'r1');
    for (const v of VERSIONS) {
      const got = parse(v, conf);
      expect(got.error, `supervisor ${v}`).toBeUndefined();
      expect(got.programs!['shop-blue-gunicorn']!.argv).toEqual(['/usr/bin/python3.11', '-m', 'gunicorn', '--access-logformat', '%(h)s %(l)s "%(r)s" %(s)s', 'app:app']);
      expect(got.programs!['shop-blue-env']!.argv).toEqual(['env', 'LOG_FORMAT=%(h)s', '/usr/bin/python3.11', '-m', 'http.server', '4010']);
      expect(got.programs!['shop-blue-percent']!.argv).toEqual(['sh', '-c', 'echo 100%; exec sleep 1000']);
      expect(got.programs!['shop-blue-names']!.argv).toEqual(['echo', '%(program_name)s', '%(ENV_HOME)s']);
      expect(got.programs!['shop-blue-env']!.environment).toMatchObject({ OPS_RELEASE: 'r1', OPS_SLOT: 'blue' });
    }
  });

  /** Each hard value in a program of its own: accepted ones parsed together, refused ones checked by their error. */
  function sort(make: (value: string) => { command: string; env?: Record<string, string> }, key: RegExp): { conf: string; accepted: Map<string, string> } {
    const programs: Record<string, unknown> = {};
    const accepted = new Map<string, string>();
    HARD.forEach((value, i) => {
      const program = { port: 4000 + i * 10, ...make(value) };
      try {
        slotConfig(env({ [`p${i}`]: program }), 'blue', '/srv/shop/releases/r1', 'r1');
      } catch (e) {
        expect(e, JSON.stringify(value)).toBeInstanceOf(OpsError);
        expect((e as OpsError).message, JSON.stringify(value)).toMatch(key);
        if (value.length > 2 && value !== '%(here)s') expect((e as OpsError).message).not.toContain(value);
        return;
      }
      programs[`p${i}`] = program;
      accepted.set(`shop-blue-p${i}`, value);
    });
    return { conf: slotConfig(env(programs), 'blue', '/srv/shop/releases/r1', 'r1'), accepted };
  }

  it('hard environment values: read back exactly by every version, or refused by name without the value', () => {
    const { conf, accepted } = sort((value) => ({ command: 'run', env: { HARD: value } }), /^programs\.p\d+\.env\.HARD: supervisor cannot carry this value: /);
    expect([...accepted.values()]).toEqual(expect.arrayContaining(['100%', '%(h)s %(r)s %(s)s', 'say "hi" twice', "it's", 'a,b,c', 'C:\\path\\new', 'x=y=z', 'ünïcödé ✓ 日本語 🚀', 'a;b', '', '$UNSET ${NOPE} `id`']));
    for (const v of VERSIONS) {
      const got = parse(v, conf);
      expect(got.error, `supervisor ${v}`).toBeUndefined();
      for (const [program, value] of accepted) {
        expect(got.programs![program]!.environment.HARD, `supervisor ${v}: ${JSON.stringify(value)}`).toBe(value);
        expect(got.programs![program]!.environment_posix.HARD, `POSIX mode: ${JSON.stringify(value)}`).toBe(value);
      }
    }
  });

  it('hard command arguments: the argv supervisor runs is exactly the command\'s, or refused', () => {
    // The command's own syntax is shlex's (POSIX): an argument is written in single quotes, as in a shell.
    const { conf, accepted } = sort((value) => ({ command: `echo '${value.replace(/'/g, "'\\''")}'` }), /programs\.p\d+\.command: (supervisor cannot carry this value: |expected a command line supervisor runs without a shell \(one line\))/);
    expect(accepted.size).toBeGreaterThan(HARD.length - 6);
    for (const v of VERSIONS) {
      const got = parse(v, conf);
      expect(got.error, `supervisor ${v}`).toBeUndefined();
      for (const [program, value] of accepted) expect(got.programs![program]!.argv, `supervisor ${v}`).toEqual(['echo', value]);
    }
  });

  it('most values get through; generated ones are exact or refused (property, fixed seed)', () => {
    let seed = 20261125;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pool = ['%', '(', ')', 's', '"', "'", '\\', ',', '=', ' ', ';', '#', 'a', 'Z', '0', 'é', '日', '🚀', '$', '{', '}', '\t', '\n'];
    const values = Array.from({ length: 300 }, () => Array.from({ length: 1 + Math.floor(rnd() * 12) }, () => pool[Math.floor(rnd() * pool.length)]).join(''));
    const accepted: Record<string, string> = {};
    values.forEach((value, i) => {
      try {
        supervisorEnvValue('x', value);
        accepted[`V${i}`] = value;
      } catch (e) {
        expect(e).toBeInstanceOf(OpsError);
      }
    });
    expect(Object.keys(accepted).length).toBeGreaterThan(100);
    const conf = slotConfig(env({ web: { command: 'run', port: 4000, env: accepted } }), 'blue', '/srv/shop/releases/r1', 'r1');
    for (const v of VERSIONS) {
      const got = parse(v, conf).programs!['shop-blue-web']!;
      for (const [k, value] of Object.entries(accepted)) {
        expect(got.environment[k], `${v} ${JSON.stringify(value)}`).toBe(value);
        expect(got.environment_posix[k], `posix ${JSON.stringify(value)}`).toBe(value);
      }
    }
  });

  it("whitespace at either end is refused as Python's str.isspace() has it (NEL, U+001C-U+001F), which supervisor strips; U+FEFF, which it keeps, is carried", () => {
    const python = join(CACHE, 'python', `supervisor-${VERSIONS[0]}`, 'bin', 'python');
    const spaces = [...(JSON.parse(execFileSync(python, ['-c', 'import json,sys; json.dump("".join(c for c in map(chr, range(0x110000)) if c.isspace()), sys.stdout)'], { encoding: 'utf8' })) as string)];
    expect(spaces).toEqual(expect.arrayContaining(['\u0085', '\u001c', '\u2028', ' ']));
    for (const c of spaces)
      for (const value of [`run x${c}`, `${c}run x`]) expect(() => supervisorValue('programs.web.command', value), JSON.stringify(value)).toThrow(/^programs\.web\.command: supervisor cannot carry this value: (it starts or ends with whitespace|it contains a line break)/);
    // Why: supervisor reads "run x" + NEL as "run x" (a silent change), but keeps U+FEFF.
    const conf = slotConfig(env({ web: { command: 'run x', port: 4000 }, bom: { command: 'run y\ufeff', port: 4010 } }), 'blue', '/srv/shop/releases/r1', 'r1');
    expect(conf).toContain('command=run x\n');
    for (const v of VERSIONS) {
      const got = parse(v, conf.replace('command=run x\n', 'command=run x\u0085\n')).programs!;
      expect(got['shop-blue-web']!.command, v).toBe('run x');
      expect(got['shop-blue-bom']!.argv, v).toEqual(['run', 'y\ufeff']);
    }
  });

  it('paths are encoded too: a % in base_dir reaches directory and log files as written', () => {
    const e = { ...env({ web: { command: 'run', port: 4000, directory: 'sub' } }), baseDir: '/srv/100%shop' };
    const conf = slotConfig(e, 'blue', '/srv/100%shop/releases/r1', 'r1');
    for (const v of VERSIONS) {
      const got = parse(v, conf).programs!['shop-blue-web']!;
      expect(got.directory).toBe('/srv/100%shop/releases/r1/sub');
      expect(got.environment.PATH).toMatch(/^\/srv\/100%shop\/releases\/r1\/venv\/bin:/);
    }
    expect(supervisorValue('k', '/var/log/a%b.log', 2)).toBe('/var/log/a%%%%b.log');
  });
});

describe('every value supervisor cannot carry, in one error', () => {
  it('names each program and key with why, never the value, in one error (not one per run)', () => {
    const secret = 'hunter2';
    const e = env({
      web: { command: 'run', port: 4000, env: { BOTH: `${secret}'"x`, QUOTED: `"${secret}`, GOOD: 'fine', COMMENT: `${secret} ;x` } },
      // (an unknown placeholder is refused before, as the file is read: config.test.ts)
      api: { command: 'run', port: 4010, env: { LINE: `${secret}\nx`, HERE: `%(here)s${secret}` } },
    });
    let err: unknown;
    try {
      slotConfig(e, 'blue', '/srv/shop/releases/r1', 'r1');
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(OpsError);
    const message = (err as OpsError).message;
    expect(message).toMatch(/^5 program settings of test cannot be given to supervisor as written \(nothing was sent to any host\):\n/);
    for (const line of [
      /\n {2}- programs\.web\.env\.BOTH: supervisor cannot carry this value: it holds both kinds of quotes/,
      /\n {2}- programs\.web\.env\.QUOTED: supervisor cannot carry this value: it starts or ends with a quote character/,
      /\n {2}- programs\.web\.env\.COMMENT: supervisor cannot carry this value: it holds a ";" or "#" after a space/,
      /\n {2}- programs\.api\.env\.LINE: supervisor cannot carry this value: it contains a line break/,
      /\n {2}- programs\.api\.env\.HERE: supervisor cannot carry this value: it holds the text "%\(here\)s"/,
    ])
      expect(message).toMatch(line);
    expect(message).not.toContain('GOOD');
    expect(message).not.toContain(secret);
    expect((err as OpsError).hint).toMatch(/environments\/test\/environment\.yml/);
  });

  it('a path placeholder of the command expanding to a path with a space (base_dir "/srv/demo app") is refused: supervisor splits the command line there', () => {
    const e = (command: string) => ({ ...env({ web: { command, port: 4000, directory: 'sub' } }), baseDir: '/srv/demo app' });
    expect(() => slotConfig(e('{release}/venv/bin/python -m api'), 'blue', '/srv/demo app/releases/r1', 'r1')).toThrow(
      /^programs\.web\.command: \{release\} expands to a path holding a space, a quote or a backslash \(base_dir \/srv\/demo app\), which supervisor splits the command line at: the program would not start$/,
    );
    // run by a path relative to its directory: made absolute from it (supervisor looks a path up from its own working directory), quoted
    const conf = slotConfig(e('venv/bin/python -m api {{release}}'), 'blue', '/srv/demo app/releases/r1', 'r1');
    for (const v of VERSIONS) {
      const got = parse(v, conf).programs!['shop-blue-web']!;
      expect(got.argv, v).toEqual(['/srv/demo app/releases/r1/sub/venv/bin/python', '-m', 'api', '{release}']);
      expect(got.directory, v).toBe('/srv/demo app/releases/r1/sub');
    }
  });

  it('one refused value keeps its own message and hint', () => {
    expect(() => slotConfig(env({ web: { command: 'run', port: 4000, env: { BOTH: `a'"b` } } }), 'blue', '/srv/shop/releases/r1', 'r1')).toThrow(/^programs\.web\.env\.BOTH: supervisor cannot carry this value: it holds both kinds of quotes/);
  });
});

describe('commands: what supervisor starts is what the command says, or it is refused when the environment is read', () => {
  const conf = (command: string, directory = 'sub') => slotConfig(env({ web: { command, port: 4000, directory } }), 'blue', '/srv/shop/releases/r1', 'r1');

  /**
   * Run supervisord `version` (from /, as systemd starts it) with the slot file `text` (release /srv/shop/releases/r1
   * moved to `release`) until `done` exists or 8 s pass; supervisorctl's status line of the program.
   */
  async function run(version: string, text: string, release: string, done: string): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), 'ops-supervisord-'));
    mkdirSync(join(dir, 'conf.d'));
    const sock = join(dir, 'sock');
    writeFileSync(
      join(dir, 'main.conf'),
      `[supervisord]\nlogfile=${dir}/supervisord.log\npidfile=${dir}/supervisord.pid\n[unix_http_server]\nfile=${sock}\n[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n[supervisorctl]\nserverurl=unix://${sock}\n[include]\nfiles = conf.d/*.conf\n`,
    );
    writeFileSync(join(dir, 'conf.d', 'shop-blue.conf'), text.replaceAll('/srv/shop/releases/r1', release).replaceAll('_logfile=/var/log/shop/', `_logfile=${dir}/`).replace(/^user=.*\n/m, ''));
    const bin = join(CACHE, 'python', `supervisor-${version}`, 'bin');
    const d = spawn(join(bin, 'supervisord'), ['-n', '-c', join(dir, 'main.conf')], { cwd: '/', stdio: 'ignore' });
    try {
      for (let i = 0; i < 80 && !existsSync(done); i++) await new Promise((r) => setTimeout(r, 100));
      return execFileSync(join(bin, 'supervisorctl'), ['-c', join(dir, 'main.conf'), 'status'], { encoding: 'utf8', cwd: '/' }).trim();
    } catch (e) {
      return String((e as { stdout?: string }).stdout ?? e);
    } finally {
      d.kill();
    }
  }

  it('a first word that is a path relative to the directory (venv/bin/app) is started from that directory, by supervisord itself', async () => {
    for (const v of VERSIONS) {
      const release = mkdtempSync(join(tmpdir(), 'ops-release-'));
      mkdirSync(join(release, 'sub', 'venv', 'bin'), { recursive: true });
      const app = join(release, 'sub', 'venv', 'bin', 'app');
      writeFileSync(app, `#!/bin/sh\nprintf '%s\\n' "$0" "$@" "$PWD" > ${release}/done.tmp && mv ${release}/done.tmp ${release}/done\nexec sleep 60\n`);
      chmodSync(app, 0o755);
      const status = await run(v, conf("venv/bin/app --name 'a b' 100%"), release, join(release, 'done'));
      expect(status, `supervisor ${v}`).toMatch(/STARTING|RUNNING/);
      expect(readFileSync(join(release, 'done'), 'utf8'), v).toBe(`${release}/sub/venv/bin/app\n--name\na b\n100%\n${release}/sub\n`);
    }
  });

  it('a quote not closed or a trailing backslash (shlex refuses it when the program starts) is refused by name', () => {
    for (const [command, why] of [
      ["run --name 'a b", /a single quote is not closed/],
      ['run --name "a b', /a double quote is not closed/],
      ['run x\\', /it ends with a backslash/],
      ['"" x', /first word \(the program to run\) is empty/],
    ] as const) {
      expect(() => conf(command), command).toThrow(new RegExp(`\\n  - programs\\.web\\.command: expected a command line supervisor runs without a shell \\(one line\\), got .*${why.source}`));
      // supervisor itself refuses it when it starts the program
    }
    const python = join(CACHE, 'python', `supervisor-${VERSIONS[0]}`, 'bin', 'python');
    for (const command of ["run --name 'a b", 'run --name "a b', 'run x\\\\'.slice(0, -1)])
      expect(() => execFileSync(python, ['-c', 'import shlex,sys; shlex.split(sys.argv[1])', command], { stdio: 'pipe' }), command).toThrow();
  });

  it("a shell's syntax, which no shell reads for supervisor, is refused with what to write; quoted, it reaches the program as it is", () => {
    for (const [command, why] of [
      ['exec {python} -m api', /"exec" is a shell builtin/],
      ['cd sub && {python} -m api', /"cd" is a shell builtin/],
      ['PYTHONPATH=src {python} -m api', /PYTHONPATH=\.\.\. before the program is not an assignment/],
      ['{python} -m api && echo done', /"&" in "&&" would be given to the program/],
      ['{python} -m api > /tmp/x.log 2>&1', /">" in ">" would be given to the program/],
      ['{python} -m api | tee x', /"\|" in "\|" would be given to the program/],
      ['{python} -m api; echo x', /";" in "api;" would be given to the program/],
      ['{python} -m api --home $HOME', /"\$HOME" is passed as written, never expanded/],
      ['{python} -m api --port ${PORT:-8000}', /"\$\{PORT:-8000\}" is passed as written, never expanded/],
      ['{python} -m api --home "$HOME"', /"\$HOME" is passed as written, never expanded/],
      ['{python} -m api --id `id -u`', /"`id" is passed as written, never expanded/],
      ['{python} -m api --data ~/data', /the "~" starting "~\/data" is passed as written/],
      ['{python} -m api --bind\u00a0127.0.0.1:{port}', /it holds a Unicode space/],
    ] as const)
      expect(() => conf(command), command).toThrow(new RegExp(`\\n  - programs\\.web\\.command: expected a command line supervisor runs without a shell \\(one line\\), got .*${why.source}`));
    const quoted = {
      a: "sh -c 'cd sub && exec sleep 1000 > /dev/null 2>&1 | tee $HOME ~/x'",
      b: 'sh -c "echo 100%; exec sleep 1000"',
      c: "env PYTHONPATH=src {python} -m api --fmt '$x' 'a\u00a0b' x~y a=~ '`' --cost 5$",
      d: 'run {port} \\& \\; \\$HOME',
      e: `run\ta\\ b "it's \\"x\\" \\\\ \t" 'say "hi"' ${'x'.repeat(20000)} date\u00a0+%s`.replace('date\u00a0', "'date\u00a0'"),
    };
    const e = env(Object.fromEntries(Object.entries(quoted).map(([name, command], i) => [name, { command, port: 4000 + i * 10 }])));
    const text = slotConfig(e, 'blue', '/srv/shop/releases/r1', 'r1');
    for (const v of VERSIONS) {
      const got = parse(v, text).programs!;
      expect(got['shop-blue-a']!.argv, v).toEqual(['sh', '-c', 'cd sub && exec sleep 1000 > /dev/null 2>&1 | tee $HOME ~/x']);
      expect(got['shop-blue-b']!.argv, v).toEqual(['sh', '-c', 'echo 100%; exec sleep 1000']);
      expect(got['shop-blue-c']!.argv, v).toEqual(['env', 'PYTHONPATH=src', '/usr/bin/python3.11', '-m', 'api', '--fmt', '$x', 'a\u00a0b', 'x~y', 'a=~', '`', '--cost', '5$']);
      expect(got['shop-blue-d']!.argv, v).toEqual(['run', '4030', '&', ';', '$HOME']);
      expect(got['shop-blue-e']!.argv, v).toEqual(['run', 'a b', 'it\'s "x" \\ \t', 'say "hi"', 'x'.repeat(20000), 'date\u00a0+%s']);
    }
  });
});

describe('placeholders: written otherwise, refused; escaped, literal', () => {
  it('{PORT}, {Port}, { port }, {Python}, {port:Web} (which the program would get as text) are refused with the placeholder meant; ${PORT} and {{PORT}} are not placeholders', () => {
    for (const [written, meant] of [
      ['{PORT}', /write \{port\}; for the text \{PORT\} itself, write \{\{PORT\}\}$/],
      ['{Port}', /write \{port\};/],
      ['{ port }', /write \{port\}$/],
      ['{Python}', /write \{python\};/],
      ['{port:Web}', /write \{port:web\};/],
      ['{port: web}', /write \{port:web\}$/],
      ['{port:Nope}', /write \{port:nope\} with a program's name \(programs: web, api\)/],
    ] as const) {
      for (const program of [{ command: `run ${written}`, port: 4000 }, { command: 'run', port: 4000, env: { APP_PORT: written } }]) {
        const where = program.env ? 'programs.web.env.APP_PORT' : 'programs.web.command';
        let err: OpsError | undefined;
        try {
          slotConfig(env({ web: program, api: { command: 'run', port: 4010 } }), 'blue', '/srv/shop/releases/r1', 'r1');
        } catch (e) {
          err = e as OpsError;
        }
        expect(err, written).toBeInstanceOf(OpsError);
        // refused when the file is read (core/config/placeholders.ts), the placeholder meant in the problem
        expect(err!.message, written).toContain(`\n  - ${where}: ${written} is not a placeholder (they are written in lower case, without spaces), so the program would get that text as it is: `);
        expect(err!.message.split('\n')[1], written).toMatch(meant);
      }
    }
    const conf = slotConfig(env({ web: { command: "run {{PORT}} {port:api} '{}' {{port}}", port: 4000, env: { A: '${PORT}', B: '{{Python}}', C: '{"port": 1}' } }, api: { command: 'run', port: 4010 } }), 'blue', '/srv/shop/releases/r1', 'r1');
    for (const v of VERSIONS) {
      const got = parse(v, conf).programs!['shop-blue-web']!;
      expect(got.argv, v).toEqual(['run', '{PORT}', '4010', '{}', '{port}']);
      expect(got.environment, v).toMatchObject({ A: '${PORT}', B: '{Python}', C: '{"port": 1}' });
    }
  });
});

describe("environment values naming the program's own variables", () => {
  it('PATH: "bin:$PATH", "${HOME}/data", "$OPS_SLOT" or another env key by $NAME (which supervisor does not expand) is refused by name; other $ text is carried', () => {
    for (const [k, value, named] of [
      ['PATH', '{release}/bin:$PATH', 'PATH'],
      ['DATA', '${HOME}/data', 'HOME'],
      ['WHERE', 'slot-$OPS_SLOT', 'OPS_SLOT'],
      ['URL', 'http://127.0.0.1:$APP_PORT/', 'APP_PORT'],
    ] as const) {
      let err: OpsError | undefined;
      try {
        slotConfig(env({ web: { command: 'run', port: 4000, env: { APP_PORT: '{port}', [k]: value } } }), 'blue', '/srv/shop/releases/r1', 'r1');
      } catch (e) {
        err = e as OpsError;
      }
      expect(err?.message, value).toBe(`programs.web.env.${k}: supervisor cannot carry this value: it names $${named}, a variable of the program's environment, which supervisor does not expand: the program would get the text "$${named}"`);
    }
    const conf = slotConfig(env({ web: { command: 'run', port: 4000, env: { PASSWORD: 'pa$$word$UNSET', PRICE: '5$', PATH: '{release}/bin:/usr/bin:/bin' } } }), 'blue', '/srv/shop/releases/r1', 'r1');
    for (const v of VERSIONS) {
      const got = parse(v, conf).programs!['shop-blue-web']!.environment;
      expect(got, v).toMatchObject({ PASSWORD: 'pa$$word$UNSET', PRICE: '5$', PATH: '/srv/shop/releases/r1/bin:/usr/bin:/bin' });
      // what supervisor gives: the text, unexpanded (why $NAME of its own variables is refused)
      expect(parse(v, conf.replace("PRICE='5$'", "PRICE='$HOME'")).programs!['shop-blue-web']!.environment.PRICE, v).toBe('$HOME');
    }
  });
});
