# shellcheck shell=bash disable=SC2034  # globals here are read by run.sh/profile.sh
# Shared by bench/run.sh and bench/profile.sh: temporary directory, free
# ports, config rendering, starting/stopping the backend and the proxies,
# and reading /proc for CPU time and peak RSS. Sourced, not executed.

BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_SRC/.." && pwd)

: "${BENCH_WRK_CPU:=0}"
: "${BENCH_PROXY_CPU:=1}"
: "${BENCH_BACKEND_CPU:=$BENCH_PROXY_CPU}"
: "${BENCH_START_TIMEOUT:=20}"
: "${BENCH_TLS:=0}"            # 1: render the #TLS# template lines (run.sh sets it)
: "${BENCH_TLS_CERT:=a}"       # a: ECDSA P-256, b: RSA 2048 (tests/tls/gen-certs.sh)

declare -A PORT=() PID=() STARTED=() TLS_NEGOTIATED=()
ALL_PIDS=()
CLK_TCK=$(getconf CLK_TCK)

say()  { printf '%s\n' "$*" >&2; }
die()  { say "bench: $*"; exit 1; }
loud() { say ""; say "!!!!!!!! $* !!!!!!!!"; say ""; }

# cutoverd binary: $CUTOVERD, else an in-tree or build/ build.
find_cutoverd() {
    local c
    for c in "${CUTOVERD:-}" "$REPO/src/cutoverd" "$REPO/build/src/cutoverd"; do
        [[ -n $c && -x $c ]] && { printf '%s\n' "$c"; return 0; }
    done
    return 1
}

# pin CPU: prints a taskset prefix, or nothing when pinning is off ("" or -1)
# or the CPU does not exist.
pin() {
    local cpu=$1
    [[ -z $cpu || $cpu == -1 || $cpu == none ]] && return 0
    if taskset -c "$cpu" true 2>/dev/null; then
        printf 'taskset -c %s' "$cpu"
    else
        say "bench: CPU $cpu not available, not pinning"
    fi
}

bench_tmp_init() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/cutover-bench.XXXXXX") || die "mktemp failed"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$TMP/www" "$TMP/nginx-backend" "$TMP/nginx-proxy" "$TMP/haproxy" "$TMP/cutoverd"
    printf 'ok\n' >"$TMP/www/tiny"
    head -c 65536 /dev/urandom >"$TMP/www/64k"
}

