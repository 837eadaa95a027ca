#!/usr/bin/env python3
"""The full soak (issue 9, item 14): 1,000 switches back and forth while
keep-alive and new-connection clients send requests, health checks on.
The same code as the suite's bounded test_soak (tests/integration/soak.py).

  bench/soak.py [--switches N] [--max-seconds S] [--keepalive T] [--newconn T] [--json OUT]

Binaries: $CUTOVERD, $CUTOVERCTL, $TESTBACKEND (as for the integration
tests; default build/ in the tree). Everything runs on 127.0.0.1 in a fresh
temporary directory, removed afterwards unless the run fails or BENCH_KEEP=1.
Prints one line of figures (and writes them as JSON with --json); exits 1
when a request failed or was misrouted, a switch was refused, descriptors
grew or RSS grew beyond --rss-slack-kib.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import harness  # noqa: E402
import soak  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--switches", type=int, default=1000)
    ap.add_argument("--max-seconds", type=float, default=900)
    ap.add_argument("--keepalive", type=int, default=2, help="keep-alive client threads")
    ap.add_argument("--newconn", type=int, default=2, help="new-connection-per-request client threads")
    ap.add_argument("--pause", type=float, default=0.05, help="up to this many s between switches")
    ap.add_argument("--rss-slack-kib", type=int, default=24 * 1024)
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="cutover-soak-")
    env = harness.Env(tmp, "soak")
    problem = None
    t0 = time.monotonic()
    try:
        fig = soak.run(env, a.switches, a.max_seconds, a.keepalive, a.newconn, a.pause,
                       log=lambda m: print(m, file=sys.stderr, flush=True))
        fig["cutoverd"] = harness.cutoverd_path()
        fig["loadavg"] = open("/proc/loadavg").read().split()[:3]
        print(soak.report(fig), flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(fig, f, indent=2)
                f.write("\n")
        soak.verdict(fig, a.switches, a.rss_slack_kib)
    except harness.TestFailure as e:
        problem = str(e)
    finally:
        problems = env.close()
    if problems and not problem:
        problem = "; ".join(problems)
    print("# soak: %.0fs in all" % (time.monotonic() - t0), file=sys.stderr)
    if problem:
        print("FAIL: %s (files in %s)" % (problem, tmp), file=sys.stderr)
        return 1
    if os.environ.get("BENCH_KEEP"):
        print("# files in %s" % tmp, file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
