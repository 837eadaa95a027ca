"""The status page on metrics.listen (issue 16, DESIGN.md "Status page"):
GET / is one self-contained HTML page, GET /status.json what it polls,
read only; and the page itself in a real browser (Debian's headless
chromium over the DevTools protocol, browser.py), following a switch.
"""

import base64
import hashlib
import json
import os
import re
import threading
import time

import harness
from browser import Browser
from harness import check, fail, http_request, wait_for
from switching import EXTRA_DEFAULT, start

__all_tests__ = ["test_page_self_contained", "test_read_only", "test_status_json",
                 "test_series_ring_fills", "test_browser_follows_switch"]

# The browser's checks: the page polls every second, so it shows a switch
# within about a second of the answer; two is the bound.
FOLLOW_S = 2.0


def start_page(env, blue=2, green=2, extra=""):
    """cutoverd with metrics (and so the page) on a free port; returns
    (daemon, ctl, metrics port, backends by color)."""
    mport = env.port()
    bs = {"blue": [env.backend("b%d" % i, "blue") for i in range(blue)],
          "green": [env.backend("g%d" % i, "green") for i in range(green)]}
    d, ctl = start(env, bs["blue"], bs["green"],
                   extra=EXTRA_DEFAULT + 'metrics: { listen = "127.0.0.1:%d"; };\n' % mport + extra)
    ctl.wait_confirmed("blue")
    ctl.wait_confirmed("green")
    return d, ctl, mport, bs


def get(mport, path, method="GET", body=None):
    c = harness.Conn(mport, timeout=10)
    try:
        headers = [("Connection", "close")]
        if body is not None:
            headers.append(("Content-Length", str(len(body))))
        c.send(http_request(method, path, host="127.0.0.1:%d" % mport, headers=headers) + (body or b""))
        return c.read_response(method=method)
    finally:
        c.close()


def status_json(mport):
    r = get(mport, "/status.json")
    check(r.status == 200, "GET /status.json answered %s" % r.status)
    try:
        return json.loads(r.body.decode("utf-8"))
    except ValueError as e:
        fail("/status.json is not JSON (%s): %r" % (e, r.body[:200]))


def csp_hash(html, tag):
    m = re.search(r"<%s>(.*?)</%s>" % (tag, tag), html, re.S)
    check(m is not None, "the page has no <%s> element" % tag)
    return "'sha256-%s'" % base64.b64encode(hashlib.sha256(m.group(1).encode()).digest()).decode()


HOSTILE = ('<img src=x onerror="document.body.setAttribute(\'data-pwned\',1)">'
           '<script>document.body.setAttribute("data-pwned",2)</script>\n')


class Paced:
    """A light steady load for the charts: one keep-alive client, a request
    every 20 ms, every answer checked."""

    def __init__(self, port):
        self.port = port
        self.stop_ev = threading.Event()
        self.errors = []
        self.count = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        c = None
        while not self.stop_ev.wait(0.02):
            try:
                if c is None:
                    c = harness.Conn(self.port, timeout=10)
                c.send(http_request("GET", "/"))
                r = c.read_response()
                if r.status != 200:
                    self.errors.append("status %s" % r.status)
                self.count += 1
            except (harness.ConnClosed, harness.TestFailure, OSError) as e:
                self.errors.append("%s: %s" % (type(e).__name__, e))
                if c is not None:
                    c.close()
                c = None
        if c is not None:
            c.close()

    def stop(self):
        self.stop_ev.set()
        self.thread.join(15)
        check(not self.thread.is_alive(), "the load thread did not stop")
        check(self.count > 0 and not self.errors, "load: %d answers, errors %r" % (self.count, self.errors[:3]))


