#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host test of `make deb` (no VM, no root needed but for DKMS's signing
# key, which a root dkms build creates once in /var/lib/dkms, as make
# check's does):
#
#   - make deb into a temporary directory; the two packages are there;
#   - nbd-dkms holds the module's source and dkms.conf under
#     /usr/src/nbd-VERSION, with the version everywhere the same;
#   - DKMS builds nbd.ko from the package's files alone, for each kernel
#     whose headers are installed, in a private DKMS tree (nothing is
#     installed in /lib/modules);
#   - nbdctl holds /usr/sbin/nbdctl, which runs and says the version, and
#     nbdctl.8; it conflicts with nothing, nbd-client included;
#   - lintian: no error or warning that debian/ does not override;
#   - with the systemd unit, the nbdtab example and the bash completion
#     added to a copy of the tree (when the tree has them not yet), the
#     package installs them where they belong;
#   - a disagreeing version (dkms.conf, in a copy) stops make deb with a
#     sentence that names the file.
#
#   tools/testing/deb/check.sh          (KEEP=1: keep the temporary directory)
#
# Prints "ok N - ..." / "not ok N - ..." and, last, "N passed, N failed";
# exits 0 only when nothing failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
. "$repo/tools/testing/tap.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nbd-deb-test.XXXXXX") || exit 1
cleanup() {
	if [ "${KEEP:-0}" = 1 ]; then
		echo "# kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT

# check DESC COMMAND...: ok when COMMAND succeeds, else not ok with its
# output.
check() {
	local desc=$1 out

	shift
	if out=$("$@" 2>&1); then
		ok "$desc"
	else
		not_ok "$desc" "$out"
	fi
}

# copy_tree DIR: the work tree as make deb sees it (tracked files plus
# the new ones git does not ignore), into DIR, with a .git of its own.
copy_tree() {
	mkdir -p "$1"
	(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do
			[ -e "$f" ] && printf '%s\0' "$f"
		done | xargs -0 cp -a --parents -t "$1")
	git -C "$1" init -q && git -C "$1" add -A
}

version=$(cd "$repo" && dpkg-parsechangelog -S Version 2>/dev/null)
out=$tmp/out
start=$(date +%s)

# --- make deb ----------------------------------------------------------
if make -s -C "$repo" deb DEB_OUT="$out" >"$tmp/make.log" 2>&1; then
	ok "make deb into $out ($(($(date +%s) - start)) s)"
else
	not_ok "make deb into $out" "$(tail -n 20 "$tmp/make.log")"
fi
dkms_deb=$out/nbd-dkms_${version}_all.deb
ctl_deb=$(ls "$out"/nbdctl_"${version}"_*.deb 2>/dev/null | head -n 1)
check "nbd-dkms_${version}_all.deb is there" test -f "$dkms_deb"
check "nbdctl_${version}_ARCH.deb is there" test -n "$ctl_deb"
check "make deb says where the packages are" \
	grep -q "packages are in $out/" "$tmp/make.log"

# --- nbd-dkms ----------------------------------------------------------
src=usr/src/nbd-$version
# has DEB PATH...: every PATH is in DEB's file list.
has() {
	local deb=$1 p list missing=()

	shift
	list=$(dpkg-deb -c "$deb" 2>&1 | awk '{ sub(/^\.\//, "", $6); print $6 }') ||
		{ echo "$list"; return 1; }
	for p in "$@"; do
		grep -qxF -- "$p" <<<"$list" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] || { echo "missing: ${missing[*]}"; return 1; }
}
mod_files=()
for f in "$repo"/drivers/block/nbd/*.[ch] "$repo"/drivers/block/nbd/Makefile \
	 "$repo"/include/uapi/linux/*.h; do
	mod_files+=("$src/${f#"$repo"/}")
done
check "nbd-dkms: the module source under /$src" \
	has "$dkms_deb" "$src/dkms.conf" "$src/Makefile" "$src/Kbuild" "${mod_files[@]}"
check "nbd-dkms: Architecture all, Depends on dkms" \
	bash -c '[ "$(dpkg-deb -f "$1" Architecture)" = all ] &&
		 dpkg-deb -f "$1" Depends | grep -qw dkms' _ "$dkms_deb"

x=$tmp/x-dkms
dpkg-deb -x "$dkms_deb" "$x" 2>/dev/null
check "nbd-dkms: dkms.conf says nbd $version and installs into /updates/dkms" \
	bash -c 'grep -qx "PACKAGE_NAME=\"nbd\"" "$1" &&
		 grep -qx "PACKAGE_VERSION=\"$2\"" "$1" &&
		 grep -qx "DEST_MODULE_LOCATION\[0\]=\"/updates/dkms\"" "$1" &&
		 grep -qx "AUTOINSTALL=\"yes\"" "$1"' _ "$x/$src/dkms.conf" "$version"
check "nbd-dkms: postinst adds and builds it with DKMS, prerm removes it" \
	bash -c 'dpkg-deb --ctrl-tarfile "$1" | tar -xO ./postinst | grep -q "common.postinst" &&
		 dpkg-deb --ctrl-tarfile "$1" | tar -xO ./prerm | grep -q "dkms remove -m \$DKMS_NAME"' \
	_ "$dkms_deb"

# DKMS from the package's files alone, for each kernel with headers.
nk=0
for kdir in /lib/modules/*/build; do
	[ -d "$kdir" ] || continue
	krel=$(basename "$(dirname "$kdir")")
	nk=$((nk + 1))
	dk=$tmp/dkms-$krel
	mkdir -p "$dk"
	if nice dkms build -m nbd -v "$version" -k "$krel" \
		--sourcetree "$x/usr/src" --dkmstree "$dk" \
		--kernelsourcedir "$kdir" >"$dk.log" 2>&1 &&
	   ls "$dk/nbd/$version/$krel"/*/module/nbd.ko* >/dev/null 2>&1; then
		ok "nbd-dkms: dkms build for $krel from the package's files"
	else
		not_ok "nbd-dkms: dkms build for $krel from the package's files" \
			"$(tail -n 3 "$dk.log")" \
			"$(tail -n 15 "$dk/nbd/$version/build/make.log" 2>/dev/null)"
	fi
done
[ $nk -gt 0 ] || echo "ok $((n += 1)) - nbd-dkms: dkms build # SKIP no kernel headers in /lib/modules/*/build"

