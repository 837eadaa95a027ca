#!/usr/bin/env bash
# Where does a proxy's CPU go? Runs one proxy (default cutoverd) in front of
# the bench backend, loads it with wrk for PROFILE_DURATION seconds and
# samples it with `perf record` (cpu-clock, so it works without hardware
# counters), or with valgrind --tool=callgrind when perf does not work here
# (callgrind: cutoverd only). Prints the top functions and DSOs.
#
#   bench/profile.sh [cutoverd|haproxy|nginx]
#
# Environment: PROFILE_WORKLOAD [ka_tiny] (ka_tiny, ka_64k, close),
#   PROFILE_DURATION [10], PROFILE_TOP [30], PROFILE_TOOL [auto] (perf, callgrind),
#   PROFILE_CALLGRAPH=fp|dwarf (perf call graphs;
#   fp also lists the syscalls the time goes to), BENCH_CONNS [50],
#   CUTOVERD, BENCH_WRK_CPU, BENCH_PROXY_CPU, BENCH_BACKEND_CPU as in run.sh.
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case ${1:-cutoverd} in
-h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
cutoverd | haproxy | nginx) TARGET=${1:-cutoverd} ;;
*) die "usage: bench/profile.sh [cutoverd|haproxy|nginx]" ;;
esac
: "${PROFILE_WORKLOAD:=ka_tiny}" "${PROFILE_DURATION:=10}" "${PROFILE_TOP:=30}"
: "${PROFILE_TOOL:=auto}" "${BENCH_CONNS:=50}"
[[ -n $(workload_path "$PROFILE_WORKLOAD") ]] || die "unknown PROFILE_WORKLOAD $PROFILE_WORKLOAD"

if [[ $PROFILE_TOOL == auto ]]; then
    if command -v perf >/dev/null && perf record -e cpu-clock -o /dev/null -q -- true >/dev/null 2>&1; then
        PROFILE_TOOL=perf
    else
        PROFILE_TOOL=callgrind
    fi
fi
if [[ $PROFILE_TOOL == callgrind ]]; then
    command -v valgrind >/dev/null || die "neither perf nor valgrind works (apt-get install -y linux-perf valgrind)"
    [[ $TARGET == cutoverd ]] || die "callgrind mode profiles cutoverd only"
fi

bench_tmp_init
mkdir -p "$BENCH_SRC/results"
OUT=$BENCH_SRC/results/profile-$TARGET-$PROFILE_WORKLOAD-$(date +%Y%m%d-%H%M%S).txt
start_backend || die "the backend nginx did not start: $FAIL_REASON"

if [[ $PROFILE_TOOL == callgrind ]]; then
    BENCH_CUTOVERD_WRAPPER="valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=$TMP/callgrind.out.%p"
    BENCH_START_TIMEOUT=60
fi
start_proxy "$TARGET" || die "$TARGET did not start: $FAIL_REASON"

url="http://127.0.0.1:${PORT[$TARGET]}$(workload_path "$PROFILE_WORKLOAD")"
extra=()
[[ $PROFILE_WORKLOAD == close ]] && extra=(-H "Connection: close")
read -r -a WRKPIN <<<"$(pin "$BENCH_WRK_CPU")"
say "bench: profiling $TARGET ($PROFILE_TOOL) under $PROFILE_WORKLOAD for ${PROFILE_DURATION}s"

{
    echo "profile: $TARGET, workload $PROFILE_WORKLOAD, ${PROFILE_DURATION}s, wrk -c$(workload_conns "$PROFILE_WORKLOAD"), tool $PROFILE_TOOL"
    if [[ $PROFILE_TOOL == perf ]]; then
        # Warm up first so start-up costs do not show.
        "${WRKPIN[@]}" wrk -t1 -c"$(workload_conns "$PROFILE_WORKLOAD")" -d2s "${extra[@]}" "$url" >/dev/null 2>&1
        pids=$(pids_of "$TARGET" | paste -sd,)
        cg=()
        case ${PROFILE_CALLGRAPH:-0} in 1 | dwarf) cg=(--call-graph dwarf) ;; fp) cg=(-g) ;; esac
        "${WRKPIN[@]}" wrk -t1 -c"$(workload_conns "$PROFILE_WORKLOAD")" -d"$((PROFILE_DURATION + 1))s" "${extra[@]}" "$url" >"$TMP/wrk.out" 2>&1 &
        wrkpid=$!
        sleep 0.5
        perf record -e cpu-clock -F 1999 "${cg[@]}" -p "$pids" -o "$TMP/perf.data" -- sleep "$PROFILE_DURATION" >"$TMP/perf.log" 2>&1
        wait "$wrkpid"
        grep -E 'Requests/sec|requests in' "$TMP/wrk.out"
        echo
        echo "== CPU by shared object =="
        perf report -i "$TMP/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' | head -n 12
        echo
        perf report -i "$TMP/perf.data" --stdio --no-children --sort dso,symbol -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' >"$TMP/syms.txt"
        echo "== top $PROFILE_TOP functions, all (self time, % of the proxy's samples) =="
        head -n "$PROFILE_TOP" "$TMP/syms.txt"
        echo
        echo "== top $PROFILE_TOP user-space functions =="
        grep -v 'kernel.kallsyms' "$TMP/syms.txt" | head -n "$PROFILE_TOP"
        if ((${#cg[@]})); then
            echo
            echo "== top kernel entry points (syscalls, softirq), inclusive =="
            perf report -i "$TMP/perf.data" --stdio --children --sort symbol -g none 2>/dev/null |
                grep -E '\] (__x64_sys_|__sys_|do_softirq|net_rx_action|asm_exc|ksys_|do_readv|do_writev|tcp_sendmsg|tcp_recvmsg)' |
                sed 's/[ -]*$//' | head -n 15
        fi
        cp "$TMP/perf.data" "${OUT%.txt}.perf.data" 2>/dev/null
        echo
        echo "raw: perf report -i ${OUT%.txt}.perf.data"
    else
        "${WRKPIN[@]}" wrk -t1 -c"$(workload_conns "$PROFILE_WORKLOAD")" -d"${PROFILE_DURATION}s" "${extra[@]}" "$url" >"$TMP/wrk.out" 2>&1
        grep -E 'Requests/sec|requests in' "$TMP/wrk.out"
        kill -TERM "${PID[$TARGET]}"
        # Not our child here (this block runs in a pipeline's subshell): poll.
        for ((i = 0; i < 300; i++)); do kill -0 "${PID[$TARGET]}" 2>/dev/null || break; sleep 0.1; done
        # The biggest profile is the daemon's (hooks it ran have their own).
        # shellcheck disable=SC2012
        cgout=$(ls -S "$TMP"/callgrind.out.* 2>/dev/null | head -n 1)
        echo
        echo "== top $PROFILE_TOP functions (callgrind, self instructions) =="
        callgrind_annotate "$cgout" 2>/dev/null | sed -n '/^Ir/,$p' | head -n "$((PROFILE_TOP + 8))"
        cp "$cgout" "${OUT%.txt}.callgrind.out" 2>/dev/null
        echo
        echo "raw: callgrind_annotate ${OUT%.txt}.callgrind.out"
    fi
} | tee "$OUT"
say "bench: profile saved to $OUT"
