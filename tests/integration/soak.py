"""The soak (issue 9, item 14): many switches back and forth under
keep-alive and new-connection load, with health checks on. Counts failed
requests and misrouted ones (sent after a switch was acknowledged and
answered by the old color), and compares cutoverd's RSS and open
descriptors before and after.

Not a test module (no test_ prefix): test_soak.py runs a bounded variant in
the suite, bench/soak.py the full 1,000 switches.
"""

import os
import random
import time

from harness import binary_has_asan, check, rss_kib, wait_for
from switching import AUTO_ROLLBACK_OFF, Load, classify, start

# Health checks on, with a timeout that holds on a busy machine: with the
# switching tests' 150 ms, one late answer from each server of a color (seen
# once in 1,000 switches on a loaded 2-core machine) unconfirms the color and
# the next switch to it is rightly refused. Idle upstream connections close
# after 1 s so that the descriptor count comes back to its floor within a
# few seconds of the load stopping.
SOAK_HEALTH = ('health: { path = "/healthz"; interval = "1s"; timeout = "900ms"; '
               'rise = 2; fall = 2; expect_status = 200; };\n')
SOAK_EXTRA = (SOAK_HEALTH + 'switch: { min_healthy = 1; drain_timeout = "2s"; safety_window = "30s"; };\n'
              + AUTO_ROLLBACK_OFF)
SOAK_TIMEOUTS = {"upstream_idle": "1s"}
# ASan keeps freed memory in quarantine (256 MiB by default), which would
# read as growth; a small quarantine keeps RSS meaningful.
SOAK_ASAN = "quarantine_size_mb=16"


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def settle(d, ctl, seconds=2.0):
    """Waits, with no load, until nothing is in flight and idle upstream
    connections have timed out; returns (RSS KiB, descriptors), each the
    smallest of samples over `seconds` (health checks open short-lived
    connections of their own)."""
    def idle():
        p = ctl.status()["pools"]
        return p["blue"]["inflight"] == 0 and p["green"]["inflight"] == 0
    wait_for(idle, 30, "no request in flight")
    time.sleep(1.5)  # upstream_idle = 1s
    fds, rss = [], []
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        fds.append(nfds(d.pid))
        rss.append(rss_kib(d.pid))
        time.sleep(0.05)
    return min(rss), min(fds)


def start_load(port, keepalive, newconn):
    loads = []
    if keepalive:
        loads.append(Load(port, nthreads=keepalive).start())
    if newconn:
        loads.append(Load(port, nthreads=newconn, new_conn=True).start())
    return loads


def count(loads):
    return sum(x.count() for x in loads)


def stop_load(loads):
    records = []
    for x in loads:
        records += x.stop()
    return records


def switch_loop(ctl, targets, pause, deadline, log):
    """Switches to each target in turn, pausing up to `pause` s (random)
    after each acknowledgement; stops early at `deadline`. Returns
    ([(t_start, t_ack, target)], [failed switch descriptions])."""
    switches, failures = [], []
    for i, target in enumerate(targets):
        if time.monotonic() >= deadline:
            log("soak: time bound reached after %d of %d switches" % (i, len(targets)))
            break
        r = ctl.switch(target)
        if r.rc != 0:
            failures.append("switch %d to %s: %r" % (i + 1, target, r))
            if len(failures) >= 5:
                break
            continue
        switches.append((r.t_start, r.t_end, target))
        if pause:
            time.sleep(random.uniform(0, pause))
        if log and (i + 1) % 100 == 0:
            log("soak: %d switches" % (i + 1))
    return switches, failures


def exercised(records, switches):
    """How many switch periods saw at least one request sent after the
    acknowledgement and before the next switch started."""
    sent = sorted(r[0] for r in records)
    n, j = 0, 0
    for k, (_, ack, _) in enumerate(switches):
        nxt = switches[k + 1][0] if k + 1 < len(switches) else float("inf")
        while j < len(sent) and sent[j] < ack:
            j += 1
        if j < len(sent) and sent[j] < nxt:
            n += 1
    return n


