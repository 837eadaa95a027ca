"""The safety net through the real binaries (issue 4): smoke tests that block
a switch, auto-rollback on errors, health and latency (each with its
measured detection time, printed as "# detection ..." lines for the note),
no false latency rollback of an equally fast color, no rollback after the
window, no false verdict on too little traffic or after a failed rollback,
no rollback to an unhealthy color, the pre_switch veto and the notify hooks
with their environment, `cutoverctl deploy` succeeding and rolled back, and
preview routing from an allowed and a refused address.

cutoverctl is $CUTOVERCTL; helpers live in safety.py and switching.py.
"""

import json
import os
import re
import time

from harness import check, fail, wait_for
from safety import (AUTO_ROLLBACK_OFF, SMOKE_GREEN_BODY, PacedLoad, check_hook_env, first_after, guard_conf,
                    health_conf, hook_runs, hooks_conf, preview_conf, recording_hook, report, script,
                    stays, switch_conf, wait_history, wait_hook_runs, wait_load, wait_state)
from switching import Ctl, Load, sock_path, start


def served(d, path="/", headers=()):
    r = d.get(path, headers=headers)
    return r.status, r.header("X-Color"), r.body


def expect_served_by(d, color, n=4):
    for _ in range(n):
        st, col, body = served(d)
        check(st == 200 and col == color and body.endswith((" %s\n" % color).encode()),
              "expected traffic on %s, got %s X-Color %s body %r" % (color, st, col, body))


def records_now(load):
    with load.lock:
        return list(load.records)


def wait_seen(load, pred, timeout, what):
    """Waits until the load generator recorded a response satisfying pred."""
    def cond():
        for r in records_now(load):
            if pred(r):
                return r
        return None
    return wait_for(cond, timeout, what, interval=0.02)


# --------------------------------------------------------------------------
# 1. smoke tests


def test_failing_smoke_test_blocks_switch(env):
    blue = env.backend("blue1", "blue")
    green = env.backend("green1", "green")
    d, ctl = start(env, [blue], [green],
                   extra=health_conf() + switch_conf() + AUTO_ROLLBACK_OFF + SMOKE_GREEN_BODY)
    ctl.wait_confirmed("green")
    ctl.wait_confirmed("blue")

    # Healthy green passes its smoke test on demand.
    r = ctl.run("smoke", "green", as_json=False)
    check(r.rc == 0 and green.addr in r.out and "passed" in r.out,
          "smoke green against a good green should pass and list the server: %r" % r)

    green.ctl("/_ctl/fail?status=500")  # /healthz stays 200: only the smoke test sees it
    r = ctl.switch("green")
    check(r.rc == 1, "a switch to a green that fails its smoke test must exit 1: %r" % r)
    for part, what in (("smoke test 1", "the test"), ("GET /", "the request"),
                       (green.addr, "the server"), ("500", "what came back")):
        check(part in r.err, "the refusal should name %s (%r): %r" % (what, part, r.err))
    st = ctl.status()
    check(st["active"] == "blue" and st["generation"] == 0, "a refused switch changed the state: %s" % st)
    expect_served_by(d, "blue")

    # cutoverctl smoke green reports the failure: the table on stdout, the
    # summary on stderr, exit 1; --json carries the per-server entry.
    r = ctl.run("smoke", "green", as_json=False)
    check(r.rc == 1 and "FAILED" in r.out and green.addr in r.out and "500" in r.out
          and "smoke tests on green failed" in r.err,
          "smoke green against a failing green should exit 1 with the report: %r" % r)
    r = ctl.run("smoke", "green")
    entries = (r.json or {}).get("smoke") or []
    check(r.rc == 1 and r.json is not None and r.json.get("ok") is False and len(entries) == 1
          and entries[0].get("ok") is False and entries[0].get("status") == 500
          and entries[0].get("server") == green.addr and entries[0].get("path") == "/",
          "smoke green --json should carry one failed entry with status 500: %r" % r)

    # --force skips the smoke tests.
    r = ctl.switch("green", "--force")
    check(r.rc == 0 and ctl.active() == "green", "switch --force must skip the smoke tests: %r" % r)
    st, col, _ = served(d)
    check(col == "green" and st == 500, "after --force the request should reach green (500): %s %s" % (st, col))


