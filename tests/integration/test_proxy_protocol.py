"""PROXY protocol on listeners (listen[].proxy_protocol, issue 14) and
trusted proxies (trusted_proxies) through the real binaries: v1 and v2
headers crafted here (TCP4, TCP6, LOCAL, UNKNOWN), HAProxy in TCP mode with
send-proxy-v2 as a real balancer, a TLS listener behind a header, bad
headers and a missing one (closed, nothing reaches the upstream), and
X-Forwarded-For from trusted and untrusted peers, with preview.from and the
access log judged on the client address so derived.
"""

import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time

import harness
from harness import Conn, check, fail, free_port, http_request, wait_for
from ops import certs, client_ctx, pair, tls_listen_entry
from switching import EXTRA_DEFAULT, Ctl, sock_path
from safety import preview_conf

V2SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, dst="127.0.0.1", sport=40000, dport=80, proto=None):
    proto = proto or ("TCP6" if ":" in src else "TCP4")
    return ("PROXY %s %s %s %d %d\r\n" % (proto, src, dst, sport, dport)).encode()


def v2(src=None, dst=None, sport=40000, dport=80, local=False, fam=None, tlvs=b""):
    if local:
        body = b""
        famb = 0x00
    elif ":" in src:
        body = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst or "::1")
        famb = 0x21
    else:
        body = socket.inet_aton(src) + socket.inet_aton(dst or "127.0.0.1")
        famb = 0x11
    if body:
        body += struct.pack(">HH", sport, dport)
    if fam is not None:
        famb = fam
    body += tlvs
    return V2SIG + bytes([0x20 if local else 0x21, famb]) + struct.pack(">H", len(body)) + body


def pp_config(env, blue, green=(), port=None, tls_pairs=None, extra="", **kw):
    """A config whose listener wants a PROXY header (TLS when tls_pairs);
    returns (path, port)."""
    port = port or free_port()
    addrs = [str(getattr(s, "addr", s)) for s in blue]
    gaddrs = [str(getattr(s, "addr", s)) for s in green]
    text = harness.config_text(env, port, addrs, gaddrs, extra=extra, **kw)
    plain = 'listen = ( { address = "127.0.0.1:%d"; } );\n' % port
    check(plain in text, "harness.config_text no longer writes the listen line this test replaces")
    if tls_pairs:
        entry = tls_listen_entry(port, tls_pairs)
        entry = entry[:-2] + " proxy_protocol = true; }"
    else:
        entry = '{ address = "127.0.0.1:%d"; proxy_protocol = true; }' % port
    text = text.replace(plain, "listen = ( %s );\n" % entry)
    path = os.path.join(env.tmp, "cutover.conf")
    with open(path, "w") as f:
        f.write(text)
    return path, port


def start_pp(env, blue, green=(), **kw):
    path, port = pp_config(env, blue, green, **kw)
    d = harness.Daemon(env, path, port)
    env.daemons.append(d)
    return d


def echo(c, headers=()):
    c.send(http_request("GET", "/echo", headers=headers))
    r = c.read_response()
    check(r.status == 200, "/echo answered %s, expected 200" % r.status)
    return json.loads(r.body), r


def xff_of(e):
    return [v for k, v in e["headers"] if k.lower() == "x-forwarded-for"]


def access_lines(path, n):
    wait_for(lambda: os.path.exists(path) and len(open(path).read().splitlines()) >= n, 10,
             "%d access log lines" % n)
    return open(path).read().splitlines()


def expect_closed_silently(c, what):
    """The connection ends without one byte of answer."""
    try:
        data = c.read_until_close()
    except harness.TestFailure:
        fail("%s: the connection was not closed" % what)
    check(data == b"", "%s: cutoverd answered %r, expected a silent close" % (what, data[:80]))


# --------------------------------------------------------------------------
# Crafted headers