bench_cleanup() {
    local rc=$? p i
    for p in "${ALL_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${ALL_PIDS[@]}"; do
        for ((i = 0; i < 30; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [[ -n ${TMP:-} && -d $TMP ]]; then
        if [[ ${BENCH_KEEP:-0} == 1 || $rc != 0 ]]; then
            say "bench: logs and configs kept in $TMP"
        else
            rm -rf "$TMP"
        fi
    fi
    exit "$rc"
}

# free_ports N: N distinct free TCP ports on 127.0.0.1 (all held open at once
# while choosing, so they differ).
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# render NAME TEMPLATE OUT: substitute @DIR@, @NAME@, @PORT@ (NAME's port),
# @TLS_PORT@ (NAME_tls's), @BACKEND_PORT@, @PORT_x@ (any PORT[x]) and
# @TLS_CERT@. Lines starting with `#TLS#` are TLS-only: the marker is removed
# when BENCH_TLS=1 (a TLS workload was asked for), else they stay comments.
render() {
    local name=$1 tmpl=$2 out=$3 k args=()
    for k in "${!PORT[@]}"; do args+=(-e "s|@PORT_$k@|${PORT[$k]}|g"); done
    ((BENCH_TLS)) && args+=(-e 's|^\([[:space:]]*\)#TLS#|\1|')
    sed -e "s|@DIR@|$TMP|g" -e "s|@NAME@|$name|g" -e "s|@PORT@|${PORT[$name]}|g" \
        -e "s|@TLS_PORT@|${PORT[${name}_tls]:-0}|g" -e "s|@TLS_CERT@|$BENCH_TLS_CERT|g" \
        -e "s|@BACKEND_PORT@|${PORT[backend]:-0}|g" "${args[@]}" "$tmpl" >"$out"
}

# pids_of NAME: every process of that server (nginx: master and workers).
pids_of() {
    local p=${PID[$1]}
    printf '%s\n' "$p"
    pgrep -P "$p" 2>/dev/null || true
}

# cpu_ticks PID...: utime+stime (clock ticks) summed over the processes; for a
# multithreaded process /proc/PID/stat already sums its threads.
cpu_ticks() {
    local p sum=0 t
    for p in "$@"; do
        t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
        sum=$((sum + ${t:-0}))
    done
    printf '%s\n' "$sum"
}

# hwm_kib PID...: VmHWM (peak RSS) summed over the processes.
hwm_kib() {
    local p sum=0 v
    for p in "$@"; do
        v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null)
        sum=$((sum + ${v:-0}))
    done
    printf '%s\n' "$sum"
}

# reset_hwm PID...: make VmHWM restart from the current RSS (clear_refs 5).
reset_hwm() {
    local p
    for p in "$@"; do echo 5 >"/proc/$p/clear_refs" 2>/dev/null || true; done
}

# curl_tiny NAME [tls]: GET /tiny from NAME, over TLS on its NAME_tls port
# with the certificate verified against the test CA.
curl_tiny() {
    local name=$1 port
    if [[ ${2:-} == tls ]]; then
        port=${PORT[${name}_tls]}
        curl -s --max-time 1 --cacert "$TMP/tls/ca.pem" \
            --resolve "$BENCH_TLS_CERT.test:$port:127.0.0.1" "https://$BENCH_TLS_CERT.test:$port/tiny"
    else
        curl -s --max-time 1 "http://127.0.0.1:${PORT[$name]}/tiny"
    fi
}

# wait_ready NAME [tls]: poll until the server answers GET /tiny with 200 "ok"
# (with tls: on its TLS listener, certificate verified).
wait_ready() {
    local name=$1 deadline=$((SECONDS + BENCH_START_TIMEOUT)) body
    while ((SECONDS < deadline)); do
        if ! kill -0 "${PID[$name]}" 2>/dev/null; then
            wait "${PID[$name]}"
            FAIL_REASON="exited with status $? during startup (log: $TMP/$name.log)"
            say "bench: $name $FAIL_REASON; its log:"
            tail -n 20 "$TMP/$name.log" >&2 2>/dev/null
            return 1
        fi
        body=$(curl_tiny "$name" "${2:-}" 2>/dev/null) && [[ $body == ok ]] && return 0
        sleep 0.2
    done
    FAIL_REASON="did not answer 200 \"ok\" on :${PORT[$name${2:+_tls}]}${2:+ (TLS)} within ${BENCH_START_TIMEOUT}s (log: $TMP/$name.log)"
    say "bench: $name $FAIL_REASON; its log:"
    tail -n 20 "$TMP/$name.log" >&2 2>/dev/null
    return 1
}

# verify NAME: the 64 KiB file comes back whole and identical.
verify() {
    local name=$1
    if ! curl -s --max-time 5 -o "$TMP/$name.64k" "http://127.0.0.1:${PORT[$name]}/64k" ||
        ! cmp -s "$TMP/$name.64k" "$TMP/www/64k"; then
        FAIL_REASON="returned a wrong /64k body (got $(stat -c %s "$TMP/$name.64k" 2>/dev/null || echo 0) bytes)"
        say "bench: $name $FAIL_REASON"
        return 1
    fi
}

# launch NAME CPU CMD...: start a foreground server pinned to CPU, log to $TMP/NAME.log.
launch() {
    local name=$1 cpu=$2
    shift 2
    # shellcheck disable=SC2046
    $(pin "$cpu") "$@" >"$TMP/$name.log" 2>&1 &
    PID[$name]=$!
    ALL_PIDS+=("$!")
}

start_backend() {
    PORT[backend]=${PORT[backend]:-$(free_ports 1)}
    render backend "$BENCH_SRC/backend-nginx.conf.in" "$TMP/nginx-backend/nginx.conf"
    launch backend "$BENCH_BACKEND_CPU" nginx -p "$TMP/nginx-backend" -e "$TMP/nginx-backend/error.log" \
        -c "$TMP/nginx-backend/nginx.conf"
    wait_ready backend && verify backend
}

# tls_init: the test certificates (tests/tls/gen-certs.sh) in $TMP/tls, plus
# combined.pem (certificate then key, as HAProxy's `crt` wants) for
# BENCH_TLS_CERT. Every proxy serves that same certificate.
tls_init() {
    local c=$TMP/tls/$BENCH_TLS_CERT
    sh "$REPO/tests/tls/gen-certs.sh" "$TMP/tls" >"$TMP/gen-certs.log" 2>&1 ||
        die "tests/tls/gen-certs.sh failed: $(tail -n 3 "$TMP/gen-certs.log")"
    [[ -r $c.pem && -r $c.key ]] || die "no certificate $c.pem/$c.key (BENCH_TLS_CERT=a or b)"
    cat "$c.pem" "$c.key" >"$TMP/tls/combined.pem"
    chmod 600 "$TMP/tls/combined.pem"
}

# tls_negotiated NAME: "PROTOCOL CIPHERSUITE GROUP resumption=yes|no" that
# `openssl s_client` (default settings, like wrk's) gets from NAME's TLS
# listener; resumption: a second connection offering the first one's session
# (ticket) is resumed. wrk resumes too, so tls_new is a resumed handshake.
tls_negotiated() {
    local a=(openssl s_client -connect "127.0.0.1:${PORT[${1}_tls]}" -servername "$BENCH_TLS_CERT.test")
    local sess=$TMP/tls/$1.session reused=no
    # stdin held open a moment so that the TLS 1.3 ticket is read before EOF
    { sleep 0.3; } | "${a[@]}" -sess_out "$sess" >/dev/null 2>&1
    "${a[@]}" -sess_in "$sess" </dev/null 2>/dev/null | grep -q '^Reused,' && reused=yes
    "${a[@]}" -brief </dev/null 2>&1 | awk -F': ' -v r="$reused" '
        /^Protocol version/ { p = $2 } /^Ciphersuite/ { c = $2 }
        /^(Server|Peer) Temp Key/ { split($2, k, ","); g = k[1] }
        END { printf "%s %s %s resumption=%s\n", p ? p : "?", c ? c : "?", g ? g : "?", r }'
}

# start_proxy NAME (cutoverd|haproxy|nginx): 0 when it runs and proxies
# correctly (with BENCH_TLS=1 also on its TLS listener, port NAME_tls).
# BENCH_CUTOVERD_CONF overrides cutoverd's template.
start_proxy() {
    local name=$1 bin
    FAIL_REASON=""
    PORT[$name]=${PORT[$name]:-$(free_ports 1)}
    ((BENCH_TLS)) && PORT[${name}_tls]=${PORT[${name}_tls]:-$(free_ports 1)}
    case $name in
    haproxy)
        command -v haproxy >/dev/null || { FAIL_REASON="haproxy not installed (apt-get install -y haproxy)"; return 1; }
        render haproxy "$BENCH_SRC/haproxy.cfg.in" "$TMP/haproxy/haproxy.cfg"
        launch haproxy "$BENCH_PROXY_CPU" haproxy -db -f "$TMP/haproxy/haproxy.cfg"
        ;;
    nginx)
        render nginx "$BENCH_SRC/nginx-proxy.conf.in" "$TMP/nginx-proxy/nginx.conf"
        launch nginx "$BENCH_PROXY_CPU" nginx -p "$TMP/nginx-proxy" -e "$TMP/nginx-proxy/error.log" \
            -c "$TMP/nginx-proxy/nginx.conf"
        ;;
    cutoverd)
        bin=$(find_cutoverd) || { FAIL_REASON="no cutoverd binary (build it, or set CUTOVERD=/path/to/cutoverd)"; return 1; }
        render cutoverd "${BENCH_CUTOVERD_CONF:-$BENCH_SRC/cutoverd.conf.in}" "$TMP/cutoverd/cutover.conf"
        if ! timeout 10 "$bin" -t -c "$TMP/cutoverd/cutover.conf" >"$TMP/cutoverd.check" 2>&1; then
            FAIL_REASON="$bin -t rejected the bench config: $(head -n 3 "$TMP/cutoverd.check" | tr '\n' ' ')"
            return 1
        fi
        CUTOVERD_BIN=$bin
        # shellcheck disable=SC2086  # the wrapper is a command line
        launch cutoverd "$BENCH_PROXY_CPU" ${BENCH_CUTOVERD_WRAPPER:-} "$bin" -c "$TMP/cutoverd/cutover.conf"
        ;;
    *) FAIL_REASON="unknown proxy (cutoverd, haproxy or nginx)"; return 1 ;;
    esac
    wait_ready "$name" && verify "$name" || return 1
    if ((BENCH_TLS)); then
        wait_ready "$name" tls || return 1
        TLS_NEGOTIATED[$name]=$(tls_negotiated "$name")
    fi
    STARTED[$name]=1
}