def test_page_self_contained(env):
    """/ is one HTML file: inline style and script allowed by hash in its
    CSP, nothing fetched from elsewhere, a viewport for phones."""
    d, ctl, mport, _ = start_page(env, 1, 1)
    r = get(mport, "/")
    check(r.status == 200, "GET / answered %s" % r.status)
    check((r.header("Content-Type") or "").startswith("text/html"), "Content-Type %r" % r.header("Content-Type"))
    check(r.header("X-Content-Type-Options") == "nosniff", "no X-Content-Type-Options: nosniff")
    html = r.body.decode("utf-8")
    check(html.lstrip().lower().startswith("<!doctype html>"), "not an HTML document: %r" % html[:60])
    check(re.search(r'<meta name="viewport" content="width=device-width', html), "no viewport meta")
    # No external assets: every src/href is local, no stylesheet or script
    # file at all, no @import or url() in the style.
    refs = re.findall(r'\b(?:src|href)\s*=\s*["\']?([^"\'\s>]*)', html, re.I)
    check(refs, "found no src/href at all: the pattern is wrong")
    bad = [u for u in refs if re.match(r"(?i)([a-z][a-z0-9+.-]*:)?//", u) or u.lower().startswith("http")]
    check(not bad, "external references: %r" % bad)
    check(not re.search(r"<script[^>]*\bsrc=", html, re.I), "a <script src=...>")
    check(not re.search(r'<link[^>]*rel="?stylesheet', html, re.I), "an external stylesheet")
    check("@import" not in html and "url(" not in html, "@import or url() in the page")
    check(html.count("<script>") == 1 and html.count("<style>") == 1, "expected one inline script and style")
    csp = r.header("Content-Security-Policy") or ""
    directives = dict((p.strip().split(" ", 1) + [""])[:2] for p in csp.split(";") if p.strip())
    check(directives.get("default-src") == "'none'", "CSP default-src is not 'none': %r" % csp)
    check(directives.get("script-src") == csp_hash(html, "script"),
          "CSP script-src %r is not the hash of the inline script %s" % (directives.get("script-src"),
                                                                         csp_hash(html, "script")))
    check(directives.get("style-src") == csp_hash(html, "style"), "CSP style-src is not the style's hash: %r" % csp)
    check(directives.get("connect-src") == "'self'", "CSP connect-src is not 'self': %r" % csp)
    check("unsafe-inline" not in csp and "unsafe-eval" not in csp, "CSP allows unsafe-*: %r" % csp)
    check(directives.get("frame-ancestors") == "'none'", "CSP frame-ancestors is not 'none': %r" % csp)
    check(r.header("Cache-Control") == "no-store", "Cache-Control %r" % r.header("Cache-Control"))
    # /metrics is still there, and HEAD / has the headers and no body.
    m = get(mport, "/metrics")
    check(m.status == 200 and b"cutover_active_color" in m.body, "GET /metrics: %s" % m.status)
    h = get(mport, "/", method="HEAD")
    check(h.status == 200 and h.body == b"" and h.header("Content-Length") == str(len(r.body)),
          "HEAD /: %s, body %d bytes, Content-Length %r" % (h.status, len(h.body), h.header("Content-Length")))


def test_read_only(env):
    """Nothing but GET and HEAD, on every path: nothing changes through
    this listener."""
    d, ctl, mport, _ = start_page(env, 1, 1)
    gen = ctl.generation()
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        for path in ("/", "/status.json", "/metrics"):
            r = get(mport, path, method=method, body=b"active=green" if method in ("POST", "PUT", "PATCH") else None)
            check(r.status == 405, "%s %s answered %s, not 405" % (method, path, r.status))
            check(r.header("Allow") == "GET, HEAD", "%s %s: Allow %r" % (method, path, r.header("Allow")))
    check(get(mport, "/switch").status == 404, "GET /switch is not 404")
    check(get(mport, "/status.json?switch=green").status == 200, "a query string changes nothing")
    check(ctl.active() == "blue" and ctl.generation() == gen, "the state changed through the metrics listener")


