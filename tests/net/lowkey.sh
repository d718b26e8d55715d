#!/bin/bash
# Low-order public keys: X25519 with a low-order point gives an all-zero "shared secret"
# that anyone can compute. A daemon must validate its DH results: it never initiates to a
# peer whose key is such a point, never accepts handshake messages built on one (as the
# initiator's static or ephemeral key, or the responder's ephemeral key), and keeps running.
#
#   ns V                                          ns C
#   +-------------------------------+   veth   +-------------------------------------+
#   | IMPL_A ntlo<id>v  10.5.0.1/16 |          | capture on eth0; UDP listeners      |
#   |  peers: 10 low-order keys     |          | tools/lowpeer: crafted initiations  |
#   |    (endpoint C:1111, pka 1)   |          |   and responses with zero DH        |
#   |  control peer (C:1112, pka 1) |          |                                     |
#   |  evil (C's key, no endpoint)  |          |                                     |
#   |  resp0..3 (C:2220..2223)      |          |                                     |
#   | eth0 192.0.2.1 :51820         |----------| eth0 192.0.2.2                      |
#   +-------------------------------+          +-------------------------------------+
#
# The low-order points: the seven of the kernel selftest (0, 1, the two of order 8, p-1,
# p, p+1) and three with the ignored top bit set (0, 1 and an order-8 point), which only
# a check of the DH output (not a list of bad keys) catches.
# Each refusal has a control that is the same message or setup with a good key and must
# succeed, so that a silent tool or capture cannot pass the test.
# NT_IMPL_A is the daemon under test.
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/net/adversary-lib.sh
. "$(dirname "$0")/adversary-lib.sh"
nt_init lowkey
need_impl "$NT_IMPL_A"
LOWPEER=$(adv_tool lowpeer)

NSV=$(ns_name v) NSC=$(ns_name c)
IFV=$(if_name v)
ns_create "$NSV"
ns_create "$NSC"
link_pair "$NSV" 1 "$NSC" 2

LOW_POINTS="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA=
X5yVvKNQjCSx0LFVnIPvWwREXMRYHI6G2CJO3dCfEVc=
7P///////////////////////////////////////38=
7f///////////////////////////////////////38=
7v///////////////////////////////////////38=
AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAIA=
AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAIA=
X5yVvKNQjCSx0LFVnIPvWwREXMRYHI6G2CJO3dCfEdc="

key_new v
key_new control
key_new evil
for i in 0 1 2 3; do key_new "resp$i"; done
start_wg "$NT_IMPL_A" "$NSV" "$IFV"
PIDV=$(daemon_pid "$IFV")
wgn "$NSV" set "$IFV" private-key "$(key_file v)" listen-port 51820
# The capture of part 1 covers everything from the peers' creation on (a daemon may start
# persistent keepalives, and so handshakes, at once).
adv_sniff_start c1 "$NSC" eth0 64
k=0
for p in $LOW_POINTS; do
	k=$((k + 1))
	wgn "$NSV" set "$IFV" peer "$p" endpoint 192.0.2.2:1111 persistent-keepalive 1 \
		allowed-ips "10.5.$k.0/24" || fail "wg set refused the low-order peer $p"
done
wgn "$NSV" set "$IFV" peer "$(key_pub control)" endpoint 192.0.2.2:1112 persistent-keepalive 1 \
	allowed-ips 10.5.100.0/24
alive() { _pid_is "$PIDV" "$IFV" && daemon_alive "$IFV"; }

# Test that every low-order peer was added (as the kernel does), and the daemon lives.
npeers=$(wgn "$NSV" show "$IFV" peers | wc -l)
[ "$npeers" = 11 ] || fail "expected 11 peers (10 low-order + control), V shows $npeers"
alive || fail "V died after the low-order peers were added"

# ---- 1. no initiation to a low-order peer
# Test that from their creation on, with the link brought up (persistent keepalives
# start handshakes) and traffic to them, the low-order peers are sent nothing in 3 s,
# while the control peer next to them is sent an initiation.
ip -n "$NSV" addr add 10.5.0.1/16 dev "$IFV"
ip -n "$NSV" link set "$IFV" up
for k in $(seq 10) 100; do
	ip netns exec "$NSV" ping -n -q -c 2 -i 0.5 -W 1 "10.5.$k.1" >/dev/null 2>&1 &
	NT_PIDS+=("$!")
done
sleep 3
adv_sniff_stop c1
to_low=$(awk '$3 == "udp" && $2 == "in" && $4 == "192.0.2.1" && $7 == 1111' "$NT_TMP/c1.cap" | wc -l)
to_ctl=$(adv_wg_count "$NT_TMP/c1.cap" in 1 192.0.2.1)
log "in 3 s: $to_low datagram(s) to the low-order peers' endpoint, $to_ctl initiation(s) to the control peer's"
[ "$to_ctl" -ge 1 ] || fail "control: no initiation to the normal peer: the capture or the setup is broken"
[ "$to_low" = 0 ] || fail "V sent $to_low datagram(s) to low-order peers (types: $(adv_wg_types "$NT_TMP/c1.cap" in 192.0.2.1))"
alive || fail "V died with traffic to low-order peers"

