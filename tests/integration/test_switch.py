"""The cutover itself through the real binaries (issue 3): switching under
load without a failed or misrouted request, status fields, rollback,
refusal of an unhealthy target and --force, --dry-run, concurrent --if-gen,
kill -9 around switches, --wait draining, closing idle upstream connections
to the old color, and no spill-over from a color without healthy servers.

cutoverctl is $CUTOVERCTL; helpers live in switching.py.
"""

import random
import threading
import time

from harness import check, fail, http_request, respond, wait_for
from switching import (Ctl, Load, classify, inflight, kill9, read_state, restart, sock_path,
                       start, state_path, stop, EXTRA_DEFAULT)


def served(d, path="/"):
    """(status, X-Color, body) of one request on a fresh connection."""
    r = d.get(path)
    return r.status, r.header("X-Color"), r.body


def expect_served_by(d, color, n=4):
    for _ in range(n):
        st, col, body = served(d)
        check(st == 200 and col == color and body.endswith((" %s\n" % color).encode()),
              "expected traffic on %s, got %s X-Color %s body %r" % (color, st, col, body))


# --------------------------------------------------------------------------
# 1. switch under load


def test_switch_under_load_no_failed_or_misrouted(env):
    blue = [env.backend("blue1", "blue"), env.backend("blue2", "blue")]
    green = [env.backend("green1", "green"), env.backend("green2", "green")]
    d, ctl = start(env, blue, green)
    ctl.wait_confirmed("green")
    ctl.wait_confirmed("blue")
    gen0 = ctl.generation()
    load = Load(d.port, nthreads=4).start()
    switches = []
    try:
        wait_for(lambda: load.count() >= 200, 20, "200 responses before the first switch")
        for i, target in enumerate(["green", "blue"] * 3):
            r = ctl.switch(target)
            if r.rc != 0:
                fail("switch %d to %s failed: %r" % (i + 1, target, r))
            switches.append((r.t_start, r.t_end, target))
            n = load.count()
            t = time.monotonic()
            wait_for(lambda: load.count() >= n + 200 and time.monotonic() - t >= 0.3, 20,
                     "200 more responses after switch %d" % (i + 1))
    finally:
        records = load.stop()
    total, failed, misrouted, ambiguous, examples = classify(records, "blue", switches)
    # Each period between two switches must really have been exercised.
    per_period = []
    bounds = [(0, switches[0][0])] + [(switches[i][1], switches[i + 1][0] if i + 1 < len(switches)
                                       else float("inf")) for i in range(len(switches))]
    for lo, hi in bounds:
        per_period.append(sum(1 for rec in records if lo <= rec[0] < hi))
    msg = ("%d requests over %d switches: %d failed, %d misrouted, %d sent during a switch; "
           "per period %s; %s" % (total, len(switches), failed, misrouted, ambiguous, per_period,
                                  "; ".join(examples) or "-"))
    check(failed == 0 and misrouted == 0, msg)
    check(min(per_period) >= 50, "too few requests between switches to judge: " + msg)
    check(ctl.generation() == gen0 + len(switches),
          "generation %s after %d switches from %d" % (ctl.generation(), len(switches), gen0))


# --------------------------------------------------------------------------
# 2. status --json and generations


def check_status_shape(st, what):
    for key in ("ok", "active", "previous", "state", "generation", "window_left_s", "pools"):
        check(key in st, "%s: status --json lacks %r: %s" % (what, key, st))
    check(st["ok"] is True, "%s: ok is %r" % (what, st["ok"]))
    check(st["active"] in ("blue", "green"), "%s: active %r" % (what, st["active"]))
    check(st["previous"] in (None, "blue", "green"), "%s: previous %r" % (what, st["previous"]))
    check(st["state"] in ("stable", "observing"), "%s: state %r" % (what, st["state"]))
    check(type(st["generation"]) is int and st["generation"] >= 0,
          "%s: generation %r" % (what, st["generation"]))
    check(type(st["window_left_s"]) in (int, float) and st["window_left_s"] >= 0,
          "%s: window_left_s %r" % (what, st["window_left_s"]))
    check(sorted(st["pools"]) == ["blue", "green"], "%s: pools %r" % (what, st["pools"]))
    for color, p in st["pools"].items():
        for key in ("healthy", "total", "inflight"):
            check(type(p.get(key)) is int and p[key] >= 0,
                  "%s: pools.%s.%s is %r" % (what, color, key, p.get(key)))


