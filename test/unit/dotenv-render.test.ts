// core/dotenv.ts's renderDotenv and environLoader on whole files: secrets of every shape (integers beyond 2^53
// in maps and lists), and the environ loader run by real bash with records named like bash's own variables.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { describe, expect, it } from 'vitest';
import { asString, environLoader, refuseUnreadableSecrets, renderDotenv } from '../../core/dotenv.ts';
import { OpsError } from '../../core/errors.ts';
import { RESERVED_ENV_NAMES } from '../../core/config/env-names.ts';
import { ConfigError } from '../../core/config/environment.ts';
import { environment } from '../support/dotenv-environment.ts';

describe('secrets of every shape', () => {
  it('an integer beyond 2^53 in a map or a list is written as its digits (as sops decrypt --output-type json), at any depth', () => {
    const big = 9007199254740993n;
    expect(asString({ chat_id: big })).toBe('{"chat_id":9007199254740993}');
    expect(asString([big, 2])).toBe('[9007199254740993,2]');
    expect(asString({ a: [{ b: -big, c: 'x"y', d: null, e: [true, 1.5] }] })).toBe('{"a":[{"b":-9007199254740993,"c":"x\\"y","d":null,"e":[true,1.5]}]}');
    // without bigints, exactly what JSON.stringify writes (own "__proto__" keys included), but a float -0 keeps its
    // sign and U+2028 is escaped, as Go's encoding/json (sops's JSON output) writes them (secrets-numbers.test.ts)
    const plain = JSON.parse('{"__proto__":"p","1":[1e21,-0,"é\\u2028"],"z":{"y":{}}}');
    expect(asString(plain)).toBe(JSON.stringify(plain).replace('1e+21,0,', '1e+21,-0,').replace('\u2028', '\\u2028'));
    const env = environment({ IDS: { secret: 'ids' }, LIST: { secret: 'list' } });
    const { dotenv, environ } = renderDotenv(env, { ids: { chat_id: big }, list: [big, 2] });
    expect(dotenv).toContain(`IDS='{"chat_id":9007199254740993}'`);
    expect(dotenv).toContain("LIST='[9007199254740993,2]'");
    expect(environ).toBe('IDS={"chat_id":9007199254740993}\0LIST=[9007199254740993,2]\0');
  });
});

