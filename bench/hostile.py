#!/usr/bin/env python3
"""Hostile clients and upstreams against one cutoverd: memory and CPU.

Each scenario starts cutoverd (the binary in $CUTOVERD, at its shipped
defaults apart from the pools) in front of an in-process upstream, runs one
hostile peer for SECONDS and prints the daemon's RSS growth, its CPU time
and what the peer achieved. Used for the figures of issue 9 (before/after).

  CUTOVERD=build/src/cutoverd TESTBACKEND=build/tests/backend/cutover-testbackend \\
      python3 bench/hostile.py [SECONDS] [SCENARIO...]

Scenarios: pipeline-503, pipeline-204, pipeline-head, flood-1xx,
connection-options. Only loopback traffic; every loop is bounded in time.
"""

import os
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import harness  # noqa: E402
from harness import http_request  # noqa: E402

FILLER = b"X-Filler: " + b"f" * 15000


def proc_stat(pid):
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, cpu


def answer_big(conn, rec, server):
    while True:
        req = conn.read_request()
        if req is None:
            return
        if req.method == "HEAD":
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n" + FILLER + b"\r\n\r\n")
        else:
            conn.send(b"HTTP/1.1 204 No Content\r\n" + FILLER + b"\r\n\r\n")


def flood_1xx(conn, rec, server):
    if conn.read_request() is None:
        return
    hint = b"HTTP/1.1 103 Early Hints\r\n" + FILLER + b"\r\n\r\n"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            conn.send(hint)
    except OSError:
        pass


def pipeline(d, request, seconds):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", d.port))
    s.setblocking(False)
    batch = request * (65536 // len(request))
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            sent += s.send(batch)
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            break
    s.close()
    return "client sent %.1f MiB of pipelined requests" % (sent / 1048576)


def one_1xx(d, request, seconds):
    c = harness.Conn(d.port, timeout=seconds)
    c.send(request)
    hints = 0
    try:
        while True:
            r = c.read_response(skip_1xx=False)
            if r.status != 103:
                break
            hints += 1
        what = "final %d after %d interim answers" % (r.status, hints)
    except (harness.TestFailure, harness.ConnClosed) as e:
        what = "no final answer in %ds (%d interim answers): %s" % (seconds, hints, e)
    c.close()
    return what


def connection_options(d, request, seconds):
    many = ", ".join("a%d" % i for i in range(6000))
    fields = [("a%d" % i, "v") for i in range(990)]
    req = http_request("GET", "/", headers=[("Connection", many)] + fields)
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with harness.Conn(d.port, timeout=60) as c:
            c.send(req)
            status = c.read_response().status
        n += 1
    return "%d requests of %d KiB with 6,000 Connection options and 990 fields (last: %d)" % (
        n, len(req) // 1024, status)


SCENARIOS = {
    "pipeline-503": (None, http_request("GET", "/"), pipeline, {}),
    "pipeline-204": (answer_big, http_request("GET", "/"), pipeline, {"header_size": 32768}),
    "pipeline-head": (answer_big, http_request("HEAD", "/"), pipeline, {"header_size": 32768}),
    "flood-1xx": (flood_1xx, http_request("GET", "/"), one_1xx, {"header_size": 32768}),
    "connection-options": (None, None, connection_options, {"header_size": 65536, "header_count": 1000}),
}


def main():
    args = sys.argv[1:]
    seconds = 10
    if args and args[0].isdigit():
        seconds = int(args.pop(0))
    names = args or list(SCENARIOS)
    for name in names:
        handler, request, run, limits = SCENARIOS[name]
        tmp = tempfile.mkdtemp(prefix="cutover-hostile-")
        env = harness.Env(tmp, name)
        try:
            if handler is None and name == "pipeline-503":
                dead = "127.0.0.1:%d" % harness.free_port()
                pools = ([dead], [dead])
            else:
                up = env.raw_backend(handler)
                pools = ([up], [up])
            lim = dict(harness.CONFIG_DEFAULT_LIMITS)
            lim.update(limits)
            d = env.cutoverd(blue=pools[0], green=pools[1], limits=lim,
                             timeouts={"client_idle": "60s", "response": "60s"},
                             expect_errors=[".*"])
            time.sleep(1.5)
            rss0, cpu0 = proc_stat(d.pid)
            what = run(d, request, seconds)
            rss1, cpu1 = proc_stat(d.pid)
            print("%-20s RSS %6.1f -> %6.1f MiB (+%.1f)  CPU %.2fs in %ds  %s" % (
                name, rss0 / 1024, rss1 / 1024, (rss1 - rss0) / 1024, cpu1 - cpu0, seconds, what))
            sys.stdout.flush()
        finally:
            env.close()


if __name__ == "__main__":
    main()
