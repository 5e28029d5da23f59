// The app's PostgreSQL as the host sees it: where the live release's .env points (a database URL, or libpq's PG*
// variables) and whether a PostgreSQL server answers there. Read by `ops status` in its one round trip when a health
// check fails, so that "health check failed" comes with its likely cause. Never the password: only host and port
// leave the host.
import type { Target } from '../target.ts';
import { quote } from '../shell.ts';

/** Seconds each address is given to answer (connect, then PostgreSQL's one-byte answer to an SSLRequest). */
export const DB_PROBE_SECONDS = 3;
/** The most addresses probed (a libpq URL may list several hosts): bounds the probe to this × DB_PROBE_SECONDS. */
const DB_PROBE_MAX = 3;

/**
 * The .env variables of the environment that name its PostgreSQL: a database URL (`APP_DATABASE_URL`,
 * `DATABASE_URL`, `*_DB_URL`, `*_POSTGRES_DSN`...) or libpq's `PGHOST`/`PGPORT` (PostgreSQL's documentation,
 * "Environment Variables"), in the order the configuration gives them.
 */
export function databaseVariables(env: Target): string[] {
  return Object.keys(env.config.env ?? {}).filter((k) => /(^|_)(DATABASE|DB|POSTGRES|POSTGRESQL|PG)_?(URL|URI|DSN)$/i.test(k) || /^PG(HOST|PORT)$/.test(k));
}

/**
 * Python (the host's python3, which supervisor runs on) that reads the environ of a release (argv[1]: NUL-separated
 * NAME=VALUE, what its programs get), takes the database's addresses from the variables argv[2:] (URLs parsed by
 * urllib.parse; libpq's rules, PostgreSQL's "Connection Strings": a comma-separated host list, `host=`/`port=` query
 * parameters, a host that is a directory is a Unix socket, none is the default socket /var/run/postgresql, port 5432),
 * and probes each: a TCP (or Unix socket) connection and an SSLRequest, which any PostgreSQL server answers with one
 * byte, S or N. One line per address: `VAR<TAB>ADDRESS<TAB>VERDICT<TAB>DETAIL`, VERDICT one of answers, refused,
 * timeout, unresolved, other (something answers, not PostgreSQL), error (DETAIL: the system's words), or a line
 * `VAR<TAB><TAB>unreadable<TAB>why` for a value that is not one it can read. Prints no password, user or database name.
 */
const DB_PROBE_PY = String.raw`import os, socket, sys
from urllib.parse import urlsplit, parse_qs, unquote
T = ${DB_PROBE_SECONDS}
try:
    data = open(sys.argv[1], "rb").read()
except OSError as e:
    sys.exit(0)
env = {}
for rec in data.split(b"\0"):
    k, sep, v = rec.partition(b"=")
    if sep:
        env[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
def clean(s):
    return "".join(c if c.isprintable() and c not in "\t" else "?" for c in s)[:200]
def addresses(name, value):
    if name == "PGHOST" or name == "PGPORT":
        hosts = (env.get("PGHOST") or "").split(",")
        ports = (env.get("PGPORT") or "").split(",")
    else:
        u = urlsplit(value)
        if not u.scheme.startswith("postgres"):
            return None
        q = parse_qs(u.query)
        netloc = u.netloc.rpartition("@")[2]
        hosts, ports = [], []
        for part in netloc.split(","):
            p = urlsplit("//" + part)
            hosts.append(unquote(p.hostname or ""))
            ports.append(str(p.port or ""))
        if q.get("host"):
            hosts = q["host"][-1].split(",")
        if q.get("port"):
            ports = q["port"][-1].split(",")
    out = []
    for i, h in enumerate(hosts):
        port = ports[i] if i < len(ports) else (ports[-1] if len(ports) == 1 else "")
        port = int(port or 5432)
        out.append((h or "/var/run/postgresql", port))
    return out
def probe(h, port):
    try:
        if h.startswith("/"):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(T)
            s.connect("%s/.s.PGSQL.%d" % (h, port))
        else:
            s = socket.create_connection((h, port), timeout=T)
        with s:
            s.settimeout(T)
            s.sendall(b"\0\0\0\x08\x04\xd2\x16\x2f")
            b = s.recv(1)
        if b in (b"S", b"N"):
            return ("answers", "")
        return ("other", "it closed the connection without a word" if not b else "")
    except ConnectionRefusedError:
        return ("refused", "")
    except FileNotFoundError:
        return ("refused", "no socket")
    except socket.timeout:
        return ("timeout", "")
    except socket.gaierror as e:
        return ("unresolved", clean(str(e.strerror or e)))
    except OSError as e:
        return ("error", clean(str(e.strerror or e)))
seen, n = set(), 0
names = sys.argv[2:]
if "PGHOST" in names and "PGPORT" in names:
    names.remove("PGPORT")
for name in names:
    value = env.get(name)
    if not value:
        continue
    try:
        addrs = addresses(name, value)
    except ValueError:
        print("%s\t\tunreadable\tnot a URL with a valid host and port" % name)
        continue
    for h, port in addrs or []:
        where = ("%s/.s.PGSQL.%d" % (h, port)) if h.startswith("/") else ("[%s]:%d" % (h, port) if ":" in h else "%s:%d" % (h, port))
        if where in seen or n >= ${DB_PROBE_MAX}:
            continue
        seen.add(where)
        n += 1
        verdict, detail = probe(h, port)
        print("%s\t%s\t%s\t%s" % (name, clean(where), verdict, detail))
`;

