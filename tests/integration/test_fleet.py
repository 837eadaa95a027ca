"""A fleet of cutoverd on etcd (issue 11), through real processes: a real
3-member etcd cluster (/usr/bin/etcd, loopback ports, own data dirs) and
two or three cutoverd nodes with their own backends. DESIGN.md "A fleet of
cutoverd on etcd" is the contract tested here.

Helpers live in fleetlib.py.
"""

import json
import re
import signal
import threading
import time
import uuid

from harness import check, wait_for
from fleetlib import EtcdCluster, start_node, wait_color, wait_confirmed, wait_fleet_healthy
from switching import history_path, state_path, kill9, restart, stop, AUTO_ROLLBACK_OFF


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
    # A node stopped cleanly removes its presence at once: the next change
    # does not wait for it (its lease is 3s; fleet.timeout 1.5s).
    stop(nodes[1].d)
    check("left the fleet (presence removed)" in nodes[1].d.log_text(), "door-2 revoked its lease at stop")
    wait_for(lambda: len(nodes[0].fleet()["nodes"]) == 2, 10, "door-2's presence gone")
    # (the restarted door-3 must confirm blue healthy first: the fleet-wide check)
    wait_fleet_healthy([nodes[0], nodes[2]], "blue")
    r = nodes[0].ctl.run("rollback")
    check(r.rc == 0 and r.json["converged"] is True, "rollback after a clean stop: %r" % r)
    # door-3 killed while a switch is in flight: the switch stands (answered
    # converged or with door-3 lagging), and door-3 restarted applies it.
    wait_fleet_healthy([nodes[0], nodes[2]], "green")
    t0 = time.monotonic()
    p = nodes[0].ctl.popen("switch", "green")
    kill9(nodes[2].d)
    r = nodes[0].ctl.finish(p, ("switch", "green"), t0)
    check(r.rc in (0, 4) and r.json["ok"] is True and r.json["changed"] is True, "switch mid-kill: %r" % r)
    check(r.rc == 0 or r.json["lagging"] == ["door-3"], "only door-3 may lag: %r" % r)
    nodes[2].d = restart(env, nodes[2].d)
    st = nodes[2].status()
    check(st["active"] == "green" and st["generation"] == r.json["generation"], "door-3 after restart: %r" % st)


def test_fleet_stopped_node_lags_exit_4(env):
    """A node that stops applying (SIGSTOP) but whose presence is still
    live makes a change answer converged:false with it lagging, and
    cutoverctl exit 4; the change stays in effect and the node catches up."""
    cluster, nodes = _fleet(env, lease="12s", timeout="1500ms")
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


