"""Helpers for the switching tests (issue 3): cutoverctl through the real
binary, the control socket spoken raw, a load generator that records the
color of every response, kill -9 and restart of cutoverd.

Not a test module (no test_ prefix): test_switch*.py import it.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import harness
from harness import _find_binary, check, fail, http_request, wait_for

# Fast health checks and a long safety window: a switch target is confirmed
# (rise passes) within about half a second.
HEALTH_FAST = ('health: { path = "/healthz"; interval = "200ms"; timeout = "150ms"; '
               'rise = 2; fall = 2; expect_status = 200; };\n')
SWITCH_DEFAULT = 'switch: { min_healthy = 1; drain_timeout = "2s"; safety_window = "30s"; };\n'
# Auto-rollback has tests of its own; here it would undo forced switches to
# a color that is down on purpose.
AUTO_ROLLBACK_OFF = 'auto_rollback: { enabled = false; };\n'
EXTRA_DEFAULT = HEALTH_FAST + SWITCH_DEFAULT + AUTO_ROLLBACK_OFF

SANITIZER_PATTERNS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")


def cutoverctl_path():
    return _find_binary("CUTOVERCTL", ["../../src/cutoverctl", "../../build/src/cutoverctl"])


def sock_path(env, tag="cutover"):
    return os.path.join(env.tmp, tag + ".sock")


def state_path(env, tag="cutover"):
    return os.path.join(env.tmp, tag + ".state")


def history_path(env, tag="cutover"):
    return state_path(env, tag) + ".history"


def start(env, blue, green, extra=EXTRA_DEFAULT, **kw):
    """cutoverd with fast health checks (by default) and a Ctl for it."""
    d = env.cutoverd(blue=blue, green=green, extra=extra, **kw)
    return d, Ctl(sock_path(env, kw.get("tag", "cutover")))


# --------------------------------------------------------------------------
# cutoverctl


class CtlResult:
    """One cutoverctl run: rc, parsed JSON answer (or None), stdout, stderr,
    the process id and the monotonic start and end times."""

    def __init__(self, args, rc, out, err, pid, t_start, t_end):
        self.args = args
        self.rc = rc
        self.out = out
        self.err = err
        self.pid = pid
        self.t_start = t_start
        self.t_end = t_end
        self.json = None
        line = out.strip()
        if line.startswith("{"):
            try:
                self.json = json.loads(line.splitlines()[-1])
            except ValueError:
                self.json = None

    def __iter__(self):  # rc, answer, stderr = ctl.run(...)
        return iter((self.rc, self.json, self.err))

    def __repr__(self):
        return "cutoverctl %s -> exit %s, out %r, err %r" % (
            " ".join(self.args), self.rc, self.out.strip()[:300], self.err.strip()[:300])


class Ctl:
    """Runs $CUTOVERCTL -s SOCKET [--json] ARGS, optionally as another user
    (runuser -u USER --) and with another binary."""

    def __init__(self, sock, binary=None, user=None):
        self.sock = sock
        self.binary = binary or cutoverctl_path()
        self.user = user

    def argv(self, args, as_json=True):
        cmd = [self.binary, "-s", self.sock] + (["--json"] if as_json else []) + list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--"] + cmd
        return cmd

    def popen(self, *args, as_json=True):
        penv = dict(os.environ)
        penv.pop("CUTOVER_SOCKET", None)
        penv.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        return subprocess.Popen(self.argv(args, as_json), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=penv)

    def finish(self, p, args, t_start, timeout=30):
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            fail("cutoverctl %s did not finish within %ss" % (" ".join(args), timeout))
        t_end = time.monotonic()
        out, err = out.decode(errors="replace"), err.decode(errors="replace")
        for pat in SANITIZER_PATTERNS:
            check(pat not in err, "cutoverctl %s: sanitizer report: %s" % (" ".join(args), err.strip()[:300]))
        return CtlResult(list(args), p.returncode, out, err, p.pid, t_start, t_end)

    def run(self, *args, as_json=True, timeout=30):
        t0 = time.monotonic()
        p = self.popen(*args, as_json=as_json)
        return self.finish(p, args, t0, timeout)

    def ok(self, *args, timeout=30):
        """Runs a command that must succeed; returns its JSON answer."""
        r = self.run(*args, timeout=timeout)
        check(r.rc == 0 and r.json is not None and r.json.get("ok") is True,
              "expected success: %r" % r)
        return r.json

    def status(self):
        return self.ok("status")

    def generation(self):
        return self.status()["generation"]

    def active(self):
        return self.status()["active"]

    def health(self, color=None):
        return self.ok("health", *([color] if color else []))["servers"]

    def history(self):
        return self.ok("history")["entries"]

    def wait_confirmed(self, color, timeout=10):
        """Waits until every server of color is up and confirmed (rise passes)."""
        def cond():
            srv = self.health(color)
            return srv and all(s["state"] == "up" and s["confirmed"] for s in srv)
        wait_for(cond, timeout, "every %s server up and confirmed" % color, interval=0.05)

    def wait_down(self, color, timeout=10):
        def cond():
            srv = self.health(color)
            return srv and all(s["state"] == "down" for s in srv)
        wait_for(cond, timeout, "every %s server down in `cutoverctl health %s`" % (color, color),
                 interval=0.05)

    def switch(self, color, *flags, timeout=30):
        return self.run("switch", color, *flags, timeout=timeout)


# --------------------------------------------------------------------------
# The control socket, raw


class RawCtl:
    """An AF_UNIX connection to the control socket, line by line."""

    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = bytearray()
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def read_line(self):
        """One answer line (without its newline), or None at EOF."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 1]
                return line
            if self.eof:
                return None
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                fail("no answer on the control socket within %.1fs (have %r)"
                     % (self.sock.gettimeout(), bytes(self.buf[:200])))
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                if not self.buf:
                    return None
                line = bytes(self.buf)
                self.buf.clear()
                return line
            self.buf += data

    def read_json(self, strict=True):
        """The next answer, parsed. strict: the line must be UTF-8 (as JSON
        text must be); otherwise bytes are taken as Latin-1."""
        line = self.read_line()
        check(line is not None, "control socket closed without an answer")
        try:
            return json.loads(line if strict else line.decode("latin-1"))
        except ValueError:
            fail("control answer is not %sJSON: %r" % ("UTF-8 " if strict else "", line[:200]))

    def command(self, line):
        self.send(line.encode() + b"\n")
        return self.read_json()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------
