#!/bin/bash
# Two daemons over a veth pair: the basic data path, both directions, v4 and v6.
#
#   ns A                                        ns B
#   +--------------------------+   veth   +--------------------------+
#   | IMPL_A ntpr<id>a         |          | IMPL_B ntpr<id>b         |
#   |   10.0.0.1/24 fd00::1/64 |          |   10.0.0.2/24 fd00::2/64 |
#   | eth0 192.0.2.1           |----------| eth0 192.0.2.2           |
#   |      2001:db8::1  :51820 |          |      2001:db8::2  :51821 |
#   +--------------------------+          +--------------------------+
#
# A is configured with `wg setconf` (a config file), B with `wg set`.
# NT_IMPL_A / NT_IMPL_B pick the daemons (default noisetund for both).
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
nt_init pair
command -v iperf3 >/dev/null || skip "iperf3 is not installed"
need_impl "$NT_IMPL_A"
need_impl "$NT_IMPL_B"

NSA=$(ns_name a) NSB=$(ns_name b)
IFA=$(if_name a) IFB=$(if_name b)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2

key_new a
key_new b
start_wg "$NT_IMPL_A" "$NSA" "$IFA"
start_wg "$NT_IMPL_B" "$NSB" "$IFB"

cat >"$NT_TMP/a.conf" <<EOF
[Interface]
PrivateKey = $(cat "$(key_file a)")
ListenPort = 51820

[Peer]
PublicKey = $(key_pub b)
Endpoint = 192.0.2.2:51821
AllowedIPs = 10.0.0.2/32, fd00::2/128
EOF
wgn "$NSA" setconf "$IFA" "$NT_TMP/a.conf"
wgn "$NSB" set "$IFB" private-key "$(key_file b)" listen-port 51821 \
	peer "$(key_pub a)" endpoint 192.0.2.1:51820 allowed-ips 10.0.0.1/32,fd00::1/128
tun_up "$NSA" "$IFA" 10.0.0.1/24 fd00::1/64
tun_up "$NSB" "$IFB" 10.0.0.2/24 fd00::2/64

# Test that nothing has been exchanged before the first packet.
[ "$(handshake_time "$NSA" "$IFA")" = 0 ] || fail "handshake before any traffic"
before_a=$(transfer_total "$NSA" "$IFA")
before_b=$(transfer_total "$NSB" "$IFB")

# Test that ping works both ways, v4 and v6 inside the tunnel.
ping_ok "$NSA" 10.0.0.2
ping_ok "$NSB" 10.0.0.1
ping_ok "$NSA" fd00::2
ping_ok "$NSB" fd00::1

# Test that both sides report the handshake and the endpoint they learned.
assert_handshake "$NSA" "$IFA" "$(key_pub b)"
assert_handshake "$NSB" "$IFB" "$(key_pub a)"
[ "$(endpoint_of "$NSA" "$IFA")" = 192.0.2.2:51821 ] || fail "A's endpoint for B: $(endpoint_of "$NSA" "$IFA")"
[ "$(endpoint_of "$NSB" "$IFB")" = 192.0.2.1:51820 ] || fail "B's endpoint for A: $(endpoint_of "$NSB" "$IFB")"

# Test that iperf3 TCP runs 3 s through the tunnel (server in B, client in A).
mid_a=$(transfer_total "$NSA" "$IFA")
ip netns exec "$NSB" iperf3 -s -1 -B 10.0.0.2 >"$NT_TMP/iperf3-server.log" 2>&1 &
NT_PIDS+=("$!")
wait_for 5 "iperf3 server in B" sh -c "ip netns exec '$NSB' ss -ltn | grep -q '10.0.0.2:5201'"
if ! ip netns exec "$NSA" iperf3 -c 10.0.0.2 -t 3 -f m >"$NT_TMP/iperf3.log" 2>&1; then
	cat "$NT_TMP/iperf3.log"
	fail "iperf3 through the tunnel failed"
fi
grep -E '(sender|receiver)$' "$NT_TMP/iperf3.log" | sed 's/^/iperf3: /'
rate=$(awk '/receiver$/ { for (i = 1; i < NF; i++) if ($(i+1) == "Mbits/sec") print $i }' "$NT_TMP/iperf3.log")
log "throughput A -> B: ${rate:-?} Mbits/s"
if [ -z "$rate" ] || ! awk -v r="$rate" 'BEGIN { exit !(r > 0) }'; then
	fail "iperf3 reported no throughput"
fi

# Test that the byte counters grew, by at least what iperf3 moved (>= 1 MB).
after_a=$(transfer_total "$NSA" "$IFA")
after_b=$(transfer_total "$NSB" "$IFB")
log "transfer A: $before_a -> $mid_a -> $after_a bytes; B: $before_b -> $after_b bytes"
[ "$mid_a" -gt "$before_a" ] || fail "A's counters did not grow with ping"
[ $((after_a - mid_a)) -ge 1000000 ] || fail "A's counters grew by only $((after_a - mid_a)) bytes under iperf3"
[ $((after_b - before_b)) -ge 1000000 ] || fail "B's counters grew by only $((after_b - before_b)) bytes"
wgn "$NSA" show "$IFA"

# Test that both daemons are still alive and answer.
daemon_alive "$IFA" || fail "$IFA daemon died"
daemon_alive "$IFB" || fail "$IFB daemon died"
log "pass"