# --------------------------------------------------------------------------
# 2-4. auto-rollback on errors, health, latency


def _switch_under_load(env, ctl, load, n_blue=200, n_green=200):
    wait_load(load, n_blue, what="responses on blue")
    r = ctl.switch("green")
    check(r.rc == 0, "switch to green failed: %r" % r)
    t_switch = r.t_end

    def enough():
        if sum(1 for x in records_now(load) if x[0] > t_switch and x[3] == "green") >= n_green:
            return True
        st = ctl.status()
        if st["active"] != "green":
            fail("rolled back before green was made to fail (%s): %s" % (st["verdict"], st["verdict_reason"]))
        return False
    wait_for(enough, 20, "%d responses from green after the switch" % n_green, interval=0.05)
    return t_switch


def test_auto_rollback_on_errors(env):
    blue = env.backend("blue1", "blue")
    green = env.backend("green1", "green")
    rb_hook, rb_rec = recording_hook(env, "rollback")
    d, ctl = start(env, [blue], [green],
                   extra=health_conf() + switch_conf("30s")
                   + guard_conf(error_rate=0.2, min_requests=20, window="5s")
                   + hooks_conf(rollback=rb_hook),
                   expect_errors=[r"auto-rollback \(error-rate\)"])
    ctl.wait_confirmed("green")
    ctl.wait_confirmed("blue")
    load = PacedLoad(d.port, nthreads=4, per_thread_rps=100).start()
    try:
        _switch_under_load(env, ctl, load)
        t_flip = time.monotonic()
        green.ctl("/_ctl/fail?status=500")
        entry, t_hist = wait_history(ctl, 20, "history to show an auto-rollback",
                                     event="rollback", trigger="auto-rollback")
        wait_seen(load, lambda x: x[0] > t_flip and x[3] == "blue", 10, "a response from blue after the rollback")
    finally:
        records = load.stop()
    first_fail = first_after(records, t_flip, lambda x: x[2] == 500 and x[3] == "green")
    check(first_fail is not None, "the load generator never saw a 500 from green")
    back = first_after(records, first_fail[1], lambda x: x[3] == "blue")
    check(back is not None, "no response from blue after the first 500")
    report("errors at %d req/s" % load.rate, first_500_to_blue=back[1] - first_fail[1], first_500_to_history=t_hist - first_fail[1],
           failing_flip_to_blue=back[1] - t_flip)
    st = ctl.status()
    check(st["active"] == "blue" and st["verdict"] == "rolled-back" and st["state"] == "stable",
          "after the error-rate rollback expected blue, verdict rolled-back, stable: %s" % st)
    check(entry.get("from") == "green" and entry.get("to") == "blue" and "error rate" in (entry.get("reason") or ""),
          "history entry should be green -> blue with an error-rate reason: %s" % entry)
    check(back[1] - first_fail[1] < 10, "rollback took %.2fs from the first 500" % (back[1] - first_fail[1]))
    runs = wait_hook_runs(rb_rec, 1, what="rollback")
    check_hook_env(runs[0], "rollback", EVENT="rollback", FROM="green", TO="blue",
                   GENERATION=str(st["generation"]), REASON=re.compile("error rate"))


