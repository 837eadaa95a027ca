"""Upgrade through cutoverd: a byte tunnel only when the upstream answers 101."""

import socket

from harness import ConnClosed, check, http_request, respond

UPGRADE_HEADERS = [("Connection", "Upgrade"), ("Upgrade", "echo-proto")]


def echo_upgrade_handler(conn, rec, server):
    """Answers an Upgrade request with 101 and then echoes every byte."""
    req = conn.read_request()
    if req is None:
        return
    rec.requests.append(req)
    if not req.has_token("Connection", "upgrade") or req.header("Upgrade") is None:
        respond(conn, 400, b"not an upgrade request")
        return
    conn.send(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo-proto\r\n\r\n")
    if conn.buf:
        conn.send(bytes(conn.buf))
        conn.buf.clear()
    while True:
        try:
            data = conn.sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        rec.add(data)
        conn.send(data)


def refuse_upgrade_handler(conn, rec, server):
    """Answers every request 200 "no upgrade" and stays an HTTP server."""
    while True:
        req = conn.read_request()
        if req is None:
            return
        rec.requests.append(req)
        respond(conn, 200, b"no upgrade")


def test_upgrade_101_becomes_tunnel(env):
    up = env.raw_backend(echo_upgrade_handler)
    d = env.cutoverd(blue=[up], green=[])
    with d.conn() as c:
        c.send(http_request("GET", "/ws", headers=UPGRADE_HEADERS))
        r = c.read_response()
        check(r.status == 101, "Upgrade request answered %s, expected 101" % r.status)
        check((r.header("Upgrade") or "").lower() == "echo-proto", "101 answer lost its Upgrade header: %s" % r.headers)
        reqs = up.all_requests()
        check(len(reqs) == 1 and reqs[0].header("Upgrade") == "echo-proto" and reqs[0].has_token("Connection", "upgrade"),
              "upstream did not get the Upgrade request with Connection: upgrade: %s" % (reqs[0].headers if reqs else None))
        payload = b"\x00\x01\xffnot http at all\r\n\r\nGET / HTTP/1.1\r\n\r\n" * 50
        for i in range(3):
            c.send(payload)
            back = c.read_exact(len(payload))
            check(back == payload, "tunnel round %d echoed different bytes" % i)


def test_upgrade_refused_gives_no_tunnel(env):
    up = env.raw_backend(refuse_upgrade_handler)
    d = env.cutoverd(blue=[up], green=[])
    with d.conn() as c:
        c.send(http_request("GET", "/ws", headers=UPGRADE_HEADERS))
        r = c.read_response()
        check(r.status == 200 and r.body == b"no upgrade", "Upgrade request got %s %r" % (r.status, r.body))
        try:
            c.send(b"TUNNEL-BYTES not a request\r\n\r\n")
            r2 = c.read_response()
            check(r2.status == 400, "bytes after a refused upgrade answered %s, expected 400 (no tunnel)" % r2.status)
        except (ConnClosed, ConnectionResetError, BrokenPipeError, socket.error):
            pass  # closing the connection is also no tunnel
        check(c.wait_closed(5), "connection not closed after the non-HTTP bytes")
    seen = b"".join(bytes(x.data) for x in up.conns)
    check(b"TUNNEL-BYTES" not in seen, "bytes sent after a non-101 answer reached the upstream: a tunnel was opened")
