#!/usr/bin/env bash
# Full TLS handshakes (no resumption), cutoverd at its shipped defaults
# against HAProxy and nginx, one worker each, in front of the same nginx
# backend (issue 13, item 5). wrk resumes TLS sessions, so run.sh's tls_new
# measures resumed handshakes; here every connection is a full handshake:
# `openssl s_time -new` (a new session for each connection, TLS 1.3 by
# default) fetching GET /tiny, BENCH_TLS_CLIENTS of them in parallel on the
# client CPU. For each certificate (ECDSA P-256 and RSA 2048, the same one on
# all three proxies) and proxy, in interleaved rounds, it reports handshakes
# per second and the proxy's CPU per handshake (utime+stime from /proc: the
# figure that does not depend on how fast the clients are).
#
#   bench/tls_full.sh                    10 s x 3 rounds, both certificates, ~4 min
#   BENCH_TLS_SECONDS=3 BENCH_ROUNDS=1 bench/tls_full.sh      smoke run
#   BENCH_TLS_CERTS=b bench/tls_full.sh  RSA 2048 only
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${BENCH_TLS_SECONDS:=10}" "${BENCH_ROUNDS:=3}" "${BENCH_TLS_CLIENTS:=4}"
: "${BENCH_TLS_CERTS:=a b}" "${BENCH_PROXIES:=cutoverd haproxy nginx}"
command -v openssl >/dev/null || die "openssl not installed"
read -r -a CLIENTPIN <<<"$(pin "$BENCH_WRK_CPU")"

bench_tmp_init
BENCH_TLS=1
start_backend || die "backend: $FAIL_REASON"
STATUS=0
printf '%-4s %-9s %5s %8s %10s %12s\n' cert proxy round "conns" "conns/s" "cpu us/conn"
for cert in $BENCH_TLS_CERTS; do
    BENCH_TLS_CERT=$cert
    tls_init
    running=()
    for p in $BENCH_PROXIES; do
        unset "PORT[$p]" "PORT[${p}_tls]"
        if start_proxy "$p"; then running+=("$p"); else loud "$p did not start: $FAIL_REASON"; STATUS=1; fi
    done
    for ((r = 1; r <= BENCH_ROUNDS; r++)); do
        for p in "${running[@]}"; do
            mapfile -t pids < <(pids_of "$p")
            c0=$(cpu_ticks "${pids[@]}")
            clients=()
            for ((i = 0; i < BENCH_TLS_CLIENTS; i++)); do
                "${CLIENTPIN[@]}" openssl s_time -connect "127.0.0.1:${PORT[${p}_tls]}" -new \
                    -time "$BENCH_TLS_SECONDS" -www /tiny >"$TMP/s_time-$cert-$p-$r-$i.out" 2>&1 &
                clients+=("$!")
            done
            wait "${clients[@]}"
            c1=$(cpu_ticks "${pids[@]}")
            conns=$(cat "$TMP"/s_time-"$cert-$p-$r"-*.out |
                awk '/connections in [0-9.]+ real seconds/ {n += $1} END {print n + 0}')
            if ((conns == 0)); then
                say "bench: no handshake with $p: $(head -n 3 "$TMP/s_time-$cert-$p-$r-0.out" | tr '\n' ' ')"
                STATUS=1
                continue
            fi
            python3 -c 'import sys
cert, p, r, n, secs, ticks, hz = sys.argv[1:]
n, ticks = int(n), int(ticks)
print("%-4s %-9s %5s %8d %10.0f %12.1f" % ({"a": "ecdsa", "b": "rsa"}.get(cert, cert), p, r, n,
      n / float(secs), ticks / int(hz) / n * 1e6))' "$cert" "$p" "$r" "$conns" "$BENCH_TLS_SECONDS" \
                "$((c1 - c0))" "$CLK_TCK"
        done
    done
    for p in "${running[@]}"; do
        kill -TERM "${PID[$p]}" 2>/dev/null
        wait "${PID[$p]}" 2>/dev/null
        unset "STARTED[$p]"
    done
done
exit "$STATUS"