# --- nbdctl ------------------------------------------------------------
check "nbdctl: /usr/sbin/nbdctl and its manual page" \
	has "$ctl_deb" usr/sbin/nbdctl usr/share/man/man8/nbdctl.8.gz
y=$tmp/x-nbdctl
dpkg-deb -x "$ctl_deb" "$y" 2>/dev/null
check "nbdctl: the packaged binary runs and says $version" \
	bash -c '"$1" --version 2>&1 | grep -qF "$2"' _ "$y/usr/sbin/nbdctl" "$version"
check "nbdctl: the manual page is nbdctl(8)" \
	bash -c 'zcat "$1" | grep -q "^\.TH \"\{0,1\}NBDCTL\"\{0,1\} \"\{0,1\}8"' \
	_ "$y/usr/share/man/man8/nbdctl.8.gz"
check "nbdctl: no Conflicts, Breaks or Replaces, and no nbd-client path" \
	bash -c '[ -z "$(dpkg-deb -f "$1" Conflicts Breaks Replaces)" ] &&
		 ! dpkg-deb -c "$1" | grep -q nbd-client' _ "$ctl_deb"

# --- lintian -----------------------------------------------------------
changes=$(ls "$out"/nbd_"${version}"_*.changes 2>/dev/null | head -n 1)
if [ -z "$changes" ]; then
	not_ok "lintian: no error or warning" "no .changes in $out"
elif lint=$(lintian --fail-on error,warning "$changes" 2>&1); then
	ok "lintian: no error or warning"
else
	not_ok "lintian: no error or warning" "$lint"
fi

# --- the optional files, in a copy of the tree -------------------------
t2=$tmp/tree-extra
copy_tree "$t2"
nd=$t2/tools/nbdctl
[ -e "$nd/systemd/nbdctl@.service" ] || {
	mkdir -p "$nd/systemd"
	printf '%s\n' '# SPDX-License-Identifier: GPL-2.0' '[Unit]' \
		'Description=NBD device %I (nbdctl, from /etc/nbdtab)' \
		'Documentation=man:nbdctl(8)' '' '[Service]' \
		'ExecStart=/usr/sbin/nbdctl connect --persist %I' \
		>"$nd/systemd/nbdctl@.service"
}
[ -e "$nd/nbdtab.example" ] ||
	printf '# SPDX-License-Identifier: GPL-2.0\n# nbd0 nbd://server/export\n' \
		>"$nd/nbdtab.example"
[ -e "$nd/bash-completion/nbdctl" ] || {
	mkdir -p "$nd/bash-completion"
	printf '# SPDX-License-Identifier: GPL-2.0\ncomplete -F _longopt nbdctl\n' \
		>"$nd/bash-completion/nbdctl"
}
if make -s -C "$t2" deb DEB_OUT="$tmp/out-extra" >"$tmp/make-extra.log" 2>&1; then
	ok "make deb with the unit, the nbdtab example and the bash completion"
else
	not_ok "make deb with the unit, the nbdtab example and the bash completion" \
		"$(tail -n 20 "$tmp/make-extra.log")"
fi
check "nbdctl: installs nbdctl@.service, examples/nbdtab, the completion" \
	has "$(ls "$tmp"/out-extra/nbdctl_*.deb 2>/dev/null | head -n 1)" \
	lib/systemd/system/nbdctl@.service \
	usr/share/doc/nbdctl/examples/nbdtab \
	usr/share/bash-completion/completions/nbdctl

# --- a version that disagrees stops the build --------------------------
t3=$tmp/tree-badversion
copy_tree "$t3"
sed -i 's/^PACKAGE_VERSION=.*/PACKAGE_VERSION="0.0.1"/' "$t3/dkms.conf"
if make -s -C "$t3" deb DEB_OUT="$tmp/out-bad" >"$tmp/make-bad.log" 2>&1; then
	not_ok "make deb refuses dkms.conf's 0.0.1 against the changelog's $version" \
		"make deb succeeded"
else
	check "make deb refuses dkms.conf's 0.0.1 against the changelog's $version" \
		grep -q "dkms.conf says version 0.0.1 but debian/changelog says $version" \
		"$tmp/make-bad.log"
fi

echo "# $(($(date +%s) - start)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
