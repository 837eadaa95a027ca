#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/corpus/ from the unit-test tables.

Run from anywhere: python3 tests/fuzz/make-seeds.py. It reads the string
literals of tests/unit/check_http.c (req_cases, resp_cases, chunk_cases),
check_json.c (parse_cases) and check_config.c (BASE, full_conf, bad_cases),
the shipped conf/*.conf, and a few control command lines, and writes one
file per seed, named by the SHA-1 of its content (as libFuzzer names the
inputs it keeps), so re-running it adds nothing twice. Crash inputs that were
fixed are kept in the corpora by hand (named crash-*), so that every fuzz
run replays them first.
"""

import hashlib
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
STR = r'"(?:[^"\\\n]|\\.)*"'


def c_unescape(lit):
    """Bytes of one C string literal body (without the quotes)."""
    out = bytearray()
    i = 0
    simple = {"n": 10, "r": 13, "t": 9, "b": 8, "f": 12, "v": 11, "a": 7,
              "\\": 92, '"': 34, "'": 39, "?": 63}
    while i < len(lit):
        c = lit[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        i += 1
        c = lit[i]
        if c in simple:
            out.append(simple[c])
            i += 1
        elif c == "x":
            j = i + 1
            while j < len(lit) and lit[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(int(lit[i + 1:j], 16) & 0xFF)
            i = j
        elif c in "01234567":
            j = i
            while j < len(lit) and j < i + 3 and lit[j] in "01234567":
                j += 1
            out.append(int(lit[i:j], 8) & 0xFF)
            i = j
        else:
            raise ValueError("escape \\" + c)
    return bytes(out)


def concat(text, macros):
    """Bytes of adjacent literals and known macros in text."""
    out = b""
    for tok in re.findall(STR + r"|[A-Z_]+", text):
        if tok.startswith('"'):
            out += c_unescape(tok[1:-1])
        elif tok in macros:
            out += macros[tok]
    return out


def block(src, start):
    """Text of the initializer that follows start, up to its "};"."""
    i = src.index(start)
    return src[i:src.index("\n};", i)]


def macro(src, name):
    m = re.search(r"#define " + name + r"\b(.*?)(?<!\\)\n", src, re.S)
    return concat(m.group(1).replace("\\\n", ""), {})


def write(corpus, data):
    d = os.path.join(HERE, "corpus", corpus)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def read(path):
    with open(os.path.join(TOP, path), encoding="utf-8") as f:
        return f.read()


def http():
    src = read("tests/unit/check_http.c")
    macros = {"MANY_FIELDS": macro(src, "MANY_FIELDS")}
    rows = r'\{\s*"[^"]*",\s*RAW\(((?:\s*(?:' + STR + r'|[A-Z_]+))+)\s*\)(.*?)\},?\n'
    for m in re.finditer(rows, block(src, "req_cases[] = {")):
        write("request_head", concat(m.group(1), macros))
    for m in re.finditer(rows, block(src, "resp_cases[] = {")):
        head = b"\x01" if m.group(2).split(",")[1].strip() == '"HEAD"' else b"\x00"
        for flags in (b"\x06", b"\x00"):
            write("response_head", bytes([head[0] | flags[0]]) + concat(m.group(1), macros))
    for m in re.finditer(rows, block(src, "chunk_cases[] = {")):
        raw = concat(m.group(1), macros)
        max_line = m.group(2).rsplit(",", 1)[1].strip()
        line_bits = {"0": 0, "8": 1 << 1}[max_line]
        k = min(len(raw), 255)
        for reencode in (0, 1):
            flags = reencode | line_bits
            # At once with an unbounded budget, then byte by byte with a
            # budget of 17 (the longest chunk header) in separate chains.
            write("chunked", bytes([flags | (7 << 3), 0]) + raw)
            write("chunked", bytes([flags | 0x40, k]) + raw + bytes(k))


def json():
    src = read("tests/unit/check_json.c")
    for m in re.finditer(r"\{((?:\s*" + STR + r")+)\s*,\s*(?:true|false)\s*\}",
                         block(src, "parse_cases[] = {")):
        write("json", concat(m.group(1), {}))
    # Answers as the daemon writes them.
    for text in (
        b'{"ok":true,"active":"blue","previous":null,"generation":7,"state":"idle",'
        b'"pools":{"blue":{"healthy":2,"servers":2},"green":{"healthy":0,"servers":1}}}',
        b'{"ok":false,"error":"permission denied: \'switch\' needs uid 0 or the admin group"}',
        b'{"ok":true,"history":[{"time":"2024-01-01T00:00:00Z","from":"blue","to":"green",'
        b'"reason":"caf\xc3\xa9 \\u001b[31m","uid":0,"generation":3}]}',
    ):
        write("json", text)


def config():
    src = read("tests/unit/check_config.c")
    base = macro(src, "BASE")
    full = concat(block(src, "full_conf[] ="), {})
    texts = [base, full.replace(b"%GROUP%", b"root")]
    for m in re.finditer(r"\{\s*((?:BASE\s*)?(?:" + STR + r"\s*)+),",
                         block(src, "bad_cases[] = {")):
        texts.append(concat(m.group(1), {"BASE": base}))
    for name in ("conf/cutover.conf", "conf/demo.conf"):
        texts.append(read(name).encode())
    for t in texts:
        if b"@include" in t:
            continue
        # "@" is the unit tests' temporary directory; the fuzz target's
        # files (a.pem, hook, ...) are next to the configuration.
        write("config", t.replace(b"@/", b"").replace(b"@", b"."))


def control():
    lines = [
        b"status\n", b"help\n", b"health\n", b"health blue\n", b"history 20\n",
        b"switch green\n", b"switch blue --force --if-gen 3 --dry-run\n",
        b"switch green --wait\nstatus\n", b"rollback --wait\nhelp\n", b"commit\n",
        b"smoke green\n", b"reload\n", b"status\r\nhelp\r\n", b"\n\n\t \n",
        b"frobnicate\n", b"status\x01\n", b"status caf\xc3\xa9\n", b"status\0\n",
        b"status\nhelp\nhealth\nhistory\nstatus\nhelp\n",
        b"switch " + b"a " * 40 + b"\n",
        b"status",
    ]
    for line in lines:
        write("control", line)


def main():
    http()
    json()
    config()
    control()
    return 0


if __name__ == "__main__":
    sys.exit(main())
