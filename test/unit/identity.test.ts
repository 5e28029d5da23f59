// The health gate's identity check (check_identity) and status's process view (report_slot), run by bash on
// this machine against real processes and real listening sockets (ss from iproute2): a program listening
// itself, through a child (a shell wrapper, npm start), as a pre-forking master with workers (gunicorn,
// uvicorn --workers, node cluster) passes; a daemon that left supervisor's tree, or a process of another
// release, fails, named by pid, command and release. supervisor's pid is given (sup_pids is replaced); sup_pids itself
// reads an answer of a real supervisord (4.2.5, Debian 12's) to getAllProcessInfo.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { parseReports } from '../../core/remote/types.ts';
import { scriptPrelude } from '../../core/remote/wrap.ts';
import { IDENTITY_FUNCTIONS, MASK_FUNCTIONS, SUPERVISOR_FUNCTIONS } from '../../core/steps/libraries.ts';
import { freePort } from '../support/ports.ts';
import { waitFor } from '../hosts/proc.ts';

const run = promisify(execFile);
const root = mkdtempSync(join(tmpdir(), 'ops-identity-'));
const release = (id: string) => {
  const dir = join(root, 'releases', id);
  mkdirSync(dir, { recursive: true });
  return dir;
};

/** A small server: listens on PORT; with WORKERS=n, a master binds and n forked workers accept (like gunicorn). */
const SERVER = String.raw`
import os, socket, sys, time
port, workers = int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', port)); s.listen(8)
for _ in range(workers):
    if os.fork() == 0:
        break
while True: time.sleep(1)
`;
writeFileSync(join(root, 'server.py'), SERVER);

const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    try {
      process.kill(-c.pid!, 'SIGKILL');
    } catch {}
  }
  await run('pkill', ['-KILL', '-f', `^/usr/bin/python3 ${join(root, 'server.py')}`]).catch(() => undefined);
});

/** Start `command` (bash) in `cwd` with OPS_RELEASE=`id`, in its own process group; its pid is "supervisor's". */
function start(command: string, cwd: string, id: string): ChildProcess {
  const c = spawn('bash', ['-c', command], { cwd, env: { PATH: process.env.PATH, OPS_RELEASE: id }, detached: true, stdio: 'ignore' });
  children.push(c);
  return c;
}

/**
 * Once `holders` processes hold the socket listening on `port` (a pre-forking master's workers inherit it after it
 * listens); up to 20 s (Python's start on a busy machine).
 */
async function listening(port: number, holders = 1): Promise<void> {
  let held = 0;
  const holding = async () => (held = (await run('ss', ['-Htlnp', `sport = :${port}`])).stdout.match(/pid=\d+/g)?.length ?? 0) >= holders;
  if (!(await waitFor(holding, 20_000, 50))) throw new Error(`${held} of ${holders} processes listen on ${port}`);
}

async function check(supPid: number, id: string, dir: string, port: number): Promise<{ ok: boolean; identity: string; reports: [string, string][]; foreign: number }> {
  const script = `${scriptPrelude}
${MASK_FUNCTIONS}
${IDENTITY_FUNCTIONS}
sup_pids() { declare -gA SUP_PID=([grp:grp-web]=${supPid}); }
if check_identity ${id} ${dir} grp web:${port}; then echo OK; else echo "FAIL $IDENTITY"; fi
REPORT_SLOT_FOREIGN=0
# The programs' user is another one than these processes': none is ours outside supervisor (report_slot's own:
# test/unit/leftovers.test.ts).
report_slot blue grp nobody ${join(root, 'releases')} web:${port}
echo "FOREIGN $REPORT_SLOT_FOREIGN"`;
  const { stdout } = await run('bash', ['-c', script]);
  const line = stdout.split('\n').find((l) => l.startsWith('OK') || l.startsWith('FAIL '))!;
  const foreign = Number(/^FOREIGN (\d+)$/m.exec(stdout)![1]);
  return { ok: line === 'OK', identity: line === 'OK' ? '' : line.replace(/^FAIL /, ''), reports: parseReports(stdout), foreign };
}

