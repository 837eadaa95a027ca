#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs the build dependencies,
# builds out of tree with --enable-werror in build/ and runs "make check"
# (Check unit tests + tests/integration), then does the same with
# --enable-sanitizers (ASan + UBSan) in build-asan/. Ends with one line
# "N passed, M failed" counting every individual test of both builds, and
# exits non-zero when anything failed.
#
# Also runs, as extra tests: mandoc -Tlint, the systemd unit check,
# make distcheck, and make fuzz (each libFuzzer target for FUZZ_SECONDS).
#
# Environment: SKIP_SETUP=1 skips scripts/setup.sh; JOBS (default 2);
# FUZZ_SECONDS (default 30) per fuzz target.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${JOBS:-2}

if [ "${SKIP_SETUP:-0}" != 1 ]; then
	scripts/setup.sh
fi
autoreconf -fi

passed=0
failed=0

# count DIR: adds DIR's per-test results to passed/failed.
count() {
	local dir=$1 log trs line x f e p m
	local found=0
	for trs in "$dir"/tests/unit/*.trs "$dir"/tests/integration/*.trs; do
		[ -e "$trs" ] || continue
		found=1
		log=${trs%.trs}.log
		case $trs in
		*/tests/unit/*.sh.trs)
			# A script check (pure.sh): one test, its exit status.
			if grep -q '^:test-result: PASS' "$trs"; then
				p=1 m=0
			else
				p=0 m=1
			fi
			;;
		*/tests/unit/*)
			# One summary line per suite run: sum them all.
			line=$(grep -Eo 'Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" 2>/dev/null || true)
			if [ -z "$line" ]; then
				echo "test.sh: $log has no Check summary: counted as 1 failure" >&2
				failed=$((failed + 1))
				continue
			fi
			p=0
			m=0
			while read -r _ x _ f _ e; do
				x=${x%,}
				f=${f%,}
				p=$((p + x - f - e))
				m=$((m + f + e))
			done <<<"$line"
			;;
		*)
			line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" 2>/dev/null | tail -n 1 || true)
			if [ -z "$line" ]; then
				echo "test.sh: $log has no 'N passed, M failed' line: counted as 1 failure" >&2
				failed=$((failed + 1))
				continue
			fi
			p=${line%% passed*}
			m=${line#*, }
			m=${m%% failed}
			;;
		esac
		# A program that failed as a whole (crash, sanitizer report at exit)
		# without any failing test of its own still counts once.
		if [ "$m" -eq 0 ] && ! grep -q '^:test-result: PASS' "$trs"; then
			echo "test.sh: $trs failed although its tests passed: counted as 1 failure" >&2
			m=1
		fi
		passed=$((passed + p))
		failed=$((failed + m))
	done
	if [ "$found" -eq 0 ]; then
		echo "test.sh: no test results in $dir (build failed?): counted as 1 failure" >&2
		failed=$((failed + 1))
	fi
}

# build DIR CONFIGURE-ARGS...: configures, builds and runs make check in DIR.
build() {
	local dir=$1
	shift
	rm -rf "$dir"
	mkdir -p "$dir"
	(
		cd "$dir"
		"$ROOT/configure" "$@"
		make -j"$JOBS"
		make -j"$JOBS" check
	) || echo "test.sh: build or tests failed in $dir (see $dir/test-suite.log)" >&2
	count "$dir"
}

build "$ROOT/build" --enable-werror
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	build "$ROOT/build-asan" --enable-werror --enable-sanitizers

# extra NAME CMD...: one more test in the summary (packaging and docs).
extra() {
	local name=$1 log="$ROOT/build/$1.log"
	shift
	if "$@" >"$log" 2>&1; then
		passed=$((passed + 1))
		echo "PASS $name"
	else
		failed=$((failed + 1))
		echo "FAIL $name (build/$name.log):" >&2
		tail -n 30 "$log" >&2
	fi
}
if [ -x "$ROOT/build/src/cutoverd" ]; then
	extra man-lint mandoc -Tlint -Wwarning man/cutoverd.8 man/cutoverctl.8 man/cutover.conf.5
	extra systemd-verify scripts/check-systemd.sh "$ROOT/build/src/cutoverd" "$ROOT/man"
	# The tarball builds and passes the unit tests; the integration suite
	# ran twice above on the same sources (and takes ~10 minutes more).
	extra distcheck make -C "$ROOT/build" -j"$JOBS" distcheck 'TESTS=$(UNIT_TESTS) tests/unit/pure.sh'
	# Each libFuzzer target replays its seeds (fixed crashes among them)
	# and fuzzes for FUZZ_SECONDS: a regression or a quick crash fails.
	extra fuzz make -C "$ROOT/build" -j"$JOBS" fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
	extra deb scripts/check-deb.sh
fi

for f in "$ROOT"/build/test-suite.log "$ROOT"/build-asan/test-suite.log; do
	if [ -e "$f" ]; then
		grep -E '^(FAIL|ERROR): ' "$f" >&2 || true
	fi
done
for f in "$ROOT"/build/tests/integration/run.sh.log "$ROOT"/build-asan/tests/integration/run.sh.log; do
	if [ -e "$f" ]; then
		grep -E '^FAIL ' "$f" | sed "s|^|${f#"$ROOT"/}: |" >&2 || true
		# Skipped tests are neither passed nor failed: say so.
		grep -E '^SKIP ' "$f" | sed "s|^|${f#"$ROOT"/}: |" >&2 || true
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