def test_status_fields_and_generation(env):
    blue = [env.backend("blue1", "blue"), env.backend("blue2", "blue")]
    green = [env.backend("green1", "green")]
    d, ctl = start(env, blue, green)
    st = ctl.status()
    check_status_shape(st, "before any switch")
    check(st["active"] == "blue" and st["previous"] is None and st["state"] == "stable"
          and st["generation"] == 0 and st["window_left_s"] == 0,
          "before any switch expected blue, previous null, stable, generation 0, no window: %s" % st)
    check(st["pools"]["blue"]["total"] == 2 and st["pools"]["green"]["total"] == 1,
          "pool totals %s" % st["pools"])
    ctl.wait_confirmed("green")
    ctl.wait_confirmed("blue")
    st = ctl.status()
    check(st["pools"]["blue"]["healthy"] == 2 and st["pools"]["green"]["healthy"] == 1
          and st["pools"]["blue"]["inflight"] == 0 and st["pools"]["green"]["inflight"] == 0,
          "healthy pools, nothing in flight: %s" % st["pools"])

    a = ctl.ok("switch", "green")
    check(a.get("generation") == 1 and a.get("active") == "green",
          "switch green answered %s" % a)
    st = ctl.status()
    check_status_shape(st, "after switch green")
    check(st["active"] == "green" and st["previous"] == "blue" and st["state"] == "observing"
          and st["generation"] == 1 and 0 < st["window_left_s"] <= 30,
          "after switch green expected green, previous blue, observing, generation 1, "
          "window in (0, 30]: %s" % st)
    expect_served_by(d, "green")

    r = ctl.switch("green")
    check(r.rc == 0, "switching to the active color must be a no-op success: %r" % r)
    check(r.json.get("changed") is False, "no-op switch answered %s" % r.json)
    st = ctl.status()
    check(st["generation"] == 1 and st["active"] == "green" and st["previous"] == "blue",
          "no-op switch changed the state: %s" % st)

    ctl.ok("switch", "blue")
    st = ctl.status()
    check(st["active"] == "blue" and st["previous"] == "green" and st["generation"] == 2,
          "after switch blue expected blue, previous green, generation 2: %s" % st)

    ctl.ok("commit")
    st = ctl.status()
    check(st["state"] == "stable" and st["window_left_s"] == 0 and st["generation"] == 2,
          "after commit expected stable, no window, generation 2: %s" % st)

    r = ctl.run("status", as_json=False)
    check(r.rc == 0 and "blue" in r.out and not r.out.lstrip().startswith("{"),
          "plain status should print readable text naming blue: %r" % r)


# --------------------------------------------------------------------------
# 3. rollback


def test_rollback(env):
    d, ctl = start(env, [env.backend("blue1", "blue")], [env.backend("green1", "green")])
    r = ctl.run("rollback")
    check(r.rc == 1 and r.err.strip(), "rollback before any switch must be refused with a reason: %r" % r)
    st = ctl.status()
    check(st["active"] == "blue" and st["generation"] == 0 and st["previous"] is None,
          "a refused rollback changed the state: %s" % st)
    ctl.wait_confirmed("green")
    ctl.ok("switch", "green")
    expect_served_by(d, "green")
    r = ctl.run("rollback")
    check(r.rc == 0, "rollback after a switch failed: %r" % r)
    st = ctl.status()
    check(st["active"] == "blue" and st["previous"] == "green" and st["generation"] == 2,
          "after rollback expected blue, previous green, generation 2: %s" % st)
    expect_served_by(d, "blue")
    r = ctl.run("rollback")
    check(r.rc == 0 and ctl.active() == "green" and ctl.generation() == 3,
          "a second rollback should return to green at generation 3: %r / %s" % (r, ctl.status()))
    expect_served_by(d, "green")


# --------------------------------------------------------------------------
# 4. refusal while the target is unhealthy, --force, --dry-run


