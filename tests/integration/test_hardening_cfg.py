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
