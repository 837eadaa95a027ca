"""Proxy basics through the real cutoverd: routing to the initial color,
round-robin, keep-alive on both sides, pipelining, bodiless answers,
X-Forwarded-* and hop-by-hop removal, canonical re-serialisation."""

import json

from harness import check, fail, http_request, pattern_bytes


def echo_of(resp):
    check(resp.status == 200, "/echo answered %s, expected 200" % resp.status)
    try:
        return json.loads(resp.body)
    except ValueError:
        fail("/echo body is not JSON: %r" % resp.body[:200])


def echo_headers(e, name):
    return [v for k, v in e["headers"] if k.lower() == name.lower()]


def test_get_with_curl_reaches_initial_blue(env):
    b1 = env.backend("blue1", "blue")
    b2 = env.backend("blue2", "blue")
    g1 = env.backend("green1", "green")
    d = env.cutoverd(blue=[b1, b2], green=[g1])
    r = env.curl("-i", d.url("/"))
    check(r.returncode == 0, "curl failed: %s" % r.stderr.decode().strip())
    out = r.stdout.decode("latin-1")
    check(out.startswith("HTTP/1.1 200"), "curl got %r" % out[:60])
    body = out.split("\r\n\r\n", 1)[1]
    check(body in ("blue1 blue\n", "blue2 blue\n"), "body %r is not from a blue server" % body)


def test_initial_green_routes_to_green(env):
    b1 = env.backend("blue1", "blue")
    g1 = env.backend("green1", "green")
    d = env.cutoverd(blue=[b1], green=[g1], initial="green")
    r = d.get("/")
    check(r.status == 200 and r.body == b"green1 green\n",
          "expected 200 'green1 green', got %s %r" % (r.status, r.body))
    check(r.header("X-Color") == "green", "X-Color header %r, expected green" % r.header("X-Color"))


