#!/bin/bash
# noisetund against wireguard-go, in every combination of who initiates, preshared key
# or not, and outer IPv4 or IPv6; inner traffic is always both v4 and v6.
#
#   ns A                                         ns B
#   +---------------------------+   veth   +---------------------------+
#   | IMPL_A (noisetund)        |          | IMPL_B (wireguard-go)     |
#   |   10.0.0.1/24 fd00::1/64  |          |   10.0.0.2/24 fd00::2/64  |
#   | eth0 192.0.2.1            |----------| eth0 192.0.2.2            |
#   |      2001:db8::1   :51820 |          |      2001:db8::2   :51821 |
#   +---------------------------+          +---------------------------+
#
# Each run starts a fresh pair of daemons (new interface names, new keys). The initiator
# is the only side told the other's endpoint, so the first packet, and so the handshake
# initiation, can only come from it; the responder must learn the endpoint.
#
# NT_IMPL_A defaults to noisetund. With NT_IMPL_B set, the full matrix (8 runs and the psk
# mismatch) runs against that implementation only. Unset: the full matrix against Debian's
# wireguard-go, then a lighter form against each modern anchor that scripts/anchors has built
# (wireguard-go-modern, boringtun): two runs (A initiates with a psk over IPv6; B initiates
# without one over IPv4), each with pings both ways and a 2 MiB TCP transfer each way whose
# SHA-256 must arrive intact. An implementation that is not available is skipped with the
# reason; the scenario skips (77) only when none of them is.
set -eu
NT_IMPL_B_SET=${NT_IMPL_B:-}
NT_IMPL_B=${NT_IMPL_B:-wireguard-go}
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
nt_init interop
need_impl "$NT_IMPL_A"
if [ -n "$NT_IMPL_B_SET" ]; then
	need_impl "$NT_IMPL_B"
fi

NSA=$(ns_name a) NSB=$(ns_name b)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2