def test_refused_while_target_unhealthy_then_force(env):
    green = [env.backend("green1", "green"), env.backend("green2", "green")]
    d, ctl = start(env, [env.backend("blue1", "blue")], green)
    ctl.wait_confirmed("green")

    r = ctl.switch("green", "--dry-run")
    check(r.rc == 0, "dry-run against a healthy green should exit 0: %r" % r)
    st = ctl.status()
    check(st["active"] == "blue" and st["generation"] == 0,
          "--dry-run changed something: %s" % st)
    expect_served_by(d, "blue", 2)

    for g in green:
        g.ctl("/_ctl/health?fail=1")
    ctl.wait_down("green")

    r = ctl.switch("green")
    check(r.rc == 1, "switch to an unhealthy green must exit 1: %r" % r)
    check("green" in r.err, "the refusal reason should name green: %r" % r.err)
    st = ctl.status()
    check(st["active"] == "blue" and st["generation"] == 0, "a refused switch changed the state: %s" % st)
    expect_served_by(d, "blue", 3)

    r = ctl.switch("green", "--dry-run")
    check(r.rc == 1, "dry-run against an unhealthy green must exit 1: %r" % r)
    check(ctl.generation() == 0 and ctl.active() == "blue", "dry-run changed the state")

    r = ctl.switch("green", "--force")
    check(r.rc == 0, "switch green --force must succeed: %r" % r)
    st = ctl.status()
    check(st["active"] == "green" and st["generation"] == 1,
          "after --force expected green at generation 1: %s" % st)
    for _ in range(3):
        status, col, body = served(d)
        check(col != "blue" and b"blue" not in body,
              "after switching to green a request was served by blue: %s %r" % (status, body))


# --------------------------------------------------------------------------
# 5. concurrent --if-gen


def test_concurrent_if_gen_exactly_one_wins(env):
    d, ctl = start(env, [env.backend("blue1", "blue")], [env.backend("green1", "green")])
    ctl.wait_confirmed("green")
    ctl.wait_confirmed("blue")
    for i in range(5):
        target = "green" if i % 2 == 0 else "blue"
        gen = ctl.generation()
        args = ("switch", target, "--if-gen", str(gen))
        t0 = time.monotonic()
        procs = [ctl.popen(*args), ctl.popen(*args)]
        res = [ctl.finish(p, args, t0) for p in procs]
        rcs = sorted(r.rc for r in res)
        check(rcs == [0, 1], "round %d: two `switch %s --if-gen %d` exited %s: %s"
              % (i + 1, target, gen, [r.rc for r in res], res))
        loser = [r for r in res if r.rc == 1][0]
        check(loser.err.strip(), "round %d: the refused caller got no reason" % (i + 1))
        st = ctl.status()
        check(st["generation"] == gen + 1 and st["active"] == target,
              "round %d: expected %s at generation %d: %s" % (i + 1, target, gen + 1, st))


# --------------------------------------------------------------------------
# 6. kill -9 right after a switch; state file wins over initial


def test_kill9_after_switch_keeps_color_and_generation(env):
    blue, green = env.backend("blue1", "blue"), env.backend("green1", "green")
    d, ctl = start(env, [blue], [green], initial="blue")
    ctl.wait_confirmed("green")
    a = ctl.ok("switch", "green")
    kill9(d)
    check(a["generation"] == 1, "switch answered generation %s" % a.get("generation"))
    d2 = restart(env, d)
    st = ctl.status()
    check(st["active"] == "green" and st["generation"] == 1 and st["previous"] == "blue",
          "after kill -9 and restart (config initial blue) expected green at generation 1, "
          "previous blue: %s" % st)
    expect_served_by(d2, "green")


def test_state_file_wins_over_initial(env):
    blue, green = env.backend("blue1", "blue"), env.backend("green1", "green")
    d, ctl = start(env, [blue], [green], initial="green")
    check(ctl.active() == "green", "no state file: initial green should be active")
    ctl.wait_confirmed("blue")
    ctl.ok("switch", "blue")
    stop(d)
    check(read_state(state_path(env))["active"] == "blue", "state file does not say blue")
    d2 = restart(env, d)  # same config: initial = "green"
    st = ctl.status()
    check(st["active"] == "blue" and st["generation"] == 1,
          "restart with initial green after switching to blue: expected blue at generation 1: %s" % st)
    expect_served_by(d2, "blue")


# --------------------------------------------------------------------------
# 7. kill -9 at random moments during a loop of switches


