#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The first run of a new user, on the host, without a VM and without
# touching the machine's packages: tools/testing/vm/setup.sh and the other
# scripts a first `make demo`, `make check`, `make kunit`, `make
# debug-kernel` or `make bench` meets run against a fake Debian.  stubs/
# holds dpkg-query, apt-get, apt-cache and id, first on PATH, over a fake
# archive and a package database that starts as each case wants (empty:
# a fresh machine) and fills as the stub apt-get install is called.
#
#   tools/testing/firstrun/run.sh [CASE...]     (default: every case)
#   NBD_SETUP_SH=FILE ... run.sh                test another setup.sh
#
# Prints "ok N - ..." / "not ok N - ..." and, last, "N passed, M failed";
# exits 0 only when nothing failed.

set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../../.." && pwd -P)
SETUP=${NBD_SETUP_SH:-$REPO/tools/testing/vm/setup.sh}
STUBS=$HERE/stubs
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nbd-firstrun.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

. "$HERE/../tap.sh"
TAP_DETAIL_LINES=30

# The packages setup.sh installs: its PACKAGES array, comments dropped.
mapfile -t PACKAGES < <(sed -n '/^PACKAGES=(/,/^)/p' "$SETUP" |
	sed -e '1d;$d' -e 's/#.*//' | tr -s ' \t' '\n\n' | sed '/^$/d')
K612=(9 110 117)	# 6.12.N in the fake archive; sort -V must pick 117
NEWEST=6.12.117+deb12-amd64

# fake_system [--bare]: a new fake Debian in $NBD_FAKE_APT: an archive with
# every package of setup.sh and three 6.12 kernels, package lists present
# (--bare: none yet, as on a machine that never ran apt-get update), an
# empty package database, root.
fake_system()
{
	local k

	export NBD_FAKE_APT=$tmp/fake.$n
	rm -rf "$NBD_FAKE_APT"
	mkdir -p "$NBD_FAKE_APT"
	{
		printf '%s 1.0\n' "${PACKAGES[@]}"
		for k in "${K612[@]}"; do
			echo "linux-image-6.12.$k+deb12-amd64 6.12.$k-1"
			echo "linux-headers-6.12.$k+deb12-amd64 6.12.$k-1"
		done
	} >"$NBD_FAKE_APT/archive"
	: >"$NBD_FAKE_APT/installed"
	: >"$NBD_FAKE_APT/calls"
	[[ ${1:-} == --bare ]] || touch "$NBD_FAKE_APT/lists"
	echo 0 >"$NBD_FAKE_APT/uid"
}

# install_fake PKG...: mark packages installed in the fake database.
install_fake()
{
	printf '%s\n' "$@" >>"$NBD_FAKE_APT/installed"
}

# drop_archive REGEX: take packages out of the fake archive.
drop_archive()
{
	grep -v -E "$1" "$NBD_FAKE_APT/archive" >"$NBD_FAKE_APT/archive.new"
	mv "$NBD_FAKE_APT/archive.new" "$NBD_FAKE_APT/archive"
}

# run CMD...: run with the stubs first on PATH; stdout and stderr in
# $out and $err, the status in $rc.  Bounded: a hang is a failure.
run()
{
	out=$tmp/out.$n
	err=$tmp/err.$n
	PATH=$STUBS:$PATH timeout 120 "$@" >"$out" 2>"$err" </dev/null
	rc=$?
}

apt_calls()
{
	grep -E '^apt-(get|cache) ' "${NBD_FAKE_APT:-/dev/null}/calls" 2>/dev/null
}

# check DESC COND...: one result; COND is a command, its failure the detail.
check()
{
	local desc=$1

	shift
	if "$@"; then
		ok "$desc"
	else
		not_ok "$desc" "status $rc; stderr:" "$(tail -n 15 "$err")" \
			"apt calls:" "$(apt_calls)"
	fi
}

