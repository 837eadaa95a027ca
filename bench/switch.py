#!/usr/bin/env python3
"""Helpers for bench/switch.sh (python3 stdlib only). See bench/README.md.

  switch.py poll PORT OUT
      Keep-alive client: sends GET /color to 127.0.0.1:PORT back to back on one
      connection and appends to OUT one line per change of color:
      "T prev_send_ns prev_recv_ns send_ns recv_ns COLOR" (CLOCK_MONOTONIC,
      the same clock in every process), then "END requests errors reconnects"
      on SIGTERM.
  switch.py latency PORT OUT.tsv N PAUSE_S CPU CUTOVERCTL SOCKET
      Starts the poller (pinned to CPU unless -1), switches N times
      (green, blue, green, ...) with `CUTOVERCTL -s SOCKET switch COLOR`,
      PAUSE_S (+ up to 50% random jitter) apart, and writes one row per switch.
  switch.py summary LATENCY.tsv THROUGHPUT.tsv OUT.json META_JSON
      Prints the table and writes OUT.json.
"""
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time

REQ = b"GET /color HTTP/1.1\r\nHost: bench\r\n\r\n"


def poll(port, out):
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, on_term)
    f = open(out, "w", buffering=1)
    now = time.monotonic_ns
    n = errors = reconnects = 0
    color = None
    prev_send = prev_recv = 0
    sock = None
    buf = b""
    while not stop:
        if sock is None:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                errors += 1
                time.sleep(0.01)
                continue
            buf = b""
        try:
            t_send = now()
            sock.sendall(REQ)
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split()[1])
            clen = 0
            for h in lines[1:]:
                k, _, v = h.partition(b":")
                if k.strip().lower() == b"content-length":
                    clen = int(v)
            while len(buf) < clen:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
            body, buf = buf[:clen], buf[clen:]
            t_recv = now()
        except (OSError, ValueError, IndexError, ConnectionError):
            if stop:
                break
            errors += 1
            reconnects += 1
            sock.close()
            sock = None
            continue
        n += 1
        c = body.strip().decode(errors="replace") if status == 200 else f"status{status}"
        if status != 200:
            errors += 1
        if c != color:
            f.write(f"T {prev_send} {prev_recv} {t_send} {t_recv} {c}\n")
            color = c
        prev_send, prev_recv = t_send, t_recv
    f.write(f"END {n} {errors} {reconnects}\n")
    f.close()


