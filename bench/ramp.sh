#!/usr/bin/env bash
# Ramp benchmark for cutoverd (issue 12): request throughput with no ramp,
# with a ramp at 50 % and clients that send their bucket cookie (one hash
# per request), and with a ramp at 50 % and clients that never keep the
# cookie (a new random id and a Set-Cookie on every response: the worst
# case); then the step-to-effect time, from `cutoverctl switch --ramp`
# returning to the first request of a target-bucket client answered by the
# target. cutoverd in front of two nginx backends, one per color
# (bench/cutoverd-switch.conf.in). See bench/README.md.
#
#   bench/ramp.sh            3 rounds x 3 modes x 10s, 20 step-to-effect samples
#   bench/ramp.sh --quick    1 round of 3s, 5 samples
#
# Exit status: 0 when no wrk run had errors and every ramp took effect; 1
# otherwise.
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'U'
Environment (defaults in brackets):
  BENCH_DURATION [10]  seconds per wrk run   BENCH_WARMUP [2]   BENCH_ROUNDS [3]   RAMP_SAMPLES [20]
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
    : "${BENCH_DURATION:=3}" "${BENCH_ROUNDS:=1}" "${BENCH_WARMUP:=1}" "${RAMP_SAMPLES:=5}"
fi
: "${BENCH_DURATION:=10}" "${BENCH_ROUNDS:=3}" "${BENCH_WARMUP:=2}" "${RAMP_SAMPLES:=20}"
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
STAMP=ramp-$(date +%Y%m%d-%H%M%S)
read -r -a WRKPIN <<<"$(pin "$BENCH_WRK_CPU")"
STATUS=0

read -r 'PORT[blue]' 'PORT[green]' 'PORT[metrics]' <<<"$(free_ports 3)"
for c in blue green; do
    mkdir -p "$TMP/nginx-$c"
    render "$c" "$BENCH_SRC/color-nginx.conf.in" "$TMP/nginx-$c/nginx.conf"
    launch "$c" "$BENCH_BACKEND_CPU" nginx -p "$TMP/nginx-$c" -e "$TMP/nginx-$c/error.log" \
        -c "$TMP/nginx-$c/nginx.conf"
    wait_ready "$c" || die "the $c backend did not start: $FAIL_REASON"
done
# shellcheck disable=SC2034  # read by start_proxy in lib.sh
BENCH_CUTOVERD_CONF=$BENCH_SRC/cutoverd-switch.conf.in
start_proxy cutoverd || die "cutoverd did not start: $FAIL_REASON"
SOCK=$TMP/cutoverd/control.sock
ctl() { "${WRKPIN[@]}" "$CTL" -s "$SOCK" "$@"; }
deadline=$((SECONDS + BENCH_START_TIMEOUT))
until ctl switch green --dry-run >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "green never became a valid switch target"
    sleep 0.2
done
# no_ramp: back on blue with no ramp (a ramp ends at 0 % by rollback).
no_ramp() { ctl rollback >/dev/null 2>&1; [[ $(ctl --json status) != *'"ramp"'* ]]; }

