#!/usr/bin/env bash
# Builds the Debian package from a copy of the source tree, checks it with
# lintian, installs it, checks what it installed, and purges it:
#
#	scripts/check-deb.sh
#
# 1. The tree is copied to a scratch directory: the files git tracks plus
#    the ones it does not ignore (so uncommitted work is tested, and no
#    build/ directory or generated file comes along), then
#    "dpkg-buildpackage -us -uc -b" builds cutover_VERSION_ARCH.deb there,
#    with DEB_BUILD_OPTIONS=nocheck (scripts/test.sh runs the tests).
# 2. lintian: any error fails; the tags are printed.
# 3. apt-get installs the .deb. Then: the binaries, the unit (with the
#    installed paths), the sysusers.d file, the man pages, the bash
#    completion (the one cutoverctl prints), /etc/cutover/cutover.conf as a
#    conffile; cutoverd -t accepts the shipped configuration; the cutover
#    user and the cutover-admin group exist; the unit is not enabled.
# 4. apt-get purge: the package, its files and /etc/cutover are gone. (The
#    user and group stay, as Debian leaves system accounts on purge.)
#
# Needs root (or sudo), dpkg-dev, debhelper, fakeroot, lintian and the
# build dependencies (scripts/setup.sh installs them). Refuses to run when
# cutover is already installed: it would replace and purge that install.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi

fail() {
	echo "check-deb: FAIL: $*" >&2
	exit 1
}

if dpkg-query -W -f='${Status}' cutover 2>/dev/null | grep -q 'installed'; then
	fail "the cutover package is installed on this machine; this test installs and purges it: remove it first (apt-get purge cutover)"
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/cutover-deb.XXXXXX")
installed=0
cleanup() {
	if [ "$installed" = 1 ]; then
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q cutover >/dev/null 2>&1 || true
	fi
	rm -rf "$scratch"
}
trap cleanup EXIT

# 1. Build from a copy.
src=$scratch/cutover
mkdir -p "$src"
git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
	(cd "$ROOT" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
	tar -C "$ROOT" --null -T - -cf - | tar -C "$src" -xf -
version=$(sed -n 's/^AC_INIT(\[cutover\], \[\([^]]*\)\].*/\1/p' "$src/configure.ac")
[ -n "$version" ] || fail "no version in configure.ac's AC_INIT"
changelog_version=$(cd "$src" && dpkg-parsechangelog -S Version)
[ "$changelog_version" = "$version" ] ||
	fail "debian/changelog is at $changelog_version, configure.ac at $version"
arch=$(dpkg --print-architecture)
echo "check-deb: building cutover $version for $arch in $src"
(cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=${JOBS:-2}" dpkg-buildpackage -us -uc -b) ||
	fail "dpkg-buildpackage failed"
deb=$scratch/cutover_${version}_${arch}.deb
[ -f "$deb" ] || fail "no $deb after the build: $(ls "$scratch")"
dpkg-deb -c "$deb"

# 2. lintian (it warns when run as root; that is not a finding).
echo "check-deb: lintian"
if ! lintian --fail-on error --pedantic --display-info "$scratch/cutover_${version}_${arch}.changes"; then
	fail "lintian reports errors"
fi

# 3. Install and look.
echo "check-deb: installing $deb"
installed=1
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" ||
	fail "apt-get install $deb failed"
for f in /usr/sbin/cutoverd /usr/sbin/cutoverctl; do
	[ -x "$f" ] || fail "$f is not installed"
done
for f in /lib/systemd/system/cutoverd.service /usr/lib/sysusers.d/cutover.conf \
	/usr/share/man/man8/cutoverd.8.gz /usr/share/man/man8/cutoverctl.8.gz \
	/usr/share/man/man5/cutover.conf.5.gz /usr/share/bash-completion/completions/cutoverctl \
	/etc/cutover/cutover.conf /usr/share/doc/cutover/copyright; do
	[ -f "$f" ] || fail "$f is not installed"
done
grep -qx 'ExecStart=/usr/sbin/cutoverd -c /etc/cutover/cutover.conf' /lib/systemd/system/cutoverd.service ||
	fail "the unit's ExecStart= is not the installed paths: $(grep ExecStart= /lib/systemd/system/cutoverd.service)"
/usr/sbin/cutoverctl --completion bash | cmp -s - /usr/share/bash-completion/completions/cutoverctl ||
	fail "the installed completion differs from what cutoverctl --completion bash prints"
dpkg-query -W -f='${Conffiles}\n' cutover | grep -q '^ /etc/cutover/cutover.conf ' ||
	fail "/etc/cutover/cutover.conf is not a conffile: $(dpkg-query -W -f='${Conffiles}' cutover)"
/usr/sbin/cutoverd -t -c /etc/cutover/cutover.conf ||
	fail "cutoverd -t rejects the shipped /etc/cutover/cutover.conf"
getent passwd cutover >/dev/null || fail "no cutover user after the install"
getent group cutover >/dev/null || fail "no cutover group after the install"
getent group cutover-admin >/dev/null || fail "no cutover-admin group after the install"
enabled=$(systemctl is-enabled cutoverd.service 2>&1 || true)
[ "$enabled" = disabled ] || fail "systemctl is-enabled cutoverd says '$enabled', expected disabled"
for d in /etc/systemd/system/*.wants; do
	[ ! -e "$d/cutoverd.service" ] || fail "the install enabled the unit: $d/cutoverd.service"
done

# 4. Purge.
echo "check-deb: purging"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q cutover || fail "apt-get purge cutover failed"
installed=0
if dpkg-query -W -f='${Status}' cutover 2>/dev/null | grep -q 'installed'; then
	fail "cutover is still installed after the purge"
fi
for f in /usr/sbin/cutoverd /usr/sbin/cutoverctl /lib/systemd/system/cutoverd.service \
	/usr/lib/sysusers.d/cutover.conf /usr/share/bash-completion/completions/cutoverctl \
	/usr/share/man/man8/cutoverd.8.gz /etc/cutover/cutover.conf /etc/cutover; do
	[ ! -e "$f" ] || fail "$f is still there after the purge"
done
echo "check-deb: ok (cutover $version, $arch)"
