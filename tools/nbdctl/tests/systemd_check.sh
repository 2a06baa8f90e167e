#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host test of what nbdctl installs besides itself (no root, no VM, no
# nbd.ko; nothing outside a temporary directory is written):
#
#   - systemd/nbdctl@.service: make install puts it under a temporary
#     prefix with that prefix's sbin in its commands; systemd-analyze
#     verify passes on an instance of it, without a word (it warns about
#     settings it ignores, such as ordering against a .device), with the
#     installed nbdctl in ExecStart; its key settings are there; its
#     ExecStop disconnects when systemd stops a running nbdctl and not
#     after nbdctl ended on its own ($MAINPID unset);
#   - bash-completion/nbdctl: bash -n, then completions of commands,
#     nbdtab devices for up/down (a temporary nbdtab, through $NBDTAB and
#     --nbdtab), files, and connect's options, which must be exactly those
#     of connect.c and NBD_TLS_LONG_OPTIONS (but the internal --up);
#   - nbdtab.example: every line that is not a comment is an entry for
#     nbdtab.c's parser, no device twice, and every option the parser
#     accepts is described.
#
#   tools/nbdctl/tests/systemd_check.sh
#   NBDCTL=/path/to/nbdctl tools/nbdctl/tests/systemd_check.sh  (no build)
#
# Prints "ok N - ..." / "not ok N - ..." and, last, "N passed, N failed";
# exits 0 only when nothing failed.  A missing tool (systemd-analyze,
# a C compiler) fails its checks, never passes them.
set -u

here=$(cd "$(dirname "$0")" && pwd)
dir=$(dirname "$here")
. "$dir/../testing/tap.sh"

unit=$dir/systemd/nbdctl@.service
comp=$dir/bash-completion/nbdctl
example=$dir/nbdtab.example

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nbdctl-systemd.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

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

# --- the unit, installed by make install ------------------------------
build=$tmp/build
prefix=$tmp/prefix
mkdir -p "$build"
if [ -n "${NBDCTL:-}" ]; then
	check "nbdctl is $NBDCTL" test -x "$NBDCTL" &&
		cp "$NBDCTL" "$build/nbdctl"
elif make -s -C "$dir" O="$build" >"$tmp/make.log" 2>&1; then
	ok "build nbdctl"
else
	not_ok "build nbdctl" "$(tail -n 20 "$tmp/make.log")"
fi
# The manual page needs rst2man, which this test does not: a stand-in.
[ -e "$build/nbdctl.8" ] || : >"$build/nbdctl.8"
inst=$prefix/lib/systemd/system/nbdctl@.service
if [ -x "$build/nbdctl" ] &&
   make -s -C "$dir" -o "$build/nbdctl" -o "$build/nbdctl.8" install \
	O="$build" prefix="$prefix" >"$tmp/install.log" 2>&1; then
	ok "make install prefix=$prefix"
else
	not_ok "make install prefix=$prefix" "$(tail -n 20 "$tmp/install.log")"
fi
check "the installed unit runs \$(sbindir)/nbdctl, else is the same" \
	bash -c 'diff <(sed "s|$3/nbdctl|/usr/sbin/nbdctl|g" "$2") "$1" &&
		 { grep -qx "ExecStart=$3/nbdctl up --foreground %i" "$2" ||
		   { echo "not $3/nbdctl:"; grep "^Exec" "$2"; false; }; }' \
	_ "$unit" "$inst" "$prefix/sbin"

# systemd-analyze verify loads the template for an instance of it
# (--man=no: nbdctl(8) need not be installed on this host).
if ! command -v systemd-analyze >/dev/null; then
	not_ok "systemd-analyze verify nbdctl@nbd0.service" \
		"no systemd-analyze: apt-get install systemd"
elif [ ! -e "$inst" ]; then
	not_ok "systemd-analyze verify nbdctl@nbd0.service" "no installed unit"
elif out=$(cd "$(dirname "$inst")" &&
	   systemd-analyze verify --man=no ./nbdctl@nbd0.service 2>&1) &&
     [ -z "$out" ]; then
	ok "systemd-analyze verify nbdctl@nbd0.service: no error, no warning"
else
	not_ok "systemd-analyze verify nbdctl@nbd0.service: no error, no warning" \
		"$out"
fi

