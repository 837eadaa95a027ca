#!/bin/sh
# Verifies the systemd unit and the sysusers.d file offline (no running
# systemd needed), as CI does:
#
#	scripts/check-systemd.sh BUILDDIR/src/cutoverd [MANDIR]
#
# The unit is generated from systemd/cutoverd.service.in with the same sed
# substitutions as Makefile.am, but with @sbindir@ pointing at the built
# cutoverd (systemd-analyze wants ExecStart= to be executable) and
# @sysconfdir@ at a scratch directory. Then:
#   1. no @...@ placeholder is left and the directives the design relies on
#      are present (so a careless edit cannot drop the hardening);
#   2. systemd-analyze verify: fails on a non-zero exit status and on any
#      diagnostic naming our unit (systemd only warns, and exits 0, about a
#      directive it cannot parse). Diagnostics about other units on this
#      machine are shown but do not count. Documentation=man: pages are
#      looked up in MANDIR (default: man/ next to this script) when man(1)
#      is installed; otherwise the lookup is skipped, with a note;
#   3. systemd-analyze security --offline: exposure must stay at 3.5 or below (3.4 now);
#   4. systemd-sysusers applies systemd/cutover.sysusers to a scratch root.
# Exit status: 0 clean, 1 a check failed, 2 usage.

set -u

srcdir=$(cd "$(dirname "$0")/.." && pwd)
template=$srcdir/systemd/cutoverd.service.in
sysusers=$srcdir/systemd/cutover.sysusers

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 PATH/TO/cutoverd [MANDIR]" >&2
	exit 2
fi
case $1 in
/*) daemon=$1 ;;
*) daemon=$(pwd)/$1 ;;
esac
mandir=${2:-$srcdir/man}
if [ ! -x "$daemon" ] || [ ! -f "$daemon" ]; then
	echo "$0: $daemon: not an executable file (build cutoverd first)" >&2
	exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-systemd.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
failed=0
fail() {
	echo "FAIL: $*"
	failed=1
}

# 1. Generate (same substitutions as Makefile.am) and inspect.
unit=$tmp/cutoverd.service
sed -e "s|@sbindir@|$(dirname "$daemon")|g" \
    -e "s|@sysconfdir@|$tmp/etc|g" "$template" >"$unit" || exit 1
if grep -n '@[A-Za-z_]*@' "$unit"; then
	fail "placeholders left unsubstituted in the generated unit"
fi
# shellcheck disable=SC2016 # $MAINPID is systemd's, not ours
for d in \
	'Type=notify' \
	'NotifyAccess=main' \
	"ExecStart=$daemon -c $tmp/etc/cutover/cutover.conf" \
	"ExecReload=$daemon -t -c $tmp/etc/cutover/cutover.conf" \
	'ExecReload=/bin/kill -HUP $MAINPID' \
	'WatchdogSec=30s' \
	'User=cutover' \
	'RuntimeDirectory=cutover' \
	'StateDirectory=cutover' \
	'NoNewPrivileges=yes' \
	'ProtectSystem=strict' \
	'ProtectHome=yes' \
	'PrivateTmp=yes' \
	'PrivateDevices=yes' \
	'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' \
	'AmbientCapabilities=CAP_NET_BIND_SERVICE' \
	'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
	'UMask=0077'; do
	grep -qxF "$d" "$unit" || fail "missing directive: $d"
done
# The -t check must run before the signal.
reloads=$(grep '^ExecReload=' "$unit" | tr '\n' '|')
[ "$reloads" = "ExecReload=$daemon -t -c $tmp/etc/cutover/cutover.conf|ExecReload=/bin/kill -HUP \$MAINPID|" ] ||
	fail "ExecReload= must be exactly: cutoverd -t, then kill -HUP"

# 2. systemd-analyze verify.
set -- verify
if command -v man >/dev/null 2>&1 && [ -d "$mandir" ]; then
	mkdir -p "$tmp/man/man5" "$tmp/man/man8"
	for page in "$mandir"/*.5; do
		[ -f "$page" ] && cp "$page" "$tmp/man/man5/"
	done
	for page in "$mandir"/*.8; do
		[ -f "$page" ] && cp "$page" "$tmp/man/man8/"
	done
	MANPATH=$tmp/man
	export MANPATH
	echo "man pages: looked up in $mandir"
else
	set -- "$@" --man=no
	echo "note: man(1) or $mandir missing; Documentation= lookups skipped"
fi
echo "+ systemd-analyze $* cutoverd.service"
out=$(cd "$tmp" && systemd-analyze "$@" cutoverd.service 2>&1)
rc=$?
[ -n "$out" ] && printf '%s\n' "$out"
[ $rc -eq 0 ] || fail "systemd-analyze verify exited with $rc"
if printf '%s\n' "$out" | grep -q 'cutoverd\.service:'; then
	fail "systemd-analyze verify reported problems with cutoverd.service"
fi

# 3. Exposure score (--threshold is on a 0-100 scale: 35 means 3.5).
if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
	echo "+ systemd-analyze security --offline=yes --threshold=35 cutoverd.service"
	out=$(cd "$tmp" && systemd-analyze security --offline=yes \
	    --threshold=35 cutoverd.service 2>&1)
	rc=$?
	printf '%s\n' "$out" | tail -n 1
	[ $rc -eq 0 ] || fail "exposure level above 3.5 (see systemd-analyze security)"
else
	echo "note: systemd-analyze security --offline not supported; skipped"
fi

# 4. sysusers.d entries, applied to a scratch root.
mkdir -p "$tmp/root/etc"
echo "+ systemd-sysusers --root=SCRATCH $sysusers"
if ! systemd-sysusers --root="$tmp/root" "$sysusers"; then
	fail "systemd-sysusers rejected $sysusers"
else
	grep -q '^cutover:x:[0-9]*:[0-9]*:cutover proxy:/var/lib/cutover:' \
	    "$tmp/root/etc/passwd" || fail "user cutover not created as expected"
	grep -q '^cutover:' "$tmp/root/etc/group" || fail "group cutover not created"
	grep -q '^cutover-admin:' "$tmp/root/etc/group" ||
		fail "group cutover-admin not created"
fi

if [ $failed -ne 0 ]; then
	echo "check-systemd: FAILED"
	exit 1
fi
echo "check-systemd: OK"
