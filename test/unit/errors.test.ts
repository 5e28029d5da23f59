// No stack trace ever reaches a user: every kind of low-level failure (the SSH library, sockets, DNS, a
// bug) is fed through the top level of the CLI and of an action, at each place it can happen (connecting,
// a step, an upload), and what comes out is one message naming the host, and a hint.
import { PROVISIONED_KEYS } from '../../core/steps/system.ts';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import type { Connector } from '../../core/context.ts';
import { runAction } from '../../core/action.ts';
import { describeLowLevel, formatError, installScriptHint, messageLine, OpsError, readOnlySetHint, removedModuleHint, sourceBuildHint, StepError, translateError } from '../../core/errors.ts';
import { RecordingRemote } from '../../core/remote/recording.ts';
import type { Remote, RunOptions, Step, StepResult, UploadOptions } from '../../core/remote/types.ts';
import { LOCK_KEYS } from '../../core/steps/lock.ts';
import { RELEASE_KEYS } from '../../core/steps/release.ts';
import { environDigest, INITDATA_KEYS } from '../../core/steps/initdata.ts';
import { opsLines } from './reports.helpers.ts';
import { runOps } from '../support/cli.ts';
import { allCommands } from '../../scripts/commands/index.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ops-errors-'));
  writeFileSync(join(root, 'package.json'), '{}');
  mkdirSync(join(root, 'environments', 'x'), { recursive: true });
  writeFileSync(
    join(root, 'environments', 'x', 'environment.yml'),
    stringify({ app: 'sample', hosts: [{ name: 'web1', address: '192.0.2.1', host_key: KEY }], programs: { server: { command: 'run', port: 3579 } }, routes: { '/': 'server' } }),
  );
  writeFileSync(join(root, 'data.yml'), 'users: []\n');
});

const ssh2 = (message: string, extra: Record<string, unknown>) => Object.assign(new Error(message), extra);

/** What ssh2, Node's sockets and DNS throw, as they throw it; and what a user must read instead. */
const KINDS: [string, () => unknown, RegExp][] = [
  ['connection refused', () => ssh2('connect ECONNREFUSED 192.0.2.1:22', { code: 'ECONNREFUSED', level: 'client-socket' }), /connection refused/],
  ['no route', () => ssh2('connect EHOSTUNREACH 192.0.2.1:22', { code: 'EHOSTUNREACH', level: 'client-socket' }), /no route to the host/],
  ['DNS', () => ssh2('getaddrinfo ENOTFOUND web1.example', { code: 'ENOTFOUND', level: 'client-dns' }), /does not resolve/],
  ['connection reset', () => ssh2('read ECONNRESET', { code: 'ECONNRESET', level: 'client-socket' }), /closed by the other end/],
  ['broken pipe', () => ssh2('write EPIPE', { code: 'EPIPE' }), /closed by the other end/],
  ['closed before the handshake (a port of another server: nginx answers 400 and closes)', () => ssh2('Connection lost before handshake', { level: 'client-socket' }), /closed before the SSH handshake/],
  ['keepalive timeout', () => ssh2('Keepalive timeout', { level: 'client-timeout' }), /stopped answering/],
  ['handshake timeout', () => ssh2('Timed out while waiting for handshake', { level: 'client-timeout' }), /no answer before the timeout/],
  ['channel refused', () => ssh2('(SSH) Channel open failure: open failed', { reason: 1 }), /refused to open a session/],
  ['SFTP stream corrupted by a chatty shell', () => ssh2('Packet length 1466264675 exceeds max length of 262144', { level: 'protocol' }), /login shell/],
  ['handshake failure', () => ssh2('Handshake failed: no matching key exchange algorithm', { level: 'handshake' }), /handshake failed/],
  ['protocol error', () => ssh2('Bad packet length', { level: 'protocol' }), /SSH protocol error: Bad packet length/],
  ['closed connection', () => new Error('Not connected'), /already closed/],
  ['closed with a request pending', () => new Error('No response from server'), /closed before the host answered/],
  ['a bug', () => new TypeError("Cannot read properties of undefined (reading 'x')"), /Cannot read properties of undefined/],
  ['not even an Error', () => 'a string', /a string/],
];

type Phase = 'connect' | 'step' | 'upload';

/** A host whose connection, first step or first upload fails with `error`; everything else answers. */
function failing(phase: Phase, error: () => unknown): Connector {
  return async () => {
    if (phase === 'connect') throw error();
    // The live release runs with what environment x renders now (no env: an empty environ), so initdata goes on.
    const fake = new RecordingRemote('web1', 'deploy', 'sample', (step) =>
      step.name === 'lock'
        ? { stdout: opsLines({ ...PROVISIONED_KEYS, ...LOCK_KEYS, ...RELEASE_KEYS }, 'lock acquired', 'provisioned 2026-11-01T00:00:00Z', 'current 20261125T120000Z-0123456789ab') }
        : step.name === 'initdata settings'
          ? { stdout: opsLines(INITDATA_KEYS, `environ_digest ${environDigest('')}`) }
          : undefined,
    );
    let thrown = false;
    const once = <T>(p: Phase, fn: () => Promise<T>): Promise<T> => {
      if (p === phase && !thrown) {
        thrown = true;
        return Promise.reject(error());
      }
      return fn();
    };
    const remote: Remote = {
      name: fake.name,
      login: fake.login,
      connection: fake.connection,
      run: (step: Step, options?: RunOptions): Promise<StepResult> => once('step', () => fake.run(step, options)),
      upload: (content: string | Buffer, path: string, options?: UploadOptions) => once('upload', () => fake.upload(content, path, options)),
      inFlight: () => fake.inFlight(),
      started: () => fake.started(),
      whenIdle: () => fake.whenIdle(),
      halt: (reason: string) => fake.halt(reason),
      close: () => Promise.reject(new Error('close failed too')), // never hides the first error
    };
    return remote;
  };
}

