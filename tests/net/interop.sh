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
# NT_IMPL_A defaults to noisetund, NT_IMPL_B to wireguard-go.
set -eu
NT_IMPL_B=${NT_IMPL_B:-wireguard-go}
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
nt_init interop
need_impl "$NT_IMPL_A"
need_impl "$NT_IMPL_B"

NSA=$(ns_name a) NSB=$(ns_name b)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2

# one_run N INITIATOR(a|b) PSK(0|1) OUTER(4|6)
one_run() {
	local n=$1 init=$2 psk=$3 outer=$4 ifa ifb ini_ns ini_if ini_peer_ep res_ns res_if
	local res_pub ini_pub exp_ep ep
	ifa=$(if_name "a$n") ifb=$(if_name "b$n")
	log "== run $n: initiator $init ($([ "$init" = a ] && echo "$NT_IMPL_A" || echo "$NT_IMPL_B")), psk=$psk, outer IPv$outer"
	key_new "a$n"
	key_new "b$n"
	start_wg "$NT_IMPL_A" "$NSA" "$ifa"
	start_wg "$NT_IMPL_B" "$NSB" "$ifb"
	wgn "$NSA" set "$ifa" private-key "$(key_file "a$n")" listen-port 51820 \
		peer "$(key_pub "b$n")" allowed-ips 10.0.0.2/32,fd00::2/128
	wgn "$NSB" set "$ifb" private-key "$(key_file "b$n")" listen-port 51821 \
		peer "$(key_pub "a$n")" allowed-ips 10.0.0.1/32,fd00::1/128
	if [ "$psk" = 1 ]; then
		psk_new "p$n"
		wgn "$NSA" set "$ifa" peer "$(key_pub "b$n")" preshared-key "$NT_TMP/p$n.psk"
		wgn "$NSB" set "$ifb" peer "$(key_pub "a$n")" preshared-key "$NT_TMP/p$n.psk"
	fi
	if [ "$init" = a ]; then
		ini_ns=$NSA ini_if=$ifa res_ns=$NSB res_if=$ifb ini_pub=$(key_pub "a$n") res_pub=$(key_pub "b$n")
		[ "$outer" = 4 ] && ini_peer_ep=192.0.2.2:51821 exp_ep=192.0.2.1:51820
		[ "$outer" = 6 ] && ini_peer_ep="[2001:db8::2]:51821" exp_ep="[2001:db8::1]:51820"
	else
		ini_ns=$NSB ini_if=$ifb res_ns=$NSA res_if=$ifa ini_pub=$(key_pub "b$n") res_pub=$(key_pub "a$n")
		[ "$outer" = 4 ] && ini_peer_ep=192.0.2.1:51820 exp_ep=192.0.2.2:51821
		[ "$outer" = 6 ] && ini_peer_ep="[2001:db8::1]:51820" exp_ep="[2001:db8::2]:51821"
	fi
	wgn "$ini_ns" set "$ini_if" peer "$res_pub" endpoint "$ini_peer_ep"
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
	_stop_pid "$(daemon_pid "$ifa")"
	_stop_pid "$(daemon_pid "$ifb")"
}

n=0
for init in a b; do
	for psk in 0 1; do
		for outer in 4 6; do
			n=$((n + 1))
			# Test that run $n passes traffic both ways with a handshake on each side.
			one_run "$n" "$init" "$psk" "$outer"
		done
	done
done

# Test that a preshared key on one side only prevents the handshake (so the key above
# really entered the handshake).
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
log "pass: $((n - 1)) interop runs and the psk mismatch"
