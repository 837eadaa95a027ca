"""cutoverctl on its own: usage errors (exit 2) never reach the socket, and
an absent or vanishing daemon is exit 3. No cutoverd is started here; the
tests against the real daemon live elsewhere.

Each test gets a harness.Env; $CUTOVERCTL names the binary under test.
"""

import os
import socket
import subprocess
import threading

from harness import _find_binary, check, fail


def cutoverctl_path():
    return _find_binary("CUTOVERCTL", ["../../src/cutoverctl", "../../build/src/cutoverctl"])


def run_ctl(args, env_extra=None, timeout=30):
    """Runs cutoverctl with args; returns (exit status, stdout, stderr)."""
    env = dict(os.environ)
    env.pop("CUTOVER_SOCKET", None)
    env.update(env_extra or {})
    try:
        p = subprocess.run([cutoverctl_path()] + list(args), env=env, timeout=timeout,
                           stdin=subprocess.DEVNULL, capture_output=True)
    except subprocess.TimeoutExpired:
        fail("cutoverctl %s did not finish within %ds" % (" ".join(args), timeout))
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    check("Sanitizer" not in err and "runtime error:" not in err,
          "cutoverctl %s: sanitizer report: %s" % (" ".join(args), err))
    return p.returncode, out, err


class Listener:
    """An AF_UNIX stream socket in the test's directory standing in for the
    daemon. handler(conn) runs for each connection in a thread; with no
    handler, connections are only counted (nothing is accepted until
    accepted() is called)."""

    def __init__(self, env, name="ctl.sock", handler=None):
        self.path = os.path.join(env.tmp, name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(64)
        self.handler = handler
        self.lines = []
        self.thread = None
        if handler:
            self.thread = threading.Thread(target=self._loop, daemon=True)
            self.thread.start()
        env.closers.append(self)

    def _loop(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.handler(self, conn)

    def accepted(self):
        """How many connections wait in the backlog (no-handler mode)."""
        self.sock.setblocking(False)
        n = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# Each must be refused locally with exit 2, before any connection is made.
USAGE_ERRORS = [
    [],
    ["--json"],
    ["frobnicate"],
    ["STATUS"],
    ["deploy"],
    ["status", "extra"],
    ["status", "--force"],
    ["switch"],
    ["switch", "red"],
    ["switch", "blue", "green"],
    ["switch", "green", "--bogus"],
    ["switch", "green", "--force", "--force"],
    ["switch", "green", "--force=yes"],
    ["switch", "green", "--if-gen"],
    ["switch", "green", "--if-gen", "seven"],
    ["switch", "green", "--if-gen", "-1"],
    ["switch", "green", "--if-gen", "+7"],
    ["switch", "green", "--if-gen", " 7"],
    ["switch", "green", "--if-gen", "99999999999999999999999"],
    ["switch", "green", "--if-gen="],
    ["switch", "green\n"],
    ["switch", "green status"],
    ["rollback", "blue"],
    ["rollback", "--wait"],
    ["rollback", "--dry-run"],
    ["health", "red"],
    ["health", "blue", "green"],
    ["history", "0"],
    ["history", "-3"],
    ["history", "ten"],
    ["history", "1", "2"],
    ["smoke"],
    ["smoke", "purple"],
    ["commit", "now"],
    ["reload", "--force"],
    ["status", ""],
    ["status\tx"],
    ["-x", "status"],
    ["--nope", "status"],
    ["-s"],
    ["--completion"],
    ["--completion", "fish"],
]


def test_usage_errors_exit_2_without_connecting(env):
    daemon = Listener(env)
    for args in USAGE_ERRORS:
        rc, out, err = run_ctl(["-s", daemon.path] + args)
        what = "cutoverctl %r" % (args,)
        check(rc == 2, "%s: exit %d, want 2 (stderr: %s)" % (what, rc, err.strip()))
        check(err.startswith("cutoverctl: ") and "usage: cutoverctl" in err,
              "%s: no usage message on stderr: %r" % (what, err))
        check(out == "", "%s: printed to stdout: %r" % (what, out))
    n = daemon.accepted()
    check(n == 0, "usage errors made %d connection(s) to the socket" % n)


def test_help_and_version(env):
    rc, out, err = run_ctl(["--help"])
    check(rc == 0 and err == "", "--help: exit %d, stderr %r" % (rc, err))
    for word in ("status", "switch", "rollback", "health", "history", "--if-gen",
                 "--dry-run", "--wait", "--json", "CUTOVER_SOCKET"):
        check(word in out, "--help does not mention %s" % word)
    rc2, out2, _ = run_ctl(["-h"])
    check(rc2 == 0 and out2 == out, "-h differs from --help")
    rc, out, err = run_ctl(["-V"])
    check(rc == 0 and out.startswith("cutoverctl ") and out.count("\n") == 1,
          "-V: exit %d, output %r" % (rc, out))


def _bash_complete(script, words):
    """What bash offers for the last of words with script sourced."""
    p = subprocess.run(["bash", "-c", 'source "$1" || exit 9; shift; COMP_WORDS=("$@"); '
                        'COMP_CWORD=$(($# - 1)); _cutoverctl; printf "%s\\n" "${COMPREPLY[@]}"',
                        "bash", script, "cutoverctl"] + list(words), capture_output=True, timeout=30)
    check(p.returncode == 0 and p.stderr == b"", "bash completing %r: exit %d, stderr %r"
          % (words, p.returncode, p.stderr))
    return [w for w in p.stdout.decode().split("\n") if w]


def test_completion_bash(env):
    rc, script_text, err = run_ctl(["--completion", "bash"])
    check(rc == 0 and err == "", "--completion bash: exit %d, stderr %r" % (rc, err))
    script = os.path.join(env.tmp, "cutoverctl.bash")
    with open(script, "w") as f:
        f.write(script_text)
    for words, want in ((["sw"], ["switch"]),
                        (["switch", ""], ["blue", "green"]),
                        (["rollback", "--"], ["--force", "--if-gen", "--local"]),
                        (["switch", "green", "--w"], ["--wait"]),
                        (["deploy", "--"], ["--run", "--timeout", "--ramp", "--step"])):
        got = _bash_complete(script, words)
        check(got == want, "cutoverctl %s<TAB> offers %s, expected %s" % (" ".join(words), got, want))
    # Every command and flag --help lists (both come from the command
    # table) is offered.
    _, help_text, _ = run_ctl(["--help"])
    commands = _bash_complete(script, [""])
    listed = help_text.split("Commands:\n", 1)[1]
    for line in listed.splitlines():
        words = line.split()
        if line.startswith("  ") and not line.startswith("   ") and words:
            check(words[0] in commands, "--help lists %s, completion offers only %s" % (words[0], commands))
            cmd = words[0]
        elif line.startswith("      ") and words and words[0].startswith("--"):
            flags = _bash_complete(script, [cmd, "--"])
            check(words[0] in flags, "--help lists %s %s, completion offers %s" % (cmd, words[0], flags))
    check(len(commands) >= 9, "completion offers too few commands: %s" % commands)


def test_unreachable_exit_3(env):
    missing = os.path.join(env.tmp, "no-such.sock")
    rc, out, err = run_ctl(["-s", missing, "status"])
    check(rc == 3, "missing socket: exit %d, want 3" % rc)
    check(err.startswith("cutoverctl: cannot connect to %s: " % missing),
          "missing socket: stderr %r" % err)
    check(out == "", "missing socket: printed to stdout: %r" % out)

    # A socket file nobody listens on any more (a daemon that died).
    stale = os.path.join(env.tmp, "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)
    s.close()
    rc, _, err = run_ctl(["-s", stale, "switch", "green", "--force"])
    check(rc == 3, "stale socket: exit %d, want 3 (stderr %r)" % (rc, err))
    check("cannot connect to %s" % stale in err, "stale socket: stderr %r" % err)


def test_socket_from_environment(env):
    via_env = os.path.join(env.tmp, "from-env.sock")
    via_opt = os.path.join(env.tmp, "from-opt.sock")
    rc, _, err = run_ctl(["status"], {"CUTOVER_SOCKET": via_env})
    check(rc == 3 and via_env in err, "CUTOVER_SOCKET ignored: exit %d, %r" % (rc, err))
    # -s wins over the environment.
    rc, _, err = run_ctl(["-s", via_opt, "status"], {"CUTOVER_SOCKET": via_env})
    check(rc == 3 and via_opt in err and via_env not in err,
          "-s does not override CUTOVER_SOCKET: %r" % err)


def _read_line_then_close(listener, conn):
    f = conn.makefile("rb")
    listener.lines.append(f.readline())


def _half_answer_then_close(listener, conn):
    f = conn.makefile("rb")
    listener.lines.append(f.readline())
    conn.sendall(b'{"ok":true')


def test_dropped_connection_exit_3(env):
    for name, handler in (("drop.sock", _read_line_then_close),
                          ("half.sock", _half_answer_then_close)):
        daemon = Listener(env, name, handler)
        rc, out, err = run_ctl(["-s", daemon.path, "switch", "green", "--if-gen", "7"])
        check(rc == 3, "%s: exit %d, want 3 (stderr %r)" % (name, rc, err))
        check("without an answer" in err, "%s: stderr %r" % (name, err))
        check(out == "", "%s: printed to stdout: %r" % (name, out))
        # The one line that did reach the socket is the wire form.
        check(daemon.lines == [b"switch green --if-gen 7\n"],
              "%s: sent %r" % (name, daemon.lines))
