"""A small PostgreSQL client, standard library only, for probes run on bare test hosts (no psycopg there).

Protocol 3 over TCP: password, md5 and SCRAM-SHA-256 logins, queries with $1-style parameters (sent
separately from the SQL, never interpolated), multi-statement scripts, explicit transactions. Values come
back as text (str) or None. No TLS: the database is on the private test network.
"""
import base64
import hashlib
import hmac
import os
import socket
import struct
from urllib.parse import unquote, urlsplit


class PgError(Exception):
    """An error reported by the server (fields: S severity, C SQLSTATE code, M message, D detail, H hint)."""

    def __init__(self, fields):
        self.fields = fields
        self.code = fields.get("C", "")
        text = "{} {}: {}".format(fields.get("S", "ERROR"), self.code, fields.get("M", ""))
        if fields.get("D"):
            text += " ({})".format(fields["D"])
        super().__init__(text)


class Result:
    def __init__(self, columns, rows, tag):
        self.columns = columns
        self.rows = rows
        self.tag = tag

    def dicts(self):
        return [dict(zip(self.columns, row)) for row in self.rows]


def parse_url(url):
    """postgresql://user:password@host:port/database (also postgres:// and postgresql+driver://)."""
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ValueError("database URL must start with postgresql:// (got {!r})".format(parts.scheme + "://"))
    if not parts.username:
        raise ValueError("database URL has no user name")
    user = unquote(parts.username)
    return {
        "host": parts.hostname or "localhost",
        "port": parts.port or 5432,
        "user": user,
        "password": unquote(parts.password or ""),
        "database": unquote(parts.path.lstrip("/")) or user,
    }


def _cstr(text):
    return text.encode("utf-8") + b"\0"