describe('who answers on a port (check_identity, report_slot)', () => {
  it('the program listening itself, from the release: accepted, reported with pid and release', async () => {
    const dir = release('r1');
    const port = await freePort();
    const p = start(`exec /usr/bin/python3 ${root}/server.py ${port}`, dir, 'r1');
    await listening(port);
    const r = await check(p.pid!, 'r1', dir, port);
    expect(r.identity).toBe('');
    expect(r.ok).toBe(true);
    expect(r.reports.filter(([k]) => k === 'proc')).toEqual([['proc', `blue\tweb\t${p.pid}\tr1\t${dir}\t/usr/bin/python3 ${root}/server.py ${port}`]]);
    expect(r.reports.filter(([k]) => k === 'listener')).toEqual([['listener', `blue\tweb\t${p.pid}\ttree\tr1\t${dir}\t/usr/bin/python3 ${root}/server.py ${port}`]]);
    // The slot's own listener is not counted as foreign (what a rollback's lock step refuses on).
    expect(r.foreign).toBe(0);
  });

  it('a listener that is a child (a shell wrapper, npm start), and a pre-forking master with workers: accepted', async () => {
    const dir = release('r2');
    const port = await freePort();
    const wrapper = start(`/usr/bin/python3 ${root}/server.py ${port}; true`, dir, 'r2');
    await listening(port);
    expect((await check(wrapper.pid!, 'r2', dir, port)).ok).toBe(true);
    const port2 = await freePort();
    const master = start(`exec /usr/bin/python3 ${root}/server.py ${port2} 2`, dir, 'r2');
    await listening(port2, 3);
    const r = await check(master.pid!, 'r2', dir, port2);
    expect(r.ok).toBe(true);
    expect(r.reports.filter(([k]) => k === 'listener')).toHaveLength(3); // the master and its two workers hold the socket
    expect(r.foreign).toBe(0);
  });

  it('a daemon that left supervisor\'s tree answers: refused, naming its pid, command and release', async () => {
    const dir = release('r3');
    const port = await freePort();
    // Double fork + setsid, as a program that daemonizes itself does: the listener is re-parented away.
    const p = start(`(setsid /usr/bin/python3 ${root}/server.py ${port} &); exec sleep 60`, dir, 'r3');
    await listening(port);
    const r = await check(p.pid!, 'r3', dir, port);
    expect(r.ok).toBe(false);
    expect(r.identity).toMatch(new RegExp(`^port ${port} of program web is answered by pid \\d+ \\(/usr/bin/python3 .*server\\.py ${port}\\) running r3, in ${dir}, which supervisor did not start \\(its process for web is pid ${p.pid}\\)$`));
    expect(r.reports.find(([k]) => k === 'listener')![1]).toMatch(/\tother\tr3\t/);
    // Counted for the rollback's lock step, which refuses on it (REPORT_SLOT_FOREIGN).
    expect(r.foreign).toBe(1);
  });

  it('the process supervisor runs is an older release (supervisor kept its old config): refused, naming the release', async () => {
    const old = release('r0');
    const dir = release('r4');
    const port = await freePort();
    const p = start(`exec /usr/bin/python3 ${root}/server.py ${port}`, old, 'r0');
    await listening(port);
    const r = await check(p.pid!, 'r4', dir, port);
    expect(r.ok).toBe(false);
    expect(r.identity).toMatch(new RegExp(`answered by pid ${p.pid} \\(/usr/bin/python3 .*\\) running r0, in ${old}, not release r4$`));
  });

  it("a program of the new release that changes into another release (cd <base>/current before the switch): refused though its OPS_RELEASE is the new one", async () => {
    const old = release('r5old');
    const dir = release('r5');
    const port = await freePort();
    // supervisor starts it in the new release with the new OPS_RELEASE; its command changes into the live (old) one.
    const p = start(`cd ${old} && exec /usr/bin/python3 ${root}/server.py ${port}`, dir, 'r5');
    await listening(port);
    const r = await check(p.pid!, 'r5', dir, port);
    expect(r.ok).toBe(false);
    expect(r.identity).toMatch(new RegExp(`answered by pid ${p.pid} \\(/usr/bin/python3 .*\\) running r5, in ${old}, not release r5$`));
    // ops status shows the release it runs from, not the one its OPS_RELEASE names.
    expect(r.reports.filter(([k]) => k === 'listener').map(([, v]) => v.split('\t')[4])).toEqual(['r5old']);
    // Outside every release (a daemon's "/"), OPS_RELEASE still tells.
    const port2 = await freePort();
    const q = start(`cd / && exec /usr/bin/python3 ${root}/server.py ${port2}`, dir, 'r5');
    await listening(port2);
    expect((await check(q.pid!, 'r5', dir, port2)).ok).toBe(true);
  });

  it("a program started in the new release that runs another release's files by path (a start script's <base>/current/app.py, a PYTHONPATH through it): refused, naming the path and the release", async () => {
    const old = release('r6old');
    const dir = release('r6');
    const live = join(root, 'current6');
    symlinkSync(old, live);
    writeFileSync(join(old, 'server.py'), SERVER);
    // Its working directory and OPS_RELEASE are the new release's; the code it runs is the live one's (`current`
    // names it until the switch), as a committed start script written for a Capistrano-style layout does.
    const port = await freePort();
    const p = start(`exec /usr/bin/python3 ${live}/server.py ${port}`, dir, 'r6');
    await listening(port);
    const r = await check(p.pid!, 'r6', dir, port);
    expect(r.ok).toBe(false);
    expect(r.identity).toMatch(new RegExp(`answered by pid ${p.pid} \\(/usr/bin/python3 ${live}/server\\.py ${port}\\) running r6, in ${dir}, whose command line or environment names ${live}/server\\.py, release r6old's code, not release r6 \\(\`current\` names the live release until the switch: use \\{release\\}\\)$`));
    // ops status shows the release it runs as the old one (which it then compares with `current`).
    expect(r.reports.filter(([k]) => k === 'proc').map(([, v]) => v.split('\t')[3])).toEqual(['r6old']);
    expect(r.reports.filter(([k]) => k === 'listener').map(([, v]) => v.split('\t')[4])).toEqual(['r6old']);
    // Relative (../current6/server.py from the new release), and as an --option=value: the same.
    const port2 = await freePort();
    const q = start(`exec /usr/bin/python3 ${root}/server.py ${port2} 0 --app=../../current6/server.py`, dir, 'r6');
    await listening(port2);
    expect((await check(q.pid!, 'r6', dir, port2)).identity).toContain("names ../../current6/server.py, release r6old's code");
    // An environment entry (a PYTHONPATH list) through `current`: the same.
    const port3 = await freePort();
    const e = spawn('bash', ['-c', `exec /usr/bin/python3 ${root}/server.py ${port3}`], { cwd: dir, env: { PATH: process.env.PATH, OPS_RELEASE: 'r6', PYTHONPATH: `/nonexistent:${live}/src` }, detached: true, stdio: 'ignore' });
    children.push(e);
    await listening(port3);
    expect((await check(e.pid!, 'r6', dir, port3)).identity).toContain(`names ${live}/src, release r6old's code`);
    // Paths into its own release, or outside the releases, are its own business: accepted.
    const port4 = await freePort();
    const ok = start(`exec /usr/bin/python3 ${root}/server.py ${port4} 0 ${dir}/server.py /etc/hosts ${join(root, 'releases')}`, dir, 'r6');
    await listening(port4);
    expect((await check(ok.pid!, 'r6', dir, port4)).identity).toBe('');
  });

  it("a program started by npm start in a subdirectory (npm puts every parent's node_modules/.bin on PATH, <base>/releases/node_modules/.bin among them): accepted, a path naming no release", async () => {
    const dir = release('r7');
    const pkg = join(dir, 'frontend');
    mkdirSync(pkg, { recursive: true });
    // npm run-script's PATH for a package in <release>/frontend (npm 9/10, @npmcli/run-script): each ancestor's node_modules/.bin.
    const bins = [pkg, dir, join(root, 'releases'), root, '/'].map((d) => join(d, 'node_modules/.bin'));
    const port = await freePort();
    const p = spawn('bash', ['-c', `/usr/bin/python3 ${root}/server.py ${port}; true`], { cwd: pkg, env: { PATH: `${bins.join(':')}:${process.env.PATH}`, OPS_RELEASE: 'r7' }, detached: true, stdio: 'ignore' });
    children.push(p);
    await listening(port);
    const r = await check(p.pid!, 'r7', dir, port);
    expect(r.identity).toBe('');
    expect(r.ok).toBe(true);
    expect(r.reports.filter(([k]) => k === 'listener').map(([, v]) => v.split('\t')[4])).toEqual(['r7']);
  });

  it("with SUP_READ set, supervisor's pids are those the caller has just read (the start's second check after group_settled's): no getAllProcessInfo of its own", async () => {
    const dir = release('r8');
    const port = await freePort();
    const p = start(`exec /usr/bin/python3 ${root}/server.py ${port}`, dir, 'r8');
    await listening(port);
    const script = `${scriptPrelude}
${MASK_FUNCTIONS}
${IDENTITY_FUNCTIONS}
asked=0
sup_pids() { asked=$(( asked + 1 )); declare -gA SUP_PID=([grp:grp-web]=${p.pid}); }
check_identity r8 ${dir} grp web:${port} && echo "own ok asked=$asked"
SUP_READ=1 check_identity r8 ${dir} grp web:${port} && echo "read ok asked=$asked"
# What the caller read is what counts: another pid there (this shell), the listener is not in its tree.
SUP_PID[grp:grp-web]=$$
SUP_READ=1 check_identity r8 ${dir} grp web:${port} || echo "stale refused asked=$asked"`;
    const { stdout } = await run('bash', ['-c', script]);
    expect(stdout.trim().split('\n').slice(-3)).toEqual(['own ok asked=1', 'read ok asked=1', 'stale refused asked=1']);
  });

  it('nothing running for the program, or nothing listening: refused', async () => {
    const dir = release('r5');
    const port = await freePort();
    const r = await check(0, 'r5', dir, port);
    expect(r.identity).toBe(`nothing listens on port ${port} of program web (it answered the health check: another network namespace?)`);
    const p = start(`exec /usr/bin/python3 ${root}/server.py ${port}`, dir, 'r5');
    await listening(port);
    expect((await check(0, 'r5', dir, port)).identity).toMatch(/while supervisor runs no process for grp:grp-web$/);
    void p;
  });
});

