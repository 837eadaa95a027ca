"""Operations through the real binaries (issue 6): hitless reload under load
with a changed server list, state carried over a reload, rejected reloads
(cutoverctl reload and SIGHUP), graceful stop on SIGTERM, Prometheus
metrics after known traffic, the access log and its reopen on SIGUSR1.

Helpers live in ops.py and switching.py.
"""

import datetime
import os
import re
import signal
import threading
import time

import harness
from harness import check, free_port, port_accepts, wait_for
from ops import check_log_clean, fetch_metrics, metric, reap, wait_log
from switching import EXTRA_DEFAULT, HEALTH_FAST, SWITCH_DEFAULT, Load, RawCtl, sock_path, start

REJECT = [r"reload rejected"]


class Slow:
    """One request on its own connection in a thread; result() gives
    (response or exception, monotonic time it ended)."""

    def __init__(self, d, path):
        self.out = None
        self.t_done = None
        self.t = threading.Thread(target=self._run, args=(d, path), daemon=True)
        self.t.start()

    def _run(self, d, path):
        try:
            self.out = d.get(path)
        except Exception as e:  # noqa: BLE001 - inspected by the test
            self.out = e
        self.t_done = time.monotonic()

    def done(self):
        return not self.t.is_alive()

    def result(self, timeout=15):
        self.t.join(timeout)
        check(not self.t.is_alive(), "the slow request did not end within %ss" % timeout)
        return self.out, self.t_done


def inflight_blue(ctl):
    return ctl.status()["pools"]["blue"]["inflight"]


def names_of(d, n=4, path="/"):
    out = []
    for _ in range(n):
        r = d.get(path)
        out.append((r.status, r.body.decode("latin-1").strip()))
    return out


def rewrite(env, d, blue, green, extra=EXTRA_DEFAULT, append=""):
    """Rewrites d's configuration file (same listener, socket and state
    file) with these pools, plus `append` at the end; returns its text."""
    env.write_config(blue=blue, green=green, port=d.port, extra=extra)
    with open(d.conf_path, "a") as f:
        f.write(append)
    with open(d.conf_path) as f:
        return f.read()


# --------------------------------------------------------------------------
# Hitless reload


def test_reload_under_load_changes_server_list(env):
    b1, b2 = env.backend("b1", "blue"), env.backend("b2", "blue")
    g1 = env.backend("g1", "green")
    d, ctl = start(env, [b1], [g1])
    ctl.wait_confirmed("blue")
    slow = Slow(d, "/delay?ms=1000")
    wait_for(lambda: inflight_blue(ctl) == 1, 5, "the slow request in flight on blue")
    load = Load(d.port, nthreads=3).start()
    try:
        wait_for(lambda: load.count() >= 200, 20, "200 responses before the reload")
        rewrite(env, d, [b2], [g1])
        r = ctl.run("reload")
        check(r.rc == 0 and r.json and r.json.get("ok") is True, "cutoverctl reload failed: %r" % r)
        check(not slow.done(), "the slow request ended before the reload was acknowledged: the test proves nothing")
        n = load.count()
        wait_for(lambda: load.count() >= n + 200, 20, "200 responses after the reload")
    finally:
        records = load.stop()
    failed = [rec for rec in records if rec[2] != 200]
    check(not failed, "%d of %d requests failed across the reload, e.g. %s"
          % (len(failed), len(records), [(rec[2], rec[4][:80]) for rec in failed[:3]]))
    # Answered before cutoverctl started: b1. Sent after it answered: b2.
    # (A request "sent" just before may sit in the client until after.)
    before = set(rec[4] for rec in records if rec[1] < r.t_start)
    after = set(rec[4] for rec in records if rec[0] > r.t_end)
    check(before == {"b1 blue"}, "before the reload requests were served by %s, expected b1 only" % before)
    check(after == {"b2 blue"}, "after the reload requests were served by %s, expected b2 only" % after)
    resp, t_done = slow.result()
    check(isinstance(resp, harness.Message) and resp.status == 200 and resp.body == b"b1 blue\n",
          "the request in flight on b1 during the reload ended with %r" % (resp,))
    st = ctl.status()
    check(st["pools"]["blue"]["total"] == 1 and st["pools"]["blue"]["inflight"] == 0,
          "status after the reload: %s" % st["pools"])