function expectOneMessage(text: string, kind: RegExp): void {
  expect(text).toMatch(kind);
  expect(text).not.toMatch(/^\s+at /m); // no stack frame
  expect(text).not.toMatch(/\b(TypeError|Error): /);
}

describe('a connection failure in words', () => {
  // The user's next step is part of the message: a lost connection (sshd's process for it killed, a reboot) too.
  it.each(KINDS.filter(([name]) => name !== 'a bug' && name !== 'not even an Error'))('%s: says what to do (a hint)', (_name, error) => {
    expect(describeLowLevel(error())?.hint).toMatch(/\w/);
  });
});

describe('the CLI: one message naming the host, never a stack trace', () => {
  for (const phase of ['connect', 'step', 'upload'] as const) {
    it.each(KINDS)(`${phase}: %s`, async (_name, error, kind) => {
      const r = await runOps(['initdata', 'x', '--file', join(root, 'data.yml')], { root, processEnv: { PATH: process.env.PATH }, connector: failing(phase, error) });
      expect(r.code).toBe(1);
      expect(r.err.startsWith('error: ')).toBe(true);
      expect(r.err).toContain('web1');
      expect(r.err).toContain(phase === 'connect' ? 'connecting to web1' : phase === 'step' ? 'step "lock"' : 'upload of /srv/sample/.ops/uploads/');
      expectOneMessage(r.err, kind);
    });
  }

  it('a bug says so and how to see more; OPS_DEBUG=1 shows the stack', async () => {
    const r = await runOps(['lock', 'status', 'x'], { root, processEnv: {}, connector: failing('step', () => new TypeError('boom')) });
    expect(r.err).toMatch(/^error: step "lock status" on web1 failed: boom\n {2}hint: if this keeps happening, report it \(run again with OPS_DEBUG=1 to see where it happened\)\n$/);
    expect(formatError(new TypeError('boom'), {})).toBe('internal error: boom\n  hint: this is a bug in ops-pipeline: run again with OPS_DEBUG=1 to see where it happened, and report it');
    expect(formatError(new TypeError('boom'), { OPS_DEBUG: '1' })).toMatch(/\n {4}at /);
    // What that hint promises: the unexpected error's stack, also when it was said as a step's failure.
    const said = translateError(new TypeError('boom'), 'web1', 'step "lock status" on web1');
    expect(formatError(said, {})).toBe('step "lock status" on web1 failed: boom\n  hint: if this keeps happening, report it (run again with OPS_DEBUG=1 to see where it happened)');
    expect(formatError(said, { GITHUB_ACTIONS: 'true' })).toMatch(/report it \(re-run the job with debug logging \(Re-run jobs, then "Enable debug logging"\) to see where it happened\)$/);
    expect(formatError(said, { OPS_DEBUG: '1' })).toMatch(/^step "lock status" on web1 failed: boom\n {2}hint: if this keeps happening, report it\nTypeError: boom\n {4}at /);
  });

  it('in a GitHub Actions job, a bug points at a re-run with debug logging (RUNNER_DEBUG=1), which shows the stack; no stack otherwise', () => {
    const actions = { GITHUB_ACTIONS: 'true' };
    expect(formatError(new TypeError('boom'), actions)).toBe('internal error: boom\n  hint: this is a bug in ops-pipeline: re-run the job with debug logging (Re-run jobs, then "Enable debug logging") to see where it happened, and report it');
    expect(formatError(new TypeError('boom'), { ...actions, RUNNER_DEBUG: '1' })).toMatch(/\n {4}at /);
    expect(formatError(new TypeError('boom'), { RUNNER_DEBUG: '1' })).not.toMatch(/\n {4}at /); // outside Actions: OPS_DEBUG only
  });

  it('a number option takes digits in its range, parsed once, and an option with choices one of them (usage error, exit 2, before any host is reached)', async () => {
    const usage = async (argv: string[]) => runOps(argv, { root, processEnv: {}, connector: failing('connect', () => new Error('never reached')) });
    for (const [argv, message] of [
      [['audit', 'x', '--lines', 'abc'], '--lines needs a whole number from 1 to 2147483647, got "abc"'],
      [['audit', 'x', '--lines', '0'], '--lines needs a whole number from 1 to 2147483647, got "0"'],
      [['logs', 'x', '--lines=-5'], '--lines needs a whole number from 0 to 10000, got "-5"'],
      [['logs', 'x', '-n', '1e3'], '--lines needs a whole number from 0 to 10000, got "1e3"'],
      [['staging', 'rebuild', '--retries', '100'], '--retries needs a whole number from 0 to 99, got "100"'],
      [['logs', 'x', '--slot', 'green'], '--slot must be one of live, previous, both, got "green"'],
      // a near miss of a choice is named, as a mistyped option is
      [['logs', 'x', '--slot', 'prev'], '--slot must be one of live, previous, both, got "prev" (did you mean previous?)'],
      [['logs', 'x', '--slot', 'lve'], '--slot must be one of live, previous, both, got "lve" (did you mean live?)'],
    ] as const) {
      const r = await usage([...argv]);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toMatch(new RegExp(`^error: ${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n(  hint: [^\n]*\n)?$`));
    }
    // every number option of every command: the range it takes and the usage in its hint
    let numbers = 0;
    for (const c of allCommands) {
      for (const [name, spec] of Object.entries(c.options ?? {})) {
        if (spec.type !== 'number') continue;
        const r = await usage([...c.name.split(' '), ...(c.args ?? []).filter((a) => a.startsWith('<')).map(() => 'x'), `--${name}`, 'x']);
        expect(r.code, `${c.name} --${name} x`).toBe(2);
        const range = `from ${spec.min ?? 0} to ${spec.max ?? 2 ** 31 - 1}`;
        expect(r.err, `${c.name} --${name} x`).toMatch(new RegExp(`^error: --${name} needs a whole number ${range}, got "x"\\n  hint: give digits only, ${range}, or leave --${name} out for its default; usage: ops ${c.name} [^\\n]*\\n$`));
        numbers++;
      }
    }
    expect(numbers).toBeGreaterThanOrEqual(4);
  });
});

