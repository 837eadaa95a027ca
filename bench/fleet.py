#!/usr/bin/env python3
"""Fleet switch latency (issue 11): a real 3-member etcd cluster and three
cutoverd on loopback, N switches (green, blue, ...) from alternating nodes.
For each switch: time from `cutoverctl switch` to the etcd commit, and from
the commit to the last node applying it. See bench/README.md ("fleet.py").

  bench/fleet.py BUILD_DIR [N] [OUT.json]

BUILD_DIR holds src/cutoverd, src/cutoverctl and
tests/backend/cutover-testbackend (use a build without sanitizers for
numbers). The commit instant is bounded from above by the earliest of the
writer's "written to etcd" log line and every node's "applied generation"
line (etcd answers the transaction and feeds the watches in either order);
applies are the nodes' own log timestamps (one clock, millisecond
resolution), so "commit to last apply" is an upper bound too.
"""
import json
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def wrk(port):
    import subprocess
    best = 0.0
    for _ in range(3):
        p = subprocess.run(["wrk", "-t1", "-c16", "-d5s", "http://127.0.0.1:%d/" % port],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        m = re.search(r"Requests/sec:\s+([0-9.]+)", p.stdout.decode())
        if m:
            best = max(best, float(m.group(1)))
    return best


def throughput(env, node):
    """The same node's pools behind cutoverd with the fleet on (node) and
    off (a second cutoverd without the group), one after the other."""
    from switching import HEALTH_FAST, AUTO_ROLLBACK_OFF
    on = wrk(node.d.port)
    d = env.cutoverd(blue=[node.blue], green=[node.green], extra=HEALTH_FAST + AUTO_ROLLBACK_OFF,
                     name="nofleet.conf")
    time.sleep(1)
    off = wrk(d.port)
    return {"fleet_on": on, "fleet_off": off}


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    build = os.path.abspath(argv[1])
    n = int(argv[2]) if len(argv) > 2 else 100
    out = argv[3] if len(argv) > 3 else None
    os.environ["CUTOVERD"] = os.path.join(build, "src", "cutoverd")
    os.environ["CUTOVERCTL"] = os.path.join(build, "src", "cutoverctl")
    os.environ["TESTBACKEND"] = os.path.join(build, "tests", "backend", "cutover-testbackend")
    import harness
    from fleetlib import EtcdCluster, start_node, wait_fleet_healthy

    tmp = tempfile.mkdtemp(prefix="cutover-fleet-bench-")
    os.chmod(tmp, 0o700)
    env = harness.Env(tmp, "fleet-bench")
    rows = []
    try:
        cluster = EtcdCluster(env)
        nodes = [start_node(env, cluster.endpoints(), "door-%d" % (i + 1), lease="10s", timeout="2s")
                 for i in range(3)]
        wait_fleet_healthy(nodes, "green")
        wait_fleet_healthy(nodes, "blue")
        for i in range(n):
            target = "green" if i % 2 == 0 else "blue"
            nd = nodes[i % 3]
            t_cmd = time.time()
            r = nd.ctl.run("switch", target)
            if r.rc != 0 or not r.json.get("converged"):
                raise SystemExit("switch %d failed: %r" % (i, r))
            rows.append((r.json["generation"], nd, t_cmd))
            time.sleep(0.05)
        logs = [x.d.log_text() for x in nodes]
        thr = throughput(env, nodes[0]) if os.environ.get("FLEET_BENCH_WRK", "1") != "0" else None
    finally:
        problems = env.close()
    ts = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z"

    def stamp(s):
        return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()

    applied = [{} for _ in logs]
    written = {}
    for k, text in enumerate(logs):
        for m in re.finditer(ts + r" \[info\] fleet: applied generation (\d+) ", text):
            applied[k][int(m.group(2))] = stamp(m.group(1))
        for m in re.finditer(ts + r" \[info\] fleet: switch to \w+ written to etcd \(revision \d+, generation (\d+)\)",
                             text):
            written[int(m.group(2))] = stamp(m.group(1))
    to_commit, to_last = [], []
    for gen, nd, t_cmd in rows:
        applies = [a[gen] for a in applied if gen in a]
        if len(applies) != 3 or gen not in written:
            raise SystemExit("generation %d: missing log lines" % gen)
        t_commit = min([written[gen]] + applies)
        to_commit.append((t_commit - t_cmd) * 1000)
        to_last.append((max(applies) - t_commit) * 1000)

    def stats(v):
        v = sorted(v)
        return {"median_ms": round(statistics.median(v), 1), "p99_ms": round(v[min(len(v) - 1, int(len(v) * 0.99))], 1),
                "max_ms": round(v[-1], 1)}

    res = {"switches": n, "nodes": 3, "etcd_members": 3,
           "cutoverctl_to_commit": stats(to_commit), "commit_to_last_apply": stats(to_last)}
    if thr is not None:
        res["throughput_rps"] = thr
        print("throughput (wrk -t1 -c16 -d5s, GET /, best of 3): fleet on %.0f req/s, fleet off %.0f req/s"
              % (thr["fleet_on"], thr["fleet_off"]))
    print("fleet switch latency over %d switches, 3 nodes, 3 etcd members (ms)" % n)
    for k in ("cutoverctl_to_commit", "commit_to_last_apply"):
        print("  %-22s median %7.1f  p99 %7.1f  max %7.1f" % (k, res[k]["median_ms"], res[k]["p99_ms"],
                                                             res[k]["max_ms"]))
    if problems:
        print("teardown problems: %s" % problems)
    if out:
        with open(out, "w") as f:
            json.dump(res, f, indent=2)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
