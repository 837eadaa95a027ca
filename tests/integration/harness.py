"""Integration test harness for cutover (Python 3 standard library only).

Each test function receives an Env: a fresh temporary directory plus helpers
that start real processes on free 127.0.0.1 ports and always stop them:

  env.backend(name, color, *args)  the C test backend (cutover-testbackend)
  env.raw_backend(handler)         an in-process Python upstream that records
                                   every accepted connection and every byte
  env.cutoverd(blue=[...], ...)    writes a config into the temp dir, starts
                                   $CUTOVERD -c FILE, waits until it accepts
  env.conn(port)                   a raw client connection (send bytes, read
                                   whole HTTP responses with timeouts)

When the test ends, Env.close() stops everything (SIGTERM, then SIGKILL) and
fails the test if cutoverd did not exit 0 on SIGTERM or if its log holds a
sanitizer report or an "[error]" line the test did not declare expected.
"""

import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
import zlib
from contextlib import contextmanager

HERE = os.path.dirname(os.path.abspath(__file__))


class TestFailure(AssertionError):
    """A test's one stated reason for failing."""


class TestSkip(Exception):
    """Raised by a test that cannot run here (a tool it needs is missing);
    run.py reports it as SKIP, counted neither as passed nor as failed."""


def fail(msg):
    raise TestFailure(msg)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def rss_kib(pid):
    """Resident memory of process pid in KiB (VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    fail("no VmRSS in /proc/%d/status" % pid)


# --------------------------------------------------------------------------
# Binaries


def _find_binary(env_var, candidates):
    path = os.environ.get(env_var)
    if path:
        return os.path.abspath(path)
    for cand in candidates:
        cand = os.path.abspath(os.path.join(HERE, cand))
        if os.access(cand, os.X_OK):
            return cand
    return os.path.abspath(os.path.join(HERE, candidates[0]))


def cutoverd_path():
    return _find_binary("CUTOVERD", ["../../src/cutoverd", "../../build/src/cutoverd"])


def testbackend_path():
    return _find_binary("TESTBACKEND", ["../backend/cutover-testbackend",
                                        "../../build/tests/backend/cutover-testbackend"])


def binary_has_asan(path):
    try:
        with open(path, "rb") as f:
            return b"libasan" in f.read()
    except OSError:
        return False


# --------------------------------------------------------------------------
# Ports and polling

_handed_out = set()
_port_lock = threading.Lock()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now, never the
    same twice in one run."""
    with _port_lock:
        for _ in range(200):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            finally:
                s.close()
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    fail("no free port found")


