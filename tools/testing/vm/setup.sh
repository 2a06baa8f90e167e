#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install (with apt) everything needed to build the nbd module for the
# Debian 6.1 and 6.12 kernels and to run the VM tests. Idempotent: when
# everything is installed already it only checks and returns.
#
# It is the first thing a new user's `make demo` or `make check` runs, on
# a machine that may have none of it: every step that can fail says which
# step, what it ran and what to do, and exits 1.
set -euo pipefail

PROG=${0##*/}
. "$(dirname "${BASH_SOURCE[0]}")/../errtrap.sh"

usage() {
	cat <<EOF
Usage: $PROG [--upgrade] [--check]

Install the build tools, the Debian 6.1 kernel (linux-image-amd64 +
linux-headers-amd64), the newest Debian 6.12 kernel
(linux-image-6.12.N+deb12-amd64 + matching headers), QEMU, busybox, the
NBD user space tools used by the VM tests, and linux-source-6.12, rsync and
lcov for KUnit and the debug kernel, and debhelper, dh-dkms and lintian
for make deb. Must run as root when anything is missing.

When every package is installed already (and some 6.12 kernel is), nothing
is downloaded and apt is not run.

  --upgrade  run apt-get update and install the newest 6.12 kernel even if
             one is installed already
  --check    only say what is missing (exit 1 if anything is); install
             nothing
  -h         show this help

Environment: NBD_APT_LOCK_TIMEOUT (seconds to wait for another apt or
dpkg to finish, default 300).
EOF
}

# die LINE...: the first line names the failure, the others what to do.
die() {
	printf '%s: %s\n' "$PROG" "$1" >&2
	shift
	[[ $# -eq 0 ]] || printf '  %s\n' "$@" >&2
	exit 1
}

UPGRADE=0
CHECK=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--upgrade) UPGRADE=1 ;;
	--check) CHECK=1 ;;
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
	# packaging check; ccache: make check's nbd_deb compiles through it
	dkms ccache
	# make deb: dpkg-buildpackage, debhelper with dh_dkms, and lintian
	# (nbdctl's build dependencies are below)
	build-essential dpkg-dev debhelper dh-dkms lintian
	# nbdctl (libnl-genl-3, GnuTLS, its manual page from reStructuredText)
	pkg-config libnl-3-dev libnl-genl-3-dev libgnutls28-dev python3-docutils
	# TLS tests: certtool and psktool
	gnutls-bin
	# KUnit under UML and the debug kernel (make kunit, make debug-kernel):
	# Debian's 6.12 source, rsync to merge our driver into it, lcov for
	# make kunit-coverage
	linux-source-6.12 rsync lcov
	# make bench: its charts
	gnuplot-nox
	# Ceph's rbd-nbd (nbd_ceph): a one-node cluster in the VM
	ceph-mon ceph-mgr ceph-osd ceph-common rbd-nbd
)
IMG612_RE='^linux-image-6\.12\.[0-9]+\+deb12-amd64$'
SOURCES="/etc/apt/sources.list and /etc/apt/sources.list.d/"

for tool in dpkg-query apt-get apt-cache; do
	command -v "$tool" >/dev/null ||
		die "step 'find apt': no $tool: this is not a Debian system" \
			"The tests need Debian 12 (bookworm): its kernels, QEMU and NBD tools." \
			"Elsewhere install by hand what '$PROG --help' lists."
done

declare -A installed=()

# read_installed: fill installed[] from dpkg's database, in one query.
# dpkg-query exits 1 when a name matches no package it ever knew (on a
# fresh system: most of them), so its status is not a verdict; the
# packages it prints with "install ok installed" are.
read_installed() {
	local pkg status

	installed=()
	while IFS=$'\t' read -r pkg status; do
		if [[ $status == "install ok installed" ]]; then
			installed[$pkg]=1
		fi
	done < <(dpkg-query -W -f='${Package}\t${Status}\n' "${PACKAGES[@]}" \
		'linux-image-6.12.*+deb12-amd64' \
		'linux-headers-6.12.*+deb12-amd64' 2>/dev/null || true)
}

# missing_packages: the names of PACKAGES not installed, one per line.
missing_packages() {
	local p

	for p in "${PACKAGES[@]}"; do
		[[ -n ${installed[$p]:-} ]] || printf '%s\n' "$p"
	done
}

