"""Plain sockets are read by cutoverd itself (src/reader.c), not by
libevent's socket bufferevent: what that read path must keep doing.

A pipelined burst larger than the input high-water mark is suspended and
resumed without losing or reordering a request; a client that half-closes
after a whole request still gets its answer; a client that stops reading a
large download holds cutoverd's memory bounded and then gets every byte;
the read timeouts still fire (a stalled request body gets 408, an idle
upstream connection is closed at timeouts.upstream_idle)."""

import socket
import threading
import time

from harness import (ConnClosed, PatternChecker, binary_has_asan, check, cutoverd_path, fail, http_request,
                     rss_kib, serve_requests, wait_for)

MIB = 1 << 20


def test_pipelined_burst_past_the_input_high_mark(env):
    """400 pipelined requests of 2 KB each (800 KB, three times the input
    high-water mark) sent at once: all answered, in order."""
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    n = 400
    filler = ("X-Filler", "f" * 2000)
    with d.conn(timeout=30) as c:
        payload = b"".join(http_request("GET", "/echo?i=%d" % i, headers=[filler]) for i in range(n))
        check(len(payload) > 3 * 256 * 1024, "the burst is smaller than intended")
        t = threading.Thread(target=c.sock.sendall, args=(payload,), daemon=True)
        t.start()
        for i in range(n):
            r = c.read_response()
            check(r.status == 200, "answer %d: expected 200, got %s" % (i, r.status))
            check(b'"/echo?i=%d"' % i in r.body, "answer %d is not for request %d: %r" % (i, i, r.body[:200]))
        t.join(30)
        check(not t.is_alive(), "the burst was not all taken")


def test_half_closed_client_gets_its_answer(env):
    """EOF right after a complete request, with the request still in the
    socket or already upstream, or both in the socket at the accept (read
    then, see test_accept_read): the answer is delivered, then the close."""
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    for path, pause in (("/", 0), ("/delay?ms=300", 0), ("/delay?ms=300", 0.1), ("/", None),
                        ("/delay?ms=300", None)):
        if pause is None:
            with d.paused():
                c = d.conn()
                c.send(http_request("GET", path))
                c.sock.shutdown(socket.SHUT_WR)
        else:
            c = d.conn()
            c.send(http_request("GET", path))
            if pause:
                time.sleep(pause)  # the request is upstream before the EOF
            c.sock.shutdown(socket.SHUT_WR)
        with c:
            try:
                r = c.read_response()
            except ConnClosed:
                fail("%s: half-closed client got no answer" % path)
            check(r.status == 200 and r.body == b"blue1 blue\n", "%s: answer %s %r" % (path, r.status, r.body))
            check(c.wait_closed(5), "%s: connection still open after the answer to a half-closed client" % path)


def test_stalled_reader_of_a_large_download_is_bounded(env):
    """A client that stops reading a 64 MiB download: cutoverd stops reading
    the upstream (its memory does not grow with the body), then the client
    reads on and gets every byte."""
    b1 = env.backend("blue1", "blue")
    asan = binary_has_asan(cutoverd_path())
    d = env.cutoverd(blue=[b1], green=[], extra="workers = 1;\n",
                     asan_options="quarantine_size_mb=8" if asan else "")
    n = 64 * MIB
    check(d.get("/").status == 200, "backend not reachable")
    before = rss_kib(d.pid)
    with d.conn(timeout=60) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(http_request("GET", "/bytes?n=%d&cl=1" % n))
        time.sleep(1.5)  # the proxy fills what the sockets take, then stops
        grown = rss_kib(d.pid) - before
        check(grown < 16 * 1024, "cutoverd grew by %d KiB while its client did not read" % grown)
        checker = PatternChecker()
        r = c.read_response(sink=checker)
    check(r.status == 200, "/bytes answered %s" % r.status)
    check(checker.offset == n and checker.mismatch is None,
          "got %d bytes (expected %d), mismatch at %s" % (checker.offset, n, checker.mismatch))


def test_stalled_request_body_gets_408(env):
    """The client read timeout (client_idle) still runs while a body comes
    in: a body that stops gets 408 and the connection closes."""
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[], timeouts={"client_idle": "1s"})
    with d.conn() as c:
        c.send(http_request("POST", "/upload", headers=[("Content-Length", "100000")]) + b"x" * 1000)
        try:
            r = c.read_response()
        except ConnClosed:
            fail("stalled body: connection closed without a 408")
        check(r.status == 408, "stalled body answered %s, expected 408" % r.status)
        check(c.wait_closed(5), "connection still open after the 408")


def test_idle_upstream_connection_closed_at_upstream_idle(env):
    """A kept-alive upstream connection nobody uses is closed once
    timeouts.upstream_idle passes (its read timeout)."""
    up = env.raw_backend(serve_requests)
    d = env.cutoverd(blue=[up], green=[], timeouts={"upstream_idle": "1s"})
    check(d.get("/").status == 200, "request failed")
    wait_for(lambda: up.conns and up.conns[0].closed, 8, "the idle upstream connection to be closed")
