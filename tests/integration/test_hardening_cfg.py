"""Hardening (issue 9), configuration and edges: upstream TLS checks the
server's name (item 6), `cutoverd -t` refuses values that would break at run
time (item 9), and the access log escapes client input (item 11)."""

import os
import re

import harness
from harness import check, cutoverd_path, wait_for
from ops import TLSBackend, certs, pair, start_pool_tls, wait_log
from switching import AUTO_ROLLBACK_OFF, EXTRA_DEFAULT, SWITCH_DEFAULT, start


# --------------------------------------------------------------------------
# Access log escaping (item 11)


def _read_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


# time client "request" status color server duration bytes; the quoted field
# may hold no raw '"' (escaped ones are \x22).
ACCESS_RX = re.compile(rb'^\S+ 127\.0\.0\.1 "([^"]*)" (\d{3}) (blue|green) \S+ \d+\.\d{3} \d+$')


def test_access_log_escapes_quote_and_backslash(env):
    b1 = env.backend("b1", "blue")
    log = os.path.join(env.tmp, "access.log")
    d, ctl = start(env, [b1], [env.backend("g1", "green")], extra=EXTRA_DEFAULT + 'access_log = "%s";\n' % log)
    # The request validator takes '"' and '\' in a target (VCHAR); a raw
    # byte above 0x7e it refuses with 400 before anything is logged of it.
    target = b'/q"x\\y" 200 blue 1.2.3.4:5 0.1 0 "injected'
    with d.conn() as c:
        c.send(b'GET ' + target.replace(b" ", b"%20") + b' HTTP/1.1\r\nHost: test\r\n\r\n')
        r = c.read_response()
    check(r.status == 200, "GET with '\"' and '\\' in the target answered %s" % r.status)
    with d.conn() as c:
        c.send(b'GET /hi\xe9"gh HTTP/1.1\r\nHost: test\r\n\r\n')
        r = c.read_response()
    check(r.status == 400, "GET with a raw 0xE9 in the target answered %s, expected 400" % r.status)
    check(d.get("/marker").status == 200, "GET /marker failed")
    lines = wait_for(lambda: (lambda ls: ls if any(b"/marker" in l for l in ls) else None)(_read_lines(log)), 10,
                     "the line of GET /marker in the access log")
    m = ACCESS_RX.match(lines[0])
    check(m is not None, "access log line with a quoted target is not one well-formed record: %r" % lines[0])
    want = b'GET /q\\x22x\\x5Cy\\x22%20200%20blue%201.2.3.4:5%200.1%200%20\\x22injected HTTP/1.1'
    check(m.group(1) == want, "request logged as %r, expected %r" % (m.group(1), want))
    check(int(m.group(2)) == 200, "status %s logged, expected 200" % m.group(2))
    check(all(b >= 0x20 and b < 0x7f for l in lines for b in l),
          "the access log holds a byte outside printable ASCII: %r" % lines)


# --------------------------------------------------------------------------
# cutoverd -t refuses what would break at run time (item 9)

BASE_CONF = ('listen = ( { address = "127.0.0.1:18080"; } );\n'
             'pools: { blue: { servers = ( "127.0.0.1:9001" ); }; green: { servers = ( ); }; };\n')

# (the line written as line 3, words its FILE:3: error must contain)
RUNTIME_BREAKERS = [
    # Signed overflow in the switch (UBSan abort mid-switch).
    ('switch: { safety_window = "2562047788015h"; };', ("switch.safety_window", "at most 720h")),
    # UINT64_MAX ms wrapped to no window at all.
    ('switch: { safety_window = "18446744073709551615ms"; };', ("switch.safety_window", "at most 720h")),
    ('switch: { drain_timeout = "100000h"; };', ("switch.drain_timeout", "at most 24h")),
    ('timeouts: { response = "18446744073709551615ms"; };', ("timeouts.response", "at most 24h")),
    ('health: { interval = "2h"; };', ("health.interval", "at most 1h")),
    ('auto_rollback: { window = "9999999h"; };', ("auto_rollback.window", "at most 24h")),
    ('hooks: { timeout = "25h"; };', ("hooks.timeout", "at most 24h")),
    # Above http-parser's 80 KiB: valid 90 KB heads would get 400.
    ('limits: { header_size = 92160; };', ("limits.header_size", "1024 to 81920")),
    # libconfig silently reads these as 1 and -2147483648.
    ('limits: { max_connections = 4294967297; };', ("4294967297", "out of range")),
    ('upstream: { keepalive = 2147483648; };', ("2147483648", "out of range")),
    # Read whole (L suffix), then refused by the range.
    ('limits: { max_connections = 4294967297L; };', ("limits.max_connections", "1 to 1000000")),
    ('auto_rollback: { min_requests = 9999999999L; };', ("auto_rollback.min_requests", "1 to 1000000000")),
]