/**
 * A shell command printing one line per address of the app's PostgreSQL (DB_PROBE_PY's lines) as the live release's
 * environ `environ` (a shell word: a quoted path or "$var") names it; nothing when python3 is missing; undefined when
 * the environment names no database variable. At most DB_PROBE_MAX × DB_PROBE_SECONDS × 2 seconds (then cut by timeout).
 */
export function databaseProbeShell(env: Target, environ: string): string | undefined {
  const vars = databaseVariables(env);
  if (!vars.length) return undefined;
  return `{ ! command -v python3 >/dev/null 2>&1 || /usr/bin/timeout ${DB_PROBE_MAX * DB_PROBE_SECONDS * 2 + 2} python3 -c ${quote(DB_PROBE_PY)} ${environ} ${vars.map(quote).join(' ')} 2>/dev/null || true; }`;
}

export interface DatabaseProbe {
  variable: string;
  /** host:port, [v6]:port or a Unix socket's path; '' when the value could not be read. */
  address: string;
  verdict: 'answers' | 'refused' | 'timeout' | 'unresolved' | 'other' | 'error' | 'unreadable';
  detail: string;
}

/** The probe's report lines (databaseProbeShell), parsed; lines of another form are skipped. */
export function parseDatabaseProbes(lines: string[]): DatabaseProbe[] {
  return lines.flatMap((l) => {
    const [variable, address, verdict, ...rest] = l.split('\t');
    if (!variable || !verdict || !['answers', 'refused', 'timeout', 'unresolved', 'other', 'error', 'unreadable'].includes(verdict)) return [];
    return [{ variable, address: address ?? '', verdict: verdict as DatabaseProbe['verdict'], detail: rest.join(' ') }];
  });
}

/**
 * What a probe says about a failed health check, with what to check: a problem when PostgreSQL cannot be reached
 * from the host (refused, timed out, a name that does not resolve, something else answering there), else (it
 * answers) undefined: the cause is past the connection, which the caller says once (databaseAnswers).
 */
export function databaseProblem(p: DatabaseProbe): string | undefined {
  const at = `PostgreSQL at ${p.address} (${p.variable} of the live release's .env)`;
  const check = `check the database server (systemctl status postgresql there; pg_isready -h HOST -p PORT from this host), the firewall between them, and that ${p.variable} names the right host and port (ops secrets show, then ops deploy with the right one)`;
  switch (p.verdict) {
    case 'answers':
      return undefined;
    case 'refused':
      return `${at} refused the connection${p.detail ? ` (${p.detail})` : ''}: nothing listens there (PostgreSQL stopped, or on another port/address: its listen_addresses and port); ${check}`;
    case 'timeout':
      return `${at} did not answer within ${DB_PROBE_SECONDS}s (connection timed out): the server is down or a firewall drops the traffic; ${check}`;
    case 'unresolved':
      return `${at}: the host name does not resolve on this host (${p.detail}); ${check}`;
    case 'other':
      return `${at}: something accepts connections there, but not PostgreSQL (no answer to its SSLRequest${p.detail ? `: ${p.detail}` : ''}): ${check}`;
    case 'unreadable':
      return `${p.variable} of the live release's .env is not a database URL with a valid host and port: set it right (ops secrets set, or the env setting) and deploy`;
    default:
      return `${at} cannot be reached: ${p.detail || 'connection failed'}; ${check}`;
  }
}

/** The hint for a failed health check while every address of the database answers: the login or the database itself. */
export function databaseAnswers(ps: DatabaseProbe[]): string {
  const where = [...new Set(ps.map((p) => p.address))].join(', ');
  return `PostgreSQL at ${where} answers from this host: if the health check's failure is the database's, it is past the connection (a wrong password after a rotation: the live release's .env keeps the old one until ops deploy; a role or database dropped or renamed; pg_hba.conf refusing this host): the health check's words above say which`;
}