# newest_612_installed: the newest linux-image-6.12.N+deb12-amd64 that is
# installed with its headers, or nothing.
newest_612_installed() {
	local p

	for p in "${!installed[@]}"; do
		[[ $p =~ $IMG612_RE ]] || continue
		[[ -n ${installed[linux-headers-${p#linux-image-}]:-} ]] || continue
		printf '%s\n' "$p"
	done | sort -V | tail -n 1
}

read_installed
mapfile -t missing < <(missing_packages)
have_612=$(newest_612_installed)

if [[ ${#missing[@]} -eq 0 && -n $have_612 && $UPGRADE -eq 0 ]]; then
	echo "$PROG: all packages installed (${have_612#linux-image-})" >&2
	exit 0
fi

what=("${missing[@]}")
[[ -n $have_612 ]] ||
	what+=("a linux-image-6.12.N+deb12-amd64 kernel with its headers")
if [[ $CHECK -eq 1 ]]; then
	[[ ${#what[@]} -gt 0 ]] || exit 0
	printf '%s: missing: %s\n' "$PROG" "${what[*]}" >&2
	exit 1
fi

if [[ $(id -u) -ne 0 ]]; then
	[[ ${#what[@]} -gt 0 ]] ||
		die "step 'check root': --upgrade installs, which needs root" \
			"Run it again as root: $0 --upgrade"
	die "step 'check root': installing needs root, and ${#what[@]} things are missing:" \
		"${what[*]}" \
		"Run it again as root (sudo make ...), or as root: $0"
fi

export DEBIAN_FRONTEND=noninteractive
LOCK_TIMEOUT=${NBD_APT_LOCK_TIMEOUT:-300}
# A fresh cloud machine often runs unattended-upgrades at first boot:
# wait for its lock rather than fail at once.
APT_OPTS=(-q -o "DPkg::Lock::Timeout=$LOCK_TIMEOUT")
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT

# fetch_errors: what apt-get update could not fetch, for the messages of
# the steps that need the package lists.
fetch_errors() {
	grep -E '^(W|E|Err): ' "$LOG" | grep -v -E '^W: (Target|Conflicting)' |
		head -n 5 || true
}

echo "$PROG: apt-get update" >&2
rc=0
apt-get "${APT_OPTS[@]}" update 2>&1 | tee "$LOG" >&2 || rc=$?
if [[ $rc -ne 0 ]]; then
	mapfile -t errs < <(fetch_errors)
	die "step 'apt-get update' failed (exit status $rc): it ran apt-get ${APT_OPTS[*]} update" \
		"${errs[@]}" \
		"Check the network (and a proxy in /etc/apt/apt.conf.d/), the sources in $SOURCES," \
		"and that no other apt or dpkg holds the lock (NBD_APT_LOCK_TIMEOUT waits for it)."
fi
# Without a network apt-get update can succeed with warnings only, and
# leave no package list: say so in the steps that look up packages.
mapfile -t fetch < <(fetch_errors)
[[ ${#fetch[@]} -eq 0 ]] ||
	fetch=("apt-get update could not fetch everything, so the package lists may be missing or old:"
	       "${fetch[@]}"
	       "Fix that first (network, proxy, sources); if it was not the cause:")

img612=$(apt-cache search "$IMG612_RE" | awk '{print $1}' | sort -V |
	tail -n 1)
if [[ -z $img612 && -z $have_612 ]]; then
	die "step 'find the 6.12 kernel': apt-cache search '$IMG612_RE' found no package" \
		"${fetch[@]}" \
		"Debian 12's 6.12 kernels are in bookworm-security: add to $SOURCES" \
		"  deb http://deb.debian.org/debian-security bookworm-security main" \
		"then run this again."
fi

to_install=("${missing[@]}")
if [[ -n $img612 ]] && [[ $UPGRADE -eq 1 || -z $have_612 ]]; then
	to_install+=("$img612" "linux-headers-${img612#linux-image-}")
fi

# has_candidate: the packages of to_install apt could install, one per
# line ("Candidate: (none)", or no entry at all, when it cannot).
has_candidate() {
	apt-cache policy "${to_install[@]}" 2>/dev/null | awk '
		/^[^ ].*:$/ { pkg = substr($0, 1, length($0) - 1) }
		/^  Candidate: / && $2 != "(none)" { print pkg }'
}

if [[ ${#to_install[@]} -gt 0 ]]; then
	declare -A can=()
	while IFS= read -r p; do
		can[$p]=1
	done < <(has_candidate)
	nocand=()
	for p in "${to_install[@]}"; do
		[[ -n ${can[$p]:-} ]] || nocand+=("$p")
	done
	if [[ ${#nocand[@]} -gt 0 ]]; then
		die "step 'check candidates': apt has no installable version of: ${nocand[*]}" \
			"(apt-cache policy ${nocand[0]} shows 'Candidate: (none)' or nothing)" \
			"${fetch[@]}" \
			"They are in Debian 12 (bookworm) main: check that $SOURCES" \
			"list bookworm, bookworm-updates and bookworm-security with the main component."
	fi

	echo "$PROG: installing ${to_install[*]}" >&2
	rc=0
	apt-get "${APT_OPTS[@]}" -y --no-install-recommends \
		-o Dpkg::Options::=--force-confold \
		install "${to_install[@]}" 2>&1 | tee "$LOG" >&2 || rc=$?
	if [[ $rc -ne 0 ]]; then
		mapfile -t errs < <(grep -E '^E: ' "$LOG" | head -n 5 || true)
		die "step 'apt-get install' failed (exit status $rc): it ran apt-get ... install ${to_install[*]}" \
			"${errs[@]}" \
			"A download that failed: check the network and run this again." \
			"dpkg interrupted or broken packages: run 'dpkg --configure -a' and 'apt-get -f install'."
	fi
fi

# Final check: every package present and a 6.12 kernel usable.
read_installed
mapfile -t missing < <(missing_packages)
[[ ${#missing[@]} -eq 0 ]] ||
	die "step 'final check': apt-get install succeeded but these are not installed: ${missing[*]}" \
		"See dpkg-query -W ${missing[0]}; apt-get install ${missing[0]} shows why."
have_612=$(newest_612_installed)
[[ -n $have_612 ]] ||
	die "step 'final check': no linux-image-6.12.N+deb12-amd64 is installed with its headers" \
		"Install both as root: apt-get install $img612 linux-headers-${img612#linux-image-}"
echo "$PROG: done (${have_612#linux-image-})" >&2
