#!/usr/bin/env bash
# The demo from a fresh clone: installs the build dependencies, builds
# cutover in build/, starts four test backends (blue1 :9001, blue2 :9002,
# green1 :9003, green2 :9004) and cutoverd on 127.0.0.1:8080 with
# conf/demo.conf, in the foreground, then shows a switch to green, a
# rollback and a short ramp with cutoverctl (DEMO_SCRIPT=0 skips that). Ctrl-C stops
# everything.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${JOBS:-2}

if [ "${SKIP_SETUP:-0}" != 1 ]; then
	scripts/setup.sh
fi
if [ ! -x configure ]; then
	autoreconf -fi
fi
mkdir -p build
(
	cd build
	if [ ! -f Makefile ]; then
		"$ROOT/configure"
	fi
	make -j"$JOBS" src/cutoverd src/cutoverctl tests/backend/cutover-testbackend
)

CUTOVERD=$ROOT/build/src/cutoverd
BACKEND=$ROOT/build/tests/backend/cutover-testbackend
CONF=$ROOT/conf/demo.conf
mkdir -p /tmp/cutover-demo
# cutoverd refuses a state directory others may write to (a umask of 002
# would make this one group-writable).
chmod go-w /tmp/cutover-demo
if [ ! -s "$CONF" ]; then
	CONF=/tmp/cutover-demo/demo.conf
	cat > "$CONF" <<'CONF'
listen = ( { address = "127.0.0.1:8080"; } );
workers = 1;
initial = "blue";
state_file = "/tmp/cutover-demo/state";
pools: {
	blue: { servers = ( "127.0.0.1:9001", "127.0.0.1:9002" ); };
	green: { servers = ( "127.0.0.1:9003", "127.0.0.1:9004" ); };
};
control: { socket = "/tmp/cutover-demo/control.sock"; };
CONF
fi

for port in 8080 9001 9002 9003 9004; do
	if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
		echo "demo: 127.0.0.1:$port is already in use; stop whatever listens there first" >&2
		exit 1
	fi
done

pids=()
cleanup() {
	trap - INT TERM EXIT
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	echo "demo: stopped"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# wait_http PORT PATH: polls until something answers on PORT (at most 10s).
wait_http() {
	for _ in $(seq 100); do
		if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1$2"; then
			return 0
		fi
		sleep 0.1
	done
	echo "demo: nothing answers on 127.0.0.1:$1" >&2
	exit 1
}

for spec in blue1:blue:9001 blue2:blue:9002 green1:green:9003 green2:green:9004; do
	IFS=: read -r name color port <<<"$spec"
	"$BACKEND" --listen "127.0.0.1:$port" --name "$name" --color "$color" >/dev/null &
	pids+=($!)
done
for port in 9001 9002 9003 9004; do
	wait_http "$port" /healthz
done

"$CUTOVERD" -c "$CONF" &
cutoverd_pid=$!
pids+=("$cutoverd_pid")
wait_http 8080 /

cat <<MSG

cutover demo is running: cutoverd on http://127.0.0.1:8080/ in front of
blue1 :9001, blue2 :9002 (active) and green1 :9003, green2 :9004.
Its log follows below. Try, in another terminal:

  curl -i http://127.0.0.1:8080/            # "blue1 blue" / "blue2 blue", round-robin
  curl -s http://127.0.0.1:8080/echo        # the request as the backend saw it
  curl -s http://127.0.0.1:9001/_ctl/fail?status=500   # make blue1 fail (0 = heal)

MSG
CTL="$ROOT/build/src/cutoverctl -s /tmp/cutover-demo/control.sock"
cat <<MSG
Drive it with cutoverctl (the demo's control socket is /tmp/cutover-demo/control.sock):
  $CTL status
  $CTL health
  $CTL switch green          # refused while green is unhealthy or fails smoke tests
  $CTL rollback              # back to the previous color, at any time
  $CTL switch green --ramp 1,10,50 --step 30s --wait   # a progressive shift
  $CTL history
  curl -s http://127.0.0.1:9180/metrics     # Prometheus metrics

MSG
if [ "${DEMO_SCRIPT:-1}" = 1 ]; then
	# show SENTENCE CMD...: prints the command, runs it.
	show() {
		echo "--- $1"
		shift
		echo "\$ $*"
		"$@" || true
	}
	# Green must pass `rise` health checks before it may take traffic.
	for _ in $(seq 50); do
		if $CTL --json status | grep -q '"green":{"healthy":2,"confirmed":2'; then
			break
		fi
		sleep 0.2
	done
	echo "=== demo: a switch and a rollback ==="
	show "blue is live" curl -s http://127.0.0.1:8080/
	show "status" $CTL status
	show "switch every new request to green, one atomic step" $CTL switch green
	show "green is live" curl -s http://127.0.0.1:8080/
	show "status: green, observing its safety window" $CTL status
	show "roll back to blue" $CTL rollback
	show "blue is live again" curl -s http://127.0.0.1:8080/
	show "end the rollback's safety window" $CTL commit
	echo "=== demo: a short ramp (progressive shift) ==="
	# Traffic from many new clients, so that each step has enough requests
	# on both colors for the guard to judge it (auto_rollback.min_requests).
	( while :; do curl -s -o /dev/null http://127.0.0.1:8080/; done ) &
	load_pid=$!
	show "10 %, then 50 % of new clients to green, 3 s each, then 100 %" \
		timeout 120 $CTL switch green --ramp 10,50 --step 3s --wait
	kill "$load_pid" 2>/dev/null || true
	wait "$load_pid" 2>/dev/null || true
	show "green is live" curl -s http://127.0.0.1:8080/
	show "the audit log" $CTL history
	echo "=== end of the scripted part; the daemon keeps running ==="
	echo
fi
echo "Press Ctrl-C to stop everything."
echo
wait "$cutoverd_pid"
