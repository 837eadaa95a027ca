"""Upstreams by DNS name (issue 14): a small DNS server on a loopback port
(dnsserver.py) answers for the names, cutoverd is pointed at it with
dns.nameservers, and the backends listen on 127.0.0.x addresses of one port
(the loopback range is all local on Linux)."""

import os
import re
import select
import subprocess
import threading
import time

import harness
from dnsserver import DNSServer
from harness import check, fail, http_request, wait_for
from ops import fetch_metrics
from switching import AUTO_ROLLBACK_OFF, HEALTH_FAST, Ctl, Load, sock_path


class IPBackend(harness.Backend):
    """A cutover-testbackend on ip:port (harness.Backend listens on 127.0.0.1 only)."""

    def __init__(self, env, name, color, ip, port, args=()):
        self.env = env
        self.name = name
        self.color = color
        self.port = port
        self.ip = ip
        self.addr = "%s:%d" % (ip, port)
        self.log_path = os.path.join(env.tmp, "backend-%s.log" % name)
        self.log = open(self.log_path, "wb")
        cmd = [harness.testbackend_path(), "--listen", self.addr, "--name", name, "--color", color] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL)
        r, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline() if r else b""
        if line.strip() != b"ready":
            self.proc.kill()
            self.proc.wait()
            fail("test backend %s did not print ready (got %r; log %s)" % (name, line, self.log_path))

    def ctl(self, path):
        self.ctl_conns = getattr(self, "ctl_conns", 0) + 1
        c = harness.Conn(sock=__import__("socket").create_connection((self.ip, self.port), timeout=10))
        with c:
            c.send(http_request("GET", path, host=self.addr))
            r = c.read_response()
        check(r.status == 200, "backend control %s answered %s" % (path, r.status))
        return r.body


class _Stopper:
    def __init__(self, dns):
        self.dns = dns

    def close(self):
        self.dns.stop()


def dns_server(env):
    dns = DNSServer().start()
    env.closers.append(_Stopper(dns))
    return dns


def backend_at(env, name, color, ip, port):
    b = IPBackend(env, name, color, ip, port)
    env.backends.append(b)
    return b


def dns_conf(dns, refresh="30s", allow_unresolved=False, timeout="1s"):
    return ('dns: { nameservers = ( "%s" ); refresh = "%s"; timeout = "%s"; allow_unresolved = %s; };\n'
            % (dns.addr, refresh, timeout, "true" if allow_unresolved else "false"))


def switch_conf(min_healthy=1, window="30s"):
    return 'switch: { min_healthy = %d; drain_timeout = "5s"; safety_window = "%s"; };\n' % (min_healthy, window)


def start(env, blue, green, extra, expect_errors=(), initial="blue", metrics=False):
    mport = None
    if metrics:
        mport = harness.free_port()
        extra += 'metrics: { listen = "127.0.0.1:%d"; };\n' % mport
    d = env.cutoverd(blue=blue, green=green, extra=extra, expect_errors=expect_errors, initial=initial)
    ctl = Ctl(sock_path(env))
    if metrics:
        wait_for(lambda: harness.port_accepts(mport), 5, "the metrics listener")
    return d, ctl, mport


def label(name, port, ip):
    return "%s:%d (%s)" % (name, port, ip)


def by_label(ctl, color):
    return {s["address"]: s for s in ctl.health(color)}


def served_by(d, n):
    """n requests on fresh connections: {backend name: count}."""
    seen = {}
    for _ in range(n):
        r = d.get("/")
        check(r.status == 200, "request answered %s: %r" % (r.status, r.body[:200]))
        b = r.header("X-Backend")
        seen[b] = seen.get(b, 0) + 1
    return seen