def latency(port, out, nswitch, pause, cpu, ctl, sock):
    tfile = out + ".poll"
    pin = ["taskset", "-c", cpu] if cpu != "-1" else []
    poller = subprocess.Popen(pin + [sys.executable, os.path.abspath(__file__), "poll", port, tfile])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if os.path.exists(tfile) and os.path.getsize(tfile) > 0:
            break
        time.sleep(0.05)
    else:
        poller.kill()
        sys.exit("switch.py: the poller got no answer within 10s")
    time.sleep(0.5)
    rows = []
    for i in range(nswitch):
        target = "green" if i % 2 == 0 else "blue"
        t0 = time.monotonic_ns()
        r = subprocess.run(pin + [ctl, "-s", sock, "switch", target],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t1 = time.monotonic_ns()
        rows.append({"i": i + 1, "target": target, "t0": t0, "t1": t1, "rc": r.returncode,
                     "err": r.stderr.decode(errors="replace").strip().replace("\t", " ")})
        time.sleep(pause * (1 + random.random() / 2))
    # baseline: the same process start and socket round trip without a switch
    base = []
    for _ in range(20):
        t0 = time.monotonic_ns()
        subprocess.run(pin + [ctl, "-s", sock, "status"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base.append((time.monotonic_ns() - t0) / 1e6)
    poller.send_signal(signal.SIGTERM)
    poller.wait(timeout=10)
    trans, end = [], None
    with open(tfile) as f:
        for line in f:
            p = line.split()
            if p[0] == "T":
                trans.append((int(p[1]), int(p[2]), int(p[3]), int(p[4]), p[5]))
            elif p[0] == "END":
                end = tuple(int(x) for x in p[1:])
    with open(out, "w") as f:
        f.write("switch\ttarget\trc\tack_ms\tfirst_new_ms\tfirst_new_after_ack_ms\t"
                "last_old_sent_after_ack\tgap_ms\terror\n")
        for k, r in enumerate(rows):
            nxt = rows[k + 1]["t0"] if k + 1 < len(rows) else float("inf")
            # the first change to the target color answered after this switch began
            t = next((t for t in trans if t[4] == r["target"] and r["t0"] <= t[3] < nxt), None)
            ack = (r["t1"] - r["t0"]) / 1e6
            if t is None:
                first = after = gap = ""
                stale = ""
            else:
                first = f"{(t[3] - r['t0']) / 1e6:.3f}"
                after = f"{(t[3] - r['t1']) / 1e6:.3f}"
                # old color answering a request sent after the acknowledgement
                stale = int(t[0] > r["t1"])
                # no response at all between the last old and the first new one
                gap = f"{(t[3] - t[1]) / 1e6:.3f}"
            f.write(f"{r['i']}\t{r['target']}\t{r['rc']}\t{ack:.3f}\t{first}\t{after}\t{stale}\t{gap}\t{r['err']}\n")
        f.write(f"# status: {' '.join(f'{b:.3f}' for b in base)}\n")
        if end:
            f.write(f"# poller: {end[0]} requests, {end[1]} errors, {end[2]} reconnects\n")


def pct(v, q):
    v = sorted(v)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summary(lat_tsv, tput_tsv, out, meta):
    meta = json.loads(meta)
    lines = []
    res = {"meta": meta}
    if lat_tsv != "-" and os.path.exists(lat_tsv):
        rows, poller, base = [], "", []
        with open(lat_tsv) as f:
            hdr = f.readline().rstrip("\n").split("\t")
            for line in f:
                if line.startswith("# poller:"):
                    poller = line[2:].strip()
                    continue
                if line.startswith("# status:"):
                    base = [float(x) for x in line.split()[2:]]
                    continue
                rows.append(dict(zip(hdr, line.rstrip("\n").split("\t"))))
        ok = [r for r in rows if r["rc"] == "0"]
        seen = [r for r in ok if r["first_new_ms"] != ""]
        series = {
            "ack_ms": [float(r["ack_ms"]) for r in ok],
            "first_new_ms": [float(r["first_new_ms"]) for r in seen],
            "first_new_after_ack_ms": [float(r["first_new_after_ack_ms"]) for r in seen],
            "gap_ms": [float(r["gap_ms"]) for r in seen],
            "status_ms": base,
        }
        stale = sum(int(r["last_old_sent_after_ack"]) for r in seen)
        lat = {k: {"median": pct(v, .5), "p90": pct(v, .9), "max": max(v) if v else None, "min": min(v) if v else None}
               for k, v in series.items()}
        lat.update(switches=len(rows), refused_or_failed=len(rows) - len(ok),
                   new_color_not_seen=len(ok) - len(seen), old_color_after_ack=stale, poller=poller)
        res["latency"] = lat
        lines.append(f"switch latency: {len(rows)} switches back and forth (cutoverctl switch green/blue), "
                     f"a keep-alive client polling back to back; ms from starting cutoverctl")
        lines.append(f"{'':<44} {'median':>8} {'p90':>8} {'max':>8} {'min':>8}")
        names = {"ack_ms": "cutoverctl exit (acknowledged)",
                 "first_new_ms": "first response from the new color",
                 "first_new_after_ack_ms": "  same, relative to the acknowledgement",
                 "gap_ms": "last old -> first new response (client gap)",
                 "status_ms": "baseline: cutoverctl status (no switch)"}
        for k, name in names.items():
            s = lat[k]
            if not series[k]:
                continue
            lines.append(f"{name:<44} {s['median']:>8.2f} {s['p90']:>8.2f} {s['max'] or 0:>8.2f} {s['min'] or 0:>8.2f}")
        lines.append(f"refused/failed: {lat['refused_or_failed']}; new color never seen: {lat['new_color_not_seen']}; "
                     f"old color answering a request sent after the ack: {stale}; {poller}")
        for r in rows:
            if r["rc"] != "0":
                lines.append(f"  switch {r['i']} to {r['target']}: exit {r['rc']}: {r['error']}")
    if tput_tsv != "-" and os.path.exists(tput_tsv):
        with open(tput_tsv) as f:
            hdr = f.readline().rstrip("\n").split("\t")
            rows = [dict(zip(hdr, line.rstrip("\n").split("\t"))) for line in f if line.strip()]
        by = {}
        for r in rows:
            by.setdefault(r["mode"], []).append(r)
        tp = {}
        for mode, rs in by.items():
            rps = [float(r["rps"]) for r in rs]
            med = statistics.median(rps)
            tp[mode] = {
                "rounds": len(rs), "rps": med, "rps_rounds": rps,
                "spread_pct": (max(rps) - min(rps)) / med * 100 if med else 0,
                "p99_ms": statistics.median(float(r["p99_ms"]) for r in rs),
                "cpu_us_per_req": statistics.median(float(r["cpu_us_per_req"]) for r in rs),
                "errors": sum(int(r["errors"]) for r in rs),
                "switches": sum(int(r["switches"]) for r in rs),
                "switch_failures": sum(int(r["switch_failures"]) for r in rs),
                "blue_green_served": [(int(r["blue_req"]), int(r["green_req"])) for r in rs],
                "other_cpu_pct": max(float(r["other_cpu_pct"]) for r in rs),
            }
        res["throughput"] = tp
        lines.append("")
        lines.append(f"throughput: wrk -t{meta.get('wrk_threads')} -c{meta.get('conns')} -d{meta.get('duration_s')}s "
                     f"keep-alive /tiny, {meta.get('rounds')} interleaved round(s); 'switching' = "
                     f"cutoverctl switch every {meta.get('interval_s')}s during the run")
        lines.append(f"{'mode':<10} {'req/s':>9} {'spread':>7} {'p99 ms':>8} {'CPU us/req':>10} {'errors':>7} "
                     f"{'switches':>9} {'other%':>7}  served blue/green per round")
        for mode in ("steady", "switching"):
            if mode not in tp:
                continue
            s = tp[mode]
            served = " ".join(f"{b}/{g}" for b, g in s["blue_green_served"])
            sw = f"{s['switches']}" + (f" ({s['switch_failures']} failed)" if s["switch_failures"] else "")
            lines.append(f"{mode:<10} {s['rps']:>9.0f} {s['spread_pct']:>6.0f}% {s['p99_ms']:>8.2f} "
                         f"{s['cpu_us_per_req']:>10.2f} {s['errors']:>7} {sw:>9} {s['other_cpu_pct']:>6.0f}%  {served}")
        if {"steady", "switching"} <= tp.keys():
            st, sw = tp["steady"], tp["switching"]
            ratio = {"rps": sw["rps"] / st["rps"] if st["rps"] else None,
                     "cpu_per_req": sw["cpu_us_per_req"] / st["cpu_us_per_req"] if st["cpu_us_per_req"] else None}
            per_round = [float(b["rps"]) / float(a["rps"]) for a, b in zip(by["steady"], by["switching"])
                         if float(a["rps"])]
            ratio["rps_per_round"] = per_round
            res["ratio_switching_over_steady"] = ratio
            lines.append(f"switching/steady: req/s x{ratio['rps']:.3f} (per round: "
                         f"{', '.join(f'{x:.3f}' for x in per_round)}), CPU/req x{ratio['cpu_per_req']:.3f}")
            noisy = [m for m, s in tp.items() if s["spread_pct"] > 10 or s["other_cpu_pct"] > 5]
            if noisy:
                lines.append(f"NOISY (spread > 10% or > 5% of the proxy core used by others): {', '.join(noisy)}; "
                             "compare the per-round ratios and CPU/req, re-run on a quiet machine")
    lines.append(f"load average before/after: {meta.get('loadavg_before')} / {meta.get('loadavg_after')}")
    print("\n".join(lines))
    with open(out, "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")


def main():
    a = sys.argv[1:]
    if a[:1] == ["poll"] and len(a) == 3:
        poll(int(a[1]), a[2])
    elif a[:1] == ["latency"] and len(a) == 8:
        latency(a[1], a[2], int(a[3]), float(a[4]), a[5], a[6], a[7])
    elif a[:1] == ["summary"] and len(a) == 5:
        summary(*a[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
