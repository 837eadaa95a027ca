"""Parked idle connections (session.c, PARK_DELAY_MS = 50 ms).

A plain keep-alive connection idle for 50 ms gives back its bufferevent and
buffers and waits on one event until its next byte or its idle timeout. These
tests drive connections through that state: reuse after parking (also with a
pipelined pair and many connections at once), a request head that starts after
parking still has its header timeout, the idle timeout still closes a parked
connection, a client that closes while parked is freed, and a graceful stop or
a reload with parked connections."""

import os
import signal
import time

from harness import check, http_request, wait_for
from ops import check_log_clean, reap

PARKED = 0.6  # seconds idle: well past the 50 ms park delay


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def get_ok(c, path, what):
    c.send(http_request("GET", path))
    r = c.read_response()
    check(r.status == 200, "%s: answered %s" % (what, r.status))
    check(not r.has_token("Connection", "close"), "%s: the connection is closing" % what)
    return r


def test_parked_connection_serves_again(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    with d.conn() as c:
        get_ok(c, "/first", "first request")
        for i in range(3):
            time.sleep(PARKED)
            get_ok(c, "/after-park-%d" % i, "request %d after parking" % i)
        time.sleep(PARKED)
        # two pipelined requests in one write after parking
        c.send(http_request("GET", "/p1") + http_request("GET", "/p2"))
        for p in ("/p1", "/p2"):
            r = c.read_response()
            check(r.status == 200, "pipelined %s after parking answered %s" % (p, r.status))


def test_many_parked_connections_all_serve_again(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    conns = [d.conn() for _ in range(300)]
    try:
        for i, c in enumerate(conns):
            get_ok(c, "/a%d" % i, "connection %d, first request" % i)
        time.sleep(PARKED * 2)
        for i, c in enumerate(conns):
            get_ok(c, "/b%d" % i, "connection %d after parking" % i)
    finally:
        for c in conns:
            c.close()


def test_head_started_after_parking_still_times_out(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[], timeouts={"client_header": "1s", "client_idle": "30s"})
    with d.conn() as c:
        get_ok(c, "/first", "first request")
        time.sleep(PARKED)
        c.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n")  # never finished
        r = c.read_response()
        check(r.status == 408, "an unfinished head after parking answered %s, not 408" % r.status)
        check(c.wait_closed(10), "connection open after its 408")


def test_parked_connection_closes_at_client_idle(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[], timeouts={"client_idle": "1500ms"})
    with d.conn() as c:
        get_ok(c, "/first", "first request")
        t0 = time.monotonic()
        check(c.wait_closed(10), "parked connection still open 10s after client_idle = 1.5s")
        took = time.monotonic() - t0
        check(took >= 1.2, "parked connection closed after %.2fs, before client_idle = 1.5s" % took)


def test_client_closing_a_parked_connection_frees_it(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    get_ok_first = d.get("/warm")  # the upstream connection exists before counting
    check(get_ok_first.status == 200, "warm-up answered %s" % get_ok_first.status)
    time.sleep(0.3)
    base = open_fds(d.pid)
    conns = [d.conn() for _ in range(50)]
    for i, c in enumerate(conns):
        get_ok(c, "/c%d" % i, "connection %d" % i)
    time.sleep(PARKED)
    check(open_fds(d.pid) >= base + 50, "the 50 parked connections are not open in the daemon")
    for c in conns:
        c.close()
    wait_for(lambda: open_fds(d.pid) <= base + 2, 10,
             "the daemon to close 50 parked connections whose clients left (fds %d, base %d)"
             % (open_fds(d.pid), base))


def test_graceful_stop_and_reload_with_parked_connections(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    conns = [d.conn() for _ in range(20)]
    for i, c in enumerate(conns):
        get_ok(c, "/r%d" % i, "connection %d" % i)
    time.sleep(PARKED)
    mark = len(d.log_text())
    os.kill(d.pid, signal.SIGHUP)
    wait_for(lambda: "configuration %s applied" % d.conf_path in d.log_text()[mark:], 10,
             "the reload to be applied")
    for i, c in enumerate(conns[:10]):
        get_ok(c, "/after-reload-%d" % i, "parked connection %d after a reload" % i)
    time.sleep(PARKED)
    d.proc.send_signal(signal.SIGTERM)
    rc, _ = reap(d, 15)
    check(rc == 0, "cutoverd exited %s after SIGTERM with parked connections" % rc)
    check_log_clean(d)
    for i, c in enumerate(conns):
        check(c.wait_closed(5), "connection %d still open after the stop" % i)