def conns_to_ip(pid, ip, port):
    """Local ports of the ESTABLISHED TCP connections process pid holds to ip:port (IPv4)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    a = [int(x) for x in ip.split(".")]
    want = "%02X%02X%02X%02X:%04X" % (a[3], a[2], a[1], a[0], port)
    ports = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[2] == want and fields[3] == "01" and fields[9] in inodes:
                ports.add(int(fields[1].split(":")[1], 16))
    return ports


def established_to_ip(pid, ip, port):
    """ESTABLISHED TCP connections process pid holds to ip:port (IPv4)."""
    return len(conns_to_ip(pid, ip, port))


def failures(records):
    return [x for x in records if x[2] != 200]


def test_dns_name_two_addresses_both_take_traffic(env):
    dns = dns_server(env)
    port = harness.free_port()
    g1 = backend_at(env, "green1", "green", "127.0.0.1", port)
    g2 = backend_at(env, "green2", "green", "127.0.0.2", port)
    blue = env.backend("blue1", "blue")
    dns.set("green.test", a=["127.0.0.2", "127.0.0.1"], ttl=300)
    d, ctl, mport = start(env, [blue], ["green.test:%d" % port],
                          HEALTH_FAST + switch_conf(2) + AUTO_ROLLBACK_OFF + dns_conf(dns), metrics=True)
    ctl.wait_confirmed("green")
    labels = sorted(by_label(ctl, "green"))
    want = [label("green.test", port, "127.0.0.1"), label("green.test", port, "127.0.0.2")]
    check(labels == want, "green servers in health: %s, expected %s" % (labels, want))
    r = ctl.switch("green")
    check(r.rc == 0, "switch to green (2 addresses, min_healthy 2) failed: %r" % r)
    seen = served_by(d, 40)
    check(seen.get("green1", 0) > 0 and seen.get("green2", 0) > 0 and set(seen) <= {"green1", "green2"},
          "both addresses should take traffic: %s" % seen)
    st = ctl.status()
    check(st["pools"]["green"]["total"] == 2 and st["pools"]["green"]["confirmed"] == 2,
          "status pools.green: %s" % st["pools"]["green"])
    names = [n for n in st.get("dns", []) if n["color"] == "green"]
    check(len(names) == 1 and names[0]["name"] == "green.test:%d" % port
          and names[0]["addresses"] == ["127.0.0.1", "127.0.0.2"] and names[0]["problem"] is None,
          "status dns: %s" % st.get("dns"))
    _, samples, _ = fetch_metrics(mport)
    for lab in want:
        key = ("cutover_server_up", (("color", "green"), ("server", lab)))
        found = [v for k, v in samples.items() if k[0] == "cutover_server_up" and dict(k[1]).get("server") == lab]
        check(found == [1.0] or found == [1], "metrics cutover_server_up for %s: %s" % (lab, found))
    out = ctl.run("status", as_json=False).out
    check("name:       green green.test:%d -> 127.0.0.1, 127.0.0.2\n" % port in out, "cutoverctl status output: %r" % out)
    # The human health output names the address too.
    out = ctl.run("health", "green", as_json=False).out
    check(label("green.test", port, "127.0.0.2") in out, "cutoverctl health output: %r" % out)


def test_dns_added_address_joins_after_health_checks(env):
    dns = dns_server(env)
    port = harness.free_port()
    g1 = backend_at(env, "green1", "green", "127.0.0.1", port)
    g2 = backend_at(env, "green2", "green", "127.0.0.3", port)
    g2.ctl("/_ctl/health?fail=1")
    blue = env.backend("blue1", "blue")
    dns.set("green.test", a=["127.0.0.1"], ttl=1)
    d, ctl, _ = start(env, [blue], ["green.test:%d" % port],
                      HEALTH_FAST + switch_conf(1) + AUTO_ROLLBACK_OFF + dns_conf(dns, refresh="1s"),
                      initial="green")
    ctl.wait_confirmed("green")
    load = Load(d.port, nthreads=4).start()
    try:
        wait_for(lambda: load.count() >= 100, 20, "100 responses before the change")
        t_changed = time.monotonic()
        dns.set("green.test", a=["127.0.0.1", "127.0.0.3"], ttl=1)
        lab2 = label("green.test", port, "127.0.0.3")
        wait_for(lambda: lab2 in by_label(ctl, "green"), 15, "the new address in health")
        t_added = time.monotonic()
        # Its checks fail: it must get no traffic, and must not count.
        time.sleep(2.0)
        s = by_label(ctl, "green")[lab2]
        check(s["state"] == "down" and not s["confirmed"], "failing new address: %s" % s)
        check(ctl.status()["pools"]["green"]["confirmed"] == 1, "confirmed counts only the checked address")
        early = [x for x in load.stop() if x[3] == "green" and "green2" in x[4]]
        check(not early, "the new address took %d requests before passing its checks" % len(early))
        load = Load(d.port, nthreads=4).start()
        g2.ctl("/_ctl/health?fail=0")
        t_fixed = time.monotonic()
        wait_for(lambda: by_label(ctl, "green")[lab2]["confirmed"], 10, "the new address confirmed")
        t_up = time.monotonic()
        wait_for(lambda: any("green2" in x[4] for x in list(load.records)), 20,
                 "a response from the new address")
        t_traffic = time.monotonic()
    finally:
        records = load.stop()
    bad = failures(records)
    check(not bad, "%d failed requests while the address joined: %s" % (len(bad), bad[:3]))
    print("# dns add (refresh 1s, TTL 1s, health interval 200ms, rise 2): listed %.2fs after the answer "
          "changed; confirmed %.2fs and taking traffic %.2fs after its checks started passing; %d requests, "
          "0 failed" % (t_added - t_changed, t_up - t_fixed, t_traffic - t_fixed, len(records)), flush=True)


def test_dns_removed_address_drains(env):
    dns = dns_server(env)
    port = harness.free_port()
    g1 = backend_at(env, "green1", "green", "127.0.0.1", port)
    g2 = backend_at(env, "green2", "green", "127.0.0.4", port)
    blue = env.backend("blue1", "blue")
    dns.set("green.test", a=["127.0.0.1", "127.0.0.4"], ttl=1)
    d, ctl, _ = start(env, [blue], ["green.test:%d" % port],
                      HEALTH_FAST + switch_conf(1) + AUTO_ROLLBACK_OFF + dns_conf(dns, refresh="1s"),
                      initial="green")
    ctl.wait_confirmed("green")
    # Slow requests in flight on both addresses while one is removed.
    slow = []

    def slow_req(i):
        try:
            with d.conn(timeout=30) as c:
                c.send(http_request("GET", "/delay?ms=8000"))
                r = c.read_response()
                slow.append((r.status, r.header("X-Backend")))
        except Exception as e:  # recorded, judged below
            slow.append((None, "%s: %s" % (type(e).__name__, e)))
    threads = [threading.Thread(target=slow_req, args=(i,)) for i in range(6)]
    lab1 = label("green.test", port, "127.0.0.1")
    load = Load(d.port, nthreads=4).start()
    try:
        wait_for(lambda: load.count() >= 100, 20, "100 responses before the change")
        # The slow requests go to the address about to leave: the other one
        # is down for their start, then up again before the change.
        g1.ctl("/_ctl/health?fail=1")
        wait_for(lambda: by_label(ctl, "green")[lab1]["state"] == "down", 10, "green1 down")
        for t in threads:
            t.start()
        time.sleep(0.5)
        g1.ctl("/_ctl/health?fail=0")
        wait_for(lambda: by_label(ctl, "green")[lab1]["state"] == "up", 10, "green1 up again")
        dns.set("green.test", a=["127.0.0.1"], ttl=1)
        lab2 = label("green.test", port, "127.0.0.4")
        t_changed = time.monotonic()
        wait_for(lambda: lab2 not in by_label(ctl, "green"), 15, "the removed address gone from health")
        t_gone = time.monotonic()
        check(len(slow) == 0, "the slow requests ended before their address was removed: %s" % slow)
        for t in threads:
            t.join(30)
        time.sleep(1.0)
    finally:
        records = load.stop()
    check(len(slow) == 6 and all(s[0] == 200 for s in slow), "slow requests in flight: %s" % slow)
    check(all(s[1] == "green2" for s in slow), "the slow requests were not all on the removed address: %s" % slow)
    bad = failures(records)
    check(not bad, "%d failed requests while the address drained: %s" % (len(bad), bad[:3]))
    late = [x for x in records if x[0] > t_gone + 0.5 and "green2" in x[4]]
    check(not late, "%d requests went to the removed address after it left" % len(late))
    check(ctl.status()["pools"]["green"]["total"] == 1, "green has one server left")
    # Its idle connections are closed too.
    wait_for(lambda: established_to_ip(d.pid, "127.0.0.4", port) == 0, 10,
             "no connection left from cutoverd to the removed address")
    check(established_to_ip(d.pid, "127.0.0.1", port) > 0, "the address that stays keeps connections")
    print("# dns remove: gone from health %.2fs after the answer changed; %d requests, 0 failed, "
          "6 slow requests in flight finished" % (t_gone - t_changed, len(records)), flush=True)


def test_dns_failed_lookups_keep_last_answer(env):
    dns = dns_server(env)
    port = harness.free_port()
    g1 = backend_at(env, "green1", "green", "127.0.0.1", port)
    g2 = backend_at(env, "green2", "green", "127.0.0.5", port)
    blue = env.backend("blue1", "blue")
    dns.set("green.test", a=["127.0.0.1", "127.0.0.5"], ttl=1)
    d, ctl, _ = start(env, [blue], ["green.test:%d" % port],
                      HEALTH_FAST + switch_conf(1) + AUTO_ROLLBACK_OFF
                      + dns_conf(dns, refresh="1s", timeout="300ms"), initial="green")
    ctl.wait_confirmed("green")
    name = "green.test:%d" % port
    def warnings():
        return [l for l in d.log_text().splitlines() if name in l and "keeping the last answer" in l]
    # evdns treats SERVFAIL as a timeout (it retries, then gives up).
    for mode, word in (("servfail", "timed out"), ("nxdomain", "NXDOMAIN"), ("refused", "refused"),
                       ("nodata", "NODATA"), ("timeout", "timed out")):
        n0 = len(dns.queries("green.test"))
        w0 = len(warnings())
        dns.mode("green.test", mode)
        # Several lookups fail in a row: one warning for the change.
        wait_for(lambda: len(dns.queries("green.test")) >= n0 + 6, 30, "lookups answered %s" % mode)
        lines = warnings()[w0:]
        check(len(lines) == 1 and word in lines[0], "%s: expected one warning with %r, got %s" % (mode, word, lines))
        check(len(ctl.health("green")) == 2, "%s: the last answer should stay" % mode)
        seen = served_by(d, 20)
        check(seen.get("green1", 0) > 0 and seen.get("green2", 0) > 0, "%s: traffic %s" % (mode, seen))
        st = [n for n in ctl.status()["dns"] if n["name"] == name][0]
        check(st["problem"] and st["addresses"] == ["127.0.0.1", "127.0.0.5"], "%s: status %s" % (mode, st))
    dns.mode("green.test", "ok")
    wait_for(lambda: "%s resolves again" % name in d.log_text(), 15, "the name resolving again")
    wait_for(lambda: [n for n in ctl.status()["dns"] if n["name"] == name][0]["problem"] is None, 10,
             "the problem cleared in status")


def test_dns_unresolvable_at_start(env):
    dns = dns_server(env)
    port = harness.free_port()
    blue = env.backend("blue1", "blue")
    g1 = backend_at(env, "green1", "green", "127.0.0.6", port)
    path, lport = env.write_config(blue=[blue], green=["late.test:%d" % port],
                                   extra=HEALTH_FAST + switch_conf(1) + AUTO_ROLLBACK_OFF + dns_conf(dns))
    r = env.run([harness.cutoverd_path(), "-c", path], timeout=30)
    err = r.stderr.decode() + r.stdout.decode()
    line = [i + 1 for i, l in enumerate(open(path).read().splitlines()) if "late.test" in l][0]
    want = "%s:%d: 'pools.green.servers[0]': late.test:%d does not resolve: no such name (NXDOMAIN)" % (
        path, line, port)
    check(r.returncode == 1 and want in err, "expected exit 1 and %r: exit %s, %r" % (want, r.returncode, err))
    # Allowed: it starts, and the name joins once it resolves (after its checks).
    d, ctl, _ = start(env, [blue], ["late.test:%d" % port],
                      HEALTH_FAST + switch_conf(1) + AUTO_ROLLBACK_OFF
                      + dns_conf(dns, refresh="1s", allow_unresolved=True))
    check(ctl.health("green") == [], "no green server yet")
    st = [n for n in ctl.status()["dns"] if n["name"] == "late.test:%d" % port][0]
    check(st["addresses"] == [] and "NXDOMAIN" in st["problem"], "status dns: %s" % st)
    r = ctl.switch("green")
    check(r.rc != 0 and "0 of 0" in r.err, "switch to an empty green should be refused: %r" % r)
    dns.set("late.test", a=["127.0.0.6"], ttl=1)
    wait_for(lambda: [s for s in ctl.health("green") if s["confirmed"]], 15, "the address confirmed")
    r = ctl.switch("green")
    check(r.rc == 0, "switch once the name resolved: %r" % r)
    check(served_by(d, 5) == {"green1": 5}, "green serves")


def test_dns_check_reports_every_unresolvable_name(env):
    dns = dns_server(env)
    dns.set("ok.test", a=["127.0.0.1"])
    dns.mode("bad.test", "servfail")
    path, _ = env.write_config(blue=["ok.test:80", "gone.test:80"], green=["bad.test:81", "127.0.0.1:82"],
                               extra=dns_conf(dns, timeout="300ms"))
    t0 = time.monotonic()
    r = env.run([harness.cutoverd_path(), "-t", "-c", path], timeout=30)
    err = r.stderr.decode()
    check(r.returncode == 1, "cutoverd -t should fail: %s %r" % (r.returncode, err))
    check(re.search(r":\d+: 'pools\.blue\.servers\[1\]': gone\.test:80 does not resolve: no such name", err)
          and re.search(r":\d+: 'pools\.green\.servers\[0\]': bad\.test:81 does not resolve: lookup failed", err)
          and "ok.test" not in err, "cutoverd -t output: %r" % err)
    check(time.monotonic() - t0 < 20, "cutoverd -t took %.1fs" % (time.monotonic() - t0))
    # dns.allow_unresolved: the same report, and the file is valid.
    path2, _ = env.write_config(blue=["ok.test:80", "gone.test:80"], green=["bad.test:81"], name="allowed.conf",
                                extra=dns_conf(dns, timeout="300ms", allow_unresolved=True))
    r = env.run([harness.cutoverd_path(), "-t", "-c", path2], timeout=30)
    err = r.stderr.decode()
    check(r.returncode == 0 and "gone.test:80 does not resolve" in err and "bad.test:81 does not resolve" in err
          and "allowed: dns.allow_unresolved" in err and "configuration is valid" in err,
          "cutoverd -t with allow_unresolved: %s %r" % (r.returncode, err))
    dns.set("gone.test", a=["127.0.0.1"])
    dns.mode("bad.test", "ok")
    dns.set("bad.test", aaaa=["::1"])
    r = env.run([harness.cutoverd_path(), "-t", "-c", path], timeout=30)
    check(r.returncode == 0 and b"configuration is valid" in r.stderr, "once they resolve: %r" % (r,))


def test_dns_ttl_shorter_than_refresh(env):
    dns = dns_server(env)
    port = harness.free_port()
    blue = env.backend("blue1", "blue")
    g1 = backend_at(env, "green1", "green", "127.0.0.1", port)
    dns.set("green.test", a=["127.0.0.1"], ttl=1)
    dns.set("slow.test", a=["127.0.0.1"], ttl=600)
    d, ctl, _ = start(env, [blue], ["green.test:%d" % port, "slow.test:%d" % (port + 0)],
                      HEALTH_FAST + switch_conf(1) + AUTO_ROLLBACK_OFF + dns_conf(dns, refresh="60s"))
    t0 = time.monotonic()
    wait_for(lambda: len([t for t in dns.queries("green.test") if t > t0]) >= 3, 20,
             "3 lookups of a name with TTL 1s under refresh 60s")
    check(len([t for t in dns.queries("slow.test") if t > t0]) == 0,
          "a name with TTL 600s is looked up again only at refresh (60s)")


def test_dns_switch_counts_addresses(env):
    dns = dns_server(env)
    port = harness.free_port()
    g1 = backend_at(env, "green1", "green", "127.0.0.1", port)
    g2 = backend_at(env, "green2", "green", "127.0.0.7", port)
    g2.ctl("/_ctl/health?fail=1")
    blue = env.backend("blue1", "blue")
    dns.set("green.test", a=["127.0.0.1", "127.0.0.7"], ttl=300)
    d, ctl, _ = start(env, [blue], ["green.test:%d" % port],
                      HEALTH_FAST + switch_conf(2) + AUTO_ROLLBACK_OFF + dns_conf(dns))
    lab1 = label("green.test", port, "127.0.0.1")
    wait_for(lambda: by_label(ctl, "green")[lab1]["confirmed"], 10, "green1 confirmed")
    r = ctl.switch("green")
    check(r.rc != 0 and "green has 1 of 2 servers healthy, needs 2" in r.err,
          "switch with one of two addresses healthy: %r" % r)
    g2.ctl("/_ctl/health?fail=0")
    ctl.wait_confirmed("green")
    r = ctl.switch("green", "--wait")
    check(r.rc == 0 and r.json and r.json.get("drained") is True, "switch --wait once both are healthy: %r" % r)


def test_dns_change_in_safety_window_is_no_failure(env):
    dns = dns_server(env)
    port = harness.free_port()
    g1 = backend_at(env, "green1", "green", "127.0.0.1", port)
    g2 = backend_at(env, "green2", "green", "127.0.0.8", port)
    g3 = backend_at(env, "green3", "green", "127.0.0.9", port)
    g3.ctl("/_ctl/health?fail=1")
    blue = [env.backend("blue1", "blue"), env.backend("blue2", "blue")]
    dns.set("green.test", a=["127.0.0.1", "127.0.0.8"], ttl=1)
    guard = 'auto_rollback: { enabled = true; error_rate = 0.2; min_requests = 20; window = "5s"; };\n'
    d, ctl, _ = start(env, blue, ["green.test:%d" % port],
                      HEALTH_FAST + switch_conf(2, "60s") + guard + dns_conf(dns, refresh="1s"),
                      expect_errors=[r"auto-rollback \(health\)"])
    ctl.wait_confirmed("green")
    ctl.wait_confirmed("blue")
    load = Load(d.port, nthreads=2).start()
    try:
        r = ctl.switch("green")
        check(r.rc == 0, "switch to green: %r" % r)
        check(ctl.status()["state"] == "observing", "a safety window runs")
        # One address leaves (green is below min_healthy 2 by DNS alone)...
        dns.set("green.test", a=["127.0.0.1"], ttl=1)
        wait_for(lambda: len(ctl.health("green")) == 1, 15, "green down to one address")
        time.sleep(2.0)
        # ... and one arrives whose checks fail (fall 2).
        dns.set("green.test", a=["127.0.0.1", "127.0.0.9"], ttl=1)
        lab3 = label("green.test", port, "127.0.0.9")
        wait_for(lambda: lab3 in by_label(ctl, "green"), 15, "the new address listed")
        wait_for(lambda: by_label(ctl, "green")[lab3]["failures"] >= 4, 15, "the new address failing its checks")
        st = ctl.status()
        check(st["active"] == "green" and st["state"] == "observing",
              "a DNS change in the safety window rolled back: %s" % st)
        check(not [e for e in ctl.history() if e.get("trigger") == "auto-rollback"], "no auto-rollback in history")
    finally:
        records = load.stop()
    bad = failures(records)
    check(not bad, "%d failed requests: %s" % (len(bad), bad[:3]))
    # The guard still judges what it should: the address it has fails.
    g1.ctl("/_ctl/health?fail=1")
    wait_for(lambda: ctl.status()["active"] == "blue", 20, "a real health failure still rolls back")


def test_dns_names_follow_a_reload(env):
    dns = dns_server(env)
    port = harness.free_port()
    g1 = backend_at(env, "green1", "green", "127.0.0.1", port)
    g2 = backend_at(env, "green2", "green", "127.0.0.10", port)
    blue = env.backend("blue1", "blue")
    dns.set("one.test", a=["127.0.0.1"], ttl=300)
    dns.set("two.test", a=["127.0.0.10"], ttl=300)
    extra = HEALTH_FAST + switch_conf(1) + AUTO_ROLLBACK_OFF + dns_conf(dns, refresh="1s")
    d, ctl, _ = start(env, [blue], ["one.test:%d" % port], extra, initial="green")
    ctl.wait_confirmed("green")
    load = Load(d.port, nthreads=2).start()
    try:
        wait_for(lambda: load.count() >= 50, 20, "50 responses before the reload")
        # A reload adds a name: its address is resolved in the background and
        # joins after its checks; the name it keeps keeps its health.
        env.write_config(blue=[blue], green=["one.test:%d" % port, "two.test:%d" % port], port=d.port,
                         extra=extra, initial="green")
        ctl.ok("reload")
        lab2 = label("two.test", port, "127.0.0.10")
        wait_for(lambda: lab2 in by_label(ctl, "green") and by_label(ctl, "green")[lab2]["confirmed"], 15,
                 "the reload's new name resolved and confirmed")
        wait_for(lambda: any("green2" in x[4] for x in list(load.records)), 20, "traffic on the new name")
        # A reload drops the first name: its address drains.
        env.write_config(blue=[blue], green=["two.test:%d" % port], port=d.port, extra=extra, initial="green")
        ctl.ok("reload")
        labs = sorted(by_label(ctl, "green"))
        check(labs == [lab2], "after dropping one.test: %s" % labs)
        t = time.monotonic()
        time.sleep(1.5)
    finally:
        records = load.stop()
    bad = failures(records)
    check(not bad, "%d failed requests across the reloads: %s" % (len(bad), bad[:3]))
    late = [x for x in records if x[0] > t + 0.5 and "green1" in x[4]]
    check(not late, "%d requests on the dropped name after the reload" % len(late))
    names = sorted(n["name"] for n in ctl.status()["dns"])
    check(names == ["two.test:%d" % port], "status dns after the reloads: %s" % names)


def test_dns_upstream_tls_checks_the_name(env):
    """Upstream TLS without sni: a server by name sends its host name as SNI
    and its certificate must be for that name (not merely for the address)."""
    from ops import TLSBackend, certs, pair
    dns = dns_server(env)
    cd = certs(env)
    up = TLSBackend(env, *pair(cd, "up"))  # certificate: DNS up.test, IP 127.0.0.1
    dns.set("up.test", a=["127.0.0.1"], ttl=300)
    dns.set("other.test", a=["127.0.0.1"], ttl=300)
    port = env.port()
    tls = 'tls = { verify = true; ca = "%s"; };' % os.path.join(cd, "ca.pem")
    text = harness.config_text(env, port, ["up.test:%d" % up.port], ["other.test:%d" % up.port],
                               extra=HEALTH_FAST + switch_conf(1) + AUTO_ROLLBACK_OFF + dns_conf(dns))
    for color, name in (("blue", "up.test"), ("green", "other.test")):
        line = '  %s: { servers = ( "%s:%d" ); };\n' % (color, name, up.port)
        check(line in text, "harness.config_text no longer writes the pool line this test extends")
        text = text.replace(line, line[:-4] + " %s };\n" % tls)
    path = os.path.join(env.tmp, "cutover.conf")
    with open(path, "w") as f:
        f.write(text)
    d = harness.Daemon(env, path, port, expect_errors=[r"certificate", r"verify"])
    env.daemons.append(d)
    ctl = Ctl(sock_path(env))
    ctl.wait_confirmed("blue")
    r = d.get("/tls")
    check(r.status == 200 and r.body == b"tls1 blue\n", "through upstream TLS by name: %s %r" % (r.status, r.body))
    check("up.test" in up.snis, "SNI sent: %r" % sorted(set(map(str, up.snis))))
    g = by_label(ctl, "green")[label("other.test", up.port, "127.0.0.1")]
    wait_for(lambda: by_label(ctl, "green")[label("other.test", up.port, "127.0.0.1")]["failures"] >= 2, 10,
             "other.test failing its checks")
    g = by_label(ctl, "green")[label("other.test", up.port, "127.0.0.1")]
    check(not g["confirmed"] and "other.test" in g["last"], "a certificate not for the name must fail: %s" % g)


def test_dns_hosts_file_answers_first(env):
    """A name in /etc/hosts is answered from it, without asking DNS."""
    dns = dns_server(env)
    hosts = open("/etc/hosts").read().split()
    if "localhost" not in hosts:
        fail("this test needs localhost in /etc/hosts")
    port = harness.free_port()
    g1 = backend_at(env, "green1", "green", "127.0.0.1", port)
    blue = env.backend("blue1", "blue")
    d, ctl, _ = start(env, [blue], ["localhost:%d" % port],
                      HEALTH_FAST + switch_conf(1) + AUTO_ROLLBACK_OFF + dns_conf(dns, refresh="1s"))
    labs = sorted(by_label(ctl, "green"))
    check(label("localhost", port, "127.0.0.1") in labs, "localhost from the hosts file: %s" % labs)
    time.sleep(2.5)  # a few refreshes
    check(dns.queries("localhost", "A") == [] and dns.queries("localhost", "AAAA") == [],
          "DNS was asked for a name the hosts file has")


def test_dns_smoke_tests_run_on_every_address(env):
    dns = dns_server(env)
    port = harness.free_port()
    g1 = backend_at(env, "green1", "green", "127.0.0.1", port)
    g2 = backend_at(env, "green2", "green", "127.0.0.11", port)
    blue = env.backend("blue1", "blue")
    dns.set("green.test", a=["127.0.0.1", "127.0.0.11"], ttl=300)
    smoke = 'smoke = ( { path = "/"; expect_status = 200; expect_body = "green"; } );\n'
    d, ctl, _ = start(env, [blue], ["green.test:%d" % port],
                      HEALTH_FAST + switch_conf(1) + AUTO_ROLLBACK_OFF + smoke + dns_conf(dns))
    ctl.wait_confirmed("green")
    r = ctl.run("smoke", "green")
    servers = sorted(e.get("server") for e in (r.json or {}).get("smoke") or [])
    want = [label("green.test", port, "127.0.0.1"), label("green.test", port, "127.0.0.11")]
    check(r.rc == 0 and servers == want, "smoke green should test both addresses: %r" % r)
    g2.ctl("/_ctl/fail?status=500")  # its /healthz stays 200: only the smoke test sees it
    r = ctl.switch("green")
    check(r.rc == 1 and want[1] in r.err and "500" in r.err,
          "a switch must be refused when one address fails its smoke test: %r" % r)
    check(ctl.active() == "blue", "still blue")


def test_dns_change_leaves_the_other_color_alone(env):
    """A change of green's answer does not touch blue's pool: blue's idle
    upstream connections stay and are reused."""
    dns = dns_server(env)
    port = harness.free_port()
    g1 = backend_at(env, "green1", "green", "127.0.0.1", port)
    g2 = backend_at(env, "green2", "green", "127.0.0.12", port)
    blue = env.backend("blue1", "blue")
    dns.set("green.test", a=["127.0.0.1"], ttl=1)
    # Checks only at start and at each new server set: no check connection
    # to blue is open while the idle ones are counted.
    slow_health = 'health: { path = "/healthz"; interval = "60s"; timeout = "1s"; rise = 1; fall = 2; };\n'
    d, ctl, _ = start(env, [blue], ["green.test:%d" % port],
                      slow_health + switch_conf(1) + AUTO_ROLLBACK_OFF + dns_conf(dns, refresh="1s"))
    ctl.wait_confirmed("blue")
    check(served_by(d, 20) == {"blue1": 20}, "blue serves")
    # The idle keep-alive connections to blue.
    before = conns_to_ip(d.pid, "127.0.0.1", blue.port)
    check(before, "no idle connection to blue after 20 requests")
    dns.set("green.test", a=["127.0.0.1", "127.0.0.12"], ttl=1)
    wait_for(lambda: label("green.test", port, "127.0.0.12") in by_label(ctl, "green"), 15,
             "green's new address listed")
    time.sleep(0.3)  # the workers have taken the new servers
    after = conns_to_ip(d.pid, "127.0.0.1", blue.port)
    check(before <= after, "blue's idle connections were closed by green's DNS change: %s before, %s after"
          % (sorted(before), sorted(after)))
    check(served_by(d, 20) == {"blue1": 20}, "blue serves")


def test_dns_change_keeps_idle_connections_to_addresses_that_stay(env):
    dns = dns_server(env)
    port = harness.free_port()
    g1 = backend_at(env, "green1", "green", "127.0.0.1", port)
    g2 = backend_at(env, "green2", "green", "127.0.0.13", port)
    blue = env.backend("blue1", "blue")
    dns.set("green.test", a=["127.0.0.1"], ttl=1)
    slow_health = 'health: { path = "/healthz"; interval = "60s"; timeout = "1s"; rise = 1; fall = 2; };\n'
    d, ctl, _ = start(env, [blue], ["green.test:%d" % port],
                      slow_health + switch_conf(1) + AUTO_ROLLBACK_OFF + dns_conf(dns, refresh="1s"),
                      initial="green")
    ctl.wait_confirmed("green")
    check(served_by(d, 20) == {"green1": 20}, "green1 serves")
    before = conns_to_ip(d.pid, "127.0.0.1", port)
    check(before, "no idle connection to green1 after 20 requests")
    dns.set("green.test", a=["127.0.0.1", "127.0.0.13"], ttl=1)
    wait_for(lambda: label("green.test", port, "127.0.0.13") in by_label(ctl, "green"), 15,
             "green's new address listed")
    time.sleep(0.3)  # the workers have taken the new servers
    after = conns_to_ip(d.pid, "127.0.0.1", port)
    check(before <= after, "idle connections to the address that stays were closed: %s before, %s after"
          % (sorted(before), sorted(after)))
    # They are used: the address that stays serves without new connections
    # (the new one is down until checked: interval 60s, it was checked once).
    seen = served_by(d, 10)
    check(set(seen) <= {"green1", "green2"} and sum(seen.values()) == 10, "green serves: %s" % seen)


def test_dns_answers_changing_often_under_load(env):
    """Answers that change every half second (one address always there):
    the servers follow, nothing fails, nothing leaks."""
    dns = dns_server(env)
    port = harness.free_port()
    ips = ["127.0.0.1", "127.0.0.14", "127.0.0.15"]
    for i, ip in enumerate(ips):
        backend_at(env, "green%d" % (i + 1), "green", ip, port)
    blue = env.backend("blue1", "blue")
    dns.set("green.test", a=ips[:2], ttl=1)
    d, ctl, _ = start(env, [blue], ["green.test:%d" % port],
                      HEALTH_FAST + switch_conf(1) + AUTO_ROLLBACK_OFF + dns_conf(dns, refresh="1s"),
                      initial="green")
    ctl.wait_confirmed("green")
    sets = [ips[:2], [ips[0], ips[2]], ips, [ips[0]], ips[1:] + [ips[0]]]
    load = Load(d.port, nthreads=4).start()
    changes = 0
    try:
        t_end = time.monotonic() + 10
        while time.monotonic() < t_end:
            dns.set("green.test", a=sets[changes % len(sets)], ttl=1)
            changes += 1
            time.sleep(0.5)
        dns.set("green.test", a=ips, ttl=1)
        wait_for(lambda: len(ctl.health("green")) == 3 and all(s["confirmed"] for s in ctl.health("green")), 15,
                 "all three addresses confirmed at the end")
    finally:
        records = load.stop()
    bad = failures(records)
    check(not bad, "%d failed of %d requests over %d answer changes: %s" % (len(bad), len(records), changes, bad[:3]))
    n_respins = d.log_text().count("dns: servers now")
    check(n_respins >= 5, "only %d server set changes seen for %d answer changes" % (n_respins, changes))
    print("# dns churn: %d answer changes, %d server set changes, %d requests, 0 failed"
          % (changes, n_respins, len(records)), flush=True)
