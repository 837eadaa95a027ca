"""Headless chromium driven over the DevTools protocol (Python stdlib only).

Not a test module (no test_ prefix): test_statuspage.py imports it.

  b = Browser(env)            starts Debian's chromium with a fresh profile in
                              the test's temp dir (harness.TestSkip if there is
                              no chromium), connects to its first page
  b.navigate(url)             loads a page
  b.eval(js)                  the value of a JavaScript expression
  b.wait(js, timeout, what)   polls an expression until it is truthy
  b.screenshot(path)          saves a PNG
  b.errors()                  console errors, exceptions, CSP reports seen

The WebSocket client is a minimal RFC 6455 one: the opening handshake with
its accept check, masked text frames out, unmasked frames in (with 16- and
64-bit lengths, continuation frames, ping answered by pong).
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.request

import harness
from harness import check, fail

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium")
START_TIMEOUT = 30  # seconds: chromium is slow to start on a loaded machine

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def chromium_path():
    for c in CHROMIUM_CANDIDATES:
        p = shutil.which(c)
        if p:
            return p
    return None


class WebSocket:
    """One client WebSocket connection (text messages only)."""

    def __init__(self, url, timeout=10.0):
        check(url.startswith("ws://"), "not a ws:// URL: %r" % url)
        hostport, _, path = url[len("ws://"):].partition("/")
        host, _, port = hostport.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key))
        self.sock.sendall(req.encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        check(lines[0].split(" ")[1:2] == ["101"], "WebSocket handshake refused: %r" % lines[0])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        check(headers.get("sec-websocket-accept") == want,
              "WebSocket handshake: bad Sec-WebSocket-Accept %r" % headers.get("sec-websocket-accept"))

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise harness.ConnClosed("WebSocket closed by the browser")
        self.buf += data

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self):
        """The next text message (control frames handled on the way)."""
        message = b""
        while True:
            b0, b1 = self._take(2)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._take(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._take(8))[0]
            mask = self._take(4) if b1 & 0x80 else None
            payload = self._take(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:  # pong
                continue
            if opcode == 0x8:
                raise harness.ConnClosed("WebSocket closed by the browser")
            message += payload
            if fin:
                return message.decode("utf-8")

    def close(self):
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class Browser:
    """Headless chromium with one page, driven through DevTools."""

    def __init__(self, env, width=1100, height=1400):
        exe = chromium_path()
        if exe is None:
            raise harness.TestSkip("chromium is not installed (Debian package chromium)")
        self.env = env
        self.profile = os.path.join(env.tmp, "chromium-profile")
        os.mkdir(self.profile)
        self.log_path = os.path.join(env.tmp, "chromium.log")
        self.events = []
        self.next_id = 0
        self.ws = None
        argv = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-extensions", "--disable-sync",
                "--no-first-run", "--no-default-browser-check", "--mute-audio",
                "--user-data-dir=" + self.profile, "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                "--window-size=%d,%d" % (width, height), "about:blank"]
        self.log = open(self.log_path, "wb")
        # Its own process group: chromium forks helpers that go with it.
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        env.closers.append(self)
        try:
            port = harness.wait_for(self._devtools_port, START_TIMEOUT, "chromium's DevTools port", 0.1)
            page = harness.wait_for(lambda: self._page_target(port), START_TIMEOUT, "chromium's page target", 0.1)
            self.ws = WebSocket(page["webSocketDebuggerUrl"], timeout=START_TIMEOUT)
        except harness.TestFailure as e:
            fail("%s (chromium log: %s)" % (e, self._log_tail()))
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Log.enable")

    def _log_tail(self):
        try:
            with open(self.log_path, "rb") as f:
                return " | ".join(f.read().decode("utf-8", "replace").strip().splitlines()[-5:])
        except OSError:
            return "?"

    def _devtools_port(self):
        """chromium writes the port it chose to DevToolsActivePort."""
        if self.proc.poll() is not None:
            fail("chromium exited with %s" % self.proc.returncode)
        try:
            with open(os.path.join(self.profile, "DevToolsActivePort")) as f:
                first = f.readline().strip()
        except OSError:
            return None
        return int(first) if first.isdigit() else None

    def _page_target(self, port):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=5) as r:
                targets = json.loads(r.read().decode())
        except (OSError, ValueError):
            return None
        for t in targets:
            if t.get("type") == "page" and t.get("webSocketDebuggerUrl"):
                return t
        return None

    def call(self, method, timeout=30, **params):
        """Sends one DevTools command; returns its result (events are kept)."""
        self.next_id += 1
        my_id = self.next_id
        self.ws.sock.settimeout(timeout)
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            try:
                msg = json.loads(self.ws.recv())
            except socket.timeout:
                fail("DevTools %s: no answer within %ss" % (method, timeout))
            if msg.get("id") == my_id:
                if "error" in msg:
                    fail("DevTools %s failed: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def navigate(self, url, timeout=30):
        """Loads url and waits for its load event."""
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        r = self.call("Page.navigate", url=url)
        check(not r.get("errorText"), "navigating to %s: %s" % (url, r.get("errorText")))
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            left = deadline - time.monotonic()
            if left <= 0:
                fail("%s did not finish loading within %ss" % (url, timeout))
            self.ws.sock.settimeout(left)
            try:
                msg = json.loads(self.ws.recv())
            except socket.timeout:
                continue
            if "method" in msg:
                self.events.append(msg)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        if "exceptionDetails" in r:
            fail("JavaScript %r threw: %s" % (expr, r["exceptionDetails"].get("text")))
        return r.get("result", {}).get("value")

    def wait(self, expr, timeout, what, interval=0.1):
        """Polls expr in the page until it is truthy; returns its value."""
        return harness.wait_for(lambda: self.eval(expr), timeout, what, interval)

    def screenshot(self, path):
        r = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        data = base64.b64decode(r["data"])
        check(data.startswith(b"\x89PNG"), "screenshot is not a PNG")
        with open(path, "wb") as f:
            f.write(data)
        return path

    def errors(self):
        """Console errors, uncaught exceptions and CSP violations seen so far."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append("exception: %s" % p.get("exceptionDetails", {}).get("text"))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: %s" % p["entry"].get("text"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") == "error":
                out.append("console.error: %s" % [a.get("value") for a in p.get("args", [])])
        return out

    def close(self):
        if self.ws is not None:
            self.ws.close()
            self.ws = None
        # The group is chromium's own (start_new_session): its helpers go too.
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)
