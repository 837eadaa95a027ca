#!/usr/bin/env python3
"""Opens N client connections to 127.0.0.1:PORT and holds them (bench/conns.sh).

  holdconns.py PORT N idle   one GET /tiny each, answer read, then left idle
  holdconns.py PORT N slow   each sends a request head without its last line
                             (a client that is mid-request) and waits

Prints "ready OK FAILED" once every connection is set up, then holds them
until stdin reaches EOF. Loopback only.
"""

import resource
import socket
import sys

REQ = b"GET /tiny HTTP/1.1\r\nHost: bench\r\nUser-Agent: holdconns\r\nAccept: */*\r\n\r\n"
PARTIAL = b"GET /tiny HTTP/1.1\r\nHost: bench\r\nUser-Agent: holdconns\r\nX-Slow: "


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            return False
        body += chunk
    return head.startswith(b"HTTP/1.1 200")


def main():
    port, n, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
    socks, failed = [], 0
    for _ in range(n):
        s = socket.socket()
        s.settimeout(10)
        try:
            s.connect(("127.0.0.1", port))
            if mode == "idle":
                s.sendall(REQ)
                if not read_response(s):
                    raise OSError("bad response")
            else:
                s.sendall(PARTIAL)
            socks.append(s)
        except OSError:
            failed += 1
            s.close()
    print("ready %d %d" % (len(socks), failed), flush=True)
    sys.stdin.read()
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
