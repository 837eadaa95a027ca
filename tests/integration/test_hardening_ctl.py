"""Hardening (issue 9, items 3 and 4): running out of file descriptors never
spins, and the control socket cannot be hogged by a user who may connect.

Each test drives the real cutoverd with a hostile client and measures what
the daemon does: CPU time and log lines while descriptors are exhausted;
whether root's switch and rollback still get through while an unprivileged
user holds every connection it can; memory while a client pipelines commands
without reading the answers; how soon idle control connections are closed.
The tests run as root (like test_switch_ctl's): they change resource limits
and act as the user nobody.
"""

import os
import pwd
import resource
import select
import socket
import subprocess
import sys
import textwrap
import time

import harness
from harness import check, fail, free_port, http_request, rss_kib, wait_for
from switching import Ctl, RawCtl, EXTRA_DEFAULT, sock_path

CLK_TCK = os.sysconf("SC_CLK_TCK")
# The clients that run as nobody need an interpreter nobody may execute.
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def need_root():
    check(os.geteuid() == 0, "these tests change resource limits and act as nobody: run them as root")


def cpu_seconds(pid):
    """utime + stime of every thread of pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_share(pid, seconds):
    """The share of one core pid used over the next seconds."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def nofile_limit(n):
    """A preexec_fn: RLIMIT_NOFILE n, soft and hard (like ulimit -n n)."""
    def set_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return set_limit


