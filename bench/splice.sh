#!/usr/bin/env bash
# splice(2) for large bodies: CPU per byte and throughput of cutoverd with
# and without splicing Content-Length response bodies, HAProxy with and
# without `option splice-auto` for reference. One worker each, the same
# nginx backend serving 1 MiB and 64 MiB files; wrk and curl as clients;
# rounds interleaved (the order of the proxies rotates every round).
# See bench/README.md, "splice(2) for large bodies".
#
#   bench/splice.sh                      # 3 rounds, 5 s per wrk run
#   BENCH_ROUNDS=5 BENCH_DURATION=10 bench/splice.sh
#
# Output: one TSV line per run on stdout (and in $TMP/splice.tsv, kept with
# BENCH_KEEP=1), then the medians per (size, client, proxy). Run as
# root, like run.sh (the backend's `user root`).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

: "${BENCH_ROUNDS:=3}"
: "${BENCH_DURATION:=5}"
: "${BENCH_SIZES:=1m 64m}"
: "${BENCH_CLIENTS:=wrk curl}"
: "${BENCH_PROXIES:=cutoverd cutoverd_splice haproxy haproxy_splice}"
: "${BENCH_SPLICE:=262144}" # cutoverd_splice's upstream.splice (cutoverd's is 0)
: "${BENCH_WRK_CONNS_1m:=8}"
: "${BENCH_WRK_CONNS_64m:=4}"
: "${BENCH_CURL_N_1m:=1000}" # one keep-alive connection, 1 GiB
: "${BENCH_CURL_N_64m:=16}"  # 1 GiB

for t in wrk curl nginx haproxy taskset; do
    command -v "$t" >/dev/null || die "$t not found (apt-get install -y wrk curl nginx-light haproxy util-linux)"
done
bin=$(find_cutoverd) || die "no cutoverd binary (build it, or set CUTOVERD=/path/to/cutoverd)"

bench_tmp_init
head -c $((1 << 20)) /dev/urandom >"$TMP/www/1m"
head -c $((64 << 20)) /dev/urandom >"$TMP/www/64m"
start_backend || die "backend: $FAIL_REASON"

# start_cut NAME [extra config]: a cutoverd from the bench template, its own directory.
start_cut() {
    local name=$1 extra=${2:-}
    mkdir -p "$TMP/$name"
    PORT[$name]=$(free_ports 1)
    sed "s|/cutoverd/|/@NAME@/|g" "$BENCH_SRC/cutoverd.conf.in" >"$TMP/$name.conf.in"
    [[ -n $extra ]] && printf '%s\n' "$extra" >>"$TMP/$name.conf.in"
    render "$name" "$TMP/$name.conf.in" "$TMP/$name/cutover.conf"
    "$bin" -t -c "$TMP/$name/cutover.conf" >"$TMP/$name.check" 2>&1 ||
        die "$name: $bin -t rejected its config: $(head -n 3 "$TMP/$name.check")"
    launch "$name" "$BENCH_PROXY_CPU" "$bin" -c "$TMP/$name/cutover.conf"
}

# start_hap NAME [extra defaults line]
start_hap() {
    local name=$1 extra=${2:-}
    mkdir -p "$TMP/$name"
    PORT[$name]=$(free_ports 1)
    render "$name" "$BENCH_SRC/haproxy.cfg.in" "$TMP/$name/haproxy.cfg"
    [[ -n $extra ]] && sed -i "s|^    http-reuse always|    http-reuse always\n    $extra|" "$TMP/$name/haproxy.cfg"
    launch "$name" "$BENCH_PROXY_CPU" haproxy -db -f "$TMP/$name/haproxy.cfg"
}

for p in $BENCH_PROXIES; do
    case $p in
    cutoverd) start_cut "$p" "upstream: { splice = 0; };" ;;
    cutoverd_splice) start_cut "$p" "upstream: { splice = $BENCH_SPLICE; };" ;;
    haproxy) start_hap "$p" ;;
    haproxy_splice) start_hap "$p" "option splice-auto" ;;
    *) die "unknown proxy $p" ;;
    esac
    wait_ready "$p" || die "$p: $FAIL_REASON"
    for sz in $BENCH_SIZES; do
        if ! curl -s --max-time 20 -o "$TMP/$p.$sz" "http://127.0.0.1:${PORT[$p]}/$sz" ||
            ! cmp -s "$TMP/$p.$sz" "$TMP/www/$sz"; then
            die "$p: wrong /$sz body"
        fi
        rm -f "$TMP/$p.$sz"
    done
