# Runs a command on a new pseudo-terminal, as a person at a terminal would (the tests' way to see what a terminal
# shows): python3 on_terminal.py '<json spec>'. The spec: argv, cwd, env, and steps, each [text to wait for, what to type]
# (or [text, {"signal": "SIGTERM"}]: the signal sent to the shell's child, the command under test; or [text, {"hangup": true}]:
# the terminal closed, as a closed terminal window closes it). The text waited for is the terminal's, or {"file": path,
# "text": text} a file's (a command whose stderr goes to a file). Text typed is sent as UTF-8, a lone "\udcXX" in it as
# the byte XX (surrogateescape: bytes that are not UTF-8, as a terminal set to latin1 sends them). Prints
# {"out": everything the terminal showed, "status": the exit status} as JSON once the terminal is closed.
import json, os, pty, select, signal, sys, time

spec = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.chdir(spec['cwd'])
    os.execvpe(spec['argv'][0], spec['argv'], spec['env'])

out = b''

def read_some(timeout):
    global out
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return True
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        return False
    if not chunk:
        return False
    out += chunk
    return True

def seen(wait):
    if isinstance(wait, dict):
        try:
            return wait['text'] in open(wait['file'], encoding='utf8', errors='replace').read()
        except OSError:
            return False
    return wait.encode() in out

closed = False
for wait, send in spec['steps']:
    end = time.time() + 60
    while not seen(wait):
        if time.time() > end or not read_some(min(0.2, max(0.0, end - time.time()))) and not isinstance(wait, dict):
            sys.stderr.write('never saw %r; the terminal showed %r\n' % (wait, out.decode('utf8', 'replace')))
            os.kill(pid, signal.SIGKILL)
            sys.exit(3)
    time.sleep(0.2)  # typed by a person: after the prompt is drawn
    if isinstance(send, dict) and send.get('hangup'):
        os.close(fd)  # the terminal's master side gone: the kernel hangs the terminal up
        closed = True
        break
    if isinstance(send, dict):
        children = open('/proc/%d/task/%d/children' % (pid, pid)).read().split()
        os.kill(int(children[0]), getattr(signal, send['signal']))
    else:
        os.write(fd, send.encode('utf-8', 'surrogateescape'))  # \udcXX in the spec: the byte XX, not UTF-8

end = time.time() + 60
while not closed and time.time() < end and read_some(1):
    pass
_, status = os.waitpid(pid, 0)
print(json.dumps({'out': out.decode('utf8', 'replace'), 'status': os.waitstatus_to_exitcode(status)}))