# workload URL path, extra wrk arguments and connections (-c).
workload_path() { case $1 in ka_tiny | ka_500 | close | tls_ka | tls_new) echo /tiny ;; ka_64k) echo /64k ;; esac; }
workload_conns() { case $1 in ka_500) echo 500 ;; *) echo "$BENCH_CONNS" ;; esac; }
workload_args() { case $1 in close | tls_new) echo '-H Connection:close' ;; esac; }
# workload_url NAME WORKLOAD: the URL wrk loads (tls_*: NAME's TLS listener).
workload_url() {
    case $2 in
    tls_*) echo "https://127.0.0.1:${PORT[${1}_tls]}$(workload_path "$2")" ;;
    *) echo "http://127.0.0.1:${PORT[$1]}$(workload_path "$2")" ;;
    esac
}

# cpu_stat CPU...: "busy steal" clock ticks summed over those CPUs from
# /proc/stat (busy = user+nice+system+irq+softirq, steal = taken by the
# hypervisor). Used to see how much else ran on the proxy's core.
cpu_stat() {
    local want=" $* "
    awk -v want="$want" '$1 ~ /^cpu[0-9]+$/ {
        n = substr($1, 4)
        if (index(want, " " n " ")) { busy += $2 + $3 + $4 + $7 + $8; steal += $9 }
    } END { print busy + 0, steal + 0 }' /proc/stat
}