def test_auto_rollback_on_health(env):
    blue = env.backend("blue1", "blue")
    green = env.backend("green1", "green")
    d, ctl = start(env, [blue], [green],
                   extra=health_conf(interval="200ms", fall=2) + switch_conf("30s")
                   + guard_conf(error_rate=0.2, min_requests=20, window="5s"),
                   expect_errors=[r"auto-rollback \(health\)"])
    ctl.wait_confirmed("green")
    ctl.wait_confirmed("blue")
    load = PacedLoad(d.port, nthreads=4, per_thread_rps=100).start()
    try:
        _switch_under_load(env, ctl, load)
        t_flip = time.monotonic()
        green.ctl("/_ctl/health?fail=1")
        entry, t_hist = wait_history(ctl, 20, "history to show an auto-rollback",
                                     event="rollback", trigger="auto-rollback")
        wait_seen(load, lambda x: x[0] > t_flip and x[3] == "blue", 10, "a response from blue after the rollback")
    finally:
        records = load.stop()
    back = first_after(records, t_flip, lambda x: x[3] == "blue")
    non200 = [x for x in records if x[0] > t_flip and x[2] != 200]
    report("health at %d req/s, interval 200ms, fall 2" % load.rate, health_fail_to_history=t_hist - t_flip, health_fail_to_blue=back[1] - t_flip)
    if non200:
        print("# health rollback: %d non-200 responses (%s) from %.2fs to %.2fs after the health flip"
              % (len(non200), ",".join(sorted(set(str(x[2]) for x in non200))),
                 min(x[1] for x in non200) - t_flip, max(x[1] for x in non200) - t_flip), flush=True)
    st = ctl.status()
    check(st["active"] == "blue" and st["verdict"] == "rolled-back",
          "after the health rollback expected blue, verdict rolled-back: %s" % st)
    check(entry.get("from") == "green" and entry.get("to") == "blue"
          and "servers up" in (entry.get("reason") or ""),
          "history entry should be green -> blue with a health reason: %s" % entry)
    check(back[1] - t_flip < 5, "health rollback took %.2fs" % (back[1] - t_flip))


LATENCY_EXTRA = (
    # A health timeout above the delay: the backend delays /healthz too, and
    # these tests are about latency, not health.
    health_conf(interval="1500ms", timeout="1400ms") + switch_conf("30s"))


def _latency_setup(env, min_requests):
    blue = env.backend("blue1", "blue")
    green = env.backend("green1", "green")
    d, ctl = start(env, [blue], [green],
                   extra=LATENCY_EXTRA
                   # Factor 20: on a busy 2-core machine the p99 of a fast
                   # loopback backend moves by several times from one second
                   # to the next (1 ms -> 3.3 ms seen), which must not count
                   # as a slower release; a 1 s delay still does.
                   + guard_conf(error_rate=0.5, min_requests=min_requests, window="5s", latency_factor=20),
                   expect_errors=[r"auto-rollback \(latency\)"])
    ctl.wait_confirmed("green")
    ctl.wait_confirmed("blue")
    return blue, green, d, ctl


def _blue_baseline(load):
    # Two seconds of blue traffic: the baseline is blue's p99 over the guard
    # window just before the switch.
    t0 = time.monotonic()
    wait_for(lambda: time.monotonic() - t0 >= 2 and load.count() >= 300, 20, "2s and 300 responses on blue")


def test_no_latency_rollback_of_an_equally_fast_green(env):
    """Both colors are the same backend binary on the same machine: the
    latency trigger must not fire on a switch in either direction. Full-speed
    load, min_requests 20 as in the error tests; four switches, each watched
    for a second (the false rollback seen here comes within ~50ms of a
    switch, when the guard judges a p99 over a few dozen milliseconds)."""
    blue, green, d, ctl = _latency_setup(env, 20)
    load = Load(d.port, nthreads=4).start()
    try:
        _blue_baseline(load)
        for i, target in enumerate(["green", "blue", "green", "blue"]):
            r = ctl.switch(target)
            check(r.rc == 0, "switch %d to %s failed: %r" % (i + 1, target, r))

            def still_on(target=target):
                st = ctl.status()
                if st["active"] != target:
                    fail("switch %d: the latency guard rolled back a %s as fast as the other color: "
                         "%s (%s)" % (i + 1, target, st["verdict"], st["verdict_reason"]))
                return True
            stays(still_on, 1, "unreachable")
    finally:
        load.stop()


