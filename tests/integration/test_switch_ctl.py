"""The control side of the cutover (issue 3) through the real binaries: a
corrupt state file stops startup, an unprivileged caller can read but not
change, garbage on the control socket, and the audit history.

cutoverctl is $CUTOVERCTL; helpers live in switching.py.
"""

import json
import os
import socket
import subprocess
import time

import harness
from harness import check, config_text, cutoverd_path, free_port, port_accepts, wait_for
from switching import (Ctl, RawCtl, copy_ctl_for_others, history_path, restart, sock_path,
                       start, state_path, stop, EXTRA_DEFAULT)


# --------------------------------------------------------------------------
# 8. corrupt state file


def _start_expecting_exit(env, state_bytes, what):
    b, g = env.backend("blue1", "blue"), env.backend("green1", "green")
    sp = state_path(env)
    with open(sp, "wb") as f:
        f.write(state_bytes)
    conf, port = env.write_config(blue=[b], green=[g], extra=EXTRA_DEFAULT)
    try:
        p = subprocess.run([cutoverd_path(), "-c", conf], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=15)
    except subprocess.TimeoutExpired:
        check(False, "%s: cutoverd kept running with a corrupt state file" % what)
    out = p.stdout.decode(errors="replace")
    lines = [ln for ln in out.splitlines() if ln.strip()]
    check(p.returncode == 1, "%s: cutoverd exited %s, expected 1: %r" % (what, p.returncode, out[-300:]))
    check(len(lines) == 1 and sp in lines[0],
          "%s: expected exactly one line naming %s, got %r" % (what, sp, lines))
    check(not port_accepts(port), "%s: something accepts on the proxy port" % what)
    with open(sp, "rb") as f:
        check(f.read() == state_bytes, "%s: cutoverd modified the corrupt state file" % what)


def test_corrupt_state_file_stops_startup(env):
    _start_expecting_exit(env, b"\x8f\x00garbage \xff\xfe{not a state file}\n", "garbage")


def test_truncated_state_file_stops_startup(env):
    _start_expecting_exit(env, b"cutover-state 1\nactive gre", "truncated")


# --------------------------------------------------------------------------
# 9. unprivileged caller


def test_unprivileged_caller_reads_but_cannot_switch(env):
    b, g = env.backend("blue1", "blue"), env.backend("green1", "green")
    port = free_port()
    sock = sock_path(env)
    text = config_text(env, port, [b.addr], [g.addr], extra=EXTRA_DEFAULT)
    old = 'control: { socket = "%s"; };' % sock
    check(old in text, "config_text no longer writes %r" % old)
    text = text.replace(old, 'control: { socket = "%s"; mode = "0666"; };' % sock)
    conf = os.path.join(env.tmp, "cutover.conf")
    with open(conf, "w") as f:
        f.write(text)
    d = harness.Daemon(env, conf, port, expect_errors=(r"permission denied",))
    env.daemons.append(d)
    check(os.stat(sock).st_mode & 0o777 == 0o666,
          "control socket mode %o, configured 0666" % (os.stat(sock).st_mode & 0o777))
    root = Ctl(sock)
    root.wait_confirmed("green")
    before = root.status()
    nobody = Ctl(sock, binary=copy_ctl_for_others(env), user="nobody")
    who = subprocess.run(["runuser", "-u", "nobody", "--", "id", "-u"], capture_output=True)
    check(who.returncode == 0 and who.stdout.strip() != b"0",
          "runuser -u nobody does not give an unprivileged uid: %r" % (who,))

    r = nobody.run("status")
    check(r.rc == 0 and r.json and r.json.get("active") == "blue",
          "nobody should be able to read status: %r" % r)
    r = nobody.run("health")
    check(r.rc == 0, "nobody should be able to read health: %r" % r)
    r = nobody.run("history")
    check(r.rc == 0, "nobody should be able to read history: %r" % r)
    for args in (("switch", "green"), ("switch", "green", "--force"), ("rollback",), ("commit",)):
        r = nobody.run(*args)
        check(r.rc == 1 and "permission denied" in r.err.lower(),
              "nobody running `%s` should exit 1 with permission denied: %r" % (" ".join(args), r))
    after = root.status()
    check((after["active"], after["previous"], after["generation"], after["state"])
          == (before["active"], before["previous"], before["generation"], before["state"]),
          "an unprivileged caller changed the state: %s -> %s" % (before, after))
    check(not os.path.exists(state_path(env)), "a state file appeared without any switch")
    # root still can
    root.ok("switch", "green")
    check(root.active() == "green", "root could not switch after the refusals")


# --------------------------------------------------------------------------
# 10. garbage on the control socket


