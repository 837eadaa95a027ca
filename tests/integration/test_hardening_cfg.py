"""Hardening (issue 9), configuration and edges: upstream TLS checks the
server's name (item 6), `cutoverd -t` refuses values that would break at run
time (item 9), and the access log escapes client input (item 11)."""

import os
import re

import harness
from harness import check, cutoverd_path, wait_for
from switching import EXTRA_DEFAULT, start


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
