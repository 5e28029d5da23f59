"""Read a supervisor configuration with supervisor's own code and print what it would run, as JSON.

Usage: <venv with supervisor>/bin/python supervisor_parse.py MAIN.conf
For each program: the command, its argv (shlex.split, as supervisor's process.py does before execve), the
environment (supervisor's own dict_of_key_value_pairs), the directory and the stdout log file. Also the
environment parsed in POSIX shlex mode, as supervisor's development branch does (datatypes.py with
shlex_posix_works), so a form read the same way by both is checked. A refused file prints
{"error": "<supervisor's message>"}.
"""
import glob
import json
import os
import shlex
import sys

from supervisor.options import ServerOptions, UnhosedConfigParser


def posix_pairs(arg):
    lexer = shlex.shlex(str(arg), posix=True)
    lexer.wordchars += '/.+-():'
    tokens = list(lexer)
    out = {}
    for i in range(0, len(tokens), 4):
        k, eq, v = tokens[i:i + 3]
        assert eq == '='
        out[k] = v
    return out


def main(path):
    opts = ServerOptions()
    try:
        opts.realize(args=['-c', path])
    except SystemExit:
        print(json.dumps({'error': 'refused (message on stderr)'}))
        return
    except ValueError as e:
        print(json.dumps({'error': str(e)}))
        return
    # The environment= strings as written (formatted once, as supervisor does), for the POSIX-mode reading.
    raw = {}
    parser = UnhosedConfigParser()
    for f in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(path)), 'conf.d', '*.conf'))):
        parser.read(f)
    for section in parser.sections():
        if section.startswith('program:') and parser.has_option(section, 'environment'):
            raw[section.split(':', 1)[1]] = parser.get(section, 'environment') % {}
    out = {}
    for group in opts.process_group_configs:
        for p in group.process_configs:
            out[p.name] = {
                'group': group.name,
                'command': p.command,
                'argv': shlex.split(p.command),
                'environment': p.environment,
                'directory': p.directory,
                'stdout_logfile': p.stdout_logfile,
                'environment_posix': posix_pairs(raw[p.name]) if p.name in raw else {},
            }
    print(json.dumps({'programs': out}, default=str))


if __name__ == '__main__':
    main(sys.argv[1])