describe('variable names', () => {
  it('"constructor" and "toString" are written like any other name, to the .env, the environ file and the forms', () => {
    const { dotenv, environ, forms } = renderDotenv(environment(JSON.parse('{"constructor": "c", "toString": "t"}')), {});
    expect(dotenv.split('\n').slice(1)).toEqual(["constructor='c'", "toString='t'", '']);
    expect(environ).toBe('constructor=c\0toString=t\0');
    expect(Object.entries(forms)).toEqual([['constructor', 'single-quoted'], ['toString', 'single-quoted']]);
  });

  it('names that differ only in case are refused where python-dotenv reads either: pydantic-settings (the real one) reads them as one setting', () => {
    // the real pydantic-settings, as an API reads its settings: the field for APP_KEY gets app_key's value
    const dir = mkdtempSync(join(tmpdir(), 'ops-pydantic-'));
    writeFileSync(join(dir, '.env'), "APP_KEY='meant-for-the-api'\napp_key='another-variable'\n");
    const code = 'from pydantic_settings import BaseSettings, SettingsConfigDict\nclass S(BaseSettings):\n    model_config = SettingsConfigDict(env_file=".env", extra="ignore")\n    app_key: str\nprint(S().app_key)';
    const py = spawnSync('python3', ['-c', code], { cwd: dir, env: { PATH: process.env.PATH }, encoding: 'utf8' });
    rmSync(dir, { recursive: true, force: true });
    if (py.status === 0) expect(py.stdout.trim()).toBe('another-variable'); // where python3 has pydantic-settings (the dev machines' python)
    expect(() => environment({ APP_KEY: { secret: 'k' }, app_key: 'x' })).toThrow(/env\.app_key: differs from env\.APP_KEY only in case: pydantic-settings .*; rename one/);
    expect(() => environment({ APP_KEY: 'a', App_Key: 'b' }, [{ reader: 'python-dotenv', only: 'APP_' }, 'node-dotenv'])).toThrow(/env\.App_Key: differs from env\.APP_KEY only in case/);
    // python-dotenv not declared, or reading neither name: no one reads them as one
    expect(renderDotenv(environment({ APP_KEY: 'a', app_key: 'b' }, ['node-dotenv', 'shell']), {}).environ).toBe('APP_KEY=a\0app_key=b\0');
    expect(() => environment({ VITE_X: 'a', vite_x: 'b' }, [{ reader: 'python-dotenv', only: 'APP_' }, 'vite'])).not.toThrow();
  });

  it('a secret under a name front-end builds inline into the client bundle (VITE_*, NEXT_PUBLIC_*, a vite reader\'s `only` prefix...) is refused, naming the fix, unless marked public: the real vite build puts it in the JavaScript it serves', async () => {
    // the real vite 8, building as release.build does: the build gets the release's values in its environment (environ)
    const dir = mkdtempSync(join(tmpdir(), 'ops-vite-'));
    writeFileSync(join(dir, 'main.js'), 'document.title = import.meta.env.VITE_STRIPE_SECRET;\n');
    writeFileSync(join(dir, 'index.html'), '<script type="module" src="./main.js"></script>\n');
    const { build } = await import('vite');
    const before = process.env.VITE_STRIPE_SECRET;
    process.env.VITE_STRIPE_SECRET = 'sk-served-to-everyone';
    try {
      const out = await build({ root: dir, logLevel: 'silent', configFile: false, envFile: false, build: { write: false, minify: false } });
      expect(JSON.stringify(out)).toContain('sk-served-to-everyone');
    } finally {
      if (before === undefined) delete process.env.VITE_STRIPE_SECRET;
      else process.env.VITE_STRIPE_SECRET = before;
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => environment({ VITE_STRIPE_SECRET: { secret: 'stripe.secret' } })).toThrow(
      /env\.VITE_STRIPE_SECRET: takes the secret "stripe\.secret", but Vite inlines variables named VITE_\* into the JavaScript the build serves to every visitor, so its value would be public: rename the variable without that prefix .*, or, for a value meant for the browser \(a publishable key\), mark it \{ secret: stripe\.secret, public: true \}/,
    );
    for (const name of ['NEXT_PUBLIC_TOKEN', 'PUBLIC_TOKEN', 'REACT_APP_TOKEN', 'NUXT_PUBLIC_TOKEN', 'EXPO_PUBLIC_TOKEN', 'GATSBY_TOKEN', 'VUE_APP_TOKEN', 'STORYBOOK_TOKEN'])
      expect(() => environment({ [name]: { secret: 't' } }), name).toThrow(new RegExp(`env\\.${name}: takes the secret "t", but .* would be public`));
    // a vite reader's own prefix (its envPrefix) counts too; every one named at once
    expect(() => environment({ APP_PUBLIC_KEY: { secret: 'k' }, VITE_A: { secret: 'a' } }, ['python-dotenv', { reader: 'vite', only: 'APP_PUBLIC_' }])).toThrow(
      /env\.APP_PUBLIC_KEY: takes the secret "k", but vite \(its reader's `only` in dotenv\.readers\) inlines variables named APP_PUBLIC_\*[^]*env\.VITE_A: takes the secret "a"/,
    );
    // marked public, a plain value, or a name no build inlines: taken as before
    const ok = environment({ VITE_STRIPE_PK: { secret: 'stripe.pk', public: true }, VITE_MODE: 'live', STRIPE_SECRET: { secret: 'stripe.secret' }, MY_VITE_X: { secret: 'x' } });
    expect(renderDotenv(ok, { stripe: { pk: 'pk_live_1', secret: 's' }, x: 'y' }).environ).toBe('VITE_STRIPE_PK=pk_live_1\0VITE_MODE=live\0STRIPE_SECRET=s\0MY_VITE_X=y\0');
  });

  it('a secret whose key holds a quote where it needs quotes (a space too) is named with \\" in environment.yml', () => {
    const env = environment({ ROCK: { secret: 'users."Dwayne \\"The Rock\\" Johnson"' }, DIR: { secret: '"C:\\\\dir \\"x\\""' } });
    expect(renderDotenv(env, { users: { 'Dwayne "The Rock" Johnson': 'r1' }, 'C:\\dir "x"': 'd1' }).environ).toBe('ROCK=r1\0DIR=d1\0');
  });

  it('a name the process environment already has is refused naming both and the fix: ignoring case where python-dotenv reads it, the same name where a reader letting the environment win does; a program\'s own env only where shell would assign over it', () => {
    // pydantic-settings matches names ignoring case, and the process environment wins: `path` would read PATH
    expect(() => environment({ path: '/srv/x' })).toThrow(/env\.path: differs only in case from PATH, which ops, in each program's environment \(core\/steps\/switch\.ts\) sets: pydantic-settings .* lets the process environment win, so the app would read PATH's value, not this one; rename env\.path/);
    expect(() => environment({ User: 'x' })).toThrow(/env\.User: differs only in case from USER, which sudo, for the pipeline's commands .* sets/);
    expect(() => environment({ supervisor_process_name: 'x' })).toThrow(/env\.supervisor_process_name: differs only in case from SUPERVISOR_PROCESS_NAME, which supervisor/);
    expect(() => environment({ api_url: 'x' }, undefined, { API_URL: 'y' })).toThrow(/env\.api_url: differs only in case from programs\.server\.env\.API_URL: .*; rename env\.api_url/);
    // the same name as ops, supervisor or the host set for the programs: python-dotenv's and Node's readers let it win
    expect(() => environment({ OPS_SLOT: 'x' }, ['node-dotenv'])).toThrow(/env\.OPS_SLOT: OPS_SLOT, which ops, in each program's environment .* sets too: python-dotenv's and Node's \.env readers let the process environment win, so the app would never see this value; rename env\.OPS_SLOT$/m);
    expect(() => environment({ LANG: 'C.UTF-8' })).toThrow(/env\.LANG: LANG, which supervisord's own environment.*; rename env\.LANG \(to set LANG for the programs themselves, give it in programs\.<program>\.env\)/);
    // systemd sets these for supervisor.service (systemd.exec(5)), and supervisord passes them on to every program
    for (const name of ['INVOCATION_ID', 'JOURNAL_STREAM', 'SYSTEMD_EXEC_PID'])
      expect(() => environment({ [name]: 'x' })).toThrow(new RegExp(`env\\.${name}: ${name}, which systemd, for the service running supervisord \\(supervisor\\.service\\), passed on to each program sets too: .*; rename env\\.${name} \\(to set ${name} for the programs themselves, give it in programs\\.<program>\\.env\\)`));
    expect(() => environment({ journal_stream: 'x' })).toThrow(/env\.journal_stream: differs only in case from JOURNAL_STREAM, which systemd/);
    // a program's own value (APP_PORT: "{port}" per slot) over the .env's is meant, but bash's `. .env` assigns over it
    expect(() => environment({ APP_PORT: '3579' }, undefined, { APP_PORT: '{port}' })).not.toThrow();
    expect(() => environment({ APP_PORT: '3579' }, ['shell'], { APP_PORT: '{port}' })).toThrow(/env\.APP_PORT: programs\.server\.env\.APP_PORT gives that program its own value of this variable, and the shell reader .* assigns the \.env's over it, so that program would run with the \.env's value, not its own; rename env\.APP_PORT, or give both the same text/);
    expect(() => environment({ API_URL: 'https://x' }, ['shell'], { API_URL: 'https://x' })).not.toThrow();
    // not shadowed: USER exactly (the commands get the .env exported over sudo's; supervisor sets none); only shell
    // reading it (bash's `. .env` assigns over the environment); python-dotenv not reading the other case
    expect(() => environment({ USER: 'x' })).not.toThrow();
    expect(() => environment({ OPS_SLOT: 'x' }, ['shell'])).not.toThrow();
    expect(() => environment({ path: 'x' }, ['node-dotenv', 'shell'])).not.toThrow();
    expect(() => environment({ path: 'x' }, [{ reader: 'python-dotenv', only: 'APP_' }, 'node-dotenv'])).not.toThrow();
  });

  it('"__proto__" is refused, saying why: Node\'s .env readers (util.parseEnv, the dotenv package) drop it', async () => {
    const line = "__proto__='x'\nA='1'\n";
    expect(JSON.stringify(parseEnv(line))).toBe('{"A":"1"}');
    for (const dotenv of [await import('dotenv'), await import('dotenv-16')]) expect(JSON.stringify(dotenv.parse(line))).toBe('{"A":"1"}');
    expect(() => environment(JSON.parse('{"__proto__": "x"}'))).toThrow(/env\.__proto__: .*Node's \.env readers drop it .*; give the app this value under another name/);
    expect(() => environment(JSON.parse('{"__proto__": {"secret": "db"}}'))).toThrow(/env\.__proto__: /);
  });
});

/** The OpsError `f` throws (another error thrown on; none: the test fails). */
function fail(f: () => unknown): OpsError {
  try {
    f();
  } catch (e) {
    if (e instanceof OpsError) return e;
    throw e;
  }
  throw new Error('not refused');
}

// A value reaches the release's commands and the app as an environment variable (the environ file, exported):
// Linux starts no program whose environment holds a string longer than MAX_ARG_STRLEN, so such a value is refused
// when the .env is rendered, not met as "Argument list too long" by every command on the host.
describe('a value no reader can carry', () => {
  it('a NUL (a secret sops set stored from "\\u0000", a plain value "a\\0b") is refused by variable, never the value, and the fix offered is to change it, not to drop readers (no reader, no process environment carries one)', () => {
    const env = environment({ TOKEN: { secret: 'token' }, PLAIN: 'pl\0ain-v4lue' }, ['python-dotenv', 'node-dotenv', 'vite']);
    for (const e of [fail(() => renderDotenv(env, { token: 'nul\0-t0ken-4f9a' })), fail(() => refuseUnreadableSecrets(env, {}, { token: 'nul\0-t0ken-4f9a' }))]) {
      expect(e.message).toMatch(/TOKEN \(secret "token"; read by [^)]*\): it holds a NUL character/);
      expect(`${e.message} ${e.hint}`).not.toMatch(/t0ken|pl.?ain-v4lue/);
      expect(e.hint).toContain('change the value');
      expect(e.hint).not.toContain('dotenv.readers');
    }
    // beside a value a reader cannot carry, only that reader is named as one to drop
    const both = fail(() => renderDotenv(environment({ A: { secret: 'a' }, B: { secret: 'b' } }), { a: 'nul\0-t0ken-4f9a', b: 'x${HOME}y-4f9a' }));
    expect(both.hint).toContain('drop python-dotenv from dotenv.readers');
    expect(both.hint).not.toContain('node-dotenv');
  });
});

describe('a key path that names two secrets', () => {
  it('db.password beside both a key "db.password" and db: { password } is refused, naming both spellings, never a value; each quoted one is taken as written', () => {
    const secrets = { 'db.password': 'top-v4lue-4f9a', db: { password: 'nested-v4lue-4f9a' }, mail: { 'admin@example.org': 'mail-v4lue-4f9a' } };
    const e = fail(() => renderDotenv(environment({ DB_PASSWORD: { secret: 'db.password' } }), secrets));
    expect(e.message).toBe('the key path "db.password" names two secrets: the key "db.password", and the key password inside db');
    expect(e.hint).toContain(`'"db.password"' for the first, '"db"."password"' for the second`);
    expect(`${e.message} ${e.hint}`).not.toMatch(/v4lue/);
    const env = environment({ TOP: { secret: '"db.password"' }, NESTED: { secret: '"db"."password"' }, MAIL: { secret: 'mail.admin@example.org' } });
    expect(renderDotenv(env, secrets).environ).toBe('TOP=top-v4lue-4f9a\0NESTED=nested-v4lue-4f9a\0MAIL=mail-v4lue-4f9a\0');
  });
});

describe('a value too long for a process environment', () => {
  /** Real bash loading an environ file holding `NAME=VALUE` of `length` bytes, then starting a program. */
  const startsAProgram = (length: number): boolean => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-environ-'));
    writeFileSync(join(dir, 'environ'), `BIG=${'x'.repeat(length - 4)}\0`);
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', `set -euo pipefail\n${environLoader(join(dir, 'environ'))}\n/bin/true`], { env: { PATH: '/usr/bin:/bin' }, encoding: 'utf8' });
    rmSync(dir, { recursive: true, force: true });
    return r.status === 0;
  };

  it('is refused at its length (NAME=VALUE of 128 KiB), by variable and size, never the value; one byte shorter is written', () => {
    // the kernel's limit, as real bash meets it: NAME=VALUE and its NUL within 128 KiB start programs, one byte more none
    expect(startsAProgram(131_071)).toBe(true);
    expect(startsAProgram(131_072)).toBe(false);
    const secret = 'Zq8-long-secret-'.repeat(8192).slice(0, 131_072 - 'BIG='.length);
    const env = environment({ BIG: { secret: 'blob' }, SMALL: 'ok' });
    const fits = renderDotenv(env, { blob: secret.slice(1) });
    expect(fits.environ).toBe(`BIG=${secret.slice(1)}\0SMALL=ok\0`);
    expect(() => renderDotenv(env, { blob: secret })).toThrow(/^1 \.env value of t is too long for a process environment: .*Argument list too long.*\n {2}- BIG \(secret "blob"\): 131068 bytes$/);
    let message = '';
    try {
      renderDotenv(environment({ BIG: 'é'.repeat(70_000) }), {});
    } catch (e) {
      message = `${(e as OpsError).message}\n${(e as OpsError).hint}`;
    }
    // counted in UTF-8 bytes, as the kernel counts; a plain value is named as one
    expect(message).toContain('  - BIG (a plain value in environment.yml): 140000 bytes');
    expect(message).toContain('a larger value belongs in a file the app reads by its path');
    expect(message).not.toContain('éé');
  });

  it('a .env of more than 1 MiB in all is refused, naming its largest variables by size, at render and when a change makes it larger', () => {
    // the kernel's limit in all, as real bash meets it: 17 variables of 130 000 bytes (2 MiB with an 8 MiB stack) start no program
    const dir = mkdtempSync(join(tmpdir(), 'ops-environ-'));
    writeFileSync(join(dir, 'environ'), Array.from({ length: 17 }, (_, i) => `V${i}=${'x'.repeat(130_000)}\0`).join(''));
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', `${environLoader(join(dir, 'environ'))}\n/bin/true`], { env: { PATH: '/usr/bin:/bin' }, encoding: 'utf8' });
    rmSync(dir, { recursive: true, force: true });
    expect(r.stderr).toContain('Argument list too long');
    const blob = (i: number) => `Zq8-blob-${i}-`.repeat(12_000).slice(0, 120_000);
    const env = environment(Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`B${i}`, { secret: `b${i}` }])));
    const secrets = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`b${i}`, blob(i)]));
    expect(() => renderDotenv(env, secrets)).toThrow(/^the \.env of t takes 1080108 bytes of a process environment, more than the 1024 KiB ops leaves it: .*Argument list too long.*\(nothing was sent to any host\); the largest:\n {2}- B0: 120012 bytes\n(?: {2}- B\d: 120012 bytes\n){3} {2}- B4: 120012 bytes$/);
    const { b8: _, ...eight } = secrets;
    expect(renderDotenv(env, { ...eight, b8: 'small' }).environ).toContain('B8=small\0');
    // ops secrets set / edit: the change that makes it larger is refused, one that makes it smaller is not
    const how = { command: 'set' as const, untouched: 'nothing was written' };
    expect(() => refuseUnreadableSecrets(env, { ...eight, b8: 'small' }, secrets, how)).toThrow(/^the \.env of t takes 1080108 bytes .*\(nothing was written\)/);
    expect(() => refuseUnreadableSecrets(env, secrets, { ...secrets, b0: 'smaller now' }, how)).not.toThrow();
  });
});