def test_auto_rollback_on_latency(env):
    # min_requests 200: a few first requests on fresh upstream connections
    # must not decide the p99 (see the test above for that case).
    blue, green, d, ctl = _latency_setup(env, 200)
    load = PacedLoad(d.port, nthreads=4, per_thread_rps=100).start()
    try:
        _blue_baseline(load)
        _switch_under_load(env, ctl, load, 0, 400)
        st = ctl.status()
        check(st["active"] == "green", "rolled back before green was slowed down: %s" % st)
        t_flip = time.monotonic()
        green.ctl("/_ctl/delay?ms=1000")
        entry, t_hist = wait_history(ctl, 30, "history to show an auto-rollback",
                                     event="rollback", trigger="auto-rollback")
        wait_seen(load, lambda x: x[0] > t_flip and x[3] == "blue", 10, "a response from blue after the rollback")
    finally:
        records = load.stop()
    first_slow = first_after(records, t_flip, lambda x: x[3] == "green" and x[1] - x[0] >= 1.0)
    check(first_slow is not None, "the load generator never saw a slow response from green")
    back = first_after(records, first_slow[1], lambda x: x[3] == "blue")
    report("latency at %d req/s, green +1000ms" % load.rate, first_slow_to_blue=back[1] - first_slow[1], first_slow_to_history=t_hist - first_slow[1],
           delay_on_to_blue=back[1] - t_flip)
    st = ctl.status()
    check(st["active"] == "blue" and st["verdict"] == "rolled-back",
          "after the latency rollback expected blue, verdict rolled-back: %s" % st)
    check(entry.get("from") == "green" and entry.get("to") == "blue"
          and re.search(r"p99|latency", entry.get("reason") or ""),
          "history entry should be green -> blue with a latency reason: %s" % entry)
    check(back[1] - first_slow[1] < 10, "latency rollback took %.2fs" % (back[1] - first_slow[1]))


# --------------------------------------------------------------------------
# 5-7. no rollback after the window, low traffic, unhealthy previous color


def test_no_rollback_after_window_ended(env):
    blue = env.backend("blue1", "blue")
    green = env.backend("green1", "green")
    d, ctl = start(env, [blue], [green],
                   extra=health_conf() + switch_conf("2s") + guard_conf(error_rate=0.2, min_requests=5, window="5s"))
    ctl.wait_confirmed("green")
    r = ctl.switch("green")
    check(r.rc == 0, "switch to green failed: %r" % r)
    for _ in range(10):
        served(d)
    st = wait_state(ctl, "stable", 10)
    check(st["active"] == "green" and st["verdict"] == "passed",
          "the window should end with green live and verdict passed: %s" % st)
    gen = st["generation"]
    green.ctl("/_ctl/fail?status=500")
    for _ in range(40):
        s, col, _ = served(d)
        check(s == 500 and col == "green", "after the window, green should answer (500): %s %s" % (s, col))
    stays(lambda: (lambda s: s["active"] == "green" and s["generation"] == gen)(ctl.status()), 1.5,
          "rolled back after the safety window ended: %s" % ctl.status())


def test_low_traffic_gives_no_verdict(env):
    blue = env.backend("blue1", "blue")
    green = env.backend("green1", "green")
    d, ctl = start(env, [blue], [green],
                   extra=health_conf() + switch_conf("2s") + guard_conf(error_rate=0.2, min_requests=50, window="5s"))
    ctl.wait_confirmed("green")
    r = ctl.switch("green")
    check(r.rc == 0, "switch to green failed: %r" % r)
    for _ in range(5):
        served(d)
    verdicts = set()

    def stable():
        s = ctl.status()
        verdicts.add(s["verdict"])
        return s if s["state"] == "stable" else None
    st = wait_for(stable, 10, "the safety window to end", interval=0.05)
    check("passed" not in verdicts, "status said passed on 5 requests: %s" % verdicts)
    check(st["verdict"] == "insufficient-traffic" and "too little traffic" in (st["verdict_reason"] or ""),
          "verdict after 5 of 50 requests should be insufficient-traffic, too little traffic: %s" % st)
    check(st["active"] == "green", "green should stay live: %s" % st)
    e = [x for x in ctl.history() if x.get("event") == "window_end"]
    check(e and "too little traffic" in (e[-1].get("reason") or ""),
          "history window_end should say too little traffic: %s" % e)
    r = ctl.run("status", as_json=False)
    check(r.rc == 0 and "too little traffic" in r.out and "passed" not in r.out,
          "plain status should say too little traffic: %r" % r)