# tcp_transfer NS_FROM NS_TO DEST BYTES: BYTES of random data over TCP through the tunnel from
# NS_FROM to DEST (an inner address in NS_TO); the receiver's count and SHA-256 must match
# the sender's.
tcp_transfer() {
	local from=$1 to=$2 dest=$3 bytes=$4 port=5299 out_s out_r rpid i
	rm -f "$NT_TMP/rx.out"
	ip netns exec "$to" timeout 30 python3 -c '
import hashlib, socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
c, _ = s.accept()
h, n = hashlib.sha256(), 0
while True:
    d = c.recv(65536)
    if not d:
        break
    h.update(d)
    n += len(d)
print(n, h.hexdigest())' "$dest" "$port" >"$NT_TMP/rx.out" 2>&1 &
	rpid=$!
	NT_PIDS+=("$rpid")
	for i in $(seq 50); do
		ip netns exec "$to" ss -Hltn "sport = :$port" | grep -q . && break
		sleep 0.1
	done
	out_s=$(ip netns exec "$from" timeout 25 python3 -c '
import hashlib, os, socket, sys
data = os.urandom(int(sys.argv[3]))
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
s.sendall(data)
s.close()
print(len(data), hashlib.sha256(data).hexdigest())' "$dest" "$port" "$bytes") ||
		fail "TCP transfer $from -> $dest: sender failed ($out_s)"
	wait "$rpid" || fail "TCP transfer $from -> $dest: receiver failed ($(cat "$NT_TMP/rx.out"))"
	out_r=$(cat "$NT_TMP/rx.out")
	[ "$out_r" = "$out_s" ] ||
		fail "TCP transfer $from -> $dest: sent '$out_s', received '$out_r'"
	log "TCP transfer $from -> $dest: $bytes bytes, SHA-256 intact"
}

# one_run N INITIATOR(a|b) PSK(0|1) OUTER(4|6) [TRANSFER(0|1)]
one_run() {
	local n=$1 init=$2 psk=$3 outer=$4 transfer=${5:-0} ifa ifb ini_ns ini_if ini_peer_ep res_ns res_if
	local res_pub ini_pub exp_ep ep b_extra
	ifa=$(if_name "a$n") ifb=$(if_name "b$n")
	log "== run $n: initiator $init ($([ "$init" = a ] && echo "$NT_IMPL_A" || echo "$NT_IMPL_B")), psk=$psk, outer IPv$outer"
	key_new "a$n"
	key_new "b$n"
	start_wg "$NT_IMPL_A" "$NSA" "$ifa"
	start_wg "$NT_IMPL_B" "$NSB" "$ifb"
	if [ "$init" = a ]; then
		ini_ns=$NSA ini_if=$ifa res_ns=$NSB res_if=$ifb ini_pub=$(key_pub "a$n") res_pub=$(key_pub "b$n")
		[ "$outer" = 4 ] && ini_peer_ep=192.0.2.2:51821 exp_ep=192.0.2.1:51820
		[ "$outer" = 6 ] && ini_peer_ep="[2001:db8::2]:51821" exp_ep="[2001:db8::1]:51820"
	else
		ini_ns=$NSB ini_if=$ifb res_ns=$NSA res_if=$ifa ini_pub=$(key_pub "b$n") res_pub=$(key_pub "a$n")
		[ "$outer" = 4 ] && ini_peer_ep=192.0.2.1:51820 exp_ep=192.0.2.2:51821
		[ "$outer" = 6 ] && ini_peer_ep="[2001:db8::1]:51820" exp_ep="[2001:db8::2]:51821"
	fi
	[ "$psk" = 1 ] && psk_new "p$n"
	wgn "$NSA" set "$ifa" private-key "$(key_file "a$n")" listen-port 51820 \
		peer "$(key_pub "b$n")" allowed-ips 10.0.0.2/32,fd00::2/128
	[ "$psk" = 1 ] && wgn "$NSA" set "$ifa" peer "$(key_pub "b$n")" preshared-key "$NT_TMP/p$n.psk"
	[ "$init" = a ] && wgn "$NSA" set "$ifa" peer "$res_pub" endpoint "$ini_peer_ep"
	if [ "$NT_IMPL_B" = boringtun ]; then
		# boringtun 0.7.1 panics on a "wg set" that changes an existing peer ("Modifying
		# existing peers is not yet supported"): its peer is configured in one command.
		b_extra=()
		[ "$psk" = 1 ] && b_extra+=(preshared-key "$NT_TMP/p$n.psk")
		[ "$init" = b ] && b_extra+=(endpoint "$ini_peer_ep")
		wgn "$NSB" set "$ifb" private-key "$(key_file "b$n")" listen-port 51821 \
			peer "$(key_pub "a$n")" allowed-ips 10.0.0.1/32,fd00::1/128 "${b_extra[@]}"
	else
		wgn "$NSB" set "$ifb" private-key "$(key_file "b$n")" listen-port 51821 \
			peer "$(key_pub "a$n")" allowed-ips 10.0.0.1/32,fd00::1/128
		[ "$psk" = 1 ] && wgn "$NSB" set "$ifb" peer "$(key_pub "a$n")" preshared-key "$NT_TMP/p$n.psk"
		[ "$init" = b ] && wgn "$NSB" set "$ifb" peer "$res_pub" endpoint "$ini_peer_ep"
	fi
	tun_up "$NSA" "$ifa" 10.0.0.1/24 fd00::1/64
	tun_up "$NSB" "$ifb" 10.0.0.2/24 fd00::2/64
	[ -z "$(endpoint_of "$res_ns" "$res_if")" ] || [ "$(endpoint_of "$res_ns" "$res_if")" = "(none)" ] ||
		fail "responder has an endpoint before any traffic"

	# Test that the initiator's first packets bring the tunnel up, v4 and v6 inside.
	if [ "$init" = a ]; then
		ping_ok "$NSA" 10.0.0.2 2
		ping_ok "$NSA" fd00::2 2
	else
		ping_ok "$NSB" 10.0.0.1 2
		ping_ok "$NSB" fd00::1 2
	fi
	# Test that the responder learned the initiator's outer address, and can now send.
	ep=$(endpoint_of "$res_ns" "$res_if")
	[ "$ep" = "$exp_ep" ] || fail "responder's endpoint is '$ep', expected $exp_ep"
	if [ "$init" = a ]; then
		ping_ok "$NSB" 10.0.0.1 2
		ping_ok "$NSB" fd00::1 2
	else
		ping_ok "$NSA" 10.0.0.2 2
		ping_ok "$NSA" fd00::2 2
	fi
	assert_handshake "$ini_ns" "$ini_if" "$res_pub"
	assert_handshake "$res_ns" "$res_if" "$ini_pub"
	if [ "$transfer" = 1 ]; then
		# Test that bulk data (full-size packets, both directions) crosses intact.
		tcp_transfer "$NSA" "$NSB" 10.0.0.2 2097152
		tcp_transfer "$NSB" "$NSA" fd00::1 2097152
	fi
	daemon_alive "$ifa" || fail "$ifa ($NT_IMPL_A) died"
	daemon_alive "$ifb" || fail "$ifb ($NT_IMPL_B) died"
	_stop_pid "$(daemon_pid "$ifa")"
	_stop_pid "$(daemon_pid "$ifb")"
}

# full_matrix: every combination of initiator, psk and outer family against NT_IMPL_B, then
# the psk mismatch.
full_matrix() {
	local init psk outer
	for init in a b; do
		for psk in 0 1; do
			for outer in 4 6; do
				n=$((n + 1))
				# Test that run $n passes traffic both ways with a handshake on each side.
				one_run "$n" "$init" "$psk" "$outer"
			done
		done
	done
	psk_mismatch
}

# Test that a preshared key on one side only prevents the handshake (so the key above
# really entered the handshake).
psk_mismatch() {
	local ifa ifb
	n=$((n + 1))
	ifa=$(if_name "a$n") ifb=$(if_name "b$n")
	log "== run $n: preshared key on A only: no handshake expected"
	key_new "a$n"
	key_new "b$n"
	psk_new "p$n"
	start_wg "$NT_IMPL_A" "$NSA" "$ifa"
	start_wg "$NT_IMPL_B" "$NSB" "$ifb"
	wgn "$NSA" set "$ifa" private-key "$(key_file "a$n")" listen-port 51820 \
		peer "$(key_pub "b$n")" allowed-ips 10.0.0.2/32 endpoint 192.0.2.2:51821 \
		preshared-key "$NT_TMP/p$n.psk"
	wgn "$NSB" set "$ifb" private-key "$(key_file "b$n")" listen-port 51821 \
		peer "$(key_pub "a$n")" allowed-ips 10.0.0.1/32 endpoint 192.0.2.1:51820
	tun_up "$NSA" "$ifa" 10.0.0.1/24 fd00::1/64
	tun_up "$NSB" "$ifb" 10.0.0.2/24 fd00::2/64
	if ip netns exec "$NSA" ping -n -q -c 3 -i 0.5 -w 3 10.0.0.2 >/dev/null 2>&1; then
		fail "ping passed with mismatched preshared keys"
	fi
	[ "$(handshake_time "$NSA" "$ifa")" = 0 ] || fail "A completed a handshake with a mismatched psk"
	[ "$(handshake_time "$NSB" "$ifb")" = 0 ] || fail "B completed a handshake with a mismatched psk"
	daemon_alive "$ifa" || fail "$ifa died"
	daemon_alive "$ifb" || fail "$ifb died"
	_stop_pid "$(daemon_pid "$ifa")"
	_stop_pid "$(daemon_pid "$ifb")"
}

n=0
passed=() skipped=()
if [ -n "$NT_IMPL_B_SET" ]; then
	full_matrix
	passed+=("$NT_IMPL_B: full, $n runs")
else
	for impl in wireguard-go wireguard-go-modern boringtun; do
		if why=$(impl_missing "$impl"); then
			log "== SKIPPING $impl: $why"
			skipped+=("$impl ($why)")
			continue
		fi
		NT_IMPL_B=$impl
		first=$((n + 1))
		if [ "$impl" = wireguard-go ]; then
			log "==== $impl: full matrix"
			full_matrix
			passed+=("$impl: full, runs $first-$n")
		else
			log "==== $impl ($(impl_bin "$impl")): handshake, pings, transfers"
			n=$((n + 1))
			# Test that A initiates over IPv6 with a psk, and data crosses both ways.
			one_run "$n" a 1 6 1
			n=$((n + 1))
			# Test that B initiates over IPv4 without a psk, and data crosses both ways.
			one_run "$n" b 0 4 1
			passed+=("$impl: light, runs $first-$n")
		fi
	done
	for s in "${skipped[@]}"; do log "skipped: $s"; done
	[ ${#passed[@]} -gt 0 ] || skip "no implementation to test against: ${skipped[*]}"
fi
log "pass: $(IFS=';'; echo "${passed[*]}")"
