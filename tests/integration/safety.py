"""Helpers for the safety-net tests (issue 4): configuration snippets for
smoke tests, the guard, hooks and preview; hook scripts that record their
CUTOVER_* environment; timing helpers that turn load-generator records
into detection times.

Not a test module (no test_ prefix): test_safety.py imports it.
"""

import os
import re
import time

import harness
from harness import check, fail, http_request, wait_for
from switching import AUTO_ROLLBACK_OFF, Load  # noqa: F401 (re-exported)


def switch_conf(safety_window="30s", min_healthy=1, drain_timeout="2s"):
    return ('switch: { min_healthy = %d; drain_timeout = "%s"; safety_window = "%s"; };\n'
            % (min_healthy, drain_timeout, safety_window))


def guard_conf(error_rate=0.2, min_requests=20, window="5s", latency_factor=None, enabled=True):
    text = "auto_rollback: { enabled = %s; error_rate = %s; min_requests = %d; window = \"%s\";" % (
        "true" if enabled else "false", error_rate, min_requests, window)
    if latency_factor is not None:
        text += " latency_factor = %s;" % latency_factor
    return text + " };\n"


def health_conf(interval="200ms", timeout="150ms", rise=2, fall=2):
    return ('health: { path = "/healthz"; interval = "%s"; timeout = "%s"; rise = %d; fall = %d; '
            'expect_status = 200; };\n' % (interval, timeout, rise, fall))


SMOKE_GREEN_BODY = 'smoke = ( { path = "/"; expect_status = 200; expect_body = "green"; } );\n'


def hooks_conf(timeout="5s", **paths):
    """hooks: { pre_switch = "/abs/path"; ...; timeout = "5s"; }"""
    parts = ['%s = "%s";' % (k, v) for k, v in sorted(paths.items())]
    parts.append('timeout = "%s";' % timeout)
    return "hooks: { %s };\n" % " ".join(parts)


def preview_conf(header="X-Cutover-Color", allowed=("127.0.0.1/32",)):
    return 'preview: { header = "%s"; from = ( %s ); };\n' % (
        header, ", ".join('"%s"' % a for a in allowed))


# --------------------------------------------------------------------------
# Hook scripts


def script(env, name, body):
    """An executable /bin/sh script in env.tmp (hooks need absolute paths)."""
    path = os.path.join(env.tmp, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    # The daemon may run as another user in other setups; here root, but the
    # temp dir must at least be traversable.
    os.chmod(env.tmp, 0o755)
    return path


def recording_hook(env, name):
    """A hook that appends its CUTOVER_* environment to env.tmp/NAME.env, one
    block per run ending with "--"; returns (script path, record path)."""
    rec = os.path.join(env.tmp, name + ".env")
    body = ('{ echo "EVENT=$CUTOVER_EVENT"; echo "FROM=$CUTOVER_FROM"; echo "TO=$CUTOVER_TO"; '
            'echo "GENERATION=$CUTOVER_GENERATION"; echo "REASON=$CUTOVER_REASON"; echo "--"; } >> "%s"\n'
            % rec)
    return script(env, name + ".sh", body), rec


def hook_runs(rec):
    """The runs recorded by recording_hook: a list of dicts."""
    try:
        with open(rec) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    runs, cur = [], {}
    for line in text.splitlines():
        if line == "--":
            runs.append(cur)
            cur = {}
        else:
            k, _, v = line.partition("=")
            cur[k] = v
    return runs


def wait_hook_runs(rec, n, timeout=10, what="hook"):
    return wait_for(lambda: hook_runs(rec) if len(hook_runs(rec)) >= n else None, timeout,
                    "%d run(s) of the %s hook recorded in %s" % (n, what, rec), interval=0.05)


def check_hook_env(run, what, **expect):
    """Each expected value is a string (exact) or a compiled regex (search)."""
    for k, v in expect.items():
        got = run.get(k)
        ok = (got is not None and v.search(got) is not None) if isinstance(v, re.Pattern) else got == v
        check(ok, "%s hook: CUTOVER_%s is %r, expected %s (whole run: %s)"
              % (what, k, got, v.pattern if isinstance(v, re.Pattern) else repr(v), run))


# --------------------------------------------------------------------------
# Status, history, timing


def wait_state(ctl, state, timeout=15):
    return wait_for(lambda: (lambda st: st if st["state"] == state else None)(ctl.status()),
                    timeout, "state %s" % state, interval=0.05)


def wait_history(ctl, timeout=15, what=None, **kv):
    """Polls history until an entry matches kv; returns (entry, monotonic
    time it was first seen)."""
    def cond():
        for e in ctl.history():
            if all(e.get(k) == v for k, v in kv.items()):
                return e, time.monotonic()
        return None
    return wait_for(cond, timeout, what or "a history entry with %s" % kv, interval=0.02)


def first_after(records, t, pred):
    """The first record (by completion time) done after t that satisfies
    pred(record), or None."""
    best = None
    for r in records:
        if r[1] > t and pred(r) and (best is None or r[1] < best[1]):
            best = r
    return best


def report(trigger, **times):
    """Prints the measured times in one '# detection' line for the note."""
    parts = ["%s %.2fs" % (k.replace("_", " "), v) for k, v in times.items() if v is not None]
    print("# detection (%s): %s" % (trigger, ", ".join(parts)), flush=True)


def wait_load(load, n, timeout=20, what="responses"):
    start = load.count()
    wait_for(lambda: load.count() >= start + n, timeout, "%d more %s from the load generator" % (n, what))


def stays(cond, seconds, what, interval=0.05):
    """Checks cond() holds throughout `seconds` (a negative assertion needs a
    bounded observation period); fails at the first moment it does not."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        v = cond()
        if not v:
            fail(what)
        time.sleep(interval)


class PacedLoad(Load):
    """Load at a fixed rate: each of nthreads threads sends one GET every
    1/per_thread_rps seconds (or as soon as the previous answer came, when
    answers are slower than that). The unpaced Load runs at tens of
    thousands of requests a second here, which would make the guard judge
    a few milliseconds of traffic; a known rate makes detection times
    comparable. Records as in switching.Load."""

    def __init__(self, port, nthreads=4, per_thread_rps=100, path="/"):
        Load.__init__(self, port, nthreads, path)
        self.interval = 1.0 / per_thread_rps
        self.rate = nthreads * per_thread_rps

    def _run(self, idx):
        req = http_request("GET", self.path, host="test")
        conn = None
        out = []
        next_t = time.monotonic() + self.interval * idx / self.nthreads
        while not self.stop_ev.is_set():
            delay = next_t - time.monotonic()
            if delay > 0:
                self.stop_ev.wait(delay)
                if self.stop_ev.is_set():
                    break
            next_t = max(next_t + self.interval, time.monotonic())
            t_sent = time.monotonic()
            try:
                if conn is None:
                    conn = harness.Conn(self.port, timeout=10)
                t_sent = time.monotonic()
                conn.send(req)
                r = conn.read_response()
                out.append((t_sent, time.monotonic(), r.status, r.header("X-Color"),
                            r.body.decode("latin-1", "replace").strip()))
                if r.has_token("Connection", "close"):
                    conn.close()
                    conn = None
            except (harness.ConnClosed, harness.TestFailure, OSError) as e:
                out.append((t_sent, time.monotonic(), None, None, "%s: %s" % (type(e).__name__, e)))
                if conn is not None:
                    conn.close()
                conn = None
            if len(out) >= 16:
                with self.lock:
                    self.records += out
                out = []
        with self.lock:
            self.records += out
        if conn is not None:
            conn.close()