describe('exposed_listeners', () => {
  it('warns of a program listening on every address (next start\'s default), naming it and the fix; not of one on 127.0.0.1', async () => {
    const [open, local] = [await freePort(), await freePort()];
    const bind = (host: string, port: number) => `import socket, time\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((${JSON.stringify(host)}, ${port})); s.listen(8)\nwhile True: time.sleep(1)\n`;
    for (const [host, port] of [['0.0.0.0', open], ['127.0.0.1', local]] as const) {
      const c = spawn('/usr/bin/python3', ['-c', bind(host, port)], { detached: true, stdio: 'ignore' });
      children.push(c);
      await listening(port);
    }
    const script = `${scriptPrelude}
${MASK_FUNCTIONS}
${IDENTITY_FUNCTIONS}
exposed_listeners web:${open}:/healthz api:${local}:/api/health/`;
    const { stdout, stderr } = await run('bash', ['-c', script]);
    expect(stdout).not.toContain('warning');
    expect(stderr.split('\n').filter((l) => l.startsWith('warning'))).toEqual([
      `warning: program web listens on 0.0.0.0:${open}, not only on 127.0.0.1: it is reachable around nginx (no TLS, no security headers, on either slot); make it listen on 127.0.0.1 (next start -H 127.0.0.1; HOST=127.0.0.1 for adapter-node; gunicorn --bind 127.0.0.1:{port}; a host in Node's listen()), or firewall the port`,
    ]);
  });
});

