#!/usr/bin/env bash
# Memory per client connection: cutoverd (shipped defaults) against HAProxy
# and nginx, one worker each, in front of the same nginx backend (issue 13,
# item 4). For each proxy and each mode it starts the proxy afresh, reads its
# RSS (VmRSS summed over its processes), opens N client connections with
# bench/holdconns.py, reads the RSS again and prints the growth per
# connection:
#   idle  one GET /tiny each, answered, then the connection idles (keep-alive)
#   slow  each client has sent a request head without its last line and waits
#         (mid-request; measured well inside every proxy's header timeout)
#
#   bench/conns.sh                     N=9000, both modes, all three proxies
#   BENCH_CONNS_N=5000 BENCH_CONNS_MODES=idle BENCH_PROXIES=cutoverd bench/conns.sh
#
# The peers only get the connection limits that 10,000 clients need
# (nginx worker_connections/worker_rlimit_nofile, HAProxy maxconn); cutoverd
# runs at its defaults (limits.max_connections = 10000 per worker). Kernel
# socket memory is not in RSS and is the same for all three. Run as root.
# N defaults to 9,000 because a proxy needs two descriptors per client in
# the worst case and this project's machines have a hard RLIMIT_NOFILE of
# 20,000 that root cannot raise (no CAP_SYS_RESOURCE): HAProxy refuses to
# start with a maxconn it cannot back, and cutoverd caps itself at ~9,995.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

: "${BENCH_CONNS_N:=9000}"
: "${BENCH_CONNS_MODES:=idle slow}"
: "${BENCH_PROXIES:=cutoverd haproxy nginx}"

# Descriptors for N clients and their upstream side, in every process here
# (raising the hard limit needs root, as the other benchmarks do).
want_fds=$((BENCH_CONNS_N * 3 + 4096))
if (($(ulimit -Hn) < want_fds)); then
    ulimit -Hn "$want_fds" 2>/dev/null || say "bench: cannot raise the descriptor limit to $want_fds (not root?)"
fi
ulimit -n "$(ulimit -Hn)"

bench_tmp_init
# The peers' templates with limits for N clients; cutoverd's is unchanged.
TMPL=$TMP/templates
mkdir -p "$TMPL"
cp "$BENCH_SRC"/*.in "$TMPL/"
lim=$((BENCH_CONNS_N + 1024))
hard=$(ulimit -Hn)
[[ $hard != unlimited ]] && ((lim > (hard - 200) / 2)) && lim=$(((hard - 200) / 2))
sed -i -e "s/worker_connections [0-9]*;/worker_connections $((lim * 2));/" \
    -e "s/worker_rlimit_nofile [0-9]*;/worker_rlimit_nofile $((lim * 2 + 64));/" "$TMPL/nginx-proxy.conf.in"
sed -i -e "s/maxconn [0-9]*/maxconn $lim/" "$TMPL/haproxy.cfg.in"
HOLD=$BENCH_SRC/holdconns.py
BENCH_SRC=$TMPL

rss_kib() {
    local p sum=0 v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
        sum=$((sum + ${v:-0}))
    done
    printf '%s\n' "$sum"
}

start_backend || die "backend: $FAIL_REASON"
printf '%-9s %-5s %7s %10s %10s %12s\n' proxy mode conns "rss0 KiB" "rss KiB" "bytes/conn"
for mode in $BENCH_CONNS_MODES; do
    for p in $BENCH_PROXIES; do
        PORT[$p]=$(free_ports 1)
        start_proxy "$p" || die "$p: $FAIL_REASON"
        for _ in 1 2 3 4 5; do curl_tiny "$p" >/dev/null; done
        sleep 0.5
        # shellcheck disable=SC2046
        read -r -a pids <<<"$(pids_of "$p" | tr '\n' ' ')"
        r0=$(rss_kib "${pids[@]}")
        coproc HOLDER { python3 "$HOLD" "${PORT[$p]}" "$BENCH_CONNS_N" "$mode"; }
        read -r word ok failed <&"${HOLDER[0]}" || die "holdconns.py failed"
        [[ $word == ready ]] || die "holdconns.py: $word"
        sleep 1
        r1=$(rss_kib "${pids[@]}")
        printf '%-9s %-5s %7d %10d %10d %12d%s\n' "$p" "$mode" "$ok" "$r0" "$r1" \
            $(((r1 - r0) * 1024 / (ok > 0 ? ok : 1))) "$( ((failed)) && echo " ($failed failed)")"
        exec {HOLDER[1]}>&-
        wait "$HOLDER_PID" 2>/dev/null || true
        kill -TERM "${PID[$p]}"
        wait "${PID[$p]}" 2>/dev/null || true
        unset "STARTED[$p]"
    done
done