# Load generator


class Load:
    """nthreads client threads, each on its own keep-alive connection to the
    proxy, sending GET / back to back. Every response is recorded as
    (t_sent, t_done, status, color, detail) with monotonic times, t_sent
    taken just before the request was written. A failed exchange is
    recorded with status None and the error as detail, and the thread
    reconnects. new_conn: each request on a new connection instead
    (Connection: close, so the proxy closes first and the client's
    ephemeral ports are not held in TIME_WAIT)."""

    def __init__(self, port, nthreads=4, path="/", new_conn=False):
        self.port = port
        self.path = path
        self.nthreads = nthreads
        self.new_conn = new_conn
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.records = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(nthreads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def count(self):
        with self.lock:
            return len(self.records)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(15)
        check(not any(t.is_alive() for t in self.threads), "load threads did not stop")
        return list(self.records)

    def _run(self, idx):
        req = http_request("GET", self.path, host="test",
                           headers=[("Connection", "close")] if self.new_conn else ())
        conn = None
        out = []
        while not self.stop_ev.is_set():
            t_sent = time.monotonic()
            try:
                if conn is None:
                    conn = harness.Conn(self.port, timeout=10)
                t_sent = time.monotonic()
                conn.send(req)
                r = conn.read_response()
                t_done = time.monotonic()
                color = r.header("X-Color")
                body = r.body.decode("latin-1", "replace")
                detail = body.strip()
                if r.status == 200 and (color is None or not body.endswith(" %s\n" % color)):
                    detail = "body %r does not match X-Color %r" % (body, color)
                    color = "mismatch"
                out.append((t_sent, t_done, r.status, color, detail))
                if r.has_token("Connection", "close") or self.new_conn:
                    conn.close()
                    conn = None
            except (harness.ConnClosed, harness.TestFailure, OSError) as e:
                out.append((t_sent, time.monotonic(), None, None, "%s: %s" % (type(e).__name__, e)))
                if conn is not None:
                    conn.close()
                conn = None
            if len(out) >= 64:
                with self.lock:
                    self.records += out
                out = []
        with self.lock:
            self.records += out
        if conn is not None:
            conn.close()


def classify(records, initial, switches):
    """Checks each record against the switch timeline.

    switches: [(t_start, t_ack, target)] in order, not overlapping. A
    request sent before the first switch started must be served by
    initial; one sent after switch k was acknowledged and before switch k+1
    started must be served by switch k's target; one sent while a switch
    was in progress may be served by either color. So may one still in
    flight when the next switch started: sent before it, the proxy may yet
    have read it after (a worker that had not run yet), and then the next
    switch's target is the right answer.
    Returns (total, failed, misrouted, ambiguous, examples)."""
    failed = misrouted = ambiguous = 0
    examples = []
    for (t_sent, t_done, status, color, detail) in records:
        if status != 200:
            failed += 1
            if len(examples) < 5:
                examples.append("failed: status %s %s" % (status, detail[:120]))
            continue
        expect = initial
        nxt = None
        for (ts, ta, target) in switches:
            if t_sent < ts:
                nxt = (ts, ta, target)
                break
            if t_sent < ta:
                expect = None
                break
            expect = target
        if expect is None:
            ambiguous += 1
            continue
        if color != expect and nxt is not None and t_done >= nxt[0] and color == nxt[2]:
            ambiguous += 1
            continue
        if color != expect:
            misrouted += 1
            if len(examples) < 5:
                examples.append("misrouted: sent %.3fs, expected %s, got %s (%s)"
                                % (t_sent, expect, color, detail[:80]))
    return len(records), failed, misrouted, ambiguous, examples


# --------------------------------------------------------------------------
# cutoverd: kill -9, restart, state file


def kill9(d):
    """SIGKILLs a running harness.Daemon and marks it stopped so teardown
    does not count the kill as a crash. Returns its log text."""
    check(d.proc.poll() is None, "cutoverd died before the kill (status %s): %s"
          % (d.proc.returncode, d.log_tail()))
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    d.stopped = True
    d.log.close()
    text = d.log_text()
    for line in text.splitlines():
        for pat in SANITIZER_PATTERNS:
            check(pat not in line, "cutoverd log before kill -9: %s" % line.strip())
    return text


def stop(d):
    """Stops a daemon with SIGTERM (as teardown would) and fails on problems."""
    problems = d.stop()
    check(not problems, "stopping cutoverd: %s" % "; ".join(problems))


def restart(env, d, expect_errors=()):
    """Starts cutoverd again with the same configuration file and port."""
    nd = harness.Daemon(env, d.conf_path, d.port, expect_errors)
    env.daemons.append(nd)
    return nd


def read_state(path):
    """Parses the state file ("cutover-state 1" then "key value" lines)."""
    with open(path, "rb") as f:
        data = f.read()
    text = data.decode("ascii")
    lines = text.split("\n")
    check(lines[0] == "cutover-state 1", "state file %s starts with %r" % (path, lines[0]))
    check(text.endswith("\n"), "state file %s does not end with a newline: %r" % (path, text))
    out = {}
    for ln in lines[1:-1]:
        k, _, v = ln.partition(" ")
        out[k] = v
    check("active" in out and "generation" in out, "state file %s lacks keys: %r" % (path, text))
    out["generation"] = int(out["generation"])
    return out


def copy_ctl_for_others(env):
    """cutoverctl copied into a 0755 directory anyone can traverse."""
    os.chmod(env.tmp, 0o755)
    d = os.path.join(env.tmp, "bin")
    os.mkdir(d)
    os.chmod(d, 0o755)
    dst = os.path.join(d, "cutoverctl")
    shutil.copy2(cutoverctl_path(), dst)
    os.chmod(dst, 0o755)
    return dst


def inflight(status, color):
    return status["pools"][color]["inflight"]


def first_match(entries, **kv):
    for e in entries:
        if all(e.get(k) == v for k, v in kv.items()):
            return e
    return None


def matches(pattern, text):
    return re.search(pattern, text) is not None
