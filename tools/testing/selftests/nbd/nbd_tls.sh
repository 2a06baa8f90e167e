#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# TLS in the kernel's data path: nbdctl does NBD_OPT_STARTTLS and the
# GnuTLS handshake, then hands the socket to nbd.ko with the session's
# keys in kernel TLS.  Certificates and keys are made here with certtool
# and psktool.
#  1. nbdkit --tls=require, X.509: connect nbds://, the kernel's socket is
#     kTLS (debugfs), fio verify, mkfs.ext4 + mount + a file round trip;
#     two connections, each its own handshake;
#  2. nbdkit with PSK; TLS 1.2 forced with --tls-priority;
#  3. qemu-nbd with tls-creds-x509 and nbd-server 3.24 with its TLS
#     options, two connections asked for: fio verify, mkfs + mount;
#  4. refusals, each with its message and exit code and nothing attached:
#     another CA, another host name, an expired certificate, a wrong PSK,
#     a TLS server without --tls, --tls against a plaintext server, TLS
#     over a UNIX socket, and a cipher kernel TLS does not implement;
#  5. --persist over TLS: the server killed and restarted during fio
#     verify, zero errors;
#  6. a hostile TLS peer (nbd_tls_peer) that sends, mid-session, an alert,
#     a close_notify, a KeyUpdate, a record of an unknown type, an alert
#     in the middle of a read's data, or bytes that fail authentication:
#     the kernel names it and closes the connection, --persist reconnects
#     and fio verify finds every byte (NBD_TLS_MODES picks the modes).
# With the stock module (NBD_STOCK=1) nbdctl must warn, data must still
# flow (kTLS data records are plain recvmsg to it), and part 6 records
# what the stock module does instead of checking ours.
#
# Environment: NBDCTL; NBD_TLS_MB (fio's size, default 16); NBD_TLS_SHORT=1
# leaves out what runs no other kernel path (the file system, PSK, TLS
# 1.2, qemu-nbd, nbd-server, the refusals, the server restart: the
# hostile peers' reconnects take the same path) for the slow debug kernel.

source "$(dirname "$0")/lib.sh"

