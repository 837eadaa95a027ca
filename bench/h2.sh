#!/usr/bin/env bash
# HTTP/2 over TLS on the front: cutoverd at its shipped defaults (its TLS
# listener speaks h2 by default) against HAProxy (`alpn h2,http/1.1`,
# nbthread 1) and nginx (`http2` on the TLS listener, one worker), each in
# front of the same nginx backend over HTTP/1.1 with upstream keep-alive,
# loaded with h2load on the client CPU. Two workloads, in interleaved rounds:
#
#   streams  BENCH_H2_CLIENTS connections, BENCH_H2_STREAMS concurrent
#            streams each, GET /tiny for BENCH_H2_SECONDS (h2load -D)
#   new      a new connection with a full TLS handshake per request:
#            h2load -c N -n N -m 1 (each client makes one request on its own
#            connection; h2load never resumes a session), repeated for
#            BENCH_H2_SECONDS
#
# For each it reports requests per second and the proxy's CPU per request
# (utime+stime from /proc, the figure that does not depend on the client).
#
#   bench/h2.sh                                      10 s x 3 rounds, ~3 min
#   BENCH_H2_SECONDS=3 BENCH_ROUNDS=1 bench/h2.sh    smoke run
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BENCH_H2_SECONDS:=10}" "${BENCH_ROUNDS:=3}" "${BENCH_H2_WARMUP:=2}"
: "${BENCH_H2_CLIENTS:=4}" "${BENCH_H2_STREAMS:=32}" "${BENCH_H2_NEW:=100}"
: "${BENCH_H2_WORKLOADS:=streams new}" "${BENCH_PROXIES:=cutoverd haproxy nginx}"
for t in h2load nginx curl python3 openssl; do
    command -v "$t" >/dev/null || die "$t not found (apt-get install -y nghttp2-client nginx-light curl python3 openssl)"
done
read -r -a CLIENTPIN <<<"$(pin "$BENCH_WRK_CPU")"

bench_tmp_init
BENCH_TLS=1
tls_init