# The settings, as SECTION.KEY=VALUE lines.
settings=$tmp/settings
awk '/^[[:space:]]*(#|;|$)/ { next }
     /^\[/ { s = substr($0, 2, length($0) - 2); next }
     { print s "." $0 }' "$unit" >"$settings"
has_setting() {
	grep -qxF -- "$1" "$settings" || { echo "no line '$1' in $unit"; return 1; }
}
for s in Unit.Requires=modprobe@nbd.service Unit.After=modprobe@nbd.service \
	 Unit.Wants=network-online.target Unit.After=network-online.target \
	 Unit.Wants=remote-fs-pre.target Unit.Before=remote-fs-pre.target \
	 Unit.DefaultDependencies=no Unit.Conflicts=shutdown.target \
	 Unit.Before=shutdown.target \
	 Service.Type=notify Service.NotifyAccess=main \
	 "Service.ExecStart=/usr/sbin/nbdctl up --foreground %i" \
	 Service.Restart=on-failure Service.OOMScoreAdjust=-1000 \
	 Service.KillMode=mixed Install.WantedBy=multi-user.target; do
	check "unit: $s" has_setting "$s"
done

# ExecStop: /bin/sh -c 'SCRIPT' with $$ for the shell's $.  Run SCRIPT
# with the unit's nbdctl replaced by one that logs its arguments.
stop_script=$(sed -n "s/^ExecStop=\/bin\/sh -c '\(.*\)'\$/\1/p" "$unit")
cat >"$tmp/fake-nbdctl" <<EOF
#!/bin/sh
echo "\$*" >>"$tmp/stop.log"
EOF
chmod +x "$tmp/fake-nbdctl"
run_stop() {
	local s=${stop_script//\$\$/\$}

	s=${s//%i/nbd0}
	s=${s//\/usr\/sbin\/nbdctl/$tmp/fake-nbdctl}
	rm -f "$tmp/stop.log"
	if [ -n "$1" ]; then
		MAINPID=$1 sh -c "$s"
	else
		env -u MAINPID sh -c "$s"
	fi
}
stop_running() {
	[ -n "$stop_script" ] || { echo "no ExecStop=/bin/sh -c '...' in $unit"; return 1; }
	run_stop 4242 || return 1
	[ "$(cat "$tmp/stop.log" 2>/dev/null)" = "down nbd0" ] ||
		{ echo "nbdctl ran with '$(cat "$tmp/stop.log" 2>/dev/null)', not 'down nbd0'"; return 1; }
}
stop_exited() {
	[ -n "$stop_script" ] || { echo "no ExecStop=/bin/sh -c '...' in $unit"; return 1; }
	run_stop "" || return 1
	[ ! -e "$tmp/stop.log" ] ||
		{ echo "nbdctl ran with '$(cat "$tmp/stop.log")'"; return 1; }
}
check "unit: ExecStop runs 'nbdctl down %i' while nbdctl runs (\$MAINPID set)" \
	stop_running
check "unit: ExecStop leaves the device when nbdctl has ended (\$MAINPID unset)" \
	stop_exited

# --- bash completion --------------------------------------------------
check "completion: bash -n" bash -n "$comp"

tab=$tmp/nbdtab
printf '%s\n' '# nbd9 commented out' 'nbd0 srv a' '/dev/nbd3 srv b persist' \
	'  nbd12 nbd://srv/c -  # a comment' '' >"$tab"
alt=$tmp/nbdtab.alt
printf 'nbd5 srv e\n' >"$alt"
# complete WORD...: COMPREPLY for the line WORD... (the last one is being
# completed), one a line.
complete_line() {
	NBDTAB=$tab bash -c '. "$1" || exit 1; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()
		_nbdctl; printf "%s\n" "${COMPREPLY[@]}"' _ "$comp" "$@"
}
# expect_completion DESC WANT WORD...: COMPREPLY is WANT (words, sorted).
expect_completion() {
	local desc=$1 want=$2 got

	shift 2
	got=$(complete_line "$@" 2>&1 | sort | paste -sd ' ')
	if [ "$got" = "$want" ]; then
		ok "completion: $desc"
	else
		not_ok "completion: $desc" "line: $*" "got:  '$got'" "want: '$want'"
	fi
}
expect_completion "'nbdctl con' is connect" connect nbdctl con
expect_completion "'nbdctl li' is list, list-exports" "list list-exports" nbdctl li
expect_completion "'nbdctl up n': the nbdtab's devices (\$NBDTAB)" \
	"nbd0 nbd12 nbd3" nbdctl up n
expect_completion "'nbdctl down --nbdtab FILE ': FILE's devices" \
	nbd5 nbdctl down --nbdtab "$alt" ""
expect_completion "'nbdctl up --nbdtab=FILE ': FILE's devices" \
	nbd5 nbdctl up --nbdtab = "$alt" ""
: >"$tmp/psk-key.psk"
expect_completion "'--tls-psk DIR/psk-': files" "$tmp/psk-key.psk" \
	nbdctl connect --tls-psk "$tmp/psk-"
expect_completion "'connect --dead-timeout ': no words for a number" "" \
	nbdctl connect --dead-timeout ""

# connect's long options in connect.c and the TLS ones in nbdctl.h.
src_opts=$({
	sed -n '/^static const struct option connect_options\[\]/,/^};/p' "$dir/connect.c"
	sed -n '/^#define NBD_TLS_LONG_OPTIONS/,/^$/p' "$dir/nbdctl.h"
} | sed -n 's/^[[:space:]]*{ "\([a-z-]*\)",.*/--\1/p' | grep -vx -- --up | sort | paste -sd ' ')
expect_completion "connect's options are connect.c's (${src_opts:+$(wc -w <<<"$src_opts")})" \
	"${src_opts:-none found in connect.c}" nbdctl connect --

# --- nbdtab.example ---------------------------------------------------
cat >"$tmp/lines.c" <<'EOF'
/* Each line of argv[1] through nbdtab_parse_line(): "LINE DEVICE ARGS",
 * "LINE -" for a comment or blank line, "LINE error: ..." for a bad one. */
#include <stdarg.h>
#include <stdio.h>
#include "nbdctl.h"

int nbdctl_verbose;

void nbdctl_err(const char *fmt, ...) { }
void nbdctl_warn(const char *fmt, ...) { }
void nbdctl_info(const char *fmt, ...) { }

int main(int argc, char **argv)
{
	char text[NBDTAB_LINE_MAX + 2], err[1024];
	struct nbdtab_entry e;
	unsigned int line = 0;
	FILE *f = fopen(argv[1], "r");
	int i, ret;

	if (!f)
		return 2;
	while (fgets(text, sizeof(text), f)) {
		ret = nbdtab_parse_line(text, "nbdtab.example", ++line, &e,
					err, sizeof(err));
		if (ret < 0) {
			printf("%u error: %s\n", line, err);
		} else if (ret > 0) {
			printf("%u -\n", line);
		} else {
			printf("%u %s", line, e.device);
			for (i = 1; i < e.argc; i++)
				printf(" %s", e.argv[i]);
			printf("\n");
			nbdtab_entry_free(&e);
		}
	}
	return 0;
}
EOF
parsed=$tmp/parsed
if ! command -v "${CC:-gcc}" >/dev/null; then
	not_ok "nbdtab.example: a parser from nbdtab.c" "no ${CC:-gcc}"
elif "${CC:-gcc}" -D_GNU_SOURCE -Wall -I"$dir" -o "$tmp/lines" \
	"$tmp/lines.c" "$dir/nbdtab.c" >"$tmp/cc.log" 2>&1 &&
     "$tmp/lines" "$example" >"$parsed" 2>&1; then
	ok "nbdtab.example: a parser from nbdtab.c"
else
	not_ok "nbdtab.example: a parser from nbdtab.c" "$(cat "$tmp/cc.log" "$parsed" 2>/dev/null)"
fi
entries_ok() {
	local want got

	[ -s "$parsed" ] || { echo "nothing parsed"; return 1; }
	! grep ' error: ' "$parsed" || return 1
	want=$(grep -cEv '^[[:space:]]*(#|$)' "$example")
	got=$(grep -cv ' -$' "$parsed")
	[ "$want" -gt 0 ] || { echo "no entry in $example"; return 1; }
	[ "$got" = "$want" ] ||
		{ echo "$want lines that are not comments, $got entries"; return 1; }
}
check "nbdtab.example: every line that is not a comment is an entry" entries_ok
check "nbdtab.example: no device twice" \
	bash -c '! grep -v -e " -$" -e " error: " "$1" | awk "{ print \$2 }" |
		 sort | uniq -d | grep .' \
	_ "$parsed"
described() {
	local o missing=()

	for o in $(sed -n 's/.*{ \.name = "\([a-z_]*\)", \.kind = TAB_[A-Z]*\(,\|[[:space:]]\).*/\1/p' \
		   "$dir/nbdtab.c" | grep -vx sdp); do
		grep -qE "^#[[:space:]]+([a-z_]+, )*$o([=,[:space:]]|$)" "$example" ||
			missing+=("$o")
	done
	[ ${#missing[@]} -eq 0 ] || { echo "not described: ${missing[*]}"; return 1; }
}
check "nbdtab.example: describes every option nbdtab.c accepts" described

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
