#!/bin/bash
# The peer moves while traffic flows: A must follow it to its new outer address.
#
#   ns A                                       ns B
#   +--------------------------+   veth   +----------------------------------+
#   | IMPL_A ntro<id>a         |          | IMPL_B ntro<id>b                 |
#   |   10.0.0.1/24 fd00::1/64 |          |   10.0.0.2/24 fd00::2/64         |
#   | eth0 192.0.2.1           |----------| eth0 192.0.2.2 -> .3 -> (none)   |
#   |      2001:db8::1  :51820 |          |      2001:db8::2  :51821         |
#   +--------------------------+          +----------------------------------+
#
# Step 1: B's IPv4 address changes under its running daemon (192.0.2.2 -> 192.0.2.3).
# Step 2: B loses IPv4 (192.0.2.3 deleted) and is set to A's IPv6 address.
# A never gets told: it must learn each new endpoint from B's authenticated packets,
# while a ping stream from B and a TCP stream from A keep running.
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
nt_init roaming
command -v iperf3 >/dev/null || skip "iperf3 is not installed"
need_impl "$NT_IMPL_A"
need_impl "$NT_IMPL_B"

NSA=$(ns_name a) NSB=$(ns_name b)
IFA=$(if_name a) IFB=$(if_name b)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2
tunnel_up "$NT_IMPL_A" "$NT_IMPL_B"

# Test that the tunnel is up on the original path.
ping_ok "$NSA" 10.0.0.2
[ "$(endpoint_of "$NSA" "$IFA")" = 192.0.2.2:51821 ] || fail "start endpoint: $(endpoint_of "$NSA" "$IFA")"

# Streams across both moves: 80 pings from B at 0.1 s, and iperf3 TCP from A to B.
ip netns exec "$NSB" ping -n -c 80 -i 0.1 -W 1 10.0.0.1 >"$NT_TMP/ping-stream.log" 2>&1 &
ping_pid=$!
NT_PIDS+=("$ping_pid")
ip netns exec "$NSB" iperf3 -s -1 -B 10.0.0.2 >"$NT_TMP/iperf3-server.log" 2>&1 &
NT_PIDS+=("$!")
wait_for 5 "iperf3 server in B" sh -c "ip netns exec '$NSB' ss -ltn | grep -q '10.0.0.2:5201'"
ip netns exec "$NSA" iperf3 -c 10.0.0.2 -t 7 -f m >"$NT_TMP/iperf3.log" 2>&1 &
iperf_pid=$!
NT_PIDS+=("$iperf_pid")
sleep 1.5

# Test that A follows B when B's IPv4 address changes mid-stream.
log "moving B from 192.0.2.2 to 192.0.2.3"
ip -n "$NSB" addr del 192.0.2.2/24 dev eth0
ip -n "$NSB" addr add 192.0.2.3/24 dev eth0
if [ "$NT_IMPL_B" = wireguard-go ]; then
	# wireguard-go 0.0.20220316 pins the source address it last used (IP_PKTINFO) and
	# drops that pin only on EINVAL; this kernel answers ENETUNREACH for a source that
	# is gone, so it never sends again. Setting the endpoint afresh clears the pin.
	warn "wireguard-go as B: re-setting its endpoint to drop its stale source address"
	wgn "$NSB" set "$IFB" peer "$(key_pub a)" endpoint 192.0.2.1:51820
fi
wait_for 5 "A's endpoint for B to become 192.0.2.3:51821" \
	endpoint_is "$NSA" "$IFA" 192.0.2.3:51821
log "A's endpoint for B: $(endpoint_of "$NSA" "$IFA")"
sleep 1.5

# Test that A follows B onto the IPv6 path: B loses IPv4 altogether and is told A's v6
# address (else A's v4 packets would keep teaching B the v4 endpoint back).
log "B loses IPv4 and switches to the IPv6 path"
ip -n "$NSB" addr del 192.0.2.3/24 dev eth0
wgn "$NSB" set "$IFB" peer "$(key_pub a)" endpoint "[2001:db8::1]:51820"
wait_for 5 "A's endpoint for B to become [2001:db8::2]:51821" \
	endpoint_is "$NSA" "$IFA" "[2001:db8::2]:51821"
log "A's endpoint for B: $(endpoint_of "$NSA" "$IFA")"

# Test that the streams survived both moves: few pings lost, iperf3 finished with data.
wait "$ping_pid" || true
wait "$iperf_pid" || { cat "$NT_TMP/iperf3.log"; fail "iperf3 across the moves failed"; }
grep -E 'packets transmitted' "$NT_TMP/ping-stream.log"
got=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$NT_TMP/ping-stream.log")
[ "${got:-0}" -ge 72 ] || fail "ping stream across the moves: only ${got:-0}/80 replies"
grep -E '(sender|receiver)$' "$NT_TMP/iperf3.log" | sed 's/^/iperf3: /'
grep -q 'receiver$' "$NT_TMP/iperf3.log" || fail "iperf3 did not finish"

# Test that A can still start traffic towards B's new endpoint, v4 and v6 inside.
ping_ok "$NSA" 10.0.0.2
ping_ok "$NSA" fd00::2
[ "$(endpoint_of "$NSA" "$IFA")" = "[2001:db8::2]:51821" ] || fail "end endpoint: $(endpoint_of "$NSA" "$IFA")"
daemon_alive "$IFA" || fail "$IFA died"
daemon_alive "$IFB" || fail "$IFB died"
log "pass"