# The proxies' templates with HTTP/2 on their TLS listener (run.sh's are
# HTTP/1.1 only): HAProxy offers h2 by ALPN, nginx gets `http2` on its TLS
# `listen` (nginx < 1.25.1 has no `http2 on;`; later versions accept both).
# cutoverd's template is used as it is: TLS listeners speak h2 by default.
TMPL=$TMP/templates
mkdir -p "$TMPL"
cp "$BENCH_SRC"/*.in "$TMPL"/
sed -i 's|^\(#TLS#.*bind .*ssl crt .*\)$|\1 alpn h2,http/1.1|' "$TMPL/haproxy.cfg.in"
sed -i 's|^\([[:space:]]*#TLS#listen .*@TLS_PORT@ ssl\) |\1 http2 |' "$TMPL/nginx-proxy.conf.in"
grep -q 'alpn h2,http/1.1' "$TMPL/haproxy.cfg.in" || die "haproxy.cfg.in: no TLS bind line to add ALPN h2 to"
grep -q 'ssl http2 ' "$TMPL/nginx-proxy.conf.in" || die "nginx-proxy.conf.in: no TLS listen line to add http2 to"
BENCH_SRC_ORIG=$BENCH_SRC
BENCH_SRC=$TMPL

start_backend || die "backend: $FAIL_REASON"
running=()
STATUS=0
for p in $BENCH_PROXIES; do
    if start_proxy "$p"; then
        # It must really speak h2 on its TLS port.
        v=$(curl -s --http2 -o /dev/null -w '%{http_version}' --cacert "$TMP/tls/ca.pem" \
            --resolve "$BENCH_TLS_CERT.test:${PORT[${p}_tls]}:127.0.0.1" \
            "https://$BENCH_TLS_CERT.test:${PORT[${p}_tls]}/tiny")
        if [[ $v != 2 ]]; then
            loud "$p does not negotiate h2 on its TLS listener (curl --http2 got HTTP/$v)"
            STATUS=1
            continue
        fi
        running+=("$p")
        say "bench: $p TLS on :${PORT[${p}_tls]} (${TLS_NEGOTIATED[$p]})"
    else
        loud "$p did not start: $FAIL_REASON"
        STATUS=1
    fi
done
BENCH_SRC=$BENCH_SRC_ORIG
((${#running[@]})) || die "no proxy started"

# h2load_sum FILE...: "requests succeeded failed errored 2xx" summed.
h2load_sum() {
    cat "$@" | awk '
        /^requests: / { t += $2; s += $8; f += $10; e += $12 }
        /^status codes: / { ok += $3 }
        END { printf "%d %d %d %d %d\n", t, s, f, e, ok }'
}

# run_workload PROXY WORKLOAD SECONDS OUTPREFIX: runs h2load; the files
# OUTPREFIX.* hold its output.
run_workload() {
    local p=$1 wl=$2 secs=$3 out=$4 url end i=0
    url="https://127.0.0.1:${PORT[${p}_tls]}/tiny"
    case $wl in
    streams)
        "${CLIENTPIN[@]}" h2load -t 1 -c "$BENCH_H2_CLIENTS" -m "$BENCH_H2_STREAMS" -D "$secs" "$url" \
            >"$out.0" 2>&1
        ;;
    new)
        end=$((SECONDS + secs))
        while ((SECONDS < end)); do
            "${CLIENTPIN[@]}" h2load -t 1 -c "$BENCH_H2_NEW" -n "$BENCH_H2_NEW" -m 1 "$url" >"$out.$i" 2>&1
            i=$((i + 1))
        done
        ;;
    esac
}

printf '%-8s %-9s %5s %9s %10s %12s %8s\n' workload proxy round requests "req/s" "cpu us/req" errors
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
    for wl in $BENCH_H2_WORKLOADS; do
        for p in "${running[@]}"; do
            mapfile -t pids < <(pids_of "$p")
            if ! kill -0 "${pids[0]}" 2>/dev/null; then
                loud "$p died during the run (see $TMP/$p.log)"
                STATUS=1
                continue
            fi
            ((BENCH_H2_WARMUP > 0)) && run_workload "$p" "$wl" "$BENCH_H2_WARMUP" "$TMP/warmup"
            out=$TMP/h2load-$wl-$p-$r
            c0=$(cpu_ticks "${pids[@]}")
            t0=$(date +%s.%N)
            run_workload "$p" "$wl" "$BENCH_H2_SECONDS" "$out"
            t1=$(date +%s.%N)
            c1=$(cpu_ticks "${pids[@]}")
            read -r total ok failed errored s2xx <<<"$(h2load_sum "$out".*)"
            if ((ok == 0)); then
                say "bench: no request succeeded with $p: $(grep -h -m 3 -i -E 'error|fail|requests:' "$out".* | tr '\n' ' ')"
                STATUS=1
                continue
            fi
            errs=$((failed + errored + ok - s2xx))
            ((errs > 0)) && STATUS=1
            python3 -c 'import sys
wl, p, r, n, t0, t1, ticks, hz, errs = sys.argv[1:]
n, ticks = int(n), int(ticks)
print("%-8s %-9s %5s %9d %10.0f %12.1f %8s" % (wl, p, r, n, n / (float(t1) - float(t0)),
      ticks / int(hz) / n * 1e6, errs))' "$wl" "$p" "$r" "$ok" "$t0" "$t1" "$((c1 - c0))" "$CLK_TCK" "$errs" |
                tee -a "$TMP/rows"
        done
    done
done
# Medians over the rounds, and cutoverd's ratios to each peer.
[[ -s $TMP/rows ]] && python3 - "$TMP/rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
cells = {}
for wl, p, r, n, rps, cpu, errs in rows:
    cells.setdefault((wl, p), []).append((float(rps), float(cpu)))
print("\nmedians over %d round(s):" % max(len(v) for v in cells.values()))
print("%-8s %-9s %10s %12s %16s" % ("workload", "proxy", "req/s", "cpu us/req", "cutoverd x req/s, cpu"))
for (wl, p), v in cells.items():
    rps, cpu = statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)
    ratio = ""
    own = cells.get((wl, "cutoverd"))
    if own and p != "cutoverd":
        ratio = "x%.2f, x%.2f" % (statistics.median(x[0] for x in own) / rps, statistics.median(x[1] for x in own) / cpu)
    print("%-8s %-9s %10.0f %12.1f %16s" % (wl, p, rps, cpu, ratio))
PY
((STATUS == 0)) || say "bench: FAILED (a proxy did not start or speak h2, died, or a run had errors)"
exit "$STATUS"
