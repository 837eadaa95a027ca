"""The idle upstream connection policy (issue 13): at the shipped defaults
cutoverd keeps the upstream connections that recent demand needed, whatever
the concurrency, and closes the surplus gradually every upstream.purge_delay;
upstream.keepalive = N still caps what stays idle (keepalive = 0 disabling
reuse is test_proxy.test_upstream_keepalive_zero_disables_reuse).

Load comes in waves: N keep-alive clients meet at a barrier, then each sends
one request that the backend holds for a while, so that the N requests are
in flight together and then all give their upstream connection back at
about the same time. The backend counts the connections it accepts; the
connections cutoverd holds open to it are read from /proc. Health
checks run once an hour here, so that they open no connection mid-test.
"""

import signal
import threading
import time

from harness import check, established_to, http_request, wait_for

HOLD_MS = 300  # the backend holds each request this long: the wave overlaps
EXTRA = 'health: { interval = "1h"; };\n'


def start(env, **kw):
    """A backend and cutoverd in front of it, once cutoverd's first health
    check (its only one here) has connected, so that every connection the
    backend accepts from then on carries proxied requests."""
    b = env.backend("b", "blue")
    d = env.cutoverd(blue=[b], green=[], **kw)
    wait_for(lambda: b.accepted() >= 1, 10, "the first health check to reach the backend")
    return b, d


class Waves:
    """n keep-alive client connections to d; run(k) makes k waves of one
    request per client and fails the test on any answer other than 200."""

    def __init__(self, env, d, n, path="/delay?ms=%d" % HOLD_MS):
        self.path = path
        self.conns = [env.conn(d.port, timeout=60) for _ in range(n)]

    def run(self, waves):
        barrier = threading.Barrier(len(self.conns))
        errors = []

        def client(c):
            try:
                for _ in range(waves):
                    barrier.wait(60)
                    c.send(http_request("GET", self.path))
                    r = c.read_response()
                    if r.status != 200:
                        errors.append("answered %s" % r.status)
            except threading.BrokenBarrierError:
                pass
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append("%s: %s" % (type(e).__name__, e))
                barrier.abort()

        threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in self.conns]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        check(not any(t.is_alive() for t in threads), "a load client did not finish its waves")
        check(not errors, "load clients failed: %s" % errors[:3])


class Background:
    """Waves of a few clients, again and again, until stop()."""

    def __init__(self, env, d, n, hold_ms):
        self.waves = Waves(env, d, n, "/delay?ms=%d" % hold_ms)
        self.stopping = threading.Event()
        self.error = None
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            while not self.stopping.is_set():
                self.waves.run(1)
        except Exception as e:  # noqa: BLE001 - reported by stop()
            self.error = e

    def stop(self):
        self.stopping.set()
        self.t.join(60)
        check(not self.t.is_alive(), "the background load did not stop")
        check(self.error is None, "the background load failed: %s" % self.error)


def test_defaults_no_churn_with_100_clients(env):
    """At the shipped defaults, 100 concurrent keep-alive clients need about
    100 upstream connections, opened once: a second load phase opens none."""
    b, d = start(env, extra=EXTRA)
    load = Waves(env, d, 100)
    base = b.accepted()
    load.run(8)
    first = b.accepted() - base
    load.run(8)
    second = b.accepted() - base - first
    check(first <= 100, "100 clients made cutoverd open %d upstream connections in 8 waves: it closed and "
          "reopened some" % first)
    check(second <= 5, "a second phase of the same load opened %d new upstream connections (first phase: %d): "
          "idle connections were closed although demand needed them" % (second, first))
    held = established_to(d.pid, b.port)
    check(held >= first + second - 10, "right after the load cutoverd holds %d upstream connections of the %d "
          "it opened: it closed connections that demand had just used" % (held, first + second))