def test_v1_tcp4_tcp6_unknown(env):
    b1 = env.backend("blue1", "blue")
    log = os.path.join(env.tmp, "access.log")
    d = start_pp(env, [b1], extra='access_log = "%s";\n' % log)
    with d.conn() as c:
        c.send(v1("192.0.2.7"))
        e, _ = echo(c)
        check(xff_of(e) == ["192.0.2.7"], "v1 TCP4: X-Forwarded-For %s, expected ['192.0.2.7']" % xff_of(e))
        e, _ = echo(c)  # keep-alive: the same client for the next request
        check(xff_of(e) == ["192.0.2.7"], "v1 TCP4, 2nd request: X-Forwarded-For %s" % xff_of(e))
    with d.conn() as c:
        c.send(v1("2001:db8::7", "::1"))
        e, _ = echo(c)
        check(xff_of(e) == ["2001:db8::7"], "v1 TCP6: X-Forwarded-For %s, expected ['2001:db8::7']" % xff_of(e))
    with d.conn() as c:
        c.send(b"PROXY UNKNOWN\r\n")
        e, _ = echo(c)
        check(xff_of(e) == ["127.0.0.1"], "v1 UNKNOWN: X-Forwarded-For %s, expected the TCP peer" % xff_of(e))
    # The header may come in pieces, and with the request in the same segment.
    with d.conn() as c:
        h = v1("198.51.100.3")
        c.send(h[:3])
        time.sleep(0.05)
        c.send(h[3:20])
        time.sleep(0.05)
        c.send(h[20:] + http_request("GET", "/echo"))
        r = c.read_response()
        e = json.loads(r.body)
        check(xff_of(e) == ["198.51.100.3"], "v1 in pieces: X-Forwarded-For %s" % xff_of(e))
    lines = access_lines(log, 5)
    clients = [ln.split()[1] for ln in lines]
    check(clients == ["192.0.2.7", "192.0.2.7", "2001:db8::7", "127.0.0.1", "198.51.100.3"],
          "access log clients %s" % clients)


def test_v2_tcp4_tcp6_local_tlvs(env):
    b1 = env.backend("blue1", "blue")
    d = start_pp(env, [b1])
    tlvs = b"\x01\x00\x02h2" + b"\x04\x00\x03\x00\x00\x00"  # ALPN, NOOP: skipped
    for hdr, want, what in ((v2("192.0.2.9"), "192.0.2.9", "TCP4"),
                            (v2("192.0.2.10", tlvs=tlvs), "192.0.2.10", "TCP4 with TLVs"),
                            (v2("2001:db8::9", "::1"), "2001:db8::9", "TCP6"),
                            (v2(local=True), "127.0.0.1", "LOCAL")):
        with d.conn() as c:
            c.send(hdr + http_request("GET", "/echo"))
            r = c.read_response()
            check(r.status == 200, "v2 %s: /echo answered %s" % (what, r.status))
            e = json.loads(r.body)
            check(xff_of(e) == [want], "v2 %s: X-Forwarded-For %s, expected [%r]" % (what, xff_of(e), want))


BAD_HEADERS = [
    ("wrong v1 signature", b"PROXZ TCP4 192.0.2.7 127.0.0.1 1 2\r\n"),
    ("v1 too long", b"PROXY UNKNOWN " + b"x" * 120 + b"\r\n"),
    ("v1 UDP4", b"PROXY UDP4 192.0.2.7 127.0.0.1 1 2\r\n"),
    ("v1 bad address", b"PROXY TCP4 192.0.2 127.0.0.1 1 2\r\n"),
    ("wrong v2 signature", b"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x0c" + b"\x00" * 12),
    ("v2 UDP4", None),
    ("v2 UNIX", None),
    ("v2 longer than 4 KiB", V2SIG + b"\x21\x11\x10\x00" + b"\x00" * 4096),
    ("plain HTTP without a header", b""),
    ("garbage", b"\x00\x01\x02garbage\r\n\r\n"),
]


def test_bad_headers_closed_nothing_forwarded(env):
    up = env.raw_backend()
    d = start_pp(env, [up])
    for name, hdr in BAD_HEADERS:
        if name == "v2 UDP4":
            hdr = v2("192.0.2.7", fam=0x12)
        elif name == "v2 UNIX":
            hdr = V2SIG + b"\x21\x31\x00\xd8" + b"\x00" * 216
        with d.conn() as c:
            c.send(hdr + http_request("GET", "/bad-" + name.replace(" ", "-")))
            expect_closed_silently(c, name)
    # A good header afterwards goes through: the upstream is reachable.
    with d.conn() as c:
        c.send(v1("192.0.2.8") + http_request("GET", "/good"))
        r = c.read_response()
        check(r.status == 200, "a good header after the bad ones: %s" % r.status)
    wait_for(lambda: any(q.target == "/good" for q in up.all_requests()), 5, "the good request at the upstream")
    bad = [q.target for q in up.all_requests() if q.target.startswith("/bad")]
    check(not bad, "requests behind bad PROXY headers reached the upstream: %s" % bad)


def test_no_header_within_client_header_closed(env):
    up = env.raw_backend()
    d = start_pp(env, [up], timeouts={"client_header": "1s"})
    t0 = time.monotonic()
    silent = d.conn(timeout=15)
    partial = d.conn(timeout=15)
    partial.send(b"PROXY TCP4 192.0.2.7 ")
    for c, what in ((silent, "no byte at all"), (partial, "half a header")):
        expect_closed_silently(c, what)
        c.close()
    took = time.monotonic() - t0
    check(took >= 0.9, "closed after %.2fs, before timeouts.client_header (1s)" % took)
    check(not up.all_requests(), "something reached the upstream: %s" % [q.target for q in up.all_requests()])


