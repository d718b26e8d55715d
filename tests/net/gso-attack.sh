#!/bin/bash
# UDP GSO super-datagrams at the victim (security review, issue 20). A socket with UDP_GRO
# takes a locally sent GSO packet unchanged: one datagram carries up to the sender
# kernel's UDP_MAX_SEGMENTS (128 here) messages, more than the 64 the receive path was
# sized for; and a merged datagram of handshake initiations must count as that many
# handshakes for the under-load rule.
#
#   ns V (victim)              ns sw (bridge br0)           ns A (legitimate peer)
#   +-------------------------+  +-------------+  +-------------------------+
#   | IMPL_A ntgs<id>v        |  |             |  | IMPL_B ntgs<id>a        |
#   |   10.0.0.1/24           |  |             |  |   10.0.0.2/24           |
#   | eth0 192.0.2.1  :51820  |--|    br0      |--| eth0 192.0.2.2  :51821  |
#   +-------------------------+  +------+------+  +-------------------------+
#                                       |
#                          +------------+-------------+
#                          | ns M (attacker)          |
#                          | eth0 192.0.2.3           |
#                          | tools/gso                |
#                          +--------------------------+
#
# Part 1, the GSO handshake flood (anyone with V's public key): initiations with a valid
# mac1 at GSO_RATE/s (default 8,000) in GSO sends of 64, for 4 s. V must go under load:
# the tool receives cookie replies, and V processes (a Diffie-Hellman each) at most a
# few of the initiations: every one it processes is a "dropping handshake initiation"
# line in its verbose log. Meanwhile A (an established session) pings V across the
# tunnel: the median must stay < 50 ms.
# Part 2, the segment-count overflow (an authenticated peer, "mallory"): M completes a
# real handshake, then rounds of 64 keepalives (V's next recvmmsg asks for 64 datagrams)
# and 64 GSO sends of 128 64-byte transport messages (valid IPv4/UDP to V's port 9).
# V must live, its interface must exist, A must still ping through, and the inner
# packets must reach V's stack (its UdpNoPorts counter: nothing valid is lost to the
# queue's bound; >= 95% once what the kernel dropped for a full socket buffer is added).
# Part 3, the same assumption on the send path: with the tunnel's MTU at 576, A's TCP
# hands its TUN TSO super-packets of up to ~120 segments of 536 bytes. iperf3 A -> V for
# 2 s: retransmissions must stay under 5% of the segments (a daemon that drops every
# super-packet of more than 64 segments makes TCP retransmit most of them). Skipped
# without iperf3.
# Failures are collected, so one run on unfixed code shows every figure.
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/net/adversary-lib.sh
. "$(dirname "$0")/adversary-lib.sh"
nt_init gso
need_impl "$NT_IMPL_A"
need_impl "$NT_IMPL_B"
GSO=$(adv_tool gso)
RATE=${GSO_RATE:-8000}

NSV=$(ns_name v) NSA=$(ns_name a) NSM=$(ns_name m)
IFV=$(if_name v) IFA=$(if_name a)
ns_create "$NSV"
ns_create "$NSA"
ns_create "$NSM"
lan_create "$NSV" "$NSA" "$NSM"

key_new v
key_new a
key_new mallory
start_wg "$NT_IMPL_A" "$NSV" "$IFV"
start_wg "$NT_IMPL_B" "$NSA" "$IFA"
wgn "$NSV" set "$IFV" private-key "$(key_file v)" listen-port 51820 \
	peer "$(key_pub a)" allowed-ips 10.0.0.2/32 \
	peer "$(key_pub mallory)" allowed-ips 10.0.0.3/32
wgn "$NSA" set "$IFA" private-key "$(key_file a)" listen-port 51821 \
	peer "$(key_pub v)" endpoint 192.0.2.1:51820 allowed-ips 10.0.0.1/32
tun_up "$NSV" "$IFV" 10.0.0.1/24 fd00::1/64
tun_up "$NSA" "$IFA" 10.0.0.2/24 fd00::2/64