def idle_clients(port, n):
    """n TCP connections to port that send nothing (connected, or waiting in
    a backlog). Sockets that cannot connect at once are dropped."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            continue
        socks.append(s)
    return socks


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def metrics_get(port, timeout=10):
    with harness.Conn(port, timeout=timeout) as c:
        c.send(http_request("GET", "/metrics", host="127.0.0.1:%d" % port))
        return c.read_response()


def start_with_metrics(env, blue, green, **kw):
    """cutoverd with two workers and metrics; kw goes to env.cutoverd."""
    mport = free_port()
    extra = EXTRA_DEFAULT + 'workers = 2;\nmetrics: { listen = "127.0.0.1:%d"; };\n' % mport
    d = env.cutoverd(blue=blue, green=green, extra=extra, **kw)
    return d, Ctl(sock_path(env)), mport


def accept_lines(d):
    return [l for l in d.log_text().splitlines() if "accept: " in l]


def check_no_server_down(d, what):
    down = [l for l in d.log_text().splitlines() if " is down" in l]
    check(not down, "%s: a healthy server was marked down: %s" % (what, down[:2]))


# --------------------------------------------------------------------------
# 3. descriptor exhaustion


def test_low_nofile_at_start_caps_connections_and_never_spins(env):
    """ulimit -n 256 and 600 idle clients (the issue's case): cutoverd warns at
    start that limits.max_connections needs more descriptors, accepts what
    the limit can carry, leaves the rest in the backlog, and control,
    metrics and health checks go on working."""
    need_root()
    b, g = env.backend("blue1", "blue"), env.backend("green1", "green")
    d, ctl, mport = start_with_metrics(env, [b], [g], preexec_fn=nofile_limit(256))
    ctl.wait_confirmed("blue")
    log = d.log_text()
    check("RLIMIT_NOFILE is 256" in log and "max_connections = 1000" in log,
          "no warning at start that RLIMIT_NOFILE 256 is too low for max_connections 1000: %s"
          % d.log_tail(8))
    clients = idle_clients(d.port, 600)
    try:
        time.sleep(1.0)  # let the workers take what they will
        share = cpu_share(d.pid, 3.0)
        check(share < 0.5, "cutoverd used %.0f%% of a core with 600 idle clients and 256 descriptors"
              % (share * 100))
        n = len(accept_lines(d))
        check(n < 20, "%d log lines about accept with 600 idle clients: %s" % (n, accept_lines(d)[:3]))
        t0 = time.monotonic()
        r = ctl.run("status", timeout=15)
        check(r.rc == 0 and r.json and r.json.get("ok") is True,
              "cutoverctl status with 600 idle clients and 256 descriptors: %r" % r)
        check(time.monotonic() - t0 < 5, "status took %.1fs" % (time.monotonic() - t0))
        m = metrics_get(mport)
        check(m.status == 200 and b"cutover_server_up" in m.body,
              "/metrics with 600 idle clients answered %s" % m.status)
        time.sleep(1.0)  # five health-check intervals
        st = ctl.status()
        check(st["pools"]["blue"]["healthy"] == 1,
              "blue is not healthy with 600 idle clients: %s" % st["pools"]["blue"])
        check_no_server_down(d, "600 idle clients and 256 descriptors")
    finally:
        close_all(clients)
    # The clients are gone: new requests are served again.
    r = wait_for(lambda: _get_ok(d), 15, "a request to be served after the idle clients left")
    check(r, "no request served after the idle clients left")


def _get_ok(d):
    try:
        return d.get("/").status == 200
    except (harness.TestFailure, harness.ConnClosed, OSError):
        return False


def test_descriptors_exhausted_at_run_time_back_off_and_stay_local(env):
    """The descriptor limit is lowered under the running daemon, then 600
    idle clients take every descriptor: the workers' listeners, the
    control socket and the metrics listener back off instead of spinning,
    the condition is logged a few times with a count, health checks and
    live requests that fail with EMFILE do not mark the server down (the
    requests get 503), and everything answers again once descriptors free."""
    need_root()
    b, g = env.backend("blue1", "blue"), env.backend("green1", "green")
    # No kept-alive upstream connections: every request must connect.
    d, ctl, mport = start_with_metrics(env, [b], [g], upstream={"keepalive": 0})
    ctl.wait_confirmed("blue")
    old = resource.prlimit(d.pid, resource.RLIMIT_NOFILE)
    keeper = d.conn()  # accepted now: it will ask for an upstream when none can be opened
    keeper.send(http_request("GET", "/"))
    check(keeper.read_response().status == 200, "the first request failed")
    limit = open_fds(d.pid) + 24
    resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (limit, old[1]))
    clients = []
    late = []
    try:
        clients = idle_clients(d.port, 600)
        wait_for(lambda: open_fds(d.pid) >= limit - 1, 15,
                 "the idle clients to take every descriptor (limit %d)" % limit)
        # The main thread's listeners meet EMFILE too.
        late.append(socket.create_connection(("127.0.0.1", mport), timeout=10))
        late[-1].sendall(http_request("GET", "/metrics", host="127.0.0.1"))
        cs = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cs.connect(sock_path(env))
        cs.sendall(b"status\n")
        late.append(cs)
        # Live traffic: the upstream connect fails with EMFILE, more times
        # than health.fall.
        codes = []
        for _ in range(4):
            keeper.send(http_request("GET", "/"))
            codes.append(keeper.read_response().status)
        check(all(c == 503 for c in codes),
              "requests whose upstream connect met EMFILE answered %s, expected 503" % codes)
        share = cpu_share(d.pid, 3.0)
        check(share < 0.5, "cutoverd used %.0f%% of a core with its descriptors exhausted" % (share * 100))
        lines = accept_lines(d)
        check(any("Too many open files" in l for l in lines),
              "no accept failure logged although descriptors ran out: %s" % d.log_tail(5))
        check(len(lines) < 20, "%d log lines about accept in about 4s: %s" % (len(lines), lines[:3]))
        check_no_server_down(d, "EMFILE on health checks and live requests")
    finally:
        close_all(clients)
    resource.prlimit(d.pid, resource.RLIMIT_NOFILE, old)
    # The connections that waited are served now.
    for s in late:
        s.settimeout(15)
    data = b""
    try:
        while b"cutover_server_up" not in data:
            chunk = late[0].recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    check(b"200 OK" in data[:64] and b"cutover_server_up" in data,
          "the metrics request made while out of descriptors was not answered afterwards: %r" % data[:100])
    # Those 503s are counted as local, not as the color's upstream errors.
    with socket.create_connection(("127.0.0.1", mport), timeout=10) as ms:
        ms.sendall(http_request("GET", "/metrics", host="127.0.0.1", headers=[("Connection", "close")]))
        text = b""
        while True:
            chunk = ms.recv(65536)
            if not chunk:
                break
            text += chunk
    check(b'cutover_upstream_errors_total{color="blue",kind="local"} 4' in text,
          "the 503s for want of descriptors are not counted as kind=\"local\": %r"
          % [l for l in text.splitlines() if b"upstream_errors" in l])
    ans = b""
    try:
        while not ans.endswith(b"\n"):
            chunk = late[1].recv(65536)
            if not chunk:
                break
            ans += chunk
    except socket.timeout:
        pass
    check(b'"ok":true' in ans, "the control command sent while out of descriptors got %r" % ans[:100])
    close_all(late)
    keeper.send(http_request("GET", "/"))
    check(keeper.read_response().status == 200, "no 200 once descriptors were free again")
    st = ctl.status()
    check(st["pools"]["blue"]["healthy"] == 1, "blue not healthy afterwards: %s" % st["pools"]["blue"])
    check_no_server_down(d, "after the descriptors came back")
    keeper.close()


# --------------------------------------------------------------------------
# 4. the control socket


HOG = textwrap.dedent("""
    import socket, sys, time
    path, n, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.setblocking(False)
        socks.append(s)
    print("connected", len(socks), flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for s in socks:
            try:
                s.send(b"\\n")
                s.recv(4096)
            except OSError:
                pass
        time.sleep(0.5)
""")


def start_open_socket(env, extra_cfg=""):
    """cutoverd whose control socket anyone may connect to (mode 0666), in a
    directory nobody can traverse."""
    b, g = env.backend("blue1", "blue"), env.backend("green1", "green")
    port = free_port()
    sock = sock_path(env)
    text = harness.config_text(env, port, [b.addr], [g.addr], extra=EXTRA_DEFAULT + extra_cfg)
    old = 'control: { socket = "%s"; };' % sock
    check(old in text, "config_text no longer writes %r" % old)
    text = text.replace(old, 'control: { socket = "%s"; mode = "0666"; };' % sock)
    conf = os.path.join(env.tmp, "cutover.conf")
    with open(conf, "w") as f:
        f.write(text)
    os.chmod(env.tmp, 0o755)
    d = harness.Daemon(env, conf, port)
    env.daemons.append(d)
    return d, Ctl(sock), sock


def as_nobody():
    pw = pwd.getpwnam("nobody")

    def drop():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return drop


def test_control_slots_hogged_by_a_reader_root_still_switches_and_rolls_back(env):
    """nobody holds every control connection it can, sending a newline every
    0.5 s: root's switch and rollback still get through, and nobody's
    refused commands are logged a few times, not once each."""
    need_root()
    d, ctl, sock = start_open_socket(env)
    ctl.wait_confirmed("green")
    hog = subprocess.Popen([PYTHON, "-c", HOG, sock, "100", "60"], preexec_fn=as_nobody(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        r, _, _ = select.select([hog.stdout], [], [], 20)
        line = hog.stdout.readline() if r else b""
        check(line.startswith(b"connected"), "the hog did not connect: %r %r" % (line, hog.poll()))
        time.sleep(1.0)
        for args, want in ((("switch", "green"), "green"), (("rollback",), "blue"),
                           (("switch", "green"), "green")):
            r = ctl.run(*args, timeout=20)
            check(r.rc == 0 and r.json and r.json.get("ok") is True,
                  "root's `cutoverctl %s` while nobody hogs the control socket: %r" % (" ".join(args), r))
            check(ctl.active() == want, "active is not %s after %s" % (want, args))
    finally:
        hog.kill()
        hog.wait()
    # nobody keeps asking for what it may not do (retried until the hog's
    # connections are gone and a slot is free for it).
    refuser = wait_for(lambda: _refuse_50(sock), 15, "nobody to get a control connection")
    check(refuser.returncode == 0 and refuser.stdout.strip() == b"50",
          "nobody's 50 `switch blue` were not all refused with permission denied: %r" % (refuser,))
    denied = [l for l in d.log_text().splitlines() if "permission denied" in l]
    check(1 <= len(denied) <= 3, "%d log lines for 50 refused commands: %s" % (len(denied), denied[:3]))


REFUSER = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    f = s.makefile("rwb")
    n = 0
    for _ in range(50):
        f.write(b"switch blue\\n"); f.flush()
        n += b"permission denied" in f.readline()
    print(n)
""")


def _refuse_50(sock):
    r = subprocess.run([PYTHON, "-c", REFUSER, sock], preexec_fn=as_nobody(), capture_output=True,
                       timeout=60)
    return r if r.returncode == 0 and r.stdout.strip() not in (b"", b"0") else None


def test_control_idle_connections_close_within_the_idle_timeout(env):
    """A connection that sends nothing, and one that sends only blank lines,
    are both closed by the daemon within the 10 s idle timeout (with
    margin), while one that keeps sending commands stays open."""
    need_root()
    d, ctl = start_idle_daemon(env)
    sock = sock_path(env)
    quiet = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    quiet.connect(sock)
    blank = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    blank.connect(sock)
    busy = RawCtl(sock, timeout=10)
    t0 = time.monotonic()
    closed = {}
    while time.monotonic() - t0 < 25 and len(closed) < 2:
        for name, s in (("quiet", quiet), ("blank", blank)):
            if name in closed:
                continue
            r, _, _ = select.select([s], [], [], 0)
            if r:
                data = s.recv(4096)
                if not data:
                    closed[name] = time.monotonic() - t0
        try:
            blank.sendall(b"\n")
        except OSError:
            pass
        a = busy.command("status")
        check(a.get("ok") is True, "a busy control connection got %s after %.1fs" % (a, time.monotonic() - t0))
        time.sleep(0.5)
    for s in (quiet, blank):
        s.close()
    busy.close()
    check(set(closed) == {"quiet", "blank"},
          "idle control connections not closed within 25s: closed %s" % closed)
    for name, t in closed.items():
        check(t >= 8, "the %s connection was closed after only %.1fs" % (name, t))


def start_idle_daemon(env):
    b, g = env.backend("blue1", "blue"), env.backend("green1", "green")
    d = env.cutoverd(blue=[b], green=[g], extra=EXTRA_DEFAULT)
    return d, Ctl(sock_path(env))


def test_control_pipelined_commands_without_reading_stay_bounded(env):
    """A client writes `help` as fast as it can for 6 s and never reads: the
    daemon stops reading it once its output is backed up, so its memory
    stays flat, and other callers are answered meanwhile."""
    need_root()
    d, ctl = start_idle_daemon(env)
    sock = sock_path(env)
    ctl.wait_confirmed("blue")
    before = rss_kib(d.pid)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.setblocking(False)
    chunk = b"help\n" * 2000
    sent = 0
    end = time.monotonic() + 6
    while time.monotonic() < end:
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            select.select([], [s], [], 0.2)
        except OSError:
            break
    grew = (rss_kib(d.pid) - before) / 1024.0
    r = ctl.run("status", timeout=15)
    check(r.rc == 0, "status while a client pipelines help without reading: %r" % r)
    s.close()
    check(grew < 64, "cutoverd grew by %.0f MiB while a client pipelined `help` (%d bytes sent) without reading"
          % (grew, sent))
