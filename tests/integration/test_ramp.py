"""Progressive shift (issue 12) through the real binaries: `cutoverctl switch
COLOR --ramp 1,10,50 [--step T]` steps on time, the measured share of
distinct clients per step, sticky and monotonic buckets, the ramp cookie
(only during ramps, its attributes, Secure on TLS), ramps by address, the
side-by-side analysis (a failing target is rolled back, too little traffic
holds), commit/rollback during a ramp, status/metrics, --wait exit codes,
a restart mid-ramp, preview headers winning over buckets.

The bucket of a key is computed here independently (FNV-1a 64 + fmix64,
the vectors of tests/unit/check_bucket.c), so every response's color is
checked against the weight the daemon reports, not only the share.
"""

import os
import re
import stat
import threading
import time
import uuid
import urllib.request

import harness
from harness import check, fail, http_request, wait_for
from switching import HEALTH_FAST, Ctl, history_path, read_state, restart, sock_path, state_path, start

M64 = (1 << 64) - 1


def bucket(key):
    """The daemon's bucket of key (bytes or str), in [0, 10000)."""
    if isinstance(key, str):
        key = key.encode()
    h = 0xcbf29ce484222325
    for c in key:
        h ^= c
        h = (h * 0x100000001b3) & M64
    h ^= h >> 33
    h = (h * 0xff51afd7ed558ccd) & M64
    h ^= h >> 33
    h = (h * 0xc4ceb9fe1a85ec53) & M64
    h ^= h >> 33
    return h % 10000


def expected(key, weight_pct, target="green", old="blue"):
    return target if bucket(key) < weight_pct * 100 else old


def extra(auto_rollback=False, safety_window="30s", step="10s", more="", ar_more=""):
    ar = ('auto_rollback: { enabled = %s; error_rate = 0.05; min_requests = 20; window = "30s"; %s};\n'
          % ("true" if auto_rollback else "false", ar_more))
    sw = ('switch: { min_healthy = 1; drain_timeout = "2s"; safety_window = "%s"; ramp_step = "%s"; };\n'
          % (safety_window, step))
    return HEALTH_FAST + sw + ar + more


def ask(port, cookie=None, headers=(), conn=None):
    """One GET / through the proxy: (color, Set-Cookie value or None, response)."""
    hdrs = list(headers)
    if cookie is not None:
        hdrs.append(("Cookie", "cutover_bucket=%s" % cookie))
    own = conn is None
    c = conn or harness.Conn(port, timeout=10)
    try:
        c.send(http_request("GET", "/", host="test", headers=hdrs))
        r = c.read_response()
    finally:
        if own:
            c.close()
    return r.header("X-Color"), r.header("Set-Cookie"), r


def batch(port, cookies, nconn=4):
    """GET / once per cookie over nconn keep-alive connections: {cookie: color}."""
    out = {}
    errors = []
    parts = [cookies[i::nconn] for i in range(nconn)]

    def run(part):
        try:
            with harness.Conn(port, timeout=15) as c:
                for ck in part:
                    color, setc, r = ask(port, ck, conn=c)
                    if r.status != 200 or setc is not None:
                        errors.append("cookie %s: status %s, Set-Cookie %r" % (ck, r.status, setc))
                    out[ck] = color
        except Exception as e:  # noqa: BLE001 - reported as the test's failure
            errors.append("%s: %s" % (type(e).__name__, e))

    threads = [threading.Thread(target=run, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(not errors, "batch: %s" % errors[:3])
    check(len(out) == len(cookies), "batch: %d answers for %d cookies" % (len(out), len(cookies)))
    return out


def metric(d_metrics_port, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % d_metrics_port, timeout=10) as r:
        text = r.read().decode()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r'^%s\{color="(\w+)"\} ([0-9.]+)$' % name, text, re.M)}


def wait_weight(ctl, pct, timeout=30):
    def cond():
        r = ctl.status().get("ramp")
        return r is not None and r["weight_pct"] == pct
    wait_for(cond, timeout, "the ramp at %d%%" % pct, interval=0.1)


def wait_ramp_over(ctl, timeout=60):
    wait_for(lambda: "ramp" not in ctl.status(), timeout, "the ramp to end", interval=0.1)
    return ctl.status()


def two(env, green_args=()):
    b = env.backend("blue1", "blue")
    g = env.backend("green1", "green", *green_args)
    return b, g