def wait_for(cond, timeout, what, interval=0.02):
    """Polls cond() until it returns a true value (returned) or fails."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            fail("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def port_accepts(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
    except OSError:
        return False
    s.close()
    return True


# --------------------------------------------------------------------------
# The test pattern (same as tests/backend/backend.c)

PATTERN_PERIOD = 65521
_BLOCK = bytes(((j * 131) ^ (j >> 8)) & 0xFF for j in range(PATTERN_PERIOD))
MAX_PIECE = 1 << 20
_BIG = _BLOCK * ((PATTERN_PERIOD + 4 * MAX_PIECE) // PATTERN_PERIOD + 1)
_BIGVIEW = memoryview(_BIG)


def established_to(pid, port):
    """TCP connections that process pid holds in ESTABLISHED state to port
    on this host (e.g. cutoverd's upstream connections to a backend), read
    from /proc: another process's connections to that port do not count."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue  # closed meanwhile
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    n = 0
    want = ":%04X" % port
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[2].endswith(want) and fields[3] == "01" and fields[9] in inodes:
                n += 1
    return n


def pattern_pieces(n, piece=MAX_PIECE):
    """Yields memoryviews covering the first n bytes of the pattern stream."""
    off = 0
    while off < n:
        k = min(piece, n - off)
        s = off % PATTERN_PERIOD
        yield _BIGVIEW[s:s + k]
        off += k


def pattern_bytes(n):
    return b"".join(bytes(p) for p in pattern_pieces(n))


def pattern_crc32(n):
    crc = 0
    for p in pattern_pieces(n):
        crc = zlib.crc32(p, crc)
    return crc


class PatternChecker:
    """A body sink that checks data against the pattern stream as it comes."""

    def __init__(self):
        self.offset = 0
        self.mismatch = None

    def __call__(self, data):
        if self.mismatch is not None:
            self.offset += len(data)
            return
        pos = 0
        while pos < len(data):
            k = min(MAX_PIECE, len(data) - pos)
            s = self.offset % PATTERN_PERIOD
            if _BIGVIEW[s:s + k] != data[pos:pos + k]:
                exp = _BIG[s:s + k]
                got = bytes(data[pos:pos + k])
                i = next(i for i in range(k) if exp[i] != got[i])
                self.mismatch = self.offset + i
                self.offset += len(data) - pos
                return
            self.offset += k
            pos += k


class CRCSink:
    def __init__(self):
        self.length = 0
        self.crc = 0

    def __call__(self, data):
        self.length += len(data)
        self.crc = zlib.crc32(data, self.crc)


# --------------------------------------------------------------------------
# Raw HTTP over sockets


class Message:
    """A parsed HTTP message head (request or response) and its body."""

    def __init__(self):
        self.start_line = b""
        self.method = None
        self.target = None
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []  # [(name str, value str)] in order received
        self.raw_head = b""
        self.body = b""
        self.framing = None  # "length", "chunked", "close", "none"

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has_token(self, name, token):
        toks = []
        for v in self.header_all(name):
            toks += [t.strip().lower() for t in v.split(",")]
        return token.lower() in toks

    def __repr__(self):
        return "<Message %r>" % (self.start_line,)


class ConnClosed(Exception):
    pass


class Conn:
    """A TCP connection with a read buffer; every read has a timeout."""

    def __init__(self, port=None, sock=None, timeout=10.0, record=None):
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.settimeout(timeout)
        self.sock = sock
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False
        self.record = record  # callable(bytes) seeing every byte read

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def local_port(self):
        return self.sock.getsockname()[1]

    def _fill(self, n=65536):
        if self.eof:
            raise ConnClosed("connection closed by peer")
        try:
            data = self.sock.recv(max(n, 65536))
        except socket.timeout:
            raise TestFailure("read timed out after %.1fs" % self.timeout)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise ConnClosed("connection closed by peer")
        if self.record:
            self.record(data)
        self.buf += data

    def read_line(self, limit=1 << 20):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                fail("line longer than %d bytes" % limit)
            self._fill()

    def read_head(self, limit=1 << 20):
        """Returns the raw head up to and including the empty line, or b""
        when the peer closed before sending anything."""
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[:i + 4])
                del self.buf[:i + 4]
                return head
            if len(self.buf) > limit:
                fail("head longer than %d bytes" % limit)
            try:
                self._fill()
            except ConnClosed:
                if not self.buf:
                    return b""
                raise

    def read_exact(self, n, sink=None):
        out = bytearray() if sink is None else None
        while n > 0:
            if not self.buf:
                self._fill(min(n, MAX_PIECE))
            k = min(n, len(self.buf), MAX_PIECE)
            piece = self.buf[:k]
            del self.buf[:k]
            if sink is None:
                out += piece
            else:
                sink(piece)
            n -= k
        return bytes(out) if out is not None else b""

    def read_until_close(self, sink=None):
        out = bytearray()
        while True:
            if self.buf:
                if sink:
                    sink(bytes(self.buf))
                else:
                    out += self.buf
                self.buf.clear()
            try:
                self._fill()
            except ConnClosed:
                return bytes(out)

    def read_chunked(self, sink=None):
        out = bytearray()
        while True:
            line = self.read_line()
            check(line.endswith(b"\r\n"), "chunk-size line not ending in CRLF: %r" % line)
            size_s = line[:-2].split(b";")[0].strip()
            check(re.fullmatch(rb"[0-9A-Fa-f]+", size_s or b"x") is not None,
                  "bad chunk-size line %r" % line)
            size = int(size_s, 16)
            if size == 0:
                while True:  # trailer section
                    t = self.read_line()
                    if t == b"\r\n":
                        return bytes(out)
            if sink is None:
                out += self.read_exact(size)
            else:
                self.read_exact(size, sink)
            crlf = self.read_exact(2)
            check(crlf == b"\r\n", "chunk data not followed by CRLF: %r" % crlf)

    def read_response(self, method="GET", sink=None, skip_1xx=True):
        """Reads one whole response. 1xx interim answers (except 101) are
        skipped unless skip_1xx is False. Raises ConnClosed when the peer
        closed before a status line arrived."""
        while True:
            head = self.read_head()
            if not head:
                raise ConnClosed("connection closed before a response")
            m = parse_head(head, response=True)
            if m.status == 101 or not (100 <= m.status < 200) or not skip_1xx:
                break
        m.body = self._read_body(m, method, sink)
        return m

    def _read_body(self, m, method, sink):
        te = m.header("Transfer-Encoding")
        cl = m.header("Content-Length")
        if m.status is not None and (method == "HEAD" or 100 <= m.status < 200
                                     or m.status in (204, 304)):
            m.framing = "none"
            return b""
        if te is not None:
            check(te.strip().lower() == "chunked", "unexpected Transfer-Encoding %r" % te)
            check(cl is None, "message has both Content-Length and Transfer-Encoding")
            m.framing = "chunked"
            return self.read_chunked(sink)
        if cl is not None:
            check(re.fullmatch(r"[0-9]+", cl) is not None, "bad Content-Length %r" % cl)
            m.framing = "length"
            return self.read_exact(int(cl), sink)
        if m.status is None:  # a request without framing has no body
            m.framing = "none"
            return b""
        m.framing = "close"
        return self.read_until_close(sink)

    def read_request(self, sink=None):
        """Reads one whole request (server side). Returns None on a clean
        close before any byte of a new request."""
        head = self.read_head()
        if not head:
            return None
        m = parse_head(head, response=False)
        m.body = self._read_body(m, m.method, sink)
        return m

    def wait_closed(self, timeout=5.0):
        """True when the peer closes (EOF or reset) within timeout; any bytes
        arriving meanwhile are kept in self.buf."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([self.sock], [], [], left)
            if r:
                try:
                    data = self.sock.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                except socket.timeout:
                    continue
                if not data:
                    self.eof = True
                else:
                    self.buf += data
        return True


def parse_head(head, response):
    m = Message()
    m.raw_head = head
    lines = head.split(b"\r\n")
    m.start_line = lines[0]
    parts = lines[0].split(b" ", 2)
    if response:
        check(len(parts) >= 2 and parts[0].startswith(b"HTTP/1."), "bad status line %r" % lines[0])
        m.version = parts[0].decode("latin-1")
        check(re.fullmatch(rb"[0-9]{3}", parts[1]) is not None, "bad status line %r" % lines[0])
        m.status = int(parts[1])
        m.reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    else:
        if len(parts) == 3:
            m.method = parts[0].decode("latin-1")
            m.target = parts[1].decode("latin-1")
            m.version = parts[2].decode("latin-1")
        else:
            m.method = "INVALID"
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        m.headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    return m


def http_request(method, path, host="test", headers=(), body=None, version="HTTP/1.1"):
    """Builds raw request bytes with Content-Length when there is a body."""
    lines = ["%s %s %s" % (method, path, version)]
    if host is not None:
        lines.append("Host: %s" % host)
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    if body is not None:
        lines.append("Content-Length: %d" % len(body))
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return raw + (body or b"")


def chunked_encode(data, piece=1000):
    out = bytearray()
    for i in range(0, len(data), piece):
        c = data[i:i + piece]
        out += b"%x\r\n" % len(c) + c + b"\r\n"
    out += b"0\r\n\r\n"
    return bytes(out)


# --------------------------------------------------------------------------
# Processes


class Backend:
    """A running cutover-testbackend."""

    def __init__(self, env, name, color, args=()):
        self.env = env
        self.name = name
        self.color = color
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.log_path = os.path.join(env.tmp, "backend-%s.log" % name)
        self.log = open(self.log_path, "wb")
        cmd = [testbackend_path(), "--listen", self.addr, "--name", name, "--color", color] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL)
        r, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline() if r else b""
        if line.strip() != b"ready":
            self.proc.kill()
            self.proc.wait()
            fail("test backend %s did not print ready (got %r; log %s)" % (name, line, self.log_path))

    def url(self, path="/"):
        return "http://%s%s" % (self.addr, path)

    def ctl(self, path):
        """Sends a /_ctl/... request straight to this backend."""
        self.ctl_conns = getattr(self, "ctl_conns", 0) + 1
        with Conn(self.port) as c:
            c.send(http_request("GET", path, host=self.addr))
            r = c.read_response()
        check(r.status == 200, "backend control %s answered %s" % (path, r.status))
        return r.body

    def accepted(self):
        """Connections this backend has accepted so far, not counting those
        that ctl() opened (this question's included)."""
        words = self.ctl("/_ctl/stats").split()
        check(len(words) == 2 and words[0] == b"accepted", "backend /_ctl/stats answered %r" % words)
        return int(words[1]) - self.ctl_conns

    def stop(self):
        problems = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("test backend %s ignored SIGTERM" % self.name)
        if self.proc.returncode not in (0, -signal.SIGKILL) and not problems:
            problems.append("test backend %s exited %s" % (self.name, self.proc.returncode))
        self.proc.stdout.close()
        self.log.close()
        with open(self.log_path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        for pat in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if pat in text:
                problems.append("test backend %s log has %s (%s)" % (self.name, pat, self.log_path))
        return problems


HEALTH_PATH = "/healthz"  # cutoverd's default health.path


class RawBackend:
    """An in-process upstream on its own port. Each accepted connection runs
    handler(conn, rec, server) in a thread, where conn is a Conn whose every
    received byte is appended to rec.data (capped at 16 MiB). The default
    handler answers each request 200 "ok". server.conns lists every accepted
    connection record, server.requests every request read by handlers that
    use serve_requests(). Connections whose first request is a health check
    (GET /healthz) are answered 200 by the harness and not listed."""

    class Record:
        def __init__(self, index, peer):
            self.index = index
            self.peer = peer
            self.data = bytearray()
            self.requests = []
            self.closed = False

        def add(self, data):
            if len(self.data) < (16 << 20):
                self.data += data

    def __init__(self, env, handler=None):
        self.env = env
        self.handler = handler or serve_requests
        self.lock = threading.Lock()
        self.conns = []
        self.threads = []
        self.socks = []
        self.errors = []
        self.health_checks = 0
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.stopping = False
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.accept_thread = t

    def _accept_loop(self):
        while not self.stopping:
            try:
                s, peer = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                if self.stopping:
                    s.close()
                    return
                self.socks.append(s)
            t = threading.Thread(target=self._run, args=(s, peer), daemon=True)
            # Listed once started: stop() may join any listed thread.
            t.start()
            with self.lock:
                self.threads.append(t)

    def _run(self, s, peer):
        rec = RawBackend.Record(-1, peer)
        conn = Conn(sock=s, timeout=60, record=rec.add)
        try:
            # cutoverd's health checks ("GET /healthz") are answered here and
            # kept out of conns, so that handlers and tests only ever see the
            # traffic that was proxied.
            head = conn.read_head()
            if not head:
                return
            if head.startswith(b"GET " + HEALTH_PATH.encode() + b" "):
                with self.lock:
                    self.health_checks += 1
                conn.buf[:0] = head
                while conn.read_request() is not None:
                    respond(conn, 200, b"ok", headers=[("Connection", "close")])
                    return
                return
            conn.buf[:0] = head
            with self.lock:
                rec.index = len(self.conns)
                self.conns.append(rec)
            self.handler(conn, rec, self)
        except (ConnClosed, OSError):
            pass
        except Exception as e:  # noqa: BLE001 - reported by the test
            if not self.stopping:
                self.errors.append("%s: %s" % (type(e).__name__, e))
        finally:
            rec.closed = True
            conn.close()

    def all_requests(self):
        with self.lock:
            return [r for c in self.conns for r in c.requests]

    def stop(self):
        self.stopping = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        with self.lock:
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.accept_thread.join(5)
        with self.lock:
            threads = list(self.threads)
        for t in threads:
            t.join(5)
        return []


def respond(conn, status=200, body=b"ok", headers=(), reason="OK"):
    lines = ["HTTP/1.1 %d %s" % (status, reason)]
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    lines.append("Content-Length: %d" % len(body))
    conn.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def serve_requests(conn, rec, server):
    """Default RawBackend handler: answers every request 200 "ok"."""
    while True:
        req = conn.read_request()
        if req is None:
            return
        rec.requests.append(req)
        respond(conn, 200, b"ok")


class Daemon:
    """A running cutoverd."""

    def __init__(self, env, conf_path, port, expect_errors=(), asan_options="", preexec_fn=None,
                 journal=False):
        self.env = env
        self.conf_path = conf_path
        self.port = port
        self.addr = "127.0.0.1:%d" % port
        self.expect_errors = [re.compile(p) for p in expect_errors]
        self.log_path = os.path.join(env.tmp, "cutoverd-%d.log" % len(env.daemons))
        self.log = open(self.log_path, "wb")
        self.binary = cutoverd_path()
        penv = dict(os.environ)
        if binary_has_asan(self.binary):
            opts = penv.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
            penv["ASAN_OPTIONS"] = opts + (":" + asan_options if asan_options else "")
        # journal=True does what systemd does for a unit whose stderr is
        # the journal: JOURNAL_STREAM is the log file's device:inode, which
        # cutoverd compares with its stderr's. A string is passed as is.
        penv.pop("JOURNAL_STREAM", None)
        if journal is True:
            st = os.fstat(self.log.fileno())
            penv["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        elif journal:
            penv["JOURNAL_STREAM"] = journal
        self.proc = subprocess.Popen([self.binary, "-c", conf_path], stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=penv, preexec_fn=preexec_fn)
        self.stopped = False
        deadline = time.monotonic() + 15
        while not port_accepts(port):
            if self.proc.poll() is not None:
                fail("cutoverd exited %s before accepting on %s: %s"
                     % (self.proc.returncode, self.addr, self.log_tail()))
            if time.monotonic() > deadline:
                fail("cutoverd did not accept on %s within 15s: %s" % (self.addr, self.log_tail()))
            time.sleep(0.02)

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_tail(self, n=5):
        lines = self.log_text().strip().splitlines()
        return " | ".join(lines[-n:]) if lines else "(empty log)"

    @property
    def pid(self):
        return self.proc.pid

    def conn(self, timeout=10.0):
        return Conn(self.port, timeout=timeout)

    @contextmanager
    def paused(self):
        """The daemon stopped (every thread, SIGSTOP) inside the block, resumed
        after: what a client sends meanwhile is in its socket at the accept."""
        os.kill(self.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.pid, signal.SIGCONT)

    def get(self, path, method="GET", headers=(), body=None, host="test"):
        """One request on a fresh connection; returns the response Message."""
        with self.conn() as c:
            c.send(http_request(method, path, host=host, headers=headers, body=body))
            return c.read_response(method=method)

    def url(self, path="/"):
        return "http://%s%s" % (self.addr, path)

    def vm_hwm_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        fail("no VmHWM in /proc/%d/status" % self.proc.pid)

    def stop(self):
        """Stops the daemon; returns a list of problems found."""
        if self.stopped:
            return []
        self.stopped = True
        problems = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("cutoverd did not exit within 15s of SIGTERM")
            if not problems and self.proc.returncode != 0:
                problems.append("cutoverd exited %s after SIGTERM" % self.proc.returncode)
        else:
            problems.append("cutoverd died during the test (status %s)" % self.proc.returncode)
        self.log.close()
        for line in self.log_text().splitlines():
            for pat in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
                if pat in line:
                    problems.append("cutoverd log: %s" % line.strip())
            if "[error]" in line and not any(p.search(line) for p in self.expect_errors):
                problems.append("unexpected cutoverd log line: %s" % line.strip())
        return problems[:5]


CONFIG_DEFAULT_TIMEOUTS = {"client_header": "5s", "client_idle": "10s", "connect": "2s",
                           "response": "10s", "upstream_idle": "10s"}
CONFIG_DEFAULT_LIMITS = {"header_size": 16384, "header_count": 100, "max_connections": 1000}
CONFIG_DEFAULT_UPSTREAM = {}  # the shipped idle policy


def _cfg_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return '"%s"' % v


def config_text(env, port, blue, green, initial="blue", limits=None, timeouts=None,
                upstream=None, log_level="info", extra="", tag="cutover"):
    def servers(lst):
        return ", ".join('"%s"' % s for s in lst)

    def group(name, defaults, over):
        d = dict(defaults)
        d.update(over or {})
        return "%s: { %s };\n" % (name, " ".join("%s = %s;" % (k, _cfg_value(v)) for k, v in d.items()))

    text = ""
    text += 'listen = ( { address = "127.0.0.1:%d"; } );\n' % port
    text += 'initial = "%s";\n' % initial
    text += 'state_file = "%s";\n' % os.path.join(env.tmp, tag + ".state")
    text += 'log_level = "%s";\n' % log_level
    text += "pools: {\n"
    text += "  blue: { servers = ( %s ); };\n" % servers(blue)
    text += "  green: { servers = ( %s ); };\n" % servers(green)
    text += "};\n"
    text += 'control: { socket = "%s"; };\n' % os.path.join(env.tmp, tag + ".sock")
    text += group("limits", CONFIG_DEFAULT_LIMITS, limits)
    text += group("timeouts", CONFIG_DEFAULT_TIMEOUTS, timeouts)
    text += group("upstream", CONFIG_DEFAULT_UPSTREAM, upstream)
    text += extra
    return text


class Env:
    """Per-test fixture: a temp dir and everything started in it."""

    def __init__(self, tmp, name):
        self.tmp = tmp
        self.name = name
        self.backends = []
        self.raw_backends = []
        self.daemons = []
        self.closers = []
        # Closed after the daemons and backends (services they depend on, etcd).
        self.late_closers = []

    def port(self):
        return free_port()

    def artifact_dir(self):
        """A directory for files a test leaves for people to look at (a
        screenshot): <tmp>/artifacts, which run.py keeps when the test
        passes (the rest of the temp dir goes)."""
        path = os.path.join(self.tmp, "artifacts")
        os.makedirs(path, exist_ok=True)
        return path

    def backend(self, name, color, *args):
        b = Backend(self, name, color, args)
        self.backends.append(b)
        return b

    def raw_backend(self, handler=None):
        b = RawBackend(self, handler)
        self.raw_backends.append(b)
        return b

    def write_config(self, blue=(), green=(), port=None, name="cutover.conf", **kw):
        port = port or free_port()
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(config_text(self, port, [str(getattr(s, "addr", s)) for s in blue],
                                [str(getattr(s, "addr", s)) for s in green],
                                tag=os.path.splitext(name)[0], **kw))
        return path, port

    def cutoverd(self, blue=(), green=(), expect_errors=(), asan_options="", preexec_fn=None, journal=False,
                 **kw):
        """Writes a config for these pools (backends or "ip:port" strings) and
        starts cutoverd on a free port; returns the Daemon once it accepts.
        preexec_fn runs in the child before exec (e.g. to set a limit);
        journal=True sets JOURNAL_STREAM to the log file's device:inode, a
        string sets it to that (see Daemon)."""
        path, port = self.write_config(blue, green, **kw)
        d = Daemon(self, path, port, expect_errors, asan_options, preexec_fn, journal)
        self.daemons.append(d)
        return d

    def conn(self, port, timeout=10.0):
        c = Conn(port, timeout=timeout)
        self.closers.append(c)
        return c

    def run(self, cmd, timeout=60, **kw):
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, **kw)

    def curl(self, *args, timeout=60):
        """Runs curl -sS with args; returns CompletedProcess (bytes)."""
        return self.run(["curl", "-sS", "--max-time", str(timeout)] + list(args), timeout=timeout + 5)

    def close(self):
        """Stops everything; returns a list of problems (empty when clean)."""
        problems = []
        for c in self.closers:
            c.close()
        for d in self.daemons:
            problems += d.stop()
        for b in self.backends:
            problems += b.stop()
        for r in self.raw_backends:
            r.stop()
            problems += ["raw backend handler error: %s" % e for e in r.errors]
        for c in self.late_closers:
            c.close()
        return problems