// The environ loader in real bash: each record reaches the commands exactly, and none changes the script.
describe("the pipeline's own commands get the environ file's variables, and nothing else changes", () => {
  /** Bash 5.2's manual, "Shell Variables" (and 5.3's additions): every name bash gives a meaning of its own. */
  const BASH_NAMES = `_ BASH BASHOPTS BASHPID BASH_ALIASES BASH_ARGC BASH_ARGV BASH_ARGV0 BASH_CMDS BASH_COMMAND BASH_EXECUTION_STRING
    BASH_LINENO BASH_LOADABLES_PATH BASH_MONOSECONDS BASH_REMATCH BASH_SOURCE BASH_SUBSHELL BASH_TRAPSIG BASH_VERSINFO BASH_VERSION COMP_CWORD
    COMP_KEY COMP_LINE COMP_POINT COMP_TYPE COMP_WORDBREAKS COMP_WORDS COPROC DIRSTACK EPOCHREALTIME EPOCHSECONDS EUID FUNCNAME GROUPS HISTCMD
    HOSTNAME HOSTTYPE LINENO MACHTYPE MAPFILE OLDPWD OPTARG OPTIND OSTYPE PIPESTATUS PPID PWD RANDOM READLINE_ARGUMENT READLINE_LINE
    READLINE_MARK READLINE_POINT REPLY SECONDS SHELLOPTS SHLVL SRANDOM UID BASH_COMPAT BASH_ENV BASH_XTRACEFD CDPATH CHILD_MAX COLUMNS
    COMPREPLY EMACS ENV EXECIGNORE FCEDIT FIGNORE FUNCNEST GLOBIGNORE GLOBSORT HISTCONTROL HISTFILE HISTFILESIZE HISTIGNORE HISTSIZE
    HISTTIMEFORMAT HOME HOSTFILE IFS IGNOREEOF INPUTRC INSIDE_EMACS LANG LC_ALL LC_COLLATE LC_CTYPE LC_MESSAGES LC_NUMERIC LC_TIME LINES MAIL
    MAILCHECK MAILPATH OPTERR PATH POSIXLY_CORRECT PROMPT_COMMAND PROMPT_DIRTRIM PS0 PS1 PS2 PS3 PS4 SHELL TIMEFORMAT TMOUT TMPDIR auto_resume
    histchars`.split(/\s+/);
  /** What bash reads only when interactive, and the locale and host settings apps need: allowed. */
  const ALLOWED = `HOSTNAME HOSTTYPE MACHTYPE OSTYPE COLUMNS LINES CHILD_MAX COMPREPLY COMP_WORDBREAKS EMACS INSIDE_EMACS ENV FCEDIT FIGNORE
    HISTCONTROL HISTFILE HISTFILESIZE HISTIGNORE HISTSIZE HISTTIMEFORMAT HOSTFILE IGNOREEOF INPUTRC MAIL MAILCHECK MAILPATH PROMPT_COMMAND
    PROMPT_DIRTRIM PS0 PS1 PS2 PS3 SHELL TMPDIR auto_resume histchars LANG LC_ALL LC_COLLATE LC_CTYPE LC_MESSAGES LC_NUMERIC LC_TIME`.split(/\s+/);

  /**
   * Run `environLoader` on `records` (after a first file that does not exist) in bash as a step's script runs it
   * (set -euo pipefail), then a probe of how the script runs (word splitting, globs, cd, getopts, $0, a child bash
   * script, read, command lookup, ~, functions, time, xtrace) and the child's environment (env -0).
   */
  function load(records: [string, string][]): { probe: string; stderr: string; child: Map<string, string> } {
    const dir = mkdtempSync(join(tmpdir(), 'ops-environ-'));
    writeFileSync(join(dir, 'environ'), records.map(([k, v]) => `${k}=${v}\0`).join(''));
    mkdirSync(join(dir, 'd', 'sub'), { recursive: true });
    for (const f of ['.hidden', 'a', 'b']) writeFileSync(join(dir, 'd', f), '');
    writeFileSync(join(dir, 'child.sh'), 'echo child bash ran only this\n');
    const script = `set -euo pipefail
cd ${JSON.stringify(dir)}
${environLoader(join(dir, 'absent'), join(dir, 'environ'))}
v="a b:c"; printf '[%s]' $v d/*; echo
cd d; cd sub; pwd; cd ../..
set -- -x 1 rest; while getopts x: o; do printf 'opt %s=%s\\n' "$o" "$OPTARG"; done
printf '0=%s\\n' "$0"
bash child.sh
read -r l <<< 'x y'; echo "read $l"
type -P env; echo ~root
f() { echo function ran; }; f
t=$( { time true; } 2>&1 ); echo "time said ${'$'}{#t} characters"
set -x; : traced; set +x
echo "$((6 * 7))"
env -0 > child.env
echo done`;
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script, 'step'], { env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' }, encoding: 'utf8' });
    const child = new Map<string, string>();
    if (r.status === 0)
      for (const rec of readFileSync(join(dir, 'child.env'), 'utf8').split('\0').slice(0, -1)) child.set(rec.slice(0, rec.indexOf('=')), rec.slice(rec.indexOf('=') + 1));
    rmSync(dir, { recursive: true, force: true });
    return { probe: `${r.status}\n${r.stdout.replaceAll(dir, 'DIR')}`, stderr: r.stderr, child };
  }
  const base = load([]);

  it("records named like any variable the loader could use (kv, environ_file) reach the commands exactly; the script runs as without them", () => {
    const records: [string, string][] = [['A', '1'], ['kv', 'mine'], ['environ_file', 'x'], ['file', 'y'], ['f', 'z'], ['B', ' 2 \n$(id) `id` \\ * ']];
    const { probe, stderr, child } = load(records);
    expect(probe).toBe(base.probe);
    expect(base.probe).toContain('[a][b:c][d/a][d/b][d/sub]\nDIR/d/sub\nopt x=1\n0=step\nchild bash ran only this\nread x y\n');
    expect(stderr).toBe(base.stderr);
    for (const [k, v] of records) expect(child.get(k), k).toBe(v);
    expect(child.has('REPLY')).toBe(false);
  });

  it("names bash gives a meaning of its own, and the pipeline's, are refused by the config, each with its reason", () => {
    const refused = BASH_NAMES.filter((n) => !ALLOWED.includes(n));
    expect([...RESERVED_ENV_NAMES.keys()].sort()).toEqual([...refused, 'OPS_CONNECTION', 'OPS_RUN', 'OPS_STEP_TIMEOUT', 'OPS_INITDATA_FILE', '__proto__'].sort());
    for (const name of [...refused, 'OPS_CONNECTION']) {
      let problems: string[] = [];
      try {
        environment({ A: '1', [name]: 'x' });
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        problems = e.problems.map((p) => `${p.path}: ${p.message}`);
      }
      expect(problems, name).toEqual([expect.stringMatching(new RegExp(`^env\\.${name}: expected a variable name, not one of bash's or the pipeline's own, got "${name}" \\(.+; give the app this value under another name\\)$`))]);
    }
    expect(() => environment({ IFS: ':' })).toThrow(/env\.IFS: .*bash splits words/);
    expect(() => environment({ BASH_ENV: '/x' })).toThrow(/env\.BASH_ENV: .*every bash script the commands start sources BASH_ENV/);
  });

  it('the bash names left allowed (interactive-only, locale, host) reach the commands exactly, and the script runs as without them', () => {
    const hostile = [':', 'x y', '/tmp', '$(echo INJECTED)', '1'];
    for (const name of ALLOWED) {
      const values = name.startsWith('LC_') || name === 'LANG' ? ['C.UTF-8', 'C'] : hostile;
      for (const value of values) {
        const { probe, stderr, child } = load([[name, value]]);
        expect(probe, `${name}=${value}`).toBe(base.probe);
        expect(stderr, `${name}=${value}`).toBe(base.stderr);
        expect(child.get(name), `${name}=${value}`).toBe(value);
      }
    }
  });
});