def test_no_rollback_to_unhealthy_previous_color(env):
    blue = env.backend("blue1", "blue")
    green = env.backend("green1", "green")
    rb_hook, rb_rec = recording_hook(env, "rollback")
    d, ctl = start(env, [blue], [green],
                   extra=health_conf() + switch_conf("30s")
                   + guard_conf(error_rate=0.2, min_requests=20, window="5s")
                   + hooks_conf(rollback=rb_hook),
                   expect_errors=[r"auto-rollback"])
    ctl.wait_confirmed("green")
    r = ctl.switch("green")
    check(r.rc == 0, "switch to green failed: %r" % r)
    blue.ctl("/_ctl/health?fail=1")
    ctl.wait_down("blue")
    green.ctl("/_ctl/fail?status=500")
    for _ in range(40):
        served(d)
    entry, _ = wait_history(ctl, 10, "history to show the failed auto-rollback",
                            event="rollback-failed", trigger="auto-rollback")
    st = ctl.status()
    check(st["active"] == "green" and st["verdict"] == "rollback-failed",
          "with blue down the daemon must stay on green (verdict rollback-failed): %s" % st)
    check("not rolled back" in (entry.get("reason") or "") and "blue" in entry.get("reason", ""),
          "history should say why it did not roll back: %s" % entry)
    check(any("[error]" in ln and "auto-rollback" in ln and "staying on green" in ln
              for ln in d.log_text().splitlines()),
          "the log should carry the auto-rollback error: %s" % d.log_tail(8))
    runs = wait_hook_runs(rb_rec, 1, what="rollback")
    check_hook_env(runs[0], "rollback", EVENT="rollback", FROM="green", TO="blue",
                   REASON=re.compile("error rate.*not rolled back"))
    stays(lambda: ctl.status()["active"] == "green", 0.6, "switched to the unhealthy blue")


def test_failed_rollback_not_called_passed_at_window_end(env):
    """After the guard tripped but could not roll back, the end of the window
    must not turn the verdict into "passed"."""
    blue = env.backend("blue1", "blue")
    green = env.backend("green1", "green")
    d, ctl = start(env, [blue], [green],
                   extra=health_conf() + switch_conf("3s")
                   + guard_conf(error_rate=0.2, min_requests=20, window="5s"),
                   expect_errors=[r"auto-rollback"])
    ctl.wait_confirmed("green")
    check(ctl.switch("green").rc == 0, "switch to green failed")
    blue.ctl("/_ctl/health?fail=1")
    ctl.wait_down("blue")
    green.ctl("/_ctl/fail?status=500")
    for _ in range(40):
        served(d)
    wait_history(ctl, 10, "history to show the failed auto-rollback", event="rollback-failed")
    st = wait_state(ctl, "stable", 10)
    check(st["active"] == "green" and st["verdict"] != "passed",
          "a window whose guard tripped (rollback failed) ended with verdict passed: %s (%s)"
          % (st["verdict"], st["verdict_reason"]))


# --------------------------------------------------------------------------
# 8. hooks


def test_pre_switch_hook_veto_and_timeout(env):
    blue = env.backend("blue1", "blue")
    green = env.backend("green1", "green")
    env_rec = os.path.join(env.tmp, "pre.env")
    veto = script(env, "veto.sh", 'echo "$CUTOVER_EVENT $CUTOVER_FROM $CUTOVER_TO $CUTOVER_GENERATION" > "%s"\n'
                  'echo "no way"\nexit 3\n' % env_rec)
    d, ctl = start(env, [blue], [green],
                   extra=health_conf() + switch_conf() + AUTO_ROLLBACK_OFF + hooks_conf(pre_switch=veto))
    ctl.wait_confirmed("green")
    r = ctl.switch("green")
    check(r.rc == 1 and "vetoed" in r.err and "no way" in r.err,
          "a pre_switch hook exiting 3 must veto with its output as the reason: %r" % r)
    with open(env_rec) as f:
        check(f.read().split() == ["pre_switch", "blue", "green", "1"],
              "pre_switch environment (EVENT FROM TO GENERATION) was %r" % open(env_rec).read())
    st = ctl.status()
    check(st["active"] == "blue" and st["generation"] == 0, "a vetoed switch changed the state: %s" % st)
    refused = [e for e in ctl.history() if e.get("event") == "refused"]
    check(refused and "no way" in (refused[-1].get("reason") or ""),
          "history should record the veto with its reason: %s" % refused)
    expect_served_by(d, "blue", 2)

    # A pre_switch hook that hangs is killed at hooks.timeout: refused.
    pidfile = os.path.join(env.tmp, "slow.pid")
    slow = script(env, "slow.sh", 'echo $$ > "%s"\nexec sleep 30\n' % pidfile)
    env.cutoverd(blue=[blue], green=[green], name="slow.conf",
                 extra=health_conf() + switch_conf() + AUTO_ROLLBACK_OFF
                 + hooks_conf(pre_switch=slow, timeout="1s"))
    ctl2 = Ctl(sock_path(env, "slow"))
    ctl2.wait_confirmed("green")
    r = ctl2.switch("green")
    check(r.rc == 1 and "timed out" in r.err, "a pre_switch hook past hooks.timeout must refuse the switch: %r" % r)
    check(r.t_end - r.t_start < 5, "the refusal took %.1fs with hooks.timeout 1s" % (r.t_end - r.t_start))
    with open(pidfile) as f:
        pid = int(f.read())
    wait_for(lambda: not os.path.exists("/proc/%d" % pid) or
             open("/proc/%d/stat" % pid).read().split()[2] == "Z", 5, "the timed-out hook (pid %d) to be killed" % pid)
    check(ctl2.active() == "blue", "the timed-out veto switched anyway: %s" % ctl2.status())