# ---- 2. an all-zero private key is no key
# Test that a private key of all zeros leaves the device without a key ((none), as the
# kernel does) and sends no initiation, and that a real key then works again.
printf 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n' >"$NT_TMP/zero.key"
wgn "$NSV" set "$IFV" private-key "$NT_TMP/zero.key"
shown=$(wgn "$NSV" show "$IFV" private-key)
[ "$shown" = "(none)" ] || fail "an all-zero private key shows as '$shown', expected (none)"
sleep 0.3
adv_sniff_start c2 "$NSC" eth0 64
ip netns exec "$NSV" ping -n -q -c 2 -i 0.5 -W 1 10.5.100.1 >/dev/null 2>&1 || true
sleep 1.5
adv_sniff_stop c2
n=$(adv_wg_count "$NT_TMP/c2.cap" in 1 192.0.2.1)
[ "$n" = 0 ] || fail "V sent $n initiation(s) with an all-zero private key"
alive || fail "V died with an all-zero private key"
wgn "$NSV" set "$IFV" private-key "$(key_file v)"
[ "$(wgn "$NSV" show "$IFV" public-key)" = "$(key_pub v)" ] || fail "V's public key is wrong after restoring the key"
log "all-zero private key: (none), 0 initiations; real key restored"

# ---- 3. crafted handshake messages whose DH results are zero
wgn "$NSV" set "$IFV" peer "$(key_pub evil)" allowed-ips 10.5.200.0/24
lp() { ip netns exec "$NSC" "$LOWPEER" "$@"; }
kv() { echo "$1" | sed -n "s/.*\b$2=\([0-9]*\).*/\1/p"; }

# Test (control) that the tool's initiation with evil's real key and a fresh ephemeral
# gets a handshake response: the messages below differ from it only in the zero DH.
out=$(lp init --to 192.0.2.1 --port 51820 --victim-pub "$(key_pub v)" --key "$(key_file evil)" --wait-ms 500)
log "control initiation: $out"
[ "$(kv "$out" response)" = 1 ] || fail "control: a genuine crafted initiation got no response ($out): the tool is wrong"
hs_evil=$(handshake_time "$NSV" "$IFV" "$(key_pub evil)")

# Test that an initiation whose ephemeral is a low-order point (es = 0) gets no response.
for p in $LOW_POINTS; do
	out=$(lp init --to 192.0.2.1 --port 51820 --victim-pub "$(key_pub v)" --key "$(key_file evil)" \
		--ephemeral-point "$p" --wait-ms 150)
	[ "$(kv "$out" response)" = 0 ] || fail "an initiation with the low-order ephemeral $p was answered: $out"
done
log "10 initiations with a low-order ephemeral: 0 responses"

# Test that an initiation claiming a low-order static key (a configured peer's; ss = 0,
# forgeable by anyone) gets no response.
for p in $LOW_POINTS; do
	out=$(lp init --to 192.0.2.1 --port 51820 --victim-pub "$(key_pub v)" --static-point "$p" --wait-ms 150)
	[ "$(kv "$out" response)" = 0 ] || fail "an initiation as the low-order peer $p was answered: $out"
done
log "10 initiations as a low-order peer: 0 responses"
[ "$(handshake_time "$NSV" "$IFV" "$(key_pub evil)")" = "$hs_evil" ] || fail "evil's handshake time moved"
alive || fail "V died after the crafted initiations"

# Test that a response whose ephemeral is a low-order point (ee = se = 0) is refused: V
# sends no transport message on it and records no handshake; with a genuine response
# (the control, resp0) V completes the handshake and sends one.
i=0
for p in "" AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= X5yVvKNQjCSx0LFVnIPvWwREXMRYHI6G2CJO3dCfEVc= 7v///////////////////////////////////////38=; do
	wgn "$NSV" set "$IFV" peer "$(key_pub "resp$i")" endpoint "192.0.2.2:222$i" allowed-ips "10.5.$((210 + i)).0/24"
	lp respond --port "222$i" --victim-pub "$(key_pub v)" --key "$(key_file "resp$i")" \
		${p:+--ephemeral-point "$p"} --seconds 3 >"$NT_TMP/resp$i.out" 2>&1 &
	NT_PIDS+=("$!")
	i=$((i + 1))
done
for i in 0 1 2 3; do
	wait_for 5 "lowpeer respond $i to listen" grep -q listening "$NT_TMP/resp$i.out"
done
for i in 0 1 2 3; do
	ip netns exec "$NSV" ping -n -q -c 1 -W 2 "10.5.$((210 + i)).1" >/dev/null 2>&1 &
	NT_PIDS+=("$!")
done
sleep 3.5
for i in 0 1 2 3; do
	out=$(tail -n 1 "$NT_TMP/resp$i.out")
	hs=$(handshake_time "$NSV" "$IFV" "$(key_pub "resp$i")")
	log "respond $i ($([ "$i" = 0 ] && echo genuine || echo low-order ephemeral)): $out; V's handshake time $hs"
	[ "$(kv "$out" answered)" -ge 1 ] || fail "respond $i: V sent no initiation to answer ($out)"
	if [ "$i" = 0 ]; then
		[ "$(kv "$out" data)" -ge 1 ] && [ "$hs" -gt 0 ] ||
			fail "control: V did not complete the handshake with a genuine crafted response ($out): the tool is wrong"
	else
		[ "$(kv "$out" data)" = 0 ] || fail "V sent transport data after a response with a low-order ephemeral ($out)"
		[ "$hs" = 0 ] || fail "V recorded a handshake from a response with a low-order ephemeral"
	fi
done

# Test that the daemon is alive and still works for the control peer.
alive || fail "V died"
npeers=$(wgn "$NSV" show "$IFV" peers | wc -l)
[ "$npeers" = 16 ] || fail "V lost peers: $npeers of 16"
log "pass: 10 low-order peers, 0 datagrams sent to them; all-zero private key, 0 initiations; 20 initiations and 3 responses built on zero DH, 0 accepted; controls all accepted"
