"""Hardening of the files cutoverd keeps (issue 9, items 5, 7 and 8).

5. The audit history stays valid and unforgeable: a vetoing pre_switch hook
   that prints Latin-1, a reason cut at its buffer's size, a newline or an
   escape sequence in hook output never make `cutoverctl history` fail, and
   its text output has one row per record with control characters escaped;
   a hand-corrupted history line is skipped and counted.
7. A change is acknowledged only once it is durable: `commit` is refused
   when the state file cannot be written, and a restart finds what was
   saved; the guard's rollback still happens, and cutoverd keeps saving.
8. State and history files do not follow planted links, and a state
   directory others may write to stops startup.
"""

import json
import os
import shutil
import stat
import subprocess

import harness
from harness import check, cutoverd_path, port_accepts, wait_for
from safety import AUTO_ROLLBACK_OFF, guard_conf, health_conf, hooks_conf, script, switch_conf
from switching import EXTRA_DEFAULT, history_path, read_state, restart, start, state_path, stop

ESC = "\x1b"
# A window long enough never to end by itself during a test.
HEALTH_AND_LONG_WINDOW = health_conf() + switch_conf("120s") + AUTO_ROLLBACK_OFF


def _history_file_records(env):
    """Every line of the history file: strict UTF-8, one JSON object each."""
    with open(history_path(env), "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        check(False, "the history file is not valid UTF-8 (%s): %r" % (e, data[max(0, e.start - 40):e.end + 40]))
    out = []
    for ln in text.split("\n")[:-1]:
        try:
            out.append(json.loads(ln))
        except ValueError:
            check(False, "history line is not JSON: %r" % ln[:200])
    return out


def _history_text(ctl):
    """`cutoverctl history` in text: exit 0, its rows (one per line)."""
    r = ctl.run("history", as_json=False)
    check(r.rc == 0, "cutoverctl history (text) failed: %r" % r)
    check(ESC not in r.out and "\r" not in r.out,
          "cutoverctl history printed a raw control character: %r" % r.out[-300:])
    return r, r.out.rstrip("\n").split("\n")


# --------------------------------------------------------------------------
# 5. the audit history


def test_hook_output_keeps_history_valid_and_one_row_per_record(env):
    blue, green = env.backend("blue1", "blue"), env.backend("green1", "green")
    out_file = os.path.join(env.tmp, "hook-output")
    veto = script(env, "veto.sh", 'cat "%s"\nexit 1\n' % out_file)
    d, ctl = start(env, [blue], [green],
                   extra=EXTRA_DEFAULT + hooks_conf(pre_switch=veto))
    ctl.wait_confirmed("green")

    outputs = [
        # Latin-1 from a hook in a legacy locale, and stray bytes.
        b"d\xe9ploiement refus\xe9 \xff\xfe",
        # A newline that would look like another switch, and an escape
        # sequence that would clear the operator's terminal.
        # A literal backslash sequence must not pass for an escaped byte.
        b"not ready\n2026-01-01T00:00:00.000Z  switch  blue -> green  manual  generation 9\x1b[2J\x1b]0;pwned\x07"
        b" literal \\x1b",
    ]
    # Long valid UTF-8 (three-byte euro signs) at three alignments: one of
    # them puts the reason buffer's end inside a character.
    for pad in (b"", b"x", b"xy"):
        outputs.append(pad + "\u20ac".encode() * 600)
    for out in outputs:
        with open(out_file, "wb") as f:
            f.write(out)
        r = ctl.switch("green")
        check(r.rc == 1 and "vetoed" in r.err, "the pre_switch hook must veto: %r" % r)
    check(ctl.active() == "blue", "a vetoed switch took effect: %s" % ctl.status())

    # The file itself: valid UTF-8, one JSON object per line.
    recs = [e for e in _history_file_records(env) if e.get("event") == "refused"]
    check(len(recs) == len(outputs), "expected %d refusals in the history file, got %s" % (len(outputs), recs))
    check("d\ufffdploiement refus\ufffd \ufffd\ufffd" in recs[0]["reason"],
          "Latin-1 should be stored as U+FFFD: %r" % recs[0]["reason"])
    check("\n" in recs[1]["reason"] and ESC in recs[1]["reason"],
          "the reason should keep the hook's newline and ESC (escaped in JSON): %r" % recs[1]["reason"])
    for e in recs[2:]:
        reason = e["reason"]
        check("\ufffd" not in reason and reason.endswith("\u20ac"),
              "a long UTF-8 reason must be cut on a character boundary: ...%r" % reason[-20:])
        check(len(reason.encode()) <= 1024, "reason of %d bytes" % len(reason.encode()))

    # --json: a valid answer, the same records.
    r = ctl.run("history")
    check(r.rc == 0 and r.json is not None and r.json.get("ok") is True,
          "cutoverctl --json history failed: %r" % r)
    got = [e for e in r.json["entries"] if e.get("event") == "refused"]
    check([e["reason"] for e in got] == [e["reason"] for e in recs],
          "history --json differs from the file: %s" % got)
    check(r.json.get("skipped") == 0, "nothing should be skipped: %s" % r.json.get("skipped"))

    # Text: one row per record, control characters escaped.
    entries = ctl.history()
    r, rows = _history_text(ctl)
    check(len(rows) == len(entries), "expected one row per record (%d), got %d rows: %r"
          % (len(entries), len(rows), r.out[-600:]))
    forged = [ln for ln in rows if ln.startswith("2026-01-01T00:00:00.000Z")]
    check(not forged, "the hook's output printed a row of its own: %r" % forged)
    row = [ln for ln in rows if "not ready" in ln]
    check(len(row) == 1 and "not ready\\n2026-01-01" in row[0] and "\\x1b[2J" in row[0]
          and "\\x07" in row[0], "the newline, ESC and BEL should print as \\n, \\x1b, \\x07: %r" % row)
    check(row[0].endswith(" literal \\\\x1b"),
          "a backslash in a reason should print as \\\\: %r" % row[0][-30:])
    check(any("d\ufffdploiement" in ln for ln in rows), "the Latin-1 reason row is missing: %r" % rows)

    # The refusal's answer on stderr was valid UTF-8 too (decoded with
    # errors="replace", it would show U+FFFD where the bytes were invalid:
    # only the hook's own replacements may be there).
    r = ctl.switch("green")
    check(r.rc == 1 and "\u20ac" in r.err and r.err.count("\ufffd") == 0,
          "the refusal printed by cutoverctl should be clean UTF-8: %r" % r.err[-80:])


def test_corrupt_history_line_skipped_and_counted(env):
    blue, green = env.backend("blue1", "blue"), env.backend("green1", "green")
    d, ctl = start(env, [blue], [green])
    ctl.wait_confirmed("green")
    r = ctl.switch("green")
    check(r.rc == 0, "switch to green: %r" % r)
    with open(history_path(env), "ab") as f:
        # A hand edit gone wrong, binary junk, and a record an older
        # cutoverd wrote with a hook's raw Latin-1 (repaired, not skipped).
        f.write(b'{"time":"2026-01-01T00:00:00.000Z","event":"switch",broken\n')
        f.write(b"\xff\xfe\x00junk\x1b[2J\n")
        f.write(b'{"time":"2026-01-01T00:00:01.000Z","event":"refused","from":"green","to":"blue",'
                b'"trigger":"manual","reason":"vetoed: caf\xe9","uid":0,"pid":1,"generation":1}\n')
    r = ctl.switch("blue")
    check(r.rc == 0, "switch back to blue after the corruption: %r" % r)

    r = ctl.run("history")
    check(r.rc == 0 and r.json is not None and r.json.get("ok") is True,
          "history --json must not fail on a bad line: %r" % r)
    check(r.json.get("skipped") == 2, "expected 2 skipped lines, answer says %s" % r.json.get("skipped"))
    ev = [(e.get("event"), e.get("to")) for e in r.json["entries"]]
    check(ev == [("switch", "green"), ("refused", "blue"), ("switch", "blue")],
          "expected the two switches around the repaired record: %s" % ev)
    check(r.json["entries"][1]["reason"] == "vetoed: caf\ufffd",
          "an invalid UTF-8 record should be shown with U+FFFD: %s" % r.json["entries"][1])

    r, rows = _history_text(ctl)
    check(len(rows) == 3, "expected 3 rows: %r" % r.out)
    check("2 unreadable history lines skipped" in r.err,
          "cutoverctl history should say on stderr that 2 lines were skipped: %r" % r.err)
    r = ctl.run("history", "1", as_json=False)
    check(r.rc == 0 and len(r.out.strip().split("\n")) == 1 and "blue" in r.out,
          "history 1 should print the last record: %r" % r)


# --------------------------------------------------------------------------
# 7. durable changes


def _make_state_unwritable(env):
    """A directory (not empty) where the state file is: the rename that
    replaces it fails (EISDIR), whoever runs it, root included. Returns the
    bytes the file held, i.e. what was durably saved."""
    sp = state_path(env)
    with open(sp, "rb") as f:
        saved = f.read()
    os.unlink(sp)
    os.mkdir(sp, 0o700)
    with open(os.path.join(sp, "keep"), "w") as f:
        f.write("x")
    return saved


def _restore_state(env, saved):
    sp = state_path(env)
    shutil.rmtree(sp)
    if saved is not None:
        with open(sp, "wb") as f:
            f.write(saved)


def test_commit_refused_when_state_cannot_be_saved(env):
    blue, green = env.backend("blue1", "blue"), env.backend("green1", "green")
    d, ctl = start(env, [blue], [green], extra=HEALTH_AND_LONG_WINDOW,
                   expect_errors=[r"commit refused: cannot write state"])
    ctl.wait_confirmed("green")
    check(ctl.switch("green").rc == 0, "switch to green failed")
    st = ctl.status()
    check(st["state"] == "observing" and st["generation"] == 1, "after the switch: %s" % st)
    saved = _make_state_unwritable(env)

    r = ctl.run("commit", as_json=False)
    check(r.rc == 1 and "commit refused" in r.err and "cannot write state" in r.err and r.out == "",
          "commit with an unwritable state file must fail with a reason: %r" % r)
    st = ctl.status()
    check(st["state"] == "observing" and st["window_left_s"] > 0,
          "a refused commit must leave the safety window open: %s" % st)
    check(any(e.get("event") == "refused" and "commit refused" in (e.get("reason") or "")
              for e in ctl.history()), "the refused commit should be in the history: %s" % ctl.history())

    # Restart with what was durably saved: the window is still open.
    stop(d)
    _restore_state(env, saved)
    d = restart(env, d)
    st = ctl.status()
    check(st["active"] == "green" and st["generation"] == 1 and st["state"] == "observing",
          "after a restart the saved state (green, generation 1, observing) should be back: %s" % st)

    # A commit that can be saved is acknowledged, and survives a restart.
    r = ctl.run("commit", as_json=False)
    check(r.rc == 0 and "safety window ended" in r.out, "commit: %r" % r)
    check("window_end" not in read_state(state_path(env)), "the state file still holds a window end")
    stop(d)
    d = restart(env, d)
    st = ctl.status()
    check(st["state"] == "stable" and st["active"] == "green", "after commit and restart: %s" % st)


def test_guard_rollback_happens_and_is_saved_once_possible(env):
    blue, green = env.backend("blue1", "blue"), env.backend("green1", "green")
    d, ctl = start(env, [blue], [green],
                   extra=health_conf(interval="200ms", fall=2) + switch_conf("60s")
                   + guard_conf(error_rate=0.2, min_requests=20, window="5s"),
                   expect_errors=[r"auto-rollback \(health\)", r"STATE FILE NOT SAVED",
                                  r"state file still not saved"])
    ctl.wait_confirmed("green")
    ctl.wait_confirmed("blue")
    check(ctl.switch("green").rc == 0, "switch to green failed")
    saved = _make_state_unwritable(env)
    green.ctl("/_ctl/health?fail=1")

    # Safety first: back on blue although the state file cannot be written.
    wait_for(lambda: ctl.active() == "blue", 20, "the guard to roll back to blue", interval=0.05)
    st = ctl.status()
    check(st.get("state_saved") is False and "rename" in (st.get("state_error") or ""),
          "status should say the state is not saved and why: %s" % st)
    r = ctl.run("status", as_json=False)
    check(r.rc == 0 and "NOT SAVED" in r.out, "status text should warn that the state is not saved: %r" % r.out)
    rb = [e for e in ctl.history() if e.get("trigger") == "auto-rollback"]
    check(rb and rb[-1].get("event") == "rollback" and "state file not saved" in (rb[-1].get("reason") or ""),
          "the rollback's history entry should say the state file was not saved: %s" % rb)
    check(saved is not None and b"active green" in saved, "the saved state was %r" % saved)

    # Once the file can be written, cutoverd saves it without being asked.
    _restore_state(env, saved)
    wait_for(lambda: ctl.status().get("state_saved") is True, 45, "cutoverd to save the state again",
             interval=0.2)
    s = read_state(state_path(env))
    check(s["active"] == "blue" and s["generation"] == 2 and "window_end" not in s,
          "the state file should now say blue, generation 2, stable: %s" % s)


# --------------------------------------------------------------------------
# 8. planted links, the state directory


def test_planted_links_not_followed(env):
    blue, green = env.backend("blue1", "blue"), env.backend("green1", "green")
    precious = os.path.join(env.tmp, "precious")
    with open(precious, "w") as f:
        f.write("do not touch\n")
    sp = state_path(env)
    d, ctl = start(env, [blue], [green],
                   expect_errors=[r"history: .*symbolic link"])
    ctl.wait_confirmed("green")

    os.symlink(precious, sp + ".tmp")
    r = ctl.switch("green")
    check(r.rc == 0, "switch with a link planted as state.tmp: %r" % r)
    with open(precious) as f:
        check(f.read() == "do not touch\n", "the target of state.tmp was written")
    check(not os.path.lexists(sp + ".tmp"), "state.tmp is left behind")
    check(stat.S_ISREG(os.lstat(sp).st_mode) and read_state(sp)["active"] == "green",
          "the state file should be a regular file saying green")

    hp = history_path(env)
    os.unlink(hp)
    os.symlink(precious, hp)
    r = ctl.switch("blue")
    check(r.rc == 0, "switch with a link planted as state.history: %r" % r)
    with open(precious) as f:
        check(f.read() == "do not touch\n", "the target of state.history was appended to")
    r = ctl.run("history")
    check(r.rc == 1 and "symbolic link" in r.err, "history through a planted link must be refused: %r" % r)

    # A link planted as the state file itself stops the next start.
    stop(d)
    os.unlink(sp)
    os.symlink(precious, sp)
    p = subprocess.run([cutoverd_path(), "-c", d.conf_path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=15)
    out = p.stdout.decode(errors="replace")
    check(p.returncode == 1 and sp in out and "symbolic link" in out,
          "a state file that is a link must stop startup: exit %s, %r" % (p.returncode, out[-300:]))


def test_state_directory_writable_by_others_refused(env):
    blue, green = env.backend("blue1", "blue"), env.backend("green1", "green")
    sdir = os.path.join(env.tmp, "state")
    os.mkdir(sdir)
    for mode, word in ((0o770, "group-writable"), (0o1777, "world-writable"), (0o757, "world-writable")):
        os.chmod(sdir, mode)
        conf, port = env.write_config(blue=[blue], green=[green], extra=EXTRA_DEFAULT)
        with open(conf) as f:
            text = f.read()
        text = text.replace(state_path(env), os.path.join(sdir, "cutover.state"))
        with open(conf, "w") as f:
            f.write(text)
        try:
            p = subprocess.run([cutoverd_path(), "-c", conf], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=15)
        except subprocess.TimeoutExpired:
            check(False, "cutoverd started with a state directory of mode %o" % mode)
        out = p.stdout.decode(errors="replace")
        lines = [ln for ln in out.splitlines() if ln.strip()]
        check(p.returncode == 1, "mode %o: cutoverd exited %s, expected 1: %r" % (mode, p.returncode, out[-300:]))
        check(len(lines) == 1 and sdir in lines[0] and word in lines[0],
              "mode %o: expected one line naming %s as %s, got %r" % (mode, sdir, word, lines))
        check(not port_accepts(port), "mode %o: something accepts on the proxy port" % mode)
        check(not os.listdir(sdir), "mode %o: cutoverd wrote into the directory: %s" % (mode, os.listdir(sdir)))

    # Made private, the same directory is accepted.
    os.chmod(sdir, 0o755)
    conf, port = env.write_config(blue=[blue], green=[green], extra=EXTRA_DEFAULT, name="ok.conf")
    with open(conf) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace(state_path(env, "ok"), os.path.join(sdir, "cutover.state")))
    dm = harness.Daemon(env, conf, port)
    env.daemons.append(dm)
    check(dm.proc.poll() is None, "cutoverd with a 0755 state directory did not start")