def _set_listeners(d, ports):
    with open(d.conf_path) as f:
        text = f.read()
    entries = ", ".join('{ address = "127.0.0.1:%d"; }' % p for p in ports)
    text = re.sub(r"^listen = .*$", "listen = ( %s );" % entries, text, count=1, flags=re.M)
    with open(d.conf_path, "w") as f:
        f.write(text)


def _get_on(port):
    with harness.Conn(port, timeout=5) as c:
        c.send(harness.http_request("GET", "/"))
        return c.read_response()


def test_reload_changes_listeners(env):
    b1, g1 = env.backend("b1", "blue"), env.backend("g1", "green")
    d, ctl = start(env, [b1], [g1], expect_errors=REJECT)
    a, b = d.port, free_port()
    check(not port_accepts(b), "port %d is taken before the test" % b)
    _set_listeners(d, [a, b])
    r = ctl.run("reload")
    check(r.rc == 0, "reload adding a listener failed: %r" % r)
    wait_for(lambda: port_accepts(b), 5, "the new listener on %d" % b)
    check(_get_on(b).status == 200 and _get_on(a).status == 200, "not served on both listeners")
    # Drop the first one: it stops accepting, the second keeps serving.
    _set_listeners(d, [b])
    r = ctl.run("reload")
    check(r.rc == 0, "reload removing a listener failed: %r" % r)
    wait_for(lambda: not port_accepts(a), 5, "the removed listener on %d to close" % a)
    check(_get_on(b).status == 200, "the kept listener stopped serving")
    # A new address someone else listens on: the reload is refused, naming it.
    taken = harness.socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    c = taken.getsockname()[1]
    try:
        _set_listeners(d, [b, c])
        r = ctl.run("reload")
        check(r.rc == 1, "reload onto a port in use was not refused: %r" % r)
        check(re.search(r":\d+: listen 127\.0\.0\.1:%d: Address already in use" % c, r.err),
              "refusal does not name the line and the address: %r" % r.err)
        check(_get_on(b).status == 200, "the running listener stopped serving after a refused reload")
    finally:
        taken.close()


def test_reload_keeps_active_color_generation_and_window(env):
    b1, b2 = env.backend("b1", "blue"), env.backend("b2", "blue")
    g1 = env.backend("g1", "green")
    d, ctl = start(env, [b1], [g1])
    ctl.wait_confirmed("green")
    ctl.ok("switch", "green")
    before = ctl.status()
    check(before["active"] == "green" and before["generation"] == 1 and before["state"] == "observing",
          "after switch green: %s" % before)
    rewrite(env, d, [b1, b2], [g1])
    r = ctl.run("reload")
    check(r.rc == 0, "cutoverctl reload failed: %r" % r)
    st = ctl.status()
    check(st["pools"]["blue"]["total"] == 2, "the reload was not applied (blue has %d servers)"
          % st["pools"]["blue"]["total"])
    check(st["active"] == "green" and st["previous"] == "blue" and st["generation"] == 1
          and st["state"] == "observing" and 0 < st["window_left_s"] <= before["window_left_s"],
          "cutoverctl reload did not carry the switch state over: before %s, after %s" % (before, st))
    check(all(x == (200, "g1 green") for x in names_of(d)), "traffic after the reload: %s" % names_of(d))


