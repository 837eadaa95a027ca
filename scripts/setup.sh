#!/usr/bin/env bash
# Installs what cutover needs to build, test and run the demo on Debian or
# Ubuntu. Idempotent: asks apt only for packages that are missing. Uses sudo
# only when not run as root.
set -euo pipefail

PACKAGES=(
	build-essential autoconf automake libtool pkg-config
	libevent-dev libssl-dev libhttp-parser-dev libconfig-dev check libsystemd-dev
	curl wrk python3 mandoc openssl systemd util-linux haproxy
	clang libclang-rt-14-dev
	dpkg-dev debhelper fakeroot lintian
	etcd-server etcd-client libjansson-dev chromium fonts-dejavu-core
	libnghttp2-dev nghttp2-client python3-h2
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi
echo "setup: installing ${missing[*]}"
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
