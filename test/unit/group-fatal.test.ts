// group_fatal (core/steps/sh/supervisor.sh), the health gate's early verdict on a program supervisor gave up on,
// against a real supervisord (4.2.5, as Debian 12 ships it: scripts/setup-machine.sh) on a socket of its own: a
// command supervisor cannot start at all (a typo in its first word, a bare name on no PATH, a script not executable)
// is said as such, naming the program and the fix; one that starts and keeps exiting is said so, named, with the last
// lines it wrote since this start (its stderr, else its stdout: real failures of real tools, masked, escapes shown).
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { chmodSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scriptPrelude } from '../../core/remote/wrap.ts';
import { MASK_FUNCTIONS, SUPERVISOR_FUNCTIONS } from '../../core/steps/libraries.ts';
import { programSection, startSupervisord, type Supervisord } from '../support/supervisord.ts';

const run = promisify(execFile);
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
let sup: Supervisord;
let dir: string;
let taken: Server;
let takenPort: number;
/** LOG_START as a start fills it: each program log's size when the group started (0: not there yet). */
const logStart: Record<string, number> = {};
const SECRET = 'pg-S3cretPassw0rd-x81';
/** LOG_INODE as a start fills it: the inode of each log it found, before it was rotated or truncated. */
const inodes: Record<string, number> = {};

/** Ask group_fatal about GROUP (supervisord starts it itself, as it does a group a deploy adds) twice a second (for 20 s at most) until it says supervisor gave up: FATAL_WHY. */
async function fatalWhy(group: string): Promise<string> {
  const starts = Object.entries(logStart).map(([f, n]) => `LOG_START[${f}]=${n}`).join('; ');
  const nodes = Object.entries(inodes).map(([f, n]) => `LOG_INODE[${f}]=${n}`).join('; ');
  const script = `${scriptPrelude}\n${MASK_FUNCTIONS}\n${SUPERVISOR_FUNCTIONS}\nSUPERVISOR_SOCK=${sup.sock}
MASK_LOADED=1; MASK_FORMS=(${SECRET}); declare -A LOG_START LOG_INODE; ${starts}; ${nodes}
for i in $(seq 40); do if group_fatal ${group}; then printf '%s\\n' "$FATAL_WHY"; exit 0; fi; sleep 0.5; done
echo "never FATAL"`;
  const { stdout } = await run('bash', ['-c', script], { encoding: 'utf8' });
  return stdout.trim().split('\n').at(-1)!;
}

/**
 * Ask group_fatal about GROUP as the health gate does (GROUP_EXITS kept over its calls, counting from now) twice a
 * second for 20 s at most, until it has a verdict: FATAL_WHY.
 */