def test_reload_twice_in_a_row(env):
    """Two valid reloads back to back (a deploy script running `cutoverctl
    reload` twice, or a SIGHUP right after one) must both be applied. Both
    commands go on one control connection so that the second reaches the
    daemon at once, whatever the speed of the build."""
    b1, b2 = env.backend("b1", "blue"), env.backend("b2", "blue")
    g1 = env.backend("g1", "green")
    d, ctl = start(env, [b1], [g1], expect_errors=REJECT)
    ctl.wait_confirmed("blue")
    rewrite(env, d, [b1, b2], [g1])
    rc = RawCtl(sock_path(env))
    try:
        rc.send(b"reload\nreload\n")
        a1, a2 = rc.read_json(), rc.read_json()
    finally:
        rc.close()
    check(a1.get("ok") is True and a2.get("ok") is True,
          "two valid reloads in a row: first answered %s; second answered %s" % (a1, a2))
    check(ctl.status()["pools"]["blue"]["total"] == 2, "the reloads were not applied")


# --------------------------------------------------------------------------
# Rejected reloads


def _rejected_reload(env, append, expect_lines):
    """Starts on b1, writes a configuration that would move blue to b2 plus
    `append` (which makes it invalid), and checks cutoverctl reload and
    SIGHUP both reject it. expect_lines: [(line number, words)] that must be
    reported as FILE:LINE: message."""
    b1, b2 = env.backend("b1", "blue"), env.backend("b2", "blue")
    g1 = env.backend("g1", "green")
    d, ctl = start(env, [b1], [g1], expect_errors=REJECT)
    ctl.wait_confirmed("blue")
    good = open(d.conf_path).read()
    text = rewrite(env, d, [b2], [g1], append=append)
    nlines = good.count("\n")
    lines = [(nlines + ln, words) for ln, words in expect_lines]

    r = ctl.run("reload", as_json=False)
    check(r.rc == 1, "cutoverctl reload of an invalid configuration exited %s, expected 1: %r" % (r.rc, r))
    # Indentation under cutoverctl's heading line is presentation.
    errs = [l.strip() for l in r.err.splitlines() if l.strip().startswith(d.conf_path)]
    for ln, words in lines:
        prefix = "%s:%d: " % (d.conf_path, ln)
        check(any(l.startswith(prefix) and all(w in l for w in words) for l in errs),
              "cutoverctl reload did not print '%s...' mentioning %s; stderr: %r" % (prefix, words, r.err))
    for l in errs:
        check(re.match(re.escape(d.conf_path) + r":\d+: \S", l),
              "cutoverctl reload printed an error not in FILE:LINE: message form: %r" % l)
    check(all(x == (200, "b1 blue") for x in names_of(d)),
          "after a rejected cutoverctl reload traffic went to %s" % names_of(d))

    log_at = len(d.log_text())
    d.proc.send_signal(signal.SIGHUP)
    wait_log(d, r"\[error\] reload rejected: the running configuration stays", start=log_at)
    logged = d.log_text()[log_at:]
    for ln, words in lines:
        check(re.search(r"\[error\] reload rejected: %s:%d: " % (re.escape(d.conf_path), ln), logged),
              "the log of the rejected SIGHUP lacks the error for line %d: %s" % (ln, logged.strip()))
    check(all(x == (200, "b1 blue") for x in names_of(d)),
          "after a rejected SIGHUP traffic went to %s" % names_of(d))
    st = ctl.status()
    check(st["pools"]["blue"]["total"] == 1 and st["active"] == "blue" and st["generation"] == 0,
          "status after rejected reloads: %s" % st)


def test_reload_rejected_syntax_error(env):
    _rejected_reload(env, 'workers = ;\n', [(1, ("syntax",))])


def test_reload_rejected_unknown_keys(env):
    _rejected_reload(env, 'colour = "red";\nhealth_path = "/x";\n',
                     [(1, ("colour",)), (2, ("health_path",))])


def test_reload_rejected_workers_change(env):
    _rejected_reload(env, 'workers = 3;\n', [(1, ("workers",))])


# --------------------------------------------------------------------------
# Graceful stop


