#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Fill a ccache directory with the DKMS build of nbd-dkms for each kernel
# given, as the guest of nbd_deb will compile it: make check passes the
# directory to nbd_deb (NBD_DEB_CCACHE), whose apt-get install then has
# DKMS compile through ccache (Debian's DEBIAN_KERNEL_USE_CCACHE, read by
# the kernel headers' .kernelvariables).  Under TCG the compiler is what
# makes nbd_deb last minutes; the guest still runs DKMS, kbuild, modpost
# and the link, and any source, flag or header that differs from here is
# a cache miss, compiled in the guest.
#
# ccache's direct mode hashes the compiler's arguments, which name the
# build directory, so the build runs where the guest's does
# (/var/lib/dkms/nbd/VERSION/build): in a private mount namespace with a
# tmpfs over /var/lib/dkms, which leaves the host's untouched.
#
#   prime-ccache.sh DEB_DIR CCACHE_DIR KERNEL_RELEASE...
#
# Needs root (unshare -m), dkms and ccache.  Exits 1 if a build fails.
set -u

PROG=${0##*/}

usage() {
	echo "Usage: $PROG DEB_DIR CCACHE_DIR KERNEL_RELEASE..." >&2
	exit 2
}

[ $# -ge 3 ] || usage
deb_dir=$1
cache=$2
shift 2

for tool in ccache dkms dpkg-deb unshare; do
	command -v "$tool" >/dev/null || {
		echo "$PROG: no $tool (setup.sh installs it)" >&2
		exit 1
	}
done
deb=$(ls -t "$deb_dir"/nbd-dkms_*_all.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { echo "$PROG: no nbd-dkms_*_all.deb in $deb_dir" >&2; exit 1; }
version=$(dpkg-deb -f "$deb" Version) || exit 1
version=${version#*:}
version=${version%-*}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nbd-prime.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp/x" || exit 1
mkdir -p "$cache" /var/lib/dkms || exit 1

rc=0
for krel in "$@"; do
	log=$tmp/$krel.log
	# shellcheck disable=SC2016 # expanded by the inner shell
	if DEBIAN_KERNEL_USE_CCACHE=1 CCACHE_DIR=$cache unshare -m sh -c '
		mount -t tmpfs nbd-prime /var/lib/dkms || exit 1
		dkms build -m nbd -v "$1" -k "$2" --sourcetree "$3" && exit 0
		tail -n 15 /var/lib/dkms/nbd/"$1"/build/make.log
		exit 1' _ "$version" "$krel" "$tmp/x/usr/src" >"$log" 2>&1 \
		</dev/null; then
		echo "$PROG: nbd/$version for $krel compiled into $cache"
	else
		echo "$PROG: dkms build for $krel failed:" >&2
		tail -n 15 "$log" >&2
		rc=1
	fi
done
exit $rc