def test_keepalive_caps_idle_connections(env):
    """upstream.keepalive = N keeps at most N idle connections per server and
    worker: above that, connections are closed after use and reopened."""
    b, d = start(env, upstream={"keepalive": 8}, extra="workers = 1;\n" + EXTRA)
    load = Waves(env, d, 100)
    base = b.accepted()
    load.run(4)
    opened = b.accepted() - base
    check(opened > 100, "the load opened only %d connections for 4 waves of 100 clients: waves did not "
          "overlap beyond 8, so the cap was not exercised" % opened)
    check(opened <= 100 + 3 * 92, "keepalive = 8: %d connections opened in 4 waves of 100, so the 8 kept "
          "idle were not reused" % opened)
    wait_for(lambda: established_to(d.pid, b.port) <= 8, 10,
             "cutoverd to hold at most keepalive = 8 idle upstream connections (holds %d)"
             % established_to(d.pid, b.port))


def drain_sizes(pid, port, timeout):
    """Samples the upstream connections pid holds to port until none is
    left; returns the values seen, in order. Fails after timeout seconds."""
    seen = [established_to(pid, port)]
    deadline = time.monotonic() + timeout
    while seen[-1] > 0:
        check(time.monotonic() < deadline, "idle upstream connections not purged within %ds: still %d "
              "(seen %s)" % (timeout, seen[-1], seen[-12:]))
        time.sleep(0.02)
        n = established_to(pid, port)
        if n != seen[-1]:
            seen.append(n)
    return seen


def test_purge_closes_surplus_gradually(env):
    """After the load stops, every purge_delay half of the connections idle
    that long are closed: the pool shrinks in steps, not at once, and long
    before timeouts.upstream_idle."""
    b, d = start(env, upstream={"purge_delay": "500ms"},
                 timeouts={"upstream_idle": "60s"}, extra="workers = 1;\n" + EXTRA)
    Waves(env, d, 100).run(3)
    held = established_to(d.pid, b.port)
    check(held >= 50, "after 3 waves of 100 clients cutoverd holds only %d upstream connections" % held)
    seen = drain_sizes(d.pid, b.port, 50)
    steps = [n for n in seen if 0 < n < held]
    check(len(steps) >= 3, "the %d idle connections went away in too few steps: %s (expected halving "
          "every purge_delay)" % (held, seen))
    check(all(a > c for a, c in zip(seen, seen[1:])), "the number of upstream connections grew while idle: %s"
          % seen)


def test_purge_keeps_what_demand_needs(env):
    """With a burst over and 5 clients still busy, the purge closes the
    burst's surplus but not the 5 connections the ongoing demand uses."""
    b, d = start(env, upstream={"purge_delay": "2s"},
                 timeouts={"upstream_idle": "60s"}, extra="workers = 1;\n" + EXTRA)
    Waves(env, d, 60).run(3)
    burst = established_to(d.pid, b.port)
    check(burst >= 30, "after 3 waves of 60 clients cutoverd holds only %d upstream connections" % burst)
    low = Background(env, d, 5, 100)
    try:
        wait_for(lambda: established_to(d.pid, b.port) <= 10, 60,
                 "the surplus of the burst (%d connections) to be purged down to the 5 in use" % burst)
        base = b.accepted()
        time.sleep(3)
        churn = b.accepted() - base
    finally:
        low.stop()
    check(churn <= 5, "with a steady demand of 5, %d upstream connections were opened in 3 s: the purge "
          "closed connections in use" % churn)


def test_reload_changes_purge_delay(env):
    """upstream.purge_delay takes effect at a reload: from one hour (no purge
    during the test) to 300ms, after which idle connections are purged."""
    extra = "workers = 1;\n" + EXTRA
    b, d = start(env, upstream={"purge_delay": "1h"},
                 timeouts={"upstream_idle": "60s"}, extra=extra)
    env.write_config(blue=[b], green=[], port=d.port, upstream={"purge_delay": "300ms"},
                     timeouts={"upstream_idle": "60s"}, extra=extra)
    mark = len(d.log_text())
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration %s applied" % d.conf_path in d.log_text()[mark:], 10,
             "the reload to be applied")
    Waves(env, d, 40).run(2)
    check(established_to(d.pid, b.port) >= 20, "after 2 waves of 40 clients cutoverd holds only %d upstream "
          "connections" % established_to(d.pid, b.port))
    drain_sizes(d.pid, b.port, 50)