TPUT=$RESULTS/$STAMP-throughput.tsv
printf 'round\tmode\trequests\tduration_s\trps\tp50_ms\tp99_ms\tcpu_us_per_req\terrors\n' >"$TPUT"
url="http://127.0.0.1:${PORT[cutoverd]}/tiny"
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
    modes="none ramp50_cookie ramp50_new"
    ((r % 2 == 0)) && modes="ramp50_new ramp50_cookie none"
    for mode in $modes; do
        say "bench: round $r/$BENCH_ROUNDS: $mode"
        no_ramp || { say "bench: could not end the ramp"; STATUS=1; }
        hdr=()
        if [[ $mode != none ]]; then
            ctl switch green --ramp 50 --step 1h >/dev/null || { say "bench: the ramp was refused"; STATUS=1; }
        fi
        [[ $mode == ramp50_cookie ]] && hdr=(-H "Cookie: cutover_bucket=0123456789abcdef0123456789abcdef")
        ((BENCH_WARMUP > 0)) && "${WRKPIN[@]}" wrk -t"$BENCH_THREADS" -c"$BENCH_CONNS" -d"${BENCH_WARMUP}s" \
            "${hdr[@]}" "$url" >/dev/null 2>&1
        mapfile -t pids < <(pids_of cutoverd)
        c0=$(cpu_ticks "${pids[@]}")
        log=$TMP/wrk-r$r-$mode.out
        "${WRKPIN[@]}" wrk -t"$BENCH_THREADS" -c"$BENCH_CONNS" -d"${BENCH_DURATION}s" --latency \
            -s "$BENCH_SRC/report.lua" "${hdr[@]}" "$url" >"$log" 2>&1
        c1=$(cpu_ticks "${pids[@]}")
        line=$(grep '^BENCH ' "$log") || { say "bench: wrk failed:"; cat "$log" >&2; STATUS=1; continue; }
        declare -A m=()
        for kv in ${line#BENCH }; do m[${kv%%=*}]=${kv#*=}; done
        errs=$((m[connect] + m[read] + m[write] + m[timeout] + m[status]))
        ((errs == 0 && m[requests] > 0)) || { say "bench: $mode: $errs errors"; STATUS=1; }
        python3 - "$r" "$mode" "${m[requests]}" "${m[duration_us]}" "${m[p50_us]}" "${m[p99_us]}" \
            "$((c1 - c0))" "$CLK_TCK" "$errs" >>"$TPUT" <<'PY'
import sys
r, mode, req, dur, p50, p99, ct, hz, errs = sys.argv[1:]
req, dur, ct, hz = int(req), int(dur) / 1e6, int(ct), int(hz)
print("\t".join(map(str, [r, mode, req, f"{dur:.3f}", f"{req / dur:.1f}", f"{int(p50) / 1000:.3f}",
      f"{int(p99) / 1000:.3f}", f"{(ct / hz) / req * 1e6 if req else 0:.2f}", errs])))
PY
        unset m
    done
done

# Step-to-effect: a client whose bucket is below 50 % (found by asking), the
# ramp started, then that client polled until green answers it.
no_ramp
EFFECT=$RESULTS/$STAMP-effect.tsv
python3 - "${PORT[cutoverd]}" "$CTL" "$SOCK" "$RAMP_SAMPLES" >"$EFFECT" <<'PY' || STATUS=1
import http.client, subprocess, sys, time
port, ctl, sock, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
def get(cookie):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/color", headers={"Cookie": "cutover_bucket=%s" % cookie} if cookie else {})
    r = c.getresponse(); body = r.read().decode().strip(); sc = r.getheader("Set-Cookie"); c.close()
    return body, sc
def run(*a):
    subprocess.run([ctl, "-s", sock] + list(a), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
run("switch", "green", "--ramp", "50", "--step", "1h")
target = None
while target is None:
    body, sc = get(None)
    if body == "green":
        target = sc.split("=", 1)[1].split(";", 1)[0]
run("rollback")
print("sample\tstep_to_effect_ms")
bad = 0
for i in range(n):
    t0 = time.monotonic()
    run("switch", "green", "--ramp", "50", "--step", "1h")
    t1 = time.monotonic()
    while get(target)[0] != "green":
        if time.monotonic() - t1 > 5:
            bad += 1
            break
    t2 = time.monotonic()
    print("%d\t%.3f" % (i + 1, (t2 - t1) * 1000))
    run("rollback")
sys.exit(1 if bad else 0)
PY

python3 - "$TPUT" "$EFFECT" <<'PY' | tee "$RESULTS/$STAMP.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print("throughput (median over rounds):")
base = None
for mode in ("none", "ramp50_cookie", "ramp50_new"):
    rs = [r for r in rows if r["mode"] == mode]
    if not rs:
        continue
    rps = statistics.median(float(r["rps"]) for r in rs)
    p99 = statistics.median(float(r["p99_ms"]) for r in rs)
    cpu = statistics.median(float(r["cpu_us_per_req"]) for r in rs)
    base = base or rps
    print("  %-14s %10.0f req/s (%.3fx)  p99 %.3f ms  %.2f us CPU/request" % (mode, rps, rps / base, p99, cpu))
eff = [float(r["step_to_effect_ms"]) for r in csv.DictReader(open(sys.argv[2]), delimiter="\t")]
if eff:
    eff.sort()
    print("step-to-effect after cutoverctl returned: median %.2f ms, max %.2f ms (%d samples)"
          % (statistics.median(eff), eff[-1], len(eff)))
PY
say "bench: results in $RESULTS/$STAMP{.txt,-throughput.tsv,-effect.tsv}"
exit "$STATUS"
