"""upstream.splice: Content-Length response bodies with at least that many
bytes to go move upstream -> pipe -> client with splice(2) on plain
connections. Bodies arrive intact (sha256), the pipe is there while a body
is spliced and gone after, and every way a spliced body can end (done, the
client closing or stalling, the upstream closing or going silent) leaves the
daemon serving, the upstream connection reused or closed as it must be and
the access log counting the bytes the client got."""

import hashlib
import os
import re
import time

from harness import ConnClosed, check, http_request, pattern_pieces, respond, wait_for

MIB = 1 << 20
SPLICE = {"splice": 65536}


def pipes(d):
    """How many pipes cutoverd holds open."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % d.pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (d.pid, fd)).startswith("pipe:"):
                n += 1
        except OSError:
            pass
    return n


def big_backend(env, body, cut_at=None, stall=False):
    """A raw upstream answering GET /big with body (Content-Length), any
    other request 200 "ok"; with cut_at it sends that many body bytes, then
    closes (stall: then stays silent instead)."""
    def handler(conn, rec, server):
        while True:
            req = conn.read_request()
            if req is None:
                return
            rec.requests.append(req)
            if req.target != "/big":
                respond(conn, 200, b"ok")
                continue
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            if cut_at is None:
                conn.send(body)
                continue
            conn.send(body[:cut_at])
            if stall:
                conn.wait_closed(30)
            return
    return env.raw_backend(handler)


def start(env, body, **kw):
    """cutoverd splicing from a big_backend(env, body, **kw), with an access
    log: (backend, daemon, access log path, pipes held before any request)."""
    up = big_backend(env, body, **kw)
    log = os.path.join(env.tmp, "access.log")
    d = env.cutoverd(blue=[up], green=[], upstream=SPLICE, extra='access_log = "%s";\n' % log)
    return up, d, log, pipes(d)


def send_big(c):
    c.send(http_request("GET", "/big"))
    head = c.read_head()
    check(head.startswith(b"HTTP/1.1 200"), "/big answered %r" % head[:40])


def get_big(c, expect):
    h = hashlib.sha256()
    c.send(http_request("GET", "/big"))
    r = c.read_response(sink=h.update)
    check(r.status == 200, "/big answered %s" % r.status)
    check(h.hexdigest() == hashlib.sha256(expect).hexdigest(), "/big body differs (sha256)")
    return r


def access_bytes(path, n):
    """The response byte counts of the access log's first n lines."""
    def lines():
        try:
            with open(path) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []
    wait_for(lambda: len(lines()) >= n, 5, "%d lines in the access log" % n)
    return [int(line.rsplit(" ", 1)[1]) for line in lines()[:n]]


def test_splice_64mib_from_testbackend_intact(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[], upstream=SPLICE)
    n = 64 * MIB
    want = hashlib.sha256()
    for p in pattern_pieces(n):
        want.update(p)
    got = hashlib.sha256()
    with d.conn(timeout=60) as c:
        c.send(http_request("GET", "/bytes?n=%d&cl=1" % n))
        r = c.read_response(sink=got.update)
    check(r.status == 200 and r.header("Content-Length") == str(n), "/bytes answered %s" % r.status)
    check(got.hexdigest() == want.hexdigest(), "64 MiB body differs from the pattern (sha256)")


def test_splice_slow_client_keepalive_and_reuse(env):
    body = os.urandom(8 * MIB)
    up, d, log, base = start(env, body)
    with d.conn(timeout=30) as c:
        # A slow reader: the body waits in the pipe, not in cutoverd's memory.
        send_big(c)
        h = hashlib.sha256()
        seen_pipe = False
        left = len(body)
        while left > 0:
            piece = c.read_exact(min(left, 256 * 1024))
            h.update(piece)
            left -= len(piece)
            seen_pipe = seen_pipe or pipes(d) > base
            time.sleep(0.005)
        check(h.hexdigest() == hashlib.sha256(body).hexdigest(), "slowly read body differs (sha256)")
        check(seen_pipe, "no pipe in cutoverd while an 8 MiB body was relayed: not spliced")
        # The same connection goes on, both ways.
        r = d.get("/small")
        check(r.status == 200 and r.body == b"ok", "/small on a new connection answered %s" % r.status)
        c.send(http_request("GET", "/small"))
        r = c.read_response()
        check(r.status == 200 and r.body == b"ok", "/small after a spliced body answered %s" % r.status)
        get_big(c, body)
    wait_for(lambda: pipes(d) == base, 5, "the pipes to go")
    check(len(up.conns) <= 2, "the upstream saw %d connections: not reused after splicing" % len(up.conns))
    check(access_bytes(log, 4) == [len(body), 2, 2, len(body)] or
          sorted(access_bytes(log, 4)) == [2, 2, len(body), len(body)],
          "access log bytes %s" % access_bytes(log, 4))


