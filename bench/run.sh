#!/usr/bin/env bash
# Benchmark cutoverd against HAProxy and nginx, each with one worker, in front
# of the same nginx backend on loopback. See bench/README.md.
#
#   bench/run.sh            full run (BENCH_ROUNDS x BENCH_DURATION per cell)
#   bench/run.sh --quick    smoke run: 2s, 1 round, 1s warm-up
#
# Exit status: 0 when every proxy started and every measured run was free of
# errors; 1 otherwise (a proxy that does not start is skipped loudly).
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'U'
Environment (defaults in brackets):
  BENCH_DURATION [10]  seconds per measured run     BENCH_WARMUP [2]  seconds of warm-up
  BENCH_ROUNDS [3]     interleaved rounds           BENCH_CONNS [50]  wrk connections
  BENCH_THREADS [1]    wrk threads                  BENCH_PROXIES ["cutoverd haproxy nginx"]
  BENCH_WORKLOADS ["ka_tiny ka_64k close ka_500"]; also tls_ka tls_new (TLS; "all" = all six)
  BENCH_TLS_CERT [a]   a: ECDSA P-256, b: RSA 2048 (the certificate all three serve)
  BENCH_WRK_CPU [0]  BENCH_PROXY_CPU [1]  BENCH_BACKEND_CPU [=proxy CPU]   (-1: no pinning)
  CUTOVERD [src/cutoverd or build/src/cutoverd]     BENCH_KEEP=1 keeps the temp dir
U
}

QUICK=0
for a in "$@"; do
    case $a in
    --quick) QUICK=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
if ((QUICK)); then
    : "${BENCH_DURATION:=2}" "${BENCH_ROUNDS:=1}" "${BENCH_WARMUP:=1}"
fi
: "${BENCH_DURATION:=10}" "${BENCH_ROUNDS:=3}" "${BENCH_WARMUP:=2}"
: "${BENCH_CONNS:=50}" "${BENCH_THREADS:=1}"
: "${BENCH_PROXIES:=cutoverd haproxy nginx}"
: "${BENCH_WORKLOADS:=ka_tiny ka_64k close ka_500}"
[[ $BENCH_WORKLOADS == all ]] && BENCH_WORKLOADS="ka_tiny ka_64k close ka_500 tls_ka tls_new"
for wl in $BENCH_WORKLOADS; do
    [[ -n $(workload_path "$wl") ]] || die "unknown workload $wl (ka_tiny ka_64k close ka_500 tls_ka tls_new)"
    [[ $wl == tls_* ]] && BENCH_TLS=1
done

for t in wrk nginx curl python3 taskset; do
    command -v "$t" >/dev/null || die "$t not found (apt-get install -y wrk nginx-light curl python3 util-linux)"
done

bench_tmp_init
((BENCH_TLS)) && tls_init
RESULTS=$BENCH_SRC/results
mkdir -p "$RESULTS"
STAMP=$(date +%Y%m%d-%H%M%S)
RAW=$RESULTS/$STAMP.tsv
read -r -a WRKPIN <<<"$(pin "$BENCH_WRK_CPU")"

STATUS=0
declare -A FAILED=()
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
start_backend || die "the backend nginx did not start: $FAIL_REASON"
say "bench: backend nginx on :${PORT[backend]} (CPU ${BENCH_BACKEND_CPU})"

PROXIES=()
for p in $BENCH_PROXIES; do
    if start_proxy "$p"; then
        PROXIES+=("$p")
        say "bench: $p on :${PORT[$p]}${PORT[${p}_tls]:+, TLS on :${PORT[${p}_tls]} (${TLS_NEGOTIATED[$p]})} (CPU ${BENCH_PROXY_CPU})"
    else
        loud "$p did not start: ${FAIL_REASON:-see above}"
        FAILED[$p]=${FAIL_REASON:-see above}
        STATUS=1
    fi