def test_sigterm_lets_slow_request_finish(env):
    b1 = env.backend("b1", "blue")
    d, ctl = start(env, [b1], [env.backend("g1", "green")],
                   extra=EXTRA_DEFAULT.replace(SWITCH_DEFAULT, SWITCH_DEFAULT.replace('"2s"', '"10s"')))
    slow = Slow(d, "/delay?ms=5000")
    wait_for(lambda: inflight_blue(ctl) == 1, 5, "the slow request in flight")
    t_term = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: not port_accepts(d.port), 4.0, "new connections to be refused after SIGTERM")
    check(not slow.done(), "the slow request ended before new connections were refused (%.2fs)"
          % (time.monotonic() - t_term))
    resp, t_done = slow.result()
    check(isinstance(resp, harness.Message) and resp.status == 200 and resp.body == b"b1 blue\n",
          "the request in flight at SIGTERM ended with %r" % (resp,))
    rc, _ = reap(d, 10)
    t_exit = time.monotonic()
    check(rc == 0, "cutoverd exited %s after SIGTERM, expected 0" % rc)
    check(t_exit >= t_done, "cutoverd exited before the request in flight was answered")
    # drain_timeout is 10s: exiting within 4s of the last request is not waiting for it.
    check(t_exit - t_done < 4.0, "cutoverd exited %.2fs after the last request ended" % (t_exit - t_done))
    check_log_clean(d)


def test_sigterm_cuts_request_past_drain_timeout(env):
    b1 = env.backend("b1", "blue")
    d, ctl = start(env, [b1], [env.backend("g1", "green")],
                   extra=EXTRA_DEFAULT.replace(SWITCH_DEFAULT, SWITCH_DEFAULT.replace('"2s"', '"1s"')))
    slow = Slow(d, "/delay?ms=8000")
    wait_for(lambda: inflight_blue(ctl) == 1, 5, "the slow request in flight")
    t_term = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    rc, _ = reap(d, 10)
    took = time.monotonic() - t_term
    check(rc == 0, "cutoverd exited %s after SIGTERM, expected 0" % rc)
    # The request takes 8s: leaving within 5s is cutting it at drain_timeout.
    check(0.9 <= took <= 5.0, "cutoverd exited %.2fs after SIGTERM, expected after about the "
          "drain_timeout of 1s (and well before the 8s request ends)" % took)
    resp, _ = slow.result()
    check(not (isinstance(resp, harness.Message) and resp.status == 200),
          "the request slower than drain_timeout was answered 200")
    check_log_clean(d)


# --------------------------------------------------------------------------
# Metrics


def _metrics_daemon(env, blue, green, extra=EXTRA_DEFAULT):
    mport = free_port()
    d, ctl = start(env, blue, green, extra=extra + 'metrics: { listen = "127.0.0.1:%d"; };\n' % mport)
    wait_for(lambda: port_accepts(mport), 5, "the metrics listener")
    return d, ctl, mport


def _requests(samples, color):
    return {code: metric(samples, "cutover_requests_total", color=color, code=code)
            for code in ("none", "1xx", "2xx", "3xx", "4xx", "5xx")}


