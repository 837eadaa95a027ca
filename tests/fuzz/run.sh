#!/bin/sh
# Runs libFuzzer targets for a bounded time each: "make fuzz" calls
#   run.sh SRCDIR BUILDDIR SECONDS NAME...
# SRCDIR holds corpus/NAME (the seeds, read only), the dictionaries and
# lsan.supp (leaks of Debian's libraries that are not cutover's);
# BUILDDIR holds fuzz_NAME and gets work/NAME (inputs found in this run),
# artifacts/NAME-* (crashes, leaks, timeouts) and NAME.log.
# Each target first replays its whole seed corpus, so an input that crashed
# once and is kept there fails at once. Exits non-zero if any target found
# a crash; prints one summary line per target.
# FUZZ_FLAGS (environment) adds libFuzzer options, e.g. FUZZ_FLAGS=-max_len=65536.
set -u

src=$1
build=$2
seconds=$3
shift 3
status=0
LSAN_OPTIONS="suppressions=$src/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS
for name in "$@"; do
	mkdir -p "$build/work/$name" "$build/artifacts"
	log="$build/$name.log"
	# Longer inputs where a limit only shows past 4 KiB.
	case $name in
	request_head | response_head) max_len=20000 ;;
	control) max_len=10000 ;;
	proxyproto) max_len=5000 ;;
	*) max_len=4096 ;;
	esac
	dict=
	case $name in
	request_head | response_head | chunked) dict=$src/http.dict ;;
	*) dict=$src/$name.dict ;;
	esac
	# (The loop list was expanded already: "$@" is free for the options.)
	set -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
	    -print_final_stats=1 -artifact_prefix="$build/artifacts/$name-"
	if [ -f "$dict" ]; then
		set -- "$@" -dict="$dict"
	fi
	echo "fuzz: $name for ${seconds}s (log: $log)"
	# shellcheck disable=SC2086
	if "$build/fuzz_$name" "$@" ${FUZZ_FLAGS:-} "$build/work/$name" "$src/corpus/$name" \
	    </dev/null >"$log" 2>&1; then
		result=ok
	else
		result=FAILED
		status=1
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
	cov=$(printf '%s\n' "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
	ft=$(printf '%s\n' "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
	corp=$(printf '%s\n' "$last" | sed -n 's/.*corp: \([0-9]*\).*/\1/p')
	echo "fuzz: $name: $result: ${runs:-?} runs, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}"
	if [ "$result" = FAILED ]; then
		grep -E 'ERROR|property failed|SUMMARY|Test unit written|^==' "$log" | head -n 20
		tail -n 40 "$log"
	fi
done
exit $status