class Connection:
    def __init__(self, url, timeout=10.0):
        p = parse_url(url)
        self._user = p["user"]
        self._password = p["password"]
        self._sock = socket.create_connection((p["host"], p["port"]), timeout=timeout)
        try:
            self._startup(p["database"])
        except BaseException:
            self._sock.close()
            raise

    # -- wire -----------------------------------------------------------------------------------
    def _send(self, kind, payload=b""):
        self._sock.sendall(kind + struct.pack("!i", len(payload) + 4) + payload)

    def _read_exact(self, n):
        chunks = []
        while n:
            chunk = self._sock.recv(n)
            if not chunk:
                raise ConnectionError("the database server closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _receive(self):
        header = self._read_exact(5)
        length = struct.unpack("!i", header[1:])[0]
        return header[:1], self._read_exact(length - 4)

    @staticmethod
    def _error_fields(payload):
        fields = {}
        for part in payload.split(b"\0"):
            if part:
                fields[part[:1].decode()] = part[1:].decode("utf-8", "replace")
        return fields

    # -- login ----------------------------------------------------------------------------------
    def _startup(self, database):
        params = b"".join(_cstr(k) + _cstr(v) for k, v in (
            ("user", self._user), ("database", database), ("client_encoding", "UTF8"), ("application_name", "sample-app")))
        payload = struct.pack("!i", 196608) + params + b"\0"
        self._sock.sendall(struct.pack("!i", len(payload) + 4) + payload)
        scram = None
        while True:
            kind, payload = self._receive()
            if kind == b"E":
                raise PgError(self._error_fields(payload))
            if kind == b"R":
                code = struct.unpack("!i", payload[:4])[0]
                if code == 0:
                    continue
                if code == 3:
                    self._send(b"p", _cstr(self._password))
                elif code == 5:
                    inner = hashlib.md5((self._password + self._user).encode()).hexdigest().encode()
                    self._send(b"p", _cstr("md5" + hashlib.md5(inner + payload[4:8]).hexdigest()))
                elif code == 10:
                    if b"SCRAM-SHA-256" not in payload[4:].split(b"\0"):
                        raise ConnectionError("the server offers no SASL mechanism this client knows")
                    scram = _Scram(self._password)
                    first = scram.client_first().encode()
                    self._send(b"p", _cstr("SCRAM-SHA-256") + struct.pack("!i", len(first)) + first)
                elif code == 11:
                    self._send(b"p", scram.client_final(payload[4:].decode()).encode())
                elif code == 12:
                    scram.verify_server(payload[4:].decode())
                else:
                    raise ConnectionError("unsupported authentication method {}".format(code))
            elif kind == b"Z":
                return
            # S (parameter status), K (backend key), N (notice): nothing to do

    # -- queries --------------------------------------------------------------------------------
    def _collect(self):
        columns, rows, tag, error = [], [], "", None
        while True:
            kind, payload = self._receive()
            if kind == b"T":
                count = struct.unpack("!h", payload[:2])[0]
                pos = 2
                columns = []
                for _ in range(count):
                    end = payload.index(b"\0", pos)
                    columns.append(payload[pos:end].decode())
                    pos = end + 1 + 18
            elif kind == b"D":
                count = struct.unpack("!h", payload[:2])[0]
                pos = 2
                row = []
                for _ in range(count):
                    size = struct.unpack("!i", payload[pos:pos + 4])[0]
                    pos += 4
                    if size < 0:
                        row.append(None)
                    else:
                        row.append(payload[pos:pos + size].decode("utf-8"))
                        pos += size
                rows.append(tuple(row))
            elif kind == b"C":
                tag = payload.rstrip(b"\0").decode()
            elif kind == b"E":
                error = PgError(self._error_fields(payload))
            elif kind == b"Z":
                if error:
                    raise error
                return Result(columns, rows, tag)

    def query(self, sql, params=()):
        """One statement; params bind to $1, $2... (None -> NULL, bool -> true/false, else str())."""
        bind = b"\0\0" + struct.pack("!hh", 0, len(params))
        for value in params:
            if value is None:
                bind += struct.pack("!i", -1)
            else:
                data = ("true" if value else "false") if isinstance(value, bool) else str(value)
                raw = data.encode("utf-8")
                bind += struct.pack("!i", len(raw)) + raw
        bind += struct.pack("!h", 0)
        self._send(b"P", b"\0" + _cstr(sql) + struct.pack("!h", 0))
        self._send(b"B", bind)
        self._send(b"D", b"P\0")
        self._send(b"E", b"\0" + struct.pack("!i", 0))
        self._send(b"S")
        return self._collect()

    def script(self, sql):
        """Several statements without parameters (a migration file), as one simple query."""
        self._send(b"Q", _cstr(sql))
        return self._collect()

    def close(self):
        try:
            self._send(b"X")
        except OSError:
            pass
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Scram:
    """SCRAM-SHA-256 (RFC 7677) without channel binding, as PostgreSQL speaks it."""

    def __init__(self, password):
        self._password = password.encode("utf-8")
        self._nonce = base64.b64encode(os.urandom(18)).decode()
        self._first_bare = "n=,r=" + self._nonce
        self._server_signature = None

    def client_first(self):
        return "n,," + self._first_bare

    def client_final(self, server_first):
        attrs = dict(item.split("=", 1) for item in server_first.split(","))
        if not attrs["r"].startswith(self._nonce):
            raise ConnectionError("SCRAM: the server's nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac("sha256", self._password, base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = "c=biws,r=" + attrs["r"]
        message = ",".join((self._first_bare, server_first, without_proof)).encode()
        signature = hmac.new(stored_key, message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self._server_signature = hmac.new(server_key, message, hashlib.sha256).digest()
        return without_proof + ",p=" + base64.b64encode(proof).decode()

    def verify_server(self, server_final):
        attrs = dict(item.split("=", 1) for item in server_final.split(","))
        if "v" not in attrs or not hmac.compare_digest(base64.b64decode(attrs["v"]), self._server_signature):
            raise ConnectionError("SCRAM: the server could not prove it knows the password")


def connect(url, timeout=10.0):
    return Connection(url, timeout)
