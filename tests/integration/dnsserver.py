"""A small DNS responder for the tests (stdlib only): UDP on a free
127.0.0.1 port, answers A and AAAA queries from records set at run time,
and can be told to answer SERVFAIL, NXDOMAIN or REFUSED, or not at all
(a timeout), for one name or for every name.

    dns = DNSServer().start()
    dns.set("green.test", a=["127.0.0.1", "127.0.0.2"], ttl=30)
    dns.mode("green.test", "servfail")     # "ok", "nodata", "servfail", "nxdomain", "refused", "timeout"
    dns.queries("green.test", "A")         # monotonic times of the queries seen
    dns.stop()

A name with no records (or an unknown one) answers NXDOMAIN; a name with
records of the other family only answers NODATA (no error, no answer).
"""

import socket
import struct
import threading
import time

QTYPE_A = 1
QTYPE_AAAA = 28
RCODES = {"ok": 0, "nodata": 0, "servfail": 2, "nxdomain": 3, "refused": 5}


class DNSServer:
    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.addr = "%s:%d" % (host, self.port)
        self.lock = threading.Lock()
        self.records = {}   # name -> {"a": [...], "aaaa": [...], "ttl": n}
        self.modes = {}     # name -> mode; None key: every name
        self.seen = []      # (monotonic time, name, qtype name)
        self.errors = []
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.thread.join(5)
        self.sock.close()

    def set(self, name, a=(), aaaa=(), ttl=30):
        with self.lock:
            self.records[name.lower().rstrip(".")] = {"a": list(a), "aaaa": list(aaaa), "ttl": int(ttl)}

    def mode(self, name, mode):
        """mode for name (None: every name): ok, nodata (the name exists, no record
        of the type asked), servfail, nxdomain, refused, timeout."""
        assert mode in RCODES or mode == "timeout", mode
        with self.lock:
            self.modes[name.lower().rstrip(".") if name else None] = mode

    def queries(self, name, qtype="A"):
        with self.lock:
            return [t for t, n, q in self.seen if n == name.lower() and q == qtype]

    def _run(self):
        while not self.stop_ev.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self._answer(data)
            except Exception as e:  # a malformed query: noted, not answered
                self.errors.append("%s: %s" % (type(e).__name__, e))
                continue
            if reply is not None:
                try:
                    self.sock.sendto(reply, peer)
                except OSError:
                    pass

    def _answer(self, data):
        qid, flags, qdcount = struct.unpack("!HHH", data[:6])
        if qdcount != 1:
            raise ValueError("%d questions" % qdcount)
        pos, labels = 12, []
        while True:
            n = data[pos]
            pos += 1
            if n == 0:
                break
            labels.append(data[pos:pos + n].decode("ascii"))
            pos += n
        qtype, qclass = struct.unpack("!HH", data[pos:pos + 4])
        question = data[12:pos + 4]
        name = ".".join(labels).lower()
        qname = {QTYPE_A: "A", QTYPE_AAAA: "AAAA"}.get(qtype, str(qtype))
        with self.lock:
            self.seen.append((time.monotonic(), name, qname))
            mode = self.modes.get(name) or self.modes.get(None) or "ok"
            rec = self.records.get(name)
        if mode == "timeout":
            return None
        rcode = RCODES[mode]
        answers = []
        if mode == "nodata":
            pass
        elif rcode == 0:
            if rec is None or (not rec["a"] and not rec["aaaa"]):
                rcode = RCODES["nxdomain"]
            elif qtype == QTYPE_A:
                answers = [(QTYPE_A, socket.inet_pton(socket.AF_INET, ip)) for ip in rec["a"]]
            elif qtype == QTYPE_AAAA:
                answers = [(QTYPE_AAAA, socket.inet_pton(socket.AF_INET6, ip)) for ip in rec["aaaa"]]
        rd = flags & 0x0100
        out = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080 | rcode, 1, len(answers), 0, 0)
        out += question
        for t, rdata in answers:
            out += struct.pack("!HHHIH", 0xC00C, t, 1, rec["ttl"], len(rdata)) + rdata
        return out