def _run_check(env, path):
    r = env.run([cutoverd_path(), "-t", "-c", path], timeout=20)
    lines = [l for l in (r.stderr + r.stdout).decode("utf-8", "replace").splitlines() if l.strip()]
    return r.returncode, lines


def test_check_refuses_values_that_break_at_run_time(env):
    for i, (text, words) in enumerate(RUNTIME_BREAKERS):
        path = os.path.join(env.tmp, "breaker%d.conf" % i)
        with open(path, "w") as f:
            f.write(BASE_CONF + text + "\n")
        rc, lines = _run_check(env, path)
        check(rc == 1, "cutoverd -t accepted %r (exit %d): %s" % (text, rc, lines))
        check(len(lines) == 1, "cutoverd -t on %r printed %d lines, expected one error: %s" % (text, len(lines), lines))
        check(lines[0].startswith(path + ":3: "), "the error for %r is not at %s:3: %r" % (text, path, lines[0]))
        check(all(w in lines[0] for w in words), "the error for %r does not mention %s: %r" % (text, words, lines[0]))


def test_check_accepts_every_maximum(env):
    path = os.path.join(env.tmp, "maxima.conf")
    with open(path, "w") as f:
        f.write(BASE_CONF +
                '# 4294967297 in a comment is no integer\n'
                'switch: { safety_window = "720h"; drain_timeout = "24h"; min_healthy = 100000; };\n'
                'health: { interval = "1h"; timeout = "59m"; rise = 1000; fall = 1000; };\n'
                'limits: { header_size = 81920; header_count = 10000; max_connections = 1000000; };\n'
                'timeouts: { client_header = "24h"; client_idle = "24h"; connect = "24h"; response = "24h";'
                ' upstream_idle = "24h"; handshake = "24h"; };\n'
                'upstream: { keepalive = 100000; };\nworkers = 256;\n'
                'auto_rollback: { window = "24h"; min_requests = 1000000000; latency_factor = 1000; };\n')
    rc, lines = _run_check(env, path)
    check(rc == 0, "cutoverd -t refused a config at every maximum: %s" % lines)


def test_header_size_maximum_serves_an_80k_head(env):
    """The documented maximum is what http-parser really takes: a head of
    exactly limits.header_size = 81920 bytes is proxied, one byte more is 431."""
    b1 = env.backend("b1", "blue")
    d = env.cutoverd(blue=[b1], green=[], limits={"header_size": 81920})

    def head_of(size):
        start = b"GET /big HTTP/1.1\r\nHost: test\r\nX-Pad: "
        pad = size - len(start) - 4
        return start + b"a" * pad + b"\r\n\r\n"

    for size, want in ((81920, 200), (81921, 431)):
        req = head_of(size)
        check(len(req) == size, "built a %d-byte head for %d" % (len(req), size))
        with d.conn(timeout=30) as c:
            c.send(req)
            r = c.read_response()
        check(r.status == want, "a %d-byte request head with header_size = 81920 answered %s, expected %d"
              % (size, r.status, want))


# --------------------------------------------------------------------------
# Upstream TLS checks the server's name (item 6)

# One health check at start, then none for an hour: what happens to the
# server after that is up to live traffic (passive health).
HEALTH_ONCE = ('health: { path = "/healthz"; interval = "1h"; timeout = "2s"; '
               'rise = 1; fall = 2; expect_status = 200; };\n')


def _tls_upstream(env, leaf, tls, health=HEALTH_ONCE, expect_errors=()):
    cd = certs(env)
    up = TLSBackend(env, *pair(cd, leaf))
    d, ctl = start_pool_tls(env, [up.addr], ["127.0.0.1:9"], tls % {"ca": os.path.join(cd, "ca.pem")},
                            extra=health + SWITCH_DEFAULT + AUTO_ROLLBACK_OFF, expect_errors=expect_errors)
    return d, ctl, up