describe('an action: one failure line (::error::), never a stack trace', () => {
  const writes: string[] = [];
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = 0;
    writes.length = 0;
  });
  it.each(KINDS)('%s', async (_name, error, kind) => {
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      writes.push(String(chunk));
      return true;
    });
    await runAction({}, async (ctx) => {
      const { initdata } = await import('../../core/ops/initdata.ts');
      const { loadEnvironment } = await import('../../core/config/environment.ts');
      await initdata({ ...ctx.ops, root, connector: failing('step', error) }, loadEnvironment('x', root), { file: join(root, 'data.yml') });
    });
    vi.restoreAllMocks();
    const failure = writes.filter((w) => w.startsWith('::error::'));
    expect(failure).toHaveLength(1);
    expect(process.exitCode).toBe(1);
    // @actions/core escapes newlines as %0A in workflow commands.
    const text = decodeURIComponent(failure[0]!.replace(/^::error::/, '').trim());
    expect(text).toContain('web1');
    expectOneMessage(text, kind);
  });
  it('an OpsError keeps its message and hint', () => {
    expect(formatError(new OpsError('x on web1 failed', 'do y'))).toBe('x on web1 failed\n  hint: do y');
  });
});

describe('a step stopped from outside the run', () => {
  it('says so for exit codes 143 and 137 (128 + SIGTERM, SIGKILL), not for its own timeout (124) or another code', () => {
    expect(new StepError('build', 'web1', 143, '').message).toBe('step "build" on web1 was stopped by SIGTERM from outside this run (exit code 143: ops lock release --force by someone else, an admin?)');
    expect(new StepError('build', 'web1', 137, '').message).toMatch(/stopped by SIGKILL from outside this run \(exit code 137: .*OOM killer/);
    expect(new StepError('build', 'web1', 124, '', undefined, undefined, 30).message).toBe('step "build" on web1 timed out after 30 s');
    expect(new StepError('build', 'web1', 2, '').message).toBe('step "build" on web1 failed with exit code 2');
  });
});

describe('an app command writing into a dependency set (read-only once made)', () => {
  it('says which set and what to do instead; nothing for other permission errors or for the steps making a set', () => {
    const hint = readOnlySetHint('build', "Error: EACCES: permission denied, open '/srv/shop/releases/r1/client/node_modules/.prisma/client/index.js'");
    expect(hint).toMatch(/^build wrote into node_modules \(a dependency set\), which is read-only .*not node_modules or the venv$/);
    expect(readOnlySetHint('migrate', 'bash: /srv/shop/shared/deps/venv-0123abcd/lib/x.py: Permission denied')).toMatch(/^migrate wrote into the dependency set shared\/deps\/venv-0123abcd, which is read-only/);
    expect(readOnlySetHint('build', 'bash: web/node_modules/dotenv/lib/main.js: Permission denied')).toContain('node_modules (a dependency set)');
    expect(readOnlySetHint('build', 'bash: /etc/passwd: Permission denied')).toBeUndefined();
    expect(readOnlySetHint('node dependencies', "EACCES: permission denied, mkdir 'client/node_modules/x'")).toBeUndefined();
  });
});

describe("a module today's setuptools or Python removed, imported by an old app (Python's traceback)", () => {
  it('names the module, what removed it, the pinned package importing it, and the fix', () => {
    // The data catalogue's 2022 migration on a Debian 11 test host: punq 0.6.2 imports pkg_resources, gone from the
    // setuptools (82) the Python set was seeded with; as the step's error showed it.
    const PUNQ = [
      '  File "./server/seedwork/application/di.py", line 3, in <module>',
      '    import punq',
      '  File "/srv/catalogage/shared/deps/venv-aa33d338e4b7de56/lib/python3.9/site-packages/punq/__init__.py", line 27, in <module>',
      '    from pkg_resources import DistributionNotFound',
      "ModuleNotFoundError: No module named 'pkg_resources'",
      'make: *** [Makefile:52: migrate] Error 1',
    ].join('\n');
    expect(removedModuleHint(PUNQ)).toBe("pkg_resources is no longer provided (setuptools 81 removed it) and punq, a pinned package, imports it; fix: pin setuptools<81 in release.python_requirements (the Python set is seeded with the newest setuptools), or a release of punq that no longer imports it");
    // the app's own code importing distutils under Python 3.12
    expect(removedModuleHint('  File "/srv/x/releases/r/app.py", line 1, in <module>\n    from distutils.util import strtobool\nModuleNotFoundError: No module named \'distutils.util\'')).toBe(
      'distutils is no longer provided (Python 3.12 removed it) and the code imports it; fix: set runtimes.python to a version before 3.12, then ops provision, or stop importing it',
    );
  });

  it('nothing for a module that was never in the standard library or setuptools (a missing requirement), or other output', () => {
    expect(removedModuleHint("ModuleNotFoundError: No module named 'flask'")).toBeUndefined();
    expect(removedModuleHint('TypeError: issubclass() arg 1 must be a class')).toBeUndefined();
  });
});

describe('a Python requirement built from its source on a host, failing (uv\'s and pip\'s output)', () => {
  // uv 0.13.9 (the pinned one) installing the data catalogue's 2022 requirements.txt under Python 3.11: asyncpg 0.25.0
  // has no cp311 wheel, and its sdist's pyproject.toml is refused, as uv printed it.
  const UV = [
    'error: Failed to download and build `asyncpg==0.25.0`',
    '  cause: `pyproject.toml` does not match the required schema. When the `[project]` table is present, `project.name` must be present and non-empty.',
    '  cause: TOML parse error at line 1, column 1',
    '           |',
    '         1 | [project]',
    '           | ^^^^^^^^^',
    '         missing field `name`',
  ].join('\n');
  const FIX =
    'pip and uv build a package only when the package index has no wheel of that release for the host\'s Python (runtimes.python) and platform, as for a release older than that Python; fix: pin a release with wheels for that Python (the index lists each release\'s files: cp311 for 3.11), or set runtimes.python to a version it has wheels for (Debian 12\'s package is 3.11, Debian 11\'s 3.9; strategy pyenv installs any, with the internet on the hosts), then ops provision; or let the hosts compile it: build-essential, python3-dev';

  it('names the requirement, what the host lacked when the output says it, and the fixes: a release with wheels, another runtimes.python, the build tools', () => {
    expect(sourceBuildHint('python dependencies', UV)).toBe(`asyncpg==0.25.0 was built from source on the host, which failed: ${FIX} in provision.packages, then ops provision`);
    // uv's later words, a compiler and Python's headers missing (uvloop's C extension)
    const uvloop = ['  × Failed to build `uvloop==0.16.0`', '  ├─▶ The build backend returned an error', "      error: command 'x86_64-linux-gnu-gcc' failed: No such file or directory", '      uvloop/loop.c:4:10: fatal error: Python.h: No such file or directory'].join('\n');
    expect(sourceBuildHint('python dependencies', uvloop)).toBe(`uvloop==0.16.0 was built from source on the host, which failed (the host lacks a C compiler (build-essential), Python's headers (python3-dev)): ${FIX} in provision.packages, then ops provision`);
    // pip (release.python_installer: pip): psycopg2's metadata step without pg_config, then its summary line
    const pip = ['      Error: pg_config executable not found.', '  error: metadata-generation-failed', '', '× Encountered error while generating package metadata.', '╰─> psycopg2-binary', '', 'ERROR: Failed building wheel for httptools', 'Failed to build httptools'].join('\n');
    expect(sourceBuildHint('python dependencies', pip)).toBe(
      `psycopg2-binary, httptools were built from source on the host, which failed (the host lacks PostgreSQL's client headers and pg_config (libpq-dev)): ${FIX.replace('a release with', 'releases with').replace('version it has', 'version they have').replace('compile it', 'compile them')}, libpq-dev in provision.packages, then ops provision`,
    );
    // pip -q's "Getting requirements to build wheel", which names no package: the sdist's file when shown, else said so
    const getReq = ['  error: subprocess-exited-with-error', '  × Getting requirements to build wheel did not run successfully.', '  │ exit code: 1', '      configuration error: `project` must contain [\'version\'] properties'].join('\n');
    expect(sourceBuildHint('python dependencies', getReq)).toMatch(/^a requirement \(its name is above pip's error\) was built from source on the host, which failed: /);
    expect(sourceBuildHint('python dependencies', `  Downloading http://10.230.0.1:3141/root/pypi/%2Bf/63f/8e6a69733b285/asyncpg-0.25.0.tar.gz (804 kB)\n${getReq}`)).toMatch(/^asyncpg==0\.25\.0 was built from source on the host/);
  });

  it('nothing for another step, or an install failing otherwise (a pin the index lacks, the index unreachable)', () => {
    expect(sourceBuildHint('node dependencies', UV)).toBeUndefined();
    expect(sourceBuildHint('build', UV)).toBeUndefined();
    expect(sourceBuildHint('python dependencies', '  × No solution found when resolving dependencies:\n  ╰─▶ Because there is no version of asyncpg==0.99.0 and you require asyncpg==0.99.0, we can conclude that your requirements are unsatisfiable.')).toBeUndefined();
    expect(sourceBuildHint('python dependencies', 'ERROR: Could not find a version that satisfies the requirement uv==0.13.9 (from versions: none)\nERROR: No matching distribution found for uv==0.13.9')).toBeUndefined();
  });
});

describe("a package's install script that downloads a prebuilt binary, else compiles one, failing on a host (npm's output)", () => {
  // As npm 9 (Debian bookworm's) printed it on a test host, which reaches no other host than the lab's caches.
  const BCRYPT = [
    'npm ERR! code 1',
    'npm ERR! path /srv/sample/releases/20261208T005652Z-fbc2fd3848ba/node_modules/bcrypt',
    'npm ERR! command failed',
    'npm ERR! command sh -c node-pre-gyp install --fallback-to-build',
    "npm ERR! make: Entering directory '/srv/sample/releases/20261208T005652Z-fbc2fd3848ba/node_modules/bcrypt/build'",
    'npm ERR! node-pre-gyp ERR! install request to https://github.com/kelektiv/node.bcrypt.js/releases/download/v5.1.1/bcrypt_lib-v5.1.1-napi-v3-linux-x64-glibc.tar.gz failed, reason: getaddrinfo EAI_AGAIN github.com ',
    'npm ERR! node-pre-gyp WARN Pre-built binaries not installable for bcrypt@5.1.1 and node@18.20.4 (node-v108 ABI, glibc) (falling back to source compile with node-gyp) ',
    'npm ERR! make: cc: No such file or directory',
    'npm ERR! gyp ERR! build error ',
    'npm ERR! gyp ERR! not ok',
  ].join('\n');

  it('names the package, its script, the download host it could not reach and the compiler it lacks, with the fixes', () => {
    expect(installScriptHint('node dependencies', BCRYPT)).toBe(
      "bcrypt's install script (node-pre-gyp install --fallback-to-build) failed: it downloads a prebuilt binary from github.com, which the host could not reach; then it compiles the addon, and the host lacks a C/C++ compiler (cc, g++); fix: let the hosts reach github.com (or a proxy to it in the app user's environment); or add build-essential to provision.packages and run ops provision, so the host compiles it; or use a package whose binaries come from the npm registry (bcryptjs, in JavaScript)",
    );
    // npm 10 and later: `npm error`; a scoped package; node-gyp not finding Python; prebuild-install's own words.
    const argon = [
      'npm error path /srv/shop/shared/deps/.new/node_modules/@scope/argon2',
      'npm error command sh -c prebuild-install || node-gyp rebuild',
      'npm error prebuild-install warn install connect ETIMEDOUT 140.82.121.4:443 https://github.com/x/releases/download/v1/a.tar.gz',
      'npm error gyp ERR! find Python Python is not set from command line or npm configuration',
    ].join('\n');
    expect(installScriptHint('node dependencies', argon)).toBe(
      "@scope/argon2's install script (prebuild-install || node-gyp rebuild) failed: it downloads a prebuilt binary from github.com, which the host could not reach; then it compiles the addon, and the host lacks Python (node-gyp runs it); fix: let the hosts reach github.com (or a proxy to it in the app user's environment); or add python3 to provision.packages and run ops provision, so the host compiles it; or use a package whose binaries come from the npm registry",
    );
  });

  it('nothing for another step, npm failing elsewhere than a package\'s script, or a script failing of other causes', () => {
    expect(installScriptHint('build', BCRYPT)).toBeUndefined();
    expect(installScriptHint('node dependencies', 'npm ERR! code ENOTFOUND\nnpm ERR! network request to http://10.0.0.1:4873/ms failed, reason: getaddrinfo ENOTFOUND x')).toBeUndefined();
    expect(installScriptHint('node dependencies', 'npm ERR! path /srv/x/node_modules/sharp\nnpm ERR! command sh -c node install.js\nnpm ERR! Error: something else')).toBeUndefined();
    // A package's path without a script of its: a download of the package itself (npm's own fetch), not its script.
    expect(installScriptHint('node dependencies', 'npm ERR! code ETIMEDOUT\nnpm ERR! path /srv/x/node_modules/ms\nnpm ERR! network request to https://registry.example/ms failed, reason: connect ETIMEDOUT')).toBeUndefined();
  });
});

describe('a local file given by the user that cannot be read says why in words (fileError), never a bare errno code', () => {
  it('an SSH key (--identity), an environment file and an age key file: missing, a directory', async () => {
    const { resolveCredentials } = await import('../../core/remote/identity.ts');
    const { readYamlFile } = await import('../../core/config/environment.ts');
    const { loadIdentities } = await import('../../core/secrets/keys.ts');
    const { MemoryReporter } = await import('../../core/report.ts');
    const dir = mkdtempSync(join(tmpdir(), 'ops-files-'));
    const caught = async (f: () => unknown) => {
      try {
        await f();
      } catch (e) {
        return e as OpsError;
      }
      throw new Error('not refused');
    };
    const missing = await caught(() => resolveCredentials({ identityFile: join(dir, 'nope') }, new MemoryReporter()));
    expect([missing.message, missing.hint]).toEqual([`cannot read ${dir}/nope: no such file (the SSH key of --identity)`, expect.stringMatching(/^check the path/)]);
    // A setting's path is read from the environment folder (or ~/ from home): its hint says so, not "the directory the command was run from".
    const setting = await caught(() => resolveCredentials({ configFile: join(dir, 'nope') }, new MemoryReporter()));
    expect(setting.hint).toBe('check ssh.identity_file in the environment.yml (a relative path starts from the environment folder, ~/ from your home directory)');
    const folder = await caught(() => resolveCredentials({ identityFile: dir }, new MemoryReporter()));
    expect(folder.message).toBe(`cannot read ${dir}: it is a directory, not an SSH private key file (the SSH key of --identity)`);
    const yaml = await caught(() => readYamlFile(dir, 'environments/x/environment.yml'));
    expect(yaml.message).toBe('cannot read environments/x/environment.yml: it is a directory, not a YAML file');
    // a directory named as a file stands in its place: no "<that directory>/<name>" to put a file in
    expect(yaml.hint).toBe('a directory stands where a YAML file goes: move it aside or remove it (rmdir environments/x/environment.yml when empty), then write the file there');
    expect(folder.hint).toBe(`give the path of an SSH private key file (e.g. ${dir}/<name>)`);
    const age = await caught(() => loadIdentities({ SOPS_AGE_KEY_FILE: dir, HOME: dir }));
    expect(age.message).toBe(`SOPS_AGE_KEY_FILE: cannot read ${dir}: it is a directory, not an age key file`);
    for (const e of [missing, folder, yaml, age]) expect(e.message).not.toMatch(/\bE[A-Z]{3,}\b/);
  });
});

describe('a private key file other users of this machine can read is warned of, with the chmod that fixes it', () => {
  it('an age key file (SOPS_AGE_KEY_FILE, the default one) and an SSH key (--identity); mode 0600 and the published example key are not', async () => {
    const { resolveCredentials } = await import('../../core/remote/identity.ts');
    const { generateIdentity, loadIdentities } = await import('../../core/secrets/keys.ts');
    const { MemoryReporter } = await import('../../core/report.ts');
    const dir = mkdtempSync(join(tmpdir(), 'ops-modes-'));
    const age = join(dir, 'keys.txt');
    writeFileSync(age, (await generateIdentity()).keyFile, { mode: 0o644 });
    chmodSync(age, 0o644);
    expect((await loadIdentities({ SOPS_AGE_KEY_FILE: age, HOME: dir })).warnings).toEqual([`${age} (your age private key) can be read or changed by other users of this machine (mode 0644): chmod 600 ${age}`]);
    const xdg = join(dir, 'xdg');
    mkdirSync(join(xdg, 'sops', 'age'), { recursive: true });
    const byDefault = join(xdg, 'sops', 'age', 'keys.txt');
    writeFileSync(byDefault, readFileSync(age), { mode: 0o640 });
    chmodSync(byDefault, 0o640);
    expect((await loadIdentities({ HOME: dir, XDG_CONFIG_HOME: xdg })).warnings).toEqual([expect.stringContaining(`(mode 0640): chmod 600 ${byDefault}`)]);
    chmodSync(age, 0o600);
    expect((await loadIdentities({ SOPS_AGE_KEY_FILE: age, HOME: dir })).warnings).toBeUndefined();
    const example = join(import.meta.dirname, '..', '..', 'environments', 'example-age-key.txt');
    expect((await loadIdentities({ SOPS_AGE_KEY_FILE: example, HOME: dir })).warnings).toBeUndefined();
    const ssh = join(dir, 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', ssh]);
    chmodSync(ssh, 0o644);
    const reporter = new MemoryReporter();
    resolveCredentials({ identityFile: ssh }, reporter);
    expect(reporter.lines.join('\n')).toContain(`${ssh} (an SSH private key) can be read or changed by other users of this machine (mode 0644): chmod 600 ${ssh}`);
  });
});

describe('hosts[].port naming a web server (core/remote/ssh-login.ts)', () => {
  it("is said to be a web server's, with where sshd's port goes, at once (no retries); a silent port is said to be one; a port that closes without HTTP stays \"closed before the SSH handshake\"", async () => {
    const { createServer } = await import('node:http');
    const { createServer: tcpServer } = await import('node:net');
    const { login } = await import('../../core/remote/ssh-login.ts');
    const { MemoryReporter, unmarked } = await import('../../core/report.ts');
    const web = createServer((_, res) => res.end('hello'));
    const closing = tcpServer((c) => c.end());
    // Python's http.server takes the greeting for an HTTP/0.9 request: its error page alone, no status line
    const bare = tcpServer((c) => c.once('data', () => c.end('<!DOCTYPE HTML>\n<html lang="en">\n<head><title>Error response</title></head></html>\n')));
    await Promise.all([web, closing, bare].map((srv) => new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))));
    const portOf = (srv: { address(): unknown }) => (srv.address() as { port: number }).port;
    try {
      const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
      const reporter = new MemoryReporter();
      const options = { credentials: { agent: '/nonexistent', describe: 'agent' }, reporter, connectTimeout: 5, retries: 2, configFile: 'environments/qa/environment.yml' };
      const host = { name: 'web1', address: '127.0.0.1', port: portOf(web), user: 'deploy', hostKey: key };
      const err = (await login(host, { where: `web1 (deploy@127.0.0.1:${host.port})`, keyField: 'hosts[].host_key' }, options).catch((e: OpsError) => e)) as OpsError;
      expect([unmarked(err.message), unmarked(err.hint!)]).toEqual([
        `cannot connect to web1 (deploy@127.0.0.1:${host.port}): port ${host.port} is a web server's (it answers SSH's greeting in HTTP), not sshd's`,
        "set hosts[].port in environments/qa/environment.yml to sshd's port (22, or the Port of the host's /etc/ssh/sshd_config)",
      ]);
      expect(reporter.lines.join('\n')).not.toContain('retrying');
      const python = (await login({ ...host, port: portOf(bare) }, { where: 'web1', keyField: 'bastion.host_key' }, options).catch((e: OpsError) => e)) as OpsError;
      expect(unmarked(python.message)).toBe(`cannot connect to web1: port ${portOf(bare)} is a web server's (it answers SSH's greeting in HTTP), not sshd's`);
      expect(unmarked(python.hint!)).toMatch(/^set bastion\.port in /);
      // a port that takes the connection and says nothing (a database's): not "no answer", which blames the network
      const held: import('node:net').Socket[] = [];
      const silent = tcpServer((c) => held.push(c));
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
      const quiet = (await login({ ...host, port: portOf(silent) }, { where: 'web1', keyField: 'hosts[].host_key' }, { ...options, connectTimeout: 1, retries: 0 }).catch((e: OpsError) => e)) as OpsError;
      for (const c of held) c.destroy();
      silent.close();
      expect([unmarked(quiet.message), unmarked(quiet.hint!)]).toEqual([
        'cannot connect to web1: the port accepted the connection but sent no SSH greeting within 1 s (sshd sends one at once)',
        "check that hosts[].port is sshd's (a service that waits for its client to speak first, as a database does, answers nothing), or whether sshd is overloaded (MaxStartups); then try again",
      ]);
      const other = (await login({ ...host, port: portOf(closing) }, { where: 'web1', keyField: 'hosts[].host_key' }, { ...options, retries: 0 }).catch((e: OpsError) => e)) as OpsError;
      expect(unmarked(other.message)).toBe('cannot connect to web1: the connection was closed before the SSH handshake');
    } finally {
      for (const srv of [web, closing, bare]) srv.close();
    }
  }, 30_000);
});

describe('a host address reserved for documentation (the placeholder ops env new writes) is refused before connecting (core/remote/ssh-login.ts)', () => {
  it('names the address, why no machine has it, and where to set the machine\'s own, instead of a timeout blamed on sshd or a firewall', async () => {
    const { documentationAddress, login } = await import('../../core/remote/ssh-login.ts');
    const { MemoryReporter, unmarked } = await import('../../core/report.ts');
    for (const a of ['203.0.113.11', '192.0.2.5', '198.51.100.7', '2001:db8::5', '2001:0db8:1::1', 'web1.example.org', 'example.com', 'vm.invalid']) expect(documentationAddress(a), a).toBeTruthy();
    for (const a of ['10.0.0.5', '203.0.114.1', '192.0.20.1', 'myexample.org', 'example.org.uk', '2001:db9::1', 'sandbox.test']) expect(documentationAddress(a), a).toBeUndefined();
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P';
    const options = { credentials: { agent: '/nonexistent', describe: 'agent' }, reporter: new MemoryReporter(), connectTimeout: 1, retries: 2, configFile: 'environments/qa/environment.yml' };
    const host = { name: 'web1', address: '203.0.113.11', port: 22, user: 'deploy', hostKey: key };
    const err = await login(host, { where: 'web1 (deploy@203.0.113.11:22)', keyField: 'hosts[].host_key' }, options).catch((e: OpsError) => e);
    expect([unmarked((err as OpsError).message), unmarked((err as OpsError).hint!)]).toEqual([
      'web1 (deploy@203.0.113.11:22): 203.0.113.11 is a documentation address (RFC 5737), which no machine has: the placeholder `ops env new` writes, still in place',
      "set the machine's own address in hosts[].address of environments/qa/environment.yml (and its host key, read on its console)",
    ]);
    const bastion = await login({ ...host, name: 'jump', address: 'jump.example.org' }, { where: 'bastion jump', keyField: 'bastion.host_key' }, options).catch((e: OpsError) => e);
    expect(unmarked((bastion as OpsError).hint!)).toContain('in bastion.address of');
  });
});

describe('a host known by its IPv6 address is written [address]:port where a port follows (core/remote/ssh-login.ts)', () => {
  it('as ssh and URLs write it: 2001:db8::5:22 would read as another address', async () => {
    const { describeEndpoint } = await import('../../core/remote/ssh-login.ts');
    expect(describeEndpoint({ name: 'web1', user: 'deploy', address: '2001:db8::5', port: 2222, hostKey: '' })).toBe('web1 (deploy@[2001:db8::5]:2222)');
    expect(describeEndpoint({ name: 'web1', user: 'deploy', address: '10.0.0.5', port: 22, hostKey: '' })).toBe('web1 (deploy@10.0.0.5:22)');
  });
});

describe('an SSH key that is something else is said by its shape, never quoted (core/remote/identity.ts checkKeyText)', () => {
  it('a public key (a .pub file, an authorized_keys line), a path in $OPS_SSH_KEY, a PuTTY key', async () => {
    const { resolveCredentials } = await import('../../core/remote/identity.ts');
    const { MemoryReporter } = await import('../../core/report.ts');
    const dir = mkdtempSync(join(tmpdir(), 'ops-keyshape-'));
    const pub = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMlwndpHfcJQv6XulbWIzLhQ4E5MouOGQOkSV2DMD9P me@laptop\n';
    writeFileSync(join(dir, 'id_ed25519.pub'), pub);
    writeFileSync(join(dir, 'key.ppk'), 'PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n');
    const refused = (sources: Parameters<typeof resolveCredentials>[0]) => {
      try {
        resolveCredentials(sources, new MemoryReporter());
      } catch (e) {
        return [(e as OpsError).message, (e as OpsError).hint];
      }
      throw new Error('not refused');
    };
    expect(refused({ identityFile: join(dir, 'id_ed25519.pub') })).toEqual([`key file ${dir}/id_ed25519.pub holds a public key, not the private key`, 'give the private key file: the one without .pub (e.g. ~/.ssh/id_ed25519)']);
    expect(refused({ processEnv: { OPS_SSH_KEY: `from="10.0.0.1" ${pub}` } })[0]).toBe('$OPS_SSH_KEY holds a public key, not the private key');
    expect(refused({ processEnv: { OPS_SSH_KEY: '~/.ssh/id_ed25519' } })).toEqual(['$OPS_SSH_KEY holds a path, not the key\'s content', expect.stringContaining('OPS_SSH_KEY="$(cat FILE)"')]);
    expect(refused({ identityFile: join(dir, 'key.ppk') })[0]).toBe(`key file ${dir}/key.ppk holds a PuTTY key (.ppk), not an OpenSSH or PEM one`);
    expect(refused({ processEnv: { OPS_SSH_KEY: 'hunter2 not a key' } })).toEqual(['$OPS_SSH_KEY does not hold a private key in PEM/OpenSSH format', 'give the whole key file content, including the BEGIN/END lines']);
    // an age key (age's `-i`; the key file `ops env new` printed), where the SSH key goes: said as one, never shown
    const age = 'AGE-SECRET-KEY-1N6YDDKPQUDM2QCPC3AAR8KAH8C0AS26WQ9Z2Z9F30CZE0DAW0RQQ2K4RLG';
    writeFileSync(join(dir, 'qa-key.txt'), `# created: 2026-12-07T07:56:55Z\n# public key: age1gw8fklxs7l23y3sv8w75xe8mu50n72pzfxxjxhksm6l2pcxyvq0qce4cy0\n${age}\n`);
    expect(refused({ identityFile: join(dir, 'qa-key.txt') })).toEqual([`key file ${dir}/qa-key.txt holds an age key (not shown: the key that decrypts the secrets), not an SSH private key`, 'an age key decrypts the secrets, from $SOPS_AGE_KEY_FILE (its path) or $SOPS_AGE_KEY; hosts are logged in to with your SSH key: --identity ~/.ssh/id_ed25519, or ssh.identity_file']);
    const inEnv = refused({ processEnv: { OPS_SSH_KEY: age } });
    expect(inEnv).toEqual(['$OPS_SSH_KEY holds an age key (not shown: the key that decrypts the secrets), not an SSH private key', expect.stringContaining('OPS_SSH_KEY="$(cat ~/.ssh/id_ed25519)"')]);
    expect(inEnv.join(' ')).not.toContain(age);
    // its line breaks lost (`echo $KEY` unquoted, a one-line field): said so, not ssh2's "Unsupported key format"
    const oneLine = '-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW QyNTUxOQAAACBjJcJ3aR33CUL+l7pW1iMy4UOBOTKLjhkDpEldgzA/TwAAAJg= -----END OPENSSH PRIVATE KEY-----';
    expect(refused({ processEnv: { OPS_SSH_KEY: oneLine } })).toEqual(['$OPS_SSH_KEY holds a private key on one line: its line breaks were lost (turned into spaces)', expect.stringContaining('OPS_SSH_KEY="$(cat FILE)"')]);
    // dropped (a secret pasted through a one-line field, `tr -d '\n'`), or written as \n (a JSON string's escape)
    const body = ['b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW', 'QyNTUxOQAAACBjJcJ3aR33CUL+l7pW1iMy4UOBOTKLjhkDpEldgzA/TwAAAJg='];
    const lines = ['-----BEGIN OPENSSH PRIVATE KEY-----', ...body, '-----END OPENSSH PRIVATE KEY-----'];
    expect(refused({ processEnv: { OPS_SSH_KEY: lines.join('') } })[0]).toBe('$OPS_SSH_KEY holds a private key on one line: its line breaks were lost (removed)');
    for (const indented of [lines.map((l) => `  ${l}`).join('\n'), lines.map((l) => `  ${l}`).join('\n').trim()])
      expect(refused({ processEnv: { OPS_SSH_KEY: indented } })[0]).toBe('$OPS_SSH_KEY holds an indented private key: its lines start with white space (copied out of an indented block)');
    expect(refused({ processEnv: { OPS_SSH_KEY: lines.join('\\n') } })[0]).toBe('$OPS_SSH_KEY holds a private key on one line: its line breaks were lost (written as \\n, a backslash and an n: an escape no one read back)');
  });
});

describe('messageLine: an error quoted inside another message keeps its whole problem, on one line', () => {
  it('joins a heading and its list, and other lines with "; "', () => {
    const config = new OpsError('environments/prod/environment.yml has 2 problems:\n  - programs.api.command: must be a string\n  - hosts: must not be empty');
    expect(messageLine(config)).toBe('environments/prod/environment.yml has 2 problems: programs.api.command: must be a string; hosts: must not be empty');
    expect(messageLine(new StepError('build', 'web1', 2, 'compiling\nlinking failed'))).toBe('step "build" on web1 failed with exit code 2; compiling; linking failed');
    expect(messageLine('one line')).toBe('one line');
    expect(messageLine(new Error(''))).toBe('Error');
    expect(messageLine('a\r\n\r\nb')).toBe('a; b');
  });

  it('a failing SOPS_AGE_KEY_CMD says how it failed, not only "Command failed", and never what it printed', async () => {
    const { loadIdentities } = await import('../../core/secrets/keys.ts');
    const dir = mkdtempSync(join(tmpdir(), 'ops-keycmd-'));
    const ids = await loadIdentities({ SOPS_AGE_KEY_CMD: "sh -c 'echo vault is sealed >&2; exit 3'", HOME: dir, PATH: process.env.PATH });
    expect(ids.tried.join(', ')).toContain('SOPS_AGE_KEY_CMD (failed: sh exited with status 3 (what it printed is not shown); to fix: run the command yourself');
    expect(ids.tried.join(', ')).not.toContain('vault is sealed');
  });
});