async function loopWhy(group: string): Promise<string> {
  const starts = Object.entries(logStart).map(([f, n]) => `LOG_START[${f}]=${n}`).join('; ');
  const nodes = Object.entries(inodes).map(([f, n]) => `LOG_INODE[${f}]=${n}`).join('; ');
  const script = `${scriptPrelude}\n${MASK_FUNCTIONS}\n${SUPERVISOR_FUNCTIONS}\nSUPERVISOR_SOCK=${sup.sock}
MASK_LOADED=1; MASK_FORMS=(${SECRET}); declare -A LOG_START LOG_INODE; ${starts}; ${nodes}
declare -A GROUP_EXITS=(); GROUP_EXITS_SINCE=$(date +%s); STARTSECS=1
for i in $(seq 40); do if group_fatal ${group}; then printf '%s\\n' "$FATAL_WHY"; exit 0; fi; sleep 0.5; done
echo "no verdict"`;
  const { stdout } = await run('bash', ['-c', script], { encoding: 'utf8' });
  return stdout.trim().split('\n').at(-1)!;
}
beforeAll(async () => {
  taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  takenPort = (taken.address() as { port: number }).port;
  const settings = { autostart: true, autorestart: true, startsecs: 1, startretries: 1 };
  const program = (d: string, name: string, command: string) => programSection(d, name, command, settings);
  /** A program as a slot runs it (stderr in a file of its own), in directory `cwd`, its logs known to LOG_START. */
  const failing = (d: string, name: string, command: string, cwd = d) => {
    for (const f of [`${d}/${name}.log`, `${d}/${name}.err.log`]) logStart[f] ??= 0;
    return programSection(d, name, command, { ...settings, directory: cwd }, true);
  };
  const file = (d: string, name: string, text: string, mode = 0o644) => {
    writeFileSync(join(d, name), text);
    chmodSync(join(d, name), mode);
  };
  sup = await startSupervisord('ops-group-fatal-', (d) => {
    dir = d;
    mkdirSync(join(d, 'node'));
    // Apps as users write them, failing as they do on a host: a package not installed, a variable not set, a typo in
    // a shebang, a port another process holds, a secret in the message, colours in the log.
    file(d, 'missing_module.py', 'import os\nfrom flaskk import Flask\napp = Flask(__name__)\n');
    file(d, 'settings.py', 'import os\nDATABASE_URL = os.environ["APP_DATABASE_URL"]\n');
    file(d, 'server.py', '#!/usr/bin/env pyhton3\nprint("hello")\n', 0o755);
    file(d, 'bind.py', `import socket\nprint("starting", flush=True)\ns = socket.socket()\ns.bind(("127.0.0.1", int(__import__("os").environ["PORT"])))\n`);
    file(d, 'db.py', `import sys\nsys.exit("could not connect to postgresql://app:${SECRET}@db.internal:5432/app: connection refused")\n`);
    file(d, 'colours.py', 'import sys\nprint("\\x1b[31mERROR\\x1b[0m config file /etc/app.toml missing\\x1b]0;owned\\x07", file=sys.stderr)\nsys.exit(3)\n');
    file(join(d, 'node'), 'server.js', "const express = require('expresss');\nexpress().listen(3000);\n");
    file(join(d, 'node'), 'listen.js', "require('http').createServer(() => {}).listen(Number(process.env.PORT), '127.0.0.1');\n");
    // The log of a release that ran on the slot before: not this start's words.
    file(d, 'app-quiet-web.log', 'Traceback (most recent call last):\nOldError: an older release said this\n');
    logStart[`${d}/app-quiet-web.log`] = statSync(join(d, 'app-quiet-web.log')).size;
    // A program that runs past startsecs (1 s here) each time, then exits for a setting not given, printing the
    // secret it has: supervisor restarts it without end, never FATAL.
    file(d, 'later.py', `import sys, time\nprint("connecting with ${SECRET}", file=sys.stderr, flush=True)\ntime.sleep(1.5)\nprint("KeyError: 'STRIPE_API_KEY'", file=sys.stderr, flush=True)\nsys.exit(4)\n`);
    // Logs a start found long, then rotated (renamed .1, supervisor begins a new file) or truncated (copytruncate)
    // before the program wrote: what it wrote is all in the new file, before the size the start found.
    for (const g of ['rotated', 'truncated']) {
      const f = join(d, `app-${g}-web.err.log`);
      file(d, `app-${g}-web.err.log`, 'an older release wrote this\n'.repeat(200));
      logStart[f] = statSync(f).size;
      inodes[f] = statSync(f).ino;
      logStart[join(d, `app-${g}-web.log`)] = 0;
      if (g === 'rotated') renameSync(f, `${f}.1`);
      else writeFileSync(f, '');
    }
    // A script committed without its executable bit (git keeps 644).
    writeFileSync(join(d, 'start.sh'), '#!/bin/sh\nexec sleep 600\n');
    chmodSync(join(d, 'start.sh'), 0o644);
    return [
      '[group:app-typo]\nprograms=app-typo-web\n',
      '[group:app-bare]\nprograms=app-bare-api\n',
      '[group:app-mode]\nprograms=app-mode-web\n',
      '[group:app-exits]\nprograms=app-exits-web\n',
      ...['module', 'keyerror', 'shebang', 'chdir', 'node', 'inuse', 'nodeinuse', 'secret', 'colours', 'quiet', 'later', 'rotated', 'truncated'].map((g) => `[group:app-${g}]\nprograms=app-${g}-web\n`),
      program(d, 'app-typo-web', `${d}/venv/bin/gunicron app:app`),
      program(d, 'app-bare-api', 'uvicron main:app'),
      program(d, 'app-mode-web', `${d}/start.sh`),
      program(d, 'app-exits-web', '/usr/bin/python3 -c "import sys; sys.exit(1)"'),
      failing(d, 'app-module-web', '/usr/bin/python3 missing_module.py'),
      failing(d, 'app-keyerror-web', '/usr/bin/python3 settings.py'),
      failing(d, 'app-shebang-web', `${d}/server.py`),
      failing(d, 'app-chdir-web', '/usr/bin/python3 server.py', `${d}/clinet`),
      failing(d, 'app-node-web', `${process.execPath} server.js`, `${d}/node`),
      failing(d, 'app-inuse-web', `/usr/bin/env PORT=${takenPort} /usr/bin/python3 bind.py`),
      failing(d, 'app-nodeinuse-web', `/usr/bin/env PORT=${takenPort} ${process.execPath} listen.js`, `${d}/node`),
      failing(d, 'app-secret-web', '/usr/bin/python3 db.py'),
      failing(d, 'app-colours-web', '/usr/bin/python3 colours.py'),
      failing(d, 'app-quiet-web', '/usr/bin/python3 -c "import sys; sys.exit(1)"'),
      failing(d, 'app-later-web', '/usr/bin/python3 later.py'),
      failing(d, 'app-rotated-web', '/usr/bin/python3 settings.py'),
      failing(d, 'app-truncated-web', '/usr/bin/python3 settings.py'),
    ];
  });
}, 30_000);

