"""Log line format (issue 16): under systemd, when stderr is the journal's
stream (JOURNAL_STREAM names its device:inode), every line starts with its
syslog priority ("<3>" error, "<4>" warning, "<6>" info, "<7>" debug) and
carries no timestamp, so that "journalctl -p warning" filters; otherwise
lines start with a UTC timestamp and no priority.
"""

import os
import re
import signal

from harness import check, free_port
from ops import wait_log
from switching import EXTRA_DEFAULT, start

REJECT = [r"reload rejected"]
PRIO = {"error": "<3>", "warn": "<4>", "info": "<6>", "debug": "<7>"}
JOURNAL_RX = re.compile(r"^(<[0-7]>)\[(error|warn|info|debug)\] \S")
PLAIN_RX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[(error|warn|info|debug)\] \S")


def _daemon_lines(d):
    """The daemon's own lines (a sanitizer report is not one)."""
    return [l for l in d.log_text().splitlines() if l.strip() and not l.startswith("==")]


def _all_levels(env, journal):
    """A daemon logging at every level: info at start, a warning for a
    server that goes down, debug for a failing smoke test, errors for a
    rejected SIGHUP reload. Returns the daemon once all four were logged."""
    b1, g1 = env.backend("b1", "blue"), env.backend("g1", "green")
    dead = "127.0.0.1:%d" % free_port()
    smoke = 'smoke = ( { path = "/"; expect_status = 599; } );\n'
    d, ctl = start(env, [b1, dead], [g1], extra=EXTRA_DEFAULT + smoke, log_level="debug",
                   expect_errors=REJECT, journal=journal)
    wait_log(d, r"server %s is down" % re.escape(dead))
    ctl.wait_confirmed("green")
    r = ctl.run("smoke", "green", as_json=False)
    check(r.rc == 1, "a smoke test expecting 599 passed: %r" % r)
    wait_log(d, r"\[debug\] \w+: smoke test 1 ")
    with open(d.conf_path, "a") as f:
        f.write("workers = ;\n")
    at = len(d.log_text())
    d.proc.send_signal(signal.SIGHUP)
    wait_log(d, r"reload rejected: the running configuration stays", start=at)
    return d


def test_journal_stream_priority_prefixes(env):
    d = _all_levels(env, journal=True)
    seen = set()
    for line in _daemon_lines(d):
        m = JOURNAL_RX.match(line)
        check(m is not None, "with JOURNAL_STREAM on stderr, a line without '<N>[level] ': %r" % line)
        check(m.group(1) == PRIO[m.group(2)], "%s line with priority %s (expected %s): %r"
              % (m.group(2), m.group(1), PRIO[m.group(2)], line))
        check(not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", line), "a journal line carries a timestamp: %r" % line)
        seen.add(m.group(2))
    check(seen == set(PRIO), "levels logged: %s, expected all of %s" % (sorted(seen), sorted(PRIO)))


def _check_plain(d, why):
    seen = set()
    for line in _daemon_lines(d):
        m = PLAIN_RX.match(line)
        check(m is not None, "%s, a line not in the form 'TIMESTAMP [level] ...': %r" % (why, line))
        seen.add(m.group(1))
    check(seen == set(PRIO), "levels logged: %s, expected all of %s" % (sorted(seen), sorted(PRIO)))


def test_plain_lines_without_journal_stream(env):
    d = _all_levels(env, journal=False)
    _check_plain(d, "without JOURNAL_STREAM")


def test_plain_lines_when_journal_stream_is_another_file(env):
    # A program started from a journal-connected service inherits
    # JOURNAL_STREAM; with its stderr redirected elsewhere, it must not
    # write priority prefixes into that file.
    other = os.path.join(env.tmp, "other")
    open(other, "w").close()
    st = os.stat(other)
    b1, g1 = env.backend("b1", "blue"), env.backend("g1", "green")
    d, ctl = start(env, [b1], [g1], log_level="debug", journal="%d:%d" % (st.st_dev, st.st_ino))
    ctl.wait_confirmed("blue")
    lines = _daemon_lines(d)
    check(lines, "cutoverd logged nothing")
    for line in lines:
        check(PLAIN_RX.match(line), "JOURNAL_STREAM naming another file, a line not in the form "
              "'TIMESTAMP [level] ...': %r" % line)