failures=()
check() { # check DESCRIPTION CMD...: run CMD; a failure is recorded, the run goes on
	local what=$1
	shift
	if "$@"; then
		log "ok: $what"
	else
		log "FAILED: $what"
		failures+=("$what")
	fi
}
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }
kv() { sed -n "s/^$1 .*\b$2=\([-0-9.a-z]*\).*/\1/p" "$3"; }
udp_stat() { ip netns exec "$NSV" awk -v k="$1" '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print $c[k] }' /proc/net/snmp; }
udp_noports() { udp_stat NoPorts; }
tun_rx_dropped() { ip netns exec "$NSV" cat "/sys/class/net/$IFV/statistics/rx_dropped" 2>/dev/null || echo 0; }
dh_lines() { grep -c 'dropping handshake initiation' "$NT_TMP/$IFV.log" || true; }

ping_ok "$NSA" 10.0.0.1
assert_handshake "$NSA" "$IFA"

# ---- part 1: the GSO handshake flood
dh0=$(dh_lines)
ip netns exec "$NSM" "$GSO" init --to 192.0.2.1 --port 51820 --victim-pub "$(key_pub v)" \
	--rate "$RATE" --segs 64 --seconds 4 --ready-file "$NT_TMP/init.ready" \
	>"$NT_TMP/init.out" 2>"$NT_TMP/init.err" &
init_pid=$!
NT_PIDS+=("$init_pid")
wait_for 5 "the GSO flood to start" test -e "$NT_TMP/init.ready"
sleep 0.5
ip netns exec "$NSA" ping -n -c 25 -i 0.1 -W 3 10.0.0.1 >"$NT_TMP/ping-flood.log" 2>&1 || true
wait "$init_pid" || { cat "$NT_TMP/init.err"; fail "the gso init tool failed"; }
dh1=$(dh_lines)
sed 's/^/gso init: /' "$NT_TMP/init.out"
sent=$(kv init sent "$NT_TMP/init.out") cookies=$(kv init cookie "$NT_TMP/init.out")
responses=$(kv init response "$NT_TMP/init.out")
processed=$((dh1 - dh0))
rtts=$(sed -n 's/.* time=\([0-9.]*\) ms.*/\1/p' "$NT_TMP/ping-flood.log" | sort -n)
got=$(echo "$rtts" | grep -c . || true)
median=$(echo "$rtts" | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 99999 }')
log "GSO flood: $sent initiations at ${RATE}/s in sends of 64; $cookies cookie replies, $responses responses; V processed $processed; A's ping: $got/25 replies, median ${median} ms"
check "V answers the GSO flood with cookie replies (under load): $cookies" lt 0 "$cookies"
check "V processes few flood initiations (Diffie-Hellman): $processed of $sent" lt "$processed" 200
check "ping across the tunnel under the GSO flood: median ${median} ms < 50 ms" lt "$median" 50
check "ping across the tunnel under the GSO flood: $got/25 replies >= 20" lt 19 "$got"
check "V is alive after the GSO flood" daemon_alive "$IFV"
sleep 1.5 # the load state ends

# ---- part 2: 64 x 128 segments after a burst of keepalives
np0=$(udp_noports) rbe0=$(udp_stat RcvbufErrors) td0=$(tun_rx_dropped)
ip netns exec "$NSM" "$GSO" data --to 192.0.2.1 --port 51820 --victim-pub "$(key_pub v)" \
	--key "$(key_file mallory)" --inner-src 10.0.0.3 --inner-dst 10.0.0.1 \
	--rounds 30 --sends 64 --segs 128 --keepalives 64 --gap-ms 20 \
	>"$NT_TMP/data.out" 2>"$NT_TMP/data.err" || { cat "$NT_TMP/data.err"; fail "the gso data tool failed"; }