def test_notify_hooks_environment(env):
    blue = env.backend("blue1", "blue")
    green = env.backend("green1", "green")
    post, post_rec = recording_hook(env, "post_switch")
    rb, rb_rec = recording_hook(env, "rollback")
    we, we_rec = recording_hook(env, "window_end")
    d, ctl = start(env, [blue], [green],
                   extra=health_conf() + switch_conf("2s") + guard_conf(min_requests=50)
                   + hooks_conf(post_switch=post, rollback=rb, window_end=we))
    ctl.wait_confirmed("green")
    ctl.wait_confirmed("blue")

    check(ctl.switch("green").rc == 0, "switch to green failed")
    runs = wait_hook_runs(post_rec, 1, what="post_switch")
    check_hook_env(runs[0], "post_switch", EVENT="post_switch", FROM="blue", TO="green", GENERATION="1",
                   REASON="manual")
    # The window ends on its own after 2s: window_end with the verdict.
    runs = wait_hook_runs(we_rec, 1, what="window_end")
    check_hook_env(runs[0], "window_end", EVENT="window_end", FROM="blue", TO="green", GENERATION="1",
                   REASON=re.compile("too little traffic"))

    r = ctl.run("rollback")
    check(r.rc == 0, "manual rollback failed: %r" % r)
    runs = wait_hook_runs(rb_rec, 1, what="rollback")
    check_hook_env(runs[0], "rollback", EVENT="rollback", FROM="green", TO="blue", GENERATION="2",
                   REASON=re.compile("rollback"))

    # commit ends the window early: window_end again, with reason commit.
    check(ctl.switch("green").rc == 0, "second switch to green failed")
    r = ctl.run("commit", as_json=False)
    check(r.rc == 0 and "committed" in r.out, "commit should say committed: %r" % r)
    runs = wait_hook_runs(we_rec, 2, what="window_end")
    check_hook_env(runs[1], "window_end", EVENT="window_end", FROM="blue", TO="green", GENERATION="3",
                   REASON="commit")
    runs = wait_hook_runs(post_rec, 2, what="post_switch")
    check_hook_env(runs[1], "post_switch", GENERATION="3", FROM="blue", TO="green")
    r = ctl.run("commit", as_json=False)
    check(r.rc == 0 and "nothing to commit" in r.out, "a second commit should have nothing to do: %r" % r)
    check(len(hook_runs(we_rec)) == 2, "window_end ran again for a no-op commit: %s" % hook_runs(we_rec))


# --------------------------------------------------------------------------
# 9-10. deploy


