// log_tail (core/steps/sh/supervisor.sh): what a failed start shows of each program's log. The last 8 lines of a
// Node crash are its stack frames, the message that says what failed (`Error: Cannot find module ...`) above them;
// it is shown from that message on. Fed the real output of node and python3 (as supervisor retried them: four runs).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SUPERVISOR_FUNCTIONS } from '../../core/steps/libraries.ts';
import { failureDetail } from '../../core/remote/types.ts';

const logTail = (log: string, n = 8): string => execFileSync('bash', ['-c', `${SUPERVISOR_FUNCTIONS}\nlog_tail ${n}`], { input: log, encoding: 'utf8' });
/** What a program printed on its way out (stdout and stderr, as supervisor's redirect_stderr or the .err log has it). */
const crash = (cmd: string, args: string[]): string => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: mkdtempSync(join(tmpdir(), 'ops-log-tail-')) });
  return `${r.stdout}${r.stderr}`;
};
const retried = (out: string) => `web on 8080\n${out}${out}${out}${out}`;

describe('log_tail', () => {
  it("a Node program whose file is missing (command: node server.js in the wrong directory): from the error's message", () => {
    const out = crash(process.execPath, ['server.js']);
    expect(out).toMatch(/^Error: Cannot find module '.*server\.js'$/m);
    const shown = logTail(retried(out));
    expect(shown).toMatch(/^Error: Cannot find module '.*server\.js'\n {4}at /);
    expect(shown.trimEnd().split('\n').at(-1)).toMatch(/^Node\.js v\d+/);
    expect(shown.split('\n').length).toBeLessThan(31);
  });

  it('a Node error thrown deep in the code: its message, then the frames', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ops-log-tail-'));
    writeFileSync(join(dir, 'app.js'), "function a(){ throw new TypeError('SECRET_KEY must be set') }\nfunction b(){ a() }\nfunction c(){ b() }\nfunction d(){ c() }\nfunction e(){ d() }\ne()\n");
    const shown = logTail(retried(crash(process.execPath, [join(dir, 'app.js')])));
    expect(shown).toMatch(/^TypeError: SECRET_KEY must be set\n {4}at a /m);
    expect(shown).not.toContain('web on 8080');
  });

  it('a Python traceback, which ends with its message, and a plain log: the last 8 lines, as before', () => {
    const py = retried(crash('python3', ['-c', "import os\ndef a(): return os.environ['SECRET_KEY']\ndef b(): return a()\ndef c(): return b()\nc()"]));
    expect(logTail(py)).toBe(`${py.trimEnd().split('\n').slice(-8).join('\n')}\n`);
    expect(logTail(py)).toMatch(/KeyError: 'SECRET_KEY'\n$/);
    const plain = Array.from({ length: 20 }, (_, i) => `[INFO] line ${i}`).join('\n') + '\n';
    expect(logTail(plain)).toBe(`${plain.trimEnd().split('\n').slice(-8).join('\n')}\n`);
    expect(logTail('one\ntwo\n')).toBe('one\ntwo\n');
    expect(logTail('')).toBe('');
  });

  it('an indented block with no stack frame (a pretty-printed object logged last): the last 8 lines', () => {
    const obj = `config loaded:\n${Array.from({ length: 15 }, (_, i) => `  key${i}: ${i}`).join('\n')}\n}\n`;
    expect(logTail(obj)).toBe(`${obj.trimEnd().split('\n').slice(-8).join('\n')}\n`);
  });
});

describe("a failed start's error quotes every program's section (failureDetail)", () => {
  it("two Node programs crashing (command in the wrong directory): both headers and both messages, as the start step's verdict prints them", () => {
    const out = crash(process.execPath, ['server.js']);
    const section = (name: string) => `--- /srv/shop/logs/green/${name}.log\n${logTail(retried(out))}`;
    // The start step's stderr on a failed start (core/steps/switch.ts): each program's section, supervisor's status, the verdict.
    const stderr = `${section('client')}${section('admin')}shop-green:client FATAL Exited too quickly\nshop-green:admin FATAL Exited too quickly\nrelease r1 did not become healthy on slot green: client, admin; the live release keeps serving\n`;
    const detail = failureDetail('', stderr, (t) => t);
    for (const name of ['client', 'admin']) expect(detail).toContain(`--- /srv/shop/logs/green/${name}.log\nError: Cannot find module`);
    expect(detail).toMatch(/the live release keeps serving$/);
  });
});
