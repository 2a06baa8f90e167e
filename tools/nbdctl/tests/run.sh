#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host tests for nbdctl's userspace side: URIs, the handshake, and the
# info / list-exports commands against nbdkit, nbd-server, qemu-nbd and a
# scripted misbehaving server (fake_server.py).  No root, no VM, no nbd.ko.
#
#   tools/nbdctl/tests/run.sh
#   NBDCTL=/path/to/nbdctl tools/nbdctl/tests/run.sh   (skip building nbdctl)
#
# Builds with SANITIZE=1, so any AddressSanitizer / UBSan / leak report
# fails the check it happens in.  Prints "ok N - ..." / "not ok N - ..."
# and, last, "N passed, M failed"; exits 0 only when nothing failed.  A
# check whose tool is missing counts as failed, never as passed.

set -u

here=$(cd "$(dirname "$0")" && pwd)
dir=$(dirname "$here")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nbdctl-test.XXXXXX") || exit 1
fake="$here/fake_server.py"

pids=()
pidfiles=()
# The sanitizer build goes to a directory of its own (make O=), so the
# tree's plain build is never touched.
build=$tmp/build
. "$dir/../testing/tap.sh"

cleanup()
{
	local p f

	for f in "${pidfiles[@]}"; do
		[ -s "$f" ] && pids+=("$(cat "$f")")
	done
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# run ARGS...: nbdctl's stdout/stderr in $tmp/out, $tmp/err; status in $rc.
run()
{
	"$NBDCTL" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
}

# expect DESC RC [o:TEXT | e:TEXT | !o:TEXT]...: check the last run().
# o: stdout has TEXT (fixed string), e: stderr has it, !o: stdout lacks it.
expect()
{
	local desc=$1 want=$2 check why=""

	shift 2
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
		"$tmp/out" "$tmp/err"; then
		why="sanitizer report"
	elif [ "$rc" != "$want" ]; then
		why="exit status $rc, expected $want"
	fi
	for check in "$@"; do
		[ -n "$why" ] && break
		case $check in
		o:*)	grep -qF -- "${check#o:}" "$tmp/out" ||
				why="stdout lacks \"${check#o:}\"" ;;
		e:*)	grep -qF -- "${check#e:}" "$tmp/err" ||
				why="stderr lacks \"${check#e:}\"" ;;
		'!o:'*)	grep -qF -- "${check#!o:}" "$tmp/out" &&
				why="stdout has \"${check#!o:}\"" ;;
		esac
	done
	if [ -z "$why" ]; then
		ok "$desc"
	else
		not_ok "$desc" "$why" "stdout: $(cat "$tmp/out")" \
			"stderr: $(cat "$tmp/err")"
	fi
}

# expect_json DESC PYTHON-EXPR: stdout parses, and EXPR (on j) is true.
expect_json()
{
	local desc=$1 expr=$2 why=""

	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
		"$tmp/out" "$tmp/err"; then
		why="sanitizer report"
	elif [ "$rc" != 0 ]; then
		why="exit status $rc"
	elif ! python3 -m json.tool "$tmp/out" >/dev/null 2>"$tmp/jerr"; then
		why="not JSON: $(cat "$tmp/jerr")"
	elif ! python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if ('"$expr"') else 1)' "$tmp/out" 2>"$tmp/jerr"; then
		why="JSON check failed: $expr $(cat "$tmp/jerr")"
	fi
	if [ -z "$why" ]; then
		ok "$desc"
	else
		not_ok "$desc" "$why" "stdout: $(cat "$tmp/out")" \
			"stderr: $(cat "$tmp/err")"
	fi
}

# need TOOL...: true if all are installed; else one failed check.
need()
{
	local t

	for t in "$@"; do
		if ! command -v "$t" >/dev/null; then
			not_ok "$t is installed (needed for the next checks)"
			return 1
		fi
	done
	return 0
}