def test_deploy_succeeds(env):
    blue = env.backend("blue1", "blue")
    green = env.backend("green1", "green")
    d, ctl = start(env, [blue], [green],
                   extra=health_conf() + switch_conf("3s") + guard_conf(error_rate=0.2, min_requests=20, window="5s"))
    ctl.wait_confirmed("blue")
    out = os.path.join(env.tmp, "deployed")
    load = Load(d.port, nthreads=1).start()
    try:
        wait_load(load, 20)
        r = ctl.run("deploy", "--run", "sh -c 'echo deploying to $CUTOVER_TARGET > %s'" % out,
                    "--timeout", "30s", as_json=False, timeout=60)
    finally:
        records = load.stop()
    check(r.rc == 0, "deploy should succeed: %r" % r)
    with open(out) as f:
        check(f.read() == "deploying to green\n", "CMD did not see CUTOVER_TARGET=green: %r" % open(out).read())
    check("green is live" in r.out and "passed" in r.out, "deploy should end saying green is live and passed: %r" % r)
    st = ctl.status()
    check(st["active"] == "green" and st["state"] == "stable" and st["verdict"] == "passed",
          "after deploy expected green, stable, passed: %s" % st)
    bad = [x for x in records if x[2] != 200]
    check(not bad, "%d failed requests during deploy, e.g. %s" % (len(bad), bad[:2]))
    expect_served_by(d, "green")


def test_deploy_failing_under_load_rolls_back(env):
    blue = env.backend("blue1", "blue")
    green = env.backend("green1", "green")
    d, ctl = start(env, [blue], [green],
                   extra=health_conf() + switch_conf("30s") + guard_conf(error_rate=0.2, min_requests=20, window="5s"),
                   expect_errors=[r"auto-rollback \(error-rate\)"])
    ctl.wait_confirmed("blue")
    load = Load(d.port, nthreads=4).start()
    try:
        wait_load(load, 100)
        # The "release" breaks green: every answer but /healthz is a 500.
        r = ctl.run("deploy", "--run", "curl -sf -o /dev/null http://%s/_ctl/fail?status=500" % green.addr,
                    "--timeout", "30s", as_json=False, timeout=60)
        t_end = time.monotonic()
        wait_seen(load, lambda x: x[0] > t_end and x[3] == "blue", 10, "a response from blue after deploy")
    finally:
        load.stop()
    check(r.rc == 1 and "rolled back" in r.err and "error rate" in r.err,
          "deploy of a failing release must exit 1 saying rolled back (error rate): %r" % r)
    check("switched to green" in r.out, "deploy should have reported the switch: %r" % r)
    st = ctl.status()
    check(st["active"] == "blue" and st["verdict"] == "rolled-back",
          "traffic should be back on blue after the failed deploy: %s" % st)
    expect_served_by(d, "blue")


# --------------------------------------------------------------------------
# 11. preview routing


def _echo(d, headers=()):
    r = d.get("/echo", headers=headers)
    check(r.status == 200, "/echo answered %s" % r.status)
    body = json.loads(r.body)
    return r.header("X-Color"), [k.lower() for k, v in body["headers"]]


def test_preview_from_allowed_address(env):
    blue = env.backend("blue1", "blue")
    green = env.backend("green1", "green")
    d, ctl = start(env, [blue], [green],
                   extra=health_conf() + switch_conf() + AUTO_ROLLBACK_OFF + preview_conf())
    ctl.wait_confirmed("green")
    check(ctl.active() == "blue", "blue should be active")
    color, names = _echo(d, [("X-Cutover-Color", "green")])
    check(color == "green", "X-Cutover-Color: green from 127.0.0.1 should reach green, got %s" % color)
    check("x-cutover-color" not in names, "the preview header reached the backend: %s" % names)
    color, names = _echo(d)
    check(color == "blue" and "x-cutover-color" not in names, "without the header traffic goes to blue: %s" % color)
    color, names = _echo(d, [("x-cutover-color", "blue")])
    check(color == "blue" and "x-cutover-color" not in names,
          "X-Cutover-Color: blue should reach blue without the header: %s %s" % (color, names))


def test_preview_from_refused_address(env):
    blue = env.backend("blue1", "blue")
    green = env.backend("green1", "green")
    d, ctl = start(env, [blue], [green],
                   extra=health_conf() + switch_conf() + AUTO_ROLLBACK_OFF + preview_conf(allowed=("10.9.9.9/32",)))
    ctl.wait_confirmed("green")
    color, names = _echo(d, [("X-Cutover-Color", "green")])
    check(color == "blue", "the preview header from outside preview.from must be ignored, got %s" % color)
    check("x-cutover-color" not in names, "the ignored preview header was forwarded: %s" % names)