describe('where a program listens besides its port (group_listens, and check_identity with OTHER_PORTS)', () => {
  /** A server binding each TCP port with SO_REUSEPORT (gunicorn's reuse_port) and each unix socket path, in that order. */
  const binder = (ports: number[], sockets: string[] = []) => `import socket, time
held = []
for p in ${JSON.stringify(ports)}:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1); s.bind(('127.0.0.1', p)); s.listen(8); held.append(s)
for path in ${JSON.stringify(sockets)}:
    u = socket.socket(socket.AF_UNIX); u.bind(path); u.listen(8); held.append(u)
while True: time.sleep(1)
`;
  const serve = (dir: string, id: string, ports: number[], sockets: string[] = []) => {
    const c = spawn('/usr/bin/python3', ['-c', binder(ports, sockets)], { cwd: dir, env: { PATH: process.env.PATH, OPS_RELEASE: id }, detached: true, stdio: 'ignore' });
    children.push(c);
    return c;
  };

  it("a new release's program sharing the other slot's port (SO_REUSEPORT) beside its own: check_identity fails naming it and the fix, only where OTHER_PORTS names that port", async () => {
    const [live, own] = [await freePort(), await freePort()];
    serve(release('l1'), 'l1', [live]); // the live release on the other slot
    await listening(live);
    const dir = release('n1');
    const p = serve(dir, 'n1', [own, live]);
    await listening(live, 2);
    const script = (other: string) => `${scriptPrelude}
${MASK_FUNCTIONS}
${IDENTITY_FUNCTIONS}
sup_pids() { declare -gA SUP_PID=([grp:grp-web]=${p.pid}); }
${other}
if check_identity n1 ${dir} grp web:${own}; then echo OK; else echo "FAIL $IDENTITY"; fi`;
    expect((await run('bash', ['-c', script(`OTHER_SLOT=blue OTHER_PORTS="${live}"`)])).stdout.trim().split('\n').pop()).toBe(
      `FAIL program web listens on 127.0.0.1:${live}, slot blue's port (the live release's, or the one kept warm there): a port the app takes from elsewhere than its slot (a config file such as gunicorn.conf.py's bind, a default, a .env value); sharing it (SO_REUSEPORT: gunicorn's reuse_port) it answers visitors of that slot. Give each program its slot's port: {port} in its command or env (--bind 127.0.0.1:{port}, PORT: "{port}"), which the app must use`,
    );
    // Another port than the other slot's is the program's own business (a metrics port): accepted.
    expect((await run('bash', ['-c', script(`OTHER_SLOT=blue OTHER_PORTS="${await freePort()}"`)])).stdout.trim().split('\n').pop()).toBe('OK');
  });

  it('names every unix socket and TCP port (in ss\'s order) of the tree of the program but its own port; nothing of another process, nothing for a program supervisor runs no process for', async () => {
    const [own, other, stranger] = [await freePort(), await freePort(), await freePort()];
    const sock = join(root, `api-${own}.sock`);
    const dir = release('n2');
    writeFileSync(join(dir, 'bind.py'), binder([own, other], [sock]));
    const p = start(`/usr/bin/python3 bind.py; true`, dir, 'n2'); // a child of the wrapper
    serve(dir, 'n2', [stranger]);
    await listening(other);
    await listening(stranger);
    const script = `${scriptPrelude}
${MASK_FUNCTIONS}
${IDENTITY_FUNCTIONS}
sup_pids() { declare -gA SUP_PID=([grp:grp-web]=${p.pid} [grp:grp-api]=0); }
sup_pids
until [ -S ${sock} ]; do sleep 0.05; done
group_listens grp web:${own}:/health api:${own + 1}:/health
echo "web=\${LISTENS_ELSEWHERE[web]:-} api=\${LISTENS_ELSEWHERE[api]:-} other=\${#LISTENS_OTHER_SLOT[@]}"`;
    expect((await run('bash', ['-c', script])).stdout.trim().split('\n').pop()).toBe(`web=unix socket ${sock}, 127.0.0.1:${other} api= other=0`);
  });
});

