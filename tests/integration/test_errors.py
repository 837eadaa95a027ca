"""Every error answer of cutoverd, dead upstreams and each timeout.

Malformed requests are data: (name, raw client bytes, where the error is).
For an error in the head nothing may reach the upstream at all; for an error
in a chunked body the head may already be on its way, but no complete request
may reach the upstream and the offending bytes never do. Either way the
client gets 400 and the connection is closed."""

import socket
import time

from harness import Conn, ConnClosed, check, fail, free_port, http_request, respond, serve_requests, wait_for

# Lines a daemon may log at [error] when a test breaks an upstream on purpose.
UPSTREAM_ERRORS = [r"(?i)upstream|connect|refused|reset|invalid|timed? ?out|timeout|502|504|127\.0\.0\.1"]

BAD_REQUESTS = [
    # name, raw bytes, "head" or "body" (where the error is), marker that must never reach the upstream
    ("cl_and_te", b"POST /m400 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n0\r\n\r\n", "head", b"/m400"),
    ("te_and_cl", b"POST /m400 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                  b"5\r\nhello\r\n0\r\n\r\n", "head", b"/m400"),
    ("two_differing_cl", b"POST /m400 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
     "head", b"/m400"),
    ("cl_list_differing", b"POST /m400 HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!", "head", b"/m400"),
    ("bad_cl_letters", b"POST /m400 HTTP/1.1\r\nHost: a\r\nContent-Length: 5x\r\n\r\nhello", "head", b"/m400"),
    ("bad_cl_negative", b"POST /m400 HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\nhello", "head", b"/m400"),
    ("bad_cl_plus", b"POST /m400 HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", "head", b"/m400"),
    ("bad_cl_overflow", b"POST /m400 HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\nhello",
     "head", b"/m400"),
    ("te_not_ending_chunked", b"POST /m400 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
                              b"5\r\nhello\r\n0\r\n\r\n", "head", b"/m400"),
    ("te_identity", b"POST /m400 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\nhello", "head", b"/m400"),
    ("te_chunked_twice", b"POST /m400 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "head", b"/m400"),
    ("te_on_http10", b"POST /m400 HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     "head", b"/m400"),
    ("space_before_colon_te", b"POST /m400 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"
                              b"5\r\nhello\r\n0\r\n\r\n", "head", b"/m400"),
    ("space_before_colon_host", b"GET /m400 HTTP/1.1\r\nHost : a\r\n\r\n", "head", b"/m400"),
    ("obs_fold", b"GET /m400 HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n", "head", b"/m400"),
    ("bare_lf", b"GET /m400 HTTP/1.1\nHost: a\n\n", "head", b"/m400"),
    ("bare_lf_in_field", b"GET /m400 HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", "head", b"/m400"),
    ("bare_cr_in_field", b"GET /m400 HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", "head", b"/m400"),
    ("nul_in_field", b"GET /m400 HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", "head", b"/m400"),
    ("space_in_field_name", b"GET /m400 HTTP/1.1\r\nHost: a\r\nX Bad: b\r\n\r\n", "head", b"/m400"),
    ("http09", b"GET /m400\r\n\r\n", "head", b"/m400"),
    ("version_letters", b"GET /m400 HXYZ/1.1\r\nHost: a\r\n\r\n", "head", b"/m400"),
    ("bad_method_token", b"G(T /m400 HTTP/1.1\r\nHost: a\r\n\r\n", "head", b"/m400"),
    ("double_space_request_line", b"GET  /m400 HTTP/1.1\r\nHost: a\r\n\r\n", "head", b"/m400"),
    ("missing_host", b"GET /m400 HTTP/1.1\r\n\r\n", "head", b"/m400"),
    ("two_hosts", b"GET /m400 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "head", b"/m400"),
    ("bad_host_value", b"GET /m400 HTTP/1.1\r\nHost: a b\r\n\r\n", "head", b"/m400"),
    ("bad_chunk_size", b"POST /m400 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"1\r\nA\r\nxyzzy\r\nSECRETDATA\r\n0\r\n\r\n", "body", b"SECRETDATA"),
    ("chunk_size_overflow", b"POST /m400 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"1\r\nA\r\nffffffffffffffffff\r\nSECRETDATA\r\n0\r\n\r\n", "body", b"SECRETDATA"),
    ("negative_chunk_size", b"POST /m400 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"1\r\nA\r\n-a\r\nSECRETDATA\r\n0\r\n\r\n", "body", b"SECRETDATA"),
    ("junk_after_chunk_data", b"POST /m400 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"5\r\nhelloJUNK\r\n5\r\nSECRETDATA\r\n0\r\n\r\n", "body", b"JUNK"),
    ("chunk_data_bare_lf", b"POST /m400 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"5\nhello\n0\r\n\r\n", "body", b"hello"),
]


def expect_400_and_close(c, what):
    try:
        r = c.read_response()
    except ConnClosed:
        fail("%s: connection closed without a 400 answer" % what)
    check(r.status == 400, "%s answered %s, expected 400" % (what, r.status))
    check(r.body, "%s: the 400 answer has no text body" % what)
    check(c.wait_closed(5), "%s: connection still open 5s after the 400" % what)


def sync_upstream(d, up, n=0):
    """Sends a good request and waits until the upstream has it, so that
    everything cutoverd forwarded before it has arrived too."""
    path = "/sync%d" % n
    r = d.get(path)
    check(r.status == 200, "good request after the bad one answered %s" % r.status)
    wait_for(lambda: any(q.target == path for q in up.all_requests()), 5, "the good request at the upstream")


def forwarded_requests(up):
    return [q for q in up.all_requests() if not q.target.startswith("/sync") and q.target != "/healthz"]


def _make_400_test(name, raw, where, marker):
    def test(env):
        up = env.raw_backend()
        d = env.cutoverd(blue=[up], green=[])
        with d.conn() as c:
            c.send(raw)
            expect_400_and_close(c, "request %s" % name)
        sync_upstream(d, up)
        seen = b"".join(bytes(x.data) for x in up.conns)
        if where == "head":
            check(marker not in seen and not forwarded_requests(up),
                  "malformed request %s reached the upstream: %r" % (name, seen[:200]))
        else:
            check(marker not in seen, "bytes after the framing error (%r) reached the upstream" % marker)
            check(not forwarded_requests(up), "a complete request reached the upstream despite a bad chunked body")
    test.__name__ = "test_400_" + name
    test.__doc__ = "400, connection closed, nothing of it upstream: %r" % raw[:60]
    return test


for _case in BAD_REQUESTS:
    globals()["test_400_" + _case[0]] = _make_400_test(*_case)


def test_408_client_header_timeout(env):
    up = env.raw_backend()
    d = env.cutoverd(blue=[up], green=[], timeouts={"client_header": "1s"})
    with d.conn() as c:
        c.send(b"GET /m408 HTTP/1.1\r\nHost: a\r\nX-Half: ")
        try:
            r = c.read_response()
        except ConnClosed:
            fail("half a head: connection closed without a 408")
        check(r.status == 408, "half a head answered %s, expected 408" % r.status)
        check(c.wait_closed(5), "connection still open after the 408")
    check(not up.conns, "the stalled request reached the upstream")


def test_408_slow_trickle_still_times_out(env):
    """client_header bounds the whole head, not each read."""
    up = env.raw_backend()
    d = env.cutoverd(blue=[up], green=[], timeouts={"client_header": "1s"})
    head = b"GET /m408 HTTP/1.1\r\nHost: a\r\n" + b"X-Slow: " + b"a" * 200
    with d.conn() as c:
        deadline = time.monotonic() + 6
        for byte in head:
            if time.monotonic() > deadline:
                fail("no answer after trickling a head for 6s with client_header = 1s")
            if c.wait_closed(0.2) or c.buf:
                break
            try:
                c.send(bytes([byte]))
            except OSError:
                break
        try:
            r = c.read_response()
        except ConnClosed:
            fail("trickled head: connection closed without a 408")
        check(r.status == 408, "trickled head answered %s, expected 408" % r.status)
    check(not up.conns, "the trickled request reached the upstream")


def test_431_header_too_large(env):
    up = env.raw_backend()
    d = env.cutoverd(blue=[up], green=[], limits={"header_size": 1024})
    with d.conn() as c:
        c.send(http_request("GET", "/m431", headers=[("X-Big", "a" * 2000)]))
        r = c.read_response()
        check(r.status == 431, "a 2000-byte header with header_size = 1024 answered %s, expected 431" % r.status)
        check(c.wait_closed(5), "connection still open after the 431")
    sync_upstream(d, up)
    check(not forwarded_requests(up), "the oversized request reached the upstream")


def test_431_too_many_headers(env):
    up = env.raw_backend()
    d = env.cutoverd(blue=[up], green=[], limits={"header_count": 10})
    with d.conn() as c:
        c.send(http_request("GET", "/m431", headers=[("X-H%d" % i, "v") for i in range(20)]))
        r = c.read_response()
        check(r.status == 431, "21 header fields with header_count = 10 answered %s, expected 431" % r.status)
        check(c.wait_closed(5), "connection still open after the 431")
    sync_upstream(d, up)
    check(not forwarded_requests(up), "the request with too many headers reached the upstream")


def test_header_count_at_limit_accepted(env):
    up = env.raw_backend()
    d = env.cutoverd(blue=[up], green=[], limits={"header_count": 10})
    r = d.get("/ok", headers=[("X-H%d" % i, "v") for i in range(9)])
    check(r.status == 200, "10 header fields with header_count = 10 answered %s" % r.status)


def test_502_upstream_refused(env):
    dead = "127.0.0.1:%d" % free_port()
    d = env.cutoverd(blue=[dead], green=[], expect_errors=UPSTREAM_ERRORS)
    r = d.get("/")
    check(r.status == 502, "request to a refusing upstream answered %s, expected 502" % r.status)
    check(r.body, "the 502 answer has no text body")


BAD_RESPONSES = [
    ("bad_status_code", b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok"),
    ("not_http", b"ICY 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("cl_and_te", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    ("differing_cl", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!"),
    ("space_before_colon", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"),
    ("bare_lf", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
    ("obs_fold", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n c\r\n\r\nok"),
]


def _make_502_test(name, answer):
    def test(env):
        def handler(conn, rec, server):
            if rec.index == 0:
                req = conn.read_request()
                if req is None:
                    return
                rec.requests.append(req)
                conn.send(answer)
                conn.read_until_close()  # keep it open: cutoverd must not reuse it
            else:
                serve_requests(conn, rec, server)
        up = env.raw_backend(handler)
        d = env.cutoverd(blue=[up], green=[], expect_errors=UPSTREAM_ERRORS)
        r = d.get("/first")
        check(r.status == 502, "invalid upstream response (%s) answered %s, expected 502" % (name, r.status))
        r = d.get("/second")
        check(r.status == 200, "request after the invalid response answered %s" % r.status)
        first = up.conns[0]
        check(b"/second" not in bytes(first.data),
              "the upstream connection that answered invalidly was reused")
    test.__name__ = "test_502_invalid_response_" + name
    return test


for _case in BAD_RESPONSES:
    globals()["test_502_invalid_response_" + _case[0]] = _make_502_test(*_case)


def test_503_pool_without_servers(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[], initial="green")
    r = d.get("/")
    check(r.status == 503, "empty active pool answered %s, expected 503" % r.status)
    check(r.body, "the 503 answer has no text body")


def test_504_upstream_response_timeout(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[], timeouts={"response": "1s"}, expect_errors=UPSTREAM_ERRORS)
    t0 = time.monotonic()
    r = d.get("/delay?ms=9000")
    check(r.status == 504, "upstream slower than timeouts.response answered %s, expected 504" % r.status)
    check(time.monotonic() - t0 < 7.0, "the 504 came only after the upstream answered")
    r = d.get("/")
    check(r.status == 200, "request after the 504 answered %s" % r.status)


def test_retry_on_connect_failure(env):
    live = env.backend("blue2", "blue")
    dead = "127.0.0.1:%d" % free_port()
    d = env.cutoverd(blue=[dead, live], green=[], expect_errors=UPSTREAM_ERRORS)
    got = [d.get("/").status for _ in range(8)]
    with d.conn() as c:
        for _ in range(6):
            c.send(http_request("GET", "/"))
            got.append(c.read_response().status)
    check(got == [200] * 14, "with one dead and one live blue server got %s, expected all 200" % got)


def test_upstream_closing_keepalive_connection_is_not_an_error(env):
    """An upstream that closes an idle kept-alive connection: the next
    request goes on a new connection and succeeds."""
    def handler(conn, rec, server):
        req = conn.read_request()
        if req is None:
            return
        rec.requests.append(req)
        respond(conn, 200, b"once")  # keep-alive answer, then close
    up = env.raw_backend(handler)
    d = env.cutoverd(blue=[up], green=[])
    with d.conn() as c:
        c.send(http_request("GET", "/1"))
        check(c.read_response().status == 200, "first request failed")
        wait_for(lambda: up.conns and up.conns[0].closed, 5, "the upstream to close its connection")
        c.send(http_request("GET", "/2"))
        r = c.read_response()
        check(r.status == 200, "request after the upstream closed its idle connection answered %s" % r.status)


def test_idle_keepalive_client_closed(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[], timeouts={"client_idle": "1s"})
    with d.conn() as c:
        c.send(http_request("GET", "/"))
        r = c.read_response()
        check(r.status == 200 and not r.has_token("Connection", "close"), "first answer %s %s" % (r.status, r.headers))
        check(c.wait_closed(6), "idle kept-alive connection still open 6s after client_idle = 1s")


def test_silent_connection_closed(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[], timeouts={"client_idle": "1s", "client_header": "1s"})
    with d.conn() as c:
        check(c.wait_closed(6), "a connection that never sent a byte is still open after 6s")


def test_max_connections(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[], limits={"max_connections": 2})
    held = [d.conn(), d.conn()]
    for i, c in enumerate(held):
        c.send(http_request("GET", "/"))
        check(c.read_response().status == 200, "held connection %d not served" % i)
    third = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    c3 = Conn(sock=third, timeout=10)
    refused = False
    try:
        c3.send(http_request("GET", "/third"))
    except OSError:
        refused = True
    if not refused:
        closed = c3.wait_closed(1.0)
        if c3.buf:
            try:
                r = c3.read_response()
            except ConnClosed:
                r = None
            if r is not None and r.status == 200:
                fail("a third connection was served while max_connections = 2 were open")
            refused = True
        elif closed:
            refused = True
    for c in held:
        c.close()
    if not refused:
        r = c3.read_response()
        check(r.status == 200, "the waiting third connection answered %s once the others closed" % r.status)
    c3.close()

    def fresh_ok():
        try:
            return d.get("/").status == 200
        except (ConnClosed, OSError):
            return False
    wait_for(fresh_ok, 5, "a new connection to be served after the held ones closed")