def test_kill9_during_switch_loop_state_always_valid(env):
    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    blue, green = env.backend("blue1", "blue"), env.backend("green1", "green")
    d, ctl = start(env, [blue], [green])
    sp = state_path(env)
    for rnd_i in range(5):
        st0 = ctl.status()
        acked = {"gen": st0["generation"], "active": st0["active"], "n": 0, "err": None}
        stop_ev = threading.Event()

        def loop():
            target = "green" if acked["active"] == "blue" else "blue"
            while not stop_ev.is_set():
                r = ctl.switch(target, "--force")
                if r.rc != 0:
                    if r.rc not in (1, 3):
                        acked["err"] = repr(r)
                    return
                if r.json is None or r.json.get("generation") != acked["gen"] + 1:
                    acked["err"] = "unexpected answer %r after generation %d" % (r, acked["gen"])
                    return
                acked["gen"], acked["active"] = r.json["generation"], target
                acked["n"] += 1
                target = "green" if target == "blue" else "blue"

        t = threading.Thread(target=loop, daemon=True)
        t.start()
        delay = rnd.uniform(0.05, 0.5)
        time.sleep(delay)
        kill9(d)
        t.join(30)
        stop_ev.set()
        check(not t.is_alive(), "switch loop did not end after kill -9")
        what = "round %d (seed %d, kill after %.0f ms, %d switches acknowledged)" % (
            rnd_i + 1, seed, delay * 1000, acked["n"])
        check(acked["err"] is None, "%s: %s" % (what, acked["err"]))
        try:
            stf = read_state(sp)
        except (OSError, UnicodeDecodeError, ValueError) as e:
            fail("%s: state file unreadable: %s" % (what, e))
        check(stf["generation"] in (acked["gen"], acked["gen"] + 1),
              "%s: state file generation %d, last acknowledged %d" % (what, stf["generation"], acked["gen"]))
        if stf["generation"] == acked["gen"]:
            check(stf["active"] == acked["active"], "%s: state file says %s at the acknowledged "
                  "generation %d, acknowledged %s" % (what, stf["active"], acked["gen"], acked["active"]))
        d = restart(env, d)
        st = ctl.status()
        check(st["generation"] == stf["generation"] and st["active"] == stf["active"],
              "%s: restarted daemon says %s/%d, state file %s/%d"
              % (what, st["active"], st["generation"], stf["active"], stf["generation"]))


# --------------------------------------------------------------------------
# 11. switch --wait


def test_switch_wait_returns_after_old_color_drained(env):
    blue, green = env.backend("blue1", "blue"), env.backend("green1", "green")
    extra = EXTRA_DEFAULT.replace('drain_timeout = "2s"', 'drain_timeout = "8s"')
    d, ctl = start(env, [blue], [green], extra=extra)
    ctl.wait_confirmed("green")
    slow = {}

    def slow_request():
        try:
            r = d.get("/delay?ms=1500")
            slow["resp"] = (r.status, r.header("X-Color"), r.body)
        except Exception as e:  # noqa: BLE001 - reported below
            slow["resp"] = ("error", str(e), b"")
        slow["t_done"] = time.monotonic()

    t = threading.Thread(target=slow_request, daemon=True)
    t.start()
    wait_for(lambda: inflight(ctl.status(), "blue") == 1, 5, "status to show 1 request in flight on blue")
    args = ("switch", "green", "--wait")
    t0 = time.monotonic()
    p = ctl.popen(*args)
    seen = []
    while p.poll() is None:
        st = ctl.status()
        seen.append((st["active"], inflight(st, "blue")))
        time.sleep(0.05)
    r = ctl.finish(p, args, t0)
    t.join(10)
    elapsed = r.t_end - t0
    check(r.rc == 0 and r.json is not None, "switch green --wait failed: %r" % r)
    check(r.json.get("drained") is True, "switch --wait answered drained=%r: %s" % (r.json.get("drained"), r.json))
    check(slow.get("resp", (None,))[:2] == (200, "blue"),
          "the in-flight request should finish on blue: %r" % (slow.get("resp"),))
    check(elapsed >= 1.0, "switch --wait returned after %.2fs, before the 1.5s request drained" % elapsed)
    # t_done is taken by another Python thread, which a busy machine may
    # schedule late; a --wait that did not wait returns about 1.5s early.
    check(r.t_end >= slow["t_done"] - 0.3,
          "switch --wait returned %.2fs before the in-flight request finished" % (slow["t_done"] - r.t_end))
    check(("green", 1) in seen, "status during the wait never showed green active with 1 request "
          "in flight on blue: %s" % seen[:20])
    st = ctl.status()
    check(inflight(st, "blue") == 0 and inflight(st, "green") == 0, "in flight after the drain: %s" % st["pools"])