def test_post_body_with_curl(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    body = bytes(range(256)) * 40
    path = env.tmp + "/post.bin"
    with open(path, "wb") as f:
        f.write(body)
    r = env.curl("--data-binary", "@" + path, "-H", "Content-Type: application/octet-stream", d.url("/echo"))
    check(r.returncode == 0, "curl failed: %s" % r.stderr.decode().strip())
    e = json.loads(r.stdout)
    check(e["method"] == "POST", "backend saw method %r" % e["method"])
    check(e["body"].encode("latin-1") == body, "backend saw a different body (%d bytes)" % e["body_length"])


def test_round_robin_on_one_connection(env):
    b1 = env.backend("blue1", "blue")
    b2 = env.backend("blue2", "blue")
    d = env.cutoverd(blue=[b1, b2], green=[])
    seen = []
    with d.conn() as c:
        for _ in range(10):
            c.send(http_request("GET", "/"))
            seen.append(c.read_response().header("X-Backend"))
    check(all(seen[i] != seen[i + 1] for i in range(9)), "requests did not alternate: %s" % seen)
    check(sorted(set(seen)) == ["blue1", "blue2"], "backends seen: %s" % seen)


def test_round_robin_across_connections(env):
    b1 = env.backend("blue1", "blue")
    b2 = env.backend("blue2", "blue")
    d = env.cutoverd(blue=[b1, b2], green=[])
    seen = [d.get("/").header("X-Backend") for _ in range(12)]
    check(seen.count("blue1") >= 3 and seen.count("blue2") >= 3,
          "12 connections were not spread over both blue servers: %s" % seen)


def test_client_keepalive_http11(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    with d.conn() as c:
        for i in range(5):
            c.send(http_request("GET", "/n%d" % i))
            r = c.read_response()
            check(r.status == 200, "request %d on the kept-alive connection got %s" % (i, r.status))
            check(not r.has_token("Connection", "close"), "request %d answered with Connection: close" % i)


def test_client_keepalive_http10(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    with d.conn() as c:
        for i in range(3):
            c.send(http_request("GET", "/", version="HTTP/1.0", headers=[("Connection", "keep-alive")]))
            r = c.read_response()
            check(r.status == 200 and r.body == b"blue1 blue\n", "HTTP/1.0 request %d got %s" % (i, r.status))
            check(r.has_token("Connection", "keep-alive"),
                  "HTTP/1.0 keep-alive request %d not answered with Connection: keep-alive" % i)


def test_http10_without_keepalive_is_closed(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    with d.conn() as c:
        c.send(b"GET /bytes?n=100000 HTTP/1.0\r\n\r\n")
        r = c.read_response()
        check(r.status == 200, "HTTP/1.0 request without Host got %s" % r.status)
        check(r.framing != "chunked", "HTTP/1.0 client got a chunked response")
        check(r.body == pattern_bytes(100000), "HTTP/1.0 client got a wrong body (%d bytes)" % len(r.body))
        check(c.wait_closed(5), "connection of an HTTP/1.0 client without keep-alive not closed")


def test_upstream_connection_reused(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[], extra="workers = 2;\n")
    ports = []
    with d.conn() as c:
        for _ in range(5):
            c.send(http_request("GET", "/echo"))
            ports.append(echo_of(c.read_response())["remote_port"])
    check(len(set(ports)) == 1, "5 sequential requests used upstream ports %s, expected one reused" % ports)
    more = [echo_of(d.get("/echo"))["remote_port"] for _ in range(8)]
    check(len(set(ports + more)) <= 2,
          "13 sequential requests over 2 workers used %d upstream connections: %s"
          % (len(set(ports + more)), ports + more))


def test_upstream_keepalive_zero_disables_reuse(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[], upstream={"keepalive": 0})
    ports = []
    with d.conn() as c:
        for _ in range(4):
            c.send(http_request("GET", "/echo"))
            ports.append(echo_of(c.read_response())["remote_port"])
    check(len(set(ports)) == 4, "upstream.keepalive = 0 but upstream ports were reused: %s" % ports)


def test_pipelined_requests_answered_in_order(env):
    b1 = env.backend("blue1", "blue")
    b2 = env.backend("blue2", "blue")
    d = env.cutoverd(blue=[b1, b2], green=[])
    with d.conn() as c:
        c.send(http_request("GET", "/delay?ms=300") + http_request("GET", "/status?code=201")
               + http_request("GET", "/status?code=202"))
        got = [c.read_response().status for _ in range(3)]
    check(got == [200, 201, 202], "pipelined answers came as %s, expected [200, 201, 202]" % got)


def test_head_204_304_have_no_body(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    with d.conn() as c:
        c.send(http_request("HEAD", "/"))
        r = c.read_response(method="HEAD")
        check(r.status == 200, "HEAD got %s" % r.status)
        for code in (204, 304):
            c.send(http_request("GET", "/status?code=%d" % code))
            r = c.read_response()
            check(r.status == code, "expected %d, got %s" % (code, r.status))
            check(r.header("Transfer-Encoding") is None, "%d answer carries Transfer-Encoding" % code)
        c.send(http_request("GET", "/"))
        r = c.read_response()
        check(r.status == 200 and r.body == b"blue1 blue\n",
              "after HEAD/204/304 the next answer was %s %r: a body leaked" % (r.status, r.body[:40]))


def test_interim_1xx_then_final_answer(env):
    def handler(conn, rec, server):
        while True:
            req = conn.read_request()
            if req is None:
                return
            rec.requests.append(req)
            conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                      b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
    up = env.raw_backend(handler)
    d = env.cutoverd(blue=[up], green=[])
    with d.conn() as c:
        c.send(http_request("GET", "/"))
        r = c.read_response()
        check(r.status == 200 and r.body == b"final", "after a 103 expected 200 'final', got %s %r" % (r.status, r.body))
        c.send(http_request("GET", "/again"))
        r = c.read_response()
        check(r.status == 200 and r.body == b"final", "second request after a 103 got %s" % r.status)


def test_forwarded_headers_and_hop_by_hop_removed(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    hdrs = [("Connection", "keep-alive, X-Drop-Me"), ("X-Drop-Me", "1"), ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"), ("TE", "trailers"), ("Trailer", "X-T"),
            ("Upgrade", "h2c"), ("X-Keep", "yes"), ("X-Forwarded-For", "192.0.2.7"),
            ("X-Forwarded-Proto", "https")]
    e = echo_of(d.get("/echo", headers=hdrs))
    names = [k.lower() for k, _ in e["headers"]]
    for gone in ("x-drop-me", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"):
        check(gone not in names, "hop-by-hop header %s reached the upstream: %s" % (gone, e["headers"]))
    for v in echo_headers(e, "Connection"):
        check("x-drop-me" not in v.lower(), "upstream Connection header still names X-Drop-Me: %r" % v)
    check(echo_headers(e, "X-Keep") == ["yes"], "end-to-end header X-Keep lost: %s" % e["headers"])
    # 127.0.0.1 is not in trusted_proxies: its X-Forwarded-For is replaced.
    check(echo_headers(e, "X-Forwarded-For") == ["127.0.0.1"],
          "X-Forwarded-For is %s, expected ['127.0.0.1']" % echo_headers(e, "X-Forwarded-For"))
    check(echo_headers(e, "X-Forwarded-Proto") == ["http"],
          "X-Forwarded-Proto is %s, expected ['http']" % echo_headers(e, "X-Forwarded-Proto"))


def test_forwarded_for_added(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    e = echo_of(d.get("/echo"))
    check(echo_headers(e, "X-Forwarded-For") == ["127.0.0.1"],
          "X-Forwarded-For is %s, expected ['127.0.0.1']" % echo_headers(e, "X-Forwarded-For"))
    check(echo_headers(e, "Host") == ["test"], "Host reached the upstream as %s" % echo_headers(e, "Host"))


def test_request_reserialised_canonically(env):
    up = env.raw_backend()
    d = env.cutoverd(blue=[up], green=[])
    with d.conn() as c:
        c.send(b"GET http://example.com/p?q=1 HTTP/1.1\r\nHost: other.example\r\n"
               b"x-lower:   spaced value  \r\nX-Tab:\tv\r\n\r\n")
        r = c.read_response()
    check(r.status == 200, "absolute-form request got %s" % r.status)
    reqs = up.all_requests()
    check(len(reqs) == 1, "upstream got %d requests, expected 1" % len(reqs))
    q = reqs[0]
    check(q.start_line == b"GET /p?q=1 HTTP/1.1", "upstream request line %r, expected origin-form" % q.start_line)
    check(q.header_all("Host") == ["example.com"], "upstream Host %s, expected the target's authority" % q.header_all("Host"))
    lines = q.raw_head.split(b"\r\n")[1:-2]
    for line in lines:
        name, sep, value = line.partition(b": ")
        check(sep and name and b" " not in name and value == value.strip(b" \t") and value,
              "upstream header line not canonical: %r" % line)
    check(b"x-lower: spaced value" in q.raw_head.lower(), "header value not trimmed: %r" % q.raw_head)