free_port()
{
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# wait_for_socket PATH PID: the UNIX socket appears while PID lives.
wait_for_socket()
{
	for _ in $(seq 100); do
		[ -S "$1" ] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# wait_for_port PORT: something listens on 127.0.0.1:PORT (no connection
# is made: nbd-server would log it as a failed session).
wait_for_port()
{
	local hex

	hex=$(printf '%04X' "$1")
	for _ in $(seq 100); do
		grep -q "^ *[0-9]*: 0100007F:$hex 00000000:0000 0A" \
			/proc/net/tcp 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# start_nbdkit SOCKET ARGS...: nbdkit in the foreground on a UNIX socket.
start_nbdkit()
{
	local sock=$1

	shift
	nbdkit -f -U "$sock" "$@" >>"$tmp/nbdkit.log" 2>&1 &
	server_pid=$!
	pids+=("$server_pid")
	wait_for_socket "$sock" "$server_pid"
}

stop()
{
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# ------------------------------------------------------------------ build

if [ -z "${NBDCTL:-}" ]; then
	if make -C "$dir" O="$build" SANITIZE=1 all tests \
		>"$tmp/build.log" 2>&1; then
		ok "build nbdctl and its unit tests with SANITIZE=1"
	else
		not_ok "build nbdctl and its unit tests with SANITIZE=1" \
			"$(tail -n 20 "$tmp/build.log")"
		echo "$passed passed, $failed failed"
		exit 1
	fi
	NBDCTL=$build/nbdctl
else
	if make -C "$dir" O="$build" SANITIZE=1 tests \
		>"$tmp/build.log" 2>&1; then
		ok "build the unit tests with SANITIZE=1 (nbdctl: $NBDCTL)"
	else
		not_ok "build the unit tests with SANITIZE=1" \
			"$(tail -n 20 "$tmp/build.log")"
	fi
fi
if [ ! -x "$NBDCTL" ]; then
	not_ok "nbdctl binary $NBDCTL exists"
	echo "$passed passed, $failed failed"
	exit 1
fi
if grep -qE 'warning:' "$tmp/build.log"; then
	not_ok "the build has no compiler warnings" \
		"$(grep -E 'warning:' "$tmp/build.log")"
else
	ok "the build has no compiler warnings"
fi

# ------------------------------------------------------- unit tests

for t in uri_test nbdtab_test compat_test; do
	if [ ! -x "$build/tests/$t" ]; then
		not_ok "tests/$t was built"
		continue
	fi
	"$build/tests/$t" >"$tmp/$t.log" 2>&1
	urc=$?
	if [ $urc = 0 ] && ! grep -q '^not ok' "$tmp/$t.log"; then
		ok "tests/$t ($(grep -c '^ok' "$tmp/$t.log") cases)"
	else
		not_ok "tests/$t (exit $urc)" \
			"$(grep -A2 '^not ok' "$tmp/$t.log")" \
			"$(tail -n 5 "$tmp/$t.log")"
	fi
done

# ---------------------------------------------------------- command line

run info --bogus-option
expect "info: unknown option exits 2" 2 "e:unknown option '--bogus-option'"
run info -q nbd://localhost/
expect "info: unknown short option exits 2" 2 "e:unknown option '-q'"
run info
expect "info: missing target exits 2" 2 "e:no server given"
run list-exports
expect "list-exports: missing target exits 2" 2 "e:no server given"
run info nbd://localhost/x --tls-psk k --cacert c
expect "info: --tls-psk with --cacert exits 2" 2 "e:cannot be combined with certificates"
run info nbds://localhost/x --cert c
expect "info: --cert without --key exits 2" 2 "e:--cert needs --key too"
run info nbd://localhost/x --tls-username u
expect "info: --tls-username without TLS exits 2" 2 "e:need TLS"
run info nbds://localhost/x --tls-username u --cacert c
expect "info: --tls-username without --tls-psk exits 2" 2 "e:it needs --tls-psk"
run connect "nbds+unix:///?socket=$tmp/none"
expect "connect: TLS over a UNIX socket exits 2" 2 "e:kernel TLS works on TCP sockets only"
# up, down, persist, check, wait, connect DEVICE: what needs no kernel
cat >"$tmp/tab" <<EOF
# a comment
nbd0 server.example disk bs=4096,conns=2,persist
nbd1 /run/x.sock - unix,noauto
nbd2 nbd://h:10810/e - timeout=30,swap
EOF
printf 'nbd0 host exp bs=4096\nnbd1 host\n' >"$tmp/badtab"
run up --dry-run --all --nbdtab "$tmp/tab"
expect "up --dry-run --all: each line's connect, noauto skipped" 0 \
	"o:server.example --name disk nbd0" "o:--block-size 4096" \
	"o:nbd://h:10810/e nbd2" "o:--swap" '!o:x.sock'
run up -n --nbdtab "$tmp/tab" nbd1
expect "up --dry-run nbd1: a noauto line named is brought up" 0 \
	"o:--unix /run/x.sock --name '' nbd1"
run up -n --nbdtab "$tmp/tab" nbd5
expect "up nbd5, not in the table: exits 2" 2 "e:has no line for nbd5"
run up -n --nbdtab "$tmp/badtab" --all
expect "up --all with a bad line: exits 2, names the line" 2 "e:badtab line 2"
run up --foreground --all --nbdtab "$tmp/tab"
expect "up --foreground --all: exits 2" 2 "e:takes one device"
run up
expect "up without a device: exits 2" 2 "e:give devices"
run connect --nbdtab "$tmp/none" nbd0
expect "connect nbd0 without a table: exits 2, says so" 2 "e:cannot read $tmp/none"
run connect --nbdtab "$tmp/tab" nbd7
expect "connect nbd7, not in the table: exits 2" 2 "e:has no line for nbd7"
run check nbd12345
expect "check on a device that does not exist: exits 1, silent" 1 '!o:1'
run check /tmp/x
expect "check on a non-device: exits 2" 2 "e:is not an nbd device"
run wait --timeout x nbd0
expect "wait --timeout x: exits 2" 2 "e:--timeout must be a number"
run wait nbd0 nbd1
expect "wait on two devices: exits 2" 2 "e:give one device"
run down
expect "down without a device: exits 2" 2 "e:give devices"
run persist --help
expect "persist --help: exits 0" 0 "o:usage: nbdctl persist DEVICE"
run connect --adopt nbd://localhost/
expect "connect --adopt without a device: exits 2" 2 "e:which device"

run info "http://localhost/"
expect "info: unknown URI scheme exits 2" 2 "e:unknown URI scheme"
run info "nbd+unix:///x"
expect "info: unix URI without socket= exits 2" 2 "e:socket=PATH"
run info "nbd://host:0/"
expect "info: port 0 exits 2" 2 "e:bad port"
run info --timeout abc localhost
expect "info: bad --timeout exits 2" 2 "e:bad --timeout value"
run info --timeout
expect "info: --timeout without a value exits 2" 2 "e:needs an argument"
run info a b c
expect "info: too many arguments exits 2" 2 "e:too many arguments"
run info nbd://localhost/ extra
expect "info: argument after the URI exits 2" 2 "e:unexpected argument"
run info --unix "$tmp/x" localhost
expect "info: --unix with a host exits 2" 2 "e:cannot be combined"
run list-exports -N foo localhost
expect "list-exports: --name is not an option" 2 "e:unknown option '-N'"
run info --help
expect "info --help exits 0" 0 "o:usage: nbdctl info"
run list-exports -h
expect "list-exports -h exits 0" 0 "o:usage: nbdctl list-exports"

# -------------------------------------------------------- unreachable

run info --unix "$tmp/no-such.sock"
expect "info: missing UNIX socket exits 3" 3 \
	"e:cannot connect to $tmp/no-such.sock: No such file or directory"
long=$tmp/$(printf 'x%.0s' $(seq 120))
run info --unix "$long"
expect "info: over-long socket path exits 3" 3 "e:is too long"
port=$(free_port)
run info "nbd://127.0.0.1:$port/"
expect "info: refused TCP connection exits 3" 3 \
	"e:cannot connect to 127.0.0.1:$port: Connection refused"
run list-exports 127.0.0.1 "$port"
expect "list-exports: refused TCP connection exits 3" 3 \
	"e:cannot connect to 127.0.0.1:$port: Connection refused"

# ---------------------------------------------------------------- nbdkit

if need nbdkit; then
	sock=$tmp/nbdkit-mem.sock
	if start_nbdkit "$sock" memory 1G; then
		run info "nbd+unix:///?socket=$sock"
		expect "nbdkit memory: info" 0 \
			"o:export: (default)" \
			"o:size: 1073741824 bytes (1.0 GiB)" \
			"o:read-only: no" "o:multi-conn: yes" \
			"o:CAN_MULTI_CONN" "o:flags: 0x" \
			"o:negotiated with: NBD_OPT_INFO"
		run info --json --unix "$sock"
		expect_json "nbdkit memory: info --json" \
			'j["size"] == 1 << 30 and j["multi_conn"] is True and j["read_only"] is False and "CAN_MULTI_CONN" in j["flag_names"] and j["flags"] & 0x100 and j["export"] == "" and j["negotiated_with"] == "NBD_OPT_INFO"'
		run list-exports --unix "$sock"
		expect "nbdkit memory: list-exports" 0
		run list-exports --json --unix "$sock"
		expect_json "nbdkit memory: list-exports --json" \
			'isinstance(j, list) and all("name" in e and "description" in e for e in j)'
		stop "$server_pid"
	else
		not_ok "nbdkit memory 1G starts" "$(tail -n 5 "$tmp/nbdkit.log")"
	fi

	sock=$tmp/nbdkit-ro.sock
	if start_nbdkit "$sock" -r pattern 1M; then
		run info --unix "$sock"
		expect "nbdkit -r pattern: read-only" 0 \
			"o:size: 1048576 bytes (1.0 MiB)" "o:read-only: yes" \
			"o:READ_ONLY"
		stop "$server_pid"
	else
		not_ok "nbdkit -r pattern 1M starts"
	fi

	sock=$tmp/nbdkit-bs.sock
	if start_nbdkit "$sock" --filter=blocksize-policy memory 64M \
		blocksize-minimum=4096 blocksize-preferred=65536 \
		blocksize-maximum=1048576; then
		run info --unix "$sock"
		expect "nbdkit blocksize-policy: block sizes" 0 \
			"o:block size: minimum 4096, preferred 65536, maximum 1048576"
		run info --json --unix "$sock"
		expect_json "nbdkit blocksize-policy: block sizes in JSON" \
			'j["block_size"] == {"minimum": 4096, "preferred": 65536, "maximum": 1048576}'
		stop "$server_pid"
	else
		not_ok "nbdkit blocksize-policy starts"
	fi

	# SEND_CACHE (bit 10) without CAN_MULTI_CONN (bit 8): the two must
	# not be confused.
	sock=$tmp/nbdkit-mc.sock
	if start_nbdkit "$sock" --filter=multi-conn memory 64M \
		multi-conn-mode=disable; then
		run info --unix "$sock"
		expect "nbdkit multi-conn-mode=disable: multi-conn: no" 0 \
			"o:multi-conn: no" "o:SEND_CACHE" "!o:CAN_MULTI_CONN"
		run info --json --unix "$sock"
		expect_json "nbdkit multi-conn-mode=disable: JSON" \
			'j["multi_conn"] is False and not j["flags"] & 0x100 and j["flags"] & 0x400 and "SEND_CACHE" in j["flag_names"]'
		stop "$server_pid"
	else
		not_ok "nbdkit multi-conn filter starts"
	fi

	# nbdkit 1.32 has no --export-description; the exportname filter
	# sets one.
	sock=$tmp/nbdkit-desc.sock
	if start_nbdkit "$sock" --filter=exportname memory 16M \
		exportname-list=explicit exportname=disk1 \
		"exportdesc=fixed:scratch disk \"one\""; then
		run info "nbd+unix:///disk1?socket=$sock"
		expect "nbdkit exportname filter: description" 0 \
			"o:export: disk1" "o:description: scratch disk \"one\""
		run info --json --unix "$sock" -N disk1
		expect_json "nbdkit exportname filter: description in JSON" \
			'j["description"] == "scratch disk \"one\"" and j["export"] == "disk1"'
		run list-exports --unix "$sock"
		expect "nbdkit exportname filter: list-exports" 0 \
			"o:$(printf 'disk1\tscratch disk "one"')"
		run list-exports --json --unix "$sock"
		expect_json "nbdkit exportname filter: list-exports --json" \
			'j == [{"name": "disk1", "description": "scratch disk \"one\""}]'
		stop "$server_pid"
	else
		not_ok "nbdkit exportname filter starts"
	fi

	port=$(free_port)
	nbdkit -f -i 127.0.0.1 -p "$port" memory 16M \
		>>"$tmp/nbdkit.log" 2>&1 &
	server_pid=$!
	pids+=("$server_pid")
	if wait_for_port "$port"; then
		run info "nbd://127.0.0.1:$port/"
		expect "nbdkit over TCP: info nbd://127.0.0.1:PORT/" 0 \
			"o:size: 16777216 bytes (16.0 MiB)"
		run info 127.0.0.1 "$port"
		expect "nbdkit over TCP: info HOST PORT" 0 \
			"o:size: 16777216 bytes (16.0 MiB)"
		run list-exports "nbd://127.0.0.1:$port"
		expect "nbdkit over TCP: list-exports" 0
		stop "$server_pid"
	else
		not_ok "nbdkit listens on 127.0.0.1:$port"
	fi
fi

# ------------------------------------------------------------ nbd-server

if need nbd-server; then
	port=$(free_port)
	truncate -s 8M "$tmp/disk1.img"
	truncate -s 4M "$tmp/disk2.img"
	truncate -s 1M "$tmp/small.img"
	cat >"$tmp/nbd-server.conf" <<-EOF
	[generic]
	    listenaddr = 127.0.0.1
	    port = $port
	    allowlist = true
	[disk1]
	    exportname = $tmp/disk1.img
	[disk2]
	    exportname = $tmp/disk2.img
	    readonly = true
	[small]
	    exportname = $tmp/small.img
	EOF
	# It daemonizes; the pid file is how it is stopped.
	pidfiles+=("$tmp/nbd-server.pid")
	if nbd-server -C "$tmp/nbd-server.conf" -p "$tmp/nbd-server.pid" \
		>"$tmp/nbd-server.log" 2>&1 && wait_for_port "$port"; then
		run info -N disk1 127.0.0.1 "$port"
		expect "nbd-server: info disk1" 0 "o:export: disk1" \
			"o:size: 8388608 bytes (8.0 MiB)" "o:read-only: no"
		run info "nbd://127.0.0.1:$port/disk2"
		expect "nbd-server: info disk2 (readonly)" 0 \
			"o:export: disk2" "o:size: 4194304 bytes (4.0 MiB)" \
			"o:read-only: yes"
		run info --json "nbd://127.0.0.1:$port/small"
		expect_json "nbd-server: info --json small" \
			'j["size"] == 1 << 20 and j["export"] == "small"'
		run list-exports 127.0.0.1 "$port"
		expect "nbd-server: list-exports shows all three" 0 \
			"o:disk1" "o:disk2" "o:small"
		run list-exports --json "nbd://127.0.0.1:$port/"
		expect_json "nbd-server: list-exports --json" \
			'sorted(e["name"] for e in j) == ["disk1", "disk2", "small"]'
		run info "nbd://127.0.0.1:$port/nope"
		expect "nbd-server: unknown export exits 3" 3 \
			'e:the server has no export "nope"'
	else
		not_ok "nbd-server starts on 127.0.0.1:$port" \
			"$(cat "$tmp/nbd-server.log")"
	fi
fi

# -------------------------------------------------------------- qemu-nbd

if need qemu-nbd qemu-img; then
	sock=$tmp/qemu.sock
	qemu-img create -q -f qcow2 "$tmp/q.qcow2" 32M
	qemu-nbd -k "$sock" -t -f qcow2 -x qdisk "$tmp/q.qcow2" \
		>"$tmp/qemu-nbd.log" 2>&1 &
	server_pid=$!
	pids+=("$server_pid")
	if wait_for_socket "$sock" "$server_pid"; then
		run info "nbd+unix:///qdisk?socket=$sock"
		expect "qemu-nbd: info qdisk" 0 "o:export: qdisk" \
			"o:size: 33554432 bytes (32.0 MiB)" \
			"o:block size: minimum " "o:multi-conn: no"
		run info --json -N qdisk --unix "$sock"
		expect_json "qemu-nbd: info --json" \
			'j["size"] == 32 << 20 and j["block_size"] is not None'
		run list-exports --unix "$sock"
		expect "qemu-nbd: list-exports" 0 "o:qdisk"
		run info --unix "$sock"
		expect "qemu-nbd: default export does not exist, exits 3" 3 \
			'e:the server has no export ""'
		stop "$server_pid"
	else
		not_ok "qemu-nbd starts" "$(cat "$tmp/qemu-nbd.log")"
	fi
fi

# --------------------------------------------------------- fake server

# fake MODE RC TEXT [COMMAND [ARGS]]: run COMMAND (info) against the fake
# server in MODE; expect exit RC and TEXT on stderr (RC 3) or stdout (0).
# The fake server must also be satisfied with the client.
fake()
{
	local mode=$1 want=$2 text=$3 cmd=${4:-info} fsock spid srv where

	shift 4 2>/dev/null || shift $#
	fsock=$tmp/fake-$mode-$cmd.sock
	python3 "$fake" --mode "$mode" --timeout 15 "$fsock" \
		>"$tmp/fake.log" 2>&1 &
	spid=$!
	pids+=("$spid")
	if ! wait_for_socket "$fsock" "$spid"; then
		not_ok "fake server $mode starts" "$(cat "$tmp/fake.log")"
		return
	fi
	run "$cmd" --timeout 2 --unix "$fsock" "$@"
	wait "$spid"
	srv=$?
	where=e
	[ "$want" = 0 ] && where=o
	if [ "$srv" != 0 ]; then
		not_ok "fake $mode: $cmd (the fake server objects)" \
			"$(cat "$tmp/fake.log")" "stderr: $(cat "$tmp/err")"
		return
	fi
	expect "fake $mode: $cmd exits $want, says \"$text\"" "$want" \
		"$where:$text"
}

if need python3; then
	fake good 0 "export: canonical"
	run_desc=$(grep '^description: ' "$tmp/out")
	if [ "$run_desc" = 'description: fake "disk"\ ?[31mred?' ]; then
		ok "fake good: control characters in the description are neutralised"
	else
		not_ok "fake good: control characters in the description are neutralised" \
			"got: $run_desc"
	fi
	fake good 0 "block size: minimum 512, preferred 4096, maximum 1048576"
	fake good 0 '"description": "fake \"disk\"\\ \u001b[31mred\ufffd"' \
		info --json
	fake good 0 "$(printf 'two\tsecond export')" list-exports
	fake good 0 '"name": ""' list-exports --json
	fake oldstyle 3 "the server speaks the oldstyle protocol, which is not supported"
	fake garbage 3 "not an NBD server (got bytes 48 54 54 50"
	fake truncated-greeting 3 "the server closed the connection during the handshake"
	fake no-fixed-newstyle 3 "fixed newstyle"
	fake bad-reply-magic 3 "bad magic number"
	fake option-mismatch 3 "answered NBD_OPT_INFO with a reply to option 3"
	fake huge-reply 3 "the server sent an oversized reply (4294967295 bytes)"
	fake truncated-info 3 "the server closed the connection during the handshake"
	fake short-info 3 "too short to hold an info type"
	fake info-export-bad-length 3 "NBD_INFO_EXPORT with a length of 11 bytes"
	fake bad-block-size 3 "invalid block sizes (minimum 3,"
	fake bad-block-size-max 3 "the maximum must be at least the preferred size"
	fake no-export-info 3 "without sending the export size"
	fake unknown-export 3 "the server has no export \"nosuch\" (the server says: export 'nosuch' not found here)" \
		info -N nosuch
	fake tls-required 3 "the server requires TLS: use an nbds:// URI or --tls, with --tls-certificates, --cacert or --tls-psk (the server says: start TLS first)"
	fake policy 3 "(the server says: go away)"
	fake policy 3 "the server does not allow listing exports" list-exports
	fake unknown-error 3 "unknown error 42"
	fake hostile-message 3 "(the server says: ?[2J?]0;pwned?bad??AAAA"
	fake go-unsupported 0 "negotiated with: NBD_OPT_EXPORT_NAME"
	fake go-unsupported 0 '"negotiated_with": "NBD_OPT_EXPORT_NAME"' \
		info --json
	fake go-unsupported-zeroes 0 "size: 1048576 bytes (1.0 MiB)"
	fake info-size-zero 0 "size: 1048576 bytes (1.0 MiB)"
	fake close-mid-reply 3 "the server closed the connection during the handshake"
	fake silence 3 "the server did not answer within 2 s"
	fake list-bad-namelen 3 "export name length of 100 bytes in a reply of 9 bytes" \
		list-exports
	fake garbage 3 "not an NBD server" list-exports
fi

# ------------------------------------------------------------------- TLS
# The TLS handshake and the options over TLS, against nbdkit (no kernel:
# connect's kernel TLS step runs in the VM tests, nbd_tls).

# tls_pki DIR: a CA, a server certificate for localhost and 127.0.0.1, a
# client one (nbdkit's layout), another CA in DIR/other, PSK files.
tls_pki()
{
	local d=$1 c

	for c in "$d" "$d/other"; do
		mkdir -p "$c" &&
		printf 'cn = test CA\nca\ncert_signing_key\nexpiration_days = 2\n' >"$c/ca.tmpl" &&
		printf 'cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nexpiration_days = 2\n' >"$c/srv.tmpl" &&
		printf 'cn = client\ntls_www_client\nexpiration_days = 2\n' >"$c/cli.tmpl" &&
		certtool --generate-privkey --key-type=ecdsa --outfile "$c/ca-key.pem" &&
		certtool --generate-self-signed --load-privkey "$c/ca-key.pem" --template "$c/ca.tmpl" --outfile "$c/ca-cert.pem" &&
		certtool --generate-privkey --key-type=ecdsa --outfile "$c/server-key.pem" &&
		certtool --generate-certificate --load-privkey "$c/server-key.pem" --load-ca-certificate "$c/ca-cert.pem" --load-ca-privkey "$c/ca-key.pem" --template "$c/srv.tmpl" --outfile "$c/server-cert.pem" &&
		certtool --generate-privkey --key-type=ecdsa --outfile "$c/client-key.pem" &&
		certtool --generate-certificate --load-privkey "$c/client-key.pem" --load-ca-certificate "$c/ca-cert.pem" --load-ca-privkey "$c/ca-key.pem" --template "$c/cli.tmpl" --outfile "$c/client-cert.pem" ||
		return 1
	done
	psktool -u alice -p "$d/keys.psk" && psktool -u alice -p "$d/other.psk" &&
		printf 'this is not a key\n' >"$d/bad.psk"
}

if need nbdkit certtool psktool; then
	pki=$tmp/pki
	if tls_pki "$pki" >"$tmp/pki.log" 2>&1; then
		ok "TLS: certificates and PSK files made with certtool and psktool"
	else
		not_ok "TLS: certificates and PSK files made" "$(tail -n 5 "$tmp/pki.log")"
	fi
	xport=$(free_port)
	nbdkit -f -i 127.0.0.1 -p "$xport" --tls=require --tls-certificates="$pki" \
		memory 1M >>"$tmp/nbdkit.log" 2>&1 &
	pids+=("$!")
	pport=$(free_port)
	nbdkit -f -i 127.0.0.1 -p "$pport" --tls=require --tls-psk="$pki/keys.psk" \
		memory 1M >>"$tmp/nbdkit.log" 2>&1 &
	pids+=("$!")
	nport=$(free_port)
	nbdkit -f -i 127.0.0.1 -p "$nport" memory 1M >>"$tmp/nbdkit.log" 2>&1 &
	pids+=("$!")
	tsock=$tmp/tls.sock
	start_nbdkit "$tsock" --tls=require --tls-certificates="$pki" memory 1M
	wait_for_port "$xport" && wait_for_port "$pport" && wait_for_port "$nport"

	run info "nbds://127.0.0.1:$xport/" --tls-certificates "$pki"
	expect "TLS: info over X.509" 0 "o:tls: TLS1.3, " "o:X.509 (verified by the CA in $pki/ca-cert.pem for 127.0.0.1)"
	run info "nbds://localhost:$xport/" --cacert "$pki/ca-cert.pem" --json
	expect "TLS: info --json, host name localhost" 0 'o:"tls": "TLS1.3, ' "o:for localhost)"
	run list-exports "nbds://127.0.0.1:$xport/" --tls-certificates "$pki"
	expect "TLS: list-exports over TLS" 0 "o:(default)"
	run info "nbds://127.0.0.1:$xport/?tls-certificates=$pki"
	expect "TLS: tls-certificates= in the URI" 0 "o:tls: TLS1.3"
	run info "nbds+unix:///?socket=$tsock" --tls-certificates "$pki"
	expect "TLS: info over a UNIX socket (chain checked, no host name)" 0 "o:tls: TLS1.3"
	run info "nbds://127.0.0.1:$xport/" --cacert "$pki/other/ca-cert.pem"
	expect "TLS: another CA refused" 3 "e:not trusted by the CA in $pki/other/ca-cert.pem" \
		'e:the certificate is "CN=localhost", issued by "CN=test CA"'
	run info "nbds://127.0.0.1:$xport/?tls-verify-peer=false" --cacert "$pki/other/ca-cert.pem"
	expect "TLS: tls-verify-peer=false in the URI skips the check" 0 "o:not verified: --tls-insecure"
	run info "nbds://127.0.0.1:$xport/" --tls-certificates "$pki" --tls-hostname nbd.example.org
	expect "TLS: another host name refused" 3 'e:not for the host name "nbd.example.org"'
	run info "nbds://127.0.0.1:$xport/" --cacert "$tmp/none.pem"
	expect "TLS: a missing CA file" 3 "e:cannot read the CA certificate $tmp/none.pem"
	run info "nbds://127.0.0.1:$xport/" --tls-certificates "$tmp"
	expect "TLS: a certificate directory without ca-cert.pem" 3 "e:has no ca-cert.pem"
	run info "nbd://127.0.0.1:$xport/"
	expect "TLS: required by the server, not asked for" 3 "e:the server requires TLS: use an nbds:// URI or --tls"
	run info "nbd://127.0.0.1:$nport/" --tls --tls-insecure
	expect "TLS: --tls against a plaintext server" 3 "e:the server does not offer TLS"
	run info "nbds://127.0.0.1:$pport/" --tls-psk "$pki/keys.psk"
	expect "TLS: info over PSK" 0 'o:PSK identity "alice"'
	run info "nbds://127.0.0.1:$pport/" --tls-psk "$pki/other.psk"
	expect "TLS: a wrong PSK refused" 3 'e:it does not know the PSK identity "alice", or its key for it is not the one in'
	run info "nbds://127.0.0.1:$pport/" --tls-psk "$pki/keys.psk" --tls-username bob
	expect "TLS: a PSK user the file lacks" 3 'e:has no key for the user name "bob"'
	run info "nbds://127.0.0.1:$pport/" --tls-psk "$pki/bad.psk"
	expect "TLS: a PSK file not in psktool's format" 3 "e:line 1 of the PSK file"
	run info "nbds://127.0.0.1:$xport/" --tls-certificates "$pki" --tls-priority "NORMAL:+BOGUS"
	expect "TLS: a bad priority string" 3 'e:bad --tls-priority'
	run info "nbds://127.0.0.1:$xport/" --tls-certificates "$pki" \
		--tls-priority "NORMAL:-VERS-ALL:+VERS-TLS1.2"
	expect "TLS: TLS 1.2 through --tls-priority" 0 "o:tls: TLS1.2, "
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