DEV=/dev/nbd0
STOCK=${NBD_STOCK:-0}
DBG=/sys/kernel/debug/nbd/${DEV##*/}
MB=${NBD_TLS_MB:-16}
SHORT=${NBD_TLS_SHORT:-0}
read -r -a MODES <<<"${NBD_TLS_MODES-alert close-notify keyupdate unknown-type alert-mid-reply garbage}"

nbd_test_init
ktap_plan $((47 + 3 * ${#MODES[@]}))
ktap_info "module: $(nbd_module_desc)"
require_cmds nbdkit qemu-nbd nbd-server fio mkfs.ext4 certtool psktool md5sum
require_nbdctl

mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
MNT=$NBD_TMP/mnt
PKI=$NBD_TMP/pki
mkdir -p "$MNT"
at_exit "mountpoint -q '$MNT' && umount '$MNT'"

# ---------------------------------------------------------------------------
# Certificates: a CA, a server certificate for localhost and 127.0.0.1
# and a client one (nbdkit's layout in $PKI), an expired server
# certificate ($PKI/expired), a server certificate from another CA
# ($PKI/other), a PSK file and one with another key.  dh-params.pem holds
# RFC 7919's group: without it qemu-nbd computes Diffie-Hellman
# parameters at start, for minutes under TCG.
# ---------------------------------------------------------------------------
cert_make()
{
	local dir=$1 ca=$2 tmpl=$NBD_TMP/tmpl

	mkdir -p "$dir" || return 1
	if [[ $ca == self ]]; then
		printf 'cn = nbd test CA\nca\ncert_signing_key\nexpiration_days = 30\n' >"$tmpl.ca"
		certtool --generate-privkey --key-type=ecdsa --outfile "$dir/ca-key.pem" &&
			certtool --generate-self-signed --load-privkey "$dir/ca-key.pem" \
				--template "$tmpl.ca" --outfile "$dir/ca-cert.pem" || return 1
		ca=$dir
	else
		cp "$ca/ca-cert.pem" "$dir/ca-cert.pem" || return 1
	fi
	printf 'cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\nsigning_key\n%s\n' \
		"${3:-expiration_days = 30}" >"$tmpl.srv"
	printf 'cn = nbd test client\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 30\n' >"$tmpl.cli"
	certtool --generate-privkey --key-type=ecdsa --outfile "$dir/server-key.pem" &&
		certtool --generate-certificate --load-privkey "$dir/server-key.pem" \
			--load-ca-certificate "$ca/ca-cert.pem" --load-ca-privkey "$ca/ca-key.pem" \
			--template "$tmpl.srv" --outfile "$dir/server-cert.pem" &&
		certtool --generate-privkey --key-type=ecdsa --outfile "$dir/client-key.pem" &&
		certtool --generate-certificate --load-privkey "$dir/client-key.pem" \
			--load-ca-certificate "$ca/ca-cert.pem" --load-ca-privkey "$ca/ca-key.pem" \
			--template "$tmpl.cli" --outfile "$dir/client-cert.pem"
}
make_pki()
{
	{
		cert_make "$PKI" self &&
			cert_make "$PKI/other" self &&
			cert_make "$PKI/expired" "$PKI" \
				$'activation_date = "2020-01-01 00:00:00"\nexpiration_date = "2020-02-01 00:00:00"' &&
			certtool --get-dh-params --bits 2048 --outfile "$PKI/dh-params.pem" &&
			psktool -u alice -p "$PKI/keys.psk" &&
			psktool -u alice -p "$PKI/other.psk"
	} >"$NBD_TMP/pki.log" 2>&1 || { ktap_info_file "$NBD_TMP/pki.log"; return 1; }
}
check "certificates and PSK files made with certtool and psktool" make_pki ||
	ktap_bail "no certificates"

load_tls()
{
	modprobe tls 2>/dev/null
	grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp
}
check "kernel TLS is available (tls in tcp_available_ulp)" load_tls ||
	ktap_bail "no kernel TLS"
check "load nbd" nbd_load || ktap_bail "cannot load nbd"

# skip_n N REASON: N checks left out.
skip_n()
{
	local i

	for ((i = 0; i < $1; i++)); do
		skip "left out (NBD_TLS_SHORT=1)" "$2"
	done
}

# nbd-server 3.24 spends seconds on Diffie-Hellman parameters before its
# first client; start it now, part 3 uses it.
truncate -s 64M "$NBD_TMP/ns.img"
ns_start()
{
	local conf=$NBD_TMP/ns.conf pidf=$NBD_TMP/ns.pid

	cat >"$conf" <<EOF
[generic]
listenaddr = 127.0.0.1
port = 10815
certfile = $PKI/server-cert.pem
keyfile = $PKI/server-key.pem
cacertfile = $PKI/ca-cert.pem
force_tls = true
[ns]
exportname = $NBD_TMP/ns.img
EOF
	nbd-server -C "$conf" -p "$pidf" >"$NBD_TMP/ns.log" 2>&1 || return 1
	wait_for 20 test -s "$pidf" || return 1
	at_exit "nbd_server_stop $(cat "$pidf")"
}
[[ $SHORT == 1 ]] || ns_start || ktap_info "nbd-server with TLS did not start: $(tr '\n' ' ' <"$NBD_TMP/ns.log")"

# connect NAME URI [ARGS...]: nbdctl connect URI $DEV ARGS, settled.
connect()
{
	local name=$1 uri=$2

	shift 2
	if ! nbdctl_run "$name" -v connect "$uri" "$DEV" "$@"; then
		echo "# nbdctl connect $uri $* exited with $(cat "$NBD_TMP/$name.rc"):"
		ktap_info_file "$NBD_TMP/$name.err"
		return 1
	fi
	ktap_info "$(grep -h 'kernel TLS' "$NBD_TMP/$name.out")"
	nbd_wait_connected "$DEV" 20 && nbd_quiesce "$DEV"
}

disconnect()
{
	nbdctl_run disc disconnect "$DEV" || ktap_info_file "$NBD_TMP/disc.err"
	nbd_wait_disconnected "$DEV" 20 && udev_settle
}

# out_has NAME FILE PATTERN: nbdctl's stdout or stderr has PATTERN.
out_has()
{
	grep -Eq -- "$3" "$NBD_TMP/$1.$2" && return 0
	echo "# nbdctl's $2 has no '$3':"
	ktap_info_file "$NBD_TMP/$1.$2"
	return 1
}

# tls_conns N VERSION: debugfs shows N connections with kernel TLS VERSION
# (this driver), or the stock module's warning was printed.
tls_conns()
{
	local name=$1 n=$2 ver=$3 got

	if [[ $STOCK == 1 ]]; then
		out_has "$name" err "does not know kernel TLS"
		return
	fi
	got=$(grep -c "tls: TLS $ver" "$DBG/protocol" 2>/dev/null)
	ktap_info "debugfs protocol: $(tr '\n' ' ' <"$DBG/protocol" 2>/dev/null)"
	[[ $got -eq $n ]]
}

# roundtrip MIB: 1 MiB of random data written at MIB MiB and read back.
roundtrip()
{
	head -c 1048576 /dev/urandom >"$NBD_TMP/rt.in"
	dd if="$NBD_TMP/rt.in" of="$DEV" bs=64k seek=$(($1 * 16)) oflag=direct \
		status=none &&
		dd if="$DEV" of="$NBD_TMP/rt.back" bs=64k skip=$(($1 * 16)) \
			count=16 iflag=direct status=none &&
		cmp "$NBD_TMP/rt.in" "$NBD_TMP/rt.back"
}

fio_small()
{
	fio_verify "$1" "$DEV" --rw=randwrite --bs=4k-128k --iodepth=8 \
		--size=${MB}M
}

# fs_roundtrip: mkfs.ext4, a file written, unmounted, mounted, same md5.
fs_roundtrip()
{
	local sum

	mkfs.ext4 -q -F "$DEV" >"$NBD_TMP/mkfs.log" 2>&1 || { ktap_info_file "$NBD_TMP/mkfs.log"; return 1; }
	mount "$DEV" "$MNT" || return 1
	head -c 4194304 /dev/urandom >"$MNT/f" && sync
	sum=$(md5sum <"$MNT/f")
	umount "$MNT" && mount "$DEV" "$MNT" || return 1
	[[ $(md5sum <"$MNT/f") == "$sum" ]] || { umount "$MNT"; return 1; }
	umount "$MNT"
}

# --- 1. nbdkit, X.509 -------------------------------------------------------
nbdkit_start_tcp x509 10811 --tls=require --tls-certificates="$PKI" \
	memory 256M || ktap_bail "cannot start nbdkit with TLS"
X509="nbds://127.0.0.1:10811/"
check "connect nbds:// (X.509, nbdkit --tls=require)" \
	connect x509 "$X509" --tls-certificates "$PKI"
check "nbdctl says which TLS session went to the kernel" \
	out_has x509 out "kernel TLS: TLS1\.3, .*X\.509 \(verified"
check "the kernel holds a TLS 1.3 session on the connection" tls_conns x509 1 1.3
list_tls()
{
	"$NBDCTL" list --json "$DEV" >"$NBD_TMP/list.json" 2>&1
	ktap_info "list: $(grep -o '"tls": [^}]*' "$NBD_TMP/list.json")"
	grep -Eq '"tls": "TLS ?1\.3' "$NBD_TMP/list.json"
}
check "nbdctl list --json shows the device's TLS session" list_tls
check "fio verify over kernel TLS" fio_small x509
if [[ $SHORT == 1 ]]; then
	skip_n 1 "the file system adds no kernel TLS path"
else
	check "mkfs.ext4, mount, a file round trip" fs_roundtrip
fi
check "disconnect" disconnect
check "two connections, each its own handshake" \
	connect x509c "$X509" --tls-certificates "$PKI" -C 2
check "both connections carry kernel TLS" tls_conns x509c 2 1.3
check "a dd round trip over two TLS connections" roundtrip 3
check "disconnect" disconnect

if [[ $SHORT == 1 ]]; then
	skip_n 25 "PSK, TLS 1.2, qemu-nbd, nbd-server and the refusals run on 6.1 and 6.12"
else
# --- 2. PSK, TLS 1.2 ---------------------------------------------------------
nbdkit_start_tcp psk 10812 --tls=require --tls-psk="$PKI/keys.psk" \
	memory 64M || ktap_bail "cannot start nbdkit with PSK"
check "connect with a PSK (nbdkit --tls-psk)" \
	connect psk "nbds://127.0.0.1:10812/" --tls-psk "$PKI/keys.psk" \
	--tls-username alice
check "nbdctl names the PSK identity" out_has psk out 'PSK identity "alice"'
check "fio verify over PSK" fio_small psk
check "disconnect" disconnect
check "TLS 1.2 (--tls-priority)" \
	connect tls12 "$X509" --tls-certificates "$PKI" \
	--tls-priority "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM"
check "the kernel holds a TLS 1.2 AES-128-GCM session" tls_conns tls12 1 "1.2, AES-128-GCM"
check "a dd round trip over TLS 1.2" roundtrip 5
check "disconnect" disconnect

# --- 3. qemu-nbd, nbd-server -------------------------------------------------
truncate -s 64M "$NBD_TMP/q.img"
qemu_tls()
{
	qemu-nbd -t -b 127.0.0.1 -p 10813 -f raw \
		--object "tls-creds-x509,id=tls0,endpoint=server,dir=$PKI,verify-peer=off" \
		--tls-creds tls0 "$NBD_TMP/q.img" >"$NBD_TMP/q.log" 2>&1 &
	track_pid $!
	wait_for 20 bash -c 'exec 3<>/dev/tcp/127.0.0.1/10813' 2>/dev/null
}
check "qemu-nbd with tls-creds-x509 starts" qemu_tls
# conns_info NAME: how many connections nbdctl made (a server without
# CAN_MULTI_CONN gets one, with a warning).
conns_info()
{
	ktap_info "$1: $(grep -ho '[0-9] connections\?' "$NBD_TMP/$1.out")$(grep -h 'CAN_MULTI_CONN' "$NBD_TMP/$1.err" | sed 's/^/; /')"
}
check "connect to qemu-nbd over TLS (-C 2)" connect q "nbds://127.0.0.1:10813/" \
	--tls-certificates "$PKI" -C 2
conns_info q
check "fio verify through qemu-nbd" fio_verify qfio "$DEV" --rw=randwrite \
	--bs=4k-128k --iodepth=8 --size=4M
check "mkfs.ext4, mount, a file round trip through qemu-nbd" fs_roundtrip
check "disconnect" disconnect
check "connect to nbd-server 3.24 over TLS (force_tls, -C 2)" \
	connect ns "nbds://127.0.0.1:10815/ns" --tls-certificates "$PKI" \
	--handshake-timeout 100 -C 2
conns_info ns
check "fio verify through nbd-server" fio_verify nsfio "$DEV" --rw=randwrite \
	--bs=4k-128k --iodepth=8 --size=4M
check "mkfs.ext4, mount, a file round trip through nbd-server" fs_roundtrip
check "disconnect" disconnect

# --- 4. refusals -------------------------------------------------------------
nbdkit_start_tcp expired 10814 --tls=require --tls-certificates="$PKI/expired" \
	memory 16M || ktap_bail "cannot start nbdkit with an expired certificate"
nbdkit_start_tcp plain 10816 memory 16M || ktap_bail "cannot start nbdkit"

# refused NAME EXIT PATTERN URI [ARGS...]: connect fails with EXIT and a
# message matching PATTERN, and nothing is attached.
refused()
{
	local name=$1 want=$2 pat=$3 uri=$4 rc

	shift 4
	nbdctl_run "$name" connect "$uri" "$DEV" "$@"
	rc=$(cat "$NBD_TMP/$name.rc")
	ktap_info "$name: exit $rc: $(tail -n 1 "$NBD_TMP/$name.err")"
	[[ $rc == "$want" ]] && out_has "$name" err "$pat" && nbd_disconnected "$DEV"
}
check "another CA: refused, the certificate named" \
	refused badca 3 "not trusted by the CA in .*other/ca-cert.pem.*issued by" \
	"$X509" --cacert "$PKI/other/ca-cert.pem"
check "another host name: refused" \
	refused badhost 3 'not for the host name "nbd.example.org"' \
	"$X509" --tls-certificates "$PKI" --tls-hostname nbd.example.org
check "an expired certificate: refused" \
	refused expired 3 "has expired.*valid until 2020-02-01" \
	"nbds://127.0.0.1:10814/" --tls-certificates "$PKI"
check "a wrong PSK: refused" \
	refused badpsk 3 'PSK identity "alice", or its key for it is not the one' \
	"nbds://127.0.0.1:10812/" --tls-psk "$PKI/other.psk"
check "TLS required, not asked for: refused" \
	refused notls 3 "requires TLS: use an nbds:// URI or --tls" \
	"nbd://127.0.0.1:10811/"
check "--tls against a server without TLS: refused" \
	refused plain 3 "does not offer TLS" "nbd://127.0.0.1:10816/" --tls \
	--tls-insecure
check "TLS over a UNIX socket: refused (kernel TLS is TCP only)" \
	refused unix 2 "TCP sockets only" "nbds+unix:///?socket=$NBD_TMP/none.sock"
check "a cipher kernel TLS cannot take (AES-128-CBC): refused, the ones it takes listed" \
	refused cbc 3 "chose the cipher AES-128-CBC, which kernel TLS cannot take \(it takes AES-128-GCM, AES-256-GCM, AES-128-CCM and CHACHA20-POLY1305\)" \
	"$X509" --tls-certificates "$PKI" \
	--tls-priority "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CBC"
fi

# --- 5. --persist over TLS, the server killed and restarted --------------
if [[ $SHORT == 1 ]]; then
	skip_n 7 "the hostile peers below reconnect through the same paths"
else
truncate -s 128M "$NBD_TMP/p.img"
p_start()
{
	nbdkit_start_tcp pfile 10817 --tls=require --tls-certificates="$PKI" \
		file "$NBD_TMP/p.img"
}
check "nbdkit file plugin with TLS" p_start
"$NBDCTL" connect "nbds://127.0.0.1:10817/" "$DEV" --tls-certificates "$PKI" \
	-C 2 --persist --foreground --dead-timeout 60 \
	>"$NBD_TMP/persist.out" 2>"$NBD_TMP/persist.log" &
PERSIST=$!
track_pid "$PERSIST"
check "connect --persist over TLS" nbd_wait_connected "$DEV" 30 ||
	ktap_info_file "$NBD_TMP/persist.log"
dmesg_mark persist
fio_verify pfio "$DEV" --rw=randwrite --bs=4k-64k --iodepth=8 --size=${MB}M \
	>/dev/null &
FIO=$!
track_pid "$FIO"
restart_server()
{
	sleep 3
	kill -9 "$(cat "$NBD_TMP/pfile.pid")" || return 1
	sleep 2
	p_start
}
check "the TLS server killed (SIGKILL) and restarted during fio" restart_server
check "fio verify: zero errors across the restart" wait "$FIO"
reconnected()
{
	local n

	n=$(grep -c 'reconnected' "$NBD_TMP/persist.log")
	ktap_info "$n reconnect(s) logged"
	[[ $n -ge 1 ]]
}
check "the persist process reconnected with fresh handshakes" \
	wait_for 30 reconnected
check "disconnect" disconnect
check "the persist process ended" pid_gone "$PERSIST" 15
fi

# --- 6. a hostile TLS peer -------------------------------------------------
PEER=$NBD_SELFTEST_DIR/nbd_tls_peer
if [[ ! -x $PEER || $NBD_SELFTEST_DIR/nbd_tls_peer.c -nt $PEER ]]; then
	PEER=$NBD_TMP/nbd_tls_peer
	cc -O1 -Wall -o "$PEER" "$NBD_SELFTEST_DIR/nbd_tls_peer.c" \
		$(pkg-config --cflags --libs gnutls) >"$NBD_TMP/peer-cc.log" 2>&1 ||
		ktap_info_file "$NBD_TMP/peer-cc.log"
fi
port=10820
for mode in "${MODES[@]}"; do
	port=$((port + 1))
	peer_start()
	{
		"$PEER" --port "$port" --x509 "$PKI" --mode "$mode" --after 40 \
			--hold 60 --size $((MB * 1048576)) >"$NBD_TMP/peer-$mode.log" 2>&1 &
		track_pid $!
		wait_for 20 grep -q listening "$NBD_TMP/peer-$mode.log"
	}
	peer_start || ktap_info_file "$NBD_TMP/peer-$mode.log"
	dmesg_mark "peer $mode"
	"$NBDCTL" connect "nbds://127.0.0.1:$port/" "$DEV" --tls-certificates "$PKI" \
		--persist --foreground --dead-timeout 60 \
		>"$NBD_TMP/pp-$mode.out" 2>"$NBD_TMP/pp-$mode.log" &
	PP=$!
	track_pid "$PP"
	nbd_wait_connected "$DEV" 30 && nbd_quiesce "$DEV"
	# fio writes then reads back across the hostile act and the reconnect
	fio_verify "peer-$mode" "$DEV" --rw=randwrite --bs=4k-64k --iodepth=4 \
		--size=$((MB / 2))M --timeout=200
	rc=$?
	ktap_info "peer $mode: $(grep -h hostile "$NBD_TMP/peer-$mode.log" | head -1)"
	dmesg_since_mark | grep -E 'nbd0|connection' | head -5 | sed 's/^/# kernel: /'
	if [[ $STOCK == 1 ]]; then
		ktap_info "stock module, peer $mode: fio exit $rc"
		skip "peer $mode: the record is named" "the stock module does not name TLS records"
		skip "peer $mode: the device carries on" "recorded above for the stock module"
	else
		case $mode in
		close-notify) pat="ended the TLS session \(a TLS warning alert close_notify" ;;
		alert|alert-mid-reply) pat="sent a TLS fatal alert internal_error \(80\)" ;;
		keyupdate) pat="KeyUpdate" ;;
		unknown-type) pat="unknown content type 99" ;;
		garbage) pat="failed authentication" ;;
		*) pat="TLS" ;;
		esac
		check "peer $mode: the kernel names what the server sent" dmesg_has "$pat"
		check "peer $mode: fio verify clean across the reconnect" test "$rc" -eq 0
	fi
	check "peer $mode: disconnect, the persist process ends" \
		bash -c "'$NBDCTL' disconnect '$DEV' >/dev/null && sleep 1 && ! kill -0 $PP 2>/dev/null || { sleep 5; ! kill -0 $PP; }"
	nbd_wait_disconnected "$DEV" 20
done

check "unload nbd" nbd_unload
ktap_finish