# --------------------------------------------------------------------------
# TLS behind a header


def test_tls_listener_with_proxy_header(env):
    b1 = env.backend("blue1", "blue")
    cd = certs(env)
    d = start_pp(env, [b1], tls_pairs=[pair(cd, "b"), pair(cd, "a")])
    ctx = client_ctx(os.path.join(cd, "ca.pem"))
    for hdr, want in ((v2("203.0.113.5"), "203.0.113.5"), (v1("2001:db8::5", "::1"), "2001:db8::5")):
        raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        raw.sendall(hdr)
        s = ctx.wrap_socket(raw, server_hostname="a.test")
        c = Conn(sock=s, timeout=10)
        try:
            e, _ = echo(c)
        finally:
            c.close()
        check(xff_of(e) == [want], "TLS: X-Forwarded-For %s, expected [%r]" % (xff_of(e), want))
        xfp = [v for k, v in e["headers"] if k.lower() == "x-forwarded-proto"]
        check(xfp == ["https"], "TLS: X-Forwarded-Proto %s" % xfp)
    # A TLS client that skips the header is closed before any handshake.
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    try:
        ctx.wrap_socket(raw, server_hostname="a.test")
        fail("a TLS handshake without a PROXY header succeeded")
    except (ssl.SSLError, OSError):
        pass
    finally:
        raw.close()


# --------------------------------------------------------------------------
# HAProxy in TCP mode as a real balancer


