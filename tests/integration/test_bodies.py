"""Bodies through cutoverd: chunked both ways, Content-Length both ways,
64 MiB with checksums, and 1 GiB up and down with cutoverd's peak RSS."""

import zlib

from harness import (PatternChecker, binary_has_asan, check, chunked_encode, cutoverd_path,
                     http_request, pattern_bytes, pattern_crc32, pattern_pieces, respond)

MIB = 1 << 20


def upload_answer(resp):
    check(resp.status == 200, "/upload answered %s" % resp.status)
    parts = resp.body.split()
    check(len(parts) == 4 and parts[0] == b"length", "unexpected /upload answer %r" % resp.body)
    return int(parts[1]), int(parts[3], 16)


def send_pattern_body(c, n, chunked):
    if chunked:
        for p in pattern_pieces(n, piece=256 * 1024):
            c.send(b"%x\r\n" % len(p) + bytes(p) + b"\r\n")
        c.send(b"0\r\n\r\n")
    else:
        for p in pattern_pieces(n):
            c.send(p)


def upload(d, n, chunked):
    with d.conn(timeout=60) as c:
        if chunked:
            c.send(http_request("POST", "/upload", headers=[("Transfer-Encoding", "chunked")]))
        else:
            c.send(http_request("POST", "/upload", headers=[("Content-Length", str(n))]))
        send_pattern_body(c, n, chunked)
        return upload_answer(c.read_response())


def download(d, n, cl):
    checker = PatternChecker()
    with d.conn(timeout=60) as c:
        c.send(http_request("GET", "/bytes?n=%d%s" % (n, "&cl=1" if cl else "")))
        r = c.read_response(sink=checker)
    check(r.status == 200, "/bytes answered %s" % r.status)
    check(checker.offset == n, "downloaded %d bytes, expected %d" % (checker.offset, n))
    check(checker.mismatch is None, "downloaded body differs from the pattern at byte %s" % checker.mismatch)
    return r


