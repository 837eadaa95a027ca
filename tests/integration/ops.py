"""Helpers for the TLS tests (issue 5) and the operations tests (issue 6):
test certificates, cutoverd with TLS listeners, an HTTPS client on Python's
ssl module, openssl s_client, a TLS upstream server, /metrics parsing and
stopping cutoverd with a signal while the test watches.

Not a test module (no test_ prefix): test_tls.py and test_ops.py import it.
"""

import atexit
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import harness
from harness import check, fail, http_request, wait_for
from switching import Ctl, sock_path, SANITIZER_PATTERNS

HERE = os.path.dirname(os.path.abspath(__file__))
GEN_CERTS = os.path.join(HERE, "..", "tls", "gen-certs.sh")

# --------------------------------------------------------------------------
# Certificates

_cert_cache = None
_cert_lock = threading.Lock()


def _generated():
    """A directory with everything gen-certs.sh makes, generated once per run."""
    global _cert_cache
    with _cert_lock:
        if _cert_cache is None:
            tmp = tempfile.mkdtemp(prefix="cutover-certs-")
            atexit.register(shutil.rmtree, tmp, True)
            r = subprocess.run(["sh", GEN_CERTS, tmp], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=60)
            if r.returncode != 0:
                fail("gen-certs.sh failed (%d): %s" % (r.returncode, r.stderr.decode(errors="replace")[-300:]))
            _cert_cache = tmp
        return _cert_cache


def certs(env):
    """A private copy of the test certificates in env.tmp/certs (tests may
    overwrite files in it). Returns its path."""
    dst = os.path.join(env.tmp, "certs")
    if not os.path.isdir(dst):
        shutil.copytree(_generated(), dst)
    return dst


_LEAF_CNF = """[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ leaf ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = %s
"""