def test_metrics_after_known_traffic(env):
    blue = [env.backend("b1", "blue"), env.backend("b2", "blue")]
    green = [env.backend("g1", "green"), env.backend("g2", "green")]
    d, ctl, mport = _metrics_daemon(env, blue, green)
    ctl.wait_confirmed("blue")
    ctl.wait_confirmed("green")
    n_ok, n_5xx = 7, 3
    for i in range(n_ok):
        check(d.get("/ok/%d" % i).status == 200, "request %d not answered 200" % i)
    for i in range(n_5xx):
        check(d.get("/status?code=503").status == 503, "/status?code=503 not answered 503")
    total = n_ok + n_5xx

    def settled():
        _, s, _ = fetch_metrics(mport)
        got = metric(s, "cutover_request_duration_seconds_count", color="blue")
        return s if got == total else None
    wait_for(settled, 5, "the histogram count of blue to reach %d" % total)
    r, s, types = fetch_metrics(mport)
    ctype = r.header("Content-Type", "")
    check(ctype.startswith("text/plain") and "version=0.0.4" in ctype, "/metrics Content-Type %r" % ctype)
    for fam, typ in (("cutover_active_color", "gauge"), ("cutover_requests_total", "counter"),
                     ("cutover_inflight_requests", "gauge"), ("cutover_server_up", "gauge"),
                     ("cutover_switches_total", "counter"), ("cutover_switch_refused_total", "counter"),
                     ("cutover_request_duration_seconds", "histogram"),
                     ("cutover_upstream_errors_total", "counter"),
                     ("cutover_h2_connections_total", "counter"), ("cutover_h2_streams_total", "counter"),
                     ("cutover_h2_goaway_total", "counter")):
        check(types.get(fam) == typ, "metric family %s has TYPE %r, expected %s" % (fam, types.get(fam), typ))
    # HTTP/1.1 traffic only: the HTTP/2 counters exist, at 0, every GOAWAY reason included.
    for name in ("cutover_h2_connections_total", "cutover_h2_streams_total"):
        check(metric(s, name) == 0, "%s after HTTP/1.1 traffic only: %s" % (name, metric(s, name)))
    goaway = {dict(k[1])["reason"]: v for k, v in s.items() if k[0] == "cutover_h2_goaway_total"}
    reasons = {"rapid_reset", "continuation_flood", "settings_flood", "ping_flood", "header_list",
               "stream_limit", "stall", "protocol_error", "shutdown", "idle"}
    check(goaway == {r: 0 for r in reasons}, "cutover_h2_goaway_total is %s, expected 0 for each of %s"
          % (goaway, sorted(reasons)))
    req_b, req_g = _requests(s, "blue"), _requests(s, "green")
    check(req_b == {"none": 0, "1xx": 0, "2xx": n_ok, "3xx": 0, "4xx": 0, "5xx": n_5xx},
          "cutover_requests_total for blue after %d 2xx and %d 5xx: %s" % (n_ok, n_5xx, req_b))
    check(all(v == 0 for v in req_g.values()), "cutover_requests_total for green without traffic: %s" % req_g)
    check(metric(s, "cutover_active_color", color="blue") == 1 and metric(s, "cutover_active_color", color="green") == 0,
          "cutover_active_color before the switch: blue %s green %s"
          % (metric(s, "cutover_active_color", color="blue"), metric(s, "cutover_active_color", color="green")))
    ups = {(dict(k[1])["color"], dict(k[1])["server"]): v for k, v in s.items() if k[0] == "cutover_server_up"}
    want = {(b.color, b.addr): 1.0 for b in blue + green}
    check(ups == want, "cutover_server_up is %s, expected %s" % (ups, want))
    check(metric(s, "cutover_inflight_requests", color="blue") == 0, "requests in flight after traffic")
    # The histogram: cumulative buckets, +Inf equal to _count.
    buckets = sorted(((float(dict(k[1])["le"].replace("Inf", "inf")), v) for k, v in s.items()
                      if k[0] == "cutover_request_duration_seconds_bucket" and dict(k[1])["color"] == "blue"))
    check(len(buckets) >= 2 and buckets[-1][0] == float("inf") and buckets[-1][1] == total,
          "blue duration buckets %s: +Inf should count %d" % (buckets, total))
    check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), "blue buckets not cumulative: %s" % buckets)
    check(metric(s, "cutover_request_duration_seconds_sum", color="blue") > 0, "blue duration _sum is 0")
    check(metric(s, "cutover_request_duration_seconds_count", color="green") == 0, "green histogram count")
    check(metric(s, "cutover_switches_total", trigger="manual") == 0
          and metric(s, "cutover_switch_refused_total") == 0, "switch counters before any switch")

    ctl.ok("switch", "green")
    _, s, _ = fetch_metrics(mport)
    check(metric(s, "cutover_switches_total", trigger="manual") == 1,
          "cutover_switches_total{trigger=\"manual\"} after one switch: %s"
          % metric(s, "cutover_switches_total", trigger="manual"))
    check(metric(s, "cutover_active_color", color="green") == 1 and metric(s, "cutover_active_color", color="blue") == 0,
          "cutover_active_color after the switch to green")

    for b in blue:
        b.ctl("/_ctl/health?fail=1")
    ctl.wait_down("blue")
    r = ctl.switch("blue")
    check(r.rc == 1, "switch to an unhealthy blue was not refused: %r" % r)
    _, s, _ = fetch_metrics(mport)
    check(metric(s, "cutover_switch_refused_total") == 1,
          "cutover_switch_refused_total after one refused switch: %s" % metric(s, "cutover_switch_refused_total"))
    check(metric(s, "cutover_switches_total", trigger="manual") == 1, "a refused switch counted as a switch")
    ups = {(dict(k[1])["color"], dict(k[1])["server"]): v for k, v in s.items() if k[0] == "cutover_server_up"}
    check(all(ups[(b.color, b.addr)] == 0 for b in blue) and all(ups[(g.color, g.addr)] == 1 for g in green),
          "cutover_server_up after blue went down: %s" % ups)
    check(_requests(s, "blue") == req_b, "blue request counts moved without traffic: %s" % _requests(s, "blue"))