def test_control_binary_junk_answered_with_error(env):
    d, ctl = start(env, [env.backend("blue1", "blue")], [env.backend("green1", "green")])
    sock = sock_path(env)
    # Each junk line must get an error answer of its own, and the connection
    # must go on answering.
    bad = []
    for junk in (b"\x01\xff\xfe\x1b[2Jjunk", b"\xc3\x28\x80\x80 \xff", b"\x00\x01\xff\xfe junk",
                 b"status\x00junk", b"\x00"):
        c = RawCtl(sock, timeout=10)
        try:
            c.send(junk + b"\n")
            a = c.read_json(strict=False)
            if a.get("ok") is not False or not a.get("error"):
                bad.append("%r answered %s" % (junk, json.dumps(a)[:80]))
            a = c.command("status")
            if a.get("ok") is not True or a.get("active") != "blue":
                bad.append("status after %r answered %s" % (junk, a))
        except harness.TestFailure as e:
            bad.append("%r: %s" % (junk, e))
        finally:
            c.close()
    check(not bad, "junk lines not answered with an error: " + "; ".join(bad))


def test_control_answers_are_utf8_json_for_invalid_utf8_input(env):
    """An answer that quotes an invalid UTF-8 command must still be valid
    JSON (RFC 8259: UTF-8), e.g. with the bytes escaped or replaced."""
    d, ctl = start(env, [env.backend("blue1", "blue")], [env.backend("green1", "green")])
    for junk in (b"\xc3\x28\x80\x80", b"\xff\xfe", b"switch \xe9"):
        c = RawCtl(sock_path(env), timeout=10)
        c.send(junk + b"\n")
        a = c.read_json()  # strict: the answer line must decode as UTF-8
        check(a.get("ok") is False and a.get("error"), "%r answered %s" % (junk, a))
        c.close()


def test_control_unknown_command_and_pipelined_commands(env):
    d, ctl = start(env, [env.backend("blue1", "blue")], [env.backend("green1", "green")])
    sock = sock_path(env)
    c = RawCtl(sock)
    a = c.command("frobnicate now")
    check(a.get("ok") is False and a.get("error"), "unknown command answered %s" % a)
    c.close()
    # Several commands in one write, answered in order.
    c = RawCtl(sock)
    c.send(b"status\nhealth green\nbogus\nhistory\nstatus\n")
    answers = [c.read_json() for _ in range(5)]
    shapes = [("active" in answers[0] and answers[0].get("ok") is True),
              (answers[1].get("ok") is True and isinstance(answers[1].get("servers"), list)
               and len(answers[1]["servers"]) == 1
               and all(s.get("color") == "green" for s in answers[1]["servers"])),
              answers[2].get("ok") is False,
              (answers[3].get("ok") is True and isinstance(answers[3].get("entries"), list)),
              ("active" in answers[4] and answers[4].get("ok") is True)]
    check(all(shapes), "pipelined commands answered out of order or wrongly: %s" % answers)
    c.close()


def test_control_grammar_is_the_command_table(env):
    """The daemon parses with the same table as cutoverctl: rollback takes
    only --force and --if-gen (DESIGN.md), bad flags and arguments get an
    error answer naming the usage, and help lists the table."""
    d, ctl = start(env, [env.backend("blue1", "blue")], [env.backend("green1", "green")])
    c = RawCtl(sock_path(env))
    gen = c.command("status").get("generation")
    check(isinstance(gen, int), "status has no generation")
    for line, word in (("rollback --dry-run", "--dry-run"), ("rollback --wait", "--wait"),
                       ("rollback blue", "too many"), ("switch green --bogus", "--bogus"),
                       ("switch green --force --force", "twice"),
                       ("switch green --if-gen seven", "--if-gen"), ("switch red", "red"),
                       ("history ten", "ten"), ("status --json", "--json"), ("deploy --run x", "deploy")):
        a = c.command(line)
        check(a.get("ok") is False and word in (a.get("error") or ""),
              "%r answered %s (want an error naming %r)" % (line, a, word))
    a = c.command("rollback --dry-run")
    check("usage: rollback [--force] [--if-gen N]" in a.get("error", ""),
          "rollback's error does not give its usage: %s" % a)
    st = c.command("status")
    check(st.get("active") == "blue" and st.get("generation") == gen,
          "a refused command changed something: %s" % st)
    h = c.command("help")
    cmds = h.get("commands") or []
    check(h.get("ok") is True and any(x.startswith("rollback [--force] [--if-gen N] [--local]:") for x in cmds)
          and any(x.startswith("switch blue|green [--force] [--if-gen N] [--dry-run] [--wait] [--local] [--ramp STEPS] [--step T]:")
                  for x in cmds)
          and not any(x.startswith("deploy") for x in cmds),
          "help does not list the command table: %s" % h)
    # The wire text acceptance suites send still works, --if-gen=N too.
    a = c.command("switch green --force --if-gen %d" % gen)
    check(a.get("ok") is True and a.get("active") == "green", "switch green --force --if-gen %d: %s" % (gen, a))
    a = c.command("rollback --if-gen=%d --force" % (gen + 1))
    check(a.get("ok") is True and a.get("active") == "blue", "rollback --if-gen=%d --force: %s" % (gen + 1, a))
    c.close()