has_err() { grep -q -F -e "$1" "$err"; }
has_call() { grep -q -x -F -e "$1" "$NBD_FAKE_APT/calls"; }
no_apt() { ! apt_calls >/dev/null; }
no_install() { ! grep -q '^apt-get install' "$NBD_FAKE_APT/calls"; }
failed_with() { [[ $rc -ne 0 ]] && grep -q -E "$1" "$err"; }
all_installed()
{
	local p

	for p in "${PACKAGES[@]}" "linux-image-$NEWEST" "linux-headers-$NEWEST"; do
		grep -q -x -F "$p" "$NBD_FAKE_APT/installed" || return 1
	done
}

# A failure says which step, in a line of the script's own (not only
# apt's output), and exits non-zero.
told() { failed_with "^setup\.sh: step '$1'"; }

case_fresh()
{
	fake_system --bare
	run "$SETUP"
	check "fresh: nothing installed, no package lists: setup.sh succeeds" \
		test "$rc" -eq 0
	check "fresh: apt-get update first, then one apt-get install" \
		eval '[[ $(apt_calls | grep "^apt-get" | cut -d" " -f2 | tr "\n" " ") == "update install " ]]'
	check "fresh: every package and the newest 6.12 ($NEWEST) installed" \
		all_installed
	check "fresh: no older 6.12 kernel installed" \
		eval '! grep -q -E "6\.12\.(9|110)\+" "$NBD_FAKE_APT/installed"'
	check "fresh: says what it installed" has_err "done ($NEWEST)"
	run "$SETUP"
	check "fresh, second run: nothing to do, apt not run again" \
		eval '[[ $rc -eq 0 && $(apt_calls | grep -c "^apt-get update") -eq 1 ]]'
}

case_installed()
{
	fake_system
	install_fake "${PACKAGES[@]}" linux-image-6.12.110+deb12-amd64 \
		linux-headers-6.12.110+deb12-amd64
	run "$SETUP"
	check "installed: succeeds" test "$rc" -eq 0
	check "installed: apt-get and apt-cache not run (nothing downloaded)" no_apt
	check "installed: names the 6.12 kernel it found" \
		has_err "all packages installed (6.12.110+deb12-amd64)"
	echo 1000 >"$NBD_FAKE_APT/uid"
	run "$SETUP"
	check "installed, not root: succeeds, root is needed only to install" \
		eval '[[ $rc -eq 0 ]] && no_apt'
}

case_no_612()
{
	fake_system
	install_fake "${PACKAGES[@]}"
	run "$SETUP"
	check "only 6.12 missing: succeeds" test "$rc" -eq 0
	check "only 6.12 missing: installs the newest 6.12 image and headers, nothing else" \
		has_call "apt-get install linux-image-$NEWEST linux-headers-$NEWEST"
	check "only 6.12 missing: both installed" all_installed
}

case_612_headers()
{
	fake_system
	install_fake "${PACKAGES[@]}" linux-image-6.12.110+deb12-amd64
	run "$SETUP"
	check "6.12 without its headers: installs the newest pair" \
		eval '[[ $rc -eq 0 ]] && has_call "apt-get install linux-image-$NEWEST linux-headers-$NEWEST"'
}

case_update_fails()
{
	fake_system --bare
	touch "$NBD_FAKE_APT/fail-update"
	run "$SETUP"
	check "apt-get update fails: exits non-zero and names the step" \
		told "apt-get update"
	check "apt-get update fails: shows apt's error and what to check" \
		eval 'has_err "is not signed" && has_err "sources.list"'
	check "apt-get update fails: installs nothing" no_install
}

case_offline()
{
	fake_system --bare
	touch "$NBD_FAKE_APT/offline"
	run "$SETUP"
	check "no network (update only warns, no lists): names the step" \
		told "find the 6.12 kernel"
	check "no network: says apt-get update could not fetch, and why" \
		eval 'has_err "could not fetch" && has_err "Temporary failure resolving"'
}