def test_status_json(env):
    """/status.json: the status --json answer, every server, the last 20
    history entries (as `history` has them) and the sample ring."""
    d, ctl, mport, bs = start_page(env, 2, 1)
    # 22 switches: more history than the page shows.
    for i in range(22):
        r = ctl.switch("green" if i % 2 == 0 else "blue")
        check(r.rc == 0, "switch %d: %r" % (i, r))
    r = get(mport, "/status.json")
    check(r.status == 200, "GET /status.json answered %s" % r.status)
    check(r.header("Content-Type") == "application/json", "Content-Type %r" % r.header("Content-Type"))
    check(r.header("Cache-Control") == "no-store", "Cache-Control %r" % r.header("Cache-Control"))
    check(r.header("X-Content-Type-Options") == "nosniff", "no X-Content-Type-Options: nosniff")
    s = json.loads(r.body.decode("utf-8"))
    st = ctl.status()
    for k in st:
        check(k in s, "/status.json lacks status --json member %r" % k)
    for k in ("ok", "active", "previous", "state", "generation", "min_healthy", "verdict"):
        check(s[k] == st[k], "/status.json %s=%r, status --json %r" % (k, s[k], st[k]))
    check(s["active"] == "blue" and s["generation"] == 22, "active %r generation %r" % (s["active"], s["generation"]))
    check(set(s["pools"]) == {"blue", "green"} and s["pools"]["blue"]["total"] == 2, "pools %r" % s["pools"])
    addrs = sorted((v["color"], v["address"]) for v in s["servers"])
    want = sorted([("blue", str(b.addr)) for b in bs["blue"]] + [("green", str(b.addr)) for b in bs["green"]])
    check(addrs == want, "servers %r, want %r" % (addrs, want))
    for v in s["servers"]:
        check(v["state"] == "up" and isinstance(v["latency_ms"], (int, float)), "server %r" % v)
    hist = ctl.history()
    check(len(hist) == 22, "history has %d entries, want 22" % len(hist))
    check(s["history"] == hist[-20:], "/status.json history is not the last 20 entries, oldest first")
    check(s["history"][-1]["generation"] == 22 and s["history"][-1]["to"] == "blue", "newest %r" % s["history"][-1])
    ser = s["series"]
    check(ser["interval_s"] == 1 and ser["capacity"] == 600, "series %r" % {k: ser[k] for k in ("interval_s", "capacity")})
    for c in ("blue", "green"):
        for k in ("requests", "errors", "p99_us"):
            a = ser[c][k]
            check(isinstance(a, list) and len(a) <= 600 and all(isinstance(x, int) and x >= 0 for x in a),
                  "series.%s.%s %r" % (c, k, a[:10]))
        check(len(ser[c]["requests"]) == len(ser[c]["errors"]) == len(ser[c]["p99_us"]) ==
              len(ser["blue"]["requests"]), "series arrays of unequal length")
    # One more switch shows at once (the history cache follows the file).
    check(ctl.switch("green").rc == 0, "switch to green")
    s = status_json(mport)
    check(s["active"] == "green" and s["history"][-1]["generation"] == 23 and len(s["history"]) == 20,
          "after a switch: active %r, newest %r" % (s["active"], s["history"][-1]))


def test_series_ring_fills(env):
    """Traffic shows in the ring a second at a time: every request and
    error counted once, p99 where there were requests, nothing for the
    idle color."""
    d, ctl, mport, bs = start_page(env, 1, 1)
    n_ok, n_err = 0, 0
    c = harness.Conn(d.port, timeout=10)
    t_end = time.monotonic() + 3.0
    while time.monotonic() < t_end:
        bad = (n_ok + n_err) % 8 == 7
        c.send(http_request("GET", "/status?code=500" if bad else "/"))
        r = c.read_response()
        check(r.status == (500 if bad else 200), "request answered %s" % r.status)
        if bad:
            n_err += 1
        else:
            n_ok += 1
        time.sleep(0.02)
    c.close()
    total = n_ok + n_err

    def settled():
        s = status_json(mport)["series"]
        return s if sum(s["blue"]["requests"]) == total else None
    # Sampling is once a second: a few seconds on a loaded machine.
    ser = wait_for(settled, 15, "the ring to count all %d requests" % total, 0.25)
    blue = ser["blue"]
    busy = [i for i, x in enumerate(blue["requests"]) if x > 0]
    check(len(busy) >= 2, "requests over 3 s fell into %d one-second samples: %r" % (len(busy), blue["requests"]))
    check(sum(blue["errors"]) == n_err, "errors %d in the ring, %d sent" % (sum(blue["errors"]), n_err))
    check(all(blue["p99_us"][i] > 0 for i in busy), "p99 missing where there were requests: %r" % blue["p99_us"])
    check(all(blue["p99_us"][i] == 0 for i, x in enumerate(blue["requests"]) if x == 0), "p99 without requests")
    check(sum(ser["green"]["requests"]) == 0 and sum(ser["green"]["errors"]) == 0, "green saw traffic: %r" % ser["green"])
    check(ser["end_ms"] is not None and abs(ser["end_ms"] / 1000 - time.time()) < 30, "end_ms %r" % ser["end_ms"])
    # The ring keeps moving with no traffic: zero samples are appended.
    n = len(blue["requests"])
    if n < 600:
        wait_for(lambda: len(status_json(mport)["series"]["blue"]["requests"]) > n, 10, "another sample")