def test_metrics_upstream_connect_error(env):
    dead = "127.0.0.1:%d" % free_port()
    # fall = 1000: the dead server stays "up", so requests really try it.
    extra = EXTRA_DEFAULT.replace(HEALTH_FAST, HEALTH_FAST.replace("fall = 2;", "fall = 1000;"))
    d, ctl, mport = _metrics_daemon(env, [dead], [env.backend("g1", "green")], extra=extra)
    for i in range(3):
        r = d.get("/dead/%d" % i)
        check(r.status == 502, "request %d to a dead server answered %s, expected 502" % (i, r.status))

    def settled():
        _, s, _ = fetch_metrics(mport)
        return s if _requests(s, "blue")["5xx"] == 3 else None
    s = wait_for(settled, 5, "three blue 5xx in cutover_requests_total")
    got = metric(s, "cutover_upstream_errors_total", color="blue", kind="connect")
    check(got == 3, "cutover_upstream_errors_total{color=\"blue\",kind=\"connect\"} after 3 requests to a "
          "dead server is %s, expected 3" % got)
    check(metric(s, "cutover_upstream_errors_total", color="green", kind="connect") == 0,
          "connect errors counted for green")


# --------------------------------------------------------------------------
# Access log

LINE_RX = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) "([^"]*)" (\d{3}) (blue|green) (\S+) '
                     r'(\d+\.\d{3}) (\d+)$')


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8").splitlines()
    except FileNotFoundError:
        return []


def _log_daemon(env):
    b1 = env.backend("b1", "blue")
    log = os.path.join(env.tmp, "access.log")
    d, ctl = start(env, [b1], [env.backend("g1", "green")], extra=EXTRA_DEFAULT + 'access_log = "%s";\n' % log)
    return d, ctl, b1, log