# --------------------------------------------------------------------------
# 13. idle upstream connections to the old color are closed


def _proxied_conn(raw, target):
    for rec in list(raw.conns):
        if any(q.target == target for q in rec.requests):
            return rec
    return None


def test_idle_upstream_to_old_color_closed_after_switch(env):
    raw = env.raw_backend()
    d, ctl = start(env, [raw], [env.backend("green1", "green")])
    r = d.get("/probe-idle")
    check(r.status == 200 and r.body == b"ok", "request to the raw blue backend: %s %r" % (r.status, r.body))
    rec = wait_for(lambda: _proxied_conn(raw, "/probe-idle"), 5, "the proxied request at the backend")
    time.sleep(0.3)
    check(not rec.closed, "the upstream connection was not kept alive after the response "
          "(cannot test closing it on switch)")
    ctl.wait_confirmed("green")
    ctl.ok("switch", "green")
    t0 = time.monotonic()
    # timeouts.upstream_idle is 10s: closed within 5s is closed by the switch.
    wait_for(lambda: rec.closed, 5.0, "the idle upstream connection to blue to be closed after the switch")
    check(time.monotonic() - t0 < 5.0, "closing took too long")


def _slow_handler(conn, rec, server):
    while True:
        req = conn.read_request()
        if req is None:
            return
        rec.requests.append(req)
        if req.target.startswith("/slow"):
            time.sleep(1.0)
        respond(conn, 200, b"ok")


def test_upstream_conn_of_request_draining_across_switch_closed(env):
    """A request in flight on blue during the switch finishes there; its
    upstream connection, idle from then on, belongs to the old color and
    must be closed too rather than kept for upstream_idle."""
    raw = env.raw_backend(_slow_handler)
    d, ctl = start(env, [raw], [env.backend("green1", "green")])
    ctl.wait_confirmed("green")
    out = {}

    def slow():
        with d.conn() as c:
            c.send(http_request("GET", "/slow"))
            r = c.read_response()
            out["r"] = (r.status, r.body)
            out["t"] = time.monotonic()
            # The client connection stays open: the proxy must still close
            # the upstream one.
            time.sleep(3)

    t = threading.Thread(target=slow, daemon=True)
    t.start()
    rec = wait_for(lambda: _proxied_conn(raw, "/slow"), 5, "the /slow request at the backend")
    ctl.ok("switch", "green")
    wait_for(lambda: "r" in out, 5, "the /slow response")
    check(out["r"] == (200, b"ok"), "/slow answered %r" % (out["r"],))
    wait_for(lambda: rec.closed, 5.0, "the upstream connection to blue, idle after its request drained "
             "across the switch, to be closed (it stays open until timeouts.upstream_idle)")
    t.join(5)


# --------------------------------------------------------------------------
# 14. no healthy server: 503, no spill-over


def test_no_healthy_server_503_never_spills_over(env):
    blue = env.backend("blue1", "blue")
    green = [env.backend("green1", "green"), env.backend("green2", "green")]
    d, ctl = start(env, [blue], green)
    ctl.wait_confirmed("green")
    for g in green:
        g.stop()
    r = ctl.switch("green", "--force")
    check(r.rc == 0, "switch green --force failed: %r" % r)
    seen = []
    with d.conn() as c:
        for i in range(10):
            c.send(http_request("GET", "/"))
            resp = c.read_response()
            seen.append((resp.status, resp.header("X-Color"), resp.body[:40]))
            if resp.has_token("Connection", "close"):
                break
    for _ in range(10):
        status, col, body = served(d)
        seen.append((status, col, body[:40]))
    bad = [s for s in seen if s[0] not in (502, 503) or s[1] is not None or b"blue" in s[2]]
    check(not bad, "with every green server stopped, expected 502/503 and never blue: %s" % bad)
    ctl.wait_down("green")
    after = [served(d) for _ in range(10)]
    check(all(s[0] == 503 and s[1] is None and b"blue" not in s[2] for s in after),
          "with every green server down expected 503 and never blue: %s" % after)