def hook_script(env, name):
    """An executable hook that appends its CUTOVER_* environment to a file."""
    out = os.path.join(env.tmp, name + ".out")
    path = os.path.join(env.tmp, name + ".sh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\necho \"$CUTOVER_EVENT|$CUTOVER_FROM|$CUTOVER_TO|$CUTOVER_REASON\" >> %s\n" % out)
    os.chmod(path, stat.S_IRWXU)
    return path, out


# --------------------------------------------------------------------------
# Steps on time, measured shares, stickiness and monotonicity, status, metric


def test_ramp_steps_shares_sticky(env):
    b, g = two(env)
    mport = harness.free_port()
    # 15s steps: a batch of 2000 requests (a few seconds under ASan on a
    # loaded machine) must fit inside one step.
    d, ctl = start(env, [b], [g], extra=extra(step="15s") + 'metrics: { listen = "127.0.0.1:%d"; };\n' % mport)
    ctl.wait_confirmed("green")
    m = metric(mport, "cutover_ramp_weight_ratio")
    check(m == {"blue": 1.0, "green": 0.0}, "weights before the ramp: %r" % m)
    # Outside a ramp: no cookie is set.
    color, setc, _ = ask(d.port)
    check(color == "blue" and setc is None, "before the ramp: %s, Set-Cookie %r" % (color, setc))

    ans = ctl.ok("switch", "green", "--ramp", "1,10,50")
    check(ans.get("changed") is True and ans.get("active") == "blue" and ans["ramp"]["target"] == "green",
          "switch --ramp answer: %r" % ans)
    st = ctl.status()
    check(st["state"] == "ramping" and st["active"] == "blue", "status during the ramp: %r" % st)
    r = st["ramp"]
    check(r["target"] == "green" and r["weight_pct"] == 1 and r["steps"] == [1, 10, 50]
          and isinstance(r["step_left_s"], int) and 0 <= r["step_left_s"] <= 15 and r["guarded"] is False,
          "status ramp object: %r" % r)
    check("on time alone" in r["analysis"], "unguarded ramp: status does not say so: %r" % r)
    m = metric(mport, "cutover_ramp_weight_ratio")
    check(m == {"blue": 0.99, "green": 0.01}, "weights at 1%%: %r" % m)

    cookies = [uuid.uuid4().hex for _ in range(2000)]
    on_target = {}
    shares = {}
    for pct in (1, 10, 50):
        wait_weight(ctl, pct)
        before = ctl.status().get("ramp", {}).get("weight_pct")
        t0 = time.monotonic()
        got = batch(d.port, cookies)
        took = time.monotonic() - t0
        after = ctl.status().get("ramp", {}).get("weight_pct")
        check(before == pct and after == pct,
              "the step moved during the batch (%s -> %s, the batch took %.1fs of the 15s step)"
              % (before, after, took))
        wrong = [ck for ck in cookies if got[ck] != expected(ck, pct)]
        check(not wrong, "at %d%%: %d clients not on their bucket's color, e.g. %s -> %s (bucket %d)"
              % (pct, len(wrong), wrong[0], got[wrong[0]], bucket(wrong[0])) if wrong else "")
        share = 100.0 * sum(1 for ck in cookies if got[ck] == "green") / len(cookies)
        shares[pct] = share
        print("at %d%%: 2000 clients in %.1fs, %.2f%% on green" % (pct, took, share))
        lo, hi = {1: (0.2, 2.5), 10: (6, 14), 50: (44, 56)}[pct]
        check(lo <= share <= hi, "at %d%%: %.1f%% of 2000 distinct clients on green" % (pct, share))
        # Monotonic: whoever was on the target stays there.
        moved_back = [ck for ck, c in on_target.items() if c == "green" and got[ck] != "green"]
        check(not moved_back, "at %d%%: %d clients moved back from green" % (pct, len(moved_back)))
        on_target = got
    print("measured shares: %s" % ", ".join("%d%% -> %.2f%%" % kv for kv in shares.items()))

    st = wait_ramp_over(ctl, timeout=60)
    check(st["active"] == "green" and st["state"] == "observing",
          "after the last step: an ordinary switch with its window: %r" % st)
    got = batch(d.port, cookies[:200])
    check(all(c == "green" for c in got.values()), "after 100%%: not everyone on green")
    color, setc, _ = ask(d.port)
    check(setc is None, "a cookie was set after the ramp ended: %r" % setc)
    m = metric(mport, "cutover_ramp_weight_ratio")
    check(m == {"blue": 0.0, "green": 1.0}, "weights after the ramp: %r" % m)
    events = [(e["event"], e.get("trigger")) for e in ctl.history()]
    check(events[-4:] == [("ramp", "manual"), ("ramp", "timer"), ("ramp", "timer"), ("switch", "manual")],
          "history of the ramp: %r" % events)