def test_splice_off_buffers(env):
    body = os.urandom(8 * MIB)
    up = big_backend(env, body)
    d = env.cutoverd(blue=[up], green=[], upstream={"splice": 0})
    base = pipes(d)
    with d.conn(timeout=30) as c:
        c.send(http_request("GET", "/big"))
        c.read_head()
        c.read_exact(MIB)
        time.sleep(0.2)
        check(pipes(d) == base, "splice = 0 and still a pipe")
        rest = c.read_exact(len(body) - MIB)
    check(len(rest) == len(body) - MIB, "body cut short")


def test_splice_client_closes_mid_body(env):
    body = os.urandom(32 * MIB)
    up = big_backend(env, body)
    d = env.cutoverd(blue=[up], green=[], upstream=SPLICE)
    base = pipes(d)
    with d.conn(timeout=30) as c:
        c.send(http_request("GET", "/big"))
        c.read_head()
        c.read_exact(2 * MIB)
        check(pipes(d) > base, "no pipe while a 32 MiB body is relayed")
    wait_for(lambda: pipes(d) == base, 5, "the pipe to go after the client closed")
    wait_for(lambda: up.conns and up.conns[0].closed, 5, "the upstream connection to close")
    r = d.get("/small")
    check(r.status == 200 and r.body == b"ok", "after a client closed mid-body: %s" % r.status)


def test_splice_client_stalls_write_timeout(env):
    body = os.urandom(64 * MIB)
    up = big_backend(env, body)
    d = env.cutoverd(blue=[up], green=[], upstream=SPLICE, timeouts={"client_idle": "1s"})
    base = pipes(d)
    with d.conn(timeout=30) as c:
        c.send(http_request("GET", "/big"))
        c.read_head()
        c.read_exact(MIB)
        # Reads nothing more: cutoverd must give up after client_idle.
        wait_for(lambda: up.conns and up.conns[0].closed, 10, "the stalled exchange to be cut off")
        check(pipes(d) == base, "the pipe outlived the stalled exchange")
        got = MIB + len(c.buf)
        try:
            c.read_until_close()
        except ConnClosed:
            pass
        check(got < len(body), "a stalled client got the whole body (%d bytes)" % got)


def test_splice_upstream_closes_mid_body(env):
    body = os.urandom(16 * MIB)
    cut = 5 * MIB + 12345
    up, d, log, base = start(env, body, cut_at=cut)
    with d.conn(timeout=30) as c:
        send_big(c)
        got = c.read_until_close()
    check(got == body[:cut], "client got %d bytes, the upstream sent %d before closing" % (len(got), cut))
    check(re.search(r"response cut short", d.log_text()) is not None, "no 'response cut short' in the log")
    check(access_bytes(log, 1) == [cut], "access log bytes %s, the client got %d" % (access_bytes(log, 1), cut))
    wait_for(lambda: pipes(d) == base, 5, "the pipe to go")
    r = d.get("/small")
    check(r.status == 200, "after an upstream cut a body short: %s" % r.status)


def test_splice_upstream_silent_mid_body(env):
    body = os.urandom(16 * MIB)
    cut = 3 * MIB
    up = big_backend(env, body, cut_at=cut, stall=True)
    d = env.cutoverd(blue=[up], green=[], upstream=SPLICE, timeouts={"response": "1s"})
    t0 = time.monotonic()
    with d.conn(timeout=30) as c:
        c.send(http_request("GET", "/big"))
        c.read_head()
        got = c.read_until_close()
    took = time.monotonic() - t0
    check(got == body[:cut], "client got %d bytes, the upstream sent %d" % (len(got), cut))
    check(0.8 < took < 8, "closed after %.1fs, timeouts.response is 1s" % took)
    check(re.search(r"response cut short", d.log_text()) is not None, "no 'response cut short' in the log")