done
((${#PROXIES[@]})) || die "no proxy started"

[[ $BENCH_PROXY_CPU == "$BENCH_BACKEND_CPU" && $BENCH_PROXY_CPU != -1 ]] &&
    say "bench: note: backend and proxy share CPU $BENCH_PROXY_CPU; CPU/request below counts the proxy only"

# CPUs whose foreign load is reported (proxy and backend cores, when pinned).
NOISE_CPUS=$(printf '%s\n' "$BENCH_PROXY_CPU" "$BENCH_BACKEND_CPU" | grep -E '^[0-9]+$' | sort -u | xargs)
WRK_CPUS=$(printf '%s\n' "$BENCH_WRK_CPU" | grep -E '^[0-9]+$' | grep -vxF -f <(tr " " "\n" <<<"$NOISE_CPUS") | xargs)
# child_ticks: user+sys clock ticks of this shell's reaped children (wrk).
# `times` must run in this shell, not in a $(...) subshell, to see wrk.
child_ticks() {
    times >"$TMP/times"
    tail -n 1 "$TMP/times" | python3 -c '
import re, sys
v = re.findall(r"(\d+)m([\d.]+)s", sys.stdin.read())
print(round(sum(int(m) * 60 + float(s) for m, s in v) * int(sys.argv[1])))' "$CLK_TCK"
}

# run_wrk NAME WORKLOAD SECONDS OUTFILE
run_wrk() {
    local name=$1 wl=$2 secs=$3 out=$4 extra=()
    [[ $wl == close || $wl == tls_new ]] && extra=(-H "Connection: close")
    "${WRKPIN[@]}" wrk -t"$BENCH_THREADS" -c"$(workload_conns "$wl")" -d"${secs}s" --latency \
        -s "$BENCH_SRC/report.lua" "${extra[@]}" "$(workload_url "$name" "$wl")" >"$out" 2>&1
}

printf 'round\tworkload\tproxy\trequests\tduration_s\trps\tp50_ms\tp99_ms\tp999_ms\tcpu_s\tcpu_us_per_req\tbackend_cpu_us_per_req\tpeak_rss_kib\tconnect_err\tread_err\twrite_err\ttimeout_err\tnon2xx\tother_cpu_pct\tsteal_pct\twrk_other_cpu_pct\twrk_steal_pct\twrk_cpu_us_per_req\n' >"$RAW"

total=$((BENCH_ROUNDS * $(wc -w <<<"$BENCH_WORKLOADS") * ${#PROXIES[@]}))
n=0
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
    for wl in $BENCH_WORKLOADS; do
        for p in "${PROXIES[@]}"; do
            n=$((n + 1))
            mapfile -t pids < <(pids_of "$p")
            mapfile -t bpids < <(pids_of backend)
            if ! kill -0 "${pids[0]}" 2>/dev/null; then
                loud "$p died during the run (see $TMP/$p.log)"
                STATUS=1
                continue
            fi
            say "bench: [$n/$total] round $r $wl $p"
            ((BENCH_WARMUP > 0)) && run_wrk "$p" "$wl" "$BENCH_WARMUP" "$TMP/warmup.out"
            reset_hwm "${pids[@]}"
            read -r s0 st0 <<<"$(cpu_stat "$NOISE_CPUS")"
            read -r w0 ws0 <<<"$(cpu_stat "$WRK_CPUS")"
            child_ticks >"$TMP/k0"; k0=$(<"$TMP/k0")
            t0=$(date +%s.%N)
            c0=$(cpu_ticks "${pids[@]}")
            b0=$(cpu_ticks "${bpids[@]}")
            log=$TMP/wrk-r$r-$wl-$p.out
            run_wrk "$p" "$wl" "$BENCH_DURATION" "$log"
            child_ticks >"$TMP/k1"; k1=$(<"$TMP/k1")
            read -r w1 ws1 <<<"$(cpu_stat "$WRK_CPUS")"
            c1=$(cpu_ticks "${pids[@]}")
            b1=$(cpu_ticks "${bpids[@]}")
            t1=$(date +%s.%N)
            read -r s1 st1 <<<"$(cpu_stat "$NOISE_CPUS")"
            hwm=$(hwm_kib "${pids[@]}")
            line=$(grep '^BENCH ' "$log")
            if [[ -z $line ]]; then
                say "bench: wrk failed against $p:"
                cat "$log" >&2
                STATUS=1
                continue
            fi
            declare -A m=()
            for kv in ${line#BENCH }; do m[${kv%%=*}]=${kv#*=}; done
            python3 - "$r" "$wl" "$p" "${m[requests]}" "${m[duration_us]}" "${m[p50_us]}" \
                "${m[p99_us]}" "${m[p999_us]}" "$((c1 - c0))" "$((b1 - b0))" "$CLK_TCK" "$hwm" "${m[connect]}" \
                "${m[read]}" "${m[write]}" "${m[timeout]}" "${m[status]}" \
                "$((s1 - s0))" "$((st1 - st0))" "$t0" "$t1" "$(wc -w <<<"$NOISE_CPUS")" \
                "$((w1 - w0))" "$((ws1 - ws0))" "$((k1 - k0))" "$(wc -w <<<"$WRK_CPUS")" >>"$RAW" <<'PY'
import sys
(r, wl, p, req, dur, p50, p99, p999, ct, bt, hz, hwm, ce, re, we, te, st,
 busy, steal, t0, t1, ncpu, wbusy, wsteal, wt, nwcpu) = sys.argv[1:]
req, dur, ct, bt, hz = int(req), int(dur) / 1e6, int(ct), int(bt), int(hz)
wall = float(t1) - float(t0)
# Share of the proxy/backend CPU(s) and of wrk's CPU used by anything else
# (other processes), and stolen by the hypervisor.
def foreign(busy, own, steal, ncpu):
    avail = wall * hz * int(ncpu)
    if not avail:
        return 0.0, 0.0
    return max(0.0, (int(busy) - own) / avail * 100), int(steal) / avail * 100
other, stolen = foreign(busy, ct + bt, steal, ncpu)
wother, wstolen = foreign(wbusy, int(wt), wsteal, nwcpu)
cpu = ct / hz
per = lambda t: (t / hz) / req * 1e6 if req else 0.0
print("\t".join(map(str, [r, wl, p, req, f"{dur:.3f}", f"{req / dur:.1f}",
      f"{int(p50) / 1000:.3f}", f"{int(p99) / 1000:.3f}", f"{int(p999) / 1000:.3f}", f"{cpu:.2f}",
      f"{per(ct):.2f}", f"{per(bt):.2f}", hwm, ce, re, we, te, st,
      f"{other:.1f}", f"{stolen:.1f}", f"{wother:.1f}", f"{wstolen:.1f}",
      f"{per(int(wt)):.2f}"])))
PY
            errs=$((m[connect] + m[read] + m[write] + m[timeout] + m[status]))
            if ((errs > 0 || m[requests] == 0)); then
                say "bench: $p $wl round $r: ${m[requests]} requests, errors: connect ${m[connect]} read ${m[read]} write ${m[write]} timeout ${m[timeout]} non-2xx ${m[status]}"
                STATUS=1
            fi
            unset m
        done
    done
done

TLSMETA=(); for p in "${!TLS_NEGOTIATED[@]}"; do TLSMETA+=("tls_negotiated_$p=${TLS_NEGOTIATED[$p]}"); done
META=$(python3 -c 'import json,sys; print(json.dumps(dict(a.split("=",1) for a in sys.argv[1:])))' \
    "duration_s=$BENCH_DURATION" "warmup_s=$BENCH_WARMUP" "rounds=$BENCH_ROUNDS" \
    "conns=$BENCH_CONNS" "wrk_threads=$BENCH_THREADS" "wrk_cpu=$BENCH_WRK_CPU" \
    "proxy_cpu=$BENCH_PROXY_CPU" "backend_cpu=$BENCH_BACKEND_CPU" \
    "loadavg_before=$LOAD0" "loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)" \
    "started=$(date -Is)" "kernel=$(uname -r)" "cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
    "haproxy=$(haproxy -v 2>/dev/null | awk 'NR==1 {print $3}')" \
    "nginx=$(nginx -v 2>&1 | sed 's/.*nginx\///')" "cutoverd=${CUTOVERD_BIN:-}" \
    "openssl=$(openssl version | awk '{print $2}')" \
    "tls_cert=$( ((BENCH_TLS)) && openssl x509 -noout -text -in "$TMP/tls/$BENCH_TLS_CERT.pem" |
        awk -F': ' '/Public Key Algorithm/ {a = $2} /(ASN1 OID|Public-Key)/ {b = b " " $2} END {print a b}')" \
    "${TLSMETA[@]}" \
    "failed=$(for p in $BENCH_PROXIES; do [[ -n ${STARTED[$p]:-} ]] || printf '%s ' "$p"; done)")

python3 "$BENCH_SRC/summarize.py" "$RAW" "$RESULTS/$STAMP.json" "$META" | tee "$RESULTS/$STAMP.txt"
cp "$RAW" "$RESULTS/latest.tsv"; cp "$RESULTS/$STAMP.json" "$RESULTS/latest.json"; cp "$RESULTS/$STAMP.txt" "$RESULTS/latest.txt"
say "bench: results in $RESULTS/$STAMP.{tsv,json,txt}"
for p in $BENCH_PROXIES; do
    [[ -n ${STARTED[$p]:-} ]] || loud "$p did not start: ${FAILED[$p]:-?} -- no figures for it in this run"
done
((STATUS == 0)) || say "bench: FAILED (a proxy did not start, died, or a run had errors)"
exit "$STATUS"
