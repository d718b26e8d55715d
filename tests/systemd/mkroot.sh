#!/bin/bash
# Build (or reuse) a minimal Debian bookworm root with systemd as PID 1, for
# tests/systemd/run.sh. Prints the path of a ready root directory on stdout.
#
# The root is cached as a tar in $NT_CACHE (default /var/cache/noisetun-test), keyed by
# the package list and the mirror: a changed list builds a new one. The mirror is the
# one apt on this machine uses (/etc/apt/sources.list.d/*.sources or sources.list).
set -euo pipefail

CACHE=${NT_CACHE:-/var/cache/noisetun-test}
SUITE=bookworm
PKGS="systemd,systemd-sysv,dbus,iproute2,wireguard-tools,iputils-ping,procps,libsodium23,libb2-1,libmnl0,libssl3,libseccomp2,systemd-resolved"

mirror() {
	local m=""
	m=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	[ -n "$m" ] || m=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
	echo "${m:-http://deb.debian.org/debian}"
}

MIRROR=$(mirror)
KEY=$(printf '%s %s %s v1' "$SUITE" "$MIRROR" "$PKGS" | sha256sum | cut -c1-16)
TAR="$CACHE/$SUITE-root-$KEY.tar"
WORK=${1:?usage: mkroot.sh WORKDIR}

mkdir -p "$CACHE" "$WORK"
ROOT="$WORK/root"
rm -rf "$ROOT"
mkdir -p "$ROOT"

if [ ! -s "$TAR" ]; then
	echo "mkroot: building $SUITE root from $MIRROR (no cache $TAR)" >&2
	BUILD="$CACHE/build.$$"
	rm -rf "$BUILD"
	trap 'rm -rf "$BUILD"' EXIT
	debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$BUILD" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || {
		tail -20 "$CACHE/debootstrap.log" >&2
		exit 1
	}
	# No apt cache, no docs: a smaller tar.
	rm -rf "$BUILD"/var/cache/apt/archives/*.deb "$BUILD"/var/lib/apt/lists/* "$BUILD"/usr/share/doc/* "$BUILD"/usr/share/man/*
	# A root password-less console is not needed: machinectl shell / nsenter are used.
	echo noisetun-test >"$BUILD/etc/hostname"
	tar -C "$BUILD" --numeric-owner -cf "$TAR.tmp" .
	mv "$TAR.tmp" "$TAR"
	rm -rf "$BUILD"
	trap - EXIT
	echo "mkroot: cached $TAR ($(du -h "$TAR" | cut -f1))" >&2
fi
tar -C "$ROOT" --numeric-owner -xf "$TAR"
echo "$ROOT"