def test_chunked_request_reaches_backend_intact(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    body = pattern_bytes(300000)
    raw = bytearray()
    sizes = [1, 2, 4095, 4096, 70000, 1]
    pos = 0
    while pos < len(body):
        for s in sizes:
            c = body[pos:pos + s]
            if not c:
                break
            raw += b"%X;ext=\"v\"\r\n" % len(c) + c + b"\r\n"
            pos += len(c)
    raw += b"0\r\nX-Trailer: t\r\n\r\n"
    with d.conn() as c:
        c.send(http_request("POST", "/upload", headers=[("Transfer-Encoding", "chunked")]) + bytes(raw))
        n, crc = upload_answer(c.read_response())
    check(n == len(body) and crc == zlib.crc32(body),
          "backend got %d bytes crc %08x, sent %d crc %08x" % (n, crc, len(body), zlib.crc32(body)))


def test_chunked_request_upstream_framing_canonical(env):
    up = env.raw_backend()
    d = env.cutoverd(blue=[up], green=[])
    body = b"hello, chunked world" * 100
    raw = b"".join(b"%x;name=val\r\n" % len(body[i:i + 7]) + body[i:i + 7] + b"\r\n" for i in range(0, len(body), 7))
    raw += b"0\r\nX-Trailer: secret\r\n\r\n"
    with d.conn() as c:
        c.send(http_request("POST", "/up", headers=[("Transfer-Encoding", "chunked")]) + raw)
        r = c.read_response()
    check(r.status == 200, "chunked POST answered %s" % r.status)
    reqs = up.all_requests()
    check(len(reqs) == 1, "upstream got %d requests" % len(reqs))
    q = reqs[0]
    check(q.framing in ("chunked", "length"), "upstream request framing %s" % q.framing)
    check(q.body == body, "upstream got a different body (%d bytes)" % len(q.body))
    data = bytes(up.conns[0].data)
    check(b"name=val" not in data, "chunk extensions reached the upstream")
    check(b"X-Trailer" not in data, "trailer fields reached the upstream")


def test_chunked_response_to_http11_client(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    r = download(d, 300000, cl=False)
    check(r.framing in ("chunked", "length"), "response framing %s" % r.framing)


def test_response_from_raw_chunked_upstream(env):
    body = pattern_bytes(50000)

    def handler(conn, rec, server):
        while True:
            req = conn.read_request()
            if req is None:
                return
            rec.requests.append(req)
            conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      + b"".join(b"%x;x=y\r\n" % len(body[i:i + 999]) + body[i:i + 999] + b"\r\n"
                                 for i in range(0, len(body), 999))
                      + b"0\r\nX-T: 1\r\n\r\n")
    up = env.raw_backend(handler)
    d = env.cutoverd(blue=[up], green=[])
    with d.conn() as c:
        for i in range(2):
            c.send(http_request("GET", "/c%d" % i))
            r = c.read_response()
            check(r.status == 200 and r.body == body, "chunked upstream answer %d arrived as %s, %d bytes"
                  % (i, r.status, len(r.body)))


def test_content_length_response(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    download(d, 300000, cl=True)


def test_upload_64mib_content_length(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    n, crc = upload(d, 64 * MIB, chunked=False)
    check((n, crc) == (64 * MIB, pattern_crc32(64 * MIB)), "backend got %d bytes crc %08x" % (n, crc))


def test_upload_64mib_chunked(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    n, crc = upload(d, 64 * MIB, chunked=True)
    check((n, crc) == (64 * MIB, pattern_crc32(64 * MIB)), "backend got %d bytes crc %08x" % (n, crc))


def test_download_64mib_content_length(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    download(d, 64 * MIB, cl=True)


def test_download_64mib_chunked(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    download(d, 64 * MIB, cl=False)


def pattern_sink_handler(conn, rec, server):
    """Consumes request bodies of any size, checking them against the
    pattern without keeping them; answers "length N mismatch M"."""
    while True:
        checker = PatternChecker()
        req = conn.read_request(sink=checker)
        if req is None:
            return
        rec.requests.append(req)
        respond(conn, 200, b"length %d mismatch %s" % (checker.offset, str(checker.mismatch).encode()))


def test_1gib_up_and_down_peak_rss(env):
    """1 GiB download (chunked, from the C backend) and 1 GiB upload
    (Content-Length, to a streaming Python sink) through cutoverd; its peak
    RSS (VmHWM) must stay under 64 MiB. In a sanitizer build ASan's
    quarantine (freed memory held back, 256 MiB by default) is cut to 16 MiB
    for this daemon, so the same bound holds there."""
    gib = 1 << 30
    b1 = env.backend("blue1", "blue")
    sink = env.raw_backend(pattern_sink_handler)
    asan = binary_has_asan(cutoverd_path())
    qopt = "quarantine_size_mb=16" if asan else ""
    d = env.cutoverd(blue=[b1], green=[], extra="workers = 1;\n", asan_options=qopt)
    d2 = env.cutoverd(blue=[sink], green=[], extra="workers = 1;\n", name="up.conf", asan_options=qopt)
    download(d, gib, cl=False)
    with d2.conn(timeout=120) as c:
        c.send(http_request("POST", "/upload", headers=[("Content-Length", str(gib))]))
        send_pattern_body(c, gib, chunked=False)
        r = c.read_response()
    check(r.status == 200 and r.body == b"length %d mismatch None" % gib, "1 GiB upload: %s %r" % (r.status, r.body))
    hwm_down = d.vm_hwm_kib()
    hwm_up = d2.vm_hwm_kib()
    limit = 64 * 1024
    print("# cutoverd VmHWM after 1 GiB download: %d KiB; after 1 GiB upload: %d KiB (limit %d KiB)"
          % (hwm_down, hwm_up, limit), flush=True)
    check(hwm_down < limit, "cutoverd peak RSS %d KiB after a 1 GiB download exceeds %d KiB" % (hwm_down, limit))
    check(hwm_up < limit, "cutoverd peak RSS %d KiB after a 1 GiB upload exceeds %d KiB" % (hwm_up, limit))