def test_upstream_tls_without_sni_checks_the_server_ip(env):
    """verify and no sni: a certificate for the server's IP (up.pem has IP
    127.0.0.1) is accepted, and no SNI is sent for an IP."""
    d, ctl, up = _tls_upstream(env, "up", 'tls = { verify = true; ca = "%(ca)s"; };')
    wait_for(lambda: up.health_checks >= 1, 10, "a health check on the TLS upstream")
    for i in range(3):
        r = d.get("/ip/%d" % i)
        check(r.status == 200 and r.body == b"tls1 blue\n", "request %d answered %s %r" % (i, r.status, r.body))
    check(up.handshake_errors == [], "handshakes failed: %s" % up.handshake_errors[:3])
    check(up.requests == ["/ip/0", "/ip/1", "/ip/2"], "the upstream saw %r" % up.requests)
    check(all(n is None for n in up.snis), "SNI sent to an IP address: %r" % up.snis)


def test_upstream_tls_certificate_for_another_name_refused(env):
    """verify, no sni, a certificate from the configured CA but for
    evil.example: every connection fails (502), the log names the server,
    the expected name and the certificate, health says why, and live
    failures take the server down (503 after that)."""
    d, ctl, up = _tls_upstream(env, "evil", 'tls = { verify = true; ca = "%(ca)s"; };')
    wait_for(lambda: len(up.handshake_errors) >= 1, 10, "the start-up health check's failed handshake")
    m = wait_log(d, r"upstream (\S+): certificate rejected: IP address mismatch \(expected name 127\.0\.0\.1; "
                    r"certificate /CN=evil\.example")
    check(m.group(1) == up.addr, "the rejection log line names %s, not the server %s" % (m.group(1), up.addr))
    h = wait_for(lambda: (lambda h: h if h.get("last", "").startswith("certificate rejected") else None)(
        ctl.health("blue")[0]), 10, "health to report the rejected certificate")
    check("IP address mismatch" in h["last"] and "127.0.0.1" in h["last"],
          "health reports %r for a certificate with the wrong name" % h["last"])
    statuses = []
    for i in range(6):
        statuses.append(d.get("/evil/%d" % i).status)
        if statuses[-1] == 503:
            break
    check(statuses[0] == 502, "a request to a server with a certificate for another name answered %s, "
          "expected 502 (all: %s)" % (statuses[0], statuses))
    check(statuses[-1] == 503 and set(statuses[:-1]) == {502},
          "live failures did not take the server down: answers %s (fall = 2)" % statuses)
    wait_log(d, r"blue server %s is down: 2 connect failures in a row on live traffic" % re.escape(up.addr))
    check(up.requests == [], "requests reached the server despite its certificate: %r" % up.requests)


def test_upstream_tls_sni_is_the_name_checked(env):
    """With sni set, the certificate must be for sni: evil.example's is
    refused for sni = "up.test" (health reports it), accepted for
    sni = "evil.example"."""
    d, ctl, up = _tls_upstream(env, "evil", 'tls = { verify = true; ca = "%(ca)s"; sni = "up.test"; };')
    wait_log(d, r"certificate rejected: hostname mismatch \(expected name up\.test; certificate /CN=evil\.example")
    check(d.get("/x").status == 502, "a certificate for evil.example was accepted for sni up.test")
    d.stop()
    env.daemons.remove(d)
    d, ctl, up = _tls_upstream(env, "evil", 'tls = { verify = true; ca = "%(ca)s"; sni = "evil.example"; };')
    r = d.get("/y")
    check(r.status == 200, "a certificate for evil.example with sni evil.example answered %s" % r.status)
    check(up.snis and set(up.snis) == {"evil.example"}, "SNI sent: %r" % up.snis)


def test_check_warns_when_verify_is_false(env):
    path = os.path.join(env.tmp, "noverify.conf")
    with open(path, "w") as f:
        f.write('listen = ( { address = "127.0.0.1:18080"; } );\n'
                'pools: { blue: { servers = ( "127.0.0.1:9001" ); };\n'
                '  green: { servers = ( "127.0.0.1:9002" );\n'
                '    tls = { verify = false; }; }; };\n')
    rc, lines = _run_check(env, path)
    check(rc == 0, "cutoverd -t refused verify = false (a warning, not an error): %s" % lines)
    warn = [l for l in lines if "warning" in l]
    check(len(warn) == 1 and warn[0].startswith(path + ":4: warning: 'pools.green.tls.verify' is false"),
          "cutoverd -t did not warn at %s:4 about verify = false: %s" % (path, lines))
    with open(path, "w") as f:
        f.write('listen = ( { address = "127.0.0.1:18080"; } );\n'
                'pools: { blue: { servers = ( "127.0.0.1:9001" ); tls = { }; };\n'
                '  green: { servers = ( ); }; };\n')
    rc, lines = _run_check(env, path)
    check(rc == 0 and not any("warning" in l for l in lines),
          "cutoverd -t with verify at its default (true): exit %d, %s" % (rc, lines))