def new_leaf(cdir, out, cn, org, serial, san="DNS:a.test, DNS:*.wild.test", ca="ca"):
    """A new EC leaf OUT.pem/OUT.key (in cdir) for cn signed by CA.pem, with
    subject O=org and the given serial."""
    work = tempfile.mkdtemp(prefix="leaf-", dir=cdir)
    try:
        cnf = os.path.join(work, "leaf.cnf")
        with open(cnf, "w") as f:
            f.write(_LEAF_CNF % san)
        key, csr = os.path.join(work, "k.pem"), os.path.join(work, "r.csr")
        steps = [
            ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key],
            ["openssl", "req", "-config", cnf, "-new", "-key", key, "-subj", "/O=%s/CN=%s" % (org, cn),
             "-out", csr],
            ["openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(cdir, ca + ".pem"),
             "-CAkey", os.path.join(cdir, ca + ".key"), "-set_serial", str(serial), "-days", "30",
             "-sha256", "-extfile", cnf, "-extensions", "leaf", "-out", os.path.join(cdir, out + ".pem")],
        ]
        for cmd in steps:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            check(r.returncode == 0, "%s failed: %s" % (" ".join(cmd[:2]), r.stderr.decode(errors="replace")))
        shutil.move(key, os.path.join(cdir, out + ".key"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def replace_file(src, dst):
    """Puts src's content at dst by rename (a reader sees old or new)."""
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


# --------------------------------------------------------------------------
# cutoverd with TLS listeners


def tls_listen_entry(port, cert_pairs, min_version=None, ciphers=None, http2=None):
    pairs = ", ".join('{ cert = "%s"; key = "%s"; }' % cp for cp in cert_pairs)
    opts = ""
    if min_version is not None:
        opts += ' min_version = "%s";' % min_version
    if ciphers is not None:
        opts += ' ciphers = "%s";' % ciphers
    h2 = "" if http2 is None else " http2 = %s;" % ("true" if http2 else "false")
    return '{ address = "127.0.0.1:%d";%s tls = { certs = ( %s );%s }; }' % (port, h2, pairs, opts)


def tls_config_text(env, port, cert_pairs, blue=(), green=(), min_version=None, ciphers=None,
                    plain_port=None, http2=None, **kw):
    """harness.config_text with its plaintext listener replaced by a TLS one
    on port (and a plaintext one on plain_port when given); http2 None
    leaves listen[].http2 at its default."""
    addrs = lambda lst: [str(getattr(s, "addr", s)) for s in lst]  # noqa: E731
    text = harness.config_text(env, port, addrs(blue), addrs(green), **kw)
    plain = 'listen = ( { address = "127.0.0.1:%d"; } );\n' % port
    check(plain in text, "harness.config_text no longer writes the listen line this module replaces")
    entries = [tls_listen_entry(port, cert_pairs, min_version, ciphers, http2)]
    if plain_port is not None:
        entries.append('{ address = "127.0.0.1:%d"; }' % plain_port)
    return text.replace(plain, "listen = ( %s );\n" % ", ".join(entries))


def write_tls_config(env, cert_pairs, name="cutover.conf", port=None, **kw):
    port = port or env.port()
    path = os.path.join(env.tmp, name)
    with open(path, "w") as f:
        f.write(tls_config_text(env, port, cert_pairs, tag=os.path.splitext(name)[0], **kw))
    return path, port


def start_tls(env, cert_pairs, expect_errors=(), **kw):
    """cutoverd with a TLS listener; returns (Daemon, Ctl)."""
    path, port = write_tls_config(env, cert_pairs, **kw)
    d = harness.Daemon(env, path, port, expect_errors)
    env.daemons.append(d)
    return d, Ctl(sock_path(env))


def pair(cdir, name, key=None):
    return (os.path.join(cdir, name + ".pem"), os.path.join(cdir, (key or name) + ".key"))


# --------------------------------------------------------------------------
# HTTPS client (Python ssl)


def client_ctx(cafile, min_version=None, max_version=None):
    ctx = ssl.create_default_context(cafile=cafile)
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


class TLSConn(harness.Conn):
    """A harness.Conn over a verified TLS connection to 127.0.0.1:port with
    server name `name`."""

    def __init__(self, port, ctx, name, timeout=10.0, session=None):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            s = ctx.wrap_socket(raw, server_hostname=name, session=session)
        except BaseException:
            raw.close()
            raise
        super().__init__(sock=s, timeout=timeout)

    def _fill(self, n=65536):
        try:
            return super()._fill(n)
        except ssl.SSLEOFError:
            self.eof = True
            raise harness.ConnClosed("TLS connection closed by peer without close_notify")

    def peer_cert(self):
        return self.sock.getpeercert()

    def serial(self):
        return self.sock.getpeercert()["serialNumber"]

    def subject(self):
        """{"commonName": ..., "organizationName": ...} of the served leaf."""
        return dict(x[0] for x in self.sock.getpeercert()["subject"])

    def request(self, path, method="GET", headers=(), host="test"):
        self.send(http_request(method, path, host=host, headers=headers))
        return self.read_response(method=method)


def https_get(port, ctx, name, path="/", timeout=10.0):
    """One request on a fresh TLS connection: (response, serial, subject)."""
    with TLSConn(port, ctx, name, timeout=timeout) as c:
        r = c.request(path, host=name)
        return r, c.serial(), c.subject()


class TLSLoad:
    """Client threads hammering an HTTPS listener: `fresh` threads open a new
    verified connection per request, `keepalive` threads keep one connection
    for all their requests. Every exchange is recorded as (t_sent, t_done,
    kind, status, serial, detail), where t_sent is when a fresh connection
    began connecting; a failure has status None."""

    def __init__(self, port, ctx, name, fresh=1, keepalive=1, path="/"):
        self.port, self.ctx, self.name, self.path = port, ctx, name, path
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.records = []
        self.ka_connections = 0
        self.threads = ([threading.Thread(target=self._run, args=(False,), daemon=True) for _ in range(fresh)]
                        + [threading.Thread(target=self._run, args=(True,), daemon=True)
                           for _ in range(keepalive)])

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def count(self, kind=None, since=0.0):
        with self.lock:
            return sum(1 for r in self.records if (kind is None or r[2] == kind) and r[0] >= since)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(15)
        check(not any(t.is_alive() for t in self.threads), "TLS load threads did not stop")
        with self.lock:
            return list(self.records)

    def _run(self, keepalive):
        kind = "keepalive" if keepalive else "fresh"
        conn = None
        while not self.stop_ev.is_set():
            t_sent = time.monotonic()
            try:
                if conn is None:
                    conn = TLSConn(self.port, self.ctx, self.name)
                    if keepalive:
                        with self.lock:
                            self.ka_connections += 1
                serial = conn.serial()
                if keepalive:  # a fresh connection's time is when it began
                    t_sent = time.monotonic()
                r = conn.request(self.path, host=self.name)
                rec = (t_sent, time.monotonic(), kind, r.status, serial, r.body[:80])
                if not keepalive or r.has_token("Connection", "close"):
                    conn.close()
                    conn = None
            except (harness.ConnClosed, harness.TestFailure, OSError, KeyError) as e:
                rec = (t_sent, time.monotonic(), kind, None, None, "%s: %s" % (type(e).__name__, e))
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                self.records.append(rec)
        if conn is not None:
            conn.close()


def wait_closed_raw(sock, timeout):
    """Reads (and drops) until the peer closes a plain socket; returns
    (closed, bytes_received, seconds)."""
    t0 = time.monotonic()
    got = bytearray()
    while True:
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            return False, bytes(got), time.monotonic() - t0
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            continue
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            return True, bytes(got), time.monotonic() - t0
        got += data


# --------------------------------------------------------------------------
# openssl s_client


def s_client(port, *args, servername=None, stdin=b"", timeout=20):
    """Runs openssl s_client against 127.0.0.1:port; returns (rc, text)
    with stdout and stderr together."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port]
    if servername is not None:
        cmd += ["-servername", servername]
    cmd += list(args)
    r = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def s_client_subject(text):
    m = re.search(r"^subject=(.*)$", text, re.M)
    return m.group(1).strip() if m else None


def s_client_protocol(text):
    """The negotiated protocol, or None when the handshake failed."""
    m = re.search(r"^New, (TLSv[\d.]+), Cipher is (\S+)", text, re.M)
    if not m or m.group(2) == "(NONE)":
        return None
    return m.group(1)


# --------------------------------------------------------------------------
# A TLS upstream


class TLSBackend:
    """An upstream speaking HTTP/1.1 over TLS with cert/key (up.pem/up.key):
    /healthz answers 200 "ok", everything else 200 "NAME COLOR\\n" with
    X-Color and X-Backend. Records the SNI of each handshake, handshake
    failures and every non-health request path. Closed by env teardown."""

    def __init__(self, env, cert, key, name="tls1", color="blue"):
        self.name, self.color = name, color
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.sni_callback = self._sni
        self.lock = threading.Lock()
        self.snis = []
        self.handshake_errors = []
        self.requests = []
        self.health_checks = 0
        self.stopping = False
        self.socks = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()
        env.closers.append(self)

    def _sni(self, sslsock, server_name, ctx):
        with self.lock:
            self.snis.append(server_name)

    def _accept_loop(self):
        while not self.stopping:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.socks.append(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        try:
            s.settimeout(30)
            try:
                ts = self.ctx.wrap_socket(s, server_side=True)
            except (ssl.SSLError, OSError) as e:
                with self.lock:
                    self.handshake_errors.append(str(e))
                return
            conn = harness.Conn(sock=ts, timeout=30)
            while True:
                try:
                    req = conn.read_request()
                except (harness.ConnClosed, OSError, ssl.SSLError):
                    return
                if req is None:
                    return
                with self.lock:
                    if req.target == "/healthz":
                        self.health_checks += 1
                    else:
                        self.requests.append(req.target)
                harness.respond(conn, 200, b"ok" if req.target == "/healthz"
                                else ("%s %s\n" % (self.name, self.color)).encode(),
                                headers=[("X-Color", self.color), ("X-Backend", self.name)])
        except (OSError, harness.TestFailure):
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass

    def close(self):
        self.stopping = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# --------------------------------------------------------------------------
# Stopping cutoverd by hand


def reap(d, timeout):
    """Waits for a daemon the test signalled itself; returns (status,
    seconds waited). Marks it stopped so teardown does not signal it again."""
    t0 = time.monotonic()
    try:
        d.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        d.proc.kill()
        d.proc.wait()
        d.stopped = True
        d.log.close()
        fail("cutoverd did not exit within %.1fs of the signal: %s" % (timeout, d.log_tail()))
    d.stopped = True
    d.log.close()
    return d.proc.returncode, time.monotonic() - t0


def check_log_clean(d):
    """What Daemon.stop() checks in the log, for a daemon reaped by the test."""
    for line in d.log_text().splitlines():
        for pat in SANITIZER_PATTERNS:
            check(pat not in line, "cutoverd log: %s" % line.strip())
        if "[error]" in line and not any(p.search(line) for p in d.expect_errors):
            fail("unexpected cutoverd log line: %s" % line.strip())


def wait_log(d, pattern, timeout=10, start=0):
    """Waits until the daemon log (from character offset start) matches."""
    rx = re.compile(pattern)
    return wait_for(lambda: rx.search(d.log_text()[start:]), timeout, "cutoverd log to match %r" % pattern)


# --------------------------------------------------------------------------
# Prometheus text


_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
_VALUE = r"(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?Inf|NaN)"
SAMPLE_RX = re.compile(r"^(%s)(?:\{((?:%s)(?:,%s)*,?)?\})? (%s)(?: -?[0-9]+)?$" % (_NAME, _LABEL, _LABEL, _VALUE))
HELP_RX = re.compile(r"^# HELP (%s) (.*)$" % _NAME)
TYPE_RX = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % _NAME)
LABEL_RX = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"')


def parse_metrics(text):
    """Checks every line against the text exposition format (0.0.4) and
    returns ({(name, frozenset(labels.items())): value}, {family: type}).
    Fails naming the first bad line."""
    samples, types = {}, {}
    check(text.endswith("\n"), "/metrics text does not end with a newline")
    for i, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("#"):
            m = TYPE_RX.match(line)
            if m:
                check(m.group(1) not in types, "/metrics line %d: second TYPE for %s" % (i, m.group(1)))
                types[m.group(1)] = m.group(2)
                continue
            check(HELP_RX.match(line) or not re.match(r"^# (HELP|TYPE) ", line),
                  "/metrics line %d is not a valid HELP/TYPE line: %r" % (i, line))
            continue
        check(line.strip() != "", "/metrics line %d is empty" % i)
        m = SAMPLE_RX.match(line)
        check(m is not None, "/metrics line %d does not match the exposition grammar: %r" % (i, line))
        name = m.group(1)
        labels = frozenset(LABEL_RX.findall(m.group(2) or ""))
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                family = name[:-len(suffix)]
        check(family in types, "/metrics line %d: sample %s before (or without) its TYPE line" % (i, name))
        key = (name, labels)
        check(key not in samples, "/metrics line %d: duplicate sample %r" % (i, line))
        v = m.group(3)
        samples[key] = float(v.replace("Inf", "inf"))
    return samples, types


def metric(samples, name, **labels):
    """The value of one sample, or None when absent."""
    return samples.get((name, frozenset(labels.items())))


def fetch_metrics(port):
    """GET /metrics; returns (response, samples, types)."""
    with harness.Conn(port) as c:
        c.send(http_request("GET", "/metrics", host="127.0.0.1:%d" % port))
        r = c.read_response()
    check(r.status == 200, "GET /metrics answered %s" % r.status)
    text = r.body.decode("utf-8")
    samples, types = parse_metrics(text)
    return r, samples, types


def start_pool_tls(env, blue, green, blue_tls, expect_errors=(), **kw):
    """cutoverd (plaintext listener) whose blue pool carries blue_tls, the
    text of a `tls = { ... };` setting; returns (Daemon, Ctl)."""
    addrs = lambda lst: [str(getattr(s, "addr", s)) for s in lst]  # noqa: E731
    port = env.port()
    text = harness.config_text(env, port, addrs(blue), addrs(green), **kw)
    line = "  blue: { servers = ( %s ); };\n" % ", ".join('"%s"' % a for a in addrs(blue))
    check(line in text, "harness.config_text no longer writes the pool line this module extends")
    text = text.replace(line, line[:-4] + " %s };\n" % blue_tls)
    path = os.path.join(env.tmp, "cutover.conf")
    with open(path, "w") as f:
        f.write(text)
    d = harness.Daemon(env, path, port, expect_errors)
    env.daemons.append(d)
    return d, Ctl(sock_path(env))