# --------------------------------------------------------------------------
# The cookie: only during ramps, attributes, sticky, Secure on TLS


def test_ramp_cookie_set_only_during_ramp(env):
    b, g = two(env)
    d, ctl = start(env, [b], [g], extra=extra(step="60s"))
    ctl.wait_confirmed("green")
    ctl.ok("switch", "green", "--ramp", "50")
    color, setc, _ = ask(d.port)
    check(setc is not None, "a request without the cookie during a ramp got no Set-Cookie")
    mt = re.fullmatch(r"cutover_bucket=([0-9a-f]{32}); Path=/; HttpOnly; SameSite=Lax", setc)
    check(mt is not None, "Set-Cookie %r: expected cutover_bucket=<32 hex>; Path=/; HttpOnly; SameSite=Lax" % setc)
    cid = mt.group(1)
    check(color == expected(cid, 50), "the first request went to %s, its new id's bucket %d says %s"
          % (color, bucket(cid), expected(cid, 50)))
    for _ in range(5):
        c2, s2, _ = ask(d.port, cid)
        check(c2 == color and s2 is None, "with its cookie: %s (was %s), Set-Cookie %r" % (c2, color, s2))
    # Ids differ per client (random), and an invalid value gets a new one.
    ids = {re.search(r"=([0-9a-f]+);", ask(d.port)[1]).group(1) for _ in range(20)}
    check(len(ids) == 20, "20 new clients got %d distinct ids" % len(ids))
    _, s3, _ = ask(d.port, "bad%value")
    check(s3 is not None and s3.startswith("cutover_bucket="), "an invalid cookie got no new one: %r" % s3)
    ctl.ok("rollback")
    st = ctl.status()
    check("ramp" not in st and st["active"] == "blue" and st["state"] == "stable",
          "after rollback during the ramp: %r" % st)
    for ck in (None, cid):
        c4, s4, _ = ask(d.port, ck)
        check(c4 == "blue" and s4 is None, "after the ramp: %s, Set-Cookie %r" % (c4, s4))
    h = ctl.history()[-1]
    check(h["event"] == "rollback" and h.get("trigger") == "manual" and "50%" in (h.get("reason") or ""),
          "history after rollback: %r" % h)


def test_ramp_cookie_secure_on_tls(env):
    from ops import TLSConn, certs, client_ctx, pair, start_tls
    cd = certs(env)
    b, g = two(env)
    d, ctl = start_tls(env, [pair(cd, "a")], blue=[b], green=[g], extra=extra(step="60s"))
    ctl.wait_confirmed("green")
    ctl.ok("switch", "green", "--ramp", "10")
    ctx = client_ctx(os.path.join(cd, "ca.pem"))
    with TLSConn(d.port, ctx, "a.test") as c:
        c.send(http_request("GET", "/", host="a.test"))
        r = c.read_response()
    setc = r.header("Set-Cookie")
    check(setc is not None and re.fullmatch(
        r"cutover_bucket=[0-9a-f]{32}; Path=/; HttpOnly; SameSite=Lax; Secure", setc),
        "Set-Cookie on a TLS listener: %r" % setc)


# --------------------------------------------------------------------------
# ramp_by = "address": the client address trusted_proxies defines