done

read -r -a WRKPIN <<<"$(pin "$BENCH_WRK_CPU")"

# measure PROXY SIZE CLIENT: prints "bytes seconds cpu_ticks"
measure() {
    local p=$1 sz=$2 cl=$3 t0 t1 c0 c1 bytes n conns out
    c0=$(cpu_ticks "${PID[$p]}")
    t0=$(date +%s%N)
    if [[ $cl == wrk ]]; then
        conns=BENCH_WRK_CONNS_$sz
        out=$("${WRKPIN[@]}" wrk -t1 -c"${!conns}" -d"${BENCH_DURATION}s" --timeout 60s -s "$BENCH_SRC/report.lua" \
            "http://127.0.0.1:${PORT[$p]}/$sz" | grep '^BENCH ')
        bytes=$(sed 's/.* bytes=\([0-9]*\).*/\1/' <<<"$out")
        grep -q 'connect=0 read=0 write=0 status=0 timeout=0' <<<"$out" || say "bench: $p $sz wrk errors: $out"
    else
        n=BENCH_CURL_N_$sz
        : >"$TMP/curl.cfg"
        for ((i = 0; i < ${!n}; i++)); do
            printf 'url = "http://127.0.0.1:%s/%s"\noutput = "/dev/null"\n' "${PORT[$p]}" "$sz" >>"$TMP/curl.cfg"
        done
        bytes=$("${WRKPIN[@]}" curl -s -K "$TMP/curl.cfg" -w '%{size_download}\n' | awk '{s += $1} END {print s}')
    fi
    t1=$(date +%s%N)
    c1=$(cpu_ticks "${PID[$p]}")
    printf '%s %s %s\n' "$bytes" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')" $((c1 - c0))
}

read -r -a PROXIES <<<"$BENCH_PROXIES"
RAW=$TMP/splice.tsv
printf 'round\tsize\tclient\tproxy\tbytes\tseconds\tMiB_per_s\tcpu_s\tcpu_s_per_GiB\n' | tee "$RAW"
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
    for sz in $BENCH_SIZES; do
        for cl in $BENCH_CLIENTS; do
            for ((k = 0; k < ${#PROXIES[@]}; k++)); do
                p=${PROXIES[$(((k + r - 1) % ${#PROXIES[@]}))]}
                read -r bytes secs ticks < <(measure "$p" "$sz" "$cl")
                awk -v r="$r" -v sz="$sz" -v cl="$cl" -v p="$p" -v b="$bytes" -v s="$secs" -v t="$ticks" \
                    -v hz="$CLK_TCK" 'BEGIN {
                        printf "%d\t%s\t%s\t%s\t%.0f\t%.2f\t%.0f\t%.2f\t%.3f\n", r, sz, cl, p, b, s,
                            b / 1048576 / s, t / hz, (t / hz) / (b / 1073741824) }' | tee -a "$RAW"
            done
        done
    done
done

say ""
say "medians over $BENCH_ROUNDS rounds (spread = (max - min) / median of cpu_s_per_GiB):"
python3 - "$RAW" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
keys = []
for r in rows:
    k = (r["size"], r["client"], r["proxy"])
    if k not in keys:
        keys.append(k)
print("size\tclient\tproxy\tMiB_per_s\tcpu_s_per_GiB\tspread")
for k in keys:
    sel = [r for r in rows if (r["size"], r["client"], r["proxy"]) == k]
    mib = statistics.median(float(r["MiB_per_s"]) for r in sel)
    cpu = [float(r["cpu_s_per_GiB"]) for r in sel]
    med = statistics.median(cpu)
    print("%s\t%s\t%s\t%.0f\t%.3f\t%.0f%%" % (*k, mib, med, 100 * (max(cpu) - min(cpu)) / med if med else 0))
PY
