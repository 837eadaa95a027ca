#!/usr/bin/env bash
# Switch benchmarks for cutoverd alone (HAProxy and nginx have no blue/green
# switch to compare with). cutoverd in front of two nginx backends, one per
# color, each answering with its color. See bench/README.md.
#
#   bench/switch.sh            latency (50 switches) + throughput (3 x 2 x 20s)
#   bench/switch.sh --quick    smoke run: 10 switches, 1 round of 3s
#
# Exit status: 0 when every switch was acknowledged, the new color was seen
# after each, no old-color answer came to a request sent after an
# acknowledgement, and no wrk run had errors; 1 otherwise.
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'U'
Environment (defaults in brackets):
  SWITCH_COUNT [50]      switches in the latency test (0: skip it)
  SWITCH_PAUSE [0.3]     seconds between them (+ up to 50% random jitter)
  SWITCH_INTERVAL [1]    seconds between switches during the throughput test
  BENCH_DURATION [20]    seconds per wrk run   BENCH_WARMUP [2]   BENCH_ROUNDS [3] (0: skip)
  BENCH_CONNS [50]  BENCH_THREADS [1]  BENCH_WRK_CPU [0]  BENCH_PROXY_CPU [1]  BENCH_BACKEND_CPU [=proxy]
  CUTOVERD, CUTOVERCTL [src/ or build/src/]      BENCH_KEEP=1 keeps the temp dir
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
    : "${SWITCH_COUNT:=10}" "${BENCH_DURATION:=3}" "${BENCH_ROUNDS:=1}" "${BENCH_WARMUP:=1}"
fi
: "${SWITCH_COUNT:=50}" "${SWITCH_PAUSE:=0.3}" "${SWITCH_INTERVAL:=1}"
: "${BENCH_DURATION:=20}" "${BENCH_ROUNDS:=3}" "${BENCH_WARMUP:=2}"
: "${BENCH_CONNS:=50}" "${BENCH_THREADS:=1}"

for t in wrk nginx curl python3 taskset; do
    command -v "$t" >/dev/null || die "$t not found (apt-get install -y wrk nginx-light curl python3 util-linux)"
done
CTL=
for c in "${CUTOVERCTL:-}" "$REPO/src/cutoverctl" "$REPO/build/src/cutoverctl"; do
    [[ -n $c && -x $c ]] && { CTL=$c; break; }
done
[[ -n $CTL ]] || die "no cutoverctl binary (build it, or set CUTOVERCTL=/path/to/cutoverctl)"

bench_tmp_init
RESULTS=$BENCH_SRC/results
mkdir -p "$RESULTS"
STAMP=switch-$(date +%Y%m%d-%H%M%S)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
read -r -a WRKPIN <<<"$(pin "$BENCH_WRK_CPU")"
STATUS=0

# The two colors' backends, then cutoverd with both pools.
read -r 'PORT[blue]' 'PORT[green]' 'PORT[metrics]' <<<"$(free_ports 3)"
for c in blue green; do
    mkdir -p "$TMP/nginx-$c"
    render "$c" "$BENCH_SRC/color-nginx.conf.in" "$TMP/nginx-$c/nginx.conf"
    launch "$c" "$BENCH_BACKEND_CPU" nginx -p "$TMP/nginx-$c" -e "$TMP/nginx-$c/error.log" \
        -c "$TMP/nginx-$c/nginx.conf"
    wait_ready "$c" || die "the $c backend did not start: $FAIL_REASON"
    [[ $(curl -s "http://127.0.0.1:${PORT[$c]}/color") == "$c" ]] || die "the $c backend does not answer /color with $c"
done
# shellcheck disable=SC2034  # read by start_proxy in lib.sh
BENCH_CUTOVERD_CONF=$BENCH_SRC/cutoverd-switch.conf.in
start_proxy cutoverd || die "cutoverd did not start: $FAIL_REASON"
SOCK=$TMP/cutoverd/control.sock
ctl() { "${WRKPIN[@]}" "$CTL" -s "$SOCK" "$@"; }
say "bench: blue on :${PORT[blue]}, green on :${PORT[green]} (CPU $BENCH_BACKEND_CPU); cutoverd on :${PORT[cutoverd]} (CPU $BENCH_PROXY_CPU)"