describe('sup_pids', () => {
  it("reads every program's pid from one getAllProcessInfo answer of supervisord 4.2.5, by group and name", async () => {
    const answer = join(import.meta.dirname, '..', 'fixtures', 'supervisor', 'getAllProcessInfo-4.2.5.xml');
    expect(readFileSync(answer, 'utf8')).toContain('<methodResponse>');
    const script = `${scriptPrelude}
${SUPERVISOR_FUNCTIONS}
rpc() { [ "$1" = supervisor.getAllProcessInfo ] && cat ${answer}; }
sup_pids
for k in sample-blue:sample-blue-client sample-blue:sample-blue-server sample-green:sample-green-server sample-green:sample-green-web; do echo "$k=${'$'}{SUP_PID[$k]:-none}"; done`;
    const { stdout } = await run('bash', ['-c', script]);
    expect(stdout.trim().split('\n').slice(-4)).toEqual(['sample-blue:sample-blue-client=352', 'sample-blue:sample-blue-server=350', 'sample-green:sample-green-server=4386', 'sample-green:sample-green-web=none']);
  });

  it('group_fatal: a group one of whose programs supervisor gave up on (FATAL), from a real answer; not another group, not a fault', async () => {
    // supervisord 4.2.5 (PyPI, the version Debian 12 ships): sample-green-server exits at once (startretries=1 → FATAL).
    const answer = join(import.meta.dirname, '..', 'fixtures', 'supervisor', 'getAllProcessInfo-fatal-4.2.5.xml');
    const script = `${scriptPrelude}
${SUPERVISOR_FUNCTIONS}
rpc() { if [ -n "${'$'}{FAULT:-}" ]; then echo '<fault>no answer</fault>'; else cat ${answer}; fi; }
for g in sample-green sample-blue-server sample-gre; do if group_fatal "$g"; then echo "$g=fatal"; else echo "$g=no"; fi; done
FAULT=1; if group_fatal sample-green; then echo fault=fatal; else echo fault=no; fi`;
    const { stdout } = await run('bash', ['-c', script]);
    expect(stdout.trim().split('\n').slice(-4)).toEqual(['sample-green=fatal', 'sample-blue-server=no', 'sample-gre=no', 'fault=no']);
  });

  it('a supervisor that does not answer gives no pids (the identity check then names it)', async () => {
    const script = `${scriptPrelude}
${SUPERVISOR_FUNCTIONS}
rpc() { echo '<fault>supervisor does not answer on /var/run/supervisor.sock (is it running?)</fault>'; }
sup_pids
echo "count=${'$'}{#SUP_PID[@]}"`;
    const { stdout } = await run('bash', ['-c', script]);
    expect(stdout.trim().split('\n').at(-1)).toBe('count=0');
  });
});