def test_haproxy_send_proxy_v2(env):
    haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)
    check(haproxy is not None, "haproxy is not installed (apt-get install haproxy; scripts/setup.sh lists it)")
    b1 = env.backend("blue1", "blue")
    d = start_pp(env, [b1])
    hport = free_port()
    cfg = os.path.join(env.tmp, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write("global\n  maxconn 100\n"
                "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
                "frontend fe\n  bind 127.0.0.1:%d\n  default_backend be\n"
                "backend be\n  server cutover 127.0.0.1:%d send-proxy-v2\n" % (hport, d.port))
    log = open(os.path.join(env.tmp, "haproxy.log"), "wb")
    proc = subprocess.Popen([haproxy, "-f", cfg, "-db"], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: proc.poll() is not None or harness.port_accepts(hport), 15, "haproxy accepting")
        check(proc.poll() is None, "haproxy exited %s" % proc.returncode)
        # The client comes from 127.0.0.2: haproxy (127.0.0.1) must pass it on.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", hport))
        c = Conn(sock=s, timeout=10)
        try:
            for _ in range(2):
                e, _ = echo(c)
                check(xff_of(e) == ["127.0.0.2"],
                      "through haproxy send-proxy-v2: X-Forwarded-For %s, expected ['127.0.0.2']" % xff_of(e))
        finally:
            c.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# --------------------------------------------------------------------------
# trusted_proxies


def test_xff_replaced_from_untrusted_peer(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[], extra='trusted_proxies = ( "10.0.0.0/8" );\n')
    with d.conn() as c:
        e, _ = echo(c, [("X-Forwarded-For", "192.0.2.7"), ("X-Forwarded-For", "10.1.1.1")])
    check(xff_of(e) == ["127.0.0.1"], "untrusted peer: X-Forwarded-For %s, expected ['127.0.0.1']" % xff_of(e))


def test_xff_kept_from_trusted_peer_access_log(env):
    b1 = env.backend("blue1", "blue")
    log = os.path.join(env.tmp, "access.log")
    d = env.cutoverd(blue=[b1], green=[],
                     extra='trusted_proxies = ( "127.0.0.1/32", "10.0.0.0/8" );\naccess_log = "%s";\n' % log)
    with d.conn() as c:
        e, _ = echo(c, [("X-Forwarded-For", "203.0.113.9, 10.1.1.1"), ("X-Forwarded-For", "10.2.2.2")])
        check(xff_of(e) == ["203.0.113.9, 10.1.1.1, 10.2.2.2, 127.0.0.1"],
              "trusted peer: X-Forwarded-For %s" % xff_of(e))
        e, _ = echo(c, [("X-Forwarded-For", "10.3.3.3")])  # every hop trusted: the leftmost
        e, _ = echo(c, [("X-Forwarded-For", "198.51.100.1, junk, 10.4.4.4")])  # a bad hop ends the walk
        e, _ = echo(c)  # no field: the peer
    clients = [ln.split()[1] for ln in access_lines(log, 4)]
    check(clients == ["203.0.113.9", "10.3.3.3", "10.4.4.4", "127.0.0.1"], "access log clients %s" % clients)


def test_trusted_peer_named_by_proxy_header(env):
    b1 = env.backend("blue1", "blue")
    log = os.path.join(env.tmp, "access.log")
    d = start_pp(env, [b1], extra='trusted_proxies = ( "10.0.0.0/8" );\naccess_log = "%s";\n' % log)
    with d.conn() as c:  # the TCP peer 127.0.0.1 is not trusted, but the header's 10.2.2.2 is
        c.send(v2("10.2.2.2"))
        e, _ = echo(c, [("X-Forwarded-For", "198.51.100.4")])
    check(xff_of(e) == ["198.51.100.4, 10.2.2.2"], "PROXY-named trusted peer: X-Forwarded-For %s" % xff_of(e))
    with d.conn() as c:
        c.send(v1("192.0.2.50"))
        e, _ = echo(c, [("X-Forwarded-For", "10.9.9.9")])
    check(xff_of(e) == ["192.0.2.50"], "PROXY-named untrusted peer: X-Forwarded-For %s" % xff_of(e))
    clients = [ln.split()[1] for ln in access_lines(log, 2)]
    check(clients == ["198.51.100.4", "192.0.2.50"], "access log clients %s" % clients)


def test_preview_from_judged_on_derived_address(env):
    blue = env.backend("blue1", "blue")
    green = env.backend("green1", "green")
    extra = EXTRA_DEFAULT + preview_conf(allowed=("203.0.113.0/24",)) + 'trusted_proxies = ( "10.0.0.0/8" );\n'
    d = start_pp(env, [blue], [green], extra=extra)
    Ctl(sock_path(env)).wait_confirmed("green")
    pick = [("X-Cutover-Color", "green")]
    cases = ((v1("203.0.113.7"), [], "green", "PROXY client in preview.from"),
             (v1("192.0.2.7"), [], "blue", "PROXY client outside preview.from"),
             (v1("10.0.0.5"), [("X-Forwarded-For", "203.0.113.8")], "green", "trusted balancer, client allowed"),
             (v1("10.0.0.5"), [("X-Forwarded-For", "192.0.2.8")], "blue", "trusted balancer, client refused"),
             (v1("192.0.2.9"), [("X-Forwarded-For", "203.0.113.8")], "blue", "untrusted peer claims an allowed XFF"),
             (b"PROXY UNKNOWN\r\n", [], "blue", "UNKNOWN keeps 127.0.0.1, outside preview.from"))
    for hdr, xff, want, what in cases:
        with d.conn() as c:
            c.send(hdr)
            _, r = echo(c, pick + xff)
        check(r.header("X-Color") == want, "%s: routed to %s, expected %s" % (what, r.header("X-Color"), want))


def test_reload_turns_proxy_protocol_on_and_off(env):
    b1 = env.backend("blue1", "blue")
    d = env.cutoverd(blue=[b1], green=[])
    with d.conn() as c:
        e, _ = echo(c)
    check(xff_of(e) == ["127.0.0.1"], "before the reload: X-Forwarded-For %s" % xff_of(e))
    idle = d.conn()  # accepted before the reload: keeps plain HTTP
    pp_config(env, [b1], port=d.port)

    def header_honoured():
        with d.conn() as c:
            c.send(v1("192.0.2.44") + http_request("GET", "/echo"))
            try:
                r = c.read_response()
            except (harness.ConnClosed, harness.TestFailure):
                return False
            return r.status == 200 and xff_of(json.loads(r.body)) == ["192.0.2.44"]

    d.proc.send_signal(signal.SIGHUP)
    wait_for(header_honoured, 15, "the reload to turn proxy_protocol on")
    with d.conn() as c:
        c.send(http_request("GET", "/echo"))
        expect_closed_silently(c, "plain HTTP after proxy_protocol was turned on")
    e, _ = echo(idle)
    check(xff_of(e) == ["127.0.0.1"], "a connection accepted before the reload: X-Forwarded-For %s" % xff_of(e))
    idle.close()
    env.write_config([b1], [], port=d.port)
    d.proc.send_signal(signal.SIGHUP)

    def plain_again():
        with d.conn() as c:
            c.send(http_request("GET", "/echo"))
            try:
                return c.read_response().status == 200
            except (harness.ConnClosed, harness.TestFailure):
                return False

    wait_for(plain_again, 15, "the reload to turn proxy_protocol off")