# A switch target needs `rise` passing health checks: wait until both colors
# would be accepted.
deadline=$((SECONDS + BENCH_START_TIMEOUT))
until ctl switch green --dry-run >/dev/null 2>&1 && ctl switch blue --dry-run >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "green never became a valid switch target: $(ctl switch green --dry-run 2>&1)"
    sleep 0.2
done
[[ $(curl -s "http://127.0.0.1:${PORT[cutoverd]}/color") == blue ]] || die "cutoverd does not route to blue first"

# ---- (a) latency ----------------------------------------------------------
LAT=-
if ((SWITCH_COUNT > 0)); then
    LAT=$RESULTS/$STAMP-latency.tsv
    say "bench: latency: $SWITCH_COUNT switches, ${SWITCH_PAUSE}s apart, poller and cutoverctl on CPU $BENCH_WRK_CPU"
    python3 "$BENCH_SRC/switch.py" latency "${PORT[cutoverd]}" "$LAT" "$SWITCH_COUNT" "$SWITCH_PAUSE" \
        "$BENCH_WRK_CPU" "$CTL" "$SOCK" || { STATUS=1; LAT=-; }
    # leave blue active for the throughput test
    ctl switch blue >/dev/null || STATUS=1
fi

# ---- (b) throughput with and without switching ----------------------------
# served COLOR: cutover_requests_total summed over codes for that color.
served() {
    curl -s --max-time 2 "http://127.0.0.1:${PORT[metrics]}/metrics" |
        awk -v c="color=\"$1\"" '/^cutover_requests_total\{/ && index($0, c) { s += $NF } END { printf "%d\n", s }'
}
# switcher SECONDS: switch every SWITCH_INTERVAL seconds until killed; each
# result ("ok" or the failure) is one line in $TMP/switches.
switcher() {
    local c=green
    while :; do
        sleep "$SWITCH_INTERVAL"
        if ctl switch "$c" >/dev/null 2>"$TMP/switch.err"; then echo ok; else echo "fail $(cat "$TMP/switch.err")"; fi
        [[ $c == green ]] && c=blue || c=green
    done >>"$TMP/switches"
}

