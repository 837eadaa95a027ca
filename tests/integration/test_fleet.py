"""A fleet of cutoverd on etcd (issue 11), through real processes: a real
3-member etcd cluster (/usr/bin/etcd, loopback ports, own data dirs) and
two or three cutoverd nodes with their own backends. DESIGN.md "A fleet of
cutoverd on etcd" is the contract tested here.

Helpers live in fleetlib.py.
"""

import json
import signal
import threading
import time

from harness import check, wait_for
from fleetlib import EtcdCluster, start_node, wait_color, wait_confirmed, wait_fleet_healthy
from switching import history_path, state_path, kill9, restart


def _fleet(env, n=3, **kw):
    cluster = EtcdCluster(env)
    nodes = [start_node(env, cluster.endpoints(), "door-%d" % (i + 1), **kw) for i in range(n)]
    for nd in nodes:
        wait_confirmed(nd, "green")
    wait_fleet_healthy(nodes, "green")
    return cluster, nodes


def test_fleet_switch_converges_on_all(env):
    cluster, nodes = _fleet(env)
    for nd in nodes:
        check(nd.color() == "blue", "%s serves %s before the switch" % (nd.tag, nd.color()))
        f = nd.fleet()
        check(f["etcd"] == "ok" and f["diverged"] is False and f["node"] == nd.tag, "fleet status: %r" % f)
    r = nodes[1].ctl.run("switch", "green")
    check(r.rc == 0 and r.json["ok"] is True and r.json["converged"] is True, "switch: %r" % r)
    gen = r.json["generation"]
    # The answer came once every live node applied it: no waiting here.
    for nd in nodes:
        st = nd.status()
        check(st["active"] == "green" and st["generation"] == gen, "%s: %r" % (nd.tag, st))
        check(nd.color() == "green", "%s still serves %s" % (nd.tag, nd.color()))
    value, _ = cluster.get("/cutover/test/state")
    doc = json.loads(value)
    check("active green" in doc["state"] and doc["node"] == "door-2", "KEY/state: %r" % doc)
    # History on another node names the node that made the change.
    h = nodes[0].ctl.ok("history")["entries"]
    check(any(e["event"] == "switch" and e.get("node") == "door-2" and e["to"] == "green" for e in h),
          "door-1 history: %r" % h)
    # The state file keeps the last applied copy.
    with open(state_path(env, "door-3")) as fh:
        check("active green" in fh.read(), "door-3 state file not updated")
    # Metrics exist on... (no metrics listener in this setup): status says converged.
    wait_for(lambda: all(nd.fleet()["converged"] for nd in nodes), 10, "status converged everywhere")