case_install_fails()
{
	fake_system
	install_fake "${PACKAGES[@]}"
	drop_archive '^nothing$'
	sed -i '/^fio$/d' "$NBD_FAKE_APT/installed"
	touch "$NBD_FAKE_APT/fail-install"
	run "$SETUP"
	check "apt-get install fails: exits non-zero and names the step" \
		told "apt-get install"
	check "apt-get install fails: shows apt's error and the packages" \
		eval 'has_err "Connection timed out" && has_err "fio"'
}

case_no_candidate()
{
	fake_system --bare
	drop_archive '^(nbdkit|fio) '
	run "$SETUP"
	check "package without a candidate: exits non-zero and names the step" \
		told "check candidates"
	check "package without a candidate: names nbdkit and fio" \
		eval 'has_err "nbdkit" && has_err "fio"'
	check "package without a candidate: installs nothing" no_install
}

case_no_security()
{
	fake_system
	drop_archive '^linux-(image|headers)-6\.12\.'
	run "$SETUP"
	check "no 6.12 kernel in the sources: names the step and bookworm-security" \
		eval 'told "find the 6.12 kernel" && has_err "bookworm-security"'
}

case_not_root()
{
	fake_system --bare
	echo 1000 >"$NBD_FAKE_APT/uid"
	run "$SETUP"
	check "not root, packages missing: exits non-zero, says root is needed" \
		told "check root"
	check "not root: lists what is missing" \
		eval 'has_err "qemu-system-x86" && has_err "linux-image-6.12.N"'
	check "not root: apt not run" no_apt

	fake_system
	install_fake "${PACKAGES[@]}" "linux-image-$NEWEST" "linux-headers-$NEWEST"
	echo 1000 >"$NBD_FAKE_APT/uid"
	run "$SETUP" --upgrade
	check "not root, --upgrade: says it needs root, apt not run" \
		eval 'told "check root" && has_err "upgrade" && no_apt'
}

case_check()
{
	fake_system --bare
	install_fake "${PACKAGES[@]}"
	sed -i '/^nbdkit$/d' "$NBD_FAKE_APT/installed"
	run "$SETUP" --check
	check "--check: exits 1 and names what is missing, installs nothing" \
		eval '[[ $rc -eq 1 ]] && has_err "missing: nbdkit a linux-image-6.12.N" && no_apt'
	install_fake nbdkit "linux-image-$NEWEST" "linux-headers-$NEWEST"
	run "$SETUP" --check
	check "--check, everything installed: exits 0, apt not run" \
		eval '[[ $rc -eq 0 ]] && no_apt'
}

# The other first-run paths: each stops with a message when its input is
# missing, and says what to do.

# A full fake system but the source tarball is not where it is looked for.
case_debug_kernel()
{
	fake_system
	install_fake "${PACKAGES[@]}" "linux-image-$NEWEST" "linux-headers-$NEWEST"
	NBD_CACHE_DIR=$tmp/cache.$n NBD_LINUX_SOURCE=$tmp/none.tar.xz \
		run "$REPO/tools/testing/vm/debug-kernel.sh"
	check "debug kernel, no source tarball: stops with a message naming it" \
		eval 'failed_with "^debug-kernel\.sh: .*none\.tar\.xz" && has_err "linux-source-6.12"'
	check "debug kernel, no source tarball: builds nothing" \
		eval '! has_err "make defconfig"'

	fake_system --bare
	touch "$NBD_FAKE_APT/fail-update"
	NBD_CACHE_DIR=$tmp/cache.$n NBD_LINUX_SOURCE=$tmp/none.tar.xz \
		run "$REPO/tools/testing/vm/debug-kernel.sh"
	check "debug kernel on a fresh machine, apt failing: setup's message, then its own" \
		eval 'told "apt-get update" && has_err "debug-kernel.sh: setup.sh failed"'
}

