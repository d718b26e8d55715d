#!/bin/bash
# UDP through the tunnel with the TUN's UDP offloads (issue 19): plain datagrams (one per
# send, as iperf3) and UDP_SEGMENT sends (as QUIC stacks), both ways, v4 and v6, with
# every payload checked at the receiver (tools/udpseg: numbered datagrams whose bytes
# follow from number and flow).
#
#   ns A                                        ns B
#   +--------------------------+   veth   +--------------------------+
#   | IMPL_A ntuo<id>a         |          | IMPL_B ntuo<id>b         |
#   |   10.0.0.1/24 fd00::1/64 |          |   10.0.0.2/24 fd00::2/64 |
#   | eth0 192.0.2.1  :51820   |----------| eth0 192.0.2.2  :51821   |
#   +--------------------------+          +--------------------------+
#
# Each run: two flows at once (two senders, COUNT datagrams of SIZE bytes each, paced:
# 20,000/s each with UDP_SEGMENT, 5,000/s each plain: one a send, or 32 separate ones a
# sendmmsg),
# one receiver (plain recvmmsg; the UDP_SEGMENT runs once more with UDP_GRO on the
# receiving socket). Must hold: no corrupt datagram, no duplicate, none out of order
# within its flow, >= 80% delivered (a USO write the kernel refuses loses all it holds;
# a loaded machine loses a few at the outer socket). A coalescing bug (a wrong length, offset, order or
# checksum) fails here: the kernel drops what does not verify and the tool flags the rest.
# When the daemon logs "uso4" (Linux >= 6.2 took TUN_F_USO4/6), UDP_SEGMENT runs must show
# the offloads at work: the sender's TUN carries super-datagrams to the daemon (longest
# packet > MTU there, so the read-side split ran) and the receiver's TUN carries coalesced
# writes from it (longest > MTU: the write-side merge ran).
set -eu
# shellcheck source=tests/net/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/net/adversary-lib.sh
. "$(dirname "$0")/adversary-lib.sh"
nt_init uo
need_impl "$NT_IMPL_A"
need_impl "$NT_IMPL_B"
TOOL=$(adv_tool udpseg)
COUNT=${UO_COUNT:-3000}
SIZE=1200
PPS=${UO_PPS:-20000}   # per flow, UDP_SEGMENT runs (bursts of 32: what coalesces)
PLAIN_PPS=${UO_PLAIN_PPS:-5000} # per flow, one datagram a send: a loaded machine's sending
				 # daemon drops at the TUN queue well below 40 kpps
MTU=1420

NSA=$(ns_name a) NSB=$(ns_name b)
IFA=$(if_name a) IFB=$(if_name b)
ns_create "$NSA"
ns_create "$NSB"
link_pair "$NSA" 1 "$NSB" 2

tunnel_up "$NT_IMPL_A" "$NT_IMPL_B"
ip -n "$NSA" link set "$IFA" mtu $MTU
ip -n "$NSB" link set "$IFB" mtu $MTU
ping_ok "$NSA" 10.0.0.2
ping_ok "$NSA" fd00::2

uso=0
if grep -q "TUN offloads: .*uso4" "$NT_TMP/$IFA.log" 2>/dev/null && grep -q "TUN offloads: .*uso4" "$NT_TMP/$IFB.log"; then
	uso=1
	log "both daemons run with TUN USO: $(grep -h 'TUN offloads' "$NT_TMP/$IFA.log" | head -1)"
else
	warn "no TUN USO on both sides (kernel $(uname -r), or another implementation): integrity only"
fi

field() { # field NAME LINE
	sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"
}

failures=()
port=7000
# run SRC_NS SRC_IF DST_NS DST_IF DST_ADDR GSO [--gro]
# GSO "mN": no UDP_SEGMENT, N separate datagrams a sendmmsg (udpseg --mmsg N: bench/run's
# plain load), paced as the plain runs.
run() {
	local sns=$1 sif=$2 dns=$3 dif=$4 dst=$5 gso=$6 gro=${7:-} what rpid out s1 s2 got pps=$PPS
	local mode=(--gso "$6")
	case $gso in m*) mode=(--mmsg "${gso#m}") gso=0 ;; esac
	[ "$gso" -gt 1 ] || pps=$PLAIN_PPS
	what="$sns -> $dst ${mode[*]}${gro:+ gro}"
	port=$((port + 1))
	ip netns exec "$dns" "$TOOL" recv --port $port --size $SIZE --expect $((2 * COUNT)) \
		--idle 3000 --timeout 60 --sniff "$dif" $gro >"$NT_TMP/recv.$port" 2>"$NT_TMP/recv.$port.err" &
	rpid=$!
	wait_for 5 "receiver on $port" grep -q listening "$NT_TMP/recv.$port.err"
	ip netns exec "$sns" "$TOOL" send --to "$dst" --port $port --size $SIZE --count "$COUNT" \
		"${mode[@]}" --flow 1 --pps "$pps" --sniff "$sif" >"$NT_TMP/send1.$port" &
	s1=$!
	ip netns exec "$sns" "$TOOL" send --to "$dst" --port $port --size $SIZE --count "$COUNT" \
		"${mode[@]}" --flow 2 --pps "$pps" >"$NT_TMP/send2.$port"
	wait "$s1"
	wait "$rpid" || true
	out=$(cat "$NT_TMP/recv.$port")
	log "$what: $(cat "$NT_TMP/send1.$port")"
	log "$what: $out"
	got=$(field datagrams "$out")
	[ -n "$got" ] || { failures+=("$what: no receiver output"); return; }
	for k in corrupt dup reordered; do
		[ "$(field $k "$out")" = 0 ] || failures+=("$what: $k=$(field $k "$out")")
	done
	[ "$(field flows "$out")" = 2 ] || failures+=("$what: flows=$(field flows "$out")")
	[ "$got" -ge $((2 * COUNT * 80 / 100)) ] || failures+=("$what: only $got of $((2 * COUNT)) delivered")
	if [ $uso = 1 ] && [ "$gso" -gt 1 ]; then
		s1=$(field maxlen "$(cat "$NT_TMP/send1.$port")")
		s2=$(field maxlen "$out")
		[ "$s1" -gt $MTU ] || failures+=("$what: sender's TUN never carried a super-datagram (longest $s1)")
		[ "$s2" -gt $MTU ] || failures+=("$what: receiver's TUN never got a coalesced write (longest $s2)")
	fi
}

for dir in ab ba; do
	if [ $dir = ab ]; then set -- "$NSA" "$IFA" "$NSB" "$IFB" 10.0.0.2 fd00::2
	else set -- "$NSB" "$IFB" "$NSA" "$IFA" 10.0.0.1 fd00::1; fi
	for dst in "$5" "$6"; do
		run "$1" "$2" "$3" "$4" "$dst" 0
		run "$1" "$2" "$3" "$4" "$dst" m32
		run "$1" "$2" "$3" "$4" "$dst" 32
		run "$1" "$2" "$3" "$4" "$dst" 32 --gro
	done
done

# The daemons lived through it.
daemon_alive "$IFA" || failures+=("daemon A died")
daemon_alive "$IFB" || failures+=("daemon B died")

if [ ${#failures[@]} -gt 0 ]; then
	for f in "${failures[@]}"; do log "FAILED: $f"; done
	fail "${#failures[@]} check(s) failed"
fi
log "ok: UDP plain and UDP_SEGMENT, both ways, v4 and v6, payloads intact"