def _metrics(env, port):
    r = env.curl("http://127.0.0.1:%d/metrics" % port)
    check(r.returncode == 0, "metrics: %r" % r.stderr)
    out = {}
    for line in r.stdout.decode().splitlines():
        if line.startswith("cutover_fleet_"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


UNREACHABLE = (r"fleet: etcd unreachable",)


def test_fleet_partition_local_and_reconcile(env):
    """door-3 talks to one etcd member only; that member is stopped
    (SIGSTOP): door-3 keeps serving, reports etcd unreachable, refuses
    changes naming etcd, accepts --local (diverged); the rest of the fleet
    moves on and etcd is compacted meanwhile; when the member comes back,
    door-3 applies etcd's state and is no longer diverged."""
    cluster = EtcdCluster(env)
    m0, m1, m2 = cluster.members
    mport = env.port()
    metrics = 'metrics: { listen = "127.0.0.1:%d"; };\n' % mport
    # Stopping m2 may stop the leader: until the others elect a new one
    # (about a second), door-1 and door-2 may find etcd unreachable too.
    nodes = [start_node(env, cluster.endpoints([m0, m1]), "door-1", expect_errors=UNREACHABLE),
             start_node(env, cluster.endpoints([m0, m1]), "door-2", expect_errors=UNREACHABLE),
             start_node(env, cluster.endpoints([m2]), "door-3", expect_errors=UNREACHABLE,
                        extra=AUTO_ROLLBACK_OFF + metrics)]
    wait_fleet_healthy(nodes, "green")
    m = _metrics(env, mport)
    check(m.get("cutover_fleet_connected") == 1 and m.get("cutover_fleet_nodes") == 3
          and m.get("cutover_fleet_converged") == 1, "metrics before: %r" % m)
    cluster.stop_member(m2, signal.SIGSTOP)
    try:
        wait_for(lambda: nodes[2].fleet()["etcd"] == "unreachable", 20, "door-3 sees etcd unreachable")
        check(nodes[2].color() == "blue", "door-3 keeps serving its last applied state")
        check(_metrics(env, mport).get("cutover_fleet_connected") == 0, "cutover_fleet_connected while cut off")
        r = nodes[2].ctl.run("switch", "green")
        check(r.rc == 1 and "etcd" in r.err and "unreachable" in r.err, "refused change: %r" % r)
        r = nodes[2].ctl.run("switch", "green", "--local")
        check(r.rc == 0 and r.json["changed"] is True, "--local: %r" % r)
        f = nodes[2].fleet()
        check(f["diverged"] is True and f["etcd"] == "unreachable", "door-3 fleet status: %r" % f)
        check(nodes[2].color() == "green", "--local changed door-3")
        # The rest of the fleet moves on (door-3 leaves live once its lease is out).
        wait_for(lambda: len(nodes[0].fleet()["nodes"]) == 2, 15, "door-3 leaves live")
        wait_for(lambda: all(nd.fleet()["etcd"] == "ok" for nd in nodes[:2]), 15, "door-1, door-2 on etcd")
        check(nodes[0].color() == "blue", "a --local change is not written to etcd")
        r = nodes[0].ctl.run("switch", "green")
        check(r.rc == 0 and r.json["converged"] is True, "door-1 switch: %r" % r)
        r = nodes[1].ctl.run("rollback")
        check(r.rc == 0 and r.json["active"] == "blue" and r.json["converged"] is True, "door-2 rollback: %r" % r)
        gen = r.json["generation"]
        # Compaction while door-3 is cut off: it must re-read, never skip.
        _, rev = cluster.get("/cutover/test/state")
        cluster.call("/v3/kv/compaction", {"revision": str(rev), "physical": True}, member=m0)
    finally:
        cluster.stop_member(m2, signal.SIGCONT)
    wait_for(lambda: nodes[2].fleet()["etcd"] == "ok", 30, "door-3 reconnects")
    wait_for(lambda: nodes[2].status()["generation"] == gen, 15, "door-3 applies etcd's state")
    st = nodes[2].status()
    check(st["active"] == "blue" and st["fleet"]["diverged"] is False, "door-3 after: %r" % st)
    check(nodes[2].color() == "blue", "door-3 serves etcd's color again")
    h = nodes[2].ctl.ok("history")["entries"]
    check(any(e["event"] == "rollback" and e.get("node") == "door-2" for e in h), "door-3 history: %r" % h)
    wait_for(lambda: all(nd.fleet()["converged"] and len(nd.fleet()["nodes"]) == 3 for nd in nodes), 15,
             "fleet converged with door-3 back")
    m = _metrics(env, mport)
    check(m.get("cutover_fleet_connected") == 1 and m.get("cutover_fleet_apply_seconds_count", 0) >= 1,
          "metrics after: %r" % m)


def test_fleet_guard_rollback_rolls_back_fleet(env):
    """A guard breach on door-2 (its green answers 500) rolls back the whole
    fleet; history on every node names door-2 and the reason."""
    guard = 'auto_rollback: { enabled = true; error_rate = 0.2; min_requests = 5; window = "10s"; };\n'
    cluster, nodes = _fleet(env, extra=guard, expect_errors=(r"auto-rollback",))
    r = nodes[0].ctl.run("switch", "green")
    check(r.rc == 0 and r.json["converged"] is True, "switch: %r" % r)
    nodes[1].green.ctl("/_ctl/fail?status=500")
    for _ in range(20):
        nodes[1].d.get("/")
    for nd in nodes:
        wait_color(nd, "blue")
    for nd in nodes:
        h = nd.ctl.ok("history")["entries"]
        check(any(e["event"] == "rollback" and e["trigger"] == "auto-rollback" and e.get("node") == "door-2"
                  and e.get("reason") for e in h), "%s history: %r" % (nd.tag, h[-3:]))
        check(nd.color() == "blue", "%s serves %s" % (nd.tag, nd.color()))
    doc = json.loads(cluster.get("/cutover/test/state")[0])
    check(doc["node"] == "door-2" and doc["trigger"] == "auto-rollback" and "active blue" in doc["state"],
          "etcd: %r" % doc)


def test_fleet_etcd_member_restart_watch_resumes(env):
    """The member every node talks to is killed and later restarted; the
    nodes fail over, resume their watches, and changes still converge."""
    cluster = EtcdCluster(env)
    m0, m1, m2 = cluster.members
    cluster_eps = cluster.endpoints()
    nodes = [start_node(env, cluster_eps, "door-%d" % (i + 1), expect_errors=UNREACHABLE) for i in range(3)]
    wait_fleet_healthy(nodes, "green")
    cluster.stop_member(m0, signal.SIGKILL)
    wait_for(lambda: all(nd.fleet()["etcd"] == "ok" and nd.fleet()["endpoint"] != m0.url for nd in nodes), 30,
             "every node on another member")
    # A change during the election that follows the kill times out (and
    # is refused, safely); wait until the two left have a leader.
    wait_for(lambda: cluster.healthy(m1) and cluster.healthy(m2), 30, "a leader without m0")
    r = nodes[1].ctl.run("switch", "green")
    check(r.rc == 0 and r.json["converged"] is True, "switch with m0 down: %r" % r)
    cluster.start(m0)
    wait_for(lambda: cluster.healthy(m0), 30, "m0 back")
    cluster.stop_member(m1, signal.SIGKILL)
    wait_for(lambda: all(nd.fleet()["etcd"] == "ok" and nd.fleet()["endpoint"] != m1.url for nd in nodes), 30,
             "every node off m1")
    wait_for(lambda: cluster.healthy(m0) and cluster.healthy(m2), 30, "a leader without m1")
    r = nodes[2].ctl.run("rollback")
    check(r.rc == 0 and r.json["converged"] is True, "rollback with m1 down: %r" % r)
    for nd in nodes:
        check(nd.color() == "blue", "%s serves %s" % (nd.tag, nd.color()))


def test_fleet_start_without_etcd(env):
    """etcd unreachable at start: with no state file cutoverd refuses to
    start; with one it serves the file's color, says etcd is unreachable
    and refuses changes naming etcd."""
    import subprocess
    from harness import cutoverd_path, port_accepts
    dead = "http://127.0.0.1:%d" % env.port()
    b, g = env.backend("b", "blue"), env.backend("g", "green")
    from fleetlib import fleet_group, SWITCH_FLEET
    from switching import HEALTH_FAST, AUTO_ROLLBACK_OFF as OFF, Ctl, sock_path
    extra = HEALTH_FAST + SWITCH_FLEET + OFF + fleet_group([dead], "/cutover/test", "door-9", "3s", "500ms")
    conf, port = env.write_config(blue=[b], green=[g], extra=extra, name="door-9.conf")
    p = subprocess.run([cutoverd_path(), "-c", conf], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    out = p.stdout.decode(errors="replace")
    check(p.returncode == 1 and "etcd is unreachable and there is no state file" in out, "start: %r" % out[-500:])
    check(not port_accepts(port), "something accepts on the proxy port")
    with open(state_path(env, "door-9"), "w") as fh:
        fh.write("cutover-state 1\nactive green\nprevious blue\ngeneration 4\n")
    d = env.cutoverd(blue=[b], green=[g], extra=extra, name="door-9.conf", port=port, expect_errors=UNREACHABLE)
    ctl = Ctl(sock_path(env, "door-9"))
    st = ctl.ok("status")
    check(st["active"] == "green" and st["generation"] == 4 and st["fleet"]["etcd"] == "unreachable",
          "status: %r" % st)
    check("serving the state file's last applied copy" in d.log_text(), "log says so")
    r = ctl.run("switch", "blue", "--force")
    check(r.rc == 1 and "etcd" in r.err, "switch: %r" % r)
    r = ctl.run("commit")
    check(r.rc == 1 and "etcd" in r.err, "commit: %r" % r)


def test_fleet_etcd_tls_client_certs(env):
    """etcd over https with client certificate authentication: the nodes
    talk to it with fleet.tls (CA, certificate, key) and a switch
    converges; a node without a client certificate cannot start (etcd
    refuses it and there is no state file)."""
    import subprocess
    from harness import cutoverd_path
    from fleetlib import fleet_group, make_certs, SWITCH_FLEET
    from switching import HEALTH_FAST
    tls = make_certs(env)
    cluster = EtcdCluster(env, tls=tls)
    check(all(e.startswith("https://") for e in cluster.endpoints()), "https endpoints")
    nodes = [start_node(env, cluster.endpoints(), "door-%d" % (i + 1), tls=tls) for i in range(2)]
    wait_fleet_healthy(nodes, "green")
    r = nodes[0].ctl.run("switch", "green")
    check(r.rc == 0 and r.json["converged"] is True, "switch over TLS: %r" % r)
    check(nodes[1].color() == "green", "door-2 follows over TLS")
    # Without a client certificate etcd refuses the handshake.
    b, g = env.backend("nb", "blue"), env.backend("ng", "green")
    group = fleet_group(cluster.endpoints(), "/cutover/test", "door-9", "3s", "1s")
    check(group.endswith("};\n"), "fleet group text")
    group = group[:-3] + '  tls = { ca = "%s"; };\n};\n' % tls["ca"]
    extra = HEALTH_FAST + SWITCH_FLEET + AUTO_ROLLBACK_OFF + group
    conf, port = env.write_config(blue=[b], green=[g], extra=extra, name="door-9.conf")
    p = subprocess.run([cutoverd_path(), "-c", conf], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    out = p.stdout.decode(errors="replace")
    check(p.returncode == 1 and "etcd is unreachable and there is no state file" in out, "no client cert: %r" % out[-600:])


FLEET_BAD = [
    ('fleet: { key = "/x"; };', ("fleet.etcd", "required")),
    ('fleet: { etcd = ( "127.0.0.1:2379" ); key = "/x"; };', ("not an etcd endpoint",)),
    ('fleet: { etcd = ( "http://127.0.0.1:2379/v3" ); key = "/x"; };', ("not an etcd endpoint",)),
    ('fleet: { etcd = ( ); key = "/x"; };', ("at least one etcd endpoint",)),
    ('fleet: { etcd = ( "http://127.0.0.1:2379" ); };', ("fleet.key",)),
    ('fleet: { etcd = ( "http://127.0.0.1:2379" ); key = "/x/"; };', ("fleet.key", "key prefix")),
    ('fleet: { etcd = ( "http://127.0.0.1:2379" ); key = "/x"; node = "a b"; };', ("fleet.node", "letters")),
    ('fleet: { etcd = ( "http://127.0.0.1:2379" ); key = "/x"; lease = "1s"; };', ("fleet.lease",)),
    ('fleet: { etcd = ( "http://127.0.0.1:2379" ); key = "/x"; lease = "3s"; timeout = "3s"; };',
     ("fleet.timeout", "shorter than")),
    ('fleet: { etcd = ( "https://127.0.0.1:2379" ); key = "/x"; tls = { cert = "/c.pem"; }; };',
     ("cert and key go together",)),
    ('fleet: { etcd = ( "http://127.0.0.1:2379" ); key = "/x"; bogus = 1; };', ("bogus",)),
]


def test_fleet_config_errors(env):
    """A bad fleet group is refused as FILE:LINE: message by cutoverd -t."""
    import os
    from harness import cutoverd_path
    base = ('listen = ( { address = "127.0.0.1:18080"; } );\n'
            'pools: { blue: { servers = ( "127.0.0.1:9001" ); }; green: { servers = ( ); }; };\n')
    for i, (text, words) in enumerate(FLEET_BAD):
        path = os.path.join(env.tmp, "fleet%d.conf" % i)
        with open(path, "w") as f:
            f.write(base + text + "\n")
        r = env.run([cutoverd_path(), "-t", "-c", path], timeout=20)
        lines = [ln for ln in (r.stderr + r.stdout).decode("utf-8", "replace").splitlines() if ln.strip()]
        check(r.returncode == 1, "accepted %r: %s" % (text, lines))
        check(lines and lines[0].startswith(path + ":3: "), "error for %r not at line 3: %r" % (text, lines))
        check(all(w in lines[0] for w in words), "error for %r lacks %s: %r" % (text, words, lines))


def test_fleet_switches_under_load(env):
    """Load on all three nodes during ten fleet switches made from
    alternating nodes: every switch converges, no request fails, and no
    request sent after a switch was answered (by then every node has
    applied it) is served by the color the fleet left."""
    from switching import Load, classify
    cluster, nodes = _fleet(env)
    wait_fleet_healthy(nodes, "blue")
    loads = [Load(nd.d.port, nthreads=2).start() for nd in nodes]
    switches = []
    try:
        time.sleep(0.3)
        for i in range(10):
            target = "green" if i % 2 == 0 else "blue"
            nd = nodes[i % 3]
            t0 = time.monotonic()
            r = nd.ctl.run("switch", target)
            t1 = time.monotonic()
            check(r.rc == 0 and r.json["converged"] is True and r.json["changed"] is True,
                  "switch %d on %s: %r" % (i, nd.tag, r))
            switches.append((t0, t1, target))
            time.sleep(0.2)
    finally:
        recs = [ld.stop() for ld in loads]
    for nd, rs in zip(nodes, recs):
        total, failed, misrouted, ambiguous, examples = classify(rs, "blue", switches)
        check(total > 50, "%s: only %d requests" % (nd.tag, total))
        check(failed == 0 and misrouted == 0, "%s: %d requests, %d failed, %d misrouted: %s"
              % (nd.tag, total, failed, misrouted, examples))


def test_fleet_guard_rollback_while_cut_off(env):
    """door-3, cut off from etcd, sees its green fail: its guard rolls back
    locally at once (safety first) and writes the rollback once etcd is
    back, and the fleet follows. The second time, etcd moves on (a commit
    elsewhere) before door-3 is back: then etcd's state wins."""
    guard = 'auto_rollback: { enabled = true; error_rate = 0.2; min_requests = 5; window = "10s"; };\n'
    errs = UNREACHABLE + (r"auto-rollback",)
    cluster = EtcdCluster(env)
    m0, m1, m2 = cluster.members
    eps = [cluster.endpoints([m0, m1])] * 2 + [cluster.endpoints([m2])]
    cluster, nodes = _fleet(env, cluster=cluster, endpoints=eps, extra=guard, expect_errors=errs)

    def cut_off_and_trip():
        cluster.stop_member(m2, signal.SIGSTOP)
        wait_for(lambda: nodes[2].fleet()["etcd"] == "unreachable", 20, "door-3 cut off")
        for _ in range(20):
            nodes[2].d.get("/")
        wait_color(nodes[2], "blue")
        check(nodes[2].fleet()["diverged"] is True, "a rollback made alone diverges")

    r = nodes[0].ctl.run("switch", "green")
    check(r.rc == 0 and r.json["converged"] is True, "switch: %r" % r)
    nodes[2].green.ctl("/_ctl/fail?status=500")
    try:
        cut_off_and_trip()
        check(nodes[0].color() == "green", "the rest of the fleet stays on green meanwhile")
    finally:
        cluster.stop_member(m2, signal.SIGCONT)
    for nd in nodes:
        wait_color(nd, "blue", timeout=30)
    h = nodes[0].ctl.ok("history")["entries"]
    check(any(e["event"] == "rollback" and e["trigger"] == "auto-rollback" and e.get("node") == "door-3"
              for e in h), "door-1 history: %r" % h[-3:])
    wait_for(lambda: nodes[2].fleet()["diverged"] is False, 15, "door-3 no longer diverged")
    # Second time: etcd moves on meanwhile.
    wait_fleet_healthy(nodes, "green")
    r = nodes[0].ctl.run("switch", "green")
    check(r.rc == 0 and r.json["converged"] is True, "switch again: %r" % r)
    try:
        cut_off_and_trip()
        wait_for(lambda: all(nd.fleet()["etcd"] == "ok" for nd in nodes[:2]), 15, "door-1, door-2 on etcd")
        r = nodes[0].ctl.run("commit")
        check(r.rc == 0 and r.json["changed"] is True, "commit elsewhere: %r" % r)
    finally:
        cluster.stop_member(m2, signal.SIGCONT)
    wait_for(lambda: nodes[2].fleet()["etcd"] == "ok" and nodes[2].status()["active"] == "green", 30,
             "door-3 takes etcd's state")
    check("etcd moved on" in nodes[2].d.log_text(), "door-3 says why its rollback was not written")
    check(nodes[0].color() == "green" and nodes[2].fleet()["diverged"] is False, "etcd wins")


def test_fleet_whole_etcd_restarted(env):
    """The whole etcd cluster stops and starts again: the nodes serve on
    meanwhile, reconnect, keep (or renew) their presence, and the next
    switch converges."""
    cluster, nodes = _fleet(env, n=2, expect_errors=UNREACHABLE)
    for m in cluster.members:
        cluster.stop_member(m, signal.SIGTERM)
    wait_for(lambda: all(nd.fleet()["etcd"] == "unreachable" for nd in nodes), 20, "nodes see etcd gone")
    check(all(nd.color() == "blue" for nd in nodes), "nodes keep serving")
    for m in cluster.members:
        cluster.start(m)
    cluster.wait_healthy()
    wait_for(lambda: all(nd.fleet()["etcd"] == "ok" and len(nd.fleet()["nodes"]) == 2 for nd in nodes), 30,
             "nodes back on etcd with both presences")
    wait_fleet_healthy(nodes, "green")
    r = nodes[1].ctl.run("switch", "green")
    check(r.rc == 0 and r.json["converged"] is True, "switch after the restart: %r" % r)
    check(nodes[0].color() == "green", "door-1 follows")


# ---- a fleet-wide ramp (issue 12) -------------------------------------------

from test_ramp import batch, bucket, expected  # noqa: E402


def _clients():
    """Bucket cookies on every side of 10 % and 50 %: 8 below 10 %, 8 from
    10 % to 50 %, 8 above 50 %."""
    lo, mid, hi = [], [], []
    while len(lo) < 8 or len(mid) < 8 or len(hi) < 8:
        ck = uuid.uuid4().hex
        b = bucket(ck)
        for part, ok in ((lo, b < 1000), (mid, 1000 <= b < 5000), (hi, b >= 5000)):
            if ok and len(part) < 8:
                part.append(ck)
    return lo + mid + hi


def _ramp_of(nd):
    return nd.status().get("ramp")


def _same_step_and_buckets(nodes, clients, pct, step, driver):
    """Every node reports the ramp at pct (step of its steps, driven by
    driver) and sends each client where its bucket says: the same color
    from every node. The ramp must not move while this looks."""
    seen = {}
    for nd in nodes:
        r = _ramp_of(nd)
        check(r is not None and r["weight_pct"] == pct and r["step"] == step and r["target"] == "green"
              and r["driver"] == driver and r["driver_live"] is True, "%s: ramp %r" % (nd.tag, r))
        got = batch(nd.d.port, clients, nconn=2)
        wrong = [ck for ck in clients if got[ck] != expected(ck, pct)]
        check(not wrong, "%s at %d%%: %d of %d clients on the wrong color" % (nd.tag, pct, len(wrong), len(clients)))
        seen[nd.tag] = got
        r = _ramp_of(nd)
        check(r is not None and r["weight_pct"] == pct, "%s: the ramp moved while checking: %r" % (nd.tag, r))
    first = seen[nodes[0].tag]
    check(all(g == first for g in seen.values()), "nodes disagree about clients")


def _wait_ramp(nodes, pct, timeout=30):
    wait_for(lambda: all((_ramp_of(nd) or {}).get("weight_pct") == pct for nd in nodes), timeout,
             "every node's ramp at %d%%" % pct, interval=0.1)


def test_fleet_ramp_same_buckets_commit_rollback_elsewhere(env):
    """A ramp started on door-1 is one write to KEY/state: every node
    shows the same weight and step and sends a client (its cutover_bucket
    cookie) to the same color; commit on door-2 ends it at 100 % on every
    node; a ramp rolled back on door-3 ends at 0 % on every node."""
    cluster, nodes = _fleet(env)
    clients = _clients()
    gen = nodes[0].status()["generation"]
    r = nodes[0].ctl.run("switch", "green", "--ramp", "10,50", "--step", "600s")
    check(r.rc == 0 and r.json["ok"] is True and r.json["converged"] is True, "ramp: %r" % r)
    check(r.json["ramp"]["weight_pct"] == 10 and r.json["ramp"]["driver"] == "door-1"
          and r.json["generation"] == gen and r.json["active"] == "blue", "answer: %r" % r.json)
    for nd in nodes:
        st = nd.status()
        check(st["state"] == "ramping" and st["active"] == "blue" and st["generation"] == gen
              and st["ramp"]["steps"] == [10, 50], "%s: %r" % (nd.tag, st))
    _same_step_and_buckets(nodes, clients, 10, 1, "door-1")
    doc = json.loads(cluster.get("/cutover/test/state")[0])
    check(doc["event"] == "ramp" and doc["node"] == "door-1" and "ramp_step 0\n" in doc["state"]
          and "ramp_node door-1\n" in doc["state"], "etcd: %r" % doc)
    h = nodes[2].ctl.ok("history")["entries"]
    check(any(e["event"] == "ramp" and e.get("node") == "door-1" and e["to"] == "green" for e in h),
          "door-3 history: %r" % h[-3:])
    # Another ramp while this one is on is refused, from any node.
    r = nodes[2].ctl.run("switch", "green", "--ramp", "20")
    check(r.rc == 1 and "ramp" in r.err, "a second ramp: %r" % r)
    # commit on door-2: 100 % everywhere, stable.
    r = nodes[1].ctl.run("commit")
    check(r.rc == 0 and r.json["converged"] is True and "ramp committed" in r.json["message"], "commit: %r" % r)
    for nd in nodes:
        st = nd.status()
        check("ramp" not in st and st["active"] == "green" and st["state"] == "stable"
              and st["generation"] == gen + 1, "%s after commit: %r" % (nd.tag, st))
        got = batch(nd.d.port, clients, nconn=2)
        check(all(c == "green" for c in got.values()), "%s after commit: %r" % (nd.tag, got))
    # A ramp back to blue, rolled back on door-3: 0 % everywhere.
    wait_fleet_healthy(nodes, "blue")
    r = nodes[0].ctl.run("switch", "blue", "--ramp", "50", "--step", "600s")
    check(r.rc == 0 and r.json["converged"] is True, "ramp to blue: %r" % r)
    for nd in nodes:
        check((_ramp_of(nd) or {}).get("weight_pct") == 50, "%s: %r" % (nd.tag, nd.status()))
    r = nodes[2].ctl.run("rollback")
    check(r.rc == 0 and r.json["converged"] is True and "rolled back at 50%" in r.json["message"],
          "rollback: %r" % r)
    for nd in nodes:
        st = nd.status()
        check("ramp" not in st and st["active"] == "green" and st["generation"] == gen + 1,
              "%s after the rollback: %r" % (nd.tag, st))
        got = batch(nd.d.port, clients, nconn=2)
        check(all(c == "green" for c in got.values()), "%s after the rollback: %r" % (nd.tag, got))
        h = nd.ctl.ok("history")["entries"]
        check(any(e["event"] == "rollback" and e.get("node") == "door-3" and e["from"] == "blue" for e in h),
              "%s history: %r" % (nd.tag, h[-3:]))
    check("ramp_" not in json.loads(cluster.get("/cutover/test/state")[0])["state"], "etcd still ramps")


def test_fleet_ramp_steps_reach_every_node_wait(env):
    """switch --ramp --wait on door-2: door-2 drives the steps (auto_rollback
    is off here: they advance on time alone), each written to etcd and
    applied by every node; --wait follows them to 100 % and exits 0."""
    cluster, nodes = _fleet(env)
    clients = _clients()
    gen = nodes[0].status()["generation"]
    t0 = time.monotonic()
    p = nodes[1].ctl.popen("switch", "green", "--ramp", "10,50", "--step", "8s", "--wait", as_json=False)
    _wait_ramp(nodes, 10)
    _wait_ramp(nodes, 50, timeout=40)
    _same_step_and_buckets(nodes, clients, 50, 2, "door-2")
    r = nodes[1].ctl.finish(p, ("switch", "green", "--wait"), t0, timeout=60)
    check(r.rc == 0 and "ramp completed" in r.out and "50%" in r.out, "--wait: %r" % r)
    for nd in nodes:
        wait_for(lambda nd=nd: "ramp" not in nd.status(), 10, "%s: the ramp ended" % nd.tag)
        st = nd.status()
        check(st["active"] == "green" and st["generation"] == gen + 1 and st["state"] == "observing",
              "%s after the ramp: %r" % (nd.tag, st))
        h = nd.ctl.ok("history")["entries"]
        check(any(e["event"] == "ramp" and e.get("node") == "door-2" and e.get("trigger") == "timer"
                  and "step 2 of 2" in (e.get("reason") or "") for e in h), "%s history: %r" % (nd.tag, h[-4:]))


def test_fleet_ramp_driver_gone_holds_restart_same_step(env):
    """The driving node killed: the ramp holds at its step on the others
    (status says so) and never advances by itself; a node restarted
    mid-ramp comes back at the step etcd holds; a rollback from another
    node still ends it everywhere."""
    cluster, nodes = _fleet(env)
    clients = _clients()
    r = nodes[0].ctl.run("switch", "green", "--ramp", "10,50,90", "--step", "5s")
    check(r.rc == 0 and r.json["converged"] is True, "ramp: %r" % r)
    _wait_ramp(nodes, 50, timeout=30)
    kill9(nodes[0].d)
    value, _ = cluster.get("/cutover/test/state")
    step = int(re.search(r"ramp_step (\d)\n", json.loads(value)["state"]).group(1))
    pct = (10, 50, 90)[step]
    rest = nodes[1:]
    _wait_ramp(rest, pct, timeout=10)
    wait_for(lambda: all(_ramp_of(nd)["driver_live"] is False for nd in rest), 20,
             "door-1 no longer live for the others")
    for nd in rest:
        rm = _ramp_of(nd)
        check(rm["holding"] is True and "door-1" in rm["analysis"], "%s: %r" % (nd.tag, rm))
    r = nodes[1].ctl.run("status", as_json=False)
    check("driven by door-1, NOT LIVE" in r.out, "status text: %r" % r.out)
    time.sleep(12)  # more than two steps: nothing moves the ramp on
    for nd in rest:
        rm = _ramp_of(nd)
        check(rm is not None and rm["weight_pct"] == pct, "%s moved without its driver: %r" % (nd.tag, rm))
    check(json.loads(cluster.get("/cutover/test/state")[0])["event"] == "ramp", "etcd moved on")
    # door-3 restarted mid-ramp: the same step, the same buckets.
    stop(nodes[2].d)
    nodes[2].d = restart(env, nodes[2].d)
    rm = _ramp_of(nodes[2])
    check(rm is not None and rm["weight_pct"] == pct and rm["step"] == step + 1 and rm["driver"] == "door-1",
          "door-3 after a restart: %r" % nodes[2].status())
    wait_confirmed(nodes[2], "green")
    got = batch(nodes[2].d.port, clients, nconn=2)
    check(all(got[ck] == expected(ck, pct) for ck in clients), "door-3's buckets after its restart")
    # An operator's rollback from door-2 ends it everywhere.
    r = nodes[1].ctl.run("rollback")
    check(r.rc == 0 and r.json["changed"] is True, "rollback without the driver: %r" % r)
    for nd in rest:
        wait_for(lambda nd=nd: "ramp" not in nd.status(), 10, "%s: the ramp ended" % nd.tag)
        check(nd.status()["active"] == "blue", "%s: %r" % (nd.tag, nd.status()))
    # The driver restarted takes etcd's state: no ramp.
    nodes[0].d = restart(env, nodes[0].d)
    st = nodes[0].status()
    check("ramp" not in st and st["active"] == "blue", "door-1 after its restart: %r" % st)


def test_fleet_ramp_wait_lagging_exit_4_and_local_ramp(env):
    """switch --ramp --wait with a live node that does not apply (SIGSTOP):
    the ramp goes on and completes, the stopped node is named and
    cutoverctl exits 4. A --local ramp still changes this node alone."""
    cluster, nodes = _fleet(env, lease="15s", timeout="1500ms")
    nodes[2].d.proc.send_signal(signal.SIGSTOP)
    try:
        r = nodes[0].ctl.run("switch", "green", "--ramp", "50", "--step", "2s", "--wait", as_json=False,
                             timeout=60)
        check(r.rc == 4 and "ramp completed" in r.out and "door-3" in r.err, "--wait with door-3 stopped: %r" % r)
        check(nodes[1].status()["active"] == "green", "door-2: %r" % nodes[1].status())
    finally:
        nodes[2].d.proc.send_signal(signal.SIGCONT)
    wait_color(nodes[2], "green")
    wait_for(lambda: nodes[0].fleet()["converged"], 15, "converged after SIGCONT")
    check("ramp" not in nodes[2].status(), "door-3 still ramps: %r" % nodes[2].status())
    # --local: this node alone, diverged; the others do not ramp.
    r = nodes[0].ctl.run("commit")
    check(r.rc == 0, "commit: %r" % r)
    wait_fleet_healthy(nodes, "blue")
    r = nodes[0].ctl.run("switch", "blue", "--ramp", "30", "--step", "600s", "--local")
    check(r.rc == 0 and r.json["ramp"]["weight_pct"] == 30, "--local ramp: %r" % r)
    st = nodes[0].status()
    check(st["ramp"]["weight_pct"] == 30 and "driver" not in st["ramp"] and st["fleet"]["diverged"] is True,
          "door-1: %r" % st)
    for nd in nodes[1:]:
        check("ramp" not in nd.status(), "%s ramps too: %r" % (nd.tag, nd.status()))
    check("ramp_" not in json.loads(cluster.get("/cutover/test/state")[0])["state"], "etcd ramps")
    r = nodes[0].ctl.run("rollback", "--local")
    check(r.rc == 0 and "ramp" not in nodes[0].status(), "--local rollback: %r" % r)