def run(env, nswitches, max_seconds, keepalive=2, newconn=2, pause=0.05, warmup=10, log=None):
    """Runs the soak in env; returns a dict of figures (see report())."""
    log = log or (lambda msg: None)
    check(nswitches % 2 == 0 and warmup % 2 == 0, "even switch counts end on the starting color")
    blue = [env.backend("blue1", "blue"), env.backend("blue2", "blue")]
    green = [env.backend("green1", "green"), env.backend("green2", "green")]
    d, ctl = start(env, blue, green, extra=SOAK_EXTRA, timeouts=SOAK_TIMEOUTS, asan_options=SOAK_ASAN)
    ctl.wait_confirmed("blue", 20)
    ctl.wait_confirmed("green", 20)
    fig = {"switches_asked": nswitches, "keepalive_threads": keepalive, "newconn_threads": newconn}
    fig["rss_boot_kib"], fig["fds_boot"] = rss_kib(d.pid), nfds(d.pid)

    # Warm-up: the allocator, the upstream pools and the history file reach
    # their working size before the starting figures are taken.
    loads = start_load(d.port, keepalive, newconn)
    try:
        wait_for(lambda: count(loads) >= 200, 30, "200 responses before the warm-up switches")
        _, wfail = switch_loop(ctl, ["green", "blue"] * (warmup // 2), 0.02, float("inf"), None)
    finally:
        stop_load(loads)
    check(not wfail, "warm-up switch failed: %s" % "; ".join(wfail))
    fig["rss_start_kib"], fig["fds_start"] = settle(d, ctl)
    gen0 = ctl.generation()

    t0 = time.monotonic()
    loads = start_load(d.port, keepalive, newconn)
    try:
        wait_for(lambda: count(loads) >= 100, 30, "100 responses before the first switch")
        switches, failures = switch_loop(ctl, ["green", "blue"] * (nswitches // 2), pause,
                                         t0 + max_seconds, log)
        # One more period on the last color, so that its requests count too.
        n = count(loads)
        wait_for(lambda: count(loads) >= n + 50, 30, "50 responses after the last switch")
    finally:
        records = stop_load(loads)
    fig["duration_s"] = round(time.monotonic() - t0, 1)
    if switches and switches[-1][2] != "blue":  # stopped early on an odd count
        r = ctl.switch("blue")
        check(r.rc == 0, "switching back to blue: %r" % r)
    total, failed, misrouted, ambiguous, examples = classify(records, "blue", switches)
    fig.update(switches=len(switches), switch_failures=len(failures), requests=total, failed=failed,
               misrouted=misrouted, sent_during_a_switch=ambiguous,
               periods_exercised=exercised(records, switches),
               examples=examples + failures[:3])
    fig["generation_delta"] = ctl.generation() - gen0
    fig["rss_end_kib"], fig["fds_end"] = settle(d, ctl)
    fig["rss_growth_kib"] = fig["rss_end_kib"] - fig["rss_start_kib"]
    fig["asan"] = binary_has_asan(d.binary)
    return fig


def report(fig):
    return ("%(switches)d/%(switches_asked)d switches (%(switch_failures)d refused) in %(duration_s)ss under "
            "%(keepalive_threads)d keep-alive + %(newconn_threads)d new-connection clients: "
            "%(requests)d requests, %(failed)d failed, %(misrouted)d misrouted, %(sent_during_a_switch)d sent "
            "during a switch, %(periods_exercised)d periods exercised; RSS %(rss_boot_kib)d (boot) "
            "%(rss_start_kib)d -> %(rss_end_kib)d KiB (%(rss_growth_kib)+d); fds %(fds_boot)d (boot) "
            "%(fds_start)d -> %(fds_end)d" % fig) + ("; " + "; ".join(fig["examples"]) if fig["examples"] else "")


def verdict(fig, min_switches, rss_slack_kib):
    """Fails the test with the whole report unless the soak was clean."""
    msg = report(fig)
    check(fig["switch_failures"] == 0, "refused switches: " + msg)
    check(fig["switches"] >= min_switches, "only %d switches within the time bound: %s"
          % (fig["switches"], msg))
    check(fig["generation_delta"] == fig["switches"] + (fig["switches"] % 2),
          "generation moved by %d: %s" % (fig["generation_delta"], msg))
    check(fig["failed"] == 0, "failed requests: " + msg)
    check(fig["misrouted"] == 0, "misrouted requests: " + msg)
    check(fig["periods_exercised"] >= fig["switches"] // 2,
          "too few switch periods saw a request after the acknowledgement to judge: " + msg)
    check(fig["fds_end"] <= fig["fds_start"], "descriptors grew: " + msg)
    check(fig["rss_growth_kib"] <= rss_slack_kib, "RSS grew by more than %d KiB: %s" % (rss_slack_kib, msg))
