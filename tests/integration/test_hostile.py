"""Hostile clients and upstreams: memory per connection stays bounded.

A client that pipelines requests and never reads its answers must not make
the daemon queue answers without bound, whatever the answer (error, 204,
HEAD): the daemon stops taking requests from it once its output is above
the high-water mark, and closes it when it does not drain within
timeouts.client_idle. An upstream that sends interim (1xx) answers forever
gets a 502 after a few, and one that trickles them gets a 504 after the
response timeout. A request-line without a version gets 400 as soon as it
ends; Connection options are bounded.
"""

import os
import signal
import socket
import threading
import time

from harness import Conn, ConnClosed, check, http_request, rss_kib, wait_for
from ops import check_log_clean, reap

# cutoverd logs these at [error]/[warn] when a test breaks an upstream on purpose.
UPSTREAM_ERRORS = [r"(?i)upstream|interim|timed out|invalid"]

BIG_HEADER = ("X-Filler", "f" * 15000)


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def pipeline_until_stuck(port, request, stuck_for=2.0, deadline=30.0):
    """Sends request over and over on one connection and never reads. Returns
    (socket, bytes sent, stuck): stuck is True once no byte could be sent for
    stuck_for seconds, i.e. the daemon stopped taking requests from us, or
    once it closed the connection; False when it was still taking them at
    the deadline."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    batch = request * max(1, 65536 // len(request))
    sent = 0
    pending = memoryview(batch)
    start = last = time.monotonic()
    while True:
        now = time.monotonic()
        if now - last >= stuck_for:
            return s, sent, True
        if now - start >= deadline:
            return s, sent, False
        try:
            n = s.send(pending)
        except BlockingIOError:
            time.sleep(0.05)
            continue
        except (ConnectionResetError, BrokenPipeError):
            return s, sent, True
        sent += n
        last = time.monotonic()
        pending = pending[n:]
        if not pending:
            pending = memoryview(batch)


def never_reading_client_is_bounded(env, d, request, what):
    rss0 = rss_kib(d.pid)
    fds0 = open_fds(d.pid)
    s, sent, stuck = pipeline_until_stuck(d.port, request)
    try:
        check(stuck, "%s: cutoverd kept taking pipelined requests from a client that never reads "
              "(%d bytes in 30s)" % (what, sent))
        grown = rss_kib(d.pid) - rss0
        check(grown < 64 * 1024, "%s: cutoverd grew by %d KiB for one client that never reads" % (what, grown))
        # client_idle is 2s: the daemon closes a client that took nothing
        # for that long (its descriptor goes back).
        wait_for(lambda: open_fds(d.pid) <= fds0, 20,
                 "%s: cutoverd to close a client that does not read (fds %d -> %d)"
                 % (what, fds0, open_fds(d.pid)))
    finally:
        s.close()
    # Still serving.
    wait_for(lambda: port_ok(d), 10, "cutoverd to answer again")


def port_ok(d):
    try:
        with d.conn(timeout=5) as c:
            c.send(http_request("GET", "/"))
            return c.read_response().status in (200, 204, 503)
    except (OSError, ConnClosed):
        return False


TIMEOUTS = {"client_idle": "2s"}
ASAN = "quarantine_size_mb=8"  # freed memory must not count as growth


def test_pipelined_503s_never_read_are_bounded(env):
    dead = "127.0.0.1:%d" % env.port()  # nothing listens: the pool is down
    d = env.cutoverd(blue=[dead], green=[dead], timeouts=TIMEOUTS, asan_options=ASAN,
                     expect_errors=UPSTREAM_ERRORS)
    wait_for(lambda: d.get("/").status == 503, 15, "blue to answer 503")
    never_reading_client_is_bounded(env, d, http_request("GET", "/"), "503 answers")


def big_204(conn, rec, server):
    while True:
        req = conn.read_request()
        if req is None:
            return
        rec.requests.append(req)
        if req.method == "HEAD":
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n%s: %s\r\n\r\n"
                      % (BIG_HEADER[0].encode(), BIG_HEADER[1].encode()))
        else:
            conn.send(b"HTTP/1.1 204 No Content\r\n%s: %s\r\n\r\n" % (BIG_HEADER[0].encode(), BIG_HEADER[1].encode()))


def test_pipelined_204s_never_read_are_bounded(env):
    up = env.raw_backend(big_204)
    d = env.cutoverd(blue=[up], green=[up], timeouts=TIMEOUTS, limits={"header_size": 32768},
                     asan_options=ASAN)
    check(d.get("/").status == 204, "204 backend not reachable")
    never_reading_client_is_bounded(env, d, http_request("GET", "/"), "204 answers with 15 KB heads")


def test_pipelined_heads_never_read_are_bounded(env):
    up = env.raw_backend(big_204)
    d = env.cutoverd(blue=[up], green=[up], timeouts=TIMEOUTS, limits={"header_size": 32768},
                     asan_options=ASAN)
    check(d.get("/", method="HEAD").status == 200, "HEAD backend not reachable")
    never_reading_client_is_bounded(env, d, http_request("HEAD", "/"), "HEAD answers")


def test_slow_reader_of_pipelined_answers_gets_them_all(env):
    """The bound must not lose anything: a client that pipelines 2,000
    requests and reads late still gets 2,000 answers in order."""
    up = env.raw_backend(big_204)
    d = env.cutoverd(blue=[up], green=[up], limits={"header_size": 32768})
    n = 2000
    with d.conn(timeout=30) as c:
        payload = b"".join(http_request("GET", "/n%d" % i) for i in range(n))
        t = threading.Thread(target=c.sock.sendall, args=(payload,), daemon=True)
        t.start()
        time.sleep(1.0)  # let the daemon hit its bound first
        for i in range(n):
            r = c.read_response()
            check(r.status == 204, "answer %d: expected 204, got %s" % (i, r.status))
        t.join(30)
    targets = [r.target for r in up.all_requests()]
    check(targets == ["/n%d" % i for i in range(n)],
          "backend saw %d requests, not in order or not all" % len(targets))


def flood_1xx(conn, rec, server):
    req = conn.read_request()
    if req is None:
        return
    rec.requests.append(req)
    hint = b"HTTP/1.1 103 Early Hints\r\n%s: %s\r\n\r\n" % (BIG_HEADER[0].encode(), BIG_HEADER[1].encode())
    try:
        for _ in range(100000):
            conn.send(hint)
    except OSError:
        pass


def test_endless_1xx_from_upstream_ends_in_502(env):
    up = env.raw_backend(flood_1xx)
    d = env.cutoverd(blue=[up], green=[up], limits={"header_size": 32768}, asan_options=ASAN,
                     expect_errors=UPSTREAM_ERRORS)
    rss0 = rss_kib(d.pid)
    with d.conn(timeout=20) as c:
        c.send(http_request("GET", "/"))
        hints = 0
        while True:
            r = c.read_response(skip_1xx=False)
            if r.status != 103:
                break
            hints += 1
        check(r.status == 502, "expected 502 after a flood of 103s, got %s" % r.status)
        check(1 <= hints <= 8, "expected at most 8 interim answers relayed, got %d" % hints)
    grown = rss_kib(d.pid) - rss0
    check(grown < 64 * 1024, "cutoverd grew by %d KiB during a 1xx flood" % grown)


def trickle_1xx(conn, rec, server):
    req = conn.read_request()
    if req is None:
        return
    rec.requests.append(req)
    try:
        for _ in range(120):
            conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
            time.sleep(0.5)
    except OSError:
        pass


def test_trickled_1xx_count_against_the_response_timeout(env):
    """Each 1xx restarts the upstream's read timeout, but not the response
    timeout: with response = 3s the exchange ends with 504 well before the
    trickle (one 103 every 0.5 s, at most 8 relayed) would."""
    up = env.raw_backend(trickle_1xx)
    d = env.cutoverd(blue=[up], green=[up], timeouts={"response": "3s"}, expect_errors=UPSTREAM_ERRORS)
    with d.conn(timeout=30) as c:
        c.send(http_request("GET", "/"))
        while True:
            r = c.read_response(skip_1xx=False)
            if r.status != 103:
                break
        check(r.status in (502, 504), "expected 504 (or 502 past the 1xx bound), got %s" % r.status)


def test_http09_request_line_gets_400_at_once(env):
    up = env.raw_backend()
    d = env.cutoverd(blue=[up], green=[up], timeouts={"client_header": "60s"})
    for line in (b"GET /\r\n", b"GET / HTTP/1.1 extra\r\n", b"\r\nGET /x\r\n"):
        with d.conn(timeout=10) as c:
            c.send(line)  # and nothing more: no empty line ever comes
            r = c.read_response()
            check(r.status == 400, "%r: expected 400 at the end of the line, got %s" % (line, r.status))
            check(c.wait_closed(5), "%r: connection not closed after the 400" % line)
    # A valid request-line still waits for the rest of its head.
    with d.conn(timeout=10) as c:
        c.send(b"GET /slow HTTP/1.1\r\n")
        time.sleep(0.5)
        c.send(b"Host: a\r\n\r\n")
        check(c.read_response().status == 200, "a head sent in two parts was not served")
    check(not any(b"/x" in rec.data or b"extra" in rec.data for rec in up.conns),
          "an invalid request-line reached the upstream")


def test_connection_options_are_bounded(env):
    up = env.raw_backend()
    d = env.cutoverd(blue=[up], green=[up], limits={"header_size": 65536, "header_count": 1000})
    names = ["x-o%d" % i for i in range(32)]
    fields = [(n, "v") for n in names] + [("X-Keep", "kept")]
    r = d.get("/ok", headers=[("Connection", ", ".join(names))] + fields)
    check(r.status == 200, "32 Connection options: expected 200, got %s" % r.status)
    req = up.all_requests()[-1]
    check(all(req.header(n) is None for n in names), "a field named in Connection was forwarded")
    check(req.header("X-Keep") == "kept", "a field not named in Connection was dropped")
    # Past the bound: 400, nothing forwarded; also for the pathological
    # head (thousands of options, a thousand fields).
    before = len(up.all_requests())
    r = d.get("/m400", headers=[("Connection", ", ".join(names + ["x-o32"]))] + fields)
    check(r.status == 400, "33 Connection options: expected 400, got %s" % r.status)
    many = ", ".join("a%d" % i for i in range(4000))
    r = d.get("/m400", headers=[("Connection", many)] + [("a%d" % i, "v") for i in range(900)])
    check(r.status == 400, "4,000 Connection options: expected 400, got %s" % r.status)
    check(len(up.all_requests()) == before, "a request over the Connection bound reached the upstream")
    check(d.get("/after").status == 200, "not serving after the bounded requests")


def test_graceful_stop_with_a_blocked_client(env):
    """SIGTERM while a client that does not read has its answers queued: the
    daemon flushes what it can and exits 0 within the drain time, instead of
    waiting for the client or dropping the answers unsent."""
    dead = "127.0.0.1:%d" % env.port()
    d = env.cutoverd(blue=[dead], green=[dead], timeouts={"client_idle": "30s"},
                     extra='switch: { drain_timeout = "5s"; };\n', expect_errors=UPSTREAM_ERRORS)
    wait_for(lambda: d.get("/").status == 503, 15, "blue to answer 503")
    s, sent, stuck = pipeline_until_stuck(d.port, http_request("GET", "/"), stuck_for=1.0)
    try:
        check(stuck, "cutoverd kept taking requests from a client that never reads")
        d.proc.send_signal(signal.SIGTERM)
        s.setblocking(True)
        c = Conn(sock=s, timeout=20)
        answers = 0
        try:
            while True:
                r = c.read_response()
                check(r.status == 503, "expected 503 answers, got %s" % r.status)
                answers += 1
        except ConnClosed:
            pass
        check(answers > 0, "no queued answer reached the client before the close")
        rc, _ = reap(d, 20)
        check(rc == 0, "cutoverd exited %s after SIGTERM" % rc)
        check_log_clean(d)
    finally:
        s.close()
