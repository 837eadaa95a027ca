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


def _fleet(env, n=3, cluster=None, endpoints=None, **kw):
    cluster = cluster or EtcdCluster(env)
    nodes = [start_node(env, (endpoints[i] if endpoints else cluster.endpoints()), "door-%d" % (i + 1), **kw)
             for i in range(n)]
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
    wait_for(lambda: all(nd.fleet()["converged"] for nd in nodes), 10, "status converged everywhere")
    for nd in nodes:
        ages = [x["age_s"] for x in nd.fleet()["nodes"]]
        check(all(0 <= a < 10 for a in ages), "%s: presence ages %r" % (nd.tag, ages))
    # Text status shows the fleet too.
    r = nodes[0].ctl.run("status", as_json=False)
    check(r.rc == 0 and "fleet:      node door-1, etcd ok" in r.out and "door-3" in r.out, "status text: %r" % r)


def test_fleet_concurrent_changes_one_wins(env):
    """Two nodes ask for a change at the same moment, five times over:
    exactly one wins each time (the transaction compares the revision),
    and --if-gen keeps its meaning."""
    cluster, nodes = _fleet(env, n=2)
    wait_fleet_healthy(nodes, "blue")
    gen = nodes[0].status()["generation"]
    for rnd in range(5):
        target = "green" if rnd % 2 == 0 else "blue"
        ps = [nd.ctl.popen("switch", target, "--if-gen", str(gen)) for nd in nodes]
        t0 = time.monotonic()
        rs = [nd.ctl.finish(p, ("switch", target), t0) for nd, p in zip(nodes, ps)]
        won = [r for r in rs if r.rc == 0 and r.json and r.json.get("changed") is True]
        lost = [r for r in rs if r not in won]
        check(len(won) == 1, "round %d: %d winners: %r" % (rnd, len(won), rs))
        check(all(r.rc == 1 and r.json and r.json["ok"] is False for r in lost), "round %d: loser: %r" % (rnd, lost))
        gen += 1
        check(won[0].json["generation"] == gen and won[0].json["converged"] is True, "round %d: %r" % (rnd, won))
        for nd in nodes:
            st = nd.status()
            check(st["generation"] == gen and st["active"] == target, "round %d: %s: %r" % (rnd, nd.tag, st))
    value, _ = cluster.get("/cutover/test/state")
    check("generation %d\n" % gen in json.loads(value)["state"], "etcd holds %r" % value)
    # --if-gen: a stale generation is refused even for the active color.
    r = nodes[1].ctl.run("switch", "green", "--if-gen", str(gen - 1))
    check(r.rc == 1 and "generation" in r.err, "stale --if-gen: %r" % r)
    r = nodes[1].ctl.run("switch", "blue", "--if-gen", str(gen))
    check(r.rc == 0 and r.json["generation"] == gen + 1 and r.json["converged"] is True, "--if-gen: %r" % r)


def test_fleet_node_killed_drops_out_and_restart_takes_etcd_state(env):
    """A node killed with -9 leaves "live" once its lease expires; a change
    then converges without it; restarted, it applies etcd's state, not its
    stale state file."""
    cluster, nodes = _fleet(env)
    kill9(nodes[2].d)
    wait_for(lambda: all(len(nd.fleet()["nodes"]) == 2 for nd in nodes[:2]), 15,
             "door-3 drops out of live after its lease")
    r = nodes[0].ctl.run("switch", "green")
    check(r.rc == 0 and r.json["converged"] is True and "lagging" not in r.json, "switch: %r" % r)
    with open(state_path(env, "door-3")) as fh:
        check("active blue" in fh.read(), "door-3's state file should still say blue")
    nodes[2].d = restart(env, nodes[2].d)
    st = nodes[2].status()
    check(st["active"] == "green" and st["generation"] == r.json["generation"],
          "restarted door-3 took %r, not etcd's state" % st)
    check(nodes[2].color() == "green", "restarted door-3 serves %s" % nodes[2].color())
    with open(state_path(env, "door-3")) as fh:
        check("active green" in fh.read(), "door-3's state file keeps the applied copy")
    wait_for(lambda: len(nodes[0].fleet()["nodes"]) == 3, 15, "door-3 live again")


def test_fleet_stopped_node_lags_exit_4(env):
    """A node that stops applying (SIGSTOP) but whose presence is still
    live makes a change answer converged:false with it lagging, and
    cutoverctl exit 4; the change stays in effect and the node catches up."""
    cluster, nodes = _fleet(env, lease="8s", timeout="1500ms")
    nodes[2].d.proc.send_signal(signal.SIGSTOP)
    try:
        r = nodes[0].ctl.run("switch", "green")
        check(r.rc == 4, "switch with a stopped node: %r" % r)
        check(r.json["ok"] is True and r.json["converged"] is False and r.json["lagging"] == ["door-3"],
              "answer: %r" % r.json)
        check("door-3" in r.err, "stderr names the laggard: %r" % r.err)
        check(nodes[1].color() == "green", "the change stays in effect")
        r = nodes[0].ctl.run("switch", "blue", as_json=False)
        check(r.rc == 4 and "lagging: door-3" in r.err, "text: %r" % r)
    finally:
        nodes[2].d.proc.send_signal(signal.SIGCONT)
    wait_color(nodes[2], "blue")
    wait_for(lambda: nodes[0].fleet()["converged"], 15, "converged after SIGCONT")
