"""A plain connection is read right after accept (session_new): a request
that came with the connection is served without first waiting for the
socket in epoll, and the client is not read again until its answer is done.

Whether the request is there at accept or comes later, whether more
requests are pipelined behind it (with it or while the first one waits),
whether the client resets meanwhile (half-closing: test_reader), or sends nothing at all:
each is answered as before. "At accept" is made certain by stopping
cutoverd (SIGSTOP) while the client connects and sends, so the request is
in the socket before the accept. With strace installed, one test checks the
point of it all: such a connection costs no epoll_ctl, and one that closes
after a request read later leaves epoll before its close."""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time

from harness import TestSkip, check, http_request, wait_for


def connect_and_send(d, data):
    """A connection whose first bytes are in its socket before cutoverd accepts it."""
    with d.paused():
        c = d.conn()
        c.send(data)
    return c


def test_request_there_at_accept(env):
    """A request in the socket at accept: answered; with Connection: close
    the connection then closes, kept alive the next request is answered too."""
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    with connect_and_send(d, http_request("GET", "/", headers=[("Connection", "close")])) as c:
        r = c.read_response()
        check(r.status == 200 and r.body == b"blue1 blue\n", "close: answer %s %r" % (r.status, r.body))
        check(c.wait_closed(5), "close: connection still open after the answer")
    with connect_and_send(d, http_request("GET", "/echo?i=1")) as c:
        r = c.read_response()
        check(r.status == 200 and b'"/echo?i=1"' in r.body, "keep-alive: first answer %s %r" % (r.status, r.body[:200]))
        c.send(http_request("GET", "/echo?i=2"))
        r = c.read_response()
        check(r.status == 200 and b'"/echo?i=2"' in r.body, "keep-alive: second answer %s %r" % (r.status, r.body[:200]))


def test_request_after_accept(env):
    """A request sent once cutoverd has accepted the connection (and found
    nothing to read yet) is answered."""
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    with d.conn() as c:
        time.sleep(0.2)  # accepted and read (nothing) by now
        c.send(http_request("GET", "/", headers=[("Connection", "close")]))
        r = c.read_response()
        check(r.status == 200 and r.body == b"blue1 blue\n", "answer %s %r" % (r.status, r.body))
        check(c.wait_closed(5), "connection still open after the answer")


def test_pipelined_with_the_connection(env):
    """Three requests in the socket at accept: all answered, in order."""
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    burst = b"".join(http_request("GET", "/echo?i=%d" % i) for i in range(3))
    with connect_and_send(d, burst) as c:
        for i in range(3):
            r = c.read_response()
            check(r.status == 200 and b'"/echo?i=%d"' % i in r.body,
                  "answer %d: %s %r" % (i, r.status, r.body[:200]))


def test_pipelined_while_the_first_waits(env):
    """A second request sent while the first (read at accept) waits for a
    slow upstream: both answered, in order."""
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    with connect_and_send(d, http_request("GET", "/delay?ms=300")) as c:
        time.sleep(0.1)  # the first request is upstream
        c.send(http_request("GET", "/echo?i=2"))
        r = c.read_response()
        check(r.status == 200 and r.body == b"blue1 blue\n", "first answer %s %r" % (r.status, r.body[:200]))
        r = c.read_response()
        check(r.status == 200 and b'"/echo?i=2"' in r.body, "second answer %s %r" % (r.status, r.body[:200]))


def test_reset_while_the_answer_is_upstream(env):
    """A client that resets while its request waits for the upstream (read
    at accept; or read later, with Connection: close): cutoverd takes the
    answer, drops the client, and serves the next connection."""
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    for later in (False, True):
        if later:
            c = d.conn()
            time.sleep(0.1)  # accepted and read (nothing) by now
            c.send(http_request("GET", "/delay?ms=300", headers=[("Connection", "close")]))
        else:
            c = connect_and_send(d, http_request("GET", "/delay?ms=300"))
        time.sleep(0.1)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # RST
        time.sleep(0.4)  # the answer came and could not be delivered
        r = d.get("/")
        check(r.status == 200 and r.body == b"blue1 blue\n",
              "after a reset (request %s accept): answer %s %r" % ("after" if later else "at", r.status, r.body))


def test_silent_client_closed_at_header_timeout(env):
    """A client that connects and sends nothing is closed at client_header,
    without an answer."""
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[], timeouts={"client_header": "1s"})
    with d.conn() as c:
        t0 = time.monotonic()
        check(c.wait_closed(5), "a silent client is still connected after 5s")
        waited = time.monotonic() - t0
        check(waited > 0.8, "a silent client was closed after %.2fs, before client_header (1s)" % waited)
        check(not c.buf, "a silent client got bytes: %r" % bytes(c.buf[:200]))


def test_request_at_accept_costs_no_epoll_ctl(env):
    """Under strace: a connection whose request was there at accept and
    which closes after its answer is never added to epoll (no epoll_ctl on
    its descriptor). One whose Connection: close request came after the
    accept leaves epoll before its close: its EPOLL_CTL_DEL succeeds (it
    failed with EBADF when libevent's changelist applied it after the close)."""
    if shutil.which("strace") is None:
        raise TestSkip("strace is not installed")
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[], extra="workers = 1;\n")
    check(d.get("/").status == 200, "backend not reachable")  # the upstream connection is idle now
    req = http_request("GET", "/", headers=[("Connection", "close")])
    for later in (False, True):
        out = os.path.join(env.tmp, "strace-%s.out" % ("later" if later else "at"))
        st = subprocess.Popen(["strace", "-f", "-e", "trace=accept4,epoll_ctl,close", "-o", out, "-p", str(d.pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: os.path.exists(out), 5, "strace to start")
            time.sleep(0.5)  # attached to every thread
            if st.poll() is not None:
                raise TestSkip("strace cannot attach here: %s" % st.stderr.read().decode(errors="replace").strip())
            if later:
                c = d.conn()
                time.sleep(0.2)  # accepted and read (nothing) by now
                c.send(req)
            else:
                c = connect_and_send(d, req)
            with c:
                r = c.read_response()
                check(r.status == 200, "answer %s" % r.status)
                check(c.wait_closed(5), "connection still open after the answer")
            time.sleep(0.3)  # one more loop turn: where a deferred DEL would show
        finally:
            st.send_signal(signal.SIGINT)
            st.wait(10)
        with open(out) as f:
            trace = f.read()
        # (a call split by another thread's: "<... accept4 resumed>{sa_family=...")
        m = re.search(r"accept4(?:\(\d+, | resumed>)\{sa_family=AF_INET.*\) = (\d+)", trace)
        check(m is not None, "no accept4 in the trace:\n%s" % trace[-2000:])
        fd = m.group(1)
        ctl = re.findall(r"epoll_ctl\(\d+, EPOLL_CTL_(\w+), %s,.*= (-?\d+)" % fd, trace[m.end():])
        if later:
            check(ctl == [("ADD", "0"), ("DEL", "0")],
                  "request after accept: expected a successful ADD and DEL on fd %s, got %s" % (fd, ctl))
        else:
            check(not ctl, "request at accept: epoll_ctl on the connection's descriptor %s: %s" % (fd, ctl))
