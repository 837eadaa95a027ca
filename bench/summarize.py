#!/usr/bin/env python3
"""Summarise bench/run.sh's raw TSV: medians over rounds, ratios to peers.

usage: summarize.py RAW.tsv OUT.json META_JSON
Prints a table on stdout and writes OUT.json.
"""
import csv
import json
import statistics
import sys

WORKLOADS = {"ka_tiny": "keep-alive, tiny body",
             "ka_64k": "keep-alive, 64 KiB body",
             "close": "new connection per request",
             "ka_500": "keep-alive, tiny, 500 conns",
             "tls_ka": "TLS keep-alive, tiny body",
             "tls_new": "TLS handshake per request"}
ORDER = ["cutoverd", "haproxy", "nginx"]
ERR = ["connect_err", "read_err", "write_err", "timeout_err", "non2xx"]


def main():
    raw, out, meta = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    with open(raw) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    cells = {}
    for r in rows:
        cells.setdefault((r["workload"], r["proxy"]), []).append(r)

    def med(rs, k):
        return statistics.median(float(r[k]) for r in rs)

    summary = {}
    for (wl, p), rs in cells.items():
        errs = {k: sum(int(r[k]) for r in rs) for k in ERR}
        summary.setdefault(wl, {})[p] = {
            "rounds": len(rs),
            "rps": med(rs, "rps"),
            "rps_rounds": [float(r["rps"]) for r in rs],
            "p99_ms": med(rs, "p99_ms"),
            "p999_ms": med(rs, "p999_ms") if all(r.get("p999_ms") for r in rs) else None,
            "p50_ms": med(rs, "p50_ms"),
            "cpu_us_per_req": med(rs, "cpu_us_per_req"),
            "backend_cpu_us_per_req": med(rs, "backend_cpu_us_per_req"),
            "wrk_cpu_us_per_req": med(rs, "wrk_cpu_us_per_req"),
            "peak_rss_kib": max(int(r["peak_rss_kib"]) for r in rs),
            "other_cpu_pct": max(float(r["other_cpu_pct"]) + float(r["steal_pct"]) for r in rs),
            "wrk_other_cpu_pct": max(float(r["wrk_other_cpu_pct"]) + float(r["wrk_steal_pct"]) for r in rs),
            "errors": errs,
            "flagged": any(errs.values()) or any(int(r["requests"]) == 0 for r in rs),
        }
    ratios = {}
    for wl, ps in summary.items():
        base = "cutoverd" if "cutoverd" in ps else None
        pairs = ([(base, o) for o in ("haproxy", "nginx") if o in ps] if base
                 else [("haproxy", "nginx")] if {"haproxy", "nginx"} <= ps.keys() else [])
        for a, b in pairs:
            ratios.setdefault(wl, {})[f"{a}/{b}"] = {
                "rps": ps[a]["rps"] / ps[b]["rps"] if ps[b]["rps"] else None,
                "cpu_per_req": (ps[a]["cpu_us_per_req"] / ps[b]["cpu_us_per_req"]
                                if ps[b]["cpu_us_per_req"] else None),
            }

    lines = []
    lines.append(f"cutover bench: {meta.get('rounds')} round(s) x {meta.get('duration_s')}s, "
                 f"wrk -t{meta.get('wrk_threads')} -c{meta.get('conns')}{' (ka_500: -c500)' if 'ka_500' in summary else ''} on CPU {meta.get('wrk_cpu')}, "
                 f"proxies on CPU {meta.get('proxy_cpu')}, backend on CPU {meta.get('backend_cpu')}")
    lines.append("medians over rounds; spread = (max-min)/median req/s over rounds; "
                 "CPU/req = proxy utime+stime / requests;")
    lines.append("other% = max share of the proxy+backend core / of wrk's core taken by other processes or the hypervisor;")
    lines.append("RSS = peak (VmHWM, max over rounds; nginx = master+worker); "
                 f"load average before/after: {meta.get('loadavg_before')} / {meta.get('loadavg_after')}")
    hdr = f"{'workload':<28} {'proxy':<9} {'req/s':>10} {'spread':>7} {'p99 ms':>8} {'p99.9 ms':>8} {'CPU us/req':>10} " \
          f"{'backend us/req':>14} {'peak RSS MiB':>12} {'other%':>9}  errors"
    noisy = []
    for wl in [w for w in WORKLOADS if w in summary] + [w for w in summary if w not in WORKLOADS]:
        lines.append("")
        lines.append(hdr)
        ps = summary[wl]
        for p in [p for p in ORDER if p in ps] + [p for p in ps if p not in ORDER]:
            s = ps[p]
            e = s["errors"]
            err = "none" if not s["flagged"] else "FLAGGED " + " ".join(
                f"{k}={v}" for k, v in e.items() if v)
            spread = (max(s["rps_rounds"]) - min(s["rps_rounds"])) / s["rps"] * 100 if s["rps"] else 0
            p999 = "n/a" if s["p999_ms"] is None else f"{s['p999_ms']:.2f}"
            lines.append(f"{WORKLOADS.get(wl, wl):<28} {p:<9} {s['rps']:>10.0f} {spread:>6.0f}% {s['p99_ms']:>8.2f} "
                         f"{p999:>8} "
                         f"{s['cpu_us_per_req']:>10.2f} {s['backend_cpu_us_per_req']:>14.2f} "
                         f"{s['peak_rss_kib'] / 1024:>12.1f} {s['other_cpu_pct']:>4.0f}/{s['wrk_other_cpu_pct']:<4.0f}  {err}")
            if spread > 20 or s["other_cpu_pct"] > 5 or s["wrk_other_cpu_pct"] > 5:
                noisy.append(f"{wl}/{p}")
        for pair, v in ratios.get(wl, {}).items():
            f = lambda x: "n/a" if x is None else f"{x:.2f}"
            lines.append(f"{'':<28} {pair:<17} req/s x{f(v['rps'])}   CPU/req x{f(v['cpu_per_req'])}")
    tls = {k[len("tls_negotiated_"):]: v for k, v in meta.items() if k.startswith("tls_negotiated_")}
    if tls and any(w.startswith("tls_") for w in summary):
        lines.append("")
        lines.append(f"TLS: certificate {meta.get('tls_cert', '?').strip()}, OpenSSL {meta.get('openssl', '?')}; "
                     "negotiated with openssl s_client defaults:")
        for p in [p for p in ORDER if p in tls] + [p for p in tls if p not in ORDER]:
            lines.append(f"  {p:<9} {tls[p]}")
        wrk = [f"{wl}/{p} {s['wrk_cpu_us_per_req']:.1f}" for wl in summary if wl.startswith("tls_")
               for p, s in summary[wl].items()]
        lines.append(f"  wrk CPU us/req (client side of TLS, its own core): {', '.join(wrk)}")
    if noisy:
        lines.append("")
        lines.append(f"NOISY (spread > 20% or > 5% of a core used by others): {', '.join(noisy)}")
        lines.append("  judge by CPU us/req; re-run on a quiet machine or with more BENCH_ROUNDS")
    if meta.get("failed", "").strip():
        lines.append("")
        lines.append(f"NOT MEASURED (did not start): {meta['failed'].strip()}")
    print("\n".join(lines))
    with open(out, "w") as f:
        json.dump({"meta": meta, "results": summary, "ratios": ratios}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
