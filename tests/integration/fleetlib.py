"""Helpers for the fleet tests (issue 11): a real 3-member etcd cluster from
/usr/bin/etcd on loopback ports, cutoverd nodes configured with a `fleet`
group, and small readers of etcd through its JSON gateway.

Not a test module (no test_ prefix): test_fleet.py imports it.
"""

import base64
import json
import os
import signal
import subprocess
import time
import urllib.request

import harness
from harness import check, fail, free_port, wait_for
from switching import Ctl, sock_path, state_path, HEALTH_FAST, AUTO_ROLLBACK_OFF

ETCD = "/usr/bin/etcd"


class Member:
    def __init__(self, name, client, peer, data):
        self.name = name
        self.client = client
        self.peer = peer
        self.data = data
        self.proc = None
        self.log = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.client


class EtcdCluster:
    """Three etcd members, each with its own data dir under the test's
    temp dir; stopped (SIGKILL after SIGTERM) when the test's Env closes."""

    def __init__(self, env, n=3, tls=None):
        self.env = env
        self.tls = tls  # dict(ca=, cert=, key=) for https with client certs
        self.members = []
        for i in range(n):
            self.members.append(Member("m%d" % i, free_port(), free_port(),
                                       os.path.join(env.tmp, "etcd-m%d" % i)))
        self.scheme = "https" if tls else "http"
        env.late_closers.append(self)
        for m in self.members:
            self.start(m, new=True)
        self.wait_healthy()

    def argv(self, m, new):
        cluster = ",".join("%s=http://127.0.0.1:%d" % (x.name, x.peer) for x in self.members)
        curl = "%s://127.0.0.1:%d" % (self.scheme, m.client)
        a = [ETCD, "--name", m.name, "--data-dir", m.data,
             "--listen-client-urls", curl, "--advertise-client-urls", curl,
             "--listen-peer-urls", "http://127.0.0.1:%d" % m.peer,
             "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % m.peer,
             "--initial-cluster", cluster, "--initial-cluster-token", "cutover-test",
             "--initial-cluster-state", "new" if new else "existing",
             "--heartbeat-interval", "100", "--election-timeout", "1000",
             "--logger", "zap", "--log-outputs", "stderr"]
        if self.tls:
            a += ["--cert-file", self.tls["cert"], "--key-file", self.tls["key"],
                  "--client-cert-auth", "--trusted-ca-file", self.tls["ca"]]
        return a

    def start(self, m, new=False):
        m.log = open(os.path.join(self.env.tmp, "etcd-%s.log" % m.name), "ab")
        m.proc = subprocess.Popen(self.argv(m, new), stdout=m.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)

    def endpoints(self, members=None):
        return ["%s://127.0.0.1:%d" % (self.scheme, m.client) for m in (members or self.members)]

    def call(self, path, body, member=None, timeout=5):
        """One JSON gateway call (plain http only)."""
        m = member or next(x for x in self.members if x.proc and x.proc.poll() is None)
        req = urllib.request.Request(m.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read().decode())

    def healthy(self, m):
        try:
            self.call("/v3/kv/range", {"key": b64("health")}, member=m, timeout=2)
            return True
        except Exception:
            return False

    def wait_healthy(self, timeout=30):
        if self.tls:
            # Probed through the gateway with the client certificate (curl).
            def ok():
                for m in self.members:
                    p = subprocess.run(["curl", "-sS", "--max-time", "2", "--cacert", self.tls["ca"],
                                        "--cert", self.tls["client_cert"], "--key", self.tls["client_key"],
                                        "-d", '{"key":"aGVhbHRo"}',
                                        "https://127.0.0.1:%d/v3/kv/range" % m.client],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    if p.returncode != 0 or b"header" not in p.stdout:
                        return False
                return True
            wait_for(ok, timeout, "etcd cluster (TLS) healthy")
            return
        wait_for(lambda: all(self.healthy(m) for m in self.members), timeout, "etcd cluster healthy",
                 interval=0.1)

    def get(self, key):
        """(value as str, mod_revision) of key, or (None, 0)."""
        r = self.call("/v3/kv/range", {"key": b64(key)})
        kvs = r.get("kvs") or []
        if not kvs:
            return None, 0
        return unb64(kvs[0].get("value", "")), int(kvs[0].get("mod_revision", 0))

    def prefix(self, key):
        end = key[:-1] + chr(ord(key[-1]) + 1)
        r = self.call("/v3/kv/range", {"key": b64(key), "range_end": b64(end)})
        return {unb64(kv["key"]): unb64(kv.get("value", "")) for kv in r.get("kvs") or []}

    def stop_member(self, m, sig=signal.SIGTERM):
        if m.proc and m.proc.poll() is None:
            m.proc.send_signal(sig)
            if sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    m.proc.wait(15)
                except subprocess.TimeoutExpired:
                    m.proc.kill()
                    m.proc.wait()

    def close(self):
        for m in self.members:
            if m.proc and m.proc.poll() is None:
                m.proc.send_signal(signal.SIGCONT)
                m.proc.terminate()
        for m in self.members:
            if m.proc:
                try:
                    m.proc.wait(10)
                except subprocess.TimeoutExpired:
                    m.proc.kill()
                    m.proc.wait()
            if m.log:
                m.log.close()


def b64(s):
    return base64.b64encode(s.encode()).decode()


def unb64(s):
    return base64.b64decode(s).decode()


def fleet_group(endpoints, key, node, lease="3s", timeout="1500ms", tls=None):
    text = "fleet: {\n  etcd = ( %s );\n  key = \"%s\";\n  node = \"%s\";\n  lease = \"%s\";\n  timeout = \"%s\";\n" % (
        ", ".join('"%s"' % e for e in endpoints), key, node, lease, timeout)
    if tls:
        text += '  tls = { ca = "%s"; cert = "%s"; key = "%s"; };\n' % (tls["ca"], tls["client_cert"],
                                                                     tls["client_key"])
    return text + "};\n"


SWITCH_FLEET = 'switch: { min_healthy = 1; drain_timeout = "2s"; safety_window = "30s"; };\n'


class Node:
    """One cutoverd of the fleet: its daemon, its Ctl, its backends, its tag."""

    def __init__(self, env, d, ctl, tag, blue, green):
        self.env = env
        self.d = d
        self.ctl = ctl
        self.tag = tag
        self.blue = blue
        self.green = green

    def status(self):
        return self.ctl.ok("status")

    def fleet(self):
        return self.status()["fleet"]

    def color(self):
        """The color that answers a request through this node."""
        r = self.d.get("/")
        check(r.status == 200, "%s: GET / answered %s" % (self.tag, r.status))
        return r.header("X-Color")


def start_node(env, cluster_endpoints, name, key="/cutover/test", extra="", lease="3s",
               timeout="1500ms", tls=None, expect_errors=(), blue=None, green=None, **kw):
    blue = blue or env.backend("%s-blue" % name, "blue")
    green = green or env.backend("%s-green" % name, "green")
    conf_extra = (HEALTH_FAST + SWITCH_FLEET + (extra or AUTO_ROLLBACK_OFF) +
                  fleet_group(cluster_endpoints, key, name, lease, timeout, tls))
    d = env.cutoverd(blue=[blue], green=[green], extra=conf_extra, name=name + ".conf",
                     expect_errors=expect_errors, **kw)
    return Node(env, d, Ctl(sock_path(env, name)), name, blue, green)


def wait_color(node, color, timeout=15):
    wait_for(lambda: node.status()["active"] == color, timeout, "%s active %s" % (node.tag, color))


def wait_confirmed(node, color, timeout=15):
    wait_for(lambda: node.status()["pools"][color]["confirmed"] >= 1, timeout,
             "%s: %s confirmed healthy" % (node.tag, color))


def wait_fleet_healthy(nodes, color, timeout=15):
    """Every node's view of every presence shows color confirmed healthy."""
    def ok():
        for nd in nodes:
            ns = nd.fleet()["nodes"]
            if len(ns) != len(nodes) or any(x["healthy"][color] < 1 for x in ns):
                return False
        return True
    wait_for(ok, timeout, "every presence shows %s healthy" % color)


def make_certs(env):
    """A CA, an etcd server certificate for 127.0.0.1 (also a client: the
    member's gateway dials itself with it) and a client certificate for the
    nodes, made by openssl(1) in the test's temp dir."""
    d = os.path.join(env.tmp, "etcd-tls")
    os.makedirs(d)
    cnf = os.path.join(d, "openssl.cnf")
    with open(cnf, "w") as f:
        f.write("[ req ]\ndistinguished_name = dn\nprompt = no\n[ dn ]\nCN = unused\n"
                "[ ca_ext ]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n"
                "[ srv_ext ]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\n"
                "extendedKeyUsage = serverAuth, clientAuth\nsubjectAltName = IP:127.0.0.1, DNS:localhost\n"
                "[ cli_ext ]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\n"
                "extendedKeyUsage = clientAuth\n")

    def run(*args):
        p = subprocess.run(["openssl"] + list(args), cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        check(p.returncode == 0, "openssl %s: %s" % (args[0], p.stderr.decode(errors="replace")[-300:]))

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "2", "-subj", "/CN=cutover fleet test CA", "-config", cnf, "-extensions", "ca_ext")
    for name, ext, cn in (("server", "srv_ext", "etcd"), ("client", "cli_ext", "cutoverd")):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", name + ".key",
            "-out", name + ".csr", "-subj", "/CN=" + cn, "-config", cnf)
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", name + ".pem", "-days", "2", "-extfile", cnf, "-extensions", ext)
    j = lambda n: os.path.join(d, n)  # noqa: E731
    return {"ca": j("ca.pem"), "cert": j("server.pem"), "key": j("server.key"),
            "client_cert": j("client.pem"), "client_key": j("client.key")}