def test_ramp_by_address(env):
    b, g = two(env)
    more = 'trusted_proxies = ( "127.0.0.0/8" );\n'
    d, ctl = start(env, [b], [g], extra=extra(step="60s").replace(
        'ramp_step = "60s";', 'ramp_step = "60s"; ramp_by = "address";') + more)
    ctl.wait_confirmed("green")
    ctl.ok("switch", "green", "--ramp", "30")
    check(ctl.status()["ramp"]["by"] == "address", "status does not say the ramp is by address")
    n_green = 0
    for i in range(300):
        ip = "203.0.%d.%d" % (i // 250, i % 250 + 1)
        color, setc, _ = ask(d.port, headers=[("X-Forwarded-For", ip)])
        check(setc is None, "a ramp by address set a cookie: %r" % setc)
        check(color == expected(ip, 30), "client %s went to %s, its bucket %d says %s"
              % (ip, color, bucket(ip), expected(ip, 30)))
        # The same address is sticky, whatever cookie it sends.
        again, _, _ = ask(d.port, uuid.uuid4().hex, headers=[("X-Forwarded-For", ip)])
        check(again == color, "client %s moved from %s to %s" % (ip, color, again))
        n_green += color == "green"
    check(60 <= n_green <= 120, "%d of 300 addresses on green at 30%%" % n_green)


# --------------------------------------------------------------------------
# Analysis: a failing target is rolled back; too little traffic holds


def test_ramp_breach_rolls_back(env):
    b, g = two(env, green_args=("--fail", "500"))
    hook, hook_out = hook_script(env, "rollback")
    more = 'hooks: { rollback = "%s"; };\n' % hook
    d, ctl = start(env, [b], [g], extra=extra(auto_rollback=True, step="60s") + more,
                   expect_errors=(r"auto-rollback",))
    ctl.wait_confirmed("green")
    gen = ctl.generation()
    ctl.ok("switch", "green", "--ramp", "10,50")
    colors = []
    stop_at = time.monotonic() + 60
    while "ramp" in ctl.status():
        check(time.monotonic() < stop_at, "a target answering 500 was not rolled back within 60s")
        for _ in range(50):
            colors.append(ask(d.port)[0])
    st = ctl.status()
    check(st["active"] == "blue" and st["verdict"] == "rolled-back" and "error rate" in st["verdict_reason"],
          "after the breach: %r" % st)
    check(st["generation"] == gen, "a ramp's rollback changed the generation: %r" % st)
    exposure = 100.0 * colors.count("green") / len(colors)
    print("requests during the 10%% step: %d, on green: %.1f%%" % (len(colors), exposure))
    # About the step's weight (10 %, counted from a stopping point that
    # depends on green's own count, hence the margin), never the next step's.
    check(exposure < 20, "%.1f%% of the step's requests reached the failing target" % exposure)
    check(not any(e["event"] == "ramp" and e.get("trigger") == "timer" for e in ctl.history()),
          "the ramp moved past 10%% before the rollback: %r" % ctl.history())
    h = ctl.history()[-1]
    check(h["event"] == "rollback" and h.get("trigger") == "auto-rollback"
          and re.search(r"green error rate 100\.0% \(\d+ of \d+ requests\) against blue 0\.0%", h.get("reason", "")),
          "history entry of the breach: %r" % h)
    wait_for(lambda: os.path.exists(hook_out), 10, "the rollback hook to run")
    with open(hook_out) as f:
        line = f.read().strip().splitlines()[-1]
    check(line.startswith("rollback|green|blue|") and "error rate" in line, "rollback hook saw %r" % line)
    for _ in range(20):
        c, setc, _ = ask(d.port)
        check(c == "blue" and setc is None, "after the rollback: %s, Set-Cookie %r" % (c, setc))


def test_ramp_insufficient_traffic_holds(env):
    b, g = two(env)
    d, ctl = start(env, [b], [g], extra=extra(auto_rollback=True, step="1s"))
    ctl.wait_confirmed("green")
    ctl.ok("switch", "green", "--ramp", "5,50")
    # A trickle: far below min_requests (20) on green at 5%.
    for _ in range(10):
        ask(d.port)
    time.sleep(3)
    r = ctl.status().get("ramp")
    check(r is not None and r["weight_pct"] == 5 and r["holding"] is True and r["guarded"] is True
          and "insufficient traffic" in r["analysis"], "after 3s of 1s steps with no traffic: %r" % r)
    check(r["step_left_s"] == 0, "a holding step has time left: %r" % r)
    # Status in words says so too.
    out = ctl.run("status", as_json=False)
    check(out.rc == 0 and "holding" in out.out and "insufficient traffic" in out.out, "status text: %r" % out)
    # A switch to the old color ends it at 0% as a rollback does.
    ans = ctl.ok("switch", "blue")
    check(ans.get("changed") is True and ans.get("active") == "blue", "switch blue during the ramp: %r" % ans)
    st = ctl.status()
    check("ramp" not in st and st["state"] == "stable", "after switch blue: %r" % st)


def test_ramp_passes_with_traffic(env):
    b, g = two(env)
    d, ctl = start(env, [b], [g], extra=extra(auto_rollback=True, step="2s"))
    ctl.wait_confirmed("green")
    ctl.ok("switch", "green", "--ramp", "50")
    stop_at = time.monotonic() + 60
    while "ramp" in ctl.status():
        check(time.monotonic() < stop_at, "a healthy ramp with traffic did not complete within 60s: %r"
              % ctl.status())
        batch(d.port, [uuid.uuid4().hex for _ in range(100)], nconn=2)
    st = ctl.status()
    check(st["active"] == "green", "a healthy ramp ended on %r" % st)
    h = [e for e in ctl.history() if e["event"] == "switch"][-1]
    check(re.search(r"ramp completed .*green error rate 0\.0% \(\d+ of \d+ requests\), p99 ", h.get("reason", "")),
          "the completing switch's history lacks the figures: %r" % h)


# --------------------------------------------------------------------------
# commit during a ramp, refusals, --wait exit codes


def test_ramp_commit_and_refusals(env):
    b, g = two(env)
    d, ctl = start(env, [b], [g], extra=extra(step="60s"))
    ctl.wait_confirmed("green")
    ctl.ok("switch", "green", "--ramp", "10")
    r = ctl.run("switch", "green", "--ramp", "20")
    check(r.rc == 1 and "ramp to green is in progress" in r.err, "a second ramp: %r" % r)
    ans = ctl.ok("commit")
    check(ans.get("changed") is True, "commit during the ramp: %r" % ans)
    st = ctl.status()
    check(st["active"] == "green" and st["state"] == "stable" and "ramp" not in st
          and st["verdict"] == "committed", "after commit during the ramp: %r" % st)
    for _ in range(10):
        c, setc, _ = ask(d.port)
        check(c == "green" and setc is None, "after commit: %s, %r" % (c, setc))
    # A ramp while a safety window is open is refused.
    ctl.ok("switch", "blue")
    r = ctl.run("switch", "green", "--ramp", "10")
    check(r.rc == 1 and "safety window is open" in r.err, "a ramp during a window: %r" % r)


def test_ramp_wait_exit_codes(env):
    b, g = two(env)
    d, ctl = start(env, [b], [g], extra=extra(step="1s", safety_window="0s"))
    ctl.wait_confirmed("green")
    r = ctl.run("switch", "green", "--ramp", "10,50", "--step", "1s", "--wait", as_json=False, timeout=60)
    check(r.rc == 0 and "ramp completed" in r.out and "at 50%" in r.out,
          "switch --ramp --wait to the end: %r" % r)
    check(ctl.active() == "green", "after the completed ramp")
    ctl.wait_confirmed("blue")
    p = ctl.popen("switch", "blue", "--ramp", "10", "--step", "60s", "--wait", as_json=False)
    t0 = time.monotonic()
    wait_for(lambda: "ramp" in ctl.status(), 20, "the ramp to start")
    ctl.ok("rollback")
    r = ctl.finish(p, ["switch", "blue", "--ramp", "10", "--wait"], t0, timeout=30)
    check(r.rc == 1 and "rolled back" in r.err, "switch --ramp --wait rolled back: %r" % r)


# --------------------------------------------------------------------------
# Restart mid-ramp, preview, reload


def test_ramp_survives_restart(env):
    b, g = two(env)
    d, ctl = start(env, [b], [g], extra=extra(step="60s"))
    ctl.wait_confirmed("green")
    ctl.ok("switch", "green", "--ramp", "20,60")
    stt = read_state(state_path(env))
    check(stt.get("ramp_target") == "green" and stt.get("ramp_steps") == "20,60" and stt.get("ramp_step") == "0",
          "state file during the ramp: %r" % stt)
    cookies = [uuid.uuid4().hex for _ in range(200)]
    before = batch(d.port, cookies)
    harness_problems = d.stop()
    check(not harness_problems, "stopping cutoverd: %r" % harness_problems)
    d2 = restart(env, d)
    st = ctl.status()
    check(st["state"] == "ramping" and st["ramp"]["weight_pct"] == 20 and st["ramp"]["step"] == 1
          and st["active"] == "blue", "after a restart mid-ramp: %r" % st)
    after = batch(d2.port, cookies)
    check(before == after, "%d clients changed color across the restart"
          % sum(1 for ck in cookies if before[ck] != after[ck]))
    # A reload keeps the ramp.
    ctl.ok("reload")
    check(ctl.status()["ramp"]["weight_pct"] == 20, "a reload changed the ramp: %r" % ctl.status())
    check(batch(d2.port, cookies) == before, "clients moved across a reload")


def test_ramp_preview_wins(env):
    b, g = two(env)
    more = 'preview: { header = "X-Cutover-Color"; from = ( "127.0.0.0/8" ); };\n'
    d, ctl = start(env, [b], [g], extra=extra(step="60s") + more)
    ctl.wait_confirmed("green")
    ctl.ok("switch", "green", "--ramp", "50")
    on_green = next(ck for ck in (uuid.uuid4().hex for _ in range(1000)) if expected(ck, 50) == "green")
    on_blue = next(ck for ck in (uuid.uuid4().hex for _ in range(1000)) if expected(ck, 50) == "blue")
    check(ask(d.port, on_green)[0] == "green" and ask(d.port, on_blue)[0] == "blue", "buckets without preview")
    c, _, _ = ask(d.port, on_green, headers=[("X-Cutover-Color", "blue")])
    check(c == "blue", "preview blue with a green bucket went to %s" % c)
    c, _, _ = ask(d.port, on_blue, headers=[("X-Cutover-Color", "green")])
    check(c == "green", "preview green with a blue bucket went to %s" % c)


# --------------------------------------------------------------------------
# deploy --ramp


def test_ramp_deploy(env):
    b, g = two(env)
    d, ctl = start(env, [b], [g], extra=extra(step="1s", safety_window="1s"))
    r = ctl.run("deploy", "--run", "echo installing on $CUTOVER_TARGET", "--ramp", "20,50", "--step", "1s",
                as_json=False, timeout=90)
    check(r.rc == 0, "deploy --ramp: %r" % r)
    for want in ("installing on green", "deploy: ramp started: 20% (steps 20,50, each 1s)",
                 "deploy: ramp: green at 20% (step 1 of 2)", "deploy: ramp: green at 50% (step 2 of 2)",
                 "deploy: ramp completed: green takes every request", "deploy: green is live"):
        check(want in r.out, "deploy --ramp output lacks %r: %r" % (want, r.out))
    check(ctl.active() == "green", "after deploy --ramp")


def test_ramp_deploy_rolled_back(env):
    b, g = two(env)
    d, ctl = start(env, [b], [g], extra=extra(auto_rollback=True, step="30s"),
                   expect_errors=(r"auto-rollback",))
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                ask(d.port)
            except Exception:  # noqa: BLE001 - the daemon may be busy; keep going
                time.sleep(0.05)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    try:
        # The release breaks green: every answer 500 from now on.
        r = ctl.run("deploy", "--run", "curl -s '%s' >/dev/null" % g.url("/_ctl/fail?status=500"),
                    "--ramp", "10,50", as_json=False, timeout=90)
    finally:
        stop.set()
        t.join(15)
    check(r.rc == 1 and "ramp to green rolled back" in r.err and "error rate" in r.err,
          "deploy --ramp of a failing release: %r" % r)
    check(ctl.active() == "blue" and "ramp" not in ctl.status(), "after the failed deploy")


def test_ramp_switch_to_target_is_an_ordinary_switch(env):
    b, g = two(env)
    d, ctl = start(env, [b], [g], extra=extra(step="60s"))
    ctl.wait_confirmed("green")
    gen = ctl.generation()
    ctl.ok("switch", "green", "--ramp", "10,50")
    # In flight on blue while the switch happens: it finishes on blue.
    slow = harness.Conn(d.port, timeout=15)
    on_blue = next(ck for ck in (uuid.uuid4().hex for _ in range(1000)) if expected(ck, 10) == "blue")
    slow.send(http_request("GET", "/delay?ms=1500", host="test",
                           headers=[("Cookie", "cutover_bucket=%s" % on_blue)]))
    time.sleep(0.3)
    ans = ctl.ok("switch", "green")
    check(ans.get("changed") is True and ans.get("active") == "green", "switch green during the ramp: %r" % ans)
    r = slow.read_response()
    slow.close()
    check(r.status == 200 and r.header("X-Color") == "blue", "the request in flight: %s %s"
          % (r.status, r.header("X-Color")))
    st = ctl.status()
    check("ramp" not in st and st["state"] == "observing" and st["generation"] == gen + 1,
          "after a switch to the target during the ramp: %r" % st)
    stt = read_state(state_path(env))
    check("ramp_target" not in stt and stt["active"] == "green", "state file after the switch: %r" % stt)
    for _ in range(10):
        c, setc, _ = ask(d.port, on_blue)
        check(c == "green" and setc is None, "after the switch: %s, %r" % (c, setc))
