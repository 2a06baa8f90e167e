#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install (with apt) everything needed to build the nbd module for the
# Debian 6.1 and 6.12 kernels and to run the VM tests. Idempotent: when
# everything is installed already it only checks and returns.
set -euo pipefail

PROG=${0##*/}

usage() {
	cat <<EOF
Usage: $PROG [--upgrade]

Install the build tools, the Debian 6.1 kernel (linux-image-amd64 +
linux-headers-amd64), the newest Debian 6.12 kernel
(linux-image-6.12.N+deb12-amd64 + matching headers), QEMU, busybox, the
NBD user space tools used by the VM tests, and linux-source-6.12, rsync and
lcov for KUnit and the debug kernel. Must run as root.

When every package is installed already (and some 6.12 kernel is), nothing
is downloaded.

  --upgrade  run apt-get update and install the newest 6.12 kernel even if
             one is installed already
  -h         show this help
EOF
}

die() {
	echo "$PROG: $*" >&2
	exit 1
}

UPGRADE=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--upgrade) UPGRADE=1 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 1 ;;
	esac
	shift
done

PACKAGES=(
	# module build
	gcc make bc bison flex libelf-dev libssl-dev kmod cpio xz-utils zstd
	# Debian's default (6.1) kernel
	linux-image-amd64 linux-headers-amd64
	# VM and tests
	qemu-system-x86 busybox-static nbdkit nbd-client nbd-server qemu-utils
	fio parted e2fsprogs udev util-linux iproute2 procps python3
	# packaging check
	dkms
	# nbdctl (libnl-genl-3, its manual page from reStructuredText)
	pkg-config libnl-3-dev libnl-genl-3-dev python3-docutils
	# KUnit under UML and the debug kernel (make kunit, make debug-kernel):
	# Debian's 6.12 source, rsync to merge our driver into it, lcov for
	# make kunit-coverage
	linux-source-6.12 rsync lcov
	# make bench: its charts
	gnuplot-nox
)

is_installed() {
	local status
	status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
	[[ $status == "install ok installed" ]]
}

missing_packages() {
	local p
	for p in "${PACKAGES[@]}"; do
		is_installed "$p" || printf '%s\n' "$p"
	done
}

# Names of installed linux-image-6.12.N+deb12-amd64 packages whose
# matching headers are installed too.
installed_612() {
	local p
	dpkg-query -W -f='${Package}\n' 'linux-image-6.12.*+deb12-amd64' \
		2>/dev/null | while IFS= read -r p; do
		[[ $p =~ ^linux-image-6\.12\.[0-9]+\+deb12-amd64$ ]] || continue
		is_installed "$p" || continue
		is_installed "linux-headers-${p#linux-image-}" || continue
		printf '%s\n' "$p"
	done
}

newest_612_available() {
	apt-cache search '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' |
		awk '{print $1}' | sort -V | tail -n 1
}

mapfile -t missing < <(missing_packages)
have_612=$(installed_612 | sort -V | tail -n 1)

if [[ ${#missing[@]} -eq 0 && -n $have_612 && $UPGRADE -eq 0 ]]; then
	echo "$PROG: all packages installed (${have_612#linux-image-})" >&2
	exit 0
fi

[[ $(id -u) -eq 0 ]] || die "must run as root to install packages"

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q --no-install-recommends -o Dpkg::Options::=--force-confold)

echo "$PROG: apt-get update" >&2
apt-get update -q >&2

img612=$(newest_612_available)
[[ -n $img612 ]] ||
	die "no linux-image-6.12.N+deb12-amd64 package available (is bookworm-security in the apt sources?)"
hdr612=linux-headers-${img612#linux-image-}

to_install=("${missing[@]}")
if [[ $UPGRADE -eq 1 || -z $have_612 ]]; then
	to_install+=("$img612" "$hdr612")
fi

if [[ ${#to_install[@]} -gt 0 ]]; then
	echo "$PROG: installing ${to_install[*]}" >&2
	apt-get install "${APT_OPTS[@]}" "${to_install[@]}" >&2
fi

# Final check: every package present and a 6.12 kernel usable.
mapfile -t missing < <(missing_packages)
[[ ${#missing[@]} -eq 0 ]] || die "still missing: ${missing[*]}"
have_612=$(installed_612 | sort -V | tail -n 1)
[[ -n $have_612 ]] || die "no 6.12 kernel with headers installed"
echo "$PROG: done (${have_612#linux-image-})" >&2
