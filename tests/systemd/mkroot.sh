#!/bin/bash
# Build (or reuse) a minimal Debian bookworm root with systemd as PID 1, for
# tests/systemd/run.sh: mkroot.sh WORKDIR prints WORKDIR/root, ready to boot, on stdout.
# Exit 77: debootstrap is missing and nothing is cached.
#
# The root is cached as a tar in $NT_CACHE (default /var/cache/noisetun-test), keyed by
# the package list and the mirror: a changed list builds a new one. The mirror is the
# one apt on this machine uses (/etc/apt/sources.list.d/*.sources or sources.list).
set -euo pipefail

CACHE=${NT_CACHE:-/var/cache/noisetun-test}
SUITE=bookworm
BASE_PKGS="systemd,systemd-sysv,dbus,iproute2,wireguard-tools,iputils-ping,procps,systemd-resolved"

# The Debian packages holding the libraries the built binaries link (ldd, dpkg -S): a new
# library dependency reaches the container without anyone listing it here.
lib_pkgs() {
	local b=${BUILD:-build/release} f p
	ldd "$b/noisetund" "$b/noisetun" 2>/dev/null | awk '/=> \// {print $3}' | sort -u | while read -r f; do
		p=$(dpkg -S "$f" 2>/dev/null || dpkg -S "$(readlink -f "$f")" 2>/dev/null || dpkg -S "/usr$f" 2>/dev/null) || {
			echo "mkroot: no Debian package holds $f" >&2
			continue
		}
		echo "${p%%:*}"
	done | sort -u | paste -sd, -
}
LIBS=$(lib_pkgs)
[ -n "$LIBS" ] || { echo "mkroot: cannot tell the binaries' libraries (ldd ${BUILD:-build/release}/noisetund)" >&2; exit 1; }
PKGS="$BASE_PKGS,$LIBS"

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
	command -v debootstrap >/dev/null || { echo "debootstrap is not installed (scripts/install-systemd-test-deps)" >&2; exit 77; }
	echo "mkroot: building $SUITE root from $MIRROR (no cache $TAR)" >&2
	BUILD="$CACHE/build.$$"
	rm -rf "$BUILD"
	trap 'rm -rf "$BUILD" "$BUILD.log" "$TAR.tmp.$$"' EXIT
	debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$BUILD" "$MIRROR" >"$BUILD.log" 2>&1 || {
		tail -20 "$BUILD.log" >&2
		rm -f "$BUILD.log"
		exit 1
	}
	# No apt cache, no docs: a smaller tar.
	rm -rf "$BUILD"/var/cache/apt/archives/*.deb "$BUILD"/var/lib/apt/lists/* "$BUILD"/usr/share/doc/* "$BUILD"/usr/share/man/*
	# (No root password, no getty set up: tests/systemd/run.sh enters with nsenter.)
	echo noisetun-test >"$BUILD/etc/hostname"
	# Another run may build the same root at the same time: each writes its own, the
	# rename is atomic.
	tar -C "$BUILD" --numeric-owner -cf "$TAR.tmp.$$" .
	mv "$TAR.tmp.$$" "$TAR"
	rm -rf "$BUILD" "$BUILD.log"
	trap - EXIT
	echo "mkroot: cached $TAR ($(du -h "$TAR" | cut -f1))" >&2
fi
tar -C "$ROOT" --numeric-owner -xf "$TAR"
echo "$ROOT"