afterAll(() => {
  sup?.daemon.kill('SIGTERM');
  taken?.close();
});

describe('group_fatal on a real supervisord 4.2.5', () => {
  it('a command whose first word does not exist (a typo, a name on no PATH): the program, supervisor\'s words, and the fix', async () => {
    expect(await fatalWhy('app-typo')).toBe(
      `supervisor could not start program web: can't find command '${dir}/venv/bin/gunicron' (no such file, or no such name on its PATH); fix programs.web.command: its first word must be a program the release or the host has: {release}/venv/bin/<name> for a package release.python_requirements installs, {node} or {npm} for Node.js, {python}, or an absolute path`,
    );
    expect(await fatalWhy('app-bare')).toMatch(/^supervisor could not start program api: can't find command 'uvicron' .*; fix programs\.api\.command: /);
  }, 60_000);

  it('a script without its executable bit: named, with the fix', async () => {
    expect(await fatalWhy('app-mode')).toBe(
      `supervisor could not start program web: command at '${dir}/start.sh' is not executable; fix programs.web.command: start a script with its interpreter ({python} FILE, {node} FILE, sh FILE), or commit it executable (git update-index --chmod=+x FILE)`,
    );
  }, 60_000);

  it('a program that starts and keeps exiting, writing nothing (an app with a log file of its own): named, said so', async () => {
    const quiet = 'which keeps exiting, writing nothing to its stdout or stderr since this start (an app that writes a log file of its own says why there)';
    expect(await fatalWhy('app-exits')).toBe(`supervisor gave up on program web, ${quiet}`);
    // What an older release wrote to the same log is not this start's reason.
    expect(await fatalWhy('app-quiet')).toBe(`supervisor gave up on program web, ${quiet}`);
  }, 60_000);

  it('a program that keeps exiting saying why in its stderr: the last lines it wrote there, in the verdict', async () => {
    const ends = (g: string, stream = '.err') => `supervisor gave up on program web, which keeps exiting; ${dir}/app-${g}-web${stream}.log ends: `;
    expect(await fatalWhy('app-module')).toBe(`${ends('module')}Traceback (most recent call last): | File "${dir}/missing_module.py", line 2, in <module> | from flaskk import Flask | ModuleNotFoundError: No module named 'flaskk'`);
    expect(await fatalWhy('app-keyerror')).toMatch(new RegExp(`^${esc(ends('keyerror'))}.*DATABASE_URL = os\\.environ\\["APP_DATABASE_URL"\\] \\| File "<frozen os>", line \\d+, in __getitem__ \\| KeyError: 'APP_DATABASE_URL'$`));
    // coreutils quotes the name as the locale does ('pyhton3' or ‘pyhton3’).
    expect(await fatalWhy('app-shebang')).toMatch(new RegExp(`^${esc(ends('shebang'))}/usr/bin/env: .pyhton3.: No such file or directory$`));
    expect(await fatalWhy('app-chdir')).toBe(`${ends('chdir')}supervisor: couldn't chdir to ${dir}/clinet: ENOENT | supervisor: child process was not spawned`);
    expect(await fatalWhy('app-node')).toMatch(new RegExp(`^${esc(ends('node'))}.*Error: Cannot find module 'expresss' \\| Require stack: \\| - ${esc(dir)}/node/server\\.js$`));
    expect(await fatalWhy('app-inuse')).toMatch(new RegExp(`^${esc(ends('inuse'))}.*OSError: \\[Errno 98\\] Address already in use$`));
    // Node 20 says "Emitted 'error' event on Server instance at:" after the message, its frames after that.
    expect(await fatalWhy('app-nodeinuse')).toMatch(new RegExp(`^${esc(ends('nodeinuse'))}.*Error: listen EADDRINUSE: address already in use 127\\.0\\.0\\.1:${takenPort}( \\|.*)?$`));
  }, 120_000);

  it('what it quotes is masked, and a terminal escape is shown, not sent', async () => {
    const secret = await fatalWhy('app-secret');
    expect(secret).toBe(`supervisor gave up on program web, which keeps exiting; ${dir}/app-secret-web.err.log ends: could not connect to postgresql://app:***@db.internal:5432/app: connection refused`);
    expect(await fatalWhy('app-colours')).toBe(
      `supervisor gave up on program web, which keeps exiting; ${dir}/app-colours-web.err.log ends: \\x1b[31mERROR\\x1b[0m config file /etc/app.toml missing\\x1b]0;owned\\x07`,
    );
  }, 60_000);

  it('a program that exits past startsecs, again and again (supervisor restarts it without end, never FATAL): said to keep exiting, with its exit status and last lines, masked', async () => {
    expect(await loopWhy('app-later')).toMatch(
      new RegExp(`^program web keeps exiting \\(\\d+ exits since its start, the last with exit status 4\\): it ran past supervisor's startsecs \\(1s\\) each time, so supervisor restarts it without end; ${esc(dir)}/app-later-web\\.err\\.log ends: (connecting with \\*\\*\\* \\| KeyError: 'STRIPE_API_KEY'|KeyError: 'STRIPE_API_KEY' \\| connecting with \\*\\*\\*)$`),
    );
    // One that exits within startsecs is supervisor's to count: its verdict (FATAL), not "past startsecs".
    expect(await loopWhy('app-exits')).toMatch(/^supervisor gave up on program web, which keeps exiting/);
  }, 60_000);

  it('a log rotated or truncated between the start and the verdict: what the program wrote is quoted all the same', async () => {
    for (const g of ['rotated', 'truncated']) {
      expect(await fatalWhy(`app-${g}`)).toMatch(new RegExp(`^supervisor gave up on program web, which keeps exiting; ${esc(dir)}/app-${g}-web\\.err\\.log ends: .*KeyError: 'APP_DATABASE_URL'$`));
    }
  }, 60_000);
});
