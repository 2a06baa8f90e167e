#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make deb: the Debian packages nbd-dkms and nbdctl (debian/), built with
# dpkg-buildpackage -us -uc -b (binary only, unsigned) from a copy of the
# work tree under OUT, so that nothing is written next to the repository
# nor into the work tree outside OUT; then lintian on the result.
#
#   tools/deb/make-deb.sh [--no-lint] [OUT]   build, then lint (OUT: build/deb)
#   tools/deb/make-deb.sh --lint-only [OUT]   lint what OUT holds
#
# OUT ends up with nbd-dkms_V_all.deb, nbdctl_V_ARCH.deb, the .changes and
# .buildinfo, and build.log (dpkg-buildpackage's output).  The copy holds
# the files git tracks plus the new ones it does not ignore, as they are
# in the work tree (so uncommitted edits are packaged too).  Lintian fails
# the run on any error or warning that debian/*.lintian-overrides does not
# override.
set -euo pipefail

PROG=make-deb.sh
. "$(dirname "${BASH_SOURCE[0]}")/../testing/errtrap.sh"

# die LINE...: the first line names the failure, the others what to do.
die() {
	printf '%s: %s\n' "$PROG" "$1" >&2
	shift
	[[ $# -eq 0 ]] || printf '  %s\n' "$@" >&2
	exit 1
}

BUILD=1
LINT=1
case ${1:-} in
--no-lint) LINT=0; shift ;;
--lint-only) BUILD=0; shift ;;
-h|--help) sed -n '3,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$repo/build/deb}
[[ $out == /* ]] || out=$PWD/$out

cd "$repo"
for tool in dpkg-buildpackage dpkg-parsechangelog dpkg-deb; do
	command -v "$tool" >/dev/null ||
		die "no $tool: it is in dpkg-dev (apt-get install dpkg-dev debhelper dh-dkms)"
done
if [[ $LINT -eq 1 ]]; then
	command -v lintian >/dev/null ||
		die "no lintian to check the packages: apt-get install lintian" \
			"(or build without the check: make deb DEB_LINT=0)"
fi

# lint: lintian on the .changes of OUT (both packages), errors and
# warnings fatal, the informational tags shown.
lint() {
	local changes

	changes=$(find "$out" -maxdepth 1 -name 'nbd_*.changes' | sort | tail -n 1)
	[[ -n $changes ]] ||
		die "no nbd_*.changes in $out to check: run make deb first"
	echo "$PROG: lintian ${changes#"$repo"/}"
	lintian --display-info --fail-on error,warning "$changes" ||
		die "lintian found errors or warnings in the packages (above)" \
			"Fix them in debian/, or override a tag that cannot be fixed in" \
			"debian/<package>.lintian-overrides with a comment saying why."
	echo "$PROG: lintian: no errors or warnings"
}

if [[ $BUILD -eq 0 ]]; then
	lint
	exit 0
fi

debian/check-version
version=$(dpkg-parsechangelog -S Version)

mkdir -p "$out"
rm -rf "$out/src"
rm -f "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo "$out/build.log"
tree=$out/src/nbd-$version
mkdir -p "$tree"

# The paths to copy, NUL-separated: never build/ nor OUT itself, should
# either not be ignored; only what exists (a deletion not yet committed
# is still in git's index).
rel_out=${out#"$repo"/}
[[ $rel_out != "$out" ]] || rel_out=
copy_list() {
	local f

	if git rev-parse --git-dir >/dev/null 2>&1; then
		git ls-files -z --cached --others --exclude-standard
	else
		find . -path ./.git -prune -o ! -type d -printf '%P\0'
	fi | while IFS= read -r -d '' f; do
		case $f in build/*) continue ;; esac
		[[ -z $rel_out || $f != "$rel_out"/* ]] || continue
		[[ -e $f || -L $f ]] || continue
		printf '%s\0' "$f"
	done
}
copy_list | xargs -0 -r cp -a --parents -t "$tree"

echo "$PROG: dpkg-buildpackage -us -uc -b in ${tree#"$repo"/} (log: ${out#"$repo"/}/build.log)"
if ! (cd "$tree" && nice dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1; then
	tail -n 25 "$out/build.log" >&2
	die "dpkg-buildpackage failed; its last lines are above, all of it in $out/build.log" \
		"Missing build dependencies: tools/testing/vm/setup.sh installs them (as root)."
fi

shopt -s nullglob
built=("$out"/src/*.deb)
[[ ${#built[@]} -gt 0 ]] || die "dpkg-buildpackage made no .deb (see $out/build.log)"
mv "$out"/src/*.deb "$out"/src/*.changes "$out"/src/*.buildinfo "$out"/
rm -rf "$out/src"

[[ $LINT -eq 0 ]] || lint

# OUT as the user would type it from the top of the tree (apt install
# needs the ./ to take a path for a package name).
shown=$out
[[ -z $rel_out ]] || shown=./$rel_out
echo "$PROG: the packages are in $shown/:"
for f in "$out"/*.deb; do
	echo "  ${f##*/}"
done
echo "$PROG: install them with: apt install $shown/nbd-dkms_${version}_all.deb $shown/nbdctl_${version}_*.deb"
