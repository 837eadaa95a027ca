#!/usr/bin/env python3
"""Runs cutover's integration tests.

Discovers test_*.py next to this file and runs every test_* function in
them, each with a fresh harness.Env (its own temporary directory). Prints
"PASS name", "FAIL name: reason" or "SKIP name: reason" per test and ends
with exactly one line "N passed, M failed"; exits 1 when M > 0. A test skips
by raising harness.TestSkip (only where a tool it needs cannot be installed,
e.g. chromium); skipped tests count neither as passed nor as failed and are
listed again, with their number, in a "# K skipped" line before the last.

Usage: run.py [SUBSTRING...]   only tests whose name contains a substring
Environment: CUTOVERD, TESTBACKEND (binaries), KEEP_TMP=1 keeps every temp dir.
"""

import importlib
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

TEST_TIMEOUT = 180  # seconds; a hung test fails instead of hanging the suite


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test did not finish within %ds" % TEST_TIMEOUT)


def discover():
    tests = []
    for fn in sorted(os.listdir(HERE)):
        if fn.startswith("test_") and fn.endswith(".py"):
            try:
                mod = importlib.import_module(fn[:-3])
            except Exception as e:  # a broken test file fails loudly, once
                msg = "cannot import %s: %s: %s" % (fn, type(e).__name__, e)

                def broken(env, msg=msg):
                    raise harness.TestFailure(msg)
                tests.append(("%s.import" % fn[:-3], broken))
                continue
            for name in getattr(mod, "__all_tests__", None) or [n for n in vars(mod) if n.startswith("test_")]:
                obj = getattr(mod, name)
                if callable(obj):
                    tests.append(("%s.%s" % (fn[:-3], name), obj))
    return tests


def one_line(s):
    s = " ".join(str(s).split())
    return s if len(s) <= 400 else s[:397] + "..."


def run_one(name, fn):
    """Runs one test: (None, None) passed, (reason, None) failed,
    (None, why) skipped."""
    tmp = tempfile.mkdtemp(prefix="cutover-it-")
    env = harness.Env(tmp, name)
    reason = skipped = None
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        fn(env)
    except harness.TestSkip as e:
        skipped = str(e) or "skipped"
    except harness.TestFailure as e:
        reason = str(e)
    except TestTimeout as e:
        reason = str(e)
    except Exception as e:  # an unexpected exception is a failure too
        tb = traceback.extract_tb(e.__traceback__)
        where = "%s:%d" % (os.path.basename(tb[-1].filename), tb[-1].lineno) if tb else "?"
        reason = "%s: %s (at %s)" % (type(e).__name__, e, where)
    finally:
        signal.alarm(0)
    try:
        problems = env.close()
    except Exception as e:
        problems = ["teardown: %s: %s" % (type(e).__name__, e)]
    if reason is None and problems:
        reason = problems[0] + ("" if len(problems) == 1 else " (and %d more)" % (len(problems) - 1))
    elif reason is not None and problems:
        reason += " [also: %s]" % problems[0]
    if reason is None and not os.environ.get("KEEP_TMP"):
        # Keep what the test left to look at (env.artifact_dir()), nothing else.
        for entry in os.listdir(tmp):
            if entry != "artifacts":
                path = os.path.join(tmp, entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
        if not os.listdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    elif reason is not None:
        reason += " (files in %s)" % tmp
    return reason, (skipped if reason is None else None)


def main(argv):
    filters = argv[1:]
    tests = [(n, f) for n, f in discover() if not filters or any(s in n for s in filters)]
    passed = failed = 0
    skipped = []
    t0 = time.monotonic()
    for name, fn in tests:
        reason, why = run_one(name, fn)
        if reason is not None:
            failed += 1
            print("FAIL %s: %s" % (name, one_line(reason)), flush=True)
        elif why is not None:
            skipped.append(name)
            print("SKIP %s: %s" % (name, one_line(why)), flush=True)
        else:
            passed += 1
            print("PASS %s" % name, flush=True)
    print("# %d tests in %.1fs" % (passed + failed + len(skipped), time.monotonic() - t0), flush=True)
    if skipped:
        print("# %d skipped (not counted as passed): %s" % (len(skipped), " ".join(skipped)), flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