def test_browser_follows_switch(env):
    """The page in headless chromium: live color, every server, history,
    charts; after `cutoverctl switch green` it shows green live within two
    seconds of the answer. Saves screenshots (desktop and phone sizes)."""
    # A pre_switch hook that vetoes while MARK exists, with MARK's content
    # as the reason: hostile text in the history, which the page must show
    # as text.
    mark = os.path.join(env.tmp, "veto-reason")
    hook = os.path.join(env.tmp, "pre-switch.sh")
    with open(hook, "w") as f:
        f.write('#!/bin/sh\nif [ -f "%s" ]; then cat "%s"; exit 1; fi\nexit 0\n' % (mark, mark))
    os.chmod(hook, 0o755)
    d, ctl, mport, bs = start_page(env, 2, 2, extra='hooks: { pre_switch = "%s"; timeout = "10s"; };\n' % hook)
    with open(mark, "w") as f:
        f.write(HOSTILE)
    r = ctl.switch("green")
    check(r.rc == 1 and "vetoed" in r.err, "the pre_switch hook must veto: %r" % r)
    os.unlink(mark)
    # Some history before the page opens, and traffic for the charts.
    check(ctl.switch("green").rc == 0 and ctl.switch("blue").rc == 0, "setup switches failed")
    traffic = Paced(d.port).start()

    b = Browser(env)
    url = "http://127.0.0.1:%d/" % mport
    b.navigate(url)
    b.wait("document.body.getAttribute('data-updates') >= 2", 30, "the page to load /status.json twice")
    check(b.eval("document.getElementById('live').textContent") == "blue", "the page does not show blue live")
    check(b.eval("document.body.getAttribute('data-live')") == "blue", "body data-live is not blue")
    check(b.eval("document.getElementById('conn').textContent") == "live", "connection indicator not live")
    shown = b.eval("Array.from(document.querySelectorAll('tr.server')).map(function (r) {"
                   " return [r.dataset.color, r.dataset.address, r.dataset.state]; })")
    want = sorted([["blue", str(x.addr), "up"] for x in bs["blue"]] + [["green", str(x.addr), "up"] for x in bs["green"]])
    check(sorted(shown) == want, "servers shown %r, want %r" % (shown, want))
    latency = b.eval("Array.from(document.querySelectorAll('tr.server td:nth-child(3)')).map(function (t) {"
                     " return t.textContent; })")
    check(all(re.match(r"^\d+\.\d ms$", x) for x in latency), "server latencies shown as %r" % latency)
    rows = b.eval("Array.from(document.querySelectorAll('#history-rows tr')).map(function (r) {"
                  " return r.textContent; })")
    check(len(rows) == 3, "history rows shown: %r" % rows)
    # The hook's text is shown as text: no element, no handler ran.
    reason = b.eval("document.querySelector('#history-rows tr:last-child td:last-child').textContent")
    check(HOSTILE.strip() in reason, "the vetoed switch's reason is shown as %r" % reason)
    check(b.eval("document.querySelectorAll('img, iframe, #history-rows script').length") == 0,
          "the hook's text became elements")
    check(b.eval("document.body.getAttribute('data-pwned')") is None, "the hook's text ran as script")
    check(b.eval("document.querySelector('#history-rows tr td:nth-child(4)').textContent") == "blue",
          "the newest history row (first) is not the switch to blue")
    b.wait("document.querySelector('#chart-requests polyline[data-color=blue]') !== null", 10, "the requests chart")
    check(b.eval("document.getElementById('generation').textContent") == "2", "generation not shown as 2")
    check(b.eval("document.getElementById('state').textContent").startswith("observing"), "state not observing")
    check(b.eval("document.getElementById('progress').textContent").endswith("s left"), "safety window not shown")

    # A few seconds of blue traffic in the charts before the switch.
    b.wait("window.cutoverStatusPage.last.series.blue.requests.filter(function (x) { return x > 0; })"
           ".length >= 4", 20, "four seconds of blue traffic in the page's data")

    # The switch: the page must follow within FOLLOW_S of the answer.
    p = ctl.popen("switch", "green")
    answer = p.stdout.readline()
    t_answer = time.monotonic()
    p.communicate(timeout=30)
    check(p.returncode == 0 and b'"ok":true' in answer, "switch green failed: %r" % answer)
    deadline = t_answer + 10
    while b.eval("document.body.getAttribute('data-live')") != "green":
        check(time.monotonic() < deadline, "the page did not show green live within 10 s")
        time.sleep(0.05)
    took = time.monotonic() - t_answer
    print("status page showed green live %.2fs after the switch's answer" % took)
    check(took <= FOLLOW_S, "the page showed green live %.2fs after the switch's answer (> %.1fs)" % (took, FOLLOW_S))
    check(b.eval("document.getElementById('live').textContent") == "green", "#live is not green")
    check(b.eval("document.querySelector('.pool[data-color=green] .badge.live') !== null"),
          "the green pool has no LIVE badge")
    b.wait("document.querySelectorAll('#history-rows tr').length === 4", 5, "the fourth history row")
    check(b.eval("document.querySelector('#history-rows tr td:nth-child(4)').textContent") == "green",
          "the newest history row is not the switch to green")

    # A ramp (DESIGN.md "Progressive shift"): rendered from the contract's
    # "ramp" object when /status.json has one. Rendered here from a copy of
    # the last answer with a ramp added, and read back in the same call
    # (the next poll redraws from the daemon).
    ramp = b.eval("""(function () {
        var last = window.cutoverStatusPage.last;
        var s = JSON.parse(JSON.stringify(window.cutoverStatusPage.last));
        s.state = "ramping";
        s.ramp = {target: "green", weight_pct: 10, steps: [1, 10, 50], step_left_s: 12};
        window.cutoverStatusPage.render(s);
        var r = [document.getElementById("progress-label").textContent,
                 document.getElementById("progress").textContent,
                 document.getElementById("progress-sub").textContent,
                 document.getElementById("progress-bar").value,
                 document.getElementById("state").textContent];
        window.cutoverStatusPage.render(last);
        return r;
    })()""")
    check(ramp == ["ramp to green", "10 % on green", "steps 1 > [10] > 50 > 100; next step in 12 s", 10, "ramping"],
          "ramp rendered as %r" % ramp)

    # Both colors in the charts: the traffic moved to green.
    b.wait("document.querySelector('#chart-requests polyline[data-color=green]') !== null && "
           "document.getElementById('now-requests').textContent.indexOf('green 0 ') < 0", 10,
           "green's requests in the chart")
    traffic.stop()

    out = env.artifact_dir()
    shot = b.screenshot(os.path.join(out, "statuspage.png"))
    print("screenshot: %s" % shot)
    # A phone: no sideways scrolling, and still the same content.
    b.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2, mobile=True)
    b.wait("document.documentElement.clientWidth <= 400", 10, "the phone viewport")
    time.sleep(1.2)  # one more refresh at that size
    over = b.eval("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    check(over <= 0, "on a 390 px wide phone the page scrolls sideways by %s px" % over)
    check(b.eval("document.getElementById('live').textContent") == "green", "phone: #live is not green")
    shot = b.screenshot(os.path.join(out, "statuspage-phone.png"))
    print("screenshot: %s" % shot)
    errs = b.errors()
    check(not errs, "the browser reported errors (CSP?): %r" % errs[:3])