TPUT=-
if ((BENCH_ROUNDS > 0)); then
    TPUT=$RESULTS/$STAMP-throughput.tsv
    printf 'round\tmode\trequests\tduration_s\trps\tp50_ms\tp99_ms\tcpu_us_per_req\terrors\tswitches\tswitch_failures\tblue_req\tgreen_req\tother_cpu_pct\n' >"$TPUT"
    NOISE_CPUS=$(printf '%s\n' "$BENCH_PROXY_CPU" "$BENCH_BACKEND_CPU" | grep -E '^[0-9]+$' | sort -u | xargs)
    url="http://127.0.0.1:${PORT[cutoverd]}/tiny"
    for ((r = 1; r <= BENCH_ROUNDS; r++)); do
        # alternate which mode goes first, so a drifting machine favours neither
        modes="steady switching"; ((r % 2 == 0)) && modes="switching steady"
        for mode in $modes; do
            say "bench: throughput round $r/$BENCH_ROUNDS: $mode"
            ctl switch blue >/dev/null || STATUS=1
            ((BENCH_WARMUP > 0)) && "${WRKPIN[@]}" wrk -t"$BENCH_THREADS" -c"$BENCH_CONNS" -d"${BENCH_WARMUP}s" "$url" >/dev/null 2>&1
            mapfile -t pids < <(pids_of cutoverd)
            mapfile -t bpids < <(pids_of blue; pids_of green)
            : >"$TMP/switches"
            b0=$(served blue); g0=$(served green)
            read -r s0 _ <<<"$(cpu_stat "$NOISE_CPUS")"
            c0=$(cpu_ticks "${pids[@]}"); o0=$(cpu_ticks "${bpids[@]}"); t0=$(date +%s.%N)
            spid=
            if [[ $mode == switching ]]; then switcher & spid=$!; fi
            log=$TMP/wrk-r$r-$mode.out
            "${WRKPIN[@]}" wrk -t"$BENCH_THREADS" -c"$BENCH_CONNS" -d"${BENCH_DURATION}s" --latency \
                -s "$BENCH_SRC/report.lua" "$url" >"$log" 2>&1
            if [[ -n $spid ]]; then kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null; fi
            c1=$(cpu_ticks "${pids[@]}"); o1=$(cpu_ticks "${bpids[@]}"); t1=$(date +%s.%N)
            read -r s1 _ <<<"$(cpu_stat "$NOISE_CPUS")"
            b1=$(served blue); g1=$(served green)
            line=$(grep '^BENCH ' "$log") || { say "bench: wrk failed:"; cat "$log" >&2; STATUS=1; continue; }
            declare -A m=()
            for kv in ${line#BENCH }; do m[${kv%%=*}]=${kv#*=}; done
            errs=$((m[connect] + m[read] + m[write] + m[timeout] + m[status]))
            nsw=$(grep -c . "$TMP/switches"); nfail=$(grep -c '^fail' "$TMP/switches")
            ((errs == 0 && nfail == 0 && m[requests] > 0)) || {
                say "bench: round $r $mode: ${m[requests]} requests, $errs errors, $nfail failed switches"
                grep '^fail' "$TMP/switches" | head -n 3 >&2
                STATUS=1
            }
            python3 - "$r" "$mode" "${m[requests]}" "${m[duration_us]}" "${m[p50_us]}" "${m[p99_us]}" \
                "$((c1 - c0))" "$CLK_TCK" "$errs" "$nsw" "$nfail" "$((b1 - b0))" "$((g1 - g0))" \
                "$((s1 - s0))" "$((o1 - o0))" "$t0" "$t1" "$(wc -w <<<"$NOISE_CPUS")" >>"$TPUT" <<'PY'
import sys
(r, mode, req, dur, p50, p99, ct, hz, errs, nsw, nfail, blue, green,
 busy, own_other, t0, t1, ncpu) = sys.argv[1:]
req, dur, ct, hz = int(req), int(dur) / 1e6, int(ct), int(hz)
avail = (float(t1) - float(t0)) * hz * int(ncpu)
other = max(0.0, (int(busy) - ct - int(own_other)) / avail * 100) if avail else 0.0
print("\t".join(map(str, [r, mode, req, f"{dur:.3f}", f"{req / dur:.1f}", f"{int(p50) / 1000:.3f}",
      f"{int(p99) / 1000:.3f}", f"{(ct / hz) / req * 1e6 if req else 0:.2f}", errs, nsw, nfail,
      blue, green, f"{other:.1f}"])))
PY
            unset m
        done
    done
fi

META=$(python3 -c 'import json,sys; print(json.dumps(dict(a.split("=",1) for a in sys.argv[1:])))' \
    "switch_count=$SWITCH_COUNT" "switch_pause_s=$SWITCH_PAUSE" "interval_s=$SWITCH_INTERVAL" \
    "duration_s=$BENCH_DURATION" "warmup_s=$BENCH_WARMUP" "rounds=$BENCH_ROUNDS" \
    "conns=$BENCH_CONNS" "wrk_threads=$BENCH_THREADS" "wrk_cpu=$BENCH_WRK_CPU" \
    "proxy_cpu=$BENCH_PROXY_CPU" "backend_cpu=$BENCH_BACKEND_CPU" \
    "loadavg_before=$LOAD0" "loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)" \
    "started=$(date -Is)" "kernel=$(uname -r)" "cutoverd=${CUTOVERD_BIN:-}" "cutoverctl=$CTL" \
    "state_fs=$(df -T "$TMP" | awk 'NR==2 {print $2}')")
python3 "$BENCH_SRC/switch.py" summary "$LAT" "$TPUT" "$RESULTS/$STAMP.json" "$META" | tee "$RESULTS/$STAMP.txt"
# the latency checks decide the exit status too
if [[ $LAT != - ]]; then
    python3 - "$RESULTS/$STAMP.json" <<'PY' || STATUS=1
import json, sys
l = json.load(open(sys.argv[1]))["latency"]
sys.exit(1 if l["refused_or_failed"] or l["new_color_not_seen"] or l["old_color_after_ack"] else 0)
PY
fi
for f in json txt; do cp "$RESULTS/$STAMP.$f" "$RESULTS/latest-switch.$f"; done
say "bench: results in $RESULTS/$STAMP{.txt,.json,-latency.tsv,-throughput.tsv}"
((STATUS == 0)) || say "bench: FAILED (a switch failed or was not seen, or a run had errors)"
exit "$STATUS"