def test_control_oversized_line_answered_and_closed(env):
    d, ctl = start(env, [env.backend("blue1", "blue")], [env.backend("green1", "green")])
    sock = sock_path(env)
    # A 100 KB line without a newline: an error answer, then the connection closes.
    c = RawCtl(sock, timeout=5)
    big = b"status " + b"A" * (100 * 1024)
    try:
        c.send(big)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon may close before taking it all
    line = c.read_line()
    check(line is not None, "a 100 KB line got no answer before the connection closed")
    try:
        a = json.loads(line)
    except ValueError:
        a = None
    check(isinstance(a, dict) and a.get("ok") is False and a.get("error"),
          "a 100 KB line answered %r" % (line[:200],))
    rest = c.read_line()
    check(rest is None, "the connection stayed open after the oversized line (got %r)" % (rest and rest[:100],))
    c.close()
    st = RawCtl(sock).command("status")
    check(st.get("ok") is True, "status on a new connection after the oversized line: %s" % st)
    r = ctl.run("status")
    check(r.rc == 0, "cutoverctl status after the oversized line: %r" % r)


def test_control_idle_connections_do_not_block(env):
    d, ctl = start(env, [env.backend("blue1", "blue")], [env.backend("green1", "green")])
    sock = sock_path(env)
    idle = []
    try:
        for _ in range(50):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock)
            idle.append(s)
        idle[7].sendall(b"stat")  # one with half a line pending
        idle[8].sendall(b"status\n")  # one that never reads its answer
        t0 = time.monotonic()
        r = ctl.run("status", timeout=10)
        took = time.monotonic() - t0
        check(r.rc == 0 and r.json and r.json.get("ok") is True,
              "status with 50 idle control connections open: %r" % r)
        check(took < 6, "status took %.1fs with 50 idle control connections open" % took)
    finally:
        for s in idle:
            s.close()
    check(d.proc.poll() is None, "cutoverd died")


# --------------------------------------------------------------------------
# 12. history


def test_history_records_switches_and_refusals_and_survives_restart(env):
    d, ctl = start(env, [env.backend("blue1", "blue")], [env.backend("green1", "green")])
    ctl.wait_confirmed("green")
    r1 = ctl.switch("green")
    r2 = ctl.run("rollback")
    r3 = ctl.switch("green", "--if-gen", "99")
    check((r1.rc, r2.rc, r3.rc) == (0, 0, 1), "setup: %r / %r / %r" % (r1, r2, r3))
    want = [("switch", "blue", "green", 1, r1.pid),
            ("rollback", "green", "blue", 2, r2.pid),
            ("refused", "blue", "green", 2, r3.pid)]
    uid = os.getuid()

    def check_entries(entries, when):
        got = [e for e in entries if e.get("event") in ("switch", "rollback", "refused")]
        check(len(got) == 3, "%s: expected 3 switch/rollback/refused entries, got %s" % (when, entries))
        for e, (ev, frm, to, gen, pid) in zip(got, want):
            for key in ("time", "event", "from", "to", "trigger", "reason", "uid", "pid", "generation"):
                check(key in e, "%s: history entry lacks %r: %s" % (when, key, e))
            check((e["event"], e["from"], e["to"], e["generation"], e["pid"], e["uid"], e["trigger"])
                  == (ev, frm, to, gen, pid, uid, "manual"),
                  "%s: expected %s %s->%s gen %d pid %d uid %d manual, got %s"
                  % (when, ev, frm, to, gen, pid, uid, e))
        check(got[2]["reason"] and "generation" in got[2]["reason"],
              "%s: the refusal's reason %r should say why" % (when, got[2]["reason"]))

    check_entries(ctl.history(), "before restart")
    check(os.path.exists(history_path(env)), "no history file at %s" % history_path(env))
    stop(d)
    restart(env, d)
    check_entries(ctl.history(), "after restart")
    r = ctl.run("history", as_json=False)
    check(r.rc == 0 and "rollback" in r.out, "plain history should list the rollback: %r" % r)