def test_access_log_fields(env):
    d, ctl, b1, log = _log_daemon(env)
    sent = []
    for path, version, expect in (("/one?x=1", "HTTP/1.1", 200), ("/status?code=404", "HTTP/1.1", 404),
                                  ("/ten", "HTTP/1.0", 200), ("/delay?ms=300", "HTTP/1.1", 200)):
        with d.conn() as c:
            c.send(harness.http_request("GET", path, version=version))
            r = c.read_response()
        check(r.status == expect, "GET %s answered %s" % (path, r.status))
        sent.append(("GET %s %s" % (path, version), expect, len(r.body)))
    lines = wait_for(lambda: (lambda ls: ls if len(ls) >= len(sent) else None)(read_lines(log)), 5,
                     "%d lines in the access log" % len(sent))
    check(len(lines) == len(sent), "the access log has %d lines for %d requests: %s" % (len(lines), len(sent), lines))
    now = datetime.datetime.now(datetime.timezone.utc)
    for line, (reqline, status, nbytes) in zip(lines, sent):
        m = LINE_RX.match(line)
        check(m is not None, "access log line not in the form 'time client \"request\" status color server "
              "duration_ms bytes': %r" % line)
        when = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
        check(abs((now - when).total_seconds()) < 60, "access log time %s is not now (%s)" % (m.group(1), now))
        check(m.group(2) == "127.0.0.1", "client %r in %r" % (m.group(2), line))
        check(m.group(3) == reqline, "request %r logged as %r" % (reqline, m.group(3)))
        check(int(m.group(4)) == status, "status %s logged for %r (answered %d)" % (m.group(4), reqline, status))
        check(m.group(5) == "blue" and m.group(6) == b1.addr, "color/server %s %s for %r, expected blue %s"
              % (m.group(5), m.group(6), reqline, b1.addr))
        check(int(m.group(8)) == nbytes, "bytes %s logged for %r, body had %d" % (m.group(8), reqline, nbytes))
        if "delay" in reqline:
            # The test backend's libevent timer runs on the coarse monotonic
            # clock and may fire up to one kernel tick (<= 10 ms) early.
            check(290 <= float(m.group(7)) < 5000, "duration %s ms logged for a 300 ms request" % m.group(7))


def test_access_log_reopen_on_sigusr1(env):
    d, ctl, b1, log = _log_daemon(env)
    for i in range(3):
        check(d.get("/before/%d" % i).status == 200, "request before rotation failed")
    wait_for(lambda: len(read_lines(log)) >= 3, 5, "3 lines in the access log")
    os.rename(log, log + ".1")
    log_at = len(d.log_text())
    d.proc.send_signal(signal.SIGUSR1)
    wait_log(d, r"SIGUSR1", start=log_at)
    for i in range(3):
        check(d.get("/after/%d" % i).status == 200, "request after rotation failed")
    wait_for(lambda: len(read_lines(log)) >= 3, 5, "3 lines in a new access.log after SIGUSR1")
    old, new = read_lines(log + ".1"), read_lines(log)
    olds = [re.search(r'"GET (\S+) ', l).group(1) if re.search(r'"GET (\S+) ', l) else l for l in old]
    news = [re.search(r'"GET (\S+) ', l).group(1) if re.search(r'"GET (\S+) ', l) else l for l in new]
    check(olds == ["/before/0", "/before/1", "/before/2"], "access.log.1 after the reopen holds %s" % olds)
    check(news == ["/after/0", "/after/1", "/after/2"], "the reopened access.log holds %s" % news)


# --------------------------------------------------------------------------
# systemd notify protocol (Type=notify, WatchdogSec=)


class NotifyListener:
    """The NOTIFY_SOCKET end systemd would hold: collects every datagram
    with the monotonic time it arrived."""

    def __init__(self, path):
        import socket as _socket
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.msgs = []
        self.lock = threading.Lock()
        self.running = True
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except OSError:
                continue
            with self.lock:
                self.msgs.append((time.monotonic(), data.decode("utf-8", "replace")))

    def lines(self):
        with self.lock:
            return list(self.msgs)

    def count(self, text, since=0.0):
        return sum(1 for t, m in self.lines() if t >= since and text in m.split("\n"))

    def close(self):
        self.running = False
        self.t.join(2)
        self.sock.close()