case_kunit()
{
	fake_system
	install_fake "${PACKAGES[@]}" "linux-image-$NEWEST" "linux-headers-$NEWEST"
	NBD_CACHE_DIR=$tmp/cache.$n NBD_LINUX_SOURCE=$tmp/none.tar.xz \
		run "$REPO/tools/testing/kunit/run.sh"
	check "UML tree, no source tarball: stops with a message naming it" \
		eval 'failed_with "^run\.sh: .*none\.tar\.xz" && has_err "linux-source-6.12"'

	fake_system --bare
	touch "$NBD_FAKE_APT/fail-update"
	NBD_CACHE_DIR=$tmp/cache.$n NBD_LINUX_SOURCE=$tmp/none.tar.xz \
		run "$REPO/tools/testing/kunit/run.sh"
	check "UML tree on a fresh machine, apt failing: setup's message, then its own" \
		eval 'told "apt-get update" && has_err "run.sh: setup.sh failed"'
}

case_bench()
{
	fake_system
	install_fake "${PACKAGES[@]}" "linux-image-$NEWEST" "linux-headers-$NEWEST"
	sed -i '/^gnuplot-nox$/d' "$NBD_FAKE_APT/installed"
	touch "$NBD_FAKE_APT/fail-install"
	run "$REPO/tools/testing/bench/bench.sh" --out "$tmp/bench.$n"
	check "bench, its chart package missing: installs it first (apt-get install gnuplot-nox)" \
		has_call "apt-get install gnuplot-nox"
	check "bench, install failing: setup's message, then its own, no VM booted" \
		eval 'told "apt-get install" && has_err "bench.sh: setup.sh failed" && ! has_err booting'
}

case_demo()
{
	fake_system --bare
	touch "$NBD_FAKE_APT/fail-update"
	run make -s -C "$REPO" demo
	check "make demo on a fresh machine, apt failing: setup's message, then demo's" \
		eval 'told "apt-get update" && has_err "demo.sh: setup.sh failed"'
}

# The error trap: a failure nobody tests ends a set -e script with a line
# naming the script, the line and the command.
case_errtrap()
{
	local t=$tmp/trapped.sh

	rc=0
	err=$tmp/err.$n
	cat >"$t" <<-EOF
	#!/bin/bash
	set -euo pipefail
	. "$REPO/tools/testing/errtrap.sh"
	inner() { grep -q no-such-line /dev/null; }
	outer() { inner; }
	x=\$(false) || true
	outer
	echo not reached
	EOF
	bash "$t" >/dev/null 2>"$err"
	rc=$?
	check "errtrap: an untested failure exits non-zero with script, line, command and callers" \
		failed_with "^trapped\.sh: line 4: \`grep -q no-such-line /dev/null' failed \(exit status 1\) \(in inner\(\) line 5 <- outer\(\) line 7\)$"
	check "errtrap: a handled failure in a command substitution says nothing" \
		eval '[[ $(wc -l <"$err") -eq 1 ]]'

	# Every set -e script under tools/ and .ci/ uses it.
	local f missing=()
	while IFS= read -r f; do
		grep -q -E '^set -[a-zA-Z]*e' "$REPO/$f" || continue
		grep -q -E '^\. .*errtrap\.sh"?$' "$REPO/$f" || missing+=("$f")
	done < <(git -C "$REPO" ls-files tools .ci | grep -v -E '\.(c|h|py|md|rst|png|csv|log|dmesg|config)$')
	rc=${#missing[@]}
	: >"$err"
	printf '%s\n' "${missing[@]}" >"$err"
	check "errtrap: every set -e script under tools/ sources errtrap.sh" \
		test "$rc" -eq 0
}

ALL=(fresh installed no_612 612_headers update_fails offline install_fails
     no_candidate no_security not_root check debug_kernel kunit bench demo errtrap)
cases=("$@")
[[ ${#cases[@]} -gt 0 ]] || cases=("${ALL[@]}")
[[ ${#PACKAGES[@]} -gt 10 ]] ||
	not_ok "read the package list of $SETUP" "got ${#PACKAGES[@]} names"
for c in "${cases[@]}"; do
	if ! declare -F "case_$c" >/dev/null; then
		not_ok "case $c" "no such case (cases: ${ALL[*]})"
		continue
	fi
	"case_$c"
done
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
