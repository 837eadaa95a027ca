"""Progress you can watch (issue 16, item 6) through the real binaries:
`cutoverctl status --watch` redraws until Ctrl-C, on a pipe as blocks and
on a terminal with ANSI escapes; `switch --wait` and `deploy` show the
daemon's progress on stderr, as plain lines per phase change when not on a
terminal and as one line redrawn with "\\r" on one.

Terminals are pseudo-terminals from os.openpty().
"""

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import threading
import time

from harness import check, fail, wait_for
from safety import guard_conf, health_conf, switch_conf
from switching import AUTO_ROLLBACK_OFF, HEALTH_FAST, RawCtl, SANITIZER_PATTERNS, sock_path, start

CLEAR = "\x1b[H\x1b[2J"
REDRAW = "\r\x1b[K"


def _env():
    penv = dict(os.environ)
    penv.pop("CUTOVER_SOCKET", None)
    penv.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    return penv


def _no_sanitizer(text, what):
    for pat in SANITIZER_PATTERNS:
        check(pat not in text, "%s: sanitizer report: %s" % (what, text.strip()[:300]))


class PtyRun:
    """cutoverctl ARGS with stdin, stdout and stderr on a pseudo-terminal
    200 columns wide; out collects everything it wrote."""

    def __init__(self, ctl, *args):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.what = "cutoverctl " + " ".join(args)
        self.p = subprocess.Popen(ctl.argv(args, as_json=False), stdin=slave, stdout=slave,
                                  stderr=slave, env=_env(), close_fds=True)
        os.close(slave)
        self.buf = b""
        self.eof = False

    @property
    def out(self):
        return self.buf.decode(errors="replace")

    def read_until(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while not cond(self.out):
            if self.eof or time.monotonic() > deadline:
                fail("%s: %s not seen within %ss (eof %s): %r" % (self.what, what, timeout, self.eof,
                                                                  self.out[-600:]))
            self._read(0.2)

    def finish(self, timeout=30):
        """Reads to the end; returns the exit status."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            if time.monotonic() > deadline:
                self.p.kill()
                self.p.wait()
                fail("%s did not finish within %ss: %r" % (self.what, timeout, self.out[-600:]))
            self._read(0.2)
        rc = self.p.wait(timeout=timeout)
        os.close(self.master)
        _no_sanitizer(self.out, self.what)
        return rc

    def _read(self, wait):
        r, _, _ = select.select([self.master], [], [], wait)
        if not r:
            return
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            data = b""
        if not data:
            self.eof = True
        self.buf += data


def _watch_on_pipe(ctl, *extra, seconds=2.5):
    args = ("status", "--watch") + extra
    p = subprocess.Popen(ctl.argv(args, as_json=False), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    time.sleep(seconds)
    if p.poll() is not None:
        fail("status --watch exited by itself (%s): %r" % (p.returncode, p.communicate()))
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        fail("status --watch did not end within 30s of SIGINT")
    out, err = out.decode(errors="replace"), err.decode(errors="replace")
    _no_sanitizer(err, "status --watch")
    return p.returncode, out, err


def test_status_watch_on_a_pipe(env):
    blue, green = env.backend("blue1", "blue"), env.backend("green1", "green")
    d, ctl = start(env, [blue], [green])
    ctl.wait_confirmed("green")
    once = ctl.run("status", as_json=False)
    check(once.rc == 0 and once.out.startswith("active:"), "plain status: %r" % once)
    rc, out, err = _watch_on_pipe(ctl)
    check(rc == 0, "status --watch should exit 0 on SIGINT, got %s: %r %r" % (rc, out[-300:], err))
    check(err == "", "status --watch wrote to stderr: %r" % err)
    check("\x1b" not in out, "status --watch on a pipe wrote escape sequences: %r" % out[:300])
    blocks = out.split("\n\n")
    check(len(blocks) >= 2, "status --watch gave %d block(s) in 2.5s, expected 2 or more: %r"
          % (len(blocks), out))
    for b in blocks:
        # Each block is what status prints (the window's seconds may differ).
        check(b.startswith("active:") and b.count("active:") == 1 and "green:" in b,
              "a status --watch block is not a status: %r" % b)
    check(blocks[0] + "\n" == once.out or blocks[0].split("\n")[:2] == once.out.split("\n")[:2],
          "the first block differs from status: %r vs %r" % (blocks[0], once.out))

    # --json: one answer per line, as status --json prints it.
    rc, out, err = _watch_on_pipe(ctl, "--json")
    lines = out.splitlines()
    check(rc == 0 and err == "" and len(lines) >= 2 and all(x.startswith('{"ok":true') for x in lines),
          "status --watch --json: exit %s, %r, %r" % (rc, out[:300], err))

    # The daemon never sees --watch: sent raw, it is an unknown option.
    raw = RawCtl(sock_path(env))
    ans = raw.command("status --watch")
    raw.close()
    check(ans.get("ok") is False and "--watch" in ans.get("error", ""),
          "the daemon should refuse 'status --watch': %s" % ans)


def test_status_watch_on_a_terminal(env):
    blue, green = env.backend("blue1", "blue"), env.backend("green1", "green")
    d, ctl = start(env, [blue], [green])
    ctl.wait_confirmed("green")
    t = PtyRun(ctl, "status", "--watch")
    t.read_until(lambda o: o.count("active:") >= 2, 20, "two redraws")
    t.p.send_signal(signal.SIGINT)
    rc = t.finish()
    check(rc == 0, "status --watch on a terminal should exit 0 on SIGINT, got %s: %r" % (rc, t.out[-300:]))
    check(t.out.startswith(CLEAR), "status --watch should start by clearing the screen: %r" % t.out[:60])
    check(t.out.count(CLEAR) >= 2 and t.out.count(CLEAR) == t.out.count("active:"),
          "each redraw should clear the screen first: %d clears, %d blocks: %r"
          % (t.out.count(CLEAR), t.out.count("active:"), t.out[:400]))


def _slow_request(d, ms, into):
    def run():
        try:
            r = d.get("/delay?ms=%d" % ms)
            into["resp"] = (r.status, r.header("X-Color"))
        except Exception as e:  # noqa: BLE001 - reported by the caller
            into["resp"] = ("error", str(e))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _inflight(ctl, color):
    return ctl.status()["pools"][color]["inflight"]


DRAIN_CONF = HEALTH_FAST + switch_conf("30s", drain_timeout="10s") + AUTO_ROLLBACK_OFF


def test_switch_wait_progress_lines_on_a_pipe(env):
    blue, green = env.backend("blue1", "blue"), env.backend("green1", "green")
    d, ctl = start(env, [blue], [green], extra=DRAIN_CONF)
    ctl.wait_confirmed("green")
    slow = {}
    t = _slow_request(d, 3000, slow)
    wait_for(lambda: _inflight(ctl, "blue") == 1, 10, "1 request in flight on blue")
    r = ctl.run("switch", "green", "--wait", as_json=False, timeout=60)
    t.join(15)
    check(r.rc == 0, "switch green --wait failed: %r" % r)
    check(r.out == "switched to green (generation 1); blue drained\n",
          "switch --wait's stdout changed: %r" % r.out)
    lines = r.err.splitlines()
    check("\r" not in r.err and "\x1b" not in r.err, "progress on a pipe holds \\r or escapes: %r" % r.err)
    check(lines and all(x.startswith("switch: ") for x in lines), "progress lines should start 'switch: ': %r"
          % r.err)
    check(any("observing green" in x and "blue draining (1 in flight)" in x for x in lines),
          "no progress line named the drain of blue while observing green: %r" % r.err)
    # About six polls in the 3s drain; the phase changed once at most.
    check(len(lines) <= 2, "a progress line per poll, not per phase: %r" % r.err)
    check(slow.get("resp") == (200, "blue"), "the in-flight request should finish on blue: %r" % slow)

    # --json keeps its one line and no progress.
    t = _slow_request(d, 2000, slow)
    wait_for(lambda: _inflight(ctl, "green") == 1, 10, "1 request in flight on green")
    r = ctl.run("switch", "blue", "--wait", timeout=60)
    t.join(15)
    check(r.rc == 0 and r.json is not None and r.json.get("drained") is True and r.err == "" and
          len(r.out.splitlines()) == 1, "switch --wait --json should print its answer alone: %r" % r)


def test_switch_wait_progress_on_a_terminal(env):
    blue, green = env.backend("blue1", "blue"), env.backend("green1", "green")
    d, ctl = start(env, [blue], [green], extra=DRAIN_CONF)
    ctl.wait_confirmed("green")
    slow = {}
    t = _slow_request(d, 3000, slow)
    wait_for(lambda: _inflight(ctl, "blue") == 1, 10, "1 request in flight on blue")
    run = PtyRun(ctl, "switch", "green", "--wait")
    rc = run.finish(60)
    t.join(15)
    check(rc == 0, "switch green --wait on a terminal failed (%s): %r" % (rc, run.out))
    check(run.out.count(REDRAW + "switch: observing green") >= 2,
          "the progress line should be redrawn in place with \\r: %r" % run.out[:600])
    check(run.out.rstrip().endswith("switched to green (generation 1); blue drained"),
          "the answer should follow the progress line: %r" % run.out[-300:])


DEPLOY_CONF = health_conf() + switch_conf("4s") + guard_conf(min_requests=20, window="4s")


def test_deploy_progress_lines_on_a_pipe(env):
    blue, green = env.backend("blue1", "blue"), env.backend("green1", "green")
    d, ctl = start(env, [blue], [green], extra=DEPLOY_CONF)
    ctl.wait_confirmed("blue")
    r = ctl.run("deploy", "--run", "true", "--timeout", "30s", as_json=False, timeout=90)
    check(r.rc == 0, "deploy should succeed: %r" % r)
    check("deploy: switched to green" in r.out and "green is live" in r.out,
          "deploy's milestones should stay on stdout: %r" % r)
    lines = r.err.splitlines()
    check("\r" not in r.err and "\x1b" not in r.err, "progress on a pipe holds \\r or escapes: %r" % r.err)
    obs = [x for x in lines if x.startswith("deploy: observing green")]
    check(obs and "guard saw" in obs[0] and "left" in obs[0],
          "no plain progress line for the safety window (phase, time left, guard): %r" % r.err)
    # A 4s window polled every 500 ms; without traffic nothing changes.
    check(len(obs) == 1, "a progress line per poll, not per phase: %r" % r.err)


def test_deploy_progress_on_a_terminal(env):
    blue, green = env.backend("blue1", "blue"), env.backend("green1", "green")
    d, ctl = start(env, [blue], [green], extra=DEPLOY_CONF)
    ctl.wait_confirmed("blue")
    run = PtyRun(ctl, "deploy", "--run", "true", "--timeout", "30s")
    rc = run.finish(90)
    check(rc == 0, "deploy on a terminal failed (%s): %r" % (rc, run.out))
    check(run.out.count(REDRAW + "deploy: observing green") >= 2,
          "the window's progress should be one line redrawn with \\r: %r" % run.out[-800:])
    check("\ndeploy: green is live" in run.out,
          "the verdict line should start on a line of its own: %r" % run.out[-300:])