def _notify_daemon(env, watchdog_usec=400000):
    """cutoverd with NOTIFY_SOCKET and WATCHDOG_USEC set (as systemd would)
    and the listener holding the other end; waits for READY=1."""
    b1, g1 = env.backend("b1", "blue"), env.backend("g1", "green")
    path = os.path.join(env.tmp, "notify.sock")
    listener = NotifyListener(path)
    saved = {k: os.environ.get(k) for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    os.environ["NOTIFY_SOCKET"] = path
    os.environ["WATCHDOG_USEC"] = str(watchdog_usec)
    os.environ.pop("WATCHDOG_PID", None)
    try:
        d, ctl = start(env, [b1], [g1])
    except BaseException:
        listener.close()
        raise
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        wait_for(lambda: listener.count("READY=1") >= 1, 10, "READY=1 once listening")
    except BaseException:
        listener.close()
        raise
    return d, ctl, listener


# WATCHDOG_USEC=400000: pinged every 200 ms. The rate is measured over a
# window long enough that a busy machine delaying the timer cannot starve it
# below the floor (an idle run sees about 10), while one timer can never
# exceed the ceiling (libevent does not catch up missed persistent timeouts)
# and a second pinger started by each reload would.
PING_WINDOW = 2.0
PING_FLOOR = 3
PING_CEILING = int(PING_WINDOW / 0.2) + 2


def test_sd_notify_ready_reloading_watchdog_stopping(env):
    d, ctl, listener = _notify_daemon(env)
    try:
        t0 = time.monotonic()
        time.sleep(PING_WINDOW)
        before = listener.count("WATCHDOG=1", since=t0)
        check(PING_FLOOR <= before <= PING_CEILING, "%d WATCHDOG=1 pings in %.1fs with WATCHDOG_USEC=400000 "
              "(expected %d..%d)" % (before, PING_WINDOW, PING_FLOOR, PING_CEILING))
        for i in range(3):
            r = ctl.run("reload")
            check(r.rc == 0, "reload %d failed: %r" % (i, r))
        wait_for(lambda: listener.count("READY=1") >= 4, 10, "READY=1 after each of 3 reloads")
        reloading = [m for _, m in listener.lines() if "RELOADING=1" in m.split("\n")]
        check(len(reloading) == 3 and all("MONOTONIC_USEC=" in m for m in reloading),
              "expected 3 RELOADING=1 messages with MONOTONIC_USEC, got %r" % reloading)
        t1 = time.monotonic()
        time.sleep(PING_WINDOW)
        after = listener.count("WATCHDOG=1", since=t1)
        # A reload must not add pingers (or leak their timers).
        check(PING_FLOOR <= after <= PING_CEILING, "%d WATCHDOG=1 pings in %.1fs after 3 reloads (expected "
              "%d..%d, before the reloads %d)" % (after, PING_WINDOW, PING_FLOOR, PING_CEILING, before))
        d.proc.send_signal(signal.SIGTERM)
        status, _ = reap(d, 15)
        check(status == 0, "cutoverd exited %s after SIGTERM" % status)
        check(listener.count("STOPPING=1") == 1, "no STOPPING=1 on SIGTERM: %r" % listener.lines()[-3:])
        # Idle workers beat every second: with pings every 200 ms none may
        # ever be called stuck (a heartbeat slower than WATCHDOG_USEC was).
        check_log_clean(d)
    finally:
        listener.close()


def test_sd_notify_watchdog_survives_a_stall(env):
    """The whole daemon stopped for longer than the watchdog's threshold
    (a starved machine at its worst; SIGSTOP here) is not a wedged worker:
    no error is logged and the pings resume at once."""
    d, ctl, listener = _notify_daemon(env)
    try:
        wait_for(lambda: listener.count("WATCHDOG=1") >= 2, 10, "the first WATCHDOG=1 pings")
        d.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(6.5)  # above watchdog.h's WATCHDOG_STUCK_MIN_MS (5 s)
        finally:
            d.proc.send_signal(signal.SIGCONT)
        t_cont = time.monotonic()
        wait_for(lambda: listener.count("WATCHDOG=1", since=t_cont) >= 3, 10,
                 "WATCHDOG=1 pings to resume after SIGCONT")
        r = d.get("/")
        check(r.status == 200, "a request after the stall answered %s" % r.status)
        check("withholding" not in d.log_text(), "a stall of the whole process withheld a ping: %s"
              % d.log_tail(3))
    finally:
        listener.close()