sed 's/^/gso data: /' "$NT_TMP/data.out"
[ "$(kv data handshake "$NT_TMP/data.out")" = ok ] || fail "mallory's handshake with V failed: $(cat "$NT_TMP/data.out")"
segments=$(kv data segments "$NT_TMP/data.out")
# V may still be working through its socket buffer: wait until its counter settles.
np1=$(udp_noports)
for _ in $(seq 40); do
	sleep 0.5
	n=$(udp_noports)
	[ "$n" != "$np1" ] || break
	np1=$n
done
delivered=$((np1 - np0)) rbe=$(($(udp_stat RcvbufErrors) - rbe0)) td=$(($(tun_rx_dropped) - td0))
log "segment overflow: $segments transport messages in $(kv data gso_sends "$NT_TMP/data.out") GSO sends; V's stack got $delivered inner packets (V's UDP socket dropped $rbe datagrams for its buffer; its TUN dropped $td)"
# What the kernel dropped before the daemon saw it (a full socket buffer: a whole super-
# datagram of 128) or after it wrote it is not the daemon's loss.
accounted=$((delivered + 128 * rbe + td))
check "V's daemon is alive after the segment flood" daemon_alive "$IFV"
check "V's interface exists after the segment flood" ip -n "$NSV" link show "$IFV"
check "A still pings V across the tunnel" adv_ping "$NSA" 10.0.0.1 -c 3 -i 0.2 -w 10
check "V delivered the inner packets: $delivered of $segments, $accounted with the kernel's drops (>= 95%)" \
	lt $((segments * 95 / 100)) $((accounted + 1))
if grep -q 'TUN write' "$NT_TMP/$IFV.log"; then
	grep 'TUN write' "$NT_TMP/$IFV.log" | sort | uniq -c | head -3
	check "no TUN write errors on V" false
fi

# ---- part 3: TUN TSO super-packets of more than 64 segments
tso="skipped (no iperf3)"
if ! ip -n "$NSV" link show "$IFV" >/dev/null 2>&1; then
	tso="not run (V's interface is gone)"
	check "part 3 runs: V's interface exists" false
elif command -v iperf3 >/dev/null; then
	ip -n "$NSA" link set "$IFA" mtu 576
	ip -n "$NSV" link set "$IFV" mtu 576
	ip netns exec "$NSV" iperf3 -s -1 -B 10.0.0.1 >"$NT_TMP/iperf3-server.log" 2>&1 &
	NT_PIDS+=("$!")
	wait_for 5 "iperf3 server in V" sh -c "ip netns exec '$NSV' ss -ltn | grep -q '10.0.0.1:5201'"
	ip netns exec "$NSA" timeout 20 iperf3 -c 10.0.0.1 -t 2 -J >"$NT_TMP/iperf3.json" 2>&1 || true
	read -r mbit retrans segs < <(python3 -c 'import json, sys
try:
    e = json.load(open(sys.argv[1]))["end"]
    b = e["sum_sent"]["bytes"]
    print("%.1f %d %d" % (e["sum_received"]["bits_per_second"] / 1e6, e["sum_sent"].get("retransmits", 0), b // 536 + 1))
except Exception:
    print("0 0 1")' "$NT_TMP/iperf3.json")
	tso="$mbit Mbit/s, $retrans retransmits of ~$segs segments"
	log "TCP A -> V at MTU 576: $tso"
	check "TCP at MTU 576 carried data: $mbit Mbit/s" lt 0 "$mbit"
	check "TCP at MTU 576 retransmits < 5%: $retrans of ~$segs" lt $((retrans * 20)) "$segs"
fi

if [ ${#failures[@]} -gt 0 ]; then
	fail "${#failures[@]} check(s) failed: $(printf '%s; ' "${failures[@]}")"
fi
log "pass: GSO flood $sent initiations -> $cookies cookie replies, $processed processed, ping median ${median} ms; $segments segments in 128-segment sends -> $delivered delivered, daemon alive; TCP at MTU 576: $tso"
